// Verification: evidence, computed inside the database, that the new version
// holds exactly what the old one implies. See docs/verification.md.
//
// Checks of `Run` (each with numbers, pass/fail and evidence), per changed
// table of the migration:
//   row_count     rows visible through the old and the new read path
//   checksum      chunked checksums (count + sum of 64-bit row hashes, mod
//                 2^64) of the old rows transformed by `up` against the new
//                 version's rows; a differing chunk is bisected down to the
//                 rows, listed with both values. Counts the queries used.
//   parity        row counts per key range (the checksum chunks) and per
//                 value of the plan's `partition_column`; a mismatch names
//                 the partition
//   up_matches    every new column equals `up` applied to its old values
//   down_matches  rows last written through the new version: each old
//                 column equals `down` applied to the new values
//   not_null      columns that become NOT NULL at complete hold no NULL
//   drift         per new column: fraction of NULL and of default values
//                 against what `up` implies; above max_drift fails
//   invariant     the plan's invariants on the new version
//   shadow_read   the plan's validation queries, through the old and the
//                 new version for deterministically sampled keys; results
//                 compared exactly as each version returns them (storage
//                 class and text: '1.10' differs from '1.1', NULL from ''),
//                 in order when the query has a top-level ORDER BY, as
//                 multisets otherwise. A read that errors is a divergence.
//
// Keys of any type the database can order (uuid, text in any collation,
// numeric, timestamptz, bytea, composites) walk the checksum chunks: see
// compare.h.
//
// `Diff` compares one table in two databases (possibly of different
// dialects) by portable chunk checksums and bisection. Its key must
// identify rows on both sides (checked up front).
//
// Long calls read `cancel` (Settings::cancel, DiffSpec::cancel) before each
// query and return kCancelled once it is set.
//
// Everything here only reads. Not thread-safe; one call per connection at a
// time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::verify {

struct Check {
  std::string name;
  std::string table;
  std::string column;
  bool passed = true;
  bool skipped = false;
  std::string summary;
  std::vector<std::string> evidence;  // up to Settings::max_reported lines
  int64_t checked = 0;                // rows examined
  int64_t failures = 0;               // rows that failed
  // Numbers behind the summary (chunk_queries, drift, rate, ...), in the JSON.
  std::vector<std::pair<std::string, double>> metrics;
};

// One verification. Stored as JSON (ToJson) in the state tables, where the
// gates read `passed`, `at` (when it started) and `could_not_run`.
struct Report {
  std::string migration;
  std::string at;  // when the verification started (ISO-8601 UTC)
  bool passed = true;
  // The verification did not complete (an error, a cancel): `passed` is
  // false and `error` says why. Every gate treats it as a failed one.
  bool could_not_run = false;
  std::string error;
  std::vector<Check> checks;
  std::string ToJson() const;

  // The report to record when Run could not complete, so a gate sees a
  // failed verification instead of an older passing one.
  static Report CouldNotRun(const std::string& migration, const std::string& started_at, const Status& why);
};

struct Invariant {
  std::string name;
  std::string table;  // logical table of the new version (with `check`)
  std::string check;  // predicate every row must satisfy (NULL passes), or
  std::string sql;    // a query on the new version that must return no rows
};

struct ValidationQuery {
  std::string name;
  std::string table;  // logical table whose keys are sampled
  std::string sql;    // :key (or :key1, :key2, ... for a composite key)
};

struct Settings {
  // The clock of the time a report or round is stamped with.
  Clock* Time() const { return clock ? clock : Clock::Real(); }
  int64_t max_reported = 10;      // differing rows / violations listed
  int64_t chunk_rows = 10000;     // rows per checksum chunk
  int64_t leaf_rows = 16;         // bisection stops below this many rows
  // Checksum sessions at once, where the database reads a table by block
  // and can share the verification's snapshot between sessions
  // (PostgreSQL) and `connect` is set: the table's block-range pieces are
  // handed out to them from one cursor, each read in that same snapshot.
  // The report does not depend on it. 1 = the verification's session alone.
  int checksum_workers = 2;
  // Opens another session on the same database (checksum workers).
  std::function<Result<std::unique_ptr<db::Connection>>()> connect;
  std::string partition_column;   // logical column; "" = key ranges only
  double max_drift = 0.01;        // tolerated NULL/default drift (fraction)
  std::vector<Invariant> invariants;
  std::vector<ValidationQuery> validation_queries;
  double shadow_sample = 0.01;    // fraction of keys shadow-read per round
  int64_t shadow_max_keys = 1000; // per query and round
  double max_divergence = 0;      // tolerated persistent divergence rate
  int64_t reread_delay_ms = 200;  // before re-reading a suspect key
  int reread_attempts = 3;        // re-reads of a key whose old value moves
  // Set by another thread to stop: Run and ShadowRead return kCancelled
  // before their next query. nullptr = never.
  const std::atomic<bool>* cancel = nullptr;
  // The time reports are stamped with (nullptr = the real clock). Re-read
  // delays stay real: they wait for other sessions, not for time to pass.
  Clock* clock = nullptr;
  // Test hook: runs after the first old-version read of a shadow key.
  std::function<void(const std::string& query, const std::vector<db::Value>& key)> after_first_old_read;
};

// Sessions through which shadow reads and `sql` invariants see each
// version: set up the way an application of that version connects.
struct VersionConnections {
  db::Connection* old_version = nullptr;
  db::Connection* new_version = nullptr;
};

// Runs the snapshot checks on `conn`, then (when `versions` are given) the
// `sql` invariants and one round of shadow reads.
Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings);
// Only check 1 (row_count) for every table, in one snapshot: the parity the
// backfill gate asks for, without the rest of the verification.
Result<std::vector<Check>> RowCounts(db::Connection& conn, const db::VersionSpec& version);
Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings,
                   const VersionConnections& versions);

// One round of shadow reads over every validation query. `round` shifts the
// sampled hash window so successive rounds (`verify --watch`) read other
// keys; both versions always read the same keys.
struct ShadowRound {
  int round = 0;
  std::string at;
  int64_t keys = 0;         // keys read through both versions
  int64_t table_rows = 0;   // rows of the sampled tables
  int64_t suspects = 0;     // differed on the first read
  int64_t divergent = 0;    // still differed on a stable re-read
  int64_t unstable = 0;     // kept changing while re-read (not counted)
  double rate() const { return keys ? static_cast<double>(divergent) / static_cast<double>(keys) : 0; }
  std::vector<Check> checks;  // one shadow_read check per query
};
Result<ShadowRound> ShadowRead(db::Connection& conn, const db::VersionSpec& version, const Settings& settings,
                               const VersionConnections& versions, int round);

// --- cross-database diff ----------------------------------------------------

struct DiffSpec {
  std::string table;
  std::vector<std::string> key;  // empty: the source table's primary key
  int64_t chunk_rows = 10000;
  int64_t leaf_rows = 16;
  int64_t max_reported = 10;
  // Set by another thread to stop: Diff returns kCancelled before its next
  // query. nullptr = never.
  const std::atomic<bool>* cancel = nullptr;
};

struct DiffReport {
  std::string table;
  std::string source, target;  // Describe() of each side
  std::string at;
  std::vector<std::string> key;
  std::vector<std::string> columns;  // compared columns
  bool same = true;
  int64_t source_rows = 0, target_rows = 0;
  int64_t chunks = 0, differing_chunks = 0;
  int64_t chunk_queries = 0;   // checksum queries (scan + bisection + row fetches)
  int64_t bisect_queries = 0;  // of which bisection
  int64_t key_queries = 0;     // boundary/median key look-ups
  int64_t differences = 0;     // differing rows found
  bool truncated = false;      // stopped bisecting at max_reported
  std::vector<std::string> evidence;
  std::vector<std::string> notes;
  std::string ToJson() const;
};

// kInvalidArgument (nothing compared) when the key is not unique on a side
// or holds NULL, naming the key value; kCancelled when `spec.cancel` was
// set; kNotFound for a missing table; query errors otherwise.
Result<DiffReport> Diff(db::Connection& source, db::Connection& target, const DiffSpec& spec);

}  // namespace sluice::verify
