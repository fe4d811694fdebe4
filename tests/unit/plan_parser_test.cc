// plan::ParsePlanText / ParsePlanFile: every operation kind with its fields
// (pgroll's format, including its defaults and explicit nulls), sluice's own
// sections, JSON/YAML equivalence, the exact message and file:line:col of
// each error, and every example migration of pgroll's repository.
#include "plan/parser.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <variant>

#include "support/test_support.h"

namespace sluice::testing {
namespace {

using plan::ParsePlanFile;
using plan::ParsePlanText;
using plan::Plan;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr StatusCode kInvalid = StatusCode::kInvalidPlan;

Result<Plan> Parse(const std::string& text, const std::string& file = "p.yaml",
                   std::vector<plan::Diagnostic>* warnings = nullptr) {
  return ParsePlanText(text, file, warnings);
}

// Parses text that must be valid; fails the test otherwise.
Plan MustParse(const std::string& text, const std::string& file = "p.yaml") {
  auto r = Parse(text, file);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : Plan{};
}

template <typename T>
const T& Op(const Plan& p, size_t i) {
  static const T kEmpty{};
  if (i >= p.operations.size()) {
    ADD_FAILURE() << "plan has " << p.operations.size() << " operations, wanted #" << i + 1;
    return kEmpty;
  }
  const T* body = std::get_if<T>(&p.operations[i].body);
  if (!body) {
    ADD_FAILURE() << "operation #" << i + 1 << " is " << p.operations[i].kind;
    return kEmpty;
  }
  return *body;
}

// Number of error lines in a kInvalidPlan message.
size_t ErrorLines(const Status& s) {
  std::string m = s.message();
  return static_cast<size_t>(std::count(m.begin(), m.end(), '\n')) + 1;
}

// --- operations ---------------------------------------------------------------

TEST(plan_parser, CreateTableColumnsAndPgrollDefaults) {
  Plan p = MustParse(R"~(operations:
  - create_table:
      name: invoices
      comment: money owed
      columns:
        - name: id
          type: serial
          pk: true
        - name: customer_id
          type: integer
          references:
            name: invoices_customer_fk
            table: customers
            column: id
            on_delete: cascade
            on_update: SET NULL
            match_type: full
            deferrable: true
            initially_deferred: true
        - name: total
          type: decimal(10,2)
          default: "0.00"
          check:
            name: total_positive
            constraint: total >= 0
            no_inherit: true
        - name: memo
          type: text
          nullable: true
          unique: true
          comment: free text
        - name: total_cents
          type: bigint
          generated:
            expression: total * 100
)~");
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(p.operations[0].kind, "create_table");
  EXPECT_EQ(p.operations[0].loc.line, 2);
  EXPECT_EQ(p.operations[0].loc.column, 5);
  const auto& ct = Op<plan::CreateTable>(p, 0);
  EXPECT_EQ(ct.name.value, "invoices");
  EXPECT_EQ(ct.name.loc.line, 3);
  EXPECT_EQ(ct.name.loc.column, 13);
  EXPECT_EQ(ct.comment, "money owed");
  ASSERT_EQ(ct.columns.size(), 5u);

  const auto& id = ct.columns[0];
  EXPECT_EQ(id.name.value, "id");
  EXPECT_EQ(id.type, "serial");
  EXPECT_TRUE(id.pk);
  EXPECT_FALSE(id.nullable) << "pgroll: columns are NOT NULL unless nullable: true";
  EXPECT_FALSE(id.unique);
  EXPECT_FALSE(id.default_expr.has_value());
  EXPECT_FALSE(id.comment.has_value());
  EXPECT_FALSE(id.check.has_value());
  EXPECT_FALSE(id.references.has_value());
  EXPECT_FALSE(id.generated.has_value());

  const auto& fk = ct.columns[1];
  EXPECT_FALSE(fk.nullable);
  ASSERT_TRUE(fk.references.has_value());
  EXPECT_EQ(fk.references->name.value, "invoices_customer_fk");
  EXPECT_EQ(fk.references->table.value, "customers");
  EXPECT_EQ(fk.references->column.value, "id");
  EXPECT_EQ(fk.references->on_delete, "CASCADE");  // normalised to upper case
  EXPECT_EQ(fk.references->on_update, "SET NULL");
  EXPECT_EQ(fk.references->match_type, "FULL");
  EXPECT_TRUE(fk.references->deferrable);
  EXPECT_TRUE(fk.references->initially_deferred);
  EXPECT_EQ(fk.references->loc.line, 12);

  const auto& total = ct.columns[2];
  EXPECT_EQ(total.type, "decimal(10,2)");
  EXPECT_EQ(total.default_expr, "0.00");
  ASSERT_TRUE(total.check.has_value());
  EXPECT_EQ(total.check->name.value, "total_positive");
  EXPECT_EQ(total.check->constraint, "total >= 0");
  EXPECT_TRUE(total.check->no_inherit);

  const auto& memo = ct.columns[3];
  EXPECT_TRUE(memo.nullable);
  EXPECT_TRUE(memo.unique);
  EXPECT_EQ(memo.comment, "free text");

  const auto& cents = ct.columns[4];
  ASSERT_TRUE(cents.generated.has_value());
  EXPECT_EQ(cents.generated->expression, "total * 100");
  EXPECT_FALSE(cents.generated->identity);
}

TEST(plan_parser, ReferenceDefaultsWhenOmitted) {
  Plan p = MustParse(R"~(operations:
  - add_column:
      table: orders
      column:
        name: customer_id
        type: integer
        nullable: true
        references: {name: orders_customer_fk, table: customers, column: id}
)~");
  const auto& ac = Op<plan::AddColumn>(p, 0);
  ASSERT_TRUE(ac.column.references.has_value());
  EXPECT_EQ(ac.column.references->on_delete, "NO ACTION");
  EXPECT_EQ(ac.column.references->on_update, "NO ACTION");
  EXPECT_EQ(ac.column.references->match_type, "SIMPLE");
  EXPECT_FALSE(ac.column.references->deferrable);
  EXPECT_FALSE(ac.up.has_value());
}

TEST(plan_parser, GeneratedIdentityColumn) {
  Plan p = MustParse(R"~(operations:
  - create_table:
      name: tickets
      columns:
        - name: id
          type: bigint
          pk: true
          generated:
            identity:
              sequence_options: START 100 INCREMENT 5
              user_specified_values: by default
        - name: serial_no
          type: bigint
          generated:
            identity: {}
)~");
  const auto& ct = Op<plan::CreateTable>(p, 0);
  ASSERT_EQ(ct.columns.size(), 2u);
  ASSERT_TRUE(ct.columns[0].generated.has_value());
  EXPECT_TRUE(ct.columns[0].generated->identity);
  EXPECT_EQ(ct.columns[0].generated->expression, "");
  EXPECT_EQ(ct.columns[0].generated->sequence_options, "START 100 INCREMENT 5");
  EXPECT_EQ(ct.columns[0].generated->user_specified_values, "BY DEFAULT");
  ASSERT_TRUE(ct.columns[1].generated.has_value());
  EXPECT_TRUE(ct.columns[1].generated->identity);
  EXPECT_EQ(ct.columns[1].generated->user_specified_values, "ALWAYS");
}

TEST(plan_parser, GeneratedNeedsExactlyOneOfExpressionAndIdentity) {
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns:
        - name: id
          type: bigint
          generated:
            expression: 1
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:8:13: error: 'expression' in generated of column #1 of create_table "
                                 "(operation #1) must be a string, got an integer (quote it: \"1\")"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns:
        - name: id
          type: bigint
          generated: {}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:7:22: error: generated of column #1 of create_table (operation #1) needs "
                                 "'expression' or 'identity'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns:
        - name: id
          type: bigint
          generated:
            expression: id + 1
            identity: {}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:8:13: error: generated of column #1 of create_table (operation #1) cannot "
                                 "have both 'expression' and 'identity'"));
}

TEST(plan_parser, TableLevelConstraintsIncludingExclude) {
  Plan p = MustParse(R"~(operations:
  - create_table:
      name: bookings
      columns:
        - {name: id, type: serial}
        - {name: room, type: text}
        - {name: guest, type: text}
        - {name: during, type: tsrange}
        - {name: nights, type: integer}
      constraints:
        - name: bookings_pk
          type: primary_key
          columns: [id]
        - name: bookings_guest_room
          type: unique
          columns: [guest, room]
          deferrable: true
          initially_deferred: true
          nulls_not_distinct: true
          index_parameters:
            tablespace: fast
            storage_parameters: fillfactor=70
            include_columns: [nights]
        - name: nights_positive
          type: check
          check: nights > 0
          no_inherit: true
        - name: bookings_room_fk
          type: foreign_key
          columns: [room]
          references:
            table: rooms
            columns: [name]
            on_delete: set null
            on_update: RESTRICT
            match_type: SIMPLE
            on_delete_set_columns: [room]
        - name: no_double_booking
          type: exclude
          exclude:
            index_method: gist
            elements: room WITH =, during WITH &&
            predicate: room IS NOT NULL
)~");
  const auto& ct = Op<plan::CreateTable>(p, 0);
  ASSERT_EQ(ct.constraints.size(), 5u);
  const auto& pk = ct.constraints[0];
  EXPECT_EQ(pk.name.value, "bookings_pk");
  EXPECT_EQ(pk.type, plan::ConstraintType::kPrimaryKey);
  ASSERT_EQ(pk.columns.size(), 1u);
  EXPECT_EQ(pk.columns[0].value, "id");
  EXPECT_EQ(pk.columns[0].loc.line, 13);

  const auto& uq = ct.constraints[1];
  EXPECT_EQ(uq.type, plan::ConstraintType::kUnique);
  ASSERT_EQ(uq.columns.size(), 2u);
  EXPECT_EQ(uq.columns[1].value, "room");
  EXPECT_TRUE(uq.deferrable);
  EXPECT_TRUE(uq.initially_deferred);
  EXPECT_TRUE(uq.nulls_not_distinct);
  EXPECT_EQ(uq.index_parameters.tablespace, "fast");
  EXPECT_EQ(uq.index_parameters.storage_parameters, "fillfactor=70");
  ASSERT_EQ(uq.index_parameters.include_columns.size(), 1u);
  EXPECT_EQ(uq.index_parameters.include_columns[0].value, "nights");

  const auto& ck = ct.constraints[2];
  EXPECT_EQ(ck.type, plan::ConstraintType::kCheck);
  EXPECT_EQ(ck.check, "nights > 0");
  EXPECT_TRUE(ck.no_inherit);
  EXPECT_FALSE(ck.deferrable);

  const auto& fk = ct.constraints[3];
  EXPECT_EQ(fk.type, plan::ConstraintType::kForeignKey);
  ASSERT_TRUE(fk.references.has_value());
  EXPECT_EQ(fk.references->table.value, "rooms");
  ASSERT_EQ(fk.references->columns.size(), 1u);
  EXPECT_EQ(fk.references->columns[0].value, "name");
  EXPECT_EQ(fk.references->on_delete, "SET NULL");
  EXPECT_EQ(fk.references->on_update, "RESTRICT");
  EXPECT_EQ(fk.references->match_type, "SIMPLE");
  ASSERT_EQ(fk.references->on_delete_set_columns.size(), 1u);
  EXPECT_EQ(fk.references->on_delete_set_columns[0].value, "room");

  const auto& ex = ct.constraints[4];
  EXPECT_EQ(ex.type, plan::ConstraintType::kExclude);
  ASSERT_TRUE(ex.exclude.has_value());
  EXPECT_EQ(ex.exclude->index_method, "gist");
  EXPECT_EQ(ex.exclude->elements, "room WITH =, during WITH &&");
  EXPECT_EQ(ex.exclude->predicate, "room IS NOT NULL");
  EXPECT_TRUE(ex.columns.empty());
}

TEST(plan_parser, TableConstraintErrors) {
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - name: a_check
          type: check
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:11: error: constraint #1 of create_table (operation #1): a check "
                                 "constraint needs 'check'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - {name: c1, type: unique, columns: [a]}
        - {name: c1, type: unique, columns: [a]}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:7:18: error: duplicate constraint name 'c1' in create_table (operation #1)"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - {name: c1, type: foreign_key, columns: [a]}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:11: error: constraint #1 of create_table (operation #1): a foreign_key "
                                 "constraint needs 'references'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - {name: c1, type: exclude}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:11: error: constraint #1 of create_table (operation #1): an exclude "
                                 "constraint needs 'exclude'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - {name: c1, type: uniq, columns: [a]}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:22: error: 'type' in constraint #1 of create_table (operation #1) must "
                                 "be one of unique, check, primary_key, foreign_key, exclude, got 'uniq'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_table:
      name: t
      columns: [{name: a, type: int}]
      constraints:
        - {name: c1, columns: [a]}
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:11: error: constraint #1 of create_table (operation #1) is missing "
                                 "required key 'type'"));
}

TEST(plan_parser, AddColumnWithUp) {
  Plan p = MustParse(R"~(operations:
  - add_column:
      table: products
      up: UPPER(name)
      column:
        name: description
        type: varchar(255)
        default: '''none'''
        comment: shown on the page
)~");
  const auto& ac = Op<plan::AddColumn>(p, 0);
  EXPECT_EQ(ac.table.value, "products");
  EXPECT_EQ(ac.table.loc.line, 3);
  EXPECT_EQ(ac.table.loc.column, 14);
  EXPECT_EQ(ac.up, "UPPER(name)");
  EXPECT_EQ(ac.column.name.value, "description");
  EXPECT_EQ(ac.column.type, "varchar(255)");
  EXPECT_FALSE(ac.column.nullable);
  EXPECT_EQ(ac.column.default_expr, "'none'");
  EXPECT_EQ(ac.column.comment, "shown on the page");

  // A blank `up` is the same as none.
  Plan blank = MustParse(R"~(operations:
  - add_column:
      table: products
      up: "   "
      column: {name: d, type: text, nullable: true}
)~");
  EXPECT_FALSE(Op<plan::AddColumn>(blank, 0).up.has_value());
}

TEST(plan_parser, ColumnExplicitNullsAreAbsent) {
  Plan p = MustParse(R"~(operations:
  - add_column:
      table: t
      column: {name: c, type: text, nullable: true, default: null, comment: ~}
)~");
  const auto& c = Op<plan::AddColumn>(p, 0).column;
  EXPECT_FALSE(c.default_expr.has_value());
  EXPECT_FALSE(c.comment.has_value());
}

TEST(plan_parser, AlterColumnEveryField) {
  Plan p = MustParse(R"~(operations:
  - alter_column:
      table: events
      column: name
      name: event_name
      type: text
      nullable: false
      default: '''unknown'''
      comment: the full name
      unique:
        name: events_name_unique
      check:
        name: name_length
        constraint: length(name) > 3
      references:
        name: events_owner_fk
        table: owners
        column: name
      up: coalesce(name, 'placeholder')
      down: event_name
)~");
  const auto& ac = Op<plan::AlterColumn>(p, 0);
  EXPECT_EQ(ac.table.value, "events");
  EXPECT_EQ(ac.column.value, "name");
  EXPECT_EQ(ac.name.value, "event_name");
  EXPECT_EQ(ac.type, "text");
  EXPECT_EQ(ac.nullable, false);
  EXPECT_TRUE(ac.default_expr.present);
  EXPECT_FALSE(ac.default_expr.is_null);
  EXPECT_EQ(ac.default_expr.value, "'unknown'");
  EXPECT_EQ(ac.default_expr.loc.line, 8);
  EXPECT_TRUE(ac.comment.present);
  EXPECT_EQ(ac.comment.value, "the full name");
  ASSERT_TRUE(ac.unique.has_value());
  EXPECT_EQ(ac.unique->name.value, "events_name_unique");
  ASSERT_TRUE(ac.check.has_value());
  EXPECT_EQ(ac.check->constraint, "length(name) > 3");
  ASSERT_TRUE(ac.references.has_value());
  EXPECT_EQ(ac.references->table.value, "owners");
  EXPECT_EQ(ac.up, "coalesce(name, 'placeholder')");
  EXPECT_EQ(ac.down, "event_name");
  EXPECT_FALSE(ac.MetadataOnly());
}

TEST(plan_parser, AlterColumnExplicitNullCommentAndDefault) {
  Plan p = MustParse(R"~(operations:
  - alter_column:
      table: events
      column: name
      comment: null
      up: name
      down: name
  - alter_column:
      table: tickets
      column: ticket_type
      default: null
)~");
  const auto& drop_comment = Op<plan::AlterColumn>(p, 0);
  EXPECT_TRUE(drop_comment.comment.present);
  EXPECT_TRUE(drop_comment.comment.is_null);
  EXPECT_EQ(drop_comment.comment.loc.line, 5);
  EXPECT_FALSE(drop_comment.default_expr.present);
  EXPECT_TRUE(drop_comment.MetadataOnly());

  const auto& drop_default = Op<plan::AlterColumn>(p, 1);
  EXPECT_TRUE(drop_default.default_expr.present);
  EXPECT_TRUE(drop_default.default_expr.is_null);
  EXPECT_FALSE(drop_default.comment.present);
  EXPECT_FALSE(drop_default.up.has_value());
  EXPECT_TRUE(drop_default.MetadataOnly());
}

TEST(plan_parser, AlterColumnThatChangesNothingIsAnError) {
  EXPECT_THAT(Parse(R"~(operations:
  - alter_column:
      table: events
      column: name
      up: name
      down: name
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: alter_column (operation #1) changes nothing: give at least one "
                                 "of type, nullable, default, comment, check, unique, references"));
}

TEST(plan_parser, RenameDropAndReplicaIdentityOperations) {
  Plan p = MustParse(R"~(operations:
  - rename_column: {table: users, from: name, to: full_name}
  - drop_column:
      table: users
      column: nickname
      down: "''"
  - rename_table: {from: users, to: people}
  - drop_table: {name: old_people}
  - drop_index: {name: idx_old}
  - rename_constraint: {table: people, from: c_old, to: c_new}
  - drop_constraint:
      table: posts
      name: title_length
      up: title
      down: SELECT CASE WHEN length(title) <= 3 THEN LPAD(title, 4, '-') ELSE title END
  - drop_multicolumn_constraint:
      table: tickets
      name: unique_zip_name
      up:
        sellers_name: sellers_name
      down:
        sellers_name: sellers_name || '-x'
        sellers_zip: sellers_zip
  - set_replica_identity:
      table: fruits
      identity: {type: index, index: fruits_pkey}
  - set_replica_identity:
      table: fruits
      identity: {type: full}
)~");
  ASSERT_EQ(p.operations.size(), 10u);
  const auto& rc = Op<plan::RenameColumn>(p, 0);
  EXPECT_EQ(rc.table.value, "users");
  EXPECT_EQ(rc.from.value, "name");
  EXPECT_EQ(rc.to.value, "full_name");
  EXPECT_EQ(rc.to.loc.line, 2);
  EXPECT_EQ(rc.to.loc.column, 51);

  const auto& dc = Op<plan::DropColumn>(p, 1);
  EXPECT_EQ(dc.column.value, "nickname");
  EXPECT_EQ(dc.down, "''");

  const auto& rt = Op<plan::RenameTable>(p, 2);
  EXPECT_EQ(rt.from.value, "users");
  EXPECT_EQ(rt.to.value, "people");
  EXPECT_EQ(Op<plan::DropTable>(p, 3).name.value, "old_people");
  EXPECT_EQ(Op<plan::DropIndex>(p, 4).name.value, "idx_old");
  const auto& rn = Op<plan::RenameConstraint>(p, 5);
  EXPECT_EQ(rn.from.value, "c_old");
  EXPECT_EQ(rn.to.value, "c_new");

  const auto& dcon = Op<plan::DropConstraint>(p, 6);
  EXPECT_EQ(dcon.table.value, "posts");
  EXPECT_EQ(dcon.name.value, "title_length");
  EXPECT_TRUE(dcon.column.empty());
  EXPECT_EQ(dcon.up, "title");
  EXPECT_THAT(dcon.down, HasSubstr("LPAD(title, 4, '-')"));

  const auto& dm = Op<plan::DropMultiColumnConstraint>(p, 7);
  EXPECT_EQ(dm.up, (std::map<std::string, std::string>{{"sellers_name", "sellers_name"}}));
  EXPECT_EQ(dm.down, (std::map<std::string, std::string>{{"sellers_name", "sellers_name || '-x'"},
                                                         {"sellers_zip", "sellers_zip"}}));

  const auto& ri = Op<plan::SetReplicaIdentity>(p, 8);
  EXPECT_EQ(ri.type, "INDEX");
  EXPECT_EQ(ri.index.value, "fruits_pkey");
  EXPECT_EQ(Op<plan::SetReplicaIdentity>(p, 9).type, "FULL");
  EXPECT_TRUE(Op<plan::SetReplicaIdentity>(p, 9).index.empty());
}

TEST(plan_parser, RenameToItselfAndReplicaIdentityErrors) {
  EXPECT_THAT(Parse("operations:\n  - rename_column: {table: t, from: a, to: a}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:44: error: rename_column (operation #1) renames 'a' to itself"));
  EXPECT_THAT(Parse("operations:\n  - rename_table:\n      from: t\n      to: t\n").status(),
              StatusIs(kInvalid, "p.yaml:4:11: error: rename_table (operation #1) renames 't' to itself"));
  EXPECT_THAT(Parse("operations:\n  - set_replica_identity: {table: t, identity: {type: index}}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:48: error: identity of set_replica_identity (operation #1) of type index "
                                 "needs 'index'"));
  EXPECT_THAT(Parse("operations:\n  - set_replica_identity: {table: t, identity: {type: some}}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:49: error: 'type' in identity of set_replica_identity (operation #1) "
                                 "must be one of DEFAULT, FULL, NOTHING, INDEX, got 'some'"));
  EXPECT_THAT(Parse("operations:\n  - drop_constraint: {table: t, name: c, up: x}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:22: error: drop_constraint (operation #1) is missing required key 'down'"));
}

TEST(plan_parser, CreateIndexColumnsAsObjectsAndAsStrings) {
  Plan p = MustParse(R"~(operations:
  - create_index:
      name: idx_fruits
      table: fruits
      unique: true
      method: btree
      predicate: id > 10
      storage_parameters: fillfactor = 70
      columns:
        - column: name
          collate: C
          sort: desc
          nulls: last
          opclass:
            name: text_pattern_ops
            params: [siglen=32]
        - column: "id"
          opclass: {name: int8_ops}
        - weight
  - create_index:
      name: idx_plain
      table: fruits
      columns: [name, id]
)~");
  const auto& ci = Op<plan::CreateIndex>(p, 0);
  EXPECT_EQ(ci.name.value, "idx_fruits");
  EXPECT_EQ(ci.table.value, "fruits");
  EXPECT_TRUE(ci.unique);
  EXPECT_EQ(ci.method, "btree");
  EXPECT_EQ(ci.predicate, "id > 10");
  EXPECT_EQ(ci.storage_parameters, "fillfactor = 70");
  ASSERT_EQ(ci.columns.size(), 3u);
  EXPECT_EQ(ci.columns[0].column.value, "name");
  EXPECT_EQ(ci.columns[0].collate, "C");
  EXPECT_EQ(ci.columns[0].sort, "DESC");
  EXPECT_EQ(ci.columns[0].nulls, "LAST");
  EXPECT_EQ(ci.columns[0].opclass, "text_pattern_ops");
  EXPECT_EQ(ci.columns[0].opclass_params, std::vector<std::string>{"siglen=32"});
  EXPECT_EQ(ci.columns[0].loc.line, 10);
  EXPECT_EQ(ci.columns[1].column.value, "id");
  EXPECT_EQ(ci.columns[1].opclass, "int8_ops");
  EXPECT_EQ(ci.columns[1].sort, "");
  EXPECT_EQ(ci.columns[1].nulls, "");
  EXPECT_EQ(ci.columns[2].column.value, "weight");
  EXPECT_EQ(ci.columns[2].column.loc.line, 19);
  EXPECT_EQ(ci.columns[2].column.loc.column, 11);

  const auto& plain = Op<plan::CreateIndex>(p, 1);
  EXPECT_FALSE(plain.unique);
  EXPECT_EQ(plain.method, "");
  ASSERT_EQ(plain.columns.size(), 2u);
  EXPECT_EQ(plain.columns[0].column.value, "name");
  EXPECT_EQ(plain.columns[1].column.value, "id");
}

TEST(plan_parser, CreateIndexErrors) {
  EXPECT_THAT(Parse("operations:\n  - create_index: {name: i, table: t, columns: [a], method: fulltext}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:53: error: 'method' in create_index (operation #1) must be one of btree, "
                                 "hash, gist, spgist, gin, brin, got 'fulltext'"));
  EXPECT_THAT(Parse("operations:\n  - create_index: {name: i, table: t, columns: []}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:39: error: 'columns' in create_index (operation #1) must not be empty"));
  EXPECT_THAT(Parse("operations:\n  - create_index: {name: i, table: t, columns: a}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:39: error: 'columns' in create_index (operation #1) must be a list, got "
                                 "a string"));
  EXPECT_THAT(Parse("operations:\n  - create_index: {name: i, table: t, columns: [{column: a, sort: up}]}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:61: error: 'sort' in column #1 of create_index (operation #1) must be one "
                                 "of ASC, DESC, got 'up'"));
  EXPECT_THAT(Parse("operations:\n  - create_index: {name: i, table: t, columns: [{colum: a}]}\n").status(),
              StatusIs(kInvalid, "p.yaml:2:50: error: unknown key 'colum' in column #1 of create_index (operation "
                                 "#1) (did you mean 'column'?)"));
}

TEST(plan_parser, CreateConstraintWithUpAndDownMaps) {
  Plan p = MustParse(R"~(operations:
  - create_constraint:
      type: foreign_key
      table: tickets
      name: fk_sellers
      columns: [sellers_name, sellers_zip]
      deferrable: true
      references:
        table: sellers
        columns: [name, zip]
        on_delete: CASCADE
      up:
        sellers_name: sellers_name
        sellers_zip: coalesce(sellers_zip, 0)
      down:
        sellers_name: sellers_name
  - create_constraint:
      type: check
      table: tickets
      name: price_positive
      columns: [price]
      check: price > 0
      no_inherit: true
      up: {price: "greatest(price, 1)"}
  - create_constraint:
      type: unique
      table: tickets
      name: unique_code
      columns: [code]
      nulls_not_distinct: true
      index_parameters: {include_columns: [price]}
  - create_constraint:
      type: exclude
      table: tickets
      name: no_overlap
      exclude: {index_method: gist, elements: during WITH &&}
)~");
  const auto& fk = Op<plan::CreateConstraint>(p, 0);
  EXPECT_EQ(fk.type, plan::ConstraintType::kForeignKey);
  EXPECT_EQ(fk.table.value, "tickets");
  EXPECT_EQ(fk.name.value, "fk_sellers");
  ASSERT_EQ(fk.columns.size(), 2u);
  EXPECT_EQ(fk.columns[1].value, "sellers_zip");
  EXPECT_TRUE(fk.deferrable);
  ASSERT_TRUE(fk.references.has_value());
  EXPECT_EQ(fk.references->columns.size(), 2u);
  EXPECT_EQ(fk.references->on_delete, "CASCADE");
  EXPECT_EQ(fk.up, (std::map<std::string, std::string>{{"sellers_name", "sellers_name"},
                                                       {"sellers_zip", "coalesce(sellers_zip, 0)"}}));
  EXPECT_EQ(fk.down, (std::map<std::string, std::string>{{"sellers_name", "sellers_name"}}));

  const auto& ck = Op<plan::CreateConstraint>(p, 1);
  EXPECT_EQ(ck.type, plan::ConstraintType::kCheck);
  EXPECT_EQ(ck.check, "price > 0");
  EXPECT_TRUE(ck.no_inherit);
  EXPECT_EQ(ck.up.at("price"), "greatest(price, 1)");
  EXPECT_TRUE(ck.down.empty());

  const auto& uq = Op<plan::CreateConstraint>(p, 2);
  EXPECT_EQ(uq.type, plan::ConstraintType::kUnique);
  EXPECT_TRUE(uq.nulls_not_distinct);
  ASSERT_EQ(uq.index_parameters.include_columns.size(), 1u);
  EXPECT_EQ(uq.index_parameters.include_columns[0].value, "price");

  const auto& ex = Op<plan::CreateConstraint>(p, 3);
  EXPECT_EQ(ex.type, plan::ConstraintType::kExclude);
  ASSERT_TRUE(ex.exclude.has_value());
  EXPECT_EQ(ex.exclude->elements, "during WITH &&");
  EXPECT_TRUE(ex.columns.empty());
}

TEST(plan_parser, CreateConstraintErrors) {
  EXPECT_THAT(Parse(R"~(operations:
  - create_constraint:
      type: unique
      table: t
      name: u
      columns: [a]
      up:
        b: b
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:7:7: error: 'up.b' in create_constraint (operation #1) names a column that "
                                 "is not in 'columns'"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_constraint:
      type: unique
      table: t
      name: u
      columns: [a]
      up: a
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:7:7: error: 'up' in create_constraint (operation #1) must be a map of "
                                 "column: expression, got a string"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_constraint:
      type: unique
      table: t
      name: u
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: create_constraint (operation #1) needs a non-empty 'columns' "
                                 "list"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_constraint:
      type: check
      table: t
      name: c
      columns: [a, a]
      check: a > 0
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:6:20: error: duplicate name 'a' in 'columns' of create_constraint "
                                 "(operation #1)"));
  EXPECT_THAT(Parse(R"~(operations:
  - create_constraint:
      type: check
      table: t
      name: c
      columns: [a]
)~")
                  .status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: create_constraint (operation #1): a check constraint needs "
                                 "'check'"));
}

TEST(plan_parser, SqlOperation) {
  Plan p = MustParse(R"~(operations:
  - sql:
      up: CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)
      down: DROP TABLE users
  - sql:
      up: ALTER TABLE people ADD COLUMN birth_date timestamp
      onComplete: true
)~");
  const auto& first = Op<plan::RawSql>(p, 0);
  EXPECT_EQ(first.up, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
  EXPECT_EQ(first.down, "DROP TABLE users");
  EXPECT_FALSE(first.on_complete);
  const auto& second = Op<plan::RawSql>(p, 1);
  EXPECT_TRUE(second.on_complete);
  EXPECT_EQ(second.down, "");
}

TEST(plan_parser, SqlOperationErrors) {
  EXPECT_THAT(Parse("operations:\n  - sql:\n      up: SELECT 1\n      down: SELECT 2\n      onComplete: true\n")
                  .status(),
              StatusIs(kInvalid, "p.yaml:4:7: error: sql (operation #1): 'down' cannot be combined with "
                                 "'onComplete: true'"));
  EXPECT_THAT(Parse("operations:\n  - sql:\n      up: '  '\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: 'up' in sql (operation #1) must not be empty"));
  EXPECT_THAT(Parse("operations:\n  - sql:\n      down: DROP TABLE x\n").status(),
              StatusIs(kInvalid, "p.yaml:3:7: error: sql (operation #1) is missing required key 'up'"));
  EXPECT_THAT(Parse("operations:\n  - sql:\n      up: SELECT 1\n      oncomplete: true\n").status(),
              StatusIs(kInvalid, "p.yaml:4:7: error: unknown key 'oncomplete' in sql (operation #1) (did you mean "
                                 "'onComplete'?); allowed keys: up, down, onComplete"));
}

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
