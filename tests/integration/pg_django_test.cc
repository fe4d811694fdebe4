// The Django example (examples/django, docs/orms.md) through a whole
// migration on a throwaway PostgreSQL cluster, with both application
// versions live: Django's `migrate` makes the initial schema; the old
// version (base tables) writes through the ORM while sluice starts and
// backfills; the new version (its connection options select the sluice
// version, as docs/orms.md says) writes while sluice verifies and switches;
// the old version stops before `complete`, the new one writes through it.
// Then no row is lost and every row holds its invariant (checked by SQL),
// and after `migrate --fake` Django's `migrate --check` and `makemigrations
// --check` are clean. Django and psycopg2 are Debian's (scripts/setup.sh);
// without them the test skips and says why.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/pg_cluster.h"
#include "support/test_support.h"

extern char** environ;

namespace sluice::testing {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kVersion = "002_customer_email";

std::string ExampleDir() { return std::string(SLUICE_SOURCE_DIR) + "/examples/django"; }

// Starts `python3 manage.py args...` in the example with `env` added;
// stdout/stderr go to `out`/`err`. Returns the pid (-1 on failure).
int SpawnManage(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& out,
                const std::string& err) {
  std::vector<std::string> argv_s = {kPython, ExampleDir() + "/manage.py"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("SHOP_", 0) == 0 || kv.rfind("PG", 0) == 0) continue;
    env_s.push_back(kv);
  }
  env_s.push_back("PYTHONDONTWRITEBYTECODE=1");  // nothing written into the source tree
  for (const auto& e : env) env_s.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addchdir_np(&fa, ExampleDir().c_str());
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

bool DjangoInstalled() {
  std::string cmd = std::string(kPython) + " -c 'import django, psycopg2' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Waits (bounded) until `path` exists or process `pid` has exited.
bool WaitForFile(const std::string& path, int pid) {
  for (int i = 0; i < 1200; ++i) {  // 60 s on a loaded machine
    if (access(path.c_str(), F_OK) == 0) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// "inserted=N updated=M errors=E" as printed by write_orders.
int64_t Field(const std::string& out, const std::string& key) {
  size_t at = out.find(key + "=");
  return at == std::string::npos ? -1 : std::stoll(out.substr(at + key.size() + 1));
}

struct Django {
  TempDir dir;
  std::vector<std::string> env;  // SHOP_DB_* for the database
  int n = 0;

  // Runs manage.py to the end; returns its exit code, output in *out.
  int Manage(const std::vector<std::string>& args, const std::vector<std::string>& extra, std::string* out) {
    std::string o = dir.File("m" + std::to_string(++n) + ".out"), e = dir.File("m" + std::to_string(n) + ".err");
    std::vector<std::string> all = env;
    all.insert(all.end(), extra.begin(), extra.end());
    int pid = SpawnManage(args, all, o, e);
    if (pid < 0) return -1;
    int rc = WaitProcess(pid);
    *out = ReadFile(o) + ReadFile(e);
    return rc;
  }
};

TEST(DjangoExample, AWholeMigrationWithBothVersionsLiveEndsWithMigrateCheckClean) {
  if (!DjangoInstalled()) {
    GTEST_SKIP() << "python3-django and python3-psycopg2 are not installed (scripts/setup.sh installs them): "
                    "the Django example (examples/django) is not tested";
  }
  PgCluster* pg = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pg);
  std::string db_url = pg->CreateDatabase("django");
  ASSERT_FALSE(db_url.empty());
  // The application connects as the database's owner, not a superuser.
  std::string url = pg->CreateOwnerRole(db_url);
  ASSERT_FALSE(url.empty());
  const std::string role = url.substr(url.find("://") + 3, url.find('@') - url.find("://") - 3);
  const std::string db = url.substr(url.rfind('/') + 1);

  Django dj;
  dj.env = {"SHOP_DB_NAME=" + db, "SHOP_DB_HOST=127.0.0.1", "SHOP_DB_PORT=" + std::to_string(pg->port()),
            "SHOP_DB_USER=" + role};
  const std::vector<std::string> old_app = {"SHOP_APP_VERSION=1"};
  const std::vector<std::string> new_app = {"SHOP_APP_VERSION=2", std::string("SHOP_DB_VERSION=") + kVersion};
  const std::vector<std::string> admin = {"SHOP_APP_VERSION=2"};  // the new code, the base schema
  auto sluice = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url});
    return RunSluice(args);
  };
  auto value = [&](const std::string& sql) { return pg->Psql(url, sql); };

  // The initial schema, by Django; 200 rows written by the old version.
  std::string out;
  ASSERT_EQ(dj.Manage({"migrate", "orders", "0001"}, old_app, &out), 0) << out;
  ASSERT_EQ(dj.Manage({"write_orders", "--tag", "seed", "--stop-file", dj.dir.File("never"), "--max-rows", "200",
                       "--pause-ms", "0"},
                      old_app, &out),
            0)
      << out;
  ASSERT_EQ(value("SELECT count(*) FROM orders_order"), "200");

  auto r = sluice({"start", ExampleDir() + "/migrations/002_customer_email.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The old version writes from now until just before complete.
  const std::string stop_old = dj.dir.File("stop_old"), stop_new = dj.dir.File("stop_new");
  std::vector<std::string> env_old = dj.env, env_new = dj.env;
  env_old.insert(env_old.end(), old_app.begin(), old_app.end());
  env_new.insert(env_new.end(), new_app.begin(), new_app.end());
  int old_pid = SpawnManage({"write_orders", "--tag", "old", "--stop-file", stop_old, "--ready-file",
                             dj.dir.File("ready_old")},
                            env_old, dj.dir.File("old.out"), dj.dir.File("old.err"));
  ASSERT_GT(old_pid, 0);
  ASSERT_TRUE(WaitForFile(dj.dir.File("ready_old"), old_pid)) << ReadFile(dj.dir.File("old.err"));

  r = sluice({"backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The new version once its backfill is done (before, it refuses writes).
  int new_pid = SpawnManage({"write_orders", "--tag", "new", "--stop-file", stop_new, "--ready-file",
                             dj.dir.File("ready_new")},
                            env_new, dj.dir.File("new.out"), dj.dir.File("new.err"));
  ASSERT_GT(new_pid, 0);
  ASSERT_TRUE(WaitForFile(dj.dir.File("ready_new"), new_pid)) << ReadFile(dj.dir.File("new.err"));

  r = sluice({"verify"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = sluice({"switch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Stop the old version before complete (docs/orms.md's order of deploys).
  { std::ofstream(stop_old).put('\n'); }
  ASSERT_EQ(WaitProcess(old_pid), 0) << ReadFile(dj.dir.File("old.out")) << ReadFile(dj.dir.File("old.err"));
  r = sluice({"verify"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = sluice({"complete"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The new version keeps writing after complete, then stops.
  const int64_t after_complete = std::stoll(value("SELECT count(*) FROM orders_order"));
  for (int i = 0; i < 600 && std::stoll(value("SELECT count(*) FROM orders_order")) < after_complete + 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  { std::ofstream(stop_new).put('\n'); }
  ASSERT_EQ(WaitProcess(new_pid), 0) << ReadFile(dj.dir.File("new.out")) << ReadFile(dj.dir.File("new.err"));

  // No row lost, every write counted, and every row right in the final shape.
  const std::string old_out = ReadFile(dj.dir.File("old.out")), new_out = ReadFile(dj.dir.File("new.out"));
  EXPECT_EQ(Field(old_out, "errors"), 0) << old_out;
  EXPECT_EQ(Field(new_out, "errors"), 0) << new_out;
  EXPECT_GT(Field(old_out, "inserted"), 0) << old_out;
  EXPECT_GT(Field(new_out, "inserted"), 0) << new_out;
  EXPECT_EQ(value("SELECT count(*) FROM orders_order"),
            std::to_string(200 + Field(old_out, "inserted") + Field(new_out, "inserted")));
  EXPECT_EQ(value("SELECT count(*) FROM orders_order WHERE note LIKE 'old-%'"),
            std::to_string(Field(old_out, "inserted")));
  EXPECT_EQ(value("SELECT count(*) FROM orders_order WHERE note LIKE 'new-%'"),
            std::to_string(Field(new_out, "inserted")));
  EXPECT_EQ(value("SELECT count(*) FROM orders_order WHERE customer_email IS DISTINCT FROM note || '@Example.COM' "
                  "OR email_lower IS DISTINCT FROM lower(customer_email)"),
            "0");
  // Updates of both versions arrived (rows whose note was rewritten).
  EXPECT_NE(value("SELECT count(*) FROM orders_order WHERE note LIKE 'old-%-u%'"), "0");
  EXPECT_NE(value("SELECT count(*) FROM orders_order WHERE note LIKE 'new-%-u%'"), "0");
  EXPECT_EQ(value("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                  "WHERE table_schema = 'public' AND table_name = 'orders_order'"),
            "customer_email,email_lower,id,note");
  EXPECT_EQ(value("SELECT phase FROM sluice.migrations WHERE name = '" + std::string(kVersion) + "'"), "complete");

  // Django's history: not yet in line, then recorded with --fake, then clean.
  EXPECT_NE(dj.Manage({"migrate", "--check"}, admin, &out), 0) << out;
  ASSERT_EQ(dj.Manage({"migrate", "orders", "0002", "--fake"}, admin, &out), 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("FAKED"));
  EXPECT_EQ(dj.Manage({"migrate", "--check"}, admin, &out), 0) << out;
  EXPECT_EQ(dj.Manage({"makemigrations", "--check", "--dry-run"}, admin, &out), 0) << out;
  EXPECT_EQ(value("SELECT count(*) FROM django_migrations WHERE app = 'orders'"), "2");
}

}  // namespace
}  // namespace sluice::testing
