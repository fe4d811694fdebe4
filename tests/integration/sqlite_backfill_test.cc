// Backfill under real conditions on a SQLite file: concurrent writers through
// both versions, SIGKILL at random moments, and exactly-once checkpoints.
// Every result is checked with SQL against the database.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <functional>
#include <thread>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%d.%02d', amount / 100, amount % 100)
backfill:
  chunk_rows: 300
  chunk_min_rows: 300
  chunk_max_rows: 300
)";

// Rows written through the old version (or never) whose new columns disagree
// with `up` over their old values, plus rows written through the new version
// whose old column disagrees with `down`.
constexpr const char* kMismatches =
    "SELECT count(*) FROM orders WHERE (_sluice_new_write IS NULL AND (email_lower IS NOT lower(email) OR "
    "\"_sluice_new_amount\" IS NOT CAST(round(CAST(amount AS REAL) * 100) AS INTEGER))) OR (_sluice_new_write = 1 "
    "AND amount IS NOT printf('%d.%02d', \"_sluice_new_amount\" / 100, \"_sluice_new_amount\" % 100))";

void Populate(Migrator& m, int rows) {
  auto s = m.Connect("");
  ASSERT_TRUE(s.ok());
  SLUICE_ASSERT_OK((*s)->Exec(
      "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT NOT NULL, note TEXT);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
      std::to_string(rows) +
      ") INSERT INTO orders SELECT i, 'User' || i || '@Example.COM', printf('%d.%02d', i % 700, i % 100), "
      "NULL FROM n;"));
}

// A writer acting as one application version until stopped.
struct Writer {
  Writer(std::unique_ptr<Session> s, bool new_version, int max_id) : s(std::move(s)), new_version(new_version), max_id(max_id) {}
  void Run() {
    std::mt19937 rng(new_version ? 7 : 3);
    while (!stop) {
      int id = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_id));
      int cents = static_cast<int>(rng() % 100000);
      Result<Rows> r = Rows{};
      if (rng() % 2) {
        std::string email = "W" + std::to_string(rng()) + "@Mail.COM";
        r = new_version ? s->Query("INSERT INTO orders (email, amount) VALUES ($1, $2)", {email, int64_t{cents}})
                        : s->Query("INSERT INTO orders (email, amount) VALUES ($1, $2)",
                                   {email, std::to_string(cents / 100) + "." + (cents % 100 < 10 ? "0" : "") +
                                               std::to_string(cents % 100)});
        if (r.ok()) inserts++;
      } else {
        r = new_version ? s->Query("UPDATE orders SET amount = $1, email = 'Upd' || id || '@X.COM' WHERE id = $2",
                                   {int64_t{cents}, int64_t{id}})
                        : s->Query("UPDATE orders SET email = 'Old' || id || '@X.COM' WHERE id = $1", {int64_t{id}});
        if (r.ok()) updates++;
      }
      if (!r.ok()) {
        failures++;
        if (first_error.empty()) first_error = r.status().message();
      }
    }
  }
  std::unique_ptr<Session> s;
  bool new_version;
  int max_id;
  std::atomic<bool> stop{false};
  std::atomic<int> inserts{0}, updates{0}, failures{0};
  std::string first_error;
};

TEST(SqliteBackfill, BothVersionsWriteDuringBackfillAndNothingIsLost) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("app.db"));
  ASSERT_NO_FATAL_FAILURE(Populate(*m, 30000));
  { auto s = m->Connect(""); SLUICE_ASSERT_OK((*s)->Exec("PRAGMA journal_mode = WAL")); }
  std::string plan = dir.Write("001_cents.yaml", kPlan);
  SLUICE_ASSERT_OK(m->Start(plan));

  // The old version writes during the backfill; the new version is usable
  // only once it is done, and then writes alongside the old one.
  auto old_s = m->Connect("");
  ASSERT_TRUE(old_s.ok());
  Writer old_w(std::move(*old_s), false, 30000);
  std::thread t1([&] { old_w.Run(); });
  // Progress-based waits (not sleeps): the old writer has written before
  // the backfill starts, both write after it ends, however slow the machine.
  auto ops = [](Writer& w) { return w.inserts + w.updates + w.failures; };
  auto wait_until = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 3000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  wait_until([&] { return ops(old_w) >= 15; });
  EXPECT_FALSE(m->Connect("001_cents").ok()) << "the new version was usable before its backfill";
  auto bf = m->Backfill("001_cents", {});
  auto new_s = m->Connect("001_cents");
  ASSERT_TRUE(new_s.ok()) << new_s.status().message();
  Writer new_w(std::move(*new_s), true, 30000);
  std::thread t2([&] { new_w.Run(); });
  const int old_after = ops(old_w) + 10;
  wait_until([&] { return ops(old_w) >= old_after && ops(new_w) >= 25; });
  old_w.stop = true;
  new_w.stop = true;
  t1.join();
  t2.join();
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(old_w.failures, 0) << old_w.first_error;
  EXPECT_EQ(new_w.failures, 0) << new_w.first_error;
  EXPECT_GT(old_w.inserts + old_w.updates, 20);
  EXPECT_GT(new_w.inserts + new_w.updates, 20);

  // Every row, old or written during the backfill by either version, holds
  // exactly up(old values); no insert was lost.
  EXPECT_EQ(QueryValue(*m, kMismatches), "0");
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM orders"), std::to_string(30000 + old_w.inserts + new_w.inserts));
  auto v = m->Verify("001_cents");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->passed) << v->json;
  // The new version's own values survived the backfill: its updates set
  // email without email_lower, which therefore kept the earlier value.
  EXPECT_NE(QueryValue(*m, "SELECT count(*) FROM orders WHERE _sluice_new_write = 1"), "0");
  SLUICE_ASSERT_OK(m->Complete("001_cents"));
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM pragma_table_info('orders') WHERE name LIKE '\\_sluice%' ESCAPE '\\'"), "0");
  EXPECT_EQ(QueryValue(*m, "SELECT type FROM pragma_table_info('orders') WHERE name = 'amount'"), "INTEGER");
}

TEST(SqliteBackfill, BackfillTerminatesUnderContinuousInserts) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("app.db"));
  ASSERT_NO_FATAL_FAILURE(Populate(*m, 5000));
  { auto s = m->Connect(""); SLUICE_ASSERT_OK((*s)->Exec("PRAGMA journal_mode = WAL")); }
  SLUICE_ASSERT_OK(m->Start(dir.Write("001_cents.yaml", kPlan)));
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok());
  Writer w(std::move(*s), false, 5000);
  std::thread t([&] { w.Run(); });
  auto bf = m->Backfill("001_cents", {});  // must return although inserts never stop
  w.stop = true;
  t.join();
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(QueryValue(*m, kMismatches), "0");
}

TEST(SqliteBackfill, SigkillAtRandomMomentsLosesAndRepeatsNothing) {
  TempDir dir;
  const std::string db = dir.File("app.db");
  // 1000 chunks of 300 rows: long enough to be killed several times even on
  // a fast, idle machine (60,000 rows sometimes finished after two kills).
  constexpr int kRows = 300000;
  {
    auto m = OpenSqlite(db);
    ASSERT_NO_FATAL_FAILURE(Populate(*m, kRows));
    SLUICE_ASSERT_OK(m->Start(dir.Write("001_cents.yaml", kPlan)));
  }
  std::mt19937 rng(42);
  int kills = 0;
  for (int round = 0; round < 40 && kills < 8; ++round) {
    int pid = SpawnSluice({"--db", "sqlite:" + db, "backfill"}, dir.path());
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 120));
    kill(pid, SIGKILL);
    int code = WaitProcess(pid);
    if (code == 128 + SIGKILL) kills++;
    if (code == 0) break;  // it finished before the kill
  }
  EXPECT_GE(kills, 3) << "the backfill finished too fast to be interrupted";
  // The final run completes the work.
  auto r = RunSluice({"--db", "sqlite:" + db, "backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto m = OpenSqlite(db, false);
  EXPECT_EQ(QueryValue(*m, kMismatches), "0");
  // The checkpoint history is one unbroken chain: chunk n starts where
  // chunk n-1 ended, every chunk exactly once.
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM _sluice_chunks c JOIN _sluice_chunks p ON p.migration = c.migration "
                           "AND p.tbl = c.tbl AND p.chunk = c.chunk - 1 WHERE c.from_key IS NOT p.to_key"),
            "0");
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM _sluice_chunks WHERE chunk = 1 AND from_key IS NOT NULL"), "0");
  EXPECT_EQ(QueryValue(*m, "SELECT max(chunk) = count(*) FROM _sluice_chunks"), "1");
  EXPECT_EQ(QueryValue(*m, "SELECT sum(rows) FROM _sluice_chunks"), std::to_string(kRows));
  EXPECT_EQ(QueryValue(*m, "SELECT rows_done || '/' || done FROM _sluice_checkpoints"),
            std::to_string(kRows) + "/1");
  auto v = m->Verify("001_cents");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->passed) << v->json;
}

TEST(SqliteBackfill, NewVersionUpdateOfARowNotYetBackfilled) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("app.db"));
  ASSERT_NO_FATAL_FAILURE(Populate(*m, 100));
  SLUICE_ASSERT_OK(m->Start(dir.Write("001_cents.yaml", kPlan)));
  // No backfill yet: the new columns of row 7 are still empty, and the new
  // version is not handed out. Its views' triggers still work (the write
  // path a new-version write racing the last chunks takes): an update of
  // only the email through them fills the untouched new column with up(row).
  EXPECT_EQ(QueryValue(*m, "SELECT \"_sluice_new_amount\" IS NULL FROM orders WHERE id = 7"), "1");
  EXPECT_THAT(m->Connect("001_cents").status(), StatusIs(StatusCode::kFailedPrecondition, "is not ready"));
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok());
  auto r = (*s)->Query("UPDATE \"orders@001_cents\" SET email = 'Fresh@X.COM' WHERE id = 7");
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Its amount kept its value in both shapes, computed as the backfill would.
  EXPECT_EQ(QueryValue(*m, "SELECT amount || '|' || \"_sluice_new_amount\" FROM orders WHERE id = 7"), "7.07|707");
  auto bf = m->Backfill("001_cents", {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(QueryValue(*m, "SELECT amount FROM orders WHERE id = 7", "001_cents"), "707");
  EXPECT_EQ(QueryValue(*m, kMismatches), "0");
  auto v = m->Verify("001_cents");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->passed) << v->json;
}

TEST(SqliteBackfill, CompleteIsRefusedBeforeTheBackfillAndChangesNothing) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("app.db"));
  ASSERT_NO_FATAL_FAILURE(Populate(*m, 100));
  SLUICE_ASSERT_OK(m->Start(dir.Write("001_cents.yaml", kPlan)));
  std::string before = QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_master");
  EXPECT_THAT(m->Complete("001_cents"), StatusIs(StatusCode::kFailedPrecondition, "sluice backfill"));
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_master"), before);
}

TEST(SqliteBackfill, SecondBackfillProcessIsRefusedAndNamesTheHolder) {
  TempDir dir;
  const std::string db = dir.File("app.db");
  {
    auto m = OpenSqlite(db);
    ASSERT_NO_FATAL_FAILURE(Populate(*m, 100));
    SLUICE_ASSERT_OK(m->Start(dir.Write("001_cents.yaml", kPlan)));
    auto s = m->Connect("");
    // Another (live) process holds the migration's lock: this test process.
    SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO _sluice_locks VALUES ('migration:001_cents', 'pid " +
                                std::to_string(getpid()) + " on testhost', " + std::to_string(getpid()) +
                                ", (SELECT host FROM (SELECT 'x' AS host)), '2026-01-01')"));
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE _sluice_locks SET host = 'another-host'"));
  }
  auto r = RunSluice({"--db", "sqlite:" + db, "backfill"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("another sluice process"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("on testhost"));
}

}  // namespace
}  // namespace sluice::testing
