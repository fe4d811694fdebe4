// SQLite's scratch copies for `sluice rehearse` (Connection::CreateScratchCopy):
// the online backup API into a new temporary directory.
#pragma once

#include "db/adapter.h"

namespace sluice::db {

// A copy of `conn`'s whole database (through conn.CopyDatabaseTo) in a new
// rehearsal directory (db/scratch_dir.h: `sluice-rehearsal-<label>-<pid>-
// XXXXXX` under the temporary directory, removed by the next rehearsal
// once this process is gone); a sample is not taken (a note says so).
// kCancelled (kScratchCopyCancelled) within one backup step of
// `request.cancel` being set, the directory removed.
Result<ScratchCopy> SqliteScratchCopy(Connection& conn, const ScratchCopyRequest& request);
// Removes the copy's directory; with `keep`, marks it kept instead (the
// next rehearsal's cleanup leaves it alone).
Status DropSqliteScratchCopy(const ScratchCopy& copy, bool keep);

}  // namespace sluice::db
