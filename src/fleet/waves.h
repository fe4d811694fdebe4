// Wave assignment: which database is rolled out in which wave, and in what
// order inside it. Pure (no I/O), so every rule is unit-tested
// (tests/unit/fleet_waves_test.cc).
#pragma once

#include <string>
#include <vector>

#include "fleet/inventory.h"
#include "sluice/status.h"

namespace sluice::fleet {

struct Wave {
  std::string name;
  // Indices into Inventory::databases, in a topological order of `after`
  // (inventory order among databases free to go).
  std::vector<size_t> databases;
};

// Assigns every database to exactly one wave (the first that selects it;
// see WaveSpec) and checks `after:`: no cycle (named in the error), and no
// database after one in a later wave (it could never start). An inventory
// without waves has one wave "all". kInvalidArgument names the inventory
// file and what to change when a wave would be empty or a database would
// be left in no wave.
Result<std::vector<Wave>> AssignWaves(const Inventory& inventory);

}  // namespace sluice::fleet
