// Loading a migration's record and the steps of its phases.
#include <unistd.h>

#include <cstdlib>

#include "engine/engine.h"
#include "engine/record.h"
#include "engine/schema_json.h"
#include "plan/parser.h"

namespace sluice::engine {

Result<Loaded> LoadMigration(StateStore& store, const db::Dialect& d, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(name));
  if (!rec) return NotFound("no migration named '" + name + "' (see `sluice status`)");
  Loaded l;
  l.rec = *rec;
  // The plan's runtime settings (backfill, verify, gates, abort) are read
  // from its text; what the phases run comes from the recording.
  if (rec->plan_format == "baseline") {
    l.plan.name = rec->name;  // a baseline (baseline.cc) has no plan
  } else {
    SLUICE_ASSIGN_OR_RETURN(l.plan, plan::ParsePlanText(rec->plan_text, rec->plan_file));
  }
  SLUICE_ASSIGN_OR_RETURN(auto stored, store.GetRecording(name));
  if (stored) {
    SLUICE_ASSIGN_OR_RETURN(Recording r, RecordingFromJson(stored->json, stored->format));
    l.compiled = std::move(r.compiled);
    l.switch_to_new = std::move(r.switch_to_new);
    l.switch_back = std::move(r.switch_back);
    l.retire = std::move(r.retire);
    l.ready = std::move(r.ready);
    l.recorded = true;
    return l;
  }
  // Started by a sluice that kept no recording: recompile from the
  // snapshot taken at start, as that sluice did.
  SLUICE_ASSIGN_OR_RETURN(db::Schema schema, SchemaFromJson(rec->schema_before));
  SLUICE_ASSIGN_OR_RETURN(l.compiled, Compile(l.plan, schema, d, {rec->version, rec->previous_version}));
  const db::VersionSpec& v = l.compiled.version;
  l.switch_to_new = {{db::SetLiveStep{rec->version, v}, "switch"}};
  l.switch_back = {{db::SetLiveStep{rec->previous_version, v}, "switch back"}};
  l.retire = {{db::DropVersionStep{v}, "retire version " + rec->version}};
  return l;
}

Result<std::string> ResolveMigration(StateStore& store, const std::string& name, const char* verb) {
  if (!name.empty()) return name;
  SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
  if (!has_state) return FailedPrecondition("no migration has been started in this database");
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::vector<std::string> active;
  for (const auto& m : all) {
    if (m.in_flight()) active.push_back(m.name);
  }
  if (active.size() == 1) return active[0];
  if (active.empty()) return FailedPrecondition(std::string("no active migration to ") + verb);
  std::string list;
  for (const auto& a : active) list += (list.empty() ? "" : ", ") + a;
  return InvalidArgument(std::string("several migrations are active (") + list + "); name the one to " + verb);
}

Result<std::string> PreviousVersion(StateStore& store) {
  SLUICE_ASSIGN_OR_RETURN(bool exists, store.Exists());
  if (!exists) return std::string();
  SLUICE_ASSIGN_OR_RETURN(auto all, store.List());
  std::string prev;
  for (const auto& m : all) {
    if (m.phase == kComplete) prev = m.version;
  }
  return prev;
}

std::string DefaultActor() {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(user ? user : "unknown") + "@" + host;
}

std::vector<std::string> WarningsToStrings(const std::vector<plan::Diagnostic>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.ToString());
  return out;
}

}  // namespace sluice::engine
