// plan::ParsePlanText, operation by operation: every operation kind with its
// fields (pgroll's format, including its defaults and explicit nulls) and the
// exact message and file:line:col of each error in one.
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

}  // namespace
}  // namespace sluice::testing
