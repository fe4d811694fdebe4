// A statement's table and column references, from PostgreSQL's own parse
// tree (libpg_query's JSON), resolved over a catalog snapshot.
//
// Scope rule, deliberately coarse: the relations of the whole statement
// (every FROM, JOIN, subquery, CTE body, INSERT / UPDATE / DELETE target)
// form one pool. A qualified column reference (`o.total`, `orders.total`,
// `o.*`) resolves to the relations of that alias or name; an unqualified
// one to every relation of the pool that has such a column; a bare `*` to
// every column of the relations its own SELECT's FROM names (a CTE or a
// subquery there contributes what it selects, resolved in its own body).
// This over-approximates (a column of the same
// name in two joined tables counts for both), which can only add readers,
// never hide one. CTE names are not relations; a CTE's own body is.
#include <pg_query.h>

#include <algorithm>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "audit/audit.h"

namespace sluice::audit {
namespace {

using nlohmann::json;

struct Rel {
  std::string schema, relation, alias;
  bool known = false;
};

std::string Sval(const json& node) {
  if (node.contains("String")) return node["String"].value("sval", "");
  return "";
}

class Resolver {
 public:
  Resolver(const Catalog& c, const std::vector<std::string>& path) : cat_(c), path_(path) {}

  std::vector<Reference> Run(const json& tree) {
    CollectCtes(tree);
    Walk(tree);
    for (const auto& [fields, kind] : colrefs_) ResolveColumn(fields, kind);
    for (const auto& r : stars_) {
      if (const auto* cols = cat_.Columns(r.schema, r.relation)) {
        for (const auto& c : *cols) Add(r, c, "star");
      }
    }
    for (const auto& w : writes_) {
      for (const auto& r : RelsNamed(w.first)) Add(r, w.second, "write");
    }
    std::set<Reference> uniq(out_.begin(), out_.end());
    return {uniq.begin(), uniq.end()};
  }

 private:
  void CollectCtes(const json& n) {
    if (n.is_object()) {
      for (const auto& [k, v] : n.items()) {
        if (k == "CommonTableExpr") ctes_.insert(v.value("ctename", ""));
        CollectCtes(v);
      }
    } else if (n.is_array()) {
      for (const auto& v : n) CollectCtes(v);
    }
  }

  // The relation a RangeVar names; nullopt for a CTE.
  std::optional<Rel> Resolve(const json& rv) {
    Rel r;
    r.relation = rv.value("relname", "");
    r.schema = rv.value("schemaname", "");
    if (rv.contains("alias")) r.alias = rv["alias"].value("aliasname", "");
    if (r.schema.empty() && ctes_.count(r.relation)) return std::nullopt;
    if (r.schema.empty()) {
      for (const auto& s : path_) {
        if (cat_.Columns(s, r.relation)) {
          r.schema = s;
          break;
        }
      }
    }
    r.known = cat_.Columns(r.schema, r.relation) != nullptr;
    return r;
  }

  void Add(const Rel& r, const std::string& column, const std::string& kind) {
    if (!r.known) return;
    out_.push_back({r.schema, r.relation, column, kind});
  }

  // Relations answering to `name` (an alias, or the relation's own name
  // when it has no alias).
  std::vector<Rel> RelsNamed(const std::string& name) {
    std::vector<Rel> out;
    for (const auto& r : rels_) {
      if (r.alias == name || (r.alias.empty() && r.relation == name)) out.push_back(r);
    }
    return out;
  }

  void ResolveColumn(const std::vector<std::string>& f, const std::string& kind) {
    if (f.empty()) return;
    const std::string& col = f.back();
    std::vector<Rel> cands;
    if (f.size() == 1) {
      cands = rels_;
    } else {
      cands = RelsNamed(f[f.size() - 2]);
      if (f.size() >= 3) {
        std::erase_if(cands, [&](const Rel& r) { return r.schema != f[f.size() - 3]; });
      }
    }
    for (const auto& r : cands) {
      const auto* cols = cat_.Columns(r.schema, r.relation);
      if (!cols) continue;
      if (col == "*") {
        for (const auto& c : *cols) Add(r, c, "star");
      } else if (std::find(cols->begin(), cols->end(), col) != cols->end()) {
        Add(r, col, kind);
      }
    }
  }

  // INSERT column lists and UPDATE SET targets: written columns.
  void Writes(const json& stmt, const char* list) {
    if (!stmt.contains("relation")) return;
    // A statement's target is a bare RangeVar (no node wrapper): Walk does
    // not see it, so it joins the pool here.
    auto r = Resolve(stmt["relation"]);
    if (!r) return;
    rels_.push_back(*r);
    Add(*r, "", "write");
    const std::string name = r->alias.empty() ? r->relation : r->alias;
    if (!*list) return;
    for (const auto& t : stmt.value(list, json::array())) {
      if (t.contains("ResTarget")) {
        std::string c = t["ResTarget"].value("name", "");
        if (!c.empty()) writes_.push_back({name, c});
      }
    }
  }

  // The base relations a FROM list names directly (through joins).
  void DirectRels(const json& n, std::vector<Rel>* out) {
    if (n.is_array()) {
      for (const auto& x : n) DirectRels(x, out);
      return;
    }
    if (!n.is_object()) return;
    if (n.contains("RangeVar")) {
      if (auto r = Resolve(n["RangeVar"])) out->push_back(*r);
    } else if (n.contains("JoinExpr")) {
      DirectRels(n["JoinExpr"].value("larg", json()), out);
      DirectRels(n["JoinExpr"].value("rarg", json()), out);
    }
  }

  void VariableSet(const json& v) {
    std::string name = v.value("name", "");
    if (name != "search_path" && name != "sluice.version") return;
    for (const auto& a : v.value("args", json::array())) {
      if (!a.contains("A_Const")) continue;
      const json& c = a["A_Const"];
      std::string s = c.contains("sval") && c["sval"].is_object() ? c["sval"].value("sval", "") : "";
      if (s.empty()) continue;
      if (name == "sluice.version") {
        if (s == "live" || cat_.base_schema.empty()) continue;
        s = cat_.base_schema + "_" + s;
      }
      out_.push_back({s, "", "", "session"});
    }
  }

  void Walk(const json& n) {
    if (n.is_array()) {
      for (const auto& v : n) Walk(v);
      return;
    }
    if (!n.is_object()) return;
    for (const auto& [k, v] : n.items()) {
      if (k == "RangeVar") {
        if (auto r = Resolve(v)) {
          rels_.push_back(*r);
          Add(*r, "", "read");
        }
        continue;
      }
      if (k == "ColumnRef") {
        std::vector<std::string> f;
        for (const auto& x : v.value("fields", json::array())) f.push_back(x.contains("A_Star") ? "*" : Sval(x));
        if (f.size() == 1 && f[0] == "*") {
          // A bare `*` expands the relations of its own SELECT's FROM
          // (not a CTE's or a subquery's: their columns are what they select).
          if (!frames_.empty()) stars_.insert(stars_.end(), frames_.back().begin(), frames_.back().end());
        } else {
          colrefs_.push_back({f, "read"});
        }
        continue;
      }
      if (k == "SelectStmt") {
        std::vector<Rel> direct;
        DirectRels(v.value("fromClause", json::array()), &direct);
        frames_.push_back(std::move(direct));
        Walk(v);
        frames_.pop_back();
        continue;
      }
      if (k == "InsertStmt") Writes(v, "cols");
      if (k == "UpdateStmt") Writes(v, "targetList");
      if (k == "DeleteStmt") Writes(v, "");
      if (k == "VariableSetStmt") VariableSet(v);
      Walk(v);
    }
  }

  const Catalog& cat_;
  const std::vector<std::string>& path_;
  std::set<std::string> ctes_;
  std::vector<Rel> rels_;
  std::vector<std::pair<std::vector<std::string>, std::string>> colrefs_;
  std::vector<std::pair<std::string, std::string>> writes_;
  std::vector<std::vector<Rel>> frames_;  // direct relations of the SELECTs being walked
  std::vector<Rel> stars_;                // relations a bare `*` expands  // (relation name or alias, column)
  std::vector<Reference> out_;
};

}  // namespace

Result<std::vector<Reference>> ResolveStatement(const std::string& sql, const Catalog& catalog,
                                                const std::vector<std::string>& search_path) {
  PgQueryParseResult r = pg_query_parse(sql.c_str());
  if (r.error) {
    std::string msg = std::string("PostgreSQL's parser rejects the statement: ") + r.error->message;
    pg_query_free_parse_result(r);
    return InvalidArgument(msg);
  }
  json tree = json::parse(r.parse_tree, nullptr, false);
  pg_query_free_parse_result(r);
  if (tree.is_discarded()) return Internal("libpg_query returned a parse tree that is not JSON");
  return Resolver(catalog, search_path).Run(tree);
}

}  // namespace sluice::audit
