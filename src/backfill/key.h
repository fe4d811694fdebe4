// Backfill keys: a row's key values, their JSON form in checkpoints, and the
// SQL predicates that bound a chunk of keys.
//
// A key is the row's values of the key columns, in key order, each with its
// storage type (db::Value), so a key read from one query binds into the
// next unchanged. Checkpoints store it as JSON: an array of [tag, text]
// pairs, tag n (NULL), i (integer), r (real), t (text), b (blob, hex), x
// (text that is not valid UTF-8, hex). Pure functions, thread-safe.
//
//   Key k = {db::Value::Int(12), db::Value::Text("abc")};
//   std::string j = KeyToJson(k);           // [["i","12"],["t","abc"]]
//   Result<Key> back = KeyFromJson(j);      // == k
//   KeyCompare(dialect, {"a", "b"}, ">", 1) // ("a", "b") > ($1, $2)
#pragma once

#include <string>
#include <vector>

#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

using Key = std::vector<db::Value>;

// JSON array of [type, value] pairs; "" for an empty key.
std::string KeyToJson(const Key& key);
// The inverse of KeyToJson ("" gives the empty key). kInternal naming the
// text when it is not such an array (a damaged checkpoint row).
Result<Key> KeyFromJson(const std::string& json);
// "(12, 'abc')" for messages (text quoted as an SQL literal).
std::string KeyToDisplay(const Key& key);
// The chunk (from, to] for messages: "after (12) through (40)", "from the
// start through (40)", "after (12)" when `to` is empty.
std::string KeyRangeToDisplay(const Key& from, const Key& to);

// `(k1, k2) > ($n, $n+1)` (or `k1 > $n` for one column). `first_param` is
// the number of the first placeholder.
std::string KeyCompare(const db::Dialect& d, const std::vector<std::string>& key, const char* op, int first_param);
// `"k1", "k2"` and `"k1" DESC, "k2" DESC`.
std::string KeyList(const db::Dialect& d, const std::vector<std::string>& key, const char* suffix = "");

}  // namespace sluice::backfill
