#include "engine/compile.h"

#include "engine/compile/compiler.h"

namespace sluice::engine {
namespace internal {

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

}  // namespace internal

Result<CompiledMigration> Compile(const plan::Plan& plan, const db::Schema& schema, const db::Dialect& dialect,
                                  const CompileOptions& options) {
  internal::Compiler c(plan, schema, dialect, options);
  return c.Run();
}

}  // namespace sluice::engine
