#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then the example in
# examples/api built against that tree three ways (CMake + libsluice.so,
# CMake + libsluice.a, pkg-config + libsluice.so) and run on a new SQLite
# file; the database is checked with the sqlite3 shell, not by the example.
#
#   tests/package/install_test.sh BUILD_DIR SOURCE_DIR
#
# Reuses the build's objects: installs what the build made, compiles only
# the one-file example.
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d /tmp/sluice-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }

# What is installed: the binary, both libraries, only the public headers,
# the CMake package, sluice.pc, the man page and the completion.
libdir=$(dirname "$(find "$prefix" -name 'libsluice.a')")
[ -n "$libdir" ] || fail "no libsluice.a installed"
for f in bin/sluice include/sluice/sluice.h include/sluice/status.h share/man/man1/sluice.1 \
         share/bash-completion/completions/sluice; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in libsluice.so libsluice.a pkgconfig/sluice.pc cmake/sluice/sluiceConfig.cmake \
         cmake/sluice/sluiceConfigVersion.cmake cmake/sluice/sluiceTargets.cmake; do
  [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
[ "$headers" = "./sluice/sluice.h ./sluice/status.h " ] || fail "installed headers: $headers (only include/sluice/* may be)"
soname=$(objdump -p "$libdir/libsluice.so" | awk '/SONAME/ {print $2}')
[[ $soname == libsluice.so.* ]] || fail "SONAME '$soname'"
"$prefix/bin/sluice" --version | grep -q '^sluice [0-9]' || fail "installed sluice --version"

run_example() {  # run_example NAME BINARY: runs it on a new file, checks the database
  local name=$1 bin=$2 db=$tmp/$1.db
  local rc=0
  "$bin" "$db" >"$tmp/$name.out" 2>&1 || rc=$?
  [ $rc -eq 0 ] || { cat "$tmp/$name.out"; fail "$name: the example exited $rc"; }
  grep -q 'after complete: 500 rows' "$tmp/$name.out" || { cat "$tmp/$name.out"; fail "$name: output"; }
  local got
  got=$(sqlite3 "$db" "SELECT (SELECT group_concat(phase) FROM _sluice_migrations) || ' ' ||
                              count(*) || ' ' || sum(amount) || ' ' || typeof(amount) FROM orders")
  # amounts were 'i.(i%100)' for i in 1..500: cents = 100*i + i%100
  local want
  want="complete 500 $(( (500 * 501 / 2) * 100 + (5 * 4950) )) integer"
  [ "$got" = "$want" ] || fail "$name: database has '$got', want '$want'"
  echo "ok: $name"
}

cxx_launcher=()
command -v ccache >/dev/null && cxx_launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# 1. CMake, find_package(sluice) -> sluice::sluice (shared).
cmake -S "$src/examples/api" -B "$tmp/cmake-shared" -DCMAKE_PREFIX_PATH="$prefix" "${cxx_launcher[@]}" \
  >"$tmp/cfg1.log" 2>&1 || { cat "$tmp/cfg1.log"; fail "configure (shared)"; }
cmake --build "$tmp/cmake-shared" >"$tmp/b1.log" 2>&1 || { cat "$tmp/b1.log"; fail "build (shared)"; }
loaded=$(ldd "$tmp/cmake-shared/migrate_example" | awk '/libsluice\.so/ {print $3}')
[ -n "$loaded" ] && [ "$(realpath "$loaded")" = "$(realpath "$libdir")/$(basename "$(realpath "$loaded")")" ] ||
  { ldd "$tmp/cmake-shared/migrate_example"; fail "the CMake example does not load the installed libsluice.so"; }
run_example cmake-shared "$tmp/cmake-shared/migrate_example"

# 2. CMake, COMPONENTS static -> sluice::sluice_static.
cmake -S "$src/examples/api" -B "$tmp/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" -DSLUICE_STATIC=ON \
  "${cxx_launcher[@]}" >"$tmp/cfg2.log" 2>&1 || { cat "$tmp/cfg2.log"; fail "configure (static)"; }
cmake --build "$tmp/cmake-static" >"$tmp/b2.log" 2>&1 || { cat "$tmp/b2.log"; fail "build (static)"; }
if ldd "$tmp/cmake-static/migrate_example" | grep -q libsluice; then fail "the static example loads libsluice.so"; fi
run_example cmake-static "$tmp/cmake-static/migrate_example"

# 3. pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion sluice)" = "$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ] ||
  fail "pkg-config --modversion sluice: $(pkg-config --modversion sluice)"
# shellcheck disable=SC2046
c++ $(pkg-config --cflags sluice) "$src/examples/api/migrate_example.cc" -o "$tmp/pkgconfig-example" \
  $(pkg-config --libs sluice) -Wl,-rpath,"$libdir" 2>"$tmp/b3.log" || { cat "$tmp/b3.log"; fail "pkg-config build"; }
run_example pkg-config "$tmp/pkgconfig-example"
echo "PASS"
