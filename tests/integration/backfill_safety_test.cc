// The backfill cannot hang and stops when told, through the real sluice
// binary on a real PostgreSQL server (issue 9, "Engine safety"):
//
//  * a signal query that hangs stalls neither the workers' stop nor
//    `status`: the reason names it, and the first SIGINT still stops the run;
//  * a signal query that hangs a few times is cancelled by its statement
//    timeout, counted as over its limit, and the backfill completes;
//  * the first SIGTERM stops every worker within one chunk, also while
//    paused, and exits with the cancel code;
//  * one worker's fatal error stops every worker, and the error names the
//    rows;
//  * sessions terminated by the server are reconnected and the backfill
//    completes with every row right.
//
// Every outcome is read from the database (checkpoints, chunk history,
// pg_stat_activity), never from sluice's own counters alone; waits are
// conditions polled with a deadline, never fixed sleeps.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "db/postgres/postgres_dialect.h"
#include "support/plans.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kPlan = kAddEmailLowerPlan;

// Waits for a spawned process to exit (a hang guard, not a timing
// assertion): its exit code, or -1 after it was killed for hanging.
int WaitExit(int pid, int seconds = 60) {
  int status = 0;
  if (!Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, seconds)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A PostgreSQL database with orders(id, email) of `rows` rows.
struct Pg {
  explicit Pg(int rows) {
    PgCluster* c = PgCluster::Shared();
    EXPECT_TRUE(c->ok()) << c->error();
    url = c->CreateDatabase("bfsafe");
    c->Psql(url, "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL); INSERT INTO orders SELECT i, "
                 "'User' || i || '@Example.COM' FROM generate_series(1, " +
                     std::to_string(rows) + ") i");
    Options o;
    o.db_url = url;
    o.actor = "test";
    auto mig = Migrator::Open(o);
    EXPECT_TRUE(mig.ok()) << mig.status().message();
    if (mig.ok()) m = std::move(*mig);
  }
  std::string Sql(const std::string& sql) { return PgCluster::Shared()->Psql(url, sql); }
  std::string Value(const std::string& sql) { return QueryValue(*m, sql, "001_lower"); }
  int64_t Chunks() { return std::stoll(Sql("SELECT count(*) FROM sluice.chunks")); }
  int64_t RowsDone() { return std::stoll(Sql("SELECT coalesce(sum(rows_done), 0) FROM sluice.checkpoints")); }
  std::string Throttle() { return Sql("SELECT coalesce(max(throttle), '') FROM sluice.control"); }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  }
  int Spawn(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return SpawnSluice(args, dir.path());
  }
  std::string Err() { return ReadFile(dir.File("spawn.err")); }
  bool StartPlan(const std::string& plan) {
    auto r = Sluice({"start", dir.Write("001_lower.yaml", plan)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0;
  }
  // Rows the checkpoints count as done whose email_lower is wrong, plus
  // rows they count as not done that were written anyway: 0 when the
  // checkpoints and the table agree.
  // By the base table: the new version is not usable while the backfill is
  // unfinished.
  std::string Inconsistent() {
    return Sql(
        "WITH c AS (SELECT (last_key::json->0->>1)::bigint AS lk, (high_key::json->0->>1)::bigint AS hk, "
        "coalesce(lag((high_key::json->0->>1)::bigint) OVER (ORDER BY worker), 0) AS lo FROM sluice.checkpoints) "
        "SELECT count(*) FROM orders o JOIN c ON o.id > c.lo AND o.id <= c.hk WHERE (o.id <= coalesce(c.lk, c.lo) "
        "AND o.email_lower IS DISTINCT FROM lower(o.email)) OR (o.id > coalesce(c.lk, c.lo) AND o.email_lower IS "
        "NOT NULL)");
  }
  std::string Mismatches() {
    return Value("SELECT count(*) FROM orders WHERE email_lower IS DISTINCT FROM lower(email)");
  }

  TempDir dir;
  std::string url;
  std::unique_ptr<Migrator> m;
};

// The hung-signal tests' table.
constexpr int kRows = 200000;

bool ServerHasStatementTimeouts() { return !db::PostgresDialect("public", "sluice").StatementTimeoutSql(1000).empty(); }

// (a) a custom signal whose query never returns; (b) the backfill is running
// with two workers; (c) the reason `status` shows names the signal, and the
// first SIGINT stops the process with the cancel code however long the
// query would run; (d) the checkpoints agree with the table, and once the
// signal answers again a rerun completes.
TEST(BackfillSafety, AHungSignalIsNamedAndTheFirstSigintStillStopsTheRun) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  // Rows enough that the backfill outlasts a few readings: 20,000 (100
  // chunks) could finish between the first reading and the control thread's
  // next report (250 ms), leaving "waiting for the first reading" in
  // `status` and nothing to interrupt.
  Pg db(kRows);
  ASSERT_TRUE(db.m);
  db.Sql("CREATE TABLE public.signal (v float8, hang bool); INSERT INTO public.signal VALUES (0, true)");
  std::string plan = std::string(kPlan) + R"(
backfill:
  workers: 2
  chunk_rows: 200
  chunk_max_rows: 200
  throttle:
    custom_sql: SELECT v FROM public.signal, pg_sleep(CASE WHEN hang THEN 3600 ELSE 0 END)
    custom_max: 10
)";
  ASSERT_TRUE(db.StartPlan(plan));
  int pid = db.Spawn({"backfill"});
  ASSERT_GT(pid, 0);
  // Either the server cancels the query at its statement timeout ("did not
  // answer within"), or sluice sees it run past it ("has not answered").
  ASSERT_TRUE(Eventually([&] {
    std::string t = db.Throttle();
    return t.find("custom signal") != std::string::npos && t.find("answer") != std::string::npos;
  })) << db.Throttle();
  int64_t before = db.Chunks();
  kill(pid, SIGINT);
  EXPECT_EQ(WaitExit(pid), 130) << db.Err();
  EXPECT_THAT(db.Err(), HasSubstr("interrupted"));
  EXPECT_LE(db.Chunks() - before, 2) << "more than one chunk per worker after the first SIGINT";
  EXPECT_EQ(db.Inconsistent(), "0");
  EXPECT_TRUE(Eventually([&] {
    return db.Sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice backfill'") == "0";
  }))
      << "a worker session outlived the process";
  if (ServerHasStatementTimeouts()) {
    // The hung signal query itself was cancelled by its statement timeout.
    EXPECT_TRUE(Eventually([&] {
      return db.Sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' AND pid <> "
                    "pg_backend_pid()") == "0";
    }));
  } else {
    // Without a server-side timeout the orphaned query runs on: end it.
    db.Sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' AND "
           "pid <> pg_backend_pid()");
  }
  db.Sql("UPDATE public.signal SET hang = false");
  auto r = db.Sluice({"backfill"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Sql("SELECT sum(rows) FROM sluice.chunks"), std::to_string(kRows));
}

// (a) a custom signal that hangs on its first two readings only; (b) each
// is cancelled by the statement timeout and shown as "did not answer within
// 2000 ms"; (c) the pace recovers and the backfill completes with every row
// right; (d) no hung query is left on the server.
TEST(BackfillSafety, AHungSignalIsCancelledByItsTimeoutAndTheBackfillCompletes) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  if (!ServerHasStatementTimeouts()) {
    GTEST_SKIP() << "Dialect::StatementTimeoutSql is not implemented for PostgreSQL on this branch";
  }
  Pg db(kRows);  // as above: the run outlasts the second reading
  ASSERT_TRUE(db.m);
  db.Sql("CREATE SEQUENCE public.readings");
  std::string plan = std::string(kPlan) + R"(
backfill:
  workers: 2
  chunk_rows: 200
  chunk_max_rows: 200
  throttle:
    custom_sql: SELECT 0 FROM pg_sleep(CASE WHEN nextval('public.readings') <= 2 THEN 3600 ELSE 0 END)
    custom_max: 10
)";
  ASSERT_TRUE(db.StartPlan(plan));
  int pid = db.Spawn({"backfill"});
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(Eventually([&] {
    return db.Throttle().find("custom signal did not answer within 2000 ms") != std::string::npos;
  })) << db.Throttle();
  EXPECT_EQ(WaitExit(pid, 300), 0) << db.Err();
  // The first reading came back (cancelled by the server) and the signal
  // was read again.
  EXPECT_GE(std::stoll(db.Sql("SELECT last_value FROM public.readings")), 2);
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Sql("SELECT sum(rows) FROM sluice.chunks"), std::to_string(kRows));
  EXPECT_EQ(db.Sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' AND pid <> "
                   "pg_backend_pid()"),
            "0");
}

// (a) two workers, chunks paced by a rate limit; (b) the first SIGTERM;
// (c) the process exits with the cancel code after at most the chunk each
// worker had in flight, records the stop, leaves no session behind; (d) the
// checkpoints agree with the table and a rerun finishes the work.
TEST(BackfillSafety, TheFirstSigtermStopsEveryWorkerWithinOneChunk) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  Pg db(100000);
  ASSERT_TRUE(db.m);
  ASSERT_TRUE(db.StartPlan(kPlan));
  int pid = db.Spawn({"backfill", "--workers", "2", "--rate", "5000", "--chunk-rows", "500"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Eventually([&] { return db.Sql("SELECT count(DISTINCT worker) FROM sluice.chunks") == "2"; }))
      << db.Err();
  int64_t before = db.Chunks();
  kill(pid, SIGTERM);
  EXPECT_EQ(WaitExit(pid), 130) << db.Err();
  int64_t after = db.Chunks();
  EXPECT_LE(after - before, 2) << "more than one chunk per worker after SIGTERM";
  EXPECT_LT(db.RowsDone(), 100000);
  EXPECT_TRUE(Eventually([&] {
    return db.Sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice backfill'") == "0";
  }));
  EXPECT_EQ(db.Sql("SELECT count(*) FROM sluice.events WHERE kind = 'backfill.paused'"), "1");
  EXPECT_EQ(db.Inconsistent(), "0");
  EXPECT_EQ(db.Chunks(), after) << "a chunk was committed after the process exited";
  auto r = db.Sluice({"backfill", "--workers", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Sql("SELECT sum(rows) FROM sluice.chunks"), "100000");
}

// (a) a paused backfill with two workers; (b) SIGTERM; (c) it exits with the
// cancel code at once, without writing another chunk.
TEST(BackfillSafety, SigtermWhilePausedExitsWithoutWritingAChunk) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  Pg db(60000);
  ASSERT_TRUE(db.m);
  ASSERT_TRUE(db.StartPlan(kPlan));
  int pid = db.Spawn({"backfill", "--workers", "2", "--rate", "5000", "--chunk-rows", "500"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Eventually([&] { return db.Chunks() > 0; })) << db.Err();
  ASSERT_EQ(db.Sluice({"pause", "001_lower"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return db.Throttle().find("paused") != std::string::npos; })) << db.Throttle();
  // The pause was seen; a chunk each worker had in flight may still land.
  // Then nothing: a status round trip later the count has not moved.
  int64_t paused = db.Chunks();
  ASSERT_EQ(db.Sluice({"status"}).exit_code, 0);
  EXPECT_LE(db.Chunks() - paused, 2);
  paused = db.Chunks();
  kill(pid, SIGTERM);
  EXPECT_EQ(WaitExit(pid), 130) << db.Err();
  EXPECT_EQ(db.Chunks(), paused);
  EXPECT_EQ(db.Inconsistent(), "0");
}

// (a) a plan whose `up` fails on one row 4,000 rows into the second of
// eight partitions; (b) two workers; (c) the run fails with that error,
// naming the table and a key range holding the row; (d) the other worker
// stopped too: its partition is unfinished and it committed at most a few
// chunks after the failing worker's last one; (e) checkpoints agree with
// the table, and the failure is in the audit log.
TEST(BackfillSafety, OneWorkersFatalErrorStopsEveryWorkerAndNamesTheRows) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  Pg db(100000);
  ASSERT_TRUE(db.m);
  // on_error: fail: the row's error stops the backfill (under record, the
  // default, it would be recorded and the backfill would go on).
  std::string plan = R"(
dual_write: {on_error: fail}
operations:
  - add_column:
      table: orders
      up: CASE WHEN id = 16500 THEN (1 / (id - 16500))::text ELSE lower(email) END
      column: {name: email_lower, type: TEXT, nullable: true}
backfill:
  chunk_rows: 200
  chunk_min_rows: 200
  chunk_max_rows: 200
)";
  ASSERT_TRUE(db.StartPlan(plan));
  auto r = db.Sluice({"backfill", "--workers", "2"});
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.exit_code, 130) << r.err;
  EXPECT_THAT(r.err, HasSubstr("division by zero"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(backfill of orders rows after \('?(\d+)'?\) through \('?(\d+)'?\))")))
      << r.err;
  EXPECT_LT(std::stoll(m[1]), 16500);
  EXPECT_GE(std::stoll(m[2]), 16500);
  // Partition 1 ((12500, 25000]) failed; partition 0 was being walked by the
  // other worker, which stopped with it.
  EXPECT_EQ(db.Sql("SELECT (last_key::json->0->>1)::bigint < 16500 FROM sluice.checkpoints WHERE worker = 1"), "t");
  EXPECT_EQ(db.Sql("SELECT done FROM sluice.checkpoints WHERE worker = 0"), "0");
  EXPECT_EQ(db.Sql("SELECT count(*) FROM sluice.checkpoints WHERE done = 1"), "0");
  EXPECT_LE(std::stoll(db.Sql("SELECT count(*) FROM sluice.chunks WHERE worker <> 1 AND committed_at > (SELECT "
                              "max(committed_at) FROM sluice.chunks WHERE worker = 1)")),
            3);
  EXPECT_EQ(db.Inconsistent(), "0");
  EXPECT_EQ(db.Sql("SELECT count(*) FROM sluice.events WHERE kind = 'backfill.error' AND message LIKE '%division by "
                   "zero%'"),
            "1");
}

// (a) two workers; (b) the server terminates every session of the database
// three times during the run (pg_terminate_backend, as an administrator or
// a failover would); (c) the backfill reconnects, re-reads its checkpoints
// and completes; (d) every row is right and every key range was committed
// once.
TEST(BackfillSafety, TerminatedSessionsAreReconnectedAndTheBackfillCompletes) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  Pg db(100000);
  ASSERT_TRUE(db.m);
  ASSERT_TRUE(db.StartPlan(kPlan));
  int pid = db.Spawn({"backfill", "--workers", "2", "--rate", "20000", "--chunk-rows", "500"});
  ASSERT_GT(pid, 0);
  int terminated = 0;
  for (int round = 0; round < 3; ++round) {
    int64_t done = db.RowsDone();
    ASSERT_TRUE(Eventually([&] { return db.RowsDone() > done; })) << db.Err();
    // Rounds 0 and 2 end the workers' sessions; round 1 every session of
    // the database (the throttle's and the lock holder's too).
    terminated += std::stoi(db.Sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid "
        "<> pg_backend_pid() AND backend_type = 'client backend'" +
        std::string(round == 1 ? "" : " AND application_name = 'sluice backfill'")));
  }
  EXPECT_GE(terminated, 3);
  EXPECT_EQ(WaitExit(pid, 300), 0) << db.Err();
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Sql("SELECT sum(rows) FROM sluice.chunks"), "100000");
  EXPECT_EQ(db.Sql("SELECT bool_and(done = 1) FROM sluice.checkpoints"), "t");
  // Per partition, chunk n starts exactly where chunk n-1 ended.
  EXPECT_EQ(db.Sql("SELECT count(*) FROM sluice.chunks c JOIN sluice.chunks p ON p.worker = c.worker AND p.chunk = "
                   "c.chunk - 1 WHERE c.from_key <> p.to_key"),
            "0");
}

}  // namespace
}  // namespace sluice::testing
