#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# release-hooks.sh - a library built without --enable-test-hooks has no
# crash points: nothing in it reads SHF_TEST_CRASH, so no environment
# variable can make a program that uses it kill itself.  Skipped (77) in a
# build with the hooks (the crash tests need them); .ci/run checks the
# same on the library the Debian packages install.
set -u
: "${top_builddir:=.}"
so=${1:-$top_builddir/lib/.libs/libshf.so}
[ -e "$so" ] || { echo "release-hooks: no $so"; exit 99; }
if grep -q '^#define SHF_TEST_HOOKS 1' "$top_builddir/config.h" 2>/dev/null &&
	[ $# -eq 0 ]; then
	echo "release-hooks: a test build (--enable-test-hooks): skipped"
	exit 77
fi
if grep -q SHF_TEST_CRASH "$so"; then
	echo "FAIL: $so reads SHF_TEST_CRASH: it has the crash points of a test build"
	exit 1
fi
echo "release-hooks: $so has no crash points"
exit 0
