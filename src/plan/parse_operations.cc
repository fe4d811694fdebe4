// One parser per plan operation (the names of pgroll's operations), and
// the objects they share (columns, checks, references, index parameters).
#include <algorithm>
#include <set>

#include "common/sql_text.h"
#include "plan/parser_internal.h"

namespace sluice::plan::internal {

namespace {

// --- object parsers -------------------------------------------------------

const std::vector<std::string> kFkActions = {"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"};
const std::vector<std::string> kMatchTypes = {"SIMPLE", "FULL", "PARTIAL"};

std::optional<CheckConstraint> ParseCheck(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(), {"name", "constraint", "no_inherit"});
  if (!m.valid()) return std::nullopt;
  CheckConstraint c;
  c.loc = m.loc();
  if (auto n = m.NameField("name", true)) c.name = *n;
  if (auto s = m.Str("constraint", true)) c.constraint = *s;
  c.no_inherit = m.Bool("no_inherit").value_or(false);
  return c;
}

std::optional<ForeignKeyReference> ParseReference(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(),
        {"name", "table", "column", "on_delete", "on_update", "match_type", "deferrable", "initially_deferred"});
  if (!m.valid()) return std::nullopt;
  ForeignKeyReference r;
  r.loc = m.loc();
  if (auto n = m.NameField("name", true)) r.name = *n;
  if (auto n = m.NameField("table", true)) r.table = *n;
  if (auto n = m.NameField("column", true)) r.column = *n;
  if (auto s = m.Enum("on_delete", kFkActions)) r.on_delete = *s;
  if (auto s = m.Enum("on_update", kFkActions)) r.on_update = *s;
  if (auto s = m.Enum("match_type", kMatchTypes)) r.match_type = *s;
  r.deferrable = m.Bool("deferrable").value_or(false);
  r.initially_deferred = m.Bool("initially_deferred").value_or(false);
  return r;
}

std::optional<TableForeignKeyReference> ParseTableReference(const Map& parent, const std::string& key) {
  if (!parent.Has(key)) return std::nullopt;
  Map m(parent.reader(), parent.Value(key), key + " of " + parent.context(),
        {"table", "columns", "on_delete", "on_update", "match_type", "on_delete_set_columns"});
  if (!m.valid()) return std::nullopt;
  TableForeignKeyReference r;
  r.loc = m.loc();
  if (auto n = m.NameField("table", true)) r.table = *n;
  r.columns = m.NameList("columns", true);
  if (auto s = m.Enum("on_delete", kFkActions)) r.on_delete = *s;
  if (auto s = m.Enum("on_update", kFkActions)) r.on_update = *s;
  if (auto s = m.Enum("match_type", kMatchTypes)) r.match_type = *s;
  r.on_delete_set_columns = m.NameList("on_delete_set_columns");
  return r;
}

IndexParameters ParseIndexParameters(const Map& parent) {
  IndexParameters p;
  if (!parent.Has("index_parameters")) return p;
  Map m(parent.reader(), parent.Value("index_parameters"), "index_parameters of " + parent.context(),
        {"tablespace", "storage_parameters", "include_columns"});
  if (!m.valid()) return p;
  p.tablespace = m.Str("tablespace").value_or("");
  p.storage_parameters = m.Str("storage_parameters").value_or("");
  p.include_columns = m.NameList("include_columns");
  return p;
}

std::optional<ExcludeSpec> ParseExclude(const Map& parent) {
  if (!parent.Has("exclude")) return std::nullopt;
  Map m(parent.reader(), parent.Value("exclude"), "exclude of " + parent.context(),
        {"index_method", "elements", "predicate"});
  if (!m.valid()) return std::nullopt;
  ExcludeSpec e;
  e.index_method = m.Str("index_method").value_or("");
  e.elements = m.Str("elements", true).value_or("");
  e.predicate = m.Str("predicate").value_or("");
  return e;
}

std::optional<ConstraintType> ParseConstraintType(const Map& m, const std::vector<std::string>& allowed) {
  auto s = m.Enum("type", allowed, /*upper=*/false);
  if (!s) return std::nullopt;
  if (*s == "unique") return ConstraintType::kUnique;
  if (*s == "check") return ConstraintType::kCheck;
  if (*s == "primary_key") return ConstraintType::kPrimaryKey;
  if (*s == "foreign_key") return ConstraintType::kForeignKey;
  return ConstraintType::kExclude;
}

ColumnDef ParseColumn(Reader& r, const YAML::Node& node, const std::string& context) {
  ColumnDef c;
  Map m(r, node, context,
        {"name", "type", "nullable", "pk", "unique", "default", "comment", "check", "references", "generated"});
  c.loc = m.loc();
  if (!m.valid()) return c;
  if (auto n = m.NameField("name", true)) c.name = *n;
  if (auto t = m.Str("type", true)) {
    if (t->empty()) r.Error(m.KeyLoc("type"), "'type' in " + context + " must not be empty");
    c.type = *t;
  }
  c.nullable = m.Bool("nullable").value_or(false);
  c.pk = m.Bool("pk").value_or(false);
  c.unique = m.Bool("unique").value_or(false);
  NullableString def = m.NullStr("default");
  if (def.present && !def.is_null) c.default_expr = def.value;
  NullableString com = m.NullStr("comment");
  if (com.present && !com.is_null) c.comment = com.value;
  c.check = ParseCheck(m, "check");
  c.references = ParseReference(m, "references");
  if (m.Has("generated")) {
    Map g(r, m.Value("generated"), "generated of " + context, {"expression", "identity"});
    if (g.valid()) {
      GeneratedColumn gen;
      gen.expression = g.Str("expression").value_or("");
      if (g.Has("identity")) {
        Map id(r, g.Value("identity"), "identity of " + context, {"sequence_options", "user_specified_values"});
        if (id.valid()) {
          gen.identity = true;
          gen.sequence_options = id.Str("sequence_options").value_or("");
          if (auto u = id.Enum("user_specified_values", {"ALWAYS", "BY DEFAULT"})) gen.user_specified_values = *u;
        }
      }
      if (gen.expression.empty() && !gen.identity) {
        r.Error(g.loc(), "generated of " + context + " needs 'expression' or 'identity'");
      }
      if (!gen.expression.empty() && gen.identity) {
        r.Error(g.loc(), "generated of " + context + " cannot have both 'expression' and 'identity'");
      }
      c.generated = gen;
    }
  }
  return c;
}

std::vector<ColumnDef> ParseColumns(Reader& r, const Map& m, const std::string& context) {
  std::vector<ColumnDef> out;
  if (!m.Has("columns")) {
    m.Require("columns");
    return out;
  }
  YAML::Node v = m.Value("columns");
  if (KindOf(v) != Kind::kList) {
    r.Error(m.KeyLoc("columns"), "'columns' in " + context + " must be a list, got " + KindName(KindOf(v)));
    return out;
  }
  std::map<std::string, int> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    ColumnDef c = ParseColumn(r, v[i], "column #" + std::to_string(i + 1) + " of " + context);
    if (!c.name.empty()) {
      auto [it, fresh] = seen.emplace(c.name.value, c.name.loc.line);
      if (!fresh) {
        r.Error(c.name.loc, "duplicate column name '" + c.name.value + "' in " + context + " (first at line " +
                                std::to_string(it->second) + ")");
      }
    }
    out.push_back(std::move(c));
  }
  if (v.size() == 0) r.Error(m.KeyLoc("columns"), "'columns' in " + context + " must not be empty");
  return out;
}

// --- operations -------------------------------------------------------------

std::optional<OperationBody> ParseCreateTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name", "columns", "comment", "constraints"});
  if (!m.valid()) return std::nullopt;
  CreateTable op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  op.columns = ParseColumns(r, m, ctx);
  op.comment = m.Str("comment");
  if (m.Has("constraints")) {
    YAML::Node cs = m.Value("constraints");
    if (KindOf(cs) != Kind::kList) {
      r.Error(m.KeyLoc("constraints"), "'constraints' in " + ctx + " must be a list");
    } else {
      std::set<std::string> names;
      for (size_t i = 0; i < cs.size(); ++i) {
        std::string cctx = "constraint #" + std::to_string(i + 1) + " of " + ctx;
        Map cm(r, cs[i], cctx,
               {"name", "type", "columns", "deferrable", "initially_deferred", "nulls_not_distinct", "no_inherit",
                "check", "references", "exclude", "index_parameters"});
        if (!cm.valid()) continue;
        ConstraintDef c;
        c.loc = cm.loc();
        if (auto v = cm.NameField("name", true)) {
          c.name = *v;
          if (!names.insert(v->value).second) {
            r.Error(v->loc, "duplicate constraint name '" + v->value + "' in " + ctx);
          }
        }
        cm.Require("type");
        if (auto t = ParseConstraintType(cm, {"unique", "check", "primary_key", "foreign_key", "exclude"})) c.type = *t;
        c.columns = cm.NameList("columns");
        c.deferrable = cm.Bool("deferrable").value_or(false);
        c.initially_deferred = cm.Bool("initially_deferred").value_or(false);
        c.nulls_not_distinct = cm.Bool("nulls_not_distinct").value_or(false);
        c.no_inherit = cm.Bool("no_inherit").value_or(false);
        c.check = cm.Str("check").value_or("");
        c.references = ParseTableReference(cm, "references");
        c.exclude = ParseExclude(cm);
        c.index_parameters = ParseIndexParameters(cm);
        switch (c.type) {
          case ConstraintType::kCheck:
            if (c.check.empty()) r.Error(cm.loc(), cctx + ": a check constraint needs 'check'");
            break;
          case ConstraintType::kForeignKey:
            if (!c.references) r.Error(cm.loc(), cctx + ": a foreign_key constraint needs 'references'");
            [[fallthrough]];
          case ConstraintType::kUnique:
          case ConstraintType::kPrimaryKey:
            if (c.columns.empty()) r.Error(cm.loc(), cctx + ": needs a non-empty 'columns' list");
            break;
          case ConstraintType::kExclude:
            if (!c.exclude) r.Error(cm.loc(), cctx + ": an exclude constraint needs 'exclude'");
            break;
        }
        op.constraints.push_back(std::move(c));
      }
    }
  }
  return op;
}

// `fallback:` next to `up`: an SQL expression over the old row, never empty.
std::optional<std::string> ParseFallback(Reader& r, const Map& m, const std::string& ctx) {
  auto f = m.Str("fallback");
  if (f && sql::Trim(*f).empty()) {
    r.Error(m.KeyLoc("fallback"), "'fallback' in " + ctx + " must not be empty; leave it out to store NULL");
    f.reset();
  }
  return f;
}

std::optional<OperationBody> ParseAddColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "column", "up", "fallback"});
  if (!m.valid()) return std::nullopt;
  AddColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (m.Has("column")) {
    op.column = ParseColumn(r, m.Value("column"), "column of " + ctx);
  } else {
    m.Require("column");
  }
  op.up = m.Str("up");
  if (op.up && sql::Trim(*op.up).empty()) op.up.reset();
  op.fallback = ParseFallback(r, m, ctx);
  if (op.fallback && !op.up) {
    r.Error(m.KeyLoc("fallback"), "'fallback' in " + ctx + " needs 'up': it replaces what 'up' could not convert");
  }
  return op;
}

std::optional<OperationBody> ParseAlterColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx,
        {"table", "column", "name", "type", "nullable", "default", "comment", "check", "unique", "references", "up",
         "down", "fallback"});
  if (!m.valid()) return std::nullopt;
  AlterColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("column", true)) op.column = *v;
  if (auto v = m.NameField("name")) op.name = *v;
  op.type = m.Str("type");
  op.nullable = m.Bool("nullable");
  op.default_expr = m.NullStr("default");
  op.comment = m.NullStr("comment");
  op.check = ParseCheck(m, "check");
  if (m.Has("unique")) {
    Map u(r, m.Value("unique"), "unique of " + ctx, {"name"});
    if (u.valid()) {
      UniqueSpec spec;
      if (auto v = u.NameField("name", true)) spec.name = *v;
      op.unique = spec;
    }
  }
  op.references = ParseReference(m, "references");
  op.up = m.Str("up");
  op.down = m.Str("down");
  if (op.up && sql::Trim(*op.up).empty()) op.up.reset();
  if (op.down && sql::Trim(*op.down).empty()) op.down.reset();
  op.fallback = ParseFallback(r, m, ctx);
  bool any = op.type || op.nullable || op.default_expr.present || op.comment.present || op.check || op.unique ||
             op.references || !op.name.empty();
  if (!any && !r.has_errors()) {
    r.Error(m.loc(), ctx + " changes nothing: give at least one of type, nullable, default, comment, check, "
                           "unique, references");
  }
  return op;
}

std::optional<OperationBody> ParseRenameColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  if (!op.from.empty() && op.from.value == op.to.value) {
    r.Error(op.to.loc, ctx + " renames '" + op.from.value + "' to itself");
  }
  return op;
}

std::optional<OperationBody> ParseDropColumn(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "column", "down"});
  if (!m.valid()) return std::nullopt;
  DropColumn op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("column", true)) op.column = *v;
  op.down = m.Str("down");
  if (op.down && sql::Trim(*op.down).empty()) op.down.reset();
  return op;
}

std::optional<OperationBody> ParseRenameTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameTable op;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  if (!op.from.empty() && op.from.value == op.to.value) {
    r.Error(op.to.loc, ctx + " renames '" + op.from.value + "' to itself");
  }
  return op;
}

std::optional<OperationBody> ParseDropTable(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name"});
  if (!m.valid()) return std::nullopt;
  DropTable op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  return op;
}

std::optional<OperationBody> ParseCreateIndex(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name", "table", "columns", "predicate", "method", "storage_parameters", "unique"});
  if (!m.valid()) return std::nullopt;
  CreateIndex op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  if (auto v = m.NameField("table", true)) op.table = *v;
  op.predicate = m.Str("predicate").value_or("");
  if (auto s = m.Enum("method", {"btree", "hash", "gist", "spgist", "gin", "brin"}, false)) op.method = *s;
  op.storage_parameters = m.Str("storage_parameters").value_or("");
  op.unique = m.Bool("unique").value_or(false);
  if (!m.Has("columns")) {
    m.Require("columns");
    return op;
  }
  YAML::Node cols = m.Value("columns");
  if (KindOf(cols) != Kind::kList) {
    r.Error(m.KeyLoc("columns"), "'columns' in " + ctx + " must be a list, got " + KindName(KindOf(cols)));
    return op;
  }
  if (cols.size() == 0) r.Error(m.KeyLoc("columns"), "'columns' in " + ctx + " must not be empty");
  for (size_t i = 0; i < cols.size(); ++i) {
    IndexField f;
    f.loc = LocOf(cols[i]);
    if (KindOf(cols[i]) == Kind::kString) {
      // Older pgroll files list plain column names.
      f.column = {cols[i].Scalar(), f.loc};
    } else {
      std::string fctx = "column #" + std::to_string(i + 1) + " of " + ctx;
      Map fm(r, cols[i], fctx, {"column", "collate", "sort", "opclass", "nulls"});
      if (!fm.valid()) continue;
      if (auto v = fm.NameField("column", true)) f.column = *v;
      f.collate = fm.Str("collate").value_or("");
      if (auto s = fm.Enum("sort", {"ASC", "DESC"})) f.sort = *s;
      if (auto s = fm.Enum("nulls", {"FIRST", "LAST"})) f.nulls = *s;
      if (fm.Has("opclass")) {
        Map om(r, fm.Value("opclass"), "opclass of " + fctx, {"name", "params"});
        if (om.valid()) {
          f.opclass = om.Str("name").value_or("");
          f.opclass_params = om.StrList("params");
        }
      }
    }
    op.columns.push_back(std::move(f));
  }
  return op;
}

std::optional<OperationBody> ParseDropIndex(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"name"});
  if (!m.valid()) return std::nullopt;
  DropIndex op;
  if (auto v = m.NameField("name", true)) op.name = *v;
  return op;
}

std::optional<OperationBody> ParseCreateConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx,
        {"table", "name", "type", "columns", "check", "references", "index_parameters", "no_inherit", "deferrable",
         "initially_deferred", "nulls_not_distinct", "exclude", "up", "down"});
  if (!m.valid()) return std::nullopt;
  CreateConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  m.Require("type");
  if (auto t = ParseConstraintType(m, {"unique", "check", "foreign_key", "primary_key", "exclude"})) op.type = *t;
  op.columns = m.NameList("columns");
  op.check = m.Str("check").value_or("");
  op.references = ParseTableReference(m, "references");
  op.index_parameters = ParseIndexParameters(m);
  op.no_inherit = m.Bool("no_inherit").value_or(false);
  op.deferrable = m.Bool("deferrable").value_or(false);
  op.initially_deferred = m.Bool("initially_deferred").value_or(false);
  op.nulls_not_distinct = m.Bool("nulls_not_distinct").value_or(false);
  op.exclude = ParseExclude(m);
  op.up = m.StrMap("up");
  op.down = m.StrMap("down");
  if (op.type != ConstraintType::kExclude && op.columns.empty() && m.valid()) {
    r.Error(m.loc(), ctx + " needs a non-empty 'columns' list");
  }
  if (op.type == ConstraintType::kCheck && op.check.empty()) r.Error(m.loc(), ctx + ": a check constraint needs 'check'");
  if (op.type == ConstraintType::kForeignKey && !op.references) {
    r.Error(m.loc(), ctx + ": a foreign_key constraint needs 'references'");
  }
  if (op.type == ConstraintType::kExclude && !op.exclude) {
    r.Error(m.loc(), ctx + ": an exclude constraint needs 'exclude'");
  }
  for (const char* side : {"up", "down"}) {
    const auto& exprs = std::string(side) == "up" ? op.up : op.down;
    for (const auto& entry : exprs) {
      // Not a structured binding: clang before 16 cannot capture one in a lambda.
      const std::string& col = entry.first;
      bool listed = std::any_of(op.columns.begin(), op.columns.end(), [&](const Name& c) { return c.value == col; });
      if (!listed) {
        r.Error(m.KeyLoc(side), "'" + std::string(side) + "." + col + "' in " + ctx +
                                    " names a column that is not in 'columns'");
      }
    }
  }
  return op;
}

std::optional<OperationBody> ParseDropConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "name", "column", "up", "down"});
  if (!m.valid()) return std::nullopt;
  DropConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  if (auto v = m.NameField("column")) op.column = *v;
  op.up = m.Str("up").value_or("");
  op.down = m.Str("down", true).value_or("");
  return op;
}

std::optional<OperationBody> ParseDropMultiColumnConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "name", "up", "down"});
  if (!m.valid()) return std::nullopt;
  DropMultiColumnConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("name", true)) op.name = *v;
  op.up = m.StrMap("up");
  op.down = m.StrMap("down", true);
  return op;
}

std::optional<OperationBody> ParseRenameConstraint(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "from", "to"});
  if (!m.valid()) return std::nullopt;
  RenameConstraint op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (auto v = m.NameField("from", true)) op.from = *v;
  if (auto v = m.NameField("to", true)) op.to = *v;
  return op;
}

std::optional<OperationBody> ParseRawSql(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"up", "down", "onComplete"});
  if (!m.valid()) return std::nullopt;
  RawSql op;
  op.up = m.Str("up", true).value_or("");
  op.down = m.Str("down").value_or("");
  op.on_complete = m.Bool("onComplete").value_or(false);
  if (m.Has("up") && sql::Trim(op.up).empty()) r.Error(m.KeyLoc("up"), "'up' in " + ctx + " must not be empty");
  if (op.on_complete && !op.down.empty()) {
    r.Error(m.KeyLoc("down"), ctx + ": 'down' cannot be combined with 'onComplete: true' (the SQL runs only "
                                    "at complete, after which there is no rollback)");
  }
  return op;
}

std::optional<OperationBody> ParseSetReplicaIdentity(Reader& r, const YAML::Node& n, const std::string& ctx) {
  Map m(r, n, ctx, {"table", "identity"});
  if (!m.valid()) return std::nullopt;
  SetReplicaIdentity op;
  if (auto v = m.NameField("table", true)) op.table = *v;
  if (!m.Has("identity")) {
    m.Require("identity");
    return op;
  }
  Map id(r, m.Value("identity"), "identity of " + ctx, {"type", "index"});
  if (!id.valid()) return op;
  if (auto t = id.Enum("type", {"DEFAULT", "FULL", "NOTHING", "INDEX"})) op.type = *t;
  if (!id.Has("type")) id.Require("type");
  if (auto v = id.NameField("index")) op.index = *v;
  if (op.type == "INDEX" && op.index.empty()) r.Error(id.loc(), "identity of " + ctx + " of type index needs 'index'");
  return op;
}

}  // namespace

const std::vector<std::pair<std::string, OpParser>>& OpParsers() {
  static const std::vector<std::pair<std::string, OpParser>> kParsers = {
      {"create_table", ParseCreateTable},
      {"add_column", ParseAddColumn},
      {"alter_column", ParseAlterColumn},
      {"rename_column", ParseRenameColumn},
      {"drop_column", ParseDropColumn},
      {"rename_table", ParseRenameTable},
      {"drop_table", ParseDropTable},
      {"create_index", ParseCreateIndex},
      {"drop_index", ParseDropIndex},
      {"create_constraint", ParseCreateConstraint},
      {"drop_constraint", ParseDropConstraint},
      {"drop_multicolumn_constraint", ParseDropMultiColumnConstraint},
      {"rename_constraint", ParseRenameConstraint},
      {"sql", ParseRawSql},
      {"set_replica_identity", ParseSetReplicaIdentity},
  };
  return kParsers;
}

}  // namespace sluice::plan::internal
