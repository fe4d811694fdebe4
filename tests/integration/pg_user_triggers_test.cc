// PostgreSQL: tables with their own triggers (issue 8, item 1). The backfill
// fires none of them, writes through both versions fire them exactly once
// per application write, the dual-write sees the row as they leave it, and
// complete/rollback leave them byte-identical. Triggers sluice cannot give
// the same semantics, or cannot keep from firing, are refused at lint --db
// and start with the database unchanged; `backfill: fire_triggers: true`
// accepts the latter. Asserted with SQL on the throwaway cluster.
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

PgCluster* Pg() { return PgCluster::Shared(); }

// orders with a BEFORE trigger stamping updated_at and an AFTER audit
// trigger; 200 rows whose timestamps are fixed and whose audit is empty.
constexpr const char* kSetup = R"(
CREATE TABLE orders (id integer PRIMARY KEY, amount text NOT NULL, note text,
                     updated_at timestamptz NOT NULL DEFAULT '2000-01-01');
CREATE TABLE audit (n bigserial PRIMARY KEY, order_id integer, op text);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (order_id, op) VALUES (NEW.id, TG_OP); RETURN NULL; END $$;
INSERT INTO orders (id, amount) SELECT g, (g * 10)::text FROM generate_series(1, 200) g;
CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit_row();
)";

constexpr const char* kPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: integer
      up: amount::integer
      down: amount::text
)";

constexpr const char* kFirePlan = R"(
backfill:
  fire_triggers: true
operations:
  - alter_column:
      table: orders
      column: amount
      type: integer
      up: amount::integer
      down: amount::text
)";

constexpr const char* kTriggerDefs =
    "SELECT string_agg(pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text, E'\\n' ORDER BY t.tgname) FROM pg_trigger t "
    "WHERE t.tgrelid = 'public.orders'::regclass AND NOT t.tgisinternal";

// The documented way an application selects a version.
std::string OnVersion(const std::string& version, const std::string& sql) {
  return "SET search_path TO \"public_" + version + "\", public; " + sql;
}

class PgUserTriggers : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(Pg()); }
};

// Writes through the old version, the backfill, then writes through the
// new version (usable once its backfill is done) and the old one.
void WriteAndBackfill(Migrator& m, const std::string& db, const std::string& name) {
  // Through the old version (the base tables).
  Pg()->Psql(db, "UPDATE orders SET note = 'old' WHERE id = 1");
  Pg()->Psql(db, "INSERT INTO orders (id, amount) VALUES (1001, '6')");
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(order_id || ':' || op, ',' ORDER BY n) FROM audit"),
            "1:UPDATE,1001:INSERT");

  const std::string audit_before = Pg()->Psql(db, "SELECT count(*) FROM audit");
  const std::string stamps_before =
      Pg()->Psql(db, "SELECT string_agg(id || '=' || updated_at, ',' ORDER BY id) FROM orders");
  BackfillOptions bo;
  bo.chunk_rows = 50;
  bo.chunk_min_rows = 20;
  bo.chunk_max_rows = 50;
  auto bf = m.Backfill(name, bo);
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  // The backfill moved no timestamp and wrote no audit row.
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM audit"), audit_before);
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(id || '=' || updated_at, ',' ORDER BY id) FROM orders"),
            stamps_before);
  EXPECT_EQ(Pg()->Psql(db, OnVersion(name, "SELECT sum(amount) FROM orders")),
            Pg()->Psql(db, "SELECT sum(amount::integer) FROM orders"));

  // Through the new version.
  Pg()->Psql(db, OnVersion(name, "UPDATE orders SET amount = 777 WHERE id = 2"));
  Pg()->Psql(db, OnVersion(name, "INSERT INTO orders (id, amount) VALUES (1000, 5)"));
  // Each application write ran the user's triggers exactly once.
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(order_id || ':' || op, ',' ORDER BY n) FROM audit"),
            "1:UPDATE,1001:INSERT,2:UPDATE,1000:INSERT");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE updated_at > '2001-01-01'"), "4");
  // The dual-write carried both ways, with the user trigger's timestamp.
  EXPECT_EQ(Pg()->Psql(db, "SELECT amount FROM orders WHERE id = 2"), "777");
  EXPECT_EQ(Pg()->Psql(db, OnVersion(name, "SELECT amount + 1 FROM orders WHERE id = 1001")), "7");
  EXPECT_EQ(Pg()->Psql(db, OnVersion(name, "SELECT amount + 1 FROM orders WHERE id = 1000")), "6");
  EXPECT_EQ(Pg()->Psql(db, OnVersion(name, "SELECT count(*) FROM orders WHERE updated_at > '2001-01-01'")), "4");
  auto v = m.Verify(name);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
}

TEST_F(PgUserTriggers, BackfillFiresNoTriggerAndBothVersionsFireThemOnce) {
  std::string db = Pg()->CreateDatabase("utrg");
  Pg()->Psql(db, kSetup);
  const std::string defs = Pg()->Psql(db, kTriggerDefs);
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  const std::string plan = dir.Write("utrg.yaml", kPlan);
  auto lint = m->Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  SLUICE_ASSERT_OK(m->Start(plan));
  WriteAndBackfill(*m, db, "utrg");
  SLUICE_ASSERT_OK(m->Complete("utrg"));
  EXPECT_EQ(Pg()->Psql(db, kTriggerDefs), defs);
  // After complete the application writes the new type; triggers still run once.
  Pg()->Psql(db, "TRUNCATE audit; UPDATE orders SET amount = amount + 1 WHERE id = 3");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM audit"), "1");
  EXPECT_EQ(Pg()->Psql(db, "SELECT amount FROM orders WHERE id = 3"), "31");
}

TEST_F(PgUserTriggers, RollbackLeavesTriggersAndCatalogAsBefore) {
  std::string db = Pg()->CreateDatabase("utrgrb");
  Pg()->Psql(db, kSetup);
  const std::string defs = Pg()->Psql(db, kTriggerDefs);
  const std::string before = CatalogFingerprint(db);
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  SLUICE_ASSERT_OK(m->Start(dir.Write("utrgrb.yaml", kPlan)));
  // The live alias exists from the first start on (the old version).
  EXPECT_EQ(Pg()->Psql(db, "SET search_path TO public_live, public; SELECT amount FROM orders WHERE id = 5"), "50");
  WriteAndBackfill(*m, db, "utrgrb");
  SLUICE_ASSERT_OK(m->Rollback("utrgrb"));
  EXPECT_EQ(Pg()->Psql(db, kTriggerDefs), defs);
  EXPECT_EQ(CatalogFingerprint(db), before);
  EXPECT_EQ(Pg()->Psql(db, "SELECT amount FROM orders WHERE id = 2"), "777");
}

// lint --db reports it as an error; start refuses with the catalog unchanged.
void ExpectRefused(Migrator& m, const std::string& db, const std::string& plan, const std::string& says) {
  const std::string before = CatalogFingerprint(db);
  auto lint = m.Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_FALSE(lint->ok);
  std::string errors;
  for (const auto& e : lint->errors) errors += e + "\n";
  EXPECT_THAT(errors, HasSubstr(says));
  Status s = m.Start(plan);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(says));
  EXPECT_EQ(CatalogFingerprint(db), before);
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'public\\_%'"), "0");
}

TEST_F(PgUserTriggers, BeforeTriggerUsingAChangedColumnIsRefused) {
  std::string db = Pg()->CreateDatabase("utrgcol");
  Pg()->Psql(db, kSetup);
  Pg()->Psql(db, R"(
CREATE FUNCTION check_amount() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.amount = '' THEN RAISE EXCEPTION 'empty'; END IF; RETURN NEW; END $$;
CREATE TRIGGER orders_check BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION check_amount();
)");
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  ExpectRefused(*m, db, dir.Write("utrgcol.yaml", kPlan), "'orders_check' on orders");
  ExpectRefused(*m, db, dir.Write("utrgcol2.yaml", kPlan), "'amount'");
}

TEST_F(PgUserTriggers, TriggerSortingAfterTheDualWriteIsRefused) {
  std::string db = Pg()->CreateDatabase("utrgsort");
  Pg()->Psql(db, kSetup);
  Pg()->Psql(db, "CREATE TRIGGER \"\xc3\xbc_touch\" BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()");
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  ExpectRefused(*m, db, dir.Write("utrgsort.yaml", kPlan), "fires after sluice's dual-write trigger");
}

TEST_F(PgUserTriggers, AlwaysTriggerIsRefusedUnlessThePlanAcceptsFiringIt) {
  std::string db = Pg()->CreateDatabase("utrgalw");
  Pg()->Psql(db, kSetup);
  Pg()->Psql(db, "ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_audit");
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  ExpectRefused(*m, db, dir.Write("utrgalw.yaml", kPlan), "fire_triggers: true");
  // The same migration with the opt-in: accepted; the backfill fires it.
  const std::string fire = dir.Write("utrgalw.yaml", kFirePlan);
  auto lint = m->Lint(fire);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  SLUICE_ASSERT_OK(m->Start(fire));
  auto bf = m->Backfill("utrgalw", BackfillOptions{});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  // With the opt-in the backfill fires the table's triggers, as documented.
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM audit"), "200");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE updated_at > '2001-01-01'"), "200");
}

TEST_F(PgUserTriggers, RoleThatCannotSetReplicaModeIsRefusedThenGrantOrOptInWorks) {
  std::string db = Pg()->CreateDatabase("utrgrole");
  std::string owner = Pg()->CreateOwnerRole(db);
  ASSERT_FALSE(owner.empty());
  Pg()->Psql(owner, kSetup);
  auto m = OpenUrl(owner, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  ExpectRefused(*m, db, dir.Write("utrgrole.yaml", kPlan), "session_replication_role");
  // With the opt-in, the same plan is accepted.
  const std::string fire = dir.Write("utrgrole.yaml", kFirePlan);
  auto lint = m->Lint(fire);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  // With PostgreSQL 15's GRANT SET ON PARAMETER the plain plan is accepted,
  // and its backfill fires nothing.
  const std::string role = Pg()->Psql(owner, "SELECT current_user");
  Pg()->Psql(db, "GRANT SET ON PARAMETER session_replication_role TO \"" + role + "\"");
  const std::string plain = dir.Write("utrgrole.yaml", kPlan);
  SLUICE_ASSERT_OK(m->Start(plain));
  auto bf = m->Backfill("utrgrole", BackfillOptions{});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM audit"), "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE updated_at > '2001-01-01'"), "0");
}

}  // namespace
}  // namespace sluice::testing
