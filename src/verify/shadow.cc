// Shadow reads: the plan's validation queries run through a session of the
// old and of the new version for sampled keys, and the answers compared the
// way an application would see them. See docs/verification.md#shadow_read.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/sql_text.h"
#include "verify/values.h"
#include "verify/verify.h"

namespace sluice::verify {

namespace {

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
    } else if (name.rfind("key", 0) == 0 && name.size() > 3 && name.size() < 8 &&
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

// True when the query orders its result: ORDER BY outside every
// parenthesis (not a window's, an aggregate's or a subquery's).
bool OrdersResult(const std::string& sqltext) {
  auto toks = sql::Tokenize(sqltext);
  int depth = 0;
  for (size_t i = 0; i < toks.size(); ++i) {
    const auto& t = toks[i];
    if (t.kind == sql::Token::Kind::kOperator && t.text == "(") ++depth;
    if (t.kind == sql::Token::Kind::kOperator && t.text == ")") --depth;
    if (depth == 0 && t.kind == sql::Token::Kind::kIdent && sql::Lower(t.text) == "order" && i + 1 < toks.size() &&
        toks[i + 1].kind == sql::Token::Kind::kIdent && sql::Lower(toks[i + 1].text) == "by") {
      return true;
    }
  }
  return false;
}

// One answer of a validation query, as the application receives it.
struct Read {
  bool ok = true;
  std::string error;
  std::vector<db::Row> rows;                     // as returned (for evidence)
  std::vector<std::vector<std::string>> exact;  // compared form, parallel to rows
};

// Equal answers: both ran, same rows with the same values (Exact: storage
// class and text), in the same order when the query orders them (the rows
// were sorted otherwise).
bool Same(const Read& a, const Read& b) { return a.ok && b.ok && a.exact == b.exact; }

Read ReadOnce(db::Connection* conn, const std::string& sql, const Key& key, bool ordered) {
  Read r;
  std::vector<db::Value> params(key.begin(), key.end());
  auto q = conn->Query(sql, params);
  if (!q.ok()) {
    r.ok = false;
    r.error = q.status().message();
    return r;
  }
  std::vector<std::pair<std::vector<std::string>, db::Row>> rows;
  for (auto& row : q->rows) {
    std::vector<std::string> v;
    for (const auto& x : row) v.push_back(Exact(x));
    rows.emplace_back(std::move(v), std::move(row));
  }
  // Without ORDER BY the database may return rows in any order: compare
  // them as a multiset.
  if (!ordered) std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [e, row] : rows) {
    r.exact.push_back(std::move(e));
    r.rows.push_back(std::move(row));
  }
  return r;
}

std::string ShowRead(const Read& r) {
  if (!r.ok) return "error: " + r.error;
  std::string s = "[";
  for (size_t i = 0; i < r.rows.size() && i < 5; ++i) {
    s += (i ? ", " : "") + std::string("(");
    for (size_t j = 0; j < r.rows[i].size(); ++j) s += (j ? ", " : "") + Show(r.rows[i][j]);
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
  out.at = IsoTime(settings.Time()->WallMicros());
  if (!versions.old_version || !versions.new_version) return InvalidArgument("shadow reads need both versions");
  auto cancelled = [&] { return settings.cancel && settings.cancel->load(); };
  constexpr int64_t kBuckets = 1 << 20;
  double frac = std::clamp(settings.shadow_sample, 0.0, 1.0);
  int64_t width = static_cast<int64_t>(std::llround(frac * static_cast<double>(kBuckets)));
  if (frac > 0 && width == 0) width = 1;
  int64_t offset = (kBuckets - (static_cast<int64_t>(round) * width) % kBuckets) % kBuckets;
  std::optional<db::Schema> schema;
  for (const auto& q : settings.validation_queries) {
    if (cancelled()) return Cancelled("shadow reads cancelled");
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
    const bool ordered = OrdersResult(q.sql);
    std::vector<std::string> qk;
    for (const auto& k : key) qk.push_back(d.Quote(k));
    std::string bucket = "(((" + d.RowHash(qk) + ") & " + std::to_string(kBuckets - 1) + ") + " +
                         std::to_string(offset) + ") & " + std::to_string(kBuckets - 1);
    auto total = conn.Query("SELECT count(*) FROM " + d.Table(physical));
    if (!total.ok()) return total.status().WithContext("counting rows of " + q.table);
    int64_t rows = total->Scalar().AsInt();
    auto sample = conn.Query("SELECT " + Join(qk) + " FROM " + d.Table(physical) + " WHERE " + bucket + " < " +
                             std::to_string(width) + " ORDER BY " + Join(qk) + " LIMIT " +
                             std::to_string(settings.shadow_max_keys));
    if (!sample.ok()) return sample.status().WithContext("sampling keys of " + q.table);
    if (sample->rows.empty() && rows > 0 && settings.shadow_max_keys > 0) {
      // The hash window caught no key (a small table, a small sample):
      // read the key nearest to the window rather than nothing.
      sample = conn.Query("SELECT " + Join(qk) + " FROM " + d.Table(physical) + " ORDER BY " + bucket + ", " +
                          Join(qk) + " LIMIT 1");
      if (!sample.ok()) return sample.status().WithContext("sampling keys of " + q.table);
    }
    int64_t suspects = 0, divergent = 0, unstable = 0, errors = 0;
    std::vector<Key> suspect_keys;
    for (const auto& k : sample->rows) {
      if (cancelled()) return Cancelled("shadow reads cancelled");
      Read o = ReadOnce(versions.old_version, *bound, k, ordered);
      if (settings.after_first_old_read) settings.after_first_old_read(q.name, k);
      Read n = ReadOnce(versions.new_version, *bound, k, ordered);
      if (!Same(o, n)) suspect_keys.push_back(k);
    }
    suspects = static_cast<int64_t>(suspect_keys.size());
    if (!suspect_keys.empty() && settings.reread_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(settings.reread_delay_ms));
    }
    auto evidence = [&](const std::string& line) {
      if (static_cast<int64_t>(c.evidence.size()) < std::max<int64_t>(settings.max_reported, 1)) {
        c.evidence.push_back(line);
      }
    };
    for (const auto& k : suspect_keys) {
      // Old, new, old again: the pair counts only when the old version's
      // answer did not move meanwhile (no concurrent write in between). A
      // read that fails is a divergence at once: the application of that
      // version would see the error.
      bool settled = false;
      for (int attempt = 0; attempt < std::max(settings.reread_attempts, 1) && !settled; ++attempt) {
        if (cancelled()) return Cancelled("shadow reads cancelled");
        if (attempt > 0 && settings.reread_delay_ms > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(settings.reread_delay_ms));
        }
        Read o1 = ReadOnce(versions.old_version, *bound, k, ordered);
        Read n = ReadOnce(versions.new_version, *bound, k, ordered);
        Read o2 = ReadOnce(versions.old_version, *bound, k, ordered);
        if (!o1.ok || !n.ok || !o2.ok) {
          settled = true;
          divergent++;
          errors++;
          evidence("key " + KeyText(k) + ": old version " + ShowRead(o1.ok ? o2 : o1) + ", new version " + ShowRead(n));
          break;
        }
        if (o1.exact != o2.exact) continue;
        settled = true;
        if (!Same(o1, n)) {
          divergent++;
          evidence("key " + KeyText(k) + ": old version " + ShowRead(o1) + ", new version " + ShowRead(n) +
                   (ordered ? " (ordered)" : ""));
        }
      }
      if (!settled) unstable++;
    }
    int64_t keys = static_cast<int64_t>(sample->rows.size());
    double rate = keys ? static_cast<double>(divergent) / static_cast<double>(keys) : 0;
    double coverage = rows ? static_cast<double>(keys) / static_cast<double>(rows) : 0;
    // Keys that kept changing are not evidence either way; when no key
    // could be compared at all there is no evidence, which fails.
    const bool none_compared = keys > 0 && unstable == keys;
    c.checked = keys;
    c.failures = divergent;
    c.passed = rate <= settings.max_divergence + 1e-12 && !none_compared;
    if (keys == 0) {
      c.summary = "the table is empty: no key to read";
    } else {
      c.summary = std::to_string(keys) + " keys read through both versions (" + Fraction(coverage) + " of " +
                  std::to_string(rows) + " rows" + (ordered ? "; rows compared in order" : "") +
                  "): " + std::to_string(divergent) + " divergent" +
                  (errors ? " (" + std::to_string(errors) + " read errors)" : "") + ", rate " + Fraction(rate) +
                  (rate <= settings.max_divergence + 1e-12 ? " within " : " exceeds ") + "max_divergence " +
                  Fraction(settings.max_divergence) + "; " + std::to_string(suspects - divergent - unstable) +
                  " first-read differences agreed on re-read (concurrent writes)" +
                  (unstable ? ", " + std::to_string(unstable) + " kept changing (not counted)" : "") +
                  (none_compared ? "; FAIL: no key could be compared" : "");
    }
    c.metrics = {{"keys", static_cast<double>(keys)},          {"table_rows", static_cast<double>(rows)},
                 {"coverage", coverage},                        {"suspects", static_cast<double>(suspects)},
                 {"divergent", static_cast<double>(divergent)}, {"unstable", static_cast<double>(unstable)},
                 {"errors", static_cast<double>(errors)},       {"rate", rate},
                 {"ordered", ordered ? 1.0 : 0.0},              {"round", static_cast<double>(round)}};
    out.keys += keys;
    out.table_rows += rows;
    out.suspects += suspects;
    out.divergent += divergent;
    out.unstable += unstable;
    out.checks.push_back(std::move(c));
  }
  return out;
}

}  // namespace sluice::verify
