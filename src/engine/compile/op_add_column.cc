// add_column.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::AddColumn& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  const plan::ColumnDef& c = op.column;
  if (t->Find(c.name.value)) {
    Error(c.name.loc, "column '" + t->logical + "." + c.name.value + "' already exists", StatusCode::kAlreadyExists);
    return;
  }
  if (t->created) {
    // A table created by this plan has no rows and no old readers: the
    // column simply becomes part of its definition.
    auto spec = ColumnSpecFor(c, t, true);
    if (!spec) return;
    CreateStepOf(*t).columns.push_back(*spec);
    VColumn vc;
    vc.logical = vc.physical = c.name.value;
    vc.type = c.type;
    vc.not_null = !c.nullable;
    vc.default_expr = c.default_expr;
    vc.added = true;
    t->columns.push_back(vc);
    t->physical_columns.insert(vc.physical);
    return;
  }
  if (c.pk) {
    Error(c.loc, "add_column cannot add a primary key column to an existing table; add the column, then "
                 "create_constraint with type primary_key");
    return;
  }
  if (c.generated) {
    Error(c.loc, "add_column cannot add a generated or identity column to an existing table online: the "
                 "database would rewrite every row under an exclusive lock");
    return;
  }
  std::optional<std::string> up = op.up;
  bool volatile_default = c.default_expr && d_.IsVolatile(*c.default_expr);
  if (!up && volatile_default) up = *c.default_expr;  // fill existing rows by backfill, not by a rewrite
  if (!c.nullable && !up && !c.default_expr) {
    Error(c.loc, "column '" + t->logical + "." + c.name.value +
                     "' is NOT NULL (pgroll columns are NOT NULL unless 'nullable: true') but has neither 'up' nor "
                     "'default', so existing rows would have no value; add 'up: <expression>' or 'default', or "
                     "set 'nullable: true'");
    return;
  }
  if (!up && !c.nullable && c.default_expr) {
    // NOT NULL DEFAULT <constant>: a catalog-only change on both databases.
  }
  if (up && !RequireKey(*t, op.table.loc)) return;

  db::ColumnSpec spec = *ColumnSpecFor(c, t, false);
  std::string phys = PickPhysicalColumn(*t, c.name.value);
  spec.name = phys;
  spec.unique = false;
  for (auto& chk : spec.checks) {
    chk.expr = Renamed(chk.expr, db::SqlKind::kExpression, {{c.name.value, phys}}, "check '" + chk.name + "'");
  }
  for (auto& fk : spec.references) fk.columns = {phys};
  // NOT NULL is declared inline only when the default fills every row
  // without a rewrite; otherwise a guard enforces it for new writes and
  // complete makes it final once the backfill has filled every row.
  bool inline_not_null = !c.nullable && !up && c.default_expr && !volatile_default;
  spec.not_null = inline_not_null;
  std::string guard;
  if (!c.nullable && !inline_not_null) {
    guard = GuardName(*t, c.name.value);
    spec.not_null_guard = guard;
  }
  if (!spec.references.empty() &&
      !RefusePartitioned(*t, c.loc, "PostgreSQL cannot add a foreign key NOT VALID there (it would scan the table "
                                    "under its lock); add the column, then the foreign key in a later migration")) {
    return;
  }
  if (c.unique && !RefusePartitioned(*t, c.loc, "PostgreSQL cannot make a unique index built without blocking "
                                                "writes into a constraint there; use create_index with unique: "
                                                "true (it must include the partition key)")) {
    return;
  }
  touched_.insert(t->physical);
  t->changed = true;
  Start(db::AddColumnStep{t->physical, spec}, db::DropColumnStep{t->physical, phys});
  for (const auto& chk : spec.checks) Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, chk.name});
  for (const auto& fk : spec.references) Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, fk.name});
  if (!guard.empty()) {
    t->not_null_guards.push_back(phys);
    Start(db::AddNotNullGuardStep{t->physical, phys, guard}, db::DropNotNullGuardStep{t->physical, phys, guard});
    Complete(kStageFinalize, db::FinalizeNotNullStep{t->physical, phys, guard});
  }
  if (c.unique) {
    db::IndexSpec idx;
    idx.name = t->physical + "_" + c.name.value + "_key";
    idx.table = t->physical;
    idx.unique = true;
    idx.elements.push_back({phys});
    if (index_names_.count(idx.name)) {
      Error(c.loc, "index '" + idx.name + "' (for unique: true) already exists", StatusCode::kAlreadyExists);
    }
    index_names_.insert(idx.name);
    Start(db::CreateIndexStep{idx}, db::DropIndexStep{t->physical, idx.name});
    Complete(kStageFinalize, db::AttachIndexConstraintStep{t->physical, idx.name, idx.name, false, false, false});
  }
  VColumn vc;
  vc.logical = c.name.value;
  vc.physical = phys;
  vc.type = c.type;
  vc.not_null = !c.nullable;
  vc.default_expr = c.default_expr;
  vc.comment = c.comment;
  vc.added = true;
  t->columns.push_back(vc);
  if (up) AddForward(*t, phys, *up);
}

}  // namespace sluice::engine::internal
