// Readiness gates: the checks that stand before each phase transition
// (seed 001's scorecard), evaluated from evidence sluice has recorded in its
// state tables. Pure functions: the engine gathers the evidence, this module
// decides, so every rule lives in one place and is testable without a
// database.
//
//   backfill  before the backfill is declared done: row-count parity between
//             the old and the new read path; sign-offs
//   switch    before reads move to the new version: the latest verification
//             passed (and, when the plan sets max_verify_age_seconds, is
//             recent enough); shadow-read divergence over a soak window of
//             at least soak_seconds below max_divergence (when the plan asks
//             for a soak); sign-offs
//   complete  before contracting: the switch has been stable for
//             observation_seconds; the rollback is still executable; sign-offs
//             (and the switch gate too, when complete performs the switch)
//
// Defaults keep the simple path (start → backfill → verify → complete)
// working with no gate settings: a failed latest verification blocks, a
// missing one does not; windows default to zero. A plan opts into more.
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
  std::string at;  // ISO-8601 UTC
  std::string kind;
  std::string actor;
  std::string message;
  std::string details;  // JSON or ""
};

struct Evidence {
  std::string check;
  bool passed = true;
  std::string detail;
};

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

struct Inputs {
  const plan::GateSettings* settings = nullptr;
  std::string phase;     // migration phase
  std::string backfill;  // none | pending | running | done
  std::string live;      // old | new
  bool has_backfill = true;  // the migration rewrites rows at all
  std::optional<bool> last_verify_passed;
  std::string last_verify_at;
  std::vector<Event> events;  // oldest first
  int64_t now = 0;            // epoch seconds
  // Backfill gate: parity measured by the engine (nullopt = not measured).
  std::optional<Evidence> parity;
};

GateResult EvaluateBackfill(const Inputs& in);
GateResult EvaluateSwitch(const Inputs& in);
GateResult EvaluateComplete(const Inputs& in);
// All three, in lifecycle order.
std::vector<GateResult> EvaluateAll(const Inputs& in);

// Seconds since the epoch for an ISO-8601 UTC time as NowIso() writes it;
// nullopt if it cannot be parsed.
std::optional<int64_t> ParseIso(const std::string& iso);

}  // namespace sluice::gates
