// User SQL read and rewritten through PostgreSQL's own parser (libpg_query):
// which columns an expression reads, and a column's references moved onto a
// new name in a CHECK expression or a copied index definition.
//
// Nothing here searches text. The parse tree says what is a column
// reference (ColumnRef nodes and an index's plain column elements); the
// scanner's token boundaries say which bytes spell it. A rename splices the
// new name over exactly those bytes and keeps every other byte of the
// user's text (spacing, comments, E'...' strings, casts, the catalog's
// parentheses), so what runs is what the user or the catalog wrote.
#include <pg_query.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/sql_text.h"
#include "db/postgres/postgres_dialect.h"

namespace sluice::db {
namespace {

using nlohmann::json;

// Token numbers of pg_query.proto's Token enum (libpg_query 15-4.x).
constexpr int kTokDot = '.';
constexpr int kTokComma = ',';
constexpr int kTokOpen = '(';
constexpr int kTokClose = ')';
constexpr int kTokIdent = 258;
constexpr int kTokUident = 259;
constexpr int kTokSqlComment = 275;
constexpr int kTokCComment = 276;
constexpr int kTokInclude = 454;
constexpr int kTokUescape = 685;
// KeywordKind: NO_KEYWORD = 0, UNRESERVED_KEYWORD = 1, higher = reserved to
// some degree (col_name, type_func_name, reserved).
constexpr int kUnreservedKeyword = 1;

struct ScanToken {
  int start = 0;
  int end = 0;
  int token = 0;
  int keyword = 0;
};

// pg_query_scan answers with a protobuf ScanResult { repeated ScanToken
// tokens = 2 } where ScanToken { int32 start = 1; int32 end = 2; Token
// token = 4; KeywordKind keyword_kind = 5 }. Reading those four varints by
// hand spares a dependency on protobuf-c's headers for them; unknown
// fields are skipped by wire type, as protobuf requires.
class Wire {
 public:
  Wire(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Key(int* field, int* wire_type) {
    uint64_t k;
    if (!Varint(&k)) return false;
    *field = static_cast<int>(k >> 3);
    *wire_type = static_cast<int>(k & 7);
    return true;
  }
  bool Sub(Wire* out) {
    uint64_t n;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = Wire(p_, n);
    p_ += n;
    return true;
  }
  bool Skip(int wire_type) {
    uint64_t v;
    switch (wire_type) {
      case 0: return Varint(&v);
      case 1: return Advance(8);
      case 2: return Varint(&v) && Advance(v);
      case 5: return Advance(4);
      default: return false;
    }
  }

 private:
  bool Advance(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

bool DecodeScan(const char* data, size_t len, std::vector<ScanToken>* out) {
  Wire w(reinterpret_cast<const uint8_t*>(data), len);
  while (!w.done()) {
    int field, type;
    if (!w.Key(&field, &type)) return false;
    if (field != 2 || type != 2) {
      if (!w.Skip(type)) return false;
      continue;
    }
    Wire t(nullptr, 0);
    if (!w.Sub(&t)) return false;
    ScanToken tok;
    while (!t.done()) {
      int f, ty;
      if (!t.Key(&f, &ty)) return false;
      uint64_t v = 0;
      if (ty != 0) {
        if (!t.Skip(ty)) return false;
        continue;
      }
      if (!t.Varint(&v)) return false;
      if (f == 1) tok.start = static_cast<int>(v);
      if (f == 2) tok.end = static_cast<int>(v);
      if (f == 4) tok.token = static_cast<int>(v);
      if (f == 5) tok.keyword = static_cast<int>(v);
    }
    out->push_back(tok);
  }
  return true;
}

// Text handed to libpg_query, and how its byte offsets map back to the
// user's text: user offset = parsed offset + shift.
struct Source {
  std::string text;
  long shift = 0;
  std::string_view user;  // what error messages show
  const char* what;       // "expression", "index definition"
};

Status ParseError(const Source& src, const PgQueryError& e) {
  std::string msg = std::string(src.what) + " \"" + std::string(src.user) + "\" does not parse in PostgreSQL: ";
  long at = e.cursorpos > 0 ? e.cursorpos - 1 + src.shift : -1;
  if (at >= static_cast<long>(src.user.size()) && std::string_view(e.message).rfind("syntax error", 0) == 0) {
    // The parser stopped at the wrapper sluice put around the text.
    return InvalidPlan(msg + "syntax error at end of input");
  }
  msg += e.message;
  if (at >= 0 && at < static_cast<long>(src.user.size())) msg += " (at character " + std::to_string(at + 1) + ")";
  return InvalidPlan(msg);
}

// j[key] when j is an object holding it, else null.
json Get(const json& j, const char* key) { return j.is_object() && j.contains(key) ? j[key] : json(); }

// The "location" of the node under `kind` in j, or -1.
int LocationOf(const json& j, const char* kind) {
  json node = Get(j, kind);
  return node.is_object() ? node.value("location", -1) : -1;
}

Result<json> Parse(const Source& src) {
  if (src.text.find('\0') != std::string::npos) {
    return InvalidPlan(std::string(src.what) + " contains a NUL byte, which SQL text cannot hold");
  }
  PgQueryParseResult r = pg_query_parse(src.text.c_str());
  if (r.error) {
    Status s = ParseError(src, *r.error);
    pg_query_free_parse_result(r);
    return s;
  }
  json tree = json::parse(r.parse_tree, nullptr, false);
  pg_query_free_parse_result(r);
  if (tree.is_discarded() || !tree.contains("stmts") || tree["stmts"].size() != 1 ||
      !tree["stmts"][0].contains("stmt")) {
    return InvalidPlan(std::string(src.what) + " \"" + std::string(src.user) + "\" is not one SQL statement");
  }
  return tree["stmts"][0]["stmt"];
}

// Every token but comments, so `t /* x */ . c` reads as t . c.
Result<std::vector<ScanToken>> Scan(const Source& src) {
  PgQueryScanResult r = pg_query_scan(src.text.c_str());
  if (r.error) {
    Status s = ParseError(src, *r.error);
    pg_query_free_scan_result(r);
    return s;
  }
  std::vector<ScanToken> all;
  bool ok = DecodeScan(r.pbuf.data, r.pbuf.len, &all);
  pg_query_free_scan_result(r);
  if (!ok) return Internal("could not decode libpg_query's token list");
  std::vector<ScanToken> out;
  for (const auto& t : all) {
    if (t.token != kTokSqlComment && t.token != kTokCComment) out.push_back(t);
  }
  return out;
}

constexpr std::string_view kPrefix = "SELECT (";

// An expression as sql::ScalarExpression embeds it (trimmed, a trailing ';'
// dropped, parenthesised so `SELECT ...` works as a scalar subquery),
// inside a SELECT the parser can read. The newline keeps a trailing `--`
// comment from swallowing the closing parenthesis.
Source ExpressionSource(std::string_view expr) {
  size_t b = 0, e = expr.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (b < e && space(expr[b])) ++b;
  while (e > b && (space(expr[e - 1]) || expr[e - 1] == ';')) --e;
  Source s{std::string(kPrefix) + std::string(expr.substr(b, e - b)) + "\n)", static_cast<long>(b) -
                                                                               static_cast<long>(kPrefix.size()),
           expr, "expression"};
  return s;
}

// The statement must be exactly `SELECT (<one expression>)`: anything the
// expression smuggled in (a FROM, a second column, an INTO) is refused.
Result<json> ParseExpression(const Source& src) {
  auto stmt = Parse(src);
  if (!stmt.ok()) return stmt.status();
  auto refuse = [&]() -> Result<json> {
    return InvalidPlan("expression \"" + std::string(src.user) + "\" is not a single SQL expression");
  };
  if (!stmt->contains("SelectStmt")) return refuse();
  const json& sel = (*stmt)["SelectStmt"];
  for (const auto& [key, value] : sel.items()) {
    if (key != "targetList" && key != "limitOption" && key != "op") return refuse();
  }
  if (sel.value("op", "SETOP_NONE") != "SETOP_NONE") return refuse();
  if (!sel.contains("targetList") || sel["targetList"].size() != 1) return refuse();
  const json target = Get(sel["targetList"][0], "ResTarget");
  if (!target.is_object() || target.contains("name") || !target.contains("val")) return refuse();
  // "a, b" inside the wrapper's parentheses would be a row constructor;
  // a row the user wrote, "(a, b)", starts at the user's own "(".
  if (LocationOf(target["val"], "RowExpr") == static_cast<int>(kPrefix.size()) - 1) return refuse();
  return target["val"];
}

// Calls fn(kind, node) for every node of the tree ({"Kind": {...}}).
void Walk(const json& j, const std::function<void(const std::string&, const json&)>& fn) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (value.is_object() && !key.empty() && std::isupper(static_cast<unsigned char>(key[0]))) fn(key, value);
      Walk(value, fn);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) Walk(v, fn);
  }
}

// A ColumnRef's names ("String" fields; "*" for A_Star).
std::vector<std::string> RefFields(const json& ref) {
  std::vector<std::string> out;
  for (const auto& f : ref.value("fields", json::array())) {
    if (f.contains("String")) {
      out.push_back(f["String"].value("sval", ""));
    } else {
      out.push_back("*");
    }
  }
  return out;
}

// Which of a ColumnRef's names is the column: the only one, or the last of
// a qualified name (t.c, NEW.c, schema.t.c). A field of a composite column
// is written (c).f, an A_Indirection over the ColumnRef `c`.
std::optional<size_t> ColumnField(const std::vector<std::string>& fields) {
  if (fields.empty()) return std::nullopt;
  return fields.size() - 1;
}

size_t TokenAt(const std::vector<ScanToken>& toks, int start) {
  auto it = std::lower_bound(toks.begin(), toks.end(), start,
                             [](const ScanToken& t, int s) { return t.start < s; });
  return static_cast<size_t>(it - toks.begin());
}

bool NameToken(const ScanToken& t) { return t.token == kTokIdent || t.token == kTokUident || t.keyword > 0; }

// Byte range of the name starting at token `i` (U&"..." UESCAPE '!' is one
// name), and the index of the token after it.
std::pair<std::pair<int, int>, size_t> NameRange(const std::vector<ScanToken>& toks, size_t i) {
  int start = toks[i].start, end = toks[i].end;
  size_t next = i + 1;
  if (toks[i].token == kTokUident && next + 1 < toks.size() && toks[next].token == kTokUescape) {
    end = toks[next + 1].end;
    next += 2;
  }
  return {{start, end}, next};
}

// Byte range of name number `index` of the ColumnRef at `location`.
std::optional<std::pair<int, int>> FieldRange(const std::vector<ScanToken>& toks, int location, size_t index) {
  size_t i = TokenAt(toks, location);
  for (size_t f = 0;; ++f) {
    if (i >= toks.size() || toks[i].start < location || !NameToken(toks[i])) return std::nullopt;
    auto [range, next] = NameRange(toks, i);
    if (f == index) return range;
    if (next >= toks.size() || toks[next].token != kTokDot) return std::nullopt;
    i = next + 1;
  }
}

struct Edit {
  int start;
  int end;
  std::string text;
};

// The user's text with `edits` (offsets in the parsed text) applied.
Result<std::string> Apply(const Source& src, std::vector<Edit> edits) {
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.start < b.start; });
  std::string out;
  long last = 0;
  for (const auto& e : edits) {
    long s = e.start + src.shift, t = e.end + src.shift;
    if (s < last || t < s || t > static_cast<long>(src.user.size())) {
      return Internal("libpg_query's locations do not fit " + std::string(src.what) + " \"" +
                      std::string(src.user) + "\"");
    }
    out.append(src.user.substr(last, s - last));
    out.append(e.text);
    last = t;
  }
  out.append(src.user.substr(last));
  return out;
}

// Edits renaming every ColumnRef of `tree` whose column is in `renames`.
Status ColumnRefEdits(const Source& src, const json& tree, const std::vector<ScanToken>& toks,
                      const std::map<std::string, std::string>& renames, std::vector<Edit>* edits) {
  Status status = Status::Ok();
  Walk(tree, [&](const std::string& kind, const json& node) {
    if (!status.ok()) return;
    if (kind == "SubLink") {
      status = InvalidPlan(std::string(src.what) + " \"" + std::string(src.user) +
                           "\" contains a subquery; a CHECK constraint or an index cannot, and sluice will not "
                           "guess which table a name in it belongs to");
      return;
    }
    if (kind != "ColumnRef") return;
    auto fields = RefFields(node);
    auto which = ColumnField(fields);
    if (!which) return;
    auto it = renames.find(fields[*which]);
    if (it == renames.end()) return;
    auto range = FieldRange(toks, node.value("location", -1), *which);
    if (!range) {
      status = Internal("cannot find column reference '" + fields[*which] + "' in the tokens of " +
                        std::string(src.what) + " \"" + std::string(src.user) + "\"");
      return;
    }
    edits->push_back({range->first, range->second, PostgresDialect::QuoteIfNeeded(it->second)});
  });
  return status;
}

// Where an IndexStmt's table name starts (a typed field: no node wrapper).
int RelationLocation(const json& stmt) {
  json rel = Get(stmt, "relation");
  return rel.is_object() ? rel.value("location", -1) : -1;
}

// Edits for the plain column elements of an index (`(a, b DESC)` and
// `INCLUDE (c)`), which the parse tree names without locations: the
// elements are found by position in the token list, after the relation.
Status IndexElementEdits(const Source& src, const json& stmt, const std::vector<ScanToken>& toks,
                         const std::map<std::string, std::string>& renames, std::vector<Edit>* edits) {
  auto fail = [&]() {
    return Internal("cannot match the column list of index definition \"" + std::string(src.user) +
                    "\" with its tokens");
  };
  int rel = RelationLocation(stmt);
  if (rel < 0) return fail();
  size_t i = TokenAt(toks, rel);
  while (i < toks.size() && toks[i].token != kTokOpen) ++i;
  for (const char* list : {"indexParams", "indexIncludingParams"}) {
    const json elems = stmt.value(list, json::array());
    if (std::string(list) == "indexIncludingParams") {
      if (elems.empty()) break;
      while (i < toks.size() && toks[i].token != kTokInclude) ++i;
      if (++i >= toks.size() || toks[i].token != kTokOpen) return fail();
    }
    if (i >= toks.size()) return fail();
    // toks[i] is the list's "(". Element k starts after "(" or a
    // top-level ",".
    size_t k = 0;
    int depth = 0;
    size_t elem_start = i + 1;
    for (; i < toks.size(); ++i) {
      int t = toks[i].token;
      if (t == kTokOpen) {
        if (++depth == 1) elem_start = i + 1;
        continue;
      }
      bool end_of_elem = (t == kTokComma && depth == 1) || (t == kTokClose && depth == 1);
      if (t == kTokClose) --depth;
      if (!end_of_elem) continue;
      if (k >= elems.size()) return fail();
      const json elem = Get(elems[k], "IndexElem");
      if (elem.contains("name") && !elem.contains("expr")) {
        if (elem_start >= toks.size() || !NameToken(toks[elem_start])) return fail();
        auto it = renames.find(elem["name"].get<std::string>());
        if (it != renames.end()) {
          auto [range, next] = NameRange(toks, elem_start);
          edits->push_back({range.first, range.second, PostgresDialect::QuoteIfNeeded(it->second)});
        }
      }
      ++k;
      elem_start = i + 1;
      if (depth == 0) break;
    }
    if (k != elems.size()) return fail();
  }
  return Status::Ok();
}

Source IndexSource(std::string_view definition) {
  return Source{std::string(definition), 0, definition, "index definition"};
}

Result<json> ParseIndex(const Source& src) {
  auto stmt = Parse(src);
  if (!stmt.ok()) return stmt.status();
  if (!stmt->contains("IndexStmt")) {
    return InvalidPlan("index definition \"" + std::string(src.user) + "\" is not a CREATE INDEX statement");
  }
  return (*stmt)["IndexStmt"];
}

}  // namespace

std::string PostgresDialect::QuoteIfNeeded(std::string_view name) {
  bool simple = !name.empty() && ((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_');
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) simple = false;
  }
  if (simple) {
    Source src{std::string(name), 0, name, "name"};
    auto toks = Scan(src);
    simple = toks.ok() && toks->size() == 1 && (*toks)[0].keyword <= kUnreservedKeyword;
  }
  return simple ? std::string(name) : sql::QuoteIdent(name);
}

Result<std::set<std::string>> PostgresDialect::ColumnsRead(std::string_view expr) const {
  return ExpressionColumns(expr);
}

Result<std::set<std::string>> PostgresDialect::ExpressionColumns(std::string_view expr) {
  Source src = ExpressionSource(expr);
  auto tree = ParseExpression(src);
  if (!tree.ok()) return tree.status();
  std::set<std::string> out;
  Walk(*tree, [&](const std::string& kind, const json& node) {
    if (kind != "ColumnRef") return;
    auto fields = RefFields(node);
    if (auto which = ColumnField(fields)) out.insert(fields[*which]);
  });
  return out;
}

Result<std::string> PostgresDialect::RenameColumns(std::string_view sql, SqlKind kind,
                                                   const std::map<std::string, std::string>& renames) const {
  Source src = kind == SqlKind::kExpression ? ExpressionSource(sql) : IndexSource(sql);
  auto tree = kind == SqlKind::kExpression ? ParseExpression(src) : ParseIndex(src);
  if (!tree.ok()) return tree.status();
  auto toks = Scan(src);
  if (!toks.ok()) return toks.status();
  std::vector<Edit> edits;
  SLUICE_RETURN_IF_ERROR(ColumnRefEdits(src, *tree, *toks, renames, &edits));
  if (kind == SqlKind::kIndexDefinition) SLUICE_RETURN_IF_ERROR(IndexElementEdits(src, *tree, *toks, renames, &edits));
  return Apply(src, std::move(edits));
}

Result<std::string> PostgresDialect::RenameIndex(std::string_view definition, std::string_view from,
                                                 std::string_view to) const {
  Source src = IndexSource(definition);
  auto stmt = ParseIndex(src);
  if (!stmt.ok()) return stmt.status();
  if (stmt->value("idxname", "") != from) {
    return InvalidPlan("index definition \"" + std::string(definition) + "\" does not create index '" +
                       std::string(from) + "'");
  }
  auto toks = Scan(src);
  if (!toks.ok()) return toks.status();
  // ... INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON [ONLY] relation: the
  // name is found backwards from the relation, whose location the tree
  // gives (a name may itself be a word such as `if`).
  auto word = [&](size_t k) {
    return sql::Lower(src.text.substr((*toks)[k].start, (*toks)[k].end - (*toks)[k].start));
  };
  int rel = RelationLocation(*stmt);
  size_t r = TokenAt(*toks, rel);
  size_t i = r;
  if (i > 0 && word(i - 1) == "only") --i;
  bool found = rel >= 0 && i >= 2 && word(i - 1) == "on";
  if (found) {
    i -= 2;
    // U&"name" UESCAPE '!' ends in a string constant.
    if (i >= 2 && (*toks)[i - 1].token == kTokUescape) i -= 2;
    found = NameToken((*toks)[i]);
  }
  if (!found) {
    return Internal("cannot find the name of index \"" + std::string(from) + "\" in \"" + std::string(definition) +
                    "\"");
  }
  auto [range, next] = NameRange(*toks, i);
  return Apply(src, {{range.first, range.second, QuoteIfNeeded(to)}});
}

}  // namespace sluice::db
