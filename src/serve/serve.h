// `sluice serve`: the command center's HTTP side (docs/command-center.md).
//
// Reads the state tables through the public API only (a Migrator per
// snapshot), so it runs on any machine that reaches the database, apart
// from the process doing the backfill. Endpoints:
//
//   GET  /metrics                 Prometheus text exposition (metrics.cc)
//   GET  /                        the status page: self-contained HTML, inline SVG (page.cc)
//   GET  /api/v1/status           the JSON of `sluice status --json`
//   GET  /api/v1/events           the audit log (?migration=&after=&limit=)
//   GET  /api/v1/gates/NAME       the readiness scorecard of one migration
//   GET  /api/v1/fleet            with --inventory: `sluice fleet status --json`
//   POST /api/v1/migrations/NAME/{pause,resume,tune,signoff}
//                                 only with a control token, as `Authorization: Bearer TOKEN`
//
// No endpoint runs SQL a client sends. The HTTP server is cpp-httplib
// (Debian's libcpp-httplib-dev), with a bounded thread pool, read and write
// timeouts and request size limits; this header does not expose it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/sluice.h"

namespace sluice::serve {

// A fleet's view (docs/fleets.md), read on request: the JSON of `sluice
// fleet status --json` and the status page's fleet section (HTML).
struct FleetView {
  std::string json, html;
};

struct ServeOptions {
  // host:port. Loopback by default: anything else exposes the migration's
  // state (and, with a token, its control) to the network.
  std::string listen = "127.0.0.1:9187";
  // "" = read-only: every POST is refused (403). Otherwise POSTs need
  // `Authorization: Bearer <token>` (compared in constant time).
  std::string control_token;
  int threads = 16;                   // bounded pool: requests beyond wait in its queue
  size_t max_body_bytes = 64 * 1024;  // larger bodies get 413
  int read_timeout_seconds = 5;       // a client slower than this is dropped
  int write_timeout_seconds = 5;
  int keep_alive_seconds = 2;
  // Called once the port is bound, with the address actually bound (port 0
  // picks a free one).
  std::function<void(const std::string& host, int port)> on_listening;
  // Set (e.g. by SIGINT) to stop serving.
  const std::atomic<bool>* cancel = nullptr;
  // `--inventory`: reads the fleet's view (from its ledger and each
  // database's own state) for /api/v1/fleet and the status page. Unset: no
  // fleet (/api/v1/fleet is 404). Called from request threads.
  std::function<Result<FleetView>()> fleet;
};

// Everything the endpoints show, read at one moment.
struct Snapshot {
  bool ok = true;
  std::string error;  // why reading the state failed (sluice_up 0)
  double seconds = 0;  // how long reading took
  std::vector<MigrationInfo> migrations;
  std::map<std::string, std::vector<GateInfo>> gates;                 // in-flight migrations
  std::map<std::string, std::optional<VerifyResult>> verifications;  // last report
  std::map<std::string, ChunkHistory> chunks;                         // in-flight migrations
  std::vector<EventInfo> tail;                                        // newest events, oldest first
  std::map<std::pair<std::string, std::string>, int64_t> event_counts;  // (migration, kind) -> count
  std::string now;  // ISO time of the snapshot
};

// Reads a snapshot through `m`. `counts` / `last_id` carry the event counts
// between calls (the audit log only grows), so each call reads only new
// events.
Snapshot TakeSnapshot(Migrator& m, std::map<std::pair<std::string, std::string>, int64_t>* counts,
                      int64_t* last_id, std::vector<EventInfo>* tail);

// Prometheus text exposition format 0.0.4.
std::string MetricsText(const Snapshot& s);
// The status page; `fleet_section` (HTML, "" = none) goes above the
// migrations.
std::string PageHtml(const Snapshot& s, bool control_enabled, const std::string& fleet_section = "");

// Parses "host:port" ("[v6]:port" too). kInvalidArgument when malformed.
Result<std::pair<std::string, int>> ParseListen(const std::string& listen);
// True for 127.0.0.0/8, ::1 and localhost.
bool IsLoopback(const std::string& host);

// Serves until options.cancel is set. `db` is the Migrator's options
// (database, schemas, actor). kUnavailable when the address cannot be
// bound.
Status Serve(const Options& db, const ServeOptions& options);

}  // namespace sluice::serve
