// drop_column.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::DropColumn& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  VColumn* col = RequireColumn(*t, op.column);
  if (!col) return;
  if (t->created) {
    auto& cols = CreateStepOf(*t).columns;
    cols.erase(std::remove_if(cols.begin(), cols.end(), [&](const db::ColumnSpec& c) { return c.name == col->physical; }),
               cols.end());
    t->columns.erase(t->columns.begin() + (col - t->columns.data()));
    return;
  }
  std::vector<std::string> key = KeyOf(*t);
  if (std::find(key.begin(), key.end(), col->physical) != key.end()) {
    Error(op.column.loc, "column '" + t->logical + "." + col->logical + "' is part of the table's key; sluice "
                                                                        "cannot drop a key column online");
    return;
  }
  if (col->added || col->duplicated) {
    Error(op.column.loc, "column '" + t->logical + "." + col->logical +
                             "' is created by an earlier operation of this plan; remove that operation instead");
    return;
  }
  if (!RequireKey(*t, op.table.loc)) return;
  if (op.down) {
    CheckParses(*op.down, "'down' of column '" + col->logical + "'");
    t->backward.push_back({col->physical, *op.down, OriginWithLoc()});
  } else if (col->not_null && !col->default_expr) {
    Warn(op.column.loc, "column '" + t->logical + "." + col->logical +
                            "' is NOT NULL without a default and no 'down' is given: inserts through the new "
                            "version will fail until complete");
  }
  t->changed = true;
  touched_.insert(t->physical);
  dropped_columns_[{t->physical, col->physical}] = CurrentCause();
  t->columns.erase(t->columns.begin() + (col - t->columns.data()));
}

}  // namespace sluice::engine::internal
