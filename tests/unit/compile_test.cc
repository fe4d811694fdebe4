// Unit tests of the plan compiler (src/engine/compile.cc): a parsed plan
// against a schema snapshot, for both dialects, without a database. They
// pin what each phase is made of (the version's table mappings, the
// dual-write directions, the backfill tasks, the tables claimed), and that
// every refusal names the plan location and has the code the CLI maps to
// the right exit status.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "db/postgres/postgres_dialect.h"
#include "db/sqlite/sqlite_dialect.h"
#include "engine/compile.h"
#include "plan/parser.h"

namespace sluice::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

db::ColumnInfo Col(std::string name, std::string type, bool not_null = false) {
  db::ColumnInfo c;
  c.name = std::move(name);
  c.type = std::move(type);
  c.not_null = not_null;
  return c;
}

// orders(id PK, email NOT NULL, amount) and a keyless log table.
db::Schema Shop(const std::string& text_type) {
  db::Schema s;
  s.name = "main";
  db::TableInfo orders;
  orders.name = "orders";
  orders.columns = {Col("id", "integer", true), Col("email", text_type, true), Col("amount", text_type)};
  orders.primary_key = {"id"};
  db::IndexInfo pk;
  pk.name = "orders_pkey";
  pk.table = "orders";
  pk.columns = {"id"};
  pk.unique = pk.primary = true;
  orders.indexes.push_back(pk);
  s.tables["orders"] = orders;
  db::TableInfo log;
  log.name = "log";
  log.columns = {Col("at", text_type), Col("line", text_type)};
  s.tables["log"] = log;
  return s;
}

struct Case {
  std::unique_ptr<db::Dialect> dialect;
  db::Schema schema;
};

Case Sqlite() { return {std::make_unique<db::SqliteDialect>(), Shop("TEXT")}; }
Case Postgres() { return {std::make_unique<db::PostgresDialect>("public", "sluice"), Shop("text")}; }

Result<CompiledMigration> CompileText(const Case& c, const std::string& yaml) {
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanText(yaml, "002_test.yaml"));
  return Compile(p, c.schema, *c.dialect);
}

const db::TableMapping* Mapping(const CompiledMigration& m, const std::string& logical) {
  for (const auto& t : m.version.tables) {
    if (t.logical == logical) return &t;
  }
  return nullptr;
}

std::vector<std::string> Logical(const db::TableMapping& t) {
  std::vector<std::string> out;
  for (const auto& c : t.columns) out.push_back(c.logical);
  return out;
}

constexpr const char* kAddColumn = R"(
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: text, nullable: true}
)";

class CompileBoth : public ::testing::TestWithParam<bool> {
 protected:
  Case C() const { return GetParam() ? Postgres() : Sqlite(); }
};

TEST_P(CompileBoth, AddColumnWithUpBackfillsTheTableAndWritesForwardOnly) {
  Case c = C();
  auto m = CompileText(c, kAddColumn);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->name, "002_test");
  EXPECT_THAT(m->tables, ElementsAre("orders"));
  const db::TableMapping* t = Mapping(*m, "orders");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->changed);
  EXPECT_FALSE(t->created);
  EXPECT_THAT(Logical(*t), ElementsAre("id", "email", "amount", "email_lower"));
  EXPECT_THAT(t->key, ElementsAre("id"));
  ASSERT_EQ(t->forward.size(), 1u);
  EXPECT_THAT(t->forward[0].expr, HasSubstr("lower"));
  EXPECT_TRUE(t->forward[0].reads.count("email"));
  EXPECT_TRUE(t->backward.empty()) << "an added column has no old column to write back";
  ASSERT_EQ(m->backfill.size(), 1u);
  EXPECT_EQ(m->backfill[0].table, "orders");
  EXPECT_THAT(m->backfill[0].key, ElementsAre("id"));
  EXPECT_FALSE(m->start.empty());
  EXPECT_FALSE(m->rollback.empty());
  EXPECT_FALSE(m->irreversible);
  // The log table is not touched, not claimed and has no dual write (the
  // version shows unchanged tables through views added at start).
  EXPECT_FALSE(m->tables.count("log"));
  const db::TableMapping* log = Mapping(*m, "log");
  if (log) {
    EXPECT_FALSE(log->changed);
    EXPECT_FALSE(log->has_dual_write());
  }
}

TEST_P(CompileBoth, AlterColumnKeepsBothShapesInSyncInBothDirections) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - alter_column:
      table: orders
      column: amount
      name: cents
      type: integer
      up: CAST(amount AS integer) * 100
      down: CAST(cents / 100 AS text)
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const db::TableMapping* t = Mapping(*m, "orders");
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Logical(*t), ElementsAre("id", "email", "cents"));
  // The new version's `cents` is a new physical column, not the old one.
  EXPECT_NE(t->columns[2].physical, "amount");
  EXPECT_FALSE(t->columns[2].exists_before);
  EXPECT_THAT(t->old_columns, ::testing::Contains("amount"));
  ASSERT_EQ(t->forward.size(), 1u);
  EXPECT_EQ(t->forward[0].target, t->columns[2].physical);
  ASSERT_EQ(t->backward.size(), 1u);
  EXPECT_EQ(t->backward[0].target, "amount");
  EXPECT_FALSE(t->write_flag.empty()) << "rows written through the new version must be marked";
  ASSERT_EQ(m->backfill.size(), 1u);
  EXPECT_EQ(m->backfill[0].skip_flag, t->write_flag);
  EXPECT_FALSE(m->complete.empty()) << "the old column is dropped and the copy renamed at complete";
}

TEST_P(CompileBoth, MissingTableIsNotFoundAtThePlanLocation) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - add_column:
      table: ordrs
      column: {name: x, type: text, nullable: true}
)");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().message();
  EXPECT_THAT(m.status().message(), HasSubstr("002_test.yaml:4:14"));
  EXPECT_THAT(m.status().message(), HasSubstr("table 'ordrs' does not exist"));
  EXPECT_THAT(m.status().message(), HasSubstr("orders")) << "a near miss is suggested";
}

TEST_P(CompileBoth, MissingColumnIsNotFound) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - rename_column:
      table: orders
      from: emial
      to: mail
)");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().message();
  EXPECT_THAT(m.status().message(), HasSubstr("emial"));
}

TEST_P(CompileBoth, ATableWithoutAUsableKeyIsRefusedNamingTheFix) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - add_column:
      table: log
      up: upper(line)
      column: {name: loud, type: text, nullable: true}
)");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition) << m.status().message();
  EXPECT_THAT(m.status().message(), HasSubstr("table 'log' has no primary key"));
  EXPECT_THAT(m.status().message(), HasSubstr("Add one first"));
}

TEST_P(CompileBoth, CreateTableNeedsNoBackfillAndClaimsItsTable) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - create_table:
      name: refunds
      columns:
        - {name: id, type: integer, pk: true}
        - {name: note, type: text, nullable: true}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const db::TableMapping* t = Mapping(*m, "refunds");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->created);
  EXPECT_FALSE(t->has_dual_write());
  EXPECT_TRUE(m->backfill.empty());
  EXPECT_TRUE(m->tables.count("refunds"));
  EXPECT_FALSE(m->rollback.empty()) << "rollback drops the created table";
}

TEST_P(CompileBoth, DropColumnHidesItFromTheNewVersionAndDropsItAtComplete) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - drop_column:
      table: orders
      column: amount
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const db::TableMapping* t = Mapping(*m, "orders");
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Logical(*t), ElementsAre("id", "email"));
  EXPECT_THAT(t->old_columns, ::testing::Contains("amount"));
  EXPECT_FALSE(m->complete.empty());
}

TEST_P(CompileBoth, SqlWithoutADerivableInverseIsIrreversibleAndSaysWhere) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - sql:
      up: UPDATE orders SET amount = NULL WHERE amount = ''
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE(m->irreversible);
  ASSERT_EQ(m->irreversible_ops.size(), 1u);
  EXPECT_THAT(m->irreversible_ops[0], HasSubstr("002_test.yaml:3:"));
  EXPECT_THAT(m->irreversible_ops[0], HasSubstr("operation #1 (sql)"));
}

TEST_P(CompileBoth, SeveralErrorsAreAllReportedInPlanOrder) {
  Case c = C();
  auto m = CompileText(c, R"(
operations:
  - add_column:
      table: nope1
      column: {name: x, type: text, nullable: true}
  - drop_column:
      table: nope2
      column: y
)");
  ASSERT_FALSE(m.ok());
  const std::string& msg = m.status().message();
  const size_t a = msg.find("nope1"), b = msg.find("nope2");
  ASSERT_NE(a, std::string::npos) << msg;
  ASSERT_NE(b, std::string::npos) << msg;
  EXPECT_LT(a, b);
}

INSTANTIATE_TEST_SUITE_P(Dialects, CompileBoth, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Postgres" : "Sqlite"; });

// The version name: the plan's name unless version_schema or the options
// say otherwise; the previous version is what the options name.
TEST(Compile, VersionNamingFollowsThePlanAndTheOptions) {
  Case c = Postgres();
  auto p = plan::ParsePlanText(kAddColumn, "007_lower.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto m = Compile(*p, c.schema, *c.dialect);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->version.name, "007_lower");
  EXPECT_EQ(m->version.migration, "007_lower");
  CompileOptions o;
  o.version_name = "v7";
  o.previous_version = "v6";
  m = Compile(*p, c.schema, *c.dialect, o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->version.name, "v7");
  EXPECT_EQ(m->version.previous, "v6");
}

// Compiling is a pure function of its inputs: the recording start stores
// is only meaningful if the same plan and schema give the same steps.
TEST(Compile, IsDeterministic) {
  for (bool pg : {false, true}) {
    Case c = pg ? Postgres() : Sqlite();
    auto a = CompileText(c, kAddColumn), b = CompileText(c, kAddColumn);
    ASSERT_TRUE(a.ok() && b.ok());
    std::vector<std::string> sa, sb;
    for (const auto& s : a->start) {
      for (const auto& st : c.dialect->Render(s)) sa.push_back(st.sql);
    }
    for (const auto& s : b->start) {
      for (const auto& st : c.dialect->Render(s)) sb.push_back(st.sql);
    }
    EXPECT_EQ(sa, sb);
    EXPECT_FALSE(sa.empty());
  }
}

}  // namespace
}  // namespace sluice::engine
