#include "verify/values.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/sql_text.h"

namespace sluice::verify {

namespace {

// True for "12", "-3", "12.50": PostgreSQL returns every value as text,
// so numbers are recognised by their form for display.
bool LooksNumeric(const std::string& s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  size_t digits = 0, dots = 0;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      ++digits;
    } else if (s[i] == '.') {
      ++dots;
    } else {
      return false;
    }
  }
  return digits > 0 && dots <= 1 && s.size() < 40 && !(s.size() > 1 && s[0] == '0' && s[1] != '.');
}

std::string CanonDouble(double d) {
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  char buf[64];
  for (int prec = 15; prec <= 17; ++prec) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

}  // namespace

std::string Show(const db::Value& v) {
  if (v.is_null()) return "NULL";
  if (v.type == db::Value::Type::kText) return LooksNumeric(v.text) ? v.text : sql::QuoteLiteral(v.text);
  if (v.type == db::Value::Type::kBlob) {
    static const char* kHex = "0123456789abcdef";
    std::string s = "x'";
    for (unsigned char c : v.text) {
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
    return s + "'";
  }
  return v.text;
}

std::string KeyText(const Key& k) {
  std::string s = "(";
  for (size_t i = 0; i < k.size(); ++i) s += (i ? ", " : "") + Show(k[i]);
  return s + ")";
}

std::string RangeText(const Bound& lo, const Bound& hi) {
  if (!lo && !hi) return "all keys";
  if (!lo) return "keys <= " + KeyText(*hi);
  if (!hi) return "keys > " + KeyText(*lo);
  return "keys > " + KeyText(*lo) + " and <= " + KeyText(*hi);
}

std::string Norm(const db::Value& v) {
  switch (v.type) {
    case db::Value::Type::kNull: return std::string("\x01NULL", 5);
    case db::Value::Type::kInt: return v.text;
    case db::Value::Type::kReal: return CanonDouble(std::strtod(v.text.c_str(), nullptr));
    case db::Value::Type::kBlob: return "\x02" + v.text;
    case db::Value::Type::kText: {
      // A plain decimal number: drop trailing fraction zeros ("12.50" ->
      // "12.5", "3.0" -> "3"), as numeric and integer renderings differ.
      const std::string& s = v.text;
      size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
      size_t digits = 0, dot = std::string::npos;
      for (size_t k = i; k < s.size(); ++k) {
        if (s[k] >= '0' && s[k] <= '9') {
          ++digits;
        } else if (s[k] == '.' && dot == std::string::npos) {
          dot = k;
        } else {
          return s;
        }
      }
      if (digits == 0 || dot == std::string::npos) return s;
      std::string t = s;
      while (t.back() == '0') t.pop_back();
      if (t.back() == '.') t.pop_back();
      return t;
    }
  }
  return v.text;
}

std::string NormKey(const Key& k) {
  std::string s;
  for (const auto& v : k) s += Norm(v) + '\x1f';
  return s;
}

std::string Exact(const db::Value& v) {
  // The storage class as a tag byte, then the text or bytes unchanged.
  return std::string(1, static_cast<char>('0' + static_cast<int>(v.type))) + v.text;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string Aliased(const std::vector<std::string>& v, const std::string& prefix) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i] + " AS " + prefix + std::to_string(i);
  return s;
}

std::string Compare(const std::vector<std::string>& exprs, const char* op, int first) {
  if (exprs.size() == 1) return exprs[0] + " " + op + " $" + std::to_string(first);
  std::string l, r;
  for (size_t i = 0; i < exprs.size(); ++i) {
    l += (i ? ", " : "") + exprs[i];
    r += (i ? ", $" : "$") + std::to_string(first + static_cast<int>(i));
  }
  return "(" + l + ") " + op + " (" + r + ")";
}

std::string Fraction(double f) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.4f%%", f * 100);
  return buf;
}

const db::TableMapping* FindLogical(const db::VersionSpec& v, const std::string& logical) {
  for (const auto& m : v.tables) {
    if (m.logical == logical) return &m;
  }
  return nullptr;
}

}  // namespace sluice::verify
