// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-log - pipe the standard input of many processes into one file
 * through the multiplexed log of a table (see shf-log(1)).
 *
 *   shf-log [-d DIR] [-s SIZE] [-x] -c NAME OUTFILE   drain until signalled
 *   shf-log [-d DIR] [-t TAG] -w NAME                 copy stdin lines in
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shf.h"
#include "shf-escape.h"
#include "log-tool.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shf-log [-d DIR] [-s SIZE] [-x] -c NAME OUTFILE\n"
		"       shf-log [-d DIR] [-t TAG] -w NAME\n"
		"  -c, --create   make table NAME (if absent) with a log and\n"
		"                 append its lines to OUTFILE until SIGINT or\n"
		"                 SIGTERM\n"
		"  -w, --write    copy standard input into the log of NAME,\n"
		"                 one log line per input line, until EOF\n"
		"  -d, --dir      directory of the table (default /dev/shm)\n"
		"  -s, --size     ring buffer bytes (default 1 MiB)\n"
		"  -t, --tag      put TAG and a space before each line\n"
		"  -x, --delete   remove the table when draining ends\n"
		"  -h, --help     this text\n");
}

static int drain(const char *dir, const char *name, const char *file,
		 uint32_t size, int del)
{
	sigset_t stops, old, waitset;
	struct sigaction sa;
	uint64_t lost;
	int fd, err, rc = 0;
	SHF *shf;

	/*
	 * The handler, without SA_RESTART, is there before OUTFILE is opened:
	 * open() of a FIFO that no process reads waits for one, for ever,
	 * and SIGINT or SIGTERM there must stop it (open() fails with EINTR).
	 * A signal that comes before the drain runs sets stop, and the drain
	 * stops as soon as it runs.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Stopped before OUTFILE is open: exit 0, as stopped, nothing made. */
	if (stop)
		return 0;
	fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EINTR && stop)
		return 0;
	if (fd < 0) {
		fprintf(stderr, "shf-log: %s: %s\n", shf_esc(file),
			strerror(errno));
		return 1;
	}
	shf = shf_attach(dir, name, 0);
	if (!shf) {
		fprintf(stderr, "shf-log: %s/%s: %s\n", shf_esc(dir),
			shf_esc(name), strerror(errno));
		return 1;
	}
	if (shf_log_thread_new(shf, size, fd) != SHF_RET_OK) {
		fprintf(stderr, "shf-log: log of %s/%s: %s\n",
			shf_esc(dir), shf_esc(name), strerror(errno));
		shf_detach(shf);
		return 1;
	}
	/*
	 * SIGINT and SIGTERM are blocked from here but while the drain waits
	 * for them (sigsuspend()): one that comes between the look at stop
	 * and the wait is kept until then, not lost.
	 */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigprocmask(SIG_BLOCK, &stops, &old);
	waitset = old;
	sigdelset(&waitset, SIGINT);
	sigdelset(&waitset, SIGTERM);
	/* Drain until SIGINT or SIGTERM; then what is left goes out too. */
	while (!stop)
		sigsuspend(&waitset);
	sigprocmask(SIG_SETMASK, &old, NULL);
	shf_log_thread_del(shf);
	/* Lines the drain could not write: said in OUTFILE, if it could
	 * write again, and here. */
	shf_log_tool_lost(&lost, &err);
	if (lost) {
		fprintf(stderr, "shf-log: %s: %llu lines lost: %s\n",
			shf_esc(file), (unsigned long long)lost,
			strerror(err));
		rc = 1;
	}
	if (del)
		free(shf_del(shf));
	else
		shf_detach(shf);
	if (close(fd) < 0) {
		fprintf(stderr, "shf-log: %s: %s\n", shf_esc(file),
			strerror(errno));
		rc = 1;
	}
	return rc;
}

/* Standard input, read in blocks: no line is held whole. */
struct input {
	size_t pos, end;
	char buf[64 << 10];
};

/*
 * The next line of in, its newline included, into line if it has at most
 * max bytes: 1 and its length in *len (more than max: too long, read to
 * its end but not kept); 0 at the end of the input; -1 with errno.
 */
static int read_line(struct input *in, char *line, size_t max, size_t *len)
{
	size_t n = 0;

	for (;;) {
		const char *s, *nl;
		size_t take;

		if (in->pos == in->end) {
			ssize_t r = read(STDIN_FILENO, in->buf,
					 sizeof(in->buf));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -1;
			if (r == 0) {
				*len = n;
				return n ? 1 : 0;
			}
			in->pos = 0;
			in->end = (size_t)r;
		}
		s = in->buf + in->pos;
		nl = memchr(s, '\n', in->end - in->pos);
		take = nl ? (size_t)(nl - s) + 1 : in->end - in->pos;
		if (n + take <= max)
			memcpy(line + n, s, take);
		/* a too long line is only counted, up to SIZE_MAX */
		n = n + take < n ? SIZE_MAX : n + take;
		in->pos += take;
		if (nl) {
			*len = n;
			return 1;
		}
	}
}

/*
 * Lines that could not be appended, one reason after another: each run of
 * them is said once, at its first line, and counted; when it ends (a line
 * goes in again, another reason, the end) its count is said, unless it was
 * one line too long, which the first message said all about.
 */
struct fails {
	int err; /* of the run; 0: none */
	unsigned long long first, count;
	size_t max; /* the longest line (EMSGSIZE) */
};

static void fails_end(struct fails *f, unsigned long long lineno, int again)
{
	const char *why = f->err == EMSGSIZE ? "longer than the log takes" :
					       strerror(f->err);

	if (!f->err)
		return;
	if (f->count > 1 || f->err != EMSGSIZE) {
		if (again)
			fprintf(stderr, "shf-log: line %llu: appending again; "
				"%llu lines not appended since line %llu "
				"(%s)\n", lineno, f->count, f->first, why);
		else
			fprintf(stderr, "shf-log: %llu lines not appended "
				"since line %llu (%s)\n", f->count, f->first,
				why);
	}
	f->err = 0;
	f->count = 0;
}

static void fails_add(struct fails *f, unsigned long long lineno, int err)
{
	if (f->err == err) {
		f->count++;
		return;
	}
	fails_end(f, lineno, 0);
	f->err = err;
	f->first = lineno;
	f->count = 1;
	if (err == EMSGSIZE)
		fprintf(stderr, "shf-log: line %llu: longer than the log takes "
			"(%lu bytes): skipped\n", lineno, (unsigned long)f->max);
	else if (err == EPIPE)
		fprintf(stderr, "shf-log: line %llu: append: %s (no process "
			"drains the log; lines are dropped until one does)\n",
			lineno, strerror(err));
	else
		fprintf(stderr, "shf-log: line %llu: append: %s\n", lineno,
			strerror(err));
}

/*
 * Attach to the table of an existing log, for lines with a tag of tl
 * bytes (its space included); the longest line the log takes, tag and
 * newline included, in *lmax.  NULL (said) if there is none or no room.
 */
static SHF *copy_attach(const char *dir, const char *name, size_t tl,
			uint32_t *lmax)
{
	SHF *shf = shf_attach_existing(dir, name);

	if (!shf) {
		fprintf(stderr, "shf-log: %s/%s: %s\n", shf_esc(dir),
			shf_esc(name), strerror(errno));
		return NULL;
	}
	*lmax = shf_log_tool_line_max(shf);
	if (!*lmax) {
		fprintf(stderr, "shf-log: log of %s/%s: %s\n", shf_esc(dir),
			shf_esc(name), strerror(errno));
		shf_detach(shf);
		return NULL;
	}
	if (tl >= *lmax) {
		fprintf(stderr, "shf-log: the tag is longer than the log's "
			"lines (%lu bytes)\n", (unsigned long)*lmax);
		shf_detach(shf);
		return NULL;
	}
	return shf;
}

static int copy(const char *dir, const char *name, const char *tag)
{
	size_t tl = tag ? strlen(tag) + 1 : 0, max, len;
	struct fails f = { 0 };
	unsigned long long lineno = 0;
	struct input *in = NULL;
	char *buf = NULL;
	uint32_t lmax;
	SHF *shf;
	int rc = 0, r;

	shf = copy_attach(dir, name, tl, &lmax);
	if (!shf)
		return 1;
	max = lmax - tl;
	f.max = max;
	buf = malloc(lmax);
	in = malloc(sizeof(*in));
	if (!buf || !in) {
		fprintf(stderr, "shf-log: %s\n", strerror(errno));
		rc = 1;
		goto out;
	}
	in->pos = in->end = 0;
	if (tag) {
		memcpy(buf, tag, tl - 1);
		buf[tl - 1] = ' ';
	}
	while ((r = read_line(in, buf + tl, max, &len)) > 0) {
		/* The last line may lack its newline: the log's lines all end
		 * in one, or the next writer's line would join it. */
		int nl = len <= max && buf[tl + len - 1] != '\n';

		lineno++;
		if (len + (size_t)nl > max) {
			fails_add(&f, lineno, EMSGSIZE);
			rc = 1;
			continue;
		}
		if (nl)
			buf[tl + len] = '\n';
		if (shf_log_append(shf, buf, (uint32_t)(tl + len + nl)) ==
		    SHF_RET_OK) {
			fails_end(&f, lineno, 1);
			continue;
		}
		rc = 1;
		/* No drain, and none can come: the table is gone. */
		if (errno == EPIPE && shf_log_tool_removed(shf)) {
			fails_end(&f, lineno, 0);
			fprintf(stderr, "shf-log: line %llu: %s/%s was removed "
				"and nothing drains its log: stopped\n",
				lineno, shf_esc(dir), shf_esc(name));
			goto out;
		}
		fails_add(&f, lineno, errno);
	}
	fails_end(&f, lineno, 0);
	if (r < 0) {
		fprintf(stderr, "shf-log: standard input: %s\n",
			strerror(errno));
		rc = 1;
	}
out:
	free(in);
	free(buf);
	shf_detach(shf);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "write", no_argument, NULL, 'w' },
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "delete", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = "/dev/shm", *tag = NULL;
	unsigned long size = 0;
	int mode = 0, del = 0, c;
	char *end;

	while ((c = getopt_long(argc, argv, "cwd:s:t:xh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
		case 'w':
			mode = c;
			break;
		case 'd':
			dir = optarg;
			break;
		case 's':
			errno = 0;
			size = strtoul(optarg, &end, 0);
			if (errno || *end || size > (1ul << 30)) {
				usage(stderr);
				return 2;
			}
			break;
		case 't':
			tag = optarg;
			break;
		case 'x':
			del = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	shf_init();
	if (mode == 'c' && argc - optind == 2)
		return drain(dir, argv[optind], argv[optind + 1],
			     (uint32_t)size, del);
	if (mode == 'w' && argc - optind == 1)
		return copy(dir, argv[optind], tag);
	usage(stderr);
	return 2;
}
