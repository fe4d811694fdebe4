// The hand-out and merge of verification's checksum pieces (src/verify/
// compare.h): pieces go out once each, in order, from one cursor shared by
// the workers; a piece is bisected unless the finished pieces before it
// already found max_reported rows; the merged outcome is the same whatever
// order the pieces finished in.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "db/adapter.h"
#include "support/test_support.h"
#include "verify/compare.h"

namespace sluice::verify {
namespace {

TEST(PieceBoard, HandsOutEveryPieceOnceInOrderAcrossThreads) {
  constexpr size_t kPieces = 1000;
  PieceBoard board(kPieces, 10);
  std::vector<std::vector<size_t>> taken(4);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < taken.size(); ++w) {
    threads.emplace_back([&, w] {
      while (auto i = board.Next()) taken[w].push_back(*i);
    });
  }
  for (auto& t : threads) t.join();
  std::multiset<size_t> all;
  for (const auto& v : taken) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));  // each worker sees the cursor move forward
    all.insert(v.begin(), v.end());
  }
  ASSERT_EQ(all.size(), kPieces);
  for (size_t i = 0; i < kPieces; ++i) EXPECT_EQ(all.count(i), 1u) << i;
  EXPECT_FALSE(board.Next());
}

TEST(PieceBoard, BisectsUntilThePiecesBeforeHaveFoundEnough) {
  PieceBoard board(4, 3);
  EXPECT_TRUE(board.Reportable(0));
  EXPECT_TRUE(board.Reportable(2));  // pieces 0 and 1 not done: not known
  board.Done(1, 5);
  EXPECT_TRUE(board.Reportable(2));  // piece 0 still running
  board.Done(0, 0);
  EXPECT_TRUE(board.Reportable(1));   // piece 0 found nothing
  EXPECT_FALSE(board.Reportable(2));  // 0 + 5 >= 3
  EXPECT_FALSE(board.Reportable(3));
  PieceBoard few(3, 10);
  few.Done(0, 4);
  few.Done(1, 5);
  EXPECT_TRUE(few.Reportable(2));  // 9 < 10
  PieceBoard early(3, 3);
  early.Done(0, 3);
  EXPECT_FALSE(early.Reportable(2));  // piece 0 fills the report; piece 1 still running does not matter
}

Outcome Found(int64_t rows, std::vector<std::string> evidence, bool truncated = false) {
  Outcome o;
  o.chunks = 1;
  o.scan_queries = 1;
  o.rows_a = o.rows_b = rows;
  o.differences = static_cast<int64_t>(evidence.size());
  o.differing_chunks = evidence.empty() && !truncated ? 0 : 1;
  o.bisect_queries = o.differences * 3;
  o.leaf_queries = o.differences ? 2 : 0;
  o.evidence = std::move(evidence);
  o.truncated = truncated;
  return o;
}

TEST(MergeOutcomes, CountsEverythingAndReportsThePiecesInOrderUpToMaxReported) {
  std::vector<Outcome> pieces{Found(100, {}), Found(90, {"a1", "a2"}), Found(80, {}), Found(70, {"b1", "b2", "b3"}),
                              Found(60, {"c1"})};
  Outcome out;
  MergeOutcomes(pieces, 4, &out);
  EXPECT_EQ(out.chunks, 5);
  EXPECT_EQ(out.rows_a, 400);
  EXPECT_EQ(out.rows_b, 400);
  EXPECT_EQ(out.scan_queries, 5);
  EXPECT_EQ(out.differing_chunks, 3);
  EXPECT_EQ(out.evidence, (std::vector<std::string>{"a1", "a2", "b1", "b2"}));
  // The pieces up to the one reaching 4 rows; the last one is past the
  // report whether or not it was bisected.
  EXPECT_EQ(out.differences, 5);
  EXPECT_TRUE(out.truncated);
}

TEST(MergeOutcomes, APieceSkippedPastTheReportGivesTheSameResultAsOneBisected) {
  // Piece 2 ran while piece 0 was still running (so it bisected), or after
  // (so it was skipped): the report is the same.
  std::vector<Outcome> bisected{Found(10, {"x1", "x2"}), Found(10, {}), Found(10, {"y1"})};
  std::vector<Outcome> skipped{Found(10, {"x1", "x2"}), Found(10, {}), Found(10, {}, /*truncated=*/true)};
  Outcome a, b;
  MergeOutcomes(bisected, 2, &a);
  MergeOutcomes(skipped, 2, &b);
  EXPECT_EQ(a.evidence, b.evidence);
  EXPECT_EQ(a.differences, b.differences);
  EXPECT_EQ(a.differences, 2);
  EXPECT_EQ(a.differing_chunks, b.differing_chunks);
  EXPECT_TRUE(a.truncated);
  EXPECT_TRUE(b.truncated);
}

TEST(MergeOutcomes, CleanPiecesAreNotTruncated) {
  std::vector<Outcome> pieces{Found(5, {}), Found(7, {})};
  Outcome out;
  MergeOutcomes(pieces, 10, &out);
  EXPECT_EQ(out.rows_a, 12);
  EXPECT_EQ(out.differences, 0);
  EXPECT_FALSE(out.truncated);
  EXPECT_TRUE(out.evidence.empty());
}

// CompareRanges on real sessions (two SQLite connections to one file, the
// pieces subqueries of one table): every row compared once, a differing row
// named by key, and a piece that cannot be read fails the whole comparison
// (fail closed: never a pass with a piece missing).
class CompareRangesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = db::OpenAdapter("sqlite:" + dir_.File("p.db"), {.create = true});
    ASSERT_TRUE(a.ok()) << a.status().message();
    adapter_ = std::move(*a);
    for (auto* c : {&c1_, &c2_}) {
      auto conn = adapter_->Connect();
      ASSERT_TRUE(conn.ok()) << conn.status().message();
      *c = std::move(*conn);
    }
    SLUICE_ASSERT_OK(c1_->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT)"));
    SLUICE_ASSERT_OK(c1_->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
                               "INSERT INTO t SELECT i, 'x' || i, 'x' || i FROM n"));
    const db::Dialect& d = c1_->dialect();
    a_.label = "old";
    b_.label = "new";
    a_.rel = b_.rel = "t";
    a_.key = a_.key_out = b_.key = b_.key_out = {"id"};
    a_.values = {"v"};
    b_.values = {"w"};
    a_.hash = d.RowHash(a_.values);
    b_.hash = d.RowHash(b_.values);
  }
  static Piece Part(int lo, int hi) {
    return {"(SELECT * FROM t WHERE id > " + std::to_string(lo) + " AND id <= " + std::to_string(hi) + ") AS p",
            "ids (" + std::to_string(lo) + ", " + std::to_string(hi) + "]"};
  }
  Status Run(const std::vector<Piece>& pieces, Outcome* out) {
    return CompareRanges(a_, b_, {"v"}, 4, 10, nullptr, {c1_.get(), c2_.get()}, pieces, out);
  }
  sluice::testing::TempDir dir_;
  std::unique_ptr<db::Adapter> adapter_;
  std::unique_ptr<db::Connection> c1_, c2_;
  Side a_, b_;
};

TEST_F(CompareRangesTest, EveryRowOnceAndADifferingRowByKey) {
  const std::vector<Piece> pieces{Part(0, 20), Part(20, 40), Part(40, 60), Part(60, 80), Part(80, 1000)};
  Outcome clean;
  SLUICE_ASSERT_OK(Run(pieces, &clean));
  EXPECT_EQ(clean.chunks, 5);
  EXPECT_EQ(clean.rows_a, 100);
  EXPECT_EQ(clean.differing_chunks, 0);
  SLUICE_ASSERT_OK(c1_->Exec("UPDATE t SET w = 'changed' WHERE id IN (57, 93)"));
  Outcome bad;
  SLUICE_ASSERT_OK(Run(pieces, &bad));
  EXPECT_EQ(bad.rows_a, 100);
  EXPECT_EQ(bad.differing_chunks, 2);
  ASSERT_EQ(bad.evidence.size(), 2u);
  EXPECT_NE(bad.evidence[0].find("key (57)"), std::string::npos) << bad.evidence[0];
  EXPECT_NE(bad.evidence[0].find("changed"), std::string::npos) << bad.evidence[0];
  EXPECT_NE(bad.evidence[1].find("key (93)"), std::string::npos) << bad.evidence[1];
}

TEST_F(CompareRangesTest, APieceThatCannotBeReadFailsTheComparison) {
  Outcome out;
  Status s = Run({Part(0, 50), {"missing_table", "piece three"}, Part(50, 1000)}, &out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("piece three"), std::string::npos) << s.message();
  EXPECT_EQ(out.chunks, 0);  // nothing merged: no partial result
}

}  // namespace
}  // namespace sluice::verify
