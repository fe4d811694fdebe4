#!/usr/bin/env bash
# Configures and builds sluice with -Werror, one build directory per
# configuration:
#
#   scripts/build.sh [CONFIG] [TARGET...]
#
#   gcc    build/        the system compiler (GCC 12 on Debian 12); the default
#   clang  build-clang/  clang 14, with -Wthread-safety
#   asan   build-asan/   clang 14, AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan   build-tsan/   clang 14, ThreadSanitizer
#
# Without TARGETs it builds everything (library, CLI, tests, benchmarks).
# The targets asan_tests and tsan_tests build just what the tests labelled
# asan / tsan need (tests/CMakeLists.txt). CLANG_CC / CLANG_CXX choose
# another clang.
set -euo pipefail
cd "$(dirname "$0")/.."

config=gcc
case "${1:-}" in
  gcc | clang | asan | tsan) config=$1; shift ;;
  -*) echo "usage: scripts/build.sh [gcc|clang|asan|tsan] [TARGET...]" >&2; exit 2 ;;
esac

args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON)
dir=build
if [ "$config" != gcc ]; then
  dir=build-$config
  cc=${CLANG_CC:-$(command -v clang-14 || command -v clang || echo clang-14)}
  cxx=${CLANG_CXX:-$(command -v clang++-14 || command -v clang++ || echo clang++-14)}
  args+=(-DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx")
fi
case "$config" in
  asan) args+=(-DSLUICE_SANITIZE=address,undefined) ;;
  tsan) args+=(-DSLUICE_SANITIZE=thread) ;;
esac

cmake -S . -B "$dir" "${args[@]}" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
