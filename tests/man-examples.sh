#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Compile the program in the EXAMPLES section of every man page (between .EX
# and .EE), with -Wall -Wextra -Werror, so that the pages keep building
# against the installed header.  Links against the library when it is built.
# Exit 77 (skip) without a C compiler.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/shf-test.sh"
cc=${CC:-cc}
command -v "${cc%% *}" >/dev/null 2>&1 || { echo "no C compiler ($cc)"; exit 77; }

tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

lib=$top_builddir/lib/.libs/libshf.so
[ -e "$lib" ] || lib=
# The near-cache's pages (<shf-nearcache.h>) link libshf-nearcache too;
# without it (built without hiredis) they are only compiled.
nclib=$top_builddir/lib/.libs/libshf-nearcache.so
[ -e "$nclib" ] || nclib=

# Print the program of the EXAMPLES section of page $1, with the roff
# escapes that the pages use turned back into C.
extract() {
	awk '
	/^\.SH / { in_ex = ($0 ~ /^\.SH "?EXAMPLES?"?/); next }
	in_ex && /^\.EX/ { code = 1; next }
	in_ex && /^\.EE/ { code = 0; next }
	in_ex && code { print }
	' "$1" | sed -e 's/\\e/\x01/g' \
		-e 's/\\-/-/g' -e 's/\\(aq/'"'"'/g' -e "s/\\\\\\[aq\\]/'/g" \
		-e 's/\\(dq/"/g' -e 's/\\\[dq\]/"/g' -e 's/\\(ti/~/g' \
		-e 's/\\(ha/^/g' -e 's/\\(rs/\x01/g' -e 's/\\&//g' \
		-e 's/\x01/\\/g'
}

fail=0 n=0
for page in "$top_srcdir"/man/man3/*.3 "$top_srcdir"/man/man7/*.7; do
	[ -e "$page" ] || continue
	head -n 1 "$page" | grep -q '^\.so ' && continue
	grep -q '^\.SH EXAMPLES\?$' "$page" || continue
	# A binding's page (libshf-python(7)) runs its examples in its own tests.
	grep -q '^\.\\" EXAMPLES are Python' "$page" && continue
	base=$(basename "$page")
	src=$tmp/${base%.*}.c
	extract "$page" >"$src"
	if ! grep -q 'main *(' "$src"; then
		echo "FAIL: $base: EXAMPLES has no complete program"
		fail=1
		continue
	fi
	n=$((n + 1))
	flags="-std=gnu11 -Wall -Wextra -Werror -I$top_srcdir/include"
	libs=$lib
	if grep -q '<shf-nearcache\.h>' "$src"; then
		libs=
		[ -n "$lib" ] && [ -n "$nclib" ] && libs="$nclib $lib"
	fi
	if [ -n "$libs" ]; then
		# A sanitizer build's library needs the program to bring the
		# runtime (clang's are static): link as the build does.
		out=$($cc $flags ${SHF_SANITIZER_FLAGS:-} -o "$tmp/${base%.*}" \
			"$src" $libs -lpthread 2>&1)
	else
		out=$($cc $flags -c -o "$tmp/${base%.*}.o" "$src" 2>&1)
	fi
	rc=$?
	# The linker's notes about the sanitizer runtimes (libasan, libtsan
	# use tmpnam and friends) are not about the example.
	out=$(printf '%s\n' "$out" | grep -v -e 'lib[at]san' -e 'is dangerous, better use' -e '^$')
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "FAIL: $base"
		printf '%s\n' "$out" | sed 's/^/    /'
		fail=1
	fi
done
echo "$n example programs checked${lib:+ and linked}"
exit $fail
