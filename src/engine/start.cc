// Lint, plan preview and start (expand + dual-write + the new version's
// read path).
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/sql_text.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/phase.h"
#include "engine/preflight.h"
#include "engine/record.h"
#include "engine/schema_json.h"
#include "plan/parser.h"

namespace sluice::engine {

// The live alias exists from the first start on, pointing at the old
// version until the first switch; the rollback of the start that created
// it drops it again (unless another migration uses it by then).
void AddLiveAlias(const db::Schema& schema, const db::Dialect& d, CompiledMigration* c) {
  if (!d.versioned_namespaces() || schema.live_alias_exists) return;
  c->start.insert(c->start.begin(), db::Step{db::CreateLiveAliasStep{c->version}, "start"});
  for (auto& r : c->rollback) {
    if (r.undoes >= 0) ++r.undoes;
  }
  c->rollback.push_back(db::Step{db::DropLiveAliasStep{c->name}, "start", 0});
}

Result<CompiledMigration> CompileAsStartWould(const plan::Plan& p, const db::Schema& schema, const db::Dialect& d,
                                              const std::string& previous_version) {
  SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, Compile(p, schema, d, {"", previous_version}));
  AddLiveAlias(schema, d, &c);
  TriggerFindings tf = CheckUserTriggers(p, schema, d, c);
  std::set<std::string> suppressed;
  for (const auto& [table, triggers] : tf.to_suppress) suppressed.insert(table);
  SetBackfillSetup(d, suppressed, &c);
  return c;
}

namespace {

// When no version precedes this migration, the old application reads the
// base tables, and start's new columns change what it sees: a warning per
// such migration, naming the tables and columns and the remedy.
std::vector<std::string> NoPreviousVersionWarnings(const CompiledMigration& c, const db::Schema& schema,
                                                   const std::string& prev) {
  if (!prev.empty()) return {};
  std::map<std::string, std::string> gained;
  for (const auto& st : c.start) {
    const auto* add = std::get_if<db::AddColumnStep>(&st.body);
    if (!add || !schema.FindTable(add->table)) continue;
    std::string& cols = gained[add->table];
    cols += (cols.empty() ? "" : ", ") + add->column.name;
  }
  if (gained.empty()) return {};
  std::string tables;
  for (const auto& [t, cols] : gained) tables += (tables.empty() ? "" : "; ") + t + " (" + cols + ")";
  return {"warning: start adds columns to existing tables: " + tables +
          ". No previous version exists, so the old application reads the base tables and sees them at start "
          "(PostgreSQL: its prepared `SELECT *` statements fail with \"cached plan must not change result type\"; "
          "SQLite: `SELECT *` returns the new columns too). Publish a baseline first (`sluice baseline`) and point "
          "the old application at it (`sluice version-sql baseline`)"};
}

// A plan that is a migration already in flight: the same name and the same
// plan text as started (what `start` itself treats as "already started").
struct InFlight {
  MigrationRecord rec;
  std::vector<PhaseSql> remaining;
};

// What remains of `p` when it is in flight (nullopt when it is not): the
// statements recorded at start, as the later phases would run them now
// (CompleteSteps / RollbackSteps, the same the transitions call). Reads
// only.
Result<std::optional<InFlight>> InFlightPlan(StateStore& store, const db::Dialect& d, const plan::Plan& p) {
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return std::optional<InFlight>();
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(p.name));
  if (!rec || !rec->in_flight() || rec->plan_text != p.text) return std::optional<InFlight>();
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, d, p.name));
  InFlight out;
  out.rec = l.rec;
  const std::string& phase = l.rec.phase;
  if (phase == kStarting) out.remaining.push_back(RenderPhase(d, "start", l.compiled.start));
  if (phase == kActive && l.rec.live != "new") out.remaining.push_back(RenderPhase(d, "switch", l.switch_to_new));
  if (phase == kActive || phase == kCompleting) {
    SLUICE_ASSIGN_OR_RETURN(auto steps, CompleteSteps(store, d, l, nullptr));
    out.remaining.push_back(RenderPhase(d, "complete", steps));
  }
  if (phase != kCompleting) {
    SLUICE_ASSIGN_OR_RETURN(auto steps, RollbackSteps(store, d, l));
    out.remaining.push_back(RenderPhase(d, "rollback", steps));
  }
  return std::optional<InFlight>(std::move(out));
}

}  // namespace

Result<LintResult> Engine::Lint(const std::string& plan_path) {
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
  if (!adapter_) return out;
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  out.checked_against_database = true;
  StateStore store(*conn, clock());
  // The plan already started: checking it against the schema it changed
  // would only say "already exists"; what remains of it is the answer.
  SLUICE_ASSIGN_OR_RETURN(auto started, InFlightPlan(store, conn->dialect(), *p));
  if (started) {
    out.in_flight = started->rec.phase;
    out.live = started->rec.live;
    out.remaining = std::move(started->remaining);
    return out;
  }
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  auto compiled = Compile(*p, schema, conn->dialect(), {"", prev});
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
  for (const auto& w : NoPreviousVersionWarnings(*compiled, schema, prev)) out.warnings.push_back(w);
  Status ex = Preflight(*conn, *p, schema, &*compiled, &out.warnings);
  if (!ex.ok()) {
    out.ok = false;
    split(ex.message());
  }
  return out;
}

Result<PlanPreview> Engine::Preview(const std::string& plan_path) {
  std::vector<plan::Diagnostic> warnings;
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path, &warnings));
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(auto started, InFlightPlan(store, conn->dialect(), p));
  if (started) {
    PlanPreview out;
    out.migration = p.name;
    out.version = started->rec.version;
    out.database = std::string(conn->dialect().name());
    out.warnings = WarningsToStrings(warnings);
    out.in_flight = started->rec.phase;
    out.live = started->rec.live;
    out.phases = std::move(started->remaining);
    return out;
  }
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  const db::Dialect& d = conn->dialect();
  SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, CompileAsStartWould(p, schema, d, prev));
  PlanPreview out;
  out.migration = c.name;
  out.version = c.version.name;
  out.database = std::string(d.name());
  out.warnings = WarningsToStrings(warnings);
  for (const auto& w : WarningsToStrings(c.warnings)) out.warnings.push_back(w);
  out.phases = {RenderPhase(d, "start", c.start), BackfillPhase(d, c), RenderPhase(d, "complete", c.complete),
                RenderPhase(d, "rollback", c.rollback)};
  return out;
}

// --- start --------------------------------------------------------------------------

namespace {

// The existing tables a plan's operations name (before compiling: a table
// another in-flight migration has changed may no longer compile cleanly).
std::set<std::string> TablesNamed(const plan::Plan& p) {
  std::set<std::string> out;
  for (const auto& op : p.operations) {
    std::visit(
        [&](const auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (requires { o.table.value; }) out.insert(o.table.value);
          if constexpr (std::is_same_v<T, plan::RenameTable>) out.insert(o.from.value);
          if constexpr (std::is_same_v<T, plan::DropTable>) out.insert(o.name.value);
        },
        op.body);
  }
  return out;
}

// kFailedPrecondition when another in-flight migration changes one of
// `tables` or uses `version`.
Status RefuseConflicts(const std::vector<MigrationRecord>& all, const std::string& name,
                       const std::set<std::string>& tables, const std::string& version) {
  for (const auto& m : all) {
    if (!m.in_flight() || m.name == name) continue;
    for (const auto& t : m.tables) {
      if (tables.count(t)) {
        return FailedPrecondition("table '" + t + "' is being changed by migration '" + m.name + "' (" + m.phase +
                                  "); complete or roll it back before starting '" + name + "'");
      }
    }
    if (!version.empty() && m.version == version) {
      return FailedPrecondition("version name '" + version + "' is already used by migration '" + m.name + "'");
    }
  }
  return Status::Ok();
}

}  // namespace

Status Engine::Start(const std::string& plan_path, std::vector<std::string>* warnings_out) {
  const int64_t began = clock()->NowMicros();  // the event records how long start took
  std::vector<plan::Diagnostic> warnings;
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path, &warnings));
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  const db::Dialect& d = conn->dialect();
  StateStore store(*conn, clock());
  // A first look, to refuse early and cheaply; Transition checks again
  // inside the transaction that performs the start.
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  std::vector<MigrationRecord> all;
  std::optional<MigrationRecord> existing;
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(existing, store.Get(p.name));
    if (existing) {
      if (existing->phase == kComplete) {
        return FailedPrecondition("migration '" + p.name + "' is already complete");
      }
      if (existing->in_flight() && existing->plan_text != p.text) {
        return FailedPrecondition("migration '" + p.name + "' is already " + existing->phase +
                                  " with a different plan text; roll it back before starting the changed plan");
      }
      if (existing->phase == kActive || existing->phase == kCompleting) {
        return Status::Ok();  // already started: rerunning converges
      }
      if (existing->phase == kRollingBack) {
        return FailedPrecondition("migration '" + p.name + "' is being rolled back; rerun `sluice rollback " +
                                  p.name + "` first");
      }
    }
    SLUICE_ASSIGN_OR_RETURN(all, store.List());
  }

  MigrationRecord rec;
  Recording recording;
  std::vector<std::string> start_warnings;
  if (existing && existing->phase == kStarting) {
    // Resuming an interrupted start: replay what it recorded.
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, d, p.name));
    rec = l.rec;
    recording.compiled = std::move(l.compiled);
  } else {
    // Reading the catalog and checking the expressions touch the tables
    // (PostgreSQL's pg_get_expr locks them): under the same lock timeout and
    // retry budget as the phase itself, so a session holding a conflicting
    // lock makes start fail naming it instead of waiting forever.
    const bool timeout = !d.LockTimeoutSql(options_.lock_timeout_ms).empty();
    auto bounded = [&](const std::vector<std::string>& tables, const std::function<Status()>& fn) -> Status {
      return RetryLocks(*conn, options_, tables, [&]() -> Status {
        if (timeout) {
          SLUICE_RETURN_IF_ERROR(
              conn->Exec("SET lock_timeout = '" + std::to_string(options_.lock_timeout_ms) + "ms'"));
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
    // Read after the catalog: whatever another start committed before our
    // look at the catalog is in this list, so its objects are blamed on it.
    SLUICE_ASSIGN_OR_RETURN(has_state, store.Exists());
    if (has_state) {
      SLUICE_ASSIGN_OR_RETURN(all, store.List());
    }
    std::string prev;
    for (const auto& m : all) {
      if (m.phase == kComplete) prev = m.version;
    }
    SLUICE_RETURN_IF_ERROR(RefuseConflicts(all, p.name, TablesNamed(p), ""));
    SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, Compile(p, schema, d, {"", prev}));
    AddLiveAlias(schema, d, &c);
    // The tables' own triggers and a trial of `up`/`down` on real rows, in
    // a transaction that is rolled back: refused here, nothing changed.
    SLUICE_RETURN_IF_ERROR(bounded(std::vector<std::string>(c.tables.begin(), c.tables.end()), [&]() -> Status {
      start_warnings.clear();
      return Preflight(*conn, p, schema, &c, &start_warnings);
    }));
    for (const auto& w : NoPreviousVersionWarnings(c, schema, prev)) start_warnings.push_back(w);
    rec.name = p.name;
    rec.version = c.version.name;
    rec.previous_version = prev;
    rec.plan_file = p.file;
    rec.plan_format = p.format;
    rec.plan_text = p.text;
    rec.schema_before = SchemaToJson(schema);
    rec.tables.assign(c.tables.begin(), c.tables.end());
    rec.backfill = c.backfill.empty() ? "none" : "pending";
    rec.live = "old";
    recording = Record(c, d);
  }
  const CompiledMigration& c = recording.compiled;
  nlohmann::json details = {{"plan_file", p.file}, {"version", c.version.name}, {"tables", rec.tables},
                            {"sluice_version", SluiceVersion()}};
  if (!start_warnings.empty()) details["warnings"] = start_warnings;

  PhaseRun run;
  run.migration = p.name;
  run.phase = "start";
  run.steps = c.start;
  run.tables = rec.tables;
  run.from = {"", kRolledBack, kStarting};
  run.before = [&](const std::optional<MigrationRecord>& current) -> Status {
    if (current && current->phase == kStarting) {
      if (current->plan_text != p.text) {
        return FailedPrecondition("migration '" + p.name + "' is being started with a different plan text by "
                                  "another sluice process; nothing was changed");
      }
      return Status::Ok();  // resuming: the record and the claims are in place
    }
    // What the first look saw may have changed: decide again, in here.
    SLUICE_ASSIGN_OR_RETURN(auto now, store.List());
    std::string prev;
    for (const auto& m : now) {
      if (m.phase == kComplete) prev = m.version;
    }
    if (prev != rec.previous_version) {
      return FailedPrecondition("migration '" + prev + "' completed while '" + p.name + "' was being started; "
                                "nothing was changed: rerun `sluice start`");
    }
    SLUICE_RETURN_IF_ERROR(RefuseConflicts(now, p.name, c.tables, c.version.name));
    for (const auto& t : rec.tables) SLUICE_RETURN_IF_ERROR(store.Claim(p.name, t));
    SLUICE_ASSIGN_OR_RETURN(rec.seq, store.NextSeq());
    rec.phase = kStarting;
    SLUICE_RETURN_IF_ERROR(store.ClearProgress(p.name));
    SLUICE_RETURN_IF_ERROR(store.Upsert(rec));
    return store.PutRecording(p.name, recording.format, recording.sluice_version, RecordingToJson(recording));
  };
  run.record = [&](bool finished) -> Status {
    if (!finished) return Status::Ok();
    SLUICE_RETURN_IF_ERROR(MovePhase(store, p.name, kStarting, kActive));
    details["seconds"] = std::round(SecondsSince(clock(), began) * 1000) / 1000;
    return store.AddEvent(p.name, "start", options_.actor, "expanded: version " + c.version.name + " published",
                          details.dump());
  };
  Status s = Transition(*conn, store, options_, run);
  if (s.ok() && warnings_out) warnings_out->insert(warnings_out->end(), start_warnings.begin(), start_warnings.end());
  if (!s.ok() && !d.transactional_ddl()) {
    // The catalog changes may have committed before a later statement (an
    // index build) failed: undo them so the migration stays where it was.
    // A lost connection is left to a rerun, which resumes.
    auto now = store.Get(p.name);
    if (s.code() != StatusCode::kUnavailable && now.ok() && *now && (*now)->phase == kStarting) {
      Status undo = Rollback(p.name, false);
      return s.WithContext(undo.ok() ? "start failed and was rolled back (the database is as before)"
                                     : "start failed, and rolling it back failed too (" + undo.message() +
                                           "); run `sluice rollback " + p.name + "`");
    }
  }
  return s;
}

}  // namespace sluice::engine
