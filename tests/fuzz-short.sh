#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fuzz-short.sh - a short run of each libFuzzer target (SHF_FUZZ_SHORT
# seconds each, default 4) on a copy of its corpus from the tree; only in a
# ./configure CC=clang --enable-fuzz build, skipped (77) otherwise.  The
# corpora replay in every build through tests/fuzz/replay-* (fault.am).

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
secs=${SHF_FUZZ_SHORT:-4}
ran=0
for t in attach ops load; do
	prog=$top_builddir/tests/fuzz/fuzz_$t${EXEEXT}
	[ -x "$prog" ] || continue
	work=$(mktemp -d) || exit 99
	echo "fuzz_$t: $secs s"
	if ! nice "$prog" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/" "$work" \
		"$top_srcdir/tests/fuzz/corpus-$t" 2>"$work/log"; then
		tail -60 "$work/log"
		ls "$work"
		echo "fuzz_$t found a crash (see above)"
		exit 1
	fi
	grep -E '^(stat::number_of_executed_units|#[0-9]+ *DONE)' "$work/log"
	rm -rf "$work"
	ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
	echo "fuzz-short.sh: no libFuzzer build (./configure CC=clang --enable-fuzz); skipped"
	exit 77
fi
