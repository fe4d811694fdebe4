// Every operation on a real PostgreSQL 15 server (a throwaway cluster, see
// tests/support/pg_cluster.h), through the whole lifecycle: both versions
// read and write at once and see each other's writes transformed, backfill,
// verify, complete; start -> rollback restores the catalog (from pg_catalog)
// and the data exactly; start -> rollback -> start -> complete works.
// Each case runs in a fresh database.
#include "support/lifecycle.h"
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"

namespace sluice::testing {
namespace {

constexpr const char* kSetup = R"(
CREATE TABLE regions (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO regions VALUES (1, 'north'), (2, 'south');
CREATE TABLE customers (
  id integer PRIMARY KEY,
  name text NOT NULL,
  email text,
  score text,
  note text CONSTRAINT customers_note_len CHECK (length(note) < 100),
  region integer,
  balance integer NOT NULL DEFAULT 0);
INSERT INTO customers VALUES (1, 'Ann', 'ANN@X.COM', '10', NULL, 1, 5), (2, 'Bob', 'bob@x.com', '20', 'vip', 2, 0),
                             (3, 'Cy', NULL, '30', NULL, NULL, 7);
CREATE INDEX customers_email_idx ON customers (email);
CREATE TABLE legacy (id integer PRIMARY KEY, v text);
INSERT INTO legacy VALUES (1, 'x');
CREATE TABLE bands (id integer PRIMARY KEY, lo integer NOT NULL, hi integer NOT NULL,
                    CONSTRAINT bands_range CHECK (hi >= lo));
INSERT INTO bands VALUES (1, 1, 5), (2, 3, 3);
CREATE TABLE zones (country text, code text, label text, PRIMARY KEY (country, code));
INSERT INTO zones VALUES ('de', 'b', 'Berlin'), ('fr', 'p', 'Paris');
CREATE TABLE sites (id integer PRIMARY KEY, country text, code text);
INSERT INTO sites VALUES (1, 'de', 'b'), (2, 'fr', 'p'), (3, NULL, NULL);
)";

Backend PgBackend() {
  Backend b;
  b.name = "postgres";
  b.open = []() -> std::unique_ptr<Migrator> {
    PgCluster* pg = PgCluster::Shared();
    EXPECT_TRUE(pg->ok()) << pg->error();
    if (!pg->ok()) return nullptr;
    std::string url = pg->CreateDatabase("ops");
    if (url.empty()) return nullptr;
    Options o;
    o.db_url = url;
    o.actor = "test";
    o.lock_retry_budget_ms = 20000;
    auto m = Migrator::Open(o);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(*m) : nullptr;
  };
  b.schema_fingerprint = [](Migrator& m) { return QueryValue(m, kPgFingerprintSql); };
  return b;
}

OperationCase Case(std::string name, std::string plan) {
  OperationCase c;
  c.name = std::move(name);
  c.setup = kSetup;
  c.plan = std::move(plan);
  c.tables = {"customers", "regions", "legacy", "bands", "zones", "sites"};
  return c;
}

// SELECT on the catalog for one table of the session's search path.
std::string Attr(const std::string& table, const std::string& column, const std::string& what) {
  return "SELECT " + what + " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = "
         "a.attnum WHERE a.attrelid = '" + table + "'::regclass AND a.attname = '" + column + "' AND NOT a.attisdropped";
}
std::string ConDef(const std::string& name) {
  return "SELECT pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END FROM "
         "pg_constraint WHERE conname = '" + name + "'";
}
std::string IdxDef(const std::string& name) {
  return "SELECT pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
         "n.nspname = 'public' AND c.relname = '" + name + "'";
}

std::vector<OperationCase> Cases() {
  std::vector<OperationCase> cases;
  {
    auto c = Case("create_table", R"(
operations:
  - create_table:
      name: invoices
      comment: one row per invoice
      columns:
        - name: id
          type: bigint
          pk: true
          generated:
            identity:
              user_specified_values: BY DEFAULT
        - name: customer_id
          type: integer
          references: {name: invoices_customer_fk, table: customers, column: id, on_delete: CASCADE}
        - name: total
          type: integer
          default: "0"
          check: {name: invoices_total_check, constraint: total >= 0}
        - {name: code, type: text, unique: true}
        - {name: period, type: int4range, nullable: true, comment: billing period}
      constraints:
        - name: invoices_customer_code_key
          type: unique
          columns: [customer_id, code]
          nulls_not_distinct: true
          index_parameters: {storage_parameters: fillfactor=80}
        - name: invoices_period_excl
          type: exclude
          exclude: {index_method: gist, elements: "period WITH &&"}
  - create_table:
      name: invoice_lines
      columns:
        - name: seq
          type: bigint
          generated:
            identity:
              sequence_options: START WITH 100
        - {name: invoice_id, type: bigint}
        - {name: line, type: integer}
        - {name: qty, type: integer, default: "1"}
      constraints:
        - {name: invoice_lines_pkey, type: primary_key, columns: [invoice_id, line]}
        - name: invoice_lines_invoice_fk
          type: foreign_key
          columns: [invoice_id]
          references: {table: invoices, columns: [id], on_delete: CASCADE}
)");
    c.new_writes = {"INSERT INTO invoices (customer_id, total, code, period) VALUES (1, 5, 'A', '[1,5)')",
                    "INSERT INTO invoice_lines (invoice_id, line) SELECT id, 1 FROM invoices WHERE code = 'A'"};
    c.old_writes = {"INSERT INTO invoices (customer_id, total, code, period) VALUES (2, 7, 'B', '[5,9)')"};
    c.during = {{"new", "SELECT total FROM invoices WHERE code = 'B'", "7"},
                {"new", "SELECT count(*) FROM invoices", "2"},
                {"old", "SELECT qty || '/' || seq FROM invoice_lines", "1/100"},
                {"old", "SELECT customer_id FROM invoices WHERE code = 'A'", "1"}};
    c.after = {{"old", Attr("invoices", "id", "a.attidentity"), "d"},
               {"old", Attr("invoice_lines", "seq", "a.attidentity"), "a"},
               {"old", "SELECT string_agg(contype::text, '' ORDER BY contype::text) FROM pg_constraint WHERE conrelid = "
                       "'invoices'::regclass", "cfpuux"},
               {"old", ConDef("invoices_period_excl"), "EXCLUDE USING gist (period WITH &&)"},
               {"old", ConDef("invoices_customer_code_key"), "UNIQUE NULLS NOT DISTINCT (customer_id, code)"},
               {"old", "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = "
                       "'invoices_customer_code_key'", "fillfactor=80"},
               {"old", ConDef("invoice_lines_pkey"), "PRIMARY KEY (invoice_id, line)"},
               {"old", ConDef("invoice_lines_invoice_fk"),
                "FOREIGN KEY (invoice_id) REFERENCES invoices(id) ON DELETE CASCADE"},
               {"old", "SELECT obj_description('invoices'::regclass, 'pg_class')", "one row per invoice"},
               {"old", "SELECT count(*) FROM invoices", "2"}};
    c.writes_survive_rollback = false;
    cases.push_back(c);
  }
  {
    auto c = Case("add_column", R"(
operations:
  - add_column:
      table: customers
      up: lower(email)
      column: {name: email_lower, type: text, nullable: true}
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
               {"old", "SELECT count(*) FROM customers WHERE email_lower IS DISTINCT FROM lower(email)", "0"},
               {"old", "SELECT count(*) FROM customers", "5"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column_not_null", R"(
operations:
  - add_column:
      table: customers
      up: CASE WHEN score::integer >= 20 THEN 'gold' ELSE 'standard' END
      column: {name: tier, type: text}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '25')"};
    c.new_writes = {"INSERT INTO customers (id, name, tier) VALUES (5, 'Eve', 'vip')"};
    c.during = {{"new", "SELECT tier FROM customers WHERE id = 4", "gold"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT tier FROM customers WHERE id = 1", "standard"},
               {"old", "SELECT tier FROM customers WHERE id = 5", "vip"},
               {"old", Attr("customers", "tier", "a.attnotnull"), "t"},
               {"old", "SELECT count(*) FROM pg_constraint WHERE conname LIKE '\\_sluice%'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column_default", R"(
operations:
  - add_column:
      table: customers
      column: {name: active, type: boolean, default: "true"}
)");
    c.old_writes = {"INSERT INTO customers (id, name) VALUES (4, 'Dee')"};
    c.new_writes = {"INSERT INTO customers (id, name, active) VALUES (5, 'Eve', false)"};
    c.during = {{"new", "SELECT active FROM customers WHERE id = 4", "t"},
                {"new", "SELECT active FROM customers WHERE id = 1", "t"},
                {"new", "SELECT active FROM customers WHERE id = 5", "f"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", Attr("customers", "active", "a.attnotnull || ' ' || pg_get_expr(d.adbin, d.adrelid)"),
                "true true"}};
    cases.push_back(c);
  }
  {
    auto c = Case("add_column_constraints", R"(
operations:
  - add_column:
      table: customers
      up: region
      column:
        name: home_region
        type: integer
        nullable: true
        references: {name: customers_home_region_fk, table: regions, column: id, on_delete: SET NULL}
        check: {name: customers_home_region_check, constraint: home_region > 0}
  - add_column:
      table: customers
      up: "'C-' || id"
      column: {name: code, type: text, unique: true}
)");
    c.old_writes = {"INSERT INTO customers (id, name, region) VALUES (4, 'Dee', 2)"};
    c.new_writes = {"INSERT INTO customers (id, name, home_region, code) VALUES (5, 'Eve', 1, 'C-5')"};
    c.during = {{"new", "SELECT home_region || code FROM customers WHERE id = 4", "2C-4"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", ConDef("customers_home_region_fk"),
                "FOREIGN KEY (home_region) REFERENCES regions(id) ON DELETE SET NULL"},
               {"old", ConDef("customers_home_region_check"), "CHECK ((home_region > 0))"},
               {"old", ConDef("customers_code_key"), "UNIQUE (code)"},
               {"old", Attr("customers", "code", "a.attnotnull"), "t"},
               {"old", "SELECT string_agg(code, ',' ORDER BY id) FROM customers", "C-1,C-2,C-3,C-4,C-5"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_type", R"(
operations:
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
)");
    c.old_writes = {"UPDATE customers SET score = '99' WHERE id = 1"};
    c.new_writes = {"UPDATE customers SET score = 77 WHERE id = 2",
                    "INSERT INTO customers (id, name, score) VALUES (9, 'Ivy', 5)"};
    c.during = {{"new", "SELECT pg_typeof(score)::text || score FROM customers WHERE id = 1", "integer99"},
                {"old", "SELECT pg_typeof(score)::text || score FROM customers WHERE id = 2", "text77"},
                {"old", "SELECT pg_typeof(score)::text || score FROM customers WHERE id = 9", "text5"}};
    c.after = {{"old", Attr("customers", "score", "format_type(a.atttypid, a.atttypmod)"), "integer"},
               {"old", "SELECT score + 1 FROM customers WHERE id = 3", "31"},
               {"old", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0 AND "
                       "NOT attisdropped", "7"}};
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
                {"old", "SELECT email IS NULL FROM customers WHERE id = 6", "t"}};
    c.after = {{"old", "SELECT email FROM customers WHERE id = 3", "unknown@example.com"},
               {"old", Attr("customers", "email", "a.attnotnull"), "t"},
               // The index on the column was carried over under its own name.
               {"old", IdxDef("customers_email_idx"), "CREATE INDEX customers_email_idx ON public.customers USING btree (email)"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_default", R"(
operations:
  - alter_column:
      table: customers
      column: note
      default: "'n/a'"
)");
    c.old_writes = {"INSERT INTO customers (id, name) VALUES (4, 'Dee')"};
    c.new_writes = {"INSERT INTO customers (id, name) VALUES (5, 'Eve')"};
    c.during = {{"old", "SELECT note FROM customers WHERE id = 4", "n/a"},
                {"new", "SELECT note FROM customers WHERE id = 5", "n/a"}};
    c.after = {{"old", Attr("customers", "note", "pg_get_expr(d.adbin, d.adrelid)"), "'n/a'::text"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_comment", R"(
operations:
  - alter_column:
      table: customers
      column: email
      comment: where invoices go
)");
    c.during = {{"new", "SELECT col_description('public.customers'::regclass, 3)", "where invoices go"}};
    c.after = {{"old", "SELECT col_description('customers'::regclass, 3)", "where invoices go"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_check", R"(
operations:
  - alter_column:
      table: customers
      column: score
      check: {name: score_positive, constraint: "score::integer > 0"}
      up: CASE WHEN score::integer > 0 THEN score ELSE '1' END
      down: score
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '-5')"};
    c.new_writes = {"INSERT INTO customers (id, name, score) VALUES (5, 'Eve', '8')"};
    c.during = {{"new", "SELECT score FROM customers WHERE id = 4", "1"},
                {"old", "SELECT score FROM customers WHERE id = 4", "-5"},
                {"old", "SELECT score FROM customers WHERE id = 5", "8"}};
    c.after = {{"old", ConDef("score_positive"), "CHECK (((score)::integer > 0))"},
               {"old", "SELECT score FROM customers WHERE id = 4", "1"}};
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
    c.new_writes = {"UPDATE customers SET name = 'Bobby' WHERE id = 2"};
    c.during = {{"new", "SELECT name FROM customers WHERE id = 4", "Dee"},
                {"old", "SELECT name FROM customers WHERE id = 2", "Bobby"}};
    c.after = {{"old", ConDef("customers_name_key"), "UNIQUE (name)"},
               {"old", Attr("customers", "name", "a.attnotnull"), "t"},
               {"old", "SELECT count(*) FROM customers", "4"}};
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
    c.new_writes = {"INSERT INTO customers (id, name, region) VALUES (5, 'Eve', 1)"};
    c.during = {{"new", "SELECT region FROM customers WHERE id = 3", "2"},
                {"old", "SELECT region FROM customers WHERE id = 5", "1"}};
    c.after = {{"old", ConDef("customers_region_fk"), "FOREIGN KEY (region) REFERENCES regions(id)"},
               {"old", "SELECT region FROM customers WHERE id = 3", "2"}};
    cases.push_back(c);
  }
  {
    auto c = Case("alter_column_combined", R"(
operations:
  - alter_column:
      table: customers
      column: email
      type: varchar(100)
      nullable: false
      default: "'none@x'"
      comment: contact address
      check: {name: customers_email_at, constraint: "email LIKE '%@%'"}
      unique: {name: customers_email_key}
      up: coalesce(lower(email), 'none' || id || '@x')
      down: upper(email)
)");
    c.old_writes = {"INSERT INTO customers (id, name, email) VALUES (4, 'Dee', NULL)"};
    c.new_writes = {"INSERT INTO customers (id, name) VALUES (5, 'Eve')",
                    "UPDATE customers SET email = 'ann@new.com' WHERE id = 1"};
    c.during = {{"new", "SELECT email FROM customers WHERE id = 4", "none4@x"},
                {"new", "SELECT email FROM customers WHERE id = 5", "none@x"},
                {"old", "SELECT email FROM customers WHERE id = 5", "NONE@X"},
                {"old", "SELECT email FROM customers WHERE id = 1", "ANN@NEW.COM"}};
    c.after = {{"old", Attr("customers", "email",
                            "format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || "
                            "pg_get_expr(d.adbin, d.adrelid)"),
                "character varying(100) true 'none@x'::character varying"},
               {"old", "SELECT col_description('customers'::regclass, a.attnum) FROM pg_attribute a WHERE a.attrelid = "
                       "'customers'::regclass AND a.attname = 'email'", "contact address"},
               {"old", ConDef("customers_email_at"), "CHECK (((email)::text ~~ '%@%'::text))"},
               {"old", ConDef("customers_email_key"), "UNIQUE (email)"},
               {"old", IdxDef("customers_email_idx"), "CREATE INDEX customers_email_idx ON public.customers USING btree (email)"},
               {"old", "SELECT string_agg(email, ',' ORDER BY id) FROM customers",
                "ann@new.com,bob@x.com,none3@x,none4@x,none@x"}};
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
               {"old", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'email'",
                "0"},
               {"old", IdxDef("customers_email_idx"), "CREATE INDEX customers_email_idx ON public.customers USING btree (contact)"}};
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
                {"old", "SELECT note FROM customers WHERE id = 1", "changed"},
                {"new", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'note'",
                 "0"},
                {"new", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'note' "
                       "AND NOT attisdropped", "0"},
               {"old", "SELECT count(*) FROM pg_constraint WHERE conname = 'customers_note_len'", "0"},
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
                {"new", "SELECT balance FROM clients WHERE id = 5", "0"},
                // The old name no longer reaches the base table (its placeholder fails on use).
                {"new", "SELECT to_regclass('customers') IS DISTINCT FROM 'public.customers'::regclass", "t"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT count(*) FROM clients", "5"},
               {"old", "SELECT to_regclass('public.customers') IS NULL", "t"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_table", R"(
operations:
  - drop_table:
      name: legacy
)");
    c.old_writes = {"INSERT INTO legacy VALUES (2, 'y')"};
    c.during = {{"old", "SELECT count(*) FROM legacy", "2"},
                {"new", "SELECT to_regclass('legacy') IS DISTINCT FROM 'public.legacy'::regclass", "t"},
                {"new", "SELECT count(*) FROM customers", "3"}};
    c.after = {{"old", "SELECT to_regclass('public.legacy') IS NULL", "t"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_index", R"(
operations:
  - create_index:
      name: customers_name_idx
      table: customers
      columns:
        - {column: name, sort: DESC, nulls: LAST, collate: C}
      predicate: score IS NOT NULL
      storage_parameters: fillfactor=70
  - create_index:
      name: customers_email_hash
      table: customers
      method: hash
      columns: [email]
  - create_index:
      name: customers_name_pattern
      table: customers
      unique: true
      columns:
        - column: name
          opclass: {name: text_pattern_ops}
  - create_index:
      name: customers_region_score
      table: customers
      columns: [region, {column: score, nulls: FIRST}]
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '1')"};
    c.during = {{"new", "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE "
                        "'customers\\_%' AND i.indisvalid", "6"},
                {"new", "SELECT name FROM customers WHERE id = 4", "Dee"}};
    c.after = {{"old", IdxDef("customers_name_idx"),
                "CREATE INDEX customers_name_idx ON public.customers USING btree (name COLLATE \"C\" DESC NULLS LAST) "
                "WITH (fillfactor='70') WHERE (score IS NOT NULL)"},
               {"old", IdxDef("customers_email_hash"),
                "CREATE INDEX customers_email_hash ON public.customers USING hash (email)"},
               {"old", IdxDef("customers_name_pattern"),
                "CREATE UNIQUE INDEX customers_name_pattern ON public.customers USING btree (name text_pattern_ops)"},
               {"old", IdxDef("customers_region_score"),
                "CREATE INDEX customers_region_score ON public.customers USING btree (region, score NULLS FIRST)"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_index", R"(
operations:
  - drop_index:
      name: customers_email_idx
)");
    c.during = {{"old", "SELECT count(*) FROM pg_class WHERE relname = 'customers_email_idx'", "1"}};
    c.after = {{"old", "SELECT count(*) FROM pg_class WHERE relname = 'customers_email_idx'", "0"}};
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
      up: {name: name, email: lower(email)}
      down: {name: name, email: upper(email)}
)");
    c.old_writes = {"INSERT INTO customers (id, name, email) VALUES (4, 'Dee', 'D@X')"};
    c.new_writes = {"INSERT INTO customers (id, name, email) VALUES (5, 'Eve', 'e@x')"};
    c.during = {{"new", "SELECT email FROM customers WHERE id = 4", "d@x"},
                {"old", "SELECT email FROM customers WHERE id = 5", "E@X"}};
    c.after = {{"old", ConDef("customers_name_email_key"), "UNIQUE (name, email)"},
               {"old", IdxDef("customers_email_idx"), "CREATE INDEX customers_email_idx ON public.customers USING btree (email)"},
               {"old", "SELECT string_agg(email, ',' ORDER BY id) FROM customers", "ann@x.com,bob@x.com,d@x,e@x"}};
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
      check: score::integer < 1000
      up: {score: "CASE WHEN score::integer < 1000 THEN score ELSE '999' END"}
      down: {score: score}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '5000')"};
    c.during = {{"new", "SELECT score FROM customers WHERE id = 4", "999"},
                {"old", "SELECT score FROM customers WHERE id = 4", "5000"}};
    c.after = {{"old", ConDef("customers_score_check"), "CHECK (((score)::integer < 1000))"},
               {"old", "SELECT score FROM customers WHERE id = 4", "999"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_constraint_foreign_key", R"(
operations:
  - create_constraint:
      table: customers
      name: customers_region_fk
      type: foreign_key
      columns: [region]
      references: {table: regions, columns: [id], on_delete: SET NULL}
      up: {region: "CASE WHEN region IN (1, 2) THEN region END"}
      down: {region: region}
)");
    c.old_writes = {"INSERT INTO customers (id, name, region) VALUES (4, 'Dee', 42)"};
    c.new_writes = {"INSERT INTO customers (id, name, region) VALUES (5, 'Eve', 2)"};
    c.during = {{"new", "SELECT region IS NULL FROM customers WHERE id = 4", "t"},
                {"old", "SELECT region FROM customers WHERE id = 4", "42"},
                {"old", "SELECT region FROM customers WHERE id = 5", "2"}};
    c.after = {{"old", ConDef("customers_region_fk"), "FOREIGN KEY (region) REFERENCES regions(id) ON DELETE SET NULL"}};
    cases.push_back(c);
  }
  {
    auto c = Case("create_constraint_foreign_key_multi", R"(
operations:
  - create_constraint:
      table: sites
      name: sites_zone_fk
      type: foreign_key
      columns: [country, code]
      references: {table: zones, columns: [country, code]}
      up: {country: lower(country), code: code}
      down: {country: upper(country)}
)");
    c.old_writes = {"INSERT INTO sites VALUES (4, 'DE', 'b')"};
    c.new_writes = {"INSERT INTO sites (id, country, code) VALUES (5, 'fr', 'p')"};
    c.during = {{"new", "SELECT country FROM sites WHERE id = 4", "de"},
                {"old", "SELECT country || code FROM sites WHERE id = 5", "FRp"}};
    c.after = {{"old", ConDef("sites_zone_fk"), "FOREIGN KEY (country, code) REFERENCES zones(country, code)"},
               {"old", "SELECT string_agg(coalesce(country, '-'), ',' ORDER BY id) FROM sites", "de,fr,-,de,fr"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_constraint", R"(
operations:
  - drop_constraint:
      table: customers
      name: customers_note_len
      up: note
      down: left(note, 99)
)");
    c.old_writes = {"UPDATE customers SET note = 'old note' WHERE id = 1"};
    c.new_writes = {"INSERT INTO customers (id, name, note) VALUES (5, 'Eve', repeat('x', 150))"};
    c.during = {{"old", "SELECT length(note) FROM customers WHERE id = 5", "99"},
                {"new", "SELECT length(note) FROM customers WHERE id = 5", "150"},
                {"new", "SELECT note FROM customers WHERE id = 1", "old note"}};
    c.after = {{"old", "SELECT count(*) FROM pg_constraint WHERE conname = 'customers_note_len'", "0"},
               {"old", "SELECT length(note) FROM customers WHERE id = 5", "150"}};
    cases.push_back(c);
  }
  {
    auto c = Case("drop_multicolumn_constraint", R"(
operations:
  - drop_multicolumn_constraint:
      table: bands
      name: bands_range
      up:
        lo: lo
        hi: hi
      down:
        hi: CASE WHEN hi >= lo THEN hi ELSE lo END
)");
    c.old_writes = {"INSERT INTO bands VALUES (4, 2, 8)"};
    c.new_writes = {"INSERT INTO bands VALUES (3, 9, 2)"};
    c.during = {{"old", "SELECT lo || '-' || hi FROM bands WHERE id = 3", "9-9"},
                {"new", "SELECT lo || '-' || hi FROM bands WHERE id = 3", "9-2"},
                {"new", "SELECT lo || '-' || hi FROM bands WHERE id = 4", "2-8"}};
    c.after = {{"old", "SELECT count(*) FROM pg_constraint WHERE conname = 'bands_range'", "0"},
               {"old", "SELECT lo || '-' || hi FROM bands WHERE id = 3", "9-2"},
               {"old", Attr("bands", "hi", "a.attnotnull"), "t"}};
    cases.push_back(c);
  }
  {
    auto c = Case("rename_constraint", R"(
operations:
  - rename_constraint:
      table: bands
      from: bands_range
      to: bands_hi_not_below_lo
)");
    c.old_writes = {"INSERT INTO bands VALUES (4, 2, 8)"};
    c.during = {{"old", "SELECT hi FROM bands WHERE id = 4", "8"},
                {"new", "SELECT count(*) FROM bands", "3"}};
    c.after = {{"old", ConDef("bands_hi_not_below_lo"), "CHECK ((hi >= lo))"},
               {"old", "SELECT count(*) FROM pg_constraint WHERE conname = 'bands_range'", "0"}};
    cases.push_back(c);
  }
  {
    auto c = Case("sql", R"(
operations:
  - sql:
      up: CREATE TABLE audit (id integer PRIMARY KEY, msg text DEFAULT 'none')
      down: DROP TABLE audit
)");
    c.new_writes = {"INSERT INTO audit (id) VALUES (1)"};
    c.old_writes = {"INSERT INTO audit VALUES (2, 'old')"};
    c.during = {{"old", "SELECT msg FROM audit WHERE id = 1", "none"},
                {"new", "SELECT msg FROM audit WHERE id = 2", "old"}};
    c.after = {{"old", "SELECT count(*) FROM audit", "2"}};
    c.writes_survive_rollback = false;
    cases.push_back(c);
  }
  {
    auto c = Case("sql_on_complete", R"(
operations:
  - add_column:
      table: customers
      up: upper(name)
      column: {name: shout, type: text, nullable: true}
  - sql:
      up: CREATE INDEX customers_shout_idx ON customers (shout)
      onComplete: true
)");
    c.during = {{"old", "SELECT count(*) FROM pg_class WHERE relname = 'customers_shout_idx'", "0"}};
    c.after = {{"old", "SELECT count(*) FROM pg_class WHERE relname = 'customers_shout_idx'", "1"},
               {"old", "SELECT shout FROM customers WHERE id = 2", "BOB"}};
    cases.push_back(c);
  }
  {
    auto c = Case("sql_enum_type", R"(
operations:
  - sql:
      up: CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')
      down: DROP TYPE mood
  - add_column:
      table: customers
      column: {name: mood, type: mood, default: "'ok'"}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '50')"};
    c.new_writes = {"INSERT INTO customers (id, name, mood) VALUES (5, 'Eve', 'happy')",
                    "UPDATE customers SET mood = 'sad' WHERE id = 1"};
    c.during = {{"new", "SELECT mood FROM customers WHERE id = 4", "ok"},
                {"new", "SELECT mood FROM customers WHERE id = 2", "ok"},
                {"new", "SELECT mood > 'sad' FROM customers WHERE id = 5", "t"},
                {"old", "SELECT name FROM customers WHERE id = 5", "Eve"}};
    c.after = {{"old", "SELECT string_agg(mood::text, ',' ORDER BY id) FROM customers", "sad,ok,ok,ok,happy"},
               {"old", Attr("customers", "mood", "format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull"),
                "mood true"}};
    cases.push_back(c);
  }
  {
    // An enum column filled by `up`: the backfill casts to the column type.
    auto c = Case("sql_enum_type_up", R"(
operations:
  - sql:
      up: CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')
      down: DROP TYPE mood
  - add_column:
      table: customers
      up: CASE WHEN score::int >= 20 THEN 'happy' ELSE 'sad' END
      column: {name: mood, type: mood, nullable: true}
)");
    c.old_writes = {"INSERT INTO customers (id, name, score) VALUES (4, 'Dee', '50')"};
    c.during = {{"new", "SELECT mood FROM customers WHERE id = 4", "happy"}};
    c.after = {{"old", "SELECT string_agg(coalesce(mood::text, '-'), ',' ORDER BY id) FROM customers",
                "sad,happy,happy,happy"}};
    cases.push_back(c);
  }
  {
    auto c = Case("set_replica_identity", R"(
operations:
  - set_replica_identity:
      table: customers
      identity: {type: full}
)");
    c.during = {{"new", "SELECT relreplident FROM pg_class WHERE oid = 'public.customers'::regclass", "f"}};
    c.after = {{"old", "SELECT relreplident FROM pg_class WHERE oid = 'customers'::regclass", "f"}};
    cases.push_back(c);
  }
  return cases;
}

class PgOperations : public ::testing::TestWithParam<OperationCase> {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(PgCluster::Shared()); }
};

TEST_P(PgOperations, ForwardThroughComplete) {
  TempDir dir;
  RunForward(PgBackend(), GetParam(), dir);
}

TEST_P(PgOperations, RollbackRestoresCatalogAndData) {
  TempDir dir;
  RunRollback(PgBackend(), GetParam(), dir);
}

INSTANTIATE_TEST_SUITE_P(AllOperations, PgOperations, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<OperationCase>& i) { return i.param.name; });

}  // namespace
}  // namespace sluice::testing
