// Pre-flight checks that `lint --db` and `start` run against the live
// database before anything changes (issue 8: nothing that `lint --db` and
// `start` accept may fail later; a refusal names each object and what to
// do, with the database unchanged).
//
//   * The table's own triggers (CheckUserTriggers, pure): a BEFORE row
//     trigger that would fire after sluice's dual-write trigger, or whose
//     function reads or writes a column the migration changes, is refused
//     (sluice cannot give writes through the new version the same
//     semantics). Triggers the backfill's rewrites would fire are kept from
//     firing (Dialect::SuppressUserTriggersSql) or, where that is
//     impossible, refused unless the plan says `backfill: fire_triggers:
//     true`.
//   * A trial of `up` and `down` (Preflight): in one read-only transaction
//     that is always rolled back, under the search_path the dual-write
//     functions pin, every `up` is cast to its column's type over a sample
//     of real rows (the lowest and highest keys and a random sample), and
//     `down(up(row))` to the old columns' types; an error, or NULL for a
//     column that is or becomes NOT NULL, refuses the plan with the row's
//     key and the database's error.
//
//   * Views complete recreates (Dialect::recreates_dependent_views): the
//     catalog part of complete (copy added, views saved and dropped, old
//     column dropped, copy renamed, views recreated) is tried in a
//     transaction that is always rolled back; a view that no longer
//     type-checks on the new column is refused, naming it.
//
// Locks: the trial reads the migrated tables (ACCESS SHARE on PostgreSQL;
// a read transaction on SQLite) and changes nothing. The views' trial takes
// ACCESS EXCLUSIVE on the tables whose replaced columns views read, for a
// moment and with a short lock timeout, and changes nothing either.
//
//   std::vector<std::string> warnings;
//   Status s = Preflight(conn, plan, schema, &compiled, &warnings);
//   // s.ok(): compiled.backfill[i].setup_sql now holds what every backfill
//   // chunk runs first (the pinned search_path, trigger suppression).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "engine/compile.h"
#include "plan/plan.h"

namespace sluice::engine {

// One refusal: its code (what the caller must do next) and message.
struct Refusal {
  StatusCode code = StatusCode::kFailedPrecondition;
  std::string message;
};

// What CheckUserTriggers found.
struct TriggerFindings {
  std::vector<Refusal> refusals;
  std::vector<std::string> warnings;
  // Tables whose backfill must keep these triggers from firing, with the
  // triggers (for messages when that turns out impossible).
  std::vector<std::pair<std::string, std::vector<std::string>>> to_suppress;
};

// The migrated tables' own triggers (Schema's TableInfo::triggers) against
// what `c` does. Pure: reads the schema and the dialect's capabilities.
TriggerFindings CheckUserTriggers(const plan::Plan& p, const db::Schema& schema, const db::Dialect& d,
                                  const CompiledMigration& c);

// Fills every backfill task's setup_sql: the dialect's expression context
// for the version and, for the tables in `suppressed`, the statement that
// keeps their own triggers from firing.
void SetBackfillSetup(const db::Dialect& d, const std::set<std::string>& suppressed, CompiledMigration* c);

// Runs CheckUserTriggers and the trial of `up`/`down` on `conn` (outside a
// transaction; it opens and always rolls back its own), then fills the
// backfill tasks' setup_sql. Returns OK, or every refusal joined by
// newlines with the first refusal's code; kAborted (a lock not granted in
// the session's lock_timeout) is returned at once so the caller can retry.
// The database is left unchanged in every case. Warnings are appended.
Status Preflight(db::Connection& conn, const plan::Plan& p, const db::Schema& schema, CompiledMigration* c,
                 std::vector<std::string>* warnings);

}  // namespace sluice::engine
