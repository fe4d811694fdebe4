// The contract audit's pure parts (src/audit): what complete removes,
// statements resolved to table.column through PostgreSQL's parser (CTEs,
// aliases, `*`, INSERT / UPDATE targets, version schemas, SET search_path),
// classification, the code scan over a fixture tree with near-misses, the
// report's JSON round trip, and the complete gate's audit check in each
// mode (src/gates).
#include "audit/audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "engine/tripwire.h"
#include "gates/gates.h"
#include "plan/parser.h"
#include "support/test_support.h"

namespace sluice::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

db::VersionSpec Spec() {
  db::VersionSpec v;
  v.name = "v2";
  v.previous = "v1";
  db::TableMapping orders;
  orders.logical = orders.physical = "orders";
  orders.old_columns = {"id", "unit_price", "qty", "note"};
  orders.columns = {{"id", "id", {}, true, "bigint", true},
                    {"price", "unit_price", {}, false, "numeric", true},    // renamed at complete
                    {"qty", "_sluice_new_qty", {}, false, "bigint", false}};  // same name, new type
  // note: dropped
  db::TableMapping customers;
  customers.logical = "clients";
  customers.physical = "customers";
  customers.old_columns = {"id", "name"};
  customers.columns = {{"id", "id", {}, true, "bigint", true}, {"name", "name", {}, false, "text", true}};
  db::TableMapping created;
  created.logical = created.physical = "audit_log";
  created.created = true;
  v.tables = {orders, customers, created};
  v.hidden_tables = {"legacy_orders"};
  return v;
}

std::vector<std::string> Names(const std::vector<OldObject>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) out.push_back(o.kind + " " + o.Name() + ": " + o.fate);
  return out;
}

TEST(OldObjectsTest, DroppedRenamedTablesAndTheOldVersion) {
  EXPECT_THAT(Names(OldObjects(Spec(), "public", true)),
              ElementsAre("column orders.unit_price: renamed to price", "column orders.note: dropped",
                          "table customers: renamed to clients", "table legacy_orders: dropped",
                          "version public_v1: retired (its views are dropped)"));
  // Without version schemas (SQLite) and for the first migration (no
  // previous version) there is no version to retire.
  EXPECT_THAT(Names(OldObjects(Spec(), "main", false)), ::testing::SizeIs(4));
  db::VersionSpec first = Spec();
  first.previous.clear();
  EXPECT_THAT(Names(OldObjects(first, "public", true)), ::testing::SizeIs(4));
  // A migration that only adds removes nothing.
  db::VersionSpec add;
  add.tables = {Spec().tables[2]};
  EXPECT_THAT(OldObjects(add, "public", true), IsEmpty());
}

Catalog Cat() {
  Catalog c;
  c.base_schema = "public";
  c.relations["public"]["orders"] = {"id", "unit_price", "qty", "note"};
  c.relations["public"]["customers"] = {"id", "name"};
  c.relations["public"]["legacy_orders"] = {"id", "done"};
  c.relations["public_v2"]["orders"] = {"id", "price", "qty"};
  c.relations["public_v1"]["orders"] = {"id", "unit_price", "qty", "note"};
  return c;
}

// "schema.relation.column kind" for each reference (columns only unless
// `tables`).
std::vector<std::string> Refs(const std::string& sql, std::vector<std::string> path = {"public"},
                              bool tables = false) {
  auto r = ResolveStatement(sql, Cat(), path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> out;
  if (!r.ok()) return out;
  for (const auto& x : *r) {
    if (x.column.empty() && !tables) continue;
    out.push_back(x.schema + "." + x.relation + "." + x.column + " " + x.kind);
  }
  return out;
}

TEST(ResolveStatementTest, CteAliasesAndSubqueries) {
  EXPECT_THAT(Refs("WITH recent AS (SELECT o.unit_price AS p FROM orders o WHERE o.id > $1) SELECT p FROM recent"),
              UnorderedElementsAre("public.orders.unit_price read", "public.orders.id read"));
  // The CTE's name is not a relation; a column of the outer query that only
  // the CTE defines resolves to nothing.
  EXPECT_THAT(Refs("WITH orders_x AS (SELECT id FROM orders) SELECT * FROM orders_x", {"public"}, true),
              UnorderedElementsAre("public.orders. read", "public.orders.id read"));
  EXPECT_THAT(Refs("SELECT s.total FROM (SELECT unit_price * qty AS total FROM public.orders) s"),
              UnorderedElementsAre("public.orders.unit_price read", "public.orders.qty read"));
}

TEST(ResolveStatementTest, StarExpandsFromTheCatalog) {
  EXPECT_THAT(Refs("SELECT * FROM orders"),
              UnorderedElementsAre("public.orders.id star", "public.orders.unit_price star", "public.orders.qty star",
                                   "public.orders.note star"));
  // x.* expands only x; the join condition reads both ids.
  EXPECT_THAT(Refs("SELECT x.* FROM customers c JOIN orders x ON x.id = c.id"),
              UnorderedElementsAre("public.orders.id star", "public.orders.unit_price star", "public.orders.qty star",
                                   "public.orders.note star", "public.orders.id read", "public.customers.id read"));
  // count(*) is no column reference.
  EXPECT_THAT(Refs("SELECT count(*) FROM orders"), IsEmpty());
}

TEST(ResolveStatementTest, WritesAndTheirReads) {
  EXPECT_THAT(Refs("UPDATE orders SET note = 'x' WHERE id = $1"),
              UnorderedElementsAre("public.orders.note write", "public.orders.id read"));
  EXPECT_THAT(Refs("INSERT INTO orders AS o (id, unit_price) VALUES ($1, $2) RETURNING o.note"),
              UnorderedElementsAre("public.orders.id write", "public.orders.unit_price write",
                                   "public.orders.note read"));
  EXPECT_THAT(Refs("DELETE FROM legacy_orders WHERE done", {"public"}, true),
              UnorderedElementsAre("public.legacy_orders. write", "public.legacy_orders.done read"));
}

TEST(ResolveStatementTest, VersionsBySchemaAndSearchPath) {
  // A new-version session: its search_path finds the version's view first.
  EXPECT_THAT(Refs("SELECT id, price FROM orders", {"public_v2", "public"}),
              UnorderedElementsAre("public_v2.orders.id read", "public_v2.orders.price read"));
  EXPECT_THAT(Refs("SELECT unit_price FROM public_v1.orders"), ElementsAre("public_v1.orders.unit_price read"));
  auto set = ResolveStatement("SET search_path TO \"public_v1\", \"public\"", Cat(), {"public"});
  ASSERT_TRUE(set.ok());
  ASSERT_EQ(set->size(), 2u);
  auto version = ResolveStatement("SET sluice.version = 'v1'", Cat(), {"public"});
  ASSERT_TRUE(version.ok());
  ASSERT_EQ(version->size(), 1u);
  EXPECT_EQ((*version)[0].schema, "public_v1");
  EXPECT_EQ(ResolveStatement("SELEC unit_price FROM orders", Cat(), {"public"}).status().code(),
            StatusCode::kInvalidArgument);
}

std::vector<std::string> Touches(const std::string& sql, std::vector<std::string> path = {"public"}) {
  auto r = ResolveStatement(sql, Cat(), path);
  EXPECT_TRUE(r.ok());
  std::vector<std::string> out;
  for (const auto& t : Classify(*r, OldObjects(Spec(), "public", true))) {
    out.push_back(t.object + " " + t.via + " " + t.kinds);
  }
  return out;
}

TEST(ClassifyTest, DirectOldVersionAndNewVersion) {
  EXPECT_THAT(Touches("WITH r AS (SELECT o.unit_price FROM orders o) SELECT * FROM r"),
              ElementsAre("orders.unit_price direct read"));
  EXPECT_THAT(Touches("SELECT * FROM orders"), ElementsAre("orders.note direct star", "orders.unit_price direct star"));
  EXPECT_THAT(Touches("SELECT id, qty FROM orders"), IsEmpty());  // qty keeps its name
  EXPECT_THAT(Touches("SELECT id, price FROM orders", {"public_v2", "public"}), IsEmpty());
  EXPECT_THAT(Touches("SELECT * FROM orders", {"public_v2", "public"}), IsEmpty());
  EXPECT_THAT(Touches("SELECT id FROM orders", {"public_v1", "public"}), ElementsAre("public_v1 old version read"));
  EXPECT_THAT(Touches("SET search_path TO public_v1, public"), ElementsAre("public_v1 old version session"));
  EXPECT_THAT(Touches("SELECT name FROM customers"), ElementsAre("customers direct read"));
  EXPECT_THAT(Touches("DELETE FROM legacy_orders"), ElementsAre("legacy_orders direct write"));
}

TEST(IsSluiceStatementTest, OwnStatementsOnly) {
  EXPECT_TRUE(IsSluiceStatement("UPDATE orders SET _sluice_new_qty = qty::bigint", "sluice"));
  EXPECT_TRUE(IsSluiceStatement("SELECT phase FROM \"sluice\".\"migrations\"", "sluice"));
  EXPECT_FALSE(IsSluiceStatement("SET sluice.version = 'v1'", "sluice"));
  EXPECT_FALSE(IsSluiceStatement("SELECT unit_price FROM orders", "sluice"));
}

TEST(ScanCodeTest, WordBoundariesSpellingsAndNearMisses) {
  EXPECT_THAT(Spellings("unit_price"), ElementsAre("unit_price", "unitPrice", "UnitPrice"));
  std::vector<OldObject> objects = {{"column", "public", "orders", "unit_price", "dropped"},
                                    {"table", "public", "legacy_orders", "", "dropped"}};
  auto r = ScanCode(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/audit/code", objects);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> got;
  for (const auto& m : *r) got.push_back(m.file + ":" + std::to_string(m.line) + " " + m.object);
  EXPECT_THAT(got, ElementsAre("app/models.py:3 orders.unit_price", "db/report.sql:2 orders.unit_price",
                               "jobs/cleanup.rb:4 legacy_orders", "web/cart.ts:2 orders.unit_price"));
  EXPECT_EQ(ScanCode("/nonexistent/dir", objects).status().code(), StatusCode::kNotFound);
}

TEST(ReportTest, JsonRoundTripAndVerdict) {
  Report r;
  r.migration = "m";
  r.at = "2026-03-01T12:00:00.000000Z";
  r.window_start = "2026-03-01T11:00:00.000000Z";
  r.objects = OldObjects(Spec(), "public", true);
  r.coverage.push_back({"pg_stat_statements", true, true, "3 statements", {}});
  EXPECT_TRUE(r.coverage_sufficient());
  EXPECT_FALSE(r.blocking());
  Finding f;
  f.source = "pg_stat_statements";
  f.object = "orders.unit_price";
  f.via = "direct";
  f.kinds = "read";
  f.role = "reporting";
  f.application = "nightly | report";
  f.statement = "SELECT unit_price FROM orders";
  f.calls = 3;
  r.findings.push_back(f);
  r.snapshot["10:42"] = 7;
  r.dealloc = 0;
  auto back = ReportFromJson(r.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), r.ToJson());
  EXPECT_TRUE(back->blocking());
  EXPECT_THAT(r.Summary(), HasSubstr("orders.unit_price by role reporting (application_name nightly | report)"));
  EXPECT_THAT(r.ToMarkdown(), HasSubstr("nightly \\| report"));
  EXPECT_THAT(r.ToText(), HasSubstr("[pg_stat_statements] orders.unit_price (direct, read) role reporting"));
  EXPECT_EQ(ReportFromJson("[1]").status().code(), StatusCode::kInternal);
}

// A window shorter than the plan's longest known job period is not
// sufficient coverage, whatever the sources saw; the report says so.
TEST(ReportTest, WindowShorterThanThePlansJobPeriod) {
  Report r;
  r.at = "2026-03-01T12:00:00.000Z";
  r.window_start = "2026-03-01T11:00:00.000Z";
  r.coverage.push_back({"pgaudit", true, true, "armed", {}});
  EXPECT_EQ(r.WindowSeconds(), 3600);
  r.required_window_seconds = 86400;
  EXPECT_FALSE(r.coverage_sufficient());
  EXPECT_THAT(r.Summary(), HasSubstr("the window is 3600 s, shorter than the 86400 s the plan observes"));
  EXPECT_THAT(r.ToText(), HasSubstr("3600 s of the 86400 s the plan observes"));
  auto back = ReportFromJson(r.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->required_window_seconds, 86400);
  EXPECT_FALSE(back->coverage_sufficient());
  r.required_window_seconds = 3600;
  EXPECT_TRUE(r.coverage_sufficient());
}

// The complete gate's audit check (src/gates) in each mode.
gates::Evidence AuditCheck(const std::optional<std::string>& mode, const std::vector<gates::Event>& events,
                           bool nothing = false) {
  plan::GateSettings settings;
  settings.complete.present = mode.has_value();
  settings.complete.audit = mode;
  gates::Inputs in;
  in.settings = &settings;
  in.phase = "active";
  in.audit = gates::AuditFromEvents(events, "2026-03-01T10:00:00.000Z", nothing);
  for (const auto& c : gates::EvaluateComplete(in).checks) {
    if (c.check == "contract audit") return c;
  }
  return {"(none)", true, ""};
}

std::string Details(const std::string& window, bool blocking, bool coverage, const std::string& summary) {
  return nlohmann::json{{"window_start", window}, {"blocking", blocking}, {"coverage_sufficient", coverage},
                        {"summary", summary}}
      .dump();
}

TEST(AuditGateTest, RequiredWarnAndOff) {
  const std::string sw = "2026-03-01T11:00:00.000Z";
  std::vector<gates::Event> none = {{sw, "switch", "a", "", "{}"}};
  // Required without an audit of the window: refused, saying what to run.
  auto c = AuditCheck("required", none);
  EXPECT_FALSE(c.passed);
  EXPECT_THAT(c.detail, HasSubstr("no `sluice audit` ran in the current observation window (since " + sw));
  // Warn (the default) passes and says so.
  c = AuditCheck(std::nullopt, none);
  EXPECT_TRUE(c.passed);
  EXPECT_THAT(c.detail, HasSubstr("WARNING"));
  EXPECT_EQ(AuditCheck("off", none).check, "(none)");
  // An audit of an earlier window does not count; one of this window does.
  std::vector<gates::Event> ev = {
      {"2026-03-01T10:30:00.000Z", "audit", "a", "", Details("2026-03-01T10:00:00.000Z", false, true, "clean")},
      {sw, "switch", "a", "", "{}"}};
  EXPECT_FALSE(AuditCheck("required", ev).passed);
  ev.push_back({"2026-03-01T11:10:00.000Z", "audit", "a", "", Details(sw, true, true, "1 reader: role reporting")});
  c = AuditCheck("required", ev);
  EXPECT_FALSE(c.passed);
  EXPECT_THAT(c.detail, HasSubstr("role reporting"));
  ev.push_back({"2026-03-01T11:20:00.000Z", "audit", "a", "", Details(sw, false, false, "coverage insufficient")});
  EXPECT_FALSE(AuditCheck("required", ev).passed);
  ev.push_back({"2026-03-01T11:30:00.000Z", "audit", "a", "", Details(sw, false, true, "nothing")});
  EXPECT_TRUE(AuditCheck("required", ev).passed);
  // Unreadable details fail closed; a switch back reopens the window at
  // the start.
  ev.push_back({"2026-03-01T11:40:00.000Z", "audit", "a", "", "not json"});
  EXPECT_FALSE(AuditCheck("required", ev).passed);
  EXPECT_EQ(gates::AuditWindowStart({{sw, "switch", "", "", ""}, {sw, "switch.back", "", "", ""}}, "s"), "s");
  // Nothing to audit: passes even when required.
  EXPECT_TRUE(AuditCheck("required", none, true).passed);
  // Evidence that could not be gathered fails when required.
  plan::GateSettings settings;
  settings.complete.present = true;
  settings.complete.audit = "required";
  gates::Inputs in;
  in.settings = &settings;
  in.phase = "active";
  bool failed = false;
  for (const auto& x : gates::EvaluateComplete(in).checks) failed |= x.check == "contract audit" && !x.passed;
  EXPECT_TRUE(failed);
}

TEST(AuditGateTest, PlanOption) {
  const std::string ops = "operations:\n  - drop_column: {table: t, column: c}\n";
  auto p = plan::ParsePlanText(ops + "gates:\n  complete:\n    audit: required\n", "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->gates.complete.audit.value_or(""), "required");
  auto bad = plan::ParsePlanText(ops + "gates:\n  complete:\n    audit: maybe\n", "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("p.yaml:5:"));
  EXPECT_THAT(bad.status().message(), HasSubstr("gates.complete.audit must be required, warn or off, got 'maybe'"));
  // Only complete has it.
  auto sw = plan::ParsePlanText(ops + "gates:\n  switch:\n    audit: required\n", "p.yaml");
  ASSERT_FALSE(sw.ok());
  EXPECT_THAT(sw.status().message(), HasSubstr("audit"));
}

}  // namespace
}  // namespace sluice::audit

// The csvlog reader (src/engine/tripwire.h) over an in-memory log
// directory: quoted fields with commas, "" and newlines; a partial last
// record held back until it is whole; rotation to a new file; a file
// truncated and rewritten.
namespace sluice::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct FakeLogDir {
  std::map<std::string, std::string> files;  // in modification order by name
  std::map<std::string, std::string> modified;
  int reads = 0;
  CsvLogTail Tail() {
    return CsvLogTail(
        [this]() -> Result<std::vector<CsvLogTail::File>> {
          std::vector<CsvLogTail::File> out;
          for (const auto& [name, text] : files) {
            out.push_back({name, static_cast<int64_t>(text.size()), modified[name]});
          }
          return out;
        },
        [this](const std::string& name, int64_t offset, int64_t length) -> Result<std::string> {
          ++reads;
          return files.at(name).substr(offset, length);
        });
  }
};

std::vector<std::string> Firsts(const std::vector<std::vector<std::string>>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.empty() ? "" : r[0] + "|" + r.back());
  return out;
}

TEST(CsvLog, QuotedFieldsHoldCommasQuotesAndNewlines) {
  size_t consumed = 0;
  auto r = ParseCsv("a,\"b, \"\"c\"\"\nd\",e\r\nf,\"g\n", &consumed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_THAT(r[0], ElementsAre("a", "b, \"c\"\nd", "e"));
  EXPECT_EQ(consumed, std::string("a,\"b, \"\"c\"\"\nd\",e\r\n").size());  // the open quote waits
  // Without `consumed` the unterminated record is returned (a message).
  EXPECT_THAT(ParseCsv("OBJECT,1,\"x,y\"")[0], ElementsAre("OBJECT", "1", "x,y"));
}

TEST(CsvLog, PartialRecordsRotationAndTruncation) {
  FakeLogDir dir;
  dir.files["a.csv"] = "old,1\n";
  dir.modified["a.csv"] = "2026-01-01T00:00:00";
  CsvLogTail tail = dir.Tail();
  // A record cut inside a quoted newline is not returned until whole.
  dir.files["a.csv"] += "t1,\"line one\nline";
  SLUICE_ASSERT_OK(tail.SkipToEnd());
  dir.files["a.csv"] += " two\",x\nt2,y\n";
  auto r = tail.Next();
  SLUICE_ASSERT_OK(r.status());
  EXPECT_THAT(Firsts(*r), ElementsAre("t1|x", "t2|y"));
  EXPECT_THAT((*r)[0], ElementsAre("t1", "line one\nline two", "x"));
  // Nothing new: nothing returned, nothing read.
  const int reads = dir.reads;
  r = tail.Next();
  EXPECT_THAT(*r, IsEmpty());
  EXPECT_EQ(dir.reads, reads);
  // Rotation: the rest of the old file, then the new file from its start.
  dir.files["a.csv"] += "t3,z\n";
  dir.files["b.csv"] = "t4,w\n";
  r = tail.Next();
  EXPECT_THAT(Firsts(*r), ElementsAre("t3|z", "t4|w"));
  // Truncated on rotation and rewritten: read from its start again.
  dir.files["a.csv"] = "t5,v\n";
  r = tail.Next();
  EXPECT_THAT(Firsts(*r), ElementsAre("t5|v"));
  // A fresh reader skips files last written before the interval.
  dir.modified["b.csv"] = "2026-01-02T00:00:00";
  CsvLogTail fresh = dir.Tail();
  r = fresh.Next("2026-01-01T12:00:00");
  EXPECT_THAT(Firsts(*r), ElementsAre("t4|w"));
  EXPECT_EQ(fresh.files_read(), 1);
}

}  // namespace
}  // namespace sluice::engine
