#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build, test and benchmark:
# compilers (GCC 12, clang 14 with its sanitizer runtimes) and libraries,
# GoogleTest, and PostgreSQL 15 server binaries for the test harness's
# throwaway clusters. Safe to rerun: it installs only what
# is missing. Needs root (or sudo).
#
# The system-wide "main" PostgreSQL cluster that Debian creates on install is
# never used by sluice; this script asks postgresql-common not to create one.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  # clang 14 for the clang and sanitizer builds (scripts/build.sh clang|asan|tsan):
  # libclang-rt-14-dev holds the ASan/UBSan/TSan runtimes (only recommended
  # by clang-14), llvm puts llvm-symbolizer on PATH for symbolized reports.
  clang-14 libclang-rt-14-dev llvm
  libsqlite3-dev sqlite3
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libxxhash-dev
  libpq-dev libpg-query-dev
  libgtest-dev libgmock-dev
  postgresql-15 postgresql-client-15
  # The contract audit's tripwires (docs/audit.md) and their test.
  postgresql-15-pgaudit
  procps time python3
  # bench/run.sh plots the step response (docs/step-response.png).
  gnuplot-nox
  # sluice serve (src/serve) and its tests: the HTTP library, promtool and a
  # Prometheus server the tests start themselves, headless Chromium for the
  # status page test.
  libcpp-httplib-dev prometheus chromium
  # The Django example (examples/django) its test runs on a throwaway cluster.
  python3-django python3-psycopg2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

# No system cluster: sluice's tests start clusters of their own.
if [ ! -e /etc/postgresql-common/createcluster.d/50-sluice.conf ]; then
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/50-sluice.conf >/dev/null
fi

# Debian's prometheus package starts a system service on install; sluice's
# tests start their own Prometheus on a free loopback port. A policy-rc.d
# that exits 101 ("action forbidden") keeps invoke-rc.d from starting any
# service while installing; it is removed afterwards (and left alone if the
# machine already had one).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

echo "setup: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Under systemd the unit may still be enabled: make sure no Prometheus
# service is left running or starts at boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
echo "setup: done"
