// Every operation SQLite supports, through the whole lifecycle on a real
// SQLite file: both versions read and write at once, backfill, verify,
// complete; and start -> rollback restores schema text and data exactly.
#include "support/lifecycle.h"

namespace sluice::testing {
namespace {

constexpr const char* kSetup = R"(
CREATE TABLE regions (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO regions VALUES (1, 'north'), (2, 'south');
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, score TEXT, note TEXT, region INTEGER);
INSERT INTO customers VALUES (1, 'Ann', 'ANN@X.COM', '10', NULL, 1), (2, 'Bob', 'bob@x.com', '20', 'vip', 2),
                             (3, 'Cy', NULL, '30', NULL, NULL);
CREATE INDEX customers_email_idx ON customers (email);
CREATE TABLE legacy (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO legacy VALUES (1, 'x');
)";

Backend SqliteBackend(const TempDir& dir) {
  Backend b;
  b.name = "sqlite";
  auto counter = std::make_shared<int>(0);
  b.open = [&dir, counter]() { return OpenSqlite(dir.File("db" + std::to_string(++*counter) + ".sqlite")); };
  b.schema_fingerprint = [](Migrator& m) {
    return QueryValue(m,
                      "SELECT group_concat(type || ':' || name || ':' || coalesce(sql, ''), char(10)) FROM (SELECT * "
                      "FROM sqlite_master WHERE tbl_name NOT LIKE '\\_sluice\\_%' ESCAPE '\\' ORDER BY type, name)");
  };
  return b;
}

OperationCase Case(std::string name, std::string plan) {
  OperationCase c;
  c.name = std::move(name);
  c.setup = kSetup;
  c.plan = std::move(plan);
  c.tables = {"customers", "regions", "legacy"};
  return c;
}

std::vector<OperationCase> Cases() {
  std::vector<OperationCase> cases;
  {
    auto c = Case("create_table", R"(
operations:
  - create_table:
      name: invoices
      columns:
        - {name: id, type: INTEGER, pk: true}
        - name: customer_id
          type: INTEGER
          references: {name: invoices_customer_fk, table: customers, column: id}
        - {name: total, type: INTEGER, default: "0"}
        - {name: memo, type: TEXT, nullable: true}
      constraints:
        - {name: invoices_total_check, type: check, check: total >= 0}
)");
    c.new_writes = {"INSERT INTO invoices (id, customer_id, total) VALUES (1, 1, 5)"};
    c.during = {{"new", "SELECT total FROM invoices WHERE id = 1", "5"}};
    c.after = {{"old", "SELECT count(*) FROM invoices", "1"},
               {"old", "SELECT count(*) FROM pragma_foreign_key_list('invoices')", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column", R"(
operations:
  - add_column:
      table: customers
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
)");
    c.old_writes = {"INSERT INTO customers (id, name, email, score) VALUES (4, 'Dee', 'DEE@X.COM', '40')",
                    "UPDATE customers SET email = 'BOB@Y.COM' WHERE id = 2"};
    c.new_writes = {"INSERT INTO customers (id, name, email, score, email_lower) VALUES (5, 'Eve', 'eve@x.com', '50', "
                    "'eve@x.com')"};
    c.during = {{"new", "SELECT email_lower FROM customers WHERE id = 4", "dee@x.com"},
                {"new", "SELECT email_lower FROM customers WHERE id = 2", "bob@y.com"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"},
                {"old", "SELECT email FROM customers WHERE id = 4", "DEE@X.COM"}};
    c.after = {{"old", "SELECT email_lower FROM customers WHERE id = 1", "ann@x.com"},
               {"old", "SELECT count(*) FROM customers WHERE email_lower IS NOT lower(email)", "0"},
               {"old", "SELECT count(*) FROM customers", "5"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column_not_null", R"(
operations:
  - add_column:
      table: customers
      up: CASE WHEN CAST(score AS INTEGER) >= 20 THEN 'gold' ELSE 'standard' END
      column: {name: tier, type: TEXT}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '25')"};
    c.during = {{"new", "SELECT tier FROM customers WHERE id = 4", "gold"}};
    c.after = {{"old", "SELECT tier FROM customers WHERE id = 1", "standard"},
               {"old", "SELECT \"notnull\" FROM pragma_table_info('customers') WHERE name = 'tier'", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column_default", R"(
operations:
  - add_column:
      table: customers
      column: {name: active, type: INTEGER, default: "1"}
)");
    c.old_writes = {"INSERT INTO customers (id, name) VALUES (4, 'Dee')"};
    c.during = {{"new", "SELECT active FROM customers WHERE id = 4", "1"},
                {"new", "SELECT active FROM customers WHERE id = 1", "1"}};
    c.after = {{"old", "SELECT \"notnull\" || dflt_value FROM pragma_table_info('customers') WHERE name = 'active'", "11"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_type", R"(
operations:
  - alter_column:
      table: customers
      column: score
      type: INTEGER
      up: CAST(score AS INTEGER)
      down: CAST(score AS TEXT)
)");
    c.old_writes = {"UPDATE customers SET score = '99' WHERE id = 1"};
    c.new_writes = {"UPDATE customers SET score = 77 WHERE id = 2",
                    "INSERT INTO customers (id, name, score) VALUES (9, 'Ivy', 5)"};
    c.during = {{"new", "SELECT typeof(score) || score FROM customers WHERE id = 1", "integer99"},
                {"old", "SELECT typeof(score) || score FROM customers WHERE id = 2", "text77"},
                {"old", "SELECT typeof(score) || score FROM customers WHERE id = 9", "text5"}};
    c.after = {{"old", "SELECT type FROM pragma_table_info('customers') WHERE name = 'score'", "INTEGER"},
               {"old", "SELECT typeof(score) || score FROM customers WHERE id = 3", "integer30"},
               {"old", "SELECT count(*) FROM pragma_table_info('customers')", "6"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_not_null", R"(
operations:
  - alter_column:
      table: customers
      column: email
      nullable: false
      up: coalesce(email, 'unknown@example.com')
      down: email
)");
    c.old_writes = {"INSERT INTO customers (id, name, email, score) VALUES (6, 'Fay', NULL, '1')"};
    c.new_writes = {"INSERT INTO customers (id, name, email, score) VALUES (7, 'Gus', 'gus@x.com', '2')"};
    c.during = {{"new", "SELECT email FROM customers WHERE id = 6", "unknown@example.com"},
                {"old", "SELECT email FROM customers WHERE id = 7", "gus@x.com"},
                {"old", "SELECT email IS NULL FROM customers WHERE id = 6", "1"}};
    c.after = {{"old", "SELECT email FROM customers WHERE id = 3", "unknown@example.com"},
               {"old", "SELECT \"notnull\" FROM pragma_table_info('customers') WHERE name = 'email'", "1"},
               // The index on the column was carried over under its own name.
               {"old", "SELECT group_concat(name) FROM pragma_index_info('customers_email_idx')", "email"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_unique", R"(
operations:
  - alter_column:
      table: customers
      column: name
      unique: {name: customers_name_key}
      up: name
      down: name
)");
    c.old_writes = {"INSERT INTO customers (id, name) VALUES (4, 'Dee')"};
    c.during = {{"new", "SELECT name FROM customers WHERE id = 4", "Dee"}};
    c.after = {{"old", "SELECT \"unique\" FROM pragma_index_list('customers') WHERE name = 'customers_name_key'", "1"},
               {"old", "SELECT count(*) FROM customers", "4"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_check", R"(
operations:
  - alter_column:
      table: customers
      column: score
      check: {name: score_positive, constraint: CAST(score AS INTEGER) > 0}
      up: CASE WHEN CAST(score AS INTEGER) > 0 THEN score ELSE '1' END
      down: score
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '-5')"};
    c.during = {{"new", "SELECT score FROM customers WHERE id = 4", "1"},
                {"old", "SELECT score FROM customers WHERE id = 4", "-5"}};
    c.after = {{"old", "SELECT instr(sql, 'score_positive') > 0 FROM sqlite_master WHERE name = 'customers'", "1"},
               {"old", "SELECT score FROM customers WHERE id = 4", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_references", R"(
operations:
  - alter_column:
      table: customers
      column: region
      references: {name: customers_region_fk, table: regions, column: id}
      up: region
      down: region
)");
    c.old_writes = {"UPDATE customers SET region = 2 WHERE id = 3"};
    c.during = {{"new", "SELECT region FROM customers WHERE id = 3", "2"}};
    c.after = {{"old", "SELECT \"table\" || '.' || \"to\" FROM pragma_foreign_key_list('customers')", "regions.id"},
               {"old", "SELECT region FROM customers WHERE id = 3", "2"}};
    cases.push_back(c);
  }
  {
    auto c = Case("rename_column", R"(
operations:
  - rename_column:
      table: customers
      from: email
      to: contact
)");
    c.old_writes = {"INSERT INTO customers (id, name, email, score) VALUES (4, 'Dee', 'd@x', '4')"};
    c.new_writes = {"INSERT INTO customers (id, name, contact, score) VALUES (5, 'Eve', 'e@x', '5')",
                    "UPDATE customers SET contact = 'ann@new' WHERE id = 1"};
    c.during = {{"new", "SELECT contact FROM customers WHERE id = 4", "d@x"},
                {"old", "SELECT email FROM customers WHERE id = 5", "e@x"},
                {"old", "SELECT email FROM customers WHERE id = 1", "ann@new"}};
    c.after = {{"old", "SELECT contact FROM customers WHERE id = 2", "bob@x.com"},
               {"old", "SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_column", R"(
operations:
  - drop_column:
      table: customers
      column: note
      down: "'n/a'"
)");
    c.old_writes = {"UPDATE customers SET note = 'changed' WHERE id = 1"};
    c.new_writes = {"INSERT INTO customers (id, name, email, score) VALUES (5, 'Eve', 'e@x', '5')"};
    c.during = {{"old", "SELECT note FROM customers WHERE id = 5", "n/a"},
                {"new", "SELECT count(*) FROM pragma_table_info('customers@drop_column') WHERE name = 'note'", "0"},
                {"new", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'note'", "0"},
               {"old", "SELECT count(*) FROM customers", "4"}};
    cases.push_back(c);
  }
  {
    auto c = Case("rename_table", R"(
operations:
  - rename_table:
      from: customers
      to: clients
)");
    c.old_writes = {"INSERT INTO customers (id, name) VALUES (4, 'Dee')"};
    c.new_writes = {"INSERT INTO clients (id, name) VALUES (5, 'Eve')"};
    c.during = {{"new", "SELECT name FROM clients WHERE id = 4", "Dee"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT count(*) FROM clients", "5"},
               {"old", "SELECT count(*) FROM sqlite_master WHERE name = 'customers'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_table", R"(
operations:
  - drop_table:
      name: legacy
)");
    c.old_writes = {"INSERT INTO legacy VALUES (2, 'y')"};
    c.start_changes_nothing_on = {"sqlite"};
    c.during = {{"old", "SELECT count(*) FROM legacy", "2"}};
    c.after = {{"old", "SELECT count(*) FROM sqlite_master WHERE name = 'legacy'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_index", R"(
operations:
  - create_index:
      name: customers_name_idx
      table: customers
      columns:
        - {column: name, sort: DESC}
      predicate: score IS NOT NULL
)");
    c.during = {{"new", "SELECT partial FROM pragma_index_list('customers') WHERE name = 'customers_name_idx'", "1"}};
    c.after = {{"old", "SELECT count(*) FROM pragma_index_list('customers') WHERE name = 'customers_name_idx'", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_index", R"(
operations:
  - drop_index:
      name: customers_email_idx
)");
    c.during = {{"old", "SELECT count(*) FROM pragma_index_list('customers') WHERE name = 'customers_email_idx'", "1"}};
    c.start_changes_nothing_on = {"sqlite"};
    c.after = {{"old", "SELECT count(*) FROM pragma_index_list('customers') WHERE name = 'customers_email_idx'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_constraint_unique", R"(
operations:
  - create_constraint:
      table: customers
      name: customers_name_email_key
      type: unique
      columns: [name, email]
      up: {name: name, email: email}
      down: {name: name, email: email}
)");
    c.old_writes = {"INSERT INTO customers (id, name, email) VALUES (4, 'Dee', 'd@x')"};
    c.new_writes = {"INSERT INTO customers (id, name, email) VALUES (5, 'Eve', 'e@x')"};
    c.during = {{"new", "SELECT email FROM customers WHERE id = 4", "d@x"},
                {"old", "SELECT email FROM customers WHERE id = 5", "e@x"}};
    c.after = {{"old", "SELECT group_concat(name) FROM pragma_index_info('customers_name_email_key')", "name,email"},
               {"old", "SELECT group_concat(name) FROM pragma_index_info('customers_email_idx')", "email"},
               {"old", "SELECT count(*) FROM customers", "5"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_constraint_check", R"(
operations:
  - create_constraint:
      table: customers
      name: customers_score_check
      type: check
      columns: [score]
      check: CAST(score AS INTEGER) < 1000
      up: {score: "CASE WHEN CAST(score AS INTEGER) < 1000 THEN score ELSE '999' END"}
      down: {score: score}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '5000')"};
    c.during = {{"new", "SELECT score FROM customers WHERE id = 4", "999"}};
    c.after = {{"old", "SELECT instr(sql, 'customers_score_check') > 0 FROM sqlite_master WHERE name = 'customers'", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("sql", R"(
operations:
  - sql:
      up: CREATE TABLE audit (id INTEGER PRIMARY KEY, msg TEXT)
      down: DROP TABLE audit
)");
    c.after = {{"old", "SELECT count(*) FROM sqlite_master WHERE name = 'audit'", "1"}};
    cases.push_back(c);
  }
  {
    auto c = Case("sql_on_complete", R"(
operations:
  - add_column:
      table: customers
      up: upper(name)
      column: {name: shout, type: TEXT, nullable: true}
  - sql:
      up: CREATE INDEX customers_shout_idx ON customers (shout)
      onComplete: true
)");
    c.during = {{"old", "SELECT count(*) FROM sqlite_master WHERE name = 'customers_shout_idx'", "0"}};
    c.after = {{"old", "SELECT count(*) FROM sqlite_master WHERE name = 'customers_shout_idx'", "1"},
               {"old", "SELECT shout FROM customers WHERE id = 2", "BOB"}};
    cases.push_back(c);
  }
  return cases;
}

class SqliteOperations : public ::testing::TestWithParam<OperationCase> {};

TEST_P(SqliteOperations, ForwardThroughComplete) {
  TempDir dir;
  RunForward(SqliteBackend(dir), GetParam(), dir);
}

TEST_P(SqliteOperations, RollbackRestoresSchemaAndData) {
  TempDir dir;
  RunRollback(SqliteBackend(dir), GetParam(), dir);
}

INSTANTIATE_TEST_SUITE_P(AllOperations, SqliteOperations, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<OperationCase>& i) { return i.param.name; });

}  // namespace
}  // namespace sluice::testing
