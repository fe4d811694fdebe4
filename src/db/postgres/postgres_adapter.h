// The PostgreSQL adapter: the only code that includes <libpq-fe.h>.
#pragma once

#include <memory>
#include <string>

#include "db/adapter.h"

namespace sluice::db {

struct PostgresOptions {
  std::string conninfo;            // URL or key=value string ("" = PG* env)
  std::string schema = "public";   // the schema whose tables are migrated
  std::string state_schema = "sluice";
};

std::unique_ptr<Adapter> MakePostgresAdapter(PostgresOptions options);

}  // namespace sluice::db
