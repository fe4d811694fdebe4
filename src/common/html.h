// Escaping text for HTML, shared by every HTML sluice writes (the status
// page of `sluice serve`, the handoff documents' HTML form). Header-only:
// one small function, and its users need no other part of common.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// `text` safe inside an element and inside an attribute value quoted with
// either " or ' (& < > " ' become entities; everything else, UTF-8
// included, is kept as is).
inline std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace sluice
