#include "engine/preflight.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include "backfill/key.h"
#include "common/sql_text.h"

namespace sluice::engine {
namespace {

using backfill::Key;

std::string Join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string QuoteList(const std::vector<std::string>& names) {
  std::vector<std::string> q;
  for (const auto& n : names) q.push_back("'" + n + "'");
  return Join(q);
}

// --- the table's own triggers ---------------------------------------------------

// The names a trigger's text (its definition, its function's source) may
// mention, lower-cased, plus "*" when it uses NEW or OLD as a whole row
// (to_jsonb(NEW), NEW := ..., NEW.*), which may read or write any column.
//
// Deliberately a superset, not a reading of the SQL: it matches
// identifiers ASCII-case-insensitively and looks inside string literals too
// (dynamic SQL in EXECUTE '...'); only comments are skipped. A false match
// refuses a trigger that would have been fine, never the other way round.
// (A function's source is PL/pgSQL or another language, which the
// database's expression parser cannot read; Dialect::ColumnsRead is for
// expressions.)
std::set<std::string> MayName(std::string_view text, int depth = 0) {
  std::set<std::string> out;
  const auto toks = sql::Tokenize(text);
  for (size_t i = 0; i < toks.size(); ++i) {
    const auto& t = toks[i];
    if (t.kind == sql::Token::Kind::kString) {
      if (depth < 4) {
        for (auto& n : MayName(t.text, depth + 1)) out.insert(n);
      }
      continue;
    }
    if (t.kind != sql::Token::Kind::kIdent && t.kind != sql::Token::Kind::kQuotedIdent) continue;
    const std::string l = sql::Lower(t.text);
    out.insert(l);
    if (t.kind == sql::Token::Kind::kIdent && (l == "new" || l == "old")) {
      bool field = i + 2 < toks.size() && toks[i + 1].text == "." && toks[i + 2].text != "*";
      bool returned = i > 0 && toks[i - 1].kind == sql::Token::Kind::kIdent && sql::Lower(toks[i - 1].text) == "return";
      if (!field && !returned) out.insert("*");
    }
  }
  return out;
}

// The part of a trigger that runs: its function's source (PostgreSQL), or
// the body after BEGIN (SQLite keeps the whole CREATE TRIGGER text).
std::string TriggerBody(const db::TriggerInfo& t) {
  if (!t.function.empty()) return t.function_source;
  auto toks = sql::Tokenize(t.definition);
  for (const auto& k : toks) {
    if (k.kind == sql::Token::Kind::kIdent && sql::Lower(k.text) == "begin") return t.definition.substr(k.pos);
  }
  return t.definition;
}

// Columns of `m` whose meaning the migration changes: old columns the new
// version reads elsewhere or not at all (copied, renamed, dropped), the new
// names, and the new columns `up` fills.
std::set<std::string> ChangedColumns(const db::TableMapping& m) {
  std::set<std::string> out;
  for (const auto& oc : m.old_columns) {
    bool same = false;
    for (const auto& c : m.columns) same = same || (c.physical == oc && c.logical == oc);
    if (!same) out.insert(oc);
  }
  for (const auto& c : m.columns) {
    if (c.logical != c.physical) {
      out.insert(c.logical);
      out.insert(c.physical);
    }
  }
  for (const auto& f : m.forward) out.insert(f.target);
  for (const auto& b : m.backward) out.insert(b.target);
  return out;
}

// Old columns that no longer exist under their name after complete
// (renamed or dropped).
std::set<std::string> GoneAfterComplete(const db::TableMapping& m) {
  std::set<std::string> out;
  for (const auto& oc : m.old_columns) {
    bool kept = false;
    for (const auto& c : m.columns) kept = kept || c.logical == oc;
    if (!kept) out.insert(oc);
  }
  return out;
}

// The changed columns a trigger may name ("every column" for a whole-row use).
std::vector<std::string> Named(const std::set<std::string>& may_name, const std::set<std::string>& columns) {
  std::vector<std::string> out;
  for (const auto& c : columns) {
    if (may_name.count(sql::Lower(c))) out.push_back(c);
  }
  if (out.empty() && may_name.count("*") && !columns.empty()) out.push_back("(the whole row: NEW/OLD)");
  return out;
}

std::string Describe(const db::TriggerInfo& t, const std::string& table) {
  std::vector<std::string> ev(t.events.begin(), t.events.end());
  std::string s = "trigger '" + t.name + "' on " + table + " (" + t.timing + " " + Join(ev, "/") +
                  (t.update_columns.empty() ? "" : " OF " + Join(t.update_columns)) +
                  (t.row_level ? " FOR EACH ROW" : " FOR EACH STATEMENT");
  if (!t.function.empty()) s += ", function " + t.function;
  return s + ")";
}

bool Enabled(const db::TriggerInfo& t) { return t.enabled != "D"; }

}  // namespace

TriggerFindings CheckUserTriggers(const plan::Plan& p, const db::Schema& schema, const db::Dialect& d,
                                  const CompiledMigration& c) {
  TriggerFindings out;
  const bool fire = p.backfill.fire_triggers;
  const bool can_suppress = !d.SuppressUserTriggersSql().empty();
  const std::string option = "backfill: {fire_triggers: true}";
  for (const auto& m : c.version.tables) {
    if (m.created || !m.has_dual_write()) continue;
    const db::TableInfo* info = schema.FindTable(m.physical);
    if (!info || info->triggers.empty()) continue;
    const std::set<std::string> changed = ChangedColumns(m);
    const std::set<std::string> gone = GoneAfterComplete(m);
    // What sluice's own writes set: the backfill and (SQLite) the dual-write's UPDATE.
    std::set<std::string> sluice_sets;
    for (const auto& f : m.forward) sluice_sets.insert(f.target);
    if (!m.write_flag.empty()) sluice_sets.insert(m.write_flag);
    std::vector<std::string> fired;  // triggers sluice's own writes would fire
    std::vector<std::string> unstoppable;
    for (const auto& t : info->triggers) {
      if (!Enabled(t)) continue;
      const bool row_write = t.row_level && (t.fires_on("INSERT") || t.fires_on("UPDATE"));
      const std::set<std::string> names = MayName(t.definition + "\n" + TriggerBody(t));
      const std::vector<std::string> touched = Named(names, changed);
      if (d.dual_write_updates_rows()) {
        // SQLite: triggers cannot change NEW; one that writes the table's
        // changed columns with a statement of its own is not mirrored by
        // the dual-write of a new-version write (its marker holds the
        // old-version triggers back).
        if (row_write && !touched.empty() && MayName(TriggerBody(t)).count(sql::Lower(m.physical))) {
          out.refusals.push_back(
              {StatusCode::kFailedPrecondition,
               Describe(t, m.physical) + " writes table " + m.physical + " and names column(s) " +
                   QuoteList(touched) + ", which this migration changes: sluice cannot mirror what it changes into "
                   "the other version. Drop or rewrite the trigger before starting this migration, or change those "
                   "columns in a migration of their own"});
          continue;
        }
      } else if (t.timing == "BEFORE" && row_write) {
        // PostgreSQL fires BEFORE row triggers of one event in name order;
        // the dual-write's come last only if nobody sorts after them.
        bool refused = false;
        for (const char* event : {"INSERT", "UPDATE"}) {
          const std::string ours = d.DualWriteTriggerName(c.name, event);
          if (ours.empty() || !t.fires_on(event) || t.name <= ours) continue;
          out.refusals.push_back(
              {StatusCode::kFailedPrecondition,
               Describe(t, m.physical) + " fires after sluice's dual-write trigger \"" + ours +
                   "\" (BEFORE triggers fire in the byte order of their names), so what it changes would not "
                   "reach the other version's columns: rename it so that it sorts before \"" + ours +
                   "\" (any name in plain ASCII does)"});
          refused = true;
          break;
        }
        if (!touched.empty()) {
          out.refusals.push_back(
              {StatusCode::kFailedPrecondition,
               Describe(t, m.physical) + " reads or writes column(s) " + QuoteList(touched) +
                   ", which this migration changes: sluice cannot give it the same meaning for writes through the "
                   "new version (it would see or set the old columns while the new version writes the new ones). "
                   "Drop or rewrite the trigger so that it no longer uses them before starting this migration, or "
                   "change those columns in a migration of their own"});
          refused = true;
        }
        if (refused) continue;
      }
      {
        std::vector<std::string> breaks = Named(names, gone);
        if (!breaks.empty() && breaks[0][0] != '(') {
          out.warnings.push_back("warning: " + Describe(t, m.physical) + " names column(s) " + QuoteList(breaks) +
                                 ", which complete renames or drops: change the trigger before `complete`, or it "
                                 "will fail on every write afterwards");
        }
      }
      // Does it fire for sluice's own writes (they set only `sluice_sets`)?
      bool fires = t.fires_on("UPDATE");
      if (fires && !t.update_columns.empty()) {
        fires = std::any_of(t.update_columns.begin(), t.update_columns.end(),
                            [&](const std::string& col) { return sluice_sets.count(col) > 0; });
      }
      if (!fires || m.forward.empty()) continue;
      fired.push_back(t.name);
      if (t.enabled == "A" || t.enabled == "R") unstoppable.push_back(t.name);
    }
    if (fired.empty()) continue;
    const std::string what = "trigger(s) " + QuoteList(fired) + " on " + m.physical;
    const std::string cost =
        d.dual_write_updates_rows()
            ? " would fire for every row the backfill rewrites, and once more for every write through the old "
              "version (sluice's dual-write updates the row again)"
            : " would fire for every row the backfill rewrites (moving timestamps, writing audit rows, ...)";
    if (fire) {
      out.warnings.push_back("warning: " + what + cost + ": accepted by " + option);
      continue;
    }
    if (!can_suppress) {
      out.refusals.push_back(
          {StatusCode::kFailedPrecondition,
           what + cost + ", and this database cannot keep them from firing for sluice's own writes. Set `" + option +
               "` in the plan to accept that (docs/plan-format.md), or make them fire only for the columns they "
               "need (UPDATE OF ...), or drop them for the migration"});
      continue;
    }
    if (!unstoppable.empty()) {
      out.refusals.push_back(
          {StatusCode::kFailedPrecondition,
           "trigger(s) " + QuoteList(unstoppable) + " on " + m.physical + cost +
               ", and they are ENABLE ALWAYS or ENABLE REPLICA, so they fire even where sluice keeps the table's "
               "triggers from firing. Set `" + option + "` in the plan to accept that (docs/plan-format.md), or "
               "ALTER TABLE ... ENABLE TRIGGER them (plain ENABLE) for the migration"});
      continue;
    }
    out.to_suppress.push_back({m.physical, fired});
  }
  return out;
}

void SetBackfillSetup(const db::Dialect& d, const std::set<std::string>& suppressed, CompiledMigration* c) {
  const std::vector<std::string> context = d.ExpressionContextSql(c->version);
  for (auto& task : c->backfill) {
    task.setup_sql = context;
    if (suppressed.count(task.table) && !d.SuppressUserTriggersSql().empty()) {
      task.setup_sql.push_back(d.SuppressUserTriggersSql());
    }
  }
}

// --- the trial of `up` and `down` on real rows -------------------------------------

namespace {

constexpr int kEdgeRows = 50;     // the lowest and the highest keys each
constexpr int kSampleRows = 200;  // plus a random sample

// One read-only transaction, always rolled back; every statement that may
// fail runs under a savepoint so the next one still runs.
class Trial {
 public:
  Trial(db::Connection& conn, const db::Schema& schema, std::vector<Refusal>* refusals,
        std::vector<std::string>* warnings)
      : conn_(conn), d_(conn.dialect()), schema_(schema), refusals_(refusals), warnings_(warnings) {}

  Status Table(const db::TableMapping& m);

 private:
  // Runs `sql` with `params` under a savepoint; the query's rows, or the
  // error after rolling back to the savepoint.
  Result<db::QueryResult> Try(const std::string& sql, const std::vector<db::Value>& params = {}) {
    SLUICE_RETURN_IF_ERROR(conn_.Exec("SAVEPOINT sluice_trial"));
    auto r = conn_.Query(sql, params);
    if (r.ok()) {
      SLUICE_RETURN_IF_ERROR(conn_.Exec("RELEASE SAVEPOINT sluice_trial"));
      return r;
    }
    Status back = conn_.Exec("ROLLBACK TO SAVEPOINT sluice_trial");
    if (!back.ok()) return back;
    conn_.Exec("RELEASE SAVEPOINT sluice_trial").IgnoreError();
    return r.status();
  }

  std::string KeyCols(const db::TableMapping& m, const std::string& prefix = "") const {
    std::string s;
    for (size_t i = 0; i < m.key.size(); ++i) s += (i ? ", " : "") + prefix + d_.Quote(m.key[i]);
    return s;
  }
  // `(k1, k2) IN (($1, $2), ...)` over `keys`.
  std::string KeyIn(const db::TableMapping& m, const std::vector<Key>& keys, std::vector<db::Value>* params) const {
    std::string list;
    for (const auto& k : keys) {
      std::string one;
      for (const auto& v : k) {
        params->push_back(v);
        one += (one.empty() ? "$" : ", $") + std::to_string(params->size());
      }
      list += (list.empty() ? "" : ", ") + (m.key.size() > 1 ? "(" + one + ")" : one);
    }
    const std::string cols = m.key.size() > 1 ? "(" + KeyCols(m) + ")" : KeyCols(m);
    return cols + " IN (" + list + ")";
  }
  std::string ShowKey(const db::TableMapping& m, const Key& k) const {
    return "key (" + Join(m.key) + ") = " + backfill::KeyToDisplay(k);
  }

  std::string TypeOf(const db::TableMapping& m, const std::string& physical) const {
    for (const auto& c : m.columns) {
      if (c.physical == physical) return c.type;
    }
    return {};
  }
  bool NewNotNull(const db::TableMapping& m, const std::string& physical) const {
    for (const auto& c : m.columns) {
      if (c.physical == physical && c.not_null) return true;
    }
    return std::find(m.not_null_guards.begin(), m.not_null_guards.end(), physical) != m.not_null_guards.end();
  }
  const db::ColumnInfo* OldColumn(const db::TableMapping& m, const std::string& name) const {
    const db::TableInfo* t = schema_.FindTable(m.physical);
    return t ? t->FindColumn(name) : nullptr;
  }
  // `up` as the backfill stores it: converted to the column's type.
  std::string Up(const db::TableMapping& m, const db::Forward& f) const {
    const std::string type = TypeOf(m, f.target);
    return type.empty() ? sql::ScalarExpression(f.expr) : d_.AsColumnValue(sql::ScalarExpression(f.expr), type);
  }
  // The new version's row, under its logical names, as a new-version write
  // would first see it: new columns filled by `up`, the others as stored.
  std::string NewRow(const db::TableMapping& m) const {
    std::string row;
    for (size_t i = 0; i < m.columns.size(); ++i) {
      const auto& col = m.columns[i];
      std::string v;
      for (const auto& f : m.forward) {
        if (f.target == col.physical) v = Up(m, f);
      }
      if (v.empty()) {
        v = col.exists_before ? d_.Quote(col.physical)
                              : (col.type.empty() ? "NULL" : "CAST(NULL AS " + col.type + ")");
      }
      row += (i ? ", " : "") + v + " AS " + d_.Quote(col.logical);
    }
    return row;
  }

  // The first of `keys` on which `run` fails, found by halving, with its
  // error; nullopt when no single row reproduces the failure.
  Result<std::optional<std::pair<Key, Status>>> Narrow(
      const std::vector<Key>& keys, const std::function<Result<db::QueryResult>(const std::vector<Key>&)>& run) {
    if (keys.empty()) return std::optional<std::pair<Key, Status>>();
    auto r = run(keys);
    if (r.ok()) return std::optional<std::pair<Key, Status>>();
    if (r.status().code() == StatusCode::kAborted) return r.status();
    if (keys.size() == 1) return std::optional<std::pair<Key, Status>>({keys[0], r.status()});
    const size_t mid = keys.size() / 2;
    std::vector<Key> a(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(mid));
    std::vector<Key> b(keys.begin() + static_cast<std::ptrdiff_t>(mid), keys.end());
    SLUICE_ASSIGN_OR_RETURN(auto first, Narrow(a, run));
    if (first) return first;
    return Narrow(b, run);
  }

  // Runs the per-row check `sql_for(keys, params)` (rows: key columns, then
  // 1 where the value is NULL) over `keys`; records a refusal naming the
  // first failing row, or the first row yielding NULL when `not_null`.
  // False when it refused (the caller skips what depends on it).
  Result<bool> Check(const db::TableMapping& m, const std::vector<Key>& keys, const std::string& what,
                     const std::string& origin, bool not_null, const std::string& null_hint,
                     const std::function<std::string(const std::vector<Key>&, std::vector<db::Value>*)>& sql_for) {
    auto run = [&](const std::vector<Key>& ks) -> Result<db::QueryResult> {
      std::vector<db::Value> params;
      std::string sql = sql_for(ks, &params);
      return Try(sql, params);
    };
    auto all = run(keys);
    if (!all.ok()) {
      const Status& e = all.status();
      if (e.code() == StatusCode::kAborted) return e;
      // A function that writes (nextval) cannot run in the read-only trial.
      if (e.detail() == "SQLSTATE 25006") {
        warnings_->push_back(origin + ": warning: " + what + " was checked against the catalog but not tried on "
                             "rows: it writes (" + e.message() + ")");
        return true;
      }
      SLUICE_ASSIGN_OR_RETURN(auto failing, Narrow(keys, run));
      if (failing) {
        refusals_->push_back({StatusCode::kInvalidPlan, origin + ": " + what + " fails on the row with " +
                                                            ShowKey(m, failing->first) + ": " +
                                                            failing->second.message() + " (nothing was changed)"});
      } else {
        refusals_->push_back({StatusCode::kInvalidPlan, origin + ": " + what + " fails on one of " +
                                                            std::to_string(keys.size()) + " sampled rows of " +
                                                            m.physical + ": " + e.message() +
                                                            " (nothing was changed)"});
      }
      return false;
    }
    if (!not_null) return true;
    const size_t nk = m.key.size();
    for (const auto& row : all->rows) {
      if (row.size() <= nk || row[nk].AsInt() != 1) continue;
      Key k(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(nk));
      refusals_->push_back({StatusCode::kInvalidPlan, origin + ": " + what + " yields NULL on the row with " +
                                                          ShowKey(m, k) + ", but " + null_hint +
                                                          " (nothing was changed)"});
      return false;
    }
    return true;
  }

  db::Connection& conn_;
  const db::Dialect& d_;
  const db::Schema& schema_;
  std::vector<Refusal>* refusals_;
  std::vector<std::string>* warnings_;
};

Status Trial::Table(const db::TableMapping& m) {
  const std::string t = d_.Table(m.physical);
  std::vector<bool> up_ok(m.forward.size(), true), down_ok(m.backward.size(), true);
  // Names and types resolve (this alone covers an empty table).
  for (size_t i = 0; i < m.forward.size(); ++i) {
    const auto& f = m.forward[i];
    auto r = Try("SELECT " + Up(m, f) + " FROM " + t + " WHERE 1 = 0");
    if (!r.ok() && r.status().code() == StatusCode::kAborted) return r.status();
    if (!r.ok()) {
      up_ok[i] = false;
      refusals_->push_back({StatusCode::kInvalidPlan, f.origin + ": 'up' for " + m.physical + "." + f.target +
                                                          " does not work on this database: " + r.status().message()});
    }
  }
  const std::string new_row = NewRow(m);
  const bool ups_resolve = std::all_of(up_ok.begin(), up_ok.end(), [](bool b) { return b; });
  for (size_t i = 0; i < m.backward.size() && ups_resolve; ++i) {
    const auto& b = m.backward[i];
    const db::ColumnInfo* old = OldColumn(m, b.target);
    const std::string down =
        old ? d_.AsColumnValue(sql::ScalarExpression(b.expr), old->type) : sql::ScalarExpression(b.expr);
    auto r = Try("SELECT " + down + " FROM (SELECT " + new_row + " FROM " + t + ") AS sluice_row WHERE 1 = 0");
    if (!r.ok() && r.status().code() == StatusCode::kAborted) return r.status();
    if (!r.ok()) {
      down_ok[i] = false;
      refusals_->push_back({StatusCode::kInvalidPlan,
                            b.origin + ": 'down' for " + m.physical + "." + b.target +
                                " does not work on this database, so every write through the new version would "
                                "fail: " + r.status().message()});
    }
  }
  if (m.key.empty()) {
    warnings_->push_back("warning: table " + m.physical + " has no usable key, so `up`/`down` were not tried on "
                         "its rows");
    return Status::Ok();
  }

  // The rows: the lowest and highest keys and a random sample.
  std::vector<Key> keys;
  std::set<std::string> seen;
  auto add = [&](const db::QueryResult& r) {
    for (const auto& row : r.rows) {
      Key k(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(std::min(row.size(), m.key.size())));
      if (seen.insert(backfill::KeyToJson(k)).second) keys.push_back(std::move(k));
    }
  };
  std::string desc;
  for (size_t i = 0; i < m.key.size(); ++i) desc += (i ? ", " : "") + d_.Quote(m.key[i]) + " DESC";
  for (const std::string& order : {KeyCols(m), desc}) {
    auto r = Try("SELECT " + KeyCols(m) + " FROM " + t + " ORDER BY " + order + " LIMIT " + std::to_string(kEdgeRows));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kAborted) return r.status();
      refusals_->push_back({StatusCode::kFailedPrecondition,
                            "could not read rows of " + m.physical + " to try `up`/`down` on: " + r.status().message()});
      return Status::Ok();
    }
    add(*r);
  }
  const std::string sample = d_.SampleKeysSql(t, m.key, kSampleRows);
  if (!sample.empty()) {
    auto r = Try(sample);
    if (!r.ok() && r.status().code() == StatusCode::kAborted) return r.status();
    if (r.ok()) {
      add(*r);
    } else {
      warnings_->push_back("warning: could not sample rows of " + m.physical + " (" + r.status().message() +
                           "); `up`/`down` were tried on its lowest and highest keys only");
    }
  }
  if (keys.empty()) return Status::Ok();

  // up(row), cast as the backfill stores it; NULL refused for NOT NULL.
  for (size_t i = 0; i < m.forward.size(); ++i) {
    if (!up_ok[i]) continue;
    const auto& f = m.forward[i];
    SLUICE_ASSIGN_OR_RETURN(
        bool ok, Check(m, keys, "'up' for " + m.physical + "." + f.target, f.origin, NewNotNull(m, f.target),
                       "the column is NOT NULL in the new version (make `up` never NULL, e.g. with coalesce)",
                       [&](const std::vector<Key>& ks, std::vector<db::Value>* params) {
                         return "SELECT " + KeyCols(m) + ", CASE WHEN (" + Up(m, f) + ") IS NULL THEN 1 ELSE 0 END "
                                "FROM " + t + " WHERE " + KeyIn(m, ks, params) + " ORDER BY " + KeyCols(m);
                       }));
    up_ok[i] = ok;
  }
  if (!std::all_of(up_ok.begin(), up_ok.end(), [](bool b) { return b; })) return Status::Ok();
  // down(up(row)), cast to the old column's type; NULL refused where the
  // old column is NOT NULL (every new-version write of that row would fail).
  std::string key_alias;
  for (size_t i = 0; i < m.key.size(); ++i) {
    key_alias += (i ? ", " : "") + d_.Quote(m.key[i]) + " AS " + d_.Quote("sluice_key_" + std::to_string(i));
  }
  std::string key_out;
  for (size_t i = 0; i < m.key.size(); ++i) key_out += (i ? ", " : "") + d_.Quote("sluice_key_" + std::to_string(i));
  for (size_t i = 0; i < m.backward.size(); ++i) {
    if (!down_ok[i]) continue;
    const auto& b = m.backward[i];
    const db::ColumnInfo* old = OldColumn(m, b.target);
    const std::string down =
        old ? d_.AsColumnValue(sql::ScalarExpression(b.expr), old->type) : sql::ScalarExpression(b.expr);
    SLUICE_ASSIGN_OR_RETURN(
        bool ok,
        Check(m, keys, "'down' for " + m.physical + "." + b.target + " (over up of the row)", b.origin,
              old && old->not_null, "the old column is NOT NULL, so writes of it through the new version would fail",
              [&](const std::vector<Key>& ks, std::vector<db::Value>* params) {
                return "SELECT " + key_out + ", CASE WHEN (" + down + ") IS NULL THEN 1 ELSE 0 END FROM (SELECT " +
                       key_alias + ", " + new_row + " FROM " + t + " WHERE " + KeyIn(m, ks, params) +
                       ") AS sluice_row ORDER BY " + key_out;
              }));
    (void)ok;
  }
  return Status::Ok();
}

// Views complete recreates on a replaced column must still be valid SQL on
// the new column (a view doing `length(qty)` breaks when qty becomes an
// integer). Complete's own steps are tried on the catalog, in a
// transaction that is always rolled back: the copy is added, the views are
// saved and dropped, the old column is dropped, the copy takes its final
// name, and the views are recreated. Catalog-only changes (no row is
// written), but they take the tables' ACCESS EXCLUSIVE lock for that
// moment, so only tables whose views read a replaced column are touched,
// under a short lock timeout.
constexpr int64_t kViewTrialLockTimeoutMs = 2000;

Status TryDependentViews(db::Connection& conn, const db::Schema& schema, const CompiledMigration& c,
                         std::vector<Refusal>* refusals) {
  const db::Dialect& d = conn.dialect();
  if (!d.recreates_dependent_views()) return Status::Ok();
  std::vector<db::ReplacedColumn> cols;
  for (const auto& st : c.complete) {
    const auto* save = std::get_if<db::SaveDependentViewsStep>(&st.body);
    if (!save) continue;
    for (const auto& col : save->columns) {
      const db::TableInfo* t = schema.FindTable(col.table);
      if (!t) continue;
      const bool viewed = std::any_of(t->dependents.begin(), t->dependents.end(), [&](const db::DependentInfo& dep) {
        return dep.column == col.column && dep.kind == db::DependentInfo::Kind::kView;
      });
      if (viewed) cols.push_back(col);
    }
  }
  if (cols.empty()) return Status::Ok();
  // The copy's type and the operation that makes it, from the new version.
  auto copy_of = [&](const db::ReplacedColumn& col) -> std::pair<std::string, std::string> {
    for (const auto& m : c.version.tables) {
      if (m.physical != col.table) continue;
      std::string type, origin;
      for (const auto& mc : m.columns) {
        if (mc.physical == col.copy) type = mc.type;
      }
      for (const auto& f : m.forward) {
        if (f.target == col.copy) origin = f.origin;
      }
      return {type, origin};
    }
    return {};
  };
  std::vector<std::string> sql;
  std::string origin;
  for (const auto& col : cols) {
    auto [type, from] = copy_of(col);
    if (type.empty()) continue;  // nothing to try it with; complete's own check stands
    if (origin.empty()) origin = from;
    sql.push_back("ALTER TABLE " + d.Table(col.table) + " ADD COLUMN " + d.Quote(col.copy) + " " + type);
  }
  if (sql.empty()) return Status::Ok();
  for (const auto& s : d.Render({db::SaveDependentViewsStep{cols}, "trial"})) sql.push_back(s.sql);
  std::set<std::string> renamed;
  for (const auto& col : cols) {
    // CASCADE: what else goes with the old column is complete's business
    // (planned or refused elsewhere); only the views are tried here.
    sql.push_back("ALTER TABLE " + d.Table(col.table) + " DROP COLUMN " + d.Quote(col.column) + " CASCADE");
    if (col.final_name != col.copy) {
      sql.push_back("ALTER TABLE " + d.Table(col.table) + " RENAME COLUMN " + d.Quote(col.copy) + " TO " +
                    d.Quote(col.final_name));
    }
  }
  for (const auto& col : cols) {
    if (col.final_table != col.table && renamed.insert(col.table).second) {
      sql.push_back("ALTER TABLE " + d.Table(col.table) + " RENAME TO " + d.Quote(col.final_table));
    }
  }
  for (const auto& s : d.Render({db::RestoreDependentViewsStep{}, "trial"})) sql.push_back(s.sql);

  SLUICE_RETURN_IF_ERROR(conn.Begin());
  Status s = [&]() -> Status {
    const std::string timeout = d.LockTimeoutSql(kViewTrialLockTimeoutMs);
    if (!timeout.empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(timeout));
    for (const auto& q : sql) SLUICE_RETURN_IF_ERROR(conn.Exec(q));
    return Status::Ok();
  }();
  conn.Rollback().IgnoreError();
  if (s.ok()) return Status::Ok();
  if (s.code() == StatusCode::kAborted) {
    refusals->push_back({StatusCode::kAborted, "could not try recreating the views that read the columns this "
                                               "migration replaces (" + s.message() + "); nothing was changed, "
                                               "retry"});
    return Status::Ok();
  }
  refusals->push_back({StatusCode::kInvalidPlan,
                       (origin.empty() ? std::string() : origin + ": ") +
                           "complete recreates the views that read the replaced column(s) on the new ones, and "
                           "that fails: " + s.message() +
                           ". Change or drop the view before this migration (nothing was changed)"});
  return Status::Ok();
}

}  // namespace

Status Preflight(db::Connection& conn, const plan::Plan& p, const db::Schema& schema, CompiledMigration* c,
                 std::vector<std::string>* warnings) {
  const db::Dialect& d = conn.dialect();
  TriggerFindings tf = CheckUserTriggers(p, schema, d, *c);
  std::vector<Refusal> refusals = std::move(tf.refusals);
  for (auto& w : tf.warnings) warnings->push_back(std::move(w));
  std::set<std::string> suppressed;

  // `up` may name what the plan's own `sql` operations create (a type, a
  // function): those run first, in this transaction that is rolled back.
  std::vector<std::string> raw;
  for (const auto& st : c->start) {
    if (const auto* r = std::get_if<db::RawSqlStep>(&st.body)) raw.push_back(r->sql);
  }
  SLUICE_RETURN_IF_ERROR(raw.empty() ? conn.BeginSnapshot() : conn.Begin());
  Status s = [&]() -> Status {
    for (const auto& sql : raw) {
      SLUICE_RETURN_IF_ERROR(conn.Exec("SAVEPOINT sluice_raw"));
      Status r = conn.Exec(sql);
      if (r.code() == StatusCode::kAborted) return r;
      if (!r.ok()) {
        SLUICE_RETURN_IF_ERROR(conn.Exec("ROLLBACK TO SAVEPOINT sluice_raw"));
        warnings->push_back("warning: the trial of `up`/`down` ran without a `sql` operation of the plan, which "
                            "cannot run inside a transaction here (" + r.message() + "); expressions naming what "
                            "it creates may be refused");
      }
      SLUICE_RETURN_IF_ERROR(conn.Exec("RELEASE SAVEPOINT sluice_raw"));
    }
    if (!raw.empty() && !d.ReadOnlyFromHereSql().empty()) SLUICE_RETURN_IF_ERROR(conn.Exec(d.ReadOnlyFromHereSql()));
    for (const auto& sql : d.ExpressionContextSql(c->version)) SLUICE_RETURN_IF_ERROR(conn.Exec(sql));
    if (!tf.to_suppress.empty()) {
      // May this session keep the triggers from firing? Tried, not guessed.
      const std::string suppress = d.SuppressUserTriggersSql();
      SLUICE_RETURN_IF_ERROR(conn.Exec("SAVEPOINT sluice_probe"));
      Status probe = conn.Exec(suppress);
      SLUICE_RETURN_IF_ERROR(conn.Exec("ROLLBACK TO SAVEPOINT sluice_probe"));
      if (probe.code() == StatusCode::kAborted) return probe;
      for (const auto& [table, triggers] : tf.to_suppress) {
        if (probe.ok()) {
          suppressed.insert(table);
          continue;
        }
        refusals.push_back(
            {StatusCode::kFailedPrecondition,
             "trigger(s) " + QuoteList(triggers) + " on " + table + " would fire for every row the backfill "
             "rewrites; sluice keeps them from firing with `" + suppress + "`, which this role may not run (" +
             probe.message() + "). Let the role set it (PostgreSQL 15: GRANT SET ON PARAMETER "
             "session_replication_role TO <role>, run by a superuser), run sluice as a role that may, or set "
             "`backfill: {fire_triggers: true}` in the plan to let the backfill fire them (docs/plan-format.md)"});
      }
    }
    Trial trial(conn, schema, &refusals, warnings);
    for (const auto& m : c->version.tables) {
      if (m.created || !m.has_dual_write()) continue;
      SLUICE_RETURN_IF_ERROR(trial.Table(m));
    }
    return Status::Ok();
  }();
  conn.Rollback().IgnoreError();
  SLUICE_RETURN_IF_ERROR(s);
  SLUICE_RETURN_IF_ERROR(TryDependentViews(conn, schema, *c, &refusals));
  SetBackfillSetup(d, suppressed, c);
  if (refusals.empty()) return Status::Ok();
  std::string msg;
  for (const auto& r : refusals) msg += (msg.empty() ? "" : "\n") + r.message;
  return Status(refusals[0].code, msg);
}

}  // namespace sluice::engine
