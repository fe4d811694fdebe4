// Wrappers around the adapter interface, and a fault-injecting one for tests
// of the hard paths (LevelDB's EnvWrapper and FaultInjectionTestEnv).
//
//   AdapterWrapper / ConnectionWrapper  forward every method to a wrapped
//       real adapter / connection; subclass and override what you need
//       (fault injection, tracing, metrics).
//   FaultInjectingAdapter  a wrapper whose connections consult a FaultPlan
//       shared with the test before each statement, commit and connect.
//   FaultPlan  the faults to inject, and what the connections saw. Thread-
//       safe: a test changes it while backfill workers run.
//
// The wrapped database is real: a failed statement did not run, a COMMIT
// "lost with the connection" really committed (or really did not), a
// dropped connection really closed its server session.
//
// Usage (in-process, under the engine, through the test-only hook):
//
//   auto plan = std::make_shared<db::FaultPlan>();
//   plan->FailStatement("UPDATE \"orders\"", 3, db::DiskFullError(dialect));
//   db::TEST_SetAdapterWrapper(db::FaultInjectingAdapter::Wrap(plan));
//   ... run the migrator ...
//   db::TEST_SetAdapterWrapper({});
//   EXPECT_EQ(plan->fired(), 1);
//
// Fault points and the SQL they match, counted per connection call:
//   Query / Exec / Execute   the statement's SQL (Execute: Statement::sql)
//   AddSessionSetup          the setup SQL
//   Begin / BeginSnapshot    "BEGIN" / "BEGIN SNAPSHOT"
//   Commit / Rollback        "COMMIT" / "ROLLBACK"
//   Adapter::Connect, Connection::Reconnect   connect faults (FailConnect)
// Introspect, TryLock, Unlock and DescribeLockHolders are forwarded
// unchecked (they fail with kUnavailable while the connection is dropped).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/thread_annotations.h"
#include "db/adapter.h"

namespace sluice::db {

// Forwards every Connection method to `target`. After CloseTarget() the
// wrapper behaves like a closed connection (statements fail with
// kUnavailable) until ReplaceTarget(). Thread-safety: as Connection.
class ConnectionWrapper : public Connection {
 public:
  explicit ConnectionWrapper(std::unique_ptr<Connection> target);
  ~ConnectionWrapper() override;

  // The wrapped connection; null while closed.
  Connection* target() const { return target_.get(); }

  const Dialect& dialect() const override { return *dialect_; }
  Result<QueryResult> Query(std::string_view sql, const std::vector<Value>& params = {}) override;
  Status Exec(std::string_view sql) override;
  Status Execute(const Statement& stmt) override;
  Status Begin() override;
  Status BeginSnapshot() override;
  Status Commit() override;
  Status Rollback() override;
  bool in_transaction() const override;
  Result<Schema> Introspect() override;
  Status Reconnect() override;
  Status AddSessionSetup(std::string sql) override;
  std::string DescribeLockHolders(const std::vector<std::string>& tables) override;
  Result<LockAttempt> TryLock(const std::string& name) override;
  Status Unlock(const std::string& name) override;
  std::string Describe() const override;
  void Cancel() override {
    if (target_) target_->Cancel();
  }
  Status CopyDatabaseTo(const std::string& path, const std::atomic<bool>* cancel = nullptr) override {
    return target_ ? target_->CopyDatabaseTo(path, cancel) : Unavailable("the connection was closed");
  }
  Result<ScratchCopy> CreateScratchCopy(const ScratchCopyRequest& request) override {
    if (!target_) return Unavailable("the connection was closed");
    return target_->CreateScratchCopy(request);
  }
  Status DropScratchCopy(const ScratchCopy& copy, bool keep) override {
    return target_ ? target_->DropScratchCopy(copy, keep) : Unavailable("the connection was closed");
  }
  Result<std::vector<std::string>> DropLeftoverScratchCopies() override {
    if (!target_) return Unavailable("the connection was closed");
    return target_->DropLeftoverScratchCopies();
  }

 protected:
  // Destroys the wrapped connection, as a lost network would end it: the
  // server rolls back its open transaction and drops its session.
  void CloseTarget();
  void ReplaceTarget(std::unique_ptr<Connection> target);
  Status Closed() const;

 private:
  std::unique_ptr<Connection> target_;
  const Dialect* dialect_;
  std::string description_;
};

// Forwards every Adapter method to `target`, which it owns.
class AdapterWrapper : public Adapter {
 public:
  explicit AdapterWrapper(std::unique_ptr<Adapter> target);
  Adapter* target() const { return target_.get(); }
  const Dialect& dialect() const override { return target_->dialect(); }
  Result<std::unique_ptr<Connection>> Connect() override { return target_->Connect(); }
  std::string Describe() const override { return target_->Describe(); }

 private:
  std::unique_ptr<Adapter> target_;
};

// Errors as the real adapters report them, for FaultPlan rules.
// kUnavailable, as when the server or network went away.
Status ConnectionLostError();
// kResourceExhausted "disk full": SQLSTATE 53100 on PostgreSQL,
// SQLITE_FULL (13) on SQLite (chosen by dialect.name(): test-only code).
Status DiskFullError(const Dialect& dialect);
// kAborted, a deadlock (40P01) / SQLITE_BUSY (5).
Status DeadlockError(const Dialect& dialect);

// What a FaultInjectingAdapter's connections do, shared with the test.
// Rules are matched in the order they were added; each counts its own
// matches from the moment it was added. Thread-safe.
class FaultPlan {
 public:
  // How a COMMIT loses its connection.
  enum class CommitLoss {
    // The COMMIT reached the server and committed; the reply was lost.
    kAfterCommit,
    // The connection broke before COMMIT was sent: the server rolls the
    // transaction back when the session ends.
    kBeforeCommit,
  };
  // How a stalled statement ended.
  enum class StallEnd { kReleased, kTimedOut, kCancelled };

  FaultPlan() = default;
  FaultPlan(const FaultPlan&) = delete;
  FaultPlan& operator=(const FaultPlan&) = delete;

  // The `nth` (1-based) statement whose SQL contains `sql_contains` ("" =
  // any) returns `error` instead of running; with `every_time`, so does
  // every later match. A kUnavailable error also drops the connection (its
  // open transaction rolls back; later statements fail until Reconnect), as
  // a real lost connection would. An injected COMMIT failure rolls the real
  // transaction back; an injected ROLLBACK failure still rolls back.
  // Returns the rule's id (for fired(id)).
  int FailStatement(std::string sql_contains, int64_t nth, Status error, bool every_time = false);

  // The `nth` Adapter::Connect or Connection::Reconnect (counted together)
  // fails with `error` without connecting.
  int FailConnect(int64_t nth, Status error, bool every_time = false);

  // The `nth` Commit of a transaction that ran a statement containing
  // `in_transaction_with` ("" = any transaction) loses the connection as
  // `how` says. Commit returns kInDoubt; the real connection is closed, so
  // later statements fail with kUnavailable until Reconnect, which opens a
  // new session and re-applies its session setup.
  int LoseConnectionInCommit(CommitLoss how, int64_t nth = 1, std::string in_transaction_with = "");

  // Statements containing `sql_contains` (from the `nth` match on; every
  // later one too when `every_time`) block, as behind a hung server, until
  // ReleaseStalls() (then they run), CancelStalls() (kCancelled, not run)
  // or `max_wait` passes (kAborted "statement timed out (injected stall)",
  // detail SQLSTATE 57014, not run) - like a real statement_timeout.
  int Stall(std::string sql_contains, std::chrono::milliseconds max_wait, int64_t nth = 1,
            bool every_time = true);
  // Lets every statement blocked now run, and removes the stall rules.
  void ReleaseStalls();
  // Fails every statement blocked now with kCancelled, and removes the
  // stall rules.
  void CancelStalls();
  // Stalled statements also end with kCancelled (not run) once `*cancel`
  // is true - pass the cancel flag given to the engine (Options::cancel,
  // BackfillOptions::cancel) so that a cancelled run does not leave a test
  // thread blocked. Polled every 10 ms; nullptr (the default) for none.
  // `cancel` must outlive the stalls.
  void SetCancelFlag(const std::atomic<bool>* cancel);
  // Waits until at least `n` statements are blocked by stalls, at most
  // `timeout`. True if they are.
  bool WaitForStalled(int n, std::chrono::milliseconds timeout);
  // Statements blocked right now.
  int stalled() const;

  // Removes every rule (releasing stalled statements). Counters stay.
  void Clear();

  // Statements seen by all connections (fault points above, connects
  // excluded), failed or not.
  int64_t statements() const;
  // With `on`, remembers the SQL of every statement seen from now on.
  void RecordSql(bool on);
  std::vector<std::string> recorded() const;
  // Faults injected so far: all rules, or rule `id`.
  int64_t fired() const;
  int64_t fired(int id) const;

 private:
  friend class FaultInjectingConnection;
  friend class FaultInjectingAdapter;

  enum class Kind { kFailStatement, kFailConnect, kLoseInCommit, kStall };
  struct Rule {
    int id = 0;
    Kind kind = Kind::kFailStatement;
    std::string sql_contains;
    int64_t nth = 1;
    bool every_time = false;
    Status error;
    CommitLoss loss = CommitLoss::kAfterCommit;
    std::chrono::milliseconds max_wait{0};
    int64_t matches = 0;
    int64_t fired = 0;
  };
  // What a fault point must do.
  struct Decision {
    enum class Action { kRun, kFail, kLoseInCommit } action = Action::kRun;
    Status error;
    CommitLoss loss = CommitLoss::kAfterCommit;
  };

  int AddRule(Rule r) LOCKS_EXCLUDED(mu_);
  // A statement `sql` is about to run (`txn_sql`: statements of the open
  // transaction, for commit rules; `is_commit` for Commit). Blocks here
  // while a stall rule holds it.
  Decision OnStatement(std::string_view sql, bool is_commit, const std::vector<std::string>& txn_sql,
                       const Dialect& dialect) LOCKS_EXCLUDED(mu_);
  Decision OnConnect() LOCKS_EXCLUDED(mu_);
  // True when `r` fires on this match (counts it).
  static bool Fires(Rule& r);
  // Removes the rules `pred` selects, keeping their fired() counts.
  template <typename Pred>
  void RemoveRules(Pred pred) EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  // Signalled when stalled_ or an epoch changes.
  std::condition_variable_any changed_;
  std::vector<Rule> rules_ GUARDED_BY(mu_);
  std::map<int, int64_t> removed_fired_ GUARDED_BY(mu_);  // fired() of removed rules
  int next_id_ GUARDED_BY(mu_) = 1;
  int64_t statements_ GUARDED_BY(mu_) = 0;
  int64_t fired_total_ GUARDED_BY(mu_) = 0;
  bool record_ GUARDED_BY(mu_) = false;
  std::vector<std::string> recorded_ GUARDED_BY(mu_);
  int stalled_ GUARDED_BY(mu_) = 0;
  // Bumped by ReleaseStalls (and Clear) / CancelStalls; a stalled statement
  // waits until one differs from the value it started with.
  uint64_t release_epoch_ GUARDED_BY(mu_) = 0;
  uint64_t cancel_epoch_ GUARDED_BY(mu_) = 0;
  const std::atomic<bool>* cancel_flag_ GUARDED_BY(mu_) = nullptr;
};

// An adapter whose connections inject the faults of a FaultPlan. Owns the
// real adapter; its connections must not outlive it (as with any adapter).
class FaultInjectingAdapter : public AdapterWrapper {
 public:
  FaultInjectingAdapter(std::unique_ptr<Adapter> target, std::shared_ptr<FaultPlan> plan);

  // Connects through the real adapter unless a connect fault fires, and
  // wraps the connection.
  Result<std::unique_ptr<Connection>> Connect() override;

  // For TEST_SetAdapterWrapper: wraps every adapter OpenAdapter makes.
  static AdapterWrapFn Wrap(std::shared_ptr<FaultPlan> plan);

 private:
  std::shared_ptr<FaultPlan> plan_;
};

}  // namespace sluice::db
