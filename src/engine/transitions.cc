// Switch, complete and rollback: the transitions after start, each through
// the one door in phase.h.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/history.h"
#include "engine/phase.h"
#include "engine/record.h"
#include "engine/schema_json.h"
#include "engine/tripwire.h"
#include "hooks/hooks.h"

namespace sluice::engine {

namespace {
// Wraps `steps` (which contract or roll back `l`'s tables) so the read paths
// of other in-flight migrations, which show those tables unchanged, do not
// pin the columns being dropped: their views go first and come back after.
Result<std::vector<db::Step>> AroundOtherVersions(StateStore& store, const db::Dialect& d, const Loaded& l,
                                                  std::vector<db::Step> steps) {
  std::vector<std::string> tables = l.rec.tables;
  for (const auto& m : l.compiled.version.tables) {
    tables.push_back(m.logical);
    tables.push_back(m.physical);
  }
  std::sort(tables.begin(), tables.end());
  tables.erase(std::unique(tables.begin(), tables.end()), tables.end());
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::vector<db::Step> before, after;
  for (const auto& m : all) {
    if (m.name == l.rec.name || !m.in_flight() || m.phase == kRollingBack) continue;
    SLUICE_ASSIGN_OR_RETURN(Loaded other, LoadMigration(store, d, m.name));
    before.push_back({db::RefreshVersionViewsStep{other.compiled.version, tables, true}, "unpin " + m.version});
    after.push_back({db::RefreshVersionViewsStep{other.compiled.version, tables, false}, "refresh " + m.version});
  }
  before.insert(before.end(), steps.begin(), steps.end());
  before.insert(before.end(), after.begin(), after.end());
  return before;
}
// Wraps a rollback's `steps` so that the views sluice itself made in the live
// alias and in other in-flight versions for tables a `sql` operation of this
// migration created (FillUnknownTables shows every table of the schema) do
// not pin them when its `down` drops them: every such view of a table that
// did not exist before start goes first and comes back if its table remains.
Result<std::vector<db::Step>> UnpinCreatedTables(StateStore& store, const db::Dialect& d, const Loaded& l,
                                                 std::vector<db::Step> steps) {
  if (!d.versioned_namespaces()) return steps;
  std::vector<std::string> keep;
  if (!l.rec.schema_before.empty()) {
    SLUICE_ASSIGN_OR_RETURN(db::Schema before, SchemaFromJson(l.rec.schema_before));
    for (const auto& [name, t] : before.tables) keep.push_back(name);
  }
  std::vector<std::string> versions;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  for (const auto& m : all) {
    if (m.name == l.rec.name || !m.in_flight()) continue;
    SLUICE_ASSIGN_OR_RETURN(Loaded other, LoadMigration(store, d, m.name));
    for (const auto& t : other.compiled.version.tables) {
      keep.push_back(t.logical);
      keep.push_back(t.physical);
    }
    versions.push_back(m.version);
  }
  std::vector<db::Step> out;
  out.push_back({db::UnpinViewsStep{versions, keep, false}, "rollback: unpin created tables"});
  out.insert(out.end(), steps.begin(), steps.end());
  out.push_back({db::UnpinViewsStep{versions, keep, true}, "rollback: unpin created tables"});
  return out;
}
// Later phases replay what start recorded. A migration started by a sluice
// that kept no recording (0.1) cannot be replayed faithfully: this sluice
// would render its steps differently (e.g. its triggers' names).
Status RequireRecording(const Loaded& l, const char* verb) {
  if (l.recorded) return Status::Ok();
  return FailedPrecondition("migration '" + l.rec.name + "' was started by an older sluice that kept no recording "
                            "of its steps, so this sluice (" + SluiceVersion() + ") will not " + verb +
                            " it: finish or roll it back with the sluice that started it");
}

// gh-ost's cut-over hooks: on-before-switch / on-before-complete run after
// the gate passed and before anything changes; a non-zero exit postpones
// the transition (kFailedPrecondition, recorded as hook.vetoed).
Status BeforeHook(const char* hook, const std::string& name) {
  hooks::Dispatcher* d = hooks::Dispatcher::Current();
  return d ? d->Before(hook, name) : Status::Ok();
}

}  // namespace

Result<std::vector<db::Step>> CompleteSteps(StateStore& store, const db::Dialect& d, const Loaded& l,
                                            std::vector<std::string>* retired) {
  // Versions of earlier completed migrations retire now: their views may
  // read columns this complete drops.
  std::vector<db::Step> steps;
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  for (const auto& m : all) {
    if (m.phase != kComplete || m.version_retired || m.name == l.rec.name) continue;
    SLUICE_ASSIGN_OR_RETURN(Loaded old, LoadMigration(store, d, m.name));
    steps.insert(steps.end(), old.retire.begin(), old.retire.end());
    if (retired) retired->push_back(m.name);
  }
  // complete performs the read switch itself when it has not happened.
  if (l.rec.live != "new") steps.insert(steps.end(), l.switch_to_new.begin(), l.switch_to_new.end());
  steps.insert(steps.end(), l.compiled.complete.begin(), l.compiled.complete.end());
  return AroundOtherVersions(store, d, l, std::move(steps));
}

Result<std::vector<db::Step>> RollbackSteps(StateStore& store, const db::Dialect& d, const Loaded& l) {
  // The live alias switches back first: it shows every table, so the
  // unpinning comes after it.
  std::vector<db::Step> steps;
  SLUICE_ASSIGN_OR_RETURN(steps, UnpinCreatedTables(store, d, l, l.compiled.rollback));
  if (l.rec.live == "new") steps.insert(steps.begin(), l.switch_back.begin(), l.switch_back.end());
  return AroundOtherVersions(store, d, l, std::move(steps));
}

Status Engine::Switch(const std::string& migration, bool back, const TransitionOptions& options) {
  const int64_t began = clock()->NowMicros();  // the event records how long the phase took
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "switch"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can switch");
  }
  SLUICE_RETURN_IF_ERROR(RequireRecording(l, "switch"));
  // Not even with --force: live readers would see the new version before
  // its backfill, i.e. empty columns where up(old row) belongs.
  if (!back && (l.rec.backfill == "pending" || l.rec.backfill == "running")) {
    return FailedPrecondition("cannot switch reads to it: " + NotReadyMessage(store, l));
  }
  std::string baseline;
  if (!back) {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateSwitch(in), options, options_.actor));
    SLUICE_RETURN_IF_ERROR(BeforeHook("on-before-switch", name));
    // The abort criteria compare against the probe as it was before.
    if (l.plan.abort.present) baseline = MeasureProbe([this] { return Connect(); }, l, 20, clock()).ToJson();
  }
  const std::string target = back ? l.rec.previous_version : l.rec.version;
  PhaseRun run;
  run.migration = name;
  run.phase = back ? "switch_back" : "switch";
  run.steps = back ? l.switch_back : l.switch_to_new;
  run.tables = l.rec.tables;
  run.from = {kActive};
  run.record = [&](bool finished) -> Status {
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", back ? "old" : "new"));
    // Switching is repeatable: forget this marker so the next switch runs.
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, run.phase));
    return store.AddEvent(name, back ? "switch.back" : "switch", options_.actor,
                          back ? "reads switched back to the previous version"
                               : "reads switched to version '" + target + "'",
                          fmt::format("{{\"seconds\": {:.3f}{}}}", SecondsSince(clock(), began),
                                      baseline.empty() ? "" : ", \"baseline\": " + baseline));
  };
  SLUICE_RETURN_IF_ERROR(Transition(*conn, store, options_, run));
  // The contract audit's window opens now.
  if (!back && conn->dialect().versioned_namespaces()) OpenAuditWindow(*conn, store, l, options_.actor);
  return Status::Ok();
}

Status Engine::Complete(const std::string& migration, const TransitionOptions& options) {
  const int64_t began = clock()->NowMicros();  // the event records how long the phase took
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "complete"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  // An interrupted `audit --brownout` is restored before anything else.
  SLUICE_RETURN_IF_ERROR(RestoreBrownout(*conn, store, name, options_.actor).status());
  if (l.rec.phase == kComplete) {  // rerun converges
    DisarmTripwires(*conn, store, name, options_.actor);
    return Status::Ok();
  }
  if (l.rec.phase != kActive && l.rec.phase != kCompleting) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase + "; only an active migration can complete");
  }
  SLUICE_RETURN_IF_ERROR(RequireRecording(l, "complete"));
  if (l.rec.backfill == "pending" || l.rec.backfill == "running") {
    return FailedPrecondition("the backfill of '" + name + "' has not finished; run `sluice backfill " + name +
                              "` first (complete would drop the old columns it still reads)");
  }
  if (l.rec.phase == kActive) {
    SLUICE_ASSIGN_OR_RETURN(gates::Inputs in, GateInputs(store, l));
    // complete performs the switch itself when it has not happened, so the
    // switch gate stands before it too.
    if (l.rec.live != "new") {
      SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateSwitch(in), options, options_.actor));
    }
    SLUICE_RETURN_IF_ERROR(PassGate(store, name, gates::EvaluateComplete(in), options, options_.actor));
  }
  std::vector<std::string> retired;
  SLUICE_ASSIGN_OR_RETURN(std::vector<db::Step> steps, CompleteSteps(store, conn->dialect(), l, &retired));
  SLUICE_RETURN_IF_ERROR(BeforeHook("on-before-complete", name));
  PhaseRun run;
  run.migration = name;
  run.phase = "complete";
  run.steps = steps;
  run.tables = l.rec.tables;
  run.from = {kActive, kCompleting};
  run.before = [&](const std::optional<MigrationRecord>& current) -> Status {
    // Re-checked under the record's lock: a backfill or a rollback may
    // have moved on since the first look.
    if (current->backfill == "pending" || current->backfill == "running") {
      return FailedPrecondition("the backfill of '" + name + "' has not finished; nothing was changed");
    }
    return Status::Ok();
  };
  run.record = [&](bool finished) -> Status {
    for (const auto& r : retired) SLUICE_RETURN_IF_ERROR(store.SetField(r, "version_retired", "1"));
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", "new"));
    SLUICE_ASSIGN_OR_RETURN(auto now, store.Get(name));
    const std::string from = now ? now->phase : kActive;
    if (!finished) return from == kCompleting ? Status::Ok() : MovePhase(store, name, from, kCompleting);
    SLUICE_RETURN_IF_ERROR(MovePhase(store, name, from, kComplete));
    SLUICE_RETURN_IF_ERROR(store.ReleaseClaims(name));
    SLUICE_RETURN_IF_ERROR(
        store.AddEvent(name, "complete", options_.actor, "contracted: version " + l.rec.version + " is final",
                       fmt::format("{{\"seconds\": {:.3f}}}", SecondsSince(clock(), began))));
    // The evidence, archived with the phase change (history.h).
    return ArchiveReport(store, conn->dialect(), name);
  };
  SLUICE_RETURN_IF_ERROR(Transition(*conn, store, options_, run));
  DisarmTripwires(*conn, store, name, options_.actor);
  return Status::Ok();
}

Status Engine::Rollback(const std::string& migration, bool force) {
  const int64_t began = clock()->NowMicros();  // the event records how long the phase took
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "roll back"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  SLUICE_RETURN_IF_ERROR(RestoreBrownout(*conn, store, name, options_.actor).status());
  if (l.rec.phase == kRolledBack) {
    DisarmTripwires(*conn, store, name, options_.actor);
    return Status::Ok();
  }
  if (l.rec.phase == kComplete || l.rec.phase == kCompleting) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; its old columns are gone, so it cannot be rolled back (write a new migration "
                              "instead)");
  }
  SLUICE_RETURN_IF_ERROR(RequireRecording(l, "roll back"));
  if (l.compiled.irreversible && !force) {
    std::string ops;
    for (const auto& op : l.compiled.irreversible_ops) ops += "\n  " + op;
    return FailedPrecondition("migration '" + name + "' cannot be rolled back exactly: its `sql` operations without "
                              "`down` cannot be undone:" + ops +
                              "\nNothing was changed. Undo their effects by hand and run `sluice rollback --force " +
                              name + "` (which rolls back everything else and leaves that SQL's effects in place), "
                              "or go forward with `sluice complete " + name + "`");
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<db::Step> steps, RollbackSteps(store, conn->dialect(), l));
  PhaseRun run;
  run.migration = name;
  run.phase = "rollback";
  run.steps = steps;
  run.tables = l.rec.tables;
  run.from = {kStarting, kActive, kRollingBack};
  run.record = [&](bool finished) -> Status {
    SLUICE_RETURN_IF_ERROR(store.SetField(name, "live", "old"));
    SLUICE_ASSIGN_OR_RETURN(auto now, store.Get(name));
    const std::string from = now ? now->phase : kActive;
    if (!finished) return from == kRollingBack ? Status::Ok() : MovePhase(store, name, from, kRollingBack);
    SLUICE_RETURN_IF_ERROR(MovePhase(store, name, from, kRolledBack));
    SLUICE_RETURN_IF_ERROR(store.ReleaseClaims(name));
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, "rollback"));
    // A later `start` of the same migration must run its steps again, not
    // find them marked done by the start this rollback undid.
    SLUICE_RETURN_IF_ERROR(store.ClearStep(name, "start"));
    SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "rollback", options_.actor, "rolled back to the state before start",
                                          fmt::format("{{\"seconds\": {:.3f}}}", SecondsSince(clock(), began))));
    return ArchiveReport(store, conn->dialect(), name);
  };
  SLUICE_RETURN_IF_ERROR(Transition(*conn, store, options_, run));
  DisarmTripwires(*conn, store, name, options_.actor);
  return Status::Ok();
}

}  // namespace sluice::engine
