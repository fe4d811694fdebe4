// Small, dialect-neutral helpers for SQL text: quoting, a tolerant lexer and
// expression normalisation. Used wherever sluice builds SQL from names, so no
// user string is ever pasted unquoted except the plan's explicit expressions.
//
// The lexer understands '...' strings (with '' escapes and E'' prefixes),
// "..." identifiers, `...` and [...] identifiers (SQLite), $$/$tag$ dollar
// quotes (PostgreSQL), -- and /* */ comments, numbers, $N/?N/:name params and
// operators. It never fails: unknown bytes become kOther tokens.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

// "name" with embedded quotes doubled. Safe for any input.
std::string QuoteIdent(std::string_view name);
// 'text' with embedded quotes doubled. NUL bytes are not representable in SQL
// text and must be rejected by the caller.
std::string QuoteLiteral(std::string_view text);

struct Token {
  enum class Kind { kIdent, kQuotedIdent, kString, kNumber, kParam, kOperator, kOther };
  Kind kind;
  std::string text;   // identifiers: the name (unquoted, quotes undoubled)
  size_t pos = 0;     // byte offset in the input
  size_t len = 0;     // byte length in the input
};

std::vector<Token> Tokenize(std::string_view sql);

// Lower-cased names of every identifier token in `expr` (bare identifiers
// folded to lower case, quoted ones as written). An over-approximation of
// the columns an expression reads: a superset is always safe for trigger
// column lists.
std::set<std::string> Identifiers(std::string_view expr);

// True when `expr` begins with the keyword SELECT (pgroll allows `up:
// SELECT CASE ... END`).
bool StartsWithSelect(std::string_view expr);

// Wraps a plan expression so it can be embedded as a scalar operand:
// "SELECT x" becomes "(SELECT x)", anything else "(expr)". Leading and
// trailing whitespace and a trailing ';' are dropped.
std::string ScalarExpression(std::string_view expr);

// Replaces every bare or quoted identifier token equal (case-insensitively
// for bare ones) to `from` with the quoted `to`. Strings and comments are
// left alone. Used to point a CHECK expression at a column's physical name.
std::string RenameIdentifier(std::string_view expr, std::string_view from, std::string_view to);

// ASCII lower-casing.
std::string Lower(std::string_view s);

// Trims ASCII whitespace at both ends.
std::string_view Trim(std::string_view s);

}  // namespace sluice::sql
