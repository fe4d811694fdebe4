// Verification walks keys of every type the database can order (issue 8,
// item 5: `verify` on a uuid primary key failed with "function max(uuid)
// does not exist"). For each key type, on a real database through the real
// sluice binary: (a) a table keyed by that type, (b) start --backfill of a
// migration that adds a computed column, (c) verify passes, (d) one row's
// new column is corrupted by SQL behind the triggers' back, (e) verify
// fails and names exactly that row by its key. Also `sluice diff` across
// SQLite and PostgreSQL on text keys in different collations.
#include <nlohmann/json.hpp>

#include "db/adapter.h"
#include "support/pg_cluster.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

constexpr int kRows = 1000;

std::unique_ptr<db::Connection> Open(const std::string& url) {
  static std::vector<std::unique_ptr<db::Adapter>> keep;  // adapters outlive their connections
  auto a = db::OpenAdapter(url, {.create = true});
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok()) return nullptr;
  auto c = (*a)->Connect();
  EXPECT_TRUE(c.ok()) << c.status().message();
  keep.push_back(std::move(*a));
  return c.ok() ? std::move(*c) : nullptr;
}

// A key value as it appears in verification evidence (blobs in hex).
std::string Shown(const db::Value& v) {
  if (v.type != db::Value::Type::kBlob) return v.text;
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : v.text) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

struct KeyCase {
  std::string name;
  std::string backend;  // sqlite | postgres
  std::string setup;    // creates and fills `items` (key columns + name text NOT NULL)
  std::vector<std::string> key;
};

void PrintTo(const KeyCase& c, std::ostream* os) { *os << c.name; }

// kRows rows: i = 1..kRows as `i` in each backend's generator.
std::string PgRows(const std::string& columns, const std::string& values) {
  return "INSERT INTO items (" + columns + ", name) SELECT " + values + ", 'Item ' || i FROM generate_series(1, " +
         std::to_string(kRows) + ") AS i;";
}
std::string LiteRows(const std::string& columns, const std::string& values) {
  return "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(kRows) +
         ") INSERT INTO items (" + columns + ", name) SELECT " + values + ", 'Item ' || i FROM n;";
}

// Text keys whose order differs between the column's collation and
// bytewise order: 'a00002' sorts before 'B00001' case-insensitively.
constexpr const char* kMixedCase = "CASE WHEN i % 2 = 0 THEN 'a' ELSE 'B' END || substr('0000' || i, -5, 5)";
constexpr const char* kMixedCasePg = "CASE WHEN i % 2 = 0 THEN 'a' ELSE 'B' END || lpad(i::text, 5, '0')";

std::vector<KeyCase> Cases() {
  return {
      {"pg_uuid", "postgres", "CREATE TABLE items (k uuid PRIMARY KEY, name text NOT NULL);" + PgRows("k", "md5(i::text)::uuid"),
       {"k"}},
      {"pg_text_icu_collation", "postgres",
       "CREATE TABLE items (k text COLLATE \"und-x-icu\" PRIMARY KEY, name text NOT NULL);" +
           PgRows("k", kMixedCasePg),
       {"k"}},
      {"pg_numeric", "postgres",
       "CREATE TABLE items (k numeric PRIMARY KEY, name text NOT NULL);" + PgRows("k", "i::numeric / 8"), {"k"}},
      {"pg_timestamptz", "postgres",
       "CREATE TABLE items (k timestamptz PRIMARY KEY, name text NOT NULL);" +
           PgRows("k", "timestamptz '2024-02-29 23:59:59.5+00' + i * interval '1.000123 seconds'"),
       {"k"}},
      {"pg_bytea", "postgres",
       "CREATE TABLE items (k bytea PRIMARY KEY, name text NOT NULL);" + PgRows("k", "decode(md5(i::text), 'hex')"),
       {"k"}},
      {"pg_composite", "postgres",
       "CREATE TABLE items (region text COLLATE \"und-x-icu\", at timestamptz, u uuid, amount numeric, "
       "name text NOT NULL, PRIMARY KEY (region, at, u, amount));" +
           PgRows("region, at, u, amount",
                  "CASE WHEN i % 3 = 0 THEN 'eu' WHEN i % 3 = 1 THEN 'US' ELSE 'ap' END, timestamptz "
                  "'2024-01-01 00:00:00+00' + (i % 7) * interval '1 day', md5(i::text)::uuid, (i % 5)::numeric / 4"),
       {"region", "at", "u", "amount"}},
      {"sqlite_text_nocase", "sqlite",
       "CREATE TABLE items (k TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL);" + LiteRows("k", kMixedCase),
       {"k"}},
      {"sqlite_blob", "sqlite",
       "CREATE TABLE items (k BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL);" +
           LiteRows("k", "randomblob(12)"),
       {"k"}},
      {"sqlite_composite", "sqlite",
       "CREATE TABLE items (region TEXT NOT NULL, tag BLOB NOT NULL, n INTEGER NOT NULL, name TEXT NOT NULL, "
       "PRIMARY KEY (region, tag, n));" +
           LiteRows("region, tag, n",
                    "CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'US' END, CAST(printf('t%d', i % 3) AS BLOB), i"),
       {"region", "tag", "n"}},
  };
}

constexpr const char* kPlan = R"(
operations:
  - add_column:
      table: items
      up: upper(name)
      column: {name: name_upper, type: TEXT, nullable: true}
verify:
  checksum_chunk_rows: 64
  max_reported_differences: 10
)";

class VerifyKeysTest : public ::testing::TestWithParam<KeyCase> {
 protected:
  void SetUp() override {
    const KeyCase& c = GetParam();
    if (c.backend == "postgres") {
      PgCluster* pg = PgCluster::Shared();
      SLUICE_ASSERT_PG_OK(pg);
      url_ = pg->CreateDatabase("keys");
      ASSERT_FALSE(url_.empty());
    } else {
      url_ = "sqlite:" + dir_.File("keys.db");
    }
    conn_ = Open(url_);
    ASSERT_TRUE(conn_);
    SLUICE_ASSERT_OK(conn_->Exec(c.setup));
  }

  CommandResult Sluice(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", url_});
    return RunSluice(args);
  }

  static const nlohmann::json* FindCheck(const nlohmann::json& report, const std::string& name) {
    for (const auto& c : report["checks"]) {
      if (c["name"] == name) return &c;
    }
    return nullptr;
  }

  TempDir dir_;
  std::string url_;
  std::unique_ptr<db::Connection> conn_;
};

TEST_P(VerifyKeysTest, VerifyPassesThenFindsTheOneCorruptedRowByKey) {
  const KeyCase& c = GetParam();
  const db::Dialect& d = conn_->dialect();
  auto start = Sluice({"start", dir_.Write("001_upper.yaml", kPlan), "--backfill"});
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;

  auto clean = Sluice({"verify", "--json"});
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  auto j = nlohmann::json::parse(clean.out);
  const nlohmann::json* cs = FindCheck(j, "checksum");
  ASSERT_NE(cs, nullptr) << clean.out;
  EXPECT_TRUE((*cs)["passed"].get<bool>()) << clean.out;
  EXPECT_EQ((*cs)["checked"].get<int>(), kRows) << clean.out;
  // Chunks of 64 rows: by key on SQLite; PostgreSQL's block-range pieces
  // are sized from the table's blocks, about 64 rows each.
  EXPECT_GE((*cs)["metrics"]["chunks"].get<double>(), c.backend == "postgres" ? kRows / 128 : kRows / 64)
      << clean.out;

  // The physical column behind name_upper, and the row to damage: the
  // 778th in the key's order, read back and bound in its own type.
  std::string column;
  {
    auto r = conn_->Query(c.backend == "postgres"
                              ? "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' AND "
                                "column_name LIKE '%name_upper%' ORDER BY length(column_name) DESC"
                              : "SELECT name FROM pragma_table_info('items') WHERE name LIKE '%name_upper%' "
                                "ORDER BY length(name) DESC");
    ASSERT_TRUE(r.ok() && !r->rows.empty()) << r.status().message();
    column = r->rows[0][0].text;
  }
  std::vector<std::string> quoted;
  for (const auto& k : c.key) quoted.push_back(d.Quote(k));
  std::string keys;
  for (size_t i = 0; i < quoted.size(); ++i) keys += (i ? ", " : "") + quoted[i];
  auto target = conn_->Query("SELECT " + keys + " FROM items ORDER BY " + keys + " LIMIT 1 OFFSET 777");
  ASSERT_TRUE(target.ok() && target->rows.size() == 1) << target.status().message();
  const db::Row key = target->rows[0];
  std::string where;
  for (size_t i = 0; i < quoted.size(); ++i) where += (i ? " AND " : "") + quoted[i] + " = $" + std::to_string(i + 1);
  // Behind the dual-write triggers' back (SQLite: an update of only the new
  // column fires none).
  if (c.backend == "postgres") SLUICE_ASSERT_OK(conn_->Exec("SET session_replication_role = replica"));
  auto upd = conn_->Query("UPDATE items SET " + d.Quote(column) + " = 'WRONG' WHERE " + where, key);
  ASSERT_TRUE(upd.ok()) << upd.status().message();
  ASSERT_EQ(upd->affected, 1);

  auto bad = Sluice({"verify", "--json"});
  ASSERT_EQ(bad.exit_code, 3) << bad.out << bad.err;
  auto jb = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(jb["passed"].get<bool>());
  for (const char* name : {"checksum", "up_matches"}) {
    SCOPED_TRACE(name);
    const nlohmann::json* ch = FindCheck(jb, name);
    ASSERT_NE(ch, nullptr) << bad.out;
    EXPECT_FALSE((*ch)["passed"].get<bool>());
    EXPECT_EQ((*ch)["failures"].get<int>(), 1) << bad.out;
    ASSERT_EQ((*ch)["evidence"].size(), 1u) << bad.out;
    std::string e = (*ch)["evidence"][0].get<std::string>();
    for (const auto& v : key) EXPECT_NE(e.find(Shown(v)), std::string::npos) << Shown(v) << " not in: " << e;
    EXPECT_NE(e.find("WRONG"), std::string::npos) << e;
  }
  const nlohmann::json* ch = FindCheck(jb, "checksum");
  EXPECT_EQ((*ch)["metrics"]["differing_chunks"].get<double>(), 1) << bad.out;
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, VerifyKeysTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// `sluice diff` between SQLite and PostgreSQL on a text key whose column
// collations order differently on each side (NOCASE, ICU) and from
// bytewise: both sides walk the key bytewise, so equal tables compare
// equal and one changed row is found by its key.
TEST(DiffKeys, CollatedTextKeysAcrossDatabasesAndUuidKeys) {
  PgCluster* pg = PgCluster::Shared();
  SLUICE_ASSERT_PG_OK(pg);
  TempDir dir;
  std::string lite_url = "sqlite:" + dir.File("d.db");
  std::string pg_url = pg->CreateDatabase("diffkeys");
  auto lite = Open(lite_url);
  auto pgc = Open(pg_url);
  ASSERT_TRUE(lite && pgc);
  SLUICE_ASSERT_OK(lite->Exec("CREATE TABLE items (k TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL);" +
                              LiteRows("k", kMixedCase)));
  SLUICE_ASSERT_OK(pgc->Exec("CREATE TABLE items (k text COLLATE \"und-x-icu\" PRIMARY KEY, name text NOT NULL);" +
                             PgRows("k", kMixedCasePg)));
  auto same = RunSluice({"diff", "--source", lite_url, "--target", pg_url, "--table", "items", "--chunk-rows", "50",
                         "--json"});
  ASSERT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_EQ(nlohmann::json::parse(same.out)["source_rows"].get<int>(), kRows);

  SLUICE_ASSERT_OK(pgc->Exec("UPDATE items SET name = 'changed' WHERE k = 'a00500'"));
  auto diff = RunSluice({"diff", "--source", lite_url, "--target", pg_url, "--table", "items", "--chunk-rows", "50",
                         "--json"});
  ASSERT_EQ(diff.exit_code, 3) << diff.out << diff.err;
  auto j = nlohmann::json::parse(diff.out);
  EXPECT_EQ(j["differences"].get<int>(), 1) << diff.out;
  ASSERT_EQ(j["evidence"].size(), 1u) << diff.out;
  EXPECT_NE(j["evidence"][0].get<std::string>().find("key ('a00500'): name: source 'Item 500', target 'changed'"),
            std::string::npos)
      << diff.out;

  // A binary key cannot be bound across dialects: refused, not walked wrongly.
  SLUICE_ASSERT_OK(lite->Exec("CREATE TABLE b (k BLOB PRIMARY KEY NOT NULL, v INTEGER)"));
  SLUICE_ASSERT_OK(pgc->Exec("CREATE TABLE b (k bytea PRIMARY KEY, v integer)"));
  auto bin = RunSluice({"diff", "--source", lite_url, "--target", pg_url, "--table", "b"});
  EXPECT_EQ(bin.exit_code, 2) << bin.out << bin.err;
  EXPECT_NE(bin.err.find("cannot walk binary keys"), std::string::npos) << bin.err;

  // PostgreSQL to PostgreSQL on a uuid key (no max(uuid) anywhere).
  std::string pg2_url = pg->CreateDatabase("diffkeys2");
  for (const auto& url : {pg_url, pg2_url}) {
    pg->Psql(url, "CREATE TABLE u (k uuid PRIMARY KEY, v integer); INSERT INTO u SELECT md5(i::text)::uuid, i FROM "
                  "generate_series(1, 3000) AS i;");
  }
  std::string changed = pg->Psql(pg2_url, "UPDATE u SET v = -1 WHERE v = 1234 RETURNING k");
  auto u = RunSluice({"diff", "--source", pg_url, "--target", pg2_url, "--table", "u", "--chunk-rows", "200",
                      "--json"});
  ASSERT_EQ(u.exit_code, 3) << u.out << u.err;
  auto ju = nlohmann::json::parse(u.out);
  EXPECT_EQ(ju["differences"].get<int>(), 1) << u.out;
  ASSERT_EQ(ju["evidence"].size(), 1u) << u.out;
  EXPECT_NE(ju["evidence"][0].get<std::string>().find("key ('" + changed + "'): v: source 1234, target -1"),
            std::string::npos)
      << u.out;
}

}  // namespace
}  // namespace sluice::testing
