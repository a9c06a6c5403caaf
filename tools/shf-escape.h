// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-escape.h - names and strings read from a directory or a file, made
 * safe to print on a terminal or as one row of output (shf ls, shf stat,
 * messages, shf-monitor --sweep, shf-nearcache --stat).
 */
#ifndef SHF_ESCAPE_H
#define SHF_ESCAPE_H

/*
 * s with every byte that could forge a row or reach the terminal as a
 * command escaped: control characters and DEL as \n, \t, \r, \e or \xNN,
 * a backslash as \\, the C1 controls (U+0080..U+009F) and bytes that are
 * not UTF-8 as \xNN.  Printable UTF-8 stays as it is.  Returns s itself
 * when nothing needs escaping, else one of 4 buffers reused in turn (so up
 * to 4 results may be arguments of one printf); "?" if out of memory.
 * Not thread-safe, not async-signal-safe.
 */
const char *shf_esc(const char *s);

#endif
