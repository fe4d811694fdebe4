// Table-driven lifecycle tests: one OperationCase describes a schema, a plan,
// writes through each version and the expected results; the runners drive
// it through the real Migrator against a real database and assert with SQL.
// The same cases and runners serve SQLite and PostgreSQL.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "sluice/sluice.h"
#include "support/test_support.h"

namespace sluice::testing {

// A query and the value its first column of its first row must have.
// `version` is "old" (the base tables / previous version) or "new".
struct Expect {
  std::string version;
  std::string sql;
  std::string value;
};

struct OperationCase {
  std::string name;          // also the plan's migration name
  std::string setup;         // SQL run before start (may be several statements)
  std::string plan;          // plan YAML
  std::vector<std::string> old_writes;  // through the old version, after start
  // Through the new version once it is usable: right after start when the
  // migration needs no backfill, else after the backfill (before it, a
  // session on the new version must be refused).
  std::vector<std::string> new_writes;
  std::vector<Expect> during;           // after both writes, before complete
  std::vector<Expect> after;            // after complete, through the base tables
  std::vector<std::string> tables;      // tables whose data rollback must restore
  // Backends on which start leaves the migrated schema as it is (e.g. SQLite
  // for drop_index: nothing to expand); elsewhere a test insists it changed.
  std::vector<std::string> start_changes_nothing_on;
  // False when rollback removes what the writes went into (a table created
  // by the plan): the old-version checks of `during` are then not repeated
  // after rollback.
  bool writes_survive_rollback = true;
};

// gtest prints a parameterised case by its name.
inline void PrintTo(const OperationCase& c, std::ostream* os) { *os << c.name; }

// Everything a database adapter test needs to provide.
struct Backend {
  std::string name;                                   // "sqlite" | "postgres"
  std::function<std::unique_ptr<Migrator>()> open;    // fresh, empty database each call
  // Text that changes whenever the migrated schema changes (tables, columns,
  // types, defaults, constraints, indexes, triggers, views, schemas),
  // excluding sluice's own state tables.
  std::function<std::string(Migrator&)> schema_fingerprint;
};

// The data of `tables`, ordered, as text (for before/after comparisons).
std::string DataFingerprint(Migrator& m, const std::vector<std::string>& tables);

void ExpectAll(Migrator& m, const std::string& version, const std::vector<Expect>& expects, const std::string& when);

// start -> old-version writes -> (the new version refused, backfill, when
// it needs one) -> new-version writes -> checks -> backfill -> verify (must
// pass) -> complete -> checks.
void RunForward(const Backend& b, const OperationCase& c, const TempDir& dir);
// start -> rollback leaves schema and data exactly as before start; then
// start -> writes -> rollback keeps the old-version writes; then
// start -> backfill -> complete still works.
void RunRollback(const Backend& b, const OperationCase& c, const TempDir& dir);

}  // namespace sluice::testing
