#include "cli/conventions.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace sluice::cli {

namespace {

std::vector<const CLI::App*> Verbs(const CLI::App& app, bool with_hidden = false) {
  std::vector<const CLI::App*> out;
  for (const CLI::App* sub : const_cast<CLI::App&>(app).get_subcommands([](CLI::App*) { return true; })) {
    if (!with_hidden && sub->get_group().empty()) continue;  // hidden (the generators)
    out.push_back(sub);
  }
  return out;
}

// Named options of `app` (not positionals, not --help, not --version).
std::vector<const CLI::Option*> NamedOptions(const CLI::App& app) {
  return app.get_options([&](const CLI::Option* o) {
    return o->nonpositional() && o != app.get_help_ptr() && o != app.get_help_all_ptr() && !o->get_group().empty() &&
           !o->check_lname("version");
  });
}

std::string LongName(const CLI::Option* o) {
  if (!o->get_lnames().empty()) return "--" + o->get_lnames().front();
  if (!o->get_snames().empty()) return "-" + o->get_snames().front();
  return o->get_name();
}

bool TakesValue(const CLI::Option* o) { return o->get_type_size_max() > 0 && !o->get_type_name().empty(); }

// One help line: "  --db TEXT            what it does (default: x)".
std::string HelpLine(const CLI::Option* o) {
  std::string names = LongName(o) + (TakesValue(o) ? " " + o->get_type_name() : "");
  std::string desc = o->get_description();
  if (!o->get_default_str().empty()) desc += " [" + o->get_default_str() + "]";
  return fmt::format("  {:<22}{}\n", names, desc);
}

// roff: escape backslashes and hyphens, keep control characters off line starts.
std::string Roff(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

int PrintError(std::string_view reason, int code) {
  for (std::string_view prefix : {"sluice: error: ", "error: "}) {
    if (reason.substr(0, prefix.size()) == prefix) reason.remove_prefix(prefix.size());
  }
  std::fflush(stdout);
  // Located errors ("plan.yaml:2:31: error: ...", one per line, as lint and
  // start report a plan's errors) get one first line naming the file and
  // the count, like lint's, instead of a doubled "error:".
  auto located = [](std::string_view line) -> std::string_view {  // the file, or ""
    size_t e = line.find(": error: ");
    if (e == std::string_view::npos) return {};
    std::string_view loc = line.substr(0, e);
    for (int part = 0; part < 2; ++part) {
      size_t colon = loc.rfind(':');
      if (colon == std::string_view::npos || colon + 1 == loc.size() ||
          loc.find_first_not_of("0123456789", colon + 1) != std::string_view::npos) {
        return {};
      }
      loc = loc.substr(0, colon);
    }
    return loc;
  };
  std::string_view first = reason.substr(0, reason.find('\n'));
  std::string_view file = located(first);
  if (!file.empty()) {
    size_t n = 0;
    for (size_t pos = 0; pos < reason.size();) {
      size_t end = reason.find('\n', pos);
      if (end == std::string_view::npos) end = reason.size();
      if (!located(reason.substr(pos, end - pos)).empty()) ++n;
      pos = end + 1;
    }
    fmt::print(stderr, "sluice: error: {} has {} error(s):\n{}\n", file, n, reason);
    return code;
  }
  fmt::print(stderr, "sluice: error: {}\n", reason);
  return code;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insert, delete, substitute, swap neighbours.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string Suggest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    // A prefix of a verb ("comp") is as good as a typo.
    if (word.size() >= 3 && c.compare(0, word.size(), word) == 0) d = std::min<size_t>(d, 1);
    if (d < best_d) best_d = d, best = c;
  }
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit && best_d < word.size() ? best : "";
}

std::string FirstWord(const CLI::App& app, int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (a.empty() || a[0] != '-') return std::string(a);
    if (a.find('=') != std::string_view::npos) continue;
    const CLI::Option* o = app.get_option_no_throw(std::string(a));
    if (o != nullptr && TakesValue(o)) ++i;
  }
  return "";
}

void AddGlobalOptionsFooter(CLI::App& app) {
  std::string text = "Global options (before or after the verb):\n";
  for (const CLI::Option* o : NamedOptions(app)) text += HelpLine(o);
  for (const CLI::App* sub : Verbs(app)) const_cast<CLI::App*>(sub)->footer(text);
}

int TerminalColumns() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    int n = std::atoi(c);
    if (n > 0) return n;
  }
  return 80;
}

std::string BashCompletion(const CLI::App& app) {
  std::vector<std::string> verbs, globals, global_values;
  for (const CLI::App* sub : Verbs(app)) verbs.push_back(sub->get_name());
  for (const CLI::Option* o : NamedOptions(app)) {
    globals.push_back(LongName(o));
    if (TakesValue(o)) global_values.push_back(LongName(o));
  }
  std::string cases;
  std::vector<std::string> value_opts = global_values;
  for (const CLI::App* sub : Verbs(app)) {
    std::vector<std::string> opts;
    for (const CLI::Option* o : NamedOptions(*sub)) {
      opts.push_back(LongName(o));
      if (TakesValue(o) && std::find(value_opts.begin(), value_opts.end(), LongName(o)) == value_opts.end()) {
        value_opts.push_back(LongName(o));
      }
    }
    cases += fmt::format("    {}) opts=\"{}\" ;;\n", sub->get_name(), Join(opts, " "));
  }
  return fmt::format(R"(# bash completion for sluice {version}. Generated by `sluice __bash-completion`
# from the same definitions as `sluice --help`; do not edit.
_sluice() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  local verbs="{verbs}"
  local globals="{globals} --help"
  local verb="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case " $verbs " in *" ${{COMP_WORDS[i]}} "*) verb=${{COMP_WORDS[i]}}; break ;; esac
  done
  case "$prev" in
    {value_opts}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  local opts=""
  case "$verb" in
{cases}    "") COMPREPLY=($(compgen -W "$verbs $globals --version" -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts $globals" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -F _sluice sluice
)",
                     fmt::arg("version", kVersion), fmt::arg("verbs", Join(verbs, " ")),
                     fmt::arg("globals", Join(globals, " ")), fmt::arg("value_opts", Join(value_opts, "|")),
                     fmt::arg("cases", cases));
}

std::string ManPage(const CLI::App& app) {
  std::string out = fmt::format(".\\\" Generated by `sluice __man` from the definitions behind `sluice --help`.\n"
                                ".TH SLUICE 1 \"\" \"sluice {}\" \"User Commands\"\n",
                                kVersion);
  std::string desc = app.get_description();
  out += ".SH NAME\nsluice \\- zero\\-downtime schema and data migrations for SQLite and PostgreSQL\n";
  out += ".SH SYNOPSIS\n.B sluice\n[\\fIGLOBAL OPTIONS\\fR] \\fIVERB\\fR [\\fIVERB OPTIONS\\fR] [\\fIARGUMENTS\\fR]\n";
  out += ".br\n.B sluice\n\\-\\-version\n";
  out += ".SH DESCRIPTION\n" + Roff(desc) + "\n";
  auto options = [&](const CLI::App& a) {
    std::string s;
    for (const CLI::Option* o : a.get_options([&](const CLI::Option* o) {
           return o != a.get_help_ptr() && o != a.get_help_all_ptr() && (!o->get_group().empty() || o->get_positional());
         })) {
      std::string name = o->get_positional() ? "\\fI" + o->get_name() + "\\fR"
                                              : "\\fB" + Roff(LongName(o)) + "\\fR" +
                                                    (TakesValue(o) ? " \\fI" + o->get_type_name() + "\\fR" : "");
      std::string d = o->get_description();
      if (!o->get_default_str().empty()) d += " (default: " + o->get_default_str() + ")";
      if (o->get_required()) d += " (required)";
      s += ".TP\n" + name + "\n" + Roff(d) + "\n";
    }
    return s;
  };
  out += ".SH GLOBAL OPTIONS\nAccepted before or after the verb.\n" + options(app);
  out += ".SH VERBS\n";
  for (const CLI::App* sub : Verbs(app)) {
    out += ".SS " + sub->get_name() + "\n" + Roff(sub->get_description()) + "\n" + options(*sub);
  }
  out += R"(.SH EXIT STATUS
.TP
0
Success.
.TP
1
Fix the input the message names (plan errors, unknown migration or file).
.TP
2
Fix the command line (unknown verb or option, malformed URL, SQL the database rejects as malformed).
.TP
3
Look at the evidence: verification or diff found differences.
.TP
4
Look at the evidence: watch breached an abort criterion and switched reads back.
.TP
5
Run the same command again later (transient failure).
.TP
6
Grant a privilege (or make the SQLite file writable).
.TP
7
An operator must act (a gate refused or blocks, wrong phase, locks not obtained, data refuses).
.TP
130
Interrupted.
.SH ENVIRONMENT
.TP
.B SLUICE_DB
The database URL when \-\-db is not given.
.TP
.B PGHOST, PGDATABASE, PGUSER, PGPASSWORD, ...
libpq's variables, for whatever the URL leaves out.
.SH SEE ALSO
The documentation installed with sluice (docs/cli.md, docs/plan\-format.md, docs/how\-it\-works.md).
)";
  return out;
}

}  // namespace sluice::cli
