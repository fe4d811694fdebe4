// The default throttle on a real PostgreSQL tells the application's load
// from the backfill's own cost (issue 10): the same probe slowdown never
// throttles a backfill with no application session at work, and slows it
// to a small fraction of its pace while one is at work, until that session
// stops. The probe's slowdown is the test's own model of the backfill's
// cost (the probe query sleeps 20 ms while a chunk was committed within
// the last half second), so neither outcome depends on the machine's load.
// The pace is read by SQL from the `chunks` rows: the share of the time
// between the chunks that the chunks themselves took (their duty cycle),
// compared with wide margins; so is what the throttle saw (each chunk
// records the application sessions at work, `app_sessions`).
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "support/pg_cluster.h"
#include "support/plans.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

// The probe sleeps while the backfill runs (never during its baseline,
// which is measured before the first chunk) and counts its readings.
const std::string kPlan = std::string(kAddEmailLowerPlan) + R"(backfill:
  workers: 1
  chunk_rows: 1000
  chunk_min_rows: 1000
  chunk_max_rows: 1000
  throttle:
    probe_query: SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM sluice.chunks WHERE committed_at::timestamptz > clock_timestamp() - interval '0.5 s') THEN 0.02 ELSE 0 END), nextval('public.readings')
)";

struct Db {
  std::string url;
  std::unique_ptr<Migrator> m;
  std::string Value(const std::string& sql) { return QueryValue(*m, sql); }
  int64_t Count(const std::string& sql) {
    std::string v = Value(sql);
    return v.empty() ? 0 : std::stoll(v);
  }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  }
};

Db Make(int rows, const TempDir& dir) {
  Db d;
  PgCluster* c = PgCluster::Shared();
  d.url = c->CreateDatabase("thr");
  c->Psql(d.url, "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL); INSERT INTO orders SELECT i, "
                 "'User' || i || '@Example.COM' FROM generate_series(1, " +
                     std::to_string(rows) + ") i; CREATE SEQUENCE readings");
  Options o;
  o.db_url = d.url;
  o.actor = "test";
  auto m = Migrator::Open(o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (m.ok()) d.m = std::move(*m);
  auto st = d.Sluice({"start", dir.Write("001_lower.yaml", kPlan)});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  return d;
}

const char* kMismatches = "SELECT count(*) FROM orders WHERE email_lower IS DISTINCT FROM lower(email)";

// An application at work: short queries every 20 ms from a session that is
// not sluice's, until Stop() (or the end of the scope), which also closes
// the session.
class AppLoad {
 public:
  explicit AppLoad(Db& db) {
    auto c = db.m->Connect("");
    if (!c.ok()) {
      error_ = c.status().message();
      return;
    }
    session_ = std::move(*c);
    Status named = session_->Exec("SET application_name = 'the application'");
    if (!named.ok()) {
      error_ = named.message();
      return;
    }
    thread_ = std::thread([this] {
      while (!stop_) {
        (void)session_->Query("SELECT id FROM orders WHERE id = 42");  // a failed query is still load
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  ~AppLoad() { Stop(); }
  AppLoad(const AppLoad&) = delete;
  AppLoad& operator=(const AppLoad&) = delete;
  // "" once the load runs.
  const std::string& error() const { return error_; }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    session_.reset();
  }

 private:
  std::unique_ptr<Session> session_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::string error_;
};

// The chunks' share of the time between the first and the last chunk
// committed in (from, to] (database timestamps; "" = unbounded) whose probe
// reading was slow; sets *n to their number.
double Duty(Db& db, const std::string& from, const std::string& to, int64_t* n) {
  std::string where = " FROM sluice.chunks WHERE probe_ms >= 15";
  if (!from.empty()) where += " AND committed_at::timestamptz > '" + from + "'";
  if (!to.empty()) where += " AND committed_at::timestamptz <= '" + to + "'";
  *n = db.Count("SELECT count(*)" + where);
  if (*n < 2) return 0;
  return std::stod(db.Value("SELECT sum(millis) / (1000 * extract(epoch FROM max(committed_at::timestamptz) - "
                            "min(committed_at::timestamptz)))" + where));
}

// No application session: the probe is 20 ms over its baseline for most of
// the run (the chunks record it), and the backfill runs at full pace
// anyway: its chunks take most of the time between them (a pace of 50% or
// less would leave them at most half; a hold, nearly none).
TEST(PgThrottle, TheBackfillsOwnCostNeverThrottlesAnIdleDatabase) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  TempDir dir;
  Db db = Make(300000, dir);
  ASSERT_TRUE(db.m);
  auto r = db.Sluice({"backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.Value(kMismatches), "0");
  int64_t n = 0;
  const double duty = Duty(db, "", "", &n);
  ASSERT_GE(n, 20) << "the probe's slowdown was seen by too few chunks to tell anything";
  EXPECT_GT(duty, 0.5) << "chunks took only " << duty << " of the time between them: throttled";
  // What the throttle saw, chunk by chunk: nobody at work (a reading may
  // catch the test's own setup session within its one-second window).
  EXPECT_GE(db.Count("SELECT count(*) FROM sluice.chunks WHERE app_sessions = 0"),
            db.Count("SELECT count(*) FROM sluice.chunks") - 5);
}

// An application session at work (short queries from a session that is not
// sluice's): the same slowdown now counts, and the backfill runs at a small
// fraction of its pace (it cuts, holds, probes again) for as long as the
// session works. Once it stops, the backfill finishes, the probe as slow.
TEST(PgThrottle, ASlowdownWhileTheApplicationIsAtWorkThrottlesUntilItStops) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  TempDir dir;
  Db db = Make(300000, dir);
  ASSERT_TRUE(db.m);
  AppLoad app(db);
  ASSERT_EQ(app.error(), "");
  const int pid = SpawnSluice({"--db", db.url, "backfill"}, dir.path());
  ASSERT_GT(pid, 0);
  const std::string readings = "SELECT last_value FROM public.readings";
  // Twenty probe readings (5 s at the default poll interval) from the
  // first chunk on, while the application works.
  ASSERT_TRUE(Eventually([&] { return db.Count("SELECT count(*) FROM sluice.chunks") > 0; }));
  const std::string from = db.Value("SELECT clock_timestamp()::text");
  const int64_t r0 = db.Count(readings);
  ASSERT_TRUE(Eventually([&] { return db.Count(readings) >= r0 + 20; }));
  const std::string to = db.Value("SELECT clock_timestamp()::text");
  int64_t n = 0;
  const double duty = Duty(db, from, to, &n);
  const int64_t total = db.Count("SELECT count(*) FROM orders");
  EXPECT_LT(db.Count("SELECT sum(rows) FROM sluice.chunks WHERE committed_at::timestamptz <= '" + to + "'"), total)
      << "the backfill finished while the application worked";
  EXPECT_LT(duty, 0.25) << "chunks took " << duty << " of the time between them (" << n
                        << " chunks) while the application worked: not throttled";
  // Every chunk of that time recorded the application at work.
  const std::string window =
      " FROM sluice.chunks WHERE committed_at::timestamptz > '" + from + "' AND committed_at::timestamptz <= '" + to + "'";
  EXPECT_GT(db.Count("SELECT count(*)" + window), 0);
  EXPECT_EQ(db.Count("SELECT count(*)" + window + " AND app_sessions >= 1"), db.Count("SELECT count(*)" + window));
  // `status` shows it, and why the backfill slowed.
  auto st = db.Sluice({"status", "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_THAT(st.out, ::testing::ContainsRegex("\"app_sessions\": [1-9]"));
  EXPECT_THAT(st.out, ::testing::HasSubstr("1 worker while the application is at work"));
  // The application stops: the same probe slowdown is the backfill's own.
  app.Stop();
  EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
  EXPECT_EQ(db.Count("SELECT sum(rows) FROM sluice.chunks"), total);
  EXPECT_EQ(db.Value(kMismatches), "0");
}

// The ceiling of the pace while the application is at work is the
// operator's to choose: `--active-pace` (and the plan's active_pace) sets
// it, the default is 10%. Read from the reason the run writes to its
// control row (`status`), with the probe's objectives off (no signal over
// its limit: the pace sits at the ceiling).
TEST(PgThrottle, TheActivePaceIsTheCeilingWhileTheApplicationWorks) {
  SLUICE_ASSERT_PG_OK(PgCluster::Shared());
  for (const auto& [args, expected] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "pace 10%"}, {{"--active-pace", "0.3"}, "pace 30%"}}) {
    TempDir dir;
    Db db = Make(300000, dir);
    ASSERT_TRUE(db.m);
    AppLoad app(db);
    ASSERT_EQ(app.error(), "");
    std::vector<std::string> cmd = {"--db", db.url, "backfill", "--probe-slowdown", "0", "--probe-target-ms", "0"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    const int pid = SpawnSluice(cmd, dir.path());
    ASSERT_GT(pid, 0);
    std::string seen;
    EXPECT_TRUE(Eventually([&] {
      auto st = db.Sluice({"status", "--json"});
      seen = st.out;
      return st.out.find("application at work") != std::string::npos &&
             st.out.find(expected) != std::string::npos;
    })) << expected << " never shown: " << seen;
    app.Stop();
    EXPECT_EQ(WaitProcess(pid), 0) << ReadFile(dir.File("spawn.err"));
    EXPECT_EQ(db.Value(kMismatches), "0");
  }
}

}  // namespace
}  // namespace sluice::testing
