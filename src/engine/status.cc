// Status, backfill control (pause/resume/tune), `migrate` over a folder of
// plans, and application sessions on a version.
#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "backfill/control.h"
#include "common/sql_text.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "plan/parser.h"

namespace sluice::engine {

Result<std::unique_ptr<db::Connection>> Engine::Connect() {
  if (!adapter_) return InvalidArgument("no database given: pass --db URL or set SLUICE_DB");
  return adapter_->Connect();
}

namespace {
Status ChangeControl(Result<std::unique_ptr<db::Connection>> connected, Clock* clock, const std::string& actor,
                     const std::string& migration, const backfill::ControlChange& change, const std::string& kind,
                     const std::string& message) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, std::move(connected));
  StateStore store(*conn, clock);
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, kind.c_str()));
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  if (!rec->in_flight()) return FailedPrecondition("migration '" + name + "' is " + rec->phase + "; nothing to " + kind);
  if (change.workers && *change.workers > 1 && !conn->dialect().parallel_backfill()) {
    return InvalidArgument(std::string(conn->dialect().name()) + " allows one writer at a time; --workers must be 1");
  }
  SLUICE_RETURN_IF_ERROR(backfill::WriteControl(*conn, name, change, clock));
  return store.AddEvent(name, "backfill." + kind, actor, message);
}
}  // namespace

Status Engine::Pause(const std::string& migration) {
  backfill::ControlChange c;
  c.paused = true;
  return ChangeControl(Connect(), clock(), options_.actor, migration, c, "pause", "backfill paused");
}

Status Engine::Resume(const std::string& migration) {
  backfill::ControlChange c;
  c.paused = false;
  return ChangeControl(Connect(), clock(), options_.actor, migration, c, "resume", "backfill resumed");
}

Status Engine::Tune(const std::string& migration, std::optional<double> rate, std::optional<int64_t> chunk_ms,
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
  return ChangeControl(Connect(), clock(), options_.actor, migration, c, "tune", msg);
}

namespace {

// Status of an in-flight migration's backfill from its lease: `running`
// only while a process renews it, else `stopped` with why.
Status FillBackfillRun(StateStore& store, const MigrationRecord& m, MigrationInfo* i) {
  SLUICE_ASSIGN_OR_RETURN(auto lease, store.GetLease(m.name));
  if (lease) {
    i->backfill_holder = lease->holder;
    i->backfill_started_at = lease->started_at;
    i->backfill_heartbeat_at = lease->heartbeat_at;
    i->backfill_heartbeat_age_seconds = static_cast<double>(std::max<int64_t>(0, lease->now_ms - lease->heartbeat_ms)) / 1000;
    i->backfill_stale_after_seconds = static_cast<double>(3 * lease->interval_ms) / 1000;
    i->backfill_stopped_at = lease->stopped_at;
    i->backfill_last_error = lease->last_error;
  }
  if (m.backfill != "pending" && m.backfill != "running") return Status::Ok();
  if (lease && lease->alive()) {
    i->backfill = "running";
    return Status::Ok();
  }
  if (!lease && m.backfill == "pending") return Status::Ok();  // never run
  i->backfill = "stopped";
  if (!i->backfill_last_error.empty()) return Status::Ok();
  // The audit log's latest error of this run (or of any run, when no lease
  // was recorded: state from an older sluice).
  SLUICE_ASSIGN_OR_RETURN(auto errors, store.Events(m.name, "backfill.error"));
  if (!errors.empty() && (!lease || errors.back().at >= lease->started_at)) {
    i->backfill_last_error = errors.back().message;
  } else if (lease && lease->stopped_at.empty()) {
    i->backfill_last_error = "no heartbeat for " + std::to_string(static_cast<int64_t>(i->backfill_heartbeat_age_seconds)) +
                             "s from " + lease->holder + " (the process died, hung or lost the database); rerun "
                             "`sluice backfill " + m.name + "` to continue";
  } else if (!lease) {
    i->backfill_last_error = "no backfill process is known to be running (no lease recorded); rerun `sluice backfill " +
                             m.name + "` to continue";
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<MigrationInfo>> Engine::List() {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  std::vector<MigrationInfo> out;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return out;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  for (const auto& m : all) {
    MigrationInfo i = BasicInfo(m);
    // Gates forced past, and --force given while the gate passed (its
    // message says "FORCED WHILE PASSING"), in the order they happened.
    SLUICE_ASSIGN_OR_RETURN(auto overrides, store.Events(m.name));
    for (const auto& o : overrides) {
      if (o.kind != "gate.override" && o.kind != "gate.forced") continue;
      i.overrides.push_back(o.message + " (by " + o.actor + " at " + o.at + ")");
    }
    if (m.in_flight()) {
      SLUICE_ASSIGN_OR_RETURN(auto cps, store.Checkpoints(m.name));
      for (const auto& cp : cps) {
        i.rows_done += cp.rows_done;
        i.rows_total += cp.rows_total;
        i.chunks += cp.chunks;
      }
      SLUICE_RETURN_IF_ERROR(FillBackfillRun(store, m, &i));
      SLUICE_ASSIGN_OR_RETURN(i.dual_write_failures, store.DualWriteFailureCount(m.name));
      SLUICE_ASSIGN_OR_RETURN(auto signals, store.LatestChunkSignals(m.name));
      if (signals) {
        i.throttle_signals = signals->signals;
        i.throttle_signals_table = signals->table;
        i.throttle_signals_at = signals->committed_at;
      }
      const bool running = i.backfill == "running";
      SLUICE_ASSIGN_OR_RETURN(backfill::Control c, backfill::ReadControl(*conn, m.name));
      i.paused = c.paused;
      i.throttle = running ? c.throttle : "";
      i.tuned_rate = c.max_rows_per_second;
      i.tuned_chunk_ms = c.chunk_target_ms;
      i.tuned_workers = c.workers;
      if (running) {
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
    SLUICE_RETURN_IF_ERROR(FillEstimateVsActual(*conn, m.name, &i));  // estimate.cc
    out.push_back(std::move(i));
  }
  return out;
}

namespace {

DualWriteFailureInfo ToInfo(const DualWriteFailure& f) {
  return {f.table, f.key, f.column, f.error, f.sqlstate, f.writer, f.source, f.count, f.first_seen, f.last_seen};
}

// `WHERE` over the table's key columns for a recorded key (a JSON array),
// with its values as parameters; nullopt when the key does not match.
std::optional<std::pair<std::string, std::vector<db::Value>>> KeyWhere(const db::Dialect& d, const db::TableMapping& m,
                                                                   const std::string& key) {
  auto j = nlohmann::json::parse(key, nullptr, false);
  if (!j.is_array() || j.size() != m.key.size()) return std::nullopt;
  std::string where;
  std::vector<db::Value> params;
  for (size_t i = 0; i < m.key.size(); ++i) {
    const auto& v = j[i];
    where += (i ? " AND " : "") + d.Quote(m.key[i]) + " = $" + std::to_string(i + 1);
    if (v.is_number_integer()) {
      params.push_back(db::Value::Int(v.get<int64_t>()));
    } else if (v.is_string()) {
      params.push_back(db::Value::Text(v.get<std::string>()));
    } else if (v.is_null()) {
      return std::nullopt;
    } else {
      params.push_back(db::Value::Text(v.dump()));
    }
  }
  return std::make_pair(where, params);
}

// Evaluates `up` again for one recorded row: true when the row is gone or
// now converts (the converted value is written and the record deleted).
Result<bool> Recheck(db::Connection& conn, StateStore& store, const Loaded& l, const DualWriteFailure& f) {
  const db::Dialect& d = conn.dialect();
  const db::TableMapping* m = nullptr;
  for (const auto& t : l.compiled.version.tables) {
    if (t.physical == f.table) m = &t;
  }
  if (!m) return false;
  const db::Forward* fw = nullptr;
  for (const auto& x : m->forward) {
    if (x.target == f.column) fw = &x;
  }
  if (!fw) return false;
  std::string type;
  for (const auto& c : m->columns) {
    if (c.physical == f.column) type = c.type;
  }
  const bool guarded = std::find(m->not_null_guards.begin(), m->not_null_guards.end(), f.column) !=
                       m->not_null_guards.end();
  auto kw = KeyWhere(d, *m, f.key);
  if (!kw) return false;
  bool resolved = false;
  Status s = db::InTransaction(conn, [&]() -> Status {
    // `up` resolves names as the dual-write's does; the update must not
    // fire the dual-write (PostgreSQL: the backfill's setting).
    for (const auto& sql : d.ExpressionContextSql(l.compiled.version)) SLUICE_RETURN_IF_ERROR(conn.Exec(sql));
    for (const auto& t : l.compiled.backfill) {
      if (t.table != f.table) continue;
      for (const auto& sql : t.setup_sql) SLUICE_RETURN_IF_ERROR(conn.Exec(sql));
    }
    auto exists = conn.Query("SELECT 1 FROM " + d.Table(f.table) + " WHERE " + kw->first, kw->second);
    if (!exists.ok()) return exists.status();
    if (!exists->rows.empty()) {
      const std::string up = d.AsColumnValue(sql::ScalarExpression(fw->expr), type);
      auto v = conn.Query("SELECT " + up + " FROM " + d.Table(f.table) + " WHERE " + kw->first, kw->second);
      if (!v.ok() || v->rows.empty() || (guarded && v->rows[0][0].is_null())) return Status::Ok();  // still fails
      std::string sql = "UPDATE " + d.Table(f.table) + " SET " + d.Quote(f.column) + " = " + up + " WHERE " + kw->first;
      if (!m->write_flag.empty()) sql += " AND " + d.Quote(m->write_flag) + " IS NULL";
      auto u = conn.Query(sql, kw->second);
      if (!u.ok()) return u.status();
    }
    SLUICE_RETURN_IF_ERROR(store.ResolveDualWriteFailure(l.rec.name, f));
    resolved = true;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return resolved;
}

}  // namespace

Result<FailuresResult> Engine::Failures(const std::string& migration, bool recheck) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "list the failures of"));
  FailuresResult out;
  out.migration = name;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.DualWriteFailures(name));
  if (recheck && !all.empty()) {
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
    if (!l.rec.in_flight()) return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; nothing to recheck");
    for (const auto& f : all) {
      SLUICE_ASSIGN_OR_RETURN(bool ok, Recheck(*conn, store, l, f));
      if (ok) ++out.resolved;
    }
    SLUICE_ASSIGN_OR_RETURN(all, store.DualWriteFailures(name));
  }
  for (const auto& f : all) out.failures.push_back(ToInfo(f));
  return out;
}

Result<std::vector<std::string>> Engine::Migrate(const std::string& dir, const MigrateOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("'" + dir + "' is not a directory");
  auto skip = [&](const std::string& file, const std::string& why) {
    if (options.on_skip) options.on_skip(file, why);
  };
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
      files.push_back(e.path());
    } else {
      skip(e.path().filename().string(), e.is_regular_file() ? "not a plan file (.yaml, .yml or .json)"
                                                             : "not a regular file");
    }
  }
  if (ec) return Unavailable("cannot read the folder '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  // Validate the whole folder before changing anything.
  std::map<std::string, std::string> by_name;
  std::map<std::string, std::string> text_of;
  for (const auto& f : files) {
    SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(f.string()));
    auto [it, inserted] = by_name.emplace(p.name, f.filename().string());
    if (!inserted) {
      return InvalidArgument("'" + it->second + "' and '" + f.filename().string() + "' both name migration '" +
                             p.name + "'; keep one of them (nothing was applied)");
    }
    text_of[p.name] = p.text;
  }
  std::map<std::string, MigrationRecord> recorded;
  {
    SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
    StateStore store(*conn, clock());
    SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
    if (has_state) {
      SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
      for (auto& m : all) recorded[m.name] = std::move(m);
    }
  }
  for (const auto& [name, file] : by_name) {
    auto it = recorded.find(name);
    if (it == recorded.end() || it->second.phase == kRolledBack) continue;
    if (it->second.plan_text != text_of[name]) {
      return FailedPrecondition("'" + file + "' was changed after migration '" + name + "' was " +
                                (it->second.phase == kComplete ? "applied" : "started") + " (its text differs from "
                                "the one recorded then); restore the file, or write a new migration for the new "
                                "change (nothing was applied)");
    }
  }
  std::vector<std::string> applied;
  auto step = [&](const char* what, const std::string& name) {
    if (options.on_step) options.on_step(what, name);
  };
  for (const auto& f : files) {
    SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(f.string()));
    const std::string& name = p.name;
    std::string phase;
    {
      SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
      StateStore store(*conn, clock());
      SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
      if (has_state) {
        SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
        if (rec) phase = rec->phase;
      }
    }
    if (phase == kComplete) {
      skip(f.filename().string(), "already applied");
      continue;
    }
    if (phase != kActive) {
      step("start", name);
      SLUICE_RETURN_IF_ERROR(Start(f.string()).WithContext(name));
    }
    step("backfill", name);
    auto b = Backfill(name, options.backfill);
    if (!b.ok()) return b.status().WithContext(name);
    step("verify", name);
    SLUICE_ASSIGN_OR_RETURN(VerifyResult v, Verify(name, {}));
    if (!v.passed) {
      std::string why;
      for (const auto& c : v.checks) {
        if (!c.passed && !c.skipped) why += (why.empty() ? "" : "; ") + c.table + ": " + c.summary;
      }
      return FailedPrecondition(name + ": verification failed (" + why + "); the migration stays active: fix and "
                                       "rerun, or `sluice rollback " + name + "`");
    }
    step("complete", name);
    SLUICE_RETURN_IF_ERROR(Complete(name, {}).WithContext(name));
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

std::string NotReadyMessage(StateStore& store, const Loaded& l) {
  std::string progress;
  auto cps = store.Checkpoints(l.rec.name);
  for (const auto& task : l.compiled.backfill) {
    int64_t done = 0, total = 0;
    bool finished = cps.ok();
    bool seen = false;
    if (cps.ok()) {
      for (const auto& cp : *cps) {
        if (cp.table != task.table) continue;
        seen = true;
        done += cp.rows_done;
        total += cp.rows_total;
        finished = finished && cp.done;
      }
    }
    if (seen && finished) continue;
    char pct[32];
    snprintf(pct, sizeof pct, "%.1f", total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0.0);
    progress += (progress.empty() ? "" : ", ") + std::string("of ") + task.table + " is " + pct + "% done";
  }
  if (progress.empty()) progress = "is not recorded as done";
  return "version " + l.rec.version + " is not ready: the backfill " + progress + "; run `sluice backfill " +
         l.rec.name + "` (the new version is usable once its backfill is done; until then applications stay on " +
         (l.rec.previous_version.empty() ? std::string("the base tables") : "version " + l.rec.previous_version) + ")";
}

Status RequireVersionReady(StateStore& store, const db::Dialect& d, const std::string& version) {
  if (version.empty() || version == "live") return Status::Ok();
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return Status::Ok();
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  for (const auto& m : all) {
    if (m.version != version || !m.in_flight()) continue;
    if (m.backfill != "pending" && m.backfill != "running") return Status::Ok();
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, d, m.name));
    return FailedPrecondition(NotReadyMessage(store, l));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Session>> Engine::OpenSession(const std::string& version) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  std::string setup;
  if (conn->dialect().versioned_namespaces()) {
    StateStore store(*conn, clock());
    SLUICE_RETURN_IF_ERROR(RequireVersionReady(store, conn->dialect(), version));
    setup = conn->dialect().SessionSetupSql(version);
  } else if (!version.empty()) {
    SLUICE_ASSIGN_OR_RETURN(setup, VersionSetupSql(version));
  }
  if (!setup.empty()) {
    SLUICE_RETURN_IF_ERROR(conn->AddSessionSetup(setup).WithContext("selecting version '" + version + "'"));
  }
  return std::unique_ptr<Session>(new SessionImpl(std::move(conn)));
}

Result<std::string> Engine::VersionSetupSql(const std::string& version) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  // A version is handed out only once its backfill is done: before, it
  // would show empty new columns where up(old row) belongs.
  SLUICE_RETURN_IF_ERROR(RequireVersionReady(store, conn->dialect(), version));
  if (conn->dialect().versioned_namespaces()) return conn->dialect().SessionSetupSql(version) + "\n";
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

}  // namespace sluice::engine
