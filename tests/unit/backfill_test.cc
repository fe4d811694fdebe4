// The Backfiller's error handling on a real SQLite file and a fake clock:
// faults are injected by wrapping the real connection (LevelDB's ErrorEnv
// idea), so retryable errors are ridden out without sleeping, a streak longer
// than the retry budget and a fatal error stop the run naming the rows, and a
// cancel stops it after the chunk in flight. Every outcome is checked with
// SQL against the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>

#include "backfill/backfill.h"
#include "common/clock.h"
#include "db/postgres/postgres_dialect.h"
#include "db/sqlite/sqlite_dialect.h"
#include "support/test_support.h"

namespace sluice::backfill {
namespace {

using ::testing::HasSubstr;

// A real connection whose statements can be made to fail.
class FlakyConnection : public db::Connection {
 public:
  explicit FlakyConnection(std::unique_ptr<db::Connection> real) : real_(std::move(real)) {}

  // The next `times` statements containing `needle` fail with `error`
  // without reaching the database.
  void FailNext(std::string needle, Status error, int times = 1) {
    std::lock_guard<std::mutex> l(mu_);
    faults_.push_back({std::move(needle), std::move(error), times});
  }
  // The next COMMIT reports kInDoubt, after committing (`landed`) or after
  // rolling back.
  void CommitInDoubt(bool landed) {
    std::lock_guard<std::mutex> l(mu_);
    in_doubt_.push_back(landed);
  }
  std::function<void()> after_commit;  // after each successful COMMIT
  std::atomic<int> reconnects{0};
  std::atomic<int> injected{0};

  const db::Dialect& dialect() const override { return real_->dialect(); }
  Result<db::QueryResult> Query(std::string_view sql, const std::vector<db::Value>& params) override {
    SLUICE_RETURN_IF_ERROR(Fault(sql));
    return real_->Query(sql, params);
  }
  Status Exec(std::string_view sql) override {
    SLUICE_RETURN_IF_ERROR(Fault(sql));
    return real_->Exec(sql);
  }
  Status Execute(const db::Statement& stmt) override { return real_->Execute(stmt); }
  Status Begin() override { return real_->Begin(); }
  Status BeginSnapshot() override { return real_->BeginSnapshot(); }
  Status Commit() override {
    std::optional<bool> doubt;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!in_doubt_.empty()) {
        doubt = in_doubt_.front();
        in_doubt_.erase(in_doubt_.begin());
      }
    }
    if (doubt) {
      ++injected;
      Status s = *doubt ? real_->Commit() : real_->Rollback();
      EXPECT_TRUE(s.ok()) << s.message();
      return InDoubt("connection lost during COMMIT");
    }
    Status s = real_->Commit();
    if (s.ok() && after_commit) after_commit();
    return s;
  }
  Status Rollback() override { return real_->Rollback(); }
  bool in_transaction() const override { return real_->in_transaction(); }
  Result<db::Schema> Introspect() override { return real_->Introspect(); }
  Status Reconnect() override {
    ++reconnects;
    return real_->Reconnect();
  }
  Status AddSessionSetup(std::string sql) override { return real_->AddSessionSetup(std::move(sql)); }
  Result<std::vector<std::string>> BackfillTuningSql(bool full_sync) override {
    return real_->BackfillTuningSql(full_sync);
  }
  Result<db::LockAttempt> TryLock(const std::string& name) override { return real_->TryLock(name); }
  Status Unlock(const std::string& name) override { return real_->Unlock(name); }
  std::string Describe() const override { return "flaky " + real_->Describe(); }

 private:
  struct Fault_ {
    std::string needle;
    Status error;
    int times;
  };
  Status Fault(std::string_view sql) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& f : faults_) {
      if (f.times > 0 && sql.find(f.needle) != std::string_view::npos) {
        --f.times;
        ++injected;
        return f.error;
      }
    }
    return Status::Ok();
  }

  std::unique_ptr<db::Connection> real_;
  std::mutex mu_;
  std::vector<Fault_> faults_;
  std::vector<bool> in_doubt_;
};

// A SQLite file with sluice's state tables and a table t(id, v, v2) of
// `rows` rows whose v2 the backfill fills with `up`.
struct Rig {
  explicit Rig(int rows, std::string up = "lower(v)") {
    auto a = db::OpenAdapter("sqlite:" + dir.File("bf.db"), {.create = true});
    EXPECT_TRUE(a.ok()) << a.status().message();
    adapter = std::move(*a);
    auto c = adapter->Connect();
    EXPECT_TRUE(c.ok()) << c.status().message();
    conn = std::make_unique<FlakyConnection>(std::move(*c));
    for (const auto& s : conn->dialect().StateSchema()) EXPECT_TRUE(conn->Exec(s).ok()) << s;
    EXPECT_TRUE(conn->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, v2 TEXT);"
                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                           std::to_string(rows) + ") INSERT INTO t SELECT i, 'Row' || i || '@X.COM', NULL FROM n")
                    .ok());
    task.table = "t";
    task.key = {"id"};
    db::Forward f;
    f.target = "v2";
    f.expr = up;
    task.assignments = {f};
    settings.chunk_rows = settings.chunk_min_rows = settings.chunk_max_rows = 100;
    clock.set_auto_advance(true);
    hooks.clock = &clock;
    hooks.cancel = &cancel;
  }

  Status Run() {
    Backfiller bf(*conn, "001_x", settings, hooks);
    return bf.Run(task);
  }
  std::string Value(const std::string& sql) {
    auto c = adapter->Connect();
    EXPECT_TRUE(c.ok());
    auto r = (*c)->Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
    return r.ok() && !r->rows.empty() && !r->rows[0][0].is_null() ? r->rows[0][0].text : "";
  }
  // Rows whose v2 is not up(v), among those the checkpoints say are done;
  // and rows filled although the checkpoints say they are not.
  std::string Wrong() {
    return Value(
        "SELECT count(*) FROM t, _sluice_checkpoints c WHERE (t.id <= CAST(json_extract(c.last_key, '$[0][1]') AS "
        "INTEGER) AND v2 IS NOT lower(v)) OR ((c.last_key IS NULL OR t.id > CAST(json_extract(c.last_key, "
        "'$[0][1]') AS INTEGER)) AND v2 IS NOT NULL)");
  }

  testing::TempDir dir;
  std::unique_ptr<db::Adapter> adapter;
  std::unique_ptr<FlakyConnection> conn;
  db::BackfillTask task;
  Settings settings;
  Hooks hooks;
  FakeClock clock;
  std::atomic<bool> cancel{false};
};

TEST(BackfillerTest, RetryableErrorsAreRiddenOutAndEveryRowIsWrittenOnce) {
  Rig r(1000);
  r.settings.retry_budget_ms = 3'600'000;
  r.conn->FailNext("UPDATE \"t\"", Unavailable("server closed the connection unexpectedly"), 2);
  r.conn->FailNext("SELECT last_key", Aborted("deadlock detected"), 3);
  r.conn->FailNext("INSERT INTO \"_sluice_chunks\"", ResourceExhausted("could not extend file: No space left on device"));
  bool armed = false;
  r.conn->after_commit = [&] {
    if (armed || r.Value("SELECT count(*) FROM _sluice_chunks") != "2") return;
    armed = true;
    r.conn->CommitInDoubt(true);   // chunk 3 commits: the next chunk goes on after it
    r.conn->CommitInDoubt(false);  // chunk 4 does not: its range is done again
  };
  int64_t t0 = r.clock.NowMicros();
  Status s = r.Run();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(r.conn->injected, 8);
  EXPECT_EQ(r.conn->reconnects, 4);  // after each lost connection and commit in doubt
  EXPECT_GE(r.clock.NowMicros() - t0, 500'000);  // disk full: backed off at least half a second
  EXPECT_EQ(r.Value("SELECT count(*) FROM t WHERE v2 IS NOT lower(v)"), "0");
  // Each key range once, in one unbroken chain.
  EXPECT_EQ(r.Value("SELECT count(*) || '/' || sum(rows) FROM _sluice_chunks"), "10/1000");
  EXPECT_EQ(r.Value("SELECT count(*) FROM _sluice_chunks c JOIN _sluice_chunks p ON p.chunk = c.chunk - 1 "
                    "WHERE c.from_key IS NOT p.to_key"),
            "0");
  EXPECT_EQ(r.Value("SELECT rows_done || '/' || done FROM _sluice_checkpoints"), "1000/1");
}

TEST(BackfillerTest, AStreakLongerThanTheRetryBudgetFailsNamingRowsAndTime) {
  Rig r(1000);
  r.settings.retry_budget_ms = 30'000;
  r.conn->after_commit = [&] {
    // After the third chunk the database stays unreachable.
    if (r.Value("SELECT count(*) FROM _sluice_chunks") == "3") {
      r.conn->FailNext("UPDATE \"t\"", Unavailable("could not connect to server"), 1'000'000);
    }
  };
  Status s = r.Run();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("gave up after retrying for "));
  EXPECT_THAT(s.message(), HasSubstr("the retry budget is 30 s"));
  EXPECT_THAT(s.message(), HasSubstr("backfill of t rows after (300) through (400) (partition 0): could not connect"));
  // Checkpoints and rows agree: three chunks done, nothing beyond.
  EXPECT_EQ(r.Value("SELECT rows_done || '/' || done FROM _sluice_checkpoints"), "300/0");
  EXPECT_EQ(r.Wrong(), "0");
}

TEST(BackfillerTest, AFatalErrorStopsTheRunAndNamesTheRows) {
  // up fails for one row (SQLite: abs() of the smallest integer overflows).
  Rig r(1000, "CASE WHEN id = 250 THEN abs(-9223372036854775807 - 1) ELSE lower(v) END");
  Status s = r.Run();
  ASSERT_FALSE(s.ok());
  EXPECT_FALSE(IsRetryable(s.code())) << s.message();
  EXPECT_THAT(s.message(), HasSubstr("backfill of t rows after (200) through (300)"));
  EXPECT_THAT(s.message(), HasSubstr("integer overflow"));
  EXPECT_EQ(r.conn->reconnects, 0);  // not retried
  EXPECT_EQ(r.Value("SELECT rows_done FROM _sluice_checkpoints"), "200");
  EXPECT_EQ(r.Wrong(), "0");
}

TEST(BackfillerTest, CancelStopsAfterTheChunkInFlight) {
  Rig r(1000);
  int commits = 0;
  // The cancel arrives while the fourth chunk commits (the first commit is
  // the set-up's).
  r.conn->after_commit = [&] {
    if (++commits == 5) r.cancel = true;
  };
  Status s = r.Run();
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_THAT(s.message(), HasSubstr("rerun `sluice backfill` to continue"));
  EXPECT_EQ(r.Value("SELECT count(*) FROM _sluice_chunks"), "4");
  EXPECT_EQ(r.Wrong(), "0");
  // The rerun continues where the checkpoint stands.
  r.cancel = false;
  r.conn->after_commit = nullptr;
  ASSERT_TRUE(r.Run().ok());
  EXPECT_EQ(r.Value("SELECT count(*) || '/' || sum(rows) FROM _sluice_chunks"), "10/1000");
  EXPECT_EQ(r.Value("SELECT count(*) FROM t WHERE v2 IS NOT lower(v)"), "0");
}

TEST(BackfillerTest, ACancelDuringARetryBackoffEndsItAtOnce) {
  Rig r(1000);
  r.clock.set_auto_advance(false);  // time stands still: only the cancel can end the wait
  r.settings.retry_budget_ms = 3'600'000;
  r.conn->FailNext("UPDATE \"t\"", ResourceExhausted("sorry, too many clients already"), 1'000'000);
  std::thread canceller([&] {
    while (r.conn->injected == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    r.cancel = true;
  });
  int64_t t0 = r.clock.NowMicros();
  Status s = r.Run();
  canceller.join();
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.message();
  EXPECT_EQ(r.clock.NowMicros(), t0);
  EXPECT_EQ(r.Value("SELECT count(*) FROM _sluice_chunks"), "0");
}

// The backfill's own connection syncs with NORMAL only where a lost tail of
// commits is safe (WAL) and the user did not ask for FULL; read back with
// PRAGMA on that very connection after the run.
TEST(BackfillerTest, TheBackfillConnectionSyncsNormallyOnlyInWalModeUnlessAskedForFull) {
  struct Case {
    bool wal, full_sync;
    const char* synchronous;  // 1 = NORMAL, 2 = FULL
  };
  for (const Case& c : {Case{true, false, "1"}, Case{false, false, "2"}, Case{true, true, "2"}}) {
    SCOPED_TRACE(std::string(c.wal ? "WAL" : "rollback journal") + (c.full_sync ? ", --full-sync" : ""));
    Rig r(500);
    if (c.wal) {
      ASSERT_TRUE(r.conn->Exec("PRAGMA journal_mode = WAL").ok());
    }
    r.settings.full_sync = c.full_sync;
    ASSERT_TRUE(r.Run().ok());
    auto pragma = [&](const std::string& name) {
      auto v = r.conn->Query("PRAGMA " + name, {});
      EXPECT_TRUE(v.ok()) << v.status().message();
      return v.ok() && !v->rows.empty() ? v->rows[0][0].text : "";
    };
    EXPECT_EQ(pragma("journal_mode"), c.wal ? "wal" : "delete");
    EXPECT_EQ(pragma("synchronous"), c.synchronous);
    // A fresh connection of the application keeps SQLite's default (FULL).
    EXPECT_EQ(r.Value("PRAGMA synchronous"), "2");
    EXPECT_EQ(r.Value("SELECT count(*) FROM t WHERE v2 IS NOT lower(v)"), "0");
    EXPECT_EQ(r.Value("SELECT rows_done || '/' || done FROM _sluice_checkpoints"), "500/1");
  }
}

// The first run's count, which sizes progress, is SQLite's whole-table
// count (its cheap b-tree count) because no writer can add a row in the
// write transaction that read the last key; PostgreSQL keeps counting up to
// that key. The total must still be every row the walk covers.
TEST(BackfillerTest, TheFirstRunCountsEveryRowUpToTheLastKeyAsItsTotal) {
  db::SqliteDialect lite;
  db::PostgresDialect pg("public", "sluice");
  EXPECT_EQ(CountUpToSql(lite, "t", {"id"}), "SELECT count(*) FROM \"t\"");
  EXPECT_THAT(CountUpToSql(pg, "t", {"id"}), HasSubstr(" WHERE "));

  Rig r(1000);
  // Keys with gaps: the count cannot come from the key range.
  ASSERT_TRUE(r.conn->Exec("DELETE FROM t WHERE id % 4 = 0 OR id > 900").ok());
  ASSERT_EQ(r.Value("SELECT count(*) FROM t"), "675");
  std::vector<int64_t> totals;
  r.hooks.on_progress = [&](const Progress& p) { totals.push_back(p.rows_total); };
  ASSERT_TRUE(r.Run().ok());
  EXPECT_EQ(r.Value("SELECT rows_total || '/' || rows_done || '/' || done FROM _sluice_checkpoints"), "675/675/1");
  ASSERT_FALSE(totals.empty());
  for (int64_t t : totals) EXPECT_EQ(t, 675);
  EXPECT_EQ(r.Value("SELECT count(*) FROM t WHERE v2 IS NOT lower(v)"), "0");
}

}  // namespace
}  // namespace sluice::backfill
