// PostgresDialect::ColumnsRead / RenameColumns / RenameIndex through
// libpg_query: the columns an expression reads and the exact text of a
// rename, on inputs a text search gets wrong (no server needed; the
// integration tests in pg_sql_rewrite_test.cc run the results).
#include <gtest/gtest.h>

#include "db/postgres/postgres_dialect.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using Names = std::set<std::string>;

class PostgresSqlTest : public ::testing::Test {
 protected:
  db::PostgresDialect d_{"public", "sluice"};

  std::string Rename(const std::string& sql, db::SqlKind kind, std::map<std::string, std::string> renames) {
    auto r = d_.RenameColumns(sql, kind, renames);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().message();
    return r.ok() ? *r : "<error>";
  }
  std::string RenameExpr(const std::string& sql, const std::string& from, const std::string& to) {
    return Rename(sql, db::SqlKind::kExpression, {{from, to}});
  }
  std::string RenameIdx(const std::string& sql, const std::string& from, const std::string& to) {
    return Rename(sql, db::SqlKind::kIndexDefinition, {{from, to}});
  }
};

TEST_F(PostgresSqlTest, ColumnsReadNamesOnlyColumnReferences) {
  struct Case {
    const char* expr;
    Names reads;
  };
  const Case cases[] = {
      // Columns named like functions and keywords; the function is not read.
      {R"("left" > 0 AND left(name, 1) <> 'x')", {"left", "name"}},
      {"count + count(*) + sum(amount)", {"count", "amount"}},
      {R"("end" + "select")", {"end", "select"}},
      // String contents, whatever their quoting, are not names.
      {R"(E'a\'b || c' || col)", {"col"}},
      {R"(E'\\' || col || '\')", {"col"}},
      {"$$ it's a $$ || $tag$ other $$ x $tag$ || col", {"col"}},
      {"U&'\\0061' || b'101'::text || x'1F'::text || col", {"col"}},
      // Comments are not names either.
      {"a /* b */ + -- c\n d", {"a", "d"}},
      // Qualified references read the column; composite fields read the column.
      {"t.col + NEW.a - OLD.b + public.t.c", {"col", "a", "b", "c"}},
      {"(rec).field + (rec).other + ((NEW).pair).x", {"rec", "new"}},
      // Casts to a type spelt like a column read the column only.
      {"name::name = 'x' AND CAST(amount AS amount) > 0", {"name", "amount"}},
      {"timestamp '2020-01-01' < created AND interval '1 day' > age", {"created", "age"}},
      {"a IS DISTINCT FROM b AND c IS NOT DISTINCT FROM NULL", {"a", "b", "c"}},
      {"(a, b) = (1, 2)", {"a", "b"}},
      {"a[1] + b[2:3] + (ARRAY[x, y])[1] + (ROW(p, q)).f1", {"a", "b", "x", "y", "p", "q"}},
      // Case folding: unquoted names fold to lower case, quoted ones stay.
      {R"(Price + "Price" + PRICE)", {"price", "Price"}},
      // Unicode identifiers.
      {R"(U&"d\0061t" + U&"d!0061t2" UESCAPE '!')", {"dat", "dat2"}},
      {"current_timestamp > now() - interval '1 day'", {}},
      {"CASE WHEN x > 0 THEN y ELSE z END", {"x", "y", "z"}},
      // pgroll's `up: SELECT ...` form, and a trailing semicolon.
      {"SELECT CASE WHEN score >= 10 THEN 'high' END", {"score"}},
      {"  col + 1;  ", {"col"}},
      // A subquery's names are included (callers intersect with the table).
      {"x IN (SELECT y FROM other)", {"x", "y"}},
      {"row_to_json(t.*)", {"*"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expr);
    auto r = d_.ColumnsRead(c.expr);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(*r, c.reads);
  }
}

TEST_F(PostgresSqlTest, ColumnsReadRefusesWhatIsNotOneExpression) {
  struct Case {
    const char* expr;
    const char* why;
  };
  const Case cases[] = {
      {"x +", "does not parse in PostgreSQL: syntax error at end of input"},
      {"(x", "does not parse in PostgreSQL: syntax error at end of input"},
      {"E'a\\'", "does not parse in PostgreSQL: unterminated quoted string"},
      {"1) FROM t WHERE (x", "is not a single SQL expression"},
      {"a, b", "is not a single SQL expression"},
      {"a AS b", "does not parse in PostgreSQL: syntax error at or near \"AS\" (at character 3)"},
      {"x); DROP TABLE t; SELECT (1", "is not one SQL statement"},
      {"", "does not parse in PostgreSQL"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expr);
    auto r = d_.ColumnsRead(c.expr);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidPlan, c.why));
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidPlan, std::string("\"") + c.expr + "\""));
  }
  // The position is the user's, not the wrapper's.
  EXPECT_THAT(d_.ColumnsRead("a + + ) b").status(), StatusIs(StatusCode::kInvalidPlan, "(at character 7)"));
}

TEST_F(PostgresSqlTest, RenameColumnsInExpressionsKeepsEveryOtherByte) {
  struct Case {
    const char* expr;
    const char* from;
    const char* to;
    const char* want;
  };
  const Case cases[] = {
      {R"("left" > 0 AND left(name, 1) <> 'x')", "left", "_sluice_new_left",
       "_sluice_new_left > 0 AND left(name, 1) <> 'x'"},
      {R"(E'a\'b col' <> col AND col > 0)", "col", "c2", R"(E'a\'b col' <> c2 AND c2 > 0)"},
      {"$$col$$ = col AND $x$ col $x$ <> col", "col", "c2", "$$col$$ = c2 AND $x$ col $x$ <> c2"},
      {"t.col + NEW.col + t . /* col */ col", "col", "c2", "t.c2 + NEW.c2 + t . /* col */ c2"},
      {"(col).col > 0 AND (rec).col > 0", "col", "c2", "(c2).col > 0 AND (rec).col > 0"},
      {"col::col > 0 AND CAST(col AS col) IS NOT NULL", "col", "c2", "c2::col > 0 AND CAST(c2 AS col) IS NOT NULL"},
      {"count > 0 AND count(count) > 1", "count", "Count", R"("Count" > 0 AND count("Count") > 1)"},
      {R"(U&"d!0061t" UESCAPE '!' > 0 AND "dat" < 9)", "dat", "x", "x > 0 AND x < 9"},
      {"(price > (0)::numeric)", "price", "_sluice_new_price", "(_sluice_new_price > (0)::numeric)"},
      {"Price > 0 AND \"Price\" > 1", "price", "p", "p > 0 AND \"Price\" > 1"},
      {"a /* a */ + -- a\n a;", "a", "b", "b /* a */ + -- a\n b;"},
      // The new name is quoted only where PostgreSQL needs it.
      {"c > 0", "c", "name", "name > 0"},        // unreserved keyword
      {"c > 0", "c", "left", R"("left" > 0)"},   // type/function name keyword
      {"c > 0", "c", "int", R"("int" > 0)"},     // column name keyword
      {"c > 0", "c", "select", R"("select" > 0)"},
      {"c > 0", "c", "Mixed", R"("Mixed" > 0)"},
      {"c > 0", "c", "a\"b c", R"("a""b c" > 0)"},
      {"c > 0", "c", "_x1", "_x1 > 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expr);
    EXPECT_EQ(RenameExpr(c.expr, c.from, c.to), c.want);
  }
  // All renames happen at once: a swap is a swap.
  EXPECT_EQ(Rename("a IS DISTINCT FROM b", db::SqlKind::kExpression, {{"a", "b"}, {"b", "a"}}),
            "b IS DISTINCT FROM a");
}

TEST_F(PostgresSqlTest, RenameColumnsRefusesBadInputAndSubqueries) {
  auto bad = d_.RenameColumn("a > ", db::SqlKind::kExpression, "a", "b");
  EXPECT_THAT(bad.status(), StatusIs(StatusCode::kInvalidPlan, "expression \"a > \" does not parse in PostgreSQL"));
  auto sub = d_.RenameColumn("a IN (SELECT a FROM other)", db::SqlKind::kExpression, "a", "b");
  EXPECT_THAT(sub.status(), StatusIs(StatusCode::kInvalidPlan, "contains a subquery"));
  auto two = d_.RenameColumn("CREATE INDEX i ON t (a); DROP TABLE t", db::SqlKind::kIndexDefinition, "a", "b");
  EXPECT_THAT(two.status(), StatusIs(StatusCode::kInvalidPlan, "is not one SQL statement"));
  auto notindex = d_.RenameColumn("CREATE TABLE t (a int)", db::SqlKind::kIndexDefinition, "a", "b");
  EXPECT_THAT(notindex.status(), StatusIs(StatusCode::kInvalidPlan, "is not a CREATE INDEX statement"));
}

TEST_F(PostgresSqlTest, RenameColumnsInIndexDefinitions) {
  struct Case {
    const char* def;
    const char* from;
    const char* to;
    const char* want;
  };
  const Case cases[] = {
      {"CREATE INDEX idx ON public.t USING btree (col)", "col", "c2", "CREATE INDEX idx ON public.t USING btree (c2)"},
      // The index and the table may be named like the column.
      {"CREATE INDEX col ON public.col USING btree (col) WHERE (col > 0)", "col", "c2",
       "CREATE INDEX col ON public.col USING btree (c2) WHERE (c2 > 0)"},
      {"CREATE UNIQUE INDEX i ON ONLY public.t USING btree (lower(col), col DESC NULLS LAST, other) INCLUDE (x, col) "
       "WHERE (note <> E'a\\'b col'::text)",
       "col", "Col",
       "CREATE UNIQUE INDEX i ON ONLY public.t USING btree (lower(\"Col\"), \"Col\" DESC NULLS LAST, other) INCLUDE "
       "(x, \"Col\") WHERE (note <> E'a\\'b col'::text)"},
      {"CREATE INDEX i ON public.t USING btree (col COLLATE \"C\" text_pattern_ops, (col || 'x'))", "col", "c2",
       "CREATE INDEX i ON public.t USING btree (c2 COLLATE \"C\" text_pattern_ops, (c2 || 'x'))"},
      {"CREATE INDEX t_left_idx ON public.t USING btree (\"left\") WHERE (left(name, 1) <> 'x'::text)", "left",
       "_sluice_new_left",
       "CREATE INDEX t_left_idx ON public.t USING btree (_sluice_new_left) WHERE (left(name, 1) <> 'x'::text)"},
      {"CREATE INDEX i ON public.t USING gist (U&\"d!0061t\" UESCAPE '!')", "dat", "d2",
       "CREATE INDEX i ON public.t USING gist (d2)"},
      {"CREATE INDEX i ON public.t USING btree (a) WITH (fillfactor='70') WHERE (a IS NOT NULL)", "a", "b",
       "CREATE INDEX i ON public.t USING btree (b) WITH (fillfactor='70') WHERE (b IS NOT NULL)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.def);
    EXPECT_EQ(RenameIdx(c.def, c.from, c.to), c.want);
  }
}

TEST_F(PostgresSqlTest, RenameIndexRenamesOnlyTheIndexName) {
  auto r = d_.RenameIndex("CREATE UNIQUE INDEX \"Idx\" ON public.\"Idx\" USING btree (\"Idx\")", "Idx",
                          "_sluice_new_Idx");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "CREATE UNIQUE INDEX \"_sluice_new_Idx\" ON public.\"Idx\" USING btree (\"Idx\")");
  r = d_.RenameIndex("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY public.t (a)", "i", "j");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "CREATE INDEX CONCURRENTLY IF NOT EXISTS j ON ONLY public.t (a)");
  // An index named like a keyword pg_get_indexdef prints bare.
  r = d_.RenameIndex("CREATE INDEX name ON public.t USING btree (a)", "name", "left");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "CREATE INDEX \"left\" ON public.t USING btree (a)");
  EXPECT_THAT(d_.RenameIndex("CREATE INDEX i ON t (a)", "other", "x").status(),
              StatusIs(StatusCode::kInvalidPlan, "does not create index 'other'"));
  EXPECT_THAT(d_.RenameIndex("CREATE INDEX ON t (a)", "i", "x").status(),
              StatusIs(StatusCode::kInvalidPlan, "does not create index 'i'"));
}

}  // namespace
}  // namespace sluice::testing
