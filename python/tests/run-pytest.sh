#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-pytest.sh - make check's run of the Python module's tests
# (python/tests/test_*.py) with pytest, against the build tree (see
# python/in-tree.sh).  Exit 77 (skip) where pytest is not installed for
# $PYTHON (Debian: python3-pytest).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${abs_top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${abs_top_builddir:=$(pwd)}"
export abs_top_srcdir abs_top_builddir
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
	echo "run-pytest.sh: pytest is not installed for $PYTHON; skipped"
	exit 77
fi
# -p no:cacheprovider: no .pytest_cache in the source tree; --rootdir and
# -c /dev/null: no configuration file of a directory above is read.
exec /bin/sh "$abs_top_srcdir/python/in-tree.sh" \
	"$PYTHON" -m pytest -p no:cacheprovider -c /dev/null \
	--rootdir "$abs_top_srcdir/python/tests" -q -ra \
	"$abs_top_srcdir/python/tests"
