#!/usr/bin/env bash
# The Debian package: built by CPack from the build's own install tree (no
# second compile), inspected with dpkg-deb (fields, Depends, contents),
# unpacked with dpkg-deb -x, and `sluice demo` run from the unpacked tree.
#
#   tests/package/deb_test.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
tmp=$(mktemp -d /tmp/sluice-deb-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(find "$tmp/out" -maxdepth 1 -name 'sluice_*.deb')
[ -n "$deb" ] || { ls -la "$tmp/out"; fail "no sluice_*.deb"; }
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))"

[ "$(dpkg-deb -f "$deb" Package)" = sluice ] || fail "Package: $(dpkg-deb -f "$deb" Package)"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# dpkg-shlibdeps: every shared library the binary and libsluice.so load.
for p in libc6 libstdc++6 libpq5 libsqlite3-0 libyaml-cpp libfmt libxxhash libpg-query; do
  [[ $depends == *"$p"* ]] || fail "Depends lacks $p: $depends"
done
# ... and nothing the build needs but a user does not (compilers, -dev).
[[ $depends != *-dev* ]] || fail "Depends names a -dev package: $depends"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/contents"
for f in /usr/bin/sluice /usr/include/sluice/sluice.h /usr/include/sluice/status.h /usr/share/man/man1/sluice.1 \
         /usr/share/bash-completion/completions/sluice; do
  grep -qx "$f" "$tmp/contents" || fail "$f not in the package"
done
for pat in '/libsluice\.so\.[0-9.]*$' '/libsluice\.a$' '/pkgconfig/sluice\.pc$' '/cmake/sluice/sluiceConfig\.cmake$'; do
  grep -q "$pat" "$tmp/contents" || fail "nothing matching $pat in the package"
done
extra=$(grep '^/usr/include/.' "$tmp/contents" | grep -v -e '^/usr/include/sluice/$' -e '^/usr/include/sluice/sluice\.h$' \
        -e '^/usr/include/sluice/status\.h$' || true)
[ -z "$extra" ] || fail "headers other than include/sluice/*: $extra"

dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/sluice" --version | grep -q '^sluice [0-9]' || fail "--version of the unpacked binary"
(cd "$tmp" && timeout 300 "$tmp/root/usr/bin/sluice" demo --rows 2000 --db "sqlite:$tmp/demo.db" >"$tmp/demo.out" 2>&1) ||
  { cat "$tmp/demo.out"; fail "sluice demo from the unpacked package"; }
[ "$(sqlite3 "$tmp/demo.db" "SELECT phase FROM _sluice_migrations")" = complete ] || fail "demo's migration not complete"
# The completion script loads in bash and completes a verb.
out=$(bash -c "source '$tmp/root/usr/share/bash-completion/completions/sluice'; COMP_WORDS=(sluice sta); COMP_CWORD=1; _sluice; echo \"\${COMPREPLY[*]}\"")
[[ $out == *start* && $out == *status* ]] || fail "completion of 'sluice sta': '$out'"
echo "PASS"
