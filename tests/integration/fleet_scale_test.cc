// Fleets at scale (issue 15, docs/fleets.md): 20 PostgreSQL databases on two
// throwaway clusters (PgCluster::Shared and PgCluster::Second), each a cheap
// copy of a template database, and 2 SQLite files in the last wave. A canary wave, then a wave holding a
// database whose data makes the plan's `up` fail: the rollout halts there,
// the ledger says so, and `fleet rollback` rolls the fleet back; after the
// data is fixed the same `fleet apply` finishes. Writers insert rows into
// two databases through the old schema while the first run is under way.
// Every assertion on a database is by SQL against it.
#include <fmt/core.h>

#include <cstdio>
#include <map>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "fleet/inventory.h"
#include "fleet/runner.h"
#include "support/fleet_support.h"
#include "support/plans.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kRows = 20;       // per database: small tables keep it fast
constexpr int kPerCluster = 10;  // 20 databases in all
constexpr int kParallel = 4;

// One database of the fleet: PostgreSQL (cluster set) or a SQLite file.
struct Db {
  std::string name, url;
  PgCluster* cluster = nullptr;
  std::string Sql(const std::string& sql) const {
    if (cluster) return cluster->Psql(url, sql);
    auto m = OpenSqlite(url.substr(std::string("sqlite:").size()), false);
    return m ? QueryValue(*m, sql) : "<cannot open>";
  }
  bool pg() const { return cluster != nullptr; }
  // The migration's phase, or "" when sluice never started on it.
  std::string Phase() const {
    if (pg()) {
      if (Sql("SELECT to_regclass('sluice.migrations') IS NULL") == "t") return "";
      return Sql("SELECT phase FROM sluice.migrations WHERE name = 'qty_int'");
    }
    if (Sql("SELECT count(*) FROM sqlite_schema WHERE name = '_sluice_migrations'") == "0") return "";
    return Sql("SELECT phase FROM _sluice_migrations WHERE name = 'qty_int'");
  }
};

// The template (items with kRows rows, qty = id as text) on `pg`, then
// `count` databases copied from it (CREATE DATABASE ... TEMPLATE: a file
// copy, no SQL replayed).
std::vector<Db> MakeDatabases(PgCluster* pg, const std::string& prefix, int count) {
  std::string tmpl_url = pg->CreateDatabase(prefix + "_tmpl");
  EXPECT_FALSE(tmpl_url.empty());
  pg->Psql(tmpl_url, fmt::format("CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL);"
                                 "INSERT INTO items SELECT g, g::text FROM generate_series(1, {}) g;",
                                 kRows));
  std::string tmpl = tmpl_url.substr(tmpl_url.rfind('/') + 1);
  std::vector<Db> out;
  for (int i = 1; i <= count; ++i) {
    std::string name = fmt::format("{}{:02}", prefix, i);
    pg->Psql("postgres", "CREATE DATABASE " + name + " TEMPLATE " + tmpl);
    out.push_back(Db{name, pg->Url(name), pg});
  }
  return out;
}

// A SQLite file with the same items table and rows as the template.
Db SqliteDb(const TempDir& dir, const std::string& name) {
  std::string path = dir.File(name + ".db");
  auto m = OpenSqlite(path, true);
  EXPECT_NE(m, nullptr);
  if (m) {
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    if (s.ok()) {
      EXPECT_TRUE((*s)->Exec(fmt::format("CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL); WITH "
                                         "RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {}) "
                                         "INSERT INTO items SELECT i, CAST(i AS TEXT) FROM g",
                                         kRows))
                      .ok());
    }
  }
  return Db{name, "sqlite:" + path, nullptr};
}

// items' columns and types: "id integer,qty text".
std::string Columns(const Db& d) {
  if (!d.pg()) return d.Sql("SELECT group_concat(name || ' ' || lower(type), ',') FROM pragma_table_info('items')");
  return d.Sql("SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position) FROM "
               "information_schema.columns WHERE table_schema = 'public' AND table_name = 'items'");
}

// Whether sluice never touched the database: no sluice schema, no version
// schema (SQLite: no state table, no view, no trigger), items as it was.
void ExpectUntouched(const Db& d) {
  SCOPED_TRACE(d.name);
  EXPECT_EQ(d.Sql(d.pg() ? "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sluice%' OR nspname LIKE "
                           "'public\\_%'"
                         : "SELECT count(*) FROM sqlite_schema WHERE name <> 'items' AND name NOT LIKE 'sqlite%'"),
            "0");
  EXPECT_EQ(Columns(d), "id integer,qty text");
}

TEST(FleetScale, TwentyDatabasesOnTwoClustersHaltRollbackThenFinish) {
  PgCluster* pa = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pa);
  PgCluster* pb = PgCluster::Second();
  SLUICE_ASSERT_PG_OK(pb);
  ASSERT_NE(pa->port(), pb->port());
  std::vector<Db> a = MakeDatabases(pa, "fa", kPerCluster), b = MakeDatabases(pb, "fb", kPerCluster);
  // Interleaved, so every wave spans both clusters: fa01 fb01 fa02 fb02 ...
  std::vector<Db> dbs;
  for (int i = 0; i < kPerCluster; ++i) dbs.push_back(a[i]), dbs.push_back(b[i]);
  TempDir dir;
  for (const char* name : {"sq01", "sq02"}) dbs.push_back(SqliteDb(dir, name));  // the last wave
  std::map<std::string, const Db*> by_name;
  for (const auto& d : dbs) by_name[d.name] = &d;
  // Waves: canary = fa01, fb01; second = 20% of 22 rounded up = the next 5
  // in order (fa02 fb02 fa03 fb03 fa04); rest = the other 15, the two
  // SQLite files last.
  const Db& bad = *by_name["fb03"];
  bad.Sql("UPDATE items SET qty = 'lots' WHERE id = 7");
  std::string yaml = "databases:\n";
  for (const auto& d : dbs) {
    yaml += fmt::format("  - {{name: {}, url: \"{}\"{}}}\n", d.name, d.url,
                        d.name == "fa01" || d.name == "fb01" ? ", tags: [canary]" : "");
  }
  yaml += fmt::format("waves:\n  - {{name: canary, match: {{tags: [canary]}}}}\n  - {{name: second, percent: 20}}\n"
                      "  - {{name: rest}}\nparallel: {}\nsoak: 5m\non_failure: halt\n",
                      kParallel);
  auto inv = fleet::LoadInventory(dir.Write("fleet.yaml", yaml));
  ASSERT_TRUE(inv.ok()) << inv.status().message();

  FakeClock clock;
  clock.set_auto_advance(true);  // the soaks pass at once
  fleet::RunOptions o;
  o.plan_path = dir.Write("qty_int.yaml", QtyToIntegerPlan("fail", ""));
  o.db_options.actor = "fleet-scale-test";
  o.db_options.lock_retry_budget_ms = 20000;
  o.clock = &clock;
  std::string ledger = pa->CreateDatabase("ledger");
  o.ledger_url = ledger;
  // Concurrency, observed; fb04 opens the last wave.
  ConcurrencyProbe probe("fb04");
  o.on_database = [&](const std::string& db, const std::string& pass, bool begin) { probe(db, pass, begin); };


  // Writers: the old application inserts rows (qty = id as text) into a
  // canary database and a second-wave one while the first run works.
  std::atomic<bool> stop{false};
  std::map<std::string, std::atomic<int>> inserted;
  std::vector<std::thread> writers;
  for (const char* name : {"fa01", "fa02"}) {
    inserted[name] = 0;
    writers.emplace_back([&, name] {
      const Db& d = *by_name[name];
      std::string value, err;
      for (int id = 1001; !stop.load(); ++id) {
        if (d.cluster->TryPsql(d.url, fmt::format("SET lock_timeout = '2s'; INSERT INTO public.items VALUES ({0}, "
                                                  "'{0}')",
                                                  id),
                               &value, &err)) {
          ++inserted.at(name);
        } else {
          --id;  // not inserted (a lock wait gave up): the same id again
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // an application's pace (a connection each)
      }
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  auto since = [&t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto r = fleet::Apply(*inv, o);
  const double halted_at = since();
  stop = true;
  for (auto& t : writers) t.join();

  // 1. The halt: in the second wave, on fb03, with the reason.
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("fleet halted in wave second"));
  EXPECT_THAT(r.status().message(), HasSubstr("fb03: database fb03"));
  EXPECT_THAT(r.status().message(), HasSubstr("later waves (rest) were not touched"));
  EXPECT_GT(inserted["fa01"].load(), 0);
  // The canary is switched on both clusters: the new version reads
  // integers, the writers' rows included (the dual-write converted them).
  for (const char* name : {"fa01", "fb01"}) {
    const Db& d = *by_name[name];
    SCOPED_TRACE(name);
    EXPECT_EQ(d.Sql("SELECT phase || ' ' || live FROM sluice.migrations WHERE name = 'qty_int'"), "active new");
    EXPECT_EQ(d.Sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                    "'public_qty_int.items'::regclass AND attname = 'qty'"),
              "integer");
    EXPECT_EQ(d.Sql("SELECT count(*) FROM public_qty_int.items"),
              std::to_string(kRows + (d.name == "fa01" ? inserted["fa01"].load() : 0)));
    EXPECT_EQ(d.Sql("SELECT count(*) FROM public_qty_int.items WHERE qty IS DISTINCT FROM id"), "0");
  }
  // No database of the last wave was touched (fb04 onwards, and fa05 ...).
  for (size_t i = 7; i < dbs.size(); ++i) ExpectUntouched(dbs[i]);
  // The failing database: its start failed, nothing of it was left behind.
  EXPECT_EQ(Columns(bad), "id integer,qty text");
  // The ledger shows it: the waves' states, the failed step, one halt.
  EXPECT_EQ(pa->Psql(ledger, "SELECT string_agg(wave || '=' || state, ',' ORDER BY wave) FROM sluice.fleet_waves "
                             "WHERE migration = 'qty_int'"),
            "canary=soaked,second=failed");
  EXPECT_EQ(pa->Psql(ledger, "SELECT step FROM sluice.fleet_databases WHERE db = 'fb03'"), "failed: start");
  EXPECT_THAT(pa->Psql(ledger, "SELECT error FROM sluice.fleet_databases WHERE db = 'fb03'"), HasSubstr("fb03"));
  EXPECT_EQ(pa->Psql(ledger, "SELECT count(*) FROM sluice.fleet_decisions WHERE decision = 'halt' AND subject = "
                             "'wave second'"),
            "1");
  EXPECT_EQ(pa->Psql(ledger, "SELECT count(*) FROM sluice.fleet_databases WHERE wave = 'rest'"), "0");

  // 2. fleet rollback: every database that started is rolled back; the
  // tables are as before, the writers' rows kept.
  const double rollback_from = since();
  SLUICE_ASSERT_OK(fleet::RollbackFleet(*inv, o));
  const double rollback_took = since() - rollback_from;
  for (const auto& d : dbs) {
    SCOPED_TRACE(d.name);
    std::string phase = d.Phase();
    if (!phase.empty()) {
      EXPECT_EQ(phase, "rolled_back");
    }
    EXPECT_EQ(Columns(d), "id integer,qty text");
    EXPECT_EQ(d.Sql(d.pg() ? "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.items'::regclass AND NOT "
                             "tgisinternal"
                           : "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"),
              "0");
    int extra = inserted.count(d.name) ? inserted[d.name].load() : 0;
    EXPECT_EQ(d.Sql("SELECT count(*) FROM items"), std::to_string(kRows + extra));
    EXPECT_EQ(d.Sql("SELECT count(*) FROM items WHERE qty <> CAST(id AS text)"), d.name == "fb03" ? "1" : "0");
  }
  EXPECT_EQ(by_name["fa01"]->Sql("SELECT phase FROM sluice.migrations WHERE name = 'qty_int'"), "rolled_back");
  for (size_t i = 7; i < dbs.size(); ++i) ExpectUntouched(dbs[i]);  // rollback touched no database never started
  EXPECT_EQ(pa->Psql(ledger, "SELECT count(*) FROM sluice.fleet_decisions WHERE decision = 'rollback'"), "1");

  // 3. The data fixed, the same apply finishes the fleet, every value right.
  bad.Sql("UPDATE items SET qty = '7' WHERE id = 7");
  const double again_from = since();
  auto again = fleet::Apply(*inv, o);
  const double again_took = since() - again_from;
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->finished);
  for (const auto& d : dbs) {
    SCOPED_TRACE(d.name);
    EXPECT_EQ(d.Phase(), "complete");
    if (d.pg()) {
      EXPECT_EQ(d.Sql("SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' AND "
                      "table_name = 'items' AND column_name = 'qty'"),
                "integer");
    } else {
      EXPECT_EQ(Columns(d), "id integer,qty integer");
    }
    int extra = inserted.count(d.name) ? inserted[d.name].load() : 0;
    EXPECT_EQ(d.Sql("SELECT count(*) FROM items"), std::to_string(kRows + extra));
    EXPECT_EQ(d.Sql(d.pg() ? "SELECT count(*) FROM items WHERE qty IS DISTINCT FROM id"
                           : "SELECT count(*) FROM items WHERE qty IS NOT id OR typeof(qty) <> 'integer'"),
              "0");
  }
  EXPECT_EQ(pa->Psql(ledger, "SELECT string_agg(state, ',') FROM (SELECT DISTINCT state FROM sluice.fleet_waves "
                             "WHERE migration = 'qty_int') s"),
            "completed");
  // parallel bounds the databases worked on at once, and was reached.
  EXPECT_LE(probe.max(), kParallel);
  EXPECT_GE(probe.max(), 2);
  EXPECT_LE(again->max_concurrent, kParallel);
  std::printf("fleet of %zu databases (2 PostgreSQL clusters, 2 SQLite files): first apply (halts) %.1f s, rollback %.1f s, second apply "
              "(finishes) %.1f s\n",
              dbs.size(), halted_at, rollback_took, again_took);
}

}  // namespace
}  // namespace sluice::testing
