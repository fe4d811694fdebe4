#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace sluice::testing {

namespace {

constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
constexpr const char* kUnprivilegedUser = "nobody";

PgCluster* g_instance = nullptr;
PgCluster* g_second = nullptr;  // PgCluster::Second()

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsUrl(const std::string& s) { return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0; }

// Database name of a URL (path component), or `s` itself if not a URL.
std::string DbNameOf(const std::string& s) {
  if (!IsUrl(s)) return s;
  size_t scheme = s.find("://");
  size_t slash = s.find('/', scheme + 3);
  if (slash == std::string::npos) return "";
  size_t end = s.find('?', slash);
  return s.substr(slash + 1, end == std::string::npos ? std::string::npos : end - slash - 1);
}

std::string QuoteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string Sanitize(const std::string& prefix) {
  std::string out;
  for (char c : prefix) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out += ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) out = "t" + out;
  if (out.size() > 40) out.resize(40);
  return out;
}

// Environment for server tools: the test's environment minus anything that
// could point the tools elsewhere (PG*, locale, HOME), plus fixed values.
std::vector<std::string> ToolEnv(const std::string& home) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("PG", 0) == 0 || kv.rfind("LC_", 0) == 0 || kv.rfind("LANG=", 0) == 0 ||
        kv.rfind("LANGUAGE=", 0) == 0 || kv.rfind("HOME=", 0) == 0 || kv.rfind("PATH=", 0) == 0) {
      continue;
    }
    env.push_back(kv);
  }
  env.push_back("LC_ALL=C");
  env.push_back("LANG=C");
  env.push_back("HOME=" + home);
  env.push_back("PATH=/usr/bin:/bin");
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In a freshly forked child (async-signal-safe calls only): default signal
// dispositions and mask, so the exec'd program starts clean.
void ResetSignalsInChild() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaction(sig, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// In a freshly forked child: become uid/gid (async-signal-safe). Returns
// false on failure.
bool DropPrivilegesInChild(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0) return false;
  if (setgid(gid) != 0) return false;
  if (setuid(uid) != 0) return false;
  return getuid() == uid && geteuid() == uid;
}

// Ports the kernel hands out for outgoing connections; a server port in this
// range can be taken by a client socket (or a TCP self-connect) while the
// server is stopped for a restart.
std::pair<int, int> EphemeralRange() {
  int lo = 32768, hi = 60999;
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  if (in) in >> lo >> hi;
  return {lo, hi};
}

// Whether 127.0.0.1:port can be bound right now.
bool PortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// Picks a free TCP port on 127.0.0.1: random candidates below the ephemeral
// range, checked by binding (then closing); falls back to binding port 0.
int PickPort() {
  auto [lo, hi] = EphemeralRange();
  (void)hi;
  static std::mt19937 rng(static_cast<unsigned>(getpid()) * 2654435761u ^
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  const int min_port = 15000;
  if (lo - min_port >= 1000) {
    std::uniform_int_distribution<int> dist(min_port, lo - 1);
    for (int i = 0; i < 100; ++i) {
      int p = dist(rng);
      if (PortFree(p)) return p;
    }
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

void AtExitShutdown() {
  if (g_instance) g_instance->Shutdown();
  if (g_second) g_second->Shutdown();
}

class PgClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_instance) g_instance->Shutdown();
    if (g_second) g_second->Shutdown();
  }
};

[[maybe_unused]] ::testing::Environment* const kPgClusterEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgClusterEnvironment);

void NoticeSink(void*, const char*) {}

// SetSharedPreloadLibraries' value, read when the cluster is initialised.
std::string& PreloadLibraries() {
  static std::string libraries;
  return libraries;
}

// SetExtraConfig's value, appended to postgresql.conf at initialisation.
std::string& ExtraConfig() {
  static std::string lines;
  return lines;
}

}  // namespace

std::string PgCluster::bin_dir() { return kBinDir; }

void PgCluster::SetSharedPreloadLibraries(const std::string& libraries) { PreloadLibraries() = libraries; }

void PgCluster::SetExtraConfig(const std::string& lines) { ExtraConfig() = lines; }

PgCluster* PgCluster::Started(PgCluster** slot, std::once_flag* once) {
  std::call_once(*once, [slot] {
    *slot = new PgCluster();  // never deleted: used from atexit
    std::atexit(AtExitShutdown);
  });
  MutexLock lock(&(*slot)->mu_);
  if (!(*slot)->initialized_) (*slot)->Init();
  return *slot;
}

PgCluster* PgCluster::Shared() {
  static std::once_flag once;
  return Started(&g_instance, &once);
}

PgCluster* PgCluster::Second() {
  static std::once_flag once;
  return Started(&g_second, &once);
}

bool PgCluster::ok() const {
  MutexLock lock(&mu_);
  return initialized_ && error_.empty();
}

std::string PgCluster::error() const {
  MutexLock lock(&mu_);
  return error_;
}

std::string PgCluster::LogTail(size_t max_bytes) const {
  std::string log = ReadWholeFile(log_path());
  if (log.size() > max_bytes) log = "..." + log.substr(log.size() - max_bytes);
  return log;
}

int PgCluster::RunTool(const std::string& tool, const std::vector<std::string>& args, std::string* output) const {
  static std::atomic<int> seq{0};
  std::vector<std::string> argv_s = {std::string(kBinDir) + "/" + tool};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s = ToolEnv(dir_);
  std::vector<char*> argv = CStrings(argv_s);
  std::vector<char*> envp = CStrings(env_s);
  // Output goes to a file the tool creates itself (as the server user) in
  // the cluster directory; read back and deleted after it exits.
  std::string out_path = dir_ + "/" + tool + "." + std::to_string(seq++) + ".out";
  const char* out_c = out_path.c_str();
  const char* cwd = dir_.c_str();
  const bool drop = drop_privileges_;
  const uid_t uid = uid_;
  const gid_t gid = gid_;

  pid_t pid = fork();
  if (pid < 0) {
    if (output) *output = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    ResetSignalsInChild();
    if (drop && !DropPrivilegesInChild(uid, gid)) _exit(126);
    if (chdir(cwd) != 0) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    int out = open(out_c, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    close_range(3, ~0U, 0);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string text = ReadWholeFile(out_path);
  std::remove(out_path.c_str());
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (code == 126) text += "\n(" + tool + ": could not switch to the server user or directory)";
  if (code == 127) text += "\n(" + tool + ": could not execute " + argv_s[0] + ")";
  if (output) *output = text;
  return code;
}

// The watchdog: a detached process (double fork + setsid, so neither a
// process-group kill nor a process-tree kill of the test process reaches
// it) running as the server user. Its stdin is the read end of a pipe whose
// only write end is held (close-on-exec) by this process. EOF on that pipe
// means this process closed it (normal shutdown, after removing the
// directory) or died: then, if the directory is still there, it stops the
// server immediately (twice, in case a start was in flight) and removes the
// directory.
bool PgCluster::StartWatchdog(std::string* err) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *err = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  std::string script =
      "cat >/dev/null\n"
      "if [ -d \"$2\" ]; then\n"
      "  \"$1\" stop -D \"$2\" -m immediate -w -t 30 >/dev/null 2>&1\n"
      "  sleep 1\n"
      "  \"$1\" stop -D \"$2\" -m immediate -w -t 30 >/dev/null 2>&1\n"
      "fi\n"
      "rm -rf \"$3\"\n";
  std::vector<std::string> argv_s = {"/bin/sh",        "-c", script, "sluice-pg-watchdog", std::string(kBinDir) + "/pg_ctl",
                                     dir_ + "/data", dir_};
  std::vector<std::string> env_s = ToolEnv(dir_);
  std::vector<char*> argv = CStrings(argv_s);
  std::vector<char*> envp = CStrings(env_s);
  const bool drop = drop_privileges_;
  const uid_t uid = uid_;
  const gid_t gid = gid_;
  const int read_fd = fds[0];

  pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork: ") + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild != 0) _exit(grandchild < 0 ? 1 : 0);
    ResetSignalsInChild();
    if (drop && !DropPrivilegesInChild(uid, gid)) _exit(126);
    if (chdir("/") != 0) _exit(126);
    if (read_fd != 0) dup2(read_fd, 0);
    fcntl(0, F_SETFD, 0);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    close_range(3, ~0U, 0);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    close(fds[1]);
    *err = "could not start the watchdog process";
    return false;
  }
  watchdog_fd_ = fds[1];
  return true;
}

bool PgCluster::StartOnce(int port, std::string* err) {
  std::string out;
  int code = RunTool("pg_ctl",
                     {"start", "-D", data_dir(), "-l", log_path(), "-w", "-t", "60", "-o",
                      "-p " + std::to_string(port)},
                     &out);
  if (code == 0) return true;
  *err = "pg_ctl start on port " + std::to_string(port) + " exited with " + std::to_string(code) + ": " + out +
         "\nserver log:\n" + LogTail(2000);
  // A half-started postmaster must not linger.
  RunTool("pg_ctl", {"stop", "-D", data_dir(), "-m", "immediate", "-w", "-t", "30"}, nullptr);
  return false;
}

void PgCluster::Init() {
  auto t0 = std::chrono::steady_clock::now();
  initialized_ = true;
  error_.clear();
  owner_pid_ = getpid();

  auto fail = [&](const std::string& msg) EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    error_ = msg.empty() ? "unknown error" : msg;
    if (!dir_.empty()) {
      if (std::filesystem::exists(data_dir() + "/postmaster.pid")) {
        RunTool("pg_ctl", {"stop", "-D", data_dir(), "-m", "immediate", "-w", "-t", "30"}, nullptr);
      }
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    if (watchdog_fd_ >= 0) close(watchdog_fd_);
    watchdog_fd_ = -1;
    dir_.clear();
    port_ = 0;
  };

  if (access((std::string(kBinDir) + "/pg_ctl").c_str(), X_OK) != 0) {
    return fail(std::string("PostgreSQL 15 server binaries not found in ") + kBinDir);
  }

  drop_privileges_ = geteuid() == 0;
  if (drop_privileges_) {
    struct passwd* pw = getpwnam(kUnprivilegedUser);
    if (!pw) return fail(std::string("running as root, but user '") + kUnprivilegedUser + "' does not exist");
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  } else {
    uid_ = geteuid();
    gid_ = getegid();
  }

  char tmpl[] = "/tmp/sluice-pg-XXXXXX";
  if (!mkdtemp(tmpl)) return fail(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  if (chmod(dir_.c_str(), 0700) != 0) return fail("chmod " + dir_ + ": " + std::strerror(errno));
  if (drop_privileges_ && chown(dir_.c_str(), uid_, gid_) != 0) {
    return fail("chown " + dir_ + ": " + std::strerror(errno));
  }

  std::string err;
  if (!StartWatchdog(&err)) return fail(err);

  std::string out;
  int code = RunTool("initdb",
                     {"-D", data_dir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
                      "--no-instructions"},
                     &out);
  if (code != 0) return fail("initdb exited with " + std::to_string(code) + ": " + out);

  {
    std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
    conf << "\n# sluice test cluster\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "fsync = off\n"
         << "synchronous_commit = off\n"
         << "full_page_writes = off\n"
         << "max_connections = 200\n"
         << "shared_buffers = 128MB\n"
         << "logging_collector = off\n"
         << "log_line_prefix = '%m [%p] %q%u@%d '\n"
         << "log_min_messages = warning\n";
    if (!PreloadLibraries().empty()) conf << "shared_preload_libraries = '" << PreloadLibraries() << "'\n";
    conf << ExtraConfig() << "\n";
    if (!conf) return fail("could not append to " + data_dir() + "/postgresql.conf");
  }

  std::string errors;
  for (int attempt = 0; attempt < 6; ++attempt) {
    int port = PickPort();
    if (port <= 0) return fail("could not find a free TCP port on 127.0.0.1");
    if (StartOnce(port, &err)) {
      port_ = port;
      break;
    }
    errors += "attempt " + std::to_string(attempt + 1) + ": " + err + "\n";
  }
  if (port_ == 0) return fail("could not start PostgreSQL:\n" + errors);

  std::string probe;
  if (!TryPsql("postgres", "SELECT 1", &probe, &err) || probe != "1") {
    return fail("server started but a query failed: " + err + "\nserver log:\n" + LogTail(2000));
  }
  start_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void PgCluster::Shutdown() {
  MutexLock lock(&mu_);
  if (!initialized_) return;
  if (getpid() != owner_pid_) return;  // a forked child (e.g. a death test) must not stop the parent's server
  if (!dir_.empty()) {
    if (std::filesystem::exists(data_dir() + "/postmaster.pid")) {
      RunTool("pg_ctl", {"stop", "-D", data_dir(), "-m", "immediate", "-w", "-t", "30"}, nullptr);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  if (watchdog_fd_ >= 0) close(watchdog_fd_);
  watchdog_fd_ = -1;
  dir_.clear();
  port_ = 0;
  error_.clear();
  initialized_ = false;
}

void PgCluster::Stop() {
  MutexLock lock(&mu_);
  if (!initialized_ || !error_.empty()) {
    ADD_FAILURE() << "PgCluster::Stop on a cluster that did not start: " << error_;
    return;
  }
  std::string out;
  int code = RunTool("pg_ctl", {"stop", "-D", data_dir(), "-m", "fast", "-w", "-t", "60"}, &out);
  if (code != 0) ADD_FAILURE() << "pg_ctl stop exited with " << code << ": " << out << "\nserver log:\n" << LogTail();
}

void PgCluster::Start() {
  MutexLock lock(&mu_);
  if (!initialized_ || !error_.empty()) {
    ADD_FAILURE() << "PgCluster::Start on a cluster that did not start: " << error_;
    return;
  }
  std::string err;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    if (StartOnce(port_, &err)) return;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ADD_FAILURE() << "PgCluster::Start: " << err;
}

void PgCluster::Restart() {
  Stop();
  Start();
}

bool PgCluster::running() const {
  MutexLock lock(&mu_);
  if (dir_.empty()) return false;
  return RunTool("pg_ctl", {"status", "-D", data_dir()}, nullptr) == 0;
}

std::string PgCluster::Url(const std::string& db) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string PgCluster::SocketUrl(const std::string& db) const {
  return "postgresql://postgres@/" + db + "?host=" + dir_ + "&port=" + std::to_string(port_);
}

bool PgCluster::TryPsql(const std::string& db, const std::string& sql, std::string* value, std::string* error) {
  std::vector<std::vector<std::string>> rows;
  std::string url = IsUrl(db) ? db : Url(db);
  if (url.find("connect_timeout=") == std::string::npos) {
    url += (url.find('?') == std::string::npos ? "?" : "&");
    url += "connect_timeout=10";
  }
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    if (error) *error = "connect to " + url + ": " + PQerrorMessage(conn);
    PQfinish(conn);
    return false;
  }
  PQsetNoticeProcessor(conn, NoticeSink, nullptr);
  PGresult* res = PQexec(conn, sql.c_str());
  ExecStatusType st = PQresultStatus(res);
  bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY;
  if (!ok) {
    if (error) *error = sql + ": " + PQresultErrorMessage(res);
  } else if (value) {
    value->clear();
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
      *value = PQgetvalue(res, 0, 0);
    }
  }
  PQclear(res);
  PQfinish(conn);
  return ok;
}

std::string PgCluster::Psql(const std::string& db, const std::string& sql) {
  std::string value, err;
  if (!TryPsql(db, sql, &value, &err)) {
    ADD_FAILURE() << "Psql failed: " << err;
    return "";
  }
  return value;
}

std::vector<std::vector<std::string>> PgCluster::PsqlRows(const std::string& db, const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  std::string url = IsUrl(db) ? db : Url(db);
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "connect to " << url << ": " << PQerrorMessage(conn);
    PQfinish(conn);
    return rows;
  }
  PQsetNoticeProcessor(conn, NoticeSink, nullptr);
  PGresult* res = PQexec(conn, sql.c_str());
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY) {
    ADD_FAILURE() << "PsqlRows failed: " << sql << ": " << PQresultErrorMessage(res);
  } else if (st == PGRES_TUPLES_OK) {
    for (int r = 0; r < PQntuples(res); ++r) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(res); ++c) {
        row.push_back(PQgetisnull(res, r, c) ? "<NULL>" : PQgetvalue(res, r, c));
      }
      rows.push_back(std::move(row));
    }
  }
  PQclear(res);
  PQfinish(conn);
  return rows;
}

std::string PgCluster::CreateDatabase(const std::string& prefix) {
  if (!ok()) {
    ADD_FAILURE() << "PostgreSQL test cluster: " << error();
    return "";
  }
  std::string name = Sanitize(prefix) + std::to_string(counter_++) + "_" + std::to_string(getpid());
  std::string err;
  if (!TryPsql("postgres", "CREATE DATABASE " + QuoteIdent(name) + " TEMPLATE template0", nullptr, &err)) {
    ADD_FAILURE() << "CreateDatabase: " << err;
    return "";
  }
  return Url(name);
}

std::string PgCluster::CreateOwnerRole(const std::string& db) {
  if (!ok()) {
    ADD_FAILURE() << "PostgreSQL test cluster: " << error();
    return "";
  }
  std::string dbname = DbNameOf(db);
  if (dbname.empty()) {
    ADD_FAILURE() << "CreateOwnerRole: no database name in '" << db << "'";
    return "";
  }
  std::string role = "owner" + std::to_string(counter_++) + "_" + std::to_string(getpid());
  std::string sql = "CREATE ROLE " + QuoteIdent(role) + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;" +
                    "ALTER DATABASE " + QuoteIdent(dbname) + " OWNER TO " + QuoteIdent(role) + ";" +
                    "GRANT CREATE, CONNECT, TEMPORARY ON DATABASE " + QuoteIdent(dbname) + " TO " +
                    QuoteIdent(role) + ";";
  std::string err;
  if (!TryPsql("postgres", sql, nullptr, &err)) {
    ADD_FAILURE() << "CreateOwnerRole: " << err;
    return "";
  }
  return "postgresql://" + role + "@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

}  // namespace sluice::testing
