// Rollback from every phase of a plan whose `sql` operation created a table,
// a view and a type (issue 8, item 7), and two migrations in flight on
// disjoint tables, one copying a column with a DEFAULT (item 8): switch,
// complete and rollback of one in every phase of the other. Asserted by SQL
// against a real PostgreSQL (tests/support/pg_cluster.h).
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

PgCluster* Pg() { return PgCluster::Shared(); }

constexpr const char* kSetup = R"(
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, score text);
INSERT INTO customers VALUES (1, 'Ann', '10'), (2, 'Bob', '20');
CREATE TABLE orders (id integer PRIMARY KEY, status text DEFAULT 'new', qty text);
INSERT INTO orders VALUES (1, 'paid', '1'), (2, 'new', '2');
)";

constexpr const char* kSideTable = R"(
operations:
  - sql:
      up: CREATE TABLE side_table (id integer PRIMARY KEY, v text DEFAULT 'x'); CREATE VIEW side_view AS SELECT id, v FROM side_table; CREATE TYPE side_kind AS ENUM ('a', 'b')
      down: DROP VIEW side_view; DROP TABLE side_table; DROP TYPE side_kind
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
)";

enum class Stop { kStarted, kBackfilled, kSwitched, kSwitchedBack };

class PgRollbackEverywhere : public ::testing::TestWithParam<Stop> {};

TEST_P(PgRollbackEverywhere, SqlCreatedTableRollsBackToTheCatalogBeforeStart) {
  std::string url = Pg()->CreateDatabase("rbe");
  ASSERT_FALSE(url.empty());
  Pg()->Psql(url, kSetup);
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  TempDir dir;
  const std::string before = FingerprintWithoutLive(url);
  SLUICE_ASSERT_OK(m->Start(dir.Write("side.yaml", kSideTable)));
  EXPECT_EQ(Pg()->Psql(url, "SELECT to_regclass('public.side_table') IS NOT NULL"), "t");
  if (GetParam() != Stop::kStarted) {
    auto bf = m->Backfill("side", {});
    ASSERT_TRUE(bf.ok()) << bf.status().message();
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "side"));
  }
  if (GetParam() == Stop::kSwitched || GetParam() == Stop::kSwitchedBack) SLUICE_ASSERT_OK(m->Switch("side", false));
  if (GetParam() == Stop::kSwitchedBack) SLUICE_ASSERT_OK(m->Switch("side", true));
  SLUICE_ASSERT_OK(m->Rollback("side"));
  EXPECT_EQ(Pg()->Psql(url, "SELECT phase FROM sluice.migrations WHERE name = 'side'"), "rolled_back");
  EXPECT_EQ(Pg()->Psql(url, "SELECT to_regclass('public.side_table') IS NULL AND to_regtype('public.side_kind') IS "
                            "NULL"),
            "t");
  EXPECT_EQ(FingerprintWithoutLive(url), before);
  EXPECT_EQ(Pg()->Psql(url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                            "c.relname = 'side_table'"),
            "0");
  // And the same migration starts again.
  SLUICE_EXPECT_OK(m->Start(dir.File("side.yaml")));
}

std::string StopName(const ::testing::TestParamInfo<Stop>& i) {
  switch (i.param) {
    case Stop::kStarted: return "Started";
    case Stop::kBackfilled: return "Backfilled";
    case Stop::kSwitched: return "Switched";
    case Stop::kSwitchedBack: return "SwitchedBack";
  }
  return "Unknown";
}

INSTANTIATE_TEST_SUITE_P(Phases, PgRollbackEverywhere,
                         ::testing::Values(Stop::kStarted, Stop::kBackfilled, Stop::kSwitched, Stop::kSwitchedBack),
                         StopName);

// Migration B copies orders.status (which has a DEFAULT); migration A
// changes customers. A switches and completes (or rolls back) while B is in
// each of its phases; then B finishes. Neither disturbs the other.
constexpr const char* kB = R"(
operations:
  - alter_column:
      table: orders
      column: status
      type: varchar(20)
      up: status
      down: status
)";
constexpr const char* kA = R"(
operations:
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
)";

struct Interleave {
  int b_stage;  // 0 started, 1 backfilled, 2 switched
  bool a_completes;
};

class PgConcurrentMigrations : public ::testing::TestWithParam<Interleave> {};

TEST_P(PgConcurrentMigrations, DisjointMigrationsNeverInterfere) {
  const Interleave p = GetParam();
  std::string url = Pg()->CreateDatabase("inflight");
  ASSERT_FALSE(url.empty());
  Pg()->Psql(url, kSetup);
  auto m = OpenUrl(url);
  ASSERT_NE(m, nullptr);
  TempDir dir;
  SLUICE_ASSERT_OK(m->Start(dir.Write("b_status.yaml", kB)));
  SLUICE_ASSERT_OK(m->Start(dir.Write("a_score.yaml", kA)));
  if (p.b_stage >= 1) {
    ASSERT_TRUE(m->Backfill("b_status", {}).ok());
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "b_status"));
  }
  if (p.b_stage >= 2) SLUICE_ASSERT_OK(m->Switch("b_status", false));
  ASSERT_TRUE(m->Backfill("a_score", {}).ok());
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "a_score"));
  SLUICE_ASSERT_OK(m->Switch("a_score", false));
  // B's DEFAULT works through its version while A moves.
  Pg()->Psql(url, "INSERT INTO orders (id, qty) VALUES (10, '5')");
  if (p.a_completes) {
    SLUICE_ASSERT_OK(m->Complete("a_score"));
  } else {
    SLUICE_ASSERT_OK(m->Switch("a_score", true));
    SLUICE_ASSERT_OK(m->Rollback("a_score"));
  }
  Pg()->Psql(url, "INSERT INTO orders (id, qty) VALUES (11, '6')");
  if (p.b_stage < 1) {
    ASSERT_TRUE(m->Backfill("b_status", {}).ok());
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "b_status"));
  }
  if (p.b_stage < 2) SLUICE_ASSERT_OK(m->Switch("b_status", false));
  SLUICE_ASSERT_OK(m->Complete("b_status"));

  EXPECT_EQ(Pg()->Psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'public.customers'::regclass AND attname = 'score'"),
            p.a_completes ? "integer" : "text");
  EXPECT_EQ(Pg()->Psql(url, "SELECT format_type(atttypid, atttypmod) || ' ' || pg_get_expr(d.adbin, d.adrelid) FROM "
                            "pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                            "WHERE a.attrelid = 'public.orders'::regclass AND a.attname = 'status'"),
            "character varying(20) 'new'::text");
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(id || '=' || status, ',' ORDER BY id) FROM orders"),
            "1=paid,2=new,10=new,11=new");
  EXPECT_EQ(Pg()->Psql(url, "SELECT string_agg(id || '=' || score, ',' ORDER BY id) FROM customers"), "1=10,2=20");
  EXPECT_EQ(Pg()->Psql(url, "SELECT count(*) FROM pg_attribute WHERE attrelid IN ('public.orders'::regclass, "
                            "'public.customers'::regclass) AND attname LIKE '\\_sluice%' AND NOT attisdropped"),
            "0");
}

INSTANTIATE_TEST_SUITE_P(Orders, PgConcurrentMigrations,
                         ::testing::Values(Interleave{0, true}, Interleave{1, true}, Interleave{2, true},
                                           Interleave{0, false}, Interleave{1, false}, Interleave{2, false}),
                         [](const ::testing::TestParamInfo<Interleave>& i) {
                           return std::string(i.param.a_completes ? "Complete" : "Rollback") + "WhileB" +
                                  std::to_string(i.param.b_stage);
                         });

}  // namespace
}  // namespace sluice::testing
