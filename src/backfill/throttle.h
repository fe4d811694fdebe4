// Pacer: decides how fast the backfill may go, from production signals and
// operator control, and makes workers wait accordingly.
//
// Signals (each optional; the worst one sets the pace):
//   probe      latency of a cheap query (default: a key read on the migrated
//              table) against a target
//   lag        replica replay lag (PostgreSQL: pg_stat_replication on the
//              primary, or the replica's own view when a replica URL is set)
//   waiters    sessions waiting for a lock on the migrated table
//   custom     a query returning a number, against a maximum
//   windows    allowed UTC time windows ("22:00-06:00"); outside them the
//              backfill holds as if paused
//   rate       a maximum rows/s over all workers (token bucket)
//
// The pace is a duty cycle in (0, 1]: after a chunk that took t, a worker
// waits t * (1 - pace) / pace. A signal over its limit cuts the pace in
// proportion to how far over it is (at most halving per evaluation); below
// 80% of every limit the pace recovers by a quarter per evaluation. A signal
// still over its limit at the slowest pace (2%) holds the backfill entirely
// until it falls. So the backfill slows smoothly under pressure, stops when
// slowing is not enough, and speeds up again, instead of sleeping a fixed
// delay.
//
// Thread-safe: all workers of one backfill share one Pacer. Signals and the
// control row are read by whichever worker finds them stale (every
// `poll_ms`), on the Pacer's own connections, never inside a chunk.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backfill/control.h"
#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

struct ThrottleSettings {
  double max_rows_per_second = 0;   // 0 = unlimited
  std::string probe_sql;            // "" = no latency signal
  int64_t probe_target_ms = 0;      // 0 = no latency signal
  double max_replica_lag_seconds = 0;  // 0 = off
  int64_t max_lock_waiters = -1;       // < 0 = off
  std::string lock_waiters_sql;        // from Dialect::LockWaitersSql
  std::string replica_lag_sql;         // from Dialect (primary or replica form)
  std::string custom_sql;
  double custom_max = 0;
  std::vector<std::string> windows;  // "HH:MM-HH:MM" UTC; empty = always
  int64_t poll_ms = 250;
};

// Parses "HH:MM-HH:MM"; the window may wrap midnight. Returns minutes since
// midnight UTC [from, to). kInvalidArgument on a malformed window.
Result<std::pair<int, int>> ParseWindow(const std::string& window);

class Pacer {
 public:
  // `signals` runs probe/lag/waiter/custom queries and reads the control
  // row; `replica` (optional) answers the replica-lag query.
  Pacer(std::string migration, ThrottleSettings settings, std::unique_ptr<db::Connection> signals,
        std::unique_ptr<db::Connection> replica, Clock* clock, const std::atomic<bool>* cancel);

  // Blocks while the migration is paused or outside its windows. Returns
  // kCancelled when `cancel` is set meanwhile.
  Status BeforeChunk();
  // Accounts a committed chunk and waits as long as the pace and the rate
  // limit require. Returns kCancelled when `cancel` is set meanwhile.
  Status AfterChunk(int64_t rows, int64_t chunk_micros);

  // Current reason for slowing down ("" = full speed), for progress output.
  std::string reason() const;
  double pace() const;
  // Operator overrides from `sluice tune` (unset = the plan's settings).
  std::optional<int64_t> chunk_target_ms() const;
  std::optional<int64_t> workers() const;
  bool paused() const;
  // Largest chunk that keeps the rate limit smooth (half a second of
  // rows), so a low rate cannot turn into one long wait per chunk.
  std::optional<int64_t> max_chunk_rows() const;
  // Factor (0.1..1) applied to the target chunk time while the pace is
  // reduced: under pressure chunks get shorter too, so each holds its row
  // locks for less time, not just less often.
  double chunk_scale() const;

  // Refreshes signals and control now (also called internally when stale).
  void Poll();

 private:
  bool IsCancelled() const { return cancel_ && cancel_->load(); }
  // Sleeps up to `micros` in slices, polling; false when cancelled.
  bool Wait(int64_t micros);
  void PollLocked(int64_t now);
  std::optional<double> Number(db::Connection* conn, const std::string& sql, double* millis);

  const std::string migration_;
  const ThrottleSettings settings_;
  std::vector<std::pair<int, int>> windows_;
  std::unique_ptr<db::Connection> signals_;
  std::unique_ptr<db::Connection> replica_;
  Clock* clock_;
  const std::atomic<bool>* cancel_;

  mutable std::mutex mu_;
  int64_t last_poll_ = 0;
  double pace_ = 1.0;
  std::string reason_;
  std::string reported_reason_;
  Control control_;
  bool outside_window_ = false;
  bool holding_ = false;  // a signal stayed over its limit at the slowest pace
  // Token bucket for the rate limit, shared by all workers.
  int64_t rate_start_ = 0;
  int64_t rate_rows_ = 0;
  double rate_ = 0;
};

}  // namespace sluice::backfill
