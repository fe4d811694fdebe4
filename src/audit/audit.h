// The contract audit (`sluice audit`, issue 12): evidence that nobody still
// reads or writes what `complete` will drop, gathered before it drops it.
//
//   OldObjects        what is audited: the columns, tables and old-version
//                     schema whose *names* disappear at complete, derived
//                     from the migration's recorded version description
//   ResolveStatement  a statement's table.column references (libpg_query;
//                     aliases, CTEs, subqueries, `*` expanded from a catalog,
//                     INSERT column lists, UPDATE SET)
//   Classify          which references touch an old object, and how
//   ScanCode          `--code DIR`: word-boundary search of a source tree
//   Report            findings + coverage, as JSON (stored in the `audits`
//                     state table), text and Markdown
//
// Everything here is pure (no database): the engine (src/engine/
// audit_run.cc) samples the sources and hands their rows in. Resolution is
// an over-approximation where the text alone cannot decide (an unqualified
// column is matched against every table of the statement that has it): a
// false "reader" blocks the gate, a missed one never passes silently
// because of the resolver's guesses.
//
// Thread-safety: pure, reentrant functions and value types.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "db/change.h"
#include "sluice/status.h"

namespace sluice::audit {

// Something complete drops or makes unreachable.
struct OldObject {
  std::string kind;    // column | table | version
  std::string schema;  // the migrated schema (version: the version schema)
  std::string table;   // "" for a version
  std::string column;  // "" unless kind == column
  std::string fate;    // "dropped", "renamed to x", "retired"
  // "orders.total", "orders", or the version schema "public_v1".
  std::string Name() const;
};

// The objects `complete` removes, from the recorded version description:
// old columns no column of the new version keeps under the same name
// (dropped, or renamed: the old name goes), dropped and renamed tables, and
// the previous version's schema (`<schema>_<previous>`) when `versioned`.
// A column replaced by a copy under the same name (a type change) is not
// listed: statements naming it keep working after complete.
std::vector<OldObject> OldObjects(const db::VersionSpec& version, const std::string& schema, bool versioned);

// Relations the resolver knows: schema -> relation -> columns in order.
struct Catalog {
  std::string base_schema;  // the migrated schema (`SET sluice.version = v` means <base>_<v>)
  std::map<std::string, std::map<std::string, std::vector<std::string>>> relations;
  const std::vector<std::string>* Columns(const std::string& schema, const std::string& relation) const;
};

// One table (column "") or column reference of a statement.
struct Reference {
  std::string schema, relation, column;
  std::string kind;  // read | write | star (an implicit read through `*`)
  bool operator<(const Reference& o) const;
};

// A statement's references, resolving unqualified relations along
// `search_path` (the first schema holding the name). CTE names are not
// relations. A `SET search_path` / `SET sluice.version` yields a
// reference to each schema it names as relation "" (a session choosing a
// version). Fails (kInvalidArgument) when libpg_query cannot parse it.
Result<std::vector<Reference>> ResolveStatement(const std::string& sql, const Catalog& catalog,
                                                const std::vector<std::string>& search_path);

// Whether a statement is sluice's own (its dual-write, backfill,
// verification, state tables, this audit): ignored, never a finding.
bool IsSluiceStatement(const std::string& sql, const std::string& state_schema);

// The old objects a statement's references touch, each with how: "direct"
// (the base table or column) or "old version" (through the previous
// version's views), and the kinds seen ("read", "write", "star", joined by
// ','). References through the new version or the live alias are fine.
struct Touch {
  std::string object;  // OldObject::Name()
  std::string via;     // direct | old version
  std::string kinds;
};
std::vector<Touch> Classify(const std::vector<Reference>& refs, const std::vector<OldObject>& objects);

// One reader or writer of an old object.
struct Finding {
  std::string source;  // pgaudit | pg_stat_statements | pg_stat_activity | code | queries | brownout
  std::string object;
  std::string via;     // direct | old version
  std::string kinds;   // read,write,star
  std::string role, application, client;
  std::string statement;  // SQL text, or the matching source line
  std::string location;   // file:line (code scan)
  int64_t calls = 0;      // calls in the window (pg_stat_statements)
  std::string first_seen, last_seen;
};

// What one source saw, and what it could not.
struct Coverage {
  std::string source;
  bool available = false;
  // Counts toward a sufficient audit: a runtime source that saw the whole
  // interval since its baseline without gaps.
  bool complete = false;
  std::string detail;                // what it covered, or the advice to enable it
  std::vector<std::string> gaps;     // evictions, resets, baseline only, ...
};

// Matches of a code scan (file:line and the line).
struct CodeMatch {
  std::string file;
  int line = 0;
  std::string object;
  std::string text;
};

// `--code DIR`: files under `dir` with a source extension (.py .rb .go .ts
// .tsx .js .jsx .java .kt .sql .yaml .yml .erb .cs .php .scala .rs .ex .exs)
// whose lines name an old table or column as a whole word (letters, digits
// and '_' delimit), in snake_case or its camelCase / PascalCase spelling,
// quoted or not. Sorted by file and line. kNotFound when `dir` is not a
// directory.
Result<std::vector<CodeMatch>> ScanCode(const std::string& dir, const std::vector<OldObject>& objects);
// The spellings ScanCode looks for: "unit_price" -> {"unit_price",
// "unitPrice", "UnitPrice"}.
std::vector<std::string> Spellings(const std::string& name);

struct Report {
  std::string migration;
  std::string at;            // when the audit ran (ISO-8601 UTC)
  std::string window_start;  // the observation window it belongs to
  std::string since;         // start of the interval the statistics cover ("" = none)
  std::vector<OldObject> objects;
  std::vector<Finding> findings;
  std::vector<Coverage> coverage;
  // pg_stat_statements baseline for the next audit:
  // "dbid:userid:queryid" -> calls, plus its dealloc / stats_reset.
  std::map<std::string, int64_t> snapshot;
  int64_t dealloc = -1;
  std::string stats_reset;
  // The plan's longest known job period (gates.complete.observation_seconds):
  // a window shorter than it cannot have seen every job run.
  int64_t required_window_seconds = 0;

  // Seconds from window_start to at (-1 when either does not parse).
  int64_t WindowSeconds() const;
  bool window_long_enough() const;

  bool blocking() const { return !findings.empty(); }
  // Some source covered the interval completely, over a window at least
  // as long as the plan's longest known job period.
  bool coverage_sufficient() const;
  // One line: "2 reader(s)/writer(s) of old objects: ..." or "clean".
  std::string Summary() const;
  std::string ToJson() const;
  std::string ToText() const;
  std::string ToMarkdown() const;
};
Result<Report> ReportFromJson(const std::string& json);

}  // namespace sluice::audit
