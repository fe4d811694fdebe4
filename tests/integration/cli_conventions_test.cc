// The conventions every verb of the `sluice` command shares (issue 14),
// through the real binary: --version, "did you mean", the global options in
// each verb's help, `sluice: error:` as every failure's first stderr line,
// one exit code per next action (docs/cli.md "Exit codes"), and a progress
// line that fits the terminal and redraws in place (checked on a real pty).
#include <sys/stat.h>
#include <unistd.h>

#include <regex>

#include "support/plans.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

constexpr const char* kPlan = kAddEmailLowerPlan;

struct Db {
  TempDir dir;
  std::string path = dir.File("app.db");
  std::string url = "sqlite:" + path;
  explicit Db(int rows = 3) {
    auto m = OpenSqlite(path);
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(rows) +
        ") INSERT INTO orders SELECT i, 'U' || i || '@X.COM' FROM n;"));
  }
  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  }
  std::string Value(const std::string& sql) {
    auto m = OpenSqlite(path, false);
    return QueryValue(*m, sql);
  }
};

TEST(CliConventions, VersionNamesTheVersionAndTheCommit) {
  auto r = RunSluice({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(FirstLine(r.out), std::regex(R"(sluice \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown)\))")))
      << r.out;
}

TEST(CliConventions, AnUnknownVerbSuggestsTheNearestOne) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"stauts"}, {"--db", "sqlite:x.db", "stauts", "--json"}, {"--lock-timeout-ms", "5", "stauts"}}) {
    auto r = RunSluice(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(FirstLine(r.err), "sluice: error: unknown verb 'stauts'; did you mean 'status'?") << r.err;
  }
  auto r = RunSluice({"rollbakc"});
  EXPECT_THAT(FirstLine(r.err), HasSubstr("did you mean 'rollback'?"));
  r = RunSluice({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(FirstLine(r.err), "sluice: error: unknown verb 'frobnicate'") << r.err;
}

TEST(CliConventions, EveryVerbsHelpListsTheGlobalOptions) {
  for (const char* verb : {"lint", "plan", "start", "backfill", "verify", "switch", "complete", "rollback", "status",
                           "tune", "version-sql", "gates", "migrate"}) {
    auto r = RunSluice({verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb;
    for (const char* opt : {"--db", "--schema", "--state-schema", "--lock-timeout-ms", "--lock-budget-ms", "--actor"}) {
      EXPECT_THAT(r.out, HasSubstr(opt)) << verb << " --help lacks " << opt << ":\n" << r.out;
    }
  }
}

// Exit codes, one test per code the table in docs/cli.md lists (0 is every
// other test's; 4 is in gates_cli_test.cc; 130 in backfill_safety_test.cc).
TEST(CliExitCodes, OneFixTheInput) {
  Db db;
  auto r = db.Run({"lint", db.dir.Write("bad.yaml", "operations:\n  - add_column: {table: nope}\n")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: "));
  // start with several plan errors: one first line, "error:" not doubled.
  r = db.Run({"start", db.dir.Write("bad2.yaml", "operations:\n  - add_column: {table: nope, colum: 1}\n"
                                                 "  - drop_column: {table: nope}\n")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: "));
  EXPECT_THAT(FirstLine(r.err), ::testing::MatchesRegex("sluice: error: .*bad2.yaml has 3 error\\(s\\):")) << r.err;
  EXPECT_EQ(db.Value("SELECT count(*) FROM sqlite_master WHERE name LIKE '_sluice%'"), "0");
}

TEST(CliExitCodes, TwoFixTheCommandLine) {
  Db db;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"status", "--no-such-option"},
           {"lint"},
           {"--db", "postgersql://app@localhost/app", "status"},
           {"--db", "sqlit:" + db.path, "status"},
           {"--db", "sqlite://host/x.db", "status"}}) {
    auto r = RunSluice(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << r.err;
    EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: ")) << r.err;
  }
}

TEST(CliExitCodes, ThreeLookAtTheEvidence) {
  Db a, b;
  auto s = OpenSqlite(b.path, false)->Connect("");
  ASSERT_TRUE(s.ok());
  SLUICE_ASSERT_OK((*s)->Exec("UPDATE orders SET email = 'changed' WHERE id = 2"));
  auto r = RunSluice({"diff", "--source", a.url, "--target", b.url, "--table", "orders"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("DIFFERENT"));
}

TEST(CliExitCodes, FiveRunAgainLater) {
  // Nothing listens on port 1: connection refused is transient.
  auto r = RunSluice({"--db", "postgresql://sluice@127.0.0.1:1/none?connect_timeout=5", "status"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: "));
}

TEST(CliExitCodes, SixGrantAPrivilegeReadOnlyFile) {
  if (geteuid() == 0) {
    // root writes through any file mode; run the same command as nobody.
    if (access("/usr/sbin/runuser", X_OK) != 0) GTEST_SKIP() << "running as root without runuser";
  }
  Db db;
  std::string plan = db.dir.Write("001_lower.yaml", kPlan);
  ASSERT_EQ(chmod(db.dir.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(db.path.c_str(), 0444), 0);
  ASSERT_EQ(chmod(plan.c_str(), 0644), 0);
  std::vector<std::string> args = {"--db", db.url, "start", plan};
  CommandResult r;
  if (geteuid() == 0) {
    std::string cmd = "/usr/sbin/runuser -u nobody -- " SLUICE_BINARY;
    for (const auto& a : args) cmd += " '" + a + "'";
    FILE* p = popen((cmd + " 2>&1 >/dev/null; echo \"exit=$?\"").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
    r.err = out;
    r.exit_code = std::stoi(out.substr(out.rfind("exit=") + 5));
  } else {
    r = RunSluice(args);
  }
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: "));
  EXPECT_EQ(db.Value("SELECT count(*) FROM sqlite_master WHERE name LIKE '_sluice%'"), "0");
}

TEST(CliExitCodes, SevenAnOperatorMustActGateRefusal) {
  Db db;
  ASSERT_EQ(db.Run({"start", db.dir.Write("001_lower.yaml", kPlan), "--backfill"}).exit_code, 0);
  auto r = db.Run({"complete"});  // no verification yet: the gate refuses
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_THAT(FirstLine(r.err), StartsWith("sluice: error: "));
  EXPECT_THAT(r.err, HasSubstr("no verification recorded"));
  EXPECT_EQ(db.Value("SELECT phase FROM _sluice_migrations"), "active");
}

// Runs `command` on a pseudo-terminal COLUMNS wide (script(1) gives it one;
// stty sets the width the process reads with TIOCGWINSZ). Returns the raw
// bytes the terminal received.
std::string OnPty(const std::string& command, int columns) {
  std::string cmd = "script -qfec \"stty cols " + std::to_string(columns) + " rows 24; " + command +
                    "\" /dev/null </dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(CliProgress, FitsTheTerminalAndRedrawsInPlace) {
  Db db(4000);
  ASSERT_EQ(db.Run({"start", db.dir.Write("001_lower.yaml", kPlan)}).exit_code, 0);
  // A rate limit makes many chunks and a throttle reason on the line.
  std::string raw = OnPty(std::string("env -u COLUMNS ") + SLUICE_BINARY + " --db " + db.url +
                              " backfill --rate 4000 --chunk-rows 200",
                          60);
  ASSERT_THAT(raw, HasSubstr("backfill done")) << raw;
  EXPECT_THAT(raw, HasSubstr("\r\033[K")) << "no in-place redraw";
  int progress_lines = 0;
  std::string segment;
  for (size_t i = 0; i <= raw.size(); ++i) {
    char c = i < raw.size() ? raw[i] : '\n';
    if (c == '\r' || c == '\n') {
      if (segment.rfind("\033[K", 0) == 0) segment.erase(0, 3);
      if (segment.find("orders") != std::string::npos) {
        ++progress_lines;
        EXPECT_LE(segment.size(), 59u) << "'" << segment << "'";
      }
      segment.clear();
    } else {
      segment += c;
    }
  }
  EXPECT_GE(progress_lines, 2) << raw;
  EXPECT_EQ(db.Value("SELECT count(*) FROM orders WHERE email_lower IS NULL"), "0");

  // Not a terminal: plain lines, no carriage returns or escapes.
  Db plain(500);
  ASSERT_EQ(plain.Run({"start", plain.dir.Write("001_lower.yaml", kPlan)}).exit_code, 0);
  auto r = plain.Run({"backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sluice::testing
