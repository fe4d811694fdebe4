// The engine reads time only through Options::clock (issue 9's test seam):
// on a FakeClock, gate windows open and close as the test moves time, and
// every time the state tables record is the fake clock's. Real SQLite file,
// real lifecycle; no sleeps.
#include "common/clock.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
gates:
  switch:
    max_verify_age_seconds: 600
  complete:
    observation_seconds: 600
)";

// 2030-01-01T00:00:00Z: far from the real time, so a stamp from the real
// clock cannot pass for the fake one.
constexpr int64_t kFakeStart = 1893456000LL * 1'000'000;

TEST(EngineClock, GateWindowsAndRecordedTimesFollowTheInjectedClock) {
  TempDir dir;
  FakeClock clock(kFakeStart);
  clock.set_auto_advance(true);  // the engine's own waits return at once
  Options o;
  o.db_url = "sqlite:" + dir.File("app.db");
  o.create_database = true;
  o.actor = "tester";
  o.clock = &clock;
  auto opened = Migrator::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Migrator& m = **opened;
  {
    auto s = m.Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "INSERT INTO orders VALUES (1, 'A@X.COM'), (2, 'B@X.COM');"));
  }
  SLUICE_ASSERT_OK(m.Start(dir.Write("001_lower.yaml", kPlan)));
  ASSERT_TRUE(m.Backfill("001_lower", {}).ok());
  auto v = m.Verify("001_lower");
  ASSERT_TRUE(v.ok() && v->passed) << (v.ok() ? v->json : v.status().message());

  // Every time recorded so far is the fake clock's, none the real one. The
  // backfill's own waits (pacing, control polls) auto-advance the fake clock
  // by however many rounds ran, so the bound is the clock's reading now.
  const std::string fake_start = "'" + IsoTime(kFakeStart) + "'";
  std::string fake_now = "'" + IsoTime(clock.WallMicros()) + "'";
  EXPECT_EQ(QueryValue(m, "SELECT count(*) FROM _sluice_events WHERE NOT (at >= " + fake_start + " AND at <= " +
                              fake_now + ")"),
            "0");
  EXPECT_EQ(QueryValue(m, "SELECT count(*) FROM _sluice_verifications WHERE NOT (at >= " + fake_start +
                              " AND at <= " + fake_now + ")"),
            "0");

  // An hour later on the fake clock the verification is too old to switch.
  clock.Advance(3600LL * 1'000'000);
  EXPECT_THAT(m.Switch("001_lower", false), StatusIs(StatusCode::kFailedPrecondition, "old (max 10 min)"));
  EXPECT_EQ(QueryValue(m, "SELECT live FROM _sluice_migrations"), "old");
  v = m.Verify("001_lower");
  ASSERT_TRUE(v.ok() && v->passed);
  SLUICE_ASSERT_OK(m.Switch("001_lower", false));
  EXPECT_EQ(QueryValue(m, "SELECT live FROM _sluice_migrations"), "new");

  // The observation window after the switch: closed until the fake clock
  // has moved past it.
  clock.Advance(599LL * 1'000'000);
  EXPECT_THAT(m.Complete("001_lower"), StatusIs(StatusCode::kFailedPrecondition, "observation window"));
  EXPECT_EQ(QueryValue(m, "SELECT phase FROM _sluice_migrations"), "active");
  clock.Advance(2LL * 1'000'000);
  const std::string before = "'" + IsoTime(clock.WallMicros()) + "'";
  SLUICE_ASSERT_OK(m.Complete("001_lower"));
  fake_now = "'" + IsoTime(clock.WallMicros()) + "'";
  EXPECT_EQ(QueryValue(m, "SELECT phase FROM _sluice_migrations"), "complete");
  // Completed on the fake clock, after the window had passed on it.
  EXPECT_EQ(QueryValue(m, "SELECT completed_at >= " + before + " AND completed_at <= " + fake_now +
                              " FROM _sluice_migrations"),
            "1");
}

}  // namespace
}  // namespace sluice::testing
