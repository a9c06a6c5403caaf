#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# abi-symbols.sh - the ELF ABI of the built library and the release
# metadata agree with their sources:
#  - the SONAME is libshf.so.(current - age) of configure.ac;
#  - nm -D exports exactly the names of lib/libshf.sym (the version node
#    symbols such as LIBSHF_1.0 aside);
#  - every export carries a version, the node libshf.sym lists it under;
#    a name listed under several nodes (a changed call whose old
#    behaviour is kept for old binaries with .symver) has its default
#    version (@@) in the last of them and a name@NODE for each other one;
#  - debian/changelog's upstream version is PACKAGE_VERSION, the Debian
#    library package is libshf<SONAME major>, and its .symbols file names
#    the same symbols and nodes;
#  - the rpm %changelog's latest entry is for PACKAGE_VERSION.
# The man pages are tests/man-coverage.sh's business.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/shf-test.sh"
sym=$top_srcdir/lib/libshf.sym
so=$top_builddir/lib/.libs/libshf.so
nm=${NM:-nm}
readelf=${READELF:-readelf}
version=${PACKAGE_VERSION:-}
major=${SHF_SONAME_MAJOR:-}

[ -f "$sym" ] || { echo "abi-symbols: no $sym"; exit 99; }
[ -e "$so" ] || { echo "abi-symbols: no $so (build the library first)"; exit 99; }
[ -n "$version" ] || { echo "abi-symbols: PACKAGE_VERSION is not set"; exit 99; }
[ -n "$major" ] || { echo "abi-symbols: SHF_SONAME_MAJOR is not set"; exit 99; }
if ! command -v "$readelf" >/dev/null 2>&1; then
	echo "abi-symbols: $readelf not found; skipped"
	exit 77
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
failed() {
	echo "FAIL: $*"
	fail=1
}

# "symbol node" for every name of libshf.sym, comments removed first
# (they may say "global:" themselves).
shf_sym_uncommented "$sym" |
	awk '/^[ \t]*[A-Za-z0-9_.]+[ \t]*\{/ { node = $1; sub(/\{.*/, "", node) }
	     /global:/ { g = 1; sub(/.*global:/, "") }
	     /local:/ { g = 0 }
	     g { n = split($0, w, /[ \t;]+/)
		 for (i = 1; i <= n; i++)
			 if (w[i] ~ /^[A-Za-z_][A-Za-z0-9_]*$/) print w[i], node }
	     /\}/ { g = 0 }' |
	awk '!seen[$0]++' >"$tmp/sym-nodes-ordered"
sort -u "$tmp/sym-nodes-ordered" >"$tmp/sym-nodes"
cut -d' ' -f1 "$tmp/sym-nodes" | sort -u >"$tmp/sym"
awk '{ print $2 }' "$tmp/sym-nodes" | sort -u >"$tmp/nodes"
[ -s "$tmp/sym" ] || { echo "abi-symbols: no symbols found in $sym"; exit 99; }
# The default version of each name: the last node that lists it.
awk '{ last[$1] = $2 } END { for (n in last) print n, last[n] }' \
	"$tmp/sym-nodes-ordered" | sort >"$tmp/sym-default"
# Names listed under several nodes: each older node must be a kept
# version (name@NODE) of the library.
awk 'NR == FNR { def[$1] = $2; next } def[$1] != $2 { print $1 "@" $2 }' \
	"$tmp/sym-default" "$tmp/sym-nodes" >"$tmp/sym-compat"

# SONAME.
soname=$("$readelf" -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" != "libshf.so.$major" ]; then
	failed "SONAME is '$soname', configure.ac's c:r:a says libshf.so.$major"
fi

# Exports (nm -D) == libshf.sym.  The version nodes are absolute symbols
# named after the node; everything else defined is an export.
$nm -D --defined-only "$so" >"$tmp/nm-raw" || exit 99
awk '{ name = $NF; sub(/@.*/, "", name); print name, $(NF - 1) }' "$tmp/nm-raw" |
	sort -u >"$tmp/nm-types"
awk 'NR == FNR { node[$1] = 1; next }
     !($2 == "A" && ($1 in node)) { print $1 }' "$tmp/nodes" "$tmp/nm-types" |
	sort -u >"$tmp/nm"
if ! diff -u "$tmp/sym" "$tmp/nm" >"$tmp/diff"; then
	failed "exports of $so differ from $sym (- libshf.sym, + nm -D):"
	sed 's/^/    /' "$tmp/diff"
fi
# A version node of libshf.sym that the library does not define.
awk '$2 == "A" { print $1 }' "$tmp/nm-types" | sort -u >"$tmp/nm-nodes"
if ! diff -u "$tmp/nodes" "$tmp/nm-nodes" >"$tmp/diff"; then
	failed "version nodes of $so differ from $sym (- libshf.sym, + nm -D):"
	sed 's/^/    /' "$tmp/diff"
fi

# Every defined dynamic symbol is versioned, with its node in libshf.sym
# (readelf shows name@@NODE for the default version, name@NODE for an
# older one kept with .symver).
"$readelf" --dyn-syms -W "$so" >"$tmp/dynsym" || exit 99
awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $8 != "" && $4 != "SECTION" && $4 != "FILE" { print $8 }' \
	"$tmp/dynsym" | sort -u >"$tmp/dyn"
while read -r entry; do
	# The node's own symbol: absolute, shown without a version.
	if grep -qx "$entry" "$tmp/nodes"; then
		continue
	fi
	case $entry in
	*@@*) name=${entry%%@@*} ver=${entry##*@@} ;;
	*@*) name=${entry%%@*} ver=${entry##*@} ;;
	*)
		failed "$entry is exported without a version node"
		continue
		;;
	esac
	if [ "$name" = "$ver" ] && grep -qx "$ver" "$tmp/nodes"; then
		continue # the node's own symbol, if a readelf shows it so
	fi
	want=$(awk -v s="$name" '$1 == s { print $2 }' "$tmp/sym-default")
	if [ -z "$want" ]; then
		: # not in libshf.sym: reported by the nm -D check above
	elif [ "$ver" != "$want" ]; then
		case $entry in
		*@@*) failed "$name has version $ver, libshf.sym puts it in $want" ;;
		*) grep -qx "$name@$ver" "$tmp/sym-compat" ||
			failed "$name@$ver is kept, but libshf.sym does not list $name under $ver" ;;
		esac
	fi
done <"$tmp/dyn"
while read -r entry; do
	grep -qx "$entry" "$tmp/dyn" ||
		failed "libshf.sym lists ${entry%@*} under ${entry#*@}, but the library keeps no $entry"
done <"$tmp/sym-compat"

# debian/changelog: "libshf (EPOCH:UPSTREAM-REVISION) dist; urgency=..."
changelog=$top_srcdir/debian/changelog
if [ -f "$changelog" ]; then
	deb=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$changelog")
	upstream=${deb#*:}
	upstream=${upstream%-*}
	if [ "$upstream" != "$version" ]; then
		failed "debian/changelog's upstream version is '$upstream' ($deb), configure.ac's is $version"
	fi
else
	failed "no $changelog"
fi

# debian/control and debian/libshf<N>.symbols follow the SONAME.
control=$top_srcdir/debian/control
if [ -f "$control" ] && ! grep -qx "Package: libshf$major" "$control"; then
	failed "debian/control has no package libshf$major (SONAME libshf.so.$major)"
fi
symbols=$top_srcdir/debian/libshf$major.symbols
if [ -f "$symbols" ]; then
	if ! head -n 1 "$symbols" | grep -q "^libshf\.so\.$major libshf$major "; then
		failed "$symbols does not start with 'libshf.so.$major libshf$major'"
	fi
	# " name@NODE version": every node of libshf.sym appears as NODE@NODE.
	sed -n 's/^ \([^ ]*\) .*/\1/p' "$symbols" | sort -u >"$tmp/deb"
	{
		awk '{ print $1 "@" $2 }' "$tmp/sym-nodes"
		awk '{ print $1 "@" $1 }' "$tmp/nodes"
	} | sort -u >"$tmp/want"
	if ! diff -u "$tmp/want" "$tmp/deb" >"$tmp/diff"; then
		failed "$symbols differs from $sym (- libshf.sym, + symbols);" \
			"regenerate it with dpkg-gensymbols (see debian/README.source)"
		sed 's/^/    /' "$tmp/diff"
	fi
else
	failed "no $symbols"
fi

# rpm/libshf.spec.in: the latest %changelog entry ("* date who - V-R").
spec=$top_srcdir/rpm/libshf.spec.in
if [ -f "$spec" ]; then
	rpmver=$(sed -n '/^%changelog/,$ { /^\* /{ s/.* - *\([^ ]*\)$/\1/p; q; } }' "$spec")
	if [ "${rpmver%-*}" != "$version" ]; then
		failed "the latest %changelog entry of rpm/libshf.spec.in is for '$rpmver', configure.ac's version is $version"
	fi
else
	failed "no $spec"
fi

[ $fail -eq 0 ] &&
	echo "abi-symbols: $soname exports $(wc -l <"$tmp/sym") versioned symbols as libshf.sym says; release files at $version"
exit $fail
