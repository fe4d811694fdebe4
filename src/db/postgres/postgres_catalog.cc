#include "db/postgres/postgres_catalog.h"

#include <map>

#include "common/sql_text.h"

namespace sluice::db {
namespace {

// One row per (thing depended on, dependent object). The thing depended on
// is a column of a table of schema $1 (col), the table or its row type
// (col = ''), or one of its indexes (idx). Views reached through views are
// followed (closure, with `via`), and so is everything else that depends on
// those views. $2: sluice's own schemas, one per line; objects in them are
// left out.
constexpr const char* kDependentsSql = R"SQL(
WITH RECURSIVE
own AS (SELECT unnest(string_to_array($2, E'\n')) AS nspname),
tbl AS (
  SELECT c.oid, c.relname, c.reltype FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')),
target AS (
  SELECT t.oid AS relid, t.relname, 'pg_class'::regclass AS refclass, t.oid AS refobj, a.attnum AS refsub,
         a.attname::text AS col, ''::text AS idx
  FROM tbl t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT t.oid, t.relname, 'pg_class'::regclass, t.oid, 0, '', '' FROM tbl t
  UNION ALL SELECT t.oid, t.relname, 'pg_type'::regclass, t.reltype, 0, '', '' FROM tbl t
  UNION ALL SELECT t.oid, t.relname, 'pg_class'::regclass, i.indexrelid, 0, '', ic.relname::text
  FROM tbl t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid),
dep AS (
  SELECT g.relid, g.relname::text AS tbl, g.col, g.idx, g.refsub, d.classid, d.objid, d.objsubid, d.deptype,
    CASE d.classid
      WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objid)
      WHEN 'pg_class'::regclass THEN (SELECT CASE WHEN k.relkind IN ('i', 'I')
                                              THEN (SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = k.oid)
                                              ELSE k.oid END FROM pg_class k WHERE k.oid = d.objid)
      WHEN 'pg_trigger'::regclass THEN (SELECT tg.tgrelid FROM pg_trigger tg WHERE tg.oid = d.objid)
      WHEN 'pg_policy'::regclass THEN (SELECT p.polrelid FROM pg_policy p WHERE p.oid = d.objid)
      WHEN 'pg_constraint'::regclass THEN (SELECT c.conrelid FROM pg_constraint c WHERE c.oid = d.objid)
      WHEN 'pg_attrdef'::regclass THEN (SELECT ad.adrelid FROM pg_attrdef ad WHERE ad.oid = d.objid)
      WHEN 'pg_statistic_ext'::regclass THEN (SELECT s.stxrelid FROM pg_statistic_ext s WHERE s.oid = d.objid)
    END AS onrel
  FROM target g JOIN pg_depend d ON d.refclassid = g.refclass AND d.refobjid = g.refobj AND d.refobjsubid = g.refsub
  WHERE d.deptype IN ('n', 'a') AND NOT (d.classid = 'pg_class'::regclass AND d.objid = g.relid)),
closure(tbl, col, idx, oid, via) AS (
  SELECT DISTINCT dep.tbl, dep.col, dep.idx, dep.onrel, ''::text FROM dep JOIN pg_class v ON v.oid = dep.onrel
  WHERE dep.classid = 'pg_rewrite'::regclass AND v.relkind = 'v' AND dep.onrel <> dep.relid
  UNION
  SELECT c.tbl, c.col, c.idx, r.ev_class, (SELECT (vn.nspname || '.' || vc.relname)::text COLLATE "default"
                                           FROM pg_class vc JOIN pg_namespace vn ON vn.oid = vc.relnamespace
                                           WHERE vc.oid = c.oid)
  FROM closure c
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> c.oid
  JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'),
viewdep AS (
  SELECT c.tbl, c.col, c.idx, d.classid, d.objid, d.objsubid, d.deptype,
    (SELECT vn.nspname || '.' || v.relname FROM pg_namespace vn WHERE vn.oid = v.relnamespace) AS via,
    CASE d.classid
      WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objid)
      WHEN 'pg_trigger'::regclass THEN (SELECT tg.tgrelid FROM pg_trigger tg WHERE tg.oid = d.objid)
      WHEN 'pg_attrdef'::regclass THEN (SELECT ad.adrelid FROM pg_attrdef ad WHERE ad.oid = d.objid)
      WHEN 'pg_class'::regclass THEN d.objid
    END AS onrel, v.oid AS viewoid
  FROM (SELECT DISTINCT tbl, col, idx, oid FROM closure) c JOIN pg_class v ON v.oid = c.oid
  JOIN pg_depend d ON (d.refclassid = 'pg_class'::regclass AND d.refobjid = v.oid)
                   OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = v.reltype)
  WHERE d.deptype IN ('n', 'a')),
sequser AS (
  SELECT dep.tbl, dep.col, dep.idx, d2.classid, d2.objid, d2.objsubid, d2.deptype, ad.adrelid AS onrel,
         (SELECT sn.nspname || '.' || s.relname FROM pg_namespace sn WHERE sn.oid = s.relnamespace) AS via
  FROM dep JOIN pg_class s ON dep.classid = 'pg_class'::regclass AND s.oid = dep.objid AND s.relkind = 'S'
  JOIN pg_depend d2 ON d2.refclassid = 'pg_class'::regclass AND d2.refobjid = s.oid AND d2.classid = 'pg_attrdef'::regclass
  JOIN pg_attrdef ad ON ad.oid = d2.objid
  WHERE NOT (ad.adrelid = dep.relid AND ad.adnum = dep.refsub)),
rows AS (
  SELECT dep.tbl, dep.col, dep.idx, dep.classid, dep.objid, dep.objsubid, dep.deptype, '' AS via, dep.onrel,
         dep.onrel = dep.relid AS same,
         CASE WHEN dep.classid = 'pg_attrdef'::regclass THEN
           CASE WHEN (SELECT ad.adnum FROM pg_attrdef ad WHERE ad.oid = dep.objid) = dep.refsub THEN 'default'
                ELSE 'generated' END END AS hint
  FROM dep
  UNION ALL
  SELECT c.tbl, c.col, c.idx, 'pg_rewrite'::regclass, 0, 0, 'n', c.via, c.oid, false, NULL FROM closure c WHERE c.via <> ''
  UNION ALL
  SELECT v.tbl, v.col, v.idx, v.classid, v.objid, v.objsubid, v.deptype, v.via, v.onrel, v.onrel = v.viewoid,
         CASE WHEN v.classid = 'pg_attrdef'::regclass THEN 'view default' END
  FROM viewdep v
  WHERE NOT (v.classid = 'pg_rewrite'::regclass
             AND (v.onrel = v.viewoid OR (SELECT relkind FROM pg_class WHERE oid = v.onrel) = 'v'))
    AND NOT (v.classid = 'pg_type'::regclass)
  UNION ALL
  SELECT s.tbl, s.col, s.idx, s.classid, s.objid, s.objsubid, s.deptype, s.via, s.onrel, false, 'sequence user'
  FROM sequser s)
SELECT r.tbl, r.col, r.idx,
  CASE
    WHEN r.hint IS NOT NULL THEN r.hint
    WHEN r.classid = 'pg_rewrite'::regclass THEN
      CASE WHEN r.objid <> 0 AND (SELECT rulename FROM pg_rewrite WHERE oid = r.objid) <> '_RETURN' THEN 'rule'
           ELSE CASE (SELECT relkind FROM pg_class WHERE oid = r.onrel) WHEN 'v' THEN 'view'
                     WHEN 'm' THEN 'materialized view' ELSE 'rule' END END
    WHEN r.classid = 'pg_class'::regclass AND r.objsubid > 0 THEN 'column'
    WHEN r.classid = 'pg_class'::regclass THEN
      CASE (SELECT relkind FROM pg_class WHERE oid = r.objid) WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index'
           WHEN 'I' THEN 'index' ELSE 'other' END
    WHEN r.classid = 'pg_constraint'::regclass THEN
      CASE WHEN (SELECT contype FROM pg_constraint WHERE oid = r.objid) = 'f' AND r.deptype = 'n' THEN 'foreign key'
           ELSE 'constraint' END
    WHEN r.classid = 'pg_trigger'::regclass THEN 'trigger'
    WHEN r.classid = 'pg_policy'::regclass THEN 'policy'
    WHEN r.classid = 'pg_statistic_ext'::regclass THEN 'statistics'
    WHEN r.classid = 'pg_proc'::regclass THEN 'function'
    ELSE 'other' END AS kind,
  CASE WHEN r.classid = 'pg_rewrite'::regclass
            AND (r.objid = 0 OR (SELECT rulename FROM pg_rewrite WHERE oid = r.objid) = '_RETURN')
       THEN (SELECT CASE k.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END || kn.nspname || '.' || k.relname
             FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace WHERE k.oid = r.onrel)
       ELSE pg_describe_object(r.classid, r.objid, r.objsubid) END AS what,
  coalesce((SELECT kn.nspname FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace
            WHERE k.oid = r.onrel), '') AS relnsp,
  coalesce((SELECT k.relname FROM pg_class k WHERE k.oid = r.onrel), '') AS relname,
  r.deptype = 'a' AS auto, r.via, coalesce(r.same, false) AS same,
  coalesce((SELECT pg_has_role(current_user, k.relowner, 'MEMBER')
                   AND has_schema_privilege(current_user, k.relnamespace, 'CREATE')
            FROM pg_class k WHERE k.oid = r.onrel), true) AS owned
FROM rows r
WHERE NOT EXISTS (SELECT 1 FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace
                  WHERE k.oid = r.onrel AND kn.nspname IN (SELECT nspname FROM own))
  AND NOT (r.classid = 'pg_trigger'::regclass
           AND (SELECT tgname FROM pg_trigger WHERE oid = r.objid) LIKE '~sluice\_dw\_%')
ORDER BY 1, 2, 3, 5, 9
)SQL";

DependentInfo::Kind KindOf(const std::string& k) {
  using K = DependentInfo::Kind;
  static const std::map<std::string, K> kKinds = {
      {"view", K::kView},           {"materialized view", K::kMaterializedView},
      {"foreign key", K::kForeignKey}, {"policy", K::kPolicy},
      {"trigger", K::kTrigger},     {"rule", K::kRule},
      {"generated", K::kGeneratedColumn}, {"statistics", K::kStatistics},
      {"index", K::kIndex},         {"constraint", K::kConstraint},
      {"sequence", K::kSequence},   {"sequence user", K::kSequenceUser},
      {"default", K::kDefault},     {"view default", K::kDefault},
      {"function", K::kFunction},   {"column", K::kColumn}};
  auto it = kKinds.find(k);
  return it == kKinds.end() ? K::kOther : it->second;
}

}  // namespace

Status IntrospectDependents(Connection& conn, const PostgresDialect& d, Schema* schema) {
  // sluice's own schemas: the live alias and every version it has made.
  std::string own = d.LiveSchema();
  auto has_state = conn.Query("SELECT to_regclass($1) IS NOT NULL",
                              {Value::Text(d.StateTable("migrations"))});
  if (!has_state.ok()) return has_state.status();
  if (has_state->Scalar().text == "t") {
    auto versions = conn.Query("SELECT DISTINCT version FROM " + d.StateTable("migrations"));
    if (!versions.ok()) return versions.status();
    for (const auto& r : versions->rows) own += "\n" + d.VersionSchema(r[0].text);
  }
  auto rows = conn.Query(kDependentsSql, {Value::Text(d.schema()), Value::Text(own)});
  if (!rows.ok()) return rows.status();
  for (const auto& r : rows->rows) {
    auto it = schema->tables.find(r[0].text);
    if (it == schema->tables.end()) continue;
    DependentInfo dep;
    dep.column = r[1].text;
    dep.index = r[2].text;
    dep.kind = KindOf(r[3].text);
    dep.description = r[4].text;
    dep.relation_schema = r[5].text;
    dep.relation_name = r[6].text;
    if (!dep.relation_name.empty()) dep.relation = dep.relation_schema + "." + dep.relation_name;
    dep.auto_dropped = r[7].text == "t";
    dep.via = r[8].text;
    dep.same_table = r[9].text == "t";
    dep.owned = r[10].text == "t";
    it->second.dependents.push_back(std::move(dep));
  }
  return Status::Ok();
}

// --- rendering ------------------------------------------------------------

namespace {

using sql::QuoteLiteral;

// (VALUES (...), ...) AS rc(nsp, tbl, col, fin, ftbl, cpy) of the replaced
// columns. (Aliases in the DO blocks never reuse a PL/pgSQL variable's
// name: PL/pgSQL would read `x.col` as the variable's field.)
std::string ReplacedValues(const PostgresDialect& d, const std::vector<ReplacedColumn>& cols) {
  std::string v;
  for (const auto& c : cols) {
    v += (v.empty() ? "" : ", ") + std::string("(") + QuoteLiteral(d.schema()) + "::text, " + QuoteLiteral(c.table) +
         "::text, " + QuoteLiteral(c.column) + "::text, " + QuoteLiteral(c.final_name) + "::text, " +
         QuoteLiteral(c.final_table) + "::text, " + QuoteLiteral(c.copy) + "::text)";
  }
  return "(VALUES " + v + ") AS rc(nsp, tbl, col, fin, ftbl, cpy)";
}

}  // namespace

// Runs in complete's main transaction, after the old version's read paths
// and other versions' views of these tables are gone (they are sluice's and
// handled elsewhere), so what it finds are the user's views.
std::string SaveDependentViewsSql(const PostgresDialect& d, const std::vector<ReplacedColumn>& columns) {
  const std::string values = ReplacedValues(d, columns);
  // A column (or table) that has views gets its final name for the moment
  // the definitions are read, so they name the new column (pg_get_viewdef
  // prints names, PostgreSQL binds them again at CREATE VIEW).
  const std::string has_views =
      "EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_rewrite rr ON rr.oid = dd.objid JOIN pg_attribute aa ON "
      "aa.attrelid = dd.refobjid AND aa.attnum = dd.refobjsubid WHERE dd.classid = 'pg_rewrite'::regclass AND "
      "dd.refclassid = 'pg_class'::regclass AND dd.refobjid = format('%I.%I', rc.nsp, rc.tbl)::regclass AND "
      "aa.attname = rc.col AND rr.ev_class <> dd.refobjid)";
  return R"(DO $sluice$
DECLARE
  path text := current_setting('search_path');
  x record; v record; c record; st text[]; bad text; u text; undo text[] := '{}';
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', true);
  DROP TABLE IF EXISTS pg_temp._sluice_saved_views;
  CREATE TEMP TABLE _sluice_saved_views (oid oid, depth int, nsp name, rel name, stmts text[], acl text[],
                                         colacl jsonb) ON COMMIT DROP;
  INSERT INTO pg_temp._sluice_saved_views (oid, depth)
  WITH RECURSIVE roots AS (
    SELECT DISTINCT r.ev_class AS oid FROM )" + values + R"(
    JOIN pg_attribute a ON a.attrelid = format('%I.%I', rc.nsp, rc.tbl)::regclass AND a.attname = rc.col
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                    AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
    JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> a.attrelid),
  closure(oid, depth) AS (
    SELECT oid, 1 FROM roots
    UNION ALL
    SELECT r.ev_class, cl.depth + 1 FROM closure cl
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = cl.oid
    JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> cl.oid)
  SELECT oid, max(depth) FROM closure GROUP BY oid;
  IF NOT EXISTS (SELECT 1 FROM pg_temp._sluice_saved_views) THEN
    PERFORM set_config('search_path', path, true);
    RETURN;
  END IF;
  SELECT string_agg(CASE k.relkind WHEN 'm' THEN 'materialized view ' ELSE 'relation ' END || k.oid::regclass::text,
                    ', ') INTO bad
  FROM pg_temp._sluice_saved_views s JOIN pg_class k ON k.oid = s.oid WHERE k.relkind <> 'v';
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'sluice: cannot recreate % (it reads a column complete replaces; sluice recreates only plain views): drop it before complete and recreate it afterwards (nothing was changed)', bad;
  END IF;
  SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO bad
  FROM pg_temp._sluice_saved_views s JOIN pg_class k ON k.oid = s.oid
  JOIN pg_depend d ON ((d.refclassid = 'pg_class'::regclass AND d.refobjid = k.oid)
                       OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = k.reltype)) AND d.deptype = 'n'
  WHERE NOT (d.classid = 'pg_rewrite'::regclass AND EXISTS (
    SELECT 1 FROM pg_rewrite r JOIN pg_temp._sluice_saved_views s2 ON s2.oid = r.ev_class WHERE r.oid = d.objid));
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'sluice: cannot recreate % (it depends on a view that reads a column complete replaces): drop it before complete and recreate it afterwards (nothing was changed)', bad;
  END IF;
  FOR x IN SELECT rc.* FROM )" + values + R"( WHERE rc.fin <> rc.col AND )" + has_views + R"( LOOP
    -- The copy may already carry the final name: it steps aside meanwhile.
    IF x.cpy = x.fin THEN
      EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', x.nsp, x.tbl, x.cpy, '_sluice_aside_' || x.cpy);
      undo := format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', x.nsp, x.tbl, '_sluice_aside_' || x.cpy, x.cpy) || undo;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = format('%I.%I', x.nsp, x.tbl)::regclass AND attname = x.fin
               AND NOT attisdropped) THEN
      RAISE EXCEPTION 'sluice: views read column %.% which complete renames to %, a name the table still uses; they cannot be recreated on it (nothing was changed)', x.tbl, x.col, x.fin;
    END IF;
    EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', x.nsp, x.tbl, x.col, x.fin);
    undo := format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', x.nsp, x.tbl, x.fin, x.col) || undo;
  END LOOP;
  -- (Every renamed table: the column renames above hide which have views.)
  FOR x IN SELECT DISTINCT rc.nsp, rc.tbl, rc.ftbl FROM )" + values + R"( WHERE rc.ftbl <> rc.tbl LOOP
    IF to_regclass(format('%I.%I', x.nsp, x.ftbl)) IS NOT NULL THEN
      RAISE EXCEPTION 'sluice: views read table % which complete renames to %, a name still in use; they cannot be recreated on it (nothing was changed)', x.tbl, x.ftbl;
    END IF;
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', x.nsp, x.tbl, x.ftbl);
    undo := format('ALTER TABLE %I.%I RENAME TO %I', x.nsp, x.ftbl, x.tbl) || undo;
  END LOOP;
  FOR v IN SELECT s.oid, n.nspname, k.relname, k.reloptions, k.relowner, k.relacl
           FROM pg_temp._sluice_saved_views s JOIN pg_class k ON k.oid = s.oid JOIN pg_namespace n ON n.oid = k.relnamespace
  LOOP
    st := ARRAY[format('CREATE VIEW %I.%I%s AS %s', v.nspname, v.relname,
                       CASE WHEN v.reloptions IS NULL THEN '' ELSE ' WITH (' || array_to_string(v.reloptions, ', ') || ')' END,
                       regexp_replace(pg_get_viewdef(v.oid), ';\s*$', '')),
                format('ALTER VIEW %I.%I OWNER TO %I', v.nspname, v.relname, pg_get_userbyid(v.relowner))];
    IF obj_description(v.oid, 'pg_class') IS NOT NULL THEN
      st := st || format('COMMENT ON VIEW %I.%I IS %L', v.nspname, v.relname, obj_description(v.oid, 'pg_class'));
    END IF;
    FOR c IN SELECT a.attname, pg_get_expr(ad.adbin, ad.adrelid) AS def, col_description(v.oid, a.attnum) AS cm
             FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum LOOP
      IF c.def IS NOT NULL THEN
        st := st || format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s', v.nspname, v.relname, c.attname, c.def);
      END IF;
      IF c.cm IS NOT NULL THEN
        st := st || format('COMMENT ON COLUMN %I.%I.%I IS %L', v.nspname, v.relname, c.attname, c.cm);
      END IF;
    END LOOP;
    FOR c IN SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t WHERE t.tgrelid = v.oid AND NOT t.tgisinternal
             ORDER BY t.tgname LOOP
      st := st || c.def;
    END LOOP;
    FOR c IN SELECT regexp_replace(pg_get_ruledef(r.oid), ';\s*$', '') AS def FROM pg_rewrite r
             WHERE r.ev_class = v.oid AND r.rulename <> '_RETURN' ORDER BY r.rulename LOOP
      st := st || c.def;
    END LOOP;
    UPDATE pg_temp._sluice_saved_views SET nsp = v.nspname, rel = v.relname, stmts = st, acl = v.relacl::text[],
      colacl = (SELECT jsonb_object_agg(a.attname, a.attacl::text[]) FROM pg_attribute a
                WHERE a.attrelid = v.oid AND a.attacl IS NOT NULL)
    WHERE oid = v.oid;
  END LOOP;
  FOREACH u IN ARRAY undo LOOP EXECUTE u; END LOOP;
  FOR v IN SELECT nsp, rel FROM pg_temp._sluice_saved_views ORDER BY depth DESC LOOP
    EXECUTE format('DROP VIEW %I.%I', v.nsp, v.rel);
  END LOOP;
  PERFORM set_config('search_path', path, true);
END $sluice$)";
}

std::string RestoreDependentViewsSql() {
  return R"(DO $sluice$
DECLARE
  path text := current_setting('search_path');
  v record; a record; c record; u text; who text;
BEGIN
  IF to_regclass('pg_temp._sluice_saved_views') IS NULL THEN RETURN; END IF;
  PERFORM set_config('search_path', 'pg_catalog', true);
  FOR v IN SELECT * FROM pg_temp._sluice_saved_views ORDER BY depth, nsp, rel LOOP
    -- A view that no longer type-checks on the new column is named.
    BEGIN
      FOREACH u IN ARRAY v.stmts LOOP EXECUTE u; END LOOP;
    EXCEPTION WHEN OTHERS THEN
      RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format('view %I.%I cannot be recreated on the new columns: %s', v.nsp, v.rel, SQLERRM);
    END;
    -- Privileges exactly as they were: what CREATE VIEW granted by default
    -- goes, the saved ones come back.
    FOR a IN SELECT g.grantee, g.privilege_type FROM pg_class k, aclexplode(CASE WHEN cardinality(k.relacl) > 0 THEN k.relacl END) g
             WHERE k.oid = format('%I.%I', v.nsp, v.rel)::regclass AND g.grantee <> k.relowner LOOP
      who := CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END;
      EXECUTE format('REVOKE %s ON %I.%I FROM %s', a.privilege_type, v.nsp, v.rel, who);
    END LOOP;
    FOR a IN SELECT g.* FROM aclexplode(CASE WHEN cardinality(v.acl) > 0 THEN v.acl::aclitem[] END) g, pg_class k
             WHERE k.oid = format('%I.%I', v.nsp, v.rel)::regclass AND g.grantee <> k.relowner LOOP
      who := CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END;
      EXECUTE format('GRANT %s ON %I.%I TO %s%s', a.privilege_type, v.nsp, v.rel, who,
                     CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR c IN SELECT key AS col, value AS acl FROM jsonb_each(coalesce(v.colacl, '{}'::jsonb)) LOOP
      FOR a IN SELECT * FROM aclexplode(CASE WHEN jsonb_array_length(c.acl) > 0 THEN ARRAY(SELECT jsonb_array_elements_text(c.acl))::aclitem[] END) LOOP
        who := CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END;
        EXECUTE format('GRANT %s (%I) ON %I.%I TO %s%s', a.privilege_type, c.col, v.nsp, v.rel, who,
                       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
    END LOOP;
  END LOOP;
  DROP TABLE pg_temp._sluice_saved_views;
  PERFORM set_config('search_path', path, true);
END $sluice$)";
}

std::string UnpinViewsSql(const PostgresDialect& d, const UnpinViewsStep& s) {
  std::string schemas = QuoteLiteral(d.LiveSchema()), keep;
  for (const auto& v : s.versions) schemas += ", " + QuoteLiteral(d.VersionSchema(v));
  for (const auto& x : s.keep) keep += ", " + QuoteLiteral(x);
  const std::string base = QuoteLiteral(d.schema());
  if (!s.restore) {
    return R"(DO $sluice$
DECLARE x record;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS _sluice_unpinned (nsp text, rel text) ON COMMIT DROP;
  FOR x IN SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'v' AND n.nspname IN ()" + schemas + R"() AND c.relname NOT IN (''::name)" + keep + R"()
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                         WHERE tn.nspname = )" + base + R"( AND t.relname = c.relname AND t.relkind IN ('r', 'p')) LOOP
    INSERT INTO pg_temp._sluice_unpinned VALUES (x.nspname, x.relname);
    EXECUTE format('DROP VIEW %I.%I', x.nspname, x.relname);
  END LOOP;
END $sluice$)";
  }
  // Recreated like FillUnknownTables makes them: the table's columns but
  // sluice's own, with their defaults.
  return R"(DO $sluice$
DECLARE x record; c record; cols text;
BEGIN
  IF to_regclass('pg_temp._sluice_unpinned') IS NULL THEN RETURN; END IF;
  FOR x IN SELECT u.nsp, u.rel, t.oid FROM pg_temp._sluice_unpinned u
           JOIN pg_catalog.pg_class t ON t.relname = u.rel AND t.relkind IN ('r', 'p')
           JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace AND n.nspname = )" + base + R"(
           WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_namespace vn WHERE vn.nspname = u.nsp) LOOP
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO cols FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = x.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT LIKE '\_sluice\_%';
    EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %I.%I', x.nsp, x.rel,
                   coalesce(cols, ''), )" + base + R"(, x.rel);
    FOR c IN SELECT a.attname, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS def FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = x.oid AND a.attgenerated = '' AND NOT a.attisdropped AND a.attname NOT LIKE '\_sluice\_%' LOOP
      EXECUTE format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s', x.nsp, x.rel, c.attname, c.def);
    END LOOP;
  END LOOP;
  DROP TABLE pg_temp._sluice_unpinned;
END $sluice$)";
}

}  // namespace sluice::db
