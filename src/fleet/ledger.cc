#include "fleet/ledger.h"

#include "common/clock.h"
#include "db/adapter.h"

namespace sluice::fleet {

using db::Value;

Ledger::~Ledger() = default;

std::string Ledger::Now() { return IsoTime(clock_->WallMicros()); }

Result<std::unique_ptr<Ledger>> Ledger::Open(const std::string& url, const std::string& migration, Clock* clock,
                                             const std::string& actor, bool create) {
  const std::string none = "no fleet ledger at " + url +
                           " yet (nothing was applied with it); run `sluice fleet apply` first, or name the ledger "
                           "it used with --ledger";
  db::OpenOptions oo;
  oo.create = create;  // the embedded ledger is created on first use
  auto adapter = db::OpenAdapter(url, oo);
  if (!adapter.ok()) {
    if (!create && adapter.status().code() == StatusCode::kNotFound) return NotFound(none);
    return adapter.status().WithContext("ledger " + url);
  }
  auto conn = (*adapter)->Connect();
  if (!conn.ok()) {
    if (!create && conn.status().code() == StatusCode::kNotFound) return NotFound(none);
    return conn.status().WithContext("ledger " + url);
  }
  std::unique_ptr<Ledger> l(new Ledger());
  l->conn_ = std::move(*conn);
  l->url_ = url;
  l->migration_ = migration;
  l->actor_ = actor;
  l->clock_ = clock != nullptr ? clock : Clock::Real();
  const db::Dialect& d = l->conn_->dialect();
  l->runs_ = d.StateTable("fleet_runs");
  l->databases_ = d.StateTable("fleet_databases");
  l->waves_ = d.StateTable("fleet_waves");
  l->decisions_ = d.StateTable("fleet_decisions");
  if (!create) {
    // Read-only: the tables must be there already (a query that fails
    // because they are not means no run was recorded).
    if (!l->conn_->Query("SELECT count(*) FROM " + l->runs_, {}).ok()) return NotFound(none);
    return l;
  }
  // sluice's own state tables too: the runner lock (TryLock) lives there.
  std::string serialise = d.StateSetupLockSql();
  if (!serialise.empty()) SLUICE_RETURN_IF_ERROR(l->conn_->Exec(serialise).WithContext("ledger " + url));
  for (const auto& ddl : d.StateSchema()) SLUICE_RETURN_IF_ERROR(l->conn_->Exec(ddl).WithContext("ledger " + url));
  for (const std::string& ddl : {
           "CREATE TABLE IF NOT EXISTS " + l->runs_ +
               " (migration TEXT PRIMARY KEY, plan TEXT NOT NULL, inventory TEXT NOT NULL, started_at TEXT NOT NULL, "
               "updated_at TEXT NOT NULL)",
           "CREATE TABLE IF NOT EXISTS " + l->databases_ +
               " (migration TEXT NOT NULL, db TEXT NOT NULL, wave TEXT NOT NULL, step TEXT NOT NULL, error TEXT NOT "
               "NULL, at TEXT NOT NULL, PRIMARY KEY (migration, db))",
           "CREATE TABLE IF NOT EXISTS " + l->waves_ +
               " (migration TEXT NOT NULL, wave TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY "
               "(migration, wave))",
           "CREATE TABLE IF NOT EXISTS " + l->decisions_ +
               " (migration TEXT NOT NULL, seq BIGINT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT "
               "NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (migration, seq))",
       }) {
    SLUICE_RETURN_IF_ERROR(l->conn_->Exec(ddl).WithContext("ledger " + url));
  }
  return l;
}

Status Ledger::Lock() {
  std::lock_guard<std::mutex> g(mu_);
  auto r = conn_->TryLock("fleet " + migration_);
  if (!r.ok()) return r.status().WithContext("ledger " + url_);
  if (!r->acquired) {
    return FailedPrecondition("another fleet runner of '" + migration_ + "' is running (" + r->holder +
                              "); wait for it or stop it, then rerun");
  }
  return Status::Ok();
}

Status Ledger::RecordRun(const std::string& plan, const std::string& inventory) {
  std::lock_guard<std::mutex> g(mu_);
  std::string now = Now();
  return conn_
      ->Query("INSERT INTO " + runs_ +
                  " (migration, plan, inventory, started_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT "
                  "(migration) DO UPDATE SET plan = excluded.plan, inventory = excluded.inventory, updated_at = "
                  "excluded.updated_at",
              {Value::Text(migration_), Value::Text(plan), Value::Text(inventory), Value::Text(now)})
      .status();
}

Status Ledger::SetDatabase(const std::string& database, const std::string& wave, const std::string& step,
                           const std::string& error) {
  std::lock_guard<std::mutex> g(mu_);
  return conn_
      ->Query("INSERT INTO " + databases_ +
                  " (migration, db, wave, step, error, at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (migration, "
                  "db) DO UPDATE SET wave = excluded.wave, step = excluded.step, error = excluded.error, at = "
                  "excluded.at",
              {Value::Text(migration_), Value::Text(database), Value::Text(wave), Value::Text(step),
               Value::Text(error), Value::Text(Now())})
      .status();
}

Status Ledger::SetWave(const std::string& wave, const std::string& state) {
  std::lock_guard<std::mutex> g(mu_);
  return conn_
      ->Query("INSERT INTO " + waves_ +
                  " (migration, wave, state, at) VALUES ($1, $2, $3, $4) ON CONFLICT (migration, wave) DO UPDATE "
                  "SET state = excluded.state, at = excluded.at",
              {Value::Text(migration_), Value::Text(wave), Value::Text(state), Value::Text(Now())})
      .status();
}

Status Ledger::Decide(const std::string& subject, const std::string& decision, const std::string& reason) {
  std::lock_guard<std::mutex> g(mu_);
  return conn_
      ->Query("INSERT INTO " + decisions_ +
                  " (migration, seq, at, actor, subject, decision, reason) SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, "
                  "$3, $4, $5, $6 FROM " + decisions_ + " WHERE migration = $1",
              {Value::Text(migration_), Value::Text(Now()), Value::Text(actor_), Value::Text(subject),
               Value::Text(decision), Value::Text(reason)})
      .status();
}

Result<std::map<std::string, LedgerDatabase>> Ledger::Databases() {
  std::lock_guard<std::mutex> g(mu_);
  SLUICE_ASSIGN_OR_RETURN(auto r, conn_->Query("SELECT db, wave, step, error, at FROM " + databases_ +
                                                   " WHERE migration = $1",
                                               {Value::Text(migration_)}));
  std::map<std::string, LedgerDatabase> out;
  for (const auto& row : r.rows) out[row[0].text] = {row[1].text, row[2].text, row[3].text, row[4].text};
  return out;
}

Result<std::map<std::string, LedgerWave>> Ledger::Waves() {
  std::lock_guard<std::mutex> g(mu_);
  SLUICE_ASSIGN_OR_RETURN(
      auto r, conn_->Query("SELECT wave, state, at FROM " + waves_ + " WHERE migration = $1", {Value::Text(migration_)}));
  std::map<std::string, LedgerWave> out;
  for (const auto& row : r.rows) out[row[0].text] = {row[1].text, row[2].text};
  return out;
}

Result<std::vector<LedgerDecision>> Ledger::Decisions() {
  std::lock_guard<std::mutex> g(mu_);
  SLUICE_ASSIGN_OR_RETURN(auto r, conn_->Query("SELECT seq, at, actor, subject, decision, reason FROM " + decisions_ +
                                                   " WHERE migration = $1 ORDER BY seq",
                                               {Value::Text(migration_)}));
  std::vector<LedgerDecision> out;
  for (const auto& row : r.rows) {
    out.push_back({row[0].AsInt(), row[1].text, row[2].text, row[3].text, row[4].text, row[5].text});
  }
  return out;
}

Result<std::string> Ledger::LatestMigration() {
  std::lock_guard<std::mutex> g(mu_);
  SLUICE_ASSIGN_OR_RETURN(auto r, conn_->Query("SELECT migration FROM " + runs_ + " ORDER BY updated_at DESC LIMIT 1"));
  return r.rows.empty() ? std::string() : r.rows[0][0].text;
}

}  // namespace sluice::fleet
