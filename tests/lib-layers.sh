#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# lib-layers.sh - lib/ is layered: each file of libshf calls only files
# listed before it in lib_libshf_la_SOURCES (Makefile.am, lib/ipc.am;
# HACKING draws the map), so nothing in lib/ is a circle.  Read from the
# built objects: a symbol a file needs (nm -u) that a later file defines
# is a call up.  crash.c (test hooks) is apart: every layer may name its
# crash points.
# SHF_LIB_SOURCES: the list, in its order, as make gives it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/shf-test.sh"
nm=${NM:-nm}
objs=$top_builddir/lib/.libs

[ -n "${SHF_LIB_SOURCES:-}" ] ||
	{ echo "lib-layers: SHF_LIB_SOURCES is not set"; exit 99; }
# NM may carry options ("nm -B")
command -v "${nm%% *}" >/dev/null 2>&1 ||
	{ echo "lib-layers: no $nm; skipped"; exit 77; }
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

# file rank: the order of the .c files
i=0
for src in $SHF_LIB_SOURCES; do
	case $src in *.c) ;; *) continue ;; esac
	f=$(basename "$src" .c)
	o=$objs/libshf_la-$f.o
	# a static-only build (--disable-shared) leaves them beside the .lo
	[ -f "$o" ] || o=$top_builddir/lib/libshf_la-$f.o
	[ -f "$o" ] || { echo "lib-layers: no $o (build the library first)"; exit 99; }
	echo "$i $f $o" >> "$tmp/files"
	$nm --defined-only -g "$o" | awk -v i="$i" -v f="$f" \
		'NF == 3 { print $3, i, f }' >> "$tmp/defs"
	i=$((i + 1))
done
[ "$i" -gt 10 ] || { echo "lib-layers: only $i files listed"; exit 99; }
# objects nm cannot read (LTO without its plugin) show no symbols
[ -s "$tmp/defs" ] || { echo "lib-layers: $nm sees no symbols; skipped"; exit 77; }

fail=0
checked=0
while read -r rank f o; do
	[ "$f" = crash ] && continue
	$nm -u "$o" | awk '{ print $NF }' > "$tmp/undef"
	checked=$((checked + 1))
	# the definers of what f needs, and their rank
	awk 'NR == FNR { need[$1] = 1; next } ($1 in need) { print }' \
		"$tmp/undef" "$tmp/defs" > "$tmp/uses"
	while read -r sym r g; do
		[ "$g" = crash ] && continue
		if [ "$r" -ge "$rank" ]; then
			echo "FAIL: $f.c calls $sym of $g.c, listed after it"
			fail=1
		fi
	done < "$tmp/uses"
done < "$tmp/files"
if [ $fail = 0 ]; then
	echo "lib-layers: $checked files, each calling only those before it"
else
	echo "lib-layers: $checked files, some calling up"
fi
exit $fail
