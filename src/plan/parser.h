// Plan parsing: YAML or JSON text -> plan::Plan, strictly.
//
// Strict means: an unknown key, a duplicate key, a value of the wrong type
// (a number where a string is expected, a map where a list is expected), an
// `operations` that is not a list, an operation object with zero or several
// keys, a missing required field or an unknown operation is an error that
// names file:line:column and the key. Parsing never touches a database.
//
// JSON is read by the same parser (JSON is a subset of YAML 1.2), so both
// formats share one schema and one set of messages.
//
//   std::vector<plan::Diagnostic> diags;
//   Result<plan::Plan> p = plan::ParsePlanFile("migrations/002_x.yaml", &diags);
//   if (!p.ok()) { print(p.status().message()); }  // one error per line
#pragma once

#include <string>
#include <vector>

#include "plan/plan.h"
#include "sluice/status.h"

namespace sluice::plan {

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  std::string file;
  SourceLoc loc;
  std::string message;
  // "file:line:col: error: message"
  std::string ToString() const;
};

// Parses `text` as the plan stored in `file` (used for the name, the format
// and messages). Warnings are appended to `warnings` when given. On error
// returns kInvalidPlan whose message lists every error, one per line.
Result<Plan> ParsePlanText(const std::string& text, const std::string& file,
                           std::vector<Diagnostic>* warnings = nullptr);

// Reads and parses a plan file. kNotFound if it cannot be read.
Result<Plan> ParsePlanFile(const std::string& path, std::vector<Diagnostic>* warnings = nullptr);

// Joins error diagnostics into one kInvalidPlan status (one per line).
Status DiagnosticsToStatus(const std::vector<Diagnostic>& errors);

}  // namespace sluice::plan
