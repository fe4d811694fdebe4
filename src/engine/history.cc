// A migration's recorded history for the handoff documents (history.h):
// Migrator::History, Migrator::Handoff and the report archive that complete
// and rollback keep in the `reports` state table.
#include "engine/history.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "common/clock.h"
#include "common/sql_text.h"
#include "engine/record.h"
#include "handoff/handoff.h"
#include "plan/parser.h"

namespace sluice::engine {

using db::Value;

MigrationInfo BasicInfo(const MigrationRecord& m) {
  MigrationInfo i;
  i.name = m.name;
  i.phase = m.phase;
  i.version = m.version;
  i.previous_version = m.previous_version;
  i.live = m.live;
  // A completed or rolled-back migration has no backfill to report.
  i.backfill = m.in_flight() ? m.backfill : "";
  i.version_ready = !m.in_flight() || (m.backfill != "pending" && m.backfill != "running");
  i.tables = m.tables;
  i.created_at = m.created_at;
  i.updated_at = m.updated_at;
  i.completed_at = m.completed_at;
  return i;
}

PhaseSql RenderPhase(const db::Dialect& d, const std::string& phase, const std::vector<db::Step>& steps) {
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
      ps.locks.push_back(LockText(d.LockOf(s, st)));
    }
  }
  return ps;
}

PhaseSql BackfillPhase(const db::Dialect& d, const CompiledMigration& c) {
  PhaseSql bf;
  bf.phase = "backfill";
  for (const auto& t : c.backfill) {
    std::string set;
    for (size_t i = 0; i < t.assignments.size(); ++i) {
      set += (i ? ", " : "") + d.Quote(t.assignments[i].target) + " = " + sql::ScalarExpression(t.assignments[i].expr);
    }
    std::string key;
    for (size_t i = 0; i < t.key.size(); ++i) key += (i ? ", " : "") + d.Quote(t.key[i]);
    std::string setup;
    for (const auto& st : t.setup_sql) setup += st + ";\n";
    bf.statements.push_back("-- per chunk, in one transaction with its checkpoint, walking (" + key +
                            ") in order up to the highest key present at the first chunk:\n" + setup + "UPDATE " +
                            d.Table(t.table) + " SET " + set + " WHERE " +
                            (t.skip_flag.empty() ? "" : d.Quote(t.skip_flag) + " IS NULL AND ") + "(" + key +
                            ") > (<last checkpoint>) AND (" + key + ") <= (<chunk end>)");
    bf.locks.push_back(LockText(BackfillChunkLock(d, t)));
  }
  return bf;
}

namespace {

std::vector<PhaseSql> PhasesOf(const db::Dialect& d, const Loaded& l) {
  return {RenderPhase(d, "start", l.compiled.start),          BackfillPhase(d, l.compiled),
          RenderPhase(d, "switch", l.switch_to_new),          RenderPhase(d, "switch_back", l.switch_back),
          RenderPhase(d, "complete", l.compiled.complete),    RenderPhase(d, "rollback", l.compiled.rollback)};
}

GateRequirementInfo GateReq(const std::string& name, const plan::Gate& g) {
  GateRequirementInfo r;
  r.gate = name;
  if (g.max_verify_age_seconds) {
    r.criteria.push_back(fmt::format("a passing verification at most {} s old", *g.max_verify_age_seconds));
  }
  if (g.max_divergence) r.criteria.push_back(fmt::format("shadow-read divergence at most {:g}", *g.max_divergence));
  if (g.soak_seconds) r.criteria.push_back(fmt::format("a shadow-read soak of at least {} s", *g.soak_seconds));
  if (g.observation_seconds) {
    r.criteria.push_back(fmt::format("reads on the new version for at least {} s (observation window)",
                                     *g.observation_seconds));
  }
  for (const auto& s : g.signoffs) r.roles.push_back(s.role);
  return r;
}

Result<std::vector<BackfillTableInfo>> BackfillOf(StateStore& store, const db::Dialect& d, const std::string& name) {
  std::map<std::string, BackfillTableInfo> by_table;
  SLUICE_ASSIGN_OR_RETURN(auto cps, store.Checkpoints(name));
  for (const auto& cp : cps) {
    const bool first = !by_table.count(cp.table);
    auto& t = by_table[cp.table];
    t.table = cp.table;
    t.rows_done += cp.rows_done;
    t.rows_total += cp.rows_total;
    t.chunks += cp.chunks;
    t.done = (first || t.done) && cp.done;  // every worker's range done
  }
  auto r = store.conn().Query("SELECT tbl, coalesce(sum(millis), 0), min(committed_at), max(committed_at) FROM " +
                                  d.StateTable("chunks") + " WHERE migration = $1 GROUP BY tbl ORDER BY tbl",
                              {Value::Text(name)});
  if (!r.ok()) return r.status();
  for (const auto& row : r->rows) {
    auto& t = by_table[row[0].text];
    t.table = row[0].text;
    t.chunk_seconds = row[1].AsReal() / 1000.0;
    t.first_chunk_at = row[2].is_null() ? "" : row[2].text;
    t.last_chunk_at = row[3].is_null() ? "" : row[3].text;
    auto first = gates::ParseIsoMillis(t.first_chunk_at), last = gates::ParseIsoMillis(t.last_chunk_at);
    if (first && last && *last > *first) {
      t.rows_per_second = static_cast<double>(t.rows_done) / (static_cast<double>(*last - *first) / 1e3);
    }
  }
  std::vector<BackfillTableInfo> out;
  for (auto& [table, t] : by_table) out.push_back(std::move(t));
  return out;
}

}  // namespace

PlanRequirements RequirementsOf(const plan::Plan& p, const CompiledMigration& c) {
  PlanRequirements r;
  for (const auto& q : p.verify.validation_queries) {
    r.validation_queries.push_back(q.name.value + " (" + q.table + "): " + q.sql);
  }
  for (const auto& i : p.verify.invariants) {
    r.invariants.push_back(i.name.value + ": " + (i.check.empty() ? i.sql : i.table + " CHECK " + i.check));
  }
  const auto& v = p.verify;
  if (v.max_divergence) r.verify_settings.push_back(fmt::format("max_divergence: {:g}", *v.max_divergence));
  if (v.shadow_sample) r.verify_settings.push_back(fmt::format("shadow_sample: {:g}", *v.shadow_sample));
  if (v.max_drift) r.verify_settings.push_back(fmt::format("max_drift: {:g}", *v.max_drift));
  if (v.checksum_chunk_rows) r.verify_settings.push_back(fmt::format("checksum_chunk_rows: {}", *v.checksum_chunk_rows));
  if (p.gates.backfill.present) r.gates.push_back(GateReq("backfill", p.gates.backfill));
  if (p.gates.switch_.present) r.gates.push_back(GateReq("switch", p.gates.switch_));
  if (p.gates.complete.present) r.gates.push_back(GateReq("complete", p.gates.complete));
  const auto& a = p.abort;
  if (a.max_error_rate) r.abort_criteria.push_back(fmt::format("probe error rate above {:g}", *a.max_error_rate));
  if (a.max_p99_ratio) {
    r.abort_criteria.push_back(fmt::format("probe p99 above {:g}x its pre-switch baseline", *a.max_p99_ratio));
  }
  if (a.max_divergence) r.abort_criteria.push_back(fmt::format("shadow-read divergence above {:g}", *a.max_divergence));
  r.probe_query = a.probe_query.value_or("");
  r.backfill_windows = p.backfill.allowed_windows;
  r.backfill_max_rows_per_second = p.backfill.max_rows_per_second;
  r.reversible = !c.irreversible;
  r.irreversible_ops = c.irreversible_ops;
  return r;
}

Result<MigrationHistory> BuildHistory(StateStore& store, const db::Dialect& d, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, d, name));
  const MigrationRecord& m = l.rec;
  MigrationHistory h;
  h.database = std::string(d.name());
  h.plan_file = m.plan_file;
  h.plan_text = m.plan_text;
  h.read_at = IsoTime(store.clock()->WallMicros());
  h.info = BasicInfo(m);
  MigrationInfo& i = h.info;
  i.version_hint = d.VersionSelectHint(m.version);

  SLUICE_ASSIGN_OR_RETURN(auto events, store.Events(name));
  for (const auto& e : events) {
    EventInfo info;
    info.id = e.id;
    info.at = e.at;
    info.kind = e.kind;
    info.actor = e.actor;
    info.message = e.message;
    info.details = e.details;
    info.migration = name;
    h.events.push_back(std::move(info));
    if (e.kind == "gate.override" || e.kind == "gate.forced") i.overrides.push_back(e.message + " (by " + e.actor + " at " + e.at + ")");
  }
  auto v = store.conn().Query("SELECT id, at, passed, report FROM " + d.StateTable("verifications") +
                                  " WHERE migration = $1 ORDER BY id",
                              {Value::Text(name)});
  if (!v.ok()) return v.status();
  for (const auto& row : v->rows) {
    h.verifications.push_back({row[0].AsInt(), row[1].text, row[2].AsInt() != 0, row[3].text});
  }
  if (!h.verifications.empty()) {
    i.last_verify_passed = h.verifications.back().passed;
    i.last_verify_at = h.verifications.back().at;
  }
  SLUICE_ASSIGN_OR_RETURN(h.backfill, BackfillOf(store, d, name));
  for (const auto& t : h.backfill) {
    i.rows_done += t.rows_done;
    i.rows_total += t.rows_total;
    i.chunks += t.chunks;
  }
  SLUICE_ASSIGN_OR_RETURN(auto lease, store.GetLease(name));
  if (lease) {
    i.backfill_holder = lease->holder;
    i.backfill_started_at = lease->started_at;
    i.backfill_heartbeat_at = lease->heartbeat_at;
    i.backfill_stopped_at = lease->stopped_at;
    i.backfill_last_error = lease->last_error;
  }
  if (m.plan_format != "baseline") {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    for (const auto& g : gates::EvaluateAll(in)) {
      GateInfo gi;
      gi.gate = g.gate;
      gi.configured = g.configured;
      gi.passed = g.passed;
      gi.signoffs = g.signoffs;
      for (const auto& c : g.checks) gi.checks.push_back({c.check, c.passed, c.detail});
      h.gates.push_back(std::move(gi));
    }
  }
  SLUICE_ASSIGN_OR_RETURN(h.rehearsals, ReadRehearsals(store.conn(), name));
  SLUICE_ASSIGN_OR_RETURN(h.estimate, ReadEstimate(store.conn(), name));
  SLUICE_RETURN_IF_ERROR(FillEstimateVsActual(store.conn(), name, &i));
  h.phases = PhasesOf(d, l);
  h.requirements = RequirementsOf(l.plan, l.compiled);
  // The archive is read only when it exists: state made by an older sluice
  // has no `reports` table.
  auto a = store.conn().Query("SELECT at, body FROM " + d.StateTable("reports") + " WHERE migration = $1",
                              {Value::Text(name)});
  if (a.ok() && !a->rows.empty()) {
    h.archived_at = a->rows[0][0].text;
    h.archived_report = a->rows[0][1].text;
  } else if (!a.ok() && a.status().code() != StatusCode::kNotFound) {
    return a.status();
  }
  return h;
}

Status EnsureStateTable(db::Connection& conn, const std::string& base, bool with_schema) {
  const db::Dialect& d = conn.dialect();
  const std::string create = "CREATE TABLE IF NOT EXISTS " + d.StateTable(base) + " ";
  bool created = false;
  const std::string serialise = d.StateSetupLockSql();
  if (!serialise.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(serialise));
  for (const auto& ddl : d.StateSchema()) {
    const bool schema = ddl.rfind("CREATE SCHEMA ", 0) == 0;
    if (!(schema && with_schema) && ddl.rfind(create, 0) != 0) continue;
    SLUICE_RETURN_IF_ERROR(conn.Exec(ddl));
    created = created || !schema;
  }
  if (!created) return Internal("the dialect has no `" + base + "` state table");
  return Status::Ok();
}

Status ArchiveReport(StateStore& store, const db::Dialect& d, const std::string& name) {
  // Only the `reports` table's own DDL: the rest of the state schema exists
  // (this runs inside a transition), and a CREATE SCHEMA could need a
  // privilege the migration's owner lacks.
  const std::string table = d.StateTable("reports");
  // Both tables the history reads: a failed read of a missing table would
  // abort this (PostgreSQL) transaction.
  SLUICE_RETURN_IF_ERROR(EnsureStateTable(store.conn(), "reports", false));
  SLUICE_RETURN_IF_ERROR(EnsureStateTable(store.conn(), "rehearsals", false));
  SLUICE_RETURN_IF_ERROR(EnsureStateTable(store.conn(), "estimates", false));
  SLUICE_ASSIGN_OR_RETURN(MigrationHistory h, BuildHistory(store, d, name));
  h.archived_at = h.read_at;
  h.archived_report.clear();
  const std::string body = handoff::ReportJson(h);
  return store.conn()
      .Query("INSERT INTO " + table + " (migration, at, format, body) VALUES ($1, $2, 'json', $3) ON CONFLICT "
             "(migration) DO UPDATE SET at = excluded.at, format = excluded.format, body = excluded.body",
             {Value::Text(name), Value::Text(h.read_at), Value::Text(body)})
      .status();
}

// --- the public entry points ---------------------------------------------------

Result<MigrationHistory> Engine::History(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  std::string name = migration;
  if (name.empty()) {
    SLUICE_ASSIGN_OR_RETURN(name, ResolveMigration(store, migration, "report on"));
  }
  return BuildHistory(store, conn->dialect(), name);
}

Result<HandoffPlan> Engine::Handoff(const std::string& plan_path) {
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path));
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  const db::Dialect& d = conn->dialect();
  StateStore store(*conn, clock());
  HandoffPlan out;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  std::optional<MigrationRecord> rec;
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(rec, store.Get(p.name));
  }
  if (rec) {
    SLUICE_ASSIGN_OR_RETURN(out.history, BuildHistory(store, d, p.name));
    out.started = true;
  }
  // Rehearsals happen before start, so they exist without a record.
  SLUICE_ASSIGN_OR_RETURN(out.rehearsals, ReadRehearsals(*conn, p.name));
  if (rec && rec->phase != kRolledBack) {
    if (rec->plan_text != p.text) {
      return FailedPrecondition("migration '" + p.name + "' was started from a different text of " + plan_path +
                                "; the runbook follows what was started: restore the file, or roll the migration "
                                "back first");
    }
    out.plan.migration = p.name;
    out.plan.version = rec->version;
    out.plan.database = std::string(d.name());
    out.plan.phases = out.history.phases;
    out.requirements = out.history.requirements;
    return out;
  }
  // Not started (or rolled back, so a new start compiles afresh): what
  // `sluice plan` shows, plus the switch that re-points the live alias.
  SLUICE_ASSIGN_OR_RETURN(out.plan, Preview(plan_path));
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, Compile(p, schema, d, {"", prev}));
  std::vector<PhaseSql> phases;
  for (auto& ph : out.plan.phases) {
    phases.push_back(std::move(ph));
    if (phases.back().phase == "backfill") {
      phases.push_back(RenderPhase(d, "switch", {{db::SetLiveStep{c.version.name, c.version}, "switch"}}));
      phases.push_back(RenderPhase(d, "switch_back", {{db::SetLiveStep{c.version.previous, c.version}, "switch back"}}));
    }
  }
  out.plan.phases = std::move(phases);
  out.requirements = RequirementsOf(p, c);
  return out;
}

}  // namespace sluice::engine
