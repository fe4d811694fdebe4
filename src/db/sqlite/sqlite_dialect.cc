#include "db/sqlite/sqlite_dialect.h"

#include <algorithm>
#include <set>

#include "common/sql_text.h"
#include "db/sqlite/sqlite_lexer.h"

namespace sluice::db {
namespace {

using sql::QuoteIdent;
using sql::QuoteLiteral;

std::string Q(std::string_view s) { return QuoteIdent(s); }

template <typename T, typename F>
std::string JoinMap(const std::vector<T>& v, F&& f, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += f(v[i]);
  }
  return out;
}

// A default SQLite accepts in ALTER TABLE ADD COLUMN: a literal, NULL,
// TRUE/FALSE or a signed number (no expression, no CURRENT_*).
bool IsConstantDefault(std::string_view expr) {
  using sqlite::TokenKind;
  auto toks = sqlite::Significant(expr);
  if (toks.empty()) return false;
  size_t i = 0;
  if (toks[0].kind == TokenKind::kOperator && (toks[0].text == "-" || toks[0].text == "+")) i = 1;
  if (toks.size() != i + 1) return false;
  const auto& t = toks[i];
  if (t.kind == TokenKind::kString || t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat ||
      t.kind == TokenKind::kBlob) {
    return true;
  }
  if (t.kind == TokenKind::kId || t.kind == TokenKind::kKeyword) {
    std::string l = sql::Lower(t.text);
    return l == "null" || l == "true" || l == "false";
  }
  return false;
}

std::string DefaultClause(const std::string& expr) {
  return IsConstantDefault(expr) ? " DEFAULT " + expr : " DEFAULT (" + expr + ")";
}

std::string FkClause(const ForeignKeySpec& fk) {
  std::string s = " REFERENCES " + Q(fk.ref_table);
  if (!fk.ref_columns.empty()) s += "(" + JoinMap(fk.ref_columns, Q) + ")";
  if (fk.on_delete != "NO ACTION") s += " ON DELETE " + fk.on_delete;
  if (fk.on_update != "NO ACTION") s += " ON UPDATE " + fk.on_update;
  if (fk.deferrable) s += fk.initially_deferred ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE INITIALLY IMMEDIATE";
  return s;
}

// Marker left in a column definition where NOT NULL goes at complete.
std::string NotNullMarker(const std::string& guard) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : guard) h = (h ^ c) * 1099511628211ull;
  char buf[32];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string("/*sluice-not-null:") + buf + "*/";
}

std::string ColumnDef(const ColumnSpec& c, bool in_create) {
  std::string s = Q(c.name) + (c.type.empty() ? "" : " " + c.type);
  if (!c.not_null_guard.empty()) s += " " + NotNullMarker(c.not_null_guard);
  if (c.not_null) s += " NOT NULL";
  if (in_create && c.pk) s += " PRIMARY KEY";
  if (in_create && c.unique) s += " UNIQUE";
  if (c.default_expr) s += DefaultClause(*c.default_expr);
  if (c.generated_expr) s += " GENERATED ALWAYS AS (" + *c.generated_expr + ") STORED";
  for (const auto& chk : c.checks) s += " CONSTRAINT " + Q(chk.name) + " CHECK (" + chk.expr + ")";
  for (const auto& fk : c.references) s += " CONSTRAINT " + Q(fk.name) + FkClause(fk);
  return s;
}

std::string KeyMatch(const std::vector<std::string>& physical, const std::vector<std::string>& other,
                     const std::string& prefix) {
  std::string out;
  for (size_t i = 0; i < physical.size(); ++i) {
    if (i) out += " AND ";
    out += Q(physical[i]) + " = " + prefix + "." + Q(other[i]);
  }
  return out;
}

bool Guarded(const TableMapping& m, const std::string& physical) {
  return std::find(m.not_null_guards.begin(), m.not_null_guards.end(), physical) != m.not_null_guards.end();
}

std::string TriggerName(const std::string& migration, const std::string& table, const std::string& suffix) {
  return "_sluice_" + migration + "_" + table + "_" + suffix;
}

// Logical names of the key columns in the new version.
std::vector<std::string> LogicalKey(const TableMapping& m) {
  std::vector<std::string> out;
  for (const auto& k : m.key) {
    std::string name = k;
    for (const auto& c : m.columns) {
      if (c.physical == k) name = c.logical;
    }
    out.push_back(name);
  }
  return out;
}

// "(SELECT NEW."a" AS "a", ...)": the new row under its logical names, with
// defaults applied, so `down` and defaults can be evaluated over it.
//
// With `fill_base` (updates): a new column the statement left alone, on a
// row no new-version write has touched yet (the backfill may not have
// reached it), reads as up(the stored row), so `down` never turns an empty
// new column into an empty old one.
std::string NewRowSource(const TableMapping& m, bool apply_defaults, const std::string& fill_base = "") {
  std::string s = "(SELECT ";
  for (size_t i = 0; i < m.columns.size(); ++i) {
    const auto& c = m.columns[i];
    if (i) s += ", ";
    std::string v = "NEW." + Q(c.logical);
    if (apply_defaults && c.default_expr) v = "coalesce(" + v + ", " + *c.default_expr + ")";
    if (!fill_base.empty() && !m.write_flag.empty()) {
      for (const auto& f : m.forward) {
        if (f.target != c.physical) continue;
        std::string row = " FROM " + Q(fill_base) + " WHERE " + KeyMatch(m.key, LogicalKey(m), "OLD");
        v = "CASE WHEN NEW." + Q(c.logical) + " IS OLD." + Q(c.logical) + " AND EXISTS (SELECT 1" + row + " AND " +
            Q(m.write_flag) + " IS NULL) THEN (SELECT " + sql::ScalarExpression(f.expr) + row + ") ELSE " + v + " END";
      }
    }
    s += v + " AS " + Q(c.logical);
  }
  return s + ")";
}

// INSTEAD OF triggers that make a version view writable. With `final` the
// mapping is the completed one (physical == logical, no old columns left).
std::vector<Statement> ViewTriggers(const VersionSpec& v, const TableMapping& m, bool final) {
  std::vector<Statement> out;
  const std::string view = SqliteDialect::VersionView(m.logical, v.name);
  const std::string base = final ? m.logical : m.physical;
  const bool marker = !final && !m.forward.empty();
  const std::vector<Backward> backward = final ? std::vector<Backward>{} : m.backward;
  std::vector<std::string> targets, values;
  for (const auto& c : m.columns) {
    targets.push_back(Q(final ? c.logical : c.physical));
    values.push_back(Q(c.logical));
  }
  for (const auto& b : backward) {
    targets.push_back(Q(b.target));
    values.push_back(sql::ScalarExpression(b.expr));
  }
  if (!final && !m.write_flag.empty()) {
    targets.push_back(Q(m.write_flag));
    values.push_back("1");
  }
  std::string mark = marker ? "INSERT INTO \"_sluice_marker\"(migration) VALUES (" + QuoteLiteral(v.migration) + "); " : "";
  std::string unmark = marker ? " DELETE FROM \"_sluice_marker\";" : "";
  std::string cols, vals;
  for (size_t i = 0; i < targets.size(); ++i) {
    cols += (i ? ", " : "") + targets[i];
    vals += (i ? ", " : "") + values[i];
  }
  std::vector<std::string> key_phys = m.key;
  if (final) key_phys = LogicalKey(m);
  out.push_back({"CREATE TRIGGER " + Q(view + "_insert") + " INSTEAD OF INSERT ON " + Q(view) + " BEGIN " + mark +
                 "INSERT INTO " + Q(base) + " (" + cols + ") SELECT " + vals + " FROM " + NewRowSource(m, true) +
                 ";" + unmark + " END"});
  out.push_back({"CREATE TRIGGER " + Q(view + "_update") + " INSTEAD OF UPDATE ON " + Q(view) + " BEGIN " + mark +
                 "UPDATE " + Q(base) + " SET (" + cols + ") = (SELECT " + vals + " FROM " + NewRowSource(m, false, final ? "" : base) +
                 ") WHERE " + KeyMatch(key_phys, LogicalKey(m), "OLD") + ";" + unmark + " END"});
  out.push_back({"CREATE TRIGGER " + Q(view + "_delete") + " INSTEAD OF DELETE ON " + Q(view) + " BEGIN DELETE FROM " +
                 Q(base) + " WHERE " + KeyMatch(key_phys, LogicalKey(m), "OLD") + "; END"});
  return out;
}

std::vector<Statement> DropViewTriggers(const VersionSpec& v, const TableMapping& m) {
  const std::string view = SqliteDialect::VersionView(m.logical, v.name);
  return {{"DROP TRIGGER IF EXISTS " + Q(view + "_insert")},
          {"DROP TRIGGER IF EXISTS " + Q(view + "_update")},
          {"DROP TRIGGER IF EXISTS " + Q(view + "_delete")}};
}

bool NeedsView(const TableMapping& m) { return m.changed && !m.created; }

std::string IndexSql(const IndexSpec& idx) {
  if (!idx.raw_definition.empty()) return idx.raw_definition;
  std::string s = std::string("CREATE ") + (idx.unique ? "UNIQUE " : "") + "INDEX " + Q(idx.name) + " ON " +
                  Q(idx.table) + " (";
  for (size_t i = 0; i < idx.elements.size(); ++i) {
    const auto& e = idx.elements[i];
    if (i) s += ", ";
    s += Q(e.column);
    if (!e.collate.empty()) s += " COLLATE " + Q(e.collate);
    if (!e.sort.empty()) s += " " + e.sort;
  }
  s += ")";
  if (!idx.predicate.empty()) s += " WHERE " + idx.predicate;
  return s;
}

struct Renderer {
  const SqliteDialect& d;
  std::vector<Statement> out;

  void Sql(std::string s) { out.push_back({std::move(s)}); }

  void operator()(const CreateTableStep& s) {
    std::vector<std::string> parts;
    int pks = 0;
    for (const auto& c : s.columns) pks += c.pk ? 1 : 0;
    for (auto c : s.columns) {
      if (pks > 1) c.pk = false;
      if (c.pk) c.not_null = false;  // implied; keeps INTEGER PRIMARY KEY a rowid alias
      parts.push_back(ColumnDef(c, true));
    }
    if (pks > 1) {
      std::vector<std::string> pk;
      for (const auto& c : s.columns) {
        if (c.pk) pk.push_back(Q(c.name));
      }
      std::string j;
      for (size_t i = 0; i < pk.size(); ++i) j += (i ? ", " : "") + pk[i];
      parts.push_back("PRIMARY KEY (" + j + ")");
    }
    for (const auto& con : s.constraints) {
      std::string cols = JoinMap(con.columns, Q);
      std::string p = "CONSTRAINT " + Q(con.name) + " ";
      switch (con.type) {
        case TableConstraintSpec::Type::kPrimaryKey: p += "PRIMARY KEY (" + cols + ")"; break;
        case TableConstraintSpec::Type::kUnique: p += "UNIQUE (" + cols + ")"; break;
        case TableConstraintSpec::Type::kCheck: p += "CHECK (" + con.check + ")"; break;
        case TableConstraintSpec::Type::kForeignKey: p += "FOREIGN KEY (" + cols + ")" + FkClause(*con.fk); break;
        case TableConstraintSpec::Type::kExclude: break;  // refused by CheckSupported
      }
      parts.push_back(p);
    }
    std::string body;
    for (size_t i = 0; i < parts.size(); ++i) body += (i ? ", " : "") + parts[i];
    Sql("CREATE TABLE " + Q(s.table) + " (" + body + ")");
  }
  void operator()(const DropTableStep& s) { Sql("DROP TABLE IF EXISTS " + Q(s.table)); }
  void operator()(const RenameTableStep& s) { Sql("ALTER TABLE " + Q(s.from) + " RENAME TO " + Q(s.to)); }
  void operator()(const AddColumnStep& s) { Sql("ALTER TABLE " + Q(s.table) + " ADD COLUMN " + ColumnDef(s.column, false)); }
  void operator()(const DropColumnStep& s) { Sql("ALTER TABLE " + Q(s.table) + " DROP COLUMN " + Q(s.column)); }
  void operator()(const RenameColumnStep& s) {
    Sql("ALTER TABLE " + Q(s.table) + " RENAME COLUMN " + Q(s.from) + " TO " + Q(s.to));
  }
  void operator()(const SetDefaultStep&) {}
  void operator()(const SetCommentStep&) {}
  void operator()(const AddNotNullGuardStep& s) {
    std::string raise = "SELECT RAISE(ABORT, " + QuoteLiteral("NOT NULL constraint failed: " + s.table + "." + s.column) + ");";
    // recorded (on_error: record): only writes through the new version (the
    // marker row is there) are refused; the old version's NULLs, set by the
    // dual-write's nested UPDATE, are recorded by it instead.
    Sql("CREATE TRIGGER " + Q(s.guard_name + "_update") + " AFTER UPDATE OF " + Q(s.column) + " ON " + Q(s.table) +
        " WHEN NEW." + Q(s.column) + " IS NULL" + (s.recorded ? " AND EXISTS (SELECT 1 FROM \"_sluice_marker\")" : "") +
        " BEGIN " + raise + " END");
    Sql("CREATE TRIGGER " + Q(s.guard_name + "_insert") + " AFTER INSERT ON " + Q(s.table) + " WHEN NEW." +
        Q(s.column) + " IS NULL AND EXISTS (SELECT 1 FROM \"_sluice_marker\") BEGIN " + raise + " END");
  }
  void operator()(const DropNotNullGuardStep& s) {
    Sql("DROP TRIGGER IF EXISTS " + Q(s.guard_name + "_update"));
    Sql("DROP TRIGGER IF EXISTS " + Q(s.guard_name + "_insert"));
  }
  void operator()(const FinalizeNotNullStep& s) {
    Statement check;
    check.sql = "DROP TRIGGER IF EXISTS " + Q(s.guard_name + "_update");
    check.guard_sql = "SELECT 1 FROM " + Q(s.table) + " WHERE " + Q(s.column) + " IS NULL LIMIT 1";
    check.guard_message = "column " + s.table + "." + s.column +
                          " still has NULL values, so it cannot become NOT NULL; finish the backfill or fix those "
                          "rows (SELECT * FROM " + Q(s.table) + " WHERE " + Q(s.column) + " IS NULL)";
    out.push_back(check);
    Sql("DROP TRIGGER IF EXISTS " + Q(s.guard_name + "_insert"));
    Statement edit;
    std::string marker = NotNullMarker(s.guard_name);
    edit.sql = "UPDATE sqlite_schema SET sql = replace(sql, " + QuoteLiteral(marker) +
               ", 'NOT NULL') WHERE type = 'table' AND name = " + QuoteLiteral(s.table) +
               " AND instr(sql, " + QuoteLiteral(marker) + ") > 0";
    edit.schema_edit = true;
    out.push_back(edit);
  }
  void operator()(const DropNotNullStep&) {}
  void operator()(const AddCheckStep&) {}
  void operator()(const AddForeignKeyStep&) {}
  void operator()(const ValidateConstraintStep& s) {
    Statement v;
    v.sql = "SELECT 1";
    v.guard_sql = "SELECT 1 FROM pragma_foreign_key_check(" + QuoteLiteral(s.table) + ") LIMIT 1";
    v.guard_message = "table " + s.table + " has rows that violate a foreign key (see PRAGMA foreign_key_check(" +
                      QuoteLiteral(s.table) + ")); constraint " + s.name + " cannot be validated";
    out.push_back(v);
  }
  void operator()(const CreateIndexStep& s) { Sql(IndexSql(s.index)); }
  void operator()(const DropIndexStep& s) { Sql("DROP INDEX IF EXISTS " + Q(s.name)); }
  void operator()(const RenameIndexStep& s) {
    // SQLite has no ALTER INDEX ... RENAME: rebuild under the final name.
    Sql("DROP INDEX IF EXISTS " + Q(s.from));
    Sql(s.rebuild_sql);
  }
  void operator()(const AttachIndexConstraintStep&) {}  // a unique index is the constraint
  void operator()(const AddTableConstraintStep&) {}
  void operator()(const DropConstraintStep&) {}
  void operator()(const RenameConstraintStep&) {}
  void operator()(const SetReplicaIdentityStep&) {}
  void operator()(const RawSqlStep& s) { Sql(s.sql); }
  void operator()(const RecordedSqlStep& s) { out.insert(out.end(), s.statements.begin(), s.statements.end()); }
  void operator()(const CreateDualWriteStep& s) {
    const TableMapping& m = s.table;
    // Writes through the old version: new := up(row), after the row is
    // written, skipped while a new-version trigger holds the marker.
    // An old-version write also clears the new-version mark on the row.
    const std::string unflag = m.write_flag.empty() ? "" : ", " + Q(m.write_flag) + " = NULL";
    std::string all;
    for (size_t i = 0; i < m.forward.size(); ++i) {
      all += (i ? ", " : "") + Q(m.forward[i].target) + " = " + sql::ScalarExpression(m.forward[i].expr);
    }
    all += unflag;
    const std::string when = " WHEN NOT EXISTS (SELECT 1 FROM \"_sluice_marker\")";
    const std::string where = " WHERE " + KeyMatch(m.key, m.key, "NEW");
    // on_error: record. SQLite triggers cannot catch an error, so an `up`
    // that raises still fails the old write (docs/limits.md). What they can
    // handle: `up` yielding NULL for a guarded NOT NULL column takes the
    // fallback, and the row is recorded (resolved once it converts).
    auto value = [&](const Forward& f) {
      std::string up = sql::ScalarExpression(f.expr);
      if (!m.record_failures || f.fallback.empty() || !Guarded(m, f.target)) return up;
      return "CASE WHEN " + up + " IS NULL THEN " + sql::ScalarExpression(f.fallback) + " ELSE " + up + " END";
    };
    std::string key_json;
    for (const auto& k : m.key) key_json += (key_json.empty() ? "" : ", ") + ("NEW." + Q(k));
    key_json = "json_array(" + key_json + ")";
    auto bookkeeping = [&](const Forward& f) -> std::string {
      if (!m.record_failures || !Guarded(m, f.target)) return "";
      const std::string up = sql::ScalarExpression(f.expr);
      const std::string now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
      const std::string failures = "\"_sluice_dual_write_failures\"";
      const std::string mig = QuoteLiteral(s.migration), tbl = QuoteLiteral(m.physical), col = QuoteLiteral(f.target);
      return " INSERT INTO " + failures +
             " (migration, tbl, row_key, col, error, sqlstate, writer, source, count, first_seen, last_seen) SELECT " +
             mig + ", " + tbl + ", " + key_json + ", " + col + ", " +
             QuoteLiteral("up yielded NULL for column " + f.target + ", which becomes NOT NULL") +
             ", 'SQLITE_CONSTRAINT_NOTNULL', 'old', 'dual-write', 1, " + now + ", " + now + " FROM " + Q(m.physical) +
             where + " AND " + up + " IS NULL ON CONFLICT (migration, tbl, row_key, col) DO UPDATE SET count = count + "
             "1, last_seen = excluded.last_seen; DELETE FROM " + failures + " WHERE migration = " + mig +
             " AND tbl = " + tbl + " AND row_key = " + key_json + " AND col = " + col + " AND EXISTS (SELECT 1 FROM " +
             Q(m.physical) + where + " AND " + up + " IS NOT NULL);";
    };
    if (m.record_failures) {
      all.clear();
      for (size_t i = 0; i < m.forward.size(); ++i) {
        all += (i ? ", " : "") + Q(m.forward[i].target) + " = " + value(m.forward[i]);
      }
      all += unflag;
    }
    if (!m.forward.empty()) {
      std::string book;
      for (const auto& f : m.forward) book += bookkeeping(f);
      Sql("CREATE TRIGGER " + Q(TriggerName(s.migration, m.physical, "insert")) + " AFTER INSERT ON " + Q(m.physical) +
          when + " BEGIN UPDATE " + Q(m.physical) + " SET " + all + where + ";" + book + " END");
    }
    // One UPDATE trigger per new column, firing only when a column its `up`
    // reads is written: statements that touch other columns cost nothing.
    for (size_t i = 0; i < m.forward.size(); ++i) {
      const auto& f = m.forward[i];
      if (f.reads.empty()) continue;
      std::string of;
      for (const auto& r : f.reads) of += (of.empty() ? "" : ", ") + Q(r);
      Sql("CREATE TRIGGER " + Q(TriggerName(s.migration, m.physical, "update_" + std::to_string(i))) +
          " AFTER UPDATE OF " + of + " ON " + Q(m.physical) + when + " BEGIN UPDATE " + Q(m.physical) + " SET " +
          Q(f.target) + " = " + value(f) + unflag + where + ";" + bookkeeping(f) + " END");
    }
  }
  void operator()(const DropDualWriteStep& s) {
    const TableMapping& m = s.table;
    if (m.record_failures) {
      Sql("DELETE FROM \"_sluice_dual_write_failures\" WHERE migration = " + QuoteLiteral(s.migration) +
          " AND tbl = " + QuoteLiteral(m.physical));
    }
    Sql("DROP TRIGGER IF EXISTS " + Q(TriggerName(s.migration, m.physical, "insert")));
    for (size_t i = 0; i < m.forward.size(); ++i) {
      Sql("DROP TRIGGER IF EXISTS " + Q(TriggerName(s.migration, m.physical, "update_" + std::to_string(i))));
    }
    // At complete: the view's update trigger reads old columns (to fill
    // untouched new ones); FinalizeVersion recreates it for the final names.
    if (!s.version.empty() && NeedsView(m)) {
      Sql("DROP TRIGGER IF EXISTS " + Q(SqliteDialect::VersionView(m.logical, s.version) + "_update"));
    }
  }
  void operator()(const CreateVersionStep& s) {
    for (const auto& m : s.version.tables) {
      if (!NeedsView(m)) continue;
      std::string sel;
      for (size_t i = 0; i < m.columns.size(); ++i) {
        sel += (i ? ", " : "") + Q(m.columns[i].physical) + " AS " + Q(m.columns[i].logical);
      }
      Sql("CREATE VIEW " + Q(SqliteDialect::VersionView(m.logical, s.version.name)) + " AS SELECT " + sel +
          " FROM " + Q(m.physical));
      for (auto& st : ViewTriggers(s.version, m, false)) out.push_back(st);
    }
    // Until the backfill is done the setup SQL is withheld (applications
    // reach a version only through it): a placeholder that fails, naming
    // why, stands in its place; VersionReadyStep stores the real one.
    const std::string setup =
        s.version.needs_backfill() ? NotReadySetup(s.version) : d.SessionSetup(s.version, false);
    Sql("INSERT INTO \"_sluice_versions\"(version, migration, setup_sql, live, created_at) VALUES (" +
        QuoteLiteral(s.version.name) + ", " + QuoteLiteral(s.version.migration) + ", " + QuoteLiteral(setup) +
        ", 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT(version) DO UPDATE SET setup_sql = "
        "excluded.setup_sql, migration = excluded.migration");
  }
  static std::string NotReadySetup(const VersionSpec& v) {
    const std::string why = "sluice: version " + v.name + " is not ready: its backfill is not done; run `sluice backfill " +
                            v.migration + "`";
    return "-- " + why + "\nSELECT * FROM " + Q(why) + ";\n";
  }
  void operator()(const VersionReadyStep& s) {
    Sql("UPDATE \"_sluice_versions\" SET setup_sql = " + QuoteLiteral(d.SessionSetup(s.version, false)) +
        " WHERE version = " + QuoteLiteral(s.version.name));
  }
  void operator()(const FinalizeVersionStep& s) {
    // The view text already follows the renames of complete; its triggers
    // are recreated for the final names, without `down`.
    for (const auto& m : s.version.tables) {
      if (!NeedsView(m)) continue;
      for (auto& st : DropViewTriggers(s.version, m)) out.push_back(st);
      for (auto& st : ViewTriggers(s.version, m, true)) out.push_back(st);
    }
    Sql("UPDATE \"_sluice_versions\" SET setup_sql = " + QuoteLiteral(d.SessionSetup(s.version, true)) +
        " WHERE version = " + QuoteLiteral(s.version.name));
  }
  void operator()(const SetLiveStep& s) {
    Sql("UPDATE \"_sluice_versions\" SET live = (version = " + QuoteLiteral(s.version) + ")");
  }
  // SQLite versions have views only for the tables they migrate.
  void operator()(const RefreshVersionViewsStep&) {}
  // Only PostgreSQL has these (recreates_dependent_views, sequences, alias
  // and version schemas); SQLite compiles none of them.
  void operator()(const SaveDependentViewsStep&) {}
  void operator()(const RestoreDependentViewsStep&) {}
  void operator()(const SetSequenceOwnerStep&) {}
  void operator()(const UnpinViewsStep&) {}
  // `live` before the first switch is the base tables (VersionSetupSql).
  void operator()(const CreateLiveAliasStep&) {}
  void operator()(const DropLiveAliasStep&) {}
  void operator()(const DropVersionStep& s) {
    for (const auto& m : s.version.tables) {
      if (!NeedsView(m)) continue;
      for (auto& st : DropViewTriggers(s.version, m)) out.push_back(st);
      Sql("DROP VIEW IF EXISTS " + Q(SqliteDialect::VersionView(m.logical, s.version.name)));
    }
    Sql("DELETE FROM \"_sluice_versions\" WHERE version = " + QuoteLiteral(s.version.name));
  }
};

}  // namespace

std::string SqliteDialect::VersionView(const std::string& table, const std::string& version) {
  return table + "@" + version;
}

std::string SqliteDialect::SessionSetup(const VersionSpec& v, bool completed) const {
  std::string s = "-- sluice: use version " + v.name + " on this connection\n";
  for (const auto& m : v.tables) {
    if (!NeedsView(m)) continue;
    s += "DROP VIEW IF EXISTS temp." + Q(m.logical) + ";\n";
  }
  if (completed) return s;  // the base tables have the new shape now
  for (const auto& m : v.tables) {
    if (!NeedsView(m)) continue;
    const std::string view = VersionView(m.logical, v.name);
    std::vector<std::string> cols;
    for (const auto& c : m.columns) cols.push_back(c.logical);
    std::string names = JoinMap(cols, Q);
    std::string news = JoinMap(cols, [](const std::string& c) { return "NEW." + Q(c); });
    std::string sets = JoinMap(cols, [](const std::string& c) { return Q(c) + " = NEW." + Q(c); });
    std::vector<std::string> key = LogicalKey(m);
    s += "CREATE TEMP VIEW " + Q(m.logical) + " AS SELECT * FROM main." + Q(view) + ";\n";
    s += "CREATE TEMP TRIGGER " + Q(view + "_session_insert") + " INSTEAD OF INSERT ON " + Q(m.logical) +
         " BEGIN INSERT INTO " + Q(view) + " (" + names + ") VALUES (" + news + "); END;\n";
    s += "CREATE TEMP TRIGGER " + Q(view + "_session_update") + " INSTEAD OF UPDATE ON " + Q(m.logical) +
         " BEGIN UPDATE " + Q(view) + " SET " + sets + " WHERE " + KeyMatch(key, key, "OLD") + "; END;\n";
    s += "CREATE TEMP TRIGGER " + Q(view + "_session_delete") + " INSTEAD OF DELETE ON " + Q(m.logical) +
         " BEGIN DELETE FROM " + Q(view) + " WHERE " + KeyMatch(key, key, "OLD") + "; END;\n";
  }
  return s;
}

Status SqliteDialect::CheckSupported(const Step& step) const {
  auto refuse = [](std::string why) { return FailedPrecondition(std::move(why)); };
  auto check_column = [&](const ColumnSpec& c, bool in_create) -> Status {
    if (c.comment) return refuse("SQLite has no column comments; remove 'comment' from column '" + c.name + "'");
    if (c.identity) {
      return refuse("SQLite has no identity columns; declare '" + c.name + "' as INTEGER with pk: true instead");
    }
    if (!in_create && c.default_expr && !IsConstantDefault(*c.default_expr)) {
      return refuse("SQLite can only add a column whose default is a constant; '" + c.name + "' has default " +
                    *c.default_expr);
    }
    if (!in_create && c.generated_expr) return refuse("SQLite cannot add a stored generated column to a table");
    for (const auto& fk : c.references) {
      if (!fk.on_delete_set_columns.empty()) return refuse("SQLite has no ON DELETE SET NULL (columns)");
    }
    return Status::Ok();
  };
  return std::visit(
      [&](const auto& s) -> Status {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, CreateTableStep>) {
          if (s.comment) return refuse("SQLite has no table comments; remove 'comment'");
          for (const auto& c : s.columns) SLUICE_RETURN_IF_ERROR(check_column(c, true));
          for (const auto& con : s.constraints) {
            if (con.type == TableConstraintSpec::Type::kExclude) return refuse("SQLite has no exclusion constraints");
            if (con.nulls_not_distinct) return refuse("SQLite has no NULLS NOT DISTINCT");
            if (!con.include.empty() || !con.storage_parameters.empty() || !con.tablespace.empty()) {
              return refuse("SQLite has no index parameters (include_columns, storage_parameters, tablespace)");
            }
            if (con.fk && !con.fk->on_delete_set_columns.empty()) {
              return refuse("SQLite has no ON DELETE SET NULL (columns)");
            }
          }
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, AddColumnStep>) {
          return check_column(s.column, false);
        } else if constexpr (std::is_same_v<T, SetDefaultStep>) {
          return refuse("SQLite cannot change the default of an existing column without rebuilding the table");
        } else if constexpr (std::is_same_v<T, SetCommentStep>) {
          return refuse("SQLite has no comments on tables or columns");
        } else if constexpr (std::is_same_v<T, AddCheckStep>) {
          return refuse("SQLite cannot add a CHECK constraint to an existing table");
        } else if constexpr (std::is_same_v<T, AddForeignKeyStep>) {
          return refuse("SQLite cannot add a multi-column foreign key to an existing table");
        } else if constexpr (std::is_same_v<T, CreateIndexStep>) {
          const auto& i = s.index;
          if (!i.method.empty() && i.method != "btree") return refuse("SQLite has only b-tree indexes (method: " + i.method + ")");
          if (!i.storage_parameters.empty()) return refuse("SQLite indexes have no storage parameters");
          if (!i.tablespace.empty()) return refuse("SQLite has no tablespaces");
          if (!i.include.empty()) return refuse("SQLite indexes cannot INCLUDE columns");
          if (i.nulls_not_distinct) return refuse("SQLite has no NULLS NOT DISTINCT");
          for (const auto& e : i.elements) {
            if (!e.opclass.empty()) return refuse("SQLite has no operator classes (opclass " + e.opclass + ")");
            if (!e.nulls.empty()) return refuse("SQLite indexes cannot order NULLS " + e.nulls);
          }
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, SetSequenceOwnerStep> || std::is_same_v<T, SaveDependentViewsStep>) {
          return refuse("SQLite has no sequences and no views to recreate");
        } else if constexpr (std::is_same_v<T, AttachIndexConstraintStep>) {
          if (s.primary_key) return refuse("SQLite cannot add a primary key to an existing table");
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, AddTableConstraintStep>) {
          return refuse("SQLite cannot add this constraint to an existing table");
        } else if constexpr (std::is_same_v<T, RenameConstraintStep>) {
          return refuse("SQLite constraint names live only in the table's CREATE text; they cannot be renamed");
        } else if constexpr (std::is_same_v<T, SetReplicaIdentityStep>) {
          return refuse("replica identity is a PostgreSQL concept");
        } else if constexpr (std::is_same_v<T, DropNotNullStep>) {
          return refuse("SQLite cannot drop NOT NULL without rebuilding the table");
        } else {
          return Status::Ok();
        }
      },
      step.body);
}

std::vector<Statement> SqliteDialect::Render(const Step& step) const {
  Renderer r{*this, {}};
  std::visit(r, step.body);
  return std::move(r.out);
}

std::string SqliteDialect::NullSafeEqual(std::string_view a, std::string_view b) const {
  return "(" + std::string(a) + ") IS (" + std::string(b) + ")";
}

bool SqliteDialect::IsVolatile(std::string_view expr) const {
  using sqlite::TokenKind;
  static const std::set<std::string> kFns = {"random", "randomblob", "changes", "total_changes", "last_insert_rowid"};
  auto toks = sqlite::Significant(expr);
  for (size_t i = 0; i < toks.size(); ++i) {
    const auto& t = toks[i];
    if (t.kind == TokenKind::kId || t.kind == TokenKind::kKeyword) {
      std::string l = sql::Lower(t.text);
      if (l == "current_timestamp" || l == "current_date" || l == "current_time") return true;
      if (kFns.count(l) && i + 1 < toks.size() && toks[i + 1].text == "(") return true;
    }
    if (t.kind == TokenKind::kString && sql::Lower(t.value) == "now") return true;
  }
  return false;
}

std::string SqliteDialect::StateTable(std::string_view base) const { return Q("_sluice_" + std::string(base)); }

std::vector<db::StateColumn> SqliteDialect::AddedStateColumns() const {
  return {{"chunks", "probe_ms", "REAL"},
          {"chunks", "replica_lag_s", "REAL"},
          {"chunks", "lock_waiters", "INTEGER"},
          {"chunks", "app_sessions", "INTEGER"}};
}

std::string SqliteDialect::StateColumnsSql(std::string_view base) const {
  return "SELECT name FROM pragma_table_info(" + sql::QuoteLiteral("_sluice_" + std::string(base)) + ")";
}

std::vector<std::string> SqliteDialect::StateSchema() const {
  return {
      "CREATE TABLE IF NOT EXISTS \"_sluice_migrations\" (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, phase TEXT "
      "NOT NULL, version TEXT NOT NULL, previous_version TEXT NOT NULL DEFAULT '', plan_file TEXT NOT NULL, "
      "plan_format TEXT NOT NULL, plan_text TEXT NOT NULL, schema_before TEXT NOT NULL, tables TEXT NOT NULL, "
      "live TEXT NOT NULL DEFAULT 'old', backfill TEXT NOT NULL DEFAULT 'pending', version_retired INTEGER NOT NULL "
      "DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_steps\" (migration TEXT NOT NULL, phase TEXT NOT NULL, step INTEGER NOT "
      "NULL, done_at TEXT NOT NULL, PRIMARY KEY (migration, phase, step))",
      "CREATE TABLE IF NOT EXISTS \"_sluice_checkpoints\" (migration TEXT NOT NULL, tbl TEXT NOT NULL, worker "
      "INTEGER NOT NULL, last_key TEXT, high_key TEXT, rows_done INTEGER NOT NULL DEFAULT 0, rows_total INTEGER NOT "
      "NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, "
      "PRIMARY KEY (migration, tbl, worker))",
      "CREATE TABLE IF NOT EXISTS \"_sluice_chunks\" (migration TEXT NOT NULL, tbl TEXT NOT NULL, worker INTEGER NOT "
      "NULL, chunk INTEGER NOT NULL, from_key TEXT, to_key TEXT NOT NULL, rows INTEGER NOT NULL, millis REAL NOT "
      "NULL, committed_at TEXT NOT NULL, probe_ms REAL, replica_lag_s REAL, lock_waiters INTEGER, app_sessions "
      "INTEGER, PRIMARY KEY (migration, tbl, worker, chunk))",
      "CREATE TABLE IF NOT EXISTS \"_sluice_events\" (id INTEGER PRIMARY KEY, migration TEXT NOT NULL, "
      "at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, message TEXT NOT NULL, details TEXT)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_verifications\" (id INTEGER PRIMARY KEY, migration TEXT "
      "NOT NULL, at TEXT NOT NULL, passed INTEGER NOT NULL, report TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_versions\" (version TEXT PRIMARY KEY, migration TEXT NOT NULL, "
      "setup_sql TEXT NOT NULL, live INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_claims\" (tbl TEXT PRIMARY KEY, migration TEXT NOT NULL, claimed_at "
      "TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_recordings\" (migration TEXT PRIMARY KEY, format INTEGER NOT NULL, "
      "sluice_version TEXT NOT NULL, compiled TEXT NOT NULL, recorded_at TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_control\" (migration TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT "
      "0, max_rows_per_second REAL, chunk_target_ms INTEGER, workers INTEGER, throttle TEXT, updated_at TEXT NOT "
      "NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_leases\" (migration TEXT PRIMARY KEY, holder TEXT NOT NULL, "
      "started_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL, interval_ms INTEGER NOT "
      "NULL, stopped_at TEXT, last_error TEXT)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_locks\" (name TEXT PRIMARY KEY, holder TEXT NOT NULL, pid INTEGER NOT "
      "NULL, host TEXT NOT NULL, acquired_at TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_marker\" (migration TEXT)",
      "CREATE TABLE IF NOT EXISTS \"_sluice_dual_write_failures\" (migration TEXT NOT NULL, tbl TEXT NOT NULL, "
      "row_key TEXT NOT NULL, col TEXT NOT NULL, error TEXT NOT NULL, sqlstate TEXT NOT NULL, writer TEXT NOT NULL, "
      "source TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 1, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, "
      "PRIMARY KEY (migration, tbl, row_key, col))",
      // The handoff documents (src/engine/history.cc, rehearse.cc): each
      // finished migration's report, archived at complete / rollback.
      "CREATE TABLE IF NOT EXISTS \"_sluice_reports\" (migration TEXT PRIMARY KEY, at TEXT NOT NULL, format TEXT "
      "NOT NULL, body TEXT NOT NULL)",
      // `sluice rehearse`: each rehearsal of a plan (its only write to the
      // source database).
      "CREATE TABLE IF NOT EXISTS \"_sluice_rehearsals\" (id INTEGER PRIMARY KEY, migration TEXT NOT NULL, at TEXT "
      "NOT NULL, passed INTEGER NOT NULL, report TEXT NOT NULL)",
      // `sluice audit` (docs/audit.md): each contract audit's report.
      "CREATE TABLE IF NOT EXISTS \"_sluice_audits\" (id INTEGER PRIMARY KEY, migration TEXT NOT NULL, at TEXT NOT "
      "NULL, window_start TEXT NOT NULL, json TEXT NOT NULL)",
      // `sluice start --estimate`: the estimate recorded with the migration
      // (JSON, as `sluice estimate --json` prints it), for estimate vs actual.
      "CREATE TABLE IF NOT EXISTS \"_sluice_estimates\" (migration TEXT PRIMARY KEY, at TEXT NOT NULL, body TEXT "
      "NOT NULL)",
  };
}

std::string SqliteDialect::VersionSelectHint(const std::string& version) const {
  return "on each connection run the SQL in: SELECT setup_sql FROM _sluice_versions WHERE version = " +
         QuoteLiteral(version);
}

// SQLite has no statement_timeout; sluice's connections register
// sluice_statement_timeout(ms), which interrupts a statement that has run
// that long (see SqliteConnection). Only connections opened by sluice know
// the function.
std::string SqliteDialect::StatementTimeoutSql(int64_t ms) const {
  return "SELECT sluice_statement_timeout(" + std::to_string(ms < 0 ? 0 : ms) + ")";
}

std::string SqliteDialect::OldReadPath(const VersionSpec&, const TableMapping& m) const { return Q(m.physical); }

std::string SqliteDialect::NewReadPath(const VersionSpec& v, const TableMapping& m) const {
  return NeedsView(m) ? Q(VersionView(m.logical, v.name)) : Q(m.physical);
}

std::string SqliteDialect::RowHash(const std::vector<std::string>& exprs) const {
  std::string s = "sluice_hash(";
  for (size_t i = 0; i < exprs.size(); ++i) s += (i ? ", " : "") + exprs[i];
  return s + ")";
}

// sluice_canon() and sluice_md5_64() are registered by the adapter
// (sqlite_adapter.cc); the canonical form depends on the value's storage
// class, not on the declared type, because SQLite columns may hold any.
std::string SqliteDialect::CanonicalText(std::string_view expr, std::string_view) const {
  return "sluice_canon(" + std::string(expr) + ")";
}

std::string SqliteDialect::BinaryOrder(std::string_view expr, std::string_view) const {
  // A column declared COLLATE NOCASE (or RTRIM) would order otherwise; the
  // collation only affects text, so this is a no-op for other values.
  return "(" + std::string(expr) + ") COLLATE BINARY";
}

std::string SqliteDialect::PortableRowHash(const std::vector<std::string>& texts) const {
  std::string s;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = "(" + texts[i] + ")";
    s += (i ? " || '|' || " : "") + std::string("coalesce(length(") + t + ") || ':' || " + t + ", '~')";
  }
  if (s.empty()) s = "''";
  return "sluice_md5_64(" + s + ")";
}

// SQLite has one lock for the whole database: every statement sluice runs
// in a phase writes (DDL, triggers, the version views' setup rows, the
// backfill's UPDATE), so it takes the write lock (RESERVED, EXCLUSIVE while
// committing) for its transaction; readers in WAL mode are not blocked,
// other writers wait up to their busy timeout.
LockInfo SqliteDialect::LockOf(const Step&, const Statement& st) const {
  if (st.schema_edit) return {"database write lock (EXCLUSIVE while the schema is edited)", "the database file"};
  return {"database write lock (RESERVED; EXCLUSIVE while committing)", "the database file"};
}

}  // namespace sluice::db
