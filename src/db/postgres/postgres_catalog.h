// What depends on the migrated tables, read from PostgreSQL's dependency
// records (pg_depend), for the checks that refuse or handle before
// anything changes whatever `complete` would otherwise trip over: views and
// materialized views, foreign keys, policies, triggers, rules, generated
// columns, statistics objects, SQL-bodied functions, sequences owned by a
// column, columns of this table's row type.
#pragma once

#include "db/adapter.h"
#include "db/postgres/postgres_dialect.h"

namespace sluice::db {

// Fills TableInfo::dependents of every table of `schema` (already holding
// the tables). sluice's own objects are left out: views in the live alias
// and in the version schemas of the migrations in the state tables, the
// dual-write triggers. Views reached through views are listed too (with
// `via`), and so is whatever depends on those views. A query error is
// returned as is (the caller fails closed).
Status IntrospectDependents(Connection& conn, const PostgresDialect& d, Schema* schema);

}  // namespace sluice::db

namespace sluice::db {

// The statements of the steps that keep views from pinning what complete
// or rollback drops (see change.h), for the renderer.
std::string SaveDependentViewsSql(const PostgresDialect& d, const std::vector<ReplacedColumn>& columns);
std::string RestoreDependentViewsSql();
std::string UnpinViewsSql(const PostgresDialect& d, const UnpinViewsStep& step);

}  // namespace sluice::db
