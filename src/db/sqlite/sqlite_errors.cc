#include "db/sqlite/sqlite_errors.h"

#include <sqlite3.h>

namespace sluice::db {

// Every primary result code, by what the caller must do next.
//
//   retry (the same command later; the backfill rides these out):
//     SQLITE_BUSY, SQLITE_LOCKED   another connection holds the lock
//                                  past busy_timeout              kAborted
//     SQLITE_PROTOCOL              WAL lock race                  kAborted
//     SQLITE_SCHEMA                schema changed under the
//                                  statement                      kAborted
//     SQLITE_ABORT                 transaction rolled back under
//                                  a statement                    kAborted
//     SQLITE_INTERRUPT             sluice's statement timeout     kAborted
//     SQLITE_IOERR                 disk I/O error                 kUnavailable
//       (SQLITE_IOERR_NOMEM: out of memory)                       kResourceExhausted
//     SQLITE_CANTOPEN              cannot open a file (temp
//                                  files, the journal)            kUnavailable
//     SQLITE_FULL                  disk full                      kResourceExhausted
//     SQLITE_NOMEM                 out of memory                  kResourceExhausted
//   stop, someone asked to:
//     SQLITE_INTERRUPT otherwise                                  kCancelled
//   grant a privilege (retrying will not help):
//     SQLITE_PERM, SQLITE_AUTH     access denied
//     SQLITE_READONLY              the file (or its directory, or
//                                  the -wal/-shm files) is read-only  kPermissionDenied
//   fix the SQL or name:
//     SQLITE_ERROR                 SQL error                      kInvalidArgument
//       "no such table/column/function/index/view/trigger"        kNotFound
//       "... already exists"                                      kAlreadyExists
//   stop, an operator must act (the data or the file refuses):
//     SQLITE_CONSTRAINT            constraint violated            kFailedPrecondition
//     SQLITE_MISMATCH              datatype mismatch (STRICT)     kFailedPrecondition
//     SQLITE_TOOBIG                value exceeds a limit          kFailedPrecondition
//     SQLITE_CORRUPT, SQLITE_NOTADB  not a usable database file   kFailedPrecondition
//     SQLITE_NOLFS                 file too large for the host    kFailedPrecondition
//     anything else                                               kFailedPrecondition
//   a bug in how sluice drives SQLite:
//     SQLITE_MISUSE, SQLITE_RANGE, SQLITE_INTERNAL, SQLITE_NOTFOUND,
//     SQLITE_EMPTY, SQLITE_FORMAT                                 kInternal
StatusCode SqliteErrorCode(int rc, std::string_view message, bool deadline_passed) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
    case SQLITE_SCHEMA:
    case SQLITE_ABORT:
      return StatusCode::kAborted;
    case SQLITE_INTERRUPT:
      return deadline_passed ? StatusCode::kAborted : StatusCode::kCancelled;
    case SQLITE_IOERR:
      return rc == SQLITE_IOERR_NOMEM ? StatusCode::kResourceExhausted : StatusCode::kUnavailable;
    case SQLITE_CANTOPEN:
      return StatusCode::kUnavailable;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return StatusCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
      return StatusCode::kPermissionDenied;
    case SQLITE_ERROR:
      if (message.rfind("no such ", 0) == 0) return StatusCode::kNotFound;
      if (message.find(" already exists") != std::string_view::npos) return StatusCode::kAlreadyExists;
      return StatusCode::kInvalidArgument;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_INTERNAL:
    case SQLITE_NOTFOUND:
    case SQLITE_EMPTY:
    case SQLITE_FORMAT:
      return StatusCode::kInternal;
    default:  // CONSTRAINT, MISMATCH, TOOBIG, CORRUPT, NOTADB, NOLFS, unknown
      return StatusCode::kFailedPrecondition;
  }
}

std::string SqliteCodeName(int rc) {
#define SLUICE_SQLITE_CODE(name) {name, #name}
  static const struct {
    int code;
    const char* name;
  } kNames[] = {
      SLUICE_SQLITE_CODE(SQLITE_ERROR), SLUICE_SQLITE_CODE(SQLITE_INTERNAL), SLUICE_SQLITE_CODE(SQLITE_PERM),
      SLUICE_SQLITE_CODE(SQLITE_ABORT), SLUICE_SQLITE_CODE(SQLITE_BUSY), SLUICE_SQLITE_CODE(SQLITE_LOCKED),
      SLUICE_SQLITE_CODE(SQLITE_NOMEM), SLUICE_SQLITE_CODE(SQLITE_READONLY), SLUICE_SQLITE_CODE(SQLITE_INTERRUPT),
      SLUICE_SQLITE_CODE(SQLITE_IOERR), SLUICE_SQLITE_CODE(SQLITE_CORRUPT), SLUICE_SQLITE_CODE(SQLITE_NOTFOUND),
      SLUICE_SQLITE_CODE(SQLITE_FULL), SLUICE_SQLITE_CODE(SQLITE_CANTOPEN), SLUICE_SQLITE_CODE(SQLITE_PROTOCOL),
      SLUICE_SQLITE_CODE(SQLITE_EMPTY), SLUICE_SQLITE_CODE(SQLITE_SCHEMA), SLUICE_SQLITE_CODE(SQLITE_TOOBIG),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT), SLUICE_SQLITE_CODE(SQLITE_MISMATCH), SLUICE_SQLITE_CODE(SQLITE_MISUSE),
      SLUICE_SQLITE_CODE(SQLITE_NOLFS), SLUICE_SQLITE_CODE(SQLITE_AUTH), SLUICE_SQLITE_CODE(SQLITE_FORMAT),
      SLUICE_SQLITE_CODE(SQLITE_RANGE), SLUICE_SQLITE_CODE(SQLITE_NOTADB),
      SLUICE_SQLITE_CODE(SQLITE_ERROR_MISSING_COLLSEQ), SLUICE_SQLITE_CODE(SQLITE_ERROR_RETRY),
      SLUICE_SQLITE_CODE(SQLITE_ERROR_SNAPSHOT), SLUICE_SQLITE_CODE(SQLITE_IOERR_READ),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_SHORT_READ), SLUICE_SQLITE_CODE(SQLITE_IOERR_WRITE),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_FSYNC), SLUICE_SQLITE_CODE(SQLITE_IOERR_DIR_FSYNC),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_TRUNCATE), SLUICE_SQLITE_CODE(SQLITE_IOERR_FSTAT),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_UNLOCK), SLUICE_SQLITE_CODE(SQLITE_IOERR_RDLOCK),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_DELETE), SLUICE_SQLITE_CODE(SQLITE_IOERR_BLOCKED),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_NOMEM), SLUICE_SQLITE_CODE(SQLITE_IOERR_ACCESS),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_CHECKRESERVEDLOCK), SLUICE_SQLITE_CODE(SQLITE_IOERR_LOCK),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_CLOSE), SLUICE_SQLITE_CODE(SQLITE_IOERR_DIR_CLOSE),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_SHMOPEN), SLUICE_SQLITE_CODE(SQLITE_IOERR_SHMSIZE),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_SHMLOCK), SLUICE_SQLITE_CODE(SQLITE_IOERR_SHMMAP),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_SEEK), SLUICE_SQLITE_CODE(SQLITE_IOERR_DELETE_NOENT),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_MMAP), SLUICE_SQLITE_CODE(SQLITE_IOERR_GETTEMPPATH),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_CONVPATH), SLUICE_SQLITE_CODE(SQLITE_IOERR_VNODE),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_AUTH), SLUICE_SQLITE_CODE(SQLITE_IOERR_BEGIN_ATOMIC),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_COMMIT_ATOMIC), SLUICE_SQLITE_CODE(SQLITE_IOERR_ROLLBACK_ATOMIC),
      SLUICE_SQLITE_CODE(SQLITE_IOERR_DATA), SLUICE_SQLITE_CODE(SQLITE_IOERR_CORRUPTFS),
      SLUICE_SQLITE_CODE(SQLITE_LOCKED_SHAREDCACHE), SLUICE_SQLITE_CODE(SQLITE_LOCKED_VTAB),
      SLUICE_SQLITE_CODE(SQLITE_BUSY_RECOVERY), SLUICE_SQLITE_CODE(SQLITE_BUSY_SNAPSHOT),
      SLUICE_SQLITE_CODE(SQLITE_BUSY_TIMEOUT), SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_NOTEMPDIR),
      SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_ISDIR), SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_FULLPATH),
      SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_CONVPATH), SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_DIRTYWAL),
      SLUICE_SQLITE_CODE(SQLITE_CANTOPEN_SYMLINK), SLUICE_SQLITE_CODE(SQLITE_CORRUPT_VTAB),
      SLUICE_SQLITE_CODE(SQLITE_CORRUPT_SEQUENCE), SLUICE_SQLITE_CODE(SQLITE_CORRUPT_INDEX),
      SLUICE_SQLITE_CODE(SQLITE_READONLY_RECOVERY), SLUICE_SQLITE_CODE(SQLITE_READONLY_CANTLOCK),
      SLUICE_SQLITE_CODE(SQLITE_READONLY_ROLLBACK), SLUICE_SQLITE_CODE(SQLITE_READONLY_DBMOVED),
      SLUICE_SQLITE_CODE(SQLITE_READONLY_CANTINIT), SLUICE_SQLITE_CODE(SQLITE_READONLY_DIRECTORY),
      SLUICE_SQLITE_CODE(SQLITE_ABORT_ROLLBACK), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_CHECK),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_COMMITHOOK), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_FOREIGNKEY),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_FUNCTION), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_NOTNULL),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_PRIMARYKEY), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_TRIGGER),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_UNIQUE), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_VTAB),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_ROWID), SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_PINNED),
      SLUICE_SQLITE_CODE(SQLITE_CONSTRAINT_DATATYPE), SLUICE_SQLITE_CODE(SQLITE_AUTH_USER),
  };
#undef SLUICE_SQLITE_CODE
  for (const auto& n : kNames) {
    if (n.code == rc) return std::string(n.name) + " (" + std::to_string(rc) + ")";
  }
  for (const auto& n : kNames) {
    if (n.code == (rc & 0xff)) return std::string(n.name) + " (" + std::to_string(rc) + ")";
  }
  return "SQLite result code " + std::to_string(rc);
}

}  // namespace sluice::db
