// Shadow reads compare exactly what each application version receives
// (issue 9, item 9: '1.10' and '1.1' compared equal, and row order was
// ignored where the query orders). On real SQLite and PostgreSQL: (a) a
// migration whose new version returns, for one key each, text '1.1' for
// '1.10', '' for NULL, numeric 1.1 for 1.10 (PostgreSQL), rows in another
// order, and an error; (b) verify; (c) each shadow-read check names exactly
// its one divergent key, and a query without a top-level ORDER BY compares
// rows as a multiset (no divergence for the reordered rows).
#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

std::string Plan(bool pg) {
  std::string plan = R"(
operations:
  - alter_column:
      table: items
      column: label
      type: varchar(20)
      up: CASE WHEN label = '1.10' THEN '1.1' ELSE label END
      down: label
  - alter_column:
      table: items
      column: note
      type: varchar(50)
      up: CASE WHEN note IS NULL THEN '' ELSE note END
      down: note
  - alter_column:
      table: lines
      column: pos
      type: bigint
      up: CASE WHEN order_id = 5 THEN -pos ELSE pos END
      down: CASE WHEN order_id = 5 THEN -pos ELSE pos END
)";
  if (pg) {
    plan += R"(
  - alter_column:
      table: items
      column: amount
      type: numeric
      up: CASE WHEN id = 3 THEN round(amount::numeric, 1) ELSE amount::numeric END
      down: amount::text
)";
  }
  plan += R"(
verify:
  shadow_sample: 1
  max_reported_differences: 10
  validation_queries:
    - {name: label, table: items, sql: "SELECT label FROM items WHERE id = :key"}
    - {name: note, table: items, sql: "SELECT note FROM items WHERE id = :key"}
    - {name: ordered, table: items, sql: "SELECT sku FROM lines WHERE order_id = :key ORDER BY pos"}
    - name: unordered
      table: items
      sql: SELECT sku FROM (SELECT sku, pos FROM lines WHERE order_id = :key ORDER BY pos) AS s
)";
  if (pg) {
    plan += R"(    - {name: amount, table: items, sql: "SELECT amount FROM items WHERE id = :key"}
    - name: error
      table: items
      sql: SELECT label FROM items WHERE id = :key AND 1 / (CASE WHEN label = '1.1' THEN 0 ELSE 1 END) = 1
)";
  }
  return plan;
}

class VerifyShadowTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    pg_ = GetParam() == "postgres";
    if (pg_) {
      PgCluster* c = PgCluster::Shared();
      SLUICE_ASSERT_PG_OK(c);
      url_ = c->CreateDatabase("shadow");
      ASSERT_FALSE(url_.empty());
    } else {
      url_ = "sqlite:" + dir_.File("s.db");
    }
    Options o;
    o.db_url = url_;
    o.actor = "test";
    o.create_database = !pg_;
    auto m = Migrator::Open(o);
    ASSERT_TRUE(m.ok()) << m.status().message();
    m_ = std::move(*m);
    auto s = m_->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, note TEXT, amount TEXT);"
        "INSERT INTO items VALUES (1, '1.10', 'n', '1.10'), (2, 'x', NULL, '2.50'), (3, 'y', 'n', '1.10'),"
        "  (4, '1.1', '', '2.50'), (5, 'z', 'n', '7'), (6, '1.100', 'n', '7');"
        "CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, pos INTEGER NOT NULL, sku TEXT);"
        "INSERT INTO lines VALUES (1, 5, 1, 'a'), (2, 5, 2, 'b'), (3, 5, 3, 'c'), (4, 6, 1, 'a'), (5, 6, 2, 'b');"));
    SLUICE_ASSERT_OK(m_->Start(dir_.Write("001_shadow.yaml", Plan(pg_))));
    auto b = m_->Backfill("", {});
    ASSERT_TRUE(b.ok()) << b.status().message();
  }

  static std::string Dump(const VerifyResult& r) {
    std::string s;
    for (const auto& c : r.checks) {
      s += c.name + " " + c.table + "." + c.column + (c.passed ? " ok: " : " FAIL: ") + c.summary + "\n";
      for (const auto& e : c.evidence) s += "    " + e + "\n";
    }
    return s;
  }

  bool pg_ = false;
  TempDir dir_;
  std::string url_;
  std::unique_ptr<Migrator> m_;
};

TEST_P(VerifyShadowTest, ExactValuesAndOrderAreCompared) {
  VerifyOptions vo;
  vo.reread_delay_ms = 1;
  auto r = m_->Verify("", vo);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->passed) << Dump(*r);
  // Everything but the shadow reads agrees: the damage is only in what the
  // new version shows.
  for (const auto& c : r->checks) {
    if (c.name != "shadow_read") {
      EXPECT_TRUE(c.passed) << Dump(*r);
    }
  }
  struct Want {
    const char* query;
    int failures;
    std::vector<std::vector<std::string>> lines;  // each: parts of one evidence line
  };
  std::vector<Want> want = {
      {"label", 1, {{"key (1)", "old version [(1.10)]", "new version [(1.1)]"}}},  // text '1.10' vs '1.1'
      {"note", 1, {{"key (2)", "old version [(NULL)]", "new version [('')]"}}},    // NULL vs ''
      {"ordered", 1, {{"key (5)", "[('a'), ('b'), ('c')]", "[('c'), ('b'), ('a')]", "(ordered)"}}},
      {"unordered", 0, {}},  // same rows, order not asked for
  };
  if (pg_) {
    // numeric 1.10 vs 1.1: equal numbers, but the application reads the text.
    want.push_back({"amount", 1, {{"key (3)", "old version [(1.10)]", "new version [(1.1)]"}}});
    // A read that fails is a divergence, in one version (key 1) or both (key 4).
    want.push_back({"error",
                    2,
                    {{"key (1)", "old version [(1.10)]", "new version error:", "division by zero"},
                     {"key (4)", "old version error:", "division by zero"}}});
  }
  for (const auto& w : want) {
    SCOPED_TRACE(w.query);
    const CheckResult* c = nullptr;
    for (const auto& x : r->checks) {
      if (x.name == "shadow_read" && x.column == w.query) c = &x;
    }
    ASSERT_NE(c, nullptr) << Dump(*r);
    EXPECT_EQ(c->checked, 6) << Dump(*r);
    EXPECT_EQ(c->failures, w.failures) << Dump(*r);
    EXPECT_EQ(c->passed, w.failures == 0) << Dump(*r);
    ASSERT_EQ(c->evidence.size(), w.lines.size()) << Dump(*r);
    for (size_t i = 0; i < w.lines.size(); ++i) {
      for (const auto& part : w.lines[i]) {
        EXPECT_NE(c->evidence[i].find(part), std::string::npos) << part << "\n" << Dump(*r);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifyShadowTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::testing
