// The scenario matrix of issue 8 on SQLite, for the table features SQLite
// has: user triggers, foreign keys as parent and child, dependent views,
// text and composite keys, crossed with the operations. Each cell is either
// refused at `lint --db` AND at `start` with the file's schema unchanged
// (and expects it), or runs start -> rollback, start -> backfill ->
// rollback, start -> backfill -> switch -> rollback (each back to the schema
// before start with the rows as the old version left them) and start ->
// backfill -> verify -> switch -> verify -> complete, with writers through
// the old version, the new version and the live alias, asserting every
// row's values in both shapes against a model of the application's writes
// and one audit row per audited application write. Like
// pg_scenario_matrix_test.cc, which has the PostgreSQL-only features.
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <set>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kRows = 30;

struct Feature {
  std::string name;
  std::string setup;  // creates items (no rows), after `cats`
  std::vector<std::string> key_cols;
  std::function<std::vector<std::string>(int)> key;
  std::string ordinal;  // SQL: a row's n
  bool audited = false;  // AFTER INSERT / AFTER DELETE audit triggers
};

std::vector<std::string> IntKey(int n) { return {std::to_string(n)}; }

constexpr const char* kPlain = "CREATE TABLE items (id INTEGER PRIMARY KEY, qty TEXT NOT NULL, note TEXT, cat INTEGER);";

std::vector<Feature> Features() {
  std::vector<Feature> fs;
  fs.push_back({"Plain", kPlain, {"id"}, IntKey, "id"});
  {
    // SQLite cannot keep a table's triggers from firing for sluice's own
    // writes, so the audit watches inserts and deletes (which sluice never
    // makes on the application's tables); sqlite_preflight_test.cc covers
    // the refused update triggers.
    Feature f{"UserTriggers",
              std::string(kPlain) +
                  "CREATE TABLE audit (seq INTEGER PRIMARY KEY, item INTEGER, op TEXT);"
                  "CREATE TRIGGER items_ins AFTER INSERT ON items BEGIN INSERT INTO audit (item, op) VALUES (NEW.id, "
                  "'I'); END;"
                  "CREATE TRIGGER items_del AFTER DELETE ON items BEGIN INSERT INTO audit (item, op) VALUES (OLD.id, "
                  "'D'); END;",
              {"id"}, IntKey, "id"};
    f.audited = true;
    fs.push_back(f);
  }
  fs.push_back({"ForeignKeys",
                "CREATE TABLE owners (id INTEGER PRIMARY KEY); INSERT INTO owners VALUES (0), (1), (2);"
                "CREATE TABLE items (id INTEGER PRIMARY KEY, qty TEXT NOT NULL, note TEXT, cat INTEGER, "
                "owner INTEGER DEFAULT 1 REFERENCES owners (id));"
                "CREATE TABLE lines (id INTEGER PRIMARY KEY, item INTEGER NOT NULL REFERENCES items (id) ON DELETE "
                "CASCADE);",
                {"id"}, IntKey, "id"});
  fs.push_back({"DependentViews",
                std::string(kPlain) + "CREATE VIEW items_v AS SELECT id, qty, note, cat FROM items;", {"id"}, IntKey,
                "id"});
  fs.push_back({"TextKey", "CREATE TABLE items (id TEXT PRIMARY KEY, qty TEXT NOT NULL, note TEXT, cat INTEGER);",
                {"id"}, [](int n) { return std::vector<std::string>{"'k" + std::to_string(n) + "'"}; },
                "CAST(substr(id, 2) AS INTEGER)"});
  fs.push_back({"CompositeKey",
                "CREATE TABLE items (shop INTEGER NOT NULL, id INTEGER NOT NULL, qty TEXT NOT NULL, note TEXT, cat "
                "INTEGER, PRIMARY KEY (shop, id));",
                {"shop", "id"},
                [](int n) { return std::vector<std::string>{std::to_string(n % 4), std::to_string(n)}; }, "id"});
  return fs;
}

enum class Note { kSame, kRenamed, kDropped };

struct Operation {
  std::string name;
  std::string plan;
  Note note = Note::kSame;
  bool extra = false;
};

std::vector<Operation> Operations() {
  return {
      {"AddColumn",
       "  - add_column:\n      table: items\n      column:\n        name: extra\n        type: TEXT\n"
       "        nullable: true\n      up: \"'x' || qty\"\n",
       Note::kSame, true},
      {"AlterType",
       "  - alter_column:\n      table: items\n      column: qty\n      type: INTEGER\n"
       "      up: CAST(qty AS INTEGER)\n      down: CAST(qty AS TEXT)\n"},
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
       "        constraint: \"qty NOT GLOB '*[^0-9]*'\"\n      up: qty\n      down: qty\n"},
      {"AddForeignKey",
       "  - alter_column:\n      table: items\n      column: cat\n      references:\n        name: items_cat_fk\n"
       "        table: cats\n        column: id\n      up: cat\n      down: cat\n"},
      {"SqlCreatesTable",
       "  - sql:\n      up: CREATE TABLE side (id INTEGER PRIMARY KEY, v TEXT)\n      down: DROP TABLE side\n"},
  };
}

// Cells refused at lint --db and start, with a substring of the reason.
// SQLite's DROP COLUMN fails on a view that names the column, and sluice
// cannot recreate views there: a view reading a column complete drops or
// replaces is refused up front.
std::map<std::string, std::string> Refusals() {
  std::map<std::string, std::string> r;
  for (const char* op : {"AlterType", "DropColumn", "SetNotNull", "AddUnique", "AddCheck", "AddForeignKey"}) {
    r[std::string("DependentViews/") + op] = "view items_v reads column";
  }
  return r;
}

struct Row {
  int qty = 0;
  std::string note;
  int cat = 1;
};

struct Cell {
  Feature f;
  Operation op;
  std::string refusal;
};

// gtest names a failing cell by this.
void PrintTo(const Cell& c, std::ostream* os) { *os << c.f.name << "/" << c.op.name; }

std::string Q(const std::string& s) { return "'" + s + "'"; }

class SqliteScenarioMatrix : public ::testing::TestWithParam<Cell> {
 protected:
  void SetUp() override {
    const Cell& c = GetParam();
    // The file lives in memory-backed /dev/shm when there is one: the
    // matrix tests sluice, not the disk's fsync (a real file all the same).
    char shm[] = "/dev/shm/sluice_mx_XXXXXX";
    if (mkdtemp(shm)) shm_ = shm;
    m_ = OpenSqlite((shm_.empty() ? dir_.path() : shm_) + "/mx.sqlite");
    ASSERT_NE(m_, nullptr);
    std::string setup = "PRAGMA foreign_keys = ON; CREATE TABLE cats (id INTEGER PRIMARY KEY); INSERT INTO cats "
                        "VALUES (1), (2), (3);" + c.f.setup;
    for (int n = 1; n <= kRows; ++n) {
      std::string cols, vals;
      auto k = c.f.key(n);
      for (size_t i = 0; i < k.size(); ++i) {
        cols += c.f.key_cols[i] + ", ";
        vals += k[i] + ", ";
      }
      setup += "INSERT INTO items (" + cols + "qty, note, cat) VALUES (" + vals + "'" + std::to_string(n * 10) +
               "', 'n" + std::to_string(n) + "', " + std::to_string(1 + n % 3) + ");";
      rows_[n] = Row{n * 10, "n" + std::to_string(n), 1 + n % 3};
    }
    if (c.f.audited) setup += "DELETE FROM audit;";
    auto s = m_->Connect("");
    ASSERT_TRUE(s.ok()) << s.status().message();
    SLUICE_ASSERT_OK((*s)->Exec(setup));
    plan_ = dir_.Write("mx.yaml", "operations:\n" + c.op.plan);
  }

  void TearDown() override {
    m_.reset();
    std::error_code ec;
    if (!shm_.empty()) std::filesystem::remove_all(shm_, ec);
  }

  const Feature& F() const { return GetParam().f; }
  const Operation& Op() const { return GetParam().op; }

  std::string Version(const std::string& via) const { return via == "old" ? "" : via == "new" ? "mx" : "live"; }
  bool NewShape(const std::string& via, bool completed) const { return completed || via != "old"; }

  std::string Schema() {
    return QueryValue(*m_, "SELECT group_concat(type || ':' || name || ':' || coalesce(sql, ''), char(10)) FROM "
                           "(SELECT * FROM sqlite_master WHERE tbl_name NOT LIKE '\\_sluice\\_%' ESCAPE '\\' ORDER "
                           "BY type, name)");
  }

  std::string KeyWhere(int n) const {
    auto k = F().key(n);
    std::string w;
    for (size_t i = 0; i < k.size(); ++i) w += (i ? " AND " : "") + F().key_cols[i] + " = " + k[i];
    return w;
  }

  void Exec(const std::string& via, const std::string& sql) {
    auto s = m_->Connect(Version(via));
    ASSERT_TRUE(s.ok()) << "through " << via << ": " << s.status().message();
    Status st = (*s)->Exec(sql);
    EXPECT_TRUE(st.ok()) << "through " << via << ": " << sql << "\n" << st.message();
  }

  void Write(const std::string& via, int round, bool completed = false) {
    const bool shape_new = NewShape(via, completed);
    const std::string note_col = shape_new && Op().note == Note::kRenamed ? "remark" : "note";
    const bool has_note = !(shape_new && Op().note == Note::kDropped);
    const int n = 1000 + round;
    Row r{n % 97, has_note ? "w" + std::to_string(n) : "dropped", 1 + n % 3};
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
    Exec(via, "INSERT INTO items (" + cols + ") VALUES (" + vals + ")");
    rows_[n] = r;
    ++audit_;
    const int u = round;
    Row& ur = rows_.at(u);
    ur.qty += 1;
    std::string set = "qty = " + Q(std::to_string(ur.qty));
    if (has_note) {
      ur.note = "u" + std::to_string(round);
      set += ", " + note_col + " = " + Q(ur.note);
    } else {
      ur.note = "dropped";  // drop_column's down, on every new-version write
    }
    if (shape_new && Op().extra) set += ", extra = " + Q("x" + std::to_string(ur.qty));
    Exec(via, "UPDATE items SET " + set + " WHERE " + KeyWhere(u));
    const int d = kRows + 1 - round;
    Exec(via, "DELETE FROM items WHERE " + KeyWhere(d));
    rows_.erase(d);
    ++audit_;
  }

  std::string Rows(const std::string& via, bool completed = false) {
    const bool shape_new = NewShape(via, completed);
    std::string note = "coalesce(note, '<null>')";
    if (shape_new && Op().note == Note::kRenamed) note = "coalesce(remark, '<null>')";
    if (shape_new && Op().note == Note::kDropped) note = "'dropped'";
    std::string extra;
    if (shape_new && Op().extra) extra = " || ':' || CASE WHEN extra IS 'x' || qty THEN 'true' ELSE 'false' END";
    return QueryValue(*m_,
                      "SELECT group_concat(r, ',') FROM (SELECT " + F().ordinal + " || ':' || CAST(qty AS TEXT) || "
                      "':' || " + note + " || ':' || cat" + extra + " AS r FROM items ORDER BY " + F().ordinal + ")",
                      Version(via));
  }
  std::string Expected(const std::string& via, bool completed = false) const {
    const bool shape_new = NewShape(via, completed);
    std::string out;
    for (const auto& [n, r] : rows_) {
      std::string note = shape_new && Op().note == Note::kDropped ? "dropped" : r.note;
      out += (out.empty() ? "" : ",") + std::to_string(n) + ":" + std::to_string(r.qty) + ":" + note + ":" +
             std::to_string(r.cat) + (shape_new && Op().extra ? ":true" : "");
    }
    return out;
  }
  void Check(const std::string& when, const std::vector<std::string>& vias, bool completed = false) {
    for (const auto& via : vias) EXPECT_EQ(Rows(via, completed), Expected(via, completed)) << when << ", " << via;
    if (F().audited) {
      EXPECT_EQ(QueryValue(*m_, "SELECT count(*) FROM audit"), std::to_string(audit_))
          << when << ": one audit row per application insert or delete";
    }
    if (F().name == "ForeignKeys") {
      EXPECT_EQ(QueryValue(*m_, "SELECT count(*) FROM items WHERE owner = 1"), std::to_string(rows_.size())) << when;
    }
  }
  void Backfill() {
    auto bf = m_->Backfill("mx", {});
    ASSERT_TRUE(bf.ok()) << bf.status().message();
  }
  void ExpectRolledBack(const std::string& before, const std::string& when) {
    EXPECT_EQ(Schema(), before) << "schema after rollback " << when;
    Check("after rollback " + when, {"old"});
  }

  TempDir dir_;
  std::string shm_;
  std::string plan_;
  std::unique_ptr<Migrator> m_;
  std::map<int, Row> rows_;
  int audit_ = 0;
};

TEST_P(SqliteScenarioMatrix, CompletesAndRollsBackFromEveryPhaseOrIsRefusedUpFront) {
  const Cell& c = GetParam();
  const std::string before = Schema();
  auto lint = m_->Lint(plan_);
  ASSERT_TRUE(lint.ok()) << lint.status().message();
  std::string lint_errors;
  for (const auto& e : lint->errors) lint_errors += e + "\n";
  if (!c.refusal.empty()) {
    EXPECT_FALSE(lint->ok);
    EXPECT_THAT(lint_errors, HasSubstr(c.refusal));
    Status s = m_->Start(plan_);
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(s.message(), HasSubstr(c.refusal));
    EXPECT_EQ(Schema(), before);
    Check("after the refused start", {"old"});
    return;
  }
  ASSERT_TRUE(lint->ok) << lint_errors;
  int round = 1;

  SLUICE_ASSERT_OK(m_->Start(plan_));
  Write("old", round++);
  SLUICE_ASSERT_OK(m_->Rollback("mx"));
  ExpectRolledBack(before, "after start");

  SLUICE_ASSERT_OK(m_->Start(plan_));
  Write("old", round++);
  ASSERT_NO_FATAL_FAILURE(Backfill());
  Write("new", round++);
  Check("backfilled", {"old", "new"});
  SLUICE_ASSERT_OK(m_->Rollback("mx"));
  ExpectRolledBack(before, "after backfill");

  SLUICE_ASSERT_OK(m_->Start(plan_));
  ASSERT_NO_FATAL_FAILURE(Backfill());
  Write("new", round++);
  ASSERT_NO_FATAL_FAILURE(AssertVerified(*m_, "mx"));
  SLUICE_ASSERT_OK(m_->Switch("mx", false));
  Write("live", round++);
  Write("old", round++);
  Check("switched", {"old", "new", "live"});
  SLUICE_ASSERT_OK(m_->Rollback("mx"));
  ExpectRolledBack(before, "after switch");

  SLUICE_ASSERT_OK(m_->Start(plan_));
  Write("old", round++);
  ASSERT_NO_FATAL_FAILURE(Backfill());
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
  Check("written after complete", {"old"}, true);
  EXPECT_EQ(QueryValue(*m_, "SELECT count(*) FROM pragma_table_info('items') WHERE name LIKE '\\_sluice%' ESCAPE "
                            "'\\'"),
            "0");
  EXPECT_EQ(QueryValue(*m_, "SELECT count(*) FROM pragma_foreign_key_check"), "0");
}

std::vector<Cell> Cells() {
  // Skipped: SqlCreatesTable runs on Plain only (it does not touch items);
  // TextKey and CompositeKey run the operations that copy or rename a
  // column (the key matters to the dual write and the backfill only).
  const auto refusals = Refusals();
  const std::set<std::string> key_ops = {"AlterType", "RenameColumn", "DropColumn", "AddUnique"};
  std::vector<Cell> out;
  for (const auto& f : Features()) {
    for (const auto& op : Operations()) {
      if (op.name == "SqlCreatesTable" && f.name != "Plain") continue;
      if ((f.name == "TextKey" || f.name == "CompositeKey") && !key_ops.count(op.name)) continue;
      auto r = refusals.find(f.name + "/" + op.name);
      out.push_back({f, op, r == refusals.end() ? "" : r->second});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cells, SqliteScenarioMatrix, ::testing::ValuesIn(Cells()),
                         [](const ::testing::TestParamInfo<Cell>& i) {
                           return i.param.f.name + "_" + i.param.op.name;
                         });

}  // namespace
}  // namespace sluice::testing
