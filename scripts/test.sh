#!/usr/bin/env bash
# Builds sluice and runs the tests; this is what CI runs (.ci/run).
#
#   scripts/test.sh [--only gcc|asan|tsan] [CTEST-ARG...]
#
# Three configurations, in this order:
#   gcc   build/       GCC 12: every test (unit, SQLite, PostgreSQL on a
#                      throwaway cluster)
#   asan  build-asan/  clang 14 + AddressSanitizer + UndefinedBehaviorSanitizer:
#                      the tests labelled asan (unit suite, SQLite
#                      integration suites)
#   tsan  build-tsan/  clang 14 + ThreadSanitizer: the tests labelled tsan
#                      (backfill control, SQLite backfill)
# A sanitizer build compiles only what its tests need, and the `sluice` the
# tests spawn comes from the same build, so it is checked too. Any sanitizer
# report fails the run: the `sanitizer_reports` test prints it.
#
# --only CONFIG (or SLUICE_TEST_CONFIGS="gcc asan") runs a subset. Other
# arguments go to every ctest run (e.g. -R sqlite_backfill). Every
# configuration runs even if an earlier one failed; the exit status is
# non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

configs=${SLUICE_TEST_CONFIGS:-gcc asan tsan}
if [ "${1:-}" = "--only" ]; then
  [ $# -ge 2 ] || { echo "usage: scripts/test.sh [--only gcc|asan|tsan] [CTEST-ARG...]" >&2; exit 2; }
  configs=$2
  shift 2
fi
for c in $configs; do
  case "$c" in
    gcc | asan | tsan) ;;
    *) echo "scripts/test.sh: unknown configuration '$c' (gcc, asan or tsan)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh

summary=()
failed=0
run() {  # run CONFIG: build and test one configuration, timing each part
  local config=$1 t0 t1 t2 rc=0
  shift
  echo "==== $config: build"
  t0=$(date +%s)
  case "$config" in
    gcc) scripts/build.sh gcc || rc=$? ;;
    asan | tsan) scripts/build.sh "$config" "${config}_tests" || rc=$? ;;
  esac
  t1=$(date +%s)
  if [ $rc -eq 0 ]; then
    echo "==== $config: test"
    case "$config" in
      gcc) ctest --test-dir build --output-on-failure -j 2 --timeout 900 "$@" || rc=$? ;;
      # Sanitized code runs several times slower: a longer timeout.
      asan | tsan) ctest --test-dir "build-$config" -L "^$config\$" --output-on-failure -j 2 --timeout 1800 "$@" || rc=$? ;;
    esac
  fi
  t2=$(date +%s)
  summary+=("$(printf '%-5s build %4ds  test %4ds  %s' "$config" $((t1 - t0)) $((t2 - t1)) \
    "$([ $rc -eq 0 ] && echo passed || echo FAILED)")")
  [ $rc -eq 0 ] || failed=1
}

for c in $configs; do run "$c" "$@"; done

echo "==== summary"
printf '%s\n' "${summary[@]}"
exit $failed
