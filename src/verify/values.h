// Internal to src/verify: how verification shows, compares and quotes the
// values and keys it reads back from a database.
//
// Two comparison forms, for two purposes:
//  * Norm: a value's *numeric-tolerant* form (1250, 1250.0 and '1250.00'
//    agree; NULL differs from every text). Used where sluice compares what
//    it computed itself in different ways (partition counts, naming the
//    column of a row whose checksum differs).
//  * Exact: the value *as the application receives it* (its storage class
//    and its text or bytes; NULL differs from ''). Used by shadow reads,
//    which compare what each application version would see.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "db/change.h"
#include "db/value.h"

namespace sluice::verify {

using Key = std::vector<db::Value>;
using Bound = std::optional<Key>;  // none = open end of a key range

// A value for a message: NULL, numbers bare, text quoted, blobs as x'..'.
std::string Show(const db::Value& v);
// "(12, 'abc')".
std::string KeyText(const Key& k);
// "keys > (3) and <= (9)", "all keys", ...
std::string RangeText(const Bound& lo, const Bound& hi);

std::string Norm(const db::Value& v);
std::string NormKey(const Key& k);
std::string Exact(const db::Value& v);

// "a, b" (with `sep`).
std::string Join(const std::vector<std::string>& v, const std::string& sep = ", ");
// `e1 AS p0, e2 AS p1, ...`: unique output names, so ORDER BY refers to the
// relation's columns.
std::string Aliased(const std::vector<std::string>& v, const std::string& prefix);
// `(a, b) op ($n, $n+1)` (or `a op $n` for one expression).
std::string Compare(const std::vector<std::string>& exprs, const char* op, int first);
// "12.3400%".
std::string Fraction(double f);

// The table of `v` named `logical` in the new version, or nullptr.
const db::TableMapping* FindLogical(const db::VersionSpec& v, const std::string& logical);

}  // namespace sluice::verify
