// The opt-in brownout of `sluice audit --brownout` (tripwire.h,
// docs/audit.md): the old objects revoked from named application roles for
// a few seconds, the server's csvlog watched for the permission error that
// names who still uses them.
//
// Privileges are changed per (relation, role, privilege) and only those the
// role holds directly from the relation's owner (what sluice, acting as the
// owner or a superuser, can revoke and grant back exactly):
//   brownout  REVOKE p ON rel FROM role (it takes the column grants of p
//             too), then GRANT p (the columns that stay) back
//   restore   REVOKE p ON rel FROM role, then every grant of p as it was
//             (table-level and per column, WITH GRANT OPTION where it was)
// The restore is idempotent, so running all of them after a partial
// brownout (or twice) leaves exactly the privileges before.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/sql_text.h"
#include "engine/schema_json.h"
#include "engine/tripwire.h"

namespace sluice::engine {
namespace {

using db::Value;
using Json = nlohmann::json;

std::optional<Json> OpenBrownout(StateStore& store, const std::string& name) {
  return OpenEvent(store, name, "audit.brownout.started", "audit.brownout.ended");
}

// Runs every statement; the failures' messages.
std::vector<std::string> RunEach(db::Connection& conn, const std::vector<std::string>& statements) {
  std::vector<std::string> failed;
  for (const auto& s : statements) {
    auto r = conn.Query(s);
    if (!r.ok()) failed.push_back(s + ": " + r.status().message());
  }
  return failed;
}

// A relation the brownout covers: its old columns (empty: all of it is old).
struct Target {
  std::string schema, relation;
  std::set<std::string> old;
  std::vector<std::string> columns;  // all, in order
  bool whole() const { return old.empty(); }
  std::string Quoted() const { return sql::QuoteIdent(schema) + "." + sql::QuoteIdent(relation); }
};

// One role's direct grants of one privilege on one relation.
struct Grants {
  std::optional<bool> table;             // table-level grant (its grant option)
  std::map<std::string, bool> columns;   // column -> grant option
};

std::string Option(bool grantable) { return grantable ? " WITH GRANT OPTION" : ""; }

std::string ColumnList(const std::vector<std::string>& cols) {
  std::string out;
  for (const auto& c : cols) out += (out.empty() ? "" : ", ") + sql::QuoteIdent(c);
  return out;
}

std::string InList(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ", ") + sql::QuoteLiteral(v);
  return out;
}

Status Restore(db::Connection& conn, StateStore& store, const std::string& name, const std::string& actor,
               const Json& started, const std::string& outcome) {
  auto failed = RunEach(conn, started.value("restores", std::vector<std::string>()));
  Json details = {{"outcome", outcome}, {"restore_failures", failed}};
  if (!failed.empty()) {
    return Internal("the brownout's privileges could not all be restored (the next `sluice audit`, `complete` or "
                    "`rollback` tries again): " + failed.front());
  }
  return store.AddEvent(name, "audit.brownout.ended", actor, "brownout ended: " + outcome + "; privileges restored",
                        details.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

Result<std::string> RestoreBrownout(db::Connection& conn, StateStore& store, const std::string& name,
                                    const std::string& actor) {
  auto open = OpenBrownout(store, name);
  if (!open) return std::string();
  SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, *open, "interrupted (sluice stopped midway)"));
  return fmt::format("restored the privileges an interrupted brownout of role(s) {} revoked ({} statement(s))",
                     InList(open->value("roles", std::vector<std::string>())),
                     open->value("restores", std::vector<std::string>()).size());
}

Status RunBrownout(db::Connection& conn, StateStore& store, const Loaded& l, const BrownoutOptions& options,
                   const audit::Catalog& cat, const std::vector<std::string>& path, const std::string& actor,
                   audit::Report* rep) {
  if (options.roles.empty()) return InvalidArgument("--brownout: name the application role(s) to brown out");
  if (options.seconds <= 0) return InvalidArgument("--seconds: the brownout's length must be positive");
  SLUICE_ASSIGN_OR_RETURN(auto known, conn.Query("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname IN (" +
                                                 InList(options.roles) + ")"));
  std::set<std::string> roles;
  for (const auto& r : known.rows) roles.insert(r[0].text);
  for (const auto& r : options.roles) {
    if (!roles.count(r)) return InvalidArgument("--brownout: no role " + r + " on this server");
  }
  // Fail closed: a brownout nobody can see break is not one.
  auto tail = CsvLogTail::Open(conn);
  if (!tail.ok()) return FailedPrecondition("--brownout: refused, it could not see who breaks: " + tail.status().message());
  SLUICE_RETURN_IF_ERROR(tail->SkipToEnd());

  // What is old: the tripwires' list.
  SLUICE_ASSIGN_OR_RETURN(db::Schema before, SchemaFromJson(l.rec.schema_before));
  // A renamed column or table is the physical object the new version's
  // views read, and those views check the caller's privileges
  // (security_invoker): revoking it would break new-version sessions too.
  std::vector<audit::OldObject> objects;
  std::vector<std::string> shared;
  for (auto& o : audit::OldObjects(l.compiled.version, before.name, true)) {
    if (o.fate.rfind("renamed", 0) == 0) {
      shared.push_back(o.Name() + " is not browned out: the new version reads the same physical " + o.kind +
                       " (" + o.fate + " at complete) through views that check the caller's privileges, so a "
                       "revoke would break new-version sessions too; the other sources show its readers");
    } else {
      objects.push_back(std::move(o));
    }
  }
  if (objects.empty()) {
    std::string why;
    for (const auto& s : shared) why += "; " + s;
    return FailedPrecondition("--brownout: nothing here can be browned out without breaking the new version" + why +
                              (shared.empty() ? "" : " (a dropped column or table, or the old version's views, can)"));
  }
  std::map<std::pair<std::string, std::string>, Target> targets;
  const std::string where = OldObjectFilter(objects, false);
  SLUICE_ASSIGN_OR_RETURN(
      auto cols, conn.Query("SELECT n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a JOIN "
                            "pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT "
                            "a.attisdropped AND (" + where + ") ORDER BY 1, 2, a.attnum"));
  for (const auto& row : cols.rows) {
    Target& t = targets[{row[0].text, row[1].text}];
    t.schema = row[0].text;
    t.relation = row[1].text;
    t.columns.push_back(row[2].text);
  }
  for (const auto& o : objects) {
    if (o.kind != "column") continue;
    auto it = targets.find({o.schema, o.table});
    if (it != targets.end()) it->second.old.insert(o.column);
  }
  // A table with an old column and also dropped whole: whole wins.
  for (const auto& o : objects) {
    if (o.kind == "column") continue;
    for (auto& [key, t] : targets) {
      if (key.first == o.schema && (o.table.empty() || key.second == o.table)) t.old.clear();
    }
  }

  // The roles' direct grants from each relation's owner, table-level and
  // per column.
  const std::string rel_filter = "(" + where + ") AND r.rolname IN (" + InList(options.roles) + ")";
  SLUICE_ASSIGN_OR_RETURN(
      auto acl, conn.Query("SELECT n.nspname, c.relname, r.rolname, x.privilege_type, x.is_grantable, '' FROM "
                           "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace CROSS "
                           "JOIN LATERAL pg_catalog.aclexplode(c.relacl) x JOIN pg_catalog.pg_roles r ON r.oid = "
                           "x.grantee WHERE x.grantor = c.relowner AND " + rel_filter +
                           " UNION ALL SELECT n.nspname, c.relname, r.rolname, x.privilege_type, x.is_grantable, "
                           "a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = "
                           "a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL "
                           "pg_catalog.aclexplode(a.attacl) x JOIN pg_catalog.pg_roles r ON r.oid = x.grantee WHERE "
                           "a.attnum > 0 AND NOT a.attisdropped AND x.grantor = c.relowner AND " + rel_filter +
                           " ORDER BY 1, 2, 3, 4, 6"));
  // (relation, role, privilege) -> grants
  std::map<std::tuple<std::string, std::string, std::string, std::string>, Grants> grants;
  for (const auto& row : acl.rows) {
    Grants& g = grants[{row[0].text, row[1].text, row[2].text, row[3].text}];
    const bool option = row[4].text == "t" || row[4].text == "true";
    if (row[5].text.empty()) {
      g.table = option;
    } else {
      g.columns[row[5].text] = option;
    }
  }
  std::vector<std::string> revokes, restores;
  for (const auto& [key, g] : grants) {
    const auto& [schema, relation, role, priv] = key;
    auto t = targets.find({schema, relation});
    if (t == targets.end()) continue;
    const Target& target = t->second;
    static const std::set<std::string> kColumnPrivileges = {"SELECT", "INSERT", "UPDATE", "REFERENCES"};
    if (!target.whole()) {
      if (!kColumnPrivileges.count(priv)) continue;  // DELETE, TRIGGER, ...: no column to lose
      bool touches = g.table.has_value();
      for (const auto& [col, option] : g.columns) touches = touches || target.old.count(col);
      if (!touches) continue;
    }
    const std::string on = " ON " + target.Quoted(), qrole = sql::QuoteIdent(role);
    revokes.push_back("REVOKE " + priv + on + " FROM " + qrole);
    if (!target.whole()) {
      std::vector<std::string> keep;
      for (const auto& c : target.columns) {
        if (!target.old.count(c) && (g.table || g.columns.count(c))) keep.push_back(c);
      }
      if (!keep.empty()) revokes.push_back("GRANT " + priv + " (" + ColumnList(keep) + ")" + on + " TO " + qrole);
    }
    restores.push_back("REVOKE " + priv + on + " FROM " + qrole);
    if (g.table) restores.push_back("GRANT " + priv + on + " TO " + qrole + Option(*g.table));
    for (const auto& [col, option] : g.columns) {
      restores.push_back("GRANT " + priv + " (" + sql::QuoteIdent(col) + ")" + on + " TO " + qrole + Option(option));
    }
  }

  // Recorded before anything changes: a crash from here on is undone by
  // the next command.
  const std::string began = IsoTime(store.clock()->WallMicros());
  const std::string name = l.rec.name;
  Json started = {{"roles", options.roles}, {"seconds", options.seconds}, {"revokes", revokes},
                  {"restores", restores}, {"at", began}};
  SLUICE_RETURN_IF_ERROR(store.AddEvent(name, "audit.brownout.started", actor,
                                        fmt::format("brownout of role(s) {} for {} s: {} privilege change(s)",
                                                    InList(options.roles), options.seconds, revokes.size()),
                                        started.dump(-1, ' ', false, Json::error_handler_t::replace)));
  auto failed = RunEach(conn, revokes);
  if (!failed.empty()) {
    SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, started, "failed to start: " + failed.front()));
    return FailedPrecondition("--brownout: could not revoke (" + failed.front() +
                              "); every privilege is restored. sluice's role must own the relations or be a "
                              "superuser, and the roles must not have passed a grant option on");
  }

  // Would it bite? What a role can still use after the revoke comes from
  // PUBLIC, a role it is a member of, another grantor or superuser.
  std::vector<std::string> gaps = shared;
  std::set<std::string> biting;
  for (const auto& role : options.roles) {
    std::vector<std::string> still;
    for (const auto& [key, t] : targets) {
      const std::vector<std::string> check = t.whole() ? t.columns : std::vector<std::string>(t.old.begin(), t.old.end());
      for (const auto& col : check) {
        auto r = conn.Query("SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) p WHERE "
                            "pg_catalog.has_column_privilege($1, $2::regclass, $3, p)",
                            {Value::Text(role), Value::Text(t.Quoted()), Value::Text(col)});
        if (!r.ok()) {
          SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, started, "failed: " + r.status().message()));
          return r.status();
        }
        for (const auto& p : r->rows) still.push_back(p[0].text + " on " + t.schema + "." + t.relation + "." + col);
      }
    }
    if (still.empty()) {
      biting.insert(role);
      continue;
    }
    std::string list;
    for (size_t i = 0; i < still.size() && i < 4; ++i) list += (i ? ", " : "") + still[i];
    if (still.size() > 4) list += fmt::format(" and {} more", still.size() - 4);
    gaps.push_back("the brownout would not bite for role " + role + ": it still has " + list +
                   " through PUBLIC, a role it is a member of, another grantor or superuser (revoke it there, or "
                   "brown out that role)");
  }

  // Watch the log for the roles' permission errors on the relations.
  std::vector<Json> hits;
  std::string outcome;
  const int64_t deadline = store.clock()->NowMicros() + options.seconds * 1'000'000;
  auto db = conn.Query("SELECT current_database()");
  const std::string database = db.ok() && !db->rows.empty() ? db->rows[0][0].text : "";
  while (!biting.empty()) {
    auto records = tail->Next();
    if (!records.ok()) {
      SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, started, "failed: " + records.status().message()));
      return records.status();
    }
    std::vector<std::vector<std::string>> found;
    for (auto& r : *records) {
      if (r.size() <= kLogApplication || r[kLogSqlState] != "42501" || !biting.count(r[kLogUser])) continue;
      if (r[kLogDatabase] != database) continue;
      for (const auto& [key, t] : targets) {
        if (r[kLogMessage].find(" " + t.relation) != std::string::npos) {
          found.push_back(r);
          break;
        }
      }
    }
    if (!found.empty()) {
      // The first permission error: restore at once, then report.
      std::string who = found.front()[kLogUser];
      outcome = "hit by role " + who + " (application_name " + found.front()[kLogApplication] + ")";
      SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, started, outcome));
      std::vector<std::string> times;
      for (const auto& r : found) times.push_back(r[kLogTime]);
      auto at = LogTimesToUtc(conn, times);
      for (size_t i = 0; i < found.size(); ++i) {
        const auto& r = found[i];
        const std::string statement = r[kLogQuery].empty() ? r[kLogMessage] : r[kLogQuery];
        std::string schema = before.name, relation;
        for (const auto& [key, t] : targets) {
          if (r[kLogMessage].find(" " + t.relation) != std::string::npos) std::tie(schema, relation) = key;
        }
        for (const auto& touch : TouchesOfLogged(statement, schema, relation, "read", cat, path, rep->objects)) {
          audit::Finding f;
          f.source = "brownout";
          f.object = touch.object;
          f.via = touch.via;
          f.kinds = touch.kinds;
          f.role = r[kLogUser];
          f.application = r[kLogApplication];
          f.client = r[kLogClient].empty() ? "local" : r[kLogClient];
          f.statement = statement.size() > 2000 ? statement.substr(0, 2000) + "..." : statement;
          f.calls = 1;
          f.first_seen = f.last_seen = at.ok() ? (*at)[i] : r[kLogTime];
          rep->findings.push_back(std::move(f));
        }
      }
      break;
    }
    if (options.cancel && options.cancel->load()) {
      outcome = "interrupted (Ctrl-C / SIGTERM)";
      break;
    }
    if (store.clock()->NowMicros() >= deadline) {
      outcome = fmt::format("ran its {} s without a permission error", options.seconds);
      break;
    }
    store.clock()->SleepMicros(std::min<int64_t>(200'000, std::max<int64_t>(deadline - store.clock()->NowMicros(), 1)));
  }
  if (biting.empty()) outcome = "would not bite for any role";
  const bool hit = outcome.rfind("hit by", 0) == 0;
  if (!hit) SLUICE_RETURN_IF_ERROR(Restore(conn, store, name, actor, started, outcome));
  const std::string ended = IsoTime(store.clock()->WallMicros());
  audit::Coverage c{"brownout", true, false,
                    fmt::format("role(s) {} lost the old objects from {} to {} ({} privilege change(s)): {}",
                                InList(options.roles), began, ended, revokes.size(), outcome),
                    gaps};
  if (revokes.empty()) c.gaps.push_back("the roles held no direct grant on the old objects: nothing was revoked");
  rep->coverage.push_back(std::move(c));
  return Status::Ok();
}

}  // namespace sluice::engine
