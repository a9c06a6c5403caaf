#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cli-bench.sh - "shf bench" finds and runs shf-bench (skipped if it is
# not built), passing on its arguments and shf's -d.
set -u

: "${top_builddir:=.}"
dir=${SHF_TEST_DIR:-/dev/shm}
shf_bin=$top_builddir/tools/shf
if [ ! -x "$top_builddir/tools/shf-bench" ]; then
	echo "cli-bench: tools/shf-bench not built; skipped"
	exit 77
fi
[ -d "$dir" ] && [ -w "$dir" ] || { echo "cli-bench: $dir not writable; skipped"; exit 77; }
[ -x "$shf_bin" ] || { echo "cli-bench: $shf_bin not built"; exit 99; }

sub=$(mktemp -d "$dir/shf-test-$$-bench.XXXXXX") || exit 99
trap 'rm -rf "$sub"' EXIT

"$shf_bin" bench --help >"$sub/out" 2>&1 || { cat "$sub/out"; echo "FAIL: shf bench --help"; exit 1; }
grep -q shf-bench "$sub/out" || { cat "$sub/out"; echo "FAIL: not shf-bench's help"; exit 1; }
echo "ok - shf bench --help runs shf-bench"

"$shf_bin" -d "$sub" bench -p 1 -n 2000 --phases put,get >"$sub/out" 2>&1
rc=$?
cat "$sub/out"
[ "$rc" -eq 0 ] || { echo "FAIL: shf -d DIR bench -p 1 -n 2000: exit $rc"; exit 1; }
echo "ok - a small run in $sub"
rm -f "$sub/out"
if [ -n "$(ls -A "$sub")" ]; then
	ls -la "$sub"
	echo "FAIL: shf-bench left files"
	exit 1
fi
exit 0
