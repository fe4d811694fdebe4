// Hooks and webhooks: what sluice tells the world about each event it
// records (docs/command-center.md).
//
// The engine records every event in the audit log (StateStore::AddEvent).
// While a Migrator call runs, its Dispatcher is the thread's current one
// (Dispatcher::Scope); AddEvent hands it each event, which it delivers once
// the event's transaction has committed:
//
//   * a hook: the executable `<hooks_dir>/on-<name>` (HookName below) runs
//     with SLUICE_MIGRATION, SLUICE_PHASE, SLUICE_EVENT, SLUICE_DB (password
//     removed) and the event as JSON on stdin, under a time limit;
//   * each webhook URL gets the event as JSON (with a Slack-compatible
//     `text`), POSTed by a background thread, retried with backoff on
//     connection errors and 5xx answers, never twice after a 2xx.
//
// Hook runs and failures go back into the audit log as `hook` /
// `hook.failed` events (never dispatched themselves). Backfill progress and
// throttle changes are not stored events: Progress() turns the backfill's
// progress callback into `backfill.progress` (rate-limited) and
// `backfill.throttle` deliveries.
//
// Thread-safety: Recorded/Flush/Progress/Before may be called from any
// thread; deliveries are serialised by an internal mutex.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.h"

namespace sluice::hooks {

// The hook an event kind runs ("" = none): start -> on-start,
// backfill.done -> on-backfill-done, a failed verify -> on-verify-failed, ...
std::string HookName(const EventInfo& e);

// The event as the JSON hooks read on stdin and webhooks receive, with a
// one-line `text` for chat tools.
std::string EventJson(const EventInfo& e, const std::string& phase);

// `url` without its password (postgresql://u:secret@h/db -> postgresql://u@h/db,
// password=... in key=value form removed).
std::string RedactUrl(const std::string& url);

struct HookRun {
  bool found = false;       // the executable exists
  int exit_code = -1;       // -1: killed or could not run
  bool timed_out = false;
  std::string error;        // why it could not run
  std::string last_stderr;  // the last non-empty line it wrote to stderr
  double seconds = 0;
  bool ok() const { return found && exit_code == 0; }
};

// Runs `path` with `env` added to sluice's environment and `input` on its
// stdin; kills its process group after `timeout_ms`. Not found (or not
// executable): found = false and nothing runs.
HookRun RunHook(const std::string& path, const std::map<std::string, std::string>& env, const std::string& input,
                int64_t timeout_ms);

// What the dispatcher needs from the engine.
struct Backend {
  // Records an event of its own (hook runs) in the audit log.
  std::function<void(const std::string& migration, const std::string& kind, const std::string& message,
                     const std::string& details)> record;
  // The ids among `ids` that are in the audit log (their transaction
  // committed).
  std::function<std::set<int64_t>(const std::vector<int64_t>& ids)> committed;
  // The migration's phase now ("" unknown).
  std::function<std::string(const std::string& migration)> phase_of;
};

class Dispatcher {
 public:
  Dispatcher(const Options& options, Backend backend);
  // Waits (at most ~10 s) for queued webhooks to be sent.
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  bool enabled() const { return !hooks_dir_.empty() || !webhooks_.empty(); }

  // An event was recorded; `committed` false while its transaction is open
  // (it is delivered by Flush once committed).
  void Recorded(const EventInfo& e, bool committed);
  // Delivers the pending events that committed; drops the others.
  void Flush();
  // The backfill's progress: `backfill.progress` at most once per interval,
  // `backfill.throttle` when a throttle reason appears.
  void Progress(const BackfillProgress& p);
  // Runs before-hook `hook` (on-before-switch / on-before-complete) now.
  // kFailedPrecondition naming the hook and its last stderr line when it
  // exits non-zero or times out (recorded as `hook.vetoed`); OK when it
  // exits 0 or does not exist.
  Status Before(const std::string& hook, const std::string& migration);

  // The dispatcher of the Migrator call running on this thread (nullptr
  // outside one).
  static Dispatcher* Current();
  class Scope {
   public:
    explicit Scope(Dispatcher* d);
    ~Scope();
   private:
    Dispatcher* prev_;
  };

 private:
  void Deliver(const EventInfo& e);
  void RunHookFor(const std::string& hook, const EventInfo& e, const std::string& phase);
  void WebhookLoop();
  std::map<std::string, std::string> Env(const EventInfo& e, const std::string& phase) const;

  std::string hooks_dir_;
  std::vector<std::string> webhooks_;
  std::string db_redacted_;
  int64_t timeout_ms_;
  int64_t progress_interval_ms_;
  Clock* clock_;
  Backend backend_;

  std::recursive_mutex mu_;  // deliveries; recursive: recording a hook run re-enters Recorded
  std::vector<EventInfo> pending_;
  std::set<int64_t> delivered_;
  int64_t last_progress_ms_ = -1;
  std::map<std::string, std::string> last_throttle_;
  int64_t synthetic_id_ = 0;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::string> queue_;  // webhook bodies
  bool stopping_ = false;
  std::thread sender_;
};

}  // namespace sluice::hooks
