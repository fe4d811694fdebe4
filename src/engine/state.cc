#include "engine/state.h"

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "hooks/hooks.h"


namespace sluice::engine {

using db::Value;

Result<bool> StateStore::Exists() {
  auto r = c_.Query("SELECT 1 FROM " + T("migrations") + " WHERE 1 = 0");
  if (r.ok()) return true;
  // Only a missing table means "no state yet": a lost connection, a denied
  // permission or anything else must not read as "no migrations".
  if (r.status().code() == StatusCode::kNotFound) return false;
  return r.status().WithContext("cannot read sluice's state tables");
}

Result<bool> StateStore::HasTable(const std::string& base) {
  auto r = c_.Query("SELECT 1 FROM " + T(base) + " WHERE 1 = 0");
  if (r.ok()) return true;
  if (r.status().code() == StatusCode::kNotFound) return false;
  return r.status().WithContext("cannot read sluice's state tables");
}

Status StateStore::Ensure() {
  // Two processes creating the tables at once would collide in the catalog.
  const std::string serialise = d_.StateSetupLockSql();
  if (!serialise.empty()) SLUICE_RETURN_IF_ERROR(c_.Exec(serialise));
  for (const auto& ddl : d_.StateSchema()) SLUICE_RETURN_IF_ERROR(c_.Exec(ddl));
  return EnsureColumns();
}

Status StateStore::EnsureColumns() {
  // The added columns each table lacks (none for a table that does not
  // exist: whoever creates it creates them).
  auto missing = [&]() -> Result<std::vector<db::StateColumn>> {
    std::map<std::string, std::set<std::string>> have;
    std::vector<db::StateColumn> out;
    for (const auto& c : d_.AddedStateColumns()) {
      if (!have.count(c.table)) {
        auto r = c_.Query(d_.StateColumnsSql(c.table));
        if (!r.ok()) return r.status().WithContext("reading the columns of sluice's state table " + T(c.table));
        auto& cols = have[c.table];
        for (const auto& row : r->rows) cols.insert(row[0].text);
      }
      const auto& cols = have[c.table];
      if (!cols.empty() && !cols.count(c.column)) out.push_back(c);
    }
    return out;
  };
  SLUICE_ASSIGN_OR_RETURN(auto add, missing());
  if (add.empty()) return Status::Ok();
  // Serialised like the tables' creation; another process may have added
  // them meanwhile.
  const std::string serialise = d_.StateSetupLockSql();
  if (!serialise.empty()) {
    SLUICE_RETURN_IF_ERROR(c_.Exec(serialise));
    SLUICE_ASSIGN_OR_RETURN(add, missing());
  }
  for (const auto& c : add) {
    Status s = c_.Exec("ALTER TABLE " + T(c.table) + " ADD COLUMN " + d_.Quote(c.column) + " " + c.type);
    if (!s.ok()) {
      return s.WithContext("adding column " + c.column + " to sluice's state table " + T(c.table) +
                           " (created by an older sluice; run this once as the role that owns it)");
    }
  }
  return Status::Ok();
}

namespace {

MigrationRecord FromRow(const db::Row& r) {
  MigrationRecord m;
  m.name = r[0].text;
  m.seq = r[1].AsInt();
  m.phase = r[2].text;
  m.version = r[3].text;
  m.previous_version = r[4].text;
  m.plan_file = r[5].text;
  m.plan_format = r[6].text;
  m.plan_text = r[7].text;
  m.schema_before = r[8].text;
  auto tables = nlohmann::json::parse(r[9].text, nullptr, false);
  if (tables.is_array()) {
    for (const auto& t : tables) m.tables.push_back(t.get<std::string>());
  }
  m.live = r[10].text;
  m.backfill = r[11].text;
  m.version_retired = r[12].AsInt() != 0;
  m.created_at = r[13].text;
  m.updated_at = r[14].text;
  m.completed_at = r[15].text;
  return m;
}

constexpr const char* kColumns =
    "name, seq, phase, version, previous_version, plan_file, plan_format, plan_text, schema_before, tables, live, "
    "backfill, version_retired, created_at, updated_at, completed_at";

}  // namespace

Result<std::optional<MigrationRecord>> StateStore::Get(const std::string& name) {
  auto r = c_.Query(std::string("SELECT ") + kColumns + " FROM " + T("migrations") + " WHERE name = $1",
                    {Value::Text(name)});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::optional<MigrationRecord>();
  return std::optional<MigrationRecord>(FromRow(r->rows[0]));
}

Result<std::optional<MigrationRecord>> StateStore::LockRecord(const std::string& name) {
  auto r = c_.Query(std::string("SELECT ") + kColumns + " FROM " + T("migrations") + " WHERE name = $1" +
                        d_.LockRowsClause(),
                    {Value::Text(name)});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::optional<MigrationRecord>();
  return std::optional<MigrationRecord>(FromRow(r->rows[0]));
}

Result<std::vector<MigrationRecord>> StateStore::List() {
  auto r = c_.Query(std::string("SELECT ") + kColumns + " FROM " + T("migrations") + " ORDER BY seq");
  if (!r.ok()) return r.status();
  std::vector<MigrationRecord> out;
  for (const auto& row : r->rows) out.push_back(FromRow(row));
  return out;
}

Result<int64_t> StateStore::NextSeq() {
  auto r = c_.Query("SELECT coalesce(max(seq), 0) + 1 FROM " + T("migrations"));
  if (!r.ok()) return r.status();
  return r->Scalar().AsInt(1);
}

Status StateStore::Upsert(const MigrationRecord& m) {
  nlohmann::json tables = m.tables;
  auto r = c_.Query(
      "INSERT INTO " + T("migrations") + " (" + kColumns +
          ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
          "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, phase = excluded.phase, version = excluded.version, "
          "previous_version = excluded.previous_version, plan_file = excluded.plan_file, plan_format = "
          "excluded.plan_format, plan_text = excluded.plan_text, schema_before = excluded.schema_before, tables = "
          "excluded.tables, live = excluded.live, backfill = excluded.backfill, version_retired = "
          "excluded.version_retired, updated_at = excluded.updated_at, completed_at = excluded.completed_at",
      {Value::Text(m.name), Value::Int(m.seq), Value::Text(m.phase), Value::Text(m.version),
       Value::Text(m.previous_version), Value::Text(m.plan_file), Value::Text(m.plan_format), Value::Text(m.plan_text),
       Value::Text(m.schema_before), Value::Text(tables.dump()), Value::Text(m.live), Value::Text(m.backfill),
       Value::Int(m.version_retired ? 1 : 0), Value::Text(m.created_at.empty() ? Now() : m.created_at),
       Value::Text(Now()), m.completed_at.empty() ? Value::Null() : Value::Text(m.completed_at)});
  return r.status();
}

Status StateStore::SetPhase(const std::string& name, const std::string& phase) {
  std::string extra = phase == kComplete ? ", completed_at = $3" : "";
  std::vector<Value> params = {Value::Text(phase), Value::Text(name)};
  if (!extra.empty()) params.push_back(Value::Text(Now()));
  auto r = c_.Query("UPDATE " + T("migrations") + " SET phase = $1, updated_at = '" + Now() + "'" + extra +
                        " WHERE name = $2",
                    params);
  return r.status();
}

Result<int64_t> StateStore::SetPhaseIf(const std::string& name, const std::string& from, const std::string& to) {
  std::string extra = to == kComplete ? ", completed_at = $4" : "";
  std::vector<Value> params = {Value::Text(to), Value::Text(name), Value::Text(from)};
  if (!extra.empty()) params.push_back(Value::Text(Now()));
  auto r = c_.Query("UPDATE " + T("migrations") + " SET phase = $1, updated_at = '" + Now() + "'" + extra +
                        " WHERE name = $2 AND phase = $3",
                    params);
  if (!r.ok()) return r.status();
  return r->affected;
}

Status StateStore::SetField(const std::string& name, const std::string& column, const std::string& value) {
  // `column` is always a literal from this code base, never user input.
  auto r = c_.Query("UPDATE " + T("migrations") + " SET " + column + " = $1, updated_at = $3 WHERE name = $2",
                    {column == "version_retired" ? Value::Int(value == "1") : Value::Text(value), Value::Text(name),
                     Value::Text(Now())});
  return r.status();
}

Status StateStore::AddEvent(const std::string& migration, const std::string& kind, const std::string& actor,
                            const std::string& message, const std::string& details_json) {
  const std::string at = Now();
  auto r = c_.Query("INSERT INTO " + T("events") +
                        " (migration, at, kind, actor, message, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    {Value::Text(migration), Value::Text(at), Value::Text(kind), Value::Text(actor),
                     Value::Text(message), details_json.empty() ? Value::Null() : Value::Text(details_json)});
  if (!r.ok()) return r.status();
  // The one hand-off to hooks and webhooks (src/hooks): every recorded
  // event, delivered once its transaction commits (at once outside one).
  if (hooks::Dispatcher* d = hooks::Dispatcher::Current(); d && !r->rows.empty()) {
    EventInfo e;
    e.id = r->rows[0][0].AsInt();
    e.migration = migration;
    e.at = at;
    e.kind = kind;
    e.actor = actor;
    e.message = message;
    e.details = details_json;
    d->Recorded(e, !c_.in_transaction());
  }
  return Status::Ok();
}

Result<std::vector<EventInfo>> StateStore::EventsAfter(const std::string& migration, int64_t after_id, int64_t limit) {
  std::vector<Value> params{Value::Int(after_id), Value::Int(limit)};
  if (!migration.empty()) params.push_back(Value::Text(migration));
  auto r = c_.Query("SELECT id, migration, at, kind, actor, message, details FROM " + T("events") +
                        " WHERE id > $1" + (migration.empty() ? "" : " AND migration = $3") + " ORDER BY id LIMIT $2",
                    params);
  if (!r.ok()) return r.status();
  std::vector<EventInfo> out;
  for (const auto& row : r->rows) {
    EventInfo e;
    e.id = row[0].AsInt();
    e.migration = row[1].text;
    e.at = row[2].text;
    e.kind = row[3].text;
    e.actor = row[4].text;
    e.message = row[5].text;
    e.details = row[6].is_null() ? "" : row[6].text;
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<EventRecord>> StateStore::Events(const std::string& migration, const std::string& kind) {
  std::vector<Value> params{Value::Text(migration)};
  if (!kind.empty()) params.push_back(Value::Text(kind));
  auto r = c_.Query("SELECT id, at, kind, actor, message, details FROM " + T("events") + " WHERE migration = $1" +
                        (kind.empty() ? "" : " AND kind = $2") + " ORDER BY id",
                    params);
  if (!r.ok()) return r.status();
  std::vector<EventRecord> out;
  for (const auto& row : r->rows) {
    out.push_back({row[0].AsInt(), row[1].text, row[2].text, row[3].text, row[4].text,
                   row[5].is_null() ? "" : row[5].text});
  }
  return out;
}

Result<std::vector<int>> StateStore::DoneSteps(const std::string& migration, const std::string& phase) {
  auto r = c_.Query("SELECT step FROM " + T("steps") + " WHERE migration = $1 AND phase = $2 ORDER BY step",
                    {Value::Text(migration), Value::Text(phase)});
  if (!r.ok()) return r.status();
  std::vector<int> out;
  for (const auto& row : r->rows) out.push_back(static_cast<int>(row[0].AsInt()));
  return out;
}

Status StateStore::MarkStep(const std::string& migration, const std::string& phase, int step) {
  auto r = c_.Query("INSERT INTO " + T("steps") +
                        " (migration, phase, step, done_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    {Value::Text(migration), Value::Text(phase), Value::Int(step), Value::Text(Now())});
  return r.status();
}

Status StateStore::ClearStep(const std::string& migration, const std::string& phase) {
  return c_.Query("DELETE FROM " + T("steps") + " WHERE migration = $1 AND phase = $2",
                  {Value::Text(migration), Value::Text(phase)})
      .status();
}

Status StateStore::ClearProgress(const std::string& migration) {
  for (const char* t : {"steps", "checkpoints", "chunks", "leases"}) {
    auto r = c_.Query("DELETE FROM " + T(t) + " WHERE migration = $1", {Value::Text(migration)});
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Result<double> StateStore::RecentBackfillRate(const std::string& migration, int seconds) {
  // ISO-8601 UTC timestamps compare correctly as text.
  auto r = c_.Query("SELECT coalesce(sum(rows), 0) FROM " + T("chunks") + " WHERE migration = $1 AND committed_at >= $2",
                    {Value::Text(migration), Value::Text(Now(-seconds))});
  if (!r.ok()) return r.status();
  return static_cast<double>(r->Scalar().AsInt()) / seconds;
}

ThrottleSignals SignalsOfRow(const db::Row& row, size_t first) {
  ThrottleSignals t;
  if (row.size() < first + 4) return t;
  if (!row[first].is_null()) t.probe_latency_seconds = row[first].AsReal() / 1000.0;
  if (!row[first + 1].is_null()) t.replica_lag_seconds = row[first + 1].AsReal();
  if (!row[first + 2].is_null()) t.lock_waiters = row[first + 2].AsInt();
  if (!row[first + 3].is_null()) t.app_sessions = row[first + 3].AsInt();
  return t;
}

Result<std::optional<StateStore::ChunkSignals>> StateStore::LatestChunkSignals(const std::string& migration) {
  const std::string from =
      " FROM " + T("chunks") + " WHERE migration = $1 ORDER BY committed_at DESC, chunk DESC, worker DESC LIMIT 1";
  auto r = c_.Query("SELECT tbl, committed_at, " + std::string(kChunkSignalColumns) + from, {Value::Text(migration)});
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) {
    // An older sluice's chunks table: no readings (reading never adds the
    // columns; the next backfill does).
    r = c_.Query("SELECT tbl, committed_at, " + std::string(kNoChunkSignals) + from, {Value::Text(migration)});
  }
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::optional<ChunkSignals>();
  const db::Row& row = r->rows[0];
  return std::optional<ChunkSignals>(ChunkSignals{row[0].text, row[1].text, SignalsOfRow(row, 2)});
}

Result<int64_t> StateStore::DualWriteFailureCount(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(bool exists, HasTable("dual_write_failures"));
  if (!exists) return int64_t{0};
  auto r = c_.Query("SELECT count(*) FROM " + T("dual_write_failures") + " WHERE migration = $1",
                    {Value::Text(migration)});
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) return int64_t{0};
    return r.status();
  }
  return r->Scalar().AsInt();
}

Result<std::vector<DualWriteFailure>> StateStore::DualWriteFailures(const std::string& migration, int64_t limit) {
  SLUICE_ASSIGN_OR_RETURN(bool exists, HasTable("dual_write_failures"));
  if (!exists) return std::vector<DualWriteFailure>{};
  auto r = c_.Query("SELECT tbl, row_key, col, error, sqlstate, writer, source, count, first_seen, last_seen FROM " +
                        T("dual_write_failures") + " WHERE migration = $1 ORDER BY tbl, row_key, col" +
                        (limit >= 0 ? " LIMIT " + std::to_string(limit) : ""),
                    {Value::Text(migration)});
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) return std::vector<DualWriteFailure>{};
    return r.status();
  }
  std::vector<DualWriteFailure> out;
  for (const auto& row : r->rows) {
    DualWriteFailure f;
    f.table = row[0].text;
    f.key = row[1].text;
    f.column = row[2].text;
    f.error = row[3].text;
    f.sqlstate = row[4].text;
    f.writer = row[5].text;
    f.source = row[6].text;
    f.count = row[7].AsInt();
    f.first_seen = row[8].text;
    f.last_seen = row[9].text;
    out.push_back(std::move(f));
  }
  return out;
}

Status StateStore::ResolveDualWriteFailure(const std::string& migration, const DualWriteFailure& f) {
  auto r = c_.Query("DELETE FROM " + T("dual_write_failures") +
                        " WHERE migration = $1 AND tbl = $2 AND row_key = $3 AND col = $4",
                    {Value::Text(migration), Value::Text(f.table), Value::Text(f.key), Value::Text(f.column)});
  return r.ok() ? Status::Ok() : r.status();
}

Result<std::vector<Checkpoint>> StateStore::Checkpoints(const std::string& migration) {
  auto r = c_.Query("SELECT tbl, worker, last_key, high_key, rows_done, rows_total, chunks, done, updated_at FROM " +
                        T("checkpoints") + " WHERE migration = $1 ORDER BY tbl, worker",
                    {Value::Text(migration)});
  if (!r.ok()) return r.status();
  std::vector<Checkpoint> out;
  for (const auto& row : r->rows) {
    Checkpoint c;
    c.table = row[0].text;
    c.worker = static_cast<int>(row[1].AsInt());
    c.last_key = row[2].text;
    c.high_key = row[3].text;
    c.rows_done = row[4].AsInt();
    c.rows_total = row[5].AsInt();
    c.chunks = row[6].AsInt();
    c.done = row[7].AsInt() != 0;
    c.updated_at = row[8].text;
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::optional<VerificationRecord>> StateStore::LastVerification(const std::string& migration) {
  auto r = c_.Query("SELECT id, at, passed, report FROM " + T("verifications") +
                        " WHERE migration = $1 ORDER BY id DESC LIMIT 1",
                    {Value::Text(migration)});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::optional<VerificationRecord>();
  VerificationRecord v;
  v.id = r->rows[0][0].AsInt();
  v.at = r->rows[0][1].text;
  v.passed = r->rows[0][2].AsInt() != 0;
  v.report = r->rows[0][3].text;
  return std::optional<VerificationRecord>(v);
}

Status StateStore::AddVerification(const std::string& migration, bool passed, const std::string& report_json) {
  auto r = c_.Query("INSERT INTO " + T("verifications") + " (migration, at, passed, report) VALUES ($1, $2, $3, $4)",
                    {Value::Text(migration), Value::Text(Now()), Value::Int(passed ? 1 : 0),
                     Value::Text(report_json)});
  return r.status();
}

namespace {
// The database's clock in epoch milliseconds, or the local one.
std::string NowMillis(const db::Dialect& d) {
  std::string sql = d.EpochMillisSql();
  if (!sql.empty()) return sql;
  return std::to_string(Clock::Real()->WallMicros() / 1000);
}
}  // namespace

Status StateStore::StartLease(const std::string& migration, const std::string& holder, const std::string& started_at,
                              int64_t interval_ms) {
  return c_.Query("INSERT INTO " + T("leases") +
                      " (migration, holder, started_at, heartbeat_at, heartbeat_ms, interval_ms, stopped_at, "
                      "last_error) VALUES ($1, $2, $3, $3, " + NowMillis(d_) + ", $4, NULL, NULL) "
                      "ON CONFLICT (migration) DO UPDATE SET holder = excluded.holder, started_at = "
                      "excluded.started_at, heartbeat_at = excluded.heartbeat_at, heartbeat_ms = "
                      "excluded.heartbeat_ms, interval_ms = excluded.interval_ms, stopped_at = NULL, last_error = NULL",
                  {Value::Text(migration), Value::Text(holder), Value::Text(started_at), Value::Int(interval_ms)})
      .status();
}

Result<bool> StateStore::RenewLease(const std::string& migration, const std::string& holder,
                                    const std::string& started_at) {
  auto r = c_.Query("UPDATE " + T("leases") + " SET heartbeat_at = $4, heartbeat_ms = " + NowMillis(d_) +
                        " WHERE migration = $1 AND holder = $2 AND started_at = $3 AND stopped_at IS NULL",
                    {Value::Text(migration), Value::Text(holder), Value::Text(started_at), Value::Text(Now())});
  if (!r.ok()) return r.status();
  return r->affected == 1;
}

Status StateStore::StopLease(const std::string& migration, const std::string& holder, const std::string& started_at,
                             const std::string& error) {
  return c_.Query("UPDATE " + T("leases") + " SET stopped_at = $4, last_error = $5 WHERE migration = $1 AND holder = "
                      "$2 AND started_at = $3",
                  {Value::Text(migration), Value::Text(holder), Value::Text(started_at), Value::Text(Now()),
                   error.empty() ? Value::Null() : Value::Text(error)})
      .status();
}

Result<std::optional<BackfillLease>> StateStore::GetLease(const std::string& migration) {
  auto r = c_.Query("SELECT holder, started_at, heartbeat_at, heartbeat_ms, interval_ms, stopped_at, last_error, " +
                        NowMillis(d_) + " FROM " + T("leases") + " WHERE migration = $1",
                    {Value::Text(migration)});
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) return std::optional<BackfillLease>();
    return r.status();
  }
  if (r->rows.empty()) return std::optional<BackfillLease>();
  const auto& row = r->rows[0];
  BackfillLease l;
  l.holder = row[0].text;
  l.started_at = row[1].text;
  l.heartbeat_at = row[2].text;
  l.heartbeat_ms = row[3].AsInt();
  l.interval_ms = row[4].AsInt();
  l.stopped_at = row[5].is_null() ? "" : row[5].text;
  l.last_error = row[6].is_null() ? "" : row[6].text;
  l.now_ms = row[7].AsInt();
  return std::optional<BackfillLease>(std::move(l));
}

Result<std::string> StateStore::ClaimOwner(const std::string& table) {
  auto r = c_.Query("SELECT migration FROM " + T("claims") + " WHERE tbl = $1", {Value::Text(table)});
  if (!r.ok()) return r.status();
  return r->rows.empty() ? std::string() : r->rows[0][0].text;
}

Status StateStore::Claim(const std::string& migration, const std::string& table) {
  SLUICE_ASSIGN_OR_RETURN(std::string owner, ClaimOwner(table));
  if (owner == migration) return Status::Ok();
  if (!owner.empty()) {
    return FailedPrecondition("table '" + table + "' is being changed by migration '" + owner +
                              "'; complete or roll it back before starting '" + migration + "'");
  }
  // A concurrent start that claimed the table first (not yet visible to
  // this transaction) makes this insert wait for it and then fail on the
  // primary key: exactly one of them wins.
  auto r = c_.Query("INSERT INTO " + T("claims") + " (tbl, migration, claimed_at) VALUES ($1, $2, $3)",
                    {Value::Text(table), Value::Text(migration), Value::Text(Now())});
  if (!r.ok() && r.status().code() == StatusCode::kFailedPrecondition) {
    return FailedPrecondition("table '" + table + "' was claimed by another migration started at the same time; "
                              "nothing was changed by starting '" + migration + "' (see `sluice status`)");
  }
  return r.status();
}

Status StateStore::ReleaseClaims(const std::string& migration) {
  return c_.Query("DELETE FROM " + T("claims") + " WHERE migration = $1", {Value::Text(migration)}).status();
}

Result<std::optional<StateStore::StoredRecording>> StateStore::GetRecording(const std::string& migration) {
  auto r = c_.Query("SELECT format, sluice_version, compiled FROM " + T("recordings") + " WHERE migration = $1",
                    {Value::Text(migration)});
  if (!r.ok()) return r.status();
  if (r->rows.empty()) return std::optional<StoredRecording>();
  StoredRecording out;
  out.format = static_cast<int>(r->rows[0][0].AsInt());
  out.sluice_version = r->rows[0][1].text;
  out.json = r->rows[0][2].text;
  return std::optional<StoredRecording>(std::move(out));
}

Status StateStore::PutRecording(const std::string& migration, int format, const std::string& sluice_version,
                                const std::string& json) {
  return c_.Query("INSERT INTO " + T("recordings") +
                      " (migration, format, sluice_version, compiled, recorded_at) VALUES ($1, $2, $3, $4, $5) "
                      "ON CONFLICT (migration) DO UPDATE SET format = excluded.format, sluice_version = "
                      "excluded.sluice_version, compiled = excluded.compiled, recorded_at = excluded.recorded_at",
                  {Value::Text(migration), Value::Int(format), Value::Text(sluice_version), Value::Text(json),
                   Value::Text(Now())})
      .status();
}

}  // namespace sluice::engine
