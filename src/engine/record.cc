#include "engine/record.h"

#include <nlohmann/json.hpp>

namespace nlohmann {
// std::optional as null-or-value (nlohmann 3.11.2 has no built-in support).
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& v) {
    if (v) {
      j = *v;
    } else {
      j = nullptr;
    }
  }
  static void from_json(const json& j, std::optional<T>& v) {
    if (j.is_null()) {
      v.reset();
    } else {
      v = j.get<T>();
    }
  }
};
}  // namespace nlohmann

namespace sluice::db {
// Field lists of the recorded types. A field missing from an older
// recording takes its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Statement, sql, outside_transaction, prepare, rebuild_invalid_index,
                                                guard_sql, guard_message, schema_edit)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Backward, target, expr, origin)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Forward, target, expr, reads, volatile_expr, origin, fallback)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ColumnMapping, logical, physical, default_expr, not_null, type,
                                                exists_before)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TableMapping, logical, physical, created, changed, columns,
                                                old_columns, old_defaults, key, forward, backward, not_null_guards,
                                                write_flag, record_failures)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VersionSpec, name, migration, previous, tables, hidden_tables,
                                                search_path)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BackfillTask, table, key, assignments, skip_flag, setup_sql,
                                                recording_values)
}  // namespace sluice::db

namespace sluice::engine {
namespace {

using nlohmann::json;

std::vector<db::Step> Rendered(const std::vector<db::Step>& steps, const db::Dialect& d) {
  std::vector<db::Step> out;
  for (const auto& s : steps) out.push_back({db::RecordedSqlStep{d.Render(s)}, s.origin, s.undoes});
  return out;
}

json StepsToJson(const std::vector<db::Step>& steps) {
  json out = json::array();
  for (const auto& s : steps) {
    const auto* r = std::get_if<db::RecordedSqlStep>(&s.body);
    out.push_back({{"origin", s.origin}, {"undoes", s.undoes}, {"statements", r ? r->statements : std::vector<db::Statement>{}}});
  }
  return out;
}

std::vector<db::Step> StepsFromJson(const json& j) {
  std::vector<db::Step> out;
  for (const auto& s : j) {
    out.push_back({db::RecordedSqlStep{s.at("statements").get<std::vector<db::Statement>>()},
                   s.value("origin", std::string()), s.value("undoes", -1)});
  }
  return out;
}

}  // namespace

std::string SluiceVersion() { return SLUICE_VERSION; }

Recording Record(const CompiledMigration& c, const db::Dialect& d) {
  Recording r;
  r.sluice_version = SluiceVersion();
  r.compiled.name = c.name;
  r.compiled.version = c.version;
  r.compiled.backfill = c.backfill;
  r.compiled.tables = c.tables;
  r.compiled.irreversible = c.irreversible;
  r.compiled.irreversible_ops = c.irreversible_ops;
  r.compiled.start = Rendered(c.start, d);
  r.compiled.complete = Rendered(c.complete, d);
  r.compiled.rollback = Rendered(c.rollback, d);
  r.switch_to_new = Rendered({{db::SetLiveStep{c.version.name, c.version}, "switch"}}, d);
  r.switch_back = Rendered({{db::SetLiveStep{c.version.previous, c.version}, "switch back"}}, d);
  r.retire = Rendered({{db::DropVersionStep{c.version}, "retire version " + c.version.name}}, d);
  r.ready = Rendered({{db::VersionReadyStep{c.version}, "version " + c.version.name + " ready"}}, d);
  return r;
}

std::string RecordingToJson(const Recording& r) {
  const CompiledMigration& c = r.compiled;
  json j = {{"format", r.format},
            {"sluice_version", r.sluice_version},
            {"name", c.name},
            {"version", c.version},
            {"backfill", c.backfill},
            {"tables", c.tables},
            {"irreversible", c.irreversible},
            {"irreversible_ops", c.irreversible_ops},
            {"start", StepsToJson(c.start)},
            {"complete", StepsToJson(c.complete)},
            {"rollback", StepsToJson(c.rollback)},
            {"switch", StepsToJson(r.switch_to_new)},
            {"switch_back", StepsToJson(r.switch_back)},
            {"retire", StepsToJson(r.retire)},
            {"ready", StepsToJson(r.ready)}};
  // Plans and identifiers are valid UTF-8 by the time they get here; replace
  // rather than throw if anything slipped through.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Recording> RecordingFromJson(const std::string& text, int format) {
  if (format > kRecordFormat) {
    return FailedPrecondition("this migration was recorded by a newer sluice (recording format " +
                              std::to_string(format) + "; this sluice " + SluiceVersion() + " reads up to format " +
                              std::to_string(kRecordFormat) + "); run its later phases with that sluice or newer");
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Internal("the migration's recording is not valid JSON");
  try {
    Recording r;
    r.format = format;
    r.sluice_version = j.value("sluice_version", std::string());
    CompiledMigration& c = r.compiled;
    c.name = j.at("name").get<std::string>();
    c.version = j.at("version").get<db::VersionSpec>();
    c.backfill = j.at("backfill").get<std::vector<db::BackfillTask>>();
    c.tables = j.at("tables").get<std::set<std::string>>();
    c.irreversible = j.value("irreversible", false);
    c.irreversible_ops = j.value("irreversible_ops", std::vector<std::string>{});
    c.start = StepsFromJson(j.at("start"));
    c.complete = StepsFromJson(j.at("complete"));
    c.rollback = StepsFromJson(j.at("rollback"));
    r.switch_to_new = StepsFromJson(j.at("switch"));
    r.switch_back = StepsFromJson(j.at("switch_back"));
    r.retire = StepsFromJson(j.at("retire"));
    if (j.contains("ready")) r.ready = StepsFromJson(j.at("ready"));
    return r;
  } catch (const std::exception& e) {
    return Internal(std::string("the migration's recording is damaged: ") + e.what());
  }
}

}  // namespace sluice::engine
