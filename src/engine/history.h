// A migration's recorded history, read from the state tables for the
// handoff documents (src/handoff: `sluice report`, `sluice runbook`), and
// the archive of its report that complete and rollback keep.
#pragma once

#include <string>

#include "db/adapter.h"
#include "engine/engine.h"
#include "engine/state.h"
#include "sluice/sluice.h"

namespace sluice::engine {

// Everything the state tables hold about migration `name` (kNotFound when
// there is none). Reads only; works inside a transition's transaction.
Result<MigrationHistory> BuildHistory(StateStore& store, const db::Dialect& d, const std::string& name);

// The record's own fields of MigrationInfo (what `status` lists and the
// report heads with); counters and progress are the caller's.
MigrationInfo BasicInfo(const MigrationRecord& m);

// The statements of `steps` as `sluice plan` prints them (with the notes of
// guards, direct schema edits and statements outside a transaction).
PhaseSql RenderPhase(const db::Dialect& d, const std::string& phase, const std::vector<db::Step>& steps);

// The backfill's per-chunk statement, as `sluice plan` describes it (shared
// by the plan preview and the handoff documents).
PhaseSql BackfillPhase(const db::Dialect& d, const CompiledMigration& c);

// The statements of `steps` as `sluice plan` prints them, each with its
// lock (PhaseSql::locks, LockText of Dialect::LockOf).
PhaseSql RenderPhase(const db::Dialect& d, const std::string& phase, const std::vector<db::Step>& steps);

// start.cc: adds the live alias's creation to start (and its removal to
// rollback) when the database has versioned namespaces and no alias yet.
void AddLiveAlias(const db::Schema& schema, const db::Dialect& d, CompiledMigration* c);

// start.cc: `p` compiled against `schema` as start would run it, for the
// read-only views of a plan (`sluice plan`, `sluice estimate`): with the
// live alias, and the backfill's setup as start would decide it when this
// role may keep the tables' own triggers from firing.
Result<CompiledMigration> CompileAsStartWould(const plan::Plan& p, const db::Schema& schema, const db::Dialect& d,
                                              const std::string& previous_version);

// --- estimates (estimate.cc) ----------------------------------------------------

// "MODE on OBJECT" (or "MODE").
std::string LockText(const db::LockInfo& l);
// The lock one chunk of `t`'s backfill takes.
db::LockInfo BackfillChunkLock(const db::Dialect& d, const db::BackfillTask& t);
// An estimate as `sluice estimate --json` prints it and `start --estimate`
// records it, read back.
Result<EstimateResult> EstimateFromJson(const std::string& text);
// The recorded estimate of migration `name` (nullopt: none, or state made
// by a sluice without the `estimates` table).
Result<std::optional<EstimateResult>> ReadEstimate(db::Connection& conn, const std::string& name);
// MigrationInfo's estimate_backfill_* (from ReadEstimate) and
// actual_backfill_seconds (the `chunks` table: first chunk's start to last
// chunk's commit).
Status FillEstimateVsActual(db::Connection& conn, const std::string& name, MigrationInfo* info);

PlanRequirements RequirementsOf(const plan::Plan& p, const CompiledMigration& c);

// Inside complete's and rollback's transaction, after their event: renders
// the report (JSON) of `name` from its history and stores it in the
// `reports` state table (one row per migration, replaced), so the evidence
// outlives the migration's working data. Creates that table when the state
// was made by a sluice without it.
Status ArchiveReport(StateStore& store, const db::Dialect& d, const std::string& name);

// Creates state table `base` alone (with the state schema when
// `with_schema`: PostgreSQL's CREATE SCHEMA IF NOT EXISTS), for tables
// written outside `start`: state made by an older sluice lacks them.
Status EnsureStateTable(db::Connection& conn, const std::string& base, bool with_schema);

// --- rehearsals (rehearse.cc) ---------------------------------------------------

std::string RehearsalToJson(const RehearsalInfo& r);
// The rehearsals of `migration` recorded in the `rehearsals` state table,
// oldest first (none when the table does not exist).
Result<std::vector<RehearsalInfo>> ReadRehearsals(db::Connection& conn, const std::string& migration);

}  // namespace sluice::engine
