#!/usr/bin/env bash
# Estimate accuracy (issue 13), in one command:
#
#   bench/estimate.sh                                  # 100k, 1M, 4M rows; SQLite and PostgreSQL
#   bench/estimate.sh --sizes "20000 100000" --dialects sqlite
#
# For every table size, every plan ("lower": add_column up: lower(email);
# "cents": alter_column amount text -> integer cents) and every database, on a
# fresh copy of the same data: `sluice estimate PLAN --json` (read-only; its
# trial is rolled back), then `sluice start PLAN` and `sluice backfill`, the
# backfill's wall time is the actual. It reports P50 / actual (target within
# x1.5, i.e. 0.67-1.5) and whether the actual fell inside the estimate's
# P10-P90 interval (target: at least 5 of the 6 cases of each database).
#
# PostgreSQL runs on the OWN throwaway cluster of bench/cluster.sh (never the
# system cluster); the SQLite files live in the same temporary directory.
# Everything is removed at exit (--keep keeps the directory and its logs).
set -euo pipefail

SIZES="100000 1000000 4000000"
DIALECTS="sqlite postgres"
PLANS="lower cents"
KEEP=0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/cluster.sh"
usage() { sed -n '2,16p' "$0"; echo "options: --sizes \"N ...\" --dialects \"sqlite postgres\" --plans \"lower cents\" --keep"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --dialects) DIALECTS="$2"; shift 2 ;;
    --plans) PLANS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; bench_bad_arg "$1" ;;
  esac
done

SLUICE_SRC="${SLUICE_BIN:-$ROOT/build/sluice}"
[ -x "$SLUICE_SRC" ] || "$ROOT/scripts/build.sh"
bench_require "$PGBIN/initdb" "$PGBIN/psql" /usr/bin/sqlite3 python3
bench_tmp benche
bench_trap
bench_binary "$SLUICE_SRC"
mkdir -p "$TMP/plans" "$TMP/logs"
cd "$TMP"
case " $DIALECTS " in *" postgres "*) cluster_start "$TMP" ;; esac

# The data: ~150 bytes per row, the same on both databases (bench/run.sh).
pg_template() {  # db rows
  psqlc postgres -c "CREATE DATABASE $1"
  psqlc "$1" <<EOF
CREATE TABLE orders (id bigint PRIMARY KEY, email text, amount text, status text, created_at timestamp, note text);
INSERT INTO orders
SELECT i, 'User' || i || '@Example.COM', to_char(((i * 7919) % 100000) / 100.0, 'FM99990.00'),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4], timestamp '2020-01-01' + i * interval '1 second',
       substr(md5(i::text) || md5((i + 1)::text), 1, 40 + (i % 20)::int)
FROM generate_series(1::bigint, $2) AS i;
VACUUM (ANALYZE, FREEZE) orders;
EOF
}
sqlite_template() {  # file rows
  sqlite3 "$1" >/dev/null <<EOF
PRAGMA journal_mode = WAL;
CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, amount TEXT, status TEXT, created_at TEXT, note TEXT);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $2)
INSERT INTO orders
SELECT i, 'User' || i || '@Example.COM', printf('%d.%02d', ((i * 7919) % 100000) / 100, (i * 7919) % 100),
       CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'cancelled' END,
       datetime('2020-01-01', '+' || i || ' seconds'), substr(lower(hex(randomblob(32))), 1, 40 + i % 20)
FROM s;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
}
plan() {  # dialect name -> file
  local f="$TMP/plans/$1/e_$2.yaml"
  mkdir -p "$TMP/plans/$1"
  if [ ! -e "$f" ]; then
    case "$1:$2" in
      postgres:lower|sqlite:lower)
        printf 'operations:\n  - add_column:\n      table: orders\n      column: {name: email_lower, type: %s, nullable: true}\n      up: lower(email)\n' \
          "$([ "$1" = postgres ] && echo text || echo TEXT)" >"$f" ;;
      postgres:cents)
        printf '%s\n' 'operations:' '  - alter_column:' '      table: orders' '      column: amount' '      type: bigint' \
          '      up: round(amount::numeric * 100)::bigint' "      down: to_char(amount / 100.0, 'FM99999990.00')" >"$f" ;;
      sqlite:cents)
        printf '%s\n' 'operations:' '  - alter_column:' '      table: orders' '      column: amount' '      type: INTEGER' \
          '      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)' "      down: printf('%d.%02d', amount / 100, amount % 100)" >"$f" ;;
    esac
  fi
  echo "$f"
}

# One case: prints "p10 p50 p90 actual".
run_case() {  # dialect rows plan
  local url f t0 t1 est
  if [ "$1" = sqlite ]; then
    rm -f "$TMP/run.db" "$TMP/run.db-wal" "$TMP/run.db-shm"
    cp "$TMP/tpl_$2.db" "$TMP/run.db"
    url="sqlite:$TMP/run.db"
  else
    psqlc postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS run WITH (FORCE)"
    psqlc postgres -c "CREATE DATABASE run TEMPLATE tpl_$2 STRATEGY FILE_COPY"
    url="$(pgurl run)"
  fi
  f="$(plan "$1" "$3")"
  est=$("$SLUICE" --db "$url" estimate "$f" --json 2>"$TMP/logs/estimate.err") ||
    { cat "$TMP/logs/estimate.err" >&2; exit 1; }
  echo "$est" >"$TMP/logs/estimate_$1_$2_$3.json"
  "$SLUICE" --db "$url" start "$f" >"$TMP/logs/start.out" 2>&1 || { cat "$TMP/logs/start.out" >&2; exit 1; }
  t0=$(now)
  "$SLUICE" --db "$url" backfill "e_$3" >"$TMP/logs/backfill.out" 2>&1 || { cat "$TMP/logs/backfill.out" >&2; exit 1; }
  t1=$(now)
  python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
b = [x for x in e["estimates"] if x["phase"] == "backfill"]
b = [x for x in b if x["subject"] == ""] or b
x = b[0]
print(x["p10_seconds"], x["p50_seconds"], x["p90_seconds"], float(sys.argv[3]) - float(sys.argv[2]))
' "$TMP/logs/estimate_$1_$2_$3.json" "$t0" "$t1"
}

ROWS_OUT=()
for d in $DIALECTS; do
  for n in $SIZES; do
    log "$d: loading $n rows"
    if [ "$d" = sqlite ]; then sqlite_template "$TMP/tpl_$n.db" "$n"; else pg_template "tpl_$n" "$n"; fi
    for p in $PLANS; do
      read -r p10 p50 p90 actual < <(run_case "$d" "$n" "$p")
      ROWS_OUT+=("$d $n $p $p10 $p50 $p90 $actual")
      log "$d $n $p: estimate P50 ${p50}s (P10 $p10, P90 $p90), actual ${actual}s"
    done
    if [ "$d" = sqlite ]; then rm -f "$TMP/tpl_$n.db"; else psqlc postgres -c "DROP DATABASE tpl_$n"; fi
  done
done

echo
echo "## Estimate accuracy: sluice estimate's backfill P50 vs the real backfill"
echo
echo "| database | rows | plan | P10 s | P50 s | P90 s | actual s | P50 / actual | inside P10-P90 |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS_OUT[@]}" | awk '
{ r = $5 / $7; ok = ($4 <= $7 && $7 <= $6); within = (r >= 1 / 1.5 && r <= 1.5)
  printf "| %s | %d | %s | %.3f | %.3f | %.3f | %.3f | %.2f%s | %s |\n", $1, $2, $3, $4, $5, $6, $7, r, within ? "" : " (off)", ok ? "yes" : "NO"
  n[$1]++; w[$1] += within; in_[$1] += ok }
END {
  print ""
  print "| database | within x1.5 (target: all) | inside P10-P90 (target: >= 5 of 6) |"
  print "|---|---|---|"
  for (d in n) printf "| %s | %d of %d | %d of %d |\n", d, w[d], n[d], in_[d], n[d]
}'
