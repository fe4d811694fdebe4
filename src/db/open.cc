// The one place that knows which adapters exist: it turns a database URL into
// an adapter. Everything else sees only db::Adapter.
#include <cstdlib>
#include <mutex>

#include "common/sql_text.h"
#include "db/adapter.h"
#include "db/postgres/postgres_adapter.h"
#include "db/sqlite/sqlite_adapter.h"

namespace sluice::db {
namespace {

bool StartsWith(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool EndsWith(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::mutex wrap_mu;
AdapterWrapFn& WrapFn() {
  static AdapterWrapFn* fn = new AdapterWrapFn();  // never destroyed: usable at exit
  return *fn;
}

Result<std::unique_ptr<Adapter>> Open(const std::string& url, const OpenOptions& options);

}  // namespace

void TEST_SetAdapterWrapper(AdapterWrapFn wrap) {
  std::lock_guard<std::mutex> l(wrap_mu);
  WrapFn() = std::move(wrap);
}

Result<std::unique_ptr<Adapter>> OpenAdapter(const std::string& url, const OpenOptions& options) {
  auto a = Open(url, options);
  if (!a.ok()) return a;
  AdapterWrapFn wrap;
  {
    std::lock_guard<std::mutex> l(wrap_mu);
    wrap = WrapFn();
  }
  if (!wrap) return a;
  return wrap(std::move(*a));
}

namespace {

Result<std::unique_ptr<Adapter>> Open(const std::string& url, const OpenOptions& options) {
  if (StartsWith(url, "sqlite:")) {
    std::string rest = url.substr(7);
    std::string path;
    if (StartsWith(rest, "///")) {
      path = rest.substr(2);  // sqlite:///abs/path -> /abs/path
    } else if (StartsWith(rest, "//")) {
      return InvalidArgument("SQLite URL '" + url +
                             "' is ambiguous: use sqlite:relative/path.db or sqlite:///absolute/path.db");
    } else {
      path = rest;
    }
    if (path.empty()) return InvalidArgument("SQLite URL '" + url + "' names no file");
    return MakeSqliteAdapter({path, options.create, 10000});
  }
  if (StartsWith(url, "postgresql://") || StartsWith(url, "postgres://") || url.find('=') != std::string::npos) {
    return MakePostgresAdapter({url, options.schema, options.state_schema});
  }
  // "sqlit:app.db", "postgersql://...": a mistyped scheme is a command-line
  // error, not a SQLite file of that name (which would not exist).
  size_t colon = url.find(':');
  if (colon != std::string::npos && colon >= 2 &&
      url.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == colon) {
    return InvalidArgument("unknown database URL scheme '" + url.substr(0, colon + 1) + "' in '" + url +
                           "': use sqlite:PATH, sqlite:///ABSOLUTE/PATH, postgresql://... or a libpq "
                           "'key=value' string");
  }
  if (EndsWith(url, ".db") || EndsWith(url, ".sqlite") || EndsWith(url, ".sqlite3")) {
    return MakeSqliteAdapter({url, options.create, 10000});
  }
  if (url.empty()) {
    if (std::getenv("PGHOST") || std::getenv("PGDATABASE") || std::getenv("PGSERVICE")) {
      return MakePostgresAdapter({"", options.schema, options.state_schema});
    }
    return InvalidArgument("no database given: pass --db URL or set SLUICE_DB (e.g. sqlite:app.db or "
                           "postgresql://user@host/db)");
  }
  return InvalidArgument("unrecognised database URL '" + url +
                         "': use sqlite:PATH, sqlite:///ABSOLUTE/PATH, postgresql://... or a libpq "
                         "'key=value' string");
}

}  // namespace

}  // namespace sluice::db
