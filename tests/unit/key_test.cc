// Backfill keys (src/backfill/key.h): the typed JSON form stored in
// checkpoints, messages, the SQL text of key predicates, and what those
// predicates select on a real SQLite file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <climits>

#include "backfill/key.h"
#include "db/postgres/postgres_dialect.h"
#include "db/sqlite/sqlite_dialect.h"
#include "support/test_support.h"

namespace sluice::backfill {
namespace {

using db::Value;
using ::testing::HasSubstr;

Value Blob(std::string bytes) { return {Value::Type::kBlob, std::move(bytes)}; }

TEST(KeyTest, JsonFormIsAnArrayOfTaggedTexts) {
  EXPECT_EQ(KeyToJson({Value::Int(12), Value::Text("abc")}), R"([["i","12"],["t","abc"]])");
  EXPECT_EQ(KeyToJson({Value::Null(), Blob(std::string("\x00\xff", 2))}), R"([["n",""],["b","00ff"]])");
  EXPECT_EQ(KeyToJson({}), "");
  auto empty = KeyFromJson("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(KeyTest, TypedValuesRoundTrip) {
  const std::vector<Key> keys = {
      {Value::Int(0)},
      {Value::Int(INT64_MIN)},
      {Value::Int(INT64_MAX)},
      {Value::Real(2.5)},
      {Value::Real(-1e-300)},
      {{Value::Type::kReal, "12345678901234567890.123"}},  // numerics travel as their text
      {Value::Text("")},
      {Value::Text("it's \"quoted\" \\ back\\slash")},
      {Value::Text("na\xc3\xafve \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x99\x82")},  // naïve 東京 🙂
      {Value::Text(std::string("nul\0inside", 10))},
      {Value::Null()},
      {Blob(std::string("\x00\x01\xfe\xff", 4))},
      {Value::Int(7), Value::Text("b"), Value::Null(), Value::Real(0.1), Blob("x")},  // composite
  };
  for (const Key& k : keys) {
    std::string json = KeyToJson(k);
    auto back = KeyFromJson(json);
    ASSERT_TRUE(back.ok()) << json << ": " << back.status().message();
    EXPECT_EQ(*back, k) << json;
  }
}

TEST(KeyTest, TextThatIsNotUtf8IsStoredAsHexAndComesBackAsText) {
  Key k = {Value::Text("\xff\xfe latin1 caf\xe9")};
  std::string json = KeyToJson(k);
  EXPECT_THAT(json, HasSubstr(R"(["x",")"));
  auto back = KeyFromJson(json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)[0].type, Value::Type::kText);
  EXPECT_EQ(*back, k);
}

TEST(KeyTest, DamagedCheckpointKeysAreErrorsNamingTheText) {
  for (const char* bad : {"not json", "{}", "[]", "[1]", R"([["q","1"]])", R"([["b","abc"]])", R"([["b","zz"]])",
                          R"([["i"]])", R"([["i","1","2"]])", R"([[1,2]])"}) {
    auto k = KeyFromJson(bad);
    ASSERT_FALSE(k.ok()) << bad;
    EXPECT_EQ(k.status().code(), StatusCode::kInternal) << bad;
    EXPECT_THAT(k.status().message(), HasSubstr(std::string("unreadable checkpoint key '") + bad + "'"));
  }
}

TEST(KeyTest, DisplayQuotesTextAsSqlLiterals) {
  EXPECT_EQ(KeyToDisplay({Value::Int(12), Value::Text("it's"), Value::Null(), Value::Real(2.5)}),
            "(12, 'it''s', NULL, 2.5)");
  EXPECT_EQ(KeyRangeToDisplay({}, {Value::Int(40)}), "from the start through (40)");
  EXPECT_EQ(KeyRangeToDisplay({Value::Int(12)}, {Value::Int(40)}), "after (12) through (40)");
  EXPECT_EQ(KeyRangeToDisplay({Value::Int(12)}, {}), "after (12)");
}

TEST(KeyTest, PredicateText) {
  db::SqliteDialect lite;
  db::PostgresDialect pg("public", "sluice");
  for (const db::Dialect* d : {static_cast<const db::Dialect*>(&lite), static_cast<const db::Dialect*>(&pg)}) {
    EXPECT_EQ(KeyCompare(*d, {"id"}, ">", 1), "\"id\" > $1");
    EXPECT_EQ(KeyCompare(*d, {"a", "b"}, "<=", 3), "(\"a\", \"b\") <= ($3, $4)");
    EXPECT_EQ(KeyCompare(*d, {"a", "we\"ird", "c"}, ">", 2), "(\"a\", \"we\"\"ird\", \"c\") > ($2, $3, $4)");
    EXPECT_EQ(KeyList(*d, {"a", "b"}), "\"a\", \"b\"");
    EXPECT_EQ(KeyList(*d, {"a", "b"}, " DESC"), "\"a\" DESC, \"b\" DESC");
  }
}

// Row-value comparisons on a real database: walking a composite key in
// chunks, each chunk bounded by keys that went through their JSON form as a
// checkpoint does, visits every row once and in order.
TEST(KeyTest, RowValueWalkThroughCheckpointsVisitsEveryRowOnce) {
  testing::TempDir dir;
  auto adapter = db::OpenAdapter("sqlite:" + dir.File("k.db"), {.create = true});
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto conn = (*adapter)->Connect();
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  db::Connection& c = **conn;
  const db::Dialect& d = c.dialect();
  ASSERT_TRUE(c.Exec("CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));"
                     "INSERT INTO t VALUES (1, 'a'), (1, 'it''s'), (1, 'b'), (2, 'a'), (10, 'a'), (10, 'b'),"
                     "(9, '\xe6\x9d\xb1\xe4\xba\xac'), (9, 'a\"b'), (-3, ''), (100, 'z')")
                  .ok());
  const std::vector<std::string> key = {"a", "b"};
  auto all = c.Query("SELECT a, b FROM t ORDER BY " + KeyList(d, key));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->rows.size(), 10u);

  std::vector<db::Row> seen;
  std::string checkpoint;  // "" = before the first key
  for (int chunk = 0; chunk < 20; ++chunk) {
    auto last = KeyFromJson(checkpoint);
    ASSERT_TRUE(last.ok());
    std::string where = last->empty() ? "" : " WHERE " + KeyCompare(d, key, ">", 1);
    auto rows = c.Query("SELECT a, b FROM t" + where + " ORDER BY " + KeyList(d, key) + " LIMIT 3", *last);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    if (rows->rows.empty()) break;
    seen.insert(seen.end(), rows->rows.begin(), rows->rows.end());
    checkpoint = KeyToJson(rows->rows.back());
  }
  EXPECT_EQ(seen, all->rows);

  // `<=` bounds the upper end the same way.
  auto upper = KeyFromJson(KeyToJson({Value::Int(9), Value::Text("a\"b")}));
  ASSERT_TRUE(upper.ok());
  auto n = c.Query("SELECT count(*) FROM t WHERE " + KeyCompare(d, key, "<=", 1), *upper);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->Scalar().AsInt(), 6);  // (-3,''), (1,a), (1,b), (1,it's), (2,a), (9,a"b)
}

}  // namespace
}  // namespace sluice::backfill
