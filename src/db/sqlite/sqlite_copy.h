// SQLite's scratch copies for `sluice rehearse` (Connection::CreateScratchCopy):
// the online backup API into a new temporary directory.
#pragma once

#include "db/adapter.h"

namespace sluice::db {

// A copy of `conn`'s database (through conn.CopyDatabaseTo) in a new
// directory `sluice-rehearsal-XXXXXX` under the temporary directory.
Result<ScratchCopy> SqliteScratchCopy(Connection& conn);
// Removes the copy's directory unless `keep`.
Status DropSqliteScratchCopy(const ScratchCopy& copy, bool keep);

}  // namespace sluice::db
