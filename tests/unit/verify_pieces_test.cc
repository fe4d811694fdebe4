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

Outcome Piece(int64_t rows, std::vector<std::string> evidence, bool truncated = false) {
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
  std::vector<Outcome> pieces{Piece(100, {}), Piece(90, {"a1", "a2"}), Piece(80, {}), Piece(70, {"b1", "b2", "b3"}),
                              Piece(60, {"c1"})};
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
  std::vector<Outcome> bisected{Piece(10, {"x1", "x2"}), Piece(10, {}), Piece(10, {"y1"})};
  std::vector<Outcome> skipped{Piece(10, {"x1", "x2"}), Piece(10, {}), Piece(10, {}, /*truncated=*/true)};
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
  std::vector<Outcome> pieces{Piece(5, {}), Piece(7, {})};
  Outcome out;
  MergeOutcomes(pieces, 10, &out);
  EXPECT_EQ(out.rows_a, 12);
  EXPECT_EQ(out.differences, 0);
  EXPECT_FALSE(out.truncated);
  EXPECT_TRUE(out.evidence.empty());
}

}  // namespace
}  // namespace sluice::verify
