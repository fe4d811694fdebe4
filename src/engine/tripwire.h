// pgaudit tripwires (docs/audit.md, issue 12): the server itself, not a
// parser, logs every statement that reads or writes an old column.
//
// Arming grants an audit role (the one `pgaudit.role` names; sluice creates
// it NOLOGIN when it does not exist) exactly the old columns: column-level
// SELECT, INSERT and UPDATE on each old column, on every column of an old
// table, and on every column of the old version's views. pgaudit's object
// audit then writes an `AUDIT: OBJECT,...` entry for each statement touching
// one of them, including `SELECT *`, views, functions and dynamic SQL.
// Column-level grants never touch a relation's own ACL, and disarming
// revokes exactly what arming granted (and drops the role if sluice created
// it), so a rollback leaves the catalog as it was before start.
//
// The arming is recorded as an `audit.armed` event (role, whether sluice
// created it, the REVOKE statements that undo it) and undone by an
// `audit.disarmed` one, at complete or rollback.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "engine/engine.h"

namespace sluice::engine {

// RFC 4180 records (quoted fields may hold commas, "" and newlines), as
// PostgreSQL's csvlog and pgaudit's message write them. With `consumed`,
// only records ended by a newline are returned and *consumed is the length
// of the text they span (a partial last line waits for the next read);
// without it a trailing unterminated record is returned too.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text, size_t* consumed = nullptr);

// The server's csvlog read incrementally (the tripwires and the brownout):
// each Next() returns the complete records written since the previous one.
// A file is read from where the previous read stopped; a partial last
// record is read again, whole, next time; a file that appears later (log
// rotation) is read from its start; one that shrank (truncated on
// rotation) from its start again.
//
// Thread-safety: one thread at a time.
class CsvLogTail {
 public:
  struct File {
    std::string name;
    int64_t size = 0;
    std::string modified;  // UTC "YYYY-MM-DDTHH:MM:SS"
  };
  using ListFn = std::function<Result<std::vector<File>>()>;
  using ReadFn = std::function<Result<std::string>(const std::string& name, int64_t offset, int64_t length)>;
  CsvLogTail(ListFn list, ReadFn read) : list_(std::move(list)), read_(std::move(read)) {}
  // The csvlog files of `conn`'s server, through pg_ls_logdir() and
  // pg_read_binary_file(). Fails (kFailedPrecondition, with what to
  // configure) when the server writes no csvlog.
  static Result<CsvLogTail> Open(db::Connection& conn);

  // Skips what the files hold now: Next() returns what is written later.
  Status SkipToEnd();
  // The complete records written since the previous call. On the first
  // read of a file last modified before `modified_since` (same format as
  // File::modified, "" = none), the file is skipped. Fails (with the
  // advice) when the log cannot be listed or read.
  Result<std::vector<std::vector<std::string>>> Next(const std::string& modified_since = "");
  int files_read() const { return static_cast<int>(offsets_.size()); }

 private:
  ListFn list_;
  ReadFn read_;
  std::map<std::string, int64_t> offsets_;  // file -> bytes consumed
};

// csvlog columns (PostgreSQL 15).
enum CsvLogColumn {
  kLogTime = 0,
  kLogUser = 1,
  kLogDatabase = 2,
  kLogClient = 4,
  kLogSession = 5,
  kLogSeverity = 11,
  kLogSqlState = 12,
  kLogMessage = 13,
  kLogQuery = 19,
  kLogApplication = 22
};

// The details (a JSON object, its time added as "at") of the latest event
// `opened` of `name` that no later `closed` event undid, if any.
std::optional<nlohmann::json> OpenEvent(StateStore& store, const std::string& name, const std::string& opened,
                                        const std::string& closed);

// SQL filter on (n.nspname, c.relname[, a.attname]) selecting the objects:
// their relations, and with `columns` only the old columns of those that
// keep others (what the tripwires grant, what a brownout revokes).
std::string OldObjectFilter(const std::vector<audit::OldObject>& objects, bool columns);

// csvlog's log_time values (in the server's log_timezone) as UTC ISO-8601,
// converted by the server.
Result<std::vector<std::string>> LogTimesToUtc(db::Connection& conn, const std::vector<std::string>& times);

// The old objects a statement the server logged touches: the resolver's
// answer where it has one, else every old object of the relation the log
// named (pgaudit and permission errors name the relation, not the column).
std::vector<audit::Touch> TouchesOfLogged(const std::string& statement, const std::string& schema,
                                          const std::string& relation, const std::string& kind,
                                          const audit::Catalog& cat, const std::vector<std::string>& path,
                                          const std::vector<audit::OldObject>& objects);

// At switch, the contract audit's window opens (audit_run.cc): arms the
// tripwires and takes the pg_stat_statements baseline (an `audits` row the
// first `sluice audit` diffs against). Best effort: a source that is not
// available is what `sluice audit` reports, with the advice.
void OpenAuditWindow(db::Connection& conn, StateStore& store, const Loaded& l, const std::string& actor);

// Arms the tripwires of migration `l` unless they are armed. Returns true
// when this call armed them, false when they already were. Fails
// (kFailedPrecondition, with what to configure) when pgaudit is not loaded,
// `pgaudit.role` is not set, or the role cannot be created or granted; a
// failure leaves nothing behind.
Result<bool> ArmTripwires(db::Connection& conn, StateStore& store, const Loaded& l, const std::string& actor);

// Undoes the arming of `name`, if any: revokes, drops the role sluice
// created (kept, and said so in the event, when something else still holds
// grants on it). Best effort: never fails the transition that calls it.
void DisarmTripwires(db::Connection& conn, StateStore& store, const std::string& name, const std::string& actor);

// Reads the pgaudit entries the server wrote since the previous audit of
// the window (or since arming) from its csvlog and adds a finding per old
// object they touch, with user, application_name and client; adds the
// "pgaudit" coverage entry (unavailable, with what to configure, when the
// log cannot be read). `arm` is ArmTripwires' outcome for this audit.
void ReadTripwires(db::Connection& conn, StateStore& store, const std::string& name, const Result<bool>& arm,
                   const audit::Catalog& cat, const std::vector<std::string>& path,
                   const std::optional<audit::Report>& prev, audit::Report* rep);

// The opt-in brownout (brownout.cc, docs/audit.md): the old objects (what
// the tripwires arm) revoked from named application roles for a while; the
// first permission error one of them hits restores the grants at once.
// The exact REVOKEs and the GRANTs that restore are recorded in an
// `audit.brownout.started` event before anything is revoked, and an
// `audit.brownout.ended` one (with the outcome) after the restore, so an
// interrupted brownout is restored by the next audit, complete or rollback.
struct BrownoutOptions {
  std::vector<std::string> roles;
  int64_t seconds = 60;
  const std::atomic<bool>* cancel = nullptr;  // Ctrl-C / SIGTERM: restore and stop
};
// Runs a brownout and adds what it saw to `rep`: a "brownout" finding per
// permission error (role, application_name, client, statement) and a
// "brownout" coverage entry (the window, the roles, those for which it
// would not bite because PUBLIC, a membership or another grantor still
// gives them access). Fails closed (nothing revoked) when the server log
// cannot be read; fails after restoring when sluice itself fails midway.
Status RunBrownout(db::Connection& conn, StateStore& store, const Loaded& l, const BrownoutOptions& options,
                   const audit::Catalog& cat, const std::vector<std::string>& path, const std::string& actor,
                   audit::Report* rep);
// Restores what an interrupted brownout of `name` revoked (an
// `audit.brownout.started` with no `audit.brownout.ended`), if any.
// Returns what it did ("" = nothing to restore); fails when a GRANT failed
// (the event stays open: the next command tries again).
Result<std::string> RestoreBrownout(db::Connection& conn, StateStore& store, const std::string& name,
                                    const std::string& actor);

}  // namespace sluice::engine
