// create_constraint, drop_constraint, drop_multicolumn_constraint and
// rename_constraint.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::CreateConstraint& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  if (t->info && t->info->FindConstraint(op.name.value)) {
    Error(op.name.loc, "constraint '" + op.name.value + "' already exists on '" + t->logical + "'",
          StatusCode::kAlreadyExists);
    return;
  }
  db::TableConstraintSpec spec;
  spec.name = op.name.value;
  spec.type = ToSpecType(op.type);
  spec.check = op.check;
  spec.deferrable = op.deferrable;
  spec.initially_deferred = op.initially_deferred;
  spec.nulls_not_distinct = op.nulls_not_distinct;
  spec.no_inherit = op.no_inherit;
  spec.storage_parameters = op.index_parameters.storage_parameters;
  spec.tablespace = op.index_parameters.tablespace;
  for (const auto& inc : op.index_parameters.include_columns) {
    if (VColumn* c = RequireColumn(*t, inc)) spec.include.push_back(c->physical);
  }
  if (op.exclude) {
    spec.exclude_method = op.exclude->index_method;
    spec.exclude_elements = op.exclude->elements;
    spec.exclude_predicate = op.exclude->predicate;
  }
  std::vector<VColumn*> cols;
  for (const auto& c : op.columns) {
    VColumn* vc = RequireColumn(*t, c);
    if (!vc) return;
    cols.push_back(vc);
  }
  auto make_fk = [&](const std::vector<std::string>& physical_cols) {
    db::ForeignKeySpec fk;
    fk.name = op.name.value;
    fk.columns = physical_cols;
    fk.on_delete = op.references->on_delete;
    fk.on_update = op.references->on_update;
    fk.match_type = op.references->match_type;
    fk.deferrable = op.deferrable;
    fk.initially_deferred = op.initially_deferred;
    for (const auto& s : op.references->on_delete_set_columns) fk.on_delete_set_columns.push_back(s.value);
    if (VTable* rt = RequireTable(op.references->table, false)) {
      fk.ref_table = rt->physical;
      for (const auto& rc : op.references->columns) {
        if (VColumn* c = RequireColumn(*rt, rc)) fk.ref_columns.push_back(c->physical);
      }
    }
    return fk;
  };
  if (t->created) {
    for (VColumn* c : cols) spec.columns.push_back(c->physical);
    if (op.references) spec.fk = make_fk(spec.columns);
    CreateStepOf(*t).constraints.push_back(spec);
    return;
  }
  if (op.type == plan::ConstraintType::kPrimaryKey && !t->info->primary_key.empty()) {
    Error(op.name.loc, "table '" + t->logical + "' already has a primary key");
    return;
  }
  if (op.type == plan::ConstraintType::kExclude) {
    // Exclusion constraints cannot be added NOT VALID; they are built at
    // start on the live columns.
    touched_.insert(t->physical);
    Start(db::AddTableConstraintStep{t->physical, spec}, db::DropConstraintStep{t->physical, spec.name});
    return;
  }
  // pgroll semantics: the constrained columns get new copies (filled through
  // `up`, written back through `down`), the constraint is built on the copies
  // without blocking writes, and complete swaps them in.
  std::vector<std::string> phys;
  std::vector<std::string> logical_before;
  size_t last_add = 0;
  {
    std::vector<std::string> origins;
    for (VColumn* c : cols) origins.push_back(c->physical);
    BeginGroup(origins);
  }
  for (VColumn* c : cols) {
    auto up = op.up.count(c->logical) ? op.up.at(c->logical) : "";
    auto down = op.down.count(c->logical) ? op.down.at(c->logical) : "";
    if (op.type == plan::ConstraintType::kPrimaryKey) c->not_null = true;
    logical_before.push_back(c->logical);
    auto add_index = Duplicate(*t, *c, up, down);
    if (!add_index) return;
    last_add = *add_index;
    phys.push_back(c->physical);
  }
  CarryOverGroup(*t);
  // Checks and single-column foreign keys travel with the last copy's ADD
  // COLUMN, so every database can declare them without a table rebuild.
  auto last_column = [&]() -> db::ColumnSpec& { return std::get<db::AddColumnStep>(start_[last_add].body).column; };
  spec.columns = phys;
  switch (op.type) {
    case plan::ConstraintType::kUnique:
    case plan::ConstraintType::kPrimaryKey: {
      db::IndexSpec idx;
      idx.name = op.name.value;
      idx.table = t->physical;
      idx.unique = true;
      idx.nulls_not_distinct = op.nulls_not_distinct;
      idx.storage_parameters = op.index_parameters.storage_parameters;
      idx.tablespace = op.index_parameters.tablespace;
      idx.include = spec.include;
      for (const auto& p : phys) idx.elements.push_back({p});
      index_names_.insert(idx.name);
      Start(db::CreateIndexStep{idx}, db::DropIndexStep{t->physical, idx.name});
      Complete(kStageRenameObjects,
               db::AttachIndexConstraintStep{t->physical, op.name.value, idx.name,
                                             op.type == plan::ConstraintType::kPrimaryKey, op.deferrable,
                                             op.initially_deferred});
      break;
    }
    case plan::ConstraintType::kCheck: {
      // The check names the logical columns; point it at their copies.
      std::map<std::string, std::string> copies;
      for (size_t i = 0; i < cols.size(); ++i) copies[logical_before[i]] = phys[i];
      std::string expr = Renamed(op.check, db::SqlKind::kExpression, copies, "check '" + op.name.value + "'");
      last_column().checks.push_back({op.name.value, expr, op.no_inherit});
      Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, op.name.value});
      break;
    }
    case plan::ConstraintType::kForeignKey: {
      db::ForeignKeySpec fk = make_fk(phys);
      if (fk.ref_columns.size() != fk.columns.size()) {
        Error(op.name.loc, "foreign key '" + op.name.value + "' has " + std::to_string(fk.columns.size()) +
                               " columns but references " + std::to_string(fk.ref_columns.size()));
      }
      if (fk.columns.size() == 1) {
        last_column().references.push_back(fk);
      } else {
        Start(db::AddForeignKeyStep{t->physical, fk, true}, db::DropConstraintStep{t->physical, fk.name});
      }
      Complete(kStageFinalize, db::ValidateConstraintStep{t->physical, fk.name});
      break;
    }
    case plan::ConstraintType::kExclude:
      break;
  }
}

void Compiler::DropConstraintColumns(VTable& t, const plan::Name& name, const std::map<std::string, std::string>& up,
                                     const std::map<std::string, std::string>& down) {
  const db::ConstraintInfo* con = t.info ? t.info->FindConstraint(name.value) : nullptr;
  if (!con) {
    std::vector<std::string> names;
    if (t.info) {
      for (const auto& c : t.info->constraints) {
        if (c.type != db::ConstraintInfo::Type::kNotNull) names.push_back(c.name);
      }
    }
    Error(name.loc, "constraint '" + name.value + "' does not exist on table '" + t.logical + "'" +
                        (names.empty() ? "" : "; constraints: " + Join(names)),
          StatusCode::kNotFound);
    return;
  }
  if (con->type == db::ConstraintInfo::Type::kPrimaryKey) {
    Error(name.loc, "dropping the primary key '" + name.value + "' online is not supported");
    return;
  }
  BeginGroup(con->columns);
  for (const auto& col_name : con->columns) {
    VColumn* vc = nullptr;
    for (auto& c : t.columns) {
      if (c.physical == col_name) vc = &c;
    }
    if (!vc) continue;
    std::string logical = vc->logical;
    std::string u = up.count(logical) ? up.at(logical) : "";
    std::string dn = down.count(logical) ? down.at(logical) : "";
    if (!Duplicate(t, *vc, u, dn, name.value)) return;
  }
  CarryOverGroup(t);
}

void Compiler::Op(const plan::DropConstraint& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  const db::ConstraintInfo* con = t->info ? t->info->FindConstraint(op.name.value) : nullptr;
  std::map<std::string, std::string> up, down;
  if (con && con->columns.size() == 1) {
    std::string logical = con->columns[0];
    for (const auto& c : t->columns) {
      if (c.physical == con->columns[0]) logical = c.logical;
    }
    if (!op.up.empty()) up[logical] = op.up;
    if (!op.down.empty()) down[logical] = op.down;
  } else if (con && con->columns.size() > 1) {
    Error(op.name.loc, "constraint '" + op.name.value + "' spans several columns; use drop_multicolumn_constraint");
    return;
  }
  DropConstraintColumns(*t, op.name, up, down);
}

void Compiler::Op(const plan::DropMultiColumnConstraint& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  DropConstraintColumns(*t, op.name, op.up, op.down);
}

void Compiler::Op(const plan::RenameConstraint& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  if (!t->info || !t->info->FindConstraint(op.from.value)) {
    Error(op.from.loc, "constraint '" + op.from.value + "' does not exist on table '" + t->logical + "'",
          StatusCode::kNotFound);
    return;
  }
  if (t->info->FindConstraint(op.to.value)) {
    Error(op.to.loc, "constraint '" + op.to.value + "' already exists on table '" + t->logical + "'",
          StatusCode::kAlreadyExists);
    return;
  }
  touched_.insert(t->physical);
  Start(db::RenameConstraintStep{t->physical, op.from.value, op.to.value},
        db::RenameConstraintStep{t->physical, op.to.value, op.from.value});
}

}  // namespace sluice::engine::internal
