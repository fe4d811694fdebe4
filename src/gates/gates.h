// Readiness gates: the checks that stand before each phase transition
// (seed 001's scorecard), evaluated from evidence sluice has recorded in its
// state tables. Pure functions: the engine gathers the evidence, this module
// decides, so every rule lives in one place and is testable without a
// database (tests/unit/gates_test.cc).
//
//   backfill  before the backfill is declared done: row-count parity between
//             the old and the new read path; sign-offs
//   switch    before reads move to the new version: the backfill is done;
//             no unresolved dual-write failures (also before complete);
//             the latest verification passed and (for a migration with
//             anything to verify) ran after the backfill finished; when the
//             plan sets max_verify_age_seconds, it is recent enough;
//             shadow-read divergence over a soak of at least soak_seconds
//             below max_divergence (when the plan asks for a soak); sign-offs
//   complete  before contracting: the rollback is still executable; the
//             latest verification as for switch (without the age); the
//             switch has been stable for observation_seconds; the contract
//             audit (gates.complete.audit: required refuses without a clean,
//             sufficiently covered audit of the current window; warn, the
//             default, only reports); sign-offs (and the switch gate too,
//             when complete performs the switch)
//
// Fail closed: every piece of evidence a gate needs that is missing,
// unreadable or could not be gathered is a failed check whose detail says
// so (an unparseable time, an unreadable event or report, parity that could
// not be measured, a verification that could not run). There is no
// "unknown, so pass".
//
// Verification rule. A migration has *anything to verify* when it backfills
// rows or keeps a table in sync with dual-write triggers (`has_backfill`,
// `has_dual_write`). For such a migration switch and complete require a
// latest verification that passed and started after the backfill finished
// (`backfill_done_at`). A migration with nothing to verify (only
// create_table, create_index, ...) is not held back by a missing
// verification, but a failed latest one still blocks it. A verification
// whose report says it could not run (`could_not_run`, see
// verify::Report) blocks like a failed one.
//
// Windows (max_verify_age_seconds, soak_seconds, observation_seconds)
// default to zero: a plan opts into them. Time comes from `Inputs::now`,
// never from the system clock, so tests set it.
//
// Thread-safety: every function is pure and reentrant.
//
//   gates::Inputs in;                 // filled by the engine from the state tables
//   in.settings = &plan.gates; in.phase = "active"; in.now = time(nullptr); ...
//   gates::GateResult g = gates::EvaluateSwitch(in);
//   gates::Decision d = gates::Admit(g, "001_orders", force, reason);
//   if (!d.proceed) return FailedPrecondition(d.refusal);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plan/plan.h"

namespace sluice::gates {

// Default shadow-read divergence tolerated when a gate asks for a soak.
inline constexpr double kDefaultMaxDivergence = 0.001;

// One recorded event of the migration's audit log.
struct Event {
  std::string at;  // ISO-8601 UTC, as NowIso() writes it
  std::string kind;
  std::string actor;
  std::string message;
  std::string details;  // JSON or ""
};

// One line of a gate's scorecard.
struct Evidence {
  std::string check;
  bool passed = true;
  std::string detail;
};

// A gate's verdict: passed only when every check passed.
struct GateResult {
  std::string gate;       // backfill | switch | complete
  bool configured = false;  // the plan has settings for it
  bool passed = true;
  std::vector<Evidence> checks;
  // "role: name at time" for recorded sign-offs; missing roles as "role: missing".
  std::vector<std::string> signoffs;
  // One-line reason for a refusal (first failed check).
  std::string Reason() const;
};

// The evidence a gate decides on. Every field has a default that fails
// closed or means "not gathered": a caller that forgets a field gets a
// refusal that names it, never a silent pass.
struct Inputs {
  const plan::GateSettings* settings = nullptr;
  std::string phase;     // migration phase
  std::string backfill;  // none | pending | running | done ("" = unknown: fails)
  std::string live;      // old | new
  bool has_backfill = true;     // the migration rewrites rows at all
  bool has_dual_write = false;  // some table is kept in sync by triggers
  // The latest verification: nullopt = none recorded.
  std::optional<bool> last_verify_passed;
  std::string last_verify_at;  // when it was recorded (ISO-8601)
  // Its stored JSON report (verify::Report::ToJson): nullopt = not
  // gathered (then only the two fields above count). When given, its `at`
  // (the time the verification started) is the time compared with the
  // backfill's end, and `could_not_run` / `error` are read; a report that
  // is not a JSON object fails the verification check.
  std::optional<std::string> last_verify_report;
  // When the backfill finished (ISO-8601). "" = the time of the latest
  // `backfill.done` event in `events`; with neither, a migration with a
  // backfill cannot show that its verification came after it, and fails.
  std::string backfill_done_at;
  std::vector<Event> events;  // oldest first
  int64_t now = 0;            // epoch seconds; <= 0 fails every time window
  // Rows whose `up` failed on an old-version write and are not resolved
  // (dual_write_failures, on_error: record), with a few of their keys
  // ("table key column"). nullopt = not gathered: for a migration with a
  // dual-write, switch and complete fail.
  std::optional<int64_t> dual_write_failures;
  std::vector<std::string> dual_write_failure_keys;
  // Complete gate: the latest contract audit of the current observation
  // window (docs/audit.md; `gates: complete: audit:` required | warn |
  // off, default warn). nullopt = not gathered: fails when required.
  struct Audit {
    bool nothing_to_audit = false;  // complete removes no old object
    bool found = false;             // an audit ran in the current window
    std::string window_start;       // see AuditWindowStart
    std::string at;                 // the latest audit's time
    bool blocking = false;          // it found readers / writers
    bool coverage_sufficient = false;
    std::string summary;            // its one-line verdict (audit::Report::Summary)
  };
  std::optional<Audit> audit;
  // Backfill gate: parity measured by the engine (nullopt = not measured;
  // use Unmeasured() when the measurement failed).
  std::optional<Evidence> parity;
};

GateResult EvaluateBackfill(const Inputs& in);
GateResult EvaluateSwitch(const Inputs& in);
GateResult EvaluateComplete(const Inputs& in);
// All three, in lifecycle order.
std::vector<GateResult> EvaluateAll(const Inputs& in);

// Where the contract audit's observation window opens: the last `switch`
// event not undone by a later `switch.back` or `abort`; otherwise
// `started_at` (the migration's start).
std::string AuditWindowStart(const std::vector<Event>& events, const std::string& started_at);

// The audit evidence recorded in the events: the latest `audit` event
// (details {window_start, blocking, coverage_sufficient, summary}) of the
// window AuditWindowStart(events, started_at) opens. An unreadable audit
// event reads as blocking.
Inputs::Audit AuditFromEvents(const std::vector<Event>& events, const std::string& started_at,
                              bool nothing_to_audit);

// Evidence for a check whose measurement failed: a failed check that says
// why (e.g. Unmeasured("parity", status.message())).
Evidence Unmeasured(const std::string& check, const std::string& why);

// What a transition does with a gate's result. A passed gate proceeds. A
// failed gate is refused with its evidence, unless forced with a reason:
// then it proceeds and the caller must record the override event
// (kind `gate.override`, `event_message`, `event_details`) in the audit log.
struct Decision {
  bool proceed = false;
  bool overridden = false;    // proceeds only because of --force
  bool needs_reason = false;  // refused: --force came without --reason
  std::string refusal;        // why not, with every check (when !proceed)
  std::string event_message;  // when overridden
  std::string event_details;  // JSON {gate, reason, failed: [{check, detail}]}
};
Decision Admit(const GateResult& g, const std::string& migration, bool force, const std::string& reason);

// Milliseconds since the epoch for an ISO-8601 UTC time
// ("2026-11-21T17:12:03.123Z"; the fraction is optional); nullopt unless
// the text is exactly such a time with fields in range.
std::optional<int64_t> ParseIsoMillis(const std::string& iso);
// The same in whole seconds.
std::optional<int64_t> ParseIso(const std::string& iso);

}  // namespace sluice::gates
