// A fleet's inventory (docs/fleets.md): the databases one plan is rolled out
// over, the waves they are rolled out in, and how the rollout behaves
// (parallelism, soak time, what a failure does).
//
// Parsed strictly, like plans (src/plan/parser.cc): unknown keys, wrong
// types, duplicate names and passwords written into URLs are refused with
// file:line:column, and nothing is run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice::fleet {

// One database of the fleet.
struct DatabaseSpec {
  std::string name;
  // sqlite:PATH (relative to the inventory's folder) or a PostgreSQL URL
  // without a password (credentials come from PGPASSWORD / ~/.pgpass).
  std::string url;
  std::vector<std::string> tags;
  // Databases that must have finished a pass (switched; on the contract
  // pass: completed) before this one starts it.
  std::vector<std::string> after;
  std::string schema = "public";  // PostgreSQL: the schema migrated
  int line = 0;
};

// One wave, in the order the inventory lists them. A database joins the
// first wave that selects it: `match` (every listed tag), else `percent` of
// the whole fleet (rounded up, from the databases no earlier wave took), else
// (neither) every database left.
struct WaveSpec {
  std::string name;
  std::vector<std::string> match_tags;
  std::optional<double> percent;
  int line = 0;
};

enum class OnFailure { kHalt, kRollbackWave };

struct Inventory {
  std::string file;  // as given
  std::vector<DatabaseSpec> databases;
  std::vector<WaveSpec> waves;  // empty: one wave "all"
  int parallel = 1;             // databases worked on at once within a wave
  double soak_seconds = 0;      // quiet time after a wave's switch
  OnFailure on_failure = OnFailure::kHalt;
};

// Reads and validates an inventory file. kInvalidArgument with every error
// as "file:line:col: error: ..." (one a line).
Result<Inventory> LoadInventory(const std::string& path);
// The same from text; `file` names it in errors, `base_dir` resolves
// relative sqlite: paths ("" = as written).
Result<Inventory> ParseInventory(const std::string& text, const std::string& file, const std::string& base_dir);

// "90s", "10m", "1h", "1.5h", "0" or plain seconds; nullopt when unreadable.
std::optional<double> ParseDuration(const std::string& text);

// `url` with any password removed, for messages.
std::string RedactUrl(const std::string& url);

}  // namespace sluice::fleet
