// Where the Pacer's inputs come from: production signals and the operator's
// control row. SignalSource is the seam: the backfill uses
// ConnectionSignals (queries on sessions of the migrated database); unit
// tests feed synthetic series through their own SignalSource and a
// FakeClock, with no database.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "backfill/control.h"
#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

// kActivity is no limit of its own: the number of application sessions
// at work (Dialect::ApplicationActivitySql), which tells the probe's
// slowdown the application suffers from one the backfill caused alone.
enum class Signal { kProbe, kReplicaLag, kLockWaiters, kCustom, kActivity };

// "probe latency", "replica lag", "lock waiters", "custom signal",
// "application activity".
std::string_view SignalName(Signal signal);

// The Pacer's inputs.
//
// Thread-safety: Measure is called by one thread at a time (the Pacer's
// probe thread); ReadControl and ReportThrottle by one thread at a time
// (its control thread), possibly while Measure runs. An implementation keeps
// the two apart (ConnectionSignals uses a session for each).
class SignalSource {
 public:
  virtual ~SignalSource() = default;
  // One reading of `signal`: the probe query's latency in ms, the replica
  // lag in seconds, the number of lock waiters, the custom query's number,
  // the number of application sessions at work.
  // An error when the query failed or was cancelled by its timeout.
  virtual Result<double> Measure(Signal signal) = 0;
  // The operator's pause/tune row of this migration.
  virtual Result<Control> ReadControl() = 0;
  // Records the current throttle reason ("" = full speed) for `status`.
  virtual Status ReportThrottle(const std::string& reason) = 0;
  // Stops a Measure running on another thread now (it then fails), so a
  // hung signal query does not outlive the run on the server.
  virtual void CancelMeasure() {}
};

// The SQL behind each signal ("" = not measured).
struct SignalQueries {
  std::string probe, replica_lag, lock_waiters, custom, activity;
};

// A SignalSource on sessions of the migrated database: signal queries on
// `signals` (the replica-lag query on `replica` when one is given), the
// control row on `control`. Every session runs under a statement timeout
// (Dialect::StatementTimeoutSql, added with AddSessionSetup so it survives
// reconnects), so a hung signal query is cancelled by the server; a session
// that was lost is re-opened by the next call.
class ConnectionSignals : public SignalSource {
 public:
  ConnectionSignals(std::string migration, SignalQueries queries, std::unique_ptr<db::Connection> signals,
                    std::unique_ptr<db::Connection> control, std::unique_ptr<db::Connection> replica,
                    int64_t statement_timeout_ms, Clock* clock);

  Result<double> Measure(Signal signal) override;
  Result<Control> ReadControl() override;
  Status ReportThrottle(const std::string& reason) override;
  void CancelMeasure() override;

 private:
  // Applies the statement timeout to `conn` (now and after reconnects).
  void Setup(db::Connection& conn);
  // Re-opens `conn` after `error` when the session was lost.
  void Heal(db::Connection& conn, const Status& error);

  const std::string migration_;
  const SignalQueries queries_;
  std::unique_ptr<db::Connection> signals_, control_, replica_;
  const int64_t timeout_ms_;
  Clock* clock_;
};

}  // namespace sluice::backfill
