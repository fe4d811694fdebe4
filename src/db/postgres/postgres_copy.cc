#include "db/postgres/postgres_copy.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/sql_text.h"
#include "common/thread_annotations.h"
#include "db/postgres/postgres_errors.h"
#include "db/scratch_dir.h"

extern char** environ;

namespace sluice::db {

std::string PostgresApplicationName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return ("sluice pid " + std::to_string(getpid()) + " on " + host).substr(0, 63);
}

namespace {

using sql::QuoteIdent;
using sql::QuoteLiteral;

// The advisory lock (this class id, hashtext(name)) a rehearsal holds on its
// maintenance session from before CREATE DATABASE until its own session on
// the copy is open: leftover cleanup spares a copy whose lock is taken, so
// it cannot drop one that is being made. (20830 is the adapter's named
// locks.) Advisory locks are per database: both sides take it on the
// maintenance database (ConnectMaintenance).
constexpr int kCreatingLockClass = 20831;

std::string CreatingLock(const char* fn, const std::string& name) {
  return std::string("SELECT ") + fn + "(" + std::to_string(kCreatingLockClass) + ", hashtext(" + QuoteLiteral(name) +
         "))";
}

// The comment that marks a copy kept with --keep (leftover cleanup spares it).
constexpr const char* kKeptComment = "sluice rehearsal copy, kept (--keep)";

constexpr const char* kAdvice =
    "; pass --target URL (a staging database, e.g. restored from a recent backup) to rehearse there";

// One libpq session owned here (maintenance, COPY source and destination).
struct PgSession {
  PGconn* conn = nullptr;
  PgSession() = default;
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  ~PgSession() {
    if (conn) PQfinish(conn);
  }
};

// How often a copy reads its cancel flag while a statement or tool runs.
constexpr std::chrono::milliseconds kCancelPoll{50};
// How long pg_dump or psql gets to stop after SIGINT (they cancel their
// statement and exit) before SIGKILL.
constexpr int kToolKillAfterPolls = 40;  // 2 s

// Cancels the statement running on each watched session, from its own
// thread, once the flag (ScratchCopyRequest::cancel, set by a signal
// handler: it cannot be waited on, so it is polled every kCancelPoll) is
// set. PQcancel is the one libpq call that may target a session another
// thread is using. A cancel may arrive just after its statement ended and
// stop the session's next one instead, so after fired() a watched session
// is not trusted for the cleanup: the caller opens a new one.
//
// Thread-safety: Watch, Unwatch and Stop are called by the copying thread;
// the polling thread only reads the flag and cancels under mu_.
class CancelWatcher {
 public:
  explicit CancelWatcher(const std::atomic<bool>* flag) : flag_(flag) {
    if (flag_) thread_ = std::thread([this] { Run(); });
  }
  CancelWatcher(const CancelWatcher&) = delete;
  CancelWatcher& operator=(const CancelWatcher&) = delete;
  ~CancelWatcher() {
    Stop();
    MutexLock l(&mu_);
    for (auto& [conn, session] : sessions_) PQfreeCancel(session.handle);
  }

  // Ends the polling; no cancel is sent after this returns.
  void Stop() {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // `conn` (connected, not in use by another thread) until Unwatch(conn),
  // which must come before PQfinish(conn).
  void Watch(PGconn* conn) {
    PGcancel* handle = PQgetCancel(conn);
    if (!handle) return;
    MutexLock l(&mu_);
    sessions_[conn] = {handle, false};
  }
  void Unwatch(PGconn* conn) {
    MutexLock l(&mu_);
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return;
    PQfreeCancel(it->second.handle);
    sessions_.erase(it);
  }
  bool cancelled() const { return flag_ && flag_->load(); }
  // Whether a cancel was sent to any session (read after Stop()).
  bool fired() const { return fired_.load(); }
  // For the checks between steps: kCancelled once the flag is set.
  Status Check() const { return cancelled() ? Cancelled(kScratchCopyCancelled) : Status::Ok(); }

 private:
  void Run() {
    MutexLock l(&mu_);
    while (!stop_) {
      cv_.wait_for(mu_, kCancelPoll);
      if (stop_ || !cancelled()) continue;
      for (auto& [conn, session] : sessions_) {
        if (session.cancelled) continue;  // once each: a second could stop the next statement
        char err[256];
        (void)PQcancel(session.handle, err, sizeof err);  // best effort: the statement may have ended
        session.cancelled = fired_ = true;
      }
    }
  }

  const std::atomic<bool>* const flag_;
  Mutex mu_;
  std::condition_variable_any cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  struct Session {
    PGcancel* handle;
    bool cancelled;
  };
  std::map<PGconn*, Session> sessions_ GUARDED_BY(mu_);
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// Watches a session for as long as it lives (declared after the session,
// so that it ends first).
struct Watched {
  CancelWatcher& watcher;
  PGconn* conn;
  Watched(CancelWatcher& w, PGconn* c) : watcher(w), conn(c) { watcher.Watch(conn); }
  Watched(const Watched&) = delete;
  Watched& operator=(const Watched&) = delete;
  ~Watched() { watcher.Unwatch(conn); }
};

Status ResultError(PGconn* c, PGresult* r, const std::string& context) {
  std::string state, msg;
  if (r) {
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (s) state = s;
    if (m) msg = m;
  }
  if (msg.empty()) msg = PQerrorMessage(c);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (PQstatus(c) == CONNECTION_BAD) return Unavailable(context + ": " + msg);
  return Status(PostgresErrorCode(state, msg), context + ": " + msg, state.empty() ? "" : "SQLSTATE " + state);
}

// Rows of `sql` as text ("" for NULL).
Result<std::vector<std::vector<std::string>>> Rows(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    Status s = ResultError(c, r, "running " + sql.substr(0, 60));
    PQclear(r);
    return s;
  }
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < PQntuples(r); ++i) {
    out.emplace_back();
    for (int j = 0; j < PQnfields(r); ++j) out.back().push_back(PQgetvalue(r, i, j));
  }
  PQclear(r);
  return out;
}

Status Run(PGconn* c, const std::string& sql) { return Rows(c, sql).status(); }

// The source's connection options, parsed: each set one but dbname.
struct ConnOptions {
  std::vector<std::pair<std::string, std::string>> kv;
  std::string password;
};

Result<ConnOptions> ParseOptions(const std::string& conninfo) {
  ConnOptions out;
  if (conninfo.empty()) return out;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    if (err) PQfreemem(err);
    return InvalidArgument("the database URL is malformed");
  }
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val || std::string_view(o->keyword) == "dbname") continue;
    if (std::string_view(o->keyword) == "password") {
      out.password = o->val;
    } else {
      out.kv.emplace_back(o->keyword, o->val);
    }
  }
  PQconninfoFree(opts);
  return out;
}

std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

// A key=value conninfo for database `db` (with the password when asked).
std::string ConninfoFor(const ConnOptions& o, const std::string& db, bool with_password) {
  std::string out;
  for (const auto& [k, v] : o.kv) out += k + "=" + QuoteConnValue(v) + " ";
  if (with_password && !o.password.empty()) out += "password=" + QuoteConnValue(o.password) + " ";
  return out + "dbname=" + QuoteConnValue(db);
}

Status Connect(const PostgresOptions& options, const std::string& db, PgSession* s) {
  SLUICE_ASSIGN_OR_RETURN(PostgresConnectParams p, BuildPostgresConnectParams(options.conninfo));
  const std::string app = PostgresApplicationName();
  p.keywords.push_back("application_name");
  p.values.push_back(app);
  if (!db.empty()) {
    p.keywords.push_back("dbname");
    p.values.push_back(db);
  }
  const std::vector<const char*> keys = p.KeywordArray(), vals = p.ValueArray();
  s->conn = PQconnectdbParams(keys.data(), vals.data(), 1);
  if (!s->conn) return ResourceExhausted("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(s->conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(s->conn);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Unavailable("cannot connect to database '" + (db.empty() ? std::string("(default)") : db) + "': " + msg);
  }
  return Status::Ok();
}

// A session on the server outside the source (CREATE/DROP DATABASE cannot
// run inside the database they copy or drop): `postgres`, else `template1`.
Status ConnectMaintenance(const PostgresOptions& options, PgSession* s) {
  Status st = Connect(options, "postgres", s);
  if (st.ok()) return st;
  PQfinish(s->conn);
  s->conn = nullptr;
  return Connect(options, "template1", s);
}

// A client tool of the server's major version: its own bin directory
// (Debian's layout), else PATH. "" when there is none.
std::string FindTool(const std::string& tool, int major) {
  std::string dir = "/usr/lib/postgresql/" + std::to_string(major) + "/bin/" + tool;
  if (access(dir.c_str(), X_OK) == 0) return dir;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string d;
  while (std::getline(ss, d, ':')) {
    std::string p = (d.empty() ? "." : d) + "/" + tool;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Waits for child `pid`; once *cancel is set, sends it SIGINT (pg_dump and
// psql cancel their statement and exit), and SIGKILL if it is still there
// kToolKillAfterPolls later. Whether it was stopped so.
bool WaitTool(pid_t pid, const std::atomic<bool>* cancel, int* status) {
  int stopping = -1;  // polls since SIGINT
  for (;;) {
    const pid_t done = waitpid(pid, status, cancel ? WNOHANG : 0);
    if (done == pid || (done < 0 && errno != EINTR)) return stopping >= 0;
    if (done == 0) {
      if (stopping < 0 && cancel->load()) {
        ::kill(pid, SIGINT);
        stopping = 0;
      } else if (stopping >= 0 && ++stopping == kToolKillAfterPolls) {
        ::kill(pid, SIGKILL);
      }
      std::this_thread::sleep_for(kCancelPoll);
    }
  }
}

// Runs `path args...` (stdout and stderr into files in `dir`), with
// PGPASSWORD set when there is one (never on the command line), and this
// process's application_name (so that DropDatabase ends a session a killed
// psql left on the copy). kCancelled when `cancel` stopped it.
Status RunTool(const std::string& path, const std::vector<std::string>& args, const std::string& password,
               const std::string& dir, const std::atomic<bool>* cancel) {
  const std::string err_file = dir + "/stderr.txt";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> env_text;
  for (char** e = environ; *e; ++e) {
    const std::string_view var(*e);
    if (var.rfind("PGPASSWORD=", 0) != 0 && var.rfind("PGAPPNAME=", 0) != 0) env_text.push_back(*e);
  }
  if (!password.empty()) env_text.push_back("PGPASSWORD=" + password);
  env_text.push_back("PGAPPNAME=" + PostgresApplicationName());
  std::vector<char*> envp, argv;
  for (auto& s : env_text) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> all = {path};
  all.insert(all.end(), args.begin(), args.end());
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Unavailable("cannot run " + path + ": " + std::strerror(rc));
  int status = 0;
  const std::string name = std::filesystem::path(path).filename().string();
  if (WaitTool(pid, cancel, &status)) return Cancelled(name + " was stopped");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  std::ifstream in(err_file);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (err.size() > 2000) err = err.substr(0, 2000) + "...";
  while (!err.empty() && err.back() == '\n') err.pop_back();
  return FailedPrecondition(name + " failed: " + err);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// `script` (pg_dump's plain output) without the TOC entries adding the
// foreign keys in `drop` ("<table> <constraint>" as pg_dump names them).
std::string WithoutForeignKeys(const std::string& script, const std::set<std::string>& drop) {
  if (drop.empty()) return script;
  const std::string sep = "\n--\n-- Name: ";
  std::string out;
  size_t pos = 0;
  while (pos < script.size()) {
    size_t next = script.find(sep, pos + 1);
    if (next == std::string::npos) next = script.size();
    std::string entry = script.substr(pos, next - pos);
    bool skip = false;
    if (entry.rfind(sep, 0) == 0) {
      const size_t semi = entry.find(';', sep.size());
      skip = semi != std::string::npos && drop.count(entry.substr(sep.size(), semi - sep.size())) &&
             entry.compare(semi, 26, "; Type: FK CONSTRAINT; Sch") == 0;
    }
    if (!skip) out += entry;
    pos = next;
  }
  return out;
}

// COPY of one table's rows from `src` (inside its snapshot) into `dst`.
Result<int64_t> CopyRows(PGconn* src, PGconn* dst, const std::string& table, const std::string& columns,
                         const std::string& from) {
  PGresult* r = PQexec(src, ("COPY (SELECT " + columns + " FROM " + from + ") TO STDOUT").c_str());
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    Status s = ResultError(src, r, "reading " + table);
    PQclear(r);
    return s;
  }
  PQclear(r);
  PGresult* w = PQexec(dst, ("COPY " + table + " (" + columns + ") FROM STDIN").c_str());
  bool writing = PQresultStatus(w) == PGRES_COPY_IN;
  Status failed = writing ? Status::Ok() : ResultError(dst, w, "writing " + table);
  PQclear(w);
  int64_t rows = 0;
  char* buf = nullptr;
  int n = 0;
  while ((n = PQgetCopyData(src, &buf, 0)) > 0) {
    if (failed.ok() && PQputCopyData(dst, buf, n) != 1) failed = ResultError(dst, nullptr, "writing " + table);
    PQfreemem(buf);
    ++rows;
  }
  for (PGresult* e; (e = PQgetResult(src));) {
    if (failed.ok() && PQresultStatus(e) != PGRES_COMMAND_OK) failed = ResultError(src, e, "reading " + table);
    PQclear(e);
  }
  if (writing) {
    PQputCopyEnd(dst, failed.ok() ? nullptr : "aborted");
    for (PGresult* e; (e = PQgetResult(dst));) {
      if (failed.ok() && PQresultStatus(e) != PGRES_COMMAND_OK) failed = ResultError(dst, e, "writing " + table);
      PQclear(e);
    }
  }
  if (!failed.ok()) return failed;
  return rows;
}

// A boolean read through Connection::Query (whatever form the adapter gives it).
bool IsTrue(const Value& v) { return v.text == "t" || v.text == "true" || v.text == "1"; }

std::string RandomSuffix() {
  std::random_device rd;
  char buf[9];
  snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
  return buf;
}

// `sluice_rehearsal_<label>_<random>`: the label lower-cased, [a-z0-9_]
// only, cut so that the name fits PostgreSQL's 63 bytes.
std::string ScratchName(const std::string& label) {
  const size_t room = 63 - std::string(kScratchPrefix).size() - 9;
  return kScratchPrefix + CleanScratchLabel(label, room) + "_" + RandomSuffix();
}

Status DropDatabase(PGconn* m, const std::string& name) {
  // Only this process's own sessions (the rehearsal's engine and writer)
  // are ended; anyone else's keeps the copy and DROP reports it.
  SLUICE_RETURN_IF_ERROR(Run(m, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " +
                                    QuoteLiteral(name) + " AND application_name = " +
                                    QuoteLiteral(PostgresApplicationName()) + " AND pid <> pg_backend_pid()"));
  return Run(m, "DROP DATABASE IF EXISTS " + QuoteIdent(name));
}

// The schema (pre- or post-data section of pg_dump) of `src` into `db`.
struct Tools {
  std::string pg_dump, psql;
};

Status CopySchemaSection(const Tools& tools, const ConnOptions& co, const std::string& src, const std::string& db,
                         const std::string& section, const std::set<std::string>& drop_fks, const std::string& dir,
                         const std::atomic<bool>* cancel) {
  const std::string file = dir + "/" + section + ".sql";
  SLUICE_RETURN_IF_ERROR(RunTool(tools.pg_dump,
                                 {"--schema-only", "--section=" + section, "--no-owner", "--no-privileges",
                                  "--no-publications", "--no-subscriptions", "-f", file, "-d",
                                  ConninfoFor(co, src, false)},
                                 co.password, dir, cancel));
  if (!drop_fks.empty()) {
    std::string text = WithoutForeignKeys(ReadFile(file), drop_fks);
    std::ofstream(file, std::ios::trunc) << text;
  }
  return RunTool(tools.psql, {"-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file, "-d", ConninfoFor(co, db, false)},
                 co.password, dir, cancel);
}

// PgCreateScratchCopy, with `watcher` cancelling its sessions' statements
// (it makes and drops any copy; the caller turns its errors into
// kScratchCopyCancelled once the flag is set).
Result<ScratchCopy> MakeScratchCopy(Connection& own, const PostgresOptions& options, const ScratchCopyRequest& request,
                                    const std::function<void()>& disconnect_own, CancelWatcher& watcher) {
  const auto t0 = std::chrono::steady_clock::now();
  SLUICE_ASSIGN_OR_RETURN(ConnOptions co, ParseOptions(options.conninfo));
  SLUICE_ASSIGN_OR_RETURN(auto who, own.Query("SELECT current_database(), current_user, rolcreatedb OR rolsuper, "
                                              "current_setting('server_version_num')::int / 10000 FROM pg_roles "
                                              "WHERE rolname = current_user"));
  if (who.rows.empty()) return FailedPrecondition("cannot read the current role from pg_roles" + std::string(kAdvice));
  const std::string src = who.rows[0][0].text, role = who.rows[0][1].text;
  if (!IsTrue(who.rows[0][2])) {
    return FailedPrecondition("role '" + role + "' may not create databases (it needs CREATEDB) for the copy" +
                              kAdvice + ", or ALTER ROLE " + QuoteIdent(role) + " CREATEDB");
  }
  const int major = static_cast<int>(who.rows[0][3].AsInt());
  const bool sample = request.sample > 0 && request.sample < 1;
  Tools tools{FindTool("pg_dump", major), FindTool("psql", major)};
  const bool have_tools = !tools.pg_dump.empty() && !tools.psql.empty();
  const std::string missing = "pg_dump and psql of PostgreSQL " + std::to_string(major) +
                              " (not found in /usr/lib/postgresql/" + std::to_string(major) +
                              "/bin or on PATH; install postgresql-client-" + std::to_string(major) + ")";

  PgSession m;
  SLUICE_RETURN_IF_ERROR(ConnectMaintenance(options, &m));
  Watched watch_m(watcher, m.conn);
  ScratchCopy out;
  out.name = ScratchName(request.label);
  // Released when `m` closes, once the copy has its own session (`hold`).
  SLUICE_RETURN_IF_ERROR(Run(m.conn, CreatingLock("pg_advisory_lock", out.name)));
  out.url = ConninfoFor(co, out.name, true);
  out.display_url = ConninfoFor(co, out.name, false);

  // TEMPLATE: a file-level copy, only while nobody else uses the source.
  bool templated = false;
  if (!sample) {
    SLUICE_ASSIGN_OR_RETURN(auto others, Rows(m.conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = " +
                                                          QuoteLiteral(src) + " AND pid <> pg_backend_pid()"));
    const int64_t n = std::stoll(others[0][0]) - 1;  // less `own`
    if (n > 0) {
      out.notes.push_back("TEMPLATE not tried: " + std::to_string(n) + " other session(s) use the database");
    } else {
      disconnect_own();
      Status t = Run(m.conn, "CREATE DATABASE " + QuoteIdent(out.name) + " TEMPLATE " + QuoteIdent(src));
      SLUICE_RETURN_IF_ERROR(own.Reconnect());
      if (t.ok()) {
        templated = true;
        out.method = "CREATE DATABASE ... TEMPLATE";
      } else {
        out.notes.push_back("TEMPLATE failed: " + t.message());
      }
    }
  } else {
    out.notes.push_back("TEMPLATE not tried: --sample copies a sample of the touched tables");
  }
  if (!templated && !have_tools) {
    return FailedPrecondition("copying the database needs " + missing + kAdvice);
  }

  std::string dir;
  if (!templated) {
    SLUICE_ASSIGN_OR_RETURN(dir, MakeScratchDir(request.label));
  }
  auto copy = [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(watcher.Check());  // e.g. TEMPLATE was cancelled
    if (!templated) {
      // An empty database with the source's encoding and locale.
      SLUICE_ASSIGN_OR_RETURN(auto enc, Rows(m.conn, "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                                                     "FROM pg_database WHERE datname = " + QuoteLiteral(src)));
      if (enc.empty()) return NotFound("database '" + src + "' is not in pg_database");
      SLUICE_RETURN_IF_ERROR(Run(m.conn, "CREATE DATABASE " + QuoteIdent(out.name) + " TEMPLATE template0 ENCODING " +
                                             QuoteLiteral(enc[0][0]) + " LC_COLLATE " + QuoteLiteral(enc[0][1]) +
                                             " LC_CTYPE " + QuoteLiteral(enc[0][2])));
    }
    SLUICE_RETURN_IF_ERROR(Run(m.conn, "COMMENT ON DATABASE " + QuoteIdent(out.name) + " IS " +
                                           QuoteLiteral("sluice rehearsal copy of " + src)));
    // Held until the copy is dropped: a copy with a session is in use, and
    // leftover cleanup leaves it alone.
    auto hold = std::make_shared<PgSession>();
    SLUICE_RETURN_IF_ERROR(Connect(options, out.name, hold.get()));
    out.hold = hold;
    if (!out.method.empty()) return Status::Ok();
    out.method = sample ? "schema (pg_dump) + a sample of the touched tables (COPY)"
                        : "schema (pg_dump) + the touched tables (COPY)";

    // The tables: those touched with their inheritance children (each
    // copied ONLY itself; a partitioned table is copied whole through its
    // root, COPY routing the rows to the partitions), those they reference
    // (transitively), and sluice's state tables.
    std::string names;
    for (const auto& t : request.tables) names += (names.empty() ? "" : ", ") + QuoteLiteral(t);
    if (names.empty()) names = "NULL";
    const std::string tables_sql =
        "WITH RECURSIVE touched AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = " + QuoteLiteral(options.schema) + " AND c.relname IN (" + names +
        ") AND c.relkind IN ('r', 'p') UNION SELECT i.inhrelid FROM pg_inherits i JOIN touched t ON i.inhparent = "
        "t.oid JOIN pg_class k ON k.oid = i.inhrelid WHERE k.relkind = 'r' AND NOT k.relispartition), refs AS "
        "(SELECT oid FROM touched UNION SELECT con.confrelid FROM pg_constraint con JOIN refs r ON con.conrelid = "
        "r.oid WHERE con.contype = 'f' AND con.conparentid = 0), state AS (SELECT c.oid FROM pg_class c JOIN "
        "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " +
        QuoteLiteral(options.state_schema) + " AND c.relkind IN ('r', 'p') AND NOT c.relispartition) "
        "SELECT c.oid, c.oid::regclass::text, c.relkind, c.oid IN (SELECT oid FROM touched), (SELECT "
        "string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid "
        "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') FROM pg_class c WHERE c.oid IN (SELECT oid "
        "FROM refs UNION SELECT oid FROM state) ORDER BY 2";
    SLUICE_ASSIGN_OR_RETURN(auto tables, own.Query(tables_sql));
    std::set<std::string> copied_oids, sampled_oids;
    for (const auto& t : tables.rows) {
      copied_oids.insert(t[0].text);
      if (sample && IsTrue(t[3])) sampled_oids.insert(t[0].text);
    }
    // Foreign keys from a copied table to a sampled one would not hold.
    std::set<std::string> drop_fks;
    if (!sampled_oids.empty()) {
      std::string in;
      for (const auto& o : sampled_oids) in += (in.empty() ? "" : ", ") + o;
      SLUICE_ASSIGN_OR_RETURN(auto fks, own.Query("SELECT con.conrelid::text, c.relname, con.conname, "
                                                  "con.conrelid::regclass::text FROM pg_constraint con JOIN pg_class c "
                                                  "ON c.oid = con.conrelid WHERE con.contype = 'f' AND "
                                                  "con.conparentid = 0 AND con.confrelid IN (" + in + ")"));
      for (const auto& f : fks.rows) {
        if (!copied_oids.count(f[0].text)) continue;
        drop_fks.insert(f[1].text + " " + f[2].text);
        out.dropped_constraints.push_back(f[3].text + "." + f[2].text);
      }
    }

    SLUICE_RETURN_IF_ERROR(CopySchemaSection(tools, co, src, out.name, "pre-data", {}, dir, request.cancel));
    PgSession from, to;
    SLUICE_RETURN_IF_ERROR(Connect(options, src, &from));
    Watched watch_from(watcher, from.conn);
    SLUICE_RETURN_IF_ERROR(Connect(options, out.name, &to));
    Watched watch_to(watcher, to.conn);
    SLUICE_RETURN_IF_ERROR(Run(from.conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    for (const auto& t : tables.rows) {
      SLUICE_RETURN_IF_ERROR(watcher.Check());
      const bool sampled = sampled_oids.count(t[0].text) > 0;
      std::string src_from = (t[2].text == "p" ? "" : "ONLY ") + t[1].text;
      if (sampled) src_from += " TABLESAMPLE BERNOULLI (" + std::to_string(request.sample * 100) + ")";
      SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(from.conn, to.conn, t[1].text, t[4].text, src_from));
      out.tables.push_back({t[1].text, rows, sampled});
    }
    // Sequences continue where the source's are.
    SLUICE_ASSIGN_OR_RETURN(auto seqs, Rows(from.conn, "SELECT format('%I.%I', schemaname, sequencename), "
                                                       "last_value FROM pg_sequences WHERE last_value IS NOT NULL"));
    Run(from.conn, "COMMIT").IgnoreError();
    for (const auto& s : seqs) {
      SLUICE_RETURN_IF_ERROR(Run(to.conn, "SELECT setval(" + QuoteLiteral(s[0]) + "::regclass, " + s[1] + ")"));
    }
    SLUICE_RETURN_IF_ERROR(watcher.Check());
    SLUICE_RETURN_IF_ERROR(CopySchemaSection(tools, co, src, out.name, "post-data", drop_fks, dir, request.cancel));
    SLUICE_RETURN_IF_ERROR(watcher.Check());
    return Run(to.conn, "ANALYZE");
  };
  Status s = copy();
  watcher.Stop();
  if (!templated) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  if (!s.ok()) {
    if (watcher.cancelled()) s = Cancelled(kScratchCopyCancelled);
    out.hold.reset();
    // A cancel sent to `m` may still arrive and stop the DROP: a new session.
    PgSession fresh;
    Status dropped = watcher.fired() ? ConnectMaintenance(options, &fresh) : Status::Ok();
    if (dropped.ok()) dropped = DropDatabase(watcher.fired() ? fresh.conn : m.conn, out.name);
    return dropped.ok() ? s : s.WithContext("the copy " + out.name + " could not be dropped (" + dropped.message() + ")");
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace

Result<ScratchCopy> PgCreateScratchCopy(Connection& own, const PostgresOptions& options,
                                        const ScratchCopyRequest& request, const std::function<void()>& disconnect_own) {
  CancelWatcher watcher(request.cancel);
  SLUICE_RETURN_IF_ERROR(watcher.Check());
  auto made = MakeScratchCopy(own, options, request, disconnect_own, watcher);
  // An error before the copy existed (e.g. a cancelled lock statement),
  // said as the operator's interruption.
  if (!made.ok() && watcher.cancelled() &&
      made.status().message().find(kScratchCopyCancelled) == std::string::npos) {
    return Cancelled(kScratchCopyCancelled);
  }
  return made;
}

Status PgDropScratchCopy(const PostgresOptions& options, const ScratchCopy& copy, bool keep) {
  PgSession m;
  SLUICE_RETURN_IF_ERROR(ConnectMaintenance(options, &m));
  if (keep) {
    return Run(m.conn, "COMMENT ON DATABASE " + QuoteIdent(copy.name) + " IS " + QuoteLiteral(kKeptComment));
  }
  return DropDatabase(m.conn, copy.name);
}

Result<std::vector<std::string>> PgDropLeftoverScratchCopies(const PostgresOptions& options) {
  PgSession m;
  SLUICE_RETURN_IF_ERROR(ConnectMaintenance(options, &m));
  // Not kept, and nobody connected: a running rehearsal holds a session
  // on its copy from creation to drop.
  SLUICE_ASSIGN_OR_RETURN(auto rows, Rows(m.conn, std::string("SELECT d.datname, EXISTS (SELECT 1 FROM "
                                                              "pg_stat_activity a WHERE a.datname = d.datname) FROM "
                                                              "pg_database d WHERE d.datname LIKE ") +
                                                      QuoteLiteral(std::string(kScratchPrefix) + "%") +
                                                      " AND coalesce(shobj_description(d.oid, 'pg_database'), '') "
                                                      "<> " + QuoteLiteral(kKeptComment) + " ORDER BY 1"));
  std::vector<std::string> out;
  for (const auto& r : rows) {
    if (r[1] == "t") {
      out.push_back("left " + r[0] + " alone: it is in use (a rehearsal running now?)");
      continue;
    }
    // Nobody on it yet, but maybe a rehearsal that is making it right now.
    SLUICE_ASSIGN_OR_RETURN(auto free, Rows(m.conn, CreatingLock("pg_try_advisory_lock", r[0])));
    if (free.empty() || free[0][0] != "t") {
      out.push_back("left " + r[0] + " alone: a rehearsal is making it now");
      continue;
    }
    Status s = Run(m.conn, "DROP DATABASE " + QuoteIdent(r[0]));
    Run(m.conn, CreatingLock("pg_advisory_unlock", r[0])).IgnoreError();
    out.push_back(s.ok() ? "dropped " + r[0] + ", left behind by an interrupted rehearsal"
                         : "could not drop " + r[0] + ": " + s.message());
  }
  return out;
}

}  // namespace sluice::db
