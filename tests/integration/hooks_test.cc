// Hooks, webhooks and `sluice events` through the real sluice binary on a
// real SQLite file: an on-before-switch hook exiting 1 postpones the switch
// and the audit log says why; hooks see the documented environment and the
// event as JSON on stdin; a hook over its time limit is killed; a local
// webhook receiver gets every recorded event exactly once and progress
// debounced; `events` prints the audit log and follows it.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "hooks/hooks.h"
#include "support/plans.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kPlan = kAddEmailLowerPlan;

struct Fixture {
  TempDir dir;
  std::string url;
  std::string hooks;
  std::unique_ptr<Migrator> m;

  explicit Fixture(int rows = 200) {
    url = "sqlite:" + dir.File("app.db");
    hooks = dir.path() + "/hooks";
    ::mkdir(hooks.c_str(), 0755);
    m = OpenSqlite(dir.File("app.db"));
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(rows) + ") INSERT INTO orders SELECT i, 'User' || i || '@X.COM' FROM n;"));
  }
  CommandResult Run(std::vector<std::string> args, std::vector<std::string> extra_global = {}) {
    std::vector<std::string> g = {"--db", url, "--actor", "tester"};
    g.insert(g.end(), extra_global.begin(), extra_global.end());
    args.insert(args.begin(), g.begin(), g.end());
    return RunSluice(args);
  }
  // Writes an executable hook script.
  void Hook(const std::string& name, const std::string& body) {
    std::string path = dir.Write("hooks/" + name, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0755);
  }
  std::string Value(const std::string& sql) { return QueryValue(*m, sql); }
};

TEST(Hooks, AFailingBeforeSwitchHookPostponesTheSwitchAndTheAuditLogSaysWhy) {
  // (a) start, backfill, verify; (b) on-before-switch exits 1 with a reason
  // on stderr: switch is refused (exit 7), reads stay on the old version,
  // the audit log has hook.vetoed with the reason; (c) the hook saw the
  // documented environment and the event on stdin; (d) once it exits 0 the
  // switch happens and on-switch runs.
  Fixture f;
  const std::string out = f.dir.path();
  f.Hook("on-before-switch",
         "cat > " + out + "/before.stdin\nenv | grep '^SLUICE_' | sort > " + out +
             "/before.env\necho 'checking...' >&2\necho 'replica lag 42s is above 5s' >&2\nexit 1\n");
  f.Hook("on-switch", "cat > " + out + "/switch.stdin\necho \"$SLUICE_EVENT $SLUICE_PHASE\" > " + out +
                          "/switch.env\n");
  f.Hook("on-start", "echo \"$SLUICE_MIGRATION\" >> " + out + "/start.log\n");
  std::vector<std::string> hooks = {"--hooks-dir", f.hooks};
  ASSERT_EQ(f.Run({"start", f.dir.Write("001_lower.yaml", kPlan), "--backfill"}, hooks).exit_code, 0);
  EXPECT_EQ(ReadFile(out + "/start.log"), "001_lower\n");
  ASSERT_EQ(f.Run({"verify"}, hooks).exit_code, 0);

  auto sw = f.Run({"switch"}, hooks);
  EXPECT_EQ(sw.exit_code, 7) << sw.out << sw.err;
  EXPECT_THAT(sw.err, ::testing::HasSubstr("postponed by hook on-before-switch"));
  EXPECT_THAT(sw.err, ::testing::HasSubstr("replica lag 42s is above 5s"));
  EXPECT_EQ(f.Value("SELECT live FROM _sluice_migrations"), "old");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'switch'"), "0");
  EXPECT_THAT(f.Value("SELECT message FROM _sluice_events WHERE kind = 'hook.vetoed'"),
              ::testing::AllOf(::testing::HasSubstr("switch of '001_lower' postponed by hook on-before-switch"),
                               ::testing::HasSubstr("replica lag 42s is above 5s")));

  std::string env = ReadFile(out + "/before.env");
  EXPECT_THAT(env, ::testing::HasSubstr("SLUICE_MIGRATION=001_lower\n"));
  EXPECT_THAT(env, ::testing::HasSubstr("SLUICE_EVENT=switch.before\n"));
  EXPECT_THAT(env, ::testing::HasSubstr("SLUICE_PHASE=active\n"));
  EXPECT_THAT(env, ::testing::HasSubstr("SLUICE_DB=" + f.url + "\n"));
  auto in = nlohmann::json::parse(ReadFile(out + "/before.stdin"));
  EXPECT_EQ(in["migration"], "001_lower");
  EXPECT_EQ(in["kind"], "switch.before");
  EXPECT_EQ(in["phase"], "active");

  f.Hook("on-before-switch", "exit 0\n");
  auto ok = f.Run({"switch"}, hooks);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(f.Value("SELECT live FROM _sluice_migrations"), "new");
  EXPECT_EQ(ReadFile(out + "/switch.env"), "switch active\n");
  auto sw_in = nlohmann::json::parse(ReadFile(out + "/switch.stdin"));
  EXPECT_EQ(sw_in["kind"], "switch");
  EXPECT_EQ(std::to_string(sw_in["id"].get<int64_t>()),
            f.Value("SELECT id FROM _sluice_events WHERE kind = 'switch'"));
  // Every hook run is in the audit log.
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'hook' AND message LIKE 'on-switch ran%'"), "1");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'hook' AND message LIKE 'on-start ran%'"), "1");
}

TEST(Hooks, AFailingBeforeCompleteHookPostponesCompleteAndAHungHookIsKilled) {
  Fixture f;
  f.Hook("on-before-complete", "sleep 30\n");
  std::vector<std::string> hooks = {"--hooks-dir", f.hooks, "--hook-timeout-ms", "300"};
  ASSERT_EQ(f.Run({"start", f.dir.Write("001_lower.yaml", kPlan), "--backfill"}, hooks).exit_code, 0);
  ASSERT_EQ(f.Run({"verify"}, hooks).exit_code, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto co = f.Run({"complete"}, hooks);
  EXPECT_EQ(co.exit_code, 7) << co.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));  // not the hook's 30 s
  EXPECT_THAT(co.err, ::testing::HasSubstr("postponed by hook on-before-complete (still running after 300 ms"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'hook.vetoed'"), "1");
  // A failing after-hook is recorded but changes nothing.
  f.Hook("on-before-complete", "exit 0\n");
  f.Hook("on-complete", "echo boom >&2; exit 3\n");
  auto done = f.Run({"complete"}, hooks);
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "complete");
  EXPECT_THAT(f.Value("SELECT message FROM _sluice_events WHERE kind = 'hook.failed'"),
              ::testing::HasSubstr("on-complete failed for complete: exit 3 (boom)"));
}

TEST(Hooks, PasswordsAreRemovedFromTheDatabaseUrlHooksSee) {
  EXPECT_EQ(hooks::RedactUrl("postgresql://app:s3cret@db:5432/shop"), "postgresql://app@db:5432/shop");
  EXPECT_EQ(hooks::RedactUrl("host=db user=app password=s3cret dbname=shop"),
            "host=db user=app password=REDACTED dbname=shop");
  EXPECT_EQ(hooks::RedactUrl("postgresql://db/shop?user=app&password=s3cret"),
            "postgresql://db/shop?user=app&password=REDACTED");
  EXPECT_EQ(hooks::RedactUrl("sqlite:/tmp/app.db"), "sqlite:/tmp/app.db");
}

// A local webhook receiver: records every body it is sent.
class Receiver {
 public:
  Receiver() {
    svr_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      bodies_.push_back(req.body);
      res.status = 200;
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~Receiver() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<nlohmann::json> Received() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<nlohmann::json> out;
    for (const auto& b : bodies_) out.push_back(nlohmann::json::parse(b));
    return out;
  }

 private:
  httplib::Server svr_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
};

TEST(Webhooks, AReceiverGetsEveryEventExactlyOnceAndProgressDebounced) {
  Fixture f(600);
  Receiver rx;
  std::vector<std::string> wh = {"--webhook", rx.url(), "--progress-interval-ms", "500"};
  // A paced backfill (about 3 s) so there is progress to debounce.
  ASSERT_EQ(f.Run({"start", f.dir.Write("001_lower.yaml", kPlan)}, wh).exit_code, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto bf = f.Run({"backfill", "--rate", "200", "--chunk-rows", "20"}, wh);
  ASSERT_EQ(bf.exit_code, 0) << bf.err;
  double backfill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(f.Run({"verify"}, wh).exit_code, 0);
  ASSERT_EQ(f.Run({"pause"}, wh).exit_code, 0);
  ASSERT_EQ(f.Run({"complete"}, wh).exit_code, 0);

  // Each sluice process sends its webhooks before it exits.
  auto got = rx.Received();
  std::map<int64_t, int> stored;
  int progress = 0;
  for (const auto& e : got) {
    EXPECT_THAT(e["text"].get<std::string>(), ::testing::HasSubstr("sluice: 001_lower: "));
    // Progress and throttle changes are not stored: negative ids.
    if (e["kind"] == "backfill.progress" || e["kind"] == "backfill.throttle") {
      progress += e["kind"] == "backfill.progress";
      EXPECT_LT(e["id"].get<int64_t>(), 0);
      continue;
    }
    ++stored[e["id"].get<int64_t>()];
  }
  auto ids = QueryRows(*f.m, "SELECT id, kind FROM _sluice_events ORDER BY id");
  std::set<std::string> kinds;
  for (const auto& row : ids) {
    kinds.insert(row[1]);
    EXPECT_EQ(stored[std::stoll(row[0])], 1) << "event " << row[0] << " (" << row[1] << ")";
  }
  EXPECT_EQ(stored.size(), ids.size());
  EXPECT_TRUE(kinds.count("start") && kinds.count("backfill.done") && kinds.count("verify") &&
              kinds.count("backfill.pause") && kinds.count("complete"));
  // Debounced: at most one per 500 ms of backfill (+1 for the first).
  EXPECT_GE(progress, 1);
  EXPECT_LE(progress, static_cast<int>(backfill_s / 0.5) + 1) << backfill_s;
}

TEST(Webhooks, AnUnreachableReceiverDoesNotFailTheCommand) {
  Fixture f;
  // A port nobody listens on: retried with backoff, then given up, loudly.
  auto r = f.Run({"start", f.dir.Write("001_lower.yaml", kPlan)}, {"--webhook", "http://127.0.0.1:1/hook"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::HasSubstr("webhook http://127.0.0.1:1/hook failed"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");
}

TEST(Events, TheAuditLogAsAVerbWithJsonAndFollow) {
  Fixture f;
  ASSERT_EQ(f.Run({"start", f.dir.Write("001_lower.yaml", kPlan), "--backfill"}).exit_code, 0);
  auto text = f.Run({"events"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::HasSubstr("start"));
  EXPECT_THAT(text.out, ::testing::HasSubstr("backfill.done"));

  auto js = f.Run({"events", "001_lower", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  std::vector<nlohmann::json> lines;
  std::istringstream in(js.out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(std::to_string(lines.size()), f.Value("SELECT count(*) FROM _sluice_events"));
  EXPECT_EQ(lines.front()["kind"], "start");
  EXPECT_EQ(lines.front()["actor"], "tester");
  auto last = f.Run({"events", "--json", "--limit", "1"});
  EXPECT_EQ(nlohmann::json::parse(last.out)["id"], lines.back()["id"]);
  auto none = f.Run({"events", "no_such_migration"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_EQ(none.out, "");

  // --follow prints events recorded after it started.
  TempDir io;
  int pid = SpawnSluice({"--db", f.url, "events", "--follow", "--json", "--after",
                         std::to_string(lines.back()["id"].get<int64_t>())},
                        io.path());
  ASSERT_GT(pid, 0);
  ASSERT_EQ(f.Run({"pause"}).exit_code, 0);
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = ReadFile(io.File("spawn.out")).find("\"backfill.pause\"") != std::string::npos;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGTERM);
  EXPECT_EQ(WaitProcess(pid), 0);
  EXPECT_TRUE(seen) << ReadFile(io.File("spawn.out")) << ReadFile(io.File("spawn.err"));
}

}  // namespace
}  // namespace sluice::testing
