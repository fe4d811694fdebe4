// `sluice migrate` as Flyway users expect it (issue 8, item 12): two files
// naming one migration are refused, a plan edited after it was applied is an
// error, and every file not applied is listed with why. Real SQLite files,
// the real binary; the database is checked with SQL.
#include <filesystem>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kAddNote = R"(
operations:
  - add_column:
      table: orders
      column:
        name: note
        type: TEXT
        nullable: true
)";
constexpr const char* kAddTag = R"(
operations:
  - add_column:
      table: orders
      column:
        name: tag
        type: TEXT
        nullable: true
)";

class MigrateFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.File("app.db");
    auto m = OpenSqlite(db_);
    ASSERT_TRUE(m);
    auto s = m->Connect("");
    ASSERT_TRUE(s.ok());
    SLUICE_ASSERT_OK((*s)->Exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER); INSERT INTO orders "
                                "VALUES (1, 10), (2, 20)"));
    std::filesystem::create_directory(plans_);
  }
  CommandResult Migrate() { return RunSluice({"--db", "sqlite:" + db_, "migrate", plans_}); }
  std::string Columns() {
    auto m = OpenSqlite(db_, false);
    return QueryValue(*m, "SELECT group_concat(name, ',') FROM pragma_table_info('orders')");
  }
  void Write(const std::string& name, const std::string& text) { dir_.Write("plans/" + name, text); }

  TempDir dir_;
  std::string db_;
  std::string plans_ = dir_.File("plans");
};

TEST_F(MigrateFolder, TwoFilesNamingOneMigrationAreRefusedBeforeAnythingRuns) {
  Write("001_note.yaml", kAddNote);
  Write("001_note.json", R"({"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "TEXT",
    "nullable": true}}}]})");
  CommandResult r = Migrate();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("sluice: error: '001_note.json' and '001_note.yaml' both name migration '001_note'"));
  EXPECT_EQ(Columns(), "id,amount");
  auto m = OpenSqlite(db_, false);
  EXPECT_EQ(QueryValue(*m, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_sluice\\_%' ESCAPE '\\'"), "0");
}

TEST_F(MigrateFolder, APlanEditedAfterItWasAppliedIsAnErrorAndNothingRuns) {
  Write("001_note.yaml", kAddNote);
  ASSERT_EQ(Migrate().exit_code, 0);
  EXPECT_EQ(Columns(), "id,amount,note");
  // Edited after it was applied, and a new plan added after it.
  Write("001_note.yaml", std::string(kAddNote) + "        comment: changed\n");
  Write("002_tag.yaml", kAddTag);
  CommandResult r = Migrate();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("'001_note.yaml' was changed after migration '001_note' was applied"));
  EXPECT_EQ(Columns(), "id,amount,note");  // 002 did not run either
}

TEST_F(MigrateFolder, FilesNotAppliedAreListedWithWhy) {
  Write("001_note.yaml", kAddNote);
  Write("README.md", "how we migrate\n");
  CommandResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("skip README.md: not a plan file (.yaml, .yml or .json)"));
  EXPECT_THAT(r.out, HasSubstr("applied 1 migration(s)"));
  Write("002_tag.yaml", kAddTag);
  r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("skip 001_note.yaml: already applied"));
  EXPECT_THAT(r.out, HasSubstr("applied 1 migration(s)"));
  EXPECT_EQ(Columns(), "id,amount,note,tag");
}

}  // namespace
}  // namespace sluice::testing
