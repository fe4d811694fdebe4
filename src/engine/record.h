// A migration's recording: what `start` compiled, kept in the state tables
// (the `recordings` table) so every later phase replays it instead of
// recompiling the plan with whatever sluice binary runs then. LevelDB keeps
// its MANIFEST for the same reason: the on-disk record, not today's code,
// says what was done.
//
// Recorded, each as the exact statements the database will run:
//   start        (a start interrupted between its transactions resumes)
//   complete     this migration's contract steps
//   rollback     the inverse of every start step, each tagged with the start
//                step it undoes
//   switch / switch_back   re-pointing the live alias
//   retire       dropping this migration's version when a later one completes
//   ready        making the version usable, run in the transaction that
//                records the backfill as done (format 2)
// plus the version description, the backfill tasks and the tables, which
// verification and the backfill read.
//
// Formats: kRecordFormat is written; a recording with a higher format was
// made by a newer sluice and is refused with a message saying so; a
// migration with no recording (started by sluice before recordings existed)
// is recompiled from its stored plan text and schema snapshot, as that
// version of sluice did.
#pragma once

#include <string>
#include <vector>

#include "db/adapter.h"
#include "engine/compile.h"
#include "sluice/status.h"

namespace sluice::engine {

// Version 1: the first recorded format (sluice 0.2).
// Version 2: versions are guarded until their backfill is done, and the
// recording holds the `ready` steps that lift the guard; a sluice that only
// knows format 1 would never lift it, so it must refuse these.
inline constexpr int kRecordFormat = 2;

struct Recording {
  int format = kRecordFormat;
  std::string sluice_version;  // the version that recorded it
  CompiledMigration compiled;  // start/complete/rollback as RecordedSqlStep steps
  std::vector<db::Step> switch_to_new;
  std::vector<db::Step> switch_back;
  std::vector<db::Step> retire;
  std::vector<db::Step> ready;  // empty in format 1 (nothing was guarded)
};

// Renders `c` with `d` into a recording (every step becomes the statements
// that run it).
Recording Record(const CompiledMigration& c, const db::Dialect& d);

// The recording as stored (JSON) and back. FromJson fails with
// kFailedPrecondition for a format newer than kRecordFormat and kInternal
// for a damaged recording.
std::string RecordingToJson(const Recording& r);
Result<Recording> RecordingFromJson(const std::string& json, int format);

// The sluice version this binary records ("0.2.0").
std::string SluiceVersion();

}  // namespace sluice::engine
