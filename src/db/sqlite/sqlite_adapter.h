// The SQLite adapter: the only code that includes <sqlite3.h>.
//
// Connections run in WAL-compatible mode with a busy timeout, take the write
// lock up front (BEGIN IMMEDIATE) so a transaction never fails half-way on a
// lock upgrade, and register `sluice_hash(...)`, a 64-bit hash over typed,
// separated values used by verification.
#pragma once

#include <memory>
#include <string>

#include "db/adapter.h"

namespace sluice::db {

struct SqliteOptions {
  std::string path;
  bool create = false;        // create the file if missing (demo)
  int busy_timeout_ms = 10000;
};

std::unique_ptr<Adapter> MakeSqliteAdapter(SqliteOptions options);

}  // namespace sluice::db
