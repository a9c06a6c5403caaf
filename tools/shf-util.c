// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-util.c - what the commands of shf(1) share: messages, attaching a
 * table by name, arguments (numbers, sizes, hex, files), the helper
 * programs beside shf, and the progress line of long walks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shf-tool.h"
#include "shf-escape.h"

#ifndef SHF_MONITOR_PATH
#error "SHF_MONITOR_PATH must be defined by the build"
#endif

/* ------------------------------------------------------------ messages */

/*
 * "shf: CMD: " and the message, then end.  The message is escaped: table
 * names come from the command line and from directories, and a newline or
 * an escape sequence in one must not forge a line or reach the terminal.
 */
static void vsay(const char *end, const char *fmt, va_list ap)
{
	char *msg;

	fprintf(stderr, "shf: %s%s", cli_cmd, *cli_cmd ? ": " : "");
	if (vasprintf(&msg, fmt, ap) < 0) {
		fputs("out of memory", stderr);
	} else {
		fputs(shf_esc(msg), stderr);
		free(msg);
	}
	fputs(end, stderr);
}

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("\n", fmt, ap);
	va_end(ap);
}

int usage_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(" (see shf --help)\n", fmt, ap);
	va_end(ap);
	return EXIT_ERR;
}

int stdout_check(void)
{
	static int said; /* once: the dispatcher checks again */

	if (fflush(stdout) == EOF || ferror(stdout)) {
		if (!said++)
			say("standard output: %s", strerror(errno));
		return EXIT_ERR;
	}
	return 0;
}

int is_tty_err(void)
{
	static int v = -1;

	if (v < 0)
		v = isatty(STDERR_FILENO);
	return v;
}

const char *errno_name_or(int e)
{
	return e ? strerror(e) : "done";
}

/* -------------------------------------------------------------- tables */

/* "NAME" or "NAME.shf" (as ls prints it) both name the table NAME. */
char *table_name(const char *arg)
{
	size_t n = strlen(arg);
	char *s = strdup(arg);

	if (!s) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	if (n > 4 && !strcmp(s + n - 4, ".shf"))
		s[n - 4] = '\0';
	return s;
}

void table_err(const char *name, int e)
{
	if (e == ENOENT)
		say("table '%s' not found in %s: %s", name, cli_dir,
		    strerror(e));
	else if (e == EINVAL)
		say("invalid table name '%s' or directory %s: %s", name,
		    cli_dir, strerror(e));
	else if (e == EBADMSG)
		say("table '%s' in %s is not a libshf table or is damaged: %s",
		    name, cli_dir, strerror(e));
	else if (e == EPROTO)
		say("table '%s' in %s has the layout of another libshf "
		    "version (%s): move its data with that version's shf dump "
		    "and this one's shf load, then shf rm it (see shf(1))",
		    name, cli_dir, strerror(e));
	else if (e == EPERM)
		say("table '%s' in %s belongs to another user or others may "
		    "write it, so it is not trusted (%s); shf --allow-shared "
		    "trusts it (see libshf(7), SECURITY)", name, cli_dir,
		    strerror(e));
	else
		say("cannot attach table '%s' in %s: %s", name, cli_dir,
		    strerror(e));
}

/* Attach NAME in cli_dir; exits with 1 (absent) or 2 on failure. */
SHF *table_open(const char *name, int create)
{
	SHF *shf;
	struct stat st;

	if (stat(cli_dir, &st) < 0) {
		say("directory %s: %s", cli_dir, strerror(errno));
		exit(EXIT_ERR);
	}
	if (!S_ISDIR(st.st_mode)) {
		say("%s: %s", cli_dir, strerror(ENOTDIR));
		exit(EXIT_ERR);
	}
	shf = create ? shf_attach(cli_dir, name, 0) :
		       shf_attach_existing(cli_dir, name);
	if (!shf) {
		int e = errno;

		table_err(name, e);
		exit(e == ENOENT ? EXIT_NOTFOUND : EXIT_ERR);
	}
	return shf;
}

/* ----------------------------------------------------------- arguments */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A decimal number from 0 to max; -1 if s is not one. */
int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Bytes: a decimal number, optionally with K, M, G or T (powers of 1024). */
int parse_bytes(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		const char *u = strchr("KMGT", *end & ~0x20);

		if (!u || !*u || end[1])
			return -1;
		shift = 10 * (unsigned)(u - "KMGT" + 1);
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Decode a command line argument (hex if asked) into a malloc()ed buffer. */
char *arg_bytes(const char *what, const char *s, int hex, uint32_t *len)
{
	size_t n = strlen(s), i;
	char *b;

	if (!hex) {
		b = strdup(s);
		*len = (uint32_t)n;
		if (!b) {
			say("out of memory");
			exit(EXIT_ERR);
		}
		return b;
	}
	if (n % 2)
		exit(usage_err("%s '%s' is not hex: odd number of digits", what,
			       s));
	b = malloc(n / 2 + 1);
	if (!b) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	for (i = 0; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0) {
			free(b);
			exit(usage_err("%s '%s' is not hex", what, s));
		}
		b[i / 2] = (char)(hi << 4 | lo);
	}
	*len = (uint32_t)(n / 2);
	return b;
}

/* The whole of FILE ("-": stdin) in a malloc()ed buffer. */
char *file_bytes(const char *path, uint32_t *len)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	size_t cap = 4096, n = 0;
	char *b = NULL, *nb;
	ssize_t r;

	if (fd < 0) {
		say("%s: %s", path, strerror(errno));
		exit(EXIT_ERR);
	}
	for (;;) {
		if (!b || n == cap) {
			cap = b ? cap * 2 : cap;
			nb = realloc(b, cap);
			if (!nb) {
				say("%s: out of memory", path);
				exit(EXIT_ERR);
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			say("%s: %s", path, strerror(errno));
			exit(EXIT_ERR);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n >= UINT32_MAX) {
			say("%s: a value must be smaller than 4 GiB", path);
			exit(EXIT_ERR);
		}
	}
	if (fd)
		close(fd);
	*len = (uint32_t)n;
	return b;
}

/* ------------------------------------------------------------- helpers */

/* Directory of this program, for its helpers (shf-monitor, shf-bench). */
static int self_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	/* An uninstalled libtool program runs from .libs: use its parent. */
	slash = strrchr(buf, '/');
	if (slash && !strcmp(slash + 1, ".libs"))
		*slash = '\0';
	return 0;
}

/* A helper program beside this one, if there is one; else NULL. */
char *beside(const char *prog)
{
	char d[PATH_MAX], *p;

	if (self_dir(d, sizeof(d)) < 0)
		return NULL;
	if (asprintf(&p, "%s/%s", d, prog) < 0)
		return NULL;
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/*
 * The monitor: $SHF_MONITOR, else shf-monitor beside this program (a build
 * tree), else the installed one.
 */
const char *monitor_path(int *from_beside)
{
	const char *e = getenv("SHF_MONITOR");
	char *b;

	*from_beside = 0;
	if (e && *e)
		return e;
	b = beside("shf-monitor");
	if (b) {
		*from_beside = 1;
		return b;
	}
	return SHF_MONITOR_PATH;
}

/* ------------------------------------------------------------ progress */

void progress(struct progress *p, uint64_t n)
{
	double now;

	if (!is_tty_err())
		return;
	now = shf_get_time_in_seconds();
	if (p->shown && now - p->last < 0.2)
		return;
	if (!p->shown && !p->last) {
		p->last = now; /* wait a moment: short runs print nothing */
		return;
	}
	if (!p->shown && now - p->last < 0.5)
		return;
	p->last = now;
	p->shown = 1;
	if (p->total)
		fprintf(stderr, "\rshf: %s: %" PRIu64 " of about %" PRIu64
			" keys (%u%%)\033[K", p->what, n, p->total,
			(unsigned)(n >= p->total ? 100 : n * 100 / p->total));
	else
		fprintf(stderr, "\rshf: %s: %" PRIu64 " keys\033[K", p->what, n);
}

void progress_end(struct progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r\033[K");
	p->shown = 0;
}
