#include "db/fault_injection.h"

#include <algorithm>
#include <utility>

namespace sluice::db {

// --- ConnectionWrapper ----------------------------------------------------------

ConnectionWrapper::ConnectionWrapper(std::unique_ptr<Connection> target)
    : target_(std::move(target)), dialect_(&target_->dialect()), description_(target_->Describe()) {}

ConnectionWrapper::~ConnectionWrapper() = default;

Status ConnectionWrapper::Closed() const {
  return Unavailable("connection to " + description_ + " is closed (lost; Reconnect opens a new one)");
}

void ConnectionWrapper::CloseTarget() { target_.reset(); }

void ConnectionWrapper::ReplaceTarget(std::unique_ptr<Connection> target) {
  target_ = std::move(target);
  if (target_) dialect_ = &target_->dialect();
}

Result<QueryResult> ConnectionWrapper::Query(std::string_view sql, const std::vector<Value>& params) {
  if (!target_) return Closed();
  return target_->Query(sql, params);
}
Status ConnectionWrapper::Exec(std::string_view sql) { return target_ ? target_->Exec(sql) : Closed(); }
Status ConnectionWrapper::Execute(const Statement& stmt) { return target_ ? target_->Execute(stmt) : Closed(); }
Status ConnectionWrapper::Begin() { return target_ ? target_->Begin() : Closed(); }
Status ConnectionWrapper::BeginSnapshot() { return target_ ? target_->BeginSnapshot() : Closed(); }
Status ConnectionWrapper::Commit() { return target_ ? target_->Commit() : Closed(); }
// Rolling back a closed connection is a no-op: its server session ended,
// which rolled the transaction back.
Status ConnectionWrapper::Rollback() { return target_ ? target_->Rollback() : Status::Ok(); }
bool ConnectionWrapper::in_transaction() const { return target_ && target_->in_transaction(); }
Result<Schema> ConnectionWrapper::Introspect() {
  if (!target_) return Closed();
  return target_->Introspect();
}
Status ConnectionWrapper::Reconnect() { return target_ ? target_->Reconnect() : Closed(); }
Status ConnectionWrapper::AddSessionSetup(std::string sql) {
  return target_ ? target_->AddSessionSetup(std::move(sql)) : Closed();
}
std::string ConnectionWrapper::DescribeLockHolders(const std::vector<std::string>& tables) {
  return target_ ? target_->DescribeLockHolders(tables) : "";
}
Result<LockAttempt> ConnectionWrapper::TryLock(const std::string& name) {
  if (!target_) return Closed();
  return target_->TryLock(name);
}
Status ConnectionWrapper::Unlock(const std::string& name) { return target_ ? target_->Unlock(name) : Closed(); }
std::string ConnectionWrapper::Describe() const { return target_ ? target_->Describe() : description_; }

// --- AdapterWrapper -------------------------------------------------------------

AdapterWrapper::AdapterWrapper(std::unique_ptr<Adapter> target) : target_(std::move(target)) {}

// --- errors as the real adapters report them -------------------------------------

namespace {
bool IsPostgres(const Dialect& d) { return d.name() == "postgres"; }

std::string Head(std::string_view sql) {
  std::string s(sql.substr(0, 60));
  std::replace(s.begin(), s.end(), '\n', ' ');
  return sql.size() > 60 ? s + "..." : s;
}
}  // namespace

Status ConnectionLostError() {
  return Unavailable("lost the connection to the server (injected): server closed the connection unexpectedly");
}

Status DiskFullError(const Dialect& d) {
  if (IsPostgres(d)) {
    return Status(StatusCode::kResourceExhausted,
                  "could not extend file \"base/16384/16385\": No space left on device (injected)", "SQLSTATE 53100");
  }
  return Status(StatusCode::kResourceExhausted, "database or disk is full (injected)", "SQLITE_FULL (13)");
}

Status DeadlockError(const Dialect& d) {
  if (IsPostgres(d)) return Status(StatusCode::kAborted, "deadlock detected (injected)", "SQLSTATE 40P01");
  return Status(StatusCode::kAborted, "database is locked (injected) (another connection held the lock longer than sluice waits for it)",
                "SQLITE_BUSY (5)");
}

namespace {
Status StallTimeoutError(const Dialect& d, std::chrono::milliseconds limit, std::string_view sql) {
  return Status(StatusCode::kAborted,
                "statement timed out (injected stall of " + std::to_string(limit.count()) + " ms): " + Head(sql),
                IsPostgres(d) ? "SQLSTATE 57014" : "SQLITE_INTERRUPT (9)");
}
}  // namespace

// --- FaultPlan --------------------------------------------------------------------

int FaultPlan::AddRule(Rule r) {
  MutexLock l(&mu_);
  r.id = next_id_++;
  rules_.push_back(std::move(r));
  return rules_.back().id;
}

int FaultPlan::FailStatement(std::string sql_contains, int64_t nth, Status error, bool every_time) {
  Rule r;
  r.kind = Kind::kFailStatement;
  r.sql_contains = std::move(sql_contains);
  r.nth = nth;
  r.every_time = every_time;
  r.error = std::move(error);
  return AddRule(std::move(r));
}

int FaultPlan::FailConnect(int64_t nth, Status error, bool every_time) {
  Rule r;
  r.kind = Kind::kFailConnect;
  r.nth = nth;
  r.every_time = every_time;
  r.error = std::move(error);
  return AddRule(std::move(r));
}

int FaultPlan::LoseConnectionInCommit(CommitLoss how, int64_t nth, std::string in_transaction_with) {
  Rule r;
  r.kind = Kind::kLoseInCommit;
  r.loss = how;
  r.nth = nth;
  r.sql_contains = std::move(in_transaction_with);
  return AddRule(std::move(r));
}

int FaultPlan::Stall(std::string sql_contains, std::chrono::milliseconds max_wait, int64_t nth, bool every_time) {
  Rule r;
  r.kind = Kind::kStall;
  r.sql_contains = std::move(sql_contains);
  r.max_wait = max_wait;
  r.nth = nth;
  r.every_time = every_time;
  return AddRule(std::move(r));
}

template <typename Pred>
void FaultPlan::RemoveRules(Pred pred) {
  for (const auto& r : rules_) {
    if (pred(r)) removed_fired_[r.id] = r.fired;
  }
  std::erase_if(rules_, pred);
}

void FaultPlan::ReleaseStalls() {
  MutexLock l(&mu_);
  ++release_epoch_;
  RemoveRules([](const Rule& r) { return r.kind == Kind::kStall; });
  changed_.notify_all();
}

void FaultPlan::CancelStalls() {
  MutexLock l(&mu_);
  ++cancel_epoch_;
  RemoveRules([](const Rule& r) { return r.kind == Kind::kStall; });
  changed_.notify_all();
}

void FaultPlan::SetCancelFlag(const std::atomic<bool>* cancel) {
  MutexLock l(&mu_);
  cancel_flag_ = cancel;
  changed_.notify_all();
}

bool FaultPlan::WaitForStalled(int n, std::chrono::milliseconds timeout) {
  MutexLock l(&mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (stalled_ < n) {
    if (changed_.wait_until(mu_, deadline) == std::cv_status::timeout) return stalled_ >= n;
  }
  return true;
}

int FaultPlan::stalled() const {
  MutexLock l(&mu_);
  return stalled_;
}

void FaultPlan::Clear() {
  MutexLock l(&mu_);
  ++release_epoch_;
  RemoveRules([](const Rule&) { return true; });
  changed_.notify_all();
}

int64_t FaultPlan::statements() const {
  MutexLock l(&mu_);
  return statements_;
}

void FaultPlan::RecordSql(bool on) {
  MutexLock l(&mu_);
  record_ = on;
}

std::vector<std::string> FaultPlan::recorded() const {
  MutexLock l(&mu_);
  return recorded_;
}

int64_t FaultPlan::fired() const {
  MutexLock l(&mu_);
  return fired_total_;
}

int64_t FaultPlan::fired(int id) const {
  MutexLock l(&mu_);
  for (const auto& r : rules_) {
    if (r.id == id) return r.fired;
  }
  auto it = removed_fired_.find(id);
  return it == removed_fired_.end() ? 0 : it->second;
}

bool FaultPlan::Fires(Rule& r) {
  ++r.matches;
  bool fires = r.every_time ? r.matches >= r.nth : r.matches == r.nth;
  if (fires) ++r.fired;
  return fires;
}

FaultPlan::Decision FaultPlan::OnConnect() {
  MutexLock l(&mu_);
  for (auto& r : rules_) {
    if (r.kind != Kind::kFailConnect || !Fires(r)) continue;
    ++fired_total_;
    return {Decision::Action::kFail, r.error};
  }
  return {};
}

FaultPlan::Decision FaultPlan::OnStatement(std::string_view sql, bool is_commit,
                                           const std::vector<std::string>& txn_sql, const Dialect& dialect) {
  MutexLock l(&mu_);
  ++statements_;
  if (record_) recorded_.emplace_back(sql);
  auto contains = [](std::string_view text, const std::string& part) {
    return part.empty() || text.find(part) != std::string_view::npos;
  };
  // Stalls first: a released statement then meets the other rules as they
  // are by then.
  for (auto& r : rules_) {
    if (r.kind != Kind::kStall || !contains(sql, r.sql_contains) || !Fires(r)) continue;
    ++fired_total_;
    const auto limit = r.max_wait;
    const uint64_t released = release_epoch_, cancelled = cancel_epoch_;
    ++stalled_;
    changed_.notify_all();
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + limit;
    auto flagged = [this]() EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancel_flag_ && cancel_flag_->load(); };
    while (release_epoch_ == released && cancel_epoch_ == cancelled && !flagged() && Clock::now() < deadline) {
      // The cancel flag cannot notify: poll it.
      auto until = cancel_flag_ ? std::min(deadline, Clock::now() + std::chrono::milliseconds(10)) : deadline;
      changed_.wait_until(mu_, until);
    }
    const bool run = release_epoch_ != released;
    const bool cancel = cancel_epoch_ != cancelled || flagged();
    --stalled_;
    changed_.notify_all();
    if (cancel) {
      return {Decision::Action::kFail, Cancelled("statement cancelled while stalled (injected): " + Head(sql))};
    }
    if (!run) return {Decision::Action::kFail, StallTimeoutError(dialect, limit, sql)};
    break;  // released; `rules_` may have changed meanwhile
  }
  for (auto& r : rules_) {
    if (r.kind == Kind::kFailStatement) {
      if (!contains(sql, r.sql_contains) || !Fires(r)) continue;
      ++fired_total_;
      return {Decision::Action::kFail, r.error};
    }
    if (r.kind == Kind::kLoseInCommit && is_commit) {
      bool in_txn = r.sql_contains.empty() ||
                    std::any_of(txn_sql.begin(), txn_sql.end(),
                                [&](const std::string& s) { return s.find(r.sql_contains) != std::string::npos; });
      if (!in_txn || !Fires(r)) continue;
      ++fired_total_;
      Decision d;
      d.action = Decision::Action::kLoseInCommit;
      d.loss = r.loss;
      return d;
    }
  }
  return {};
}

// --- FaultInjectingConnection ---------------------------------------------------------

// A connection that asks the plan before each fault point. After a dropped
// connection it reopens through the real adapter and re-applies the session
// setup it was given, as the real adapters' Reconnect does.
class FaultInjectingConnection : public ConnectionWrapper {
 public:
  FaultInjectingConnection(std::unique_ptr<Connection> target, Adapter* real, std::shared_ptr<FaultPlan> plan)
      : ConnectionWrapper(std::move(target)), real_(real), plan_(std::move(plan)) {}

  Result<QueryResult> Query(std::string_view sql, const std::vector<Value>& params) override {
    Status s = Inject(sql);
    if (!s.ok()) return s;
    return ConnectionWrapper::Query(sql, params);
  }
  Status Exec(std::string_view sql) override {
    SLUICE_RETURN_IF_ERROR(Inject(sql));
    return ConnectionWrapper::Exec(sql);
  }
  Status Execute(const Statement& stmt) override {
    SLUICE_RETURN_IF_ERROR(Inject(stmt.sql));
    return ConnectionWrapper::Execute(stmt);
  }
  Status AddSessionSetup(std::string sql) override {
    SLUICE_RETURN_IF_ERROR(Inject(sql));
    SLUICE_RETURN_IF_ERROR(ConnectionWrapper::AddSessionSetup(sql));
    setup_.push_back(std::move(sql));
    return Status::Ok();
  }
  Status Begin() override {
    SLUICE_RETURN_IF_ERROR(Inject("BEGIN"));
    txn_sql_.clear();
    return ConnectionWrapper::Begin();
  }
  Status BeginSnapshot() override {
    SLUICE_RETURN_IF_ERROR(Inject("BEGIN SNAPSHOT"));
    txn_sql_.clear();
    return ConnectionWrapper::BeginSnapshot();
  }

  Status Commit() override {
    if (!target()) return Closed();
    FaultPlan::Decision d = plan_->OnStatement("COMMIT", true, txn_sql_, dialect());
    txn_sql_.clear();
    switch (d.action) {
      case FaultPlan::Decision::Action::kRun:
        return ConnectionWrapper::Commit();
      case FaultPlan::Decision::Action::kFail:
        // The server refused the COMMIT: the transaction is rolled back.
        target()->Rollback().IgnoreError();
        if (d.error.code() == StatusCode::kUnavailable) CloseTarget();
        return d.error;
      case FaultPlan::Decision::Action::kLoseInCommit:
        break;
    }
    if (d.loss == FaultPlan::CommitLoss::kAfterCommit) {
      Status real = ConnectionWrapper::Commit();
      if (!real.ok()) return real;  // the real COMMIT failed: report that, inject nothing
      CloseTarget();
      return InDoubt(
          "connection lost during COMMIT (injected: the COMMIT reached the server and committed; the reply was "
          "lost)");
    }
    CloseTarget();  // the server rolls back when the session ends
    return InDoubt(
        "connection lost during COMMIT (injected: the connection broke before COMMIT was sent; the server rolled the "
        "transaction back)");
  }

  Status Rollback() override {
    if (!target()) return Status::Ok();
    FaultPlan::Decision d = plan_->OnStatement("ROLLBACK", false, txn_sql_, dialect());
    txn_sql_.clear();
    Status real = ConnectionWrapper::Rollback();
    if (d.action != FaultPlan::Decision::Action::kFail) return real;
    if (d.error.code() == StatusCode::kUnavailable) CloseTarget();
    return d.error;
  }

  Status Reconnect() override {
    FaultPlan::Decision d = plan_->OnConnect();
    if (d.action == FaultPlan::Decision::Action::kFail) {
      CloseTarget();
      return d.error;
    }
    txn_sql_.clear();
    if (target()) return ConnectionWrapper::Reconnect();
    auto c = real_->Connect();
    if (!c.ok()) return c.status();
    for (const auto& sql : setup_) {
      Status s = (*c)->AddSessionSetup(sql);
      if (!s.ok()) {
        return Status(s.code(), "reconnected, but re-applying the session setup `" + Head(sql) + "` failed: " +
                                    s.message(), s.detail());
      }
    }
    ReplaceTarget(std::move(*c));
    return Status::Ok();
  }

 private:
  // The fault point of statement `sql`: OK to run it, or what to return.
  Status Inject(std::string_view sql) {
    if (!target()) return Closed();
    FaultPlan::Decision d = plan_->OnStatement(sql, false, txn_sql_, dialect());
    if (d.action == FaultPlan::Decision::Action::kFail) {
      if (d.error.code() == StatusCode::kUnavailable) {
        CloseTarget();
        txn_sql_.clear();
      }
      return d.error;
    }
    if (in_transaction()) txn_sql_.emplace_back(sql);
    return Status::Ok();
  }

  Adapter* real_;
  std::shared_ptr<FaultPlan> plan_;
  std::vector<std::string> setup_;    // AddSessionSetup, for a reopened target
  std::vector<std::string> txn_sql_;  // statements of the open transaction
};

// --- FaultInjectingAdapter ---------------------------------------------------------------

FaultInjectingAdapter::FaultInjectingAdapter(std::unique_ptr<Adapter> target, std::shared_ptr<FaultPlan> plan)
    : AdapterWrapper(std::move(target)), plan_(std::move(plan)) {}

Result<std::unique_ptr<Connection>> FaultInjectingAdapter::Connect() {
  FaultPlan::Decision d = plan_->OnConnect();
  if (d.action == FaultPlan::Decision::Action::kFail) return d.error;
  auto c = AdapterWrapper::Connect();
  if (!c.ok()) return c.status();
  return std::unique_ptr<Connection>(std::make_unique<FaultInjectingConnection>(std::move(*c), target(), plan_));
}

AdapterWrapFn FaultInjectingAdapter::Wrap(std::shared_ptr<FaultPlan> plan) {
  return [plan](std::unique_ptr<Adapter> a) -> std::unique_ptr<Adapter> {
    return std::make_unique<FaultInjectingAdapter>(std::move(a), plan);
  };
}

}  // namespace sluice::db
