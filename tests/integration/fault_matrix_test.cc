// The fault matrix (issue 9's acceptance): every lifecycle phase × every
// injected fault, on SQLite and PostgreSQL.
//
// Phases: start, backfill, verify, switch, switch back, complete, rollback.
// Faults, injected under the engine by the fault-injecting adapter
// (src/db/fault_injection.h) around the real database:
//   error       the Nth statement of the phase fails (a plain error)
//   lost        the Nth statement finds its connection gone
//   disk-full   the Nth statement fails as the disk is full
//   stall       the Nth statement hangs until a deadline (a lock or
//               statement timeout), then fails as timed out
//   commit      the Nth COMMIT loses its connection, having committed on
//               the server, or before reaching it
//   signal      (backfill) the throttle's signal queries hang for a while
// and SIGKILL of the real `sluice` process at random moments. Each phase
// gets statement faults at statements spread over the whole phase (the
// kinds taking turns), both COMMIT losses at COMMITs spread the same way,
// and a few SIGKILLs: a bounded number of cells per phase, so the matrix
// stays a test (SQLite about a minute) rather than a soak.
//
// After each faulted run the database must equal the state before the
// phase or the state after it — schema, data, and the migration's recorded
// phase — or be in one of the intermediate phases a rerun resumes from
// (starting, completing, rolling_back: PostgreSQL's index builds cannot be
// inside a transaction), or in one of two documented resting states of
// PostgreSQL: a start that sluice rolled back by itself (as before, on
// record as rolled_back) and a complete whose repeatable VALIDATE
// CONSTRAINT group committed (as before, constraints validated); and
// rerunning the verb, without faults, must
// finish it: the database then equals the state after the phase. Every
// cell is a real run against a real database; the cells are counted and
// printed.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "db/adapter.h"
#include "db/fault_injection.h"
#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using db::FaultPlan;

// --- the migration every cell runs ----------------------------------------

constexpr const char* kSqliteSetup = R"(
CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT NOT NULL);
CREATE INDEX orders_amount_idx ON orders (amount);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
INSERT INTO orders SELECT i, 'u' || i || '@x.com', printf('%d.%02d', i % 97, i % 100) FROM g;
)";

constexpr const char* kPgSetup = R"(
CREATE TABLE orders (id integer PRIMARY KEY, email text NOT NULL, amount text NOT NULL);
CREATE INDEX orders_amount_idx ON orders (amount);
INSERT INTO orders SELECT i, 'u' || i || '@x.com', (i % 97) || '.' || lpad((i % 100)::text, 2, '0')
FROM generate_series(1, 3000) i;
)";

// Text amounts become integer cents (a copy, a backfill, an index carried
// over, NOT NULL), and a column is added.
constexpr const char* kSqlitePlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      name: cents
      type: INTEGER
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%d.%02d', cents / 100, cents % 100)
  - add_column:
      table: orders
      column:
        name: note
        type: TEXT
        nullable: true
backfill:
  chunk_rows: 400
  chunk_max_rows: 400
)";

constexpr const char* kPgPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      name: cents
      type: integer
      up: round(amount::numeric * 100)::integer
      down: (cents / 100) || '.' || lpad((cents % 100)::text, 2, '0')
  - add_column:
      table: orders
      column:
        name: note
        type: text
        nullable: true
backfill:
  chunk_rows: 400
  chunk_max_rows: 400
)";

// --- databases ---------------------------------------------------------------

// Copies of one database, and what "the same state" means for it.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::string plan() const = 0;
  // A new database with the setup applied; its URL.
  virtual std::string Fresh() = 0;
  // A copy of `url` (no connection may be open on it); its URL.
  virtual std::string Copy(const std::string& url) = 0;
  // Schema (without sluice's state tables), data of the migrated table, and
  // the migration's phase, live version and backfill state.
  virtual std::string State(const std::string& url) = 0;
  // sluice's recorded phase of the migration ("none" when there is none).
  virtual std::string Phase(const std::string& url) = 0;
};

class SqliteBackend : public Backend {
 public:
  std::string name() const override { return "sqlite"; }
  std::string plan() const override { return kSqlitePlan; }
  std::string Fresh() override {
    std::string path = dir_.File("db" + std::to_string(n_++) + ".db");
    auto m = OpenSqlite(path);
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    if (s.ok()) {
      EXPECT_TRUE((*s)->Exec(kSqliteSetup).ok());
    }
    return "sqlite:" + path;
  }
  std::string Copy(const std::string& url) override {
    std::string path = dir_.File("db" + std::to_string(n_++) + ".db");
    fs::copy_file(url.substr(7), path);
    EXPECT_FALSE(fs::exists(url.substr(7) + "-journal")) << "copied a database with a hot journal";
    return "sqlite:" + path;
  }
  std::string State(const std::string& url) override {
    auto m = OpenSqlite(url.substr(7), false);
    if (!m) return "unopenable";
    std::string s = QueryValue(*m, "SELECT group_concat(type || ' ' || name || ': ' || coalesce(sql, ''), char(10)) FROM "
                                   "(SELECT * FROM sqlite_schema WHERE NOT (name LIKE '\\_sluice\\_%' ESCAPE '\\' AND "
                                   "type = 'table') AND name NOT LIKE 'sqlite\\_autoindex\\_\\_sluice%' ESCAPE '\\' "
                                   "ORDER BY type, name)");
    s += "\ndata " + QueryValue(*m, "SELECT sluice_hash(group_concat(r, '|')) FROM (SELECT quote(id) || ',' || "
                                    "quote(email) || ',' || " + DataColumns(*m) + " AS r FROM orders ORDER BY id)");
    s += "\n" + Record(*m);
    return s;
  }
  std::string Phase(const std::string& url) override {
    auto m = OpenSqlite(url.substr(7), false);
    if (QueryValue(*m, "SELECT count(*) FROM sqlite_schema WHERE name = '_sluice_migrations'") == "0") return "none";
    std::string p = QueryValue(*m, "SELECT phase FROM _sluice_migrations WHERE name = 'cents'");
    return p.empty() ? "none" : p;
  }

 private:
  // Every column of orders but sluice's write flag, quoted.
  static std::string DataColumns(Migrator& m) {
    std::string cols;
    for (const auto& row : QueryRows(m, "SELECT name FROM pragma_table_info('orders') WHERE name NOT IN ('id', "
                                        "'email') ORDER BY cid")) {
      cols += (cols.empty() ? "" : " || ',' || ") + std::string("quote(\"") + row[0] + "\")";
    }
    return cols.empty() ? "''" : cols;
  }
  static std::string Record(Migrator& m) {
    if (QueryValue(m, "SELECT count(*) FROM sqlite_schema WHERE name = '_sluice_migrations'") == "0") return "none";
    return QueryValue(m, "SELECT coalesce((SELECT phase || ' live=' || live || ' backfill=' || backfill FROM "
                         "_sluice_migrations WHERE name = 'cents'), 'none') || ' verified=' || (SELECT count(*) "
                         "FROM _sluice_verifications WHERE passed = 1)");
  }
  TempDir dir_;
  int n_ = 0;
};

class PgBackend : public Backend {
 public:
  std::string name() const override { return "postgres"; }
  std::string plan() const override { return kPgPlan; }
  std::string Fresh() override {
    std::string url = Pg()->CreateDatabase("fm");
    if (!url.empty()) Pg()->Psql(url, kPgSetup);
    return url;
  }
  std::string Copy(const std::string& url) override {
    const std::string src = url.substr(url.rfind('/') + 1);
    static int copies = 0;  // across backends: database names are cluster-wide
    const std::string dst = "fmc" + std::to_string(getpid()) + "_" + std::to_string(copies++);
    Pg()->Psql(Pg()->Url("postgres"), "CREATE DATABASE " + dst + " TEMPLATE " + src);
    return Pg()->Url(dst);
  }
  std::string State(const std::string& url) override {
    std::string s = Pg()->Psql(url, kPgFingerprintSql);
    s += "\ndata " + Pg()->Psql(url, "SELECT md5(string_agg(to_jsonb(o)::text, '|' ORDER BY id)) FROM (SELECT * "
                                     "FROM orders) o");
    if (Pg()->Psql(url, "SELECT to_regclass('sluice.migrations') IS NULL") == "t") return s + "\nnone";
    return s + "\n" + Pg()->Psql(url, "SELECT coalesce((SELECT phase || ' live=' || live || ' backfill=' || "
                                      "backfill FROM sluice.migrations WHERE name = 'cents'), 'none') || ' "
                                      "verified=' || (SELECT count(*) FROM sluice.verifications WHERE passed = 1)");
  }
  std::string Phase(const std::string& url) override {
    if (Pg()->Psql(url, "SELECT to_regclass('sluice.migrations') IS NULL") == "t") return "none";
    std::string p = Pg()->Psql(url, "SELECT phase FROM sluice.migrations WHERE name = 'cents'");
    return p.empty() ? "none" : p;
  }
  static PgCluster* Pg() { return PgCluster::Shared(); }
};

// --- phases --------------------------------------------------------------------

struct Phase {
  std::string name;  // also the CLI verb (with args)
  std::vector<std::string> cli;
  std::function<Status(Migrator&, const std::string& plan_path)> run;
};

Status AsStatus(const Result<BackfillSummary>& r) { return r.status(); }

std::vector<Phase> Phases() {
  return {
      {"start", {"start", "PLAN"}, [](Migrator& m, const std::string& p) { return m.Start(p); }},
      {"backfill", {"backfill", "cents"}, [](Migrator& m, const std::string&) { return AsStatus(m.Backfill("cents", {})); }},
      {"verify", {"verify", "cents"},
       [](Migrator& m, const std::string&) -> Status {
         auto v = m.Verify("cents");
         if (!v.ok()) return v.status();
         return v->passed ? Status::Ok() : FailedPrecondition("verification failed: " + v->json);
       }},
      {"switch", {"switch", "cents"}, [](Migrator& m, const std::string&) { return m.Switch("cents", false); }},
      {"switch-back", {"switch", "cents", "--back"}, [](Migrator& m, const std::string&) { return m.Switch("cents", true); }},
      {"complete", {"complete", "cents"}, [](Migrator& m, const std::string&) { return m.Complete("cents"); }},
      {"rollback", {"rollback", "cents"}, [](Migrator& m, const std::string&) { return m.Rollback("cents"); }},
  };
}

// The phases that lead to `phase`, in order (complete and rollback both
// come after the switch; switch back after the switch).
std::vector<std::string> Before(const std::string& phase) {
  if (phase == "start") return {};
  if (phase == "backfill") return {"start"};
  if (phase == "verify") return {"start", "backfill"};
  if (phase == "switch") return {"start", "backfill", "verify"};
  return {"start", "backfill", "verify", "switch"};
}

// Short lock waits: a fault that leaves a lock behind shows up quickly.
Options FaultMatrixOptions() {
  Options o;
  o.actor = "fault-matrix";
  o.lock_timeout_ms = 200;
  o.lock_retry_budget_ms = 3000;
  return o;
}

const Phase& Find(const std::string& name) {
  static const std::vector<Phase> all = Phases();
  for (const auto& p : all) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no phase " << name;
  return all[0];
}

// --- the matrix ----------------------------------------------------------------

// One phase's cells on one backend.
class PhaseMatrix {
 public:
  PhaseMatrix(Backend& b, std::string phase, std::string plan_path)
      : b_(b), phase_(std::move(phase)), plan_path_(std::move(plan_path)) {}

  // Builds the database before the phase and learns the state after it and
  // the statements the phase runs.
  void Prepare() {
    base_ = b_.Fresh();
    ASSERT_FALSE(base_.empty());
    {
      auto m = OpenUrl(base_, FaultMatrixOptions());
      ASSERT_TRUE(m);
      for (const auto& p : Before(phase_)) {
        Status s = Find(p).run(*m, plan_path_);
        ASSERT_TRUE(s.ok()) << "preparing " << phase_ << ": " << p << ": " << s.message();
      }
    }
    before_ = b_.State(base_);
    const std::string probe = b_.Copy(base_);
    auto plan = std::make_shared<FaultPlan>();
    plan->RecordSql(true);
    {
      db::TEST_SetAdapterWrapper(db::FaultInjectingAdapter::Wrap(plan));
      auto m = OpenUrl(probe, FaultMatrixOptions());
      ASSERT_TRUE(m);
      Status s = Find(phase_).run(*m, plan_path_);
      db::TEST_SetAdapterWrapper({});
      ASSERT_TRUE(s.ok()) << phase_ << " without faults: " << s.message();
    }
    statements_ = plan->recorded();
    after_ = b_.State(probe);
    ASSERT_NE(before_, after_) << phase_ << " changed nothing visible";
    for (const auto& sql : statements_) commits_ += sql == "COMMIT" ? 1 : 0;
  }

  // Runs the phase on a copy with `inject` applied to a fresh plan, then
  // checks the outcome and that a clean rerun finishes it.
  void Cell(const std::string& what, const std::function<void(FaultPlan&)>& inject) {
    SCOPED_TRACE(b_.name() + " " + phase_ + " " + what);
    ++cells_;
    const std::string url = b_.Copy(base_);
    auto plan = std::make_shared<FaultPlan>();
    inject(*plan);
    Status faulted;
    {
      db::TEST_SetAdapterWrapper(db::FaultInjectingAdapter::Wrap(plan));
      auto m = OpenUrl(url, FaultMatrixOptions());
      ASSERT_TRUE(m);
      faulted = Find(phase_).run(*m, plan_path_);
      plan->ReleaseStalls();
      db::TEST_SetAdapterWrapper({});
    }
    CheckAndFinish(url, faulted.ok() ? "ok" : faulted.ToString());
  }

  // After a fault: before, after or resumable; then a clean rerun ends in
  // `after`.
  void CheckAndFinish(const std::string& url, const std::string& outcome) {
    const std::string now = b_.State(url);
    const std::string phase = b_.Phase(url);
    const bool intermediate = phase == "starting" || phase == "completing" || phase == "rolling_back";
    // The backfill commits chunk by chunk: any prefix is a legitimate
    // resting state, as long as the schema and the recorded phase did not
    // change.
    const bool partial_backfill = phase_ == "backfill" && Schema(now) == Schema(before_);
    // A PostgreSQL start that failed after its main transaction committed is
    // rolled back by sluice itself: as before, on record as rolled back.
    const bool self_rolled_back =
        phase_ == "start" && phase == "rolled_back" && WithoutRecord(now) == WithoutRecord(before_);
    // complete's prepare group (VALIDATE CONSTRAINT, each in its own short
    // transaction, repeatable) may have committed before the fault: as
    // before, with constraints validated.
    const bool validated_only = phase_ == "complete" && Validated(now) == Validated(before_);
    EXPECT_TRUE(now == before_ || now == after_ || intermediate || partial_backfill || self_rolled_back ||
                validated_only)
        << "outcome: " << outcome << "\nstate is neither before nor after the phase (recorded phase " << phase
        << ")\n--- now\n" << now << "\n--- before\n" << before_ << "\n--- after\n" << after_;
    if (now != after_) {
      auto m = OpenUrl(url, FaultMatrixOptions());
      ASSERT_TRUE(m);
      Status s = Find(phase_).run(*m, plan_path_);
      EXPECT_TRUE(s.ok()) << "rerun after (" << outcome << "): " << s.message();
      EXPECT_EQ(b_.State(url), after_) << "rerun after (" << outcome << ") did not finish the phase";
    }
  }

  // Statement faults at `cells` statements spread evenly over the phase
  // (the first and the last included), the fault kinds taking turns so that
  // each kind lands at statements all over the phase; and both kinds of
  // lost COMMIT at up to `commits` COMMITs spread the same way. (Every
  // statement × every kind took 4.5 minutes for SQLite's start and
  // backfill alone: too long for the suite.)
  void RunStatementFaults(int64_t cells, int64_t commits) {
    const int64_t n = static_cast<int64_t>(statements_.size());
    for (const int64_t i : Spread(n, cells)) {
      const std::string at = "#" + std::to_string(i) + " (" + statements_[static_cast<size_t>(i - 1)].substr(0, 60) + ")";
      switch (kind_++ % 4) {
        case 0: Cell("error at " + at, [&](FaultPlan& p) { p.FailStatement("", i, InvalidArgument("injected error")); }); break;
        case 1: Cell("lost connection at " + at, [&](FaultPlan& p) { p.FailStatement("", i, db::ConnectionLostError()); }); break;
        case 2: Cell("disk full at " + at, [&](FaultPlan& p) { p.FailStatement("", i, db::DiskFullError(*dialect_)); }); break;
        default: Cell("stall at " + at, [&](FaultPlan& p) { p.Stall("", std::chrono::milliseconds(300), i, false); }); break;
      }
    }
    for (const int64_t c : Spread(commits_, commits)) {
      Cell("commit #" + std::to_string(c) + " lost after committing",
           [&](FaultPlan& p) { p.LoseConnectionInCommit(FaultPlan::CommitLoss::kAfterCommit, c); });
      Cell("commit #" + std::to_string(c) + " lost before committing",
           [&](FaultPlan& p) { p.LoseConnectionInCommit(FaultPlan::CommitLoss::kBeforeCommit, c); });
    }
  }

  // Up to `k` of 1..n, evenly spaced, 1 and n included.
  static std::vector<int64_t> Spread(int64_t n, int64_t k) {
    std::vector<int64_t> out;
    if (n <= 0 || k <= 0) return out;
    if (k >= n) {
      for (int64_t i = 1; i <= n; ++i) out.push_back(i);
      return out;
    }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = 1 + (k == 1 ? 0 : j * (n - 1) / (k - 1));
      if (out.empty() || out.back() != i) out.push_back(i);
    }
    return out;
  }

  // SIGKILL of the real process at `kills` random moments of the phase.
  void RunKills(int kills, unsigned seed, const TempDir& dir) {
    // How long the phase takes, to spread the kills over it.
    const std::string timing = b_.Copy(base_);
    auto t0 = std::chrono::steady_clock::now();
    CommandResult r = RunSluice(Cli(timing, dir));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto took = std::chrono::steady_clock::now() - t0;
    std::mt19937 rng(seed);
    for (int k = 0; k < kills; ++k) {
      const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(took) *
                         std::uniform_real_distribution<double>(0.0, 1.1)(rng);
      SCOPED_TRACE("SIGKILL after " + std::to_string(delay.count()) + " us");
      ++cells_;
      const std::string url = b_.Copy(base_);
      TempDir io;
      int pid = SpawnSluice(Cli(url, dir), io.path());
      ASSERT_GT(pid, 0);
      std::this_thread::sleep_for(delay);  // the random moment itself is the input, not a wait for a condition
      kill(pid, SIGKILL);
      WaitProcess(pid);
      CheckAndFinish(url, "SIGKILL");
    }
  }

  void set_dialect(const db::Dialect* d) { dialect_ = d; }
  int cells() const { return cells_; }
  const std::vector<std::string>& statements() const { return statements_; }

 private:
  static std::string Schema(const std::string& state) { return state.substr(0, state.find("\ndata ")); }
  // Schema and data without the migration's record (the last line).
  static std::string WithoutRecord(const std::string& state) { return state.substr(0, state.rfind('\n')); }
  // The state with every NOT VALID constraint validated (PostgreSQL's
  // fingerprint spelling).
  // Under dual_write on_error: record (the default) the NOT NULL guard of a
  // column becoming NOT NULL is added by complete's prepare group (start
  // cannot: recorded rows may hold NULL until resolved), so a fault after
  // that group may leave it added and validated too.
  static std::string Validated(std::string state) {
    const std::string from = " NOT VALID valid=false", to = " valid=true";
    for (size_t at; (at = state.find(from)) != std::string::npos;) state.replace(at, from.size(), to);
    std::string out;
    size_t begin = 0;
    while (begin < state.size()) {
      size_t end = state.find('\n', begin);
      end = end == std::string::npos ? state.size() : end + 1;
      const std::string line = state.substr(begin, end - begin);
      if (!(line.rfind("con ", 0) == 0 && line.find("._sluice_nn_") != std::string::npos)) out += line;
      begin = end;
    }
    return out;
  }
  std::vector<std::string> Cli(const std::string& url, const TempDir&) {
    std::vector<std::string> a = {"--db", url, "--actor", "fault-matrix", "--lock-timeout-ms", "200"};
    for (const auto& w : Find(phase_).cli) a.push_back(w == "PLAN" ? plan_path_ : w);
    return a;
  }

  Backend& b_;
  std::string phase_, plan_path_;
  std::string base_, before_, after_;
  std::vector<std::string> statements_;
  int64_t commits_ = 0;
  int cells_ = 0;
  int kind_ = 0;  // the next statement fault kind
  const db::Dialect* dialect_ = nullptr;
};

// The dialect of a backend (for errors shaped like its own).
std::unique_ptr<db::Adapter> AdapterFor(const std::string& url) {
  auto a = db::OpenAdapter(url);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? std::move(*a) : nullptr;
}

void RunMatrix(Backend& b, int64_t cells, int64_t commits, int kills, int* total) {
  TempDir dir;
  const std::string plan_path = dir.Write("cents.yaml", b.plan());
  auto adapter = AdapterFor(b.Fresh());
  ASSERT_TRUE(adapter);
  for (const auto& p : Phases()) {
    PhaseMatrix pm(b, p.name, plan_path);
    pm.set_dialect(&adapter->dialect());
    pm.Prepare();
    if (::testing::Test::HasFatalFailure()) return;
    pm.RunStatementFaults(cells, commits);
    pm.RunKills(kills, 1234u + static_cast<unsigned>(*total), dir);
    std::printf("[ matrix   ] %s %-11s %3zu statements, %3d cells\n", b.name().c_str(), p.name.c_str(),
                pm.statements().size(), pm.cells());
    std::fflush(stdout);
    *total += pm.cells();
  }
  std::printf("[ matrix   ] %s: %d cells\n", b.name().c_str(), *total);
}

TEST(FaultMatrix, SqliteEveryPhaseEveryFault) {
  SqliteBackend b;
  int total = 0;
  RunMatrix(b, /*cells=*/24, /*commits=*/4, /*kills=*/3, &total);
}

TEST(FaultMatrix, PostgresEveryPhaseEveryFault) {
  SLUICE_ASSERT_PG_OK(PgBackend::Pg());
  PgBackend b;
  int total = 0;
  // Each PostgreSQL cell copies a database (CREATE DATABASE ... TEMPLATE):
  // fewer cells per phase.
  RunMatrix(b, /*cells=*/12, /*commits=*/3, /*kills=*/2, &total);
}

// The backfill's throttle signals hang for a while: the backfill does not
// stall its workers forever, and once the signals answer again it
// finishes with every row right.
TEST(FaultMatrix, HungSignalDuringTheBackfill) {
  for (int which = 0; which < 2; ++which) {
    std::unique_ptr<Backend> b;
    if (which == 0) {
      b = std::make_unique<SqliteBackend>();
    } else {
      SLUICE_ASSERT_PG_OK(PgBackend::Pg());
      b = std::make_unique<PgBackend>();
    }
    SCOPED_TRACE(b->name());
    TempDir dir;
    const std::string plan_path = dir.Write("cents.yaml", b->plan());
    PhaseMatrix pm(*b, "backfill", plan_path);
    pm.Prepare();
    // The default latency probe reads the table's first key; no other
    // statement has ORDER BY right after the table's name.
    const std::string probe = "\"orders\" ORDER BY \"id\" LIMIT 1";
    pm.Cell("signal hangs 1.5 s", [&](FaultPlan& p) { p.Stall(probe, std::chrono::milliseconds(1500), 1, false); });
    pm.Cell("signal hangs three times, then fails", [&](FaultPlan& p) {
      for (int n = 1; n <= 3; ++n) p.Stall(probe, std::chrono::milliseconds(700), n, false);
      p.FailStatement(probe, 4, InvalidArgument("probe failed"));
    });
  }
}

}  // namespace
}  // namespace sluice::testing
