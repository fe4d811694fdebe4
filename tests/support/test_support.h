// Test harness shared by unit and integration tests: temporary directories,
// plan files, running the real sluice binary, and Status matchers.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "sluice/sluice.h"
#include "sluice/status.h"

namespace sluice::testing {

// A directory removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `text` to `name` inside the directory and returns its path.
  std::string Write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the built sluice binary with `args` (no shell); env adds variables.
CommandResult RunSluice(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

// Starts the sluice binary in the background with stdout/stderr to files
// in `dir`; returns its pid (or -1).
int SpawnSluice(const std::vector<std::string>& args, const std::string& dir);
// Waits for a spawned process; returns its exit code (128+signal if killed).
int WaitProcess(int pid);

// Runs a query through a fresh session and returns the first column of the
// first row ("" for NULL or no row). Fails the test on error.
std::string QueryValue(Migrator& m, const std::string& sql, const std::string& version = "");
std::vector<std::vector<std::string>> QueryRows(Migrator& m, const std::string& sql, const std::string& version = "");

// Runs `verify` on `migration` and asserts it ran and passed (the switch
// and complete gates want a passing verification after the backfill). Use
// with ASSERT_NO_FATAL_FAILURE.
void AssertVerified(Migrator& m, const std::string& migration);

// Opens a Migrator on a SQLite file, creating it.
std::unique_ptr<Migrator> OpenSqlite(const std::string& path, bool create = true);

// Opens a Migrator on `url` (any URL Options::db_url takes) with the rest
// of `options`; actor "test" unless `options` names one. nullptr (and a
// failed expectation) on error.
std::unique_ptr<Migrator> OpenUrl(const std::string& url, Options options = {});

// Options whose lock retry budget (20 s) outlasts a loaded test machine's
// slow sessions, for tests that do not exercise the budget itself.
Options PatientLocks();

MATCHER_P2(StatusIs, code, substring, "") {
  const Status& s = arg;
  if (s.code() != code) {
    *result_listener << "code is " << StatusCodeName(s.code()) << ": " << s.message();
    return false;
  }
  if (s.message().find(substring) == std::string::npos) {
    *result_listener << "message is: " << s.message();
    return false;
  }
  return true;
}

// Polls `pred` every 50 ms until it holds or `seconds` passed (a hang
// guard for a condition the test waits for, not a timing assertion); its
// last answer.
bool Eventually(const std::function<bool()>& pred, int seconds = 60);

// The first line of Markdown (or any) text `md` that starts with `prefix`,
// without its newline; "" when none does.
std::string LineStartingWith(const std::string& md, const std::string& prefix);

#define SLUICE_ASSERT_OK(expr)                              \
  do {                                                      \
    ::sluice::Status s_ = (expr);                           \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << s_.message();  \
  } while (0)

#define SLUICE_EXPECT_OK(expr)                              \
  do {                                                      \
    ::sluice::Status s_ = (expr);                           \
    EXPECT_TRUE(s_.ok()) << #expr << ": " << s_.message();  \
  } while (0)

}  // namespace sluice::testing
