// The lifecycle engine: implements sluice::Migrator on top of the compiler,
// the adapter interface, the backfill and verification.
//
// Every phase transition is recorded in the state tables in the same
// transaction as the DDL it performs (SQLite), or step by step with each
// step's completion recorded (databases without transactional DDL for all
// steps, e.g. CREATE INDEX CONCURRENTLY): a crash leaves either the old phase
// or the new one, or a phase that the same command resumes.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>
#include <ctime>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backfill/backfill.h"
#include "backfill/control.h"
#include "common/clock.h"
#include "common/sql_text.h"
#include "db/adapter.h"
#include "engine/compile.h"
#include "engine/schema_json.h"
#include "engine/state.h"
#include "gates/gates.h"
#include "plan/parser.h"
#include "sluice/sluice.h"
#include "verify/verify.h"

namespace sluice {

using engine::MigrationRecord;
using engine::StateStore;

struct Migrator::Impl {
  Options options;
  std::unique_ptr<db::Adapter> adapter;

  Result<std::unique_ptr<db::Connection>> Connect() {
    if (!adapter) return InvalidArgument("no database given: pass --db URL or set SLUICE_DB");
    return adapter->Connect();
  }
};

namespace {

std::string DefaultActor() {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(user ? user : "unknown") + "@" + host;
}

// Throttle defaults: generous enough never to slow a healthy database, tight
// enough to back off when the application starts to suffer.
constexpr int64_t kDefaultProbeTargetMs = 50;
constexpr double kDefaultMaxReplicaLagSeconds = 10;
// Any session waiting on the backfill's locks slows it down.
constexpr int64_t kDefaultMaxLockWaiters = 0;

// Everything known about one migration: its record, plan and compiled form.
struct Loaded {
  MigrationRecord rec;
  plan::Plan plan;
  engine::CompiledMigration compiled;
};

Result<Loaded> LoadMigration(StateStore& store, const db::Dialect& d, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  Loaded l;
  l.rec = *rec;
  SLUICE_ASSIGN_OR_RETURN(l.plan, plan::ParsePlanText(rec->plan_text, rec->plan_file));
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, engine::SchemaFromJson(rec->schema_before));
  SLUICE_ASSIGN_OR_RETURN(l.compiled, engine::Compile(l.plan, schema, d, {rec->version, rec->previous_version}));
  return l;
}

// One lifecycle phase to run (see ExecutePhase).
struct PhaseRun {
  std::string migration;
  std::string phase;  // start | complete | rollback | switch
  std::vector<db::Step> steps;
  std::vector<std::string> tables;  // physical tables, for lock messages
  // Runs first inside the main transaction (e.g. create state tables and
  // insert the migration's record).
  std::function<Status()> before;
  // Records the phase change inside a transaction. `finished` is false when
  // statements that must run outside a transaction are still to come.
  std::function<Status(bool finished)> record;
};

std::string FirstLine(const std::string& sql) {
  std::string l = sql.substr(0, sql.find('\n'));
  return l.size() > 160 ? l.substr(0, 157) + "..." : l;
}

// Retries `fn` while it fails for want of a lock (lock_timeout, deadlock,
// serialization failure), with jittered exponential backoff, for at most the
// retry budget; then fails naming the sessions that hold the locks.
Status RetryLocks(db::Connection& conn, const Options& o, const std::vector<std::string>& tables,
                  const std::function<Status()>& fn) {
  Clock* clock = Clock::Real();
  const int64_t deadline = clock->NowMicros() + o.lock_retry_budget_ms * 1000;
  unsigned seed = static_cast<unsigned>(clock->NowMicros());
  for (int attempt = 0;; ++attempt) {
    Status s = fn();
    if (s.ok() || s.code() != StatusCode::kAborted) return s;
    if (clock->NowMicros() >= deadline) {
      std::vector<std::string> qualified;
      for (const auto& t : tables) qualified.push_back(conn.dialect().Table(t));
      std::string holders = conn.DescribeLockHolders(qualified);
      return FailedPrecondition("could not get the locks it needs within " +
                                std::to_string(o.lock_retry_budget_ms / 1000) + "s (" + std::to_string(attempt + 1) +
                                " attempts, each waiting at most " + std::to_string(o.lock_timeout_ms) + " ms): " +
                                s.message() +
                                (holders.empty() ? "" : "; held by: " + holders) +
                                ". Nothing was changed by this attempt; rerun when the blocking sessions are gone");
    }
    int64_t backoff = std::min<int64_t>(2'000'000, 50'000LL << std::min(attempt, 6));
    seed = seed * 1103515245u + 12345u;
    backoff = backoff / 2 + static_cast<int64_t>(seed % static_cast<unsigned>(backoff / 2 + 1));
    clock->SleepMicros(backoff);
  }
}

// Runs a phase. SQLite: one transaction for everything. Databases where that
// is impossible: prepare statements first (each its own transaction), then
// one main transaction holding every catalog change and the phase record
// (retried as a whole while locks are busy), then statements that must run
// outside a transaction. Completion of the main transaction is recorded, so
// a rerun after a crash resumes after it.
Status ExecutePhase(db::Connection& conn, StateStore& store, const Options& o, const PhaseRun& run) {
  const db::Dialect& d = conn.dialect();
  struct Item {
    db::Statement stmt;
    std::string origin;
  };
  std::vector<Item> prepare, main, outside;
  for (const auto& step : run.steps) {
    for (auto& st : d.Render(step)) {
      Item it{st, step.origin};
      if (d.transactional_ddl()) {
        main.push_back(std::move(it));
      } else if (st.outside_transaction) {
        outside.push_back(std::move(it));
      } else if (st.prepare) {
        prepare.push_back(std::move(it));
      } else {
        main.push_back(std::move(it));
      }
    }
  }
  auto exec = [&](const Item& it) -> Status {
    Status s = conn.Execute(it.stmt);
    return s.ok() ? s : s.WithContext(it.origin + ": " + FirstLine(it.stmt.sql));
  };
  const std::string timeout = d.LockTimeoutSql(o.lock_timeout_ms);

  if (d.transactional_ddl()) {
    return db::InTransaction(conn, [&]() -> Status {
      if (run.before) SLUICE_RETURN_IF_ERROR(run.before());
      for (const auto& it : main) SLUICE_RETURN_IF_ERROR(exec(it));
      return run.record ? run.record(true) : Status::Ok();
    });
  }

  std::vector<int> done;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(done, store.DoneSteps(run.migration, run.phase));
  }
  bool main_done = std::find(done.begin(), done.end(), 0) != done.end();

  if (!main_done) {
    for (const auto& it : prepare) {
      SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
        return db::InTransaction(conn, [&]() -> Status {
          if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(timeout));
          return exec(it);
        });
      }));
    }
    SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
      return db::InTransaction(conn, [&]() -> Status {
        if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(timeout));
        if (run.before) SLUICE_RETURN_IF_ERROR(run.before());
        for (const auto& it : main) SLUICE_RETURN_IF_ERROR(exec(it));
        SLUICE_RETURN_IF_ERROR(store.MarkStep(run.migration, run.phase, 0));
        return run.record ? run.record(outside.empty()) : Status::Ok();
      });
    }));
  }
  if (outside.empty()) {
    if (main_done && run.record) return db::InTransaction(conn, [&] { return run.record(true); });
    return Status::Ok();
  }
  for (const auto& it : outside) {
    SLUICE_RETURN_IF_ERROR(RetryLocks(conn, o, run.tables, [&]() -> Status {
      if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec("SET lock_timeout = '" + std::to_string(o.lock_timeout_ms) + "ms'"));
      Status s = exec(it);
      if (!timeout.empty()) conn.Exec("RESET lock_timeout").IgnoreError();
      return s;
    }));
  }
  return db::InTransaction(conn, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(store.MarkStep(run.migration, run.phase, 1));
    return run.record ? run.record(true) : Status::Ok();
  });
}

// Checks that the plan's expressions resolve against the live schema,
// without changing anything: `up` must (the backfill would fail), `down`
// should (writes through the new version would fail).
Status CheckExpressions(db::Connection& conn, const engine::CompiledMigration& c, std::vector<std::string>* warnings) {
  const db::Dialect& d = conn.dialect();
  std::vector<std::string> errors;
  for (const auto& m : c.version.tables) {
    if (m.created) continue;
    for (const auto& f : m.forward) {
      auto r = conn.Query("SELECT " + sql::ScalarExpression(f.expr) + " FROM " + d.Table(m.physical) + " WHERE 1 = 0");
      if (!r.ok() && r.status().code() == StatusCode::kAborted) return r.status();  // lock wait: retried
      if (!r.ok()) {
        errors.push_back(f.origin + ": 'up' for " + m.physical + "." + f.target + " does not work on this database: " +
                         r.status().message());
      }
    }
    if (m.backward.empty()) continue;
    std::string row;
    for (size_t i = 0; i < m.columns.size(); ++i) {
      const auto& col = m.columns[i];
      std::string v = col.exists_before ? d.Quote(col.physical)
                                        : (col.type.empty() ? "NULL" : "CAST(NULL AS " + col.type + ")");
      row += (i ? ", " : "") + v + " AS " + d.Quote(col.logical);
    }
    for (const auto& b : m.backward) {
      auto r = conn.Query("SELECT " + sql::ScalarExpression(b.expr) + " FROM (SELECT " + row + " FROM " +
                          d.Table(m.physical) + ") AS sluice_row WHERE 1 = 0");
      if (!r.ok() && r.status().code() == StatusCode::kAborted) return r.status();
      if (!r.ok()) {
        warnings->push_back(b.origin + ": warning: 'down' for " + m.physical + "." + b.target +
                            " does not work on this database, so writes through the new version will fail: " +
                            r.status().message());
      }
    }
  }
  if (errors.empty()) return Status::Ok();
  std::string msg;
  for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
  return InvalidPlan(msg);
}

// The version the old application uses: the newest completed migration's.
Result<std::string> PreviousVersion(StateStore& store) {
  SLUICE_ASSIGN_OR_RETURN(bool exists, store.Exists());
  if (!exists) return std::string();
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::string prev;
  for (const auto& m : all) {
    if (m.phase == engine::kComplete) prev = m.version;
  }
  return prev;
}

std::vector<std::string> WarningsToStrings(const std::vector<plan::Diagnostic>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.ToString());
  return out;
}

}  // namespace

Result<std::unique_ptr<Migrator>> Migrator::Open(const Options& options) {
  std::unique_ptr<Migrator> m(new Migrator());
  m->options_ = options;
  if (m->options_.actor.empty()) m->options_.actor = DefaultActor();
  m->impl_ = std::make_unique<Impl>();
  m->impl_->options = m->options_;
  if (!options.db_url.empty() || std::getenv("PGHOST") || std::getenv("PGDATABASE")) {
    db::OpenOptions oo;
    oo.state_schema = options.state_schema;
    oo.schema = options.schema;
    oo.create = options.create_database;
    SLUICE_ASSIGN_OR_RETURN(m->impl_->adapter, db::OpenAdapter(options.db_url, oo));
  }
  return m;
}

Migrator::~Migrator() = default;

// --- lint & preview -------------------------------------------------------------

Result<LintResult> Migrator::Lint(const std::string& plan_path) {
  LintResult out;
  std::vector<plan::Diagnostic> warnings;
  auto p = plan::ParsePlanFile(plan_path, &warnings);
  out.warnings = WarningsToStrings(warnings);
  if (!p.ok()) {
    if (p.status().code() == StatusCode::kNotFound) return p.status();
    out.ok = false;
    std::string msg = p.status().message();
    size_t pos = 0;
    while (pos <= msg.size()) {
      size_t nl = msg.find('\n', pos);
      out.errors.push_back(msg.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
    return out;
  }
  if (!impl_->adapter) return out;
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  out.checked_against_database = true;
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  auto compiled = engine::Compile(*p, schema, conn->dialect(), {"", prev});
  auto split = [&](const std::string& msg) {
    size_t pos = 0;
    while (pos <= msg.size()) {
      size_t nl = msg.find('\n', pos);
      out.errors.push_back(msg.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  };
  if (!compiled.ok()) {
    out.ok = false;
    split(compiled.status().message());
    return out;
  }
  for (const auto& w : WarningsToStrings(compiled->warnings)) out.warnings.push_back(w);
  Status ex = CheckExpressions(*conn, *compiled, &out.warnings);
  if (!ex.ok()) {
    out.ok = false;
    split(ex.message());
  }
  return out;
}

Result<PlanPreview> Migrator::Preview(const std::string& plan_path) {
  std::vector<plan::Diagnostic> warnings;
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path, &warnings));
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  SLUICE_ASSIGN_OR_RETURN(auto c, engine::Compile(p, schema, conn->dialect(), {"", prev}));
  const db::Dialect& d = conn->dialect();
  PlanPreview out;
  out.migration = c.name;
  out.version = c.version.name;
  out.database = std::string(d.name());
  out.warnings = WarningsToStrings(warnings);
  for (const auto& w : WarningsToStrings(c.warnings)) out.warnings.push_back(w);
  auto render = [&](const std::string& phase, const std::vector<db::Step>& steps) {
    PhaseSql ps;
    ps.phase = phase;
    for (const auto& s : steps) {
      for (const auto& st : d.Render(s)) {
        std::string text;
        if (!st.guard_sql.empty()) text += "-- refuse if this returns a row: " + st.guard_sql + "\n";
        if (st.schema_edit) text += "-- direct schema edit; the schema cookie is bumped afterwards\n";
        if (st.outside_transaction) text += "-- runs outside a transaction\n";
        text += st.sql;
        ps.statements.push_back(text);
      }
    }
    out.phases.push_back(std::move(ps));
  };
  render("start", c.start);
  PhaseSql bf;
  bf.phase = "backfill";
  for (const auto& t : c.backfill) {
    std::string set;
    for (size_t i = 0; i < t.assignments.size(); ++i) {
      set += (i ? ", " : "") + d.Quote(t.assignments[i].target) + " = " + sql::ScalarExpression(t.assignments[i].expr);
    }
    std::string key;
    for (size_t i = 0; i < t.key.size(); ++i) key += (i ? ", " : "") + d.Quote(t.key[i]);
    bf.statements.push_back("-- per chunk, in one transaction with its checkpoint, walking (" + key +
                            ") in order up to the highest key present at the first chunk:\nUPDATE " + d.Table(t.table) +
                            " SET " + set + " WHERE " +
                            (t.skip_flag.empty() ? "" : d.Quote(t.skip_flag) + " IS NULL AND ") + "(" + key +
                            ") > (<last checkpoint>) AND (" + key + ") <= (<chunk end>)");
  }
  out.phases.push_back(std::move(bf));
  render("complete", c.complete);
  render("rollback", c.rollback);
  return out;
}

// --- start --------------------------------------------------------------------------

Status Migrator::Start(const std::string& plan_path) {
  std::vector<plan::Diagnostic> warnings;
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path, &warnings));
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  const db::Dialect& d = conn->dialect();
  StateStore store(*conn);
  // Phases that are not one transaction serialise on a named lock; SQLite's
  // single write transaction does that by itself.
  const std::string lock_name = "migration:" + p.name;
  if (!d.transactional_ddl()) {
    SLUICE_ASSIGN_OR_RETURN(db::LockAttempt lock, conn->TryLock(lock_name));
    if (!lock.acquired) {
      return FailedPrecondition("migration '" + p.name + "' is being worked on by another sluice process (" +
                                lock.holder + ")");
    }
  }
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  std::vector<MigrationRecord> all;
  std::optional<MigrationRecord> existing;
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(existing, store.Get(p.name));
    if (existing) {
      if (existing->phase == engine::kComplete) {
        return FailedPrecondition("migration '" + p.name + "' is already complete");
      }
      if (existing->in_flight() && existing->plan_text != p.text) {
        return FailedPrecondition("migration '" + p.name + "' is already " + existing->phase +
                                  " with a different plan text; roll it back before starting the changed plan");
      }
      if (existing->phase == engine::kActive || existing->phase == engine::kCompleting) {
        return Status::Ok();  // already started: rerunning converges
      }
      if (existing->phase == engine::kRollingBack) {
        return FailedPrecondition("migration '" + p.name + "' is being rolled back; rerun `sluice rollback " +
                                  p.name + "` first");
      }
    }
    SLUICE_ASSIGN_OR_RETURN(all, store.List());
  }

  MigrationRecord rec;
  engine::CompiledMigration c;
  if (existing && existing->phase == engine::kStarting) {
    // Resuming an interrupted start: the catalog changes committed, so
    // recompile from the snapshot taken before them.
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, d, p.name));
    rec = l.rec;
    c = std::move(l.compiled);
  } else {
    // Reading the catalog and checking the expressions touch the tables
    // (PostgreSQL's pg_get_expr locks them): under the same lock timeout and
    // retry budget as the phase itself, so a session holding a conflicting
    // lock makes start fail naming it instead of waiting forever.
    const bool timeout = !d.LockTimeoutSql(impl_->options.lock_timeout_ms).empty();
    auto bounded = [&](const std::vector<std::string>& tables, const std::function<Status()>& fn) -> Status {
      return RetryLocks(*conn, impl_->options, tables, [&]() -> Status {
        if (timeout) {
          SLUICE_RETURN_IF_ERROR(
              conn->Exec("SET lock_timeout = '" + std::to_string(impl_->options.lock_timeout_ms) + "ms'"));
        }
        Status st = fn();
        if (timeout) conn->Exec("RESET lock_timeout").IgnoreError();
        return st;
      });
    };
    db::Schema schema;
    SLUICE_RETURN_IF_ERROR(bounded({}, [&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(schema, conn->Introspect());
      return Status::Ok();
    }));
    std::string prev;
    for (const auto& m : all) {
      if (m.phase == engine::kComplete) prev = m.version;
    }
    SLUICE_ASSIGN_OR_RETURN(c, engine::Compile(p, schema, d, {"", prev}));
    std::vector<std::string> expr_warnings;
    SLUICE_RETURN_IF_ERROR(bounded(std::vector<std::string>(c.tables.begin(), c.tables.end()), [&]() -> Status {
      expr_warnings.clear();
      return CheckExpressions(*conn, c, &expr_warnings);
    }));
    for (const auto& m : all) {
      if (!m.in_flight() || m.name == p.name) continue;
      for (const auto& t : m.tables) {
        if (c.tables.count(t)) {
          return FailedPrecondition("table '" + t + "' is being changed by migration '" + m.name + "' (" + m.phase +
                                    "); complete or roll it back before starting '" + p.name + "'");
        }
      }
      if (m.version == c.version.name) {
        return FailedPrecondition("version name '" + c.version.name + "' is already used by migration '" + m.name +
                                  "'");
      }
    }
    rec.name = p.name;
    rec.version = c.version.name;
    rec.previous_version = prev;
    rec.plan_file = p.file;
    rec.plan_format = p.format;
    rec.plan_text = p.text;
    rec.schema_before = engine::SchemaToJson(schema);
    rec.tables.assign(c.tables.begin(), c.tables.end());
    rec.backfill = c.backfill.empty() ? "none" : "pending";
    rec.live = "old";
  }
  nlohmann::json details = {{"plan_file", p.file}, {"version", c.version.name}, {"tables", rec.tables}};

  PhaseRun run;
  run.migration = p.name;
  run.phase = "start";
  run.steps = c.start;
  run.tables = rec.tables;
  run.before = [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(store.Ensure());
    SLUICE_ASSIGN_OR_RETURN(auto again, store.Get(p.name));
    if (again && again->phase == engine::kStarting) return Status::Ok();
    SLUICE_ASSIGN_OR_RETURN(rec.seq, store.NextSeq());
    rec.phase = engine::kStarting;
    SLUICE_RETURN_IF_ERROR(store.ClearProgress(p.name));
    return store.Upsert(rec);
  };
  run.record = [&](bool finished) -> Status {
    if (!finished) return Status::Ok();
    SLUICE_RETURN_IF_ERROR(store.SetPhase(p.name, engine::kActive));
    return store.AddEvent(p.name, "start", impl_->options.actor, "expanded: version " + c.version.name + " published",
                          details.dump());
  };
  Status s = ExecutePhase(*conn, store, impl_->options, run);
  if (!s.ok() && !d.transactional_ddl()) {
    // The catalog changes may have committed before a later statement (an
    // index build) failed: undo them so the migration stays where it was.
    // A lost connection is left to a rerun, which resumes.
    auto now = store.Get(p.name);
    if (s.code() != StatusCode::kUnavailable && now.ok() && *now && (*now)->phase == engine::kStarting) {
      conn->Unlock(lock_name).IgnoreError();
      Status undo = Rollback(p.name);
      return s.WithContext(undo.ok() ? "start failed and was rolled back (the database is as before)"
                                     : "start failed, and rolling it back failed too (" + undo.message() +
                                           "); run `sluice rollback " + p.name + "`");
    }
  }
  if (!d.transactional_ddl()) conn->Unlock(lock_name).IgnoreError();
  return s;
}

// --- backfill ----------------------------------------------------------------------

// Gate evidence and enforcement (the rules live in src/gates).
namespace {

// Latency and errors of the abort criteria's probe query, run `n` times on a
// session of the live version.
struct ProbeStats {
  int probes = 0;
  int errors = 0;
  double p99_ms = 0;
  std::string first_error;
  std::string ToJson() const {
    return nlohmann::json{{"probes", probes}, {"errors", errors}, {"p99_ms", p99_ms}}.dump();
  }
};

ProbeStats MeasureProbe(const std::function<Result<std::unique_ptr<db::Connection>>()>& connect, const Loaded& l,
                        int n) {
  ProbeStats st;
  auto c = connect();
  if (!c.ok()) {
    st.probes = st.errors = 1;
    st.first_error = c.status().message();
    return st;
  }
  db::Connection& conn = **c;
  const db::Dialect& d = conn.dialect();
  std::string live = d.SessionSetupSql("live");
  if (!live.empty()) conn.Exec(live).IgnoreError();
  std::string sql = l.plan.abort.probe_query.value_or("");
  if (sql.empty()) {
    std::string table = l.rec.tables.empty() ? "" : l.rec.tables[0];
    sql = table.empty() ? "SELECT 1" : "SELECT count(*) FROM (SELECT 1 FROM " + d.Table(table) + " LIMIT 1) probe";
  }
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    int64_t t0 = Clock::Real()->NowMicros();
    auto r = conn.Query(sql);
    ms.push_back(static_cast<double>(Clock::Real()->NowMicros() - t0) / 1000.0);
    ++st.probes;
    if (!r.ok()) {
      ++st.errors;
      if (st.first_error.empty()) st.first_error = r.status().message();
      if (r.status().code() == StatusCode::kUnavailable) conn.Reconnect().IgnoreError();
    }
  }
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) st.p99_ms = ms[std::min(ms.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(ms.size())))];
  return st;
}

// Row-count parity of every table between the old and the new read path,
// in one snapshot.
Result<gates::Evidence> MeasureParity(db::Connection& conn, const Loaded& l) {
  gates::Evidence e{"parity", true, ""};
  SLUICE_ASSIGN_OR_RETURN(auto counts, verify::RowCounts(conn, l.compiled.version));
  for (const auto& c : counts) {
    e.detail += (e.detail.empty() ? "" : "; ") + c.table + ": " + c.summary;
    if (!c.passed) e.passed = false;
  }
  if (e.detail.empty()) e.detail = "no table with an old read path";
  return e;
}

// Evidence for the gates, from the state tables.
Result<gates::Inputs> GateInputs(StateStore& store, const Loaded& l) {
  gates::Inputs in;
  in.settings = &l.plan.gates;
  in.phase = l.rec.phase;
  in.backfill = l.rec.backfill;
  in.live = l.rec.live;
  in.has_backfill = !l.compiled.backfill.empty();
  SLUICE_ASSIGN_OR_RETURN(auto v, store.LastVerification(l.rec.name));
  if (v) {
    in.last_verify_passed = v->passed;
    in.last_verify_at = v->at;
  }
  SLUICE_ASSIGN_OR_RETURN(auto events, store.Events(l.rec.name));
  for (const auto& e : events) in.events.push_back({e.at, e.kind, e.actor, e.message, e.details});
  in.now = static_cast<int64_t>(std::time(nullptr));
  return in;
}

// Refuses a transition whose gate failed, with the evidence; --force with a
// reason passes it and records the override loudly.
Status PassGate(StateStore& store, const std::string& name, const gates::GateResult& g,
                const TransitionOptions& options, const std::string& actor) {
  if (g.passed) return Status::Ok();
  std::string evidence;
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& c : g.checks) {
    evidence += std::string("\n  [") + (c.passed ? " ok " : "FAIL") + "] " + c.check + ": " + c.detail;
    if (!c.passed) failed.push_back({{"check", c.check}, {"detail", c.detail}});
  }
  if (!options.force) {
    return FailedPrecondition("the " + g.gate + " gate of '" + name + "' is not passed: " + g.Reason() + evidence +
                              "\n(override with --force --reason TEXT; the override is recorded)");
  }
  if (options.reason.empty()) return InvalidArgument("--force needs --reason TEXT (it is recorded in the audit log)");
  nlohmann::json d = {{"gate", g.gate}, {"reason", options.reason}, {"failed", failed}};
  return store.AddEvent(name, "gate.override", actor,
                        "GATE OVERRIDDEN: " + g.gate + " gate forced past (" + g.Reason() + "): " + options.reason,
                        d.dump());
}

GateInfo ToInfo(const gates::GateResult& g) {
  GateInfo i;
  i.gate = g.gate;
  i.configured = g.configured;
  i.passed = g.passed;
  i.signoffs = g.signoffs;
  for (const auto& c : g.checks) i.checks.push_back({c.check, c.passed, c.detail});
  return i;
}

}  // namespace

Result<BackfillSummary> Migrator::Backfill(const std::string& migration, const BackfillOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  std::vector<std::string> names;
  if (!migration.empty()) {
    names.push_back(migration);
  } else {
    SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
    for (const auto& m : all) {
      if (m.phase == engine::kActive) names.push_back(m.name);
    }
    if (names.empty()) return FailedPrecondition("no active migration to backfill (see `sluice status`)");
  }
  BackfillSummary summary;
  int64_t t0 = Clock::Real()->NowMicros();
  for (const auto& name : names) {
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
    if (l.rec.phase != engine::kActive) {
      return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can be backfilled");
    }
    summary.migrations.push_back(name);
    if (l.compiled.backfill.empty() || l.rec.backfill == "done") continue;
    SLUICE_ASSIGN_OR_RETURN(db::LockAttempt lock, conn->TryLock("migration:" + name));
    if (!lock.acquired) {
      return FailedPrecondition("migration '" + name + "' is being worked on by another sluice process (" +
                                lock.holder + ")");
    }
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "backfill", "running"));
    backfill::Settings s;
    const auto& pb = l.plan.backfill;
    s.chunk_target_ms = options.chunk_target_ms.value_or(
        pb.chunk_target_ms.value_or(conn->dialect().default_chunk_target_ms()));
    s.chunk_rows = options.chunk_rows.value_or(pb.chunk_rows.value_or(s.chunk_rows));
    s.chunk_min_rows = options.chunk_min_rows.value_or(pb.chunk_min_rows.value_or(s.chunk_min_rows));
    s.chunk_max_rows = options.chunk_max_rows.value_or(pb.chunk_max_rows.value_or(s.chunk_max_rows));
    s.chunk_max_rows = std::max(s.chunk_max_rows, s.chunk_min_rows);
    s.workers = options.workers.value_or(pb.workers.value_or(1));
    if (s.workers > 1 && !conn->dialect().parallel_backfill()) {
      conn->Unlock("migration:" + name).IgnoreError();
      return InvalidArgument(std::string(conn->dialect().name()) +
                             " allows one writer at a time; use --workers 1 (or drop backfill.workers)");
    }
    backfill::ThrottleSettings& ts = s.throttle;
    ts.max_rows_per_second = options.max_rows_per_second.value_or(pb.max_rows_per_second.value_or(0));
    ts.probe_sql = pb.probe_query.value_or("");
    ts.probe_target_ms = options.probe_target_ms.value_or(pb.probe_target_ms.value_or(kDefaultProbeTargetMs));
    ts.max_replica_lag_seconds = pb.max_replica_lag_seconds.value_or(kDefaultMaxReplicaLagSeconds);
    ts.max_lock_waiters = pb.max_lock_waiters.value_or(kDefaultMaxLockWaiters);
    ts.custom_sql = pb.custom_signal_sql.value_or("");
    ts.custom_max = pb.custom_signal_max.value_or(0);
    ts.windows = pb.allowed_windows;
    // The backfill gets connections of its own: it may reconnect, and
    // workers and throttle probes each need a session.
    SLUICE_ASSIGN_OR_RETURN(auto work, impl_->Connect());
    int64_t rows_before = 0;
    backfill::Hooks hooks;
    hooks.cancel = options.cancel;
    hooks.connect = [this]() { return impl_->Connect(); };
    std::string replica_url = !options.replica_url.empty() ? options.replica_url : pb.replica_url.value_or("");
    std::shared_ptr<db::Adapter> replica;
    if (!replica_url.empty()) {
      db::OpenOptions ro;
      ro.schema = impl_->options.schema;
      ro.state_schema = impl_->options.state_schema;
      SLUICE_ASSIGN_OR_RETURN(auto ra, db::OpenAdapter(replica_url, ro));
      replica = std::move(ra);
      hooks.connect_replica = [replica]() { return replica->Connect(); };
    }
    hooks.on_progress = [&](const backfill::Progress& p) {
      if (!options.on_progress) return;
      BackfillProgress bp;
      bp.migration = name;
      bp.table = p.table;
      bp.rows_done = p.rows_done;
      bp.rows_total = p.rows_total;
      bp.chunks = p.chunks;
      bp.chunk_rows = p.chunk_rows;
      bp.rows_per_second = p.rows_per_second;
      bp.eta_seconds = p.eta_seconds;
      bp.workers = p.workers;
      bp.throttle = p.throttle;
      bp.done = p.done;
      options.on_progress(bp);
    };
    SLUICE_ASSIGN_OR_RETURN(auto before, store.Checkpoints(name));
    for (const auto& cp : before) rows_before += cp.rows_done;
    backfill::Backfiller bf(*work, name, s, hooks);
    Status result = Status::Ok();
    for (const auto& task : l.compiled.backfill) {
      result = bf.Run(task);
      if (!result.ok()) break;
    }
    // The backfill survives a lost connection or a server restart by
    // reconnecting; this session may have died meanwhile too (and with it
    // its advisory lock, which the checkpoint row locks make harmless).
    if (!conn->Query("SELECT 1").ok()) {
      for (int i = 0; i < 20; ++i) {
        if (conn->Reconnect().ok()) break;
        Clock::Real()->SleepMicros(500'000);
      }
      (void)conn->TryLock("migration:" + name);
    }
    auto after = store.Checkpoints(name);
    int64_t rows_after = 0;
    if (after.ok()) {
      for (const auto& cp : *after) rows_after += cp.rows_done;
    }
    summary.rows += rows_after - rows_before;
    if (!result.ok()) {
      store.AddEvent(name, result.code() == StatusCode::kCancelled ? "backfill.paused" : "backfill.error",
                     impl_->options.actor, result.message())
          .IgnoreError();
      conn->Unlock("migration:" + name).IgnoreError();
      return result;
    }
    // The backfill gate: parity between the old and the new read path
    // before the backfill is declared done.
    {
      SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
      SLUICE_ASSIGN_OR_RETURN(in.parity, MeasureParity(*conn, l));
      gates::GateResult g = gates::EvaluateBackfill(in);
      if (!g.passed) {
        conn->Unlock("migration:" + name).IgnoreError();
        return FailedPrecondition("the backfill of '" + name + "' finished but its gate is not passed: " + g.Reason() +
                                  "; fix that and rerun `sluice backfill " + name + "`");
      }
    }
    Status fin = db::InTransaction(*conn, [&]() -> Status {
      SLUICE_RETURN_IF_ERROR(store.SetField(name, "backfill", "done"));
      nlohmann::json det = {{"rows", rows_after}};
      return store.AddEvent(name, "backfill.done", impl_->options.actor,
                            "backfill finished: " + std::to_string(rows_after) + " rows", det.dump());
    });
    conn->Unlock("migration:" + name).IgnoreError();
    SLUICE_RETURN_IF_ERROR(fin);
  }
  summary.seconds = static_cast<double>(Clock::Real()->NowMicros() - t0) / 1e6;
  return summary;
}

// --- verify ------------------------------------------------------------------------------

namespace {
Result<std::string> ResolveMigration(StateStore& store, const std::string& name, const char* verb) {
  if (!name.empty()) return name;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::vector<std::string> active;
  for (const auto& m : all) {
    if (m.in_flight()) active.push_back(m.name);
  }
  if (active.size() == 1) return active[0];
  if (active.empty()) return FailedPrecondition(std::string("no active migration to ") + verb);
  std::string list;
  for (const auto& a : active) list += (list.empty() ? "" : ", ") + a;
  return InvalidArgument(std::string("several migrations are active (") + list + "); name the one to " + verb);
}
}  // namespace

namespace {

// The plan's `verify:` section as verification settings (defaults in
// src/verify/verify.h and docs/plan-format.md).
verify::Settings VerifySettingsOf(const plan::Plan& p) {
  verify::Settings vs;
  const plan::VerifySettings& v = p.verify;
  if (v.max_reported_differences) vs.max_reported = *v.max_reported_differences;
  if (v.checksum_chunk_rows) vs.chunk_rows = *v.checksum_chunk_rows;
  if (v.partition_column) vs.partition_column = *v.partition_column;
  if (v.max_drift) vs.max_drift = *v.max_drift;
  if (v.shadow_sample) vs.shadow_sample = *v.shadow_sample;
  if (v.max_divergence) vs.max_divergence = *v.max_divergence;
  for (const auto& i : v.invariants) vs.invariants.push_back({i.name.value, i.table, i.check, i.sql});
  for (const auto& q : v.validation_queries) vs.validation_queries.push_back({q.name.value, q.table, q.sql});
  return vs;
}

// A session that reads `version` the way an application of that version
// connects ("" = the base tables).
Result<std::unique_ptr<db::Connection>> UseVersion(std::unique_ptr<db::Connection> c, Migrator& m,
                                                   const std::string& version) {
  std::string setup;
  if (c->dialect().versioned_namespaces()) {
    setup = c->dialect().SessionSetupSql(version);
  } else if (!version.empty()) {
    SLUICE_ASSIGN_OR_RETURN(setup, m.VersionSetupSql(version));
  }
  if (!setup.empty()) SLUICE_RETURN_IF_ERROR(c->Exec(setup).WithContext("selecting version '" + version + "'"));
  return c;
}

std::vector<std::optional<std::string>> KeyAsText(const std::vector<db::Value>& k) {
  std::vector<std::optional<std::string>> out;
  for (const auto& v : k) out.push_back(v.is_null() ? std::nullopt : std::optional<std::string>(v.text));
  return out;
}

}  // namespace

Result<VerifyResult> Migrator::Verify(const std::string& migration) { return Verify(migration, VerifyOptions{}); }

Result<VerifyResult> Migrator::Verify(const std::string& migration, const VerifyOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "verify"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != engine::kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; verification compares the old and new versions of an active migration");
  }
  verify::Settings vs = VerifySettingsOf(l.plan);
  if (options.reread_delay_ms) vs.reread_delay_ms = *options.reread_delay_ms;
  if (options.after_first_old_read) {
    vs.after_first_old_read = [&options](const std::string& q, const std::vector<db::Value>& k) {
      options.after_first_old_read(q, KeyAsText(k));
    };
  }
  // Sessions of both versions, for shadow reads and `sql` invariants.
  std::unique_ptr<db::Connection> old_session, new_session;
  verify::VersionConnections vc;
  bool sql_invariants = std::any_of(vs.invariants.begin(), vs.invariants.end(),
                                    [](const verify::Invariant& i) { return !i.sql.empty(); });
  if (!vs.validation_queries.empty() || sql_invariants) {
    SLUICE_ASSIGN_OR_RETURN(auto c1, impl_->Connect());
    SLUICE_ASSIGN_OR_RETURN(old_session, UseVersion(std::move(c1), *this, l.rec.previous_version));
    SLUICE_ASSIGN_OR_RETURN(auto c2, impl_->Connect());
    SLUICE_ASSIGN_OR_RETURN(new_session, UseVersion(std::move(c2), *this, l.rec.version));
    vc.old_version = old_session.get();
    vc.new_version = new_session.get();
  }
  SLUICE_ASSIGN_OR_RETURN(verify::Report report, verify::Run(*conn, l.compiled.version, vs, vc));
  VerifyResult out;
  out.migration = name;
  out.at = report.at;
  out.passed = report.passed;
  out.json = report.ToJson();
  for (const auto& c : report.checks) {
    out.checks.push_back({c.name, c.table, c.column, c.passed, c.skipped, c.summary, c.evidence, c.checked, c.failures});
  }
  SLUICE_RETURN_IF_ERROR(db::InTransaction(*conn, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(store.AddVerification(name, report.passed, out.json));
    return store.AddEvent(name, "verify", impl_->options.actor, report.passed ? "verification passed" : "verification FAILED");
  }));
  return out;
}

namespace {
// Runs `round(n)` for n = 1, 2, ... every `interval` seconds until `seconds`
// have passed, `cancel` is set, or a round returns false; the first round
// always runs. Shared by the shadow-read soak and the abort watch.
Status EveryRound(double seconds, double interval, const std::atomic<bool>* cancel,
                  const std::function<Result<bool>(int)>& round) {
  auto cancelled = [&] { return cancel && cancel->load(); };
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (int n = 1;; ++n) {
    SLUICE_ASSIGN_OR_RETURN(bool go_on, round(n));
    if (!go_on || cancelled() || elapsed() >= seconds) break;
    // Sleep until the next round, the end of the window, or cancel.
    double until = std::min(elapsed() + std::max(interval, 0.0), seconds);
    while (!cancelled() && elapsed() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (cancelled() || elapsed() >= seconds) break;
  }
  return Status::Ok();
}
}  // namespace

Result<WatchResult> Migrator::WatchShadowReads(const std::string& migration, const WatchOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "watch"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != engine::kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; shadow reads compare the old and new versions of an active migration");
  }
  verify::Settings vs = VerifySettingsOf(l.plan);
  if (options.reread_delay_ms) vs.reread_delay_ms = *options.reread_delay_ms;
  if (vs.validation_queries.empty()) {
    return FailedPrecondition("the plan of '" + name + "' has no verify.validation_queries to shadow-read");
  }
  SLUICE_ASSIGN_OR_RETURN(auto c1, impl_->Connect());
  SLUICE_ASSIGN_OR_RETURN(auto old_session, UseVersion(std::move(c1), *this, l.rec.previous_version));
  SLUICE_ASSIGN_OR_RETURN(auto c2, impl_->Connect());
  SLUICE_ASSIGN_OR_RETURN(auto new_session, UseVersion(std::move(c2), *this, l.rec.version));
  verify::VersionConnections vc{old_session.get(), new_session.get()};
  WatchResult out;
  out.migration = name;
  out.started_at = NowIso();
  out.max_divergence = vs.max_divergence;
  nlohmann::json rounds = nlohmann::json::array();
  Status soak = EveryRound(options.seconds, options.interval_seconds, options.cancel, [&](int round) -> Result<bool> {
    SLUICE_ASSIGN_OR_RETURN(verify::ShadowRound r, verify::ShadowRead(*conn, l.compiled.version, vs, vc, round));
    ShadowWatchRound w;
    w.round = round;
    w.at = r.at;
    w.keys = r.keys;
    w.table_rows = r.table_rows;
    w.divergent = r.divergent;
    w.unstable = r.unstable;
    w.rate = r.rate();
    for (const auto& c : r.checks) {
      for (const auto& e : c.evidence) w.evidence.push_back(c.column + ": " + e);
    }
    out.keys += r.keys;
    out.divergent += r.divergent;
    out.unstable += r.unstable;
    out.rate = out.keys ? static_cast<double>(out.divergent) / static_cast<double>(out.keys) : 0;
    w.cumulative_rate = out.rate;
    rounds.push_back({{"round", w.round}, {"at", w.at}, {"keys", w.keys}, {"table_rows", w.table_rows},
                      {"divergent", w.divergent}, {"unstable", w.unstable}, {"rate", w.rate},
                      {"cumulative_rate", w.cumulative_rate}, {"evidence", w.evidence}});
    if (options.on_round) options.on_round(w);
    out.rounds.push_back(std::move(w));
    return true;
  });
  SLUICE_RETURN_IF_ERROR(soak);
  out.ended_at = NowIso();
  out.passed = out.rate <= vs.max_divergence + 1e-12;
  nlohmann::json j = {{"migration", name},          {"started_at", out.started_at}, {"ended_at", out.ended_at},
                      {"passed", out.passed},       {"keys", out.keys},             {"divergent", out.divergent},
                      {"unstable", out.unstable},   {"rate", out.rate},             {"max_divergence", out.max_divergence},
                      {"rounds", rounds}};
  out.json = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  SLUICE_RETURN_IF_ERROR(store.AddEvent(
      name, "shadow_watch", impl_->options.actor,
      std::string(out.passed ? "shadow-read soak passed" : "shadow-read soak FAILED") + ": " +
          std::to_string(out.divergent) + " divergent of " + std::to_string(out.keys) + " keys over " +
          std::to_string(out.rounds.size()) + " rounds",
      out.json));
  return out;
}

// --- gates -------------------------------------------------------------------------------

namespace {
// Wraps `steps` (which contract or roll back `l`'s tables) so the read paths
// of other in-flight migrations, which show those tables unchanged, do not
// pin the columns being dropped: their views go first and come back after.
Result<std::vector<db::Step>> AroundOtherVersions(StateStore& store, const db::Dialect& d, const Loaded& l,
                                                  std::vector<db::Step> steps) {
  std::vector<std::string> tables = l.rec.tables;
  for (const auto& m : l.compiled.version.tables) {
    tables.push_back(m.logical);
    tables.push_back(m.physical);
  }
  std::sort(tables.begin(), tables.end());
  tables.erase(std::unique(tables.begin(), tables.end()), tables.end());
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::vector<db::Step> before, after;
  for (const auto& m : all) {
    if (m.name == l.rec.name || !m.in_flight() || m.phase == engine::kRollingBack) continue;
    SLUICE_ASSIGN_OR_RETURN(Loaded other, LoadMigration(store, d, m.name));
    before.push_back({db::RefreshVersionViewsStep{other.compiled.version, tables, true}, "unpin " + m.version});
    after.push_back({db::RefreshVersionViewsStep{other.compiled.version, tables, false}, "refresh " + m.version});
  }
  before.insert(before.end(), steps.begin(), steps.end());
  before.insert(before.end(), after.begin(), after.end());
  return before;
}
}  // namespace

Result<std::vector<GateInfo>> Migrator::Gates(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "inspect"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
  std::vector<GateInfo> out;
  for (const auto& g : gates::EvaluateAll(in)) out.push_back(ToInfo(g));
  return out;
}

Status Migrator::Signoff(const std::string& migration, const std::string& gate, const std::string& who,
                         const std::string& role, const std::string& note) {
  if (gate != "backfill" && gate != "switch" && gate != "complete") {
    return InvalidArgument("unknown gate '" + gate + "' (backfill, switch or complete)");
  }
  if (who.empty() || role.empty()) return InvalidArgument("a sign-off needs --as NAME and --role ROLE");
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "sign off"));
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  if (!rec->in_flight()) return FailedPrecondition("migration '" + name + "' is " + rec->phase + "; nothing to sign off");
  nlohmann::json d = {{"gate", gate}, {"name", who}, {"role", role}, {"note", note}};
  return store.AddEvent(name, "signoff", impl_->options.actor,
                        who + " (" + role + ") signed off the " + gate + " gate" + (note.empty() ? "" : ": " + note),
                        d.dump());
}

Result<AbortWatchResult> Migrator::Watch(const std::string& migration, const AbortWatchOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "watch"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  const plan::AbortCriteria& ab = l.plan.abort;
  if (!ab.present) return FailedPrecondition("the plan of '" + name + "' has no `abort:` criteria to watch");
  if (l.rec.phase != engine::kActive || l.rec.live != "new") {
    return FailedPrecondition("reads of '" + name + "' are not on the new version; run `sluice switch` first");
  }
  AbortWatchResult out;
  out.migration = name;
  SLUICE_ASSIGN_OR_RETURN(auto switches, store.Events(name, "switch"));
  if (!switches.empty()) {
    auto d = nlohmann::json::parse(switches.back().details, nullptr, false);
    if (d.is_object() && d.contains("baseline")) out.baseline_p99_ms = d["baseline"].value("p99_ms", -1.0);
  }
  auto connect = [this] { return impl_->Connect(); };
  int64_t probes = 0, errors = 0, keys = 0, divergent = 0;
  nlohmann::json rounds = nlohmann::json::array();
  Status watched = EveryRound(options.seconds, options.interval_seconds, options.cancel, [&](int n) -> Result<bool> {
    out.rounds = n;
    ProbeStats ps = MeasureProbe(connect, l, 10);
    probes += ps.probes;
    errors += ps.errors;
    out.p99_ms = std::max(out.p99_ms, ps.p99_ms);
    out.error_rate = probes ? static_cast<double>(errors) / static_cast<double>(probes) : 0;
    if (ab.max_divergence && !l.plan.verify.validation_queries.empty()) {
      WatchOptions wo;
      wo.seconds = 0;  // one round
      SLUICE_ASSIGN_OR_RETURN(WatchResult w, WatchShadowReads(name, wo));
      keys += w.keys;
      divergent += w.divergent;
      out.divergence = keys ? static_cast<double>(divergent) / static_cast<double>(keys) : 0;
    }
    // Sub-millisecond probes are noise: compare against at least 1 ms.
    double ratio = out.baseline_p99_ms >= 0 ? ps.p99_ms / std::max(out.baseline_p99_ms, 1.0) : 0;
    std::string breach;
    if (ab.max_error_rate && out.error_rate > *ab.max_error_rate) {
      breach = fmt::format("probe error rate {:.2f}% > {:.2f}% ({})", out.error_rate * 100, *ab.max_error_rate * 100,
                           ps.first_error);
    } else if (ab.max_p99_ratio && ratio > *ab.max_p99_ratio) {
      breach = fmt::format("probe p99 {:.2f} ms is {:.1f}x the pre-switch baseline {:.2f} ms (max {:g}x)", ps.p99_ms,
                           ratio, out.baseline_p99_ms, *ab.max_p99_ratio);
    } else if (ab.max_divergence && out.divergence > *ab.max_divergence) {
      breach = fmt::format("shadow-read divergence {:.3f}% > {:.3f}%", out.divergence * 100, *ab.max_divergence * 100);
    }
    std::string line = fmt::format("round {}: probe p99 {:.2f} ms (baseline {}), errors {}/{}, divergence {:.3f}% of {} keys",
                                   out.rounds, ps.p99_ms,
                                   out.baseline_p99_ms >= 0 ? fmt::format("{:.2f} ms", out.baseline_p99_ms) : "unknown",
                                   errors, probes, out.divergence * 100, keys);
    rounds.push_back({{"round", out.rounds}, {"p99_ms", ps.p99_ms}, {"errors", ps.errors}, {"probes", ps.probes},
                      {"divergence", out.divergence}, {"breach", breach}});
    if (options.on_round) options.on_round(line);
    if (!breach.empty()) {
      // The documented rollback for this phase: reads go back, instantly.
      SLUICE_RETURN_IF_ERROR(Switch(name, true));
      out.aborted = true;
      out.reason = breach;
      return false;
    }
    return true;
  });
  SLUICE_RETURN_IF_ERROR(watched);
  nlohmann::json j = {{"migration", name},           {"aborted", out.aborted},   {"reason", out.reason},
                      {"rounds", rounds},            {"baseline_p99_ms", out.baseline_p99_ms},
                      {"p99_ms", out.p99_ms},        {"error_rate", out.error_rate},
                      {"divergence", out.divergence}};
  out.json = j.dump();
  if (out.aborted) {
    SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "abort", impl_->options.actor,
                                          "ABORTED after switch: " + out.reason + "; reads switched back", out.json));
  } else {
    SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "watch", impl_->options.actor,
                                          fmt::format("watched {} rounds: no abort criterion breached", out.rounds),
                                          out.json));
  }
  return out;
}

// --- switch / complete / rollback --------------------------------------------------------

Status Migrator::Switch(const std::string& migration, bool back) { return Switch(migration, back, {}); }

Status Migrator::Switch(const std::string& migration, bool back, const TransitionOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "switch"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != engine::kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can switch");
  }
  std::string baseline;
  if (!back) {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateSwitch(in), options, impl_->options.actor));
    // The abort criteria compare against the probe as it was before.
    if (l.plan.abort.present) baseline = MeasureProbe([this] { return impl_->Connect(); }, l, 20).ToJson();
  }
  std::string target = back ? l.rec.previous_version : l.rec.version;
  PhaseRun run;
  run.migration = name;
  run.phase = back ? "switch_back" : "switch";
  run.steps = {{db::SetLiveStep{target, l.compiled.version}, "switch"}};
  run.tables = l.rec.tables;
  run.record = [&](bool finished) -> Status {
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", back ? "old" : "new"));
    // Switching is repeatable: forget this marker so the next switch runs.
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, run.phase));
    return store.AddEvent(name, back ? "switch.back" : "switch", impl_->options.actor,
                          back ? "reads switched back to the previous version"
                               : "reads switched to version '" + target + "'",
                          baseline.empty() ? "" : "{\"baseline\": " + baseline + "}");
  };
  return ExecutePhase(*conn, store, impl_->options, run);
}

Status Migrator::Complete(const std::string& migration) { return Complete(migration, {}); }

Status Migrator::Complete(const std::string& migration, const TransitionOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "complete"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase == engine::kComplete) return Status::Ok();  // rerun converges
  if (l.rec.phase != engine::kActive && l.rec.phase != engine::kCompleting) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can complete");
  }
  if (l.rec.backfill == "pending" || l.rec.backfill == "running") {
    return FailedPrecondition("the backfill of '" + name + "' has not finished; run `sluice backfill " + name +
                              "` first (complete would drop the old columns it still reads)");
  }
  if (l.rec.phase == engine::kActive) {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    // complete performs the switch itself when it has not happened, so the
    // switch gate stands before it too.
    if (l.rec.live != "new") {
      SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateSwitch(in), options, impl_->options.actor));
    }
    SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateComplete(in), options, impl_->options.actor));
  }
  SLUICE_ASSIGN_OR_RETURN(db::LockAttempt lock, conn->TryLock("migration:" + name));
  if (!lock.acquired) {
    return FailedPrecondition("migration '" + name + "' is being worked on by another sluice process (" + lock.holder +
                              ")");
  }
  // Versions of earlier completed migrations retire now: their views may
  // read columns this complete drops.
  std::vector<db::Step> steps;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::vector<std::string> retired;
  for (const auto& m : all) {
    if (m.phase != engine::kComplete || m.version_retired || m.name == name) continue;
    SLUICE_ASSIGN_OR_RETURN(Loaded old, LoadMigration(store, conn->dialect(), m.name));
    steps.push_back({db::DropVersionStep{old.compiled.version}, "retire version " + m.version});
    retired.push_back(m.name);
  }
  // complete performs the read switch itself when it has not happened.
  if (l.rec.live != "new") steps.push_back({db::SetLiveStep{l.rec.version, l.compiled.version}, "switch"});
  for (const auto& s : l.compiled.complete) steps.push_back(s);
  SLUICE_ASSIGN_OR_RETURN(steps, AroundOtherVersions(store, conn->dialect(), l, std::move(steps)));
  PhaseRun run;
  run.migration = name;
  run.phase = "complete";
  run.steps = steps;
  run.tables = l.rec.tables;
  run.record = [&](bool finished) -> Status {
    for (const auto& r : retired) SLUICE_RETURN_IF_ERROR(store.SetField(r, "version_retired", "1"));
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", "new"));
    if (!finished) return store.SetPhase(name, engine::kCompleting);
    SLUICE_RETURN_IF_ERROR(store.SetPhase(name, engine::kComplete));
    return store.AddEvent(name, "complete", impl_->options.actor, "contracted: version " + l.rec.version + " is final");
  };
  Status s = ExecutePhase(*conn, store, impl_->options, run);
  conn->Unlock("migration:" + name).IgnoreError();
  return s;
}

Status Migrator::Rollback(const std::string& migration, bool force) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "roll back"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase == engine::kRolledBack) return Status::Ok();
  if (l.rec.phase == engine::kComplete || l.rec.phase == engine::kCompleting) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; its old columns are gone, so it cannot be rolled back (write a new migration "
                              "instead)");
  }
  if (l.compiled.irreversible && !force) {
    std::string ops;
    for (const auto& op : l.compiled.irreversible_ops) ops += "\n  " + op;
    return FailedPrecondition("migration '" + name + "' cannot be rolled back exactly: its `sql` operations without "
                              "`down` cannot be undone:" + ops +
                              "\nNothing was changed. Undo their effects by hand and run `sluice rollback --force " +
                              name + "` (which rolls back everything else and leaves that SQL's effects in place), "
                              "or go forward with `sluice complete " + name + "`");
  }
  SLUICE_ASSIGN_OR_RETURN(db::LockAttempt lock, conn->TryLock("migration:" + name));
  if (!lock.acquired) {
    return FailedPrecondition("migration '" + name + "' is being worked on by another sluice process (" + lock.holder +
                              "); stop it (Ctrl-C) before rolling back");
  }
  std::vector<db::Step> steps;
  if (l.rec.live == "new") steps.push_back({db::SetLiveStep{l.rec.previous_version, l.compiled.version}, "switch back"});
  for (const auto& s : l.compiled.rollback) steps.push_back(s);
  SLUICE_ASSIGN_OR_RETURN(steps, AroundOtherVersions(store, conn->dialect(), l, std::move(steps)));
  PhaseRun run;
  run.migration = name;
  run.phase = "rollback";
  run.steps = steps;
  run.tables = l.rec.tables;
  run.record = [&](bool finished) -> Status {
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", "old"));
    if (!finished) return store.SetPhase(name, engine::kRollingBack);
    SLUICE_RETURN_IF_ERROR(store.SetPhase(name, engine::kRolledBack));
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, "rollback"));
    // A later `start` of the same migration must run its steps again, not
    // find them marked done by the start this rollback undid.
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, "start"));
    return store.AddEvent(name, "rollback", impl_->options.actor, "rolled back to the state before start");
  };
  Status s = ExecutePhase(*conn, store, impl_->options, run);
  conn->Unlock("migration:" + name).IgnoreError();
  return s;
}

// --- status / migrate ------------------------------------------------------------------------

// --- pause / resume / tune ---------------------------------------------------------------

namespace {
Status ChangeControl(Result<std::unique_ptr<db::Connection>> connected, const std::string& actor,
                     const std::string& migration, const backfill::ControlChange& change, const std::string& kind,
                     const std::string& message) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, std::move(connected));
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, kind.c_str()));
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  if (!rec->in_flight()) return FailedPrecondition("migration '" + name + "' is " + rec->phase + "; nothing to " + kind);
  if (change.workers && *change.workers > 1 && !conn->dialect().parallel_backfill()) {
    return InvalidArgument(std::string(conn->dialect().name()) + " allows one writer at a time; --workers must be 1");
  }
  SLUICE_RETURN_IF_ERROR(backfill::WriteControl(*conn, name, change));
  return store.AddEvent(name, "backfill." + kind, actor, message);
}
}  // namespace

Status Migrator::Pause(const std::string& migration) {
  backfill::ControlChange c;
  c.paused = true;
  return ChangeControl(impl_->Connect(), impl_->options.actor, migration, c, "pause", "backfill paused");
}

Status Migrator::Resume(const std::string& migration) {
  backfill::ControlChange c;
  c.paused = false;
  return ChangeControl(impl_->Connect(), impl_->options.actor, migration, c, "resume", "backfill resumed");
}

Status Migrator::Tune(const std::string& migration, std::optional<double> rate, std::optional<int64_t> chunk_ms,
                      std::optional<int64_t> workers, bool reset) {
  if (!rate && !chunk_ms && !workers && !reset) {
    return InvalidArgument("tune needs at least one of --rate, --chunk-ms, --workers, --reset");
  }
  if (rate && *rate < 0) return InvalidArgument("--rate must be >= 0 (0 = unlimited)");
  if (chunk_ms && *chunk_ms <= 0) return InvalidArgument("--chunk-ms must be > 0");
  if (workers && *workers <= 0) return InvalidArgument("--workers must be > 0");
  backfill::ControlChange c;
  c.reset = reset;
  c.max_rows_per_second = rate;
  c.chunk_target_ms = chunk_ms;
  c.workers = workers;
  std::string msg = reset ? "backfill tuned: overrides reset to the plan's settings;" : "backfill tuned:";
  if (rate) msg += " rate " + (*rate > 0 ? std::to_string(static_cast<int64_t>(*rate)) + " rows/s" : "unlimited");
  if (chunk_ms) msg += " chunk " + std::to_string(*chunk_ms) + " ms";
  if (workers) msg += " workers " + std::to_string(*workers);
  return ChangeControl(impl_->Connect(), impl_->options.actor, migration, c, "tune", msg);
}

Result<std::vector<MigrationInfo>> Migrator::List() {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  StateStore store(*conn);
  std::vector<MigrationInfo> out;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return out;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  for (const auto& m : all) {
    MigrationInfo i;
    i.name = m.name;
    i.phase = m.phase;
    i.version = m.version;
    i.previous_version = m.previous_version;
    i.live = m.live;
    i.backfill = m.backfill;
    i.tables = m.tables;
    i.created_at = m.created_at;
    i.updated_at = m.updated_at;
    i.completed_at = m.completed_at;
    SLUICE_ASSIGN_OR_RETURN(auto cps, store.Checkpoints(m.name));
    for (const auto& cp : cps) {
      i.rows_done += cp.rows_done;
      i.rows_total += cp.rows_total;
      i.chunks += cp.chunks;
    }
    SLUICE_ASSIGN_OR_RETURN(auto overrides, store.Events(m.name, "gate.override"));
    for (const auto& o : overrides) i.overrides.push_back(o.message + " (by " + o.actor + " at " + o.at + ")");
    if (m.in_flight()) {
      SLUICE_ASSIGN_OR_RETURN(backfill::Control c, backfill::ReadControl(*conn, m.name));
      i.paused = c.paused;
      i.throttle = m.backfill == "running" ? c.throttle : "";
      i.tuned_rate = c.max_rows_per_second;
      i.tuned_chunk_ms = c.chunk_target_ms;
      i.tuned_workers = c.workers;
      if (m.backfill == "running") {
        SLUICE_ASSIGN_OR_RETURN(double rate, store.RecentBackfillRate(m.name, 10));
        i.rows_per_second = rate;
        if (rate > 0) i.eta_seconds = static_cast<double>(std::max<int64_t>(0, i.rows_total - i.rows_done)) / rate;
      }
    }
    SLUICE_ASSIGN_OR_RETURN(auto v, store.LastVerification(m.name));
    if (v) {
      i.last_verify_passed = v->passed;
      i.last_verify_at = v->at;
    }
    i.version_hint = conn->dialect().VersionSelectHint(m.version);
    out.push_back(std::move(i));
  }
  return out;
}

Result<std::vector<std::string>> Migrator::Migrate(const std::string& dir, const MigrateOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("'" + dir + "' is not a directory");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  std::vector<std::string> applied;
  auto step = [&](const char* what, const std::string& name) {
    if (options.on_step) options.on_step(what, name);
  };
  for (const auto& f : files) {
    std::string name = f.stem().string();
    std::string phase;
    {
      SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
      StateStore store(*conn);
      SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
      if (has_state) {
        SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
        if (rec) phase = rec->phase;
      }
    }
    if (phase == engine::kComplete) continue;
    if (phase != engine::kActive) {
      step("start", name);
      SLUICE_RETURN_IF_ERROR(Start(f.string()).WithContext(name));
    }
    step("backfill", name);
    auto b = Backfill(name, options.backfill);
    if (!b.ok()) return b.status().WithContext(name);
    step("verify", name);
    SLUICE_ASSIGN_OR_RETURN(VerifyResult v, Verify(name));
    if (!v.passed) {
      std::string why;
      for (const auto& c : v.checks) {
        if (!c.passed && !c.skipped) why += (why.empty() ? "" : "; ") + c.table + ": " + c.summary;
      }
      return FailedPrecondition(name + ": verification failed (" + why + "); the migration stays active: fix and "
                                       "rerun, or `sluice rollback " + name + "`");
    }
    step("complete", name);
    SLUICE_RETURN_IF_ERROR(Complete(name).WithContext(name));
    applied.push_back(name);
  }
  return applied;
}

namespace {

class SessionImpl : public Session {
 public:
  explicit SessionImpl(std::unique_ptr<db::Connection> c) : c_(std::move(c)) {}
  Result<Rows> Query(const std::string& sql, const std::vector<Param>& params) override {
    std::vector<db::Value> vals;
    for (const auto& p : params) {
      if (std::holds_alternative<std::nullptr_t>(p)) vals.push_back(db::Value::Null());
      if (std::holds_alternative<int64_t>(p)) vals.push_back(db::Value::Int(std::get<int64_t>(p)));
      if (std::holds_alternative<double>(p)) vals.push_back(db::Value::Real(std::get<double>(p)));
      if (std::holds_alternative<std::string>(p)) vals.push_back(db::Value::Text(std::get<std::string>(p)));
    }
    SLUICE_ASSIGN_OR_RETURN(db::QueryResult r, c_->Query(sql, vals));
    Rows out;
    out.columns = r.columns;
    out.affected = r.affected;
    for (const auto& row : r.rows) {
      std::vector<std::optional<std::string>> o;
      for (const auto& v : row) o.push_back(v.is_null() ? std::nullopt : std::optional<std::string>(v.text));
      out.rows.push_back(std::move(o));
    }
    return out;
  }
  Status Exec(const std::string& sql) override { return c_->Exec(sql); }

 private:
  std::unique_ptr<db::Connection> c_;
};

}  // namespace

Result<std::unique_ptr<Session>> Migrator::Connect(const std::string& version) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  std::string setup;
  if (conn->dialect().versioned_namespaces()) {
    setup = conn->dialect().SessionSetupSql(version);
  } else if (!version.empty()) {
    SLUICE_ASSIGN_OR_RETURN(setup, VersionSetupSql(version));
  }
  if (!setup.empty()) {
    SLUICE_RETURN_IF_ERROR(conn->Exec(setup).WithContext("selecting version '" + version + "'"));
  }
  return std::unique_ptr<Session>(new SessionImpl(std::move(conn)));
}

Result<std::string> Migrator::VersionSetupSql(const std::string& version) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, impl_->Connect());
  if (conn->dialect().versioned_namespaces()) return conn->dialect().SessionSetupSql(version) + "\n";
  StateStore store(*conn);
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return NotFound("no versions exist yet");
  std::string where = version == "live" ? "live = 1" : "version = $1";
  auto r = conn->Query("SELECT setup_sql FROM " + conn->dialect().StateTable("versions") + " WHERE " + where,
                       version == "live" ? std::vector<db::Value>{} : std::vector<db::Value>{db::Value::Text(version)});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) {
    if (version == "live") return std::string("-- sluice: no version is live; use the base tables\n");
    return NotFound("no version named '" + version + "'");
  }
  return r->Scalar().text;
}

}  // namespace sluice
