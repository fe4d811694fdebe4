// A small program that uses sluice as a library: it creates a SQLite
// database, then runs one migration through the public API (lint, start,
// backfill, verify, complete) while reading through both versions, and
// prints what it did. Build it against an installed sluice:
//
//   cmake -S examples/api -B /tmp/ex -DCMAKE_PREFIX_PATH=/usr/local && cmake --build /tmp/ex
//   g++ -std=c++20 migrate_example.cc $(pkg-config --cflags --libs sluice) -o migrate_example
//
//   ./migrate_example /tmp/shop.db     # the file must not exist yet
//
// Exit status: 0 when the migration completed and every row arrived.
#include <sluice/sluice.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

constexpr const char* kPlan = R"(# Integer cents instead of text amounts.
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%d.%02d', amount / 100, amount % 100)
)";

int Fail(const char* step, const sluice::Status& s) {
  std::fprintf(stderr, "migrate_example: %s: %s\n", step, s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: migrate_example NEW_SQLITE_FILE\n");
    return 2;
  }
  std::string db = argv[1];
  if (std::ifstream(db).good()) {
    std::fprintf(stderr, "migrate_example: %s exists; give a new file\n", db.c_str());
    return 2;
  }
  sluice::Options options;
  options.db_url = "sqlite:" + db;
  options.create_database = true;
  options.actor = "migrate_example";
  auto opened = sluice::Migrator::Open(options);
  if (!opened.ok()) return Fail("open", opened.status());
  sluice::Migrator& m = **opened;

  // The application's table, as the old version knows it.
  auto app = m.Connect("");
  if (!app.ok()) return Fail("connect", app.status());
  sluice::Status s = (*app)->Exec(
      "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount TEXT NOT NULL);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
      "INSERT INTO orders SELECT i, printf('%d.%02d', i, i % 100) FROM n;");
  if (!s.ok()) return Fail("create table", s);

  std::string plan = db + "-001_cents.yaml";
  std::ofstream(plan) << kPlan;

  auto lint = m.Lint(plan);
  if (!lint.ok()) return Fail("lint", lint.status());
  if (!lint->ok) {
    for (const auto& e : lint->errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  if (s = m.Start(plan); !s.ok()) return Fail("start", s);
  std::printf("started %s\n", plan.c_str());

  auto backfill = m.Backfill("", {});
  if (!backfill.ok()) return Fail("backfill", backfill.status());
  std::printf("backfilled %lld rows\n", static_cast<long long>(backfill->rows));

  // Both versions read the same row, each in its own shape. The new
  // version's name is the migration's `version` (status shows it).
  auto list = m.List();
  if (!list.ok()) return Fail("status", list.status());
  std::string name = list->back().name;  // the plan file's name without extension
  std::string version = list->back().version;
  auto new_app = m.Connect(version);
  if (!new_app.ok()) return Fail("connect to the new version", new_app.status());
  auto old_row = (*app)->Query("SELECT amount FROM orders WHERE id = $1", {int64_t{42}});
  auto new_row = (*new_app)->Query("SELECT amount FROM orders WHERE id = $1", {int64_t{42}});
  if (!old_row.ok()) return Fail("old read", old_row.status());
  if (!new_row.ok()) return Fail("new read", new_row.status());
  std::printf("order 42: old version '%s', new version %s\n", old_row->rows.at(0).at(0).value_or("NULL").c_str(),
              new_row->rows.at(0).at(0).value_or("NULL").c_str());

  auto report = m.Verify(name);
  if (!report.ok()) return Fail("verify", report.status());
  std::printf("verification %s\n", report->passed ? "passed" : "FAILED");
  if (!report->passed) return 1;
  new_app->reset();  // sessions of the versions complete retires
  app->reset();
  if (s = m.Complete(name); !s.ok()) return Fail("complete", s);

  list = m.List();
  if (!list.ok()) return Fail("status", list.status());
  for (const auto& info : *list) std::printf("%s: %s\n", info.name.c_str(), info.phase.c_str());

  auto done = m.Connect("");
  if (!done.ok()) return Fail("connect", done.status());
  auto sum = (*done)->Query("SELECT count(*), sum(amount), typeof(amount) FROM orders");
  if (!sum.ok()) return Fail("final read", sum.status());
  const auto& r = sum->rows.at(0);
  std::printf("after complete: %s rows, sum %s cents, amount is %s\n", r[0].value_or("?").c_str(),
              r[1].value_or("?").c_str(), r[2].value_or("?").c_str());
  return r[0] == std::optional<std::string>("500") ? 0 : 1;
}
