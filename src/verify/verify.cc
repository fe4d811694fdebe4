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
#include "verify/compare.h"
#include "verify/values.h"

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
  j["could_not_run"] = could_not_run;
  if (could_not_run) j["error"] = error;
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) j["checks"].push_back(CheckJson(c));
  return Dump(j);
}

Report Report::CouldNotRun(const std::string& migration, const std::string& started_at, const Status& why) {
  Report r;
  r.migration = migration;
  r.at = started_at.empty() ? NowIso() : started_at;
  r.passed = false;
  r.could_not_run = true;
  r.error = std::string(StatusCodeName(why.code())) + ": " + why.message();
  return r;
}

namespace {

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

// The pieces of `table` (a base table of about `rows` rows) for a
// physical read: block ranges holding about chunk_rows rows each, the last
// one open so rows on blocks added since the size was read are not missed
// (none of them is visible to the snapshot anyway). Empty when the dialect
// cannot read by block.
Result<std::vector<Piece>> BlockPieces(db::Connection& conn, const std::string& table, int64_t rows,
                                       int64_t chunk_rows) {
  const db::Dialect& d = conn.dialect();
  std::vector<Piece> pieces;
  if (d.TableBlocksSql().empty() || d.BlockRange(table, 0, std::nullopt).empty()) return pieces;
  SLUICE_ASSIGN_OR_RETURN(auto r, conn.Query(d.TableBlocksSql(), {db::Value::Text(table)}));
  const int64_t blocks = r.Scalar().AsInt();
  // Rows per block from the row count just taken in this snapshot (dead
  // row versions make some blocks emptier than others: pieces vary).
  const int64_t per = blocks > 0 && rows > chunk_rows
                          ? std::max<int64_t>(1, static_cast<int64_t>(static_cast<long double>(blocks) *
                                                                       static_cast<long double>(chunk_rows) /
                                                                       static_cast<long double>(rows)))
                          : std::max<int64_t>(blocks, 1);
  for (int64_t first = 0;; first += per) {
    std::optional<int64_t> end;
    if (first + per < blocks) end = first + per;
    pieces.push_back({d.BlockRange(table, first, end),
                      "blocks [" + std::to_string(first) + ", " + (end ? std::to_string(*end) : "end") + ")"});
    if (!end) break;
  }
  return pieces;
}

// The checksum comparison of `a` and `b`. When both sides are columns of
// one base table read on `conn` and the database reads tables by block
// (PostgreSQL), the table is compared in block-range pieces (the cost of a
// sequential scan, any key type), by up to checksum_workers sessions each
// importing this transaction's snapshot and taking the next piece when
// done: every piece is read in the verification's one snapshot and the
// outcome does not depend on the number of sessions. Otherwise the key is
// walked in chunks on `conn` alone.
Status Compare(db::Connection& conn, const Side& a, const Side& b, const std::vector<std::string>& names,
               const std::string& table, int64_t rows, const Settings& settings, Outcome* o) {
  std::vector<Piece> pieces;
  if (a.conn == b.conn && a.rel == table && b.rel == table && a.filter.empty() && b.filter.empty()) {
    SLUICE_ASSIGN_OR_RETURN(pieces, BlockPieces(conn, table, rows, settings.chunk_rows));
  }
  if (pieces.empty()) {
    Comparer cmp(a, b, names, settings.chunk_rows, settings.leaf_rows, settings.max_reported, settings.cancel);
    return cmp.Run(o);
  }
  std::vector<std::unique_ptr<db::Connection>> extra;
  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(settings.checksum_workers, 1)),
                                                        pieces.size()));
  if (workers > 1 && settings.connect && conn.shares_snapshots()) {
    SLUICE_ASSIGN_OR_RETURN(std::string id, conn.ExportSnapshot());
    // A session that cannot be opened or cannot import the snapshot (too
    // many connections, say) only means fewer workers: the pieces are
    // shared out among those there are.
    while (static_cast<int>(extra.size()) + 1 < workers) {
      auto c = settings.connect();
      if (!c.ok() || !(*c)->BeginSnapshotOf(id).ok()) break;
      extra.push_back(std::move(*c));
    }
  }
  std::vector<db::Connection*> sessions{&conn};
  for (auto& c : extra) sessions.push_back(c.get());
  Status s = CompareRanges(a, b, names, settings.leaf_rows, settings.max_reported, settings.cancel, sessions, pieces, o);
  for (auto& c : extra) c->Rollback().IgnoreError();  // read-only
  o->sessions = static_cast<int>(sessions.size());
  return s;
}

// `rows`: the old version's row count in this snapshot (sizes the pieces).
Status ChecksumChecks(db::Connection& conn, const db::VersionSpec& version, const db::TableMapping& m, int64_t rows,
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
  a.integer_key = b.integer_key = m.key.size() == 1 && IsIntegerType(ByPhysical(m, m.key[0])->type);
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
  SLUICE_RETURN_IF_ERROR(
      Compare(conn, a, b, names, d.Table(m.physical), rows, settings, &o).WithContext("checksum of " + m.logical));

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
               {"differences", static_cast<double>(o.differences)},
               {"sessions", static_cast<double>(o.sessions)}};
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
  auto cancelled = [&] { return settings.cancel && settings.cancel->load(); };
  for (const auto& m : version.tables) {
    if (!Comparable(m)) continue;
    if (cancelled()) return Cancelled("verification cancelled");
    // 0. Old-version writes whose `up` failed (on_error: record): each left
    //    a new column diverged until the row is fixed. First: while such
    //    rows exist the checks below, which evaluate `up` over every row,
    //    would fail on them with the conversion's error instead of naming
    //    them, so they are skipped for this table.
    if (m.record_failures && !m.forward.empty()) {
      Check c;
      c.name = "dual_write_failures";
      c.table = m.logical;
      const std::string failures = d.StateTable("dual_write_failures");
      const std::vector<db::Value> p = {db::Value::Text(version.migration), db::Value::Text(m.physical)};
      auto cnt = conn.Query("SELECT count(*) FROM " + failures + " WHERE migration = $1 AND tbl = $2", p);
      if (!cnt.ok()) return cnt.status().WithContext("reading the recorded dual-write failures");
      c.failures = cnt->Scalar().AsInt();
      c.passed = c.failures == 0;
      c.summary = c.passed ? "no unresolved dual-write failure"
                           : std::to_string(c.failures) +
                                 " row(s) whose `up` failed on an old-version write are unresolved (`sluice failures " +
                                 version.migration + "`)";
      if (!c.passed) {
        auto rows = conn.Query("SELECT row_key, col, error FROM " + failures +
                                   " WHERE migration = $1 AND tbl = $2 ORDER BY row_key, col LIMIT " +
                                   std::to_string(settings.max_reported),
                               p);
        if (!rows.ok()) return rows.status();
        for (const auto& r : rows->rows) {
          c.evidence.push_back("key " + r[0].text + ": " + LogicalName(m, r[1].text) + ": " + r[2].text);
        }
      }
      const bool diverged = !c.passed;
      report->checks.push_back(std::move(c));
      if (diverged) {
        Check skip;
        skip.name = "up_matches";
        skip.table = m.logical;
        skip.skipped = true;
        skip.summary = "skipped: fix the rows whose dual-write failed first";
        report->checks.push_back(std::move(skip));
        continue;
      }
    }
    // 1. The same rows are visible through both versions.
    int64_t rows = 0;
    {
      SLUICE_ASSIGN_OR_RETURN(Check c, RowCount(conn, version, m));
      rows = c.checked;
      report->checks.push_back(std::move(c));
    }
    // 2. Chunked checksums with bisection, and parity per key range.
    {
      // Timed, so bench/ can compare it with a plain full-table hash scan.
      size_t first = report->checks.size();
      auto t0 = std::chrono::steady_clock::now();
      SLUICE_RETURN_IF_ERROR(ChecksumChecks(conn, version, m, rows, settings, report));
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
  if (cancelled()) return Cancelled("verification cancelled");
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

}  // namespace

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
  report.at = IsoTime(settings.Time()->WallMicros());
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

}  // namespace sluice::verify
