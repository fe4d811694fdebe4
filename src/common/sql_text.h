// Small, dialect-neutral helpers for SQL text: quoting and expression
// embedding. Used wherever sluice builds SQL from names, so no user string is
// ever pasted unquoted except the plan's explicit expressions.
//
// Reading or rewriting user SQL (which columns an expression reads, a column
// renamed in a CHECK or an index definition) is never done here: it goes
// through the database's own grammar, db::Dialect::ColumnsRead /
// RenameColumns / RenameIndex (libpg_query on PostgreSQL, SQLite's tokenizer
// rules in src/db/sqlite/sqlite_lexer.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

// "name" with embedded quotes doubled. Safe for any input.
std::string QuoteIdent(std::string_view name);
// 'text' with embedded quotes doubled. NUL bytes are not representable in SQL
// text and must be rejected by the caller.
std::string QuoteLiteral(std::string_view text);

// A tolerant lexer that never fails (unknown bytes become kOther tokens). It
// knows '...' strings with '' escapes, "..." identifiers, $$/$tag$ dollar
// quotes, -- and /* */ comments, numbers, $N/?N/:name params and operators,
// but not E'...' backslash escapes nor every SQLite rule. It only serves
// reads that rewrite no name: the :key placeholders of shadow-read queries
// (verify) and PostgreSQL's volatility hint (IsVolatile). Never use it to
// find or rename columns; use the Dialect methods above.
struct Token {
  enum class Kind { kIdent, kQuotedIdent, kString, kNumber, kParam, kOperator, kOther };
  Kind kind;
  std::string text;   // identifiers: the name (unquoted, quotes undoubled)
  size_t pos = 0;     // byte offset in the input
  size_t len = 0;     // byte length in the input
};

std::vector<Token> Tokenize(std::string_view sql);

// Wraps a plan expression so it can be embedded as a scalar operand:
// "SELECT x" becomes "(SELECT x)", anything else "(expr)". Leading and
// trailing whitespace and a trailing ';' are dropped.
std::string ScalarExpression(std::string_view expr);

// ASCII lower-casing.
std::string Lower(std::string_view s);

// Trims ASCII whitespace at both ends.
std::string_view Trim(std::string_view s);

}  // namespace sluice::sql
