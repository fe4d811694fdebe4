// The backfill's retry policy (src/backfill/retry.h) on a fake clock: which
// codes are retried, the capped exponential backoff with jitter per code,
// and the time budget after which the error is fatal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "backfill/retry.h"
#include "common/clock.h"

namespace sluice::backfill {
namespace {

using ::testing::HasSubstr;

TEST(BackoffTest, OnlyErrorsARetryCanOvercomeAreRetried) {
  FakeClock clock;
  Backoff b(&clock, 60'000'000, 1);
  for (StatusCode c : {StatusCode::kInvalidArgument, StatusCode::kInternal, StatusCode::kPermissionDenied,
                       StatusCode::kFailedPrecondition, StatusCode::kNotFound, StatusCode::kCancelled}) {
    Status e(c, "boom", "detail");
    auto r = b.Next(e);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c);
    EXPECT_EQ(r.status().message(), "boom");  // unchanged: fatal at once
    EXPECT_FALSE(IsRetryable(c));
  }
  for (StatusCode c : {StatusCode::kUnavailable, StatusCode::kInDoubt, StatusCode::kAborted,
                       StatusCode::kResourceExhausted}) {
    EXPECT_TRUE(IsRetryable(c));
    EXPECT_TRUE(b.Next(Status(c, "transient")).ok());
  }
  EXPECT_TRUE(NeedsReconnect(StatusCode::kUnavailable));
  EXPECT_TRUE(NeedsReconnect(StatusCode::kInDoubt));
  EXPECT_FALSE(NeedsReconnect(StatusCode::kAborted));
  EXPECT_FALSE(NeedsReconnect(StatusCode::kResourceExhausted));
}

struct Curve {
  StatusCode code;
  int64_t base, cap;
};

TEST(BackoffTest, WaitsDoubleWithJitterUpToACapPerCode) {
  for (Curve c : {Curve{StatusCode::kAborted, 10'000, 1'000'000}, Curve{StatusCode::kUnavailable, 100'000, 5'000'000},
                  Curve{StatusCode::kInDoubt, 100'000, 5'000'000},
                  Curve{StatusCode::kResourceExhausted, 1'000'000, 30'000'000}}) {
    FakeClock clock;
    Backoff b(&clock, 1'000'000'000'000, 42);
    std::set<int64_t> distinct;
    for (int n = 1; n <= 40; ++n) {
      auto w = b.Next(Status(c.code, "x"));
      ASSERT_TRUE(w.ok());
      int64_t d = std::min(c.cap, n <= 30 ? c.base << (n - 1) : c.cap);
      EXPECT_GE(*w, d / 2) << StatusCodeName(c.code) << " attempt " << n;
      EXPECT_LE(*w, d) << StatusCodeName(c.code) << " attempt " << n;
      distinct.insert(*w);
      clock.Advance(*w);
    }
    EXPECT_GT(distinct.size(), 20u) << "no jitter";
    EXPECT_EQ(b.attempts(), 40);
  }
}

TEST(BackoffTest, AStreakLongerThanTheBudgetIsFatalAndSaysHowLongItTried) {
  FakeClock clock;
  Backoff b(&clock, 30'000'000, 7);
  const Status lost(StatusCode::kUnavailable, "server closed the connection unexpectedly", "SQLSTATE 08006");
  int64_t t0 = clock.NowMicros();
  Result<int64_t> w = b.Next(lost);
  while (w.ok()) {
    clock.Advance(*w);
    w = b.Next(lost);
  }
  // The waits never overshoot the budget: the last attempt is at its end.
  EXPECT_EQ(clock.NowMicros() - t0, 30'000'000);
  EXPECT_EQ(w.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(w.status().detail(), "SQLSTATE 08006");
  EXPECT_THAT(w.status().message(), HasSubstr("gave up after retrying for 30.0 s ("));
  EXPECT_THAT(w.status().message(), HasSubstr("the retry budget is 30 s): server closed the connection unexpectedly"));
  EXPECT_GE(b.attempts(), 8);
}

TEST(BackoffTest, ASuccessStartsANewStreak) {
  FakeClock clock;
  Backoff b(&clock, 10'000'000, 3);
  for (int i = 0; i < 5; ++i) clock.Advance(*b.Next(Unavailable("x")));
  EXPECT_GT(b.streak_micros(), 1'000'000);
  b.Reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_EQ(b.streak_micros(), 0);
  // Back to the first, shortest wait.
  auto w = b.Next(Unavailable("x"));
  ASSERT_TRUE(w.ok());
  EXPECT_LE(*w, 100'000);
  // Hours of successes and short failures never add up to the budget.
  for (int i = 0; i < 1000; ++i) {
    clock.Advance(60'000'000);
    b.Reset();
    ASSERT_TRUE(b.Next(Aborted("deadlock")).ok());
  }
}

}  // namespace
}  // namespace sluice::backfill
