#include "backfill/backfill.h"

#include <algorithm>
#include <cmath>

#include "backfill/key.h"
#include "common/sql_text.h"

namespace sluice::backfill {

using db::Value;

Backfiller::Backfiller(db::Connection& conn, std::string migration, Settings settings, Hooks hooks)
    : conn_(conn),
      migration_(std::move(migration)),
      settings_(settings),
      hooks_(std::move(hooks)),
      clock_(hooks_.clock ? hooks_.clock : Clock::Real()),
      chunk_rows_(std::clamp(settings.chunk_rows, settings.chunk_min_rows, settings.chunk_max_rows)) {}

namespace {

std::vector<Value> KeyParams(const Key& a, const Key& b = {}) {
  std::vector<Value> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Key RowKey(const db::Row& row, size_t n) { return Key(row.begin(), row.begin() + static_cast<long>(n)); }

}  // namespace

Status Backfiller::Recover(const Status& error, int* attempts) {
  ++*attempts;
  switch (error.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kInDoubt: {
      // The connection broke (maybe inside COMMIT). Reconnect with backoff;
      // the next chunk re-reads the checkpoint, which settles whether the
      // last commit happened.
      if (*attempts > 40) return error.WithContext("giving up after " + std::to_string(*attempts) + " reconnects");
      clock_->SleepMicros(std::min<int64_t>(5'000'000, 100'000LL << std::min(*attempts, 6)));
      if (!conn_.Reconnect().ok()) return Status::Ok();  // try again next round
      for (const auto& s : conn_.dialect().BackfillSessionSetup()) conn_.Exec(s).IgnoreError();
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
  return db::InTransaction(conn_, [&]() -> Status {
    auto r = conn_.Query("SELECT 1 FROM " + cp + " WHERE migration = $1 AND tbl = $2 AND worker = 0",
                         {Value::Text(migration_), Value::Text(task.table)});
    if (!r.ok()) return r.status();
    if (!r->rows.empty()) return Status::Ok();
    // First run: fix the end of the walk and the row count.
    auto high = conn_.Query("SELECT " + KeyList(d, task.key) + " FROM " + d.Table(task.table) + " ORDER BY " +
                            KeyList(d, task.key, " DESC") + " LIMIT 1");
    if (!high.ok()) return high.status();
    auto count = conn_.Query("SELECT count(*) FROM " + d.Table(task.table));
    if (!count.ok()) return count.status();
    std::string high_json = high->rows.empty() ? "" : KeyToJson(RowKey(high->rows[0], task.key.size()));
    auto ins = conn_.Query("INSERT INTO " + cp +
                               " (migration, tbl, worker, last_key, high_key, rows_done, rows_total, chunks, done, "
                               "updated_at) VALUES ($1, $2, 0, NULL, $3, 0, $4, 0, $5, $6)",
                           {Value::Text(migration_), Value::Text(task.table),
                            high_json.empty() ? Value::Null() : Value::Text(high_json),
                            Value::Int(count->Scalar().AsInt()), Value::Int(high_json.empty() ? 1 : 0),
                            Value::Text(NowIso())});
    return ins.status();
  });
}

Status Backfiller::Chunk(const db::BackfillTask& task, bool* done, int64_t* rows) {
  const db::Dialect& d = conn_.dialect();
  const std::string cp = d.StateTable("checkpoints");
  const size_t nk = task.key.size();
  int64_t started = clock_->NowMicros();
  *rows = 0;
  return db::InTransaction(conn_, [&]() -> Status {
    auto r = conn_.Query("SELECT last_key, high_key, chunks, done FROM " + cp +
                             " WHERE migration = $1 AND tbl = $2 AND worker = 0" + d.LockRowsClause(),
                         {Value::Text(migration_), Value::Text(task.table)});
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
                            " LIMIT 1 OFFSET " + std::to_string(chunk_rows_ - 1);
    auto b = conn_.Query(bound_sql, KeyParams(last, high));
    if (!b.ok()) return b.status();
    bool final = b->rows.empty();
    Key end = final ? high : RowKey(b->rows[0], nk);

    auto u = conn_.Query(update_sql_ + lower + KeyCompare(d, task.key, "<=", upper_param), KeyParams(last, end));
    if (!u.ok()) {
      return u.status().WithContext("backfill of " + task.table + " rows " + KeyToDisplay(last) + " .. " +
                                    KeyToDisplay(end));
    }
    *rows = u->affected;
    if (!final && end == high) final = true;
    double millis = static_cast<double>(clock_->NowMicros() - started) / 1000.0;
    auto c = conn_.Query("UPDATE " + cp +
                             " SET last_key = $1, rows_done = rows_done + $2, chunks = $3, done = $4, updated_at = $5 "
                             "WHERE migration = $6 AND tbl = $7 AND worker = 0",
                         {Value::Text(KeyToJson(end)), Value::Int(*rows), Value::Int(chunk_no),
                          Value::Int(final ? 1 : 0), Value::Text(NowIso()), Value::Text(migration_),
                          Value::Text(task.table)});
    if (!c.ok()) return c.status();
    auto h = conn_.Query("INSERT INTO " + d.StateTable("chunks") +
                             " (migration, tbl, worker, chunk, from_key, to_key, rows, millis, committed_at) VALUES "
                             "($1, $2, 0, $3, $4, $5, $6, $7, $8)",
                         {Value::Text(migration_), Value::Text(task.table), Value::Int(chunk_no),
                          last.empty() ? Value::Null() : Value::Text(KeyToJson(last)), Value::Text(KeyToJson(end)),
                          Value::Int(*rows), Value::Real(millis), Value::Text(NowIso())});
    if (!h.ok()) return h.status();
    *done = final;
    return Status::Ok();
  });
}

Status Backfiller::Run(const db::BackfillTask& task) {
  int attempts = 0;
  for (;;) {
    Status s = Prepare(task);
    if (s.ok()) break;
    SLUICE_RETURN_IF_ERROR(Recover(s, &attempts));
  }
  const std::string cp = conn_.dialect().StateTable("checkpoints");
  int64_t run_start = clock_->NowMicros();
  int64_t run_rows = 0;
  attempts = 0;
  for (;;) {
    if (hooks_.cancel && hooks_.cancel->load()) return Cancelled("backfill of " + task.table + " interrupted; rerun `sluice backfill` to continue");
    bool done = false;
    int64_t rows = 0;
    int64_t t0 = clock_->NowMicros();
    Status s = Chunk(task, &done, &rows);
    if (!s.ok()) {
      SLUICE_RETURN_IF_ERROR(Recover(s, &attempts));
      continue;
    }
    attempts = 0;
    int64_t took = std::max<int64_t>(1, clock_->NowMicros() - t0);
    run_rows += rows;

    // Aim the next chunk at the target duration; change at most 2x per step
    // so one slow chunk (a checkpoint, a burst of writers) cannot swing it.
    if (rows > 0) {
      double target = static_cast<double>(settings_.chunk_target_ms) * 1000.0;
      double factor = std::clamp(target / static_cast<double>(took), 0.5, 2.0);
      chunk_rows_ = std::clamp<int64_t>(static_cast<int64_t>(std::llround(static_cast<double>(chunk_rows_) * factor)),
                                        settings_.chunk_min_rows, settings_.chunk_max_rows);
    }
    std::string throttle;
    if (settings_.max_rows_per_second > 0 && run_rows > 0) {
      int64_t due = run_start + static_cast<int64_t>(static_cast<double>(run_rows) / settings_.max_rows_per_second * 1e6);
      int64_t wait = due - clock_->NowMicros();
      if (wait > 0) {
        throttle = "rate limit " + std::to_string(static_cast<int64_t>(settings_.max_rows_per_second)) + " rows/s";
        clock_->SleepMicros(wait);
      }
    }
    if (hooks_.on_progress) {
      auto r = conn_.Query("SELECT rows_done, rows_total, chunks FROM " + cp +
                               " WHERE migration = $1 AND tbl = $2 AND worker = 0",
                           {Value::Text(migration_), Value::Text(task.table)});
      Progress p;
      p.table = task.table;
      if (r.ok() && !r->rows.empty()) {
        p.rows_done = r->rows[0][0].AsInt();
        p.rows_total = r->rows[0][1].AsInt();
        p.chunks = r->rows[0][2].AsInt();
      }
      double secs = static_cast<double>(clock_->NowMicros() - run_start) / 1e6;
      p.rows_per_second = secs > 0 ? static_cast<double>(run_rows) / secs : 0;
      if (p.rows_per_second > 0 && p.rows_total >= p.rows_done) {
        p.eta_seconds = static_cast<double>(p.rows_total - p.rows_done) / p.rows_per_second;
      }
      p.chunk_rows = chunk_rows_;
      p.throttle = throttle;
      p.done = done;
      hooks_.on_progress(p);
    }
    if (done) return Status::Ok();
  }
}

}  // namespace sluice::backfill
