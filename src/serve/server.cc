// `sluice serve`: routes, limits and the control endpoints. The only file
// that includes cpp-httplib for the server side (src/hooks uses its client
// for webhooks).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/output.h"
#include "common/html.h"
#include "serve/serve.h"

namespace sluice::serve {

namespace {

constexpr int64_t kTailEvents = 25;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string NowIsoUtc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Compares without an early exit, so the time taken does not tell how much
// of a guessed token was right.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& longer = a.size() >= b.size() ? a : b;
  for (size_t i = 0; i < longer.size(); ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

void Json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

void Error(httplib::Response& res, int status, const std::string& message) {
  Json(res, status, {{"error", message}});
}

int HttpStatusOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kInvalidPlan:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
    case StatusCode::kAborted:
    case StatusCode::kInDoubt:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  std::string host, port;
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgument("--listen " + listen + ": expected [IPv6]:PORT");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return InvalidArgument("--listen " + listen + ": expected HOST:PORT, e.g. 127.0.0.1:9187");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    return InvalidArgument("--listen " + listen + ": the port must be a number from 0 to 65535");
  }
  return std::make_pair(host, static_cast<int>(p));
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

Snapshot TakeSnapshot(Migrator& m, std::map<std::pair<std::string, std::string>, int64_t>* counts, int64_t* last_id,
                      std::vector<EventInfo>* tail) {
  Snapshot s;
  auto started = std::chrono::steady_clock::now();
  s.now = NowIsoUtc();
  auto fail = [&](const Status& st) {
    s.ok = false;
    s.error = st.message();
    s.seconds = Seconds(started);
    return s;
  };
  auto list = m.List();
  if (!list.ok()) return fail(list.status());
  s.migrations = std::move(*list);
  for (const auto& mi : s.migrations) {
    auto v = m.LastVerification(mi.name);
    if (!v.ok()) return fail(v.status());
    s.verifications[mi.name] = std::move(*v);
    if (mi.backfill.empty()) continue;  // complete / rolled back: no gates or backfill to show
    auto g = m.Gates(mi.name);
    if (!g.ok()) return fail(g.status());
    s.gates[mi.name] = std::move(*g);
    auto c = m.Chunks(mi.name);
    if (!c.ok()) return fail(c.status());
    s.chunks[mi.name] = std::move(*c);
  }
  // New events since the last snapshot (the audit log only grows).
  while (true) {
    auto ev = m.Events("", *last_id, 10000);
    if (!ev.ok()) return fail(ev.status());
    for (const auto& e : *ev) {
      ++(*counts)[{e.migration, e.kind}];
      *last_id = std::max(*last_id, e.id);
      tail->push_back(e);
    }
    if (tail->size() > static_cast<size_t>(kTailEvents)) tail->erase(tail->begin(), tail->end() - kTailEvents);
    if (ev->size() < 10000) break;
  }
  s.event_counts = *counts;
  s.tail = *tail;
  s.seconds = Seconds(started);
  return s;
}

Status Serve(const Options& db, const ServeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto hp, ParseListen(options.listen));
  // Open once to validate the URL; each request opens its own Migrator (one
  // thread at a time each), which connects only for its reads.
  SLUICE_ASSIGN_OR_RETURN(auto probe, Migrator::Open(db));
  probe.reset();

  // Snapshots are taken one at a time (the event counts carry over between
  // them) and shared: a request waits for the next snapshot that starts
  // after it arrived, so its values are the state tables' at or after its
  // arrival, and a burst of scrapes costs two reads, not one per client.
  std::mutex snap_mu;
  std::condition_variable snap_cv;
  bool taking = false;
  uint64_t generation = 0;
  Snapshot latest;
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  int64_t last_id = 0;
  std::vector<EventInfo> tail;
  auto take = [&]() -> Snapshot {
    auto m = Migrator::Open(db);
    if (!m.ok()) {
      Snapshot s;
      s.ok = false;
      s.error = m.status().message();
      return s;
    }
    return TakeSnapshot(**m, &counts, &last_id, &tail);
  };
  auto snapshot = [&]() -> Snapshot {
    std::unique_lock<std::mutex> l(snap_mu);
    const uint64_t want = generation + (taking ? 2 : 1);
    while (generation < want) {
      if (taking) {
        snap_cv.wait(l);
        continue;
      }
      taking = true;
      l.unlock();
      Snapshot s = take();  // counts/last_id/tail: only the one taker touches them
      l.lock();
      latest = std::move(s);
      ++generation;
      taking = false;
      snap_cv.notify_all();
    }
    return latest;
  };
  const bool control = !options.control_token.empty();

  // A client that hangs up mid-answer must not end the server.
  std::signal(SIGPIPE, SIG_IGN);
  httplib::Server svr;
  const int threads = options.threads > 0 ? options.threads : 16;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(options.max_body_bytes);
  svr.set_read_timeout(options.read_timeout_seconds, 0);
  svr.set_write_timeout(options.write_timeout_seconds, 0);
  svr.set_keep_alive_timeout(options.keep_alive_seconds);
  svr.set_keep_alive_max_count(20);
  svr.set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
  // Debian's httplib listens with a backlog of 5: a burst of connections (a
  // scrape, a few dashboards, the test's 200 clients) overflowed it, and
  // the kernel dropped handshakes that the clients only retried seconds
  // later (379 listen overflows in one run of the test, which then waited
  // 6-19 s or timed out). The bound socket listens again with the system's
  // maximum.
  int listen_fd = -1;
  svr.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });

  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    Snapshot s = snapshot();
    res.set_content(MetricsText(s), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    Snapshot s = snapshot();
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
                   "img-src 'self' data:");
    std::string fleet;
    if (options.fleet) {
      auto v = options.fleet();
      fleet = v.ok() ? v->html
                     : "<p class=\"error\" id=\"fleet-error\">cannot read the fleet: " + HtmlEscape(v.status().message()) +
                           "</p>";
    }
    res.set_content(PageHtml(s, control, fleet), "text/html; charset=utf-8");
  });
  svr.Get("/api/v1/status", [&](const httplib::Request&, httplib::Response& res) {
    auto m = Migrator::Open(db);
    if (!m.ok()) return Error(res, HttpStatusOf(m.status()), m.status().message());
    auto r = (*m)->List();
    if (!r.ok()) return Error(res, HttpStatusOf(r.status()), r.status().message());
    res.set_content(cli::StatusJson(*r) + "\n", "application/json");
  });
  svr.Get("/api/v1/events", [&](const httplib::Request& req, httplib::Response& res) {
    int64_t after = 0, limit = 1000;
    try {
      if (req.has_param("after")) after = std::stoll(req.get_param_value("after"));
      if (req.has_param("limit")) limit = std::stoll(req.get_param_value("limit"));
    } catch (const std::exception&) {
      return Error(res, 400, "after and limit must be integers");
    }
    if (limit <= 0 || limit > 10000) return Error(res, 400, "limit must be from 1 to 10000");
    auto m = Migrator::Open(db);
    if (!m.ok()) return Error(res, HttpStatusOf(m.status()), m.status().message());
    auto r = (*m)->Events(req.get_param_value("migration"), after, limit);
    if (!r.ok()) return Error(res, HttpStatusOf(r.status()), r.status().message());
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : *r) {
      nlohmann::json details = nullptr;
      if (!e.details.empty()) {
        details = nlohmann::json::parse(e.details, nullptr, false);
        if (details.is_discarded()) details = e.details;
      }
      j.push_back({{"id", e.id}, {"migration", e.migration}, {"at", e.at}, {"kind", e.kind}, {"actor", e.actor},
                   {"message", e.message}, {"details", details}});
    }
    Json(res, 200, j);
  });
  svr.Get("/api/v1/fleet", [&](const httplib::Request&, httplib::Response& res) {
    if (!options.fleet) return Error(res, 404, "no fleet: start sluice serve with --inventory FILE");
    auto v = options.fleet();
    if (!v.ok()) return Error(res, HttpStatusOf(v.status()), v.status().message());
    res.set_content(v->json + "\n", "application/json");
  });
  svr.Get(R"(/api/v1/gates/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
    auto m = Migrator::Open(db);
    if (!m.ok()) return Error(res, HttpStatusOf(m.status()), m.status().message());
    auto r = (*m)->Gates(req.matches[1]);
    if (!r.ok()) return Error(res, HttpStatusOf(r.status()), r.status().message());
    res.set_content(cli::GatesJson(*r) + "\n", "application/json");
  });

  // Control: pause, resume, tune, signoff. Only with a token; the actor in
  // the audit log names the client's address.
  svr.Post(R"(/api/v1/migrations/([^/]+)/(pause|resume|tune|signoff))",
           [&](const httplib::Request& req, httplib::Response& res) {
    if (!control) {
      return Error(res, 403, "control is disabled: this sluice serve is read-only (start it with --control-token)");
    }
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"sluice\"");
      return Error(res, 401, "missing `Authorization: Bearer TOKEN`");
    }
    if (!ConstantTimeEquals(auth.substr(7), options.control_token)) return Error(res, 403, "wrong control token");
    nlohmann::json body = nlohmann::json::object();
    if (!req.body.empty()) {
      body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_object()) return Error(res, 400, "the request body must be a JSON object");
    }
    Options o = db;
    o.actor = (db.actor.empty() ? "sluice-serve" : db.actor) + " (http " + req.remote_addr + ")";
    auto m = Migrator::Open(o);
    if (!m.ok()) return Error(res, HttpStatusOf(m.status()), m.status().message());
    const std::string name = req.matches[1];
    const std::string action = req.matches[2];
    Status s;
    try {
      if (action == "pause") {
        s = (*m)->Pause(name);
      } else if (action == "resume") {
        s = (*m)->Resume(name);
      } else if (action == "tune") {
        std::optional<double> rate;
        std::optional<int64_t> chunk_ms, workers;
        if (body.contains("max_rows_per_second")) rate = body["max_rows_per_second"].get<double>();
        if (body.contains("chunk_target_ms")) chunk_ms = body["chunk_target_ms"].get<int64_t>();
        if (body.contains("workers")) workers = body["workers"].get<int64_t>();
        s = (*m)->Tune(name, rate, chunk_ms, workers, body.value("reset", false));
      } else {
        if (!body.contains("gate") || !body.contains("name") || !body.contains("role")) {
          return Error(res, 400, "signoff needs a JSON body with gate, name and role (note optional)");
        }
        s = (*m)->Signoff(name, body["gate"].get<std::string>(), body["name"].get<std::string>(),
                          body["role"].get<std::string>(), body.value("note", ""));
      }
    } catch (const nlohmann::json::exception& e) {
      return Error(res, 400, std::string("bad field type in the request body: ") + e.what());
    }
    if (!s.ok()) return Error(res, HttpStatusOf(s), s.message());
    Json(res, 200, {{"ok", true}, {"migration", name}, {"action", action}});
  });

  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    // Routes set their own bodies; this covers 404 (unknown path or method)
    // and the library's own refusals (400, 413, 414 ...).
    if (res.body.empty()) {
      const char* why = res.status == 404   ? "no such endpoint (see docs/command-center.md)"
                        : res.status == 413 ? "request body too large"
                        : res.status == 414 ? "request URI too long"
                                            : "bad request";
      Error(res, res.status, why);
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    Error(res, 500, "internal error (a bug in sluice, please report it)");
  });

  int port = hp.second;
  if (port == 0) {
    port = svr.bind_to_any_port(hp.first);
    if (port < 0) return Unavailable("cannot listen on " + options.listen + ": no free port");
  } else if (!svr.bind_to_port(hp.first, port)) {
    return Unavailable("cannot listen on " + options.listen + ": " + std::strerror(errno) +
                       " (is another sluice serve running? choose another --listen)");
  }
  if (listen_fd >= 0) (void)::listen(listen_fd, SOMAXCONN);
  if (options.on_listening) options.on_listening(hp.first, port);
  std::atomic<bool> listening_ended{false};
  // stop() before listen_after_bind has started its loop does nothing
  // (httplib checks is_running), so a SIGTERM that arrives that early would
  // leave the server listening for ever: keep stopping until it has ended.
  std::thread stopper([&] {
    while (!listening_ended.load()) {
      if (options.cancel && options.cancel->load()) svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  bool ok = svr.listen_after_bind();
  listening_ended = true;
  stopper.join();
  if (ok || (options.cancel && options.cancel->load())) return Status::Ok();
  return Unavailable("the HTTP server on " + options.listen + " stopped unexpectedly");
}

}  // namespace sluice::serve
