// The handoff documents (issue 13) through the real sluice binary on real
// SQLite files: the report holds every event of the audit log and every
// gate decision (cross-checked with the state tables, not with sluice's
// own counters), and is archived inside complete's and rollback's
// transaction; the runbook holds every statement of every phase (compared
// with `sluice plan --json`), the rollback command of every phase, and the
// live state once the migration runs.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "db/adapter.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: TEXT, nullable: true}
gates:
  switch:
    signoffs: [data owner]
  complete:
    signoffs: [SRE]
abort:
  max_error_rate: 0.5
)";

struct Fixture {
  TempDir dir;
  std::string url;
  std::unique_ptr<Migrator> m;
  std::string plan;

  Fixture() {
    url = "sqlite:" + dir.File("app.db");
    m = OpenSqlite(dir.File("app.db"));
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "INSERT INTO orders VALUES (1, 'A@X.COM'), (2, 'B@X.COM'), (3, 'C@X|Y.COM');"));
    plan = dir.Write("001_lower.yaml", kPlan);
  }
  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url, "--actor", "tester"});
    return RunSluice(args);
  }
  CommandResult Ok(std::vector<std::string> args) {
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.out << r.err;
    return r;
  }
};

// The rows of the Markdown table under heading `heading` (cells split on
// unescaped pipes, "\|" turned back into "|"), header and rule excluded.
std::vector<std::vector<std::string>> TableUnder(const std::string& md, const std::string& heading) {
  std::vector<std::vector<std::string>> rows;
  size_t pos = md.find("\n" + heading + "\n");
  if (pos == std::string::npos) return rows;
  pos = md.find("\n|", pos);
  bool header = true;
  while (pos != std::string::npos && pos + 1 < md.size() && md[pos + 1] == '|') {
    size_t end = md.find('\n', pos + 1);
    std::string line = md.substr(pos + 1, end - pos - 1);
    pos = end;
    if (line.rfind("|---", 0) == 0) continue;
    if (header) {
      header = false;
      continue;
    }
    std::vector<std::string> cells;
    std::string cur;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
        cur += '|';
        ++i;
      } else if (line[i] == '|') {
        size_t b = cur.find_first_not_of(' '), e = cur.find_last_not_of(' ');
        cells.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
        cur.clear();
      } else {
        cur += line[i];
      }
    }
    rows.push_back(cells);
  }
  return rows;
}

// The fenced code blocks of `md` with language `lang` inside the section
// that starts at the heading containing `section` ("" = the whole text).
std::vector<std::string> Blocks(const std::string& md, const std::string& lang, const std::string& section = "") {
  size_t from = 0, to = md.size();
  if (!section.empty()) {
    // The first "## " heading line that contains `section`.
    for (from = md.find("\n## "); from != std::string::npos; from = md.find("\n## ", from + 1)) {
      if (md.substr(from, md.find('\n', from + 1) - from).find(section) != std::string::npos) break;
    }
    if (from == std::string::npos) return {};
    size_t next = md.find("\n## ", from + 1);
    to = next == std::string::npos ? md.size() : next;
  }
  std::vector<std::string> out;
  size_t pos = from;
  while (true) {
    pos = md.find("```", pos);
    if (pos == std::string::npos || pos >= to) break;
    size_t n = md.find_first_not_of('`', pos);
    std::string fence = md.substr(pos, n - pos);
    size_t eol = md.find('\n', n);
    std::string l = md.substr(n, eol - n);
    size_t close = md.find("\n" + fence + "\n", eol);
    std::string body = md.substr(eol + 1, close - eol);  // with its last newline
    if (l == lang) out.push_back(body.substr(0, body.size() - 1));
    pos = close + fence.size() + 2;
  }
  return out;
}

struct DbEvent {
  std::string id, at, kind, actor, message;
};

std::vector<DbEvent> EventsInDb(Migrator& m, const std::string& migration) {
  std::vector<DbEvent> out;
  for (const auto& r : QueryRows(m, "SELECT id, at, kind, actor, message FROM _sluice_events WHERE migration = '" +
                                        migration + "' ORDER BY id")) {
    out.push_back({r[0], r[1], r[2], r[3], r[4]});
  }
  return out;
}

// Every event row of the state tables is in the report's JSON (same id,
// time, kind, actor, message) and in its Markdown timeline, and nothing else.
void ExpectEveryEvent(Migrator& m, const std::string& migration, const nlohmann::json& j, const std::string& md) {
  auto db = EventsInDb(m, migration);
  ASSERT_FALSE(db.empty());
  ASSERT_EQ(j["events"].size(), db.size());
  for (size_t i = 0; i < db.size(); ++i) {
    const auto& e = j["events"][i];
    EXPECT_EQ(std::to_string(e["id"].get<int64_t>()), db[i].id);
    EXPECT_EQ(e["at"], db[i].at);
    EXPECT_EQ(e["kind"], db[i].kind);
    EXPECT_EQ(e["actor"], db[i].actor);
    EXPECT_EQ(e["message"], db[i].message);
  }
  auto rows = TableUnder(md, "## Timeline");
  ASSERT_EQ(rows.size(), db.size()) << md;
  for (size_t i = 0; i < db.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 5u);
    EXPECT_EQ(rows[i][0], db[i].id);
    EXPECT_EQ(rows[i][1], db[i].at);
    EXPECT_EQ(rows[i][2], "`" + db[i].kind + "`");
    EXPECT_EQ(rows[i][3], db[i].actor);
    EXPECT_EQ(rows[i][4], db[i].message);
  }
}

TEST(Report, HoldsEveryEventAndEveryGateDecisionAndIsArchivedAtComplete) {
  // (a) a full lifecycle with a sign-off, a tune, a passed and an
  // overridden gate; (b) the report, read while active and after complete,
  // against the state tables; (c) the archive written by complete.
  Fixture f;
  f.Ok({"start", f.plan, "--backfill"});
  f.Ok({"verify"});
  f.Ok({"tune", "--rate", "500"});
  f.Ok({"signoff", "switch", "--as", "dana", "--role", "data owner", "--note", "counts | look right"});
  f.Ok({"switch"});
  auto refused = f.Run({"complete"});
  ASSERT_EQ(refused.exit_code, 7) << refused.err;  // the SRE has not signed off
  f.Ok({"complete", "--force", "--reason", "SRE on leave, ticket OPS-7"});
  EXPECT_EQ(QueryValue(*f.m, "SELECT phase FROM _sluice_migrations"), "complete");

  auto md = f.Ok({"report", "001_lower"}).out;
  auto js = f.Ok({"report", "001_lower", "--json"}).out;
  auto j = nlohmann::json::parse(js);
  ASSERT_NO_FATAL_FAILURE(ExpectEveryEvent(*f.m, "001_lower", j, md));

  // Gate decisions in the state tables: passes, overrides, sign-offs.
  auto decisions = QueryRows(*f.m, "SELECT kind, details FROM _sluice_events WHERE kind IN ('gate.passed', "
                                   "'gate.override', 'signoff') ORDER BY id");
  int passed = 0, overridden = 0, signed_off = 0;
  for (const auto& d : decisions) {
    auto details = nlohmann::json::parse(d[1]);
    if (d[0] == "gate.passed") {
      ++passed;
      EXPECT_THAT(md, HasSubstr(details["gate"].get<std::string>() + " gate passed"));
    } else if (d[0] == "gate.override") {
      ++overridden;
      ASSERT_EQ(j["overrides"].size(), 1u);
      EXPECT_EQ(j["overrides"][0]["gate"], details["gate"]);
      EXPECT_EQ(j["overrides"][0]["reason"], details["reason"]);
      EXPECT_THAT(md, HasSubstr("**" + details["gate"].get<std::string>() + " gate overridden**"));
      EXPECT_THAT(md, HasSubstr(details["reason"].get<std::string>()));
    } else {
      ++signed_off;
      ASSERT_EQ(j["signoffs"].size(), 1u);
      EXPECT_EQ(j["signoffs"][0]["name"], details["name"]);
      EXPECT_EQ(j["signoffs"][0]["role"], details["role"]);
      auto rows = TableUnder(md, "## Sign-offs");
      ASSERT_EQ(rows.size(), 1u);
      EXPECT_EQ(rows[0][0], "switch");
      EXPECT_EQ(rows[0][1], "data owner");
      EXPECT_EQ(rows[0][2], "dana");
      EXPECT_EQ(rows[0][4], "counts | look right");
    }
  }
  EXPECT_EQ(passed, 1);  // the switch gate, once
  EXPECT_EQ(overridden, 1);
  EXPECT_EQ(signed_off, 1);
  // Every gate is shown with its checks.
  ASSERT_EQ(j["gates"].size(), 3u);
  for (const auto& g : j["gates"]) {
    EXPECT_THAT(md, HasSubstr("### " + g["gate"].get<std::string>() + " gate: "));
    for (const auto& c : g["checks"]) EXPECT_THAT(md, HasSubstr("| " + c["check"].get<std::string>() + " |"));
  }
  // Verifications, the backfill and the throttle history.
  auto vcount = QueryValue(*f.m, "SELECT count(*) FROM _sluice_verifications");
  EXPECT_EQ(std::to_string(j["verifications"].size()), vcount);
  ASSERT_EQ(j["backfill"].size(), 1u);
  EXPECT_EQ(j["backfill"][0]["rows_done"], 3);
  EXPECT_EQ(std::to_string(j["backfill"][0]["chunks"].get<int64_t>()),
            QueryValue(*f.m, "SELECT count(*) FROM _sluice_chunks"));
  EXPECT_THAT(md, HasSubstr("`backfill.tune`: backfill tuned: rate 500 rows/s"));
  ASSERT_EQ(j["retrospective"].size(), 4u);
  EXPECT_THAT(md, HasSubstr("### Which assumptions were wrong?"));

  // Archived by complete, in its transaction: the same events, up to and
  // including `complete`.
  EXPECT_EQ(QueryValue(*f.m, "SELECT format FROM _sluice_reports WHERE migration = '001_lower'"), "json");
  auto archived = nlohmann::json::parse(QueryValue(*f.m, "SELECT body FROM _sluice_reports WHERE migration = "
                                                          "'001_lower'"));
  EXPECT_EQ(archived["phase"], "complete");
  EXPECT_EQ(archived["events"], j["events"]);
  EXPECT_EQ(archived["archived_at"], QueryValue(*f.m, "SELECT at FROM _sluice_reports"));
  auto printed = f.Ok({"report", "001_lower", "--archived"}).out;
  EXPECT_EQ(nlohmann::json::parse(printed), archived);

  auto html = f.Ok({"report", "001_lower", "--html"}).out;
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("<td>counts | look right</td>"));
}

TEST(Report, IsArchivedAtRollbackAndRefusedForAnUnknownMigration) {
  Fixture f;
  f.Ok({"start", f.plan, "--backfill"});
  auto early = f.Run({"report", "--archived"});
  EXPECT_EQ(early.exit_code, 7);
  EXPECT_THAT(early.err, HasSubstr("archived at complete or rollback"));
  f.Ok({"rollback"});
  auto archived = nlohmann::json::parse(QueryValue(*f.m, "SELECT body FROM _sluice_reports"));
  EXPECT_EQ(archived["phase"], "rolled_back");
  EXPECT_EQ(archived["events"].back()["kind"], "rollback");
  auto md = f.Ok({"report", "001_lower"}).out;
  auto j = nlohmann::json::parse(f.Ok({"report", "001_lower", "--json"}).out);
  ASSERT_NO_FATAL_FAILURE(ExpectEveryEvent(*f.m, "001_lower", j, md));

  auto unknown = f.Run({"report", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no migration named 'nope'"));
}

TEST(Runbook, HoldsEveryStatementOfEveryPhaseAndEveryRollbackCommand) {
  // (a) before start: every statement `sluice plan --json` shows is a SQL
  // block of the runbook, in its phase's section; every phase names its
  // rollback; (b) while active: the live state and what is next; the
  // statements are then the recorded ones.
  Fixture f;
  auto preview = nlohmann::json::parse(f.Ok({"plan", f.plan, "--json"}).out);
  auto md = f.Ok({"runbook", f.plan}).out;
  const std::map<std::string, std::string> section = {{"start", "start (expand)"},
                                                      {"backfill", ". backfill"},
                                                      {"complete", "complete (contract)"},
                                                      {"rollback", ". Rollback"}};
  for (const auto& [phase, heading] : section) {
    auto blocks = Blocks(md, "sql", heading);
    const auto& statements = preview["phases"][phase];
    ASSERT_FALSE(statements.empty()) << phase;
    ASSERT_EQ(blocks.size(), statements.size()) << phase << "\n" << md;
    for (size_t i = 0; i < blocks.size(); ++i) EXPECT_EQ(blocks[i], statements[i].get<std::string>()) << phase;
  }
  EXPECT_EQ(Blocks(md, "sql", "switch reads").size(), 2u);  // the switch and its way back
  // Commands: each phase's, and the rollback of each.
  auto sh = Blocks(md, "sh");
  std::string all;
  for (const auto& b : sh) all += b + "\n";
  const std::string sl = "sluice --db " + f.url + " ";
  for (const std::string& cmd : std::vector<std::string>{"lint " + f.plan, "start " + f.plan, "backfill 001_lower", "verify 001_lower",
                                "switch 001_lower", "switch --back 001_lower", "watch 001_lower --duration 600",
                                "complete 001_lower", "rollback 001_lower", "report 001_lower",
                                "signoff switch --as NAME --role 'data owner' --migration 001_lower",
                                "signoff complete --as NAME --role 'SRE' --migration 001_lower"}) {
    EXPECT_THAT(all, HasSubstr(sl + cmd));
  }
  for (const std::string phase : {"start (expand)", ". backfill", ". verify", "switch reads"}) {
    auto cmds = Blocks(md, "sh", phase);
    bool has_rollback = false;
    for (const auto& c : cmds) has_rollback = has_rollback || c.find(" rollback 001_lower") != std::string::npos ||
                                              c.find(" switch --back 001_lower") != std::string::npos;
    EXPECT_TRUE(has_rollback) << phase;
  }
  EXPECT_THAT(md, HasSubstr("- [x] A rollback method exists"));
  EXPECT_THAT(md, HasSubstr("- [x] Lock and slow-query monitoring"));
  EXPECT_THAT(md, HasSubstr("- [ ] The window avoids peak traffic"));
  EXPECT_THAT(md, HasSubstr("- [ ] Rehearsal at realistic volume"));
  EXPECT_EQ(md.find("## Live state"), std::string::npos);
  // Nothing was written by the runbook.
  EXPECT_EQ(QueryValue(*f.m, "SELECT count(*) FROM sqlite_master WHERE name LIKE '_sluice%'"), "0");

  f.Ok({"start", f.plan, "--backfill"});
  f.Ok({"signoff", "switch", "--as", "dana", "--role", "data owner"});
  auto live = f.Ok({"runbook", f.plan}).out;
  EXPECT_THAT(live, HasSubstr("## Live state"));
  EXPECT_THAT(live, HasSubstr("Phase **active**, reads on the **old** version, backfill done (3 of 3 rows)"));
  EXPECT_THAT(live, HasSubstr("**Next:** verify: `" + sl + "verify 001_lower`"));
  EXPECT_THAT(live, HasSubstr("**Done:** started at "));
  EXPECT_THAT(live, HasSubstr("| switch | data owner | dana |"));
  EXPECT_THAT(live, HasSubstr("| complete | SRE | _(pending)_ |"));
  // The recorded statements: the same as the plan showed before start.
  for (const auto& [phase, heading] : section) {
    auto blocks = Blocks(live, "sql", heading);
    ASSERT_EQ(blocks.size(), preview["phases"][phase].size()) << phase;
  }
  auto html = f.Ok({"runbook", f.plan, "--html"}).out;
  EXPECT_THAT(html, HasSubstr("<h2>Live state</h2>"));
  EXPECT_THAT(html, HasSubstr("<pre><code>"));
}

// The source's catalog (without the one table rehearse may write) and data.
std::string SourceFingerprint(Migrator& m) {
  std::string out;
  for (const auto& r : QueryRows(m, "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE name "
                                    "<> '_sluice_rehearsals' ORDER BY name")) {
    for (const auto& c : r) out += c + "\x1f";
    out += "\n";
  }
  for (const auto& r : QueryRows(m, "SELECT * FROM orders ORDER BY id")) {
    for (const auto& c : r) out += c + "\x1f";
    out += "\n";
  }
  return out;
}

// Sets TMPDIR (where rehearsals make their directories) for its scope, for
// this process and the processes it spawns.
class ScopedTmpdir {
 public:
  explicit ScopedTmpdir(const std::string& dir) {
    const char* had = std::getenv("TMPDIR");
    had_ = had != nullptr;
    if (had) saved_ = had;
    setenv("TMPDIR", dir.c_str(), 1);
  }
  ScopedTmpdir(const ScopedTmpdir&) = delete;
  ScopedTmpdir& operator=(const ScopedTmpdir&) = delete;
  ~ScopedTmpdir() {
    if (had_) {
      setenv("TMPDIR", saved_.c_str(), 1);
    } else {
      unsetenv("TMPDIR");
    }
  }

 private:
  bool had_ = false;
  std::string saved_;
};

// The path of an entry of directory `dir` whose name starts with `prefix`
// ("" when there is none).
std::string EntryStartingWith(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return e.path().string();
  }
  return "";
}

TEST(Rehearse, RunsTheWholeLifecycleOnACopyAndLeavesTheSourceIdentical) {
  // (a) rehearse --keep: every phase ran, on the copy (whose migration is
  // complete), the rollback was timed and the writer wrote throughout;
  // (b) the source is identical but for the recorded rehearsal; (c) the
  // runbook shows the rehearsed durations.
  Fixture f;
  const std::string before = SourceFingerprint(*f.m);
  auto r = f.Run({"rehearse", f.plan, "--json", "--keep"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["passed"], true);
  std::vector<std::string> phases;
  for (const auto& p : j["phases"]) {
    phases.push_back(p["phase"].get<std::string>() + std::to_string(p["round"].get<int>()));
    EXPECT_EQ(p["error"], "") << p;
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"start1", "backfill1", "verify1", "switch1", "rollback1", "start2",
                                              "backfill2", "verify2", "switch2", "complete2"}));
  EXPECT_GE(j["rollback_seconds"].get<double>(), 0);
  EXPECT_GT(j["writer"]["writes"].get<int64_t>(), 0);
  EXPECT_EQ(j["writer"]["errors"], 0) << j["writer"];
  EXPECT_EQ(j["rows"], 3);
  const std::string kept = j["kept_copy"].get<std::string>();
  ASSERT_EQ(kept.rfind("sqlite:", 0), 0u) << kept;
  {
    auto copy = OpenSqlite(kept.substr(7), false);
    EXPECT_EQ(QueryValue(*copy, "SELECT phase FROM _sluice_migrations WHERE name = '001_lower'"), "complete");
    EXPECT_EQ(QueryValue(*copy, "SELECT group_concat(email_lower, ',') FROM orders ORDER BY id"),
              "a@x.com,b@x.com,c@x|y.com");
  }
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(kept.substr(7)).parent_path(), ec);

  EXPECT_EQ(SourceFingerprint(*f.m), before);
  EXPECT_EQ(QueryValue(*f.m, "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_sluice%' ESCAPE '\\'"), "1");
  EXPECT_EQ(QueryValue(*f.m, "SELECT passed FROM _sluice_rehearsals WHERE migration = '001_lower'"), "1");

  auto md = f.Ok({"runbook", f.plan}).out;
  EXPECT_THAT(md, HasSubstr("- [x] Rehearsal at realistic volume: rehearsal #1"));
  EXPECT_THAT(md, HasSubstr("Its rehearsed duration: "));
  EXPECT_THAT(md, HasSubstr("Rehearsed duration: "));
  // How the copy was made: in the checklist item and in the report's
  // rehearsal section (its first "Copy:" line under the heading).
  const std::string item = LineStartingWith(md, "- [x] Rehearsal at realistic volume");
  EXPECT_THAT(item, HasSubstr(" Copy: sqlite backup in "));
  EXPECT_THAT(item, HasSubstr(" s: the whole database, at full volume."));
  f.Ok({"start", f.plan});
  auto report = f.Ok({"report", "001_lower"}).out;
  const size_t section = report.find("\n### Rehearsal #1 at ");
  ASSERT_NE(section, std::string::npos) << report;
  const std::string rehearsal = report.substr(section, report.find("\n## ", section) - section);
  const std::string copy = LineStartingWith(rehearsal, "Copy: ");
  EXPECT_THAT(copy, HasSubstr("Copy: sqlite backup in "));
  EXPECT_THAT(copy, HasSubstr(" s: the whole database, at full volume."));
  auto report_json = nlohmann::json::parse(f.Ok({"report", "001_lower", "--json"}).out);
  ASSERT_EQ(report_json["rehearsals"].size(), 1u);
  EXPECT_EQ(report_json["rehearsals"][0]["copy"]["method"], "sqlite backup");
  EXPECT_THAT(f.Ok({"report", "001_lower", "--html"}).out, HasSubstr("Copy: sqlite backup in "));
}

TEST(Rehearse, TheDirectoryOfARehearsalKilledBySigkillIsRemovedByCleanup) {
  Fixture f;
  {
    auto s = f.m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("WITH RECURSIVE g(n) AS (SELECT 4 UNION ALL SELECT n + 1 FROM g WHERE n < 400) "
                                "INSERT INTO orders SELECT n, 'U' || n || '@X.COM' FROM g"));
  }
  // 400 rows at 40 rows/s: the backfill is in flight for about 10 s.
  const std::string plan = f.dir.Write("003_slow.yaml", std::string(kPlan) + R"(
backfill:
  chunk_rows: 4
  chunk_min_rows: 1
  chunk_max_rows: 4
  max_rows_per_second: 40
)");
  const std::string before = SourceFingerprint(*f.m);
  TempDir tmp;  // the rehearsals' TMPDIR
  // Left alone: a directory of a live process (this one), one without a pid.
  const std::string live = tmp.File("sluice-rehearsal-x-" + std::to_string(getpid()) + "-abcdef");
  const std::string old = tmp.File("sluice-rehearsal-Ab12Cd");
  std::filesystem::create_directory(live);
  std::filesystem::create_directory(old);

  const int pid = [&] {
    ScopedTmpdir in(tmp.path());
    return SpawnSluice({"--db", f.url, "rehearse", plan}, f.dir.path());
  }();
  ASSERT_GT(pid, 0);
  const std::string mine = "sluice-rehearsal-003_slow-" + std::to_string(pid) + "-";
  std::string dir;
  // In the backfill: the copy has a chunk.
  const bool in_backfill = Eventually([&] {
    dir = EntryStartingWith(tmp.path(), mine);
    if (dir.empty() || !std::filesystem::exists(dir + "/copy.db")) return false;
    auto copy = db::OpenAdapter("sqlite:" + dir + "/copy.db");
    if (!copy.ok()) return false;
    auto conn = (*copy)->Connect();
    if (!conn.ok()) return false;
    auto n = (*conn)->Query("SELECT count(*) FROM _sluice_chunks");
    return n.ok() && n->Scalar().AsInt() > 0;
  });
  ::kill(pid, SIGKILL);
  EXPECT_EQ(WaitProcess(pid), 128 + SIGKILL);
  ASSERT_TRUE(in_backfill) << "no backfill seen in " << tmp.path() << ": " << ReadFile(f.dir.File("spawn.err"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/copy.db"));  // left behind

  auto r = RunSluice({"--db", f.url, "rehearse", "--cleanup"}, {"TMPDIR=" + tmp.path()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("removed " + dir + ", left behind by an interrupted rehearsal (pid " +
                               std::to_string(pid) + ")"));
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(old));
  // A copy kept with --keep is not a leftover, even once its process is gone.
  auto keep = RunSluice({"--db", f.url, "rehearse", f.plan, "--keep", "--json"}, {"TMPDIR=" + tmp.path()});
  ASSERT_EQ(keep.exit_code, 0) << keep.err;
  const std::string kept = nlohmann::json::parse(keep.out)["kept_copy"].get<std::string>();
  ASSERT_EQ(kept.rfind("sqlite:" + tmp.File("sluice-rehearsal-001_lower-"), 0), 0u) << kept;
  auto again = RunSluice({"--db", f.url, "rehearse", "--cleanup"}, {"TMPDIR=" + tmp.path()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(std::filesystem::exists(kept.substr(7))) << again.err;
  EXPECT_EQ(SourceFingerprint(*f.m), before);
}

TEST(Rehearse, ACopyCancelledBeforeItsFirstBackupStepRemovesItsDirectory) {
  // (a) The copy's cancel flag is set before it starts; (b) the copy
  // (through the adapter) makes its directory and reads the flag before its
  // first backup step; (c) kCancelled, nothing left in TMPDIR, the source
  // identical.
  Fixture f;
  const std::string before = SourceFingerprint(*f.m);
  TempDir tmp;
  auto adapter = db::OpenAdapter(f.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto conn = (*adapter)->Connect();
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  std::atomic<bool> cancel{true};
  auto made = [&] {
    ScopedTmpdir in(tmp.path());
    return (*conn)->CreateScratchCopy({"001_lower", {"orders"}, 0, &cancel});
  }();
  EXPECT_THAT(made.status(), StatusIs(StatusCode::kCancelled, db::kScratchCopyCancelled));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
  EXPECT_EQ(SourceFingerprint(*f.m), before);
}

TEST(Rehearse, SigtermDuringTheBackupExits130AndRemovesTheCopysDirectory) {
  // (a) A source of about 80 MB, and an application writing to it (table
  // ticks) throughout: the online backup restarts after every write, so it
  // is still copying when (b) SIGTERM comes, once the backup's file exists
  // in the rehearsal's directory; (c) exit 130, said as interrupted during
  // the copy (no phase ran, nothing recorded), the directory removed, the
  // source identical but for the application's ticks.
  Fixture f;
  {
    auto s = f.m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB NOT NULL);"
                                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 80000) "
                                "INSERT INTO blobs SELECT n, randomblob(1000) FROM g;"
                                "CREATE TABLE ticks (n INTEGER NOT NULL); INSERT INTO ticks VALUES (0)"));
  }
  auto adapter = db::OpenAdapter(f.url);
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto app = (*adapter)->Connect();
  ASSERT_TRUE(app.ok()) << app.status().message();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      (*app)->Exec("UPDATE ticks SET n = n + 1").IgnoreError();  // busy now and then: the next one lands
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // pacing, not waiting
    }
  });
  auto fingerprint = [&] {
    return SourceFingerprint(*f.m) +
           QueryValue(*f.m, "SELECT count(*) || ' ' || sum(length(b)) || ' ' || group_concat(hex(substr(b, 1, 8)), "
                            "',') FROM blobs WHERE id % 997 = 0");
  };
  const std::string before = fingerprint();
  TempDir tmp;  // the rehearsal's TMPDIR
  const int pid = [&] {
    ScopedTmpdir in(tmp.path());
    return SpawnSluice({"--db", f.url, "rehearse", f.plan}, f.dir.path());
  }();
  ASSERT_GT(pid, 0);
  const std::string mine = "sluice-rehearsal-001_lower-" + std::to_string(pid) + "-";
  std::string dir;
  const bool copying = Eventually([&] {
    dir = EntryStartingWith(tmp.path(), mine);
    return !dir.empty() && std::filesystem::exists(dir + "/copy.db");
  });
  ::kill(pid, SIGTERM);
  stop = true;  // else a sluice deaf to the signal would copy for as long as the writer writes
  writer.join();
  EXPECT_EQ(WaitProcess(pid), 130) << ReadFile(f.dir.File("spawn.out")) << ReadFile(f.dir.File("spawn.err"));
  ASSERT_TRUE(copying) << "no backup seen in " << tmp.path() << ": " << ReadFile(f.dir.File("spawn.err"));
  EXPECT_THAT(ReadFile(f.dir.File("spawn.err")), HasSubstr("the rehearsal was interrupted during the copy"));
  EXPECT_EQ(ReadFile(f.dir.File("spawn.out")), "");  // no report: no phase ran
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
  EXPECT_EQ(QueryValue(*f.m, "SELECT count(*) FROM sqlite_master WHERE name = '_sluice_rehearsals'"), "0");
  EXPECT_EQ(fingerprint(), before);
}

TEST(Rehearse, AFailedRehearsalIsRecordedAndLeavesTheSourceIdentical) {
  // An invariant that does not hold: the rehearsal stops at verify.
  Fixture f;
  std::string plan = f.dir.Write("002_small.yaml", std::string(kPlan) + R"(
verify:
  invariants:
    - {name: small_ids, table: orders, check: id < 3}
)");
  const std::string before = SourceFingerprint(*f.m);
  auto r = f.Run({"rehearse", plan, "--json"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["kept_copy"], "");
  ASSERT_EQ(j["phases"].size(), 3u) << j;
  EXPECT_THAT(j["phases"][2]["error"].get<std::string>(), HasSubstr("verification failed"));
  EXPECT_EQ(j["rollback_seconds"], -1.0);
  EXPECT_EQ(SourceFingerprint(*f.m), before);
  EXPECT_EQ(QueryValue(*f.m, "SELECT passed FROM _sluice_rehearsals WHERE migration = '002_small'"), "0");
  // A started plan is not rehearsed again.
  f.Ok({"start", f.plan});
  auto again = f.Run({"rehearse", f.plan});
  EXPECT_EQ(again.exit_code, 7);
  EXPECT_THAT(again.err, HasSubstr("rehearse a plan before starting it"));
}

}  // namespace
}  // namespace sluice::testing
