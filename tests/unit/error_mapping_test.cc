// The error tables of both adapters (every SQLSTATE class, every SQLite
// primary result code) and the libpq parameters sluice connects with. No
// server: these are pure functions; tests/integration/error_classes_test.cc
// provokes the same errors on real databases.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>

#include "db/postgres/postgres_adapter.h"
#include "db/postgres/postgres_errors.h"
#include "db/sqlite/sqlite_errors.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using db::PostgresErrorCode;
using db::SqliteErrorCode;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PostgresErrorCode, EveryClassByNextAction) {
  struct Case {
    const char* sqlstate;
    StatusCode code;
  };
  const Case cases[] = {
      // retry later
      {"08006", StatusCode::kUnavailable},  // connection_failure
      {"08001", StatusCode::kUnavailable},  // sqlclient_unable_to_establish_sqlconnection
      {"57P01", StatusCode::kUnavailable},  // admin_shutdown
      {"57P02", StatusCode::kUnavailable},  // crash_shutdown
      {"57P03", StatusCode::kUnavailable},  // cannot_connect_now
      {"57P05", StatusCode::kUnavailable},  // idle_session_timeout
      {"57000", StatusCode::kUnavailable},  // operator_intervention
      {"25P03", StatusCode::kUnavailable},  // idle_in_transaction_session_timeout
      {"58030", StatusCode::kUnavailable},  // io_error
      {"58000", StatusCode::kUnavailable},  // system_error
      {"XX000", StatusCode::kUnavailable},  // internal_error
      {"40001", StatusCode::kAborted},      // serialization_failure
      {"40P01", StatusCode::kAborted},      // deadlock_detected
      {"40002", StatusCode::kAborted},      // transaction_integrity_constraint_violation
      {"40003", StatusCode::kInDoubt},      // statement_completion_unknown
      {"55P03", StatusCode::kAborted},      // lock_not_available
      {"25P02", StatusCode::kAborted},      // in_failed_sql_transaction
      {"72000", StatusCode::kAborted},      // snapshot_too_old
      {"53100", StatusCode::kResourceExhausted},  // disk_full
      {"53200", StatusCode::kResourceExhausted},  // out_of_memory
      {"53300", StatusCode::kResourceExhausted},  // too_many_connections
      {"53400", StatusCode::kResourceExhausted},  // configuration_limit_exceeded
      // grant a privilege
      {"28000", StatusCode::kPermissionDenied},  // invalid_authorization_specification
      {"28P01", StatusCode::kPermissionDenied},  // invalid_password
      {"42501", StatusCode::kPermissionDenied},  // insufficient_privilege
      {"0L000", StatusCode::kPermissionDenied},  // invalid_grantor
      {"0P000", StatusCode::kPermissionDenied},  // invalid_role_specification
      // fix the SQL or the name
      {"42601", StatusCode::kInvalidArgument},  // syntax_error
      {"42804", StatusCode::kInvalidArgument},  // datatype_mismatch
      {"42P01", StatusCode::kNotFound},         // undefined_table
      {"42703", StatusCode::kNotFound},         // undefined_column
      {"42883", StatusCode::kNotFound},         // undefined_function
      {"42704", StatusCode::kNotFound},         // undefined_object
      {"3D000", StatusCode::kNotFound},         // invalid_catalog_name
      {"3F000", StatusCode::kNotFound},         // invalid_schema_name
      {"57P04", StatusCode::kNotFound},         // database_dropped
      {"42P07", StatusCode::kAlreadyExists},    // duplicate_table
      {"42701", StatusCode::kAlreadyExists},    // duplicate_column
      {"42710", StatusCode::kAlreadyExists},    // duplicate_object
      {"42P06", StatusCode::kAlreadyExists},    // duplicate_schema
      {"20000", StatusCode::kInvalidArgument},  // case_not_found
      {"21000", StatusCode::kInvalidArgument},  // cardinality_violation
      {"2F005", StatusCode::kInvalidArgument},  // function_executed_no_return_statement
      {"38001", StatusCode::kInvalidArgument},  // containing_sql_not_permitted
      {"39P01", StatusCode::kInvalidArgument},  // trigger_protocol_violated
      {"0F001", StatusCode::kInvalidArgument},  // invalid_locator_specification
      // an operator must act
      {"22012", StatusCode::kFailedPrecondition},  // division_by_zero
      {"22P02", StatusCode::kFailedPrecondition},  // invalid_text_representation
      {"23505", StatusCode::kFailedPrecondition},  // unique_violation
      {"23502", StatusCode::kFailedPrecondition},  // not_null_violation
      {"27000", StatusCode::kFailedPrecondition},  // triggered_data_change_violation
      {"44000", StatusCode::kFailedPrecondition},  // with_check_option_violation
      {"09000", StatusCode::kFailedPrecondition},  // triggered_action_exception
      {"2BP01", StatusCode::kFailedPrecondition},  // dependent_objects_still_exist
      {"0A000", StatusCode::kFailedPrecondition},  // feature_not_supported
      {"54000", StatusCode::kFailedPrecondition},  // program_limit_exceeded
      {"55000", StatusCode::kFailedPrecondition},  // object_not_in_prerequisite_state
      {"55006", StatusCode::kFailedPrecondition},  // object_in_use
      {"25006", StatusCode::kFailedPrecondition},  // read_only_sql_transaction
      {"P0001", StatusCode::kFailedPrecondition},  // raise_exception
      {"P0004", StatusCode::kFailedPrecondition},  // assert_failure
      {"F0000", StatusCode::kFailedPrecondition},  // config_file_error
      {"XX001", StatusCode::kFailedPrecondition},  // data_corrupted
      {"XX002", StatusCode::kFailedPrecondition},  // index_corrupted
      {"58P01", StatusCode::kFailedPrecondition},  // undefined_file
      {"HV00N", StatusCode::kFailedPrecondition},  // fdw_unable_to_establish_connection
      {"ZZ999", StatusCode::kFailedPrecondition},  // a class this table does not know
      // a bug in sluice
      {"0B000", StatusCode::kInternal},  // invalid_transaction_initiation
      {"24000", StatusCode::kInternal},  // invalid_cursor_state
      {"25001", StatusCode::kInternal},  // active_sql_transaction
      {"26000", StatusCode::kInternal},  // invalid_sql_statement_name
      {"2D000", StatusCode::kInternal},  // invalid_transaction_termination
      {"34000", StatusCode::kInternal},  // invalid_cursor_name
      {"3B000", StatusCode::kInternal},  // savepoint_exception
      {"03000", StatusCode::kInternal},  // sql_statement_not_yet_complete
      {"0Z000", StatusCode::kInternal},  // diagnostics_exception
  };
  for (const auto& c : cases) {
    EXPECT_EQ(StatusCodeName(PostgresErrorCode(c.sqlstate, "msg")), StatusCodeName(c.code)) << c.sqlstate;
  }
  // libpq's own errors (no SQLSTATE): the connection is in question.
  EXPECT_EQ(PostgresErrorCode("", "server closed the connection unexpectedly"), StatusCode::kUnavailable);
}

TEST(PostgresErrorCode, NothingUnknownClaimsABadCommandLine) {
  // Every two-character class prefix that is not a syntax/SQL class must
  // not read as kInvalidArgument (exit 2, "bad command line").
  const std::string sql_classes[] = {"42", "20", "21", "2F", "38", "39", "0F"};
  const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (char a : std::string_view(alphabet)) {
    for (char b : std::string_view(alphabet)) {
      std::string cls{a, b};
      if (std::find(std::begin(sql_classes), std::end(sql_classes), cls) != std::end(sql_classes)) continue;
      EXPECT_NE(PostgresErrorCode(cls + "999", "msg"), StatusCode::kInvalidArgument) << cls;
    }
  }
}

TEST(PostgresErrorCode, StatementTimeoutIsNotACancel) {
  EXPECT_EQ(PostgresErrorCode("57014", "canceling statement due to statement timeout"), StatusCode::kAborted);
  EXPECT_TRUE(db::IsStatementTimeout("57014", "canceling statement due to statement timeout"));
  EXPECT_EQ(PostgresErrorCode("57014", "canceling statement due to user request"), StatusCode::kCancelled);
  EXPECT_FALSE(db::IsStatementTimeout("57014", "canceling statement due to user request"));
  // lock_timeout has its own SQLSTATE.
  EXPECT_FALSE(db::IsStatementTimeout("55P03", "canceling statement due to lock timeout"));
}

TEST(SqliteErrorCode, EveryPrimaryCodeByNextAction) {
  struct Case {
    int rc;
    const char* message;
    StatusCode code;
    const char* name;
  };
  const Case cases[] = {
      {1, "near \"SELEC\": syntax error", StatusCode::kInvalidArgument, "SQLITE_ERROR (1)"},
      {1, "no such table: orders", StatusCode::kNotFound, "SQLITE_ERROR (1)"},
      {1, "no such column: amout", StatusCode::kNotFound, "SQLITE_ERROR (1)"},
      {1, "table orders already exists", StatusCode::kAlreadyExists, "SQLITE_ERROR (1)"},
      {2, "", StatusCode::kInternal, "SQLITE_INTERNAL (2)"},
      {3, "", StatusCode::kPermissionDenied, "SQLITE_PERM (3)"},
      {4, "", StatusCode::kAborted, "SQLITE_ABORT (4)"},
      {5, "", StatusCode::kAborted, "SQLITE_BUSY (5)"},
      {5 | (2 << 8), "", StatusCode::kAborted, "SQLITE_BUSY_SNAPSHOT (517)"},
      {6, "", StatusCode::kAborted, "SQLITE_LOCKED (6)"},
      {7, "", StatusCode::kResourceExhausted, "SQLITE_NOMEM (7)"},
      {8, "", StatusCode::kPermissionDenied, "SQLITE_READONLY (8)"},
      {8 | (4 << 8), "", StatusCode::kPermissionDenied, "SQLITE_READONLY_DBMOVED (1032)"},
      {9, "", StatusCode::kCancelled, "SQLITE_INTERRUPT (9)"},
      {10, "", StatusCode::kUnavailable, "SQLITE_IOERR (10)"},
      {10 | (3 << 8), "", StatusCode::kUnavailable, "SQLITE_IOERR_WRITE (778)"},
      {10 | (12 << 8), "", StatusCode::kResourceExhausted, "SQLITE_IOERR_NOMEM (3082)"},
      {11, "", StatusCode::kFailedPrecondition, "SQLITE_CORRUPT (11)"},
      {12, "", StatusCode::kInternal, "SQLITE_NOTFOUND (12)"},
      {13, "", StatusCode::kResourceExhausted, "SQLITE_FULL (13)"},
      {14, "", StatusCode::kUnavailable, "SQLITE_CANTOPEN (14)"},
      {15, "", StatusCode::kAborted, "SQLITE_PROTOCOL (15)"},
      {16, "", StatusCode::kInternal, "SQLITE_EMPTY (16)"},
      {17, "", StatusCode::kAborted, "SQLITE_SCHEMA (17)"},
      {18, "", StatusCode::kFailedPrecondition, "SQLITE_TOOBIG (18)"},
      {19, "", StatusCode::kFailedPrecondition, "SQLITE_CONSTRAINT (19)"},
      {19 | (8 << 8), "", StatusCode::kFailedPrecondition, "SQLITE_CONSTRAINT_UNIQUE (2067)"},
      {20, "", StatusCode::kFailedPrecondition, "SQLITE_MISMATCH (20)"},
      {21, "", StatusCode::kInternal, "SQLITE_MISUSE (21)"},
      {22, "", StatusCode::kFailedPrecondition, "SQLITE_NOLFS (22)"},
      {23, "", StatusCode::kPermissionDenied, "SQLITE_AUTH (23)"},
      {24, "", StatusCode::kInternal, "SQLITE_FORMAT (24)"},
      {25, "", StatusCode::kInternal, "SQLITE_RANGE (25)"},
      {26, "", StatusCode::kFailedPrecondition, "SQLITE_NOTADB (26)"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(StatusCodeName(SqliteErrorCode(c.rc, c.message)), StatusCodeName(c.code)) << c.rc << " " << c.message;
    EXPECT_EQ(db::SqliteCodeName(c.rc), c.name);
  }
  // sluice's own statement timeout interrupted it.
  EXPECT_EQ(SqliteErrorCode(9, "interrupted", /*deadline_passed=*/true), StatusCode::kAborted);
}

// --- the libpq parameters sluice connects with ------------------------------------

// keyword -> value of BuildPostgresConnectParams, "" when absent.
std::map<std::string, std::string> Params(const std::string& conninfo) {
  auto p = db::BuildPostgresConnectParams(conninfo);
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::map<std::string, std::string> out;
  if (!p.ok()) return out;
  EXPECT_EQ(p->keywords.size(), p->values.size());
  for (size_t i = 0; i < p->keywords.size(); ++i) out[p->keywords[i]] = p->values[i];
  // The user's string comes last, so that its values override the defaults.
  if (!conninfo.empty()) {
    EXPECT_EQ(p->keywords.back(), "dbname");
  }
  return out;
}

class ConnectDefaults : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"PGCONNECT_TIMEOUT", "PGSERVICE", "PGSERVICEFILE"}) unsetenv(v);
  }
  void TearDown() override { SetUp(); }
};

TEST_F(ConnectDefaults, AddedToAUrlAndAKeyValueStringThatSetNone) {
  for (const std::string conninfo : {"postgresql://app@db.internal:5432/appdb", "host=db.internal dbname=appdb"}) {
    SCOPED_TRACE(conninfo);
    auto p = Params(conninfo);
    EXPECT_EQ(p["connect_timeout"], "10");
    EXPECT_EQ(p["keepalives"], "1");
    EXPECT_EQ(p["keepalives_idle"], "30");
    EXPECT_EQ(p["keepalives_interval"], "10");
    EXPECT_EQ(p["keepalives_count"], "3");
    EXPECT_EQ(p["dbname"], conninfo);
  }
  // Only the PG* environment: the defaults and no dbname entry.
  auto p = Params("");
  EXPECT_EQ(p["connect_timeout"], "10");
  EXPECT_EQ(p.count("dbname"), 0u);
}

TEST_F(ConnectDefaults, TheUsersValuesWin) {
  auto url = Params("postgresql://app@db/appdb?connect_timeout=3&keepalives_idle=5");
  EXPECT_EQ(url.count("connect_timeout"), 0u);
  EXPECT_EQ(url.count("keepalives_idle"), 0u);
  EXPECT_EQ(url["keepalives_count"], "3");

  auto kv = Params("host=db dbname=appdb keepalives=0 keepalives_count=9");
  EXPECT_EQ(kv.count("keepalives"), 0u);
  EXPECT_EQ(kv.count("keepalives_count"), 0u);
  EXPECT_EQ(kv["connect_timeout"], "10");

  setenv("PGCONNECT_TIMEOUT", "7", 1);
  auto env = Params("postgresql://app@db/appdb");
  EXPECT_EQ(env.count("connect_timeout"), 0u);
  EXPECT_EQ(env["keepalives"], "1");

  // A service file is the user's whole configuration: no defaults.
  auto svc = Params("service=prod dbname=appdb");
  EXPECT_EQ(svc.count("connect_timeout"), 0u);
  EXPECT_EQ(svc.count("keepalives"), 0u);
}

TEST_F(ConnectDefaults, AMalformedStringIsInvalidAndNotEchoed) {
  auto p = db::BuildPostgresConnectParams("password=s3cret host");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("malformed PostgreSQL connection string"));
  EXPECT_THAT(p.status().message(), Not(HasSubstr("s3cret")));

  auto u = db::BuildPostgresConnectParams("postgresql://app@db/appdb?no_such_option=1");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice::testing
