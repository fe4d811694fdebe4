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

#include <optional>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "engine/engine.h"

namespace sluice::engine {

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

}  // namespace sluice::engine
