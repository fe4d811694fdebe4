// The arithmetic of `sluice estimate`'s backfill model (engine/estimate_model.h)
// on synthetic trial timings: no database, no clock, no timing assertions.
#include "engine/estimate_model.h"

#include <gtest/gtest.h>

namespace sluice::engine::estimate_model {
namespace {

TEST(EstimateModel, QuantileInterpolatesAndHandlesEmpty) {
  EXPECT_EQ(Quantile({}, 0.5), 0);
  EXPECT_DOUBLE_EQ(Quantile({3, 1, 2}, 0.5), 2);
  EXPECT_DOUBLE_EQ(Quantile({1, 2, 3, 4}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(Quantile({1, 2, 3, 4, 5}, 0.0), 1);
  EXPECT_DOUBLE_EQ(Quantile({1, 2, 3, 4, 5}, 1.0), 5);
  EXPECT_DOUBLE_EQ(Quantile({10, 20}, 0.1), 11);
}

TEST(EstimateModel, FitThroughTheMediansOfTheTwoSizes) {
  // Chunks cost 5 ms + 2 us/row; one chunk at each size is an outlier.
  std::vector<std::pair<double, double>> pts = {
      {1000, 0.007}, {1000, 0.007}, {1000, 0.050},  // first size; one slow (a checkpoint)
      {20000, 0.045}, {20000, 0.045}, {20000, 0.001}};
  Linear l = FitChunkCost(pts);
  EXPECT_NEAR(l.a, 0.005, 1e-9);
  EXPECT_NEAR(l.b, 2e-6, 1e-12);
  EXPECT_NEAR(l.At(10000), 0.025, 1e-9);
}

TEST(EstimateModel, FitFallsBackToTheMedianPerRow) {
  // One size only: no fixed part.
  Linear one = FitChunkCost({{1000, 0.002}, {1000, 0.004}, {1000, 0.003}});
  EXPECT_EQ(one.a, 0);
  EXPECT_NEAR(one.b, 3e-6, 1e-12);
  // Larger chunks cheaper than small ones (a negative slope): per row.
  Linear neg = FitChunkCost({{1000, 0.010}, {10000, 0.005}});
  EXPECT_EQ(neg.a, 0);
  EXPECT_NEAR(neg.b, Quantile({1e-5, 5e-7}, 0.5), 1e-15);
  EXPECT_EQ(FitChunkCost({}).b, 0);
}

TEST(EstimateModel, ScheduleDoublesUpToTheSteadySize) {
  const Linear cost{0.001, 1e-6};
  int64_t chunks = 0;
  // 1000, 2000, 4000, 4000, 4000, then the 1000 left: 6 chunks.
  const double secs = ScheduleSeconds(16000, 1000, 4000, cost, &chunks);
  EXPECT_EQ(chunks, 6);
  EXPECT_NEAR(secs, 6 * 0.001 + 16000 * 1e-6, 1e-12);
  EXPECT_EQ(ScheduleSeconds(0, 1000, 4000, cost, &chunks), 0);
  EXPECT_EQ(chunks, 0);
  // A first size above the steady one starts at the steady size.
  ScheduleSeconds(8000, 5000, 2000, cost, &chunks);
  EXPECT_EQ(chunks, 4);
}

BackfillInputs OneWriter() {
  BackfillInputs in;
  in.rows = 100000;
  in.first = 1000;
  in.steady = 10000;
  in.cost = {0.002, 3e-6};
  in.pace = {3.2e-6, 3.0e-6, 3.4e-6, 3.1e-6};
  in.fixed_seconds = 0.5;
  return in;
}

TEST(EstimateModel, OneWriterIsFixedPlusItsChunks) {
  BackfillInputs in = OneWriter();
  BackfillPrediction p = PredictBackfill(in);
  int64_t chunks = 0;
  const double chunk_secs = ScheduleSeconds(in.rows, in.first, in.steady, in.cost, &chunks);
  EXPECT_EQ(p.chunks, chunks);
  EXPECT_NEAR(p.chunk_seconds, chunk_secs, 1e-12);
  EXPECT_NEAR(p.p50, 0.5 + chunk_secs, 1e-12);
  // A steady pace: the interval is the floor, x1.25 either way.
  EXPECT_NEAR(p.spread_low, 1.25, 1e-12);
  EXPECT_NEAR(p.spread_high, 1.25, 1e-12);
  EXPECT_LT(p.p10, p.p50);
  EXPECT_GT(p.p90, p.p50);
  EXPECT_NEAR(p.p90, 0.5 * 1.25 + chunk_secs * 1.25, 1e-12);
  EXPECT_NEAR(p.p10, 0.5 / 1.25 + chunk_secs / 1.25, 1e-12);
}

TEST(EstimateModel, SpreadOfThePaceWidensTheInterval) {
  BackfillInputs in = OneWriter();
  in.pace = {1e-6, 2e-6, 2e-6, 2e-6, 6e-6};
  BackfillPrediction p = PredictBackfill(in);
  EXPECT_NEAR(p.spread_high, Quantile(in.pace, 0.9) / 2e-6, 1e-9);
  EXPECT_NEAR(p.spread_low, 2e-6 / Quantile(in.pace, 0.1), 1e-9);
  // Capped at x4: a trial of a few chunks cannot justify more.
  in.pace = {1e-9, 1e-9, 1e-6, 1e-4, 1e-4};
  p = PredictBackfill(in);
  EXPECT_EQ(p.spread_high, 4.0);
  EXPECT_EQ(p.spread_low, 4.0);
}

TEST(EstimateModel, WorkersDivideTheChunksByTheMeasuredSpeedup) {
  BackfillInputs in = OneWriter();
  in.fixed_seconds = 1;
  in.workers = 2;
  in.partitions = 8;
  in.speedup = 1.5;
  in.speedup_low = 1.2;
  in.speedup_high = 1.9;
  BackfillPrediction p = PredictBackfill(in);
  // Each worker ramps up over half the rows; 6 more partitions each end in
  // one partial chunk at the fixed part of a chunk.
  int64_t chunks = 0;
  const double half = ScheduleSeconds(50000, in.first, in.steady, in.cost, &chunks);
  EXPECT_EQ(p.chunks, 2 * chunks + 6);
  EXPECT_NEAR(p.chunk_seconds, 2 * half + 6 * in.cost.a, 1e-12);
  EXPECT_NEAR(p.p50, 1 + p.chunk_seconds / 1.5, 1e-12);
  EXPECT_NEAR(p.p90, 1.25 + p.chunk_seconds * 1.25 / 1.2, 1e-12);
  EXPECT_NEAR(p.p10, 1 / 1.25 + p.chunk_seconds / 1.25 / 1.9, 1e-12);
}

TEST(EstimateModel, SpeedupIsBoundedByTheWorkers) {
  BackfillInputs in = OneWriter();
  in.fixed_seconds = 0;
  in.workers = 2;
  in.speedup = 7;  // a noisy measurement cannot make 2 workers 7x faster
  in.speedup_low = 0.5;
  in.speedup_high = 9;
  BackfillPrediction p = PredictBackfill(in);
  EXPECT_NEAR(p.p50, p.chunk_seconds / 2, 1e-12);
  // speedup_low clamps to 1 (no worse than one writer), high to 2.
  EXPECT_NEAR(p.p90, p.chunk_seconds * 1.25, 1e-12);
  EXPECT_NEAR(p.p10, p.chunk_seconds / 1.25 / 2, 1e-12);
  // One worker ignores any speed-up.
  in.workers = 1;
  EXPECT_NEAR(PredictBackfill(in).p50, PredictBackfill(OneWriter()).p50 - 0.5, 1e-12);
}

TEST(EstimateModel, NothingToRewriteIsTheFixedCostOnly) {
  BackfillInputs in = OneWriter();
  in.rows = 0;
  in.partitions = 8;
  in.workers = 2;
  BackfillPrediction p = PredictBackfill(in);
  EXPECT_EQ(p.chunks, 0);
  EXPECT_EQ(p.chunk_seconds, 0);
  EXPECT_NEAR(p.p50, 0.5, 1e-12);
  EXPECT_LE(p.p10, p.p50);
  EXPECT_GE(p.p90, p.p50);
}

}  // namespace
}  // namespace sluice::engine::estimate_model
