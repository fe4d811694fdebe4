// The lifecycle engine behind sluice::Migrator (include/sluice/sluice.h).
//
// Migrator is the API edge: each of its methods forwards to the Engine
// method of the same name and turns anything unexpected (an exception from
// a third-party library, a bug) into a Status, so nothing throws across the
// public API. The Engine does the work, one file per part of the lifecycle:
//
//   start.cc        lint, plan preview, start (expand)
//   backfill_run.cc the backfill verb (src/backfill does the chunks)
//   verify_run.cc   verification and the shadow-read soak
//   gate_run.cc     gate evidence, the scorecard, sign-offs, the abort watch
//   transitions.cc  switch, complete, rollback
//   phase.{h,cc}    the one door every phase transition goes through
//   load.cc         loading a migration's record and its recorded steps
//   migrator.cc     the API edge, status, control, migrate, sessions
//
// Thread-safety: one thread at a time, like Migrator. Engines in different
// processes coordinate through the database (named locks and the phase row).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "engine/compile.h"
#include "engine/state.h"
#include "gates/gates.h"
#include "plan/plan.h"
#include "sluice/sluice.h"
#include "verify/verify.h"

namespace sluice::engine {

class NamedLock;
struct Loaded;

class Engine {
 public:
  Engine(Options options, std::unique_ptr<db::Adapter> adapter)
      : options_(std::move(options)), adapter_(std::move(adapter)) {}

  Result<std::unique_ptr<db::Connection>> Connect();

  Result<LintResult> Lint(const std::string& plan_path);
  Result<PlanPreview> Preview(const std::string& plan_path);
  Status Start(const std::string& plan_path, std::vector<std::string>* warnings = nullptr);
  Result<BaselineInfo> Baseline(const std::string& name);
  Result<BackfillSummary> Backfill(const std::string& migration, const BackfillOptions& options);
  Result<VerifyResult> Verify(const std::string& migration, const VerifyOptions& options);
  Result<WatchResult> WatchShadowReads(const std::string& migration, const WatchOptions& options);
  Status Switch(const std::string& migration, bool back, const TransitionOptions& options);
  Result<std::vector<GateInfo>> Gates(const std::string& migration);
  Status Signoff(const std::string& migration, const std::string& gate, const std::string& name,
                 const std::string& role, const std::string& note);
  Result<AbortWatchResult> Watch(const std::string& migration, const AbortWatchOptions& options);
  Status Complete(const std::string& migration, const TransitionOptions& options);
  Status Rollback(const std::string& migration, bool force);
  Status Pause(const std::string& migration);
  Status Resume(const std::string& migration);
  Status Tune(const std::string& migration, std::optional<double> max_rows_per_second,
              std::optional<int64_t> chunk_target_ms, std::optional<int64_t> workers, bool reset);
  Result<std::vector<MigrationInfo>> List();
  Result<FailuresResult> Failures(const std::string& migration, bool recheck);
  Result<AuditResult> Audit(const std::string& migration, const AuditOptions& options);  // audit_run.cc
  // history.cc: the handoff documents' inputs.
  Result<MigrationHistory> History(const std::string& migration);
  Result<HandoffPlan> Handoff(const std::string& plan_path);
  Result<RehearsalInfo> Rehearse(const std::string& plan_path, const RehearseOptions& options);  // rehearse.cc
  Result<EstimateResult> Estimate(const std::string& plan_path, const EstimateOptions& options);  // estimate.cc
  Status RecordEstimate(const EstimateResult& estimate);
  Result<std::vector<std::string>> Migrate(const std::string& dir, const MigrateOptions& options);
  Result<std::string> VersionSetupSql(const std::string& version);
  Result<std::unique_ptr<Session>> OpenSession(const std::string& version);
  // The command center's reads (events.cc).
  Result<std::vector<EventInfo>> Events(const std::string& migration, int64_t after_id, int64_t limit);
  Result<ChunkHistory> Chunks(const std::string& migration);
  Result<std::optional<VerifyResult>> LastVerification(const std::string& migration);

  const Options& options() const { return options_; }
  // Options::clock, or the real clock.
  Clock* clock() const { return options_.clock ? options_.clock : Clock::Real(); }

 private:
  Status RunBackfill(db::Connection& conn, NamedLock& lock, const Loaded& l, const BackfillOptions& options,
                     int64_t* rows);

  Options options_;
  std::unique_ptr<db::Adapter> adapter_;  // null: no database given
};

// Everything known about one migration: its record, plan and the steps its
// phases run (replayed from its recording; see record.h).
struct Loaded {
  MigrationRecord rec;
  plan::Plan plan;
  CompiledMigration compiled;
  std::vector<db::Step> switch_to_new, switch_back, retire;
  // Makes the version usable once the backfill is done (empty for
  // migrations recorded before versions were guarded).
  std::vector<db::Step> ready;
  bool recorded = false;  // false: recompiled (started by an older sluice)
};

// Reads migration `name` (kNotFound when there is none) with its plan and
// the steps of its phases: from its recording, or recompiled from the
// stored plan text and schema snapshot when it has none.
Result<Loaded> LoadMigration(StateStore& store, const db::Dialect& d, const std::string& name);

// The steps `complete` and `rollback` of `l` run now (transitions.cc):
// its recorded steps with what the moment adds (the read switch if it has
// not happened, earlier versions retiring, other versions' views unpinned).
// `plan` and `lint` show the same for a migration already in flight.
// `retired` (optional) gets the migrations whose versions complete retires.
Result<std::vector<db::Step>> CompleteSteps(StateStore& store, const db::Dialect& d, const Loaded& l,
                                            std::vector<std::string>* retired);
Result<std::vector<db::Step>> RollbackSteps(StateStore& store, const db::Dialect& d, const Loaded& l);

// `name`, or the one in-flight migration when `name` is empty (an error
// naming them when there are several, or none).
Result<std::string> ResolveMigration(StateStore& store, const std::string& name, const char* verb);

// The version the old application uses: the newest completed migration's.
Result<std::string> PreviousVersion(StateStore& store);

// Readiness (status.cc). A version is usable once its migration's backfill
// is done (or needs none). NotReadyMessage says why `l`'s version is not:
// "version V is not ready: the backfill of T is N% done; run `sluice
// backfill M` ...". RequireVersionReady: kFailedPrecondition with that
// message when `version` belongs to an in-flight migration whose backfill
// is pending or running; OK for "", "live" and unknown names.
std::string NotReadyMessage(StateStore& store, const Loaded& l);
Status RequireVersionReady(StateStore& store, const db::Dialect& d, const std::string& version);

// --- gate evidence (gate_run.cc) --------------------------------------------

// Latency and errors of the abort criteria's probe query, run `n` times on
// a session of the live version.
struct ProbeStats {
  int probes = 0;
  int errors = 0;
  double p99_ms = 0;
  std::string first_error;
  std::string ToJson() const;
};
ProbeStats MeasureProbe(const std::function<Result<std::unique_ptr<db::Connection>>()>& connect, const Loaded& l,
                        int n, Clock* clock);
// Row-count parity of every table between the old and the new read path.
Result<gates::Evidence> MeasureParity(db::Connection& conn, const Loaded& l);
// Evidence for the gates, from the state tables.
Result<gates::Inputs> GateInputs(StateStore& store, const Loaded& l);
// The complete gate's audit evidence (audit_run.cc): the latest audit of
// the current observation window, from its recorded `audit` event.
gates::Inputs::Audit AuditEvidence(StateStore& store, const Loaded& l, const std::vector<gates::Event>& events);
// Refuses a transition whose gate failed, with the evidence; --force with a
// reason passes it and records the override loudly.
Status PassGate(StateStore& store, const std::string& name, const gates::GateResult& g,
                const TransitionOptions& options, const std::string& actor);

// --- verification helpers (verify_run.cc) -------------------------------------

// The plan's `verify:` section as verification settings.
verify::Settings VerifySettingsOf(const plan::Plan& p);
// Runs `round(n)` for n = 1, 2, ... every `interval` seconds until `seconds`
// have passed, `cancel` is set, or a round returns false; the first round
// always runs.
Status EveryRound(double seconds, double interval, const std::atomic<bool>* cancel, Clock* clock,
                  const std::function<Result<bool>(int)>& round);

// The actor recorded when Options::actor is empty: $USER@hostname.
std::string DefaultActor();

std::vector<std::string> WarningsToStrings(const std::vector<plan::Diagnostic>& ds);

}  // namespace sluice::engine
