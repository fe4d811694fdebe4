// `--force --reason` on a transition whose gate passes (issue 14): the
// operator's reason is still recorded with the transition, as a
// `gate.forced` event marked forced_while_passing (never a `gate.override`,
// so nothing claims a gate was overridden), visible in `status --json`
// (`gate_overrides`) and in `sluice report`; `--force` without `--reason`
// is refused and records nothing. Through the real binary on a real SQLite
// file, asserted by SQL on the state tables.
#include <nlohmann/json.hpp>

#include "support/plans.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kPlan = kAddEmailLowerPlan;

struct Fixture {
  TempDir dir;
  std::string url;
  std::unique_ptr<Migrator> m;

  Fixture() {
    url = "sqlite:" + dir.File("app.db");
    m = OpenSqlite(dir.File("app.db"));
    auto s = m->Connect("");
    EXPECT_TRUE(s.ok());
    SLUICE_EXPECT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "INSERT INTO orders VALUES (1, 'A@X.COM'), (2, 'B@X.COM');"));
    auto r = Run({"start", dir.Write("001_lower.yaml", kPlan), "--backfill"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url, "--actor", "tester"});
    return RunSluice(args);
  }
  std::string Value(const std::string& sql) { return QueryValue(*m, sql); }
  std::string Events() { return Value("SELECT count(*) FROM _sluice_events"); }
};

TEST(ForceReason, IsRecordedWhenEveryGatePassedAndRefusedWithoutAReason) {
  Fixture f;
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);

  // --force without --reason: refused, with the gate passing; nothing recorded.
  const std::string before = f.Events();
  auto no_reason = f.Run({"switch", "--force"});
  EXPECT_NE(no_reason.exit_code, 0);
  EXPECT_THAT(no_reason.err, ::testing::StartsWith("sluice: error: --force needs --reason"));
  EXPECT_EQ(f.Value("SELECT live FROM _sluice_migrations"), "old");
  EXPECT_EQ(f.Events(), before);

  auto sw = f.Run({"switch", "--force", "--reason", "cut-over drill, ticket OPS-9"});
  ASSERT_EQ(sw.exit_code, 0) << sw.err;
  EXPECT_EQ(f.Value("SELECT live FROM _sluice_migrations"), "new");
  // The gate's pass and the forced reason, in that order; no override.
  EXPECT_EQ(f.Value("SELECT group_concat(kind, ' ') FROM (SELECT kind FROM _sluice_events WHERE kind LIKE 'gate.%' "
                    "ORDER BY id)"),
            "gate.passed gate.forced");
  EXPECT_EQ(f.Value("SELECT json_extract(details, '$.gate') || '|' || json_extract(details, '$.reason') || '|' || "
                    "json_extract(details, '$.forced_while_passing') || '|' || actor FROM _sluice_events "
                    "WHERE kind = 'gate.forced'"),
            "switch|cut-over drill, ticket OPS-9|1|tester");

  // complete: refused without a reason (phase unchanged), recorded with one.
  ASSERT_EQ(f.Run({"verify"}).exit_code, 0);
  auto co = f.Run({"complete", "--force"});
  EXPECT_NE(co.exit_code, 0);
  EXPECT_THAT(co.err, HasSubstr("--reason"));
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "active");

  auto st = f.Run({"status", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  auto j = nlohmann::json::parse(st.out);
  ASSERT_EQ(j[0]["gate_overrides"].size(), 1u) << st.out;
  const std::string line = j[0]["gate_overrides"][0].get<std::string>();
  EXPECT_THAT(line, HasSubstr("FORCED WHILE PASSING"));
  EXPECT_THAT(line, HasSubstr("OPS-9"));
  EXPECT_THAT(line, HasSubstr("by tester"));

  co = f.Run({"complete", "--force", "--reason", "release train, OPS-10"});
  ASSERT_EQ(co.exit_code, 0) << co.err;
  EXPECT_EQ(f.Value("SELECT phase FROM _sluice_migrations"), "complete");
  EXPECT_EQ(f.Value("SELECT group_concat(json_extract(details, '$.gate') || ':' || json_extract(details, '$.reason'), "
                    "'; ') FROM (SELECT details FROM _sluice_events WHERE kind = 'gate.forced' ORDER BY id)"),
            "switch:cut-over drill, ticket OPS-9; complete:release train, OPS-10");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'gate.override'"), "0");

  // The report shows both reasons and does not claim an override.
  auto js = f.Run({"report", "001_lower", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  auto rj = nlohmann::json::parse(js.out);
  ASSERT_EQ(rj["overrides"].size(), 2u) << js.out;
  EXPECT_EQ(rj["overrides"][0]["gate"], "switch");
  EXPECT_EQ(rj["overrides"][0]["reason"], "cut-over drill, ticket OPS-9");
  EXPECT_EQ(rj["overrides"][0]["forced_while_passing"], true);
  EXPECT_EQ(rj["overrides"][1]["gate"], "complete");
  EXPECT_EQ(rj["overrides"][1]["forced_while_passing"], true);
  auto md = f.Run({"report", "001_lower"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("No gate was forced past."));
  EXPECT_THAT(md.out, HasSubstr("release train, OPS-10"));
  EXPECT_THAT(md.out, HasSubstr("nothing overridden"));
  EXPECT_THAT(md.out, Not(HasSubstr("gate overridden**")));
}

TEST(ForceReason, AFailingGateForcedStillRecordsAnOverride) {
  // Unchanged: a gate that blocks, forced with a reason, is an override.
  Fixture f;
  auto sw = f.Run({"switch", "--force", "--reason", "no verification on purpose"});  // none recorded: blocks
  ASSERT_EQ(sw.exit_code, 0) << sw.err;
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'gate.override'"), "1");
  EXPECT_EQ(f.Value("SELECT count(*) FROM _sluice_events WHERE kind = 'gate.forced'"), "0");
  auto st = nlohmann::json::parse(f.Run({"status", "--json"}).out);
  ASSERT_EQ(st[0]["gate_overrides"].size(), 1u);
  EXPECT_THAT(st[0]["gate_overrides"][0].get<std::string>(), HasSubstr("GATE OVERRIDDEN"));
}

}  // namespace
}  // namespace sluice::testing
