// The strict YAML reader of the plan parser (parser_internal.h).
#include <algorithm>
#include <regex>
#include <set>

#include "common/sql_text.h"
#include "plan/parser_internal.h"

namespace sluice::plan::internal {

SourceLoc LocOf(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

Kind KindOf(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return Kind::kNull;
  if (n.IsSequence()) return Kind::kList;
  if (n.IsMap()) return Kind::kMap;
  if (n.Tag() != "?") return Kind::kString;  // quoted scalar or explicit tag
  const std::string& s = n.Scalar();
  static const std::set<std::string> kNull = {"", "~", "null", "Null", "NULL"};
  static const std::set<std::string> kBool = {"true", "True", "TRUE", "false", "False", "FALSE"};
  if (kNull.count(s)) return Kind::kNull;
  if (kBool.count(s)) return Kind::kBool;
  static const std::regex kInt(R"([-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)");
  static const std::regex kFloat(
      R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");
  if (std::regex_match(s, kInt)) return Kind::kInt;
  if (std::regex_match(s, kFloat)) return Kind::kFloat;
  return Kind::kString;
}

std::string KindName(Kind k) {
  switch (k) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "a boolean";
    case Kind::kInt: return "an integer";
    case Kind::kFloat: return "a number";
    case Kind::kString: return "a string";
    case Kind::kList: return "a list";
    case Kind::kMap: return "a map";
  }
  return "?";
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Suggest(const std::string& key, const std::vector<std::string>& allowed) {
  std::string best;
  size_t best_d = 3;
  for (const auto& a : allowed) {
    size_t d = EditDistance(sql::Lower(key), sql::Lower(a));
    if (d < best_d) {
      best_d = d;
      best = a;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string JoinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out += ", ";
    out += keys[i];
  }
  return out;
}

Map::Map(Reader& r, const YAML::Node& node, std::string context, std::vector<std::string> allowed)
    : r_(r), context_(std::move(context)), loc_(LocOf(node)) {
  Kind k = KindOf(node);
  if (k != Kind::kMap) {
    r_.Error(loc_, context_ + " must be a map, got " + KindName(k));
    return;
  }
  valid_ = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    SourceLoc kl = LocOf(key);
    if (!key.IsScalar()) {
      r_.Error(kl, "keys in " + context_ + " must be plain names");
      continue;
    }
    std::string name = key.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      r_.Error(kl, "unknown key '" + name + "' in " + context_ + Suggest(name, allowed) +
                       "; allowed keys: " + JoinKeys(allowed));
      continue;
    }
    if (entries_.count(name)) {
      r_.Error(kl, "duplicate key '" + name + "' in " + context_ + " (first at line " +
                       std::to_string(entries_[name].first.line) + ")");
      continue;
    }
    entries_[name] = {kl, it->second};
  }
}

void Map::Require(const std::string& key) const {
  if (!valid_) return;
  if (!Has(key)) r_.Error(loc_, context_ + " is missing required key '" + key + "'");
}

std::optional<std::string> Map::Str(const std::string& key, bool required) const {
  if (!valid_) return std::nullopt;
  if (!Has(key)) {
    if (required) Require(key);
    return std::nullopt;
  }
  YAML::Node v = Value(key);
  Kind k = KindOf(v);
  if (k != Kind::kString) {
    std::string hint;
    if (k == Kind::kInt || k == Kind::kFloat || k == Kind::kBool) {
      hint = " (quote it: \"" + v.Scalar() + "\")";
    }
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be a string, got " + KindName(k) + hint);
    return std::nullopt;
  }
  if (v.Scalar().find('\0') != std::string::npos) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " contains a NUL byte");
    return std::nullopt;
  }
  return v.Scalar();
}

std::optional<Name> Map::NameField(const std::string& key, bool required) const {
  auto s = Str(key, required);
  if (!s) return std::nullopt;
  if (s->empty()) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must not be empty");
    return std::nullopt;
  }
  SourceLoc l = LocOf(Value(key));
  return Name{*s, l.line ? l : KeyLoc(key)};
}

NullableString Map::NullStr(const std::string& key) const {
  NullableString out;
  if (!valid_ || !Has(key)) return out;
  out.present = true;
  out.loc = KeyLoc(key);
  if (KindOf(Value(key)) == Kind::kNull) {
    out.is_null = true;
    return out;
  }
  auto s = Str(key);
  if (!s) {
    out.present = false;
    return out;
  }
  out.value = *s;
  return out;
}

std::optional<bool> Map::Bool(const std::string& key) const {
  if (!valid_ || !Has(key)) return std::nullopt;
  YAML::Node v = Value(key);
  if (KindOf(v) != Kind::kBool) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be true or false, got " +
                              KindName(KindOf(v)) + (v.IsScalar() ? " '" + v.Scalar() + "'" : ""));
    return std::nullopt;
  }
  std::string s = sql::Lower(v.Scalar());
  return s == "true";
}

std::optional<int64_t> Map::Int(const std::string& key, int64_t min) const {
  if (!valid_ || !Has(key)) return std::nullopt;
  YAML::Node v = Value(key);
  if (KindOf(v) != Kind::kInt) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be an integer, got " + KindName(KindOf(v)));
    return std::nullopt;
  }
  int64_t n = 0;
  try {
    n = std::stoll(v.Scalar(), nullptr, 0);
  } catch (...) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " is out of range");
    return std::nullopt;
  }
  if (n < min) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be >= " + std::to_string(min));
    return std::nullopt;
  }
  return n;
}

std::optional<double> Map::Num(const std::string& key, double min) const {
  if (!valid_ || !Has(key)) return std::nullopt;
  YAML::Node v = Value(key);
  Kind k = KindOf(v);
  if (k != Kind::kInt && k != Kind::kFloat) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be a number, got " + KindName(k));
    return std::nullopt;
  }
  double d = 0;
  try {
    d = std::stod(v.Scalar());
  } catch (...) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " is not a valid number");
    return std::nullopt;
  }
  if (!(d >= min)) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be >= " + std::to_string(min));
    return std::nullopt;
  }
  return d;
}

std::vector<Name> Map::NameList(const std::string& key, bool required) const {
  std::vector<Name> out;
  if (!valid_) return out;
  if (!Has(key)) {
    if (required) Require(key);
    return out;
  }
  YAML::Node v = Value(key);
  if (KindOf(v) != Kind::kList) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be a list, got " + KindName(KindOf(v)));
    return out;
  }
  std::set<std::string> seen;
  for (const auto& item : v) {
    if (KindOf(item) != Kind::kString) {
      r_.Error(LocOf(item), "items of '" + key + "' in " + context_ + " must be strings, got " +
                                KindName(KindOf(item)));
      continue;
    }
    if (item.Scalar().empty()) {
      r_.Error(LocOf(item), "items of '" + key + "' in " + context_ + " must not be empty");
      continue;
    }
    if (!seen.insert(item.Scalar()).second) {
      r_.Error(LocOf(item), "duplicate name '" + item.Scalar() + "' in '" + key + "' of " + context_);
      continue;
    }
    out.push_back({item.Scalar(), LocOf(item)});
  }
  if (required && out.empty() && v.size() == 0) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must not be empty");
  }
  return out;
}

std::vector<std::string> Map::StrList(const std::string& key) const {
  std::vector<std::string> out;
  if (!valid_ || !Has(key)) return out;
  YAML::Node v = Value(key);
  if (KindOf(v) != Kind::kList) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be a list, got " + KindName(KindOf(v)));
    return out;
  }
  for (const auto& item : v) {
    if (KindOf(item) != Kind::kString) {
      r_.Error(LocOf(item), "items of '" + key + "' in " + context_ + " must be strings");
      continue;
    }
    out.push_back(item.Scalar());
  }
  return out;
}

std::map<std::string, std::string> Map::StrMap(const std::string& key, bool required) const {
  std::map<std::string, std::string> out;
  if (!valid_) return out;
  if (!Has(key)) {
    if (required) Require(key);
    return out;
  }
  YAML::Node v = Value(key);
  if (KindOf(v) != Kind::kMap) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be a map of column: expression, got " +
                              KindName(KindOf(v)));
    return out;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string col = it->first.Scalar();
    if (KindOf(it->second) != Kind::kString) {
      r_.Error(LocOf(it->first), "'" + key + "." + col + "' in " + context_ + " must be a string expression");
      continue;
    }
    if (out.count(col)) {
      r_.Error(LocOf(it->first), "duplicate key '" + col + "' in '" + key + "' of " + context_);
      continue;
    }
    out[col] = it->second.Scalar();
  }
  return out;
}

std::optional<std::string> Map::Enum(const std::string& key, const std::vector<std::string>& values,
                                     bool upper) const {
  auto s = Str(key);
  if (!s) return std::nullopt;
  std::string norm = *s;
  if (upper) {
    for (char& c : norm) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (std::find(values.begin(), values.end(), norm) == values.end()) {
    r_.Error(KeyLoc(key), "'" + key + "' in " + context_ + " must be one of " + JoinKeys(values) + ", got '" +
                              *s + "'");
    return std::nullopt;
  }
  return norm;
}

}  // namespace sluice::plan::internal
