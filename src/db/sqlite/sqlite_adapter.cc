#include "db/sqlite/sqlite_adapter.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <map>
#include <cstring>
#include <ctime>
#include <set>
#include <vector>

#include "common/thread_annotations.h"
#include "common/sql_text.h"
#include "db/sqlite/sqlite_lexer.h"
#include "db/sqlite/sqlite_copy.h"
#include "db/sqlite/sqlite_dialect.h"
#include "db/sqlite/sqlite_errors.h"

namespace sluice::db {
namespace {

// Pages the online backup copies per step (4 MB at the default page size):
// CopyDatabaseTo reads its cancel flag between steps, so a signal takes
// effect within one step, while each step stays large enough that the
// step's overhead does not show.
constexpr int kBackupStepPages = 1024;

std::string NowIso() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string HostName() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// The canonical text of a REAL: integral values below 1e15 as integers,
// others in the shortest "%.Ng" form that reads back as the same double
// (PostgreSQL's float8 output uses the same shortest form).
std::string CanonReal(double d) {
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 1e15) {
    return std::to_string(static_cast<long long>(d));
  }
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  for (int prec = 15; prec <= 17; ++prec) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

// sluice_hash(v1, v2, ...): XXH3-64 over every argument's type tag, length
// and bytes, so ('x0','y') and ('x','0y') differ and NULL differs from ''.
// Integers, reals and text hash through their canonical text, so a value
// hashes alike whatever storage class column affinity gave it (1250, 1250.0
// and '1250' are equal, as `IS` says they are in a numeric column).
void SluiceHash(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (int i = 0; i < argc; ++i) {
    int type = sqlite3_value_type(argv[i]);
    unsigned char tag = static_cast<unsigned char>(type);
    const void* data = nullptr;
    int64_t len = 0;
    std::string num;
    if (type == SQLITE_NULL) {
      tag = 'N';
    } else if (type == SQLITE_BLOB) {
      tag = 'B';
      data = sqlite3_value_blob(argv[i]);
      len = sqlite3_value_bytes(argv[i]);
    } else if (type == SQLITE_FLOAT) {
      tag = 'V';
      num = CanonReal(sqlite3_value_double(argv[i]));
      data = num.data();
      len = static_cast<int64_t>(num.size());
    } else {
      tag = 'V';
      data = sqlite3_value_text(argv[i]);
      len = sqlite3_value_bytes(argv[i]);
    }
    XXH3_64bits_update(st, &tag, 1);
    XXH3_64bits_update(st, &len, sizeof len);
    if (len > 0) XXH3_64bits_update(st, data, static_cast<size_t>(len));
  }
  XXH64_hash_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(h));
}

// sluice_canon(v): the text PostgresDialect::CanonicalText renders for the
// same value (see Dialect::CanonicalText). NULL stays NULL.
void SluiceCanon(sqlite3_context* ctx, int, sqlite3_value** argv) {
  switch (sqlite3_value_type(argv[0])) {
    case SQLITE_NULL: sqlite3_result_null(ctx); return;
    case SQLITE_INTEGER: {
      std::string s = std::to_string(sqlite3_value_int64(argv[0]));
      sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      return;
    }
    case SQLITE_FLOAT: {
      std::string s = CanonReal(sqlite3_value_double(argv[0]));
      sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      return;
    }
    case SQLITE_BLOB: {
      static const char* kHex = "0123456789abcdef";
      const auto* p = static_cast<const unsigned char*>(sqlite3_value_blob(argv[0]));
      int n = sqlite3_value_bytes(argv[0]);
      std::string s;
      s.reserve(static_cast<size_t>(n) * 2);
      for (int i = 0; i < n; ++i) {
        s += kHex[p[i] >> 4];
        s += kHex[p[i] & 15];
      }
      sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      return;
    }
    default:
      sqlite3_result_value(ctx, argv[0]);
  }
}

// MD5 (RFC 1321), for sluice_md5_64: PostgreSQL has md5() built in, so the
// same hash can be computed inside both databases.
class Md5 {
 public:
  void Update(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      buf_[used_++] = p[i];
      if (used_ == 64) {
        Block(buf_);
        used_ = 0;
      }
    }
    bytes_ += n;
  }
  void Final(unsigned char out[16]) {
    uint64_t bits = bytes_ * 8;
    unsigned char pad = 0x80;
    Update(&pad, 1);
    unsigned char zero = 0;
    while (used_ != 56) Update(&zero, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (8 * i));
    Update(len, 8);
    for (int i = 0; i < 4; ++i) {
      for (int b = 0; b < 4; ++b) out[i * 4 + b] = static_cast<unsigned char>(h_[i] >> (8 * b));
    }
  }

 private:
  static uint32_t Rol(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }
  void Block(const unsigned char* p) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t w[16];
    for (int i = 0; i < 16; ++i) {
      w[i] = static_cast<uint32_t>(p[i * 4]) | (static_cast<uint32_t>(p[i * 4 + 1]) << 8) |
             (static_cast<uint32_t>(p[i * 4 + 2]) << 16) | (static_cast<uint32_t>(p[i * 4 + 3]) << 24);
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
    for (int i = 0; i < 64; ++i) {
      uint32_t f;
      int g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      uint32_t tmp = d;
      d = c;
      c = b;
      b = b + Rol(a + f + K[i] + w[g], R[i]);
      a = tmp;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
  }
  uint32_t h_[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  unsigned char buf_[64] = {};
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

// sluice_md5_64(text): the first 8 bytes of MD5(text) as a big-endian
// signed 64-bit integer, equal to PostgreSQL's
// ('x' || substr(md5(text), 1, 16))::bit(64)::bigint.
void SluiceMd5_64(sqlite3_context* ctx, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  const auto* p = sqlite3_value_text(argv[0]);
  int n = sqlite3_value_bytes(argv[0]);
  Md5 md5;
  md5.Update(p, static_cast<size_t>(n));
  unsigned char out[16];
  md5.Final(out);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | out[i];
  sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(v));
}

class SqliteConnection : public Connection {
 public:
  SqliteConnection(const SqliteDialect& d, SqliteOptions o) : dialect_(d), opts_(std::move(o)) {}
  ~SqliteConnection() override {
    for (const auto& l : std::set<std::string>(locks_)) Unlock(l).IgnoreError();
    Close();
  }

  Status Open() {
    if (sqlite3_libversion_number() < 3035000) {
      return FailedPrecondition(std::string("sluice needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); this is ") +
                                sqlite3_libversion());
    }
    struct stat sb;
    if (!opts_.create && stat(opts_.path.c_str(), &sb) != 0) {
      return NotFound("SQLite database file '" + opts_.path + "' does not exist");
    }
    int flags = SQLITE_OPEN_READWRITE | (opts_.create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(opts_.path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      Status s = Error(rc, "cannot open '" + opts_.path + "'");
      sqlite3_close_v2(db_);
      db_ = nullptr;
      return s;
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, opts_.busy_timeout_ms);
    {
      MutexLock l(&cancel_mu_);
      interruptible_ = db_;
    }
    sqlite3_create_function_v2(db_, "sluice_hash", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, SluiceHash,
                               nullptr, nullptr, nullptr);
    sqlite3_create_function_v2(db_, "sluice_canon", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, SluiceCanon,
                               nullptr, nullptr, nullptr);
    sqlite3_create_function_v2(db_, "sluice_md5_64", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, SluiceMd5_64,
                               nullptr, nullptr, nullptr);
    // sluice_statement_timeout(ms): SqliteDialect::StatementTimeoutSql.
    // Not deterministic: it must run every time, it sets connection state.
    sqlite3_create_function_v2(db_, "sluice_statement_timeout", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, this,
                               SetStatementTimeout, nullptr, nullptr, nullptr);
    statement_timeout_ms_ = 0;
    sqlite3_progress_handler(db_, 0, nullptr, nullptr);
    // Fails here, not later, when the file is not a database.
    auto r = Query("SELECT count(*) FROM sqlite_schema", {});
    if (!r.ok()) return r.status().WithContext("'" + opts_.path + "' is not a usable SQLite database");
    return Status::Ok();
  }

  const Dialect& dialect() const override { return dialect_; }

  Result<QueryResult> Query(std::string_view sql, const std::vector<Value>& params) override {
    if (!db_) return Unavailable("connection is closed");
    StartDeadline();
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &st, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "");
    QueryResult out;
    int n = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= n; ++i) {
      const char* name = sqlite3_bind_parameter_name(st, i);
      size_t idx = static_cast<size_t>(i - 1);
      if (name && (name[0] == '$' || name[0] == '?')) idx = static_cast<size_t>(std::atoi(name + 1) - 1);
      if (idx >= params.size()) {
        sqlite3_finalize(st);
        return Internal("statement needs parameter " + std::to_string(idx + 1) + " but only " +
                        std::to_string(params.size()) + " were given");
      }
      const Value& v = params[idx];
      switch (v.type) {
        case Value::Type::kNull: rc = sqlite3_bind_null(st, i); break;
        case Value::Type::kInt: rc = sqlite3_bind_int64(st, i, std::strtoll(v.text.c_str(), nullptr, 10)); break;
        case Value::Type::kReal: rc = sqlite3_bind_double(st, i, std::strtod(v.text.c_str(), nullptr)); break;
        case Value::Type::kText:
          rc = sqlite3_bind_text(st, i, v.text.data(), static_cast<int>(v.text.size()), SQLITE_TRANSIENT);
          break;
        case Value::Type::kBlob:
          rc = sqlite3_bind_blob(st, i, v.text.data(), static_cast<int>(v.text.size()), SQLITE_TRANSIENT);
          break;
      }
      if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return Error(rc, "bind");
      }
    }
    int cols = sqlite3_column_count(st);
    for (int c = 0; c < cols; ++c) out.columns.push_back(sqlite3_column_name(st, c));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      Row row;
      row.reserve(static_cast<size_t>(cols));
      for (int c = 0; c < cols; ++c) {
        Value v;
        switch (sqlite3_column_type(st, c)) {
          case SQLITE_NULL: break;
          case SQLITE_INTEGER: v = Value::Int(sqlite3_column_int64(st, c)); break;
          case SQLITE_FLOAT:
            v.type = Value::Type::kReal;
            v.text = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
            break;
          case SQLITE_BLOB: {
            v.type = Value::Type::kBlob;
            const char* p = static_cast<const char*>(sqlite3_column_blob(st, c));
            v.text.assign(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, c)));
            break;
          }
          default: {
            v.type = Value::Type::kText;
            const char* p = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
            v.text.assign(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, c)));
          }
        }
        row.push_back(std::move(v));
      }
      out.rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) {
      Status s = Error(rc, "");
      sqlite3_finalize(st);
      return s;
    }
    out.affected = sqlite3_changes64(db_);
    sqlite3_finalize(st);
    return out;
  }

  Status Exec(std::string_view sql) override {
    if (!db_) return Unavailable("connection is closed");
    StartDeadline();
    std::string s(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (err) sqlite3_free(err);
    if (rc != SQLITE_OK) return Error(rc, "");
    return Status::Ok();
  }

  Status Execute(const Statement& stmt) override {
    if (!stmt.guard_sql.empty()) {
      auto r = Query(stmt.guard_sql, {});
      if (!r.ok()) return r.status();
      if (!r->rows.empty()) return FailedPrecondition(stmt.guard_message);
    }
    if (!stmt.schema_edit) return Exec(stmt.sql);
    // A direct edit of sqlite_schema (documented procedure for changes that
    // leave the stored rows valid): bump the schema cookie so every
    // connection, this one included, reloads the schema.
    auto v = Query("PRAGMA schema_version", {});
    if (!v.ok()) return v.status();
    int64_t version = v->Scalar().AsInt();
    SLUICE_RETURN_IF_ERROR(Exec("PRAGMA writable_schema = ON"));
    Status s = Exec(stmt.sql);
    if (s.ok()) s = Exec("PRAGMA schema_version = " + std::to_string(version + 1));
    Status off = Exec("PRAGMA writable_schema = OFF");
    SLUICE_RETURN_IF_ERROR(s);
    return off;
  }

  Status Begin() override {
    SLUICE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    in_txn_ = true;
    return Status::Ok();
  }
  Status BeginSnapshot() override {
    // A deferred transaction's first read fixes its snapshot (WAL mode).
    SLUICE_RETURN_IF_ERROR(Exec("BEGIN DEFERRED"));
    in_txn_ = true;
    return Status::Ok();
  }
  Status Commit() override {
    Status s = Exec("COMMIT");
    if (s.ok() || !db_ || sqlite3_get_autocommit(db_)) in_txn_ = false;
    return s;
  }
  Status Rollback() override {
    in_txn_ = false;
    if (!db_ || sqlite3_get_autocommit(db_)) return Status::Ok();
    return Exec("ROLLBACK");
  }
  bool in_transaction() const override { return in_txn_; }

  Result<Schema> Introspect() override;

  // A new connection, then every AddSessionSetup statement in order (TEMP
  // views of a version, PRAGMAs, the statement timeout). If one fails the
  // connection is closed again: a session without its setup must not be
  // used by mistake.
  Status Reconnect() override {
    Close();
    SLUICE_RETURN_IF_ERROR(Open());
    for (const auto& sql : setup_) {
      Status s = Exec(sql);
      if (!s.ok()) {
        Close();
        return Status(s.code(), "reopened, but re-applying the session setup `" + sql.substr(0, 80) +
                                    "` failed: " + s.message(), s.detail());
      }
    }
    return Status::Ok();
  }

  Status AddSessionSetup(std::string sql) override {
    // A rollback would undo setup made inside a transaction, while a
    // reconnect would re-apply it: refuse the ambiguity.
    if (in_txn_) return Internal("AddSessionSetup called inside a transaction: `" + sql.substr(0, 80) + "`");
    SLUICE_RETURN_IF_ERROR(Exec(sql));
    setup_.push_back(std::move(sql));
    return Status::Ok();
  }

  // Why NORMAL is safe for the backfill in WAL mode: a commit is then
  // durable once the WAL is synced (at the next checkpoint) rather than
  // when COMMIT returns; a power loss may lose a tail of the last commits,
  // never part of one, and never corrupts the file. Each chunk writes its
  // rows, its checkpoint row and its history row in one transaction, so a
  // lost tail loses chunks together with their checkpoints: the next run
  // reads the older checkpoint and rewrites those rows again, the same
  // values from the same old columns (`up` is deterministic), never twice
  // on top of each other. In rollback-journal mode NORMAL may corrupt the
  // file on power loss, so FULL stays. (temp_store = MEMORY and a 16 MiB
  // page cache were tried too: they made a 200,000-row backfill about
  // 0.3 s slower, measured against the same binary without them.)
  Result<std::vector<std::string>> BackfillTuningSql(bool full_sync) override {
    std::vector<std::string> out;
    if (full_sync) return out;
    auto mode = Query("PRAGMA journal_mode", {});
    if (!mode.ok()) return mode.status();
    if (!mode->rows.empty() && mode->rows[0][0].text == "wal") out.push_back("PRAGMA synchronous = NORMAL");
    return out;
  }

  Result<LockAttempt> TryLock(const std::string& name) override {
    LockAttempt out;
    const std::string host = HostName();
    const int64_t pid = getpid();
    Status s = InTransaction(*this, [&]() -> Status {
      auto r = Query("SELECT holder, pid, host FROM \"_sluice_locks\" WHERE name = $1", {Value::Text(name)});
      if (!r.ok()) return r.status();
      if (!r->rows.empty()) {
        const Row& row = r->rows[0];
        int64_t other_pid = row[1].AsInt();
        bool same_host = row[2].text == host;
        bool dead = same_host && kill(static_cast<pid_t>(other_pid), 0) != 0 && errno == ESRCH;
        if (!dead && !(same_host && other_pid == pid)) {
          out.holder = row[0].text;
          return Status::Ok();
        }
      }
      std::string holder = "pid " + std::to_string(pid) + " on " + host + " since " + NowIso();
      auto w = Query(
          "INSERT INTO \"_sluice_locks\"(name, holder, pid, host, acquired_at) VALUES ($1, $2, $3, $4, $5) "
          "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host, "
          "acquired_at = excluded.acquired_at",
          {Value::Text(name), Value::Text(holder), Value::Int(pid), Value::Text(host), Value::Text(NowIso())});
      if (!w.ok()) return w.status();
      out.acquired = true;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (out.acquired) locks_.insert(name);
    return out;
  }

  Status Unlock(const std::string& name) override {
    locks_.erase(name);
    auto r = Query("DELETE FROM \"_sluice_locks\" WHERE name = $1 AND pid = $2 AND host = $3",
                   {Value::Text(name), Value::Int(getpid()), Value::Text(HostName())});
    return r.status();
  }

  std::string Describe() const override { return "sqlite:" + opts_.path; }

  Result<std::vector<ColumnUse>> ColumnsTouched(std::string_view sql) override {
    if (!db_) return Unavailable("the SQLite connection is closed");
    std::vector<ColumnUse> out;
    // Called while the statement compiles, once per column read or updated
    // and per table inserted into or deleted from; `inner` names the view
    // or trigger responsible (NULL: the statement itself).
    auto authorize = [](void* p, int action, const char* a, const char* b, const char*, const char* inner) -> int {
      auto* uses = static_cast<std::vector<ColumnUse>*>(p);
      std::string via = inner ? inner : "";
      if (action == SQLITE_READ && a && b) uses->push_back({a, b, "read", via});
      if (action == SQLITE_UPDATE && a && b) uses->push_back({a, b, "write", via});
      if ((action == SQLITE_INSERT || action == SQLITE_DELETE) && a) uses->push_back({a, "", "write", via});
      return SQLITE_OK;
    };
    sqlite3_set_authorizer(db_, authorize, &out);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    sqlite3_set_authorizer(db_, nullptr, nullptr);
    std::string err = rc == SQLITE_OK ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_OK) return InvalidArgument("the statement does not compile: " + err);
    return out;
  }

  void Cancel() override {
    MutexLock l(&cancel_mu_);
    if (interruptible_) sqlite3_interrupt(interruptible_);
  }

  // The online backup API: pages are copied in steps; a write by another
  // connection restarts the copy, so the result is one consistent snapshot.
  // `cancel` is read between steps of kBackupStepPages pages.
  Status CopyDatabaseTo(const std::string& path, const std::atomic<bool>* cancel = nullptr) override {
    struct stat sb;
    if (stat(path.c_str(), &sb) == 0) return AlreadyExists("'" + path + "' exists already; not overwriting it");
    sqlite3* dest = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = dest ? sqlite3_errmsg(dest) : sqlite3_errstr(rc);
      sqlite3_close_v2(dest);
      return Unavailable("cannot create the copy '" + path + "': " + msg);
    }
    sqlite3_backup* b = sqlite3_backup_init(dest, "main", db_, "main");
    if (!b) {
      std::string msg = sqlite3_errmsg(dest);
      sqlite3_close_v2(dest);
      return Unavailable("cannot copy into '" + path + "': " + msg);
    }
    bool cancelled = false;
    do {
      if (cancel && cancel->load()) {
        cancelled = true;
        break;
      }
      rc = sqlite3_backup_step(b, kBackupStepPages);
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(20);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    std::string msg = rc == SQLITE_DONE || cancelled ? "" : sqlite3_errmsg(dest);
    sqlite3_close_v2(dest);
    if (cancelled) return Cancelled("copying the database into '" + path + "' was cancelled");
    if (rc != SQLITE_DONE) return Unavailable("copying the database into '" + path + "' failed: " + msg);
    return Status::Ok();
  }

  Result<ScratchCopy> CreateScratchCopy(const ScratchCopyRequest& request) override {
    return SqliteScratchCopy(*this, request);
  }
  Status DropScratchCopy(const ScratchCopy& copy, bool keep) override { return DropSqliteScratchCopy(copy, keep); }

  Result<double> TimeCommit(int64_t rows, int64_t bytes_per_row) override {
    if (rows <= 0 || opts_.path.empty() || opts_.path == ":memory:") return 0.0;
    // The scratch database copies the settings that decide what a commit
    // costs: the journal mode (WAL: append + checkpoint) and synchronous.
    auto journal = Query("PRAGMA journal_mode", {});
    auto sync = Query("PRAGMA synchronous", {});
    if (!journal.ok()) return journal.status();
    if (!sync.ok()) return sync.status();
    const std::string mode = journal->rows.empty() ? "delete" : journal->rows[0][0].text;
    const int64_t sync_level = sync->rows.empty() ? 2 : sync->rows[0][0].AsInt();
    if (mode == "memory" || mode == "off") return 0.0;
    const std::string path = opts_.path + ".sluice-estimate-" + std::to_string(getpid());
    struct stat sb;
    if (stat(path.c_str(), &sb) == 0) return AlreadyExists("'" + path + "' exists already; not overwriting it");
    sqlite3* scratch = nullptr;
    auto drop = [&] {
      sqlite3_close_v2(scratch);
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) unlink((path + suffix).c_str());
    };
    int rc = sqlite3_open_v2(path.c_str(), &scratch, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    auto exec = [&](const std::string& sql) {
      return sqlite3_exec(scratch, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
    };
    const std::string fill = "BEGIN; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < " +
                             std::to_string(rows) + ") INSERT INTO t SELECT randomblob(" +
                             std::to_string(std::max<int64_t>(1, bytes_per_row)) + ") FROM s";
    // Three commits, the median: the first also creates the file's pages.
    std::vector<double> took;
    bool ok = rc == SQLITE_OK && exec("PRAGMA journal_mode = " + mode + "; PRAGMA synchronous = " +
                                      std::to_string(sync_level) + "; CREATE TABLE t (b BLOB)");
    for (int round = 0; ok && round < 3; ++round) {
      ok = exec(fill);
      const auto t0 = std::chrono::steady_clock::now();
      ok = ok && exec("COMMIT");
      took.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      ok = ok && exec("DELETE FROM t");
    }
    std::string msg = ok ? "" : (scratch ? sqlite3_errmsg(scratch) : sqlite3_errstr(rc));
    drop();
    if (!ok) return Unavailable("timing a commit on the scratch database '" + path + "' failed: " + msg);
    std::sort(took.begin(), took.end());
    return took[1];
  }

 private:
  void Close() {
    {
      MutexLock l(&cancel_mu_);
      interruptible_ = nullptr;
    }
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
    in_txn_ = false;
  }

  // Maps a SQLite failure to a Status (sqlite_errors.cc has the table);
  // detail() is the extended code's name.
  Status Error(int rc, std::string_view context) {
    int ext = db_ ? sqlite3_extended_errcode(db_) : rc;
    if ((ext & 0xff) != (rc & 0xff)) ext = rc;  // errcode from an earlier call
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    std::string full = context.empty() ? msg : std::string(context) + ": " + msg;
    bool timed_out = (rc & 0xff) == SQLITE_INTERRUPT && deadline_passed_;
    StatusCode code = SqliteErrorCode(ext, msg, timed_out);
    if (timed_out) {
      full = "statement timed out (it ran longer than the session's statement timeout of " +
             std::to_string(statement_timeout_ms_) + " ms): " + full;
    } else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      full += " (another connection held the lock longer than sluice waits for it, " +
              std::to_string(opts_.busy_timeout_ms) + " ms; retry once its transaction has ended)";
    }
    return Status(code, full, SqliteCodeName(ext));
  }

  // SQLite has no statement timeout: sluice_statement_timeout(ms) arms a
  // progress handler that interrupts a statement (SQLITE_INTERRUPT) once it
  // has run `ms` since Query/Exec started it. Waiting for a lock is not
  // running: busy_timeout bounds that.
  static void SetStatementTimeout(sqlite3_context* ctx, int, sqlite3_value** argv) {
    auto* self = static_cast<SqliteConnection*>(sqlite3_user_data(ctx));
    int64_t ms = sqlite3_value_int64(argv[0]);
    self->statement_timeout_ms_ = ms > 0 ? ms : 0;
    sqlite3_progress_handler(self->db_, ms > 0 ? 1000 : 0, ms > 0 ? Progress : nullptr, self);
    sqlite3_result_int64(ctx, self->statement_timeout_ms_);
  }
  static int Progress(void* arg) {
    auto* self = static_cast<SqliteConnection*>(arg);
    if (self->statement_timeout_ms_ <= 0 || std::chrono::steady_clock::now() < self->deadline_) return 0;
    self->deadline_passed_ = true;
    return 1;
  }
  void StartDeadline() {
    deadline_passed_ = false;
    if (statement_timeout_ms_ > 0) {
      deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(statement_timeout_ms_);
    }
  }

  const SqliteDialect& dialect_;
  SqliteOptions opts_;
  sqlite3* db_ = nullptr;
  // db_ for Cancel() on other threads; cleared before db_ is closed.
  Mutex cancel_mu_;
  sqlite3* interruptible_ GUARDED_BY(cancel_mu_) = nullptr;
  bool in_txn_ = false;
  std::set<std::string> locks_;
  std::vector<std::string> setup_;  // AddSessionSetup, re-applied by Reconnect
  int64_t statement_timeout_ms_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  bool deadline_passed_ = false;
};

// --- introspection ------------------------------------------------------------

struct ParsedCheck {
  std::string name;
  std::string column;  // empty for table-level checks
  std::string expr;
};

// A trigger's timing, events and UPDATE OF columns from its CREATE TRIGGER
// text (as sqlite_schema keeps it): CREATE [TEMP] TRIGGER [IF NOT EXISTS]
// name [BEFORE | AFTER | INSTEAD OF] {DELETE | INSERT | UPDATE [OF c, ...]}
// ON table ... SQLite's default timing is BEFORE.
TriggerInfo ParseTrigger(const std::string& name, const std::string& sql) {
  TriggerInfo t;
  t.name = name;
  t.definition = sql;
  t.timing = "BEFORE";
  auto toks = sqlite::Significant(sql);
  auto word = [&](size_t i) { return i < toks.size() ? sql::Lower(toks[i].text) : std::string(); };
  size_t i = 0;
  while (i < toks.size() && word(i) != "trigger") ++i;
  // Skip the name ([schema.]name, perhaps after IF NOT EXISTS).
  for (++i; i < toks.size(); ++i) {
    std::string w = word(i);
    if (w == "before" || w == "after" || w == "instead" || w == "delete" || w == "insert" || w == "update") {
      if (toks[i].kind == sqlite::TokenKind::kKeyword) break;
    }
  }
  if (word(i) == "before" || word(i) == "after") {
    t.timing = word(i) == "before" ? "BEFORE" : "AFTER";
    ++i;
  } else if (word(i) == "instead") {
    t.timing = "INSTEAD OF";
    i += 2;
  }
  std::string event = word(i);
  if (event == "delete") t.events.insert("DELETE");
  if (event == "insert") t.events.insert("INSERT");
  if (event == "update") {
    t.events.insert("UPDATE");
    if (word(i + 1) == "of") {
      for (i += 2; i < toks.size(); ++i) {
        if (toks[i].kind == sqlite::TokenKind::kId || toks[i].kind == sqlite::TokenKind::kQuotedId ||
            toks[i].kind == sqlite::TokenKind::kKeyword) {
          if (word(i) == "on" && toks[i].kind == sqlite::TokenKind::kKeyword) break;
          t.update_columns.push_back(toks[i].value);
        } else if (toks[i].text != ",") {
          break;
        }
      }
    }
  }
  return t;
}

// Reads CHECK constraints out of a CREATE TABLE statement: SQLite keeps them
// nowhere else. Column-level checks remember their column. The tokens are
// SQLite's (sqlite_lexer.h), so a "check" inside a string, a quoted name or
// a comment is not a constraint.
std::vector<ParsedCheck> ParseChecks(const std::string& table, const std::string& create_sql) {
  using sqlite::TokenKind;
  std::vector<ParsedCheck> out;
  const std::vector<sqlite::Token> toks = sqlite::Significant(create_sql);
  auto is_op = [&](size_t k, std::string_view op) {
    return k < toks.size() && toks[k].kind == TokenKind::kOperator && toks[k].text == op;
  };
  auto is_word = [&](size_t k, std::string_view w) {
    return k < toks.size() && toks[k].kind == TokenKind::kKeyword && sql::Lower(toks[k].text) == w;
  };
  size_t i = 0;
  while (i < toks.size() && !is_op(i, "(")) ++i;
  if (i == toks.size()) return out;
  ++i;
  // Column definitions and table constraints: [begin, end) token ranges
  // between top-level commas.
  std::vector<std::pair<size_t, size_t>> segments;
  int depth = 0;
  size_t begin = i;
  for (; i < toks.size(); ++i) {
    if (is_op(i, "(")) depth++;
    if (is_op(i, ")") && depth-- == 0) break;
    if (depth == 0 && is_op(i, ",")) {
      segments.push_back({begin, i});
      begin = i + 1;
    }
  }
  segments.push_back({begin, i});
  int unnamed = 0;
  for (const auto& [b, e] : segments) {
    if (b >= e) continue;
    bool table_level = is_word(b, "constraint") || is_word(b, "primary") || is_word(b, "unique") ||
                       is_word(b, "check") || is_word(b, "foreign");
    std::string column = table_level ? "" : toks[b].value;
    for (size_t k = b; k < e; ++k) {
      if (!is_word(k, "check") || !is_op(k + 1, "(")) continue;
      std::string name;
      if (k >= b + 2 && is_word(k - 2, "constraint")) name = toks[k - 1].value;
      int d = 0;
      size_t j = k + 1;
      for (; j < e; ++j) {
        if (is_op(j, "(")) d++;
        if (is_op(j, ")") && --d == 0) break;
      }
      if (j >= e) continue;
      size_t from = toks[k + 1].pos + 1;
      size_t to = toks[j].pos;
      if (name.empty()) {
        name = table + "_" + (column.empty() ? "check" : column + "_check") + (unnamed ? std::to_string(unnamed) : "");
        unnamed++;
      }
      out.push_back({name, column, std::string(sql::Trim(create_sql.substr(from, to - from)))});
    }
  }
  return out;
}

Result<Schema> SqliteConnection::Introspect() {
  Schema schema;
  schema.name = "main";
  auto tables = Query(
      "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND "
      "name NOT LIKE '\\_sluice\\_%' ESCAPE '\\' ORDER BY name",
      {});
  if (!tables.ok()) return tables.status();
  auto views = Query("SELECT name, sql FROM sqlite_schema WHERE type = 'view' AND instr(name, '@') = 0", {});
  if (!views.ok()) return views.status();
  // The names each view's SQL spells (lower case), to report which columns
  // it may read: SQLite's DROP COLUMN fails on a view naming the column, so
  // complete's would. Textual, hence conservative (a name in an alias counts).
  std::vector<std::pair<std::string, std::set<std::string>>> view_names;
  for (const auto& r : views->rows) {
    schema.views.push_back(r[0].text);
    std::set<std::string> names;
    for (const auto& tok : sqlite::Significant(r[1].text)) {
      if (tok.kind == sqlite::TokenKind::kId || tok.kind == sqlite::TokenKind::kQuotedId ||
          tok.kind == sqlite::TokenKind::kKeyword) {
        names.insert(sql::Lower(tok.value));
      }
    }
    view_names.push_back({r[0].text, std::move(names)});
  }
  for (const auto& row : tables->rows) {
    TableInfo t;
    t.name = row[0].text;
    const std::string create_sql = row[1].text;
    auto cols = Query("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo($1) ORDER BY cid",
                      {Value::Text(t.name)});
    if (!cols.ok()) return cols.status();
    std::vector<std::pair<int64_t, std::string>> pk;
    for (const auto& c : cols->rows) {
      ColumnInfo ci;
      ci.name = c[0].text;
      ci.type = c[1].text;
      ci.not_null = c[2].AsInt() != 0;
      if (!c[3].is_null()) ci.default_expr = c[3].text;
      ci.generated = c[5].AsInt() == 2 || c[5].AsInt() == 3;
      if (c[4].AsInt() > 0) pk.push_back({c[4].AsInt(), ci.name});
      t.columns.push_back(std::move(ci));
    }
    std::sort(pk.begin(), pk.end());
    for (const auto& p : pk) t.primary_key.push_back(p.second);
    for (const auto& [view, names] : view_names) {
      if (!names.count(sql::Lower(t.name))) continue;
      for (const auto& c : t.columns) {
        if (!names.count(sql::Lower(c.name))) continue;
        DependentInfo dep;
        dep.kind = DependentInfo::Kind::kView;
        dep.column = c.name;
        dep.description = "view " + view;
        dep.relation = "main." + view;
        dep.relation_schema = "main";
        dep.relation_name = view;
        t.dependents.push_back(std::move(dep));
      }
    }
    // INTEGER PRIMARY KEY columns are rowid aliases and never NULL.
    for (auto& c : t.columns) {
      if (std::find(t.primary_key.begin(), t.primary_key.end(), c.name) != t.primary_key.end()) c.not_null = true;
    }
    auto idxs = Query(
        "SELECT il.name, il.\"unique\", il.origin, il.partial, s.sql FROM pragma_index_list($1) il LEFT JOIN "
        "sqlite_schema s ON s.type = 'index' AND s.name = il.name ORDER BY il.name",
        {Value::Text(t.name)});
    if (!idxs.ok()) return idxs.status();
    for (const auto& ir : idxs->rows) {
      IndexInfo ii;
      ii.name = ir[0].text;
      ii.table = t.name;
      ii.unique = ir[1].AsInt() != 0;
      ii.primary = ir[2].text == "pk";
      ii.partial = ir[3].AsInt() != 0;
      if (ir[2].text == "u") ii.constraint = ii.name;  // UNIQUE in CREATE TABLE: an autoindex
      if (!ir[4].is_null()) ii.definition = ir[4].text;
      auto ic = Query("SELECT name FROM pragma_index_info($1) ORDER BY seqno", {Value::Text(ii.name)});
      if (!ic.ok()) return ic.status();
      for (const auto& c : ic->rows) ii.columns.push_back(c[0].is_null() ? "" : c[0].text);
      if (ii.constraint == ii.name) {
        ConstraintInfo ci;
        ci.name = ii.name;
        ci.type = ConstraintInfo::Type::kUnique;
        ci.columns = ii.columns;
        t.constraints.push_back(ci);
      }
      t.indexes.push_back(std::move(ii));
    }
    auto fks = Query(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list($1) ORDER BY id, "
        "seq",
        {Value::Text(t.name)});
    if (!fks.ok()) return fks.status();
    std::map<int64_t, ForeignKeySpec> by_id;
    for (const auto& f : fks->rows) {
      auto& fk = by_id[f[0].AsInt()];
      fk.ref_table = f[1].text;
      fk.columns.push_back(f[2].text);
      if (!f[3].is_null()) fk.ref_columns.push_back(f[3].text);
      fk.on_update = f[4].text;
      fk.on_delete = f[5].text;
    }
    for (auto& [id, fk] : by_id) {
      ConstraintInfo ci;
      ci.name = t.name + "_" + fk.columns[0] + "_fkey" + (id ? std::to_string(id) : "");
      fk.name = ci.name;
      ci.type = ConstraintInfo::Type::kForeignKey;
      ci.columns = fk.columns;
      ci.fk = fk;
      t.constraints.push_back(ci);
    }
    for (const auto& chk : ParseChecks(t.name, create_sql)) {
      ConstraintInfo ci;
      ci.name = chk.name;
      ci.type = ConstraintInfo::Type::kCheck;
      ci.check_expr = chk.expr;
      ci.definition = "CHECK (" + chk.expr + ")";
      ci.declared_on = chk.column;
      // Every column it reads (a column's own CHECK may read others too),
      // its own column first.
      if (!chk.column.empty()) ci.columns = {chk.column};
      auto reads = dialect_.ColumnsRead(chk.expr);
      if (!reads.ok()) {
        return Status(reads.status().code(),
                      "table " + t.name + ", CHECK constraint " + chk.name + ": " + reads.status().message());
      }
      for (const auto& c : t.columns) {
        if (c.name != chk.column && reads->count(dialect_.ColumnKey(c.name))) ci.columns.push_back(c.name);
      }
      t.constraints.push_back(ci);
    }
    auto trg = Query(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = $1 AND name NOT LIKE "
        "'\\_sluice\\_%' ESCAPE '\\' ORDER BY name",
        {Value::Text(t.name)});
    if (!trg.ok()) return trg.status();
    for (const auto& r : trg->rows) t.triggers.push_back(ParseTrigger(r[0].text, r[1].text));
    schema.tables[t.name] = std::move(t);
  }
  return schema;
}

class SqliteAdapter : public Adapter {
 public:
  explicit SqliteAdapter(SqliteOptions o) : opts_(std::move(o)) {}
  const Dialect& dialect() const override { return dialect_; }
  Result<std::unique_ptr<Connection>> Connect() override {
    auto c = std::make_unique<SqliteConnection>(dialect_, opts_);
    SLUICE_RETURN_IF_ERROR(c->Open());
    return std::unique_ptr<Connection>(std::move(c));
  }
  std::string Describe() const override { return "sqlite:" + opts_.path; }

 private:
  SqliteOptions opts_;
  SqliteDialect dialect_;
};

}  // namespace

std::unique_ptr<Adapter> MakeSqliteAdapter(SqliteOptions options) {
  return std::make_unique<SqliteAdapter>(std::move(options));
}

}  // namespace sluice::db
