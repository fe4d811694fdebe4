#include "backfill/throttle.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

namespace sluice::backfill {

Result<std::pair<int, int>> ParseWindow(const std::string& w) {
  int h1 = 0, m1 = 0, h2 = 0, m2 = 0;
  char tail = 0;
  if (std::sscanf(w.c_str(), "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 24 || h2 < 0 ||
      h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59) {
    return InvalidArgument("time window '" + w + "' is not HH:MM-HH:MM (UTC), e.g. 22:00-06:00");
  }
  return std::make_pair(h1 * 60 + m1, h2 * 60 + m2);
}

namespace {

int UtcMinuteOfDay() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

bool InWindow(std::pair<int, int> w, int minute) {
  if (w.first == w.second) return true;  // "00:00-00:00": all day
  if (w.first < w.second) return minute >= w.first && minute < w.second;
  return minute >= w.first || minute < w.second;  // wraps midnight
}

constexpr int64_t kSliceMicros = 100'000;
constexpr double kMinPace = 0.02;

}  // namespace

Pacer::Pacer(std::string migration, ThrottleSettings settings, std::unique_ptr<db::Connection> signals,
             std::unique_ptr<db::Connection> replica, Clock* clock, const std::atomic<bool>* cancel)
    : migration_(std::move(migration)),
      settings_(std::move(settings)),
      signals_(std::move(signals)),
      replica_(std::move(replica)),
      clock_(clock),
      cancel_(cancel) {
  for (const auto& w : settings_.windows) {
    auto p = ParseWindow(w);
    if (p.ok()) windows_.push_back(*p);  // validated by the plan parser
  }
  rate_start_ = clock_->NowMicros();
  rate_ = settings_.max_rows_per_second;
  PollLocked(clock_->NowMicros());
}

std::optional<double> Pacer::Number(db::Connection* conn, const std::string& sql, double* millis) {
  if (!conn || sql.empty()) return std::nullopt;
  int64_t t0 = clock_->NowMicros();
  auto r = conn->Query(sql);
  if (millis) *millis = static_cast<double>(clock_->NowMicros() - t0) / 1000.0;
  if (!r.ok()) {
    // A signal that cannot be read does not stop the backfill; a lost
    // session is re-opened for the next poll.
    if (r.status().code() == StatusCode::kUnavailable) conn->Reconnect().IgnoreError();
    return std::nullopt;
  }
  if (r->rows.empty() || r->rows[0].empty() || r->rows[0][0].is_null()) return 0.0;
  return r->rows[0][0].AsReal(0);
}

void Pacer::Poll() {
  std::lock_guard<std::mutex> l(mu_);
  PollLocked(clock_->NowMicros());
}

void Pacer::PollLocked(int64_t now) {
  last_poll_ = now;
  if (signals_) {
    auto c = ReadControl(*signals_, migration_);
    if (c.ok()) {
      control_ = *c;
    } else if (c.status().code() == StatusCode::kUnavailable) {
      signals_->Reconnect().IgnoreError();
    }
  }
  double new_rate = control_.max_rows_per_second.value_or(settings_.max_rows_per_second);
  if (new_rate != rate_) {  // tuned: restart the bucket at the new rate
    rate_ = new_rate;
    rate_start_ = now;
    rate_rows_ = 0;
  }
  outside_window_ = false;
  if (!windows_.empty()) {
    int minute = UtcMinuteOfDay();
    outside_window_ = std::none_of(windows_.begin(), windows_.end(), [&](auto w) { return InWindow(w, minute); });
  }

  // The worst signal, as a ratio of its limit (> 1 means over the limit).
  double worst = 0;
  std::string why;
  auto consider = [&](double ratio, std::string text) {
    if (ratio > worst) {
      worst = ratio;
      why = std::move(text);
    }
  };
  if (settings_.probe_target_ms > 0) {
    double ms = 0;
    if (Number(signals_.get(), settings_.probe_sql, &ms)) {
      consider(ms / static_cast<double>(settings_.probe_target_ms),
               fmt::format("probe latency {:.1f} ms (target {} ms)", ms, settings_.probe_target_ms));
    }
  }
  if (settings_.max_replica_lag_seconds > 0) {
    db::Connection* on = replica_ ? replica_.get() : signals_.get();
    if (auto lag = Number(on, settings_.replica_lag_sql, nullptr)) {
      consider(*lag / settings_.max_replica_lag_seconds,
               fmt::format("replica lag {:.1f} s (max {:g} s)", *lag, settings_.max_replica_lag_seconds));
    }
  }
  if (settings_.max_lock_waiters >= 0) {
    if (auto n = Number(signals_.get(), settings_.lock_waiters_sql, nullptr)) {
      double limit = static_cast<double>(settings_.max_lock_waiters);
      consider(limit > 0 ? *n / limit : (*n > 0 ? 1 + *n : 0),
               fmt::format("{:g} sessions waiting for locks on the table (max {})", *n, settings_.max_lock_waiters));
    }
  }
  if (!settings_.custom_sql.empty()) {
    if (auto v = Number(signals_.get(), settings_.custom_sql, nullptr)) {
      consider(settings_.custom_max > 0 ? *v / settings_.custom_max : (*v > 0 ? 1 + *v : 0),
               fmt::format("custom signal {:g} (max {:g})", *v, settings_.custom_max));
    }
  }

  if (worst > 1) {
    // Already at the slowest pace and still over the limit: hold entirely
    // until the signal falls back under it.
    holding_ = pace_ <= kMinPace;
    pace_ = std::max(kMinPace, pace_ * std::clamp(1.0 / worst, 0.5, 0.9));
  } else {
    holding_ = false;
    if (worst < 0.8) pace_ = std::min(1.0, pace_ * 1.25 + 0.01);
  }
  std::string reason;
  if (control_.paused) {
    reason = "paused (sluice resume " + migration_ + " to continue)";
  } else if (outside_window_) {
    std::string list;
    for (const auto& w : settings_.windows) list += (list.empty() ? "" : ", ") + w;
    reason = "outside allowed window " + list + " UTC";
  } else if (holding_) {
    reason = why + "; holding until it falls";
  } else if (worst > 1) {
    reason = fmt::format("{}; pace {:.0f}%", why, pace_ * 100);
  } else if (pace_ < 1) {
    reason = fmt::format("recovering; pace {:.0f}%", pace_ * 100);
  } else if (rate_ > 0) {
    reason = fmt::format("rate limit {:g} rows/s", rate_);
  }
  reason_ = reason;
  if (signals_ && reason_ != reported_reason_) {
    if (ReportThrottle(*signals_, migration_, reason_).ok()) reported_reason_ = reason_;
  }
}

Status Pacer::BeforeChunk() {
  for (;;) {
    if (IsCancelled()) return Cancelled("backfill interrupted");
    {
      std::lock_guard<std::mutex> l(mu_);
      int64_t now = clock_->NowMicros();
      if (now - last_poll_ >= settings_.poll_ms * 1000) PollLocked(now);
      if (!control_.paused && !outside_window_ && !holding_) return Status::Ok();
    }
    clock_->SleepMicros(kSliceMicros);
  }
}

Status Pacer::AfterChunk(int64_t rows, int64_t chunk_micros) {
  int64_t chunk_end = clock_->NowMicros();
  {
    std::lock_guard<std::mutex> l(mu_);
    rate_rows_ += rows;
  }
  for (;;) {
    if (IsCancelled()) return Cancelled("backfill interrupted");
    int64_t now = clock_->NowMicros();
    int64_t due = now;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (now - last_poll_ >= settings_.poll_ms * 1000) PollLocked(now);
      if (pace_ < 1) {
        double wait = static_cast<double>(chunk_micros) * (1 - pace_) / pace_;
        due = std::max(due, chunk_end + static_cast<int64_t>(std::min(wait, 10e6)));
      }
      if (rate_ > 0) {
        due = std::max(due, rate_start_ + static_cast<int64_t>(static_cast<double>(rate_rows_) / rate_ * 1e6));
      }
    }
    if (due <= now) return Status::Ok();
    clock_->SleepMicros(std::min(due - now, kSliceMicros));
  }
}

std::string Pacer::reason() const {
  std::lock_guard<std::mutex> l(mu_);
  return reason_;
}

double Pacer::pace() const {
  std::lock_guard<std::mutex> l(mu_);
  return pace_;
}

std::optional<int64_t> Pacer::chunk_target_ms() const {
  std::lock_guard<std::mutex> l(mu_);
  return control_.chunk_target_ms;
}

std::optional<int64_t> Pacer::workers() const {
  std::lock_guard<std::mutex> l(mu_);
  return control_.workers;
}

std::optional<int64_t> Pacer::max_chunk_rows() const {
  std::lock_guard<std::mutex> l(mu_);
  if (rate_ <= 0) return std::nullopt;
  return std::max<int64_t>(1, static_cast<int64_t>(rate_ / 2));
}

double Pacer::chunk_scale() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::clamp(pace_, 0.1, 1.0);
}

bool Pacer::paused() const {
  std::lock_guard<std::mutex> l(mu_);
  return control_.paused;
}

}  // namespace sluice::backfill
