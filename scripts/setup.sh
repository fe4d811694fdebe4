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
  procps time python3
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

echo "setup: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
