// plan::ParsePlanText / ParsePlanFile: the plan as a whole (version, name,
// file rules), sluice's own sections, JSON/YAML equivalence, structural
// errors with their exact message and file:line:col, and every example
// migration of pgroll's repository. The operations are in
// plan_parser_operations_test.cc.
#include "plan/parser.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <variant>

#include "support/plan_parsing.h"
#include "support/test_support.h"

namespace sluice::testing {
namespace {

using plan::ParsePlanFile;
using plan::ParsePlanText;
using plan::Plan;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr StatusCode kInvalid = StatusCode::kInvalidPlan;

// --- top level -----------------------------------------------------------------

TEST(plan_parser, VersionSchemaNameFileAndFormat) {
  Plan p = MustParse(R"~(version_schema: with_version_schema
operations:
  - drop_table: {name: t}
)~",
                     "migrations/56_with_version_schema.yaml");
  EXPECT_EQ(p.version_schema, "with_version_schema");
  EXPECT_EQ(p.name, "56_with_version_schema");
  EXPECT_EQ(p.file, "migrations/56_with_version_schema.yaml");
  EXPECT_EQ(p.format, "yaml");
  EXPECT_EQ(MustParse("operations:\n  - drop_table: {name: t}\n", "a/b.c/x.YML").name, "x");
  EXPECT_FALSE(MustParse("operations:\n  - drop_table: {name: t}\n").version_schema.has_value());
  EXPECT_EQ(MustParse(R"~({"operations": [{"drop_table": {"name": "t"}}]})~", "002_drop.json").format, "json");

  EXPECT_THAT(Parse("version_schema: \"\"\noperations:\n  - drop_table: {name: t}\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: 'version_schema' in the plan must not be empty"));
}

TEST(plan_parser, NameKeyDifferentFromFileIsAWarningNotAnError) {
  std::vector<plan::Diagnostic> warnings;
  auto r = Parse("name: something_else\noperations:\n  - drop_table: {name: t}\n", "dir/003_drop.yaml", &warnings);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->name, "003_drop");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].ToString(),
            "dir/003_drop.yaml:1:1: warning: 'name: something_else' is ignored: the migration is named after its "
            "file ('003_drop')");

  warnings.clear();
  ASSERT_TRUE(Parse("name: 003_drop\noperations:\n  - drop_table: {name: t}\n", "003_drop.yaml", &warnings).ok());
  EXPECT_TRUE(warnings.empty());
}

TEST(plan_parser, TextIsKeptExactly) {
  std::string text = "# a comment\noperations:\n  - drop_table: {name: t}   \n\n";
  EXPECT_EQ(MustParse(text).text, text);
}

// A compact rendering of what a plan says, to compare two plans.
std::string Describe(const Plan& p) {
  std::ostringstream o;
  o << "version_schema=" << p.version_schema.value_or("-") << "\n";
  auto col = [&](const plan::ColumnDef& c) {
    o << " col(" << c.name.value << "," << c.type << ",null=" << c.nullable << ",pk=" << c.pk << ",uq=" << c.unique
      << ",def=" << c.default_expr.value_or("-") << ",com=" << c.comment.value_or("-")
      << ",check=" << (c.check ? c.check->name.value + ":" + c.check->constraint : "-")
      << ",ref=" << (c.references ? c.references->table.value + "." + c.references->column.value : "-") << ")";
  };
  auto ns = [&](const plan::NullableString& s) {
    return !s.present ? std::string("-") : s.is_null ? std::string("null") : "'" + s.value + "'";
  };
  for (const auto& op : p.operations) {
    o << op.kind << ":";
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, plan::CreateTable>) {
            o << b.name.value << " comment=" << b.comment.value_or("-");
            for (const auto& c : b.columns) col(c);
            for (const auto& c : b.constraints) {
              o << " con(" << c.name.value << "," << static_cast<int>(c.type) << "," << c.columns.size() << ","
                << c.check << ")";
            }
          } else if constexpr (std::is_same_v<T, plan::AddColumn>) {
            o << b.table.value << " up=" << b.up.value_or("-");
            col(b.column);
          } else if constexpr (std::is_same_v<T, plan::AlterColumn>) {
            o << b.table.value << "." << b.column.value << " type=" << b.type.value_or("-")
              << " nullable=" << (b.nullable ? (*b.nullable ? "true" : "false") : "-")
              << " default=" << ns(b.default_expr) << " comment=" << ns(b.comment) << " up=" << b.up.value_or("-")
              << " down=" << b.down.value_or("-");
          } else if constexpr (std::is_same_v<T, plan::CreateIndex>) {
            o << b.name.value << " on " << b.table.value << " method=" << b.method << " unique=" << b.unique
              << " where=" << b.predicate;
            for (const auto& f : b.columns) o << " (" << f.column.value << f.sort << f.nulls << f.opclass << ")";
          } else if constexpr (std::is_same_v<T, plan::CreateConstraint>) {
            o << b.name.value << " type=" << static_cast<int>(b.type) << " cols=" << b.columns.size();
            for (const auto& [k, v] : b.up) o << " up." << k << "=" << v;
            for (const auto& [k, v] : b.down) o << " down." << k << "=" << v;
          } else if constexpr (std::is_same_v<T, plan::RawSql>) {
            o << b.up << " | " << b.down << " | " << b.on_complete;
          } else if constexpr (std::is_same_v<T, plan::RenameColumn>) {
            o << b.table.value << "." << b.from.value << "->" << b.to.value;
          } else {
            o << "?";
          }
        },
        op.body);
    o << "\n";
  }
  o << "backfill chunk_rows=" << p.backfill.chunk_rows.value_or(-1)
    << " rate=" << p.backfill.max_rows_per_second.value_or(-1) << " windows=" << p.backfill.allowed_windows.size()
    << "\n";
  o << "verify invariants=" << p.verify.invariants.size() << " shadow=" << p.verify.shadow_sample.value_or(-1) << "\n";
  o << "gates switch signoffs=" << p.gates.switch_.signoffs.size() << "\n";
  return o.str();
}

TEST(plan_parser, JsonAndYamlGiveTheSamePlan) {
  const std::string yaml = R"~(version_schema: v2
operations:
  - create_table:
      name: items
      comment: things
      columns:
        - {name: id, type: serial, pk: true}
        - name: label
          type: varchar(255)
          default: '''unnamed'''
          nullable: true
          check: {name: label_len, constraint: length(label) > 0}
      constraints:
        - {name: items_label_uq, type: unique, columns: [label]}
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: text, comment: lowered}
  - alter_column:
      table: orders
      column: amount
      type: integer
      nullable: false
      comment: null
      up: CAST(amount AS integer)
      down: CAST(amount AS text)
  - create_index:
      name: idx
      table: orders
      method: hash
      columns:
        - {column: email, sort: DESC, nulls: FIRST, opclass: {name: text_ops}}
        - id
  - create_constraint:
      type: unique
      table: orders
      name: orders_email_uq
      columns: [email]
      up: {email: email}
      down: {email: email}
  - rename_column: {table: orders, from: email, to: mail}
  - sql:
      up: UPDATE orders SET amount = 0
      onComplete: true
backfill:
  chunk_rows: 500
  max_rows_per_second: 250.5
  throttle:
    allowed_windows: ["01:00-05:00"]
verify:
  shadow_sample: 0.25
  invariants:
    - {name: positive, table: orders, check: amount >= 0}
gates:
  switch:
    signoffs: [dba, owner]
)~";
  const std::string json = R"~({
  "version_schema": "v2",
  "operations": [
    {"create_table": {
      "name": "items",
      "comment": "things",
      "columns": [
        {"name": "id", "type": "serial", "pk": true},
        {"name": "label", "type": "varchar(255)", "default": "'unnamed'", "nullable": true,
         "check": {"name": "label_len", "constraint": "length(label) > 0"}}
      ],
      "constraints": [{"name": "items_label_uq", "type": "unique", "columns": ["label"]}]
    }},
    {"add_column": {"table": "orders", "up": "lower(email)",
                    "column": {"name": "email_lower", "type": "text", "comment": "lowered"}}},
    {"alter_column": {"table": "orders", "column": "amount", "type": "integer", "nullable": false,
                      "comment": null, "up": "CAST(amount AS integer)", "down": "CAST(amount AS text)"}},
    {"create_index": {"name": "idx", "table": "orders", "method": "hash",
                      "columns": [{"column": "email", "sort": "DESC", "nulls": "FIRST", "opclass": {"name": "text_ops"}},
                                  "id"]}},
    {"create_constraint": {"type": "unique", "table": "orders", "name": "orders_email_uq", "columns": ["email"],
                           "up": {"email": "email"}, "down": {"email": "email"}}},
    {"rename_column": {"table": "orders", "from": "email", "to": "mail"}},
    {"sql": {"up": "UPDATE orders SET amount = 0", "onComplete": true}}
  ],
  "backfill": {"chunk_rows": 500, "max_rows_per_second": 250.5, "throttle": {"allowed_windows": ["01:00-05:00"]}},
  "verify": {"shadow_sample": 0.25, "invariants": [{"name": "positive", "table": "orders", "check": "amount >= 0"}]},
  "gates": {"switch": {"signoffs": ["dba", "owner"]}}
}
)~";
  Plan y = MustParse(yaml, "007_x.yaml");
  Plan j = MustParse(json, "007_x.json");
  ASSERT_EQ(y.operations.size(), 7u);
  EXPECT_EQ(Describe(y), Describe(j));
  EXPECT_EQ(y.name, j.name);
  EXPECT_EQ(j.format, "json");
  // Spot checks, so that equal-but-empty descriptions cannot pass.
  EXPECT_THAT(Describe(j), HasSubstr("alter_column:orders.amount type=integer nullable=false default=- comment=null"));
  EXPECT_THAT(Describe(j), HasSubstr("create_index:idx on orders method=hash unique=0 where= (emailDESCFIRSTtext_ops) (id)"));
  EXPECT_THAT(Describe(j), HasSubstr("backfill chunk_rows=500 rate=250.5 windows=1"));
}

TEST(plan_parser, JsonErrorsNameLineAndColumn) {
  EXPECT_THAT(Parse("{\n  \"operations\": [\n    {\"drop_table\": {\"name\": 5}}\n  ]\n}\n", "p.json").status(),
              StatusIs(kInvalid, "p.json:3:21: error: 'name' in drop_table (operation #1) must be a string, got an "
                                 "integer (quote it: \"5\")"));
  EXPECT_THAT(Parse("{\"operations\": [{\"drop_table\": {\"name\": \"a\", \"name\": \"b\"}}]}", "p.json").status(),
              StatusIs(kInvalid, "p.json:1:46: error: duplicate key 'name' in drop_table (operation #1) (first at "
                                 "line 1)"));
  EXPECT_THAT(Parse("{\"operations\": [{\"drop_table\": {\"name\": \"a\"}}", "p.json").status(),
              StatusIs(kInvalid, "error: cannot parse JSON: "));
}

TEST(plan_parser, JsonTrailingCommaIsRejected) {
  EXPECT_THAT(Parse("{\n  \"operations\": [\n    {\"drop_table\": {\"name\": \"t\",}}\n  ]\n}\n", "p.json").status(),
              StatusIs(kInvalid, "p.json:3:32: error: cannot parse JSON: trailing comma before '}'"));
  EXPECT_THAT(Parse("{\n  \"operations\": [\n    {\"drop_table\": {\"name\": \"t\"}},\n  ]\n}\n", "p.json").status(),
              StatusIs(kInvalid, "p.json:3:34: error: cannot parse JSON: trailing comma before ']'"));
  // Commas and brackets inside strings (with escaped quotes) are not syntax.
  Plan p = MustParse("{\"operations\": [{\"sql\": {\"up\": \"SELECT ',]', \\\",}\\\"\"}}]}", "p.json");
  EXPECT_EQ(Op<plan::RawSql>(p, 0).up, "SELECT ',]', \",}\"");
  // In YAML a trailing comma in a flow collection is allowed.
  EXPECT_EQ(Op<plan::DropTable>(MustParse("operations: [{drop_table: {name: t,}},]\n"), 0).name.value, "t");
}

// --- sluice's own sections --------------------------------------------------------

TEST(plan_parser, SluiceSections) {
  Plan p = MustParse(R"~(operations:
  - drop_table: {name: t}
backfill:
  chunk_target_ms: 200
  chunk_rows: 1000
  chunk_min_rows: 10
  chunk_max_rows: 50000
  max_rows_per_second: 2500.5
  workers: 2
  throttle:
    probe_query: SELECT 1
    probe_target_ms: 50
    probe_slowdown: 2
    max_replica_lag_seconds: 1.5
    replica_url: postgresql://replica/db
    max_lock_waiters: 3
    custom_sql: SELECT load FROM stats
    custom_max: 0.8
    allowed_windows: ["22:00-24:00", "00:00-06:30"]
    active_pace: 0.25
    active_chunk_ms: 4
verify:
  partition_column: region
  checksum_chunk_rows: 5000
  max_reported_differences: 20
  max_drift: 0.001
  shadow_sample: 0.1
  max_divergence: 0
  invariants:
    - name: totals_positive
      table: orders
      check: total >= 0
    - name: no_orphans
      sql: SELECT 1 FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL
  validation_queries:
    - name: order_total
      table: orders
      sql: SELECT total FROM orders WHERE id = :key
gates:
  backfill:
    soak_seconds: 60
  switch:
    max_verify_age_seconds: 600
    max_divergence: 0.0
    signoffs: [dba]
  complete:
    observation_seconds: 3600
    signoffs: [dba, service-owner]
abort:
  max_divergence: 0.01
  max_error_rate: 0.05
  max_p99_ratio: 1.5
  probe_query: SELECT count(*) FROM errors
)~");
  const auto& b = p.backfill;
  EXPECT_EQ(b.chunk_target_ms, 200);
  EXPECT_EQ(b.chunk_rows, 1000);
  EXPECT_EQ(b.chunk_min_rows, 10);
  EXPECT_EQ(b.chunk_max_rows, 50000);
  EXPECT_DOUBLE_EQ(b.max_rows_per_second.value_or(-1), 2500.5);
  EXPECT_EQ(b.workers, 2);
  EXPECT_EQ(b.probe_query, "SELECT 1");
  EXPECT_EQ(b.probe_target_ms, 50);
  EXPECT_DOUBLE_EQ(b.probe_slowdown.value_or(-1), 2);
  EXPECT_DOUBLE_EQ(b.max_replica_lag_seconds.value_or(-1), 1.5);
  EXPECT_EQ(b.replica_url, "postgresql://replica/db");
  EXPECT_EQ(b.max_lock_waiters, 3);
  EXPECT_EQ(b.custom_signal_sql, "SELECT load FROM stats");
  EXPECT_DOUBLE_EQ(b.custom_signal_max.value_or(-1), 0.8);
  EXPECT_DOUBLE_EQ(b.active_pace.value_or(-1), 0.25);
  EXPECT_EQ(b.active_chunk_ms, 4);
  EXPECT_EQ(b.allowed_windows, (std::vector<std::string>{"22:00-24:00", "00:00-06:30"}));
  EXPECT_EQ(b.loc.line, 4);

  const auto& v = p.verify;
  EXPECT_EQ(v.partition_column, "region");
  EXPECT_EQ(v.checksum_chunk_rows, 5000);
  EXPECT_EQ(v.max_reported_differences, 20);
  EXPECT_DOUBLE_EQ(v.max_drift.value_or(-1), 0.001);
  EXPECT_DOUBLE_EQ(v.shadow_sample.value_or(-1), 0.1);
  EXPECT_DOUBLE_EQ(v.max_divergence.value_or(-1), 0);
  ASSERT_EQ(v.invariants.size(), 2u);
  EXPECT_EQ(v.invariants[0].name.value, "totals_positive");
  EXPECT_EQ(v.invariants[0].table, "orders");
  EXPECT_EQ(v.invariants[0].check, "total >= 0");
  EXPECT_EQ(v.invariants[0].sql, "");
  EXPECT_EQ(v.invariants[1].name.value, "no_orphans");
  EXPECT_THAT(v.invariants[1].sql, HasSubstr("LEFT JOIN customers"));
  ASSERT_EQ(v.validation_queries.size(), 1u);
  EXPECT_EQ(v.validation_queries[0].table, "orders");
  EXPECT_EQ(v.validation_queries[0].sql, "SELECT total FROM orders WHERE id = :key");

  const auto& g = p.gates;
  EXPECT_TRUE(g.backfill.present);
  EXPECT_EQ(g.backfill.soak_seconds, 60);
  EXPECT_TRUE(g.switch_.present);
  EXPECT_EQ(g.switch_.max_verify_age_seconds, 600);
  EXPECT_DOUBLE_EQ(g.switch_.max_divergence.value_or(-1), 0);
  ASSERT_EQ(g.switch_.signoffs.size(), 1u);
  EXPECT_EQ(g.switch_.signoffs[0].role, "dba");
  EXPECT_TRUE(g.complete.present);
  EXPECT_EQ(g.complete.observation_seconds, 3600);
  ASSERT_EQ(g.complete.signoffs.size(), 2u);
  EXPECT_EQ(g.complete.signoffs[1].role, "service-owner");

  EXPECT_TRUE(p.abort.present);
  EXPECT_DOUBLE_EQ(p.abort.max_divergence.value_or(-1), 0.01);
  EXPECT_DOUBLE_EQ(p.abort.max_error_rate.value_or(-1), 0.05);
  EXPECT_DOUBLE_EQ(p.abort.max_p99_ratio.value_or(-1), 1.5);
  EXPECT_EQ(p.abort.probe_query, "SELECT count(*) FROM errors");
}

TEST(plan_parser, SectionsAbsentByDefault) {
  Plan p = MustParse("operations:\n  - drop_table: {name: t}\n");
  EXPECT_FALSE(p.backfill.chunk_rows.has_value());
  EXPECT_FALSE(p.backfill.workers.has_value());
  EXPECT_TRUE(p.backfill.allowed_windows.empty());
  EXPECT_TRUE(p.verify.invariants.empty());
  EXPECT_FALSE(p.gates.backfill.present);
  EXPECT_FALSE(p.gates.switch_.present);
  EXPECT_FALSE(p.gates.complete.present);
  EXPECT_FALSE(p.abort.present);
}

TEST(plan_parser, SectionErrors) {
  const std::string ops = "operations:\n  - drop_table: {name: t}\n";
  EXPECT_THAT(Parse(ops + "backfill:\n  chunk_min_rows: 100\n  chunk_max_rows: 10\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: backfill: chunk_min_rows is larger than chunk_max_rows"));
  EXPECT_THAT(Parse(ops + "backfill:\n  workers: 0\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: 'workers' in backfill must be >= 1"));
  EXPECT_THAT(Parse(ops + "backfill:\n  chunk_rows: 1.5\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: 'chunk_rows' in backfill must be an integer, got a number"));
  EXPECT_THAT(Parse(ops + "backfill:\n  chunk_rows: 99999999999999999999\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: 'chunk_rows' in backfill is out of range"));
  EXPECT_THAT(Parse(ops + "backfill:\n  max_rows_per_second: fast\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: 'max_rows_per_second' in backfill must be a number, got a "
                                 "string"));
  EXPECT_THAT(Parse(ops + "backfill:\n  throttle:\n    custom_sql: SELECT 1\n").status(),
              StatusIs(kInvalid, "p.yaml:5:5: error: backfill.throttle: custom_sql and custom_max go together"));
  EXPECT_THAT(Parse(ops + "backfill:\n  throttle:\n    allowed_windows: [\"1:00-5:00\"]\n").status(),
              StatusIs(kInvalid, "p.yaml:5:5: error: backfill.throttle: allowed window '1:00-5:00' is not "
                                 "HH:MM-HH:MM"));
  EXPECT_THAT(Parse(ops + "backfill:\n  throttle:\n    probe_slowdown: 0.5\n").status(),
              StatusIs(kInvalid, "p.yaml:5:5: error: backfill.throttle: probe_slowdown must be above 1 (e.g. 1.5), "
                                 "or 0 for off"));
  for (const char* pace : {"0", "1.5"}) {
    EXPECT_THAT(Parse(ops + "backfill:\n  throttle:\n    active_pace: " + pace + "\n").status(),
                StatusIs(kInvalid, "p.yaml:5:5: error: backfill.throttle: active_pace must be above 0 and at most 1 "
                                   "(the share of the time the backfill may work while the application is at work; "
                                   "1 = do not give way)"))
        << pace;
  }
  EXPECT_THAT(Parse(ops + "backfill:\n  throttle:\n    probe_querry: SELECT 1\n").status(),
              StatusIs(kInvalid, "p.yaml:5:5: error: unknown key 'probe_querry' in backfill.throttle (did you mean "
                                 "'probe_query'?)"));
  EXPECT_THAT(Parse(ops + "verify:\n  shadow_sample: 1.5\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: verify.shadow_sample must be <= 1"));
  EXPECT_THAT(Parse(ops + "verify:\n  invariants:\n    - {name: a, table: t, check: x > 0, sql: SELECT 1}\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:5:7: error: verify.invariants #1 needs exactly one of 'check' (a predicate "
                                 "on 'table') or 'sql' (a query that must return no rows)"));
  EXPECT_THAT(Parse(ops + "verify:\n  invariants:\n    - {name: a, check: x > 0}\n").status(),
              StatusIs(kInvalid, "p.yaml:5:7: error: verify.invariants #1: 'check' needs 'table'"));
  EXPECT_THAT(Parse(ops + "verify:\n  invariants:\n    - {name: a, sql: SELECT 1}\n    - {name: a, sql: SELECT 2}\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:14: error: duplicate invariant name 'a'"));
  EXPECT_THAT(Parse(ops + "verify:\n  invariants: {name: a}\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: verify.invariants must be a list"));
  EXPECT_THAT(Parse(ops + "verify:\n  validation_queries:\n    - {name: q, sql: SELECT 1}\n").status(),
              StatusIs(kInvalid, "p.yaml:5:7: error: verify.validation_queries #1 is missing required key 'table'"));
  EXPECT_THAT(Parse(ops + "gates:\n  swich:\n    soak_seconds: 1\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: unknown key 'swich' in gates (did you mean 'switch'?); allowed "
                                 "keys: backfill, switch, complete"));
  EXPECT_THAT(Parse(ops + "gates:\n  switch:\n    signoffs: dba\n").status(),
              StatusIs(kInvalid, "p.yaml:5:5: error: gates.switch.signoffs must be a list of roles"));
  EXPECT_THAT(Parse(ops + "gates:\n  complete:\n    signoffs: [dba, 3]\n").status(),
              StatusIs(kInvalid, "p.yaml:5:21: error: gates.complete.signoffs items must be role names (strings)"));
  EXPECT_THAT(Parse(ops + "abort:\n  max_error_rate: -0.5\n").status(),
              StatusIs(kInvalid, "p.yaml:4:3: error: 'max_error_rate' in abort must be >= "));
  EXPECT_THAT(Parse(ops + "abort: [max_error_rate]\n").status(),
              StatusIs(kInvalid, "p.yaml:3:8: error: abort must be a map, got a list"));
}

// --- structural errors ------------------------------------------------------------

TEST(plan_parser, UnknownTopLevelKey) {
  auto r = Parse("operations:\n  - drop_table: {name: t}\nbackfil:\n  chunk_rows: 10\n");
  EXPECT_THAT(r.status(), StatusIs(kInvalid, "p.yaml:3:1: error: unknown key 'backfil' in the plan (did you mean "
                                             "'backfill'?); allowed keys: name, version_schema, operations, backfill, "
                                             "verify, gates, abort"));
  EXPECT_EQ(ErrorLines(r.status()), 1u);
  // No suggestion when nothing is close.
  EXPECT_THAT(Parse("operations:\n  - drop_table: {name: t}\nzzzzzzzz: 1\n").status(),
              StatusIs(kInvalid, "p.yaml:3:1: error: unknown key 'zzzzzzzz' in the plan; allowed keys: "));
}

TEST(plan_parser, UnknownKeyInsideOperationSuggestsTheNearestKey) {
  auto r = Parse(R"~(operations:
  - add_column:
      table: orders
      column:
        name: note
        type: text
        nulable: true
)~");
  EXPECT_THAT(r.status(), StatusIs(kInvalid, "p.yaml:7:9: error: unknown key 'nulable' in column of add_column "
                                             "(operation #1) (did you mean 'nullable'?); allowed keys: name, type, "
                                             "nullable, pk, unique, default, comment, check, references, generated"));
  // Case-insensitive suggestion.
  EXPECT_THAT(Parse("operations:\n  - drop_table: {NAME: t}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:18: error: unknown key 'NAME' in drop_table (operation #1) (did you mean "
                                 "'name'?)"));
}

TEST(plan_parser, DuplicateKey) {
  EXPECT_THAT(Parse("operations:\n  - drop_column:\n      table: orders\n      column: amount\n      column: email\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:5:7: error: duplicate key 'column' in drop_column (operation #1) (first at "
                                 "line 4)"));
  EXPECT_THAT(Parse("operations:\n  - drop_table: {name: t}\noperations:\n  - drop_table: {name: u}\n").status(),
              StatusIs(kInvalid, "p.yaml:3:1: error: duplicate key 'operations' in the plan (first at line 1)"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns:
        - name: a
          type: int
        - name: a
          type: text
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:7:17: error: duplicate column name 'a' in create_table (operation #1) (first "
                                 "at line 5)"));
}

TEST(plan_parser, WrongTypes) {
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: 42\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'name' in drop_table (operation #1) must be a string, got an "
                                 "integer (quote it: \"42\")"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: 4.5\n").status(),
              StatusIs(kInvalid, "must be a string, got a number (quote it: \"4.5\")"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: true\n").status(),
              StatusIs(kInvalid, "'name' in drop_table (operation #1) must be a string, got a boolean (quote it: "
                                 "\"true\")"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: [a]\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'name' in drop_table (operation #1) must be a string, got a "
                                 "list"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name:\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'name' in drop_table (operation #1) must be a string, got null"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: \"\"\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'name' in drop_table (operation #1) must not be empty"));
  EXPECT_THAT(Parse("operations:\n  - add_column:\n      table: t\n      column: {name: c, type: int, nullable: "
                    "\"true\"}\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:4:36: error: 'nullable' in column of add_column (operation #1) must be true "
                                 "or false, got a string 'true'"));
  // YAML 1.2: yes/no/on/off are strings, not booleans.
  EXPECT_THAT(Parse("operations:\n  - add_column:\n      table: t\n      column: {name: c, type: int, nullable: yes}\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:4:36: error: 'nullable' in column of add_column (operation #1) must be true "
                                 "or false, got a string 'yes'"));
  EXPECT_THAT(Parse("operations:\n  - create_table:\n      name: t\n      columns: {name: a, type: int}\n").status(),
              StatusIs(kInvalid, "p.yaml:4:7: error: 'columns' in create_table (operation #1) must be a list, got a "
                                 "map"));
  EXPECT_THAT(Parse("operations:\n  - create_table:\n      name: t\n      columns: []\n").status(),
              StatusIs(kInvalid, "p.yaml:4:7: error: 'columns' in create_table (operation #1) must not be empty"));
  EXPECT_THAT(Parse("operations:\n  - add_column:\n      table: t\n      column: c\n").status(),
              StatusIs(kInvalid, "p.yaml:4:15: error: column of add_column (operation #1) must be a map, got a "
                                 "string"));
  EXPECT_THAT(Parse("operations:\n  - drop_table:\n      name: \"ord\\0ers\"\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'name' in drop_table (operation #1) contains a NUL byte"));
  EXPECT_THAT(Parse("operations:\n  - add_column:\n      table: t\n      column: {name: c, type: int, references: "
                    "{name: f, table: u, column: id, on_delete: EXPLODE}}\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:4:80: error: 'on_delete' in references of column of add_column (operation "
                                 "#1) must be one of NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT, got "
                                 "'EXPLODE'"));
}

TEST(plan_parser, QuotedScalarsAreStrings) {
  Plan p = MustParse("operations:\n  - drop_table:\n      name: \"42\"\n  - drop_table:\n      name: 'true'\n"
                     "  - drop_table:\n      name: !!str 7\n");
  EXPECT_EQ(Op<plan::DropTable>(p, 0).name.value, "42");
  EXPECT_EQ(Op<plan::DropTable>(p, 1).name.value, "true");
  EXPECT_EQ(Op<plan::DropTable>(p, 2).name.value, "7");
  // Booleans in YAML 1.2 core spellings.
  Plan b = MustParse("operations:\n  - add_column:\n      table: t\n      column: {name: c, type: int, nullable: True}\n");
  EXPECT_TRUE(Op<plan::AddColumn>(b, 0).column.nullable);
}

TEST(plan_parser, OperationsShape) {
  EXPECT_THAT(Parse("operations:\n  drop_table:\n    name: t\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: 'operations' must be a list of operations (each item starting "
                                 "with '- '), got a map; pgroll would silently apply nothing here, sluice refuses"));
  EXPECT_THAT(Parse("operations: []\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: 'operations' is empty: the migration would change nothing"));
  EXPECT_THAT(Parse("operations:\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: 'operations' must be a list of operations (each item starting "
                                 "with '- '), got null"));
  EXPECT_THAT(Parse("version_schema: v\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: the plan is missing required key 'operations'"));
  EXPECT_THAT(Parse("operations:\n  - drop_table\n").status(),
              StatusIs(kInvalid, "p.yaml:2:5: error: operation #1 must be a map with one key naming the operation, "
                                 "got a string"));
  EXPECT_THAT(Parse(R"~(operations:
  - drop_table: {name: a}
  - drop_column:
      table: orders
      column: amount
    rename_column:
      table: orders
      from: email
      to: mail
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:3:5: error: operation #2 must have exactly one key naming the operation, got "
                                 "2 (drop_column, rename_column); start each operation with its own '- '"));
  EXPECT_THAT(Parse("operations:\n  - {}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:5: error: operation #1 must have exactly one key naming the operation, got "
                                 "0 ()"));
  EXPECT_THAT(Parse("operations:\n  - drop_colum: {table: t, column: c}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:5: error: unknown operation 'drop_colum' in operation #1 (did you mean "
                                 "'drop_column'?); known operations: create_table, add_column, alter_column, "
                                 "rename_column, drop_column, rename_table, drop_table, create_index, drop_index, "
                                 "create_constraint, drop_constraint, drop_multicolumn_constraint, rename_constraint, "
                                 "sql, set_replica_identity"));
  EXPECT_THAT(Parse("operations:\n  - drop_table: t\n").status(),
              StatusIs(kInvalid, "p.yaml:2:17: error: drop_table (operation #1) must be a map, got a string"));
}

TEST(plan_parser, MissingRequiredFields) {
  EXPECT_THAT(Parse("operations:\n  - drop_column:\n      table: orders\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: drop_column (operation #1) is missing required key 'column'"));
  auto r = Parse("operations:\n  - rename_column:\n      table: orders\n");
  EXPECT_THAT(r.status(), StatusIs(kInvalid, "p.yaml:3:7: error: rename_column (operation #1) is missing required key "
                                             "'from'\np.yaml:3:7: error: rename_column (operation #1) is missing "
                                             "required key 'to'"));
  EXPECT_THAT(Parse("operations:\n  - add_column:\n      table: t\n      column: {name: c}\n").status(),
              StatusIs(kInvalid, "p.yaml:4:15: error: column of add_column (operation #1) is missing required key "
                                 "'type'"));
  EXPECT_THAT(Parse("operations:\n  - set_replica_identity: {table: t}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:27: error: set_replica_identity (operation #1) is missing required key "
                                 "'identity'"));
}

TEST(plan_parser, EveryErrorIsReportedOnItsOwnLine) {
  auto r = Parse(R"~(operations:
  - drop_table: {name: 1}
  - frobnicate: {}
  - drop_column: {table: t}
extra: true
)~");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "p.yaml:5:1: error: unknown key 'extra' in the plan; allowed keys: name, version_schema, operations, "
            "backfill, verify, gates, abort, dual_write\n"
            "p.yaml:2:18: error: 'name' in drop_table (operation #1) must be a string, got an integer (quote it: "
            "\"1\")\n"
            "p.yaml:3:5: error: unknown operation 'frobnicate' in operation #2; known operations: create_table, "
            "add_column, alter_column, rename_column, drop_column, rename_table, drop_table, create_index, "
            "drop_index, create_constraint, drop_constraint, drop_multicolumn_constraint, rename_constraint, sql, "
            "set_replica_identity\n"
            "p.yaml:4:18: error: drop_column (operation #3) is missing required key 'column'");
}

TEST(plan_parser, SyntaxErrorsAndEmptyOrWrongRoot) {
  EXPECT_THAT(Parse("operations:\n  - drop_column:\n      table: orders\n      column: [amount\n").status(),
              StatusIs(kInvalid, "p.yaml:5:1: error: cannot parse YAML: end of sequence flow not found"));
  EXPECT_THAT(Parse("operations:\n\t- drop_table: {name: t}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:2: error: cannot parse YAML: "));
  EXPECT_THAT(Parse("").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: the plan is empty; it needs an 'operations' list"));
  EXPECT_THAT(Parse("# only a comment\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: the plan is empty; it needs an 'operations' list"));
  EXPECT_THAT(Parse("- drop_table: {name: t}\n").status(),
              StatusIs(kInvalid, "p.yaml:1:1: error: the plan must be a map, got a list"));
  EXPECT_THAT(Parse("just text\n").status(), StatusIs(kInvalid, "p.yaml:1:1: error: the plan must be a map, got a "
                                                                "string"));
}

TEST(plan_parser, FileNameRules) {
  const std::string ok = "operations:\n  - drop_table: {name: t}\n";
  EXPECT_THAT(Parse(ok, "dir/p.txt").status(),
              StatusIs(kInvalid, "dir/p.txt: error: plan file name must end in .yaml, .yml or .json"));
  EXPECT_THAT(Parse(ok, "dir/plan").status(),
              StatusIs(kInvalid, "dir/plan: error: plan file name must end in .yaml, .yml or .json"));
  EXPECT_THAT(Parse(ok, "dir/.yaml").status(),
              StatusIs(kInvalid, "dir/.yaml: error: plan file name gives an empty migration name"));
  EXPECT_TRUE(Parse(ok, "UPPER.YAML").ok());
}

TEST(plan_parser, ParsePlanFile) {
  TempDir dir;
  std::string text = "operations:\n  - drop_table: {name: t}\n";
  std::string path = dir.Write("004_drop_t.yml", text);
  auto p = ParsePlanFile(path);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->name, "004_drop_t");
  EXPECT_EQ(p->file, path);
  EXPECT_EQ(p->text, text);
  EXPECT_EQ(p->format, "yaml");

  std::string bad = dir.Write("005_bad.yaml", "operations:\n  - drop_table: {nme: t}\n");
  EXPECT_THAT(ParsePlanFile(bad).status(),
              StatusIs(kInvalid, bad + ":2:18: error: unknown key 'nme' in drop_table (operation #1) (did you mean "
                                       "'name'?)"));

  EXPECT_THAT(ParsePlanFile(dir.File("missing.yaml")).status(),
              StatusIs(StatusCode::kNotFound, "cannot read plan file '" + dir.File("missing.yaml") + "'"));
}

// --- pgroll's examples --------------------------------------------------------------

TEST(plan_parser, EveryPgrollExampleParses) {
  namespace fs = std::filesystem;
  const fs::path dir = SLUICE_SOURCE_DIR "/../shared/peer/pgroll-examples";
  // Read from ../shared/peer beside the checkout; a clone elsewhere skips.
  if (!fs::is_directory(dir)) GTEST_SKIP() << "pgroll example corpus not found at " << dir;
  std::set<std::string> plans;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name == ".ledger") continue;  // the ordered file list, not a plan
    plans.insert(name);
  }
  // The ledger lists exactly the plan files; nothing in the folder is skipped.
  std::set<std::string> ledger;
  std::istringstream lines(ReadFile((dir / ".ledger").string()));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) ledger.insert(line);
  }
  EXPECT_EQ(plans, ledger);
  EXPECT_EQ(plans.size(), 56u);

  std::map<std::string, Plan> parsed;
  for (const auto& name : plans) {
    std::vector<plan::Diagnostic> warnings;
    auto p = ParsePlanFile((dir / name).string(), &warnings);
    if (!p.ok()) {
      ADD_FAILURE() << name << ": " << p.status().message();
      continue;
    }
    EXPECT_TRUE(warnings.empty()) << name << ": " << warnings[0].ToString();
    EXPECT_FALSE(p->operations.empty()) << name;
    EXPECT_EQ(p->name + ".yaml", name);
    parsed.emplace(name, std::move(*p));
  }
  ASSERT_EQ(parsed.size(), 56u);

  // A few of pgroll's specifics, read from its own files.
  const auto& comment_null = Op<plan::AlterColumn>(parsed.at("36_set_comment_to_null.yaml"), 0);
  EXPECT_TRUE(comment_null.comment.present && comment_null.comment.is_null);
  const auto& default_null = Op<plan::AlterColumn>(parsed.at("46_alter_column_drop_default.yaml"), 0);
  EXPECT_TRUE(default_null.default_expr.present && default_null.default_expr.is_null);
  EXPECT_EQ(parsed.at("56_with_version_schema.yaml").version_schema, "with_version_schema");
  EXPECT_EQ(Op<plan::CreateIndex>(parsed.at("54_create_index_with_opclass.yaml"), 0).columns.at(0).opclass,
            "int8_ops");
  EXPECT_TRUE(Op<plan::RawSql>(parsed.at("32_sql_on_complete.yaml"), 0).on_complete);
  const auto& excl = Op<plan::CreateTable>(parsed.at("52_create_table_with_exclusion_constraint.yaml"), 0);
  ASSERT_EQ(excl.constraints.size(), 2u);
  EXPECT_EQ(excl.constraints[1].type, plan::ConstraintType::kExclude);
  EXPECT_EQ(excl.constraints[1].exclude->elements, "title WITH =");
  const auto& three = parsed.at("01_create_tables.yaml");
  ASSERT_EQ(three.operations.size(), 3u);
  EXPECT_FALSE(Op<plan::CreateTable>(three, 1).columns.at(1).nullable);  // bills.date: no `nullable` -> NOT NULL
  EXPECT_TRUE(Op<plan::CreateTable>(three, 0).columns.at(2).nullable);
  EXPECT_EQ(Op<plan::CreateConstraint>(parsed.at("55_add_primary_key_constraint_to_table.yaml"), 1).type,
            plan::ConstraintType::kPrimaryKey);
}

}  // namespace
}  // namespace sluice::testing

namespace sluice::testing {
namespace {

// `backfill: fire_triggers` (issue 8): a strict boolean, false by default.
TEST(plan_parser, BackfillFireTriggers) {
  EXPECT_FALSE(plan::ParsePlanText("operations:\n  - drop_table: {name: t}\n", "p.yaml", nullptr)->backfill.fire_triggers);
  auto yes = plan::ParsePlanText("operations:\n  - drop_table: {name: t}\nbackfill:\n  fire_triggers: true\n", "p.yaml",
                                 nullptr);
  ASSERT_TRUE(yes.ok()) << yes.status().message();
  EXPECT_TRUE(yes->backfill.fire_triggers);
  auto bad = plan::ParsePlanText("operations:\n  - drop_table: {name: t}\nbackfill:\n  fire_triggers: 'yes'\n",
                                 "p.yaml", nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("p.yaml:4:3: error: 'fire_triggers' in backfill must be true or false"));
}

}  // namespace
}  // namespace sluice::testing
