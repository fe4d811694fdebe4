#include "cli/output.h"

#include "cli/conventions.h"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

namespace sluice::cli {

namespace {
double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string FormatCount(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  std::string out;
  int c = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (c && c % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++c;
  }
  return (n < 0 ? "-" : "") + out;
}

std::string FormatDuration(double s) {
  if (s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

std::string Bar(double f, int width) {
  if (f < 0) f = 0;
  if (f > 1) f = 1;
  int full = static_cast<int>(f * width + 0.5);
  return std::string(static_cast<size_t>(full), '#') + std::string(static_cast<size_t>(width - full), '-');
}

ProgressPrinter::ProgressPrinter(bool tty) : tty_(tty) {}

std::string ProgressLine(const BackfillProgress& p, size_t width) {
  double frac = p.rows_total > 0 ? static_cast<double>(p.rows_done) / static_cast<double>(p.rows_total) : 1.0;
  std::string pct = fmt::format("{:5.1f}%", frac * 100);
  std::string core = fmt::format("  {} {}  {}/{} rows", p.table, pct, FormatCount(p.rows_done),
                                 FormatCount(p.rows_total));
  // Optional parts, most wanted first; shown in a fixed order.
  enum { kEta, kRate, kThrottle, kChunk, kWorkers, kParts };
  std::string parts[kParts] = {
      "  ETA " + (p.done ? std::string("0s") : FormatDuration(p.eta_seconds)),
      fmt::format("  {} rows/s", FormatCount(static_cast<int64_t>(p.rows_per_second))),
      p.throttle.empty() ? "" : "  throttled: " + p.throttle,
      "  chunk " + FormatCount(p.chunk_rows),
      p.workers > 1 ? fmt::format("  workers {}", p.workers) : "",
  };
  size_t used = core.size();
  bool keep[kParts] = {};
  // The bar ("[...] ", at least 10 wide) comes after ETA, rate and the
  // throttle reason, before chunk size and workers; it takes what is left,
  // up to 24 columns.
  constexpr size_t kMinBar = 10 + 3;
  for (int i = 0; i < kParts; ++i) {
    size_t reserve = i >= kChunk && used + kMinBar <= width ? kMinBar : 0;
    if (!parts[i].empty() && used + reserve + parts[i].size() <= width) {
      keep[i] = true;
      used += parts[i].size();
    }
  }
  size_t room = width > used + 3 ? width - used - 3 : 0;
  int bar = static_cast<int>(std::min<size_t>(room, 24));
  std::string line = fmt::format("  {} {}{}", p.table, bar >= 10 ? "[" + Bar(frac, bar) + "] " : "",
                                 core.substr(3 + p.table.size()));
  for (int i : {kRate, kEta, kChunk, kWorkers, kThrottle}) {
    if (keep[i]) line += parts[i];
  }
  if (line.size() > width) line = line.substr(0, width > 3 ? width - 3 : 0) + "...";
  return line;
}

void ProgressPrinter::Update(const BackfillProgress& p) {
  double now = NowSeconds();
  if (!tty_ && !p.done && now - last_print_ < 2.0) return;
  last_print_ = now;
  if (tty_) {
    // One column short of the width: a line that fills the last column
    // wraps on some terminals, and `\r` would then redraw the wrong line.
    int columns = TerminalColumns();
    fmt::print(stdout, "\r\033[K{}", ProgressLine(p, columns > 1 ? static_cast<size_t>(columns - 1) : 1));
    drawn_ = true;
  } else {
    fmt::print(stdout, "{}\n", ProgressLine(p, SIZE_MAX));
  }
  std::fflush(stdout);
}

void ProgressPrinter::Finish() {
  if (tty_ && drawn_) fmt::print(stdout, "\n");
  drawn_ = false;
}

void PrintVerify(const VerifyResult& r) {
  fmt::print("verification of {} at {}: {}\n", r.migration, r.at, r.passed ? "PASSED" : "FAILED");
  for (const auto& c : r.checks) {
    const char* mark = c.skipped ? "skip" : (c.passed ? " ok " : "FAIL");
    std::string what = c.table + (c.column.empty() ? "" : "." + c.column);
    fmt::print("  [{}] {:<11} {:<28} {}\n", mark, c.name, what, c.summary);
    for (const auto& e : c.evidence) fmt::print("         {}\n", e);
  }
}

std::string VerifyJson(const VerifyResult& r) { return r.json; }

void PrintStatus(const std::vector<MigrationInfo>& list) {
  if (list.empty()) {
    fmt::print("no migrations yet\n");
    return;
  }
  for (const auto& m : list) {
    fmt::print("{}  phase: {}  version: {}  reads: {} version\n", m.name, m.phase, m.version, m.live);
    // Only in-flight migrations have a backfill to report ("" otherwise).
    if (!m.backfill.empty() && m.backfill != "none") {
      double f = m.rows_total > 0 ? static_cast<double>(m.rows_done) / static_cast<double>(m.rows_total) : 0;
      fmt::print("  backfill: {}{} [{}] {}/{} rows, {:.1f}%", m.backfill, m.paused ? " (PAUSED)" : "", Bar(f, 20),
                 FormatCount(m.rows_done), FormatCount(m.rows_total), f * 100);
      if (m.backfill == "running") {
        fmt::print(", {} rows/s, ETA {}", FormatCount(static_cast<int64_t>(m.rows_per_second)),
                   m.eta_seconds >= 0 ? FormatDuration(m.eta_seconds) : std::string("unknown"));
      }
      fmt::print("\n");
      if (m.backfill == "running") {
        fmt::print("  run: {} since {}, last heartbeat {:.1f}s ago\n", m.backfill_holder, m.backfill_started_at,
                   m.backfill_heartbeat_age_seconds);
      } else if (m.backfill == "stopped") {
        fmt::print("  stopped: last run {} from {}{}\n", m.backfill_holder.empty() ? "unknown" : m.backfill_holder,
                   m.backfill_started_at.empty() ? "?" : m.backfill_started_at,
                   m.backfill_stopped_at.empty() ? "" : " to " + m.backfill_stopped_at);
        if (!m.backfill_last_error.empty()) fmt::print("  last error: {}\n", m.backfill_last_error);
      }
      if (!m.throttle.empty()) fmt::print("  throttle: {}\n", m.throttle);
      if (m.tuned_rate || m.tuned_chunk_ms || m.tuned_workers) {
        std::string t;
        if (m.tuned_rate) t += *m.tuned_rate > 0 ? fmt::format(" rate {} rows/s", *m.tuned_rate) : " rate unlimited";
        if (m.tuned_chunk_ms) t += fmt::format(" chunk {} ms", *m.tuned_chunk_ms);
        if (m.tuned_workers) t += fmt::format(" workers {}", *m.tuned_workers);
        fmt::print("  tuned:{}\n", t);
      }
    }
    for (const auto& o : m.overrides) fmt::print("  !! {}\n", o);
    if (m.last_verify_passed) {
      fmt::print("  last verification: {} at {}\n", *m.last_verify_passed ? "passed" : "FAILED", m.last_verify_at);
    } else if (m.phase == "active") {
      fmt::print("  last verification: never\n");
    }
    if (m.dual_write_failures > 0) {
      fmt::print("  !! dual-write failures: {} row(s) whose `up` failed on an old-version write; list them with "
                 "`sluice failures {}` (switch and complete refuse until they are resolved)\n",
                 m.dual_write_failures, m.name);
    }
    if (!m.tables.empty()) {
      std::string t;
      for (const auto& x : m.tables) t += (t.empty() ? "" : ", ") + x;
      fmt::print("  tables: {}\n", t);
    }
    if (m.phase == "active") {
      if (m.version_ready) {
        fmt::print("  new version: {}\n", m.version_hint);
      } else {
        fmt::print("  new version: not ready until the backfill is done (then: {})\n", m.version_hint);
      }
    }
  }
}

std::string StatusJson(const std::vector<MigrationInfo>& list) {
  auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  auto num_or_null = [](double v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(); };
  nlohmann::json j = nlohmann::json::array();
  for (const auto& m : list) {
    nlohmann::json e = {{"name", m.name},
                        {"phase", m.phase},
                        {"version", m.version},
                        {"previous_version", m.previous_version},
                        {"live", m.live},
                        {"version_ready", m.version_ready},
                        {"dual_write_failures", m.dual_write_failures},
                        {"tables", m.tables},
                        {"gate_overrides", m.overrides},
                        {"created_at", m.created_at},
                        {"updated_at", m.updated_at},
                        {"completed_at", text_or_null(m.completed_at)}};
    // Complete and rolled-back migrations have no backfill fields.
    if (!m.backfill.empty()) {
      const bool running = m.backfill == "running";
      e["backfill"] = {
          {"state", m.backfill},
          {"rows_done", m.rows_done},
          {"rows_total", m.rows_total},
          {"chunks", m.chunks},
          {"rows_per_second", running ? nlohmann::json(m.rows_per_second) : nlohmann::json()},
          {"eta_seconds", running ? num_or_null(m.eta_seconds) : nlohmann::json()},
          {"paused", m.paused},
          {"throttle", m.throttle},
          {"holder", text_or_null(m.backfill_holder)},
          {"started_at", text_or_null(m.backfill_started_at)},
          {"heartbeat_at", text_or_null(m.backfill_heartbeat_at)},
          {"heartbeat_age_seconds", num_or_null(m.backfill_heartbeat_age_seconds)},
          {"stale_after_seconds", num_or_null(m.backfill_stale_after_seconds)},
          {"stopped_at", text_or_null(m.backfill_stopped_at)},
          {"last_error", text_or_null(m.backfill_last_error)},
          {"tuned",
           {{"max_rows_per_second", m.tuned_rate ? nlohmann::json(*m.tuned_rate) : nlohmann::json()},
            {"chunk_target_ms", m.tuned_chunk_ms ? nlohmann::json(*m.tuned_chunk_ms) : nlohmann::json()},
            {"workers", m.tuned_workers ? nlohmann::json(*m.tuned_workers) : nlohmann::json()}}}};
      // The throttle's readings recorded with the newest chunk (null: off,
      // failed, or not recorded).
      const ThrottleSignals& t = m.throttle_signals;
      auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
      e["backfill"]["throttle_signals"] = {
          {"probe_latency_seconds", opt(t.probe_latency_seconds)},
          {"replica_lag_seconds", opt(t.replica_lag_seconds)},
          {"lock_waiters", opt(t.lock_waiters)},
          {"app_sessions", opt(t.app_sessions)},
          {"table", text_or_null(m.throttle_signals_table)},
          {"at", text_or_null(m.throttle_signals_at)}};
    }
    // The backfill's recorded estimate (`start --estimate`) against its
    // actual duration (first to last committed chunk); null when unknown.
    e["estimate_vs_actual"] = {{"backfill_p50_seconds", num_or_null(m.estimate_backfill_p50_seconds)},
                               {"backfill_p90_seconds", num_or_null(m.estimate_backfill_p90_seconds)},
                               {"actual_backfill_seconds", num_or_null(m.actual_backfill_seconds)}};
    if (m.last_verify_passed) {
      e["last_verification"] = {{"passed", *m.last_verify_passed}, {"at", m.last_verify_at}};
    } else {
      e["last_verification"] = nullptr;
    }
    j.push_back(e);
  }
  return j.dump(2);
}

void PrintFailures(const FailuresResult& r, bool rechecked) {
  if (rechecked) fmt::print("recheck: {} row(s) resolved\n", r.resolved);
  if (r.failures.empty()) {
    fmt::print("{}: no unresolved dual-write failure\n", r.migration);
    return;
  }
  fmt::print("{}: {} unresolved dual-write failure(s); fix each row through the old version (its next write "
             "converts it), then `sluice failures {} --recheck` for rows fixed otherwise\n",
             r.migration, r.failures.size(), r.migration);
  for (const auto& f : r.failures) {
    fmt::print("  {} key {} column {}: {} [{}] x{} (first {}, last {}, by {} via {})\n", f.table, f.key, f.column,
               f.error, f.sqlstate, f.count, f.first_seen, f.last_seen, f.writer, f.source);
  }
}

std::string FailuresJson(const FailuresResult& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& f : r.failures) {
    rows.push_back({{"table", f.table},         {"key", f.key},         {"column", f.column},
                    {"error", f.error},         {"sqlstate", f.sqlstate}, {"writer", f.writer},
                    {"source", f.source},       {"count", f.count},     {"first_seen", f.first_seen},
                    {"last_seen", f.last_seen}});
  }
  nlohmann::json j = {{"migration", r.migration}, {"resolved", r.resolved}, {"failures", rows}};
  return j.dump(2);
}

void PrintGates(const std::vector<GateInfo>& gates) {
  for (const auto& g : gates) {
    fmt::print("{:<9} {}{}\n", g.gate, g.passed ? "PASS" : "BLOCKED", g.configured ? "" : "  (defaults)");
    for (const auto& c : g.checks) fmt::print("  [{}] {}: {}\n", c.passed ? " ok " : "FAIL", c.check, c.detail);
  }
}

std::string GatesJson(const std::vector<GateInfo>& gates) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& g : gates) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : g.checks) checks.push_back({{"check", c.check}, {"passed", c.passed}, {"detail", c.detail}});
    j.push_back({{"gate", g.gate}, {"configured", g.configured}, {"passed", g.passed}, {"checks", checks},
                 {"signoffs", g.signoffs}});
  }
  return j.dump(2);
}

void PrintPhases(const std::vector<PhaseSql>& phases) {
  for (const auto& ph : phases) {
    fmt::print("\n-- == {} ==\n", ph.phase);
    if (ph.statements.empty()) fmt::print("-- (nothing)\n");
    for (const auto& s : ph.statements) fmt::print("{};\n", s);
  }
}

std::string InFlightLine(const std::string& migration, const std::string& phase, const std::string& live) {
  return fmt::format("{} is already {} (reads on the {} version); what remains of it, as recorded at "
                     "start: `sluice complete` or `sluice rollback` runs these",
                     migration, phase, live);
}

void PrintPreview(const PlanPreview& p) {
  fmt::print("-- migration {} (version {}) on {}\n", p.migration, p.version, p.database);
  if (!p.in_flight.empty()) fmt::print("-- {}\n", InFlightLine("migration " + p.migration, p.in_flight, p.live));
  for (const auto& w : p.warnings) fmt::print("-- {}\n", w);
  PrintPhases(p.phases);
}

std::string PreviewJson(const PlanPreview& p) {
  nlohmann::json j = {{"migration", p.migration}, {"version", p.version}, {"database", p.database},
                      {"warnings", p.warnings}};
  j["in_flight"] = p.in_flight.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.in_flight);
  if (!p.in_flight.empty()) j["live"] = p.live;
  j["phases"] = nlohmann::json::object();
  for (const auto& ph : p.phases) j["phases"][ph.phase] = ph.statements;
  return j.dump(2);
}

}  // namespace sluice::cli
