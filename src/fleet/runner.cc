#include "fleet/runner.h"

#include <fmt/core.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <unistd.h>

#include "common/clock.h"
#include "fleet/ledger.h"
#include "fleet/waves.h"

namespace sluice::fleet {

namespace {

std::string MigrationName(const std::string& plan_path) { return std::filesystem::path(plan_path).stem().string(); }

std::string LedgerUrl(const Inventory& inv, const RunOptions& o) {
  if (!o.ledger_url.empty()) return o.ledger_url;
  std::filesystem::path dir = std::filesystem::absolute(inv.file).parent_path();
  return "sqlite:" + (dir / "fleet.db").string();
}

bool InFlight(const std::string& phase) {
  return phase == "starting" || phase == "active" || phase == "rolling_back";
}

// Runs `fn` over `order` with up to `parallel` threads. With `honour_after`
// a database starts only once every `after:` database of the same list has
// succeeded (one that failed or was skipped skips it). With
// `stop_on_failure` nothing new starts after a failure; running ones finish.
struct PoolResult {
  std::vector<std::pair<size_t, Status>> failures;  // in the order they happened
  int max_concurrent = 0;
};

PoolResult RunPool(const Inventory& inv, const std::vector<size_t>& order, int parallel, bool honour_after,
                   bool stop_on_failure, const std::atomic<bool>* cancel, const std::function<Status(size_t)>& fn) {
  enum State { kPending, kRunning, kOk, kFailed, kSkipped };
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < inv.databases.size(); ++i) index[inv.databases[i].name] = i;
  std::map<size_t, State> state;
  for (size_t i : order) state[i] = kPending;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  bool stop = false;
  PoolResult out;
  auto worker = [&] {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      if (stop || (cancel != nullptr && cancel->load())) return;
      bool pending = false;
      std::optional<size_t> next;
      for (size_t i : order) {
        if (state[i] != kPending) continue;
        bool ready = true;
        std::string blocked_by;
        if (honour_after) {
          for (const auto& a : inv.databases[i].after) {
            auto it = state.find(index.at(a));
            if (it == state.end() || it->second == kOk) continue;
            if (it->second == kFailed || it->second == kSkipped) blocked_by = a;
            ready = false;
          }
        }
        if (!blocked_by.empty()) {
          state[i] = kSkipped;
          out.failures.emplace_back(i, FailedPrecondition("not started: it is `after` " + blocked_by +
                                                          ", which did not finish"));
          cv.notify_all();
          continue;
        }
        pending = true;
        if (ready) {
          next = i;
          break;
        }
      }
      if (!next) {
        if (!pending || running == 0) return;
        cv.wait(lock);
        continue;
      }
      state[*next] = kRunning;
      ++running;
      out.max_concurrent = std::max(out.max_concurrent, running);
      lock.unlock();
      Status s = fn(*next);
      lock.lock();
      --running;
      state[*next] = s.ok() ? kOk : kFailed;
      if (!s.ok()) {
        out.failures.emplace_back(*next, s);
        if (stop_on_failure) stop = true;
      }
      cv.notify_all();
    }
  };
  int n = std::max(1, std::min<int>(parallel, static_cast<int>(order.size())));
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return out;
}

class Runner {
 public:
  Runner(const Inventory& inv, const RunOptions& o) : inv_(inv), o_(o) {
    clock_ = o.clock != nullptr ? o.clock : o.db_options.clock != nullptr ? o.db_options.clock : Clock::Real();
    name_ = o.migration.empty() ? MigrationName(o.plan_path) : o.migration;
  }

  Status Init(bool lock) {
    SLUICE_ASSIGN_OR_RETURN(waves_, AssignWaves(inv_));
    // The engine's default actor, so the ledger and the databases' audit
    // logs name the same runner.
    std::string actor = o_.db_options.actor;
    if (actor.empty()) {
      const char* user = std::getenv("USER");
      char host[256] = {};
      if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
      actor = std::string(user != nullptr ? user : "unknown") + "@" + (host[0] ? host : "localhost");
    }
    actor_ = actor;
    std::string url = LedgerUrl(inv_, o_);
    if (name_.empty()) {
      // status without a plan: the ledger's latest migration
      SLUICE_ASSIGN_OR_RETURN(auto probe, Ledger::Open(url, "", clock_, actor, lock));
      SLUICE_ASSIGN_OR_RETURN(name_, probe->LatestMigration());
      if (name_.empty()) return NotFound("the ledger " + url + " records no fleet run; pass the PLAN");
    }
    // Only the runs that change databases (apply, rollback: `lock`) create
    // the ledger; status and report read an existing one.
    SLUICE_ASSIGN_OR_RETURN(ledger_, Ledger::Open(url, name_, clock_, actor, lock));
    if (lock) SLUICE_RETURN_IF_ERROR(ledger_->Lock());
    return Status::Ok();
  }

  void Line(const std::string& s) {
    if (!o_.on_line) return;
    std::lock_guard<std::mutex> g(line_mu_);
    o_.on_line(s);
  }

  const DatabaseSpec& Db(size_t i) const { return inv_.databases[i]; }

  // "shard-01 (postgresql://app@host/db)"
  std::string Who(size_t i) const { return Db(i).name + " (" + RedactUrl(Db(i).url) + ")"; }

  // `soak`: on the soak's clock (RunOptions::clock), else the lifecycle's.
  Result<std::unique_ptr<Migrator>> Open(size_t i, bool soak = false) {
    Options opts = o_.db_options;
    opts.db_url = Db(i).url;
    opts.schema = Db(i).schema;
    if (soak) opts.clock = clock_;
    opts.create_database = false;
    if (opts.actor.empty()) opts.actor = actor_;
    auto m = Migrator::Open(opts);
    if (!m.ok()) return m.status().WithContext("cannot be opened");
    return m;
  }

  // The database's own record of the migration (nullopt: never started).
  Result<std::optional<MigrationInfo>> Find(Migrator& m, size_t i) {
    auto list = m.List();
    if (!list.ok()) {
      return Status(list.status().code(),
                    "unreachable or unreadable: " + list.status().message() +
                        "; check the url, the network and the credentials (PGPASSWORD / ~/.pgpass)",
                    list.status().detail());
    }
    for (auto& info : *list) {
      if (info.name == name_) return std::optional<MigrationInfo>(std::move(info));
    }
    return std::optional<MigrationInfo>();
  }

  Status Step(size_t i, const std::string& wave, const std::string& step, const Status& s) {
    if (s.ok()) {
      ledger_->SetDatabase(Db(i).name, wave, step).IgnoreError();
      Line(wave + ": " + Db(i).name + " " + step);
      return s;
    }
    // "started" -> "start failed: ..."
    static const std::map<std::string, std::string> kAction = {
        {"started", "start"},     {"backfilled", "backfill"}, {"verified", "verify"},
        {"switched", "switch"},   {"completed", "complete"},  {"rolled back", "rollback"}};
    auto action = kAction.find(step);
    Status out = s.WithContext("database " + Who(i) + ": " + (action != kAction.end() ? action->second : step) +
                               " failed");
    std::string what = action != kAction.end() ? action->second : step;
    ledger_->SetDatabase(Db(i).name, wave, "failed: " + what, out.message()).IgnoreError();
    Line(wave + ": " + Db(i).name + " FAILED: " + what + ": " + s.message());
    return out;
  }

  bool IsCancelled() const { return o_.cancel != nullptr && o_.cancel->load(); }

  // start -> backfill -> verify -> switch, from wherever the database is.
  Status Forward(size_t i, const std::string& wave) {
    auto opened = Open(i);
    if (!opened.ok()) return Step(i, wave, "open", opened.status());
    std::unique_ptr<Migrator> m = std::move(*opened);
    for (int round = 0; round < 12; ++round) {
      if (IsCancelled()) return Cancelled("interrupted; rerun `sluice fleet apply` to continue");
      auto found = Find(*m, i);
      if (!found.ok()) return Step(i, wave, "read state", found.status());
      const std::optional<MigrationInfo>& info = *found;
      if (!info || info->phase == "rolled_back" || info->phase == "starting") {
        std::vector<std::string> warnings;
        SLUICE_RETURN_IF_ERROR(Step(i, wave, "started", m->Start(o_.plan_path, &warnings)));
        continue;
      }
      if (info->phase == "rolling_back") {
        return Step(i, wave, "read state",
                    FailedPrecondition("its migration '" + name_ +
                                       "' is rolling back; finish that with `sluice fleet rollback` first"));
      }
      if (info->phase == "completing" || info->phase == "complete") return Status::Ok();
      if (info->phase != "active") {
        return Step(i, wave, "read state", Internal("unknown phase '" + info->phase + "'"));
      }
      if (info->backfill != "done" && info->backfill != "none" && !info->backfill.empty()) {
        BackfillOptions bo = o_.backfill;
        bo.cancel = o_.cancel;
        SLUICE_RETURN_IF_ERROR(Step(i, wave, "backfilled", m->Backfill(name_, bo).status()));
        continue;
      }
      if (info->live != "new") {
        SLUICE_RETURN_IF_ERROR(Step(i, wave, "verified", VerifyPassed(*m)));
        SLUICE_RETURN_IF_ERROR(Step(i, wave, "switched", m->Switch(name_, false)));
        continue;
      }
      return Status::Ok();
    }
    return Step(i, wave, "forward", Internal("no progress after 12 steps"));
  }

  Status VerifyPassed(Migrator& m) {
    VerifyOptions vo;
    vo.cancel = o_.cancel;
    auto r = m.Verify(name_, vo);
    if (!r.ok()) return r.status();
    if (r->passed) return Status::Ok();
    std::string failed;
    for (const auto& c : r->checks) {
      if (!c.passed && !c.skipped) failed += (failed.empty() ? "" : "; ") + c.name + ": " + c.summary;
    }
    return FailedPrecondition("verification failed: " + failed + " (see `sluice verify " + name_ + "` on it)");
  }

  // The wave's soak: the plan's abort criteria watched (Migrator::Watch) on
  // at most `parallel` databases at once, each on its own connection; for a
  // plan without them, the soak's time waited and each database verified
  // again (`parallel` at once too).
  std::vector<std::pair<size_t, Status>> Soak(const Wave& w) {
    std::vector<std::pair<size_t, Status>> failures;
    double seconds = inv_.soak_seconds;
    if (seconds <= 0) return failures;
    ledger_->SetWave(w.name, "soaking").IgnoreError();
    Line(w.name + ": soak " + fmt::format("{:g}", seconds) + " s");
    std::mutex mu;
    auto fail = [&](size_t i, const Status& s) {
      std::lock_guard<std::mutex> g(mu);
      failures.emplace_back(i, s);
    };
    // Which databases have abort criteria to watch: read one at a time.
    std::vector<size_t> watch, reverify;
    for (size_t i : w.databases) {
      auto m = Open(i, true);
      auto h = m.ok() ? (*m)->History(name_) : Result<MigrationHistory>(m.status());
      if (!h.ok()) {
        fail(i, Step(i, w.name, "soak", h.status()));
        continue;
      }
      (h->requirements.abort_criteria.empty() ? reverify : watch).push_back(i);
    }
    // `parallel` watchers. A wave no larger than that is watched whole: one
    // watcher per database for the soak's time. A larger one in turns: each
    // watcher takes its share of the databases and watches them one round
    // each (Watch over 0 s), round after round, an interval apart, until the
    // soak's time is up; so the soak lasts its time whatever the wave's size
    // and never holds more than `parallel` connections.
    const size_t n = watch.size();
    const size_t p = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, inv_.parallel)), n));
    const double interval = std::min(5.0, seconds);
    const int64_t end = clock_->NowMicros() + static_cast<int64_t>(seconds * 1e6);
    std::vector<std::thread> watchers;
    for (size_t t = 0; t < p && n > 0; ++t) {
      watchers.emplace_back([&, t] {
        std::vector<size_t> mine;
        for (size_t k = t; k < n; k += p) mine.push_back(watch[k]);
        const bool whole = n <= p;
        std::set<size_t> failed;
        do {
          const int64_t round_start = clock_->NowMicros();
          for (size_t i : mine) {
            if (failed.count(i) || IsCancelled()) continue;
            AbortWatchOptions ao;
            ao.seconds = whole ? seconds : 0;  // 0: one round
            ao.interval_seconds = interval;
            ao.cancel = o_.cancel;
            auto m = Open(i, true);
            auto r = m.ok() ? (*m)->Watch(name_, ao) : Result<AbortWatchResult>(m.status());
            Status s = r.ok() ? Status::Ok() : r.status();
            if (r.ok() && r->aborted) {
              s = FailedPrecondition("abort criterion breached while soaking: " + r->reason +
                                     "; sluice switched its reads back to the previous version");
            }
            if (!s.ok()) {
              failed.insert(i);
              fail(i, Step(i, w.name, "soaked (abort criteria watched)", s));
            }
          }
          if (whole) break;
          const int64_t next = std::min(end, round_start + static_cast<int64_t>(interval * 1e6));
          while (!IsCancelled() && clock_->NowMicros() < next) {
            clock_->SleepMicros(std::min<int64_t>(50'000, next - clock_->NowMicros()));
          }
        } while (!IsCancelled() && clock_->NowMicros() < end);
        for (size_t i : mine) {
          if (failed.count(i) || IsCancelled()) continue;
          Step(i, w.name, "soaked (abort criteria watched)", Status::Ok()).IgnoreError();
        }
      });
    }
    if (!reverify.empty()) {
      // No abort criteria to watch: wait the soak, then verify again.
      clock_->SleepMicros(static_cast<int64_t>(seconds * 1e6));
      PoolResult pr = RunPool(inv_, reverify, inv_.parallel, false, false, o_.cancel, [&](size_t i) -> Status {
        auto m = Open(i);
        if (!m.ok()) return Step(i, w.name, "soaked (verified again)", m.status());
        return Step(i, w.name, "soaked (verified again)", VerifyPassed(**m));
      });
      for (auto& f : pr.failures) fail(f.first, f.second);
    }
    for (auto& t : watchers) t.join();
    return failures;
  }

  Status Contract(size_t i, const std::string& wave) {
    auto opened = Open(i);
    if (!opened.ok()) return Step(i, wave, "open", opened.status());
    std::unique_ptr<Migrator> m = std::move(*opened);
    auto found = Find(*m, i);
    if (!found.ok()) return Step(i, wave, "read state", found.status());
    const auto& info = *found;
    if (info && info->phase == "complete") return Status::Ok();
    if (info && info->phase == "active" && info->live == "new") {
      SLUICE_RETURN_IF_ERROR(Step(i, wave, "verified", VerifyPassed(*m)));
    } else if (!info || info->phase != "completing") {
      return Step(i, wave, "completed",
                  FailedPrecondition("it is not switched (phase " + (info ? info->phase + ", live " + info->live
                                                                           : std::string("not started")) +
                                     "); the fleet barrier holds"));
    }
    return Step(i, wave, "completed", m->Complete(name_));
  }

  // Every database's own state, just before contract: switched and reading
  // the new version (or already contracting). Unreadable = not met.
  Status CheckBarrier() {
    std::string unmet;
    for (size_t i = 0; i < inv_.databases.size(); ++i) {
      auto m = Open(i);
      Result<std::optional<MigrationInfo>> f = m.ok() ? Find(**m, i) : Result<std::optional<MigrationInfo>>(m.status());
      std::string why;
      if (!f.ok()) {
        why = f.status().message();
      } else if (!*f) {
        why = "not started";
      } else if (!((*f)->phase == "active" && (*f)->live == "new") && (*f)->phase != "completing" &&
                 (*f)->phase != "complete") {
        why = "phase " + (*f)->phase + ", reads on the " + (*f)->live + " version";
      }
      if (!why.empty()) unmet += "\n  " + Db(i).name + ": " + why;
    }
    if (unmet.empty()) return Status::Ok();
    return FailedPrecondition("fleet barrier not met: complete runs on no database until every database has "
                              "switched and soaked; not there:" + unmet +
                              "\nrerun `sluice fleet apply` once they are switched");
  }

  Status Halt(const std::string& wave, const std::string& pass, const std::vector<std::pair<size_t, Status>>& fails,
              bool rollback) {
    std::string list;
    StatusCode code = fails.empty() ? StatusCode::kFailedPrecondition : fails.front().second.code();
    for (const auto& f : fails) list += "\n  " + Db(f.first).name + ": " + f.second.message();
    std::string reason = std::to_string(fails.size()) + " database(s) failed in the " + pass + " pass";
    if (rollback) {
      ledger_->Decide("wave " + wave, "rollback_wave", reason).IgnoreError();
      Line(wave + ": rolling the wave back (on_failure: rollback_wave)");
      const Wave* w = nullptr;
      for (const auto& x : waves_) {
        if (x.name == wave) w = &x;
      }
      PoolResult pr = RunPool(inv_, w->databases, inv_.parallel, false, false, nullptr, [&](size_t i) -> Status {
        return RollbackOne(i, wave);
      });
      for (const auto& f : pr.failures) list += "\n  " + Db(f.first).name + " (rollback): " + f.second.message();
      ledger_->SetWave(wave, pr.failures.empty() ? "rolled_back" : "failed").IgnoreError();
    } else {
      ledger_->Decide("wave " + wave, "halt", reason).IgnoreError();
      ledger_->SetWave(wave, "failed").IgnoreError();
    }
    std::string later;
    bool after = false;
    for (const auto& w : waves_) {
      if (after) later += (later.empty() ? "" : ", ") + w.name;
      if (w.name == wave) after = true;
    }
    return Status(code == StatusCode::kOk ? StatusCode::kFailedPrecondition : code,
                  "fleet " + std::string(rollback ? "rolled back" : "halted in") + " wave " + wave + ": " + reason +
                      ":" + list +
                      (later.empty() ? "" : "\nlater waves (" + later + ") were not touched") +
                      "\nfix the cause and rerun the same `sluice fleet apply`; it continues where it stopped");
  }

  Status RollbackOne(size_t i, const std::string& wave) {
    if (o_.on_database) o_.on_database(Db(i).name, "rollback", true);
    Status s = [&]() -> Status {
      auto opened = Open(i);
    if (!opened.ok()) return Step(i, wave, "open", opened.status());
    std::unique_ptr<Migrator> m = std::move(*opened);
      auto found = Find(*m, i);
      if (!found.ok()) return Step(i, wave, "rolled back", found.status());
      if (!*found || !InFlight((*found)->phase)) return Status::Ok();
      return Step(i, wave, "rolled back", m->Rollback(name_));
    }();
    if (o_.on_database) o_.on_database(Db(i).name, "rollback", false);
    return s;
  }

  Result<ApplyResult> Apply() {
    ApplyResult out;
    // The plan must parse before any database is touched.
    {
      auto lint_m = Migrator::Open(Options{});
      if (!lint_m.ok()) return lint_m.status();
      auto lint = (*lint_m)->Lint(o_.plan_path);
      if (!lint.ok()) return lint.status();
      if (!lint->ok) {
        std::string msg;
        for (const auto& e : lint->errors) msg += "\n" + e;
        return InvalidPlan(o_.plan_path + " has errors; no database was touched:" + msg);
      }
    }
    SLUICE_RETURN_IF_ERROR(ledger_->RecordRun(o_.plan_path, inv_.file));
    SLUICE_ASSIGN_OR_RETURN(auto lw, ledger_->Waves());
    auto pass = [&](const std::string& pass_name, const std::function<Status(size_t, const std::string&)>& fn,
                    const Wave& w) {
      PoolResult pr = RunPool(inv_, w.databases, inv_.parallel, true, true, o_.cancel, [&](size_t i) -> Status {
        if (o_.on_database) o_.on_database(Db(i).name, pass_name, true);
        Status s = fn(i, w.name);
        if (o_.on_database) o_.on_database(Db(i).name, pass_name, false);
        return s;
      });
      out.max_concurrent = std::max(out.max_concurrent, pr.max_concurrent);
      for (const auto& f : pr.failures) out.failures.push_back(Db(f.first).name + ": " + f.second.message());
      return pr.failures;
    };
    for (const auto& w : waves_) {
      const std::string state = lw.count(w.name) ? lw[w.name].state : "";
      if (state == "soaked" || state == "completing" || state == "completed") continue;
      ledger_->SetWave(w.name, "running").IgnoreError();
      ledger_->Decide("wave " + w.name, "start",
                      fmt::format("{} database(s), parallel {}", w.databases.size(), inv_.parallel))
          .IgnoreError();
      Line(fmt::format("wave {}: {} database(s), up to {} at once", w.name, w.databases.size(), inv_.parallel));
      auto fails = pass("forward", [&](size_t i, const std::string& wave) { return Forward(i, wave); }, w);
      if (IsCancelled()) return Cancelled("interrupted; rerun `sluice fleet apply` to continue");
      if (!fails.empty()) return Halt(w.name, "forward", fails, inv_.on_failure == OnFailure::kRollbackWave);
      ledger_->SetWave(w.name, "switched").IgnoreError();
      auto soak_fails = Soak(w);
      if (IsCancelled()) return Cancelled("interrupted; rerun `sluice fleet apply` to continue");
      if (!soak_fails.empty()) {
        for (const auto& f : soak_fails) out.failures.push_back(Db(f.first).name + ": " + f.second.message());
        return Halt(w.name, "soak", soak_fails, inv_.on_failure == OnFailure::kRollbackWave);
      }
      ledger_->SetWave(w.name, "soaked").IgnoreError();
      ledger_->Decide("wave " + w.name, "soaked",
                      inv_.soak_seconds > 0
                          ? fmt::format("every database switched; soak {:g} s passed", inv_.soak_seconds)
                          : std::string("every database switched; no soak configured"))
          .IgnoreError();
    }
    Status barrier = CheckBarrier();
    if (!barrier.ok()) {
      ledger_->Decide("fleet", "barrier refused", barrier.message()).IgnoreError();
      return barrier;
    }
    ledger_->Decide("fleet", "barrier passed",
                    fmt::format("all {} database(s) switched and soaked", inv_.databases.size()))
        .IgnoreError();
    for (const auto& w : waves_) {
      ledger_->SetWave(w.name, "completing").IgnoreError();
      auto fails = pass("complete", [&](size_t i, const std::string& wave) { return Contract(i, wave); }, w);
      if (IsCancelled()) return Cancelled("interrupted; rerun `sluice fleet apply` to continue");
      if (!fails.empty()) return Halt(w.name, "complete", fails, false);
      ledger_->SetWave(w.name, "completed").IgnoreError();
    }
    ledger_->Decide("fleet", "complete", fmt::format("all {} database(s) completed", inv_.databases.size()))
        .IgnoreError();
    out.finished = true;
    return out;
  }

  Status Rollback() {
    SLUICE_RETURN_IF_ERROR(ledger_->RecordRun(o_.plan_path, inv_.file));
    ledger_->Decide("fleet", "rollback", "every database not completed is rolled back").IgnoreError();
    std::string list;
    for (auto w = waves_.rbegin(); w != waves_.rend(); ++w) {
      PoolResult pr = RunPool(inv_, w->databases, inv_.parallel, false, false, o_.cancel,
                              [&](size_t i) { return RollbackOne(i, w->name); });
      for (const auto& f : pr.failures) list += "\n  " + Db(f.first).name + ": " + f.second.message();
      bool any_complete = false;
      for (size_t i : w->databases) {
        auto m = Open(i);
        if (!m.ok()) continue;
        auto f = Find(**m, i);
        if (f.ok() && *f && ((*f)->phase == "complete" || (*f)->phase == "completing")) {
          any_complete = true;
          Line(w->name + ": " + Db(i).name + " is " + (*f)->phase + "; a completed migration is not rolled back");
        }
      }
      if (pr.failures.empty()) ledger_->SetWave(w->name, any_complete ? "completed" : "rolled_back").IgnoreError();
    }
    if (!list.empty()) return FailedPrecondition("fleet rollback: some databases were not rolled back:" + list);
    return Status::Ok();
  }

  Result<FleetState> Read() {
    FleetState st;
    st.migration = name_;
    st.ledger = ledger_->url();
    SLUICE_ASSIGN_OR_RETURN(auto ldb, ledger_->Databases());
    SLUICE_ASSIGN_OR_RETURN(auto lw, ledger_->Waves());
    SLUICE_ASSIGN_OR_RETURN(auto dec, ledger_->Decisions());
    for (const auto& d : dec) {
      st.decisions.push_back(d.at + " " + d.actor + " " + d.subject + ": " + d.decision +
                             (d.reason.empty() ? "" : " (" + d.reason + ")"));
    }
    for (const auto& w : waves_) {
      WaveState ws;
      ws.name = w.name;
      ws.state = lw.count(w.name) ? lw[w.name].state : "pending";
      for (size_t i : w.databases) {
        DatabaseState ds;
        ds.name = Db(i).name;
        ds.wave = w.name;
        ds.url = RedactUrl(Db(i).url);
        if (ldb.count(ds.name)) {
          ds.step = ldb[ds.name].step;
          ds.error = ldb[ds.name].error;
        }
        auto m = Open(i);
        auto f = m.ok() ? Find(**m, i) : Result<std::optional<MigrationInfo>>(m.status());
        if (!f.ok()) {
          ds.phase = "unreachable";
          ds.error = f.status().message();
          ++st.failed;
        } else if (*f) {
          const MigrationInfo& mi = **f;
          ds.phase = mi.phase;
          ds.live = mi.live;
          ds.backfill = mi.backfill;
          ds.rows_done = mi.rows_done;
          ds.rows_total = mi.rows_total;
          ds.eta_seconds = mi.eta_seconds;
          ds.rows_per_second = mi.rows_per_second;
          ds.last_verify_passed = mi.last_verify_passed;
          ds.last_verify_at = mi.last_verify_at;
          ds.completed_at = mi.completed_at;
          ds.overrides = mi.overrides;
          if (ds.error.empty()) ds.error = mi.backfill_last_error;
        }
        bool switched = (ds.phase == "active" && ds.live == "new") || ds.phase == "completing" || ds.phase == "complete";
        ws.databases++;
        if (switched) ws.switched++, st.switched++;
        if (ds.phase == "complete") ws.completed++, st.completed++;
        if (ds.step.rfind("failed", 0) == 0) ++st.failed;
        st.databases.push_back(std::move(ds));
      }
      st.waves.push_back(ws);
    }
    st.total = static_cast<int>(inv_.databases.size());
    // The halt: a wave the rollout stopped in, and the ledger's reason.
    std::map<std::string, const LedgerDecision*> last;
    for (const auto& d : dec) last[d.subject] = &d;
    for (const auto& w : st.waves) {
      auto it = last.find("wave " + w.name);
      if ((w.state == "failed" || w.state == "rolled_back") && it != last.end() &&
          (it->second->decision == "halt" || it->second->decision == "rollback_wave")) {
        st.halted = "wave " + w.name + ": " + it->second->decision + " (" + it->second->reason + ")";
      }
    }
    EstimateEta(&st, inv_.parallel, inv_.soak_seconds);
    return st;
  }

 private:
  const Inventory& inv_;
  const RunOptions& o_;
  Clock* clock_ = nullptr;
  std::string name_, actor_;
  std::vector<Wave> waves_;
  std::unique_ptr<Ledger> ledger_;
  std::mutex line_mu_;
};

}  // namespace

Result<ApplyResult> Apply(const Inventory& inventory, const RunOptions& options) {
  Runner r(inventory, options);
  SLUICE_RETURN_IF_ERROR(r.Init(true));
  return r.Apply();
}

Status RollbackFleet(const Inventory& inventory, const RunOptions& options) {
  Runner r(inventory, options);
  SLUICE_RETURN_IF_ERROR(r.Init(true));
  return r.Rollback();
}

Result<FleetState> ReadStatus(const Inventory& inventory, const RunOptions& options) {
  Runner r(inventory, options);
  SLUICE_RETURN_IF_ERROR(r.Init(false));
  return r.Read();
}

}  // namespace sluice::fleet
