// SQLite's tokenizer, for reading and rewriting user SQL held by SQLite
// (CHECK expressions and index definitions from sqlite_schema, the plan's
// expressions). It follows the rules of SQLite's own tokenizer
// (sqlite3GetToken in src/tokenize.c, SQLite 3.40): identifiers "x" (""
// escapes a quote), [x] (no escapes) and `x` (`` escapes); strings '...'
// ('' escapes a quote; a backslash is an ordinary character); blobs x'..'
// with an even number of hex digits; numbers with fractions, exponents and
// 0x hex; -- and /* */ comments; variables ?, ?NNN, :a, @a, $a, #a (with
// Tcl's a::b and a(...) forms); the operators || -> ->> << >> <> != == <=
// >=. Whether a bare word is a keyword is SQLite's own answer
// (sqlite3_keyword_check), so the list matches the linked library.
//
// Tokenize never fails: bytes SQLite would reject ("unrecognized token")
// become kIllegal tokens, and the tokens' texts concatenate to the input
// (up to a NUL byte, where SQLite stops reading).
//
//   for (const auto& t : sqlite::Tokenize("SELECT [a b] FROM t -- x")) ...
//   // kKeyword "SELECT", kSpace, kQuotedId (value "a b"), kSpace,
//   // kKeyword "FROM", kSpace, kId "t", kSpace, kComment "-- x"
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::db::sqlite {

enum class TokenKind {
  kSpace,     // whitespace, or a UTF-8 byte order mark
  kComment,   // -- to the end of the line, or /* ... */ (perhaps unterminated)
  kId,        // a bare word that is not a keyword
  kKeyword,   // a bare word SQLite knows as a keyword (some may still name columns)
  kQuotedId,  // "x", [x] or `x`
  kString,    // '...'
  kBlob,      // x'...'
  kInteger,   // 42, 0x2A
  kFloat,     // 1.5, .5, 1e3
  kVariable,  // ?, ?1, :name, @name, $name, #name
  kOperator,  // ( ) , ; . + - * / % & | ~ = == < <= <> << > >= >> != || -> ->>
  kIllegal,   // what SQLite rejects as an unrecognized token
};

struct Token {
  TokenKind kind;
  size_t pos = 0;         // byte offset in the input
  std::string_view text;  // the bytes of the input (a view into it)
  // kQuotedId and kString: the content with quotes removed and doubled
  // quotes undoubled; otherwise the text itself.
  std::string value;
};

std::vector<Token> Tokenize(std::string_view sql);
// Tokenize without kSpace and kComment tokens.
std::vector<Token> Significant(std::string_view sql);

// True when SQLite treats `word` (any case) as a keyword.
bool IsKeyword(std::string_view word);

// `name` as an identifier in SQLite text: bare when it is a plain word
// ([A-Za-z_][A-Za-z0-9_]*) and not a keyword, "double-quoted" otherwise.
std::string QuoteIfNeeded(std::string_view name);

}  // namespace sluice::db::sqlite
