// User SQL that a text search misreads, carried through a whole migration
// on a real PostgreSQL server with the `sluice` binary (start -> writes
// through both versions -> backfill -> verify -> complete): columns named
// like functions and keywords (`left`, `count`), a column named like its
// table (`items.items`, so a qualified name and a table name spell the
// column's name), and a plan CHECK holding an E'...\'...' string. Every
// constraint and index must end up on the right column with the definition
// it had, and the data must be right, asserted with SQL.
#include "common/sql_text.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kSetup = R"SQL(
CREATE TABLE items (
  id integer PRIMARY KEY,
  "left" integer NOT NULL CONSTRAINT items_left_check CHECK ("left" > 0 AND left("left"::text, 1) <> '0'),
  items text CONSTRAINT items_items_check CHECK (items.items <> 'items'),
  count integer CONSTRAINT items_count_check CHECK (count >= 0 AND count IS DISTINCT FROM 99)
);
CREATE INDEX items_left_idx ON items ("left") WHERE "left" > 1 AND left("left"::text, 1) <> E'9\'';
CREATE INDEX items_items_idx ON items (items text_pattern_ops) WHERE items <> E'it\'s items';
CREATE UNIQUE INDEX items_count_idx ON items (count DESC NULLS LAST) WHERE count IS DISTINCT FROM 0;
INSERT INTO items VALUES (1, 5, 'apple', 1), (2, 7, E'it\'s', 2), (3, 9, 'count', 3);
)SQL";

// Three alter_columns, one per bug class; the third adds a CHECK whose
// E'...' string a text search would end at the backslash.
constexpr const char* kPlan = R"YAML(
operations:
  - alter_column:
      table: items
      column: left
      type: bigint
      up: '"left" * 10'
      down: '("left" / 10)::integer'
  - alter_column:
      table: items
      column: items
      type: text
      up: upper(items)
      down: lower(items)
  - alter_column:
      table: items
      column: count
      up: count + 100
      down: count - 100
      check:
        name: items_count_text
        constraint: "E'it\\'s count' <> count::text AND items.count <> 1099"
)YAML";

class PgSqlRewriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgCluster::Shared();
    SLUICE_ASSERT_PG_OK(pg_);
    url_ = pg_->CreateDatabase("rewrite");
    ASSERT_FALSE(url_.empty());
  }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url_});
    return RunSluice(args);
  }
  std::string Q(const std::string& sql) { return pg_->Psql(url_, sql); }
  // Constraint and index definitions of `items` (but items_count_text, the
  // plan's new check), by name.
  std::string Definitions() {
    return Q("SELECT string_agg(d, E'\\n' ORDER BY d) FROM ("
             "SELECT conname || ' on ' || coalesce((SELECT string_agg(attname, ',') FROM pg_attribute WHERE "
             "attrelid = conrelid AND attnum = ANY(conkey)), '-') || ': ' || pg_get_constraintdef(oid) AS d "
             "FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND contype = 'c' "
             "UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'public.items'::regclass "
             "AND NOT indisprimary) s WHERE d NOT LIKE 'items_count_text%'");
  }

  PgCluster* pg_ = nullptr;
  std::string url_;
};

TEST_F(PgSqlRewriteTest, FunctionNamedColumnsQualifiedNamesAndEscapedStringsSurviveTheLifecycle) {
  Q(kSetup);
  const std::string before = Definitions();
  ASSERT_NE(before.find("items_left_idx"), std::string::npos) << before;
  TempDir dir;
  const std::string plan = dir.Write("01_rewrite.yaml", kPlan);

  auto start = Sluice({"start", plan});
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  const std::string version = Q("SELECT version FROM sluice.migrations WHERE name = '01_rewrite'");
  ASSERT_FALSE(version.empty());

  // While both versions run: the copies carry the checks, so a bad value
  // written through either version is refused.
  std::string ignored, err;
  EXPECT_FALSE(pg_->TryPsql(url_, "INSERT INTO items VALUES (10, 0, 'zero', 4)", &ignored, &err));
  EXPECT_NE(err.find("check"), std::string::npos) << err;
  // Writes through the old version (the new one: after the backfill).
  Q("INSERT INTO items VALUES (4, 11, 'Dee', 4)");
  auto backfill = Sluice({"backfill"});
  ASSERT_EQ(backfill.exit_code, 0) << backfill.out << backfill.err;
  // The new version is usable once its backfill is done.
  Q("SET search_path TO " + sql::QuoteIdent("public_" + version) +
    "; INSERT INTO items (id, \"left\", items, count) VALUES (5, 130, 'EVE', 105)");
  EXPECT_FALSE(pg_->TryPsql(url_,
                            "SET search_path TO " + sql::QuoteIdent("public_" + version) +
                                "; INSERT INTO items (id, \"left\", items, count) VALUES (6, 20, 'x', 1099)",
                            &ignored, &err));
  EXPECT_NE(err.find("items_count_text"), std::string::npos) << err;

  auto verify = Sluice({"verify"});
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto complete = Sluice({"complete"});
  ASSERT_EQ(complete.exit_code, 0) << complete.out << complete.err;

  // (1) The columns have their names and new types.
  EXPECT_EQ(Q("SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM "
              "pg_attribute WHERE attrelid = 'public.items'::regclass AND attnum > 0 AND NOT attisdropped"),
            "id integer, left bigint, items text, count integer");
  // (2) Every carried-over constraint and index is back under its name, on
  // the new column, with the definition it had; the plan's check is on
  // `count` and reads as written.
  EXPECT_EQ(Definitions(), before);
  EXPECT_EQ(Q("SELECT (SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = conkey[1]) || ': ' || "
              "pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_count_text'"),
            "count: CHECK ((('it''s count'::text <> (count)::text) AND (count <> 1099)))");
  EXPECT_EQ(Q("SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND NOT convalidated"),
            "0");
  EXPECT_EQ(Q("SELECT count(*) FROM pg_index WHERE indrelid = 'public.items'::regclass AND NOT indisvalid"), "0");
  // (3) The data: up for old-version rows, the new-version row as written.
  EXPECT_EQ(Q("SELECT string_agg(id || ':' || \"left\" || ':' || items || ':' || count, ' ' ORDER BY id) FROM items"),
            "1:50:APPLE:101 2:70:IT'S:102 3:90:COUNT:103 4:110:DEE:104 5:130:EVE:105");
  // (4) The constraints still bite, on the new columns.
  EXPECT_FALSE(pg_->TryPsql(url_, "INSERT INTO items VALUES (7, -1, 'neg', 7)", &ignored, &err));
  EXPECT_NE(err.find("items_left_check"), std::string::npos) << err;
  EXPECT_FALSE(pg_->TryPsql(url_, "INSERT INTO items VALUES (7, 1, 'items', 7)", &ignored, &err));
  EXPECT_NE(err.find("items_items_check"), std::string::npos) << err;
  EXPECT_FALSE(pg_->TryPsql(url_, "INSERT INTO items VALUES (7, 1, 'ok', 101)", &ignored, &err));
  EXPECT_NE(err.find("items_count_idx"), std::string::npos) << err;
}

TEST_F(PgSqlRewriteTest, AnUnparsableCheckIsAPlanErrorWithItsLocationAndChangesNothing) {
  Q(kSetup);
  const std::string before = Definitions();
  TempDir dir;
  const std::string plan = dir.Write("02_bad.yaml", R"YAML(
operations:
  - alter_column:
      table: items
      column: count
      up: count + 1
      down: count - 1
      check: {name: items_bad, constraint: "count > E'1\\'"}
)YAML");
  auto start = Sluice({"start", plan});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.err, ::testing::HasSubstr("02_bad.yaml:3:5"));
  EXPECT_THAT(start.err, ::testing::HasSubstr("does not parse in PostgreSQL: unterminated quoted string"));
  EXPECT_EQ(Definitions(), before);
  EXPECT_EQ(Q("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attnum > 0"), "4");
}

}  // namespace
}  // namespace sluice::testing
