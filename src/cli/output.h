// Terminal output for the sluice command: progress bars, reports, JSON.
// Uses only the public API's types.
#pragma once

#include <string>
#include <vector>

#include "sluice/sluice.h"

namespace sluice::cli {

// Draws backfill progress: an in-place bar on a terminal, a line every few
// seconds otherwise. Not thread-safe.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool tty);
  void Update(const BackfillProgress& p);
  void Finish();

 private:
  bool tty_;
  bool drawn_ = false;
  double last_print_ = 0;
};

std::string FormatCount(int64_t n);   // 1,234,567
std::string FormatDuration(double s); // 1m05s
std::string Bar(double fraction, int width);
// One progress line of at most `width` columns: the less important parts
// (chunk size, workers, the bar) give way first.
std::string ProgressLine(const BackfillProgress& p, size_t width);

void PrintVerify(const VerifyResult& r);
std::string VerifyJson(const VerifyResult& r);
void PrintStatus(const std::vector<MigrationInfo>& list);
std::string StatusJson(const std::vector<MigrationInfo>& list);
void PrintFailures(const FailuresResult& r, bool rechecked);
std::string FailuresJson(const FailuresResult& r);
void PrintGates(const std::vector<GateInfo>& gates);
std::string GatesJson(const std::vector<GateInfo>& gates);
void PrintPreview(const PlanPreview& p);
// The phases' statements as `plan` prints them (`lint` of a plan in flight too).
void PrintPhases(const std::vector<PhaseSql>& phases);
// "<subject> is already <phase> (...); what remains of it ..." for a plan in flight.
std::string InFlightLine(const std::string& migration, const std::string& phase, const std::string& live);
std::string PreviewJson(const PlanPreview& p);

}  // namespace sluice::cli
