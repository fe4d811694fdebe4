// `sluice diff`: one table compared across two databases by portable chunk
// checksums and bisection. See docs/verification.md#sluice-diff.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "common/clock.h"
#include "verify/compare.h"
#include "verify/verify.h"

namespace sluice::verify {

std::string DiffReport::ToJson() const {
  nlohmann::json j = {{"table", table},
                      {"source", source},
                      {"target", target},
                      {"at", at},
                      {"key", key},
                      {"columns", columns},
                      {"same", same},
                      {"source_rows", source_rows},
                      {"target_rows", target_rows},
                      {"chunks", chunks},
                      {"differing_chunks", differing_chunks},
                      {"chunk_queries", chunk_queries},
                      {"bisect_queries", bisect_queries},
                      {"key_queries", key_queries},
                      {"differences", differences},
                      {"truncated", truncated},
                      {"evidence", evidence},
                      {"notes", notes}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// True when a constraint of `t` makes `key` unique: the primary key or a
// valid, non-partial unique index whose columns are all among the key's.
bool UniqueByConstraint(const db::TableInfo& t, const std::vector<std::string>& key) {
  auto within = [&](const std::vector<std::string>& cols) {
    return !cols.empty() && std::all_of(cols.begin(), cols.end(), [&](const std::string& c) {
      return !c.empty() && std::find(key.begin(), key.end(), c) != key.end();
    });
  };
  if (within(t.primary_key)) return true;
  for (const auto& idx : t.indexes) {
    if (idx.unique && idx.valid && !idx.partial && within(idx.columns)) return true;
  }
  return false;
}

// The key must identify one row on this side, or bisection cannot narrow a
// range and rows sharing a key cannot be told apart: no NULL in a key
// column (a NULL key falls outside every range), and no two rows with the
// same key (in the bytewise order the comparison uses). Refused with the
// offending key value; nothing is compared.
Status CheckKey(const Side& s, const db::TableInfo& t, const std::vector<std::string>& key_names,
                const std::string& where, const std::atomic<bool>* cancel) {
  const std::string key_list = "(" + Join(key_names) + ")";
  std::vector<std::string> nullable;
  for (size_t i = 0; i < key_names.size(); ++i) {
    const db::ColumnInfo* c = t.FindColumn(key_names[i]);
    if (!c || !c->not_null) nullable.push_back(s.key_out[i] + " IS NULL");
  }
  if (!nullable.empty()) {
    if (cancel && cancel->load()) return Cancelled("diff cancelled");
    auto r = s.conn->Query("SELECT " + Join(s.key_out) + " FROM " + s.rel + " WHERE " + Join(nullable, " OR ") +
                           " LIMIT 1");
    if (!r.ok()) return r.status().WithContext("checking the key " + key_list + " in the " + where);
    if (!r->rows.empty()) {
      return InvalidArgument("the key " + key_list + " is NULL in a row of the " + where + " (key " +
                             KeyText(r->rows[0]) + "); diff needs a key that is never NULL: pass --key with "
                             "NOT NULL columns that identify a row");
    }
  }
  if (UniqueByConstraint(t, key_names)) return Status::Ok();
  if (cancel && cancel->load()) return Cancelled("diff cancelled");
  std::string positions;
  for (size_t i = 0; i < s.key.size(); ++i) positions += (i ? ", " : "") + std::to_string(i + 1);
  auto r = s.conn->Query("SELECT " + Join(s.key) + ", count(*) FROM " + s.rel + " GROUP BY " + positions +
                         " HAVING count(*) > 1 LIMIT 1");
  if (!r.ok()) return r.status().WithContext("checking that the key " + key_list + " is unique in the " + where);
  if (!r->rows.empty()) {
    const auto& row = r->rows[0];
    Key dup(row.begin(), row.begin() + static_cast<long>(s.key.size()));
    return InvalidArgument("the key " + key_list + " is not unique in the " + where + ": key " + KeyText(dup) +
                           " is in " + row.back().text + " rows; diff needs a key that identifies one row on each "
                           "side: pass --key with the columns of a primary key or unique index");
  }
  return Status::Ok();
}

bool IsBinaryType(const std::string& type) {
  std::string t;
  for (char c : type) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t == "bytea" || t.find("blob") != std::string::npos;
}

}  // namespace

Result<DiffReport> Diff(db::Connection& source, db::Connection& target, const DiffSpec& spec) {
  DiffReport rep;
  rep.table = spec.table;
  rep.source = source.Describe();
  rep.target = target.Describe();
  rep.at = NowIso();
  const db::Dialect& ds = source.dialect();
  const db::Dialect& dt = target.dialect();
  if (ds.PortableRowHash({"''"}).empty() || dt.PortableRowHash({"''"}).empty()) {
    return FailedPrecondition("one of the databases cannot compute portable row hashes");
  }
  SLUICE_ASSIGN_OR_RETURN(db::Schema ss, source.Introspect());
  SLUICE_ASSIGN_OR_RETURN(db::Schema ts, target.Introspect());
  const db::TableInfo* st = ss.FindTable(spec.table);
  if (!st) return NotFound("table " + spec.table + " does not exist in the source (" + rep.source + ")");
  const db::TableInfo* tt = ts.FindTable(spec.table);
  if (!tt) return NotFound("table " + spec.table + " does not exist in the target (" + rep.target + ")");
  rep.key = spec.key.empty() ? st->UsableKey() : spec.key;
  if (rep.key.empty()) {
    return InvalidArgument("table " + spec.table + " has no primary key or unique NOT NULL index; name one with --key");
  }
  for (const auto& k : rep.key) {
    if (!st->FindColumn(k)) return InvalidArgument("key column " + k + " is not in the source table");
    if (!tt->FindColumn(k)) return InvalidArgument("key column " + k + " is not in the target table");
    if (std::count(rep.key.begin(), rep.key.end(), k) > 1) return InvalidArgument("key column " + k + " is named twice");
    // A key value read on one side is bound into the other side's range
    // predicates; binary values have no representation both accept.
    if (ds.name() != dt.name() && (IsBinaryType(st->FindColumn(k)->type) || IsBinaryType(tt->FindColumn(k)->type))) {
      return InvalidArgument("key column " + k + " is binary; diff between " + std::string(ds.name()) + " and " +
                             std::string(dt.name()) + " cannot walk binary keys: pass --key with other columns");
    }
  }
  Side a, b;
  a.conn = &source;
  b.conn = &target;
  a.label = "source";
  b.label = "target";
  a.rel = ds.Table(spec.table);
  b.rel = dt.Table(spec.table);
  // Both databases walk the key in bytewise order, so a key range selects
  // the same rows on each side; keys are matched by their canonical text.
  for (const auto& k : rep.key) {
    const std::string& stype = st->FindColumn(k)->type;
    const std::string& ttype = tt->FindColumn(k)->type;
    a.key.push_back(ds.BinaryOrder(ds.Quote(k), stype));
    b.key.push_back(dt.BinaryOrder(dt.Quote(k), ttype));
    a.key_out.push_back(ds.Quote(k));
    b.key_out.push_back(dt.Quote(k));
    a.key_match.push_back(ds.CanonicalText(ds.Quote(k), stype));
    b.key_match.push_back(dt.CanonicalText(dt.Quote(k), ttype));
  }
  std::vector<std::string> hashed_a, hashed_b;
  for (const auto& col : st->columns) {
    const db::ColumnInfo* tc = tt->FindColumn(col.name);
    if (!tc) {
      rep.same = false;
      rep.notes.push_back("column " + col.name + " is only in the source");
      rep.evidence.push_back("column " + col.name + " is only in the source");
      continue;
    }
    rep.columns.push_back(col.name);
    a.values.push_back(ds.CanonicalText(ds.Quote(col.name), col.type));
    b.values.push_back(dt.CanonicalText(dt.Quote(col.name), tc->type));
  }
  for (const auto& col : tt->columns) {
    if (!st->FindColumn(col.name)) {
      rep.same = false;
      rep.notes.push_back("column " + col.name + " is only in the target");
      rep.evidence.push_back("column " + col.name + " is only in the target");
    }
  }
  a.hash = ds.PortableRowHash(a.values);
  b.hash = dt.PortableRowHash(b.values);
  rep.notes.push_back("values compared in canonical text form (see docs/verification.md); keys ordered bytewise");
  SLUICE_RETURN_IF_ERROR(source.BeginSnapshot());
  Status s = target.BeginSnapshot();
  if (!s.ok()) {
    source.Rollback().IgnoreError();
    return s;
  }
  s = CheckKey(a, *st, rep.key, "source (" + rep.source + ")", spec.cancel);
  if (s.ok()) s = CheckKey(b, *tt, rep.key, "target (" + rep.target + ")", spec.cancel);
  Outcome o;
  if (s.ok()) {
    Comparer cmp(a, b, rep.columns, spec.chunk_rows, spec.leaf_rows, spec.max_reported, spec.cancel);
    s = cmp.Run(&o);
  }
  source.Rollback().IgnoreError();
  target.Rollback().IgnoreError();
  SLUICE_RETURN_IF_ERROR(s);
  rep.source_rows = o.rows_a;
  rep.target_rows = o.rows_b;
  rep.chunks = o.chunks;
  rep.differing_chunks = o.differing_chunks;
  rep.chunk_queries = o.chunk_queries();
  rep.bisect_queries = o.bisect_queries;
  rep.key_queries = o.key_queries;
  rep.differences = o.differences;
  rep.truncated = o.truncated;
  if (o.differing_chunks > 0) rep.same = false;
  for (auto& e : o.evidence) {
    if (static_cast<int64_t>(rep.evidence.size()) < std::max<int64_t>(spec.max_reported, 1) + 4) {
      rep.evidence.push_back(std::move(e));
    }
  }
  return rep;
}

}  // namespace sluice::verify
