#include "backfill/backfill.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "backfill/key.h"
#include "common/sql_text.h"
#include "common/thread_annotations.h"

namespace sluice::backfill {

using db::Value;

Backfiller::Backfiller(db::Connection& conn, std::string migration, Settings settings, Hooks hooks)
    : conn_(conn),
      migration_(std::move(migration)),
      settings_(settings),
      hooks_(std::move(hooks)),
      clock_(hooks_.clock ? hooks_.clock : Clock::Real()) {
  settings_.chunk_max_rows = std::max(settings_.chunk_max_rows, settings_.chunk_min_rows);
  settings_.chunk_rows = std::clamp(settings_.chunk_rows, settings_.chunk_min_rows, settings_.chunk_max_rows);
  settings_.workers = std::max<int64_t>(1, settings_.workers);
}

namespace {

std::vector<Value> KeyParams(const Key& a, const Key& b = {}) {
  std::vector<Value> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Key RowKey(const db::Row& row, size_t n) { return Key(row.begin(), row.begin() + static_cast<long>(n)); }

Value KeyValue(const Key& k) { return k.empty() ? Value::Null() : Value::Text(KeyToJson(k)); }

// Longest single wait of a worker or the coordinator: a cancel (an atomic
// set by a signal handler, which cannot notify) is noticed within this.
constexpr int64_t kSliceMicros = 100'000;
// Progress goes out at most this often.
constexpr int64_t kReportMicros = 200'000;

}  // namespace

// State shared by the coordinating thread and the workers of one Run.
struct Backfiller::Shared {
  explicit Shared(const std::atomic<bool>* cancel) : cancel(cancel) {}

  // Whether workers must stop: a worker failed or the run is cancelled.
  bool StopLocked() const EXCLUSIVE_LOCKS_REQUIRED(mu) { return failed || stopping || (cancel && cancel->load()); }

  // The partition a worker works on next: `current` while it may go on,
  // else an unclaimed one; -1 when the worker must leave (run stopping,
  // nothing left, or more workers than wanted: then it is no longer
  // counted as running, so two surplus workers never both leave for one).
  int Claim(int current, bool* retired) EXCLUSIVE_LOCKS_REQUIRED(mu) {
    bool surplus = running > want;
    if (current >= 0 && !StopLocked() && !surplus) return current;
    if (current >= 0) claimed[static_cast<size_t>(current)] = false;
    if (StopLocked()) return -1;
    if (surplus) {
      --running;
      *retired = true;
      changed.notify_all();
      return -1;
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!claimed[i] && !finished[i]) {
        claimed[i] = true;
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  bool AllDoneLocked() const EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return std::all_of(finished.begin(), finished.end(), [](bool f) { return f; });
  }
  bool OpenPartsLocked() const EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!claimed[i] && !finished[i]) return true;
    }
    return false;
  }

  const std::atomic<bool>* const cancel;
  Mutex mu;
  std::condition_variable_any changed;  // any change below, a failure, a cancel
  std::vector<int> parts;               // partition (worker column) ids; fixed before workers start
  std::vector<bool> claimed GUARDED_BY(mu);
  std::vector<bool> finished GUARDED_BY(mu);
  int running GUARDED_BY(mu) = 0;   // workers started and not yet gone
  int starting GUARDED_BY(mu) = 0;  // started, not yet past their first claim
  int want GUARDED_BY(mu) = 1;
  bool conn_in_use GUARDED_BY(mu) = false;  // conn_ lent to a worker
  bool failed GUARDED_BY(mu) = false;
  Status error GUARDED_BY(mu);       // the first fatal error (sticky)
  bool stopping GUARDED_BY(mu) = false;  // cancel seen by the coordinator
  int64_t run_rows GUARDED_BY(mu) = 0;
  int64_t run_chunks GUARDED_BY(mu) = 0;
  int64_t last_chunk_rows GUARDED_BY(mu) = 0;
  std::map<int, std::string> retrying GUARDED_BY(mu);  // worker slot -> what it is retrying
  std::shared_ptr<Pacer> pacer;  // set before workers start
};

void Backfiller::Fail(Shared& sh, const Status& error) {
  {
    MutexLock l(&sh.mu);
    if (!sh.failed) {
      sh.failed = true;
      sh.error = error;
    }
  }
  sh.changed.notify_all();
  if (sh.pacer) sh.pacer->Interrupt();
}

bool Backfiller::Sleep(Shared& sh, int64_t micros) {
  MutexLock l(&sh.mu);
  const int64_t until = clock_->NowMicros() + micros;
  for (int64_t now = clock_->NowMicros();; now = clock_->NowMicros()) {
    if (sh.StopLocked()) return false;
    if (now >= until) return true;
    clock_->WaitFor(&sh.changed, &sh.mu, std::min(until - now, kSliceMicros));
  }
}

void Backfiller::Note(Shared& sh, int slot, std::string text) {
  std::string all;
  {
    MutexLock l(&sh.mu);
    if (text.empty()) {
      if (sh.retrying.erase(slot) == 0) return;
    } else {
      sh.retrying[slot] = std::move(text);
    }
    for (const auto& [w, t] : sh.retrying) all += (all.empty() ? "" : "; ") + t;
  }
  if (sh.pacer) sh.pacer->SetNote(all);
}

std::string Backfiller::TimeoutSql(const db::Dialect& d) const {
  return settings_.statement_timeout_ms > 0 ? d.StatementTimeoutSql(settings_.statement_timeout_ms) : "";
}

std::vector<std::string> Backfiller::SessionSql(const db::Dialect& d, bool with_timeout) const {
  std::vector<std::string> out = d.BackfillSessionSetup();
  if (with_timeout && !TimeoutSql(d).empty()) out.push_back(TimeoutSql(d));
  return out;
}

Status Backfiller::InitSession(db::Connection& conn, bool with_timeout) {
  for (const auto& s : SessionSql(conn.dialect(), with_timeout)) SLUICE_RETURN_IF_ERROR(conn.AddSessionSetup(s));
  SLUICE_ASSIGN_OR_RETURN(auto tuning, conn.BackfillTuningSql(settings_.full_sync));
  for (const auto& s : tuning) SLUICE_RETURN_IF_ERROR(conn.AddSessionSetup(s));
  return Status::Ok();
}

Status Backfiller::WaitToRetry(Shared& sh, db::Connection* conn, Backoff& backoff, const Status& error, int slot,
                               bool* stopped) {
  *stopped = false;
  Status e = error;
  for (;;) {
    Result<int64_t> wait = backoff.Next(e);
    if (!wait.ok()) return wait.status();
    Note(sh, slot,
         fmt::format("{} retrying ({} attempts over {:.1f} s): {}", slot < 0 ? "set-up" : "worker " + std::to_string(slot),
                     backoff.attempts(), static_cast<double>(backoff.streak_micros()) / 1e6,
                     e.message().substr(0, e.message().find('\n'))));
    if (!Sleep(sh, *wait)) {
      *stopped = true;
      return Cancelled("backfill stopped while retrying: " + e.message());
    }
    if (!conn || !NeedsReconnect(e.code())) return Status::Ok();
    // The session was lost (perhaps inside COMMIT): re-open it. The next
    // chunk re-reads its checkpoint, which settles whether that commit
    // happened.
    // Reconnect re-applies the session settings (AddSessionSetup).
    Status r = conn->Reconnect();
    if (r.ok()) return Status::Ok();
    e = r.WithContext("reconnecting");
  }
}

int64_t PartitionCount(const db::Dialect& d, int64_t rows, int64_t workers) {
  // Below kMinRowsToPartition rows splitting costs more than it saves.
  return d.parallel_backfill() && rows >= kMinRowsToPartition ? std::max(kDefaultPartitions, workers) : 1;
}

std::string CountUpToSql(const db::Dialect& d, const std::string& table, const std::vector<std::string>& key) {
  // One writer at a time (as for PartitionCount): no row can appear past
  // the high key inside the write transaction that read it. (A row whose
  // key is NULL, which SQLite allows outside INTEGER PRIMARY KEY and no key
  // walk reaches, counts too: the total only sizes progress there.) SQLite
  // binds only the parameters a statement names.
  if (!d.parallel_backfill()) return "SELECT count(*) FROM " + d.Table(table);
  return "SELECT count(*) FROM " + d.Table(table) + " WHERE " + KeyCompare(d, key, "<=", 1);
}

std::string PartitionBoundsSql(const db::Dialect& d, const std::string& table, const std::vector<std::string>& key,
                               int64_t step, int64_t parts) {
  const std::string keys = KeyList(d, key);
  return "SELECT " + keys + " FROM (SELECT " + keys + ", row_number() OVER (ORDER BY " + keys +
         ") AS sluice_rn FROM " + d.Table(table) + " WHERE " + KeyCompare(d, key, "<=", 1) +
         ") s WHERE sluice_rn % " + std::to_string(step) + " = 0 AND sluice_rn < " + std::to_string(step * parts) +
         " ORDER BY " + keys;
}

Status Backfiller::Prepare(const db::BackfillTask& task) {
  const db::Dialect& d = conn_.dialect();
  std::string set;
  for (size_t i = 0; i < task.assignments.size(); ++i) {
    set += (i ? ", " : "") + d.Quote(task.assignments[i].target) + " = " + sql::ScalarExpression(task.assignments[i].expr);
  }
  // Rows written through the new version since start already hold what that
  // version wants; recomputing them from the old columns would undo it.
  update_sql_ = "UPDATE " + d.Table(task.table) + " SET " + set + " WHERE " +
                (task.skip_flag.empty() ? "" : d.Quote(task.skip_flag) + " IS NULL AND ");
  // on_error: record: the same update with values that record a row whose
  // `up` fails (and store its fallback) instead of failing the chunk.
  recording_update_sql_.clear();
  if (!task.recording_values.empty() && task.recording_values.size() == task.assignments.size()) {
    std::string rset;
    for (size_t i = 0; i < task.assignments.size(); ++i) {
      rset += (i ? ", " : "") + d.Quote(task.assignments[i].target) + " = " + task.recording_values[i];
    }
    recording_update_sql_ = "UPDATE " + d.Table(task.table) + " SET " + rset + " WHERE " +
                            (task.skip_flag.empty() ? "" : d.Quote(task.skip_flag) + " IS NULL AND ");
  }

  const std::string cp = d.StateTable("checkpoints");
  const std::string keys = KeyList(d, task.key);
  return db::InTransaction(conn_, [&]() -> Status {
    auto r = conn_.Query("SELECT 1 FROM " + cp + " WHERE migration = $1 AND tbl = $2",
                         {Value::Text(migration_), Value::Text(task.table)});
    if (!r.ok()) return r.status();
    if (!r->rows.empty()) return Status::Ok();
    // First run: fix the end of the walk, the row count and the partitions.
    auto high = conn_.Query("SELECT " + keys + " FROM " + d.Table(task.table) + " ORDER BY " +
                            KeyList(d, task.key, " DESC") + " LIMIT 1");
    if (!high.ok()) return high.status();
    Key high_key = high->rows.empty() ? Key{} : RowKey(high->rows[0], task.key.size());
    int64_t count = 0;
    if (!high_key.empty()) {
      auto c = conn_.Query(CountUpToSql(d, task.table, task.key), KeyParams(high_key));
      if (!c.ok()) return c.status();
      count = c->Scalar().AsInt();
    }
    const int64_t parts = PartitionCount(d, count, settings_.workers);
    // Partition i covers (bound[i], bound[i+1]]; offsets make the row counts
    // exact.
    std::vector<Key> bounds{Key{}};
    std::vector<int64_t> offsets{0};
    if (parts > 1) {
      // Every (count/parts)-th key, in one pass over the key index.
      int64_t step = count / parts;
      auto b = conn_.Query(PartitionBoundsSql(d, task.table, task.key, step, parts), KeyParams(high_key));
      if (!b.ok()) return b.status();
      for (size_t i = 0; i < b->rows.size(); ++i) {
        bounds.push_back(RowKey(b->rows[i], task.key.size()));
        offsets.push_back(static_cast<int64_t>(i + 1) * step);
      }
    }
    bounds.push_back(high_key);
    offsets.push_back(count);
    for (size_t i = 0; i + 1 < bounds.size(); ++i) {
      auto ins = conn_.Query("INSERT INTO " + cp +
                                 " (migration, tbl, worker, last_key, high_key, rows_done, rows_total, chunks, done, "
                                 "updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, $8)",
                             {Value::Text(migration_), Value::Text(task.table), Value::Int(static_cast<int64_t>(i)),
                              KeyValue(bounds[i]), KeyValue(bounds[i + 1]), Value::Int(offsets[i + 1] - offsets[i]),
                              Value::Int(high_key.empty() ? 1 : 0), Value::Text(IsoTime(clock_->WallMicros()))});
      if (!ins.ok()) return ins.status();
    }
    return Status::Ok();
  });
}

Status Backfiller::LoadPartitions(const db::BackfillTask& task, Shared& sh, int64_t* base_done, int64_t* base_chunks,
                                  int64_t* total) {
  auto r = conn_.Query("SELECT worker, done, rows_done, rows_total, chunks FROM " +
                           conn_.dialect().StateTable("checkpoints") + " WHERE migration = $1 AND tbl = $2 ORDER BY worker",
                       {Value::Text(migration_), Value::Text(task.table)});
  if (!r.ok()) return r.status();
  MutexLock l(&sh.mu);
  sh.parts.clear();
  sh.finished.clear();
  sh.claimed.clear();
  *base_done = *base_chunks = *total = 0;
  for (const auto& row : r->rows) {
    sh.parts.push_back(static_cast<int>(row[0].AsInt()));
    sh.finished.push_back(row[1].AsInt() != 0);
    sh.claimed.push_back(false);
    *base_done += row[2].AsInt();
    *total += row[3].AsInt();
    *base_chunks += row[4].AsInt();
  }
  return Status::Ok();
}

Status Backfiller::Chunk(db::Connection& conn, const db::BackfillTask& task, int part, int64_t chunk_rows,
                         const SignalReadings& signals, bool* done, int64_t* rows) {
  const db::Dialect& d = conn.dialect();
  const std::string cp = d.StateTable("checkpoints");
  const size_t nk = task.key.size();
  const int64_t started = clock_->NowMicros();
  *rows = 0;
  *done = false;
  // Where the chunk is, for any error it returns (what is known so far).
  std::string where = "backfill of " + task.table + " (partition " + std::to_string(part) + ")";
  const Value mig = Value::Text(migration_), tbl = Value::Text(task.table), worker = Value::Int(part);
  Status s = db::InTransaction(conn, [&]() -> Status {
    // Decided at start: the search_path `up` resolves under, and keeping
    // the table's own triggers from firing (SET LOCAL ...).
    for (const auto& sql : task.setup_sql) SLUICE_RETURN_IF_ERROR(conn.Exec(sql));
    if (!settings_.chunk_guard_sql.empty()) {
      auto g = conn.Query(settings_.chunk_guard_sql, {mig});
      if (!g.ok()) return g.status();
      if (g->rows.empty()) {
        return FailedPrecondition("migration '" + migration_ + "' is no longer active (another sluice process "
                                  "completed or rolled it back); the backfill stops");
      }
    }
    auto r = conn.Query("SELECT last_key, high_key, chunks, done FROM " + cp +
                            " WHERE migration = $1 AND tbl = $2 AND worker = $3" + d.LockRowsClause(),
                        {mig, tbl, worker});
    if (!r.ok()) return r.status();
    if (r->rows.empty()) return Internal("checkpoint row for " + task.table + " disappeared");
    const db::Row& row = r->rows[0];
    if (row[3].AsInt() != 0) {
      *done = true;
      return Status::Ok();
    }
    SLUICE_ASSIGN_OR_RETURN(Key last, KeyFromJson(row[0].is_null() ? "" : row[0].text));
    SLUICE_ASSIGN_OR_RETURN(Key high, KeyFromJson(row[1].is_null() ? "" : row[1].text));
    int64_t chunk_no = row[2].AsInt() + 1;
    where = "backfill of " + task.table + " rows " + KeyRangeToDisplay(last, {}) + " (partition " +
            std::to_string(part) + ")";

    // The chunk's upper key: the n-th key after `last`, capped at `high`.
    std::string lower = last.empty() ? "" : KeyCompare(d, task.key, ">", 1) + " AND ";
    int upper_param = static_cast<int>(last.size()) + 1;
    std::string bound_sql = "SELECT " + KeyList(d, task.key) + " FROM " + d.Table(task.table) + " WHERE " + lower +
                            KeyCompare(d, task.key, "<=", upper_param) + " ORDER BY " + KeyList(d, task.key) +
                            " LIMIT 1 OFFSET " + std::to_string(chunk_rows - 1);
    auto b = conn.Query(bound_sql, KeyParams(last, high));
    if (!b.ok()) return b.status();
    bool final = b->rows.empty();
    Key end = final ? high : RowKey(b->rows[0], nk);
    where = "backfill of " + task.table + " rows " + KeyRangeToDisplay(last, end) + " (partition " +
            std::to_string(part) + ")";

    const std::string range = lower + KeyCompare(d, task.key, "<=", upper_param);
    if (!recording_update_sql_.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec("SAVEPOINT sluice_chunk"));
    auto u = conn.Query(update_sql_ + range, KeyParams(last, end));
    // A row the plain update cannot convert (a data error, not a retryable
    // one): under on_error: record the chunk is redone recording such rows
    // (one subtransaction per row, only for this chunk).
    if (!u.ok() && !recording_update_sql_.empty() &&
        (u.status().code() == StatusCode::kFailedPrecondition || u.status().code() == StatusCode::kInvalidArgument)) {
      SLUICE_RETURN_IF_ERROR(conn.Exec("ROLLBACK TO SAVEPOINT sluice_chunk"));
      u = conn.Query(recording_update_sql_ + range, KeyParams(last, end));
    }
    if (!u.ok()) return u.status();
    *rows = u->affected;
    if (!final && end == high) final = true;
    double millis = static_cast<double>(clock_->NowMicros() - started) / 1000.0;
    const std::string now = IsoTime(clock_->WallMicros());
    auto c = conn.Query("UPDATE " + cp +
                            " SET last_key = $1, rows_done = rows_done + $2, chunks = $3, done = $4, updated_at = $5 "
                            "WHERE migration = $6 AND tbl = $7 AND worker = $8",
                        {Value::Text(KeyToJson(end)), Value::Int(*rows), Value::Int(chunk_no), Value::Int(final ? 1 : 0),
                         Value::Text(now), mig, tbl, worker});
    if (!c.ok()) return c.status();
    // The throttle's readings go with the chunk (NULL: signal off or its
    // last reading failed), for status, /metrics and the status page.
    auto real_or_null = [](const std::optional<double>& v) { return v ? Value::Real(*v) : Value::Null(); };
    auto int_or_null = [](const std::optional<double>& v) { return v ? Value::Int(std::llround(*v)) : Value::Null(); };
    auto h = conn.Query("INSERT INTO " + d.StateTable("chunks") +
                            " (migration, tbl, worker, chunk, from_key, to_key, rows, millis, committed_at, probe_ms, "
                            "replica_lag_s, lock_waiters, app_sessions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                            "$10, $11, $12, $13)",
                        {mig, tbl, worker, Value::Int(chunk_no), KeyValue(last), Value::Text(KeyToJson(end)),
                         Value::Int(*rows), Value::Real(millis), Value::Text(now), real_or_null(signals.probe_ms),
                         real_or_null(signals.replica_lag_seconds), int_or_null(signals.lock_waiters),
                         int_or_null(signals.app_sessions)});
    if (!h.ok()) return h.status();
    *done = final;
    return Status::Ok();
  });
  if (!s.ok()) return s.WithContext(where);
  return s;
}

void Backfiller::Worker(Shared& sh, const db::BackfillTask& task, db::Connection* lent, int slot) {
  Backoff backoff(clock_, settings_.retry_budget_ms * 1000,
                  static_cast<uint64_t>(clock_->NowMicros()) * 7919 + static_cast<uint64_t>(slot));
  std::unique_ptr<db::Connection> own;
  db::Connection* conn = lent;
  Status fatal = Status::Ok();
  // A worker of its own connects first; too many connections, a restart
  // and the like are ridden out like any other retryable error.
  while (!conn) {
    auto c = hooks_.connect();
    Status s = c.ok() ? InitSession(**c, true) : c.status();
    if (s.ok()) {
      own = std::move(*c);
      conn = own.get();
      break;
    }
    bool stopped = false;
    s = WaitToRetry(sh, nullptr, backoff, s.WithContext("backfill worker could not connect"), slot, &stopped);
    if (!s.ok()) {
      if (!stopped) fatal = s;
      break;
    }
  }
  if (backoff.attempts() > 0) Note(sh, slot, "");
  backoff.Reset();

  int part = -1;
  bool retired = false;
  {
    MutexLock l(&sh.mu);
    if (conn && fatal.ok()) part = sh.Claim(-1, &retired);
    --sh.starting;
  }
  sh.changed.notify_all();

  int64_t chunk_rows = settings_.chunk_rows;
  Pacer& pacer = *sh.pacer;
  while (part >= 0) {
    if (!pacer.BeforeChunk().ok()) break;  // cancelled or failed elsewhere
    {
      // A pause or a hold may have lasted long: look again before writing.
      MutexLock l(&sh.mu);
      part = sh.Claim(part, &retired);
      if (part < 0) break;
    }
    int64_t cap = std::min(settings_.chunk_max_rows, pacer.max_chunk_rows().value_or(settings_.chunk_max_rows));
    int64_t n = std::clamp(chunk_rows, std::min(settings_.chunk_min_rows, cap), cap);
    bool done = false;
    int64_t rows = 0;
    int64_t t0 = clock_->NowMicros();
    Status s = Chunk(*conn, task, sh.parts[static_cast<size_t>(part)], n, pacer.readings(), &done, &rows);
    if (!s.ok()) {
      bool stopped = false;
      s = WaitToRetry(sh, conn, backoff, s, slot, &stopped);
      if (!s.ok()) {
        if (!stopped) fatal = s;
        break;
      }
      continue;
    }
    if (backoff.attempts() > 0) Note(sh, slot, "");
    backoff.Reset();
    int64_t took = std::max<int64_t>(1, clock_->NowMicros() - t0);
    // Aim the next chunk at the target duration; change at most 2x per step
    // so one slow chunk (a checkpoint, a burst of writers) cannot swing it.
    if (rows > 0) {
      double target = static_cast<double>(pacer.chunk_target_ms().value_or(settings_.chunk_target_ms)) * 1000.0 *
                      pacer.chunk_scale();
      double factor = std::clamp(target / static_cast<double>(took), 0.5, 2.0);
      chunk_rows = std::clamp<int64_t>(static_cast<int64_t>(std::llround(static_cast<double>(n) * factor)),
                                       settings_.chunk_min_rows, settings_.chunk_max_rows);
    }
    {
      MutexLock l(&sh.mu);
      sh.run_rows += rows;
      sh.run_chunks += 1;
      sh.last_chunk_rows = rows;
      if (done) {
        sh.finished[static_cast<size_t>(part)] = true;
        sh.claimed[static_cast<size_t>(part)] = false;
        part = -1;
      }
      // Finished, tuned down or stopping: take the next partition, or
      // release this one and leave.
      part = sh.Claim(part, &retired);
    }
    sh.changed.notify_all();
    if (part >= 0 && !pacer.AfterChunk(rows, took).ok()) break;
  }
  if (!fatal.ok()) Fail(sh, fatal);
  {
    MutexLock l(&sh.mu);
    if (part >= 0) sh.claimed[static_cast<size_t>(part)] = false;
    if (lent) sh.conn_in_use = false;
    if (!retired) --sh.running;
  }
  sh.changed.notify_all();
  Note(sh, slot, "");
}

Result<std::unique_ptr<SignalSource>> Backfiller::OpenSignals(const ThrottleSettings& ts) {
  if (!hooks_.connect) return std::unique_ptr<SignalSource>();
  auto signals = hooks_.connect();
  if (!signals.ok()) return signals.status().WithContext("throttle signal session");
  auto control = hooks_.connect();
  if (!control.ok()) return control.status().WithContext("backfill control session");
  std::unique_ptr<db::Connection> replica;
  if (hooks_.connect_replica) {
    auto c = hooks_.connect_replica();
    // A replica that cannot be reached at the start is more likely a wrong
    // URL than an outage: say so now rather than retrying.
    if (!c.ok()) return FailedPrecondition("replica for the lag signal: " + c.status().message());
    replica = std::move(*c);
  }
  SignalQueries q{ts.probe_sql, ts.replica_lag_sql, ts.lock_waiters_sql, ts.custom_sql, ts.activity_sql};
  return std::unique_ptr<SignalSource>(std::make_unique<ConnectionSignals>(
      migration_, std::move(q), std::move(*signals), std::move(*control), std::move(replica), ts.signal_timeout_ms,
      clock_));
}

Status Backfiller::Run(const db::BackfillTask& task) {
  Shared sh(hooks_.cancel);
  const db::Dialect& d = conn_.dialect();
  auto cancelled = [&] {
    return Cancelled("backfill of " + task.table + " interrupted; rerun `sluice backfill` to continue");
  };
  ThrottleSettings ts = settings_.throttle;
  if (ts.probe_sql.empty() && (ts.probe_target_ms > 0 || ts.probe_slowdown > 0)) {
    const std::string keys = KeyList(d, task.key);
    ts.probe_sql = "SELECT " + keys + " FROM " + d.Table(task.table) + " ORDER BY " + keys + " LIMIT 1";
  }
  if (ts.lock_waiters_sql.empty()) ts.lock_waiters_sql = d.LockWaitersSql(task.table);
  if (hooks_.connect_replica) {
    ts.replica_lag_sql = d.ReplicaOwnLagSql();
  } else if (ts.replica_lag_sql.empty()) {
    ts.replica_lag_sql = d.ReplicaLagSql();
  }

  // Set-up: session settings, the first run's partitions, the checkpoints
  // and the Pacer's sessions, retried like a chunk.
  int64_t base_done = 0, base_chunks = 0, total = 0;
  std::unique_ptr<SignalSource> source;
  {
    Backoff backoff(clock_, settings_.retry_budget_ms * 1000, static_cast<uint64_t>(clock_->NowMicros()));
    bool prepared = false;
    for (;;) {
      if (CancelRequested()) return cancelled();
      Status s = Status::Ok();
      if (!conn_setup_) {
        s = InitSession(conn_, false);
        conn_setup_ = s.ok();
      }
      if (s.ok() && !prepared) {
        s = Prepare(task);
        prepared = s.ok();
      }
      if (s.ok() && !conn_timeout_) {
        // Prepare may count every row; only what follows runs under the
        // chunk statement timeout.
        std::string t = TimeoutSql(d);
        if (!t.empty()) s = conn_.AddSessionSetup(t);
        conn_timeout_ = s.ok();
      }
      if (s.ok()) s = LoadPartitions(task, sh, &base_done, &base_chunks, &total);
      if (s.ok()) {
        auto src = OpenSignals(ts);
        if (src.ok()) {
          source = std::move(*src);
          break;
        }
        s = src.status();
      }
      bool stopped = false;
      s = WaitToRetry(sh, &conn_, backoff, s.WithContext("preparing the backfill of " + task.table), -1, &stopped);
      if (!s.ok()) return stopped ? cancelled() : s;
    }
  }
  sh.pacer = std::make_shared<Pacer>(migration_, ts, std::move(source), clock_, hooks_.cancel);
  sh.pacer->Start();
  // The Pacer's threads stop however Run ends.
  struct StopPacer {
    Pacer* p;
    ~StopPacer() { p->Stop(); }
  } stop_pacer{sh.pacer.get()};

  const int max_workers =
      d.parallel_backfill() && hooks_.connect ? std::max(1, static_cast<int>(sh.parts.size())) : 1;
  std::vector<std::thread> threads;
  int slots = 0;
  const int64_t run_start = clock_->NowMicros();
  int64_t last_report = run_start - kReportMicros;
  auto report = [&](bool done) {
    if (!hooks_.on_progress) return;
    Progress p;
    p.table = task.table;
    {
      MutexLock l(&sh.mu);
      p.rows_done = base_done + sh.run_rows;
      p.chunks = base_chunks + sh.run_chunks;
      p.chunk_rows = sh.last_chunk_rows;
      p.workers = sh.running;
    }
    p.rows_total = std::max(total, p.rows_done);
    double secs = static_cast<double>(clock_->NowMicros() - run_start) / 1e6;
    p.rows_per_second = secs > 0 ? static_cast<double>(p.rows_done - base_done) / secs : 0;
    if (p.rows_per_second > 0) p.eta_seconds = static_cast<double>(p.rows_total - p.rows_done) / p.rows_per_second;
    p.throttle = sh.pacer->reason();
    p.done = done;
    hooks_.on_progress(p);
  };

  for (;;) {
    int want = std::clamp(static_cast<int>(sh.pacer->workers().value_or(settings_.workers)), 1, max_workers);
    bool interrupt = false;
    {
      MutexLock l(&sh.mu);
      sh.want = want;
      if (CancelRequested() && !sh.stopping) {
        sh.stopping = true;
        interrupt = true;
      }
      if (sh.AllDoneLocked() || sh.StopLocked()) {
        if (sh.running == 0) break;
      } else if (sh.starting == 0 && sh.running < sh.want && sh.OpenPartsLocked()) {
        // One at a time: the next worker is started once this one has
        // claimed its partition.
        db::Connection* lend = nullptr;
        if (!sh.conn_in_use) {
          sh.conn_in_use = true;
          lend = &conn_;
        }
        ++sh.running;
        ++sh.starting;
        int slot = ++slots;
        threads.emplace_back([this, &sh, &task, lend, slot] { Worker(sh, task, lend, slot); });
        continue;
      } else if (sh.running == 0 && sh.starting == 0 && !sh.OpenPartsLocked()) {
        break;  // nothing left to claim
      }
      if (!interrupt) clock_->WaitFor(&sh.changed, &sh.mu, kSliceMicros);
    }
    if (interrupt) {
      sh.changed.notify_all();
      sh.pacer->Interrupt();
    }
    if (clock_->NowMicros() - last_report >= kReportMicros) {
      last_report = clock_->NowMicros();
      report(false);
    }
  }
  for (auto& t : threads) t.join();
  sh.pacer->Stop();
  bool all_done = false;
  {
    MutexLock l(&sh.mu);
    if (sh.failed) return sh.error;
    all_done = sh.AllDoneLocked();
  }
  report(all_done);
  if (all_done) return Status::Ok();
  if (CancelRequested()) return cancelled();
  return Internal("backfill of " + task.table + " stopped with unfinished partitions");
}

}  // namespace sluice::backfill
