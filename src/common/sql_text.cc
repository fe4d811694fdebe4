#include "common/sql_text.h"

#include <cctype>

namespace sluice::sql {

std::string QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteLiteral(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

namespace {

bool IsIdentStart(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool IsIdentChar(unsigned char c) { return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

// Reads a quoted run starting at s[i] (the opening quote `q`, closing `close`)
// where a doubled closing quote escapes itself. Returns the end offset.
size_t ReadQuoted(std::string_view s, size_t i, char close, std::string* value) {
  size_t j = i + 1;
  while (j < s.size()) {
    if (s[j] == close) {
      if (j + 1 < s.size() && s[j + 1] == close && close != ']') {
        if (value) value->push_back(close);
        j += 2;
        continue;
      }
      return j + 1;
    }
    if (value) value->push_back(s[j]);
    ++j;
  }
  return s.size();
}

}  // namespace

std::vector<Token> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) { ++i; continue; }
    // Comments.
    if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
      continue;
    }
    Token t;
    t.pos = i;
    if ((c == 'E' || c == 'e' || c == 'X' || c == 'x' || c == 'B' || c == 'b') && i + 1 < s.size() &&
        s[i + 1] == '\'') {
      t.kind = Token::Kind::kString;
      size_t end = ReadQuoted(s, i + 1, '\'', &t.text);
      t.len = end - i;
      i = end;
      out.push_back(std::move(t));
      continue;
    }
    if (c == '\'') {
      t.kind = Token::Kind::kString;
      size_t end = ReadQuoted(s, i, '\'', &t.text);
      t.len = end - i;
      i = end;
    } else if (c == '"' || c == '`') {
      t.kind = Token::Kind::kQuotedIdent;
      size_t end = ReadQuoted(s, i, static_cast<char>(c), &t.text);
      t.len = end - i;
      i = end;
    } else if (c == '[') {
      // SQLite's [ident]; PostgreSQL uses [ only for array subscripts, where
      // the content is an expression: treat as an operator there.
      size_t end = s.find(']', i);
      std::string inner(s.substr(i + 1, end == std::string_view::npos ? 0 : end - i - 1));
      bool simple = end != std::string_view::npos && !inner.empty();
      for (char ch : inner) {
        if (!IsIdentChar(static_cast<unsigned char>(ch)) && ch != ' ') simple = false;
      }
      if (simple && !std::isdigit(static_cast<unsigned char>(inner[0]))) {
        t.kind = Token::Kind::kQuotedIdent;
        t.text = inner;
        t.len = end + 1 - i;
        i = end + 1;
      } else {
        t.kind = Token::Kind::kOperator;
        t.text = "[";
        t.len = 1;
        ++i;
      }
    } else if (c == '$') {
      // $1 parameter or $tag$...$tag$ dollar quote.
      size_t j = i + 1;
      if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        t.kind = Token::Kind::kParam;
        t.text = std::string(s.substr(i, j - i));
        t.len = j - i;
        i = j;
      } else {
        while (j < s.size() && IsIdentChar(static_cast<unsigned char>(s[j])) && s[j] != '$') ++j;
        if (j < s.size() && s[j] == '$') {
          std::string tag(s.substr(i, j - i + 1));
          size_t end = s.find(tag, j + 1);
          t.kind = Token::Kind::kString;
          if (end == std::string_view::npos) {
            t.text = std::string(s.substr(j + 1));
            i = s.size();
          } else {
            t.text = std::string(s.substr(j + 1, end - j - 1));
            i = end + tag.size();
          }
          t.len = i - t.pos;
        } else {
          t.kind = Token::Kind::kOther;
          t.text = "$";
          t.len = 1;
          ++i;
        }
      }
    } else if ((c == '?' || c == ':' || c == '@') && i + 1 < s.size() &&
               (IsIdentChar(static_cast<unsigned char>(s[i + 1]))) && !(c == ':' && s[i + 1] == ':')) {
      // SQLite ?NNN / :name / @name parameters. "::" is a PostgreSQL cast.
      size_t j = i + 1;
      while (j < s.size() && IsIdentChar(static_cast<unsigned char>(s[j]))) ++j;
      t.kind = Token::Kind::kParam;
      t.text = std::string(s.substr(i, j - i));
      t.len = j - i;
      i = j;
    } else if (std::isdigit(c) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' ||
                              ((s[j] == '+' || s[j] == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E')))) {
        ++j;
      }
      t.kind = Token::Kind::kNumber;
      t.text = std::string(s.substr(i, j - i));
      t.len = j - i;
      i = j;
    } else if (IsIdentStart(c)) {
      size_t j = i;
      while (j < s.size() && IsIdentChar(static_cast<unsigned char>(s[j]))) ++j;
      t.kind = Token::Kind::kIdent;
      t.text = std::string(s.substr(i, j - i));
      t.len = j - i;
      i = j;
    } else {
      // Multi-character operators that matter for reading: ::, ||, <=, >=, <>, !=.
      static const char* kOps[] = {"::", "||", "<=", ">=", "<>", "!=", "==", "->>", "->"};
      t.kind = Token::Kind::kOperator;
      t.len = 1;
      for (const char* op : kOps) {
        std::string_view ov(op);
        if (s.substr(i, ov.size()) == ov) {
          t.len = ov.size();
          break;
        }
      }
      t.text = std::string(s.substr(i, t.len));
      i += t.len;
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string ScalarExpression(std::string_view expr) {
  std::string_view e = Trim(expr);
  while (!e.empty() && e.back() == ';') e = Trim(e.substr(0, e.size() - 1));
  return "(" + std::string(e) + ")";
}

}  // namespace sluice::sql
