// The backfill as an operator drives it, through the real sluice binary on
// real databases: pause / tune / resume from a second process, throttling by
// a production signal and by time windows, parallel workers, SIGKILL at
// random moments, and a PostgreSQL server restart in the middle of a run.
// Results are checked with SQL against the database, never with sluice's
// own counters alone.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/clock.h"
#include "db/postgres/postgres_dialect.h"
#include "support/plans.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPlan = kAddEmailLowerPlan;

// A database under test: SQLite file or PostgreSQL database.
struct Db {
  std::string url;
  std::unique_ptr<Migrator> m;
  bool pg = false;

  std::string Value(const std::string& sql, const std::string& version = "") { return QueryValue(*m, sql, version); }
  std::string State(const std::string& table) const { return pg ? "sluice." + table : "_sluice_" + table; }
  int64_t RowsDone() {
    std::string v = Value("SELECT coalesce(sum(rows_done), 0) FROM " + State("checkpoints"));
    return v.empty() ? 0 : std::stoll(v);
  }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  }
  int Spawn(std::vector<std::string> args, const std::string& dir) {
    args.insert(args.begin(), {"--db", url});
    return SpawnSluice(args, dir);
  }
  nlohmann::json Status() {
    auto r = Sluice({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_array()) << r.out;
    return j.is_array() && !j.empty() ? j.back() : nlohmann::json::object();
  }
  // Rows of the new version whose email_lower is not lower(email).
  std::string Mismatches() {
    return Value("SELECT count(*) FROM orders WHERE email_lower IS NULL OR email_lower <> lower(email)", "001_lower");
  }
};

Db SqliteDb(const TempDir& dir, int rows) {
  Db d;
  d.url = "sqlite:" + dir.File("app.db");
  d.m = OpenSqlite(dir.File("app.db"));
  auto s = d.m->Connect("");
  EXPECT_TRUE(s.ok());
  SLUICE_EXPECT_OK((*s)->Exec(
      "PRAGMA journal_mode = WAL; CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
      std::to_string(rows) + ") INSERT INTO orders SELECT i, 'User' || i || '@Example.COM' FROM n;"));
  return d;
}

Db PgDb(int rows) {
  Db d;
  d.pg = true;
  PgCluster* c = PgCluster::Shared();
  EXPECT_TRUE(c->ok()) << c->error();
  d.url = c->CreateDatabase("bf");
  c->Psql(d.url, "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL); INSERT INTO orders SELECT i, "
                 "'User' || i || '@Example.COM' FROM generate_series(1, " +
                     std::to_string(rows) + ") i; CREATE TABLE signal (v float8); INSERT INTO signal VALUES (0); "
                     "CREATE SEQUENCE readings");
  Options o;
  o.db_url = d.url;
  o.actor = "test";
  auto m = Migrator::Open(o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (m.ok()) d.m = std::move(*m);
  return d;
}

int64_t Count(Db& db, const std::string& sql) {
  std::string v = db.Value(sql);
  return v.empty() ? 0 : std::stoll(v);
}

// Pause, tune and resume a running backfill from a second process. Once the
// backfill reports "paused" (its Pacer read the control row), each of the
// `workers` commits at most the chunk it had in flight, for as long as
// `observe` lasts.
void PauseTuneResume(Db& db, const TempDir& dir, std::vector<std::string> extra, int workers,
                     const std::string& plan, const std::function<void()>& observe) {
  auto st = db.Sluice({"start", dir.Write("001_lower.yaml", plan)});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  std::vector<std::string> args = {"backfill", "--rate", "20000", "--chunk-rows", "500"};
  args.insert(args.end(), extra.begin(), extra.end());
  int pid = db.Spawn(args, dir.path());
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Eventually([&] { return db.RowsDone() > 0; })) << "the backfill never committed a chunk";

  auto p = db.Sluice({"pause", "001_lower"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  nlohmann::json s;
  ASSERT_TRUE(Eventually([&] {
    s = db.Status();
    return s["backfill"]["throttle"].get<std::string>().find("paused") != std::string::npos;
  })) << s.dump();
  const std::string chunks = "SELECT count(*) FROM " + db.State("chunks");
  int64_t held = Count(db, chunks);
  EXPECT_EQ(s["backfill"]["paused"], true) << s.dump();
  EXPECT_EQ(s["backfill"]["state"], "running") << s.dump();

  // Tune while paused: a lower rate caps the chunk size at half a second of
  // rows, which the chunk history shows once the backfill resumes.
  auto t = db.Sluice({"tune", "001_lower", "--rate", "2000"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  ASSERT_TRUE(db.Status()["backfill"]["paused"].get<bool>());
  observe();
  EXPECT_LE(Count(db, chunks) - held, workers) << "the backfill kept writing after it reported `paused`";
  held = Count(db, chunks);
  // Taken before the resume (the chunks are stamped with the same wall
  // clock): reading max(committed_at) after it raced the resumed backfill,
  // which on a loaded machine could commit its chunks before the read.
  const std::string resumed_at = NowIso();
  auto r = db.Sluice({"resume", "001_lower"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return Count(db, chunks) >= held + 4; })) << "the backfill did not resume";
  // Chunks committed after the resume are at most 2000/2 rows.
  EXPECT_EQ(db.Value("SELECT count(*) FROM " + db.State("chunks") + " WHERE committed_at > '" + resumed_at +
                     "' AND rows > 1000"),
            "0");
  EXPECT_NE(db.Value("SELECT count(*) FROM " + db.State("chunks") + " WHERE committed_at > '" + resumed_at + "'"), "0");
  s = db.Status();
  EXPECT_EQ(s["backfill"]["tuned"]["max_rows_per_second"], 2000.0) << s.dump();
  EXPECT_EQ(s["backfill"]["paused"], false) << s.dump();

  // Lift the limit; the backfill finishes on its own.
  t = db.Sluice({"tune", "001_lower", "--rate", "0"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Value("SELECT count(*) FROM orders"), db.Value("SELECT sum(rows_total) FROM " + db.State("checkpoints")));
  // The audit log recorded each operator action.
  EXPECT_EQ(db.Value("SELECT count(*) FROM " + db.State("events") +
                     " WHERE kind IN ('backfill.pause', 'backfill.resume', 'backfill.tune')"),
            "4");
}

TEST(BackfillControl, SqlitePauseTuneResumeFromAnotherProcess) {
  TempDir dir;
  Db db = SqliteDb(dir, 120000);
  // An observation window: a SQLite signal query cannot count its own
  // readings, so nothing but time can show that nothing happens.
  PauseTuneResume(db, dir, {}, 1, kPlan, [] { std::this_thread::sleep_for(1500ms); });
}

TEST(BackfillControl, PostgresPauseTuneResumeWithWorkers) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  TempDir dir;
  Db db = PgDb(120000);
  ASSERT_TRUE(db.m);
  // A signal that never throttles but counts its readings: the Pacer keeps
  // reading signals while paused, so "four readings later" is a window
  // defined by the backfill's own activity.
  std::string plan = std::string(kPlan) + R"(
backfill:
  throttle:
    custom_sql: SELECT 0 FROM nextval('public.readings')
    custom_max: 10
)";
  PauseTuneResume(db, dir, {"--workers", "2"}, 2, plan, [&] {
    int64_t readings = Count(db, "SELECT last_value FROM public.readings");
    EXPECT_TRUE(Eventually([&] { return Count(db, "SELECT last_value FROM public.readings") >= readings + 4; }));
  });
  // Parallel workers walked disjoint partitions: together they cover every
  // row exactly once.
  EXPECT_EQ(db.Value("SELECT count(DISTINCT worker) > 1 FROM sluice.chunks"), "t");
  EXPECT_EQ(db.Value("SELECT sum(rows) FROM sluice.chunks"), "120000");
}

TEST(BackfillControl, CustomSignalThrottlesAndRecovers) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  TempDir dir;
  Db db = PgDb(60000);
  ASSERT_TRUE(db.m);
  std::string plan = std::string(kPlan) + R"(
backfill:
  chunk_rows: 200
  chunk_max_rows: 200
  max_rows_per_second: 5000
  throttle:
    custom_sql: SELECT v FROM public.signal, nextval('public.readings')
    custom_max: 10
    probe_slowdown: 0  # only the test's signal: the probe would follow the machine's load
)";
  // Each reading of the signal takes a number: the test counts readings.
  ASSERT_EQ(db.Sluice({"start", dir.Write("001_lower.yaml", plan)}).exit_code, 0);
  int pid = db.Spawn({"backfill"}, dir.path());
  // The rate is measured by SQL from the chunks' rows and commit times, in
  // windows bounded by the database's clock, never from sluice's counters.
  const std::string chunks = "SELECT count(*) FROM sluice.chunks";
  auto mark = [&] { return db.Value("SELECT clock_timestamp()::text"); };
  auto rate = [&](const std::string& from, const std::string& to) {
    return std::stod(db.Value("SELECT coalesce(sum(rows), 0) / extract(epoch FROM '" + to + "'::timestamptz - '" +
                              from + "'::timestamptz) FROM sluice.chunks WHERE committed_at::timestamptz > '" + from +
                              "' AND committed_at::timestamptz <= '" + to + "'"));
  };
  // After the first half second (the rate limit's bucket starts full).
  ASSERT_TRUE(Eventually([&] { return Count(db, chunks) >= 15; }));
  const std::string before_from = mark();
  ASSERT_TRUE(Eventually([&] { return Count(db, chunks) >= 30; }));
  const double before = rate(before_from, mark());
  db.Value("UPDATE signal SET v = 100 RETURNING v");
  ASSERT_TRUE(Eventually([&] {
    return db.Status()["backfill"]["throttle"].get<std::string>().find("custom signal 100") != std::string::npos;
  })) << db.Status().dump();
  // Slowing down is not enough while the signal stays high: progress stops.
  ASSERT_TRUE(Eventually([&] {
    return db.Status()["backfill"]["throttle"].get<std::string>().find("holding") != std::string::npos;
  })) << db.Status().dump();
  // Held: four more readings of the signal later, no chunk beyond the one
  // that may have been in flight.
  const std::string held_from = mark();
  int64_t chunks_held = Count(db, chunks), held = db.RowsDone();
  int64_t readings = Count(db, "SELECT last_value FROM public.readings");
  ASSERT_TRUE(Eventually([&] { return Count(db, "SELECT last_value FROM public.readings") >= readings + 4; }));
  EXPECT_LE(Count(db, chunks) - chunks_held, 1) << "progress continued while the signal was over its limit";
  const double during = rate(held_from, mark());
  EXPECT_LT(during, before / 4) << "rows/s before " << before << ", while production suffered " << during;
  held = db.RowsDone();
  EXPECT_LT(held, 60000);
  db.Value("UPDATE signal SET v = 0 RETURNING v");
  ASSERT_TRUE(Eventually([&] { return db.RowsDone() > held; })) << "progress did not resume";
  ASSERT_TRUE(Eventually([&] {
    return db.Status()["backfill"]["throttle"].get<std::string>().find("custom signal") == std::string::npos;
  })) << db.Status().dump();
  // Recovered: back at full pace (the rate limit), not stuck at a reduced
  // one. Its reason is empty once the pace is back at 100%.
  ASSERT_TRUE(Eventually([&] {
    std::string t = db.Status()["backfill"]["throttle"].get<std::string>();
    return t.find("recovering") == std::string::npos || db.RowsDone() >= 60000;
  })) << db.Status().dump();
  const std::string after_from = mark();
  const int64_t chunks_after = Count(db, chunks);
  ASSERT_TRUE(Eventually([&] { return Count(db, chunks) >= chunks_after + 15 || db.RowsDone() >= 60000; }));
  if (db.RowsDone() < 60000) {
    const double after = rate(after_from, mark());
    EXPECT_GT(after, before / 2) << "rows/s before " << before << ", after the signal fell " << after;
  }
  EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
  EXPECT_EQ(db.Mismatches(), "0");
  // Every chunk is recorded once in the history and in the checkpoints.
  EXPECT_EQ(db.Value("SELECT count(*) FROM sluice.chunks"), db.Value("SELECT sum(chunks) FROM sluice.checkpoints"));
}

// The lock-waiters signal counts the application's sessions, never
// sluice's own: two backfill workers queue for the table's extension lock
// whenever both add pages, and counting that throttled an idle backfill.
// A session named like a backfill worker queued on the table reads 0; an
// application session queued beside it reads 1.
TEST(BackfillControl, PostgresLockWaitersCountOnlyTheApplication) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  PgCluster* cluster = PgCluster::Shared();
  Db db = PgDb(10);
  ASSERT_TRUE(db.m);
  const std::string waiters = db::PostgresDialect("public", "sluice").LockWaitersSql("orders");
  auto holder = db.m->Connect("");
  ASSERT_TRUE(holder.ok()) << holder.status().message();
  SLUICE_ASSERT_OK((*holder)->Exec("BEGIN; LOCK TABLE public.orders IN SHARE UPDATE EXCLUSIVE MODE"));
  auto queue = [&](const std::string& app) {
    return std::thread([&, app] {
      cluster->Psql(db.url, "SET application_name = '" + app +
                                "'; BEGIN; LOCK TABLE public.orders IN SHARE UPDATE EXCLUSIVE MODE; COMMIT");
    });
  };
  const std::string queued =
      "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'public.orders'::regclass";
  std::thread own = queue("sluice backfill");
  const bool own_queued = Eventually([&] { return Count(db, queued) >= 1; });
  const std::string own_reading = db.Value(waiters);
  std::thread app = queue("billing");
  const bool app_queued = Eventually([&] { return Count(db, queued) >= 2; });
  const std::string both_reading = db.Value(waiters);
  SLUICE_EXPECT_OK((*holder)->Exec("ROLLBACK"));
  own.join();
  app.join();
  ASSERT_TRUE(own_queued && app_queued) << "the LOCKs never queued";
  EXPECT_EQ(own_reading, "0");
  EXPECT_EQ(both_reading, "1");
}

// Each chunk records the throttle's readings (the `chunks` table's
// probe_ms / lock_waiters): a session queued behind another's lock on the
// table shows as a lock waiter in the chunks written meanwhile, and in
// `status --json`. SHARE UPDATE EXCLUSIVE conflicts with itself but not
// with the backfill's writes, so the backfill goes on beside the queue.
// Then the upgrade of an older sluice's chunks table on PostgreSQL.
TEST(BackfillControl, PostgresChunksRecordTheThrottleSignals) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  PgCluster* cluster = PgCluster::Shared();
  TempDir dir;
  Db db = PgDb(20000);
  ASSERT_TRUE(db.m);
  std::string plan = std::string(kPlan) + R"(
backfill:
  throttle:
    probe_target_ms: 5000
    max_lock_waiters: 5
)";
  ASSERT_EQ(db.Sluice({"start", dir.Write("001_lower.yaml", plan)}).exit_code, 0);
  auto holder = db.m->Connect("");
  ASSERT_TRUE(holder.ok()) << holder.status().message();
  SLUICE_ASSERT_OK((*holder)->Exec("BEGIN; LOCK TABLE public.orders IN SHARE UPDATE EXCLUSIVE MODE"));
  std::thread waiter([&] {
    cluster->Psql(db.url, "BEGIN; LOCK TABLE public.orders IN SHARE UPDATE EXCLUSIVE MODE; COMMIT");
  });
  const std::string queued =
      "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'public.orders'::regclass";
  bool waiting = Eventually([&] { return Count(db, queued) >= 1; });
  int pid = -1;
  if (waiting) pid = db.Spawn({"backfill", "--rate", "4000", "--chunk-rows", "200"}, dir.path());
  bool recorded = waiting && pid > 0 && Eventually([&] {
    return Count(db, "SELECT count(*) FROM sluice.chunks WHERE lock_waiters >= 1") >= 2;
  });
  nlohmann::json signals;
  if (recorded) signals = db.Status()["backfill"]["throttle_signals"];
  SLUICE_EXPECT_OK((*holder)->Exec("ROLLBACK"));
  waiter.join();
  ASSERT_TRUE(waiting) << "the second LOCK never queued";
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
  ASSERT_TRUE(recorded) << db.Value("SELECT string_agg(coalesce(lock_waiters::text, 'null'), ',') FROM sluice.chunks");
  // Read while the session still queued: every chunk since recorded it.
  EXPECT_GE(signals["lock_waiters"].get<int64_t>(), 1) << signals.dump();
  EXPECT_GE(signals["probe_latency_seconds"].get<double>(), 0) << signals.dump();
  // The lag signal is on by default; with no replica attached it reads 0.
  EXPECT_EQ(signals["replica_lag_seconds"].get<double>(), 0) << signals.dump();
  // The signals were on for the whole run: every chunk has every reading.
  EXPECT_EQ(db.Value("SELECT count(*) FROM sluice.chunks WHERE probe_ms IS NULL OR lock_waiters IS NULL OR "
                     "replica_lag_s IS DISTINCT FROM 0"),
            "0");
  EXPECT_EQ(db.Mismatches(), "0");

  // State of an older sluice: without the columns, status reads no
  // readings, and the next backfill run adds them (as the owner).
  cluster->Psql(db.url, "ALTER TABLE sluice.chunks DROP COLUMN probe_ms, DROP COLUMN replica_lag_s, DROP COLUMN "
                        "lock_waiters");
  const std::string columns = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'sluice.chunks'::regclass AND "
                              "NOT attisdropped AND attname IN ('probe_ms', 'replica_lag_s', 'lock_waiters')";
  ASSERT_EQ(db.Value(columns), "0");
  EXPECT_TRUE(db.Status()["backfill"]["throttle_signals"]["lock_waiters"].is_null());
  auto again = db.Sluice({"backfill"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(db.Value(columns), "3");
}

TEST(BackfillControl, OutsideItsTimeWindowTheBackfillHolds) {
  TempDir dir;
  Db db = SqliteDb(dir, 5000);
  // A one-minute window twelve hours away from now.
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  int h = (tm.tm_hour + 12) % 24;
  char window[32];
  std::snprintf(window, sizeof window, "%02d:00-%02d:01", h, h);
  std::string plan = std::string(kPlan) + "backfill:\n  throttle:\n    allowed_windows: [\"" + window + "\"]\n";
  ASSERT_EQ(db.Sluice({"start", dir.Write("001_lower.yaml", plan)}).exit_code, 0);
  int pid = db.Spawn({"backfill"}, dir.path());
  ASSERT_TRUE(Eventually([&] {
    return db.Status()["backfill"]["throttle"].get<std::string>().find("outside allowed window") != std::string::npos;
  })) << db.Status().dump();
  EXPECT_EQ(db.RowsDone(), 0);
  kill(pid, SIGINT);  // Ctrl-C: stops cleanly, nothing half-done
  EXPECT_NE(WaitProcess(pid), 0);
  // (By the base table: the new version is not usable before its backfill.)
  EXPECT_EQ(db.Value("SELECT count(*) FROM orders WHERE email_lower IS NOT NULL", ""), "0");
}

// SIGKILL at 20 random moments; every rerun continues where the database
// says the work stands, and the chunk history shows each key range once.
void SigkillTwentyTimes(Db& db, const TempDir& dir, int rows, std::vector<std::string> extra) {
  // Small chunks, so most of the run is spent inside chunk transactions and
  // some kills land in a COMMIT.
  std::string plan = std::string(kPlan) + "backfill:\n  chunk_rows: 100\n  chunk_min_rows: 50\n  chunk_max_rows: 100\n";
  ASSERT_EQ(db.Sluice({"start", dir.Write("001_lower.yaml", plan)}).exit_code, 0);
  std::mt19937 rng(20261121);
  int kills = 0;
  std::vector<std::string> args = {"backfill"};
  args.insert(args.end(), extra.begin(), extra.end());
  for (int round = 0; round < 60 && kills < 20; ++round) {
    int pid = db.Spawn(args, dir.path());
    ASSERT_GT(pid, 0);
    // The first run is left to split the table and commit a chunk, so the
    // kills land across the walk and not only in its set-up.
    if (round == 0) {
      EXPECT_TRUE(Eventually([&] { return db.RowsDone() > 0; }));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 120));
    kill(pid, SIGKILL);
    int code = WaitProcess(pid);
    if (code == 128 + SIGKILL) kills++;
    if (code == 0) break;
  }
  EXPECT_EQ(kills, 20) << "the backfill finished before 20 kills";
  EXPECT_GT(db.RowsDone(), 0);
  auto r = db.Sluice({"backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.Mismatches(), "0");
  const std::string ch = db.State("chunks");
  // Per partition, chunk n starts exactly where chunk n-1 ended...
  EXPECT_EQ(db.Value("SELECT count(*) FROM " + ch + " c JOIN " + ch +
                     " p ON p.worker = c.worker AND p.chunk = c.chunk - 1 WHERE c.from_key <> p.to_key"),
            "0");
  EXPECT_EQ(db.Value("SELECT count(*) FROM " + ch + " c WHERE chunk > 1 AND NOT EXISTS (SELECT 1 FROM " + ch +
                     " p WHERE p.worker = c.worker AND p.chunk = c.chunk - 1)"),
            "0");
  // ...and all chunks together rewrote every row once.
  EXPECT_EQ(db.Value("SELECT sum(rows) FROM " + ch), std::to_string(rows));
  EXPECT_EQ(db.Value("SELECT count(*) FROM orders"), std::to_string(rows));
  auto v = db.m->Verify("001_lower");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
}

TEST(BackfillControl, SqliteSigkillTwentyTimes) {
  TempDir dir;
  Db db = SqliteDb(dir, 1000000);
  SigkillTwentyTimes(db, dir, 1000000, {});
}

TEST(BackfillControl, PostgresSigkillTwentyTimesWithWorkers) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  TempDir dir;
  Db db = PgDb(600000);
  ASSERT_TRUE(db.m);
  SigkillTwentyTimes(db, dir, 600000, {"--workers", "2"});
}

TEST(BackfillControl, PostgresServerRestartMidBackfill) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  TempDir dir;
  Db db = PgDb(100000);
  ASSERT_TRUE(db.m);
  ASSERT_EQ(db.Sluice({"start", dir.Write("001_lower.yaml", kPlan)}).exit_code, 0);
  int pid = db.Spawn({"backfill", "--rate", "25000", "--chunk-rows", "500"}, dir.path());
  ASSERT_TRUE(Eventually([&] { return db.RowsDone() > 0; }));
  c->Restart();
  ASSERT_TRUE(c->running());
  EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
  EXPECT_EQ(db.Mismatches(), "0");
  EXPECT_EQ(db.Value("SELECT sum(rows) FROM sluice.chunks"), "100000");
  EXPECT_EQ(db.Value("SELECT bool_and(done = 1) FROM sluice.checkpoints"), "t");
}

}  // namespace
}  // namespace sluice::testing
