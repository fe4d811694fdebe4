#include "backfill/retry.h"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::backfill {

namespace {

struct Curve {
  int64_t base, cap;
};

Curve CurveFor(StatusCode code) {
  switch (code) {
    case StatusCode::kAborted: return {10'000, 1'000'000};
    case StatusCode::kResourceExhausted: return {1'000'000, 30'000'000};
    default: return {100'000, 5'000'000};
  }
}

}  // namespace

bool IsRetryable(StatusCode code) {
  switch (code) {
    case StatusCode::kUnavailable:
    case StatusCode::kInDoubt:
    case StatusCode::kAborted:
    case StatusCode::kResourceExhausted: return true;
    default: return false;
  }
}

bool NeedsReconnect(StatusCode code) { return code == StatusCode::kUnavailable || code == StatusCode::kInDoubt; }

Backoff::Backoff(Clock* clock, int64_t budget_micros, uint64_t seed)
    : clock_(clock), budget_(budget_micros), rng_(static_cast<std::minstd_rand::result_type>(seed % 2147483646 + 1)) {}

void Backoff::Reset() {
  attempts_ = 0;
  first_failure_ = 0;
}

int64_t Backoff::streak_micros() const { return attempts_ == 0 ? 0 : clock_->NowMicros() - first_failure_; }

Result<int64_t> Backoff::Next(const Status& error) {
  if (!IsRetryable(error.code())) return error;
  int64_t now = clock_->NowMicros();
  if (attempts_ == 0) first_failure_ = now;
  ++attempts_;
  int64_t spent = now - first_failure_;
  if (spent >= budget_) {
    return Status(error.code(),
                  fmt::format("gave up after retrying for {:.1f} s ({} attempts; the retry budget is {:.0f} s): {}",
                              static_cast<double>(spent) / 1e6, attempts_, static_cast<double>(budget_) / 1e6,
                              error.message()),
                  error.detail());
  }
  Curve c = CurveFor(error.code());
  int64_t d = c.cap;
  if (attempts_ <= 30) d = std::min(c.cap, c.base << (attempts_ - 1));
  std::uniform_int_distribution<int64_t> jitter(d / 2, d);
  // Never sleep past the budget: the last attempt happens at its end.
  return std::min(jitter(rng_), budget_ - spent);
}

}  // namespace sluice::backfill
