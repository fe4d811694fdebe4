// Backfill keys: a row's key values, their JSON form in checkpoints, and the
// SQL predicates that bound a chunk of keys.
#pragma once

#include <string>
#include <vector>

#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::backfill {

using Key = std::vector<db::Value>;

// JSON array of [type, value] pairs; "" for an empty key.
std::string KeyToJson(const Key& key);
Result<Key> KeyFromJson(const std::string& json);
// "(12, 'abc')" for messages.
std::string KeyToDisplay(const Key& key);

// `(k1, k2) > ($n, $n+1)` (or `k1 > $n` for one column). `first_param` is
// the number of the first placeholder.
std::string KeyCompare(const db::Dialect& d, const std::vector<std::string>& key, const char* op, int first_param);
// `"k1", "k2"` and `"k1" DESC, "k2" DESC`.
std::string KeyList(const db::Dialect& d, const std::vector<std::string>& key, const char* suffix = "");

}  // namespace sluice::backfill
