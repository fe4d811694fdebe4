// `sluice rehearse` on PostgreSQL without --target (issue 13, item 2),
// through the real binary on a throwaway cluster: the lifecycle runs on a
// scratch database beside the source, the source stays identical (catalog
// fingerprint and a checksum of every row, by SQL), the scratch database is
// gone afterwards (also after a failed rehearsal), leftovers of a killed
// rehearsal are dropped (also after a real SIGKILL), SIGTERM stops it and
// drops the copy, a copy being made is not dropped by a concurrent cleanup,
// a role without CREATEDB is refused before anything is made, --sample
// copies about that fraction of the touched table (and the runbook and the
// report say so), and inheritance children and partitions are copied.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "db/adapter.h"
#include "support/plans.h"
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPlan = kAddEmailLowerPlan;

constexpr const char* kScratchLike = "datname LIKE 'sluice\\_rehearsal\\_%'";

// One cluster for the binary, without autovacuum: no worker may connect to
// a source while the TEMPLATE test needs it to have no other session.
PgCluster* Pg() {
  PgCluster::SetExtraConfig("autovacuum = off");
  return PgCluster::Shared();
}

struct Source {
  PgCluster* pg = Pg();
  TempDir dir;
  std::string url, plan;

  Source() {
    url = pg->CreateDatabase("rehearse_src");
    pg->Psql(url,
             "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);"
             "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),"
             "  parent_id bigint REFERENCES orders(id), email text NOT NULL, amount int NOT NULL);"
             "CREATE TABLE unrelated (id int PRIMARY KEY, v text);"
             "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g;"
             "INSERT INTO orders (customer_id, email, amount) SELECT 1 + g % 50, 'U' || g || '@X.COM', g "
             "  FROM generate_series(1, 3000) g;"
             "UPDATE orders SET parent_id = id - 1 WHERE id % 100 = 0;"
             "INSERT INTO unrelated SELECT g, 'v' FROM generate_series(1, 100) g;");
    plan = dir.Write("001_lower.yaml", kPlan);
  }
  // The catalog (without sluice's state schema) and every row.
  std::string Snapshot() const {
    std::string out = CatalogFingerprint(url);
    for (const char* t : {"customers", "orders", "unrelated"}) {
      out += "\n" + std::string(t) + " " +
             pg->Psql(url, std::string("SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY "
                                       "t::text), '')) FROM ") + t + " t");
    }
    out += "\nsequence " + pg->Psql(url, "SELECT last_value FROM orders_id_seq");
    return out;
  }
  std::string StateTables() const {
    return pg->Psql(url, "SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), '') FROM pg_class c JOIN "
                         "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sluice' AND c.relkind = 'r'");
  }
  std::string Scratch() const {
    return pg->Psql("postgres", std::string("SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM "
                                            "pg_database WHERE ") + kScratchLike);
  }
  CommandResult Rehearse(std::vector<std::string> args, const std::string& db = "") {
    args.insert(args.begin(), {"--db", db.empty() ? url : db, "--actor", "tester", "rehearse"});
    return RunSluice(args);
  }
};

// kPlan with a paced backfill (3000 rows at 300 rows/s: about 10 s), so
// that the backfill is in flight when the test signals the process.
const std::string kSlowPlan = std::string(kPlan) + R"(
backfill:
  chunk_rows: 20
  chunk_min_rows: 1
  chunk_max_rows: 20
  max_rows_per_second: 300
)";

// `sluice rehearse` of kSlowPlan on a fresh source, run in the background
// and sent `sig` once its backfill runs on the copy (the copy exists and
// its chunks table has a row). `copy` is the copy's name ("" when the
// backfill was not seen; the signal is sent either way).
struct SignalledRehearsal {
  Source s;
  TempDir io;
  std::string before, copy;
  int code = -1;

  explicit SignalledRehearsal(int sig)
      : SignalledRehearsal(sig, "003_slow.yaml", kSlowPlan, [](SignalledRehearsal& r) {
          std::string n, err;
          return !r.copy.empty() &&
                 r.s.pg->TryPsql(r.s.pg->Url(r.copy), "SELECT count(*) FROM sluice.chunks", &n, &err) && n != "0";
        }) {}
  // The same with `plan_text` as `plan_name`, sent `sig` once `ready`
  // holds (polled, with `copy` read just before each poll). `setup` runs
  // on the source before its snapshot is taken.
  SignalledRehearsal(int sig, const std::string& plan_name, const std::string& plan_text,
                     const std::function<bool(SignalledRehearsal&)>& ready,
                     const std::function<void(Source&)>& setup = {}) {
    if (setup) setup(s);
    const std::string plan = s.dir.Write(plan_name, plan_text);
    before = s.Snapshot();
    const int pid = SpawnSluice({"--db", s.url, "--actor", "tester", "rehearse", plan, "--json"}, io.path());
    if (pid <= 0) return;
    const bool seen = Eventually([&] {
      copy = s.Scratch();
      return ready(*this);
    });
    if (!seen) copy.clear();
    ::kill(pid, sig);
    code = WaitProcess(pid);
  }
  std::string Out() const { return ReadFile(io.File("spawn.out")); }
  std::string Err() const { return ReadFile(io.File("spawn.err")); }
};

TEST(RehearsePg, SigtermDuringTheBackfillDropsTheCopyAndLeavesTheSourceIdentical) {
  SLUICE_ASSERT_PG_OK(Pg());
  SignalledRehearsal r(SIGTERM);
  ASSERT_FALSE(r.copy.empty()) << "the backfill was not seen on a copy: " << r.Err();
  // Interrupted: exit 130, recorded as failed in the backfill, copy dropped.
  EXPECT_EQ(r.code, 130) << r.Out() << r.Err();
  auto j = nlohmann::json::parse(r.Out(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.Out();
  EXPECT_EQ(j["passed"], false);
  ASSERT_EQ(j["phases"].size(), 2u) << j;
  EXPECT_EQ(j["phases"][1]["phase"], "backfill");
  EXPECT_NE(j["phases"][1]["error"], "");
  EXPECT_EQ(r.s.pg->Psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = '" + r.copy + "'"), "0");
  EXPECT_EQ(r.s.Scratch(), "");
  EXPECT_EQ(r.s.Snapshot(), r.before);
  EXPECT_EQ(r.s.pg->Psql(r.s.url, "SELECT passed FROM sluice.rehearsals WHERE migration = '003_slow'"), "0");
}

TEST(RehearsePg, SigtermDuringTheCopysCopyStatementExits130AndDropsTheHalfMadeCopy) {
  // (a) A source whose orders take a while to COPY (400k more rows) and an
  // idle application session on it (TEMPLATE is impossible); (b) SIGTERM
  // once the copy's COPY statement runs on the source; (c) the statement
  // is cancelled at once: exit 130, said as interrupted during the copy
  // (no phase ran, nothing recorded), the half-made copy dropped, the
  // source identical.
  SLUICE_ASSERT_PG_OK(Pg());
  std::unique_ptr<db::Connection> app;
  auto copying = [](SignalledRehearsal& r) {
    if (r.copy.empty()) return false;
    return r.s.pg->Psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + r.copy +
                                        "' AND state = 'active' AND query LIKE 'COPY %'") != "0";
  };
  SignalledRehearsal r(SIGTERM, "001_lower.yaml", kPlan, copying, [&](Source& s) {
    s.pg->Psql(s.url, "INSERT INTO orders (customer_id, email, amount) SELECT 1 + g % 50, 'U' || g || '@X.COM', g "
                      "FROM generate_series(1, 400000) g");
    auto adapter = db::OpenAdapter(s.url);
    ASSERT_TRUE(adapter.ok()) << adapter.status().message();
    auto conn = (*adapter)->Connect();
    ASSERT_TRUE(conn.ok()) << conn.status().message();
    app = std::move(*conn);
  });
  ASSERT_FALSE(r.copy.empty()) << "the copy's COPY was not seen: " << r.Err();
  EXPECT_EQ(r.code, 130) << r.Out() << r.Err();
  EXPECT_THAT(r.Err(), HasSubstr("the rehearsal was interrupted during the copy"));
  EXPECT_EQ(r.Out(), "");  // no report: no phase ran
  EXPECT_EQ(r.s.Scratch(), "");
  EXPECT_EQ(r.s.Snapshot(), r.before);
  EXPECT_EQ(r.s.StateTables(), "");
}

// A copy made in-process through the adapter with `cancel`, in a thread.
struct CancellableCopy {
  std::atomic<bool> cancel{false};
  Result<db::ScratchCopy> made = Internal("not run");
  std::thread thread;

  CancellableCopy(db::Connection& own, const std::string& label) {
    thread = std::thread([this, &own, label] { made = own.CreateScratchCopy({label, {"orders"}, 0, &cancel}); });
  }
  ~CancellableCopy() { Join(); }
  void Join() {
    if (thread.joinable()) thread.join();
  }
};

TEST(RehearsePg, ACopyCancelledBeforeItStartsMakesNothing) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  const std::string before = s.Snapshot();
  auto adapter = db::OpenAdapter(s.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto own = (*adapter)->Connect();
  ASSERT_TRUE(own.ok()) << own.status().message();
  std::atomic<bool> cancel{true};
  auto made = (*own)->CreateScratchCopy({"001_lower", {"orders"}, 0, &cancel});
  EXPECT_THAT(made.status(), StatusIs(StatusCode::kCancelled, db::kScratchCopyCancelled));
  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.Snapshot(), before);
}

TEST(RehearsePg, ACancelWhilePgDumpWaitsStopsItAndDropsTheHalfMadeCopy) {
  // (a) An application session holds orders locked, so the copy (made by
  // pg_dump + COPY, TEMPLATE being impossible) waits in pg_dump for the
  // lock, with its database already created; (b) the flag is set; (c)
  // pg_dump is stopped, kCancelled, the copy dropped, no pg_dump session
  // left, the source identical once the lock is released.
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  const std::string before = s.Snapshot();
  auto adapter = db::OpenAdapter(s.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto app = (*adapter)->Connect();
  ASSERT_TRUE(app.ok()) << app.status().message();
  SLUICE_ASSERT_OK((*app)->Begin());
  SLUICE_ASSERT_OK((*app)->Exec("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"));
  auto own = (*adapter)->Connect();
  ASSERT_TRUE(own.ok()) << own.status().message();

  CancellableCopy c(**own, "001_lower");
  const std::string waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = '" +
                              s.pg->Psql(s.url, "SELECT current_database()") + "' AND wait_event_type = 'Lock'";
  const bool blocked = Eventually([&] { return !s.Scratch().empty() && s.pg->Psql("postgres", waiting) != "0"; });
  const std::string copy = s.Scratch();
  c.cancel = true;
  c.Join();
  ASSERT_TRUE(blocked) << "pg_dump was not seen waiting for the lock; copy: " << copy;
  EXPECT_THAT(c.made.status(), StatusIs(StatusCode::kCancelled, db::kScratchCopyCancelled));
  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.pg->Psql("postgres", waiting), "0");
  SLUICE_ASSERT_OK((*app)->Rollback());
  EXPECT_EQ(s.Snapshot(), before);
}

TEST(RehearsePg, TheCopyOfARehearsalKilledBySigkillIsDroppedByCleanup) {
  SLUICE_ASSERT_PG_OK(Pg());
  SignalledRehearsal r(SIGKILL);
  ASSERT_FALSE(r.copy.empty()) << "the backfill was not seen on a copy: " << r.Err();
  EXPECT_EQ(r.code, 128 + SIGKILL);
  // Left behind; its sessions end once the server sees the client gone.
  EXPECT_EQ(r.s.Scratch(), r.copy);
  EXPECT_TRUE(Eventually([&] {
    return r.s.pg->Psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + r.copy + "'") ==
           "0";
  }));
  auto cleanup = r.s.Rehearse({"--cleanup"});
  ASSERT_EQ(cleanup.exit_code, 0) << cleanup.out << cleanup.err;
  EXPECT_THAT(cleanup.err, HasSubstr("dropped " + r.copy));
  EXPECT_EQ(r.s.Scratch(), "");
  EXPECT_EQ(r.s.Snapshot(), r.before);
}

TEST(RehearsePg, WithAnotherSessionOnTheSourceTheTouchedTablesAreCopied) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  // An application session on the source: TEMPLATE is impossible.
  auto adapter = db::OpenAdapter(s.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto app = (*adapter)->Connect();
  ASSERT_TRUE(app.ok()) << app.status().message();
  const std::string before = s.Snapshot();
  ASSERT_EQ(s.StateTables(), "");

  auto r = s.Rehearse({s.plan, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["passed"], true) << j;
  ASSERT_EQ(j["phases"].size(), 10u) << j;
  for (const auto& p : j["phases"]) EXPECT_EQ(p["error"], "") << p;
  EXPECT_GE(j["rollback_seconds"].get<double>(), 0);
  EXPECT_EQ(j["rows"], 3000);
  EXPECT_GT(j["writer"]["writes"].get<int64_t>(), 0);
  EXPECT_EQ(j["writer"]["errors"], 0) << j["writer"];
  const auto& copy = j["copy"];
  EXPECT_THAT(copy["method"].get<std::string>(), HasSubstr("touched tables"));
  EXPECT_THAT(copy["notes"].dump(), HasSubstr("other session(s) use the database"));
  EXPECT_GE(copy["seconds"].get<double>(), 0);
  std::map<std::string, std::pair<int64_t, bool>> tables;
  for (const auto& t : copy["tables"]) tables[t["table"]] = {t["rows"], t["sampled"]};
  EXPECT_EQ(tables["orders"], std::make_pair(int64_t{3000}, false));
  EXPECT_EQ(tables["customers"], std::make_pair(int64_t{50}, false));  // referenced by orders
  EXPECT_EQ(tables.count("unrelated"), 0u);
  EXPECT_EQ(j["kept_copy"], "");

  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.Snapshot(), before);
  // The one write to the source, as on SQLite: the record.
  EXPECT_EQ(s.StateTables(), "rehearsals");
  EXPECT_EQ(s.pg->Psql(s.url, "SELECT passed FROM sluice.rehearsals WHERE migration = '001_lower'"), "1");
}

TEST(RehearsePg, WithNobodyElseOnTheSourceItIsCopiedByTemplate) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  const std::string before = s.Snapshot();
  // The test's own sessions are gone before sluice looks.
  const std::string idle = "SELECT count(*) FROM pg_stat_activity WHERE datname = '" +
                           s.url.substr(s.url.rfind('/') + 1) + "'";
  for (int i = 0; i < 500 && s.pg->Psql("postgres", idle) != "0"; ++i) usleep(10000);
  auto r = s.Rehearse({s.plan, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["copy"]["method"], "CREATE DATABASE ... TEMPLATE") << j["copy"];
  EXPECT_EQ(j["copy"]["tables"].size(), 0u);
  EXPECT_EQ(j["passed"], true);
  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.Snapshot(), before);
}

TEST(RehearsePg, AFailedRehearsalLeavesTheSourceIdenticalAndNoCopy) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  std::string plan = s.dir.Write("002_small.yaml", std::string(kPlan) + R"(
verify:
  invariants:
    - {name: small_amounts, table: orders, check: amount < 1500}
)");
  const std::string before = s.Snapshot();
  auto r = s.Rehearse({plan, "--json", "--sample", "0.5"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["passed"], false);
  ASSERT_EQ(j["phases"].size(), 3u) << j;
  EXPECT_THAT(j["phases"][2]["error"].get<std::string>(), HasSubstr("verification failed"));
  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.Snapshot(), before);
  EXPECT_EQ(s.pg->Psql(s.url, "SELECT passed FROM sluice.rehearsals WHERE migration = '002_small'"), "0");
}

TEST(RehearsePg, LeftoversOfAKilledRehearsalAreDropped) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  s.pg->Psql("postgres", "CREATE DATABASE sluice_rehearsal_001_lower_deadbeef");
  s.pg->Psql("postgres", "CREATE DATABASE sluice_rehearsal_001_lower_inuse");
  s.pg->Psql("postgres", "CREATE DATABASE not_sluice_rehearsal_x");
  s.pg->Psql("postgres", "CREATE DATABASE sluice_rehearsal_001_lower_making");
  // A copy being made (CREATE DATABASE done, its session not open yet):
  // its maker holds the advisory lock (20831, hashtext(name)) on the
  // maintenance database.
  auto maint = db::OpenAdapter(s.pg->Url("postgres"));
  ASSERT_TRUE(maint.ok());
  auto maker = (*maint)->Connect();
  ASSERT_TRUE(maker.ok()) << maker.status().message();
  SLUICE_ASSERT_OK(
      (*maker)->Query("SELECT pg_advisory_lock(20831, hashtext('sluice_rehearsal_001_lower_making'))").status());
  // A running rehearsal's copy has a session on it: left alone.
  auto adapter = db::OpenAdapter(s.pg->Url("sluice_rehearsal_001_lower_inuse"));
  ASSERT_TRUE(adapter.ok());
  auto in_use = (*adapter)->Connect();
  ASSERT_TRUE(in_use.ok()) << in_use.status().message();

  // Bad input changes nothing, not even the leftovers.
  auto bad = s.Rehearse({s.plan, "--sample", "1.5"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("--sample must be a fraction"));
  EXPECT_THAT(s.Scratch(), HasSubstr("sluice_rehearsal_001_lower_deadbeef"));

  auto r = s.Rehearse({"--cleanup"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("dropped sluice_rehearsal_001_lower_deadbeef"));
  EXPECT_THAT(r.err, HasSubstr("left sluice_rehearsal_001_lower_inuse alone"));
  EXPECT_THAT(r.err, HasSubstr("left sluice_rehearsal_001_lower_making alone: a rehearsal is making it now"));
  EXPECT_EQ(s.Scratch(), "sluice_rehearsal_001_lower_inuse,sluice_rehearsal_001_lower_making");
  EXPECT_EQ(s.pg->Psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'not_sluice_rehearsal_x'"), "1");
  in_use->reset();
  maker->reset();

  // The next rehearsal drops what is left, and says so.
  auto again = s.Rehearse({s.plan});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.err, HasSubstr("dropped sluice_rehearsal_001_lower_inuse"));
  EXPECT_THAT(again.err, HasSubstr("dropped sluice_rehearsal_001_lower_making"));
  EXPECT_EQ(s.Scratch(), "");
  s.pg->Psql("postgres", "DROP DATABASE not_sluice_rehearsal_x");
}

TEST(RehearsePg, ARoleWithoutCreatedbIsRefusedAndNothingIsMade) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  const std::string owner = s.pg->CreateOwnerRole(s.url);
  ASSERT_FALSE(owner.empty());
  const std::string before = s.Snapshot();
  auto r = s.Rehearse({s.plan}, owner);
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("CREATEDB"));
  EXPECT_THAT(r.err, HasSubstr("--target"));
  EXPECT_EQ(s.Scratch(), "");
  EXPECT_EQ(s.Snapshot(), before);
  EXPECT_EQ(s.pg->Psql(s.url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'"), "0");
}

TEST(RehearsePg, ASampleCopiesAboutThatFractionOfTheTouchedTable) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  const std::string before = s.Snapshot();
  auto r = s.Rehearse({s.plan, "--json", "--sample", "0.1", "--keep"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["passed"], true) << j;
  EXPECT_EQ(j["copy"]["sample"], 0.1);
  // orders refers to itself: that key cannot hold in a sample.
  EXPECT_EQ(j["copy"]["dropped_constraints"], nlohmann::json::array({"orders.orders_parent_id_fkey"}));
  const std::string kept = s.Scratch();
  ASSERT_EQ(kept.rfind("sluice_rehearsal_001_lower_", 0), 0u) << kept;
  EXPECT_THAT(j["kept_copy"].get<std::string>(), HasSubstr(kept));
  const std::string copy = s.pg->Url(kept);
  const int orders = std::stoi(s.pg->Psql(copy, "SELECT count(*) FROM orders"));
  EXPECT_GE(orders, 200);
  EXPECT_LE(orders, 400);
  EXPECT_EQ(s.pg->Psql(copy, "SELECT count(*) FROM customers"), "50");
  EXPECT_EQ(s.pg->Psql(copy, "SELECT count(*) FROM unrelated"), "0");
  EXPECT_EQ(s.pg->Psql(copy, "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_parent_id_fkey'"), "0");
  EXPECT_EQ(s.pg->Psql(copy, "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'"), "1");
  EXPECT_EQ(s.pg->Psql(copy, "SELECT phase FROM sluice.migrations WHERE name = '001_lower'"), "complete");
  EXPECT_EQ(s.pg->Psql(copy, "SELECT count(*) FROM orders WHERE email_lower IS DISTINCT FROM lower(email)"), "0");
  EXPECT_EQ(s.Snapshot(), before);
  // A kept copy is not a leftover.
  auto cleanup = s.Rehearse({"--cleanup"});
  EXPECT_EQ(cleanup.exit_code, 0) << cleanup.err;
  EXPECT_EQ(s.Scratch(), kept);
  s.pg->Psql("postgres", "DROP DATABASE " + kept);

  // The runbook says the rehearsal ran on a sample: its checklist item is
  // not ticked, and the copy is described.
  auto rb = RunSluice({"--db", s.url, "runbook", s.plan});
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  const std::string volume = LineStartingWith(rb.out, "- [ ] Rehearsal at realistic volume: ");
  ASSERT_FALSE(volume.empty()) << rb.out;
  EXPECT_THAT(volume, HasSubstr("passed, but on a sample"));
  EXPECT_THAT(volume, HasSubstr("Copy: schema (pg_dump) + a sample of the touched tables (COPY)"));
  EXPECT_THAT(volume, HasSubstr("a 10% sample of the touched tables, NOT at full volume"));
  EXPECT_THAT(volume, HasSubstr("`orders` " + std::to_string(orders) + " rows (sampled)"));
  EXPECT_THAT(volume, HasSubstr("`customers` 50 rows,"));
  EXPECT_THAT(volume, HasSubstr("Foreign keys left out: orders.orders_parent_id_fkey."));
  EXPECT_EQ(LineStartingWith(rb.out, "- [x] Rehearsal at realistic volume"), "");
  EXPECT_THAT(rb.out, HasSubstr(", a sample: not at the source's volume)."));
}

TEST(RehearsePg, InheritanceChildrenAndPartitionsAreCopiedWithTheirParent) {
  SLUICE_ASSERT_PG_OK(Pg());
  Source s;
  s.pg->Psql(s.url,
             "CREATE TABLE events (id int PRIMARY KEY, email text NOT NULL);"
             "CREATE TABLE events_archive (LIKE events INCLUDING ALL) INHERITS (events);"
             "CREATE TABLE measures (id int PRIMARY KEY, email text NOT NULL) PARTITION BY RANGE (id);"
             "CREATE TABLE measures_low PARTITION OF measures FOR VALUES FROM (0) TO (100);"
             "CREATE TABLE measures_high PARTITION OF measures FOR VALUES FROM (100) TO (1000);"
             "INSERT INTO events SELECT g, 'E' || g FROM generate_series(1, 40) g;"
             "INSERT INTO events_archive SELECT g, 'A' || g FROM generate_series(101, 160) g;"
             "INSERT INTO measures SELECT g, 'M' || g FROM generate_series(1, 300) g;");
  const std::string plan = s.dir.Write("004_children.yaml", R"(
operations:
  - create_index:
      name: events_email_idx
      table: events
      columns: [email]
  - add_column:
      table: measures
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
)");
  // An application session on the source: the tables are copied, not the
  // whole database by TEMPLATE.
  auto adapter = db::OpenAdapter(s.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto app = (*adapter)->Connect();
  ASSERT_TRUE(app.ok()) << app.status().message();
  auto r = s.Rehearse({plan, "--json", "--keep"});
  // sluice changes only the indexes of an inheritance parent (a column
  // change would reach the children); the partitioned table's partitions
  // are backfilled through it.
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_THAT(j["copy"]["method"].get<std::string>(), HasSubstr("touched tables"));
  EXPECT_EQ(j["rows"], 40 + 60 + 300) << j;  // the parent's rows with its child's
  ASSERT_GE(j["phases"].size(), 2u) << j;
  EXPECT_EQ(j["phases"][1]["phase"], "backfill");
  EXPECT_EQ(j["phases"][1]["rows"], 300) << j;
  const std::string kept = s.Scratch();
  ASSERT_EQ(kept.rfind("sluice_rehearsal_004_children_", 0), 0u) << kept;
  const std::string copy = s.pg->Url(kept);
  for (const char* t : {"ONLY events", "events_archive", "measures_low", "measures_high"}) {
    const std::string count = std::string("SELECT count(*) FROM ") + t;
    EXPECT_EQ(s.pg->Psql(copy, count), s.pg->Psql(s.url, count)) << t;
  }
  s.pg->Psql("postgres", "DROP DATABASE " + kept);
}

}  // namespace
}  // namespace sluice::testing
