// Strict plan parser on top of yaml-cpp. yaml-cpp's exceptions are caught
// here and become diagnostics; nothing throws out of this file.
#include "plan/parser.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "common/sql_text.h"
#include "common/utf8.h"

namespace sluice::plan {

std::string FormatLoc(const std::string& file, SourceLoc loc) {
  if (loc.line <= 0) return file;
  return file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}

std::string Diagnostic::ToString() const {
  return FormatLoc(file, loc) + (severity == Severity::kError ? ": error: " : ": warning: ") + message;
}

Status DiagnosticsToStatus(const std::vector<Diagnostic>& errors) {
  std::string msg;
  for (const auto& d : errors) {
    if (d.severity != Diagnostic::Severity::kError) continue;
    if (!msg.empty()) msg += "\n";
    msg += d.ToString();
  }
  if (msg.empty()) return Status::Ok();
  return InvalidPlan(msg);
}

namespace {

SourceLoc LocOf(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

// What a YAML node holds, by YAML 1.2 core-schema rules for plain scalars.
enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };

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

class Reader;

// A map node whose keys were checked against an allowed set. Lookups of
// keys that were not in the allowed set are programmer errors.
class Map {
 public:
  Map(Reader& r, const YAML::Node& node, std::string context, std::vector<std::string> allowed);

  bool valid() const { return valid_; }
  bool Has(const std::string& key) const { return entries_.count(key) > 0; }
  YAML::Node Value(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? YAML::Node() : it->second.second;
  }
  SourceLoc KeyLoc(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? loc_ : it->second.first;
  }
  SourceLoc loc() const { return loc_; }
  const std::string& context() const { return context_; }
  Reader& reader() const { return r_; }

  // Typed accessors. Each reports a diagnostic on a wrong type or a missing
  // required key and returns nullopt.
  std::optional<std::string> Str(const std::string& key, bool required = false) const;
  std::optional<Name> NameField(const std::string& key, bool required = false) const;
  NullableString NullStr(const std::string& key) const;
  std::optional<bool> Bool(const std::string& key) const;
  std::optional<int64_t> Int(const std::string& key, int64_t min = 0) const;
  std::optional<double> Num(const std::string& key, double min = 0) const;
  std::vector<Name> NameList(const std::string& key, bool required = false) const;
  std::vector<std::string> StrList(const std::string& key) const;
  std::map<std::string, std::string> StrMap(const std::string& key, bool required = false) const;
  std::optional<std::string> Enum(const std::string& key, const std::vector<std::string>& values,
                                  bool upper = true) const;
  void Require(const std::string& key) const;

 private:
  Reader& r_;
  std::string context_;
  SourceLoc loc_;
  bool valid_ = false;
  std::map<std::string, std::pair<SourceLoc, YAML::Node>> entries_;
};

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void Error(SourceLoc loc, std::string msg) {
    diags_.push_back({Diagnostic::Severity::kError, file_, loc, std::move(msg)});
  }
  void Warning(SourceLoc loc, std::string msg) {
    diags_.push_back({Diagnostic::Severity::kWarning, file_, loc, std::move(msg)});
  }
  bool has_errors() const {
    return std::any_of(diags_.begin(), diags_.end(),
                       [](const Diagnostic& d) { return d.severity == Diagnostic::Severity::kError; });
  }
  std::vector<Diagnostic>& diags() { return diags_; }

 private:
  std::string file_;
  std::vector<Diagnostic> diags_;
};

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

// --- object parsers -------------------------------------------------------

const std::vector<std::string> kFkActions = {"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"};
const std::vector<std::string> kMatchTypes = {"SIMPLE", "FULL", "PARTIAL"};

std::optional<CheckConstraint> ParseCheck(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(), {"name", "constraint", "no_inherit"});
  if (!m.valid()) return std::nullopt;
  CheckConstraint c;
  c.loc = m.loc();
  if (auto n = m.NameField("name", true)) c.name = *n;
  if (auto s = m.Str("constraint", true)) c.constraint = *s;
  c.no_inherit = m.Bool("no_inherit").value_or(false);
  return c;
}

std::optional<ForeignKeyReference> ParseReference(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(),
        {"name", "table", "column", "on_delete", "on_update", "match_type", "deferrable", "initially_deferred"});
  if (!m.valid()) return std::nullopt;
  ForeignKeyReference r;
  r.loc = m.loc();
  if (auto n = m.NameField("name", true)) r.name = *n;
  if (auto n = m.NameField("table", true)) r.table = *n;
  if (auto n = m.NameField("column", true)) r.column = *n;
  if (auto s = m.Enum("on_delete", kFkActions)) r.on_delete = *s;
  if (auto s = m.Enum("on_update", kFkActions)) r.on_update = *s;
  if (auto s = m.Enum("match_type", kMatchTypes)) r.match_type = *s;
  r.deferrable = m.Bool("deferrable").value_or(false);
  r.initially_deferred = m.Bool("initially_deferred").value_or(false);
  return r;
}

std::optional<TableForeignKeyReference> ParseTableReference(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(),
        {"table", "columns", "on_delete", "on_update", "match_type", "on_delete_set_columns"});
  if (!m.valid()) return std::nullopt;
  TableForeignKeyReference r;
  r.loc = m.loc();
  if (auto n = m.NameField("table", true)) r.table = *n;
  r.columns = m.NameList("columns", true);
  if (auto s = m.Enum("on_delete", kFkActions)) r.on_delete = *s;
  if (auto s = m.Enum("on_update", kFkActions)) r.on_update = *s;
  if (auto s = m.Enum("match_type", kMatchTypes)) r.match_type = *s;
  r.on_delete_set_columns = m.NameList("on_delete_set_columns");
  return r;
}

IndexParameters ParseIndexParameters(const Map& parent) {
  IndexParameters p;
  if (!parent.Has("index_parameters")) return p;
  Map m(parent.reader(), parent.Value("index_parameters"), "index_parameters of " + parent.context(),
        {"tablespace", "storage_parameters", "include_columns"});
  if (!m.valid()) return p;
  p.tablespace = m.Str("tablespace").value_or("");
  p.storage_parameters = m.Str("storage_parameters").value_or("");
  p.include_columns = m.NameList("include_columns");
  return p;
}

std::optional<ExcludeSpec> ParseExclude(const Map& parent) {
  if (!parent.Has("exclude")) return std::nullopt;
  Map m(parent.reader(), parent.Value("exclude"), "exclude of " + parent.context(),
        {"index_method", "elements", "predicate"});
  if (!m.valid()) return std::nullopt;
  ExcludeSpec e;
  e.index_method = m.Str("index_method").value_or("");
  e.elements = m.Str("elements", true).value_or("");
  e.predicate = m.Str("predicate").value_or("");
  return e;
}

std::optional<ConstraintType> ParseConstraintType(const Map& m, const std::vector<std::string>& allowed) {
  auto s = m.Enum("type", allowed, /*upper=*/false);
  if (!s) return std::nullopt;
  if (*s == "unique") return ConstraintType::kUnique;
  if (*s == "check") return ConstraintType::kCheck;
  if (*s == "primary_key") return ConstraintType::kPrimaryKey;
  if (*s == "foreign_key") return ConstraintType::kForeignKey;
  return ConstraintType::kExclude;
}

ColumnDef ParseColumn(Reader& r, const YAML::Node& node, const std::string& context) {
  ColumnDef c;
  Map m(r, node, context,
        {"name", "type", "nullable", "pk", "unique", "default", "comment", "check", "references", "generated"});
  c.loc = m.loc();
  if (!m.valid()) return c;
  if (auto n = m.NameField("name", true)) c.name = *n;
  if (auto t = m.Str("type", true)) {
    if (t->empty()) r.Error(m.KeyLoc("type"), "'type' in " + context + " must not be empty");
    c.type = *t;
  }
  c.nullable = m.Bool("nullable").value_or(false);
  c.pk = m.Bool("pk").value_or(false);
  c.unique = m.Bool("unique").value_or(false);
  NullableString def = m.NullStr("default");
  if (def.present && !def.is_null) c.default_expr = def.value;
  NullableString com = m.NullStr("comment");
  if (com.present && !com.is_null) c.comment = com.value;
  c.check = ParseCheck(m, "check");
  c.references = ParseReference(m, "references");
  if (m.Has("generated")) {
    Map g(r, m.Value("generated"), "generated of " + context, {"expression", "identity"});
    if (g.valid()) {
      GeneratedColumn gen;
      gen.expression = g.Str("expression").value_or("");
      if (g.Has("identity")) {
        Map id(r, g.Value("identity"), "identity of " + context, {"sequence_options", "user_specified_values"});
        if (id.valid()) {
          gen.identity = true;
          gen.sequence_options = id.Str("sequence_options").value_or("");
          if (auto u = id.Enum("user_specified_values", {"ALWAYS", "BY DEFAULT"})) gen.user_specified_values = *u;
        }
      }
      if (gen.expression.empty() && !gen.identity) {
        r.Error(g.loc(), "generated of " + context + " needs 'expression' or 'identity'");
      }
      if (!gen.expression.empty() && gen.identity) {
        r.Error(g.loc(), "generated of " + context + " cannot have both 'expression' and 'identity'");
      }
      c.generated = gen;
    }
  }
  return c;
}

std::vector<ColumnDef> ParseColumns(Reader& r, const Map& m, const std::string& context) {
  std::vector<ColumnDef> out;
  if (!m.Has("columns")) {
    m.Require("columns");
    return out;
  }
  YAML::Node v = m.Value("columns");
  if (KindOf(v) != Kind::kList) {
    r.Error(m.KeyLoc("columns"), "'columns' in " + context + " must be a list, got " + KindName(KindOf(v)));
    return out;
  }
  std::map<std::string, int> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    ColumnDef c = ParseColumn(r, v[i], "column #" + std::to_string(i + 1) + " of " + context);
    if (!c.name.empty()) {
      auto [it, fresh] = seen.emplace(c.name.value, c.name.loc.line);
      if (!fresh) {
        r.Error(c.name.loc, "duplicate column name '" + c.name.value + "' in " + context + " (first at line " +
                                std::to_string(it->second) + ")");
      }
    }
    out.push_back(std::move(c));
  }
  if (v.size() == 0) r.Error(m.KeyLoc("columns"), "'columns' in " + context + " must not be empty");
  return out;
}

// --- operations -------------------------------------------------------------

using OpParser = std::function<std::optional<OperationBody>(Reader&, const YAML::Node&, const std::string&)>;

std::optional<OperationBody> ParseCreateTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name", "columns", "comment", "constraints"});
  if (!m.valid()) return std::nullopt;
  CreateTable op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  op.columns = ParseColumns(r, m, ctx);
  op.comment = m.Str("comment");
  if (m.Has("constraints")) {
    YAML::Node cs = m.Value("constraints");
    if (KindOf(cs) != Kind::kList) {
      r.Error(m.KeyLoc("constraints"), "'constraints' in " + ctx + " must be a list");
    } else {
      std::set<std::string> names;
      for (size_t i = 0; i < cs.size(); ++i) {
        std::string cctx = "constraint #" + std::to_string(i + 1) + " of " + ctx;
        Map cm(r, cs[i], cctx,
               {"name", "type", "columns", "deferrable", "initially_deferred", "nulls_not_distinct", "no_inherit",
                "check", "references", "exclude", "index_parameters"});
        if (!cm.valid()) continue;
        ConstraintDef c;
        c.loc = cm.loc();
        if (auto v = cm.NameField("name", true)) {
          c.name = *v;
          if (!names.insert(v->value).second) {
            r.Error(v->loc, "duplicate constraint name '" + v->value + "' in " + ctx);
          }
        }
        cm.Require("type");
        if (auto t = ParseConstraintType(cm, {"unique", "check", "primary_key", "foreign_key", "exclude"})) c.type = *t;
        c.columns = cm.NameList("columns");
        c.deferrable = cm.Bool("deferrable").value_or(false);
        c.initially_deferred = cm.Bool("initially_deferred").value_or(false);
        c.nulls_not_distinct = cm.Bool("nulls_not_distinct").value_or(false);
        c.no_inherit = cm.Bool("no_inherit").value_or(false);
        c.check = cm.Str("check").value_or("");
        c.references = ParseTableReference(cm, "references");
        c.exclude = ParseExclude(cm);
        c.index_parameters = ParseIndexParameters(cm);
        switch (c.type) {
          case ConstraintType::kCheck:
            if (c.check.empty()) r.Error(cm.loc(), cctx + ": a check constraint needs 'check'");
            break;
          case ConstraintType::kForeignKey:
            if (!c.references) r.Error(cm.loc(), cctx + ": a foreign_key constraint needs 'references'");
            [[fallthrough]];
          case ConstraintType::kUnique:
          case ConstraintType::kPrimaryKey:
            if (c.columns.empty()) r.Error(cm.loc(), cctx + ": needs a non-empty 'columns' list");
            break;
          case ConstraintType::kExclude:
            if (!c.exclude) r.Error(cm.loc(), cctx + ": an exclude constraint needs 'exclude'");
            break;
        }
        op.constraints.push_back(std::move(c));
      }
    }
  }
  return op;
}

// `fallback:` next to `up`: an SQL expression over the old row, never empty.
std::optional<std::string> ParseFallback(Reader& r, const Map& m, const std::string& ctx) {
  auto f = m.Str("fallback");
  if (f && sql::Trim(*f).empty()) {
    r.Error(m.KeyLoc("fallback"), "'fallback' in " + ctx + " must not be empty; leave it out to store NULL");
    f.reset();
  }
  return f;
}

std::optional<OperationBody> ParseAddColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "column", "up", "fallback"});
  if (!m.valid()) return std::nullopt;
  AddColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (m.Has("column")) {
    op.column = ParseColumn(r, m.Value("column"), "column of " + ctx);
  } else {
    m.Require("column");
  }
  op.up = m.Str("up");
  if (op.up && sql::Trim(*op.up).empty()) op.up.reset();
  op.fallback = ParseFallback(r, m, ctx);
  if (op.fallback && !op.up) {
    r.Error(m.KeyLoc("fallback"), "'fallback' in " + ctx + " needs 'up': it replaces what 'up' could not convert");
  }
  return op;
}

std::optional<OperationBody> ParseAlterColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx,
        {"table", "column", "name", "type", "nullable", "default", "comment", "check", "unique", "references", "up",
         "down", "fallback"});
  if (!m.valid()) return std::nullopt;
  AlterColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("column", true)) op.column = *v;
  if (auto v = m.NameField("name")) op.name = *v;
  op.type = m.Str("type");
  op.nullable = m.Bool("nullable");
  op.default_expr = m.NullStr("default");
  op.comment = m.NullStr("comment");
  op.check = ParseCheck(m, "check");
  if (m.Has("unique")) {
    Map u(r, m.Value("unique"), "unique of " + ctx, {"name"});
    if (u.valid()) {
      UniqueSpec spec;
      if (auto v = u.NameField("name", true)) spec.name = *v;
      op.unique = spec;
    }
  }
  op.references = ParseReference(m, "references");
  op.up = m.Str("up");
  op.down = m.Str("down");
  if (op.up && sql::Trim(*op.up).empty()) op.up.reset();
  if (op.down && sql::Trim(*op.down).empty()) op.down.reset();
  op.fallback = ParseFallback(r, m, ctx);
  bool any = op.type || op.nullable || op.default_expr.present || op.comment.present || op.check || op.unique ||
             op.references || !op.name.empty();
  if (!any && !r.has_errors()) {
    r.Error(m.loc(), ctx + " changes nothing: give at least one of type, nullable, default, comment, check, "
                           "unique, references");
  }
  return op;
}

std::optional<OperationBody> ParseRenameColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  if (!op.from.empty() && op.from.value == op.to.value) {
    r.Error(op.to.loc, ctx + " renames '" + op.from.value + "' to itself");
  }
  return op;
}

std::optional<OperationBody> ParseDropColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "column", "down"});
  if (!m.valid()) return std::nullopt;
  DropColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("column", true)) op.column = *v;
  op.down = m.Str("down");
  if (op.down && sql::Trim(*op.down).empty()) op.down.reset();
  return op;
}

std::optional<OperationBody> ParseRenameTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameTable op;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  if (!op.from.empty() && op.from.value == op.to.value) {
    r.Error(op.to.loc, ctx + " renames '" + op.from.value + "' to itself");
  }
  return op;
}

std::optional<OperationBody> ParseDropTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name"});
  if (!m.valid()) return std::nullopt;
  DropTable op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  return op;
}

std::optional<OperationBody> ParseCreateIndex(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name", "table", "columns", "predicate", "method", "storage_parameters", "unique"});
  if (!m.valid()) return std::nullopt;
  CreateIndex op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  if (auto v = m.NameField("table", true)) op.table = *v;
  op.predicate = m.Str("predicate").value_or("");
  if (auto s = m.Enum("method", {"btree", "hash", "gist", "spgist", "gin", "brin"}, false)) op.method = *s;
  op.storage_parameters = m.Str("storage_parameters").value_or("");
  op.unique = m.Bool("unique").value_or(false);
  if (!m.Has("columns")) {
    m.Require("columns");
    return op;
  }
  YAML::Node cols = m.Value("columns");
  if (KindOf(cols) != Kind::kList) {
    r.Error(m.KeyLoc("columns"), "'columns' in " + ctx + " must be a list, got " + KindName(KindOf(cols)));
    return op;
  }
  if (cols.size() == 0) r.Error(m.KeyLoc("columns"), "'columns' in " + ctx + " must not be empty");
  for (size_t i = 0; i < cols.size(); ++i) {
    IndexField f;
    f.loc = LocOf(cols[i]);
    if (KindOf(cols[i]) == Kind::kString) {
      // Older pgroll files list plain column names.
      f.column = {cols[i].Scalar(), f.loc};
    } else {
      std::string fctx = "column #" + std::to_string(i + 1) + " of " + ctx;
      Map fm(r, cols[i], fctx, {"column", "collate", "sort", "opclass", "nulls"});
      if (!fm.valid()) continue;
      if (auto v = fm.NameField("column", true)) f.column = *v;
      f.collate = fm.Str("collate").value_or("");
      if (auto s = fm.Enum("sort", {"ASC", "DESC"})) f.sort = *s;
      if (auto s = fm.Enum("nulls", {"FIRST", "LAST"})) f.nulls = *s;
      if (fm.Has("opclass")) {
        Map om(r, fm.Value("opclass"), "opclass of " + fctx, {"name", "params"});
        if (om.valid()) {
          f.opclass = om.Str("name").value_or("");
          f.opclass_params = om.StrList("params");
        }
      }
    }
    op.columns.push_back(std::move(f));
  }
  return op;
}

std::optional<OperationBody> ParseDropIndex(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name"});
  if (!m.valid()) return std::nullopt;
  DropIndex op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  return op;
}

std::optional<OperationBody> ParseCreateConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx,
        {"table", "name", "type", "columns", "check", "references", "index_parameters", "no_inherit", "deferrable",
         "initially_deferred", "nulls_not_distinct", "exclude", "up", "down"});
  if (!m.valid()) return std::nullopt;
  CreateConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  m.Require("type");
  if (auto t = ParseConstraintType(m, {"unique", "check", "foreign_key", "primary_key", "exclude"})) op.type = *t;
  op.columns = m.NameList("columns");
  op.check = m.Str("check").value_or("");
  op.references = ParseTableReference(m, "references");
  op.index_parameters = ParseIndexParameters(m);
  op.no_inherit = m.Bool("no_inherit").value_or(false);
  op.deferrable = m.Bool("deferrable").value_or(false);
  op.initially_deferred = m.Bool("initially_deferred").value_or(false);
  op.nulls_not_distinct = m.Bool("nulls_not_distinct").value_or(false);
  op.exclude = ParseExclude(m);
  op.up = m.StrMap("up");
  op.down = m.StrMap("down");
  if (op.type != ConstraintType::kExclude && op.columns.empty() && m.valid()) {
    r.Error(m.loc(), ctx + " needs a non-empty 'columns' list");
  }
  if (op.type == ConstraintType::kCheck && op.check.empty()) r.Error(m.loc(), ctx + ": a check constraint needs 'check'");
  if (op.type == ConstraintType::kForeignKey && !op.references) {
    r.Error(m.loc(), ctx + ": a foreign_key constraint needs 'references'");
  }
  if (op.type == ConstraintType::kExclude && !op.exclude) {
    r.Error(m.loc(), ctx + ": an exclude constraint needs 'exclude'");
  }
  for (const char* side : {"up", "down"}) {
    const auto& exprs = std::string(side) == "up" ? op.up : op.down;
    for (const auto& entry : exprs) {
      // Not a structured binding: clang before 16 cannot capture one in a lambda.
      const std::string& col = entry.first;
      bool listed = std::any_of(op.columns.begin(), op.columns.end(), [&](const Name& c) { return c.value == col; });
      if (!listed) {
        r.Error(m.KeyLoc(side), "'" + std::string(side) + "." + col + "' in " + ctx +
                                    " names a column that is not in 'columns'");
      }
    }
  }
  return op;
}

std::optional<OperationBody> ParseDropConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "name", "column", "up", "down"});
  if (!m.valid()) return std::nullopt;
  DropConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  if (auto v = m.NameField("column")) op.column = *v;
  op.up = m.Str("up").value_or("");
  op.down = m.Str("down", true).value_or("");
  return op;
}

std::optional<OperationBody> ParseDropMultiColumnConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "name", "up", "down"});
  if (!m.valid()) return std::nullopt;
  DropMultiColumnConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  op.up = m.StrMap("up");
  op.down = m.StrMap("down", true);
  return op;
}

std::optional<OperationBody> ParseRenameConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  return op;
}

std::optional<OperationBody> ParseRawSql(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"up", "down", "onComplete"});
  if (!m.valid()) return std::nullopt;
  RawSql op;
  op.up = m.Str("up", true).value_or("");
  op.down = m.Str("down").value_or("");
  op.on_complete = m.Bool("onComplete").value_or(false);
  if (m.Has("up") && sql::Trim(op.up).empty()) r.Error(m.KeyLoc("up"), "'up' in " + ctx + " must not be empty");
  if (op.on_complete && !op.down.empty()) {
    r.Error(m.KeyLoc("down"), ctx + ": 'down' cannot be combined with 'onComplete: true' (the SQL runs only "
                                    "at complete, after which there is no rollback)");
  }
  return op;
}

std::optional<OperationBody> ParseSetReplicaIdentity(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "identity"});
  if (!m.valid()) return std::nullopt;
  SetReplicaIdentity op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (!m.Has("identity")) {
    m.Require("identity");
    return op;
  }
  Map id(r, m.Value("identity"), "identity of " + ctx, {"type", "index"});
  if (!id.valid()) return op;
  if (auto t = id.Enum("type", {"DEFAULT", "FULL", "NOTHING", "INDEX"})) op.type = *t;
  if (!id.Has("type")) id.Require("type");
  if (auto v = id.NameField("index")) op.index = *v;
  if (op.type == "INDEX" && op.index.empty()) r.Error(id.loc(), "identity of " + ctx + " of type index needs 'index'");
  return op;
}

const std::vector<std::pair<std::string, OpParser>>& OpParsers() {
  static const std::vector<std::pair<std::string, OpParser>> kParsers = {
      {"create_table", ParseCreateTable},
      {"add_column", ParseAddColumn},
      {"alter_column", ParseAlterColumn},
      {"rename_column", ParseRenameColumn},
      {"drop_column", ParseDropColumn},
      {"rename_table", ParseRenameTable},
      {"drop_table", ParseDropTable},
      {"create_index", ParseCreateIndex},
      {"drop_index", ParseDropIndex},
      {"create_constraint", ParseCreateConstraint},
      {"drop_constraint", ParseDropConstraint},
      {"drop_multicolumn_constraint", ParseDropMultiColumnConstraint},
      {"rename_constraint", ParseRenameConstraint},
      {"sql", ParseRawSql},
      {"set_replica_identity", ParseSetReplicaIdentity},
  };
  return kParsers;
}

// --- sluice sections --------------------------------------------------------

void ParseBackfill(Reader& r, const Map& top, BackfillSettings* b) {
  if (!top.Has("backfill")) return;
  Map m(r, top.Value("backfill"), "backfill",
        {"chunk_target_ms", "chunk_rows", "chunk_min_rows", "chunk_max_rows", "max_rows_per_second", "workers",
         "fire_triggers", "throttle"});
  if (!m.valid()) return;
  b->loc = m.loc();
  b->fire_triggers = m.Bool("fire_triggers").value_or(false);
  b->chunk_target_ms = m.Int("chunk_target_ms", 1);
  b->chunk_rows = m.Int("chunk_rows", 1);
  b->chunk_min_rows = m.Int("chunk_min_rows", 1);
  b->chunk_max_rows = m.Int("chunk_max_rows", 1);
  b->max_rows_per_second = m.Num("max_rows_per_second", 0);
  b->workers = m.Int("workers", 1);
  if (b->chunk_min_rows && b->chunk_max_rows && *b->chunk_min_rows > *b->chunk_max_rows) {
    r.Error(m.KeyLoc("chunk_min_rows"), "backfill: chunk_min_rows is larger than chunk_max_rows");
  }
  if (m.Has("throttle")) {
    Map t(r, m.Value("throttle"), "backfill.throttle",
          {"probe_query", "probe_target_ms", "probe_slowdown", "max_replica_lag_seconds", "replica_url", "max_lock_waiters",
           "custom_sql", "custom_max", "allowed_windows"});
    if (t.valid()) {
      b->probe_query = t.Str("probe_query");
      b->probe_target_ms = t.Int("probe_target_ms", 0);  // 0 turns the absolute objective off
      b->probe_slowdown = t.Num("probe_slowdown", 0);     // 0 turns the relative objective off
      if (b->probe_slowdown && *b->probe_slowdown > 0 && *b->probe_slowdown <= 1) {
        r.Error(t.KeyLoc("probe_slowdown"), "backfill.throttle: probe_slowdown must be above 1 (e.g. 1.5), or 0 for off");
      }
      b->max_replica_lag_seconds = t.Num("max_replica_lag_seconds", 0);
      b->replica_url = t.Str("replica_url");
      b->max_lock_waiters = t.Int("max_lock_waiters", 0);
      b->custom_signal_sql = t.Str("custom_sql");
      b->custom_signal_max = t.Num("custom_max", -1e300);
      if (b->custom_signal_sql.has_value() != b->custom_signal_max.has_value()) {
        r.Error(t.loc(), "backfill.throttle: custom_sql and custom_max go together");
      }
      b->allowed_windows = t.StrList("allowed_windows");
      static const std::regex kWindow(R"(([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9])");
      for (const auto& w : b->allowed_windows) {
        if (!std::regex_match(w, kWindow)) {
          r.Error(t.KeyLoc("allowed_windows"), "backfill.throttle: allowed window '" + w + "' is not HH:MM-HH:MM");
        }
      }
    }
  }
}

void ParseVerify(Reader& r, const Map& top, VerifySettings* v) {
  if (!top.Has("verify")) return;
  Map m(r, top.Value("verify"), "verify",
        {"partition_column", "checksum_chunk_rows", "max_reported_differences", "max_drift", "shadow_sample",
         "max_divergence", "invariants", "validation_queries"});
  if (!m.valid()) return;
  v->loc = m.loc();
  v->partition_column = m.Str("partition_column");
  v->checksum_chunk_rows = m.Int("checksum_chunk_rows", 1);
  v->max_reported_differences = m.Int("max_reported_differences", 0);
  v->max_drift = m.Num("max_drift", 0);
  v->shadow_sample = m.Num("shadow_sample", 0);
  v->max_divergence = m.Num("max_divergence", 0);
  if (v->shadow_sample && *v->shadow_sample > 1) r.Error(m.KeyLoc("shadow_sample"), "verify.shadow_sample must be <= 1");
  auto parse_list = [&](const std::string& key, auto&& each) {
    if (!m.Has(key)) return;
    YAML::Node list = m.Value(key);
    if (KindOf(list) != Kind::kList) {
      r.Error(m.KeyLoc(key), "verify." + key + " must be a list");
      return;
    }
    std::set<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) each(list[i], "verify." + key + " #" + std::to_string(i + 1), names);
  };
  parse_list("invariants", [&](const YAML::Node& n, const std::string& ctx, std::set<std::string>& names) {
    Map im(r, n, ctx, {"name", "table", "check", "sql"});
    if (!im.valid()) return;
    Invariant inv;
    inv.loc = im.loc();
    if (auto x = im.NameField("name", true)) {
      inv.name = *x;
      if (!names.insert(x->value).second) r.Error(x->loc, "duplicate invariant name '" + x->value + "'");
    }
    inv.table = im.Str("table").value_or("");
    inv.check = im.Str("check").value_or("");
    inv.sql = im.Str("sql").value_or("");
    if (inv.check.empty() == inv.sql.empty()) {
      r.Error(im.loc(), ctx + " needs exactly one of 'check' (a predicate on 'table') or 'sql' (a query that "
                              "must return no rows)");
    }
    if (!inv.check.empty() && inv.table.empty()) r.Error(im.loc(), ctx + ": 'check' needs 'table'");
    v->invariants.push_back(std::move(inv));
  });
  parse_list("validation_queries", [&](const YAML::Node& n, const std::string& ctx, std::set<std::string>& names) {
    Map qm(r, n, ctx, {"name", "table", "sql"});
    if (!qm.valid()) return;
    ValidationQuery q;
    q.loc = qm.loc();
    if (auto x = qm.NameField("name", true)) {
      q.name = *x;
      if (!names.insert(x->value).second) r.Error(x->loc, "duplicate validation query name '" + x->value + "'");
    }
    q.table = qm.Str("table", true).value_or("");
    q.sql = qm.Str("sql", true).value_or("");
    v->validation_queries.push_back(std::move(q));
  });
}

void ParseGate(Reader& r, const Map& gates, const std::string& key, Gate* g) {
  if (!gates.Has(key)) return;
  std::vector<std::string> keys = {"max_verify_age_seconds", "max_divergence", "soak_seconds", "observation_seconds",
                                   "signoffs"};
  if (key == "complete") keys.push_back("audit");  // the contract audit (docs/audit.md)
  Map m(r, gates.Value(key), "gates." + key, keys);
  if (!m.valid()) return;
  g->present = true;
  g->loc = m.loc();
  if (auto a = m.Str("audit")) {
    if (*a == "required" || *a == "warn" || *a == "off") {
      g->audit = *a;
    } else {
      r.Error(m.KeyLoc("audit"), "gates.complete.audit must be required, warn or off, got '" + *a + "'");
    }
  }
  g->max_verify_age_seconds = m.Int("max_verify_age_seconds", 0);
  g->max_divergence = m.Num("max_divergence", 0);
  g->soak_seconds = m.Int("soak_seconds", 0);
  g->observation_seconds = m.Int("observation_seconds", 0);
  if (m.Has("signoffs")) {
    YAML::Node list = m.Value("signoffs");
    if (KindOf(list) != Kind::kList) {
      r.Error(m.KeyLoc("signoffs"), "gates." + key + ".signoffs must be a list of roles");
      return;
    }
    for (const auto& item : list) {
      if (KindOf(item) != Kind::kString || item.Scalar().empty()) {
        r.Error(LocOf(item), "gates." + key + ".signoffs items must be role names (strings)");
        continue;
      }
      g->signoffs.push_back({item.Scalar(), LocOf(item)});
    }
  }
}

// yaml-cpp reads JSON as YAML flow syntax, which allows a trailing comma
// ({"a": "b",} or ["x",]); JSON does not. Returns where the first such comma
// is (line 0 when there is none), so a .json plan is not read leniently.
SourceLoc JsonTrailingComma(const std::string& text, char* closer) {
  int line = 1, col = 0;
  bool in_string = false, escaped = false;
  SourceLoc comma;
  for (char ch : text) {
    if (ch == '\n') {
      ++line;
      col = 0;
    } else {
      ++col;
    }
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    if ((ch == '}' || ch == ']') && comma.line > 0) {
      *closer = ch;
      return comma;
    }
    comma = ch == ',' ? SourceLoc{line, col} : SourceLoc{};
    if (ch == '"') in_string = true;
  }
  return {};
}

}  // namespace

Result<Plan> ParsePlanText(const std::string& text, const std::string& file, std::vector<Diagnostic>* warnings) {
  Reader r(file);
  Plan plan;
  plan.file = file;
  plan.text = text;
  std::string base = file.substr(file.find_last_of('/') == std::string::npos ? 0 : file.find_last_of('/') + 1);
  size_t dot = base.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : sql::Lower(base.substr(dot + 1));
  plan.name = dot == std::string::npos ? base : base.substr(0, dot);
  plan.format = ext == "json" ? "json" : "yaml";
  if (ext != "json" && ext != "yaml" && ext != "yml") {
    r.Error({}, "plan file name must end in .yaml, .yml or .json");
  }
  if (plan.name.empty()) r.Error({}, "plan file name gives an empty migration name");

  if (plan.format == "json") {
    char closer = 0;
    SourceLoc comma = JsonTrailingComma(text, &closer);
    if (comma.line > 0) {
      r.Error(comma, std::string("cannot parse JSON: trailing comma before '") + closer + "'");
      return DiagnosticsToStatus(r.diags());
    }
  }

  // sluice stores plans and the names in them as text and JSON: every byte
  // must be UTF-8. Name the first bad byte's line and column.
  if (auto bad = FirstInvalidUtf8(text)) {
    SourceLoc loc{1, 1};
    for (size_t i = 0; i < *bad; ++i) {
      if (text[i] == '\n') {
        ++loc.line;
        loc.column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
        ++loc.column;
      }
    }
    char byte[8];
    snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[*bad]));
    r.Error(loc, std::string("the plan is not valid UTF-8 (byte ") + byte + "); save it as UTF-8");
    return DiagnosticsToStatus(r.diags());
  }

  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    SourceLoc loc{e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0};
    r.Error(loc, std::string("cannot parse ") + (plan.format == "json" ? "JSON" : "YAML") + ": " + e.msg);
    return DiagnosticsToStatus(r.diags());
  }
  if (KindOf(root) == Kind::kNull) {
    r.Error({1, 1}, "the plan is empty; it needs an 'operations' list");
    return DiagnosticsToStatus(r.diags());
  }

  Map top(r, root, "the plan",
          {"name", "version_schema", "operations", "backfill", "verify", "gates", "abort", "dual_write"});
  if (top.valid()) {
    if (auto n = top.Str("name")) {
      if (*n != plan.name) {
        r.Warning(top.KeyLoc("name"), "'name: " + *n + "' is ignored: the migration is named after its file ('" +
                                          plan.name + "')");
      }
    }
    if (auto vs = top.NameField("version_schema")) plan.version_schema = vs->value;
    if (!top.Has("operations")) {
      top.Require("operations");
    } else {
      YAML::Node ops = top.Value("operations");
      Kind k = KindOf(ops);
      if (k != Kind::kList) {
        r.Error(top.KeyLoc("operations"),
                "'operations' must be a list of operations (each item starting with '- '), got " + KindName(k) +
                    (k == Kind::kMap ? "; pgroll would silently apply nothing here, sluice refuses" : ""));
      } else if (ops.size() == 0) {
        r.Error(top.KeyLoc("operations"), "'operations' is empty: the migration would change nothing");
      } else {
        for (size_t i = 0; i < ops.size(); ++i) {
          const YAML::Node& item = ops[i];
          SourceLoc il = LocOf(item);
          std::string ictx = "operation #" + std::to_string(i + 1);
          if (KindOf(item) != Kind::kMap) {
            r.Error(il, ictx + " must be a map with one key naming the operation, got " + KindName(KindOf(item)));
            continue;
          }
          if (item.size() != 1) {
            std::string keys;
            for (auto it = item.begin(); it != item.end(); ++it) keys += (keys.empty() ? "" : ", ") + it->first.Scalar();
            r.Error(il, ictx + " must have exactly one key naming the operation, got " + std::to_string(item.size()) +
                            " (" + keys + "); start each operation with its own '- '");
            continue;
          }
          auto it = item.begin();
          std::string kind = it->first.Scalar();
          SourceLoc kl = LocOf(it->first);
          const auto& parsers = OpParsers();
          auto p = std::find_if(parsers.begin(), parsers.end(), [&](const auto& e) { return e.first == kind; });
          if (p == parsers.end()) {
            std::vector<std::string> names;
            for (const auto& e : parsers) names.push_back(e.first);
            r.Error(kl, "unknown operation '" + kind + "' in " + ictx + Suggest(kind, names) +
                            "; known operations: " + JoinKeys(names));
            continue;
          }
          auto body = p->second(r, it->second, kind + " (" + ictx + ")");
          if (body) plan.operations.push_back(Operation{kind, kl, std::move(*body)});
        }
      }
    }
    ParseBackfill(r, top, &plan.backfill);
    ParseVerify(r, top, &plan.verify);
    if (top.Has("gates")) {
      Map g(r, top.Value("gates"), "gates", {"backfill", "switch", "complete"});
      if (g.valid()) {
        ParseGate(r, g, "backfill", &plan.gates.backfill);
        ParseGate(r, g, "switch", &plan.gates.switch_);
        ParseGate(r, g, "complete", &plan.gates.complete);
      }
    }
    if (top.Has("dual_write")) {
      Map dw(r, top.Value("dual_write"), "dual_write", {"on_error"});
      if (dw.valid()) {
        plan.dual_write.present = true;
        plan.dual_write.loc = dw.loc();
        if (auto v = dw.Enum("on_error", {"record", "fail"}, false)) {
          plan.dual_write.on_error = *v == "fail" ? OnError::kFail : OnError::kRecord;
        }
      }
    }
    if (top.Has("abort")) {
      Map a(r, top.Value("abort"), "abort", {"max_divergence", "max_error_rate", "max_p99_ratio", "probe_query"});
      if (a.valid()) {
        plan.abort.present = true;
        plan.abort.loc = a.loc();
        plan.abort.max_divergence = a.Num("max_divergence", 0);
        plan.abort.max_error_rate = a.Num("max_error_rate", 0);
        plan.abort.max_p99_ratio = a.Num("max_p99_ratio", 0);
        plan.abort.probe_query = a.Str("probe_query");
      }
    }
  }

  if (warnings) {
    for (const auto& d : r.diags()) {
      if (d.severity == Diagnostic::Severity::kWarning) warnings->push_back(d);
    }
  }
  if (r.has_errors()) return DiagnosticsToStatus(r.diags());
  return plan;
}

Result<Plan> ParsePlanFile(const std::string& path, std::vector<Diagnostic>* warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read plan file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePlanText(ss.str(), path, warnings);
}

}  // namespace sluice::plan
