// SQLite: the pre-flight of lint --db and start (issue 8, items 1 and 9).
// SQLite cannot keep a table's own triggers from firing for sluice's writes,
// so triggers those writes would fire are refused, naming them and the plan
// option that accepts firing them; triggers that only watch other columns
// (UPDATE OF) work. `up`/`down` are tried on real rows: a NULL for a NOT NULL
// column or a function that raises is refused with the row's key, the file
// unchanged. Asserted with SQL on real files.
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kSetup = R"(
CREATE TABLE orders (id INTEGER PRIMARY KEY, amount TEXT NOT NULL, note TEXT, payload TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
  INSERT INTO orders SELECT i, CAST(i * 10 AS TEXT), NULL, '{"n": ' || i || '}' FROM n;
CREATE TABLE audit (n INTEGER PRIMARY KEY, order_id INTEGER, what TEXT);
)";

constexpr const char* kAuditEveryUpdate = R"(
CREATE TRIGGER orders_audit AFTER UPDATE ON orders BEGIN
  INSERT INTO audit (order_id, what) VALUES (NEW.id, 'update');
END;
)";

constexpr const char* kAuditNoteOnly = R"(
CREATE TRIGGER orders_note_audit AFTER UPDATE OF note ON orders BEGIN
  INSERT INTO audit (order_id, what) VALUES (NEW.id, 'note');
END;
)";

constexpr const char* kPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(amount AS INTEGER)
      down: CAST(amount AS TEXT)
)";

constexpr const char* kFirePlan = R"(
backfill:
  fire_triggers: true
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(amount AS INTEGER)
      down: CAST(amount AS TEXT)
)";

std::string SchemaText(Migrator& m) {
  return QueryValue(m, "SELECT group_concat(type || ' ' || name || ' ' || coalesce(sql, ''), char(10)) FROM "
                       "(SELECT * FROM sqlite_schema WHERE name NOT LIKE 'sluice%' AND name NOT LIKE '_sluice%' "
                       "ORDER BY name)");
}

std::unique_ptr<Migrator> Db(const TempDir& dir, const std::string& extra) {
  auto m = OpenSqlite(dir.File("app.db"));
  if (!m) return m;
  auto s = m->Connect("");
  EXPECT_TRUE(s.ok());
  if (s.ok()) {
    EXPECT_TRUE((*s)->Exec(kSetup).ok());
    if (!extra.empty()) {
      EXPECT_TRUE((*s)->Exec(extra).ok());
    }
  }
  return m;
}

void ExpectRefused(Migrator& m, const std::string& plan, const std::vector<std::string>& says) {
  const std::string before = SchemaText(m);
  const std::string data = QueryValue(m, "SELECT group_concat(id || amount, ',') FROM orders");
  auto lint = m.Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_TRUE(lint->checked_against_database);
  EXPECT_FALSE(lint->ok);
  std::string errors;
  for (const auto& e : lint->errors) errors += e + "\n";
  Status s = m.Start(plan);
  EXPECT_FALSE(s.ok());
  for (const auto& w : says) {
    EXPECT_THAT(errors, HasSubstr(w));
    EXPECT_THAT(s.message(), HasSubstr(w));
  }
  EXPECT_EQ(SchemaText(m), before);
  EXPECT_EQ(QueryValue(m, "SELECT group_concat(id || amount, ',') FROM orders"), data);
}

TEST(SqlitePreflight, TriggerFiredBySluicesWritesIsRefusedUnlessThePlanAcceptsIt) {
  TempDir dir;
  auto m = Db(dir, kAuditEveryUpdate);
  ASSERT_NE(m, nullptr);
  ExpectRefused(*m, dir.Write("trg.yaml", kPlan), {"'orders_audit' on orders", "fire_triggers: true"});
  // Accepted with the opt-in; the backfill then fires it (as documented).
  const std::string fire = dir.Write("trg.yaml", kFirePlan);
  auto lint = m->Lint(fire);
  ASSERT_TRUE(lint.ok());
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  SLUICE_ASSERT_OK(m->Start(fire));
  auto bf = m->Backfill("trg", BackfillOptions{});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM audit"), "200");
  auto v = m->Verify("trg");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
}

TEST(SqlitePreflight, TriggerOnOtherColumnsWorksAndFiresOnlyForTheApplication) {
  TempDir dir;
  auto m = Db(dir, kAuditNoteOnly);
  ASSERT_NE(m, nullptr);
  const std::string before = QueryValue(*m, "SELECT sql FROM sqlite_schema WHERE name = 'orders_note_audit'");
  SLUICE_ASSERT_OK(m->Start(dir.Write("note.yaml", kPlan)));
  {
    auto o = m->Connect("");
    ASSERT_TRUE(o.ok());
    SLUICE_ASSERT_OK((*o)->Exec("UPDATE orders SET note = 'a', amount = '11' WHERE id = 1"));
  }
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(order_id || what, ',') FROM audit"), "1note");
  auto bf = m->Backfill("note", BackfillOptions{});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  // The backfill fired nothing.
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM audit"), "1");
  {
    // The new version is usable once its backfill is done.
    auto n = m->Connect("note");
    ASSERT_TRUE(n.ok()) << n.status().message();
    SLUICE_ASSERT_OK((*n)->Exec("UPDATE orders SET note = 'b', amount = 22 WHERE id = 2"));
  }
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(order_id || what, ',') FROM audit"), "1note,2note");
  EXPECT_EQ(QueryValue(*m, "SELECT amount FROM orders WHERE id = 2"), "22");
  auto v = m->Verify("note");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete("note"));
  EXPECT_EQ(QueryValue(*m, "SELECT sql FROM sqlite_schema WHERE name = 'orders_note_audit'"), before);
  EXPECT_EQ(QueryValue(*m, "SELECT typeof(amount) FROM orders WHERE id = 3"), "integer");
}

TEST(SqlitePreflight, DownYieldingNullForANotNullColumnIsRefusedWithTheRowsKey) {
  TempDir dir;
  auto m = Db(dir, "");
  ASSERT_NE(m, nullptr);
  ExpectRefused(*m, dir.Write("dn.yaml", R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(amount AS INTEGER)
      down: CASE WHEN amount > 1990 THEN NULL ELSE CAST(amount AS TEXT) END
)"),
                {"'down' for orders.amount", "key (id) = (200)", "NULL"});
}

TEST(SqlitePreflight, UpRaisingOnSomeRowsIsRefusedWithTheRowsKey) {
  TempDir dir;
  auto m = Db(dir, "UPDATE orders SET payload = 'not json' WHERE id = 1;");
  ASSERT_NE(m, nullptr);
  ExpectRefused(*m, dir.Write("up.yaml", R"(
operations:
  - add_column:
      table: orders
      up: json_extract(payload, '$.n')
      column: {name: n, type: INTEGER, nullable: true}
)"),
                {"'up' for orders.", "key (id) = (1)", "malformed JSON"});
}

}  // namespace
}  // namespace sluice::testing
