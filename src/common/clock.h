// Time behind an interface, so throttling, ETA and retry logic can be tested
// without sleeping and speed lives only in bench/.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace sluice {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds.
  virtual int64_t NowMicros() = 0;
  virtual void SleepMicros(int64_t micros) = 0;

  // The process-wide real clock.
  static Clock* Real();
};

class RealClock : public Clock {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void SleepMicros(int64_t micros) override {
    if (micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
};

// Current UTC wall time as ISO-8601 with milliseconds ("2026-11-21T17:12:03.123Z").
// `offset_seconds` shifts it (e.g. -10 for ten seconds ago).
std::string NowIso(int64_t offset_seconds = 0);

inline Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

}  // namespace sluice
