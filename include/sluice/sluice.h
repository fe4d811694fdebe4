// sluice's public API: everything the `sluice` command does, as a library.
//
// A Migrator is bound to one database (SQLite file or PostgreSQL server). Each
// call opens what it needs, does one lifecycle step and records it in the
// state tables inside that database, so another process (or machine) can
// pick up where this one stopped. Failed calls leave the database either
// unchanged or in a state the same call resumes from; each method says which.
//
// Thread-safety: a Migrator may be used from one thread at a time. Separate
// Migrators (in one process or many) coordinate through the database.
//
//   auto m = sluice::Migrator::Open({.db_url = "sqlite:app.db"});
//   if (!m.ok()) die(m.status());
//   Status s = (*m)->Start("migrations/002_rename.yaml");
//   auto done = (*m)->Backfill("", {});
//   auto report = (*m)->Verify("002_rename");
//   if (report.ok() && report->passed) s = (*m)->Complete("002_rename");
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sluice/status.h"

namespace sluice {

class Clock;  // src/common/clock.h

struct Options {
  // sqlite:PATH, sqlite:///ABS/PATH, postgresql://..., or libpq key=value.
  // Empty: only Lint without a database works.
  std::string db_url;
  // PostgreSQL: the schema whose tables are migrated.
  std::string schema = "public";
  // PostgreSQL: schema for sluice's state tables.
  std::string state_schema = "sluice";
  // PostgreSQL: how long one DDL statement may wait for its lock before it
  // gives up (and is retried), and how long all retries of one phase may
  // take before the command fails, naming the sessions holding the lock.
  int64_t lock_timeout_ms = 500;
  int64_t lock_retry_budget_ms = 60000;
  // Recorded with every event; defaults to $USER@hostname.
  std::string actor;
  // SQLite only: create the file if it does not exist (the demo does).
  bool create_database = false;
  // Where time comes from (timestamps the state tables record, gate time
  // windows, lock-retry backoff, pauses, soak rounds). nullptr = the real
  // clock; tests pass a FakeClock and move time instead of sleeping.
  Clock* clock = nullptr;

  // --- command center (docs/command-center.md) ---
  // A folder of executables named after events (on-start, on-switch, ...;
  // gh-ost's model). Each event the engine records runs the matching hook
  // after its transaction commits, with SLUICE_MIGRATION, SLUICE_PHASE,
  // SLUICE_EVENT and SLUICE_DB (password removed) in the environment and the
  // event as JSON on stdin. on-before-switch / on-before-complete run before
  // those transitions: a non-zero exit refuses the transition. "" = no
  // hooks (the CLI reads --hooks-dir or SLUICE_HOOKS_DIR).
  std::string hooks_dir;
  // URLs every event is POSTed to as JSON (with a Slack-compatible `text`
  // field), retried with backoff on failure, at most once per event.
  std::vector<std::string> webhooks;
  // Longest run of one hook (default 30 s); a hook still running then is
  // killed and counts as failed (a before-hook's failure refuses).
  int64_t hook_timeout_ms = 30000;
  // Backfill progress reaches hooks and webhooks at most once per this
  // interval (default 30 s); progress is not written to the audit log.
  int64_t progress_event_interval_ms = 30000;
};

struct PhaseSql {
  std::string phase;  // start | backfill | switch | complete | rollback
  std::vector<std::string> statements;
  // Parallel to `statements` (when filled): the strongest lock each takes
  // and on what, e.g. "SHARE UPDATE EXCLUSIVE (...) on table public.orders".
  std::vector<std::string> locks;
};

struct LintResult {
  bool ok = true;
  bool checked_against_database = false;
  std::vector<std::string> errors;    // "file:line:col: error: ..."
  std::vector<std::string> warnings;
  // The plan is a migration already in flight (same name and plan text as
  // started): its phase, and what remains of it (see PlanPreview::phases).
  std::string in_flight;
  std::string live;  // old | new (when in_flight)
  std::vector<PhaseSql> remaining;
};

struct PlanPreview {
  std::string migration;
  std::string version;
  std::string database;  // "sqlite" | "postgres"
  std::vector<PhaseSql> phases;
  std::vector<std::string> warnings;
  // "" for a plan not started yet. For the plan of a migration already in
  // flight (same name and plan text as started) its phase (active,
  // completing, ...), and `phases` is what remains, as recorded at start
  // and as complete/rollback would run it now: switch (while reads are on
  // the old version), complete, rollback.
  std::string in_flight;
  std::string live;  // old | new (when in_flight)
};

struct BackfillProgress {
  std::string migration;
  std::string table;
  int64_t rows_done = 0;
  int64_t rows_total = 0;
  int64_t chunks = 0;
  int64_t chunk_rows = 0;
  double rows_per_second = 0;
  double eta_seconds = -1;
  int64_t workers = 0;
  std::string throttle;
  bool done = false;
};

struct BackfillOptions {
  // Override the plan's `backfill:` settings (and the defaults).
  std::optional<int64_t> chunk_target_ms;
  std::optional<int64_t> chunk_rows;
  std::optional<int64_t> chunk_min_rows;
  std::optional<int64_t> chunk_max_rows;
  std::optional<double> max_rows_per_second;
  std::optional<int64_t> workers;          // PostgreSQL: concurrent chunk writers
  std::optional<int64_t> probe_target_ms;  // absolute latency objective; 0 = off
  // Relative latency objective: a multiple of the probe's own baseline
  // (default 1.5 unless an absolute target is given; 0 = off).
  std::optional<double> probe_slowdown;
  // While the application is at work (PostgreSQL): the pace's ceiling in
  // (0, 1]; 1 = do not give way on activity alone (default 0.1).
  std::optional<double> active_pace;
  std::string replica_url;                 // PostgreSQL: read replica lag from here
  // SQLite: keep synchronous = FULL on the backfill's connection; by
  // default a database in WAL mode backfills with NORMAL (a power loss
  // may lose the last chunks, which the next run redoes; see
  // docs/how-it-works.md).
  bool full_sync = false;
  std::function<void(const BackfillProgress&)> on_progress;
  // Set from another thread (e.g. a SIGINT handler) to stop after the
  // current chunk commits.
  const std::atomic<bool>* cancel = nullptr;
  // How often the run renews its lease in the state tables (default 2000
  // ms). `status` calls a backfill running only while its last renewal is
  // at most 3 intervals old, so a shorter interval notices a dead run
  // sooner at the cost of one small write per interval.
  std::optional<int64_t> heartbeat_interval_ms;
};

struct BackfillSummary {
  std::vector<std::string> migrations;
  int64_t rows = 0;        // rows rewritten by this call
  double seconds = 0;
};

struct CheckResult {
  std::string name;
  std::string table;
  std::string column;
  bool passed = true;
  bool skipped = false;
  std::string summary;
  std::vector<std::string> evidence;
  int64_t checked = 0;
  int64_t failures = 0;
};

struct VerifyResult {
  std::string migration;
  std::string at;
  bool passed = true;
  std::vector<CheckResult> checks;
  std::string json;  // the report as stored in the state tables
};

// --- verification extras: shadow-read soak and cross-database diff ----------

// Options of Verify beyond the plan's `verify:` section.
struct VerifyOptions {
  // Delay before re-reading a key whose two versions disagreed (default
  // 200 ms).
  std::optional<int64_t> reread_delay_ms;
  // Sessions comparing checksums at once (PostgreSQL; default 2), taking
  // block-range pieces of the table from one cursor, all in the
  // verification's one snapshot; the report does not depend on it. 1 = the
  // verification's session alone (always so on SQLite).
  std::optional<int> checksum_workers;
  // Diagnostic/test hook: runs after the first old-version read of each
  // shadow-read key (key values as text, nullopt = NULL).
  std::function<void(const std::string& query, const std::vector<std::optional<std::string>>& key)>
      after_first_old_read;
  // Set (e.g. by a signal handler) to stop: Verify returns kCancelled
  // before its next query and records nothing. nullptr = never.
  const std::atomic<bool>* cancel = nullptr;
};

// One round of `verify --watch`.
struct ShadowWatchRound {
  int round = 0;
  std::string at;
  int64_t keys = 0;        // keys read through both versions this round
  int64_t table_rows = 0;
  int64_t divergent = 0;   // persisted on a stable re-read
  int64_t unstable = 0;    // kept changing while re-read (not counted)
  double rate = 0;         // divergent / keys
  double cumulative_rate = 0;
  std::vector<std::string> evidence;
};

struct WatchOptions {
  double seconds = 60;          // soak window
  double interval_seconds = 5;  // pause between rounds
  std::optional<int64_t> reread_delay_ms;
  std::function<void(const ShadowWatchRound&)> on_round;
  const std::atomic<bool>* cancel = nullptr;
};

struct WatchResult {
  std::string migration;
  std::string started_at, ended_at;
  bool passed = true;           // cumulative rate <= the plan's max_divergence
  int64_t keys = 0, divergent = 0, unstable = 0;
  double rate = 0;
  double max_divergence = 0;
  std::vector<ShadowWatchRound> rounds;
  std::string json;             // as recorded in the audit log
};

// `sluice diff`: one table compared across two databases.
struct DiffOptions {
  std::string source_url, target_url;
  std::string table;
  std::vector<std::string> key;  // empty: the source table's primary key
  std::string source_schema = "public", target_schema = "public";  // PostgreSQL
  int64_t chunk_rows = 10000;
  int64_t max_reported = 10;
  // Set (e.g. by a signal handler) to stop: Diff returns kCancelled before
  // its next query, having changed nothing. nullptr = never.
  const std::atomic<bool>* cancel = nullptr;
};

struct DiffResult {
  bool same = true;
  int64_t source_rows = 0, target_rows = 0;
  int64_t chunks = 0, differing_chunks = 0;
  int64_t chunk_queries = 0, bisect_queries = 0, key_queries = 0;
  int64_t differences = 0;
  bool truncated = false;
  std::vector<std::string> evidence;
  std::vector<std::string> notes;
  std::string json;
};

// Compares `table` in two databases (SQLite or PostgreSQL, any pair) by
// chunk checksums computed inside each database over a canonical text form
// of every value, bisecting differing chunks down to the rows. Read-only.
Result<DiffResult> Diff(const DiffOptions& options);

// The backfill throttle's readings recorded with one committed chunk (the
// `chunks` state table): nullopt when the signal is off, its reading
// failed, or the chunk was written by a sluice that did not record them.
struct ThrottleSignals {
  std::optional<double> probe_latency_seconds;  // the probe query's latency
  std::optional<double> replica_lag_seconds;
  std::optional<int64_t> lock_waiters;  // sessions waiting for a lock on the table
  // Application sessions at work (PostgreSQL: pg_stat_activity without
  // sluice's own); while any are, the backfill gives way.
  std::optional<int64_t> app_sessions;
  bool any() const { return probe_latency_seconds || replica_lag_seconds || lock_waiters || app_sessions; }
};

struct MigrationInfo {
  std::string name;
  std::string phase;     // starting | active | completing | complete | rolling_back | rolled_back
  std::string version;
  std::string previous_version;
  std::string live;      // old | new
  // In-flight migrations: none | pending | running | stopped | done.
  // `running` only while a backfill process renews its lease (heartbeat);
  // `stopped` when a run began but its process ended (error, Ctrl-C,
  // refused) or stopped renewing (killed, hung, lost). "" for complete and
  // rolled-back migrations, which have no backfill to speak of.
  std::string backfill;
  int64_t rows_done = 0;
  int64_t rows_total = 0;
  int64_t chunks = 0;
  double rows_per_second = 0;  // over the last 10 s of committed chunks; 0 unless running
  double eta_seconds = -1;     // -1 unknown (and whenever not running)
  // The last backfill run, from its lease ("" / -1 when none was recorded).
  std::string backfill_holder;          // "pid@host"
  std::string backfill_started_at;
  std::string backfill_heartbeat_at;    // its last renewal
  double backfill_heartbeat_age_seconds = -1;
  double backfill_stale_after_seconds = -1;  // running while age <= this (3 renewal intervals)
  std::string backfill_stopped_at;      // when it said it stopped
  // Why the last run stopped: its error (or the latest backfill.error event
  // of the audit log), "interrupted ..." for Ctrl-C/SIGTERM, or a note that
  // it stopped renewing its lease. "" while running or when it finished.
  std::string backfill_last_error;
  // The version can be used: its backfill is done (or it needs none).
  bool version_ready = true;
  bool paused = false;         // `sluice pause` in effect
  std::string throttle;        // the running backfill's current reason to slow down
  std::optional<double> tuned_rate;       // `sluice tune` overrides
  std::optional<int64_t> tuned_chunk_ms;
  std::optional<int64_t> tuned_workers;
  std::vector<std::string> overrides;  // gates forced past: "gate by actor at time: reason"
  std::vector<std::string> tables;
  std::string created_at, updated_at, completed_at;
  std::optional<bool> last_verify_passed;
  std::string last_verify_at;
  std::string version_hint;  // how an application selects the new version
  // In-flight migrations under `dual_write: {on_error: record}`: rows whose
  // `up` failed on an old-version write and are not resolved yet (listed by
  // Migrator::Failures, `sluice failures`). switch and complete refuse, and
  // verification fails, while this is above 0.
  int64_t dual_write_failures = 0;
  // In-flight migrations: the throttle's readings of the newest committed
  // chunk (all nullopt when none recorded any), its table and commit time.
  ThrottleSignals throttle_signals;
  std::string throttle_signals_table, throttle_signals_at;
  // The backfill's recorded estimate (`sluice start --estimate`; -1 = none)
  // and its actual duration so far: first to last committed chunk.
  double estimate_backfill_p50_seconds = -1, estimate_backfill_p90_seconds = -1;
  double actual_backfill_seconds = -1;
};

// One row whose `up` failed on an old-version write (see
// MigrationInfo::dual_write_failures).
struct DualWriteFailureInfo {
  std::string table;
  std::string key;     // the row's key as a JSON array, e.g. [42]
  std::string column;  // the new column `up` fills
  std::string error;   // the last failure's message and SQLSTATE (or SQLite code)
  std::string sqlstate;
  std::string writer;  // the version (search_path schema) that wrote the row
  std::string source;  // dual-write | backfill
  int64_t count = 0;   // failures of this row and column so far
  std::string first_seen, last_seen;
};

struct FailuresResult {
  std::string migration;
  std::vector<DualWriteFailureInfo> failures;  // unresolved, after any recheck
  int64_t resolved = 0;                        // resolved by this recheck
};

// `sluice audit` (docs/audit.md): who still reads or writes what complete
// drops.
struct AuditOptions {
  std::string code_dir;  // --code DIR: also scan this source tree ("" = no)
  // --queries FILE: also classify these statements (each ends with ';' at
  // a line's end or at a blank line), e.g. from the application's logs
  // ("" = no).
  std::string queries_file;
  // --brownout ROLE,...: first revoke the old objects from these roles for
  // `brownout_seconds`; the first permission error restores them at once
  // and is a finding (PostgreSQL only; docs/audit.md).
  std::vector<std::string> brownout_roles;
  int64_t brownout_seconds = 30;
  // --brownout-restore: only restore what an interrupted brownout revoked.
  bool brownout_restore = false;
  const std::atomic<bool>* cancel = nullptr;  // stops a brownout early (restored)
};
struct AuditResult {
  std::string migration;
  bool blocking = false;             // readers / writers of old objects found
  bool coverage_sufficient = false;  // some source covered the whole interval
  std::string summary;               // one-line verdict
  std::string json, text, markdown;  // the report (json is what is stored)
};

// A gate's verdict with its evidence (see src/gates/gates.h).
struct GateCheckInfo {
  std::string check;
  bool passed = true;
  std::string detail;
};

struct GateInfo {
  std::string gate;  // backfill | switch | complete
  bool configured = false;
  bool passed = true;
  std::vector<GateCheckInfo> checks;
  std::vector<std::string> signoffs;  // "role: who at when" or "role: missing"
};

// Overriding a failed gate: needs a reason, which the audit log and
// `status` show.
struct TransitionOptions {
  bool force = false;
  std::string reason;
};

// `sluice watch`: abort criteria watched after the switch.
struct AbortWatchOptions {
  double seconds = 60;
  double interval_seconds = 5;
  std::function<void(const std::string& line)> on_round;
  const std::atomic<bool>* cancel = nullptr;
};

struct AbortWatchResult {
  std::string migration;
  bool aborted = false;  // a criterion was breached and reads were switched back
  std::string reason;
  int rounds = 0;
  double baseline_p99_ms = -1;  // probe p99 measured before the switch; -1 unknown
  double p99_ms = 0;            // worst probe p99 seen while watching
  double error_rate = 0;        // probe failures / probes
  double divergence = 0;        // shadow-read divergence rate (cumulative)
  std::string json;
};

struct MigrateOptions {
  BackfillOptions backfill;
  // Called before each lifecycle step of each plan ("start 002_x", ...).
  std::function<void(const std::string& step, const std::string& migration)> on_step;
  // Called for each file of the folder that is not applied, with why (not
  // a plan file, already applied).
  std::function<void(const std::string& file, const std::string& why)> on_skip;
};

// `sluice baseline`: a version showing every table as it is now, for the
// application that runs before the first migration.
struct BaselineInfo {
  std::string name;                 // the version (and its migration record)
  std::vector<std::string> tables;  // tables it shows
  std::string version_hint;         // how an application selects it
  bool created = false;             // false: it existed already (rerun)
};

// --- the handoff documents (src/handoff, docs/handoff.md) -------------------
// What `sluice report` and `sluice runbook` are made of: a migration's
// history as its state tables recorded it, and what its plan asks of the
// people running it.

// One record of the audit log (the state tables' events table): the single
// source from which `sluice events`, the report, hooks, webhooks, /metrics
// and the status page are all fed.
struct EventInfo {
  int64_t id = 0;          // increasing; pass the last one seen as after_id
  std::string at;          // ISO-8601 UTC
  std::string kind;        // start, backfill.done, verify, switch, hook.failed, ...
  std::string actor;
  std::string message;
  std::string details;     // JSON, "" when none
  std::string migration;
};

// The backfill's committed chunks, summarised for monitoring.
struct ChunkSample {
  std::string table;
  std::string committed_at;
  int64_t rows = 0;
  double seconds = 0;  // how long the chunk's transaction took
  ThrottleSignals signals;  // the throttle's readings when the chunk ran
};
struct ChunkHistory {
  int64_t count = 0;         // chunks committed
  int64_t rows = 0;
  double sum_seconds = 0;
  // Cumulative counts of chunks taking at most `le` seconds (ascending, the
  // last one +Inf), as a Prometheus histogram's buckets.
  std::vector<std::pair<double, int64_t>> buckets;
  std::vector<ChunkSample> recent;  // the newest chunks, oldest first (at most 300)
};

// One recorded verification (the `verifications` state table).
struct VerificationInfo {
  int64_t id = 0;
  std::string at;
  bool passed = false;
  std::string report;  // JSON, as `sluice verify --json` prints it
};

// The backfill of one table: its checkpoints summed, and its committed
// chunks (the `chunks` state table).
struct BackfillTableInfo {
  std::string table;
  int64_t rows_done = 0, rows_total = 0, chunks = 0;
  bool done = false;
  double chunk_seconds = 0;  // time spent inside the chunks' transactions
  std::string first_chunk_at, last_chunk_at;
  double rows_per_second = 0;  // rows_done over first..last chunk commit; 0 when unknown
};

// A gate's requirements as the plan writes them, in words.
struct GateRequirementInfo {
  std::string gate;                    // backfill | switch | complete
  std::vector<std::string> criteria;   // "verification at most 3600 s old", ...
  std::vector<std::string> roles;      // sign-offs it needs
};

// What a plan asks of the people running it.
struct PlanRequirements {
  std::vector<std::string> validation_queries;  // "name (table): SQL"
  std::vector<std::string> invariants;          // "name: check" / "name: SQL"
  std::vector<std::string> verify_settings;     // "max_divergence: 0.001", ...
  std::vector<GateRequirementInfo> gates;       // configured gates only
  std::vector<std::string> abort_criteria;      // "max_error_rate: 0.01", ...
  std::string probe_query;                      // the abort criteria's probe ("" = default)
  std::vector<std::string> backfill_windows;    // "HH:MM-HH:MM" UTC
  std::optional<double> backfill_max_rows_per_second;
  bool reversible = true;                       // false: a `sql` operation has no inverse
  std::vector<std::string> irreversible_ops;
};

// One phase of a rehearsal (`sluice rehearse`).
struct RehearsalPhase {
  std::string phase;   // start | backfill | verify | switch | rollback | complete
  int round = 1;       // 1: before the timed rollback, 2: after it
  double seconds = 0;
  std::string error;   // "" = it succeeded
  int64_t rows = 0;    // backfill: rows rewritten
};

// A rehearsal of a plan's whole lifecycle on a copy of the database, as
// recorded in the source's `rehearsals` state table.
struct RehearsalInfo {
  int64_t id = 0;
  std::string migration, at;
  bool passed = false;
  std::string target;      // where it ran: "copy (sqlite backup)" or the --target URL described
  std::string kept_copy;   // URL of the copy kept with --keep ("" = dropped)
  int64_t rows = 0;        // rows of the touched tables in the copy
  std::vector<RehearsalPhase> phases;
  double rollback_seconds = -1;        // the timed rollback; -1 = not reached
  double backfill_rows_per_second = 0;  // first backfill
  // The synthetic writer (the old application updating rows of the
  // touched tables through the whole lifecycle).
  int64_t writer_writes = 0, writer_errors = 0;
  double writer_max_wait_ms = 0;  // its slowest write: the longest lock wait the phases caused
  std::string writer_first_error;
  // How the copy was made (not for --target): the method, how long it took,
  // the tables copied with their rows (empty: the whole database), the
  // sample fraction (0 = every row), foreign keys left out of a sampled
  // copy, and notes (why TEMPLATE was not used).
  std::string copy_method;
  double copy_seconds = 0;
  struct CopiedTable {
    std::string table;
    int64_t rows = 0;
    bool sampled = false;
  };
  std::vector<CopiedTable> copied_tables;
  double sample = 0;
  std::vector<std::string> dropped_constraints, copy_notes;
  // Scratch copies of earlier, interrupted rehearsals found and dropped
  // before this one (one line each).
  std::vector<std::string> leftovers;
  std::string json;  // as recorded
};

struct RehearseOptions {
  // A staging database to rehearse on instead of a copy ("" = sluice makes
  // a scratch copy: SQLite, the backup API; PostgreSQL, a new database on
  // the same server). Never the source itself.
  std::string target_url;
  bool keep = false;  // keep the copy (RehearsalInfo::kept_copy)
  // In (0, 1): copy about this fraction of the touched tables' rows
  // (PostgreSQL; the tables they reference are copied whole).
  double sample = 0;
  // Only drop the scratch copies interrupted rehearsals left behind (the
  // plan is not read; RehearsalInfo::leftovers says what was dropped).
  bool cleanup = false;
  const std::atomic<bool>* cancel = nullptr;  // stops after the phase in flight (the copy is dropped)
  // Called after each phase.
  std::function<void(const RehearsalPhase&)> on_phase;
};

// --- sluice estimate (src/engine/estimate.cc, docs/handoff.md) -------------

// One predicted duration, as an interval.
struct DurationEstimate {
  std::string phase;    // start | backfill | verify | index | complete
  std::string subject;  // the table or index ("" = the whole phase)
  double p50_seconds = 0, p90_seconds = 0;
  std::string method;   // how it was computed, in words
  double p10_seconds = -1;  // < 0: not given (JSON: P50^2/P90, as wide below as above)
};

// The strongest lock one statement of one phase takes.
struct StatementLock {
  std::string phase;      // start | backfill | switch | switch_back | complete | rollback
  int statement = 0;      // index into that phase's statements
  std::string summary;    // the statement's first line of SQL
  std::string lock;       // e.g. "ACCESS EXCLUSIVE (briefly: catalog only)"
  std::string on;         // e.g. "table public.orders"
};

// One table the estimate measured.
struct TableEstimateInfo {
  std::string table;
  int64_t rows = 0;            // catalog estimate or count
  std::string rows_source;     // "pg_class.reltuples" | "count(*)"
  int64_t bytes = -1;          // with indexes; -1 unknown
  int64_t trial_chunks = 0, trial_rows = 0;
  double trial_seconds = 0;    // inside the trial chunks' UPDATEs
  double rows_per_second_p50 = 0, rows_per_second_p10 = 0;
};

struct EstimateOptions {
  int trial_chunks = 5;         // timed trial chunks per backfilled table
  int64_t chunk_rows = 0;       // rows per trial chunk (0 = the plan's, else 1000)
  int64_t lock_timeout_ms = 200;  // the trial never queues behind the application longer
};

// `sluice estimate`: durations and locks of a plan, measured read-only.
struct EstimateResult {
  std::string migration, database, at;
  std::vector<TableEstimateInfo> tables;
  std::vector<DurationEstimate> estimates;
  std::vector<StatementLock> locks;
  std::vector<PhaseSql> phases;  // the statements the locks index (with `locks` filled)
  std::vector<std::string> notes;
  std::string json;  // as printed by --json and recorded by `start --estimate`
};

// A migration's recorded history (read-only; see Migrator::History).
struct MigrationHistory {
  MigrationInfo info;
  std::string plan_file, plan_text;
  std::string database;  // "sqlite" | "postgres"
  std::vector<EventInfo> events;                // oldest first
  std::vector<VerificationInfo> verifications;  // oldest first
  std::vector<BackfillTableInfo> backfill;
  std::vector<GateInfo> gates;                  // evaluated from the recorded evidence
  // The statements start recorded for every phase: start, backfill,
  // switch, switch_back, complete, rollback.
  std::vector<PhaseSql> phases;
  PlanRequirements requirements;
  std::vector<RehearsalInfo> rehearsals;  // of this plan, oldest first
  // The estimate recorded with the migration (`sluice start --estimate`,
  // the `estimates` state table); nullopt when none was recorded.
  std::optional<EstimateResult> estimate;
  std::string read_at;           // when this was read (the engine's clock)
  std::string archived_at;       // when its report was archived ("" = not yet)
  std::string archived_report;   // the archived report (JSON), "" when none
};

// `sluice runbook`: a plan's phases and requirements, and its history
// when the migration was started.
struct HandoffPlan {
  PlanPreview plan;  // statements of start, backfill, switch, switch_back, complete, rollback
  PlanRequirements requirements;
  bool started = false;  // the migration has a record (then `history` is filled)
  MigrationHistory history;
  std::vector<RehearsalInfo> rehearsals;  // of this plan, oldest first
};

// A parameter for Session::Query: NULL, integer, real or text.
using Param = std::variant<std::nullptr_t, int64_t, double, std::string>;

struct Rows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt = NULL
  int64_t affected = 0;
};

// An application connection bound to one version of the schema, the way an
// application deployed for that version would connect (SQLite: the
// version's setup SQL on this connection; PostgreSQL: its search path).
// Used by the demo and tests to act as "the old app" and "the new app".
// One thread at a time.
class Session {
 public:
  virtual ~Session() = default;
  // One statement with $1..$n parameters.
  virtual Result<Rows> Query(const std::string& sql, const std::vector<Param>& params = {}) = 0;
  // One or more statements without parameters.
  virtual Status Exec(const std::string& sql) = 0;
};

class Migrator {
 public:
  // Opens (but does not yet connect to) the database. kInvalidArgument for a
  // malformed URL.
  static Result<std::unique_ptr<Migrator>> Open(const Options& options);
  ~Migrator();

  // Validates a plan. With a database, also compiles it against the live
  // schema and checks its expressions; changes nothing either way.
  Result<LintResult> Lint(const std::string& plan_path);

  // The exact SQL each phase would run, without running it.
  Result<PlanPreview> Preview(const std::string& plan_path);

  // Expand: additive objects, dual-write triggers, the new version's read
  // path. On failure the database is unchanged (SQLite: one transaction;
  // PostgreSQL: rerun converges). Idempotent for an already-started plan
  // with identical text.
  Status Start(const std::string& plan_path);
  // The same, adding warnings (e.g. tables gaining columns that an
  // application reading the base tables would see) to `*warnings`.
  Status Start(const std::string& plan_path, std::vector<std::string>* warnings);

  // Publishes a baseline version `name` ("" = "baseline"): a version that
  // shows every table with exactly the columns it has now (PostgreSQL: a
  // schema `<schema>_<name>` of views with explicit column lists; SQLite:
  // `<table>@<name>` views with INSTEAD OF triggers and setup SQL), recorded
  // as a completed migration with no steps. The next migration's previous
  // version is the baseline, so an application pointed at it
  // (VersionSetupSql(name)) never sees the base tables gain columns at
  // `start`; it retires when that migration completes, like any previous
  // version. kFailedPrecondition (nothing changed) when a migration is in
  // flight or one has completed (its version already serves), or (SQLite) a
  // table has no primary key. Rerunning with the same name does nothing.
  Result<BaselineInfo> Baseline(const std::string& name);

  // Runs or resumes the backfill of `migration` ("" = every active one).
  // Interrupted (cancel, crash, SIGKILL): rerun continues from the last
  // committed chunk.
  Result<BackfillSummary> Backfill(const std::string& migration, const BackfillOptions& options);

  // Runs the verification checks and records the report. Read-only on the
  // migrated tables. A failed check is not an error: see `passed`.
  Result<VerifyResult> Verify(const std::string& migration);
  Result<VerifyResult> Verify(const std::string& migration, const VerifyOptions& options);

  // Shadow reads of the plan's validation queries, round after round for
  // `options.seconds` (each round samples other keys), reporting the
  // divergence rate over time. Read-only; the result is recorded in the
  // audit log (event kind "shadow_watch").
  Result<WatchResult> WatchShadowReads(const std::string& migration, const WatchOptions& options);

  // Moves the live read path to the new version, or back to the old one.
  // Moving forward passes the switch gate first (refused with the evidence
  // unless options.force with a reason); moving back is never gated.
  Status Switch(const std::string& migration, bool back);
  Status Switch(const std::string& migration, bool back, const TransitionOptions& options);

  // The readiness scorecard: every gate's state and evidence.
  Result<std::vector<GateInfo>> Gates(const std::string& migration);
  // Records a sign-off for `gate` (backfill | switch | complete) in the
  // audit log.
  Status Signoff(const std::string& migration, const std::string& gate, const std::string& name,
                 const std::string& role, const std::string& note);
  // Watches the plan's abort criteria after the switch; on a breach switches
  // reads back and records why.
  Result<AbortWatchResult> Watch(const std::string& migration, const AbortWatchOptions& options);

  // Contract. Refused (database unchanged) until the backfill is done.
  Status Complete(const std::string& migration);
  Status Complete(const std::string& migration, const TransitionOptions& options);

  // Returns the database to its state before `start` (keeping rows the
  // application wrote meanwhile, in the old shape). Any phase before
  // complete.
  //
  // A `sql` operation without `down` is undone by an inverse derived from
  // the SQL when it only creates named objects (PostgreSQL: CREATE TABLE /
  // TYPE / INDEX / VIEW ..., undone by DROP). When no inverse can be
  // derived, rollback refuses with kFailedPrecondition naming the operation
  // and changes nothing, unless `force` is true: then everything else is
  // rolled back and that SQL's effects stay in place.
  Status Rollback(const std::string& migration, bool force = false);

  // Operator control of a running (or future) backfill, from any machine:
  // the backfill polls it about twice a second. Pause holds after the
  // current chunk commits; Tune overrides the plan's rate (0 = unlimited),
  // target chunk time and worker count.
  Status Pause(const std::string& migration);
  Status Resume(const std::string& migration);
  // `reset` first forgets earlier overrides (back to the plan's settings).
  Status Tune(const std::string& migration, std::optional<double> max_rows_per_second,
              std::optional<int64_t> chunk_target_ms, std::optional<int64_t> workers, bool reset = false);

  // Every migration sluice knows about, oldest first.
  Result<std::vector<MigrationInfo>> List();

  // The unresolved dual-write failures of `migration` ("" = the in-flight
  // one). With `recheck`, first evaluates `up` again for each recorded row
  // (after its data was fixed, or when `up` reads other tables): a row that
  // converts now gets the converted value and is resolved, a row that no
  // longer exists is resolved; the others stay, with their last error.
  Result<FailuresResult> Failures(const std::string& migration, bool recheck);
  // The contract audit of `migration` ("" = the in-flight one): samples
  // every available source for readers and writers of the columns, tables
  // and version complete drops, stores the report (the complete gate reads
  // the latest one of the observation window) and returns it.
  Result<AuditResult> Audit(const std::string& migration, const AuditOptions& options);
  // The recorded history of `migration` ("" = the one in flight): its
  // audit log, verifications, backfill, gates, recorded statements and
  // archived report. Read-only. kNotFound when there is no such migration.
  Result<MigrationHistory> History(const std::string& migration);
  // What `plan_path` runs in each phase and asks of its operators: from
  // the migration's recording when it was started (and not rolled back),
  // else compiled against the live schema as `Preview` does. Read-only.
  Result<HandoffPlan> Handoff(const std::string& plan_path);
  // Rehearses `plan_path`'s whole lifecycle on a copy of the database (or
  // on options.target_url), never on the source: start, backfill, verify,
  // switch, rollback (timed), start, backfill, verify, switch, complete,
  // with a synthetic writer updating rows of the touched tables through the
  // old version all along; gates are forced past on the copy. Records the
  // result in the source's `rehearsals` state table (its only write to the
  // source) and drops the copy unless options.keep. A phase that fails ends
  // the rehearsal (passed = false), which is still recorded; an error
  // return means it could not run (no copy could be made, the migration was
  // already started, ...) and nothing was recorded.
  Result<RehearsalInfo> Rehearse(const std::string& plan_path, const RehearseOptions& options);
  // Predicts the durations of `plan_path`'s backfill, verification, index
  // builds and complete (P50/P90) and lists the lock each statement takes.
  // Changes nothing: catalog reads, and timed trial chunks of the real
  // backfill statement inside a transaction that first applies start's
  // statements and is rolled back. kAborted when the trial could not get
  // its locks within options.lock_timeout_ms (it never queues behind the
  // application); kFailedPrecondition when the plan was already started.
  Result<EstimateResult> Estimate(const std::string& plan_path, const EstimateOptions& options);
  // Records `estimate` with its migration (started; kNotFound otherwise) in
  // the `estimates` state table, replacing an earlier one, so that `status`
  // and the report show estimate vs actual. `sluice start --estimate` runs
  // Estimate before Start and this after it.
  Status RecordEstimate(const EstimateResult& estimate);

  // Applies the unapplied plans of `dir` in file-name order: start,
  // backfill, verify, complete each, stopping at the first failure. Returns
  // the names it completed. Like Flyway's validate, it first refuses
  // (changing nothing) when two files name the same migration, or when a
  // plan already applied was edited since (its text differs from the one
  // recorded at its start).
  Result<std::vector<std::string>> Migrate(const std::string& dir, const MigrateOptions& options);

  // The SQL an application connection runs to use `version` ("live" = the
  // live version). kFailedPrecondition ("version V is not ready: the
  // backfill of T is N% done; run `sluice backfill M`") while the version's
  // backfill is not done: the new version is usable only then.
  Result<std::string> VersionSetupSql(const std::string& version);

  // Opens an application session on `version`: "" = the base tables (the
  // oldest application), "live" = whatever version is live, or a version
  // name. Refused like VersionSetupSql while the version is not ready.
  Result<std::unique_ptr<Session>> Connect(const std::string& version);

  // The audit log, oldest first: events with id > after_id of `migration`
  // ("" = every migration), at most `limit` of them. Read-only. An empty list
  // when no migration was ever started here.
  Result<std::vector<EventInfo>> Events(const std::string& migration, int64_t after_id = 0, int64_t limit = 1000);
  // The committed chunks of `migration`'s backfill. Read-only.
  Result<ChunkHistory> Chunks(const std::string& migration);
  // The last recorded verification report of `migration` (checks filled
  // from the stored JSON); nullopt when none was recorded. Read-only.
  Result<std::optional<VerifyResult>> LastVerification(const std::string& migration);

  const Options& options() const { return options_; }

 private:
  Migrator() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Options options_;
};

}  // namespace sluice
