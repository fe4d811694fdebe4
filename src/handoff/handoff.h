// The handoff documents (issue 13, docs/handoff.md): the evidence report of
// a finished migration and the runbook an on-call engineer follows.
//
// Pure renderers: plain structs of the public API (include/sluice/sluice.h:
// MigrationHistory, HandoffPlan) in, Markdown / HTML / JSON text out. They
// never touch a database, so the same text comes out of `sluice report`,
// `sluice runbook` and the report archived inside complete's and
// rollback's transaction (src/engine/history.cc). Thread-compatible: no
// shared state.
//
//   auto h = migrator->History("002_rename");
//   if (h.ok()) std::cout << sluice::handoff::ReportMarkdown(*h);
#pragma once

#include <string>

#include "sluice/sluice.h"

namespace sluice::handoff {

// --- report (report.cc) --------------------------------------------------------

// The report's sections, in order: summary, timeline (every event with its
// actor), gates (each check with its evidence), overrides with their
// reasons, sign-offs, verifications, backfill, estimate vs actual,
// rehearsals, retrospective (the seed's four questions, to fill in).
std::string ReportMarkdown(const MigrationHistory& h);
// The same as one JSON object ("report_format": 1). Every event appears in
// "events" with its id, every verification in "verifications".
std::string ReportJson(const MigrationHistory& h);
std::string ReportHtml(const MigrationHistory& h);

// The retrospective's questions (seed: after contract, "run a retrospective").
const std::vector<std::string>& RetrospectiveQuestions();

// How a rehearsal's copy was made, one Markdown line ("Copy: METHOD in S s:
// the whole database, at full volume." or the tables copied, the sample,
// the foreign keys left out and the notes); for --target, that no copy was
// made; "" for a record without either. Shown by the report and runbook.
std::string RehearsalCopyText(const RehearsalInfo& r);
// Whether `r` ran at the source's volume (the whole database, every row of
// the touched tables, or a staging database): false for a `--sample`.
bool RehearsalAtFullVolume(const RehearsalInfo& r);

// --- runbook (runbook.cc) ------------------------------------------------------

struct RunbookOptions {
  std::string plan_path;  // as the commands should name it
  std::string db_url;     // "" = the commands read $SLUICE_DB
  std::string generated_at;  // ISO time stamped in the header ("" = none)
};

// Sections: header, live state (when started: what has happened, what is
// next), pre-release checklist, roles and sign-offs, then one section per
// phase (start, backfill, verify, switch, observation window, complete),
// each with its command, expected output, SQL, stop conditions, rollback
// command and duration, and a rollback section.
std::string RunbookMarkdown(const HandoffPlan& p, const RunbookOptions& o);
std::string RunbookHtml(const HandoffPlan& p, const RunbookOptions& o);

// --- estimate (estimates.cc) ----------------------------------------------------

// `sluice estimate`'s text: the tables measured, each predicted duration
// (P50/P90 and how it was computed), and every statement's lock by phase.
std::string EstimateMarkdown(const EstimateResult& e);

// --- shared (html.cc) -----------------------------------------------------------

// The Markdown these renderers write (headings, paragraphs, bullet and task
// lists, fenced code, pipe tables, `code`, **bold**) as a standalone HTML
// page titled `title`. Not a general Markdown converter.
std::string MarkdownToHtml(const std::string& markdown, const std::string& title);

// Markdown helpers: a table cell (pipes escaped, newlines as spaces) and a
// fenced code block whose fence is longer than any backtick run inside.
std::string Cell(const std::string& text);
std::string Fenced(const std::string& code, const std::string& lang);

}  // namespace sluice::handoff
