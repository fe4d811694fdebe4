// SQLite's rendering of sluice steps. See docs/how-it-works.md ("SQLite").
//
// SQLite has one namespace per database file, so versions are reached like
// this:
//   * the old version keeps using the base tables under their old names;
//     columns added by a migration are visible to it but never required;
//   * each new version is a set of persistent views named "<table>@<version>"
//     whose INSTEAD OF triggers write the base table, filling the old columns
//     through `down`;
//   * an application connection selects a version by running the version's
//     setup SQL (stored in _sluice_versions), which creates TEMP views named
//     like the logical tables; TEMP objects shadow main ones for unqualified
//     names, so the application's SQL is unchanged;
//   * writes through the old version reach the new columns through AFTER
//     triggers that evaluate `up`; a row in _sluice_marker, present only
//     while a new-version trigger runs (SQLite has a single writer), keeps
//     the two directions from echoing each other.
#pragma once

#include "db/adapter.h"

namespace sluice::db {

class SqliteDialect : public Dialect {
 public:
  std::string_view name() const override { return "sqlite"; }
  std::string_view display_name() const override { return "SQLite"; }
  bool transactional_ddl() const override { return true; }
  bool versioned_namespaces() const override { return false; }
  bool parallel_backfill() const override { return false; }
  bool drops_columns_named_by_checks() const override { return false; }
  bool drops_inline_unique_columns() const override { return false; }
  bool sets_defaults_after_add() const override { return false; }
  std::string CopiedConstraintName(std::string_view name) const override { return std::string(name); }
  std::string AddKeyHint(std::string_view table) const override {
    return "CREATE UNIQUE INDEX " + std::string(table) + "_key ON " + std::string(table) +
           "(<not-null column>) (SQLite cannot add a primary key to an existing table)";
  }
  // The AFTER triggers of the dual-write run an UPDATE of the row.
  bool dual_write_updates_rows() const override { return true; }
  Status CheckSupported(const Step& step) const override;
  std::vector<Statement> Render(const Step& step) const override;
  std::string Table(std::string_view table) const override { return Quote(table); }
  std::string NullSafeEqual(std::string_view a, std::string_view b) const override;
  bool IsVolatile(std::string_view expr) const override;
  std::string StateTable(std::string_view base) const override;
  std::vector<std::string> StateSchema() const override;
  std::vector<db::StateColumn> AddedStateColumns() const override;
  std::string StateColumnsSql(std::string_view base) const override;
  std::string EpochMillisSql() const override {
    return "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
  }
  std::string VersionSelectHint(const std::string& version) const override;
  std::string StatementTimeoutSql(int64_t statement_timeout_ms) const override;
  std::string RowHash(const std::vector<std::string>& exprs) const override;
  std::string CanonicalText(std::string_view expr, std::string_view type) const override;
  std::string BinaryOrder(std::string_view expr, std::string_view type) const override;
  std::string PortableRowHash(const std::vector<std::string>& canonical_texts) const override;
  std::string OldReadPath(const VersionSpec& version, const TableMapping& table) const override;
  std::string NewReadPath(const VersionSpec& version, const TableMapping& table) const override;
  // sqlite_sql.cc: user SQL read and rewritten by SQLite's tokenizer rules.
  Result<std::set<std::string>> ColumnsRead(std::string_view expr) const override;
  std::string ColumnKey(std::string_view column) const override;
  Result<std::string> RenameColumns(std::string_view sql, SqlKind kind,
                                    const std::map<std::string, std::string>& renames) const override;
  Result<std::string> RenameIndex(std::string_view definition, std::string_view from,
                                  std::string_view to) const override;
  // Every statement takes the database's one write lock.
  LockInfo LockOf(const Step& step, const Statement& st) const override;

  // Name of the persistent view of `table` in `version`.
  static std::string VersionView(const std::string& table, const std::string& version);
  // The SQL an application connection runs to use `version` (TEMP views).
  std::string SessionSetup(const VersionSpec& version, bool completed) const;
};

}  // namespace sluice::db
