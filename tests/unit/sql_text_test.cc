// The SQLite side of reading and rewriting user SQL: the tokenizer
// (src/db/sqlite/sqlite_lexer.h) table-driven against SQLite's rules, then
// checked against SQLite itself (the values and names SQLite gives the same
// tokens, its "unrecognized token" errors, sqlite3_complete), and the
// SqliteDialect's ColumnsRead / RenameColumns / RenameIndex compared with
// the columns SQLite's own authorizer sees being read, before and after a
// rename, and with the values the rewritten expressions compute.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/sql_text.h"
#include "db/sqlite/sqlite_dialect.h"
#include "db/sqlite/sqlite_lexer.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using db::sqlite::TokenKind;

const char* KindName(TokenKind k) {
  switch (k) {
    case TokenKind::kSpace: return "space";
    case TokenKind::kComment: return "comment";
    case TokenKind::kId: return "id";
    case TokenKind::kKeyword: return "keyword";
    case TokenKind::kQuotedId: return "quoted";
    case TokenKind::kString: return "string";
    case TokenKind::kBlob: return "blob";
    case TokenKind::kInteger: return "integer";
    case TokenKind::kFloat: return "float";
    case TokenKind::kVariable: return "variable";
    case TokenKind::kOperator: return "op";
    case TokenKind::kIllegal: return "illegal";
  }
  return "?";
}

// "kind:text" (or "kind:text=value" when the value differs) per token.
std::string Show(std::string_view sql) {
  std::string out;
  size_t joined = 0;
  for (const auto& t : db::sqlite::Tokenize(sql)) {
    EXPECT_EQ(t.pos, joined) << "tokens must cover the input: " << sql;
    joined += t.text.size();
    if (!out.empty()) out += " ";
    out += std::string(KindName(t.kind)) + ":" + std::string(t.text);
    if (t.value != t.text) out += "=" + t.value;
  }
  return out;
}

TEST(SqliteLexerTest, FollowsSqliteTokenizerRules) {
  struct Case {
    const char* sql;
    const char* tokens;
  };
  const Case cases[] = {
      // Identifiers: three quoting styles, each with its own escape.
      {R"("a""b")", R"(quoted:"a""b"=a"b)"},
      {"[a b]", "quoted:[a b]=a b"},
      {"[a]]", "quoted:[a]=a illegal:]"},
      {"`a``b`", "quoted:`a``b`=a`b"},
      {"\"open", "illegal:\"open"},
      // Strings: '' escapes a quote, a backslash is just a character.
      {"'it''s'", "string:'it''s'=it's"},
      {R"('a\' || 'b')", R"(string:'a\'=a\ space:  op:|| space:  string:'b'=b)"},
      {R"(E'a\'b')", R"(id:E string:'a\'=a\ id:b illegal:')"},
      // Blobs need an even number of hex digits.
      {"x'0A1f'", "blob:x'0A1f'"},
      {"X'0A1'", "illegal:X'0A1'"},
      {"x'zz'", "illegal:x'zz'"},
      {"xyz", "id:xyz"},
      // Numbers.
      {"0x1F", "integer:0x1F"},
      {"0x", "illegal:0x"},
      {"1.5e10 .5 1. 1e+5 7", "float:1.5e10 space:  float:.5 space:  float:1. space:  float:1e+5 space:  integer:7"},
      {"1e", "illegal:1e"},
      {"12abc", "illegal:12abc"},
      {"1.5.x", "float:1.5 op:. id:x"},
      // Parameters.
      {"? ?12 :name @a $a #a", "variable:? space:  variable:?12 space:  variable::name space:  variable:@a space:  "
                               "variable:$a space:  variable:#a"},
      {"$a::b $a(x y)", "variable:$a::b space:  illegal:$a(x space:  id:y op:)"},
      {": @ $", "illegal:: space:  illegal:@ space:  illegal:$"},
      // Comments.
      {"--c\nx", "comment:--c space:\n id:x"},
      {"a/* b */c", "id:a comment:/* b */ id:c"},
      {"/* open", "comment:/* open"},
      {"/*/", "comment:/*/"},
      {"a /", "id:a space:  op:/"},
      // Operators.
      {"a||b->c->>d", "id:a op:|| id:b op:-> id:c op:->> id:d"},
      {"<> != == <= >= << >> < > = !", "op:<> space:  op:!= space:  op:== space:  op:<= space:  op:>= space:  op:<< "
                                       "space:  op:>> space:  op:< space:  op:> space:  op:= space:  illegal:!"},
      {"(a,b);", "op:( id:a op:, id:b op:) op:;"},
      // Keywords are SQLite's; words with digits or '$' never are.
      {"SELECT select selectx key left _x x1 a$b", "keyword:SELECT space:  keyword:select space:  id:selectx space:  "
                                                   "keyword:key space:  keyword:left space:  id:_x space:  id:x1 "
                                                   "space:  id:a$b"},
      {"true null", "id:true space:  keyword:null"},
      {"\xc3\xbc" "ber", "id:\xc3\xbc" "ber"},
      {"\\ { ^", "illegal:\\ space:  illegal:{ space:  illegal:^"},
      {"\xEF\xBB\xBFx", "space:\xEF\xBB\xBF id:x"},
      {"\t\f\r\n x", "space:\t\f\r\n  id:x"},
      {"\vx", "illegal:\v id:x"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sql);
    EXPECT_EQ(Show(c.sql), c.tokens);
  }
  // SQLite stops reading at a NUL byte.
  EXPECT_EQ(Show(std::string_view("a\0b", 3)), "id:a");
}

// A private in-memory SQLite database for comparing with SQLite itself.
class Memory {
 public:
  Memory() { EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK); }
  ~Memory() { sqlite3_close(db_); }
  sqlite3* db() { return db_; }
  // Prepares `sql`; returns "" or SQLite's error message.
  std::string Prepare(const std::string& sql, sqlite3_stmt** st) {
    *st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, st, nullptr) != SQLITE_OK) return sqlite3_errmsg(db_);
    return "";
  }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  // The first column of the first row, as text ("NULL" for NULL).
  std::string Value(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string err = Prepare(sql, &st);
    EXPECT_EQ(err, "") << sql;
    std::string out = "<no row>";
    if (st && sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* v = sqlite3_column_text(st, 0);
      out = v ? std::string(reinterpret_cast<const char*>(v), sqlite3_column_bytes(st, 0)) : "NULL";
    }
    sqlite3_finalize(st);
    return out;
  }
  // The columns of table `t` SQLite's authorizer sees `SELECT expr FROM t`
  // read (lower case).
  std::set<std::string> Reads(const std::string& expr) {
    std::set<std::string> cols;
    sqlite3_set_authorizer(
        db_,
        [](void* arg, int action, const char* table, const char* column, const char*, const char*) {
          if (action == SQLITE_READ && table && column && std::string(table) == "t") {
            static_cast<std::set<std::string>*>(arg)->insert(sql::Lower(column));
          }
          return SQLITE_OK;
        },
        &cols);
    sqlite3_stmt* st = nullptr;
    std::string err = Prepare("SELECT " + expr + " FROM t", &st);
    EXPECT_EQ(err, "") << expr;
    sqlite3_finalize(st);
    sqlite3_set_authorizer(db_, nullptr, nullptr);
    return cols;
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteLexerTest, AgreesWithSqliteOnValuesNamesAndErrors) {
  Memory m;
  // Literals: SQLite computes the type and value the lexer reads.
  struct Literal {
    const char* sql;
    const char* type;
  };
  const Literal literals[] = {{"'it''s'", "text"}, {R"('a\')", "text"}, {"'--x'", "text"}, {"x'0a1F'", "blob"},
                              {"0x1F", "integer"}, {"42", "integer"},  {"1.5e3", "real"},   {".5", "real"},
                              {"1.", "real"}};
  for (const auto& l : literals) {
    SCOPED_TRACE(l.sql);
    auto toks = db::sqlite::Tokenize(l.sql);
    ASSERT_EQ(toks.size(), 1u);
    EXPECT_EQ(m.Value(std::string("SELECT typeof(") + l.sql + ")"), l.type);
    if (toks[0].kind == TokenKind::kString) {
      EXPECT_EQ(m.Value(std::string("SELECT ") + l.sql), toks[0].value);
    }
  }
  // Names: SQLite names a column what the lexer says the token names.
  for (const char* name : {R"("a""b")", "[a b]", "`a``b`", "[\"x\"]", "\"[x]\"", "key", "_x1", "a$b", "\"select\""}) {
    SCOPED_TRACE(name);
    auto toks = db::sqlite::Significant(name);
    ASSERT_EQ(toks.size(), 1u);
    m.Exec("DROP TABLE IF EXISTS n");
    m.Exec(std::string("CREATE TABLE n(") + name + " INT)");
    EXPECT_EQ(m.Value("SELECT name FROM pragma_table_info('n')"), toks[0].value);
  }
  // Illegal tokens are exactly the ones SQLite calls unrecognized.
  for (const char* bad : {"12abc", "X'0A1'", "$", "!", "\"open", "[open", "'open", "0x"}) {
    SCOPED_TRACE(bad);
    bool illegal = false;
    for (const auto& t : db::sqlite::Tokenize(bad)) illegal = illegal || t.kind == TokenKind::kIllegal;
    EXPECT_TRUE(illegal);
    sqlite3_stmt* st = nullptr;
    std::string err = m.Prepare(std::string("SELECT ") + bad, &st);
    sqlite3_finalize(st);
    EXPECT_NE(err.find("unrecognized token"), std::string::npos) << err;
  }
  // Statement boundaries: a statement is complete when its last
  // significant token is a ';' outside any string, name or comment.
  for (const char* text : {"SELECT 1;", "SELECT ';'", "SELECT 1; -- x", "SELECT \"a;\"", "SELECT [;]",
                           "SELECT 1 /* ; */", "SELECT 'a''; '", "SELECT `;`", "SELECT 1 -- ;", "SELECT x';'",
                           "SELECT 'a'';'", "SELECT 1 /* ; */;"}) {
    SCOPED_TRACE(text);
    auto toks = db::sqlite::Significant(text);
    bool ends = !toks.empty() && toks.back().kind == TokenKind::kOperator && toks.back().text == ";";
    EXPECT_EQ(ends, sqlite3_complete(text) != 0);
  }
}

class SqliteSqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_.Exec(R"(CREATE TABLE t(a, b, "end", key, replace, abs, length, "left", "select", "Mixed", x, filter, over,
                              window, "do", "if"))");
    m_.Exec(R"(INSERT INTO t VALUES (1, 2, 3, 4, 'r', -5, 6, 7, 8, 9, 'x', 10, 11, 12, 13, 14))");
  }
  // The table's columns `expr` reads by ColumnsRead, lower case.
  std::set<std::string> Reads(const std::string& expr) {
    auto r = d_.ColumnsRead(expr);
    EXPECT_TRUE(r.ok()) << expr << ": " << r.status().message();
    std::set<std::string> out;
    if (!r.ok()) return out;
    static const std::set<std::string> kColumns = {"a", "b", "end", "key", "replace", "abs", "length", "left",
                                                   "select", "mixed", "x", "filter", "over", "window", "do", "if"};
    for (const auto& c : *r) {
      if (kColumns.count(c)) out.insert(c);
    }
    return out;
  }
  db::SqliteDialect d_;
  Memory m_;
};

const char* const kExpressions[] = {
    R"("left" > 0 AND left > 1)",
    "length(length) + replace(replace, 'r', 'q') + abs(abs)",
    "like(a, 'x') OR a LIKE 'x' OR b NOT LIKE key OR a GLOB 'x*'",
    R"(CASE WHEN "end" > 0 THEN end ELSE key END)",
    "CASE end WHEN 1 THEN end END",
    "[key] + `key` + \"key\" + key",
    "t.a + main.t.b + \"t\".[end] + 't'.x",
    "CAST(a AS text) || b COLLATE nocase || CAST(key AS VARCHAR(10))",
    "x'00' || 'a''b' || a || 'key'",
    "current_timestamp || a",
    "a IS NOT DISTINCT FROM b OR a IS DISTINCT FROM key",
    "a ISNULL OR b NOTNULL OR a NOT NULL OR key IS NULL",
    "a BETWEEN b AND key",
    "a IN (b, key) OR a NOT IN (1, 2)",
    "-- a\n b /* key */",
    "replace + 1 - abs",
    "a -> '$.x' ->> key",
    "iif(a, b, end)",
    "\"select\" + [Mixed] + MIXED",
    "+a - -b + ~key",
    "coalesce(a, b, 'end')",
    "filter + over + window + do + if",
    "count(a) FILTER (WHERE b > 0) + over",
    "sum(a) OVER (PARTITION BY b ORDER BY key) + filter",
};

TEST_F(SqliteSqlTest, ColumnsReadAgreesWithSqlitesAuthorizer) {
  for (const char* expr : kExpressions) {
    SCOPED_TRACE(expr);
    EXPECT_EQ(Reads(expr), m_.Reads(expr));
  }
}

TEST_F(SqliteSqlTest, RenamedExpressionsComputeTheSameOverTheCopies) {
  // Each column gets a copy holding the same value: the renamed
  // expression over the copies must compute what the original computes.
  const std::map<std::string, std::string> copies = {
      {"a", "_sluice_new_a"}, {"end", "_sluice_new_end"}, {"key", "new key"}, {"replace", "from"},
      {"left", "_sluice_new_left"}, {"mixed", "_sluice_new_Mixed"}};
  for (const auto& [from, to] : copies) {
    m_.Exec("ALTER TABLE t ADD COLUMN " + sql::QuoteIdent(to));
    m_.Exec("UPDATE t SET " + sql::QuoteIdent(to) + " = " + sql::QuoteIdent(from));
  }
  for (const char* expr : kExpressions) {
    SCOPED_TRACE(expr);
    auto renamed = d_.RenameColumns(expr, db::SqlKind::kExpression, copies);
    ASSERT_TRUE(renamed.ok()) << renamed.status().message();
    EXPECT_EQ(m_.Value("SELECT " + *renamed + " FROM t"), m_.Value(std::string("SELECT ") + expr + " FROM t"))
        << *renamed;
    // Nothing renamed is read any more (SQLite's authorizer agrees).
    for (const auto& read : m_.Reads(*renamed)) EXPECT_FALSE(copies.count(read)) << read << " in " << *renamed;
  }
}

TEST_F(SqliteSqlTest, RenameColumnsExactText) {
  struct Case {
    const char* sql;
    db::SqlKind kind;
    const char* from;
    const char* to;
    const char* want;
  };
  const auto kExpr = db::SqlKind::kExpression;
  const auto kIndex = db::SqlKind::kIndexDefinition;
  const Case cases[] = {
      {R"("left" > 0 AND left <> 'left' AND replace('left', 'l', 'r') <> '')", kExpr, "left", "_sluice_new_left",
       R"(_sluice_new_left > 0 AND _sluice_new_left <> 'left' AND replace('left', 'l', 'r') <> '')"},
      {"replace > 0 AND replace(replace, 'l', 'r') <> ''", kExpr, "replace", "r2",
       "r2 > 0 AND replace(r2, 'l', 'r') <> ''"},
      {"CASE WHEN end > 0 THEN 1 END", kExpr, "end", "e2", "CASE WHEN e2 > 0 THEN 1 END"},
      {"[Key] + `KEY` /* key */ + 'key' + t.key", kExpr, "key", "k", "k + k /* key */ + 'key' + t.k"},
      {"a COLLATE a + CAST(b AS a)", kExpr, "a", "z", "z COLLATE a + CAST(b AS a)"},
      {"a > 0", kExpr, "a", "select", R"("select" > 0)"},
      {"a > 0", kExpr, "a", "Mixed Case", R"("Mixed Case" > 0)"},
      {"a > 0;", kExpr, "a", "b", "b > 0;"},
      // Index definitions: the index's and the table's names stay, a lone
      // string in the column list is a column (as SQLite reads it).
      {"CREATE INDEX a ON a (a, lower(a) COLLATE nocase DESC) WHERE a > 0", kIndex, "a", "_sluice_new_a",
       "CREATE INDEX a ON a (_sluice_new_a, lower(_sluice_new_a) COLLATE nocase DESC) WHERE _sluice_new_a > 0"},
      {"CREATE UNIQUE INDEX IF NOT EXISTS \"i\" ON [t] ('a' COLLATE nocase, `b`) WHERE b <> 'a'", kIndex, "a", "c",
       "CREATE UNIQUE INDEX IF NOT EXISTS \"i\" ON [t] (c COLLATE nocase, `b`) WHERE b <> 'a'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sql);
    auto r = d_.RenameColumn(c.sql, c.kind, c.from, c.to);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, c.want);
  }
}

TEST_F(SqliteSqlTest, IndexDefinitionsRenamedAsSqliteReadsThem) {
  // SQLite's own catalog: the renamed index is on the copy.
  m_.Exec("ALTER TABLE t ADD COLUMN c2");
  const std::string def = "CREATE INDEX a ON t ('a' COLLATE nocase, length(a)) WHERE a <> 'a'";
  auto r = d_.RenameColumn(def, db::SqlKind::kIndexDefinition, "a", "c2");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto named = d_.RenameIndex(*r, "a", "a_copy");
  ASSERT_TRUE(named.ok()) << named.status().message();
  EXPECT_EQ(*named, "CREATE INDEX a_copy ON t (c2 COLLATE nocase, length(c2)) WHERE c2 <> 'a'");
  m_.Exec(def);
  m_.Exec(*named);
  EXPECT_EQ(m_.Value("SELECT group_concat(coalesce(name, '<expr>'), ',') FROM pragma_index_xinfo('a') WHERE key"),
            "a,<expr>");
  EXPECT_EQ(m_.Value("SELECT group_concat(coalesce(name, '<expr>'), ',') FROM pragma_index_xinfo('a_copy') WHERE key"),
            "c2,<expr>");
}

TEST_F(SqliteSqlTest, RefusesWhatSqliteCannotParse) {
  struct Case {
    const char* sql;
    db::SqlKind kind;
    const char* why;
  };
  const Case cases[] = {
      {"a +", db::SqlKind::kExpression, "does not parse in SQLite: syntax error at end of input"},
      {"a b c", db::SqlKind::kExpression, "does not parse in SQLite: near \"b\": syntax error (at character 3)"},
      {"E'a\\'b'", db::SqlKind::kExpression, "does not parse in SQLite: unrecognized token"},
      {"1) FROM t WHERE (x", db::SqlKind::kExpression, "is not a single SQL expression"},
      {"a; DROP TABLE t", db::SqlKind::kExpression, "is not a single SQL expression"},
      {"a IN (SELECT a FROM t)", db::SqlKind::kExpression, "contains a subquery"},
      {"CREATE INDEX i ON t (a", db::SqlKind::kIndexDefinition, "does not parse in SQLite"},
      {"CREATE INDEX i ON t (a); DROP TABLE t", db::SqlKind::kIndexDefinition, "more than one SQL statement"},
      {"CREATE TABLE i (a)", db::SqlKind::kIndexDefinition, "is not a CREATE INDEX statement"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sql);
    auto r = d_.RenameColumn(c.sql, c.kind, "a", "b");
    ASSERT_FALSE(r.ok()) << *r;
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidPlan, c.why));
  }
  EXPECT_THAT(d_.ColumnsRead("a + * 2").status(), StatusIs(StatusCode::kInvalidPlan, "(at character 5)"));
  EXPECT_THAT(d_.RenameIndex("CREATE INDEX i ON t (a)", "j", "k").status(),
              StatusIs(StatusCode::kInvalidPlan, "does not create index 'j'"));
}

}  // namespace
}  // namespace sluice::testing
