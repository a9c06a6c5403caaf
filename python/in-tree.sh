#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# in-tree.sh - run a command (python3 ..., pytest) against the shf module
# and libshf of a build tree, uninstalled:
#
#   python/in-tree.sh python3 python/bench.py      (from the build tree)
#
# The package shf is assembled in a temporary directory put on PYTHONPATH
# (shf/__init__.py and stubs from the source tree, the extension from
# python/.libs); the build tree's libshf.so is preloaded, so that no
# installed libshf is taken instead (the module's RPATH names libdir).
# A library built with ASan (--enable-sanitizers) can only be loaded into
# an uninstrumented interpreter with the ASan runtime preloaded first:
# that is done here, with leak detection off (the interpreter itself
# leaks by design at exit).  Exit 77 where it cannot work (TSan).
#
# Environment: abs_top_srcdir, abs_top_builddir (default: this script's
# source tree, and the current directory), CC (for the sanitizer runtime).
set -u
here=$(cd "$(dirname "$0")" && pwd)
srcdir=${abs_top_srcdir:-$(cd "$here/.." && pwd)}
builddir=${abs_top_builddir:-$(pwd)}
lib=$builddir/lib/.libs/libshf.so

if [ ! -e "$lib" ]; then
	echo "in-tree.sh: $lib not built (run from the build tree, after make)" >&2
	exit 99
fi
ext=
for f in "$builddir"/python/.libs/_shf*.so; do
	[ -e "$f" ] && ext=$f
done
if [ -z "$ext" ]; then
	echo "in-tree.sh: python/.libs/_shf*.so not built (configure --with-python)" >&2
	exit 99
fi

# Which runtime the library was built with (its NEEDED entries).
needed=$( (readelf -d "$lib" 2>/dev/null || objdump -p "$lib" 2>/dev/null) |
	sed -n 's/.*\(lib[at]san\)\.so.*/\1/p' | head -n 1)
preload=
case $needed in
libtsan)
	echo "in-tree.sh: libshf is built with TSan; an uninstrumented Python" \
		"cannot host it (TSan must start with the process); skipped"
	exit 77
	;;
libasan)
	asan=$(${CC:-cc} -print-file-name=libasan.so 2>/dev/null)
	case $asan in
	/*) ;;
	*)
		echo "in-tree.sh: libshf needs libasan, and ${CC:-cc} does not" \
			"know where it is; skipped"
		exit 77
		;;
	esac
	preload=$asan
	ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export ASAN_OPTIONS
	;;
esac

pkg=$(mktemp -d "${TMPDIR:-/tmp}/shf-python.XXXXXX") || exit 99
trap 'rm -rf "$pkg"' EXIT
trap 'exit 130' INT TERM
mkdir "$pkg/shf"
for f in __init__.py _shf.pyi py.typed; do
	ln -s "$srcdir/python/shf/$f" "$pkg/shf/$f"
done
ln -s "$srcdir/python/bench.py" "$pkg/shf/bench.py"
ln -s "$ext" "$pkg/shf/$(basename "$ext")"

PYTHONPATH=$pkg${PYTHONPATH:+:$PYTHONPATH}
LD_LIBRARY_PATH=$builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
LD_PRELOAD="$preload${preload:+ }$lib${LD_PRELOAD:+ $LD_PRELOAD}"
# Tables made with delete_on_exit need the helper; the build tree's.
SHF_MONITOR=${SHF_MONITOR:-$builddir/tools/shf-monitor}
# Nothing written into the (maybe read-only) source tree.
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH LD_LIBRARY_PATH LD_PRELOAD SHF_MONITOR PYTHONDONTWRITEBYTECODE
"$@"
rc=$?
exit $rc
