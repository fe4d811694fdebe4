#include "engine/schema_json.h"

#include <nlohmann/json.hpp>

namespace sluice::db {

using nlohmann::json;

static void OptToJson(json& j, const char* key, const std::optional<std::string>& v) {
  if (v) j[key] = *v;
}
static std::optional<std::string> OptFromJson(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<std::string>();
}

void to_json(json& j, const ForeignKeySpec& f) {
  j = json{{"name", f.name}, {"columns", f.columns}, {"ref_table", f.ref_table}, {"ref_columns", f.ref_columns},
           {"on_delete", f.on_delete}, {"on_update", f.on_update}, {"match_type", f.match_type},
           {"on_delete_set_columns", f.on_delete_set_columns}, {"deferrable", f.deferrable},
           {"initially_deferred", f.initially_deferred}};
}
void from_json(const json& j, ForeignKeySpec& f) {
  j.at("name").get_to(f.name);
  j.at("columns").get_to(f.columns);
  j.at("ref_table").get_to(f.ref_table);
  j.at("ref_columns").get_to(f.ref_columns);
  j.at("on_delete").get_to(f.on_delete);
  j.at("on_update").get_to(f.on_update);
  j.at("match_type").get_to(f.match_type);
  j.at("on_delete_set_columns").get_to(f.on_delete_set_columns);
  j.at("deferrable").get_to(f.deferrable);
  j.at("initially_deferred").get_to(f.initially_deferred);
}
void to_json(json& j, const ColumnInfo& c) {
  j = json{{"name", c.name}, {"type", c.type}, {"not_null", c.not_null}, {"identity", c.identity},
           {"identity_always", c.identity_always}, {"generated", c.generated}};
  OptToJson(j, "default", c.default_expr);
  OptToJson(j, "comment", c.comment);
}
void from_json(const json& j, ColumnInfo& c) {
  j.at("name").get_to(c.name);
  j.at("type").get_to(c.type);
  j.at("not_null").get_to(c.not_null);
  j.at("identity").get_to(c.identity);
  j.at("identity_always").get_to(c.identity_always);
  j.at("generated").get_to(c.generated);
  c.default_expr = OptFromJson(j, "default");
  c.comment = OptFromJson(j, "comment");
}
void to_json(json& j, const IndexInfo& i) {
  j = json{{"name", i.name}, {"table", i.table}, {"columns", i.columns}, {"unique", i.unique},
           {"primary", i.primary}, {"valid", i.valid}, {"partial", i.partial}, {"constraint", i.constraint},
           {"definition", i.definition}};
}
void from_json(const json& j, IndexInfo& i) {
  j.at("name").get_to(i.name);
  j.at("table").get_to(i.table);
  j.at("columns").get_to(i.columns);
  j.at("unique").get_to(i.unique);
  j.at("primary").get_to(i.primary);
  j.at("valid").get_to(i.valid);
  j.at("partial").get_to(i.partial);
  j.at("constraint").get_to(i.constraint);
  j.at("definition").get_to(i.definition);
}
void to_json(json& j, const ConstraintInfo& c) {
  j = json{{"name", c.name}, {"type", static_cast<int>(c.type)}, {"columns", c.columns},
           {"definition", c.definition}, {"check_expr", c.check_expr}, {"validated", c.validated}};
  if (c.fk) j["fk"] = *c.fk;
}
void from_json(const json& j, ConstraintInfo& c) {
  j.at("name").get_to(c.name);
  c.type = static_cast<ConstraintInfo::Type>(j.at("type").get<int>());
  j.at("columns").get_to(c.columns);
  j.at("definition").get_to(c.definition);
  j.at("check_expr").get_to(c.check_expr);
  j.at("validated").get_to(c.validated);
  if (j.contains("fk")) c.fk = j["fk"].get<ForeignKeySpec>();
}
void to_json(json& j, const TableInfo& t) {
  j = json{{"name", t.name}, {"columns", t.columns}, {"primary_key", t.primary_key}, {"indexes", t.indexes},
           {"constraints", t.constraints}, {"replica_identity", t.replica_identity},
           {"replica_identity_index", t.replica_identity_index}};
  OptToJson(j, "comment", t.comment);
}
void from_json(const json& j, TableInfo& t) {
  j.at("name").get_to(t.name);
  j.at("columns").get_to(t.columns);
  j.at("primary_key").get_to(t.primary_key);
  j.at("indexes").get_to(t.indexes);
  j.at("constraints").get_to(t.constraints);
  j.at("replica_identity").get_to(t.replica_identity);
  if (j.contains("replica_identity_index")) j.at("replica_identity_index").get_to(t.replica_identity_index);
  t.comment = OptFromJson(j, "comment");
}

}  // namespace sluice::db

namespace sluice::engine {

std::string SchemaToJson(const db::Schema& s) {
  nlohmann::json j;
  j["name"] = s.name;
  j["views"] = s.views;
  j["tables"] = nlohmann::json::array();
  for (const auto& [_, t] : s.tables) j["tables"].push_back(t);
  return j.dump();
}

Result<db::Schema> SchemaFromJson(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    db::Schema s;
    j.at("name").get_to(s.name);
    j.at("views").get_to(s.views);
    for (const auto& t : j.at("tables")) {
      db::TableInfo ti = t.get<db::TableInfo>();
      s.tables[ti.name] = std::move(ti);
    }
    return s;
  } catch (const std::exception& e) {
    return Internal(std::string("stored schema snapshot is unreadable: ") + e.what());
  }
}

}  // namespace sluice::engine
