// `sluice audit` (docs/audit.md): samples the sources the database offers
// for readers and writers of what complete drops (src/audit decides what
// is old and resolves statements), stores the report in the `audits` state
// table and records an `audit` event, which the complete gate reads.
//
// PostgreSQL sources:
//   pgaudit             the server's own log of every statement touching an
//                       old column (tripwire.h), read from its csvlog
//   pg_stat_statements  statements whose calls grew since the previous
//                       audit of the same window (the first audit of a
//                       window takes the baseline); evictions and resets
//                       are coverage gaps
//   pg_stat_activity    one sample of the connected sessions: each one's
//                       last statement, role, application_name, client
//   --brownout          (opt-in) the old objects revoked from named roles
//                       for a while, the permission errors read from the
//                       csvlog (brownout.cc)
// SQLite offers no statement statistics; `--code DIR` works on both.
#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "common/clock.h"
#include "common/sql_text.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/schema_json.h"
#include "engine/tripwire.h"

namespace sluice::engine {
namespace {

using db::Value;

constexpr const char* kStatementsAdvice =
    "set shared_preload_libraries = 'pg_stat_statements' (a restart), then CREATE EXTENSION pg_stat_statements in "
    "this database; on a managed PostgreSQL enable it in the parameter group / database flags (it is preloaded on "
    "RDS, Cloud SQL and Azure: only CREATE EXTENSION is needed)";

std::vector<gates::Event> ToGateEvents(const std::vector<EventRecord>& events) {
  std::vector<gates::Event> out;
  for (const auto& e : events) out.push_back({e.at, e.kind, e.actor, e.message, e.details});
  return out;
}

// Schema -> relation -> columns of the schemas statements may name.
Result<audit::Catalog> ReadCatalog(db::Connection& conn, const std::vector<std::string>& schemas,
                                   const std::string& base) {
  std::string in;
  for (const auto& s : schemas) in += (in.empty() ? "" : ", ") + sql::QuoteLiteral(s);
  SLUICE_ASSIGN_OR_RETURN(
      auto r, conn.Query("SELECT n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a JOIN "
                         "pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
                         "c.relnamespace WHERE n.nspname IN (" + in + ") AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                         "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY n.nspname, c.relname, a.attnum"));
  audit::Catalog cat;
  cat.base_schema = base;
  for (const auto& row : r.rows) cat.relations[row[0].text][row[1].text].push_back(row[2].text);
  return cat;
}

// Resolves `sql` and adds a finding per old object it touches.
void AddFindings(const std::string& sql, const audit::Catalog& cat, const std::vector<std::string>& path,
                 const std::vector<audit::OldObject>& objects, const audit::Finding& proto,
                 std::vector<audit::Finding>* out, int* unparsed) {
  auto refs = audit::ResolveStatement(sql, cat, path);
  if (!refs.ok()) {
    ++*unparsed;
    return;
  }
  for (const auto& t : audit::Classify(*refs, objects)) {
    audit::Finding f = proto;
    f.object = t.object;
    f.via = t.via;
    f.kinds = t.kinds;
    f.statement = sql.size() > 2000 ? sql.substr(0, 2000) + "..." : sql;
    out->push_back(std::move(f));
  }
}

struct Session {
  std::string role, application, client;
};

// pg_stat_activity: one sample of the other client sessions (sluice's own,
// named "sluice ...", are left out).
Status SampleSessions(db::Connection& conn, const audit::Catalog& cat, const std::vector<std::string>& path,
                      const std::vector<audit::OldObject>& objects, const std::string& state_schema,
                      audit::Report* rep, std::multimap<std::string, Session>* by_role) {
  audit::Coverage c{"pg_stat_activity", false, false, "", {}};
  auto r = conn.Query(
      "SELECT coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(host(client_addr), 'local'), "
      "to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "coalesce(to_char(state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), coalesce(query, "
      "'') FROM pg_catalog.pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND "
      "backend_type = 'client backend' AND coalesce(application_name, '') NOT LIKE 'sluice %' ORDER BY pid");
  if (!r.ok()) {
    c.detail = "could not be read: " + r.status().message();
    rep->coverage.push_back(std::move(c));
    return Status::Ok();
  }
  c.available = true;
  int unparsed = 0, hidden = 0;
  for (const auto& row : r->rows) {
    Session s{row[0].text, row[1].text, row[2].text};
    by_role->insert({s.role, s});
    const std::string& q = row[5].text;
    if (q.rfind("<insufficient privilege>", 0) == 0) {
      ++hidden;
      continue;
    }
    if (q.empty() || audit::IsSluiceStatement(q, state_schema)) continue;
    audit::Finding proto;
    proto.source = "pg_stat_activity";
    proto.role = s.role;
    proto.application = s.application;
    proto.client = s.client;
    proto.first_seen = row[3].text;
    proto.last_seen = row[4].text;
    AddFindings(q, cat, path, objects, proto, &rep->findings, &unparsed);
  }
  c.detail = fmt::format("{} session(s) sampled once; each shows only its latest statement, and a session's "
                         "search_path is not visible unless that statement set it",
                         r->rows.size());
  if (hidden) c.gaps.push_back(fmt::format("{} session(s) of other roles hide their statements (grant pg_read_all_stats)", hidden));
  if (unparsed) c.gaps.push_back(fmt::format("{} statement(s) could not be parsed", unparsed));
  rep->coverage.push_back(std::move(c));
  return Status::Ok();
}

// pg_stat_statements of this database: userid, queryid, calls, role, query;
// records the snapshot (calls per statement, dealloc, stats_reset) in
// `rep`. Fails with what to configure when it cannot be read.
Result<db::QueryResult> ReadStatements(db::Connection& conn, audit::Report* rep) {
  auto ext = conn.Query("SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = "
                        "e.extnamespace WHERE e.extname = 'pg_stat_statements'");
  if (!ext.ok() || ext->rows.empty()) {
    return FailedPrecondition("not installed in this database: " + std::string(kStatementsAdvice));
  }
  const std::string ns = sql::QuoteIdent(ext->rows[0][0].text);
  auto info = conn.Query("SELECT dealloc, coalesce(to_char(stats_reset AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '') FROM " + ns + ".pg_stat_statements_info");
  auto rows = conn.Query("SELECT s.userid::text, s.queryid::text, s.calls, coalesce(r.rolname::text, ''), s.query FROM " +
                         ns + ".pg_stat_statements(true) s LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.userid WHERE "
                         "s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())");
  if (!info.ok() || !rows.ok()) {
    return FailedPrecondition("could not be read (" + (info.ok() ? rows.status() : info.status()).message() +
                              "): " + kStatementsAdvice);
  }
  rep->dealloc = info->rows.empty() ? -1 : info->rows[0][0].AsInt(-1);
  rep->stats_reset = info->rows.empty() ? "" : info->rows[0][1].text;
  for (const auto& row : rows->rows) rep->snapshot[row[0].text + ":" + row[1].text] = row[2].AsInt();
  return std::move(*rows);
}

// pg_stat_statements: statements whose calls grew since `prev`'s snapshot.
void DiffStatements(db::Connection& conn, const audit::Catalog& cat, const std::vector<std::string>& path,
                    const std::vector<audit::OldObject>& objects, const std::string& state_schema,
                    const std::optional<audit::Report>& prev, const std::multimap<std::string, Session>& by_role,
                    audit::Report* rep) {
  audit::Coverage c{"pg_stat_statements", false, false, "", {}};
  auto rows = ReadStatements(conn, rep);
  if (!rows.ok()) {
    c.detail = rows.status().message();
    rep->coverage.push_back(std::move(c));
    return;
  }
  c.available = true;
  if (!prev) {
    c.detail = "baseline taken now (" + std::to_string(rows->rows.size()) + " statements)";
    c.gaps.push_back("no baseline was taken at switch: this audit only takes it; run `sluice audit` again after "
                     "the old application and its jobs had time to run");
    rep->coverage.push_back(std::move(c));
    return;
  }
  rep->since = prev->at;
  bool complete = true;
  if (prev->stats_reset != rep->stats_reset) {
    complete = false;
    c.gaps.push_back("the statistics were reset since the previous audit (" + prev->stats_reset + " -> " +
                     rep->stats_reset + "): statements run before the reset are not seen");
  }
  if (prev->dealloc >= 0 && rep->dealloc > prev->dealloc) {
    complete = false;
    c.gaps.push_back(fmt::format("{} statement(s) were evicted since the previous audit (pg_stat_statements.max is "
                                 "too small for this workload): what they ran is not seen",
                                 rep->dealloc - prev->dealloc));
  }
  int grown = 0, unparsed = 0, hidden = 0;
  for (const auto& row : rows->rows) {
    const std::string key = row[0].text + ":" + row[1].text;
    auto before = prev->snapshot.find(key);
    int64_t delta = row[2].AsInt() - (before == prev->snapshot.end() ? 0 : before->second);
    if (delta <= 0) continue;
    const std::string& q = row[4].text;
    if (row[4].is_null() || q.rfind("<insufficient privilege>", 0) == 0) {
      ++hidden;  // another role's statement, text withheld
      continue;
    }
    if (audit::IsSluiceStatement(q, state_schema)) continue;
    ++grown;
    audit::Finding proto;
    proto.source = "pg_stat_statements";
    proto.role = row[3].text;
    proto.calls = delta;
    proto.first_seen = prev->at;  // somewhere in the interval
    proto.last_seen = rep->at;
    // pg_stat_statements knows the role only; name the role's sessions now.
    std::set<std::string> apps, clients;
    for (auto [it, end] = by_role.equal_range(proto.role); it != end; ++it) {
      if (!it->second.application.empty()) apps.insert(it->second.application);
      clients.insert(it->second.client);
    }
    for (const auto& a : apps) proto.application += (proto.application.empty() ? "" : ", ") + a;
    for (const auto& a : clients) proto.client += (proto.client.empty() ? "" : ", ") + a;
    AddFindings(q, cat, path, objects, proto, &rep->findings, &unparsed);
  }
  if (hidden) {
    complete = false;
    c.gaps.push_back(fmt::format("{} statement(s) of other roles ran but their text is hidden from sluice's role: "
                                 "GRANT pg_read_all_stats TO it",
                                 hidden));
  }
  if (unparsed) {
    complete = false;
    c.gaps.push_back(fmt::format("{} statement(s) could not be parsed", unparsed));
  }
  c.complete = complete;
  c.detail = fmt::format("{} statement(s) ran since the previous audit at {}", grown, prev->at);
  rep->coverage.push_back(std::move(c));
}

// `--queries FILE`: its statements with the line each starts on. A
// statement ends with ';' at the end of a line, or at a blank line.
Result<std::vector<std::pair<int, std::string>>> ReadQueries(const std::string& file) {
  std::ifstream in(file);
  if (!in) return NotFound("--queries " + file + ": cannot be read");
  std::vector<std::pair<int, std::string>> out;
  std::string current, line;
  int n = 0, first = 0;
  auto flush = [&] {
    if (!current.empty()) out.push_back({first, current});
    current.clear();
  };
  while (std::getline(in, line)) {
    ++n;
    size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos) {
      flush();
      continue;
    }
    if (current.empty()) first = n;
    current += (current.empty() ? "" : "\n") + line.substr(b, e - b + 1);
    if (line[e] == ';') flush();
  }
  flush();
  return out;
}

// Where the database resolves statements itself (SQLite's authorizer):
// the old objects a statement's column uses touch. Uses inside sluice's own
// triggers and through the new version's views are fine; through the
// previous version's views (`<table>@<previous>`) they are "old version".
// `star` names the tables the text reads through `*` (the parser's view).
std::vector<audit::Touch> TouchesOfUses(const std::vector<db::ColumnUse>& uses,
                                        const std::vector<audit::OldObject>& objects, const db::VersionSpec& version,
                                        const std::set<std::string>& star) {
  auto version_of = [](const std::string& via) {
    size_t at = via.find('@');
    if (at == std::string::npos) return std::string();
    std::string v = via.substr(at + 1);
    for (const char* trigger : {"_insert", "_update", "_delete"}) {
      const std::string t = trigger;
      if (v.size() > t.size() && v.compare(v.size() - t.size(), t.size(), t) == 0) v.resize(v.size() - t.size());
    }
    return v;
  };
  std::map<std::pair<std::string, std::string>, std::set<std::string>> touched;  // (object, via) -> kinds
  for (const auto& u : uses) {
    if (u.via.rfind("_sluice", 0) == 0) continue;
    const std::string v = version_of(u.via);
    if (!v.empty() && v == version.name) continue;
    const std::string via = !v.empty() && v == version.previous ? "old version" : "direct";
    for (const auto& o : objects) {
      if (o.kind == "version" || o.table != u.table) continue;
      if (o.kind == "column" && !u.column.empty() && o.column != u.column) continue;
      if (o.kind == "column" && u.column.empty() && u.kind == "read") continue;
      touched[{o.Name(), via}].insert(u.kind == "read" && via == "direct" && star.count(u.table) ? "star" : u.kind);
    }
  }
  std::vector<audit::Touch> out;
  for (const auto& [key, kinds] : touched) {
    std::string k;
    for (const auto& x : kinds) k += (k.empty() ? "" : ",") + x;
    out.push_back({key.first, key.second, k});
  }
  return out;
}

// `--queries`: each statement of the corpus classified, by the database's
// own compiler where it offers one, else by the parser over `cat`.
Status ClassifyQueries(db::Connection& conn, const Loaded& l, const std::string& file, const audit::Catalog& cat,
                       const std::vector<std::string>& path, audit::Report* rep) {
  SLUICE_ASSIGN_OR_RETURN(auto queries, ReadQueries(file));
  int by_database = 0, by_parser = 0, failed = 0;
  for (const auto& [line, sql] : queries) {
    audit::Finding proto;
    proto.source = "queries";
    proto.location = file + ":" + std::to_string(line);
    auto uses = conn.ColumnsTouched(sql);
    if (!uses.ok() && uses.status().code() == StatusCode::kFailedPrecondition) {
      int unparsed = 0;
      AddFindings(sql, cat, path, rep->objects, proto, &rep->findings, &unparsed);
      failed += unparsed;
      by_parser += 1 - unparsed;
      continue;
    }
    if (!uses.ok()) {
      ++failed;
      continue;
    }
    ++by_database;
    std::set<std::string> star;
    if (auto refs = audit::ResolveStatement(sql, cat, path); refs.ok()) {
      for (const auto& r : *refs) {
        if (r.kind == "star") star.insert(r.relation);
      }
    }
    for (const auto& t : TouchesOfUses(*uses, rep->objects, l.compiled.version, star)) {
      audit::Finding f = proto;
      f.object = t.object;
      f.via = t.via;
      f.kinds = t.kinds;
      f.statement = sql.size() > 2000 ? sql.substr(0, 2000) + "..." : sql;
      rep->findings.push_back(std::move(f));
    }
  }
  audit::Coverage c{"queries", true, false,
                    fmt::format("{} statement(s) of {}: {} resolved by the database's compiler, {} by the parser "
                                "(a corpus: it shows what those statements touch, not what else runs)",
                                queries.size(), file, by_database, by_parser),
                    {}};
  if (failed) c.gaps.push_back(fmt::format("{} statement(s) did not compile or parse", failed));
  rep->coverage.push_back(std::move(c));
  return Status::Ok();
}

}  // namespace

gates::Inputs::Audit AuditEvidence(StateStore&, const Loaded& l, const std::vector<gates::Event>& events) {
  bool nothing = audit::OldObjects(l.compiled.version, "", true).empty();
  return gates::AuditFromEvents(events, l.rec.created_at, nothing);
}

void OpenAuditWindow(db::Connection& conn, StateStore& store, const Loaded& l, const std::string& actor) {
  (void)ArmTripwires(conn, store, l, actor);
  // The statistics' baseline: an audits row with the snapshot only (no
  // event: the gate's evidence is the audits `sluice audit` runs).
  audit::Report rep;
  rep.migration = l.rec.name;
  rep.at = IsoTime(store.clock()->WallMicros());
  auto rows = ReadStatements(conn, &rep);
  if (!rows.ok()) return;  // the audits say why
  auto events = store.Events(l.rec.name);
  if (!events.ok() || !EnsureStateTable(conn, "audits", false).ok()) return;
  rep.window_start = gates::AuditWindowStart(ToGateEvents(*events), l.rec.created_at);
  rep.coverage.push_back({"pg_stat_statements", true, false,
                          fmt::format("baseline taken at switch ({} statements)", rows->rows.size()), {}});
  (void)conn.Query("INSERT INTO " + conn.dialect().StateTable("audits") + " (migration, at, window_start, json) "
                   "VALUES ($1, $2, $3, $4)",
                   {Value::Text(rep.migration), Value::Text(rep.at), Value::Text(rep.window_start),
                    Value::Text(rep.ToJson())});
}

Result<AuditResult> Engine::Audit(const std::string& migration, const AuditOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(std::string name, ResolveMigration(store, migration, "audit"));
  SLUICE_ASSIGN_OR_RETURN(Loaded l, LoadMigration(store, conn->dialect(), name));
  if (l.rec.phase != kActive) {
    return FailedPrecondition("migration '" + name + "' is " + l.rec.phase +
                              "; the contract audit is for an active migration, before `sluice complete`");
  }
  const db::Dialect& d = conn->dialect();
  SLUICE_ASSIGN_OR_RETURN(db::Schema before, SchemaFromJson(l.rec.schema_before));
  const std::string base = before.name;
  const bool versioned = d.versioned_namespaces();
  if ((!options.brownout_roles.empty() || options.brownout_restore) && !d.versioned_namespaces()) {
    return InvalidArgument("--brownout: " + std::string(d.display_name()) + " has no roles or privileges to revoke: "
                           "every connection that opens the file can read every column");
  }
  // An interrupted brownout is restored first, whatever this audit does.
  std::string restored;
  if (versioned) {
    SLUICE_ASSIGN_OR_RETURN(restored, RestoreBrownout(*conn, store, name, options_.actor));
  }
  if (options.brownout_restore) {
    AuditResult out;
    out.migration = name;
    out.coverage_sufficient = true;
    out.summary = restored.empty() ? "no interrupted brownout to restore" : restored;
    out.text = out.summary + "\n";
    out.markdown = out.text;
    out.json = nlohmann::json({{"migration", name}, {"restored", !restored.empty()}, {"summary", out.summary}}).dump();
    return out;
  }

  audit::Report rep;
  rep.migration = name;
  rep.at = IsoTime(clock()->WallMicros());
  SLUICE_ASSIGN_OR_RETURN(auto events, store.Events(name));
  rep.window_start = gates::AuditWindowStart(ToGateEvents(events), l.rec.created_at);
  rep.objects = audit::OldObjects(l.compiled.version, base, versioned);
  if (l.plan.gates.complete.observation_seconds) rep.required_window_seconds = *l.plan.gates.complete.observation_seconds;

  // The previous audit of this window: the statistics' baseline.
  SLUICE_RETURN_IF_ERROR(EnsureStateTable(*conn, "audits", false));
  const std::string table = d.StateTable("audits");
  SLUICE_ASSIGN_OR_RETURN(auto prev_rows, conn->Query("SELECT json FROM " + table + " WHERE migration = $1 AND "
                                                      "window_start = $2 ORDER BY id DESC LIMIT 1",
                                                      {Value::Text(name), Value::Text(rep.window_start)}));
  std::optional<audit::Report> prev;
  if (!prev_rows.rows.empty()) {
    auto p = audit::ReportFromJson(prev_rows.rows[0][0].text);
    if (p.ok()) prev = std::move(*p);  // damaged: a new baseline (reported as such)
  }

  // The migrated schema as it was: what a statement that names no version
  // resolves (PostgreSQL adds the version schemas below).
  audit::Catalog cat;
  cat.base_schema = base;
  for (const auto& [t, info] : before.tables) {
    for (const auto& col : info.columns) cat.relations[base][t].push_back(col.name);
  }
  const std::vector<std::string> path = {base};
  if (versioned) {
    std::string state_schema = d.StateTable("x");
    state_schema = state_schema.substr(0, state_schema.find('.'));
    if (state_schema.size() >= 2 && state_schema.front() == '"') state_schema = state_schema.substr(1, state_schema.size() - 2);
    std::vector<std::string> schemas = {base, base + "_" + l.compiled.version.name, base + "_live"};
    if (!l.compiled.version.previous.empty()) schemas.push_back(base + "_" + l.compiled.version.previous);
    SLUICE_ASSIGN_OR_RETURN(cat, ReadCatalog(*conn, schemas, base));
    std::multimap<std::string, Session> by_role;
    if (!options.brownout_roles.empty()) {
      BrownoutOptions b{options.brownout_roles, options.brownout_seconds, options.cancel};
      SLUICE_RETURN_IF_ERROR(RunBrownout(*conn, store, l, b, cat, path, options_.actor, &rep));
    }
    // Armed at switch; armed now when that could not be done then.
    Result<bool> arm = ArmTripwires(*conn, store, l, options_.actor);
    ReadTripwires(*conn, store, name, arm, cat, path, prev, &rep);
    SLUICE_RETURN_IF_ERROR(SampleSessions(*conn, cat, path, rep.objects, state_schema, &rep, &by_role));
    DiffStatements(*conn, cat, path, rep.objects, state_schema, prev, by_role, &rep);
  } else {
    rep.coverage.push_back({"statement statistics", false, false,
                            std::string(d.display_name()) + " keeps no statement statistics or session list: give "
                                                            "the application's statements (--queries FILE, e.g. from "
                                                            "its logs) and code (--code DIR)",
                            {}});
  }
  if (!options.queries_file.empty()) {
    SLUICE_RETURN_IF_ERROR(ClassifyQueries(*conn, l, options.queries_file, cat, path, &rep));
  }
  if (!options.code_dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto matches, audit::ScanCode(options.code_dir, rep.objects));
    for (const auto& m : matches) {
      audit::Finding f;
      f.source = "code";
      f.object = m.object;
      f.via = "direct";
      f.kinds = "reference";
      f.location = m.file + ":" + std::to_string(m.line);
      f.statement = m.text;
      rep.findings.push_back(std::move(f));
    }
    rep.coverage.push_back({"code", true, false,
                            fmt::format("{} reference(s) in {} (static: cannot see what runs, nor names built at "
                                        "run time)",
                                        matches.size(), options.code_dir),
                            {}});
  }

  const std::string json = rep.ToJson();
  SLUICE_RETURN_IF_ERROR(conn->Query("INSERT INTO " + table + " (migration, at, window_start, json) VALUES ($1, $2, "
                                     "$3, $4)",
                                     {Value::Text(name), Value::Text(rep.at), Value::Text(rep.window_start),
                                      Value::Text(json)})
                             .status());
  nlohmann::json details = {{"window_start", rep.window_start},
                            {"blocking", rep.blocking()},
                            {"coverage_sufficient", rep.coverage_sufficient()},
                            {"findings", rep.findings.size()},
                            {"summary", rep.Summary()}};
  SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "audit", options_.actor, "contract audit: " + rep.Summary(),
                                        details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  AuditResult out;
  out.migration = name;
  out.blocking = rep.blocking();
  out.coverage_sufficient = rep.coverage_sufficient();
  out.summary = rep.Summary();
  out.json = json;
  out.text = rep.ToText();
  out.markdown = rep.ToMarkdown();
  return out;
}

}  // namespace sluice::engine
