#include "engine/phase.h"

#include <algorithm>

#include "common/clock.h"
#include "common/sql_text.h"

namespace sluice::engine {
namespace {

std::string FirstLine(const std::string& sql) {
  std::string l = sql.substr(0, sql.find('\n'));
  return l.size() > 160 ? l.substr(0, 157) + "..." : l;
}

}  // namespace

Status RetryLocks(db::Connection& conn, const Options& o, const std::vector<std::string>& tables,
                  const std::function<Status()>& fn) {
  Clock* clock = o.clock ? o.clock : Clock::Real();
  const int64_t deadline = clock->NowMicros() + o.lock_retry_budget_ms * 1000;
  unsigned seed = static_cast<unsigned>(clock->NowMicros());
  for (int attempt = 0;; ++attempt) {
    Status s = fn();
    if (s.ok() || s.code() != StatusCode::kAborted) return s;
    if (clock->NowMicros() >= deadline) {
      std::vector<std::string> qualified;
      for (const auto& t : tables) qualified.push_back(conn.dialect().Table(t));
      std::string holders = conn.DescribeLockHolders(qualified);
      return FailedPrecondition("could not get the locks it needs within " +
                                std::to_string(o.lock_retry_budget_ms / 1000) + "s (" + std::to_string(attempt + 1) +
                                " attempts, each waiting at most " + std::to_string(o.lock_timeout_ms) + " ms): " +
                                s.message() +
                                (holders.empty() ? "" : "; held by: " + holders) +
                                ". Nothing was changed by this attempt; rerun when the blocking sessions are gone");
    }
    int64_t backoff = std::min<int64_t>(2'000'000, 50'000LL << std::min(attempt, 6));
    seed = seed * 1103515245u + 12345u;
    backoff = backoff / 2 + static_cast<int64_t>(seed % static_cast<unsigned>(backoff / 2 + 1));
    clock->SleepMicros(backoff);
  }
}

namespace {

// Runs a phase's statements (see Transition in phase.h). `check` runs first
// in every transaction that records progress: it re-reads and validates the
// migration's record.
Status ExecutePhase(db::Connection& conn, StateStore& store, const Options& o, const PhaseRun& run,
                    const std::function<Status()>& check) {
  const db::Dialect& d = conn.dialect();
  struct Item {
    db::Statement stmt;
    std::string origin;
  };
  std::vector<Item> prepare, main, outside;
  for (const auto& step : run.steps) {
    for (auto& st : d.Render(step)) {
      Item it{st, step.origin};
      if (d.transactional_ddl()) {
        main.push_back(std::move(it));
      } else if (st.outside_transaction) {
        outside.push_back(std::move(it));
      } else if (st.prepare) {
        prepare.push_back(std::move(it));
      } else {
        main.push_back(std::move(it));
      }
    }
  }
  auto exec = [&](const Item& it) -> Status {
    Status s = conn.Execute(it.stmt);
    return s.ok() ? s : s.WithContext(it.origin + ": " + FirstLine(it.stmt.sql));
  };
  const std::string timeout = d.LockTimeoutSql(o.lock_timeout_ms);

  if (d.transactional_ddl()) {
    return db::InTransaction(conn, [&]() -> Status {
      SLUICE_RETURN_IF_ERROR(check());
      for (const auto& it : main) SLUICE_RETURN_IF_ERROR(exec(it));
      return run.record ? run.record(true) : Status::Ok();
    });
  }

  std::vector<int> done;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(done, store.DoneSteps(run.migration, run.phase));
  }
  bool main_done = std::find(done.begin(), done.end(), 0) != done.end();

  if (!main_done) {
    for (const auto& it : prepare) {
      SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
        return db::InTransaction(conn, [&]() -> Status {
          if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(timeout));
          return exec(it);
        });
      }));
    }
    SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
      return db::InTransaction(conn, [&]() -> Status {
        if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(timeout));
        SLUICE_RETURN_IF_ERROR(check());
        for (const auto& it : main) SLUICE_RETURN_IF_ERROR(exec(it));
        SLUICE_RETURN_IF_ERROR(store.MarkStep(run.migration, run.phase, 0));
        return run.record ? run.record(outside.empty()) : Status::Ok();
      });
    }));
  }
  if (outside.empty()) {
    if (main_done && run.record) {
      return db::InTransaction(conn, [&]() -> Status {
        SLUICE_RETURN_IF_ERROR(check());
        return run.record(true);
      });
    }
    return Status::Ok();
  }
  for (const auto& it : outside) {
    SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
      if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec("SET lock_timeout = '" + std::to_string(o.lock_timeout_ms) + "ms'"));
      Status s = exec(it);
      if (!timeout.empty()) conn.Exec("RESET lock_timeout").IgnoreError();
      return s;
    }));
  }
  return db::InTransaction(conn, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(check());
    SLUICE_RETURN_IF_ERROR(store.MarkStep(run.migration, run.phase, 1));
    return run.record ? run.record(true) : Status::Ok();
  });
}


std::string Describe(const std::optional<MigrationRecord>& rec) { return rec ? rec->phase : std::string("not started"); }

}  // namespace

Status NamedLock::Acquire(db::Connection& conn, const std::string& name, const std::string& what) {
  Release();
  SLUICE_ASSIGN_OR_RETURN(db::LockAttempt lock, conn.TryLock(name));
  if (!lock.acquired) {
    return FailedPrecondition(what + " is being worked on by another sluice process (" + lock.holder +
                              "); wait for it to finish or stop it first");
  }
  conn_ = &conn;
  name_ = name;
  return Status::Ok();
}

void NamedLock::Release() {
  if (conn_) conn_->Unlock(name_).IgnoreError();
  conn_ = nullptr;
}

Status Transition(db::Connection& conn, StateStore& store, const Options& o, const PhaseRun& run) {
  // SQLite's lock rows live in the state tables: before the first start
  // there are none, and its single write transaction serialises anyway.
  NamedLock lock;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (has_state || !conn.dialect().transactional_ddl()) {
    SLUICE_RETURN_IF_ERROR(lock.Acquire(conn, "migration:" + run.migration, "migration '" + run.migration + "'"));
  }
  // Re-read the record under its row lock inside the transaction and check
  // the phase: the caller's earlier look may be stale.
  const bool may_create = std::find(run.from.begin(), run.from.end(), "") != run.from.end();
  auto check = [&]() -> Status {
    // A first start creates the state tables (idempotent, serialised).
    if (may_create) SLUICE_RETURN_IF_ERROR(store.Ensure());
    SLUICE_ASSIGN_OR_RETURN(auto current, store.LockRecord(run.migration));
    std::string phase = current ? current->phase : std::string();
    if (std::find(run.from.begin(), run.from.end(), phase) == run.from.end()) {
      return FailedPrecondition("migration '" + run.migration + "' is " + Describe(current) + " now (another sluice "
                                "process changed it meanwhile); nothing was changed by this " + run.phase);
    }
    return run.before ? run.before(current) : Status::Ok();
  };
  return ExecutePhase(conn, store, o, run, check);
}

Status MovePhase(StateStore& store, const std::string& name, const std::string& from, const std::string& to) {
  SLUICE_ASSIGN_OR_RETURN(int64_t moved, store.SetPhaseIf(name, from, to));
  if (moved != 1) {
    return Aborted("migration '" + name + "' was no longer " + from + " when moving it to " + to +
                   " (another sluice process changed it)");
  }
  return Status::Ok();
}

}  // namespace sluice::engine
