#include "common/clock.h"

#include <cstdio>
#include <ctime>

namespace sluice {

FakeClock::FakeClock(int64_t wall_start_micros) : wall_start_(wall_start_micros) {}

void FakeClock::SleepMicros(int64_t micros) {
  if (micros <= 0) return;
  if (auto_advance_) {
    Advance(micros);
    return;
  }
  std::unique_lock<std::mutex> l(mu_);
  const int64_t until = now_.load() + micros;
  ++waiting_;
  sleepers_cv_.wait(l, [&] { return now_.load() >= until; });
  --waiting_;
}

void FakeClock::WaitFor(std::condition_variable_any* cv, Mutex* mu, int64_t micros) {
  if (auto_advance_) {
    // Let other threads take `mu` for a moment, as a real wait would.
    mu->unlock();
    Advance(std::max<int64_t>(micros, 0));
    std::this_thread::yield();
    mu->lock();
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    ++waiting_;
    cvs_.insert(cv);
  }
  cv->wait_for(*mu, std::chrono::milliseconds(1));
  std::lock_guard<std::mutex> l(mu_);
  --waiting_;
  cvs_.erase(cvs_.find(cv));
}

void FakeClock::Advance(int64_t micros) {
  std::lock_guard<std::mutex> l(mu_);
  now_ += micros;
  sleepers_cv_.notify_all();
  for (auto* cv : cvs_) cv->notify_all();
}

void FakeClock::SetWallMicros(int64_t wall_micros) {
  int64_t delta = wall_micros - WallMicros();
  if (delta > 0) {
    Advance(delta);
  } else {
    wall_start_ += delta;
  }
}

int FakeClock::waiters() const {
  std::lock_guard<std::mutex> l(mu_);
  return waiting_;
}

std::string IsoTime(int64_t wall_micros) {
  int64_t secs = wall_micros / 1'000'000;
  int ms = static_cast<int>((wall_micros / 1000) % 1000);
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  snprintf(out, sizeof out, "%s.%03dZ", buf, ms);
  return out;
}

std::string NowIso(int64_t offset_seconds) {
  return IsoTime(Clock::Real()->WallMicros() + offset_seconds * 1'000'000);
}

}  // namespace sluice
