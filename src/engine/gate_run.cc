// Gate evidence and enforcement (the rules live in src/gates): the
// scorecard, sign-offs and the abort watch after the switch.
#include <algorithm>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "engine/engine.h"

namespace sluice::engine {
namespace {

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

std::string ProbeStats::ToJson() const {
  return nlohmann::json{{"probes", probes}, {"errors", errors}, {"p99_ms", p99_ms}}.dump();
}

ProbeStats MeasureProbe(const std::function<Result<std::unique_ptr<db::Connection>>()>& connect, const Loaded& l,
                        int n, Clock* clock) {
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
  if (!live.empty()) conn.AddSessionSetup(live).IgnoreError();
  std::string sql = l.plan.abort.probe_query.value_or("");
  if (sql.empty()) {
    std::string table = l.rec.tables.empty() ? "" : l.rec.tables[0];
    sql = table.empty() ? "SELECT 1" : "SELECT count(*) FROM (SELECT 1 FROM " + d.Table(table) + " LIMIT 1) probe";
  }
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    int64_t t0 = clock->NowMicros();
    auto r = conn.Query(sql);
    ms.push_back(static_cast<double>(clock->NowMicros() - t0) / 1000.0);
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

Result<gates::Inputs> GateInputs(StateStore& store, const Loaded& l) {
  gates::Inputs in;
  in.settings = &l.plan.gates;
  in.phase = l.rec.phase;
  in.backfill = l.rec.backfill;
  in.live = l.rec.live;
  in.has_backfill = !l.compiled.backfill.empty();
  in.has_dual_write = std::any_of(l.compiled.version.tables.begin(), l.compiled.version.tables.end(),
                                  [](const db::TableMapping& t) { return t.has_dual_write(); });
  SLUICE_ASSIGN_OR_RETURN(auto v, store.LastVerification(l.rec.name));
  if (v) {
    in.last_verify_passed = v->passed;
    in.last_verify_at = v->at;
    // The report's own start time is what the gates compare with the end of
    // the backfill, and its could_not_run/error fields fail the check.
    in.last_verify_report = v->report;
  }
  SLUICE_ASSIGN_OR_RETURN(auto events, store.Events(l.rec.name));
  for (const auto& e : events) in.events.push_back({e.at, e.kind, e.actor, e.message, e.details});
  if (in.has_dual_write) {
    auto n = store.DualWriteFailureCount(l.rec.name);
    auto some = store.DualWriteFailures(l.rec.name, 3);
    if (n.ok() && some.ok()) {  // unreadable: left unset, the check fails
      in.dual_write_failures = *n;
      for (const auto& f : *some) in.dual_write_failure_keys.push_back(f.table + " " + f.key + " " + f.column);
    }
  }
  in.audit = AuditEvidence(store, l, in.events);
  in.now = store.clock()->WallMicros() / 1'000'000;
  return in;
}

Status PassGate(StateStore& store, const std::string& name, const gates::GateResult& g,
                const TransitionOptions& options, const std::string& actor) {
  // Checked first, so a refused --force records nothing.
  if (options.force && options.reason.empty()) {
    return InvalidArgument("--force needs --reason TEXT (it is recorded in the audit log)");
  }
  if (g.passed) {
    // Recorded too, so the report shows every gate decision with the
    // evidence it was made on (src/handoff).
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : g.checks) checks.push_back({{"check", c.check}, {"passed", c.passed}, {"detail", c.detail}});
    SLUICE_RETURN_IF_ERROR(
        store.AddEvent(name, "gate.passed", actor, g.gate + " gate passed",
                       nlohmann::json{{"gate", g.gate}, {"configured", g.configured}, {"checks", checks}}.dump(
                           -1, ' ', false, nlohmann::json::error_handler_t::replace)));
    if (!options.force) return Status::Ok();
    // The operator's --force and its reason are kept even though nothing
    // was overridden: a kind of its own (`gate.forced`), so reports and
    // hooks never count it as a gate forced past.
    nlohmann::json d = {{"gate", g.gate}, {"reason", options.reason}, {"forced_while_passing", true}};
    return store.AddEvent(name, "gate.forced", actor,
                          "FORCED WHILE PASSING: " + g.gate + " gate passed; --force given anyway: " + options.reason,
                          d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
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
  nlohmann::json d = {{"gate", g.gate}, {"reason", options.reason}, {"failed", failed}};
  return store.AddEvent(name, "gate.override", actor,
                        "GATE OVERRIDDEN: " + g.gate + " gate forced past (" + g.Reason() + "): " + options.reason,
                        d.dump());
}

Result<std::vector<GateInfo>> Engine::Gates(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "inspect"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
  std::vector<GateInfo> out;
  for (const auto& g : gates::EvaluateAll(in)) out.push_back(ToInfo(g));
  return out;
}

Status Engine::Signoff(const std::string& migration, const std::string& gate, const std::string& who,
                         const std::string& role, const std::string& note) {
  if (gate != "backfill" && gate != "switch" && gate != "complete") {
    return InvalidArgument("unknown gate '" + gate + "' (backfill, switch or complete)");
  }
  if (who.empty() || role.empty()) return InvalidArgument("a sign-off needs --as NAME and --role ROLE");
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "sign off"));
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  if (!rec->in_flight()) return FailedPrecondition("migration '" + name + "' is " + rec->phase + "; nothing to sign off");
  nlohmann::json d = {{"gate", gate}, {"name", who}, {"role", role}, {"note", note}};
  return store.AddEvent(name, "signoff", options_.actor,
                        who + " (" + role + ") signed off the " + gate + " gate" + (note.empty() ? "" : ": " + note),
                        d.dump());
}

Result<AbortWatchResult> Engine::Watch(const std::string& migration, const AbortWatchOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
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
  auto connect = [this] { return Connect(); };
  int64_t probes = 0, errors = 0, keys = 0, divergent = 0;
  nlohmann::json rounds = nlohmann::json::array();
  Status watched = EveryRound(options.seconds, options.interval_seconds, options.cancel, clock(), [&](int n) -> Result<bool> {
    out.rounds = n;
    ProbeStats ps = MeasureProbe(connect, l, 10, clock());
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
      SLUICE_RETURN_IF_ERROR(Switch(name, true, {}));
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
    SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "abort", options_.actor,
                                          "ABORTED after switch: " + out.reason + "; reads switched back", out.json));
  } else {
    SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "watch", options_.actor,
                                          fmt::format("watched {} rounds: no abort criterion breached", out.rounds),
                                          out.json));
  }
  return out;
}

}  // namespace sluice::engine
