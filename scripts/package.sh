#!/usr/bin/env bash
# Builds the Debian package of sluice (CPack, Depends from dpkg-shlibdeps):
#
#   scripts/package.sh [OUTDIR]        # default: build/package
#   sudo apt install ./build/package/sluice_*.deb
#
# Builds only what the package holds (the binary, libsluice, the man page and
# completion) in build/ with the gcc configuration of scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/package}
scripts/build.sh gcc sluice sluice_shared sluice_static sluice_generated_docs
mkdir -p "$out"
cpack --config build/CPackConfig.cmake -G DEB -B "$(realpath "$out")"
ls -1 "$out"/*.deb
