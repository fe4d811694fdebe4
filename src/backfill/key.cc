#include "backfill/key.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace sluice::backfill {

namespace {
const char* TypeTag(db::Value::Type t) {
  switch (t) {
    case db::Value::Type::kNull: return "n";
    case db::Value::Type::kInt: return "i";
    case db::Value::Type::kReal: return "r";
    case db::Value::Type::kText: return "t";
    case db::Value::Type::kBlob: return "b";
  }
  return "t";
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// Throws std::invalid_argument on anything but an even number of hex digits.
std::string Unhex(const std::string& s) {
  if (s.size() % 2 != 0 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw std::invalid_argument("'" + s + "' is not hex");
  }
  std::string out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<char>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}
}  // namespace

std::string KeyToJson(const Key& key) {
  if (key.empty()) return "";
  nlohmann::json j = nlohmann::json::array();
  for (const auto& v : key) {
    // Text that is not valid UTF-8 (and blobs) is stored hex-encoded.
    std::string tag = TypeTag(v.type);
    std::string text = v.text;
    if (v.type == db::Value::Type::kBlob) {
      text = Hex(v.text);
    } else if (v.type == db::Value::Type::kText) {
      try {
        (void)nlohmann::json(text).dump();
      } catch (const nlohmann::json::exception&) {
        tag = "x";
        text = Hex(v.text);
      }
    }
    j.push_back({tag, text});
  }
  return j.dump();
}

Result<Key> KeyFromJson(const std::string& text) {
  Key out;
  if (text.empty()) return out;
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_array() || j.empty()) throw std::invalid_argument("not a non-empty array");
    for (const auto& e : j) {
      std::string tag = e.at(0).get<std::string>();
      std::string v = e.at(1).get<std::string>();
      if (e.size() != 2) throw std::invalid_argument("an element is not a [tag, text] pair");
      db::Value val;
      if (tag == "n") {
        val.type = db::Value::Type::kNull;
      } else if (tag == "i") {
        val.type = db::Value::Type::kInt;
      } else if (tag == "r") {
        val.type = db::Value::Type::kReal;
      } else if (tag == "t") {
        val.type = db::Value::Type::kText;
      } else if (tag == "b") {
        val.type = db::Value::Type::kBlob;
        v = Unhex(v);
      } else if (tag == "x") {
        val.type = db::Value::Type::kText;
        v = Unhex(v);
      } else {
        throw std::invalid_argument("unknown type tag '" + tag + "'");
      }
      val.text = v;
      out.push_back(std::move(val));
    }
  } catch (const std::exception& e) {
    return Internal(std::string("unreadable checkpoint key '") + text + "': " + e.what());
  }
  return out;
}

std::string KeyToDisplay(const Key& key) {
  std::string out = "(";
  for (size_t i = 0; i < key.size(); ++i) {
    if (i) out += ", ";
    if (key[i].is_null()) {
      out += "NULL";
    } else if (key[i].type == db::Value::Type::kInt || key[i].type == db::Value::Type::kReal) {
      out += key[i].text;
    } else {
      out += "'";
      for (char c : key[i].text) out += c == '\'' ? std::string("''") : std::string(1, c);
      out += "'";
    }
  }
  return out + ")";
}

std::string KeyRangeToDisplay(const Key& from, const Key& to) {
  std::string out = from.empty() ? "from the start" : "after " + KeyToDisplay(from);
  if (!to.empty()) out += " through " + KeyToDisplay(to);
  return out;
}

std::string KeyList(const db::Dialect& d, const std::vector<std::string>& key, const char* suffix) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) out += (i ? ", " : "") + d.Quote(key[i]) + suffix;
  return out;
}

std::string KeyCompare(const db::Dialect& d, const std::vector<std::string>& key, const char* op, int first_param) {
  if (key.size() == 1) return d.Quote(key[0]) + " " + op + " $" + std::to_string(first_param);
  std::string params;
  for (size_t i = 0; i < key.size(); ++i) params += (i ? ", $" : "$") + std::to_string(first_param + static_cast<int>(i));
  return "(" + KeyList(d, key) + ") " + op + " (" + params + ")";
}

}  // namespace sluice::backfill
