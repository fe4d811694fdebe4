# Sourced by the benchmark scripts: a throwaway PostgreSQL 15 cluster in a
# temporary directory, on a unix socket only, run as `nobody` when the
# scripts run as root. Never the machine's system cluster.
#
#   . bench/cluster.sh
#   cluster_start "$TMP"      # sets PGHOST/PGPORT/PGUSER, SOCK, PGDATA_DIR
#                             # (BENCH_PG_CONF: extra postgresql.conf lines, e.g.
#                             #  "log_min_duration_statement = 0" to time every statement)
#   ...
#   cluster_stop              # from the caller's EXIT trap

PGBIN=/usr/lib/postgresql/15/bin
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then RUN_AS=(runuser -u nobody --); fi
SERVER_UP=0

cluster_start() {  # dir
  PGDATA_DIR="$1/pgdata"
  SOCK="$1/sock"
  PGPORT_B=5432   # listen_addresses = '': the port only names the socket file
  mkdir -p "$PGDATA_DIR" "$SOCK" "$1/logs"
  if [ ${#RUN_AS[@]} -gt 0 ]; then chown nobody "$PGDATA_DIR" "$SOCK" "$1/logs"; fi
  "${RUN_AS[@]}" env LC_ALL=C "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$1/logs/initdb.log" 2>&1
  cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
# sluice benchmark cluster (throwaway)
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PGPORT_B
max_connections = 40
shared_buffers = 1GB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
fsync = off
full_page_writes = off
autovacuum = off
${BENCH_PG_CONF:-}
CONF
  "${RUN_AS[@]}" env LC_ALL=C "$PGBIN/pg_ctl" start -D "$PGDATA_DIR" -l "$1/logs/postgres.log" -w -t 60 >/dev/null
  SERVER_UP=1
  export PGHOST="$SOCK" PGPORT="$PGPORT_B" PGUSER=postgres
}

cluster_stop() {
  if [ "$SERVER_UP" = 1 ]; then
    "${RUN_AS[@]}" env LC_ALL=C "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -w -t 60 >/dev/null 2>&1
    SERVER_UP=0
  fi
}

pgurl() { echo "host=$SOCK port=$PGPORT_B user=postgres dbname=$1"; }
psqlc() { local db="$1"; shift; "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now() { date +%s.%N; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.6g\n", a / b }'; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
# Median and min-max of numbers given as arguments: "median (min-max)".
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3g (%.3g-%.3g)\n", m, v[1], v[NR] }'; }

# --- the boilerplate every benchmark script shares ------------------------
#
#   bench_bad_arg "$1"            # unknown argument: message, exit 2
#   bench_require TOOL ...        # each must be executable (or a command)
#   bench_tmp NAME                # TMP=/tmp/sluice-NAME.XXXXXX (mode 755)
#   bench_trap                    # at exit: stop background jobs, the cluster,
#                                 # remove TMP unless KEEP=1; INT/TERM exit 130
#   bench_binary "$SLUICE_SRC"    # SLUICE=$TMP/sluice, a private copy
#
# A script may define bench_on_exit (called first at exit) for clean-up of
# its own.
bench_bad_arg() { echo "bench: unknown argument '$1'" >&2; exit 2; }

bench_require() {
  local tool
  for tool in "$@"; do
    [ -x "$tool" ] || command -v "$tool" >/dev/null ||
      { echo "bench: $tool is missing; run scripts/setup.sh (Debian packages) and scripts/build.sh" >&2; exit 1; }
  done
}

bench_tmp() {
  TMP="$(mktemp -d "/tmp/sluice-$1.XXXXXX")"
  chmod 755 "$TMP"
}

bench_cleanup() {
  local rc=$?
  set +e
  if declare -F bench_on_exit >/dev/null; then bench_on_exit; fi
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  cluster_stop
  if [ -n "${TMP:-}" ]; then
    if [ "${KEEP:-0}" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit $rc
}

bench_trap() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# A private copy of the binary: the same sluice for the whole run, even if
# build/ is rebuilt meanwhile (retried while a link is in progress).
bench_binary() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    if cp "$1" "$TMP/sluice" 2>/dev/null && "$TMP/sluice" --help >/dev/null 2>&1; then break; fi
    sleep 3
  done
  "$TMP/sluice" --help >/dev/null
  SLUICE="$TMP/sluice"
}
