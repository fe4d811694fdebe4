// Verification and the shadow-read soak (the checks live in src/verify).
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/utf8.h"
#include "engine/engine.h"

namespace sluice::engine {

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

// Shared by the shadow-read soak and the abort watch.
Status EveryRound(double seconds, double interval, const std::atomic<bool>* cancel, Clock* clock,
                  const std::function<Result<bool>(int)>& round) {
  auto cancelled = [&] { return cancel && cancel->load(); };
  const int64_t t0 = clock->NowMicros();
  auto elapsed = [&] { return static_cast<double>(clock->NowMicros() - t0) / 1e6; };
  for (int n = 1;; ++n) {
    SLUICE_ASSIGN_OR_RETURN(bool go_on, round(n));
    if (!go_on || cancelled() || elapsed() >= seconds) break;
    // Sleep until the next round, the end of the window, or cancel.
    double until = std::min(elapsed() + std::max(interval, 0.0), seconds);
    while (!cancelled() && elapsed() < until) {
      clock->SleepMicros(std::min<int64_t>(50'000, static_cast<int64_t>((until - elapsed()) * 1e6) + 1));
    }
    if (cancelled() || elapsed() >= seconds) break;
  }
  return Status::Ok();
}

namespace {

// A session that reads `version` the way an application of that version
// connects ("" = the base tables).
Result<std::unique_ptr<db::Connection>> UseVersion(std::unique_ptr<db::Connection> c, Engine& m,
                                                   const std::string& version) {
  std::string setup;
  if (c->dialect().versioned_namespaces()) {
    setup = c->dialect().SessionSetupSql(version);
  } else if (!version.empty()) {
    SLUICE_ASSIGN_OR_RETURN(setup, m.VersionSetupSql(version));
  }
  if (!setup.empty()) SLUICE_RETURN_IF_ERROR(c->AddSessionSetup(setup).WithContext("selecting version '" + version + "'"));
  return c;
}

std::vector<std::optional<std::string>> KeyAsText(const std::vector<db::Value>& k) {
  std::vector<std::optional<std::string>> out;
  for (const auto& v : k) out.push_back(v.is_null() ? std::nullopt : std::optional<std::string>(v.text));
  return out;
}

}  // namespace

Result<VerifyResult> Engine::Verify(const std::string& migration, const VerifyOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "verify"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != engine::kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; verification compares the old and new versions of an active migration");
  }
  // Fail closed: a verification that could not run is on record as a
  // failed one, so no gate mistakes "no recent verification" for a pass.
  auto record_failed = [&](const std::string& why) {
    if (conn->in_transaction()) conn->Rollback().IgnoreError();
    nlohmann::json j = {{"migration", name},
                        {"at", IsoTime(clock()->WallMicros())},
                        {"passed", false},
                        {"could_not_run", true},
                        {"error", SanitizeUtf8(why)},
                        {"checks", nlohmann::json::array()}};
    const std::string report = j.dump();
    db::InTransaction(*conn, [&]() -> Status {
      SLUICE_RETURN_IF_ERROR(store.AddVerification(name, false, report));
      return store.AddEvent(name, "verify", options_.actor,
                            "verification FAILED: it could not run: " + SanitizeUtf8(why), report);
    }).IgnoreError();
  };
  // The new version is read through its views, which refuse until the
  // backfill is done: say so rather than fail on the first read.
  if (l.rec.backfill == "pending" || l.rec.backfill == "running") {
    const std::string why = NotReadyMessage(store, l);
    record_failed(why);
    return FailedPrecondition("verification of '" + name + "' could not run (recorded as failed): " + why);
  }
  verify::Settings vs = VerifySettingsOf(l.plan);
  if (options.reread_delay_ms) vs.reread_delay_ms = *options.reread_delay_ms;
  vs.cancel = options.cancel;
  vs.clock = clock();
  vs.connect = [this]() { return Connect(); };  // checksum workers
  if (options.checksum_workers) vs.checksum_workers = *options.checksum_workers;
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
    SLUICE_ASSIGN_OR_RETURN(auto c1, Connect());
    SLUICE_ASSIGN_OR_RETURN(old_session, UseVersion(std::move(c1), *this, l.rec.previous_version));
    SLUICE_ASSIGN_OR_RETURN(auto c2, Connect());
    SLUICE_ASSIGN_OR_RETURN(new_session, UseVersion(std::move(c2), *this, l.rec.version));
    vc.old_version = old_session.get();
    vc.new_version = new_session.get();
  }
  auto ran = verify::Run(*conn, l.compiled.version, vs, vc);
  if (!ran.ok()) {
    // (A cancel is the operator's choice, not a verdict.)
    if (ran.status().code() != StatusCode::kCancelled) record_failed(ran.status().message());
    return ran.status().WithContext("verification of '" + name + "' could not run (recorded as failed)");
  }
  verify::Report report = std::move(*ran);
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
    return store.AddEvent(name, "verify", options_.actor, report.passed ? "verification passed" : "verification FAILED");
  }));
  return out;
}

Result<WatchResult> Engine::WatchShadowReads(const std::string& migration, const WatchOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "watch"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != engine::kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; shadow reads compare the old and new versions of an active migration");
  }
  if (l.rec.backfill == "pending" || l.rec.backfill == "running") {
    return FailedPrecondition("shadow reads of '" + name + "' cannot run: " + NotReadyMessage(store, l));
  }
  verify::Settings vs = VerifySettingsOf(l.plan);
  if (options.reread_delay_ms) vs.reread_delay_ms = *options.reread_delay_ms;
  vs.cancel = options.cancel;
  vs.clock = clock();
  if (vs.validation_queries.empty()) {
    return FailedPrecondition("the plan of '" + name + "' has no verify.validation_queries to shadow-read");
  }
  SLUICE_ASSIGN_OR_RETURN(auto c1, Connect());
  SLUICE_ASSIGN_OR_RETURN(auto old_session, UseVersion(std::move(c1), *this, l.rec.previous_version));
  SLUICE_ASSIGN_OR_RETURN(auto c2, Connect());
  SLUICE_ASSIGN_OR_RETURN(auto new_session, UseVersion(std::move(c2), *this, l.rec.version));
  verify::VersionConnections vc{old_session.get(), new_session.get()};
  WatchResult out;
  out.migration = name;
  out.started_at = IsoTime(clock()->WallMicros());
  out.max_divergence = vs.max_divergence;
  nlohmann::json rounds = nlohmann::json::array();
  Status soak = EveryRound(options.seconds, options.interval_seconds, options.cancel, clock(), [&](int round) -> Result<bool> {
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
  out.ended_at = IsoTime(clock()->WallMicros());
  out.passed = out.rate <= vs.max_divergence + 1e-12;
  nlohmann::json j = {{"migration", name},          {"started_at", out.started_at}, {"ended_at", out.ended_at},
                      {"passed", out.passed},       {"keys", out.keys},             {"divergent", out.divergent},
                      {"unstable", out.unstable},   {"rate", out.rate},             {"max_divergence", out.max_divergence},
                      {"rounds", rounds}};
  out.json = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  SLUICE_RETURN_IF_ERROR(store.AddEvent(
      name, "shadow_watch", options_.actor,
      std::string(out.passed ? "shadow-read soak passed" : "shadow-read soak FAILED") + ": " +
          std::to_string(out.divergent) + " divergent of " + std::to_string(out.keys) + " keys over " +
          std::to_string(out.rounds.size()) + " rounds",
      out.json));
  return out;
}

}  // namespace sluice::engine
