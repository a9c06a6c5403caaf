#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nearcache-abi.sh - the ELF ABI of libshf-nearcache agrees with its
# sources, as abi-symbols.sh checks libshf's:
#  - the SONAME is libshf-nearcache.so.(current - age) of configure.ac;
#  - nm -D exports exactly the names of lib/libshf-nearcache.sym, each
#    with its node; every export has its man/man3/<name>.3;
#  - debian/control has libshf-nearcache<N>, whose .symbols file names
#    the same symbols and nodes;
#  - libshf.so itself does not need hiredis (the point of a library of
#    its own).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$here/..}"
: "${top_builddir:=$top_srcdir}"
top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
top_builddir=$(cd "$top_builddir" && pwd) || exit 99
sym=$top_srcdir/lib/libshf-nearcache.sym
so=$top_builddir/lib/.libs/libshf-nearcache.so
shf_so=$top_builddir/lib/.libs/libshf.so
nm=${NM:-nm}
readelf=${READELF:-readelf}
major=${SHF_NC_SONAME_MAJOR:-}

[ -e "$so" ] || { echo "nearcache-abi: no $so (built without hiredis?)"; exit 77; }
[ -n "$major" ] || { echo "nearcache-abi: SHF_NC_SONAME_MAJOR is not set"; exit 99; }
command -v "$readelf" >/dev/null 2>&1 || { echo "nearcache-abi: no $readelf"; exit 77; }
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
failed() {
	echo "FAIL: $*"
	fail=1
}

# "name node" for every name of the .sym file (comments removed first).
sed -e 's:/\*.*\*/::g' "$sym" | sed -e '/\/\*/,/\*\//d' |
	awk '/^[ \t]*[A-Za-z0-9_.]+[ \t]*\{/ { node = $1; sub(/\{.*/, "", node) }
	     /global:/ { g = 1; next } /local:/ { g = 0 } /\}/ { g = 0 }
	     g { gsub(/[ \t;]/, ""); if ($0 != "") print $0, node }' |
	sort -u >"$tmp/sym-nodes"
cut -d' ' -f1 "$tmp/sym-nodes" >"$tmp/sym"
awk '{ print $2 }' "$tmp/sym-nodes" | sort -u >"$tmp/nodes"
[ -s "$tmp/sym" ] || { echo "nearcache-abi: no symbols in $sym"; exit 99; }

soname=$("$readelf" -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libshf-nearcache.so.$major" ] ||
	failed "SONAME is '$soname', configure.ac says libshf-nearcache.so.$major"

# name@@NODE of every defined dynamic symbol but the nodes themselves.
"$readelf" --dyn-syms -W "$so" |
	awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $8 != "" && $4 != "SECTION" && $4 != "FILE" { print $8 }' |
	grep -v -x -f "$tmp/nodes" | sed 's/@@*/ /' | sort -u >"$tmp/dyn"
if ! diff -u "$tmp/sym-nodes" "$tmp/dyn" >"$tmp/diff"; then
	failed "exports of $so differ from $sym (- .sym, + readelf):"
	sed 's/^/    /' "$tmp/diff"
fi

while read -r s; do
	[ -f "$top_srcdir/man/man3/$s.3" ] ||
		failed "$s is exported but has no man/man3/$s.3"
done <"$tmp/sym"

control=$top_srcdir/debian/control
grep -qx "Package: libshf-nearcache$major" "$control" ||
	failed "debian/control has no package libshf-nearcache$major"
symbols=$top_srcdir/debian/libshf-nearcache$major.symbols
if [ -f "$symbols" ]; then
	head -n 1 "$symbols" | grep -q "^libshf-nearcache\.so\.$major libshf-nearcache$major " ||
		failed "$symbols does not start with 'libshf-nearcache.so.$major libshf-nearcache$major'"
	sed -n 's/^ \([^ ]*\) .*/\1/p' "$symbols" | sort -u >"$tmp/deb"
	{
		awk '{ print $1 "@" $2 }' "$tmp/sym-nodes"
		awk '{ print $1 "@" $1 }' "$tmp/nodes"
	} | sort -u >"$tmp/want"
	if ! diff -u "$tmp/want" "$tmp/deb" >"$tmp/diff"; then
		failed "$symbols differs from $sym; regenerate it (debian/README.source)"
		sed 's/^/    /' "$tmp/diff"
	fi
else
	failed "no $symbols"
fi

if [ -e "$shf_so" ] && "$readelf" -d "$shf_so" | grep -q 'NEEDED.*hiredis'; then
	failed "libshf.so needs hiredis"
fi

[ $fail -eq 0 ] && echo "nearcache-abi: $soname exports $(wc -l <"$tmp/sym") symbols as $(basename "$sym") says"
exit $fail
