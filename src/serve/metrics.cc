// /metrics: Prometheus text exposition (format 0.0.4) of a Snapshot.
//
// Names follow Prometheus conventions: the sluice_ prefix, base units
// (seconds, ratios), _total only on counters, one series per state of a
// state set (value 1 for the current one, 0 for the others) so alerts can
// match on labels. Every value comes from the state tables at scrape time.
#include <cmath>
#include <ctime>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "serve/serve.h"

namespace sluice::serve {

namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  // Starts a metric family (HELP and TYPE are written once, before its
  // first sample).
  void Family(const std::string& name, const std::string& type, const std::string& help) {
    name_ = name;
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void Sample(const Labels& labels, double value, const std::string& suffix = "") {
    out_ << name_ << suffix;
    if (!labels.empty()) {
      out_ << "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        out_ << (i ? "," : "") << labels[i].first << "=\"" << Escape(labels[i].second) << "\"";
      }
      out_ << "}";
    }
    out_ << " " << Number(value) << "\n";
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::string name_;
};

// Seconds since the epoch of an ISO-8601 UTC stamp ("2026-11-29T10:47:48Z",
// optionally with fractions); -1 when unreadable.
double EpochSeconds(const std::string& iso) {
  std::tm tm{};
  double frac = 0;
  int consumed = 0;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) < 6) {
    return -1;
  }
  if (iso.size() > static_cast<size_t>(consumed) && iso[consumed] == '.') {
    frac = std::strtod(iso.c_str() + consumed, nullptr);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + frac;
}

// The backfill's state as the metric shows it: paused and throttled are
// refinements of running.
std::string BackfillState(const MigrationInfo& m) {
  if (m.backfill == "running" && m.paused) return "paused";
  if (m.backfill == "running" && !m.throttle.empty()) return "throttled";
  if (m.backfill == "stopped" && m.paused) return "paused";
  return m.backfill;
}

}  // namespace

std::string MetricsText(const Snapshot& s) {
  Exposition e;
  e.Family("sluice_up", "gauge", "1 when sluice serve could read the state tables at this scrape, 0 otherwise.");
  e.Sample({}, s.ok ? 1 : 0);
  e.Family("sluice_scrape_duration_seconds", "gauge", "Time taken to read the state tables for this scrape.");
  e.Sample({}, s.seconds);
  if (!s.ok) {
    e.Family("sluice_scrape_error_info", "gauge", "Why the state tables could not be read (label reason).");
    e.Sample({{"reason", s.error}}, 1);
    return e.str();
  }

  static const char* kPhases[] = {"starting", "active", "completing", "complete", "rolling_back", "rolled_back"};
  e.Family("sluice_migration_phase", "gauge", "The phase of each migration: 1 for its current phase, 0 for the others.");
  for (const auto& m : s.migrations) {
    for (const char* p : kPhases) e.Sample({{"migration", m.name}, {"phase", p}}, m.phase == p ? 1 : 0);
  }
  e.Family("sluice_migration_info", "gauge", "Versions of each migration and which one reads go to (live).");
  for (const auto& m : s.migrations) {
    e.Sample({{"migration", m.name}, {"version", m.version}, {"previous_version", m.previous_version}, {"live", m.live}},
             1);
  }
  e.Family("sluice_migration_version_ready", "gauge", "1 when the migration's new version can be used (backfill done).");
  for (const auto& m : s.migrations) e.Sample({{"migration", m.name}}, m.version_ready ? 1 : 0);
  // A gauge, not a _total counter: a row leaves the count when a later
  // write converts it (the failures table keeps unresolved rows only).
  e.Family("sluice_dual_write_failures_unresolved", "gauge",
           "Rows whose `up` failed on an old-version write under dual_write on_error: record and that are not "
           "resolved yet (switch and complete refuse while above 0).");
  for (const auto& m : s.migrations) {
    if (m.phase == "active") e.Sample({{"migration", m.name}}, static_cast<double>(m.dual_write_failures));
  }

  // Backfill: only migrations that have one to speak of (in flight).
  std::vector<const MigrationInfo*> bf;
  for (const auto& m : s.migrations) {
    if (!m.backfill.empty()) bf.push_back(&m);
  }
  e.Family("sluice_backfill_rows_done", "gauge", "Rows the backfill has rewritten (committed chunks).");
  for (const auto* m : bf) e.Sample({{"migration", m->name}}, static_cast<double>(m->rows_done));
  e.Family("sluice_backfill_rows_planned", "gauge",
           "Rows the backfill has to rewrite in all (estimated at its start; not a counter, hence no _total).");
  for (const auto* m : bf) e.Sample({{"migration", m->name}}, static_cast<double>(m->rows_total));
  e.Family("sluice_backfill_chunks_done", "gauge", "Chunks the backfill has committed.");
  for (const auto* m : bf) e.Sample({{"migration", m->name}}, static_cast<double>(m->chunks));
  e.Family("sluice_backfill_rows_per_second", "gauge",
           "Backfill rate over the last 10 s of committed chunks (0 unless running).");
  for (const auto* m : bf) e.Sample({{"migration", m->name}}, m->rows_per_second);
  e.Family("sluice_backfill_eta_seconds", "gauge", "Estimated seconds until the backfill is done (only while running).");
  for (const auto* m : bf) {
    if (m->eta_seconds >= 0) e.Sample({{"migration", m->name}}, m->eta_seconds);
  }
  static const char* kStates[] = {"pending", "running", "paused", "throttled", "stopped", "done", "none"};
  e.Family("sluice_backfill_state", "gauge",
           "The backfill's state: 1 for the current one (paused and throttled refine running), 0 for the others.");
  for (const auto* m : bf) {
    const std::string st = BackfillState(*m);
    for (const char* k : kStates) e.Sample({{"migration", m->name}, {"state", k}}, st == k ? 1 : 0);
  }
  e.Family("sluice_backfill_paused", "gauge", "1 while `sluice pause` is in effect.");
  for (const auto* m : bf) e.Sample({{"migration", m->name}}, m->paused ? 1 : 0);
  e.Family("sluice_backfill_throttle_reason_info", "gauge",
           "1 with the running backfill's current reason to slow down (label reason); absent when not throttled.");
  for (const auto* m : bf) {
    if (!m->throttle.empty() && m->backfill == "running") e.Sample({{"migration", m->name}, {"reason", m->throttle}}, 1);
  }
  e.Family("sluice_backfill_heartbeat_age_seconds", "gauge", "Seconds since the backfill run last renewed its lease.");
  for (const auto* m : bf) {
    if (m->backfill_heartbeat_age_seconds >= 0) e.Sample({{"migration", m->name}}, m->backfill_heartbeat_age_seconds);
  }
  // The throttle's signals as the running backfill last recorded them
  // (with its newest chunk); a series is absent when its signal is off,
  // its last reading failed, or the backfill is not running.
  struct SignalFamily {
    const char* name;
    const char* help;
    std::optional<double> (*value)(const ThrottleSignals&);
  };
  static const SignalFamily kSignalFamilies[] = {
      {"sluice_throttle_probe_latency_seconds", "Latency of the throttle's probe query, read with the newest chunk.",
       [](const ThrottleSignals& t) { return t.probe_latency_seconds; }},
      {"sluice_throttle_replica_lag_seconds", "Replica replay lag the throttle read with the newest chunk.",
       [](const ThrottleSignals& t) { return t.replica_lag_seconds; }},
      {"sluice_throttle_lock_waiters", "Sessions waiting for a lock on the table, read with the newest chunk.",
       [](const ThrottleSignals& t) -> std::optional<double> {
         if (!t.lock_waiters) return std::nullopt;
         return static_cast<double>(*t.lock_waiters);
       }},
      {"sluice_throttle_app_sessions", "Application sessions at work, read with the newest chunk.",
       [](const ThrottleSignals& t) -> std::optional<double> {
         if (!t.app_sessions) return std::nullopt;
         return static_cast<double>(*t.app_sessions);
       }},
  };
  for (const auto& f : kSignalFamilies) {
    e.Family(f.name, "gauge", f.help);
    for (const auto* m : bf) {
      auto v = f.value(m->throttle_signals);
      if (m->backfill == "running" && v) e.Sample({{"migration", m->name}, {"table", m->throttle_signals_table}}, *v);
    }
  }
  e.Family("sluice_backfill_chunk_duration_seconds", "histogram",
           "How long each committed backfill chunk's transaction took.");
  for (const auto& [name, h] : s.chunks) {
    for (const auto& [le, count] : h.buckets) {
      e.Sample({{"migration", name}, {"le", le < 0 ? "+Inf" : Number(le)}}, static_cast<double>(count), "_bucket");
    }
    e.Sample({{"migration", name}}, h.sum_seconds, "_sum");
    e.Sample({{"migration", name}}, static_cast<double>(h.count), "_count");
  }

  // Verification.
  e.Family("sluice_verify_last_timestamp_seconds", "gauge", "When the last verification ran (Unix time).");
  for (const auto& [name, v] : s.verifications) {
    if (v && EpochSeconds(v->at) >= 0) e.Sample({{"migration", name}}, EpochSeconds(v->at));
  }
  e.Family("sluice_verify_last_passed", "gauge", "1 when the last verification passed, 0 when it failed.");
  for (const auto& [name, v] : s.verifications) {
    if (v) e.Sample({{"migration", name}}, v->passed ? 1 : 0);
  }
  e.Family("sluice_verify_checks", "gauge", "Checks of the last verification by result.");
  for (const auto& [name, v] : s.verifications) {
    if (!v) continue;
    int64_t passed = 0, failed = 0, skipped = 0;
    for (const auto& c : v->checks) {
      if (c.skipped) {
        ++skipped;
      } else if (c.passed) {
        ++passed;
      } else {
        ++failed;
      }
    }
    e.Sample({{"migration", name}, {"result", "passed"}}, static_cast<double>(passed));
    e.Sample({{"migration", name}, {"result", "failed"}}, static_cast<double>(failed));
    e.Sample({{"migration", name}, {"result", "skipped"}}, static_cast<double>(skipped));
  }
  e.Family("sluice_shadow_read_divergence_ratio", "gauge",
           "Divergent keys / keys read through both versions in the last verification's shadow reads.");
  for (const auto& [name, v] : s.verifications) {
    if (!v) continue;
    int64_t keys = 0, divergent = 0;
    bool any = false;
    for (const auto& c : v->checks) {
      if (c.name != "shadow_read" || c.skipped) continue;
      any = true;
      keys += c.checked;
      divergent += c.failures;
    }
    if (any) e.Sample({{"migration", name}}, keys ? static_cast<double>(divergent) / static_cast<double>(keys) : 0);
  }

  // Gates and sign-offs.
  e.Family("sluice_gate_state", "gauge", "Each gate's state: 1 for passed or blocked, 0 for the other.");
  for (const auto& [name, gates] : s.gates) {
    for (const auto& g : gates) {
      e.Sample({{"migration", name}, {"gate", g.gate}, {"state", "passed"}}, g.passed ? 1 : 0);
      e.Sample({{"migration", name}, {"gate", g.gate}, {"state", "blocked"}}, g.passed ? 0 : 1);
    }
  }
  e.Family("sluice_gate_check_passed", "gauge", "1 when a gate's check passes, 0 when it fails.");
  for (const auto& [name, gates] : s.gates) {
    for (const auto& g : gates) {
      std::set<std::string> seen;  // one series per check name
      for (const auto& c : g.checks) {
        if (!seen.insert(c.check).second) continue;
        e.Sample({{"migration", name}, {"gate", g.gate}, {"check", c.check}}, c.passed ? 1 : 0);
      }
    }
  }
  e.Family("sluice_signoffs_pending", "gauge", "Sign-offs a gate requires that nobody has given yet.");
  for (const auto& [name, gates] : s.gates) {
    for (const auto& g : gates) {
      int64_t missing = 0;
      for (const auto& so : g.signoffs) {
        if (so.size() >= 9 && so.compare(so.size() - 9, 9, ": missing") == 0) ++missing;
      }
      e.Sample({{"migration", name}, {"gate", g.gate}}, static_cast<double>(missing));
    }
  }

  e.Family("sluice_events_total", "counter", "Events recorded in the audit log, by migration and kind.");
  for (const auto& [key, count] : s.event_counts) {
    e.Sample({{"migration", key.first}, {"kind", key.second}}, static_cast<double>(count));
  }
  return e.str();
}

}  // namespace sluice::serve
