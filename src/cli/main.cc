// The sluice command. Argument parsing and output only: every action goes
// through the public API in include/sluice/sluice.h.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cli/demo.h"
#include "cli/output.h"
#include "sluice/sluice.h"

namespace {

std::atomic<bool> g_cancel{false};

void OnSigint(int) {
  if (g_cancel.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
}

// Prints a failed status: the first line is the one-line reason.
int Fail(const sluice::Status& s) {
  fmt::print(stderr, "sluice: error: {}\n", s.message());
  if (!s.detail().empty()) fmt::print(stderr, "sluice: detail: {}\n", s.detail());
  switch (s.code()) {
    case sluice::StatusCode::kInvalidArgument: return 2;
    case sluice::StatusCode::kCancelled: return 130;
    default: return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: change a live database's schema and data with no downtime, a rollback at every step,\n"
               "and proof that nothing was lost. See docs/cli.md."};
  app.require_subcommand(1);
  app.fallthrough();
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
  bool json = false;

  std::string plan_path, migration, dir;
  bool start_backfill = false, back = false;
  sluice::BackfillOptions bopts;
  int64_t chunk_ms = 0, chunk_rows = 0;
  double rate = 0;

  auto add_json = [&](CLI::App* sub) { sub->add_flag("--json", json, "print machine-readable JSON"); };
  auto add_backfill_opts = [&](CLI::App* sub) {
    sub->add_option("--chunk-ms", chunk_ms, "target duration of one chunk in ms (default: plan, else 250)");
    sub->add_option("--chunk-rows", chunk_rows, "first chunk's row count (default: plan, else 1000)");
    sub->add_option("--rate", rate, "maximum rows per second (default: unlimited)");
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
  add_backfill_opts(start);
  auto* backfill = app.add_subcommand("backfill", "run or resume the backfill of the active migration(s)");
  backfill->add_option("MIGRATION", migration, "migration name (default: every active one)");
  add_backfill_opts(backfill);
  auto* verify = app.add_subcommand("verify", "run the verification checks; exit 3 if any fails");
  verify->add_option("MIGRATION", migration, "migration name (default: the active one)");
  add_json(verify);
  auto* sw = app.add_subcommand("switch", "move live reads to the new version (or back with --back)");
  sw->add_option("MIGRATION", migration, "migration name (default: the active one)");
  sw->add_flag("--back", back, "move live reads back to the previous version");
  auto* complete = app.add_subcommand("complete", "contract: drop what only the old version needed");
  complete->add_option("MIGRATION", migration, "migration name (default: the active one)");
  auto* rollback = app.add_subcommand("rollback", "return to the state before start (any phase before complete)");
  rollback->add_option("MIGRATION", migration, "migration name (default: the active one)");
  auto* status = app.add_subcommand("status", "migrations, phases, backfill progress, last verification");
  add_json(status);
  auto* migrate = app.add_subcommand("migrate", "apply a directory's unapplied plans in file-name order");
  migrate->add_option("DIR", dir, "directory of plan files")->required();
  add_backfill_opts(migrate);
  auto* version_sql = app.add_subcommand("version-sql", "SQLite: SQL a connection runs to use a version");
  std::string version = "live";
  version_sql->add_option("VERSION", version, "version name or 'live'")->capture_default_str();

  sluice::cli::DemoOptions demo_opts;
  auto* demo = app.add_subcommand("demo", "run a full migration on a demo SQLite database with live writers");
  demo->add_option("--rows", demo_opts.rows, "rows in the demo table")->capture_default_str();
  demo->add_flag("--keep", demo_opts.keep, "keep the demo database afterwards (default: keep)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    fmt::print(stderr, "sluice: error: {}\n", e.what());
    fmt::print(stderr, "sluice: see `sluice {} --help`\n",
               app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name());
    return 2;
  }

  std::signal(SIGINT, OnSigint);
  std::signal(SIGTERM, OnSigint);
  bool tty = isatty(STDOUT_FILENO);
  sluice::cli::ProgressPrinter progress(tty);
  if (chunk_ms > 0) bopts.chunk_target_ms = chunk_ms;
  if (chunk_rows > 0) bopts.chunk_rows = chunk_rows;
  if (rate > 0) bopts.max_rows_per_second = rate;
  bopts.cancel = &g_cancel;
  bopts.on_progress = [&](const sluice::BackfillProgress& p) { progress.Update(p); };

  if (demo->parsed()) {
    demo_opts.db_url = opts.db_url;
    demo_opts.cancel = &g_cancel;
    return sluice::cli::RunDemo(demo_opts);
  }

  auto opened = sluice::Migrator::Open(opts);
  if (!opened.ok()) return Fail(opened.status());
  sluice::Migrator& m = **opened;

  if (lint->parsed()) {
    auto r = m.Lint(plan_path);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{{\"ok\": {}, \"checked_against_database\": {}, \"errors\": {}, \"warnings\": {}}}\n",
                 r->ok ? "true" : "false", r->checked_against_database ? "true" : "false",
                 r->errors.size(), r->warnings.size());
    }
    for (const auto& w : r->warnings) fmt::print(stderr, "{}\n", w);
    for (const auto& e : r->errors) fmt::print(stderr, "{}\n", e);
    if (!r->ok) {
      fmt::print(stderr, "sluice: error: {} has {} error(s)\n", plan_path, r->errors.size());
      return 1;
    }
    if (!json) {
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
    sluice::Status s = m.Start(plan_path);
    if (!s.ok()) return Fail(s);
    fmt::print("started {}\n", plan_path);
    if (start_backfill) {
      auto r = m.Backfill("", bopts);
      progress.Finish();
      if (!r.ok()) return Fail(r.status());
    }
    return 0;
  }
  if (backfill->parsed()) {
    auto r = m.Backfill(migration, bopts);
    progress.Finish();
    if (!r.ok()) return Fail(r.status());
    fmt::print("backfill done: {} rows in {}\n", sluice::cli::FormatCount(r->rows),
               sluice::cli::FormatDuration(r->seconds));
    return 0;
  }
  if (verify->parsed()) {
    auto r = m.Verify(migration);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      fmt::print("{}\n", sluice::cli::VerifyJson(*r));
    } else {
      sluice::cli::PrintVerify(*r);
    }
    if (!r->passed) {
      fmt::print(stderr, "sluice: error: verification of {} failed\n", r->migration);
      return 3;
    }
    return 0;
  }
  if (sw->parsed()) {
    sluice::Status s = m.Switch(migration, back);
    if (!s.ok()) return Fail(s);
    fmt::print("reads switched to the {} version\n", back ? "previous" : "new");
    return 0;
  }
  if (complete->parsed()) {
    sluice::Status s = m.Complete(migration);
    if (!s.ok()) return Fail(s);
    fmt::print("complete\n");
    return 0;
  }
  if (rollback->parsed()) {
    sluice::Status s = m.Rollback(migration);
    if (!s.ok()) return Fail(s);
    fmt::print("rolled back\n");
    return 0;
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
  if (migrate->parsed()) {
    sluice::MigrateOptions mo;
    mo.backfill = bopts;
    mo.on_step = [&](const std::string& step, const std::string& name) {
      progress.Finish();
      fmt::print("{} {}\n", step, name);
    };
    auto r = m.Migrate(dir, mo);
    progress.Finish();
    if (!r.ok()) return Fail(r.status());
    fmt::print("applied {} migration(s)\n", r->size());
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
