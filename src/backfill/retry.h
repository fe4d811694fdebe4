// Retry policy of the backfill: which errors a retry can overcome, how long
// to back off before the next attempt, and when to give up.
//
// Retryable codes and their backoff (capped exponential, "equal jitter":
// the n-th wait is uniform in [d/2, d] with d = min(cap, base * 2^(n-1))):
//
//   kAborted            deadlock, serialization failure, busy   10 ms .. 1 s
//   kUnavailable        connection lost (reconnect first)       100 ms .. 5 s
//   kInDoubt            COMMIT outcome unknown (reconnect; the  100 ms .. 5 s
//                       next chunk re-reads its checkpoint)
//   kResourceExhausted  disk full, out of memory, too many      1 s .. 30 s
//                       connections: give the server time
//
// A streak of failures (reset by a success) is bounded by a time budget;
// once the streak has lasted that long the last error is returned as fatal,
// its message saying how long and how often it was retried. Every other code
// is fatal at once.
//
// Thread-safety: one Backoff per thread (each worker has its own).
//
//   Backoff backoff(clock, 300'000'000, seed);
//   for (;;) {
//     Status s = Attempt();
//     if (s.ok()) { backoff.Reset(); break; }
//     Result<int64_t> wait = backoff.Next(s);
//     if (!wait.ok()) return wait.status();   // fatal, or retried too long
//     clock->SleepMicros(*wait);
//   }
#pragma once

#include <cstdint>
#include <random>

#include "common/clock.h"
#include "sluice/status.h"

namespace sluice::backfill {

// True for the codes a retry can overcome (listed above).
bool IsRetryable(StatusCode code);
// True when the session must be re-opened before the retry.
bool NeedsReconnect(StatusCode code);

class Backoff {
 public:
  // `budget_micros`: how long one streak of failures may last.
  Backoff(Clock* clock, int64_t budget_micros, uint64_t seed);

  // Called after a failed attempt. Returns the wait in microseconds before
  // the next attempt; or, for a code that is not retryable, `error`
  // itself; or, when the streak has lasted the budget, `error` (same code
  // and detail) with "gave up after retrying for N s (K attempts)" in front.
  Result<int64_t> Next(const Status& error);
  // A success ends the streak.
  void Reset();

  int attempts() const { return attempts_; }
  // Microseconds since the first failure of the current streak (0 if none).
  int64_t streak_micros() const;

 private:
  Clock* clock_;
  int64_t budget_;
  std::minstd_rand rng_;
  int attempts_ = 0;
  int64_t first_failure_ = 0;
};

}  // namespace sluice::backfill
