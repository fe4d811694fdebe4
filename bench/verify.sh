#!/usr/bin/env bash
# Benchmark of verification (issue 5), on a throwaway PostgreSQL 15 cluster:
#
#  1. speed: the chunked checksum comparison of `sluice verify` on N rows
#     (rows/s) divided by one full-table hash scan over the same rows and
#     expressions (rows/s), measured in the same run; target >= 0.6,
#     moonshot >= 1.0; with sluice's default checksum workers (2) and, in
#     the same runs, with one (`--workers 1`);
#  2. bisection: one row corrupted behind the triggers' back is found by key;
#     the number of chunk queries is reported for several checksum chunk
#     sizes, to show it grows with log2(chunk rows), not with the table.
#
#   bench/verify.sh [--rows N] [--runs K] [--chunk ROWS]   (defaults 2000000, 3, sluice's default)
set -euo pipefail
ROWS=2000000
RUNS=3
CHUNK=""   # checksum_chunk_rows for the speed figure; "" = sluice's default
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/bench/cluster.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --chunk) CHUNK="$2"; shift 2 ;;
    --rows) ROWS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) bench_bad_arg "$1" ;;
  esac
done
SLUICE_SRC="${SLUICE_BIN:-$ROOT/build/sluice}"
[ -x "$SLUICE_SRC" ] || "$ROOT/scripts/build.sh"
bench_tmp benchv
bench_trap
bench_binary "$SLUICE_SRC"
cluster_start "$TMP"
cd "$TMP"

log "loading $ROWS rows"
psqlc postgres -c "CREATE DATABASE v"
psqlc v -c "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL, amount text NOT NULL, status text,
  note text); INSERT INTO orders SELECT i, 'User' || i || '@Example.COM', ((i % 70000) / 100.0)::text,
  (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], CASE WHEN i % 5 = 0 THEN NULL ELSE 'note ' || i END
  FROM generate_series(1, $ROWS) i"
psqlc v -c "VACUUM ANALYZE orders"
plan() {  # name chunk_rows
  cat >"$TMP/$1.yaml" <<PLAN
operations:
  - add_column:
      table: orders
      up: lower(email)
      column: {name: email_lower, type: text, nullable: true}
verify:
  checksum_chunk_rows: $2
PLAN
  if [ -z "$2" ]; then sed -i '/^verify:/d; /checksum_chunk_rows/d' "$TMP/$1.yaml"; fi
}
plan 001_lower "$CHUNK"
"$SLUICE" --db "$(pgurl v)" start "$TMP/001_lower.yaml" --backfill >/dev/null
# Read once so both sides start from a warm cache.
psqlc v -c "SELECT count(*) FROM orders" >/dev/null

field() {  # json-file check metric
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(next(int(m) if float(m).is_integer() else m for c in r['checks'] if c['name'] == sys.argv[2] for k, m in c.get('metrics', {}).items() if k == sys.argv[3]))" "$@"
}

checksum_seconds() {  # verify arguments...: the checksum check's time
  "$SLUICE" --db "$(pgurl v)" verify --json 001_lower "$@" >"$TMP/verify.json"
  awk -v m="$(field "$TMP/verify.json" checksum millis)" 'BEGIN { print m / 1000 }'
}

ratios=()
ratios1=()
for run in $(seq 1 "$RUNS"); do
  t0=$(now)
  # The baseline hashes every column of each row once, in the same
  # length-prefixed form, in one sequential scan; verification computes
  # up() and hashes the changed columns on both sides, reading the table
  # by block-range pieces (one session, or two sharing one snapshot).
  psqlc v -c "SELECT sum(hashtextextended($(f() { echo "coalesce(length(($1)::text)::text || ':' || ($1)::text, '~')"; }
    echo "$(f id) || '|' || $(f email) || '|' || $(f amount) || '|' || $(f status) || '|' || $(f note) || '|' || $(f email_lower)"), 0)) FROM orders" >/dev/null
  scan=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  checksum=$(checksum_seconds)
  checksum1=$(checksum_seconds --workers 1)
  r=$(fdiv "$scan" "$checksum")
  r1=$(fdiv "$scan" "$checksum1")
  ratios+=("$r")
  ratios1+=("$r1")
  log "run $run: hash scan ${scan}s, sluice checksum ${checksum}s (default workers), ${checksum1}s (1 worker): speed ratios $r, $r1"
done

log "corrupting one row behind the triggers' back"
victim=$((ROWS * 3 / 5 + 7))
psqlc v -c "SET session_replication_role = replica; UPDATE orders SET email_lower = 'corrupted' WHERE id = $victim"
bisect_rows=()
for chunk in 10000 100000 1000000; do
  [ "$chunk" -le "$ROWS" ] || continue
  # Same migration, other chunk size: the plan text is re-read from state,
  # so use a verification-only copy of the setting through a fresh plan.
  psqlc v -c "UPDATE sluice.migrations SET plan_text = regexp_replace(plan_text, '\nverify:.*$', '') ||
    E'\nverify:\n  checksum_chunk_rows: $chunk\n' WHERE name = '001_lower'"
  set +e
  "$SLUICE" --db "$(pgurl v)" verify --json 001_lower >"$TMP/bad.json"
  code=$?
  set -e
  found=$(grep -c "$victim" "$TMP/bad.json" || true)
  bq=$(field "$TMP/bad.json" checksum bisect_queries)
  cq=$(field "$TMP/bad.json" checksum chunk_queries)
  sq=$(field "$TMP/bad.json" checksum scan_queries)
  fq=$(field "$TMP/bad.json" checksum row_fetch_queries)
  diffs=$(field "$TMP/bad.json" checksum differences)
  bisect_rows+=("| $chunk | $(awk -v c="$chunk" 'BEGIN { printf "%.1f", log(c / 16) / log(2) }') | $sq | $bq | $fq | $cq | $diffs | $([ "$found" -gt 0 ] && [ "$code" = 3 ] && echo "yes (id $victim)" || echo NO) |")
done

echo
echo "verification benchmark: $ROWS rows, $RUNS runs, PostgreSQL 15, $(nproc) cores"
echo
echo "| figure | median (min-max) | target |"
echo "|---|---|---|"
echo "| checksum verification rows/s ÷ one full-table hash scan rows/s (default: 2 workers) | $(stats "${ratios[@]}") | ≥ 0.6 (moonshot ≥ 1.0) |"
echo "| the same, \`--workers 1\` | $(stats "${ratios1[@]}") | |"
echo
echo "| checksum chunk rows | log2(chunk/16) | scan queries | bisection queries | row fetches | all chunk queries | differing rows | corrupted row found by key |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${bisect_rows[@]}"
