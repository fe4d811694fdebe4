// How a PostgreSQL error tells sluice what to do next: SQLSTATE -> StatusCode.
//
// Pure functions (no libpq), so every class can be unit-tested without a
// server. The table, by SQLSTATE class
// (https://www.postgresql.org/docs/15/errcodes-appendix.html), is in
// postgres_errors.cc next to the code; docs/cli.md gives the exit codes.
#pragma once

#include <string_view>

#include "sluice/status.h"

namespace sluice::db {

// The code for an error with `sqlstate` (five characters; "" when libpq
// reported the error itself, e.g. a broken socket). `message` is the
// server's primary message: it only separates a statement timeout from a
// cancel under SQLSTATE 57014 (see IsStatementTimeout).
StatusCode PostgresErrorCode(std::string_view sqlstate, std::string_view message);

// True for SQLSTATE 57014 (query_canceled) raised by statement_timeout.
// PostgreSQL uses the same SQLSTATE for pg_cancel_backend() and a client's
// cancel request; only the message tells them apart ("canceling statement
// due to statement timeout" vs "... due to user request"). Under a
// translated lc_messages the text is not recognised and the error reads as
// a cancel (kCancelled): sluice never cancels its own statements, so a
// cancel always came from outside and stopping is the safe reading.
bool IsStatementTimeout(std::string_view sqlstate, std::string_view message);

}  // namespace sluice::db
