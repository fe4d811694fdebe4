#include "gates/gates.h"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sluice::gates {

std::optional<int64_t> ParseIso(const std::string& iso) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) < 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

std::string GateResult::Reason() const {
  for (const auto& c : checks) {
    if (!c.passed) return c.check + ": " + c.detail;
  }
  return "";
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

// Sign-offs recorded for `gate`, one check per required role.
void Signoffs(const Inputs& in, const plan::Gate* g, const std::string& gate, GateResult& r) {
  if (!g) return;
  for (const auto& req : g->signoffs) {
    std::string who;
    for (const auto& e : in.events) {
      if (e.kind != "signoff") continue;
      auto d = nlohmann::json::parse(e.details, nullptr, false);
      if (!d.is_object() || d.value("gate", "") != gate || d.value("role", "") != req.role) continue;
      who = d.value("name", e.actor) + " at " + e.at + (d.value("note", "").empty() ? "" : " (" + d.value("note", "") + ")");
    }
    r.signoffs.push_back(req.role + ": " + (who.empty() ? "missing" : who));
    Add(r, "signoff " + req.role, !who.empty(),
        who.empty() ? "no sign-off yet; run `sluice signoff " + gate + " --as NAME --role '" + req.role + "'`"
                    : "signed by " + who);
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
    Add(r, in.parity->check, in.parity->passed, in.parity->detail);
  } else if (in.backfill == "done") {
    Add(r, "parity", true, "checked when the backfill finished");
  } else {
    Add(r, "backfill", false, "backfill is " + in.backfill + "; run `sluice backfill`");
  }
  Signoffs(in, g, "backfill", r);
  return r;
}

GateResult EvaluateSwitch(const Inputs& in) {
  GateResult r;
  r.gate = "switch";
  const plan::Gate* g = Settings(in, "switch");
  r.configured = g != nullptr;
  Add(r, "backfill done", !in.has_backfill || in.backfill == "done",
      in.has_backfill ? "backfill is " + in.backfill : "nothing to backfill");
  // Verification: a failed latest report always blocks; a plan can demand a
  // recent passing one.
  if (!in.last_verify_passed) {
    bool required = g && g->max_verify_age_seconds.has_value();
    Add(r, "verification", !required,
        required ? "no verification recorded; run `sluice verify`" : "none recorded (the plan does not require one)");
  } else if (!*in.last_verify_passed) {
    Add(r, "verification", false, "the latest verification (" + in.last_verify_at + ") FAILED; see `sluice status`");
  } else {
    auto at = ParseIso(in.last_verify_at);
    int64_t age = at ? in.now - *at : 0;
    if (g && g->max_verify_age_seconds && age > *g->max_verify_age_seconds) {
      Add(r, "verification", false,
          "the latest passing verification is " + Age(age) + " old (max " + Age(*g->max_verify_age_seconds) +
              "); run `sluice verify`");
    } else {
      Add(r, "verification", true, "passed " + Age(age) + " ago (" + in.last_verify_at + ")");
    }
  }
  if (g && g->soak_seconds && *g->soak_seconds > 0) {
    double max = g->max_divergence.value_or(kDefaultMaxDivergence);
    // The longest recorded shadow-read soak (sluice verify --watch).
    const Event* best = nullptr;
    int64_t best_len = -1;
    for (const auto& e : in.events) {
      if (e.kind != "shadow_watch") continue;
      auto d = nlohmann::json::parse(e.details, nullptr, false);
      if (!d.is_object()) continue;
      auto a = ParseIso(d.value("started_at", "")), b = ParseIso(d.value("ended_at", ""));
      int64_t len = a && b ? *b - *a : 0;
      if (len >= best_len) {
        best_len = len;
        best = &e;
      }
    }
    if (!best) {
      Add(r, "shadow-read soak", false,
          fmt::format("no soak recorded; run `sluice verify --watch {}s`", *g->soak_seconds));
    } else {
      auto d = nlohmann::json::parse(best->details);
      double rate = d.value("rate", 0.0);
      int64_t keys = d.value("keys", int64_t{0});
      bool long_enough = best_len + 1 >= *g->soak_seconds;  // rounds end on whole seconds
      bool low = rate <= max + 1e-12;
      Add(r, "shadow-read soak", long_enough && low && keys > 0,
          fmt::format("{} s soak (need {} s), divergence {:.4f}% of {} keys (max {:.4f}%)", best_len, *g->soak_seconds,
                      rate * 100, keys, max * 100));
    }
  }
  Signoffs(in, g, "switch", r);
  return r;
}

GateResult EvaluateComplete(const Inputs& in) {
  GateResult r;
  r.gate = "complete";
  const plan::Gate* g = Settings(in, "complete");
  r.configured = g != nullptr;
  bool rollback_ok = in.phase == "active" || in.phase == "completing";
  Add(r, "rollback executable", rollback_ok,
      rollback_ok ? "phase " + in.phase + ": `sluice rollback` still restores the old version"
                  : "phase " + in.phase);
  int64_t need = g && g->observation_seconds ? *g->observation_seconds : 0;
  if (need > 0) {
    // Stable since the last switch (a switch back resets the clock).
    int64_t since = -1;  // GCC 12 misjudges optional<int64_t> here
    for (const auto& e : in.events) {
      if (e.kind == "switch") since = ParseIso(e.at).value_or(-1);
      if (e.kind == "switch.back" || e.kind == "abort") since = -1;
    }
    if (in.live != "new" || since < 0) {
      Add(r, "observation window", false,
          fmt::format("reads are not on the new version; `sluice switch` and observe for {}", Age(need)));
    } else {
      int64_t stable = in.now - since;
      Add(r, "observation window", stable >= need,
          fmt::format("switched {} ago, need {} of stable reads", Age(stable), Age(need)));
    }
  }
  Signoffs(in, g, "complete", r);
  return r;
}

std::vector<GateResult> EvaluateAll(const Inputs& in) {
  return {EvaluateBackfill(in), EvaluateSwitch(in), EvaluateComplete(in)};
}

}  // namespace sluice::gates
