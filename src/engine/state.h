// sluice's state, kept in tables inside the migrated database so every
// operator on every machine sees the same truth and a crashed sluice loses
// nothing. The tables are described in docs/how-it-works.md.
//
// StateStore is a thin typed layer over a Connection; it never opens its own
// transactions, so a phase change commits together with the DDL it records.
// Not thread-safe (one per connection).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/sluice.h"
#include "sluice/status.h"

namespace sluice::engine {

// Phases of one migration, as stored in the `phase` column.
inline constexpr const char* kStarting = "starting";        // start began, not finished (PostgreSQL)
inline constexpr const char* kActive = "active";            // expanded, dual-writing
inline constexpr const char* kCompleting = "completing";    // complete began (PostgreSQL)
inline constexpr const char* kComplete = "complete";        // contracted
inline constexpr const char* kRollingBack = "rolling_back";  // rollback began (PostgreSQL)
inline constexpr const char* kRolledBack = "rolled_back";

struct MigrationRecord {
  std::string name;
  int64_t seq = 0;
  std::string phase;
  std::string version;
  std::string previous_version;
  std::string plan_file;
  std::string plan_format;
  std::string plan_text;
  std::string schema_before;  // JSON snapshot taken at start
  std::vector<std::string> tables;
  std::string live = "old";        // which version reads go to: old | new
  std::string backfill = "pending";  // none | pending | running | done
  bool version_retired = false;    // read path removed by a later complete
  std::string created_at, updated_at, completed_at;

  bool in_flight() const {
    return phase == kStarting || phase == kActive || phase == kCompleting || phase == kRollingBack;
  }
};

struct Checkpoint {
  std::string table;
  int worker = 0;
  std::string last_key;  // JSON array of typed values, "" before the first chunk
  std::string high_key;  // JSON, "" when the table was empty
  int64_t rows_done = 0;
  int64_t rows_total = 0;
  int64_t chunks = 0;
  bool done = false;
  std::string updated_at;
};

struct EventRecord {
  int64_t id = 0;
  std::string at, kind, actor, message, details;
};

struct VerificationRecord {
  int64_t id = 0;
  std::string at;
  bool passed = false;
  std::string report;  // JSON
};

// The lease of a migration's backfill: the row a running `sluice backfill`
// renews every `interval_ms` (its heartbeat), and where it leaves why it
// stopped. One row per migration, replaced by each run.
struct BackfillLease {
  std::string holder;        // "pid@host" of the run
  std::string started_at;    // ISO; with `holder`, identifies the run
  std::string heartbeat_at;  // ISO, the last renewal
  int64_t heartbeat_ms = 0;  // the last renewal, by the database's clock
  int64_t interval_ms = 0;   // the run's renewal interval
  std::string stopped_at;    // "" while the run has not said it stopped
  std::string last_error;    // why it stopped, "" when it finished
  int64_t now_ms = 0;        // the database's clock when this was read

  // The run is alive: it has not stopped and renewed within 3 intervals.
  bool alive() const { return stopped_at.empty() && now_ms - heartbeat_ms <= 3 * interval_ms; }
};

// A row whose `up` failed on an old-version write (dual_write: {on_error:
// record}): written by the dual-write (or the backfill) into the
// dual_write_failures state table, one row per (table, key, column), deleted
// when the row converts again.
struct DualWriteFailure {
  std::string table, key, column;  // key: the row's key as a JSON array
  std::string error, sqlstate;     // the last failure's
  std::string writer;              // the version (or search_path schema) that wrote
  std::string source;              // dual-write | backfill
  int64_t count = 0;
  std::string first_seen, last_seen;
};

// The throttle's readings in columns `first`.. of a chunks row selected
// as kChunkSignalColumns (NULL = unset); kNoChunkSignals stands in for
// them on a chunks table made by an older sluice.
inline constexpr const char* kChunkSignalColumns = "probe_ms, replica_lag_s, lock_waiters, app_sessions";
inline constexpr const char* kNoChunkSignals = "NULL, NULL, NULL, NULL";
ThrottleSignals SignalsOfRow(const db::Row& row, size_t first);

class StateStore {
 public:
  // `clock` stamps every time it records (default: the real clock).
  explicit StateStore(db::Connection& conn, Clock* clock = nullptr)
      : c_(conn), d_(conn.dialect()), clock_(clock ? clock : Clock::Real()) {}
  Clock* clock() const { return clock_; }

  // True when the state tables exist (reading never creates them).
  Result<bool> Exists();
  // True when state table `base` exists (tables added by later versions of
  // sluice may be missing from state an older one made).
  Result<bool> HasTable(const std::string& base);
  // Creates missing state tables. Call inside the transaction of the first
  // change, so a failed command leaves the database untouched.
  Status Ensure();
  // Adds the columns later releases gave existing state tables
  // (Dialect::AddedStateColumns) where an older sluice created the table
  // without them; reads the catalog first and alters only what lacks one
  // (a no-op needs no privilege). Ensure calls it; so does the backfill,
  // which writes them. Call inside a transaction.
  Status EnsureColumns();

  Result<std::optional<MigrationRecord>> Get(const std::string& name);
  // Get, locking the row until the transaction ends (PostgreSQL FOR
  // UPDATE; SQLite's write transaction holds the whole database).
  Result<std::optional<MigrationRecord>> LockRecord(const std::string& name);
  // All migrations, oldest first.
  Result<std::vector<MigrationRecord>> List();
  Status Upsert(const MigrationRecord& rec);
  Status SetPhase(const std::string& name, const std::string& phase);
  // Moves the phase only if it is still `from`; returns the rows changed
  // (0 when another process moved it first).
  Result<int64_t> SetPhaseIf(const std::string& name, const std::string& from, const std::string& to);
  Status SetField(const std::string& name, const std::string& column, const std::string& value);
  Result<int64_t> NextSeq();

  Status AddEvent(const std::string& migration, const std::string& kind, const std::string& actor,
                  const std::string& message, const std::string& details_json = "");

  // Events with id > after_id of `migration` ("" = all), oldest first, at
  // most `limit`.
  Result<std::vector<EventInfo>> EventsAfter(const std::string& migration, int64_t after_id, int64_t limit);

  // The migration's audit log, oldest first ("" kind = all kinds).
  Result<std::vector<EventRecord>> Events(const std::string& migration, const std::string& kind = "");

  Result<std::vector<int>> DoneSteps(const std::string& migration, const std::string& phase);
  Status MarkStep(const std::string& migration, const std::string& phase, int step);
  Status ClearStep(const std::string& migration, const std::string& phase);
  Status ClearProgress(const std::string& migration);

  Result<std::vector<Checkpoint>> Checkpoints(const std::string& migration);
  // Unresolved dual-write failures of `migration` (0 when the table does
  // not exist: state made by an older sluice), and up to `limit` of them
  // (< 0: all), by table and key.
  Result<int64_t> DualWriteFailureCount(const std::string& migration);
  Result<std::vector<DualWriteFailure>> DualWriteFailures(const std::string& migration, int64_t limit = -1);
  Status ResolveDualWriteFailure(const std::string& migration, const DualWriteFailure& f);
  // Rows/s of the chunks committed in the last `seconds` seconds.
  Result<double> RecentBackfillRate(const std::string& migration, int seconds);
  // The throttle's readings of `migration`'s newest committed chunk, with
  // its table and commit time; nullopt when no chunk was committed (and
  // readings all unset where an older sluice's table lacks the columns).
  struct ChunkSignals {
    std::string table, committed_at;
    ThrottleSignals signals;
  };
  Result<std::optional<ChunkSignals>> LatestChunkSignals(const std::string& migration);
  Result<std::optional<VerificationRecord>> LastVerification(const std::string& migration);

  // Backfill leases (see BackfillLease). StartLease replaces the row for a
  // new run; RenewLease stamps its heartbeat (false when the row belongs to
  // another run or says it stopped); StopLease records that it stopped and
  // why ("" = it finished). GetLease: nullopt when there is no row (or no
  // leases table yet: state made by an older sluice).
  Status StartLease(const std::string& migration, const std::string& holder, const std::string& started_at,
                    int64_t interval_ms);
  Result<bool> RenewLease(const std::string& migration, const std::string& holder, const std::string& started_at);
  Status StopLease(const std::string& migration, const std::string& holder, const std::string& started_at,
                   const std::string& error);
  Result<std::optional<BackfillLease>> GetLease(const std::string& migration);

  // Table ownership: an in-flight migration claims the physical tables it
  // changes inside start's transaction (a unique row per table), so two
  // starts racing for one table cannot both succeed. The owner of `table`,
  // or "" when unclaimed.
  Result<std::string> ClaimOwner(const std::string& table);
  // kFailedPrecondition naming the owner when another migration holds it.
  Status Claim(const std::string& migration, const std::string& table);
  Status ReleaseClaims(const std::string& migration);

  // The migration's recording (src/engine/record.h): its format and JSON,
  // or nullopt when it has none (started by an older sluice).
  struct StoredRecording {
    int format = 0;
    std::string sluice_version;
    std::string json;
  };
  Result<std::optional<StoredRecording>> GetRecording(const std::string& migration);
  Status PutRecording(const std::string& migration, int format, const std::string& sluice_version,
                      const std::string& json);
  Status AddVerification(const std::string& migration, bool passed, const std::string& report_json);

  db::Connection& conn() { return c_; }

 private:
  std::string T(std::string_view base) const { return d_.StateTable(base); }
  // The clock's UTC time as ISO-8601, shifted by `offset_seconds`.
  std::string Now(int64_t offset_seconds = 0) const {
    return IsoTime(clock_->WallMicros() + offset_seconds * 1'000'000);
  }
  db::Connection& c_;
  const db::Dialect& d_;
  Clock* clock_;
};

using sluice::NowIso;

}  // namespace sluice::engine
