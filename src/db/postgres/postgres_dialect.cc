#include "db/postgres/postgres_dialect.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "common/sql_text.h"
#include "db/postgres/postgres_catalog.h"

namespace sluice::db {
namespace {

using sql::QuoteIdent;
using sql::QuoteLiteral;

std::string Q(std::string_view s) { return QuoteIdent(s); }

}  // namespace

PostgresDialect::PostgresDialect(std::string schema, std::string state_schema)
    : schema_(std::move(schema)), state_schema_(std::move(state_schema)) {}

std::string PostgresDialect::Ident63(const std::string& name) {
  if (name.size() <= 63) return name;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  char buf[20];
  snprintf(buf, sizeof buf, "_%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
  return name.substr(0, 63 - 9) + buf;
}

std::string PostgresDialect::Table(std::string_view table) const { return Q(schema_) + "." + Q(table); }

std::string PostgresDialect::NewColumnName(std::string_view logical) const {
  return Ident63("_sluice_new_" + std::string(logical));
}

std::string PostgresDialect::VersionSchema(const std::string& version) const { return schema_ + "_" + version; }

std::string PostgresDialect::LiveSchema() const { return schema_ + "_live"; }

std::string PostgresDialect::NullSafeEqual(std::string_view a, std::string_view b) const {
  return "(" + std::string(a) + ") IS NOT DISTINCT FROM (" + std::string(b) + ")";
}

bool PostgresDialect::IsVolatile(std::string_view expr) const {
  // Functions whose result differs between the backfill and a later
  // re-computation (volatile, or stable but time-dependent).
  static const std::set<std::string> kFns = {
      "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "now", "statement_timestamp",
      "transaction_timestamp", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v4", "nextval", "currval",
      "lastval", "txid_current", "pg_current_xact_id", "pg_backend_pid", "inet_client_port"};
  static const std::set<std::string> kKeywords = {"current_timestamp", "current_time", "current_date", "localtime",
                                                  "localtimestamp"};
  auto toks = sql::Tokenize(expr);
  for (size_t i = 0; i < toks.size(); ++i) {
    if (toks[i].kind != sql::Token::Kind::kIdent) continue;
    std::string l = sql::Lower(toks[i].text);
    if (kKeywords.count(l)) return true;
    if (kFns.count(l) && i + 1 < toks.size() && toks[i + 1].text == "(") return true;
  }
  return false;
}

std::string PostgresDialect::StateTable(std::string_view base) const {
  return Q(state_schema_) + "." + Q(base);
}

std::vector<db::StateColumn> PostgresDialect::AddedStateColumns() const {
  return {{"chunks", "probe_ms", "double precision"},
          {"chunks", "replica_lag_s", "double precision"},
          {"chunks", "lock_waiters", "bigint"},
          {"chunks", "app_sessions", "bigint"}};
}

std::string PostgresDialect::StateColumnsSql(std::string_view base) const {
  return "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(" +
         sql::QuoteLiteral(StateTable(base)) + ") AND attnum > 0 AND NOT attisdropped";
}

std::vector<std::string> PostgresDialect::StateSchema() const {
  auto t = [&](const char* n) { return StateTable(n); };
  return {
      "CREATE SCHEMA IF NOT EXISTS " + Q(state_schema_),
      "CREATE TABLE IF NOT EXISTS " + t("migrations") +
          " (name text PRIMARY KEY, seq bigint NOT NULL, phase text NOT NULL, version text NOT NULL, "
          "previous_version text NOT NULL DEFAULT '', plan_file text NOT NULL, plan_format text NOT NULL, plan_text "
          "text NOT NULL, schema_before text NOT NULL, tables text NOT NULL, live text NOT NULL DEFAULT 'old', "
          "backfill text NOT NULL DEFAULT 'pending', version_retired bigint NOT NULL DEFAULT 0, created_at text NOT "
          "NULL, updated_at text NOT NULL, completed_at text)",
      "CREATE TABLE IF NOT EXISTS " + t("steps") +
          " (migration text NOT NULL, phase text NOT NULL, step bigint NOT NULL, done_at text NOT NULL, PRIMARY KEY "
          "(migration, phase, step))",
      "CREATE TABLE IF NOT EXISTS " + t("checkpoints") +
          " (migration text NOT NULL, tbl text NOT NULL, worker bigint NOT NULL, last_key text, high_key text, "
          "rows_done bigint NOT NULL DEFAULT 0, rows_total bigint NOT NULL DEFAULT 0, chunks bigint NOT NULL DEFAULT "
          "0, done bigint NOT NULL DEFAULT 0, updated_at text NOT NULL, PRIMARY KEY (migration, tbl, worker))",
      "CREATE TABLE IF NOT EXISTS " + t("chunks") +
          " (migration text NOT NULL, tbl text NOT NULL, worker bigint NOT NULL, chunk bigint NOT NULL, from_key "
          "text, to_key text NOT NULL, rows bigint NOT NULL, millis double precision NOT NULL, committed_at text NOT "
          "NULL, probe_ms double precision, replica_lag_s double precision, lock_waiters bigint, app_sessions bigint, "
          "PRIMARY KEY (migration, tbl, worker, chunk))",
      "CREATE TABLE IF NOT EXISTS " + t("events") +
          " (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, migration text NOT NULL, at text NOT NULL, kind "
          "text NOT NULL, actor text NOT NULL, message text NOT NULL, details text)",
      "CREATE TABLE IF NOT EXISTS " + t("verifications") +
          " (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, migration text NOT NULL, at text NOT NULL, "
          "passed bigint NOT NULL, report text NOT NULL)",
      "CREATE TABLE IF NOT EXISTS " + t("versions") +
          " (version text PRIMARY KEY, migration text NOT NULL, setup_sql text NOT NULL, live bigint NOT NULL "
          "DEFAULT 0, created_at text NOT NULL)",
      "CREATE TABLE IF NOT EXISTS " + t("claims") +
          " (tbl text PRIMARY KEY, migration text NOT NULL, claimed_at text NOT NULL)",
      "CREATE TABLE IF NOT EXISTS " + t("recordings") +
          " (migration text PRIMARY KEY, format bigint NOT NULL, sluice_version text NOT NULL, compiled text NOT "
          "NULL, recorded_at text NOT NULL)",
      "CREATE TABLE IF NOT EXISTS " + t("control") +
          " (migration text PRIMARY KEY, paused bigint NOT NULL DEFAULT 0, max_rows_per_second double precision, "
          "chunk_target_ms bigint, workers bigint, throttle text, updated_at text NOT NULL)",
      "CREATE TABLE IF NOT EXISTS " + t("leases") +
          " (migration text PRIMARY KEY, holder text NOT NULL, started_at text NOT NULL, heartbeat_at text NOT NULL, "
          "heartbeat_ms bigint NOT NULL, interval_ms bigint NOT NULL, stopped_at text, last_error text)",
      // Rows whose `up` failed on an old-version write under on_error:
      // record (one row per row and column; a resolved row is deleted).
      "CREATE TABLE IF NOT EXISTS " + t("dual_write_failures") +
          " (migration text NOT NULL, tbl text NOT NULL, row_key text NOT NULL, col text NOT NULL, error text NOT "
          "NULL, sqlstate text NOT NULL, writer text NOT NULL, source text NOT NULL, count bigint NOT NULL DEFAULT 1, "
          "first_seen text NOT NULL, last_seen text NOT NULL, PRIMARY KEY (migration, tbl, row_key, col))",
      // The handoff documents (src/engine/history.cc): each finished
      // migration's report, archived at complete / rollback.
      "CREATE TABLE IF NOT EXISTS " + t("reports") +
          " (migration text PRIMARY KEY, at text NOT NULL, format text NOT NULL, body text NOT NULL)",
      // `sluice rehearse`: each rehearsal of a plan (its only write to the
      // source database).
      "CREATE TABLE IF NOT EXISTS " + t("rehearsals") +
          " (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, migration text NOT NULL, at text NOT NULL, "
          "passed bigint NOT NULL, report text NOT NULL)",
      // `sluice audit` (docs/audit.md): each contract audit's report, with
      // the observation window it belongs to.
      "CREATE TABLE IF NOT EXISTS " + t("audits") +
          " (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, migration text NOT NULL, at text NOT NULL, "
          "window_start text NOT NULL, json text NOT NULL)",
      // `sluice start --estimate`: the estimate recorded with the migration
      // (JSON, as `sluice estimate --json` prints it), for estimate vs actual.
      "CREATE TABLE IF NOT EXISTS " + t("estimates") + " (migration text PRIMARY KEY, at text NOT NULL, body text NOT NULL)",
  };
}

std::vector<std::string> PostgresDialect::BackfillSessionSetup() const {
  return {"SET sluice.backfill = 'on'", "SET application_name = 'sluice backfill'"};
}

// A session on a version reads the tables through the version's views (the
// first schema) and everything else the application uses — its own
// functions, types, domains, sequences, views — from the base schema, which
// comes second. The dual-write triggers read the first schema.
std::string PostgresDialect::VersionSelectHint(const std::string& version) const {
  return "SET search_path TO " + Q(VersionSchema(version)) + ", " + Q(schema_) + " (or SET sluice.version = " +
         QuoteLiteral(version) + " when queries name the schema)";
}

std::string PostgresDialect::SessionSetupSql(const std::string& version) const {
  if (version.empty()) return "SET search_path TO " + Q(schema_) + "; SET sluice.version = ''";
  if (version == "live") {
    return "SET search_path TO " + Q(LiveSchema()) + ", " + Q(schema_) + "; SET sluice.version = 'live'";
  }
  return "SET search_path TO " + Q(VersionSchema(version)) + ", " + Q(schema_) +
         "; SET sluice.version = " + QuoteLiteral(version);
}

std::string PostgresDialect::PinnedSearchPath(const std::vector<std::string>& resolved) const {
  std::vector<std::string> path = {schema_};
  for (const auto& s : resolved) {
    if (std::find(path.begin(), path.end(), s) == path.end()) path.push_back(s);
  }
  if (std::find(path.begin(), path.end(), "pg_temp") == path.end()) path.push_back("pg_temp");
  std::string out;
  for (const auto& s : path) out += (out.empty() ? "" : ", ") + Q(s);
  return out;
}

std::vector<std::string> PostgresDialect::ExpressionContextSql(const VersionSpec& version) const {
  return {"SET LOCAL search_path TO " + PinnedSearchPath(version.search_path)};
}

std::string PostgresDialect::RecordingBackfillFunction(const std::string& migration, const TableMapping& m,
                                                       const std::string& column) const {
  return Q(schema_) + "." + Q(Ident63("_sluice_dwb_" + migration + "_" + m.physical + "_" + column));
}

std::string PostgresDialect::RecordingBackfillValue(const std::string& migration, const TableMapping& m,
                                                    const Forward& f) const {
  // The UPDATE's target table as a whole-row value.
  return RecordingBackfillFunction(migration, m, f.target) + "(" + Q(m.physical) + ")";
}

std::string PostgresDialect::DualWriteTriggerName(const std::string& migration, const std::string& event) const {
  return Ident63("~sluice_dw_" + migration + "_" + sql::Lower(event));
}

// About 20 random pages of the table (TABLESAMPLE SYSTEM reads only the
// pages it picks), then `n` random rows among theirs: a spread sample for
// the cost of a few page reads, whatever the table's size.
std::string PostgresDialect::SampleKeysSql(std::string_view table, const std::vector<std::string>& key, int n) const {
  std::string cols;
  for (const auto& k : key) cols += (cols.empty() ? "" : ", ") + Q(k);
  const std::string t(table);
  return "SELECT " + cols + " FROM " + t + " TABLESAMPLE SYSTEM ((SELECT least(100, 100.0 * 20 / greatest(1, "
         "pg_relation_size(" + QuoteLiteral(t) + "::regclass) / current_setting('block_size')::int)))) ORDER BY "
         "random() LIMIT " + std::to_string(n);
}

std::string PostgresDialect::LockTimeoutSql(int64_t ms) const {
  return "SET LOCAL lock_timeout = '" + std::to_string(ms) + "ms'";
}

// Session-level (not LOCAL): it is session setup, re-applied after a
// reconnect. A statement that runs longer fails with SQLSTATE 57014 and
// "canceling statement due to statement timeout" (kAborted, see
// postgres_errors.h).
std::string PostgresDialect::StatementTimeoutSql(int64_t ms) const {
  return "SET statement_timeout = '" + std::to_string(ms < 0 ? 0 : ms) + "ms'";
}

std::string PostgresDialect::OldReadPath(const VersionSpec&, const TableMapping& m) const {
  // The previous version's views show exactly the base table's old columns
  // (its migration completed), and a `sql` operation may have created
  // tables no version schema knows: read the base table.
  return Table(m.physical);
}

std::string PostgresDialect::NewReadPath(const VersionSpec& v, const TableMapping& m) const {
  return Q(VersionSchema(v.name)) + "." + Q(m.logical);
}

std::string PostgresDialect::RowHash(const std::vector<std::string>& exprs) const {
  // Every field as "<length>:<text>" or "~" for NULL, joined by '|'.
  std::string s;
  for (size_t i = 0; i < exprs.size(); ++i) {
    std::string t = "(" + exprs[i] + ")::text";
    s += (i ? " || '|' || " : "") + std::string("coalesce(length(") + t + ")::text || ':' || " + t + ", '~')";
  }
  return "hashtextextended(" + s + ", 0)";
}

std::string PostgresDialect::TableBlocksSql() const {
  return "SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::bigint)::bigint";
}

std::string PostgresDialect::BlockRange(std::string_view table, int64_t first, std::optional<int64_t> end) const {
  // A TID range scan (PostgreSQL 14+); OFFSET 0 keeps the planner from
  // merging the key predicates of a bisection into it (an index scan over
  // the key range with the block range as a filter).
  std::string where = "ctid >= '(" + std::to_string(first) + ",0)'::tid";
  if (end) where += " AND ctid < '(" + std::to_string(*end) + ",0)'::tid";
  return "(SELECT * FROM " + std::string(table) + " WHERE " + where + " OFFSET 0) AS sluice_blocks";
}

namespace {
std::string LowerType(std::string_view type) {
  std::string t;
  for (char c : type) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto paren = t.find('(');
  if (paren != std::string::npos) t = t.substr(0, paren);
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}
}  // namespace

std::string PostgresDialect::CanonicalText(std::string_view expr, std::string_view type) const {
  // Must render every value exactly as sluice_canon() does on SQLite.
  const std::string e = "(" + std::string(expr) + ")";
  const std::string t = LowerType(type);
  if (t == "boolean" || t == "bool") return e + "::int::text";
  if (t == "numeric" || t == "decimal") return "trim_scale(" + e + ")::text";
  if (t == "real" || t == "float4" || t == "double precision" || t == "float8" || t == "float") {
    return "CASE WHEN " + e + " = trunc(" + e + ") AND abs(" + e + ") < 1e15 THEN " + e +
           "::float8::numeric::bigint::text ELSE " + e + "::float8::text END";
  }
  if (t == "bytea") return "encode(" + e + ", 'hex')";
  return e + "::text";
}

std::string PostgresDialect::PortableRowHash(const std::vector<std::string>& texts) const {
  std::string s;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = "(" + texts[i] + ")";
    s += (i ? " || '|' || " : "") + std::string("coalesce(length(") + t + ")::text || ':' || " + t + ", '~')";
  }
  if (s.empty()) s = "''";
  return "('x' || substr(md5(" + s + "), 1, 16))::bit(64)::bigint";
}

std::string PostgresDialect::AsColumnValue(std::string_view expr, std::string_view type) const {
  if (type.empty()) return std::string(expr);
  return "CAST((" + std::string(expr) + ") AS " + std::string(type) + ")";
}

std::string PostgresDialect::BinaryOrder(std::string_view expr, std::string_view type) const {
  const std::string t = LowerType(type);
  if (t == "text" || t == "varchar" || t == "character varying" || t == "character" || t == "char" ||
      t == "bpchar" || t == "name" || t == "citext") {
    return "(" + std::string(expr) + ") COLLATE \"C\"";
  }
  return std::string(expr);
}

std::string PostgresDialect::LockWaitersSql(std::string_view table) const {
  // Client sessions queued behind a lock on the table, or blocked by a
  // backfill session (a row lock shows up as a wait on the backfill's
  // transaction id, not on the table). Never sluice's own: two backfill
  // workers queue for the table's extension lock (a `Lock` wait on the
  // relation) whenever both add pages, and counting that cut an idle
  // backfill to a quarter of its pace.
  return "SELECT count(DISTINCT a.pid) FROM pg_catalog.pg_stat_activity a WHERE a.wait_event_type = 'Lock' AND "
         "a.backend_type = 'client backend' AND coalesce(a.application_name, '') NOT LIKE 'sluice %' AND ("
         "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND NOT l.granted AND l.relation = " +
         QuoteLiteral(Table(table)) +
         "::regclass) OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity b WHERE b.application_name = 'sluice "
         "backfill' AND b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid))))";
}

std::string PostgresDialect::ApplicationActivitySql() const {
  // Client sessions of every database on the server (they share its CPU
  // and disks) except sluice's own (application_name 'sluice backfill' or
  // 'sluice pid ...', and this session): running (on CPU, or waiting for a
  // lock, an LWLock, I/O or a buffer pin, not sleeping or reading from
  // their client), or done with a statement within the last second -- a
  // sampled `active` alone misses short transactions at a modest rate. A
  // session whose state this role may not see (state NULL without
  // pg_read_all_stats) counts as at work: not seeing is not idle.
  return "SELECT count(*) FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.pid <> "
         "pg_catalog.pg_backend_pid() AND coalesce(a.application_name, '') NOT LIKE 'sluice %' AND (a.state IS NULL "
         "OR (a.state = 'active' AND (a.wait_event_type IS NULL OR a.wait_event_type IN ('Lock', 'LWLock', 'IO', "
         "'BufferPin'))) OR a.state_change > pg_catalog.clock_timestamp() - interval '1 second')";
}

std::string PostgresDialect::ReplicaLagSql() const {
  // replay_lag is NULL for an idle replica that has caught up.
  return "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_catalog.pg_stat_replication";
}

std::string PostgresDialect::ReplicaOwnLagSql() const {
  // On a replica with nothing left to replay the lag is zero, however old
  // the last replayed transaction is.
  return "SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
         "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8";
}

Status PostgresDialect::CheckSupported(const Step& step) const {
  if (auto* v = std::get_if<CreateVersionStep>(&step.body)) {
    std::string s = VersionSchema(v->version.name);
    if (s.size() > 63) {
      return FailedPrecondition("the version schema name '" + s + "' is longer than 63 bytes; set a shorter "
                                "'version_schema' in the plan");
    }
  }
  return Status::Ok();
}

}  // namespace sluice::db
