#include "db/sqlite/sqlite_lexer.h"

#include <sqlite3.h>

#include "common/sql_text.h"

namespace sluice::db::sqlite {
namespace {

bool IsSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '\v'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsXDigit(unsigned char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// SQLite's IdChar: letters, digits, '_', '$' and every byte >= 0x80.
bool IsIdChar(unsigned char c) { return IsAlpha(c) || IsDigit(c) || c == '_' || c == '$' || c >= 0x80; }

// Reads one token at s[i] (s[i] != NUL); returns its length and kind.
size_t Next(std::string_view s, size_t i, TokenKind* kind) {
  auto at = [&](size_t k) -> unsigned char { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
  unsigned char c = at(i);
  switch (c) {
    // Only these start whitespace; \v may follow but not start it.
    case ' ': case '\t': case '\n': case '\f': case '\r': {
      size_t j = i + 1;
      while (IsSpace(at(j))) ++j;
      *kind = TokenKind::kSpace;
      return j - i;
    }
    case '-':
      if (at(i + 1) == '-') {
        size_t j = i + 2;
        while (at(j) != 0 && at(j) != '\n') ++j;
        *kind = TokenKind::kComment;
        return j - i;
      }
      *kind = TokenKind::kOperator;
      if (at(i + 1) == '>') return at(i + 2) == '>' ? 3 : 2;
      return 1;
    case '/': {
      if (at(i + 1) != '*' || at(i + 2) == 0) {
        *kind = TokenKind::kOperator;
        return 1;
      }
      size_t j = i + 3;
      while (at(j) != 0 && !(at(j - 1) == '*' && at(j) == '/')) ++j;
      if (at(j) != 0) ++j;
      *kind = TokenKind::kComment;
      return j - i;
    }
    case '(': case ')': case ';': case '+': case '*': case '%': case ',': case '&': case '~':
      *kind = TokenKind::kOperator;
      return 1;
    case '=':
      *kind = TokenKind::kOperator;
      return at(i + 1) == '=' ? 2 : 1;
    case '<':
      *kind = TokenKind::kOperator;
      return (at(i + 1) == '=' || at(i + 1) == '>' || at(i + 1) == '<') ? 2 : 1;
    case '>':
      *kind = TokenKind::kOperator;
      return (at(i + 1) == '=' || at(i + 1) == '>') ? 2 : 1;
    case '!':
      *kind = at(i + 1) == '=' ? TokenKind::kOperator : TokenKind::kIllegal;
      return at(i + 1) == '=' ? 2 : 1;
    case '|':
      *kind = TokenKind::kOperator;
      return at(i + 1) == '|' ? 2 : 1;
    case '"': case '\'': case '`': {
      size_t j = i + 1;
      unsigned char d = 0;
      for (; (d = at(j)) != 0; ++j) {
        if (d == c) {
          if (at(j + 1) == c) {
            ++j;
          } else {
            break;
          }
        }
      }
      if (d == 0) {
        *kind = TokenKind::kIllegal;
        return j - i;
      }
      *kind = c == '\'' ? TokenKind::kString : TokenKind::kQuotedId;
      return j + 1 - i;
    }
    case '[': {
      size_t j = i + 1;
      while (at(j) != 0 && at(j) != ']') ++j;
      if (at(j) == ']') {
        *kind = TokenKind::kQuotedId;
        return j + 1 - i;
      }
      *kind = TokenKind::kIllegal;
      return j - i;
    }
    case '?': {
      size_t j = i + 1;
      while (IsDigit(at(j))) ++j;
      *kind = TokenKind::kVariable;
      return j - i;
    }
    case '$': case '@': case ':': case '#': {
      size_t j = i + 1;
      int n = 0;
      *kind = TokenKind::kVariable;
      for (unsigned char d; (d = at(j)) != 0; ++j) {
        if (IsIdChar(d)) {
          ++n;
        } else if (d == '(' && n > 0) {
          // Tcl array element $a(x): up to ')' without spaces.
          do {
            ++j;
          } while ((d = at(j)) != 0 && !IsSpace(d) && d != ')');
          if (d == ')') {
            ++j;
          } else {
            *kind = TokenKind::kIllegal;
          }
          break;
        } else if (d == ':' && at(j + 1) == ':') {
          ++j;  // Tcl namespace $a::b
        } else {
          break;
        }
      }
      if (n == 0) *kind = TokenKind::kIllegal;
      return j - i;
    }
    case '.':
      if (!IsDigit(at(i + 1))) {
        *kind = TokenKind::kOperator;
        return 1;
      }
      [[fallthrough]];
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9': {
      size_t j = i;
      *kind = TokenKind::kInteger;
      if (c == '0' && (at(i + 1) == 'x' || at(i + 1) == 'X') && IsXDigit(at(i + 2))) {
        j = i + 3;
        while (IsXDigit(at(j))) ++j;
      } else {
        while (IsDigit(at(j))) ++j;
        if (at(j) == '.') {
          *kind = TokenKind::kFloat;
          ++j;
          while (IsDigit(at(j))) ++j;
        }
        if ((at(j) == 'e' || at(j) == 'E') &&
            (IsDigit(at(j + 1)) || ((at(j + 1) == '+' || at(j + 1) == '-') && IsDigit(at(j + 2))))) {
          *kind = TokenKind::kFloat;
          j += 2;
          while (IsDigit(at(j))) ++j;
        }
      }
      // "12abc" is one unrecognized token, not a number and a word.
      while (IsIdChar(at(j))) {
        *kind = TokenKind::kIllegal;
        ++j;
      }
      return j - i;
    }
    case 'x': case 'X':
      if (at(i + 1) == '\'') {
        size_t j = i + 2;
        while (IsXDigit(at(j))) ++j;
        *kind = TokenKind::kBlob;
        if (at(j) != '\'' || (j - i) % 2 != 0) {
          *kind = TokenKind::kIllegal;
          while (at(j) != 0 && at(j) != '\'') ++j;
        }
        if (at(j) != 0) ++j;
        return j - i;
      }
      break;
    case 0xEF:
      if (at(i + 1) == 0xBB && at(i + 2) == 0xBF) {
        *kind = TokenKind::kSpace;
        return 3;
      }
      break;
    default:
      break;
  }
  if (IsAlpha(c) || c == '_' || c >= 0x80) {
    size_t j = i + 1;
    while (IsIdChar(at(j))) ++j;
    *kind = TokenKind::kId;  // keywords are told apart by the caller
    return j - i;
  }
  *kind = TokenKind::kIllegal;
  return 1;
}

// The content of a quoted token with its quotes removed and doubled
// closing quotes undoubled ([x] has no escapes).
std::string Dequote(std::string_view text) {
  if (text.size() < 2) return std::string(text);
  char open = text.front();
  char close = open == '[' ? ']' : open;
  std::string out;
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    out.push_back(text[i]);
    if (open != '[' && text[i] == close && text[i + 1] == close) ++i;
  }
  return out;
}

}  // namespace

bool IsKeyword(std::string_view word) {
  return !word.empty() && sqlite3_keyword_check(word.data(), static_cast<int>(word.size())) != 0;
}

std::vector<Token> Tokenize(std::string_view sql) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < sql.size() && sql[i] != '\0') {
    Token t;
    size_t n = Next(sql, i, &t.kind);
    t.pos = i;
    t.text = sql.substr(i, n);
    if (t.kind == TokenKind::kId) {
      // SQLite looks keywords up only for words made of letters and '_'.
      bool plain = true;
      for (char c : t.text) plain = plain && (IsAlpha(static_cast<unsigned char>(c)) || c == '_');
      if (plain && IsKeyword(t.text)) t.kind = TokenKind::kKeyword;
    }
    t.value = (t.kind == TokenKind::kQuotedId || t.kind == TokenKind::kString) ? Dequote(t.text) : std::string(t.text);
    out.push_back(std::move(t));
    i += n;
  }
  return out;
}

std::vector<Token> Significant(std::string_view sql) {
  std::vector<Token> out;
  for (auto& t : Tokenize(sql)) {
    if (t.kind != TokenKind::kSpace && t.kind != TokenKind::kComment) out.push_back(std::move(t));
  }
  return out;
}

std::string QuoteIfNeeded(std::string_view name) {
  bool plain = !name.empty() && !IsDigit(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    plain = plain && (IsAlpha(u) || IsDigit(u) || c == '_');
  }
  return plain && !IsKeyword(name) ? std::string(name) : sql::QuoteIdent(name);
}

}  // namespace sluice::db::sqlite
