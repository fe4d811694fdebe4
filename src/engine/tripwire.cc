// pgaudit tripwires: arming, disarming, reading the server's csvlog
// (tripwire.h).
#include "engine/tripwire.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/sql_text.h"
#include "engine/schema_json.h"

namespace sluice::engine {
namespace {

using db::Value;
using Json = nlohmann::json;

constexpr const char* kLoadAdvice =
    "add pgaudit to shared_preload_libraries (Debian: postgresql-15-pgaudit; a restart) and set pgaudit.role to the "
    "audit role sluice may grant the old columns to, e.g. ALTER SYSTEM SET pgaudit.role = 'sluice_audit' or ALTER "
    "DATABASE ... SET pgaudit.role (RDS / Aurora: parameter group shared_preload_libraries and pgaudit.role = "
    "rds_pgaudit; Cloud SQL: flags cloudsql.enable_pgaudit = on and pgaudit.role)";
constexpr const char* kLogAdvice =
    "sluice reads the server's csvlog through pg_ls_logdir() and pg_read_binary_file(): set log_destination to "
    "include 'csvlog' and logging_collector = on (a restart), and let sluice's role read it (a superuser, or GRANT "
    "pg_monitor TO <role>; GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint) TO "
    "<role>). Where the log is only exported (RDS, Cloud SQL) this source cannot be read from SQL";
constexpr const char* kIsoFormat = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

// The latest `audit.armed` event of `name` not undone by a later
// `audit.disarmed`, with its time in "at".
std::optional<Json> Armed(StateStore& store, const std::string& name) {
  return OpenEvent(store, name, "audit.armed", "audit.disarmed");
}

// The pgaudit.role setting: nullopt when pgaudit is not loaded.
Result<std::optional<std::string>> AuditRole(db::Connection& conn) {
  SLUICE_ASSIGN_OR_RETURN(auto r, conn.Query("SELECT current_setting('pgaudit.role', true)"));
  if (r.rows.empty() || r.rows[0][0].is_null()) return std::optional<std::string>();
  return std::optional<std::string>(r.rows[0][0].text);
}

// Runs each statement, ignoring failures; returns how many failed.
int RunAll(db::Connection& conn, const std::vector<std::string>& statements) {
  int failed = 0;
  for (const auto& s : statements) failed += conn.Query(s).ok() ? 0 : 1;
  return failed;
}

struct Entry {
  std::string at;  // log_time as it was logged
  std::string role, application, client, database;
  std::string kind;                 // read | write
  std::string schema, relation;     // pgaudit's object name
  std::string statement;
  std::string id;  // session and pgaudit statement id: one statement's entries
};

std::string FromHex(const std::string& hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out[i / 2] = static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1]));
  return out;
}

}  // namespace

std::vector<std::vector<std::string>> ParseCsv(const std::string& text, size_t* consumed) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, any = false;
  size_t end = 0;  // just past the last newline that ended a record
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (quoted) {
      if (ch != '"') {
        field += ch;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
      continue;
    }
    any = true;
    if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      record.push_back(std::move(field));
      field.clear();
    } else if (ch == '\n') {
      record.push_back(std::move(field));
      field.clear();
      out.push_back(std::move(record));
      record.clear();
      any = false;
      end = i + 1;
    } else if (ch != '\r') {
      field += ch;
    }
  }
  if (consumed) {
    *consumed = end;
  } else if (any || !field.empty() || quoted) {
    record.push_back(std::move(field));
    out.push_back(std::move(record));
  }
  return out;
}

Result<CsvLogTail> CsvLogTail::Open(db::Connection& conn) {
  auto file = conn.Query("SELECT pg_catalog.pg_current_logfile('csvlog')");
  if (!file.ok() || file->rows.empty() || file->rows[0][0].is_null()) {
    return FailedPrecondition("the server writes no csvlog" +
                              (file.ok() ? std::string() : " (" + file.status().message() + ")") + ": " + kLogAdvice);
  }
  db::Connection* c = &conn;
  ListFn list = [c]() -> Result<std::vector<File>> {
    auto r = c->Query("SELECT name, size, to_char(modification AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') "
                      "FROM pg_catalog.pg_ls_logdir() WHERE name LIKE '%.csv' ORDER BY modification, name");
    if (!r.ok()) return FailedPrecondition("cannot list the server log (" + r.status().message() + "): " + kLogAdvice);
    std::vector<File> out;
    for (const auto& row : r->rows) out.push_back({row[0].text, row[1].AsInt(), row[2].text});
    return out;
  };
  ReadFn read = [c](const std::string& name, int64_t offset, int64_t length) -> Result<std::string> {
    auto r = c->Query("SELECT encode(pg_catalog.pg_read_binary_file(current_setting('log_directory') || '/' || $1, "
                      "$2::bigint, $3::bigint), 'hex')",
                      {Value::Text(name), Value::Int(offset), Value::Int(length)});
    if (!r.ok() || r->rows.empty()) {
      return FailedPrecondition("cannot read the server log " + name + " (" +
                                (r.ok() ? std::string("no row") : r.status().message()) + "): " + kLogAdvice);
    }
    return FromHex(r->rows[0][0].text);
  };
  return CsvLogTail(std::move(list), std::move(read));
}

Status CsvLogTail::SkipToEnd() {
  SLUICE_ASSIGN_OR_RETURN(auto files, list_());
  // Earlier files were rotated away whole; the last one may end inside a
  // record the collector is still writing: parsed to its last complete one.
  for (size_t i = 0; i + 1 < files.size(); ++i) offsets_[files[i].name] = files[i].size;
  if (!files.empty()) {
    offsets_.erase(files.back().name);
    SLUICE_RETURN_IF_ERROR(Next().status());
  }
  return Status::Ok();
}

Result<std::vector<std::vector<std::string>>> CsvLogTail::Next(const std::string& modified_since) {
  SLUICE_ASSIGN_OR_RETURN(auto files, list_());
  std::vector<std::vector<std::string>> out;
  for (const auto& f : files) {
    auto at = offsets_.find(f.name);
    if (at == offsets_.end() && f.modified < modified_since) continue;  // last written before the interval
    int64_t offset = at == offsets_.end() || f.size < at->second ? 0 : at->second;
    if (f.size == offset) {
      offsets_[f.name] = offset;
      continue;
    }
    SLUICE_ASSIGN_OR_RETURN(std::string text, read_(f.name, offset, f.size - offset));
    size_t consumed = 0;
    for (auto& r : ParseCsv(text, &consumed)) out.push_back(std::move(r));
    offsets_[f.name] = offset + static_cast<int64_t>(consumed);
  }
  return out;
}

std::optional<nlohmann::json> OpenEvent(StateStore& store, const std::string& name, const std::string& opened,
                                        const std::string& closed) {
  auto events = store.Events(name);
  if (!events.ok()) return std::nullopt;
  std::optional<Json> open;
  for (const auto& e : *events) {
    if (e.kind == closed) open.reset();
    if (e.kind != opened) continue;
    Json j = Json::parse(e.details, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    j["at"] = e.at;
    open = std::move(j);
  }
  return open;
}

std::string OldObjectFilter(const std::vector<audit::OldObject>& objects, bool columns) {
  std::string where;
  for (const auto& o : objects) {
    std::string one = "n.nspname = " + sql::QuoteLiteral(o.schema);
    if (!o.table.empty()) one += " AND c.relname = " + sql::QuoteLiteral(o.table);
    if (columns && !o.column.empty()) one += " AND a.attname = " + sql::QuoteLiteral(o.column);
    where += (where.empty() ? "(" : " OR (") + one + ")";
  }
  return where;
}

Result<std::vector<std::string>> LogTimesToUtc(db::Connection& conn, const std::vector<std::string>& times) {
  // log_time is in log_timezone: the server converts it to UTC ISO-8601.
  std::vector<std::string> at(times.size());
  for (size_t i = 0; i < times.size(); i += 500) {
    std::string list;
    for (size_t j = i; j < std::min(times.size(), i + 500); ++j) {
      list += (list.empty() ? "" : ", ") + sql::QuoteLiteral(times[j]);
    }
    SLUICE_ASSIGN_OR_RETURN(auto conv, conn.Query("SELECT to_char(x::timestamptz AT TIME ZONE 'UTC', " +
                                                  std::string(kIsoFormat) + ") FROM unnest(ARRAY[" + list +
                                                  "]::text[]) WITH ORDINALITY u(x, i) ORDER BY i"));
    for (size_t j = 0; j < conv.rows.size(); ++j) at[i + j] = conv.rows[j][0].text;
  }
  return at;
}

std::vector<audit::Touch> TouchesOfLogged(const std::string& statement, const std::string& schema,
                                          const std::string& relation, const std::string& kind,
                                          const audit::Catalog& cat, const std::vector<std::string>& path,
                                          const std::vector<audit::OldObject>& objects) {
  std::vector<audit::Touch> touches;
  if (auto refs = audit::ResolveStatement(statement, cat, path); refs.ok()) touches = audit::Classify(*refs, objects);
  if (!touches.empty()) return touches;
  for (const auto& o : objects) {
    if (o.kind == "version" ? o.schema == schema : o.schema == schema && o.table == relation) {
      touches.push_back({o.Name(), o.kind == "version" ? "old version" : "direct", kind});
    }
  }
  return touches;
}

Result<bool> ArmTripwires(db::Connection& conn, StateStore& store, const Loaded& l, const std::string& actor) {
  if (Armed(store, l.rec.name)) return false;
  auto setting = AuditRole(conn);
  if (!setting.ok() || !*setting) return FailedPrecondition(std::string("pgaudit is not loaded: ") + kLoadAdvice);
  const std::string role = **setting;
  if (role.empty()) return FailedPrecondition(std::string("pgaudit.role is not set: ") + kLoadAdvice);
  SLUICE_ASSIGN_OR_RETURN(db::Schema before, SchemaFromJson(l.rec.schema_before));
  const auto objects = audit::OldObjects(l.compiled.version, before.name, true);
  if (objects.empty()) return false;
  // The new version's columns on an old physical column (a rename, a
  // renamed table) are granted too: a statement whose entries name the new
  // version's view went through it, and its base-table entries are fine.
  const std::string new_version = before.name + "_" + l.compiled.version.name;
  std::vector<audit::OldObject> tripped = objects;
  for (const auto& t : l.compiled.version.tables) {
    if (t.created) continue;
    for (const auto& c : t.columns) {
      bool old_physical = std::find(t.old_columns.begin(), t.old_columns.end(), c.physical) != t.old_columns.end();
      if (t.logical != t.physical || (old_physical && c.logical != c.physical)) {
        tripped.push_back({"column", new_version, t.logical, c.logical, ""});
      }
    }
  }
  SLUICE_ASSIGN_OR_RETURN(auto exists, conn.Query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                                                  {Value::Text(role)}));
  const std::string qrole = sql::QuoteIdent(role);
  bool created = false;
  if (exists.rows.empty()) {
    auto c = conn.Query("CREATE ROLE " + qrole + " NOLOGIN");
    if (!c.ok()) {
      return FailedPrecondition("cannot create the audit role " + role + " (" + c.status().message() +
                                "): create it yourself (CREATE ROLE " + qrole + " NOLOGIN) or give sluice's role "
                                "CREATEROLE");
    }
    created = true;
  }
  // The privileges the role lacks (those it has are logged already and
  // are not sluice's to revoke).
  auto missing = conn.Query(
      "SELECT n.nspname, c.relname, a.attname, p.priv FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON "
      "c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace CROSS JOIN (VALUES ('SELECT'), "
      "('INSERT'), ('UPDATE')) p(priv) WHERE c.relkind IN ('r', 'p', 'v', 'f') AND a.attnum > 0 AND NOT "
      "a.attisdropped AND (" + OldObjectFilter(tripped, true) + ") AND NOT pg_catalog.has_column_privilege($1, c.oid, "
      "a.attnum, p.priv) ORDER BY 1, 2, a.attnum, 4",
      {Value::Text(role)});
  std::vector<std::string> revokes;
  Status failed = missing.status();
  if (missing.ok()) {
    for (const auto& row : missing->rows) {
      const std::string what = row[3].text + " (" + sql::QuoteIdent(row[2].text) + ") ON " +
                               sql::QuoteIdent(row[0].text) + "." + sql::QuoteIdent(row[1].text);
      failed = conn.Query("GRANT " + what + " TO " + qrole).status();
      if (!failed.ok()) break;
      revokes.push_back("REVOKE " + what + " FROM " + qrole);
    }
  }
  if (!failed.ok()) {
    RunAll(conn, revokes);
    if (created) RunAll(conn, {"DROP ROLE " + qrole});
    return FailedPrecondition("cannot grant the old columns to the audit role " + role + ": " + failed.message());
  }
  Json details = {{"role", role}, {"created", created}, {"new_version", new_version}, {"revokes", revokes}};
  SLUICE_RETURN_IF_ERROR(store.AddEvent(l.rec.name, "audit.armed", actor,
                                        fmt::format("pgaudit tripwires armed: {} column privilege(s) granted to {}",
                                                    revokes.size(), role),
                                        details.dump()));
  return true;
}

void DisarmTripwires(db::Connection& conn, StateStore& store, const std::string& name, const std::string& actor) {
  auto armed = Armed(store, name);
  if (!armed) return;
  const std::string role = armed->value("role", "");
  // After complete the dropped columns took their grants with them: those
  // REVOKEs fail, harmlessly.
  RunAll(conn, armed->value("revokes", std::vector<std::string>()));
  std::string message = "pgaudit tripwires disarmed: grants of " + role + " revoked";
  if (armed->value("created", false)) {
    auto dropped = conn.Query("DROP ROLE IF EXISTS " + sql::QuoteIdent(role));
    message += dropped.ok() ? ", role dropped"
                            : ", role kept (" + dropped.status().message() + ")";
  }
  (void)store.AddEvent(name, "audit.disarmed", actor, message, "{}");
}

void ReadTripwires(db::Connection& conn, StateStore& store, const std::string& name, const Result<bool>& arm,
                   const audit::Catalog& cat, const std::vector<std::string>& path,
                   const std::optional<audit::Report>& prev, audit::Report* rep) {
  audit::Coverage c{"pgaudit", false, false, "", {}};
  auto done = [&] { rep->coverage.push_back(std::move(c)); };
  if (!arm.ok()) {
    c.detail = arm.status().message();
    return done();
  }
  auto armed = Armed(store, name);
  if (!armed) {
    c.detail = "nothing to arm: no old column";
    return done();
  }
  const std::string role = armed->value("role", ""), armed_at = armed->value("at", "");
  auto tail = CsvLogTail::Open(conn);
  if (!tail.ok()) {
    c.detail = tail.status().message();
    return done();
  }
  const std::string since = prev && prev->at > armed_at ? prev->at : armed_at;
  auto db = conn.Query("SELECT current_database()");
  const std::string database = db.ok() && !db->rows.empty() ? db->rows[0][0].text : "";
  // The logging collector writes asynchronously: a marker logged now, and
  // found in the file, proves every entry logged before it is there too.
  const std::string marker = "sluice audit marker " + name + " " + rep->at;
  (void)conn.Query("DO $$ BEGIN RAISE LOG '%', " + sql::QuoteLiteral(marker) + "; END $$");
  std::vector<Entry> entries;
  bool flushed = false;
  for (int attempt = 0; attempt < 100 && !flushed; ++attempt) {
    if (attempt > 0) store.clock()->SleepMicros(20'000);
    // (modification has whole seconds: compared to `since`'s second)
    auto records = tail->Next(since.substr(0, 19));
    if (!records.ok()) {
      c.detail = records.status().message();
      return done();
    }
    for (auto& r : *records) {
      if (r.size() <= kLogApplication) continue;
      if (r[kLogMessage] == marker) flushed = true;
      if (r[kLogMessage].rfind("AUDIT: OBJECT,", 0) != 0) continue;
      if (r[kLogDatabase] != database || r[kLogApplication].rfind("sluice ", 0) == 0) continue;
      // AUDIT: OBJECT,statement,substatement,class,command,object type,
      // object name,statement text,parameter
      auto m = ParseCsv(r[kLogMessage].substr(7));
      if (m.empty() || m[0].size() < 8) continue;
      const std::string& object = m[0][6];
      size_t dot = object.find('.');
      Entry e{r[kLogTime], r[kLogUser], r[kLogApplication], r[kLogClient].empty() ? "local" : r[kLogClient],
              r[kLogDatabase], m[0][3] == "WRITE" ? "write" : "read", object.substr(0, dot),
              dot == std::string::npos ? object : object.substr(dot + 1), m[0][7], r[kLogSession] + ":" + m[0][1]};
      entries.push_back(std::move(e));
    }
  }
  const int read = tail->files_read();
  std::vector<std::string> times;
  for (const auto& e : entries) times.push_back(e.at);
  auto converted = LogTimesToUtc(conn, times);
  if (!converted.ok()) {
    c.detail = "cannot read the log's timestamps (" + converted.status().message() + ")";
    return done();
  }
  const std::vector<std::string>& at = *converted;
  // One finding per (object, how, who, statement), counted.
  std::map<std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, std::string>,
           audit::Finding>
      found;
  const std::string new_version = armed->value("new_version", "");
  std::set<std::string> through_new, statements;
  for (const auto& e : entries) {
    if (e.schema == new_version) through_new.insert(e.id);
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (at[i] < since || at[i] > rep->at || e.schema == new_version) continue;
    statements.insert(e.id);
    // Through the new version's view: its base-table entries are fine (the
    // old version's views, in the same statement, still count).
    if (through_new.count(e.id) && e.schema == cat.base_schema) continue;
    for (const auto& t : TouchesOfLogged(e.statement, e.schema, e.relation, e.kind, cat, path, rep->objects)) {
      audit::Finding& f = found[{t.object, t.via, t.kinds, e.role, e.application, e.client, e.statement}];
      if (f.calls++ == 0) {
        f.source = "pgaudit";
        f.object = t.object;
        f.via = t.via;
        f.kinds = t.kinds;
        f.role = e.role;
        f.application = e.application;
        f.client = e.client;
        f.statement = e.statement.size() > 2000 ? e.statement.substr(0, 2000) + "..." : e.statement;
        f.first_seen = at[i];
      }
      f.last_seen = at[i];
    }
  }
  for (auto& [key, f] : found) rep->findings.push_back(std::move(f));
  c.available = true;
  c.complete = true;
  c.detail = fmt::format("{} audited statement(s) since {} in {} csvlog file(s); tripwires armed at {} for role {}",
                         statements.size(), since, read, armed_at, role);
  if (*arm) {
    c.complete = false;
    c.gaps.push_back("armed by this audit: it sees only what runs from now on; run `sluice audit` again after the "
                     "old application and its jobs had time to run");
  }
  if (!flushed) {
    c.complete = false;
    c.gaps.push_back("the server log did not show this audit's marker within 2 s: entries of the last moments may "
                     "be missing");
  }
  auto current = AuditRole(conn);
  if (!current.ok() || !*current || **current != role) {
    c.complete = false;
    c.gaps.push_back("pgaudit.role is no longer " + role + ": the tripwires no longer log");
  }
  for (const auto& o : rep->objects) {
    if (o.kind == "table") {
      c.gaps.push_back("DELETE from the old table " + o.Name() + " is not tripped (a column grant cannot express it)");
      break;
    }
  }
  done();
}

}  // namespace sluice::engine
