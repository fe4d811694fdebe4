// The complete phase (contract) and the objects depending on what it drops.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::BuildCompletion() {
  origin_ = "complete";
  // Rebuild statements of copied indexes name the copy; after the renames
  // of complete the column has its final name.
  for (auto& s : complete_[kStageRenameObjects]) {
    auto* ri = std::get_if<db::RenameIndexStep>(&s.body);
    if (!ri || ri->rebuild_sql.empty()) continue;
    for (const auto& t : tables_) {
      if (t.physical != ri->table) continue;
      std::map<std::string, std::string> finals;
      for (const auto& c : t.columns) {
        if (c.physical != c.logical) finals[c.physical] = c.logical;
      }
      if (finals.empty()) continue;
      auto r = d_.RenameColumns(ri->rebuild_sql, db::SqlKind::kIndexDefinition, finals);
      if (r.ok()) ri->rebuild_sql = *r;
      if (!r.ok()) Error({}, "index '" + ri->to + "': " + r.status().message(), r.status().code());
    }
  }
  for (auto& t : tables_) {
    if (t.created || !t.info) continue;
    // Old physical columns no longer used by the new version are dropped.
    std::set<std::string> used;
    for (const auto& c : t.columns) used.insert(c.physical);
    for (const auto& oc : t.info->columns) {
      if (used.count(oc.name)) continue;
      // Indexes on a dropped column go first (SQLite cannot drop an indexed
      // column; PostgreSQL would drop them under the table's lock).
      for (const auto& idx : t.info->indexes) {
        const std::vector<std::string>& reads = idx.ColumnsRead();
        bool involves = std::find(reads.begin(), reads.end(), oc.name) != reads.end();
        if (!involves || dropped_indexes_.count(idx.name) || idx.primary || !idx.constraint.empty()) continue;
        if (!idx.parent_index.empty()) continue;  // goes with its partitioned index
        bool already = false;
        for (const auto& s : complete_[kStageDropIndex]) {
          if (auto* di = std::get_if<db::DropIndexStep>(&s.body); di && di->name == idx.name) already = true;
        }
        // A copy takes this index's name in the main transaction; a
        // concurrent drop (run after it) would drop the copy instead.
        for (const auto& s : complete_[kStageRenameObjects]) {
          if (auto* ri = std::get_if<db::RenameIndexStep>(&s.body); ri && ri->to == idx.name) {
            already |= !d_.transactional_ddl();
          }
        }
        if (!already) Complete(kStageDropIndex, db::DropIndexStep{t.physical, idx.name});
      }
      Complete(kStageDropColumn, db::DropColumnStep{t.physical, oc.name});
    }
    // Renames, ordered so that no rename targets a name still in use.
    std::vector<std::pair<std::string, std::string>> renames;
    std::set<std::string> live = used;
    for (const auto& c : t.columns) {
      if (c.physical != c.logical) renames.push_back({c.physical, c.logical});
    }
    while (!renames.empty()) {
      auto it = std::find_if(renames.begin(), renames.end(), [&](const auto& r) { return !live.count(r.second); });
      if (it == renames.end()) {
        Error({}, "the column renames of table '" + t.logical + "' form a cycle; rename in two migrations");
        break;
      }
      Complete(kStageRenameColumn, db::RenameColumnStep{t.physical, it->first, it->second});
      live.erase(it->first);
      live.insert(it->second);
      renames.erase(it);
    }
  }
  for (const auto& d : dropped_physical_) Complete(kStageDropTable, db::DropTableStep{d});
  for (auto& t : tables_) {
    if (!t.created && t.physical != t.logical) Complete(kStageRenameTable, db::RenameTableStep{t.physical, t.logical});
  }
  PlanContractDependents();
}

void Compiler::PlanContractDependents() {
  Contract c;
  for (const auto& t : tables_) {
    if (t.created || !t.info) continue;
    std::set<std::string> used;
    for (const auto& col : t.columns) used.insert(col.physical);
    for (const auto& oc : t.info->columns) {
      if (used.count(oc.name)) continue;
      ContractedColumn cc{t.physical, oc.name, "", "", t.logical, {{}, "complete"}};
      for (const auto& col : t.columns) {
        if (col.duplicated && col.origin == oc.name) {
          cc.copy = col.physical;
          cc.final_name = col.logical;
          cc.cause = col.cause;
        }
      }
      if (cc.copy.empty()) {
        auto it = dropped_columns_.find({t.physical, oc.name});
        if (it != dropped_columns_.end()) cc.cause = it->second;
      }
      c.columns.push_back(std::move(cc));
    }
  }
  for (const auto& d : dropped_physical_) {
    auto it = dropped_table_causes_.find(d);
    c.tables.push_back({d, it == dropped_table_causes_.end() ? Cause{{}, "complete"} : it->second});
  }
  for (const auto& [index, cause] : dropped_index_causes_) c.indexes.push_back({index, cause});
  c.carried_indexes = carried_indexes_;
  DependentsPlan p = PlanDependents(c, schema_, d_, plan_.file);
  for (auto& e : p.errors) {
    if (first_code_ == StatusCode::kOk) first_code_ = StatusCode::kFailedPrecondition;
    errors_.push_back(std::move(e));
  }
  for (auto& s : p.before_drop) complete_[kStageUnpin].push_back(std::move(s));
  for (auto& s : p.after_rename) complete_[kStageRepin].push_back(std::move(s));
}

}  // namespace sluice::engine::internal
