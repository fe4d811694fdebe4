// PostgreSQL's rendering of sluice steps. See docs/how-it-works.md
// ("PostgreSQL").
//
// Versions are schemas of views: "<schema>_<version>" exposes the new shape
// under its logical names, with views that stay auto-updatable
// (security_invoker, column defaults carried over). "<schema>_live" is an
// alias whose views follow whichever version is live; `switch` rebuilds it
// in one transaction.
//
// Dual-write is one BEFORE trigger function per table. It decides the
// direction per session without catalog look-ups: a session is the new
// version when `sluice.version` names it, or, when that setting is empty,
// when the first schema of its search_path is the version's schema (or the
// live alias while the new version is live). New-version writes fill the old
// columns through `down` and mark the row; all other writes fill the new
// columns through `up`. Backfill sessions set `sluice.backfill = on`, which
// the triggers' WHEN clauses test before any PL/pgSQL runs. `up` and `down`
// are evaluated under a search_path pinned at start (PinnedSearchPath), set
// inside the function after the direction is read from the caller's.
//
// Locks: catalog changes of a phase run in one transaction under a short
// lock_timeout; index builds run CONCURRENTLY afterwards; constraints are
// added NOT VALID and validated at complete without blocking writers.
#pragma once

#include "db/adapter.h"

namespace sluice::db {

class PostgresDialect : public Dialect {
 public:
  PostgresDialect(std::string schema, std::string state_schema);

  std::string_view name() const override { return "postgres"; }
  std::string_view display_name() const override { return "PostgreSQL"; }
  std::string AddKeyHint(std::string_view table) const override {
    return "ALTER TABLE " + std::string(table) + " ADD PRIMARY KEY (<column>)";
  }
  bool transactional_ddl() const override { return false; }
  bool versioned_namespaces() const override { return true; }
  bool parallel_backfill() const override { return true; }
  // Short chunks: an application update that hits a row of the current
  // chunk waits for its commit, so the chunk time bounds that wait (the
  // p99 figure of docs/performance.md).
  int64_t default_chunk_target_ms() const override { return 30; }
  // Two workers when the server lets one query use two or more processes
  // (max_parallel_workers_per_gather, 2 by default: the DBA's own measure
  // of the cores a single client may take); one when it is set to 0 or 1.
  // A second worker roughly doubles an idle server's backfill rate; the
  // Pacer slows both when production suffers.
  std::string DefaultBackfillWorkersSql() const override {
    return "SELECT least(2, greatest(1, current_setting('max_parallel_workers_per_gather')::int))";
  }
  bool recreates_dependent_views() const override { return true; }
  Status CheckSupported(const Step& step) const override;
  std::vector<Statement> Render(const Step& step) const override;
  std::string Table(std::string_view table) const override;
  std::string NewColumnName(std::string_view logical) const override;
  std::string NullSafeEqual(std::string_view a, std::string_view b) const override;
  bool IsVolatile(std::string_view expr) const override;
  std::string StateTable(std::string_view base) const override;
  std::vector<std::string> StateSchema() const override;
  std::vector<db::StateColumn> AddedStateColumns() const override;
  std::string StateColumnsSql(std::string_view base) const override;
  std::string StateSetupLockSql() const override { return "SELECT pg_advisory_xact_lock(20830, 0)"; }
  std::vector<std::string> BackfillSessionSetup() const override;
  std::string EpochMillisSql() const override { return "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"; }
  std::string ReadUnreadySql(bool on) const override {
    return on ? "SET sluice.read_unready = 'on'" : "RESET sluice.read_unready";
  }
  std::vector<std::string> ExpressionContextSql(const VersionSpec& version) const override;
  // A call of `_sluice_dwb_<migration>_<table>_<column>(<table>)`, created
  // with the dual-write under on_error: record.
  std::string RecordingBackfillValue(const std::string& migration, const TableMapping& m,
                                     const Forward& f) const override;
  std::string RecordingBackfillFunction(const std::string& migration, const TableMapping& m,
                                        const std::string& column) const;
  std::string SuppressUserTriggersSql() const override { return "SET LOCAL session_replication_role = replica"; }
  std::string ReadOnlyFromHereSql() const override { return "SET LOCAL transaction_read_only = on"; }
  std::string DualWriteTriggerName(const std::string& migration, const std::string& event) const override;
  std::string SampleKeysSql(std::string_view table, const std::vector<std::string>& key, int n) const override;
  std::string VersionSelectHint(const std::string& version) const override;
  std::string SessionSetupSql(const std::string& version) const override;
  std::string LockTimeoutSql(int64_t lock_timeout_ms) const override;
  std::string StatementTimeoutSql(int64_t statement_timeout_ms) const override;
  std::string LockRowsClause() const override { return " FOR UPDATE"; }
  std::string SharedLockRowsClause() const override { return " FOR SHARE"; }
  std::string OldReadPath(const VersionSpec& version, const TableMapping& table) const override;
  std::string NewReadPath(const VersionSpec& version, const TableMapping& table) const override;
  std::string RowHash(const std::vector<std::string>& exprs) const override;
  std::string TableBlocksSql() const override;
  std::string BlockRange(std::string_view table, int64_t first, std::optional<int64_t> end) const override;
  // postgres_inverse.cc (libpg_query).
  Result<std::string> InverseOfRawSql(std::string_view sql) const override;
  std::string CanonicalText(std::string_view expr, std::string_view type) const override;
  std::string PortableRowHash(const std::vector<std::string>& canonical_texts) const override;
  std::string AsColumnValue(std::string_view expr, std::string_view type) const override;
  std::string BinaryOrder(std::string_view expr, std::string_view type) const override;
  std::string LockWaitersSql(std::string_view table) const override;
  std::string ReplicaLagSql() const override;
  std::string ApplicationActivitySql() const override;
  std::string ReplicaOwnLagSql() const override;
  // postgres_sql.cc (libpg_query): user SQL read and rewritten through
  // PostgreSQL's own parser.
  Result<std::set<std::string>> ColumnsRead(std::string_view expr) const override;
  Result<std::string> RenameColumns(std::string_view sql, SqlKind kind,
                                    const std::map<std::string, std::string>& renames) const override;
  Result<std::string> RenameIndex(std::string_view definition, std::string_view from,
                                  std::string_view to) const override;
  // postgres_locks.cc: the lock each statement takes (by its command).
  LockInfo LockOf(const Step& step, const Statement& st) const override;
  std::string EstimatedRowsSql(std::string_view table) const override;
  std::string TableBytesSql(std::string_view table) const override;
  // ColumnsRead without a dialect object, for the renderer.
  static Result<std::set<std::string>> ExpressionColumns(std::string_view expr);
  // `name` as PostgreSQL's quote_identifier would write it: bare when it is
  // a lower-case identifier that is not a reserved word, quoted otherwise.
  static std::string QuoteIfNeeded(std::string_view name);

  const std::string& schema() const { return schema_; }
  const std::string& state_schema() const { return state_schema_; }
  std::string VersionSchema(const std::string& version) const;
  std::string LiveSchema() const;
  // The search_path the dual-write functions pin for `up` and `down`: the
  // migrated schema, then `resolved` (what the starting role's search_path
  // resolved to, VersionSpec::search_path) without repeats, then pg_temp,
  // so a session's temporary tables never shadow the application's.
  // pg_catalog keeps its implicit place (first) unless `resolved` names it.
  // As SET/set_config text: "public", "app", "pg_temp".
  std::string PinnedSearchPath(const std::vector<std::string>& resolved) const;
  // PostgreSQL truncates identifiers to 63 bytes; longer generated names
  // are shortened with a hash suffix so they stay distinct.
  static std::string Ident63(const std::string& name);

 private:
  std::string schema_;
  std::string state_schema_;
};

}  // namespace sluice::db
