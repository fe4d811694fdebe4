// What the fleet tests (tests/integration/fleet*_test.cc) share: a probe of
// the runner's concurrency (their plan is QtyToIntegerPlan in plans.h).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

namespace sluice::testing {

// The databases inside a forward pass at once, observed through
// fleet::RunOptions::on_database (call it from there). The first time
// `wait_at` begins, it waits (30 s at most) until a second database has
// begun too: parallelism is reached, not only permitted.
class ConcurrencyProbe {
 public:
  explicit ConcurrencyProbe(std::string wait_at) : wait_at_(std::move(wait_at)) {}
  void operator()(const std::string& db, const std::string& pass, bool begin) {
    if (pass != "forward") return;
    std::unique_lock<std::mutex> l(mu_);
    if (!begin) {
      --in_flight_;
      return;
    }
    max_ = std::max(max_, ++in_flight_);
    cv_.notify_all();
    if (db == wait_at_ && !waited_) {
      waited_ = true;
      cv_.wait_for(l, std::chrono::seconds(30), [&] { return in_flight_ >= 2; });
      EXPECT_GE(in_flight_, 2) << "no second database began while " << db << " waited";
    }
  }
  int max() {
    std::lock_guard<std::mutex> l(mu_);
    return max_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string wait_at_;
  int in_flight_ = 0, max_ = 0;
  bool waited_ = false;
};

}  // namespace sluice::testing
