// The Markdown subset the handoff renderers write, and its HTML form.
// Hand-written because the subset is small and fixed; a Debian Markdown
// library (libcmark-gfm-dev) would replace it if the documents grow.
#include <algorithm>

#include "common/html.h"
#include "common/markdown.h"
#include "handoff/handoff.h"

namespace sluice::handoff {

std::string Cell(const std::string& text) { return MarkdownCell(text); }

std::string Fenced(const std::string& code, const std::string& lang) {
  size_t longest = 0, run = 0;
  for (char c : code) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(std::max<size_t>(3, longest + 1), '`');
  std::string body = code;
  if (body.empty() || body.back() != '\n') body += '\n';
  return fence + lang + "\n" + body + fence + "\n";
}

namespace {

std::string Escape(const std::string& s) { return HtmlEscape(s); }

// `code`, **bold**, _emphasis_ and \| inside one line of text.
std::string Inline(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '|') {
      out += '|';
      i += 2;
    } else if (s[i] == '`') {
      size_t end = s.find('`', i + 1);
      if (end == std::string::npos) {
        out += Escape(s.substr(i));
        break;
      }
      out += "<code>" + Escape(s.substr(i + 1, end - i - 1)) + "</code>";
      i = end + 1;
    } else if (s.compare(i, 2, "**") == 0) {
      size_t end = s.find("**", i + 2);
      if (end == std::string::npos) {
        out += Escape(s.substr(i));
        break;
      }
      out += "<strong>" + Inline(s.substr(i + 2, end - i - 2)) + "</strong>";
      i = end + 2;
    } else {
      out += Escape(std::string(1, s[i]));
      ++i;
    }
  }
  return out;
}

// The cells of a pipe-table row (escaped pipes stay inside their cell).
std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '\\' && i + 1 < row.size() && row[i + 1] == '|') {
      cur += "\\|";
      ++i;
    } else if (row[i] == '|') {
      size_t b = cur.find_first_not_of(' '), e = cur.find_last_not_of(' ');
      out.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
      cur.clear();
    } else {
      cur += row[i];
    }
  }
  return out;
}

}  // namespace

std::string MarkdownToHtml(const std::string& markdown, const std::string& title) {
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < markdown.size();) {
    size_t nl = markdown.find('\n', pos);
    lines.push_back(markdown.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? markdown.size() : nl + 1;
  }
  std::string body;
  std::string list;  // "ul" while inside a list
  auto close_list = [&] {
    if (!list.empty()) body += "</" + list + ">\n";
    list.clear();
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.rfind("```", 0) == 0) {
      close_list();
      size_t n = l.find_first_not_of('`');
      std::string fence = l.substr(0, n == std::string::npos ? l.size() : n);
      std::string code;
      for (++i; i < lines.size() && lines[i] != fence; ++i) code += lines[i] + "\n";
      body += "<pre><code>" + Escape(code) + "</code></pre>\n";
      continue;
    }
    if (l.rfind("#", 0) == 0) {
      close_list();
      size_t level = l.find_first_not_of('#');
      if (level != std::string::npos && level <= 6 && l[level] == ' ') {
        std::string h = "h" + std::to_string(level);
        body += "<" + h + ">" + Inline(l.substr(level + 1)) + "</" + h + ">\n";
        continue;
      }
    }
    if (l.rfind("|", 0) == 0) {
      close_list();
      body += "<table>\n";
      bool header = true;
      for (; i < lines.size() && lines[i].rfind("|", 0) == 0; ++i) {
        if (lines[i].rfind("|---", 0) == 0) continue;
        body += "<tr>";
        for (const auto& c : Cells(lines[i])) body += (header ? "<th>" : "<td>") + Inline(c) + (header ? "</th>" : "</td>");
        body += "</tr>\n";
        header = false;
      }
      --i;
      body += "</table>\n";
      continue;
    }
    if (l.rfind("- ", 0) == 0) {
      if (list.empty()) body += "<ul>\n";
      list = "ul";
      std::string item = l.substr(2);
      if (item.rfind("[x] ", 0) == 0 || item.rfind("[ ] ", 0) == 0) {
        body += std::string("<li><input type=\"checkbox\" disabled") + (item[1] == 'x' ? " checked" : "") + "> " +
                Inline(item.substr(4)) + "</li>\n";
      } else {
        body += "<li>" + Inline(item) + "</li>\n";
      }
      continue;
    }
    close_list();
    if (l.empty()) continue;
    body += "<p>" + Inline(l) + "</p>\n";
  }
  close_list();
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + Escape(title) +
         "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}"
         "pre{background:#f4f4f4;padding:6px;overflow-x:auto}</style></head>\n<body>\n" +
         body + "</body></html>\n";
}

}  // namespace sluice::handoff
