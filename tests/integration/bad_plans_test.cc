// Malformed and dangerous plans, each run through the real `sluice start`
// (and some through `sluice lint`) against a real SQLite file with data:
// the command must fail with the documented message, naming the plan file,
// line:column and the offending key or object, and the database file must
// be byte-for-byte what it was before.
#include <filesystem>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Rollback-journal mode (the default; the fixture never enables WAL), so the
// main file is the whole database whenever no sluice process is running.
constexpr const char* kSetup = R"~(
CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT);
INSERT INTO orders VALUES (1, 'ann@example.com', '10.50'), (2, 'bob@example.com', '7'), (3, 'cy@example.com', NULL);
CREATE INDEX orders_email_idx ON orders (email);
CREATE TABLE nokey (a TEXT, b TEXT);
INSERT INTO nokey VALUES ('x', 'y'), ('x', 'y'), (NULL, 'z');
)~";

struct BadPlan {
  std::string name;  // test name
  std::string file;  // plan file name
  std::string text;
  std::vector<std::string> expected;  // substrings of stderr
  // 1: fix the plan; 7: an operator must act (no usable key, a step this
  // database cannot express). docs/cli.md "Exit codes".
  int exit_code = 1;
};

void PrintTo(const BadPlan& p, std::ostream* os) { *os << p.name; }

class bad_plans : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.File("app.sqlite");
    {
      auto m = OpenSqlite(db_);
      ASSERT_NE(m, nullptr);
      auto s = m->Connect("");
      ASSERT_TRUE(s.ok()) << s.status().message();
      SLUICE_ASSERT_OK((*s)->Exec(kSetup));
      ASSERT_EQ(QueryValue(*m, "PRAGMA journal_mode"), "delete");
      ASSERT_EQ(QueryValue(*m, "SELECT count(*) FROM orders"), "3");
    }
    before_ = ReadFile(db_);
    ASSERT_FALSE(before_.empty());
    ASSERT_FALSE(std::filesystem::exists(db_ + "-wal"));
    ASSERT_FALSE(std::filesystem::exists(db_ + "-journal"));
  }

  // Runs `sluice --db sqlite:DB <verb> <plan>`.
  CommandResult Run(const std::string& verb, const std::string& plan_path) {
    return RunSluice({"--db", "sqlite:" + db_, verb, plan_path});
  }

  // The database file is exactly what it was after the fixture, and no
  // journal of a half-finished transaction is left beside it.
  void ExpectDatabaseUnchanged() {
    std::string after = ReadFile(db_);
    EXPECT_EQ(after.size(), before_.size());
    EXPECT_TRUE(after == before_) << "the database file changed";
    EXPECT_FALSE(std::filesystem::exists(db_ + "-wal"));
    EXPECT_FALSE(std::filesystem::exists(db_ + "-journal"));
  }

  TempDir dir_;
  std::string db_;
  std::string before_;
};

std::vector<BadPlan> Cases() {
  std::vector<BadPlan> c;
  // --- structure and types ------------------------------------------------------
  c.push_back({"UnknownTopLevelKey", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amount
backfil:
  chunk_rows: 10
)~",
               {"p.yaml:5:1: error: unknown key 'backfil' in the plan (did you mean 'backfill'?); allowed keys: name, "
                "version_schema, operations, backfill, verify, gates, abort"}});
  c.push_back({"UnknownKeyInOperation", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: note
        type: TEXT
        nulable: true
)~",
               {"p.yaml:7:9: error: unknown key 'nulable' in column of add_column (operation #1) (did you mean "
                "'nullable'?); allowed keys: name, type, nullable, pk, unique, default, comment, check, references, "
                "generated"}});
  c.push_back({"MisspelledRequiredKey", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      colum: amount
)~",
               {"p.yaml:4:7: error: unknown key 'colum' in drop_column (operation #1) (did you mean 'column'?)",
                "p.yaml:3:7: error: drop_column (operation #1) is missing required key 'column'"}});
  c.push_back({"DuplicateKey", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amount
      column: email
)~",
               {"p.yaml:5:7: error: duplicate key 'column' in drop_column (operation #1) (first at line 4)"}});
  c.push_back({"NumberWhereStringExpected", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: discount
        type: INTEGER
        default: 0
)~",
               {"p.yaml:7:9: error: 'default' in column of add_column (operation #1) must be a string, got an integer "
                "(quote it: \"0\")"}});
  c.push_back({"StringWhereBoolExpected", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: note
        type: TEXT
        nullable: "true"
)~",
               {"p.yaml:7:9: error: 'nullable' in column of add_column (operation #1) must be true or false, got a "
                "string 'true'"}});
  c.push_back({"Yaml11BooleanIsAString", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: note
        type: TEXT
        nullable: yes
)~",
               {"p.yaml:7:9: error: 'nullable' in column of add_column (operation #1) must be true or false, got a "
                "string 'yes'"}});
  c.push_back({"OperationsIsAMap", "p.yaml", R"~(operations:
  drop_column:
    table: orders
    column: amount
)~",
               {"p.yaml:1:1: error: 'operations' must be a list of operations (each item starting with '- '), got a "
                "map; pgroll would silently apply nothing here, sluice refuses"}});
  c.push_back({"OperationsEmpty", "p.yaml", "operations: []\n",
               {"p.yaml:1:1: error: 'operations' is empty: the migration would change nothing"}});
  c.push_back({"OperationsMissing", "p.yaml", "version_schema: v2\n",
               {"p.yaml:1:1: error: the plan is missing required key 'operations'"}});
  c.push_back({"OperationWithTwoKeys", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amount
    rename_column:
      table: orders
      from: email
      to: mail
)~",
               {"p.yaml:2:5: error: operation #1 must have exactly one key naming the operation, got 2 (drop_column, "
                "rename_column); start each operation with its own '- '"}});
  c.push_back({"UnknownOperation", "p.yaml", R"~(operations:
  - drop_colum:
      table: orders
      column: amount
)~",
               {"p.yaml:2:5: error: unknown operation 'drop_colum' in operation #1 (did you mean 'drop_column'?); "
                "known operations: create_table, add_column, alter_column, rename_column, drop_column,"}});
  c.push_back({"MissingRequiredField", "p.yaml", R"~(operations:
  - rename_column:
      table: orders
      from: email
)~",
               {"p.yaml:3:7: error: rename_column (operation #1) is missing required key 'to'"}});
  c.push_back({"DuplicateColumnInCreateTable", "p.yaml", R"~(operations:
  - create_table:
      name: refunds
      columns:
        - name: id
          type: INTEGER
          pk: true
        - name: amount
          type: TEXT
        - name: id
          type: TEXT
)~",
               {"p.yaml:10:17: error: duplicate column name 'id' in create_table (operation #1) (first at line 5)"}});
  c.push_back({"SqlOnCompleteWithDown", "p.yaml", R"~(operations:
  - sql:
      up: UPDATE orders SET amount = '0'
      down: UPDATE orders SET amount = NULL
      onComplete: true
)~",
               {"p.yaml:4:7: error: sql (operation #1): 'down' cannot be combined with 'onComplete: true'"}});
  c.push_back({"InvalidYamlSyntax", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: [amount
)~",
               {"p.yaml:5:1: error: cannot parse YAML: end of sequence flow not found"}});
  c.push_back({"TabIndentation", "p.yaml", "operations:\n\t- drop_column:\n      table: orders\n      column: amount\n",
               {"p.yaml:2:2: error: cannot parse YAML: "}});
  c.push_back({"EmptyFile", "p.yaml", "", {"p.yaml:1:1: error: the plan is empty; it needs an 'operations' list"}});
  c.push_back({"TxtExtension", "p.txt", R"~(operations:
  - drop_column:
      table: orders
      column: amount
)~",
               {"p.txt: error: plan file name must end in .yaml, .yml or .json"}});
  c.push_back({"JsonTrailingComma", "p.json", R"~({
  "operations": [
    {"drop_column": {"table": "orders", "column": "amount",}}
  ]
}
)~",
               {"p.json:3:59: error: cannot parse JSON: trailing comma before '}'"}});
  c.push_back({"JsonTrailingCommaInList", "p.json", R"~({
  "operations": [
    {"drop_column": {"table": "orders", "column": "amount"}},
  ]
}
)~",
               {"p.json:3:61: error: cannot parse JSON: trailing comma before ']'"}});
  c.push_back({"JsonWrongType", "p.json", R"~({
  "operations": [
    {"add_column": {"table": "orders", "column": {"name": "note", "type": "TEXT", "nullable": "false"}}}
  ]
}
)~",
               {"p.json:3:83: error: 'nullable' in column of add_column (operation #1) must be true or false, got a "
                "string 'false'"}});

  // --- against the live schema -------------------------------------------------
  c.push_back({"UnknownTable", "p.yaml", R"~(operations:
  - drop_column:
      table: order
      column: amount
)~",
               {"p.yaml:3:14: error: operation #1 (drop_column): table 'order' does not exist; tables: ", "orders"}});
  c.push_back({"UnknownColumn", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amout
)~",
               {"p.yaml:4:15: error: operation #1 (drop_column): column 'orders.amout' does not exist; columns: id, "
                "email, amount"}});
  c.push_back({"CreateExistingTable", "p.yaml", R"~(operations:
  - create_table:
      name: orders
      columns:
        - name: id
          type: INTEGER
          pk: true
)~",
               {"p.yaml:3:13: error: operation #1 (create_table): table 'orders' already exists"}});
  c.push_back({"AddNotNullColumnWithoutUpOrDefault", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: currency
        type: TEXT
)~",
               {"p.yaml:5:9: error: operation #1 (add_column): column 'orders.currency' is NOT NULL (pgroll columns "
                "are NOT NULL unless 'nullable: true') but has neither 'up' nor 'default', so existing rows would have "
                "no value; add 'up: <expression>' or 'default', or set 'nullable: true'"}});
  c.push_back({"AddExistingColumn", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column:
        name: email
        type: TEXT
        nullable: true
)~",
               {"p.yaml:5:15: error: operation #1 (add_column): column 'orders.email' already exists"}});
  c.push_back({"TableWithoutUsableKey", "p.yaml", R"~(operations:
  - alter_column:
      table: nokey
      column: a
      type: INTEGER
      up: CAST(a AS INTEGER)
      down: CAST(a AS TEXT)
)~",
               {"p.yaml:3:14: error: operation #1 (alter_column): table 'nokey' has no primary key and no unique index "
                "on NOT NULL columns, so sluice cannot backfill it in key order or route writes between versions. Add "
                "one first, e.g. CREATE UNIQUE INDEX nokey_key ON nokey(<not-null column>)"}, 7});
  c.push_back({"DropKeyColumn", "p.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: id
)~",
               {"p.yaml:4:15: error: operation #1 (drop_column): column 'orders.id' is part of the table's key; "
                "sluice cannot drop a key column online"}});
  c.push_back({"UpReferencesMissingColumn", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      up: lower(emial)
      column:
        name: email_lower
        type: TEXT
        nullable: true
)~",
               {"p.yaml:2:5: operation #1 (add_column): 'up' for orders.email_lower does not work on this database: "
                "no such column: emial"}});
  c.push_back({"SqliteCannotComment", "p.yaml", R"~(operations:
  - alter_column:
      table: orders
      column: amount
      comment: the amount in cents
)~",
               {"p.yaml:2:5: error: operation #1 (alter_column): SQLite cannot do this: SQLite has no comments on "
                "tables or columns"}, 7});
  c.push_back({"SqliteCannotHashIndex", "p.yaml", R"~(operations:
  - create_index:
      name: orders_amount_idx
      table: orders
      method: hash
      columns: [amount]
)~",
               {"p.yaml:2:5: error: operation #1 (create_index): SQLite cannot do this: SQLite has only b-tree indexes "
                "(method: hash)"}, 7});
  c.push_back({"SecondOperationFails", "p.yaml", R"~(operations:
  - add_column:
      table: orders
      column: {name: note, type: TEXT, nullable: true}
  - drop_column:
      table: orders
      column: amount_cents
)~",
               {"p.yaml:7:15: error: operation #2 (drop_column): column 'orders.amount_cents' does not exist"}});
  return c;
}

class bad_plans_start : public bad_plans, public ::testing::WithParamInterface<BadPlan> {};

TEST_P(bad_plans_start, FailsWithItsMessageAndLeavesTheDatabaseUntouched) {
  const BadPlan& bp = GetParam();
  std::string path = dir_.Write(bp.file, bp.text);
  CommandResult r = Run("start", path);
  EXPECT_EQ(r.exit_code, bp.exit_code) << r.err;
  EXPECT_THAT(r.err, HasSubstr("sluice: error: ")) << r.err;
  for (const auto& want : bp.expected) {
    // The messages name the plan as it was given on the command line.
    std::string with_path = want;
    if (with_path.rfind(bp.file, 0) == 0) with_path = dir_.path() + "/" + want;
    EXPECT_THAT(r.err, HasSubstr(with_path));
  }
  EXPECT_THAT(r.out, Not(HasSubstr("started")));
  ExpectDatabaseUnchanged();
}

INSTANTIATE_TEST_SUITE_P(Cases, bad_plans_start, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<BadPlan>& i) { return i.param.name; });

TEST_F(bad_plans, PlanFileThatDoesNotExist) {
  std::string path = dir_.File("missing.yaml");
  CommandResult r = Run("start", path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("sluice: error: cannot read plan file '" + path + "'"));
  ExpectDatabaseUnchanged();

  r = Run("lint", path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("sluice: error: cannot read plan file '" + path + "'"));
  ExpectDatabaseUnchanged();
}

// The fixture's plans are only wrong where each case says: the same
// database accepts a correct plan afterwards, and that does change the file
// (so the byte comparison above can fail).
TEST_F(bad_plans, AFailedStartLeavesTheDatabaseUsable) {
  std::string bad = dir_.Write("p.yaml", "operations:\n  - drop_column:\n      table: orders\n      column: amout\n");
  CommandResult r = Run("start", bad);
  ASSERT_EQ(r.exit_code, 1) << r.err;
  ExpectDatabaseUnchanged();

  std::string good = dir_.Write("q.yaml", "operations:\n  - drop_column:\n      table: orders\n      column: amount\n");
  r = Run("start", good);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("started " + good));
  EXPECT_NE(ReadFile(db_), before_);
  auto m = OpenSqlite(db_, false);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM orders"), "3");
  EXPECT_EQ(QueryValue(*m, "SELECT amount FROM orders WHERE id = 1"), "10.50");
}

// --- lint --------------------------------------------------------------------------

TEST_F(bad_plans, LintReportsTheSameErrorsAndChangesNothing) {
  struct LintCase {
    std::string file, text, expected;
    int errors = 1;
    int start_exit = 1;  // 7 when the error is a failed precondition
  };
  const std::vector<LintCase> cases = {
      {"a.yaml", "operations:\n  - drop_column:\n      table: orders\n      colum: amount\n",
       "a.yaml:4:7: error: unknown key 'colum' in drop_column (operation #1) (did you mean 'column'?)", 2},
      {"b.yaml", "operations:\n  drop_column:\n    table: orders\n    column: amount\n",
       "b.yaml:1:1: error: 'operations' must be a list of operations (each item starting with '- '), got a map"},
      {"c.yaml", "operations:\n  - drop_column:\n      table: orders\n      column: amout\n",
       "c.yaml:4:15: error: operation #1 (drop_column): column 'orders.amout' does not exist; columns: id, email, "
       "amount"},
      {"d.yaml", "operations:\n  - alter_column:\n      table: nokey\n      column: a\n      type: INTEGER\n",
       "d.yaml:3:14: error: operation #1 (alter_column): table 'nokey' has no primary key", 1, 7},
      {"e.json", "{\"operations\": [{\"drop_column\": {\"table\": \"orders\", \"column\": \"amount\",}}]}",
       "e.json:1:71: error: cannot parse JSON: trailing comma before '}'"},
      {"f.yaml", "operations:\n  - alter_column:\n      table: orders\n      column: amount\n      comment: x\n",
       "f.yaml:2:5: error: operation #1 (alter_column): SQLite cannot do this: SQLite has no comments on tables or "
       "columns", 1, 7},
  };
  for (const auto& lc : cases) {
    SCOPED_TRACE(lc.file);
    std::string path = dir_.Write(lc.file, lc.text);
    CommandResult r = Run("lint", path);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(r.err, HasSubstr(dir_.path() + "/" + lc.expected));
    EXPECT_THAT(r.err, HasSubstr("sluice: error: " + path + " has " + std::to_string(lc.errors) + " error(s)"));
    EXPECT_EQ(r.out, "");
    ExpectDatabaseUnchanged();

    // start says the same.
    CommandResult s = Run("start", path);
    EXPECT_EQ(s.exit_code, lc.start_exit);
    EXPECT_THAT(s.err, HasSubstr(dir_.path() + "/" + lc.expected));
    ExpectDatabaseUnchanged();
  }
}

TEST_F(bad_plans, LintCountsEveryError) {
  std::string path = dir_.Write("multi.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amout
  - rename_column:
      table: nokey
      from: a
      to: a
)~");
  CommandResult r = Run("lint", path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(path + ":8:11: error: rename_column (operation #2) renames 'a' to itself"));
  EXPECT_THAT(r.err, HasSubstr("has 1 error(s)"));  // parse errors stop before the schema check
  ExpectDatabaseUnchanged();

  path = dir_.Write("multi2.yaml", R"~(operations:
  - drop_column:
      table: orders
      column: amout
  - drop_column:
      table: refunds
      column: amount
)~");
  r = Run("lint", path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(path + ":4:15: error: operation #1 (drop_column): column 'orders.amout' does not exist"));
  EXPECT_THAT(r.err, HasSubstr(path + ":6:14: error: operation #2 (drop_column): table 'refunds' does not exist"));
  EXPECT_THAT(r.err, HasSubstr("sluice: error: " + path + " has 2 error(s)"));
  ExpectDatabaseUnchanged();
}

TEST_F(bad_plans, LintAcceptsAValidPlanAndChangesNothing) {
  std::string path = dir_.Write("ok.yaml", R"~(operations:
  - add_column:
      table: orders
      up: lower(email)
      column:
        name: email_lower
        type: TEXT
        nullable: true
)~");
  CommandResult r = Run("lint", path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, path + ": ok (checked against the database)\n");
  ExpectDatabaseUnchanged();

  // Without a database only the syntax is checked: an unknown table passes.
  std::string unknown = dir_.Write("unknown_table.yaml", "operations:\n  - drop_table: {name: nowhere}\n");
  r = RunSluice({"lint", unknown});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok (syntax only; pass --db to check against a database)"));
  r = Run("lint", unknown);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(unknown + ":2:24: error: operation #1 (drop_table): table 'nowhere' does not exist"));
  ExpectDatabaseUnchanged();
}

}  // namespace
}  // namespace sluice::testing
