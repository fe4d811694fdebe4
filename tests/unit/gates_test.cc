// The readiness gates as pure functions, without a database: each gate and
// each of its checks with its evidence passing, failing, missing and
// unreadable; sign-offs; time windows with `now` set explicitly; overrides.
// The rule under test is in src/gates/gates.h: a check that could not be
// evaluated is a failed check.
#include "gates/gates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>

namespace sluice::gates {
namespace {

using ::testing::HasSubstr;

// 2026-03-01T12:00:00Z, the fixed "now" of every case.
constexpr int64_t kNow = 1772366400;

// ISO-8601 UTC with milliseconds, `offset_ms` from kNow.
std::string Iso(int64_t offset_ms) {
  int64_t ms = kNow * 1000 + offset_ms;
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string Report(const std::string& at, bool passed, bool could_not_run = false, const std::string& error = "") {
  nlohmann::json j = {{"migration", "m"}, {"at", at}, {"passed", passed}, {"checks", nlohmann::json::array()}};
  if (could_not_run) {
    j["could_not_run"] = true;
    j["error"] = error;
  }
  return j.dump();
}

std::string Soak(const std::string& started, const std::string& ended, double rate, int64_t keys) {
  return nlohmann::json{{"started_at", started}, {"ended_at", ended}, {"rate", rate}, {"keys", keys}}.dump();
}

std::string Signoff(const std::string& gate, const std::string& role, const std::string& name) {
  return nlohmann::json{{"gate", gate}, {"role", role}, {"name", name}, {"note", ""}}.dump();
}

// Evidence of a migration that is ready for every gate: backfilled 100 s
// ago, verified (passing) 50 s ago, still active, reads on the old version.
struct World {
  plan::GateSettings settings;
  Inputs in;
  World() {
    in.settings = &settings;
    in.phase = "active";
    in.backfill = "done";
    in.live = "old";
    in.has_backfill = true;
    in.last_verify_passed = true;
    in.last_verify_at = Iso(-49'000);
    in.last_verify_report = Report(Iso(-50'000), true);
    in.events = {{Iso(-500'000), "start", "t", "", ""}, {Iso(-100'000), "backfill.done", "t", "", "{\"rows\": 10}"}};
    in.now = kNow;
  }
  void Event(int64_t offset_ms, const std::string& kind, const std::string& details = "") {
    in.events.push_back({Iso(offset_ms), kind, "tester", "", details});
  }
};

struct Case {
  std::string name;
  std::function<void(World&)> setup;
  std::string gate;    // backfill | switch | complete
  std::string check;   // the check looked at
  bool passed;         // expected outcome of that check (and of the gate when false)
  std::string detail;  // substring of its detail
};

GateResult Evaluate(const World& w, const std::string& gate) {
  if (gate == "backfill") return EvaluateBackfill(w.in);
  if (gate == "switch") return EvaluateSwitch(w.in);
  return EvaluateComplete(w.in);
}

std::string Dump(const GateResult& r) {
  std::string s = r.gate + (r.passed ? " passed" : " FAILED") + "\n";
  for (const auto& c : r.checks) s += std::string("  [") + (c.passed ? "ok" : "FAIL") + "] " + c.check + ": " + c.detail + "\n";
  return s;
}

void RunCases(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    World w;
    c.setup(w);
    GateResult r = Evaluate(w, c.gate);
    const Evidence* found = nullptr;
    for (const auto& e : r.checks) {
      if (e.check == c.check) found = &e;
    }
    ASSERT_NE(found, nullptr) << "no check '" << c.check << "'\n" << Dump(r);
    EXPECT_EQ(found->passed, c.passed) << Dump(r);
    EXPECT_THAT(found->detail, HasSubstr(c.detail)) << Dump(r);
    if (!c.passed) {
      EXPECT_FALSE(r.passed) << Dump(r);
      EXPECT_FALSE(r.Reason().empty());
    }
  }
}

TEST(GatesTest, ReadyMigrationPassesEveryGate) {
  World w;
  for (const auto& r : EvaluateAll(w.in)) EXPECT_TRUE(r.passed) << Dump(r);
  EXPECT_EQ(EvaluateAll(w.in).size(), 3u);
}

TEST(GatesTest, BackfillGateParity) {
  RunCases({
      {"nothing to backfill", [](World& w) { w.in.has_backfill = false; w.in.backfill = "none"; }, "backfill",
       "backfill", true, "nothing to backfill"},
      {"parity measured and equal", [](World& w) { w.in.parity = Evidence{"parity", true, "orders: 10 rows"}; },
       "backfill", "parity", true, "orders: 10 rows"},
      {"parity measured and different",
       [](World& w) { w.in.parity = Evidence{"parity", false, "orders: 10 rows in the old version, 9 in the new"}; },
       "backfill", "parity", false, "9 in the new"},
      {"parity could not be measured",
       [](World& w) { w.in.parity = Unmeasured("parity", "relation \"orders\" does not exist"); }, "backfill",
       "parity", false, "could not be measured: relation"},
      {"failed parity without detail still says so",
       [](World& w) { w.in.parity = Evidence{"parity", false, ""}; }, "backfill", "parity", false, "no detail"},
      {"parity checked at the end of the backfill", [](World&) {}, "backfill", "parity", true, "checked when"},
      {"backfill still running", [](World& w) { w.in.backfill = "running"; }, "backfill", "backfill", false,
       "backfill is running"},
      {"backfill state unknown", [](World& w) { w.in.backfill = ""; }, "backfill", "backfill", false,
       "unknown state"},
  });
}

TEST(GatesTest, VerificationEvidenceForSwitchAndComplete) {
  for (const char* gate : {"switch", "complete"}) {
    SCOPED_TRACE(gate);
    RunCases({
        {"passing after the backfill", [](World&) {}, gate, "verification", true, "after the backfill finished"},
        {"missing, with a backfill", [](World& w) { w.in.last_verify_passed.reset(); w.in.last_verify_report.reset(); },
         gate, "verification", false, "no verification recorded"},
        {"missing, with only a dual-write",
         [](World& w) {
           w.in.has_backfill = false;
           w.in.has_dual_write = true;
           w.in.last_verify_passed.reset();
           w.in.last_verify_report.reset();
         },
         gate, "verification", false, "dual-writes"},
        {"missing, nothing to verify",
         [](World& w) {
           w.in.has_backfill = false;
           w.in.backfill = "none";
           w.in.last_verify_passed.reset();
           w.in.last_verify_report.reset();
         },
         gate, "verification", true, "nothing to verify"},
        {"failed", [](World& w) {
           w.in.last_verify_passed = false;
           w.in.last_verify_report = Report(Iso(-50'000), false);
         },
         gate, "verification", false, "FAILED"},
        {"failed, even with nothing to verify",
         [](World& w) {
           w.in.has_backfill = false;
           w.in.last_verify_passed = false;
           w.in.last_verify_report = Report(Iso(-50'000), false);
         },
         gate, "verification", false, "FAILED"},
        {"could not run", [](World& w) {
           w.in.last_verify_passed = false;
           w.in.last_verify_report = Report(Iso(-50'000), false, true, "function max(uuid) does not exist");
         },
         gate, "verification", false, "could not run: function max(uuid) does not exist"},
        {"could not run, even if recorded as passed", [](World& w) {
           w.in.last_verify_report = Report(Iso(-50'000), true, true, "connection lost");
         },
         gate, "verification", false, "could not run: connection lost"},
        {"report is not JSON", [](World& w) { w.in.last_verify_report = "{truncated"; }, gate, "verification", false,
         "unreadable"},
        {"report is empty", [](World& w) { w.in.last_verify_report = ""; }, gate, "verification", false,
         "unreadable"},
        {"report without passed", [](World& w) { w.in.last_verify_report = "{\"at\": \"x\"}"; }, gate,
         "verification", false, "unreadable"},
        {"report without a start time",
         [](World& w) { w.in.last_verify_report = "{\"passed\": true, \"checks\": []}"; }, gate, "verification",
         false, "no start time"},
        {"report and record disagree", [](World& w) { w.in.last_verify_report = Report(Iso(-50'000), false); },
         gate, "verification", false, "report says failed"},
        {"unparseable start time in the report",
         [](World& w) { w.in.last_verify_report = Report("yesterday", true); }, gate, "verification", false,
         "'yesterday') is unreadable"},
        {"unparseable record time, no report",
         [](World& w) {
           w.in.last_verify_report.reset();
           w.in.last_verify_at = "2026-03-01 12:00";
         },
         gate, "verification", false, "is unreadable"},
        {"record time is used without a report", [](World& w) { w.in.last_verify_report.reset(); }, gate,
         "verification", true, "after the backfill finished"},
        {"started before the backfill finished",
         [](World& w) { w.in.last_verify_report = Report(Iso(-100'001), true); }, gate, "verification", false,
         "started before the backfill finished"},
        {"started the same millisecond the backfill finished",
         [](World& w) { w.in.last_verify_report = Report(Iso(-100'000), true); }, gate, "verification", true,
         "after the backfill finished"},
        {"engine's backfill time wins over the event",
         [](World& w) { w.in.backfill_done_at = Iso(-10'000); }, gate, "verification", false,
         "started before the backfill finished"},
        {"no backfill.done event",
         [](World& w) { w.in.events.erase(w.in.events.begin() + 1); }, gate, "verification", false,
         "no backfill.done event"},
        {"latest backfill.done event counts",
         [](World& w) { w.Event(-20'000, "backfill.done"); }, gate, "verification", false,
         "started before the backfill finished"},
        {"unreadable backfill time", [](World& w) { w.in.backfill_done_at = "soon"; }, gate, "verification", false,
         "'soon') is unreadable"},
        {"backfill not done", [](World& w) { w.in.backfill = "running"; }, gate, "verification", false,
         "cannot cover the backfill, which is running"},
        {"nothing to backfill needs no backfill time",
         [](World& w) {
           w.in.has_backfill = false;
           w.in.has_dual_write = true;
           w.in.backfill = "none";
           w.in.events.erase(w.in.events.begin() + 1);
         },
         gate, "verification", true, "passed"},
    });
  }
}

TEST(GatesTest, SwitchGateBackfillAndVerificationAge) {
  auto age = [](int64_t max) {
    return [max](World& w) {
      w.settings.switch_.present = true;
      w.settings.switch_.max_verify_age_seconds = max;
    };
  };
  RunCases({
      {"backfill done", [](World&) {}, "switch", "backfill done", true, "backfill is done"},
      {"backfill running", [](World& w) { w.in.backfill = "running"; }, "switch", "backfill done", false,
       "backfill is running"},
      {"backfill state unknown", [](World& w) { w.in.backfill = ""; }, "switch", "backfill done", false,
       "unknown state"},
      {"fresh enough", age(60), "switch", "verification", true, "passed 50 s ago"},
      {"too old", age(30), "switch", "verification", false, "50 s old (max 30 s)"},
      {"age required with nothing to verify",
       [age](World& w) {
         age(60)(w);
         w.in.has_backfill = false;
         w.in.last_verify_passed.reset();
         w.in.last_verify_report.reset();
       },
       "switch", "verification", false, "max_verify_age_seconds"},
      {"now unknown",
       [age](World& w) {
         age(60)(w);
         w.in.now = 0;
       },
       "switch", "verification", false, "current time is unknown"},
      {"dated slightly in the future",
       [age](World& w) {
         age(60)(w);
         w.in.now = kNow - 70;  // verification started 20 s "later" than now
       },
       "switch", "verification", true, "passed 0 s ago"},
      {"dated far in the future",
       [age](World& w) {
         age(60)(w);
         w.in.now = kNow - 3600;
       },
       "switch", "verification", false, "in the future"},
  });
}

TEST(GatesTest, SwitchGateSoak) {
  auto soak = [](int64_t seconds, double max) {
    return [seconds, max](World& w) {
      w.settings.switch_.present = true;
      w.settings.switch_.soak_seconds = seconds;
      w.settings.switch_.max_divergence = max;
    };
  };
  RunCases({
      {"no soak recorded", soak(60, 0.001), "switch", "shadow-read soak", false, "no soak recorded"},
      {"long enough and clean",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-80'000), Iso(-20'000), 0.0, 500));
       },
       "switch", "shadow-read soak", true, "60 s soak (need 60 s)"},
      {"too short",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-50'000), Iso(-20'000), 0.0, 500));
       },
       "switch", "shadow-read soak", false, "30 s soak (need 60 s)"},
      {"divergence above the threshold",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-80'000), Iso(-10'000), 0.01, 500));
       },
       "switch", "shadow-read soak", false, "1.0000% of 500 keys (max 0.1000%)"},
      {"no key read",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-80'000), Iso(-10'000), 0.0, 0));
       },
       "switch", "shadow-read soak", false, "no key was read"},
      {"the longest soak decides",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-300'000, "shadow_watch", Soak(Iso(-400'000), Iso(-300'000), 0.5, 500));  // long, bad
         w.Event(-10'000, "shadow_watch", Soak(Iso(-80'000), Iso(-10'000), 0.0, 500));    // shorter, clean
       },
       "switch", "shadow-read soak", false, "100 s soak"},
      {"unreadable soak event",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-80'000), Iso(-10'000), 0.0, 500));
         w.Event(-5'000, "shadow_watch", "not json");
       },
       "switch", "shadow-read soak", false, "cannot be read"},
      {"soak without a rate",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch",
                 nlohmann::json{{"started_at", Iso(-80'000)}, {"ended_at", Iso(-10'000)}, {"keys", 5}}.dump());
       },
       "switch", "shadow-read soak", false, "cannot be read"},
      {"soak with a rate of the wrong type",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch",
                 nlohmann::json{{"started_at", Iso(-80'000)}, {"ended_at", Iso(-10'000)}, {"rate", "0"},
                                {"keys", 5}}.dump());
       },
       "switch", "shadow-read soak", false, "cannot be read"},
      {"soak with unparseable times",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak("then", Iso(-10'000), 0.0, 5));
       },
       "switch", "shadow-read soak", false, "cannot be read"},
      {"soak that ends before it starts",
       [soak](World& w) {
         soak(60, 0.001)(w);
         w.Event(-10'000, "shadow_watch", Soak(Iso(-10'000), Iso(-80'000), 0.0, 5));
       },
       "switch", "shadow-read soak", false, "cannot be read"},
  });
  // No soak asked for: no soak check at all.
  World w;
  for (const auto& c : EvaluateSwitch(w.in).checks) EXPECT_NE(c.check, "shadow-read soak");
}

TEST(GatesTest, CompleteGateRollbackAndObservationWindow) {
  auto window = [](int64_t seconds) {
    return [seconds](World& w) {
      w.settings.complete.present = true;
      w.settings.complete.observation_seconds = seconds;
    };
  };
  RunCases({
      {"active", [](World&) {}, "complete", "rollback executable", true, "phase active"},
      {"completing", [](World& w) { w.in.phase = "completing"; }, "complete", "rollback executable", true,
       "phase completing"},
      {"already complete", [](World& w) { w.in.phase = "complete"; }, "complete", "rollback executable", false,
       "phase complete"},
      {"phase unknown", [](World& w) { w.in.phase = ""; }, "complete", "rollback executable", false,
       "phase unknown"},
      {"reads not switched", window(60), "complete", "observation window", false, "not on the new version"},
      {"switched too recently",
       [window](World& w) {
         window(60)(w);
         w.in.live = "new";
         w.Event(-10'000, "switch");
       },
       "complete", "observation window", false, "switched 10 s ago, need 60 s"},
      {"observed long enough",
       [window](World& w) {
         window(60)(w);
         w.in.live = "new";
         w.Event(-90'000, "switch");
       },
       "complete", "observation window", true, "switched 90 s ago"},
      {"a switch back resets the clock",
       [window](World& w) {
         window(60)(w);
         w.in.live = "old";
         w.Event(-90'000, "switch");
         w.Event(-80'000, "switch.back");
       },
       "complete", "observation window", false, "not on the new version"},
      {"the clock restarts at the latest switch",
       [window](World& w) {
         window(60)(w);
         w.in.live = "new";
         w.Event(-300'000, "switch");
         w.Event(-200'000, "abort");
         w.Event(-30'000, "switch");
       },
       "complete", "observation window", false, "switched 30 s ago"},
      {"unreadable switch time",
       [window](World& w) {
         window(60)(w);
         w.in.live = "new";
         w.in.events.push_back({"a while ago", "switch", "t", "", ""});
       },
       "complete", "observation window", false, "'a while ago') is unreadable"},
      {"now unknown",
       [window](World& w) {
         window(60)(w);
         w.in.live = "new";
         w.Event(-90'000, "switch");
         w.in.now = 0;
       },
       "complete", "observation window", false, "current time is unknown"},
  });
}

TEST(GatesTest, Signoffs) {
  auto need = [](const char* gate_name, std::vector<std::string> roles) {
    return [gate_name, roles](World& w) {
      std::string g = gate_name;
      plan::Gate& gate = g == "backfill" ? w.settings.backfill : g == "switch" ? w.settings.switch_ : w.settings.complete;
      gate.present = true;
      for (const auto& r : roles) gate.signoffs.push_back({r, {}});
    };
  };
  for (const char* gate : {"backfill", "switch", "complete"}) {
    SCOPED_TRACE(gate);
    std::string g = gate;
    RunCases({
        {"missing", need(gate, {"SRE"}), gate, "signoff SRE", false, "sluice signoff " + g},
        {"present",
         [need, g](World& w) {
           need(g.c_str(), {"SRE"})(w);
           w.Event(-5'000, "signoff", Signoff(g, "SRE", "sam"));
         },
         gate, "signoff SRE", true, "signed by sam"},
        {"for another gate",
         [need, g](World& w) {
           need(g.c_str(), {"SRE"})(w);
           w.Event(-5'000, "signoff", Signoff(g == "switch" ? "complete" : "switch", "SRE", "sam"));
         },
         gate, "signoff SRE", false, "no sign-off yet"},
        {"another role",
         [need, g](World& w) {
           need(g.c_str(), {"SRE", "data owner"})(w);
           w.Event(-5'000, "signoff", Signoff(g, "SRE", "sam"));
         },
         gate, "signoff data owner", false, "--role 'data owner'"},
        {"unreadable sign-off event",
         [need](World& w) {
           need("switch", {"SRE"})(w);
           need("backfill", {"SRE"})(w);
           need("complete", {"SRE"})(w);
           w.Event(-5'000, "signoff", "{oops");
         },
         gate, "signoff SRE", false, "1 sign-off event(s) are unreadable"},
        {"name of the wrong type falls back to the actor",
         [need, g](World& w) {
           need(g.c_str(), {"SRE"})(w);
           w.Event(-5'000, "signoff", nlohmann::json{{"gate", g}, {"role", "SRE"}, {"name", 7}}.dump());
         },
         gate, "signoff SRE", true, "signed by tester"},
    });
  }
  // The scorecard lists every role with who signed.
  World w;
  need("switch", {"SRE", "data owner"})(w);
  w.Event(-5'000, "signoff", Signoff("switch", "SRE", "sam"));
  GateResult r = EvaluateSwitch(w.in);
  EXPECT_TRUE(r.configured);
  ASSERT_EQ(r.signoffs.size(), 2u);
  EXPECT_THAT(r.signoffs[0], HasSubstr("SRE: sam at "));
  EXPECT_EQ(r.signoffs[1], "data owner: missing");
  EXPECT_FALSE(EvaluateBackfill(w.in).configured);
}

TEST(GatesTest, OverridesNeedForceAndAReasonAndDescribeTheOverride) {
  World w;
  w.in.last_verify_passed = false;
  w.in.last_verify_report = Report(Iso(-50'000), false);
  GateResult failed = EvaluateSwitch(w.in);
  ASSERT_FALSE(failed.passed);

  Decision refuse = Admit(failed, "001_orders", false, "");
  EXPECT_FALSE(refuse.proceed);
  EXPECT_FALSE(refuse.overridden);
  EXPECT_THAT(refuse.refusal, HasSubstr("the switch gate of '001_orders' is not passed: verification"));
  EXPECT_THAT(refuse.refusal, HasSubstr("[FAIL] verification"));
  EXPECT_THAT(refuse.refusal, HasSubstr("[ ok ] backfill done"));
  EXPECT_THAT(refuse.refusal, HasSubstr("--force --reason"));

  for (const char* blank : {"", "  \t"}) {
    Decision no_reason = Admit(failed, "001_orders", true, blank);
    EXPECT_FALSE(no_reason.proceed);
    EXPECT_TRUE(no_reason.needs_reason);
    EXPECT_THAT(no_reason.refusal, HasSubstr("--reason"));
  }

  Decision forced = Admit(failed, "001_orders", true, "ticket OPS-12");
  EXPECT_TRUE(forced.proceed);
  EXPECT_TRUE(forced.overridden);
  EXPECT_THAT(forced.event_message, HasSubstr("GATE OVERRIDDEN: switch gate"));
  EXPECT_THAT(forced.event_message, HasSubstr("OPS-12"));
  auto d = nlohmann::json::parse(forced.event_details);
  EXPECT_EQ(d["gate"], "switch");
  EXPECT_EQ(d["reason"], "ticket OPS-12");
  ASSERT_EQ(d["failed"].size(), 1u);
  EXPECT_EQ(d["failed"][0]["check"], "verification");

  // A passed gate proceeds without an override, forced or not.
  World ok;
  for (bool force : {false, true}) {
    Decision pass = Admit(EvaluateSwitch(ok.in), "001_orders", force, "");
    EXPECT_TRUE(pass.proceed);
    EXPECT_FALSE(pass.overridden);
    EXPECT_TRUE(pass.event_message.empty());
  }
}

TEST(GatesTest, DefaultInputsFailClosed) {
  // Nothing gathered at all: no gate passes.
  Inputs in;
  for (const auto& r : EvaluateAll(in)) EXPECT_FALSE(r.passed) << Dump(r);
}

TEST(GatesTest, ParseIsoAcceptsOnlyWellFormedUtcTimes) {
  EXPECT_EQ(ParseIsoMillis("2026-03-01T12:00:00.000Z"), kNow * 1000);
  EXPECT_EQ(ParseIsoMillis("2026-03-01T12:00:00.123Z"), kNow * 1000 + 123);
  EXPECT_EQ(ParseIsoMillis("2026-03-01T12:00:00Z"), kNow * 1000);
  EXPECT_EQ(ParseIsoMillis("2026-03-01T12:00:00.123456Z"), kNow * 1000 + 123);
  EXPECT_EQ(ParseIso("2026-03-01T12:00:01.999Z"), kNow + 1);
  EXPECT_EQ(Iso(-1), "2026-03-01T11:59:59.999Z");
  for (const char* bad : {"", "yesterday", "2026-03-01", "2026-03-01 12:00:00Z", "2026-3-1T12:00:00Z",
                          "2026-03-01T12:00:00", "2026-03-01T12:00:00.Z", "2026-03-01T12:00:00Zjunk",
                          "2026-13-01T12:00:00Z", "2026-03-01T24:00:00Z", "2026-03-00T12:00:00Z"}) {
    EXPECT_FALSE(ParseIsoMillis(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace sluice::gates
