// PostgreSQL: an application that uses its own enum type, domain, function,
// sequence and view, in `up`/`down` and in its own queries (issue 8, items
// 2 and 3), through the documented version selection (Migrator::
// VersionSetupSql), prepared statements included; and the pre-flight trial
// of `up`/`down` on real rows (item 9). Asserted with SQL.
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

PgCluster* Pg() { return PgCluster::Shared(); }

constexpr const char* kSetup = R"(
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE SEQUENCE ticket_seq;
CREATE FUNCTION title_score(t text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT length(t) $$;
CREATE TABLE tickets (id integer PRIMARY KEY DEFAULT nextval('ticket_seq'), feeling text NOT NULL,
                      title text NOT NULL);
INSERT INTO tickets (feeling, title) SELECT (ARRAY['sad', 'ok', 'happy'])[1 + g % 3], 'ticket ' || g
  FROM generate_series(1, 300) g;
CREATE VIEW long_tickets AS SELECT id, title FROM tickets WHERE length(title) > 9;
)";

// `up` and `down` name the application's type, domain and function.
constexpr const char* kPlan = R"(
operations:
  - alter_column:
      table: tickets
      column: feeling
      type: mood
      up: feeling::mood
      down: feeling::text
  - add_column:
      table: tickets
      up: title_score(title)::positive
      column: {name: score, type: integer, nullable: true}
)";

// The documented setup for `version`, as `sluice version-sql` prints it.
std::string VersionSql(Migrator& m, const std::string& version) {
  auto s = m.VersionSetupSql(version);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s + ";\n" : "";
}

class PgAppObjects : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(Pg()); }
};

TEST_F(PgAppObjects, ApplicationKeepsItsTypesFunctionsSequencesAndViewsOnEveryVersion) {
  std::string db = Pg()->CreateDatabase("appobj");
  Pg()->Psql(db, kSetup);
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  const std::string plan = dir.Write("moods.yaml", kPlan);
  auto lint = m->Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_TRUE(lint->ok) << (lint->errors.empty() ? "" : lint->errors[0]);
  SLUICE_ASSERT_OK(m->Start(plan));
  // The new version is handed out once its backfill is done.
  auto bf = m->Backfill("moods", {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  const std::string on_new = VersionSql(*m, "moods");
  const std::string on_live = VersionSql(*m, "live");
  EXPECT_THAT(on_new, HasSubstr("\"public_moods\", \"public\""));

  // `live` works before the first switch: the old version.
  EXPECT_EQ(Pg()->Psql(db, on_live + "SELECT feeling FROM tickets WHERE id = 3"), "sad");
  EXPECT_EQ(Pg()->Psql(db, on_live + "SELECT count(*) FROM long_tickets"), "201");

  // The new version: the application's own objects resolve from the base schema.
  Pg()->Psql(db, on_new + "INSERT INTO tickets (feeling, title) VALUES ('happy'::mood, 'new one')");
  Pg()->Psql(db, on_new + "INSERT INTO tickets (id, feeling, title) VALUES (nextval('ticket_seq'), 'ok', 'seq')");
  Pg()->Psql(db, on_new + "UPDATE tickets SET feeling = 'sad'::mood WHERE id = 1");
  Pg()->Psql(db, on_new + "PREPARE ins(mood, text) AS INSERT INTO tickets (feeling, title) VALUES ($1, $2); "
                          "EXECUTE ins('happy', 'prepared'); PREPARE upd(mood, integer) AS UPDATE tickets SET "
                          "feeling = $1 WHERE id = $2; EXECUTE upd('ok', 2)");
  EXPECT_EQ(Pg()->Psql(db, on_new + "SELECT title_score('abc')::positive"), "3");
  EXPECT_EQ(Pg()->Psql(db, on_new + "SELECT pg_typeof(feeling)::text FROM tickets WHERE id = 1"), "mood");
  // Old-version writes, from a session whose search_path finds none of the
  // application's objects: the dual-write resolves them itself.
  Pg()->Psql(db, "SET search_path TO pg_catalog; INSERT INTO public.tickets (feeling, title) VALUES ('ok', 'x')");
  Pg()->Psql(db, "SET search_path TO pg_catalog; UPDATE public.tickets SET feeling = 'happy' WHERE id = 4");
  // A new-version session that names the schema instead of using the path.
  Pg()->Psql(db, "SET search_path TO pg_catalog; SET sluice.version = 'moods'; UPDATE public_moods.tickets SET "
                 "feeling = 'happy' WHERE id = 5");
  // Both versions see every write.
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(feeling, ',' ORDER BY id) FROM tickets WHERE id IN (1, 2, 4, 5)"),
            "sad,ok,happy,happy");
  EXPECT_EQ(Pg()->Psql(db, on_new + "SELECT string_agg(feeling::text, ',' ORDER BY id) FROM tickets WHERE id IN "
                                    "(1, 2, 4, 5)"),
            "sad,ok,happy,happy");
  // The old-version insert got `score` from `up` (the new version's own writes leave it to the application).
  EXPECT_EQ(Pg()->Psql(db, on_new + "SELECT count(*) FROM tickets WHERE title = 'x' AND score = title_score(title)"),
            "1");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM tickets WHERE title IN ('new one', 'seq', 'prepared', 'x')"), "4");

  auto bf2 = m->Backfill("moods", BackfillOptions{});  // done already: a no-op
  ASSERT_TRUE(bf2.ok()) << bf2.status().message();
  auto v = m->Verify("moods");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;

  SLUICE_ASSERT_OK(m->Switch("moods", false));
  const std::string live_now = VersionSql(*m, "live");
  Pg()->Psql(db, live_now + "INSERT INTO tickets (feeling, title) VALUES ('sad'::mood, 'after switch')");
  EXPECT_EQ(Pg()->Psql(db, live_now + "SELECT pg_typeof(feeling)::text FROM tickets LIMIT 1"), "mood");
  EXPECT_EQ(Pg()->Psql(db, live_now + "SELECT count(*) FROM long_tickets WHERE title = 'after switch'"), "1");
  EXPECT_EQ(Pg()->Psql(db, "SELECT feeling FROM tickets WHERE title = 'after switch'"), "sad");
  SLUICE_ASSERT_OK(m->Complete("moods"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT pg_typeof(feeling)::text FROM tickets LIMIT 1"), "mood");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM tickets WHERE score IS DISTINCT FROM title_score(title)"), "4");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM tickets WHERE score IS NULL"), "4");  // the new version's inserts
}

// lint --db reports it; start refuses it; nothing changed.
void ExpectRefused(Migrator& m, const std::string& db, const std::string& plan, const std::vector<std::string>& says) {
  const std::string before = CatalogFingerprint(db);
  auto lint = m.Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  EXPECT_FALSE(lint->ok);
  std::string errors;
  for (const auto& e : lint->errors) errors += e + "\n";
  Status s = m.Start(plan);
  EXPECT_FALSE(s.ok());
  for (const auto& w : says) {
    EXPECT_THAT(errors, HasSubstr(w));
    EXPECT_THAT(s.message(), HasSubstr(w));
  }
  EXPECT_EQ(CatalogFingerprint(db), before);
}

TEST_F(PgAppObjects, BrokenDownIsRefusedWithTheRowsKey) {
  std::string db = Pg()->CreateDatabase("brokendown");
  Pg()->Psql(db, kSetup);
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  // Every write through the new version would fail: 'sad' is no integer.
  ExpectRefused(*m, db, dir.Write("bd.yaml", R"(
operations:
  - alter_column:
      table: tickets
      column: feeling
      type: mood
      up: feeling::mood
      down: feeling::text::integer::text
)"),
                {"'down' for tickets.feeling", "key (id) = ('1')", "invalid input syntax for type integer"});
}

TEST_F(PgAppObjects, UpFailingOnSomeRowsIsRefusedWithTheRowsKey) {
  std::string db = Pg()->CreateDatabase("brokenup");
  Pg()->Psql(db, kSetup);
  Pg()->Psql(db, "UPDATE tickets SET title = 'bogus' WHERE id = 300");
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  // Only the row with the highest key has a title that is no number.
  ExpectRefused(*m, db, dir.Write("bu.yaml", R"(
operations:
  - add_column:
      table: tickets
      up: "CASE WHEN title LIKE 'ticket %' THEN substr(title, 8) ELSE title END::integer"
      column: {name: num, type: integer}
)"),
                {"'up' for tickets.", "key (id) = ('300')", "invalid input syntax for type integer"});
  // NULL from `up` for a column that is NOT NULL in the new version. (The
  // lowest and highest keys are always tried; rows in between are sampled.)
  ExpectRefused(*m, db, dir.Write("bn.yaml", R"(
operations:
  - add_column:
      table: tickets
      up: "CASE WHEN id = 1 THEN NULL ELSE 1 END"
      column: {name: n, type: integer, nullable: false}
)"),
                {"key (id) = ('1')", "NULL"});
}


// The base schema is second on a version's search_path, so a table the
// version drops or renames must not resolve there under its old name.
TEST_F(PgAppObjects, TablesTheVersionDropsOrRenamesDoNotResolveThroughTheBaseSchema) {
  std::string db = Pg()->CreateDatabase("gone");
  Pg()->Psql(db, std::string(kSetup) + "CREATE TABLE legacy (id integer PRIMARY KEY); CREATE TABLE old_name (id "
                                       "integer PRIMARY KEY); INSERT INTO old_name VALUES (1);");
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  SLUICE_ASSERT_OK(m->Start(dir.Write("gone.yaml", R"(
operations:
  - drop_table: {name: legacy}
  - rename_table: {from: old_name, to: new_name}
)")));
  const std::string on_new = VersionSql(*m, "gone");
  std::string value, error;
  EXPECT_FALSE(Pg()->TryPsql(db, on_new + "SELECT count(*) FROM legacy", &value, &error));
  EXPECT_THAT(error, HasSubstr("relation \"legacy\" does not exist in version gone"));
  EXPECT_FALSE(Pg()->TryPsql(db, on_new + "SELECT count(*) FROM old_name", &value, &error));
  EXPECT_THAT(error, HasSubstr("relation \"old_name\" does not exist in version gone"));
  EXPECT_FALSE(Pg()->TryPsql(db, on_new + "INSERT INTO old_name VALUES (2)", &value, &error));
  EXPECT_EQ(Pg()->Psql(db, on_new + "SELECT count(*) FROM new_name"), "1");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM old_name"), "1");  // the old version is unchanged
  const std::string before_rollback = Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname = '_sluice_gone'");
  EXPECT_EQ(before_rollback, "1");
  SLUICE_ASSERT_OK(m->Rollback("gone"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname = '_sluice_gone'"), "0");
}

}  // namespace
}  // namespace sluice::testing
