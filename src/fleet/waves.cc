#include "fleet/waves.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

namespace sluice::fleet {

namespace {

bool HasAllTags(const DatabaseSpec& d, const std::vector<std::string>& tags) {
  return std::all_of(tags.begin(), tags.end(),
                     [&](const std::string& t) { return std::find(d.tags.begin(), d.tags.end(), t) != d.tags.end(); });
}

// A cycle of `after` edges among all databases, as "a -> b -> a"; "" when none.
std::string FindCycle(const Inventory& inv, const std::map<std::string, size_t>& index) {
  size_t n = inv.databases.size();
  std::vector<int> color(n, 0);  // 0 new, 1 on the stack, 2 done
  std::vector<size_t> stack;
  std::string found;
  std::function<bool(size_t)> visit = [&](size_t i) -> bool {
    color[i] = 1;
    stack.push_back(i);
    for (const auto& a : inv.databases[i].after) {
      auto it = index.find(a);
      if (it == index.end()) continue;
      size_t j = it->second;
      if (color[j] == 1) {
        auto from = std::find(stack.begin(), stack.end(), j);
        for (auto k = from; k != stack.end(); ++k) found += inv.databases[*k].name + " -> ";
        found += inv.databases[j].name;
        return true;
      }
      if (color[j] == 0 && visit(j)) return true;
    }
    stack.pop_back();
    color[i] = 2;
    return false;
  };
  for (size_t i = 0; i < n; ++i) {
    if (color[i] == 0 && visit(i)) return found;
  }
  return "";
}

}  // namespace

Result<std::vector<Wave>> AssignWaves(const Inventory& inv) {
  const std::string& file = inv.file;
  size_t n = inv.databases.size();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < n; ++i) index[inv.databases[i].name] = i;

  std::string cycle = FindCycle(inv, index);
  if (!cycle.empty()) {
    return InvalidArgument(file + ": error: `after:` forms a cycle: " + cycle +
                           "; no database of it could ever start: remove one of these edges");
  }

  std::vector<Wave> waves;
  std::vector<int> wave_of(n, -1);
  std::vector<WaveSpec> specs = inv.waves;
  if (specs.empty()) specs.push_back(WaveSpec{.name = "all"});
  for (size_t w = 0; w < specs.size(); ++w) {
    const WaveSpec& spec = specs[w];
    Wave wave{spec.name, {}};
    size_t quota = n;
    if (spec.percent) quota = static_cast<size_t>(std::ceil(*spec.percent * static_cast<double>(n) / 100.0 - 1e-9));
    for (size_t i = 0; i < n && wave.databases.size() < quota; ++i) {
      if (wave_of[i] >= 0) continue;
      if (!spec.match_tags.empty() && !HasAllTags(inv.databases[i], spec.match_tags)) continue;
      wave_of[i] = static_cast<int>(w);
      wave.databases.push_back(i);
    }
    if (wave.databases.empty()) {
      std::string loc = file + (spec.line > 0 ? ":" + std::to_string(spec.line) : "");
      std::string why = !spec.match_tags.empty() ? "no database left has every tag it matches"
                                                 : "every database is already in an earlier wave";
      return InvalidArgument(loc + ": error: wave '" + spec.name + "' would be empty (" + why +
                             "); remove it or change its selection");
    }
    waves.push_back(std::move(wave));
  }
  std::string left;
  for (size_t i = 0; i < n; ++i) {
    if (wave_of[i] < 0) left += (left.empty() ? "" : ", ") + inv.databases[i].name;
  }
  if (!left.empty()) {
    return InvalidArgument(file + ": error: database(s) " + left +
                           " are in no wave; add a last wave with neither `match` nor `percent` (the rest)");
  }
  // `after` may point to the same or an earlier wave only.
  for (size_t i = 0; i < n; ++i) {
    for (const auto& a : inv.databases[i].after) {
      size_t j = index.at(a);
      if (wave_of[j] > wave_of[i]) {
        return InvalidArgument(file + ":" + std::to_string(inv.databases[i].line) + ": error: database '" +
                               inv.databases[i].name + "' (wave " + specs[wave_of[i]].name + ") is `after` '" + a +
                               "', which is in the later wave " + specs[wave_of[j]].name +
                               "; it could never start: move one of them");
      }
    }
  }
  // Topological order inside each wave (Kahn's, inventory order first).
  for (auto& wave : waves) {
    std::set<size_t> members(wave.databases.begin(), wave.databases.end());
    std::vector<size_t> order;
    std::set<size_t> placed;
    while (order.size() < wave.databases.size()) {
      for (size_t i : wave.databases) {
        if (placed.count(i)) continue;
        bool ready = true;
        for (const auto& a : inv.databases[i].after) {
          size_t j = index.at(a);
          if (members.count(j) && !placed.count(j)) ready = false;
        }
        if (ready) {
          order.push_back(i);
          placed.insert(i);
          break;
        }
      }
    }
    wave.databases = std::move(order);
  }
  return waves;
}

}  // namespace sluice::fleet
