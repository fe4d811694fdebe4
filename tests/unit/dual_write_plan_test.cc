// The plan's `dual_write:` section and the per-column `fallback:` (issue 8
// item 14): parsed strictly, bad values are errors with file:line:col.
#include <variant>

#include "plan/parser.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using plan::ParsePlanText;
using ::testing::HasSubstr;

constexpr StatusCode kInvalid = StatusCode::kInvalidPlan;

constexpr const char* kOps = R"(operations:
  - alter_column:
      table: items
      column: qty
      type: integer
      up: CAST(qty AS integer)
      fallback: "-1"
  - add_column:
      table: items
      column: {name: price, type: integer, nullable: false}
      up: "0"
      fallback: "1"
)";

TEST(DualWritePlanTest, DefaultIsRecordAndFallbacksAreRead) {
  auto p = ParsePlanText(kOps, "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_FALSE(p->dual_write.present);
  EXPECT_EQ(p->dual_write.on_error, plan::OnError::kRecord);
  ASSERT_EQ(p->operations.size(), 2u);
  EXPECT_EQ(std::get<plan::AlterColumn>(p->operations[0].body).fallback.value_or(""), "-1");
  EXPECT_EQ(std::get<plan::AddColumn>(p->operations[1].body).fallback.value_or(""), "1");
}

TEST(DualWritePlanTest, OnErrorFailAndRecord) {
  for (const std::string v : {"fail", "record"}) {
    auto p = ParsePlanText("dual_write:\n  on_error: " + v + "\n" + kOps, "p.yaml");
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_TRUE(p->dual_write.present);
    EXPECT_EQ(p->dual_write.on_error, v == "fail" ? plan::OnError::kFail : plan::OnError::kRecord);
  }
  auto j = ParsePlanText(R"({"dual_write": {"on_error": "fail"}, "operations": [{"sql": {"up": "SELECT 1"}}]})",
                         "p.json");
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(j->dual_write.on_error, plan::OnError::kFail);
}

TEST(DualWritePlanTest, BadValuesAreErrorsWithTheirLocation) {
  EXPECT_THAT(ParsePlanText(std::string("dual_write:\n  on_error: ignore\n") + kOps, "p.yaml").status(),
              StatusIs(kInvalid, "p.yaml:2:3: error: 'on_error' in dual_write must be one of record, fail, got "
                                 "'ignore'"));
  // Case matters, as for every enum of the plan.
  EXPECT_THAT(ParsePlanText(std::string("dual_write:\n  on_error: RECORD\n") + kOps, "p.yaml").status(),
              StatusIs(kInvalid, "p.yaml:2:3: error: 'on_error' in dual_write must be one of"));
  EXPECT_THAT(ParsePlanText(std::string("dual_write:\n  on_eror: fail\n") + kOps, "p.yaml").status(),
              StatusIs(kInvalid, "p.yaml:2:3: error: unknown key 'on_eror' in dual_write"));
  EXPECT_THAT(ParsePlanText(std::string("dual_write: record\n") + kOps, "p.yaml").status(),
              StatusIs(kInvalid, "p.yaml:1:13: error: dual_write must be a map"));
  EXPECT_THAT(ParsePlanText(std::string("dual_write:\n  on_error: [fail]\n") + kOps, "p.yaml").status(),
              StatusIs(kInvalid, "p.yaml:2:3: error: 'on_error' in dual_write must be a string"));
}

TEST(DualWritePlanTest, FallbackErrors) {
  EXPECT_THAT(ParsePlanText(R"(operations:
  - alter_column:
      table: items
      column: qty
      type: integer
      fallback: "  "
)",
                            "p.yaml")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:7: error: 'fallback' in alter_column (operation #1) must not be empty"));
  EXPECT_THAT(ParsePlanText(R"(operations:
  - add_column:
      table: items
      column: {name: price, type: integer, nullable: true}
      fallback: "0"
)",
                            "p.yaml")
                  .status(),
              StatusIs(kInvalid, "p.yaml:5:7: error: 'fallback' in add_column (operation #1) needs 'up'"));
  EXPECT_THAT(ParsePlanText(R"(operations:
  - alter_column:
      table: items
      column: qty
      type: integer
      fallback: 3
)",
                            "p.yaml")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:7: error: 'fallback' in alter_column (operation #1) must be a string"));
}

}  // namespace
}  // namespace sluice::testing
