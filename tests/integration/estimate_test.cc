// `sluice estimate` (issue 13) through the real sluice binary, on a real
// SQLite file and a throwaway PostgreSQL cluster: it changes nothing (the
// catalog and a checksum of the data are identical before and after), its
// JSON predicts every phase as an interval with 0 < P50 <= P90 and gives a
// lock for every statement of every phase (as many as `sluice plan --json`
// prints), the runbook shows a lock under every statement, and a trial
// that cannot get its lock is refused without waiting behind the holder.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
  - create_index:
      name: orders_email_idx
      table: orders
      columns: [email]
)";

constexpr int kRows = 3000;

std::string SqliteFingerprint(Migrator& m) {
  return QueryValue(m, "SELECT group_concat(type || ' ' || name || ' ' || coalesce(sql, ''), char(10)) FROM "
                       "(SELECT * FROM sqlite_master ORDER BY type, name)") +
         "\n" + QueryValue(m, "SELECT group_concat(id || ':' || email, ',') FROM (SELECT * FROM orders ORDER BY id)");
}

std::string PgData(const std::string& url) {
  return PgCluster::Shared()->Psql(
      url, "SELECT md5(string_agg(id || ':' || email, ',' ORDER BY id)) || ' ' || count(*) FROM orders");
}

// The statements of each phase as `sluice plan --json` prints them.
std::map<std::string, size_t> PlanCounts(const std::string& url, const std::string& plan) {
  auto r = RunSluice({"--db", url, "plan", plan, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, size_t> out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_object() || !j.contains("phases")) return out;
  for (auto& [phase, statements] : j["phases"].items()) out[phase] = statements.size();
  return out;
}

// Checks the estimate's JSON; returns it.
nlohmann::json CheckEstimate(const std::string& url, const std::string& plan) {
  auto r = RunSluice({"--db", url, "estimate", plan, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r.out;
  if (!j.is_object()) return j;
  EXPECT_EQ(j["migration"], "001_lower");
  std::set<std::string> phases;
  for (const auto& e : j["estimates"]) {
    const double p50 = e["p50_seconds"], p90 = e["p90_seconds"];
    EXPECT_GT(p50, 0) << e.dump();
    EXPECT_LE(p50, p90) << e.dump();
    EXPECT_LE(e["p10_seconds"].get<double>(), p50) << e.dump();
    EXPECT_FALSE(e["method"].get<std::string>().empty()) << e.dump();
    phases.insert(e["phase"]);
  }
  for (const char* p : {"start", "backfill", "verify", "index", "complete"}) EXPECT_TRUE(phases.count(p)) << p;
  bool found = false;
  for (const auto& t : j["tables"]) {
    if (t["table"] != "orders") continue;
    found = true;
    EXPECT_GE(t["rows"].get<int64_t>(), kRows / 2);  // a catalog estimate may be rough
    EXPECT_GT(t["trial_chunks"].get<int64_t>(), 0);
    EXPECT_GT(t["trial_rows"].get<int64_t>(), 0);
    // The trial's ranges never overlap: no row is rewritten twice (a
    // second rewrite of a row costs less than the backfill's one).
    EXPECT_LE(t["trial_rows"].get<int64_t>(), kRows);
  }
  EXPECT_TRUE(found) << r.out;
  // One lock per statement of every phase that `sluice plan` prints.
  std::map<std::string, size_t> locks;
  for (const auto& l : j["locks"]) {
    EXPECT_FALSE(l["lock"].get<std::string>().empty()) << l.dump();
    EXPECT_EQ(l["lock"].get<std::string>().find("unknown"), std::string::npos) << l.dump();
    ++locks[l["phase"]];
  }
  for (const auto& [phase, n] : PlanCounts(url, plan)) EXPECT_EQ(locks[phase], n) << phase;
  EXPECT_GT(locks["switch"], 0u);
  return j;
}

// Every ```sql block of the runbook is followed by its "Lock: " line.
void CheckRunbookLocks(const std::string& url, const std::string& plan, const std::string& expected) {
  auto r = RunSluice({"--db", url, "runbook", plan});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& md = r.out;
  size_t pos = 0, blocks = 0;
  while ((pos = md.find("```sql\n", pos)) != std::string::npos) {
    size_t end = md.find("\n```", pos + 7);
    ASSERT_NE(end, std::string::npos);
    size_t next = md.find_first_not_of("`\n", end + 1);
    ASSERT_NE(next, std::string::npos);
    EXPECT_EQ(md.compare(next, 6, "Lock: "), 0) << md.substr(pos, next + 60 - pos);
    ++blocks;
    pos = next;
  }
  EXPECT_GT(blocks, 3u);
  EXPECT_THAT(md, HasSubstr(expected));
}

TEST(EstimateTest, SqliteChangesNothingAndPredictsEveryPhase) {
  TempDir dir;
  const std::string url = "sqlite:" + dir.File("app.db");
  auto m = OpenSqlite(dir.File("app.db"));
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                                "INSERT INTO orders SELECT i, 'User' || i || '@X.COM' FROM n;"));
  }
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  const std::string before = SqliteFingerprint(*m);
  auto j = CheckEstimate(url, plan);
  EXPECT_EQ(SqliteFingerprint(*m), before);
  for (const auto& l : j["locks"]) EXPECT_THAT(l["lock"].get<std::string>(), HasSubstr("database write lock"));
  // The Markdown form names the same phases.
  auto md = RunSluice({"--db", url, "estimate", plan});
  EXPECT_EQ(md.exit_code, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("## Locks"));
  EXPECT_THAT(md.out, HasSubstr("| backfill | orders |"));
  CheckRunbookLocks(url, plan, "Lock: database write lock");
  EXPECT_EQ(SqliteFingerprint(*m), before);
}

TEST(EstimateTest, SqliteRefusesAStartedPlan) {
  TempDir dir;
  const std::string url = "sqlite:" + dir.File("app.db");
  auto m = OpenSqlite(dir.File("app.db"));
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "INSERT INTO orders VALUES (1, 'A@X.COM');"));
  }
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  SLUICE_ASSERT_OK(m->Start(plan));
  auto r = RunSluice({"--db", url, "estimate", plan});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("estimate a plan before starting it"));
}

// `start --estimate` records the estimate; after the backfill, the report
// and `status --json` hold it next to the actual duration, both equal to
// what the state tables say (read here by SQL).
TEST(EstimateTest, SqliteEstimateVsActualAfterBackfill) {
  TempDir dir;
  const std::string url = "sqlite:" + dir.File("app.db");
  auto m = OpenSqlite(dir.File("app.db"));
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                                "INSERT INTO orders SELECT i, 'User' || i || '@X.COM' FROM n;"));
  }
  const std::string plan = dir.Write("001_lower.yaml", kPlan);
  auto started = RunSluice({"--db", url, "start", plan, "--estimate", "--backfill", "--chunk-rows", "500"});
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;

  auto body = nlohmann::json::parse(
      QueryValue(*m, "SELECT body FROM _sluice_estimates WHERE migration = '001_lower'"), nullptr, false);
  ASSERT_TRUE(body.is_object());
  double p50 = -1, p90 = -1;
  for (const auto& e : body["estimates"]) {
    if (e["phase"] == "backfill") {
      p50 = e["p50_seconds"];
      p90 = e["p90_seconds"];
    }
  }
  ASSERT_GT(p50, 0);
  const double actual = std::stod(QueryValue(
      *m, "SELECT (julianday(max(committed_at)) - julianday(min(committed_at))) * 86400.0 + "
          "(SELECT millis FROM _sluice_chunks WHERE migration = '001_lower' ORDER BY committed_at LIMIT 1) / 1000.0 "
          "FROM _sluice_chunks WHERE migration = '001_lower'"));

  auto report = RunSluice({"--db", url, "report", "001_lower", "--json"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  auto j = nlohmann::json::parse(report.out, nullptr, false);
  ASSERT_TRUE(j.is_object());
  const auto& eva = j["estimate_vs_actual"];
  EXPECT_DOUBLE_EQ(eva["backfill_p50_seconds"].get<double>(), p50);
  EXPECT_DOUBLE_EQ(eva["backfill_p90_seconds"].get<double>(), p90);
  EXPECT_NEAR(eva["actual_backfill_wall_seconds"].get<double>(), actual, 0.002);
  EXPECT_EQ(eva["estimate"]["migration"], "001_lower");
  // start's duration, as its event recorded it (read by SQL), in the report.
  auto start_details = nlohmann::json::parse(
      QueryValue(*m, "SELECT details FROM _sluice_events WHERE migration = '001_lower' AND kind = 'start'"), nullptr,
      false);
  ASSERT_TRUE(start_details.is_object() && start_details["seconds"].is_number()) << start_details.dump();
  EXPECT_GE(start_details["seconds"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(eva["actual_phase_seconds"]["start"].get<double>(), start_details["seconds"].get<double>());
  EXPECT_TRUE(eva["actual_phase_seconds"]["rollback"].is_null());
  // The commit probe's scratch database is gone: only the database's files.
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(f.path().filename().string().find(".sluice-estimate-"), std::string::npos) << f.path();
  }

  auto md = RunSluice({"--db", url, "report", "001_lower"});
  EXPECT_THAT(md.out, HasSubstr("Estimate recorded at "));
  EXPECT_THAT(md.out, HasSubstr(fmt::format("estimated P50 {:.3f} s", p50)));

  auto status = RunSluice({"--db", url, "status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto sj = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(sj.is_array() && !sj.empty()) << status.out;
  EXPECT_DOUBLE_EQ(sj[0]["estimate_vs_actual"]["backfill_p50_seconds"].get<double>(), p50);
  EXPECT_NEAR(sj[0]["estimate_vs_actual"]["actual_backfill_seconds"].get<double>(), actual, 0.002);
}

struct PgFixture {
  std::string url;
  TempDir dir;
  std::string plan;
  PgFixture() {
    url = PgCluster::Shared()->CreateDatabase("est");
    PgCluster::Shared()->Psql(url, "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL); "
                                   "INSERT INTO orders SELECT i, 'User' || i || '@X.COM' FROM generate_series(1, 3000) i; "
                                   "ANALYZE orders;");
    plan = dir.Write("001_lower.yaml", kPlan);
  }
};

TEST(EstimateTest, PostgresChangesNothingAndListsLocks) {
  PgFixture f;
  const std::string catalog = CatalogFingerprint(f.url), data = PgData(f.url);
  auto j = CheckEstimate(f.url, f.plan);
  EXPECT_EQ(CatalogFingerprint(f.url), catalog);
  EXPECT_EQ(PgData(f.url), data);
  // The locks PostgreSQL's manual gives for what start and complete run.
  std::set<std::string> start_locks;
  for (const auto& l : j["locks"]) {
    if (l["phase"] == "start") start_locks.insert(l["lock"].get<std::string>() + " / " + l["on"].get<std::string>());
  }
  std::string all;
  for (const auto& s : start_locks) all += s + "\n";
  EXPECT_THAT(all, HasSubstr("SHARE UPDATE EXCLUSIVE (waits for transactions older than it; writes go on) / table "
                             "\"public\".\"orders\""));
  EXPECT_THAT(all, HasSubstr("ACCESS EXCLUSIVE (briefly: catalog only) / table \"public\".\"orders\""));
  bool backfill_row_exclusive = false;
  for (const auto& l : j["locks"]) {
    if (l["phase"] == "backfill") backfill_row_exclusive = l["lock"].get<std::string>().rfind("ROW EXCLUSIVE", 0) == 0;
  }
  EXPECT_TRUE(backfill_row_exclusive);
  CheckRunbookLocks(f.url, f.plan, "Lock: SHARE UPDATE EXCLUSIVE");
  EXPECT_EQ(CatalogFingerprint(f.url), catalog);
}

TEST(EstimateTest, PostgresRefusesRatherThanQueueBehindALock) {
  PgFixture f;
  auto m = OpenUrl(f.url);
  ASSERT_NE(m, nullptr);
  auto holder = m->Connect("");
  ASSERT_TRUE(holder.ok());
  SLUICE_ASSERT_OK((*holder)->Exec("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"));
  const std::string catalog_sql = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sluice%'";
  auto r = RunSluice({"--db", f.url, "estimate", f.plan, "--trial-lock-timeout-ms", "100"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("could not get its locks within 100 ms"));
  EXPECT_THAT(r.err, HasSubstr("changed nothing"));
  SLUICE_ASSERT_OK((*holder)->Exec("ROLLBACK"));
  EXPECT_EQ(PgCluster::Shared()->Psql(f.url, catalog_sql), "0");
}

}  // namespace
}  // namespace sluice::testing
