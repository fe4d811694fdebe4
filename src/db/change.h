// The change vocabulary between the engine and the adapters.
//
// The engine compiles a plan against a schema snapshot into ordered Steps
// for each phase (start, complete, rollback) plus backfill tasks and the
// description of the new version (VersionSpec). It decides *what* happens
// and *when*; each adapter's Dialect decides *how*, rendering a Step into
// the exact statements for its database. `sluice plan` prints those same
// statements, so a dry run shows precisely what would run.
//
// All names in Steps are physical names. Expressions (up/down, checks,
// defaults, predicates) are the plan's SQL text, passed through untouched
// except where a step says it has been rewritten to physical names.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "db/schema.h"

namespace sluice::db {

struct IdentitySpec {
  bool always = true;  // ALWAYS vs BY DEFAULT
  std::string sequence_options;
};

struct ColumnSpec {
  std::string name;
  std::string type;
  bool not_null = false;
  bool pk = false;      // only in CreateTable
  bool unique = false;  // only in CreateTable
  std::optional<std::string> default_expr;
  std::optional<std::string> comment;
  std::optional<std::string> generated_expr;  // GENERATED ALWAYS AS (...) STORED
  std::optional<IdentitySpec> identity;
  std::vector<CheckSpec> checks;
  std::vector<ForeignKeySpec> references;
  // Non-empty: the column is NOT NULL for new writes through a guard of this
  // name (no table scan at start); complete makes it a real NOT NULL.
  std::string not_null_guard;
};

struct IndexElement {
  std::string column;   // physical column
  std::string collate;
  std::string opclass;
  std::vector<std::string> opclass_params;
  std::string sort;     // "", ASC, DESC
  std::string nulls;    // "", FIRST, LAST
};

struct IndexSpec {
  std::string name;
  std::string table;
  std::vector<IndexElement> elements;
  bool unique = false;
  bool nulls_not_distinct = false;
  std::string method;
  std::string predicate;
  std::string storage_parameters;
  std::string tablespace;
  std::vector<std::string> include;
  // When set, the database's own definition of an index being copied onto a
  // new column (already rewritten to the new names); used instead of the
  // fields above so no property of the original is lost.
  std::string raw_definition;
};

struct TableConstraintSpec {
  enum class Type { kPrimaryKey, kUnique, kCheck, kForeignKey, kExclude };
  std::string name;
  Type type = Type::kUnique;
  std::vector<std::string> columns;
  std::string check;
  std::optional<ForeignKeySpec> fk;
  std::string exclude_method;
  std::string exclude_elements;
  std::string exclude_predicate;
  bool deferrable = false;
  bool initially_deferred = false;
  bool nulls_not_distinct = false;
  bool no_inherit = false;
  std::string storage_parameters;
  std::string tablespace;
  std::vector<std::string> include;
};

// old column := down(new row), for writes through the new version.
struct Backward {
  std::string target;  // physical column of the old version
  std::string expr;    // over the new version's logical column names
  std::string origin;  // "plan.yaml:7:5: operation #2 (alter_column)"
};

// new column := up(old row), for writes through the old version.
struct Forward {
  std::string target;            // physical column of the new version
  std::string expr;              // over the old version's column names
  std::set<std::string> reads;   // old columns the expression may read
  bool volatile_expr = false;    // up calls random(), now(), ...: not comparable
  std::string origin;            // "plan.yaml:7:5: operation #2 (alter_column)"
  // Under TableMapping::record_failures: stored instead of NULL when `expr`
  // fails, or yields NULL for a guarded NOT NULL column. "" = NULL.
  std::string fallback;
};

struct ColumnMapping {
  std::string logical;   // name in the new version
  std::string physical;  // column of the physical table
  std::optional<std::string> default_expr;  // carried onto the version view
  bool not_null = false;  // enforced for writes through the new version
  std::string type;
  bool exists_before = true;  // the physical column exists before start
};

// How one table of the new version maps onto its physical table, and how
// writes flow between the versions.
struct TableMapping {
  std::string logical;      // table name in the new version
  std::string physical;     // physical table
  bool created = false;     // created by this migration
  bool changed = false;     // shape or name differs from the old version
  std::vector<ColumnMapping> columns;      // new version, in order
  std::vector<std::string> old_columns;    // old version's columns (physical)
  std::vector<std::optional<std::string>> old_defaults;  // parallel to old_columns
  std::vector<std::string> key;            // physical key columns
  std::vector<Forward> forward;
  std::vector<Backward> backward;
  std::vector<std::string> not_null_guards;  // physical columns guarded NOT NULL
  // Column marking rows last written through the new version (1) rather
  // than the old one (NULL). The backfill skips marked rows, so it never
  // overwrites what the new version wrote, and verification checks them
  // through `down` instead of `up`. Empty when the table has no dual write.
  std::string write_flag;
  // `dual_write: {on_error: record}`: an old-version write whose `up` fails
  // (or yields NULL for a guarded column) succeeds; the new column gets
  // Forward::fallback and the row is recorded in the dual_write_failures
  // state table. false = `fail`: the old write fails with the error.
  bool record_failures = false;

  bool has_dual_write() const { return !forward.empty() || !backward.empty(); }
  // Existing rows need `up` written into new columns before the new version
  // may read this table (the engine makes a backfill task of it).
  bool needs_backfill() const { return !created && !forward.empty(); }
};

// The new version published by a migration.
struct VersionSpec {
  std::string name;              // version name (PostgreSQL schema suffix)
  std::string migration;
  std::string previous;          // previous version name, "" for the base
  std::vector<TableMapping> tables;  // every table of the new version
  // Physical tables the new version no longer shows (dropped).
  std::vector<std::string> hidden_tables;

  // Some table needs a backfill: the version is not usable (its read path
  // refuses, see CreateVersionStep) until VersionReadyStep runs.
  bool needs_backfill() const {
    for (const auto& t : tables) {
      if (t.needs_backfill()) return true;
    }
    return false;
  }
  // PostgreSQL: the schemas the starting role's search_path resolved to
  // (Schema::search_path). The dual-write functions evaluate `up` and
  // `down` under the migrated schema followed by these, whatever the
  // writing session's own search_path; the backfill and the pre-flight
  // trial use the same.
  std::vector<std::string> search_path;
};

// A statement the adapter will execute for a step.
//
// On databases where a phase cannot be one transaction (PostgreSQL: CREATE
// INDEX CONCURRENTLY), the engine runs a phase's statements in three groups:
//   prepare  each in its own short transaction, first (VALIDATE CONSTRAINT:
//            scans without blocking writers; harmless if repeated)
//   main     everything else, in ONE transaction together with the phase
//            change, retried as a whole when a lock is not granted in time
//   outside  after main, each outside any transaction (CONCURRENTLY);
//            written to be safe to repeat
// On SQLite the whole phase is one transaction and the groups are ignored.
struct Statement {
  std::string sql;
  // Must run outside a transaction (CREATE INDEX CONCURRENTLY).
  bool outside_transaction = false;
  // Runs before the main transaction (see above).
  bool prepare = false;
  // outside_transaction index builds: the qualified index name, so a build
  // that failed half-way (an INVALID index) is dropped and rebuilt.
  std::string rebuild_invalid_index;
  // Optional query run first in the same transaction; if it returns a row,
  // the statement is not run and the step fails with guard_message.
  std::string guard_sql;
  std::string guard_message;
  // SQLite: the statement edits sqlite_schema directly; the adapter bumps
  // the schema cookie so every connection reloads the schema.
  bool schema_edit = false;
};

// --- steps -----------------------------------------------------------------

struct CreateTableStep {
  std::string table;
  std::vector<ColumnSpec> columns;
  std::vector<TableConstraintSpec> constraints;
  std::optional<std::string> comment;
};
struct DropTableStep { std::string table; };
struct RenameTableStep { std::string from, to; };
struct AddColumnStep {
  std::string table;
  ColumnSpec column;  // not_null only when a non-volatile default makes it legal
};
struct DropColumnStep { std::string table, column; };
struct RenameColumnStep { std::string table, from, to; };
struct SetDefaultStep {
  std::string table, column;
  std::optional<std::string> expr;  // nullopt drops the default
};
struct SetCommentStep {
  std::string table, column;  // column empty: the table's comment
  std::optional<std::string> comment;
};
// Enforces NOT NULL on `column` for new writes without scanning the table.
// `recorded`: the column's dual-write records old-version NULLs instead of
// refusing them (on_error: record), so the guard holds only for writes
// through the new version (PostgreSQL: enforced by the dual-write function;
// no constraint until complete).
struct AddNotNullGuardStep {
  std::string table, column, guard_name;
  bool recorded = false;
};
// Proves no NULL remains and makes the column NOT NULL for good.
// `recorded`: as above; the guard constraint is (re)added NOT VALID first.
struct FinalizeNotNullStep {
  std::string table, column, guard_name;
  bool recorded = false;
};
struct DropNotNullGuardStep { std::string table, column, guard_name; };
struct DropNotNullStep { std::string table, column; };
// CHECK or FOREIGN KEY, added without validating existing rows when
// `not_valid` (validated at complete).
struct AddCheckStep { std::string table; CheckSpec check; bool not_valid = true; };
struct AddForeignKeyStep { std::string table; ForeignKeySpec fk; bool not_valid = true; };
struct ValidateConstraintStep { std::string table, name; };
// One partition's part of an index on a partitioned table (PostgreSQL
// cannot build an index on a partitioned table CONCURRENTLY): `name` on
// partition `table`, attached to `parent` (the index on the partition's
// parent). A partition that is itself partitioned gets its index ON ONLY
// and its own partitions below it.
struct PartitionIndex {
  std::string table, name, parent;
  bool partitioned = false;
  // When copying an existing index: this partition's index definition,
  // already rewritten to the copy's column and name.
  std::string raw_definition;
};
// `partitions` (parents before their partitions) is set when the table is
// partitioned: the index is made ON ONLY the table, each partition's index
// built CONCURRENTLY and attached, deepest first.
struct CreateIndexStep {
  IndexSpec index;
  std::vector<PartitionIndex> partitions;
};
// `partitioned`: the index is on a partitioned table, which PostgreSQL
// cannot drop CONCURRENTLY (dropped in the phase's transaction, with its
// partitions' indexes).
struct DropIndexStep {
  std::string table, name;
  bool partitioned = false;
};
// Gives a copied index its original name. Databases without ALTER INDEX
// RENAME rebuild it from `rebuild_sql`.
struct RenameIndexStep { std::string table, from, to, rebuild_sql; };
// Turns a unique index built at start into a named constraint (complete).
struct AttachIndexConstraintStep {
  std::string table, name, index;
  bool primary_key = false;
  bool deferrable = false, initially_deferred = false;
};
struct AddTableConstraintStep { std::string table; TableConstraintSpec constraint; };
struct DropConstraintStep { std::string table, name; };
struct RenameConstraintStep { std::string table, from, to; };
struct SetReplicaIdentityStep {
  std::string table;
  std::string type;   // DEFAULT, FULL, NOTHING, INDEX
  std::string index;
};
struct RawSqlStep { std::string sql; };
// Dual-write triggers on one physical table (both directions).
// `search_path`: VersionSpec::search_path, pinned for `up` and `down`.
struct CreateDualWriteStep {
  std::string migration, version;
  TableMapping table;
  std::vector<std::string> search_path;
};
// `version` is set at complete: the version's own write path (SQLite view
// triggers, which read old columns) goes too, before old columns are dropped.
struct DropDualWriteStep { std::string migration; TableMapping table; std::string version; };
// The new version's read path (schema of views / version views). While
// tables of the version still need their backfill (needs_backfill()), the
// read path refuses to be used: reads and writes of those tables fail with
// "version V is not ready: the backfill of T is N% done" (PostgreSQL), and
// the stored setup SQL is a placeholder that fails (SQLite). Tables that
// need no backfill are usable at once.
struct CreateVersionStep { VersionSpec version; };
// The backfill is done: the version's read path becomes usable (the guard
// CreateVersionStep put on it goes). Runs in the transaction that records
// the backfill as done.
struct VersionReadyStep { VersionSpec version; };
// After contract: the version now maps onto final physical names.
struct FinalizeVersionStep { VersionSpec version; };
struct DropVersionStep { VersionSpec version; };
// Points the "live" alias at `version` (the new version, or its previous one
// for `switch --back`). `spec` describes the version being made live.
struct SetLiveStep { std::string version; VersionSpec spec; };
// Creates the live alias, pointing at the old version (the tables as they
// are before the migration), when it does not exist yet: applications may
// select `live` from the first start on. Emitted first in start.
struct CreateLiveAliasStep { VersionSpec spec; };
// Undoes CreateLiveAliasStep: drops the live alias unless another
// migration (in flight or complete) uses it by then.
struct DropLiveAliasStep { std::string migration; };
// Another in-flight version's read path shows `tables` unchanged (views of
// tables it does not migrate). Before this migration contracts or rolls back
// those tables (`drop`), such views are dropped so they do not pin columns;
// afterwards they are recreated with the tables' new shape.
struct RefreshVersionViewsStep {
  VersionSpec version;
  std::vector<std::string> tables;
  bool drop = true;
};

// A column complete replaces by its copy: `column` of `table` is dropped
// and `copy` renamed to `final_name`; the table is named `final_table`
// after complete.
struct ReplacedColumn {
  std::string table, column, copy, final_name, final_table;
};
// Complete, before the old columns go: the views (in any schema) that read
// `columns`, and the views on those views, are saved (definition as if the
// columns and tables already had their final names, options, owner,
// privileges, comments, column defaults, triggers and rules) and dropped,
// deepest first. Whatever else depends on them (a materialized view, a
// function...) makes the step fail, naming it. RestoreDependentViewsStep,
// later in the same transaction, recreates them on the new columns.
struct SaveDependentViewsStep { std::vector<ReplacedColumn> columns; };
struct RestoreDependentViewsStep {};
// Makes `sequence` (schema-qualified parts) owned by table.column, so that
// dropping the column that owned it does not drop it (the copy's default
// still uses it).
struct SetSequenceOwnerStep { std::string sequence_schema, sequence, table, column; };
// Rollback: the views of sluice's own schemas (the live alias and the
// schemas of `versions`, the other in-flight migrations') named like a table of the migrated schema that is not in
// `keep` (the tables that existed before start, and the other in-flight
// migrations' tables) are dropped before the rollback's steps, so that they
// never pin a table a `sql` operation created and its `down` drops; the
// `restore` step recreates those whose table still exists afterwards.
struct UnpinViewsStep {
  std::vector<std::string> versions;
  std::vector<std::string> keep;
  bool restore = false;
};

// Statements recorded when the migration started (src/engine/record.h) and
// replayed verbatim: a later phase runs exactly what start planned, even
// under a newer sluice that would render the steps differently.
struct RecordedSqlStep { std::vector<Statement> statements; };

using StepBody =
    std::variant<CreateTableStep, DropTableStep, RenameTableStep, AddColumnStep, DropColumnStep,
                 RenameColumnStep, SetDefaultStep, SetCommentStep, AddNotNullGuardStep,
                 FinalizeNotNullStep, DropNotNullStep, AddCheckStep, AddForeignKeyStep,
                 DropNotNullGuardStep, ValidateConstraintStep, CreateIndexStep, DropIndexStep,
                 RenameIndexStep, AttachIndexConstraintStep,
                 AddTableConstraintStep, DropConstraintStep, RenameConstraintStep,
                 SetReplicaIdentityStep, RawSqlStep, CreateDualWriteStep, DropDualWriteStep,
                 CreateVersionStep, FinalizeVersionStep, DropVersionStep, SetLiveStep,
                 RefreshVersionViewsStep, SaveDependentViewsStep, RestoreDependentViewsStep,
                 SetSequenceOwnerStep, UnpinViewsStep, RecordedSqlStep, VersionReadyStep, CreateLiveAliasStep,
                 DropLiveAliasStep>;

struct Step {
  StepBody body;
  std::string origin;  // "operation #2 (alter_column)" for messages
  // Rollback steps: index of the start step this one undoes, so a start
  // that stopped half-way is undone exactly as far as it got.
  int undoes = -1;
};

// Backfill work for one physical table: rewrite `assignments` for every row
// whose key existed when the backfill started.
struct BackfillTask {
  std::string table;
  std::vector<std::string> key;
  std::vector<Forward> assignments;
  std::string skip_flag;  // rows with this column set are left alone
  // Statements run first in every chunk's transaction (SET LOCAL ...): the
  // search_path `up` is evaluated under (the dual-write's), and, when the
  // table's own triggers must not fire for the backfill's rewrites,
  // Dialect::SuppressUserTriggersSql(). Decided and recorded at start.
  std::vector<std::string> setup_sql;
  // on_error: record, where the dialect supports it: parallel to
  // `assignments`, values that record a row whose `up` fails instead of
  // failing (Dialect::RecordingBackfillValue). A chunk that fails on a
  // data error is redone with these; empty = the chunk's error stops the
  // backfill.
  std::vector<std::string> recording_values;
};

}  // namespace sluice::db
