// The one door every phase transition goes through (LevelDB's
// VersionSet::LogAndApply): start, switch, complete and rollback all run as
// a PhaseRun through Transition().
//
// Two sluice processes may race on one migration or one table (two
// operators, a `watch` aborting while someone completes). Transition makes
// exactly one of them win:
//   1. it takes the migration's named lock (PostgreSQL advisory lock, SQLite
//      lock row), or fails naming the holder;
//   2. inside the transaction that performs the change, it locks and
//      re-reads the migration's record and checks the phase is one the
//      transition may start from (another process may have moved it since
//      the caller looked);
//   3. the phase moves with UPDATE ... WHERE phase = <the phase it read>.
// A loser gets kFailedPrecondition saying what happened, with nothing
// changed.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "db/adapter.h"
#include "engine/state.h"
#include "sluice/sluice.h"

namespace sluice::engine {

// Seconds from `began_micros` (clock->NowMicros()) to now: the phase
// events record how long their phase took (`seconds` in their details).
inline double SecondsSince(Clock* clock, int64_t began_micros) {
  return static_cast<double>(clock->NowMicros() - began_micros) / 1e6;
}

// One lifecycle phase to run.
struct PhaseRun {
  std::string migration;
  std::string phase;  // start | complete | rollback | switch | switch_back
  std::vector<db::Step> steps;
  std::vector<std::string> tables;  // physical tables, for lock messages
  // Phases the migration may be in when the transition starts; "" stands
  // for "no record yet" (a first start). Checked inside the transaction.
  std::vector<std::string> from;
  // Runs inside the main transaction after the record was re-read and
  // checked (`current` is what was read), before the steps: e.g. create
  // the state tables, insert the record, claim the tables.
  std::function<Status(const std::optional<MigrationRecord>& current)> before;
  // Records the phase change inside a transaction. `finished` is false when
  // statements that must run outside a transaction are still to come.
  std::function<Status(bool finished)> record;
};

// Holds a named lock ("migration:<name>") for its scope.
class NamedLock {
 public:
  NamedLock() = default;
  NamedLock(const NamedLock&) = delete;
  NamedLock& operator=(const NamedLock&) = delete;
  ~NamedLock() { Release(); }
  // Takes `name` on `conn` or fails (kFailedPrecondition) naming the holder.
  Status Acquire(db::Connection& conn, const std::string& name, const std::string& what);
  void Release();

 private:
  db::Connection* conn_ = nullptr;
  std::string name_;
};

// Retries `fn` while it fails for want of a lock (lock_timeout, deadlock,
// serialization failure), with jittered exponential backoff, for at most the
// retry budget; then fails naming the sessions that hold the locks.
Status RetryLocks(db::Connection& conn, const Options& o, const std::vector<std::string>& tables,
                  const std::function<Status()>& fn);

// Runs `run` as described above, taking and releasing the migration's lock.
// SQLite: one transaction for everything. PostgreSQL: prepare statements
// first (each its own transaction), then one main transaction holding every
// catalog change and the phase record (retried as a whole while locks are
// busy), then statements that must run outside a transaction; completion of
// the main transaction is recorded, so a rerun after a crash resumes after
// it.
Status Transition(db::Connection& conn, StateStore& store, const Options& o, const PhaseRun& run);

// Inside a transition's transaction: moves `name` from phase `from` to
// `to`, failing (kAborted) when another process changed it meanwhile.
Status MovePhase(StateStore& store, const std::string& name, const std::string& from, const std::string& to);

}  // namespace sluice::engine
