#include "backfill/backfill.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "backfill/key.h"
#include "common/sql_text.h"

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

// Below this many rows one partition is enough: splitting costs more than
// it saves.
constexpr int64_t kMinRowsToPartition = 20000;
constexpr int64_t kDefaultPartitions = 8;

}  // namespace

// State shared by the coordinating thread and the workers of one Run.
struct Backfiller::Shared {
  std::mutex mu;
  std::condition_variable changed;
  std::vector<int> parts;         // partition (worker column) ids
  std::vector<bool> claimed, finished;
  int running = 0;
  int want = 1;
  bool conn_in_use = false;       // conn_ lent to a worker
  Status error = Status::Ok();
  bool failed = false;
  int64_t run_rows = 0;
  int64_t run_chunks = 0;
  int64_t last_chunk_rows = 0;
  std::unique_ptr<Pacer> pacer;
};

Status Backfiller::Recover(db::Connection& conn, const Status& error, int* attempts) {
  ++*attempts;
  switch (error.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kInDoubt: {
      // The connection broke (maybe inside COMMIT). Reconnect with backoff;
      // the next chunk re-reads the checkpoint, which settles whether the
      // last commit happened.
      if (*attempts > 40) return error.WithContext("giving up after " + std::to_string(*attempts) + " reconnects");
      clock_->SleepMicros(std::min<int64_t>(5'000'000, 100'000LL << std::min(*attempts, 6)));
      if (!conn.Reconnect().ok()) return Status::Ok();  // try again next round
      for (const auto& s : conn.dialect().BackfillSessionSetup()) conn.Exec(s).IgnoreError();
      return Status::Ok();
    }
    case StatusCode::kAborted:
      // Lock contention or serialization failure: retry the chunk.
      if (*attempts > 200) return error.WithContext("chunk kept conflicting with other writers");
      clock_->SleepMicros(20'000LL * std::min(*attempts, 25));
      return Status::Ok();
    default:
      return error;
  }
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
  for (const auto& s : d.BackfillSessionSetup()) SLUICE_RETURN_IF_ERROR(conn_.Exec(s));

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
      auto c = conn_.Query("SELECT count(*) FROM " + d.Table(task.table) + " WHERE " + KeyCompare(d, task.key, "<=", 1),
                           KeyParams(high_key));
      if (!c.ok()) return c.status();
      count = c->Scalar().AsInt();
    }
    int64_t parts = 1;
    if (d.parallel_backfill() && count >= kMinRowsToPartition) parts = std::max(kDefaultPartitions, settings_.workers);
    // Partition i covers (bound[i], bound[i+1]]; offsets make the row counts
    // exact.
    std::vector<Key> bounds{Key{}};
    std::vector<int64_t> offsets{0};
    if (parts > 1) {
      // Every (count/parts)-th key, in one pass over the key index.
      int64_t step = count / parts;
      auto b = conn_.Query("SELECT " + keys + " FROM (SELECT " + keys + ", row_number() OVER (ORDER BY " + keys +
                               ") AS sluice_rn FROM " + d.Table(task.table) + " WHERE " +
                               KeyCompare(d, task.key, "<=", 1) + ") s WHERE sluice_rn % " + std::to_string(step) +
                               " = 0 AND sluice_rn < " + std::to_string(step * parts) + " ORDER BY " + keys,
                           KeyParams(high_key));
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
                              Value::Int(high_key.empty() ? 1 : 0), Value::Text(NowIso())});
      if (!ins.ok()) return ins.status();
    }
    return Status::Ok();
  });
}

Status Backfiller::Chunk(db::Connection& conn, const db::BackfillTask& task, int part, int64_t chunk_rows,
                         bool* done, int64_t* rows) {
  const db::Dialect& d = conn.dialect();
  const std::string cp = d.StateTable("checkpoints");
  const size_t nk = task.key.size();
  int64_t started = clock_->NowMicros();
  *rows = 0;
  *done = false;
  const Value mig = Value::Text(migration_), tbl = Value::Text(task.table), worker = Value::Int(part);
  return db::InTransaction(conn, [&]() -> Status {
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

    auto u = conn.Query(update_sql_ + lower + KeyCompare(d, task.key, "<=", upper_param), KeyParams(last, end));
    if (!u.ok()) {
      return u.status().WithContext("backfill of " + task.table + " rows " + KeyToDisplay(last) + " .. " +
                                    KeyToDisplay(end));
    }
    *rows = u->affected;
    if (!final && end == high) final = true;
    double millis = static_cast<double>(clock_->NowMicros() - started) / 1000.0;
    auto c = conn.Query("UPDATE " + cp +
                            " SET last_key = $1, rows_done = rows_done + $2, chunks = $3, done = $4, updated_at = $5 "
                            "WHERE migration = $6 AND tbl = $7 AND worker = $8",
                        {Value::Text(KeyToJson(end)), Value::Int(*rows), Value::Int(chunk_no), Value::Int(final ? 1 : 0),
                         Value::Text(NowIso()), mig, tbl, worker});
    if (!c.ok()) return c.status();
    auto h = conn.Query("INSERT INTO " + d.StateTable("chunks") +
                            " (migration, tbl, worker, chunk, from_key, to_key, rows, millis, committed_at) VALUES "
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        {mig, tbl, worker, Value::Int(chunk_no), KeyValue(last), Value::Text(KeyToJson(end)),
                         Value::Int(*rows), Value::Real(millis), Value::Text(NowIso())});
    if (!h.ok()) return h.status();
    *done = final;
    return Status::Ok();
  });
}

void Backfiller::Worker(Shared& sh, const db::BackfillTask& task, db::Connection* lent) {
  std::unique_ptr<db::Connection> own;
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> l(sh.mu);
    if (!sh.failed) {
      sh.failed = true;
      sh.error = std::move(s);
    }
  };
  auto leave = [&](int part) {
    std::lock_guard<std::mutex> l(sh.mu);
    if (part >= 0) sh.claimed[static_cast<size_t>(part)] = false;
    if (lent) sh.conn_in_use = false;
    --sh.running;
    sh.changed.notify_all();
  };
  db::Connection* conn = lent;
  if (!conn) {
    auto c = hooks_.connect();
    if (!c.ok()) {
      fail(c.status().WithContext("backfill worker could not connect"));
      leave(-1);
      return;
    }
    own = std::move(*c);
    conn = own.get();
    for (const auto& s : conn->dialect().BackfillSessionSetup()) conn->Exec(s).IgnoreError();
  }
  int64_t chunk_rows = settings_.chunk_rows;
  int attempts = 0;
  int part = -1;
  for (;;) {
    if (part < 0) {
      std::lock_guard<std::mutex> l(sh.mu);
      if (sh.failed || sh.running > sh.want) break;
      for (size_t i = 0; i < sh.parts.size(); ++i) {
        if (!sh.claimed[i] && !sh.finished[i]) {
          sh.claimed[i] = true;
          part = static_cast<int>(i);
          break;
        }
      }
      if (part < 0) break;
    }
    if (!sh.pacer->BeforeChunk().ok()) break;  // cancelled
    int64_t cap = std::min(settings_.chunk_max_rows, sh.pacer->max_chunk_rows().value_or(settings_.chunk_max_rows));
    int64_t n = std::clamp(chunk_rows, std::min(settings_.chunk_min_rows, cap), cap);
    bool done = false;
    int64_t rows = 0;
    int64_t t0 = clock_->NowMicros();
    Status s = Chunk(*conn, task, sh.parts[static_cast<size_t>(part)], n, &done, &rows);
    if (!s.ok()) {
      Status r = Recover(*conn, s, &attempts);
      if (!r.ok()) {
        fail(r);
        break;
      }
      continue;
    }
    attempts = 0;
    int64_t took = std::max<int64_t>(1, clock_->NowMicros() - t0);
    // Aim the next chunk at the target duration; change at most 2x per step
    // so one slow chunk (a checkpoint, a burst of writers) cannot swing it.
    if (rows > 0) {
      double target = static_cast<double>(sh.pacer->chunk_target_ms().value_or(settings_.chunk_target_ms)) * 1000.0 *
                      sh.pacer->chunk_scale();
      double factor = std::clamp(target / static_cast<double>(took), 0.5, 2.0);
      chunk_rows = std::clamp<int64_t>(static_cast<int64_t>(std::llround(static_cast<double>(n) * factor)),
                                       settings_.chunk_min_rows, settings_.chunk_max_rows);
    }
    {
      std::lock_guard<std::mutex> l(sh.mu);
      sh.run_rows += rows;
      sh.run_chunks += 1;
      sh.last_chunk_rows = rows;
      if (done) {
        sh.finished[static_cast<size_t>(part)] = true;
        sh.claimed[static_cast<size_t>(part)] = false;
        part = -1;
      }
      sh.changed.notify_all();
    }
    if (!sh.pacer->AfterChunk(rows, took).ok()) break;  // cancelled
    {
      // Tuned down: the surplus workers release their partitions.
      std::lock_guard<std::mutex> l(sh.mu);
      if (sh.running > sh.want && part >= 0) {
        sh.claimed[static_cast<size_t>(part)] = false;
        part = -1;
      }
    }
  }
  leave(part);
}

Status Backfiller::Run(const db::BackfillTask& task) {
  int attempts = 0;
  for (;;) {
    Status s = Prepare(task);
    if (s.ok()) break;
    SLUICE_RETURN_IF_ERROR(Recover(conn_, s, &attempts));
  }
  const db::Dialect& d = conn_.dialect();
  Shared sh;
  int64_t base_done = 0, base_chunks = 0, total = 0;
  {
    auto r = conn_.Query("SELECT worker, done, rows_done, rows_total, chunks FROM " + d.StateTable("checkpoints") +
                             " WHERE migration = $1 AND tbl = $2 ORDER BY worker",
                         {Value::Text(migration_), Value::Text(task.table)});
    if (!r.ok()) return r.status();
    for (const auto& row : r->rows) {
      sh.parts.push_back(static_cast<int>(row[0].AsInt()));
      sh.finished.push_back(row[1].AsInt() != 0);
      sh.claimed.push_back(false);
      base_done += row[2].AsInt();
      total += row[3].AsInt();
      base_chunks += row[4].AsInt();
    }
  }

  ThrottleSettings ts = settings_.throttle;
  if (ts.probe_sql.empty() && ts.probe_target_ms > 0) {
    const std::string keys = KeyList(d, task.key);
    ts.probe_sql = "SELECT " + keys + " FROM " + d.Table(task.table) + " ORDER BY " + keys + " LIMIT 1";
  }
  if (ts.lock_waiters_sql.empty()) ts.lock_waiters_sql = d.LockWaitersSql(task.table);
  std::unique_ptr<db::Connection> signals, replica;
  if (hooks_.connect) {
    auto c = hooks_.connect();
    if (!c.ok()) return c.status().WithContext("throttle signal session");
    signals = std::move(*c);
  }
  if (hooks_.connect_replica) {
    auto c = hooks_.connect_replica();
    if (!c.ok()) return c.status().WithContext("replica for the lag signal");
    replica = std::move(*c);
    ts.replica_lag_sql = d.ReplicaOwnLagSql();
  } else if (ts.replica_lag_sql.empty()) {
    ts.replica_lag_sql = d.ReplicaLagSql();
  }
  sh.pacer = std::make_unique<Pacer>(migration_, ts, std::move(signals), std::move(replica), clock_, hooks_.cancel);

  const int max_workers = d.parallel_backfill() && hooks_.connect ? static_cast<int>(sh.parts.size()) : 1;
  auto wanted = [&]() {
    return std::clamp(static_cast<int>(sh.pacer->workers().value_or(settings_.workers)), 1, max_workers);
  };
  std::vector<std::thread> threads;
  int64_t run_start = clock_->NowMicros();
  auto report = [&](bool done) {
    if (!hooks_.on_progress) return;
    Progress p;
    p.table = task.table;
    {
      std::lock_guard<std::mutex> l(sh.mu);
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
    bool all_done = false;
    {
      std::unique_lock<std::mutex> l(sh.mu);
      sh.want = wanted();
      all_done = std::all_of(sh.finished.begin(), sh.finished.end(), [](bool f) { return f; });
      bool cancelled = hooks_.cancel && hooks_.cancel->load();
      bool open_parts = false;
      for (size_t i = 0; i < sh.parts.size(); ++i) open_parts |= !sh.claimed[i] && !sh.finished[i];
      if (all_done || sh.failed || cancelled) {
        if (sh.running == 0) break;
      } else {
        while (!sh.failed && sh.running < sh.want && open_parts) {
          db::Connection* lend = nullptr;
          if (!sh.conn_in_use) {
            sh.conn_in_use = true;
            lend = &conn_;
          }
          ++sh.running;
          threads.emplace_back([this, &sh, &task, lend] { Worker(sh, task, lend); });
          // Let the new worker claim before deciding on another.
          sh.changed.wait_for(l, std::chrono::milliseconds(20));
          open_parts = false;
          for (size_t i = 0; i < sh.parts.size(); ++i) open_parts |= !sh.claimed[i] && !sh.finished[i];
        }
        if (sh.running == 0 && !open_parts) break;  // nothing left to claim
      }
      sh.changed.wait_for(l, std::chrono::milliseconds(200));
    }
    report(false);
  }
  for (auto& t : threads) t.join();
  if (sh.failed) return sh.error;
  bool all_done = std::all_of(sh.finished.begin(), sh.finished.end(), [](bool f) { return f; });
  report(all_done);
  if (all_done) return Status::Ok();
  if (hooks_.cancel && hooks_.cancel->load()) {
    return Cancelled("backfill of " + task.table + " interrupted; rerun `sluice backfill` to continue");
  }
  return Internal("backfill of " + task.table + " stopped with unfinished partitions");
}

}  // namespace sluice::backfill
