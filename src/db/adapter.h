// The adapter interface: the only way the engine, backfill and verify reach a
// database. SQLite and PostgreSQL implement it (src/db/sqlite, src/db/postgres)
// and only src/db/open.cc knows they exist.
//
//   Dialect     pure SQL rendering and capability questions; no I/O, so the
//               dry run (`sluice plan`) and unit tests use it without a server.
//   Connection  one session: queries, transactions, introspection, locks.
//   Adapter     a factory bound to one database URL.
//
// Errors: nothing throws. Every fallible method returns a Status whose code
// says what to do next (see include/sluice/status.h): kUnavailable when the
// connection was lost (reconnect and retry), kAborted for serialization
// failures, deadlocks, lock and statement timeouts (retry the transaction),
// kResourceExhausted when the server is out of disk, memory or connections
// (back off, retry), kInDoubt when a COMMIT's outcome is unknown (re-read
// state before retrying), kPermissionDenied (grant), kNotFound /
// kAlreadyExists / kInvalidArgument for wrong SQL, kFailedPrecondition when
// the data or database refuses. detail() carries "SQLSTATE XXXXX" or the
// SQLite extended code's name ("SQLITE_FULL (13)"). The full tables:
// postgres/postgres_errors.cc, sqlite/sqlite_errors.cc.
//
// Test seams: fault_injection.h wraps an adapter to inject failures, and
// TEST_SetAdapterWrapper (below) puts such a wrapper under the engine.
//
// Thread-safety: a Connection is used by one thread at a time. Adapters and
// Dialects are immutable and may be shared.
//
// Capabilities are added by appending virtual methods with a default, so an
// out-of-tree adapter keeps compiling.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "db/change.h"
#include "db/schema.h"
#include "db/value.h"
#include "sluice/status.h"

namespace sluice::db {

// What a piece of user SQL handed to Dialect::RenameColumns is.
enum class SqlKind {
  kExpression,       // a scalar expression: a CHECK, an `up`/`down`, a predicate
  kIndexDefinition,  // CREATE [UNIQUE] INDEX ..., as the database prints it
};

// A column a state table gained after its first release: the table's base
// name ("chunks"), the column and its type in the dialect's words.
struct StateColumn {
  std::string table, column, type;
};

// The strongest lock one statement takes and on what (Dialect::LockOf):
// mode "ACCESS EXCLUSIVE (briefly: catalog only)", on "table public.orders".
struct LockInfo {
  std::string mode;
  std::string on;
};

class Dialect {
 public:
  virtual ~Dialect() = default;

  // "sqlite" or "postgres".
  virtual std::string_view name() const = 0;
  // The product's name as users know it, for messages ("SQLite").
  virtual std::string_view display_name() const = 0;

  // True when DDL is transactional, so a whole phase can be one transaction.
  virtual bool transactional_ddl() const = 0;
  // True when each version has its own namespace the application can pick
  // (PostgreSQL schemas); false when versions are reached some other way.
  virtual bool versioned_namespaces() const = 0;
  // True when several backfill workers may write the same table at once.
  virtual bool parallel_backfill() const = 0;
  // Default target duration of one backfill chunk: how long a chunk may hold
  // what it locks (rows on PostgreSQL, the whole database on SQLite).
  virtual int64_t default_chunk_target_ms() const { return 250; }
  // A query returning one integer: how many backfill workers to run when
  // neither the command line nor the plan says. "" = one.
  virtual std::string DefaultBackfillWorkersSql() const { return {}; }
  // True when complete may drop and recreate, in its transaction, the
  // views that read a column it replaces by its copy
  // (SaveDependentViewsStep). False: such views are refused before start.
  virtual bool recreates_dependent_views() const { return false; }
  // False when the database refuses to drop a column that a CHECK declared
  // elsewhere (on the table, or on another column) names (SQLite).
  virtual bool drops_columns_named_by_checks() const { return true; }
  // False when a column declared UNIQUE in its CREATE TABLE statement cannot
  // be dropped (SQLite), so it cannot be replaced by a new copy.
  virtual bool drops_inline_unique_columns() const { return true; }
  // True when a column's DEFAULT can be set after it was added (ALTER COLUMN
  // SET DEFAULT), so a copy can be added without one and get it for new
  // rows only. False: the copy keeps its inline default (SQLite).
  virtual bool sets_defaults_after_add() const { return true; }
  // The name a constraint carried over to a column's copy takes while both
  // exist: a fresh name where constraint names share one namespace per
  // schema or table (PostgreSQL), the same name where the copy's
  // constraint lives only in the rebuilt table's definition (SQLite).
  virtual std::string CopiedConstraintName(std::string_view name) const { return NewColumnName(name); }
  // How to give `table`, which has no usable key, one: a statement to show
  // in the refusal.
  virtual std::string AddKeyHint(std::string_view table) const = 0;

  // Refuses a step this database cannot express, with the reason
  // (kFailedPrecondition). The engine adds the operation and location.
  virtual Status CheckSupported(const Step& step) const = 0;

  // The exact statements that perform `step`, in order.
  virtual std::vector<Statement> Render(const Step& step) const = 0;

  // Identifier quoting; a table reference in the migrated schema.
  virtual std::string Quote(std::string_view ident) const;
  virtual std::string Table(std::string_view table) const = 0;

  // Physical name for the new copy of column `logical`.
  virtual std::string NewColumnName(std::string_view logical) const;

  // `a` equals `b`, treating two NULLs as equal.
  virtual std::string NullSafeEqual(std::string_view a, std::string_view b) const = 0;

  // True when `expr` may return a different value each time it runs
  // (random(), now(), ...). Such `up` results cannot be verified exactly.
  virtual bool IsVolatile(std::string_view expr) const = 0;

  // sluice's state tables: a reference to one of them ("migrations",
  // "events", ...), and the statements that create them if missing.
  virtual std::string StateTable(std::string_view base) const = 0;
  virtual std::vector<std::string> StateSchema() const = 0;
  // Columns a state table gained after its first release (also in its
  // StateSchema() DDL): StateStore::Ensure adds those a table created by an
  // older sluice lacks, after reading its columns with StateColumnsSql
  // (a query whose first column is each column's name).
  virtual std::vector<StateColumn> AddedStateColumns() const { return {}; }
  virtual std::string StateColumnsSql(std::string_view /*base*/) const { return {}; }
  // Runs inside a transaction before StateSchema(): serialises processes
  // that create the state tables at once ("" where the write transaction
  // already does).
  virtual std::string StateSetupLockSql() const { return {}; }

  // An expression for the database server's current time in milliseconds
  // since the Unix epoch (backfill heartbeats are stamped and judged by one
  // clock, whatever machine runs sluice). "" when the database has no clock
  // of its own: sluice then uses the local one.
  virtual std::string EpochMillisSql() const { return {}; }

  // A session statement letting sluice itself read a version that is not
  // ready yet (the backfill gate counts rows through it before lifting the
  // guard); `on` = false undoes it. "" when versions are not guarded by SQL.
  virtual std::string ReadUnreadySql(bool /*on*/) const { return {}; }

  // Statements a backfill session runs once after connecting, so that the
  // dual-write triggers skip rows the backfill rewrites itself.
  virtual std::vector<std::string> BackfillSessionSetup() const { return {}; }

  // --- the context of `up`/`down` and the table's own triggers ---------
  // Statements that make the current transaction resolve the names in
  // `up` and `down` exactly as the dual-write of `version` does
  // (PostgreSQL: SET LOCAL search_path to the path pinned in its
  // functions). The backfill and the pre-flight trial run them. Empty
  // where names do not depend on the session.
  virtual std::vector<std::string> ExpressionContextSql(const VersionSpec& version) const { return {}; }
  // dual_write: {on_error: record}: an expression the backfill's UPDATE of
  // `m.physical` assigns to `f.target` instead of `f.expr` when the plain
  // chunk fails on a row: it evaluates `f.expr` for the row, and on an
  // error (or a NULL for a guarded column) records the row in the
  // dual_write_failures state table and yields `f.fallback`. Its helper
  // objects are created with the dual-write (CreateDualWriteStep). "" where
  // the database cannot catch errors (the backfill then stops on the row).
  virtual std::string RecordingBackfillValue(const std::string& /*migration*/, const TableMapping& /*m*/,
                                             const Forward& /*f*/) const {
    return {};
  }
  // A statement that keeps the table's own triggers (and foreign-key
  // checks) from firing for the rest of the current transaction
  // (PostgreSQL: SET LOCAL session_replication_role = replica, which needs
  // superuser or SET on that parameter; triggers ENABLE ALWAYS or ENABLE
  // REPLICA still fire). "" where the database cannot.
  virtual std::string SuppressUserTriggersSql() const { return {}; }
  // A statement that makes the rest of the current (read-write)
  // transaction read-only (PostgreSQL: SET LOCAL transaction_read_only =
  // on); "" where there is none. The pre-flight trial runs the plan's `sql`
  // operations first, then this, so `nextval` in `up` cannot advance.
  virtual std::string ReadOnlyFromHereSql() const { return {}; }
  // True when the dual-write rewrites the row with a statement of its own
  // (SQLite's AFTER triggers run an UPDATE), so the table's UPDATE
  // triggers fire again for writes through the old version.
  virtual bool dual_write_updates_rows() const { return false; }
  // The dual-write trigger of `migration` for `event` ("INSERT" or
  // "UPDATE"), as the catalog spells it, where the database fires a
  // table's BEFORE row triggers of one event in name order and sluice's
  // must fire last (PostgreSQL, byte order). "" elsewhere.
  virtual std::string DualWriteTriggerName(const std::string& migration, const std::string& event) const {
    return {};
  }
  // A query returning the `key` columns of up to `n` rows spread over
  // `table` (as Table() names it) without reading the whole table, for the
  // pre-flight trial of `up`/`down`; "" where there is no such sampling.
  virtual std::string SampleKeysSql(std::string_view table, const std::vector<std::string>& key, int n) const {
    return {};
  }

  // Relations through which the old and the new version read `table`.
  virtual std::string OldReadPath(const VersionSpec& version, const TableMapping& table) const = 0;
  virtual std::string NewReadPath(const VersionSpec& version, const TableMapping& table) const = 0;

  // Appended to a SELECT that reads a row the transaction will update
  // (" FOR UPDATE" where row locks exist).
  virtual std::string LockRowsClause() const { return ""; }
  // The same for rows the transaction only needs kept as they are
  // (" FOR SHARE"): other readers go on, writers wait.
  virtual std::string SharedLockRowsClause() const { return ""; }

  // How an application session selects `version` (for docs and `status`).
  virtual std::string VersionSelectHint(const std::string& version) const = 0;
  // SQL a session runs to use `version` when versions are namespaces
  // ("" = the base schema, "live" = the live alias). Empty otherwise.
  virtual std::string SessionSetupSql(const std::string& version) const { return {}; }
  // Statements that make `lock_timeout_ms` the lock wait limit of the
  // current transaction (empty where the database has none).
  virtual std::string LockTimeoutSql(int64_t lock_timeout_ms) const { return {}; }
  // A session statement that bounds how long any one statement of this
  // session may run (0 = no limit); "" where the database has none. Apply
  // it with Connection::AddSessionSetup so it survives reconnects. A
  // statement that runs longer fails with kAborted, a message starting
  // "statement timed out" and detail "SQLSTATE 57014" (PostgreSQL's
  // statement_timeout) or "SQLITE_INTERRUPT (9)" (SQLite: sluice's own
  // sluice_statement_timeout(), which bounds execution; lock waits are
  // bounded by the busy timeout instead). A cancel from outside (e.g.
  // pg_cancel_backend) is kCancelled, not this.
  virtual std::string StatementTimeoutSql(int64_t statement_timeout_ms) const { return {}; }

  // Backfill throttle signals. Each returns a query yielding one number, or
  // "" where the database has no such notion (SQLite: no lock queue, no
  // replicas). LockWaitersSql: sessions waiting for a lock on `table`.
  // ReplicaLagSql: the worst replay lag in seconds of the replicas attached
  // to this primary. ReplicaOwnLagSql: run on a replica, its own lag.
  virtual std::string LockWaitersSql(std::string_view table) const { return {}; }
  virtual std::string ReplicaLagSql() const { return {}; }
  virtual std::string ReplicaOwnLagSql() const { return {}; }
  // Application activity (a capability of the backfill throttle): a query
  // yielding the number of sessions other than sluice's own that are at
  // work now or were within the last second, or "" where the database
  // cannot tell (SQLite). With it the throttle tells the application's
  // suffering from the backfill's own cost (backfill/throttle.h).
  virtual std::string ApplicationActivitySql() const { return {}; }

  // A deterministic 64-bit hash expression over the given SQL expressions
  // (verification). Empty when the dialect cannot hash in the database.
  virtual std::string RowHash(const std::vector<std::string>& exprs) const { return {}; }
  // Reading a table by physical position (verification's checksum pieces:
  // the cost of a sequential scan instead of a walk of the key's index).
  // TableBlocksSql: a query of one integer, the size in blocks of the table
  // whose Table() name is bound as $1. BlockRange: a FROM target holding
  // exactly the rows of `table` stored in blocks [first, end) (none = to
  // the end), in the transaction's snapshot. Empty where unsupported.
  virtual std::string TableBlocksSql() const { return {}; }
  virtual std::string BlockRange(std::string_view table, int64_t first, std::optional<int64_t> end) const {
    return {};
  }

  // The SQL that undoes `sql`, a plan's `sql` operation written without
  // `down`, derived from the database's own parse of it when every
  // statement only creates one named object (its inverse is the DROP of
  // that object, statements undone in reverse order). kFailedPrecondition
  // with the reason when no inverse can be derived; the default derives
  // none.
  virtual Result<std::string> InverseOfRawSql(std::string_view sql) const {
    return FailedPrecondition("this database cannot derive the inverse of SQL");
  }

  // Verification across databases (`sluice diff`). CanonicalText renders a
  // value of a column declared `type` as text that is the same in every
  // dialect for the same value (integers in decimal, integral floats and
  // numerics without fraction, other floats in shortest round-trip form,
  // booleans as 1/0, binary as lower-case hex, text unchanged; NULL stays
  // NULL). PortableRowHash is a 64-bit hash over such texts computed with
  // the same algorithm (the first 8 bytes of MD5 over "<len>:<text>" fields,
  // "~" for NULL, joined by '|') in every dialect. Empty when unsupported.
  virtual std::string CanonicalText(std::string_view expr, std::string_view type) const { return {}; }
  virtual std::string PortableRowHash(const std::vector<std::string>& canonical_texts) const { return {}; }
  // `expr` converted the way storing it in a column of `type` converts it
  // (for comparing a recomputed `up` with the stored value).
  virtual std::string AsColumnValue(std::string_view expr, std::string_view type) const { return std::string(expr); }
  // `expr` (a key column of `type`) in bytewise order, so that key ranges
  // mean the same rows in every dialect.
  virtual std::string BinaryOrder(std::string_view expr, std::string_view type) const { return std::string(expr); }

  // --- user SQL, read and rewritten through the database's own grammar ---
  // (PostgreSQL: its parser, libpg_query; SQLite: a tokenizer that follows
  // SQLite's, with its parser as the judge of syntax). Never through text
  // search: strings, comments, function and type names, keywords and
  // qualifiers are not column references.
  //
  // ColumnsRead: the columns `expr` may read, each as ColumnKey() gives it
  // (unqualified `c`; `t.c`, `NEW.c`, `OLD.c` read `c`; `(c).field` reads
  // `c`; `t.*` reads every column, reported as "*"). Columns of tables a
  // subquery reads are included too, so the set is a superset: callers
  // intersect it with the table's columns. kInvalidPlan, naming the text
  // and the parser's complaint, when `expr` is not one well-formed
  // expression. The default (no parser) refuses with kFailedPrecondition.
  virtual Result<std::set<std::string>> ColumnsRead(std::string_view expr) const {
    return FailedPrecondition("this database adapter cannot parse SQL expressions");
  }
  // A catalog column name in the form ColumnsRead reports it (PostgreSQL:
  // unchanged, names are case-sensitive once folded; SQLite: ASCII lower
  // case, names compare case-insensitively).
  virtual std::string ColumnKey(std::string_view column) const { return std::string(column); }
  // `sql` with every reference to a column in `renames` (catalog names,
  // matched as the database matches names) pointing at its new name, all
  // at once (so a -> b, b -> a swaps). Every other byte of `sql` is kept;
  // new names are quoted only where the database needs it. For
  // kIndexDefinition the index's and the table's own names are left alone
  // (see RenameIndex). kInvalidPlan naming the text when it does not parse
  // as `kind`, or when it holds a subquery (a CHECK or an index cannot, and
  // a name inside one may belong to another table). Nothing is changed on
  // error. The default refuses with kFailedPrecondition.
  virtual Result<std::string> RenameColumns(std::string_view sql, SqlKind kind,
                                            const std::map<std::string, std::string>& renames) const {
    return FailedPrecondition("this database adapter cannot rewrite SQL");
  }
  Result<std::string> RenameColumn(std::string_view sql, SqlKind kind, std::string_view from,
                                   std::string_view to) const {
    return RenameColumns(sql, kind, {{std::string(from), std::string(to)}});
  }
  // `definition` (CREATE [UNIQUE] INDEX, as the database prints it) with the
  // index's own name `from` replaced by `to`; nothing else changes.
  // kInvalidPlan when it does not parse or does not create index `from`.
  virtual Result<std::string> RenameIndex(std::string_view definition, std::string_view from,
                                          std::string_view to) const {
    return FailedPrecondition("this database adapter cannot rewrite SQL");
  }

  // --- locks and sizes (`sluice estimate`, the runbook) ---
  // The strongest lock `st` takes and on what; `st` is one of Render(step)'s
  // statements (or one recorded at start, `step` then being the
  // RecordedSqlStep). A pure function: no I/O. Default: "unknown".
  virtual LockInfo LockOf(const Step& /*step*/, const Statement& /*st*/) const { return {"unknown", ""}; }
  // One query returning one integer: the catalog's row estimate of `table`
  // ("" or a negative result: count the rows).
  virtual std::string EstimatedRowsSql(std::string_view /*table*/) const { return {}; }
  // One query returning the bytes `table` takes with its indexes ("" =
  // unknown).
  virtual std::string TableBytesSql(std::string_view /*table*/) const { return {}; }
};

// Result of trying to take a named lock that serialises sluice processes.
struct LockAttempt {
  bool acquired = false;
  std::string holder;  // who holds it when not acquired (pid, host, since)
};

// One column (or, for an INSERT or DELETE, a whole table: column "") a
// statement reads or writes, as the database's own compiler resolved it.
struct ColumnUse {
  std::string table, column;
  std::string kind;  // read | write
  std::string via;   // the innermost view or trigger it went through ("" = the statement itself)
};

// What `sluice rehearse` asks the database for: a scratch copy on which
// the whole lifecycle runs (Connection::CreateScratchCopy).
struct ScratchCopyRequest {
  std::string label;                // the migration's name, part of the copy's name
  std::vector<std::string> tables;  // the tables the plan touches (unqualified)
  double sample = 0;                // in (0, 1): copy about this fraction of `tables`; else all rows
  // Set (from a signal handler, or any thread) to stop the copy. Copying a
  // large database takes minutes, and an operator's SIGTERM/SIGINT must not
  // wait for it: the copy polls this flag between tables or pages and
  // cancels the statement or tool running when it is set. Not owned; null
  // = never cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// The message of CreateScratchCopy's kCancelled, the same on every adapter.
inline constexpr const char* kScratchCopyCancelled = "the rehearsal was interrupted during the copy";

// One table copied into a scratch copy.
struct CopiedTable {
  std::string table;  // as the database names it (qualified where it has schemas)
  int64_t rows = 0;
  bool sampled = false;
};

// A scratch copy made by CreateScratchCopy; DropScratchCopy removes it.
struct ScratchCopy {
  std::string url;           // for OpenAdapter (may carry the source's credentials)
  std::string display_url;   // the same without secrets, for printing
  std::string name;          // the database's name (PostgreSQL) or the copy's directory (SQLite)
  std::string method;        // how it was made, for the rehearsal record
  std::vector<CopiedTable> tables;  // empty when the whole database was copied
  std::vector<std::string> dropped_constraints;  // foreign keys left out because their rows were sampled
  std::vector<std::string> notes;                // e.g. why TEMPLATE was not used
  double seconds = 0;                            // how long the copy took
  std::shared_ptr<void> hold;  // keeps the copy marked in use until dropped (PostgreSQL: one session)
};

class Connection {
 public:
  virtual ~Connection() = default;

  virtual const Dialect& dialect() const = 0;

  // Runs one statement with $1..$n parameters and returns its rows.
  virtual Result<QueryResult> Query(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  // Runs one or more statements without parameters or results.
  virtual Status Exec(std::string_view sql) = 0;
  // Runs a rendered statement, honouring its guard, lock and schema flags.
  virtual Status Execute(const Statement& stmt) = 0;

  // Transactions. Begin takes the write lock up front where the database
  // has one (SQLite BEGIN IMMEDIATE). Commit returns kInDoubt when the
  // connection broke during COMMIT.
  virtual Status Begin() = 0;
  // A read-only transaction over one consistent snapshot (verification).
  virtual Status BeginSnapshot() = 0;
  // Sharing one snapshot between sessions (parallel verification reads one
  // consistent state on several connections). Inside a BeginSnapshot
  // transaction, ExportSnapshot returns an id with which another session's
  // BeginSnapshotOf starts a transaction that reads exactly that snapshot,
  // valid while the exporting transaction stays open (PostgreSQL
  // pg_export_snapshot / SET TRANSACTION SNAPSHOT). kFailedPrecondition
  // where the database cannot share snapshots (shares_snapshots() false).
  virtual bool shares_snapshots() const { return false; }
  virtual Result<std::string> ExportSnapshot() {
    return FailedPrecondition("this database cannot share a snapshot between sessions");
  }
  virtual Status BeginSnapshotOf(const std::string& id) {
    return FailedPrecondition("this database cannot share a snapshot between sessions");
  }
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;
  virtual bool in_transaction() const = 0;

  // The migrated schema, excluding sluice's own objects.
  virtual Result<Schema> Introspect() = 0;

  // Re-establishes a lost connection (an open transaction is gone). Then
  // everything added with AddSessionSetup is re-applied, in order, so a
  // reconnected session is the session it was (version selection, backfill
  // settings, timeouts). If the new connection cannot be made, or one setup
  // statement fails, Reconnect returns that error and leaves the connection
  // closed (every statement kUnavailable) rather than usable without its
  // setup; calling Reconnect again retries.
  virtual Status Reconnect() = 0;

  // Runs `sql` (session-level settings: SET ..., SQLite TEMP views of a
  // version, StatementTimeoutSql) now and, when it succeeds, remembers it
  // to run again after every Reconnect(). On failure nothing is remembered
  // and the error is returned. Call it outside a transaction (kInternal
  // otherwise: a rollback would undo what a reconnect would re-apply).
  virtual Status AddSessionSetup(std::string sql) { return Exec(sql); }

  // Session settings that make a backfill's chunk transactions cheaper
  // without weakening what a committed chunk guarantees, decided by how
  // this database is set up now; the backfill applies them with
  // AddSessionSetup after Dialect::BackfillSessionSetup. `full_sync`: the
  // user asked for every commit to be durable before it returns. SQLite:
  // statement journals in memory, a page cache that holds a chunk, and
  // synchronous = NORMAL when the file is in WAL mode unless `full_sync`
  // (docs/how-it-works.md, "Durability of the backfill's commits").
  virtual Result<std::vector<std::string>> BackfillTuningSql(bool full_sync) { return std::vector<std::string>{}; }

  // Sessions that hold locks on `tables` (qualified names as Dialect::Table
  // gives them), for messages when sluice could not get its lock: pid,
  // state, query and how long. Empty when the database has no such notion.
  virtual std::string DescribeLockHolders(const std::vector<std::string>& tables) { return {}; }

  // Takes the named lock for the life of this connection, or reports who
  // holds it. Never blocks.
  virtual Result<LockAttempt> TryLock(const std::string& name) = 0;
  virtual Status Unlock(const std::string& name) = 0;

  // A printable description of the target without secrets.
  virtual std::string Describe() const = 0;

  // Asks the database to stop the statement this connection is running
  // now, from any thread (the only method that may be called while another
  // thread is inside Query/Exec on this connection). The running call then
  // fails (kCancelled); a cancel that arrives when nothing runs is lost.
  // For a process that stops waiting for a statement: without it the server
  // would keep running it after the process went away.
  virtual void Cancel() {}

  // Copies the whole database into a new database at `path` (a file that
  // must not exist yet), as a consistent snapshot while other sessions keep
  // writing (SQLite: the online backup API). Changes nothing here.
  // kFailedPrecondition where the database offers no such copy (PostgreSQL:
  // `sluice rehearse` needs --target there); kCancelled soon after `cancel`
  // (when given) is set; on failure `path` may hold a partial copy, which
  // the caller removes.
  virtual Status CopyDatabaseTo(const std::string& path, const std::atomic<bool>* cancel = nullptr) {
    return FailedPrecondition("this database cannot be copied into a file by sluice");
  }

  // --- scratch copies (`sluice rehearse`, docs/handoff.md) ---
  // Makes a scratch copy of this database beside it, changing nothing here:
  // SQLite, the backup API into a new temporary directory; PostgreSQL, a new
  // database `sluice_rehearsal_<label>_<random>` on the same server, by
  // CREATE DATABASE ... TEMPLATE when no other session uses this database,
  // else the schema (pg_dump) and the rows of `tables` and the tables they
  // reference. kFailedPrecondition, before anything is created, when this
  // database or role cannot make one (no CREATEDB, no pg_dump): the caller
  // suggests a staging database instead. kCancelled ("the rehearsal was
  // interrupted during the copy") soon after `request.cancel` is set: the
  // running statement or tool is cancelled. Nothing is left behind on error.
  virtual Result<ScratchCopy> CreateScratchCopy(const ScratchCopyRequest& /*request*/) {
    return FailedPrecondition("this database cannot make a scratch copy of itself");
  }
  // Removes `copy` (keep: leaves it, marked kept, and releases it), ending
  // only this process's own sessions to it first.
  virtual Status DropScratchCopy(const ScratchCopy& /*copy*/, bool /*keep*/) { return Status::Ok(); }
  // Drops scratch copies a killed rehearsal left behind (by their name
  // prefix; never a kept one, never one in use) and says what it did, one
  // line each.
  virtual Result<std::vector<std::string>> DropLeftoverScratchCopies() { return std::vector<std::string>{}; }

  // Seconds one COMMIT takes of a transaction that wrote `rows` rows of
  // `bytes_per_row` bytes, measured on a scratch database beside this one
  // (same storage, same journal mode) that is removed afterwards; changes
  // nothing here. 0 where the statements already paid for their writes
  // (PostgreSQL writes its WAL as a statement runs; a commit only flushes
  // it). `sluice estimate` adds it to each trial chunk.
  virtual Result<double> TimeCommit(int64_t /*rows*/, int64_t /*bytes_per_row*/) { return 0.0; }

  // Compiles `sql` without running it and returns every column it reads or
  // writes, through views and triggers, as the database resolved them
  // (SQLite: sqlite3_set_authorizer). kInvalidArgument when it does not
  // compile; kFailedPrecondition where the database offers no such
  // resolution (the contract audit's `--queries` then parses the text).
  virtual Result<std::vector<ColumnUse>> ColumnsTouched(std::string_view sql) {
    return FailedPrecondition("this database does not resolve a statement's columns for sluice");
  }
};

class Adapter {
 public:
  virtual ~Adapter() = default;
  virtual const Dialect& dialect() const = 0;
  // Opens a new session. kUnavailable if the database cannot be reached,
  // kInvalidArgument for a malformed URL.
  virtual Result<std::unique_ptr<Connection>> Connect() = 0;
  virtual std::string Describe() const = 0;
};

struct OpenOptions {
  // PostgreSQL: the schema whose tables are migrated.
  std::string schema = "public";
  // PostgreSQL: schema holding sluice's state tables.
  std::string state_schema = "sluice";
  // SQLite: create the database file when it does not exist (demo only;
  // otherwise a mistyped path is an error, not a new empty database).
  bool create = false;
};

// Chooses and configures an adapter from a database URL:
//   sqlite:PATH, sqlite:///abs/path.db, or a path ending in .db/.sqlite/.sqlite3
//   postgresql://..., postgres://..., libpq "key=value" strings.
// kInvalidArgument names what is wrong with an unusable URL.
Result<std::unique_ptr<Adapter>> OpenAdapter(const std::string& url, const OpenOptions& options = {});

// TEST ONLY. While set, OpenAdapter passes every adapter it makes through
// `wrap` and returns the result, so in-process tests can put a wrapper
// (e.g. FaultInjectingAdapter, src/db/fault_injection.h) under the engine
// without changing the public API. An empty function removes it. Set it
// before the code under test opens adapters and clear it afterwards; the
// setting is process-wide (guarded by a mutex). Never used by sluice itself.
using AdapterWrapFn = std::function<std::unique_ptr<Adapter>(std::unique_ptr<Adapter>)>;
void TEST_SetAdapterWrapper(AdapterWrapFn wrap);

// Runs `fn` inside Begin/Commit; rolls back if `fn` or Commit fails.
template <typename Fn>
Status InTransaction(Connection& conn, Fn&& fn) {
  SLUICE_RETURN_IF_ERROR(conn.Begin());
  Status s = fn();
  if (!s.ok()) {
    conn.Rollback().IgnoreError();
    return s;
  }
  return conn.Commit();
}

}  // namespace sluice::db
