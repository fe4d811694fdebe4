// The parser's internals, shared by parser.cc (the plan and its sluice
// sections) and parse_operations.cc (one parser per operation): a strict
// reader of yaml-cpp nodes that turns every mistake into a diagnostic with
// its line and column. Only src/plan/ includes this header.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plan/parser.h"

namespace sluice::plan::internal {

SourceLoc LocOf(const YAML::Node& n);

// What a YAML node holds, by YAML 1.2 core-schema rules for plain scalars.
enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };

Kind KindOf(const YAML::Node& n);
std::string KindName(Kind k);
// " (did you mean 'x'?)" when `key` is close to one of `allowed`, else "".
std::string Suggest(const std::string& key, const std::vector<std::string>& allowed);
std::string JoinKeys(const std::vector<std::string>& keys);

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

// Parses one operation's body (the map under its name) into an
// OperationBody; nullopt after reporting what is wrong.
using OpParser = std::function<std::optional<OperationBody>(Reader&, const YAML::Node&, const std::string&)>;

// Every operation sluice knows, by its name in the plan.
const std::vector<std::pair<std::string, OpParser>>& OpParsers();

}  // namespace sluice::plan::internal
