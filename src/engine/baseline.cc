// `sluice baseline`: a version of the schema as it is now, for the
// application that runs before the first migration.
//
// Without one, the old application reads the base tables, and the first
// `start` changes what it reads (the tables gain columns; PostgreSQL's
// prepared `SELECT *` statements then fail with "cached plan must not change
// result type"). A baseline is a version like any other: views of every
// table with the columns it has now, named explicitly, so later ADD COLUMNs
// do not show through. It is recorded as a completed migration with no
// steps, so the next migration's previous version is the baseline, and it
// retires when that migration completes, like any previous version.
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/phase.h"
#include "engine/record.h"
#include "engine/schema_json.h"

namespace sluice::engine {
namespace {

constexpr const char* kDefaultBaseline = "baseline";

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 40) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// Versions that are namespaces (PostgreSQL schemas) show every table the
// version does not describe as it is, by reading the catalog when they are
// created: the baseline needs no table list. Otherwise (SQLite) a version
// shows only the tables it lists, each through a view with INSTEAD OF
// triggers keyed on the table's key.
Result<db::VersionSpec> BaselineSpec(const db::Dialect& d, const db::Schema& schema, const std::string& name) {
  db::VersionSpec v;
  v.name = name;
  v.migration = name;
  if (d.versioned_namespaces()) return v;
  for (const auto& [tname, t] : schema.tables) {
    db::TableMapping m;
    m.logical = m.physical = tname;
    m.changed = true;  // gets its own view, so later columns do not show through
    m.key = t.UsableKey();
    if (m.key.empty()) {
      return FailedPrecondition("table '" + tname + "' has no primary key (or unique NOT NULL index): the baseline's "
                                "view of it could not route updates and deletes to its rows; add a key first");
    }
    for (const auto& c : t.columns) {
      if (c.generated) {
        return FailedPrecondition("table '" + tname + "' has a generated column ('" + c.name +
                                  "'): the SQLite baseline cannot write through a view of it");
      }
      db::ColumnMapping cm;
      cm.logical = cm.physical = c.name;
      cm.default_expr = c.default_expr;
      cm.type = c.type;
      m.columns.push_back(cm);
      m.old_columns.push_back(c.name);
      m.old_defaults.push_back(c.default_expr);
    }
    v.tables.push_back(std::move(m));
  }
  return v;
}

}  // namespace

Result<BaselineInfo> Engine::Baseline(const std::string& requested) {
  const std::string name = requested.empty() ? kDefaultBaseline : requested;
  if (!ValidName(name)) {
    return InvalidArgument("baseline name '" + name + "': use letters, digits and '_' (at most 40)");
  }
  SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
  const db::Dialect& d = conn->dialect();
  StateStore store(*conn, clock());
  BaselineInfo info;
  info.name = name;
  info.version_hint = d.VersionSelectHint(name);

  // Why a baseline cannot be taken now, given every migration recorded;
  // checked first and again inside the transaction that records it.
  auto refuse = [&](const std::vector<MigrationRecord>& all) -> Status {
    for (const auto& m : all) {
      if (m.name == name) {
        return FailedPrecondition("a migration named '" + name + "' exists (" + m.phase + "); choose another name "
                                  "with --name");
      }
      if (m.in_flight()) {
        return FailedPrecondition("migration '" + m.name + "' is " + m.phase + ": a baseline shows the tables as "
                                  "the old application sees them, so take it before starting a migration (or after "
                                  "completing or rolling it back)");
      }
      if (m.phase == kComplete && !m.version_retired) {
        return FailedPrecondition("migration '" + m.name + "' is complete, so its version '" + m.version +
                                  "' already is the previous version: point the old application at it (`sluice "
                                  "version-sql " + m.version + "`)");
      }
    }
    return Status::Ok();
  };
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  std::vector<MigrationRecord> all;
  if (has_state) {
    SLUICE_ASSIGN_OR_RETURN(all, store.List());
    for (const auto& m : all) {
      // Rerunning converges.
      if (m.name == name && m.plan_format == "baseline" && m.phase == kComplete && !m.version_retired) {
        info.tables = m.tables;
        return info;
      }
    }
    SLUICE_RETURN_IF_ERROR(refuse(all));
  }

  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
  SLUICE_ASSIGN_OR_RETURN(db::VersionSpec spec, BaselineSpec(d, schema, name));
  CompiledMigration c;
  c.name = name;
  c.version = spec;
  c.start.push_back({db::CreateVersionStep{spec}, "baseline"});
  SLUICE_RETURN_IF_ERROR(d.CheckSupported(c.start.back()).WithContext("baseline '" + name + "'"));
  Recording recording = Record(c, d);

  MigrationRecord rec;
  rec.name = name;
  rec.version = name;
  rec.plan_format = "baseline";
  rec.plan_text = "# sluice baseline: version '" + name + "' shows every table as it was at " + IsoTime(clock()->WallMicros()) + "\n";
  rec.schema_before = SchemaToJson(schema);
  for (const auto& [tname, t] : schema.tables) info.tables.push_back(tname);
  rec.tables = {};  // it changes no table, so it claims none
  rec.backfill = "none";
  rec.live = "new";
  nlohmann::json details = {{"version", name}, {"tables", info.tables}, {"sluice_version", SluiceVersion()}};

  PhaseRun run;
  run.migration = name;
  run.phase = "baseline";
  run.steps = recording.compiled.start;
  run.from = {""};
  run.before = [&](const std::optional<MigrationRecord>&) -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto now, store.List());
    SLUICE_RETURN_IF_ERROR(refuse(now));
    SLUICE_ASSIGN_OR_RETURN(rec.seq, store.NextSeq());
    rec.phase = kStarting;
    SLUICE_RETURN_IF_ERROR(store.ClearProgress(name));
    SLUICE_RETURN_IF_ERROR(store.Upsert(rec));
    return store.PutRecording(name, recording.format, recording.sluice_version, RecordingToJson(recording));
  };
  run.record = [&](bool finished) -> Status {
    if (!finished) return Status::Ok();
    SLUICE_RETURN_IF_ERROR(MovePhase(store, name, kStarting, kComplete));
    return store.AddEvent(name, "baseline", options_.actor,
                          "baseline version " + name + " published (" + std::to_string(info.tables.size()) +
                              " tables)",
                          details.dump());
  };
  SLUICE_RETURN_IF_ERROR(Transition(*conn, store, options_, run));
  info.created = true;
  return info;
}

}  // namespace sluice::engine
