#!/usr/bin/env bash
# The quick start: install what is needed, build, and run `sluice demo` on a
# SQLite file (./sluice-demo.db).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/sluice demo "$@"
