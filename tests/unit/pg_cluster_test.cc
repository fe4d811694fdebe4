// Tests of the PostgreSQL test harness itself (tests/support/pg_cluster.h).
#include "support/pg_cluster.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/test_support.h"

extern char** environ;

namespace sluice::testing {
namespace {

// Uid of a running process from /proc, or -1.
long ProcessUid(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

// True if pid is gone (or a zombie waiting for some other parent to reap).
bool ProcessGone(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return true;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0) return line.find('Z') != std::string::npos || line.find('X') != std::string::npos;
  }
  return true;
}

long PostmasterPid(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  long pid = -1;
  in >> pid;
  return pid;
}

std::string DbName(const std::string& url) { return url.substr(url.rfind('/') + 1); }

TEST(pg_cluster, StartsAndAnswersOnTcpAndSocket) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  EXPECT_EQ(c, PgCluster::Shared());
  EXPECT_GT(c->port(), 0);
  EXPECT_NE(c->port(), 5432);
  EXPECT_EQ(c->socket_dir().rfind("/tmp/sluice-pg-", 0), 0u) << c->socket_dir();
  EXPECT_EQ(c->bin_dir(), "/usr/lib/postgresql/15/bin");
  EXPECT_THAT(c->Psql("postgres", "SELECT version()"), ::testing::HasSubstr("PostgreSQL 15"));
  EXPECT_EQ(c->Psql("postgres", "SELECT current_user"), "postgres");
  EXPECT_EQ(c->Psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
  EXPECT_EQ(c->Psql("postgres", "SHOW port"), std::to_string(c->port()));
  EXPECT_EQ(c->Psql("postgres", "SHOW fsync"), "off");
  EXPECT_EQ(c->Psql("postgres", "SHOW synchronous_commit"), "off");
  EXPECT_EQ(c->Psql("postgres", "SHOW full_page_writes"), "off");
  EXPECT_EQ(c->Psql("postgres", "SHOW max_connections"), "200");
  EXPECT_EQ(c->Psql("postgres", "SHOW shared_buffers"), "128MB");
  EXPECT_EQ(c->Psql("postgres", "SELECT current_setting('data_directory')"), c->data_dir());
  // The unix socket lives in the cluster's own directory.
  EXPECT_TRUE(std::filesystem::exists(c->socket_dir() + "/.s.PGSQL." + std::to_string(c->port())));
  EXPECT_EQ(c->Psql(c->SocketUrl("postgres"), "SELECT 40 + 2"), "42");
  // TCP, not the socket, for the plain URL.
  EXPECT_EQ(c->Psql(c->Url("postgres"), "SELECT inet_server_addr()::text"), "127.0.0.1/32");
  EXPECT_TRUE(c->running());
  EXPECT_TRUE(std::filesystem::exists(c->log_path()));
  std::printf("[ pg      ] cluster started in %.0f ms on port %d in %s\n", c->start_ms(), c->port(),
              c->socket_dir().c_str());
}

TEST(pg_cluster, CreateDatabaseTwiceGivesIndependentDatabases) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  std::string a = c->CreateDatabase("Iso-Test");
  std::string b = c->CreateDatabase("Iso-Test");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_NE(a, b);
  std::string prefix = "postgresql://postgres@127.0.0.1:" + std::to_string(c->port()) + "/iso_test";
  EXPECT_EQ(a.rfind(prefix, 0), 0u) << a;
  EXPECT_THAT(DbName(a), ::testing::EndsWith("_" + std::to_string(getpid())));

  c->Psql(a, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'in a')");
  EXPECT_EQ(c->Psql(a, "SELECT v FROM t WHERE id = 1"), "in a");
  EXPECT_EQ(c->Psql(b, "SELECT to_regclass('public.t') IS NULL"), "t");
  c->Psql(b, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'in b')");
  EXPECT_EQ(c->Psql(a, "SELECT v FROM t WHERE id = 1"), "in a");
  EXPECT_EQ(c->Psql(b, "SELECT v FROM t WHERE id = 1"), "in b");
  EXPECT_EQ(c->Psql(a, "SELECT current_database()"), DbName(a));
  EXPECT_EQ(c->Psql(DbName(b), "SELECT current_database()"), DbName(b));
}

TEST(pg_cluster, QueriesWorkThroughTheUrl) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  std::string url = c->CreateDatabase("url");
  ASSERT_FALSE(url.empty());
  EXPECT_EQ(url, c->Url(DbName(url)));
  c->Psql(url, "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)");
  c->Psql(url, "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g");
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM items"), "1000");
  EXPECT_EQ(c->Psql(url, "SELECT NULL"), "");
  auto rows = c->PsqlRows(url, "SELECT id, name FROM items WHERE id <= 2 ORDER BY id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"2", "item 2"}));

  std::string value, err;
  EXPECT_FALSE(c->TryPsql(url, "SELECT * FROM no_such_table", &value, &err));
  EXPECT_THAT(err, ::testing::HasSubstr("no_such_table"));
}

TEST(pg_cluster, ServerDoesNotRunAsRoot) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  std::string data_dir = c->Psql("postgres", "SELECT current_setting('data_directory')");
  ASSERT_FALSE(data_dir.empty());
  struct stat st {};
  ASSERT_EQ(stat(data_dir.c_str(), &st), 0) << data_dir;
  long postmaster = PostmasterPid(data_dir);
  ASSERT_GT(postmaster, 0);
  long backend = std::stol(c->Psql("postgres", "SELECT pg_backend_pid()"));
  if (geteuid() == 0) {
    struct passwd* nobody = getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    EXPECT_EQ(st.st_uid, nobody->pw_uid);
    EXPECT_EQ(c->server_uid(), nobody->pw_uid);
    EXPECT_EQ(ProcessUid(postmaster), static_cast<long>(nobody->pw_uid));
    EXPECT_EQ(ProcessUid(backend), static_cast<long>(nobody->pw_uid));
  } else {
    EXPECT_EQ(st.st_uid, geteuid());
    EXPECT_EQ(ProcessUid(postmaster), static_cast<long>(geteuid()));
  }
  EXPECT_NE(ProcessUid(postmaster), 0);
  EXPECT_NE(ProcessUid(backend), 0);
}

TEST(pg_cluster, RestartKeepsDataAndPort) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  std::string url = c->CreateDatabase("restart");
  ASSERT_FALSE(url.empty());
  c->Psql(url, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 500)");
  int port = c->port();
  long before = PostmasterPid(c->data_dir());

  c->Restart();
  EXPECT_EQ(c->port(), port);
  EXPECT_TRUE(c->running());
  EXPECT_NE(PostmasterPid(c->data_dir()), before);
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM kept"), "500");

  c->Stop();
  EXPECT_FALSE(c->running());
  std::string value, err;
  EXPECT_FALSE(c->TryPsql(url, "SELECT 1", &value, &err));
  c->Start();
  EXPECT_TRUE(c->running());
  EXPECT_EQ(c->Psql(url, "SELECT count(*) FROM kept"), "500");
  // New databases still work after the restarts.
  EXPECT_FALSE(c->CreateDatabase("after_restart").empty());
}

TEST(pg_cluster, OwnerRoleIsNotSuperuser) {
  PgCluster* c = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(c);
  std::string db = c->CreateDatabase("owned");
  ASSERT_FALSE(db.empty());
  std::string owner = c->CreateOwnerRole(db);
  ASSERT_FALSE(owner.empty());
  EXPECT_EQ(DbName(owner), DbName(db));
  std::string role = c->Psql(owner, "SELECT current_user");
  EXPECT_NE(role, "postgres");
  EXPECT_EQ(c->Psql(owner, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "f");
  EXPECT_EQ(c->Psql(owner, "SELECT rolcreatedb OR rolcreaterole OR rolreplication FROM pg_roles "
                           "WHERE rolname = current_user"),
            "f");
  EXPECT_EQ(c->Psql(owner, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"),
            role);
  // It can do schema work in its database...
  c->Psql(owner, "CREATE TABLE mine (id int PRIMARY KEY); CREATE SCHEMA side; CREATE TABLE side.t (x int)");
  EXPECT_EQ(c->Psql(owner, "SELECT count(*) FROM pg_tables WHERE tableowner = current_user"), "2");
  // ...but nothing a superuser could.
  std::string value, err;
  EXPECT_FALSE(c->TryPsql(owner, "CREATE DATABASE nope", &value, &err));
  EXPECT_THAT(err, ::testing::HasSubstr("permission denied"));
  EXPECT_FALSE(c->TryPsql(owner, "ALTER SYSTEM SET work_mem = '8MB'", &value, &err));
}

// Child mode of WatchdogStopsOrphanedServer, not a test: when the test
// binary is started with SLUICE_PG_ORPHAN_INFO set, it starts a cluster,
// reports where it is, and waits to be killed, before gtest runs anything.
[[maybe_unused]] const bool kOrphanHelperMode = [] {
  const char* info = std::getenv("SLUICE_PG_ORPHAN_INFO");
  if (info == nullptr) return false;
  PgCluster* c = PgCluster::Shared();
  if (!c->ok()) std::_Exit(1);
  {
    std::ofstream out(std::string(info) + ".tmp");
    out << c->socket_dir() << "\n" << PostmasterPid(c->data_dir()) << "\n";
  }
  std::filesystem::rename(std::string(info) + ".tmp", info);
  std::this_thread::sleep_for(std::chrono::seconds(120));
  std::_Exit(0);
}();

TEST(pg_cluster, WatchdogStopsOrphanedServer) {
  TempDir tmp;
  std::string info = tmp.File("info");
  std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> argv_s = {exe};
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.push_back(*e);
  env_s.push_back("SLUICE_PG_ORPHAN_INFO=" + info);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string out = tmp.File("helper.out");
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t child = -1;
  ASSERT_EQ(posix_spawn(&child, argv[0], &fa, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&fa);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(info) && std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(child, &status, WNOHANG) == child) {
      FAIL() << "helper exited early: " << ReadFile(out);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!std::filesystem::exists(info)) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    FAIL() << "helper did not start a cluster: " << ReadFile(out);
  }
  std::istringstream in(ReadFile(info));
  std::string dir;
  long postmaster = -1;
  in >> dir >> postmaster;
  ASSERT_EQ(dir.rfind("/tmp/sluice-pg-", 0), 0u) << dir;
  ASSERT_GT(postmaster, 0);
  ASSERT_FALSE(ProcessGone(postmaster));

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);

  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((!ProcessGone(postmaster) || std::filesystem::exists(dir)) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ProcessGone(postmaster)) << "orphaned postmaster " << postmaster << " still running";
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir << " not removed";
}

}  // namespace
}  // namespace sluice::testing
