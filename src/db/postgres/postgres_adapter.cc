#include "db/postgres/postgres_adapter.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>

#include "common/thread_annotations.h"
#include "common/sql_text.h"
#include "db/postgres/postgres_catalog.h"
#include "db/postgres/postgres_copy.h"
#include "db/postgres/postgres_dialect.h"
#include "db/postgres/postgres_errors.h"

namespace sluice::db {
namespace {

std::string TrimEnd(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// libpq's message on one line: LOCATION lines (verbose errors) dropped, the
// others joined. When `sqlstate` is given, the last "SEVERITY:  XXXXX: "
// code of a verbose message is stored there and removed from the text.
std::string OneLine(const std::string& msg, std::string* sqlstate = nullptr) {
  std::string out;
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t nl = msg.find('\n', pos);
    std::string line = msg.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? msg.size() : nl + 1;
    if (line.rfind("LOCATION:", 0) == 0) continue;
    for (size_t p = line.find(":  "); sqlstate && p != std::string::npos; p = line.find(":  ", p + 1)) {
      if (p + 10 > line.size() || line[p + 8] != ':' || line[p + 9] != ' ') continue;
      std::string code = line.substr(p + 3, 5);
      if (std::all_of(code.begin(), code.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); })) {
        *sqlstate = code;
        line.erase(p + 3, 7);
      }
    }
    line = TrimEnd(line);
    if (line.empty()) continue;
    out += (out.empty() ? "" : " ") + line;
  }
  return out;
}

// Maps a libpq failure to a Status whose code says what to do next
// (postgres_errors.cc has the table); detail() is "SQLSTATE XXXXX".
Status FromPg(PGconn* conn, const PGresult* res, std::string_view context) {
  std::string msg;
  std::string primary;
  std::string state;
  if (res) {
    const char* m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char* hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    if (m) primary = msg = m;
    if (detail) msg += " (" + std::string(detail) + ")";
    if (hint) msg += " hint: " + std::string(hint);
    if (s) state = s;
  }
  if (msg.empty() && conn) msg = PQerrorMessage(conn);
  if (msg.empty()) msg = "out of memory in the PostgreSQL client library";
  msg = OneLine(msg);
  std::string full = context.empty() ? msg : std::string(context) + ": " + msg;
  std::string detail = state.empty() ? "" : "SQLSTATE " + state;
  if (!conn || PQstatus(conn) == CONNECTION_BAD) {
    return Status(StatusCode::kUnavailable, "lost the connection to PostgreSQL: " + full, detail);
  }
  if (!res) return Status(StatusCode::kResourceExhausted, full, detail);
  if (IsStatementTimeout(state, primary)) {
    full = "statement timed out (it ran longer than the session's statement_timeout): " + full;
  }
  return Status(PostgresErrorCode(state, primary), full, detail);
}

void IgnoreNotice(void*, const char*) {}

// The value of `keyword` among libpq options (PQconninfo/PQconninfoParse
// output), or nullptr.
const char* OptionValue(const PQconninfoOption* opts, std::string_view keyword) {
  for (const PQconninfoOption* o = opts; o && o->keyword; ++o) {
    if (keyword == o->keyword) return o->val;
  }
  return nullptr;
}

// "postgresql://user@host:port/db" from a connection string, without the
// password or any other option.
std::string DescribeConninfo(const std::string& conninfo) {
  if (conninfo.empty()) return "postgresql (from the PG* environment)";
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (!opts) return "postgresql (malformed connection string)";
  auto get = [&](const char* k) {
    const char* v = OptionValue(opts, k);
    return std::string(v ? v : "");
  };
  std::string host = get("host").empty() ? get("hostaddr") : get("host");
  std::string out = "postgresql://" + (get("user").empty() ? "" : get("user") + "@") + host +
                    (get("port").empty() ? "" : ":" + get("port")) + "/" + get("dbname");
  if (!get("service").empty()) out += " (service " + get("service") + ")";
  PQconninfoFree(opts);
  return out;
}

// Waits for a connection started with PQconnectStartParams. Like libpq's
// blocking connect, each socket (host or address tried) gets `timeout_s`
// (0 = no limit). False when it gave up because of the timeout.
bool CompleteConnect(PGconn* c, int timeout_s) {
  using Clock = std::chrono::steady_clock;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  int last_fd = -2;
  Clock::time_point deadline;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    int fd = PQsocket(c);
    if (fd < 0) return true;  // failed; PQerrorMessage says why
    if (fd != last_fd) {
      last_fd = fd;
      deadline = Clock::now() + std::chrono::seconds(timeout_s);
    }
    int wait_ms = -1;
    if (timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      wait_ms = static_cast<int>(std::min<int64_t>(left, 1000));
    }
    pollfd p{fd, static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    int rc = poll(&p, 1, wait_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return true;
    if (rc == 0) continue;  // re-check the deadline
    st = PQconnectPoll(c);
  }
  return true;
}

}  // namespace

Result<PostgresConnectParams> BuildPostgresConnectParams(const std::string& conninfo) {
  PostgresConnectParams out;
  bool has_service = false;
  std::vector<std::string> explicit_keys;
  if (!conninfo.empty()) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
      std::string why = err ? TrimEnd(err) : "out of memory";
      if (err) PQfreemem(err);
      return InvalidArgument("malformed PostgreSQL connection string: " + why +
                             " (use postgresql://user@host:port/dbname?option=value or 'host=... dbname=...')");
    }
    for (const PQconninfoOption* o = opts; o->keyword; ++o) {
      if (o->val && *o->val) explicit_keys.push_back(o->keyword);
    }
    const char* service = OptionValue(opts, "service");
    has_service = service && *service;
    PQconninfoFree(opts);
  }
  if (!has_service) {
    // PQconndefaults: the values the PG* environment (and a PGSERVICE
    // service file) would supply.
    PQconninfoOption* env = PQconndefaults();
    for (const auto& [key, value] : kPostgresConnectDefaults) {
      const char* from_env = env ? OptionValue(env, key) : nullptr;
      bool user_set = (from_env && *from_env) ||
                      std::find(explicit_keys.begin(), explicit_keys.end(), key) != explicit_keys.end();
      if (user_set) continue;
      out.keywords.push_back(key);
      out.values.push_back(value);
    }
    if (env) PQconninfoFree(env);
  }
  if (!conninfo.empty()) {
    out.keywords.push_back("dbname");
    out.values.push_back(conninfo);
  }
  return out;
}

namespace {

class PgConnection : public Connection {
 public:
  PgConnection(const PostgresDialect& d, PostgresOptions o) : d_(d), o_(std::move(o)) {}
  ~PgConnection() override { Close(); }

  Status Open() {
    Close();
    SLUICE_ASSIGN_OR_RETURN(PostgresConnectParams params, BuildPostgresConnectParams(o_.conninfo));
    const std::vector<const char*> keys = params.KeywordArray(), vals = params.ValueArray();
    PGconn* c = PQconnectStartParams(keys.data(), vals.data(), 1);
    if (!c) return ResourceExhausted("cannot connect to PostgreSQL: out of memory");
    bool in_time = true;
    int timeout_s = 0;
    if (PQstatus(c) != CONNECTION_BAD) {
      PQconninfoOption* eff = PQconninfo(c);
      auto has_comma = [&](const char* k) {
        const char* v = OptionValue(eff, k);
        return v && std::string_view(v).find(',') != std::string_view::npos;
      };
      bool several_hosts = has_comma("host") || has_comma("hostaddr");
      const char* t = OptionValue(eff, "connect_timeout");
      timeout_s = t ? std::atoi(t) : 0;
      if (timeout_s == 1) timeout_s = 2;  // libpq's minimum
      if (eff) PQconninfoFree(eff);
      if (several_hosts) {
        // libpq moves on to the next host when one times out; only its
        // blocking connect can do that. Errors then carry no SQLSTATE.
        PQfinish(c);
        c = PQconnectdbParams(keys.data(), vals.data(), 1);
        if (!c) return ResourceExhausted("cannot connect to PostgreSQL: out of memory");
      } else {
        // Verbose errors carry the SQLSTATE of a refused connection (too
        // many connections, authentication, no such database).
        PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
        in_time = CompleteConnect(c, timeout_s);
      }
    }
    if (PQstatus(c) != CONNECTION_OK) {
      std::string state;
      std::string err = OneLine(PQerrorMessage(c), &state);
      PQfinish(c);
      if (!in_time) {
        err = "no connection within " + std::to_string(timeout_s) +
              " s (connect_timeout; set it in the URL to change it)" + (err.empty() ? "" : ": " + err);
      }
      StatusCode code = state.empty() ? StatusCode::kUnavailable : PostgresErrorCode(state, err);
      return Status(code, "cannot connect to PostgreSQL (" + Describe() + "): " + err,
                    state.empty() ? "" : "SQLSTATE " + state);
    }
    conn_ = c;
    {
      MutexLock l(&cancel_mu_);
      cancel_ = PQgetCancel(conn_);
    }
    PQsetErrorVerbosity(conn_, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
    in_txn_ = false;
    if (PQserverVersion(conn_) < 150000) {
      return FailedPrecondition("sluice needs PostgreSQL 15 or newer (views with security_invoker); the server is " +
                                std::to_string(PQserverVersion(conn_)));
    }
    SLUICE_RETURN_IF_ERROR(Exec("SET application_name = " + sql::QuoteLiteral(PostgresApplicationName())));
    // sluice's statements are catalog reads and bounded chunks: JIT
    // compilation only adds to them. The catalog's cost estimates of the
    // dependents query (postgres_catalog.cc) cross jit_above_cost, and JIT
    // took 0.64 s of its 0.9 s on a database of two tables (22 ms without).
    return Exec("SET jit = off");
  }

  Result<ScratchCopy> CreateScratchCopy(const ScratchCopyRequest& request) override {
    if (in_txn_) return Internal("CreateScratchCopy inside a transaction");
    return PgCreateScratchCopy(*this, o_, request, [this] { Close(); });
  }
  Status DropScratchCopy(const ScratchCopy& copy, bool keep) override { return PgDropScratchCopy(o_, copy, keep); }
  Result<std::vector<std::string>> DropLeftoverScratchCopies() override { return PgDropLeftoverScratchCopies(o_); }

  void Close() {
    {
      MutexLock l(&cancel_mu_);
      if (cancel_) PQfreeCancel(cancel_);
      cancel_ = nullptr;
    }
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    in_txn_ = false;
  }

  // For TEST_PostgresConnectionOption.
  std::string Option(const std::string& keyword) const {
    if (!conn_) return "";
    PQconninfoOption* opts = PQconninfo(conn_);
    const char* v = OptionValue(opts, keyword);
    std::string out = v ? v : "";
    if (opts) PQconninfoFree(opts);
    return out;
  }

const Dialect& dialect() const override { return d_; }

  Result<QueryResult> Query(std::string_view sql, const std::vector<Value>& params) override {
    if (!conn_) return Unavailable("not connected");
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const auto& p : params) {
      values.push_back(p.is_null() ? nullptr : p.text.c_str());
      lengths.push_back(static_cast<int>(p.text.size()));
      formats.push_back(0);
    }
    std::string q(sql);
    PGresult* r = PQexecParams(conn_, q.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                               lengths.data(), formats.data(), 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      Status s = FromPg(conn_, r, "");
      PQclear(r);
      return s;
    }
    QueryResult out;
    int cols = PQnfields(r);
    for (int c = 0; c < cols; ++c) out.columns.push_back(PQfname(r, c));
    int rows = PQntuples(r);
    out.rows.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      Row row;
      row.reserve(static_cast<size_t>(cols));
      for (int c = 0; c < cols; ++c) {
        if (PQgetisnull(r, i, c)) {
          row.push_back(Value::Null());
        } else {
          row.push_back(Value::Text(std::string(PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c)))));
        }
      }
      out.rows.push_back(std::move(row));
    }
    const char* affected = PQcmdTuples(r);
    out.affected = affected && *affected ? std::atoll(affected) : 0;
    PQclear(r);
    return out;
  }

  Status Exec(std::string_view sql) override {
    if (!conn_) return Unavailable("not connected");
    std::string q(sql);
    PGresult* r = PQexec(conn_, q.c_str());
    ExecStatusType st = PQresultStatus(r);
    Status s = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) ? Status::Ok()
                                                                                          : FromPg(conn_, r, "");
    PQclear(r);
    return s;
  }

  Status Execute(const Statement& stmt) override {
    if (!stmt.guard_sql.empty()) {
      auto r = Query(stmt.guard_sql, {});
      if (!r.ok()) return r.status();
      if (!r->rows.empty()) return FailedPrecondition(stmt.guard_message);
    }
    if (!stmt.rebuild_invalid_index.empty()) {
      // A CREATE INDEX CONCURRENTLY that failed half-way leaves an INVALID
      // index that IF NOT EXISTS would keep: drop it and build again.
      auto r = Query("SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
                     {Value::Text(stmt.rebuild_invalid_index)});
      if (!r.ok()) return r.status();
      if (!r->rows.empty() && r->Scalar().text == "t") {
        SLUICE_RETURN_IF_ERROR(Exec("DROP INDEX CONCURRENTLY IF EXISTS " + stmt.rebuild_invalid_index));
      }
    }
    return Exec(stmt.sql);
  }

  Status Begin() override {
    SLUICE_RETURN_IF_ERROR(Exec("BEGIN"));
    in_txn_ = true;
    return Status::Ok();
  }
  Status BeginSnapshot() override {
    SLUICE_RETURN_IF_ERROR(Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    in_txn_ = true;
    return Status::Ok();
  }
  // (Not in a savepoint: PostgreSQL exports no snapshot from a
  // subtransaction. A failure aborts the caller's transaction, which then
  // fails closed.)
  bool shares_snapshots() const override { return true; }
  Result<std::string> ExportSnapshot() override {
    SLUICE_ASSIGN_OR_RETURN(auto r, Query("SELECT pg_export_snapshot()", {}));
    return r.Scalar().text;
  }
  Status BeginSnapshotOf(const std::string& id) override {
    SLUICE_RETURN_IF_ERROR(BeginSnapshot());
    Status s = Exec("SET TRANSACTION SNAPSHOT " + sql::QuoteLiteral(id));
    if (!s.ok()) Rollback().IgnoreError();
    return s;
  }
  Status Commit() override {
    in_txn_ = false;
    Status s = Exec("COMMIT");
    if (!s.ok() && (!conn_ || PQstatus(conn_) == CONNECTION_BAD || s.detail().empty())) {
      // The COMMIT may or may not have reached the server. (An error the
      // server reported, with its SQLSTATE, means it rolled back.)
      return Status(StatusCode::kInDoubt, "connection lost during COMMIT: " + s.message(), s.detail());
    }
    return s;
  }
  Status Rollback() override {
    in_txn_ = false;
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) return Status::Ok();
    return Exec("ROLLBACK");
  }
  bool in_transaction() const override { return in_txn_; }

  Result<Schema> Introspect() override;
  Status IntrospectTriggers(Schema& schema);

  // A new session, then every AddSessionSetup statement in order. If one
  // fails the connection is closed again (statements return kUnavailable):
  // a session without its setup (another version, no timeout) must not be
  // used by mistake.
  Status Reconnect() override {
    SLUICE_RETURN_IF_ERROR(Open());
    for (const auto& sql : setup_) {
      Status s = Exec(sql);
      if (!s.ok()) {
        Close();
        return Status(s.code(), "reconnected, but re-applying the session setup `" + sql.substr(0, 80) +
                                    "` failed: " + s.message(), s.detail());
      }
    }
    return Status::Ok();
  }

  Status AddSessionSetup(std::string sql) override {
    // A rollback would undo a SET made inside a transaction, while a
    // reconnect would re-apply it: refuse the ambiguity.
    if (in_txn_) return Internal("AddSessionSetup called inside a transaction: `" + sql.substr(0, 80) + "`");
    SLUICE_RETURN_IF_ERROR(Exec(sql));
    setup_.push_back(std::move(sql));
    return Status::Ok();
  }

  std::string DescribeLockHolders(const std::vector<std::string>& tables) override {
    std::vector<Value> params;
    std::string list;
    for (size_t i = 0; i < tables.size(); ++i) {
      list += (i ? ", " : "") + std::string("to_regclass($") + std::to_string(i + 1) + ")";
      params.push_back(Value::Text(tables[i]));
    }
    if (list.empty()) {
      // No tables known yet (e.g. while reading the catalog): any table of
      // the migrated schema.
      params.push_back(Value::Text(d_.schema()));
      list = "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1";
    }
    auto r = Query(
        "SELECT DISTINCT a.pid, a.state, coalesce(a.application_name, ''), l.mode, "
        "coalesce(round(extract(epoch FROM now() - a.xact_start))::text, '?'), left(coalesce(a.query, ''), 120) "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.granted AND l.pid <> pg_backend_pid() "
        "AND l.relation IN (" + list + ")",
        params);
    if (!r.ok() || r->rows.empty()) return "";
    std::string out;
    for (const auto& row : r->rows) {
      out += (out.empty() ? "" : "; ") + std::string("pid ") + row[0].text + " (" + row[2].text + ", " + row[1].text +
             ", holds " + row[3].text + " for " + row[4].text + "s, query: " + row[5].text + ")";
    }
    return out;
  }

  Result<LockAttempt> TryLock(const std::string& name) override {
    LockAttempt out;
    auto r = Query("SELECT pg_try_advisory_lock(20830, hashtext($1))", {Value::Text(name)});
    if (!r.ok()) return r.status();
    if (r->Scalar().text == "t") {
      out.acquired = true;
      return out;
    }
    auto h = Query(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = "
        "20830 AND l.objid = hashtext($1)::oid AND l.granted",
        {Value::Text(name)});
    if (h.ok() && !h->rows.empty()) {
      const auto& row = h->rows[0];
      out.holder = "server pid " + row[0].text + ", " + row[1].text + " from " + row[2].text + " since " + row[3].text;
    } else {
      out.holder = "another session";
    }
    return out;
  }

  Status Unlock(const std::string& name) override {
    return Query("SELECT pg_advisory_unlock(20830, hashtext($1))", {Value::Text(name)}).status();
  }

  void Cancel() override {
    MutexLock l(&cancel_mu_);
    char err[256];
    if (cancel_) (void)PQcancel(cancel_, err, sizeof err);  // best effort: the statement may have ended
  }

  std::string Describe() const override {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) return DescribeConninfo(o_.conninfo);
    return std::string("postgresql://") + PQuser(conn_) + "@" + (PQhost(conn_) ? PQhost(conn_) : "") + ":" +
           PQport(conn_) + "/" + PQdb(conn_);
  }

 private:
  const PostgresDialect& d_;
  PostgresOptions o_;
  PGconn* conn_ = nullptr;
  // PQcancel's handle for conn_: Cancel() runs on other threads, while
  // Open/Close replace it.
  Mutex cancel_mu_;
  PGcancel* cancel_ GUARDED_BY(cancel_mu_) = nullptr;
  bool in_txn_ = false;
  std::vector<std::string> setup_;  // AddSessionSetup, re-applied by Reconnect
};

std::string FkAction(const std::string& c) {
  if (c == "r") return "RESTRICT";
  if (c == "c") return "CASCADE";
  if (c == "n") return "SET NULL";
  if (c == "d") return "SET DEFAULT";
  return "NO ACTION";
}

// "CHECK ((x > 0)) NOT VALID" -> "(x > 0)"
std::string CheckExpression(std::string def) {
  if (def.rfind("CHECK ", 0) == 0) def = def.substr(6);
  for (const char* suffix : {" NOT VALID", " NO INHERIT"}) {
    std::string s(suffix);
    while (def.size() >= s.size() && def.compare(def.size() - s.size(), s.size(), s) == 0) {
      def.resize(def.size() - s.size());
    }
  }
  return def;
}

Result<Schema> PgConnection::Introspect() {
  Schema schema;
  schema.name = d_.schema();
  const Value ns = Value::Text(d_.schema());
  // Partitions are tables too (relkind 'r', or 'p' when partitioned
  // again); each knows its parent, each parent its partitions.
  auto tables = Query(
      "SELECT c.relname, c.relreplident, obj_description(c.oid, 'pg_class'), c.relkind = 'p', coalesce((SELECT "
      "p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE h.inhrelid = c.oid AND "
      "c.relispartition), ''), (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = c.oid AND c.relkind = 'p'), "
      "(SELECT string_agg(p.oid::regclass::text, chr(1) ORDER BY p.oid::regclass::text) FROM pg_inherits h JOIN pg_class "
      "p ON p.oid = h.inhparent WHERE h.inhrelid = c.oid AND NOT c.relispartition), (SELECT string_agg(k.oid::regclass"
      "::text, chr(1) ORDER BY k.oid::regclass::text) FROM pg_inherits h JOIN pg_class k ON k.oid = h.inhrelid WHERE "
      "h.inhparent = c.oid AND NOT k.relispartition) "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND "
      "c.relkind IN ('r', 'p') ORDER BY c.relname",
      {ns});
  if (!tables.ok()) return tables.status();
  for (const auto& r : tables->rows) {
    TableInfo t;
    t.name = r[0].text;
    t.replica_identity = r[1].text;
    if (!r[2].is_null()) t.comment = r[2].text;
    t.partitioned = r[3].text == "t";
    t.partition_of = r[4].text;
    t.partition_count = static_cast<int>(r[5].AsInt());
    // Names joined by chr(1), which no identifier contains (a comma can).
    auto names = [](const Value& v) {
      std::vector<std::string> out;
      if (v.is_null()) return out;
      std::string item;
      for (char ch : v.text + '\x01') {
        if (ch != '\x01') {
          item += ch;
        } else if (!item.empty()) {
          out.push_back(std::move(item));
          item.clear();
        }
      }
      return out;
    };
    t.inherits = names(r[6]);
    t.inheritance_children = names(r[7]);
    schema.tables[t.name] = std::move(t);
  }
  for (const auto& [name, t] : schema.tables) {
    auto parent = schema.tables.find(t.partition_of);
    if (!t.partition_of.empty() && parent != schema.tables.end()) parent->second.partitions.push_back(name);
  }
  auto views = Query(
      "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND "
      "c.relkind IN ('v', 'm', 'S', 'f')",
      {ns});
  if (!views.ok()) return views.status();
  for (const auto& r : views->rows) schema.views.push_back(r[0].text);

  auto cols = Query(
      "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, "
      "d.adrelid), a.attidentity, a.attgenerated, col_description(a.attrelid, a.attnum) FROM pg_attribute a JOIN "
      "pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON "
      "d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum "
      "> 0 AND NOT a.attisdropped AND a.attname NOT LIKE '\\_sluice\\_%' ORDER BY c.relname, a.attnum",
      {ns});
  if (!cols.ok()) return cols.status();
  for (const auto& r : cols->rows) {
    auto it = schema.tables.find(r[0].text);
    if (it == schema.tables.end()) continue;
    ColumnInfo c;
    c.name = r[1].text;
    c.type = r[2].text;
    c.not_null = r[3].text == "t";
    c.identity = !r[5].text.empty();
    c.identity_always = r[5].text == "a";
    c.generated = !r[6].text.empty();
    if (!r[4].is_null() && !c.generated) c.default_expr = r[4].text;
    if (!r[7].is_null()) c.comment = r[7].text;
    it->second.columns.push_back(std::move(c));
  }

  auto idx = Query(
      "SELECT tc.relname, ic.relname, i.indisunique, i.indisprimary, i.indisvalid, i.indpred IS NOT NULL, "
      "pg_get_indexdef(i.indexrelid), coalesce(con.conname, ''), i.indisreplident, coalesce((SELECT p.relname FROM "
      "pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE h.inhrelid = i.indexrelid), '') FROM pg_index i "
      "JOIN pg_class ic "
      "ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = "
      "tc.relnamespace LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND "
      "con.contype IN ('p', 'u', 'x') WHERE n.nspname = $1 AND tc.relkind IN ('r', 'p') ORDER BY tc.relname, "
      "ic.relname",
      {ns});
  if (!idx.ok()) return idx.status();
  auto idx_cols = Query(
      "SELECT ic.relname, coalesce(a.attname, '') FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN "
      "pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace CROSS JOIN LATERAL "
      "unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) LEFT JOIN pg_attribute a ON a.attrelid = "
      "i.indrelid AND a.attnum = k.attnum WHERE n.nspname = $1 AND k.ord <= i.indnkeyatts ORDER BY ic.relname, k.ord",
      {ns});
  if (!idx_cols.ok()) return idx_cols.status();
  std::map<std::string, std::vector<std::string>> columns_of_index;
  for (const auto& r : idx_cols->rows) columns_of_index[r[0].text].push_back(r[1].text);
  // Every column an index reads: its key and INCLUDE columns, and (through
  // pg_depend) the columns of its expressions and predicate.
  auto idx_reads = Query(
      "SELECT ic.relname, a.attname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON "
      "tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace JOIN pg_attribute a ON a.attrelid = "
      "i.indrelid AND a.attnum > 0 AND NOT a.attisdropped WHERE n.nspname = $1 AND (a.attnum = ANY (i.indkey::int2[]) "
      "OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid AND "
      "d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum)) ORDER BY "
      "ic.relname, a.attnum",
      {ns});
  if (!idx_reads.ok()) return idx_reads.status();
  std::map<std::string, std::vector<std::string>> reads_of_index;
  for (const auto& r : idx_reads->rows) reads_of_index[r[0].text].push_back(r[1].text);
  for (const auto& r : idx->rows) {
    auto it = schema.tables.find(r[0].text);
    if (it == schema.tables.end()) continue;
    IndexInfo i;
    i.table = r[0].text;
    i.name = r[1].text;
    i.unique = r[2].text == "t";
    i.primary = r[3].text == "t";
    i.valid = r[4].text == "t";
    i.partial = r[5].text == "t";
    i.definition = r[6].text;
    i.constraint = r[7].text;
    i.columns = columns_of_index[i.name];
    i.reads = reads_of_index[i.name];
    i.parent_index = r[9].text;
    if (r[8].text == "t") it->second.replica_identity_index = i.name;
    if (i.primary) it->second.primary_key = i.columns;
    it->second.indexes.push_back(std::move(i));
  }

  auto cons = Query(
      "SELECT tc.relname, con.conname, con.contype, pg_get_constraintdef(con.oid), con.convalidated, "
      "coalesce(ft.relname, ''), con.confupdtype, con.confdeltype, con.confmatchtype, con.condeferrable, "
      "con.condeferred, con.oid FROM pg_constraint con JOIN pg_class tc ON tc.oid = con.conrelid JOIN pg_namespace n "
      "ON n.oid = tc.relnamespace LEFT JOIN pg_class ft ON ft.oid = con.confrelid WHERE n.nspname = $1 AND "
      "con.contype IN ('c', 'f', 'p', 'u', 'x') ORDER BY tc.relname, con.conname",
      {ns});
  if (!cons.ok()) return cons.status();
  auto con_cols = Query(
      "SELECT con.oid, 'k', a.attname, k.ord FROM pg_constraint con JOIN pg_class tc ON tc.oid = con.conrelid JOIN "
      "pg_namespace n ON n.oid = tc.relnamespace CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, "
      "ord) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum WHERE n.nspname = $1 UNION ALL "
      "SELECT con.oid, 'f', a.attname, k.ord FROM pg_constraint con JOIN pg_class tc ON tc.oid = con.conrelid JOIN "
      "pg_namespace n ON n.oid = tc.relnamespace CROSS JOIN LATERAL unnest(con.confkey) WITH ORDINALITY AS k(attnum, "
      "ord) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum WHERE n.nspname = $1 ORDER BY "
      "1, 2, 4",  // key order matters: (a, b) REFERENCES t (x, y) pairs a with x
      {ns});
  if (!con_cols.ok()) return con_cols.status();
  std::map<std::string, std::vector<std::string>> key_cols, ref_cols;
  for (const auto& r : con_cols->rows) (r[1].text == "k" ? key_cols : ref_cols)[r[0].text].push_back(r[2].text);
  for (const auto& r : cons->rows) {
    auto it = schema.tables.find(r[0].text);
    if (it == schema.tables.end()) continue;
    ConstraintInfo c;
    c.name = r[1].text;
    const std::string type = r[2].text;
    c.definition = r[3].text;
    c.validated = r[4].text == "t";
    c.columns = key_cols[r[11].text];
    if (type == "c") {
      c.type = ConstraintInfo::Type::kCheck;
      c.check_expr = CheckExpression(c.definition);
    } else if (type == "f") {
      c.type = ConstraintInfo::Type::kForeignKey;
      ForeignKeySpec fk;
      fk.name = c.name;
      fk.columns = c.columns;
      fk.ref_table = r[5].text;
      fk.ref_columns = ref_cols[r[11].text];
      fk.on_update = FkAction(r[6].text);
      fk.on_delete = FkAction(r[7].text);
      fk.match_type = r[8].text == "f" ? "FULL" : (r[8].text == "p" ? "PARTIAL" : "SIMPLE");
      fk.deferrable = r[9].text == "t";
      fk.initially_deferred = r[10].text == "t";
      c.fk = fk;
    } else if (type == "p") {
      c.type = ConstraintInfo::Type::kPrimaryKey;
    } else if (type == "u") {
      c.type = ConstraintInfo::Type::kUnique;
    } else {
      c.type = ConstraintInfo::Type::kExclude;
    }
    it->second.constraints.push_back(std::move(c));
  }
  SLUICE_RETURN_IF_ERROR(IntrospectDependents(*this, d_, &schema));
  SLUICE_RETURN_IF_ERROR(IntrospectTriggers(schema));
  // What this role's search_path resolves to (pinned into the dual-write
  // functions) and whether the live alias exists.
  auto path = Query("SELECT s FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, i) ORDER BY i", {});
  if (!path.ok()) return path.status();
  for (const auto& r : path->rows) schema.search_path.push_back(r[0].text);
  auto live = Query("SELECT count(*) FROM pg_namespace WHERE nspname = $1", {Value::Text(d_.LiveSchema())});
  if (!live.ok()) return live.status();
  schema.live_alias_exists = live->Scalar().AsInt() > 0;
  return schema;
}

// The application's triggers on the tables of the migrated schema:
// internal ones (foreign keys) and sluice's dual-write triggers are left
// out. tgtype bits (PostgreSQL's pg_trigger.h): 1 row, 2 before, 4 insert,
// 8 delete, 16 update, 32 truncate, 64 instead.
Status PgConnection::IntrospectTriggers(Schema& schema) {
  const Value ns = Value::Text(d_.schema());
  auto trg = Query(
      "SELECT c.relname, t.tgname, t.tgtype, t.tgenabled, pg_get_triggerdef(t.oid), t.tgfoid::regprocedure::text, "
      "coalesce(p.prosrc, ''), t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON "
      "n.oid = c.relnamespace LEFT JOIN pg_proc p ON p.oid = t.tgfoid WHERE n.nspname = $1 AND c.relkind IN ('r', "
      "'p') AND NOT t.tgisinternal AND t.tgname NOT LIKE '~sluice\\_dw\\_%' ORDER BY c.relname, t.tgname",
      {ns});
  if (!trg.ok()) return trg.status();
  auto trg_cols = Query(
      "SELECT t.oid, a.attname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = "
      "c.relnamespace CROSS JOIN LATERAL unnest(t.tgattr::int2[]) WITH ORDINALITY AS k(attnum, ord) JOIN "
      "pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = k.attnum WHERE n.nspname = $1 AND NOT "
      "t.tgisinternal ORDER BY t.oid, k.ord",
      {ns});
  if (!trg_cols.ok()) return trg_cols.status();
  std::map<std::string, std::vector<std::string>> update_columns;
  for (const auto& r : trg_cols->rows) update_columns[r[0].text].push_back(r[1].text);
  for (const auto& r : trg->rows) {
    auto it = schema.tables.find(r[0].text);
    if (it == schema.tables.end()) continue;
    TriggerInfo t;
    t.name = r[1].text;
    const int64_t type = r[2].AsInt();
    t.row_level = (type & 1) != 0;
    t.timing = (type & 2) ? "BEFORE" : (type & 64) ? "INSTEAD OF" : "AFTER";
    if (type & 4) t.events.insert("INSERT");
    if (type & 8) t.events.insert("DELETE");
    if (type & 16) t.events.insert("UPDATE");
    if (type & 32) t.events.insert("TRUNCATE");
    t.enabled = r[3].text;
    t.definition = r[4].text;
    t.function = r[5].text;
    t.function_source = r[6].text;
    t.update_columns = update_columns[r[7].text];
    it->second.triggers.push_back(std::move(t));
  }
  return Status::Ok();
}

class PgAdapter : public Adapter {
 public:
  explicit PgAdapter(PostgresOptions o) : o_(std::move(o)), d_(o_.schema, o_.state_schema) {}
  const Dialect& dialect() const override { return d_; }
  Result<std::unique_ptr<Connection>> Connect() override {
    auto c = std::make_unique<PgConnection>(d_, o_);
    SLUICE_RETURN_IF_ERROR(c->Open());
    return std::unique_ptr<Connection>(std::move(c));
  }
  std::string Describe() const override { return "postgresql"; }

 private:
  PostgresOptions o_;
  PostgresDialect d_;
};

}  // namespace

std::unique_ptr<Adapter> MakePostgresAdapter(PostgresOptions options) {
  return std::make_unique<PgAdapter>(std::move(options));
}

std::string TEST_PostgresConnectionOption(Connection& conn, const std::string& keyword) {
  auto* pg = dynamic_cast<PgConnection*>(&conn);
  return pg ? pg->Option(keyword) : "";
}

}  // namespace sluice::db
