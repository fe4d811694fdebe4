// Text for one cell of a Markdown table, shared by every Markdown sluice
// writes (the handoff documents, `sluice audit --markdown`, `sluice fleet
// report`). Header-only, like common/html.h.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// `text` kept on one line inside a table cell: a pipe is escaped (it would
// end the cell) and a line break becomes a space.
inline std::string MarkdownCell(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace sluice
