#include "backfill/control.h"

#include "common/clock.h"

namespace sluice::backfill {

using db::Value;

namespace {

Value OptReal(const std::optional<double>& v) { return v ? Value::Real(*v) : Value::Null(); }
Value OptInt(const std::optional<int64_t>& v) { return v ? Value::Int(*v) : Value::Null(); }

}  // namespace

Result<Control> ReadControl(db::Connection& conn, const std::string& migration) {
  auto r = conn.Query("SELECT paused, max_rows_per_second, chunk_target_ms, workers, throttle, updated_at FROM " +
                          conn.dialect().StateTable("control") + " WHERE migration = $1",
                      {Value::Text(migration)});
  if (!r.ok()) return r.status();
  Control c;
  if (r->rows.empty()) return c;
  const db::Row& row = r->rows[0];
  c.paused = row[0].AsInt() != 0;
  if (!row[1].is_null()) c.max_rows_per_second = row[1].AsReal();
  if (!row[2].is_null()) c.chunk_target_ms = row[2].AsInt();
  if (!row[3].is_null()) c.workers = row[3].AsInt();
  c.throttle = row[4].is_null() ? "" : row[4].text;
  c.updated_at = row[5].text;
  return c;
}

Status WriteControl(db::Connection& conn, const std::string& migration, const ControlChange& change, Clock* clock) {
  const std::string t = conn.dialect().StateTable("control");
  return db::InTransaction(conn, [&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Control c, ReadControl(conn, migration));
    if (change.reset) {
      c.max_rows_per_second.reset();
      c.chunk_target_ms.reset();
      c.workers.reset();
    }
    if (change.paused) c.paused = *change.paused;
    if (change.max_rows_per_second) c.max_rows_per_second = *change.max_rows_per_second;
    if (change.chunk_target_ms) c.chunk_target_ms = *change.chunk_target_ms;
    if (change.workers) c.workers = *change.workers;
    auto del = conn.Query("DELETE FROM " + t + " WHERE migration = $1", {Value::Text(migration)});
    if (!del.ok()) return del.status();
    auto ins = conn.Query("INSERT INTO " + t +
                              " (migration, paused, max_rows_per_second, chunk_target_ms, workers, throttle, "
                              "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                          {Value::Text(migration), Value::Int(c.paused ? 1 : 0), OptReal(c.max_rows_per_second),
                           OptInt(c.chunk_target_ms), OptInt(c.workers),
                           c.throttle.empty() ? Value::Null() : Value::Text(c.throttle), Value::Text(IsoTime(clock->WallMicros()))});
    return ins.status();
  });
}

Status ReportThrottle(db::Connection& conn, const std::string& migration, const std::string& reason, Clock* clock) {
  const std::string t = conn.dialect().StateTable("control");
  return db::InTransaction(conn, [&]() -> Status {
    auto up = conn.Query("UPDATE " + t + " SET throttle = $1 WHERE migration = $2",
                         {reason.empty() ? Value::Null() : Value::Text(reason), Value::Text(migration)});
    if (!up.ok()) return up.status();
    if (up->affected > 0) return Status::Ok();
    auto ins = conn.Query("INSERT INTO " + t + " (migration, paused, throttle, updated_at) VALUES ($1, 0, $2, $3)",
                          {Value::Text(migration), reason.empty() ? Value::Null() : Value::Text(reason),
                           Value::Text(IsoTime(clock->WallMicros()))});
    return ins.status();
  });
}

}  // namespace sluice::backfill
