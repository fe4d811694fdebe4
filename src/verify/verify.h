// Verification: evidence, computed inside the database, that the new version
// holds exactly what the old one implies.
//
// Checks (each with numbers, pass/fail and evidence):
//   row_count  rows visible through the old and the new read path, counted
//              in one snapshot
//   up_matches every row's new column equals `up` applied to its old values
//              (skipped, with the reason, when `up` is volatile); rows last
//              written through the new version are left to down_matches
//   down_matches  rows last written through the new version: each old
//              column equals `down` applied to the new values
//   not_null   columns that become NOT NULL at complete hold no NULL
//
// Verification only reads (one snapshot transaction); it never changes the
// migrated tables. Not thread-safe; one call per connection at a time.
#pragma once

#include <string>
#include <vector>

#include "db/adapter.h"
#include "sluice/status.h"

namespace sluice::verify {

struct Check {
  std::string name;
  std::string table;
  std::string column;
  bool passed = true;
  bool skipped = false;
  std::string summary;
  std::vector<std::string> evidence;  // up to Settings::max_reported lines
  int64_t checked = 0;                // rows examined
  int64_t failures = 0;               // rows that failed
};

struct Report {
  std::string migration;
  std::string at;
  bool passed = true;
  std::vector<Check> checks;
  std::string ToJson() const;
};

struct Settings {
  int64_t max_reported = 10;
};

Result<Report> Run(db::Connection& conn, const db::VersionSpec& version, const Settings& settings);

}  // namespace sluice::verify
