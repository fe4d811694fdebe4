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
#include "plan/parser_internal.h"

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

using namespace internal;  // Reader, Map, OpParsers (parser_internal.h)

namespace {

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
           "custom_sql", "custom_max", "allowed_windows", "active_pace", "active_chunk_ms"});
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
      b->active_pace = t.Num("active_pace", 0);
      if (b->active_pace && !ValidActivePace(*b->active_pace)) {
        r.Error(t.KeyLoc("active_pace"),
                "backfill.throttle: active_pace must be above 0 and at most 1 (the share of the time the backfill may "
                "work while the application is at work; 1 = do not give way)");
      }
      b->active_chunk_ms = t.Int("active_chunk_ms", 1);
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
