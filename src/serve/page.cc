// The status page: one self-contained HTML document (no CDN, no external
// asset: styles, charts and the refresh script are inline) that people keep
// open during a migration. Each migration gets its phase on a timeline, a
// progress bar with rate, ETA and throttle reason, the readiness scorecard,
// the last verification report and charts of the backfill over time; the
// audit log's tail closes the page.
//
// Elements carry data-* attributes (data-migration, data-phase,
// data-rows-done, data-gate, data-state) so tests and scripts can read the
// page without scraping its prose.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

#include <fmt/format.h>

#include "common/html.h"
#include "serve/serve.h"

namespace sluice::serve {

namespace {

std::string H(const std::string& s) { return HtmlEscape(s); }

std::string Count(int64_t n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string Duration(double s) {
  if (s < 0) return "unknown";
  int64_t t = static_cast<int64_t>(std::llround(s));
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

// A line chart as inline SVG: `points` are (x, y), drawn scaled into the
// box; empty data says so. data-points carries how many were drawn.
std::string Chart(const std::string& title, const std::string& unit, const std::vector<std::pair<double, double>>& pts,
                  const std::string& css_class) {
  const int w = 320, h = 120, pad = 28;
  std::string svg = fmt::format(
      "<figure class=\"chart {}\" data-points=\"{}\"><figcaption>{}</figcaption><svg viewBox=\"0 0 {} {}\" "
      "role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"none\">",
      css_class, pts.size() < 2 ? 0 : pts.size(), H(title), w, h, H(title));
  svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" class=\"bg\"/>", w, h);
  if (pts.size() < 2) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"empty\">no data yet</text></svg></figure>", w / 2 - 30, h / 2);
    return svg;
  }
  double x0 = pts.front().first, x1 = pts.back().first, ymax = 0;
  for (const auto& p : pts) ymax = std::max(ymax, p.second);
  if (x1 <= x0) x1 = x0 + 1;
  if (ymax <= 0) ymax = 1;
  std::string path;
  for (const auto& [x, y] : pts) {
    double px = pad + (x - x0) / (x1 - x0) * (w - pad - 4);
    double py = h - 14 - y / ymax * (h - 24);
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px, py);
  }
  svg += fmt::format("<path d=\"{}\" class=\"line\"/>", path);
  svg += fmt::format("<text x=\"2\" y=\"12\" class=\"axis\">{} {}</text>", H(fmt::format("{:.4g}", ymax)), H(unit));
  svg += fmt::format("<text x=\"2\" y=\"{}\" class=\"axis\">0</text>", h - 4);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"axis\">{}</text>", w - 60, h - 2, H(Duration(x1 - x0)));
  svg += "</svg></figure>";
  return svg;
}

double Epoch(const std::string& iso) {
  int Y, M, D, h, m;
  double s;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%lf", &Y, &M, &D, &h, &m, &s) != 6) return -1;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  return static_cast<double>(timegm(&tm)) + s;
}

// The lifecycle as a timeline; the current step is marked.
std::string Timeline(const MigrationInfo& m) {
  struct Step {
    const char* key;
    const char* label;
  };
  static const Step kSteps[] = {{"expand", "expand"},   {"backfill", "backfill"}, {"verify", "verify"},
                                {"switch", "switch"},   {"complete", "complete"}};
  int current = 0;
  if (m.phase == "complete" || m.phase == "completing") {
    current = 4;
  } else if (m.phase == "active" && m.live == "new") {
    current = 3;
  } else if (m.phase == "active" && m.backfill == "done" && m.last_verify_passed.value_or(false)) {
    current = 3;
  } else if (m.phase == "active" && m.backfill == "done") {
    current = 2;
  } else if (m.phase == "active") {
    current = 1;
  }
  std::string out = "<ol class=\"timeline\">";
  if (m.phase == "rolled_back" || m.phase == "rolling_back") {
    return out + "<li class=\"step now rollback\">" + H(m.phase == "rolled_back" ? "rolled back" : "rolling back") +
           "</li></ol>";
  }
  for (int i = 0; i < 5; ++i) {
    const char* cls = i < current ? "done" : (i == current ? "now" : "todo");
    if (m.phase == "complete" && i == 4) cls = "done";
    out += fmt::format("<li class=\"step {}\" data-step=\"{}\">{}</li>", cls, kSteps[i].key, kSteps[i].label);
  }
  return out + "</ol>";
}

std::string Progress(const MigrationInfo& m) {
  if (m.backfill.empty()) return "";
  double frac = m.rows_total > 0 ? static_cast<double>(m.rows_done) / static_cast<double>(m.rows_total)
                                 : (m.backfill == "done" ? 1.0 : 0.0);
  frac = std::clamp(frac, 0.0, 1.0);
  std::string state = m.backfill;
  if (m.paused) state += " (paused)";
  std::string out = fmt::format(
      "<div class=\"progress\" data-rows-done=\"{}\" data-rows-total=\"{}\" data-backfill=\"{}\">"
      "<div class=\"bar\"><div class=\"fill\" style=\"width:{:.1f}%\"></div></div>"
      "<p><b>backfill {}</b>: {} / {} rows ({:.1f}%)",
      m.rows_done, m.rows_total, H(m.backfill), frac * 100, H(state), Count(m.rows_done), Count(m.rows_total),
      frac * 100);
  if (m.backfill == "running") {
    out += fmt::format(" &middot; {} rows/s &middot; ETA {}", Count(static_cast<int64_t>(m.rows_per_second)),
                       H(Duration(m.eta_seconds)));
  }
  out += "</p>";
  if (!m.throttle.empty() && m.backfill == "running") {
    out += "<p class=\"throttle\">throttled: " + H(m.throttle) + "</p>";
  }
  if (!m.backfill_last_error.empty()) out += "<p class=\"error\">last run stopped: " + H(m.backfill_last_error) + "</p>";
  return out + "</div>";
}

std::string Scorecard(const std::vector<GateInfo>& gates) {
  std::string out = "<table class=\"gates\"><caption>Readiness scorecard</caption>"
                    "<tr><th>gate</th><th>state</th><th>evidence</th><th>sign-offs</th></tr>";
  for (const auto& g : gates) {
    std::string evidence;
    for (const auto& c : g.checks) {
      evidence += fmt::format("<li class=\"{}\">{} {}: {}</li>", c.passed ? "ok" : "fail", c.passed ? "&#10003;" : "&#10007;",
                              H(c.check), H(c.detail));
    }
    std::string signoffs;
    for (const auto& s : g.signoffs) signoffs += "<li>" + H(s) + "</li>";
    out += fmt::format(
        "<tr class=\"gate\" data-gate=\"{}\" data-state=\"{}\"><td>{}</td><td class=\"{}\">{}</td><td><ul>{}</ul></td>"
        "<td><ul>{}</ul></td></tr>",
        H(g.gate), g.passed ? "passed" : "blocked", H(g.gate), g.passed ? "ok" : "fail",
        g.passed ? "PASS" : "BLOCKED", evidence, signoffs.empty() ? "<li>none required</li>" : signoffs);
  }
  return out + "</table>";
}

std::string Verification(const std::optional<VerifyResult>& v) {
  if (!v) return "<p class=\"verify none\">not verified yet</p>";
  std::string out = fmt::format(
      "<details class=\"verify\" data-passed=\"{}\"><summary>last verification {} at {}</summary><table>"
      "<tr><th>check</th><th>object</th><th>result</th><th>summary</th></tr>",
      v->passed ? "true" : "false", v->passed ? "PASSED" : "FAILED", H(v->at));
  for (const auto& c : v->checks) {
    std::string object = c.table + (c.column.empty() ? "" : "." + c.column);
    out += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>", H(c.name), H(object),
                       c.skipped ? "skip" : (c.passed ? "ok" : "fail"),
                       c.skipped ? "skipped" : (c.passed ? "ok" : "FAIL"), H(c.summary));
  }
  return out + "</table></details>";
}

std::string Charts(const ChunkHistory& h) {
  // Backfill rate: rows committed per second of wall time, binned by the
  // second each chunk committed; chunk time: each chunk's duration.
  // Probe latency: the throttle's reading recorded with each chunk (only
  // chunks that recorded one: the signal may be off or have failed).
  std::map<int64_t, int64_t> per_second;
  std::vector<std::pair<double, double>> chunk_times, probe;
  double t0 = -1;
  for (const auto& c : h.recent) {
    double t = Epoch(c.committed_at);
    if (t < 0) continue;
    if (t0 < 0) t0 = t;
    per_second[static_cast<int64_t>(t)] += c.rows;
    chunk_times.push_back({t - t0, c.seconds * 1000});
    if (c.signals.probe_latency_seconds) probe.push_back({t - t0, *c.signals.probe_latency_seconds * 1000});
  }
  std::vector<std::pair<double, double>> rate;
  if (!per_second.empty()) {
    for (int64_t s = per_second.begin()->first; s <= per_second.rbegin()->first; ++s) {
      auto it = per_second.find(s);
      rate.push_back({static_cast<double>(s) - t0, it == per_second.end() ? 0.0 : static_cast<double>(it->second)});
    }
  }
  return "<div class=\"charts\">" + Chart("backfill rate (rows/s)", "rows/s", rate, "rate") +
         Chart("probe latency (ms)", "ms", probe, "probe") +
         Chart("chunk duration (ms)", "ms", chunk_times, "latency") + "</div>";
}

constexpr const char* kStyle = R"(
:root{--ok:#1a7f37;--fail:#cf222e;--warn:#9a6700;--fg:#1f2328;--muted:#656d76;--bg:#fff;--card:#f6f8fa;--line:#d0d7de}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:12px;max-width:1100px;margin:auto}
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:8px}h1{font-size:1.3em;margin:.2em 0}
.muted{color:var(--muted);font-size:.9em}section.migration,section.fleet{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;margin:12px 0}
h2{font-size:1.15em;margin:0 0 6px}.phase{font-size:.8em;padding:2px 8px;border-radius:10px;background:#ddf4ff;margin-left:6px}
ol.timeline{display:flex;flex-wrap:wrap;list-style:none;padding:0;margin:6px 0;gap:4px}.step{padding:3px 10px;border-radius:12px;border:1px solid var(--line);font-size:.85em}
.step.done{background:#dafbe1;border-color:#4ac26b}.step.now{background:#0969da;color:#fff;border-color:#0969da;font-weight:600}.step.rollback{background:var(--fail)}
.bar{height:14px;background:#eaeef2;border-radius:7px;overflow:hidden}.fill{height:100%;background:#2da44e}
.throttle{color:var(--warn);font-weight:600}.warn{color:var(--warn)}.error,.fail{color:var(--fail)}.ok{color:var(--ok)}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:.9em}th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:600;padding:4px 0}ul{margin:0;padding-left:1.1em}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0;flex:1 1 300px}figcaption{font-size:.85em;color:var(--muted)}
svg{width:100%;height:120px}.bg{fill:#fff;stroke:var(--line)}.line{fill:none;stroke:#0969da;stroke-width:1.5}.axis,.empty{font-size:10px;fill:var(--muted)}
.events td:first-child{white-space:nowrap}@media (max-width:600px){body{padding:6px;font-size:14px}.events td:nth-child(4){display:none}}
)";

// Refreshes the page every 5 s without a full reload (the body is swapped
// for the new one); without scripts the meta refresh in <noscript> does it.
constexpr const char* kScript = R"(
(function(){
  function refresh(){
    fetch(location.pathname,{cache:'no-store'}).then(function(r){return r.ok?r.text():null}).then(function(t){
      if(!t)return;var d=new DOMParser().parseFromString(t,'text/html');
      var open={};document.querySelectorAll('details[id]').forEach(function(e){open[e.id]=e.open});
      document.body.innerHTML=d.body.innerHTML;
      document.querySelectorAll('details[id]').forEach(function(e){if(open[e.id])e.open=true});
    }).catch(function(){var s=document.getElementById('conn');if(s)s.textContent='(connection lost, retrying)'});
  }
  setInterval(refresh,5000);
})();
)";

}  // namespace

std::string PageHtml(const Snapshot& s, bool control_enabled, const std::string& fleet_section) {
  std::string out =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>sluice status</title><noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript><style>";
  out += kStyle;
  out += "</style></head><body><header><h1>sluice &mdash; migrations</h1><span class=\"muted\">as of " + H(s.now) +
         " &middot; refreshes every 5 s <span id=\"conn\"></span> &middot; " +
         (control_enabled ? "control enabled (token)" : "read-only") + "</span></header>";
  if (!s.ok) {
    out += "<p class=\"error\" id=\"state-error\">cannot read sluice's state tables: " + H(s.error) + "</p>";
  }
  out += fleet_section;
  if (s.ok && s.migrations.empty()) out += "<p class=\"muted\">no migration has been started in this database</p>";
  // Newest first: the one in flight is what people look at.
  for (auto it = s.migrations.rbegin(); it != s.migrations.rend(); ++it) {
    const MigrationInfo& m = *it;
    out += fmt::format("<section class=\"migration\" id=\"m-{}\" data-migration=\"{}\" data-phase=\"{}\">", H(m.name),
                       H(m.name), H(m.phase));
    out += fmt::format("<h2>{}<span class=\"phase\">{}</span></h2>", H(m.name), H(m.phase));
    out += fmt::format("<p class=\"muted\">version {} (previous {}) &middot; reads go to the {} version &middot; "
                       "tables: {}</p>",
                       H(m.version), H(m.previous_version.empty() ? "-" : m.previous_version), H(m.live),
                       H(fmt::format("{}", fmt::join(m.tables, ", "))));
    out += Timeline(m);
    out += Progress(m);
    // Each line says itself whether a gate was forced past or --force was
    // given to a gate that passed (which overrides nothing).
    for (const auto& o : m.overrides) {
      const bool forced_past = o.rfind("FORCED WHILE PASSING", 0) != 0;
      out += std::string("<p class=\"") + (forced_past ? "error" : "warn") + "\">" + H(o) + "</p>";
    }
    auto g = s.gates.find(m.name);
    if (g != s.gates.end()) out += Scorecard(g->second);
    auto v = s.verifications.find(m.name);
    if (v != s.verifications.end()) out += Verification(v->second);
    auto c = s.chunks.find(m.name);
    if (c != s.chunks.end()) out += Charts(c->second);
    out += "</section>";
  }
  out += "<h2>Audit log (latest)</h2><table class=\"events\"><tr><th>at</th><th>migration</th><th>event</th>"
         "<th>actor</th><th>message</th></tr>";
  for (auto it = s.tail.rbegin(); it != s.tail.rend(); ++it) {
    out += fmt::format("<tr data-event-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", it->id,
                       H(it->at), H(it->migration), H(it->kind), H(it->actor), H(it->message));
  }
  out += "</table><p class=\"muted\">metrics: <a href=\"/metrics\">/metrics</a> &middot; JSON: "
         "<a href=\"/api/v1/status\">/api/v1/status</a>, <a href=\"/api/v1/events\">/api/v1/events</a></p>";
  out += "<script>";
  out += kScript;
  out += "</script></body></html>\n";
  return out;
}

}  // namespace sluice::serve
