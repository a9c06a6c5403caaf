#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check_log_tool.sh - shf-log(1): a collector (-c) drains the lines that
# writers (-w) copy from their standard input, tags (-t) included, in
# order; a last line without a newline gets one; a line longer than the
# log takes is skipped, and never held whole; -x removes the table at
# the end; usage errors exit 2; a collector that cannot write OUTFILE
# says how many lines it lost and exits 1; a writer says a run of lines
# it cannot append once, with a count, and stops when the log is gone;
# a SIGTERM just before the collector waits is not lost, and one while
# it waits to open a FIFO that nobody reads stops it.  Tables:
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
# Neither holds fd 3, a writer's input below.
# wait_until CMD...: CMD every 0.1 s until it succeeds, for up to 10 s;
# 1 if it never did.
wait_until() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -ge 100 ] && return 1
		sleep 0.1
	done
}
# first_line NAME: a writer's line "first" into NAME's log.
first_line() {
	printf 'first\n' | "$bin" -d "$dir" -w "$1" 2>"$tmp/err" 3>&-
}
collect() {
	"$bin" -d "$dir" -x -c "$1" "$2" 2>"$3" 3>&- &
	cpid=$!
	wait_until first_line "$1"
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
wait_until first_line "$name" && ok "a writer reaches the collector" ||
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

# lines: the number of lines of a file.
lines() { wc -l <"$1" | tr -d ' '; }

# The drain dies (SIGKILL): a writer says so once, counts the lines it
# cannot append, and says so again when a new drain takes them; that
# drain's note counts the same lines.
mkfifo "$tmp/run-in" || exit 99
if collect "$name-run" "$tmp/run-out1" /dev/null; then
	"$bin" -d "$dir" -w "$name-run" <"$tmp/run-in" 2>"$tmp/run-err" &
	wpid=$!
	exec 3>"$tmp/run-in"
	kill -KILL "$cpid"
	wait "$cpid"
	cpid=
	# 100000 lines of 16 bytes a record: more than the 1 MiB ring
	seq 1 100000 >&3
	wait_until [ -s "$tmp/run-err" ]
	# a new drain, that appends nothing (the drop count would be off):
	# it is there once its note of the dropped lines is
	"$bin" -d "$dir" -x -c "$name-run" "$tmp/run-out2" 2>/dev/null 3>&- &
	cpid=$!
	wait_until grep -q 'lines dropped' "$tmp/run-out2" 2>/dev/null
	echo back >&3
	exec 3>&-
	wait "$wpid"
	wrc=$?
	stop
	dropped=$(sed -n 's/^shf-log: \([0-9]*\) lines dropped while no thread drained the log$/\1/p' "$tmp/run-out2")
	if [ $wrc -eq 1 ] && [ "$(lines "$tmp/run-err")" -eq 2 ] &&
		grep -qx 'shf-log: line [0-9]*: append: Broken pipe (no process drains the log; lines are dropped until one does)' "$tmp/run-err" &&
		grep -qx "shf-log: line [0-9]*: appending again; $dropped lines not appended since line [0-9]* (Broken pipe)" "$tmp/run-err" &&
		grep -qx back "$tmp/run-out2"; then
		ok "a run of $dropped dropped lines is said twice, exit 1"
	else
		fail "dropped lines: exit $wrc, $(lines "$tmp/run-err") lines on stderr ($dropped dropped):"
		head -5 "$tmp/run-err" | sed 's/^/	/'
	fi
else
	fail "no log: $(cat "$tmp/err")"
fi

# The drain stopped and removed the table (-x): the log is gone for good,
# and a writer stops at the first line it cannot append.
mkfifo "$tmp/gone-in" || exit 99
if collect "$name-gone" "$tmp/gone-out" /dev/null; then
	"$bin" -d "$dir" -w "$name-gone" <"$tmp/gone-in" 2>"$tmp/gone-err" &
	wpid=$!
	exec 3>"$tmp/gone-in"
	# the writer is there once its line is
	echo one >&3
	wait_until grep -qx one "$tmp/gone-out"
	stop
	# seq gets EPIPE (or SIGPIPE) once the writer stops
	seq 1 300000 >&3 2>/dev/null
	exec 3>&-
	wait "$wpid"
	rc=$?
	if [ $rc -eq 1 ] && [ "$(lines "$tmp/gone-err")" -eq 1 ] &&
		grep -qx "shf-log: line [0-9]*: $dir/$name-gone was removed and nothing drains its log: stopped" "$tmp/gone-err"; then
		ok "a writer stops when the log is gone for good, exit 1"
	else
		fail "log gone: exit $rc, $(lines "$tmp/gone-err") lines on stderr:"
		head -3 "$tmp/gone-err" | sed 's/^/	/'
	fi
else
	fail "no log: $(cat "$tmp/err")"
fi

# A SIGTERM that comes between the collector's look at its flag and its
# wait is not lost.  A shim (LD_PRELOAD) makes the collector sleep 2 s
# before its first wait (pause() or sigsuspend()), saying so in a file;
# the signal comes in that sleep.  A watchdog kills it after 8 s.
cat >"$tmp/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void before_wait(void)
{
	static int done;
	const char *mark = getenv("SHF_TEST_SHIM_MARK");
	struct timespec ts = { 2, 0 };

	if (done++ || !mark)
		return;
	close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	while (nanosleep(&ts, &ts) < 0)
		;
}

int pause(void)
{
	before_wait();
	return ((int (*)(void))dlsym(RTLD_NEXT, "pause"))();
}

int sigsuspend(const sigset_t *mask)
{
	before_wait();
	return ((int (*)(const sigset_t *))dlsym(RTLD_NEXT, "sigsuspend"))(mask);
}
EOF
if ${CC:-cc} -shared -fPIC -o "$tmp/shim.so" "$tmp/shim.c" -ldl \
	>"$tmp/shim.log" 2>&1; then
	SHF_TEST_SHIM_MARK=$tmp/waiting LD_PRELOAD=$tmp/shim.so \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		"$bin" -d "$dir" -x -c "$name-sig" "$tmp/sig-out" 3>&- &
	cpid=$!
	wait_until [ -e "$tmp/waiting" ]
	(sleep 8; kill -KILL "$cpid") >/dev/null 2>&1 3>&- &
	wd=$!
	kill -TERM "$cpid"
	wait "$cpid"
	rc=$?
	cpid=
	kill "$wd" 2>/dev/null
	if [ $rc -eq 0 ] && [ ! -e "$dir/$name-sig.shf" ]; then
		ok "a SIGTERM before the collector's wait stops it"
	else
		fail "SIGTERM before the wait: exit $rc (137: lost, killed after 8 s)"
	fi
else
	echo "# no shim ($(head -1 "$tmp/shim.log")): signal race not checked"
fi

# OUTFILE is a FIFO that nobody reads: open() waits for a reader, and a
# SIGTERM there stops the collector, exit 0, without a table.  It is
# signalled once it waits in open() (its wchan says so; else after 1 s);
# a watchdog kills it after 3 s.
mkfifo "$tmp/fifo-out" || exit 99
"$bin" -d "$dir" -x -c "$name-fifo" "$tmp/fifo-out" 2>"$tmp/fifo-err" 3>&- &
cpid=$!
wait_until grep -qE 'wait_for_partner|fifo_open' "/proc/$cpid/wchan" \
	2>/dev/null || sleep 1
(sleep 3; kill -KILL "$cpid") >/dev/null 2>&1 3>&- &
wd=$!
kill -TERM "$cpid"
wait "$cpid"
rc=$?
cpid=
kill "$wd" 2>/dev/null
if [ $rc -eq 0 ] && [ ! -s "$tmp/fifo-err" ] &&
	[ ! -e "$dir/$name-fifo.shf" ]; then
	ok "a SIGTERM while the collector opens a FIFO nobody reads stops it"
else
	fail "SIGTERM in open() of a FIFO: exit $rc (137: ignored, killed after 3 s), stderr: $(cat "$tmp/fifo-err")"
fi
rm -f "$tmp/fifo-out"

echo "check_log_tool: $n checks, $fails failed"
[ "$fails" -eq 0 ]
