// `sluice rehearse`: a plan's whole lifecycle on a copy of the database
// (never the source), timed, with a synthetic writer, recorded in the
// source's `rehearsals` state table (docs/handoff.md). It lives in the
// engine, not in src/handoff, because it drives a second Engine on the
// copy and the adapter's copy capability.
#include <atomic>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "db/scratch_dir.h"
#include "engine/history.h"
#include "plan/parser.h"

namespace sluice::engine {

using db::Value;
using nlohmann::json;

namespace {

// The old application, updating rows of the touched tables through the
// base tables until told to stop: each write sets a key column to itself
// (the dual-write triggers fire; no value changes), one every few ms.
class SyntheticWriter {
 public:
  struct Target {
    std::string sql;                       // UPDATE ... WHERE key = $1 ...
    std::vector<std::vector<Value>> keys;  // sampled key values
  };

  SyntheticWriter(std::unique_ptr<db::Connection> conn, std::vector<Target> targets, Clock* clock)
      : conn_(std::move(conn)), targets_(std::move(targets)), clock_(clock) {}
  ~SyntheticWriter() { Stop(); }

  void Start() {
    if (targets_.empty()) return;
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Read after Stop().
  int64_t writes = 0, errors = 0;
  double max_wait_ms = 0;
  std::string first_error;

 private:
  void Run() {
    size_t n = 0;
    while (!stop_) {
      const Target& t = targets_[n % targets_.size()];
      const auto& key = t.keys[(n / targets_.size()) % t.keys.size()];
      ++n;
      int64_t t0 = clock_->NowMicros();
      auto r = conn_->Query(t.sql, key);
      max_wait_ms = std::max(max_wait_ms, static_cast<double>(clock_->NowMicros() - t0) / 1000.0);
      ++writes;
      if (!r.ok()) {
        ++errors;
        if (first_error.empty()) first_error = r.status().message();
        if (r.status().code() == StatusCode::kUnavailable) conn_->Reconnect().IgnoreError();
      }
      clock_->SleepMicros(5000);
    }
  }

  std::unique_ptr<db::Connection> conn_;
  std::vector<Target> targets_;
  Clock* clock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The writer's targets: every touched table that exists in `schema` and
// has a usable key, with up to 200 of its keys.
Result<std::vector<SyntheticWriter::Target>> WriterTargets(db::Connection& conn, const db::Schema& schema,
                                                            const std::set<std::string>& tables) {
  const db::Dialect& d = conn.dialect();
  std::vector<SyntheticWriter::Target> out;
  for (const auto& name : tables) {
    const db::TableInfo* t = schema.FindTable(name);
    if (!t) continue;
    auto key = t->UsableKey();
    if (key.empty()) continue;
    std::string cols, where;
    for (size_t i = 0; i < key.size(); ++i) {
      cols += (i ? ", " : "") + d.Quote(key[i]);
      where += (i ? " AND " : "") + d.Quote(key[i]) + " = $" + std::to_string(i + 1);
    }
    auto r = conn.Query("SELECT " + cols + " FROM " + d.Table(name) + " LIMIT 200");
    if (!r.ok()) return r.status();
    if (r->rows.empty()) continue;
    SyntheticWriter::Target target;
    target.sql = "UPDATE " + d.Table(name) + " SET " + d.Quote(key[0]) + " = " + d.Quote(key[0]) + " WHERE " + where;
    for (auto& row : r->rows) target.keys.push_back(row);
    out.push_back(std::move(target));
  }
  return out;
}

}  // namespace

std::string RehearsalToJson(const RehearsalInfo& r) {
  json phases = json::array();
  for (const auto& p : r.phases) {
    phases.push_back({{"phase", p.phase}, {"round", p.round}, {"seconds", p.seconds}, {"error", p.error},
                      {"rows", p.rows}});
  }
  json j = {{"migration", r.migration},
            {"at", r.at},
            {"passed", r.passed},
            {"target", r.target},
            {"kept_copy", r.kept_copy},
            {"rows", r.rows},
            {"phases", phases},
            {"rollback_seconds", r.rollback_seconds},
            {"backfill_rows_per_second", r.backfill_rows_per_second},
            {"writer", {{"writes", r.writer_writes}, {"errors", r.writer_errors}, {"max_wait_ms", r.writer_max_wait_ms},
                        {"first_error", r.writer_first_error}}}};
  if (!r.copy_method.empty()) {
    json tables = json::array();
    for (const auto& t : r.copied_tables) tables.push_back({{"table", t.table}, {"rows", t.rows}, {"sampled", t.sampled}});
    j["copy"] = {{"method", r.copy_method},         {"seconds", r.copy_seconds}, {"sample", r.sample},
                 {"tables", tables},                {"dropped_constraints", r.dropped_constraints},
                 {"notes", r.copy_notes}};
  }
  if (!r.leftovers.empty()) j["leftovers"] = r.leftovers;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::vector<RehearsalInfo>> ReadRehearsals(db::Connection& conn, const std::string& migration) {
  std::vector<RehearsalInfo> out;
  auto r = conn.Query("SELECT id, report FROM " + conn.dialect().StateTable("rehearsals") +
                          " WHERE migration = $1 ORDER BY id",
                      {Value::Text(migration)});
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) return out;  // no rehearsal yet
    return r.status();
  }
  for (const auto& row : r->rows) {
    RehearsalInfo i;
    i.id = row[0].AsInt();
    i.json = row[1].text;
    auto j = json::parse(i.json, nullptr, false);
    if (!j.is_object()) continue;
    i.migration = j.value("migration", "");
    i.at = j.value("at", "");
    i.passed = j.value("passed", false);
    i.target = j.value("target", "");
    i.kept_copy = j.value("kept_copy", "");
    i.rows = j.value("rows", int64_t{0});
    i.rollback_seconds = j.value("rollback_seconds", -1.0);
    i.backfill_rows_per_second = j.value("backfill_rows_per_second", 0.0);
    if (j.contains("phases") && j["phases"].is_array()) {
      for (const auto& p : j["phases"]) {
        i.phases.push_back({p.value("phase", ""), p.value("round", 1), p.value("seconds", 0.0), p.value("error", ""),
                            p.value("rows", int64_t{0})});
      }
    }
    if (j.contains("writer") && j["writer"].is_object()) {
      const auto& w = j["writer"];
      i.writer_writes = w.value("writes", int64_t{0});
      i.writer_errors = w.value("errors", int64_t{0});
      i.writer_max_wait_ms = w.value("max_wait_ms", 0.0);
      i.writer_first_error = w.value("first_error", "");
    }
    if (j.contains("copy") && j["copy"].is_object()) {
      const auto& c = j["copy"];
      i.copy_method = c.value("method", "");
      i.copy_seconds = c.value("seconds", 0.0);
      i.sample = c.value("sample", 0.0);
      i.dropped_constraints = c.value("dropped_constraints", std::vector<std::string>{});
      i.copy_notes = c.value("notes", std::vector<std::string>{});
      if (c.contains("tables") && c["tables"].is_array()) {
        for (const auto& t : c["tables"]) {
          i.copied_tables.push_back({t.value("table", ""), t.value("rows", int64_t{0}), t.value("sampled", false)});
        }
      }
    }
    i.leftovers = j.value("leftovers", std::vector<std::string>{});
    out.push_back(std::move(i));
  }
  return out;
}

Result<RehearsalInfo> Engine::Rehearse(const std::string& plan_path, const RehearseOptions& options) {
  if (!options.target_url.empty() && options.target_url == options_.db_url) {
    return InvalidArgument("--target is the database itself; rehearse on a copy or on a staging database");
  }
  if (options.sample < 0 || options.sample >= 1) {
    return InvalidArgument("--sample must be a fraction between 0 and 1 (e.g. 0.1), not " +
                           std::to_string(options.sample));
  }
  RehearsalInfo out;
  out.at = IsoTime(clock()->WallMicros());
  SLUICE_ASSIGN_OR_RETURN(auto source, Connect());
  const db::Dialect& sd = source->dialect();
  if (options.cleanup || options.target_url.empty()) {
    // Copies a killed rehearsal left behind (SIGKILL gives no chance to drop).
    SLUICE_ASSIGN_OR_RETURN(out.leftovers, source->DropLeftoverScratchCopies());
    // And their temporary directories (SQLite's copy, pg_dump's files).
    for (auto& l : db::DropLeftoverScratchDirs()) out.leftovers.push_back(std::move(l));
    if (options.cleanup) return out;
  }
  SLUICE_ASSIGN_OR_RETURN(plan::Plan p, plan::ParsePlanFile(plan_path));
  out.migration = p.name;
  std::set<std::string> touched;
  {
    StateStore store(*source, clock());
    SLUICE_ASSIGN_OR_RETURN(bool has_state, store.Exists());
    if (has_state) {
      SLUICE_ASSIGN_OR_RETURN(auto rec, store.Get(p.name));
      if (rec && rec->phase != kRolledBack) {
        return FailedPrecondition("migration '" + p.name + "' is already " + rec->phase +
                                  " here; rehearse a plan before starting it");
      }
    }
    SLUICE_ASSIGN_OR_RETURN(db::Schema schema, source->Introspect());
    SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(store));
    SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, Compile(p, schema, sd, {"", prev}));
    touched = c.tables;
  }

  // Where to rehearse: the staging database given, or a scratch copy made
  // now beside the source (dropped on every way out below, unless --keep).
  std::string url = options.target_url;
  std::optional<db::ScratchCopy> scratch;
  if (url.empty()) {
    db::ScratchCopyRequest req{p.name, {touched.begin(), touched.end()}, options.sample, options.cancel};
    auto made = source->CreateScratchCopy(req);
    if (!made.ok()) {
      if (made.status().code() != StatusCode::kFailedPrecondition ||
          made.status().message().find("--target") != std::string::npos) {
        return made.status().WithContext("copying the database for the rehearsal");
      }
      return FailedPrecondition(made.status().message() + "; pass --target URL (a staging database, e.g. restored "
                                                          "from a recent backup) to rehearse there");
    }
    scratch = std::move(*made);
    url = scratch->url;
    out.target = "copy of the database (" + scratch->method + ")";
    out.copy_method = scratch->method;
    out.copy_seconds = scratch->seconds;
    for (const auto& t : scratch->tables) {
      out.copied_tables.push_back({t.table, t.rows, t.sampled});
      if (t.sampled) out.sample = options.sample;
    }
    out.dropped_constraints = scratch->dropped_constraints;
    out.copy_notes = scratch->notes;
  }
  auto drop_copy = [&]() -> Status {
    if (!scratch) return Status::Ok();
    if (options.keep) out.kept_copy = scratch->display_url;
    scratch->hold.reset();
    Status s = source->DropScratchCopy(*scratch, options.keep);
    scratch.reset();
    return s;
  };
  struct DropOnExit {
    std::function<Status()> fn;
    ~DropOnExit() { fn().IgnoreError(); }
  } drop_on_exit{drop_copy};

  db::OpenOptions oo;
  oo.state_schema = options_.state_schema;
  oo.schema = options_.schema;
  SLUICE_ASSIGN_OR_RETURN(auto adapter, db::OpenAdapter(url, oo));
  if (out.target.empty()) out.target = adapter->Describe();
  Options co = options_;
  co.db_url = url;
  Engine copy(co, std::move(adapter));

  // The writer's targets and the row count, from the copy as it is now.
  std::unique_ptr<SyntheticWriter> writer;
  {
    auto prepared = [&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(auto conn, copy.Connect());
      SLUICE_ASSIGN_OR_RETURN(db::Schema schema, conn->Introspect());
      StateStore cs(*conn, clock());
      SLUICE_ASSIGN_OR_RETURN(std::string prev, PreviousVersion(cs));
      SLUICE_ASSIGN_OR_RETURN(CompiledMigration c, Compile(p, schema, conn->dialect(), {"", prev}));
      for (const auto& t : c.tables) {
        if (!schema.FindTable(t)) continue;
        auto n = conn->Query("SELECT count(*) FROM " + conn->dialect().Table(t));
        if (n.ok()) out.rows += n->Scalar().AsInt();
      }
      SLUICE_ASSIGN_OR_RETURN(auto targets, WriterTargets(*conn, schema, c.tables));
      SLUICE_ASSIGN_OR_RETURN(auto wconn, copy.Connect());
      writer = std::make_unique<SyntheticWriter>(std::move(wconn), std::move(targets), clock());
      return Status::Ok();
    }();
    if (!prepared.ok()) return prepared.WithContext("preparing the rehearsal");
  }

  // The lifecycle, twice, with the timed rollback between.
  const TransitionOptions forced{true, "rehearsal on a copy"};
  bool failed = false;
  auto phase = [&](const std::string& name, int round, const std::function<Status(RehearsalPhase*)>& fn) {
    if (failed) return;
    RehearsalPhase ph;
    ph.phase = name;
    ph.round = round;
    int64_t t0 = clock()->NowMicros();
    Status s = options.cancel && options.cancel->load() ? Cancelled("the rehearsal was interrupted") : fn(&ph);
    ph.seconds = static_cast<double>(clock()->NowMicros() - t0) / 1e6;
    if (!s.ok()) {
      ph.error = s.message();
      failed = true;
    }
    if (name == "rollback") out.rollback_seconds = ph.seconds;
    if (name == "backfill" && round == 1 && ph.seconds > 0) {
      out.backfill_rows_per_second = static_cast<double>(ph.rows) / ph.seconds;
    }
    out.phases.push_back(ph);
    if (options.on_phase) options.on_phase(ph);
  };
  const std::string m = p.name;
  auto lifecycle = [&](int round) {
    phase("start", round, [&](RehearsalPhase*) { return copy.Start(plan_path, nullptr); });
    phase("backfill", round, [&](RehearsalPhase* ph) -> Status {
      BackfillOptions bo;
      bo.cancel = options.cancel;
      SLUICE_ASSIGN_OR_RETURN(BackfillSummary b, copy.Backfill(m, bo));
      ph->rows = b.rows;
      return Status::Ok();
    });
    phase("verify", round, [&](RehearsalPhase*) -> Status {
      VerifyOptions vo;
      vo.cancel = options.cancel;
      SLUICE_ASSIGN_OR_RETURN(VerifyResult v, copy.Verify(m, vo));
      if (v.passed) return Status::Ok();
      std::string why;
      for (const auto& c : v.checks) {
        if (!c.passed && !c.skipped) why += (why.empty() ? "" : "; ") + c.name + " " + c.table + ": " + c.summary;
      }
      return FailedPrecondition("verification failed: " + why);
    });
    phase("switch", round, [&](RehearsalPhase*) { return copy.Switch(m, false, forced); });
  };
  writer->Start();
  lifecycle(1);
  phase("rollback", 1, [&](RehearsalPhase*) { return copy.Rollback(m, false); });
  lifecycle(2);
  // The old application retires at contract: its writes stop first.
  writer->Stop();
  phase("complete", 2, [&](RehearsalPhase*) { return copy.Complete(m, forced); });
  out.passed = !failed;
  out.writer_writes = writer->writes;
  out.writer_errors = writer->errors;
  out.writer_max_wait_ms = writer->max_wait_ms;
  out.writer_first_error = writer->first_error;
  writer.reset();
  Status dropped = drop_copy();
  if (!dropped.ok()) out.copy_notes.push_back("the copy could not be dropped: " + dropped.message());

  // The only write to the source: the record, in sluice's own state tables.
  out.json = RehearsalToJson(out);
  Status recorded = db::InTransaction(*source, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(EnsureStateTable(*source, "rehearsals", true));
    return source
        ->Query("INSERT INTO " + sd.StateTable("rehearsals") + " (migration, at, passed, report) VALUES ($1, $2, $3, $4)",
                {Value::Text(m), Value::Text(out.at), Value::Int(out.passed ? 1 : 0), Value::Text(out.json)})
        .status();
  });
  if (!recorded.ok()) return recorded.WithContext("the rehearsal ran but could not be recorded");
  return out;
}

}  // namespace sluice::engine
