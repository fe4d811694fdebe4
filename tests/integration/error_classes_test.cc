// Error classes on real databases: each error is provoked for real (a role
// with CONNECTION LIMIT 1, pg_terminate_backend, a role without a
// privilege, statement_timeout, temp_file_limit, a read-only SQLite file,
// PRAGMA max_page_count ...) and must come back with the StatusCode that
// says what to do next, the SQLSTATE / SQLite code in detail(), and - for the
// sluice binary - the exit code docs/cli.md documents. Also: session setup
// survives Reconnect, and sluice's libpq defaults are in effect unless the
// URL sets its own.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "db/adapter.h"
#include "db/postgres/postgres_adapter.h"
#include "db/sqlite/sqlite_adapter.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

PgCluster* Pg() { return PgCluster::Shared(); }

std::string DbName(const std::string& url) { return url.substr(url.rfind('/') + 1); }

std::string RoleUrl(const std::string& role, const std::string& db_url) {
  return "postgresql://" + role + "@127.0.0.1:" + std::to_string(Pg()->port()) + "/" + DbName(db_url);
}

std::string UniqueRole(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + std::to_string(n++) + "_" + std::to_string(getpid());
}

std::unique_ptr<db::Connection> Connect(db::Adapter& a) {
  auto c = a.Connect();
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

std::unique_ptr<db::Adapter> Adapter(const std::string& url) {
  auto a = db::OpenAdapter(url);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? std::move(*a) : nullptr;
}

std::string Scalar(db::Connection& c, const std::string& sql) {
  auto r = c.Query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
  return r.ok() && !r->rows.empty() ? r->rows[0][0].text : "<error>";
}

// `s` has `code` and its detail contains `detail`.
#define EXPECT_CODE(s, code_, detail_)                                                      \
  do {                                                                                      \
    ::sluice::Status st_ = (s);                                                             \
    EXPECT_EQ(StatusCodeName(st_.code()), StatusCodeName(code_)) << st_.message();          \
    EXPECT_THAT(st_.detail(), HasSubstr(detail_)) << st_.message();                         \
  } while (0)

// --- PostgreSQL ------------------------------------------------------------------------

class PgErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_ASSERT_PG_OK(Pg());
    url_ = Pg()->CreateDatabase("errcls");
    ASSERT_FALSE(url_.empty());
  }
  std::string url_;
};

TEST_F(PgErrors, TooManyConnectionsIsResourceExhausted) {
  std::string role = UniqueRole("limited");
  Pg()->Psql(url_, "CREATE ROLE " + role + " LOGIN CONNECTION LIMIT 1");
  auto a = Adapter(RoleUrl(role, url_));
  ASSERT_NE(a, nullptr);
  auto first = Connect(*a);
  ASSERT_NE(first, nullptr);
  auto second = a->Connect();
  ASSERT_FALSE(second.ok());
  EXPECT_CODE(second.status(), StatusCode::kResourceExhausted, "SQLSTATE 53300");
  EXPECT_THAT(second.status().message(), HasSubstr("too many connections"));
  // The verbose libpq message is cleaned up: no code inside, one line.
  EXPECT_THAT(second.status().message(), ::testing::Not(HasSubstr("53300:")));
  EXPECT_THAT(second.status().message(), ::testing::Not(HasSubstr("LOCATION")));

  // The sluice binary: exit 5 (retry later), the SQLSTATE on stderr.
  CommandResult r = RunSluice({"--db", RoleUrl(role, url_), "status"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_THAT(r.err, HasSubstr("sluice: detail: SQLSTATE 53300"));

  // Freed: the next connection works.
  first.reset();
  auto third = a->Connect();
  // The server notices the closed session asynchronously; retry briefly.
  for (int i = 0; i < 100 && !third.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    third = a->Connect();
  }
  EXPECT_TRUE(third.ok()) << third.status().message();
}

TEST_F(PgErrors, RefusedLoginsAreNotRetried) {
  std::string nologin = UniqueRole("nologin");
  Pg()->Psql(url_, "CREATE ROLE " + nologin + " NOLOGIN");
  auto a = Adapter(RoleUrl(nologin, url_));
  ASSERT_NE(a, nullptr);
  auto c = a->Connect();
  ASSERT_FALSE(c.ok());
  EXPECT_CODE(c.status(), StatusCode::kPermissionDenied, "SQLSTATE 28000");

  auto missing = Adapter(Pg()->Url("no_such_database_here"));
  auto m = missing->Connect();
  ASSERT_FALSE(m.ok());
  EXPECT_CODE(m.status(), StatusCode::kNotFound, "SQLSTATE 3D000");

  // Nothing listens on port 1: the connection is refused (no SQLSTATE).
  auto refused = Adapter("postgresql://postgres@127.0.0.1:1/x");
  auto f = refused->Connect();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kUnavailable) << f.status().message();
  CommandResult r = RunSluice({"--db", "postgresql://postgres@127.0.0.1:1/x", "status"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

TEST_F(PgErrors, AdminShutdownThenReconnectReappliesTheSessionSetup) {
  Pg()->Psql(url_, "CREATE SCHEMA audit; CREATE TABLE audit.marker (v text); INSERT INTO audit.marker VALUES ('a')");
  auto a = Adapter(url_);
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  SLUICE_ASSERT_OK(c->AddSessionSetup("SET search_path = audit, public"));
  SLUICE_ASSERT_OK(c->AddSessionSetup("SET sluice_test.marker = 'kept'"));
  SLUICE_ASSERT_OK(c->AddSessionSetup(c->dialect().StatementTimeoutSql(60000)));
  // A plain Exec is not session setup: a reconnect forgets it.
  SLUICE_ASSERT_OK(c->Exec("SET work_mem = '7MB'"));
  std::string pid = Scalar(*c, "SELECT pg_backend_pid()");

  EXPECT_EQ(Pg()->Psql(url_, "SELECT pg_terminate_backend(" + pid + ", 10000)"), "t");
  auto lost = c->Query("SELECT 1");
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable) << lost.status().message();

  SLUICE_ASSERT_OK(c->Reconnect());
  EXPECT_NE(Scalar(*c, "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(Scalar(*c, "SHOW search_path"), "audit, public");
  EXPECT_EQ(Scalar(*c, "SELECT current_setting('sluice_test.marker')"), "kept");
  EXPECT_EQ(Scalar(*c, "SHOW statement_timeout"), "1min");
  EXPECT_EQ(Scalar(*c, "SELECT v FROM marker"), "a");  // unqualified: through search_path
  EXPECT_EQ(Scalar(*c, "SHOW work_mem"), "4MB");       // the server default again
}

TEST_F(PgErrors, AFailedReapplyLeavesTheConnectionClosed) {
  Pg()->Psql(url_, "CREATE TABLE needed (x int)");
  auto a = Adapter(url_);
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  SLUICE_ASSERT_OK(c->AddSessionSetup("SELECT 1 FROM needed LIMIT 0"));
  // A failed setup statement is not remembered.
  Status bad = c->AddSessionSetup("SELECT 1 FROM not_there");
  EXPECT_CODE(bad, StatusCode::kNotFound, "SQLSTATE 42P01");
  Pg()->Psql(url_, "DROP TABLE needed");

  Status s = c->Reconnect();
  EXPECT_CODE(s, StatusCode::kNotFound, "SQLSTATE 42P01");
  EXPECT_THAT(s.message(), HasSubstr("re-applying the session setup"));
  auto q = c->Query("SELECT 1");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kUnavailable);

  Pg()->Psql(url_, "CREATE TABLE needed (x int)");
  SLUICE_ASSERT_OK(c->Reconnect());
  EXPECT_EQ(Scalar(*c, "SELECT 1"), "1");

  // Refused inside a transaction: a rollback would undo it.
  SLUICE_ASSERT_OK(c->Begin());
  EXPECT_EQ(c->AddSessionSetup("SET search_path = public").code(), StatusCode::kInternal);
  SLUICE_ASSERT_OK(c->Rollback());
}

TEST_F(PgErrors, PermissionDeniedAndItsExitCode) {
  Pg()->Psql(url_, "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a')");
  std::string owner = Pg()->CreateOwnerRole(url_);
  ASSERT_FALSE(owner.empty());
  auto a = Adapter(owner);
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  auto r = c->Query("SELECT * FROM orders");
  ASSERT_FALSE(r.ok());
  EXPECT_CODE(r.status(), StatusCode::kPermissionDenied, "SQLSTATE 42501");
  EXPECT_THAT(r.status().message(), HasSubstr("permission denied"));

  // `start` as a role that does not own the table: exit 6, nothing changed.
  TempDir dir;
  std::string plan = dir.Write("001_note.yaml", R"(operations:
  - add_column:
      table: orders
      column: {name: note2, type: text, nullable: true}
)");
  CommandResult cli = RunSluice({"--db", owner, "start", plan});
  EXPECT_EQ(cli.exit_code, 6) << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("SQLSTATE 42501"));
  EXPECT_EQ(Pg()->Psql(url_, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'"), "2");
}

TEST_F(PgErrors, StatementTimeoutIsAbortedAndAUserCancelIsCancelled) {
  auto a = Adapter(url_);
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  std::string set = c->dialect().StatementTimeoutSql(100);
  EXPECT_EQ(set, "SET statement_timeout = '100ms'");
  SLUICE_ASSERT_OK(c->AddSessionSetup(set));
  auto r = c->Query("SELECT pg_sleep(30)");
  ASSERT_FALSE(r.ok());
  EXPECT_CODE(r.status(), StatusCode::kAborted, "SQLSTATE 57014");
  EXPECT_THAT(r.status().message(), HasSubstr("statement timed out"));
  EXPECT_EQ(Scalar(*c, "SELECT 1"), "1");  // the session is still good

  // pg_cancel_backend from another session: a cancel, not a timeout.
  auto other = Connect(*a);
  ASSERT_NE(other, nullptr);
  std::string pid = Scalar(*other, "SELECT pg_backend_pid()");
  Status cancelled;
  std::thread t([&] { cancelled = other->Query("SELECT pg_sleep(60)").status(); });
  bool seen = false;
  for (int i = 0; i < 1000 && !seen; ++i) {  // until the sleep is running
    seen = Pg()->Psql(url_, "SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                                " AND state = 'active' AND query LIKE '%pg_sleep(60)%'") == "1";
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(seen);
  Pg()->Psql(url_, "SELECT pg_cancel_backend(" + pid + ")");
  t.join();
  EXPECT_CODE(cancelled, StatusCode::kCancelled, "SQLSTATE 57014");
}

TEST_F(PgErrors, ServerErrorsByClass) {
  Pg()->Psql(url_, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')");
  auto a = Adapter(url_);
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  struct Case {
    const char* sql;
    StatusCode code;
    const char* sqlstate;
  };
  const Case cases[] = {
      {"SELEC 1", StatusCode::kInvalidArgument, "42601"},
      {"SELECT * FROM missing_table", StatusCode::kNotFound, "42P01"},
      {"SELECT nope FROM t", StatusCode::kNotFound, "42703"},
      {"CREATE TABLE t (x int)", StatusCode::kAlreadyExists, "42P07"},
      {"INSERT INTO t VALUES (1, 'dup')", StatusCode::kFailedPrecondition, "23505"},
      {"SELECT 1 / (id - 1) FROM t", StatusCode::kFailedPrecondition, "22012"},
      {"SELECT 'x'::int", StatusCode::kFailedPrecondition, "22P02"},
      {"DO $$ BEGIN RAISE EXCEPTION 'refused by a rule'; END $$", StatusCode::kFailedPrecondition, "P0001"},
  };
  for (const auto& k : cases) {
    Status s = c->Exec(k.sql);
    EXPECT_CODE(s, k.code, std::string("SQLSTATE ") + k.sqlstate);
  }

  // Resources: a temp file limit is class 53, like disk full.
  SLUICE_ASSERT_OK(c->Exec("SET temp_file_limit = '1MB'; SET work_mem = '64kB'"));
  auto big = c->Query("SELECT count(*) FROM (SELECT g FROM generate_series(1, 2000000) g ORDER BY g DESC) s");
  ASSERT_FALSE(big.ok());
  EXPECT_CODE(big.status(), StatusCode::kResourceExhausted, "SQLSTATE 53400");

  // Locks: lock_timeout is kAborted (retry).
  auto holder = Connect(*a);
  SLUICE_ASSERT_OK(holder->Begin());
  SLUICE_ASSERT_OK(holder->Exec("LOCK TABLE t IN ACCESS EXCLUSIVE MODE"));
  SLUICE_ASSERT_OK(c->Exec("SET lock_timeout = '50ms'"));
  auto blocked = c->Query("SELECT * FROM t");
  ASSERT_FALSE(blocked.ok());
  EXPECT_CODE(blocked.status(), StatusCode::kAborted, "SQLSTATE 55P03");
  SLUICE_ASSERT_OK(holder->Rollback());
}

TEST_F(PgErrors, ConnectionDefaultsUnlessTheUrlSetsThem) {
  auto plain = Adapter(url_);
  auto c = Connect(*plain);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*c, "connect_timeout"), "10");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*c, "keepalives"), "1");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*c, "keepalives_idle"), "30");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*c, "keepalives_interval"), "10");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*c, "keepalives_count"), "3");

  auto url = Adapter(url_ + "?connect_timeout=4&keepalives_idle=7");
  auto cu = Connect(*url);
  ASSERT_NE(cu, nullptr);
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*cu, "connect_timeout"), "4");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*cu, "keepalives_idle"), "7");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*cu, "keepalives_count"), "3");

  std::string kv = "host=127.0.0.1 port=" + std::to_string(Pg()->port()) + " user=postgres dbname=" + DbName(url_) +
                   " keepalives_count=9 connect_timeout=5";
  auto key_value = Adapter(kv);
  auto ck = Connect(*key_value);
  ASSERT_NE(ck, nullptr);
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*ck, "keepalives_count"), "9");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*ck, "connect_timeout"), "5");
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*ck, "keepalives_idle"), "30");
  EXPECT_EQ(Scalar(*ck, "SELECT current_database()"), DbName(url_));

  // Several hosts (libpq's blocking connect, which moves past a host that
  // times out): the defaults apply there too.
  std::string multi = "postgresql://postgres@127.0.0.1:1,127.0.0.1:" + std::to_string(Pg()->port()) + "/" +
                      DbName(url_);
  auto m = Adapter(multi);
  auto cm = Connect(*m);
  ASSERT_NE(cm, nullptr);
  EXPECT_EQ(db::TEST_PostgresConnectionOption(*cm, "keepalives"), "1");

  // A malformed URL is a bad argument, and its password is not echoed.
  auto bad = Adapter("postgresql://u:s3cret@127.0.0.1/db?bogus_option=1");
  ASSERT_NE(bad, nullptr);
  auto cb = bad->Connect();
  ASSERT_FALSE(cb.ok());
  EXPECT_EQ(cb.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(cb.status().message(), ::testing::Not(HasSubstr("s3cret")));
}

// --- SQLite --------------------------------------------------------------------------

class SqliteErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("app.db");
    auto a = db::MakeSqliteAdapter({path_, true, 10000});
    auto c = a->Connect();
    ASSERT_TRUE(c.ok()) << c.status().message();
    SLUICE_ASSERT_OK((*c)->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE); INSERT INTO t VALUES (1, 'a')"));
  }
  std::unique_ptr<db::Adapter> Open(int busy_timeout_ms = 10000) {
    return db::MakeSqliteAdapter({path_, false, busy_timeout_ms});
  }
  TempDir dir_;
  std::string path_;
};

TEST_F(SqliteErrors, ByPrimaryCode) {
  auto a = Open();
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  EXPECT_CODE(c->Exec("SELEC 1"), StatusCode::kInvalidArgument, "SQLITE_ERROR (1)");
  EXPECT_CODE(c->Exec("SELECT * FROM missing"), StatusCode::kNotFound, "SQLITE_ERROR (1)");
  EXPECT_CODE(c->Exec("CREATE TABLE t (x)"), StatusCode::kAlreadyExists, "SQLITE_ERROR (1)");
  EXPECT_CODE(c->Exec("INSERT INTO t VALUES (2, 'a')"), StatusCode::kFailedPrecondition,
              "SQLITE_CONSTRAINT_UNIQUE (2067)");

  // Read-only session: a permission problem, not a bad argument.
  SLUICE_ASSERT_OK(c->Exec("PRAGMA query_only = ON"));
  EXPECT_CODE(c->Exec("INSERT INTO t VALUES (3, 'c')"), StatusCode::kPermissionDenied, "SQLITE_READONLY (8)");
  SLUICE_ASSERT_OK(c->Exec("PRAGMA query_only = OFF"));

  // Disk full, for real: the database may not grow past its page limit.
  std::string pages = Scalar(*c, "PRAGMA page_count");
  SLUICE_ASSERT_OK(c->Exec("PRAGMA max_page_count = " + pages));
  EXPECT_CODE(c->Exec("INSERT INTO t (v) SELECT hex(randomblob(2000)) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL "
                      "SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5)"),
              StatusCode::kResourceExhausted, "SQLITE_FULL (13)");
  EXPECT_EQ(Scalar(*c, "SELECT count(*) FROM t"), "1");

  // Another connection holds the write lock past the busy timeout.
  auto quick = Open(50);
  auto holder = Connect(*quick);
  auto waiter = Connect(*quick);
  SLUICE_ASSERT_OK(holder->Begin());
  EXPECT_CODE(waiter->Begin(), StatusCode::kAborted, "SQLITE_BUSY");
  SLUICE_ASSERT_OK(holder->Rollback());

  // Not a database.
  std::string junk = dir_.Write("junk.db", std::string(4096, 'x'));
  auto j = db::MakeSqliteAdapter({junk, false, 100})->Connect();
  ASSERT_FALSE(j.ok());
  EXPECT_CODE(j.status(), StatusCode::kFailedPrecondition, "SQLITE_NOTADB (26)");
}

TEST_F(SqliteErrors, StatementTimeoutInterruptsAndSurvivesReconnect) {
  auto a = Open();
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  std::string set = c->dialect().StatementTimeoutSql(50);
  ASSERT_FALSE(set.empty());
  SLUICE_ASSERT_OK(c->AddSessionSetup(set));
  // About a minute of work without the timeout.
  const std::string slow = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000000) "
                           "SELECT count(*) FROM n";
  auto r = c->Query(slow);
  ASSERT_FALSE(r.ok());
  EXPECT_CODE(r.status(), StatusCode::kAborted, "SQLITE_INTERRUPT (9)");
  EXPECT_THAT(r.status().message(), HasSubstr("statement timed out"));
  EXPECT_EQ(Scalar(*c, "SELECT count(*) FROM t"), "1");  // short statements still run

  SLUICE_ASSERT_OK(c->Reconnect());
  auto again = c->Query(slow);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAborted) << again.status().message();

  SLUICE_ASSERT_OK(c->AddSessionSetup(c->dialect().StatementTimeoutSql(0)));  // no limit
  EXPECT_EQ(Scalar(*c, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000) "
                       "SELECT count(*) FROM n"),
            "100000");
}

TEST_F(SqliteErrors, ReconnectReappliesTheVersionSetup) {
  auto a = Open();
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  SLUICE_ASSERT_OK(c->AddSessionSetup("CREATE TEMP VIEW items AS SELECT id, upper(v) AS v FROM t"));
  SLUICE_ASSERT_OK(c->Exec("CREATE TEMP VIEW forgotten AS SELECT 1 AS x"));
  EXPECT_EQ(Scalar(*c, "SELECT v FROM items"), "A");
  SLUICE_ASSERT_OK(c->Reconnect());
  EXPECT_EQ(Scalar(*c, "SELECT v FROM items"), "A");
  // Reconnect really opened a new connection: plain TEMP objects are gone.
  EXPECT_EQ(c->Exec("SELECT x FROM forgotten").code(), StatusCode::kNotFound);
}

// A database file the user may not write: kPermissionDenied, and the sluice
// binary exits 6. Root ignores file modes, so as root the check runs as
// `nobody` (setpriv).
TEST_F(SqliteErrors, ReadOnlyFileIsPermissionDenied) {
  ASSERT_EQ(chmod(path_.c_str(), 0444), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  std::string plan = dir_.Write("001_note.yaml", R"(operations:
  - add_column:
      table: t
      column: {name: note, type: TEXT, nullable: true}
)");
  ASSERT_EQ(chmod(plan.c_str(), 0644), 0);
  std::string err_file = dir_.File("stderr.txt");
  std::string cmd = std::string(geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "") + "'" +
                    SLUICE_BINARY + "' --db 'sqlite:" + path_ + "' start '" + plan + "' > /dev/null 2> '" + err_file +
                    "'";
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  std::string err = ReadFile(err_file);
  EXPECT_EQ(WEXITSTATUS(status), 6) << err;
  EXPECT_THAT(err, HasSubstr("SQLITE_READONLY"));
  chmod(path_.c_str(), 0644);
  auto a = Open();
  auto c = Connect(*a);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Scalar(*c, "SELECT count(*) FROM pragma_table_info('t')"), "2");  // unchanged
}

}  // namespace
}  // namespace sluice::testing
