# SPDX-License-Identifier: LGPL-2.1-or-later
# shf-test.sh - sourced by the test scripts that read the source tree
# (abi-symbols.sh, man-coverage.sh, man-examples.sh), once they have set
# here to their own directory.  POSIX sh.
#
# top_srcdir and top_builddir: from make check's environment, else the tree
# around here; made absolute, since the checks change directory.
: "${top_srcdir:=$here/..}"
: "${top_builddir:=$top_srcdir}"
top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
top_builddir=$(cd "$top_builddir" && pwd) || exit 99

# shf_sym_uncommented FILE: a version script (lib/libshf.sym) without its
# /* */ comments, which may say "global:" themselves.
shf_sym_uncommented() {
	awk '{ line = $0; out = ""
	       while (line != "") {
		       if (c) { i = index(line, "*/"); if (!i) { line = ""; break }
				line = substr(line, i + 2); c = 0 }
		       else { i = index(line, "/*"); if (!i) { out = out line; break }
			      out = out substr(line, 1, i - 1)
			      line = substr(line, i + 2); c = 1 } }
	       print out }' "$1"
}
