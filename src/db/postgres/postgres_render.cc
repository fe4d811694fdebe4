// PostgresDialect::Render: the SQL of every step (one Renderer overload per
// step type), split from postgres_dialect.cc, which holds the dialect's
// capabilities and the state-table DDL.
#include <algorithm>
#include <cctype>
#include <set>

#include "common/sql_text.h"
#include "db/postgres/postgres_catalog.h"
#include "db/postgres/postgres_dialect.h"

namespace sluice::db {
namespace {

using sql::QuoteIdent;
using sql::QuoteLiteral;

std::string Q(std::string_view s) { return QuoteIdent(s); }

std::string JoinQ(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + Q(v[i]);
  return out;
}

std::string FkClause(const std::string& schema, const ForeignKeySpec& fk) {
  std::string s = " REFERENCES " + Q(schema) + "." + Q(fk.ref_table);
  if (!fk.ref_columns.empty()) s += " (" + JoinQ(fk.ref_columns) + ")";
  if (fk.match_type != "SIMPLE") s += " MATCH " + fk.match_type;
  if (fk.on_delete != "NO ACTION") {
    s += " ON DELETE " + fk.on_delete;
    if (!fk.on_delete_set_columns.empty()) s += " (" + JoinQ(fk.on_delete_set_columns) + ")";
  }
  if (fk.on_update != "NO ACTION") s += " ON UPDATE " + fk.on_update;
  if (fk.deferrable) s += fk.initially_deferred ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE";
  return s;
}

std::string IndexElements(const std::vector<IndexElement>& elems) {
  std::string s;
  for (size_t i = 0; i < elems.size(); ++i) {
    const auto& e = elems[i];
    if (i) s += ", ";
    s += Q(e.column);
    if (!e.collate.empty()) s += " COLLATE " + Q(e.collate);
    if (!e.opclass.empty()) {
      s += " " + e.opclass;
      if (!e.opclass_params.empty()) {
        s += " (";
        for (size_t j = 0; j < e.opclass_params.size(); ++j) s += (j ? ", " : "") + e.opclass_params[j];
        s += ")";
      }
    }
    if (!e.sort.empty()) s += " " + e.sort;
    if (!e.nulls.empty()) s += " NULLS " + e.nulls;
  }
  return s;
}

std::string IndexParams(const std::vector<std::string>& include, const std::string& storage,
                        const std::string& tablespace) {
  std::string s;
  if (!include.empty()) s += " INCLUDE (" + JoinQ(include) + ")";
  if (!storage.empty()) s += " WITH (" + storage + ")";
  if (!tablespace.empty()) s += " USING INDEX TABLESPACE " + Q(tablespace);
  return s;
}

// The columns some expressions may read, by PostgreSQL's parser. One it
// rejects (compile refuses those first) reads everything: a superset is
// safe for declarations and trigger column lists.
struct ReadSet {
  bool all = false;
  std::set<std::string> names;
  bool Has(const std::string& column) const { return all || names.count(column) || names.count("*"); }
};
ReadSet ReadsOf(const std::vector<std::string>& exprs) {
  ReadSet out;
  for (const auto& e : exprs) {
    auto r = PostgresDialect::ExpressionColumns(e);
    if (r.ok()) out.names.insert(r->begin(), r->end());
    if (!r.ok()) out.all = true;
  }
  return out;
}

// Variables named after the columns an expression reads, so `up` and
// `down` can name columns as in a query. Resolved when the function is
// first compiled in a session; no catalog look-up per row.
std::string Declarations(const std::string& table_ref, const std::vector<std::pair<std::string, std::string>>& cols,
                         const std::vector<std::string>& exprs, const char* record = "NEW") {
  const ReadSet ids = ReadsOf(exprs);
  std::string out;
  for (const auto& [logical, physical] : cols) {
    if (!ids.Has(logical)) continue;
    out += "      " + Q(logical) + " " + table_ref + "." + Q(physical) + "%TYPE := " + record + "." + Q(physical) + ";\n";
  }
  return out;
}

// on_error: record catches conversion errors only: a conflict the writer
// must retry (or a lock it could not get) still fails its statement.
constexpr const char* kRetryableRaise =
    "WHEN serialization_failure OR deadlock_detected OR lock_not_available THEN RAISE; ";

std::string DollarTag(const std::string& body) {
  std::string tag = "$sluice$";
  for (int i = 0; body.find(tag) != std::string::npos; ++i) tag = "$sluice" + std::to_string(i) + "$";
  return tag;
}

struct Renderer {
  const PostgresDialect& d;
  std::vector<Statement> out;

  std::string T(const std::string& t) const { return d.Table(t); }
  void Sql(std::string s) { out.push_back({std::move(s)}); }
  void Prepare(std::string s) {
    Statement st;
    st.sql = std::move(s);
    st.prepare = true;
    out.push_back(std::move(st));
  }

  std::string ColumnDef(const ColumnSpec& c, bool in_create, bool with_default = true) const {
    std::string s = Q(c.name) + " " + c.type;
    if (c.identity) {
      s += std::string(" GENERATED ") + (c.identity->always ? "ALWAYS" : "BY DEFAULT") + " AS IDENTITY";
      if (!c.identity->sequence_options.empty()) s += " (" + c.identity->sequence_options + ")";
    }
    if (c.generated_expr) s += " GENERATED ALWAYS AS (" + *c.generated_expr + ") STORED";
    if (with_default && c.default_expr) s += " DEFAULT " + *c.default_expr;
    if (c.not_null) s += " NOT NULL";
    if (in_create) {
      if (c.pk) s += " PRIMARY KEY";
      if (c.unique) s += " UNIQUE";
      for (const auto& chk : c.checks) {
        s += " CONSTRAINT " + Q(chk.name) + " CHECK (" + chk.expr + ")" + (chk.no_inherit ? " NO INHERIT" : "");
      }
      for (const auto& fk : c.references) s += " CONSTRAINT " + Q(fk.name) + FkClause(d.schema(), fk);
    }
    return s;
  }

  void Comment(const std::string& table, const std::string& column, const std::optional<std::string>& text) {
    std::string target = column.empty() ? "TABLE " + T(table) : "COLUMN " + T(table) + "." + Q(column);
    Sql("COMMENT ON " + target + " IS " + (text ? QuoteLiteral(*text) : "NULL"));
  }

  std::string ConstraintSql(const TableConstraintSpec& c) const {
    std::string s = "CONSTRAINT " + Q(c.name) + " ";
    std::string params = IndexParams(c.include, c.storage_parameters, c.tablespace);
    std::string defer = c.deferrable ? (c.initially_deferred ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE") : "";
    switch (c.type) {
      case TableConstraintSpec::Type::kPrimaryKey: s += "PRIMARY KEY (" + JoinQ(c.columns) + ")" + params + defer; break;
      case TableConstraintSpec::Type::kUnique:
        s += std::string("UNIQUE") + (c.nulls_not_distinct ? " NULLS NOT DISTINCT" : "") + " (" + JoinQ(c.columns) +
             ")" + params + defer;
        break;
      case TableConstraintSpec::Type::kCheck:
        s += "CHECK (" + c.check + ")" + (c.no_inherit ? " NO INHERIT" : "");
        break;
      case TableConstraintSpec::Type::kForeignKey:
        s += "FOREIGN KEY (" + JoinQ(c.columns) + ")" + FkClause(d.schema(), *c.fk);
        break;
      case TableConstraintSpec::Type::kExclude:
        s += "EXCLUDE" + (c.exclude_method.empty() ? "" : " USING " + c.exclude_method) + " (" + c.exclude_elements +
             ")" + params + (c.exclude_predicate.empty() ? "" : " WHERE (" + c.exclude_predicate + ")") + defer;
        break;
    }
    return s;
  }

  void operator()(const CreateTableStep& s) {
    std::vector<std::string> parts;
    int pks = 0;
    for (const auto& c : s.columns) pks += c.pk ? 1 : 0;
    for (auto c : s.columns) {
      if (pks > 1) c.pk = false;
      parts.push_back(ColumnDef(c, true));
    }
    if (pks > 1) {
      std::vector<std::string> pk;
      for (const auto& c : s.columns) {
        if (c.pk) pk.push_back(c.name);
      }
      parts.push_back("PRIMARY KEY (" + JoinQ(pk) + ")");
    }
    for (const auto& con : s.constraints) parts.push_back(ConstraintSql(con));
    std::string body;
    for (size_t i = 0; i < parts.size(); ++i) body += (i ? ", " : "") + parts[i];
    Sql("CREATE TABLE " + T(s.table) + " (" + body + ")");
    if (s.comment) Comment(s.table, "", s.comment);
    for (const auto& c : s.columns) {
      if (c.comment) Comment(s.table, c.name, c.comment);
    }
  }
  void operator()(const DropTableStep& s) { Sql("DROP TABLE IF EXISTS " + T(s.table)); }
  void operator()(const RenameTableStep& s) { Sql("ALTER TABLE " + T(s.from) + " RENAME TO " + Q(s.to)); }
  void operator()(const AddColumnStep& s) {
    // A volatile default would make PostgreSQL rewrite every row under an
    // exclusive lock: add the column bare, then set the default (catalog
    // only); the backfill fills existing rows.
    bool volatile_default = s.column.default_expr && d.IsVolatile(*s.column.default_expr);
    Sql("ALTER TABLE " + T(s.table) + " ADD COLUMN IF NOT EXISTS " + ColumnDef(s.column, false, !volatile_default));
    if (volatile_default) {
      Sql("ALTER TABLE " + T(s.table) + " ALTER COLUMN " + Q(s.column.name) + " SET DEFAULT " + *s.column.default_expr);
    }
    for (const auto& chk : s.column.checks) {
      Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(chk.name) + " CHECK (" + chk.expr + ")" +
          (chk.no_inherit ? " NO INHERIT" : "") + " NOT VALID");
    }
    for (const auto& fk : s.column.references) {
      Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(fk.name) + " FOREIGN KEY (" + JoinQ(fk.columns) + ")" +
          FkClause(d.schema(), fk) + " NOT VALID");
    }
    if (s.column.comment) Comment(s.table, s.column.name, s.column.comment);
  }
  void operator()(const DropColumnStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " DROP COLUMN IF EXISTS " + Q(s.column));
  }
  void operator()(const RenameColumnStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " RENAME COLUMN " + Q(s.from) + " TO " + Q(s.to));
  }
  void operator()(const SetDefaultStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " ALTER COLUMN " + Q(s.column) +
        (s.expr ? " SET DEFAULT " + *s.expr : std::string(" DROP DEFAULT")));
  }
  void operator()(const SetCommentStep& s) { Comment(s.table, s.column, s.comment); }
  void operator()(const AddNotNullGuardStep& s) {
    // recorded: the dual-write function refuses NULLs written through the
    // new version and records those the old version's `up` yields.
    if (s.recorded) return;
    Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(s.guard_name) + " CHECK (" + Q(s.column) +
        " IS NOT NULL) NOT VALID");
  }
  void operator()(const FinalizeNotNullStep& s) {
    // recorded: no guard constraint exists yet; add it (safe to repeat)
    // before validating. From here on an old-version NULL is refused.
    if (s.recorded) {
      Prepare("ALTER TABLE " + T(s.table) + " DROP CONSTRAINT IF EXISTS " + Q(s.guard_name) + ", ADD CONSTRAINT " +
              Q(s.guard_name) + " CHECK (" + Q(s.column) + " IS NOT NULL) NOT VALID");
    }
    // Validation scans without blocking writes; SET NOT NULL then trusts the
    // validated check and does not scan again.
    Prepare("ALTER TABLE " + T(s.table) + " VALIDATE CONSTRAINT " + Q(s.guard_name));
    Sql("ALTER TABLE " + T(s.table) + " ALTER COLUMN " + Q(s.column) + " SET NOT NULL");
    Sql("ALTER TABLE " + T(s.table) + " DROP CONSTRAINT IF EXISTS " + Q(s.guard_name));
  }
  void operator()(const DropNotNullGuardStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " DROP CONSTRAINT IF EXISTS " + Q(s.guard_name));
  }
  void operator()(const DropNotNullStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " ALTER COLUMN " + Q(s.column) + " DROP NOT NULL");
  }
  void operator()(const AddCheckStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(s.check.name) + " CHECK (" + s.check.expr + ")" +
        (s.check.no_inherit ? " NO INHERIT" : "") + (s.not_valid ? " NOT VALID" : ""));
  }
  void operator()(const AddForeignKeyStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(s.fk.name) + " FOREIGN KEY (" + JoinQ(s.fk.columns) + ")" +
        FkClause(d.schema(), s.fk) + (s.not_valid ? " NOT VALID" : ""));
  }
  void operator()(const ValidateConstraintStep& s) {
    Prepare("ALTER TABLE " + T(s.table) + " VALIDATE CONSTRAINT " + Q(s.name));
  }
  // CREATE INDEX for `i` named `name` on `table` (or, when `raw` is set,
  // that pg_get_indexdef text): CONCURRENTLY, or ON ONLY a partitioned
  // table (which cannot be indexed concurrently; its partitions are).
  std::string IndexSql(const IndexSpec& i, const std::string& name, const std::string& table, const std::string& raw,
                       bool only) const {
    if (!raw.empty()) {
      // pg_get_indexdef prints ON ONLY for a partitioned table's index.
      std::string sql = raw;
      size_t at = sql::Lower(sql).find("index ");
      if (at != std::string::npos) sql.insert(at + 6, only ? "IF NOT EXISTS " : "CONCURRENTLY IF NOT EXISTS ");
      return sql;
    }
    return std::string("CREATE ") + (i.unique ? "UNIQUE " : "") + "INDEX " + (only ? "" : "CONCURRENTLY ") +
           "IF NOT EXISTS " + Q(name) + " ON " + (only ? "ONLY " : "") + T(table) +
           (i.method.empty() ? "" : " USING " + i.method) + " (" + IndexElements(i.elements) + ")" +
           (i.include.empty() ? "" : " INCLUDE (" + JoinQ(i.include) + ")") +
           (i.nulls_not_distinct ? " NULLS NOT DISTINCT" : "") +
           (i.storage_parameters.empty() ? "" : " WITH (" + i.storage_parameters + ")") +
           (i.tablespace.empty() ? "" : " TABLESPACE " + Q(i.tablespace)) +
           (i.predicate.empty() ? "" : " WHERE " + i.predicate);
  }
  void Outside(std::string sql, std::string rebuild = "") {
    Statement st;
    st.sql = std::move(sql);
    st.outside_transaction = true;
    st.rebuild_invalid_index = std::move(rebuild);
    out.push_back(std::move(st));
  }
  void operator()(const CreateIndexStep& s) {
    const auto& i = s.index;
    if (s.partitions.empty()) {
      Outside(IndexSql(i, i.name, i.table, i.raw_definition, false), Q(d.schema()) + "." + Q(i.name));
      return;
    }
    // The standard way for a partitioned table: an (invalid) index ON ONLY
    // the table, each partition's index built CONCURRENTLY (ON ONLY again
    // for a partition that is partitioned itself), then attached, deepest
    // first; the last attach makes the parent valid. Every statement is
    // safe to repeat (IF NOT EXISTS; attaching an attached index does
    // nothing), so a start interrupted here resumes.
    Outside(IndexSql(i, i.name, i.table, i.raw_definition, true));
    for (const auto& p : s.partitions) {
      if (p.partitioned) {
        Outside(IndexSql(i, p.name, p.table, p.raw_definition, true));
      } else {
        Outside(IndexSql(i, p.name, p.table, p.raw_definition, false), Q(d.schema()) + "." + Q(p.name));
      }
    }
    for (auto it = s.partitions.rbegin(); it != s.partitions.rend(); ++it) {
      Outside("ALTER INDEX " + Q(d.schema()) + "." + Q(it->parent) + " ATTACH PARTITION " + Q(d.schema()) + "." +
              Q(it->name));
    }
  }
  void operator()(const DropIndexStep& s) {
    if (s.partitioned) {
      // PostgreSQL cannot drop a partitioned index concurrently; this takes
      // its partitions' indexes along.
      Sql("DROP INDEX IF EXISTS " + Q(d.schema()) + "." + Q(s.name));
      return;
    }
    Outside("DROP INDEX CONCURRENTLY IF EXISTS " + Q(d.schema()) + "." + Q(s.name));
  }
  void operator()(const RenameIndexStep& s) {
    Sql("ALTER INDEX " + Q(d.schema()) + "." + Q(s.from) + " RENAME TO " + Q(s.to));
  }
  void operator()(const AttachIndexConstraintStep& s) {
    std::string defer = s.deferrable ? (s.initially_deferred ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE") : "";
    Sql("ALTER TABLE " + T(s.table) + " ADD CONSTRAINT " + Q(s.name) + (s.primary_key ? " PRIMARY KEY" : " UNIQUE") +
        " USING INDEX " + Q(s.index) + defer);
  }
  void operator()(const AddTableConstraintStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " ADD " + ConstraintSql(s.constraint));
  }
  void operator()(const DropConstraintStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " DROP CONSTRAINT IF EXISTS " + Q(s.name));
  }
  void operator()(const RenameConstraintStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " RENAME CONSTRAINT " + Q(s.from) + " TO " + Q(s.to));
  }
  void operator()(const SetReplicaIdentityStep& s) {
    Sql("ALTER TABLE " + T(s.table) + " REPLICA IDENTITY " +
        (s.type == "INDEX" ? "USING INDEX " + Q(s.index) : s.type));
  }
  void operator()(const RawSqlStep& s) { Sql(s.sql); }
  void operator()(const RecordedSqlStep& s) { out.insert(out.end(), s.statements.begin(), s.statements.end()); }

  // Per migration, so a second migration can never replace (CREATE OR
  // REPLACE) another's dual-write; the triggers' "~" sorts after every
  // ASCII name, so they fire after the table's own BEFORE triggers (which
  // fire in name order) and see the row as those left it.
  std::string FunctionName(const std::string& migration, const TableMapping& m) const {
    return Q(d.schema()) + "." + Q(PostgresDialect::Ident63("_sluice_dw_" + migration + "_" + m.physical));
  }
  std::string TriggerName(const std::string& migration, const char* event) const {
    return Q(d.DualWriteTriggerName(migration, event));
  }
  // on_error: record. SECURITY DEFINER helpers owned by the migration's
  // owner, so a writer without rights on sluice's state schema still gets
  // its failure recorded (record) and its fixed rows resolved (resolve).
  std::string RecordFunction(const std::string& migration, const TableMapping& m, const char* what) const {
    return Q(d.schema()) + "." + Q(PostgresDialect::Ident63(std::string("_sluice_dw") + what + "_" + migration + "_" +
                                                             m.physical));
  }
  void FailureFunctions(const std::string& migration, const TableMapping& m) {
    const std::string failures = d.StateTable("dual_write_failures");
    const std::string now = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
    const std::string where = "migration = " + QuoteLiteral(migration) + " AND tbl = " + QuoteLiteral(m.physical);
    std::string rec = "INSERT INTO " + failures +
                      " AS f (migration, tbl, row_key, col, error, sqlstate, writer, source, count, first_seen, "
                      "last_seen) VALUES (" + QuoteLiteral(migration) + ", " + QuoteLiteral(m.physical) +
                      ", $1, $2, $3, $4, $5, $6, 1, " + now + ", " + now +
                      ") ON CONFLICT (migration, tbl, row_key, col) DO UPDATE SET error = EXCLUDED.error, sqlstate "
                      "= EXCLUDED.sqlstate, writer = EXCLUDED.writer, source = EXCLUDED.source, count = f.count + 1, "
                      "last_seen = EXCLUDED.last_seen";
    std::string tag = DollarTag(rec);
    Sql("CREATE OR REPLACE FUNCTION " + RecordFunction(migration, m, "f") +
        "(text, text, text, text, text, text) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = "
        "pg_catalog, pg_temp AS " + tag + rec + tag);
    // Resolving deletes evidence the switch and complete gates rely on, and
    // any role may execute the function (the application's writers must):
    // it acts only when called from a trigger, as the dual-write calls it,
    // never from a plain statement.
    std::string res = "DELETE FROM " + failures + " WHERE " + where +
                      " AND row_key = $1 AND col <> ALL ($2) AND pg_catalog.pg_trigger_depth() > 0";
    tag = DollarTag(res);
    Sql("CREATE OR REPLACE FUNCTION " + RecordFunction(migration, m, "r") +
        "(text, text[]) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS " + tag +
        res + tag);
  }
  // The backfill's recording value of one new column (see
  // Dialect::RecordingBackfillValue): `up` over the row in its own block;
  // an error (or a NULL for a guarded column) is recorded and yields the
  // fallback.
  void BackfillFunction(const std::string& migration, const TableMapping& m, const Forward& f,
                        const std::vector<std::string>& search_path) {
    const std::string table_ref = T(m.physical);
    std::vector<std::pair<std::string, std::string>> old_cols;
    for (const auto& c : m.old_columns) old_cols.push_back({c, c});
    std::vector<std::string> exprs = {f.expr};
    if (!f.fallback.empty()) exprs.push_back(f.fallback);
    const std::string type = table_ref + "." + Q(f.target) + "%TYPE";
    std::string body = "#variable_conflict use_variable\nDECLARE\n" + Declarations(table_ref, old_cols, exprs, "r") +
                       "  sluice_value " + type + ";\nBEGIN\n  BEGIN\n    sluice_value := " +
                       sql::ScalarExpression(f.expr) + ";\n";
    if (Guarded(m, f.target)) {
      body += "    IF sluice_value IS NULL THEN RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = " +
              QuoteLiteral("up yielded NULL for column " + f.target + ", which becomes NOT NULL") + "; END IF;\n";
    }
    body += "    RETURN sluice_value;\n  EXCEPTION " + std::string(kRetryableRaise) + "WHEN OTHERS THEN\n    PERFORM " + RecordFunction(migration, m, "f") +
            "(" + KeyText(m, "r") + ", " + QuoteLiteral(f.target) + ", SQLERRM, SQLSTATE, 'backfill', 'backfill');\n";
    body += "    RETURN " + (f.fallback.empty() ? std::string("NULL") : sql::ScalarExpression(f.fallback)) +
            ";\n  END;\nEND\n";
    const std::string tag = DollarTag(body);
    Sql("CREATE OR REPLACE FUNCTION " + d.RecordingBackfillFunction(migration, m, f.target) + "(r " + table_ref +
        ") RETURNS " + type + " LANGUAGE plpgsql SET search_path = " + d.PinnedSearchPath(search_path) + " AS " + tag +
        "\n" + body + tag);
  }
  // The row's key as recorded in dual_write_failures.row_key: a JSON array.
  static std::string KeyText(const TableMapping& m, const std::string& record) {
    std::string out;
    for (const auto& k : m.key) out += (out.empty() ? "" : ", ") + record + "." + Q(k);
    return "json_build_array(" + out + ")::text";
  }
  // When a write may resolve a recorded failure, so the resolving call (a
  // SECURITY DEFINER function and a DELETE: most of record's cost when
  // called on every write) runs only then: an UPDATE of a row whose new
  // column holds what a failure stores (its constant fallback, or NULL,
  // which is also every row the backfill has not reached yet). A fallback
  // that reads columns cannot be compared cheaply: then every UPDATE.
  std::string ResolveGate(const TableMapping& m) const {
    std::string g;
    for (const auto& f : m.forward) {
      std::string cond = "OLD." + Q(f.target) + " IS NULL";
      if (!f.fallback.empty()) {
        const ReadSet r = ReadsOf({f.fallback});
        if (r.all || !r.names.empty()) return "TG_OP = 'UPDATE'";
        cond += " OR OLD." + Q(f.target) + " IS NOT DISTINCT FROM " + sql::ScalarExpression(f.fallback);
      }
      g += (g.empty() ? "" : " OR ") + cond;
    }
    return "TG_OP = 'UPDATE' AND (" + g + ")";
  }
  static bool Filled(const TableMapping& m, const std::string& physical) {
    for (const auto& f : m.forward) {
      if (f.target == physical) return true;
    }
    return false;
  }
  bool Guarded(const TableMapping& m, const std::string& physical) const {
    return std::find(m.not_null_guards.begin(), m.not_null_guards.end(), physical) != m.not_null_guards.end();
  }

  // The dual-write trigger function of one table. `live_is_new`: sessions
  // on the live alias count as the new version. `search_path`: see
  // VersionSpec::search_path.
  //
  // The direction is read from the caller's settings first; then `up` and
  // `down` run under the pinned search_path, set for the rest of the call
  // with set_config(..., true) and given back before returning (an error
  // gives it back too: the statement's (sub)transaction ends, undoing it).
  // A `SET search_path` clause on the function would hide the caller's
  // search_path, which decides the direction.
  std::string DualWriteFunction(const std::string& migration, const std::string& version, const TableMapping& m,
                                bool live_is_new, const std::vector<std::string>& search_path) const {
    std::string table_ref = T(m.physical);
    std::vector<std::pair<std::string, std::string>> new_cols, old_cols;
    for (const auto& c : m.columns) new_cols.push_back({c.logical, c.physical});
    for (const auto& c : m.old_columns) old_cols.push_back({c, c});
    std::vector<std::string> downs, ups;
    for (const auto& b : m.backward) downs.push_back(b.expr);
    for (const auto& f : m.forward) ups.push_back(f.expr);
    std::vector<std::string> ups_and_fallbacks = ups;
    if (m.record_failures) {
      for (const auto& f : m.forward) {
        if (!f.fallback.empty()) ups_and_fallbacks.push_back(f.fallback);
      }
    }
    std::string body;
    body += "#variable_conflict use_variable\nDECLARE\n";
    body += "  sluice_setting text := coalesce(current_setting('sluice.version', true), '');\n";
    body += "  sluice_caller_path text := current_setting('search_path');\n";
    body += "  sluice_path text := btrim(split_part(sluice_caller_path, ',', 1), ' \"');\n";
    body += "BEGIN\n";
    body += "  -- up and down resolve names under the search_path pinned at start\n";
    body += "  PERFORM set_config('search_path', " + QuoteLiteral(d.PinnedSearchPath(search_path)) + ", true);\n";
    body += "  IF sluice_setting = " + QuoteLiteral(version) + " OR (sluice_setting = '' AND sluice_path = " +
            QuoteLiteral(d.VersionSchema(version)) + ")" +
            (live_is_new ? " OR sluice_setting = 'live' OR (sluice_setting = '' AND sluice_path = " +
                               QuoteLiteral(d.LiveSchema()) + ")"
                         : "") +
            " THEN\n";
    if (!m.write_flag.empty() && !m.forward.empty()) {
      // The first new-version write to a row the backfill may not have
      // reached yet: the new columns the statement left alone get up(row)
      // first (over the stored row, as the backfill would have), so down()
      // below never reads a new column that is still empty.
      body += "    IF TG_OP = 'UPDATE' AND OLD." + Q(m.write_flag) + " IS NULL THEN\n";
      body += "    DECLARE\n" + Declarations(table_ref, old_cols, ups, "OLD") + "    BEGIN\n";
      for (const auto& f : m.forward) {
        body += "      IF NEW." + Q(f.target) + " IS NOT DISTINCT FROM OLD." + Q(f.target) + " THEN NEW." + Q(f.target) +
                " := " + sql::ScalarExpression(f.expr) + "; END IF;\n";
      }
      body += "      NULL;\n    END;\n    END IF;\n";
    }
    body += "    -- written through the new version: old columns := down(new row)\n";
    body += "    DECLARE\n" + Declarations(table_ref, new_cols, downs) + "    BEGIN\n";
    for (const auto& b : m.backward) {
      body += "      NEW." + Q(b.target) + " := " + sql::ScalarExpression(b.expr) + ";\n";
    }
    body += "      NULL;\n    END;\n";
    if (m.record_failures) {
      // The guards have no constraint under record (AddNotNullGuardStep):
      // the new version's writes are refused here, as the constraint would.
      for (const auto& c : m.columns) {
        if (!Guarded(m, c.physical) || !Filled(m, c.physical)) continue;
        body += "    IF NEW." + Q(c.physical) + " IS NULL THEN RAISE EXCEPTION USING ERRCODE = 'not_null_violation', "
                "MESSAGE = " + QuoteLiteral("null value in column \"" + c.logical + "\" of relation \"" + m.logical +
                                            "\" violates not-null constraint") + "; END IF;\n";
      }
    }
    if (m.record_failures && !m.forward.empty()) {
      // The new version wrote the row whole: what was recorded for it is
      // resolved.
      body += "    IF " + ResolveGate(m) + " THEN PERFORM " + RecordFunction(migration, m, "r") + "(" +
              KeyText(m, "NEW") + ", '{}'); END IF;\n";
    }
    if (!m.write_flag.empty()) body += "    NEW." + Q(m.write_flag) + " := 1;\n";
    body += "  ELSE\n";
    body += "    -- written through the old version: new columns := up(old row)\n";
    if (!m.record_failures || m.forward.empty()) {
      body += "    DECLARE\n" + Declarations(table_ref, old_cols, ups) + "    BEGIN\n";
      for (const auto& f : m.forward) {
        body += "      NEW." + Q(f.target) + " := " + sql::ScalarExpression(f.expr) + ";\n";
      }
      body += "      NULL;\n    END;\n";
    } else {
      // on_error: record. Each `up` in its own block (a subtransaction,
      // only on this path): a failure stores the fallback, is recorded,
      // and the old version's write goes on. A row that converts resolves
      // what was recorded for it before.
      body += "    DECLARE\n" + Declarations(table_ref, old_cols, ups_and_fallbacks) +
              "      sluice_failed text[] := '{}';\n      sluice_key text := " + KeyText(m, "NEW") + ";\n    BEGIN\n";
      for (const auto& f : m.forward) {
        body += "      BEGIN\n        NEW." + Q(f.target) + " := " + sql::ScalarExpression(f.expr) + ";\n";
        if (Guarded(m, f.target)) {
          body += "        IF NEW." + Q(f.target) +
                  " IS NULL THEN RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = " +
                  QuoteLiteral("up yielded NULL for column " + f.target + ", which becomes NOT NULL") + "; END IF;\n";
        }
        body += "      EXCEPTION " + std::string(kRetryableRaise) + "WHEN OTHERS THEN\n        NEW." + Q(f.target) + " := " +
                (f.fallback.empty() ? std::string("NULL") : sql::ScalarExpression(f.fallback)) + ";\n";
        body += "        sluice_failed := sluice_failed || " + QuoteLiteral(f.target) + "::text;\n";
        body += "        PERFORM " + RecordFunction(migration, m, "f") + "(sluice_key, " + QuoteLiteral(f.target) +
                ", SQLERRM, SQLSTATE, CASE WHEN sluice_setting <> '' THEN sluice_setting ELSE sluice_path END, "
                "'dual-write');\n";
        body += "      END;\n";
      }
      body += "      IF " + ResolveGate(m) + " THEN PERFORM " + RecordFunction(migration, m, "r") +
              "(sluice_key, sluice_failed); END IF;\n";
      body += "    END;\n";
    }
    if (!m.write_flag.empty()) body += "    NEW." + Q(m.write_flag) + " := NULL;\n";
    body += "  END IF;\n";
    body += "  PERFORM set_config('search_path', sluice_caller_path, true);\n";
    body += "  RETURN NEW;\nEND\n";
    std::string tag = DollarTag(body);
    return "CREATE OR REPLACE FUNCTION " + FunctionName(migration, m) + "() RETURNS trigger LANGUAGE plpgsql AS " + tag + "\n" +
           body + tag;
  }

  void operator()(const CreateDualWriteStep& s) {
    const TableMapping& m = s.table;
    if (m.record_failures && !m.forward.empty()) {
      FailureFunctions(s.migration, m);
      for (const auto& f : m.forward) BackfillFunction(s.migration, m, f, s.search_path);
    }
    Sql(DualWriteFunction(s.migration, s.version, m, false, s.search_path));
    const std::string not_backfill = "current_setting('sluice.backfill', true) IS DISTINCT FROM 'on'";
    Sql("CREATE TRIGGER " + TriggerName(s.migration, "insert") + " BEFORE INSERT ON " + T(m.physical) +
        " FOR EACH ROW WHEN (" + not_backfill + ") EXECUTE FUNCTION " + FunctionName(s.migration, m) + "()");
    // Updates call the function only when a column that either direction
    // reads changed, or a guarded new column is still empty.
    std::set<std::string> watch;
    for (const auto& f : m.forward) {
      for (const auto& r : f.reads) watch.insert(r);
    }
    for (const auto& b : m.backward) {
      const ReadSet ids = ReadsOf({b.expr});
      for (const auto& c : m.columns) {
        if (ids.Has(c.logical)) watch.insert(c.physical);
      }
    }
    std::string cond;
    for (const auto& w : watch) cond += (cond.empty() ? "" : " OR ") + ("OLD." + Q(w) + " IS DISTINCT FROM NEW." + Q(w));
    for (const auto& g : m.not_null_guards) cond += (cond.empty() ? "" : " OR ") + ("NEW." + Q(g) + " IS NULL");
    if (cond.empty()) cond = "false";
    // `UPDATE OF` lets statements that set none of the watched columns skip
    // the trigger before its WHEN is even evaluated (most of its cost on
    // hot single-row updates). Not with NOT NULL guards: those must see
    // every update.
    std::string of;
    if (m.not_null_guards.empty()) {
      for (const auto& w : watch) of += (of.empty() ? " OF " : ", ") + Q(w);
    }
    Sql("CREATE TRIGGER " + TriggerName(s.migration, "update") + " BEFORE UPDATE" + of + " ON " + T(m.physical) +
        " FOR EACH ROW WHEN (" + not_backfill + " AND (" + cond + ")) EXECUTE FUNCTION " + FunctionName(s.migration, m) +
        "()");
  }
  void operator()(const DropDualWriteStep& s) {
    Sql("DROP TRIGGER IF EXISTS " + TriggerName(s.migration, "insert") + " ON " + T(s.table.physical));
    Sql("DROP TRIGGER IF EXISTS " + TriggerName(s.migration, "update") + " ON " + T(s.table.physical));
    Sql("DROP FUNCTION IF EXISTS " + FunctionName(s.migration, s.table) + "()");
    if (s.table.record_failures && !s.table.forward.empty()) {
      // Failures recorded for rows of this table go with the dual-write
      // (rollback; at complete none are left, the gate saw to that).
      Sql("DELETE FROM " + d.StateTable("dual_write_failures") + " WHERE migration = " + QuoteLiteral(s.migration) +
          " AND tbl = " + QuoteLiteral(s.table.physical));
      Sql("DROP FUNCTION IF EXISTS " + RecordFunction(s.migration, s.table, "f") + "(text, text, text, text, text, text)");
      Sql("DROP FUNCTION IF EXISTS " + RecordFunction(s.migration, s.table, "r") + "(text, text[])");
      for (const auto& f : s.table.forward) {
        Sql("DROP FUNCTION IF EXISTS " + d.RecordingBackfillFunction(s.migration, s.table, f.target) + "(" +
            T(s.table.physical) + ")");
      }
    }
  }

  // A view exposing `cols` (physical AS logical) of `physical`, with the
  // columns' defaults, so inserts through it behave like the table's.
  void View(const std::string& schema, const std::string& name, const std::string& physical,
            const std::vector<std::pair<std::string, std::string>>& cols,
            const std::vector<std::optional<std::string>>& defaults) {
    std::string sel;
    for (size_t i = 0; i < cols.size(); ++i) sel += (i ? ", " : "") + Q(cols[i].second) + " AS " + Q(cols[i].first);
    const std::string view = Q(schema) + "." + Q(name);
    Sql("DROP VIEW IF EXISTS " + view);
    Sql("CREATE VIEW " + view + " WITH (security_invoker = true) AS SELECT " + sel + " FROM " + T(physical));
    for (size_t i = 0; i < cols.size(); ++i) {
      if (defaults[i]) Sql("ALTER VIEW " + view + " ALTER COLUMN " + Q(cols[i].first) + " SET DEFAULT " + *defaults[i]);
    }
  }
  void NewVersionView(const std::string& schema, const TableMapping& m) {
    std::vector<std::pair<std::string, std::string>> cols;
    std::vector<std::optional<std::string>> defaults;
    for (const auto& c : m.columns) {
      cols.push_back({c.logical, c.physical});
      defaults.push_back(c.default_expr);
    }
    View(schema, m.logical, m.physical, cols, defaults);
  }
  void OldVersionView(const std::string& schema, const TableMapping& m) {
    std::vector<std::pair<std::string, std::string>> cols;
    for (const auto& c : m.old_columns) cols.push_back({c, c});
    View(schema, m.physical, m.physical, cols, m.old_defaults);
  }

  void operator()(const CreateVersionStep& s) {
    const std::string schema = d.VersionSchema(s.version.name);
    Sql("CREATE SCHEMA IF NOT EXISTS " + Q(schema));
    for (const auto& m : s.version.tables) NewVersionView(schema, m);
    // Tables the plan does not know (created by a `sql` operation of this
    // migration) appear unchanged, with their defaults.
    FillUnknownTables(schema, s.version, true);
    HideGoneTables(schema, s.version);
    if (!s.version.needs_backfill()) return;
    // Until its backfill is done the version would show NULL (or a default)
    // where up(old row) belongs: the views of those tables refuse instead.
    Sql(ReadyFunction(schema, s.version));
    for (const auto& m : s.version.tables) {
      if (m.needs_backfill()) GuardView(schema, m, true);
    }
  }

  // Readiness guard of a version's views (see docs/how-it-works.md,
  // "Readiness"). `_sluice_ready(table)` returns true once the migration's
  // backfill is done and otherwise raises "version V is not ready". It takes
  // no column, so the planner evaluates it once per statement (a One-Time
  // Filter), never per row. SECURITY DEFINER: the application's role needs
  // no access to sluice's state tables to get the message.
  std::string ReadyFunctionName(const std::string& schema) const { return Q(schema) + "." + Q("_sluice_ready"); }
  std::string ReadyFunction(const std::string& schema, const VersionSpec& v) const {
    const std::string m = QuoteLiteral(v.migration);
    std::string body;
    body += "DECLARE\n  sluice_state text;\n  sluice_pct numeric;\nBEGIN\n";
    // sluice's own backfill gate reads through the guard (ReadUnreadySql).
    body += "  IF current_setting('sluice.read_unready', true) = 'on' THEN RETURN true; END IF;\n";
    body += "  SELECT backfill INTO sluice_state FROM " + d.StateTable("migrations") + " WHERE name = " + m + ";\n";
    body += "  IF sluice_state IN ('done', 'none') THEN RETURN true; END IF;\n";
    body += "  SELECT round(100.0 * sum(rows_done) / nullif(sum(rows_total), 0), 1) INTO sluice_pct FROM " +
            d.StateTable("checkpoints") + " WHERE migration = " + m + " AND tbl = sluice_table;\n";
    body += "  RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = format("
            "'version %s is not ready: the backfill of %s is %s%% done; run `sluice backfill %s`', " +
            QuoteLiteral(v.name) + ", sluice_table, coalesce(sluice_pct, 0), " + m +
            "), HINT = 'The new version is usable once its backfill is done; until then applications stay on the "
            "previous version.';\nEND\n";
    const std::string tag = DollarTag(body);
    return "CREATE OR REPLACE FUNCTION " + ReadyFunctionName(schema) +
           "(sluice_table text) RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "
           "pg_catalog, pg_temp AS " + tag + "\n" + body + tag;
  }
  // The version's view of `m`, guarded (reads and writes refuse, inserts
  // through the CHECK OPTION) or not. CREATE OR REPLACE keeps the view's
  // column defaults and everything that depends on it.
  void GuardView(const std::string& schema, const TableMapping& m, bool guarded) {
    std::string sel;
    for (size_t i = 0; i < m.columns.size(); ++i) {
      sel += (i ? ", " : "") + Q(m.columns[i].physical) + " AS " + Q(m.columns[i].logical);
    }
    const std::string view = Q(schema) + "." + Q(m.logical);
    Sql("CREATE OR REPLACE VIEW " + view + " WITH (security_invoker = true" +
        (guarded ? ", check_option = cascaded" : "") + ") AS SELECT " + sel + " FROM " + T(m.physical) +
        (guarded ? " WHERE " + ReadyFunctionName(schema) + "(" + QuoteLiteral(m.physical) + ")" : ""));
    if (!guarded) Sql("ALTER VIEW " + view + " RESET (check_option)");
  }
  void operator()(const VersionReadyStep& s) {
    if (!s.version.needs_backfill()) return;
    const std::string schema = d.VersionSchema(s.version.name);
    for (const auto& m : s.version.tables) {
      if (m.needs_backfill()) GuardView(schema, m, false);
    }
    Sql("DROP FUNCTION IF EXISTS " + ReadyFunctionName(schema) + "(text)");
  }

  // The version's search_path continues with the base schema (for the
  // application's functions, types, sequences), so a table the version
  // drops or renames would still resolve there under its old name. A view
  // of that name in the version schema shadows it and fails on use, naming
  // the version.
  static std::set<std::string> GoneTables(const VersionSpec& v) {
    std::set<std::string> logical, gone(v.hidden_tables.begin(), v.hidden_tables.end());
    for (const auto& m : v.tables) {
      logical.insert(m.logical);
      if (!m.created && m.logical != m.physical) gone.insert(m.physical);
    }
    for (const auto& t : logical) gone.erase(t);
    return gone;
  }
  void HideGoneTables(const std::string& schema, const VersionSpec& v) {
    bool any = false;
    for (const auto& t : GoneTables(v)) {
      if (!any) {
        Sql("CREATE OR REPLACE FUNCTION " + Q(schema) + "._sluice_gone(t text, v text) RETURNS text LANGUAGE "
            "plpgsql AS $sluice$ BEGIN RAISE EXCEPTION 'relation \"%\" does not exist in version %', t, v USING "
            "ERRCODE = '42P01'; END $sluice$");
        any = true;
      }
      Sql("CREATE OR REPLACE VIEW " + Q(schema) + "." + Q(t) + " AS SELECT " + Q(schema) + "._sluice_gone(" +
          QuoteLiteral(t) + ", " + QuoteLiteral(v.name) + ") AS " + Q("sluice: no such table in this version"));
    }
  }

  // Views (SELECT *, with defaults) in `schema` for every base table the
  // version spec does not describe; `hide_dropped` leaves out the tables the
  // new version drops.
  // The views name their columns (never SELECT *), leaving out sluice's own
  // columns, so another migration's internal columns never leak into this
  // version nor get pinned by its views. `only` limits the tables filled.
  void FillUnknownTables(const std::string& schema, const VersionSpec& v, bool hide_dropped,
                         const std::vector<std::string>& only = {}) {
    std::string known, restrict;
    for (const auto& m : v.tables) known += ", " + QuoteLiteral(m.logical) + ", " + QuoteLiteral(m.physical);
    if (hide_dropped) {
      for (const auto& h : v.hidden_tables) known += ", " + QuoteLiteral(h);
    }
    if (!only.empty()) {
      for (const auto& t : only) restrict += (restrict.empty() ? "" : ", ") + QuoteLiteral(t);
      restrict = " AND t.relname IN (" + restrict + ")";
    }
    Sql("DO $sluice$ DECLARE r record; c record; BEGIN FOR r IN SELECT t.relname, (SELECT string_agg(format('%I', "
        "a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT "
        "a.attisdropped AND a.attname NOT LIKE '\\_sluice\\_%') AS cols FROM pg_class t JOIN pg_namespace n "
        "ON n.oid = t.relnamespace WHERE n.nspname = " + QuoteLiteral(d.schema()) +
        // Partitions are reached through their parent (the base schema stays
        // on the path for the rare query that names one).
        " AND t.relkind IN ('r', 'p') AND NOT t.relispartition AND t.relname NOT IN (''" + known + ")" + restrict +
        // Dropped and recreated, not replaced: a table's columns may have
        // been reordered by a completed migration since the view was made.
        " LOOP EXECUTE format('DROP VIEW IF EXISTS %I.%I', " + QuoteLiteral(schema) + ", r.relname); "
        "EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %I.%I', " +
        QuoteLiteral(schema) + ", r.relname, coalesce(r.cols, ''), " + QuoteLiteral(d.schema()) +
        ", r.relname); FOR c IN SELECT a.attname, pg_get_expr(ad.adbin, ad.adrelid) AS def FROM pg_attribute a JOIN "
        "pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum WHERE a.attrelid = format('%I.%I', " +
        QuoteLiteral(d.schema()) + ", r.relname)::regclass AND a.attgenerated = '' AND NOT a.attisdropped AND "
        "a.attname NOT LIKE '\\_sluice\\_%' LOOP EXECUTE format('ALTER VIEW "
        "%I.%I ALTER COLUMN %I SET DEFAULT %s', " + QuoteLiteral(schema) +
        ", r.relname, c.attname, c.def); END LOOP; END LOOP; END $sluice$");
  }
  // Views follow renames by themselves. Once complete has dropped or
  // renamed the base tables, the live alias's shadows of their old names
  // have nothing left to shadow: they go, so a completed migration leaves
  // the alias as a fresh start and rollback of a later migration would.
  void operator()(const FinalizeVersionStep& s) {
    const std::string live = d.LiveSchema();
    for (const auto& t : GoneTables(s.version)) {
      Sql("DO $sluice$ BEGIN IF EXISTS (SELECT 1 FROM pg_views WHERE schemaname = " + QuoteLiteral(live) +
          " AND viewname = " + QuoteLiteral(t) + " AND definition LIKE '%\\_sluice\\_gone(%') THEN DROP VIEW " +
          Q(live) + "." + Q(t) + "; END IF; END $sluice$");
    }
  }
  void operator()(const DropVersionStep& s) {
    Sql("DROP SCHEMA IF EXISTS " + Q(d.VersionSchema(s.version.name)) + " CASCADE");
  }
  void operator()(const RefreshVersionViewsStep& s) {
    const std::string schema = d.VersionSchema(s.version.name);
    if (s.drop) {
      for (const auto& t : s.tables) Sql("DROP VIEW IF EXISTS " + Q(schema) + "." + Q(t));
    } else {
      FillUnknownTables(schema, s.version, true, s.tables);
    }
  }
  void operator()(const SaveDependentViewsStep& s) {
    if (!s.columns.empty()) Sql(SaveDependentViewsSql(d, s.columns));
  }
  void operator()(const RestoreDependentViewsStep&) { Sql(RestoreDependentViewsSql()); }
  void operator()(const SetSequenceOwnerStep& s) {
    Sql("ALTER SEQUENCE " + Q(s.sequence_schema) + "." + Q(s.sequence) + " OWNED BY " + T(s.table) + "." +
        Q(s.column));
  }
  void operator()(const UnpinViewsStep& s) {
    std::string q = UnpinViewsSql(d, s);
    if (!q.empty()) Sql(std::move(q));
  }
  void operator()(const SetLiveStep& s) {
    // The live alias reads the base tables directly (not the version's
    // views), so dropping a version never takes the alias with it.
    const std::string live = d.LiveSchema();
    const bool to_new = s.version == s.spec.name;
    Sql("CREATE SCHEMA IF NOT EXISTS " + Q(live));
    for (const auto& m : s.spec.tables) {
      if (!m.changed) {
        if (!m.created) OldVersionView(live, m);  // same shape in both versions
        continue;
      }
      Sql("DROP VIEW IF EXISTS " + Q(live) + "." + Q(m.logical));
      if (!m.created) Sql("DROP VIEW IF EXISTS " + Q(live) + "." + Q(m.physical));
      if (to_new) {
        NewVersionView(live, m);
      } else if (!m.created) {
        OldVersionView(live, m);
      }
    }
    for (const auto& h : s.spec.hidden_tables) Sql("DROP VIEW IF EXISTS " + Q(live) + "." + Q(h));
    FillUnknownTables(live, s.spec, to_new);
    // The alias's search_path continues with the base schema, where a table
    // the new version dropped or renamed still resolves: shadow it as the
    // version schema does. Back to the old version, the views above
    // (OldVersionView, FillUnknownTables) have already replaced the shadows.
    if (to_new) HideGoneTables(live, s.spec);
    // Writes through the alias now count as the version it points at.
    for (const auto& m : s.spec.tables) {
      if (m.has_dual_write() && !m.created) {
        Sql(DualWriteFunction(s.spec.migration, s.spec.name, m, to_new, s.spec.search_path));
      }
    }
  }
  void operator()(const CreateLiveAliasStep& s) {
    // The tables as the old version sees them, like SetLiveStep back to the
    // previous version (without touching the dual-write functions).
    const std::string live = d.LiveSchema();
    Sql("CREATE SCHEMA IF NOT EXISTS " + Q(live));
    for (const auto& m : s.spec.tables) {
      if (!m.created) OldVersionView(live, m);
    }
    FillUnknownTables(live, s.spec, false);
  }
  void operator()(const DropLiveAliasStep& s) {
    // Kept while another migration (in flight or complete) may use it.
    Sql("DO $sluice$ BEGIN IF NOT EXISTS (SELECT 1 FROM " + d.StateTable("migrations") + " WHERE name <> " +
        QuoteLiteral(s.migration) + " AND phase <> 'rolled_back') THEN DROP SCHEMA IF EXISTS " + Q(d.LiveSchema()) +
        " CASCADE; END IF; END $sluice$");
  }
};

}  // namespace

std::vector<Statement> PostgresDialect::Render(const Step& step) const {
  Renderer r{*this, {}};
  std::visit(r, step.body);
  return std::move(r.out);
}

}  // namespace sluice::db
