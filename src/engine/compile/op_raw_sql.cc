// sql (raw statements).
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::RawSql& op) {
  raw_sql_ = true;
  if (op.on_complete) {
    Complete(kStageRawSql, db::RawSqlStep{op.up});
    return;
  }
  std::optional<db::StepBody> inverse;
  if (!op.down.empty()) {
    inverse = db::RawSqlStep{op.down};
  } else if (auto derived = d_.InverseOfRawSql(op.up); derived.ok()) {
    // Plain CREATEs: rollback drops what they created.
    inverse = db::RawSqlStep{*derived};
  } else {
    Warn(op_->loc, "sql without 'down': rollback cannot undo it (" + derived.status().message() +
                       "); rollback will refuse unless forced");
    irreversible_ = true;
    irreversible_ops_.push_back(OriginWithLoc() + ": " + derived.status().message());
  }
  Start(db::RawSqlStep{op.up}, inverse);
}

}  // namespace sluice::engine::internal
