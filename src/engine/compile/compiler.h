// The compiler's internals, shared by compile.cc and one file per plan
// operation (op_*.cc, like pgroll's op_*.go). Not part of any public
// interface: only src/engine/compile.cc and src/engine/compile/ include it.
//
// Compiler walks the plan over a virtual copy of the schema (VTable /
// VColumn: the new version as it takes shape) and collects the steps of
// each phase; each Op(...) overload validates one operation and emits its
// start steps, their inverses and its complete steps by stage.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/compile.h"
#include "engine/dependents.h"

namespace sluice::engine::internal {

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
inline constexpr const char* kWriteFlag = "_sluice_new_write";

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

inline db::TableConstraintSpec::Type ToSpecType(plan::ConstraintType t) {
  switch (t) {
    case plan::ConstraintType::kUnique: return db::TableConstraintSpec::Type::kUnique;
    case plan::ConstraintType::kCheck: return db::TableConstraintSpec::Type::kCheck;
    case plan::ConstraintType::kPrimaryKey: return db::TableConstraintSpec::Type::kPrimaryKey;
    case plan::ConstraintType::kForeignKey: return db::TableConstraintSpec::Type::kForeignKey;
    case plan::ConstraintType::kExclude: return db::TableConstraintSpec::Type::kExclude;
  }
  return db::TableConstraintSpec::Type::kUnique;
}

inline std::string Join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// Identifiers are at most 63 bytes on PostgreSQL: longer generated names
// keep a hash of the whole so they stay distinct.
std::string ShortName(const std::string& name);

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
  // is only read). `inheritance_ok`: the change stays on this table even in
  // a table-inheritance tree (an index, the replica identity); a column, a
  // constraint, a rename or a drop reaches the parent's children (or, on a
  // child, conflicts with what it inherits), whose version views and
  // triggers sluice does not build, so it is refused here rather than
  // failing at rollback or complete.
  VTable* RequireTable(const plan::Name& n, bool for_change = true, bool inheritance_ok = false) {
    VTable* t = FindTable(n.value);
    if (t && for_change && !inheritance_ok && t->info &&
        (!t->info->inherits.empty() || !t->info->inheritance_children.empty())) {
      const bool parent = !t->info->inheritance_children.empty();
      Error(n.loc, "table '" + n.value + "' " +
                       (parent ? "has inheritance children (" + Join(t->info->inheritance_children) + ")"
                               : "inherits from " + Join(t->info->inherits)) +
                       "; PostgreSQL carries a change of its columns or constraints across the inheritance tree, "
                       "which sluice's version views and dual-write triggers do not cover, so it changes only indexes "
                       "and the replica identity of such a table (declarative partitions are supported; a raw_sql "
                       "operation does the rest offline)",
            StatusCode::kFailedPrecondition);
      return nullptr;
    }
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

}  // namespace sluice::engine::internal
