// create_index and drop_index.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::CreateIndex& op) {
  VTable* t = RequireTable(op.table, true, true);
  if (!t) return;
  if (index_names_.count(op.name.value) || NameTakenAsRelation(op.name.value)) {
    Error(op.name.loc, "an index or relation named '" + op.name.value + "' already exists",
          StatusCode::kAlreadyExists);
    return;
  }
  db::IndexSpec idx;
  idx.name = op.name.value;
  idx.table = t->physical;
  idx.unique = op.unique;
  idx.method = op.method;
  idx.predicate = op.predicate;
  idx.storage_parameters = op.storage_parameters;
  for (const auto& f : op.columns) {
    VColumn* c = RequireColumn(*t, f.column);
    if (!c) return;
    idx.elements.push_back({c->physical, f.collate, f.opclass, f.opclass_params, f.sort, f.nulls});
  }
  index_names_.insert(idx.name);
  db::CreateIndexStep create{idx, {}};
  std::vector<std::pair<std::string, std::string>> unused;
  if (Partitioned(*t) && !PartitionIndexes(t->physical, idx.name, "", {}, &create.partitions, &unused)) return;
  touched_.insert(t->physical);
  Start(create, db::DropIndexStep{t->physical, idx.name, Partitioned(*t)});
}

void Compiler::Op(const plan::DropIndex& op) {
  const db::IndexInfo* idx = schema_.FindIndex(op.name.value);
  if (!idx || dropped_indexes_.count(op.name.value)) {
    Error(op.name.loc, "index '" + op.name.value + "' does not exist", StatusCode::kNotFound);
    return;
  }
  if (idx->primary || !idx->constraint.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' backs constraint '" + idx->constraint +
                           "'; drop the constraint instead (drop_multicolumn_constraint)");
    return;
  }
  if (!idx->parent_index.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' is a partition's part of index '" + idx->parent_index +
                           "'; drop '" + idx->parent_index + "' instead",
          StatusCode::kFailedPrecondition);
    return;
  }
  const db::TableInfo* owner = schema_.FindTable(idx->table);
  if (owner && !owner->partition_of.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' is on partition '" + idx->table + "'; sluice changes a "
                           "partitioned table through its root",
          StatusCode::kFailedPrecondition);
    return;
  }
  dropped_indexes_.insert(op.name.value);
  dropped_index_causes_[op.name.value] = CurrentCause();
  index_names_.erase(op.name.value);
  touched_.insert(idx->table);
  Complete(kStageDropIndex, db::DropIndexStep{idx->table, idx->name, owner && owner->partitioned});
}

}  // namespace sluice::engine::internal
