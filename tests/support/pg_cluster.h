// A real, throwaway PostgreSQL 15 server for tests.
//
// PgCluster::Shared() starts one server per test process, lazily, on first
// use: initdb into a fresh mkdtemp directory under /tmp, listening on
// 127.0.0.1 on a free TCP port and on a unix socket inside that directory.
// The server is never the machine's system cluster.
//
// Lifetime:
//  * stopped (pg_ctl stop -m immediate) and its directory removed by a
//    ::testing::Environment TearDown and by std::atexit, in the process
//    that started it;
//  * if the test process dies (kill -9, crash, ctest timeout), a detached
//    watchdog process notices (EOF on a pipe whose write end only the test
//    process holds) and stops the server and removes the directory.
//
// When the tests run as root, initdb/pg_ctl/postgres and the watchdog run as
// the unprivileged `nobody` user, which owns the directory. The cluster's
// superuser role is `postgres`, with trust auth on 127.0.0.1 and the socket.
//
// Start-up failures never skip: ok() is false, error() says why, and tests
// should ASSERT on it (SLUICE_ASSERT_PG_OK).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "common/thread_annotations.h"

namespace sluice::testing {

class PgCluster {
 public:
  // Process-wide cluster, started on first call. Never null; check ok().
  static PgCluster* Shared();
  // A second process-wide cluster (its own directory, port and watchdog;
  // same lifetime as Shared()), for tests that need two servers, such as a
  // fleet spread over two clusters.
  static PgCluster* Second();
  // Sets shared_preload_libraries (e.g. "pg_stat_statements") for the
  // cluster Shared() starts next: call it before the process's first
  // Shared(). A test binary that needs a preloaded library uses this; the
  // others keep the plain cluster.
  static void SetSharedPreloadLibraries(const std::string& libraries);
  // postgresql.conf lines (e.g. "logging_collector = on") for the cluster
  // Shared() starts next; same rules as SetSharedPreloadLibraries.
  static void SetExtraConfig(const std::string& lines);

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  bool ok() const;
  std::string error() const;

  // Creates a fresh database named <prefix><counter>_<pid> (prefix is
  // lower-cased, non [a-z0-9_] characters become '_') and returns
  // postgresql://postgres@127.0.0.1:PORT/DBNAME. Returns "" and fails the
  // current test on error.
  std::string CreateDatabase(const std::string& prefix = "t");

  // Creates a LOGIN role (NOSUPERUSER NOCREATEDB NOCREATEROLE) that owns
  // database `db` (a name or a URL from CreateDatabase) and has CREATE on
  // it; returns postgresql://ROLE@127.0.0.1:PORT/DBNAME. "" on error.
  std::string CreateOwnerRole(const std::string& db);

  // postgresql://postgres@127.0.0.1:PORT/<db>
  std::string Url(const std::string& db) const;
  // Same database over the unix socket:
  // postgresql://postgres@/<db>?host=<socket_dir>&port=PORT
  std::string SocketUrl(const std::string& db) const;

  // Runs `sql` through libpq (PQexec) on `db` (a database name, connected as
  // postgres, or a postgres:// / postgresql:// URL) and returns the first
  // column of the first row as text ("" for NULL, no rows or a command
  // without result). On error: ADD_FAILURE() and "".
  std::string Psql(const std::string& db, const std::string& sql);
  // All rows; NULL becomes "<NULL>". On error: ADD_FAILURE() and {}.
  std::vector<std::vector<std::string>> PsqlRows(const std::string& db, const std::string& sql);
  // Like Psql but reports errors instead of failing the test: returns true
  // on success and sets *value (first column of first row); otherwise false
  // and *error.
  bool TryPsql(const std::string& db, const std::string& sql, std::string* value, std::string* error);

  // Fast shutdown (waits). The data and port are kept for Start().
  void Stop();
  // Starts the stopped server again on the same port (retries briefly if
  // the port is momentarily busy). Fails the current test on error.
  void Start();
  // Stop() + Start().
  void Restart();
  // True while the server accepts connections (pg_ctl status).
  bool running() const;

  // Stops the server immediately and removes its directory. Idempotent;
  // Shared() starts a new cluster afterwards. Called at exit.
  void Shutdown();

  int port() const { return port_; }
  std::string socket_dir() const { return dir_; }
  std::string data_dir() const { return dir_.empty() ? "" : dir_ + "/data"; }
  std::string log_path() const { return dir_.empty() ? "" : dir_ + "/server.log"; }
  static std::string bin_dir();
  // Last `max_bytes` of the server log (for failure messages).
  std::string LogTail(size_t max_bytes = 4000) const;
  // Wall time the last successful initdb + first start took, in ms.
  double start_ms() const { return start_ms_; }
  // The uid the server runs as (nobody when the tests run as root).
  unsigned server_uid() const { return uid_; }

 private:
  PgCluster() = default;
  // `*slot`, created once (`once`) and started if it is not running.
  static PgCluster* Started(PgCluster** slot, std::once_flag* once);
  void Init() EXCLUSIVE_LOCKS_REQUIRED(mu_);  // initdb + start; sets error_ on failure.
  bool StartOnce(int port, std::string* err);
  // Runs bin_dir()/<tool> with args as the server user, waits, returns exit
  // code and output (stdout+stderr).
  int RunTool(const std::string& tool, const std::vector<std::string>& args, std::string* output) const;
  bool StartWatchdog(std::string* err);

  // Guards the cluster's life cycle (Init, Stop, Start, Shutdown) and its
  // outcome. dir_, port_ and the ids below are written only there and read
  // without the lock while the cluster is up.
  mutable Mutex mu_;
  bool initialized_ GUARDED_BY(mu_) = false;
  std::string error_ GUARDED_BY(mu_);
  std::string dir_;
  int port_ = 0;
  unsigned uid_ = 0;
  unsigned gid_ = 0;
  bool drop_privileges_ = false;
  int watchdog_fd_ = -1;  // write end; closing it (or dying) wakes the watchdog
  int owner_pid_ = 0;
  double start_ms_ = 0;
  std::atomic<int> counter_{0};
};

#define SLUICE_ASSERT_PG_OK(cluster)                                         \
  do {                                                                       \
    ::sluice::testing::PgCluster* c_ = (cluster);                            \
    ASSERT_TRUE(c_->ok()) << "PostgreSQL test cluster: " << c_->error();     \
  } while (0)

}  // namespace sluice::testing
