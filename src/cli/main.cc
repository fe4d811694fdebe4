// The sluice command. Argument parsing and output only: every action goes
// through the public API in include/sluice/sluice.h.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/conventions.h"
#include "cli/demo.h"
#include "cli/fleet.h"
#include "cli/output.h"
#include "handoff/handoff.h"
#include "serve/serve.h"
#include "sluice/sluice.h"

namespace {

std::atomic<bool> g_cancel{false};

void OnSigint(int) {
  if (g_cancel.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
}

// "90s", "10m", "1h", "1.5h" or plain seconds; -1 when unreadable.
double ParseDuration(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || v < 0) return -1;
  std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "m") return v * 60;
  if (unit == "h") return v * 3600;
  return -1;
}

// Prints a failed status: the first line is the one-line reason.
// One exit code per next action (docs/cli.md, "Exit codes"). 3 (verification
// failed) and 4 (watch aborted) are returned by their verbs, not from here.
int Code(sluice::StatusCode code);
int Fail(const sluice::Status& s) {
  sluice::cli::PrintError(s.message(), 0);
  if (!s.detail().empty()) fmt::print(stderr, "sluice: detail: {}\n", s.detail());
  return Code(s.code());
}
int Code(sluice::StatusCode code) {
  using sluice::StatusCode;
  switch (code) {
    case StatusCode::kInvalidArgument:  // fix the command line (or the SQL it names)
      return 2;
    case StatusCode::kUnavailable:  // transient: run the same command again later
    case StatusCode::kResourceExhausted:
    case StatusCode::kAborted:
    case StatusCode::kInDoubt:
      return 5;
    case StatusCode::kPermissionDenied:  // grant the privilege named
      return 6;
    case StatusCode::kFailedPrecondition:  // an operator must act (gate, phase, data, lock budget)
      return 7;
    case StatusCode::kCancelled:
      return 130;
    case StatusCode::kOk:  // not reached: Fail is for errors
    case StatusCode::kInvalidPlan:  // fix the plan
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kInternal:
      return 1;
  }
  return 1;
}

// A lifecycle verb's success: its human line, or with --json one object
// {"ok": true, "verb": ..., ...fields}.
int Done(bool json, const std::string& verb, const std::string& human, nlohmann::json fields = nlohmann::json::object()) {
  if (json) {
    nlohmann::json j = {{"ok", true}, {"verb", verb}};
    j.update(fields);
    fmt::print("{}\n", j.dump());
  } else if (!human.empty()) {
    fmt::print("{}\n", human);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: change a live database's schema and data with no downtime, a rollback at every step,\n"
               "and proof that nothing was lost. See docs/cli.md."};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", fmt::format("sluice {} (commit {})", sluice::cli::kVersion, sluice::cli::kCommit),
                       "print the version and the commit it was built from");
  sluice::Options opts;
  if (const char* env = std::getenv("SLUICE_DB")) opts.db_url = env;
  app.add_option("--db", opts.db_url,
                 "database: sqlite:PATH, sqlite:///ABS/PATH, postgresql://user@host:port/db (env SLUICE_DB)");
  app.add_option("--schema", opts.schema, "PostgreSQL schema whose tables are migrated")->capture_default_str();
  app.add_option("--state-schema", opts.state_schema, "PostgreSQL schema for sluice's state tables")
      ->capture_default_str();
  app.add_option("--lock-timeout-ms", opts.lock_timeout_ms, "PostgreSQL: longest wait for one DDL lock")
      ->capture_default_str();
  app.add_option("--lock-budget-ms", opts.lock_retry_budget_ms,
                 "PostgreSQL: total time a phase keeps retrying its locks before failing")
      ->capture_default_str();
  app.add_option("--actor", opts.actor, "name recorded in the audit log (default $USER@host)");
  // Hooks and webhooks (docs/command-center.md), on every verb.
  if (const char* env = std::getenv("SLUICE_HOOKS_DIR")) opts.hooks_dir = env;
  app.add_option("--hooks-dir", opts.hooks_dir,
                 "run executables named after events from this folder (on-start, on-before-switch, ...; env "
                 "SLUICE_HOOKS_DIR)");
  app.add_option("--webhook", opts.webhooks, "POST each event as JSON to this URL (repeatable)");
  app.add_option("--hook-timeout-ms", opts.hook_timeout_ms, "longest run of one hook before it is killed")
      ->capture_default_str();
  app.add_option("--progress-interval-ms", opts.progress_event_interval_ms,
                 "at most one backfill-progress hook run / webhook per this interval")
      ->capture_default_str();
  bool json = false;

  std::string plan_path, migration, dir;
  bool start_backfill = false, back = false;
  sluice::BackfillOptions bopts;
  int64_t chunk_ms = 0, chunk_rows = 0, workers = 0, probe_target_ms = -1, heartbeat_ms = 0;
  double rate = 0, probe_slowdown = -1, active_pace = -1;
  std::string replica_url;

  auto add_json = [&](CLI::App* sub) { sub->add_flag("--json", json, "print machine-readable JSON"); };
  auto add_backfill_opts = [&](CLI::App* sub) {
    sub->add_option("--chunk-ms", chunk_ms, "target duration of one chunk in ms (default: plan, else 30 on PostgreSQL, 250 on SQLite)");
    sub->add_option("--chunk-rows", chunk_rows, "first chunk's row count (default: plan, else 1000)");
    sub->add_option("--rate", rate, "maximum rows per second (default: unlimited)");
    sub->add_option("--workers", workers, "concurrent chunk writers, PostgreSQL only (default: plan, else 1; SQLite refuses more than 1)");
    sub->add_option("--probe-slowdown", probe_slowdown,
                    "slow down when the probe query takes longer than this multiple of its latency before the "
                    "backfill (default: 1.5 on PostgreSQL unless a probe target is set, counted while the application is at "
                    "work; 0 = off)");
    sub->add_option("--probe-target-ms", probe_target_ms,
                    "slow down when the probe query takes longer than this many ms, an absolute objective "
                    "(default: the plan's, else 50 where no probe slowdown applies, e.g. on SQLite; 0 = off)");
    sub->add_option("--active-pace", active_pace,
                    "PostgreSQL: while the application is at work, the backfill works at most this share of the "
                    "time, in (0, 1] (default: the plan's backfill.throttle.active_pace, else 0.1; 1 = do not give "
                    "way on activity alone)");
    sub->add_option("--replica-url", replica_url, "PostgreSQL: throttle on this replica's replay lag");
    sub->add_flag("--full-sync", bopts.full_sync,
                  "SQLite: every chunk's commit durable at once (synchronous = FULL; default in WAL mode: NORMAL, "
                  "whose lost last chunks after a power loss are redone)");
    sub->add_option("--heartbeat-ms", heartbeat_ms,
                    "renew the run's lease this often (default 2000); `status` calls the backfill stopped after 3 "
                    "intervals without a renewal");
  };

  auto* lint = app.add_subcommand("lint", "validate a plan; with --db also against the live schema; changes nothing");
  lint->add_option("PLAN", plan_path, "plan file (.yaml, .yml or .json)")->required();
  add_json(lint);
  auto* plan = app.add_subcommand("plan", "dry run: print the exact SQL of start, backfill, complete and rollback");
  plan->add_option("PLAN", plan_path, "plan file")->required();
  add_json(plan);
  auto* start = app.add_subcommand("start", "expand: additive objects, dual-write triggers, the new version");
  start->add_option("PLAN", plan_path, "plan file")->required();
  start->add_flag("--backfill", start_backfill, "also run the backfill");
  bool start_estimate = false;
  start->add_flag("--estimate", start_estimate,
                  "first estimate the plan (as `sluice estimate`; refuses to start when that fails) and record the "
                  "estimate with the migration, for estimate vs actual in `status` and the report");
  add_backfill_opts(start);
  auto* baseline = app.add_subcommand("baseline", "publish a version of the schema as it is now, for the "
                                                    "application that runs before the first migration");
  std::string baseline_name;
  baseline->add_option("--name", baseline_name, "version name (default: baseline)");
  auto* backfill = app.add_subcommand("backfill", "run or resume the backfill of the active migration(s)");
  backfill->add_option("MIGRATION", migration, "migration name (default: every active one)");
  add_backfill_opts(backfill);
  auto* verify = app.add_subcommand("verify", "run the verification checks; exit 3 if any fails");
  verify->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(verify);
  // --- verify --watch / diff (docs/verification.md) ---
  std::string watch_window;
  double watch_interval = 5;
  verify->add_option("--watch", watch_window,
                     "after the checks, keep shadow-reading for this soak window (e.g. 90s, 10m, 1h) and report the "
                     "divergence rate over time");
  verify->add_option("--interval", watch_interval, "seconds between shadow-read rounds with --watch")
      ->capture_default_str();
  std::optional<int> verify_workers;
  verify->add_option("--workers", verify_workers,
                     "PostgreSQL: sessions comparing checksums at once, in one snapshot (default 2; 1 on SQLite)");
  sluice::DiffOptions diff_opts;
  std::string diff_key;
  auto* diff = app.add_subcommand("diff", "compare one table across two databases by chunk checksums; exit 3 if "
                                          "they differ");
  diff->add_option("--source", diff_opts.source_url, "source database URL")->required();
  diff->add_option("--target", diff_opts.target_url, "target database URL")->required();
  diff->add_option("--table", diff_opts.table, "table to compare")->required();
  diff->add_option("--key", diff_key, "key columns, comma-separated (default: the source's primary key)");
  diff->add_option("--source-schema", diff_opts.source_schema, "PostgreSQL schema of the source table")
      ->capture_default_str();
  diff->add_option("--target-schema", diff_opts.target_schema, "PostgreSQL schema of the target table")
      ->capture_default_str();
  diff->add_option("--chunk-rows", diff_opts.chunk_rows, "rows per checksum chunk")->capture_default_str();
  diff->add_option("--max-reported", diff_opts.max_reported, "differing rows listed")->capture_default_str();
  add_json(diff);
  auto* sw = app.add_subcommand("switch", "move live reads to the new version (or back with --back)");
  sw->add_option("MIGRATION", migration, "migration name (default: the active one)");
  sw->add_flag("--back", back, "move live reads back to the previous version");
  auto* complete = app.add_subcommand("complete", "contract: drop what only the old version needed");
  complete->add_option("MIGRATION", migration, "migration name (default: the active one)");
  sluice::TransitionOptions topts;
  for (auto* sub : {sw, complete}) {
    sub->add_flag("--force", topts.force, "pass a failed gate (needs --reason; recorded in the audit log)");
    sub->add_option("--reason", topts.reason, "why the gate is overridden");
  }
  auto* gates_cmd = app.add_subcommand("gates", "the readiness scorecard: every gate's state and evidence");
  gates_cmd->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(gates_cmd);
  auto* signoff = app.add_subcommand("signoff", "record a sign-off for a gate (backfill, switch or complete)");
  std::string gate_name, signer, role, note;
  signoff->add_option("GATE", gate_name, "backfill | switch | complete")->required();
  signoff->add_option("--as", signer, "who signs off")->required();
  signoff->add_option("--role", role, "the role the plan requires (e.g. 'data owner', SRE)")->required();
  signoff->add_option("--note", note, "why");
  signoff->add_option("--migration", migration, "migration name (default: the active one)");
  auto* watch = app.add_subcommand("watch", "after switch: watch the plan's abort criteria; on a breach switch back");
  watch->add_option("MIGRATION", migration, "migration name (default: the active one)");
  sluice::AbortWatchOptions wopts;
  watch->add_option("--duration", wopts.seconds, "seconds to watch")->capture_default_str();
  watch->add_option("--interval", wopts.interval_seconds, "seconds between rounds")->capture_default_str();
  add_json(watch);
  auto* rollback = app.add_subcommand("rollback", "return to the state before start (any phase before complete)");
  rollback->add_option("MIGRATION", migration, "migration name (default: the active one)");
  bool force_rollback = false;
  rollback->add_flag("--force", force_rollback,
                     "roll back even though `sql` operations without `down` cannot be undone (their effects stay)");
  auto* pause = app.add_subcommand("pause", "pause a running backfill (from any machine); resume continues it");
  pause->add_option("MIGRATION", migration, "migration name (default: the active one)");
  auto* resume = app.add_subcommand("resume", "resume a paused backfill");
  resume->add_option("MIGRATION", migration, "migration name (default: the active one)");
  auto* tune = app.add_subcommand("tune", "change a running backfill's rate, chunk time or workers");
  tune->add_option("MIGRATION", migration, "migration name (default: the active one)");
  std::optional<double> tune_rate;
  std::optional<int64_t> tune_chunk_ms, tune_workers;
  tune->add_option("--rate", tune_rate, "maximum rows per second (0 = unlimited)");
  tune->add_option("--chunk-ms", tune_chunk_ms, "target duration of one chunk in ms");
  tune->add_option("--workers", tune_workers, "PostgreSQL: concurrent chunk writers");
  bool tune_reset = false;
  tune->add_flag("--reset", tune_reset, "forget earlier tune overrides (back to the plan's settings)");
  auto* status = app.add_subcommand("status", "migrations, phases, backfill progress, last verification");
  add_json(status);
  // `sluice failures`: rows whose `up` failed on an old-version write.
  auto* failures = app.add_subcommand("failures", "rows whose `up` failed on an old-version write (dual_write: "
                                                  "on_error: record); exit 3 while any is unresolved");
  failures->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(failures);
  bool recheck = false;
  failures->add_flag("--recheck", recheck, "evaluate `up` again for each recorded row and resolve those that convert");
  // --- the contract audit (docs/audit.md) ---
  sluice::AuditOptions audit_opts;
  bool markdown = false;
  auto* audit = app.add_subcommand("audit", "who still reads or writes what `complete` drops: samples "
                                            "pg_stat_statements and pg_stat_activity, scans code, records the report");
  audit->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(audit);
  audit->add_flag("--markdown", markdown, "print the report as Markdown (for the handoff document)");
  audit->add_option("--code", audit_opts.code_dir, "also scan this source tree for the old table and column names");
  audit->add_option("--queries", audit_opts.queries_file,
                    "also classify the statements of this file (each ends with ';' or a blank line)");
  audit->add_option("--brownout", audit_opts.brownout_roles,
                    "PostgreSQL: first revoke the old columns/tables from these application roles (ROLE[,ROLE...]) "
                    "for --seconds; the first permission error restores them at once and names who hit it")
      ->delimiter(',');
  audit->add_option("--seconds", audit_opts.brownout_seconds, "how long the brownout lasts")->capture_default_str();
  audit->add_flag("--brownout-restore", audit_opts.brownout_restore,
                  "only restore the privileges an interrupted brownout revoked (audit, complete and rollback do it "
                  "too)");
  auto* migrate = app.add_subcommand("migrate", "apply a directory's unapplied plans in file-name order");
  migrate->add_option("DIR", dir, "directory of plan files")->required();
  add_backfill_opts(migrate);
  auto* version_sql = app.add_subcommand("version-sql", "the SQL a connection runs to use a version (refused until "
                                                        "the version's backfill is done)");
  std::string version = "live";
  version_sql->add_option("VERSION", version, "version name or 'live'")->capture_default_str();

  // --- handoff documents: report and runbook (docs/handoff.md) ---
  bool html = false, archived = false;
  auto* report = app.add_subcommand("report", "the evidence of a migration: timeline, gates, overrides, sign-offs, "
                                              "verifications, backfill, retrospective");
  report->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(report);
  report->add_flag("--html", html, "print a standalone HTML page");
  report->add_flag("--archived", archived, "print the report archived at complete or rollback (JSON) as it was then");
  auto* runbook = app.add_subcommand("runbook", "the runbook an on-call engineer follows: each phase's command, "
                                                "expected output, SQL, stop conditions and rollback");
  runbook->add_option("PLAN", plan_path, "plan file")->required();
  runbook->add_flag("--html", html, "print a standalone HTML page");
  sluice::RehearseOptions rehearse_opts;
  auto* rehearse = app.add_subcommand("rehearse", "run the plan's whole lifecycle, rollback timed, on a copy of the "
                                                  "database (never the source) and record the durations");
  rehearse->add_option("PLAN", plan_path, "plan file (not with --cleanup)");
  rehearse->add_option("--target", rehearse_opts.target_url,
                       "rehearse on this staging database instead of a scratch copy");
  rehearse->add_flag("--keep", rehearse_opts.keep, "keep the copy and print its URL");
  rehearse->add_option("--sample", rehearse_opts.sample,
                       "PostgreSQL: copy about this fraction (0-1) of the touched tables' rows");
  rehearse->add_flag("--cleanup", rehearse_opts.cleanup,
                     "only drop scratch copies that interrupted rehearsals left behind");
  add_json(rehearse);
  // --- estimate (docs/handoff.md) ---
  sluice::EstimateOptions estimate_opts;
  auto* estimate = app.add_subcommand("estimate", "predict the backfill, verification, index builds and complete "
                                                  "(P50/P90) and list each statement's lock; changes nothing");
  estimate->add_option("PLAN", plan_path, "plan file")->required();
  estimate->add_option("--trial-chunks", estimate_opts.trial_chunks,
                       "timed trial chunks per backfilled table (rolled back)")
      ->capture_default_str();
  estimate->add_option("--chunk-rows", estimate_opts.chunk_rows, "rows of the first trial chunks (default: the plan's, else 1000); the others as the backfill sizes them");
  estimate->add_option("--trial-lock-timeout-ms", estimate_opts.lock_timeout_ms,
                       "ms the trial may wait for a lock before it gives up (never queues behind the application)")
      ->capture_default_str();
  add_json(estimate);
  // --- serve / events (docs/command-center.md) ---
  sluice::serve::ServeOptions serve_opts;
  auto* serve = app.add_subcommand("serve", "command center: Prometheus /metrics, a live status page, a JSON API; "
                                            "control only with --control-token");
  serve->add_option("--listen", serve_opts.listen,
                    "address to listen on; anything but loopback exposes the migration's state to the network "
                    "(see the security note in docs/command-center.md)")
      ->capture_default_str();
  serve->add_option("--control-token", serve_opts.control_token,
                    "allow POST pause/resume/tune/signoff with `Authorization: Bearer TOKEN` (env "
                    "SLUICE_CONTROL_TOKEN); read-only without");
  serve->add_option("--threads", serve_opts.threads, "request threads (a bounded pool)")->capture_default_str();
  std::string serve_inventory, serve_ledger;
  serve->add_option("--inventory", serve_inventory,
                    "also show this fleet (docs/fleets.md): a section of the status page and /api/v1/fleet");
  serve->add_option("--ledger", serve_ledger,
                    "with --inventory: the fleet's ledger (default: sqlite:fleet.db next to the inventory)");
  auto* events = app.add_subcommand("events", "the audit log: every event recorded, oldest first");
  events->add_option("MIGRATION", migration, "migration name (default: every migration)");
  bool follow = false;
  int64_t events_after = 0, events_limit = 0;
  events->add_flag("--follow,-f", follow, "keep printing new events as they are recorded (Ctrl-C stops)");
  events->add_option("--after", events_after, "only events with an id greater than this");
  events->add_option("--limit", events_limit, "print at most this many events (the newest ones)");
  events->add_flag("--json", json, "print one JSON object per event and line (JSON Lines)");

  sluice::cli::DemoOptions demo_opts;
  auto* demo = app.add_subcommand("demo", "run a full migration on a demo SQLite database with live writers");
  demo->add_option("--rows", demo_opts.rows, "rows in the demo table")->capture_default_str();
  demo->add_flag("--keep", demo_opts.keep, "keep the demo database afterwards (default: keep)");

  // --- fleets (docs/fleets.md): sluice fleet apply | status | rollback ---
  sluice::cli::FleetCommands fleet(app);

  for (auto* sub : {start, baseline, backfill, sw, complete, rollback, pause, resume, tune, signoff, migrate}) {
    add_json(sub);
  }

  // Hidden generators of the bash completion and the man page (installed by
  // the package), from the definitions above.
  std::string generated_out;
  auto* gen_completion = app.add_subcommand("__bash-completion", "")->group("");
  auto* gen_man = app.add_subcommand("__man", "")->group("");
  for (auto* sub : {gen_completion, gen_man}) sub->add_option("-o,--output", generated_out, "write here, not stdout");
  sluice::cli::AddGlobalOptionsFooter(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    if (app.get_subcommands().empty()) {
      // No verb recognised: name the word that was meant as one.
      std::string word = sluice::cli::FirstWord(app, argc, argv);
      if (!word.empty()) {
        std::vector<std::string> verbs;
        for (auto* sub : app.get_subcommands([](CLI::App* s) { return !s->get_group().empty(); })) {
          verbs.push_back(sub->get_name());
        }
        std::string guess = sluice::cli::Suggest(word, verbs);
        sluice::cli::PrintError(fmt::format("unknown verb '{}'{}", word,
                                            guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess)),
                                2);
        fmt::print(stderr, "sluice: see `sluice --help` for the verbs\n");
        return 2;
      }
    }
    sluice::cli::PrintError(e.what(), 2);
    fmt::print(stderr, "sluice: see `sluice {} --help`\n",
               app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name());
    return 2;
  }

  // SIGTERM (kill, a service manager) is the first Ctrl-C: every worker
  // stops after the chunk in flight; a second SIGINT or SIGTERM leaves at
  // once. SA_RESTART: a system call the signal interrupts resumes.
  struct sigaction on_stop {};
  on_stop.sa_handler = OnSigint;
  sigemptyset(&on_stop.sa_mask);
  on_stop.sa_flags = SA_RESTART;
  sigaction(SIGINT, &on_stop, nullptr);
  sigaction(SIGTERM, &on_stop, nullptr);
  bool tty = isatty(STDOUT_FILENO);
  sluice::cli::ProgressPrinter progress(tty);
  if (chunk_ms > 0) bopts.chunk_target_ms = chunk_ms;
  if (chunk_rows > 0) bopts.chunk_rows = chunk_rows;
  if (rate > 0) bopts.max_rows_per_second = rate;
  if (workers > 0) bopts.workers = workers;
  if (probe_target_ms >= 0) bopts.probe_target_ms = probe_target_ms;
  if (probe_slowdown >= 0) bopts.probe_slowdown = probe_slowdown;
  if (active_pace >= 0) bopts.active_pace = active_pace;
  if (heartbeat_ms > 0) bopts.heartbeat_interval_ms = heartbeat_ms;
  bopts.replica_url = replica_url;
  bopts.cancel = &g_cancel;
  if (!json) bopts.on_progress = [&](const sluice::BackfillProgress& p) { progress.Update(p); };

  if (fleet.parsed()) return fleet.Run(opts, &g_cancel, Fail);

  if (diff->parsed()) {
    for (size_t pos = 0; !diff_key.empty();) {
      size_t comma = diff_key.find(',', pos);
      std::string k = diff_key.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      while (!k.empty() && k.front() == ' ') k.erase(k.begin());
      while (!k.empty() && k.back() == ' ') k.pop_back();
      if (!k.empty()) diff_opts.key.push_back(k);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    diff_opts.cancel = &g_cancel;  // stops between chunk queries (exit 130)
    auto r = sluice::Diff(diff_opts);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", r->json);
    } else {
      fmt::print("diff of {}: {}\n", diff_opts.table, r->same ? "SAME" : "DIFFERENT");
      fmt::print("  rows: source {}, target {}\n", sluice::cli::FormatCount(r->source_rows),
                 sluice::cli::FormatCount(r->target_rows));
      fmt::print("  chunks: {} ({} differ); {} chunk queries ({} for bisection), {} key look-ups\n", r->chunks,
                 r->differing_chunks, r->chunk_queries, r->bisect_queries, r->key_queries);
      if (!r->same) {
        fmt::print("  differing rows found: {}{}\n", r->differences, r->truncated ? "+ (stopped at --max-reported)" : "");
      }
      for (const auto& e : r->evidence) fmt::print("    {}\n", e);
      for (const auto& n : r->notes) fmt::print("  note: {}\n", n);
    }
    return r->same ? 0 : 3;
  }

  if (gen_completion->parsed() || gen_man->parsed()) {
    std::string text = gen_man->parsed() ? sluice::cli::ManPage(app) : sluice::cli::BashCompletion(app);
    if (generated_out.empty()) {
      fmt::print("{}", text);
      return 0;
    }
    std::FILE* f = std::fopen(generated_out.c_str(), "w");
    if (f == nullptr || std::fputs(text.c_str(), f) < 0 || std::fclose(f) != 0) {
      return sluice::cli::PrintError(fmt::format("cannot write {}", generated_out), 1);
    }
    return 0;
  }

  if (demo->parsed()) {
    demo_opts.db_url = opts.db_url;
    demo_opts.cancel = &g_cancel;
    return sluice::cli::RunDemo(demo_opts);
  }

  if (serve->parsed()) {
    if (serve_opts.control_token.empty()) {
      if (const char* env = std::getenv("SLUICE_CONTROL_TOKEN")) serve_opts.control_token = env;
    }
    auto hp = sluice::serve::ParseListen(serve_opts.listen);
    if (!hp.ok()) return Fail(hp.status());
    if (!sluice::serve::IsLoopback(hp->first)) {
      fmt::print(stderr, "sluice: warning: listening on {}, not loopback: anyone who reaches it sees the "
                         "migration's state{}\n",
                 serve_opts.listen, serve_opts.control_token.empty() ? "" : " and, with the token, controls it");
    }
    serve_opts.cancel = &g_cancel;
    if (!serve_inventory.empty()) {
      auto view = sluice::cli::ServeFleetView(serve_inventory, serve_ledger, opts);
      if (!view.ok()) return Fail(view.status());
      serve_opts.fleet = *view;
    }
    serve_opts.on_listening = [](const std::string& host, int port) {
      fmt::print("sluice serve: listening on http://{}:{}/ (metrics at /metrics)\n",
                 host.find(':') != std::string::npos ? "[" + host + "]" : host, port);
      std::fflush(stdout);
    };
    sluice::Status s = sluice::serve::Serve(opts, serve_opts);
    if (!s.ok()) return Fail(s);
    return 0;
  }

  auto opened = sluice::Migrator::Open(opts);
  if (!opened.ok()) return Fail(opened.status());
  sluice::Migrator& m = **opened;

  if (lint->parsed()) {
    auto r = m.Lint(plan_path);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      nlohmann::json j = {{"ok", r->ok},
                          {"checked_against_database", r->checked_against_database},
                          {"errors", r->errors.size()},
                          {"warnings", r->warnings.size()}};
      // A plan already in flight: its phase and what remains (as `plan --json`'s phases).
      j["in_flight"] = r->in_flight.empty() ? nlohmann::json(nullptr) : nlohmann::json(r->in_flight);
      if (!r->in_flight.empty()) {
        j["live"] = r->live;
        j["remaining"] = nlohmann::json::object();
        for (const auto& ph : r->remaining) j["remaining"][ph.phase] = ph.statements;
      }
      fmt::print("{}\n", j.dump(2));
    }
    // A failure's first line says so (docs/cli.md); the details follow.
    if (!r->ok) sluice::cli::PrintError(fmt::format("{} has {} error(s):", plan_path, r->errors.size()), 1);
    for (const auto& e : r->errors) fmt::print(stderr, "{}\n", e);
    for (const auto& w : r->warnings) fmt::print(stderr, "{}\n", w);
    if (!r->ok) return 1;
    if (!json && !r->in_flight.empty()) {
      fmt::print("{}: ok: {}\n", plan_path, sluice::cli::InFlightLine("this migration", r->in_flight, r->live));
      sluice::cli::PrintPhases(r->remaining);
    } else if (!json) {
      fmt::print("{}: ok{}\n", plan_path,
                 r->checked_against_database ? " (checked against the database)" : " (syntax only; pass --db to "
                                                                                    "check against a database)");
    }
    return 0;
  }
  if (plan->parsed()) {
    auto r = m.Preview(plan_path);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::PreviewJson(*r));
    } else {
      sluice::cli::PrintPreview(*r);
    }
    return 0;
  }
  if (start->parsed()) {
    std::vector<std::string> warnings;
    std::optional<sluice::EstimateResult> estimated;
    if (start_estimate) {
      auto e = m.Estimate(plan_path, {});
      if (!e.ok()) return Fail(e.status().WithContext("--estimate (nothing was started; retry, or start without it)"));
      estimated = std::move(*e);
    }
    sluice::Status s = m.Start(plan_path, &warnings);
    if (!s.ok()) return Fail(s);
    if (estimated) {
      sluice::Status rec = m.RecordEstimate(*estimated);
      if (!rec.ok()) return Fail(rec.WithContext("started, but the estimate could not be recorded"));
    }
    for (const auto& w : warnings) fmt::print(stderr, "sluice: {}\n", w);
    std::string name = std::filesystem::path(plan_path).stem().string();
    if (!json) fmt::print("started {}\n", plan_path);
    nlohmann::json fields = {{"migration", name}, {"warnings", warnings}};
    if (start_backfill) {
      auto r = m.Backfill("", bopts);
      progress.Finish();
      if (!r.ok()) return Fail(r.status());
      fields["backfill"] = {{"rows", r->rows}, {"seconds", r->seconds}};
    }
    return Done(json, "start", "", fields);
  }
  if (baseline->parsed()) {
    auto r = m.Baseline(baseline_name);
    if (!r.ok()) return Fail(r.status());
    return Done(json, "baseline",
                fmt::format("baseline {} {} ({} tables)\npoint the old application at it: {}", r->name,
                            r->created ? "published" : "exists already", r->tables.size(), r->version_hint),
                {{"name", r->name}, {"created", r->created}, {"tables", r->tables}, {"version_hint", r->version_hint}});
  }
  if (backfill->parsed()) {
    auto r = m.Backfill(migration, bopts);
    progress.Finish();
    if (!r.ok()) return Fail(r.status());
    return Done(json, "backfill",
                fmt::format("backfill done: {} rows in {}", sluice::cli::FormatCount(r->rows),
                            sluice::cli::FormatDuration(r->seconds)),
                {{"migration", migration.empty() ? nlohmann::json() : nlohmann::json(migration)}, {"rows", r->rows},
                 {"seconds", r->seconds}});
  }
  sluice::VerifyOptions vopts;
  vopts.cancel = &g_cancel;
  if (verify_workers) {
    if (*verify_workers < 1) {
      return sluice::cli::PrintError(fmt::format("--workers {}: expected 1 or more sessions", *verify_workers), 2);
    }
    vopts.checksum_workers = *verify_workers;
  }
  if (verify->parsed() && !watch_window.empty()) {
    double seconds = ParseDuration(watch_window);
    if (seconds < 0) {
      return sluice::cli::PrintError(
          fmt::format("--watch {}: expected a duration like 90s, 10m or 1h", watch_window), 2);
    }
    auto r = m.Verify(migration, vopts);
    if (!r.ok()) return Fail(r.status());
    if (!json) sluice::cli::PrintVerify(*r);
    sluice::WatchOptions wo;
    wo.seconds = seconds;
    wo.interval_seconds = watch_interval;
    wo.cancel = &g_cancel;
    if (!json) {
      fmt::print("shadow reads for {}:\n", watch_window);
      wo.on_round = [](const sluice::ShadowWatchRound& w) {
        fmt::print("  {}  round {:>3}: {} keys, {} divergent (rate {:.4f}%, cumulative {:.4f}%){}\n", w.at, w.round,
                   w.keys, w.divergent, w.rate * 100, w.cumulative_rate * 100,
                   w.unstable ? fmt::format(", {} kept changing", w.unstable) : "");
        for (const auto& e : w.evidence) fmt::print("         {}\n", e);
        std::fflush(stdout);
      };
    }
    auto w = m.WatchShadowReads(r->migration, wo);
    if (!w.ok()) return Fail(w.status());
    if (json) {
      fmt::print("{{\"verify\": {}, \"watch\": {}}}\n", r->json, w->json);
    } else {
      fmt::print("shadow reads: {} keys over {} rounds, {} divergent, rate {:.4f}% (max_divergence {:.4f}%): {}\n",
                 w->keys, w->rounds.size(), w->divergent, w->rate * 100, w->max_divergence * 100,
                 w->passed ? "PASSED" : "FAILED");
    }
    if (!r->passed || !w->passed) {
      return sluice::cli::PrintError(fmt::format("verification of {} failed", r->migration), 3);
    }
    return 0;
  }
  if (verify->parsed()) {
    auto r = m.Verify(migration, vopts);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::VerifyJson(*r));
    } else {
      sluice::cli::PrintVerify(*r);
    }
    if (!r->passed) {
      return sluice::cli::PrintError(fmt::format("verification of {} failed", r->migration), 3);
    }
    return 0;
  }
  if (sw->parsed()) {
    sluice::Status s = m.Switch(migration, back, topts);
    if (!s.ok()) return Fail(s);
    return Done(json, "switch", fmt::format("reads switched to the {} version", back ? "previous" : "new"),
                {{"live", back ? "old" : "new"}, {"forced", topts.force}});
  }
  if (complete->parsed()) {
    sluice::Status s = m.Complete(migration, topts);
    if (!s.ok()) return Fail(s);
    return Done(json, "complete", "complete", {{"forced", topts.force}});
  }
  if (rollback->parsed()) {
    sluice::Status s = m.Rollback(migration, force_rollback);
    if (!s.ok()) return Fail(s);
    return Done(json, "rollback", "rolled back");
  }
  if (gates_cmd->parsed()) {
    auto r = m.Gates(migration);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::GatesJson(*r));
    } else {
      sluice::cli::PrintGates(*r);
    }
    // A script can wait for 0: exit 7 while any gate blocks.
    std::string blocked;
    for (const auto& g : *r) {
      if (!g.passed) blocked += (blocked.empty() ? "" : ", ") + g.gate;
    }
    if (!blocked.empty()) return sluice::cli::PrintError(fmt::format("gate(s) blocked: {}", blocked), 7);
    return 0;
  }
  if (signoff->parsed()) {
    sluice::Status s = m.Signoff(migration, gate_name, signer, role, note);
    if (!s.ok()) return Fail(s);
    return Done(json, "signoff", fmt::format("{} ({}) signed off the {} gate", signer, role, gate_name),
                {{"gate", gate_name}, {"as", signer}, {"role", role}});
  }
  if (watch->parsed()) {
    wopts.cancel = &g_cancel;
    if (!json) wopts.on_round = [](const std::string& line) { fmt::print("{}\n", line); std::fflush(stdout); };
    auto r = m.Watch(migration, wopts);
    if (!r.ok()) return Fail(r.status());
    if (json) fmt::print("{}\n", r->json);
    if (r->aborted) {
      return sluice::cli::PrintError(
          fmt::format("watch: ABORT: {}; reads were switched back to the previous version", r->reason), 4);
    }
    if (!json) fmt::print("no abort criterion breached in {} rounds\n", r->rounds);
    return 0;
  }
  if (pause->parsed() || resume->parsed()) {
    sluice::Status s = pause->parsed() ? m.Pause(migration) : m.Resume(migration);
    if (!s.ok()) return Fail(s);
    return Done(json, pause->parsed() ? "pause" : "resume",
                pause->parsed() ? "paused (a running backfill holds after its current chunk)" : "resumed");
  }
  if (tune->parsed()) {
    sluice::Status s = m.Tune(migration, tune_rate, tune_chunk_ms, tune_workers, tune_reset);
    if (!s.ok()) return Fail(s);
    return Done(json, "tune", "tuned (a running backfill applies it within a second)");
  }
  if (status->parsed()) {
    auto r = m.List();
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::StatusJson(*r));
    } else {
      sluice::cli::PrintStatus(*r);
    }
    return 0;
  }
  if (audit->parsed()) {
    audit_opts.cancel = &g_cancel;
    auto r = m.Audit(migration, audit_opts);
    if (!r.ok()) return Fail(r.status());
    fmt::print("{}", json ? r->json + "\n" : (markdown ? r->markdown : r->text));
    // A script can wait for 0: exit 7 while the complete gate (audit:
    // required) would refuse.
    if (r->blocking || !r->coverage_sufficient) return sluice::cli::PrintError("audit: " + r->summary, 7);
    return 0;
  }
  if (failures->parsed()) {
    auto r = m.Failures(migration, recheck);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::FailuresJson(*r));
    } else {
      sluice::cli::PrintFailures(*r, recheck);
    }
    return r->failures.empty() ? 0 : 3;
  }
  if (events->parsed()) {
    auto print = [&](const sluice::EventInfo& e) {
      if (json) {
        nlohmann::json details = nullptr;
        if (!e.details.empty()) {
          details = nlohmann::json::parse(e.details, nullptr, false);
          if (details.is_discarded()) details = e.details;
        }
        nlohmann::json j = {{"id", e.id},       {"migration", e.migration}, {"at", e.at},     {"kind", e.kind},
                            {"actor", e.actor}, {"message", e.message},     {"details", details}};
        fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        fmt::print("{}  {:<6} {:<18} {:<20} {}  ({})\n", e.at, e.id, e.migration, e.kind, e.message, e.actor);
      }
    };
    int64_t after = events_after;
    std::vector<sluice::EventInfo> all;
    while (true) {
      auto r = m.Events(migration, after, 10000);
      if (!r.ok()) return Fail(r.status());
      for (auto& e : *r) {
        after = e.id;
        all.push_back(std::move(e));
      }
      if (r->size() < 10000) break;
    }
    size_t from = events_limit > 0 && all.size() > static_cast<size_t>(events_limit) ? all.size() - events_limit : 0;
    for (size_t i = from; i < all.size(); ++i) print(all[i]);
    std::fflush(stdout);
    while (follow && !g_cancel.load()) {
      for (int i = 0; i < 10 && !g_cancel.load(); ++i) usleep(100000);
      auto r = m.Events(migration, after, 10000);
      if (!r.ok()) return Fail(r.status());
      for (const auto& e : *r) {
        after = e.id;
        print(e);
      }
      std::fflush(stdout);
    }
    return 0;
  }
  if (migrate->parsed()) {
    sluice::MigrateOptions mo;
    mo.backfill = bopts;
    mo.on_step = [&](const std::string& step, const std::string& name) {
      progress.Finish();
      if (!json) fmt::print("{} {}\n", step, name);
    };
    mo.on_skip = [&](const std::string& file, const std::string& why) {
      if (!json) fmt::print("skip {}: {}\n", file, why);
    };
    auto r = m.Migrate(dir, mo);
    progress.Finish();
    if (!r.ok()) return Fail(r.status());
    return Done(json, "migrate", fmt::format("applied {} migration(s)", r->size()), {{"applied", *r}});
  }
  if (report->parsed()) {
    auto r = m.History(migration);
    if (!r.ok()) return Fail(r.status());
    if (archived) {
      if (r->archived_report.empty()) {
        return Fail(sluice::FailedPrecondition("migration '" + r->info.name + "' is " + r->info.phase +
                                               "; its report is archived at complete or rollback"));
      }
      fmt::print("{}\n", r->archived_report);
    } else if (json) {
      fmt::print("{}\n", sluice::handoff::ReportJson(*r));
    } else {
      fmt::print("{}", html ? sluice::handoff::ReportHtml(*r) : sluice::handoff::ReportMarkdown(*r));
    }
    return 0;
  }
  if (runbook->parsed()) {
    auto r = m.Handoff(plan_path);
    if (!r.ok()) return Fail(r.status());
    sluice::handoff::RunbookOptions ro;
    ro.plan_path = plan_path;
    ro.db_url = opts.db_url;
    if (r->started) ro.generated_at = r->history.read_at;
    fmt::print("{}", html ? sluice::handoff::RunbookHtml(*r, ro) : sluice::handoff::RunbookMarkdown(*r, ro));
    return 0;
  }
  if (rehearse->parsed()) {
    if (!json) {
      rehearse_opts.on_phase = [](const sluice::RehearsalPhase& p) {
        fmt::print("  {:<9} (round {}) {:>8.2f} s  {}\n", p.phase, p.round, p.seconds,
                   p.error.empty() ? (p.rows ? fmt::format("{} rows", p.rows) : "ok") : "FAILED: " + p.error);
        std::fflush(stdout);
      };
    }
    if (plan_path.empty() != rehearse_opts.cleanup) {
      return Fail(sluice::InvalidArgument("rehearse needs PLAN, or --cleanup without one"));
    }
    rehearse_opts.cancel = &g_cancel;
    auto r = m.Rehearse(plan_path, rehearse_opts);
    if (!r.ok()) return Fail(r.status());
    for (const auto& l : r->leftovers) fmt::print(stderr, "sluice: {}\n", l);
    if (rehearse_opts.cleanup) {
      if (r->leftovers.empty()) fmt::print("no scratch copies left behind\n");
      return 0;
    }
    if (json) {
      fmt::print("{}\n", r->json);
    } else {
      fmt::print("rehearsal of {} on {}: {}\n", r->migration, r->target, r->passed ? "PASSED" : "FAILED");
      if (!r->copy_method.empty()) {
        int64_t rows = 0;
        for (const auto& t : r->copied_tables) rows += t.rows;
        fmt::print("  copy: {} in {:.2f} s{}\n", r->copy_method, r->copy_seconds,
                   r->copied_tables.empty() ? "" : fmt::format(", {} tables, {} rows", r->copied_tables.size(), rows));
        for (const auto& c : r->dropped_constraints) fmt::print("  left out of the sampled copy: foreign key {}\n", c);
      }
      if (r->rollback_seconds >= 0) fmt::print("  rollback took {:.2f} s\n", r->rollback_seconds);
      fmt::print("  synthetic writer: {} writes, {} errors, slowest {:.1f} ms{}\n", r->writer_writes, r->writer_errors,
                 r->writer_max_wait_ms, r->writer_first_error.empty() ? "" : " (first error: " + r->writer_first_error + ")");
      if (!r->kept_copy.empty()) fmt::print("  the copy is kept: {}\n", r->kept_copy);
    }
    // Interrupted (SIGINT/SIGTERM): recorded as failed, the copy dropped.
    return r->passed ? 0 : g_cancel.load() ? 130 : 3;
  }
  if (estimate->parsed()) {
    auto r = m.Estimate(plan_path, estimate_opts);
    if (!r.ok()) return Fail(r.status());
    fmt::print("{}", json ? r->json + "\n" : sluice::handoff::EstimateMarkdown(*r));
    return 0;
  }
  if (version_sql->parsed()) {
    auto r = m.VersionSetupSql(version);
    if (!r.ok()) return Fail(r.status());
    fmt::print("{}", *r);
    return 0;
  }
  return 2;
}
