// The arithmetic of `sluice estimate`'s backfill prediction (estimate.cc),
// apart from the trial that measures its inputs, so that it can be tested
// on synthetic timings. Everything here is pure: no database, no clock.
//
// The model (docs/performance.md "Estimate accuracy"):
//   backfill = fixed + chunks / speed-up
//   fixed    = the process's start and connections, the counting scan, the
//              gate's two parity counts and the run's own transactions,
//              each timed by the estimate (not guessed);
//   chunks   = sum over the backfill's chunk schedule (first size, doubling
//              up to the settled size) of a + b * rows, fitted to the timed
//              trial chunks, each with its measured commit;
//   speed-up = the measured parallel speed-up of the server for the
//              backfill's workers (PostgreSQL), 1 for one worker.
// P10 and P90 come from the spread of the trial chunks' pace and of the
// speed-up: the best and the worst of what was measured, never narrower
// than x1.25 either way (the trial cannot see the load to come).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace sluice::engine::estimate_model {

// The q-quantile (0..1) of `v`, linearly interpolated; 0 when empty.
inline double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = static_cast<size_t>(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// One chunk's seconds by its rows: a + b * rows.
struct Linear {
  double a = 0, b = 0;
  double At(double n) const { return a + b * n; }
};

// Fits a + b * rows to timed (rows, seconds) chunks. The trial times chunks
// at two sizes (the backfill's first and its settled size): the line goes
// through the MEDIAN of each size, so one slow chunk (a checkpoint, a cold
// page) does not tilt it. One size only, or a line that would make a chunk
// cost less than nothing: no fixed part, the median seconds per row.
inline Linear FitChunkCost(const std::vector<std::pair<double, double>>& pts) {
  if (pts.empty()) return {};
  double small = pts[0].first, large = pts[0].first;
  for (const auto& [n, t] : pts) {
    small = std::min(small, n);
    large = std::max(large, n);
  }
  std::vector<double> per_row;
  for (const auto& [n, t] : pts) per_row.push_back(t / std::max(1.0, n));
  const Linear flat{0, Quantile(per_row, 0.5)};
  if (large < 1.5 * small) return flat;
  // Two groups: below and above the geometric middle of the sizes.
  const double mid = std::sqrt(small * large);
  std::vector<double> ns, ts, nl, tl;
  for (const auto& [n, t] : pts) {
    (n < mid ? ns : nl).push_back(n);
    (n < mid ? ts : tl).push_back(t);
  }
  const double n1 = Quantile(ns, 0.5), t1 = Quantile(ts, 0.5), n2 = Quantile(nl, 0.5), t2 = Quantile(tl, 0.5);
  Linear l;
  l.b = (t2 - t1) / std::max(1.0, n2 - n1);
  l.a = t1 - l.b * n1;
  if (l.b <= 0 || l.a < 0) return flat;
  return l;
}

// The backfill's chunk schedule (src/backfill/backfill.cc) for one worker
// walking `rows` rows: the first chunk has `first` rows, each next one at
// most twice the last, up to `steady`. Returns the seconds; `*chunks` the
// number of chunks.
inline double ScheduleSeconds(int64_t rows, int64_t first, int64_t steady, const Linear& cost, int64_t* chunks) {
  double total = 0;
  int64_t n = std::max<int64_t>(1, std::min(first, steady)), left = rows;
  *chunks = 0;
  while (left > 0) {
    const int64_t c = std::min(n, left);
    total += cost.At(static_cast<double>(c));
    left -= c;
    ++*chunks;
    n = std::min(std::max<int64_t>(1, steady), n * 2);
  }
  return total;
}

// What the trial measured for one table.
struct BackfillInputs {
  int64_t rows = 0;           // rows the backfill will rewrite
  int64_t first = 1000;       // the first chunk's rows
  int64_t steady = 1000;      // the size the backfill settles on (its chunk target at the trial's pace)
  Linear cost;                // one chunk's seconds (commit included) by its rows
  std::vector<double> pace;   // seconds per row of each timed trial chunk (commit included)
  double fixed_seconds = 0;   // measured costs around the chunks (start, counts, gate, own transactions)
  int workers = 1;            // concurrent chunk writers the backfill will run
  int partitions = 1;         // key ranges the backfill splits the table into (each ends in a partial chunk)
  double speedup = 1;         // measured speed-up of `workers` writers over one (1 .. workers)
  double speedup_low = 1;     // its worst measured value (1 .. speedup)
  double speedup_high = 1;    // its best measured value (speedup .. workers)
};

struct BackfillPrediction {
  double p10 = 0, p50 = 0, p90 = 0;
  int64_t chunks = 0;
  double chunk_seconds = 0;   // one writer's seconds over all the chunks
  double spread_low = 1, spread_high = 1;  // pace spread applied for P10 / P90
};

// The prediction from the measured inputs (see the top of this file).
inline BackfillPrediction PredictBackfill(const BackfillInputs& in) {
  BackfillPrediction out;
  const int workers = std::max(1, in.workers);
  const int parts = std::max(workers, in.partitions);
  // Each worker ramps up once; every partition ends in one partial chunk,
  // which costs about the fixed part of a chunk.
  int64_t chunks = 0;
  const int64_t per_worker = (in.rows + workers - 1) / workers;
  double secs = workers * ScheduleSeconds(per_worker, in.first, in.steady, in.cost, &chunks);
  out.chunks = chunks * workers;
  if (parts > workers && in.rows > 0) {
    secs += (parts - workers) * in.cost.a;
    out.chunks += parts - workers;
  }
  out.chunk_seconds = secs;
  const double speedup = std::clamp(in.speedup, 1.0, static_cast<double>(workers));
  const double speedup_low = std::clamp(in.speedup_low, 1.0, speedup);
  const double speedup_high = std::clamp(in.speedup_high, speedup, static_cast<double>(workers));
  const double med = Quantile(in.pace, 0.5);
  out.spread_low = std::clamp(med > 0 ? med / std::max(1e-12, Quantile(in.pace, 0.1)) : 1.0, 1.25, 4.0);
  out.spread_high = std::clamp(med > 0 ? Quantile(in.pace, 0.9) / med : 1.0, 1.25, 4.0);
  out.p50 = in.fixed_seconds + secs / speedup;
  // P10: the fast chunks at the best speed-up measured; P90: the slow
  // chunks at the worst.
  out.p10 = in.fixed_seconds / 1.25 + secs / out.spread_low / speedup_high;
  out.p10 = std::min(out.p10, out.p50 / 1.25);
  out.p90 = in.fixed_seconds * 1.25 + secs * out.spread_high / speedup_low;
  out.p90 = std::max(out.p90, out.p50 * 1.25);
  return out;
}

}  // namespace sluice::engine::estimate_model
