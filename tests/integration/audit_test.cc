// The contract audit on a real PostgreSQL with pg_stat_statements preloaded
// (issue 12): after `switch`, an old application session (role legacy,
// application_name legacy-web) and a reporting job (role reporting, a CTE
// with an alias and SELECT *) still read the renamed column through the
// base table, while a new-version session (role modern) reads the new
// name through its version. `sluice audit` names the old ones with role,
// application_name and statement, never the new one; the complete gate with
// `audit: required` refuses naming them, and opens once they have stopped
// and a later audit is clean. Without pg_stat_statements the required gate
// refuses with the configuration advice, and --force --reason is recorded.
#include <libpq-fe.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

// One cluster for the binary, with both sources loaded; each test's
// database chooses what it enables (CREATE EXTENSION, pgaudit.role).
PgCluster* Pg() {
  PgCluster::SetSharedPreloadLibraries("pg_stat_statements,pgaudit");
  PgCluster::SetExtraConfig("logging_collector = on\nlog_destination = 'stderr,csvlog'");
  return PgCluster::Shared();
}

constexpr const char* kSetup = R"(
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'legacy') THEN CREATE ROLE legacy LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reporting') THEN CREATE ROLE reporting LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'modern') THEN CREATE ROLE modern LOGIN; END IF;
END $$;
CREATE TABLE orders (id integer PRIMARY KEY, unit_price numeric NOT NULL, qty integer NOT NULL);
INSERT INTO orders SELECT g, g * 1.5, g FROM generate_series(1, 20) g;
GRANT USAGE ON SCHEMA public TO legacy, reporting, modern;
GRANT SELECT ON orders TO legacy, reporting;
)";

constexpr const char* kPlan = R"(
operations:
  - rename_column:
      table: orders
      from: unit_price
      to: price
gates:
  complete:
    audit: required
)";

// The old column dropped (not renamed): the new version's views do not
// read it, so a brownout of it leaves the new version alone.
constexpr const char* kDropPlan = R"(
operations:
  - drop_column:
      table: orders
      column: unit_price
)";

// Direct grants beyond SELECT, table-level and per column (one with grant
// option), that a brownout must restore exactly.
constexpr const char* kGrants =
    "GRANT INSERT (unit_price) ON orders TO legacy; GRANT UPDATE (qty) ON orders TO modern WITH GRANT OPTION; "
    "GRANT UPDATE ON orders TO legacy";

// One client session held open (libpq), like an application's pooled
// connection.
class Client {
 public:
  Client(const std::string& url, const std::string& role, const std::string& app) {
    // postgresql://postgres@127.0.0.1:PORT/DB -> the same as `role`.
    std::string u = url;
    u.replace(u.find("postgres@"), 9, role + "@");
    conn_ = PQconnectdb((u + "?application_name=" + app).c_str());
  }
  ~Client() { Close(); }
  bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  std::string Run(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    std::string err;
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) err = PQerrorMessage(conn_);
    PQclear(r);
    return err;
  }
  void Close() {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
  }

 private:
  PGconn* conn_ = nullptr;
};

struct World {
  TempDir dir;
  std::string url, file;
  std::unique_ptr<Migrator> m;
  const std::string name = "001_rename";

  std::string fingerprint;  // the catalog before start

  void Setup(bool with_statements, bool with_pgaudit = false, const char* plan = kPlan) {
    url = Pg()->CreateDatabase("audit");
    ASSERT_FALSE(url.empty());
    Pg()->Psql(url, kSetup);
    if (with_statements) Pg()->Psql(url, "CREATE EXTENSION pg_stat_statements");
    // The operator's part: the audit role pgaudit logs for (sluice creates
    // it and grants it the old columns).
    if (with_pgaudit) {
      Pg()->Psql(url, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET pgaudit.role = %L', current_database(), "
                      "'sluice_audit'); END $$");
    }
    fingerprint = CatalogFingerprint(url);
    file = dir.Write(name + ".yaml", plan);
    m = OpenUrl(url);
    ASSERT_NE(m, nullptr);
    SLUICE_ASSERT_OK(m->Start(file));
    ASSERT_TRUE(m->Backfill(name, {}).ok());
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, name));
    SLUICE_ASSERT_OK(m->Switch(name, false));
    Pg()->Psql(url, "GRANT USAGE ON SCHEMA \"public_" + name + "\" TO modern; GRANT SELECT ON ALL TABLES IN SCHEMA "
                    "\"public_" + name + "\" TO modern; GRANT SELECT ON orders TO modern");

  }

  // The brownout tests' world: the dropped column, and kGrants.
  void SetupBrownout() {
    Setup(false, false, kDropPlan);
    Pg()->Psql(url, kGrants);
  }

  Json Audit() {
    auto r = m->Audit(name, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Json::parse(r->json) : Json();
  }
};

// Waits until no session of `role` is left in pg_stat_activity (a closed
// client's backend exits asynchronously).
void WaitGone(const std::string& url, const std::string& role) {
  for (int i = 0; i < 1000; ++i) {
    if (Pg()->Psql(url, "SELECT count(*) FROM pg_stat_activity WHERE usename = '" + role + "'") == "0") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "sessions of " << role << " did not end";
}

std::string Findings(const Json& report, const std::string& source = "") {
  std::string out;
  for (const auto& f : report["findings"]) {
    if (!source.empty() && f["source"] != source) continue;
    out += f["source"].get<std::string>() + " " + f["object"].get<std::string>() + " role=" +
           f["role"].get<std::string>() + " app=" + f["application"].get<std::string>() + " kinds=" +
           f["kinds"].get<std::string>() + " | " + f["statement"].get<std::string>() + "\n";
  }
  return out;
}

// The coverage entry of `source`.
Json CoverageOf(const Json& report, const std::string& source) {
  for (const auto& c : report["coverage"]) {
    if (c["source"] == source) return c;
  }
  return Json();
}

TEST(AuditPg, NamesOldReadersNotTheNewVersionAndGatesComplete) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.Setup(true));

  // The statistics' baseline was taken at switch: the window's first audit
  // covers the interval since then (nobody yet).
  Json first = w.Audit();
  EXPECT_TRUE(first["coverage_sufficient"].get<bool>()) << first.dump(2);
  EXPECT_FALSE(first["blocking"].get<bool>()) << Findings(first);
  EXPECT_THAT(CoverageOf(first, "pgaudit")["detail"].get<std::string>(), HasSubstr("pgaudit.role is not set"));
  ASSERT_EQ(first["objects"].size(), 1u);
  EXPECT_EQ(first["objects"][0]["name"], "orders.unit_price");
  // A renamed column is what the new version's (security_invoker) views
  // read: a brownout of it would break the new version, and is refused.
  AuditOptions brownout;
  brownout.brownout_roles = {"legacy"};
  auto refused = w.m->Audit(w.name, brownout);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("orders.unit_price is not browned out: the new version reads the "
                                                    "same physical column (renamed to price at complete)"));
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM sluice.events WHERE kind LIKE 'audit.brownout%'"), "0");

  Client legacy(w.url, "legacy", "legacy-web");
  Client report(w.url, "reporting", "nightly-report");
  Client modern(w.url, "modern", "web-v2");
  ASSERT_TRUE(legacy.ok() && report.ok() && modern.ok());
  EXPECT_EQ(legacy.Run("SELECT id, unit_price FROM orders WHERE id = 3"), "");
  EXPECT_EQ(report.Run("WITH big AS (SELECT o.id, o.unit_price * o.qty AS total FROM orders AS o) "
                       "SELECT sum(total) FROM big"),
            "");
  EXPECT_EQ(report.Run("SELECT * FROM orders ORDER BY id"), "");
  EXPECT_EQ(modern.Run("SET search_path TO \"public_" + w.name + "\", public"), "");
  EXPECT_EQ(modern.Run("SELECT id, price FROM orders WHERE id = 4"), "");

  Json second = w.Audit();
  const std::string found = Findings(second);
  EXPECT_TRUE(second["blocking"].get<bool>()) << second.dump(2);
  EXPECT_TRUE(second["coverage_sufficient"].get<bool>()) << second.dump(2);
  EXPECT_THAT(found, HasSubstr("pg_stat_statements orders.unit_price role=legacy app=legacy-web kinds=read | "
                               "SELECT id, unit_price FROM orders WHERE id = $1"));
  EXPECT_THAT(found, HasSubstr("pg_stat_statements orders.unit_price role=reporting app=nightly-report kinds=read | "
                               "WITH big AS"));
  EXPECT_THAT(found, HasSubstr("pg_stat_statements orders.unit_price role=reporting app=nightly-report kinds=star | "
                               "SELECT * FROM orders ORDER BY id"));
  EXPECT_THAT(found, HasSubstr("pg_stat_activity orders.unit_price role=legacy app=legacy-web"));
  EXPECT_THAT(found, Not(HasSubstr("modern"))) << found;
  EXPECT_THAT(found, Not(HasSubstr("web-v2"))) << found;

  // The gate refuses, naming who; the column is still there.
  Status s = w.m->Complete(w.name);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("contract audit"));
  EXPECT_THAT(s.message(), HasSubstr("role reporting (application_name nightly-report)"));
  EXPECT_THAT(s.message(), HasSubstr("role legacy (application_name legacy-web)"));
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND "
                              "column_name = 'unit_price' AND table_schema = 'public'"),
            "1");

  // They stop; the new version keeps working. The next audit is clean and
  // the gate opens.
  legacy.Close();
  report.Close();
  WaitGone(w.url, "legacy");
  WaitGone(w.url, "reporting");
  EXPECT_EQ(modern.Run("SELECT id, price FROM orders WHERE id = 5"), "");
  Json third = w.Audit();
  EXPECT_FALSE(third["blocking"].get<bool>()) << Findings(third);
  EXPECT_TRUE(third["coverage_sufficient"].get<bool>()) << third.dump(2);
  modern.Close();
  SLUICE_ASSERT_OK(w.m->Complete(w.name));
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                              "information_schema.columns WHERE table_name = 'orders' AND table_schema = 'public'"),
            "id,price,qty");
  // The evidence stays with the migration: the baseline at switch and the
  // three audits stored.
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM sluice.audits WHERE migration = '" + w.name + "'"), "4");
}

TEST(AuditPg, WithoutASourceTheRequiredGateRefusesWithAdvice) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.Setup(false));  // no CREATE EXTENSION here
  Json a = w.Audit();
  EXPECT_FALSE(a["coverage_sufficient"].get<bool>());
  // The command: exit 7 (what the required gate refuses), with the advice;
  // --markdown for the handoff document.
  auto cli = RunSluice({"--db", w.url, "audit", w.name, "--markdown"});
  EXPECT_EQ(cli.exit_code, 7) << cli.out << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("| pg_stat_statements | unavailable | not installed in this database"));
  EXPECT_THAT(cli.err, HasSubstr("CREATE EXTENSION pg_stat_statements"));
  Json again = w.Audit();
  EXPECT_FALSE(again["coverage_sufficient"].get<bool>());
  Status s = w.m->Complete(w.name);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("shared_preload_libraries = 'pg_stat_statements'"));
  EXPECT_THAT(s.message(), HasSubstr("CREATE EXTENSION pg_stat_statements"));
  EXPECT_THAT(s.message(), HasSubstr("pgaudit.role is not set"));
  // The operator overrides, and the override is recorded.
  TransitionOptions force;
  force.force = true;
  force.reason = "audited by hand in the load balancer logs";
  SLUICE_ASSERT_OK(w.m->Complete(w.name, force));
  EXPECT_THAT(Pg()->Psql(w.url, "SELECT message FROM sluice.events WHERE kind = 'gate.override'"),
              HasSubstr("audited by hand"));
}

// pgaudit alone (no pg_stat_statements in this database): the tripwires
// armed at switch make the server log every statement touching the old
// column, directly, through `*`, in a CTE and in a DO block, with the
// session's role, application_name and client; the new version's reads are
// not logged. Rollback revokes the grants and drops the role: the catalog
// is as before start.
TEST(AuditPg, PgauditAloneTripsOnTheOldColumnAndRollbackLeavesNothing) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.Setup(false, true));
  // Armed at switch: exactly the old column, for the audit role.
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT string_agg(attname || '=' || attacl::text, ';') FROM pg_attribute WHERE "
                              "attrelid = 'public.orders'::regclass AND attacl IS NOT NULL"),
            "unit_price={sluice_audit=arw/postgres}");
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT string_agg(attname || '=' || attacl::text, ';') FROM pg_attribute WHERE "
                              "attrelid = '\"public_" + w.name + "\".orders'::regclass AND attacl IS NOT NULL"),
            "price={sluice_audit=arw/postgres}");
  Pg()->Psql(w.url, "GRANT UPDATE ON orders TO legacy");

  Client legacy(w.url, "legacy", "legacy-web");
  Client report(w.url, "reporting", "nightly-report");
  Client modern(w.url, "modern", "web-v2");
  ASSERT_TRUE(legacy.ok() && report.ok() && modern.ok());
  EXPECT_EQ(legacy.Run("SELECT id, unit_price FROM orders WHERE id = 3"), "");
  EXPECT_EQ(legacy.Run("UPDATE orders SET unit_price = 7 WHERE id = 2"), "");
  EXPECT_EQ(report.Run("WITH big AS (SELECT o.id, o.unit_price * o.qty AS total FROM orders AS o) "
                       "SELECT sum(total) FROM big"),
            "");
  EXPECT_EQ(report.Run("SELECT * FROM orders ORDER BY id"), "");
  EXPECT_EQ(report.Run("DO $$ BEGIN EXECUTE 'SELECT max(unit_' || 'price) FROM orders'; END $$"), "");
  EXPECT_EQ(modern.Run("SET search_path TO \"public_" + w.name + "\", public"), "");
  EXPECT_EQ(modern.Run("SELECT id, price FROM orders WHERE id = 4"), "");
  EXPECT_EQ(modern.Run("SELECT id, qty FROM public.orders WHERE id = 4"), "");  // not the old column

  Json a = w.Audit();
  const std::string found = Findings(a, "pgaudit");
  Json cov = CoverageOf(a, "pgaudit");
  EXPECT_TRUE(cov["available"].get<bool>()) << cov.dump(2);
  EXPECT_TRUE(cov["complete"].get<bool>()) << cov.dump(2);
  EXPECT_FALSE(CoverageOf(a, "pg_stat_statements")["available"].get<bool>());
  EXPECT_TRUE(a["coverage_sufficient"].get<bool>());
  EXPECT_TRUE(a["blocking"].get<bool>());
  EXPECT_THAT(found, HasSubstr("pgaudit orders.unit_price role=legacy app=legacy-web kinds=read | "
                               "SELECT id, unit_price FROM orders WHERE id = 3\n")) << a.dump(2);
  EXPECT_THAT(found, HasSubstr("pgaudit orders.unit_price role=legacy app=legacy-web kinds=write | "
                               "UPDATE orders SET unit_price = 7 WHERE id = 2\n"));
  EXPECT_THAT(found, HasSubstr("pgaudit orders.unit_price role=reporting app=nightly-report kinds=read | WITH big"));
  EXPECT_THAT(found, HasSubstr("pgaudit orders.unit_price role=reporting app=nightly-report kinds=star | "
                               "SELECT * FROM orders ORDER BY id\n"));
  // Dynamic SQL no parser sees: the server resolved it.
  EXPECT_THAT(found, HasSubstr("role=reporting app=nightly-report kinds=read | SELECT max(unit_price) FROM orders"));
  EXPECT_THAT(found, Not(HasSubstr("modern"))) << found;
  EXPECT_THAT(found, Not(HasSubstr("web-v2"))) << found;
  EXPECT_THAT(found, Not(HasSubstr("sluice"))) << found;
  for (const auto& f : a["findings"]) {
    if (f["source"] == "pgaudit") {
      EXPECT_THAT(f["client"].get<std::string>(), HasSubstr("127.0.0.1")) << f.dump();
    }
  }

  // They stop: the next audit covers only the interval since this one.
  legacy.Close();
  report.Close();
  EXPECT_EQ(modern.Run("SELECT id, price FROM orders WHERE id = 5"), "");
  Json b = w.Audit();
  EXPECT_EQ(Findings(b, "pgaudit"), "");
  EXPECT_TRUE(CoverageOf(b, "pgaudit")["complete"].get<bool>());
  modern.Close();

  // Rollback takes the tripwires with it.
  SLUICE_ASSERT_OK(w.m->Rollback(w.name));
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM pg_roles WHERE rolname = 'sluice_audit'"), "0");
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND "
                              "attacl IS NOT NULL"),
            "0");
  EXPECT_EQ(FingerprintWithoutLive(w.url), w.fingerprint);
}

// Every direct privilege of the application roles on orders: table-level
// and per column (grantor, grantee, privilege, grant option), sorted.
std::string Privileges(const std::string& url) {
  return Pg()->Psql(url,
                    "SELECT string_agg(x, ' ' ORDER BY x) FROM (SELECT 'table:' || g.rolname || ':' || a.privilege_type "
                    "|| ':' || a.is_grantable AS x FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = "
                    "a.grantee WHERE c.oid = 'public.orders'::regclass UNION ALL SELECT t.attname || ':' || g.rolname "
                    "|| ':' || a.privilege_type || ':' || a.is_grantable FROM pg_attribute t, aclexplode(t.attacl) a "
                    "JOIN pg_roles g ON g.oid = a.grantee WHERE t.attrelid = 'public.orders'::regclass) p") +
         " | " +
         Pg()->Psql(url, "SELECT string_agg(grantee || ':' || column_name || ':' || privilege_type || ':' || "
                         "is_grantable, ' ' ORDER BY 1) FROM (SELECT * FROM information_schema.column_privileges "
                         "WHERE table_schema = 'public' AND table_name = 'orders' AND grantee IN ('legacy', "
                         "'modern', 'reporting') ORDER BY grantee, column_name, privilege_type) p");
}

// Reads in a loop on its own session until stopped; keeps the errors.
class Reader {
 public:
  Reader(const std::string& url, const std::string& role, const std::string& app, std::string sql)
      : client_(url, role, app), sql_(std::move(sql)) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        std::string err = client_.Run(sql_);
        if (!err.empty()) {
          std::lock_guard<std::mutex> l(mu_);
          errors_.push_back(err);
        }
        ++reads_;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  ~Reader() { Stop(); }
  bool ok() const { return client_.ok(); }
  int reads() const { return reads_.load(); }
  // Stops the loop; the session stays open for Run.
  std::vector<std::string> Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> l(mu_);
    return errors_;
  }
  std::string Run(const std::string& sql) { return client_.Run(sql); }

 private:
  Client client_;
  std::string sql_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reads_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

// The opt-in brownout (issue 12 item 7): a legacy role still reading the old
// column in a loop, a modern one reading the new version. Browned out
// together, the legacy role's read fails once, the grants come back at once
// (its next read works), the report names it; on the modern role alone the
// brownout runs its seconds and nothing breaks. Either way the privileges
// afterwards are exactly those before, table-level and per column.
TEST(AuditPg, BrownoutNamesWhoBreaksAndRestoresThePrivilegesExactly) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.SetupBrownout());
  const std::string before = Privileges(w.url);
  ASSERT_THAT(before, HasSubstr("table:legacy:SELECT:false"));
  ASSERT_THAT(before, HasSubstr("unit_price:legacy:INSERT:false"));
  ASSERT_THAT(before, HasSubstr("qty:modern:UPDATE:true"));

  // The modern role alone: it never touches the old column.
  {
    Reader modern(w.url, "modern", "web-v2", "SET search_path TO \"public_" + w.name + "\"; SELECT id, qty FROM "
                  "orders WHERE id = 4");
    ASSERT_TRUE(modern.ok());
    AuditOptions o;
    o.brownout_roles = {"modern"};
    o.brownout_seconds = 1;
    auto r = w.m->Audit(w.name, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Json a = Json::parse(r->json);
    EXPECT_EQ(Findings(a, "brownout"), "");
    const std::string detail = CoverageOf(a, "brownout")["detail"].get<std::string>();
    EXPECT_THAT(detail, HasSubstr("ran its 1 s without a permission error")) << a.dump(2);
    EXPECT_THAT(detail, HasSubstr("'modern'"));
    EXPECT_THAT(modern.Stop(), ::testing::IsEmpty());
    EXPECT_GT(modern.reads(), 0);
  }
  EXPECT_EQ(Privileges(w.url), before);
  EXPECT_THAT(Pg()->Psql(w.url, "SELECT string_agg(message, '; ' ORDER BY id) FROM sluice.events WHERE kind LIKE "
                                "'audit.brownout.%'"),
              HasSubstr("brownout ended: ran its 1 s without a permission error; privileges restored"));

  // Both roles: the legacy role breaks, and is named.
  Reader legacy(w.url, "legacy", "legacy-web", "SELECT id, unit_price FROM orders WHERE id = 3");
  ASSERT_TRUE(legacy.ok());
  AuditOptions o;
  o.brownout_roles = {"legacy", "modern"};
  o.brownout_seconds = 60;  // the hit ends it
  auto r = w.m->Audit(w.name, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto errors = legacy.Stop();
  ASSERT_FALSE(errors.empty());
  EXPECT_THAT(errors[0], HasSubstr("permission denied for table orders"));
  // Restored at once: the same session reads again.
  EXPECT_EQ(legacy.Run("SELECT id, unit_price FROM orders WHERE id = 3"), "");
  EXPECT_EQ(Privileges(w.url), before);
  Json a = Json::parse(r->json);
  EXPECT_TRUE(a["blocking"].get<bool>());
  EXPECT_THAT(Findings(a, "brownout"), HasSubstr("brownout orders.unit_price role=legacy app=legacy-web kinds=read | "
                                                 "SELECT id, unit_price FROM orders WHERE id = 3"));
  EXPECT_THAT(Findings(a, "brownout"), Not(HasSubstr("modern")));
  EXPECT_THAT(CoverageOf(a, "brownout")["detail"].get<std::string>(),
              HasSubstr("hit by role legacy (application_name legacy-web)"));
  EXPECT_THAT(r->text, HasSubstr("legacy-web"));
}

// A brownout killed midway (the process gone with the privileges revoked)
// is restored by the next command; a role that reads through PUBLIC is
// reported as one the brownout would not bite.
TEST(AuditPg, AKilledBrownoutIsRestoredByTheNextCommand) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.SetupBrownout());
  const std::string before = Privileges(w.url);
  // Starts `sluice audit --brownout` and kills it (SIGKILL) once the
  // revoke is recorded and the old column is out of reach.
  auto kill_midway = [&](int nth) {
    TempDir io;
    int pid = SpawnSluice({"--db", w.url, "audit", w.name, "--brownout", "legacy,modern", "--seconds", "600"},
                          io.path());
    ASSERT_GT(pid, 0);
    bool revoked = false;
    for (int i = 0; i < 1000 && !revoked; ++i) {
      revoked = Pg()->Psql(w.url, "SELECT count(*) FROM sluice.events WHERE kind = 'audit.brownout.started'") ==
                    std::to_string(nth) &&
                Pg()->Psql(w.url, "SELECT has_column_privilege('legacy', 'public.orders', 'unit_price', 'SELECT')") ==
                    "f";
      if (!revoked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    WaitProcess(pid);
    ASSERT_TRUE(revoked) << ReadFile(io.File("spawn.err"));
    EXPECT_EQ(Pg()->Psql(w.url, "SELECT has_column_privilege('legacy', 'public.orders', 'qty', 'SELECT')"), "t");
  };
  ASSERT_NO_FATAL_FAILURE(kill_midway(1));
  EXPECT_NE(Privileges(w.url), before);
  auto cli = RunSluice({"--db", w.url, "audit", w.name, "--brownout-restore"});
  EXPECT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("restored the privileges an interrupted brownout of role(s) 'legacy', 'modern'"));
  EXPECT_EQ(Privileges(w.url), before);
  EXPECT_THAT(Pg()->Psql(w.url, "SELECT message FROM sluice.events WHERE kind = 'audit.brownout.ended'"),
              HasSubstr("interrupted"));

  // PUBLIC still reads the old column: the brownout says it would not bite.
  Pg()->Psql(w.url, "GRANT SELECT (unit_price) ON orders TO PUBLIC");
  AuditOptions o;
  o.brownout_roles = {"legacy"};
  o.brownout_seconds = 1;
  auto r = w.m->Audit(w.name, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Json cov = CoverageOf(Json::parse(r->json), "brownout");
  EXPECT_THAT(cov["detail"].get<std::string>(), HasSubstr("would not bite for any role"));
  EXPECT_THAT(cov["gaps"].dump(), HasSubstr("would not bite for role legacy: it still has SELECT on "
                                            "public.orders.unit_price through PUBLIC"));
  EXPECT_EQ(Privileges(w.url), before);
  // Killed again: rollback restores it before it undoes the migration.
  Pg()->Psql(w.url, "REVOKE SELECT (unit_price) ON orders FROM PUBLIC");
  ASSERT_NO_FATAL_FAILURE(kill_midway(3));
  SLUICE_ASSERT_OK(w.m->Rollback(w.name));
  EXPECT_EQ(Privileges(w.url), before);
}

// The server writes no csvlog (log_destination changed on the shared
// cluster for this test, and reset after it): pgaudit is armed but cannot
// be read, so its source is unavailable with the advice, the required gate
// refuses naming it, and a brownout refuses to start and revokes nothing.
TEST(AuditPg, AnUnreadableLogIsUnavailableAndTheBrownoutRefuses) {
  SLUICE_ASSERT_PG_OK(Pg());
  World w;
  ASSERT_NO_FATAL_FAILURE(w.Setup(false, true));
  const std::string admin = w.url;
  auto set_destination = [&](const std::string& value) {
    Pg()->Psql(admin, "ALTER SYSTEM SET log_destination = '" + value + "'");
    Pg()->Psql(admin, "SELECT pg_reload_conf()");
    const std::string want = value == "stderr" ? "t" : "f";
    for (int i = 0; i < 500; ++i) {
      if (Pg()->Psql(admin, "SELECT pg_current_logfile('csvlog') IS NULL") == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  struct Reset {
    std::function<bool(const std::string&)> f;
    ~Reset() { f("stderr,csvlog"); }
  } reset{set_destination};
  ASSERT_TRUE(set_destination("stderr"));
  const std::string before = Privileges(w.url);

  Json a = w.Audit();
  Json cov = CoverageOf(a, "pgaudit");
  EXPECT_FALSE(cov["available"].get<bool>()) << cov.dump(2);
  EXPECT_THAT(cov["detail"].get<std::string>(), HasSubstr("the server writes no csvlog"));
  EXPECT_THAT(cov["detail"].get<std::string>(), HasSubstr("set log_destination to include 'csvlog'"));
  EXPECT_FALSE(a["coverage_sufficient"].get<bool>());
  Status s = w.m->Complete(w.name);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("log_destination to include 'csvlog'"));

  AuditOptions o;
  o.brownout_roles = {"legacy"};
  o.brownout_seconds = 1;
  auto r = w.m->Audit(w.name, o);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("refused, it could not see who breaks"));
  EXPECT_EQ(Privileges(w.url), before);
  EXPECT_EQ(Pg()->Psql(w.url, "SELECT count(*) FROM sluice.events WHERE kind LIKE 'audit.brownout%'"), "0");
}

// SQLite: a corpus of statements (--queries) is compiled, never run, under
// SQLite's authorizer, so each is classified exactly: the old column read
// directly, through `*`, in a WHERE clause, written; nothing for the new
// version's view (which maps onto the same physical column) nor for writes
// through it (its INSTEAD OF trigger) nor sluice's own triggers; a
// statement that does not compile is a stated gap; FILE:line for each.
TEST(AuditSqlite, QueriesAreClassifiedExactlyByTheAuthorizer) {
  TempDir dir;
  auto m = OpenSqlite(dir.File("app.db"));
  ASSERT_NE(m, nullptr);
  QueryValue(*m, "CREATE TABLE orders (id INTEGER PRIMARY KEY, unit_price NUMERIC NOT NULL, qty INTEGER NOT NULL)");
  QueryValue(*m, "INSERT INTO orders VALUES (1, 1.5, 1), (2, 3, 2), (3, 4.5, 3)");
  const std::string name = "001_rename";
  SLUICE_ASSERT_OK(m->Start(dir.Write(name + ".yaml", kPlan)));
  ASSERT_TRUE(m->Backfill(name, {}).ok());
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, name));
  SLUICE_ASSERT_OK(m->Switch(name, false));
  const std::string corpus = dir.Write("app.sql",
                                       "SELECT id, unit_price FROM orders WHERE id = 1;\n"      // 1
                                       "SELECT *\n  FROM orders;\n"                            // 2-3
                                       "SELECT id, price FROM \"orders@001_rename\";\n"        // 4
                                       "UPDATE \"orders@001_rename\" SET price = 2 WHERE id = 1;\n"  // 5
                                       "UPDATE orders SET unit_price = 2 WHERE id = 1;\n"       // 6
                                       "SELECT count(*) FROM orders;\n"                         // 7
                                       "\n"
                                       "SELECT id FROM orders o WHERE o.unit_price > 2\n"       // 9
                                       "\n"
                                       "SELECT nope FROM orders;\n");                           // 11
  AuditOptions options;
  options.queries_file = corpus;
  auto r = m->Audit(name, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Json a = Json::parse(r->json);
  std::string found;
  for (const auto& f : a["findings"]) {
    ASSERT_EQ(f["source"], "queries") << f.dump();
    found += f["location"].get<std::string>().substr(dir.path().size() + 1) + " " + f["object"].get<std::string>() +
             " " + f["via"].get<std::string>() + " " + f["kinds"].get<std::string>() + "\n";
  }
  EXPECT_EQ(found,
            "app.sql:1 orders.unit_price direct read\n"
            "app.sql:2 orders.unit_price direct star\n"
            "app.sql:6 orders.unit_price direct write\n"
            "app.sql:9 orders.unit_price direct read\n");
  Json cov = CoverageOf(a, "queries");
  EXPECT_THAT(cov["detail"].get<std::string>(), HasSubstr("8 statement(s)"));
  EXPECT_THAT(cov["detail"].get<std::string>(), HasSubstr("7 resolved by the database's compiler"));
  EXPECT_EQ(cov["gaps"].dump(), "[\"1 statement(s) did not compile or parse\"]");
  EXPECT_FALSE(a["coverage_sufficient"].get<bool>());
  // Compiled, never run: the row is as it was.
  EXPECT_EQ(QueryValue(*m, "SELECT unit_price FROM orders WHERE id = 1"), "1.5");
  // No roles on SQLite: a brownout is refused, saying why.
  AuditOptions brownout;
  brownout.brownout_roles = {"legacy"};
  auto refused = m->Audit(name, brownout);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("SQLite has no roles or privileges to revoke"));
}

}  // namespace
}  // namespace sluice::testing
