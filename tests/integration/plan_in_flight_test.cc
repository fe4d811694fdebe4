// `plan` and `lint --db` on the plan of a migration already in flight
// (issue 14): instead of "already exists" they show what remains of it, as
// recorded at start (switch while reads are on the old version, complete,
// rollback), exit 0 and change nothing; a different plan text under the same
// name keeps the refusal. The statements shown are the recording's (read by
// SQL from the state tables) and, on PostgreSQL, the ones `complete` and
// `rollback` then run (the server's statement log).
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
  - drop_column:
      table: orders
      column: legacy
)";

// The SQL of every statement of `phase` in a recording (its JSON).
std::vector<std::string> Recorded(const std::string& recording, const std::string& phase) {
  std::vector<std::string> out;
  json j = json::parse(recording);
  for (const auto& step : j.at(phase)) {
    for (const auto& st : step.at("statements")) out.push_back(st.at("sql").get<std::string>());
  }
  return out;
}

// Every recorded statement appears, in order, among `shown` (whose entries
// may carry a comment line before the SQL).
void ExpectShownInOrder(const std::vector<std::string>& recorded, const json& shown, const std::string& what) {
  ASSERT_TRUE(shown.is_array()) << what;
  ASSERT_FALSE(recorded.empty()) << what;
  size_t at = 0;
  for (const auto& sql : recorded) {
    while (at < shown.size() && shown[at].get<std::string>().find(sql) == std::string::npos) ++at;
    ASSERT_LT(at, shown.size()) << what << ": recorded statement not shown (or out of order): " << sql;
    ++at;
  }
}

struct Shown {
  json plan;
  json lint;
};

// plan --json and lint --json on `plan_file`; both must succeed.
Shown ShowBoth(const std::string& url, const std::string& plan_file) {
  Shown s;
  auto p = RunSluice({"--db", url, "plan", plan_file, "--json"});
  EXPECT_EQ(p.exit_code, 0) << p.err;
  s.plan = json::parse(p.out, nullptr, false);
  auto l = RunSluice({"--db", url, "lint", plan_file, "--json"});
  EXPECT_EQ(l.exit_code, 0) << l.err;
  s.lint = json::parse(l.out, nullptr, false);
  return s;
}

TEST(PlanInFlight, SqliteShowsTheRecordedRemainderAndChangesNothing) {
  TempDir dir;
  const std::string db = dir.File("app.db"), url = "sqlite:" + db;
  auto m = OpenSqlite(db);
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok());
  SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, legacy TEXT);"
                              "INSERT INTO orders VALUES (1, 'A@X.COM', 'x'), (2, 'B@X.COM', NULL);"));
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  auto r = RunSluice({"--db", url, "start", plan, "--backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string recording = QueryValue(*m, "SELECT compiled FROM _sluice_recordings WHERE migration = '001_lower'");
  const std::string bytes = ReadFile(db);

  Shown sh = ShowBoth(url, plan);
  EXPECT_EQ(ReadFile(db), bytes) << "plan/lint changed the database file";
  EXPECT_EQ(sh.plan["in_flight"], "active") << sh.plan.dump();
  EXPECT_EQ(sh.plan["live"], "old");
  EXPECT_FALSE(sh.plan["phases"].contains("start"));
  EXPECT_EQ(sh.lint["ok"], true);
  EXPECT_EQ(sh.lint["in_flight"], "active");
  EXPECT_EQ(sh.lint["remaining"], sh.plan["phases"]);
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(Recorded(recording, "switch"), sh.plan["phases"]["switch"], "switch"));
  // complete performs the switch itself while reads are on the old version.
  std::vector<std::string> complete = Recorded(recording, "switch");
  for (const auto& c : Recorded(recording, "complete")) complete.push_back(c);
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(complete, sh.plan["phases"]["complete"], "complete"));
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(Recorded(recording, "rollback"), sh.plan["phases"]["rollback"], "rollback"));

  // Plain text says what it is.
  auto text = RunSluice({"--db", url, "plan", plan});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("001_lower is already active"));
  EXPECT_THAT(text.out, HasSubstr("-- == rollback =="));
  auto lint_text = RunSluice({"--db", url, "lint", plan});
  ASSERT_EQ(lint_text.exit_code, 0) << lint_text.err;
  EXPECT_THAT(lint_text.out, HasSubstr(": ok: this migration is already active"));

  // The same name with a different text is not this migration: refused.
  TempDir other;
  const std::string changed = other.Write("001_lower.yaml", std::string(kPlan) + "\n# changed\n");
  EXPECT_NE(RunSluice({"--db", url, "plan", changed}).exit_code, 0);
  EXPECT_NE(RunSluice({"--db", url, "lint", changed}).exit_code, 0);
  EXPECT_EQ(ReadFile(db), bytes);

  // After switch the remainder has no switch; rollback then switches back.
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "001_lower"));
  ASSERT_EQ(RunSluice({"--db", url, "switch"}).exit_code, 0);
  sh = ShowBoth(url, plan);
  EXPECT_EQ(sh.plan["live"], "new");
  EXPECT_FALSE(sh.plan["phases"].contains("switch"));
  std::vector<std::string> rollback = Recorded(recording, "switch_back");
  for (const auto& c : Recorded(recording, "rollback")) rollback.push_back(c);
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(rollback, sh.plan["phases"]["rollback"], "rollback after switch"));

  // What complete then does is what was shown: legacy gone, email_lower kept.
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "001_lower"));
  ASSERT_EQ(RunSluice({"--db", url, "complete"}).exit_code, 0);
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info('orders') ORDER "
                           "BY name)"),
            "email,email_lower,id");
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(email_lower, ',') FROM orders"), "a@x.com,b@x.com");
  // Complete: no longer in flight, so plan compiles afresh (and refuses).
  EXPECT_NE(RunSluice({"--db", url, "plan", plan}).exit_code, 0);
}

// PostgreSQL: the statements shown are those complete / rollback run, read
// back from the server's statement log.
class PgPlanInFlight : public ::testing::Test {
 protected:
  PgCluster* pg = PgCluster::Shared();

  std::string NewDb() {
    std::string url = pg->CreateDatabase("inflight");
    if (url.empty()) return url;
    pg->Psql(url, "CREATE TABLE orders (id integer PRIMARY KEY, email text NOT NULL, legacy text);"
                  "INSERT INTO orders VALUES (1, 'A@X.COM', 'x'), (2, 'B@X.COM', NULL)");
    return url;
  }
  // Logs every statement of this database's new sessions from now on.
  void LogStatements(const std::string& url) {
    const std::string db = url.substr(url.rfind('/') + 1);
    pg->Psql(url, "ALTER DATABASE \"" + db + "\" SET log_statement = 'all'");
  }
  void ExpectRan(const std::vector<std::string>& shown_sql, const std::string& log_before, const std::string& what) {
    std::string log = ReadFile(pg->log_path());
    ASSERT_GE(log.size(), log_before.size());
    log = log.substr(log_before.size());
    // The server log indents a statement's continuation lines with a tab.
    for (size_t at = log.find("\n\t"); at != std::string::npos; at = log.find("\n\t", at + 1)) log.erase(at + 1, 1);
    for (const auto& sql : shown_sql) {
      EXPECT_NE(log.find(sql), std::string::npos) << what << " did not run this shown statement: " << sql.substr(0, 300);
    }
  }
};

// The SQL of each shown statement without plan's comment lines.
std::vector<std::string> SqlOf(const json& shown) {
  std::vector<std::string> out;
  for (const auto& e : shown) {
    std::string s = e.get<std::string>();
    while (s.rfind("-- ", 0) == 0 && s.find('\n') != std::string::npos) s = s.substr(s.find('\n') + 1);
    out.push_back(s);
  }
  return out;
}

TEST_F(PgPlanInFlight, CompleteRunsWhatPlanShowed) {
  SLUICE_ASSERT_PG_OK(pg);
  TempDir dir;
  const std::string url = NewDb();
  ASSERT_FALSE(url.empty());
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  auto r = RunSluice({"--db", url, "start", plan, "--backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string recording =
      pg->Psql(url, "SELECT compiled FROM sluice.recordings WHERE migration = '001_lower'");
  const std::string before = FingerprintWithoutLive(url);
  const std::string state_before = pg->Psql(
      url, "SELECT (SELECT count(*) FROM sluice.events) || '/' || (SELECT string_agg(name || phase || live, ',') "
           "FROM sluice.migrations)");

  Shown sh = ShowBoth(url, plan);
  EXPECT_EQ(FingerprintWithoutLive(url), before);
  EXPECT_EQ(pg->Psql(url, "SELECT (SELECT count(*) FROM sluice.events) || '/' || (SELECT string_agg(name || phase "
                          "|| live, ',') FROM sluice.migrations)"),
            state_before);
  EXPECT_EQ(sh.plan["in_flight"], "active") << sh.plan.dump();
  EXPECT_EQ(sh.lint["remaining"], sh.plan["phases"]);
  std::vector<std::string> complete = Recorded(recording, "switch");
  for (const auto& c : Recorded(recording, "complete")) complete.push_back(c);
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(complete, sh.plan["phases"]["complete"], "complete"));
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(Recorded(recording, "rollback"), sh.plan["phases"]["rollback"], "rollback"));

  ASSERT_NO_FATAL_FAILURE(AssertVerified(*OpenUrl(url, PatientLocks()), "001_lower"));
  LogStatements(url);
  const std::string log_before = ReadFile(pg->log_path());
  r = RunSluice({"--db", url, "complete"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NO_FATAL_FAILURE(ExpectRan(SqlOf(sh.plan["phases"]["complete"]), log_before, "complete"));
  EXPECT_EQ(pg->Psql(url, "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                          "WHERE table_schema = 'public' AND table_name = 'orders'"),
            "email,email_lower,id");
}

TEST_F(PgPlanInFlight, RollbackRunsWhatPlanShowed) {
  SLUICE_ASSERT_PG_OK(pg);
  TempDir dir;
  const std::string url = NewDb();
  ASSERT_FALSE(url.empty());
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  auto r = RunSluice({"--db", url, "start", plan});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string recording =
      pg->Psql(url, "SELECT compiled FROM sluice.recordings WHERE migration = '001_lower'");
  Shown sh = ShowBoth(url, plan);
  EXPECT_EQ(sh.lint["in_flight"], "active");
  ASSERT_NO_FATAL_FAILURE(ExpectShownInOrder(Recorded(recording, "rollback"), sh.plan["phases"]["rollback"], "rollback"));

  LogStatements(url);
  const std::string log_before = ReadFile(pg->log_path());
  r = RunSluice({"--db", url, "rollback"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NO_FATAL_FAILURE(ExpectRan(SqlOf(sh.plan["phases"]["rollback"]), log_before, "rollback"));
  EXPECT_EQ(pg->Psql(url, "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                          "WHERE table_schema = 'public' AND table_name = 'orders'"),
            "email,id,legacy");
}

}  // namespace
}  // namespace sluice::testing
