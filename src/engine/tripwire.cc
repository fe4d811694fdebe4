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
    "sluice reads the pgaudit entries from the server's csvlog through pg_ls_logdir() and pg_read_file(): set "
    "log_destination to include 'csvlog' and logging_collector = on (a restart), and let sluice's role read it "
    "(a superuser, or GRANT pg_monitor TO <role>; GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_file(text) TO "
    "<role>). Where the log is only exported (RDS, Cloud SQL) this source cannot be read from SQL";
constexpr const char* kIsoFormat = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

// The latest `audit.armed` event of `name` not undone by a later
// `audit.disarmed`, with its time in "at".
std::optional<Json> Armed(StateStore& store, const std::string& name) {
  auto events = store.Events(name);
  if (!events.ok()) return std::nullopt;
  std::optional<Json> armed;
  for (const auto& e : *events) {
    if (e.kind == "audit.disarmed") armed.reset();
    if (e.kind != "audit.armed") continue;
    Json j = Json::parse(e.details, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    j["at"] = e.at;
    armed = std::move(j);
  }
  return armed;
}

// The pgaudit.role setting: nullopt when pgaudit is not loaded.
Result<std::optional<std::string>> AuditRole(db::Connection& conn) {
  SLUICE_ASSIGN_OR_RETURN(auto r, conn.Query("SELECT current_setting('pgaudit.role', true)"));
  if (r.rows.empty() || r.rows[0][0].is_null()) return std::optional<std::string>();
  return std::optional<std::string>(r.rows[0][0].text);
}

// SQL filter on (n.nspname, c.relname, a.attname) selecting the columns
// arming grants: old columns, every column of old tables and of the old
// version's relations.
std::string TripwireColumns(const std::vector<audit::OldObject>& objects) {
  std::string where;
  for (const auto& o : objects) {
    std::string one = "n.nspname = " + sql::QuoteLiteral(o.schema);
    if (!o.table.empty()) one += " AND c.relname = " + sql::QuoteLiteral(o.table);
    if (!o.column.empty()) one += " AND a.attname = " + sql::QuoteLiteral(o.column);
    where += (where.empty() ? "(" : " OR (") + one + ")";
  }
  return where;
}

// Runs each statement, ignoring failures; returns how many failed.
int RunAll(db::Connection& conn, const std::vector<std::string>& statements) {
  int failed = 0;
  for (const auto& s : statements) failed += conn.Query(s).ok() ? 0 : 1;
  return failed;
}

// RFC 4180 records (quoted fields may hold commas, "" and newlines), as
// PostgreSQL's csvlog and pgaudit's message write them.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, any = false;
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
    } else if (ch != '\r') {
      field += ch;
    }
  }
  if (any || !field.empty()) {
    record.push_back(std::move(field));
    out.push_back(std::move(record));
  }
  return out;
}

// csvlog columns (PostgreSQL 15).
enum CsvLog { kLogTime = 0, kUser = 1, kDatabase = 2, kClient = 4, kSession = 5, kMessage = 13, kApplication = 22 };

struct Entry {
  std::string at;  // log_time as it was logged
  std::string role, application, client, database;
  std::string kind;                 // read | write
  std::string schema, relation;     // pgaudit's object name
  std::string statement;
  std::string id;  // session and pgaudit statement id: one statement's entries
};

}  // namespace

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
      "a.attisdropped AND (" + TripwireColumns(tripped) + ") AND NOT pg_catalog.has_column_privilege($1, c.oid, "
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
  auto file = conn.Query("SELECT pg_catalog.pg_current_logfile('csvlog')");
  if (!file.ok() || file->rows.empty() || file->rows[0][0].is_null()) {
    c.detail = "the server writes no csvlog" + (file.ok() ? std::string() : " (" + file.status().message() + ")") +
               ": " + kLogAdvice;
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
  int read = 0;
  bool flushed = false;
  for (int attempt = 0; attempt < 100 && !flushed; ++attempt) {
    if (attempt > 0) store.clock()->SleepMicros(20'000);
    entries.clear();
    read = 0;
    // (modification has whole seconds: compared to `since`'s second)
    auto files = conn.Query("SELECT name, to_char(modification AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') "
                            "FROM pg_catalog.pg_ls_logdir() WHERE name LIKE '%.csv' ORDER BY modification, name");
    if (!files.ok()) {
      c.detail = "cannot list the server log (" + files.status().message() + "): " + kLogAdvice;
      return done();
    }
    for (const auto& f : files->rows) {
      if (f[1].text < since.substr(0, 19)) continue;  // last written before the interval
      auto text = conn.Query("SELECT pg_catalog.pg_read_file(current_setting('log_directory') || '/' || $1)",
                             {Value::Text(f[0].text)});
      if (!text.ok()) {
        c.detail = "cannot read the server log " + f[0].text + " (" + text.status().message() + "): " + kLogAdvice;
        return done();
      }
      ++read;
      for (auto& r : ParseCsv(text->rows[0][0].text)) {
        if (r.size() <= kApplication) continue;
        if (r[kMessage] == marker) flushed = true;
        if (r[kMessage].rfind("AUDIT: OBJECT,", 0) != 0) continue;
        if (r[kDatabase] != database || r[kApplication].rfind("sluice ", 0) == 0) continue;
        // AUDIT: OBJECT,statement,substatement,class,command,object type,
        // object name,statement text,parameter
        auto m = ParseCsv(r[kMessage].substr(7));
        if (m.empty() || m[0].size() < 8) continue;
        const std::string& object = m[0][6];
        size_t dot = object.find('.');
        Entry e{r[kLogTime], r[kUser], r[kApplication], r[kClient].empty() ? "local" : r[kClient], r[kDatabase],
                m[0][3] == "WRITE" ? "write" : "read", object.substr(0, dot),
                dot == std::string::npos ? object : object.substr(dot + 1), m[0][7], r[kSession] + ":" + m[0][1]};
        entries.push_back(std::move(e));
      }
    }
  }
  // log_time is in log_timezone: the server converts it to UTC ISO-8601.
  std::vector<std::string> at(entries.size());
  for (size_t i = 0; i < entries.size(); i += 500) {
    std::string list;
    for (size_t j = i; j < std::min(entries.size(), i + 500); ++j) {
      list += (list.empty() ? "" : ", ") + sql::QuoteLiteral(entries[j].at);
    }
    auto conv = conn.Query("SELECT to_char(x::timestamptz AT TIME ZONE 'UTC', " + std::string(kIsoFormat) +
                           ") FROM unnest(ARRAY[" + list + "]::text[]) WITH ORDINALITY u(x, i) ORDER BY i");
    if (!conv.ok()) {
      c.detail = "cannot read the log's timestamps (" + conv.status().message() + ")";
      return done();
    }
    for (size_t j = 0; j < conv->rows.size(); ++j) at[i + j] = conv->rows[j][0].text;
  }
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
    // Which old objects: the resolver's answer where it has one, else
    // every old object of the relation pgaudit named (it names the
    // relation, not the column).
    std::vector<audit::Touch> touches;
    if (auto refs = audit::ResolveStatement(e.statement, cat, path); refs.ok()) {
      touches = audit::Classify(*refs, rep->objects);
    }
    if (touches.empty()) {
      for (const auto& o : rep->objects) {
        if (o.kind == "version" ? o.schema == e.schema : o.schema == e.schema && o.table == e.relation) {
          touches.push_back({o.Name(), o.kind == "version" ? "old version" : "direct", e.kind});
        }
      }
    }
    for (const auto& t : touches) {
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
