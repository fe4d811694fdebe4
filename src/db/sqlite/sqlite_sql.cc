// User SQL read and rewritten the way SQLite reads it: which columns an
// expression reads, and a column's references moved onto a new name in a
// CHECK expression or a copied index definition (sqlite_schema's text).
//
// The tokens are SQLite's (sqlite_lexer.h). Which words are column
// references follows SQLite's expression grammar (src/parse.y):
//   * a name followed by "(" is a function (or CAST/RAISE);
//   * in a.b and a.b.c only the last name is the column;
//   * the name after COLLATE is a collation, the words of CAST(x AS type) a
//     type, the word after AS an alias, after IN a table;
//   * keywords never name a column, except those SQLite lets fall back to
//     a name ("%fallback ID" in parse.y, and LEFT, RIGHT, ... INDEXED), and
//     those only where an operand is expected: in `CASE WHEN end > 0 THEN 1
//     END` the first END is a column and the second closes the CASE;
//   * CURRENT_TIME, CURRENT_DATE, CURRENT_TIMESTAMP are values;
//   * in an index's column list, a lone 'string' names a column (SQLite's
//     CREATE INDEX takes it so).
// SQLite's own parser is the judge of syntax: the text (and every rewrite)
// is prepared on a private in-memory database, where only name resolution
// may fail.
#include <sqlite3.h>

#include <set>

#include "common/sql_text.h"
#include "db/sqlite/sqlite_dialect.h"
#include "db/sqlite/sqlite_lexer.h"

namespace sluice::db {
namespace {

using sqlite::Token;
using sqlite::TokenKind;

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Keywords SQLite accepts as a name where its grammar expects one.
bool CanBeName(const std::string& upper) {
  static const std::set<std::string> kNames = {
      // %fallback ID in parse.y (SQLite 3.40)
      "ABORT", "ACTION", "AFTER", "ANALYZE", "ASC", "ATTACH", "BEFORE", "BEGIN", "BY", "CASCADE", "CAST", "COLUMN",
      "CONFLICT", "DATABASE", "DEFERRED", "DESC", "DETACH", "DO", "EACH", "END", "EXCLUSIVE", "EXPLAIN", "FAIL",
      "FOR", "IGNORE", "IMMEDIATE", "INITIALLY", "INSTEAD", "LIKE", "GLOB", "REGEXP", "MATCH", "NO", "PLAN",
      "QUERY", "KEY", "OF", "OFFSET", "PRAGMA", "RAISE", "RECURSIVE", "RELEASE", "REPLACE", "RESTRICT", "ROW",
      "ROWS", "ROLLBACK", "SAVEPOINT", "TEMP", "TEMPORARY", "TRIGGER", "VACUUM", "VIEW", "VIRTUAL", "WITH",
      "WITHOUT", "NULLS", "FIRST", "LAST", "CURRENT", "FOLLOWING", "PARTITION", "PRECEDING", "RANGE", "UNBOUNDED",
      "EXCLUDE", "GROUPS", "OTHERS", "TIES", "GENERATED", "ALWAYS", "MATERIALIZED", "REINDEX", "RENAME", "IF",
      // idj: JOIN_KW and INDEXED
      "CROSS", "FULL", "INNER", "LEFT", "NATURAL", "OUTER", "RIGHT", "INDEXED",
      // names unless they start a window clause (analyzeWindowKeyword & co)
      "WINDOW", "OVER", "FILTER"};
  return kNames.count(upper) > 0;
}

bool IsCurrentTime(const std::string& upper) {
  return upper == "CURRENT_TIME" || upper == "CURRENT_DATE" || upper == "CURRENT_TIMESTAMP";
}

bool NameLike(const Token& t) {
  return t.kind == TokenKind::kId || t.kind == TokenKind::kQuotedId || t.kind == TokenKind::kString ||
         (t.kind == TokenKind::kKeyword && CanBeName(Upper(t.text)));
}

// A column reference: the token that names the column.
struct Ref {
  size_t token;
  std::string name;
};

struct Refs {
  std::vector<Ref> refs;
  bool subquery = false;
};

bool IsOp(const std::vector<Token>& toks, size_t k, size_t end, std::string_view op) {
  return k < end && toks[k].kind == TokenKind::kOperator && toks[k].text == op;
}
bool IsWord(const std::vector<Token>& toks, size_t k, size_t end, std::string_view word) {
  return k < end && toks[k].kind == TokenKind::kKeyword && Upper(toks[k].text) == word;
}

// The index of the ")" that closes the "(" at toks[open] (or `end`).
size_t Closing(const std::vector<Token>& toks, size_t open, size_t end) {
  int depth = 0;
  for (size_t k = open; k < end; ++k) {
    if (IsOp(toks, k, end, "(")) ++depth;
    if (IsOp(toks, k, end, ")") && --depth == 0) return k;
  }
  return end;
}

// Column references among the significant tokens toks[begin, end).
// `sort_list`: the tokens are an index's column list, parentheses included.
void FindRefs(const std::vector<Token>& toks, size_t begin, size_t end, bool sort_list, Refs* out) {
  bool expect = true;  // an operand may start here
  int depth = 0;
  int open_cases = 0;
  std::vector<int> casts;  // paren depth inside each open CAST(
  for (size_t i = begin; i < end; ++i) {
    const Token& t = toks[i];
    if (t.kind == TokenKind::kOperator) {
      if (t.text == "(") {
        ++depth;
        expect = true;
      } else if (t.text == ")") {
        if (!casts.empty() && casts.back() == depth) casts.pop_back();
        --depth;
        expect = false;
      } else {
        expect = true;  // "," and every operator take an operand next
      }
      continue;
    }
    bool word = t.kind == TokenKind::kId || t.kind == TokenKind::kQuotedId || t.kind == TokenKind::kKeyword;
    if (!word) {
      if (t.kind == TokenKind::kString && expect) {
        if (IsOp(toks, i + 1, end, ".")) {
          word = true;  // 'tbl'.col: a string as a name
        } else if (sort_list && depth == 1 && i > begin &&
                   (IsOp(toks, i - 1, end, "(") || IsOp(toks, i - 1, end, ",")) &&
                   (IsOp(toks, i + 1, end, ",") || IsOp(toks, i + 1, end, ")") || IsWord(toks, i + 1, end, "COLLATE") ||
                    IsWord(toks, i + 1, end, "ASC") || IsWord(toks, i + 1, end, "DESC"))) {
          out->refs.push_back({i, t.value});
        }
      }
      if (!word) {
        expect = false;
        continue;
      }
    }
    const std::string up = t.kind == TokenKind::kKeyword ? Upper(t.text) : "";
    if (expect) {
      if (t.kind == TokenKind::kKeyword) {
        if (IsCurrentTime(up)) {
          expect = false;
          continue;
        }
        if (up == "CAST" && IsOp(toks, i + 1, end, "(")) {
          casts.push_back(depth + 1);
          continue;
        }
        if (up == "RAISE" && IsOp(toks, i + 1, end, "(")) {
          i = Closing(toks, i + 1, end);  // RAISE(ABORT, 'message')
          expect = false;
          continue;
        }
        // ORDER BY, GROUP BY, PARTITION BY: keywords where SQLite expects
        // one, names elsewhere.
        bool by = up == "BY" && i > begin &&
                  (IsWord(toks, i - 1, end, "ORDER") || IsWord(toks, i - 1, end, "GROUP") ||
                   IsWord(toks, i - 1, end, "PARTITION"));
        if (by || (up == "PARTITION" && IsWord(toks, i + 1, end, "BY"))) continue;
        if (!CanBeName(up)) {
          if (up == "SELECT") out->subquery = true;
          if (up == "CASE") ++open_cases;
          if (up == "NULL") expect = false;
          continue;  // NOT, EXISTS, CASE, DISTINCT ... an operand still follows
        }
      }
      if (IsOp(toks, i + 1, end, "(")) continue;  // a function's name
      size_t last = i;
      while (IsOp(toks, last + 1, end, ".") && last + 2 < end && NameLike(toks[last + 2])) last += 2;
      out->refs.push_back({last, toks[last].value});
      i = last;
      expect = false;
      continue;
    }
    // After an operand: an operator word, or an alias.
    if (t.kind != TokenKind::kKeyword) {
      expect = false;
      continue;
    }
    if (up == "COLLATE") {
      ++i;  // the collation's name
      expect = false;
    } else if (up == "AS") {
      if (!casts.empty() && casts.back() == depth) {
        // CAST(x AS type name(1, 2)): up to the CAST's ")".
        int d = 0;
        while (i + 1 < end && !(d == 0 && IsOp(toks, i + 1, end, ")"))) {
          ++i;
          if (IsOp(toks, i, end, "(")) ++d;
          if (IsOp(toks, i, end, ")")) --d;
        }
      } else {
        ++i;  // an alias
      }
      expect = false;
    } else if (up == "END" && open_cases > 0) {
      --open_cases;
      expect = false;
    } else if (up == "NOT" || up == "NULL" || up == "ISNULL" || up == "NOTNULL" || up == "ASC" || up == "DESC" ||
               up == "NULLS" || up == "FIRST" || up == "LAST") {
      expect = false;  // NOT here is NOT NULL / NOT LIKE / NOT IN / NOT BETWEEN
    } else if (up == "IN" && i + 1 < end && NameLike(toks[i + 1]) && !IsOp(toks, i + 2, end, "(")) {
      ++i;  // x IN tbl, x IN schema.tbl
      if (IsOp(toks, i + 1, end, ".") && i + 2 < end) i += 2;
      expect = false;
    } else if (up == "OVER" && i + 1 < end && NameLike(toks[i + 1])) {
      ++i;  // OVER window_name
      expect = false;
    } else {
      expect = true;  // AND, OR, IS, IN, BETWEEN, LIKE, WHEN, THEN, ELSE, ESCAPE, FILTER ...
    }
  }
}

// SQLite's parser as the judge of syntax: prepares `stmt` on a private
// in-memory database. Failing to resolve a name (no such table, column,
// function, collation) means it parsed.
Status SyntaxCheck(const std::string& stmt, long shift, std::string_view user, const char* what) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return Internal("cannot open an in-memory SQLite database to check SQL syntax");
  }
  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db, stmt.c_str(), static_cast<int>(stmt.size()), &st, &tail);
  std::string err = rc == SQLITE_OK ? "" : sqlite3_errmsg(db);
  int offset = rc == SQLITE_OK ? -1 : sqlite3_error_offset(db);
  std::string rest = tail ? std::string(tail) : "";
  sqlite3_finalize(st);
  sqlite3_close(db);
  const std::string shown = std::string(what) + " \"" + std::string(user) + "\"";
  bool syntax = err.rfind("near \"", 0) == 0 || err.rfind("unrecognized token", 0) == 0 ||
                err.find("incomplete input") != std::string::npos || err.find("syntax error") != std::string::npos;
  if (syntax) {
    long at = offset >= 0 ? offset + shift : -1;
    if (at >= static_cast<long>(user.size())) {
      // SQLite stopped at the wrapper sluice put around the text.
      return InvalidPlan(shown + " does not parse in SQLite: syntax error at end of input");
    }
    std::string msg = shown + " does not parse in SQLite: " + err;
    if (at >= 0 && at <= static_cast<long>(user.size())) msg += " (at character " + std::to_string(at + 1) + ")";
    return InvalidPlan(msg);
  }
  if (!sqlite::Significant(rest).empty()) return InvalidPlan(shown + " is more than one SQL statement");
  return Status::Ok();
}

// An expression, checked to be exactly one: its parentheses balance (so
// nothing escapes the "SELECT (...)" it is checked in) and SQLite parses it.
Result<std::vector<Token>> ExpressionTokens(std::string_view expr) {
  const std::string shown = "expression \"" + std::string(expr) + "\"";
  if (expr.find('\0') != std::string_view::npos) return InvalidPlan(shown + " contains a NUL byte");
  std::vector<Token> toks = sqlite::Significant(expr);
  // Trailing semicolons are dropped, as sql::ScalarExpression drops them.
  while (!toks.empty() && toks.back().kind == TokenKind::kOperator && toks.back().text == ";") toks.pop_back();
  int depth = 0;
  for (const auto& t : toks) {
    if (t.kind == TokenKind::kIllegal) {
      return InvalidPlan(shown + " does not parse in SQLite: unrecognized token " + std::string(t.text) +
                         " (at character " + std::to_string(t.pos + 1) + ")");
    }
    if (t.kind != TokenKind::kOperator) continue;
    if (t.text == "(") ++depth;
    if ((t.text == ")" && --depth < 0) || t.text == ";") {
      depth = -1;
      break;
    }
  }
  if (depth != 0 || toks.empty()) return InvalidPlan(shown + " is not a single SQL expression");
  static constexpr std::string_view kPrefix = "SELECT (";
  std::string body(expr.substr(0, toks.back().pos + toks.back().text.size()));
  SLUICE_RETURN_IF_ERROR(
      SyntaxCheck(std::string(kPrefix) + body + "\n)", -static_cast<long>(kPrefix.size()), expr, "expression"));
  return toks;
}

// The parts of CREATE [UNIQUE] INDEX [IF NOT EXISTS] [schema.]name ON table
// (columns) [WHERE predicate], as significant-token indexes.
struct IndexParts {
  std::vector<Token> toks;
  size_t name = 0;   // the index's name
  size_t open = 0;   // "(" of the column list
  size_t close = 0;  // its ")"
  size_t where = 0;  // first token of the predicate (toks.size() if none)
};

Result<IndexParts> ParseIndex(std::string_view def) {
  const std::string shown = "index definition \"" + std::string(def) + "\"";
  if (def.find('\0') != std::string_view::npos) return InvalidPlan(shown + " contains a NUL byte");
  SLUICE_RETURN_IF_ERROR(SyntaxCheck(std::string(def), 0, def, "index definition"));
  IndexParts p;
  p.toks = sqlite::Significant(def);
  const auto& toks = p.toks;
  const size_t n = toks.size();
  size_t i = 0;
  if (IsWord(toks, i, n, "CREATE")) ++i;
  if (IsWord(toks, i, n, "UNIQUE")) ++i;
  if (!IsWord(toks, i, n, "INDEX")) return InvalidPlan(shown + " is not a CREATE INDEX statement");
  size_t on = i + 1;
  while (on < n && !IsWord(toks, on, n, "ON")) ++on;
  if (on < 2 || on + 2 >= n || !IsOp(toks, on + 2, n, "(")) {
    return InvalidPlan(shown + " is not a CREATE INDEX statement SQLite would accept");
  }
  p.name = on - 1;
  p.open = on + 2;
  p.close = Closing(toks, p.open, n);
  p.where = n;
  if (IsWord(toks, p.close + 1, n, "WHERE")) p.where = p.close + 2;
  return p;
}

struct Edit {
  size_t pos;
  size_t len;
  std::string text;
};

std::string Apply(std::string_view text, const std::vector<Edit>& edits) {
  std::string out;
  size_t last = 0;
  for (const auto& e : edits) {
    out.append(text.substr(last, e.pos - last));
    out.append(e.text);
    last = e.pos + e.len;
  }
  out.append(text.substr(last));
  return out;
}

std::vector<Edit> RenameEdits(const std::vector<Token>& toks, const Refs& refs,
                              const std::map<std::string, std::string>& renames) {
  std::map<std::string, std::string> folded;
  for (const auto& [from, to] : renames) folded[sql::Lower(from)] = to;
  std::vector<Edit> edits;
  for (const auto& r : refs.refs) {
    auto it = folded.find(sql::Lower(r.name));
    if (it == folded.end()) continue;
    const Token& t = toks[r.token];
    edits.push_back({t.pos, t.text.size(), sqlite::QuoteIfNeeded(it->second)});
  }
  return edits;
}

}  // namespace

std::string SqliteDialect::ColumnKey(std::string_view column) const { return sql::Lower(column); }

Result<std::set<std::string>> SqliteDialect::ColumnsRead(std::string_view expr) const {
  auto toks = ExpressionTokens(expr);
  if (!toks.ok()) return toks.status();
  Refs refs;
  FindRefs(*toks, 0, toks->size(), false, &refs);
  std::set<std::string> out;
  for (const auto& r : refs.refs) out.insert(sql::Lower(r.name));
  return out;
}

Result<std::string> SqliteDialect::RenameColumns(std::string_view sql, SqlKind kind,
                                                 const std::map<std::string, std::string>& renames) const {
  const char* what = kind == SqlKind::kExpression ? "expression" : "index definition";
  std::vector<Token> toks;
  Refs refs;
  if (kind == SqlKind::kExpression) {
    auto t = ExpressionTokens(sql);
    if (!t.ok()) return t.status();
    toks = std::move(*t);
    FindRefs(toks, 0, toks.size(), false, &refs);
  } else {
    auto p = ParseIndex(sql);
    if (!p.ok()) return p.status();
    toks = std::move(p->toks);
    FindRefs(toks, p->open, p->close + 1, true, &refs);
    FindRefs(toks, p->where, toks.size(), false, &refs);
  }
  if (refs.subquery) {
    return InvalidPlan(std::string(what) + " \"" + std::string(sql) +
                       "\" contains a subquery; a CHECK constraint or an index cannot, and sluice will not guess "
                       "which table a name in it belongs to");
  }
  std::string out = Apply(sql, RenameEdits(toks, refs, renames));
  // The rewrite must parse as the original did.
  Status again = kind == SqlKind::kExpression ? ExpressionTokens(out).status() : ParseIndex(out).status();
  if (!again.ok()) {
    return Internal("renaming columns in " + std::string(what) + " \"" + std::string(sql) + "\" gave \"" + out +
                    "\", which does not parse: " + again.message());
  }
  return out;
}

Result<std::string> SqliteDialect::RenameIndex(std::string_view definition, std::string_view from,
                                               std::string_view to) const {
  auto p = ParseIndex(definition);
  if (!p.ok()) return p.status();
  const Token& name = p->toks[p->name];
  if (!NameLike(name) || sql::Lower(name.value) != sql::Lower(from)) {
    return InvalidPlan("index definition \"" + std::string(definition) + "\" does not create index '" +
                       std::string(from) + "'");
  }
  return Apply(definition, {{name.pos, name.text.size(), sqlite::QuoteIfNeeded(to)}});
}

}  // namespace sluice::db
