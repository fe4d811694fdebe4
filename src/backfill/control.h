// Operator control of a running backfill through sluice's state tables, so
// `sluice pause|resume|tune` work from any terminal or machine that can reach
// the database (no local socket). The running backfill polls the row about
// twice a second (see Pacer) and reports its current throttle reason back
// into the same row for `sluice status`.
//
// One row per migration in the `control` state table; absent = defaults.
#pragma once

#include <optional>
#include <string>

#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

struct Control {
  bool paused = false;
  std::optional<double> max_rows_per_second;  // 0 = unlimited
  std::optional<int64_t> chunk_target_ms;
  std::optional<int64_t> workers;
  std::string throttle;    // reason the running backfill last reported
  std::string updated_at;
};

// Fields to change; unset fields keep their stored value.
struct ControlChange {
  bool reset = false;  // forget earlier tune overrides first
  std::optional<bool> paused;
  std::optional<double> max_rows_per_second;
  std::optional<int64_t> chunk_target_ms;
  std::optional<int64_t> workers;
};

Result<Control> ReadControl(db::Connection& conn, const std::string& migration);
// Applies `change` in its own transaction. `clock` stamps updated_at.
Status WriteControl(db::Connection& conn, const std::string& migration, const ControlChange& change,
                    Clock* clock = Clock::Real());
// Records the running backfill's throttle reason ("" = full speed).
Status ReportThrottle(db::Connection& conn, const std::string& migration, const std::string& reason,
                      Clock* clock = Clock::Real());

}  // namespace sluice::backfill
