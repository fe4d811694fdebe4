// Verification (issue #5) on real databases: chunked checksums with
// bisection, parity, null/default drift, invariants, shadow reads, and the
// cross-database diff (SQLite <-> PostgreSQL). Damage is made directly in
// the database, behind the dual-write triggers' back.
#include <nlohmann/json.hpp>

#include <set>

#include "db/adapter.h"
#include "support/pg_cluster.h"
#include "support/plans.h"
#include "support/test_support.h"
#include "verify/verify.h"

namespace sluice::testing {
namespace {

constexpr int kRows = 300;

std::string Plan(const std::string& backend) {
  const bool pg = backend == "postgres";
  std::string up_amount = pg ? "(amount::numeric * 100)::integer" : "CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)";
  std::string down_amount = pg ? "(amount / 100)::text || '.' || lpad((amount % 100)::text, 2, '0')"
                               : "printf('%d.%02d', amount / 100, amount % 100)";
  return R"(
operations:
  - alter_column:
      table: orders
      column: email
      check: {name: email_has_at, constraint: email LIKE '%@%'}
      up: lower(email)
      down: email
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: )" + up_amount + R"(
      down: )" + down_amount + R"(
  - add_column:
      table: orders
      up: length(email)
      column: {name: email_len, type: INTEGER, nullable: true}
verify:
  checksum_chunk_rows: 64
  max_reported_differences: 10
  partition_column: email_len
  max_drift: 0.05
  shadow_sample: 1
  invariants:
    - name: amount_not_negative
      table: orders
      check: amount >= 0
    - name: no_huge_amounts
      sql: SELECT id, amount FROM orders WHERE amount > 1000000
  validation_queries:
    - name: email_by_id
      table: orders
      sql: SELECT lower(email) FROM orders WHERE id = :key
)";
}

struct Db {
  std::string backend;
  std::string url;
  std::unique_ptr<Migrator> m;
  std::string version;  // the new version's name after start
};

void Populate(Db& db) {
  auto s = db.m->Connect("");
  ASSERT_TRUE(s.ok()) << s.status().message();
  std::string create =
      "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, amount TEXT NOT NULL, note TEXT)";
  SLUICE_ASSERT_OK((*s)->Exec(create));
  std::string insert =
      db.backend == "postgres"
          ? "INSERT INTO orders SELECT i, 'User' || i || '@Example.COM', (i % 700)::text || '.' || "
            "lpad((i % 100)::text, 2, '0'), NULL FROM generate_series(1, " + std::to_string(kRows) + ") AS i"
          : "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(kRows) +
                ") INSERT INTO orders SELECT i, 'User' || i || '@Example.COM', printf('%d.%02d', i % 700, i % 100), "
                "NULL FROM n";
  SLUICE_ASSERT_OK((*s)->Exec(insert));
}

class VerifyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_.backend = GetParam();
    if (db_.backend == "postgres") {
      PgCluster* pg = PgCluster::Shared();
      SLUICE_ASSERT_PG_OK(pg);
      db_.url = pg->CreateDatabase("verify");
      ASSERT_FALSE(db_.url.empty());
    } else {
      db_.url = "sqlite:" + dir_.File("v.db");
    }
    Options o;
    o.db_url = db_.url;
    o.actor = "test";
    o.create_database = db_.backend == "sqlite";
    auto m = Migrator::Open(o);
    ASSERT_TRUE(m.ok()) << m.status().message();
    db_.m = std::move(*m);
    Populate(db_);
    std::string plan = dir_.Write("001_orders.yaml", Plan(db_.backend));
    SLUICE_ASSERT_OK(db_.m->Start(plan));
    auto b = db_.m->Backfill("", {});
    ASSERT_TRUE(b.ok()) << b.status().message();
    auto list = db_.m->List();
    ASSERT_TRUE(list.ok());
    db_.version = list->back().version;
  }

  // Physical column of the orders table whose name contains `part`.
  std::string Physical(const std::string& part) {
    std::string sql = db_.backend == "postgres"
                          ? "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND "
                            "table_name = 'orders' AND column_name LIKE '%" + part + "%' ORDER BY length(column_name) DESC"
                          : "SELECT name FROM pragma_table_info('orders') WHERE name LIKE '%" + part +
                                "%' ORDER BY length(name) DESC";
    return QueryValue(*db_.m, sql);
  }

  // Runs `sql` on the base table with the dual-write triggers bypassed.
  void Damage(const std::string& sql) {
    if (db_.backend == "postgres") {
      std::string out, err;
      ASSERT_TRUE(PgCluster::Shared()->TryPsql(db_.url, "SET session_replication_role = replica; " + sql, &out, &err))
          << err;
    } else {
      // SQLite: statements that only touch the new columns fire no trigger.
      auto s = db_.m->Connect("");
      ASSERT_TRUE(s.ok());
      SLUICE_ASSERT_OK((*s)->Exec(sql));
    }
  }

  VerifyResult Verify(const VerifyOptions& vo = {}) {
    VerifyOptions o = vo;
    if (!o.reread_delay_ms) o.reread_delay_ms = 10;
    auto r = db_.m->Verify("", o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : VerifyResult{};
  }

  static std::vector<const CheckResult*> Find(const VerifyResult& r, const std::string& name,
                                              const std::string& column = "") {
    std::vector<const CheckResult*> out;
    for (const auto& c : r.checks) {
      if (c.name == name && (column.empty() || c.column == column)) out.push_back(&c);
    }
    return out;
  }

  static std::string Dump(const VerifyResult& r) {
    std::string s;
    for (const auto& c : r.checks) {
      s += c.name + " " + c.table + "." + c.column + (c.passed ? " ok: " : " FAIL: ") + c.summary + "\n";
      for (const auto& e : c.evidence) s += "    " + e + "\n";
    }
    return s;
  }

  static bool AnyEvidence(const CheckResult& c, const std::vector<std::string>& parts) {
    for (const auto& e : c.evidence) {
      bool all = true;
      for (const auto& p : parts) all = all && e.find(p) != std::string::npos;
      if (all) return true;
    }
    return false;
  }

  static nlohmann::json Metrics(const VerifyResult& r, const std::string& name, const std::string& column = "") {
    auto j = nlohmann::json::parse(r.json);
    for (const auto& c : j["checks"]) {
      if (c["name"] == name && (column.empty() || c["column"] == column)) return c["metrics"];
    }
    return nlohmann::json::object();
  }

  TempDir dir_;
  Db db_;
};

TEST_P(VerifyTest, CleanMigrationPassesEveryCheck) {
  VerifyResult r = Verify();
  EXPECT_TRUE(r.passed) << Dump(r);
  for (const char* name : {"row_count", "checksum", "parity", "drift", "invariant", "shadow_read", "up_matches"}) {
    EXPECT_FALSE(Find(r, name).empty()) << name << "\n" << Dump(r);
  }
  auto cs = Metrics(r, "checksum");
  // SQLite: 300 rows walked by key in chunks of 64. PostgreSQL: block-range
  // pieces of about 64 rows, shared by two sessions; every row compared once.
  if (db_.backend == "postgres") {
    EXPECT_GE(cs["chunks"].get<double>(), 2);
    EXPECT_EQ(cs["sessions"].get<double>(), 2);
  } else {
    EXPECT_EQ(cs["chunks"].get<double>(), 5);
  }
  EXPECT_EQ(cs["old_rows"].get<double>(), kRows);
  EXPECT_EQ(cs["differing_chunks"].get<double>(), 0);
  EXPECT_EQ(cs["bisect_queries"].get<double>(), 0);
  auto sr = Metrics(r, "shadow_read");
  EXPECT_EQ(sr["keys"].get<double>(), kRows);  // shadow_sample: 1
  EXPECT_EQ(sr["divergent"].get<double>(), 0);
}

TEST_P(VerifyTest, CorruptedRowsFoundByKeyWithBothValues) {
  std::string amount = Physical("new_amount");
  std::string email = Physical("new_email");
  ASSERT_FALSE(amount.empty());
  ASSERT_FALSE(email.empty());
  Damage("UPDATE orders SET \"" + amount + "\" = 999999 WHERE id = 137");
  Damage("UPDATE orders SET \"" + email + "\" = 'someone.else@example.com' WHERE id = 42");
  VerifyResult r = Verify();
  EXPECT_FALSE(r.passed);
  auto cs = Find(r, "checksum");
  ASSERT_EQ(cs.size(), 1u) << Dump(r);
  EXPECT_FALSE(cs[0]->passed);
  EXPECT_EQ(cs[0]->failures, 2) << Dump(r);
  // Key, column, and both values: up() of the old row, and what is stored.
  EXPECT_TRUE(AnyEvidence(*cs[0], {"key (137)", "amount", "13737", "999999"})) << Dump(r);
  EXPECT_TRUE(AnyEvidence(*cs[0], {"key (42)", "email", "user42@example.com", "someone.else@example.com"})) << Dump(r);
  EXPECT_EQ(cs[0]->evidence.size(), 2u) << Dump(r);  // no false positive elsewhere
  // Bisection: two differing chunks of 64 rows (on PostgreSQL the damaged
  // rows' new versions may share a block: one or two pieces of about 64
  // rows), each narrowed to <= 16 rows in a handful of queries.
  auto m = Metrics(r, "checksum");
  EXPECT_GE(m["differing_chunks"].get<double>(), db_.backend == "postgres" ? 1 : 2);
  EXPECT_LE(m["differing_chunks"].get<double>(), 2);
  EXPECT_GT(m["bisect_queries"].get<double>(), 0);
  EXPECT_LE(m["bisect_queries"].get<double>(), 2 * 2 * 4);  // 2 chunks x log2(128/16)+1 levels x 2 sides
  // Counts are unchanged: parity passes; the shadow read sees key 42 diverge.
  for (const auto* p : Find(r, "parity", "key ranges")) EXPECT_TRUE(p->passed) << Dump(r);
  auto sr = Find(r, "shadow_read");
  ASSERT_EQ(sr.size(), 1u);
  EXPECT_FALSE(sr[0]->passed) << Dump(r);
  EXPECT_EQ(sr[0]->failures, 1) << Dump(r);
  EXPECT_TRUE(AnyEvidence(*sr[0], {"key (42)", "user42@example.com", "someone.else@example.com"})) << Dump(r);
}

// Checksum workers (PostgreSQL: two sessions sharing the verification's
// snapshot, taking block-range pieces from one cursor) find exactly the
// rows one session finds, in the same order, also past max_reported.
// (SQLite: one session either way.)
TEST_P(VerifyTest, ChecksumWorkersFindTheSameRowsAsOneSession) {
  std::string amount = Physical("new_amount");
  ASSERT_FALSE(amount.empty());
  Damage("UPDATE orders SET \"" + amount + "\" = -1 WHERE id IN (1, 75, 150, 151, 225, 300)");
  VerifyResult a;
  auto compare = [&](int expect_failures) {
    VerifyOptions one, two;
    one.checksum_workers = 1;
    two.checksum_workers = 2;
    a = Verify(one);
    VerifyResult b = Verify(two);
    auto ca = Find(a, "checksum"), cb = Find(b, "checksum");
    ASSERT_EQ(ca.size(), 1u) << Dump(a);
    ASSERT_EQ(cb.size(), 1u) << Dump(b);
    EXPECT_FALSE(ca[0]->passed);
    EXPECT_FALSE(cb[0]->passed);
    EXPECT_EQ(ca[0]->evidence, cb[0]->evidence) << Dump(a) << Dump(b);
    EXPECT_EQ(ca[0]->failures, cb[0]->failures) << Dump(a) << Dump(b);
    if (expect_failures > 0) {
      EXPECT_EQ(ca[0]->failures, expect_failures) << Dump(a);
    }
    EXPECT_EQ(Metrics(a, "checksum")["old_rows"], Metrics(b, "checksum")["old_rows"]);
    EXPECT_EQ(Metrics(a, "checksum")["chunks"], Metrics(b, "checksum")["chunks"]);
    EXPECT_EQ(Metrics(a, "checksum")["sessions"].get<double>(), 1);
    EXPECT_EQ(Metrics(b, "checksum")["sessions"].get<double>(), db_.backend == "postgres" ? 2 : 1);
  };
  compare(6);
  ASSERT_EQ(Find(a, "checksum").size(), 1u);
  for (int id : {1, 75, 150, 151, 225, 300}) {
    EXPECT_TRUE(AnyEvidence(*Find(a, "checksum")[0], {"key (" + std::to_string(id) + ")", "amount", "-1"})) << Dump(a);
  }
  // More differing rows than max_reported_differences (10): the same ten
  // whichever session found them.
  Damage("UPDATE orders SET \"" + amount + "\" = -1 WHERE id IN (10, 20, 30, 40, 50, 60, 160, 170)");
  compare(0);
  EXPECT_EQ(Find(a, "checksum")[0]->evidence.size(), 10u) << Dump(a);
}

TEST_P(VerifyTest, NullDriftAboveThresholdFailsAndPartitionIsNamed) {
  std::string len = Physical("email_len");
  ASSERT_FALSE(len.empty());
  Damage("UPDATE orders SET \"" + len + "\" = NULL WHERE id <= 30");  // 10% > max_drift 5%
  VerifyResult r = Verify();
  EXPECT_FALSE(r.passed);
  auto drift = Find(r, "drift", "email_len");
  ASSERT_EQ(drift.size(), 1u) << Dump(r);
  EXPECT_FALSE(drift[0]->passed) << Dump(r);
  EXPECT_NE(drift[0]->summary.find("exceeds"), std::string::npos) << drift[0]->summary;
  auto m = Metrics(r, "drift", "email_len");
  EXPECT_NEAR(m["null_fraction"].get<double>(), 0.1, 1e-9);
  EXPECT_NEAR(m["null_expected"].get<double>(), 0.0, 1e-9);
  // The email column did not drift.
  auto ok = Find(r, "drift", "email");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_TRUE(ok[0]->passed) << Dump(r);
  // Parity by partition_column names the partitions that changed size.
  auto p = Find(r, "parity", "email_len");
  ASSERT_EQ(p.size(), 1u) << Dump(r);
  EXPECT_FALSE(p[0]->passed);
  EXPECT_TRUE(AnyEvidence(*p[0], {"email_len = NULL", "old 0 rows, new 30"})) << Dump(r);
}

TEST_P(VerifyTest, SmallDriftWithinThresholdPasses) {
  std::string len = Physical("email_len");
  Damage("UPDATE orders SET \"" + len + "\" = NULL WHERE id <= 3");  // 1% <= 5%
  VerifyResult r = Verify();
  auto drift = Find(r, "drift", "email_len");
  ASSERT_EQ(drift.size(), 1u);
  EXPECT_TRUE(drift[0]->passed) << Dump(r);
  // ... but the checksum still finds all three rows.
  auto cs = Find(r, "checksum");
  EXPECT_EQ(cs[0]->failures, 3) << Dump(r);
}

TEST_P(VerifyTest, InvariantViolationsAreListed) {
  auto s = db_.m->Connect(db_.version);
  ASSERT_TRUE(s.ok()) << s.status().message();
  SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO orders (id, email, amount) VALUES (5001, 'neg@x.com', -5)"));
  SLUICE_ASSERT_OK((*s)->Exec("INSERT INTO orders (id, email, amount) VALUES (5002, 'big@x.com', 2000000)"));
  VerifyResult r = Verify();
  EXPECT_FALSE(r.passed);
  auto neg = Find(r, "invariant", "amount_not_negative");
  ASSERT_EQ(neg.size(), 1u) << Dump(r);
  EXPECT_FALSE(neg[0]->passed);
  EXPECT_EQ(neg[0]->failures, 1);
  EXPECT_TRUE(AnyEvidence(*neg[0], {"id=5001", "-5"})) << Dump(r);
  auto big = Find(r, "invariant", "no_huge_amounts");
  ASSERT_EQ(big.size(), 1u) << Dump(r);
  EXPECT_FALSE(big[0]->passed);
  EXPECT_TRUE(AnyEvidence(*big[0], {"5002", "2000000"})) << Dump(r);
  // Rows written through the new version are consistent otherwise.
  EXPECT_TRUE(Find(r, "checksum")[0]->passed) << Dump(r);
}

TEST_P(VerifyTest, ConcurrentWriteBetweenReadsIsNotDivergence) {
  // Right after the old version's first read of key 10, a writer changes
  // that row through the old version: the first comparison differs, the
  // re-read agrees.
  bool wrote = false;
  std::string error;
  VerifyOptions vo;
  vo.after_first_old_read = [&](const std::string&, const std::vector<std::optional<std::string>>& key) {
    if (wrote || key.size() != 1 || key[0] != "10") return;
    wrote = true;
    auto s = db_.m->Connect("");
    if (!s.ok()) {
      error = s.status().message();
      return;
    }
    Status st = (*s)->Exec("UPDATE orders SET email = 'Moved10@Example.COM' WHERE id = 10");
    if (!st.ok()) error = st.message();
  };
  VerifyResult r = Verify(vo);
  ASSERT_TRUE(wrote);
  ASSERT_EQ(error, "");
  auto sr = Find(r, "shadow_read");
  ASSERT_EQ(sr.size(), 1u);
  EXPECT_TRUE(sr[0]->passed) << Dump(r);
  auto m = Metrics(r, "shadow_read");
  EXPECT_EQ(m["suspects"].get<double>(), 1) << Dump(r);
  EXPECT_EQ(m["divergent"].get<double>(), 0);
  EXPECT_TRUE(r.passed) << Dump(r);
}

TEST_P(VerifyTest, CliJsonReportAndExitCode) {
  auto ok = RunSluice({"--db", db_.url, "verify", "--json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto j = nlohmann::json::parse(ok.out);
  EXPECT_TRUE(j["passed"].get<bool>());
  EXPECT_FALSE(j["checks"].empty());
  Damage("UPDATE orders SET \"" + Physical("new_amount") + "\" = 1 WHERE id = 250");
  auto bad = RunSluice({"--db", db_.url, "verify", "--json"});
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  auto jb = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(jb["passed"].get<bool>());
  bool found = false;
  for (const auto& c : jb["checks"]) {
    if (c["name"] == "checksum") {
      for (const auto& e : c["evidence"]) found = found || e.get<std::string>().find("key (250)") != std::string::npos;
      EXPECT_GT(c["metrics"]["chunk_queries"].get<double>(), 0);
    }
  }
  EXPECT_TRUE(found) << bad.out;
  // The human report names the key too; results are stored with their time.
  auto text = RunSluice({"--db", db_.url, "verify"});
  EXPECT_EQ(text.exit_code, 3);
  EXPECT_NE(text.out.find("key (250)"), std::string::npos) << text.out;
  auto st = RunSluice({"--db", db_.url, "status", "--json"});
  EXPECT_NE(st.out.find("last_verification"), std::string::npos) << st.out;
}

TEST_P(VerifyTest, WatchReportsRateOverTime) {
  auto w = RunSluice({"--db", db_.url, "verify", "--watch", "0.5s", "--interval", "0.1"});
  EXPECT_EQ(w.exit_code, 0) << w.out << w.err;
  EXPECT_NE(w.out.find("round   1"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("shadow reads:"), std::string::npos) << w.out;
  auto wj = RunSluice({"--db", db_.url, "verify", "--json", "--watch", "0.2s", "--interval", "0.1"});
  EXPECT_EQ(wj.exit_code, 0) << wj.err;
  auto j = nlohmann::json::parse(wj.out);
  EXPECT_TRUE(j["verify"]["passed"].get<bool>());
  EXPECT_GE(j["watch"]["rounds"].size(), 1u);
  EXPECT_EQ(j["watch"]["divergent"].get<int>(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, VerifyTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// Two checksum workers on a table of many block-range pieces (PostgreSQL),
// whose blocks hold dead row versions and whose key order is not its block
// order: a clean table passes with every row compared exactly once (the
// count by SQL), and a row changed behind the triggers' back in the middle
// of the table is found and named by its key, as one session finds it.
TEST(VerifyWorkers, PiecesCoverEveryRowOnceAndFindACorruptedRow) {
  PgCluster* pg = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pg);
  const std::string url = pg->CreateDatabase("vworkers");
  ASSERT_FALSE(url.empty());
  std::string out, err;
  ASSERT_TRUE(pg->TryPsql(url,
                          "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL); "
                          "INSERT INTO orders SELECT i, 'User' || i || '@Example.COM' FROM generate_series(1, 20000) i; "
                          "DELETE FROM orders WHERE id % 7 = 0; "
                          "UPDATE orders SET email = 'Moved' || id || '@Example.COM' WHERE id % 5 = 0",
                          &out, &err))
      << err;
  TempDir dir;
  auto opened = OpenUrl(url);
  ASSERT_TRUE(opened);
  Migrator& m = *opened;
  SLUICE_ASSERT_OK(m.Start(dir.Write("001_lower.yaml", std::string(kAddEmailLowerPlan) +
                                                           "verify:\n  checksum_chunk_rows: 500\n")));
  auto b = m.Backfill("", {});
  ASSERT_TRUE(b.ok()) << b.status().message();
  const int64_t rows = std::stoll(QueryValue(m, "SELECT count(*) FROM orders"));
  ASSERT_EQ(rows, 20000 - 20000 / 7);

  auto verify = [&](int workers) {
    VerifyOptions vo;
    vo.checksum_workers = workers;
    auto r = m.Verify("", vo);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : VerifyResult{};
  };
  auto checksum = [](const VerifyResult& r) {
    const auto j = nlohmann::json::parse(r.json);
    for (const auto& c : j["checks"]) {
      if (c["name"] == "checksum") return c;
    }
    return nlohmann::json::object();
  };

  VerifyResult clean = verify(2);
  EXPECT_TRUE(clean.passed);
  auto cm = checksum(clean)["metrics"];
  EXPECT_EQ(cm["sessions"].get<double>(), 2);
  EXPECT_GE(cm["chunks"].get<double>(), 10);  // many pieces for the two sessions to share
  EXPECT_EQ(cm["old_rows"].get<double>(), static_cast<double>(rows));
  EXPECT_EQ(cm["new_rows"].get<double>(), static_cast<double>(rows));

  const std::string col =
      QueryValue(m, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND "
                    "table_name = 'orders' AND column_name LIKE '%email_lower%'");
  ASSERT_FALSE(col.empty());
  ASSERT_TRUE(pg->TryPsql(url,
                          "SET session_replication_role = replica; UPDATE orders SET \"" + col +
                              "\" = 'corrupted' WHERE id = 10001",
                          &out, &err))
      << err;
  VerifyResult two = verify(2), one = verify(1);
  EXPECT_FALSE(two.passed);
  auto c2 = checksum(two), c1 = checksum(one);
  EXPECT_FALSE(c2["passed"].get<bool>());
  EXPECT_EQ(c2["failures"].get<int64_t>(), 1) << c2.dump();
  ASSERT_EQ(c2["evidence"].size(), 1u) << c2.dump();
  const std::string line = c2["evidence"][0].get<std::string>();
  EXPECT_NE(line.find("key (10001)"), std::string::npos) << line;
  EXPECT_NE(line.find("corrupted"), std::string::npos) << line;
  EXPECT_NE(line.find("user10001@example.com"), std::string::npos) << line;
  EXPECT_EQ(c2["metrics"]["old_rows"].get<double>(), static_cast<double>(rows));
  EXPECT_EQ(c2["metrics"]["sessions"].get<double>(), 2);
  EXPECT_EQ(c1["metrics"]["sessions"].get<double>(), 1);
  EXPECT_EQ(c1["evidence"], c2["evidence"]);
  EXPECT_EQ(c1["metrics"]["chunks"], c2["metrics"]["chunks"]);
}

// --- hashes and the cross-database diff ---------------------------------------------------------

std::unique_ptr<db::Connection> Open(const std::string& url) {
  auto a = db::OpenAdapter(url, {.create = true});
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok()) return nullptr;
  static std::vector<std::unique_ptr<db::Adapter>> keep;  // adapters outlive their connections
  auto c = (*a)->Connect();
  EXPECT_TRUE(c.ok()) << c.status().message();
  keep.push_back(std::move(*a));
  return c.ok() ? std::move(*c) : nullptr;
}

std::string Scalar(db::Connection& c, const std::string& sql) {
  auto r = c.Query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
  return r.ok() ? r->Scalar().text : "";
}

class HashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PgCluster* pg = PgCluster::Shared();
    SLUICE_ASSERT_PG_OK(pg);
    pg_ = Open(pg->CreateDatabase("hash"));
    lite_ = Open("sqlite:" + dir_.File("h.db"));
    ASSERT_TRUE(pg_ && lite_);
  }
  TempDir dir_;
  std::unique_ptr<db::Connection> pg_, lite_;
};

TEST_F(HashTest, RowHashesSeparateFieldsNullsAndTypes) {
  for (db::Connection* c : {lite_.get(), pg_.get()}) {
    const db::Dialect& d = c->dialect();
    auto h = [&](const std::vector<std::string>& e) { return Scalar(*c, "SELECT " + d.RowHash(e)); };
    auto p = [&](const std::vector<std::string>& e) {
      std::vector<std::string> t;
      for (const auto& x : e) t.push_back(d.CanonicalText(x, "text"));
      return Scalar(*c, "SELECT " + d.PortableRowHash(t));
    };
    EXPECT_NE(h({"'x0'", "'y'"}), h({"'x'", "'0y'"})) << d.name();
    EXPECT_NE(h({"NULL"}), h({"''"})) << d.name();
    EXPECT_NE(h({"NULL", "'a'"}), h({"'a'", "NULL"})) << d.name();
    EXPECT_EQ(h({"'x0'", "'y'"}), h({"'x0'", "'y'"})) << d.name();
    EXPECT_NE(p({"'x0'", "'y'"}), p({"'x'", "'0y'"})) << d.name();
    EXPECT_NE(p({"NULL"}), p({"''"})) << d.name();
    EXPECT_NE(p({"'|'", "''"}), p({"''", "'|'"})) << d.name();
  }
  // The portable hash is the same function in both databases.
  for (const char* s : {"''", "'abc'", "'x0|y'", "'Grüße, 東京'"}) {
    std::string a = Scalar(*lite_, "SELECT " + lite_->dialect().PortableRowHash({s}));
    std::string b = Scalar(*pg_, "SELECT " + pg_->dialect().PortableRowHash({s}));
    EXPECT_EQ(a, b) << s;
  }
  // MD5 known answer (RFC 1321): md5('abc') = 900150983cd24fb0...
  EXPECT_EQ(Scalar(*lite_, "SELECT sluice_md5_64('abc')"),
            Scalar(*pg_, "SELECT ('x' || substr(md5('abc'), 1, 16))::bit(64)::bigint"));
  EXPECT_EQ(Scalar(*pg_, "SELECT ('x' || '900150983cd24fb0')::bit(64)::bigint"),
            Scalar(*lite_, "SELECT sluice_md5_64('abc')"));
}

class DiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PgCluster* pg = PgCluster::Shared();
    SLUICE_ASSERT_PG_OK(pg);
    pg_url_ = pg->CreateDatabase("diff");
    lite_url_ = "sqlite:" + dir_.File("d.db");
    pg_ = Open(pg_url_);
    lite_ = Open(lite_url_);
    ASSERT_TRUE(pg_ && lite_);
  }
  Result<DiffResult> RunDiff(const std::string& table, std::vector<std::string> key = {}, int64_t chunk = 32) {
    DiffOptions o;
    o.source_url = lite_url_;
    o.target_url = pg_url_;
    o.table = table;
    o.key = std::move(key);
    o.chunk_rows = chunk;
    return Diff(o);
  }
  static std::string All(const DiffResult& r) {
    std::string s;
    for (const auto& e : r.evidence) s += e + "\n";
    return s;
  }
  TempDir dir_;
  std::string pg_url_, lite_url_;
  std::unique_ptr<db::Connection> pg_, lite_;
};

TEST_F(DiffTest, SqliteToPostgresFindsInsertedDeletedAndChangedRows) {
  SLUICE_ASSERT_OK(lite_->Exec(
      "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, cost NUMERIC, active INTEGER, "
      "note TEXT, data BLOB);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO items SELECT i, "
      "'item ' || i, i * 0.1, i * 0.25, i % 2, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END, "
      "CASE WHEN i % 5 = 0 THEN x'00ff' ELSE NULL END FROM n;"));
  SLUICE_ASSERT_OK(pg_->Exec(
      "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price double precision, cost numeric(10,2), "
      "active boolean, note text, data bytea);"
      "INSERT INTO items SELECT i, 'item ' || i, i * 0.1::float8, i * 0.25, i % 2 = 1, CASE WHEN i % 7 = 0 THEN "
      "NULL ELSE 'n' || i END, CASE WHEN i % 5 = 0 THEN '\\x00ff'::bytea ELSE NULL END FROM generate_series(1, 500) "
      "AS i;"));
  auto same = RunDiff("items");
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_TRUE(same->same) << All(*same);
  EXPECT_EQ(same->source_rows, 500);
  EXPECT_EQ(same->target_rows, 500);
  EXPECT_EQ(same->chunks, 16);  // 500 rows in chunks of 32

  SLUICE_ASSERT_OK(pg_->Exec("INSERT INTO items VALUES (1000, 'new', 1, 1, true, NULL, NULL)"));
  SLUICE_ASSERT_OK(pg_->Exec("DELETE FROM items WHERE id = 50"));
  SLUICE_ASSERT_OK(pg_->Exec("UPDATE items SET name = 'changed' WHERE id = 77"));
  SLUICE_ASSERT_OK(pg_->Exec("UPDATE items SET price = price + 1e-12 WHERE id = 300"));  // last significant digits
  auto diff = RunDiff("items");
  ASSERT_TRUE(diff.ok()) << diff.status().message();
  EXPECT_FALSE(diff->same);
  EXPECT_EQ(diff->differences, 4) << All(*diff);
  std::string all = All(*diff);
  EXPECT_NE(all.find("key (1000): only in target"), std::string::npos) << all;
  EXPECT_NE(all.find("key (50): only in source"), std::string::npos) << all;
  EXPECT_NE(all.find("key (77): name: source 'item 77', target 'changed'"), std::string::npos) << all;
  EXPECT_NE(all.find("key (300): price"), std::string::npos) << all;
  EXPECT_EQ(diff->differing_chunks, 4);
  EXPECT_GT(diff->bisect_queries, 0);

  // The CLI: exit 3 and JSON.
  auto cli = RunSluice({"diff", "--source", lite_url_, "--target", pg_url_, "--table", "items", "--chunk-rows", "32",
                        "--json"});
  EXPECT_EQ(cli.exit_code, 3) << cli.err;
  auto j = nlohmann::json::parse(cli.out);
  EXPECT_FALSE(j["same"].get<bool>());
  EXPECT_EQ(j["differences"].get<int>(), 4);
}

TEST_F(DiffTest, ShiftedFieldsAndNullVersusEmptyAreDifferences) {
  // A table without a declared key, compared on a --key that is unique.
  SLUICE_ASSERT_OK(lite_->Exec(
      "CREATE TABLE t (k INTEGER NOT NULL, a TEXT, b TEXT);"
      "INSERT INTO t VALUES (1, 'x0', 'y'), (2, NULL, 'z'), (3, 'd', 'd'), (4, 'same', 'same');"));
  SLUICE_ASSERT_OK(pg_->Exec(
      "CREATE TABLE t (k integer NOT NULL, a text, b text);"
      "INSERT INTO t VALUES (1, 'x', '0y'), (2, '', 'z'), (3, 'e', 'e'), (4, 'same', 'same');"));
  auto r = RunDiff("t", {"k"}, 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->same);
  std::string all = All(*r);
  EXPECT_NE(all.find("key (1)"), std::string::npos) << all;
  EXPECT_NE(all.find("key (2): a: source NULL, target ''"), std::string::npos) << all;
  EXPECT_NE(all.find("key (3)"), std::string::npos) << all;
  EXPECT_EQ(all.find("key (4)"), std::string::npos) << all;
  EXPECT_EQ(r->differences, 3) << all;
}

TEST_F(DiffTest, NonUniqueOrNullKeyIsRefusedUpFrontNamingTheKey) {
  // (a) Key 3 twice in the source only; (b) diff on k; (c) refused with
  // the key value, nothing compared; the same through the real binary,
  // which must exit with the error (not crash, not hang).
  SLUICE_ASSERT_OK(lite_->Exec("CREATE TABLE t (k INTEGER NOT NULL, a TEXT);"
                               "INSERT INTO t VALUES (1, 'a'), (3, 'd'), (3, 'd'), (4, 'x');"));
  SLUICE_ASSERT_OK(pg_->Exec("CREATE TABLE t (k integer NOT NULL, a text);"
                             "INSERT INTO t VALUES (1, 'a'), (3, 'd'), (4, 'x');"));
  auto r = RunDiff("t", {"k"}, 2);
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "is not unique in the source"));
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("key (3) is in 2 rows"));
  auto cli = RunSluice({"diff", "--source", lite_url_, "--target", pg_url_, "--table", "t", "--key", "k"});
  EXPECT_EQ(cli.exit_code, 2) << cli.out << cli.err;
  EXPECT_THAT(cli.err, ::testing::HasSubstr("key (3) is in 2 rows"));

  // Many rows on one key (the input that used to recurse without bound),
  // on the target side this time.
  SLUICE_ASSERT_OK(lite_->Exec("CREATE TABLE m (k INTEGER NOT NULL, v INTEGER)"));
  SLUICE_ASSERT_OK(pg_->Exec("CREATE TABLE m (k integer NOT NULL, v integer);"
                             "INSERT INTO m SELECT 7, i FROM generate_series(1, 5000) AS i;"));
  auto many = RunDiff("m", {"k"}, 100);
  EXPECT_THAT(many.status(), StatusIs(StatusCode::kInvalidArgument, "is not unique in the target"));
  EXPECT_THAT(many.status().message(), ::testing::HasSubstr("key (7) is in 5000 rows"));

  // A NULL key would fall outside every key range: refused too.
  SLUICE_ASSERT_OK(lite_->Exec("CREATE TABLE n (k INTEGER, a TEXT); INSERT INTO n VALUES (1, 'a'), (NULL, 'b');"));
  SLUICE_ASSERT_OK(pg_->Exec("CREATE TABLE n (k integer, a text); INSERT INTO n VALUES (1, 'a');"));
  auto nul = RunDiff("n", {"k"}, 2);
  EXPECT_THAT(nul.status(), StatusIs(StatusCode::kInvalidArgument, "is NULL in a row of the source"));

  // The table's own primary key needs no probe and passes.
  SLUICE_ASSERT_OK(lite_->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO p VALUES (1, 'a');"));
  SLUICE_ASSERT_OK(pg_->Exec("CREATE TABLE p (id integer PRIMARY KEY, a text); INSERT INTO p VALUES (1, 'a');"));
  auto ok = RunDiff("p");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE(ok->same);
}

TEST_F(DiffTest, OneRowInManyIsFoundInFewQueries) {
  SLUICE_ASSERT_OK(lite_->Exec(
      "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO big SELECT i, "
      "'v' || i FROM n;"));
  SLUICE_ASSERT_OK(pg_->Exec("CREATE TABLE big (id integer PRIMARY KEY, v text);"
                             "INSERT INTO big SELECT i, 'v' || i FROM generate_series(1, 20000) AS i;"
                             "UPDATE big SET v = 'oops' WHERE id = 12345;"));
  auto r = RunDiff("big", {}, 10000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->differences, 1);
  EXPECT_NE(All(*r).find("key (12345): v: source 'v12345', target 'oops'"), std::string::npos) << All(*r);
  // 10000-row chunk -> 16-row leaf: ~log2(10000/16) = 10 levels, 2 queries each.
  EXPECT_LE(r->bisect_queries, 2 * 11);
}

}  // namespace
}  // namespace sluice::testing
