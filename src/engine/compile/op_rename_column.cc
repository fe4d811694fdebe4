// rename_column.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::RenameColumn& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  VColumn* col = RequireColumn(*t, op.from);
  if (!col) return;
  if (t->Find(op.to.value)) {
    Error(op.to.loc, "column '" + t->logical + "." + op.to.value + "' already exists", StatusCode::kAlreadyExists);
    return;
  }
  if (t->created) {
    for (auto& cs : CreateStepOf(*t).columns) {
      if (cs.name == col->physical) cs.name = op.to.value;
    }
    col->physical = op.to.value;
  } else {
    t->changed = true;
    touched_.insert(t->physical);
  }
  col->logical = op.to.value;
}

}  // namespace sluice::engine::internal
