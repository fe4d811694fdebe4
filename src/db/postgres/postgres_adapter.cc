#include "db/postgres/postgres_adapter.h"

namespace sluice::db {
namespace {

// Placeholder until the PostgreSQL adapter lands: refuses clearly.
class UnsupportedAdapter : public Adapter {
 public:
  explicit UnsupportedAdapter(PostgresOptions o) : opts_(std::move(o)) {}
  const Dialect& dialect() const override { std::abort(); }
  Result<std::unique_ptr<Connection>> Connect() override {
    return FailedPrecondition("PostgreSQL is not supported by this build yet");
  }
  std::string Describe() const override { return "postgresql"; }

 private:
  PostgresOptions opts_;
};

}  // namespace

std::unique_ptr<Adapter> MakePostgresAdapter(PostgresOptions options) {
  return std::make_unique<UnsupportedAdapter>(std::move(options));
}

}  // namespace sluice::db
