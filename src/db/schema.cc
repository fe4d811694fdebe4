#include "db/schema.h"

#include <algorithm>
#include <cstdlib>

#include "db/value.h"

namespace sluice::db {

Value Value::Real(double d) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", d);
  return {Type::kReal, buf};
}

int64_t Value::AsInt(int64_t fallback) const {
  if (type == Type::kNull || text.empty()) return fallback;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str()) return fallback;
  return v;
}

double Value::AsReal(double fallback) const {
  if (type == Type::kNull || text.empty()) return fallback;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return fallback;
  return v;
}

const Value& QueryResult::Scalar() const {
  static const Value kNull;
  if (rows.empty() || rows[0].empty()) return kNull;
  return rows[0][0];
}

const ColumnInfo* TableInfo::FindColumn(const std::string& name) const {
  for (const auto& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const ConstraintInfo* TableInfo::FindConstraint(const std::string& name) const {
  for (const auto& c : constraints) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> TableInfo::UsableKey() const {
  if (!primary_key.empty()) return primary_key;
  for (const auto& idx : indexes) {
    if (!idx.unique || idx.partial || !idx.valid || idx.columns.empty()) continue;
    bool ok = std::all_of(idx.columns.begin(), idx.columns.end(), [&](const std::string& c) {
      const ColumnInfo* col = FindColumn(c);
      return !c.empty() && col && col->not_null;
    });
    if (ok) return idx.columns;
  }
  return {};
}

const TableInfo* Schema::FindTable(const std::string& name) const {
  auto it = tables.find(name);
  return it == tables.end() ? nullptr : &it->second;
}

const IndexInfo* Schema::FindIndex(const std::string& name) const {
  for (const auto& [_, t] : tables) {
    for (const auto& i : t.indexes) {
      if (i.name == name) return &i;
    }
  }
  return nullptr;
}

}  // namespace sluice::db
