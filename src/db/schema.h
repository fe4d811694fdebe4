// A snapshot of the parts of a database schema that sluice reasons about.
//
// Adapters fill it by introspection (Connection::Introspect); the engine
// compiles plans against it and stores it with each migration, so what a
// migration saw at start is on record. Names are physical names in the
// migrated schema; sluice's own objects (state tables, version views,
// triggers) are excluded.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sluice::db {

// A foreign key, as introspected or as a step creates it.
struct ForeignKeySpec {
  std::string name;
  std::vector<std::string> columns;      // physical, on the referencing table
  std::string ref_table;
  std::vector<std::string> ref_columns;
  std::string on_delete = "NO ACTION";
  std::string on_update = "NO ACTION";
  std::string match_type = "SIMPLE";
  std::vector<std::string> on_delete_set_columns;
  bool deferrable = false;
  bool initially_deferred = false;
};

struct CheckSpec {
  std::string name;
  std::string expr;  // refers to physical column names
  bool no_inherit = false;
};


struct ColumnInfo {
  std::string name;
  std::string type;  // as the database spells it
  bool not_null = false;
  std::optional<std::string> default_expr;
  bool identity = false;       // GENERATED ... AS IDENTITY (PostgreSQL)
  bool identity_always = false;
  bool generated = false;      // GENERATED ALWAYS AS (expr) STORED / VIRTUAL
  std::optional<std::string> comment;
};

struct IndexInfo {
  std::string name;
  std::string table;
  std::vector<std::string> columns;  // empty entries for expression elements
  bool unique = false;
  bool primary = false;
  bool valid = true;          // PostgreSQL: false after a failed CONCURRENTLY build
  bool partial = false;
  std::string constraint;     // name of the constraint it backs, if any
  std::string definition;     // CREATE INDEX text when known
};

struct ConstraintInfo {
  enum class Type { kPrimaryKey, kUnique, kCheck, kForeignKey, kExclude, kNotNull };
  std::string name;
  Type type = Type::kCheck;
  std::vector<std::string> columns;
  std::string definition;  // e.g. "CHECK (length(name) > 3)"
  std::string check_expr;  // kCheck: the expression alone, e.g. "length(name) > 3"
  std::optional<ForeignKeySpec> fk;  // kForeignKey: structured form
  bool validated = true;
};

// A trigger the application defined on a table (sluice's own triggers are
// left out). sluice needs them because its own writes (the backfill, the
// dual-write) must not change what they do: see docs/how-it-works.md
// ("The table's own triggers").
struct TriggerInfo {
  std::string name;
  std::string timing;             // "BEFORE", "AFTER" or "INSTEAD OF"
  std::set<std::string> events;   // "INSERT", "UPDATE", "DELETE", "TRUNCATE"
  // UPDATE OF these columns only; empty: every UPDATE.
  std::vector<std::string> update_columns;
  bool row_level = true;          // FOR EACH ROW (SQLite: always)
  // PostgreSQL's pg_trigger.tgenabled: "O" fires in normal sessions (not
  // under session_replication_role = replica), "D" never, "R" only in
  // replica sessions, "A" always. SQLite triggers are always "O".
  std::string enabled = "O";
  std::string definition;         // pg_get_triggerdef / the CREATE TRIGGER text
  std::string function;           // PostgreSQL: the function it runs (regprocedure)
  std::string function_source;    // PostgreSQL: that function's source (prosrc)

  bool fires_on(const std::string& event) const { return events.count(event) > 0; }
};

struct TableInfo {
  std::string name;
  std::vector<ColumnInfo> columns;   // in ordinal order
  std::vector<std::string> primary_key;
  std::vector<IndexInfo> indexes;
  std::vector<ConstraintInfo> constraints;
  std::optional<std::string> comment;
  std::string replica_identity;  // PostgreSQL: d, n, f or i
  std::string replica_identity_index;  // when replica_identity is 'i'
  std::vector<TriggerInfo> triggers;   // the application's own, in name order

  const ColumnInfo* FindColumn(const std::string& name) const;
  const ConstraintInfo* FindConstraint(const std::string& name) const;
  // The key the backfill walks: the primary key, else the first unique,
  // non-partial index whose columns are all NOT NULL. Empty if none.
  std::vector<std::string> UsableKey() const;
};

struct Schema {
  std::string name;  // schema (PostgreSQL) or "main" (SQLite)
  std::map<std::string, TableInfo> tables;
  std::vector<std::string> views;  // non-sluice views (for name clashes)
  // PostgreSQL: the schemas the connecting role's search_path resolves to
  // (current_schemas(false)), in order. sluice pins its generated functions
  // to them so `up` and `down` resolve the application's types, functions
  // and sequences whatever search_path the writing session uses.
  std::vector<std::string> search_path;
  // PostgreSQL: the live alias schema ("<schema>_live") already exists.
  bool live_alias_exists = false;

  const TableInfo* FindTable(const std::string& name) const;
  // Index by name across tables; nullptr if none.
  const IndexInfo* FindIndex(const std::string& name) const;
};

}  // namespace sluice::db
