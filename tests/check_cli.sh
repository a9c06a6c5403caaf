#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check_cli.sh - every command of shf(1): put/get/del (text, --hex, -f),
# ls, stat (text, --json, --prometheus), the cache commands (put --ttl,
# ttl, set, expire, and their stat fields), dump of a table being written,
# load and its checksum, check of a sound and of a damaged table, rm, gc,
# demo, exit statuses and error lines.  Tables: shf-test-<pid>-cli-*.
set -u

: "${top_builddir:=.}"
dir=${SHF_TEST_DIR:-/dev/shm}
if [ ! -d "$dir" ] || [ ! -w "$dir" ]; then
	echo "check_cli: $dir not writable; skipped"
	exit 77
fi
shf_bin=$top_builddir/tools/shf
helper=$top_builddir/tests/cli-helper
for p in "$shf_bin" "$helper"; do
	[ -x "$p" ] || { echo "check_cli: $p not built"; exit 99; }
done
# In a build tree tools/shf is libtool's wrapper script, which runs sed and
# ls before the program on every call (over 100 ms each on a loaded
# machine, against the TTL windows below): run the program itself, with
# the uninstalled library.
if [ -x "$top_builddir/tools/.libs/shf" ] &&
	head -c 2 "$shf_bin" | grep -q '#!'; then
	shf_bin=$top_builddir/tools/.libs/shf
	LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi

p=shf-test-$$-cli
tmp=$(mktemp -d) || exit 99
churn_pid=
cleanup() {
	[ -n "$churn_pid" ] && kill "$churn_pid" 2>/dev/null
	umount "$tmp/hp" 2>/dev/null
	rm -f "$dir/$p"-*.shf "$dir/.$p"-*
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

fails=0
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "FAIL $n - $*"; fails=$((fails + 1)); }
# expect STATUS DESCRIPTION -- COMMAND...: run it, compare its exit status.
expect() {
	want=$1 what=$2
	shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok "$what"
	else
		fail "$what: exit $got, wanted $want"
		sed 's/^/	stdout: /' "$tmp/out"
		sed 's/^/	stderr: /' "$tmp/err"
	fi
}
shf() { "$shf_bin" -d "$dir" "$@"; }
has() { grep -q -- "$1" "$2" || { echo "	no '$1' in $2:"; sed 's/^/	/' "$2"; return 1; }; }
t=$p-kv

# ---- put, get, del
expect 0 "put creates the table" -- shf put $t hello world
[ -f "$dir/$t.shf" ] && ok "table file exists" || fail "no $dir/$t.shf"
expect 0 "get" -- shf get $t hello
[ "$(cat "$tmp/out")" = world ] && ok "get prints the value" ||
	fail "get printed '$(cat "$tmp/out")'"
# not a terminal: the exact bytes, no newline
[ "$(wc -c <"$tmp/out" | tr -d ' ')" = 5 ] && ok "get adds no newline in a pipe" ||
	fail "get wrote $(wc -c <"$tmp/out") bytes"
expect 0 "put replaces" -- shf put $t hello again
expect 0 "get the new value" -- shf get $t hello
[ "$(cat "$tmp/out")" = again ] && ok "value replaced" || fail "value not replaced"
expect 1 "get of an absent key" -- shf get $t nokey
has "key 'nokey' not found" "$tmp/err" && ok "absent key: one clear line" ||
	fail "absent key message"
[ ! -s "$tmp/out" ] && ok "absent key: nothing on stdout" ||
	fail "absent key printed '$(cat "$tmp/out")'"
[ "$(wc -l <"$tmp/err" | tr -d ' ')" = 1 ] && ok "error is one line" || fail "error not one line"
expect 1 "get from an absent table" -- shf get $p-none k
has "shf: get: table '$p-none' not found in $dir" "$tmp/err" &&
	ok "absent table message" || fail "absent table message"
[ ! -e "$dir/$p-none.shf" ] && ok "get creates no table" || fail "get created a table"
expect 0 "put --hex" -- shf put --hex $t 00ff10 deadbeef00
expect 0 "get --hex" -- shf get --hex $t 00ff10
[ "$(cat "$tmp/out")" = deadbeef00 ] && ok "hex round trip" || fail "hex: '$(cat "$tmp/out")'"
expect 2 "bad hex is a usage error" -- shf put --hex $t 0g 00
expect 2 "odd hex is a usage error" -- shf put --hex $t 012 00
printf 'line 1\nbinary \001\002\000\377 end' >"$tmp/val"
expect 0 "put -f FILE" -- shf put $t filekey -f "$tmp/val"
shf get $t filekey >"$tmp/got" 2>"$tmp/err"
cmp -s "$tmp/val" "$tmp/got" && ok "-f value comes back byte for byte" ||
	fail "-f value differs"
# on a terminal (script(1) gives one), nothing that reaches it as a command
if script -qec true /dev/null >/dev/null 2>&1; then
	printf 'title\033]0;owned\007\rline 2\tend\000\303\251' >"$tmp/esc"
	shf put $t esckey -f "$tmp/esc" >/dev/null 2>&1
	SHF_BIN=$shf_bin SHF_DIR=$dir script -qec \
		'"$SHF_BIN" -d "$SHF_DIR" get '"$t"' esckey' /dev/null \
		>"$tmp/tty" 2>&1
	# the terminal turns the newline into \r\n: take the \r away
	tr -d '\r' <"$tmp/tty" >"$tmp/tty2"
	printf 'title\\e]0;owned\\x07\\rline 2\tend\\x00\303\251\n' >"$tmp/want"
	cmp -s "$tmp/want" "$tmp/tty2" &&
		ok "get escapes control bytes on a terminal" ||
		fail "get on a terminal: '$(od -c "$tmp/tty2" | head -3)'"
	shf get $t esckey >"$tmp/got" 2>/dev/null
	cmp -s "$tmp/esc" "$tmp/got" &&
		ok "get gives the exact bytes to a pipe" ||
		fail "get in a pipe changed the bytes"
	shf del $t esckey >/dev/null 2>&1
else
	echo "no script(1) of util-linux: terminal output not checked"
fi
printf 'from stdin' | shf put $t stdinkey -f - >/dev/null 2>&1
[ "$(shf get $t stdinkey)" = "from stdin" ] && ok "put -f - reads stdin" ||
	fail "put -f -"
expect 0 "del" -- shf del $t hello
expect 1 "del again: absent" -- shf del $t hello
expect 1 "get after del" -- shf get $t hello
expect 0 "del --hex" -- shf del --hex $t 00ff10

# ---- usage errors
expect 2 "no command" -- shf
expect 2 "unknown command" -- shf frobnicate
expect 2 "get without a key" -- shf get $t
expect 2 "bad option" -- shf stat --bogus $t
expect 0 "--help" -- shf --help
expect 0 "--version" -- shf --version
expect 2 "missing directory" -- "$shf_bin" -d "$dir/$p-nodir" ls

# ---- ls, stat
expect 0 "ls" -- shf ls
has "^$t .* persistent" "$tmp/out" && ok "ls lists the table" || fail "ls"
expect 0 "ls NAME.shf form accepted by get" -- shf get $t.shf stdinkey
expect 0 "stat" -- shf stat $t
has "^keys  *2$" "$tmp/out" && ok "stat: keys 2" || fail "stat keys"
has "^bytes_file  *[1-9]" "$tmp/out" && ok "stat: bytes_file" || fail "stat bytes_file"
expect 0 "stat --json" -- shf stat --json $t
# One object on one line with the fields as numbers.
if head -c 1 "$tmp/out" | grep -q '{' && tail -c 2 "$tmp/out" | grep -q '}' &&
	[ "$(wc -l <"$tmp/out" | tr -d ' ')" = 1 ] &&
	has "\"table\": \"$t\"" "$tmp/out" && has '"keys": 2,' "$tmp/out" &&
	has '"puts": [0-9]' "$tmp/out" && has '"layout": [1-9]' "$tmp/out"; then
	ok "stat --json"
else
	fail "stat --json"
fi
expect 0 "stat --prometheus" -- shf stat --prometheus $t
if has "^libshf_keys{table=\"$t\"} 2$" "$tmp/out" &&
	has '^# TYPE libshf_keys gauge$' "$tmp/out" &&
	has "^libshf_puts_total{table=\"$t\"} [0-9]" "$tmp/out" &&
	! grep -v '^#' "$tmp/out" | grep -qv '^libshf_[a-z_]*{table="[^"]*"} [0-9][0-9]*$'; then
	ok "stat --prometheus"
else
	fail "stat --prometheus"
fi
expect 1 "stat of an absent table" -- shf stat $p-none

# ---- stat: 2 MiB pages
expect 0 "stat (pages)" -- shf stat $t
has "^bytes_huge  *[0-9][0-9]*$" "$tmp/out" &&
	has "^huge_pages  *[0-9][0-9]*% of the file (.*)$" "$tmp/out" &&
	ok "stat: bytes_huge and huge_pages" || fail "stat huge pages"
# On a tmpfs mounted huge=within_size the whole file sits in 2 MiB pages:
# needs root (not fakeroot), Linux 6.12 or later (earlier kernels give
# the space fallocate() adds past a file's end small pages), huge pages on
# tmpfs (shmem_enabled neither deny nor force), and free 2 MiB blocks of
# memory (thp_file_fallback in /proc/vmstat counts the times there were
# none); otherwise this part says why it is not checked.
hp=$tmp/hp
se=/sys/kernel/mm/transparent_hugepage/shmem_enabled
kmaj=$(uname -r | sed 's/^\([0-9]*\).*/\1/')
kmin=$(uname -r | sed 's/^[0-9]*\.\([0-9]*\).*/\1/')
fallbacks() { sed -n 's/^thp_file_fallback //p' /proc/vmstat 2>/dev/null; }
if [ ! -r $se ] || grep -q '\[deny\]\|\[force\]' $se; then
	echo "# no huge=within_size tmpfs pages here ($se): not checked"
elif [ "${kmaj:-0}" -lt 6 ] || { [ "$kmaj" -eq 6 ] && [ "${kmin:-0}" -lt 12 ]; }; then
	echo "# Linux $(uname -r) before 6.12: 2 MiB pages not checked"
elif mkdir "$hp" && mount -t tmpfs -o huge=within_size,size=64m tmpfs "$hp" \
	2>/dev/null; then
	fb=$(fallbacks)
	expect 0 "put on a huge=within_size tmpfs" -- shf -d "$hp" put $p-hp k v
	expect 0 "stat on it" -- shf -d "$hp" stat $p-hp
	size=$(sed -n 's/^bytes_file  *//p' "$tmp/out")
	if has "^huge_pages  *100% of the file (huge=within_size)$" \
		"$tmp/out" && has "^bytes_huge  *$size$" "$tmp/out"; then
		ok "stat: the whole file in 2 MiB pages, and why"
	elif [ "$(fallbacks)" != "$fb" ]; then
		echo "# no free 2 MiB blocks of memory (thp_file_fallback): not checked"
	else
		fail "stat: bytes_huge should be $size (huge=within_size)"
		sed 's/^/	/' "$tmp/out"
	fi
	umount "$hp"
else
	echo "# cannot mount a tmpfs here: 2 MiB pages not checked"
fi

# ---- huge: a table's pages gathered into 2 MiB ones (MADV_COLLAPSE),
# on the mount the tests use, whatever its huge= (Linux 6.1 on; not where
# shmem_enabled says deny; free 2 MiB blocks of memory needed).  Another
# process keeps the table open meanwhile, and reads it all after.
h=$p-huge
"$helper" fill "$dir" $h 100000 || fail "fill for huge"
expect_any() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
rc=$(expect_any shf huge $h)
if [ "$rc" = 0 ] && has "^$h: [0-9]* of [0-9]* MiB in 2 MiB pages ([1-9][0-9]* of [1-9][0-9]* whole 2 MiB gathered now)$" "$tmp/out"; then
	ok "huge: every whole 2 MiB gathered"
	expect 0 "stat after huge" -- shf stat $h
	has "^huge_pages  *[1-9][0-9]*% of the file" "$tmp/out" &&
		ok "stat: huge pages after huge" || fail "stat after huge"
	"$helper" keys "$dir" $h | grep -c '^key-' >"$tmp/n"
	[ "$(cat "$tmp/n")" = 100000 ] && ok "huge: every key still there" ||
		fail "huge: $(cat "$tmp/n") keys of 100000 after"
	expect 0 "check after huge" -- shf check $h
elif grep -q "MADV_COLLAPSE" "$tmp/err"; then
	echo "# huge: the kernel cannot gather pages here: not checked"
elif [ "$rc" = 2 ] && has "^$h: .* gathered now)$" "$tmp/out"; then
	echo "# huge: no free 2 MiB blocks of memory for all: not checked"
else
	fail "huge: status $rc: $(cat "$tmp/out" "$tmp/err")"
fi
expect 1 "huge of an absent table" -- shf huge $p-none
expect 2 "huge without a name" -- shf huge
expect 0 "rm after huge" -- shf rm $h

# ---- cache mode: put --ttl, ttl, set, expire, the new stat fields
# ttl_left MAX WHAT: the last "shf ttl" printed 1 .. MAX milliseconds.
ttl_left() {
	left=$(cat "$tmp/out")
	case $left in
	''|*[!0-9]*) fail "$2: ttl printed '$left', not milliseconds" ;;
	*) [ "$left" -gt 0 ] && [ "$left" -le "$1" ] && ok "$2 ($left)" ||
		fail "$2: ttl printed $left, not 1 to $1" ;;
	esac
}
c=$p-cache
expect 0 "put --ttl" -- shf put --ttl 60000 $c soon v1
expect 0 "ttl of a key with a TTL" -- shf ttl $c soon
ttl_left 60000 "ttl prints the milliseconds left"
expect 0 "put without --ttl" -- shf put $c forever v2
expect 0 "ttl of a key without one" -- shf ttl $c forever
[ "$(cat "$tmp/out")" = never ] && ok "ttl says never" ||
	fail "ttl printed '$(cat "$tmp/out")', not never"
expect 1 "ttl of an absent key" -- shf ttl $c nokey
has "key 'nokey' not found" "$tmp/err" && ok "ttl: absent key reported" ||
	fail "ttl: absent key message"
expect 1 "ttl in an absent table" -- shf ttl $p-none k
expect 2 "put --ttl wants a number" -- shf put --ttl soon $c k v
expect 2 "--ttl is for put only" -- shf get --ttl 5 $c soon
expect 0 "put --ttl 1000" -- shf put --ttl 1000 $c brief v3
expect 0 "get before the TTL passes" -- shf get $c brief
[ "$(cat "$tmp/out")" = v3 ] && ok "value there before it expires" ||
	fail "got '$(cat "$tmp/out")' before expiry"
sleep 1.2
expect 1 "get after the TTL passed: absent" -- shf get $c brief
has "key 'brief' not found" "$tmp/err" && ok "expired key reported absent" ||
	fail "expired key message"
expect 1 "ttl after the TTL passed: absent" -- shf ttl $c brief
expect 0 "the key without a TTL stays" -- shf get $c forever
# Several keys expire; expire reclaims them (or puts did already).
for k in e1 e2 e3 e4 e5; do
	shf put --ttl 100 $c $k x >/dev/null 2>&1 || fail "put --ttl 100 $k"
done
sleep 0.5
expect 0 "expire" -- shf expire $c
grep -q "^$c: [0-9][0-9]* expired keys\? reclaimed$" "$tmp/out" &&
	ok "expire prints a count ($(cat "$tmp/out"))" ||
	fail "expire printed '$(cat "$tmp/out")'"
expect 0 "expire MAX_SLOTS" -- shf expire $c 16
expect 2 "expire MAX_SLOTS 0" -- shf expire $c 0
expect 2 "expire MAX_SLOTS not a number" -- shf expire $c lots
expect 1 "expire of an absent table" -- shf expire $p-none
expect 0 "stat after expiry" -- shf stat $c
has "^expirations  *[1-9]" "$tmp/out" && ok "stat counts expirations" ||
	fail "no expirations counted"
has "^keys  *2$" "$tmp/out" && ok "stat: the 2 live keys left" ||
	fail "stat keys after expiry"
# set: the settings are stored in the table.
expect 0 "set --budget" -- shf set $c --budget 1048576
has "^$c: byte_budget 1048576, ttl_default_ms 0$" "$tmp/out" &&
	ok "set prints the settings" || fail "set output"
expect 0 "set --ttl-default and --budget with a suffix" -- \
	shf set $c --ttl-default 5000 --budget 2M
expect 0 "stat after set" -- shf stat $c
has "^byte_budget  *2097152$" "$tmp/out" && ok "stat shows the budget" ||
	fail "stat byte_budget"
has "^ttl_default_ms  *5000$" "$tmp/out" && ok "stat shows the default TTL" ||
	fail "stat ttl_default_ms"
for f in bytes_cached hits misses evictions expirations leases lease_waits; do
	has "^$f  *[0-9][0-9]*$" "$tmp/out" || { fail "stat: no $f"; continue; }
done
has "^hits  *[1-9]" "$tmp/out" && ok "stat counts hits" || fail "stat hits"
has "^bytes_cached  *[1-9]" "$tmp/out" && ok "stat shows bytes_cached" ||
	fail "stat bytes_cached"
# The default TTL applies to a put without --ttl; --ttl 0 means never.
expect 0 "put under the default TTL" -- shf put $c dflt v4
expect 0 "ttl of it" -- shf ttl $c dflt
ttl_left 5000 "the default TTL applies"
expect 0 "put --ttl 0" -- shf put --ttl 0 $c zero v5
expect 0 "ttl of it" -- shf ttl $c zero
[ "$(cat "$tmp/out")" = never ] && ok "--ttl 0 never expires" ||
	fail "--ttl 0: ttl printed '$(cat "$tmp/out")'"
expect 0 "stat --json" -- shf stat --json $c
has '"byte_budget": 2097152,' "$tmp/out" && has '"ttl_default_ms": 5000,' "$tmp/out" &&
	has '"lease_waits": [0-9]' "$tmp/out" && ok "stat --json: cache fields" ||
	fail "stat --json: cache fields"
expect 0 "stat --prometheus" -- shf stat --prometheus $c
prom_ok=1
for m in ttl_default_ms:gauge byte_budget:gauge bytes_cached:gauge \
	hits_total:counter misses_total:counter evictions_total:counter \
	expirations_total:counter leases_total:counter \
	lease_waits_total:counter; do
	name=${m%%:*} type=${m#*:}
	has "^# HELP libshf_$name [A-Z]" "$tmp/out" &&
		has "^# TYPE libshf_$name $type$" "$tmp/out" &&
		has "^libshf_$name{table=\"$c\"} [0-9][0-9]*$" "$tmp/out" || prom_ok=0
done
has "^libshf_byte_budget{table=\"$c\"} 2097152$" "$tmp/out" || prom_ok=0
! grep -v '^#' "$tmp/out" | grep -qv '^libshf_[a-z_]*{table="[^"]*"} [0-9][0-9]*$' ||
	prom_ok=0
[ $prom_ok = 1 ] && ok "stat --prometheus: cache metrics" ||
	fail "stat --prometheus: cache metrics"
expect 2 "set without a setting" -- shf set $c
expect 2 "set --budget not a size" -- shf set $c --budget 12Q
expect 2 "set --ttl-default too large" -- shf set $c --ttl-default 4294967296
expect 0 "set creates a table" -- shf set $p-cache2 --budget 64K
[ -f "$dir/$p-cache2.shf" ] && ok "set made the table" || fail "set made no table"
expect 0 "set --budget 0 removes the budget" -- shf set $p-cache2 --budget 0
has "byte_budget 0," "$tmp/out" && ok "budget 0" || fail "budget 0"

# ---- dump while another process writes, load, compare
src=$p-src
"$helper" fill "$dir" $src 3000 || fail "fill"
"$helper" churn "$dir" $src >"$tmp/churn" &
churn_pid=$!
i=0
while ! grep -q churning "$tmp/churn" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
expect 0 "dump of a table being written" -- shf dump $src "$tmp/d1"
kill "$churn_pid"
wait "$churn_pid"
churn_pid=
head -c 8 "$tmp/d1" | grep -q SHFDUMP2 && ok "dump starts with SHFDUMP2" ||
	fail "dump magic"
expect 0 "load into a new table" -- shf load $p-copy "$tmp/d1"
# The 3000 stable keys lived through the dump: all must be there, once.
"$helper" keys "$dir" $p-copy | grep '^key-' | sort >"$tmp/k1"
"$helper" keys "$dir" $src | grep '^key-' | sort >"$tmp/k0"
[ "$(wc -l <"$tmp/k1" | tr -d ' ')" = 3000 ] && cmp -s "$tmp/k0" "$tmp/k1" &&
	ok "the loaded table holds every stable key and value" ||
	fail "stable keys differ after dump and load"
# Quiet now: a second round trip gives the same key set.
expect 0 "dump the source again" -- shf dump $src "$tmp/d2"
expect 0 "load it again" -- shf load $p-copy2 - <"$tmp/d2"
"$helper" keys "$dir" $src | sort >"$tmp/a"
"$helper" keys "$dir" $p-copy2 | sort >"$tmp/b"
[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b" && ok "same pairs after load" ||
	fail "pairs differ after load"
shf dump $p-copy2 - >"$tmp/d3" 2>/dev/null
[ "$(wc -c <"$tmp/d2")" = "$(wc -c <"$tmp/d3")" ] && ok "dumps of equal tables are as long" ||
	fail "dump lengths differ"
# A dump that fails or is cut short leaves FILE as it was (found by
# review: it emptied an earlier dump at once and removed it on failure).
printf 'an earlier dump' >"$tmp/keep"
expect 2 "a dump whose writes fail (EFBIG)" -- \
	sh -c 'ulimit -f 1; trap "" XFSZ; exec "$@"' sh "$shf_bin" -d "$dir" dump $src "$tmp/keep"
has "too large" "$tmp/err" && ok "the write error is reported" || fail "EFBIG report"
(sh -c 'ulimit -f 1; exec "$@"' sh "$shf_bin" -d "$dir" dump $src "$tmp/keep"
 exit $?) 2>/dev/null
got=$?
[ $got -gt 128 ] && ok "a dump killed by a signal (SIGXFSZ) dies of it" ||
	fail "dump under SIGXFSZ: exit $got"
[ "$(cat "$tmp/keep")" = "an earlier dump" ] &&
	ok "the earlier dump is kept, whole" || fail "the earlier dump was changed"
left=$(ls "$tmp" | grep -c 'shf-dump-')
[ "$left" = 0 ] && ok "no temporary file left" || fail "$left temporary files left"
expect 0 "dump over the earlier one" -- shf dump $src "$tmp/keep"
head -c 8 "$tmp/keep" | grep -q SHFDUMP2 && ok "replaced once whole" ||
	fail "not replaced"
ln -s keep "$tmp/keep-link"
expect 0 "dump through a symbolic link" -- shf dump $src "$tmp/keep-link"
[ -L "$tmp/keep-link" ] && cmp -s "$tmp/keep" "$tmp/d2" &&
	ok "the file it names is written, the link kept" || fail "link replaced"
ln -s made-by-dump "$tmp/dangling"
expect 0 "dump through a link to no file yet" -- shf dump $src "$tmp/dangling"
[ -L "$tmp/dangling" ] && cmp -s "$tmp/made-by-dump" "$tmp/d2" &&
	ok "the file it names is made, the link kept" || fail "dangling link replaced"
ln "$tmp/keep" "$tmp/keep-hard"
printf 'x' >"$tmp/keep"
expect 0 "dump to a file with another hard link" -- shf dump $src "$tmp/keep"
cmp -s "$tmp/keep-hard" "$tmp/d2" && [ "$(stat -c %h "$tmp/keep")" = 2 ] &&
	ok "written in place: the hard link sees it" || fail "hard link broken"
if mknod "$tmp/full" c 1 7 2>/dev/null; then # as /dev/full (root only)
	expect 2 "a dump to a full device fails" -- shf dump $src "$tmp/full"
	[ -c "$tmp/full" ] && ok "a device is never removed" || fail "the device node is gone"
fi
# Names another user made in a sticky folder anyone may write to (as
# /dev/shm): refused, never written to nor handed over (found by an
# audit: a file of theirs got the dump, FIFOs held the command).  Root
# only: it makes them as nobody's.
if [ "$(id -u)" = 0 ]; then
	mkdir "$tmp/sticky" && chmod 1777 "$tmp/sticky"
	printf 'theirs' >"$tmp/sticky/f" && chown 65534 "$tmp/sticky/f" &&
		chmod 666 "$tmp/sticky/f"
	mkfifo "$tmp/sticky/p" && chown 65534 "$tmp/sticky/p"
	ln -s "$tmp/keep" "$tmp/sticky/l" && chown -h 65534 "$tmp/sticky/l"
	was=$(stat -c %i.%y "$tmp/keep")
	for x in f p l; do
		expect 2 "dump to another user's name ($x) in a sticky folder" -- \
			timeout 20 "$shf_bin" -d "$dir" dump $src "$tmp/sticky/$x"
	done
	[ "$(cat "$tmp/sticky/f")" = theirs ] && [ "$(stat -c %U "$tmp/sticky/f")" != root ] &&
		ok "their file untouched" || fail "their file was written"
	[ "$(stat -c %i.%y "$tmp/keep")" = "$was" ] && ok "the linked file untouched" ||
		fail "the file a foreign link names was written"
	expect 0 "dump to a new name there" -- shf dump $src "$tmp/sticky/new"
	[ "$(stat -c %U "$tmp/sticky/new")" = root ] &&
		ok "a new file is the caller's" || fail "new file: $(stat -c %U "$tmp/sticky/new")"
fi
# Output that cannot be written is a failure, whatever the command.
if [ -c /dev/full ]; then
	for c in ls "stat $src" "check $src" --help; do
		# shellcheck disable=SC2086
		expect 2 "shf $c to a full device" -- sh -c '"$@" >/dev/full' sh "$shf_bin" -d "$dir" $c
	done
fi
expect 1 "dump of an absent table" -- shf dump $p-none "$tmp/dn"
[ ! -e "$tmp/dn" ] && ok "no file for a failed dump" || fail "file left by a failed dump"

# Damage: a flipped byte, a cut stream, garbage.
size=$(wc -c <"$tmp/d2" | tr -d ' ')
cp "$tmp/d2" "$tmp/bad"
printf 'X' | dd of="$tmp/bad" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect 1 "load of a damaged dump fails" -- shf load $p-bad "$tmp/bad"
has "corrupt dump" "$tmp/err" && ok "damage reported" || fail "damage report"
head -c $((size - 100)) "$tmp/d2" >"$tmp/cut"
expect 1 "load of a cut dump fails" -- shf load $p-cut "$tmp/cut"
has "truncated" "$tmp/err" && ok "truncation reported" || fail "truncation report"
printf 'not a dump at all' >"$tmp/junk"
expect 2 "load of something else" -- shf load $p-junk "$tmp/junk"
has "not a shf dump" "$tmp/err" && ok "junk reported" || fail "junk report"
[ ! -e "$dir/$p-junk.shf" ] && ok "junk creates no table" || fail "junk made a table"

# ---- expiry times travel in a dump; a key that expired since is not loaded
tt=$p-ttlsrc
expect 0 "put --ttl 60 s, to dump" -- shf put --ttl 60000 $tt live v1
expect 0 "put --ttl 3 s, to dump" -- shf put --ttl 3000 $tt brief v2
expect 0 "put without a TTL, to dump" -- shf put $tt kept v3
t_put=$(date +%s)
expect 0 "dump of a table with TTLs" -- shf dump $tt "$tmp/dt"
expect 0 "load it at once" -- shf load $p-ttla "$tmp/dt"
expect 0 "ttl of a loaded key" -- shf ttl $p-ttla live
ttl_left 60000 "the loaded key kept its TTL"
left=$(cat "$tmp/out")
[ "$left" -gt 50000 ] 2>/dev/null && ok "its TTL came with it: $left ms left" ||
	fail "loaded key's TTL: '$left' ms left"
expect 0 "ttl of a loaded key without one" -- shf ttl $p-ttla kept
[ "$(cat "$tmp/out")" = never ] && ok "a key without a TTL got none" ||
	fail "key without a TTL: ttl printed '$(cat "$tmp/out")'"
expect 0 "the 3 s key loaded in time" -- shf get $p-ttla brief
# Past the 3 s key's expiry (4 s after its put, whole seconds rounded up).
while [ $(($(date +%s) - t_put)) -lt 5 ]; do sleep 0.5; done
expect 0 "load after a key expired" -- shf load $p-ttlb "$tmp/dt"
has "1 of 3 keys had expired" "$tmp/err" && ok "the expired key is reported" ||
	fail "expired key report"
expect 1 "the expired key was not loaded" -- shf get $p-ttlb brief
expect 0 "the others were" -- shf get $p-ttlb live
expect 0 "and this one" -- shf get $p-ttlb kept
"$helper" v1dump "$tmp/v1" || fail "v1dump"
expect 0 "load of a version 1 dump" -- shf load $p-v1 "$tmp/v1"
expect 0 "its keys are there" -- shf get $p-v1 old-2
[ "$(cat "$tmp/out")" = two ] && ok "with their values" ||
	fail "version 1 load: get printed '$(cat "$tmp/out")'"

# ---- check
big=$p-big
"$helper" fill "$dir" $big 20000 || fail "fill big"
expect 0 "check of a sound table" -- shf check $big
has "sound" "$tmp/out" && ok "check says sound" || fail "check output"
# Records and index segments lie past the first MiB: overwrite some.
f=$dir/$big.shf
dd if=/dev/urandom of="$f" bs=65536 seek=24 count=1 conv=notrunc status=none
dd if=/dev/urandom of="$f" bs=65536 seek=48 count=1 conv=notrunc status=none
expect 1 "check finds the damage" -- shf check $big
[ "$(grep -c "^$big: shard" "$tmp/out")" -gt 0 ] && ok "check prints each problem" ||
	fail "no problems printed"
has "problems\? found" "$tmp/out" && ok "check sums up" || fail "no summary"
expect 1 "check --repair" -- shf check --repair $big
has "repaired" "$tmp/out" && ok "repair reported" || fail "repair report"
expect 0 "sound after repair" -- shf check $big
expect 1 "check of an absent table" -- shf check $p-none
printf 'garbage' >"$dir/$p-junk2.shf"
expect 2 "check of a non-table" -- shf check $p-junk2
has "not a libshf table" "$tmp/err" && ok "non-table reported" || fail "non-table report"
expect 0 "ls survives a non-table" -- shf ls
has "^$p-junk2 .*unreadable" "$tmp/out" && ok "ls marks it unreadable" || fail "ls junk"
# rm takes away what cannot be attached (no handle for shf_del), but only
# a regular file, never through a link.
ln -s "$p-junk2.shf" "$dir/$p-junklink.shf"
expect 2 "rm of a link to a non-table" -- shf rm $p-junklink
[ -f "$dir/$p-junk2.shf" ] && [ -L "$dir/$p-junklink.shf" ] &&
	ok "the link and its file stay" || fail "rm went through a link"
rm -f "$dir/$p-junklink.shf"
expect 0 "rm of a non-table" -- shf rm $p-junk2
has "removed .*$p-junk2.shf (7 bytes; not attachable" "$tmp/out" &&
	[ ! -e "$dir/$p-junk2.shf" ] && ok "rm removed the non-table" ||
	fail "rm of a non-table: $(cat "$tmp/out")"
expect 0 "put" -- shf put $p-old k v
printf '\001\000\000\000' |
	dd of="$dir/$p-old.shf" bs=1 seek=8 conv=notrunc status=none
expect 2 "a table of layout 1 is refused" -- shf get $p-old k
has "shf dump.*shf load, then shf rm" "$tmp/err" &&
	ok "the refusal names the way out" || fail "layout refusal message"
expect 0 "rm of a table of layout 1" -- shf rm $p-old
[ ! -e "$dir/$p-old.shf" ] && has "not attachable" "$tmp/out" &&
	ok "rm removed the old table" || fail "rm of an old table"
rm -f "$dir/$p-junk2.shf" "$dir/$p-old.shf"

# ---- hostile names and files (issues 19, 22)
# A newline or an escape sequence in a table's name forges no row of ls
# and reaches no terminal: printed escaped, as in C.
nl_name="$p-forged
row"
esc_name="$p-esc$(printf '\033')[31m"
expect 0 "put to a table whose name has a newline" -- shf put "$nl_name" k v
expect 0 "put to a table whose name has an escape" -- shf put "$esc_name" k v
expect 0 "ls with hostile names" -- shf ls
if has "^$p-forged\\\\nrow " "$tmp/out" && has "^$p-esc\\\\e\\[31m " "$tmp/out" &&
	! grep -q '^row' "$tmp/out" && ! grep -q "$(printf '\033')" "$tmp/out"; then
	ok "ls escapes names"
else
	fail "ls escapes names"
fi
expect 0 "stat of a hostile name" -- shf stat "$nl_name"
has "^table  *$p-forged\\\\nrow$" "$tmp/out" && ok "stat escapes the name" ||
	fail "stat name"
expect 1 "error about a hostile name" -- shf get "$esc_name" nokey
[ "$(wc -l <"$tmp/err" | tr -d ' ')" = 1 ] && ! grep -q "$(printf '\033')" "$tmp/err" &&
	ok "error line escapes the name" || fail "error line: $(cat "$tmp/err")"
expect 0 "rm of a hostile name" -- shf rm "$nl_name"
[ "$(wc -l <"$tmp/out" | tr -d ' ')" = 1 ] && ! grep -q '^row' "$tmp/out" &&
	ok "rm escapes the name" || fail "rm printed: $(cat "$tmp/out")"
expect 0 "rm of a name with an escape" -- shf rm "$esc_name"
! grep -q "$(printf '\033')" "$tmp/out" && ok "rm sends no escape" ||
	fail "rm sent an escape"
rm -f "$dir/$nl_name.shf" "$dir/$esc_name.shf"

# A table that others may write is refused unless --allow-shared.
sh_t=$p-shared
expect 0 "put" -- shf put $sh_t k v
chmod 0666 "$dir/$sh_t.shf"
expect 2 "a table others may write is refused" -- shf get $sh_t k
has "not trusted" "$tmp/err" && has "allow-shared" "$tmp/err" &&
	ok "the refusal says why and what to do" || fail "refusal message"
expect 0 "--allow-shared trusts it" -- shf --allow-shared get $sh_t k
[ "$(cat "$tmp/out")" = v ] && ok "--allow-shared reads it" || fail "--allow-shared get"
rm -f "$dir/$sh_t.shf"

# Another process cuts a table's file while shf dump reads it: shf says so
# and exits 2, it does not die of SIGBUS.
tr_t=$p-trunc
"$helper" fill "$dir" $tr_t 40000 >/dev/null 2>&1 || fail "fill $tr_t"
mkfifo "$tmp/fifo"
shf dump $tr_t - >"$tmp/fifo" 2>"$tmp/err" &
dump_pid=$!
exec 3<"$tmp/fifo"
sleep 1 # dump fills the pipe and waits
truncate -s 4096 "$dir/$tr_t.shf"
cat <&3 >/dev/null
exec 3<&-
wait $dump_pid
got=$?
if [ $got -eq 2 ] && has "truncated" "$tmp/err"; then
	ok "dump of a file cut meanwhile: reported, exit 2"
else
	fail "dump of a cut file: exit $got, $(cat "$tmp/err")"
fi
expect 2 "attach of the cut file" -- shf check $tr_t
has "damaged" "$tmp/err" && ok "the cut file is damaged" || fail "cut file: $(cat "$tmp/err")"
rm -f "$dir/$tr_t.shf"

# ---- rm, gc
expect 0 "rm" -- shf rm $big
has "removed" "$tmp/out" && ok "rm says what it removed" || fail "rm output"
[ ! -e "$f" ] && ok "file gone" || fail "file still there"
expect 1 "rm of an absent table" -- shf rm $big
expect 0 "gc" -- shf gc

# ---- demo (short)
expect 0 "demo" -- shf demo -p 2 -s 1
has "none lost" "$tmp/out" && has "hello/worker-2" "$tmp/out" &&
	ok "demo explains itself" || fail "demo output"
demo_table=$(sed -n 's/^  table  \([^ ]*\.shf\) .*/\1/p' "$tmp/out")
[ -n "$demo_table" ] && [ ! -e "$demo_table" ] && ok "demo removed its table" ||
	fail "demo table '$demo_table' left behind"
expect 2 "demo -p 0" -- shf demo -p 0

echo "check_cli: $n checks, $fails failed"
[ "$fails" -eq 0 ]
