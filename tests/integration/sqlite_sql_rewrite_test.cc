// User SQL that a text search misreads, carried through a whole migration
// on a real SQLite file with the `sluice` binary (start -> writes through
// both versions -> backfill -> verify -> complete): columns named like
// keywords and functions (`end`, `key`, `replace`) written in every SQLite
// quoting style ([end], `end`, "end"), a 'string' that SQLite's CREATE INDEX
// reads as a column, strings holding the column's name. The checks and
// indexes must end up on the right column, as SQLite's own catalog says,
// and the data must be right.
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kSetup = R"SQL(
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  [end] INTEGER NOT NULL CHECK ([end] > 0 AND `end` <> 13 AND 'end' <> "end"),
  `key` TEXT CONSTRAINT items_key_check CHECK (replace([key], 'x', '') <> 'key'),
  replace TEXT
);
CREATE INDEX items_end_idx ON items ([end]) WHERE `end` > 1 AND 'end' <> "end";
CREATE INDEX [items key] ON items ('key' COLLATE nocase) WHERE [key] <> 'it''s key' AND replace(key, 'a', 'b') <> '';
INSERT INTO items VALUES (1, 5, 'apple', 'r'), (2, 7, 'it''s', 'q'), (3, 9, 'end', 'p');
)SQL";

constexpr const char* kPlan = R"YAML(
operations:
  - alter_column:
      table: items
      column: end
      type: INTEGER
      up: '[end] * 10'
      down: '"end" / 10'
  - alter_column:
      table: items
      column: key
      type: TEXT
      up: upper(`key`)
      down: lower([key])
)YAML";

class SqliteSqlRewriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.File("app.db");
    m_ = OpenSqlite(db_);
    ASSERT_TRUE(m_);
    auto s = m_->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    std::string setup = kSetup;
    size_t pos = 0;
    while (pos < setup.size()) {
      size_t end = setup.find(";\n", pos);
      if (end == std::string::npos) break;
      auto r = (*s)->Query(setup.substr(pos, end - pos));
      ASSERT_TRUE(r.ok()) << r.status().message();
      pos = end + 2;
    }
  }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", "sqlite:" + db_});
    return RunSluice(args);
  }
  std::string Q(const std::string& sql, const std::string& version = "") { return QueryValue(*m_, sql, version); }
  // A statement's error through `version` ("" when it succeeds).
  std::string Fails(const std::string& sql, const std::string& version = "") {
    auto s = m_->Connect(version);
    if (!s.ok()) return s.status().message();
    auto r = (*s)->Query(sql);
    return r.ok() ? "" : r.status().message();
  }
  // The key columns of an index, as SQLite's catalog lists them.
  std::string IndexColumns(const std::string& index) {
    return Q("SELECT group_concat(coalesce(name, '<expr>'), ',') FROM pragma_index_xinfo(" + sql_quote(index) +
             ") WHERE key");
  }
  static std::string sql_quote(const std::string& s) { return "'" + s + "'"; }

  TempDir dir_;
  std::string db_;
  std::unique_ptr<Migrator> m_;
};

TEST_F(SqliteSqlRewriteTest, KeywordNamedColumnsInEveryQuotingStyleSurviveTheLifecycle) {
  TempDir plans;
  const std::string plan = plans.Write("01_rewrite.yaml", kPlan);
  auto start = Sluice({"start", plan});
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  const std::string version = Q("SELECT version FROM _sluice_migrations WHERE name = '01_rewrite'");
  ASSERT_FALSE(version.empty());

  // The copy of [end] carries its CHECK: a bad value is refused through the
  // new version too (down gives 1 for the old column, up's copy is 10).
  EXPECT_NE(Fails("INSERT INTO items (id, [end], key) VALUES (10, 0, 'zero')"), "");
  Q("INSERT INTO items (id, [end], key, replace) VALUES (4, 11, 'Dee', 's')");

  auto backfill = Sluice({"backfill"});
  ASSERT_EQ(backfill.exit_code, 0) << backfill.out << backfill.err;
  // The new version is usable once its backfill is done.
  EXPECT_NE(Fails("INSERT INTO items (id, \"end\", key) VALUES (11, 130, 'x')", version), "");  // down: 13
  Q("INSERT INTO items (id, \"end\", key) VALUES (5, 140, 'EVE')", version);
  auto verify = Sluice({"verify"});
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto complete = Sluice({"complete"});
  ASSERT_EQ(complete.exit_code, 0) << complete.out << complete.err;

  // (1) The columns are back under their names.
  EXPECT_EQ(Q("SELECT group_concat(name, ',') FROM pragma_table_info('items')"), "id,replace,end,key");
  // (2) Both indexes exist under their names, on the new columns, with
  // their predicates.
  EXPECT_EQ(IndexColumns("items_end_idx"), "end");
  EXPECT_EQ(IndexColumns("items key"), "key");
  EXPECT_EQ(Q("SELECT group_concat(name || ':' || partial, ',') FROM (SELECT * FROM pragma_index_list('items') "
              "ORDER BY name)"),
            "items key:1,items_end_idx:1");
  // SQLite's catalog text: the checks and predicates name the new columns,
  // strings and function names are untouched.
  EXPECT_EQ(Q("SELECT group_concat(sql, char(10)) FROM (SELECT sql FROM sqlite_master WHERE tbl_name = 'items' "
              "ORDER BY type DESC, name)"),
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  replace TEXT\n, \"end\" INTEGER NOT NULL CONSTRAINT "
            "\"items_end_check\" CHECK (\"end\" > 0 AND \"end\" <> 13 AND 'end' <> \"end\"), \"key\" TEXT CONSTRAINT "
            "\"items_key_check\" CHECK (replace(\"key\", 'x', '') <> 'key'))\n"
            "CREATE INDEX [items key] ON items (\"key\" COLLATE nocase) WHERE \"key\" <> 'it''s key' AND "
            "replace(\"key\", 'a', 'b') <> ''\n"
            "CREATE INDEX items_end_idx ON items (\"end\") WHERE \"end\" > 1 AND 'end' <> \"end\"");
  EXPECT_EQ(Q("SELECT count(*) FROM items INDEXED BY items_end_idx WHERE \"end\" > 1 AND 'end' <> \"end\""), "5");
  EXPECT_EQ(Q("SELECT count(*) FROM items INDEXED BY [items key] WHERE key <> 'it''s key' AND "
              "replace(key, 'a', 'b') <> '' AND key = 'apple' COLLATE nocase"),
            "1");
  // (3) The data: up for old-version rows, the new-version row as written.
  EXPECT_EQ(Q("SELECT group_concat(id || ':' || \"end\" || ':' || key, ' ') FROM (SELECT * FROM items ORDER BY id)"),
            "1:50:APPLE 2:70:IT'S 3:90:END 4:110:DEE 5:140:EVE");
  // (4) The checks still bite, on the new columns.
  EXPECT_NE(Fails("INSERT INTO items (id, [end], key) VALUES (7, 0, 'a')"), "");
  EXPECT_NE(Fails("INSERT INTO items (id, [end], key) VALUES (7, 13, 'a')"), "");
  EXPECT_NE(Fails("INSERT INTO items (id, [end], key) VALUES (7, 1, 'kxey')"), "");
  EXPECT_EQ(Fails("INSERT INTO items (id, [end], key) VALUES (7, 1, 'ok')"), "");
}

TEST_F(SqliteSqlRewriteTest, AnUnparsableCheckIsAPlanErrorWithItsLocationAndChangesNothing) {
  const std::string before = ReadFile(db_);
  TempDir plans;
  const std::string plan = plans.Write("02_bad.yaml", R"YAML(
operations:
  - alter_column:
      table: items
      column: key
      up: upper(key)
      down: lower(key)
      check: {name: items_bad, constraint: "key <> E'a\\'b'"}
)YAML");
  auto start = Sluice({"start", plan});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.err, ::testing::HasSubstr("02_bad.yaml:3:5"));
  EXPECT_THAT(start.err, ::testing::HasSubstr("does not parse in SQLite: unrecognized token"));
  EXPECT_EQ(ReadFile(db_), before);
}

}  // namespace
}  // namespace sluice::testing
