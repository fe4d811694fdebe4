// Conventions every verb of the sluice command shares: how a failure is
// printed, "did you mean", the terminal's width, and the help-derived
// artefacts (global options in each verb's help, bash completion, the man
// page), all generated from the one CLI11 definition in main.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace sluice::cli {

// Baked in at configure time (build_info.cc.in): the project version and
// the git commit it was built from ("unknown" outside a checkout).
extern const char* const kVersion;
extern const char* const kCommit;

// The one place that prints a failure's first line: `sluice: error: REASON`.
// A reason that already starts with "error: " is not doubled. Returns code.
int PrintError(std::string_view reason, int code);

// Edit distance (bytes; a swap of neighbours counts one).
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` when it is close enough to be a likely
// typo (distance at most 2, or at most a third of the word), else "".
std::string Suggest(std::string_view word, const std::vector<std::string>& candidates);

// The first word of argv that is neither an option nor an option's value
// (the verb the user meant), "" if none.
std::string FirstWord(const CLI::App& app, int argc, const char* const* argv);

// Adds the global options' help to every verb's --help (as a footer).
void AddGlobalOptionsFooter(CLI::App& app);

// Columns of the terminal on stdout (TIOCGWINSZ, else $COLUMNS, else 80).
int TerminalColumns();

// Hidden generators: `sluice __bash-completion` and `sluice __man`.
std::string BashCompletion(const CLI::App& app);
std::string ManPage(const CLI::App& app);

}  // namespace sluice::cli
