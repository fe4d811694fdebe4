// The fleet's ledger: what the runner did and decided, per database and per
// wave, in a state store the operator names (`--ledger sqlite:PATH` or a
// PostgreSQL URL). Each database keeps its own migration state as always;
// the ledger only records the fleet's steps and decisions (who, when, why),
// so either side can be inspected alone. On a rerun each database's own
// phase decides what is next; the ledger decides which waves have soaked.
//
// Tables (sluice's state-table names: `_sluice_fleet_*` in SQLite,
// `<state schema>.fleet_*` in PostgreSQL), keyed by the migration name:
//   fleet_runs       migration, plan, inventory, started_at, updated_at
//   fleet_databases  migration, database, wave, step, error, at
//   fleet_waves      migration, wave, state, at
//   fleet_decisions  migration, seq, at, actor, subject, decision, reason
//
// Thread-safety: every method may be called from any thread (one connection
// behind a mutex).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice {
class Clock;
namespace db {
class Connection;
}
}  // namespace sluice

namespace sluice::fleet {

struct LedgerDatabase {
  std::string wave, step, error, at;
};

struct LedgerWave {
  std::string state, at;
};

struct LedgerDecision {
  int64_t seq = 0;
  std::string at, actor, subject, decision, reason;
};

class Ledger {
 public:
  // Opens the ledger of `migration` at `url`. With `create` (apply,
  // rollback) the tables and, for SQLite, the file are created; without
  // (status, report, serve: read-only commands create no state) a ledger
  // that does not exist yet is kNotFound and nothing is written.
  static Result<std::unique_ptr<Ledger>> Open(const std::string& url, const std::string& migration, Clock* clock,
                                              const std::string& actor, bool create = true);
  ~Ledger();

  // Takes the fleet's runner lock for the life of this ledger: a second
  // runner of the same migration is refused (naming the holder) while the
  // first lives; a killed runner's lock is taken over.
  Status Lock();

  Status RecordRun(const std::string& plan, const std::string& inventory);
  Status SetDatabase(const std::string& database, const std::string& wave, const std::string& step,
                     const std::string& error = "");
  Status SetWave(const std::string& wave, const std::string& state);
  Status Decide(const std::string& subject, const std::string& decision, const std::string& reason);

  Result<std::map<std::string, LedgerDatabase>> Databases();
  Result<std::map<std::string, LedgerWave>> Waves();
  Result<std::vector<LedgerDecision>> Decisions();
  // The most recently run migration in this ledger ("" when none).
  Result<std::string> LatestMigration();

  const std::string& migration() const { return migration_; }
  const std::string& url() const { return url_; }

 private:
  Ledger() = default;
  std::string Now();

  std::mutex mu_;
  std::unique_ptr<db::Connection> conn_;
  std::string url_, migration_, actor_;
  Clock* clock_ = nullptr;
  std::string runs_, databases_, waves_, decisions_;  // qualified table names
};

}  // namespace sluice::fleet
