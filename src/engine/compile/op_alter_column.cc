// alter_column: a copy of the column, filled by the backfill.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::AlterColumn& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  VColumn* col = RequireColumn(*t, op.column);
  if (!col) return;
  if (!op.name.empty()) {
    if (op.name.value != col->logical && t->Find(op.name.value)) {
      Error(op.name.loc, "column '" + t->logical + "." + op.name.value + "' already exists",
            StatusCode::kAlreadyExists);
      return;
    }
  }
  if (t->created) {
    auto& step = CreateStepOf(*t);
    for (auto& cs : step.columns) {
      if (cs.name != col->physical) continue;
      if (op.type) cs.type = *op.type;
      if (op.nullable) cs.not_null = !*op.nullable;
      if (op.default_expr.present) cs.default_expr = op.default_expr.is_null ? std::nullopt : std::optional(op.default_expr.value);
      if (op.comment.present) cs.comment = op.comment.is_null ? std::nullopt : std::optional(op.comment.value);
      if (op.check) cs.checks.push_back({op.check->name.value, op.check->constraint, op.check->no_inherit});
      if (op.unique) cs.unique = true;
      if (op.references) cs.references.push_back(FkFromColumnRef(*op.references, cs.name));
      if (!op.name.empty()) {
        cs.name = op.name.value;
        col->physical = op.name.value;
        col->logical = op.name.value;
      }
    }
    return;
  }
  if (op.MetadataOnly()) {
    // Defaults and comments are catalog entries: change them in place for
    // both versions, and put the old value back on rollback.
    const db::ColumnInfo* before = t->info ? t->info->FindColumn(col->physical) : nullptr;
    touched_.insert(t->physical);
    if (op.default_expr.present) {
      std::optional<std::string> v = op.default_expr.is_null ? std::nullopt : std::optional(op.default_expr.value);
      std::optional<std::string> old = before ? before->default_expr : col->default_expr;
      Start(db::SetDefaultStep{t->physical, col->physical, v}, db::SetDefaultStep{t->physical, col->physical, old});
      col->default_expr = v;
    }
    if (op.comment.present) {
      std::optional<std::string> v = op.comment.is_null ? std::nullopt : std::optional(op.comment.value);
      std::optional<std::string> old = before ? before->comment : col->comment;
      Start(db::SetCommentStep{t->physical, col->physical, v}, db::SetCommentStep{t->physical, col->physical, old});
      col->comment = v;
    }
    return;
  }
  if (!RequireKey(*t, op.table.loc)) return;
  if (!op.up) Warn(op.column.loc, "no 'up' given: the new column copies '" + col->logical + "' unchanged");
  // Apply the changes to the virtual column, then copy it.
  if (op.type) col->type = *op.type;
  if (op.nullable) col->not_null = !*op.nullable;
  if (op.default_expr.present) {
    col->default_expr = op.default_expr.is_null ? std::nullopt : std::optional(op.default_expr.value);
  }
  if (op.comment.present) col->comment = op.comment.is_null ? std::nullopt : std::optional(op.comment.value);
  std::string old_logical = col->logical;
  if (!op.name.empty()) col->logical = op.name.value;
  std::optional<size_t> add_index = Duplicate(*t, *col, op.up.value_or(""), op.down.value_or(""));
  if (!add_index) return;
  VColumn* copy = col;
  // The copy's own new constraints (named by the plan) go on its ADD COLUMN.
  auto& add = std::get<db::AddColumnStep>(start_[*add_index].body);
  if (op.check) {
    // The check may name the column by its old or its new name.
    add.column.checks.push_back({op.check->name.value,
                                 Renamed(op.check->constraint, db::SqlKind::kExpression,
                                         {{copy->logical, copy->physical}, {old_logical, copy->physical}},
                                         "check '" + op.check->name.value + "'"),
                                 op.check->no_inherit});
    Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, op.check->name.value});
  }
  if (op.references && !RefusePartitioned(*t, op.references->name.loc,
                                          "PostgreSQL cannot add a foreign key NOT VALID there; add it in a later "
                                          "migration")) {
    return;
  }
  if (op.unique && !RefusePartitioned(*t, op.unique->name.loc,
                                      "PostgreSQL cannot make a unique index built without blocking writes into a "
                                      "constraint there; use create_index with unique: true")) {
    return;
  }
  if (op.references) {
    db::ForeignKeySpec fk = FkFromColumnRef(*op.references, copy->physical);
    add.column.references.push_back(fk);
    Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, fk.name});
  }
  if (op.unique) {
    db::IndexSpec idx;
    idx.name = op.unique->name.value;
    idx.table = t->physical;
    idx.unique = true;
    idx.elements.push_back({copy->physical});
    if (index_names_.count(idx.name) || (t->info && t->info->FindConstraint(idx.name))) {
      Error(op.unique->name.loc, "index or constraint '" + idx.name + "' already exists", StatusCode::kAlreadyExists);
    }
    index_names_.insert(idx.name);
    Start(db::CreateIndexStep{idx}, db::DropIndexStep{t->physical, idx.name});
    Complete(kStageRenameObjects, db::AttachIndexConstraintStep{t->physical, idx.name, idx.name, false, false, false});
  }
}

}  // namespace sluice::engine::internal
