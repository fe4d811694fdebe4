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
  std::vector<std::string> columns;  // key columns; empty entries for expression elements
  // Every column the index reads: key columns, columns inside expression
  // elements, the predicate and INCLUDE columns (PostgreSQL). Empty when
  // the adapter does not know more than `columns`.
  std::vector<std::string> reads;
  bool unique = false;
  bool primary = false;
  bool valid = true;          // PostgreSQL: false after a failed CONCURRENTLY build
  bool partial = false;
  std::string constraint;     // name of the constraint it backs, if any
  std::string definition;     // CREATE INDEX text when known
  // Partitioned tables (PostgreSQL): the partitioned index this one is a
  // partition of, if any.
  std::string parent_index;

  // `reads` when known, else `columns`.
  const std::vector<std::string>& ColumnsRead() const { return reads.empty() ? columns : reads; }
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
  // SQLite: the column whose definition declares this CHECK; "" for a
  // table-level CHECK (written after the columns). SQLite drops a column's
  // own CHECK with the column but refuses to drop a column any other CHECK
  // names.
  std::string declared_on;
};

// An object that depends on a column of a table, on the table itself (or
// its row type) or on one of its indexes, as the database's own dependency
// records say (PostgreSQL: pg_depend). Complete drops and replaces columns,
// tables and indexes; what depends on them must be handled or refused
// before anything changes. sluice's own objects (version views, the live
// alias, dual-write triggers) are not listed.
struct DependentInfo {
  enum class Kind {
    kView,              // a plain view (directly, or through `via`)
    kMaterializedView,
    kForeignKey,        // a foreign key referencing the column/index/table
    kPolicy,
    kTrigger,           // a trigger whose column list or WHEN reads the column
    kRule,
    kGeneratedColumn,   // a generated column computed from the column
    kStatistics,        // an extended statistics object
    kIndex,             // an index of the table (handled by compile)
    kConstraint,        // a constraint of the table itself (handled by compile)
    kSequence,          // a sequence owned by the column (OWNED BY)
    kSequenceUser,      // a default that uses a sequence the column owns (`via`)
    kDefault,           // the column's own default
    kFunction,          // a function whose SQL body reads the column
    kColumn,            // a column of another table whose type is this table's row type
    kOther,
  };
  Kind kind = Kind::kOther;
  std::string column;       // the column depended on; "" for the table itself
  std::string index;        // set when it depends on this index of the table
  std::string description;  // as the database names it: "view reports.v", "trigger t on table orders"
  std::string relation;     // "schema.name" of the relation it is (a view) or is on (a trigger); "" if none
  std::string relation_schema, relation_name;  // the same, apart (for SQL)
  bool same_table = false;  // it is part of the table itself (its index, trigger, policy...)
  bool auto_dropped = false;  // the database drops it silently with the column (PostgreSQL deptype 'a')
  // The migrating role may drop and recreate it: it is a member of the
  // owner role and may create objects in its schema.
  bool owned = true;
  std::string via;          // reached through this view (a view of a view), or this sequence
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
  // Partitioning (PostgreSQL): the table it is a partition of ("" if none),
  // and whether it is itself partitioned.
  std::string partition_of;
  bool partitioned = false;
  // Partitions in the migrated schema (direct ones; each may be
  // partitioned itself), in name order; `partition_count` counts them in
  // every schema.
  std::vector<std::string> partitions;
  int partition_count = 0;
  // Table inheritance (PostgreSQL INHERITS, not partitions): the tables it
  // inherits from and the tables that inherit from it, in any schema.
  std::vector<std::string> inherits;
  std::vector<std::string> inheritance_children;
  // What depends on this table's columns, the table and its indexes.
  std::vector<DependentInfo> dependents;
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
