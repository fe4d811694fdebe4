// PostgresDialect::InverseOfRawSql: the SQL that undoes a plan's `sql`
// operation written without `down`, derived from PostgreSQL's own parse tree
// (libpg_query), never from pattern matching on the text.
//
// Only statements that create one named object and nothing else have a
// derivable inverse; it is the DROP of that object (no CASCADE, so a DROP
// that would take something else along fails instead). Statements are undone
// in reverse order. Anything else (data changes, ALTERs other than ADD
// COLUMN, OR REPLACE, IF NOT EXISTS — the object may have existed before —,
// unnamed indexes, temporary objects, functions) has no derivable inverse,
// and the caller treats the operation as irreversible.
#include <pg_query.h>

#include <nlohmann/json.hpp>

#include "common/sql_text.h"
#include "db/postgres/postgres_dialect.h"

namespace sluice::db {
namespace {

using nlohmann::json;

std::string Q(const std::string& s) { return sql::QuoteIdent(s); }

// [{"String": {"sval": "a"}}, ...] -> "a"."b"
std::optional<std::string> QualifiedName(const json& list) {
  if (!list.is_array() || list.empty()) return std::nullopt;
  std::string out;
  for (const auto& part : list) {
    if (!part.contains("String")) return std::nullopt;
    out += (out.empty() ? "" : ".") + Q(part["String"].value("sval", ""));
  }
  return out;
}

// RangeVar -> "schema"."name"; nullopt for temporary relations.
std::optional<std::string> RelationName(const json& rv) {
  if (!rv.is_object() || rv.value("relpersistence", "p") == "t") return std::nullopt;
  std::string name = Q(rv.value("relname", ""));
  if (rv.contains("schemaname")) name = Q(rv["schemaname"].get<std::string>()) + "." + name;
  return name;
}

Result<std::string> InverseOf(const std::string& kind, const json& s) {
  auto refuse = [&](const std::string& why) -> Result<std::string> { return FailedPrecondition(why); };
  if (s.value("if_not_exists", false)) {
    return refuse(kind + " with IF NOT EXISTS: the object may have existed before, so dropping it is not an inverse");
  }
  if (kind == "CreateEnumStmt" || kind == "CreateRangeStmt") {
    if (auto n = QualifiedName(s.value("typeName", json()))) return "DROP TYPE " + *n;
  } else if (kind == "CompositeTypeStmt") {
    if (auto n = RelationName(s.value("typevar", json()))) return "DROP TYPE " + *n;
  } else if (kind == "CreateDomainStmt") {
    if (auto n = QualifiedName(s.value("domainname", json()))) return "DROP DOMAIN " + *n;
  } else if (kind == "CreateStmt") {
    if (auto n = RelationName(s.value("relation", json()))) return "DROP TABLE " + *n;
    return refuse("CREATE TEMPORARY TABLE");
  } else if (kind == "CreateTableAsStmt") {
    auto n = RelationName(s.value("into", json()).value("rel", json()));
    if (!n) return refuse("CREATE TEMPORARY TABLE AS");
    if (s.value("objtype", "") == "OBJECT_MATVIEW") return "DROP MATERIALIZED VIEW " + *n;
    if (s.value("objtype", "") == "OBJECT_TABLE") return "DROP TABLE " + *n;
  } else if (kind == "ViewStmt") {
    if (s.value("replace", false)) return refuse("CREATE OR REPLACE VIEW may replace an existing view");
    if (auto n = RelationName(s.value("view", json()))) return "DROP VIEW " + *n;
    return refuse("CREATE TEMPORARY VIEW");
  } else if (kind == "CreateSeqStmt") {
    if (auto n = RelationName(s.value("sequence", json()))) return "DROP SEQUENCE " + *n;
    return refuse("CREATE TEMPORARY SEQUENCE");
  } else if (kind == "IndexStmt") {
    if (!s.contains("idxname")) return refuse("CREATE INDEX without a name (PostgreSQL picks one)");
    const json rel = s.value("relation", json());
    std::string name = Q(s["idxname"].get<std::string>());
    // An index lives in its table's schema.
    if (rel.contains("schemaname")) name = Q(rel["schemaname"].get<std::string>()) + "." + name;
    return "DROP INDEX " + name;
  } else if (kind == "CreateSchemaStmt") {
    if (s.contains("schemaElts")) return refuse("CREATE SCHEMA with schema elements");
    if (s.contains("schemaname")) return "DROP SCHEMA " + Q(s["schemaname"].get<std::string>());
  } else if (kind == "CreateExtensionStmt") {
    return "DROP EXTENSION " + Q(s.value("extname", ""));
  } else if (kind == "AlterTableStmt") {
    if (s.value("objtype", "") != "OBJECT_TABLE") return refuse("ALTER other than ALTER TABLE ... ADD COLUMN");
    auto table = RelationName(s.value("relation", json()));
    if (!table) return refuse("ALTER TABLE on a temporary table");
    std::vector<std::string> drops;
    for (const auto& c : s.value("cmds", json::array())) {
      const json cmd = c.value("AlterTableCmd", json());
      if (cmd.value("subtype", "") != "AT_AddColumn") {
        return refuse("ALTER TABLE " + cmd.value("subtype", std::string("?")) +
                      " (only ADD COLUMN has a derivable inverse)");
      }
      if (cmd.value("missing_ok", false)) {
        return refuse("ADD COLUMN IF NOT EXISTS: the column may have existed before");
      }
      drops.insert(drops.begin(), "DROP COLUMN " + Q(cmd["def"]["ColumnDef"].value("colname", "")));
    }
    if (drops.empty()) return refuse("ALTER TABLE without commands");
    std::string out = "ALTER TABLE " + *table + " ";
    for (size_t i = 0; i < drops.size(); ++i) out += (i ? ", " : "") + drops[i];
    return out;
  }
  return refuse(kind + " has no derivable inverse (only CREATE of a named object and ALTER TABLE ... ADD COLUMN "
                "have one)");
}

}  // namespace

Result<std::string> PostgresDialect::InverseOfRawSql(std::string_view sql_text) const {
  std::string text(sql_text);
  PgQueryParseResult r = pg_query_parse(text.c_str());
  if (r.error) {
    std::string msg = std::string("PostgreSQL's parser rejects it: ") + r.error->message;
    pg_query_free_parse_result(r);
    return FailedPrecondition(msg);
  }
  json tree = json::parse(r.parse_tree, nullptr, false);
  pg_query_free_parse_result(r);
  if (tree.is_discarded() || !tree.contains("stmts") || tree["stmts"].empty()) {
    return FailedPrecondition("it contains no statement");
  }
  std::vector<std::string> inverses;
  for (const auto& entry : tree["stmts"]) {
    const json stmt = entry.value("stmt", json());
    if (!stmt.is_object() || stmt.size() != 1) return FailedPrecondition("unexpected parse tree");
    const std::string kind = stmt.begin().key();
    auto inv = InverseOf(kind, stmt.begin().value());
    if (!inv.ok()) return inv.status();
    inverses.insert(inverses.begin(), *inv);
  }
  std::string out;
  for (const auto& s : inverses) out += (out.empty() ? "" : ";\n") + s;
  return out;
}

}  // namespace sluice::db
