// JSON form of a schema snapshot, stored with each migration at start so a
// resumed or later phase recompiles against exactly what start saw.
#pragma once

#include <string>

#include "db/schema.h"
#include "sluice/status.h"

namespace sluice::engine {

std::string SchemaToJson(const db::Schema& schema);
Result<db::Schema> SchemaFromJson(const std::string& json);

}  // namespace sluice::engine
