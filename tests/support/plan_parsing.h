// Helpers of the plan parser tests (tests/unit/plan_parser*_test.cc).
#pragma once

#include <algorithm>
#include <string>
#include <variant>
#include <vector>

#include "plan/parser.h"
#include "support/test_support.h"

namespace sluice::testing {

inline Result<plan::Plan> Parse(const std::string& text, const std::string& file = "p.yaml",
                   std::vector<plan::Diagnostic>* warnings = nullptr) {
  return plan::ParsePlanText(text, file, warnings);
}

// Parses text that must be valid; fails the test otherwise.
inline plan::Plan MustParse(const std::string& text, const std::string& file = "p.yaml") {
  auto r = Parse(text, file);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : plan::Plan{};
}

template <typename T>
const T& Op(const plan::Plan& p, size_t i) {
  static const T kEmpty{};
  if (i >= p.operations.size()) {
    ADD_FAILURE() << "plan has " << p.operations.size() << " operations, wanted #" << i + 1;
    return kEmpty;
  }
  const T* body = std::get_if<T>(&p.operations[i].body);
  if (!body) {
    ADD_FAILURE() << "operation #" << i + 1 << " is " << p.operations[i].kind;
    return kEmpty;
  }
  return *body;
}

// Number of error lines in a kInvalidPlan message.
inline size_t ErrorLines(const Status& s) {
  std::string m = s.message();
  return static_cast<size_t>(std::count(m.begin(), m.end(), '\n')) + 1;
}

}  // namespace sluice::testing
