// Time behind an interface, so throttling, ETA and retry logic can be tested
// without sleeping and speed lives only in bench/ (LevelDB's Env::NowMicros).
//
// Everything that reads the time or waits goes through a Clock: monotonic
// time (NowMicros), wall time (WallMicros, for UTC windows and timestamps),
// plain sleeps, and condition-variable waits with a timeout (WaitFor), so a
// FakeClock can move time and wake every waiter.
//
// Thread-safety: every Clock method may be called from any thread.
//
//   Clock* clock = Clock::Real();
//   int64_t t0 = clock->NowMicros();
//   MutexLock l(&mu);
//   while (!ready && clock->NowMicros() - t0 < 1'000'000) clock->WaitFor(&cv, &mu, 100'000);
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/thread_annotations.h"

namespace sluice {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds.
  virtual int64_t NowMicros() = 0;
  // Microseconds since the Unix epoch (UTC wall time).
  virtual int64_t WallMicros() = 0;
  virtual void SleepMicros(int64_t micros) = 0;
  // Waits on `cv`, whose mutex `mu` the caller holds, until it is notified
  // or about `micros` of this clock's time pass; `mu` is held again on
  // return. May return early (spurious wake-up): callers loop on their
  // condition and on NowMicros().
  virtual void WaitFor(std::condition_variable_any* cv, Mutex* mu, int64_t micros) EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // The process-wide real clock.
  static Clock* Real();
};

class RealClock : public Clock {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t WallMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void SleepMicros(int64_t micros) override {
    if (micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
  void WaitFor(std::condition_variable_any* cv, Mutex* mu, int64_t micros) override EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv->wait_for(*mu, std::chrono::microseconds(std::max<int64_t>(micros, 0)));
  }
};

// A clock for tests whose time moves only when told to.
//
// Manual mode (default): SleepMicros blocks until Advance() has moved the
// time past its end; WaitFor returns when notified, when Advance() is
// called, or after at most a millisecond of real time (the caller re-checks
// its condition and the fake time, so a wake-up lost between the caller's
// check and its wait costs a millisecond, not a hang).
//
// Auto-advance mode: SleepMicros and WaitFor move the time forward by the
// requested amount themselves and return, so single-threaded code that
// waits runs instantly and the test reads how long it "waited" from
// NowMicros().
//
//   FakeClock clock;
//   clock.set_auto_advance(true);
//   pacer.AfterChunk(500, 100'000);              // waits on the fake clock
//   EXPECT_EQ(clock.NowMicros() - t0, 500'000);   // how long it waited
class FakeClock : public Clock {
 public:
  // `wall_start_micros`: the wall time at construction (default: now).
  explicit FakeClock(int64_t wall_start_micros = RealClock().WallMicros());

  int64_t NowMicros() override { return now_.load(); }
  int64_t WallMicros() override { return wall_start_.load() + now_.load() - kStart; }
  void SleepMicros(int64_t micros) override;
  void WaitFor(std::condition_variable_any* cv, Mutex* mu, int64_t micros) override EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Moves the time forward and wakes every sleeper and waiter.
  void Advance(int64_t micros);
  // Sets the wall time (UTC micros since the epoch); monotonic time moves
  // forward by the difference when it is positive, else stays.
  void SetWallMicros(int64_t wall_micros);
  void set_auto_advance(bool on) { auto_advance_ = on; }
  // Threads blocked in SleepMicros or WaitFor right now.
  int waiters() const;

 private:
  static constexpr int64_t kStart = 1'000'000'000'000;  // arbitrary, far from 0

  std::atomic<int64_t> now_{kStart};
  std::atomic<int64_t> wall_start_;
  std::atomic<bool> auto_advance_{false};
  mutable std::mutex mu_;
  std::condition_variable sleepers_cv_;
  int waiting_ = 0;                                  // guarded by mu_
  std::multiset<std::condition_variable_any*> cvs_;  // guarded by mu_
};

// UTC wall time as ISO-8601 with milliseconds ("2026-11-21T17:12:03.123Z").
std::string IsoTime(int64_t wall_micros);
// Current UTC wall time as ISO-8601 with milliseconds. `offset_seconds`
// shifts it (e.g. -10 for ten seconds ago).
std::string NowIso(int64_t offset_seconds = 0);

inline Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

}  // namespace sluice
