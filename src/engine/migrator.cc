// sluice::Migrator, the public API's edge: every method validates the
// strings it is given (sluice stores them as JSON and text, so they must be
// UTF-8), forwards to the engine (engine.h), and turns anything unexpected
// into a Status. Nothing throws across include/sluice.
#include <algorithm>
#include <cstdlib>
#include <set>
#include <exception>
#include <new>
#include <type_traits>

#include "common/utf8.h"
#include "db/adapter.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "sluice/sluice.h"

namespace sluice {

struct Migrator::Impl {
  std::unique_ptr<engine::Engine> engine;
  // Delivers recorded events to hooks and webhooks (src/hooks); null when
  // neither is configured.
  std::unique_ptr<hooks::Dispatcher> dispatcher;

  // Every call runs with this Migrator's dispatcher as the thread's current
  // one (StateStore::AddEvent hands it each event), and delivers the events
  // whose transactions committed when the call returns.
  template <typename Fn>
  auto Run(const char* verb, Fn&& fn) -> decltype(fn());
};

namespace {

// kInvalidArgument naming the first argument that is not valid UTF-8.
Status CheckUtf8(std::initializer_list<std::pair<const char*, const std::string*>> args) {
  for (const auto& [what, value] : args) {
    std::string problem = Utf8Problem(what, *value);
    if (!problem.empty()) return InvalidArgument(problem);
  }
  return Status::Ok();
}

// Runs `fn`, turning an escaped exception into kInternal. Whatever state a
// call leaves behind is the state its own error paths leave: each phase
// runs in transactions that a thrown exception never commits.
template <typename Fn>
auto Guarded(const char* verb, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, std::string(verb) + ": out of memory");
  } catch (const std::exception& e) {
    return Internal(std::string(verb) + ": unexpected error (a bug in sluice, please report it): " +
                    SanitizeUtf8(e.what()));
  } catch (...) {
    return Internal(std::string(verb) + ": unexpected error (a bug in sluice, please report it)");
  }
}

// The dispatcher's view of the engine: record its own events (hook runs),
// confirm which events committed, read a migration's phase. Each opens its
// own connection: the caller's may be inside a transaction.
hooks::Backend DispatcherBackend(engine::Engine* e) {
  hooks::Backend b;
  b.record = [e](const std::string& migration, const std::string& kind, const std::string& message,
                 const std::string& details) {
    auto conn = e->Connect();
    if (!conn.ok()) return;
    engine::StateStore store(**conn, e->clock());
    store.AddEvent(migration, kind, e->options().actor, message, details).IgnoreError();
  };
  b.committed = [e](const std::vector<int64_t>& ids) {
    std::set<int64_t> out;
    auto conn = e->Connect();
    if (!conn.ok() || ids.empty()) return out;
    const int64_t low = *std::min_element(ids.begin(), ids.end());
    engine::StateStore store(**conn, e->clock());
    auto events = store.EventsAfter("", low - 1, 100000);
    if (!events.ok()) return out;
    std::set<int64_t> wanted(ids.begin(), ids.end());
    for (const auto& ev : *events) {
      if (wanted.count(ev.id)) out.insert(ev.id);
    }
    return out;
  };
  b.phase_of = [e](const std::string& migration) -> std::string {
    auto conn = e->Connect();
    if (!conn.ok()) return "";
    engine::StateStore store(**conn, e->clock());
    auto rec = store.Get(migration);
    return rec.ok() && *rec ? (*rec)->phase : "";
  };
  return b;
}

}  // namespace

template <typename Fn>
auto Migrator::Impl::Run(const char* verb, Fn&& fn) -> decltype(fn()) {
  hooks::Dispatcher::Scope scope(dispatcher.get());
  auto result = Guarded(verb, std::forward<Fn>(fn));
  if (dispatcher) Guarded(verb, [&]() -> Status { dispatcher->Flush(); return Status::Ok(); }).IgnoreError();
  return result;
}

Result<std::unique_ptr<Migrator>> Migrator::Open(const Options& options) {
  return Guarded("open", [&]() -> Result<std::unique_ptr<Migrator>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"--db", &options.db_url},
                                      {"--schema", &options.schema},
                                      {"--state-schema", &options.state_schema},
                                      {"the actor", &options.actor}}));
    std::unique_ptr<Migrator> m(new Migrator());
    m->options_ = options;
    if (m->options_.actor.empty()) m->options_.actor = SanitizeUtf8(engine::DefaultActor());
    std::unique_ptr<db::Adapter> adapter;
    if (!options.db_url.empty() || std::getenv("PGHOST") || std::getenv("PGDATABASE")) {
      db::OpenOptions oo;
      oo.state_schema = options.state_schema;
      oo.schema = options.schema;
      oo.create = options.create_database;
      SLUICE_ASSIGN_OR_RETURN(adapter, db::OpenAdapter(options.db_url, oo));
    }
    m->impl_ = std::make_unique<Impl>();
    m->impl_->engine = std::make_unique<engine::Engine>(m->options_, std::move(adapter));
    if (!options.hooks_dir.empty() || !options.webhooks.empty()) {
      m->impl_->dispatcher =
          std::make_unique<hooks::Dispatcher>(m->options_, DispatcherBackend(m->impl_->engine.get()));
    }
    return m;
  });
}

Migrator::~Migrator() = default;

Result<LintResult> Migrator::Lint(const std::string& plan_path) {
  return impl_->Run("lint", [&]() -> Result<LintResult> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}}));
    return impl_->engine->Lint(plan_path);
  });
}

Result<PlanPreview> Migrator::Preview(const std::string& plan_path) {
  return impl_->Run("plan", [&]() -> Result<PlanPreview> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}}));
    return impl_->engine->Preview(plan_path);
  });
}

Status Migrator::Start(const std::string& plan_path) { return Start(plan_path, nullptr); }

Status Migrator::Start(const std::string& plan_path, std::vector<std::string>* warnings) {
  return impl_->Run("start", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}}));
    return impl_->engine->Start(plan_path, warnings);
  });
}

Result<BaselineInfo> Migrator::Baseline(const std::string& name) {
  return impl_->Run("baseline", [&]() -> Result<BaselineInfo> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"--name", &name}}));
    return impl_->engine->Baseline(name);
  });
}

Result<BackfillSummary> Migrator::Backfill(const std::string& migration, const BackfillOptions& options) {
  return impl_->Run("backfill", [&]() -> Result<BackfillSummary> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}, {"--replica", &options.replica_url}}));
    if (!impl_->dispatcher) return impl_->engine->Backfill(migration, options);
    BackfillOptions with_progress = options;
    with_progress.on_progress = [&](const BackfillProgress& p) {
      if (options.on_progress) options.on_progress(p);
      impl_->dispatcher->Progress(p);
    };
    return impl_->engine->Backfill(migration, with_progress);
  });
}

Result<VerifyResult> Migrator::Verify(const std::string& migration) { return Verify(migration, VerifyOptions{}); }

Result<VerifyResult> Migrator::Verify(const std::string& migration, const VerifyOptions& options) {
  return impl_->Run("verify", [&]() -> Result<VerifyResult> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Verify(migration, options);
  });
}

Result<WatchResult> Migrator::WatchShadowReads(const std::string& migration, const WatchOptions& options) {
  return impl_->Run("verify --watch", [&]() -> Result<WatchResult> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->WatchShadowReads(migration, options);
  });
}

Status Migrator::Switch(const std::string& migration, bool back) { return Switch(migration, back, {}); }

Status Migrator::Switch(const std::string& migration, bool back, const TransitionOptions& options) {
  return impl_->Run("switch", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}, {"--reason", &options.reason}}));
    return impl_->engine->Switch(migration, back, options);
  });
}

Result<std::vector<GateInfo>> Migrator::Gates(const std::string& migration) {
  return impl_->Run("gates", [&]() -> Result<std::vector<GateInfo>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Gates(migration);
  });
}

Status Migrator::Signoff(const std::string& migration, const std::string& gate, const std::string& name,
                         const std::string& role, const std::string& note) {
  return impl_->Run("signoff", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration},
                                      {"the gate", &gate},
                                      {"--as", &name},
                                      {"--role", &role},
                                      {"--note", &note}}));
    return impl_->engine->Signoff(migration, gate, name, role, note);
  });
}

Result<AbortWatchResult> Migrator::Watch(const std::string& migration, const AbortWatchOptions& options) {
  return impl_->Run("watch", [&]() -> Result<AbortWatchResult> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Watch(migration, options);
  });
}

Status Migrator::Complete(const std::string& migration) { return Complete(migration, {}); }

Status Migrator::Complete(const std::string& migration, const TransitionOptions& options) {
  return impl_->Run("complete", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}, {"--reason", &options.reason}}));
    return impl_->engine->Complete(migration, options);
  });
}

Status Migrator::Rollback(const std::string& migration, bool force) {
  return impl_->Run("rollback", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Rollback(migration, force);
  });
}

Status Migrator::Pause(const std::string& migration) {
  return impl_->Run("pause", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Pause(migration);
  });
}

Status Migrator::Resume(const std::string& migration) {
  return impl_->Run("resume", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Resume(migration);
  });
}

Status Migrator::Tune(const std::string& migration, std::optional<double> max_rows_per_second,
                      std::optional<int64_t> chunk_target_ms, std::optional<int64_t> workers, bool reset) {
  return impl_->Run("tune", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Tune(migration, max_rows_per_second, chunk_target_ms, workers, reset);
  });
}

Result<FailuresResult> Migrator::Failures(const std::string& migration, bool recheck) {
  return Guarded("failures", [&]() -> Result<FailuresResult> { return impl_->engine->Failures(migration, recheck); });
}

Result<AuditResult> Migrator::Audit(const std::string& migration, const AuditOptions& options) {
  return impl_->Run("audit", [&]() -> Result<AuditResult> { return impl_->engine->Audit(migration, options); });
}

Result<std::vector<MigrationInfo>> Migrator::List() {
  return impl_->Run("status", [&]() -> Result<std::vector<MigrationInfo>> { return impl_->engine->List(); });
}

Result<MigrationHistory> Migrator::History(const std::string& migration) {
  return Guarded("report", [&]() -> Result<MigrationHistory> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->History(migration);
  });
}

Result<HandoffPlan> Migrator::Handoff(const std::string& plan_path) {
  return Guarded("runbook", [&]() -> Result<HandoffPlan> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}}));
    return impl_->engine->Handoff(plan_path);
  });
}

Result<RehearsalInfo> Migrator::Rehearse(const std::string& plan_path, const RehearseOptions& options) {
  return Guarded("rehearse", [&]() -> Result<RehearsalInfo> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}, {"--target", &options.target_url}}));
    return impl_->engine->Rehearse(plan_path, options);
  });
}

Result<EstimateResult> Migrator::Estimate(const std::string& plan_path, const EstimateOptions& options) {
  return Guarded("estimate", [&]() -> Result<EstimateResult> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan file name", &plan_path}}));
    return impl_->engine->Estimate(plan_path, options);
  });
}

Status Migrator::RecordEstimate(const EstimateResult& estimate) {
  return Guarded("estimate", [&]() -> Status { return impl_->engine->RecordEstimate(estimate); });
}

Result<std::vector<std::string>> Migrator::Migrate(const std::string& dir, const MigrateOptions& options) {
  return impl_->Run("migrate", [&]() -> Result<std::vector<std::string>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the plan folder name", &dir}}));
    if (!impl_->dispatcher) return impl_->engine->Migrate(dir, options);
    MigrateOptions with_progress = options;
    with_progress.backfill.on_progress = [&](const BackfillProgress& p) {
      if (options.backfill.on_progress) options.backfill.on_progress(p);
      impl_->dispatcher->Progress(p);
    };
    return impl_->engine->Migrate(dir, with_progress);
  });
}

Result<std::string> Migrator::VersionSetupSql(const std::string& version) {
  return impl_->Run("version-sql", [&]() -> Result<std::string> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the version name", &version}}));
    return impl_->engine->VersionSetupSql(version);
  });
}

Result<std::unique_ptr<Session>> Migrator::Connect(const std::string& version) {
  return impl_->Run("connect", [&]() -> Result<std::unique_ptr<Session>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the version name", &version}}));
    return impl_->engine->OpenSession(version);
  });
}

Result<std::vector<EventInfo>> Migrator::Events(const std::string& migration, int64_t after_id, int64_t limit) {
  return impl_->Run("events", [&]() -> Result<std::vector<EventInfo>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Events(migration, after_id, limit);
  });
}

Result<ChunkHistory> Migrator::Chunks(const std::string& migration) {
  return impl_->Run("chunks", [&]() -> Result<ChunkHistory> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->Chunks(migration);
  });
}

Result<std::optional<VerifyResult>> Migrator::LastVerification(const std::string& migration) {
  return impl_->Run("verification", [&]() -> Result<std::optional<VerifyResult>> {
    SLUICE_RETURN_IF_ERROR(CheckUtf8({{"the migration name", &migration}}));
    return impl_->engine->LastVerification(migration);
  });
}

}  // namespace sluice
