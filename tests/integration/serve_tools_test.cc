// `sluice serve` seen by the real tools people point at it: a Prometheus
// server (Debian's prometheus package) that scrapes it during a live, paced
// backfill and answers for the backfill's series through its query API, and
// headless Chromium loading the status page (the DOM shows the migration,
// its phase, progress and gates; a screenshot is taken). A missing binary
// fails the test naming scripts/setup.sh.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/serve_process.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
gates:
  switch:
    signoffs: [SRE]
)";

struct Fixture {
  TempDir dir;
  std::string url;
  std::unique_ptr<Migrator> m;

  explicit Fixture(int rows) {
    url = "sqlite:" + dir.File("app.db");
    m = OpenSqlite(dir.File("app.db"));
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(rows) + ") INSERT INTO orders SELECT i, 'User' || i || '@X.COM' FROM n;"));
    auto r = Run({"start", dir.Write("001_lower.yaml", kPlan)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> Global() const { return {"--db", url, "--actor", "tester"}; }
  CommandResult Run(std::vector<std::string> args) {
    auto g = Global();
    args.insert(args.begin(), g.begin(), g.end());
    return RunSluice(args);
  }
  std::string Value(const std::string& sql) { return QueryValue(*m, sql); }
};

std::string Which(const std::string& tool) {
  std::string out;
  FILE* p = ::popen(("command -v " + tool + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs argv with stdout/stderr to files; returns the pid.
pid_t Spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    FILE* o = std::freopen(out.c_str(), "w", stdout);
    FILE* e = std::freopen(err.c_str(), "w", stderr);
    (void)o;
    (void)e;
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

void StopGroup(pid_t pid) {
  if (pid <= 0) return;
  ::kill(-pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

TEST(ServeTools, PrometheusScrapesALiveBackfill) {
  const std::string prometheus = Which("prometheus");
  ASSERT_FALSE(prometheus.empty()) << "prometheus is missing: run scripts/setup.sh (Debian's prometheus package)";
  Fixture f(3000);
  ServeProcess serve(f.Global(), {});
  ASSERT_TRUE(serve.running()) << serve.err();

  TempDir prom;
  const int prom_port = FreePort();
  prom.Write("prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
             "  - job_name: sluice\n    static_configs:\n      - targets: ['127.0.0.1:" +
                 std::to_string(serve.port()) + "']\n");
  pid_t p = Spawn({prometheus, "--config.file=" + prom.File("prometheus.yml"),
                   "--storage.tsdb.path=" + prom.File("data"),
                   "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
                  prom.File("out"), prom.File("err"));
  ASSERT_GT(p, 0);

  // A paced backfill (~15 s at 200 rows/s) in the background.
  TempDir bf_io;
  int bf = SpawnSluice({"--db", f.url, "backfill", "--rate", "200", "--chunk-rows", "50"}, bf_io.path());
  ASSERT_GT(bf, 0);

  // Ask Prometheus until it has scraped rows done > 0 while the backfill runs.
  httplib::Client c("127.0.0.1", prom_port);
  c.set_read_timeout(5, 0);
  double seen = -1;
  std::string last;
  const std::string q = R"(/api/v1/query?query=sluice_backfill_rows_done%7Bmigration%3D%22001_lower%22%7D)";
  for (int i = 0; i < 120 && seen <= 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto r = c.Get(q.c_str());
    if (!r || r->status != 200) continue;
    last = r->body;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty()) continue;
    seen = std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  }
  const std::string state = f.Value("SELECT backfill FROM _sluice_migrations");
  const double done_now = std::stod(f.Value("SELECT sum(rows_done) FROM _sluice_checkpoints"));
  ::kill(bf, SIGTERM);
  WaitProcess(bf);
  StopGroup(p);
  ASSERT_GT(seen, 0) << "Prometheus never returned the series; last answer: " << last << "\n" << ReadFile(prom.File("err"));
  // Scraped while running: between the first chunk and what is committed now.
  EXPECT_LE(seen, done_now);
  EXPECT_LE(seen, 3000);
  EXPECT_EQ(state, "running") << "the backfill finished before Prometheus scraped it; slow it down";
}

// Headless Chromium on one page: Run(flags, name) waits (60 s at most) and
// returns its exit code (-1 when it had to be stopped); its output is in
// io.File(name + ".out") / ".err".
struct Chromium {
  Chromium(const std::string& binary, const std::string& page) : binary(binary), page(page) {}
  int Run(const std::vector<std::string>& extra, const std::string& name) {
    std::vector<std::string> args = {binary,
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--disable-quic",
                                     "--no-first-run",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--user-data-dir=" + profile.path()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(page);
    pid_t pid = Spawn(args, io.File(name + ".out"), io.File(name + ".err"));
    int st = 0;
    for (int i = 0; i < 1200; ++i) {  // 60 s at most
      if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    StopGroup(pid);
    return -1;
  }
  std::string binary, page;
  TempDir profile, io;
};

TEST(ServeTools, ChromiumRendersTheStatusPage) {
  const std::string chromium = Which("chromium");
  ASSERT_FALSE(chromium.empty()) << "chromium is missing: run scripts/setup.sh (Debian's chromium package)";
  Fixture f(400);
  ASSERT_EQ(f.Run({"backfill", "--chunk-rows", "40", "--rate", "2000"}).exit_code, 0);
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  ServeProcess serve(f.Global(), {});
  ASSERT_TRUE(serve.running()) << serve.err();
  const std::string page = "http://127.0.0.1:" + std::to_string(serve.port()) + "/";

  Chromium browser(chromium, page);
  auto run = [&](const std::vector<std::string>& extra, const std::string& name) {
    return browser.Run(extra, name);
  };
  TempDir& io = browser.io;
  ASSERT_EQ(run({"--dump-dom"}, "dom"), 0) << ReadFile(io.File("dom.err"));
  const std::string dom = ReadFile(io.File("dom.out"));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-migration=\"001_lower\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-phase=\"active\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-rows-done=\"" + f.Value("SELECT sum(rows_done) FROM _sluice_checkpoints") +
                                        "\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-rows-total=\"400\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-gate=\"switch\" data-state=\"blocked\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("data-gate=\"backfill\" data-state=\"passed\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("signoff SRE"));
  EXPECT_THAT(dom, ::testing::HasSubstr("<svg"));

  // The screenshot (docs/img/status-page.png is one: set
  // SLUICE_UPDATE_SCREENSHOT=1 to rewrite it).
  const char* update = std::getenv("SLUICE_UPDATE_SCREENSHOT");
  const std::string shot = update && *update ? std::string(SLUICE_SOURCE_DIR) + "/docs/img/status-page.png"
                                             : io.File("status-page.png");
  ASSERT_EQ(run({"--screenshot=" + shot, "--window-size=1100,1400", "--hide-scrollbars"}, "shot"), 0)
      << ReadFile(io.File("shot.err"));
  std::string png = ReadFile(shot);
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

// The fleet's section as a browser renders it (`serve --inventory`): a
// two-database fleet halted in its canary wave (the switch gate wants an
// SRE sign-off the canary does not have).
TEST(ServeTools, ChromiumRendersTheFleet) {
  const std::string chromium = Which("chromium");
  ASSERT_FALSE(chromium.empty()) << "chromium is missing: run scripts/setup.sh (Debian's chromium package)";
  TempDir dir;
  for (const char* name : {"a.db", "b.db"}) {
    auto m = OpenSqlite(dir.File(name));
    ASSERT_NE(m, nullptr);
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL); INSERT INTO "
                                "orders VALUES (1, 'A@X')"));
  }
  std::string inv = dir.Write("fleet.yaml", R"(databases:
  - {name: a, url: "sqlite:a.db", tags: [canary]}
  - {name: b, url: "sqlite:b.db"}
waves:
  - {name: canary, match: {tags: [canary]}}
  - {name: rest}
)");
  auto r = RunSluice({"fleet", "apply", dir.Write("001_lower.yaml", kPlan), "--inventory", inv});
  ASSERT_NE(r.exit_code, 0) << r.out;
  ServeProcess serve({"--db", "sqlite:" + dir.File("a.db")}, {"--inventory", inv});
  ASSERT_TRUE(serve.running()) << serve.err();
  Chromium browser(chromium, "http://127.0.0.1:" + std::to_string(serve.port()) + "/");
  ASSERT_EQ(browser.Run({"--dump-dom"}, "dom"), 0) << ReadFile(browser.io.File("dom.err"));
  const std::string dom = ReadFile(browser.io.File("dom.out"));
  EXPECT_THAT(dom, ::testing::HasSubstr("id=\"fleet\" data-migration=\"001_lower\" data-halted=\"true\""));
  EXPECT_THAT(dom, ::testing::HasSubstr("<tr data-wave=\"canary\" data-state=\"failed\">"));
  EXPECT_THAT(dom, ::testing::HasSubstr("<tr data-wave=\"rest\" data-state=\"pending\">"));
  EXPECT_THAT(dom, ::testing::HasSubstr("<tr data-database=\"a\" data-phase=\"active\">"));
  EXPECT_THAT(dom, ::testing::HasSubstr("<tr data-database=\"b\" data-phase=\"\">"));
  EXPECT_THAT(dom, ::testing::HasSubstr("id=\"fleet-halted\">halted: wave canary: halt"));
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
}

TEST(ServeTools, ServesAPostgresDatabase) {
  // The same endpoints on PostgreSQL state tables (a smoke test: the reads
  // behind /metrics and /api/v1/events run on the server's SQL).
  PgCluster* pg = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pg);
  const std::string db = pg->CreateDatabase("serve");
  pg->Psql(db, "CREATE TABLE orders (id int PRIMARY KEY, email text NOT NULL); "
               "INSERT INTO orders SELECT i, 'U' || i || '@X.COM' FROM generate_series(1, 300) i;");
  const std::string& url = db;  // CreateDatabase returns the URL
  TempDir dir;
  auto r = RunSluice({"--db", url, "start", dir.Write("001_lower.yaml", kPlan), "--backfill"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ServeProcess serve({"--db", url}, {});
  ASSERT_TRUE(serve.running()) << serve.err();
  httplib::Client c("127.0.0.1", serve.port());
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_THAT(m->body, ::testing::HasSubstr("sluice_up 1\n"));
  EXPECT_THAT(m->body, ::testing::HasSubstr("sluice_backfill_rows_done{migration=\"001_lower\"} " +
                                            pg->Psql(db, "SELECT sum(rows_done) FROM sluice.checkpoints") + "\n"));
  EXPECT_THAT(m->body, ::testing::HasSubstr("sluice_backfill_chunk_duration_seconds_count{migration=\"001_lower\"} " +
                                            pg->Psql(db, "SELECT count(*) FROM sluice.chunks") + "\n"));
  auto ev = c.Get("/api/v1/events?limit=2");
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->status, 200) << ev->body;
  auto j = nlohmann::json::parse(ev->body);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["kind"], "start");
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_THAT(page->body, ::testing::HasSubstr("data-migration=\"001_lower\""));
}

}  // namespace
}  // namespace sluice::testing
