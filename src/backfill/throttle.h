// Pacer: decides how fast the backfill may go, from production signals and
// operator control, and makes workers wait accordingly.
//
// Signals (each optional; the worst one sets the pace):
//   probe      latency of a cheap query (default: a key read on the migrated
//              table) against a relative objective (a multiple of its own
//              baseline) and/or an absolute target
//   lag        replica replay lag (PostgreSQL: pg_stat_replication on the
//              primary, or the replica's own view when a replica URL is set)
//   waiters    sessions waiting for a lock on the migrated table
//   custom     a query returning a number, against a maximum (the way to
//              feed an application's own SLO)
//   activity   application sessions at work (Dialect::ApplicationActivitySql,
//              PostgreSQL: pg_stat_activity without sluice's own sessions);
//              no limit of its own, it gates the probe and the workers
//   windows    allowed UTC time windows ("22:00-06:00"); outside them the
//              backfill holds as if paused
//   rate       a maximum rows/s over all workers (token bucket holding at
//              most half a second of rows)
//
// Probe objective: the first reading measures the probe's baseline (the
// median of a few back-to-back readings, before any chunk runs); the
// objective is then max(baseline x probe_slowdown, baseline +
// probe_floor_ms), so microsecond noise of a fast probe never throttles.
// The probe's value is the median of its last three readings: one spike is
// ignored, a sustained rise counts from its second reading. The baseline
// follows the smoothed latency down at once, and is re-measured while the
// backfill is (nearly) stopped -- readings taken at the slowest pace or in
// a hold are the application's latency without the backfill -- so a
// latency that rose for reasons of its own cannot ratchet the backfill
// down forever: after a couple of seconds at the slowest pace the baseline
// becomes the new normal and the backfill resumes.
//
// The pace is a duty cycle in (0, 1] (AIMD): after a chunk that took t, a
// worker waits t * (1 - pace) / pace (at most 10 s). A signal over its
// limit cuts the pace multiplicatively, in proportion to how far over it is
// (at least 10%, at most halving per reading); below 80% of every limit the
// pace recovers additively, by 0.1 per reading. A signal still over its
// limit at the slowest pace (2%) holds the backfill entirely until it
// falls.
//
// The application's suffering, not the backfill's own cost: where the
// database shows its sessions (the activity signal is on), a probe reading
// taken while no application session is at work never throttles -- on a
// machine whose cores the backfill saturates the probe waits for CPU behind
// the backfill itself, a cost no application pays while there is none. So
// the backfill runs flat out on a quiet database, and the relative
// objective is the default there (engine/backfill_run.cc); a probe
// slowdown while the application is at work throttles as above. The probe
// sees little of what the application suffers (a key read every poll), so
// whenever the application is at work, from the first reading that says
// so and whatever the probe says, the backfill gives way by default
// (active_max_pace, active_chunk_ms): its pace is capped (a duty cycle
// that leaves the cores to the application), it steps down to one worker
// (workers(); on a small machine a second worker is a core taken from the
// application) and its chunks get short (chunk_scale(): an application
// statement waits at most one short chunk for a row lock or a core).
// `sluice tune` wins over the worker count and the chunk target. Once the
// application is idle again the pace recovers additively as above, all
// workers and the plan's chunk target at once. A session waiting for a
// lock the backfill holds (the lock-waiters signal) cuts the pace to a
// quarter at once rather than by at most a half. The activity query
// failing counts like any failed signal (twice its limit), and the
// application then counts as at work.
//
// Fail closed: a signal whose query fails or is cancelled by its statement
// timeout counts as twice its limit for that reading (the pace halves; a
// signal that keeps failing ends in a hold), and the reason names it
// ("custom signal did not answer within 2000 ms (counted as over its
// limit)"). A failed reading enters neither the probe's smoothing nor its
// baseline. A probe whose baseline could not be measured counts as failed.
// A signal query still running well past its timeout (a database
// that cannot cancel it) holds the backfill until it answers ("custom
// signal has not answered for 12 s"). The control row not being readable
// holds too (the operator may have paused). Nothing holds silently: the
// reason is in the progress line and, through the control row, in `status`.
//
// Threads: signals are read by a probe thread, the control row by a control
// thread, each on its own session (Start), never under the Pacer's mutex:
// a slow or hung signal query stalls neither the workers (they keep the
// last readings) nor pause/tune/status. Workers only read the state and
// wait. Every wait is on the Clock, in slices of at most 100 ms, and ends
// when `cancel` is set or Interrupt() is called.
//
// Thread-safety: all methods may be called from any thread.
//
//   auto pacer = std::make_shared<Pacer>("002_x", settings, std::move(source), clock, &cancel);
//   pacer->Start();
//   while (pacer->BeforeChunk().ok()) { ...chunk...; if (!pacer->AfterChunk(rows, micros).ok()) break; }
//   pacer->Stop();
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backfill/control.h"
#include "backfill/signals.h"
#include "common/clock.h"
#include "common/thread_annotations.h"
#include "sluice/status.h"

namespace sluice::backfill {

struct ThrottleSettings {
  double max_rows_per_second = 0;   // 0 = unlimited
  std::string probe_sql;            // "" = no latency signal
  int64_t probe_target_ms = 0;      // absolute objective; 0 = none
  // Relative objective: max(baseline x probe_slowdown, baseline +
  // probe_floor_ms); probe_slowdown 0 = none. The latency signal is on when
  // either objective is.
  double probe_slowdown = 0;
  double probe_floor_ms = 1.0;
  double max_replica_lag_seconds = 0;  // 0 = off
  int64_t max_lock_waiters = -1;       // < 0 = off
  std::string lock_waiters_sql;        // from Dialect::LockWaitersSql
  std::string replica_lag_sql;         // from Dialect (primary or replica form)
  std::string custom_sql;
  double custom_max = 0;
  // Application sessions at work (Dialect::ApplicationActivitySql); "" =
  // the database cannot tell: every probe reading counts, one worker count.
  std::string activity_sql;
  // While the application is at work (the activity signal reads > 0 or
  // fails): the pace's ceiling (0 = none), and the target time of a chunk
  // (0 = the plan's), given as a factor of `chunk_target_ms` (the plan's
  // target) through chunk_scale(). `sluice tune --chunk-target-ms` wins.
  double active_max_pace = 0;
  int64_t active_chunk_ms = 0;
  int64_t chunk_target_ms = 0;
  std::vector<std::string> windows;  // "HH:MM-HH:MM" UTC; empty = always
  // How often the signals and the control row are read.
  int64_t poll_ms = 250;
  // Statement timeout of each signal query and control-row access. A signal
  // that takes longer is cancelled and counts as over its limit; longer
  // gives slow signal queries a chance, shorter notices a hang sooner.
  int64_t signal_timeout_ms = 2000;
};

// The latest reading of each production signal, for the chunk history
// (the `chunks` state table records it with every chunk). nullopt: the
// signal is off, or its last reading failed (a stale value would mislead).
struct SignalReadings {
  std::optional<double> probe_ms;
  std::optional<double> replica_lag_seconds;
  std::optional<double> lock_waiters;
  std::optional<double> app_sessions;
};

// Parses "HH:MM-HH:MM"; the window may wrap midnight. Returns minutes since
// midnight UTC [from, to). kInvalidArgument on a malformed window.
Result<std::pair<int, int>> ParseWindow(const std::string& window);
// True when `minute` (since midnight UTC) lies in `window`; a window whose
// ends are equal ("00:00-00:00") is the whole day.
bool InWindow(std::pair<int, int> window, int minute);

class Pacer : public std::enable_shared_from_this<Pacer> {
 public:
  // `source` (may be null: no signals, no control row) provides the
  // readings; signals without a query or a limit in `settings` are off.
  Pacer(std::string migration, ThrottleSettings settings, std::unique_ptr<SignalSource> source, Clock* clock,
        const std::atomic<bool>* cancel);
  ~Pacer();
  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;

  // Reads the control row once (so a paused migration writes no chunk),
  // then starts the probe and control threads. The Pacer must be owned by a
  // std::shared_ptr (the threads share it).
  void Start();
  // Interrupt(), cancels a signal query in flight (SignalSource::
  // CancelMeasure: the server stops it now rather than at its statement
  // timeout), then stops the threads: each is joined, unless it is still
  // inside a query after a short grace (the cancel did not reach it), in
  // which case it is left to finish on its own (it owns its share of the
  // Pacer and its session). Idempotent.
  void Stop();
  // From now on every wait returns kCancelled at once (a worker failed, or
  // the run is being cancelled).
  void Interrupt();

  // Blocks while the migration is paused, outside its windows, held by a
  // signal, or before the first reading of the signals. kCancelled when
  // `cancel` is set or Interrupt() is called meanwhile.
  Status BeforeChunk();
  // Accounts a committed chunk and waits as long as the pace and the rate
  // limit require. kCancelled as above.
  Status AfterChunk(int64_t rows, int64_t chunk_micros);

  // Current reason for slowing down ("" = full speed), for progress output.
  std::string reason() const;
  double pace() const;
  // True while BeforeChunk would wait.
  bool holding() const;
  // Operator overrides from `sluice tune` (unset = the plan's settings).
  std::optional<int64_t> chunk_target_ms() const;
  // The tuned number of workers; without one, 1 while the application is
  // at work (the activity signal is on and did not read 0); unset
  // otherwise (the plan's number).
  std::optional<int64_t> workers() const;
  bool paused() const;
  // Largest chunk that keeps the rate limit smooth (half a second of
  // rows), so a low rate cannot turn into one long wait per chunk.
  std::optional<int64_t> max_chunk_rows() const;
  // Factor (0.01..1) applied to the target chunk time: the pace (at least
  // 0.1) while it is reduced, so under pressure chunks get shorter too and
  // each holds its row locks for less time, not just less often; and while
  // the application is at work at most active_chunk_ms / chunk_target_ms
  // (unless a chunk target was tuned).
  double chunk_scale() const;
  // A note shown with the reason (a worker retrying after an error); "" to
  // clear.
  void SetNote(std::string note);
  // The signals' latest readings (all nullopt before the first).
  SignalReadings readings() const;
  // The probe's baseline latency (nullopt before it was measured).
  std::optional<double> probe_baseline_ms() const;

  // One reading of every signal, then the pace update. Runs the queries
  // outside the mutex. Called by the probe thread; tests call it directly.
  void ProbeSignals();
  // Reads the control row, re-evaluates the windows and the reason and
  // reports it when it changed. Called by the control thread; tests call it
  // directly.
  void PollControl();

 private:
  bool IsCancelled() const { return cancel_ && cancel_->load(); }
  bool Enabled(Signal s) const;
  // Whether BeforeChunk must wait now, and why.
  bool HoldingLocked(int64_t now) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ReasonLocked(int64_t now) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The signal query that has been running longer than its timeout plus a
  // poll interval, if any.
  bool StuckLocked(int64_t now) const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefillLocked(int64_t now) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetRateLocked(double rate, int64_t now) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One probe reading (the baseline first, when there is none yet).
  Result<double> MeasureProbe();
  // Folds a successful probe reading into the smoothing and the baseline;
  // returns its ratio to the objective and the reason's text (0 and ""
  // when `app_idle`: the slowdown is the backfill's own).
  double ProbeRatioLocked(double ms, bool app_idle, std::string* text) EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One worker: the application is at work, no tune.
  bool StepDownLocked() const EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loops of the two threads: a reading every poll_ms until Stop.
  void Loop(bool probe);

  const std::string migration_;
  const ThrottleSettings settings_;
  std::vector<std::pair<int, int>> windows_;
  const std::unique_ptr<SignalSource> source_;
  Clock* const clock_;
  const std::atomic<bool>* const cancel_;

  mutable Mutex mu_;
  mutable std::condition_variable_any cv_;  // any state change, Interrupt, Stop
  double pace_ GUARDED_BY(mu_) = 1.0;
  bool holding_ GUARDED_BY(mu_) = false;  // a signal stayed over its limit at the slowest pace
  bool probed_ GUARDED_BY(mu_) = false;   // the signals have been read once
  std::string signal_why_ GUARDED_BY(mu_);  // the worst signal's text at the last reading
  double worst_ GUARDED_BY(mu_) = 0;
  bool app_active_ GUARDED_BY(mu_) = false;  // the activity signal's last reading was not 0
  SignalReadings readings_ GUARDED_BY(mu_);
  std::optional<double> baseline_ms_ GUARDED_BY(mu_);
  std::deque<double> recent_probe_ GUARDED_BY(mu_);  // the last few successful readings
  std::vector<double> quiet_probe_ GUARDED_BY(mu_);  // readings while the backfill was (nearly) stopped
  std::optional<Signal> in_flight_ GUARDED_BY(mu_);
  int64_t in_flight_since_ GUARDED_BY(mu_) = 0;
  Control control_ GUARDED_BY(mu_);
  std::string control_error_ GUARDED_BY(mu_);  // the control row could not be read
  bool outside_window_ GUARDED_BY(mu_) = false;
  std::string note_ GUARDED_BY(mu_);
  std::string reported_reason_ GUARDED_BY(mu_);
  bool reported_ GUARDED_BY(mu_) = false;
  // Token bucket of the rate limit, shared by all workers: up to half a
  // second of rows; a chunk takes its rows (possibly below zero) and its
  // worker waits until the bucket is back at zero.
  double rate_ GUARDED_BY(mu_) = 0;
  double tokens_ GUARDED_BY(mu_) = 0;
  int64_t bucket_at_ GUARDED_BY(mu_) = 0;
  bool interrupted_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  bool done_[2] GUARDED_BY(mu_) = {true, true};  // control, probe thread finished
  std::thread threads_[2];  // touched only by Start and Stop
};

}  // namespace sluice::backfill
