#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check_bench.sh - smoke test of shf-bench(1): a tiny run (2 processes,
# 20000 keys) exits 0, prints every summary line, reports no errors and
# leaves no file behind; the same with --json, and with --vs lmdb when the
# tool was built with LMDB; the QUEUE phase alone (20000 items), as text
# and as JSON; the CACHE phase alone (a second), and as JSON with a TTL.
# Skipped (77) if the tool is not built.

builddir=${abs_top_builddir:-${top_builddir:-.}}
bench=$builddir/tools/shf-bench${EXEEXT:-}
if [ ! -x "$bench" ]; then
	echo "check_bench.sh: $bench not built; skipped"
	exit 77
fi

base=${SHF_TEST_DIR:-/dev/shm}
if [ ! -d "$base" ]; then
	echo "check_bench.sh: $base: no such directory; skipped"
	exit 77
fi
# A directory of our own, so that leftovers are easy to see.
dir=$base/shf-test-$$-bench
out=shf-test-$$-bench.out
trap 'rm -rf "$dir" "$out"' EXIT
mkdir "$dir" || exit 99

fail=0
bad() {
	echo "check_bench.sh: FAIL: $*"
	fail=1
}

leftovers() {
	if [ -n "$(ls -A "$dir")" ]; then
		bad "files left behind: $(ls -A "$dir" | tr '\n' ' ')"
		rm -f "$dir"/* "$dir"/.[!.]* 2>/dev/null
	fi
}

# Text summary.
"$bench" -p 2 -n 20000 -d "$dir" >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "exit status $rc"
for ph in PUT GET MIX UPD BATCH; do
	grep -q "^libshf  $ph  *20000 " "$out" || bad "no $ph summary line"
done
grep -q '^-OP ' "$out" || bad "no live header"
grep -q '^PUT  ' "$out" || bad "no live PUT line"
grep -q '^libshf  longest put: ' "$out" || bad "no longest put line"
grep -q "^libshf  $dir per key: " "$out" || bad "no bytes per key line"
grep -q '^libshf  errors: 0$' "$out" || bad "errors reported"
leftovers

# JSON summary on stdout, live lines on stderr; --fixed.
"$bench" -p 2 -n 20000 -d "$dir" --fixed --phases put,get,batch --json \
	>"$out" 2>/dev/null
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "--json: exit status $rc"
grep -q '^{"tool":"shf-bench",.*"phase":"batch".*}$' "$out" ||
	bad "--json: no summary object"
leftovers

# Beside LMDB, if the tool has it (exit status 2: built without LMDB).
"$bench" -p 2 -n 20000 -d "$dir" --vs lmdb --phases put,get,mix >"$out" 2>&1
rc=$?
cat "$out"
if [ $rc -eq 2 ] && grep -q 'built without LMDB' "$out"; then
	echo "check_bench.sh: no LMDB; --vs lmdb not checked"
else
	[ $rc -eq 0 ] || bad "--vs lmdb: exit status $rc"
	grep -q '^LMDB    MIX  *20000 ' "$out" || bad "--vs lmdb: no LMDB line"
	grep -q '^ratio   PUT ' "$out" || bad "--vs lmdb: no ratio line"
fi
leftovers

# The QUEUE phase alone: every peer's line, the ratios, no errors.
"$bench" -d "$dir" --phases queue --q-items 20000 --q-size 100 >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "queue: exit status $rc"
grep -q '^queue: 20000 items of 100 bytes ' "$out" || bad "queue: no summary"
for peer in 'libshf nolock 1000' 'libshf nolock 1' pipe socketpair \
	'eventfd ring'; do
	grep -q "^queue   $peer  *20000  *[0-9.]*  *[0-9.]*M  *0\$" "$out" ||
		bad "queue: no $peer line"
done
for peer in pipe socketpair 'eventfd ring'; do
	grep -q "^ratio   $peer  *[0-9.]*x  *[0-9.]*x\$" "$out" ||
		bad "queue: no $peer ratio line"
done
grep -q '^queue   errors: 0$' "$out" || bad "queue: errors reported"
leftovers

# The same as JSON, after put and get.
"$bench" -p 2 -n 20000 -d "$dir" --phases put,get,queue --q-items 20000 \
	--json >"$out" 2>/dev/null
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "queue --json: exit status $rc"
grep -q '^{"tool":"shf-bench",.*"phase":"get".*"queue":{"items":20000,.*"peer":"eventfd_ring".*"ratio_nolock_1":{.*}}}$' "$out" ||
	bad "queue --json: no queue object"
grep -q '"queue":{[^}]*"errors":0,' "$out" || bad "queue --json: errors"
leftovers

# The PINGPONG phase alone, small: every run's line, no errors; and as
# JSON.
"$bench" -d "$dir" --phases pingpong --pp-moves 40000 --pp-items 5000 \
	>"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "pingpong: exit status $rc"
grep -q '^pingpong: 5000 items of 64 bytes going round between two processes, 40000 moves a side;$' "$out" ||
	bad "pingpong: no summary"
for run in 'libshf queues  *80000 ' 'pipe  *80000 ' 'eventfd ring  *80000 ' \
	'bare rings  *80000 ' 'libshf 1 -> 4  *40000 ' 'libshf 4 -> 1  *40000 '; do
	grep -q "^pingpong $run *[0-9.]*  *[0-9.]*M  *[0-9]* " "$out" ||
		bad "pingpong: no '$run' line"
done
grep -q '^ratio    libshf/pipe  *[0-9.]*x$' "$out" || bad "pingpong: no ratio"
grep -q '^ratio    libshf/bare rings  *[0-9.]*x$' "$out" ||
	bad "pingpong: no ratio to the bare rings"
grep -q '^host: .*, [0-9]* CPUs, L3 \(unknown\|.* MiB (\(sysfs\|cpuid\))\)$' "$out" ||
	bad "pingpong: no host line"
grep -q '^pingpong errors: 0$' "$out" || bad "pingpong: errors reported"
leftovers
"$bench" -d "$dir" --phases pingpong --pp-moves 40000 --pp-items 5000 \
	--json >"$out" 2>/dev/null
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "pingpong --json: exit status $rc"
grep -q '"pingpong":{"moves_per_side":40000,"q_items":5000,.*"errors":0,"runs":\[{"run":"libshf","items":80000,.*{"run":"bare_rings","items":80000,.*{"run":"libshf_fan_in","items":40000,.*"ratio":{"pipe":[0-9.]*,"eventfd_ring":[0-9.]*,"bare_rings":[0-9.]*}}' "$out" ||
	bad "pingpong --json: no pingpong object"
grep -q '"host":{"cpu":"[^"]*","cpus":[0-9]*,"l3_bytes":[0-9]*,"l3_from":"\(sysfs\|cpuid\|none\)"}' "$out" ||
	bad "--json: no host object"
leftovers

# The CACHE phase alone, for a second: 2 processes get-or-lease Zipf keys
# of 20000 in a table with the default byte budget (a fifth of them).
"$bench" -p 2 -n 20000 -d "$dir" --phases cache --cache-secs 1 >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "cache: exit status $rc"
grep -q '^cache: 2 processes, 20000 keys, .*zipf 0.99, budget 112000 bytes' \
	"$out" || bad "cache: no summary"
grep -q '^CACHE .* hit  *[0-9.]*%$' "$out" || bad "cache: no live line"
grep -q '^libshf  CACHE  *[1-9][0-9]* ' "$out" || bad "cache: no CACHE line"
ratio=$(sed -n 's/^cache   hits: [0-9]*  misses: [0-9]*  timeouts: [0-9]*  hit ratio: \([0-9.]*\)$/\1/p' "$out")
if [ -z "$ratio" ]; then
	bad "cache: no hit ratio"
elif ! awk -v r="$ratio" 'BEGIN { exit !(r > 0 && r < 1) }'; then
	bad "cache: hit ratio $ratio not between 0 and 1"
fi
grep -q '^cache   table: keys [1-9][0-9]*, bytes_cached [1-9][0-9]* of budget 112000 (within budget), evictions [1-9][0-9]*, expirations [0-9]*, leases [1-9][0-9]*, lease_waits [0-9]*$' \
	"$out" || bad "cache: no table line, or over the budget"
grep -q '^cache   errors: 0$' "$out" || bad "cache: errors reported"
leftovers

# As JSON, after put, with a TTL that expires keys, fixed-length.
"$bench" -p 2 -n 20000 -d "$dir" --phases put,cache --cache-ops 100000 \
	--cache-ttl 20 --cache-budget 200000 --zipf 0.8 --fixed --json \
	>"$out" 2>/dev/null
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "cache --json: exit status $rc"
grep -q '^{"tool":"shf-bench",.*"phase":"put".*"cache":{"zipf":0.8000,"byte_budget":200000,"ttl_ms":20,.*"ops":100000,.*"hit_ratio":0\.[0-9]*,"errors":0,"table":{.*"within_budget":true,.*"expirations":[0-9]*,.*}}}$' \
	"$out" || bad "cache --json: no cache object"
leftovers

# Bad usage is exit status 2.
"$bench" -p 0 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "-p 0: exit status $rc, not 2"
"$bench" --phases get,queue >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "--phases get,queue: exit status $rc, not 2"
"$bench" --phases queue --q-size 7 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "--q-size 7: exit status $rc, not 2"
"$bench" --phases cache --zipf 1 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "--zipf 1: exit status $rc, not 2"
"$bench" --phases cache,cache >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "--phases cache,cache: exit status $rc, not 2"

exit $fail
