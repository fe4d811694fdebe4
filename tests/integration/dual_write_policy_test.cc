// The dual-write failure policy (issue 8 item 14; seed 002: "the new
// system's write must never block or fail the old system's write").
// `dual_write: {on_error: record}` (the default) lets an old-version write
// whose `up` fails succeed, stores the column's fallback (or NULL), records
// the row, and holds verify, switch and complete until it is resolved;
// `fail` keeps the old behaviour. PostgreSQL on the throwaway cluster,
// SQLite on temporary files; every assertion is by SQL.
#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/plans.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

PgCluster* Pg() { return PgCluster::Shared(); }

const std::string kItems =
    "CREATE TABLE items (id integer PRIMARY KEY, qty text, note text);"
    "INSERT INTO items SELECT g, g::text, 'n' FROM generate_series(1, 50) g;";

std::string NewDb(const std::string& setup) {
  std::string url = Pg()->CreateDatabase("dwp");
  if (!url.empty() && !setup.empty()) Pg()->Psql(url, setup);
  return url;
}

std::unique_ptr<Migrator> Open(const std::string& url) {
  Options o;
  o.db_url = url;
  o.actor = "test";
  o.lock_retry_budget_ms = 20000;
  auto m = Migrator::Open(o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<std::string> Cli(const std::string& url, std::vector<std::string> verb) {
  std::vector<std::string> a = {"--db", url, "--actor", "test"};
  a.insert(a.end(), verb.begin(), verb.end());
  return a;
}

int64_t StatusFailures(const std::string& url, const std::string& name) {
  CommandResult r = RunSluice(Cli(url, {"status", "--json"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.value("name", "") == name) return e.value("dual_write_failures", int64_t{-1});
    }
  }
  ADD_FAILURE() << "no status for " << name << ": " << r.out;
  return -1;
}

// A write through the old version (base tables, as the old application).
bool OldWrite(const std::string& url, const std::string& sql, std::string* error) {
  std::string v;
  return Pg()->TryPsql(url, sql, &v, error);
}

class DualWritePolicy : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(Pg()); }
};


// The issue's case: an old-version UPDATE that `up` cannot convert.
// (a) under record it succeeds, the new column holds the fallback and the
// row is recorded (status, verify, `sluice failures` name it; switch is
// refused); (b) writing it again counts; (c) fixing it through the old
// version resolves it, and verify, switch and complete go through.
TEST_F(DualWritePolicy, RecordLetsTheOldWriteThroughAndHoldsTheGatesUntilFixed) {
  std::string db = NewDb(kItems);
  TempDir dir;
  auto m = Open(db);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("dw.yaml", QtyToIntegerPlan("", "-1"))));
  ASSERT_TRUE(m->Backfill("dw", {}).ok());

  std::string err;
  ASSERT_TRUE(OldWrite(db, "UPDATE items SET qty = 'n/a' WHERE id = 7", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM items WHERE id = 7"), "n/a");
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 7"), "-1");
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 8"), "8");
  auto rows = Pg()->PsqlRows(db, "SELECT tbl, row_key, error, sqlstate, count, source FROM sluice.dual_write_failures "
                                 "WHERE migration = 'dw'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "items");
  EXPECT_EQ(rows[0][1], "[7]");
  EXPECT_THAT(rows[0][2], HasSubstr("invalid input syntax for type integer"));
  EXPECT_EQ(rows[0][3], "22P02");
  EXPECT_EQ(rows[0][4], "1");
  EXPECT_EQ(rows[0][5], "dual-write");
  EXPECT_EQ(StatusFailures(db, "dw"), 1);

  // The same row failing again is one row with a count.
  ASSERT_TRUE(OldWrite(db, "UPDATE items SET qty = 'none' WHERE id = 7", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT count || ' ' || error FROM sluice.dual_write_failures WHERE migration = 'dw'"),
            "2 invalid input syntax for type integer: \"none\"");

  auto v = m->Verify("dw");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_FALSE(v->passed);
  bool named = false;
  for (const auto& c : v->checks) {
    if (c.name != "dual_write_failures") continue;
    EXPECT_FALSE(c.passed);
    for (const auto& e : c.evidence) named = named || e.find("[7]") != std::string::npos;
  }
  EXPECT_TRUE(named) << v->json;

  CommandResult f = RunSluice(Cli(db, {"failures", "dw"}));
  EXPECT_EQ(f.exit_code, 3) << f.err;
  EXPECT_THAT(f.out, HasSubstr("items key [7] column"));
  CommandResult fj = RunSluice(Cli(db, {"failures", "dw", "--json"}));
  auto j = nlohmann::json::parse(fj.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << fj.out;
  ASSERT_EQ(j["failures"].size(), 1u);
  EXPECT_EQ(j["failures"][0]["key"], "[7]");
  EXPECT_EQ(j["failures"][0]["count"], 2);

  EXPECT_THAT(m->Switch("dw", false), StatusIs(StatusCode::kFailedPrecondition, "dual-write failures"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT live FROM sluice.migrations WHERE name = 'dw'"), "old");
  // Forcing needs a reason, as for every gate check.
  EXPECT_THAT(m->Switch("dw", false, {true, ""}), StatusIs(StatusCode::kInvalidArgument, "--reason"));

  // Fixed through the old version: converted and resolved.
  ASSERT_TRUE(OldWrite(db, "UPDATE items SET qty = '7' WHERE id = 7", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 7"), "7");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
  EXPECT_EQ(StatusFailures(db, "dw"), 0);
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "dw"));
  SLUICE_ASSERT_OK(m->Switch("dw", false));
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "dw"));
  SLUICE_ASSERT_OK(m->Complete("dw"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                           "'public.items'::regclass AND attname = 'qty'"),
            "integer");
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM items WHERE id = 7"), "7");
  // The helper functions went with the dual-write.
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_sluice\\_dw%'"), "0");
}

// Without a fallback the new column holds NULL; writes through the new
// version stay strict under record.
TEST_F(DualWritePolicy, RecordWithoutFallbackStoresNull) {
  std::string db = NewDb(kItems);
  TempDir dir;
  auto m = Open(db);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("dw.yaml", QtyToIntegerPlan("record", ""))));
  ASSERT_TRUE(m->Backfill("dw", {}).ok());
  std::string err;
  ASSERT_TRUE(OldWrite(db, "INSERT INTO items VALUES (100, 'lots', 'x')", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty IS NULL FROM public_dw.items WHERE id = 100"), "t");
  EXPECT_EQ(Pg()->Psql(db, "SELECT row_key FROM sluice.dual_write_failures"), "[100]");
  // The resolving helper is executable by every writer, but a plain call
  // (outside the dual-write trigger) erases no evidence.
  const std::string resolve = Pg()->Psql(
      db, "SELECT p.oid::regproc FROM pg_proc p WHERE p.proname LIKE '\\_sluice\\_dwr\\_%'");
  ASSERT_FALSE(resolve.empty());
  Pg()->Psql(db, "SELECT " + resolve + "('[100]', ARRAY[]::text[])");
  EXPECT_EQ(Pg()->Psql(db, "SELECT row_key FROM sluice.dual_write_failures"), "[100]");
  // A new-version write that fails its own conversion gets its error.
  EXPECT_FALSE(OldWrite(db, "SET search_path TO public_dw, public; UPDATE items SET qty = 'x'::text::integer "
                            "WHERE id = 1",
                        &err));
  EXPECT_THAT(err, HasSubstr("invalid input syntax"));
  // The new version writing the recorded row whole resolves it.
  ASSERT_TRUE(OldWrite(db, "SET search_path TO public_dw, public; UPDATE items SET qty = 5 WHERE id = 100", &err))
      << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM items WHERE id = 100"), "5");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
}

// Under fail the same write fails and changes nothing.
TEST_F(DualWritePolicy, FailRefusesTheOldWriteAndChangesNothing) {
  std::string db = NewDb(kItems);
  TempDir dir;
  auto m = Open(db);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("dw.yaml", QtyToIntegerPlan("fail", "-1"))));
  ASSERT_TRUE(m->Backfill("dw", {}).ok());
  std::string err;
  EXPECT_FALSE(OldWrite(db, "UPDATE items SET qty = 'n/a' WHERE id = 7", &err));
  EXPECT_THAT(err, HasSubstr("invalid input syntax for type integer"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM items WHERE id = 7"), "7");
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 7"), "7");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
  // No helper functions exist under fail.
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_sluice\\_dwf%'"), "0");
}

const std::string kPeople =
    "CREATE TABLE people (id integer PRIMARY KEY, name text);"
    "INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 20) g;";

std::string NotNullPlan(const std::string& policy, const std::string& fallback) {
  std::string p = "dual_write: {on_error: " + policy + "}\n";
  p += R"(operations:
  - alter_column:
      table: people
      column: name
      nullable: false
      up: name
      down: name
)";
  if (!fallback.empty()) p += "      fallback: \"" + fallback + "\"\n";
  return p;
}

// An old-version INSERT of NULL into a column becoming NOT NULL.
// record: succeeds, recorded, complete refused; a new-version NULL is still
// refused; fixed through the old version, complete makes it NOT NULL.
TEST_F(DualWritePolicy, NullIntoColumnBecomingNotNullUnderRecord) {
  std::string db = NewDb(kPeople);
  TempDir dir;
  auto m = Open(db);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("nn.yaml", NotNullPlan("record", ""))));
  ASSERT_TRUE(m->Backfill("nn", {}).ok());
  std::string err;
  ASSERT_TRUE(OldWrite(db, "INSERT INTO people VALUES (21, NULL)", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT name IS NULL FROM public_nn.people WHERE id = 21"), "t");
  EXPECT_EQ(Pg()->Psql(db, "SELECT row_key || ' ' || sqlstate FROM sluice.dual_write_failures"), "[21] 23502");
  EXPECT_FALSE(OldWrite(db, "SET search_path TO public_nn, public; INSERT INTO people VALUES (22, NULL)", &err));
  EXPECT_THAT(err, HasSubstr("violates not-null constraint"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM people WHERE id = 22"), "0");
  EXPECT_THAT(m->Complete("nn"), StatusIs(StatusCode::kFailedPrecondition, "dual-write failures"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT phase FROM sluice.migrations WHERE name = 'nn'"), "active");

  ASSERT_TRUE(OldWrite(db, "UPDATE people SET name = 'p21' WHERE id = 21", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "nn"));
  SLUICE_ASSERT_OK(m->Complete("nn"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.people'::regclass AND "
                           "attname = 'name'"),
            "t");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.people'::regclass AND "
                           "contype = 'c'"),
            "0");
}

// The fallback replaces the NULL; fail refuses the NULL as before.
TEST_F(DualWritePolicy, NullIntoColumnBecomingNotNullFallbackAndFail) {
  {
    std::string db = NewDb(kPeople);
    TempDir dir;
    auto m = Open(db);
    ASSERT_TRUE(m);
    SLUICE_ASSERT_OK(m->Start(dir.Write("nn.yaml", NotNullPlan("record", "'(unknown)'"))));
    ASSERT_TRUE(m->Backfill("nn", {}).ok());
    std::string err;
    ASSERT_TRUE(OldWrite(db, "INSERT INTO people VALUES (21, NULL)", &err)) << err;
    EXPECT_EQ(Pg()->Psql(db, "SELECT name FROM public_nn.people WHERE id = 21"), "(unknown)");
    EXPECT_EQ(Pg()->Psql(db, "SELECT row_key FROM sluice.dual_write_failures"), "[21]");
  }
  {
    std::string db = NewDb(kPeople);
    TempDir dir;
    auto m = Open(db);
    ASSERT_TRUE(m);
    SLUICE_ASSERT_OK(m->Start(dir.Write("nn.yaml", NotNullPlan("fail", ""))));
    ASSERT_TRUE(m->Backfill("nn", {}).ok());
    std::string err;
    EXPECT_FALSE(OldWrite(db, "INSERT INTO people VALUES (21, NULL)", &err));
    EXPECT_THAT(err, HasSubstr("violates check constraint"));
    EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM people WHERE id = 21"), "0");
    EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
  }
}

// A row deleted through the old version (no trigger sees a DELETE) is
// resolved by --recheck; rollback with an unresolved row restores the
// catalog and drops the migration's records.
TEST_F(DualWritePolicy, RecheckAndRollback) {
  std::string db = NewDb(kItems);
  std::string before = Pg()->Psql(db, kPgFingerprintSql);
  TempDir dir;
  auto m = Open(db);
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("dw.yaml", QtyToIntegerPlan("record", ""))));
  ASSERT_TRUE(m->Backfill("dw", {}).ok());
  std::string err;
  ASSERT_TRUE(OldWrite(db, "UPDATE items SET qty = 'a' WHERE id IN (3, 4)", &err)) << err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "2");
  ASSERT_TRUE(OldWrite(db, "DELETE FROM items WHERE id = 3", &err)) << err;
  auto r = m->Failures("dw", true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->resolved, 1);
  ASSERT_EQ(r->failures.size(), 1u);
  EXPECT_EQ(r->failures[0].key, "[4]");
  EXPECT_EQ(Pg()->Psql(db, "SELECT row_key FROM sluice.dual_write_failures"), "[4]");

  SLUICE_ASSERT_OK(m->Rollback("dw"));
  EXPECT_EQ(Pg()->Psql(db, kPgFingerprintSql), before);
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM items WHERE id = 4"), "a");
}


// A row the backfill cannot convert (written past the dual-write: a session
// with session_replication_role = replica fires no trigger). record: the
// backfill records it and finishes; fail: it stops naming the rows.
TEST_F(DualWritePolicy, BackfillMeetingAnUnconvertibleRow) {
  for (const std::string policy : {"record", "fail"}) {
    SCOPED_TRACE(policy);
    std::string db = NewDb(kItems);
    TempDir dir;
    auto m = Open(db);
    ASSERT_TRUE(m);
    SLUICE_ASSERT_OK(m->Start(dir.Write("dw.yaml", QtyToIntegerPlan(policy, "0"))));
    std::string err;
    ASSERT_TRUE(OldWrite(db, "SET session_replication_role = replica; UPDATE items SET qty = 'x' WHERE id = 30", &err))
        << err;
    auto b = m->Backfill("dw", {});
    if (policy == "record") {
      ASSERT_TRUE(b.ok()) << b.status().message();
      EXPECT_EQ(Pg()->Psql(db, "SELECT backfill FROM sluice.migrations WHERE name = 'dw'"), "done");
      EXPECT_EQ(Pg()->Psql(db, "SELECT row_key || ' ' || source || ' ' || sqlstate FROM sluice.dual_write_failures"),
                "[30] backfill 22P02");
      EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 30"), "0");
      EXPECT_EQ(Pg()->Psql(db, "SELECT qty FROM public_dw.items WHERE id = 31"), "31");
      EXPECT_EQ(StatusFailures(db, "dw"), 1);
    } else {
      EXPECT_FALSE(b.ok());
      EXPECT_THAT(b.status().message(), HasSubstr("invalid input syntax for type integer"));
      EXPECT_NE(Pg()->Psql(db, "SELECT backfill FROM sluice.migrations WHERE name = 'dw'"), "done");
      EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.dual_write_failures"), "0");
    }
  }
}

// --- SQLite ------------------------------------------------------------------

// SQLite's triggers cannot catch an error: what record handles there is a
// NULL `up` result for a column becoming NOT NULL (fallback, recorded,
// resolved); an `up` that raises still fails the old write.
TEST(DualWritePolicySqlite, NullIntoNotNullIsRecordedAndRaisingUpStillFails) {
  TempDir dir;
  std::string path = dir.File("db.sqlite");
  auto m = OpenSqlite(path);
  ASSERT_TRUE(m);
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, doc TEXT);"
                                "INSERT INTO people VALUES (1, 'a', '{}'), (2, 'b', '{}');"));
  }
  SLUICE_ASSERT_OK(m->Start(dir.Write("nn.yaml", R"(operations:
  - alter_column:
      table: people
      column: name
      nullable: false
      up: name
      down: name
      fallback: "'(unknown)'"
  - alter_column:
      table: people
      column: doc
      type: TEXT
      up: json_extract(doc, '$')
      down: doc
)")));
  ASSERT_TRUE(m->Backfill("nn", {}).ok());
  auto old = m->Connect("");
  ASSERT_TRUE(old.ok());
  SLUICE_ASSERT_OK((*old)->Exec("INSERT INTO people (id, name, doc) VALUES (3, NULL, '{}')"));
  EXPECT_EQ(QueryValue(*m, "SELECT name FROM \"people@nn\" WHERE id = 3"), "(unknown)");
  EXPECT_EQ(QueryValue(*m, "SELECT row_key || ' ' || col FROM _sluice_dual_write_failures"), "[3] " +
            QueryValue(*m, "SELECT col FROM _sluice_dual_write_failures"));
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM _sluice_dual_write_failures"), "1");
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->back().dual_write_failures, 1);
  EXPECT_THAT(m->Complete("nn"), StatusIs(StatusCode::kFailedPrecondition, "dual-write failures"));

  // Raising `up`: the old write fails (documented in docs/limits.md).
  EXPECT_THAT((*old)->Exec("UPDATE people SET doc = 'not json' WHERE id = 1"), StatusIs(StatusCode::kInvalidArgument, "malformed JSON"));
  EXPECT_EQ(QueryValue(*m, "SELECT doc FROM people WHERE id = 1"), "{}");

  SLUICE_ASSERT_OK((*old)->Exec("UPDATE people SET name = 'c' WHERE id = 3"));
  EXPECT_EQ(QueryValue(*m, "SELECT name FROM \"people@nn\" WHERE id = 3"), "c");
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM _sluice_dual_write_failures"), "0");
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "nn"));
  SLUICE_ASSERT_OK(m->Complete("nn"));
  EXPECT_EQ(QueryValue(*m, "SELECT \"notnull\" FROM pragma_table_info('people') WHERE name = 'name'"), "1");
}

}  // namespace
}  // namespace sluice::testing
