// rename_table.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::RenameTable& op) {
  VTable* t = RequireTable(op.from);
  if (!t) return;
  if (NameTakenAsRelation(op.to.value)) {
    Error(op.to.loc, "table '" + op.to.value + "' already exists", StatusCode::kAlreadyExists);
    return;
  }
  dropped_logical_.push_back(t->logical);
  if (t->created) {
    CreateStepOf(*t).table = op.to.value;
    auto& inv = inverses_;
    for (auto& s : inv) {
      if (auto* dt = std::get_if<db::DropTableStep>(&s.body); dt && dt->table == t->physical) dt->table = op.to.value;
    }
    t->physical = op.to.value;
  } else {
    t->changed = true;
    touched_.insert(t->physical);
  }
  t->logical = op.to.value;
}

}  // namespace sluice::engine::internal
