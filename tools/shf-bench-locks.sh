#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# shf-bench-locks.sh [MOVES] - locked (atomic) instructions an item of the
# libshf ping-pong of shf-bench's PINGPONG phase, both processes together,
# as valgrind's callgrind counts them (--collect-bus: its "Ge" event).
# A count of the program's instructions, not of a CPU's counters: it works
# in virtual machines, which lend none.  Run by "make bench-queue" with
# $SHF_BENCH (the program, not libtool's wrapper) and $LIBTOOL_EXEC (how to
# run it with the uninstalled library).
set -eu
moves=${1:-200000}
bench=${SHF_BENCH:-tools/shf-bench}
command -v valgrind >/dev/null || { echo "shf-bench-locks: no valgrind"; exit 77; }
command -v callgrind_annotate >/dev/null || { echo "shf-bench-locks: no callgrind_annotate"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
${LIBTOOL_EXEC:-} valgrind --tool=callgrind --collect-bus=yes \
	--callgrind-out-file="$tmp/cg.%p" "$bench" --phases pingpong \
	--pp-runs libshf --pp-moves "$moves" >"$tmp/out" 2>&1 || {
	cat "$tmp/out"
	exit 1
}
# The ping-pong's two sides: the profiles that ran pp_shf_side().
sides=0 ge=0 ir=0
for f in "$tmp"/cg.*; do
	callgrind_annotate "$f" >"$tmp/a" 2>/dev/null || continue
	grep -q 'pp_shf_side' "$tmp/a" || continue
	set -- $(sed -n 's/^ *\([0-9,]*\) ([^)]*) *\([0-9,]*\) ([^)]*) *PROGRAM TOTALS/\1 \2/p' "$tmp/a" | tr -d ,)
	[ $# -eq 2 ] || continue
	ir=$((ir + $1)) ge=$((ge + $2)) sides=$((sides + 1))
done
[ "$sides" -eq 2 ] || { echo "shf-bench-locks: found $sides sides, not 2"; exit 1; }
items=$((2 * moves))
awk -v ge="$ge" -v ir="$ir" -v n="$items" 'BEGIN {
	printf "libshf ping-pong, %d items moved (callgrind, both sides):\n", n
	printf "  locked instructions an item: %.4f (%d in all)\n", ge / n, ge
	printf "  instructions an item, polls of an empty queue included: %.1f\n", ir / n
}'
