// The PostgreSQL adapter: the only code that includes <libpq-fe.h>.
//
// Connections get sluice's libpq defaults for every option the user left
// unset (see kPostgresConnectDefaults), map every SQLSTATE to a StatusCode
// (postgres_errors.h), and re-apply their session setup after Reconnect().
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "db/adapter.h"

namespace sluice::db {

struct PostgresOptions {
  std::string conninfo;            // URL or key=value string ("" = PG* env)
  std::string schema = "public";   // the schema whose tables are migrated
  std::string state_schema = "sluice";
};

std::unique_ptr<Adapter> MakePostgresAdapter(PostgresOptions options);

// libpq options sluice sets unless the user set them: a connection attempt
// gives up after 10 s (per host), and TCP keepalives notice a dead server or
// network after about 60 s of silence (30 s idle, then 3 probes 10 s apart)
// instead of the kernel's two hours, so a statement waiting on a vanished
// server fails with kUnavailable instead of hanging.
inline const std::vector<std::pair<std::string, std::string>> kPostgresConnectDefaults = {
    {"connect_timeout", "10"}, {"keepalives", "1"},       {"keepalives_idle", "30"},
    {"keepalives_interval", "10"}, {"keepalives_count", "3"}};

// What sluice passes to PQconnectStartParams/PQconnectdbParams (with
// expand_dbname = 1): each default above the user did not set, then
// "dbname" = `conninfo` (a URL or key=value string, expanded by libpq, so
// its own values override the defaults placed before it). A default is left
// out when the PG* environment or the PGSERVICE service file sets it
// (explicit values would override those), and all of them are left out when
// `conninfo` names a `service` (its file is the user's full configuration,
// which libpq reads only for options still unset).
struct PostgresConnectParams {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  // libpq's *Params calls take two NULL-terminated arrays; these point into
  // `keywords` and `values`, so they live only as long as this object.
  std::vector<const char*> KeywordArray() const { return Array(keywords); }
  std::vector<const char*> ValueArray() const { return Array(values); }

 private:
  static std::vector<const char*> Array(const std::vector<std::string>& v) {
    std::vector<const char*> out;
    out.reserve(v.size() + 1);
    for (const auto& s : v) out.push_back(s.c_str());
    out.push_back(nullptr);
    return out;
  }
};
// kInvalidArgument when `conninfo` is malformed (the message never repeats
// the string: it may hold a password).
Result<PostgresConnectParams> BuildPostgresConnectParams(const std::string& conninfo);

// Test-only: the value libpq uses for option `keyword` on `conn` (from
// PQconninfo), "" when unset or when `conn` is not a PostgreSQL connection.
std::string TEST_PostgresConnectionOption(Connection& conn, const std::string& keyword);

}  // namespace sluice::db
