// Default runtime options of the sanitizers, compiled into every executable
// of a SLUICE_SANITIZE build (the `sluice` binary and each test binary; see
// sluice_sanitizer_defaults() in CMakeLists.txt) and into nothing else.
//
// Compiled in rather than set in the environment so that a `sluice` process
// the tests spawn, or one a developer runs by hand from build-asan/, is
// checked as strictly as the test that started it: the first report stops
// the process with a stack and a non-zero exit. ASAN_OPTIONS, UBSAN_OPTIONS,
// TSAN_OPTIONS and LSAN_OPTIONS are parsed after these and win; ctest sets
// log_path there (tests/CMakeLists.txt) so that reports from spawned
// processes, whose stderr the tests capture, are collected and fail the run.
//
// The sanitizer runtimes look these functions up by name at start-up.
//
// No suppressions are needed today. Should one be (a report that is truly
// not sluice's, e.g. a false positive inside an uninstrumented libpq), put
// it in .sanitizer-<name>-suppressions.txt at the top of the tree with a
// comment saying why, and append
// ":suppressions=" SLUICE_SANITIZER_SUPPRESSIONS_DIR "/.sanitizer-<name>-suppressions.txt"
// to that sanitizer's string below (LSan's: an __lsan_default_options).

#define SLUICE_SANITIZER_HOOK extern "C" __attribute__((visibility("default"), used))

// ASan: stop at the first error (also the default), and find use of a stack
// object after its function returned, and static initialisation order bugs.
SLUICE_SANITIZER_HOOK const char* __asan_default_options() {
  return "halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:"
         "check_initialization_order=1:strict_init_order=1";
}

// UBSan: a stack for each report. The build uses -fno-sanitize-recover, so
// the first report ends the process.
SLUICE_SANITIZER_HOOK const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

// TSan: stop at the first race (exit code 66), and show where both locks of
// a lock-order inversion were taken.
SLUICE_SANITIZER_HOOK const char* __tsan_default_options() { return "halt_on_error=1:second_deadlock_stack=1"; }
