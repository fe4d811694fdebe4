// SQLite's scratch copies for `sluice rehearse` (Connection::CreateScratchCopy):
// the online backup API into a new temporary directory.
#pragma once

#include "db/adapter.h"

namespace sluice::db {

// A copy of `conn`'s whole database (through conn.CopyDatabaseTo) in a new
// directory `sluice-rehearsal-XXXXXX` under the temporary directory; a
// sample is not taken (a note says so).
Result<ScratchCopy> SqliteScratchCopy(Connection& conn, const ScratchCopyRequest& request);
// Removes the copy's directory unless `keep`.
Status DropSqliteScratchCopy(const ScratchCopy& copy, bool keep);

}  // namespace sluice::db
