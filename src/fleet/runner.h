// The fleet runner (`sluice fleet apply | status | rollback`,
// docs/fleets.md): one plan rolled out over an inventory's databases, wave by
// wave, through the public API only (a Migrator per database).
//
// apply: per wave, up to `parallel` databases at once (a thread and a
// Migrator each, `after:` honoured): start, backfill, verify, switch; then
// the wave's soak, watching the plan's abort criteria on each database
// (Migrator::Watch) or, for a plan without them, waiting the soak and
// verifying again; then the next wave. The fleet barrier: complete runs on
// no database until every database has switched and soaked and, checked
// again from each database's own state, still reads the new version; then
// complete wave by wave. A failure stops new databases from starting (the
// failed one stays where sluice's rules leave it, later waves are not
// touched) and, under `on_failure: rollback_wave`, rolls the wave back.
// Rerunning continues: each database's own phase says what is next, the
// ledger (src/fleet/ledger.h) which waves have soaked.
//
// Thread-safety: one call at a time per RunOptions; the calls start their own
// threads and join them before returning.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fleet/inventory.h"
#include "sluice/sluice.h"

namespace sluice::fleet {

struct RunOptions {
  std::string plan_path;  // apply / rollback: the plan (the migration is named after its file)
  std::string migration;  // status: "" = the plan's, else the ledger's latest
  // sqlite:PATH or a PostgreSQL URL; "" = sqlite:<inventory folder>/fleet.db.
  std::string ledger_url;
  // Template for each database's Migrator (actor, clock, lock timeouts,
  // state schema, hooks); db_url and schema come from the inventory.
  Options db_options;
  // The soak's time (its wait, the abort criteria's watch rounds) and the
  // ledger's stamps; nullptr = db_options.clock, else the real clock. Tests
  // pass a FakeClock here and leave the lifecycle steps on the real clock.
  Clock* clock = nullptr;
  BackfillOptions backfill;  // on_progress is called from worker threads
  const std::atomic<bool>* cancel = nullptr;
  // A line of progress ("canary: shard-01 switched"), from any thread.
  std::function<void(const std::string& line)> on_line;
  // Test hook: a database's pass ("forward", "complete", "rollback") begins
  // (true) or ends (false), on the worker thread doing it.
  std::function<void(const std::string& database, const std::string& pass, bool begin)> on_database;
};

struct ApplyResult {
  bool finished = false;          // every database completed
  int max_concurrent = 0;         // most databases worked on at once (observed)
  std::vector<std::string> failures;  // "database: error"
};

// Runs or resumes the rollout. An error Status when it halted (what
// failed, where, what to do) or could not run; nothing is touched when the
// inventory, the plan or the ledger are unusable.
Result<ApplyResult> Apply(const Inventory& inventory, const RunOptions& options);

// Rolls back every database whose migration is in flight (not completed),
// later waves first. Completed databases are listed, never touched.
Status RollbackFleet(const Inventory& inventory, const RunOptions& options);

struct DatabaseState {
  std::string name, wave, url;  // url without password
  std::string phase;            // "" = not started here; "unreachable"
  std::string live, backfill;
  int64_t rows_done = 0, rows_total = 0;
  double rows_per_second = 0;  // the running backfill's measured rate (0: not running)
  double eta_seconds = -1;
  std::optional<bool> last_verify_passed;
  std::string last_verify_at, completed_at;
  std::vector<std::string> overrides;  // gates forced past on it
  std::string step;   // the ledger's last step ("" = none)
  std::string error;  // the ledger's last error, or why it is unreachable
};

struct WaveState {
  std::string name, state;  // the ledger's (pending when none)
  int databases = 0, switched = 0, completed = 0;
};

struct FleetState {
  std::string migration, ledger;
  std::vector<WaveState> waves;
  std::vector<DatabaseState> databases;
  int total = 0, switched = 0, completed = 0, failed = 0;
  std::vector<std::string> decisions;  // "at actor subject: decision (reason)"
  // Why the rollout stopped ("wave second: halt (1 database(s) failed in
  // the forward pass)"); "" while it is not halted.
  std::string halted;
  // The fleet's ETA (EstimateEta): -1 = unknown; eta_basis says how it was
  // computed or why it is unknown.
  double eta_seconds = -1;
  std::string eta_basis;
};

// Fills st->eta_seconds / eta_basis: the backfill rows left (started
// databases: their own counts; databases not started: the mean size of the
// started ones) over the measured per-database rate of the backfills running
// now, `parallel` databases at a time, plus the soaks of the waves not
// soaked yet. Unknown (-1) while no backfill runs, so there is no rate to
// go by, or while no database's size is known. Switching, verifying and
// completing are not counted: the basis says so.
void EstimateEta(FleetState* st, int parallel, double soak_seconds);

Result<FleetState> ReadStatus(const Inventory& inventory, const RunOptions& options);
std::string StatusJson(const FleetState& state);
std::string StatusText(const FleetState& state);
// `sluice fleet report`: the master handoff document (Markdown): progress,
// per wave its state and the ledger's decisions about it, per database its
// evidence (phase, last verification, gate overrides, last error), the
// timeline of decisions.
std::string ReportMarkdown(const FleetState& state);
// The fleet's section of the command center's status page (`sluice serve
// --inventory`): progress and ETA, the halt reason, per wave its state, per
// database its phase, backfill progress and last error. An HTML fragment.
std::string StatusHtml(const FleetState& state);

}  // namespace sluice::fleet
