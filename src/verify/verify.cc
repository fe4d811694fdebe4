#include "verify/verify.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "backfill/key.h"
#include "common/clock.h"
#include "common/sql_text.h"

namespace sluice::verify {

namespace {

nlohmann::json CheckJson(const Check& c) {
  nlohmann::json m = nlohmann::json::object();
  for (const auto& [k, v] : c.metrics) m[k] = v;
  return {{"name", c.name},       {"table", c.table},       {"column", c.column},     {"passed", c.passed},
          {"skipped", c.skipped}, {"summary", c.summary},   {"evidence", c.evidence}, {"checked", c.checked},
          {"failures", c.failures}, {"metrics", m}};
}

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

std::string Report::ToJson() const {
  nlohmann::json j;
  j["migration"] = migration;
  j["at"] = at;
  j["passed"] = passed;
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) j["checks"].push_back(CheckJson(c));
  return Dump(j);
}

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
  return Dump(j);
}

namespace {

using Key = std::vector<db::Value>;
using Bound = std::optional<Key>;

// True for "12", "-3", "12.50": PostgreSQL returns every value as text,
// so numbers are recognised by their form for display.
bool LooksNumeric(const std::string& s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  size_t digits = 0, dots = 0;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      ++digits;
    } else if (s[i] == '.') {
      ++dots;
    } else {
      return false;
    }
  }
  return digits > 0 && dots <= 1 && s.size() < 40 && !(s.size() > 1 && s[0] == '0' && s[1] != '.');
}

std::string Show(const db::Value& v) {
  if (v.is_null()) return "NULL";
  if (v.type == db::Value::Type::kText) return LooksNumeric(v.text) ? v.text : sql::QuoteLiteral(v.text);
  if (v.type == db::Value::Type::kBlob) {
    static const char* kHex = "0123456789abcdef";
    std::string s = "x'";
    for (unsigned char c : v.text) {
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
    return s + "'";
  }
  return v.text;
}

std::string CanonDouble(double d) {
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  char buf[64];
  for (int prec = 15; prec <= 17; ++prec) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

// A value's comparison form: numbers independent of storage class (1250,
// 1250.0 and "1250.00" agree), NULL distinct from every text.
std::string Norm(const db::Value& v) {
  switch (v.type) {
    case db::Value::Type::kNull: return std::string("\x01NULL", 5);
    case db::Value::Type::kInt: return v.text;
    case db::Value::Type::kReal: return CanonDouble(std::strtod(v.text.c_str(), nullptr));
    case db::Value::Type::kBlob: return "\x02" + v.text;
    case db::Value::Type::kText: {
      // A plain decimal number: drop trailing fraction zeros ("12.50" ->
      // "12.5", "3.0" -> "3"), as numeric and integer renderings differ.
      const std::string& s = v.text;
      size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
      size_t digits = 0, dot = std::string::npos;
      for (size_t k = i; k < s.size(); ++k) {
        if (s[k] >= '0' && s[k] <= '9') {
          ++digits;
        } else if (s[k] == '.' && dot == std::string::npos) {
          dot = k;
        } else {
          return s;
        }
      }
      if (digits == 0 || dot == std::string::npos) return s;
      std::string t = s;
      while (t.back() == '0') t.pop_back();
      if (t.back() == '.') t.pop_back();
      return t;
    }
  }
  return v.text;
}

std::string KeyText(const std::vector<db::Value>& k) {
  std::string s = "(";
  for (size_t i = 0; i < k.size(); ++i) s += (i ? ", " : "") + Show(k[i]);
  return s + ")";
}

std::string NormKey(const Key& k) {
  std::string s;
  for (const auto& v : k) s += Norm(v) + '\x1f';
  return s;
}

// `(a, b) op ($n, $n+1)` over SQL expressions.
std::string Compare(const std::vector<std::string>& exprs, const char* op, int first) {
  if (exprs.size() == 1) return exprs[0] + " " + op + " $" + std::to_string(first);
  std::string l, r;
  for (size_t i = 0; i < exprs.size(); ++i) {
    l += (i ? ", " : "") + exprs[i];
    r += (i ? ", $" : "$") + std::to_string(first + static_cast<int>(i));
  }
  return "(" + l + ") " + op + " (" + r + ")";
}

std::string Join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// `e1 AS p0, e2 AS p1, ...`: unique output names, so ORDER BY refers to
// the relation's columns.
std::string Aliased(const std::vector<std::string>& v, const std::string& prefix) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i] + " AS " + prefix + std::to_string(i);
  return s;
}

// One side of a checksum comparison: a relation, its key and the values
// compared, each as SQL over that relation.
struct Side {
  db::Connection* conn = nullptr;
  std::string label;                 // "old", "new", "source", "target"
  std::string rel;                   // FROM target
  std::vector<std::string> key;      // key expressions for WHERE / ORDER BY
  std::vector<std::string> key_out;  // key expressions selected
  std::vector<std::string> values;   // compared values (shown as evidence)
  std::string hash;                  // 64-bit row hash over `values`
  std::string filter;                // extra predicate, may be empty
};

struct Agg {
  int64_t count = 0;
  uint64_t sum = 0;  // sum of row hashes mod 2^64
  bool operator==(const Agg& o) const { return count == o.count && sum == o.sum; }
  Agg operator-(const Agg& o) const { return {count - o.count, sum - o.sum}; }
};

struct RangeMismatch {
  Bound lo, hi;
  int64_t a = 0, b = 0;
};

struct Outcome {
  int64_t chunks = 0, differing_chunks = 0;
  int64_t scan_queries = 0, bisect_queries = 0, leaf_queries = 0, key_queries = 0;
  int64_t rows_a = 0, rows_b = 0;
  int64_t differences = 0;
  bool truncated = false;
  std::vector<std::string> evidence;
  std::vector<RangeMismatch> count_mismatches;
  int64_t chunk_queries() const { return scan_queries + bisect_queries + leaf_queries; }
};

std::string RangeText(const Bound& lo, const Bound& hi) {
  if (!lo && !hi) return "all keys";
  if (!lo) return "keys <= " + KeyText(*hi);
  if (!hi) return "keys > " + KeyText(*lo);
  return "keys > " + KeyText(*lo) + " and <= " + KeyText(*hi);
}

class Comparer {
 public:
  Comparer(Side a, Side b, std::vector<std::string> names, int64_t chunk_rows, int64_t leaf_rows, int64_t max_reported)
      : a_(std::move(a)), b_(std::move(b)), names_(std::move(names)), chunk_rows_(std::max<int64_t>(chunk_rows, 1)),
        leaf_rows_(std::max<int64_t>(leaf_rows, 1)), max_reported_(max_reported) {}

  Status Run(Outcome* out) {
    out_ = out;
    Bound lo;
    for (;;) {
      Bound hi;
      Agg aa, bb;
      if (Fused() && a_.key.size() == 1) {
        // One query per chunk: the next chunk_rows keys, both hashes, and
        // the chunk's last key as the next boundary.
        SLUICE_RETURN_IF_ERROR(NextChunk(lo, &hi, &aa, &bb));
        if (aa.count == 0 && lo) break;
      } else {
        SLUICE_ASSIGN_OR_RETURN(hi, NthKey(a_, lo, std::nullopt, chunk_rows_ - 1));
        SLUICE_RETURN_IF_ERROR(AggregateBoth(lo, hi, &aa, &bb, &out_->scan_queries));
      }
      out_->chunks++;
      out_->rows_a += aa.count;
      out_->rows_b += bb.count;
      if (aa.count != bb.count) out_->count_mismatches.push_back({lo, hi, aa.count, bb.count});
      if (!(aa == bb)) {
        out_->differing_chunks++;
        if (max_reported_ > 0) SLUICE_RETURN_IF_ERROR(Bisect(lo, hi, aa, bb));
      }
      if (!hi) break;
      lo = hi;
    }
    return Status::Ok();
  }

 private:
  // (lo, hi] on one side, appending parameters.
  std::string Where(const Side& s, const Bound& lo, const Bound& hi, std::vector<db::Value>* params) const {
    std::vector<std::string> parts;
    if (!s.filter.empty()) parts.push_back("(" + s.filter + ")");
    if (lo) {
      parts.push_back(Compare(s.key, ">", static_cast<int>(params->size()) + 1));
      params->insert(params->end(), lo->begin(), lo->end());
    }
    if (hi) {
      parts.push_back(Compare(s.key, "<=", static_cast<int>(params->size()) + 1));
      params->insert(params->end(), hi->begin(), hi->end());
    }
    return parts.empty() ? "" : " WHERE " + Join(parts, " AND ");
  }

  bool Fused() const {
    return a_.conn == b_.conn && a_.rel == b_.rel && a_.key == b_.key && a_.filter == b_.filter;
  }

  // The chunk after `lo`: at most chunk_rows keys in key order. Sets *hi to
  // its last key, or to none when it reaches the end of the table (so the
  // last range is open and bisection sees the same rows).
  Status NextChunk(const Bound& lo, Bound* hi, Agg* aa, Agg* bb) {
    std::vector<db::Value> params;
    const std::string k = a_.key[0];
    std::string sql =
        "SELECT count(*), sum((sluice_ha >> 32) & 4294967295), sum(sluice_ha & 4294967295), "
        "sum((sluice_hb >> 32) & 4294967295), sum(sluice_hb & 4294967295), max(sluice_k) FROM (SELECT " +
        k + " AS sluice_k, " + a_.hash + " AS sluice_ha, " + b_.hash + " AS sluice_hb FROM " + a_.rel +
        Where(a_, lo, Bound(), &params) + " ORDER BY " + k + " LIMIT " + std::to_string(chunk_rows_) +
        ") AS sluice_chunk";
    out_->scan_queries++;
    auto r = a_.conn->Query(sql, params);
    if (!r.ok()) return r.status().WithContext("checksum of " + RangeText(lo, Bound()));
    const auto& row = r->rows.at(0);
    aa->count = bb->count = row[0].AsInt();
    aa->sum = (static_cast<uint64_t>(row[1].AsInt()) << 32) + static_cast<uint64_t>(row[2].AsInt());
    bb->sum = (static_cast<uint64_t>(row[3].AsInt()) << 32) + static_cast<uint64_t>(row[4].AsInt());
    if (aa->count >= chunk_rows_) {
      *hi = Key{row[5]};
    } else {
      hi->reset();
    }
    return Status::Ok();
  }

  // Both sides' aggregates over (lo, hi]. When both sides read the same
  // relation on the same session (old and new columns of one table), one
  // scan computes both hashes: the comparison then costs about one pass.
  Status AggregateBoth(const Bound& lo, const Bound& hi, Agg* aa, Agg* bb, int64_t* queries) {
    if (Fused()) {
      std::vector<db::Value> params;
      std::string sql =
          "SELECT count(*), sum((sluice_ha >> 32) & 4294967295), sum(sluice_ha & 4294967295), "
          "sum((sluice_hb >> 32) & 4294967295), sum(sluice_hb & 4294967295) FROM (SELECT " +
          a_.hash + " AS sluice_ha, " + b_.hash + " AS sluice_hb FROM " + a_.rel + Where(a_, lo, hi, &params) +
          ") AS sluice_chunk";
      ++*queries;
      auto r = a_.conn->Query(sql, params);
      if (!r.ok()) return r.status().WithContext("checksum of " + RangeText(lo, hi));
      const auto& row = r->rows.at(0);
      aa->count = bb->count = row[0].AsInt();
      aa->sum = (static_cast<uint64_t>(row[1].AsInt()) << 32) + static_cast<uint64_t>(row[2].AsInt());
      bb->sum = (static_cast<uint64_t>(row[3].AsInt()) << 32) + static_cast<uint64_t>(row[4].AsInt());
      return Status::Ok();
    }
    SLUICE_ASSIGN_OR_RETURN(*aa, Aggregate(a_, lo, hi));
    SLUICE_ASSIGN_OR_RETURN(*bb, Aggregate(b_, lo, hi));
    *queries += 2;
    return Status::Ok();
  }

  Result<Agg> Aggregate(const Side& s, const Bound& lo, const Bound& hi) {
    std::vector<db::Value> params;
    std::string sql = "SELECT count(*), sum((sluice_h >> 32) & 4294967295), sum(sluice_h & 4294967295) FROM (SELECT " +
                      s.hash + " AS sluice_h FROM " + s.rel + Where(s, lo, hi, &params) + ") AS sluice_chunk";
    auto r = s.conn->Query(sql, params);
    if (!r.ok()) return r.status().WithContext("checksum of " + s.label + " " + RangeText(lo, hi));
    const auto& row = r->rows.at(0);
    Agg a;
    a.count = row[0].AsInt();
    uint64_t hi32 = static_cast<uint64_t>(row[1].AsInt());
    uint64_t lo32 = static_cast<uint64_t>(row[2].AsInt());
    a.sum = (hi32 << 32) + lo32;
    return a;
  }

  // The key at `offset` (0-based) within (lo, hi] on side `s`, or none.
  Result<Bound> NthKey(const Side& s, const Bound& lo, const Bound& hi, int64_t offset) {
    std::vector<db::Value> params;
    std::string sql = "SELECT " + Aliased(s.key_out, "sluice_k") + " FROM " + s.rel + Where(s, lo, hi, &params) +
                      " ORDER BY " +
                      Join(s.key) + " LIMIT 1 OFFSET " + std::to_string(offset);
    out_->key_queries++;
    auto r = s.conn->Query(sql, params);
    if (!r.ok()) return r.status().WithContext("chunk boundary on " + s.label);
    if (r->rows.empty()) return Bound();
    return Bound(r->rows[0]);
  }

  Status Bisect(const Bound& lo, const Bound& hi, const Agg& aa, const Agg& bb) {
    if (out_->differences >= max_reported_) {
      out_->truncated = true;
      return Status::Ok();
    }
    if (aa.count <= leaf_rows_ && bb.count <= leaf_rows_) return Leaf(lo, hi);
    const Side& s = aa.count >= bb.count ? a_ : b_;
    int64_t n = std::max(aa.count, bb.count);
    SLUICE_ASSIGN_OR_RETURN(Bound mid, NthKey(s, lo, hi, n / 2 - 1));
    if (!mid) return Leaf(lo, hi);
    Agg a1, b1;
    SLUICE_RETURN_IF_ERROR(AggregateBoth(lo, mid, &a1, &b1, &out_->bisect_queries));
    Agg a2 = aa - a1, b2 = bb - b1;
    if (!(a1 == b1)) SLUICE_RETURN_IF_ERROR(Bisect(lo, mid, a1, b1));
    if (!(a2 == b2)) SLUICE_RETURN_IF_ERROR(Bisect(mid, hi, a2, b2));
    return Status::Ok();
  }

  struct LeafRow {
    Key key;
    int64_t hash = 0;
    std::vector<db::Value> values;
  };

  Result<std::vector<LeafRow>> Fetch(const Side& s, const Bound& lo, const Bound& hi) {
    std::vector<db::Value> params;
    std::string sql = "SELECT " + Aliased(s.key_out, "sluice_k") + ", " + s.hash + " AS sluice_h" +
                      (s.values.empty() ? "" : ", " + Aliased(s.values, "sluice_v")) +
                      " FROM " + s.rel + Where(s, lo, hi, &params) + " ORDER BY " + Join(s.key);
    out_->leaf_queries++;
    auto r = s.conn->Query(sql, params);
    if (!r.ok()) return r.status().WithContext("rows of " + s.label + " " + RangeText(lo, hi));
    std::vector<LeafRow> rows;
    size_t k = s.key_out.size();
    for (auto& row : r->rows) {
      LeafRow lr;
      lr.key.assign(row.begin(), row.begin() + static_cast<long>(k));
      lr.hash = row[k].AsInt();
      lr.values.assign(row.begin() + static_cast<long>(k) + 1, row.end());
      rows.push_back(std::move(lr));
    }
    return rows;
  }

  std::string RowText(const std::vector<db::Value>& v) const {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (i < names_.size() ? names_[i] + "=" : "") + Show(v[i]);
    return s + ")";
  }

  void Report(std::string line) {
    out_->differences++;
    if (static_cast<int64_t>(out_->evidence.size()) < max_reported_) out_->evidence.push_back(std::move(line));
  }

  Status Leaf(const Bound& lo, const Bound& hi) {
    SLUICE_ASSIGN_OR_RETURN(auto ra, Fetch(a_, lo, hi));
    SLUICE_ASSIGN_OR_RETURN(auto rb, Fetch(b_, lo, hi));
    std::map<std::string, std::vector<const LeafRow*>> ma, mb;
    std::vector<std::string> order;
    for (const auto& r : ra) {
      auto& v = ma[NormKey(r.key)];
      if (v.empty()) order.push_back(NormKey(r.key));
      v.push_back(&r);
    }
    for (const auto& r : rb) {
      std::string nk = NormKey(r.key);
      if (!ma.count(nk) && !mb.count(nk)) order.push_back(nk);
      mb[nk].push_back(&r);
    }
    for (const auto& nk : order) {
      const auto& va = ma[nk];
      const auto& vb = mb[nk];
      const Key& key = !va.empty() ? va[0]->key : vb[0]->key;
      std::string where = "key " + KeyText(key) + ": ";
      if (vb.empty()) {
        Report(where + "only in " + a_.label + " " + RowText(va[0]->values) +
               (va.size() > 1 ? " (" + std::to_string(va.size()) + " times)" : ""));
        continue;
      }
      if (va.empty()) {
        Report(where + "only in " + b_.label + " " + RowText(vb[0]->values) +
               (vb.size() > 1 ? " (" + std::to_string(vb.size()) + " times)" : ""));
        continue;
      }
      // Match rows of the same key by hash; what is left over differs.
      std::multiset<int64_t> hb;
      for (const auto* r : vb) hb.insert(r->hash);
      std::vector<const LeafRow*> left_a, left_b;
      for (const auto* r : va) {
        auto it = hb.find(r->hash);
        if (it != hb.end()) {
          hb.erase(it);
        } else {
          left_a.push_back(r);
        }
      }
      std::multiset<int64_t> ha;
      for (const auto* r : va) ha.insert(r->hash);
      for (const auto* r : vb) {
        auto it = ha.find(r->hash);
        if (it != ha.end()) {
          ha.erase(it);
        } else {
          left_b.push_back(r);
        }
      }
      if (va.size() != vb.size()) {
        Report(where + std::to_string(va.size()) + " row(s) in " + a_.label + ", " + std::to_string(vb.size()) +
               " in " + b_.label + ": " + a_.label + " " + RowText(va[0]->values) + ", " + b_.label + " " +
               RowText(vb[0]->values));
        continue;
      }
      for (size_t i = 0; i < left_a.size() && i < left_b.size(); ++i) {
        const auto& x = left_a[i]->values;
        const auto& y = left_b[i]->values;
        std::string diffs;
        for (size_t c = 0; c < x.size() && c < y.size(); ++c) {
          if (Norm(x[c]) != Norm(y[c])) {
            diffs += (diffs.empty() ? "" : "; ") + (c < names_.size() ? names_[c] : "#" + std::to_string(c + 1)) +
                     ": " + a_.label + " " + Show(x[c]) + ", " + b_.label + " " + Show(y[c]);
          }
        }
        if (diffs.empty()) {
          diffs = "same rendering, different hash: " + a_.label + " " + RowText(x) + ", " + b_.label + " " + RowText(y);
        }
        Report(where + diffs);
      }
    }
    return Status::Ok();
  }

  Side a_, b_;
  std::vector<std::string> names_;
  int64_t chunk_rows_, leaf_rows_, max_reported_;
  Outcome* out_ = nullptr;
};

// The new version's name for physical column `physical` of `m`.
std::string LogicalName(const db::TableMapping& m, const std::string& physical) {
  for (const auto& c : m.columns) {
    if (c.physical == physical) return c.logical;
  }
  return physical;
}

const db::ColumnMapping* ByPhysical(const db::TableMapping& m, const std::string& physical) {
  for (const auto& c : m.columns) {
    if (c.physical == physical) return &c;
  }
  return nullptr;
}

const db::Forward* ForwardFor(const db::TableMapping& m, const std::string& physical) {
  for (const auto& f : m.forward) {
    if (f.target == physical) return &f;
  }
  return nullptr;
}

// What column `c` of the new version must hold, as SQL over the physical
// table: `up` of the old values for rows last written through the old
// version, the stored value for rows the new version wrote (checked by
// down_matches instead).
std::string Expected(const db::Dialect& d, const db::TableMapping& m, const db::ColumnMapping& c) {
  const db::Forward* f = ForwardFor(m, c.physical);
  if (!f) return d.Quote(c.physical);
  std::string up = d.AsColumnValue(sql::ScalarExpression(f->expr), c.type);
  if (m.write_flag.empty()) return up;
  return "CASE WHEN " + d.Quote(m.write_flag) + " IS NULL THEN " + up + " ELSE " + d.Quote(c.physical) + " END";
}

std::string Fraction(double f) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.4f%%", f * 100);
  return buf;
}

Status ChecksumChecks(db::Connection& conn, const db::VersionSpec& version, const db::TableMapping& m,
                      const Settings& settings, Report* report) {
  const db::Dialect& d = conn.dialect();
  Check c;
  c.name = "checksum";
  c.table = m.logical;
  Check p;
  p.name = "parity";
  p.table = m.logical;
  p.column = "key ranges";
  if (d.RowHash({"1"}).empty()) {
    c.skipped = p.skipped = true;
    c.summary = p.summary = "skipped: this database cannot hash rows";
    report->checks.push_back(std::move(p));
    report->checks.push_back(std::move(c));
    return Status::Ok();
  }
  Side a, b;
  a.conn = b.conn = &conn;
  a.label = "old";
  b.label = "new";
  a.rel = d.OldReadPath(version, m);
  b.rel = d.NewReadPath(version, m);
  for (const auto& k : m.key) {
    const db::ColumnMapping* cm = ByPhysical(m, k);
    if (!cm) {
      c.skipped = p.skipped = true;
      c.summary = p.summary = "skipped: key column " + k + " is not in the new version";
      report->checks.push_back(std::move(p));
      report->checks.push_back(std::move(c));
      return Status::Ok();
    }
    a.key.push_back(d.Quote(k));
    b.key.push_back(d.Quote(cm->logical));
  }
  if (m.key.empty()) {
    c.skipped = p.skipped = true;
    c.summary = p.summary = "skipped: the table has no key (primary key or unique NOT NULL index)";
    report->checks.push_back(std::move(p));
    report->checks.push_back(std::move(c));
    return Status::Ok();
  }
  a.key_out = a.key;
  b.key_out = b.key;
  std::vector<std::string> names, excluded;
  for (const auto& col : m.columns) {
    const db::Forward* f = ForwardFor(m, col.physical);
    if (f && f->volatile_expr) {
      excluded.push_back(col.logical);
      continue;
    }
    names.push_back(col.logical);
    a.values.push_back(Expected(d, m, col));
    b.values.push_back(d.Quote(col.logical));
  }
  // The new read path is a plain projection of the same table: compare the
  // stored columns directly, so one scan serves both sides (the row_count
  // check reads through the view itself).
  if (a.rel == d.Table(m.physical)) {
    b.rel = a.rel;
    b.key = b.key_out = a.key;
    b.values.clear();
    for (const auto& col : m.columns) {
      const db::Forward* f = ForwardFor(m, col.physical);
      if (!(f && f->volatile_expr)) b.values.push_back(d.Quote(col.physical));
    }
    // A column read the same way on both sides of the same row is equal by
    // construction; hashing it twice would prove nothing and cost a pass.
    std::vector<std::string> av, bv, nv;
    for (size_t i = 0; i < a.values.size() && i < b.values.size(); ++i) {
      if (a.values[i] == b.values[i]) continue;
      av.push_back(a.values[i]);
      bv.push_back(b.values[i]);
      nv.push_back(names[i]);
    }
    a.values = std::move(av);
    b.values = std::move(bv);
    names = std::move(nv);
  }
  a.hash = d.RowHash(a.values.empty() ? std::vector<std::string>{"1"} : a.values);
  b.hash = d.RowHash(b.values.empty() ? std::vector<std::string>{"1"} : b.values);
  Outcome o;
  Comparer cmp(a, b, names, settings.chunk_rows, settings.leaf_rows, settings.max_reported);
  SLUICE_RETURN_IF_ERROR(cmp.Run(&o).WithContext("checksum of " + m.logical));

  p.checked = o.rows_a;
  p.failures = static_cast<int64_t>(o.count_mismatches.size());
  p.passed = o.count_mismatches.empty();
  p.summary = p.passed ? "all " + std::to_string(o.chunks) + " key ranges have equal row counts (" +
                             std::to_string(o.rows_a) + " rows)"
                       : std::to_string(o.count_mismatches.size()) + " of " + std::to_string(o.chunks) +
                             " key ranges differ in row count (old " + std::to_string(o.rows_a) + ", new " +
                             std::to_string(o.rows_b) + ")";
  for (const auto& mm : o.count_mismatches) {
    if (static_cast<int64_t>(p.evidence.size()) >= std::max<int64_t>(settings.max_reported, 1)) break;
    p.evidence.push_back("partition " + RangeText(mm.lo, mm.hi) + ": old " + std::to_string(mm.a) + " rows, new " +
                         std::to_string(mm.b));
  }
  p.metrics = {{"ranges", static_cast<double>(o.chunks)},
               {"mismatched_ranges", static_cast<double>(o.count_mismatches.size())}};
  report->checks.push_back(std::move(p));

  c.checked = o.rows_a;
  c.failures = o.differences;
  c.passed = o.differing_chunks == 0;
  std::string queries = std::to_string(o.chunk_queries()) + " chunk queries (" + std::to_string(o.scan_queries) +
                        " scan, " + std::to_string(o.bisect_queries) + " bisection, " + std::to_string(o.leaf_queries) +
                        " row fetches) + " + std::to_string(o.key_queries) + " key look-ups";
  if (c.passed) {
    c.summary = "all " + std::to_string(o.chunks) + " chunks of " + std::to_string(o.rows_a) +
                " rows match up() of the old values; " + queries;
  } else {
    c.summary = std::to_string(o.differing_chunks) + " of " + std::to_string(o.chunks) + " chunks differ; " +
                std::to_string(o.differences) + (o.truncated ? "+" : "") + " differing rows found by bisection; " +
                queries;
  }
  if (!excluded.empty()) c.summary += "; not compared (volatile up): " + Join(excluded);
  c.evidence = o.evidence;
  c.metrics = {{"chunks", static_cast<double>(o.chunks)},
               {"differing_chunks", static_cast<double>(o.differing_chunks)},
               {"chunk_queries", static_cast<double>(o.chunk_queries())},
               {"scan_queries", static_cast<double>(o.scan_queries)},
               {"bisect_queries", static_cast<double>(o.bisect_queries)},
               {"row_fetch_queries", static_cast<double>(o.leaf_queries)},
               {"key_queries", static_cast<double>(o.key_queries)},
               {"old_rows", static_cast<double>(o.rows_a)},
               {"new_rows", static_cast<double>(o.rows_b)},
               {"differences", static_cast<double>(o.differences)}};
  report->checks.push_back(std::move(c));
  return Status::Ok();
}

Status PartitionParity(db::Connection& conn, const db::VersionSpec& version, const db::TableMapping& m,
                       const Settings& settings, Report* report) {
  const db::Dialect& d = conn.dialect();
  const db::ColumnMapping* col = nullptr;
  for (const auto& c : m.columns) {
    if (c.logical == settings.partition_column) col = &c;
  }
  if (!col) return Status::Ok();
  Check p;
  p.name = "parity";
  p.table = m.logical;
  p.column = col->logical;
  const db::Forward* f = ForwardFor(m, col->physical);
  if (f && f->volatile_expr) {
    p.skipped = true;
    p.summary = "skipped: up of the partition column is volatile";
    report->checks.push_back(std::move(p));
    return Status::Ok();
  }
  auto old_q = conn.Query("SELECT sluice_p, count(*) FROM (SELECT " + Expected(d, m, *col) + " AS sluice_p FROM " +
                          d.OldReadPath(version, m) + ") AS sluice_o GROUP BY sluice_p");
  if (!old_q.ok()) return old_q.status().WithContext("partition counts of the old version");
  auto new_q = conn.Query("SELECT " + d.Quote(col->logical) + ", count(*) FROM " + d.NewReadPath(version, m) +
                          " GROUP BY " + d.Quote(col->logical));
  if (!new_q.ok()) return new_q.status().WithContext("partition counts of the new version");
  std::map<std::string, std::pair<int64_t, int64_t>> counts;
  std::map<std::string, db::Value> shown;
  for (const auto& r : old_q->rows) {
    counts[Norm(r[0])].first += r[1].AsInt();
    shown.emplace(Norm(r[0]), r[0]);
  }
  for (const auto& r : new_q->rows) {
    counts[Norm(r[0])].second += r[1].AsInt();
    shown.emplace(Norm(r[0]), r[0]);
  }
  for (const auto& [k, v] : counts) {
    p.checked += v.first;
    if (v.first == v.second) continue;
    p.failures++;
    if (static_cast<int64_t>(p.evidence.size()) < std::max<int64_t>(settings.max_reported, 1)) {
      p.evidence.push_back("partition " + col->logical + " = " + Show(shown[k]) + ": old " + std::to_string(v.first) +
                           " rows, new " + std::to_string(v.second));
    }
  }
  p.passed = p.failures == 0;
  p.summary = p.passed ? "all " + std::to_string(counts.size()) + " partitions by " + col->logical +
                             " have equal row counts"
                       : std::to_string(p.failures) + " of " + std::to_string(counts.size()) + " partitions by " +
                             col->logical + " differ in row count";
  p.metrics = {{"partitions", static_cast<double>(counts.size())}, {"mismatched", static_cast<double>(p.failures)}};
  report->checks.push_back(std::move(p));
  return Status::Ok();
}

Status DriftChecks(db::Connection& conn, const db::VersionSpec& version, const db::TableMapping& m,
                   const Settings& settings, Report* report) {
  const db::Dialect& d = conn.dialect();
  for (const auto& f : m.forward) {
    const db::ColumnMapping* col = ByPhysical(m, f.target);
    if (!col) continue;
    Check c;
    c.name = "drift";
    c.table = m.logical;
    c.column = col->logical;
    if (f.volatile_expr) {
      c.skipped = true;
      c.summary = "skipped: up (" + f.expr + ") is volatile";
      report->checks.push_back(std::move(c));
      continue;
    }
    std::string actual = d.Quote(col->physical);
    std::string expected = Expected(d, m, *col);
    bool has_default = col->default_expr && !d.IsVolatile(*col->default_expr);
    std::string def = has_default ? sql::ScalarExpression(*col->default_expr) : "NULL";
    auto flag = [&](const std::string& cond) { return "sum(CASE WHEN " + cond + " THEN 1 ELSE 0 END)"; };
    std::string sql = "SELECT count(*), " + flag(actual + " IS NULL") + ", " + flag("(" + expected + ") IS NULL");
    if (has_default) {
      sql += ", " + flag(actual + " IS NOT NULL AND " + d.NullSafeEqual(actual, def)) + ", " +
             flag("(" + expected + ") IS NOT NULL AND " + d.NullSafeEqual(expected, def));
    }
    sql += " FROM " + d.OldReadPath(version, m);
    auto r = conn.Query(sql);
    if (!r.ok()) return r.status().WithContext("null/default drift of " + m.logical + "." + col->logical);
    const auto& row = r->rows.at(0);
    int64_t n = row[0].AsInt();
    c.checked = n;
    double denom = n > 0 ? static_cast<double>(n) : 1;
    double null_actual = static_cast<double>(row[1].AsInt()) / denom;
    double null_expected = static_cast<double>(row[2].AsInt()) / denom;
    double null_drift = std::fabs(null_actual - null_expected);
    double def_actual = 0, def_expected = 0, def_drift = 0;
    if (has_default) {
      def_actual = static_cast<double>(row[3].AsInt()) / denom;
      def_expected = static_cast<double>(row[4].AsInt()) / denom;
      def_drift = std::fabs(def_actual - def_expected);
    }
    double drift = std::max(null_drift, def_drift);
    c.failures = std::abs(row[1].AsInt() - row[2].AsInt());
    c.passed = drift <= settings.max_drift + 1e-12;
    c.summary = "NULL " + Fraction(null_actual) + " (up implies " + Fraction(null_expected) + ")";
    if (has_default) c.summary += ", default " + Fraction(def_actual) + " (up implies " + Fraction(def_expected) + ")";
    c.summary += "; drift " + Fraction(drift) + (c.passed ? " within " : " exceeds ") + "max_drift " +
                 Fraction(settings.max_drift);
    c.metrics = {{"null_fraction", null_actual},   {"null_expected", null_expected}, {"default_fraction", def_actual},
                 {"default_expected", def_expected}, {"drift", drift},              {"max_drift", settings.max_drift}};
    report->checks.push_back(std::move(c));
  }
  return Status::Ok();
}

const db::TableMapping* FindLogical(const db::VersionSpec& v, const std::string& logical) {
  for (const auto& m : v.tables) {
    if (m.logical == logical) return &m;
  }
  return nullptr;
}

Check InvariantCheck(const Invariant& inv) {
  Check c;
  c.name = "invariant";
  c.table = inv.table;
  c.column = inv.name;
  return c;
}

void FinishInvariant(Check& c, const Invariant& inv, int64_t violations, const db::QueryResult& rows) {
  c.failures = violations;
  c.passed = violations == 0;
  std::string what = inv.check.empty() ? "query returns" : "rows violate " + inv.check + ":";
  c.summary = c.passed ? (inv.check.empty() ? "query returns no rows" : "every row satisfies " + inv.check)
                       : std::to_string(violations) + " " + what + (inv.check.empty() ? " rows" : "");
  for (const auto& r : rows.rows) {
    std::string s = "(";
    for (size_t i = 0; i < r.size(); ++i) {
      s += (i ? ", " : "") + (i < rows.columns.size() ? rows.columns[i] + "=" : "") + Show(r[i]);
    }
    c.evidence.push_back("violating row " + s + ")");
  }
}

// `check` invariants, on the new read path inside the snapshot.
Status CheckInvariants(db::Connection& conn, const db::VersionSpec& version, const Settings& settings,
                       Report* report) {
  const db::Dialect& d = conn.dialect();
  for (const auto& inv : settings.invariants) {
    if (inv.check.empty()) continue;
    Check c = InvariantCheck(inv);
    const db::TableMapping* m = FindLogical(version, inv.table);
    std::string rel = m ? d.NewReadPath(version, *m) : d.Table(inv.table);
    std::string where = " WHERE NOT (" + inv.check + ")";
    auto n = conn.Query("SELECT count(*) FROM " + rel + " AS sluice_t" + where);
    if (!n.ok()) {
      c.passed = false;
      c.summary = "cannot evaluate: " + n.status().message();
      report->checks.push_back(std::move(c));
      return Status::Ok();  // the snapshot transaction may be aborted (PostgreSQL)
    }
    c.checked = 0;
    db::QueryResult rows;
    int64_t violations = n->Scalar().AsInt();
    if (violations > 0 && settings.max_reported > 0) {
      auto r = conn.Query("SELECT * FROM " + rel + " AS sluice_t" + where + " LIMIT " +
                          std::to_string(settings.max_reported));
      if (!r.ok()) return r.status();
      rows = std::move(*r);
    }
    FinishInvariant(c, inv, violations, rows);
    report->checks.push_back(std::move(c));
  }
  return Status::Ok();
}

// `sql` invariants, through a session of the new version.
void SqlInvariants(db::Connection* conn, const Settings& settings, Report* report) {
  for (const auto& inv : settings.invariants) {
    if (inv.sql.empty()) continue;
    Check c = InvariantCheck(inv);
    if (!conn) {
      c.skipped = true;
      c.summary = "skipped: no session of the new version";
      report->checks.push_back(std::move(c));
      continue;
    }
    std::string q = inv.sql;
    while (!q.empty() && (q.back() == ';' || std::isspace(static_cast<unsigned char>(q.back())))) q.pop_back();
    auto n = conn->Query("SELECT count(*) FROM (" + q + ") AS sluice_q");
    if (!n.ok()) {
      c.passed = false;
      c.summary = "cannot evaluate: " + n.status().message();
      report->checks.push_back(std::move(c));
      continue;
    }
    db::QueryResult rows;
    int64_t violations = n->Scalar().AsInt();
    if (violations > 0 && settings.max_reported > 0) {
      auto r = conn->Query("SELECT * FROM (" + q + ") AS sluice_q LIMIT " + std::to_string(settings.max_reported));
      if (r.ok()) rows = std::move(*r);
    }
    FinishInvariant(c, inv, violations, rows);
    report->checks.push_back(std::move(c));
  }
}

// Check 1 for one table: the same number of rows through both versions.
Result<Check> RowCount(db::Connection& conn, const db::VersionSpec& version, const db::TableMapping& m) {
  const db::Dialect& d = conn.dialect();
  Check c;
  c.name = "row_count";
  c.table = m.logical;
  auto old_n = conn.Query("SELECT count(*) FROM " + d.OldReadPath(version, m));
  if (!old_n.ok()) return old_n.status();
  auto new_n = conn.Query("SELECT count(*) FROM " + d.NewReadPath(version, m));
  if (!new_n.ok()) return new_n.status();
  int64_t a = old_n->Scalar().AsInt(), b = new_n->Scalar().AsInt();
  c.checked = a;
  c.passed = a == b;
  c.failures = a > b ? a - b : b - a;
  c.summary = std::to_string(a) + " rows in the old version, " + std::to_string(b) + " in the new";
  return c;
}

// Tables whose old and new read paths can be compared.
bool Comparable(const db::TableMapping& m) { return m.changed && !m.created; }

Status RunChecks(db::Connection& conn, const db::VersionSpec& version, const Settings& settings, Report* report) {
  const db::Dialect& d = conn.dialect();
  for (const auto& m : version.tables) {
    if (!Comparable(m)) continue;
    // 1. The same rows are visible through both versions.
    {
      SLUICE_ASSIGN_OR_RETURN(Check c, RowCount(conn, version, m));
      report->checks.push_back(std::move(c));
    }
    // 2. Chunked checksums with bisection, and parity per key range.
    {
      // Timed, so bench/ can compare it with a plain full-table hash scan.
      size_t first = report->checks.size();
      auto t0 = std::chrono::steady_clock::now();
      SLUICE_RETURN_IF_ERROR(ChecksumChecks(conn, version, m, settings, report));
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      for (size_t i = first; i < report->checks.size(); ++i) {
        if (report->checks[i].name == "checksum") report->checks[i].metrics.push_back({"millis", ms});
      }
    }
    // 3. Parity per partition value.
    if (!settings.partition_column.empty()) SLUICE_RETURN_IF_ERROR(PartitionParity(conn, version, m, settings, report));
    // 4. Every new column equals `up` over the row's old values.
    for (const auto& f : m.forward) {
      Check c;
      c.name = "up_matches";
      c.table = m.logical;
      c.column = LogicalName(m, f.target);
      if (f.volatile_expr) {
        c.skipped = true;
        c.summary = "skipped: up (" + f.expr + ") is volatile, so recomputing it cannot reproduce stored values";
        report->checks.push_back(std::move(c));
        continue;
      }
      // Rows last written through the new version are checked through
      // `down` below: their new columns are what that version wrote.
      const db::ColumnMapping* target = ByPhysical(m, f.target);
      std::string up = target ? d.AsColumnValue(sql::ScalarExpression(f.expr), target->type)
                              : sql::ScalarExpression(f.expr);
      std::string mismatch = "NOT (" + d.NullSafeEqual(d.Quote(f.target), up) + ")" +
                             (m.write_flag.empty() ? "" : " AND " + d.Quote(m.write_flag) + " IS NULL");
      auto cnt = conn.Query("SELECT count(*), (SELECT count(*) FROM " + d.Table(m.physical) +
                            (m.write_flag.empty() ? "" : " WHERE " + d.Quote(m.write_flag) + " IS NULL") + ") FROM " +
                            d.Table(m.physical) + " WHERE " + mismatch);
      if (!cnt.ok()) return cnt.status().WithContext("comparing " + m.physical + "." + f.target + " with up");
      c.failures = cnt->rows[0][0].AsInt();
      c.checked = cnt->rows[0][1].AsInt();
      c.passed = c.failures == 0;
      c.summary = c.passed ? "all " + std::to_string(c.checked) + " rows equal up(" + f.expr + ")"
                           : std::to_string(c.failures) + " of " + std::to_string(c.checked) +
                                 " rows differ from up(" + f.expr + ")";
      if (!c.passed && settings.max_reported > 0) {
        auto rows = conn.Query("SELECT " + backfill::KeyList(d, m.key) + ", " + d.Quote(f.target) + ", " +
                               sql::ScalarExpression(f.expr) + " FROM " + d.Table(m.physical) + " WHERE " + mismatch +
                               " ORDER BY " + backfill::KeyList(d, m.key) + " LIMIT " +
                               std::to_string(settings.max_reported));
        if (!rows.ok()) return rows.status();
        for (const auto& r : rows->rows) {
          backfill::Key key(r.begin(), r.begin() + static_cast<long>(m.key.size()));
          c.evidence.push_back("key " + KeyText(key) + ": " + c.column + " = " +
                               Show(r[m.key.size()]) + ", up gives " + Show(r[m.key.size() + 1]));
        }
      }
      report->checks.push_back(std::move(c));
    }
    // 5. Null/default drift of the new columns.
    SLUICE_RETURN_IF_ERROR(DriftChecks(conn, version, m, settings, report));
    // 6. Columns that complete will make NOT NULL hold no NULL.
    for (const auto& col : m.not_null_guards) {
      Check c;
      c.name = "not_null";
      c.table = m.logical;
      c.column = LogicalName(m, col);
      auto cnt = conn.Query("SELECT count(*) FROM " + d.Table(m.physical) + " WHERE " + d.Quote(col) + " IS NULL");
      if (!cnt.ok()) return cnt.status();
      c.failures = cnt->Scalar().AsInt();
      c.passed = c.failures == 0;
      c.summary = c.passed ? "no NULL in " + c.column : std::to_string(c.failures) + " rows have NULL in " + c.column;
      if (!c.passed) {
        auto rows = conn.Query("SELECT " + backfill::KeyList(d, m.key) + " FROM " + d.Table(m.physical) + " WHERE " +
                               d.Quote(col) + " IS NULL ORDER BY " + backfill::KeyList(d, m.key) + " LIMIT " +
                               std::to_string(settings.max_reported));
        if (rows.ok()) {
          for (const auto& r : rows->rows) c.evidence.push_back("key " + KeyText(r) + " is NULL");
        }
      }
      report->checks.push_back(std::move(c));
    }
  }
  // 7. Invariants with `check`. Last: a failing predicate may abort the
  //    snapshot transaction on PostgreSQL.
  SLUICE_RETURN_IF_ERROR(CheckInvariants(conn, version, settings, report));
  // 8. Rows written through the new version: the old columns hold `down`
  //    of what the new version wrote. Also last for the same reason.
  for (const auto& m : version.tables) {
    if (!m.changed || m.created) continue;
    for (const auto& bw : m.backward) {
      if (m.write_flag.empty()) break;
      Check c;
      c.name = "down_matches";
      c.table = m.logical;
      c.column = bw.target;
      std::string row;
      for (size_t i = 0; i < m.columns.size(); ++i) {
        row += (i ? ", " : "") + d.Quote(m.columns[i].physical) + " AS " + d.Quote(m.columns[i].logical);
      }
      std::string keys;
      for (size_t i = 0; i < m.key.size(); ++i) {
        keys += ", " + d.Quote(m.key[i]) + " AS " + d.Quote("_sluice_key_" + std::to_string(i));
      }
      std::string source = "(SELECT " + row + keys + ", " + d.Quote(bw.target) + " AS " + d.Quote("_sluice_old") +
                           " FROM " + d.Table(m.physical) + " WHERE " + d.Quote(m.write_flag) + " = 1) AS sluice_row";
      std::string mismatch = "NOT (" + d.NullSafeEqual(d.Quote("_sluice_old"), sql::ScalarExpression(bw.expr)) + ")";
      auto written = conn.Query("SELECT count(*) FROM " + d.Table(m.physical) + " WHERE " + d.Quote(m.write_flag) +
                                " = 1");
      if (!written.ok()) return written.status();
      c.checked = written->Scalar().AsInt();
      if (c.checked == 0) {
        c.summary = "no row has been written through the new version yet";
        report->checks.push_back(std::move(c));
        continue;
      }
      // A `down` that does not run at all is a failed check, not an error of
      // verification: the evidence says why.
      auto cnt = conn.Query("SELECT count(*) FROM " + source + " WHERE " + mismatch);
      if (!cnt.ok()) {
        c.passed = false;
        c.failures = c.checked;
        c.summary = "down (" + bw.expr + ") cannot be evaluated: " + cnt.status().message();
        report->checks.push_back(std::move(c));
        return Status::Ok();  // the transaction is aborted on PostgreSQL: stop here
      }
      c.failures = cnt->rows[0][0].AsInt();
      c.passed = c.failures == 0;
      c.summary = c.passed ? "all " + std::to_string(c.checked) + " rows written through the new version have " +
                                 bw.target + " = down(" + bw.expr + ")"
                           : std::to_string(c.failures) + " of " + std::to_string(c.checked) +
                                 " rows written through the new version differ from down(" + bw.expr + ")";
      if (!c.passed && settings.max_reported > 0) {
        std::string key_cols;
        for (size_t i = 0; i < m.key.size(); ++i) key_cols += (i ? ", " : "") + d.Quote("_sluice_key_" + std::to_string(i));
        auto rows = conn.Query("SELECT " + key_cols + ", " + d.Quote("_sluice_old") + ", " +
                               sql::ScalarExpression(bw.expr) + " FROM " + source + " WHERE " + mismatch + " LIMIT " +
                               std::to_string(settings.max_reported));
        if (!rows.ok()) return rows.status();
        for (const auto& r : rows->rows) {
          backfill::Key key(r.begin(), r.begin() + static_cast<long>(m.key.size()));
          c.evidence.push_back("key " + KeyText(key) + ": " + bw.target + " = " + Show(r[m.key.size()]) +
                               ", down gives " + Show(r[m.key.size() + 1]));
        }
      }
      report->checks.push_back(std::move(c));
    }
  }
  return Status::Ok();
}

// --- shadow reads ---------------------------------------------------------------------------

// Replaces :key (or :key1, :key2, ...) with $1.. ; returns the SQL or an
// error naming the placeholder that does not fit the key.
Result<std::string> BindKeys(const std::string& sqltext, size_t key_size) {
  auto toks = sql::Tokenize(sqltext);
  std::string out;
  size_t pos = 0;
  bool any = false;
  for (const auto& t : toks) {
    if (t.kind != sql::Token::Kind::kParam || t.text.size() < 2 || t.text[0] != ':') continue;
    std::string name = sql::Lower(t.text.substr(1));
    size_t n = 0;
    if (name == "key") {
      n = 1;
    } else if (name.rfind("key", 0) == 0 && name.size() > 3 &&
               std::all_of(name.begin() + 3, name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      n = static_cast<size_t>(std::stoul(name.substr(3)));
    } else {
      continue;
    }
    if (n == 0 || n > key_size) return InvalidArgument("placeholder " + t.text + " does not match the key");
    out += sqltext.substr(pos, t.pos - pos) + "$" + std::to_string(n);
    pos = t.pos + t.len;
    any = true;
  }
  out += sqltext.substr(pos);
  if (!any) return InvalidArgument("the query has no :key placeholder");
  return out;
}

// A query result in comparable form: rows of normalised values, sorted.
using Shape = std::vector<std::vector<std::string>>;

struct Read {
  bool ok = true;
  std::string error;
  Shape rows;
  bool operator==(const Read& o) const { return ok == o.ok && error == o.error && rows == o.rows; }
};

Read ReadOnce(db::Connection* conn, const std::string& sql, const Key& key) {
  Read r;
  std::vector<db::Value> params(key.begin(), key.end());
  auto q = conn->Query(sql, params);
  if (!q.ok()) {
    r.ok = false;
    r.error = q.status().message();
    return r;
  }
  for (const auto& row : q->rows) {
    std::vector<std::string> v;
    for (const auto& x : row) v.push_back(Norm(x));
    r.rows.push_back(std::move(v));
  }
  std::sort(r.rows.begin(), r.rows.end());
  return r;
}

std::string ShowRead(const Read& r) {
  if (!r.ok) return "error: " + r.error;
  std::string s = "[";
  for (size_t i = 0; i < r.rows.size() && i < 5; ++i) {
    s += (i ? ", " : "") + std::string("(");
    for (size_t j = 0; j < r.rows[i].size(); ++j) {
      const std::string& v = r.rows[i][j];
      s += (j ? ", " : "") + (v == std::string("\x01NULL", 5) ? std::string("NULL") : v);
    }
    s += ")";
  }
  if (r.rows.size() > 5) s += ", ... " + std::to_string(r.rows.size()) + " rows";
  return s + "]";
}

}  // namespace

Result<ShadowRound> ShadowRead(db::Connection& conn, const db::VersionSpec& version, const Settings& settings,
                               const VersionConnections& versions, int round) {
  const db::Dialect& d = conn.dialect();
  ShadowRound out;
  out.round = round;
  out.at = NowIso();
  if (!versions.old_version || !versions.new_version) return InvalidArgument("shadow reads need both versions");
  constexpr int64_t kBuckets = 1 << 20;
  double frac = std::clamp(settings.shadow_sample, 0.0, 1.0);
  int64_t width = static_cast<int64_t>(std::llround(frac * static_cast<double>(kBuckets)));
  if (frac > 0 && width == 0) width = 1;
  int64_t offset = (kBuckets - (static_cast<int64_t>(round) * width) % kBuckets) % kBuckets;
  std::optional<db::Schema> schema;
  for (const auto& q : settings.validation_queries) {
    Check c;
    c.name = "shadow_read";
    c.table = q.table;
    c.column = q.name;
    // The physical table and key whose keys are sampled.
    std::string physical = q.table;
    std::vector<std::string> key;
    if (const db::TableMapping* m = FindLogical(version, q.table)) {
      physical = m->physical;
      key = m->key;
    } else {
      if (!schema) {
        auto s = conn.Introspect();
        if (!s.ok()) return s.status();
        schema = std::move(*s);
      }
      if (const db::TableInfo* t = schema->FindTable(q.table)) key = t->UsableKey();
    }
    auto bound = key.empty() ? Result<std::string>(InvalidArgument("table " + q.table + " has no usable key"))
                             : BindKeys(q.sql, key.size());
    if (!bound.ok()) {
      c.passed = false;
      c.summary = "cannot run: " + bound.status().message();
      out.checks.push_back(std::move(c));
      continue;
    }
    std::vector<std::string> qk;
    for (const auto& k : key) qk.push_back(d.Quote(k));
    std::string bucket = "(((" + d.RowHash(qk) + ") & " + std::to_string(kBuckets - 1) + ") + " +
                         std::to_string(offset) + ") & " + std::to_string(kBuckets - 1);
    auto sample = conn.Query("SELECT " + Join(qk) + " FROM " + d.Table(physical) + " WHERE " + bucket + " < " +
                             std::to_string(width) + " ORDER BY " + Join(qk) + " LIMIT " +
                             std::to_string(settings.shadow_max_keys));
    if (!sample.ok()) return sample.status().WithContext("sampling keys of " + q.table);
    auto total = conn.Query("SELECT count(*) FROM " + d.Table(physical));
    if (!total.ok()) return total.status();
    int64_t rows = total->Scalar().AsInt();
    int64_t suspects = 0, divergent = 0, unstable = 0;
    std::vector<Key> suspect_keys;
    for (const auto& k : sample->rows) {
      Read o = ReadOnce(versions.old_version, *bound, k);
      if (settings.after_first_old_read) settings.after_first_old_read(q.name, k);
      Read n = ReadOnce(versions.new_version, *bound, k);
      if (!(o == n)) suspect_keys.push_back(k);
    }
    suspects = static_cast<int64_t>(suspect_keys.size());
    if (!suspect_keys.empty() && settings.reread_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(settings.reread_delay_ms));
    }
    for (const auto& k : suspect_keys) {
      // Old, new, old again: the pair counts only when the old version's
      // answer did not move meanwhile (no concurrent write in between).
      bool settled = false;
      for (int attempt = 0; attempt < std::max(settings.reread_attempts, 1) && !settled; ++attempt) {
        if (attempt > 0 && settings.reread_delay_ms > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(settings.reread_delay_ms));
        }
        Read o1 = ReadOnce(versions.old_version, *bound, k);
        Read n = ReadOnce(versions.new_version, *bound, k);
        Read o2 = ReadOnce(versions.old_version, *bound, k);
        if (!(o1 == o2)) continue;
        settled = true;
        if (!(o1 == n)) {
          divergent++;
          if (static_cast<int64_t>(c.evidence.size()) < std::max<int64_t>(settings.max_reported, 1)) {
            c.evidence.push_back("key " + KeyText(k) + ": old version " + ShowRead(o1) +
                                 ", new version " + ShowRead(n));
          }
        }
      }
      if (!settled) unstable++;
    }
    int64_t keys = static_cast<int64_t>(sample->rows.size());
    double rate = keys ? static_cast<double>(divergent) / static_cast<double>(keys) : 0;
    double coverage = rows ? static_cast<double>(keys) / static_cast<double>(rows) : 0;
    c.checked = keys;
    c.failures = divergent;
    c.passed = rate <= settings.max_divergence + 1e-12;
    c.summary = std::to_string(keys) + " keys read through both versions (" + Fraction(coverage) + " of " +
                std::to_string(rows) + " rows): " + std::to_string(divergent) + " divergent, rate " + Fraction(rate) +
                (c.passed ? " within " : " exceeds ") + "max_divergence " + Fraction(settings.max_divergence) + "; " +
                std::to_string(suspects - divergent - unstable) +
                " first-read differences agreed on re-read (concurrent writes)" +
                (unstable ? ", " + std::to_string(unstable) + " kept changing (not counted)" : "");
    c.metrics = {{"keys", static_cast<double>(keys)},          {"table_rows", static_cast<double>(rows)},
                 {"coverage", coverage},                        {"suspects", static_cast<double>(suspects)},
                 {"divergent", static_cast<double>(divergent)}, {"unstable", static_cast<double>(unstable)},
                 {"rate", rate},                                {"round", static_cast<double>(round)}};
    out.keys += keys;
    out.table_rows += rows;
    out.suspects += suspects;
    out.divergent += divergent;
    out.unstable += unstable;
    out.checks.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<Check>> RowCounts(db::Connection& conn, const db::VersionSpec& version) {
  SLUICE_RETURN_IF_ERROR(conn.BeginSnapshot());
  std::vector<Check> out;
  for (const auto& m : version.tables) {
    if (!Comparable(m)) continue;
    auto c = RowCount(conn, version, m);
    if (!c.ok()) {
      conn.Rollback().IgnoreError();
      return c.status();
    }
    out.push_back(std::move(*c));
  }
  conn.Rollback().IgnoreError();  // read-only
  return out;
}

Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings) {
  return Run(conn, version, settings, VersionConnections{});
}

Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings,
                   const VersionConnections& versions) {
  Report report;
  report.migration = version.migration;
  report.at = NowIso();
  SLUICE_RETURN_IF_ERROR(conn.BeginSnapshot());
  Status s = RunChecks(conn, version, settings, &report);
  conn.Rollback().IgnoreError();  // read-only: nothing to keep
  SLUICE_RETURN_IF_ERROR(s);
  // Outside the snapshot: these sessions read the live database the way
  // each application version does.
  SqlInvariants(versions.new_version, settings, &report);
  if (!settings.validation_queries.empty()) {
    if (versions.old_version && versions.new_version) {
      SLUICE_ASSIGN_OR_RETURN(ShadowRound r, ShadowRead(conn, version, settings, versions, 0));
      for (auto& c : r.checks) report.checks.push_back(std::move(c));
    } else {
      for (const auto& q : settings.validation_queries) {
        Check c;
        c.name = "shadow_read";
        c.table = q.table;
        c.column = q.name;
        c.skipped = true;
        c.summary = "skipped: no sessions of the two versions";
        report.checks.push_back(std::move(c));
      }
    }
  }
  for (const auto& c : report.checks) {
    if (!c.passed && !c.skipped) report.passed = false;
  }
  return report;
}

// --- cross-database diff ----------------------------------------------------------------------

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
  }
  Side a, b;
  a.conn = &source;
  b.conn = &target;
  a.label = "source";
  b.label = "target";
  a.rel = ds.Table(spec.table);
  b.rel = dt.Table(spec.table);
  for (const auto& k : rep.key) {
    a.key.push_back(ds.BinaryOrder(ds.Quote(k), st->FindColumn(k)->type));
    b.key.push_back(dt.BinaryOrder(dt.Quote(k), tt->FindColumn(k)->type));
    a.key_out.push_back(ds.Quote(k));
    b.key_out.push_back(dt.Quote(k));
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
  Outcome o;
  Comparer cmp(a, b, rep.columns, spec.chunk_rows, spec.leaf_rows, spec.max_reported);
  s = cmp.Run(&o);
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
