// `sluice estimate` (docs/handoff.md): how long a plan's phases will take
// and which lock each of its statements takes, measured without changing
// anything.
//
// Reads: the catalog's row estimates and sizes (Dialect::EstimatedRowsSql,
// TableBytesSql). Trial: in ONE transaction that is always rolled back, the
// state tables' DDL and start's statements are applied (so the plan's new
// columns exist), then `trial_chunks` chunks of the real per-chunk backfill
// statement run on key ranges starting at sampled keys, each timed, and a
// checksum over the same ranges is timed for verification. The
// transaction's lock timeout is short so the trial never queues behind the
// application; a refused lock is reported, never waited out.
#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sql_text.h"
#include "backfill/backfill.h"
#include "engine/history.h"
#include "engine/preflight.h"
#include "engine/estimate_model.h"
#include "plan/parser.h"

namespace sluice::engine {

using db::Value;
using nlohmann::json;
using estimate_model::Linear;
using estimate_model::Quantile;

std::string LockText(const db::LockInfo& l) { return l.mode + (l.on.empty() ? "" : " on " + l.on); }

db::LockInfo BackfillChunkLock(const db::Dialect& d, const db::BackfillTask& t) {
  const std::string sql = "UPDATE " + d.Table(t.table) + " SET ...";
  return d.LockOf(db::Step{db::RawSqlStep{sql}, "backfill"}, db::Statement{sql});
}

namespace {

// Seconds since this process started (the kernel's start time of the
// process against the boot clock), or 0 where /proc cannot say: what a
// sluice process spends before its first query, as the backfill's own
// process will (loading, parsing, opening the database).
double ProcessAgeSeconds() {
  std::ifstream f("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  // Field 3 (state) is the first after the command; starttime is field 22.
  for (int i = 3; i < 22 && rest >> field; ++i) {
  }
  unsigned long long start_ticks = 0;
  if (!(rest >> start_ticks)) return 0;
  timespec now{};
  if (clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
  const long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) return 0;
  const double age = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9 -
                     static_cast<double>(start_ticks) / static_cast<double>(hz);
  // Older than a CLI's start: the estimate runs inside a long-lived process
  // (a server, a test) whose age says nothing about a backfill's start.
  return age >= 0 && age < 2.0 ? age : 0;
}

// Runs `sql` and returns its seconds.
Result<double> Timed(db::Connection& conn, Clock& clock, const std::string& sql,
                     const std::vector<Value>& params = {}) {
  const int64_t t0 = clock.NowMicros();
  SLUICE_RETURN_IF_ERROR(conn.Query(sql, params).status());
  return static_cast<double>(clock.NowMicros() - t0) / 1e6;
}

std::string FirstLine(const std::string& sql) {
  size_t start = 0;
  // Skip the comment lines sluice puts before a statement.
  while (sql.compare(start, 2, "--") == 0) {
    size_t nl = sql.find('\n', start);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  std::string line = sql.substr(start, sql.find('\n', start) - start);
  if (line.size() > 120) line = line.substr(0, 117) + "...";
  return line;
}

// A key tuple as SQL parameters $first..$first+n-1: "($1, $2)".
std::string Params(size_t n, size_t first) {
  std::string s = "(";
  for (size_t i = 0; i < n; ++i) s += (i ? ", $" : "$") + std::to_string(first + i);
  return s + ")";
}

std::string KeyColumns(const db::Dialect& d, const std::vector<std::string>& key, const char* order = "") {
  std::string cols;
  for (const auto& k : key) cols += (cols.empty() ? "" : ", ") + d.Quote(k) + order;
  return cols;
}

// Up to `n` sampled keys of `table`: where the trial chunks start.
Result<std::vector<db::Row>> SampleStarts(db::Connection& conn, const std::string& table,
                                          const std::vector<std::string>& key, int n, bool in_key_order = false) {
  const db::Dialect& d = conn.dialect();
  std::string sample = d.SampleKeysSql(d.Table(table), key, n);
  if (sample.empty()) {
    sample = "SELECT " + KeyColumns(d, key) + " FROM " + d.Table(table) + " ORDER BY random() LIMIT " +
             std::to_string(n);
  }
  if (in_key_order) sample = "SELECT * FROM (" + sample + ") AS s ORDER BY " + KeyColumns(d, key);
  SLUICE_ASSIGN_OR_RETURN(auto starts, conn.Query(sample));
  return starts.rows;
}

// The key `rows` keys after `lo` (the backfill's own bound query), or the
// table's last key when fewer follow; empty when the table is empty.
Result<std::vector<Value>> RangeEnd(db::Connection& conn, const std::string& table,
                                    const std::vector<std::string>& key, const std::vector<Value>& lo, int64_t rows) {
  const db::Dialect& d = conn.dialect();
  const std::string cols = KeyColumns(d, key);
  SLUICE_ASSIGN_OR_RETURN(auto hi, conn.Query("SELECT " + cols + " FROM " + d.Table(table) + " WHERE (" + cols +
                                                  ") > " + Params(key.size(), 1) + " ORDER BY " + cols +
                                                  " LIMIT 1 OFFSET " + std::to_string(std::max<int64_t>(0, rows - 1)),
                                              lo));
  if (!hi.rows.empty()) return hi.rows[0];
  SLUICE_ASSIGN_OR_RETURN(auto mx, conn.Query("SELECT " + cols + " FROM " + d.Table(table) + " ORDER BY " +
                                              KeyColumns(d, key, " DESC") + " LIMIT 1"));
  if (mx.rows.empty()) return std::vector<Value>();
  return mx.rows[0];
}

// The trial's chunks: at least --trial-chunks and kMinTrialSeconds of them,
// at most kMaxTrialFactor x --trial-chunks.
constexpr double kMinTrialSeconds = 1.0;
constexpr int kMaxTrialFactor = 8;

// The server's speed-up for `workers` concurrent chunk writers over one.
// The trial's chunks cannot run concurrently (a second session cannot see
// the trial's uncommitted new columns), so a stand-in of the same work per
// row is timed instead: a hash of every column over key ranges of `rows`
// rows (reading and computing like a chunk's `up`), one range after the
// other on one session, then one range per session on `workers` sessions at
// once; 3 rounds after a warm-up. p50/low/high: the median, the worst and
// the best of the rounds, each within 1..workers.
struct Speedup {
  double p50 = 1, low = 1, high = 1;
};

Result<Speedup> MeasureSpeedup(const std::function<Result<std::unique_ptr<db::Connection>>()>& connect,
                               db::Connection& conn, Clock& clock, int workers, const db::TableInfo& table,
                               const std::vector<std::string>& key, int64_t rows) {
  Speedup out;
  const db::Dialect& d = conn.dialect();
  std::vector<std::string> cols;
  for (const auto& col : table.columns) cols.push_back(d.Quote(col.name));
  const std::string hash = d.RowHash(cols);
  if (hash.empty() || workers < 2) return out;
  const std::string keys = KeyColumns(d, key);
  const std::string sql = "SELECT count(*), max(" + hash + ") FROM " + d.Table(table.name) + " WHERE (" + keys +
                          ") > " + Params(key.size(), 1) + " AND (" + keys + ") <= " +
                          Params(key.size(), key.size() + 1);
  // Ranges of at least a few thousand rows, so each read takes a while.
  rows = std::max<int64_t>(rows, 5000);
  SLUICE_ASSIGN_OR_RETURN(auto starts, SampleStarts(conn, table.name, key, workers));
  if (static_cast<int>(starts.size()) < workers) return out;
  std::vector<std::vector<Value>> params;
  for (const auto& lo : starts) {
    SLUICE_ASSIGN_OR_RETURN(auto hi, RangeEnd(conn, table.name, key, lo, rows));
    if (hi.empty()) return out;
    std::vector<Value> p = lo;
    p.insert(p.end(), hi.begin(), hi.end());
    params.push_back(std::move(p));
  }
  std::vector<std::unique_ptr<db::Connection>> sessions;
  for (int i = 0; i < workers; ++i) {
    SLUICE_ASSIGN_OR_RETURN(auto s, connect());
    sessions.push_back(std::move(s));
  }
  std::vector<double> ratios;
  for (int round = 0; round < 4; ++round) {
    const int64_t t0 = clock.NowMicros();
    for (const auto& p : params) SLUICE_RETURN_IF_ERROR(conn.Query(sql, p).status());
    const double alone = static_cast<double>(clock.NowMicros() - t0) / 1e6;
    std::vector<Status> results(sessions.size(), Status::Ok());
    std::vector<std::thread> threads;
    const int64_t t1 = clock.NowMicros();
    for (size_t i = 0; i < sessions.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = sessions[i]->Query(sql, params[i]).status(); });
    }
    for (auto& t : threads) t.join();
    const double together = static_cast<double>(clock.NowMicros() - t1) / 1e6;
    for (const auto& r : results) SLUICE_RETURN_IF_ERROR(r);
    if (round > 0) ratios.push_back(std::clamp(alone / std::max(1e-6, together), 1.0, static_cast<double>(workers)));
  }
  out.p50 = Quantile(ratios, 0.5);
  out.low = Quantile(ratios, 0.0);
  out.high = Quantile(ratios, 1.0);
  return out;
}

// Rows of `table`: the catalog's estimate when it has one, else counted.
Result<std::pair<int64_t, std::string>> RowsOf(db::Connection& conn, const std::string& table) {
  const db::Dialect& d = conn.dialect();
  const std::string sql = d.EstimatedRowsSql(table);
  if (!sql.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto r, conn.Query(sql));
    if (!r.rows.empty() && !r.rows[0][0].is_null() && r.rows[0][0].AsInt() >= 0) {
      return std::make_pair(r.rows[0][0].AsInt(), std::string("catalog estimate"));
    }
  }
  SLUICE_ASSIGN_OR_RETURN(auto r, conn.Query("SELECT count(*) FROM " + d.Table(table)));
  return std::make_pair(r.Scalar().AsInt(), std::string("count(*)"));
}

json ToJson(const EstimateResult& e) {
  json tables = json::array(), estimates = json::array(), locks = json::array();
  for (const auto& t : e.tables) {
    tables.push_back({{"table", t.table}, {"rows", t.rows}, {"rows_source", t.rows_source}, {"bytes", t.bytes},
                      {"trial_chunks", t.trial_chunks}, {"trial_rows", t.trial_rows},
                      {"trial_seconds", t.trial_seconds}, {"rows_per_second_p50", t.rows_per_second_p50},
                      {"rows_per_second_p10", t.rows_per_second_p10}});
  }
  for (const auto& x : e.estimates) {
    estimates.push_back({{"phase", x.phase}, {"subject", x.subject}, {"p50_seconds", x.p50_seconds},
                         {"p90_seconds", x.p90_seconds},
                         {"p10_seconds", x.p10_seconds >= 0 ? x.p10_seconds
                                                             : x.p50_seconds * x.p50_seconds / std::max(x.p90_seconds, 1e-9)},
                         {"method", x.method}});
  }
  for (const auto& l : e.locks) {
    locks.push_back({{"phase", l.phase}, {"statement", l.statement}, {"summary", l.summary}, {"lock", l.lock},
                     {"on", l.on}});
  }
  return {{"estimate_format", 1}, {"migration", e.migration}, {"database", e.database}, {"at", e.at},
          {"tables", tables},     {"estimates", estimates},   {"locks", locks},         {"notes", e.notes}};
}

}  // namespace

Result<EstimateResult> EstimateFromJson(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) return InvalidArgument("the recorded estimate is not a JSON object");
  EstimateResult e;
  e.json = text;
  e.migration = j.value("migration", "");
  e.database = j.value("database", "");
  e.at = j.value("at", "");
  if (j.contains("tables") && j["tables"].is_array()) {
    for (const auto& t : j["tables"]) {
      TableEstimateInfo i;
      i.table = t.value("table", "");
      i.rows = t.value("rows", int64_t{0});
      i.rows_source = t.value("rows_source", "");
      i.bytes = t.value("bytes", int64_t{-1});
      i.trial_chunks = t.value("trial_chunks", int64_t{0});
      i.trial_rows = t.value("trial_rows", int64_t{0});
      i.trial_seconds = t.value("trial_seconds", 0.0);
      i.rows_per_second_p50 = t.value("rows_per_second_p50", 0.0);
      i.rows_per_second_p10 = t.value("rows_per_second_p10", 0.0);
      e.tables.push_back(std::move(i));
    }
  }
  if (j.contains("estimates") && j["estimates"].is_array()) {
    for (const auto& x : j["estimates"]) {
      e.estimates.push_back({x.value("phase", ""), x.value("subject", ""), x.value("p50_seconds", 0.0),
                             x.value("p90_seconds", 0.0), x.value("method", ""), x.value("p10_seconds", -1.0)});
    }
  }
  if (j.contains("locks") && j["locks"].is_array()) {
    for (const auto& l : j["locks"]) {
      e.locks.push_back({l.value("phase", ""), l.value("statement", 0), l.value("summary", ""), l.value("lock", ""),
                         l.value("on", "")});
    }
  }
  return e;
}

Result<EstimateResult> Engine::Estimate(const std::string& plan_path, const EstimateOptions& options) {
  if (options.trial_chunks < 1) return InvalidArgument("--trial-chunks must be at least 1");
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path));
  // What a sluice process spends before its first query, and one
  // connection: the backfill's process pays both (a connection per worker).
  const double process_seconds = ProcessAgeSeconds();
  const int64_t connect_t0 = clock()->NowMicros();
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  const double connect_seconds = static_cast<double>(clock()->NowMicros() - connect_t0) / 1e6;
  const db::Dialect& d = conn->dialect();
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(p.name));
    if (rec && rec->phase != kRolledBack) {
      return FailedPrecondition("migration '" + p.name + "' is already " + rec->phase +
                                " here; estimate a plan before starting it (`sluice status` shows the running one)");
    }
  }
  SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
  // Everything from here runs in one transaction under a short lock
  // timeout, rolled back at the end or on any error: even introspection
  // waits for a table's lock (e.g. behind an application's ACCESS
  // EXCLUSIVE), and the trial must never queue behind the application.
  struct RollbackGuard {
    db::Connection* conn;
    ~RollbackGuard() {
      if (conn) conn->Rollback().IgnoreError();
    }
  };
  // The trial runs under the backfill's own session settings (SQLite in
  // WAL: synchronous = NORMAL), so that its chunks and the commit probe pay
  // what the backfill's will.
  {
    SLUICE_ASSIGN_OR_RETURN(auto tuning, conn->BackfillTuningSql(false));
    for (const auto& t : tuning) SLUICE_RETURN_IF_ERROR(conn->Exec(t));
  }
  SLUICE_RETURN_IF_ERROR(conn->Begin().WithContext("beginning the estimate's trial transaction"));
  RollbackGuard guard{conn.get()};
  auto refused = [&](const Status& s) -> Status {
    if (s.code() != StatusCode::kAborted) return s.WithContext("the estimate's trial (rolled back; nothing changed)");
    return Aborted(fmt::format("the estimate's trial could not get its locks within {} ms ({}); it was rolled "
                               "back and changed nothing: retry at a quieter moment, or raise "
                               "--trial-lock-timeout-ms",
                               options.lock_timeout_ms, s.message()));
  };
  {
    const std::string lock_timeout = d.LockTimeoutSql(options.lock_timeout_ms);
    if (!lock_timeout.empty()) SLUICE_RETURN_IF_ERROR(conn->Exec(lock_timeout));
  }
  auto introspected = conn->Introspect();
  if (!introspected.ok()) return refused(introspected.status());
  db::Schema schema = std::move(*introspected);
  SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, CompileAsStartWould(p, schema, d, prev));

  EstimateResult out;
  out.migration = p.name;
  out.database = std::string(d.name());
  out.at = IsoTime(clock()->WallMicros());

  // --- every statement's lock ---
  std::vector<PhaseSql> phases = {
      RenderPhase(d, "start", c.start),
      BackfillPhase(d, c),
      RenderPhase(d, "switch", {{db::SetLiveStep{c.version.name, c.version}, "switch"}}),
      RenderPhase(d, "switch_back", {{db::SetLiveStep{c.version.previous, c.version}, "switch back"}}),
      RenderPhase(d, "complete", c.complete),
      RenderPhase(d, "rollback", c.rollback)};
  // The locks, straight from the steps (PhaseSql::locks holds them as text).
  auto add_locks = [&](const std::string& phase, const std::vector<db::Step>& steps) {
    int i = 0;
    for (const auto& step : steps) {
      for (const auto& st : d.Render(step)) {
        db::LockInfo li = d.LockOf(step, st);
        out.locks.push_back({phase, i++, FirstLine(st.sql), li.mode, li.on});
      }
    }
  };
  add_locks("start", c.start);
  for (size_t i = 0; i < c.backfill.size(); ++i) {
    db::LockInfo li = BackfillChunkLock(d, c.backfill[i]);
    out.locks.push_back({"backfill", static_cast<int>(i), "UPDATE " + d.Table(c.backfill[i].table) +
                         " SET ... (per chunk)", li.mode, li.on});
  }
  add_locks("switch", {{db::SetLiveStep{c.version.name, c.version}, "switch"}});
  add_locks("switch_back", {{db::SetLiveStep{c.version.previous, c.version}, "switch back"}});
  add_locks("complete", c.complete);
  add_locks("rollback", c.rollback);
  out.phases = phases;

  // --- sizes ---
  std::map<std::string, size_t> table_index;
  // Seconds of the backfill's counting scan of each table, and of its
  // gate's parity counts (old and new read path), timed in the trial.
  std::map<std::string, double> count_seconds, parity_seconds;
  out.tables.reserve(c.tables.size() + c.start.size());
  auto table_info = [&](const std::string& t) -> Result<TableEstimateInfo*> {
    auto it = table_index.find(t);
    if (it != table_index.end()) return &out.tables[it->second];
    TableEstimateInfo info;
    info.table = t;
    if (schema.FindTable(t)) {
      SLUICE_ASSIGN_OR_RETURN(auto rows, RowsOf(*conn, t));
      info.rows = rows.first;
      info.rows_source = rows.second;
      const std::string bytes_sql = d.TableBytesSql(t);
      if (!bytes_sql.empty()) {
        auto b = conn->Query(bytes_sql);
        if (b.ok() && !b->rows.empty() && !b->rows[0][0].is_null()) info.bytes = b->rows[0][0].AsInt();
      }
    }
    table_index[t] = out.tables.size();
    out.tables.push_back(std::move(info));
    return &out.tables.back();
  };

  // --- the trial, rolled back ---
  // The backfill's chunk sizing (backfill::Settings, as RunBackfill sets it).
  const backfill::Settings defaults;
  const int64_t first_rows =
      options.chunk_rows > 0 ? options.chunk_rows : p.backfill.chunk_rows.value_or(defaults.chunk_rows);
  const int64_t chunk_rows = first_rows;
  const int64_t min_rows = p.backfill.chunk_min_rows.value_or(defaults.chunk_min_rows);
  const int64_t max_rows = std::max(p.backfill.chunk_max_rows.value_or(defaults.chunk_max_rows), min_rows);
  const int64_t target_ms = p.backfill.chunk_target_ms.value_or(d.default_chunk_target_ms());
  struct TrialFit {
    Linear cost;  // one chunk's seconds, commit included, by its rows
    int64_t first = 0, steady = 0;
    std::vector<double> pace;          // seconds per row of every timed chunk, commit included
    double commit_first = 0, commit_steady = 0;
  };
  std::map<std::string, TrialFit> fits;
  std::map<std::string, std::vector<double>> chunk_rates, chunk_seconds, verify_per_row, sort_per_row, rescan_ratio;
  // Each timed trial range with its count's seconds before its rewrite,
  // counted again after the rollback (below).
  struct Recount {
    std::string table, sql;
    std::vector<Value> params;
    double before = 0;
  };
  std::vector<Recount> recounts;
  std::map<std::string, int64_t> trial_rewritten;  // rows the trial rewrote (warm-up included)
  double start_seconds = 0;
  int64_t start_statements = 0;
  auto trial = [&]() -> Status {
    // Sizes first, under the same lock timeout (a count waits for locks).
    for (const auto& t : c.tables) SLUICE_RETURN_IF_ERROR(table_info(t).status());
    for (const auto& ddl : d.StateSchema()) SLUICE_RETURN_IF_ERROR(conn->Exec(ddl));
    const int64_t t0 = clock()->NowMicros();
    for (const auto& step : c.start) {
      for (const auto& st : d.Render(step)) {
        // Index builds CONCURRENTLY cannot run in a transaction; they are
        // estimated from the table's size instead (below).
        if (st.outside_transaction) continue;
        SLUICE_RETURN_IF_ERROR(conn->Execute(st).WithContext("applying start's statement " + FirstLine(st.sql)));
        ++start_statements;
      }
    }
    start_seconds = static_cast<double>(clock()->NowMicros() - t0) / 1e6;
    // The backfill's session: its dual-write bypass, as its chunks run.
    for (const auto& sql : d.BackfillSessionSetup()) SLUICE_RETURN_IF_ERROR(conn->Exec(sql));
    // The backfill's fixed costs, timed: its counting scan of each table
    // (unless the size above was counted already), and its gate's parity
    // counts through the old and the new read path (now that start's
    // statements made them), read past the new version's readiness guard
    // as the gate does.
    // The same statements as src/backfill/backfill.cc's first run: the
    // last key, the count up to it (a parameter: the server may plan it
    // differently from a plain count) and, where the table is split for
    // workers, the partition bounds.
    for (const auto& task : c.backfill) {
      const std::string keys = KeyColumns(d, task.key);
      SLUICE_ASSIGN_OR_RETURN(auto high, conn->Query("SELECT " + keys + " FROM " + d.Table(task.table) +
                                                     " ORDER BY " + KeyColumns(d, task.key, " DESC") + " LIMIT 1"));
      if (high.rows.empty()) continue;
      SLUICE_ASSIGN_OR_RETURN(double secs,
                              Timed(*conn, *clock(), backfill::CountUpToSql(d, task.table, task.key), high.rows[0]));
      const int64_t rows = (*table_info(task.table))->rows;
      // The workers are picked below; their count changes only how many
      // bounds there are, not the one pass that finds them.
      const int64_t parts = backfill::PartitionCount(d, rows, 1);
      if (parts > 1) {
        const int64_t step = std::max<int64_t>(1, rows / parts);
        SLUICE_ASSIGN_OR_RETURN(double bounds,
                                Timed(*conn, *clock(), backfill::PartitionBoundsSql(d, task.table, task.key, step, parts),
                                      high.rows[0]));
        secs += bounds;
      }
      count_seconds[task.table] = secs;
    }
    {
      const std::string bypass = d.ReadUnreadySql(true);
      if (!bypass.empty()) SLUICE_RETURN_IF_ERROR(conn->Exec(bypass));
      for (const auto& m : c.version.tables) {
        if (!m.changed || m.created) continue;
        for (const std::string& path : {d.OldReadPath(c.version, m), d.NewReadPath(c.version, m)}) {
          SLUICE_ASSIGN_OR_RETURN(double secs, Timed(*conn, *clock(), "SELECT count(*) FROM " + path));
          parity_seconds[m.logical] += secs;
        }
      }
    }
    for (const auto& task : c.backfill) {
      // One more start than timed chunks: the first chunk warms the cache
      // up and is not counted (the backfill's first chunk is one of many).
      // Short chunks (PostgreSQL's 30 ms target) are timed on until the
      // trial has lasted kMinTrialSeconds, up to kMaxTrialFactor times
      // as many: a few 30 ms chunks are one moment of a busy server.
      // The starts in key order, each range as long as the backfill's, and
      // a start inside the last timed range skipped: ranges that overlapped
      // rewrote rows the trial had rewritten already, in pages it had just
      // touched, at a fraction of a first rewrite's cost (SQLite, 1M rows:
      // 0.43 us/row against the backfill's 0.94, the trial rewriting 1.9M
      // rows of the 1M); ranges cut short at the next start were too short
      // to time well (PostgreSQL: P10-P90 widened to x4 either way); and a
      // second lower bound in the range's queries made SQLite seek by the
      // first and scan to the second (each chunk slower than the last).
      SLUICE_ASSIGN_OR_RETURN(auto starts, SampleStarts(*conn, task.table, task.key,
                                                        options.trial_chunks * kMaxTrialFactor + 1, true));
      double timed_seconds = 0;
      int timed_chunks = 0;
      std::string set;
      for (size_t i = 0; i < task.assignments.size(); ++i) {
        set += (i ? ", " : "") + d.Quote(task.assignments[i].target) + " = " +
               sql::ScalarExpression(task.assignments[i].expr);
      }
      const std::string key = KeyColumns(d, task.key);
      const size_t k = task.key.size();
      const std::string where = "(" + key + ") > " + Params(k, 1) + " AND (" + key + ") <= " + Params(k, k + 1);
      // Whether a start lies inside the last range (the database compares:
      // its collation orders the keys), by the start's own key.
      std::string same;
      for (size_t j = 0; j < k; ++j) {
        same += (j ? " AND " : "") + d.Quote(task.key[j]) + " = $" + std::to_string(j + 1);
      }
      const std::string inside = "SELECT 1 FROM " + d.Table(task.table) + " WHERE " + same + " AND (" + key +
                                 ") <= " + Params(k, k + 1);
      std::vector<Value> last_end;  // where the last timed range ended
      const std::string update = "UPDATE " + d.Table(task.table) + " SET " + set + " WHERE " +
                                 (task.skip_flag.empty() ? "" : d.Quote(task.skip_flag) + " IS NULL AND ") + where;
      const db::TableInfo* ti = schema.FindTable(task.table);
      std::vector<std::string> cols;
      if (ti) {
        for (const auto& col : ti->columns) cols.push_back(d.Quote(col.name));
      }
      for (const auto& a : task.assignments) cols.push_back(d.Quote(a.target));
      std::string hash = d.RowHash(cols);
      const std::string checksum = "SELECT count(*), " + (hash.empty() ? std::string("0") : "max(" + hash + ")") +
                                   " FROM " + d.Table(task.table) + " WHERE " + where;
      const std::string sorted = "SELECT " + key + " FROM " + d.Table(task.table) + " WHERE " + where +
                                 " ORDER BY " + key + " DESC";
      const std::string counted = "SELECT count(*) FROM " + d.Table(task.table) + " WHERE " + where;
      // The bytes a chunk writes per row, for the commit's cost.
      std::string row_bytes;
      for (const auto& col : cols) row_bytes += (row_bytes.empty() ? "" : " + ") + ("coalesce(length(CAST(" + col + " AS TEXT)), 0)");
      const std::string bytes = "SELECT avg(" + row_bytes + ") FROM " + d.Table(task.table) + " WHERE " + where;
      // Chunks run as the backfill runs them: the bound query, the update
      // and the chunk's state row, timed together; the first third at the
      // first chunk's size, the rest at the size the backfill settles on
      // (its chunk target at the first chunks' pace, capped by its limits).
      // The commit, which the rolled-back trial cannot time, is timed on a
      // scratch database of the same storage (Connection::TimeCommit).
      TrialFit& fit = fits[task.table];
      fit.first = first_rows;
      fit.steady = first_rows;
      const size_t n_first =
          1 + std::max<size_t>(1, (std::min<size_t>(starts.size(), options.trial_chunks + 1) + 1) / 3);
      std::vector<std::pair<double, double>> points;
      double bytes_per_row = 0;
      std::map<int64_t, double> commit_at;  // chunk size -> one commit's seconds
      auto commit_seconds = [&](int64_t n) -> Result<double> {
        auto it = commit_at.find(n);
        if (it != commit_at.end()) return it->second;
        SLUICE_ASSIGN_OR_RETURN(double secs, conn->TimeCommit(n, std::llround(bytes_per_row) + 16));
        commit_at[n] = secs;
        return secs;
      };
      for (size_t i = 0; i < starts.size(); ++i) {
        const bool warm_up = i == 0 && starts.size() > 1;
        if (timed_chunks >= options.trial_chunks && timed_seconds >= kMinTrialSeconds) break;
        if (i == n_first && !points.empty()) {
          // Seconds per row of the first chunks, commit included.
          double rows = 0, secs = 0;
          for (const auto& [n, t] : points) {
            rows += n;
            secs += t;
          }
          const double pace = secs / std::max(1.0, rows);
          fit.steady = std::clamp<int64_t>(std::llround(static_cast<double>(target_ms) / 1000.0 / std::max(pace, 1e-9)),
                                           min_rows, max_rows);
        }
        const int64_t size = i < n_first ? fit.first : fit.steady;
        for (const auto& s : task.setup_sql) SLUICE_RETURN_IF_ERROR(conn->Exec(s));
        int64_t c0 = clock()->NowMicros();
        if (!last_end.empty()) {
          std::vector<Value> both = starts[i];
          both.insert(both.end(), last_end.begin(), last_end.end());
          SLUICE_ASSIGN_OR_RETURN(auto in, conn->Query(inside, both));
          if (!in.rows.empty()) continue;
          c0 = clock()->NowMicros();
        }
        SLUICE_ASSIGN_OR_RETURN(auto hi, RangeEnd(*conn, task.table, task.key, starts[i], size));
        if (hi.empty()) continue;
        std::vector<Value> params = starts[i];
        params.insert(params.end(), hi.begin(), hi.end());
        last_end = hi;
        // The range counted before its rewrite, and again after the trial's
        // rollback (below): how much slower the gate's counts read a
        // rewritten table.
        double counted_before = 0;
        if (!warm_up) {
          const int64_t b0 = clock()->NowMicros();
          SLUICE_RETURN_IF_ERROR(conn->Query(counted, params).status());
          counted_before = static_cast<double>(clock()->NowMicros() - b0) / 1e6;
          c0 += clock()->NowMicros() - b0;  // not part of the chunk
        }
        SLUICE_ASSIGN_OR_RETURN(auto res, conn->Query(update, params));
        // Nothing after the last range: the trial has reached the table's end.
        if (res.affected == 0) break;
        trial_rewritten[task.table] += res.affected;
        SLUICE_RETURN_IF_ERROR(conn->Query("INSERT INTO " + d.StateTable("chunks") +
                                               " (migration, tbl, worker, chunk, from_key, to_key, rows, millis, "
                                               "committed_at) VALUES ($1, $2, 0, $3, NULL, '[]', $4, 0, '')",
                                           {Value::Text(p.name), Value::Text(task.table),
                                            Value::Int(static_cast<int64_t>(i) + 1), Value::Int(res.affected)})
                                 .status());
        double secs = std::max(1e-6, static_cast<double>(clock()->NowMicros() - c0) / 1e6);
        if (warm_up) continue;
        timed_seconds += secs;
        ++timed_chunks;
        if (bytes_per_row <= 0) {
          SLUICE_ASSIGN_OR_RETURN(auto b, conn->Query(bytes, params));
          if (!b.rows.empty() && !b.rows[0][0].is_null()) bytes_per_row = b.rows[0][0].AsReal();
        }
        // A range cut short by the end of the table writes fewer rows than
        // its size, and its commit costs less (a commit writes the chunk's
        // pages): between the two timed sizes, in proportion to the rows.
        SLUICE_ASSIGN_OR_RETURN(double commit, commit_seconds(size));
        if (res.affected < size && size > fit.first && commit_at.count(fit.first)) {
          const double lo = commit_at[fit.first];
          const double share = static_cast<double>(std::max<int64_t>(0, res.affected - fit.first)) /
                               static_cast<double>(size - fit.first);
          commit = lo + (std::max(commit, lo) - lo) * share;
        }
        secs += commit;
        TableEstimateInfo* info = *table_info(task.table);
        info->trial_chunks++;
        info->trial_rows += res.affected;
        info->trial_seconds += secs;
        if (res.affected > 0) {
          chunk_rates[task.table].push_back(static_cast<double>(res.affected) / secs);
          points.emplace_back(static_cast<double>(res.affected), secs);
          fit.pace.push_back(secs / static_cast<double>(res.affected));
        }
        chunk_seconds[task.table].push_back(secs);
        c0 = clock()->NowMicros();
        SLUICE_ASSIGN_OR_RETURN(auto cs, conn->Query(checksum, params));
        const int64_t n = cs.rows.empty() ? 0 : cs.rows[0][0].AsInt();
        if (n > 0) verify_per_row[task.table].push_back(static_cast<double>(clock()->NowMicros() - c0) / 1e6 / n);
        if (counted_before > 0) recounts.push_back({task.table, counted, params, counted_before});
        c0 = clock()->NowMicros();
        SLUICE_ASSIGN_OR_RETURN(auto so, conn->Query(sorted, params));
        if (!so.rows.empty()) {
          sort_per_row[task.table].push_back(static_cast<double>(clock()->NowMicros() - c0) / 1e6 /
                                             static_cast<double>(so.rows.size()));
        }
      }
      fit.cost = estimate_model::FitChunkCost(points);
      fit.commit_first = commit_at.count(fit.first) ? commit_at[fit.first] : 0;
      fit.commit_steady = commit_at.count(fit.steady) ? commit_at[fit.steady] : 0;
    }
    return Status::Ok();
  };
  Status tried = trial();
  guard.conn = nullptr;
  Status rolled = conn->Rollback();
  if (!rolled.ok()) {
    return rolled.WithContext("rolling back the estimate's trial (nothing it did was committed)");
  }
  // How much slower the gate's counts read a table after its rewrite. Inside
  // the trial the new row versions are the session's own, which a scan
  // checks cheaply (measured x2-6 against x6.5-8.4 after a real backfill).
  // After the rollback the trial ranges are physically what a backfilled
  // table is -- two versions of each row, pages no longer all-visible, hint
  // bits still to set on the first visit -- so their recount is.
  if (tried.ok()) {
    for (const Recount& r : recounts) {
      const int64_t t = clock()->NowMicros();
      auto again = conn->Query(r.sql, r.params);
      if (!again.ok()) {
        tried = again.status().WithContext("recounting a trial range after the rollback");
        break;
      }
      rescan_ratio[r.table].push_back(static_cast<double>(clock()->NowMicros() - t) / 1e6 / r.before);
    }
  }
  if (!tried.ok()) {
    if (tried.code() == StatusCode::kAborted) {
      std::vector<std::string> tables(c.tables.begin(), c.tables.end());
      std::string holders = conn->DescribeLockHolders(tables);
      if (!holders.empty()) tried = Aborted(tried.message() + "; held by " + holders);
    }
    return refused(tried);
  }

  // --- the predictions ---
  // The backfill's workers (as RunBackfill picks them) and the server's
  // measured speed-up for that many concurrent writers.
  int workers = 1;
  if (d.parallel_backfill()) {
    workers = static_cast<int>(p.backfill.workers.value_or(0));
    if (workers < 1 && !d.DefaultBackfillWorkersSql().empty()) {
      auto w = conn->Query(d.DefaultBackfillWorkersSql());
      if (w.ok() && !w->rows.empty()) workers = static_cast<int>(w->rows[0][0].AsInt());
    }
    workers = std::max(1, workers);
  }
  Speedup speedup;
  if (workers > 1 && !c.backfill.empty()) {
    const auto& task = c.backfill.front();
    const db::TableInfo* ti = schema.FindTable(task.table);
    if (ti) {
      SLUICE_ASSIGN_OR_RETURN(speedup, MeasureSpeedup([this]() { return Connect(); }, *conn, *clock(), workers, *ti,
                                                      task.key, fits[task.table].steady));
    }
  }
  // One of the run's own small transactions: a round trip and a commit.
  double own_transaction_seconds = 0, round_trip_seconds = 0;
  {
    std::vector<double> rtt;
    // Enough samples that a stall of the machine does not become the median.
    for (int i = 0; i < 15; ++i) {
      SLUICE_ASSIGN_OR_RETURN(double t, Timed(*conn, *clock(), "SELECT 1"));
      rtt.push_back(t);
    }
    SLUICE_ASSIGN_OR_RETURN(double small_commit, conn->TimeCommit(1, 64));
    round_trip_seconds = Quantile(rtt, 0.5);
    own_transaction_seconds = 3 * round_trip_seconds + small_commit;
  }
  double backfill_p50 = 0, backfill_p90 = 0, verify_p50 = 0, verify_p90 = 0;
  for (const auto& task : c.backfill) {
    TableEstimateInfo& info = **table_info(task.table);
    const auto& rates = chunk_rates[task.table];
    DurationEstimate e;
    e.phase = "backfill";
    e.subject = task.table;
    if (rates.empty() || info.rows == 0) {
      // Nothing to rewrite (or nothing the trial could time): one chunk.
      const double one = chunk_seconds[task.table].empty() ? 0.01 : Quantile(chunk_seconds[task.table], 0.5);
      e.p50_seconds = std::max(0.001, one);
      e.p90_seconds = std::max(e.p50_seconds, one * 2);
      e.method = "no rows to rewrite: one chunk";
    } else {
      const TrialFit& fit = fits[task.table];
      info.rows_per_second_p50 = Quantile(rates, 0.5);
      info.rows_per_second_p10 = Quantile(rates, 0.1);
      estimate_model::BackfillInputs in;
      in.rows = info.rows;
      in.first = fit.first;
      in.steady = fit.steady;
      in.cost = fit.cost;
      // A real chunk is its own transaction: BEGIN, its search_path, the
      // migration row's guard, its checkpoint row read and written, COMMIT
      // — 6 round trips the trial's chunks (bound, UPDATE, state row) do
      // not make.
      in.cost.a += 6 * round_trip_seconds;
      in.pace = fit.pace;
      in.workers = workers;
      // As the backfill partitions a table (src/backfill/backfill.cc).
      in.partitions = static_cast<int>(backfill::PartitionCount(d, info.rows, workers));
      in.speedup = speedup.p50;
      in.speedup_low = speedup.low;
      in.speedup_high = speedup.high;
      // Around the chunks, timed: the counting scan, the gate's parity
      // counts; once per run: the process's start, its connections (the
      // coordinator's, the Pacer's and one per worker) and its own
      // transactions (lease, checkpoint rows, gate, readiness), about 8.
      // The gate counts the table after its rewrite: its parity counts timed
      // before, times how much slower the trial ranges counted after their
      // rewrite than before. The backfill's own counting scan reads the
      // trial's rolled-back row versions too (until a vacuum), on the share
      // of the table the trial rewrote.
      const double rescan = std::clamp(Quantile(rescan_ratio[task.table], 0.5), 1.0, 20.0);
      const double trial_share =
          info.rows > 0 ? std::min(1.0, static_cast<double>(trial_rewritten[task.table]) / info.rows) : 0;
      const double count = count_seconds[task.table] * (1 + trial_share * (rescan - 1));
      const double parity = parity_seconds[task.table] * rescan;
      const double once = &task == &c.backfill.front()
                              ? process_seconds + (2 + workers) * connect_seconds + 8 * own_transaction_seconds
                              : 0;
      in.fixed_seconds = count + parity + once;
      const estimate_model::BackfillPrediction pr = estimate_model::PredictBackfill(in);
      e.p10_seconds = pr.p10;
      e.p50_seconds = pr.p50;
      e.p90_seconds = pr.p90;
      e.method = fmt::format(
          "{} rows ({}) in {} chunks as the backfill sizes them ({} rows first, then up to {} at its {} ms target), "
          "each {:.2f} ms + {:.3f} us/row, fitted to {} trial chunks (after one warm-up chunk) timed with their state "
          "row under the backfill's session settings, each with a commit timed on a scratch database ({:.2f} ms at "
          "{} rows) and 6 round trips of its own transaction ({:.3f} ms each): {:.3f} s for one writer; {} worker{} at a measured speed-up of {:.2f} ({:.2f}-{:.2f}); plus "
          "{:.3f} s timed around the chunks (counting scan and partition bounds {:.3f} s, {:.0f}% of the table reread "
          "with the trial's rolled-back versions, gate parity counts {:.3f} s "
          "(x{:.2f} for a rewritten table), process start "
          "{:.3f} s, connections {:.3f} s each, own transactions {:.4f} s each); P10 and P90 from the chunks' "
          "pace spread (/{:.2f}, x{:.2f}) and the speed-up's",
          info.rows, info.rows_source, pr.chunks, fit.first, fit.steady, target_ms, fit.cost.a * 1e3,
          fit.cost.b * 1e6, rates.size(), fit.commit_steady * 1e3, fit.steady, round_trip_seconds * 1e3, pr.chunk_seconds, workers,
          workers == 1 ? "" : "s", speedup.p50, speedup.low, speedup.high, in.fixed_seconds, count, trial_share * 100, parity, rescan,
          process_seconds, connect_seconds, own_transaction_seconds, pr.spread_low, pr.spread_high);
    }
    if (p.backfill.max_rows_per_second && *p.backfill.max_rows_per_second > 0) {
      const double floor = static_cast<double>(info.rows) / *p.backfill.max_rows_per_second;
      if (floor > e.p50_seconds) {
        e.p50_seconds = floor;
        e.p90_seconds = std::max(e.p90_seconds, floor * 1.2);
        e.method += fmt::format("; limited by the plan's max_rows_per_second {:g}", *p.backfill.max_rows_per_second);
      }
    }
    backfill_p50 += e.p50_seconds;
    backfill_p90 += e.p90_seconds;
    out.estimates.push_back(e);

    DurationEstimate v;
    v.phase = "verify";
    v.subject = task.table;
    const auto& per_row = verify_per_row[task.table];
    const double pr = per_row.empty() ? 1e-6 : Quantile(per_row, 0.5);
    const double pr90 = per_row.empty() ? 1e-5 : Quantile(per_row, 0.9);
    // Checksums read the table through both versions' read paths.
    v.p50_seconds = std::max(0.001, 2 * static_cast<double>(info.rows) * pr);
    v.p90_seconds = std::max(1.5 * v.p50_seconds, 2 * static_cast<double>(info.rows) * pr90);
    v.method = fmt::format("2 reads (old and new version) x {} rows x {:.2f} us/row, the median of {} timed "
                           "checksums over the trial ranges",
                           info.rows, pr * 1e6, per_row.size());
    verify_p50 += v.p50_seconds;
    verify_p90 += v.p90_seconds;
    out.estimates.push_back(v);
  }
  if (c.backfill.empty()) {
    out.estimates.push_back({"backfill", "", 0.001, 0.002, "no table needs a backfill"});
    out.estimates.push_back({"verify", "", 0.01, 0.05, "no backfilled table: catalog checks only"});
  } else if (c.backfill.size() > 1) {
    out.estimates.push_back({"backfill", "", backfill_p50, backfill_p90, "sum of the tables' backfills"});
    out.estimates.push_back({"verify", "", verify_p50, verify_p90, "sum of the tables' verifications"});
  }

  // Index builds: size-based. A sort of the table's keys, from the trial's
  // timed sorted reads per row, scaled by n log n; twice that when built
  // CONCURRENTLY (two scans of the table).
  double index_p50 = 0, index_p90 = 0;
  for (const auto& step : c.start) {
    const auto* ci = std::get_if<db::CreateIndexStep>(&step.body);
    if (!ci) continue;
    bool concurrent = false;
    for (const auto& st : d.Render(step)) concurrent = concurrent || st.outside_transaction;
    SLUICE_ASSIGN_OR_RETURN(TableEstimateInfo * info, table_info(ci->index.table));
    const auto& spr = sort_per_row[ci->index.table];
    const double per_row = spr.empty() ? 2e-6 : Quantile(spr, 0.5);
    const double n = static_cast<double>(std::max<int64_t>(info->rows, 1));
    const double k = static_cast<double>(std::max<int64_t>(chunk_rows, 2));
    const double scale = std::max(1.0, std::log2(n) / std::log2(k));
    DurationEstimate e;
    e.phase = "index";
    e.subject = ci->index.name + " on " + ci->index.table;
    e.p50_seconds = std::max(0.001, (concurrent ? 2 : 1) * n * per_row * scale);
    e.p90_seconds = 2 * e.p50_seconds;
    e.method = fmt::format("{} rows x {:.2f} us/row (timed sorted reads of the trial ranges{}) x log2(rows)/log2({})"
                           "{}; P90 2x for waits on older transactions",
                           info->rows, per_row * 1e6, spr.empty() ? ": none, assumed" : "", chunk_rows,
                           concurrent ? " x 2 (CONCURRENTLY scans the table twice)" : "");
    if (info->bytes >= 0) e.method += fmt::format("; table and indexes {} bytes", info->bytes);
    index_p50 += e.p50_seconds;
    index_p90 += e.p90_seconds;
    out.estimates.push_back(e);
  }

  // start: its in-transaction statements, timed in the trial, plus builds.
  out.estimates.push_back(
      {"start", "", std::max(0.001, start_seconds) + index_p50, std::max(0.001, 3 * start_seconds) + index_p90,
       fmt::format("{} statements timed in the trial ({:.3f} s; P90 3x for lock waits) plus the index builds",
                   start_statements, start_seconds)});

  // complete: catalog statements, plus a scan per validation it runs.
  {
    int64_t scans = 0, statements = 0;
    for (const auto& step : c.complete) {
      if (std::holds_alternative<db::ValidateConstraintStep>(step.body) ||
          std::holds_alternative<db::FinalizeNotNullStep>(step.body)) {
        ++scans;
      }
      statements += static_cast<int64_t>(d.Render(step).size());
    }
    double rows = 0, per_row = 0;
    for (const auto& t : out.tables) rows += static_cast<double>(t.rows);
    std::vector<double> all;
    for (const auto& [t, v] : verify_per_row) all.insert(all.end(), v.begin(), v.end());
    per_row = all.empty() ? 1e-6 : Quantile(all, 0.5);
    const double base = std::max(0.001, start_seconds / std::max<int64_t>(1, start_statements)) * statements;
    DurationEstimate e{"complete", "", base + scans * rows * per_row, 3 * base + 2 * scans * rows * per_row,
                       fmt::format("{} statements at the trial's per-statement time, plus {} validating scan{} of "
                                   "{:.0f} rows at the checksum's per-row time; P90 3x/2x for lock waits",
                                   statements, scans, scans == 1 ? "" : "s", rows)};
    e.p50_seconds = std::max(0.001, e.p50_seconds);
    e.p90_seconds = std::max(e.p50_seconds * 1.5, e.p90_seconds);
    out.estimates.push_back(e);
  }
  out.notes.push_back("The trial ran start's in-transaction statements and the chunks inside one transaction that "
                      "was rolled back: nothing was changed.");
  if (d.transactional_ddl() && options.lock_timeout_ms > 0 && !d.LockTimeoutSql(1).empty()) {
    out.notes.push_back(fmt::format("Its lock timeout was {} ms: it never queued behind the application.",
                                    options.lock_timeout_ms));
  }
  out.json = ToJson(out).dump(2, ' ', false, json::error_handler_t::replace);
  return out;
}

}  // namespace sluice::engine

// --- the recorded estimate: estimate vs actual ---------------------------------

namespace sluice::engine {

Result<std::optional<EstimateResult>> ReadEstimate(db::Connection& conn, const std::string& name) {
  auto r = conn.Query("SELECT body FROM " + conn.dialect().StateTable("estimates") + " WHERE migration = $1",
                      {Value::Text(name)});
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) return std::optional<EstimateResult>();  // older state
    return r.status();
  }
  if (r->rows.empty()) return std::optional<EstimateResult>();
  SLUICE_ASSIGN_OR_RETURN(EstimateResult e, EstimateFromJson(r->rows[0][0].text));
  return std::optional<EstimateResult>(std::move(e));
}

Status FillEstimateVsActual(db::Connection& conn, const std::string& name, MigrationInfo* info) {
  SLUICE_ASSIGN_OR_RETURN(auto e, ReadEstimate(conn, name));
  if (e) {
    for (const auto& x : e->estimates) {
      // The whole backfill: its one table's, or the sum over tables.
      if (x.phase != "backfill") continue;
      if (x.subject.empty() || info->estimate_backfill_p50_seconds < 0) {
        info->estimate_backfill_p50_seconds = x.p50_seconds;
        info->estimate_backfill_p90_seconds = x.p90_seconds;
      }
    }
  }
  const std::string chunks = conn.dialect().StateTable("chunks");
  auto span = conn.Query("SELECT min(committed_at), max(committed_at) FROM " + chunks + " WHERE migration = $1",
                         {Value::Text(name)});
  if (!span.ok()) return span.status();
  if (span->rows.empty() || span->rows[0][0].is_null()) return Status::Ok();
  auto first = gates::ParseIsoMillis(span->rows[0][0].text), last = gates::ParseIsoMillis(span->rows[0][1].text);
  if (!first || !last) return Status::Ok();
  auto first_ms = conn.Query("SELECT millis FROM " + chunks + " WHERE migration = $1 ORDER BY committed_at LIMIT 1",
                             {Value::Text(name)});
  if (!first_ms.ok()) return first_ms.status();
  const double lead = first_ms->rows.empty() ? 0 : first_ms->rows[0][0].AsReal() / 1000.0;
  info->actual_backfill_seconds = static_cast<double>(*last - *first) / 1000.0 + lead;
  return Status::Ok();
}

Status Engine::RecordEstimate(const EstimateResult& e) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  StateStore store(*conn, clock());
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  std::optional<MigrationRecord> rec;
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(rec, store.Get(e.migration));
  }
  if (!rec) return NotFound("migration '" + e.migration + "' was not started here; start it before recording its estimate");
  const db::Dialect& d = conn->dialect();
  return db::InTransaction(*conn, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(EnsureStateTable(*conn, "estimates", true));
    return conn
        ->Query("INSERT INTO " + d.StateTable("estimates") + " (migration, at, body) VALUES ($1, $2, $3) ON CONFLICT "
                "(migration) DO UPDATE SET at = excluded.at, body = excluded.body",
                {Value::Text(e.migration), Value::Text(e.at), Value::Text(e.json)})
        .status();
  });
}

}  // namespace sluice::engine
