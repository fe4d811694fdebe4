// PostgresDialect::InverseOfRawSql: which `sql` operations without `down`
// rollback can undo, and the exact SQL it runs (no server needed).
#include <gtest/gtest.h>

#include "db/postgres/postgres_dialect.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

struct Case {
  const char* up;
  const char* inverse;  // nullptr: no derivable inverse
  const char* why = "";  // substring of the refusal
};

TEST(PostgresInverseTest, DerivesDropsForPlainCreatesAndRefusesTheRest) {
  db::PostgresDialect d("public", "sluice");
  const Case cases[] = {
      {"CREATE TYPE fruit_size AS ENUM ('small', 'medium', 'large');", "DROP TYPE \"fruit_size\""},
      {"CREATE TYPE s.pair AS (a int, b text)", "DROP TYPE \"s\".\"pair\""},
      {"CREATE TYPE r AS RANGE (subtype = int4)", "DROP TYPE \"r\""},
      {"CREATE DOMAIN Positive AS int CHECK (VALUE > 0)", "DROP DOMAIN \"positive\""},
      {"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", "DROP TABLE \"users\""},
      {"CREATE TABLE \"Mixed\" AS SELECT 1 AS one", "DROP TABLE \"Mixed\""},
      {"CREATE MATERIALIZED VIEW mv AS SELECT 1", "DROP MATERIALIZED VIEW \"mv\""},
      {"CREATE VIEW v AS SELECT 1", "DROP VIEW \"v\""},
      {"CREATE SEQUENCE app.seq", "DROP SEQUENCE \"app\".\"seq\""},
      {"CREATE UNIQUE INDEX i ON app.t (a)", "DROP INDEX \"app\".\"i\""},
      {"CREATE SCHEMA audit", "DROP SCHEMA \"audit\""},
      {"CREATE EXTENSION hstore", "DROP EXTENSION \"hstore\""},
      {"ALTER TABLE flags ADD COLUMN note text, ADD COLUMN n int", "ALTER TABLE \"flags\" DROP COLUMN \"n\", DROP COLUMN \"note\""},
      {"CREATE TYPE a AS ENUM ('x'); CREATE TABLE t (v a); CREATE INDEX t_v ON t (v)",
       "DROP INDEX \"t_v\";\nDROP TABLE \"t\";\nDROP TYPE \"a\""},
      {"UPDATE flags SET name = 'b'", nullptr, "UpdateStmt has no derivable inverse"},
      {"CREATE TABLE IF NOT EXISTS t (a int)", nullptr, "IF NOT EXISTS"},
      {"CREATE OR REPLACE VIEW v AS SELECT 1", nullptr, "OR REPLACE"},
      {"CREATE INDEX ON t (a)", nullptr, "without a name"},
      {"CREATE TEMP TABLE tmp (a int)", nullptr, "TEMPORARY"},
      {"ALTER TABLE t ADD COLUMN IF NOT EXISTS a int", nullptr, "IF NOT EXISTS"},
      {"ALTER TABLE t DROP COLUMN a", nullptr, "AT_DropColumn"},
      {"CREATE TABLE t (a int); DELETE FROM t", nullptr, "DeleteStmt"},
      {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", nullptr, "CreateFunctionStmt"},
      {"CREATE TABLE (", nullptr, "parser rejects it"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.up);
    auto r = d.InverseOfRawSql(c.up);
    if (c.inverse) {
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(*r, c.inverse);
    } else {
      ASSERT_FALSE(r.ok()) << *r;
      EXPECT_THAT(r.status(), StatusIs(StatusCode::kFailedPrecondition, c.why));
    }
  }
}

}  // namespace
}  // namespace sluice::testing
