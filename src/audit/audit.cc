// What is audited, classification, and the report (see audit.h).
#include "audit/audit.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/markdown.h"

namespace sluice::audit {
namespace {

using Json = nlohmann::json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool WordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

std::string OldObject::Name() const {
  if (kind == "version") return schema;
  if (kind == "table") return table;
  return table + "." + column;
}

std::vector<OldObject> OldObjects(const db::VersionSpec& v, const std::string& schema, bool versioned) {
  std::vector<OldObject> out;
  for (const auto& t : v.tables) {
    if (t.created) continue;
    if (t.logical != t.physical) out.push_back({"table", schema, t.physical, "", "renamed to " + t.logical});
    for (const auto& old : t.old_columns) {
      // The new version's column on this physical column, if any.
      const db::ColumnMapping* kept = nullptr;
      bool name_survives = false;
      for (const auto& c : t.columns) {
        if (c.physical == old) kept = &c;
        if (c.logical == old) name_survives = true;
      }
      if (kept && kept->logical == old) continue;  // unchanged
      if (kept) {
        out.push_back({"column", schema, t.physical, old, "renamed to " + kept->logical});
      } else if (!name_survives) {
        out.push_back({"column", schema, t.physical, old, "dropped"});
      }
      // else: replaced by a copy under the same name; statements keep working.
    }
  }
  for (const auto& h : v.hidden_tables) out.push_back({"table", schema, h, "", "dropped"});
  if (versioned && !v.previous.empty()) {
    out.push_back({"version", schema + "_" + v.previous, "", "", "retired (its views are dropped)"});
  }
  return out;
}

const std::vector<std::string>* Catalog::Columns(const std::string& schema, const std::string& relation) const {
  auto s = relations.find(schema);
  if (s == relations.end()) return nullptr;
  auto r = s->second.find(relation);
  return r == s->second.end() ? nullptr : &r->second;
}

bool Reference::operator<(const Reference& o) const {
  return std::tie(schema, relation, column, kind) < std::tie(o.schema, o.relation, o.column, o.kind);
}

bool IsSluiceStatement(const std::string& sql, const std::string& state_schema) {
  std::string l = Lower(sql);
  if (l.find("_sluice") != std::string::npos) return true;
  if (l.find("sluice_") != std::string::npos) return true;  // sluice_hash, sluice_canon, ...
  // sluice quotes every identifier: its state tables are "<state>"."t"
  // (an application's `SET sluice.version` is not sluice's own).
  if (!state_schema.empty() && l.find("\"" + Lower(state_schema) + "\".") != std::string::npos) return true;
  // The audit's own catalog reads.
  return l.find("pg_stat_statements") != std::string::npos || l.find("pg_stat_activity") != std::string::npos;
}

std::vector<Touch> Classify(const std::vector<Reference>& refs, const std::vector<OldObject>& objects) {
  std::map<std::pair<std::string, std::string>, std::set<std::string>> seen;  // (object, via) -> kinds
  for (const auto& r : refs) {
    for (const auto& o : objects) {
      if (o.kind == "version") {
        if (r.schema == o.schema) seen[{o.Name(), "old version"}].insert(r.relation.empty() ? "session" : r.kind);
        continue;
      }
      if (r.schema != o.schema || r.relation != o.table) continue;
      if (o.kind == "table" || (o.kind == "column" && r.column == o.column)) {
        seen[{o.Name(), "direct"}].insert(r.kind);
      }
    }
  }
  std::vector<Touch> out;
  for (const auto& [key, kinds] : seen) {
    std::string k;
    for (const auto& x : kinds) k += (k.empty() ? "" : ",") + x;
    out.push_back({key.first, key.second, k});
  }
  return out;
}

std::vector<std::string> Spellings(const std::string& name) {
  std::vector<std::string> out = {name};
  std::string camel;
  bool up = false;
  for (char c : name) {
    if (c == '_') {
      up = !camel.empty();
      continue;
    }
    camel += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  if (!camel.empty() && camel != name) out.push_back(camel);
  std::string pascal = camel;
  if (!pascal.empty()) pascal[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(pascal[0])));
  if (!pascal.empty() && std::find(out.begin(), out.end(), pascal) == out.end()) out.push_back(pascal);
  return out;
}

Result<std::vector<CodeMatch>> ScanCode(const std::string& dir, const std::vector<OldObject>& objects) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("--code " + dir + ": not a directory");
  static const std::set<std::string> kExt = {".py", ".rb",  ".go",  ".ts",  ".tsx", ".js",    ".jsx",
                                             ".java", ".kt", ".sql", ".yaml", ".yml", ".erb", ".cs",
                                             ".php", ".scala", ".rs", ".ex", ".exs"};
  // Words to look for: each spelling of a column (and of a dropped or
  // renamed table) -> the object it names. Version schemas are searched
  // under their own name.
  std::vector<std::pair<std::string, std::string>> words;
  for (const auto& o : objects) {
    const std::string& n = o.kind == "column" ? o.column : (o.kind == "table" ? o.table : o.schema);
    for (const auto& s : Spellings(n)) words.push_back({s, o.Name()});
  }
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (it->is_directory(ec) && (name == ".git" || name == "node_modules" || name == "vendor")) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && kExt.count(Lower(p.extension().string()))) files.push_back(p);
  }
  if (ec) return Unavailable("--code " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<CodeMatch> out;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      std::set<std::string> hit;
      for (const auto& [w, object] : words) {
        for (size_t pos = line.find(w); pos != std::string::npos; pos = line.find(w, pos + 1)) {
          bool left = pos == 0 || !WordChar(line[pos - 1]);
          bool right = pos + w.size() >= line.size() || !WordChar(line[pos + w.size()]);
          if (left && right) {
            hit.insert(object);
            break;
          }
        }
      }
      std::string text = line.size() > 200 ? line.substr(0, 200) + "..." : line;
      for (const auto& object : hit) {
        out.push_back({fs::relative(f, dir, ec).string(), n, object, text});
      }
    }
  }
  return out;
}

namespace {
// "YYYY-MM-DDTHH:MM:SS..." (UTC) -> seconds since the epoch; -1 if malformed.
int64_t EpochSeconds(const std::string& iso) {
  std::tm tm{};
  if (iso.size() < 19 || sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}
}  // namespace

int64_t Report::WindowSeconds() const {
  int64_t from = EpochSeconds(window_start), to = EpochSeconds(at);
  return from < 0 || to < 0 ? -1 : to - from;
}

bool Report::window_long_enough() const {
  return required_window_seconds <= 0 || WindowSeconds() >= required_window_seconds;
}

bool Report::coverage_sufficient() const {
  return window_long_enough() &&
         std::any_of(coverage.begin(), coverage.end(), [](const Coverage& c) { return c.available && c.complete; });
}

std::string Report::Summary() const {
  std::string cov;
  if (!window_long_enough()) {
    cov = fmt::format("; the window is {} s, shorter than the {} s the plan observes (gates.complete."
                      "observation_seconds: the longest known job period) — audit again later",
                      WindowSeconds(), required_window_seconds);
  } else if (!coverage_sufficient()) {
    // Say what is missing and how to fix it: the runtime sources' gaps, or
    // the advice to enable them.
    cov = "; coverage insufficient (no source saw the whole interval)";
    for (const auto& c : coverage) {
      if (c.source == "code" || c.source == "pg_stat_activity") continue;
      cov += ": " + c.source + ": " + (c.gaps.empty() ? c.detail : c.gaps.front());
    }
  }
  if (findings.empty()) return "no reader or writer of an old object found" + cov;
  std::set<std::string> who;
  for (const auto& f : findings) {
    std::string w = f.object + " by ";
    if (!f.location.empty()) {
      w += f.location;
    } else {
      w += "role " + (f.role.empty() ? std::string("?") : f.role);
      if (!f.application.empty()) w += " (application_name " + f.application + ")";
    }
    who.insert(w);
  }
  std::string list;
  for (const auto& w : who) list += (list.empty() ? "" : "; ") + w;
  return fmt::format("{} reader(s)/writer(s) of old objects: {}{}", findings.size(), list, cov);
}

std::string Report::ToJson() const {
  Json objs = Json::array(), fs = Json::array(), cov = Json::array(), snap = Json::object();
  for (const auto& o : objects) {
    objs.push_back({{"kind", o.kind}, {"schema", o.schema}, {"table", o.table}, {"column", o.column},
                    {"fate", o.fate}, {"name", o.Name()}});
  }
  for (const auto& f : findings) {
    fs.push_back({{"source", f.source}, {"object", f.object}, {"via", f.via}, {"kinds", f.kinds},
                  {"role", f.role}, {"application", f.application}, {"client", f.client},
                  {"statement", f.statement}, {"location", f.location}, {"calls", f.calls},
                  {"first_seen", f.first_seen}, {"last_seen", f.last_seen}});
  }
  for (const auto& c : coverage) {
    cov.push_back({{"source", c.source}, {"available", c.available}, {"complete", c.complete},
                   {"detail", c.detail}, {"gaps", c.gaps}});
  }
  for (const auto& [k, v] : snapshot) snap[k] = v;
  Json j = {{"migration", migration},
            {"at", at},
            {"window_start", window_start},
            {"since", since},
            {"window_seconds", WindowSeconds()},
            {"required_window_seconds", required_window_seconds},
            {"blocking", blocking()},
            {"coverage_sufficient", coverage_sufficient()},
            {"summary", Summary()},
            {"objects", objs},
            {"findings", fs},
            {"coverage", cov},
            {"pg_stat_statements_snapshot", {{"calls", snap}, {"dealloc", dealloc}, {"stats_reset", stats_reset}}}};
  return Dump(j);
}

Result<Report> ReportFromJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return Internal("a stored audit is not a JSON object");
  Report r;
  try {
    r.migration = j.value("migration", "");
    r.at = j.value("at", "");
    r.window_start = j.value("window_start", "");
    r.since = j.value("since", "");
    r.required_window_seconds = j.value("required_window_seconds", int64_t{0});
    for (const auto& o : j.value("objects", Json::array())) {
      r.objects.push_back({o.value("kind", ""), o.value("schema", ""), o.value("table", ""), o.value("column", ""),
                           o.value("fate", "")});
    }
    for (const auto& f : j.value("findings", Json::array())) {
      Finding x;
      x.source = f.value("source", "");
      x.object = f.value("object", "");
      x.via = f.value("via", "");
      x.kinds = f.value("kinds", "");
      x.role = f.value("role", "");
      x.application = f.value("application", "");
      x.client = f.value("client", "");
      x.statement = f.value("statement", "");
      x.location = f.value("location", "");
      x.calls = f.value("calls", int64_t{0});
      x.first_seen = f.value("first_seen", "");
      x.last_seen = f.value("last_seen", "");
      r.findings.push_back(std::move(x));
    }
    for (const auto& c : j.value("coverage", Json::array())) {
      Coverage x;
      x.source = c.value("source", "");
      x.available = c.value("available", false);
      x.complete = c.value("complete", false);
      x.detail = c.value("detail", "");
      x.gaps = c.value("gaps", std::vector<std::string>{});
      r.coverage.push_back(std::move(x));
    }
    Json s = j.value("pg_stat_statements_snapshot", Json::object());
    const Json calls = s.value("calls", Json::object());  // items() must not outlive it
    for (const auto& [k, v] : calls.items()) r.snapshot[k] = v.get<int64_t>();
    r.dealloc = s.value("dealloc", int64_t{-1});
    r.stats_reset = s.value("stats_reset", "");
  } catch (const std::exception& e) {
    return Internal(std::string("a stored audit is damaged: ") + e.what());
  }
  return r;
}

std::string Report::ToText() const {
  std::string out = fmt::format("audit of {} at {} (window since {}, {} s{}{})\n", migration, at, window_start,
                                WindowSeconds(),
                                required_window_seconds > 0
                                    ? fmt::format(" of the {} s the plan observes", required_window_seconds)
                                    : std::string(),
                                since.empty() ? "" : "; statistics since " + since);
  out += "old objects complete removes:\n";
  if (objects.empty()) out += "  (none: complete drops nothing the old version named)\n";
  for (const auto& o : objects) out += fmt::format("  {} {}: {}\n", o.kind, o.Name(), o.fate);
  out += "findings:\n";
  if (findings.empty()) out += "  none\n";
  for (const auto& f : findings) {
    out += fmt::format("  [{}] {} ({}, {})", f.source, f.object, f.via, f.kinds);
    if (!f.location.empty()) out += " at " + f.location;
    if (!f.role.empty()) out += " role " + f.role;
    if (!f.application.empty()) out += " application_name " + f.application;
    if (!f.client.empty()) out += " client " + f.client;
    if (f.calls) out += fmt::format(" calls {}", f.calls);
    if (!f.first_seen.empty()) out += " first seen " + f.first_seen;
    if (!f.last_seen.empty()) out += " last seen " + f.last_seen;
    out += "\n      " + f.statement + "\n";
  }
  out += "coverage:\n";
  for (const auto& c : coverage) {
    out += fmt::format("  {}: {}{}\n", c.source, c.available ? (c.complete ? "complete" : "partial") : "unavailable",
                       c.detail.empty() ? "" : " - " + c.detail);
    for (const auto& g : c.gaps) out += "    gap: " + g + "\n";
  }
  out += "verdict: " + Summary() + "\n";
  return out;
}

std::string Report::ToMarkdown() const {
  auto cell = [](const std::string& s) { return MarkdownCell(s); };
  std::string out = fmt::format("## Contract audit: {}\n\nRun at {}; observation window since {} ({} s{}).\n\n",
                                migration, at, window_start, WindowSeconds(),
                                required_window_seconds > 0
                                    ? fmt::format("; the plan observes {} s", required_window_seconds)
                                    : std::string());
  out += "**Verdict:** " + cell(Summary()) + "\n\n### Old objects\n\n| object | kind | fate |\n|---|---|---|\n";
  for (const auto& o : objects) out += fmt::format("| `{}` | {} | {} |\n", o.Name(), o.kind, o.fate);
  out += "\n### Findings\n\n";
  if (findings.empty()) {
    out += "None.\n";
  } else {
    out += "| source | object | via | kind | who | statement / location | calls | first seen | last seen |\n"
           "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& f : findings) {
      std::string who = f.role;
      if (!f.application.empty()) who += " (" + f.application + ")";
      if (!f.client.empty()) who += " " + f.client;
      out += fmt::format("| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |\n", f.source, f.object, f.via, f.kinds,
                         cell(who), cell(f.location.empty() ? "`" + f.statement + "`" : f.location), f.calls,
                         f.first_seen, f.last_seen);
    }
  }
  out += "\n### Coverage\n\n| source | state | detail | gaps |\n|---|---|---|---|\n";
  for (const auto& c : coverage) {
    std::string gaps;
    for (const auto& g : c.gaps) gaps += (gaps.empty() ? "" : "; ") + g;
    out += fmt::format("| {} | {} | {} | {} |\n", c.source,
                       c.available ? (c.complete ? "complete" : "partial") : "unavailable", cell(c.detail), cell(gaps));
  }
  return out;
}

}  // namespace sluice::audit
