// The Pacer's decisions on a fake clock with synthetic signal series, no
// database: the pace cut in proportion, additive recovery, the probe's
// relative objective (baseline, spikes, sustained rises, drift, noise, a
// failing probe), the hold at the slowest
// pace, time windows (also across midnight), the rate-limit token bucket,
// chunk_scale, control (pause, tune), failing, timed-out and hung signals,
// the latest readings the chunks record, cancellation of every wait, and
// the application-activity gate (the backfill's own cost never throttles;
// the application's suffering does; while it is at work one worker, short
// chunks and half the pace at once; a blocked session cuts hard).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "backfill/throttle.h"
#include "common/clock.h"

namespace sluice::backfill {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A SignalSource fed by the test. Thread-safe.
class FakeSource : public SignalSource {
 public:
  // The next readings of `s` (the last one repeats).
  void Set(Signal s, Result<double> v) {
    std::lock_guard<std::mutex> l(mu_);
    values_.erase(s);
    values_.emplace(s, std::move(v));
  }
  // Measure(s) runs `fn` instead (may block, may move the clock); an empty
  // `fn` goes back to the values of Set.
  void SetFn(Signal s, std::function<Result<double>()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (fn) {
      fns_[s] = std::move(fn);
    } else {
      fns_.erase(s);
    }
  }
  void SetControl(Result<Control> c) {
    std::lock_guard<std::mutex> l(mu_);
    control_ = std::move(c);
  }
  std::vector<std::string> reports() const {
    std::lock_guard<std::mutex> l(mu_);
    return reports_;
  }
  int measures() const {
    std::lock_guard<std::mutex> l(mu_);
    return measures_;
  }

  Result<double> Measure(Signal s) override {
    std::function<Result<double>()> fn;
    {
      std::lock_guard<std::mutex> l(mu_);
      ++measures_;
      if (fns_.count(s)) {
        fn = fns_[s];
      } else {
        auto it = values_.find(s);
        return it == values_.end() ? Result<double>(0.0) : it->second;
      }
    }
    return fn();
  }
  Result<Control> ReadControl() override {
    std::lock_guard<std::mutex> l(mu_);
    return control_;
  }
  Status ReportThrottle(const std::string& reason) override {
    std::lock_guard<std::mutex> l(mu_);
    reports_.push_back(reason);
    return Status::Ok();
  }

 private:
  mutable std::mutex mu_;
  std::map<Signal, Result<double>> values_;
  std::map<Signal, std::function<Result<double>()>> fns_;
  Result<Control> control_ = Control{};
  std::vector<std::string> reports_;
  int measures_ = 0;
};

ThrottleSettings CustomSignal(double max) {
  ThrottleSettings s;
  s.custom_sql = "SELECT v FROM signal";  // never run: the FakeSource answers
  s.custom_max = max;
  return s;
}

struct Rig {
  explicit Rig(ThrottleSettings settings, int64_t wall = 0) : clock(wall ? wall : FakeClock().WallMicros()) {
    auto src = std::make_unique<FakeSource>();
    source = src.get();
    pacer = std::make_shared<Pacer>("001_x", std::move(settings), std::move(src), &clock, &cancel);
  }
  // One reading of the signals with `v` as the custom signal.
  void Read(double v) {
    source->Set(Signal::kCustom, v);
    pacer->ProbeSignals();
  }
  // How long (fake µs) AfterChunk waited.
  int64_t AfterChunkWait(int64_t rows, int64_t chunk_micros) {
    int64_t t0 = clock.NowMicros();
    EXPECT_TRUE(pacer->AfterChunk(rows, chunk_micros).ok());
    return clock.NowMicros() - t0;
  }

  FakeClock clock;
  std::atomic<bool> cancel{false};
  FakeSource* source;
  std::shared_ptr<Pacer> pacer;
};

// 2026-01-01T00:00:00Z plus `h` hours and `m` minutes, in µs.
int64_t Utc(int h, int m) { return (1767225600LL + h * 3600LL + m * 60LL) * 1'000'000; }

TEST(PacerTest, SignalOverItsLimitCutsThePaceInProportionAtMostHalving) {
  Rig r(CustomSignal(10));
  r.Read(5);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  EXPECT_EQ(r.pacer->reason(), "");
  r.Read(12.5);  // 25% over: pace x 1/1.25
  EXPECT_NEAR(r.pacer->pace(), 0.8, 1e-9);
  EXPECT_EQ(r.pacer->reason(), "custom signal 12.5 (max 10); pace 80%");
  r.Read(11);  // 10% over: the cut is at least 10%
  EXPECT_NEAR(r.pacer->pace(), 0.72, 1e-9);
  r.Read(1000);  // 100x over: at most halving
  EXPECT_NEAR(r.pacer->pace(), 0.36, 1e-9);
  EXPECT_FALSE(r.pacer->holding());
}

TEST(PacerTest, RecoversAdditivelyOnlyBelowEightyPercentOfEveryLimit) {
  Rig r(CustomSignal(10));
  r.Read(20);
  r.Read(20);
  EXPECT_NEAR(r.pacer->pace(), 0.25, 1e-9);
  r.Read(9);  // under the limit but above 80%: no change either way
  EXPECT_NEAR(r.pacer->pace(), 0.25, 1e-9);
  r.Read(7);  // below 80%: +0.1
  EXPECT_NEAR(r.pacer->pace(), 0.35, 1e-9);
  EXPECT_EQ(r.pacer->reason(), "recovering; pace 35%");
  for (int i = 0; i < 20; ++i) r.Read(0);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  EXPECT_EQ(r.pacer->reason(), "");
}

TEST(PacerTest, ASignalStillOverItsLimitAtTheSlowestPaceHoldsUntilItFalls) {
  Rig r(CustomSignal(10));
  int readings = 0;
  do {
    r.Read(100);
    ++readings;
  } while (!r.pacer->holding() && readings < 50);
  // Halving from 1 reaches the 2% floor after 6 readings; the 7th holds.
  EXPECT_EQ(readings, 7);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.02);
  EXPECT_EQ(r.pacer->reason(), "custom signal 100 (max 10); holding until it falls");
  // While held, BeforeChunk waits; a cancel ends the wait without the
  // clock moving (the wait is in slices that look at the flag).
  r.cancel = true;
  int64_t t0 = r.clock.NowMicros();
  EXPECT_EQ(r.pacer->BeforeChunk().code(), StatusCode::kCancelled);
  EXPECT_EQ(r.clock.NowMicros(), t0);
  r.cancel = false;
  r.Read(3);
  EXPECT_FALSE(r.pacer->holding());
  EXPECT_TRUE(r.pacer->BeforeChunk().ok());
}

TEST(PacerTest, WorstSignalSetsThePace) {
  ThrottleSettings s = CustomSignal(10);
  s.probe_sql = "SELECT 1";
  s.probe_target_ms = 50;
  s.max_lock_waiters = 0;
  s.lock_waiters_sql = "SELECT 0";
  s.max_replica_lag_seconds = 10;
  s.replica_lag_sql = "SELECT 0";
  Rig r(s);
  r.source->Set(Signal::kProbe, 40.0);
  r.source->Set(Signal::kReplicaLag, 2.0);
  r.source->Set(Signal::kLockWaiters, 0.0);
  r.Read(1);
  EXPECT_EQ(r.source->measures(), 4);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  r.source->Set(Signal::kProbe, 60.0);       // 1.2x its target
  r.source->Set(Signal::kReplicaLag, 15.0);  // 1.5x its max: the worst
  r.Read(1);
  EXPECT_NEAR(r.pacer->pace(), 1 / 1.5, 1e-9);
  EXPECT_THAT(r.pacer->reason(), HasSubstr("replica lag 15.0 s (max 10 s)"));
  // With a maximum of 0 lock waiters, any waiter is over the limit.
  r.source->Set(Signal::kProbe, 10.0);
  r.source->Set(Signal::kReplicaLag, 0.0);
  r.source->Set(Signal::kLockWaiters, 1.0);
  r.Read(1);
  EXPECT_THAT(r.pacer->reason(), HasSubstr("1 sessions waiting for locks on the table (max 0)"));
}

TEST(PacerTest, ReadingsAreTheLatestOfEachSignalAndUnsetWhenOffOrFailed) {
  ThrottleSettings s;
  s.probe_sql = "SELECT 1";
  s.probe_target_ms = 50;
  s.max_lock_waiters = 3;
  s.lock_waiters_sql = "SELECT 0";  // replica lag stays off
  Rig r(s);
  EXPECT_FALSE(r.pacer->readings().probe_ms.has_value());  // before the first reading
  r.source->Set(Signal::kProbe, 12.5);
  r.source->Set(Signal::kLockWaiters, 2.0);
  r.pacer->ProbeSignals();
  SignalReadings got = r.pacer->readings();
  EXPECT_EQ(got.probe_ms, 12.5);
  EXPECT_EQ(got.lock_waiters, 2.0);
  EXPECT_FALSE(got.replica_lag_seconds.has_value());
  // A failed reading is unset, not the previous value.
  r.source->Set(Signal::kProbe, Unavailable("connection lost"));
  r.source->Set(Signal::kLockWaiters, 1.0);
  r.pacer->ProbeSignals();
  got = r.pacer->readings();
  EXPECT_FALSE(got.probe_ms.has_value());
  EXPECT_EQ(got.lock_waiters, 1.0);
}

TEST(PacerTest, AfterAChunkWorkersWaitTheDutyCycleOfThePace) {
  Rig r(CustomSignal(10));
  r.clock.set_auto_advance(true);
  r.Read(0);
  EXPECT_EQ(r.AfterChunkWait(100, 100'000), 0);  // full speed: no wait
  r.Read(20);                                    // pace 50%: wait as long as the chunk took
  EXPECT_EQ(r.AfterChunkWait(100, 100'000), 100'000);
  r.Read(20);  // 25%: three times as long
  EXPECT_EQ(r.AfterChunkWait(100, 100'000), 300'000);
  for (int i = 0; i < 5; ++i) r.Read(20);  // 2%: 49 times, capped at 10 s
  EXPECT_EQ(r.AfterChunkWait(100, 1'000'000), 10'000'000);
}

TEST(PacerTest, ChunkScaleFollowsThePaceDownToATenth) {
  Rig r(CustomSignal(10));
  r.Read(0);
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 1.0);
  r.Read(20);
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 0.5);
  for (int i = 0; i < 5; ++i) r.Read(20);
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 0.1);
}

TEST(PacerTest, RateLimitIsATokenBucketOfHalfASecond) {
  ThrottleSettings s;
  s.max_rows_per_second = 1000;
  Rig r(s);
  r.clock.set_auto_advance(true);
  EXPECT_EQ(r.pacer->max_chunk_rows(), 500);
  EXPECT_EQ(r.pacer->reason(), "rate limit 1000 rows/s");
  EXPECT_EQ(r.AfterChunkWait(500, 1000), 0);  // the bucket starts full
  EXPECT_EQ(r.AfterChunkWait(500, 1000), 500'000);
  EXPECT_EQ(r.AfterChunkWait(250, 1000), 250'000);
  // A long idle time fills the bucket only to its capacity: no burst.
  r.clock.Advance(60'000'000);
  EXPECT_EQ(r.AfterChunkWait(1500, 1000), 1'000'000);
  // Sustained: 40 chunks of 250 rows take 10 s.
  int64_t t0 = r.clock.NowMicros();
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(r.pacer->AfterChunk(250, 0).ok());
  EXPECT_EQ(r.clock.NowMicros() - t0, 10'000'000);
}

TEST(PacerTest, TuneChangesTheRateAndLiftsIt) {
  ThrottleSettings s;
  s.max_rows_per_second = 1000;
  Rig r(s);
  r.clock.set_auto_advance(true);
  Control c;
  c.max_rows_per_second = 4000;
  c.workers = 3;
  c.chunk_target_ms = 80;
  r.source->SetControl(c);
  r.pacer->PollControl();
  EXPECT_EQ(r.pacer->max_chunk_rows(), 2000);
  EXPECT_EQ(r.pacer->workers(), 3);
  EXPECT_EQ(r.pacer->chunk_target_ms(), 80);
  // A higher rate grants no burst: the bucket keeps its 500 rows.
  EXPECT_EQ(r.AfterChunkWait(2000, 0), 375'000);
  EXPECT_EQ(r.AfterChunkWait(2000, 0), 500'000);
  c.max_rows_per_second = 0;  // `tune --rate 0`: unlimited
  r.source->SetControl(c);
  r.pacer->PollControl();
  EXPECT_EQ(r.pacer->max_chunk_rows(), std::nullopt);
  EXPECT_EQ(r.AfterChunkWait(100000, 0), 0);
}

TEST(PacerTest, WindowsIncludingOneThatWrapsMidnight) {
  auto w = ParseWindow("22:00-06:00");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, std::make_pair(22 * 60, 6 * 60));
  EXPECT_TRUE(InWindow(*w, 23 * 60 + 59));
  EXPECT_TRUE(InWindow(*w, 0));
  EXPECT_TRUE(InWindow(*w, 5 * 60 + 59));
  EXPECT_FALSE(InWindow(*w, 6 * 60));
  EXPECT_FALSE(InWindow(*w, 12 * 60));
  EXPECT_FALSE(InWindow(*w, 21 * 60 + 59));
  EXPECT_TRUE(InWindow(*ParseWindow("00:00-00:00"), 12 * 60));  // all day
  EXPECT_TRUE(InWindow(*ParseWindow("20:00-24:00"), 23 * 60));
  EXPECT_FALSE(InWindow(*ParseWindow("20:00-24:00"), 0));
  for (const char* bad : {"22-06", "25:00-01:00", "10:60-11:00", "10:00-11:00x", "24:30-01:00", ""}) {
    EXPECT_EQ(ParseWindow(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }

  ThrottleSettings s;
  s.windows = {"22:00-06:00"};
  Rig r(s, Utc(21, 58));
  r.pacer->PollControl();
  EXPECT_TRUE(r.pacer->holding());
  EXPECT_EQ(r.pacer->reason(), "outside allowed window 22:00-06:00 UTC");
  r.clock.Advance(2 * 60'000'000);  // 22:00
  r.pacer->PollControl();
  EXPECT_FALSE(r.pacer->holding());
  EXPECT_EQ(r.pacer->reason(), "");
  r.clock.Advance(7 * 3600'000'000LL + 59 * 60'000'000LL);  // 05:59 the next day
  r.pacer->PollControl();
  EXPECT_FALSE(r.pacer->holding());
  r.clock.Advance(60'000'000);  // 06:00
  r.pacer->PollControl();
  EXPECT_TRUE(r.pacer->holding());
}

TEST(PacerTest, PauseHoldsAndThePausedWaitEndsOnInterrupt) {
  Rig r(ThrottleSettings{});
  Control c;
  c.paused = true;
  r.source->SetControl(c);
  r.pacer->PollControl();
  EXPECT_TRUE(r.pacer->paused());
  EXPECT_EQ(r.pacer->reason(), "paused (sluice resume 001_x to continue)");
  EXPECT_EQ(r.source->reports(), std::vector<std::string>{"paused (sluice resume 001_x to continue)"});
  // A worker waits while paused; Interrupt (another worker failed) ends the
  // wait at once, on a clock that never moves.
  auto waiter = std::async(std::launch::async, [&] { return r.pacer->BeforeChunk(); });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  r.pacer->Interrupt();
  EXPECT_EQ(waiter.get().code(), StatusCode::kCancelled);
  // The reason is reported only when it changes.
  r.pacer->PollControl();
  EXPECT_EQ(r.source->reports().size(), 1u);
}

TEST(PacerTest, AnUnreadableControlRowHolds) {
  Rig r(ThrottleSettings{});
  r.source->SetControl(Unavailable("server closed the connection"));
  r.pacer->PollControl();
  EXPECT_TRUE(r.pacer->holding());
  EXPECT_THAT(r.pacer->reason(), HasSubstr("control row could not be read (server closed the connection)"));
  r.source->SetControl(Control{});
  r.pacer->PollControl();
  EXPECT_FALSE(r.pacer->holding());
}

TEST(PacerTest, NoChunkBeforeTheFirstReadingOfTheSignals) {
  Rig r(CustomSignal(10));
  EXPECT_TRUE(r.pacer->holding());
  EXPECT_EQ(r.pacer->reason(), "waiting for the first reading of the throttle signals");
  r.Read(0);
  EXPECT_FALSE(r.pacer->holding());
}

TEST(PacerTest, AFailingSignalCountsAsOverItsLimitAndEndsInAVisibleHold) {
  Rig r(CustomSignal(10));
  r.source->Set(Signal::kCustom, InvalidArgument("relation \"signal\" does not exist\nLINE 1: ..."));
  r.pacer->ProbeSignals();
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  EXPECT_EQ(r.pacer->reason(),
            "custom signal could not be read: relation \"signal\" does not exist (counted as over its limit); pace 50%");
  for (int i = 0; i < 6; ++i) r.pacer->ProbeSignals();
  EXPECT_TRUE(r.pacer->holding());
  EXPECT_THAT(r.pacer->reason(), HasSubstr("holding until it answers"));
  // It answers again: the hold ends and the pace recovers.
  r.Read(0);
  EXPECT_FALSE(r.pacer->holding());
  EXPECT_GT(r.pacer->pace(), 0.02);
}

TEST(PacerTest, ASignalCancelledByItsStatementTimeoutIsNamedAsTimedOut) {
  ThrottleSettings s = CustomSignal(10);
  s.signal_timeout_ms = 2000;
  Rig r(s);
  r.source->SetFn(Signal::kCustom, [&]() -> Result<double> {
    r.clock.Advance(2'000'000);  // the server cancels it after 2 s
    return Status(StatusCode::kInternal, "canceling statement due to statement timeout", "SQLSTATE 57014");
  });
  r.pacer->ProbeSignals();
  EXPECT_EQ(r.pacer->reason(), "custom signal did not answer within 2000 ms (counted as over its limit); pace 50%");
}

TEST(PacerTest, AHungSignalStallsNoOneAndHoldsVisiblyUntilItAnswers) {
  ThrottleSettings s = CustomSignal(10);
  s.signal_timeout_ms = 2000;
  s.poll_ms = 250;
  Rig r(s);
  r.Read(0);  // a first healthy reading
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  r.source->SetFn(Signal::kCustom, [&]() -> Result<double> {
    entered.set_value();
    released.wait();  // a query that never comes back by itself
    return 0.0;
  });
  std::thread prober([&] { r.pacer->ProbeSignals(); });
  entered.get_future().wait();
  // The Pacer's mutex is free: workers keep going on the last readings...
  EXPECT_FALSE(r.pacer->holding());
  EXPECT_TRUE(r.pacer->BeforeChunk().ok());
  EXPECT_TRUE(r.pacer->AfterChunk(100, 1000).ok());
  // ...until the query has run past its timeout and a poll interval: then
  // they hold, and the reason says which signal and for how long.
  r.clock.Advance(2'250'000);
  EXPECT_FALSE(r.pacer->holding());
  r.clock.Advance(1);
  EXPECT_TRUE(r.pacer->holding());
  r.clock.Advance(9'749'999);
  EXPECT_EQ(r.pacer->reason(), "custom signal has not answered for 12 s (timeout 2000 ms); holding until it answers");
  r.pacer->PollControl();
  EXPECT_EQ(r.source->reports().back(), r.pacer->reason());  // what `status` shows
  // The first cancel still ends a held worker's wait.
  r.cancel = true;
  EXPECT_EQ(r.pacer->BeforeChunk().code(), StatusCode::kCancelled);
  r.cancel = false;
  release.set_value();
  prober.join();
  EXPECT_FALSE(r.pacer->holding());
}

TEST(PacerTest, CancelEndsEveryWaitWithoutTheClockMoving) {
  ThrottleSettings s = CustomSignal(10);
  s.max_rows_per_second = 10;
  Rig r(s);
  r.Read(20);  // pace 50%
  // A chunk that took 10 s: the pace asks for 10 s, the bucket for 100 s.
  int64_t t0 = r.clock.NowMicros();
  auto waiter = std::async(std::launch::async, [&] { return r.pacer->AfterChunk(1000, 10'000'000); });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  r.cancel = true;
  EXPECT_EQ(waiter.get().code(), StatusCode::kCancelled);
  EXPECT_EQ(r.clock.NowMicros(), t0);
}

TEST(PacerTest, ThreadsReadSignalsAndControlUntilStopped) {
  ThrottleSettings s = CustomSignal(10);
  s.poll_ms = 250;
  Rig r(s);
  r.source->Set(Signal::kCustom, 100.0);
  r.pacer->Start();
  // Move the fake time one poll interval at a time until the probe thread
  // has cut the pace twice.
  auto reported = [&] {
    for (const auto& t : r.source->reports()) {
      if (t.find("custom signal 100 (max 10)") != std::string::npos) return true;
    }
    return false;
  };
  for (int i = 0; i < 5000 && (r.pacer->pace() > 0.3 || !reported()); ++i) {
    r.clock.Advance(250'000);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_LE(r.pacer->pace(), 0.25);
  EXPECT_TRUE(reported());
  r.pacer->Stop();
  int measures = r.source->measures();
  r.clock.Advance(10'000'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(r.source->measures(), measures);  // stopped means stopped
  EXPECT_EQ(r.pacer->BeforeChunk().code(), StatusCode::kCancelled);
}

}  // namespace
}  // namespace sluice::backfill

namespace sluice::backfill {
namespace {

// The default probe objective: 1.5x the probe's own baseline, at least
// +1 ms. Readings come from `series` in order (the last repeats).
struct ProbeRig : Rig {
  explicit ProbeRig(double slowdown = 1.5) : Rig(Relative(slowdown)) {
    source->SetFn(Signal::kProbe, [this]() -> Result<double> {
      std::lock_guard<std::mutex> l(mu);
      if (next < series.size()) return series[next++];
      return series.empty() ? 0.0 : series.back();
    });
  }
  static ThrottleSettings Relative(double slowdown) {
    ThrottleSettings s;
    s.probe_sql = "SELECT k FROM t ORDER BY k LIMIT 1";  // never run
    s.probe_slowdown = slowdown;
    return s;
  }
  // Queues `values` and takes one reading per value (the first reading of
  // a pacer also takes the baseline's readings from the queue).
  void Feed(std::vector<double> values, int readings = -1) {
    {
      std::lock_guard<std::mutex> l(mu);
      series.insert(series.end(), values.begin(), values.end());
    }
    for (int i = 0; i < (readings < 0 ? static_cast<int>(values.size()) : readings); ++i) pacer->ProbeSignals();
  }
  // Readings of `ms` until the pace passes `pred` (at most `limit`);
  // returns how many it took, or -1.
  int ReadUntil(double ms, const std::function<bool(double)>& pred, int limit = 200) {
    for (int i = 1; i <= limit; ++i) {
      Feed({ms});
      if (pred(pacer->pace())) return i;
    }
    return -1;
  }
  std::mutex mu;
  std::vector<double> series;
  size_t next = 0;
};

TEST(PacerProbeTest, TheFirstReadingMeasuresTheBaselineAsAMedianBeforeAnyChunk) {
  ProbeRig r;
  EXPECT_TRUE(r.pacer->holding());  // no chunk before it
  // Five back-to-back readings, one of them an outlier: the median.
  r.Feed({2.0, 2.2, 40.0, 1.8, 2.1}, 1);
  ASSERT_TRUE(r.pacer->probe_baseline_ms().has_value());
  EXPECT_DOUBLE_EQ(*r.pacer->probe_baseline_ms(), 2.1);
  EXPECT_FALSE(r.pacer->holding());
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
}

TEST(PacerProbeTest, ASingleSpikeIsIgnoredASustainedRiseHalvesThePaceWithinTwoReadings) {
  ProbeRig r;
  r.Feed({2, 2, 2, 2, 2}, 1);
  r.Feed({2, 2, 2});
  r.Feed({50});  // one spike: the median of the last three is 2
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  r.Feed({2, 2});
  // A sustained rise, 10x the baseline: the second reading halves the pace
  // (2 readings = 500 ms at the default poll interval).
  r.Feed({20});
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  r.Feed({20});
  EXPECT_LE(r.pacer->pace(), 0.5);
  EXPECT_THAT(r.pacer->reason(), HasSubstr("probe latency 20.00 ms (objective 3.00 ms: 1.5x its 2.00 ms baseline)"));
}

TEST(PacerProbeTest, AModestSustainedRiseCutsThePaceInProportionUntilMet) {
  ProbeRig r;
  r.Feed({4, 4, 4, 4, 4}, 1);  // objective 6 ms
  // 7.5 ms sustained: 1.25x the objective, cut by 1/1.25 per reading.
  const int n = r.ReadUntil(7.5, [](double p) { return p <= 0.5; });
  EXPECT_GE(n, 3);
  EXPECT_LE(n, 6);
}

TEST(PacerProbeTest, RecoveryAfterTheLoadEndsIsBackAboveEightyPercentWithinTenReadings) {
  ProbeRig r;
  r.Feed({1, 1, 1, 1, 1}, 1);  // objective max(1.5, 1 + 1) = 2 ms
  EXPECT_GT(r.ReadUntil(30, [](double p) { return p <= 0.02; }), 0);
  // The load ends: the latency is back at its baseline.
  const int n = r.ReadUntil(1, [](double p) { return p > 0.8; });
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 10);  // 2.5 s at 250 ms; the smoothing costs one reading
  EXPECT_EQ(r.ReadUntil(1, [](double p) { return p >= 1.0; }, 5) > 0, true);
}

TEST(PacerProbeTest, MicrosecondNoiseOfAFastProbeNeverThrottles) {
  ProbeRig r;
  r.Feed({0.10, 0.12, 0.09, 0.11, 0.10}, 1);  // baseline 0.10 ms: objective 1.10 ms
  // The backfill alone doubles the probe's latency, with jitter and the
  // odd spike: all far under baseline + 1 ms.
  for (int i = 0; i < 100; ++i) {
    double v = 0.2 + 0.05 * (i % 7) / 7.0 + (i % 13 == 0 ? 5.0 : 0.0);
    r.Feed({v});
    ASSERT_DOUBLE_EQ(r.pacer->pace(), 1.0) << "reading " << i << " (" << v << " ms)";
  }
}

TEST(PacerProbeTest, ABaselineDriftCannotRatchetTheBackfillDownForever) {
  ProbeRig r;
  r.Feed({1, 1, 1, 1, 1}, 1);
  // The application's latency rises to 5x for reasons of its own and stays
  // there: the backfill slows to a hold, the quiet readings re-measure the
  // baseline, and it runs again at full speed.
  EXPECT_GT(r.ReadUntil(5, [](double p) { return p <= 0.02; }), 0);
  EXPECT_GT(r.ReadUntil(5, [](double p) { return p >= 1.0; }, 40), 0);
  EXPECT_NEAR(*r.pacer->probe_baseline_ms(), 5.0, 1e-9);
  EXPECT_FALSE(r.pacer->holding());
  // And the new baseline still protects: a rise on top of it throttles.
  EXPECT_GT(r.ReadUntil(50, [](double p) { return p <= 0.5; }, 4), 0);
  // A falling latency lowers the baseline at once.
  r.ReadUntil(0.5, [](double) { return false; }, 4);
  EXPECT_NEAR(*r.pacer->probe_baseline_ms(), 0.5, 1e-9);
}

TEST(PacerProbeTest, AFailingProbeStillFailsClosedAndLeavesTheBaselineAlone) {
  ProbeRig r;
  r.Feed({2, 2, 2, 2, 2}, 1);
  r.source->Set(Signal::kProbe, Unavailable("connection lost"));
  r.source->SetFn(Signal::kProbe, nullptr);
  for (int i = 0; i < 7; ++i) r.pacer->ProbeSignals();
  EXPECT_TRUE(r.pacer->holding());
  EXPECT_THAT(r.pacer->reason(), HasSubstr("probe latency could not be read: connection lost"));
  EXPECT_DOUBLE_EQ(*r.pacer->probe_baseline_ms(), 2.0);
}

TEST(PacerProbeTest, ABaselineThatCannotBeMeasuredHolds) {
  ProbeRig r;
  r.source->SetFn(Signal::kProbe, nullptr);
  r.source->Set(Signal::kProbe, Unavailable("connection lost"));
  r.pacer->ProbeSignals();
  EXPECT_FALSE(r.pacer->probe_baseline_ms().has_value());
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  for (int i = 0; i < 6; ++i) r.pacer->ProbeSignals();
  EXPECT_TRUE(r.pacer->holding());
}

TEST(PacerProbeTest, AnAbsoluteTargetAndTheRelativeObjectiveTheWorstWins) {
  ThrottleSettings s = ProbeRig::Relative(1.5);
  s.probe_target_ms = 5;
  Rig r(s);
  r.source->Set(Signal::kProbe, 1.0);
  r.pacer->ProbeSignals();  // baseline 1 ms: objective 2 ms
  r.source->Set(Signal::kProbe, 4.0);
  r.pacer->ProbeSignals();
  r.pacer->ProbeSignals();
  EXPECT_THAT(r.pacer->reason(), HasSubstr("objective 2.00 ms"));  // 2x its objective, 0.8x the target
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  // Only an absolute target: no baseline is measured.
  ThrottleSettings a;
  a.probe_sql = "SELECT 1";
  a.probe_target_ms = 5;
  Rig r2(a);
  r2.source->Set(Signal::kProbe, 4.0);
  r2.pacer->ProbeSignals();
  EXPECT_EQ(r2.source->measures(), 1);
  EXPECT_FALSE(r2.pacer->probe_baseline_ms().has_value());
  EXPECT_DOUBLE_EQ(r2.pacer->pace(), 1.0);
}

}  // namespace
}  // namespace sluice::backfill

namespace sluice::backfill {
namespace {

// The PostgreSQL default: the relative objective gated by the application's
// activity, half the pace, one worker and 10 ms chunks (of a 30 ms target)
// while the application is at work, and any lock waiter over its limit.
// Readings come from Set.
struct ActivityRig : Rig {
  ActivityRig() : Rig(Settings()) {
    source->Set(Signal::kActivity, 0.0);
    source->Set(Signal::kLockWaiters, 0.0);
  }
  static ThrottleSettings Settings() {
    ThrottleSettings s;
    s.probe_sql = "SELECT k FROM t ORDER BY k LIMIT 1";  // never run
    s.probe_slowdown = 1.5;
    s.activity_sql = "SELECT count(*) FROM pg_stat_activity";
    s.lock_waiters_sql = "SELECT 0";
    s.max_lock_waiters = 0;
    s.active_max_pace = 0.5;
    s.active_chunk_ms = 10;
    s.chunk_target_ms = 30;
    return s;
  }
  // One reading: `sessions` application sessions at work, the probe at `ms`.
  void Read(double sessions, double ms) {
    source->Set(Signal::kActivity, sessions);
    source->Set(Signal::kProbe, ms);
    pacer->ProbeSignals();
  }
  // Readings until the pace passes `pred` (at most `limit`); how many, or -1.
  int ReadUntil(double sessions, double ms, const std::function<bool(double)>& pred, int limit = 200) {
    for (int i = 1; i <= limit; ++i) {
      Read(sessions, ms);
      if (pred(pacer->pace())) return i;
    }
    return -1;
  }
};

TEST(PacerActivityTest, AnIdleApplicationNeverThrottlesHoweverSlowTheProbe) {
  ActivityRig r;
  r.Read(0, 0.2);  // the baseline: 0.2 ms, objective 1.2 ms
  ASSERT_DOUBLE_EQ(*r.pacer->probe_baseline_ms(), 0.2);
  // The backfill alone saturates the cores: the probe waits 5-250x its
  // baseline, with noise and spikes. Nobody else is at work: never throttled.
  for (int i = 0; i < 200; ++i) {
    double ms = 1 + 10.0 * (i % 5) + (i % 17 == 0 ? 50.0 : 0.0);
    r.Read(0, ms);
    ASSERT_DOUBLE_EQ(r.pacer->pace(), 1.0) << "reading " << i << " (" << ms << " ms)";
    ASSERT_EQ(r.pacer->reason(), "") << "reading " << i;
    ASSERT_FALSE(r.pacer->workers().has_value());
    ASSERT_DOUBLE_EQ(r.pacer->chunk_scale(), 1.0);
    ASSERT_FALSE(r.pacer->holding());
  }
  EXPECT_EQ(r.pacer->readings().app_sessions, 0.0);
  // The baseline is still the application's latency, not the backfill's.
  EXPECT_DOUBLE_EQ(*r.pacer->probe_baseline_ms(), 0.2);
}

TEST(PacerActivityTest, TheApplicationAtWorkGetsOneWorkerShortChunksAndHalfThePaceAtOnce) {
  ActivityRig r;
  r.clock.set_auto_advance(true);
  r.Read(0, 1.0);  // idle: flat out, all workers, the plan's chunks
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 1.0);
  EXPECT_FALSE(r.pacer->workers().has_value());
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 1.0);
  EXPECT_EQ(r.AfterChunkWait(100, 10'000), 0);
  // The first reading with the application at work, its probe no slower:
  // the backfill gives way at once, whatever the probe says.
  r.Read(2, 1.0);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  EXPECT_EQ(r.pacer->workers(), 1);
  EXPECT_NEAR(r.pacer->chunk_scale(), 10.0 / 30.0, 1e-9);  // 10 ms chunks
  EXPECT_EQ(r.AfterChunkWait(100, 10'000), 10'000);      // a duty cycle of a half
  EXPECT_EQ(r.pacer->reason(), "application at work (2 sessions); pace 50%; 1 worker while the application is at work");
  // It stays there while the application works and the probe is fine:
  // neither lower nor higher.
  for (int i = 0; i < 20; ++i) {
    r.Read(1 + i % 3, 1.0 + 0.05 * (i % 4));
    ASSERT_DOUBLE_EQ(r.pacer->pace(), 0.5) << "reading " << i;
    ASSERT_EQ(r.pacer->workers(), 1);
  }
  // The application stops; the backfill's own cost slows the probe 5x:
  // all workers and the plan's chunks at once, the pace above 80% within
  // 4 readings (1 s at 250 ms; figure 7's target is 10 s), flat out after.
  r.Read(0, 5.0);
  EXPECT_FALSE(r.pacer->workers().has_value());
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), r.pacer->pace());
  EXPECT_THAT(r.pacer->reason(), HasSubstr("recovering"));
  const int n = r.ReadUntil(0, 5.0, [](double p) { return p > 0.8; }, 40);
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 3);
  EXPECT_GT(r.ReadUntil(0, 5.0, [](double p) { return p >= 1.0; }, 3), 0);
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 1.0);
  EXPECT_EQ(r.pacer->reason(), "");
}

TEST(PacerActivityTest, ATunedChunkTargetWinsOverTheShortChunks) {
  ActivityRig r;
  r.Read(0, 1.0);
  Control c;
  c.chunk_target_ms = 100;
  r.source->SetControl(c);
  r.pacer->PollControl();
  r.Read(3, 1.0);
  EXPECT_DOUBLE_EQ(r.pacer->chunk_scale(), 0.5);  // the pace's, not 10 ms of 30
  EXPECT_EQ(r.pacer->workers(), 1);
}

TEST(PacerActivityTest, ASlowdownWhileTheApplicationIsAtWorkThrottlesFurther) {
  ActivityRig r;
  r.Read(0, 1.0);  // objective 2 ms
  r.Read(3, 1.1);  // at work, no slowdown: half the pace, one worker
  r.Read(3, 1.1);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  EXPECT_EQ(r.pacer->workers(), 1);
  EXPECT_EQ(r.pacer->readings().app_sessions, 3.0);
  // The same 10x slowdown that never throttled an idle database: halved
  // again within two readings.
  r.Read(3, 10);
  r.Read(3, 10);
  EXPECT_LE(r.pacer->pace(), 0.25);
  EXPECT_EQ(r.pacer->workers(), 1);
  EXPECT_THAT(r.pacer->reason(), HasSubstr("probe latency 10.00 ms (objective 2.00 ms"));
  EXPECT_THAT(r.pacer->reason(), HasSubstr("1 worker while the application is at work"));
  // Down to a hold while it lasts.
  EXPECT_GT(r.ReadUntil(3, 10, [&](double) { return r.pacer->holding(); }, 20), 0);
}

TEST(PacerActivityTest, RecoveryAfterTheLoadEndsWithinTheFigureSevenTarget) {
  ActivityRig r;
  r.Read(0, 1.0);
  EXPECT_GT(r.ReadUntil(4, 30, [&](double) { return r.pacer->holding(); }, 20), 0);
  EXPECT_EQ(r.pacer->workers(), 1);
  // The load ends; the backfill resuming makes the probe slow again, its
  // own cost: all workers at once, above 80% within 9 readings (2.25 s at
  // 250 ms; the figure's target is 10 s), full speed after.
  const int n = r.ReadUntil(0, 30, [](double p) { return p > 0.8; }, 40);
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 9);
  EXPECT_FALSE(r.pacer->workers().has_value());
  EXPECT_GT(r.ReadUntil(0, 30, [](double p) { return p >= 1.0; }, 3), 0);
}

TEST(PacerActivityTest, ASessionBlockedByTheBackfillCutsToAQuarterAtOnce) {
  ActivityRig r;
  r.Read(0, 1.0);
  r.source->Set(Signal::kLockWaiters, 1.0);
  r.Read(1, 1.0);  // the probe is fine: the waiter alone
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.25);
  EXPECT_THAT(r.pacer->reason(), HasSubstr("1 sessions waiting for locks on the table (max 0)"));
  EXPECT_EQ(r.pacer->workers(), 1);
  r.Read(1, 1.0);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.0625);
  // A waiter counts even when the activity reads none (it was sampled a
  // moment earlier): the waiter is evidence enough.
  r.source->Set(Signal::kLockWaiters, 0.0);
  EXPECT_GT(r.ReadUntil(0, 1.0, [](double p) { return p >= 1.0; }, 20), 0);
  r.source->Set(Signal::kLockWaiters, 2.0);
  r.Read(0, 1.0);
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.25);
}

TEST(PacerActivityTest, AFailingActivityQueryFailsClosedAndCountsTheApplicationAtWork) {
  ActivityRig r;
  r.Read(0, 1.0);
  r.source->Set(Signal::kActivity, Unavailable("permission denied for pg_stat_activity"));
  r.source->Set(Signal::kProbe, 1.0);
  r.pacer->ProbeSignals();
  EXPECT_DOUBLE_EQ(r.pacer->pace(), 0.5);
  EXPECT_THAT(r.pacer->reason(),
              HasSubstr("application activity could not be read: permission denied for pg_stat_activity"));
  EXPECT_FALSE(r.pacer->readings().app_sessions.has_value());
  EXPECT_EQ(r.pacer->workers(), 1);
  for (int i = 0; i < 6; ++i) r.pacer->ProbeSignals();
  EXPECT_TRUE(r.pacer->holding());
}

TEST(PacerActivityTest, TunedWorkersWinOverTheStepDown) {
  ActivityRig r;
  r.Read(0, 1.0);
  r.Read(2, 10);
  r.Read(2, 10);
  ASSERT_EQ(r.pacer->workers(), 1);
  Control c;
  c.workers = 3;
  r.source->SetControl(c);
  r.pacer->PollControl();
  EXPECT_EQ(r.pacer->workers(), 3);
  EXPECT_THAT(r.pacer->reason(), Not(HasSubstr("1 worker")));
}

}  // namespace
}  // namespace sluice::backfill
