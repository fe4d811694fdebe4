// Readiness gates, sign-offs, overrides and abort criteria, through the real
// sluice binary on a real SQLite file: a transition whose gate fails is
// refused with the evidence and changes nothing; --force needs a reason and
// is recorded; sign-offs unblock; a breached abort criterion switches reads
// back by itself.
#include <nlohmann/json.hpp>

#include "support/plans.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kOps = kAddEmailLowerPlan;

struct Fixture {
  TempDir dir;
  std::string url;
  std::unique_ptr<Migrator> m;

  explicit Fixture(const std::string& extra) {
    url = "sqlite:" + dir.File("app.db");
    m = OpenSqlite(dir.File("app.db"));
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
        "INSERT INTO orders VALUES (1, 'A@X.COM'), (2, 'B@X.COM'), (3, 'C@X.COM');"
        "CREATE TABLE health (ok INTEGER); INSERT INTO health VALUES (1);"));
    auto r = Run({"start", dir.Write("001_lower.yaml", std::string(kOps) + extra), "--backfill"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url, "--actor", "tester"});
    return RunSluice(args);
  }
  std::string Value(const std::string& sql) { return QueryValue(*m, sql); }
  std::string Live() { return Value("SELECT live FROM _sluice_migrations WHERE name = '001_lower'"); }
  // Moves the `at` times of `table`'s rows (those matching `where`, or all)
  // `seconds` into the past, in the format NowIso() writes.
  void Backdate(const std::string& table, const std::string& where, int seconds) {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_EXPECT_OK((*s)->Exec("UPDATE " + table + " SET at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-" +
                                std::to_string(seconds) + " seconds')" + (where.empty() ? "" : " WHERE " + where)));
  }
};

TEST(Gates, NoGateSettingsKeepTheSimplePathWorking) {
  Fixture f("");
  auto v = f.Run({"verify"});
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  auto c = f.Run({"complete"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "complete");
}

TEST(Gates, AMissingVerificationBlocksAMigrationThatBackfills) {
  // (a) start --backfill; (b) complete without verify is refused and
  // changes nothing; (c) after verify it completes.
  Fixture f("");
  auto co = f.Run({"complete"});
  EXPECT_NE(co.exit_code, 0);
  EXPECT_THAT(co.err, ::testing::HasSubstr("no verification recorded"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");
  EXPECT_EQ(f.Live(), "old");
  auto g = f.Run({"gates", "--json"});
  ASSERT_EQ(g.exit_code, 7) << g.err;  // a gate blocks
  EXPECT_THAT(g.err, ::testing::StartsWith("sluice: error: gate(s) blocked: switch, complete")) << g.err;
  auto j = nlohmann::json::parse(g.out);
  EXPECT_EQ(j[1]["passed"], false) << g.out;
  EXPECT_EQ(j[2]["passed"], false) << g.out;
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  co = f.Run({"complete"});
  ASSERT_EQ(co.exit_code, 0) << co.err;
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "complete");
}

TEST(Gates, AVerificationFromBeforeTheBackfillEndedDoesNotCount) {
  // Before the backfill the new version is not ready: a verification then
  // is refused and recorded as failed (it would prove nothing about the
  // rows that arrive and get backfilled later), and the switch gate holds
  // until a verification after the backfill passes. (The gate's own check
  // of a passed verification older than the backfill's end is covered in
  // tests/unit/gates_test.cc.)
  TempDir dir;
  std::string url = "sqlite:" + dir.File("app.db");
  auto m = OpenSqlite(dir.File("app.db"));
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok());
  SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL)"));
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  };
  ASSERT_EQ(run({"start", dir.Write("001_lower.yaml", kOps)}).exit_code, 0);
  auto early = run({"verify"});
  EXPECT_EQ(early.exit_code, 7) << early.err;
  EXPECT_THAT(early.err, ::testing::HasSubstr("is not ready"));
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(passed) FROM _sluice_verifications"), "0");
  SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO orders (id, email) VALUES (1, 'A@X.COM'), (2, 'B@X.COM')"));
  auto b = run({"backfill"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto sw = run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("verification"));
  EXPECT_EQ(QueryValue(*m, "SELECT live FROM _sluice_migrations"), "old");
  ASSERT_EQ(run({"verify"}).exit_code, 0);
  sw = run({"switch"});
  EXPECT_EQ(sw.exit_code, 0) << sw.err;
  EXPECT_EQ(QueryValue(*m, "SELECT live FROM _sluice_migrations"), "new");
}

TEST(Gates, NothingToVerifyIsNotHeldBack) {
  // Only a new table and an index: no backfill, no dual-write.
  TempDir dir;
  std::string url = "sqlite:" + dir.File("app.db");
  auto m = OpenSqlite(dir.File("app.db"));
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok());
  SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL)"));
  std::string plan = dir.Write("001_tags.yaml", R"(
operations:
  - create_table:
      name: tags
      columns:
        - {name: id, type: INTEGER, pk: true}
        - {name: label, type: TEXT, nullable: true}
  - create_index:
      name: orders_email_idx
      table: orders
      columns: [email]
)");
  ASSERT_EQ(RunSluice({"--db", url, "start", plan}).exit_code, 0);
  auto co = RunSluice({"--db", url, "complete"});
  EXPECT_EQ(co.exit_code, 0) << co.err;
  EXPECT_EQ(QueryValue(*m, "SELECT phase FROM _sluice_migrations"), "complete");
}

TEST(Gates, AFailedVerificationBlocksSwitchAndCompleteUntilForcedWithAReason) {
  // An invariant that does not hold makes the verification fail.
  Fixture f(R"(
verify:
  invariants:
    - {name: small_ids, table: orders, check: id < 3}
)");
  auto v = f.Run({"verify"});
  ASSERT_EQ(v.exit_code, 3) << v.out << v.err;

  auto sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("switch gate"));
  EXPECT_THAT(sw.err, ::testing::HasSubstr("FAILED"));
  EXPECT_EQ(f.Live(), "old");
  auto co = f.Run({"complete"});
  EXPECT_NE(co.exit_code, 0);
  EXPECT_THAT(co.err, ::testing::HasSubstr("switch gate"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");

  auto no_reason = f.Run({"switch", "--force"});
  EXPECT_NE(no_reason.exit_code, 0);
  EXPECT_THAT(no_reason.err, ::testing::HasSubstr("--reason"));
  EXPECT_EQ(f.Live(), "old");

  auto forced = f.Run({"switch", "--force", "--reason", "invariant is wrong, ticket OPS-12"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(f.Live(), "new");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'gate.override' AND actor = 'tester' AND "
                    "message LIKE '%OPS-12%'"),
            "1");
  auto st = f.Run({"status", "--json"});
  auto j = nlohmann::json::parse(st.out);
  ASSERT_EQ(j[0]["gate_overrides"].size(), 1u) << st.out;
  EXPECT_NE(j[0]["gate_overrides"][0].get<std::string>().find("OPS-12"), std::string::npos);
}

TEST(Gates, RequiredSignoffsBlockUntilRecorded) {
  Fixture f(R"(
gates:
  switch:
    signoffs: [data owner, SRE]
)");
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  auto sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("signoff data owner"));
  EXPECT_EQ(f.Live(), "old");

  ASSERT_EQ(f.Run({"signoff", "switch", "--as", "dana", "--role", "data owner", "--note", "counts look right"}).exit_code,
            0);
  sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("signoff SRE"));

  EXPECT_NE(f.Run({"signoff", "cutover", "--as", "sam", "--role", "SRE"}).exit_code, 0);  // unknown gate
  ASSERT_EQ(f.Run({"signoff", "switch", "--as", "sam", "--role", "SRE"}).exit_code, 0);
  auto g = f.Run({"gates", "--json"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto j = nlohmann::json::parse(g.out);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[1]["gate"], "switch");
  EXPECT_EQ(j[1]["passed"], true) << g.out;
  EXPECT_NE(j[1]["signoffs"][0].get<std::string>().find("dana"), std::string::npos) << g.out;

  ASSERT_EQ(f.Run({"switch"}).exit_code, 0);
  EXPECT_EQ(f.Live(), "new");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'signoff'"), "2");
}

TEST(Gates, StaleVerificationAndObservationWindow) {
  // Ages are made by moving recorded times back in the state tables, not by
  // sleeping: a slow run (sanitizer builds, a loaded machine) cannot change
  // the outcome, as it did when the windows were 1 s and 2 s of real time.
  Fixture f(R"(
gates:
  switch:
    max_verify_age_seconds: 600
  complete:
    observation_seconds: 600
)");
  auto sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("no verification recorded"));
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  // The backfill ended two hours ago, the verification one hour ago.
  f.Backdate("_sluice_events", "kind = 'backfill.done'", 7200);
  f.Backdate("_sluice_verifications", "", 3600);
  // The gates read the time the verification started from its report.
  ASSERT_EQ(f.Value("SELECT count(*) FROM _sluice_verifications WHERE json_extract(report, '$.at') IS NOT NULL"), "1");
  {
    auto s = f.m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE _sluice_verifications SET report = json_set(report, '$.at', at)"));
  }
  sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("old (max 10 min)"));
  EXPECT_EQ(f.Live(), "old");
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  ASSERT_EQ(f.Run({"switch"}).exit_code, 0);

  auto co = f.Run({"complete"});
  EXPECT_NE(co.exit_code, 0);
  EXPECT_THAT(co.err, ::testing::HasSubstr("observation window"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");
  f.Backdate("_sluice_events", "kind = 'switch'", 3600);
  co = f.Run({"complete"});
  ASSERT_EQ(co.exit_code, 0) << co.err;
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "complete");
}

TEST(Gates, SoakGateNeedsAShadowReadWindow) {
  Fixture f(R"(
verify:
  shadow_sample: 1
  validation_queries:
    - {name: by_id, table: orders, sql: "SELECT email FROM orders WHERE id = :key"}
gates:
  switch:
    soak_seconds: 1
)");
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  auto sw = f.Run({"switch"});
  EXPECT_NE(sw.exit_code, 0);
  EXPECT_THAT(sw.err, ::testing::HasSubstr("no soak recorded"));
  WatchOptions wo;
  wo.seconds = 1.2;
  wo.interval_seconds = 0.2;
  auto w = f.m->WatchShadowReads("001_lower", wo);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_TRUE(w->passed);
  sw = f.Run({"switch"});
  EXPECT_EQ(sw.exit_code, 0) << sw.err;
}

TEST(Gates, ABreachedAbortCriterionSwitchesReadsBack) {
  Fixture f(R"(
abort:
  max_error_rate: 0.1
  probe_query: SELECT 1 / ok FROM health WHERE (SELECT count(*) FROM health) = 1
)");
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  ASSERT_EQ(f.Run({"switch"}).exit_code, 0);
  // Healthy: nothing happens.
  auto calm = f.Run({"watch", "--duration", "0.5", "--interval", "0.2"});
  EXPECT_EQ(calm.exit_code, 0) << calm.err;
  EXPECT_EQ(f.Live(), "new");
  // The probe starts failing (its table is gone): the watch aborts.
  auto s = f.m->Connect("");
  SLUICE_ASSERT_OK((*s)->Exec("DROP TABLE health"));
  auto bad = f.Run({"watch", "--duration", "5", "--interval", "0.2"});
  EXPECT_EQ(bad.exit_code, 4) << bad.out << bad.err;
  EXPECT_THAT(bad.err, ::testing::HasSubstr("error rate"));
  EXPECT_EQ(f.Live(), "old");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'abort'"), "1");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'switch.back'"), "1");
}

}  // namespace
}  // namespace sluice::testing
