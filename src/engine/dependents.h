// What depends on the columns, tables and indexes complete drops.
//
// Complete replaces changed columns by their copies (DROP COLUMN of the old
// one, RENAME of the copy), drops dropped columns and tables, and drops
// indexes. Anything else in the database that depends on those — a view, a
// foreign key of another table, a policy, a trigger's column list, a
// statistics object — would make complete fail (PostgreSQL refuses the
// DROP) or be dropped silently with the column. The project rule: nothing
// that `lint --db` and `start` accept may fail at complete on the same
// schema. So before anything changes, each dependent object the database
// reports (db::TableInfo::dependents) is either
//   * handled by steps complete runs in its own transaction: plain views on
//     a replaced column are saved, dropped and recreated on the new column
//     (SaveDependentViewsStep / RestoreDependentViewsStep); a sequence the
//     old column owns passes to the copy (SetSequenceOwnerStep); or
//   * refused, naming the object, the column and what to do.
// Indexes and constraints of the table itself are compile's business
// (carried over to the copy, or dropped with a dropped column); they are
// checked here only as a safety net.
//
// Pure: reads the schema snapshot and the dialect's capabilities.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "plan/parser.h"
#include "plan/plan.h"

namespace sluice::engine {

// The operation that causes a change, for messages.
struct Cause {
  plan::SourceLoc loc;
  std::string origin;  // "operation #2 (alter_column)"
};

// An old column complete drops: replaced by `copy` (renamed to final_name,
// the table then named final_table) or, when `copy` is empty, dropped.
struct ContractedColumn {
  std::string table, column, copy, final_name, final_table;
  Cause cause;
};

struct Contract {
  std::vector<ContractedColumn> columns;
  std::vector<std::pair<std::string, Cause>> tables;   // dropped tables
  std::vector<std::pair<std::string, Cause>> indexes;  // dropped indexes (drop_index)
  std::set<std::string> carried_indexes;  // rebuilt on copies by compile
};

struct DependentsPlan {
  std::vector<plan::Diagnostic> errors;  // one per refused object
  std::vector<db::Step> before_drop;     // complete: before old columns and indexes go
  std::vector<db::Step> after_rename;    // complete: after the renames
};

DependentsPlan PlanDependents(const Contract& contract, const db::Schema& schema, const db::Dialect& dialect,
                              const std::string& plan_file);

}  // namespace sluice::engine
