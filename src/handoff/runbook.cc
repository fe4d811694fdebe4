// `sluice runbook`: what an on-call engineer follows, phase by phase, from
// the plan's compiled (or recorded) statements and, once the migration
// exists, its live state. See handoff.h for the sections.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "handoff/handoff.h"

namespace sluice::handoff {

namespace {

using nlohmann::json;

const PhaseSql* Phase(const HandoffPlan& p, const std::string& name) {
  for (const auto& ph : p.plan.phases) {
    if (ph.phase == name) return &ph;
  }
  return nullptr;
}

// "sluice --db URL" (or "sluice", reading $SLUICE_DB).
std::string Sluice(const RunbookOptions& o) {
  if (o.db_url.empty()) return "sluice";
  bool plain = o.db_url.find_first_of(" '\"$`\\") == std::string::npos;
  return "sluice --db " + (plain ? o.db_url : "'" + o.db_url + "'");
}

// The time of the last event of `kind` ("" when none).
std::string LastAt(const MigrationHistory& h, const std::string& kind) {
  std::string at;
  for (const auto& e : h.events) {
    if (e.kind == kind) at = e.at;
  }
  return at;
}

// What the operator does next, from the live state.
std::string NextStep(const HandoffPlan& p, const std::string& sluice, const std::string& m) {
  const MigrationInfo& i = p.history.info;
  if (i.phase == "starting") return "`" + sluice + " start ...` was interrupted: rerun it (it resumes), or roll back";
  if (i.phase == "completing") return "rerun `" + sluice + " complete " + m + "` (it resumes)";
  if (i.phase == "rolling_back") return "rerun `" + sluice + " rollback " + m + "` (it resumes)";
  if (i.phase == "complete") return "archive the evidence: `" + sluice + " report " + m + "`; run the retrospective";
  if (i.phase == "rolled_back") {
    return "read the report (`" + sluice + " report " + m + "`), fix the cause, and start again when ready";
  }
  if (i.backfill == "pending" || i.backfill == "stopped" || i.backfill == "running") {
    return i.backfill == "running" ? "the backfill is running: watch `" + sluice + " status`"
                                   : "run (or resume) the backfill: `" + sluice + " backfill " + m + "`";
  }
  if (!i.last_verify_passed.value_or(false)) return "verify: `" + sluice + " verify " + m + "`";
  for (const auto& g : p.history.gates) {
    if (g.gate == (i.live == "new" ? "complete" : "switch") && !g.passed) {
      std::string why;
      for (const auto& c : g.checks) {
        if (!c.passed) why += (why.empty() ? "" : "; ") + c.check + ": " + c.detail;
      }
      return "meet the " + g.gate + " gate (`" + sluice + " gates " + m + "`): " + why;
    }
  }
  if (i.live != "new") return "switch reads: `" + sluice + " switch " + m + "`";
  return "watch the observation window, then complete: `" + sluice + " complete " + m + "`";
}

}  // namespace

std::string RunbookMarkdown(const HandoffPlan& p, const RunbookOptions& o) {
  const std::string m = p.plan.migration;
  const std::string sl = Sluice(o);
  const MigrationHistory& h = p.history;
  const PlanRequirements& rq = p.requirements;
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  auto sh = [&](const std::string& cmd) { md += Fenced(cmd, "sh"); };
  auto statements = [&](const std::string& phase) {
    const PhaseSql* ph = Phase(p, phase);
    if (!ph || ph->statements.empty()) {
      line("It runs no SQL statement.");
      line("");
      return;
    }
    line(fmt::format("The SQL it runs ({} statement{}, in this order):", ph->statements.size(),
                     ph->statements.size() == 1 ? "" : "s"));
    line("");
    for (size_t i = 0; i < ph->statements.size(); ++i) {
      md += Fenced(ph->statements[i], "sql");
      // The strongest lock it takes (Dialect::LockOf), when known.
      if (i < ph->locks.size()) line("Lock: " + ph->locks[i] + "\n");
    }
    line("");
  };
  auto done = [&](const std::string& kind, const std::string& what) {
    if (!p.started) return;
    std::string at = LastAt(h, kind);
    if (!at.empty()) line("**Done:** " + what + " at " + at + ".\n");
  };
  const PhaseSql* rb = Phase(p, "rollback");
  const size_t rollback_statements = rb ? rb->statements.size() : 0;
  const std::string rollback_cmd = sl + " rollback " + m;
  const RehearsalInfo* rehearsal = p.rehearsals.empty() ? nullptr : &p.rehearsals.back();
  const std::string rollback_duration =
      rehearsal && rehearsal->rollback_seconds >= 0
          ? fmt::format("Its rehearsed duration: {:.2f} s (rehearsal #{} at {} on {}{}).", rehearsal->rollback_seconds,
                        rehearsal->id, rehearsal->at, rehearsal->target,
                        RehearsalAtFullVolume(*rehearsal) ? "" : ", a sample: not at the source's volume")
          : std::string("Its duration: not rehearsed and not estimated (no rehearsal or estimate is recorded); on "
                        "SQLite and for PostgreSQL catalog changes it is one short transaction.");
  // The latest rehearsal's duration of `phase` in its first round.
  auto rehearsed = [&](const std::string& phase) {
    if (!rehearsal) return;
    for (const auto& ph : rehearsal->phases) {
      if (ph.phase != phase) continue;
      line(ph.error.empty() ? fmt::format("Rehearsed duration: {:.2f} s.\n", ph.seconds)
                            : fmt::format("**Failed in rehearsal** after {:.2f} s: {}\n", ph.seconds, ph.error));
      return;
    }
  };

  line("# Runbook: " + m);
  line("");
  line("| | |");
  line("|---|---|");
  line("| migration | `" + Cell(m) + "` |");
  line("| new version | `" + Cell(p.plan.version) + "` |");
  line("| database | " + Cell(p.plan.database) + " |");
  line("| plan | `" + Cell(o.plan_path) + "` |");
  if (!o.generated_at.empty()) line("| generated | " + Cell(o.generated_at) + " |");
  line("");
  line("Run every command from the same directory as the plan. A command that fails prints `sluice: error:` first "
       "and exits non-zero; its exit code says what to do (docs/cli.md, \"Exit codes\").");
  line("");

  if (p.started) {
    const MigrationInfo& i = h.info;
    line("## Live state");
    line("");
    line(fmt::format("Phase **{}**, reads on the **{}** version, backfill {}{}.", i.phase, i.live,
                     i.backfill.empty() ? "n/a" : i.backfill,
                     i.rows_total > 0 ? fmt::format(" ({} of {} rows)", i.rows_done, i.rows_total) : ""));
    line("");
    line("What has happened:");
    line("");
    for (const auto& e : h.events) line("- " + e.at + " `" + e.kind + "` (" + e.actor + "): " + e.message);
    if (h.events.empty()) line("- nothing recorded yet");
    line("");
    line("**Next:** " + NextStep(p, sl, m));
    line("");
  }

  line("## Pre-release checklist");
  line("");
  if (rq.reversible && rollback_statements > 0) {
    line(fmt::format("- [x] A rollback method exists: `{}` undoes start ({} statements, listed under Rollback).",
                     rollback_cmd, rollback_statements));
  } else {
    std::string ops;
    for (const auto& op : rq.irreversible_ops) ops += (ops.empty() ? "" : "; ") + op;
    line("- [ ] A rollback method exists: **no**, rollback cannot undo everything: " + ops);
  }
  if (!rq.abort_criteria.empty()) {
    std::string c;
    for (const auto& a : rq.abort_criteria) c += (c.empty() ? "" : "; ") + a;
    line("- [x] Lock and slow-query monitoring: `sluice watch` probes the live version after the switch and switches "
         "back on: " + c + ". Confirm the database's own lock and slow-query alerts are on.");
  } else {
    line("- [ ] Lock and slow-query monitoring: the plan has no `abort:` criteria; confirm the database's lock and "
         "slow-query alerts are on by hand.");
  }
  if (!rq.backfill_windows.empty()) {
    std::string w;
    for (const auto& x : rq.backfill_windows) w += (w.empty() ? "" : ", ") + x;
    line("- [x] The window avoids peak traffic: the backfill runs only in " + w + " (UTC).");
  } else {
    line("- [ ] The window avoids peak traffic: the plan sets no `backfill.allowed_windows`; choose the window by "
         "hand.");
  }
  if (rehearsal && rehearsal->passed && RehearsalAtFullVolume(*rehearsal)) {
    line(fmt::format("- [x] Rehearsal at realistic volume: rehearsal #{} at {} passed on {} ({} rows; the rollback "
                     "took {:.2f} s). {}",
                     rehearsal->id, rehearsal->at, rehearsal->target, rehearsal->rows, rehearsal->rollback_seconds,
                     RehearsalCopyText(*rehearsal)));
  } else if (rehearsal && rehearsal->passed) {
    // A sample passes the lifecycle but says nothing about the real volume.
    line(fmt::format("- [ ] Rehearsal at realistic volume: rehearsal #{} at {} passed, but on a sample ({} rows), "
                     "not at realistic volume; rehearse without `--sample` (`{} rehearse {}`). {}",
                     rehearsal->id, rehearsal->at, rehearsal->rows, sl, o.plan_path, RehearsalCopyText(*rehearsal)));
  } else if (rehearsal) {
    line(fmt::format("- [ ] Rehearsal at realistic volume: the latest rehearsal (#{} at {}) FAILED.", rehearsal->id,
                     rehearsal->at));
  } else {
    line("- [ ] Rehearsal at realistic volume: no rehearsal recorded (`" + sl + " rehearse " + o.plan_path + "`).");
  }
  line(std::string(rq.validation_queries.empty() ? "- [ ]" : "- [x]") +
       " Validation queries for shadow reads: " +
       (rq.validation_queries.empty() ? "none in the plan (`verify.validation_queries`)"
                                      : std::to_string(rq.validation_queries.size()) + " in the plan") + ".");
  line("");

  line("## Roles and sign-offs");
  line("");
  std::multimap<std::string, std::pair<std::string, std::string>> signed_by;  // "gate/role" -> (who, when)
  for (const auto& e : h.events) {
    if (e.kind != "signoff") continue;
    auto d = json::parse(e.details, nullptr, false);
    if (!d.is_object()) continue;
    signed_by.insert({d.value("gate", "") + "/" + d.value("role", ""), {d.value("name", ""), e.at}});
  }
  bool roles = false;
  for (const auto& g : rq.gates) roles = roles || !g.roles.empty();
  if (!roles) {
    line("The plan's gates require no sign-off. Name the people on call here: migration owner, SRE, data owner.");
  } else {
    line("| gate | role | signed by | when |");
    line("|---|---|---|---|");
    for (const auto& g : rq.gates) {
      for (const auto& r : g.roles) {
        auto range = signed_by.equal_range(g.gate + "/" + r);
        if (range.first == range.second) line("| " + g.gate + " | " + Cell(r) + " | _(pending)_ | |");
        for (auto it = range.first; it != range.second; ++it) {
          line("| " + g.gate + " | " + Cell(r) + " | " + Cell(it->second.first) + " | " + Cell(it->second.second) + " |");
        }
      }
    }
    line("");
    line("Sign off with:");
    line("");
    std::string cmds;
    for (const auto& g : rq.gates) {
      for (const auto& r : g.roles) {
        cmds += sl + " signoff " + g.gate + " --as NAME --role '" + r + "' --migration " + m + "\n";
      }
    }
    sh(cmds);
  }
  line("");

  line("## Estimates");
  line("");
  if (h.estimate) {
    // Recorded by `sluice start --estimate`: the intervals, then what has
    // been measured since, so the two can be compared on the page.
    line(fmt::format("Recorded at {} (`sluice start --estimate`):", h.estimate->at));
    line("");
    line("| phase | subject | P50 | P90 | method |");
    line("|---|---|---|---|---|");
    for (const auto& e : h.estimate->estimates) {
      line(fmt::format("| {} | {} | {:.3g} s | {:.3g} s | {} |", e.phase, Cell(e.subject.empty() ? "all" : e.subject),
                       e.p50_seconds, e.p90_seconds, Cell(e.method)));
    }
    line("");
    line("Durations measured so far:");
  } else {
    line("No estimate recorded (`sluice estimate PLAN`; `sluice start --estimate` records one). Durations measured "
         "so far:");
  }
  line("");
  bool measured = false;
  if (rehearsal) {
    for (const auto& ph : rehearsal->phases) {
      line(fmt::format("- rehearsal #{}, {} (round {}): {:.2f} s{}", rehearsal->id, ph.phase, ph.round, ph.seconds,
                       ph.error.empty() ? "" : " (failed)"));
      measured = true;
    }
  }
  for (const auto& t : h.backfill) {
    line(fmt::format("- backfill of `{}`: {} rows, {:.2f} s inside chunk transactions ({:.0f} rows/s over its span)", t.table, t.rows_done,
                     t.chunk_seconds, t.rows_per_second));
    measured = true;
  }
  if (!measured) line("- none");
  line("");

  int n = 0;
  auto section = [&](const std::string& title) { line(fmt::format("## {}. {}", ++n, title)); line(""); };

  section("Check the plan");
  line("Changes nothing: validates the plan against the live schema and tries `up`/`down` on sampled rows.");
  line("");
  sh(sl + " lint " + o.plan_path + "\n" + sl + " plan " + o.plan_path);
  line("Expected output: `" + o.plan_path + ": ok (checked against the database)`, then the SQL below.");
  line("");
  line("Stop if: lint reports an error (exit 1).");
  line("");

  section("start (expand)");
  done("start", "started");
  rehearsed("start");
  sh(sl + " start " + o.plan_path);
  line("Expected output: `started " + o.plan_path + "` (exit 0).");
  line("");
  statements("start");
  line("Stop conditions: any error (exit non-zero). On SQLite nothing changed; on PostgreSQL a failed start is "
       "rolled back by itself, or says to run the rollback below. Exit 7 naming lock holders: sessions block the "
       "DDL; rerun when they are gone.");
  line("");
  line("Rollback:");
  line("");
  sh(rollback_cmd);
  line(rollback_duration);
  line("");

  section("backfill");
  done("backfill.done", "backfill finished");
  rehearsed("backfill");
  const PhaseSql* bf = Phase(p, "backfill");
  if (bf && !bf->statements.empty()) {
    sh(sl + " backfill " + m);
    line("Expected output: a progress line, then `backfill done: N rows in T` (exit 0).");
    line("");
    statements("backfill");
    line("Control it from any machine:");
    line("");
    sh(sl + " pause " + m + "\n" + sl + " resume " + m + "\n" + sl + " tune " + m + " --rate ROWS_PER_SECOND");
    line("Stop conditions: `sluice status` shows the backfill `stopped` with an error; the database's latency or "
         "replica lag alerts fire (pause, then tune). Ctrl-C stops after the current chunk; rerunning resumes.");
    line("");
  } else {
    line("No backfill: the migration rewrites no rows.");
    line("");
  }
  line("Rollback:");
  line("");
  sh(rollback_cmd);
  line(rollback_duration);
  line("");

  section("verify");
  done("verify", "last verification recorded");
  rehearsed("verify");
  bool soak = false;
  for (const auto& g : rq.gates) {
    for (const auto& c : g.criteria) soak = soak || c.find("soak") != std::string::npos;
  }
  sh(sl + " verify " + m + (soak ? " --watch 10m" : ""));
  line("Expected output: `verification of " + m + " at ...: PASSED` and one `[ ok ]` line per check (exit 0; exit 3 "
       "when a check fails).");
  line("");
  line("Parity checks: row counts and chunked checksums of every changed table through the old and the new read "
       "path, `up`/`down` consistency, NOT NULL readiness (docs/verification.md).");
  line("");
  if (!rq.validation_queries.empty()) {
    line("Validation queries (shadow reads through both versions):");
    line("");
    for (const auto& q : rq.validation_queries) line("- `" + Cell(q) + "`");
    line("");
  }
  if (!rq.invariants.empty()) {
    line("Invariants:");
    line("");
    for (const auto& q : rq.invariants) line("- `" + Cell(q) + "`");
    line("");
  }
  for (const auto& s : rq.verify_settings) line("- " + s);
  if (!rq.verify_settings.empty()) line("");
  line("Stop conditions: exit 3 (a check failed): do not switch; read the evidence, then roll back or fix and "
       "verify again.");
  line("");
  line("Rollback:");
  line("");
  sh(rollback_cmd);
  line("");

  section("switch reads to the new version");
  done("switch", "reads switched");
  rehearsed("switch");
  for (const auto& g : rq.gates) {
    if (g.gate != "switch" && g.gate != "backfill") continue;
    for (const auto& c : g.criteria) line("- " + g.gate + " gate: " + c);
  }
  sh(sl + " gates " + m + "\n" + sl + " switch " + m);
  line("Expected output: `reads switched to the new version` (exit 0; exit 7 with the evidence when the switch gate "
       "is not passed).");
  line("");
  statements("switch");
  line("Rollback (instant, reads only):");
  line("");
  sh(sl + " switch --back " + m);
  line("It runs:");
  line("");
  statements("switch_back");

  section("observation window");
  for (const auto& g : rq.gates) {
    if (g.gate != "complete") continue;
    for (const auto& c : g.criteria) line("- complete gate: " + c);
  }
  if (!rq.abort_criteria.empty()) {
    line("Abort criteria (any one switches reads back by itself and exits 4):");
    line("");
    for (const auto& a : rq.abort_criteria) line("- " + a);
    if (!rq.probe_query.empty()) line("- probe query: `" + Cell(rq.probe_query) + "`");
    line("");
    sh(sl + " watch " + m + " --duration 600");
    line("Expected output: one `round N: ...` line per round, then `no abort criterion breached in N rounds`.");
  } else {
    line("The plan has no `abort:` criteria: watch the application's error rate and latency by hand, and switch "
         "back (above) on a regression.");
  }
  line("");

  section("complete (contract)");
  done("complete", "completed");
  rehearsed("complete");
  sh(sl + " complete " + m);
  line("Expected output: `complete` (exit 0; exit 7 with the evidence when the complete gate is not passed).");
  line("");
  statements("complete");
  line("Stop conditions: exit 7 (a gate): meet it, or override only with `--force --reason TEXT` (recorded).");
  line("");
  line("Rollback: **none after complete**: the old columns are gone; write a new migration. Until complete has "
       "run, the rollback below applies.");
  line("");

  section("Rollback");
  done("rollback", "rolled back");
  line("Abort criteria that trigger it: a failed verification that cannot be explained, an abort of `sluice watch`, "
       "errors or latency in the application on either version.");
  line("");
  sh(rollback_cmd);
  line("Expected output: `rolled back` (exit 0). It keeps the rows the application wrote meanwhile, in the old "
       "shape.");
  line("");
  line(rollback_duration);
  line("");
  statements("rollback");

  section("Afterwards");
  sh(sl + " report " + m + " > " + m + "-report.md");
  line("Complete and rollback archive the report in the state tables; run the retrospective with its questions.");
  return md;
}

std::string RunbookHtml(const HandoffPlan& p, const RunbookOptions& o) {
  return MarkdownToHtml(RunbookMarkdown(p, o), "Runbook: " + p.plan.migration);
}

}  // namespace sluice::handoff
