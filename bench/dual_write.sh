#!/usr/bin/env bash
# Write throughput of old-version updates under the dual-write failure
# policies (issue 8 item 14), in one command of a few minutes:
#
#   bench/dual_write.sh                      # 100,000 rows, 3 runs of 5 s each
#   bench/dual_write.sh --rows 20000 --seconds 3
#
# One throwaway PostgreSQL 15 cluster (bench/cluster.sh: a temporary
# directory, unix socket only, never the system cluster), one database per
# configuration, all copies of one template:
#
#   none         no migration: the baseline
#   fail         alter_column amount text -> bigint cents, dual_write: {on_error: fail}
#   record       the same plan with on_error: record (the default)
#   record-bad   record, every update writes a value `up` cannot convert, so
#                every write takes the exception path and upserts its row
#                into sluice.dual_write_failures
#
# The workload is pgbench (2 clients, prepared) updating `amount` of a random
# row through the old version, so the dual-write fires on every statement.
# The configurations are run interleaved (none, fail, record, record-bad,
# then again) --runs times, and each figure is the median over the runs,
# with the spread; ratios are against `none` of the same run.
set -euo pipefail

ROWS=100000
RUNS=3
SECONDS_EACH=5
KEEP=0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/cluster.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) bench_bad_arg "$1" ;;
  esac
done

SLUICE="${SLUICE_BIN:-$ROOT/build/sluice}"
bench_require "$SLUICE" "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/pgbench" "$PGBIN/psql"

bench_tmp bench-dw
bench_trap
bench_binary "$SLUICE"
cd "$TMP"
cluster_start "$TMP"

psqlc postgres -c "CREATE DATABASE tpl"
psqlc tpl <<EOF
CREATE TABLE orders (id bigint PRIMARY KEY, email text, amount text, status text);
INSERT INTO orders SELECT i, 'User' || i || '@Example.COM', to_char(((i * 7919) % 100000) / 100.0, 'FM99990.00'),
  (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4] FROM generate_series(1::bigint, $ROWS) AS i;
VACUUM (ANALYZE, FREEZE) orders;
EOF

plan() {  # policy -> file
  cat >"$TMP/$1.yaml" <<EOF
dual_write:
  on_error: $1
operations:
  - alter_column:
      table: orders
      column: amount
      type: bigint
      up: round(amount::numeric * 100)::bigint
      down: to_char(amount / 100.0, 'FM99999990.00')
EOF
  echo "$TMP/$1.yaml"
}

for cfg in none fail record record-bad; do
  db=${cfg//-/_}
  psqlc postgres -c "CREATE DATABASE $db TEMPLATE tpl"
  case "$cfg" in
    fail) "$SLUICE" --db "$(pgurl "$db")" start "$(plan fail)" >/dev/null ;;
    record|record-bad) "$SLUICE" --db "$(pgurl "$db")" start "$(plan record)" >/dev/null ;;
  esac
  if [ "$cfg" != none ]; then "$SLUICE" --db "$(pgurl "$db")" backfill >/dev/null; fi
done
cat >"$TMP/good.sql" <<EOF
\set id random(1, $ROWS)
UPDATE orders SET amount = '12.34' WHERE id = :id;
EOF
cat >"$TMP/bad.sql" <<EOF
\set id random(1, $ROWS)
UPDATE orders SET amount = 'n/a' WHERE id = :id;
EOF

tps() {  # db script
  "$PGBIN/pgbench" -n -f "$2" -c 2 -j 2 -T "$SECONDS_EACH" -M prepared "$(pgurl "$1")" 2>&1 |
    awk '/^tps = / { print $3; exit }'
}
declare -A R
for run in $(seq 1 "$RUNS"); do
  for cfg in none fail record record-bad; do
    script="$TMP/good.sql"; [ "$cfg" = record-bad ] && script="$TMP/bad.sql"
    t=$(tps "${cfg//-/_}" "$script")
    R[$cfg]="${R[$cfg]:-} $t"
    log "run $run: $cfg $t tps"
  done
  for cfg in fail record record-bad; do
    base=${R[none]##* }; last=${R[$cfg]##* }
    R[ratio_$cfg]="${R[ratio_$cfg]:-} $(fdiv "$last" "$base")"
  done
done
failures=$(psqlc record_bad -c "SELECT count(*) || ' rows, ' || sum(count) || ' failures' FROM sluice.dual_write_failures")

echo
echo "dual-write policy benchmark: $ROWS rows, $RUNS interleaved run(s) of ${SECONDS_EACH}s, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| configuration | tps, median (min-max) | ÷ no migration, median (min-max) |"
echo "|---|---|---|"
# shellcheck disable=SC2086
for cfg in none fail record record-bad; do
  r="1"
  [ "$cfg" != none ] && r=$(stats ${R[ratio_$cfg]})
  echo "| $cfg | $(stats ${R[$cfg]}) | $r |"
done
echo
echo "record-bad left $failures in sluice.dual_write_failures"
