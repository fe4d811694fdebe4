// create_table.
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

void Compiler::Op(const plan::CreateTable& op) {
  if (NameTakenAsRelation(op.name.value)) {
    Error(op.name.loc, "table '" + op.name.value + "' already exists", StatusCode::kAlreadyExists);
    return;
  }
  db::CreateTableStep step;
  step.table = op.name.value;
  step.comment = op.comment;
  VTable t;
  t.logical = t.physical = op.name.value;
  t.created = t.changed = true;
  for (const auto& c : op.columns) {
    auto spec = ColumnSpecFor(c, &t, true);
    if (!spec) continue;
    step.columns.push_back(*spec);
    VColumn vc;
    vc.logical = vc.physical = c.name.value;
    vc.type = c.type;
    vc.not_null = !c.nullable || c.pk;
    vc.default_expr = c.default_expr;
    vc.comment = c.comment;
    vc.added = true;
    t.columns.push_back(vc);
    t.physical_columns.insert(vc.physical);
  }
  for (const auto& c : op.constraints) {
    db::TableConstraintSpec spec;
    spec.name = c.name.value;
    spec.type = ToSpecType(c.type);
    for (const auto& col : c.columns) {
      if (!t.Find(col.value)) {
        Error(col.loc, "constraint '" + c.name.value + "' names column '" + col.value + "', which table '" +
                           op.name.value + "' does not define",
              StatusCode::kNotFound);
      }
      spec.columns.push_back(col.value);
    }
    spec.check = c.check;
    spec.deferrable = c.deferrable;
    spec.initially_deferred = c.initially_deferred;
    spec.nulls_not_distinct = c.nulls_not_distinct;
    spec.no_inherit = c.no_inherit;
    spec.storage_parameters = c.index_parameters.storage_parameters;
    spec.tablespace = c.index_parameters.tablespace;
    for (const auto& inc : c.index_parameters.include_columns) spec.include.push_back(inc.value);
    if (c.exclude) {
      spec.exclude_method = c.exclude->index_method;
      spec.exclude_elements = c.exclude->elements;
      spec.exclude_predicate = c.exclude->predicate;
    }
    if (c.references) {
      db::ForeignKeySpec fk;
      fk.name = c.name.value;
      fk.columns = spec.columns;
      fk.on_delete = c.references->on_delete;
      fk.on_update = c.references->on_update;
      fk.match_type = c.references->match_type;
      fk.deferrable = c.deferrable;
      fk.initially_deferred = c.initially_deferred;
      for (const auto& s : c.references->on_delete_set_columns) fk.on_delete_set_columns.push_back(s.value);
      if (c.references->table.value == op.name.value) {
        fk.ref_table = op.name.value;
        for (const auto& rc : c.references->columns) fk.ref_columns.push_back(rc.value);
      } else if (VTable* rt = RequireTable(c.references->table, false)) {
        fk.ref_table = rt->physical;
        for (const auto& rc : c.references->columns) {
          if (VColumn* col = RequireColumn(*rt, rc)) fk.ref_columns.push_back(col->physical);
        }
      }
      if (fk.ref_columns.size() != fk.columns.size() && !fk.ref_columns.empty()) {
        Error(c.loc, "foreign key '" + c.name.value + "' has " + std::to_string(fk.columns.size()) +
                         " columns but references " + std::to_string(fk.ref_columns.size()));
      }
      spec.fk = fk;
    }
    step.constraints.push_back(spec);
  }
  touched_.insert(t.physical);
  t.create_step = start_.size();
  Start(step, db::DropTableStep{t.physical});
  tables_.push_back(std::move(t));
}

}  // namespace sluice::engine::internal
