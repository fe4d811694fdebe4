#!/usr/bin/env bash
# Builds sluice and runs every test (unit, SQLite and PostgreSQL integration).
# The PostgreSQL tests start a throwaway cluster of their own in a temporary
# directory and stop it when they finish.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 --timeout 900 "$@"
