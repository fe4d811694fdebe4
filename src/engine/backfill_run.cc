// The backfill verb: settings from the plan and the command line, the
// backfill gate, and the record of its outcome (src/backfill walks the
// chunks).
#include <nlohmann/json.hpp>

#include "backfill/backfill.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "engine/phase.h"

namespace sluice::engine {
namespace {

// Throttle defaults: generous enough never to slow a healthy database, tight
// enough to back off when the application starts to suffer.
constexpr int64_t kDefaultProbeTargetMs = 50;
constexpr double kDefaultMaxReplicaLagSeconds = 10;
// Any session waiting on the backfill's locks slows it down.
constexpr int64_t kDefaultMaxLockWaiters = 0;

// Inside a transaction: the migration is still active (its row locked).
Status RequireActive(StateStore& store, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.LockRecord(name));
  if (!rec || rec->phase != kActive) {
    return FailedPrecondition("migration '" + name + "' is " + (rec ? rec->phase : std::string("gone")) +
                              " now (changed by another sluice process); the backfill stops");
  }
  return Status::Ok();
}

}  // namespace

Result<BackfillSummary> Engine::Backfill(const std::string& migration, const BackfillOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  std::vector<std::string> names;
  if (!migration.empty()) {
    names.push_back(migration);
  } else {
    SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
    for (const auto& m : all) {
      if (m.phase == kActive) names.push_back(m.name);
    }
    if (names.empty()) return FailedPrecondition("no active migration to backfill (see `sluice status`)");
  }
  BackfillSummary summary;
  int64_t t0 = clock()->NowMicros();
  for (const auto& name : names) {
    // The lock first, then the record: a rollback or complete that won the
    // lock before us has changed the phase, and this read sees it.
    NamedLock lock;
    SLUICE_RETURN_IF_ERROR(lock.Acquire(*conn, "migration:" + name, "migration '" + name + "'"));
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
    if (l.rec.phase != kActive) {
      return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can be backfilled");
    }
    summary.migrations.push_back(name);
    if (l.compiled.backfill.empty() || l.rec.backfill == "done") continue;
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
      return InvalidArgument(std::string(conn->dialect().name()) +
                             " allows one writer at a time; use --workers 1 (or drop backfill.workers)");
    }
    SLUICE_RETURN_IF_ERROR(db::InTransaction(*conn, [&]() -> Status {
      SLUICE_RETURN_IF_ERROR(RequireActive(store, name));
      return store.SetField(name, "backfill", "running");
    }));
    // Each chunk holds the migration's row (shared) while it writes: a
    // complete or rollback, which locks it for update, waits for the chunk
    // and the next chunk sees the phase it left.
    s.chunk_guard_sql = "SELECT 1 FROM " + conn->dialect().StateTable("migrations") +
                        " WHERE name = $1 AND phase = 'active'" + conn->dialect().SharedLockRowsClause();
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
    SLUICE_ASSIGN_OR_RETURN(auto work, Connect());
    int64_t rows_before = 0;
    backfill::Hooks hooks;
    hooks.cancel = options.cancel;
    hooks.clock = clock();
    hooks.connect = [this]() { return Connect(); };
    std::string replica_url = !options.replica_url.empty() ? options.replica_url : pb.replica_url.value_or("");
    std::shared_ptr<db::Adapter> replica;
    if (!replica_url.empty()) {
      db::OpenOptions ro;
      ro.schema = options_.schema;
      ro.state_schema = options_.state_schema;
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
      auto cancelled = [&] { return options.cancel && options.cancel->load(); };
      for (int i = 0; i < 20 && !cancelled(); ++i) {
        if (conn->Reconnect().ok()) break;
        for (int slice = 0; slice < 10 && !cancelled(); ++slice) clock()->SleepMicros(50'000);
      }
      lock.Release();
      (void)lock.Acquire(*conn, "migration:" + name, "migration '" + name + "'");
    }
    auto after = store.Checkpoints(name);
    int64_t rows_after = 0;
    if (after.ok()) {
      for (const auto& cp : *after) rows_after += cp.rows_done;
    }
    summary.rows += rows_after - rows_before;
    if (!result.ok()) {
      store.AddEvent(name, result.code() == StatusCode::kCancelled ? "backfill.paused" : "backfill.error",
                     options_.actor, result.message())
          .IgnoreError();
      return result;
    }
    // The backfill gate: parity between the old and the new read path
    // before the backfill is declared done.
    {
      SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
      SLUICE_ASSIGN_OR_RETURN(in.parity, MeasureParity(*conn, l));
      gates::GateResult g = gates::EvaluateBackfill(in);
      if (!g.passed) {
        return FailedPrecondition("the backfill of '" + name + "' finished but its gate is not passed: " + g.Reason() +
                                  "; fix that and rerun `sluice backfill " + name + "`");
      }
    }
    Status fin = db::InTransaction(*conn, [&]() -> Status {
      SLUICE_RETURN_IF_ERROR(RequireActive(store, name));
      SLUICE_RETURN_IF_ERROR(store.SetField(name, "backfill", "done"));
      nlohmann::json det = {{"rows", rows_after}};
      return store.AddEvent(name, "backfill.done", options_.actor,
                            "backfill finished: " + std::to_string(rows_after) + " rows", det.dump());
    });
    SLUICE_RETURN_IF_ERROR(fin);
  }
  summary.seconds = static_cast<double>(clock()->NowMicros() - t0) / 1e6;
  return summary;
}

}  // namespace sluice::engine
