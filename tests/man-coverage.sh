#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every exported symbol (lib/libshf.sym, functions and variables) has
# man/man3/<symbol>.3; every installed program has man/man1/<program>.1;
# and, once the library is built, its dynamic symbol table exports exactly
# the names in lib/libshf.sym.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/shf-test.sh"
sym=$top_srcdir/lib/libshf.sym

[ -f "$sym" ] || { echo "no $sym"; exit 99; }
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

# Names between "global:" and "local:" of every version node.
# Comments are removed first: they may mention "global:" themselves.
shf_sym_uncommented "$sym" |
	awk '/global:/ { g = 1; next } /local:/ { g = 0; next }
	     /\}/ { g = 0; next }
	     g { gsub(/[ \t;]/, ""); if ($0 != "") print }' |
	sort -u >"$tmp/sym"
[ -s "$tmp/sym" ] || { echo "no symbols found in $sym"; exit 99; }

fail=0
while read -r s; do
	if [ ! -f "$top_srcdir/man/man3/$s.3" ]; then
		echo "FAIL: $s is exported but has no man/man3/$s.3"
		fail=1
	fi
done <"$tmp/sym"

# Programs: tools/shf.c and tools/shf-<verb>.c become shf and shf-<verb>.
for src in "$top_srcdir"/tools/shf.c "$top_srcdir"/tools/shf-*.c; do
	[ -e "$src" ] || continue
	# a program has a main(); other files are parts of one
	grep -q '^int main(' "$src" || continue
	prog=$(basename "$src" .c)
	if [ ! -f "$top_srcdir/man/man1/$prog.1" ]; then
		echo "FAIL: program $prog has no man/man1/$prog.1"
		fail=1
	fi
done

# The built library exports what libshf.sym says, no more, no less.
so=$top_builddir/lib/.libs/libshf.so
nm=${NM:-nm}
if [ -e "$so" ] && command -v "${nm%% *}" >/dev/null 2>&1; then
	# Thread-local variables show as 'B' or 'D' (and 'T'/'V'/'W' can
	# appear for code and weak data); "U" (undefined) is filtered by
	# --defined-only, and the version node itself shows as 'A'.
	$nm -D --defined-only "$so" |
		awk '$2 ~ /^[BDGRSTVWuib]$/ { sub(/@.*/, "", $3); print $3 }' |
		sort -u >"$tmp/nm"
	if ! diff -u "$tmp/sym" "$tmp/nm" >"$tmp/diff"; then
		echo "FAIL: exports of $so differ from $sym (- .sym, + nm -D):"
		sed 's/^/    /' "$tmp/diff"
		fail=1
	fi
else
	echo "note: $so not built; export check skipped"
fi
[ $fail -eq 0 ] && echo "$(wc -l <"$tmp/sym") symbols documented"
exit $fail
