// Strict inventory parser on top of yaml-cpp. yaml-cpp's exceptions are
// caught here and become errors with a location; nothing throws out.
#include "fleet/inventory.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace sluice::fleet {

std::optional<double> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v) || v < 0) return std::nullopt;
  std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "m") return v * 60;
  if (unit == "h") return v * 3600;
  return std::nullopt;
}

std::string RedactUrl(const std::string& url) {
  // postgresql://user:secret@host/db -> postgresql://user:***@host/db
  static const std::regex kUserinfo(R"(^([a-zA-Z]+://[^:/@]*):([^@/]*)@)");
  static const std::regex kKeyword(R"((^|\s)password\s*=\s*('([^'\\]|\\.)*'|\S*))");
  std::string out = std::regex_replace(url, kUserinfo, "$1:***@");
  return std::regex_replace(out, kKeyword, "$1password=***");
}

namespace {

class Parser {
 public:
  Parser(std::string file, std::string base_dir) : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  void Error(const YAML::Node& at, const std::string& message) {
    std::string loc = file_;
    if (at.IsDefined() && at.Mark().line >= 0) {
      loc += ":" + std::to_string(at.Mark().line + 1) + ":" + std::to_string(at.Mark().column + 1);
    }
    errors_.push_back(loc + ": error: " + message);
  }
  void Error(int line, const std::string& message) {
    errors_.push_back(file_ + (line > 0 ? ":" + std::to_string(line) : "") + ": error: " + message);
  }

  // Refuses keys of `map` outside `allowed`; false when `map` is no map.
  bool CheckKeys(const YAML::Node& map, const std::string& what, const std::set<std::string>& allowed) {
    if (!map.IsMap()) {
      Error(map, what + " must be a map");
      return false;
    }
    for (const auto& kv : map) {
      std::string key = kv.first.Scalar();
      if (allowed.count(key)) continue;
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      Error(kv.first, "unknown key '" + key + "' in " + what + " (allowed: " + list + ")");
    }
    return true;
  }

  std::optional<std::string> Scalar(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      Error(n, what + " must be a string");
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::vector<std::string> Names(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (!n.IsDefined() || n.IsNull()) return out;
    if (!n.IsSequence()) {
      Error(n, what + " must be a list of names, e.g. [a, b]");
      return out;
    }
    for (const auto& e : n) {
      if (auto s = Scalar(e, what + " entry")) {
        if (s->empty()) {
          Error(e, what + " entry is empty");
        } else {
          out.push_back(*s);
        }
      }
    }
    return out;
  }

  bool ValidName(const std::string& s) {
    static const std::regex kName(R"([A-Za-z0-9][A-Za-z0-9_.-]*)");
    return std::regex_match(s, kName);
  }

  std::string ResolveUrl(const std::string& url) {
    if (base_dir_.empty() || url.rfind("sqlite:", 0) != 0) return url;
    std::string path = url.substr(7);
    if (path.rfind("//", 0) == 0 || path.empty() || std::filesystem::path(path).is_absolute()) return url;
    return "sqlite:" + (std::filesystem::path(base_dir_) / path).lexically_normal().string();
  }

  void Database(const YAML::Node& n, Inventory* inv) {
    if (!CheckKeys(n, "a database", {"name", "url", "tags", "after", "schema"})) return;
    DatabaseSpec d;
    d.line = n.Mark().line + 1;
    if (!n["name"]) {
      Error(n, "a database needs `name`");
      return;
    }
    if (auto s = Scalar(n["name"], "`name`")) d.name = *s;
    if (!d.name.empty() && !ValidName(d.name)) {
      Error(n["name"], "database name '" + d.name + "' may hold only letters, digits, '_', '.', '-'");
    }
    if (!n["url"]) {
      Error(n, "database '" + d.name + "' needs `url` (sqlite:PATH or postgresql://user@host/db)");
    } else if (auto s = Scalar(n["url"], "`url`")) {
      if (RedactUrl(*s) != *s) {
        Error(n["url"], "database '" + d.name +
                            "': the url holds a password; the inventory never stores secrets: remove it and use "
                            "PGPASSWORD or ~/.pgpass (docs/fleets.md)");
      }
      d.url = ResolveUrl(*s);
    }
    d.tags = Names(n["tags"], "`tags`");
    d.after = Names(n["after"], "`after`");
    if (n["schema"]) {
      if (auto s = Scalar(n["schema"], "`schema`")) d.schema = *s;
    }
    inv->databases.push_back(std::move(d));
  }

  void Wave(const YAML::Node& n, Inventory* inv) {
    if (!CheckKeys(n, "a wave", {"name", "match", "percent"})) return;
    WaveSpec w;
    w.line = n.Mark().line + 1;
    if (!n["name"]) {
      Error(n, "a wave needs `name`");
    } else if (auto s = Scalar(n["name"], "`name`")) {
      w.name = *s;
      if (!ValidName(w.name)) Error(n["name"], "wave name '" + w.name + "' may hold only letters, digits, '_', '.', '-'");
    }
    if (n["match"]) {
      if (CheckKeys(n["match"], "`match`", {"tags"})) {
        w.match_tags = Names(n["match"]["tags"], "`match.tags`");
        if (w.match_tags.empty()) Error(n["match"], "`match` needs `tags: [...]` with at least one tag");
      }
    }
    if (n["percent"]) {
      double p = -1;
      try {
        p = n["percent"].as<double>();
      } catch (const YAML::Exception&) {
      }
      if (!(p > 0 && p <= 100)) {
        Error(n["percent"], "`percent` must be a number above 0 and at most 100");
      } else {
        w.percent = p;
      }
      if (n["match"]) Error(n, "wave '" + w.name + "' has both `match` and `percent`: choose one");
    }
    inv->waves.push_back(std::move(w));
  }

  Result<Inventory> Parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      std::string loc = file_;
      if (e.mark.line >= 0) loc += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
      return InvalidArgument(loc + ": error: not valid YAML: " + e.msg);
    }
    Inventory inv;
    inv.file = file_;
    try {
      if (!root.IsMap()) return InvalidArgument(file_ + ": error: an inventory is a map with `databases:` (docs/fleets.md)");
      CheckKeys(root, "the inventory", {"databases", "waves", "parallel", "soak", "on_failure"});
      const YAML::Node dbs = root["databases"];
      if (!dbs || !dbs.IsSequence() || dbs.size() == 0) {
        Error(dbs ? dbs : root, "`databases` must be a non-empty list of {name, url, tags, after}");
      } else {
        for (const auto& d : dbs) Database(d, &inv);
      }
      if (const YAML::Node waves = root["waves"]) {
        if (!waves.IsSequence()) {
          Error(waves, "`waves` must be a list of {name, match | percent}");
        } else {
          for (const auto& w : waves) Wave(w, &inv);
        }
      }
      if (const YAML::Node p = root["parallel"]) {
        int v = 0;
        try {
          v = p.as<int>();
        } catch (const YAML::Exception&) {
        }
        if (v < 1 || v > 256) {
          Error(p, "`parallel` must be an integer from 1 to 256");
        } else {
          inv.parallel = v;
        }
      }
      if (const YAML::Node s = root["soak"]) {
        std::optional<double> d = s.IsScalar() ? ParseDuration(s.Scalar()) : std::nullopt;
        if (!d) {
          Error(s, "`soak` must be a duration like 90s, 10m or 1h");
        } else {
          inv.soak_seconds = *d;
        }
      }
      if (const YAML::Node f = root["on_failure"]) {
        std::string v = f.IsScalar() ? f.Scalar() : "";
        if (v == "halt") {
          inv.on_failure = OnFailure::kHalt;
        } else if (v == "rollback_wave") {
          inv.on_failure = OnFailure::kRollbackWave;
        } else {
          Error(f, "`on_failure` must be halt or rollback_wave");
        }
      }
    } catch (const YAML::Exception& e) {
      Error(root, std::string("cannot read the inventory: ") + e.what());
    }
    // Names unique; `after` names known databases.
    std::set<std::string> names;
    for (const auto& d : inv.databases) {
      if (!d.name.empty() && !names.insert(d.name).second) Error(d.line, "database '" + d.name + "' is listed twice");
    }
    for (const auto& d : inv.databases) {
      for (const auto& a : d.after) {
        if (!names.count(a)) Error(d.line, "database '" + d.name + "' is `after` '" + a + "', which is not in the inventory");
        if (a == d.name) Error(d.line, "database '" + d.name + "' is `after` itself");
      }
    }
    std::set<std::string> wave_names;
    for (const auto& w : inv.waves) {
      if (!w.name.empty() && !wave_names.insert(w.name).second) Error(w.line, "wave '" + w.name + "' is listed twice");
    }
    if (!errors_.empty()) {
      std::string msg;
      for (const auto& e : errors_) msg += (msg.empty() ? "" : "\n") + e;
      return InvalidArgument(msg);
    }
    return inv;
  }

 private:
  std::string file_, base_dir_;
  std::vector<std::string> errors_;
};

}  // namespace

Result<Inventory> ParseInventory(const std::string& text, const std::string& file, const std::string& base_dir) {
  return Parser(file, base_dir).Parse(text);
}

Result<Inventory> LoadInventory(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read the inventory " + path + ": no such file or not readable");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = std::filesystem::absolute(path).parent_path().string();
  return ParseInventory(ss.str(), path, dir);
}

}  // namespace sluice::fleet
