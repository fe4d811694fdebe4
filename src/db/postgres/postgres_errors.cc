#include "db/postgres/postgres_errors.h"

namespace sluice::db {

bool IsStatementTimeout(std::string_view sqlstate, std::string_view message) {
  return sqlstate == "57014" && message.find("statement timeout") != std::string_view::npos;
}

// Every SQLSTATE class, by what the caller must do next.
//
//   retry (the same command later; the backfill rides these out):
//     08     connection exception                           kUnavailable
//     57P01 admin_shutdown, 57P02 crash_shutdown,
//     57P03 cannot_connect_now, 57P05 idle_session_timeout,
//     57000 operator_intervention                           kUnavailable
//     25P03 idle_in_transaction_session_timeout             kUnavailable
//     58     system error (I/O error; 58P01/58P02 below)    kUnavailable
//     XX000  internal_error                                 kUnavailable
//            (server-side and often transient, e.g. "cache lookup failed"
//            under concurrent DDL; callers bound their retries, so a
//            persistent one still surfaces)
//     "" no SQLSTATE: libpq's own error (socket, protocol)  kUnavailable
//     40     transaction rollback (40001 serialization,
//            40P01 deadlock)                                kAborted
//     40003  statement_completion_unknown                   kInDoubt
//     55P03  lock_not_available (lock_timeout)              kAborted
//     57014  statement_timeout (IsStatementTimeout)         kAborted
//            (like lock_timeout: the server gave up on this statement
//            and its transaction; retry it, bounded)
//     25P02  in_failed_sql_transaction                      kAborted
//     72     snapshot_too_old                               kAborted
//     53     insufficient resources (53100 disk_full,
//            53200 out_of_memory, 53300 too_many_connections,
//            53400 configuration_limit_exceeded)            kResourceExhausted
//   stop, someone asked to:
//     57014  query_canceled otherwise (pg_cancel_backend)   kCancelled
//   grant a privilege (retrying will not help):
//     28     invalid authorization specification            kPermissionDenied
//     42501  insufficient_privilege                         kPermissionDenied
//     0L, 0P invalid grantor, invalid role specification    kPermissionDenied
//   fix the SQL or name (the statement itself is wrong):
//     42     syntax error or access rule violation          kInvalidArgument
//       42P01 42703 42883 42704 undefined table/column/
//             function/object                               kNotFound
//       42P07 42701 42710 42723 42P06 42P04 42712 42P03
//             42P05 duplicate_*                             kAlreadyExists
//     3D, 3F invalid catalog (database) / schema name       kNotFound
//     57P04  database_dropped                               kNotFound
//     20, 21 case not found, cardinality violation          kInvalidArgument
//     2F, 38, 39 SQL / external routine exceptions          kInvalidArgument
//     0F     locator exception                              kInvalidArgument
//   stop, an operator must act (the data or the database refuses):
//     22     data exception (the stored rows do not fit an
//            expression: division by zero, bad cast, ...)   kFailedPrecondition
//     23     integrity constraint violation                 kFailedPrecondition
//     27, 44 triggered data change, WITH CHECK OPTION       kFailedPrecondition
//     09     triggered action exception                     kFailedPrecondition
//     2B     dependent objects still exist                  kFailedPrecondition
//     0A     feature not supported                          kFailedPrecondition
//     54     program limit exceeded (index row too big)     kFailedPrecondition
//     55     object not in prerequisite state (but 55P03)   kFailedPrecondition
//     25006  read_only_sql_transaction (a standby?)         kFailedPrecondition
//     P0     PL/pgSQL raise / assert (a trigger refused)    kFailedPrecondition
//     F0     configuration file error                       kFailedPrecondition
//     XX001, XX002 data / index corrupted                   kFailedPrecondition
//     58P01, 58P02 undefined / duplicate file               kFailedPrecondition
//     anything else (HV foreign data wrappers, classes
//     added later)                                          kFailedPrecondition
//   a bug in how sluice drives the server:
//     00, 01, 02, 03, 0B, 0Z, 24, 25 (other), 26, 2D, 34, 3B  kInternal
//
// Nothing maps to kInvalidPlan: the adapter does not know where the SQL came
// from; the engine adds the plan location when it does.
StatusCode PostgresErrorCode(std::string_view state, std::string_view message) {
  if (state.size() != 5) return StatusCode::kUnavailable;
  const std::string_view cls = state.substr(0, 2);
  auto in = [&](std::initializer_list<std::string_view> codes) {
    for (auto c : codes) {
      if (state == c) return true;
    }
    return false;
  };
  // Single codes first, then their classes.
  if (state == "57014") return IsStatementTimeout(state, message) ? StatusCode::kAborted : StatusCode::kCancelled;
  if (state == "57P04") return StatusCode::kNotFound;
  if (state == "55P03" || state == "25P02") return StatusCode::kAborted;
  if (state == "25P03" || state == "25P04") return StatusCode::kUnavailable;
  if (state == "25006") return StatusCode::kFailedPrecondition;
  if (state == "40003") return StatusCode::kInDoubt;
  if (state == "42501") return StatusCode::kPermissionDenied;
  if (in({"42P01", "42703", "42883", "42704"})) return StatusCode::kNotFound;
  if (in({"42P07", "42701", "42710", "42723", "42P06", "42P04", "42712", "42P03", "42P05"})) {
    return StatusCode::kAlreadyExists;
  }
  if (state == "XX000") return StatusCode::kUnavailable;
  if (in({"58P01", "58P02"})) return StatusCode::kFailedPrecondition;

  if (cls == "08" || cls == "57" || cls == "58") return StatusCode::kUnavailable;
  if (cls == "40" || cls == "72") return StatusCode::kAborted;
  if (cls == "53") return StatusCode::kResourceExhausted;
  if (cls == "28" || cls == "0L" || cls == "0P") return StatusCode::kPermissionDenied;
  if (cls == "3D" || cls == "3F") return StatusCode::kNotFound;
  if (cls == "42" || cls == "20" || cls == "21" || cls == "2F" || cls == "38" || cls == "39" || cls == "0F") {
    return StatusCode::kInvalidArgument;
  }
  if (cls == "00" || cls == "01" || cls == "02" || cls == "03" || cls == "0B" || cls == "0Z" || cls == "24" ||
      cls == "25" || cls == "26" || cls == "2D" || cls == "34" || cls == "3B") {
    return StatusCode::kInternal;
  }
  // 22, 23, 27, 44, 09, 2B, 0A, 54, 55, P0, F0, XX001/XX002, HV and any
  // class this table does not know: stop and show the operator the error.
  return StatusCode::kFailedPrecondition;
}

}  // namespace sluice::db
