#include "verify/compare.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <thread>

namespace sluice::verify {

namespace {

// Bisection never goes deeper than this (a unique key needs about
// log2(chunk_rows / leaf_rows) levels).
constexpr int kMaxBisectDepth = 64;

constexpr const char* kSums =
    "count(*) AS sluice_n, sum((sluice_ha >> 32) & 4294967295) AS sluice_a1, sum(sluice_ha & 4294967295) AS "
    "sluice_a2, sum((sluice_hb >> 32) & 4294967295) AS sluice_b1, sum(sluice_hb & 4294967295) AS sluice_b2";

void ReadSums(const db::Row& row, Agg* aa, Agg* bb) {
  aa->count = bb->count = row[0].AsInt();
  aa->sum = (static_cast<uint64_t>(row[1].AsInt()) << 32) + static_cast<uint64_t>(row[2].AsInt());
  bb->sum = (static_cast<uint64_t>(row[3].AsInt()) << 32) + static_cast<uint64_t>(row[4].AsInt());
}

}  // namespace

bool IsIntegerType(const std::string& type) {
  std::string t;
  for (char c : type) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* n : {"integer", "int", "bigint", "smallint", "int2", "int4", "int8", "serial", "bigserial",
                        "smallserial"}) {
    if (t == n) return true;
  }
  return false;
}

Comparer::Comparer(Side a, Side b, std::vector<std::string> names, int64_t chunk_rows, int64_t leaf_rows,
                   int64_t max_reported, const std::atomic<bool>* cancel)
    : a_(std::move(a)), b_(std::move(b)), names_(std::move(names)), chunk_rows_(std::max<int64_t>(chunk_rows, 1)),
      leaf_rows_(std::max<int64_t>(leaf_rows, 1)), max_reported_(max_reported), cancel_(cancel) {}

Status Comparer::CheckCancel() const {
  if (cancel_ && cancel_->load()) return Cancelled("comparison cancelled after " + std::to_string(out_->chunks) + " chunks");
  return Status::Ok();
}

Status Comparer::Run(Outcome* out, const Bound& start, const Bound& end) {
  out_ = out;
  Bound lo = start;
  for (;;) {
    SLUICE_RETURN_IF_ERROR(CheckCancel());
    Bound hi;
    Agg aa, bb;
    if (Fused()) {
      // One query per chunk: the next chunk_rows keys, both hashes, and
      // the chunk's last key as the next boundary.
      SLUICE_RETURN_IF_ERROR(NextChunk(lo, end, &hi, &aa, &bb));
      if (aa.count == 0 && lo != start) break;
    } else {
      SLUICE_ASSIGN_OR_RETURN(hi, NthKey(a_, lo, end, chunk_rows_ - 1));
      if (!hi) hi = end;
      SLUICE_RETURN_IF_ERROR(CheckCancel());
      SLUICE_RETURN_IF_ERROR(AggregateBoth(lo, hi, &aa, &bb, &out_->scan_queries));
    }
    SLUICE_RETURN_IF_ERROR(Account(lo, hi, aa, bb));
    if (!hi || hi == end) break;
    lo = hi;
  }
  return Status::Ok();
}

Status Comparer::RunWhole(Outcome* out) {
  out_ = out;
  SLUICE_RETURN_IF_ERROR(CheckCancel());
  Agg aa, bb;
  SLUICE_RETURN_IF_ERROR(AggregateBoth(Bound(), Bound(), &aa, &bb, &out_->scan_queries));
  return Account(Bound(), Bound(), aa, bb);
}

// Counts the compared chunk (lo, hi] and bisects it when it differs.
Status Comparer::Account(const Bound& lo, const Bound& hi, const Agg& aa, const Agg& bb) {
  out_->chunks++;
  out_->rows_a += aa.count;
  out_->rows_b += bb.count;
  if (aa.count != bb.count) out_->count_mismatches.push_back({lo, hi, aa.count, bb.count});
  if (aa == bb) return Status::Ok();
  out_->differing_chunks++;
  if (max_reported_ <= 0) return Status::Ok();
  if (may_bisect_ && !may_bisect_()) {
    out_->truncated = true;
    return Status::Ok();
  }
  return Bisect(lo, hi, aa, bb, 0);
}

// (lo, hi] on one side, appending parameters.
std::string Comparer::Where(const Side& s, const Bound& lo, const Bound& hi, std::vector<db::Value>* params) const {
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

bool Comparer::Fused() const {
  return a_.conn == b_.conn && a_.rel == b_.rel && a_.key == b_.key && a_.key_out == b_.key_out &&
         a_.filter == b_.filter;
}

// The chunk after `lo`: at most chunk_rows keys in key order. Sets *hi to
// its last key, or to none when it reaches the end of the table (so the
// last range is open and bisection sees the same rows). One statement: the
// hashes of the chunk and its last key, by max() over an integer key, else
// as the chunk_rows-th key after `lo` found by ORDER BY ... LIMIT 1 OFFSET
// (an index walk that hashes nothing), which works for any ordered type and
// any number of key columns (uuid has no max()).
Status Comparer::NextChunk(const Bound& lo, const Bound& end, Bound* hi, Agg* aa, Agg* bb) {
  std::vector<db::Value> params;
  const size_t n = a_.key.size();
  std::string sql;
  if (a_.integer_key && n == 1) {
    sql = "SELECT " + std::string(kSums) + ", max(sluice_k) FROM (SELECT " + a_.key_out[0] + " AS sluice_k, " +
          a_.hash + " AS sluice_ha, " + b_.hash + " AS sluice_hb FROM " + a_.rel + Where(a_, lo, end, &params) +
          " ORDER BY " + Join(a_.key) + " LIMIT " + std::to_string(chunk_rows_) + ") AS sluice_chunk";
  } else {
    std::string chunk = "SELECT " + a_.hash + " AS sluice_ha, " + b_.hash + " AS sluice_hb FROM " + a_.rel +
                        Where(a_, lo, end, &params) + " ORDER BY " + Join(a_.key) + " LIMIT " +
                        std::to_string(chunk_rows_);
    std::string last = "SELECT " + Aliased(a_.key_out, "sluice_k") + " FROM " + a_.rel +
                       Where(a_, lo, end, &params) + " ORDER BY " + Join(a_.key) + " LIMIT 1 OFFSET " +
                       std::to_string(chunk_rows_ - 1);
    sql = std::string("SELECT sluice_s.*, sluice_l.* FROM (SELECT ") + kSums + " FROM (" + chunk +
          ") AS sluice_chunk) AS sluice_s LEFT JOIN (" + last + ") AS sluice_l ON 1 = 1";
  }
  out_->scan_queries++;
  auto r = a_.conn->Query(sql, params);
  if (!r.ok()) return r.status().WithContext("checksum of " + RangeText(lo, end));
  if (r->rows.size() != 1 || r->rows[0].size() != 5 + n) {
    return Internal("checksum of " + RangeText(lo, end) + ": unexpected result shape");
  }
  const auto& row = r->rows[0];
  ReadSums(row, aa, bb);
  if (aa->count >= chunk_rows_) {
    *hi = Key(row.begin() + 5, row.end());
  } else {
    *hi = end;
  }
  return Status::Ok();
}

// Both sides' aggregates over (lo, hi]. When both sides read the same
// relation on the same session (old and new columns of one table), one
// scan computes both hashes: the comparison then costs about one pass.
Status Comparer::AggregateBoth(const Bound& lo, const Bound& hi, Agg* aa, Agg* bb, int64_t* queries) {
  if (Fused()) {
    std::vector<db::Value> params;
    std::string sql = std::string("SELECT ") + kSums + " FROM (SELECT " + a_.hash + " AS sluice_ha, " + b_.hash +
                      " AS sluice_hb FROM " + a_.rel + Where(a_, lo, hi, &params) + ") AS sluice_chunk";
    ++*queries;
    auto r = a_.conn->Query(sql, params);
    if (!r.ok()) return r.status().WithContext("checksum of " + RangeText(lo, hi));
    if (r->rows.size() != 1 || r->rows[0].size() < 5) return Internal("checksum: unexpected result shape");
    ReadSums(r->rows[0], aa, bb);
    return Status::Ok();
  }
  SLUICE_ASSIGN_OR_RETURN(*aa, Aggregate(a_, lo, hi));
  SLUICE_RETURN_IF_ERROR(CheckCancel());
  SLUICE_ASSIGN_OR_RETURN(*bb, Aggregate(b_, lo, hi));
  *queries += 2;
  return Status::Ok();
}

Result<Agg> Comparer::Aggregate(const Side& s, const Bound& lo, const Bound& hi) {
  std::vector<db::Value> params;
  std::string sql = "SELECT count(*), sum((sluice_h >> 32) & 4294967295), sum(sluice_h & 4294967295) FROM (SELECT " +
                    s.hash + " AS sluice_h FROM " + s.rel + Where(s, lo, hi, &params) + ") AS sluice_chunk";
  auto r = s.conn->Query(sql, params);
  if (!r.ok()) return r.status().WithContext("checksum of " + s.label + " " + RangeText(lo, hi));
  if (r->rows.size() != 1 || r->rows[0].size() < 3) return Internal("checksum: unexpected result shape");
  const auto& row = r->rows[0];
  Agg a;
  a.count = row[0].AsInt();
  a.sum = (static_cast<uint64_t>(row[1].AsInt()) << 32) + static_cast<uint64_t>(row[2].AsInt());
  return a;
}

// The key at `offset` (0-based) within (lo, hi] on side `s`, or none.
Result<Bound> Comparer::NthKey(const Side& s, const Bound& lo, const Bound& hi, int64_t offset) {
  std::vector<db::Value> params;
  std::string sql = "SELECT " + Aliased(s.key_out, "sluice_k") + " FROM " + s.rel + Where(s, lo, hi, &params) +
                    " ORDER BY " + Join(s.key) + " LIMIT 1 OFFSET " + std::to_string(std::max<int64_t>(offset, 0));
  out_->key_queries++;
  auto r = s.conn->Query(sql, params);
  if (!r.ok()) return r.status().WithContext("chunk boundary on " + s.label);
  if (r->rows.empty()) return Bound();
  return Bound(r->rows[0]);
}

Status Comparer::Bisect(const Bound& lo, const Bound& hi, const Agg& aa, const Agg& bb, int depth) {
  SLUICE_RETURN_IF_ERROR(CheckCancel());
  if (out_->differences >= max_reported_) {
    out_->truncated = true;
    return Status::Ok();
  }
  const int64_t n = std::max(aa.count, bb.count);
  if (n <= leaf_rows_ || depth >= kMaxBisectDepth) return Leaf(lo, hi);
  const Side& s = aa.count >= bb.count ? a_ : b_;
  SLUICE_ASSIGN_OR_RETURN(Bound mid, NthKey(s, lo, hi, n / 2 - 1));
  if (!mid) return Leaf(lo, hi);
  SLUICE_RETURN_IF_ERROR(CheckCancel());
  Agg a1, b1;
  SLUICE_RETURN_IF_ERROR(AggregateBoth(lo, mid, &a1, &b1, &out_->bisect_queries));
  Agg a2 = aa - a1, b2 = bb - b1;
  // No progress (one key holds most rows, or the halves do not add up):
  // compare the range row by row instead of splitting it again.
  int64_t n1 = std::max(a1.count, b1.count), n2 = std::max(a2.count, b2.count);
  if (n1 >= n || n2 >= n || std::min({a1.count, b1.count, a2.count, b2.count}) < 0) return Leaf(lo, hi);
  if (!(a1 == b1)) SLUICE_RETURN_IF_ERROR(Bisect(lo, mid, a1, b1, depth + 1));
  if (!(a2 == b2)) SLUICE_RETURN_IF_ERROR(Bisect(mid, hi, a2, b2, depth + 1));
  return Status::Ok();
}

Result<std::vector<Comparer::LeafRow>> Comparer::Fetch(const Side& s, const Bound& lo, const Bound& hi) {
  SLUICE_RETURN_IF_ERROR(CheckCancel());
  std::vector<db::Value> params;
  const std::vector<std::string>& match = s.key_match.empty() ? s.key_out : s.key_match;
  std::string sql = "SELECT " + Aliased(s.key_out, "sluice_k") + ", " + Aliased(match, "sluice_m") + ", " + s.hash +
                    " AS sluice_h" + (s.values.empty() ? "" : ", " + Aliased(s.values, "sluice_v")) + " FROM " +
                    s.rel + Where(s, lo, hi, &params) + " ORDER BY " + Join(s.key);
  out_->leaf_queries++;
  auto r = s.conn->Query(sql, params);
  if (!r.ok()) return r.status().WithContext("rows of " + s.label + " " + RangeText(lo, hi));
  std::vector<LeafRow> rows;
  const long k = static_cast<long>(s.key_out.size()), m = static_cast<long>(match.size());
  for (auto& row : r->rows) {
    if (static_cast<long>(row.size()) < k + m + 1) return Internal("row fetch: unexpected result shape");
    LeafRow lr;
    lr.key.assign(row.begin(), row.begin() + k);
    lr.match.assign(row.begin() + k, row.begin() + k + m);
    lr.hash = row[static_cast<size_t>(k + m)].AsInt();
    lr.values.assign(row.begin() + k + m + 1, row.end());
    rows.push_back(std::move(lr));
  }
  return rows;
}

std::string Comparer::RowText(const std::vector<db::Value>& v) const {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (i < names_.size() ? names_[i] + "=" : "") + Show(v[i]);
  return s + ")";
}

void Comparer::Report(std::string line) {
  out_->differences++;
  if (static_cast<int64_t>(out_->evidence.size()) < max_reported_) out_->evidence.push_back(std::move(line));
}

Status Comparer::Leaf(const Bound& lo, const Bound& hi) {
  SLUICE_ASSIGN_OR_RETURN(auto ra, Fetch(a_, lo, hi));
  SLUICE_ASSIGN_OR_RETURN(auto rb, Fetch(b_, lo, hi));
  std::map<std::string, std::vector<const LeafRow*>> ma, mb;
  std::vector<std::string> order;
  for (const auto& r : ra) {
    auto& v = ma[NormKey(r.match)];
    if (v.empty()) order.push_back(NormKey(r.match));
    v.push_back(&r);
  }
  for (const auto& r : rb) {
    std::string nk = NormKey(r.match);
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
      Report(where + std::to_string(va.size()) + " row(s) in " + a_.label + ", " + std::to_string(vb.size()) + " in " +
             b_.label + ": " + a_.label + " " + RowText(va[0]->values) + ", " + b_.label + " " +
             RowText(vb[0]->values));
      continue;
    }
    for (size_t i = 0; i < left_a.size() && i < left_b.size(); ++i) {
      const auto& x = left_a[i]->values;
      const auto& y = left_b[i]->values;
      // Name the columns that differ by value; if none does, those that
      // differ in representation (storage class, trailing zeros).
      std::string diffs;
      for (bool exact : {false, true}) {
        for (size_t c = 0; c < x.size() && c < y.size(); ++c) {
          bool differ = exact ? Exact(x[c]) != Exact(y[c]) : Norm(x[c]) != Norm(y[c]);
          if (!differ) continue;
          diffs += (diffs.empty() ? "" : "; ") + (c < names_.size() ? names_[c] : "#" + std::to_string(c + 1)) + ": " +
                   a_.label + " " + Show(x[c]) + ", " + b_.label + " " + Show(y[c]);
        }
        if (!diffs.empty()) break;
      }
      if (diffs.empty()) {
        diffs = "same rendering, different hash: " + a_.label + " " + RowText(x) + ", " + b_.label + " " + RowText(y);
      }
      Report(where + diffs);
    }
  }
  return Status::Ok();
}

}  // namespace sluice::verify

namespace sluice::verify {

PieceBoard::PieceBoard(size_t pieces, int64_t max_reported) : found_(pieces, -1), max_reported_(max_reported) {}

std::optional<size_t> PieceBoard::Next() {
  std::lock_guard<std::mutex> l(mu_);
  if (next_ >= found_.size()) return std::nullopt;
  return next_++;
}

void PieceBoard::Done(size_t i, int64_t differences) {
  std::lock_guard<std::mutex> l(mu_);
  if (i < found_.size()) found_[i] = std::max<int64_t>(differences, 0);
}

bool PieceBoard::Reportable(size_t i) const {
  std::lock_guard<std::mutex> l(mu_);
  int64_t before = 0;
  for (size_t j = 0; j < i && j < found_.size(); ++j) {
    if (found_[j] < 0) return true;  // not known yet: bisect to be sure
    before += found_[j];
    if (before >= max_reported_) return false;  // the report fills up before piece i
  }
  return true;
}

void MergeOutcomes(std::vector<Outcome>& pieces, int64_t max_reported, Outcome* out) {
  for (auto& o : pieces) {
    out->chunks += o.chunks;
    out->differing_chunks += o.differing_chunks;
    out->scan_queries += o.scan_queries;
    out->bisect_queries += o.bisect_queries;
    out->leaf_queries += o.leaf_queries;
    out->key_queries += o.key_queries;
    out->rows_a += o.rows_a;
    out->rows_b += o.rows_b;
    for (auto& m : o.count_mismatches) out->count_mismatches.push_back(std::move(m));
    if (out->differences >= max_reported) {
      // What this piece found (if it bisected at all) is past the report.
      if (o.differing_chunks > 0) out->truncated = true;
      continue;
    }
    out->differences += o.differences;
    out->truncated = out->truncated || o.truncated;
    for (auto& e : o.evidence) {
      if (static_cast<int64_t>(out->evidence.size()) < max_reported) {
        out->evidence.push_back(std::move(e));
      } else {
        out->truncated = true;
      }
    }
  }
}

Status CompareRanges(const Side& a, const Side& b, const std::vector<std::string>& names, int64_t leaf_rows,
                     int64_t max_reported, const std::atomic<bool>* cancel,
                     const std::vector<db::Connection*>& sessions, const std::vector<Piece>& pieces, Outcome* out) {
  const size_t n = sessions.size();
  if (n == 0) return Internal("CompareRanges: no session");
  std::vector<Outcome> outs(pieces.size());
  std::vector<Status> errors(n, Status::Ok());
  PieceBoard board(pieces.size(), max_reported);
  std::atomic<bool> stop{false};
  std::atomic<size_t> running{n};
  std::vector<std::thread> threads;
  for (size_t w = 0; w < n; ++w) {
    threads.emplace_back([&, w] {
      while (!stop.load()) {
        std::optional<size_t> i = board.Next();
        if (!i) break;
        const Piece& p = pieces[*i];
        Side sa = a, sb = b;
        sa.conn = sb.conn = sessions[w];
        if (!p.rel.empty()) sa.rel = sb.rel = p.rel;
        // Bisection within the piece keeps chunks below the piece's size.
        Comparer cmp(sa, sb, names, std::numeric_limits<int64_t>::max(), leaf_rows, max_reported, &stop);
        cmp.BisectWhen([&board, i] { return board.Reportable(*i); });
        Status s = cmp.RunWhole(&outs[*i]);
        if (!s.ok()) {
          errors[w] = s.WithContext(p.what);
          stop = true;
          break;
        }
        board.Done(*i, outs[*i].differences);
      }
      --running;
    });
  }
  // The caller's cancel flag may be set by a signal handler, which cannot
  // notify: poll it for the workers.
  while (running.load() > 0) {
    if (cancel && cancel->load()) stop = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : threads) t.join();
  // The first real error, rather than the cancellations it caused.
  for (const auto& e : errors) {
    if (!e.ok() && e.code() != StatusCode::kCancelled) return e;
  }
  for (const auto& e : errors) {
    if (!e.ok()) return e;
  }
  if (cancel && cancel->load()) return Cancelled("comparison cancelled");
  // Fail closed: every piece compared once, or no result.
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (outs[i].chunks != 1) return Internal("checksum: " + pieces[i].what + " was not compared");
  }
  MergeOutcomes(outs, max_reported, out);
  return Status::Ok();
}

}  // namespace sluice::verify
