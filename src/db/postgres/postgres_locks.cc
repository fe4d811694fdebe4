// The lock each statement sluice runs takes on PostgreSQL (Dialect::LockOf,
// shown by `sluice estimate` and the runbook), and the catalog's row and
// size estimates.
//
// The mode is decided by the command the statement runs (its text, with
// comments and dollar-quoted bodies removed), since that is what the server
// decides it by, and it also covers the statements recorded at start (a
// RecordedSqlStep carries no step kind). Table-level modes are those of the
// PostgreSQL 15 manual, "Explicit Locking"; a statement made of several
// commands reports the strongest. What it is taken on comes from the step
// when the step names a table, otherwise from the text.
#include <array>
#include <cctype>

#include "common/sql_text.h"
#include "db/postgres/postgres_dialect.h"

namespace sluice::db {

namespace {

// Table-level modes, weakest first.
constexpr std::array<const char*, 9> kModes = {
    "none on tables (catalog only)", "ACCESS SHARE",  "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
    "SHARE",                         "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE", "unknown"};

// Upper-cased text with -- comments, /* */ comments, '...' literals and
// $tag$ bodies blanked, so only the commands' own words remain.
std::string Skeleton(std::string_view sql) {
  std::string out;
  for (size_t i = 0; i < sql.size();) {
    if (sql.compare(i, 2, "--") == 0) {
      while (i < sql.size() && sql[i] != '\n') ++i;
    } else if (sql.compare(i, 2, "/*") == 0) {
      size_t e = sql.find("*/", i + 2);
      i = e == std::string_view::npos ? sql.size() : e + 2;
    } else if (sql[i] == '\'') {
      size_t e = i + 1;
      while (e < sql.size() && !(sql[e] == '\'' && (e + 1 >= sql.size() || sql[e + 1] != '\''))) {
        e += sql[e] == '\'' ? 2 : 1;
      }
      i = e + 1;
      out += "''";
    } else if (sql[i] == '$') {
      size_t e = i + 1;
      while (e < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[e])) || sql[e] == '_')) ++e;
      if (e < sql.size() && sql[e] == '$') {
        const std::string tag(sql.substr(i, e - i + 1));
        size_t close = sql.find(tag, e + 1);
        i = close == std::string_view::npos ? sql.size() : close + tag.size();
        out += " $BODY$ ";
      } else {
        out += sql[i++];
      }
    } else {
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
    }
  }
  return out;
}

bool Starts(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool Has(const std::string& s, std::string_view p) { return s.find(p) != std::string::npos; }

// The mode (index into kModes) one command takes; `note` explains a brief
// or unusual hold.
int ModeOf(const std::string& c, std::string* note) {
  if (c.empty() || Starts(c, "SET ") || Starts(c, "RESET ") || Starts(c, "SELECT SET_CONFIG")) return 0;
  if (Starts(c, "SELECT ")) return 1;
  if (Starts(c, "UPDATE ") || Starts(c, "INSERT ") || Starts(c, "DELETE ")) {
    *note = "and row locks on the rows it writes";
    return 2;
  }
  if (Starts(c, "LOCK ")) {
    for (int m = 7; m >= 1; --m) {
      if (Has(c, std::string(" IN ") + kModes[m] + " MODE")) return m;
    }
    return 7;
  }
  const bool concurrently = Has(c, " CONCURRENTLY");
  if (Starts(c, "CREATE INDEX") || Starts(c, "CREATE UNIQUE INDEX")) {
    if (concurrently) {
      *note = "waits for transactions older than it; writes go on";
      return 3;
    }
    if (Has(c, " ON ONLY ")) {
      *note = "the partitioned parent only: no rows scanned";
      return 4;
    }
    *note = "blocks writes while it builds";
    return 4;
  }
  if (Starts(c, "DROP INDEX")) return concurrently ? 3 : 7;
  if (Starts(c, "ALTER INDEX")) {
    if (Has(c, " ATTACH PARTITION ")) return 3;
    return 3;  // RENAME: SHARE UPDATE EXCLUSIVE since PostgreSQL 12
  }
  if (Starts(c, "REINDEX")) return concurrently ? 3 : 4;
  if (Starts(c, "CREATE TRIGGER") || Starts(c, "CREATE OR REPLACE TRIGGER") || Starts(c, "CREATE CONSTRAINT TRIGGER")) {
    *note = "briefly: catalog only";
    return 5;
  }
  if (Starts(c, "DROP TRIGGER")) {
    *note = "briefly: catalog only";
    return 7;
  }
  if (Starts(c, "COMMENT ON")) return 3;
  if (Starts(c, "DROP TABLE")) return 7;
  if (Starts(c, "TRUNCATE")) return 7;
  if (Starts(c, "CREATE TABLE")) {
    if (Has(c, " REFERENCES ")) {
      *note = "on the referenced tables, briefly";
      return 5;
    }
    return 0;
  }
  if (Starts(c, "ALTER TABLE")) {
    if (Has(c, " VALIDATE CONSTRAINT ")) {
      *note = "scans the table; reads and writes go on";
      return 3;
    }
    if (Has(c, " ATTACH PARTITION ") || Has(c, " DETACH PARTITION ")) return 3;
    if (Has(c, " SET STATISTICS") || Has(c, " CLUSTER ON") || Has(c, " SET WITHOUT CLUSTER")) return 3;
    if (Has(c, " FOREIGN KEY") && Has(c, " ADD CONSTRAINT ") && !Has(c, " DROP ") && !Has(c, " RENAME ")) {
      *note = Has(c, " NOT VALID") ? "briefly, on both tables: catalog only" : "on both tables; scans the table";
      return 5;
    }
    if (Has(c, " SET NOT NULL")) {
      *note = "scans the table unless a valid CHECK (col IS NOT NULL) proves it";
      return 7;
    }
    if (Has(c, " ALTER COLUMN ") && Has(c, " TYPE ")) {
      *note = "rewrites the table";
      return 7;
    }
    if ((Has(c, " ADD CONSTRAINT ") || Has(c, " ADD CHECK")) && !Has(c, " NOT VALID") && !Has(c, " USING INDEX")) {
      *note = "scans the table to validate it";
      return 7;
    }
    *note = "briefly: catalog only";
    return 7;
  }
  if (Starts(c, "CREATE SCHEMA") || Starts(c, "DROP SCHEMA") || Starts(c, "CREATE FUNCTION") ||
      Starts(c, "CREATE OR REPLACE FUNCTION") || Starts(c, "DROP FUNCTION") || Starts(c, "ALTER FUNCTION") ||
      Starts(c, "GRANT ") || Starts(c, "REVOKE ") || Starts(c, "CREATE TYPE") || Starts(c, "ALTER SCHEMA") ||
      Starts(c, "CREATE SEQUENCE") || Starts(c, "ALTER SEQUENCE")) {
    return 0;
  }
  if (Starts(c, "CREATE VIEW") || Starts(c, "CREATE OR REPLACE VIEW") || Starts(c, "DROP VIEW") ||
      Starts(c, "ALTER VIEW")) {
    *note = "on the view only, briefly; its tables are not locked";
    return 7;
  }
  if (Starts(c, "DO ")) {
    *note = "a DO block: its commands decide";
    return 8;
  }
  return 8;
}

// The identifier after `keyword` in `sql` (as written, quotes kept), "".
std::string NameAfter(std::string_view sql, const std::string& upper, std::string_view keyword) {
  size_t p = upper.find(keyword);
  if (p == std::string::npos || p + keyword.size() > sql.size()) return {};
  size_t i = p + keyword.size();
  while (i < sql.size() && sql[i] == ' ') ++i;
  size_t e = i;
  bool quoted = false;
  while (e < sql.size()) {
    char ch = sql[e];
    if (ch == '"') quoted = !quoted;
    if (!quoted && (ch == ' ' || ch == '(' || ch == '\n' || ch == ';' || ch == ',')) break;
    ++e;
  }
  return std::string(sql.substr(i, e - i));
}

// The table a step names, qualified, or "".
std::string StepTable(const Step& step, const PostgresDialect& d) {
  return std::visit(
      [&](const auto& b) -> std::string {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, CreateIndexStep>) {
          return "table " + d.Table(b.index.table);
        } else if constexpr (std::is_same_v<T, CreateDualWriteStep> || std::is_same_v<T, DropDualWriteStep>) {
          return "table " + d.Table(b.table.physical);
        } else if constexpr (std::is_same_v<T, RenameTableStep>) {
          return "table " + d.Table(b.from);
        } else if constexpr (requires { std::string(b.table); }) {
          return "table " + d.Table(b.table);
        } else {
          return "";
        }
      },
      step.body);
}

}  // namespace

LockInfo PostgresDialect::LockOf(const Step& step, const Statement& st) const {
  const std::string skel = Skeleton(st.sql);
  // One command per ';' at the top level (bodies are blanked already).
  int best = -1;
  std::string best_note, best_cmd;
  size_t start = 0;
  while (start <= skel.size()) {
    size_t end = skel.find(';', start);
    if (end == std::string::npos) end = skel.size();
    std::string cmd = skel.substr(start, end - start);
    size_t b = cmd.find_first_not_of(" \t\r\n");
    cmd = b == std::string::npos ? "" : cmd.substr(b);
    start = end + 1;
    if (cmd.empty()) continue;
    std::string note;
    int m = ModeOf(cmd, &note);
    // "unknown" only wins when nothing else is known.
    const int rank = m == 8 ? -1 : m;
    const int best_rank = best == 8 ? -1 : best;
    if (best < 0 || rank > best_rank) {
      best = m;
      best_note = note;
      best_cmd = cmd;
    }
  }
  if (best < 0) return {kModes[0], ""};
  std::string upper = st.sql;  // same length as the text: positions carry over
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  // sluice's own DO blocks only drop and recreate the version schemas' views.
  if (best == 8 && Starts(best_cmd, "DO ") && (Has(upper, " VIEW ") || Has(upper, " SCHEMA "))) {
    return {std::string(kModes[7]) + " (on the views it drops and recreates, briefly; tables are not locked)",
            "views of sluice's version schemas"};
  }
  LockInfo out;
  out.mode = kModes[best];
  if (!best_note.empty()) out.mode += " (" + best_note + ")";
  out.on = StepTable(step, *this);
  if (out.on.empty() && best > 0) {
    // From the text: the relation the command names.
    for (const char* kw : {"ALTER TABLE ONLY ", "ALTER TABLE IF EXISTS ", "ALTER TABLE ", " ON ONLY ", " ON ",
                           "DROP TABLE IF EXISTS ", "DROP TABLE ", "UPDATE ", "INSERT INTO ", "DELETE FROM ",
                           "DROP VIEW IF EXISTS ", "DROP VIEW ", "CREATE OR REPLACE VIEW ", "CREATE VIEW ",
                           "DROP INDEX CONCURRENTLY IF EXISTS ", "DROP INDEX IF EXISTS ", "DROP INDEX ", "LOCK TABLE "}) {
      std::string name = NameAfter(st.sql, upper, kw);
      if (!name.empty()) {
        const bool view = std::string_view(kw).find("VIEW") != std::string_view::npos;
        const bool index = std::string_view(kw).find("INDEX") != std::string_view::npos;
        out.on = std::string(view ? "view " : index ? "index " : "table ") + name;
        break;
      }
    }
  }
  return out;
}

std::string PostgresDialect::EstimatedRowsSql(std::string_view table) const {
  // reltuples is -1 before the first VACUUM / ANALYZE (then rows are counted).
  return "SELECT coalesce((SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(" +
         sql::QuoteLiteral(Table(table)) + ")), -1)";
}

std::string PostgresDialect::TableBytesSql(std::string_view table) const {
  return "SELECT pg_total_relation_size(to_regclass(" + sql::QuoteLiteral(Table(table)) + "))";
}

}  // namespace sluice::db
