// The audit log and the backfill's chunk history as data, for `sluice
// events`, `sluice serve` (/metrics, the status page) and the hooks'
// dispatcher. Read-only.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace sluice::engine {

namespace {
// Opens a connection and a StateStore; false when no state tables exist yet.
Result<bool> HasState(StateStore& store) { return store.Exists(); }
}  // namespace

Result<std::vector<EventInfo>> Engine::Events(const std::string& migration, int64_t after_id, int64_t limit) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, HasState(store));
  if (!has_state) return std::vector<EventInfo>();
  if (limit <= 0) return InvalidArgument("the event limit must be > 0");
  return store.EventsAfter(migration, after_id, limit);
}

Result<ChunkHistory> Engine::Chunks(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  ChunkHistory h;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, HasState(store));
  if (!has_state) return h;
  const std::string chunks = conn->dialect().StateTable("chunks");
  // One pass over the chunk log: totals and the histogram's buckets (in
  // seconds; the table keeps milliseconds).
  static const double kBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::string sql = "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(millis), 0)";
  for (double b : kBuckets) {
    sql += ", coalesce(sum(CASE WHEN millis <= " + std::to_string(b * 1000) + " THEN 1 ELSE 0 END), 0)";
  }
  sql += " FROM " + chunks + " WHERE migration = $1";
  auto r = conn->Query(sql, {db::Value::Text(migration)});
  if (!r.ok()) return r.status();
  const auto& row = r->rows.at(0);
  h.count = row[0].AsInt();
  h.rows = row[1].AsInt();
  h.sum_seconds = row[2].AsReal() / 1000.0;
  for (size_t i = 0; i < std::size(kBuckets); ++i) h.buckets.push_back({kBuckets[i], row[3 + i].AsInt()});
  h.buckets.push_back({-1, h.count});  // +Inf
  const std::string recent_sql = " FROM " + chunks + " WHERE migration = $1 ORDER BY committed_at DESC LIMIT 300";
  auto recent = conn->Query(
      "SELECT tbl, committed_at, rows, millis, " + std::string(kChunkSignalColumns) + recent_sql,
      {db::Value::Text(migration)});
  if (!recent.ok() && recent.status().code() == StatusCode::kNotFound) {
    // A chunks table made by an older sluice has no signal columns (the
    // next backfill adds them; this read must not).
    recent = conn->Query("SELECT tbl, committed_at, rows, millis, " + std::string(kNoChunkSignals) + recent_sql,
                         {db::Value::Text(migration)});
  }
  if (!recent.ok()) return recent.status();
  for (const auto& c : recent->rows) {
    ChunkSample sample;
    sample.table = c[0].text;
    sample.committed_at = c[1].text;
    sample.rows = c[2].AsInt();
    sample.seconds = c[3].AsReal() / 1000.0;
    sample.signals = SignalsOfRow(c, 4);
    h.recent.push_back(std::move(sample));
  }
  std::reverse(h.recent.begin(), h.recent.end());
  return h;
}

Result<std::optional<VerifyResult>> Engine::LastVerification(const std::string& migration) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, HasState(store));
  if (!has_state) return std::optional<VerifyResult>();
  SLUICE_ASSIGN_OR_RETURN(auto v, store.LastVerification(migration));
  if (!v) return std::optional<VerifyResult>();
  VerifyResult out;
  out.migration = migration;
  out.at = v->at;
  out.passed = v->passed;
  out.json = v->report;
  auto j = nlohmann::json::parse(v->report, nullptr, false);
  if (j.is_object() && j.contains("checks") && j["checks"].is_array()) {
    for (const auto& c : j["checks"]) {
      CheckResult cr;
      cr.name = c.value("name", "");
      cr.table = c.value("table", "");
      cr.column = c.value("column", "");
      cr.passed = c.value("passed", false);
      cr.skipped = c.value("skipped", false);
      cr.summary = c.value("summary", "");
      cr.checked = c.value("checked", int64_t{0});
      cr.failures = c.value("failures", int64_t{0});
      if (c.contains("evidence") && c["evidence"].is_array()) {
        for (const auto& e : c["evidence"]) {
          if (e.is_string()) cr.evidence.push_back(e.get<std::string>());
        }
      }
      out.checks.push_back(std::move(cr));
    }
  }
  return std::optional<VerifyResult>(std::move(out));
}

}  // namespace sluice::engine
