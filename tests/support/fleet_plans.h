// Plans the fleet tests (tests/integration/fleet*_test.cc) share.
#pragma once

namespace sluice::testing {

// items.qty text -> integer (PostgreSQL); `up` fails on a row whose qty is
// not a number, which is how the fleet tests plant a failing database.
inline constexpr const char* kQtyToIntegerPlan = R"(dual_write:
  on_error: fail
operations:
  - alter_column:
      table: items
      column: qty
      type: integer
      up: CAST(qty AS integer)
      down: CAST(qty AS text)
)";

}  // namespace sluice::testing
