// `sluice estimate`'s Markdown (handoff.h).
#include <fmt/format.h>

#include "handoff/handoff.h"

namespace sluice::handoff {

namespace {

std::string Seconds(double s) {
  if (s < 1) return fmt::format("{:.3f} s", s);
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

}  // namespace

std::string EstimateMarkdown(const EstimateResult& e) {
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  line("# Estimate: " + e.migration);
  line("");
  line(fmt::format("Measured on {} at {}.", e.database, e.at));
  line("");
  line("## Tables");
  line("");
  line("| table | rows | source | bytes | trial chunks | trial rows | rows/s P50 | rows/s P10 |");
  line("|---|---|---|---|---|---|---|---|");
  for (const auto& t : e.tables) {
    line(fmt::format("| {} | {} | {} | {} | {} | {} | {:.0f} | {:.0f} |", Cell(t.table), t.rows, t.rows_source,
                     t.bytes < 0 ? std::string("?") : std::to_string(t.bytes), t.trial_chunks, t.trial_rows,
                     t.rows_per_second_p50, t.rows_per_second_p10));
  }
  line("");
  line("## Durations");
  line("");
  line("| phase | subject | P50 | P90 | how |");
  line("|---|---|---|---|---|");
  for (const auto& x : e.estimates) {
    line(fmt::format("| {} | {} | {} | {} | {} |", x.phase, Cell(x.subject), Seconds(x.p50_seconds),
                     Seconds(x.p90_seconds), Cell(x.method)));
  }
  line("");
  line("## Locks");
  line("");
  line("| phase | # | statement | strongest lock | on |");
  line("|---|---|---|---|---|");
  for (const auto& l : e.locks) {
    line(fmt::format("| {} | {} | {} | {} | {} |", l.phase, l.statement + 1, Cell("`" + l.summary + "`"), Cell(l.lock),
                     Cell(l.on)));
  }
  line("");
  for (const auto& n : e.notes) line(n);
  if (!e.notes.empty()) line("");
  return md;
}

}  // namespace sluice::handoff
