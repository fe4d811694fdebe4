// Fleets (issue 15, docs/fleets.md): one plan rolled out over many databases
// in waves by src/fleet/runner.cc. SQLite files for most of it (a fleet of
// 12) and databases on the throwaway PostgreSQL cluster for the canary that
// halts on bad data; every assertion on a database is by SQL against it.
// Time (the soak) comes from a FakeClock that moves by itself: no sleeps.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fmt/core.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <signal.h>
#include <unistd.h>

#include "common/clock.h"
#include "fleet/inventory.h"
#include "fleet/runner.h"
#include "support/fleet_support.h"
#include "support/plans.h"
#include "support/pg_cluster.h"
#include "support/serve_process.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

// Adds `doubled` = qty * 2 to items; the abort criteria are watched in the
// soak (Migrator::Watch).
constexpr const char* kPlan = R"(operations:
  - add_column:
      table: items
      column:
        name: doubled
        type: INTEGER
        nullable: true
      up: qty * 2
abort:
  max_error_rate: 0.5
)";

// Runs statements on a SQLite file through a base-table session.
void Exec(const std::string& path, const std::string& sql, bool create = false) {
  auto m = OpenSqlite(path, create);
  ASSERT_NE(m, nullptr);
  auto s = m->Connect("");
  ASSERT_TRUE(s.ok()) << s.status().message();
  SLUICE_ASSERT_OK((*s)->Exec(sql));
}

std::string SqliteDb(const TempDir& dir, const std::string& name, int rows) {
  std::string path = dir.File(name + ".db");
  Exec(path,
       "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL); WITH RECURSIVE g(i) AS (SELECT 1 UNION "
       "ALL SELECT i + 1 FROM g WHERE i < " + std::to_string(rows) + ") INSERT INTO items SELECT i, i FROM g",
       true);
  return path;
}

std::string Sql(const std::string& path, const std::string& sql) {
  auto m = OpenSqlite(path, false);
  return m ? QueryValue(*m, sql) : "<cannot open>";
}

// Whether sluice ever touched the SQLite file: state tables or the column.
bool Untouched(const std::string& path) {
  return Sql(path, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_sluice\\_%' ESCAPE '\\'") == "0" &&
         Sql(path, "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'doubled'") == "0";
}

fleet::Inventory Load(const TempDir& dir, const std::string& yaml) {
  auto inv = fleet::LoadInventory(dir.Write("fleet.yaml", yaml));
  EXPECT_TRUE(inv.ok()) << inv.status().message();
  return inv.ok() ? *inv : fleet::Inventory{};
}

class Fleet : public ::testing::Test {
 protected:
  void SetUp() override { clock_.set_auto_advance(true); }

  fleet::RunOptions Run() {
    fleet::RunOptions o;
    o.plan_path = dir_.Write("add_doubled.yaml", kPlan);
    o.db_options.actor = "fleet-test";
    // The soak on a clock that moves by itself; the lifecycle steps on the
    // real one (the backfill's throttle gives its threads a grace period
    // to stop, which an auto-advancing clock would end at once).
    o.clock = &clock_;
    return o;
  }

  TempDir dir_;
  FakeClock clock_;
};

// 12 SQLite databases in three waves: the whole fleet completes, `parallel`
// bounds the databases worked on at once (observed, and reached), `after:`
// is honoured, the barrier holds (no complete before every database is
// switched), every database holds the right values, and a rerun changes
// nothing.
TEST_F(Fleet, TwelveSqliteDatabasesInThreeWaves) {
  std::string yaml = "databases:\n";
  std::vector<std::string> paths;
  for (int i = 1; i <= 12; ++i) {
    std::string n = fmt::format("db{:02}", i);
    paths.push_back(SqliteDb(dir_, n, 40 + i));
    yaml += "  - name: " + n + "\n    url: sqlite:" + n + ".db\n";
    if (i <= 2) yaml += "    tags: [canary]\n";
    if (i == 12) yaml += "    after: [db11]\n";
  }
  yaml += "waves:\n  - name: canary\n    match: {tags: [canary]}\n  - name: early\n    percent: 25\n"
          "  - name: rest\nparallel: 3\nsoak: 10s\n";
  fleet::Inventory inv = Load(dir_, yaml);
  fleet::RunOptions o = Run();

  std::mutex mu;
  bool barrier_checked = false;
  std::vector<std::string> order;  // "begin db11", "end db11", ...
  ConcurrencyProbe probe("db06");   // db06 opens the last wave
  o.on_database = [&](const std::string& db, const std::string& pass, bool begin) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (pass == "forward") order.push_back((begin ? "begin " : "end ") + db);
      if (pass == "complete" && begin && !barrier_checked) {
        barrier_checked = true;
        // The barrier: when the first complete begins, every database reads
        // the new version.
        for (const auto& p : paths) {
          EXPECT_EQ(Sql(p, "SELECT live FROM _sluice_migrations WHERE name = 'add_doubled'"), "new") << p;
        }
      }
    }
    probe(db, pass, begin);
  };
  // Writers: the old application keeps updating rows of two databases (one
  // of each later wave) through the base tables until the contract pass
  // begins; the dual-write keeps `doubled` right.
  std::atomic<bool> stop_writers{false};
  std::atomic<int64_t> writes{0};
  std::vector<std::thread> writers;
  for (const std::string& p : {paths[3], paths[8]}) {
    writers.emplace_back([&, p] {
      auto m = OpenSqlite(p, false);
      auto s = m ? m->Connect("") : Result<std::unique_ptr<Session>>(Internal("no migrator"));
      if (!s.ok()) return;
      for (int64_t k = 0; !stop_writers.load(); ++k) {
        if ((*s)->Exec("UPDATE items SET qty = qty + 1 WHERE id = " + std::to_string(1 + k % 40)).ok()) ++writes;
        // An application's pace, not a tight loop: SQLite's busy handler is
        // not fair, and a writer that never lets go starves start's
        // BEGIN IMMEDIATE past its busy timeout.
        usleep(2000);
      }
    });
  }
  auto on_database = o.on_database;
  std::once_flag writers_stopped;  // every complete waits until the writers have stopped
  o.on_database = [&](const std::string& db, const std::string& pass, bool begin) {
    if (pass == "complete" && begin) {
      std::call_once(writers_stopped, [&] {
        stop_writers = true;
        for (auto& t : writers) t.join();
      });
    }
    on_database(db, pass, begin);
  };
  auto r = fleet::Apply(inv, o);
  stop_writers = true;
  for (auto& t : writers) {
    if (t.joinable()) t.join();
  }
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->finished);
  EXPECT_GT(writes.load(), 0);
  EXPECT_LE(probe.max(), 3);
  EXPECT_GE(probe.max(), 2);
  EXPECT_LE(r->max_concurrent, 3);
  EXPECT_TRUE(barrier_checked);
  // db12 is `after` db11: it began only once db11 had ended.
  auto pos = [&](const std::string& e) { return std::find(order.begin(), order.end(), e) - order.begin(); };
  EXPECT_LT(pos("end db11"), pos("begin db12"));
  for (size_t i = 0; i < paths.size(); ++i) {
    SCOPED_TRACE(paths[i]);
    EXPECT_EQ(Sql(paths[i], "SELECT phase FROM _sluice_migrations WHERE name = 'add_doubled'"), "complete");
    EXPECT_EQ(Sql(paths[i], "SELECT count(*) FROM items WHERE doubled = qty * 2"), std::to_string(41 + i));
    EXPECT_EQ(Sql(paths[i], "SELECT count(*) FROM items WHERE doubled IS NULL OR doubled <> qty * 2"), "0");
    // The soak watched the plan's abort criteria on it (sluice watch): once
    // for the soak's time in a wave no larger than `parallel`; in the last
    // wave (7 databases, 3 watchers) in turns, a round at a time.
    std::string watched = Sql(paths[i], "SELECT count(*) FROM _sluice_events WHERE kind = 'watch' AND message LIKE "
                                        "'%no abort criterion breached%'");
    if (i < 5) {
      EXPECT_EQ(watched, "1");
    } else {
      EXPECT_GE(std::stoi(watched), 1);
    }
  }
  // The status: every database complete, every wave completed, decisions.
  o.on_database = nullptr;
  auto st = fleet::ReadStatus(inv, o);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->completed, 12);
  auto j = nlohmann::json::parse(fleet::StatusJson(*st));
  EXPECT_EQ(j["waves"][0]["name"], "canary");
  EXPECT_EQ(j["waves"][0]["databases"], 2);
  EXPECT_EQ(j["waves"][1]["databases"], 3);  // 25% of 12
  EXPECT_EQ(j["waves"][2]["state"], "completed");
  std::string decisions = j["decisions"].dump();
  EXPECT_THAT(decisions, HasSubstr("barrier passed"));
  EXPECT_THAT(decisions, HasSubstr("fleet-test"));
  // A rerun of a finished fleet changes nothing and succeeds.
  auto again = fleet::Apply(inv, o);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->finished);
}

// A database that fails (its table is missing) halts its wave: the canary
// stays switched, the later wave is untouched, `fleet rollback` rolls back
// every database not completed; under rollback_wave the wave is rolled back
// at once. After the fix a rerun finishes the fleet.
TEST_F(Fleet, FailureHaltsRollbackWaveAndRerunFinishes) {
  std::string a = SqliteDb(dir_, "a", 10), b = SqliteDb(dir_, "b", 10), d = SqliteDb(dir_, "d", 10);
  std::string c = dir_.File("c.db");
  Exec(c, "CREATE TABLE other (id INTEGER PRIMARY KEY)", true);
  std::string dbs = R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary]}
  - {name: b, url: "sqlite:b.db"}
  - {name: c, url: "sqlite:c.db"}
  - {name: d, url: "sqlite:d.db", tags: [last]}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: second, percent: 50}
  - {name: rest}
parallel: 1
)";
  fleet::RunOptions o = Run();
  {
    fleet::Inventory inv = Load(dir_, dbs + "on_failure: halt\n");
    auto r = fleet::Apply(inv, o);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("fleet halted in wave second"));
    EXPECT_THAT(r.status().message(), HasSubstr("c: database c (sqlite:"));
    EXPECT_THAT(r.status().message(), HasSubstr("later waves (rest) were not touched"));
    EXPECT_EQ(Sql(a, "SELECT live FROM _sluice_migrations"), "new");
    EXPECT_EQ(Sql(b, "SELECT live FROM _sluice_migrations"), "new");
    EXPECT_TRUE(Untouched(d));
    auto st = fleet::ReadStatus(inv, o);
    ASSERT_TRUE(st.ok()) << st.status().message();
    EXPECT_THAT(fleet::StatusText(*st), HasSubstr("second       failed"));
    // fleet rollback: every database not completed.
    SLUICE_ASSERT_OK(fleet::RollbackFleet(inv, o));
    EXPECT_EQ(Sql(a, "SELECT phase FROM _sluice_migrations"), "rolled_back");
    EXPECT_EQ(Sql(b, "SELECT phase FROM _sluice_migrations"), "rolled_back");
    EXPECT_EQ(Sql(a, "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'doubled'"), "0");
    EXPECT_TRUE(Untouched(d));
  }
  {
    fleet::Inventory inv = Load(dir_, dbs + "on_failure: rollback_wave\n");
    auto r = fleet::Apply(inv, o);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("fleet rolled back wave second"));
    EXPECT_EQ(Sql(a, "SELECT live FROM _sluice_migrations WHERE phase = 'active'"), "new");  // canary kept
    EXPECT_EQ(Sql(b, "SELECT phase FROM _sluice_migrations"), "rolled_back");              // its wave rolled back
    EXPECT_EQ(Sql(b, "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'doubled'"), "0");
    EXPECT_TRUE(Untouched(d));
    // The fix, then the same command again.
    Exec(c, "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL); INSERT INTO items VALUES (1, 5), "
            "(2, 6)");
    auto again = fleet::Apply(inv, o);
    ASSERT_TRUE(again.ok()) << again.status().message();
    for (const auto& p : {a, b, c, d}) {
      EXPECT_EQ(Sql(p, "SELECT phase FROM _sluice_migrations WHERE name = 'add_doubled'"), "complete") << p;
      EXPECT_EQ(Sql(p, "SELECT count(*) FROM items WHERE doubled IS NULL OR doubled <> qty * 2"), "0") << p;
    }
    EXPECT_EQ(Sql(c, "SELECT sum(doubled) FROM items"), "22");
  }
}

// An unreachable database halts its wave with a clear message; nothing of
// a later wave is touched.
TEST_F(Fleet, UnreachableDatabaseHaltsItsWave) {
  std::string a = SqliteDb(dir_, "a", 5), z = SqliteDb(dir_, "z", 5);
  fleet::Inventory inv = Load(dir_, R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [one]}
  - {name: gone, url: "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=3", tags: [one]}
  - {name: z, url: "sqlite:z.db"}
waves:
  - {name: one, match: {tags: [one]}}
  - {name: two}
parallel: 2
)");
  auto r = fleet::Apply(inv, Run());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("gone: database gone (postgresql://postgres@127.0.0.1:1/nothing"));
  EXPECT_THAT(r.status().message(), HasSubstr("read state failed: unreachable or unreadable"));
  EXPECT_TRUE(Untouched(z));
}

// The soak watches the plan's abort criteria: a probe that fails breaches
// max_error_rate, sluice switches that database's reads back, and the wave
// fails (halt): nothing is completed anywhere.
TEST_F(Fleet, AbortCriterionBreachedDuringTheSoakHalts) {
  std::string a = SqliteDb(dir_, "a", 5), b = SqliteDb(dir_, "b", 5);
  fleet::Inventory inv = Load(dir_, R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary]}
  - {name: b, url: "sqlite:b.db"}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: rest}
soak: 30s
)");
  fleet::RunOptions o = Run();
  o.plan_path = dir_.Write("probe_fails.yaml", std::string(kPlan) + "  probe_query: SELECT count(*) FROM gone\n");
  auto r = fleet::Apply(inv, o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("abort criterion breached while soaking"));
  EXPECT_THAT(r.status().message(), HasSubstr("fleet halted in wave canary"));
  EXPECT_EQ(Sql(a, "SELECT phase || ' ' || live FROM _sluice_migrations"), "active old");  // switched back
  EXPECT_EQ(Sql(a, "SELECT count(*) FROM _sluice_events WHERE kind = 'abort'"), "1");
  EXPECT_TRUE(Untouched(b));
}

// The CLI: a bad inventory is refused with its line and touches nothing;
// `fleet apply` and `fleet status --json` on the real binary.
TEST_F(Fleet, Cli) {
  std::string a = SqliteDb(dir_, "a", 5), b = SqliteDb(dir_, "b", 5);
  std::string plan = dir_.Write("add_doubled.yaml", kPlan);
  std::string bad = dir_.Write("bad.yaml", "databases:\n  - {name: a, url: \"sqlite:a.db\"}\nwavez: []\n");
  CommandResult r = RunSluice({"fleet", "apply", plan, "--inventory", bad});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:3:1: error: unknown key 'wavez' in the inventory"));
  EXPECT_TRUE(Untouched(a));
  std::string inv = dir_.Write("fleet.yaml", "databases:\n  - {name: a, url: \"sqlite:a.db\"}\n"
                                              "  - {name: b, url: \"sqlite:b.db\"}\nparallel: 2\n");
  r = RunSluice({"fleet", "apply", plan, "--inventory", inv, "--actor", "cli"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("all: a switched"));
  r = RunSluice({"fleet", "status", "--inventory", inv, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["migration"], "add_doubled");
  EXPECT_EQ(j["progress"]["completed"], 2);
  EXPECT_EQ(j["databases"][1]["phase"], "complete");
  r = RunSluice({"fleet", "report", "--inventory", inv});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("# Fleet report: add_doubled"));
  EXPECT_THAT(r.out, HasSubstr("| all | completed | 2 | 2 | 2 |"));
  EXPECT_THAT(r.out, HasSubstr("barrier passed (all 2 database(s) switched and soaked)"));
  EXPECT_THAT(r.out, HasSubstr("| b | all | `sqlite:"));
  EXPECT_TRUE(std::filesystem::exists(dir_.File("fleet.db")));  // the default ledger, next to the inventory
  EXPECT_EQ(Sql(b, "SELECT sum(doubled) FROM items"), "30");
}

// Read-only commands create no state: `fleet status` and `fleet report`
// before any apply say there is no ledger yet and leave no fleet.db.
TEST_F(Fleet, StatusWithoutALedgerCreatesNothing) {
  SqliteDb(dir_, "a", 5);
  std::string plan = dir_.Write("add_doubled.yaml", kPlan);
  std::string inv = dir_.Write("fleet.yaml", "databases:\n  - {name: a, url: \"sqlite:a.db\"}\n");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"fleet", "status", "--inventory", inv},
        std::vector<std::string>{"fleet", "status", plan, "--inventory", inv, "--json"},
        std::vector<std::string>{"fleet", "report", "--inventory", inv}}) {
    CommandResult r = RunSluice(args);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_THAT(r.err, HasSubstr("no fleet ledger at sqlite:")) << args[1];
    EXPECT_THAT(r.err, HasSubstr("run `sluice fleet apply` first"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("fleet.db")));
  EXPECT_TRUE(Untouched(dir_.File("a.db")));
}

// The command center shows a fleet given its inventory: /api/v1/fleet is
// `fleet status --json`, the status page has its section (waves, databases
// by phase, the halt); without an inventory /api/v1/fleet is 404.
TEST_F(Fleet, ServeShowsTheFleet) {
  std::string a = SqliteDb(dir_, "a", 5), b = SqliteDb(dir_, "b", 5);
  Exec(dir_.File("c.db"), "CREATE TABLE other (id INTEGER PRIMARY KEY)", true);  // `up` fails here: no items
  std::string plan = dir_.Write("add_doubled.yaml", kPlan);
  std::string inv = dir_.Write("fleet.yaml", R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary]}
  - {name: c, url: "sqlite:c.db"}
  - {name: b, url: "sqlite:b.db"}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: second, percent: 33}
  - {name: rest}
)");
  CommandResult r = RunSluice({"fleet", "apply", plan, "--inventory", inv});
  ASSERT_NE(r.exit_code, 0) << r.out;
  ServeProcess serve({"--db", "sqlite:" + a}, {"--inventory", inv});
  ASSERT_TRUE(serve.running()) << serve.err();
  httplib::Client c("127.0.0.1", serve.port());
  auto api = c.Get("/api/v1/fleet");
  ASSERT_TRUE(api);
  ASSERT_EQ(api->status, 200) << api->body;
  CommandResult cli = RunSluice({"fleet", "status", "--inventory", inv, "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(nlohmann::json::parse(api->body), nlohmann::json::parse(cli.out));
  auto j = nlohmann::json::parse(api->body);
  EXPECT_THAT(j["halted"].get<std::string>(), HasSubstr("wave second: halt"));
  EXPECT_EQ(j["progress"]["eta_seconds"], nullptr);  // no backfill running: no rate, no ETA
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_THAT(page->body, HasSubstr("<section class=\"fleet\" id=\"fleet\" data-migration=\"add_doubled\" "
                                    "data-halted=\"true\">"));
  EXPECT_THAT(page->body, HasSubstr("<tr data-wave=\"canary\" data-state=\"soaked\">"));
  EXPECT_THAT(page->body, HasSubstr("<tr data-wave=\"second\" data-state=\"failed\">"));
  EXPECT_THAT(page->body, HasSubstr("<tr data-wave=\"rest\" data-state=\"pending\">"));
  EXPECT_THAT(page->body, HasSubstr("<tr data-database=\"a\" data-phase=\"active\">"));
  EXPECT_THAT(page->body, HasSubstr("<tr data-database=\"b\" data-phase=\"\">"));
  EXPECT_THAT(page->body, HasSubstr("id=\"fleet-halted\">halted: wave second: halt"));
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
  // Serving read the ledger and the databases only: b is still untouched.
  EXPECT_TRUE(Untouched(b));
  ServeProcess plain({"--db", "sqlite:" + a}, {});
  ASSERT_TRUE(plain.running()) << plain.err();
  auto none = httplib::Client("127.0.0.1", plain.port()).Get("/api/v1/fleet");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_THAT(plain.Stop(), 0);
  // The master handoff document as HTML.
  r = RunSluice({"fleet", "report", "--inventory", inv, "--html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("<title>Fleet report: add_doubled</title>"));
  EXPECT_THAT(r.out, HasSubstr("<td>second</td><td>failed</td>"));
}

// SIGKILL of the runner mid-wave (the canary switched, its soak running):
// the rerun continues without redoing the finished database (one `start`
// and one `switch` event in its audit log) and finishes the fleet.
TEST_F(Fleet, SigkillMidWaveThenRerunContinues) {
  std::string a = SqliteDb(dir_, "a", 5), b = SqliteDb(dir_, "b", 5), c = SqliteDb(dir_, "c", 5);
  std::string plan = dir_.Write("add_doubled.yaml", kPlan);
  std::string dbs = R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary]}
  - {name: b, url: "sqlite:b.db"}
  - {name: c, url: "sqlite:c.db"}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: rest}
)";
  // A long real soak: the runner is surely inside it when killed.
  std::string inv = dir_.Write("fleet.yaml", dbs + "soak: 10m\n");
  int pid = SpawnSluice({"fleet", "apply", plan, "--inventory", inv}, dir_.path());
  ASSERT_GT(pid, 0);
  auto switched = [&] {
    return Sql(a, "SELECT count(*) FROM sqlite_schema WHERE name = '_sluice_migrations'") == "1" &&
           Sql(a, "SELECT count(*) FROM _sluice_migrations WHERE live = 'new'") == "1";
  };
  // A condition, not a timing: poll until the canary has switched.
  for (int i = 0; i < 1200 && !switched(); ++i) usleep(50000);
  ASSERT_TRUE(switched()) << ReadFile(dir_.File("spawn.err"));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_EQ(WaitProcess(pid), 128 + SIGKILL);
  EXPECT_TRUE(Untouched(b));
  EXPECT_TRUE(Untouched(c));
  // The rerun (soak shortened by the operator) continues where it stopped.
  dir_.Write("fleet.yaml", dbs + "soak: 0s\n");
  CommandResult r = RunSluice({"fleet", "apply", plan, "--inventory", inv});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Sql(a, "SELECT count(*) FROM _sluice_events WHERE kind = 'start'"), "1");
  EXPECT_EQ(Sql(a, "SELECT count(*) FROM _sluice_events WHERE kind = 'switch'"), "1");
  for (const auto& p : {a, b, c}) {
    EXPECT_EQ(Sql(p, "SELECT phase FROM _sluice_migrations"), "complete") << p;
    EXPECT_EQ(Sql(p, "SELECT sum(doubled) FROM items"), "30") << p;
  }
}

// PostgreSQL: four databases on the throwaway cluster. The second wave
// holds a database whose data makes `up` fail: apply halts, the canary is
// switched, the later wave untouched (no sluice schema, no new column).
// After the data is fixed, the rerun finishes and every value is right.
TEST_F(Fleet, PostgresCanaryHaltsOnBadDataThenFinishes) {
  PgCluster* pg = PgCluster::Shared();
  ASSERT_TRUE(pg->ok()) << pg->error();
  std::vector<std::string> urls;
  for (int i = 0; i < 4; ++i) {
    urls.push_back(pg->CreateDatabase("fleet"));
    ASSERT_FALSE(urls.back().empty());
    pg->Psql(urls.back(), "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL);"
                          "INSERT INTO items SELECT g, g::text FROM generate_series(1, 30) g;");
  }
  pg->Psql(urls[2], "UPDATE items SET qty = 'lots' WHERE id = 17");
  std::string plan = dir_.Write("qty_int.yaml", QtyToIntegerPlan("fail", ""));

  fleet::Inventory inv = Load(dir_, fmt::format(R"(databases:
  - {{name: pg1, url: "{}", tags: [canary]}}
  - {{name: pg2, url: "{}", tags: [early]}}
  - {{name: pg3, url: "{}", tags: [early]}}
  - {{name: pg4, url: "{}"}}
waves:
  - {{name: canary, match: {{tags: [canary]}}}}
  - {{name: early, match: {{tags: [early]}}}}
  - {{name: rest}}
parallel: 2
soak: 5m
)",
                                                 urls[0], urls[1], urls[2], urls[3]));
  fleet::RunOptions o = Run();
  o.plan_path = plan;
  o.db_options.lock_retry_budget_ms = 20000;
  std::string ledger = pg->CreateDatabase("ledger");  // the ledger in PostgreSQL
  o.ledger_url = ledger;
  auto r = fleet::Apply(inv, o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("pg3: database pg3"));
  EXPECT_THAT(r.status().message(), HasSubstr("later waves (rest) were not touched"));
  EXPECT_EQ(pg->Psql(urls[0], "SELECT live FROM sluice.migrations WHERE name = 'qty_int'"), "new");
  EXPECT_EQ(pg->Psql(urls[3], "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sluice%' OR nspname LIKE "
                              "'public\\_%'"),
            "0");
  EXPECT_EQ(pg->Psql(urls[3], "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                              "information_schema.columns WHERE table_name = 'items'"),
            "id,qty");
  EXPECT_EQ(pg->Psql(ledger, "SELECT state FROM sluice.fleet_waves WHERE wave = 'early'"), "failed");
  EXPECT_EQ(pg->Psql(ledger, "SELECT step FROM sluice.fleet_databases WHERE db = 'pg3'"), "failed: start");
  EXPECT_EQ(pg->Psql(ledger, "SELECT count(*) FROM sluice.fleet_decisions WHERE decision = 'halt'"), "1");
  // The fix, then the same command.
  pg->Psql(urls[2], "UPDATE items SET qty = '17' WHERE id = 17");
  auto again = fleet::Apply(inv, o);
  ASSERT_TRUE(again.ok()) << again.status().message();
  for (const auto& u : urls) {
    EXPECT_EQ(pg->Psql(u, "SELECT phase FROM sluice.migrations WHERE name = 'qty_int'"), "complete") << u;
    EXPECT_EQ(pg->Psql(u, "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' AND "
                          "table_name = 'items' AND column_name = 'qty'"),
              "integer")
        << u;
    EXPECT_EQ(pg->Psql(u, "SELECT sum(qty) FROM public.items"), "465") << u;
  }
}

}  // namespace
}  // namespace sluice::testing
