#include "cli/fleet.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>

#include "cli/conventions.h"
#include "fleet/inventory.h"
#include "fleet/runner.h"
#include "handoff/handoff.h"

namespace sluice::cli {

struct FleetCommands::Impl {
  CLI::App* fleet = nullptr;
  CLI::App* apply = nullptr;
  CLI::App* status = nullptr;
  CLI::App* rollback = nullptr;
  CLI::App* report = nullptr;
  std::string plan, inventory, ledger, migration;
  bool json = false, html = false;
};

Result<std::function<Result<serve::FleetView>()>> ServeFleetView(const std::string& inventory,
                                                                  const std::string& ledger, const Options& options) {
  auto inv = fleet::LoadInventory(inventory);
  if (!inv.ok()) return inv.status();
  fleet::RunOptions ro;
  ro.ledger_url = ledger;
  ro.db_options = options;
  std::function<Result<serve::FleetView>()> view = [inv = *inv, ro]() -> Result<serve::FleetView> {
    auto st = fleet::ReadStatus(inv, ro);
    if (!st.ok()) return st.status();
    return serve::FleetView{fleet::StatusJson(*st), fleet::StatusHtml(*st)};
  };
  return view;
}

FleetCommands::FleetCommands(CLI::App& app) : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.fleet = app.add_subcommand("fleet", "roll one plan out over many databases in gated waves (docs/fleets.md)");
  i.fleet->require_subcommand(1);
  // The options belong to `fleet` and are accepted after any of its verbs
  // (fallthrough), so `sluice fleet --help` lists them all.
  i.fleet->fallthrough();
  i.fleet->add_option("--inventory", i.inventory,
                      "inventory file (YAML: databases, waves, parallel, soak, on_failure)")
      ->required();
  i.fleet->add_option("--ledger", i.ledger,
                      "the fleet's ledger: sqlite:PATH or a PostgreSQL URL (default: sqlite:fleet.db next to the "
                      "inventory)");
  i.fleet->add_flag("--json", i.json, "status: print machine-readable JSON");
  i.apply = i.fleet->add_subcommand("apply", "run or resume the rollout: per wave start, backfill, verify, switch, "
                                             "soak; complete only once every database has switched and soaked");
  i.apply->add_option("PLAN", i.plan, "plan file (the migration is named after it)")->required();
  i.status = i.fleet->add_subcommand("status", "per database phase, backfill progress and last error; per wave "
                                               "its state; the ledger's decisions");
  i.status->add_option("PLAN", i.plan, "plan file (default: the ledger's latest fleet run)");
  i.rollback = i.fleet->add_subcommand("rollback", "roll back every database whose migration is not completed");
  i.rollback->add_option("PLAN", i.plan, "plan file")->required();
  i.report = i.fleet->add_subcommand("report", "the master handoff document (Markdown): per wave its decisions, per "
                                               "database its evidence, the timeline");
  i.report->add_option("PLAN", i.plan, "plan file (default: the ledger's latest fleet run)");
  i.report->add_flag("--html", i.html, "print a standalone HTML page");
}

FleetCommands::~FleetCommands() = default;

bool FleetCommands::parsed() const { return impl_->fleet->parsed(); }

int FleetCommands::Run(const Options& options, const std::atomic<bool>* cancel,
                       const std::function<int(const Status&)>& fail) {
  Impl& i = *impl_;
  auto inv = fleet::LoadInventory(i.inventory);
  if (!inv.ok()) return fail(inv.status());
  fleet::RunOptions ro;
  ro.plan_path = i.plan;
  ro.ledger_url = i.ledger;
  ro.db_options = options;
  ro.cancel = cancel;
  ro.on_line = [](const std::string& line) {
    fmt::print("{}\n", line);
    std::fflush(stdout);
  };
  if (i.apply->parsed()) {
    auto r = fleet::Apply(*inv, ro);
    if (!r.ok()) return fail(r.status());
    fmt::print("fleet: every database of {} completed\n", i.inventory);
    return 0;
  }
  if (i.rollback->parsed()) {
    Status s = fleet::RollbackFleet(*inv, ro);
    if (!s.ok()) return fail(s);
    fmt::print("fleet: every database not completed is rolled back\n");
    return 0;
  }
  ro.on_line = nullptr;
  auto st = fleet::ReadStatus(*inv, ro);
  if (!st.ok()) return fail(st.status());
  if (i.report->parsed()) {
    const std::string md = fleet::ReportMarkdown(*st);
    fmt::print("{}", i.html ? handoff::MarkdownToHtml(md, "Fleet report: " + st->migration) : md);
  } else {
    fmt::print("{}", i.json ? fleet::StatusJson(*st) + "\n" : fleet::StatusText(*st));
  }
  return 0;
}

}  // namespace sluice::cli
