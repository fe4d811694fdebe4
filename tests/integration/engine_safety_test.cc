// Engine safety (issue 9): later phases replay what start recorded, whatever
// the binary that runs them would compile now; recordings from a newer
// sluice are refused; and bytes that are not UTF-8 in any string input get a
// clear error with the database untouched, never an exception. Real SQLite
// files and the real `sluice` binary; results checked with SQL.
#include <filesystem>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSetup = R"~(
CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT);
INSERT INTO orders VALUES (1, 'ann@example.com', '10.50'), (2, 'bob@example.com', '7'), (3, 'cy@example.com', '2.25');
)~";

// Text amounts become integer cents.
constexpr const char* kCentsPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      name: amount_cents
      type: INTEGER
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%.2f', amount_cents / 100.0)
)";

// What a different build might compile the same migration into: another
// type, another expression, another name.
constexpr const char* kTamperedPlan = R"(
operations:
  - alter_column:
      table: orders
      column: amount
      name: amount_whole
      type: TEXT
      up: '0'
      down: amount_whole
)";

class EngineSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.File("app.db");
    auto m = OpenSqlite(db_);
    ASSERT_TRUE(m);
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec(kSetup));
  }
  std::unique_ptr<Migrator> Open() { return OpenSqlite(db_, false); }
  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", "sqlite:" + db_, "--actor", "test"});
    return RunSluice(args);
  }
  // Simulates another sluice build: the stored plan text (which this build
  // would recompile) now says something else.
  void Tamper(Migrator& m) {
    auto s = m.Connect("");
    ASSERT_TRUE(s.ok());
    auto r = (*s)->Query("UPDATE _sluice_migrations SET plan_text = $1 WHERE name = 'cents'",
                         {std::string(kTamperedPlan)});
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->affected, 1);
  }

  TempDir dir_;
  std::string db_;
};

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// (a) start records its compiled steps; (b) the plan a later build would
// compile changes; (c) backfill, verify and complete run what start
// recorded: the column is amount_cents holding cents, as the original plan
// says.
TEST_F(EngineSafety, CompleteReplaysTheStepsStartRecorded) {
  auto m = Open();
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir_.Write("cents.yaml", kCentsPlan)));
  EXPECT_EQ(QueryValue(*m, "SELECT format || ' ' || sluice_version FROM _sluice_recordings WHERE migration = 'cents'"),
            "2 0.2.0");
  Tamper(*m);
  ASSERT_TRUE(m->Backfill("cents", {}).ok());
  auto v = m->Verify("cents");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->passed) << v->json;
  SLUICE_ASSERT_OK(m->Complete("cents"));
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(name || ':' || type, ',') FROM pragma_table_info('orders')"),
            "id:INTEGER,email:TEXT,amount_cents:INTEGER");
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(amount_cents, ',') FROM (SELECT amount_cents FROM orders ORDER BY id)"),
            "1050,700,225");
}

// (a) start records; (b) the plan text changes; (c) rollback undoes exactly
// what start did: the table is as before, with the original column.
TEST_F(EngineSafety, RollbackReplaysTheStepsStartRecorded) {
  auto m = Open();
  ASSERT_TRUE(m);
  const std::string before = QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_schema WHERE name NOT LIKE "
                                            "'\\_sluice\\_%' ESCAPE '\\'");
  SLUICE_ASSERT_OK(m->Start(dir_.Write("cents.yaml", kCentsPlan)));
  Tamper(*m);
  SLUICE_ASSERT_OK(m->Rollback("cents"));
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_schema WHERE name NOT LIKE '\\_sluice\\_%' "
                           "ESCAPE '\\'"),
            before);
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(amount, ',') FROM (SELECT amount FROM orders ORDER BY id)"),
            "10.50,7,2.25");
}

// A recording written by a newer sluice (a higher format) is refused with a
// message saying so, and nothing changes.
TEST_F(EngineSafety, ARecordingFromANewerSluiceIsRefused) {
  auto m = Open();
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir_.Write("cents.yaml", kCentsPlan)));
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("UPDATE _sluice_recordings SET format = 99"));
  }
  const std::string schema = QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_schema");
  for (const auto& verb : std::vector<std::vector<std::string>>{{"complete", "cents"}, {"rollback", "cents"},
                                                                {"switch", "cents"}}) {
    CommandResult r = Sluice(verb);
    EXPECT_NE(r.exit_code, 0) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("recorded by a newer sluice (recording format 99")) << verb[0];
  }
  EXPECT_EQ(QueryValue(*m, "SELECT group_concat(sql, ';') FROM sqlite_schema"), schema);
  EXPECT_EQ(QueryValue(*m, "SELECT phase FROM _sluice_migrations"), "active");
}

// A migration without a recording (started by sluice 0.1) is not replayed
// with this build's rendering: its later phases are refused, saying why.
TEST_F(EngineSafety, AMigrationWithoutARecordingIsNotReplayedWithNewRendering) {
  auto m = Open();
  ASSERT_TRUE(m);
  SLUICE_ASSERT_OK(m->Start(dir_.Write("cents.yaml", kCentsPlan)));
  {
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("DELETE FROM _sluice_recordings"));
  }
  CommandResult r = Sluice({"rollback", "cents"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("was started by an older sluice that kept no recording"));
  EXPECT_EQ(QueryValue(*m, "SELECT phase FROM _sluice_migrations"), "active");
}

// Every string the command line takes, given bytes that are not UTF-8:
// a clear first line "sluice: error: ... not valid UTF-8", never a crash
// (exit 134/139) or a half-written transaction, and the database as it was.
TEST_F(EngineSafety, InvalidUtf8InEveryStringInputGetsAClearError) {
  const std::string bad = "x\xff\xfey";
  // A migration to sign off and force past gates.
  ASSERT_EQ(Sluice({"start", dir_.Write("cents.yaml", kCentsPlan)}).exit_code, 0);
  auto read_db = [&] { return ReadFile(db_); };
  const std::string before = read_db();
  const std::string bad_plan_name = dir_.Write("bad\xff.yaml", kCentsPlan);
  const std::string bad_ident = dir_.Write("ident.yaml", std::string(kCentsPlan).replace(
                                                             std::string(kCentsPlan).find("amount_cents"), 12,
                                                             "amount_" + bad));
  const std::string bad_comment = dir_.Write("comment.yaml", "# caf\xe9 in Latin-1\n" + std::string(kCentsPlan));
  struct Case {
    std::string what;
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"plan file name", {"start", bad_plan_name}, "plan file name is not valid UTF-8"},
      {"plan file name (lint)", {"lint", bad_plan_name}, "plan file name is not valid UTF-8"},
      {"identifier in the plan", {"start", bad_ident}, "ident.yaml:6:21: error: the plan is not valid UTF-8 (byte 0xff)"},
      {"identifier in the plan (lint)", {"lint", bad_ident}, "the plan is not valid UTF-8"},
      {"comment in the plan", {"start", bad_comment}, "comment.yaml:1:6: error: the plan is not valid UTF-8 (byte 0xe9)"},
      {"--reason", {"complete", "cents", "--force", "--reason", bad}, "--reason is not valid UTF-8"},
      {"--note", {"signoff", "switch", "--as", "dana", "--role", "dba", "--note", bad}, "--note is not valid UTF-8"},
      {"--as", {"signoff", "switch", "--as", bad, "--role", "dba"}, "--as is not valid UTF-8"},
      {"--role", {"signoff", "switch", "--as", "dana", "--role", bad}, "--role is not valid UTF-8"},
      {"migration name", {"rollback", bad}, "migration name is not valid UTF-8"},
      {"version name", {"version-sql", bad}, "version name is not valid UTF-8"},
  };
  for (const auto& c : cases) {
    CommandResult r = Sluice(c.args);
    EXPECT_NE(r.exit_code, 0) << c.what;
    EXPECT_LT(r.exit_code, 128) << c.what << " crashed: " << Describe(r);
    EXPECT_EQ(r.err.rfind("sluice: error: ", 0), 0u) << c.what << ": " << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(c.expect)) << c.what;
    EXPECT_TRUE(read_db() == before) << c.what << " changed the database";
    EXPECT_FALSE(std::filesystem::exists(db_ + "-journal")) << c.what << " left a hot journal";
  }
  // --actor is recorded with every event: refused before anything runs.
  CommandResult r = RunSluice({"--db", "sqlite:" + db_, "--actor", bad, "pause", "cents"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("actor is not valid UTF-8"));
  // And a database path that is not UTF-8.
  r = RunSluice({"--db", "sqlite:" + dir_.File(bad + ".db"), "status"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--db is not valid UTF-8"));
  EXPECT_TRUE(read_db() == before);
}

}  // namespace
}  // namespace sluice::testing
