// How a SQLite error tells sluice what to do next: result code -> StatusCode.
//
// The table, by primary result code (https://www.sqlite.org/rescode.html),
// is in sqlite_errors.cc next to the code; docs/cli.md gives the exit codes.
// This header does not include <sqlite3.h>: codes are plain ints.
#pragma once

#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::db {

// The code for extended result code `rc` (its low byte is the primary
// code). `message` is sqlite3_errmsg: SQLITE_ERROR is SQLite's catch-all, and
// its stable messages tell a missing object ("no such table: t") and a
// duplicate ("table t already exists") from other SQL errors.
// `deadline_passed` says that sluice's own statement timeout interrupted
// the statement (SQLITE_INTERRUPT is otherwise a cancel).
StatusCode SqliteErrorCode(int rc, std::string_view message, bool deadline_passed = false);

// "SQLITE_READONLY_DBMOVED (1032)": the symbolic name of `rc`, for
// Status::detail().
std::string SqliteCodeName(int rc);

}  // namespace sluice::db
