#include "engine/compile.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>

#include "engine/dependents.h"

namespace sluice::engine {
namespace {

using plan::SourceLoc;

// A column of the new version while the plan is being applied.
struct VColumn {
  std::string logical;
  std::string physical;
  std::string type;
  bool not_null = false;
  std::optional<std::string> default_expr;
  std::optional<std::string> comment;
  bool added = false;       // physical column created by this migration
  bool duplicated = false;  // new copy of an old column (alter_column & co)
  std::string origin;       // the old physical column a copy replaces
  Cause cause;              // the operation that made the copy
};

// A table of the new version while the plan is being applied.
struct VTable {
  std::string logical;
  std::string physical;
  bool created = false;
  bool changed = false;
  size_t create_step = 0;  // index in start_ of its CreateTableStep (created)
  const db::TableInfo* info = nullptr;
  std::vector<VColumn> columns;
  std::set<std::string> physical_columns;  // every physical column, old and new
  std::vector<db::Forward> forward;
  std::vector<db::Backward> backward;
  std::vector<std::string> not_null_guards;

  VColumn* Find(const std::string& logical_name) {
    for (auto& c : columns) {
      if (c.logical == logical_name) return &c;
    }
    return nullptr;
  }
};

// Marks rows written through the new version (see TableMapping::write_flag).
constexpr const char* kWriteFlag = "_sluice_new_write";

enum CompleteStage {
  kStageFinalize = 0,   // validate constraints, NOT NULL, attach unique indexes
  kStageUnpin,          // objects that depend on old columns: saved and dropped, or re-owned
  kStageDropIndex,
  kStageDropColumn,
  kStageRenameColumn,
  kStageRenameObjects,  // copies of indexes/constraints take the original names
  kStageDropTable,
  kStageRenameTable,
  kStageRepin,          // views saved by kStageUnpin, recreated on the new columns
  kStageRawSql,
  kStageCount,
};

db::TableConstraintSpec::Type ToSpecType(plan::ConstraintType t) {
  switch (t) {
    case plan::ConstraintType::kUnique: return db::TableConstraintSpec::Type::kUnique;
    case plan::ConstraintType::kCheck: return db::TableConstraintSpec::Type::kCheck;
    case plan::ConstraintType::kPrimaryKey: return db::TableConstraintSpec::Type::kPrimaryKey;
    case plan::ConstraintType::kForeignKey: return db::TableConstraintSpec::Type::kForeignKey;
    case plan::ConstraintType::kExclude: return db::TableConstraintSpec::Type::kExclude;
  }
  return db::TableConstraintSpec::Type::kUnique;
}

std::string Join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

class Compiler {
 public:
  Compiler(const plan::Plan& p, const db::Schema& s, const db::Dialect& d, const CompileOptions& o)
      : plan_(p), schema_(s), d_(d), opts_(o) {}

  Result<CompiledMigration> Run();

 private:
  // --- diagnostics --------------------------------------------------------
  void Error(SourceLoc loc, std::string msg, StatusCode code = StatusCode::kInvalidPlan) {
    if (first_code_ == StatusCode::kOk) first_code_ = code;
    errors_.push_back({plan::Diagnostic::Severity::kError, plan_.file, loc, origin_ + ": " + msg});
  }
  void Warn(SourceLoc loc, std::string msg) {
    warnings_.push_back({plan::Diagnostic::Severity::kWarning, plan_.file, loc, origin_ + ": " + msg});
  }

  std::string OriginWithLoc() const {
    return op_ ? plan::FormatLoc(plan_.file, op_->loc) + ": " + origin_ : origin_;
  }

  // --- virtual schema -------------------------------------------------------
  VTable* FindTable(const std::string& logical) {
    for (auto& t : tables_) {
      if (t.logical == logical) return &t;
    }
    return nullptr;
  }
  // `for_change`: the operation changes the table (a foreign key's target
  // is only read).
  VTable* RequireTable(const plan::Name& n, bool for_change = true) {
    VTable* t = FindTable(n.value);
    if (t && for_change && t->info && !t->info->partition_of.empty()) {
      std::string root = t->info->partition_of;
      while (const db::TableInfo* up = schema_.FindTable(root)) {
        if (up->partition_of.empty()) break;
        root = up->partition_of;
      }
      Error(n.loc, "table '" + n.value + "' is a partition of '" + t->info->partition_of + "'; sluice changes a "
                       "partitioned table through its root: name '" + root + "' instead",
            StatusCode::kFailedPrecondition);
      return nullptr;
    }
    if (!t) {
      std::string hint;
      for (const auto& dropped : dropped_logical_) {
        if (dropped == n.value) hint = " (it is dropped or renamed by an earlier operation of this plan)";
      }
      if (hint.empty()) {
        std::vector<std::string> names;
        for (const auto& tt : tables_) names.push_back(tt.logical);
        hint = names.empty() ? " (the database has no tables)" : "; tables: " + Join(names);
      }
      Error(n.loc, "table '" + n.value + "' does not exist" + hint, StatusCode::kNotFound);
    }
    return t;
  }
  VColumn* RequireColumn(VTable& t, const plan::Name& n) {
    VColumn* c = t.Find(n.value);
    if (!c) {
      std::vector<std::string> names;
      for (const auto& col : t.columns) names.push_back(col.logical);
      Error(n.loc, "column '" + t.logical + "." + n.value + "' does not exist; columns: " + Join(names),
            StatusCode::kNotFound);
    }
    return c;
  }
  bool NameTakenAsRelation(const std::string& name) {
    if (FindTable(name)) return true;
    if (schema_.FindTable(name)) return true;  // physical tables keep their names until complete
    return std::find(schema_.views.begin(), schema_.views.end(), name) != schema_.views.end();
  }
  std::string PickPhysicalColumn(VTable& t, const std::string& logical) {
    std::string name = t.physical_columns.count(logical) ? d_.NewColumnName(logical) : logical;
    if (t.physical_columns.count(name)) {
      Error(op_->loc, "column '" + t.physical + "." + name +
                          "' already exists; an interrupted migration may have left it: run `sluice rollback` for "
                          "that migration or drop the column");
    }
    t.physical_columns.insert(name);
    return name;
  }
  // Name of the NOT NULL guard of a new column (a constraint on
  // PostgreSQL, triggers on SQLite, whose trigger names are database-wide).
  std::string GuardName(const VTable& t, const std::string& column) const {
    return "_sluice_nn_" + t.physical + "_" + column;
  }
  std::vector<std::string> KeyOf(const VTable& t) {
    if (!t.info) return {};
    return t.info->UsableKey();
  }
  bool RequireKey(VTable& t, SourceLoc loc) {
    if (t.created || !KeyOf(t).empty()) return true;
    Error(loc,
          "table '" + t.physical + "' has no primary key and no unique index on NOT NULL columns, so sluice cannot "
          "backfill it in key order or route writes between versions. Add one first, e.g. " +
              d_.AddKeyHint(t.physical),
          StatusCode::kFailedPrecondition);
    return false;
  }

  // --- step emission ----------------------------------------------------------
  void Start(db::StepBody body, std::optional<db::StepBody> inverse) {
    start_.push_back({std::move(body), origin_});
    if (inverse) inverses_.push_back({std::move(*inverse), origin_, static_cast<int>(start_.size() - 1)});
  }
  void Complete(CompleteStage stage, db::StepBody body) { complete_[stage].push_back({std::move(body), origin_}); }
  db::CreateTableStep& CreateStepOf(VTable& t) { return std::get<db::CreateTableStep>(start_[t.create_step].body); }

  // --- helpers shared by operations ------------------------------------------
  db::ForeignKeySpec FkFromColumnRef(const plan::ForeignKeyReference& r, const std::string& column);
  std::optional<db::ColumnSpec> ColumnSpecFor(const plan::ColumnDef& c, VTable* owner, bool in_create);
  // Adds a copy of `col` (an old column) that the new version uses instead,
  // carrying over the indexes and constraints that involve only this column.
  // `skip_constraint` is left behind (drop_constraint).
  // Returns the index in start_ of the copy's AddColumnStep, or nullopt.
  std::optional<size_t> Duplicate(VTable& t, VColumn& col, const std::string& up, const std::string& down,
                                  const std::string& skip_constraint = {});
  void AddForward(VTable& t, const std::string& target, const std::string& expr);
  // `sql` with `renames` applied through the dialect's parser; when it does
  // not parse, the error is reported at the operation (naming `what`) and
  // the text comes back unchanged (compilation fails anyway).
  std::string Renamed(const std::string& sql, db::SqlKind kind, const std::map<std::string, std::string>& renames,
                      const std::string& what);
  // Reports a `down` expression the dialect's parser rejects.
  void CheckParses(const std::string& expr, const std::string& what);
  // Copying several columns in one operation (create_constraint,
  // drop_multicolumn_constraint): BeginGroup names the old physical columns,
  // Duplicate defers the multi-column checks, foreign keys, unique
  // constraints and indexes whose columns are all in the group, and
  // CarryOverGroup rebuilds them on the copies (NOT VALID / CONCURRENTLY at
  // start; validated and renamed to the original names at complete).
  void BeginGroup(const std::vector<std::string>& origins);
  bool InGroup(const std::vector<std::string>& columns) const;
  void CarryOverGroup(VTable& t);

  // --- operations -------------------------------------------------------------
  void Op(const plan::CreateTable& op);
  void Op(const plan::AddColumn& op);
  void Op(const plan::AlterColumn& op);
  void Op(const plan::RenameColumn& op);
  void Op(const plan::DropColumn& op);
  void Op(const plan::RenameTable& op);
  void Op(const plan::DropTable& op);
  void Op(const plan::CreateIndex& op);
  void Op(const plan::DropIndex& op);
  void Op(const plan::CreateConstraint& op);
  void Op(const plan::DropConstraint& op);
  void Op(const plan::DropMultiColumnConstraint& op);
  void Op(const plan::RenameConstraint& op);
  void Op(const plan::RawSql& op);
  void Op(const plan::SetReplicaIdentity& op);

  void DropConstraintColumns(VTable& t, const plan::Name& name, const std::map<std::string, std::string>& up,
                             const std::map<std::string, std::string>& down);
  void BuildCompletion();
  // What depends on the columns, tables and indexes complete drops
  // (dependents.h): handled by complete's steps, or refused here.
  void PlanContractDependents();
  Cause CurrentCause() const { return {op_ ? op_->loc : plan::SourceLoc{}, origin_}; }
  // Refuses changing a partition directly or, on a partitioned table, what
  // sluice cannot yet do without blocking writes.
  bool RequireNotPartition(const VTable& t, plan::SourceLoc loc);
  bool Partitioned(const VTable& t) const { return t.info && t.info->partitioned; }
  // Refuses `what` on a partitioned table (PostgreSQL cannot do it without
  // blocking writes, or at all); true when the table is not partitioned.
  bool RefusePartitioned(const VTable& t, plan::SourceLoc loc, const std::string& what);
  // The partitions' part of an index on partitioned table `table`
  // (recursively): `index` is the new index's name; when copying index
  // `original`, each partition's copy is made from that partition's index
  // of it, with `renames` applied, and `child_renames` gets (copy,
  // original) pairs for complete. False (with an error) when a partition
  // cannot be handled.
  bool PartitionIndexes(const std::string& table, const std::string& index, const std::string& original,
                        const std::map<std::string, std::string>& renames, std::vector<db::PartitionIndex>* out,
                        std::vector<std::pair<std::string, std::string>>* child_renames);
  void BuildVersion();

  const plan::Plan& plan_;
  const db::Schema& schema_;
  const db::Dialect& d_;
  CompileOptions opts_;

  std::vector<plan::Diagnostic> errors_, warnings_;
  StatusCode first_code_ = StatusCode::kOk;
  std::string origin_;
  const plan::Operation* op_ = nullptr;

  std::vector<VTable> tables_;
  std::vector<std::string> dropped_logical_;
  std::vector<std::string> dropped_physical_;  // tables dropped at complete
  std::set<std::string> index_names_;
  std::set<std::string> dropped_indexes_;
  std::set<std::string> touched_;
  std::map<std::pair<std::string, std::string>, Cause> dropped_columns_;  // (table, column) by drop_column
  std::map<std::string, Cause> dropped_table_causes_, dropped_index_causes_;
  std::set<std::string> carried_indexes_;  // indexes rebuilt on copies
  bool raw_sql_ = false;
  bool irreversible_ = false;
  std::vector<std::string> irreversible_ops_;
  std::set<std::string> group_;                       // see BeginGroup
  std::map<std::string, std::string> group_copies_;   // old physical column -> copy
  std::set<std::string> group_constraints_, group_indexes_;

  std::vector<db::Step> start_;
  std::vector<db::Step> inverses_;  // in start order; reversed into rollback
  std::vector<db::Step> complete_[kStageCount];
  CompiledMigration out_;
};

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

// --- operations ---------------------------------------------------------------

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

void Compiler::Op(const plan::CreateIndex& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  if (index_names_.count(op.name.value) || NameTakenAsRelation(op.name.value)) {
    Error(op.name.loc, "an index or relation named '" + op.name.value + "' already exists",
          StatusCode::kAlreadyExists);
    return;
  }
  db::IndexSpec idx;
  idx.name = op.name.value;
  idx.table = t->physical;
  idx.unique = op.unique;
  idx.method = op.method;
  idx.predicate = op.predicate;
  idx.storage_parameters = op.storage_parameters;
  for (const auto& f : op.columns) {
    VColumn* c = RequireColumn(*t, f.column);
    if (!c) return;
    idx.elements.push_back({c->physical, f.collate, f.opclass, f.opclass_params, f.sort, f.nulls});
  }
  index_names_.insert(idx.name);
  db::CreateIndexStep create{idx, {}};
  std::vector<std::pair<std::string, std::string>> unused;
  if (Partitioned(*t) && !PartitionIndexes(t->physical, idx.name, "", {}, &create.partitions, &unused)) return;
  touched_.insert(t->physical);
  Start(create, db::DropIndexStep{t->physical, idx.name, Partitioned(*t)});
}

void Compiler::Op(const plan::DropIndex& op) {
  const db::IndexInfo* idx = schema_.FindIndex(op.name.value);
  if (!idx || dropped_indexes_.count(op.name.value)) {
    Error(op.name.loc, "index '" + op.name.value + "' does not exist", StatusCode::kNotFound);
    return;
  }
  if (idx->primary || !idx->constraint.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' backs constraint '" + idx->constraint +
                           "'; drop the constraint instead (drop_multicolumn_constraint)");
    return;
  }
  if (!idx->parent_index.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' is a partition's part of index '" + idx->parent_index +
                           "'; drop '" + idx->parent_index + "' instead",
          StatusCode::kFailedPrecondition);
    return;
  }
  const db::TableInfo* owner = schema_.FindTable(idx->table);
  if (owner && !owner->partition_of.empty()) {
    Error(op.name.loc, "index '" + op.name.value + "' is on partition '" + idx->table + "'; sluice changes a "
                           "partitioned table through its root",
          StatusCode::kFailedPrecondition);
    return;
  }
  dropped_indexes_.insert(op.name.value);
  dropped_index_causes_[op.name.value] = CurrentCause();
  index_names_.erase(op.name.value);
  touched_.insert(idx->table);
  Complete(kStageDropIndex, db::DropIndexStep{idx->table, idx->name, owner && owner->partitioned});
}

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

void Compiler::Op(const plan::SetReplicaIdentity& op) {
  VTable* t = RequireTable(op.table);
  if (!t) return;
  if (op.type == "INDEX") {
    const db::IndexInfo* idx = schema_.FindIndex(op.index.value);
    if (!idx || idx->table != t->physical) {
      Error(op.index.loc, "index '" + op.index.value + "' does not exist on table '" + t->logical + "'",
            StatusCode::kNotFound);
      return;
    }
  }
  std::string old = "DEFAULT";
  std::string old_index;
  if (t->info) {
    const std::string& ri = t->info->replica_identity;
    if (ri == "f") old = "FULL";
    if (ri == "n") old = "NOTHING";
    if (ri == "i") {
      old = "INDEX";
      old_index = t->info->replica_identity_index;
    }
  }
  touched_.insert(t->physical);
  Start(db::SetReplicaIdentityStep{t->physical, op.type, op.index.value},
        db::SetReplicaIdentityStep{t->physical, old, old_index});
}

// --- completion and versions ---------------------------------------------------

void Compiler::BuildCompletion() {
  origin_ = "complete";
  // Rebuild statements of copied indexes name the copy; after the renames
  // of complete the column has its final name.
  for (auto& s : complete_[kStageRenameObjects]) {
    auto* ri = std::get_if<db::RenameIndexStep>(&s.body);
    if (!ri || ri->rebuild_sql.empty()) continue;
    for (const auto& t : tables_) {
      if (t.physical != ri->table) continue;
      std::map<std::string, std::string> finals;
      for (const auto& c : t.columns) {
        if (c.physical != c.logical) finals[c.physical] = c.logical;
      }
      if (finals.empty()) continue;
      auto r = d_.RenameColumns(ri->rebuild_sql, db::SqlKind::kIndexDefinition, finals);
      if (r.ok()) ri->rebuild_sql = *r;
      if (!r.ok()) Error({}, "index '" + ri->to + "': " + r.status().message(), r.status().code());
    }
  }
  for (auto& t : tables_) {
    if (t.created || !t.info) continue;
    // Old physical columns no longer used by the new version are dropped.
    std::set<std::string> used;
    for (const auto& c : t.columns) used.insert(c.physical);
    for (const auto& oc : t.info->columns) {
      if (used.count(oc.name)) continue;
      // Indexes on a dropped column go first (SQLite cannot drop an indexed
      // column; PostgreSQL would drop them under the table's lock).
      for (const auto& idx : t.info->indexes) {
        const std::vector<std::string>& reads = idx.ColumnsRead();
        bool involves = std::find(reads.begin(), reads.end(), oc.name) != reads.end();
        if (!involves || dropped_indexes_.count(idx.name) || idx.primary || !idx.constraint.empty()) continue;
        if (!idx.parent_index.empty()) continue;  // goes with its partitioned index
        bool already = false;
        for (const auto& s : complete_[kStageDropIndex]) {
          if (auto* di = std::get_if<db::DropIndexStep>(&s.body); di && di->name == idx.name) already = true;
        }
        // A copy takes this index's name in the main transaction; a
        // concurrent drop (run after it) would drop the copy instead.
        for (const auto& s : complete_[kStageRenameObjects]) {
          if (auto* ri = std::get_if<db::RenameIndexStep>(&s.body); ri && ri->to == idx.name) {
            already |= !d_.transactional_ddl();
          }
        }
        if (!already) Complete(kStageDropIndex, db::DropIndexStep{t.physical, idx.name});
      }
      Complete(kStageDropColumn, db::DropColumnStep{t.physical, oc.name});
    }
    // Renames, ordered so that no rename targets a name still in use.
    std::vector<std::pair<std::string, std::string>> renames;
    std::set<std::string> live = used;
    for (const auto& c : t.columns) {
      if (c.physical != c.logical) renames.push_back({c.physical, c.logical});
    }
    while (!renames.empty()) {
      auto it = std::find_if(renames.begin(), renames.end(), [&](const auto& r) { return !live.count(r.second); });
      if (it == renames.end()) {
        Error({}, "the column renames of table '" + t.logical + "' form a cycle; rename in two migrations");
        break;
      }
      Complete(kStageRenameColumn, db::RenameColumnStep{t.physical, it->first, it->second});
      live.erase(it->first);
      live.insert(it->second);
      renames.erase(it);
    }
  }
  for (const auto& d : dropped_physical_) Complete(kStageDropTable, db::DropTableStep{d});
  for (auto& t : tables_) {
    if (!t.created && t.physical != t.logical) Complete(kStageRenameTable, db::RenameTableStep{t.physical, t.logical});
  }
  PlanContractDependents();
}

void Compiler::PlanContractDependents() {
  Contract c;
  for (const auto& t : tables_) {
    if (t.created || !t.info) continue;
    std::set<std::string> used;
    for (const auto& col : t.columns) used.insert(col.physical);
    for (const auto& oc : t.info->columns) {
      if (used.count(oc.name)) continue;
      ContractedColumn cc{t.physical, oc.name, "", "", t.logical, {{}, "complete"}};
      for (const auto& col : t.columns) {
        if (col.duplicated && col.origin == oc.name) {
          cc.copy = col.physical;
          cc.final_name = col.logical;
          cc.cause = col.cause;
        }
      }
      if (cc.copy.empty()) {
        auto it = dropped_columns_.find({t.physical, oc.name});
        if (it != dropped_columns_.end()) cc.cause = it->second;
      }
      c.columns.push_back(std::move(cc));
    }
  }
  for (const auto& d : dropped_physical_) {
    auto it = dropped_table_causes_.find(d);
    c.tables.push_back({d, it == dropped_table_causes_.end() ? Cause{{}, "complete"} : it->second});
  }
  for (const auto& [index, cause] : dropped_index_causes_) c.indexes.push_back({index, cause});
  c.carried_indexes = carried_indexes_;
  DependentsPlan p = PlanDependents(c, schema_, d_, plan_.file);
  for (auto& e : p.errors) {
    if (first_code_ == StatusCode::kOk) first_code_ = StatusCode::kFailedPrecondition;
    errors_.push_back(std::move(e));
  }
  for (auto& s : p.before_drop) complete_[kStageUnpin].push_back(std::move(s));
  for (auto& s : p.after_rename) complete_[kStageRepin].push_back(std::move(s));
}

void Compiler::BuildVersion() {
  db::VersionSpec& v = out_.version;
  v.name = opts_.version_name.empty() ? plan_.version_schema.value_or(plan_.name) : opts_.version_name;
  v.migration = plan_.name;
  v.previous = opts_.previous_version;
  v.hidden_tables = dropped_physical_;
  v.search_path = schema_.search_path;
  for (auto& t : tables_) {
    // A table the plan only reads (e.g. a foreign key's target) is not part
    // of the version: its views are made from the live table, so they never
    // pin a snapshot of columns another migration may change.
    if (!t.changed && !t.created) continue;
    db::TableMapping m;
    m.logical = t.logical;
    m.physical = t.physical;
    m.created = t.created;
    m.changed = t.changed;
    for (const auto& c : t.columns) {
      bool existed = t.info && t.info->FindColumn(c.physical) && !c.added && !c.duplicated;
      m.columns.push_back({c.logical, c.physical, c.default_expr, c.not_null, c.type, existed});
    }
    if (t.info) {
      for (const auto& oc : t.info->columns) {
        m.old_columns.push_back(oc.name);
        m.old_defaults.push_back(oc.default_expr);
      }
    }
    m.key = KeyOf(t);
    m.forward = t.forward;
    m.backward = t.backward;
    m.not_null_guards = t.not_null_guards;
    v.tables.push_back(std::move(m));
  }
}

Result<CompiledMigration> Compiler::Run() {
  out_.name = plan_.name;
  // The new version starts as a copy of the current schema.
  for (const auto& [name, info] : schema_.tables) {
    VTable t;
    t.logical = t.physical = name;
    t.info = &info;
    for (const auto& c : info.columns) {
      VColumn vc;
      vc.logical = vc.physical = c.name;
      vc.type = c.type;
      vc.not_null = c.not_null;
      vc.default_expr = c.default_expr;
      vc.comment = c.comment;
      t.columns.push_back(vc);
      t.physical_columns.insert(c.name);
    }
    for (const auto& idx : info.indexes) index_names_.insert(idx.name);
    tables_.push_back(std::move(t));
  }

  for (size_t i = 0; i < plan_.operations.size(); ++i) {
    op_ = &plan_.operations[i];
    origin_ = "operation #" + std::to_string(i + 1) + " (" + op_->kind + ")";
    BeginGroup({});
    size_t tables_before = tables_.size();
    (void)tables_before;
    std::visit([&](const auto& body) { Op(body); }, op_->body);
  }
  op_ = nullptr;

  BuildCompletion();
  BuildVersion();

  // Dual-write triggers and the read path come last in start: by then every
  // column they mention exists. Rollback removes them first.
  origin_ = "start";
  for (auto& m : out_.version.tables) {
    if (!m.has_dual_write() || m.created) continue;
    VTable* vt = nullptr;
    for (auto& t : tables_) {
      if (t.physical == m.physical) vt = &t;
    }
    m.write_flag = kWriteFlag;
    m.record_failures = plan_.dual_write.on_error == plan::OnError::kRecord;
    if (vt && vt->physical_columns.count(kWriteFlag)) {
      Error({}, "table '" + m.physical + "' already has a column named " + kWriteFlag +
                    "; an interrupted migration may have left it: roll that migration back");
    }
    db::ColumnSpec flag;
    flag.name = kWriteFlag;
    flag.type = "INTEGER";
    Start(db::AddColumnStep{m.physical, flag}, db::DropColumnStep{m.physical, kWriteFlag});
    Complete(kStageDropColumn, db::DropColumnStep{m.physical, kWriteFlag});
  }
  // Under on_error: record, a NOT NULL guard on a column the dual-write
  // fills from `up` lets old-version NULLs through (recorded by the
  // dual-write instead); it is enforced for good at complete.
  for (const auto& m : out_.version.tables) {
    if (!m.record_failures || m.created) continue;
    auto filled = [&](const std::string& table, const std::string& column) {
      if (table != m.physical) return false;
      for (const auto& f : m.forward) {
        if (f.target == column) return true;
      }
      return false;
    };
    for (auto& s : start_) {
      if (auto* g = std::get_if<db::AddNotNullGuardStep>(&s.body); g && filled(g->table, g->column)) g->recorded = true;
    }
    for (auto& stage : complete_) {
      for (auto& s : stage) {
        if (auto* g = std::get_if<db::FinalizeNotNullStep>(&s.body); g && filled(g->table, g->column)) {
          g->recorded = true;
        }
      }
    }
  }
  for (const auto& m : out_.version.tables) {
    if (m.has_dual_write() && !m.created) {
      start_.push_back({db::CreateDualWriteStep{plan_.name, out_.version.name, m, out_.version.search_path}, origin_});
      inverses_.push_back({db::DropDualWriteStep{plan_.name, m}, origin_, static_cast<int>(start_.size() - 1)});
      db::BackfillTask task;
      task.table = m.physical;
      task.key = m.key;
      task.assignments = m.forward;
      // Cast to the column's type: an UPDATE's assignment cast is stricter
      // than the triggers' (text to an enum type, for one).
      for (auto& a : task.assignments) {
        std::string recording = m.record_failures ? d_.RecordingBackfillValue(plan_.name, m, a) : "";
        for (const auto& c : m.columns) {
          if (c.physical == a.target && !c.type.empty()) {
            a.expr = d_.AsColumnValue(a.expr, c.type);
            if (!recording.empty()) recording = d_.AsColumnValue(recording, c.type);
          }
        }
        task.recording_values.push_back(recording);
      }
      // All or none: a chunk is redone with every column's recording value.
      if (std::any_of(task.recording_values.begin(), task.recording_values.end(),
                      [](const std::string& v) { return v.empty(); })) {
        task.recording_values.clear();
      }
      task.skip_flag = m.write_flag;
      if (!task.assignments.empty()) out_.backfill.push_back(std::move(task));
    }
  }
  // Complete removes the triggers before anything they read goes away.
  {
    std::vector<db::Step> fin;
    for (const auto& m : out_.version.tables) {
      if (m.has_dual_write() && !m.created) {
        fin.push_back({db::DropDualWriteStep{plan_.name, m, out_.version.name}, "complete"});
      }
    }
    for (auto& s : complete_[kStageFinalize]) fin.push_back(std::move(s));
    complete_[kStageFinalize] = std::move(fin);
  }
  start_.push_back({db::CreateVersionStep{out_.version}, origin_});
  inverses_.push_back({db::DropVersionStep{out_.version}, origin_, static_cast<int>(start_.size() - 1)});

  // Every step must be expressible on this database.
  auto check = [&](const std::vector<db::Step>& steps) {
    for (const auto& s : steps) {
      Status st = d_.CheckSupported(s);
      if (!st.ok()) {
        SourceLoc loc;
        for (size_t i = 0; i < plan_.operations.size(); ++i) {
          if (s.origin.rfind("operation #" + std::to_string(i + 1) + " ", 0) == 0) loc = plan_.operations[i].loc;
        }
        std::string saved = origin_;
        origin_ = s.origin;
        Error(loc, std::string(d_.display_name()) + " cannot do this: " + st.message(),
              StatusCode::kFailedPrecondition);
        origin_ = saved;
      }
    }
  };
  check(start_);
  for (auto& stage : complete_) check(stage);

  if (!errors_.empty()) {
    Status s = plan::DiagnosticsToStatus(errors_);
    return Status(first_code_, s.message());
  }

  out_.start = std::move(start_);
  for (auto& stage : complete_) {
    for (auto& s : stage) out_.complete.push_back(std::move(s));
  }
  out_.complete.push_back({db::FinalizeVersionStep{out_.version}, "complete"});
  for (auto it = inverses_.rbegin(); it != inverses_.rend(); ++it) out_.rollback.push_back(std::move(*it));
  out_.tables = std::move(touched_);
  out_.warnings = std::move(warnings_);
  out_.irreversible = irreversible_;
  out_.irreversible_ops = std::move(irreversible_ops_);
  return std::move(out_);
}

}  // namespace

Result<CompiledMigration> Compile(const plan::Plan& plan, const db::Schema& schema, const db::Dialect& dialect,
                                  const CompileOptions& options) {
  Compiler c(plan, schema, dialect, options);
  return c.Run();
}

}  // namespace sluice::engine
