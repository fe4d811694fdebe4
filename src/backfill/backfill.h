// The backfill: rewrites historical rows of one table in key order, chunk by
// chunk, so the new columns hold `up(old row)` for every row that existed
// before the dual-write triggers were installed.
//
// Exactly-once progress: each chunk is one transaction that (1) re-reads its
// partition's checkpoint row (locking it), (2) picks the chunk's upper key,
// (3) rewrites the rows in (last, upper], (4) advances the checkpoint and
// appends the chunk to the history table (with the throttle's latest
// readings: SignalReadings). Because the checkpoint is read and
// written inside the chunk's own transaction, a crash, a SIGKILL, a lost
// connection or a COMMIT whose outcome is unknown can never skip or repeat a
// chunk: the next attempt simply reads where the database says work stands.
//
// Partitions and workers: the first run splits the key range into
// partitions (one on databases with a single writer; on PostgreSQL about
// eight, or one per worker if more), each with its own checkpoint row. Up to
// `workers` threads, each on its own connection, claim unfinished partitions;
// `sluice tune --workers N` changes the count while the backfill runs (a
// worker asked to stop finishes its chunk and releases its partition).
//
// Termination: each partition ends at a key fixed when the backfill first
// started; rows inserted later are written through the triggers.
//
// Chunk size adapts to a target duration between a minimum and a maximum
// row count; the Pacer (throttle.h) adds waits from production signals,
// the rate limit and operator pause. Memory is constant in the table size.
//
// Errors: a retryable error (retry.h: lost connection, commit in doubt,
// deadlock, server out of disk/memory/connections) is retried by the worker
// that met it, with capped exponential backoff and jitter, re-opening its
// session when it was lost; a streak of failures longer than
// `retry_budget_ms` becomes fatal. The first fatal error of any worker is
// sticky (LevelDB's RecordBackgroundError): it is recorded, wakes every
// other worker and the coordinator, each worker stops after at most the
// chunk it is in, and Run() returns that error, naming table and key range.
//
// Cancellation: `hooks.cancel` is watched by every wait (pace, pause,
// windows, rate limit, retry backoff) in slices of at most 100 ms; each
// worker finishes at most the chunk it is in. Every time read and wait goes
// through `hooks.clock`.
//
//   backfill::Backfiller bf(conn, "002_orders", settings, hooks);
//   Status s = bf.Run(task);   // resumes from the stored checkpoints
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backfill/retry.h"
#include "backfill/throttle.h"
#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

struct Settings {
  // Target wall time of one chunk transaction. Shorter chunks hold row
  // locks (PostgreSQL) or the write lock (SQLite) for less time; longer
  // ones amortise per-chunk overhead. The engine passes the plan's value or
  // Dialect::default_chunk_target_ms().
  int64_t chunk_target_ms = 250;
  int64_t chunk_rows = 1000;      // first chunk's size
  int64_t chunk_min_rows = 100;
  int64_t chunk_max_rows = 50000;
  int64_t workers = 1;            // concurrent chunk writers (PostgreSQL)
  // How long one worker's streak of retryable failures (lost connection,
  // server restart, disk full, too many connections...) may last before
  // the backfill fails with the last error. Longer rides out longer
  // outages; shorter hands control back to the operator sooner.
  int64_t retry_budget_ms = 300'000;
  // Statement timeout of the chunk sessions (0 = none): a chunk statement
  // blocked longer (behind an application's lock, say) is cancelled and
  // the chunk fails with the database's error instead of hanging.
  int64_t statement_timeout_ms = 0;
  // Runs first in every chunk's transaction with $1 = the migration name
  // and must return a row (e.g. "the migration is still active", locking
  // its row so a rollback cannot drop columns under the chunk). No row: the
  // run stops with kFailedPrecondition. "" = no guard.
  std::string chunk_guard_sql;
  // Every chunk's commit durable before the next chunk starts (SQLite:
  // keep synchronous = FULL even in WAL mode; see
  // db::Connection::BackfillTuningSql for why NORMAL is safe otherwise).
  bool full_sync = false;
  ThrottleSettings throttle;
};

struct Progress {
  std::string table;
  int64_t rows_done = 0;    // rows rewritten so far (all runs)
  int64_t rows_total = 0;   // rows present when the backfill began
  int64_t chunks = 0;
  int64_t chunk_rows = 0;   // size of the last chunk
  int64_t workers = 0;      // workers running now
  double rows_per_second = 0;  // this run
  double eta_seconds = -1;     // -1 unknown
  std::string throttle;        // current reason for slowing down, "" if none
  bool done = false;
};

// Opens another session on the same database (workers, throttle probes).
using Connector = std::function<Result<std::unique_ptr<db::Connection>>()>;

struct Hooks {
  std::function<void(const Progress&)> on_progress;  // at most ~5 times a second
  // Set (e.g. by a signal handler) to stop: every worker stops after at most
  // its current chunk; waits notice it within 100 ms.
  const std::atomic<bool>* cancel = nullptr;
  Clock* clock = nullptr;                            // defaults to the real clock
  Connector connect;          // required for workers > 1 and for signals
  Connector connect_replica;  // optional: replica for the lag signal
};

// The first run's split of a table for parallel workers, and the two
// statements it runs for it: shared with `sluice estimate`, which times the
// same statements. Partitions: 1 where the dialect allows one writer or
// the table has fewer than kMinRowsToPartition rows, otherwise
// max(kDefaultPartitions, workers).
inline constexpr int64_t kMinRowsToPartition = 20000;
inline constexpr int64_t kDefaultPartitions = 8;
int64_t PartitionCount(const db::Dialect& d, int64_t rows, int64_t workers);
// SELECT count(*) of the rows whose key is <= the high key ($1, $2, ...),
// run in the first run's write transaction that read the high key. Where
// the dialect allows one writer at a time (no parallel backfill) that is
// every row of the table: the statement counts the whole table, which
// SQLite does from its b-tree pages without decoding a row (about half the
// cost of a key range count), and uses none of the parameters.
std::string CountUpToSql(const db::Dialect& d, const std::string& table, const std::vector<std::string>& key);
// Every `step`-th key up to the high key ($1, ...), below step * parts:
// the bounds between `parts` partitions of about `step` rows, in one pass.
std::string PartitionBoundsSql(const db::Dialect& d, const std::string& table, const std::vector<std::string>& key,
                               int64_t step, int64_t parts);

class Backfiller {
 public:
  Backfiller(db::Connection& conn, std::string migration, Settings settings, Hooks hooks = {});

  // Runs (or resumes) the backfill of `task` to the end. Returns kCancelled
  // when `cancel` was set (committed chunks stay committed), or the first
  // error that retries could not overcome; checkpoints are always
  // consistent.
  Status Run(const db::BackfillTask& task);

 private:
  struct Shared;
  Status Prepare(const db::BackfillTask& task);
  // Reads the partitions' checkpoint rows into `sh`.
  Status LoadPartitions(const db::BackfillTask& task, Shared& sh, int64_t* base_done, int64_t* base_chunks,
                        int64_t* total);
  // The Pacer's inputs: signal and control sessions (and the replica).
  Result<std::unique_ptr<SignalSource>> OpenSignals(const ThrottleSettings& ts);
  // One chunk of partition `part`. Sets *done when the partition is finished.
  // `signals` (the Pacer's latest readings) go into the chunk's history row.
  Status Chunk(db::Connection& conn, const db::BackfillTask& task, int part, int64_t chunk_rows,
               const SignalReadings& signals, bool* done, int64_t* rows);
  void Worker(Shared& sh, const db::BackfillTask& task, db::Connection* lent, int slot);
  // The backfill's session settings (with the chunk statement timeout or
  // not), applied now and after every reconnect.
  std::vector<std::string> SessionSql(const db::Dialect& d, bool with_timeout) const;
  std::string TimeoutSql(const db::Dialect& d) const;  // "" when none
  Status InitSession(db::Connection& conn, bool with_timeout);
  // After `error`: backs off (re-opening `conn` when the session was lost)
  // and returns OK to retry. Otherwise sets *stopped when the run failed
  // elsewhere or was cancelled meanwhile, and else returns the fatal error
  // (whatever its code: a database error may well be kCancelled). `slot`
  // names the worker in progress notes (-1: the coordinator, before the
  // chunk statement timeout applies).
  Status WaitToRetry(Shared& sh, db::Connection* conn, Backoff& backoff, const Status& error, int slot,
                     bool* stopped);
  // Sleeps on the clock; false as soon as the run fails or is cancelled.
  bool Sleep(Shared& sh, int64_t micros);
  // Records the first fatal error and wakes everyone.
  void Fail(Shared& sh, const Status& error);
  void Note(Shared& sh, int slot, std::string text);
  bool CancelRequested() const { return hooks_.cancel && hooks_.cancel->load(); }

  db::Connection& conn_;
  std::string migration_;
  Settings settings_;
  Hooks hooks_;
  Clock* clock_;
  std::string update_sql_;
  std::string recording_update_sql_;  // on_error: record (see Prepare)
  // conn_ has the backfill's session settings / the chunk statement
  // timeout (once per Backfiller, not per Run).
  bool conn_setup_ = false;
  bool conn_timeout_ = false;
};

}  // namespace sluice::backfill
