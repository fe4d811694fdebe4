// The real-schema scenario matrix of issue 8 on PostgreSQL: table features
// (user triggers, range/list partitioning, foreign keys as parent and
// child, dependent views and materialized views, enum/domain/array/jsonb
// columns, uuid/text/composite keys, a non-public schema, an application
// using functions, sequences and prepared statements) crossed with the
// operations. Each cell either is refused at `lint --db` AND at `start` with
// the catalog unchanged (and the cell expects that refusal), or runs
//   start -> rollback, start -> backfill -> rollback,
//   start -> backfill -> switch -> rollback   (each back to the catalog
//                                              before start, rows as the
//                                              old version left them)
//   start -> backfill -> verify -> switch -> verify -> complete
// with writers through the old version, the new version (once its backfill
// is done) and the live alias, asserting every row's values in both shapes
// against a model of what the application wrote, row counts, and the
// features' own invariants (timestamps not moved by the backfill, exactly
// one audit row per application write). Nothing that lint and start accept
// may fail later: such a cell fails here.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <ostream>
#include <set>

#include "support/pg_cluster.h"
#include "support/pg_fingerprint.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

PgCluster* Pg() { return PgCluster::Shared(); }

// --- table features ---------------------------------------------------------
//
// Every feature has a table `items` (in `schema`) with, besides its key,
// `qty text NOT NULL` (digits), `note text` and `cat integer` (1..3), and
// rows n = 1..kRows. A row is named by its ordinal n; the feature says how n
// becomes key values and how a row yields n back.

constexpr int kRows = 30;

// The part every feature shares: `cats`, the parent of items.cat in the
// foreign-key operation.
constexpr const char* kCommon = "CREATE TABLE cats (id integer PRIMARY KEY); INSERT INTO cats VALUES (1), (2), (3);";

struct Feature {
  std::string name;
  std::string schema = "public";
  std::string setup;                    // creates items (and what it needs) in `schema`, no rows
  std::vector<std::string> key_cols;    // physical key columns
  std::function<std::vector<std::string>(int)> key;  // n -> SQL literals of the key columns
  std::string ordinal;                  // SQL: a row's n
  bool audited = false;                 // touch + audit triggers (see kTriggers)
  bool app_functions = false;           // old-version inserts through add_item(), updates prepared
};

std::string SetupOf(const Feature& f) {
  std::string s = "CREATE SCHEMA IF NOT EXISTS " + f.schema + "; SET search_path TO " + f.schema + "; " + kCommon;
  s += f.setup;
  // kRows rows, with the tables' triggers kept from firing (the audit and
  // the stamps count application writes from here on).
  s += "SET session_replication_role = replica;";
  for (int n = 1; n <= kRows; ++n) {
    std::string cols, vals;
    auto k = f.key(n);
    for (size_t i = 0; i < k.size(); ++i) {
      cols += f.key_cols[i] + ", ";
      vals += k[i] + ", ";
    }
    s += "INSERT INTO items (" + cols + "qty, note, cat) VALUES (" + vals + "'" + std::to_string(n * 10) + "', 'n" +
         std::to_string(n) + "', " + std::to_string(1 + n % 3) + ");";
  }
  return s + "RESET session_replication_role;";
}

std::vector<std::string> IntKey(int n) { return {std::to_string(n)}; }

// A BEFORE trigger stamping updated_at, an AFTER trigger writing one audit
// row per row written (INSERT, UPDATE, DELETE); created after the rows.
constexpr const char* kTriggers = R"(
CREATE TABLE audit (seq bigserial PRIMARY KEY, item integer, op text);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit (item, op) VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, TG_OP);
  RETURN NULL;
END $$;
CREATE TRIGGER items_touch BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER items_audit AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION audit_row();
)";

std::vector<Feature> Features() {
  std::vector<Feature> fs;
  const std::string plain = "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, cat integer);";
  fs.push_back({"Plain", "public", plain, {"id"}, IntKey, "id"});
  {
    Feature f{"UserTriggers", "public",
              "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, cat integer, "
              "updated_at timestamptz NOT NULL DEFAULT '2000-01-01');" + std::string(kTriggers),
              {"id"}, IntKey, "id"};
    f.audited = true;
    fs.push_back(f);
  }
  fs.push_back({"RangePartitioned", "public",
                "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, cat integer) "
                "PARTITION BY RANGE (id); CREATE TABLE items_low PARTITION OF items FOR VALUES FROM (MINVALUE) TO "
                "(20); CREATE TABLE items_high PARTITION OF items FOR VALUES FROM (20) TO (1000); CREATE TABLE "
                "items_rest PARTITION OF items DEFAULT;",
                {"id"}, IntKey, "id"});
  fs.push_back({"ListPartitioned", "public",
                "CREATE TABLE items (region text NOT NULL, id integer NOT NULL, qty text NOT NULL, note text, cat "
                "integer, PRIMARY KEY (region, id)) PARTITION BY LIST (region); CREATE TABLE items_eu PARTITION OF "
                "items FOR VALUES IN ('eu'); CREATE TABLE items_rest PARTITION OF items DEFAULT;",
                {"region", "id"},
                [](int n) { return std::vector<std::string>{n % 2 ? "'eu'" : "'us'", std::to_string(n)}; }, "id"});
  // items is the child of cats (through cat, see kCommon... and its own
  // foreign key) and the parent of lines.
  fs.push_back({"ForeignKeys", "public",
                "CREATE TABLE owners (id integer PRIMARY KEY); INSERT INTO owners SELECT generate_series(0, 9);"
                "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, cat integer, owner "
                "integer REFERENCES owners (id) DEFAULT 1);"
                "CREATE TABLE lines (id serial PRIMARY KEY, item integer NOT NULL REFERENCES items (id) ON DELETE "
                "CASCADE);",
                {"id"}, IntKey, "id"});
  fs.push_back({"DependentViews", "public",
                plain + "CREATE VIEW items_v AS SELECT id, qty, note, cat FROM items;"
                        "CREATE VIEW items_sum AS SELECT cat, count(*) AS n, string_agg(note, ',') AS notes FROM "
                        "items GROUP BY cat;"
                        "CREATE VIEW items_qlen AS SELECT id, length(qty) AS qlen FROM items;",
                {"id"}, IntKey, "id"});
  fs.push_back({"MaterializedView", "public",
                plain + "CREATE MATERIALIZED VIEW items_notes AS SELECT id, note FROM items;", {"id"}, IntKey, "id"});
  fs.push_back({"RichTypes", "public",
                "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE DOMAIN posint AS integer CHECK (VALUE > 0);"
                "CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, cat integer, "
                "mood mood NOT NULL DEFAULT 'ok', amount posint DEFAULT 1, tags text[] DEFAULT '{a,b}', "
                "doc jsonb DEFAULT '{\"k\": [1, 2]}');",
                {"id"}, IntKey, "id"});
  fs.push_back({"UuidKey", "public",
                "CREATE TABLE items (id uuid PRIMARY KEY, qty text NOT NULL, note text, cat integer);", {"id"},
                [](int n) {
                  char buf[64];
                  snprintf(buf, sizeof buf, "'00000000-0000-4000-8000-%012d'", n);
                  return std::vector<std::string>{buf};
                },
                "right(id::text, 12)::integer"});
  fs.push_back({"TextKey", "public",
                "CREATE TABLE items (id text PRIMARY KEY, qty text NOT NULL, note text, cat integer);", {"id"},
                [](int n) { return std::vector<std::string>{"'k" + std::to_string(n) + "'"}; },
                "substr(id, 2)::integer"});
  fs.push_back({"CompositeKey", "public",
                "CREATE TABLE items (shop integer NOT NULL, id integer NOT NULL, qty text NOT NULL, note text, cat "
                "integer, PRIMARY KEY (shop, id));",
                {"shop", "id"},
                [](int n) { return std::vector<std::string>{std::to_string(n % 4), std::to_string(n)}; }, "id"});
  fs.push_back({"AppSchema", "app", plain, {"id"}, IntKey, "id"});
  {
    // Functions, a sequence (a column default the versions' views carry)
    // and prepared statements.
    Feature f{"AppObjects", "public",
              "CREATE SEQUENCE items_seq; CREATE TABLE items (id integer PRIMARY KEY, qty text NOT NULL, note text, "
              "cat integer, seq_no bigint NOT NULL DEFAULT nextval('items_seq'));"
              "CREATE FUNCTION add_item(i integer, q text, t text, c integer) RETURNS bigint LANGUAGE sql AS "
              "$$ INSERT INTO items (id, qty, note, cat) VALUES (i, q, t, c) RETURNING seq_no $$;"
              "CREATE FUNCTION items_total() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM items $$;",
              {"id"}, IntKey, "id"};
    f.app_functions = true;
    fs.push_back(f);
  }
  return fs;
}

// --- operations ---------------------------------------------------------------

enum class Note { kSame, kRenamed, kDropped };

struct Operation {
  std::string name;
  std::string plan;  // the operations list, items in the migrated schema
  Note note = Note::kSame;
  bool extra = false;  // the new version has `extra` = 'x' || qty
};

std::vector<Operation> Operations() {
  return {
      {"AddColumn",
       "  - add_column:\n      table: items\n      column:\n        name: extra\n        type: text\n"
       "        nullable: true\n      up: \"'x' || qty\"\n",
       Note::kSame, true},
      {"AlterType",
       "  - alter_column:\n      table: items\n      column: qty\n      type: integer\n      up: qty::integer\n"
       "      down: qty::text\n"},
      {"RenameColumn", "  - rename_column:\n      table: items\n      from: note\n      to: remark\n", Note::kRenamed},
      {"DropColumn", "  - drop_column:\n      table: items\n      column: note\n      down: \"'dropped'\"\n",
       Note::kDropped},
      {"CreateIndex", "  - create_index:\n      name: items_note_idx\n      table: items\n      columns: [note]\n"},
      {"SetNotNull",
       "  - alter_column:\n      table: items\n      column: note\n      nullable: false\n"
       "      up: coalesce(note, '-')\n      down: note\n"},
      {"AddUnique",
       "  - alter_column:\n      table: items\n      column: note\n      unique:\n        name: items_note_uq\n"
       "      up: note\n      down: note\n"},
      {"AddCheck",
       "  - alter_column:\n      table: items\n      column: qty\n      check:\n        name: items_qty_digits\n"
       "        constraint: \"qty ~ '^[0-9]+$'\"\n      up: qty\n      down: qty\n"},
      {"AddForeignKey",
       "  - alter_column:\n      table: items\n      column: cat\n      references:\n        name: items_cat_fk\n"
       "        table: cats\n        column: id\n      up: cat\n      down: cat\n"},
      {"SqlCreatesTable",
       "  - sql:\n      up: CREATE TABLE side (id integer PRIMARY KEY, v text)\n      down: DROP TABLE side\n"},
  };
}

// Cells refused at lint --db and start, with a substring of the reason.
// Everything else must run to complete and roll back from every phase.
std::map<std::string, std::string> Refusals() {
  return {
      // complete would drop the column the materialized view reads.
      {"MaterializedView/DropColumn", "materialized view"},
      {"MaterializedView/SetNotNull", "materialized view"},
      {"MaterializedView/AddUnique", "materialized view"},
      // PostgreSQL cannot attach a concurrently built unique index as a
      // constraint, nor add a foreign key NOT VALID, on a partitioned table.
      {"RangePartitioned/AddUnique", "cannot make a unique index built without blocking writes"},
      {"ListPartitioned/AddUnique", "cannot make a unique index built without blocking writes"},
      {"RangePartitioned/AddForeignKey", "cannot add a foreign key NOT VALID there"},
      {"ListPartitioned/AddForeignKey", "cannot add a foreign key NOT VALID there"},
      // items_qlen does length(qty): no length(integer) after the change.
      {"DependentViews/AlterType", "items_qlen"},
      // items_v and items_sum read note; complete drops it.
      {"DependentViews/DropColumn", "reads column 'items.note'"},
  };
}

// --- the model of what the application wrote ------------------------------

struct Row {
  int qty = 0;
  std::string note;
  int cat = 1;
};

struct Model {
  std::map<int, Row> rows;
  int writes = 0;           // application writes of items rows (audit rows)
  std::set<int> touched;    // rows an application insert or update stamped
};

struct Cell {
  Feature f;
  Operation op;
  std::string refusal;  // expected refusal substring, "" when accepted
  bool rollbacks = true;  // also rolled back after start, backfill and switch
};

// gtest names a failing cell by this.
void PrintTo(const Cell& c, std::ostream* os) { *os << c.f.name << "/" << c.op.name; }

std::string Q(const std::string& s) { return "'" + s + "'"; }

class PgScenarioMatrix : public ::testing::TestWithParam<Cell> {
 protected:
  // One template database per feature, made on first use: CREATE DATABASE
  // ... TEMPLATE is a file copy, much faster than running the setup for
  // every cell (ctest runs each cell in its own process, so only the
  // feature's own template is made there).
  static bool EnsureTemplate(const Feature& f, std::string* err) {
    static std::set<std::string> made;
    const std::string tmpl = TemplateName(f);
    if (made.count(tmpl)) return true;
    Pg()->TryPsql("postgres", "DROP DATABASE IF EXISTS " + tmpl, nullptr, err);
    if (!Pg()->TryPsql("postgres", "CREATE DATABASE " + tmpl + " TEMPLATE template0", nullptr, err)) return false;
    if (!Pg()->TryPsql(tmpl, SetupOf(f), nullptr, err)) return false;
    made.insert(tmpl);
    return true;
  }
  static std::string TemplateName(const Feature& f) {
    std::string n = "tmpl_";
    for (char c : f.name) n += static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return n;
  }

  void SetUp() override {
    SLUICE_ASSERT_PG_OK(Pg());
    const Cell& c = GetParam();
    static int counter = 0;
    db_ = "cell" + std::to_string(counter++) + "_" + std::to_string(getpid());
    std::string err;
    ASSERT_TRUE(EnsureTemplate(c.f, &err)) << c.f.name << ": " << err;
    ASSERT_TRUE(Pg()->TryPsql("postgres", "CREATE DATABASE " + db_ + " TEMPLATE " + TemplateName(c.f), nullptr, &err))
        << err;
    url_ = Pg()->Url(db_);
    Options o = PatientLocks();
    o.schema = c.f.schema;
    m_ = OpenUrl(url_, o);
    ASSERT_NE(m_, nullptr);
    plan_ = dir_.Write("mx.yaml", "operations:\n" + c.op.plan);
    for (int n = 1; n <= kRows; ++n) model_.rows[n] = Row{n * 10, "n" + std::to_string(n), 1 + n % 3};
  }
  void TearDown() override {
    m_.reset();
    std::string err;
    Pg()->TryPsql("postgres", "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)", nullptr, &err);
  }

  const Feature& F() const { return GetParam().f; }
  const Operation& Op() const { return GetParam().op; }
  std::string Fp() { return FingerprintWithoutLive(url_, F().schema); }

  // search_path of each way in: the base tables (the old version), the new
  // version, the live alias.
  std::string Path(const std::string& via) const {
    const std::string& s = F().schema;
    if (via == "old") return "SET search_path TO \"" + s + "\"; ";
    if (via == "new") return "SET search_path TO \"" + s + "_mx\", \"" + s + "\"; ";
    return "SET search_path TO \"" + s + "_live\", \"" + s + "\"; ";
  }
  bool NewShape(const std::string& via, bool completed) const { return completed || via != "old"; }

  std::string KeyWhere(int n) const {
    auto k = F().key(n);
    std::string w;
    for (size_t i = 0; i < k.size(); ++i) w += (i ? " AND " : "") + F().key_cols[i] + " = " + k[i];
    return w;
  }

  // One round of application writes through `via`: an insert, an update of
  // qty and note, a delete. `completed`: the base tables have the new shape.
  void Write(const std::string& via, int round, bool completed = false) {
    const bool shape_new = NewShape(via, completed);
    const std::string note_col = shape_new && Op().note == Note::kRenamed ? "remark" : "note";
    const bool has_note = !(shape_new && Op().note == Note::kDropped);
    const int n = 1000 + round;
    Row r{n % 97, "w" + std::to_string(n), 1 + n % 3};
    if (!has_note) r.note = "dropped";  // the drop_column's down
    // Insert.
    auto k = F().key(n);
    std::string cols, vals;
    for (size_t i = 0; i < k.size(); ++i) {
      cols += F().key_cols[i] + ", ";
      vals += k[i] + ", ";
    }
    cols += "qty, cat";
    vals += Q(std::to_string(r.qty)) + ", " + std::to_string(r.cat);
    if (has_note) {
      cols += ", " + note_col;
      vals += ", " + Q(r.note);
    }
    if (shape_new && Op().extra) {
      cols += ", extra";
      vals += ", " + Q("x" + std::to_string(r.qty));
    }
    std::string sql;
    if (F().app_functions && via == "old" && !completed) {
      sql = "SELECT add_item(" + k[0] + ", " + Q(std::to_string(r.qty)) + ", " + Q(r.note) + ", " +
            std::to_string(r.cat) + ")";
    } else {
      sql = "INSERT INTO items (" + cols + ") VALUES (" + vals + ")";
    }
    model_.rows[n] = r;
    Count(n);
    // Update an original row (a prepared statement where the app uses them).
    const int u = round;
    Row& ur = model_.rows.at(u);
    ur.qty += 1;
    std::string set = "qty = " + Q(std::to_string(ur.qty));
    if (has_note) {
      ur.note = "u" + std::to_string(round);
      set += ", " + note_col + " = " + Q(ur.note);
    }
    if (shape_new && Op().extra) set += ", extra = " + Q("x" + std::to_string(ur.qty));
    if (F().app_functions) {
      sql += "; PREPARE upd AS UPDATE items SET " + set + " WHERE " + KeyWhere(u) + "; EXECUTE upd; DEALLOCATE upd";
    } else {
      sql += "; UPDATE items SET " + set + " WHERE " + KeyWhere(u);
    }
    // drop_column's down gives the old column its value on inserts through
    // the new version; an update there leaves it as it was. (SQLite
    // applies down on updates too: sqlite_scenario_matrix_test.cc.)
    Count(u);
    // Delete an original row (cascading to nothing: lines is empty); never
    // one updated above (rounds stay below kRows / 2).
    const int d = kRows + 1 - round;
    sql += "; DELETE FROM items WHERE " + KeyWhere(d);
    // One session per round, as an application's request would be.
    Exec(via, sql);
    model_.rows.erase(d);
    ++model_.writes;
  }
  void Count(int n) {
    ++model_.writes;
    model_.touched.insert(n);
  }
  void Exec(const std::string& via, const std::string& sql) {
    std::string v, err;
    EXPECT_TRUE(Pg()->TryPsql(url_, Path(via) + sql, &v, &err)) << "through " << via << ": " << sql << "\n" << err;
  }

  // Every row through `via`, as "n:qty:note:cat[:extra ok]", ordered by n.
  std::string Rows(const std::string& via, bool completed = false) {
    const bool shape_new = NewShape(via, completed);
    std::string note = "coalesce(note, '<null>')";
    if (shape_new && Op().note == Note::kRenamed) note = "coalesce(remark, '<null>')";
    if (shape_new && Op().note == Note::kDropped) note = "'dropped'";
    std::string extra;
    if (shape_new && Op().extra) extra = " || ':' || (extra IS NOT DISTINCT FROM 'x' || qty)::text";
    return Pg()->Psql(url_, Path(via) + "SELECT string_agg(" + F().ordinal + " || ':' || qty::text || ':' || " + note +
                                " || ':' || cat" + extra + ", ',' ORDER BY " + F().ordinal + ") FROM items");
  }
  std::string Expected(const std::string& via, bool completed = false) const {
    const bool shape_new = NewShape(via, completed);
    std::string out;
    for (const auto& [n, r] : model_.rows) {
      std::string note = r.note;
      if (shape_new && Op().note == Note::kDropped) note = "dropped";
      out += (out.empty() ? "" : ",") + std::to_string(n) + ":" + std::to_string(r.qty) + ":" + note + ":" +
             std::to_string(r.cat) + (shape_new && Op().extra ? ":true" : "");
    }
    return out;
  }
  // The rows through each way in that is open, and the features' invariants.
  void Check(const std::string& when, const std::vector<std::string>& vias, bool completed = false) {
    for (const auto& via : vias) {
      EXPECT_EQ(Rows(via, completed), Expected(via, completed)) << when << ", through " << via;
    }
    if (F().audited) {
      EXPECT_EQ(Pg()->Psql(url_, "SELECT count(*) FROM audit"), std::to_string(model_.writes))
          << when << ": one audit row per application write";
      EXPECT_EQ(Pg()->Psql(url_, "SELECT count(*) FROM items WHERE updated_at > '2001-01-01'"),
                std::to_string(std::count_if(model_.touched.begin(), model_.touched.end(),
                                             [&](int n) { return model_.rows.count(n) > 0; })))
          << when << ": only application writes move updated_at";
    }
    if (F().app_functions) {
      EXPECT_EQ(Pg()->Psql(url_, "SELECT items_total()"), std::to_string(model_.rows.size())) << when;
      EXPECT_EQ(Pg()->Psql(url_, "SELECT count(DISTINCT seq_no) FROM items"), std::to_string(model_.rows.size()))
          << when << ": every row has its own sequence number";
    }
    if (F().name == "ForeignKeys") {
      EXPECT_EQ(Pg()->Psql(url_, "SELECT count(*) FROM items WHERE owner = 1"), std::to_string(model_.rows.size()))
          << when;
    }
  }

  void Backfill() {
    BackfillOptions bo;
    bo.chunk_rows = 10;
    bo.chunk_min_rows = 5;
    bo.chunk_max_rows = 10;
    auto bf = m_->Backfill("mx", bo);
    ASSERT_TRUE(bf.ok()) << bf.status().message();
  }

  void ExpectRolledBack(const std::string& before, const std::string& when) {
    EXPECT_EQ(Fp(), before) << "catalog after rollback " << when;
    Check("after rollback " + when, {"old"});
    EXPECT_EQ(Pg()->Psql(url_, "SELECT phase FROM sluice.migrations WHERE name = 'mx'"), "rolled_back");
  }

  TempDir dir_;
  std::string db_, url_, plan_;
  std::unique_ptr<Migrator> m_;
  Model model_;
};

TEST_P(PgScenarioMatrix, CompletesAndRollsBackFromEveryPhaseOrIsRefusedUpFront) {
  const Cell& c = GetParam();
  const std::string before = CatalogFingerprint(url_);
  auto lint = m_->Lint(plan_);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  std::string lint_errors;
  for (const auto& e : lint->errors) lint_errors += e + "\n";
  if (!c.refusal.empty()) {
    EXPECT_FALSE(lint->ok) << "lint --db accepted a plan start must refuse";
    EXPECT_THAT(lint_errors, HasSubstr(c.refusal));
    Status s = m_->Start(plan_);
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(s.message(), HasSubstr(c.refusal));
    EXPECT_EQ(CatalogFingerprint(url_), before) << "a refused start changed the catalog";
    Check("after the refused start", {"old"});
    return;
  }
  ASSERT_TRUE(lint->ok) << lint_errors;
  ASSERT_TRUE(lint->checked_against_database);
  const std::string fp = Fp();
  int round = 1;
  if (c.rollbacks) {
    // Rolled back right after start.
    SLUICE_ASSERT_OK(m_->Start(plan_));
    Write("old", round++);
    SLUICE_ASSERT_OK(m_->Rollback("mx"));
    ExpectRolledBack(fp, "after start");

    // After the backfill.
    SLUICE_ASSERT_OK(m_->Start(plan_));
    Write("old", round++);
    ASSERT_NO_FATAL_FAILURE(Backfill());
    Write("new", round++);
    Check("backfilled", {"old", "new"});
    SLUICE_ASSERT_OK(m_->Rollback("mx"));
    ExpectRolledBack(fp, "after backfill");

    // After switch (rollback switches back first).
    SLUICE_ASSERT_OK(m_->Start(plan_));
    ASSERT_NO_FATAL_FAILURE(Backfill());
    Write("new", round++);
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m_, "mx"));
    SLUICE_ASSERT_OK(m_->Switch("mx", false));
    Write("live", round++);
    Write("old", round++);
    Check("switched", {"old", "new", "live"});
    SLUICE_ASSERT_OK(m_->Rollback("mx"));
    ExpectRolledBack(fp, "after switch");
  }

  // To complete.
  SLUICE_ASSERT_OK(m_->Start(plan_));
  Write("old", round++);
  const std::string stamps =
      F().audited ? Pg()->Psql(url_, "SELECT string_agg(id || '=' || updated_at, ',' ORDER BY id) FROM items") : "";
  ASSERT_NO_FATAL_FAILURE(Backfill());
  if (F().audited) {
    EXPECT_EQ(Pg()->Psql(url_, "SELECT string_agg(id || '=' || updated_at, ',' ORDER BY id) FROM items"), stamps)
        << "the backfill moved a timestamp";
  }
  Check("backfilled", {"old", "new"});
  Write("new", round++);
  Write("old", round++);
  Check("written through both versions", {"old", "new"});
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m_, "mx"));
  SLUICE_ASSERT_OK(m_->Switch("mx", false));
  Write("live", round++);
  Write("new", round++);
  Write("old", round++);
  Check("switched", {"old", "new", "live"});
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m_, "mx"));
  SLUICE_ASSERT_OK(m_->Complete("mx"));
  Check("completed", {"old"}, true);
  Write("old", round++, true);
  Check("written after complete", {"old", "live"}, true);
  EXPECT_EQ(Pg()->Psql(url_, "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN "
                             "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " + Q(F().schema) +
                             " AND c.relkind IN ('r', 'p') AND a.attname LIKE '\\_sluice%' AND NOT "
                             "a.attisdropped"),
            "0")
      << "sluice's columns left behind";
}

// The live alias follows `switch` for tables too: a table the new version
// drops or renames is gone from `<schema>_live` (whose search_path falls
// through to the base schema, where it still exists) while the alias points
// at the new version, and back after `switch --back` and rollback.
TEST(PgLiveAlias, HidesTablesTheNewVersionDropsOrRenamesWhileItIsLive) {
  SLUICE_ASSERT_PG_OK(Pg());
  const std::string url = Pg()->CreateDatabase("live");
  ASSERT_FALSE(url.empty());
  Pg()->Psql(url, "CREATE TABLE keep (id integer PRIMARY KEY); CREATE TABLE gone (id integer PRIMARY KEY); "
                  "CREATE TABLE old_name (id integer PRIMARY KEY); INSERT INTO keep VALUES (1); "
                  "INSERT INTO gone VALUES (1), (2); INSERT INTO old_name VALUES (1), (2), (3);");
  auto m = OpenUrl(url, PatientLocks());
  ASSERT_NE(m, nullptr);
  TempDir dir;
  const std::string plan = dir.Write("lv.yaml", R"(
operations:
  - drop_table:
      name: gone
  - rename_table:
      from: old_name
      to: new_name
)");
  auto live = [&](const std::string& table) {
    std::string v, err;
    if (!Pg()->TryPsql(url, "SET search_path TO public_live, public; SELECT count(*) FROM " + table, &v, &err)) {
      return err.find("does not exist") != std::string::npos ? std::string("missing") : err;
    }
    return v;
  };
  const std::string before = FingerprintWithoutLive(url);
  for (int pass = 0; pass < 2; ++pass) {
    SLUICE_ASSERT_OK(m->Start(plan));
    EXPECT_EQ(live("gone"), "2");
    EXPECT_EQ(live("old_name"), "3");
    EXPECT_EQ(live("new_name"), "missing");
    ASSERT_NO_FATAL_FAILURE(AssertVerified(*m, "lv"));
    SLUICE_ASSERT_OK(m->Switch("lv", false));
    EXPECT_EQ(live("keep"), "1");
    EXPECT_EQ(live("gone"), "missing");
    EXPECT_EQ(live("old_name"), "missing");
    EXPECT_EQ(live("new_name"), "3");
    if (pass == 0) {
      SLUICE_ASSERT_OK(m->Switch("lv", true));
      EXPECT_EQ(live("gone"), "2");
      EXPECT_EQ(live("old_name"), "3");
      EXPECT_EQ(live("new_name"), "missing");
      SLUICE_ASSERT_OK(m->Switch("lv", false));
      SLUICE_ASSERT_OK(m->Rollback("lv"));
      EXPECT_EQ(live("gone"), "2");
      EXPECT_EQ(live("old_name"), "3");
      EXPECT_EQ(live("new_name"), "missing");
      EXPECT_EQ(FingerprintWithoutLive(url), before);
    }
  }
  SLUICE_ASSERT_OK(m->Complete("lv"));
  EXPECT_EQ(live("keep"), "1");
  EXPECT_EQ(live("gone"), "missing");
  EXPECT_EQ(live("old_name"), "missing");
  EXPECT_EQ(live("new_name"), "3");
}

std::vector<Cell> Cells() {
  // Which operations run on which feature. Every feature runs the
  // operations that copy or rename a column (AlterType, RenameColumn,
  // DropColumn, AddUnique) and AddColumn: those involve the dual write, the
  // backfill, the versions' views and complete's column swap, which is where
  // a table's features matter. Plain and AppSchema run every operation.
  // Skipped, because they add nothing over those cells (a time budget):
  //  * CreateIndex, SetNotNull, AddCheck, AddForeignKey and SqlCreatesTable
  //    elsewhere, except where the feature meets them: an index on a
  //    partitioned table, a foreign key beside the table's own foreign
  //    keys, NOT NULL / check over dependent and materialized views;
  //  * AddColumn on the key features (the key matters to the dual write
  //    and the backfill only, which the copying operations exercise).
  // Rolled back from every phase (besides running to complete): every
  // operation on Plain, and AlterType (a copied column, dual write both
  // ways, a backfill) on every feature.
  const std::set<std::string> core = {"AddColumn", "AlterType", "RenameColumn", "DropColumn", "AddUnique"};
  const std::map<std::string, std::set<std::string>> more = {
      {"RangePartitioned", {"CreateIndex"}},
      {"ListPartitioned", {"CreateIndex"}},
      {"ForeignKeys", {"AddForeignKey"}},
      {"DependentViews", {"SetNotNull", "AddCheck"}},
      {"MaterializedView", {"SetNotNull"}},
  };
  const auto refusals = Refusals();
  std::vector<Cell> out;
  for (const auto& f : Features()) {
    const bool key_feature = f.name == "UuidKey" || f.name == "TextKey" || f.name == "CompositeKey";
    for (const auto& op : Operations()) {
      bool run = f.name == "Plain" || f.name == "AppSchema" || (core.count(op.name) > 0);
      if (key_feature && op.name == "AddColumn") run = false;
      auto extra = more.find(f.name);
      if (extra != more.end() && extra->second.count(op.name)) run = true;
      if (!run) continue;
      auto r = refusals.find(f.name + "/" + op.name);
      out.push_back({f, op, r == refusals.end() ? "" : r->second, f.name == "Plain" || op.name == "AlterType"});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cells, PgScenarioMatrix, ::testing::ValuesIn(Cells()),
                         [](const ::testing::TestParamInfo<Cell>& i) {
                           return i.param.f.name + "_" + i.param.op.name;
                         });

}  // namespace
}  // namespace sluice::testing
