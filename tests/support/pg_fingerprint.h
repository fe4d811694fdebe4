// The migrated part of a PostgreSQL database's catalog as text, for tests
// that assert "nothing changed" (rollback, refused or failed phases).
#pragma once

#include <string>

#include "support/pg_cluster.h"

namespace sluice::testing {

// The migrated part of the catalog, one line per object, from pg_catalog:
// schemas, relations (kind, replica identity, comment, options), columns
// (type, nullability, identity, generated, default, comment), constraints
// with definitions, indexes with definitions, triggers, views, functions,
// types (enum labels) and sequences. sluice's state schema is excluded.
inline constexpr const char* kPgFingerprintSql = R"(
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'sluice')
    AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'),
items AS (
  SELECT 'schema ' || nspname AS l FROM ns
  UNION ALL
  SELECT 'rel ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text || ' ri=' || c.relreplident::text ||
         ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '') ||
         ' opts=' || coalesce(array_to_string(c.reloptions, ','), '')
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'col ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
         ' nn=' || a.attnotnull || ' id=' || a.attidentity::text || ' gen=' || a.attgenerated::text ||
         ' def=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') ||
         ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  UNION ALL
  SELECT 'con ' || n.nspname || '.' || c.conname || ' on ' || c.conrelid::regclass::text || ' ' ||
         pg_get_constraintdef(c.oid) || ' valid=' || c.convalidated
  FROM pg_constraint c JOIN ns n ON n.oid = c.connamespace
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'trg ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns n ON n.oid = c.relnamespace
  WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'view ' || n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'fn ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' ||
         md5(p.prosrc)
  FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'type ' || n.nspname || '.' || t.typname || ' ' || t.typtype::text || ' ' ||
         coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
                   WHERE e.enumtypid = t.oid), '')
  FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
  UNION ALL
  SELECT 'seq ' || s.seqrelid::regclass::text || ' start=' || s.seqstart || ' inc=' || s.seqincrement
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns n ON n.oid = c.relnamespace)
SELECT string_agg(l, E'\n' ORDER BY l) FROM items
)";

// kPgFingerprintSql on `url` (a database of the shared test cluster).
inline std::string CatalogFingerprint(const std::string& url) {
  return PgCluster::Shared()->Psql(url, kPgFingerprintSql);
}

// The same without the live alias of `schema` (`<schema>_live`, which the
// first start creates and rollback keeps: it shows the tables as they are).
inline std::string FingerprintWithoutLive(const std::string& url, const std::string& schema = "public") {
  std::string sql = kPgFingerprintSql;
  const std::string from = "'sluice')";
  sql.replace(sql.find(from), from.size(), "'sluice', '" + schema + "_live')");
  return PgCluster::Shared()->Psql(url, sql);
}

}  // namespace sluice::testing
