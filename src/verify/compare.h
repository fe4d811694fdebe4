// Internal to src/verify: chunked checksum comparison of two relations with
// bisection down to the differing rows. Used by verify::Run (old vs new
// version of one table, usually one relation read twice) and verify::Diff
// (one table in two databases).
//
// Keys. Both sides walk the same key in the same order: each side's `key`
// expressions must order identically on both sides (verify::Run compares a
// table with itself, so the column's own order serves; Diff orders both
// databases bytewise with Dialect::BinaryOrder). Boundaries are found with
// ORDER BY ... LIMIT, never min()/max(), so every type with an ordering
// works (uuid has no max()). Keys read back are bound as parameters of the
// next range predicate in their own type.
//
// Bounds. Bisection stops at leaf_rows rows, at depth 64, and whenever a
// split makes no progress (many rows share one key), so no input recurses
// without bound; a leaf is then fetched whole (at most one chunk).
//
// Cancellation: `cancel` is read before every query; a set flag ends the
// comparison with kCancelled and leaves nothing behind (it only reads).
//
//   Comparer cmp(old_side, new_side, names, 10000, 16, 10, &cancel_flag);
//   Outcome o;
//   SLUICE_RETURN_IF_ERROR(cmp.Run(&o));
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "db/adapter.h"
#include "sluice/status.h"
#include "verify/values.h"

namespace sluice::verify {

// One side of a checksum comparison: a relation, its key and the values
// compared, each as SQL over that relation.
struct Side {
  db::Connection* conn = nullptr;
  std::string label;                 // "old", "new", "source", "target"
  std::string rel;                   // FROM target
  std::vector<std::string> key;      // key expressions for WHERE / ORDER BY
  std::vector<std::string> key_out;  // key values selected (bound back as parameters)
  // Key as matched between the sides in a leaf and shown in evidence;
  // empty = key_out. Diff uses canonical texts, so an SQLite integer 7
  // and a PostgreSQL '7' are one key.
  std::vector<std::string> key_match;
  std::vector<std::string> values;   // compared values (shown as evidence)
  std::string hash;                  // 64-bit row hash over `values`
  std::string filter;                // extra predicate, may be empty
  // The key is one integer column: max() gives a chunk's last key in the
  // scan that hashes it (the fastest form). Other keys (uuid has no max(),
  // text's max() depends on collation rules) find it with ORDER BY ...
  // LIMIT 1 OFFSET in the same statement.
  bool integer_key = false;
};

// True for the names of integer column types (a key that max() orders
// exactly as ORDER BY does in every database).
bool IsIntegerType(const std::string& type);

struct Agg {
  int64_t count = 0;
  uint64_t sum = 0;  // sum of row hashes mod 2^64
  bool operator==(const Agg& o) const { return count == o.count && sum == o.sum; }
  Agg operator-(const Agg& o) const { return {count - o.count, sum - o.sum}; }
};

struct RangeMismatch {
  Bound lo, hi;
  int64_t a = 0, b = 0;
};

struct Outcome {
  int64_t chunks = 0, differing_chunks = 0;
  int64_t scan_queries = 0, bisect_queries = 0, leaf_queries = 0, key_queries = 0;
  int64_t rows_a = 0, rows_b = 0;
  int64_t differences = 0;
  bool truncated = false;
  std::vector<std::string> evidence;
  std::vector<RangeMismatch> count_mismatches;
  int sessions = 1;  // sessions that compared (checksum workers)
  int64_t chunk_queries() const { return scan_queries + bisect_queries + leaf_queries; }
};

class Comparer {
 public:
  Comparer(Side a, Side b, std::vector<std::string> names, int64_t chunk_rows, int64_t leaf_rows, int64_t max_reported,
           const std::atomic<bool>* cancel);

  // Compares every chunk; fills *out. kCancelled when `cancel` was set;
  // the first query error otherwise (with the range as context).
  Status Run(Outcome* out) { return Run(out, Bound(), Bound()); }
  // Only the key range (start, end] (none = open), in chunks from `start`.
  Status Run(Outcome* out, const Bound& start, const Bound& end);
  // All rows of the sides as one chunk: one aggregate query, no key walk
  // (a Piece, sized to about one chunk).
  Status RunWhole(Outcome* out);
  // Asked before bisecting a differing chunk: false skips the bisection
  // (the chunk still counts as differing and the outcome as truncated).
  void BisectWhen(std::function<bool()> may) { may_bisect_ = std::move(may); }

 private:
  struct LeafRow {
    Key key;    // key_out values (for display)
    Key match;  // key_match values (for matching)
    int64_t hash = 0;
    std::vector<db::Value> values;
  };

  Status CheckCancel() const;
  std::string Where(const Side& s, const Bound& lo, const Bound& hi, std::vector<db::Value>* params) const;
  bool Fused() const;
  Status NextChunk(const Bound& lo, const Bound& end, Bound* hi, Agg* aa, Agg* bb);
  Status AggregateBoth(const Bound& lo, const Bound& hi, Agg* aa, Agg* bb, int64_t* queries);
  Result<Agg> Aggregate(const Side& s, const Bound& lo, const Bound& hi);
  Result<Bound> NthKey(const Side& s, const Bound& lo, const Bound& hi, int64_t offset);
  Status Bisect(const Bound& lo, const Bound& hi, const Agg& aa, const Agg& bb, int depth);
  Result<std::vector<LeafRow>> Fetch(const Side& s, const Bound& lo, const Bound& hi);
  std::string RowText(const std::vector<db::Value>& v) const;
  void Report(std::string line);
  Status Leaf(const Bound& lo, const Bound& hi);
  Status Account(const Bound& lo, const Bound& hi, const Agg& aa, const Agg& bb);

  Side a_, b_;
  std::vector<std::string> names_;
  int64_t chunk_rows_, leaf_rows_, max_reported_;
  const std::atomic<bool>* cancel_;
  Outcome* out_ = nullptr;
  std::function<bool()> may_bisect_;
};

// One unit of CompareRanges' work: both sides read from `rel` instead of
// their own relation (PostgreSQL: a block range of the table, read by a
// TID range scan at the cost of a sequential scan) and compared as one
// chunk, whatever its number of rows; a differing piece is bisected by key
// within it.
struct Piece {
  std::string rel;
  std::string what;  // for messages: "blocks [0, 270)"
};

// The shared state of CompareRanges' workers: hands pieces out in order
// from one cursor, and tells a worker whose piece differs whether its rows
// can still be reported: not when finished pieces before it have already
// found `max_reported` rows (bisecting it would be work the merged report
// drops). Thread-safe.
class PieceBoard {
 public:
  PieceBoard(size_t pieces, int64_t max_reported);
  // The next piece to compare; none once every piece was handed out.
  std::optional<size_t> Next();
  // Piece `i` is compared and found `differences` rows.
  void Done(size_t i, int64_t differences);
  // False when the pieces before `i`, from the first up to one still
  // running, found max_reported rows or more between them.
  bool Reportable(size_t i) const;

 private:
  mutable std::mutex mu_;
  size_t next_ = 0;
  std::vector<int64_t> found_;  // -1: not done
  int64_t max_reported_;
};

// Adds the outcomes of consecutive pieces to *out in piece order: every
// count, and the evidence and differences of the pieces up to the one that
// reaches `max_reported` differing rows; a later differing piece only marks
// the outcome truncated. The result does not depend on which worker
// compared which piece, or when.
void MergeOutcomes(std::vector<Outcome>& pieces, int64_t max_reported, Outcome* out);

// Compares `a` and `b` piece by piece on `sessions` at once (each reading
// the same snapshot), each session taking the next piece from one cursor
// when it is done with its last: the sessions stay busy however the rows
// are spread. The outcomes are merged with MergeOutcomes. The first error
// stops the others and is returned (a failed session fails the
// comparison); `cancel` is polled for them all.
Status CompareRanges(const Side& a, const Side& b, const std::vector<std::string>& names, int64_t leaf_rows,
                     int64_t max_reported, const std::atomic<bool>* cancel,
                     const std::vector<db::Connection*>& sessions, const std::vector<Piece>& pieces, Outcome* out);

}  // namespace sluice::verify
