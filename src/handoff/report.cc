// `sluice report`: the evidence of a finished (or running) migration, from
// its recorded history. See handoff.h for the sections.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "handoff/handoff.h"

namespace sluice::handoff {

namespace {

using nlohmann::json;

std::string Dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// A details column as JSON: parsed when it is JSON, else the text.
json Details(const std::string& text) {
  if (text.empty()) return nullptr;
  auto j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

// Details that must be an object to be read ({} otherwise).
json Object(const std::string& text) {
  json j = Details(text);
  return j.is_object() ? j : json::object();
}

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const auto& v = j[key];
  return v.is_string() ? v.get<std::string>() : Dump(v);
}

// Sign-offs and overrides are audit-log events (kinds `signoff` and
// `gate.override`); their details say gate, who, role, reason.
struct Signoff {
  std::string at, gate, name, role, note, recorded_by;
};
struct Override {
  std::string at, gate, reason, actor, message;
  bool forced_while_passing = false;  // `gate.forced`: --force on a gate that passed
};

std::vector<Signoff> SignoffsOf(const MigrationHistory& h) {
  std::vector<Signoff> out;
  for (const auto& e : h.events) {
    if (e.kind != "signoff") continue;
    json d = Details(e.details);
    out.push_back({e.at, Str(d, "gate"), Str(d, "name"), Str(d, "role"), Str(d, "note"), e.actor});
  }
  return out;
}

std::vector<Override> OverridesOf(const MigrationHistory& h) {
  std::vector<Override> out;
  for (const auto& e : h.events) {
    if (e.kind != "gate.override" && e.kind != "gate.forced") continue;
    json d = Details(e.details);
    out.push_back({e.at, Str(d, "gate"), Str(d, "reason"), e.actor, e.message, e.kind == "gate.forced"});
  }
  return out;
}

bool IsControl(const std::string& kind) {
  return kind == "backfill.pause" || kind == "backfill.resume" || kind == "backfill.tune" ||
         kind == "backfill.paused" || kind == "backfill.error" || kind == "backfill.done";
}

std::string When(const MigrationHistory& h) {
  const auto& i = h.info;
  if (i.phase == "complete") return "completed " + i.completed_at;
  if (i.phase == "rolled_back") return "rolled back " + i.updated_at;
  return "in flight (" + i.phase + "), read " + h.read_at;
}

// The first and last event times: the migration's span.
std::string Span(const MigrationHistory& h) {
  if (h.events.empty()) return "";
  return h.events.front().at + " → " + h.events.back().at;
}

double BackfillSeconds(const MigrationHistory& h) {
  double s = 0;
  for (const auto& t : h.backfill) s += t.chunk_seconds;
  return s;
}

// How long the latest `kind` event's phase took (the `seconds` its details
// record: start, switch, complete, rollback); -1 when not recorded.
double PhaseSeconds(const MigrationHistory& h, const std::string& kind) {
  for (auto it = h.events.rbegin(); it != h.events.rend(); ++it) {
    if (it->kind != kind) continue;
    auto d = json::parse(it->details, nullptr, false);
    if (d.is_object() && d.contains("seconds") && d["seconds"].is_number()) return d["seconds"].get<double>();
    return -1;
  }
  return -1;
}
const char* const kTimedPhases[] = {"start", "switch", "complete", "rollback"};

// The latest rehearsal's first-round duration of `phase`; -1 when none.
double RehearsedSeconds(const MigrationHistory& h, const std::string& phase) {
  if (h.rehearsals.empty()) return -1;
  for (const auto& p : h.rehearsals.back().phases) {
    if (p.phase == phase && p.error.empty()) return p.seconds;
  }
  return -1;
}

}  // namespace

bool RehearsalAtFullVolume(const RehearsalInfo& r) {
  if (r.sample > 0) return false;
  for (const auto& t : r.copied_tables) {
    if (t.sampled) return false;
  }
  return true;
}

std::string RehearsalCopyText(const RehearsalInfo& r) {
  if (r.copy_method.empty()) {
    return r.target.empty() ? std::string()
                            : "Copy: none; it ran on " + r.target +
                                  ", a staging database given with `--target` (its volume is the one restored there).";
  }
  std::string out = fmt::format("Copy: {} in {:.2f} s: ", r.copy_method, r.copy_seconds);
  if (r.copied_tables.empty()) {
    out += "the whole database, at full volume.";
  } else {
    std::string tables;
    for (const auto& t : r.copied_tables) {
      tables += fmt::format("{}`{}` {} rows{}", tables.empty() ? "" : ", ", t.table, t.rows,
                            t.sampled ? " (sampled)" : "");
    }
    out += RehearsalAtFullVolume(r)
               ? "every row of the touched tables and of the tables they reference, at full volume (other tables "
                 "empty): " + tables + "."
               : fmt::format("a {:g}% sample of the touched tables, NOT at full volume (durations do not scale to "
                             "the source; other tables empty): {}.",
                             r.sample * 100, tables);
  }
  if (!r.dropped_constraints.empty()) {
    std::string fks;
    for (const auto& c : r.dropped_constraints) fks += (fks.empty() ? "" : ", ") + c;
    out += " Foreign keys left out: " + fks + ".";
  }
  if (!r.copy_notes.empty()) {
    std::string notes;
    for (const auto& n : r.copy_notes) notes += (notes.empty() ? "" : "; ") + n;
    out += " Notes: " + notes + ".";
  }
  return out;
}

const std::vector<std::string>& RetrospectiveQuestions() {
  static const std::vector<std::string> q = {
      "Which assumptions were wrong?",
      "What monitoring was missing?",
      "What should be automated?",
      "What coordination worked (and what did not)?",
  };
  return q;
}

std::string ReportJson(const MigrationHistory& h) {
  const auto& i = h.info;
  json j;
  j["report_format"] = 1;
  j["migration"] = i.name;
  j["database"] = h.database;
  j["phase"] = i.phase;
  j["version"] = i.version;
  j["previous_version"] = i.previous_version;
  j["live"] = i.live;
  j["tables"] = i.tables;
  j["created_at"] = i.created_at;
  j["completed_at"] = i.completed_at;
  j["updated_at"] = i.updated_at;
  j["plan_file"] = h.plan_file;
  j["plan_text"] = h.plan_text;
  j["read_at"] = h.read_at;
  j["archived_at"] = h.archived_at;
  json events = json::array();
  for (const auto& e : h.events) {
    events.push_back({{"id", e.id}, {"at", e.at}, {"kind", e.kind}, {"actor", e.actor}, {"message", e.message},
                      {"details", Details(e.details)}});
  }
  j["events"] = events;
  json gates = json::array();
  for (const auto& g : h.gates) {
    json checks = json::array();
    for (const auto& c : g.checks) checks.push_back({{"check", c.check}, {"passed", c.passed}, {"detail", c.detail}});
    gates.push_back({{"gate", g.gate}, {"configured", g.configured}, {"passed", g.passed}, {"checks", checks},
                     {"signoffs", g.signoffs}});
  }
  j["gates"] = gates;
  json overrides = json::array();
  for (const auto& o : OverridesOf(h)) {
    overrides.push_back({{"at", o.at},
                         {"gate", o.gate},
                         {"reason", o.reason},
                         {"actor", o.actor},
                         {"forced_while_passing", o.forced_while_passing}});
  }
  j["overrides"] = overrides;
  json signoffs = json::array();
  for (const auto& s : SignoffsOf(h)) {
    signoffs.push_back({{"at", s.at}, {"gate", s.gate}, {"name", s.name}, {"role", s.role}, {"note", s.note},
                        {"recorded_by", s.recorded_by}});
  }
  j["signoffs"] = signoffs;
  json verifications = json::array();
  for (const auto& v : h.verifications) {
    verifications.push_back({{"id", v.id}, {"at", v.at}, {"passed", v.passed}, {"report", Details(v.report)}});
  }
  j["verifications"] = verifications;
  json soaks = json::array();
  for (const auto& e : h.events) {
    if (e.kind != "shadow_watch") continue;
    json d = Object(e.details);
    soaks.push_back({{"event", e.id}, {"at", e.at}, {"keys", d.value("keys", 0)}, {"divergent", d.value("divergent", 0)},
                     {"rate", d.value("rate", 0.0)}, {"passed", d.value("passed", false)}});
  }
  j["divergence"] = soaks;
  json backfill = json::array();
  for (const auto& t : h.backfill) {
    backfill.push_back({{"table", t.table},           {"rows_done", t.rows_done},
                        {"rows_total", t.rows_total}, {"chunks", t.chunks},
                        {"done", t.done},             {"chunk_seconds", t.chunk_seconds},
                        {"first_chunk_at", t.first_chunk_at}, {"last_chunk_at", t.last_chunk_at},
                        {"rows_per_second", t.rows_per_second}});
  }
  j["backfill"] = backfill;
  json throttle = json::array();
  for (const auto& e : h.events) {
    if (IsControl(e.kind)) throttle.push_back({{"event", e.id}, {"at", e.at}, {"kind", e.kind}, {"message", e.message}});
  }
  j["throttle_history"] = throttle;
  json rehearsals = json::array();
  for (const auto& r : h.rehearsals) {
    json one = Object(r.json);
    one["id"] = r.id;
    rehearsals.push_back(one);
  }
  // The estimate recorded by `start --estimate` (null when none) against
  // the backfill's actual wall time (first chunk's start to last commit).
  const MigrationInfo& mi = h.info;
  j["estimate_vs_actual"] = {
      {"estimate", h.estimate ? Object(h.estimate->json) : json()},
      {"backfill_p50_seconds", mi.estimate_backfill_p50_seconds >= 0 ? json(mi.estimate_backfill_p50_seconds) : json()},
      {"backfill_p90_seconds", mi.estimate_backfill_p90_seconds >= 0 ? json(mi.estimate_backfill_p90_seconds) : json()},
      {"actual_backfill_wall_seconds", mi.actual_backfill_seconds >= 0 ? json(mi.actual_backfill_seconds) : json()},
      {"rehearsed_backfill_seconds", RehearsedSeconds(h, "backfill")},
      {"actual_backfill_seconds", BackfillSeconds(h)},
      {"actual_phase_seconds", [&] {
         json phases = json::object();
         for (const char* k : kTimedPhases) {
           const double secs = PhaseSeconds(h, k);
           phases[k] = secs >= 0 ? json(secs) : json();
         }
         return phases;
       }()}};
  j["rehearsals"] = rehearsals;
  json retro = json::array();
  for (const auto& q : RetrospectiveQuestions()) retro.push_back({{"question", q}, {"answer", ""}});
  j["retrospective"] = retro;
  return Dump(j);
}

std::string ReportMarkdown(const MigrationHistory& h) {
  const auto& i = h.info;
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  line("# Migration report: " + i.name);
  line("");
  line("| | |");
  line("|---|---|");
  line("| migration | `" + Cell(i.name) + "` |");
  line("| database | " + Cell(h.database) + " |");
  line("| phase | **" + Cell(i.phase) + "** (" + Cell(When(h)) + ") |");
  line("| version | `" + Cell(i.version) + "` (previous: `" + Cell(i.previous_version.empty() ? "base tables" : i.previous_version) +
       "`); reads on the " + Cell(i.live) + " version |");
  std::string tables;
  for (const auto& t : i.tables) tables += (tables.empty() ? "" : ", ") + std::string("`") + t + "`";
  line("| tables | " + Cell(tables) + " |");
  line("| plan | `" + Cell(h.plan_file) + "` |");
  line("| span | " + Cell(Span(h)) + " |");
  line("| report | read " + Cell(h.read_at) + (h.archived_at.empty() ? "" : "; archived " + Cell(h.archived_at)) + " |");
  line("");

  line("## Timeline");
  line("");
  line("Every event of the audit log, oldest first.");
  line("");
  line("| # | at | kind | actor | what |");
  line("|---|---|---|---|---|");
  for (const auto& e : h.events) {
    line(fmt::format("| {} | {} | `{}` | {} | {} |", e.id, Cell(e.at), Cell(e.kind), Cell(e.actor), Cell(e.message)));
  }
  line("");

  line("## Gates");
  line("");
  for (const auto& g : h.gates) {
    line(fmt::format("### {} gate: {}{}", g.gate, g.passed ? "passed" : "NOT passed",
                     g.configured ? "" : " (no `gates:` settings; built-in checks only)"));
    line("");
    if (!g.checks.empty()) {
      line("| check | result | evidence |");
      line("|---|---|---|");
      for (const auto& c : g.checks) {
        line("| " + Cell(c.check) + " | " + (c.passed ? "ok" : "**FAIL**") + " | " + Cell(c.detail) + " |");
      }
      line("");
    }
    for (const auto& s : g.signoffs) line("- sign-off: " + s);
    if (!g.signoffs.empty()) line("");
  }
  if (h.gates.empty()) line("No gates (a baseline).\n");

  line("## Overrides");
  line("");
  auto overrides = OverridesOf(h);
  bool any_overridden = false;
  for (const auto& o : overrides) any_overridden = any_overridden || !o.forced_while_passing;
  if (!any_overridden) line("No gate was forced past.");
  for (const auto& o : overrides) {
    if (o.forced_while_passing) {
      line("- " + o.gate + " gate passed; `--force` given anyway (nothing overridden) at " + o.at + " by " + o.actor +
           ": " + o.reason);
    } else {
      line("- **" + o.gate + " gate overridden** at " + o.at + " by " + o.actor + ": " + o.reason);
    }
  }
  line("");

  line("## Sign-offs");
  line("");
  auto signoffs = SignoffsOf(h);
  if (signoffs.empty()) {
    line("None recorded.");
  } else {
    line("| gate | role | who | when | note |");
    line("|---|---|---|---|---|");
    for (const auto& s : signoffs) {
      line("| " + Cell(s.gate) + " | " + Cell(s.role) + " | " + Cell(s.name) + " | " + Cell(s.at) + " | " +
           Cell(s.note) + " |");
    }
  }
  line("");

  line("## Verification");
  line("");
  if (h.verifications.empty()) line("No verification recorded.");
  for (const auto& v : h.verifications) {
    line(fmt::format("### Verification #{} at {}: {}", v.id, v.at, v.passed ? "passed" : "FAILED"));
    line("");
    json r = Details(v.report);
    if (r.is_object() && r.value("could_not_run", false)) line("Could not run: " + Str(r, "error") + "\n");
    if (r.is_object() && r.contains("checks") && r["checks"].is_array() && !r["checks"].empty()) {
      line("| check | table | result | summary |");
      line("|---|---|---|---|");
      for (const auto& c : r["checks"]) {
        std::string res = c.value("skipped", false) ? "skipped" : c.value("passed", false) ? "ok" : "**FAIL**";
        line("| " + Cell(Str(c, "name")) + " | " + Cell(Str(c, "table")) + " | " + res + " | " + Cell(Str(c, "summary")) +
             " |");
      }
    }
    line("");
  }
  bool soak = false;
  for (const auto& e : h.events) {
    if (e.kind != "shadow_watch") continue;
    if (!soak) {
      line("### Shadow reads (divergence rate)");
      line("");
      line("| event | at | keys | divergent | rate | result |");
      line("|---|---|---|---|---|---|");
      soak = true;
    }
    json d = Object(e.details);
    line(fmt::format("| {} | {} | {} | {} | {:.4f}% | {} |", e.id, Cell(e.at), d.value("keys", 0), d.value("divergent", 0),
                     d.value("rate", 0.0) * 100, d.value("passed", false) ? "passed" : "FAILED"));
  }
  if (soak) line("");

  line("## Backfill");
  line("");
  if (h.backfill.empty()) {
    line("No backfill recorded (the migration rewrites no rows, or its progress was cleared by a rollback).");
  } else {
    line("| table | rows | chunks | time in chunks | first chunk | last chunk | rows/s |");
    line("|---|---|---|---|---|---|---|");
    for (const auto& t : h.backfill) {
      line(fmt::format("| `{}` | {} of {}{} | {} | {:.2f} s | {} | {} | {:.0f} |", Cell(t.table), t.rows_done, t.rows_total,
                       t.done ? "" : " (not done)", t.chunks, t.chunk_seconds, Cell(t.first_chunk_at),
                       Cell(t.last_chunk_at), t.rows_per_second));
    }
  }
  line("");
  line("### Throttle and control history");
  line("");
  bool any = false;
  for (const auto& e : h.events) {
    if (!IsControl(e.kind)) continue;
    line("- " + e.at + " `" + e.kind + "`: " + e.message);
    any = true;
  }
  if (!any) line("No pause, resume, tune or backfill error recorded.");
  line("");

  line("## Estimate vs actual");
  line("");
  double rehearsed = RehearsedSeconds(h, "backfill");
  const MigrationInfo& mi = h.info;
  if (h.estimate) {
    line(fmt::format("Estimate recorded at {} (`sluice start --estimate`):", h.estimate->at));
    line("");
    line("| phase | subject | P50 s | P90 s | actual s |");
    line("|---|---|---|---|---|");
    size_t backfills = 0;
    for (const auto& x : h.estimate->estimates) backfills += x.phase == "backfill" ? 1 : 0;
    for (const auto& x : h.estimate->estimates) {
      // The actual is measured for the whole backfill: the row that stands
      // for it (the sum, or the one table's).
      std::string actual = "not measured";
      if (x.phase == "backfill" && (x.subject.empty() || backfills == 1) && mi.actual_backfill_seconds >= 0) {
        actual = fmt::format("{:.3f}", mi.actual_backfill_seconds);
      }
      if ((x.phase == "start" || x.phase == "complete") && PhaseSeconds(h, x.phase) >= 0) {
        actual = fmt::format("{:.3f}", PhaseSeconds(h, x.phase));
      }
      line(fmt::format("| {} | {} | {:.3f} | {:.3f} | {} |", x.phase, Cell(x.subject), x.p50_seconds, x.p90_seconds,
                       actual));
    }
    line("");
    if (mi.estimate_backfill_p50_seconds >= 0 && mi.actual_backfill_seconds >= 0) {
      const double ratio = mi.actual_backfill_seconds > 0 ? mi.estimate_backfill_p50_seconds / mi.actual_backfill_seconds : 0;
      line(fmt::format("Backfill: estimated P50 {:.3f} s, P90 {:.3f} s; actual {:.3f} s (first chunk's start to last "
                       "chunk's commit): P50 / actual = {:.2f}, {} the interval.",
                       mi.estimate_backfill_p50_seconds, mi.estimate_backfill_p90_seconds, mi.actual_backfill_seconds,
                       ratio, mi.actual_backfill_seconds <= mi.estimate_backfill_p90_seconds ? "inside" : "OUTSIDE"));
    }
  } else {
    line("No estimate recorded (run `sluice start --estimate` to record one).");
  }
  {
    // Every timed phase, estimated or not (the rollback has no estimate).
    std::string timed;
    for (const char* k : kTimedPhases) {
      if (PhaseSeconds(h, k) >= 0) timed += fmt::format("{}{} {:.3f} s", timed.empty() ? "" : ", ", k, PhaseSeconds(h, k));
    }
    if (!timed.empty()) line("Phase durations measured (the latest of each): " + timed + ".");
  }
  line(fmt::format("{}Actual time inside backfill chunks: {:.1f} s.",
                   rehearsed >= 0 ? fmt::format("Rehearsed backfill: {:.1f} s. ", rehearsed) : "", BackfillSeconds(h)));
  line("");
  line("## Rehearsals");
  line("");
  if (h.rehearsals.empty()) line("No rehearsal recorded.");
  for (const auto& r : h.rehearsals) {
    line(fmt::format("### Rehearsal #{} at {}: {}", r.id, r.at, r.passed ? "passed" : "FAILED"));
    line("");
    line(fmt::format("On {} ({} rows in the touched tables). Synthetic writer: {} writes, {} errors, slowest {:.1f} ms.",
                     Cell(r.target), r.rows, r.writer_writes, r.writer_errors, r.writer_max_wait_ms));
    line("");
    if (const std::string copy = RehearsalCopyText(r); !copy.empty()) {
      line(copy);
      line("");
    }
    line("| phase | round | seconds | result |");
    line("|---|---|---|---|");
    for (const auto& p : r.phases) {
      line(fmt::format("| {} | {} | {:.2f} | {} |", p.phase, p.round, p.seconds,
                       p.error.empty() ? (p.rows ? fmt::format("ok, {} rows", p.rows) : "ok") : "**FAILED**: " + Cell(p.error)));
    }
    line("");
  }
  if (!h.rehearsals.empty()) line("");

  line("## Retrospective");
  line("");
  line("To fill in by the teams that ran the migration.");
  line("");
  for (const auto& q : RetrospectiveQuestions()) {
    line("### " + q);
    line("");
    line("_(answer)_");
    line("");
  }
  return md;
}

std::string ReportHtml(const MigrationHistory& h) {
  return MarkdownToHtml(ReportMarkdown(h), "Migration report: " + h.info.name);
}

}  // namespace sluice::handoff
