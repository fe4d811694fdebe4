// Compiling a plan against a schema snapshot.
//
// Compile() walks the plan's operations over a virtual copy of the schema
// (the new version as it takes shape), validates every reference (tables,
// columns, indexes, constraints, keys) and emits the ordered steps of each
// phase:
//
//   start     additive objects, dual-write triggers, the new version's read
//             path (expand + dual-write)
//   backfill  one task per table whose new columns need historical values
//   complete  contract: drop what only the old version needed, finalise
//             names and constraints, remove triggers
//   rollback  undo start, in reverse
//
// Compile is pure: it reads the snapshot and the dialect's capabilities and
// never touches a database, so `sluice plan` and `sluice lint` can show the
// result before anything changes, and a resumed `start` recompiles from the
// snapshot stored with the migration to get exactly the same steps.
//
// Errors name the plan file, line and column and the object
// (kInvalidPlan for mistakes in the plan, kNotFound for unknown objects,
// kFailedPrecondition for things the database cannot do, such as a table
// without a usable key).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "plan/parser.h"
#include "plan/plan.h"

namespace sluice::engine {

struct CompiledMigration {
  std::string name;
  db::VersionSpec version;
  std::vector<db::Step> start;
  std::vector<db::Step> complete;
  std::vector<db::Step> rollback;
  std::vector<db::BackfillTask> backfill;
  // Physical tables this migration changes (two active migrations may not
  // share one).
  std::set<std::string> tables;
  std::vector<plan::Diagnostic> warnings;
  // A `sql` operation without `down` whose inverse the dialect cannot
  // derive: rollback cannot undo everything, and refuses unless forced.
  bool irreversible = false;
  // One line per such operation: "<file>:<line>:<col>: operation #N (sql):
  // why no inverse could be derived".
  std::vector<std::string> irreversible_ops;
};

struct CompileOptions {
  std::string version_name;      // defaults to the plan's version_schema or name
  std::string previous_version;  // the version the old application uses
};

Result<CompiledMigration> Compile(const plan::Plan& plan, const db::Schema& schema, const db::Dialect& dialect,
                                  const CompileOptions& options = {});

}  // namespace sluice::engine
