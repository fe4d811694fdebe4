#include "gates/gates.h"

#include <cctype>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sluice::gates {

namespace {

using Json = nlohmann::json;

// A verification dated at most this far after `now` counts as fresh (the
// clocks of two operators' machines differ a little); further is refused.
constexpr int64_t kClockSkewSeconds = 60;

// Reads `n` digits at s[*i]; false when any is not a digit.
bool Digits(const std::string& s, size_t* i, size_t n, int* out) {
  if (*i + n > s.size()) return false;
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    char c = s[*i + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *i += n;
  *out = v;
  return true;
}

bool Expect(const std::string& s, size_t* i, char c) {
  if (*i >= s.size() || s[*i] != c) return false;
  ++*i;
  return true;
}

// Safe JSON field access: nullopt when the field is missing or of another
// type (nlohmann's value() would throw).
std::optional<std::string> Str(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}
std::optional<double> Num(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}
std::optional<int64_t> Int(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}
std::optional<bool> Bool(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

std::optional<int64_t> ParseIsoMillis(const std::string& s) {
  std::tm tm{};
  size_t i = 0;
  int year, mon, day, hour, min, sec, ms = 0;
  if (!Digits(s, &i, 4, &year) || !Expect(s, &i, '-') || !Digits(s, &i, 2, &mon) || !Expect(s, &i, '-') ||
      !Digits(s, &i, 2, &day) || !Expect(s, &i, 'T') || !Digits(s, &i, 2, &hour) || !Expect(s, &i, ':') ||
      !Digits(s, &i, 2, &min) || !Expect(s, &i, ':') || !Digits(s, &i, 2, &sec)) {
    return std::nullopt;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    int scale = 100;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
  }
  if (!Expect(s, &i, 'Z') || i != s.size()) return std::nullopt;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

std::optional<int64_t> ParseIso(const std::string& iso) {
  auto ms = ParseIsoMillis(iso);
  if (!ms) return std::nullopt;
  return *ms >= 0 ? *ms / 1000 : -((-*ms + 999) / 1000);
}

std::string GateResult::Reason() const {
  for (const auto& c : checks) {
    if (!c.passed) return c.check + ": " + c.detail;
  }
  return "";
}

Evidence Unmeasured(const std::string& check, const std::string& why) {
  return {check, false, "could not be measured: " + (why.empty() ? std::string("no reason given") : why)};
}

namespace {

const plan::Gate* Settings(const Inputs& in, const std::string& gate) {
  if (!in.settings) return nullptr;
  const plan::Gate* g = gate == "backfill" ? &in.settings->backfill
                        : gate == "switch"  ? &in.settings->switch_
                                            : &in.settings->complete;
  return g->present ? g : nullptr;
}

void Add(GateResult& r, std::string check, bool passed, std::string detail) {
  r.checks.push_back({std::move(check), passed, std::move(detail)});
  if (!passed) r.passed = false;
}

std::string Age(int64_t seconds) {
  if (seconds < 120) return fmt::format("{} s", seconds);
  if (seconds < 7200) return fmt::format("{} min", seconds / 60);
  return fmt::format("{:.1f} h", static_cast<double>(seconds) / 3600);
}

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// Sign-offs recorded for `gate`, one check per required role. A sign-off
// event whose details cannot be read counts for no role; a missing role
// says how many such events there were.
void Signoffs(const Inputs& in, const plan::Gate* g, const std::string& gate, GateResult& r) {
  if (!g) return;
  int unreadable = 0;
  for (const auto& e : in.events) {
    if (e.kind != "signoff") continue;
    auto d = Json::parse(e.details, nullptr, false);
    if (!d.is_object() || !Str(d, "gate") || !Str(d, "role")) ++unreadable;
  }
  for (const auto& req : g->signoffs) {
    std::string who;
    for (const auto& e : in.events) {
      if (e.kind != "signoff") continue;
      auto d = Json::parse(e.details, nullptr, false);
      if (!d.is_object() || Str(d, "gate") != gate || Str(d, "role") != req.role) continue;
      std::string name = Str(d, "name").value_or(e.actor);
      std::string note = Str(d, "note").value_or("");
      who = name + " at " + e.at + (note.empty() ? "" : " (" + note + ")");
    }
    r.signoffs.push_back(req.role + ": " + (who.empty() ? "missing" : who));
    std::string missing = "no sign-off yet; run `sluice signoff " + gate + " --as NAME --role '" + req.role + "'`";
    if (unreadable > 0) missing += fmt::format(" ({} sign-off event(s) are unreadable and count for no role)", unreadable);
    Add(r, "signoff " + req.role, !who.empty(), who.empty() ? missing : "signed by " + who);
  }
}

// When the backfill finished: the engine's value, else the latest
// backfill.done event; "" when neither exists.
std::string BackfillDoneAt(const Inputs& in) {
  if (!in.backfill_done_at.empty()) return in.backfill_done_at;
  std::string at;
  for (const auto& e : in.events) {
    if (e.kind == "backfill.done") at = e.at;
  }
  return at;
}

// The latest verification, for switch (`max_age` from the plan) and
// complete (no age). See the rule in gates.h.
void VerificationCheck(const Inputs& in, std::optional<int64_t> max_age, GateResult& r) {
  const char* kCheck = "verification";
  const bool needed = in.has_backfill || in.has_dual_write;
  const std::string rerun = "; run `sluice verify`";
  if (!in.last_verify_passed) {
    if (needed) {
      Add(r, kCheck, false,
          std::string("no verification recorded, and the migration ") +
              (in.has_backfill ? "backfills rows" : "dual-writes") + rerun);
    } else if (max_age) {
      Add(r, kCheck, false, "no verification recorded (the plan sets max_verify_age_seconds)" + rerun);
    } else {
      Add(r, kCheck, true, "nothing to verify (no backfill, no dual-write)");
    }
    return;
  }
  const std::string recorded = in.last_verify_at.empty() ? std::string("time not recorded") : in.last_verify_at;
  // The time the verification started: from its report when gathered.
  std::string started = in.last_verify_at;
  if (in.last_verify_report) {
    auto j = Json::parse(*in.last_verify_report, nullptr, false);
    auto passed = j.is_object() ? Bool(j, "passed") : std::nullopt;
    if (!passed) {
      Add(r, kCheck, false, "the report of the latest verification (" + recorded + ") is unreadable" + rerun);
      return;
    }
    if (Bool(j, "could_not_run").value_or(false)) {
      Add(r, kCheck, false,
          "the latest verification (" + recorded + ") could not run: " +
              Str(j, "error").value_or("no reason recorded") + "; fix that and run `sluice verify`");
      return;
    }
    if (*passed != *in.last_verify_passed) {
      Add(r, kCheck, false,
          "the latest verification (" + recorded + ") is recorded as " + (*in.last_verify_passed ? "passed" : "failed") +
              " but its report says " + (*passed ? "passed" : "failed") + rerun);
      return;
    }
    auto at = Str(j, "at");
    if (!at) {
      Add(r, kCheck, false, "the report of the latest verification (" + recorded + ") has no start time" + rerun);
      return;
    }
    started = *at;
  }
  if (!*in.last_verify_passed) {
    Add(r, kCheck, false, "the latest verification (" + recorded + ") FAILED; see `sluice status`");
    return;
  }
  auto started_ms = ParseIsoMillis(started);
  if (!started_ms) {
    Add(r, kCheck, false, "the time of the latest verification (" + Quoted(started) + ") is unreadable" + rerun);
    return;
  }
  std::string detail = "passed (" + started + ")";
  if (in.has_backfill) {
    if (in.backfill != "done") {
      Add(r, kCheck, false,
          "the latest verification (" + started + ") cannot cover the backfill, which is " +
              (in.backfill.empty() ? std::string("in an unknown state") : in.backfill) +
              "; finish it (`sluice backfill`), then run `sluice verify`");
      return;
    }
    std::string done = BackfillDoneAt(in);
    if (done.empty()) {
      Add(r, kCheck, false,
          "no time is recorded for the end of the backfill (no backfill.done event), so the verification cannot be "
          "shown to have run after it");
      return;
    }
    auto done_ms = ParseIsoMillis(done);
    if (!done_ms) {
      Add(r, kCheck, false, "the time the backfill finished (" + Quoted(done) + ") is unreadable");
      return;
    }
    if (*started_ms < *done_ms) {
      Add(r, kCheck, false,
          "the latest verification (" + started + ") started before the backfill finished (" + done + ")" + rerun);
      return;
    }
    detail += ", after the backfill finished (" + done + ")";
  }
  if (max_age) {
    if (in.now <= 0) {
      Add(r, kCheck, false, "the current time is unknown, so the verification's age cannot be checked");
      return;
    }
    int64_t age = in.now - *started_ms / 1000;
    if (age < -kClockSkewSeconds) {
      Add(r, kCheck, false,
          "the latest verification (" + started + ") is dated " + Age(-age) +
              " in the future (clocks disagree?)" + rerun);
      return;
    }
    if (age < 0) age = 0;
    if (age > *max_age) {
      Add(r, kCheck, false,
          "the latest passing verification is " + Age(age) + " old (max " + Age(*max_age) + ")" + rerun);
      return;
    }
    detail = "passed " + Age(age) + " ago (" + started + ")" +
             (in.has_backfill ? ", after the backfill finished (" + BackfillDoneAt(in) + ")" : "");
  }
  Add(r, kCheck, true, detail);
}

// A recorded `sluice verify --watch` soak, read from its event.
struct Soak {
  int64_t seconds = 0;
  double rate = 0;
  int64_t keys = 0;
};

std::optional<Soak> ReadSoak(const Event& e) {
  auto d = Json::parse(e.details, nullptr, false);
  if (!d.is_object()) return std::nullopt;
  auto a = ParseIsoMillis(Str(d, "started_at").value_or(""));
  auto b = ParseIsoMillis(Str(d, "ended_at").value_or(""));
  auto rate = Num(d, "rate");
  auto keys = Int(d, "keys");
  if (!a || !b || *b < *a || !rate || *rate < 0 || !keys || *keys < 0) return std::nullopt;
  return Soak{(*b - *a) / 1000, *rate, *keys};
}

void SoakCheck(const Inputs& in, const plan::Gate& g, GateResult& r) {
  const int64_t need = *g.soak_seconds;
  double max = g.max_divergence.value_or(kDefaultMaxDivergence);
  // The longest recorded soak (the latest of equals). A soak event that
  // cannot be read could be the longest one: then nothing can be decided.
  std::optional<Soak> best;
  std::vector<std::string> unreadable;
  for (const auto& e : in.events) {
    if (e.kind != "shadow_watch") continue;
    auto s = ReadSoak(e);
    if (!s) {
      unreadable.push_back(e.at);
      continue;
    }
    if (!best || s->seconds >= best->seconds) best = s;
  }
  if (!unreadable.empty()) {
    Add(r, "shadow-read soak", false,
        fmt::format("{} recorded soak(s) cannot be read (event at {}); run `sluice verify --watch {}s`",
                    unreadable.size(), unreadable.front(), need));
    return;
  }
  if (!best) {
    Add(r, "shadow-read soak", false, fmt::format("no soak recorded; run `sluice verify --watch {}s`", need));
    return;
  }
  bool long_enough = best->seconds + 1 >= need;  // rounds end on whole seconds
  bool low = best->rate <= max + 1e-12;
  Add(r, "shadow-read soak", long_enough && low && best->keys > 0,
      fmt::format("{} s soak (need {} s), divergence {:.4f}% of {} keys (max {:.4f}%){}", best->seconds, need,
                  best->rate * 100, best->keys, max * 100, best->keys > 0 ? "" : "; no key was read"));
}

void ObservationCheck(const Inputs& in, int64_t need, GateResult& r) {
  const char* kCheck = "observation window";
  // Stable since the last switch (a switch back or an abort resets the clock).
  // (A plain int64_t: GCC 12 misjudges optional<int64_t> here.)
  bool switched = false;
  int64_t since = 0;
  std::string unreadable;
  for (const auto& e : in.events) {
    if (e.kind == "switch") {
      auto at = ParseIso(e.at);
      switched = at.has_value();
      since = at.value_or(0);
      unreadable = switched ? "" : e.at;
    }
    if (e.kind == "switch.back" || e.kind == "abort") {
      switched = false;
      unreadable.clear();
    }
  }
  if (!unreadable.empty()) {
    Add(r, kCheck, false, "the time of the last switch (" + Quoted(unreadable) + ") is unreadable");
  } else if (in.live != "new" || !switched) {
    Add(r, kCheck, false,
        fmt::format("reads are not on the new version; `sluice switch` and observe for {}", Age(need)));
  } else if (in.now <= 0) {
    Add(r, kCheck, false, "the current time is unknown, so the observation window cannot be measured");
  } else {
    int64_t stable = in.now - since;
    Add(r, kCheck, stable >= need, fmt::format("switched {} ago, need {} of stable reads", Age(stable), Age(need)));
  }
}

}  // namespace

GateResult EvaluateBackfill(const Inputs& in) {
  GateResult r;
  r.gate = "backfill";
  const plan::Gate* g = Settings(in, "backfill");
  r.configured = g != nullptr;
  if (!in.has_backfill) {
    Add(r, "backfill", true, "nothing to backfill");
  } else if (in.parity) {
    Add(r, in.parity->check.empty() ? "parity" : in.parity->check, in.parity->passed,
        in.parity->detail.empty() && !in.parity->passed ? "failed, no detail recorded" : in.parity->detail);
  } else if (in.backfill == "done") {
    Add(r, "parity", true, "checked when the backfill finished");
  } else {
    Add(r, "backfill", false,
        "backfill is " + (in.backfill.empty() ? std::string("in an unknown state") : in.backfill) +
            "; run `sluice backfill`");
  }
  Signoffs(in, g, "backfill", r);
  return r;
}

// Old-version writes whose `up` failed (on_error: record) left the new
// columns diverged; the new version must not be read or made final until
// they are fixed.
void DualWriteFailuresCheck(const Inputs& in, GateResult& r) {
  if (!in.has_dual_write) return;
  if (!in.dual_write_failures) {
    Add(r, "dual-write failures", false, "the recorded dual-write failures could not be read");
    return;
  }
  const int64_t n = *in.dual_write_failures;
  std::string keys;
  for (const auto& k : in.dual_write_failure_keys) keys += (keys.empty() ? "" : "; ") + k;
  Add(r, "dual-write failures", n == 0,
      n == 0 ? "none unresolved"
             : fmt::format("{} row(s) whose `up` failed on an old-version write are unresolved ({}); fix them through "
                           "the old version or run `sluice failures MIGRATION --recheck`",
                           n, keys));
}

GateResult EvaluateSwitch(const Inputs& in) {
  GateResult r;
  r.gate = "switch";
  const plan::Gate* g = Settings(in, "switch");
  r.configured = g != nullptr;
  Add(r, "backfill done", !in.has_backfill || in.backfill == "done",
      in.has_backfill ? "backfill is " + (in.backfill.empty() ? std::string("in an unknown state") : in.backfill)
                      : "nothing to backfill");
  VerificationCheck(in, g ? g->max_verify_age_seconds : std::nullopt, r);
  DualWriteFailuresCheck(in, r);
  if (g && g->soak_seconds && *g->soak_seconds > 0) SoakCheck(in, *g, r);
  Signoffs(in, g, "switch", r);
  return r;
}

std::string AuditWindowStart(const std::vector<Event>& events, const std::string& started_at) {
  std::string since;
  for (const auto& e : events) {
    if (e.kind == "switch") since = e.at;
    if (e.kind == "switch.back" || e.kind == "abort") since.clear();
  }
  return since.empty() ? started_at : since;
}

Inputs::Audit AuditFromEvents(const std::vector<Event>& events, const std::string& started_at,
                              bool nothing_to_audit) {
  Inputs::Audit a;
  a.nothing_to_audit = nothing_to_audit;
  a.window_start = AuditWindowStart(events, started_at);
  for (const auto& e : events) {
    if (e.kind != "audit") continue;
    Json d = Json::parse(e.details, nullptr, false);
    std::string window = d.is_object() && d.contains("window_start") && d["window_start"].is_string()
                             ? d["window_start"].get<std::string>()
                             : "";
    if (d.is_object() && window != a.window_start) continue;  // an earlier window's audit
    a.found = true;
    a.at = e.at;
    if (!d.is_object()) {
      a.blocking = true;
      a.coverage_sufficient = false;
      a.summary = "an unreadable audit record (" + Quoted(e.details) + ")";
      continue;
    }
    auto flag = [&](const char* k, bool missing) { return d.contains(k) && d[k].is_boolean() ? d[k].get<bool>() : missing; };
    a.blocking = flag("blocking", true);  // missing: fail closed
    a.coverage_sufficient = flag("coverage_sufficient", false);
    a.summary = d.contains("summary") && d["summary"].is_string() ? d["summary"].get<std::string>()
                                                                  : "no summary recorded";
  }
  return a;
}

// Nobody may still read or write what complete drops (docs/audit.md).
void AuditCheck(const Inputs& in, const plan::Gate* g, GateResult& r) {
  const std::string mode = g && g->audit ? *g->audit : "warn";
  if (mode == "off") return;
  const char* kCheck = "contract audit";
  std::string problem;
  if (!in.audit) {
    problem = "the recorded audits could not be read";
  } else if (in.audit->nothing_to_audit) {
    Add(r, kCheck, true, "complete removes no column, table or version the old application could use");
    return;
  } else if (!in.audit->found) {
    problem = "no `sluice audit` ran in the current observation window (since " +
              (in.audit->window_start.empty() ? std::string("the start") : in.audit->window_start) +
              "); run `sluice audit MIGRATION` after the old application and its jobs had time to show themselves";
  } else if (in.audit->blocking || !in.audit->coverage_sufficient) {
    problem = "the audit at " + in.audit->at + " found: " + in.audit->summary +
              " (see `sluice audit MIGRATION`; run it again once they have stopped)";
  }
  if (problem.empty()) {
    Add(r, kCheck, true, "the audit at " + in.audit->at + " found " + in.audit->summary);
  } else if (mode == "required") {
    Add(r, kCheck, false, problem);
  } else {
    Add(r, kCheck, true, "WARNING (gates.complete.audit: warn; set it to required to enforce): " + problem);
  }
}

GateResult EvaluateComplete(const Inputs& in) {
  GateResult r;
  r.gate = "complete";
  const plan::Gate* g = Settings(in, "complete");
  r.configured = g != nullptr;
  bool rollback_ok = in.phase == "active" || in.phase == "completing";
  Add(r, "rollback executable", rollback_ok,
      rollback_ok ? "phase " + in.phase + ": `sluice rollback` still restores the old version"
                  : "phase " + (in.phase.empty() ? std::string("unknown") : in.phase));
  VerificationCheck(in, std::nullopt, r);
  DualWriteFailuresCheck(in, r);
  int64_t need = g && g->observation_seconds ? *g->observation_seconds : 0;
  if (need > 0) ObservationCheck(in, need, r);
  AuditCheck(in, g, r);
  Signoffs(in, g, "complete", r);
  return r;
}

std::vector<GateResult> EvaluateAll(const Inputs& in) {
  return {EvaluateBackfill(in), EvaluateSwitch(in), EvaluateComplete(in)};
}

Decision Admit(const GateResult& g, const std::string& migration, bool force, const std::string& reason) {
  Decision d;
  if (g.passed) {
    d.proceed = true;
    return d;
  }
  std::string evidence;
  Json failed = Json::array();
  for (const auto& c : g.checks) {
    evidence += std::string("\n  [") + (c.passed ? " ok " : "FAIL") + "] " + c.check + ": " + c.detail;
    if (!c.passed) failed.push_back({{"check", c.check}, {"detail", c.detail}});
  }
  if (!force) {
    d.refusal = "the " + g.gate + " gate of '" + migration + "' is not passed: " + g.Reason() + evidence +
                "\n(override with --force --reason TEXT; the override is recorded)";
    return d;
  }
  bool blank = true;
  for (char c : reason) blank = blank && std::isspace(static_cast<unsigned char>(c));
  if (blank) {
    d.needs_reason = true;
    d.refusal = "--force needs --reason TEXT (it is recorded in the audit log)";
    return d;
  }
  d.proceed = true;
  d.overridden = true;
  d.event_message = "GATE OVERRIDDEN: " + g.gate + " gate forced past (" + g.Reason() + "): " + reason;
  d.event_details = Json{{"gate", g.gate}, {"reason", reason}, {"failed", failed}}.dump(
      -1, ' ', false, Json::error_handler_t::replace);
  return d;
}

}  // namespace sluice::gates
