#include "backfill/throttle.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace sluice::backfill {

Result<std::pair<int, int>> ParseWindow(const std::string& w) {
  int h1 = 0, m1 = 0, h2 = 0, m2 = 0;
  char tail = 0;
  if (std::sscanf(w.c_str(), "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 24 || h2 < 0 ||
      h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 || (h1 == 24 && m1 > 0) || (h2 == 24 && m2 > 0)) {
    return InvalidArgument("time window '" + w + "' is not HH:MM-HH:MM (UTC), e.g. 22:00-06:00");
  }
  return std::make_pair(h1 * 60 + m1, h2 * 60 + m2);
}

bool InWindow(std::pair<int, int> w, int minute) {
  int from = w.first % 1440, to = w.second % 1440;  // 24:00 is midnight
  if (from == to) return true;                       // "00:00-00:00": all day
  if (from < to) return minute >= from && minute < to;
  return minute >= from || minute < to;  // wraps midnight
}

namespace {

// Longest single wait: cancel (an atomic set by a signal handler, which
// cannot notify) is noticed within this.
constexpr int64_t kSliceMicros = 100'000;
// Stop() waits this long (real time: it is about threads finishing, not
// about the run's clock) for a thread inside a query before leaving it.
constexpr int64_t kStopGraceMicros = 2'000'000;
constexpr double kMinPace = 0.02;
// Additive increase per reading with every signal below 80% of its limit:
// from the slowest pace back above 80% in 8 readings (2 s at 250 ms).
constexpr double kPaceIncrease = 0.1;
// At or below this pace the backfill barely runs: probe readings then are
// the application's latency without it, and re-measure the baseline.
constexpr double kQuietPace = 0.05;
// Back-to-back probe readings whose median is the first baseline.
constexpr size_t kBaselineReadings = 5;
// Quiet readings (2 s at 250 ms) whose median replaces the baseline.
constexpr size_t kRebaseReadings = 8;
// Successful probe readings whose median is the probe's value.
constexpr size_t kSmoothReadings = 3;
// A signal that could not be read counts as this multiple of its limit.
constexpr double kFailedRatio = 2.0;
// A lock waiter cuts the pace by at least this factor: an application
// session is blocked by the backfill now.
constexpr double kBlockedCut = 0.25;
// The activity first: the probe reading after it is judged by it.
constexpr Signal kSignals[] = {Signal::kActivity, Signal::kProbe, Signal::kReplicaLag, Signal::kLockWaiters,
                               Signal::kCustom};

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// The (lower) median: with two readings the smaller, so a single spike
// never counts.
template <typename C>
double Median(const C& values) {
  std::vector<double> v(values.begin(), values.end());
  if (v.empty()) return 0;
  auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

}  // namespace

Pacer::Pacer(std::string migration, ThrottleSettings settings, std::unique_ptr<SignalSource> source, Clock* clock,
             const std::atomic<bool>* cancel)
    : migration_(std::move(migration)),
      settings_(std::move(settings)),
      source_(std::move(source)),
      clock_(clock ? clock : Clock::Real()),
      cancel_(cancel) {
  for (const auto& w : settings_.windows) {
    auto p = ParseWindow(w);
    if (p.ok()) windows_.push_back(*p);  // validated by the plan parser
  }
  MutexLock l(&mu_);
  SetRateLocked(settings_.max_rows_per_second, clock_->NowMicros());
  probed_ = std::none_of(std::begin(kSignals), std::end(kSignals), [&](Signal s) { return Enabled(s); });
}

Pacer::~Pacer() { Stop(); }

bool Pacer::Enabled(Signal s) const {
  if (!source_) return false;
  switch (s) {
    case Signal::kProbe:
      return (settings_.probe_target_ms > 0 || settings_.probe_slowdown > 0) && !settings_.probe_sql.empty();
    case Signal::kReplicaLag: return settings_.max_replica_lag_seconds > 0 && !settings_.replica_lag_sql.empty();
    case Signal::kLockWaiters: return settings_.max_lock_waiters >= 0 && !settings_.lock_waiters_sql.empty();
    case Signal::kCustom: return !settings_.custom_sql.empty();
    case Signal::kActivity: return !settings_.activity_sql.empty();
  }
  return false;
}

void Pacer::Start() {
  PollControl();
  auto self = shared_from_this();
  const bool probe_thread = std::any_of(std::begin(kSignals), std::end(kSignals), [&](Signal s) { return Enabled(s); });
  {
    MutexLock l(&mu_);
    if (stop_) return;
    done_[0] = !source_;  // no source: no control row to read
    done_[1] = !probe_thread;
  }
  if (source_) threads_[0] = std::thread([self] { self->Loop(false); });
  if (probe_thread) threads_[1] = std::thread([self] { self->Loop(true); });
}

void Pacer::Loop(bool probe) {
  for (bool first = true;; first = false) {
    // The control row was read by Start just now.
    if (probe || !first) {
      if (probe) {
        ProbeSignals();
      } else {
        PollControl();
      }
    }
    MutexLock l(&mu_);
    const int64_t due = clock_->NowMicros() + settings_.poll_ms * 1000;
    for (int64_t now = clock_->NowMicros(); !stop_ && now < due; now = clock_->NowMicros()) {
      clock_->WaitFor(&cv_, &mu_, due - now);
    }
    if (stop_) {
      done_[probe ? 1 : 0] = true;
      cv_.notify_all();
      return;
    }
  }
}

void Pacer::Interrupt() {
  {
    MutexLock l(&mu_);
    interrupted_ = true;
  }
  cv_.notify_all();
}

void Pacer::Stop() {
  bool measuring;
  {
    MutexLock l(&mu_);
    stop_ = true;
    interrupted_ = true;
    measuring = in_flight_.has_value();  // no new reading starts once stop_ is set
  }
  cv_.notify_all();
  // A signal query in flight would otherwise keep running on the server
  // until its statement timeout, after this run has ended.
  if (measuring && source_) source_->CancelMeasure();
  bool done[2];
  {
    // Under an auto-advancing fake clock the grace would end at once and a
    // thread still finishing its query would outlive the caller's clock.
    Clock* real = Clock::Real();
    MutexLock l(&mu_);
    const int64_t until = real->NowMicros() + kStopGraceMicros;
    for (int64_t now = real->NowMicros(); !(done_[0] && done_[1]) && now < until; now = real->NowMicros()) {
      real->WaitFor(&cv_, &mu_, std::min(until - now, kSliceMicros));
    }
    done[0] = done_[0];
    done[1] = done_[1];
  }
  for (int i = 0; i < 2; ++i) {
    if (!threads_[i].joinable()) continue;
    if (done[i]) {
      threads_[i].join();
    } else {
      threads_[i].detach();  // still inside a query; it holds its own reference
    }
  }
}

void Pacer::ProbeSignals() {
  double worst = 0;
  std::string why;
  bool failed = false;
  bool blocked = false;    // a session waits for a lock the backfill may hold
  bool app_idle = false;   // the activity signal read 0 sessions at work
  SignalReadings readings;
  for (Signal s : kSignals) {
    if (!Enabled(s)) continue;
    const int64_t t0 = clock_->NowMicros();
    {
      MutexLock l(&mu_);
      if (stop_) return;
      in_flight_ = s;
      in_flight_since_ = t0;
    }
    // Outside the mutex: may take up to its timeout.
    Result<double> r = s == Signal::kProbe ? MeasureProbe() : source_->Measure(s);
    const int64_t took = clock_->NowMicros() - t0;
    {
      MutexLock l(&mu_);
      in_flight_.reset();
    }
    const std::string name(SignalName(s));
    double ratio = 0;
    std::string text;
    if (!r.ok()) {
      ratio = kFailedRatio;
      text = took >= settings_.signal_timeout_ms * 900
                 ? fmt::format("{} did not answer within {} ms (counted as over its limit)", name,
                               settings_.signal_timeout_ms)
                 : fmt::format("{} could not be read: {} (counted as over its limit)", name,
                               FirstLine(r.status().message()));
    } else {
      const double v = *r;
      if (s == Signal::kProbe) {
        readings.probe_ms = v;
        MutexLock l(&mu_);
        ratio = ProbeRatioLocked(v, app_idle, &text);
      }
      if (s == Signal::kActivity) {
        readings.app_sessions = v;
        app_idle = v <= 0;
      }
      if (s == Signal::kReplicaLag) readings.replica_lag_seconds = v;
      if (s == Signal::kLockWaiters) readings.lock_waiters = v;
      switch (s) {
        case Signal::kProbe: break;  // above
        case Signal::kReplicaLag:
          ratio = v / settings_.max_replica_lag_seconds;
          text = fmt::format("replica lag {:.1f} s (max {:g} s)", v, settings_.max_replica_lag_seconds);
          break;
        case Signal::kLockWaiters: {
          double limit = static_cast<double>(settings_.max_lock_waiters);
          ratio = limit > 0 ? v / limit : (v > 0 ? 1 + v : 0);
          text = fmt::format("{:g} sessions waiting for locks on the table (max {})", v, settings_.max_lock_waiters);
          blocked = ratio > 1;
          break;
        }
        case Signal::kActivity: break;  // no limit: it gates the probe
        case Signal::kCustom:
          ratio = settings_.custom_max > 0 ? v / settings_.custom_max : (v > 0 ? 1 + v : 0);
          text = fmt::format("custom signal {:g} (max {:g})", v, settings_.custom_max);
          break;
      }
    }
    if (ratio > worst) {
      worst = ratio;
      why = std::move(text);
      failed = !r.ok();
    }
  }
  {
    MutexLock l(&mu_);
    if (stop_) return;
    worst_ = worst;
    signal_why_ = why;
    readings_ = readings;
    // A failed activity reading (app_idle stays false) counts as at work.
    app_active_ = Enabled(Signal::kActivity) && !app_idle;
    if (worst > 1) {
      // Already at the slowest pace and still over the limit: hold entirely
      // until the signal falls back under it.
      holding_ = pace_ <= kMinPace;
      double cut = std::clamp(1.0 / worst, 0.5, 0.9);
      if (blocked) cut = std::min(cut, kBlockedCut);
      pace_ = std::max(kMinPace, pace_ * cut);
      if (holding_) signal_why_ += failed ? "; holding until it answers" : "; holding until it falls";
    } else {
      holding_ = false;
      if (worst < 0.8) pace_ = std::min(1.0, pace_ + kPaceIncrease);
    }
    // The application at work: give way whatever the probe says.
    if (app_active_ && settings_.active_max_pace > 0) pace_ = std::min(pace_, settings_.active_max_pace);
    probed_ = true;
  }
  cv_.notify_all();
}

Result<double> Pacer::MeasureProbe() {
  bool need_baseline;
  {
    MutexLock l(&mu_);
    need_baseline = settings_.probe_slowdown > 0 && !baseline_ms_;
  }
  if (!need_baseline) return source_->Measure(Signal::kProbe);
  // Before any chunk runs (no chunk starts before the first reading): the
  // application's latency without the backfill.
  std::vector<double> v;
  for (size_t i = 0; i < kBaselineReadings; ++i) {
    Result<double> r = source_->Measure(Signal::kProbe);
    if (!r.ok()) return r;
    v.push_back(*r);
  }
  const double m = Median(v);
  MutexLock l(&mu_);
  baseline_ms_ = m;
  return m;
}

double Pacer::ProbeRatioLocked(double ms, bool app_idle, std::string* text) {
  recent_probe_.push_back(ms);
  while (recent_probe_.size() > kSmoothReadings) recent_probe_.pop_front();
  const double smoothed = Median(recent_probe_);
  double ratio = 0;
  if (settings_.probe_target_ms > 0) {
    ratio = smoothed / static_cast<double>(settings_.probe_target_ms);
    *text = fmt::format("probe latency {:.1f} ms (target {} ms)", smoothed, settings_.probe_target_ms);
  }
  if (app_idle) {
    // Nobody but the backfill to slow down: its own cost, not a reason to
    // throttle. The reading still lowers the baseline and smooths.
    if (baseline_ms_) baseline_ms_ = std::min(*baseline_ms_, smoothed);
    quiet_probe_.clear();
    text->clear();
    return 0;
  }
  if (settings_.probe_slowdown <= 0 || !baseline_ms_) return ratio;
  if (holding_ || pace_ <= kQuietPace) {
    quiet_probe_.push_back(ms);
    if (quiet_probe_.size() >= kRebaseReadings) {
      baseline_ms_ = Median(quiet_probe_);
      quiet_probe_.clear();
    }
  } else {
    quiet_probe_.clear();
  }
  baseline_ms_ = std::min(*baseline_ms_, smoothed);
  const double b = *baseline_ms_;
  const double objective = std::max(b * settings_.probe_slowdown, b + settings_.probe_floor_ms);
  const double relative = objective > 0 ? smoothed / objective : 0;
  if (relative > ratio || settings_.probe_target_ms <= 0) {
    ratio = relative;
    *text = fmt::format("probe latency {:.2f} ms (objective {:.2f} ms: {:g}x its {:.2f} ms baseline)", smoothed,
                        objective, settings_.probe_slowdown, b);
  }
  return ratio;
}

void Pacer::PollControl() {
  Result<Control> c = source_ ? source_->ReadControl() : Result<Control>(Control{});
  const int64_t now = clock_->NowMicros();
  const int minute = static_cast<int>((clock_->WallMicros() / 60'000'000) % 1440);
  std::string reason;
  bool report = false;
  {
    MutexLock l(&mu_);
    if (c.ok()) {
      control_ = *c;
      control_error_.clear();
    } else {
      // Fail closed: the operator may have paused; hold until it reads.
      control_error_ = FirstLine(c.status().message());
    }
    SetRateLocked(control_.max_rows_per_second.value_or(settings_.max_rows_per_second), now);
    outside_window_ =
        !windows_.empty() && std::none_of(windows_.begin(), windows_.end(), [&](auto w) { return InWindow(w, minute); });
    reason = ReasonLocked(now);
    report = source_ && (!reported_ || reason != reported_reason_);
  }
  cv_.notify_all();
  if (report && source_->ReportThrottle(reason).ok()) {
    MutexLock l(&mu_);
    reported_ = true;
    reported_reason_ = reason;
  }
}

bool Pacer::StuckLocked(int64_t now) const {
  return in_flight_ && now - in_flight_since_ > (settings_.signal_timeout_ms + settings_.poll_ms) * 1000;
}

bool Pacer::HoldingLocked(int64_t now) const {
  return control_.paused || !control_error_.empty() || outside_window_ || holding_ || !probed_ || StuckLocked(now);
}

std::string Pacer::ReasonLocked(int64_t now) const {
  std::string reason;
  if (control_.paused) {
    reason = "paused (sluice resume " + migration_ + " to continue)";
  } else if (!control_error_.empty()) {
    reason = "holding: the control row could not be read (" + control_error_ + ")";
  } else if (outside_window_) {
    std::string list;
    for (const auto& w : settings_.windows) list += (list.empty() ? "" : ", ") + w;
    reason = "outside allowed window " + list + " UTC";
  } else if (StuckLocked(now)) {
    // Whole seconds: the reason (and the control row) changes once a second.
    reason = fmt::format("{} has not answered for {:.0f} s (timeout {} ms); holding until it answers",
                         SignalName(*in_flight_), static_cast<double>(now - in_flight_since_) / 1e6,
                         settings_.signal_timeout_ms);
  } else if (!probed_) {
    reason = "waiting for the first reading of the throttle signals";
  } else if (holding_) {
    reason = signal_why_;
  } else if (worst_ > 1) {
    reason = fmt::format("{}; pace {:.0f}%", signal_why_, pace_ * 100);
  } else if (pace_ < 1 && app_active_ && settings_.active_max_pace > 0) {
    // app_active_ with no signal over its limit: the activity was read.
    reason = fmt::format("application at work ({:g} sessions); pace {:.0f}%", readings_.app_sessions.value_or(0),
                         pace_ * 100);
  } else if (pace_ < 1) {
    reason = fmt::format("recovering; pace {:.0f}%", pace_ * 100);
  } else if (rate_ > 0) {
    reason = fmt::format("rate limit {:g} rows/s", rate_);
  }
  if (StepDownLocked()) reason += (reason.empty() ? "" : "; ") + std::string("1 worker while the application is at work");
  if (!note_.empty()) reason = reason.empty() ? note_ : reason + "; " + note_;
  return reason;
}

void Pacer::SetRateLocked(double rate, int64_t now) {
  if (rate == rate_) return;
  if (rate_ > 0) RefillLocked(now);
  const double cap = std::max(1.0, std::floor(rate / 2));
  tokens_ = rate_ > 0 ? std::min(tokens_, cap) : cap;  // a new limit starts with a full bucket
  rate_ = rate;
  bucket_at_ = now;
}

void Pacer::RefillLocked(int64_t now) {
  if (rate_ <= 0) return;
  const double cap = std::max(1.0, std::floor(rate_ / 2));
  tokens_ = std::min(cap, tokens_ + static_cast<double>(now - bucket_at_) * rate_ / 1e6);
  bucket_at_ = now;
}

Status Pacer::BeforeChunk() {
  MutexLock l(&mu_);
  for (;;) {
    if (interrupted_ || IsCancelled()) return Cancelled("backfill interrupted");
    if (!HoldingLocked(clock_->NowMicros())) return Status::Ok();
    clock_->WaitFor(&cv_, &mu_, kSliceMicros);
  }
}

Status Pacer::AfterChunk(int64_t rows, int64_t chunk_micros) {
  MutexLock l(&mu_);
  const int64_t end = clock_->NowMicros();
  if (rate_ > 0) {
    RefillLocked(end);
    tokens_ -= static_cast<double>(rows);
  }
  for (;;) {
    if (interrupted_ || IsCancelled()) return Cancelled("backfill interrupted");
    const int64_t now = clock_->NowMicros();
    int64_t due = now;
    if (pace_ < 1) {
      double wait = static_cast<double>(chunk_micros) * (1 - pace_) / pace_;
      due = std::max(due, end + static_cast<int64_t>(std::min(wait, 10e6)));
    }
    if (rate_ > 0) {
      RefillLocked(now);
      if (tokens_ < 0) due = std::max(due, now + static_cast<int64_t>(std::ceil(-tokens_ * 1e6 / rate_)));
    }
    if (due <= now) return Status::Ok();
    clock_->WaitFor(&cv_, &mu_, std::min(due - now, kSliceMicros));
  }
}

std::string Pacer::reason() const {
  MutexLock l(&mu_);
  return ReasonLocked(clock_->NowMicros());
}

double Pacer::pace() const {
  MutexLock l(&mu_);
  return pace_;
}

bool Pacer::holding() const {
  MutexLock l(&mu_);
  return HoldingLocked(clock_->NowMicros());
}

std::optional<int64_t> Pacer::chunk_target_ms() const {
  MutexLock l(&mu_);
  return control_.chunk_target_ms;
}

bool Pacer::StepDownLocked() const { return !control_.workers && app_active_; }

std::optional<int64_t> Pacer::workers() const {
  MutexLock l(&mu_);
  if (StepDownLocked()) return 1;
  return control_.workers;
}

std::optional<int64_t> Pacer::max_chunk_rows() const {
  MutexLock l(&mu_);
  if (rate_ <= 0) return std::nullopt;
  return std::max<int64_t>(1, static_cast<int64_t>(rate_ / 2));
}

double Pacer::chunk_scale() const {
  MutexLock l(&mu_);
  double scale = std::clamp(pace_, 0.1, 1.0);
  if (app_active_ && settings_.active_chunk_ms > 0 && settings_.chunk_target_ms > 0 && !control_.chunk_target_ms) {
    const double active =
        static_cast<double>(settings_.active_chunk_ms) / static_cast<double>(settings_.chunk_target_ms);
    scale = std::min(scale, std::clamp(active, 0.01, 1.0));
  }
  return scale;
}

bool Pacer::paused() const {
  MutexLock l(&mu_);
  return control_.paused;
}

SignalReadings Pacer::readings() const {
  MutexLock l(&mu_);
  return readings_;
}

std::optional<double> Pacer::probe_baseline_ms() const {
  MutexLock l(&mu_);
  return baseline_ms_;
}

void Pacer::SetNote(std::string note) {
  MutexLock l(&mu_);
  note_ = std::move(note);
}

}  // namespace sluice::backfill
