#include "hooks/hooks.h"

#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <regex>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"

extern char** environ;

namespace sluice::hooks {

namespace {

thread_local Dispatcher* t_current = nullptr;

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Kinds the dispatcher records itself: never delivered (no loops).
bool OwnKind(const std::string& kind) { return StartsWith(kind, "hook") || StartsWith(kind, "webhook"); }

int64_t MonoMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string HookName(const EventInfo& e) {
  static const std::map<std::string, std::string> kByKind = {
      {"start", "on-start"},
      {"backfill.progress", "on-backfill-progress"},
      {"backfill.done", "on-backfill-done"},
      {"backfill.throttle", "on-throttle"},
      {"switch", "on-switch"},
      {"abort", "on-abort"},
      {"complete", "on-complete"},
      {"rollback", "on-rollback"},
      {"backfill.error", "on-failure"},
  };
  if (e.kind == "verify") return e.message.find("FAILED") != std::string::npos ? "on-verify-failed" : "";
  auto it = kByKind.find(e.kind);
  return it == kByKind.end() ? "" : it->second;
}

std::string EventJson(const EventInfo& e, const std::string& phase) {
  nlohmann::json details = nullptr;
  if (!e.details.empty()) {
    details = nlohmann::json::parse(e.details, nullptr, false);
    if (details.is_discarded()) details = e.details;
  }
  nlohmann::json j = {{"id", e.id},       {"migration", e.migration}, {"at", e.at},
                      {"kind", e.kind},   {"actor", e.actor},         {"message", e.message},
                      {"phase", phase},   {"details", details},
                      {"text", "sluice: " + e.migration + ": " + e.kind + ": " + e.message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string RedactUrl(const std::string& url) {
  // URL form: scheme://user:password@host...
  static const std::regex kUrl(R"(^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@/]*@)");
  std::string out = std::regex_replace(url, kUrl, "$1@");
  // key=value form and URL query parameters.
  static const std::regex kKv(R"((^|[\s&?])password\s*=\s*('[^']*'|[^\s&]*))");
  return std::regex_replace(out, kKv, "$1password=REDACTED");
}

HookRun RunHook(const std::string& path, const std::map<std::string, std::string>& env, const std::string& input,
                int64_t timeout_ms) {
  HookRun run;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return run;
  run.found = true;
  if (::access(path.c_str(), X_OK) != 0) {
    run.error = path + " is not executable (chmod +x it)";
    return run;
  }
  std::vector<std::string> env_text;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    std::string key = kv.substr(0, kv.find('='));
    if (!env.count(key)) env_text.push_back(kv);
  }
  for (const auto& [k, v] : env) env_text.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_text) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = path;
  char* argv[] = {arg0.data(), nullptr};

  int in_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    run.error = std::string("pipe: ") + std::strerror(errno);
    return run;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    run.error = std::string("pipe: ") + std::strerror(errno);
    return run;
  }
  const int64_t started = MonoMillis();
  pid_t pid = ::fork();
  if (pid < 0) {
    run.error = std::string("fork: ") + std::strerror(errno);
    for (int fd : {in_pipe[0], in_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return run;
  }
  if (pid == 0) {
    // Child: its own process group, so a timeout kills what it started too.
    ::setpgid(0, 0);
    ::dup2(in_pipe[0], 0);
    ::dup2(err_pipe[1], 2);
    int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 1);  // a hook's stdout is not sluice's
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(path.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(in_pipe[0]);
  ::close(err_pipe[1]);
  // Feed stdin without blocking (a hook that never reads it must not stall
  // sluice), and collect stderr until it closes or the time is up.
  ::fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  // A hook that exits without reading stdin must not kill sluice with
  // SIGPIPE: block it on this thread while writing, and discard one raised.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  std::string err;
  bool err_open = true;
  int status = 0;
  bool exited = false;
  while (true) {
    int64_t left = timeout_ms - (MonoMillis() - started);
    if (left <= 0) {
      run.timed_out = true;
      break;
    }
    if (!err_open && in_fd < 0) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        break;
      }
      ::usleep(5000);
      continue;
    }
    struct pollfd fds[2];
    int n = 0;
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int pr = ::poll(fds, n, static_cast<int>(std::min<int64_t>(left, 100)));
    if (pr < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].fd == err_pipe[0] && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t r = ::read(err_pipe[0], buf, sizeof buf);
        if (r > 0) {
          err.append(buf, static_cast<size_t>(r));
          if (err.size() > 65536) err.erase(0, err.size() - 65536);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          err_open = false;
        }
      } else if (fds[i].fd == in_fd && (fds[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // hook closed stdin
        if (written >= input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(err_pipe[0]);
  struct timespec zero {};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  run.seconds = static_cast<double>(MonoMillis() - started) / 1000.0;
  if (exited && WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
  } else if (exited && WIFSIGNALED(status)) {
    run.error = "killed by signal " + std::to_string(WTERMSIG(status));
  }
  if (run.timed_out) run.error = "still running after " + std::to_string(timeout_ms) + " ms (killed)";
  // The last non-empty stderr line.
  size_t end = err.find_last_not_of("\r\n \t");
  if (end != std::string::npos) {
    size_t begin = err.rfind('\n', end);
    run.last_stderr = err.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
  }
  return run;
}

// --- Dispatcher ---------------------------------------------------------------

Dispatcher::Dispatcher(const Options& options, Backend backend)
    : hooks_dir_(options.hooks_dir),
      webhooks_(options.webhooks),
      db_redacted_(RedactUrl(options.db_url)),
      timeout_ms_(options.hook_timeout_ms > 0 ? options.hook_timeout_ms : 30000),
      progress_interval_ms_(options.progress_event_interval_ms),
      clock_(options.clock ? options.clock : Clock::Real()),
      backend_(std::move(backend)) {
  if (!webhooks_.empty()) sender_ = std::thread([this] { WebhookLoop(); });
}

Dispatcher::~Dispatcher() {
  if (sender_.joinable()) {
    {
      std::lock_guard<std::mutex> l(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    sender_.join();
  }
}

Dispatcher* Dispatcher::Current() { return t_current; }
Dispatcher::Scope::Scope(Dispatcher* d) : prev_(t_current) { t_current = d; }
Dispatcher::Scope::~Scope() { t_current = prev_; }

void Dispatcher::Recorded(const EventInfo& e, bool committed) {
  if (!enabled() || OwnKind(e.kind)) return;
  std::lock_guard<std::recursive_mutex> l(mu_);
  if (committed) {
    Deliver(e);
  } else {
    pending_.push_back(e);
  }
}

void Dispatcher::Flush() {
  std::vector<EventInfo> pending;
  {
    std::lock_guard<std::recursive_mutex> l(mu_);
    pending.swap(pending_);
  }
  if (pending.empty()) return;
  std::vector<int64_t> ids;
  for (const auto& e : pending) ids.push_back(e.id);
  std::set<int64_t> committed = backend_.committed(ids);
  std::lock_guard<std::recursive_mutex> l(mu_);
  for (const auto& e : pending) {
    if (committed.count(e.id)) Deliver(e);
  }
}

void Dispatcher::Progress(const BackfillProgress& p) {
  if (!enabled()) return;
  std::lock_guard<std::recursive_mutex> l(mu_);
  auto synthetic = [&](const std::string& kind, const std::string& message) {
    EventInfo e;
    e.id = --synthetic_id_;  // not in the audit log: negative, never confused with a stored id
    e.migration = p.migration;
    e.at = IsoTime(clock_->WallMicros());
    e.kind = kind;
    e.message = message;
    nlohmann::json d = {{"table", p.table},
                        {"rows_done", p.rows_done},
                        {"rows_total", p.rows_total},
                        {"rows_per_second", p.rows_per_second},
                        {"eta_seconds", p.eta_seconds},
                        {"throttle", p.throttle}};
    e.details = d.dump();
    Deliver(e);
  };
  std::string& last = last_throttle_[p.migration];
  if (!p.throttle.empty() && p.throttle != last) {
    synthetic("backfill.throttle", "throttled: " + p.throttle);
  }
  last = p.throttle;
  if (p.done) return;  // backfill.done is a recorded event of its own
  const int64_t now = clock_->NowMicros() / 1000;
  if (last_progress_ms_ >= 0 && now - last_progress_ms_ < progress_interval_ms_) return;
  last_progress_ms_ = now;
  synthetic("backfill.progress", p.table + ": " + std::to_string(p.rows_done) + "/" + std::to_string(p.rows_total) +
                                     " rows");
}

std::map<std::string, std::string> Dispatcher::Env(const EventInfo& e, const std::string& phase) const {
  return {{"SLUICE_MIGRATION", e.migration},
          {"SLUICE_PHASE", phase},
          {"SLUICE_EVENT", e.kind},
          {"SLUICE_DB", db_redacted_}};
}

void Dispatcher::Deliver(const EventInfo& e) {
  if (e.id > 0 && !delivered_.insert(e.id).second) return;  // at most once per event
  const std::string phase = backend_.phase_of ? backend_.phase_of(e.migration) : "";
  const std::string hook = HookName(e);
  if (!hooks_dir_.empty() && !hook.empty()) RunHookFor(hook, e, phase);
  if (!webhooks_.empty()) {
    {
      std::lock_guard<std::mutex> l(queue_mu_);
      queue_.push_back(EventJson(e, phase));
    }
    queue_cv_.notify_all();
  }
}

void Dispatcher::RunHookFor(const std::string& hook, const EventInfo& e, const std::string& phase) {
  const std::string path = hooks_dir_ + "/" + hook;
  HookRun r = RunHook(path, Env(e, phase), EventJson(e, phase), timeout_ms_);
  if (!r.found) return;
  nlohmann::json d = {{"hook", hook},         {"event", e.kind},          {"event_id", e.id},
                      {"exit_code", r.exit_code}, {"timed_out", r.timed_out}, {"seconds", r.seconds},
                      {"stderr", r.last_stderr},  {"error", r.error}};
  if (backend_.record) {
    if (r.ok()) {
      backend_.record(e.migration, "hook", hook + " ran for " + e.kind, d.dump());
    } else {
      backend_.record(e.migration, "hook.failed",
                      hook + " failed for " + e.kind + ": " +
                          (r.error.empty() ? "exit " + std::to_string(r.exit_code) : r.error) +
                          (r.last_stderr.empty() ? "" : " (" + r.last_stderr + ")"),
                      d.dump());
    }
  }
}

Status Dispatcher::Before(const std::string& hook, const std::string& migration) {
  if (hooks_dir_.empty()) return Status::Ok();
  std::lock_guard<std::recursive_mutex> l(mu_);
  EventInfo e;
  e.migration = migration;
  e.at = IsoTime(clock_->WallMicros());
  e.kind = hook == "on-before-switch" ? "switch.before" : "complete.before";
  e.message = hook + " (may postpone)";
  const std::string phase = backend_.phase_of ? backend_.phase_of(migration) : "";
  HookRun r = RunHook(hooks_dir_ + "/" + hook, Env(e, phase), EventJson(e, phase), timeout_ms_);
  if (!r.found) return Status::Ok();
  nlohmann::json d = {{"hook", hook},         {"exit_code", r.exit_code}, {"timed_out", r.timed_out},
                      {"seconds", r.seconds}, {"stderr", r.last_stderr},  {"error", r.error}};
  const std::string what = hook == "on-before-switch" ? "switch" : "complete";
  if (r.ok()) {
    if (backend_.record) backend_.record(migration, "hook", hook + " allowed " + what, d.dump());
    return Status::Ok();
  }
  std::string why = r.error.empty() ? "exited " + std::to_string(r.exit_code) : r.error;
  if (!r.last_stderr.empty()) why += ": " + r.last_stderr;
  const std::string message = what + " of '" + migration + "' postponed by hook " + hook + " (" + why + ")";
  if (backend_.record) backend_.record(migration, "hook.vetoed", message, d.dump());
  return FailedPrecondition(message + "; fix what it reports (or remove " + hooks_dir_ + "/" + hook +
                            ") and run the command again");
}

void Dispatcher::WebhookLoop() {
  std::set<std::string> down;
  while (true) {
    std::string body;
    {
      std::unique_lock<std::mutex> l(queue_mu_);
      queue_cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      body = std::move(queue_.front());
      queue_.pop_front();
    }
    for (const auto& url : webhooks_) {
      // Split scheme://host[:port] from the path for httplib.
      auto scheme_end = url.find("://");
      auto path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
      std::string base = path_start == std::string::npos ? url : url.substr(0, path_start);
      std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
      httplib::Client cli(base);
      cli.set_connection_timeout(2, 0);
      cli.set_read_timeout(5, 0);
      cli.set_write_timeout(5, 0);
      std::string failure;
      // Retry with backoff while the event was not received; a 2xx (or any
      // 4xx: the receiver refused it) ends the tries, so no event is
      // delivered twice by sluice.
      // A receiver that failed every try for an earlier event gets one try
      // per event from then on, so a dead receiver cannot hold the command
      // at exit for long.
      const int tries = down.count(url) ? 1 : 4;
      int64_t backoff_ms = 250;
      for (int attempt = 1; attempt <= tries; ++attempt) {
        auto res = cli.Post(path, body, "application/json");
        if (res && res->status < 500) {
          failure = res->status < 300 ? "" : "HTTP " + std::to_string(res->status);
          break;
        }
        failure = res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error());
        if (attempt == tries) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms *= 2;
      }
      if (!failure.empty()) down.insert(url);
      if (!failure.empty()) {
        std::fprintf(stderr, "sluice: webhook %s failed: %s\n", RedactUrl(url).c_str(), failure.c_str());
      }
    }
  }
}

}  // namespace sluice::hooks
