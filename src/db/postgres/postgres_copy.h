// PostgreSQL's scratch copies for `sluice rehearse` (Connection::
// CreateScratchCopy, docs/handoff.md): a new database on the same server,
// made by CREATE DATABASE ... TEMPLATE when no other session uses the
// source, else from pg_dump's schema and a COPY of the touched tables.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "db/postgres/postgres_adapter.h"

namespace sluice::db {

// The prefix of every scratch database's name (leftovers are found by it).
inline constexpr const char* kScratchPrefix = "sluice_rehearsal_";

// application_name of every session this process opens ("sluice pid N on
// HOST"): how sluice recognises its own sessions.
std::string PostgresApplicationName();

// A scratch copy of `own`'s database. `disconnect_own` closes `own`'s
// session (TEMPLATE needs the source to have none); `own` is reconnected
// (Reconnect) before this returns.
Result<ScratchCopy> PgCreateScratchCopy(Connection& own, const PostgresOptions& options,
                                        const ScratchCopyRequest& request, const std::function<void()>& disconnect_own);
Status PgDropScratchCopy(const PostgresOptions& options, const ScratchCopy& copy, bool keep);
Result<std::vector<std::string>> PgDropLeftoverScratchCopies(const PostgresOptions& options);

}  // namespace sluice::db
