// Plans that several test files share.
#pragma once

#include <string>

namespace sluice::testing {

// items.qty text -> integer (PostgreSQL), with `down` back to text. `up`
// fails on a row whose qty is not a number: how the dual-write and fleet
// tests plant a failing row. `on_error` ("" = the default policy) sets
// `dual_write: on_error:`; `fallback` ("" = none) the column's fallback.
// orders.email_lower = lower(email), nullable: the plain add_column most
// lifecycle tests run (their table: orders(id, email, ...)).
inline constexpr const char* kAddEmailLowerPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
)";

inline std::string QtyToIntegerPlan(const std::string& on_error, const std::string& fallback) {
  std::string p = on_error.empty() ? "" : "dual_write:\n  on_error: " + on_error + "\n";
  p += R"(operations:
  - alter_column:
      table: items
      column: qty
      type: integer
      up: CAST(qty AS integer)
      down: CAST(qty AS text)
)";
  if (!fallback.empty()) p += "      fallback: \"" + fallback + "\"\n";
  return p;
}

}  // namespace sluice::testing
