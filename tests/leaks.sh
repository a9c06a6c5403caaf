#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# leaks.sh - fail if a test left a table (or a temporary file of one) in
# $SHF_TEST_DIR (default /dev/shm).  Runs after every other test (see
# tests/Makemodule.am).  Test tables are named shf-test-<pid>-<tag>, <pid>
# being the test program's; files of a program that still runs (another
# "make check" at the same time) are not counted.  Leftovers are listed,
# then removed so that the next run starts clean.

dir=${SHF_TEST_DIR:-/dev/shm}
if [ ! -d "$dir" ]; then
	echo "leaks.sh: $dir: no such directory; skipped"
	exit 77
fi

leaks=0
for f in "$dir"/shf-test-* "$dir"/.shf-test-*; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	base=${f##*/}
	pid=${base#.}
	pid=${pid#shf-test-}
	pid=${pid%%-*}
	case $pid in
	'' | *[!0-9]*) ;;
	*)
		if [ -d "/proc/$pid" ]; then
			echo "leaks.sh: $f belongs to running process $pid; ignored"
			continue
		fi
		;;
	esac
	echo "leaks.sh: left behind: $f"
	# a table, or a test's own folder with its tables
	rm -rf -- "$f"
	leaks=$((leaks + 1))
done

if [ "$leaks" -ne 0 ]; then
	echo "leaks.sh: $leaks file(s) left in $dir by the tests"
	exit 1
fi
echo "leaks.sh: nothing left in $dir"
exit 0
