// PostgreSQL robustness: locks held by other sessions, tables without a key,
// concurrent migrations and concurrent sluice processes, a non-superuser
// owner, version selection and the live alias, identity and composite keys,
// and SIGKILL of `sluice start` at several points. Every test runs against
// its own database on the throwaway cluster (tests/support/pg_cluster.h)
// and asserts with SQL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kTimedOut = -1000;

constexpr const char* kSetup = R"(
CREATE TABLE regions (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO regions VALUES (1, 'north'), (2, 'south');
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text, score text, region integer);
INSERT INTO customers VALUES (1, 'Ann', 'ann@x.com', '10', 1), (2, 'Bob', 'bob@x.com', '20', 2),
                             (3, 'Cy', NULL, '30', NULL);
CREATE INDEX customers_email_idx ON customers (email);
)";

constexpr const char* kScorePlan = R"(
operations:
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
)";

PgCluster* Pg() { return PgCluster::Shared(); }

// A fresh database with kSetup (or `setup`) applied; returns its URL.
std::string NewDb(const std::string& setup = kSetup) {
  std::string url = Pg()->CreateDatabase("rob");
  if (!url.empty() && !setup.empty()) Pg()->Psql(url, setup);
  return url;
}

// The migration's phase in sluice's state table; "none" when sluice has no
// state or no such migration.
std::string Phase(const std::string& url, const std::string& name) {
  if (Pg()->Psql(url, "SELECT to_regclass('sluice.migrations') IS NULL") == "t") return "none";
  std::string p = Pg()->Psql(url, "SELECT phase FROM sluice.migrations WHERE name = '" + name + "'");
  return p.empty() ? "none" : p;
}

// Runs the sluice binary; kills it and reports kTimedOut if it has not
// finished after `seconds` (a hang is a failure, not a wait forever).
CommandResult RunBounded(const std::vector<std::string>& args, int seconds = 120) {
  TempDir io;
  CommandResult r;
  int pid = SpawnSluice(args, io.path());
  if (pid <= 0) return r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.exit_code = kTimedOut;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.out = ReadFile(io.File("spawn.out"));
  r.err = ReadFile(io.File("spawn.err"));
  return r;
}

std::vector<std::string> Cli(const std::string& url, std::vector<std::string> verb) {
  std::vector<std::string> a = {"--db", url, "--actor", "test"};
  a.insert(a.end(), verb.begin(), verb.end());
  return a;
}

// Waits until `sql` returns "t" (at most `seconds`); returns whether it did.
bool WaitFor(const std::string& url, const std::string& sql, int seconds = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string v, err;
    if (Pg()->TryPsql(url, sql, &v, &err) && v == "t") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string SessionValue(Session& s, const std::string& sql) {
  auto r = s.Query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
  if (!r.ok() || r->rows.empty() || r->rows[0].empty() || !r->rows[0][0]) return "";
  return *r->rows[0][0];
}

class PgRobustness : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(Pg()); }
};

// (a) Another session holds a lock on the table: start fails within its
// lock budget, names the blocking pid and its query, changes nothing; once
// the lock is gone the same command succeeds.
TEST_F(PgRobustness, LockHeldByAnotherSessionFailsCleanlyAndRetryWorks) {
  struct Blocker {
    std::string name;
    std::string query;
  };
  for (const Blocker& b : {Blocker{"idle reader", "SELECT count(*) FROM customers WHERE id > 0"},
                           Blocker{"exclusive lock", "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"}}) {
    SCOPED_TRACE(b.name);
    std::string db = NewDb();
    TempDir dir;
    std::string plan = dir.Write("lock_score.yaml", kScorePlan);
    std::string before = CatalogFingerprint(db);
    auto m = OpenUrl(db, PatientLocks());
    ASSERT_TRUE(m);
    auto holder = m->Connect("");
    ASSERT_TRUE(holder.ok()) << holder.status().message();
    std::string pid = SessionValue(**holder, "SELECT pg_backend_pid()");
    SLUICE_ASSERT_OK((*holder)->Exec("BEGIN"));
    ASSERT_TRUE((*holder)->Query(b.query).ok());

    auto r = RunBounded(Cli(db, {"--lock-timeout-ms", "100", "--lock-budget-ms", "1500", "start", plan}), 60);
    ASSERT_NE(r.exit_code, kTimedOut) << "sluice start hung behind the lock instead of giving up";
    EXPECT_NE(r.exit_code, 0) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("pid " + pid));
    EXPECT_THAT(r.err, HasSubstr(b.query));

    SLUICE_ASSERT_OK((*holder)->Exec("ROLLBACK"));
    EXPECT_EQ(CatalogFingerprint(db), before);
    std::string phase = Phase(db, "lock_score");
    EXPECT_TRUE(phase == "none" || phase == "rolled_back") << phase;

    r = RunBounded(Cli(db, {"--lock-timeout-ms", "100", "--lock-budget-ms", "1500", "start", plan}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Phase(db, "lock_score"), "active");
    EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND NOT "
                             "tgisinternal"),
              "2");
  }
}

// (b) A table without a primary key or unique NOT NULL index is refused
// before anything changes, with a message that says how to add a key.
TEST_F(PgRobustness, TableWithoutUsableKeyIsRefusedBeforeAnyChange) {
  std::string db = NewDb(std::string(kSetup) +
                         "CREATE TABLE nokey (a integer, b text); INSERT INTO nokey VALUES (1, 'x'), (2, 'y');"
                         "CREATE UNIQUE INDEX nokey_a_idx ON nokey (a);");  // unique but nullable: not a key
  TempDir dir;
  std::string before = CatalogFingerprint(db);
  const std::vector<std::pair<std::string, std::string>> plans = {
      {"nokey_alter", "operations:\n  - alter_column: {table: nokey, column: b, type: varchar(10), up: b}\n"},
      {"nokey_add", "operations:\n  - add_column: {table: nokey, up: upper(b), column: {name: c, type: text}}\n"},
      {"nokey_drop", "operations:\n  - drop_column: {table: nokey, column: b, down: \"'?'\"}\n"}};
  for (const auto& [name, text] : plans) {
    SCOPED_TRACE(name);
    auto r = RunBounded(Cli(db, {"start", dir.Write(name + ".yaml", text)}));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.err, HasSubstr("has no primary key"));
    EXPECT_THAT(r.err, HasSubstr("ALTER TABLE nokey ADD PRIMARY KEY"));
    EXPECT_EQ(CatalogFingerprint(db), before);
    EXPECT_EQ(Phase(db, name), "none");
  }
  // With a key added the way the message says, the same plan runs.
  Pg()->Psql(db, "ALTER TABLE nokey ALTER COLUMN a SET NOT NULL");
  auto r = RunBounded(Cli(db, {"start", "--backfill", dir.File("nokey_add.yaml")}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunBounded(Cli(db, {"verify", "nokey_add"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = RunBounded(Cli(db, {"complete", "nokey_add"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(c, ',' ORDER BY a) FROM nokey"), "X,Y");
}

// (c) A second migration on a table that an active migration changes is
// refused; one on a disjoint table runs at the same time, and both complete.
TEST_F(PgRobustness, OneActiveMigrationPerTableDisjointTablesRunTogether) {
  std::string db = NewDb();
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("m1_score.yaml", kScorePlan)));
  std::string after_m1 = CatalogFingerprint(db);
  Status s = m->Start(dir.Write(
      "m2_same.yaml", "operations:\n  - add_column: {table: customers, column: {name: vip, type: boolean, default: "
                      "\"false\"}}\n"));
  EXPECT_THAT(s, StatusIs(StatusCode::kFailedPrecondition, "is being changed by migration 'm1_score'"));
  EXPECT_EQ(CatalogFingerprint(db), after_m1);
  EXPECT_EQ(Phase(db, "m2_same"), "none");

  SLUICE_ASSERT_OK(m->Start(dir.Write(
      "m3_regions.yaml",
      "operations:\n  - add_column: {table: regions, up: upper(name), column: {name: code, type: text}}\n")));
  EXPECT_EQ(Phase(db, "m1_score"), "active");
  EXPECT_EQ(Phase(db, "m3_regions"), "active");
  // Writes through the old version reach both.
  {
    auto old = m->Connect("");
    ASSERT_TRUE(old.ok());
    SLUICE_ASSERT_OK((*old)->Exec("UPDATE customers SET score = '42' WHERE id = 1; INSERT INTO regions VALUES (3, 'east')"));
  }
  for (const char* name : {"m1_score", "m3_regions"}) {
    auto bf = m->Backfill(name, {});
    ASSERT_TRUE(bf.ok()) << bf.status().message();
    auto v = m->Verify(name);
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_TRUE(v->passed) << v->json;
  }
  // Each version (usable once backfilled) shows its own change.
  EXPECT_EQ(QueryValue(*m, "SELECT pg_typeof(score)::text FROM customers WHERE id = 1", "m1_score"), "integer");
  EXPECT_EQ(QueryValue(*m, "SELECT score + 0 FROM customers WHERE id = 1", "m1_score"), "42");
  EXPECT_EQ(QueryValue(*m, "SELECT code FROM regions WHERE id = 3", "m3_regions"), "EAST");
  SLUICE_ASSERT_OK(m->Complete("m1_score"));
  SLUICE_ASSERT_OK(m->Complete("m3_regions"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                           "'customers'::regclass AND attname = 'score'"),
            "integer");
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(code, ',' ORDER BY id) FROM regions"), "NORTH,SOUTH,EAST");
  // The table is free again.
  SLUICE_EXPECT_OK(m->Start(dir.File("m2_same.yaml")));
}

// (d) Two sluice processes on one migration: the second is refused and told
// which process holds the migration's advisory lock.
TEST_F(PgRobustness, SecondProcessOnSameMigrationNamesTheLockHolder) {
  std::string db = NewDb(
      "CREATE TABLE big (id integer PRIMARY KEY, v text);"
      "INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 3000) g;");
  TempDir dir;
  std::string plan = dir.Write("big_upper.yaml",
                               "operations:\n  - add_column: {table: big, up: upper(v), column: {name: w, type: text}}\n");
  auto r = RunBounded(Cli(db, {"start", plan}));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // A slow backfill: ~20 rows per chunk, 200 rows/s.
  TempDir slow_io;
  int slow = SpawnSluice(Cli(db, {"backfill", "big_upper", "--rate", "200", "--chunk-rows", "20"}), slow_io.path());
  ASSERT_GT(slow, 0);
  ASSERT_TRUE(WaitFor(db, "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE "
                          "l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'sluice pid " +
                              std::to_string(slow) + " %')"))
      << ReadFile(slow_io.File("spawn.err"));

  for (const char* verb : {"backfill", "rollback"}) {
    SCOPED_TRACE(verb);
    auto second = RunBounded(Cli(db, {verb, "big_upper"}));
    EXPECT_NE(second.exit_code, 0);
    EXPECT_THAT(second.err, HasSubstr("being worked on by another sluice process"));
    EXPECT_THAT(second.err, HasSubstr("sluice pid " + std::to_string(slow)));
  }
  EXPECT_EQ(Phase(db, "big_upper"), "active");

  // Ctrl-C stops the slow one after its current chunk; a rerun finishes.
  kill(slow, SIGINT);
  int code = WaitProcess(slow);
  EXPECT_NE(code, 128 + SIGKILL);
  EXPECT_NE(Pg()->Psql(db, "SELECT count(*) FROM big WHERE w IS NULL"), "0") << "the slow backfill was not slow";
  r = RunBounded(Cli(db, {"backfill", "big_upper"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunBounded(Cli(db, {"verify", "big_upper"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = RunBounded(Cli(db, {"complete", "big_upper"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM big WHERE w IS DISTINCT FROM upper(v)"), "0");
}

// (e) The database owner without superuser rights runs every phase.
TEST_F(PgRobustness, NonSuperuserOwnerRunsTheFullLifecycle) {
  std::string db = Pg()->CreateDatabase("owner");
  ASSERT_FALSE(db.empty());
  std::string owner = Pg()->CreateOwnerRole(db);
  ASSERT_FALSE(owner.empty());
  Pg()->Psql(owner, kSetup);  // the owner's own tables
  EXPECT_EQ(Pg()->Psql(owner, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "f");
  TempDir dir;
  std::string plan = dir.Write("owner_all.yaml", R"(
operations:
  - rename_column: {table: customers, from: email, to: contact}
  - alter_column:
      table: customers
      column: score
      type: integer
      nullable: false
      up: coalesce(score::integer, 0)
      down: score::text
  - add_column:
      table: customers
      up: "'C' || id"
      column: {name: code, type: text, unique: true}
  - create_index: {name: customers_region_idx, table: customers, columns: [region]}
  - create_table:
      name: notes
      columns:
        - {name: id, type: bigint, pk: true, generated: {identity: {}}}
        - {name: body, type: text}
)");
  for (std::vector<std::string> verb : {std::vector<std::string>{"start", plan}, {"backfill", "owner_all"},
                                         {"verify", "owner_all"}, {"switch", "owner_all"}, {"complete", "owner_all"}}) {
    auto r = RunBounded(Cli(owner, verb));
    ASSERT_EQ(r.exit_code, 0) << verb[0] << ": " << r.out << r.err;
  }
  EXPECT_EQ(Phase(db, "owner_all"), "complete");
  EXPECT_EQ(Pg()->Psql(owner, "SELECT string_agg(contact || ':' || score || ':' || code, ',' ORDER BY id) FROM "
                              "customers WHERE contact IS NOT NULL"),
            "ann@x.com:10:C1,bob@x.com:20:C2");
  EXPECT_EQ(Pg()->Psql(owner, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('customers_region_idx', "
                              "'customers_code_key', 'customers_email_idx')"),
            "3");
  // Rollback as the owner too.
  std::string before = CatalogFingerprint(db);
  std::string plan2 = dir.Write("owner_back.yaml", kScorePlan);
  (void)plan2;
  std::string plan3 = dir.Write("owner_back2.yaml", R"(
operations:
  - alter_column: {table: customers, column: contact, type: varchar(200), up: contact, down: contact}
)");
  auto r = RunBounded(Cli(owner, {"start", plan3}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunBounded(Cli(owner, {"rollback", "owner_back2"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CatalogFingerprint(db), before);
}

// (f) Sessions choose a version by search_path or by the sluice.version
// setting; switch and switch --back re-point <schema>_live.
TEST_F(PgRobustness, VersionSelectionAndLiveAlias) {
  std::string db = NewDb();
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("vsel.yaml", kScorePlan)));
  // The new version is usable once its backfill is done.
  auto bf = m->Backfill("vsel", {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  auto raw = [&]() {
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok()) << s.status().message();
    return std::move(*s);
  };
  // By search_path alone.
  {
    auto s = raw();
    SLUICE_ASSERT_OK(s->Exec("SET search_path TO public_vsel"));
    EXPECT_EQ(SessionValue(*s, "SELECT pg_typeof(score)::text FROM customers WHERE id = 1"), "integer");
    SLUICE_ASSERT_OK(s->Exec("UPDATE customers SET score = 77 WHERE id = 1"));
  }
  // By the setting, with schema-qualified names and another search_path.
  {
    auto s = raw();
    SLUICE_ASSERT_OK(s->Exec("SET search_path TO public; SET sluice.version = 'vsel'"));
    SLUICE_ASSERT_OK(s->Exec("UPDATE public_vsel.customers SET score = 66 WHERE id = 2"));
  }
  // The old version.
  {
    auto s = raw();
    SLUICE_ASSERT_OK(s->Exec("UPDATE customers SET score = '55' WHERE id = 3"));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(score, ',' ORDER BY id) FROM customers"), "77,66,55");
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(score::text, ',' ORDER BY id) FROM public_vsel.customers"), "77,66,55");
  // Rows written through the new version carry the new value, not up(old).
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM customers WHERE _sluice_new_score IS DISTINCT FROM score::integer"),
            "0");

  const std::string live_type =
      "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public_live.customers'::regclass "
      "AND attname = 'score'";
  // The switch gate wants a verification that started after the backfill.
  auto v0 = m->Verify("vsel");
  ASSERT_TRUE(v0.ok()) << v0.status().message();
  EXPECT_TRUE(v0->passed) << v0->json;
  auto r = RunBounded(Cli(db, {"switch", "vsel"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Pg()->Psql(db, live_type), "integer");
  EXPECT_EQ(Pg()->Psql(db, "SELECT live FROM sluice.migrations WHERE name = 'vsel'"), "new");
  {
    auto s = m->Connect("live");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE customers SET score = 44 WHERE id = 1"));
    auto p = raw();
    SLUICE_ASSERT_OK(p->Exec("SET search_path TO public_live"));
    SLUICE_ASSERT_OK(p->Exec("UPDATE customers SET score = 45 WHERE id = 2"));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(score, ',' ORDER BY id) FROM customers"), "44,45,55");

  r = RunBounded(Cli(db, {"switch", "--back", "vsel"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Pg()->Psql(db, live_type), "text");
  EXPECT_EQ(Pg()->Psql(db, "SELECT live FROM sluice.migrations WHERE name = 'vsel'"), "old");
  {
    auto p = raw();
    SLUICE_ASSERT_OK(p->Exec("SET search_path TO public_live"));
    SLUICE_ASSERT_OK(p->Exec("UPDATE customers SET score = '33' WHERE id = 3"));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT _sluice_new_score FROM customers WHERE id = 3"), "33");
  auto v = m->Verify("vsel");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete("vsel"));
  EXPECT_EQ(Pg()->Psql(db, live_type), "integer");
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(score::text, ',' ORDER BY id) FROM public_live.customers"), "44,45,33");
}

// (g) A GENERATED ALWAYS identity key and a composite primary key: the
// backfill walks both in many chunks and fills every row exactly once.
TEST_F(PgRobustness, IdentityAndCompositeKeysBackfillCorrectly) {
  std::string db = NewDb(R"(
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL);
INSERT INTO events (payload) SELECT repeat('x', g % 17) FROM generate_series(1, 2500) g;
CREATE TABLE pairs (a integer, b text, v integer, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g % 13, 'k' || g, g FROM generate_series(1, 2000) g;
)");
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("keys.yaml", R"(
operations:
  - add_column: {table: events, up: length(payload), column: {name: len, type: integer}}
  - add_column: {table: pairs, up: v * 2, column: {name: w, type: integer}}
)")));
  {
    // The new version waits for the backfill; the old one writes meanwhile.
    EXPECT_FALSE(m->Connect("keys").ok());
    auto o = m->Connect("");
    ASSERT_TRUE(o.ok());
    SLUICE_ASSERT_OK((*o)->Exec("INSERT INTO events (payload) VALUES ('oldw')"));
    SLUICE_ASSERT_OK((*o)->Exec("UPDATE pairs SET v = 1000 WHERE a = 0 AND b = 'k13'"));
  }
  BackfillOptions bo;
  bo.chunk_rows = 100;
  bo.chunk_min_rows = 50;
  bo.chunk_max_rows = 100;
  auto bf = m->Backfill("keys", bo);
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  {
    auto s = m->Connect("keys");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO events (payload, len) VALUES ('new', 3)"));
    SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO pairs (a, b, v, w) VALUES (99, 'z', 5, 10)"));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM events WHERE len IS DISTINCT FROM length(payload)"), "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pairs WHERE w IS DISTINCT FROM v * 2"), "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT w FROM pairs WHERE a = 0 AND b = 'k13'"), "2000");
  // Really chunked: at least 2500/100 and 2000/100 chunks.
  EXPECT_EQ(Pg()->Psql(db, "SELECT bool_and(n >= 20) AND count(*) = 2 FROM (SELECT tbl, count(*) AS n FROM "
                           "sluice.chunks WHERE migration = 'keys' GROUP BY tbl) c"),
            "t");
  auto v = m->Verify("keys");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete("keys"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) || '/' || sum(len) FROM events"),
            Pg()->Psql(db, "SELECT count(*) || '/' || sum(length(payload)) FROM events"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM events"), "2502");
  EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(attname || attnotnull, ',' ORDER BY attname) FROM pg_attribute WHERE "
                           "attrelid IN ('events'::regclass, 'pairs'::regclass) AND attname IN ('len', 'w')"),
            "lentrue,wtrue");
}

// (h) `sluice start` killed with SIGKILL at several points: rerunning start
// or running rollback converges to a clean state.
TEST_F(PgRobustness, KilledStartConverges) {
  const std::string plan_text = R"(
operations:
  - alter_column:
      table: customers
      column: score
      type: integer
      up: score::integer
      down: score::text
  - add_column:
      table: customers
      up: "'C' || id"
      column: {name: code, type: text, unique: true}
  - create_index: {name: customers_region_idx, table: customers, columns: [region]}
)";
  enum class Point { kEarly, kWaitingForTableLock, kBuildingIndex };
  struct Run {
    Point point;
    bool then_rollback;
  };
  for (const Run& run : {Run{Point::kEarly, false}, Run{Point::kWaitingForTableLock, true},
                         Run{Point::kWaitingForTableLock, false}, Run{Point::kBuildingIndex, true},
                         Run{Point::kBuildingIndex, false}}) {
    SCOPED_TRACE("point " + std::to_string(static_cast<int>(run.point)) +
                 (run.then_rollback ? " then rollback" : " then rerun start"));
    std::string db = NewDb();
    TempDir dir;
    std::string plan = dir.Write("killed.yaml", plan_text);
    std::string before = CatalogFingerprint(db);
    std::string data_before = Pg()->Psql(db, "SELECT string_agg(c::text, ';' ORDER BY id) FROM customers c");
    auto m = OpenUrl(db, PatientLocks());
    ASSERT_TRUE(m);
    std::unique_ptr<Session> blocker;
    if (run.point != Point::kEarly) {
      auto s = m->Connect("");
      ASSERT_TRUE(s.ok());
      blocker = std::move(*s);
      if (run.point == Point::kWaitingForTableLock) {
        // An open reader of the table blocks the catalog changes.
        SLUICE_ASSERT_OK(blocker->Exec("BEGIN; SELECT count(*) FROM customers"));
      } else {
        // An open transaction holding a snapshot (on no table of ours) does
        // not block the catalog changes, but CREATE INDEX CONCURRENTLY
        // waits for it before the index becomes valid.
        SLUICE_ASSERT_OK(blocker->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1"));
      }
    }
    TempDir io;
    int pid = SpawnSluice(Cli(db, {"--lock-timeout-ms", "100", "--lock-budget-ms", "60000", "start", plan}), io.path());
    ASSERT_GT(pid, 0);
    const std::string app = "a.application_name LIKE 'sluice pid " + std::to_string(pid) + " %'";
    if (run.point == Point::kEarly) {
      ASSERT_TRUE(WaitFor(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE " + app + ")") ||
                  Phase(db, "killed") == "active");
    } else if (run.point == Point::kWaitingForTableLock) {
      // Retrying its main transaction: the first ALTER waits for our lock.
      ASSERT_TRUE(WaitFor(db, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE " + app +
                                  " AND a.query LIKE 'ALTER TABLE%' AND a.wait_event_type = 'Lock')"))
          << ReadFile(io.File("spawn.err"));
    } else {
      // The catalog changes committed; the index build is waiting for the
      // blocker's snapshot (and retrying).
      ASSERT_TRUE(WaitFor(db, "SELECT EXISTS (SELECT 1 FROM sluice.steps WHERE migration = 'killed' AND phase = "
                              "'start' AND step = 0) AND EXISTS (SELECT 1 FROM pg_class WHERE relname = "
                              "'customers_code_key')"))
          << ReadFile(io.File("spawn.err"));
      EXPECT_EQ(Phase(db, "killed"), "starting");
    }
    kill(pid, SIGKILL);
    EXPECT_EQ(WaitProcess(pid), 128 + SIGKILL);
    if (blocker) SLUICE_EXPECT_OK(blocker->Exec("ROLLBACK"));
    blocker.reset();
    // The killed process's server session goes away by itself.
    ASSERT_TRUE(WaitFor(db, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE " + app + ")"));

    if (run.then_rollback) {
      std::string phase = Phase(db, "killed");
      if (phase != "none") {
        auto r = RunBounded(Cli(db, {"rollback", "killed"}));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(Phase(db, "killed"), "rolled_back");
      }
      EXPECT_EQ(CatalogFingerprint(db), before);
      EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(c::text, ';' ORDER BY id) FROM customers c"), data_before);
    }
    // Rerunning start (after a rollback or not) converges to an active
    // migration that completes.
    auto r = RunBounded(Cli(db, {"start", plan}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Phase(db, "killed"), "active");
    EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), "0");
    for (std::vector<std::string> verb : {std::vector<std::string>{"backfill", "killed"}, {"verify", "killed"},
                                           {"complete", "killed"}}) {
      r = RunBounded(Cli(db, verb));
      ASSERT_EQ(r.exit_code, 0) << verb[0] << ": " << r.out << r.err;
    }
    EXPECT_EQ(Pg()->Psql(db, "SELECT string_agg(score || code, ',' ORDER BY id) FROM customers"), "10C1,20C2,30C3");
    EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('customers_region_idx', "
                             "'customers_code_key', 'customers_email_idx')"),
              "3");
  }
}

}  // namespace
}  // namespace sluice::testing
