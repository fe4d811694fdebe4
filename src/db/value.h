// Values crossing the adapter interface.
//
// Every value travels as text plus a storage type, so keys read from one
// query can be bound into the next without losing their type (SQLite compares
// the integer 10 and the text '10' differently) and so checkpoints can be
// stored as JSON. PostgreSQL adapters report kText for everything non-NULL
// and bind text parameters, letting the server infer the type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::db {

struct Value {
  enum class Type { kNull, kInt, kReal, kText, kBlob };
  Type type = Type::kNull;
  std::string text;  // decimal for kInt/kReal, raw bytes for kBlob

  static Value Null() { return {}; }
  static Value Int(int64_t v) { return {Type::kInt, std::to_string(v)}; }
  static Value Text(std::string s) { return {Type::kText, std::move(s)}; }
  static Value Real(double d);

  bool is_null() const { return type == Type::kNull; }
  // Integer value of kInt/kText holding an integer; `fallback` otherwise.
  int64_t AsInt(int64_t fallback = 0) const;
  double AsReal(double fallback = 0) const;
  bool operator==(const Value& o) const { return type == o.type && text == o.text; }
};

using Row = std::vector<Value>;

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  int64_t affected = 0;  // rows changed by INSERT/UPDATE/DELETE

  bool empty() const { return rows.empty(); }
  // First column of the first row, or a NULL value.
  const Value& Scalar() const;
};

}  // namespace sluice::db
