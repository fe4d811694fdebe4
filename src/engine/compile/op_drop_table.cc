// drop_table.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::DropTable& op) {
  VTable* t = RequireTable(op.name);
  if (!t) return;
  dropped_logical_.push_back(t->logical);
  if (t->created) {
    Error(op.name.loc, "table '" + t->logical + "' is created by an earlier operation of this plan; remove that "
                                                "operation instead");
    return;
  }
  touched_.insert(t->physical);
  dropped_physical_.push_back(t->physical);
  dropped_table_causes_[t->physical] = CurrentCause();
  tables_.erase(tables_.begin() + (t - tables_.data()));
}

}  // namespace sluice::engine::internal
