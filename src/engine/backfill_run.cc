// The backfill verb: settings from the plan and the command line, the
// run's lease (heartbeat), the backfill gate, the version becoming ready,
// and the record of its outcome (src/backfill walks the chunks).
#include <unistd.h>

#include <condition_variable>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backfill/backfill.h"
#include "common/clock.h"
#include "common/thread_annotations.h"
#include "engine/engine.h"
#include "engine/phase.h"

namespace sluice::engine {
namespace {

// How often a run renews its lease unless told otherwise; `status` calls it
// stopped after 3 intervals without a renewal.
constexpr int64_t kDefaultHeartbeatMs = 2000;

std::string ThisProcess() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::to_string(getpid()) + "@" + host;
}

// Renews a backfill run's lease from its own thread and session every
// interval until Stop(), so `status` on any machine can tell a running
// backfill from one whose process died (SIGKILL, crash, lost host): the
// heartbeat stops with the process. A failed renewal (lost connection) is
// retried at the next interval on a new session. Not copyable; Stop() (or
// the destructor) joins the thread.
class Heartbeat {
 public:
  // `stamps`: the engine's clock, for the times the renewals record; the
  // interval itself is waited on the real clock (a fake clock that
  // advances on every wait would turn the heartbeat into a busy loop).
  Heartbeat(std::function<Result<std::unique_ptr<db::Connection>>()> connect, Clock* stamps, std::string migration,
            std::string holder, std::string started_at, int64_t interval_ms)
      : connect_(std::move(connect)),
        stamps_(stamps),
        migration_(std::move(migration)),
        holder_(std::move(holder)),
        started_at_(std::move(started_at)),
        interval_ms_(interval_ms) {
    thread_ = std::thread([this] { Loop(); });
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat() { Stop(); }

  void Stop() {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    Clock* clock = Clock::Real();
    std::unique_ptr<db::Connection> conn;
    for (;;) {
      {
        MutexLock l(&mu_);
        const int64_t until = clock->NowMicros() + interval_ms_ * 1000;
        while (!stop_ && clock->NowMicros() < until) clock->WaitFor(&cv_, &mu_, until - clock->NowMicros());
        if (stop_) return;
      }
      if (!conn) {
        auto c = connect_();
        if (!c.ok()) continue;
        conn = std::move(*c);
        // A renewal never waits longer than an interval (SQLite: the write
        // lock a chunk holds; it is retried next time).
        const std::string t = conn->dialect().StatementTimeoutSql(std::max<int64_t>(interval_ms_, 1000));
        if (!t.empty() && !conn->AddSessionSetup(t).ok()) {
          conn.reset();
          continue;
        }
      }
      StateStore store(*conn, stamps_);
      auto renewed = store.RenewLease(migration_, holder_, started_at_);
      if (!renewed.ok()) {
        conn.reset();
        continue;
      }
      if (!*renewed) return;  // the lease was stopped or taken over: nothing left to renew
    }
  }

  const std::function<Result<std::unique_ptr<db::Connection>>()> connect_;
  Clock* const stamps_;
  const std::string migration_, holder_, started_at_;
  const int64_t interval_ms_;
  Mutex mu_;
  std::condition_variable_any cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Throttle defaults: generous enough never to slow a healthy database, tight
// enough to back off when the application starts to suffer.
// The probe's default objective is relative (1.5x the probe's own latency
// before the backfill, at least +1 ms, see Pacer) where the dialect shows
// the application's sessions (Dialect::ApplicationActivitySql): a probe
// slowdown then throttles only while the application is at work. Without
// that gate the relative objective throttled an idle database's backfill
// to 0.15-0.45x a single UPDATE (2 workers on 2 cores: the probe waited for
// CPU behind the backfill itself, docs/performance.md), so where the
// dialect cannot tell (SQLite) the default stays an absolute 50 ms.
constexpr double kDefaultProbeSlowdown = 1.5;
// While the dialect shows application sessions at work: at most this pace
// and chunks of about this long (a row lock or a core the application
// waits for is held for at most one short chunk). Measured on 2 cores, a
// 1M-row backfill under a 200 tps pgbench workload (docs/performance.md):
// pace 50% and 10 ms chunks raised the application's p99 2-5x, 20% and
// 5 ms 1.6-2.1x, 10% and 2 ms 1.2x (the backfill at about a tenth of its
// idle rate). The plan's backfill.throttle.active_pace / active_chunk_ms
// and --active-pace trade the other way.
constexpr double kDefaultActiveMaxPace = 0.1;
constexpr int64_t kDefaultActiveChunkMs = 2;
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
  if (options.heartbeat_interval_ms && *options.heartbeat_interval_ms <= 0) {
    return InvalidArgument("--heartbeat-ms must be > 0");
  }
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
  // State made by an older sluice may lack the leases table.
  SLUICE_ASSIGN_OR_RETURN(bool has_leases, store.HasTable("leases"));
  if (!has_leases) SLUICE_RETURN_IF_ERROR(db::InTransaction(*conn, [&]() -> Status { return store.Ensure(); }));
  // ... or the chunks' throttle signal columns (a no-op when present).
  SLUICE_RETURN_IF_ERROR(db::InTransaction(*conn, [&]() -> Status { return store.EnsureColumns(); }));
  BackfillSummary summary;
  int64_t t0 = clock()->NowMicros();
  for (const auto& name : names) {
    // The lock first, then the record: a rollback or complete that won the
    // lock before us has changed the phase, and this read sees it. A run
    // refused here records nothing: the lease belongs to whoever holds the
    // lock.
    NamedLock lock;
    SLUICE_RETURN_IF_ERROR(lock.Acquire(*conn, "migration:" + name, "migration '" + name + "'"));
    SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
    if (l.rec.phase != kActive) {
      return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can be backfilled");
    }
    summary.migrations.push_back(name);
    if (l.compiled.backfill.empty() || l.rec.backfill == "done") continue;
    // From here on this run holds the lease: whatever ends it is recorded
    // there (and in the audit log), so `status` says why it stopped.
    const std::string holder = ThisProcess();
    const std::string started_at = IsoTime(clock()->WallMicros());
    const int64_t interval_ms = options.heartbeat_interval_ms.value_or(kDefaultHeartbeatMs);
    SLUICE_RETURN_IF_ERROR(store.StartLease(name, holder, started_at, interval_ms));
    std::optional<Heartbeat> heartbeat;
    heartbeat.emplace([this]() { return Connect(); }, clock(), name, holder, started_at, interval_ms);
    int64_t rows = 0;
    Status result = RunBackfill(*conn, lock, l, options, &rows);
    heartbeat.reset();
    summary.rows += rows;
    if (!result.ok()) {
      // The session may be gone (the reason the run failed): record on a
      // fresh one when it is.
      auto record = [&](db::Connection& c) {
        StateStore s(c, clock());
        s.StopLease(name, holder, started_at, result.message()).IgnoreError();
        s.AddEvent(name, result.code() == StatusCode::kCancelled ? "backfill.paused" : "backfill.error",
                   options_.actor, result.message())
            .IgnoreError();
      };
      if (conn->in_transaction()) conn->Rollback().IgnoreError();
      if (conn->Query("SELECT 1").ok()) {
        record(*conn);
      } else if (auto fresh = Connect(); fresh.ok()) {
        record(**fresh);
      }
      return result;
    }
    store.StopLease(name, holder, started_at, "").IgnoreError();
  }
  summary.seconds = static_cast<double>(clock()->NowMicros() - t0) / 1e6;
  return summary;
}

// One migration's run, under its named lock and lease: the chunks, then the
// gate and readiness in one transaction. `*rows`: rows this run rewrote.
Status Engine::RunBackfill(db::Connection& conn_ref, NamedLock& lock, const Loaded& l, const BackfillOptions& options,
                           int64_t* rows) {
  db::Connection* conn = &conn_ref;
  StateStore store(*conn, clock());
  const std::string& name = l.rec.name;
  const db::Dialect& d = conn->dialect();
  backfill::Settings s;
  const auto& pb = l.plan.backfill;
  s.chunk_target_ms = options.chunk_target_ms.value_or(pb.chunk_target_ms.value_or(d.default_chunk_target_ms()));
  s.chunk_rows = options.chunk_rows.value_or(pb.chunk_rows.value_or(s.chunk_rows));
  s.chunk_min_rows = options.chunk_min_rows.value_or(pb.chunk_min_rows.value_or(s.chunk_min_rows));
  s.chunk_max_rows = options.chunk_max_rows.value_or(pb.chunk_max_rows.value_or(s.chunk_max_rows));
  s.chunk_max_rows = std::max(s.chunk_max_rows, s.chunk_min_rows);
  s.workers = options.workers.value_or(pb.workers.value_or(1));
  if (options.probe_slowdown && *options.probe_slowdown != 0 && !(*options.probe_slowdown > 1)) {
    return InvalidArgument("probe slowdown " + fmt::format("{:g}", *options.probe_slowdown) +
                           " is not above 1; give a multiple of the probe's own latency such as 1.5, or 0 to turn "
                           "the relative latency objective off");
  }
  if (options.active_pace && !plan::ValidActivePace(*options.active_pace)) {
    return InvalidArgument("active pace " + fmt::format("{:g}", *options.active_pace) +
                           " is not in (0, 1]: give the share of the time the backfill may work while the "
                           "application is at work, such as 0.1, or 1 not to give way on activity alone");
  }
  if (!options.workers && !pb.workers && !d.DefaultBackfillWorkersSql().empty()) {
    // Only a speed default: if the server cannot say, one worker.
    auto w = conn->Query(d.DefaultBackfillWorkersSql());
    if (w.ok() && !w->rows.empty()) s.workers = std::max<int64_t>(1, w->rows[0][0].AsInt());
  }
  s.full_sync = options.full_sync;
  if (s.workers > 1 && !d.parallel_backfill()) {
    return InvalidArgument(std::string(d.name()) +
                           " allows one writer at a time; use --workers 1 (or drop backfill.workers)");
  }
  SLUICE_RETURN_IF_ERROR(db::InTransaction(*conn, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(RequireActive(store, name));
    return store.SetField(name, "backfill", "running");
  }));
  // Each chunk holds the migration's row (shared) while it writes: a
  // complete or rollback, which locks it for update, waits for the chunk
  // and the next chunk sees the phase it left.
  s.chunk_guard_sql = "SELECT 1 FROM " + d.StateTable("migrations") + " WHERE name = $1 AND phase = 'active'" +
                      d.SharedLockRowsClause();
  backfill::ThrottleSettings& ts = s.throttle;
  ts.max_rows_per_second = options.max_rows_per_second.value_or(pb.max_rows_per_second.value_or(0));
  ts.probe_sql = pb.probe_query.value_or("");
  const std::optional<int64_t> target = options.probe_target_ms ? options.probe_target_ms : pb.probe_target_ms;
  ts.activity_sql = d.ApplicationActivitySql();
  if (!ts.activity_sql.empty()) {
    ts.active_max_pace = options.active_pace.value_or(pb.active_pace.value_or(kDefaultActiveMaxPace));
    ts.active_chunk_ms = pb.active_chunk_ms.value_or(kDefaultActiveChunkMs);
    ts.chunk_target_ms = s.chunk_target_ms;
  }
  std::optional<double> slowdown = options.probe_slowdown ? options.probe_slowdown : pb.probe_slowdown;
  if (!slowdown && !target && !ts.activity_sql.empty()) slowdown = kDefaultProbeSlowdown;
  // A slowdown replaces the absolute default; given together, the stricter
  // wins; `--probe-slowdown 0` goes back to the absolute default.
  ts.probe_target_ms = target.value_or(slowdown && *slowdown > 0 ? 0 : kDefaultProbeTargetMs);
  ts.probe_slowdown = slowdown.value_or(0);
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
  *rows = rows_after - rows_before;
  SLUICE_RETURN_IF_ERROR(result);
  // The backfill gate: parity between the old and the new read path before
  // the backfill is declared done. The new version's views still refuse
  // readers; this session reads through them with the guard's sluice-only
  // bypass (verification snapshots are transactions of their own, so this
  // cannot share the transaction below).
  const std::string bypass_on = d.ReadUnreadySql(true), bypass_off = d.ReadUnreadySql(false);
  if (!bypass_on.empty()) SLUICE_RETURN_IF_ERROR(conn->Exec(bypass_on));
  auto parity = MeasureParity(*conn, l);
  if (!bypass_off.empty()) conn->Exec(bypass_off).IgnoreError();
  SLUICE_RETURN_IF_ERROR(parity.status());
  {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    in.parity = *parity;
    gates::GateResult g = gates::EvaluateBackfill(in);
    if (!g.passed) {
      return FailedPrecondition("the backfill of '" + name + "' finished but its gate is not passed: " + g.Reason() +
                                "; fix that and rerun `sluice backfill " + name + "` (version " + l.rec.version +
                                " stays not ready)");
    }
  }
  // Declaring the backfill done and making the version usable are one
  // transaction: the version's views lose their readiness guard (the steps
  // recorded at start as `ready`), so readers of the new version either get
  // "not ready" or every row backfilled, never a mix. Lock waits (the views'
  // readers) retry like a phase.
  const std::string timeout = d.LockTimeoutSql(options_.lock_timeout_ms);
  return RetryLocks(*conn, options_, l.rec.tables, [&]() -> Status {
    return db::InTransaction(*conn, [&]() -> Status {
      if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn->Exec(timeout));
      SLUICE_RETURN_IF_ERROR(RequireActive(store, name));
      for (const auto& step : l.ready) {
        for (const auto& st : d.Render(step)) SLUICE_RETURN_IF_ERROR(conn->Execute(st).WithContext(step.origin));
      }
      SLUICE_RETURN_IF_ERROR(store.SetField(name, "backfill", "done"));
      nlohmann::json det = {{"rows", rows_after}, {"version", l.rec.version}};
      return store.AddEvent(name, "backfill.done", options_.actor,
                            "backfill finished: " + std::to_string(rows_after) + " rows; version " + l.rec.version +
                                " is ready",
                            det.dump());
    });
  });
}

}  // namespace sluice::engine
