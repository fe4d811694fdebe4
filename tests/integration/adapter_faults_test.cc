// The fault-injecting adapter (src/db/fault_injection.h) against real SQLite
// and PostgreSQL: an injected statement failure means the statement did not
// run, a COMMIT lost with its connection really committed (or really did
// not), a dropped connection really ended its session, a stalled statement
// blocks only itself until released, and the engine picks the wrapper up
// through the test-only OpenAdapter hook. Every outcome is checked through a
// second, unwrapped connection.
#include <atomic>
#include <chrono>
#include <thread>

#include "db/adapter.h"
#include "db/fault_injection.h"
#include "db/sqlite/sqlite_adapter.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using db::FaultPlan;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class AdapterFaults : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      SLUICE_ASSERT_PG_OK(PgCluster::Shared());
      url_ = PgCluster::Shared()->CreateDatabase("faults");
      ASSERT_FALSE(url_.empty());
    } else {
      url_ = "sqlite:" + dir_.File("app.db");
      SLUICE_ASSERT_OK(db::MakeSqliteAdapter({dir_.File("app.db"), true, 10000})->Connect().status());
    }
    auto real = db::OpenAdapter(url_);
    ASSERT_TRUE(real.ok()) << real.status().message();
    checker_adapter_ = std::move(*real);
    auto c = checker_adapter_->Connect();
    ASSERT_TRUE(c.ok()) << c.status().message();
    checker_ = std::move(*c);
    SLUICE_ASSERT_OK(checker_->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"));

    plan_ = std::make_shared<FaultPlan>();
    auto wrapped = db::OpenAdapter(url_);
    ASSERT_TRUE(wrapped.ok());
    adapter_ = std::make_unique<db::FaultInjectingAdapter>(std::move(*wrapped), plan_);
  }
  void TearDown() override { db::TEST_SetAdapterWrapper({}); }

  std::unique_ptr<db::Connection> Connect() {
    auto c = adapter_->Connect();
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // The ids in t, as the unwrapped connection sees them ("1,3").
  std::string Ids() {
    auto r = checker_->Query("SELECT id FROM t ORDER BY id");
    EXPECT_TRUE(r.ok()) << r.status().message();
    std::string out;
    if (!r.ok()) return "<error>";
    for (const auto& row : r->rows) out += (out.empty() ? "" : ",") + row[0].text;
    return out;
  }
  static std::string Insert(int id) { return "INSERT INTO t VALUES (" + std::to_string(id) + ", 'x')"; }
  const db::Dialect& dialect() { return checker_->dialect(); }

  TempDir dir_;
  std::string url_;
  std::unique_ptr<db::Adapter> checker_adapter_;
  std::unique_ptr<db::Connection> checker_;
  std::shared_ptr<FaultPlan> plan_;
  std::unique_ptr<db::Adapter> adapter_;
};

TEST_P(AdapterFaults, TheNthMatchingStatementFailsAndDoesNotRun) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  int rule = plan_->FailStatement("INSERT INTO t", 2, db::DiskFullError(dialect()));
  SLUICE_EXPECT_OK(c->Exec(Insert(1)));
  Status s = c->Exec(Insert(2));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.detail(), GetParam() == "postgres" ? "SQLSTATE 53100" : "SQLITE_FULL (13)");
  SLUICE_EXPECT_OK(c->Exec(Insert(3)));  // once
  EXPECT_EQ(Ids(), "1,3");
  EXPECT_EQ(plan_->fired(rule), 1);

  // Every time, from the first match, any statement.
  int every = plan_->FailStatement("", 1, db::DeadlockError(dialect()), /*every_time=*/true);
  EXPECT_EQ(c->Exec(Insert(4)).code(), StatusCode::kAborted);
  EXPECT_EQ(c->Query("SELECT 1").status().code(), StatusCode::kAborted);
  EXPECT_EQ(plan_->fired(every), 2);
  plan_->Clear();
  SLUICE_EXPECT_OK(c->Exec(Insert(4)));
  EXPECT_EQ(Ids(), "1,3,4");
  EXPECT_EQ(plan_->fired(every), 2);  // counts survive Clear
}

TEST_P(AdapterFaults, ALostConnectionEndsTheSessionUntilReconnect) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  SLUICE_ASSERT_OK(c->AddSessionSetup("CREATE TEMP VIEW marker AS SELECT 'kept' AS m"));
  plan_->FailStatement("VALUES (11", 1, db::ConnectionLostError());
  SLUICE_ASSERT_OK(c->Begin());
  SLUICE_ASSERT_OK(c->Exec(Insert(10)));
  EXPECT_EQ(c->Exec(Insert(11)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(c->Query("SELECT 1").status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(c->in_transaction());
  SLUICE_EXPECT_OK(c->Rollback());  // nothing left to roll back
  EXPECT_EQ(Ids(), "");             // the session ended: 10 rolled back

  SLUICE_ASSERT_OK(c->Reconnect());
  auto m = c->Query("SELECT m FROM marker");  // the setup came back with it
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->Scalar().text, "kept");
  SLUICE_EXPECT_OK(c->Exec(Insert(12)));
  EXPECT_EQ(Ids(), "12");
}

TEST_P(AdapterFaults, CommitCommittedButTheReplyWasLost) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  SLUICE_ASSERT_OK(c->AddSessionSetup("CREATE TEMP VIEW marker AS SELECT 'kept' AS m"));
  plan_->LoseConnectionInCommit(FaultPlan::CommitLoss::kAfterCommit, 1, "VALUES (21");
  // A transaction without that statement commits normally.
  SLUICE_ASSERT_OK(c->Begin());
  SLUICE_ASSERT_OK(c->Exec(Insert(20)));
  SLUICE_ASSERT_OK(c->Commit());
  SLUICE_ASSERT_OK(c->Begin());
  SLUICE_ASSERT_OK(c->Exec(Insert(21)));
  Status s = c->Commit();
  EXPECT_EQ(s.code(), StatusCode::kInDoubt) << s.message();
  EXPECT_EQ(Ids(), "20,21");  // it did commit
  EXPECT_EQ(c->Exec(Insert(22)).code(), StatusCode::kUnavailable);
  SLUICE_ASSERT_OK(c->Reconnect());
  auto m = c->Query("SELECT m FROM marker");
  ASSERT_TRUE(m.ok()) << m.status().message();
  SLUICE_EXPECT_OK(c->Exec(Insert(22)));
  EXPECT_EQ(Ids(), "20,21,22");
}

TEST_P(AdapterFaults, CommitNeverSentRollsBack) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  int rule = plan_->LoseConnectionInCommit(FaultPlan::CommitLoss::kBeforeCommit);
  SLUICE_ASSERT_OK(c->Begin());
  SLUICE_ASSERT_OK(c->Exec(Insert(31)));
  Status s = c->Commit();
  EXPECT_EQ(s.code(), StatusCode::kInDoubt) << s.message();
  EXPECT_EQ(plan_->fired(rule), 1);
  EXPECT_EQ(Ids(), "");
  // The row lock is gone with the session: another writer can take the key.
  SLUICE_EXPECT_OK(checker_->Exec(Insert(31)));
  EXPECT_EQ(Ids(), "31");
  EXPECT_EQ(c->Query("SELECT 1").status().code(), StatusCode::kUnavailable);
  SLUICE_ASSERT_OK(c->Reconnect());
  SLUICE_EXPECT_OK(c->Exec(Insert(32)));
  EXPECT_EQ(Ids(), "31,32");
}

TEST_P(AdapterFaults, AStalledStatementBlocksOnlyItselfUntilReleased) {
  auto signal = Connect();
  auto worker = Connect();
  ASSERT_NE(signal, nullptr);
  ASSERT_NE(worker, nullptr);
  int rule = plan_->Stall("AS hung_signal", 120s);
  Result<db::QueryResult> got = Status(StatusCode::kInternal, "not run");
  std::thread t([&] { got = signal->Query("SELECT 7 AS hung_signal"); });
  ASSERT_TRUE(plan_->WaitForStalled(1, 60s));
  // Meanwhile the other connection works.
  for (int i = 40; i < 45; ++i) SLUICE_EXPECT_OK(worker->Exec(Insert(i)));
  EXPECT_EQ(Ids(), "40,41,42,43,44");
  EXPECT_EQ(plan_->stalled(), 1);
  plan_->ReleaseStalls();
  t.join();
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->Scalar().text, "7");
  EXPECT_EQ(plan_->fired(rule), 1);
  // Released stalls are removed: the same statement runs at once now.
  EXPECT_TRUE(signal->Query("SELECT 7 AS hung_signal").ok());
}

TEST_P(AdapterFaults, AStallEndsAsATimeoutOrACancelWithoutRunning) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  plan_->Stall("VALUES (50", 20ms);
  Status timed_out = c->Exec(Insert(50));
  EXPECT_EQ(timed_out.code(), StatusCode::kAborted);
  EXPECT_THAT(timed_out.message(), HasSubstr("statement timed out"));
  EXPECT_EQ(timed_out.detail(), GetParam() == "postgres" ? "SQLSTATE 57014" : "SQLITE_INTERRUPT (9)");
  plan_->Clear();

  plan_->Stall("VALUES (51", 120s);
  Status cancelled;
  std::thread t([&] { cancelled = c->Exec(Insert(51)); });
  ASSERT_TRUE(plan_->WaitForStalled(1, 60s));
  plan_->CancelStalls();
  t.join();
  EXPECT_EQ(cancelled.code(), StatusCode::kCancelled);

  // The engine's cancel flag ends a stall too.
  std::atomic<bool> stop{false};
  plan_->SetCancelFlag(&stop);
  plan_->Stall("VALUES (53", 120s);
  Status flagged;
  std::thread f([&] { flagged = c->Exec(Insert(53)); });
  ASSERT_TRUE(plan_->WaitForStalled(1, 60s));
  stop = true;
  f.join();
  plan_->SetCancelFlag(nullptr);
  EXPECT_EQ(flagged.code(), StatusCode::kCancelled);

  EXPECT_EQ(Ids(), "");
  SLUICE_EXPECT_OK(c->Exec(Insert(52)));
  EXPECT_EQ(Ids(), "52");
}

TEST_P(AdapterFaults, CountsAndRecordsStatementsAndFailsConnects) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  int64_t before = plan_->statements();
  plan_->RecordSql(true);
  SLUICE_ASSERT_OK(c->Begin());
  SLUICE_ASSERT_OK(c->Exec(Insert(60)));
  SLUICE_ASSERT_OK(c->Commit());
  EXPECT_EQ(plan_->statements() - before, 3);
  EXPECT_EQ(plan_->recorded(), (std::vector<std::string>{"BEGIN", Insert(60), "COMMIT"}));

  int rule = plan_->FailConnect(1, db::ConnectionLostError());
  auto refused = adapter_->Connect();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(adapter_->Connect().ok());
  plan_->FailConnect(1, Status(StatusCode::kResourceExhausted, "too many connections (injected)", "SQLSTATE 53300"));
  EXPECT_EQ(c->Reconnect().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(c->Query("SELECT 1").status().code(), StatusCode::kUnavailable);  // left closed
  SLUICE_EXPECT_OK(c->Reconnect());
  EXPECT_TRUE(c->Query("SELECT 1").ok());
  EXPECT_EQ(plan_->fired(rule), 1);
  EXPECT_EQ(plan_->fired(), 2);
}

// The engine reaches the database only through OpenAdapter: with the hook
// set, its sessions run under the plan.
TEST_P(AdapterFaults, TheEngineUsesTheWrapperThroughTheTestHook) {
  SLUICE_ASSERT_OK(checker_->Exec(Insert(70)));
  db::TEST_SetAdapterWrapper(db::FaultInjectingAdapter::Wrap(plan_));
  plan_->RecordSql(true);
  Options o;
  o.db_url = url_;
  o.actor = "test";
  auto m = Migrator::Open(o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto session = (*m)->Connect("");
  ASSERT_TRUE(session.ok()) << session.status().message();
  plan_->FailStatement("FROM t WHERE id = 70", 1, db::DiskFullError(dialect()));
  auto r = (*session)->Query("SELECT v FROM t WHERE id = 70");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  auto recorded = plan_->recorded();
  EXPECT_NE(std::find(recorded.begin(), recorded.end(), "SELECT v FROM t WHERE id = 70"), recorded.end());

  db::TEST_SetAdapterWrapper({});
  int64_t seen = plan_->statements();
  auto plain = db::OpenAdapter(url_);
  ASSERT_TRUE(plain.ok());
  auto pc = (*plain)->Connect();
  ASSERT_TRUE(pc.ok());
  EXPECT_TRUE((*pc)->Query("SELECT 1").ok());
  EXPECT_EQ(plan_->statements(), seen);
}

INSTANTIATE_TEST_SUITE_P(Databases, AdapterFaults, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace sluice::testing
