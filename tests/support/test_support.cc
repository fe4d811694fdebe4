#include "support/test_support.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace sluice::testing {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  if (!p) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& text) const {
  std::string p = File(name);
  std::ofstream out(p, std::ios::binary);
  out << text;
  return p;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {
std::vector<std::string> ChildEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("SLUICE_DB=", 0) == 0) continue;  // tests pass --db explicitly unless they set it
    env_s.push_back(kv);
  }
  for (const auto& e : extra) env_s.push_back(e);
  return env_s;
}
}  // namespace

int SpawnSluice(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv_s = {SLUICE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = ChildEnv({});
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string out = dir + "/spawn.out", err = dir + "/spawn.err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int WaitProcess(int pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

CommandResult RunSluice(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  TempDir io;
  std::string out_path = io.File("out"), err_path = io.File("err");
  std::vector<std::string> argv_s = {SLUICE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = ChildEnv(env);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  CommandResult r;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) return r;
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  return r;
}

std::vector<std::vector<std::string>> QueryRows(Migrator& m, const std::string& sql, const std::string& version) {
  std::vector<std::vector<std::string>> out;
  auto s = m.Connect(version);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return out;
  auto r = (*s)->Query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
  if (!r.ok()) return out;
  for (const auto& row : r->rows) {
    std::vector<std::string> o;
    for (const auto& v : row) o.push_back(v.value_or("<NULL>"));
    out.push_back(std::move(o));
  }
  return out;
}

std::string QueryValue(Migrator& m, const std::string& sql, const std::string& version) {
  auto rows = QueryRows(m, sql, version);
  if (rows.empty() || rows[0].empty()) return "";
  return rows[0][0] == "<NULL>" ? "" : rows[0][0];
}

void AssertVerified(Migrator& m, const std::string& migration) {
  auto v = m.Verify(migration);
  ASSERT_TRUE(v.ok()) << "verify " << migration << ": " << v.status().message();
  ASSERT_TRUE(v->passed) << "verify " << migration << " failed: " << v->json;
}

std::unique_ptr<Migrator> OpenSqlite(const std::string& path, bool create) {
  Options o;
  o.db_url = "sqlite:" + path;
  o.create_database = create;
  o.actor = "test";
  auto m = Migrator::Open(o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(*m) : nullptr;
}

std::unique_ptr<Migrator> OpenUrl(const std::string& url, Options options) {
  options.db_url = url;
  if (options.actor.empty()) options.actor = "test";
  auto m = Migrator::Open(options);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(*m) : nullptr;
}

Options PatientLocks() {
  Options o;
  o.lock_retry_budget_ms = 20000;
  return o;
}

bool Eventually(const std::function<bool()>& pred, int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

std::string LineStartingWith(const std::string& md, const std::string& prefix) {
  size_t pos = md.rfind(prefix, 0) == 0 ? 0 : md.find("\n" + prefix);
  if (pos == std::string::npos) return "";
  if (md[pos] == '\n') ++pos;
  return md.substr(pos, md.find('\n', pos) - pos);
}

}  // namespace sluice::testing
