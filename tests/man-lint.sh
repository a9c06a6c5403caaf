#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Render every man page with man-db and groff warnings on; any warning (bad
# macro, unknown escape, line that cannot be broken, ...) fails the test.
# A ".so" stub is checked for a target that exists; the target itself is
# rendered on its own.  Exit 77 (skip) where man-db or groff is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$here/..}"
# Absolute, since the checks change directory.
top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
mandir=$top_srcdir/man

command -v man >/dev/null 2>&1 || { echo "man(1) not installed"; exit 77; }
command -v groff >/dev/null 2>&1 || { echo "groff not installed"; exit 77; }
# man-db's man has --warnings; mandoc's has not.
man --help 2>&1 | grep -q -- '--warnings' || { echo "man is not man-db"; exit 77; }

fail=0 n=0
for page in "$mandir"/man[1-8]/*.[1-8]; do
	[ -e "$page" ] || continue
	rel=${page#"$mandir"/}
	first=$(head -n 1 "$page")
	case $first in
	.so\ *)
		target=${first#.so }
		if [ "$(wc -l <"$page")" -ne 1 ]; then
			echo "FAIL: $rel: a .so stub must be one line"
			fail=1
		elif [ ! -f "$mandir/$target" ]; then
			echo "FAIL: $rel: .so target $target does not exist"
			fail=1
		fi
		continue
		;;
	esac
	n=$((n + 1))
	out=$(cd "$mandir" && LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
		man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
	if [ -n "$out" ]; then
		echo "FAIL: $rel"
		printf '%s\n' "$out" | sed 's/^/    /'
		fail=1
	fi
done
echo "$n pages rendered"
exit $fail
