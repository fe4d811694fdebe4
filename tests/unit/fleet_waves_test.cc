// Inventory parsing and wave assignment (src/fleet/inventory.cc, waves.cc):
// pure, no database.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include "fleet/inventory.h"
#include "fleet/runner.h"
#include "fleet/waves.h"

namespace sluice::fleet {
namespace {

using ::testing::HasSubstr;

Inventory Parse(const std::string& text) {
  auto r = ParseInventory(text, "fleet.yaml", "/inv");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : Inventory{};
}

std::string ParseError(const std::string& text) {
  auto r = ParseInventory(text, "fleet.yaml", "/inv");
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

// Wave names and their databases' names: "canary=a,b early=c".
std::string Layout(const Inventory& inv) {
  auto w = AssignWaves(inv);
  if (!w.ok()) return "error: " + w.status().message();
  std::string out;
  for (const auto& wave : *w) {
    out += (out.empty() ? "" : " ") + wave.name + "=";
    for (size_t k = 0; k < wave.databases.size(); ++k) {
      out += (k ? "," : "") + inv.databases[wave.databases[k]].name;
    }
  }
  return out;
}

std::string Dbs(int n, const std::string& extra = "") {
  std::string s = "databases:\n";
  for (int i = 1; i <= n; ++i) {
    s += "  - name: d" + std::to_string(i) + "\n    url: sqlite:d" + std::to_string(i) + ".db\n";
    if (i <= 2) s += "    tags: [canary, eu]\n";
  }
  return s + extra;
}

TEST(FleetInventory, ParsesEveryKey) {
  Inventory inv = Parse(R"(databases:
  - name: shard-01
    url: postgresql://app@10.0.0.1/app
    tags: [canary, eu]
  - name: shard-02
    url: sqlite:data/s2.db
    after: [shard-01]
    schema: app
waves:
  - name: canary
    match: {tags: [canary]}
  - name: rest
parallel: 4
soak: 10m
on_failure: rollback_wave
)");
  ASSERT_EQ(inv.databases.size(), 2u);
  EXPECT_EQ(inv.databases[0].url, "postgresql://app@10.0.0.1/app");
  EXPECT_EQ(inv.databases[1].url, "sqlite:/inv/data/s2.db");  // relative to the inventory's folder
  EXPECT_EQ(inv.databases[1].after, std::vector<std::string>{"shard-01"});
  EXPECT_EQ(inv.databases[1].schema, "app");
  EXPECT_EQ(inv.parallel, 4);
  EXPECT_EQ(inv.soak_seconds, 600);
  EXPECT_EQ(inv.on_failure, OnFailure::kRollbackWave);
  EXPECT_EQ(Layout(inv), "canary=shard-01 rest=shard-02");
}

TEST(FleetInventory, RefusesUnknownKeysWithTheirLine) {
  std::string e = ParseError("databases:\n  - name: a\n    url: sqlite:a.db\n    tag: [x]\nparalel: 2\n");
  EXPECT_THAT(e, HasSubstr("fleet.yaml:4:5: error: unknown key 'tag' in a database"));
  EXPECT_THAT(e, HasSubstr("fleet.yaml:5:1: error: unknown key 'paralel' in the inventory"));
}

TEST(FleetInventory, RefusesPasswordsBadValuesAndDuplicates) {
  EXPECT_THAT(ParseError("databases:\n  - name: a\n    url: postgresql://app:hunter2@h/db\n"),
              HasSubstr("holds a password"));
  EXPECT_THAT(ParseError("databases:\n  - name: a\n    url: host=h password=x dbname=d\n"),
              HasSubstr("holds a password"));
  EXPECT_THAT(ParseError(Dbs(1, "soak: soon\n")), HasSubstr("`soak` must be a duration"));
  EXPECT_THAT(ParseError(Dbs(1, "parallel: 0\n")), HasSubstr("`parallel` must be an integer from 1 to 256"));
  EXPECT_THAT(ParseError(Dbs(1, "on_failure: shrug\n")), HasSubstr("halt or rollback_wave"));
  EXPECT_THAT(ParseError("databases:\n  - name: a\n    url: sqlite:a.db\n  - name: a\n    url: sqlite:b.db\n"),
              HasSubstr("fleet.yaml:4: error: database 'a' is listed twice"));
  EXPECT_THAT(ParseError("databases:\n  - name: a\n    url: sqlite:a.db\n    after: [zz]\n"),
              HasSubstr("'zz', which is not in the inventory"));
  EXPECT_THAT(ParseError(Dbs(2, "waves:\n  - name: w\n    percent: 150\n")),
              HasSubstr("above 0 and at most 100"));
  EXPECT_THAT(ParseError("databases: [\n"), HasSubstr("not valid YAML"));
  EXPECT_EQ(RedactUrl("postgresql://app:hunter2@h/db"), "postgresql://app:***@h/db");
}

TEST(FleetWaves, MatchPercentAndTheRest) {
  Inventory inv = Parse(Dbs(10, R"(waves:
  - name: canary
    match: {tags: [canary]}
  - name: early
    percent: 25
  - name: rest
)"));
  // 25% of 10 rounds up to 3, taken from those no earlier wave took.
  EXPECT_EQ(Layout(inv), "canary=d1,d2 early=d3,d4,d5 rest=d6,d7,d8,d9,d10");
}

TEST(FleetWaves, MatchNeedsEveryTag) {
  Inventory inv = Parse(R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [eu]}
  - {name: b, url: "sqlite:b.db", tags: [eu, canary]}
waves:
  - name: canary
    match: {tags: [canary, eu]}
  - name: rest
)");
  EXPECT_EQ(Layout(inv), "canary=b rest=a");
}

TEST(FleetWaves, NoWavesIsOneWave) { EXPECT_EQ(Layout(Parse(Dbs(3))), "all=d1,d2,d3"); }

TEST(FleetWaves, EmptyWavesAndLeftoversAreErrors) {
  EXPECT_THAT(Layout(Parse(Dbs(3, "waves:\n  - name: c\n    match: {tags: [apac]}\n  - name: rest\n"))),
              HasSubstr("fleet.yaml:11: error: wave 'c' would be empty"));
  EXPECT_THAT(Layout(Parse(Dbs(3, "waves:\n  - name: rest\n  - name: more\n"))), HasSubstr("wave 'more' would be empty"));
  EXPECT_THAT(Layout(Parse(Dbs(4, "waves:\n  - name: c\n    match: {tags: [canary]}\n"))),
              HasSubstr("database(s) d3, d4 are in no wave"));
}

TEST(FleetWaves, AfterOrdersInsideAWaveAndRefusesCyclesAndLaterWaves) {
  Inventory inv = Parse(R"(databases:
  - {name: a, url: "sqlite:a.db", after: [c]}
  - {name: b, url: "sqlite:b.db"}
  - {name: c, url: "sqlite:c.db", after: [b]}
)");
  EXPECT_EQ(Layout(inv), "all=b,c,a");
  Inventory cyc = Parse(R"(databases:
  - {name: a, url: "sqlite:a.db", after: [c]}
  - {name: b, url: "sqlite:b.db", after: [a]}
  - {name: c, url: "sqlite:c.db", after: [b]}
)");
  EXPECT_THAT(Layout(cyc), HasSubstr("`after:` forms a cycle: a -> c -> b -> a"));
  Inventory later = Parse(R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary], after: [b]}
  - {name: b, url: "sqlite:b.db"}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: rest}
)");
  EXPECT_THAT(Layout(later), HasSubstr("database 'a' (wave canary) is `after` 'b', which is in the later wave rest"));
}

TEST(FleetInventory, Durations) {
  EXPECT_EQ(ParseDuration("90s"), 90);
  EXPECT_EQ(ParseDuration("1.5h"), 5400);
  EXPECT_EQ(ParseDuration("0"), 0);
  EXPECT_FALSE(ParseDuration("-1s"));
  EXPECT_FALSE(ParseDuration("10 minutes"));
}

// The fleet's ETA: unknown without a measured rate; else the rows left
// (databases not started: the mean size of the started ones) over the
// per-database rate, `parallel` at a time, plus the soaks left.
FleetState Fleet(std::vector<DatabaseState> dbs, std::vector<std::string> wave_states) {
  FleetState st;
  st.databases = std::move(dbs);
  st.total = static_cast<int>(st.databases.size());
  for (const auto& d : st.databases) st.completed += d.phase == "complete";
  for (size_t i = 0; i < wave_states.size(); ++i) {
    WaveState w;
    w.name = "w" + std::to_string(i);
    w.state = wave_states[i];
    st.waves.push_back(w);
  }
  return st;
}

TEST(FleetEta, UnknownWithoutARateThenFromTheMeasuredRate) {
  DatabaseState canary{.name = "c", .phase = "active", .live = "new", .backfill = "done", .rows_done = 1000,
                       .rows_total = 1000};
  DatabaseState running{.name = "r", .phase = "active", .live = "old", .backfill = "running", .rows_done = 500,
                        .rows_total = 1000};
  DatabaseState fresh{.name = "n"};
  // Nothing running: no rate, so no ETA, and it says why.
  FleetState st = Fleet({canary, running, fresh, fresh, fresh}, {"soaked", "running", "pending"});
  EstimateEta(&st, 2, 60);
  EXPECT_EQ(st.eta_seconds, -1);
  EXPECT_THAT(st.eta_basis, ::testing::HasSubstr("no measured rate yet"));
  // Running at 100 rows/s: 500 + 3 x 1000 rows left, 2 at a time, and two
  // soaks of 60 s left.
  st.databases[1].rows_per_second = 100;
  EstimateEta(&st, 2, 60);
  EXPECT_DOUBLE_EQ(st.eta_seconds, 3500.0 / 200 + 120);
  EXPECT_THAT(st.eta_basis, ::testing::HasSubstr("3 database(s) not started, assumed 1000 rows each"));
  EXPECT_THAT(st.eta_basis, ::testing::HasSubstr("not counted"));
  // Everything completed: nothing left.
  DatabaseState done{.name = "d", .phase = "complete"};
  st = Fleet({done, done}, {"completed"});
  EstimateEta(&st, 2, 60);
  EXPECT_EQ(st.eta_seconds, 0);
}

}  // namespace
}  // namespace sluice::fleet
