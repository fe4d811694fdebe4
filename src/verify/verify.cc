#include "verify/verify.h"

#include <nlohmann/json.hpp>

#include "backfill/key.h"
#include "common/clock.h"
#include "common/sql_text.h"

namespace sluice::verify {

std::string Report::ToJson() const {
  nlohmann::json j;
  j["migration"] = migration;
  j["at"] = at;
  j["passed"] = passed;
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) {
    j["checks"].push_back({{"name", c.name}, {"table", c.table}, {"column", c.column}, {"passed", c.passed},
                           {"skipped", c.skipped}, {"summary", c.summary}, {"evidence", c.evidence},
                           {"checked", c.checked}, {"failures", c.failures}});
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

std::string Show(const db::Value& v) {
  if (v.is_null()) return "NULL";
  if (v.type == db::Value::Type::kText) return sql::QuoteLiteral(v.text);
  return v.text;
}

// The new version's name for physical column `physical` of `m`.
std::string LogicalName(const db::TableMapping& m, const std::string& physical) {
  for (const auto& c : m.columns) {
    if (c.physical == physical) return c.logical;
  }
  return physical;
}

Status RunChecks(db::Connection& conn, const db::VersionSpec& version, const Settings& settings, Report* report) {
  const db::Dialect& d = conn.dialect();
  for (const auto& m : version.tables) {
    if (!m.changed || m.created) continue;
    // 1. The same rows are visible through both versions.
    {
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
      report->checks.push_back(std::move(c));
    }
    // 2. Every new column equals `up` over the row's old values.
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
      std::string mismatch = "NOT (" + d.NullSafeEqual(d.Quote(f.target), sql::ScalarExpression(f.expr)) + ")" +
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
          c.evidence.push_back("key " + backfill::KeyToDisplay(key) + ": " + c.column + " = " +
                               Show(r[m.key.size()]) + ", up gives " + Show(r[m.key.size() + 1]));
        }
      }
      report->checks.push_back(std::move(c));
    }
    // 3. Rows written through the new version: the old columns hold
    //    `down` of what the new version wrote, so the old version reads it.
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
      // verification: the evidence says why. The snapshot transaction stays
      // usable because the expression is evaluated inside a savepoint-free
      // count only after this probe succeeds.
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
          c.evidence.push_back("key " + backfill::KeyToDisplay(key) + ": " + bw.target + " = " + Show(r[m.key.size()]) +
                               ", down gives " + Show(r[m.key.size() + 1]));
        }
      }
      report->checks.push_back(std::move(c));
    }
    // 4. Columns that complete will make NOT NULL hold no NULL.
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
          for (const auto& r : rows->rows) c.evidence.push_back("key " + backfill::KeyToDisplay(r) + " is NULL");
        }
      }
      report->checks.push_back(std::move(c));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings) {
  Report report;
  report.migration = version.migration;
  report.at = NowIso();
  SLUICE_RETURN_IF_ERROR(conn.BeginSnapshot());
  Status s = RunChecks(conn, version, settings, &report);
  conn.Rollback().IgnoreError();  // read-only: nothing to keep
  SLUICE_RETURN_IF_ERROR(s);
  for (const auto& c : report.checks) {
    if (!c.passed && !c.skipped) report.passed = false;
  }
  return report;
}

}  // namespace sluice::verify
