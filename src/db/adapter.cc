#include "db/adapter.h"

#include "common/sql_text.h"

namespace sluice::db {

std::string Dialect::Quote(std::string_view ident) const { return sql::QuoteIdent(ident); }

std::string Dialect::NewColumnName(std::string_view logical) const {
  return "_sluice_new_" + std::string(logical);
}

}  // namespace sluice::db
