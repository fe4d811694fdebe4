#include "cli/demo.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "cli/output.h"
#include "sluice/sluice.h"

namespace sluice::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPlanName = "001_orders_cents";
constexpr const char* kPlan = R"(# Store order amounts as integer cents instead of text, give the email
# column a clearer name, and require every order to have a status.
operations:
  - rename_column:
      table: orders
      from: email
      to: customer_email
  - rename_column:
      table: orders
      from: amount
      to: amount_cents
  - alter_column:
      table: orders
      column: amount_cents
      type: INTEGER
      nullable: false
      # up reads the old version's columns, down the new version's.
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%d.%02d', amount_cents / 100, amount_cents % 100)
  - alter_column:
      table: orders
      column: status
      nullable: false
      up: coalesce(status, 'pending')
      down: status
backfill:
  chunk_target_ms: 100
)";

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// An application version writing in a loop until told to stop.
class Writer {
 public:
  Writer(std::string name, std::unique_ptr<Session> s, bool new_schema, int64_t max_id)
      : name_(std::move(name)), s_(std::move(s)), new_schema_(new_schema), max_id_(max_id) {}
  ~Writer() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t inserts() const { return inserts_; }
  int64_t updates() const { return updates_; }
  int64_t failures() const { return failures_; }
  int64_t writes() const { return inserts_ + updates_; }
  std::string first_error() {
    std::lock_guard<std::mutex> l(mu_);
    return first_error_;
  }

 private:
  void Loop() {
    std::mt19937_64 rng(new_schema_ ? 2 : 1);
    while (!stop_) {
      int64_t cents = static_cast<int64_t>(rng() % 50000);
      std::string amount = fmt::format("{}.{:02}", cents / 100, cents % 100);
      static const char* kStatus[] = {"paid", "shipped", "cancelled", "refunded"};
      std::string status = kStatus[rng() % 4];
      bool insert = rng() % 10 < 6;
      Result<Rows> r = Rows{};
      if (insert) {
        std::string email = fmt::format("buyer{}@example.com", rng() % 100000);
        if (new_schema_) {
          r = s_->Query("INSERT INTO orders (customer_email, amount_cents, status, created_at) VALUES ($1, $2, $3, "
                        "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                        {email, cents, status});
        } else {
          // The old application sometimes leaves the status empty.
          Param st = rng() % 10 == 0 ? Param(nullptr) : Param(status);
          r = s_->Query("INSERT INTO orders (email, amount, status, created_at) VALUES ($1, $2, $3, "
                        "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                        {email, amount, st});
        }
      } else {
        int64_t id = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(max_id_));
        if (new_schema_) {
          r = s_->Query("UPDATE orders SET amount_cents = $1, status = $2 WHERE id = $3", {cents, status, id});
        } else {
          r = s_->Query("UPDATE orders SET amount = $1, status = $2 WHERE id = $3", {amount, status, id});
        }
      }
      if (r.ok()) {
        (insert ? inserts_ : updates_)++;
      } else {
        failures_++;
        std::lock_guard<std::mutex> l(mu_);
        if (first_error_.empty()) first_error_ = r.status().message();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(1500));
    }
  }

  std::string name_;
  std::unique_ptr<Session> s_;
  bool new_schema_;
  int64_t max_id_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> inserts_{0}, updates_{0}, failures_{0};
  std::mutex mu_;
  std::string first_error_;
};

int Problem(const std::string& what, const Status& s) {
  fmt::print(stderr, "sluice: error: demo {}: {}\n", what, s.message());
  return 1;
}

std::string SqlitePath(const std::string& url) {
  if (url.rfind("sqlite:///", 0) == 0) return url.substr(9);
  if (url.rfind("sqlite:", 0) == 0) return url.substr(7);
  return url;
}

}  // namespace

int RunDemo(const DemoOptions& o) {
  std::string url = o.db_url.empty() ? "sqlite:sluice-demo.db" : o.db_url;
  if (url.rfind("sqlite:", 0) != 0) {
    fmt::print(stderr, "sluice: error: the demo runs on SQLite; pass --db sqlite:PATH (got '{}')\n", url);
    return 2;
  }
  if (o.rows < 1000) {
    fmt::print(stderr, "sluice: error: the demo needs --rows of at least 1000\n");
    return 2;
  }
  const std::string path = SqlitePath(url);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    // Only ever replace a database that an earlier demo made.
    auto probe = Migrator::Open({url});
    bool ours = false;
    if (probe.ok()) {
      auto s = (*probe)->Connect("");
      if (s.ok()) {
        auto r = (*s)->Query("SELECT count(*) FROM sqlite_schema WHERE name = 'sluice_demo_info'");
        ours = r.ok() && !r->rows.empty() && r->rows[0][0] == std::optional<std::string>("1");
      }
    }
    if (!ours) {
      fmt::print(stderr, "sluice: error: '{}' exists and was not made by `sluice demo`; pick another --db\n", path);
      return 2;
    }
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
  }

  Options opts;
  opts.db_url = url;
  opts.create_database = true;
  opts.actor = "sluice-demo";
  auto opened = Migrator::Open(opts);
  if (!opened.ok()) return Problem("open", opened.status());
  Migrator& m = **opened;

  fmt::print("sluice demo: a live, zero-downtime migration on SQLite\n");
  fmt::print("database: {}\n\n", url);

  // --- the application's table -------------------------------------------
  double t0 = Now();
  {
    auto s = m.Connect("");
    if (!s.ok()) return Problem("setup", s.status());
    Status st = (*s)->Exec(fmt::format(
        "PRAGMA journal_mode = WAL;"
        "CREATE TABLE sluice_demo_info (created_by TEXT);"
        "INSERT INTO sluice_demo_info VALUES ('sluice demo');"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT NOT NULL, status TEXT, "
        "created_at TEXT NOT NULL);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {0}) "
        "INSERT INTO orders (id, email, amount, status, created_at) SELECT i, "
        "'Customer' || (i % 50000) || '@Example.com', printf('%d.%02d', abs(random()) % 500, abs(random()) % 100), "
        "CASE abs(random()) % 10 WHEN 0 THEN NULL WHEN 1 THEN 'cancelled' WHEN 2 THEN 'shipped' ELSE 'paid' END, "
        "strftime('%Y-%m-%dT%H:%M:%SZ', '2026-01-01', '+' || (i % 300) || ' days') FROM n;",
        o.rows));
    if (!st.ok()) return Problem("setup", st);
  }
  fmt::print("[setup]    orders: {} rows (id, email, amount as text like '12.34', status with NULLs) in {:.1f}s\n",
             FormatCount(o.rows), Now() - t0);

  fs::path dir = fs::temp_directory_path() / fmt::format("sluice-demo-{}", getpid());
  fs::create_directories(dir, ec);
  fs::path plan_path = dir / (std::string(kPlanName) + ".yaml");
  {
    std::ofstream out(plan_path);
    out << kPlan;
  }
  fmt::print("[plan]     {}\n", plan_path.string());
  fmt::print("           rename email -> customer_email; amount (text) -> amount_cents (INTEGER NOT NULL);\n"
             "           status becomes NOT NULL (NULL -> 'pending')\n");

  auto old_session = m.Connect("");
  if (!old_session.ok()) return Problem("old application", old_session.status());
  Writer old_app("old app", std::move(*old_session), false, o.rows);
  old_app.Start();
  fmt::print("[old app]  writing through the old schema (inserts and updates) from now on\n\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // --- 1. start ------------------------------------------------------------
  t0 = Now();
  Status st = m.Start(plan_path.string());
  if (!st.ok()) return Problem("start", st);
  fmt::print("[1/5 start]    expand: new columns, dual-write triggers, version '{}' published ({:.0f} ms)\n",
             kPlanName, (Now() - t0) * 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // --- 2. backfill -----------------------------------------------------------
  ProgressPrinter progress(isatty(STDOUT_FILENO));
  BackfillOptions bo;
  bo.cancel = o.cancel;
  bo.on_progress = [&](const BackfillProgress& p) { progress.Update(p); };
  fmt::print("[2/5 backfill] rewriting historical rows in key order, one checkpointed chunk at a time:\n");
  auto bf = m.Backfill(kPlanName, bo);
  progress.Finish();
  if (!bf.ok()) return Problem("backfill", bf.status());
  double rate = bf->seconds > 0 ? static_cast<double>(bf->rows) / bf->seconds : 0;
  fmt::print("               {} rows in {:.2f}s ({} rows/s) while the old app kept writing\n", FormatCount(bf->rows),
             bf->seconds, FormatCount(static_cast<int64_t>(rate)));

  // --- 3. verify -------------------------------------------------------------
  auto v = m.Verify(kPlanName);
  if (!v.ok()) return Problem("verify", v.status());
  int64_t divergent = 0;
  fmt::print("[3/5 verify]   {}\n", v->passed ? "passed" : "FAILED");
  for (const auto& c : v->checks) {
    if (!c.skipped && c.name != "row_count") divergent += c.failures;
    fmt::print("               [{}] {} {}: {}\n", c.skipped ? "skip" : (c.passed ? " ok " : "FAIL"), c.name,
               c.table + (c.column.empty() ? "" : "." + c.column), c.summary);
    for (const auto& e : c.evidence) fmt::print("                      {}\n", e);
  }
  if (!v->passed) return Problem("verify", FailedPrecondition("verification failed"));

  // --- 4. switch -------------------------------------------------------------
  st = m.Switch(kPlanName, false);
  if (!st.ok()) return Problem("switch", st);
  auto new_session = m.Connect("live");
  if (!new_session.ok()) return Problem("new application", new_session.status());
  Writer new_app("new app", std::move(*new_session), true, o.rows);
  new_app.Start();
  fmt::print("[4/5 switch]   reads now go to the new version; the new app writes through it\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  old_app.Stop();
  fmt::print("               both versions wrote side by side; old app drained after {} writes\n",
             FormatCount(old_app.writes()));

  // --- 5. complete -----------------------------------------------------------
  t0 = Now();
  st = m.Complete(kPlanName);
  if (!st.ok()) return Problem("complete", st);
  fmt::print("[5/5 complete] contract: old columns and triggers gone, NOT NULL in place ({:.0f} ms); the new app "
             "kept writing\n",
             (Now() - t0) * 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  new_app.Stop();

  // --- final checks, by SQL against the database -------------------------------
  auto check = m.Connect("");
  if (!check.ok()) return Problem("check", check.status());
  auto count = (*check)->Query("SELECT count(*) FROM orders");
  auto nulls = (*check)->Query("SELECT count(*) FROM orders WHERE amount_cents IS NULL OR status IS NULL");
  auto cols = (*check)->Query(
      "SELECT group_concat(name || CASE WHEN \"notnull\" THEN ' NOT NULL' ELSE '' END, ', ') FROM "
      "pragma_table_info('orders')");
  if (!count.ok() || !nulls.ok() || !cols.ok()) return Problem("check", InvalidArgument("final queries failed"));
  int64_t rows_now = std::stoll(count->rows[0][0].value_or("0"));
  int64_t expected = o.rows + old_app.inserts() + new_app.inserts();
  int64_t null_rows = std::stoll(nulls->rows[0][0].value_or("0"));
  bool ok = rows_now == expected && null_rows == 0 && divergent == 0 && old_app.failures() == 0 &&
            new_app.failures() == 0;

  fmt::print("\nsummary\n");
  fmt::print("  rows backfilled:                 {} ({} rows/s)\n", FormatCount(bf->rows),
             FormatCount(static_cast<int64_t>(rate)));
  fmt::print("  old app writes during migration: {} ({} inserts, {} updates), failed: {}\n",
             FormatCount(old_app.writes()), FormatCount(old_app.inserts()), FormatCount(old_app.updates()),
             old_app.failures());
  if (old_app.failures()) fmt::print("    first failure: {}\n", old_app.first_error());
  fmt::print("  new app writes after switch:     {} ({} inserts, {} updates), failed: {}\n",
             FormatCount(new_app.writes()), FormatCount(new_app.inserts()), FormatCount(new_app.updates()),
             new_app.failures());
  if (new_app.failures()) fmt::print("    first failure: {}\n", new_app.first_error());
  fmt::print("  divergent rows found by verify:  {}\n", divergent);
  fmt::print("  rows now: {} = {} + {} + {} inserted: {}\n", FormatCount(rows_now), FormatCount(o.rows),
             FormatCount(old_app.inserts()), FormatCount(new_app.inserts()), rows_now == expected ? "no row lost" : "MISMATCH");
  fmt::print("  NULL amount_cents or status:     {}\n", null_rows);
  fmt::print("  orders is now: {}\n", cols->rows[0][0].value_or(""));
  fmt::print("  result: {}\n", ok ? "PASS - the old app never failed and no row was lost" : "FAIL");
  fs::remove_all(dir, ec);
  if (!o.keep) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix, ec);
  } else {
    fmt::print("  database kept at {} (see `sluice --db {} status`)\n", path, url);
  }
  return ok ? 0 : 1;
}

}  // namespace sluice::cli
