// Helpers the operations share: names, keys, partitions, copies of columns
// (Duplicate) and groups of copies (BeginGroup / CarryOverGroup).
#include "engine/compile/compiler.h"

namespace sluice::engine::internal {

// Identifiers are at most 63 bytes on PostgreSQL: longer generated names
// keep a hash of the whole so they stay distinct.
std::string ShortName(const std::string& name) {
  if (name.size() <= 63) return name;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  char buf[20];
  snprintf(buf, sizeof buf, "_%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
  return name.substr(0, 63 - 9) + buf;
}

bool Compiler::RequireNotPartition(const VTable& t, plan::SourceLoc loc) {
  if (!t.info || t.info->partition_of.empty()) return true;
  Error(loc, "table '" + t.logical + "' is a partition of '" + t.info->partition_of + "'; change the partitioned "
             "table instead", StatusCode::kFailedPrecondition);
  return false;
}

bool Compiler::RefusePartitioned(const VTable& t, plan::SourceLoc loc, const std::string& what) {
  if (!Partitioned(t)) return true;
  Error(loc, "table '" + t.logical + "' is partitioned, and " + what, StatusCode::kFailedPrecondition);
  return false;
}

bool Compiler::PartitionIndexes(const std::string& table, const std::string& index, const std::string& original,
                                const std::map<std::string, std::string>& renames,
                                std::vector<db::PartitionIndex>* out,
                                std::vector<std::pair<std::string, std::string>>* child_renames) {
  const db::TableInfo* ti = schema_.FindTable(table);
  if (!ti) return false;
  if (static_cast<int>(ti->partitions.size()) != ti->partition_count) {
    Error(op_->loc, "table '" + table + "' has partitions outside schema '" + schema_.name + "'; sluice builds an "
                    "index on a partitioned table partition by partition and sees only that schema",
          StatusCode::kFailedPrecondition);
    return false;
  }
  for (const auto& p : ti->partitions) {
    const db::TableInfo* pi = schema_.FindTable(p);
    if (!pi) return false;
    db::PartitionIndex px;
    px.table = p;
    px.parent = index;
    px.partitioned = pi->partitioned;
    std::string child_original;
    if (!original.empty()) {
      const db::IndexInfo* child = nullptr;
      for (const auto& i : pi->indexes) {
        if (i.parent_index == original) child = &i;
      }
      if (!child || child->definition.empty()) {
        Error(op_->loc, "index '" + original + "' has no index on partition '" + p + "' attached to it, so sluice "
                        "cannot copy it partition by partition; attach one (ALTER INDEX " + original +
                        " ATTACH PARTITION ...) first",
              StatusCode::kFailedPrecondition);
        return false;
      }
      child_original = child->name;
      px.name = d_.NewColumnName(child->name);
      const std::string what = "cannot carry index '" + child->name + "' over to the copy";
      px.raw_definition = Renamed(child->definition, db::SqlKind::kIndexDefinition, renames, what);
      auto named = d_.RenameIndex(px.raw_definition, child->name, px.name);
      if (!named.ok()) {
        Error(op_->loc, what + ": " + named.status().message(), named.status().code());
        return false;
      }
      px.raw_definition = *named;
      child_renames->push_back({px.name, child->name});
    } else {
      px.name = ShortName(index + "_" + p);
    }
    if (index_names_.count(px.name) || NameTakenAsRelation(px.name)) {
      Error(op_->loc, "an index or relation named '" + px.name + "' (for partition '" + p + "') already exists",
            StatusCode::kAlreadyExists);
      return false;
    }
    index_names_.insert(px.name);
    out->push_back(px);
    if (pi->partitioned && !PartitionIndexes(p, px.name, child_original, renames, out, child_renames)) return false;
  }
  return true;
}

db::ForeignKeySpec Compiler::FkFromColumnRef(const plan::ForeignKeyReference& r, const std::string& column) {
  db::ForeignKeySpec fk;
  fk.name = r.name.value;
  fk.columns = {column};
  fk.on_delete = r.on_delete;
  fk.on_update = r.on_update;
  fk.match_type = r.match_type;
  fk.deferrable = r.deferrable;
  fk.initially_deferred = r.initially_deferred;
  VTable* rt = FindTable(r.table.value);
  if (!rt) {
    RequireTable(r.table, false);
    return fk;
  }
  fk.ref_table = rt->physical;
  VColumn* rc = RequireColumn(*rt, r.column);
  if (rc) fk.ref_columns = {rc->physical};
  return fk;
}

std::optional<db::ColumnSpec> Compiler::ColumnSpecFor(const plan::ColumnDef& c, VTable* owner, bool in_create) {
  db::ColumnSpec spec;
  spec.name = c.name.value;
  spec.type = c.type;
  spec.not_null = !c.nullable;
  spec.pk = c.pk;
  spec.unique = c.unique;
  spec.default_expr = c.default_expr;
  spec.comment = c.comment;
  if (c.generated) {
    if (c.generated->identity) {
      spec.identity = db::IdentitySpec{c.generated->user_specified_values == "ALWAYS", c.generated->sequence_options};
    } else {
      spec.generated_expr = c.generated->expression;
    }
  }
  if (c.check) spec.checks.push_back({c.check->name.value, c.check->constraint, c.check->no_inherit});
  if (c.references) spec.references.push_back(FkFromColumnRef(*c.references, c.name.value));
  (void)owner;
  (void)in_create;
  return spec;
}

void Compiler::AddForward(VTable& t, const std::string& target, const std::string& expr) {
  db::Forward f;
  f.target = target;
  f.expr = expr;
  f.volatile_expr = d_.IsVolatile(expr);
  auto reads = d_.ColumnsRead(expr);
  if (!reads.ok()) Error(op_->loc, "'up': " + reads.status().message(), reads.status().code());
  if (reads.ok() && t.info) {
    for (const auto& col : t.info->columns) {
      if (reads->count(d_.ColumnKey(col.name)) || reads->count("*")) f.reads.insert(col.name);
    }
  }
  f.origin = OriginWithLoc();
  // The operation's `fallback:` (add_column, alter_column: one column each).
  if (op_) {
    std::optional<std::string> fallback;
    if (const auto* a = std::get_if<plan::AlterColumn>(&op_->body)) fallback = a->fallback;
    if (const auto* a = std::get_if<plan::AddColumn>(&op_->body)) fallback = a->fallback;
    if (fallback) {
      CheckParses(*fallback, "'fallback'");
      f.fallback = *fallback;
    }
  }
  t.forward.push_back(std::move(f));
}

std::string Compiler::Renamed(const std::string& sql, db::SqlKind kind,
                              const std::map<std::string, std::string>& renames, const std::string& what) {
  auto r = d_.RenameColumns(sql, kind, renames);
  if (r.ok()) return *r;
  Error(op_->loc, what + ": " + r.status().message(), r.status().code());
  return sql;
}

void Compiler::CheckParses(const std::string& expr, const std::string& what) {
  auto r = d_.ColumnsRead(expr);
  if (!r.ok()) Error(op_->loc, what + ": " + r.status().message(), r.status().code());
}

std::optional<size_t> Compiler::Duplicate(VTable& t, VColumn& col, const std::string& up, const std::string& down,
                                          const std::string& skip_constraint) {
  std::vector<std::string> key = KeyOf(t);
  if (std::find(key.begin(), key.end(), col.physical) != key.end()) {
    Error(op_->loc, "column '" + t.logical + "." + col.logical +
                        "' is part of the table's key, which sluice uses to route writes between versions; "
                        "changing a key column online is not supported");
    return std::nullopt;
  }
  if (col.added || col.duplicated) {
    Error(op_->loc, "column '" + t.logical + "." + col.logical +
                        "' is already changed by an earlier operation of this plan; combine the changes into one "
                        "operation");
    return std::nullopt;
  }
  if (!RequireNotPartition(t, op_->loc)) return std::nullopt;
  if (const db::ColumnInfo* info = t.info ? t.info->FindColumn(col.physical) : nullptr;
      info && (info->identity || info->generated)) {
    Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is " +
                        (info->identity ? "an identity column" : "a generated column") +
                        "; sluice would replace it by a plain copy and lose that property, so it cannot change it "
                        "online",
          StatusCode::kFailedPrecondition);
    return std::nullopt;
  }
  const std::string origin = col.physical;
  const std::string n = PickPhysicalColumn(t, col.logical);
  col.duplicated = true;
  col.origin = origin;
  col.cause = CurrentCause();
  col.physical = n;
  t.changed = true;
  touched_.insert(t.physical);

  db::AddColumnStep add;
  add.table = t.physical;
  add.column.name = n;
  add.column.type = col.type;
  add.column.default_expr = col.default_expr;
  add.column.comment = col.comment;
  // PostgreSQL fills every existing row with an inline DEFAULT, so a unique
  // index on the copy (built at start, before the backfill) would see them
  // all equal: existing rows get their value from `up`, the default is set
  // afterwards for new rows only. (SQLite has no SET DEFAULT; its copies
  // keep the inline default.)
  std::optional<std::string> copy_default;
  if (d_.sets_defaults_after_add() && add.column.default_expr) {
    copy_default = add.column.default_expr;
    add.column.default_expr.reset();
  }

  // Carry over constraints and indexes that involve only this column.
  if (t.info) {
    for (const auto& con : t.info->constraints) {
      bool involves = std::find(con.columns.begin(), con.columns.end(), origin) != con.columns.end();
      if (!involves || con.name == skip_constraint) continue;
      if (con.type == db::ConstraintInfo::Type::kNotNull) continue;  // handled through not_null
      // A column's own CHECK goes with it; another CHECK that names it stops
      // databases that cannot drop such a column (SQLite) at complete.
      const bool own_check = con.type == db::ConstraintInfo::Type::kCheck && con.declared_on == origin;
      if (con.type == db::ConstraintInfo::Type::kCheck && !own_check && !d_.drops_columns_named_by_checks()) {
        Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is named by CHECK constraint '" + con.name +
                            "', declared " + (con.declared_on.empty() ? "on the table" : "on column '" +
                            con.declared_on + "'") + "; " + std::string(d_.display_name()) + " cannot drop the old column while that constraint names it, so complete "
                            "would fail. Declare the check on the column itself (in a new table), or drop it first",
              StatusCode::kFailedPrecondition);
        continue;
      }
      if (con.columns.size() != 1 && !own_check && con.type != db::ConstraintInfo::Type::kPrimaryKey) {
        if (InGroup(con.columns) && (con.type == db::ConstraintInfo::Type::kCheck ||
                                     con.type == db::ConstraintInfo::Type::kForeignKey ||
                                     con.type == db::ConstraintInfo::Type::kUnique)) {
          // Every column is copied by this operation: carried over once all
          // copies exist (unique constraints through their index).
          if (con.type != db::ConstraintInfo::Type::kUnique) group_constraints_.insert(con.name);
          continue;
        }
        Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is part of the multi-column constraint '" +
                            con.name + "' (" + Join(con.columns) +
                            "); sluice cannot yet carry a multi-column constraint over to a new copy of one of "
                            "its columns. Drop the constraint in an earlier migration, or change the columns "
                            "together with create_constraint/drop_multicolumn_constraint");
        continue;
      }
      std::string temp = d_.CopiedConstraintName(con.name);
      if (con.type == db::ConstraintInfo::Type::kCheck) {
        add.column.checks.push_back({temp,
                                     Renamed(con.check_expr, db::SqlKind::kExpression, {{origin, n}},
                                             "cannot carry CHECK constraint '" + con.name + "' over to the copy"),
                                     false});
        Complete(kStageFinalize, db::ValidateConstraintStep{t.physical, temp});
        if (temp != con.name) Complete(kStageRenameObjects, db::RenameConstraintStep{t.physical, temp, con.name});
      } else if (con.type == db::ConstraintInfo::Type::kForeignKey && con.fk) {
        if (!RefusePartitioned(t, op_->loc, "PostgreSQL cannot add the copy of foreign key '" + con.name +
                                                "' NOT VALID there (it would scan the table under its lock); drop "
                                                "the foreign key before this migration and add it back after")) {
          continue;
        }
        db::ForeignKeySpec fk = *con.fk;
        fk.name = temp;
        fk.columns = {n};
        add.column.references.push_back(fk);
        Complete(kStageFinalize, db::ValidateConstraintStep{t.physical, temp});
        if (temp != con.name) Complete(kStageRenameObjects, db::RenameConstraintStep{t.physical, temp, con.name});
      } else if (con.type == db::ConstraintInfo::Type::kUnique) {
        // Rebuilt from its index below.
      } else {
        Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is in constraint '" + con.name +
                            "', which sluice cannot carry over to a new copy of the column");
      }
    }
  }
  std::string guard;
  if (col.not_null) {
    guard = GuardName(t, col.logical);
    add.column.not_null_guard = guard;
  }
  size_t add_index = start_.size();
  Start(add, db::DropColumnStep{t.physical, n});
  if (copy_default) Start(db::SetDefaultStep{t.physical, n, copy_default}, std::nullopt);

  if (t.info) {
    for (const auto& idx : t.info->indexes) {
      // Every column the index reads: keys, expressions, predicate, INCLUDE.
      const std::vector<std::string>& reads = idx.ColumnsRead();
      bool involves = std::find(reads.begin(), reads.end(), origin) != reads.end();
      if (!involves || idx.primary) continue;
      if (!skip_constraint.empty() && (idx.constraint == skip_constraint || idx.name == skip_constraint)) continue;
      if (reads.size() != 1) {
        const db::ConstraintInfo* backs = idx.constraint.empty() ? nullptr : t.info->FindConstraint(idx.constraint);
        if (InGroup(reads) && (!backs || backs->type == db::ConstraintInfo::Type::kUnique)) {
          group_indexes_.insert(idx.name);
          continue;
        }
        std::vector<std::string> others;
        for (const auto& r : reads) {
          if (r != origin) others.push_back(r);
        }
        Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is read by index '" + idx.name +
                            "', which also reads " + Join(others) + " (" + idx.definition +
                            "); sluice cannot yet carry an index that reads several columns over to a new copy of "
                            "one of them, and complete's DROP COLUMN would remove it. Drop the index first "
                            "(drop_index), then recreate it afterwards",
              StatusCode::kFailedPrecondition);
        continue;
      }
      if (idx.definition.empty() && !idx.columns.empty() && idx.columns[0] != origin) {
        Error(op_->loc, "index '" + idx.name + "' reads column '" + t.logical + "." + col.logical +
                            "' in an expression, and its definition is unknown, so sluice cannot carry it over",
              StatusCode::kFailedPrecondition);
        continue;
      }
      db::IndexSpec spec;
      spec.name = d_.NewColumnName(idx.name);
      spec.table = t.physical;
      spec.unique = idx.unique;
      spec.elements.push_back(db::IndexElement{n});
      if (!idx.definition.empty()) {
        // The database's own definition keeps method, order, predicate...
        const std::string what = "cannot carry index '" + idx.name + "' over to the copy";
        spec.raw_definition = Renamed(idx.definition, db::SqlKind::kIndexDefinition, {{origin, n}}, what);
        auto named = d_.RenameIndex(spec.raw_definition, idx.name, spec.name);
        if (named.ok()) spec.raw_definition = *named;
        if (!named.ok()) Error(op_->loc, what + ": " + named.status().message(), named.status().code());
      }
      if (!idx.constraint.empty() && !d_.drops_inline_unique_columns()) {
        Error(op_->loc, "column '" + t.logical + "." + col.logical + "' is declared UNIQUE in its CREATE TABLE "
                            "statement; SQLite cannot drop such a column, so it cannot be replaced by a new copy");
        continue;
      }
      if (!idx.constraint.empty() &&
          !RefusePartitioned(t, op_->loc, "PostgreSQL cannot turn the copy of the index of constraint '" +
                                              idx.constraint + "' into a constraint there (ADD CONSTRAINT ... USING "
                                              "INDEX); drop the constraint before this migration and add it back "
                                              "after")) {
        continue;
      }
      db::CreateIndexStep create{spec, {}};
      std::vector<std::pair<std::string, std::string>> child_renames;
      if (Partitioned(t) &&
          !PartitionIndexes(t.physical, spec.name, idx.name, {{origin, n}}, &create.partitions, &child_renames)) {
        continue;
      }
      index_names_.insert(spec.name);
      carried_indexes_.insert(idx.name);
      Start(create, db::DropIndexStep{t.physical, spec.name, Partitioned(t)});
      for (const auto& [copy, original] : child_renames) {
        Complete(kStageRenameObjects, db::RenameIndexStep{t.physical, copy, original, ""});
      }
      // The original goes before the old column does (an index that backs a
      // constraint goes with its constraint). Where DDL is not one
      // transaction, DROP INDEX CONCURRENTLY would run after the main
      // transaction, i.e. after the copy took the original's name, and drop
      // the copy: there the old column's DROP COLUMN takes its index along.
      if (idx.constraint.empty()) {
        if (d_.transactional_ddl()) Complete(kStageDropIndex, db::DropIndexStep{t.physical, idx.name});
      } else {
        Complete(kStageDropIndex, db::DropConstraintStep{t.physical, idx.constraint});
      }
      if (!idx.constraint.empty()) {
        Complete(kStageRenameObjects,
                 db::AttachIndexConstraintStep{t.physical, idx.constraint, spec.name, false, false, false});
      } else {
        // rebuild_sql names the copy's column; BuildCompletion points it at
        // the column's final name.
        std::string rebuild;
        if (!idx.definition.empty()) {
          rebuild = Renamed(idx.definition, db::SqlKind::kIndexDefinition, {{origin, n}},
                            "cannot rebuild index '" + idx.name + "'");
        }
        Complete(kStageRenameObjects, db::RenameIndexStep{t.physical, spec.name, idx.name, rebuild});
      }
    }
  }

  if (!guard.empty()) {
    t.not_null_guards.push_back(n);
    Start(db::AddNotNullGuardStep{t.physical, n, guard}, db::DropNotNullGuardStep{t.physical, n, guard});
    Complete(kStageFinalize, db::FinalizeNotNullStep{t.physical, n, guard});
  }
  group_copies_[origin] = n;

  AddForward(t, n, up.empty() ? d_.Quote(origin) : up);
  if (!down.empty()) CheckParses(down, "'down' of column '" + col.logical + "'");
  t.backward.push_back({origin, down.empty() ? d_.Quote(col.logical) : down, OriginWithLoc()});
  return add_index;
}

void Compiler::BeginGroup(const std::vector<std::string>& origins) {
  group_ = std::set<std::string>(origins.begin(), origins.end());
  group_copies_.clear();
  group_constraints_.clear();
  group_indexes_.clear();
}

bool Compiler::InGroup(const std::vector<std::string>& columns) const {
  if (group_.size() < 2 || columns.empty()) return false;
  for (const auto& c : columns) {
    if (!group_.count(c)) return false;
  }
  return true;
}

void Compiler::CarryOverGroup(VTable& t) {
  auto copies_of = [&](const std::vector<std::string>& cols, std::vector<std::string>* out) {
    for (const auto& c : cols) {
      auto it = group_copies_.find(c);
      if (it == group_copies_.end()) return false;  // a Duplicate failed; already reported
      out->push_back(it->second);
    }
    return true;
  };
  auto rename_all = [&](const std::string& text, db::SqlKind kind, const std::string& name) {
    return Renamed(text, kind, group_copies_, "cannot carry '" + name + "' over to the copies");
  };
  if (t.info) {
    for (const auto& con : t.info->constraints) {
      if (!group_constraints_.count(con.name)) continue;
      std::vector<std::string> cols;
      if (!copies_of(con.columns, &cols)) continue;
      std::string temp = d_.CopiedConstraintName(con.name);
      if (con.type == db::ConstraintInfo::Type::kCheck) {
        std::string expr = rename_all(con.check_expr, db::SqlKind::kExpression, con.name);
        Start(db::AddCheckStep{t.physical, {temp, expr, false}, true}, db::DropConstraintStep{t.physical, temp});
      } else if (con.fk) {
        if (!RefusePartitioned(t, op_->loc, "PostgreSQL cannot add the copy of foreign key '" + con.name +
                                                "' NOT VALID there; drop it before this migration and add it back "
                                                "after")) {
          continue;
        }
        db::ForeignKeySpec fk = *con.fk;
        fk.name = temp;
        fk.columns = cols;
        Start(db::AddForeignKeyStep{t.physical, fk, true}, db::DropConstraintStep{t.physical, temp});
      } else {
        continue;
      }
      Complete(kStageFinalize, db::ValidateConstraintStep{t.physical, temp});
      if (temp != con.name) Complete(kStageRenameObjects, db::RenameConstraintStep{t.physical, temp, con.name});
    }
    for (const auto& idx : t.info->indexes) {
      if (!group_indexes_.count(idx.name)) continue;
      std::vector<std::string> cols, reads;
      if (!copies_of(idx.ColumnsRead(), &reads)) continue;
      for (const auto& c : idx.columns) {
        auto it = group_copies_.find(c);
        cols.push_back(it == group_copies_.end() ? c : it->second);
      }
      if (!RefusePartitioned(t, op_->loc, "sluice cannot yet copy index '" + idx.name + "' (several of its columns "
                                              "change) there; drop it before this migration and recreate it after")) {
        continue;
      }
      if (!idx.constraint.empty() && !d_.drops_inline_unique_columns()) {
        Error(op_->loc, "the columns of table '" + t.logical + "' are declared UNIQUE (" + Join(idx.columns) +
                            ") in its CREATE TABLE statement; SQLite cannot drop such columns, so they cannot be "
                            "replaced by new copies");
        continue;
      }
      db::IndexSpec spec;
      spec.name = d_.NewColumnName(idx.name);
      spec.table = t.physical;
      spec.unique = idx.unique;
      for (const auto& c : cols) spec.elements.push_back(db::IndexElement{c});
      if (!idx.definition.empty()) {
        spec.raw_definition = rename_all(idx.definition, db::SqlKind::kIndexDefinition, idx.name);
        auto named = d_.RenameIndex(spec.raw_definition, idx.name, spec.name);
        if (named.ok()) spec.raw_definition = *named;
        if (!named.ok()) {
          Error(op_->loc, "index '" + idx.name + "': " + named.status().message(), named.status().code());
        }
      }
      index_names_.insert(spec.name);
      carried_indexes_.insert(idx.name);
      Start(db::CreateIndexStep{spec, {}}, db::DropIndexStep{t.physical, spec.name});
      if (idx.constraint.empty()) {
        // See Duplicate: without transactional DDL the column drop takes it.
        if (d_.transactional_ddl()) Complete(kStageDropIndex, db::DropIndexStep{t.physical, idx.name});
        std::string rebuild;
        if (!idx.definition.empty()) rebuild = rename_all(idx.definition, db::SqlKind::kIndexDefinition, idx.name);
        Complete(kStageRenameObjects, db::RenameIndexStep{t.physical, spec.name, idx.name, rebuild});
      } else {
        Complete(kStageDropIndex, db::DropConstraintStep{t.physical, idx.constraint});
        Complete(kStageRenameObjects,
                 db::AttachIndexConstraintStep{t.physical, idx.constraint, spec.name, false, false, false});
      }
    }
  }
  BeginGroup({});
}

}  // namespace sluice::engine::internal
