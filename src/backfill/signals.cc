#include "backfill/signals.h"

#include <cmath>
#include <limits>

namespace sluice::backfill {

std::string_view SignalName(Signal signal) {
  switch (signal) {
    case Signal::kProbe: return "probe latency";
    case Signal::kReplicaLag: return "replica lag";
    case Signal::kLockWaiters: return "lock waiters";
    case Signal::kCustom: return "custom signal";
    case Signal::kActivity: return "application activity";
  }
  return "signal";
}

ConnectionSignals::ConnectionSignals(std::string migration, SignalQueries queries,
                                     std::unique_ptr<db::Connection> signals, std::unique_ptr<db::Connection> control,
                                     std::unique_ptr<db::Connection> replica, int64_t statement_timeout_ms,
                                     Clock* clock)
    : migration_(std::move(migration)),
      queries_(std::move(queries)),
      signals_(std::move(signals)),
      control_(std::move(control)),
      replica_(std::move(replica)),
      timeout_ms_(statement_timeout_ms),
      clock_(clock) {
  for (db::Connection* c : {signals_.get(), control_.get(), replica_.get()}) {
    if (c) Setup(*c);
  }
}

void ConnectionSignals::Setup(db::Connection& conn) {
  if (timeout_ms_ <= 0) return;
  std::string sql = conn.dialect().StatementTimeoutSql(timeout_ms_);
  // Without a server-side timeout the Pacer still notices a query that does
  // not come back (it holds the backfill and says so); it cannot cancel it.
  if (!sql.empty()) conn.AddSessionSetup(sql).IgnoreError();
}

void ConnectionSignals::Heal(db::Connection& conn, const Status& error) {
  if (error.code() != StatusCode::kUnavailable && error.code() != StatusCode::kInDoubt) return;
  // AddSessionSetup re-applies the timeout on reconnect; applying it again
  // here covers adapters whose AddSessionSetup only runs it once.
  if (conn.Reconnect().ok()) Setup(conn);
}

Result<double> ConnectionSignals::Measure(Signal signal) {
  db::Connection* conn = signals_.get();
  const std::string* sql = &queries_.custom;
  switch (signal) {
    case Signal::kProbe: sql = &queries_.probe; break;
    case Signal::kReplicaLag:
      sql = &queries_.replica_lag;
      if (replica_) conn = replica_.get();
      break;
    case Signal::kLockWaiters: sql = &queries_.lock_waiters; break;
    case Signal::kCustom: break;
    case Signal::kActivity: sql = &queries_.activity; break;
  }
  if (!conn || sql->empty()) return FailedPrecondition(std::string(SignalName(signal)) + " has no query");
  int64_t t0 = clock_->NowMicros();
  auto r = conn->Query(*sql);
  if (!r.ok()) {
    Heal(*conn, r.status());
    return r.status();
  }
  if (signal == Signal::kProbe) return static_cast<double>(clock_->NowMicros() - t0) / 1000.0;
  // No row or NULL reads as zero: replica-lag queries return NULL when
  // nothing is replaying.
  if (r->rows.empty() || r->rows[0].empty() || r->rows[0][0].is_null()) return 0.0;
  const db::Value& v = r->rows[0][0];
  double d = v.AsReal(std::numeric_limits<double>::quiet_NaN());
  if (std::isnan(d)) return InvalidArgument(std::string(SignalName(signal)) + " query returned '" + v.text + "', not a number");
  return d;
}

Result<Control> ConnectionSignals::ReadControl() {
  if (!control_) return Control{};
  auto c = backfill::ReadControl(*control_, migration_);
  if (!c.ok()) Heal(*control_, c.status());
  return c;
}

void ConnectionSignals::CancelMeasure() {
  // Measure runs on signals_ or replica_; Cancel() is safe from this thread.
  if (signals_) signals_->Cancel();
  if (replica_) replica_->Cancel();
}

Status ConnectionSignals::ReportThrottle(const std::string& reason) {
  if (!control_) return Status::Ok();
  Status s = backfill::ReportThrottle(*control_, migration_, reason, clock_);
  if (!s.ok()) Heal(*control_, s);
  return s;
}

}  // namespace sluice::backfill
