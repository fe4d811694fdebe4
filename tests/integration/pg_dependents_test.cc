// Objects that depend on what complete drops (issue 8, item 6, and the
// index/CHECK bugs found with it): a plain view on a changed column is
// recreated on the new column inside complete's transaction (grants, owner,
// options and comments intact); a materialized view, a foreign key, a
// policy, a trigger's WHEN, a statistics object, a generated column, and a
// view on a dropped column are refused by both `lint --db` and `start`,
// naming the object, with the catalog unchanged. An expression index is
// carried to the copy. SQLite: a table-level CHECK naming a changed column
// is refused. Asserted by SQL against the real databases.
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kSetup = R"(
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dep_reader') THEN CREATE ROLE dep_reader; END IF;
END $$;
CREATE TABLE orders (id integer PRIMARY KEY, amount text, note text, code text UNIQUE);
INSERT INTO orders VALUES (1, '10', 'a', 'X1'), (2, '20', NULL, 'X2'), (3, NULL, 'c', 'X3');
)";

constexpr const char* kAlterAmount = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: integer
      up: amount::integer
      down: amount::text
)";

PgCluster* Pg() { return PgCluster::Shared(); }

std::string NewDb(const std::string& extra) {
  std::string url = Pg()->CreateDatabase("dep");
  if (!url.empty()) Pg()->Psql(url, std::string(kSetup) + extra);
  return url;
}

// Both lint --db and start refuse `plan`, naming every one of `names`, and
// the catalog is what it was.
void ExpectRefused(const std::string& url, const std::string& plan, const std::vector<std::string>& names) {
  TempDir dir;
  const std::string file = dir.Write("p.yaml", plan);
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  const std::string before = CatalogFingerprint(url);
  auto lint = m->Lint(file);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_FALSE(lint->ok);
  EXPECT_TRUE(lint->checked_against_database);
  std::string errors;
  for (const auto& e : lint->errors) errors += e + "\n";
  Status s = m->Start(file);
  EXPECT_FALSE(s.ok());
  for (const auto& n : names) {
    EXPECT_THAT(errors, HasSubstr(n)) << "lint --db";
    EXPECT_THAT(s.message(), HasSubstr(n)) << "start";
  }
  EXPECT_EQ(CatalogFingerprint(url), before);
}

void RunToComplete(Migrator& m, const std::string& file, const std::string& name) {
  SLUICE_ASSERT_OK(m.Start(file));
  auto bf = m.Backfill(name, {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  ASSERT_NO_FATAL_FAILURE(AssertVerified(m, name));
  SLUICE_ASSERT_OK(m.Switch(name, false));
  SLUICE_ASSERT_OK(m.Complete(name));
}

TEST(PgDependents, ViewsOnAChangedColumnAreRecreatedOnTheNewColumn) {
  std::string url = NewDb(R"(
CREATE VIEW priced WITH (security_barrier = true) AS SELECT id, amount, note FROM orders WHERE amount IS NOT NULL;
CREATE VIEW priced_ids AS SELECT id, amount FROM priced;
COMMENT ON VIEW priced IS 'orders with a price';
COMMENT ON COLUMN priced.amount IS 'the price';
GRANT SELECT ON priced TO dep_reader;
GRANT SELECT (id) ON priced_ids TO dep_reader;
CREATE SCHEMA reports;
CREATE VIEW reports.totals AS SELECT count(*) AS n, max(amount) AS top FROM orders;
)");
  ASSERT_FALSE(url.empty());
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  TempDir dir;
  // Lint accepts it: these views are handled.
  auto lint = m->Lint(dir.Write("alter_amount.yaml", kAlterAmount));
  ASSERT_TRUE(lint.ok());
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  RunToComplete(*m, dir.File("alter_amount.yaml"), "alter_amount");

  // The views read the new integer column, with the right rows.
  EXPECT_EQ(Pg()->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'public.priced'::regclass AND attname = 'amount'"),
            "integer");
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(id || ':' || (amount + 1), ',' ORDER BY id) FROM public.priced"),
            "1:11,2:21");
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(id::text, ',' ORDER BY id) FROM public.priced_ids"), "1,2");
  EXPECT_EQ(Pg()->Psql(url, "SELECT n || '/' || top FROM reports.totals"), "3/20");
  EXPECT_EQ(Pg()->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'reports.totals'::regclass AND attname = 'top'"),
            "integer");
  // Options, comments, grants (table and column) and owner are intact.
  EXPECT_EQ(Pg()->Psql(url, "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = "
                            "'public.priced'::regclass"),
            "security_barrier=true");
  EXPECT_EQ(Pg()->Psql(url, "SELECT obj_description('public.priced'::regclass, 'pg_class')"), "orders with a price");
  EXPECT_EQ(Pg()->Psql(url, "SELECT col_description('public.priced'::regclass, 2)"), "the price");
  EXPECT_EQ(Pg()->Psql(url, "SELECT has_table_privilege('dep_reader', 'public.priced', 'SELECT')"), "t");
  EXPECT_EQ(Pg()->Psql(url, "SELECT has_column_privilege('dep_reader', 'public.priced_ids', 'id', 'SELECT')"), "t");
  EXPECT_EQ(Pg()->Psql(url, "SELECT has_column_privilege('dep_reader', 'public.priced_ids', 'amount', 'SELECT')"),
            "f");
  EXPECT_EQ(Pg()->Psql(url, "SELECT pg_get_userbyid(relowner) = current_user FROM pg_class WHERE oid = "
                            "'public.priced'::regclass"),
            "t");
  // The old column is gone; nothing of sluice's is left on the table.
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                            "'public.orders'::regclass AND attnum > 0 AND NOT attisdropped"),
            "id,note,code,amount");
}

// The view reads a column that is renamed and changed, of a table that is
// renamed: recreated on the final names.
TEST(PgDependents, ViewsFollowRenamesOfTheChangedColumnAndTable) {
  std::string url = NewDb("CREATE VIEW priced AS SELECT id, amount FROM orders WHERE amount IS NOT NULL;");
  ASSERT_FALSE(url.empty());
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  TempDir dir;
  RunToComplete(*m, dir.Write("purchases.yaml", R"(
operations:
  - rename_table:
      from: orders
      to: purchases
  - rename_column:
      table: purchases
      from: amount
      to: price
  - alter_column:
      table: purchases
      column: price
      type: integer
      up: amount::integer
      down: price::text
)"),
                "purchases");
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(id || ':' || (amount + 1), ',' ORDER BY id) FROM public.priced"),
            "1:11,2:21");
  EXPECT_EQ(Pg()->Psql(url, "SELECT pg_get_viewdef('public.priced'::regclass) LIKE '%purchases.price%'"), "t");
  EXPECT_EQ(Pg()->Psql(url, "SELECT to_regclass('public.orders') IS NULL"), "t");
}

TEST(PgDependents, ExpressionIndexIsCarriedToTheCopy) {
  std::string url = NewDb("CREATE INDEX orders_lower_note ON orders (lower(note));");
  ASSERT_FALSE(url.empty());
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  TempDir dir;
  RunToComplete(*m, dir.Write("note_varchar.yaml", R"(
operations:
  - alter_column:
      table: orders
      column: note
      type: varchar(50)
      up: note
      down: note
)"),
                "note_varchar");
  EXPECT_EQ(Pg()->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'public.orders'::regclass AND attname = 'note'"),
            "character varying(50)");
  EXPECT_EQ(Pg()->Psql(url, "SELECT pg_get_indexdef('public.orders_lower_note'::regclass) LIKE "
                            "'%lower((note)::text)%' AND (SELECT indisvalid FROM pg_index WHERE indexrelid = "
                            "'public.orders_lower_note'::regclass)"),
            "t");
}

struct RefusalCase {
  const char* name;
  const char* setup;
  const char* plan;
  std::vector<std::string> names;
};

class PgRefusals : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(PgRefusals, RefusedByLintAndStartWithNothingChanged) {
  const RefusalCase& c = GetParam();
  std::string url = NewDb(c.setup);
  ASSERT_FALSE(url.empty());
  ExpectRefused(url, c.plan, c.names);
}

constexpr const char* kDropNote = R"(
operations:
  - drop_column:
      table: orders
      column: note
)";

constexpr const char* kAlterCode = R"(
operations:
  - alter_column:
      table: orders
      column: code
      type: varchar(10)
      up: code
      down: code
)";

INSTANTIATE_TEST_SUITE_P(
    Dependents, PgRefusals,
    ::testing::Values(
        RefusalCase{"matview", "CREATE MATERIALIZED VIEW amounts AS SELECT id, amount FROM orders;", kAlterAmount,
                    {"materialized view public.amounts", "amount"}},
        RefusalCase{"view_of_dropped_column", "CREATE VIEW notes AS SELECT id, note FROM orders;", kDropNote,
                    {"view public.notes", "note"}},
        RefusalCase{"matview_through_view",
                    "CREATE VIEW v1 AS SELECT id, amount FROM orders; CREATE MATERIALIZED VIEW mv1 AS SELECT * FROM v1;",
                    kAlterAmount, {"materialized view public.mv1"}},
        RefusalCase{"foreign_key_on_unique",
                    "CREATE TABLE refs (id integer PRIMARY KEY, code text REFERENCES orders (code));", kAlterCode,
                    {"refs_code_fkey", "foreign key"}},
        RefusalCase{"policy", "CREATE POLICY only_priced ON orders USING (amount IS NOT NULL);", kAlterAmount,
                    {"policy only_priced"}},
        RefusalCase{"trigger_when",
                    "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$; "
                    "CREATE TRIGGER priced_only BEFORE UPDATE ON orders FOR EACH ROW WHEN (NEW.amount IS NOT NULL) "
                    "EXECUTE FUNCTION noop();",
                    kAlterAmount, {"trigger priced_only"}},
        RefusalCase{"statistics", "CREATE STATISTICS amount_note (dependencies) ON amount, note FROM orders;",
                    kAlterAmount, {"amount_note"}},
        RefusalCase{"generated_column",
                    "ALTER TABLE orders ADD COLUMN note_len integer GENERATED ALWAYS AS (length(note)) STORED;",
                    R"(
operations:
  - alter_column:
      table: orders
      column: note
      type: varchar(50)
      up: note
      down: note
)",
                    {"note"}},
        RefusalCase{"partial_index_on_other_column", "CREATE INDEX orders_noted ON orders (id) WHERE note IS NOT NULL;",
                    R"(
operations:
  - alter_column:
      table: orders
      column: note
      type: varchar(50)
      up: note
      down: note
)",
                    {"orders_noted"}}),
    [](const ::testing::TestParamInfo<RefusalCase>& i) { return std::string(i.param.name); });

TEST(SqliteDependents, TableCheckNamingAChangedColumnIsRefused) {
  TempDir dir;
  const std::string path = dir.File("db.sqlite");
  auto m = OpenSqlite(path);
  ASSERT_NE(m, nullptr);
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, lo TEXT, hi TEXT, CONSTRAINT lo_below_hi CHECK (lo <= hi));"
        "INSERT INTO items VALUES (1, '1', '2');"));
  }
  const std::string before = QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name NOT LIKE "
                                            "'\\_sluice%' ESCAPE '\\'");
  const std::string file = dir.Write("lo_int.yaml", R"(
operations:
  - alter_column:
      table: items
      column: lo
      type: INTEGER
      up: CAST(lo AS INTEGER)
      down: CAST(lo AS TEXT)
)");
  auto lint = m->Lint(file);
  ASSERT_TRUE(lint.ok());
  EXPECT_FALSE(lint->ok);
  std::string errors;
  for (const auto& e : lint->errors) errors += e;
  EXPECT_THAT(errors, HasSubstr("lo_below_hi"));
  Status s = m->Start(file);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("lo_below_hi"));
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name NOT LIKE '\\_sluice%' "
                           "ESCAPE '\\'"),
            before);
}

}  // namespace
}  // namespace sluice::testing
