#include "engine/dependents.h"

#include <algorithm>
#include <map>

namespace sluice::engine {
namespace {

using Kind = db::DependentInfo::Kind;

class Planner {
 public:
  Planner(const Contract& c, const db::Schema& s, const db::Dialect& d, const std::string& file)
      : c_(c), s_(s), d_(d), file_(file) {}

  DependentsPlan Run() {
    std::vector<db::ReplacedColumn> replaced;
    for (const auto& col : c_.columns) {
      const db::TableInfo* t = s_.FindTable(col.table);
      if (!t) continue;
      bool views = Column(*t, col);
      if (col.copy.empty()) continue;
      replaced.push_back({col.table, col.column, col.copy, col.final_name, col.final_table});
      // Views are read back as if the column (and table) already had its
      // final name; complete cannot do that while the name is taken.
      if (views && col.final_name != col.column && t->FindColumn(col.final_name)) {
        Refuse(col.cause, "views read column '" + col.table + "." + col.column + "', which complete renames to '" +
                              col.final_name + "' on its new copy while the table still has a column of that name; "
                              "sluice cannot recreate the views on it. Rename in a separate migration");
      }
      if (views && col.final_table != col.table &&
          (s_.FindTable(col.final_table) ||
           std::find(s_.views.begin(), s_.views.end(), col.final_table) != s_.views.end())) {
        Refuse(col.cause, "views read column '" + col.table + "." + col.column + "', and complete renames the table "
                              "to '" + col.final_table + "', a name still in use; sluice cannot recreate the views "
                              "on it. Rename the table in a separate migration");
      }
    }
    for (const auto& [table, cause] : c_.tables) Table(table, cause);
    for (const auto& [index, cause] : c_.indexes) Index(index, cause);
    if (!replaced.empty() && d_.recreates_dependent_views()) {
      out_.before_drop.push_back({db::SaveDependentViewsStep{replaced}, "complete: dependent views"});
      out_.after_rename.push_back({db::RestoreDependentViewsStep{}, "complete: dependent views"});
    }
    return std::move(out_);
  }

 private:
  void Refuse(const Cause& cause, const std::string& msg) {
    if (!seen_.insert(cause.origin + "\n" + msg).second) return;
    out_.errors.push_back({plan::Diagnostic::Severity::kError, file_, cause.loc, cause.origin + ": " + msg});
  }

  // Handles or refuses what depends on one column complete drops; returns
  // whether plain views read it (they are recreated).
  bool Column(const db::TableInfo& t, const ContractedColumn& col) {
    const bool replaces = !col.copy.empty();
    const std::string name = "column '" + col.table + "." + col.column + "'";
    const std::string fate = replaces ? "which complete replaces with its new copy" : "which complete drops";
    const std::string later = "drop it before this migration and recreate it after complete";
    bool views = false;
    for (const auto& dep : t.dependents) {
      if (dep.column != col.column || !dep.index.empty()) continue;
      const std::string through = dep.via.empty() ? "" : " (through " + dep.via + ")";
      switch (dep.kind) {
        case Kind::kIndex:       // compile carries them over or drops them
        case Kind::kConstraint:  // (carried over, or dropped with the column)
          continue;
        case Kind::kDefault:
          // The column's own default, or a default of a view complete
          // recreates.
          continue;
        case Kind::kSequence:
          if (replaces) {
            // The copy's default uses it: it must not go with the old column.
            out_.before_drop.push_back({db::SetSequenceOwnerStep{dep.relation_schema, dep.relation_name, col.table,
                                                                 col.copy},
                                        col.cause.origin});
          }
          continue;
        case Kind::kSequenceUser:
          if (!replaces) {
            Refuse(col.cause, dep.description + " uses sequence " + dep.via + ", which " + name + " owns; complete "
                                  "drops the column and the sequence with it. Detach the sequence first (ALTER "
                                  "SEQUENCE " + dep.via + " OWNED BY NONE)");
          }
          continue;
        case Kind::kView:
          if (!replaces) {
            Refuse(col.cause, dep.description + " reads " + name + through + ", " + fate +
                                  "; the view cannot be recreated without it: change or drop the view before this "
                                  "migration");
          } else if (!d_.recreates_dependent_views()) {
            Refuse(col.cause, dep.description + " reads " + name + through + ", " + fate +
                                  "; sluice cannot recreate views on this database: " + later);
          } else if (!dep.owned) {
            Refuse(col.cause, dep.description + " reads " + name + through + ", " + fate +
                                  "; complete drops and recreates it on the new column, which needs sluice's role "
                                  "to be a member of the view's owner and to have CREATE on its schema: grant "
                                  "that, or " + later);
          } else {
            views = true;
          }
          continue;
        case Kind::kTrigger:
        case Kind::kRule:
          // A trigger or rule on a view complete recreates comes back with it.
          if (!dep.via.empty() && dep.same_table) continue;
          break;
        case Kind::kMaterializedView:
          Refuse(col.cause, dep.description + " reads " + name + through + ", " + fate +
                                "; sluice does not rebuild materialized views under complete's locks: " + later);
          continue;
        case Kind::kForeignKey:
          Refuse(col.cause, dep.description + " references " + name + ", " + fate +
                                (replaces ? " (the unique constraint or index it relies on goes with the old column)"
                                          : "") +
                                "; drop the foreign key before this migration and add it back after complete");
          continue;
        case Kind::kStatistics:
          // Dropped with a dropped column, like its indexes; but a copy
          // must not lose it silently.
          if (!replaces) continue;
          Refuse(col.cause, dep.description + " reads " + name + "; complete's DROP COLUMN of the old column would "
                                "remove it silently: " + later);
          continue;
        default:
          break;
      }
      if (!dep.via.empty() && !replaces) continue;  // the view it depends on is refused already
      Refuse(col.cause, dep.description + " depends on " + name + through + ", " + fate +
                            "; PostgreSQL would refuse to drop the old column (sluice does not carry such objects "
                            "over): " + later);
    }
    return views;
  }

  void Table(const std::string& table, const Cause& cause) {
    const db::TableInfo* t = s_.FindTable(table);
    if (!t) return;
    for (const auto& dep : t->dependents) {
      if (dep.same_table || !dep.via.empty()) continue;  // goes with the table; or its view is refused
      if (dep.kind == Kind::kSequence || dep.kind == Kind::kIndex || dep.kind == Kind::kConstraint ||
          dep.kind == Kind::kDefault) {
        continue;
      }
      if (dep.kind == Kind::kSequenceUser && dep.relation == s_.name + "." + table) continue;
      Refuse(cause, dep.description + " depends on table '" + table + "'" +
                        (dep.column.empty() ? "" : " (column '" + dep.column + "')") +
                        ", which complete drops; drop or change it before this migration");
    }
  }

  void Index(const std::string& index, const Cause& cause) {
    for (const auto& [name, t] : s_.tables) {
      for (const auto& dep : t.dependents) {
        if (dep.index != index || dep.same_table) continue;
        Refuse(cause, dep.description + " depends on index '" + index + "', which complete drops; drop it before "
                          "this migration (a foreign key needs a unique index or constraint on the columns it "
                          "references)");
      }
    }
  }

  const Contract& c_;
  const db::Schema& s_;
  const db::Dialect& d_;
  const std::string& file_;
  DependentsPlan out_;
  std::set<std::string> seen_;
};

}  // namespace

DependentsPlan PlanDependents(const Contract& contract, const db::Schema& schema, const db::Dialect& dialect,
                              const std::string& plan_file) {
  return Planner(contract, schema, dialect, plan_file).Run();
}

}  // namespace sluice::engine
