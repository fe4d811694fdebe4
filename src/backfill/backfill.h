// The backfill: rewrites historical rows of one table in key order, chunk by
// chunk, so the new columns hold `up(old row)` for every row that existed
// before the dual-write triggers were installed.
//
// Exactly-once progress: each chunk is one transaction that (1) re-reads the
// checkpoint row, (2) picks the chunk's upper key, (3) rewrites the rows in
// (last, upper], (4) advances the checkpoint and appends the chunk to the
// history table. Because the checkpoint is read and written inside the
// chunk's own transaction, a crash, a SIGKILL, a lost connection or a COMMIT
// whose outcome is unknown can never skip or repeat a chunk: the next
// attempt simply reads where the database says the work stands.
//
// Termination: the walk stops at the highest key present when the backfill
// first started; rows inserted later are written through the triggers.
//
// Chunk size adapts to a target duration between a minimum and a maximum
// row count. Not thread-safe; one Backfiller per connection.
//
//   backfill::Backfiller bf(conn, "002_orders", settings, hooks);
//   Status s = bf.Run(task);   // resumes from the stored checkpoint
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

struct Settings {
  // Target wall time of one chunk transaction. Shorter chunks hold row
  // locks (PostgreSQL) or the write lock (SQLite) for less time; longer
  // ones amortise per-chunk overhead. Default 250 ms.
  int64_t chunk_target_ms = 250;
  int64_t chunk_rows = 1000;      // first chunk's size
  int64_t chunk_min_rows = 100;
  int64_t chunk_max_rows = 50000;
  double max_rows_per_second = 0;  // 0 = unlimited
};

struct Progress {
  std::string table;
  int64_t rows_done = 0;    // rows rewritten so far (all runs)
  int64_t rows_total = 0;   // rows present when the backfill began
  int64_t chunks = 0;
  int64_t chunk_rows = 0;   // size of the next chunk
  double rows_per_second = 0;  // this run
  double eta_seconds = -1;     // -1 unknown
  std::string throttle;        // current reason for slowing down, "" if none
  bool done = false;
};

struct Hooks {
  std::function<void(const Progress&)> on_progress;  // after each chunk
  const std::atomic<bool>* cancel = nullptr;         // checked between chunks
  Clock* clock = nullptr;                            // defaults to the real clock
};

class Backfiller {
 public:
  Backfiller(db::Connection& conn, std::string migration, Settings settings, Hooks hooks = {});

  // Runs (or resumes) the backfill of `task` to the end. Returns kCancelled
  // when `cancel` was set (the last chunk is committed), or the first error
  // that retries could not overcome; the checkpoint is always consistent.
  Status Run(const db::BackfillTask& task);

 private:
  Status Prepare(const db::BackfillTask& task);
  // One chunk. Sets *done when the walk reached its end.
  Status Chunk(const db::BackfillTask& task, bool* done, int64_t* rows);
  Status Recover(const Status& error, int* attempts);

  db::Connection& conn_;
  std::string migration_;
  Settings settings_;
  Hooks hooks_;
  Clock* clock_;
  int64_t chunk_rows_;
  std::string update_sql_;
};

}  // namespace sluice::backfill
