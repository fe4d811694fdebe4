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

struct TableInfo {
  std::string name;
  std::vector<ColumnInfo> columns;   // in ordinal order
  std::vector<std::string> primary_key;
  std::vector<IndexInfo> indexes;
  std::vector<ConstraintInfo> constraints;
  std::optional<std::string> comment;
  std::string replica_identity;  // PostgreSQL: d, n, f or i
  std::string replica_identity_index;  // when replica_identity is 'i'

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

  const TableInfo* FindTable(const std::string& name) const;
  // Index by name across tables; nullptr if none.
  const IndexInfo* FindIndex(const std::string& name) const;
};

}  // namespace sluice::db
