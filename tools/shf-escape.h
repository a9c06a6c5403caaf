// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-escape.h - names and strings read from a directory or a file, made
 * safe to print on a terminal or as one row of output (shf ls, shf stat,
 * messages, shf-monitor --sweep, shf-nearcache --stat).
 */
#ifndef SHF_ESCAPE_H
#define SHF_ESCAPE_H

#include <stdio.h>

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

/*
 * The n bytes at p, escaped as shf_esc() escapes (a NUL as \x00), to f;
 * with lines, newlines and tabs as they are (a value shown on a terminal).
 */
void shf_esc_write(FILE *f, const void *p, size_t n, int lines);

/*
 * s as a JSON string, quotes included: \" and \\, control characters and
 * DEL as \u00XX; a byte that is not UTF-8 as \u00XX too (JSON text must
 * be UTF-8).
 */
void shf_json_str(FILE *f, const char *s);

/*
 * s as the value of a Prometheus label (without its quotes): \\, \" and
 * \n as the format says; any other control character, and a byte that is
 * not UTF-8, as '?' (the format has no escape for them).
 */
void shf_prom_label(FILE *f, const char *s);

#endif
