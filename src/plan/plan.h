// The migration plan model: what a plan file says, with where it says it.
//
// The operation vocabulary follows pgroll's public migration format (field
// names, defaults and nesting are pgroll's), so a pgroll user's files parse
// unchanged. sluice's own optional top-level sections (`backfill`, `verify`,
// `gates`, `abort`) extend it; see docs/plan-format.md.
//
// Every object that a later check may complain about carries a SourceLoc, so
// errors can name file:line:column and the offending key.
//
// A Plan is an immutable value once parsed; it is safe to share between
// threads for reading.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace sluice::plan {

// 1-based line and column in the plan file; 0 when unknown.
struct SourceLoc {
  int line = 0;
  int column = 0;
};

// A string value together with where it was written.
struct Name {
  std::string value;
  SourceLoc loc;
  bool empty() const { return value.empty(); }
};

// A field that may be absent, explicitly null, or a string
// (`default: null` drops a default, `comment: null` drops a comment).
struct NullableString {
  bool present = false;
  bool is_null = false;
  std::string value;
  SourceLoc loc;
};

struct CheckConstraint {
  Name name;
  std::string constraint;
  bool no_inherit = false;
  SourceLoc loc;
};

// Column-level foreign key (`references:` under a column or alter_column).
struct ForeignKeyReference {
  Name name;
  Name table;
  Name column;
  std::string on_delete = "NO ACTION";
  std::string on_update = "NO ACTION";
  std::string match_type = "SIMPLE";
  bool deferrable = false;
  bool initially_deferred = false;
  SourceLoc loc;
};

struct GeneratedColumn {
  std::string expression;          // GENERATED ALWAYS AS (expression) STORED
  bool identity = false;           // GENERATED ... AS IDENTITY
  std::string sequence_options;
  std::string user_specified_values = "ALWAYS";  // or "BY DEFAULT"
};

struct ColumnDef {
  Name name;
  std::string type;
  bool nullable = false;  // pgroll: columns are NOT NULL unless nullable: true
  bool pk = false;
  bool unique = false;
  std::optional<std::string> default_expr;
  std::optional<std::string> comment;
  std::optional<CheckConstraint> check;
  std::optional<ForeignKeyReference> references;
  std::optional<GeneratedColumn> generated;
  SourceLoc loc;
};

// Table-level foreign key reference (create_table constraints,
// create_constraint).
struct TableForeignKeyReference {
  Name table;
  std::vector<Name> columns;
  std::string on_delete = "NO ACTION";
  std::string on_update = "NO ACTION";
  std::string match_type = "SIMPLE";
  std::vector<Name> on_delete_set_columns;
  SourceLoc loc;
};

struct IndexParameters {
  std::string tablespace;
  std::string storage_parameters;
  std::vector<Name> include_columns;
};

struct ExcludeSpec {
  std::string index_method;
  std::string elements;
  std::string predicate;
};

enum class ConstraintType { kUnique, kCheck, kPrimaryKey, kForeignKey, kExclude };

// A table constraint, as in create_table's `constraints:` list.
struct ConstraintDef {
  Name name;
  ConstraintType type = ConstraintType::kUnique;
  std::vector<Name> columns;
  bool deferrable = false;
  bool initially_deferred = false;
  bool nulls_not_distinct = false;
  bool no_inherit = false;
  std::string check;
  std::optional<TableForeignKeyReference> references;
  std::optional<ExcludeSpec> exclude;
  IndexParameters index_parameters;
  SourceLoc loc;
};

struct IndexField {
  Name column;
  std::string collate;
  std::string sort;   // "", "ASC" or "DESC"
  std::string nulls;  // "", "FIRST" or "LAST"
  std::string opclass;
  std::vector<std::string> opclass_params;
  SourceLoc loc;
};

// --- operations -----------------------------------------------------------

struct CreateTable {
  Name name;
  std::vector<ColumnDef> columns;
  std::optional<std::string> comment;
  std::vector<ConstraintDef> constraints;
};

struct AddColumn {
  Name table;
  ColumnDef column;
  std::optional<std::string> up;
  // Used instead of NULL when `up` fails (or yields NULL for a NOT NULL
  // column) on an old-version write under `dual_write: {on_error: record}`.
  std::optional<std::string> fallback;
};

struct UniqueSpec {
  Name name;
};

struct AlterColumn {
  Name table;
  Name column;
  Name name;  // legacy pgroll rename field; empty when absent
  std::optional<std::string> type;
  std::optional<bool> nullable;
  NullableString default_expr;
  NullableString comment;
  std::optional<CheckConstraint> check;
  std::optional<UniqueSpec> unique;
  std::optional<ForeignKeyReference> references;
  std::optional<std::string> up;
  std::optional<std::string> down;
  std::optional<std::string> fallback;  // see AddColumn::fallback

  // True when only comment and/or default change: a catalog-only change
  // that must not copy the column.
  bool MetadataOnly() const {
    return !type && !nullable && !check && !unique && !references && name.empty() &&
           (default_expr.present || comment.present);
  }
};

struct RenameColumn {
  Name table;
  Name from;
  Name to;
};

struct DropColumn {
  Name table;
  Name column;
  std::optional<std::string> down;
};

struct RenameTable {
  Name from;
  Name to;
};

struct DropTable {
  Name name;
};

struct CreateIndex {
  Name name;
  Name table;
  std::vector<IndexField> columns;
  std::string predicate;
  std::string method;  // "" = database default (btree)
  std::string storage_parameters;
  bool unique = false;
};

struct DropIndex {
  Name name;
};

struct CreateConstraint {
  Name table;
  Name name;
  ConstraintType type = ConstraintType::kUnique;
  std::vector<Name> columns;
  std::string check;
  std::optional<TableForeignKeyReference> references;
  IndexParameters index_parameters;
  bool no_inherit = false;
  bool deferrable = false;
  bool initially_deferred = false;
  bool nulls_not_distinct = false;
  std::optional<ExcludeSpec> exclude;
  std::map<std::string, std::string> up;    // column -> expression
  std::map<std::string, std::string> down;  // column -> expression
};

// pgroll's older single-column drop_constraint (still in its examples).
struct DropConstraint {
  Name table;
  Name name;
  Name column;  // optional in newer pgroll: inferred from the constraint
  std::string up;
  std::string down;
};

struct DropMultiColumnConstraint {
  Name table;
  Name name;
  std::map<std::string, std::string> up;
  std::map<std::string, std::string> down;
};

struct RenameConstraint {
  Name table;
  Name from;
  Name to;
};

struct RawSql {
  std::string up;
  std::string down;
  bool on_complete = false;
};

struct SetReplicaIdentity {
  Name table;
  std::string type;  // default | full | nothing | index
  Name index;
};

using OperationBody =
    std::variant<CreateTable, AddColumn, AlterColumn, RenameColumn, DropColumn, RenameTable,
                 DropTable, CreateIndex, DropIndex, CreateConstraint, DropConstraint,
                 DropMultiColumnConstraint, RenameConstraint, RawSql, SetReplicaIdentity>;

struct Operation {
  std::string kind;  // the key as written: "add_column", ...
  SourceLoc loc;     // where the operation's key is
  OperationBody body;
};

// --- sluice's own sections ------------------------------------------------

// An active pace (the plan's backfill.throttle.active_pace, or
// --active-pace) is a share of the time: above 0, at most 1.
inline bool ValidActivePace(double pace) { return pace > 0 && pace <= 1; }

// `backfill:` — how historical rows are rewritten. Every field is optional;
// the defaults are documented in docs/plan-format.md.
struct BackfillSettings {
  std::optional<int64_t> chunk_target_ms;   // target duration of one chunk
  std::optional<int64_t> chunk_rows;        // initial chunk size
  std::optional<int64_t> chunk_min_rows;
  std::optional<int64_t> chunk_max_rows;
  std::optional<double> max_rows_per_second;  // 0 = unlimited
  std::optional<int64_t> workers;
  // Throttle signals.
  std::optional<std::string> probe_query;
  std::optional<int64_t> probe_target_ms;
  std::optional<double> probe_slowdown;  // a multiple of the probe's baseline; 0 = off
  std::optional<double> max_replica_lag_seconds;
  std::optional<std::string> replica_url;
  std::optional<int64_t> max_lock_waiters;
  std::optional<std::string> custom_signal_sql;
  std::optional<double> custom_signal_max;
  std::vector<std::string> allowed_windows;  // "HH:MM-HH:MM" (UTC)
  // While the application is at work (PostgreSQL): the pace's ceiling, in
  // (0, 1] (1 = never give way on activity alone), and the chunks' target
  // time in ms.
  std::optional<double> active_pace;  // ValidActivePace
  std::optional<int64_t> active_chunk_ms;
  // The table's own triggers fire for the backfill's rewrites (and, on
  // SQLite, for the dual-write's own updates). Default false: sluice keeps
  // them from firing (PostgreSQL: session_replication_role = replica) or
  // refuses the plan, naming them, where it cannot.
  bool fire_triggers = false;
  SourceLoc loc;
};

struct Invariant {
  Name name;
  std::string table;  // logical table in the new version (with `check`)
  std::string check;  // predicate every row must satisfy, or
  std::string sql;    // a query that must return no rows
  SourceLoc loc;
};

struct ValidationQuery {
  Name name;
  std::string table;  // the table whose keys are sampled
  std::string sql;    // runs against both versions; :key binds a sampled key
  SourceLoc loc;
};

// `verify:` — what `sluice verify` checks beyond the built-in checks.
struct VerifySettings {
  std::optional<std::string> partition_column;
  std::optional<int64_t> checksum_chunk_rows;
  std::optional<int64_t> max_reported_differences;
  std::optional<double> max_drift;        // null/default drift tolerance (fraction)
  std::optional<double> shadow_sample;    // fraction of keys shadow-read
  std::optional<double> max_divergence;   // shadow-read divergence tolerance
  std::vector<Invariant> invariants;
  std::vector<ValidationQuery> validation_queries;
  SourceLoc loc;
};

struct SignoffRequirement {
  std::string role;
  SourceLoc loc;
};

struct Gate {
  bool present = false;
  std::optional<int64_t> max_verify_age_seconds;
  std::optional<double> max_divergence;
  std::optional<int64_t> soak_seconds;
  std::optional<int64_t> observation_seconds;
  std::vector<SignoffRequirement> signoffs;
  // complete only: the contract audit's role in the gate (docs/audit.md):
  // required | warn | off; unset = warn.
  std::optional<std::string> audit;
  SourceLoc loc;
};

// `gates:` — checks that stand before each phase transition.
struct GateSettings {
  Gate backfill;  // before the backfill is declared done
  Gate switch_;   // before `switch`
  Gate complete;  // before `complete`
};

// `abort:` — criteria watched after `switch` (`sluice watch`).
struct AbortCriteria {
  bool present = false;
  std::optional<double> max_divergence;
  std::optional<double> max_error_rate;
  std::optional<double> max_p99_ratio;
  std::optional<std::string> probe_query;
  SourceLoc loc;
};

// `dual_write:` — what the dual-write does when `up` cannot convert a row
// written through the old version.
//   record  the old write succeeds; the new column gets the column's
//           `fallback` (or NULL); the row's key and the error are recorded
//           (dual_write_failures); verify, switch and complete refuse while
//           such rows are unresolved. The default (seed 002: the new
//           system's write must never fail the old system's write).
//   fail    the old write fails with the conversion's error.
// Writes through the new version are strict under both.
enum class OnError { kRecord, kFail };
struct DualWriteSettings {
  bool present = false;
  OnError on_error = OnError::kRecord;
  SourceLoc loc;
};

struct Plan {
  std::string name;        // file name without extension
  std::string file;        // path as given
  std::string text;        // the file's exact bytes
  std::string format;      // "yaml" or "json"
  std::optional<std::string> version_schema;
  std::vector<Operation> operations;
  BackfillSettings backfill;
  VerifySettings verify;
  GateSettings gates;
  AbortCriteria abort;
  DualWriteSettings dual_write;
};

// "file:line:col" (or "file" when the location is unknown).
std::string FormatLoc(const std::string& file, SourceLoc loc);

}  // namespace sluice::plan
