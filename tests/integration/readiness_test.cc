// The new version is usable only once its backfill is done (issue 8 item
// 15), a baseline version gives the old application a stable shape (item
// 10), and `status` tells a running backfill from a stopped one (item 13).
// PostgreSQL tests run on the throwaway cluster (tests/support/pg_cluster.h),
// SQLite ones on temporary files; every assertion is by SQL.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

PgCluster* Pg() { return PgCluster::Shared(); }

constexpr int kRows = 3000;

// orders.amount is text on the old version; `ord` makes it an integer.
const std::string kOrdersSetup =
    "CREATE TABLE orders (id integer PRIMARY KEY, amount text NOT NULL, status text NOT NULL);"
    "INSERT INTO orders SELECT g, (g % 997)::text, CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'paid' END "
    "FROM generate_series(1, " + std::to_string(kRows) + ") g;";

constexpr const char* kAmountPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: integer
      up: amount::integer
      down: amount::text
)";

std::string NewDb(const std::string& setup) {
  std::string url = Pg()->CreateDatabase("rdy");
  if (!url.empty() && !setup.empty()) Pg()->Psql(url, setup);
  return url;
}

std::vector<std::string> Cli(const std::string& url, std::vector<std::string> verb) {
  std::vector<std::string> a = {"--db", url, "--actor", "test"};
  a.insert(a.end(), verb.begin(), verb.end());
  return a;
}

// A session reading the version's schema by search_path alone, the way an
// application configured by hand would (no refusal by sluice itself).
std::unique_ptr<Session> RawVersionSession(Migrator& m, const std::string& schema) {
  auto s = m.Connect("");
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return nullptr;
  EXPECT_TRUE((*s)->Exec("SET search_path TO " + schema).ok());
  return std::move(*s);
}

// `status --json`'s entry for `name` (null when missing).
nlohmann::json StatusOf(const std::string& url, const std::string& name) {
  CommandResult r = RunSluice(Cli(url, {"status", "--json"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_array()) {
    ADD_FAILURE() << "status --json printed: " << r.out;
    return nullptr;
  }
  for (const auto& e : j) {
    if (e.value("name", "") == name) return e;
  }
  return nullptr;
}

// The plan of `sql`, all lines.
std::string Explain(const std::string& url, const std::string& sql) {
  std::string out;
  for (const auto& row : Pg()->PsqlRows(url, "EXPLAIN " + sql)) {
    for (const auto& v : row) out += v + "\n";
  }
  return out;
}

class Readiness : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_ASSERT_PG_OK(Pg()); }
};

// Right after start the new version refuses reads and writes with the
// readiness message (by every way an application reaches it), the old
// version works, verification is recorded as failed; a get-then-save loop
// on the new version that starts before the backfill is refused until the
// version is ready and then succeeds, and every value matches up(old).
TEST_F(Readiness, NewVersionRefusesUntilBackfillIsDoneThenShowsUp) {
  std::string db = NewDb(kOrdersSetup);
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("ord.yaml", kAmountPlan)));

  // The guard is a one-time filter, not a per-row call.
  std::string plan = Explain(db, "SELECT * FROM public_ord.orders WHERE amount > 5");
  EXPECT_THAT(plan, HasSubstr("One-Time Filter"));
  EXPECT_THAT(plan, HasSubstr("_sluice_ready"));

  {
    auto s = RawVersionSession(*m, "public_ord");
    ASSERT_TRUE(s);
    auto r = s->Query("SELECT sum(amount) FROM orders");
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("version ord is not ready: the backfill of orders is 0"));
    EXPECT_THAT(r.status().message(), HasSubstr("run `sluice backfill ord`"));
    EXPECT_THAT(s->Query("SELECT count(*) FROM orders WHERE status = 'pending'").status().message(),
                HasSubstr("is not ready"));
    EXPECT_THAT(s->Exec("INSERT INTO orders (id, amount, status) VALUES (90001, 5, 'paid')").message(),
                HasSubstr("is not ready"));
    EXPECT_THAT(s->Exec("UPDATE orders SET amount = 1 WHERE id = 1").message(), HasSubstr("is not ready"));
    EXPECT_THAT(s->Exec("DELETE FROM orders WHERE id = 1").message(), HasSubstr("is not ready"));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE id = 90001"), "0");
  EXPECT_THAT(m->Connect("ord").status(), StatusIs(StatusCode::kFailedPrecondition, "version ord is not ready"));
  EXPECT_THAT(m->VersionSetupSql("ord").status(), StatusIs(StatusCode::kFailedPrecondition, "is not ready"));
  CommandResult vs = RunSluice(Cli(db, {"version-sql", "ord"}));
  EXPECT_NE(vs.exit_code, 0);
  EXPECT_THAT(vs.err, HasSubstr("is not ready"));
  EXPECT_THAT(m->Switch("ord", false, {}), StatusIs(StatusCode::kFailedPrecondition, "is not ready"));
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_FALSE((*list)[0].version_ready);

  // Verification reads the new version: it could not run, and says so on
  // record.
  auto v = m->Verify("ord", {});
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("is not ready"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM sluice.verifications WHERE migration = 'ord' AND passed = 0"), "1");

  // The old version reads and writes as before; its writes reach the new
  // column through the dual-write.
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE orders SET amount = '41' WHERE id = 1"));
    SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO orders (id, amount, status) VALUES (" + std::to_string(kRows + 1) +
                                ", '12', 'pending')"));
    auto r = (*s)->Query("SELECT count(*) FROM orders");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->rows[0][0].value_or(""), std::to_string(kRows + 1));
  }
  EXPECT_EQ(Pg()->Psql(db, "SELECT _sluice_new_amount FROM orders WHERE id = 1"), "41");

  // get-then-save through the new version, racing the backfill: refused
  // while it runs, then correct.
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0}, saved{0};
  std::string writer_error;
  std::thread writer([&] {
    auto s = RawVersionSession(*m, "public_ord");
    if (!s) return;
    int id = 1;
    while (!stop.load() && id <= kRows) {
      auto got = s->Query("SELECT amount, status FROM orders WHERE id = $1", {int64_t{id}});
      if (!got.ok()) {
        if (got.status().message().find("is not ready") == std::string::npos) {
          writer_error = got.status().message();
          return;
        }
        refused++;
        std::this_thread::yield();
        continue;
      }
      if (got->rows.size() != 1 || !got->rows[0][0] || !got->rows[0][1]) {
        writer_error = "row " + std::to_string(id) + " read NULL through the new version";
        return;
      }
      auto put = s->Query("UPDATE orders SET amount = $2, status = $3 WHERE id = $1",
                          {int64_t{id}, std::stoll(*got->rows[0][0]) + 1000, *got->rows[0][1]});
      if (!put.ok()) {
        writer_error = put.status().message();
        return;
      }
      saved++;
      id += 7;
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (refused.load() == 0 && writer_error.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  BackfillOptions bo;
  bo.chunk_rows = 100;
  bo.max_rows_per_second = 6000;
  auto bf = m->Backfill("ord", bo);
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  while (saved.load() < 100 && writer_error.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  stop = true;
  writer.join();
  EXPECT_EQ(writer_error, "");
  EXPECT_GT(refused.load(), 0);
  EXPECT_GE(saved.load(), 100);

  // Both versions agree on every row, and rows the writer saved carry its
  // value.
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE _sluice_new_amount IS DISTINCT FROM amount::integer"),
            "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM orders WHERE id % 7 = 1 AND id <= " + std::to_string(saved.load() * 7) +
                               " AND amount::integer < 1000"),
            "0");
  // The new version now shows up(old) for every row: its sum and filtered
  // count are what the old columns imply.
  auto s = m->Connect("ord");
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto sum = (*s)->Query("SELECT sum(amount), count(*) FILTER (WHERE status = 'pending') FROM orders");
  ASSERT_TRUE(sum.ok()) << sum.status().message();
  EXPECT_EQ(sum->rows[0][0].value_or(""), Pg()->Psql(db, "SELECT sum(amount::integer) FROM orders"));
  EXPECT_EQ(sum->rows[0][1].value_or(""), Pg()->Psql(db, "SELECT count(*) FROM orders WHERE status = 'pending'"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname = '_sluice_ready'"), "0");
  plan = Explain(db, "SELECT * FROM public_ord.orders WHERE amount > 5");
  EXPECT_THAT(plan, Not(HasSubstr("_sluice_ready")));
  EXPECT_TRUE(m->VersionSetupSql("ord").ok());
  list = m->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE((*list)[0].version_ready);
  auto v2 = m->Verify("ord", {});
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_TRUE(v2->passed);
}

// A version that needs no backfill is usable at once.
TEST_F(Readiness, NothingToBackfillIsUsableAtOnce) {
  std::string db = NewDb(kOrdersSetup);
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir.Write("note.yaml", R"(
operations:
  - add_column:
      table: orders
      column: {name: note, type: text, nullable: true}
)")));
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM orders WHERE note IS NULL", "note"), std::to_string(kRows));
  EXPECT_TRUE(m->VersionSetupSql("note").ok());
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE((*list)[0].version_ready);
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_proc WHERE proname = '_sluice_ready'"), "0");
}

// An application with prepared `SELECT *` statements on the baseline keeps
// working through start, backfill and switch of a migration that adds
// columns; the same statements on the base tables fail at start. Complete
// retires the baseline like any previous version.
TEST_F(Readiness, BaselineKeepsPreparedStatementsWorking) {
  std::string db = NewDb(kOrdersSetup);
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  const std::string plan = dir.Write("tier.yaml", R"(
operations:
  - add_column:
      table: orders
      up: CASE WHEN amount::integer >= 500 THEN 'big' ELSE 'small' END
      column: {name: tier, type: text}
)");
  // Without a baseline (or an earlier version), lint warns.
  auto lint = m->Lint(plan);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  bool warned = false;
  for (const auto& w : lint->warnings) warned = warned || w.find("sluice baseline") != std::string::npos;
  EXPECT_TRUE(warned) << "lint --db did not point at `sluice baseline`";

  auto b = m->Baseline("");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->name, "baseline");
  EXPECT_TRUE(b->created);
  auto again = m->Baseline("");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(Pg()->Psql(db, "SELECT phase FROM sluice.migrations WHERE name = 'baseline'"), "complete");

  auto app = m->Connect("baseline");
  ASSERT_TRUE(app.ok()) << app.status().message();
  auto base = m->Connect("");
  ASSERT_TRUE(base.ok()) << base.status().message();
  for (auto* s : {app->get(), base->get()}) {
    SLUICE_ASSERT_OK(s->Exec("PREPARE one AS SELECT * FROM orders WHERE id = 1"));
    SLUICE_ASSERT_OK(s->Exec("PREPARE all_rows AS SELECT * FROM orders ORDER BY id LIMIT 5"));
    ASSERT_TRUE(s->Query("EXECUTE one").ok());
    ASSERT_TRUE(s->Query("EXECUTE all_rows").ok());
  }
  auto still_works = [&](const std::string& when) {
    for (const char* q : {"EXECUTE one", "EXECUTE all_rows"}) {
      auto r = (*app)->Query(q);
      ASSERT_TRUE(r.ok()) << when << ": " << q << ": " << r.status().message();
      EXPECT_EQ(r->columns, (std::vector<std::string>{"id", "amount", "status"})) << when;
    }
    SLUICE_EXPECT_OK((*app)->Exec("UPDATE orders SET amount = '600' WHERE id = 2"));
  };

  std::vector<std::string> warnings;
  SLUICE_ASSERT_OK(m->Start(plan, &warnings));
  for (const auto& w : warnings) EXPECT_THAT(w, Not(HasSubstr("sluice baseline")));
  auto list = m->List();
  ASSERT_TRUE(list.ok());
  for (const auto& i : *list) {
    if (i.name == "tier") {
      EXPECT_EQ(i.previous_version, "baseline");
    }
  }
  EXPECT_THAT(m->Baseline("b2").status(), StatusIs(StatusCode::kFailedPrecondition, "version"));
  // The old behaviour, to show this test can fail: the base tables gained
  // columns under the prepared statements.
  auto broken = (*base)->Query("EXECUTE one");
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.status().message(), HasSubstr("cached plan must not change result type"));
  ASSERT_NO_FATAL_FAILURE(still_works("after start"));
  auto bf = m->Backfill("tier", {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  ASSERT_NO_FATAL_FAILURE(still_works("after backfill"));
  EXPECT_EQ(Pg()->Psql(db, "SELECT tier FROM orders WHERE id = 2"), "big");
  // The new application prepares its statements on the new version.
  auto next = m->Connect("tier");
  ASSERT_TRUE(next.ok()) << next.status().message();
  SLUICE_ASSERT_OK((*next)->Exec("PREPARE one AS SELECT * FROM orders WHERE id = 1"));
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "tier"));
  SLUICE_ASSERT_OK(m->Switch("tier", false, {}));
  ASSERT_NO_FATAL_FAILURE(still_works("after switch"));
  SLUICE_ASSERT_OK(m->Complete("tier", {}));
  auto r = (*next)->Query("EXECUTE one");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->columns, (std::vector<std::string>{"id", "amount", "status", "tier"}));
  EXPECT_EQ(Pg()->Psql(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'public_baseline'"), "0");
  EXPECT_EQ(Pg()->Psql(db, "SELECT version_retired FROM sluice.migrations WHERE name = 'baseline'"), "1");
}

// status: a SIGKILLed backfill is `stopped` once its lease is stale (no
// rows/s, no ETA), a failed run's error shows, and a rolled-back migration
// has no backfill fields.
TEST_F(Readiness, StatusTellsRunningFromStopped) {
  std::string db = NewDb(kOrdersSetup);
  TempDir dir;
  auto m = OpenUrl(db, PatientLocks());
  ASSERT_TRUE(m);
  // No baseline and no earlier version: start warns that the base tables
  // gain columns, naming them and the remedy.
  std::vector<std::string> warnings;
  // on_error: fail, so that the run below fails on a row `up` cannot convert
  // (under record, the default, it records the row and goes on).
  SLUICE_ASSERT_OK(
      m->Start(dir.Write("ord.yaml", std::string(kAmountPlan) + "dual_write: {on_error: fail}\n"), &warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("orders (_sluice_new_amount"));
  EXPECT_THAT(warnings[0], HasSubstr("sluice baseline"));
  TempDir io;
  int pid = SpawnSluice(Cli(db, {"backfill", "ord", "--heartbeat-ms", "200", "--rate", "200", "--chunk-rows", "20"}),
                        io.path());
  ASSERT_GT(pid, 0);
  auto wait_for = [&](const std::function<bool()>& cond) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  // Renewed at least once, so the heartbeat thread works.
  ASSERT_TRUE(wait_for([&] {
    return Pg()->Psql(db, "SELECT count(*) FROM sluice.leases WHERE migration = 'ord' AND heartbeat_at <> started_at") ==
           "1";
  })) << ReadFile(io.File("spawn.err"));
  nlohmann::json st = StatusOf(db, "ord");
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["backfill"]["state"], "running");
  EXPECT_EQ(st["backfill"]["holder"], std::to_string(pid) + "@" + [] {
    char h[256] = {0};
    gethostname(h, sizeof h - 1);
    return std::string(h);
  }());
  EXPECT_DOUBLE_EQ(st["backfill"]["stale_after_seconds"].get<double>(), 0.6);
  EXPECT_FALSE(st["version_ready"].get<bool>());

  kill(pid, SIGKILL);
  EXPECT_EQ(WaitProcess(pid), 128 + SIGKILL);
  // The state row still says running: only the lease knows better.
  EXPECT_EQ(Pg()->Psql(db, "SELECT backfill FROM sluice.migrations WHERE name = 'ord'"), "running");
  ASSERT_TRUE(wait_for([&] { return StatusOf(db, "ord")["backfill"]["state"] == "stopped"; }));
  st = StatusOf(db, "ord");
  EXPECT_TRUE(st["backfill"]["rows_per_second"].is_null());
  EXPECT_TRUE(st["backfill"]["eta_seconds"].is_null());
  ASSERT_TRUE(st["backfill"]["last_error"].is_string()) << st.dump();
  EXPECT_THAT(st["backfill"]["last_error"].get<std::string>(), HasSubstr("no heartbeat"));
  CommandResult text = RunSluice(Cli(db, {"status"}));
  EXPECT_THAT(text.out, HasSubstr("backfill: stopped"));
  EXPECT_THAT(text.out, Not(HasSubstr("rows/s")));

  // A run that fails records why; status shows it. (A row the dual-write
  // skipped, as the backfill's own session does, so `up` fails on it.)
  Pg()->Psql(db, "SET sluice.backfill = 'on'; UPDATE orders SET amount = 'oops', _sluice_new_amount = 0 WHERE id = " +
                     std::to_string(kRows));
  CommandResult failed = RunSluice(Cli(db, {"backfill", "ord"}));
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_THAT(failed.err, HasSubstr("oops"));
  st = StatusOf(db, "ord");
  EXPECT_EQ(st["backfill"]["state"], "stopped");
  ASSERT_TRUE(st["backfill"]["last_error"].is_string()) << st.dump();
  EXPECT_THAT(st["backfill"]["last_error"].get<std::string>(), HasSubstr("oops"));
  EXPECT_FALSE(st["backfill"]["stopped_at"].is_null());

  SLUICE_ASSERT_OK(m->Rollback("ord"));
  st = StatusOf(db, "ord");
  ASSERT_TRUE(st.is_object());
  EXPECT_FALSE(st.contains("backfill")) << st.dump();
}

// SQLite: the version's setup SQL is withheld until the backfill is done;
// then the version shows up(old).
TEST(ReadinessSqlite, SetupSqlWithheldUntilBackfillDone) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("db.sqlite"));
  ASSERT_TRUE(m);
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount TEXT NOT NULL, status TEXT NOT NULL);"
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 500) "
        "INSERT INTO orders SELECT i, CAST(i % 97 AS TEXT), CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'paid' END FROM g"));
  }
  SLUICE_ASSERT_OK(m->Start(dir.Write("ord.yaml", R"(
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(amount AS INTEGER)
      down: CAST(amount AS TEXT)
)")));
  EXPECT_THAT(m->VersionSetupSql("ord").status(), StatusIs(StatusCode::kFailedPrecondition, "version ord is not ready"));
  EXPECT_THAT(m->Connect("ord").status(), StatusIs(StatusCode::kFailedPrecondition, "is not ready"));
  // The stored setup SQL (what an application reading the state table would
  // run) fails, naming why.
  std::string stored = QueryValue(*m, "SELECT setup_sql FROM _sluice_versions WHERE version = 'ord'");
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    Status st = (*s)->Exec(stored);
    EXPECT_FALSE(st.ok());
    EXPECT_THAT(st.message(), HasSubstr("is not ready"));
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE orders SET amount = '41' WHERE id = 1"));
  }
  auto bf = m->Backfill("ord", {});
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  ASSERT_TRUE(m->VersionSetupSql("ord").ok());
  EXPECT_EQ(QueryValue(*m, "SELECT sum(amount) FROM orders", "ord"),
            QueryValue(*m, "SELECT sum(CAST(amount AS INTEGER)) FROM orders"));
  EXPECT_EQ(QueryValue(*m, "SELECT typeof(amount) FROM orders WHERE id = 1", "ord"), "integer");
  EXPECT_EQ(QueryValue(*m, "SELECT amount FROM orders WHERE id = 1", "ord"), "41");
}

// SQLite baseline: `SELECT *` through it keeps the old shape after start,
// and writes through it reach the base table (and the dual-write).
TEST(ReadinessSqlite, BaselineKeepsTheOldShape) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("db.sqlite"));
  ASSERT_TRUE(m);
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount TEXT NOT NULL);"
                                "INSERT INTO orders VALUES (1, '10'), (2, '700')"));
  }
  auto b = m->Baseline("v0");
  ASSERT_TRUE(b.ok()) << b.status().message();
  SLUICE_ASSERT_OK(m->Start(dir.Write("tier.yaml", R"(
operations:
  - add_column:
      table: orders
      up: CASE WHEN CAST(amount AS INTEGER) >= 500 THEN 'big' ELSE 'small' END
      column: {name: tier, type: TEXT}
)")));
  auto app = m->Connect("v0");
  ASSERT_TRUE(app.ok()) << app.status().message();
  auto r = (*app)->Query("SELECT * FROM orders ORDER BY id");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->columns, (std::vector<std::string>{"id", "amount"}));
  SLUICE_ASSERT_OK((*app)->Exec("INSERT INTO orders (id, amount) VALUES (3, '900')"));
  SLUICE_ASSERT_OK((*app)->Exec("UPDATE orders SET amount = '5' WHERE id = 2"));
  EXPECT_EQ(QueryValue(*m, "SELECT tier FROM orders WHERE id = 3"), "big");
  EXPECT_EQ(QueryValue(*m, "SELECT tier FROM orders WHERE id = 2"), "small");
  EXPECT_GT(QueryRows(*m, "SELECT * FROM orders").at(0).size(), 2u);
}

}  // namespace
}  // namespace sluice::testing
