#!/usr/bin/env bash
# The backfill benchmark of issue #4, in one command:
#
#   bench/run.sh                     # 2,000,000 rows, 3 runs
#   bench/run.sh --rows 100000 --runs 1
#
# It builds sluice if build/sluice is missing (scripts/build.sh), starts its
# OWN throwaway PostgreSQL 15 cluster (initdb in a temporary directory,
# unix socket only, as `nobody` when run as root; never the system cluster),
# uses SQLite files in the same temporary directory, and always stops the
# server and removes the directory when it exits.
#
# Every figure is a ratio of two numbers measured in the same run, on the
# same data; it prints the median and the spread (min-max) over the runs.
# See docs/performance.md for what each figure measures and the results.
set -euo pipefail

ROWS=2000000
RUNS=3
SMALL_ROWS=100000
WORKERS=""           # sluice --workers on PostgreSQL (figures 1, 2 and 5); "" = sluice's default
RATE=200             # pgbench -R for the latency figure (transactions/s)
LAT_SECONDS=30       # pgbench duration of each latency measurement
TPS_SECONDS=10       # pgbench duration of each throughput measurement
STEP_ROWS=0          # rows of the step-response table (0 = max(3 x --rows, 4,000,000))
STEP_IDLE=4          # step response: seconds the backfill runs alone before the load step
STEP_LOAD=8          # ... seconds the load lasts
STEP_AFTER=10        # ... seconds observed after it ends
STEP_PLOT=""         # where the step-response plot goes (default docs/step-response.png)
WORKLOADS="upd read mixed"  # figure 3's application workloads
ONLY=all             # which figures: all, throughput, throttle (3 and the step response), tps
PGROLL_ROWS=200000   # rows the pgroll-style backfill is timed over (0 = the whole table)
REBUILD=0
KEEP=0

usage() {
  cat <<EOF
usage: bench/run.sh [--rows N] [--runs K] [--workers W] [--rate TPS] [--latency-seconds S]
                    [--tps-seconds S] [--pgroll-rows N] [--only WHAT] [--workloads "W ..."] [--step-rows N]
                    [--step-seconds IDLE,LOAD,AFTER] [--step-plot FILE] [--rebuild] [--keep]
  --rows N            rows in the orders table (default $ROWS)
  --runs K            repetitions; every figure reports median and min-max (default $RUNS)
  --workers W         sluice backfill --workers on PostgreSQL (default: sluice's own default)
  --rate TPS          pgbench -R of the latency workload (default $RATE)
  --latency-seconds S pgbench duration of each latency measurement (default $LAT_SECONDS)
  --tps-seconds S     pgbench duration of each throughput measurement (default $TPS_SECONDS)
  --only WHAT         all (default), throughput (figures 1, 2, 5), throttle (figure 3 and the
                      step response), latency (figure 3 only), step (the step response only),
                      tps (figure 4); a comma-separated list of these
  --workloads "W ..." figure 3's application workloads, of: upd read mixed (default all three)
  --step-rows N       rows of the step-response table, large enough that the backfill
                      outlasts the step (default 3 x --rows, at least 4,000,000)
  --step-seconds I,L,A  step response: the backfill alone for I s, the load for L s, then A s
                      (default $STEP_IDLE,$STEP_LOAD,$STEP_AFTER)
  --step-plot FILE    the step-response plot (PNG; default docs/step-response.png)
  --pgroll-rows N     time the pgroll-style backfill over the first N keys only, since its
                      per-row cost is constant along the key (default $PGROLL_ROWS; 0 = whole table)
  --rebuild           run scripts/build.sh even if build/sluice exists
  --keep              keep the temporary directory (logs) instead of removing it
Environment: SLUICE_BIN overrides the sluice binary (default build/sluice).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --latency-seconds) LAT_SECONDS="$2"; shift 2 ;;
    --tps-seconds) TPS_SECONDS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    --step-rows) STEP_ROWS="$2"; shift 2 ;;
    --step-seconds) IFS=, read -r STEP_IDLE STEP_LOAD STEP_AFTER <<<"$2"; shift 2 ;;
    --step-plot) STEP_PLOT="$2"; shift 2 ;;
    --pgroll-rows) PGROLL_ROWS="$2"; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SLUICE="${SLUICE_BIN:-$ROOT/build/sluice}"
# The step's backfill must outlast the idle period, the load and the
# recovery (figure 7 is measured only while it runs): at about 250k rows/s
# idle (2 cores) the 4 s alone and 10 s after take 3.5M rows.
[ "$STEP_ROWS" -gt 0 ] || STEP_ROWS=$((ROWS * 3 > 4000000 ? ROWS * 3 : 4000000))
[ -n "$STEP_PLOT" ] || STEP_PLOT="$ROOT/docs/step-response.png"
case "$STEP_PLOT" in /*) ;; *) STEP_PLOT="$PWD/$STEP_PLOT" ;; esac
# want FIGURES: true when --only selects them.
# "throttle" is "latency" (figure 3) and "step" (figures 6 and 7).
want() {
  [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]] && return 0
  case "$1" in latency|step) [[ ",$ONLY," == *",throttle,"* ]] ;; throttle) want latency || want step ;; *) return 1 ;; esac
}
for w in ${ONLY//,/ }; do
  case "$w" in all|throughput|throttle|latency|step|tps) ;; *) echo "bench: --only: unknown '$w' (all, throughput, throttle, latency, step, tps)" >&2; exit 2 ;; esac
done
for w in $WORKLOADS; do
  case "$w" in upd|read|mixed) ;; *) echo "bench: --workloads: unknown '$w' (upd, read, mixed)" >&2; exit 2 ;; esac
done
# The throwaway cluster and small helpers (pgurl, psqlc, now, fdiv, log).
. "$ROOT/bench/cluster.sh"

if [ "$REBUILD" = 1 ] || [ ! -x "$SLUICE" ]; then
  echo "bench: building sluice (scripts/build.sh)"
  "$ROOT/scripts/build.sh"
fi
for tool in "$SLUICE" "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/pgbench" "$PGBIN/psql" /usr/bin/sqlite3 /usr/bin/time \
  $(want step && echo /usr/bin/gnuplot); do
  if [ ! -x "$tool" ]; then
    echo "bench: $tool is missing; run scripts/setup.sh (Debian packages) and scripts/build.sh" >&2
    exit 1
  fi
done

# ---------------------------------------------------------------------------
# Throwaway PostgreSQL cluster
# ---------------------------------------------------------------------------
bench_tmp bench
# Background sluice backfills started by this script (bench_trap stops the
# other background clients).
bench_on_exit() { for f in "$TMP"/logs/bf_*.pid; do [ -e "$f" ] && kill -INT "$(cat "$f")" 2>/dev/null; done; }
bench_trap

mkdir -p "$TMP/plans" "$TMP/logs"
# A private copy of the binary: the same sluice for the whole run, even if
# build/ is rebuilt meanwhile.
SLUICE_SRC=$SLUICE
bench_binary "$SLUICE_SRC"
cd "$TMP"
cluster_start "$TMP"


# ---------------------------------------------------------------------------
# Data and plans
# ---------------------------------------------------------------------------
ORDERS_DDL="CREATE TABLE orders (id bigint PRIMARY KEY, email text, amount text, status text,
  created_at timestamp, note text)"

# orders: id 1..N, mixed-case email, amount as text with 2 decimals, a status,
# a timestamp and a 40-59 character note (~150 bytes per row).
pg_template() {  # db rows
  psqlc postgres -c "CREATE DATABASE $1"
  psqlc "$1" <<EOF
$ORDERS_DDL;
INSERT INTO orders
SELECT i, 'User' || i || '@Example.COM',
       to_char(((i * 7919) % 100000) / 100.0, 'FM99990.00'),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4],
       timestamp '2020-01-01' + i * interval '1 second',
       substr(md5(i::text) || md5((i + 1)::text), 1, 40 + (i % 20)::int)
FROM generate_series(1::bigint, $2) AS i;
VACUUM (ANALYZE, FREEZE) orders;
CREATE EXTENSION pg_prewarm;
EOF
}

sqlite_template() {  # file rows
  rm -f "$1"
  sqlite3 "$1" >/dev/null <<EOF
PRAGMA journal_mode = WAL;
CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, amount TEXT, status TEXT, created_at TEXT, note TEXT);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $2)
INSERT INTO orders
SELECT i, 'User' || i || '@Example.COM',
       printf('%d.%02d', ((i * 7919) % 100000) / 100, (i * 7919) % 100),
       CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'cancelled' END,
       datetime('2020-01-01', '+' || i || ' seconds'),
       substr(lower(hex(randomblob(32))), 1, 40 + i % 20)
FROM s;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
}

# Migration plans. "lower": add_column with up: lower(email). "cents":
# alter_column amount text -> integer cents, with up and down.
write_plans() {
  mkdir -p "$TMP/plans/pg" "$TMP/plans/sqlite"
  cat >"$TMP/plans/pg/b_lower.yaml" <<'EOF'
operations:
  - add_column:
      table: orders
      column: {name: email_lower, type: text, nullable: true}
      up: lower(email)
EOF
  cat >"$TMP/plans/pg/b_cents.yaml" <<'EOF'
operations:
  - alter_column:
      table: orders
      column: amount
      type: bigint
      up: round(amount::numeric * 100)::bigint
      down: to_char(amount / 100.0, 'FM99999990.00')
EOF
  cat >"$TMP/plans/pg/b_both.yaml" <<'EOF'
operations:
  - add_column:
      table: orders
      column: {name: email_lower, type: text, nullable: true}
      up: lower(email)
  - alter_column:
      table: orders
      column: amount
      type: bigint
      up: round(amount::numeric * 100)::bigint
      down: to_char(amount / 100.0, 'FM99999990.00')
EOF
  cat >"$TMP/plans/sqlite/b_lower.yaml" <<'EOF'
operations:
  - add_column:
      table: orders
      column: {name: email_lower, type: TEXT, nullable: true}
      up: lower(email)
EOF
  cat >"$TMP/plans/sqlite/b_cents.yaml" <<'EOF'
operations:
  - alter_column:
      table: orders
      column: amount
      type: INTEGER
      up: CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)
      down: printf('%d.%02d', amount / 100, amount % 100)
EOF
}

# Per migration: the physical new column, its type, and `up` per database.
newcol() { case "$1" in lower) echo email_lower ;; cents) echo _sluice_new_amount ;; esac; }
pgtype() { case "$1" in lower) echo text ;; cents) echo bigint ;; esac; }
pgup() { case "$1" in lower) echo "lower(email)" ;; cents) echo "round(amount::numeric * 100)::bigint" ;; esac; }
squp() { case "$1" in lower) echo "lower(email)" ;; cents) echo "CAST(round(CAST(amount AS REAL) * 100) AS INTEGER)" ;; esac; }

# A fresh copy of the PostgreSQL template, its table in shared buffers.
fresh_pg() {  # name template
  psqlc postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  psqlc postgres -c "CREATE DATABASE $1 TEMPLATE $2 STRATEGY FILE_COPY"
  psqlc "$1" -c "SELECT pg_prewarm('orders'), pg_prewarm('orders_pkey')" >/dev/null
}
drop_pg() { psqlc postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }
fresh_sqlite() { rm -f "$1" "$1-wal" "$1-shm"; cp "$2" "$1"; cat "$1" >/dev/null; }

sluice_pg() { local db="$1"; shift; "$SLUICE" --db "$(pgurl "$db")" "$@"; }

# Fails the benchmark if the backfill left a row without its new value.
check_pg() {  # db mig
  local c
  c=$(psqlc "$1" -c "SELECT count(*) FROM orders WHERE $(newcol "$2") IS DISTINCT FROM ($(pgup "$2"))")
  if [ "$c" != 0 ]; then echo "bench: $c rows of orders hold a wrong $(newcol "$2") after $3" >&2; exit 1; fi
}
check_sqlite() {  # file mig what
  local c
  c=$(sqlite3 "$1" "SELECT count(*) FROM orders WHERE $(newcol "$2") IS NOT ($(squp "$2"))")
  if [ "$c" != 0 ]; then echo "bench: $c rows of orders hold a wrong $(newcol "$2") after $3" >&2; exit 1; fi
}

# Runs a command under /usr/bin/time -v; sets T_SECONDS and T_RSS_KB.
timed() {
  local out="$TMP/logs/time.$$"
  local t0 t1
  t0=$(now)
  if ! /usr/bin/time -v -o "$out" "$@" >"$TMP/logs/last.out" 2>&1; then
    cat "$TMP/logs/last.out" >&2
    echo "bench: command failed: $*" >&2
    exit 1
  fi
  t1=$(now)
  T_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  T_RSS_KB=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$out")
}

# ---------------------------------------------------------------------------
# Figure 1 and 2: backfill throughput
# ---------------------------------------------------------------------------
# The offline limit: one UPDATE over the whole table, triggers installed but
# not firing (session_replication_role = replica), so it pays nothing but the
# rewrite itself: the strictest baseline.
pg_update_baseline() {  # mig -> rows/s
  local db=b_upd mig="$1"
  fresh_pg "$db" tpl
  sluice_pg "$db" start "$TMP/plans/pg/b_$mig.yaml" >/dev/null
  psqlc "$db" -c "CHECKPOINT"
  timed "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "SET session_replication_role = replica" \
    -c "UPDATE orders SET $(newcol "$mig") = $(pgup "$mig")"
  check_pg "$db" "$mig" "the single UPDATE"
  drop_pg "$db"
  fdiv "$ROWS" "$T_SECONDS"
}

# sluice backfill, default settings (probe throttle on at its default,
# checkpoints on), --workers W; the whole process's wall time, including
# connecting and planning the partitions.
pg_sluice() {  # mig workers -> "rows/s rss_kb"
  local db=b_sl mig="$1"
  fresh_pg "$db" tpl
  sluice_pg "$db" start "$TMP/plans/pg/b_$mig.yaml" >/dev/null
  psqlc "$db" -c "CHECKPOINT"
  timed "$SLUICE" --db "$(pgurl "$db")" backfill "b_$mig" ${2:+--workers "$2"}
  check_pg "$db" "$mig" "sluice backfill"
  drop_pg "$db"
  echo "$(fdiv "$ROWS" "$T_SECONDS") $T_RSS_KB"
}

# pgroll's algorithm: the new column plus a per-row PL/pgSQL trigger written
# like pgroll's (declares a variable per column, looks up the latest version
# in its state table and reads search_path for every row, then computes the
# column), and a backfill that walks the key in batches of 1000, each its own
# transaction, with a no-op UPDATE SET id = id that fires the trigger. The
# loop runs server-side in a procedure: no client round trips, which only
# favours pgroll. Its cost per row is the same all along the key, so it is
# timed over the first PGROLL_ROWS keys (the rows/s of the whole table within
# noise) to keep the benchmark's run time reasonable.
pg_pgroll() {  # mig -> rows/s
  local db=b_pgr mig="$1" col typ up limit=$ROWS
  col=$(newcol "$mig"); typ=$(pgtype "$mig"); up=$(pgup "$mig")
  if [ "$PGROLL_ROWS" -gt 0 ] && [ "$PGROLL_ROWS" -lt "$ROWS" ]; then limit=$PGROLL_ROWS; fi
  fresh_pg "$db" tpl
  psqlc "$db" <<EOF
ALTER TABLE orders ADD COLUMN $col $typ;
CREATE SCHEMA pgroll;
CREATE TABLE pgroll.migrations (schema name NOT NULL, name text NOT NULL, parent text,
  migration jsonb, PRIMARY KEY (schema, name));
INSERT INTO pgroll.migrations VALUES ('public', '01_create_orders', NULL, '{}'),
  ('public', '02_orders_more', '01_create_orders', '{}'), ('public', 'b_$mig', '02_orders_more', '{}');
CREATE FUNCTION pgroll.latest_version(schemaname name) RETURNS text
  SECURITY DEFINER SET search_path = pgroll, pg_catalog, pg_temp LANGUAGE sql STABLE AS \$\$
  SELECT p.name FROM pgroll.migrations p
  WHERE NOT EXISTS (SELECT 1 FROM pgroll.migrations c WHERE schema = schemaname AND c.parent = p.name)
    AND schema = schemaname \$\$;
CREATE FUNCTION _pgroll_trigger_orders_$col() RETURNS trigger LANGUAGE plpgsql AS \$\$
  DECLARE
    id public.orders.id%TYPE := NEW.id;
    email public.orders.email%TYPE := NEW.email;
    amount public.orders.amount%TYPE := NEW.amount;
    status public.orders.status%TYPE := NEW.status;
    created_at public.orders.created_at%TYPE := NEW.created_at;
    note public.orders.note%TYPE := NEW.note;
    latest_schema text;
    search_path text;
  BEGIN
    SELECT 'public' || '_' || latest_version INTO latest_schema FROM pgroll.latest_version('public');
    SELECT current_setting INTO search_path FROM current_setting('search_path');
    IF search_path != latest_schema THEN
      NEW.$col = $up;
    END IF;
    RETURN NEW;
  END; \$\$;
CREATE TRIGGER _pgroll_trigger_orders_$col BEFORE INSERT OR UPDATE ON orders
  FOR EACH ROW EXECUTE FUNCTION _pgroll_trigger_orders_$col();
CREATE PROCEDURE pgroll_backfill() LANGUAGE plpgsql AS \$\$
  DECLARE last_id bigint := -9223372036854775808; n bigint;
  BEGIN
    LOOP
      WITH batch AS (SELECT o.id FROM orders o WHERE o.id > last_id ORDER BY o.id LIMIT 1000 FOR NO KEY UPDATE),
           upd AS (UPDATE orders o SET id = o.id WHERE o.id IN (SELECT batch.id FROM batch) RETURNING o.id)
      SELECT max(upd.id) INTO n FROM upd;
      EXIT WHEN n IS NULL;
      last_id := n;
      COMMIT;
      EXIT WHEN last_id >= $limit;
    END LOOP;
  END \$\$;
CHECKPOINT;
EOF
  timed "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CALL pgroll_backfill()"
  local done_rows
  done_rows=$(psqlc "$db" -c "SELECT count(*) FROM orders WHERE $col IS NOT NULL")
  if [ "$done_rows" -lt "$limit" ]; then echo "bench: the pgroll-style backfill did $done_rows rows" >&2; exit 1; fi
  local bad
  bad=$(psqlc "$db" -c "SELECT count(*) FROM orders WHERE id <= $limit AND $col IS DISTINCT FROM ($up)")
  if [ "$bad" != 0 ]; then echo "bench: $bad rows wrong after the pgroll-style backfill" >&2; exit 1; fi
  drop_pg "$db"
  fdiv "$done_rows" "$T_SECONDS"
}

sqlite_update_baseline() {  # mig -> rows/s
  local f="$TMP/b.db" mig="$1"
  fresh_sqlite "$f" "$TMP/tpl.db"
  "$SLUICE" --db "sqlite:$f" start "$TMP/plans/sqlite/b_$mig.yaml" >/dev/null
  timed sqlite3 "$f" "UPDATE orders SET $(newcol "$mig") = $(squp "$mig")"
  check_sqlite "$f" "$mig" "the single UPDATE"
  fdiv "$ROWS" "$T_SECONDS"
}

sqlite_sluice() {  # mig -> "rows/s rss_kb"
  local f="$TMP/b.db" mig="$1"
  fresh_sqlite "$f" "$TMP/tpl.db"
  "$SLUICE" --db "sqlite:$f" start "$TMP/plans/sqlite/b_$mig.yaml" >/dev/null
  timed "$SLUICE" --db "sqlite:$f" backfill "b_$mig"
  check_sqlite "$f" "$mig" "sluice backfill"
  echo "$(fdiv "$ROWS" "$T_SECONDS") $T_RSS_KB"
}

# ---------------------------------------------------------------------------
# Figure 3: p99 latency of rate-limited application workloads, and the step
# response of the throttle
# ---------------------------------------------------------------------------
cat >"$TMP/update_email.sql" <<EOF
\set id random(1, $ROWS)
UPDATE orders SET email = 'User' || :id || '@Example.NET' WHERE id = :id;
EOF
cat >"$TMP/update_status.sql" <<EOF
\set id random(1, $ROWS)
UPDATE orders SET status = 'paid' WHERE id = :id;
EOF
cat >"$TMP/read_pk.sql" <<EOF
\set id random(1, $ROWS)
SELECT email, amount, status FROM orders WHERE id = :id;
EOF

# pgbench arguments of each application workload of figure 3:
#   upd    single-row updates of random orders (rows the backfill rewrites)
#   read   primary-key reads of random orders
#   mixed  pgbench's built-in TPC-B-like transaction (3 updates, a select and
#          an insert) on its own tables (pgbench -i -s 4 in the template)
workload_args() {
  case "$1" in
    upd) echo "-f $TMP/update_email.sql" ;;
    read) echo "-f $TMP/read_pk.sql" ;;
    mixed) echo "-b tpcb-like" ;;
  esac
}

# p99 (ms) of the transactions in pgbench logs $1* that ended in [from, to].
p99_of() {  # prefix from to -> "p99_ms count"
  cat "$1".* 2>/dev/null | awk -v from="$2" -v to="$3" '
    $3 != "skipped" { t = $5 + $6 / 1e6; if (t >= from && t <= to) print $3 / 1000.0 }' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan 0"; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++;
                             if (i < 1) i = 1; printf "%.3f %d\n", v[i], NR }'
}

# Starts `sluice backfill b_lower` on db in the background; its pid, exit
# code and end time go to files named after tag. Sets BF_JOB.
backfill_bg() {  # db tag [backfill args...]
  local db="$1" tag="$2"
  shift 2
  rm -f "$TMP/logs/bf_$tag".{pid,rc,end}
  (
    "$SLUICE" --db "$(pgurl "$db")" backfill b_lower "$@" >"$TMP/logs/bf_$tag.out" 2>&1 &
    echo $! >"$TMP/logs/bf_$tag.pid"
    rc=0; wait $! || rc=$?
    now >"$TMP/logs/bf_$tag.end"; echo "$rc" >"$TMP/logs/bf_$tag.rc"
  ) &
  BF_JOB=$!
}

# Ends the backfill of backfill_bg (SIGINT: committed chunks stay) unless it
# finished; fails the benchmark if it failed. Sets BF_END (now, or when it
# finished).
backfill_end() {  # tag
  BF_END=$(now)
  if [ ! -e "$TMP/logs/bf_$1.end" ]; then
    kill -INT "$(cat "$TMP/logs/bf_$1.pid")" 2>/dev/null || true
    wait "$BF_JOB" || true
  else
    wait "$BF_JOB" || true
    if [ "$(cat "$TMP/logs/bf_$1.rc")" != 0 ]; then
      cat "$TMP/logs/bf_$1.out" >&2; echo "bench: backfill failed" >&2; exit 1
    fi
    BF_END=$(cat "$TMP/logs/bf_$1.end")
  fi
}

# Sets LAT_P99 and LAT_N; unless told `none`, also runs the backfill (with
# the extra arguments) during the workload and sets LAT_BF_ROWS (rows it
# rewrote while measured) and LAT_BF_SECONDS.
latency_run() {  # db tag workload none|backfill [extra backfill args...]
  local db="$1" tag="$2" wl="$3" bf="$4" prefix="$TMP/logs/lat_$2" t_bf0 t_bf1 pid
  shift 4
  rm -f "$prefix".*
  # shellcheck disable=SC2046
  "$PGBIN/pgbench" -n $(workload_args "$wl") -c 4 -j 2 -R "$RATE" -T "$LAT_SECONDS" -M prepared \
    -l --log-prefix="$prefix" "$db" >"$TMP/logs/pgbench_$tag.out" 2>&1 &
  pid=$!
  sleep 3
  t_bf0=$(now)
  [ "$bf" = none ] || backfill_bg "$db" "$tag" "$@"
  wait "$pid" || { cat "$TMP/logs/pgbench_$tag.out" >&2; echo "bench: pgbench failed" >&2; exit 1; }
  t_bf1=$(now)
  LAT_BF_ROWS=0
  LAT_BF_SECONDS=0
  if [ "$bf" != none ]; then
    backfill_end "$tag"
    t_bf1=$BF_END  # finished first: measure only while it ran
    LAT_BF_ROWS=$(psqlc "$db" -c "SELECT coalesce(sum(rows_done), 0) FROM sluice.checkpoints")
    LAT_BF_SECONDS=$(awk -v a="$t_bf0" -v b="$t_bf1" 'BEGIN { printf "%.1f", b - a }')
  fi
  local p
  p=$(p99_of "$prefix" "$t_bf0" "$t_bf1")
  read -r LAT_P99 LAT_N <<<"$p"
}

# The step response: a default `sluice backfill` runs alone for STEP_IDLE s,
# then the update workload (figure 3's `upd`, same rate) starts at t0 and
# stops at t1 = t0 + STEP_LOAD, then STEP_AFTER s more. The backfill's rate
# per 0.5 s comes from the rows and commit times of its `chunks` rows; its
# idle rate is the mean over the idle period after its first second. Sets
# STEP_HALF (s from t0 to the end of the first 0.5 s bucket at most half the
# idle rate) and STEP_BACK (s from t1 to the end of the first 1 s window
# above 80% of it); "nan" when it did not happen. Writes the time series
# (s since t0, backfill rows/s, application p99 ms, the highest probe
# latency the chunks recorded, per 0.5 s) next to the plot (STEP_PLOT, .tsv).
step_run() {  # db
  local db="$1" prefix="$TMP/logs/step" t_s t0 t1 series="$TMP/logs/step.tsv"
  rm -f "$prefix".*
  backfill_bg "$db" step
  # The idle period starts with the first chunk (the run first counts the
  # table's rows).
  for _ in $(seq 1 600); do
    [ "$(psqlc "$db" -c "SELECT count(*) > 0 FROM sluice.chunks" 2>/dev/null)" = t ] && break
    sleep 0.1
  done
  t_s=$(now)
  sleep "$STEP_IDLE"
  t0=$(now)
  # shellcheck disable=SC2046
  "$PGBIN/pgbench" -n $(workload_args upd) -c 4 -j 2 -R "$RATE" -T "$STEP_LOAD" -M prepared \
    -l --log-prefix="$prefix" "$db" >"$TMP/logs/pgbench_step.out" 2>&1 ||
    { cat "$TMP/logs/pgbench_step.out" >&2; echo "bench: pgbench failed" >&2; exit 1; }
  t1=$(now)
  sleep "$STEP_AFTER"
  backfill_end step
  if awk -v e="$BF_END" -v t="$t1" -v a="$STEP_AFTER" 'BEGIN { exit !(e < t + a - 0.5) }'; then
    log "step response: the backfill finished $(awk -v e="$BF_END" -v t="$t1" 'BEGIN { printf "%.1f", e - t }') s after the load ended; use a larger --step-rows"
  fi
  # Backfill rows per 0.5 s bucket (by commit time).
  psqlc "$db" -F ' ' -c "SELECT floor(extract(epoch FROM committed_at::timestamptz) * 2) / 2, sum(rows),
                                coalesce(round(max(probe_ms)::numeric, 3)::text, 'NaN')
                         FROM sluice.chunks GROUP BY 1 ORDER BY 1" >"$TMP/logs/step_rows.txt"
  # Application p99 per 0.5 s bucket (by end time).
  cat "$prefix".* 2>/dev/null | awk '$3 != "skipped" { t = $5 + $6 / 1e6; printf "%.1f %.3f\n", int(t * 2) / 2, $3 / 1000.0 }' |
    sort -k1,1g -k2,2g | awk '
      function flush() { if (n > 0) { i = int(n * 0.99); if (i < n * 0.99) i++; if (i < 1) i = 1; print b, v[i] } }
      $1 != b { flush(); b = $1; n = 0 } { v[++n] = $2 } END { flush() }' >"$TMP/logs/step_p99.txt"
  awk -v ts="$t_s" -v t0="$t0" -v t1="$t1" -v te="$BF_END" -v out="$series" '
    FNR == NR { rows[sprintf("%.1f", $1)] = $2; probe[sprintf("%.1f", $1)] = $3; next }
    { p99[sprintf("%.1f", $1)] = $2 }
    END {
      from = int(ts * 2) / 2; to = int(te * 2) / 2
      n = 0; sum = 0
      for (b = from; b <= to; b += 0.5) {
        k = sprintf("%.1f", b); r = (k in rows) ? rows[k] / 0.5 : 0; rate[k] = r
        if (b >= ts + 1 && b + 0.5 <= t0) { sum += r; n++ }
      }
      base = n ? sum / n : 0
      half = "nan"; back = "nan"
      for (b = from; b <= to; b += 0.5) {
        k = sprintf("%.1f", b); k2 = sprintf("%.1f", b + 0.5)
        printf "%.1f\t%.0f\t%s\t%s\n", b - t0, rate[k], (k in p99) ? p99[k] : "NaN", (k in probe) ? probe[k] : "NaN" > out
        if (half == "nan" && b + 0.5 > t0 && rate[k] <= base / 2) half = sprintf("%.1f", b + 0.5 - t0)
        if (back == "nan" && b >= t1 && b + 1 <= te && (rate[k] + rate[k2]) / 2 > 0.8 * base) back = sprintf("%.1f", b + 1 - t1)
      }
      printf "%s %s %.0f\n", half, back, base
    }' "$TMP/logs/step_rows.txt" "$TMP/logs/step_p99.txt" >"$TMP/logs/step_result.txt"
  read -r STEP_HALF STEP_BACK STEP_IDLE_RATE <"$TMP/logs/step_result.txt"
  local load_end
  load_end=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  mkdir -p "$(dirname "$STEP_PLOT")"
  gnuplot <<EOF
set terminal pngcairo size 900,480 noenhanced font ",10"
set output "$STEP_PLOT"
set title "Step response of the default throttle: $STEP_ROWS rows, $(nproc) cores, $(date -u +%Y-%m-%d); update load (pgbench -R $RATE) from 0 to $load_end s (shaded)"
set xlabel "seconds since the load step"
set ylabel "backfill rows/s (per 0.5 s)"
set y2label "application p99 per 0.5 s (ms)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key top right opaque
set grid
set object 1 rect from 0, graph 0 to $load_end, graph 1 behind fc rgb "#e8e8e8" fs solid noborder
plot "$series" using 1:2 axes x1y1 with steps lw 2 title "backfill rows/s", \
     "$series" using 1:3 axes x1y2 with linespoints pt 7 ps 0.5 title "application p99 (ms)"
EOF
  cp "$series" "${STEP_PLOT%.*}.tsv"
}

# ---------------------------------------------------------------------------
# Figure 4: single-row UPDATE throughput with and without the triggers
# ---------------------------------------------------------------------------
tps_of() {  # db script -> tps
  "$PGBIN/pgbench" -n -f "$2" -c 2 -j 2 -T "$TPS_SECONDS" -M prepared "$1" 2>&1 |
    awk '/^tps = / { print $3; exit }'
}

# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------
declare -A R  # R[key] = space-separated values over runs
add() { R[$1]="${R[$1]:-} $2"; }
stat3() {  # values... -> "median min max"
  printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan nan nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
log "sluice: $SLUICE_SRC ($(date -r "$SLUICE_SRC" -u +%Y-%m-%dT%H:%MZ))"
log "cluster: $TMP (PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }'), unix socket, fsync off)"
log "rows: $ROWS, runs: $RUNS, PostgreSQL workers: ${WORKERS:-default}, machine: $(nproc) cores"
write_plans
log "loading $ROWS rows (PostgreSQL template, SQLite file) and $SMALL_ROWS-row copies"
pg_template tpl "$ROWS"
if want throughput; then
  pg_template tpl_small "$SMALL_ROWS"
  sqlite_template "$TMP/tpl.db" "$ROWS"
  sqlite_template "$TMP/tpl_small.db" "$SMALL_ROWS"
fi
if want latency; then
  # Figure 3's mixed workload runs on pgbench's own tables next to orders.
  "$PGBIN/pgbench" -i -q -s 4 -n tpl >"$TMP/logs/pgbench_init.out" 2>&1
fi
if want step; then
  log "loading $STEP_ROWS rows for the step response"
  pg_template tpl_step "$STEP_ROWS"
fi

for run in $(seq 1 "$RUNS"); do
  log "=== run $run/$RUNS ==="
  if want throughput; then
    for mig in lower cents; do
      upd=$(pg_update_baseline "$mig");          log "pg $mig: single UPDATE          $upd rows/s"
      out=$(pg_sluice "$mig" "$WORKERS"); read -r sl rss <<<"$out"; log "pg $mig: sluice backfill        $sl rows/s (peak RSS $rss kB)"
      pgr=$(pg_pgroll "$mig");                   log "pg $mig: pgroll algorithm        $pgr rows/s"
      add "f1_pg_$mig" "$(fdiv "$sl" "$upd")"
      add "f2_$mig" "$(fdiv "$sl" "$pgr")"
      if [ "$mig" = lower ]; then add rss_pg_big "$rss"; fi
      supd=$(sqlite_update_baseline "$mig");     log "sqlite $mig: single UPDATE      $supd rows/s"
      out=$(sqlite_sluice "$mig"); read -r ssl srss <<<"$out"; log "sqlite $mig: sluice backfill    $ssl rows/s (peak RSS $srss kB)"
      add "f1_sqlite_$mig" "$(fdiv "$ssl" "$supd")"
      if [ "$mig" = lower ]; then add rss_sqlite_big "$srss"; fi
    done

    # Figure 5: the same backfill on the 100,000-row copies.
    fresh_pg b_small tpl_small
    sluice_pg b_small start "$TMP/plans/pg/b_lower.yaml" >/dev/null
    timed "$SLUICE" --db "$(pgurl b_small)" backfill b_lower ${WORKERS:+--workers "$WORKERS"}
    drop_pg b_small
    small_rss=$T_RSS_KB
    fresh_sqlite "$TMP/b.db" "$TMP/tpl_small.db"
    "$SLUICE" --db "sqlite:$TMP/b.db" start "$TMP/plans/sqlite/b_lower.yaml" >/dev/null
    timed "$SLUICE" --db "sqlite:$TMP/b.db" backfill b_lower
    ssmall_rss=$T_RSS_KB
    log "peak RSS on $SMALL_ROWS rows: pg $small_rss kB, sqlite $ssmall_rss kB"
    big=${R[rss_pg_big]##* }; sbig=${R[rss_sqlite_big]##* }
    add f5_pg "$(fdiv "$big" "$small_rss")"
    add f5_sqlite "$(fdiv "$sbig" "$ssmall_rss")"
  fi

  if want latency; then
    # Figure 3: for each workload, p99 with no backfill (triggers installed)
    # and during a default `sluice backfill` (on PostgreSQL: the relative
    # probe objective, gated by the application's activity); for the update
    # workload also with the absolute 50 ms objective (--probe-slowdown 0).
    for wl in $WORKLOADS; do
      fresh_pg b_lat tpl
      sluice_pg b_lat start "$TMP/plans/pg/b_lower.yaml" >/dev/null
      latency_run b_lat "base_$wl" "$wl" none
      base_p99=$LAT_P99; log "p99 $wl, no backfill: $base_p99 ms ($LAT_N tx)"
      drop_pg b_lat
      modes=(default); [ "$wl" = upd ] && modes=(default abs)
      for mode in "${modes[@]}"; do
        extra=(); [ "$mode" = abs ] && extra=(--probe-slowdown 0)  # the absolute 50 ms objective
        fresh_pg b_lat tpl
        sluice_pg b_lat start "$TMP/plans/pg/b_lower.yaml" >/dev/null
        latency_run b_lat "thr_${wl}_$mode" "$wl" backfill "${extra[@]}"
        log "p99 $wl during backfill, throttle $mode ${extra[*]}: $LAT_P99 ms ($LAT_N tx); backfill did $LAT_BF_ROWS rows in ${LAT_BF_SECONDS}s"
        add "f3_${wl}_$mode" "$(fdiv "$LAT_P99" "$base_p99")"
        add "f3_${wl}_${mode}_rows" "$(fdiv "$LAT_BF_ROWS" "$LAT_BF_SECONDS")"
        drop_pg b_lat
      done
    done
  fi

  if want step; then
    # The step response (figures 6 and 7).
    fresh_pg b_step tpl_step
    sluice_pg b_step start "$TMP/plans/pg/b_lower.yaml" >/dev/null
    step_run b_step
    log "step response: idle rate $STEP_IDLE_RATE rows/s; halved ${STEP_HALF} s after the load step, back above 80% ${STEP_BACK} s after it ended (plot: $STEP_PLOT)"
    add f6_half "$STEP_HALF"
    add f7_back "$STEP_BACK"
    drop_pg b_step
  fi

  if want tps; then
    # Figure 4: pgbench TPS without triggers, then with sluice's triggers
    # (both migrations' columns), on the same database.
    # Measured without, with, and again without (after rollback); "without"
    # is the mean of the two, so drift during the run (bloat, neighbours'
    # load) does not favour either side.
    fresh_pg b_tps tpl
    e0=$(tps_of b_tps "$TMP/update_email.sql"); s0=$(tps_of b_tps "$TMP/update_status.sql")
    sluice_pg b_tps start "$TMP/plans/pg/b_both.yaml" >/dev/null
    e1=$(tps_of b_tps "$TMP/update_email.sql"); s1=$(tps_of b_tps "$TMP/update_status.sql")
    sluice_pg b_tps rollback b_both >/dev/null
    e2=$(tps_of b_tps "$TMP/update_email.sql"); s2=$(tps_of b_tps "$TMP/update_status.sql")
    drop_pg b_tps
    e0=$(awk -v a="$e0" -v b="$e2" 'BEGIN { print (a + b) / 2 }'); s0=$(awk -v a="$s0" -v b="$s2" 'BEGIN { print (a + b) / 2 }')
    log "tps update email: $e0 without (mean of before/after), $e1 with triggers; update status: $s0 without, $s1 with"
    add f4_email "$(fdiv "$e1" "$e0")"
    add f4_status "$(fdiv "$s1" "$s0")"
  fi
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
row() {  # label key target op (nothing when the figure was not run)
  local m lo hi ok
  [ -n "${R[$2]:-}" ] || return 0
  # shellcheck disable=SC2086
  read -r m lo hi < <(stat3 ${R[$2]})
  ok=$(awk -v m="$m" -v t="$3" -v op="$4" 'BEGIN { if (m == "nan") print "?"; else if (op == ">=") print (m >= t ? "met" : "NOT met"); else if (op == "<=") print (m <= t ? "met" : "NOT met"); else print "-" }')
  printf '| %-58s | %7.2f | %5.2f – %-5.2f | %-6s | %-7s |\n' "$1" "$m" "$lo" "$hi" "$4 $3" "$ok"
}
echo
echo "sluice backfill benchmark: $ROWS rows, $RUNS run(s), $(nproc) cores, PostgreSQL workers ${WORKERS:-default}, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| figure                                                     |  median | spread        | target | result  |"
echo "|------------------------------------------------------------|---------|---------------|--------|---------|"
row "1. PG add_column lower(email): sluice ÷ single UPDATE"        f1_pg_lower 0.9 ">="
row "1. PG alter_column text→cents: sluice ÷ single UPDATE"        f1_pg_cents 0.9 ">="
row "1. SQLite add_column lower(email): sluice ÷ single UPDATE"    f1_sqlite_lower 0.8 ">="
row "1. SQLite alter_column text→cents: sluice ÷ single UPDATE"    f1_sqlite_cents 0.8 ">="
row "2. PG add_column: sluice ÷ pgroll algorithm"                  f2_lower 3 ">="
row "2. PG alter_column: sluice ÷ pgroll algorithm"                f2_cents 3 ">="
row "3a. p99 row updates, default backfill ÷ no backfill"         f3_upd_default 1.5 "<="
row "3b. p99 key reads, default backfill ÷ no backfill"           f3_read_default 1.5 "<="
row "3c. p99 pgbench tpcb-like, default backfill ÷ no backfill"    f3_mixed_default 1.5 "<="
row "3a. (context) the same, --probe-slowdown 0 (50 ms absolute)"  f3_upd_abs 1.5 "<="
row "6. s from a load step to the backfill rate halving"           f6_half 2 "<="
row "7. s from the load's end to the rate > 80% of its idle rate"   f7_back 10 "<="
row "4. UPDATE tps with ÷ without triggers (update email)"         f4_email 0.8 ">="
row "4. UPDATE tps with ÷ without triggers (update status)"        f4_status 0.8 ">="
row "5. peak RSS PG backfill, $ROWS ÷ $SMALL_ROWS rows"             f5_pg 1.2 "<="
row "5. peak RSS SQLite backfill, $ROWS ÷ $SMALL_ROWS rows"         f5_sqlite 1.2 "<="
echo
echo "context (not ratios): backfill rows/s while measured in figure 3"
for k in upd_default read_default mixed_default upd_abs; do
  # shellcheck disable=SC2086
  [ -n "${R[f3_${k}_rows]:-}" ] && printf '  %-14s median %s rows/s\n' "$k:" "$(stat3 ${R[f3_${k}_rows]} | awk '{ print $1 }')"
done
echo "raw values per run:"
for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "  $k:${R[$k]}"; done
