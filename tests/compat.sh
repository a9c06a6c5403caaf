#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# compat.sh - SharedHashFile's users' programs (tests/compat/) built the
# way those users build them, and run:
#   cc  -Wall -Werror prog.c  $(pkg-config --cflags --libs shf)
#   c++ -Wall -Werror prog.cc $(pkg-config --cflags --libs shf)
# The C programs are also built as C++ (-x c++), as SharedHashFile's own
# C++ users include shf.h.  In a build tree pkg-config finds
# lib/shf-uninstalled.pc; with SHF_COMPAT_INSTALLED=1 (.ci/run, after it
# installs the packages) it uses the installed header and library.  Each
# program prints TAP lines; a "not ok", a nonzero exit or a missing plan
# fails.  shf-ipc runs as two processes, the child found on PATH with
# shf_backticks("which shf-ipc") and started with shf_exec_child().
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$here/..}"
: "${top_builddir:=$top_srcdir}"
top_builddir=$(cd "$top_builddir" && pwd) || exit 99
CC=${CC:-cc}
CXX=${CXX:-c++}
if ! command -v pkg-config >/dev/null 2>&1; then
	echo "compat: pkg-config not found; skipped"
	exit 77
fi
if [ "${SHF_COMPAT_INSTALLED:-0}" != 1 ]; then
	PKG_CONFIG_PATH=$top_builddir/lib${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
	export PKG_CONFIG_PATH
	LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi
flags=$(pkg-config --cflags --libs shf) || exit 99
# An ASan/UBSan libshf needs its runtime in the program too.
san=${SHF_SANITIZER_FLAGS:-}
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

build() { # compiler, output, source, language flags...
	c=$1 out=$2 src=$3
	shift 3
	# shellcheck disable=SC2086 # the flags are lists
	if ! $c -Wall -Wextra -Werror "$@" -o "$tmp/$out" "$src" $flags $san \
		>"$tmp/$out.cc-log" 2>&1; then
		echo "FAIL: $c $*: $src does not build:"
		sed 's/^/    /' "$tmp/$out.cc-log"
		fail=1
		return 1
	fi
	echo "built: $c -Wall -Wextra -Werror $* $(basename "$src")"
}

run() { # program, arguments...
	prog=$1
	shift
	if ! (cd "$tmp" && PATH=$tmp:$PATH "./$prog" "$@") >"$tmp/$prog.out" 2>&1; then
		echo "FAIL: $prog exited with an error:"
		sed 's/^/    /' "$tmp/$prog.out"
		fail=1
		return 1
	fi
	oks=$(grep -c '^ok ' "$tmp/$prog.out")
	if grep -q '^not ok' "$tmp/$prog.out" || [ "$oks" -eq 0 ]; then
		echo "FAIL: $prog:"
		sed 's/^/    /' "$tmp/$prog.out"
		fail=1
		return 1
	fi
	echo "ran: $prog: $oks ok"
}

progs=$top_srcdir/tests/compat
build "$CC" shf-kv "$progs/shf-kv.c" -std=gnu11 && run shf-kv
build "$CXX" shf-kv-cxx "$progs/shf-kv.c" -x c++ && run shf-kv-cxx
build "$CXX" shf-cxx "$progs/shf-cxx.cc" && run shf-cxx
# The IPC program runs as "shf-ipc", parent and child: one build at a time.
if build "$CC" shf-ipc "$progs/shf-ipc.c" -std=gnu11; then
	run shf-ipc
	# Exactly the lines both processes logged, nothing added to them.
	n=$(grep -c '^ok - \(parent\|child\): ' "$tmp/shf-ipc.out")
	if [ "$n" -ne 16 ]; then
		echo "FAIL: shf-ipc: $n of 16 TAP lines came out as written:"
		sed 's/^/    /' "$tmp/shf-ipc.out"
		fail=1
	fi
fi
if build "$CXX" shf-ipc "$progs/shf-ipc.c" -x c++; then
	run shf-ipc
fi
exit $fail
