// The fleet's views (docs/fleets.md): `fleet status` as text and JSON, its
// ETA, the master handoff document (`fleet report`) and the section the
// command center (`sluice serve --inventory`) shows. Pure: from a FleetState
// that ReadStatus (runner.cc) read.
#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/html.h"
#include "common/markdown.h"
#include "fleet/runner.h"

namespace sluice::fleet {

namespace {

bool Switched(const DatabaseState& d) {
  return (d.phase == "active" && d.live == "new") || d.phase == "completing" || d.phase == "complete";
}

// "45 s", "3m 10s", "2h 05m".
std::string Duration(double seconds) {
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
  return fmt::format("{}h {:02}m", s / 3600, (s % 3600) / 60);
}

std::string Eta(const FleetState& st) {
  return st.eta_seconds < 0 ? "unknown" : Duration(st.eta_seconds);
}

}  // namespace

void EstimateEta(FleetState* st, int parallel, double soak_seconds) {
  st->eta_seconds = -1;
  if (st->total > 0 && st->completed == st->total) {
    st->eta_seconds = 0;
    st->eta_basis = "every database completed";
    return;
  }
  double rate_sum = 0;
  int running = 0, sized = 0, unsized = 0, left = 0;
  int64_t size_sum = 0, rows_left = 0;
  for (const auto& d : st->databases) {
    if (d.rows_per_second > 0) rate_sum += d.rows_per_second, ++running;
    if (d.rows_total > 0) size_sum += d.rows_total, ++sized;
    if (Switched(d)) continue;
    ++left;
    if (d.rows_total > 0) {
      if (d.backfill != "done") rows_left += std::max<int64_t>(0, d.rows_total - d.rows_done);
    } else if (d.backfill != "done" && d.backfill != "none") {
      ++unsized;  // not started (or not counted yet): its size is unknown
    }
  }
  int soaks = 0;
  for (const auto& w : st->waves) {
    if (w.state != "soaked" && w.state != "completing" && w.state != "completed") ++soaks;
  }
  double soak_left = soak_seconds > 0 ? soaks * soak_seconds : 0;
  const std::string soak_note =
      soak_left > 0 ? fmt::format("; plus {} soak(s) of {}", soaks, Duration(soak_seconds)) : std::string();
  const std::string excluded = "; start, verify, switch and complete are not counted";
  if (left == 0 || (rows_left == 0 && unsized == 0)) {
    st->eta_seconds = soak_left;
    st->eta_basis = fmt::format("no backfill left{}{}", soak_note, excluded);
    return;
  }
  if (running == 0) {
    st->eta_basis = fmt::format("unknown: {} database(s) still to backfill and no backfill is running, so there is "
                                "no measured rate yet",
                                left);
    return;
  }
  if (unsized > 0 && sized == 0) {
    st->eta_basis = "unknown: no database's backfill size is known yet";
    return;
  }
  const double rate = rate_sum / running;  // rows/s per database
  const int64_t mean = sized > 0 ? size_sum / sized : 0;
  rows_left += unsized * mean;
  const int workers = std::max(1, std::min(parallel, left));
  st->eta_seconds = static_cast<double>(rows_left) / (rate * workers) + soak_left;
  st->eta_basis = fmt::format("{} rows left to backfill{} at {:.0f} rows/s per database (measured on {} running "
                              "backfill(s)), {} database(s) at a time{}{}",
                              rows_left,
                              unsized > 0 ? fmt::format(" ({} database(s) not started, assumed {} rows each, the mean "
                                                        "of the started ones)",
                                                        unsized, mean)
                                          : std::string(),
                              rate, running, workers, soak_note, excluded);
}

std::string StatusJson(const FleetState& st) {
  nlohmann::json j;
  j["migration"] = st.migration;
  j["ledger"] = st.ledger;
  j["progress"] = {{"databases", st.total}, {"switched", st.switched}, {"completed", st.completed},
                   {"failed", st.failed}};
  j["progress"]["eta_seconds"] = st.eta_seconds < 0 ? nlohmann::json() : nlohmann::json(st.eta_seconds);
  j["progress"]["eta_basis"] = st.eta_basis;
  j["halted"] = st.halted;
  j["waves"] = nlohmann::json::array();
  for (const auto& w : st.waves) {
    j["waves"].push_back({{"name", w.name}, {"state", w.state}, {"databases", w.databases},
                          {"switched", w.switched}, {"completed", w.completed}});
  }
  j["databases"] = nlohmann::json::array();
  for (const auto& d : st.databases) {
    nlohmann::json e = {{"name", d.name}, {"wave", d.wave}, {"url", d.url}, {"phase", d.phase},
                        {"live", d.live}, {"backfill", d.backfill}, {"rows_done", d.rows_done},
                        {"rows_total", d.rows_total}, {"rows_per_second", d.rows_per_second}, {"step", d.step},
                        {"error", d.error}};
    e["eta_seconds"] = d.eta_seconds;
    e["last_verify_passed"] = d.last_verify_passed ? nlohmann::json(*d.last_verify_passed) : nlohmann::json();
    j["databases"].push_back(e);
  }
  j["decisions"] = st.decisions;
  for (size_t k = 0; k < st.databases.size(); ++k) {
    j["databases"][k]["last_verify_at"] = st.databases[k].last_verify_at;
    j["databases"][k]["completed_at"] = st.databases[k].completed_at;
    j["databases"][k]["overrides"] = st.databases[k].overrides;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StatusText(const FleetState& st) {
  std::string out = fmt::format("fleet {}: {} database(s), {} switched, {} completed, {} failed (ledger {})\n",
                                st.migration, st.total, st.switched, st.completed, st.failed, st.ledger);
  out += "ETA: " + Eta(st) + (st.eta_basis.empty() ? "" : " (" + st.eta_basis + ")") + "\n";
  if (!st.halted.empty()) out += "halted: " + st.halted + "\n";
  for (const auto& w : st.waves) {
    out += fmt::format("wave {:<12} {:<11} {}/{} switched, {}/{} completed\n", w.name, w.state, w.switched,
                       w.databases, w.completed, w.databases);
    for (const auto& d : st.databases) {
      if (d.wave != w.name) continue;
      std::string phase = d.phase.empty() ? "not started" : d.phase;
      if (d.phase == "active") phase += " (live " + d.live + ")";
      std::string progress;
      if (d.rows_total > 0 && d.phase == "active") {
        progress = fmt::format(" backfill {} {}/{}", d.backfill, d.rows_done, d.rows_total);
      }
      out += fmt::format("  {:<16} {:<22}{}{}\n", d.name, phase, progress,
                         d.error.empty() ? "" : "  last error: " + d.error.substr(0, d.error.find('\n')));
    }
  }
  if (!st.decisions.empty()) {
    out += "decisions:\n";
    for (const auto& d : st.decisions) out += "  " + d + "\n";
  }
  return out;
}

namespace {

// A Markdown table cell: no line breaks, no unescaped pipes.
std::string Cell(const std::string& s) {
  return s.empty() ? "-" : MarkdownCell(s);
}

}  // namespace

std::string ReportMarkdown(const FleetState& st) {
  std::string out = fmt::format("# Fleet report: {}\n\n", st.migration);
  out += fmt::format("{} database(s): {} switched, {} completed, {} failed. Ledger: `{}`.\n\n", st.total, st.switched,
                     st.completed, st.failed, st.ledger);
  out += "ETA: " + Eta(st) + (st.eta_basis.empty() ? "" : " (" + st.eta_basis + ")") + ".\n\n";
  if (!st.halted.empty()) out += "**Halted** in " + MarkdownCell(st.halted) + ".\n\n";
  out += "## Waves\n\n| wave | state | databases | switched | completed | decisions |\n|---|---|---|---|---|---|\n";
  for (const auto& w : st.waves) {
    std::string decided;
    for (const auto& d : st.decisions) {
      if (d.find(" wave " + w.name + ": ") != std::string::npos) decided += (decided.empty() ? "" : "; ") + d;
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", w.name, w.state, w.databases, w.switched, w.completed,
                       Cell(decided));
  }
  out += "\n## Databases\n\n| database | wave | url | phase | last verification | gate overrides | last step | last "
         "error |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& d : st.databases) {
    std::string verify = d.last_verify_passed ? (*d.last_verify_passed ? "passed " : "FAILED ") + d.last_verify_at : "";
    std::string overrides;
    for (const auto& o : d.overrides) overrides += (overrides.empty() ? "" : "; ") + o;
    std::string phase = d.phase.empty() ? "not started" : d.phase;
    if (d.phase == "active") phase += " (live " + d.live + ")";
    if (!d.completed_at.empty()) phase += " at " + d.completed_at;
    out += fmt::format("| {} | {} | `{}` | {} | {} | {} | {} | {} |\n", d.name, d.wave, d.url, Cell(phase),
                       Cell(verify), Cell(overrides), Cell(d.step), Cell(d.error));
  }
  out += "\n## Timeline (the ledger's decisions)\n\n";
  if (st.decisions.empty()) out += "No decision recorded yet.\n";
  for (const auto& d : st.decisions) out += "* " + d + "\n";
  out += "\nEach database's own evidence (audit log, verifications, gates): `sluice report --db URL " + st.migration +
         "`.\n";
  return out;
}

std::string StatusHtml(const FleetState& st) {
  auto H = [](const std::string& t) { return HtmlEscape(t); };
  std::string out = fmt::format("<section class=\"fleet\" id=\"fleet\" data-migration=\"{}\" data-halted=\"{}\">",
                                H(st.migration), st.halted.empty() ? "false" : "true");
  out += fmt::format("<h2>Fleet {}<span class=\"phase\">{}/{} completed</span></h2>", H(st.migration), st.completed,
                     st.total);
  out += fmt::format("<p class=\"muted\" id=\"fleet-progress\" data-switched=\"{}\" data-completed=\"{}\" "
                     "data-failed=\"{}\">{} database(s): {} switched, {} completed, {} failed &middot; ETA <span "
                     "id=\"fleet-eta\" title=\"{}\">{}</span> &middot; ledger {}</p>",
                     st.switched, st.completed, st.failed, st.total, st.switched, st.completed, st.failed,
                     H(st.eta_basis), H(Eta(st)), H(st.ledger));
  if (!st.halted.empty()) out += "<p class=\"error\" id=\"fleet-halted\">halted: " + H(st.halted) + "</p>";
  out += "<table class=\"fleet-waves\"><caption>Waves</caption><tr><th>wave</th><th>state</th><th>databases</th>"
         "<th>switched</th><th>completed</th></tr>";
  for (const auto& w : st.waves) {
    out += fmt::format("<tr data-wave=\"{}\" data-state=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}"
                       "</td></tr>",
                       H(w.name), H(w.state), H(w.name), H(w.state), w.databases, w.switched, w.completed);
  }
  out += "</table><table class=\"fleet-databases\"><caption>Databases</caption><tr><th>database</th><th>wave</th>"
         "<th>phase</th><th>backfill</th><th>last step</th><th>last error</th></tr>";
  for (const auto& d : st.databases) {
    std::string phase = d.phase.empty() ? "not started" : d.phase;
    if (d.phase == "active") phase += " (live " + d.live + ")";
    std::string progress = d.rows_total > 0 ? fmt::format("{} {}/{}", d.backfill, d.rows_done, d.rows_total) : d.backfill;
    out += fmt::format("<tr data-database=\"{}\" data-phase=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                       "<td>{}</td><td class=\"{}\">{}</td></tr>",
                       H(d.name), H(d.phase), H(d.name), H(d.wave), H(phase), H(progress), H(d.step),
                       d.error.empty() ? "" : "error", H(d.error));
  }
  return out + "</table></section>";
}

}  // namespace sluice::fleet
