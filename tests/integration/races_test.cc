// Racing sluice processes (issue 9, engine safety): two operators starting
// different plans on one table, complete racing rollback, a backfill racing
// rollback, an automatic abort racing complete, two completes, switch racing
// switch back. Each race is run with real
// `sluice` processes against a real database; exactly one side may win, the
// other gets a clear error, and the database is checked by SQL to be in the
// state the winner left it in (never a mix).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr const char* kSetup = R"(
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, score text);
INSERT INTO customers SELECT g, 'c' || g, (g % 50)::text FROM generate_series(1, 2000) g;
)";

// Two plans that both change `customers`.
constexpr const char* kScorePlan = R"(
name: a_score
operations:
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
)";
constexpr const char* kNickPlan = R"(
name: b_nick
operations:
  - add_column:
      table: customers
      up: upper(name)
      column:
        name: nick
        type: text
        nullable: true
)";

PgCluster* Pg() { return PgCluster::Shared(); }

// A sluice process running in the background.
struct Proc {
  int pid = -1;
  std::unique_ptr<TempDir> io = std::make_unique<TempDir>();
  CommandResult Wait() {
    CommandResult r;
    r.exit_code = WaitProcess(pid);
    r.out = ReadFile(io->File("spawn.out"));
    r.err = ReadFile(io->File("spawn.err"));
    return r;
  }
};

Proc Spawn(const std::string& url, std::vector<std::string> verb) {
  std::vector<std::string> a = {"--db", url, "--actor", "test", "--lock-timeout-ms", "3000"};
  a.insert(a.end(), verb.begin(), verb.end());
  Proc p;
  p.pid = SpawnSluice(a, p.io->path());
  return p;
}

CommandResult RunCli(const std::string& url, std::vector<std::string> verb) {
  std::vector<std::string> a = {"--db", url, "--actor", "test"};
  a.insert(a.end(), verb.begin(), verb.end());
  return RunSluice(a);
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// Waits until `sql` returns "t" (at most `seconds`).
bool WaitFor(const std::string& url, const std::string& sql, int seconds = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string v, err;
    if (Pg()->TryPsql(url, sql, &v, &err) && v == "t") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string Phase(const std::string& url, const std::string& name) {
  std::string p = Pg()->Psql(url, "SELECT phase FROM sluice.migrations WHERE name = '" + name + "'");
  return p.empty() ? "none" : p;
}

// (a) Two operators start different plans that both change `customers`.
// (b) A session holds a lock on the table, so both processes are inside
//     their start transactions at the same time, waiting.
// (c) The lock goes; exactly one start succeeds, the other is refused
//     naming the winner, and only the winner's objects exist.
TEST(PgRaces, TwoStartsOfDifferentPlansOnOneTableExactlyOneWins) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  const std::string url = c->CreateDatabase("race_start");
  ASSERT_FALSE(url.empty());
  c->Psql(url, kSetup);
  // Neither has created sluice's state tables yet: they race for that too.
  auto m = OpenUrl(url);
  ASSERT_TRUE(m);
  TempDir dir;
  const std::string a = dir.Write("a_score.yaml", kScorePlan), b = dir.Write("b_nick.yaml", kNickPlan);
  std::string winner, loser_plan;
  {
    auto blocker = m->Connect("");
    ASSERT_TRUE(blocker.ok()) << blocker.status().message();
    SLUICE_ASSERT_OK((*blocker)->Exec("BEGIN; LOCK TABLE customers IN SHARE MODE"));
    Proc pa = Spawn(url, {"start", a});
    Proc pb = Spawn(url, {"start", b});
    // Both are inside their start transactions, waiting on a lock (the
    // table, or the other's claim on it).
    ASSERT_TRUE(WaitFor(url,
                        "SELECT count(DISTINCT pid) >= 2 FROM pg_stat_activity WHERE application_name LIKE "
                        "'sluice pid%' AND wait_event_type = 'Lock'"))
        << "the two starts never waited at the same time";
    SLUICE_ASSERT_OK((*blocker)->Exec("ROLLBACK"));
    CommandResult ra = pa.Wait(), rb = pb.Wait();
    ASSERT_NE(ra.exit_code == 0, rb.exit_code == 0) << "A: " << Describe(ra) << "\nB: " << Describe(rb);
    const bool a_won = ra.exit_code == 0;
    winner = a_won ? "a_score" : "b_nick";
    loser_plan = a_won ? b : a;
    const CommandResult& loser = a_won ? rb : ra;
    EXPECT_THAT(loser.err, AnyOf(HasSubstr("is being changed by migration '" + std::string(a_won ? "a_score" : "b_nick")),
                                 HasSubstr("was claimed by another migration")))
        << Describe(loser);
    EXPECT_THAT(loser.err, HasSubstr("sluice: error:"));
    // Only the winner exists, owns the table, and its dual-write works.
    EXPECT_EQ(Phase(url, a_won ? "a_score" : "b_nick"), "active");
    EXPECT_EQ(Phase(url, a_won ? "b_nick" : "a_score"), "none");
    EXPECT_EQ(c->Psql(url, "SELECT string_agg(tbl || '=' || migration, ',') FROM sluice.claims"),
              std::string("customers=") + (a_won ? "a_score" : "b_nick"));
    EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND NOT "
                           "tgisinternal AND tgname LIKE '%" + std::string(a_won ? "b_nick" : "a_score") + "%'"),
              "0");
    EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = "
                           "'" + std::string(a_won ? "nick" : "_sluice_new_score") + "'"),
              "0");
    c->Psql(url, "UPDATE customers SET score = '77', name = 'zed' WHERE id = 1");
    if (a_won) {
      EXPECT_EQ(c->Psql(url, "SELECT _sluice_new_score FROM customers WHERE id = 1"), "77");
    } else {
      EXPECT_EQ(c->Psql(url, "SELECT nick FROM customers WHERE id = 1"), "ZED");
    }
  }
  // The loser can go once the winner is rolled back.
  CommandResult rb = RunCli(url, {"rollback", winner});
  ASSERT_EQ(rb.exit_code, 0) << Describe(rb);
  CommandResult again = RunCli(url, {"start", loser_plan});
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
}

// Brings `customers` to a verified, switched migration a_score.
void StartedAndVerified(const std::string& url, const TempDir& dir) {
  auto m = OpenUrl(url);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("a_score.yaml", kScorePlan)));
  ASSERT_TRUE(m->Backfill("a_score", {}).ok());
  auto v = m->Verify("a_score");
  ASSERT_TRUE(v.ok() && v->passed) << (v.ok() ? v->json : v.status().message());
}

// (a) A verified migration; (b) one operator completes it while another
// rolls it back, at the same moment; (c) exactly one wins and the database
// is entirely in the winner's state: contracted (score is an integer column,
// no sluice objects) or rolled back (the catalog as before start).
TEST(PgRaces, CompleteRacingRollbackLeavesExactlyOneOutcome) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string url = c->CreateDatabase("race_cr");
    ASSERT_FALSE(url.empty());
    c->Psql(url, kSetup);
    const std::string before = c->Psql(url, kPgFingerprintSql);
    TempDir dir;
    StartedAndVerified(url, dir);
    // Alternate who is spawned first.
    Proc first = Spawn(url, {round % 2 ? "rollback" : "complete", "a_score"});
    Proc second = Spawn(url, {round % 2 ? "complete" : "rollback", "a_score"});
    CommandResult r1 = first.Wait(), r2 = second.Wait();
    ASSERT_NE(r1.exit_code == 0, r2.exit_code == 0) << Describe(r1) << "\n" << Describe(r2);
    const CommandResult& loser = r1.exit_code == 0 ? r2 : r1;
    EXPECT_THAT(loser.err, HasSubstr("sluice: error:"));
    const std::string phase = Phase(url, "a_score");
    ASSERT_THAT(phase, AnyOf("complete", "rolled_back"));
    if (phase == "complete") {
      EXPECT_EQ(c->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                             "'customers'::regclass AND attname = 'score'"),
                "integer");
      EXPECT_EQ(c->Psql(url, "SELECT sum(score) FROM customers"), c->Psql(url, "SELECT sum(g % 50) FROM "
                                                                               "generate_series(1, 2000) g"));
      EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND NOT "
                             "tgisinternal"),
                "0");
    } else {
      EXPECT_EQ(c->Psql(url, kPgFingerprintSql), before);
      EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM customers WHERE score = ((id % 50)::text)"), "2000");
    }
    EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM sluice.claims"), "0");
  }
}

// (a) A backfill runs slowly; (b) a rollback is attempted meanwhile: it is
// refused, naming the backfill's process, and changes nothing; (c) once the
// backfill is stopped, the rollback succeeds and the catalog is as before.
TEST(PgRaces, RollbackIsRefusedWhileTheBackfillRunsAndWorksAfterIt) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  const std::string url = c->CreateDatabase("race_br");
  ASSERT_FALSE(url.empty());
  c->Psql(url, "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, score text); INSERT INTO "
               "customers SELECT g, 'c' || g, (g % 50)::text FROM generate_series(1, 100000) g");
  const std::string before = c->Psql(url, kPgFingerprintSql);
  TempDir dir;
  ASSERT_EQ(RunCli(url, {"start", dir.Write("a_score.yaml", kScorePlan)}).exit_code, 0);
  Proc bf = Spawn(url, {"backfill", "a_score", "--rate", "2000"});
  ASSERT_TRUE(WaitFor(url, "SELECT coalesce(sum(rows_done), 0) > 0 FROM sluice.checkpoints"));
  const std::string mid = c->Psql(url, kPgFingerprintSql);
  CommandResult rb = RunCli(url, {"rollback", "a_score"});
  EXPECT_NE(rb.exit_code, 0) << Describe(rb);
  EXPECT_THAT(rb.err, HasSubstr("being worked on by another sluice process"));
  EXPECT_EQ(Phase(url, "a_score"), "active");
  EXPECT_EQ(c->Psql(url, kPgFingerprintSql), mid);
  kill(bf.pid, SIGTERM);
  CommandResult stopped = bf.Wait();
  EXPECT_NE(stopped.exit_code, 0) << Describe(stopped);
  CommandResult rb2 = RunCli(url, {"rollback", "a_score"});
  ASSERT_EQ(rb2.exit_code, 0) << Describe(rb2);
  EXPECT_EQ(c->Psql(url, kPgFingerprintSql), before);
  // And a backfill started after the rollback refuses: the migration is gone.
  CommandResult late = RunCli(url, {"backfill", "a_score"});
  EXPECT_NE(late.exit_code, 0);
  EXPECT_THAT(late.err, HasSubstr("rolled_back"));
}

// (a) After the switch, `watch` breaches its abort criterion on the first
// round and switches back, while (b) an operator completes. Whatever the
// order, the recorded phase and the catalog agree: either the migration is
// complete (and the watch was refused), or reads are back on the old
// version and the migration is still active, or complete ran after the
// abort (complete performs its own switch).
TEST(PgRaces, AbortWatchRacingCompleteAgreesWithTheCatalog) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  const std::string url = c->CreateDatabase("race_wc");
  ASSERT_FALSE(url.empty());
  c->Psql(url, kSetup);
  TempDir dir;
  const std::string plan = std::string(kScorePlan) + "abort:\n  probe_query: SELECT 1/0\n  max_error_rate: 0\n";
  auto m = OpenUrl(url);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("a_score.yaml", plan)));
  ASSERT_TRUE(m->Backfill("a_score", {}).ok());
  ASSERT_TRUE(m->Verify("a_score").ok());
  SLUICE_ASSERT_OK(m->Switch("a_score", false));
  Proc w = Spawn(url, {"watch", "a_score", "--duration", "5", "--interval", "1"});
  Proc cp = Spawn(url, {"complete", "a_score"});
  CommandResult rw = w.Wait(), rc = cp.Wait();
  const std::string phase = Phase(url, "a_score");
  const std::string live = c->Psql(url, "SELECT live FROM sluice.migrations WHERE name = 'a_score'");
  const std::string score_type = c->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                                              "attrelid = 'customers'::regclass AND attname = 'score'");
  if (phase == "complete") {
    EXPECT_EQ(rc.exit_code, 0) << Describe(rc);
    EXPECT_EQ(score_type, "integer");
    EXPECT_EQ(live, "new");
  } else {
    ASSERT_EQ(phase, "active") << Describe(rw) << "\n" << Describe(rc);
    EXPECT_NE(rc.exit_code, 0) << Describe(rc);
    EXPECT_EQ(live, "old");
    EXPECT_EQ(score_type, "text");
    // The live alias really reads the old shape again.
    EXPECT_EQ(c->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                           "'public_live.customers'::regclass AND attname = 'score'"),
              "text");
  }
  EXPECT_EQ(rw.exit_code == 0 || rw.exit_code == 4 || rw.err.find("sluice: error:") != std::string::npos, true)
      << Describe(rw);
}

// (a) A verified migration; (b) two operators complete it at the same
// moment; (c) the table is contracted exactly once (one complete event,
// score an integer with the right values); an overlapping second complete
// is refused, a later one finds nothing to do.
TEST(PgRaces, TwoCompletesExactlyOneWins) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  const std::string url = c->CreateDatabase("race_cc");
  ASSERT_FALSE(url.empty());
  c->Psql(url, kSetup);
  TempDir dir;
  StartedAndVerified(url, dir);
  Proc a = Spawn(url, {"complete", "a_score"});
  Proc b = Spawn(url, {"complete", "a_score"});
  CommandResult ra = a.Wait(), rb = b.Wait();
  // Both may succeed only one after the other (a complete of a completed
  // migration is a no-op rerun); when they overlap, one is refused.
  ASSERT_TRUE(ra.exit_code == 0 || rb.exit_code == 0) << Describe(ra) << "\n" << Describe(rb);
  for (const CommandResult* r : {&ra, &rb}) {
    if (r->exit_code != 0) {
      EXPECT_THAT(r->err, HasSubstr("sluice: error:")) << Describe(*r);
    }
  }
  EXPECT_EQ(Phase(url, "a_score"), "complete");
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM sluice.events WHERE migration = 'a_score' AND kind = 'complete'"),
            "1")
      << "contracted twice";
  EXPECT_EQ(c->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                         "'customers'::regclass AND attname = 'score'"),
            "integer");
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM customers WHERE score = id % 50"), "2000");
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM sluice.claims"), "0");
}

// (a) A verified migration; (b) one operator switches reads to the new
// version while another switches them back, over several rounds; (c) every
// time, the recorded live version and what the live alias really reads
// agree, and the migration stays active.
TEST(PgRaces, SwitchRacingSwitchBackAgreesWithTheCatalog) {
  PgCluster* c = Pg();
  SLUICE_ASSERT_PG_OK(c);
  const std::string url = c->CreateDatabase("race_sw");
  ASSERT_FALSE(url.empty());
  c->Psql(url, kSetup);
  TempDir dir;
  StartedAndVerified(url, dir);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Proc fwd = Spawn(url, {"switch", "a_score"});
    Proc back = Spawn(url, {"switch", "a_score", "--back"});
    CommandResult rf = fwd.Wait(), rbk = back.Wait();
    EXPECT_THAT(rf.exit_code, AnyOf(0, 5, 7)) << Describe(rf);
    EXPECT_THAT(rbk.exit_code, AnyOf(0, 5, 7)) << Describe(rbk);
    EXPECT_EQ(Phase(url, "a_score"), "active");
    const std::string live = c->Psql(url, "SELECT live FROM sluice.migrations WHERE name = 'a_score'");
    ASSERT_THAT(live, AnyOf("old", "new"));
    EXPECT_EQ(c->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                           "'public_live.customers'::regclass AND attname = 'score'"),
              live == "new" ? "integer" : "text")
        << Describe(rf) << "\n" << Describe(rbk);
  }
}

// SQLite: two processes start different plans on one table; the single
// write transaction serialises them and the second is refused.
TEST(SqliteRaces, TwoStartsOfDifferentPlansOnOneTableExactlyOneWins) {
  TempDir dir;
  const std::string db = dir.File("race.db");
  {
    auto m = OpenSqlite(db);
    ASSERT_TRUE(m);
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score TEXT);"
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000) "
        "INSERT INTO customers SELECT i, 'c' || i, i % 50 FROM g"));
  }
  const std::string url = "sqlite:" + db;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string sqlite_plan = kScorePlan;
    sqlite_plan.replace(sqlite_plan.find("score::integer"), 14, "CAST(score AS INTEGER)");
    sqlite_plan.replace(sqlite_plan.find("score::text"), 11, "CAST(score AS TEXT)");
    Proc pa = Spawn(url, {"start", dir.Write("a_score.yaml", sqlite_plan)});
    Proc pb = Spawn(url, {"start", dir.Write("b_nick.yaml", kNickPlan)});
    CommandResult ra = pa.Wait(), rb = pb.Wait();
    ASSERT_NE(ra.exit_code == 0, rb.exit_code == 0) << Describe(ra) << "\n" << Describe(rb);
    const std::string winner = ra.exit_code == 0 ? "a_score" : "b_nick";
    const CommandResult& loser = ra.exit_code == 0 ? rb : ra;
    EXPECT_THAT(loser.err, HasSubstr("is being changed by migration '" + winner + "'")) << Describe(loser);
    auto m = OpenSqlite(db, false);
    ASSERT_TRUE(m);
    EXPECT_EQ(QueryValue(*m, "SELECT group_concat(name || '=' || phase) FROM _sluice_migrations WHERE phase = "
                             "'active'"),
              winner + "=active");
    EXPECT_EQ(QueryValue(*m, "SELECT group_concat(tbl || '=' || migration) FROM _sluice_claims"),
              "customers=" + winner);
    ASSERT_EQ(RunCli(url, {"rollback", winner}).exit_code, 0);
    EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM _sluice_claims"), "0");
  }
}

}  // namespace
}  // namespace sluice::testing
