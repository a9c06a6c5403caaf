#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check_log_tool.sh - shf-log(1): a collector (-c) drains the lines that
# writers (-w) copy from their standard input, tags (-t) included, in
# order; a last line without a newline gets one; a line longer than the
# log takes is skipped, and never held whole; -x removes the table at
# the end; usage errors exit 2; a collector that cannot write OUTFILE
# says how many lines it lost and exits 1.  Tables:
# shf-test-<pid>-logtool and shf-test-<pid>-logtool-<what>.
set -u

: "${top_builddir:=.}"
dir=${SHF_TEST_DIR:-/dev/shm}
if [ ! -d "$dir" ] || [ ! -w "$dir" ]; then
	echo "check_log_tool: $dir not writable; skipped"
	exit 77
fi
bin=$top_builddir/tools/shf-log
[ -x "$bin" ] || { echo "check_log_tool: $bin not built"; exit 99; }
name=shf-test-$$-logtool
tmp=$(mktemp -d) || exit 99
cpid=
cleanup() {
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null
	rm -f "$dir/$name.shf" "$dir/$name"-*.shf
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

fails=0
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "FAIL $n - $*"; fails=$((fails + 1)); }

# collect TABLE OUTFILE ERRFILE: a collector (-x) in the background,
# $cpid; returns once a writer's line "first" reached its log (up to 10 s).
collect() {
	"$bin" -d "$dir" -x -c "$1" "$2" 2>"$3" &
	cpid=$!
	i=0
	until printf 'first\n' | "$bin" -d "$dir" -w "$1" 2>"$tmp/err"; do
		i=$((i + 1))
		[ $i -ge 100 ] && return 1
		sleep 0.1
	done
}
# stop: SIGTERM to the collector; its exit status in $rc.
stop() {
	kill -TERM "$cpid"
	wait "$cpid"
	rc=$?
	cpid=
}

"$bin" -d "$dir" -x -c "$name" "$tmp/out" &
cpid=$!
# The first writer waits for the collector's log (up to 10 s).
i=0
until printf 'first\n' | "$bin" -d "$dir" -w "$name" 2>"$tmp/err"; do
	i=$((i + 1))
	[ $i -ge 100 ] && break
	sleep 0.1
done
[ $i -lt 100 ] && ok "a writer reaches the collector" ||
	fail "no log: $(cat "$tmp/err")"
printf 'a\nb' | "$bin" -d "$dir" -w "$name" &&
	ok "a last line without a newline" || fail "writer 2"
printf 'c\n' | "$bin" -d "$dir" -t tagged -w "$name" &&
	ok "a tagged writer" || fail "writer 3"
# The log's lines (1 MiB ring): 262080 bytes at most, newline included.
head -c 262079 /dev/zero | tr '\0' y >"$tmp/max"
echo >>"$tmp/max"
"$bin" -d "$dir" -w "$name" <"$tmp/max" &&
	ok "a line as long as the log takes" || fail "a line of 262080 bytes"
# A longer one (128 MiB) is skipped, with a message and exit 1, and the
# writer's peak memory stays far below it (under 96 MiB, room for a
# sanitizer's own; holding the line takes 128 MiB or more).
mkfifo "$tmp/in" || exit 99
"$bin" -d "$dir" -w "$name" <"$tmp/in" 2>"$tmp/long-err" &
wpid=$!
exec 3>"$tmp/in"
printf 'before\n' >&3
head -c 134217728 /dev/zero >&3
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$wpid/status" 2>/dev/null)
printf '\nafter\n' >&3
exec 3>&-
wait "$wpid"
rc=$?
if [ $rc -eq 1 ] && grep -qx 'shf-log: line 2: longer than the log takes (262080 bytes): skipped' "$tmp/long-err"; then
	ok "a line longer than the log takes is skipped, exit 1"
else
	fail "long line: exit $rc, stderr: $(cat "$tmp/long-err")"
fi
if [ -z "$hwm" ]; then
	echo "# no /proc/$wpid/status: memory not checked"
elif [ "$hwm" -lt 98304 ]; then
	ok "reading a 128 MiB line took $hwm KiB"
else
	fail "reading a 128 MiB line took $hwm KiB"
fi
kill -TERM "$cpid"
wait "$cpid"
rc=$?
cpid=
[ $rc -eq 0 ] && ok "the collector stops on SIGTERM" || fail "collector exit $rc"
printf 'first\na\nb\ntagged c\n' >"$tmp/want"
cat "$tmp/max" >>"$tmp/want"
printf 'before\nafter\n' >>"$tmp/want"
if cmp -s "$tmp/want" "$tmp/out"; then
	ok "every line, in order, each ending in a newline"
else
	fail "log file differs:"
	od -c "$tmp/out" | sed 's/^/	/'
fi
[ ! -e "$dir/$name.shf" ] && ok "-x removed the table" || fail "table left"
"$bin" -w >/dev/null 2>&1
[ $? -eq 2 ] && ok "usage error: exit 2" || fail "usage error"

# OUTFILE cannot be written: the lines are counted, said, exit 1.
if [ -c /dev/full ] && [ -w /dev/full ]; then
	if collect "$name-full" /dev/full "$tmp/full-err"; then
		printf 'two\nthree\n' | "$bin" -d "$dir" -w "$name-full"
		stop
		if [ $rc -eq 1 ] && grep -qx 'shf-log: /dev/full: 3 lines lost: No space left on device' "$tmp/full-err"; then
			ok "a collector that cannot write OUTFILE says so, exit 1"
		else
			fail "collector on /dev/full: exit $rc, stderr: $(cat "$tmp/full-err")"
		fi
	else
		fail "no log: $(cat "$tmp/err")"
	fi
else
	echo "# no /dev/full: write errors not checked"
fi

echo "check_log_tool: $n checks, $fails failed"
[ "$fails" -eq 0 ]
