// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf - look at and change libshf tables from the shell (see shf(1)).
 *
 *   shf [-d DIR] ls | stat | get | put | del | ttl | set | expire | dump |
 *                load | check | rm | gc | bench | demo ...
 *
 * Exit statuses: 0 done, 1 not found or problems found, 2 usage or system
 * error.  Errors are one line on stderr, "shf: CMD: what: why".
 *
 * It links the library statically (lib/libshf-internal.la) because "ls"
 * and "stat" show a table's owner, which only an internal call reads.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shf.h"
#include "shf-internal.h"

#ifndef SHF_MONITOR_PATH
#error "SHF_MONITOR_PATH must be defined by the build"
#endif
#ifndef SHF_BINDIR
#define SHF_BINDIR "/usr/bin"
#endif

#define EXIT_NOTFOUND 1
#define EXIT_ERR 2

/*
 * The dump stream (shf(1), DUMP FORMAT).  Version 2 gives each record its
 * expiry; load reads both versions.
 */
#define DUMP_MAGIC "SHFDUMP2"
#define DUMP_MAGIC_V1 "SHFDUMP1"
#define DUMP_MAGIC_LEN 8
#define DUMP_END UINT32_MAX

extern char **environ;

static const char *dir = "/dev/shm";
static int dir_set; /* -d given */
static const char *cmd = "";

/* ------------------------------------------------------------ messages */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shf: %s%s", cmd, *cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shf: %s%s", cmd, *cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see shf --help)\n");
	return EXIT_ERR;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shf [-d DIR] COMMAND [ARGS]\n"
		"Tables are files DIR/NAME.shf (DIR defaults to /dev/shm).\n"
		"\n"
		"  ls                         list the tables in DIR\n"
		"  stat NAME [--json|--prometheus]\n"
		"                             show a table's statistics\n"
		"  get NAME KEY [--hex]       print the value of KEY\n"
		"  put NAME KEY VALUE [--hex] store KEY (creates NAME if absent)\n"
		"  put NAME KEY -f FILE       ... with the bytes of FILE (- = stdin)\n"
		"      [--ttl MS]             ... expiring in MS milliseconds\n"
		"                             (0: never; default: the table's)\n"
		"  del NAME KEY [--hex]       delete KEY\n"
		"  ttl NAME KEY [--hex]       print the milliseconds KEY has left,\n"
		"                             or \"never\"\n"
		"  set NAME [--budget BYTES] [--ttl-default MS]\n"
		"                             store cache settings in NAME (creates\n"
		"                             it); BYTES may end in K, M, G or T\n"
		"  expire NAME [MAX_SLOTS]    reclaim the space of expired keys\n"
		"                             (MAX_SLOTS per shard, default 4096)\n"
		"  dump NAME [FILE]           write every key,value pair (- = stdout)\n"
		"  load NAME [FILE]           read a dump into NAME (creates it)\n"
		"  check NAME [--repair]      verify (and repair) a table\n"
		"  rm NAME                    remove a table\n"
		"  gc                         remove tables whose owner died\n"
		"  bench [ARGS]               run shf-bench\n"
		"  demo [-p PROCS] [-s SECS]  processes sharing a table, live\n"
		"\n"
		"Exit status: 0 done, 1 not found or problems found, 2 usage or\n"
		"system error.  See shf(1).\n");
}

/* ------------------------------------------------------------- helpers */

static int is_tty_err(void)
{
	static int v = -1;

	if (v < 0)
		v = isatty(STDERR_FILENO);
	return v;
}

/* "NAME" or "NAME.shf" (as ls prints it) both name the table NAME. */
static char *table_name(const char *arg)
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

static void table_err(const char *name, int e)
{
	if (e == ENOENT)
		say("table '%s' not found in %s: %s", name, dir, strerror(e));
	else if (e == EINVAL)
		say("invalid table name '%s' or directory %s: %s", name, dir,
		    strerror(e));
	else if (e == EBADMSG)
		say("table '%s' in %s is not a libshf table or is damaged: %s",
		    name, dir, strerror(e));
	else if (e == EPROTO)
		say("table '%s' in %s has another layout version: %s", name,
		    dir, strerror(e));
	else
		say("cannot attach table '%s' in %s: %s", name, dir,
		    strerror(e));
}

/* Attach NAME in dir; exits with 1 (absent) or 2 on failure. */
static SHF *table_open(const char *name, int create)
{
	SHF *shf;
	struct stat st;

	if (stat(dir, &st) < 0) {
		say("directory %s: %s", dir, strerror(errno));
		exit(EXIT_ERR);
	}
	if (!S_ISDIR(st.st_mode)) {
		say("%s: %s", dir, strerror(ENOTDIR));
		exit(EXIT_ERR);
	}
	shf = create ? shf_attach(dir, name, 0) : shf_attach_existing(dir, name);
	if (!shf) {
		int e = errno;

		table_err(name, e);
		exit(e == ENOENT ? EXIT_NOTFOUND : EXIT_ERR);
	}
	return shf;
}

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
static int parse_num(const char *s, uint64_t max, uint64_t *out)
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
static int parse_bytes(const char *s, uint64_t *out)
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
static char *arg_bytes(const char *what, const char *s, int hex, uint32_t *len)
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
static char *file_bytes(const char *path, uint32_t *len)
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
static char *beside(const char *prog)
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
static const char *monitor_path(int *from_beside)
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

static const char *errno_name_or(int e)
{
	return e ? strerror(e) : "done";
}

/* ------------------------------------------------------------ progress */

struct progress {
	const char *what;
	uint64_t total; /* 0: unknown */
	double last;
	int shown;
};

static void progress(struct progress *p, uint64_t n)
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

static void progress_end(struct progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r\033[K");
	p->shown = 0;
}

/* ------------------------------------------------------------------ ls */

/* The owner of a table: pid 0 if none; *alive 1 if it still runs. */
static void owner_of(SHF *shf, pid_t *pid, int *alive)
{
	uint64_t start = 0, now;

	*alive = 0;
	if (shf_owner_get(shf, pid, &start) < 0 || *pid <= 0) {
		*pid = 0;
		return;
	}
	now = shf_proc_start_time(*pid);
	*alive = now && now == start;
}

static const char *owner_state(pid_t pid, int alive)
{
	return !pid ? "persistent" : alive ? "live" : "orphaned";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_ls(int argc, char **argv)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;

	if (argc > 1)
		return usage_err("unexpected argument '%s'", argv[1]);
	d = opendir(dir);
	if (!d) {
		say("%s: %s", dir, strerror(errno));
		return EXIT_ERR;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l <= 4 ||
		    strcmp(de->d_name + l - 4, ".shf"))
			continue;
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 32;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				say("out of memory");
				return EXIT_ERR;
			}
			names = nn;
		}
		names[n] = strndup(de->d_name, l - 4);
		if (!names[n]) {
			say("out of memory");
			return EXIT_ERR;
		}
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	printf("%-32s %12s %14s %8s  %s\n", "NAME", "KEYS", "BYTES", "OWNER",
	       "STATE");
	for (i = 0; i < n; i++) {
		SHF *shf = shf_attach_existing(dir, names[i]);
		struct shf_stats st;
		pid_t pid;
		int alive;
		char owner[16];

		if (!shf) {
			printf("%-32s %12s %14s %8s  unreadable: %s\n", names[i],
			       "-", "-", "-", strerror(errno));
			free(names[i]);
			continue;
		}
		shf_get_stats(shf, &st, sizeof(st));
		owner_of(shf, &pid, &alive);
		if (pid)
			snprintf(owner, sizeof(owner), "%ld", (long)pid);
		else
			snprintf(owner, sizeof(owner), "-");
		printf("%-32s %12" PRIu64 " %14" PRIu64 " %8s  %s\n", names[i],
		       st.keys, st.bytes_file, owner, owner_state(pid, alive));
		shf_detach(shf);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* ---------------------------------------------------------------- stat */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void prom_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

struct stat_field {
	const char *name;
	const char *help;
	int counter; /* a Prometheus counter, else a gauge */
	uint64_t v;
};

static int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, json = 0, prom = 0;
	char *name, path[PATH_MAX + 8];
	struct shf_stats st;
	SHF *shf;
	pid_t pid;
	int alive;
	size_t i, nf;

	while ((c = getopt_long(argc, argv, "jPh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'P': prom = 1; break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf stat NAME [--json|--prometheus]");
	if (json && prom)
		return usage_err("--json and --prometheus exclude each other");
	name = table_name(argv[optind]);
	shf = table_open(name, 0);
	if (shf_get_stats(shf, &st, sizeof(st)) & SHF_RET_ERROR) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	owner_of(shf, &pid, &alive);
	snprintf(path, sizeof(path), "%s/%s.shf", dir, name);

	struct stat_field f[] = {
		{ "keys", "Live keys in the table.", 0, st.keys },
		{ "bytes_file", "Size of the table's file in bytes.", 0,
		  st.bytes_file },
		{ "bytes_used", "Bytes holding live records and indexes.", 0,
		  st.bytes_used },
		{ "bytes_free", "Bytes in free lists (garbage) waiting for reuse.",
		  0, st.bytes_free },
		{ "splits", "Index segment splits (growth events).", 1,
		  st.splits },
		{ "lock_waits", "Lock acquisitions that had to wait.", 1,
		  st.lock_waits },
		{ "recoveries", "Locks recovered from dead holders.", 1,
		  st.recoveries },
		{ "puts", "Puts done.", 1, st.puts },
		{ "dels", "Deletes done.", 1, st.dels },
		{ "shards", "Lock shards.", 0, st.shards },
		{ "fixed_key_len", "Fixed key length, 0 if variable.", 0,
		  st.fixed_key_len },
		{ "fixed_val_len", "Fixed value length, 0 if variable.", 0,
		  st.fixed_val_len },
		{ "layout", "On-disk layout version.", 0, st.layout },
		{ "ttl_default_ms",
		  "Default time to live of new values in milliseconds, 0 if none.",
		  0, st.ttl_default_ms },
		{ "byte_budget", "Byte budget of the cache, 0 if none.", 0,
		  st.byte_budget },
		{ "bytes_cached",
		  "Bytes of live records, as counted against the byte budget.", 0,
		  st.bytes_cached },
		{ "hits", "Gets that found their key.", 1, st.hits },
		{ "misses", "Gets that did not find their key.", 1, st.misses },
		{ "evictions", "Keys evicted to stay within the byte budget.", 1,
		  st.evictions },
		{ "expirations", "Expired keys whose space was reclaimed.", 1,
		  st.expirations },
		{ "leases", "Leases granted by get-or-lease.", 1, st.leases },
		{ "lease_waits", "Get-or-lease calls that waited for a lease.", 1,
		  st.lease_waits },
		{ "owner_pid",
		  "Process that removes the table when it exits, 0 if none.", 0,
		  (uint64_t)pid },
		{ "owner_alive", "1 if the owner process still runs.", 0,
		  (uint64_t)alive },
	};
	nf = sizeof(f) / sizeof(f[0]);

	if (json) {
		printf("{\"table\": ");
		json_str(stdout, name);
		printf(", \"path\": ");
		json_str(stdout, path);
		for (i = 0; i < nf; i++)
			printf(", \"%s\": %" PRIu64, f[i].name, f[i].v);
		printf(", \"state\": \"%s\"}\n", owner_state(pid, alive));
	} else if (prom) {
		for (i = 0; i < nf; i++) {
			const char *suf = f[i].counter ? "_total" : "";

			printf("# HELP libshf_%s%s %s\n", f[i].name, suf, f[i].help);
			printf("# TYPE libshf_%s%s %s\n", f[i].name, suf,
			       f[i].counter ? "counter" : "gauge");
			printf("libshf_%s%s{table=\"", f[i].name, suf);
			prom_label(stdout, name);
			printf("\"} %" PRIu64 "\n", f[i].v);
		}
	} else {
		printf("%-14s %s\n", "table", name);
		printf("%-14s %s\n", "path", path);
		for (i = 0; i < nf; i++)
			printf("%-14s %" PRIu64 "\n", f[i].name, f[i].v);
		printf("%-14s %s\n", "state", owner_state(pid, alive));
	}
	shf_detach(shf);
	free(name);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		say("standard output: %s", strerror(errno));
		return EXIT_ERR;
	}
	return 0;
}

/* -------------------------------------------------- get, put, del, ttl */

/* 0 if r says the key was found; else say why and return the exit status. */
static int found_or_say(uint32_t r, const char *name, const char *key)
{
	if (r & SHF_RET_ERROR) {
		say("%s: %s", name, strerror(errno));
		return EXIT_ERR;
	}
	if (!(r & SHF_RET_KEY_FOUND)) {
		say("key '%s' not found in table '%s'", key, name);
		return EXIT_NOTFOUND;
	}
	return 0;
}

static int cmd_kv(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hex", no_argument, NULL, 'x' },
		{ "file", required_argument, NULL, 'f' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, hex = 0, want, rc = 0, ttl_set = 0;
	const char *file = NULL;
	char *name, *key, *val = NULL;
	uint32_t klen, vlen = 0, r, ttl = 0;
	uint64_t v;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "xf:h", opts, NULL)) != -1) {
		switch (c) {
		case 'x': hex = 1; break;
		case 'f': file = optarg; break;
		case 'T':
			if (parse_num(optarg, UINT32_MAX, &v))
				return usage_err("--ttl wants milliseconds, 0 "
						 "to %" PRIu32, UINT32_MAX);
			ttl = (uint32_t)v;
			ttl_set = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (!strcmp(cmd, "put"))
		want = file ? 2 : 3;
	else
		want = 2;
	if (file && strcmp(cmd, "put"))
		return usage_err("-f is for put only");
	if (ttl_set && strcmp(cmd, "put"))
		return usage_err("--ttl is for put only");
	if (argc - optind != want)
		return usage_err("usage: shf %s NAME KEY%s [--hex]", cmd,
				 !strcmp(cmd, "put") ?
					 " VALUE|-f FILE [--ttl MS]" : "");
	name = table_name(argv[optind]);
	key = arg_bytes("key", argv[optind + 1], hex, &klen);
	if (file)
		val = file_bytes(file, &vlen);
	else if (want == 3)
		val = arg_bytes("value", argv[optind + 2], hex, &vlen);
	shf = table_open(name, !strcmp(cmd, "put"));

	shf_make_hash(key, klen);
	if (!strcmp(cmd, "put")) {
		/* Without --ttl, the table's default TTL applies. */
		if (ttl_set)
			r = shf_put_key_val_ttl(shf, val ? val : "", vlen, ttl);
		else
			r = shf_put_key_val(shf, val ? val : "", vlen);
		if (r & SHF_RET_ERROR) {
			say("%s: cannot put the key: %s", name, strerror(errno));
			rc = EXIT_ERR;
		}
	} else if (!strcmp(cmd, "del")) {
		r = shf_del_key_val(shf);
		rc = found_or_say(r, name, argv[optind + 1]);
	} else if (!strcmp(cmd, "ttl")) {
		r = shf_get_key_ttl(shf);
		rc = found_or_say(r, name, argv[optind + 1]);
		if (!rc && shf_val_long < 0) {
			printf("never\n");
		} else if (!rc) {
			printf("%ld\n", shf_val_long);
		}
		if (fflush(stdout) == EOF || ferror(stdout)) {
			say("standard output: %s", strerror(errno));
			rc = EXIT_ERR;
		}
	} else {
		r = shf_get_key_val_copy(shf);
		rc = found_or_say(r, name, argv[optind + 1]);
		if (!rc && hex) {
			for (uint32_t i = 0; i < shf_val_len; i++)
				printf("%02x", (unsigned char)shf_val[i]);
			putchar('\n');
		} else if (!rc) {
			fwrite(shf_val, 1, shf_val_len, stdout);
			/* The exact bytes in a pipe; a tidy prompt on a terminal. */
			if (isatty(STDOUT_FILENO))
				putchar('\n');
		}
		if (fflush(stdout) == EOF || ferror(stdout)) {
			say("standard output: %s", strerror(errno));
			rc = EXIT_ERR;
		}
	}
	shf_detach(shf);
	free(name);
	free(key);
	free(val);
	return rc;
}

/* ---------------------------------------------------------- set, expire */

static int cmd_set(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "budget", required_argument, NULL, 'b' },
		{ "ttl-default", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, budget_set = 0, ttl_set = 0, rc = 0;
	uint64_t budget = 0, v;
	uint32_t ttl = 0;
	struct shf_stats st;
	char *name;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_bytes(optarg, &budget))
				return usage_err("--budget wants bytes (a number, "
						 "optionally with K, M, G or T)");
			budget_set = 1;
			break;
		case 'T':
			if (parse_num(optarg, UINT32_MAX, &v))
				return usage_err("--ttl-default wants milliseconds, "
						 "0 to %" PRIu32, UINT32_MAX);
			ttl = (uint32_t)v;
			ttl_set = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf set NAME [--budget BYTES] "
				 "[--ttl-default MS]");
	if (!budget_set && !ttl_set)
		return usage_err("nothing to set: give --budget or --ttl-default");
	name = table_name(argv[optind]);
	shf = table_open(name, 1);
	if (budget_set && shf_set_byte_budget(shf, budget) & SHF_RET_ERROR) {
		say("%s: cannot set the byte budget: %s", name, strerror(errno));
		rc = EXIT_ERR;
	}
	if (!rc && ttl_set && shf_set_ttl_default(shf, ttl) & SHF_RET_ERROR) {
		say("%s: cannot set the default TTL: %s", name, strerror(errno));
		rc = EXIT_ERR;
	}
	if (!rc) {
		/* What the table holds now. */
		if (shf_get_stats(shf, &st, sizeof(st)) & SHF_RET_ERROR) {
			say("%s: %s", name, strerror(errno));
			rc = EXIT_ERR;
		} else {
			printf("%s: byte_budget %" PRIu64 ", ttl_default_ms %"
			       PRIu32 "\n", name, st.byte_budget,
			       st.ttl_default_ms);
		}
	}
	shf_detach(shf);
	free(name);
	return rc;
}

static int cmd_expire(int argc, char **argv)
{
	uint64_t max = 4096;
	char *name;
	uint32_t n;
	SHF *shf;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return usage_err("usage: shf expire NAME [MAX_SLOTS]");
	if (argc == 3 && (parse_num(argv[2], UINT32_MAX, &max) || !max))
		return usage_err("MAX_SLOTS wants 1 to %" PRIu32, UINT32_MAX);
	name = table_name(argv[1]);
	shf = table_open(name, 0);
	n = shf_expire(shf, (uint32_t)max);
	if (n == UINT32_MAX) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	printf("%s: %" PRIu32 " expired key%s reclaimed\n", name, n,
	       n == 1 ? "" : "s");
	shf_detach(shf);
	free(name);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		say("standard output: %s", strerror(errno));
		return EXIT_ERR;
	}
	return 0;
}

/* ---------------------------------------------------------------- dump */

static void put_u32le(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void put_u64le(unsigned char *p, uint64_t v)
{
	put_u32le(p, (uint32_t)v);
	put_u32le(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32le(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_u64le(const unsigned char *p)
{
	return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

struct dumper {
	FILE *f;
	SHF *shf;
	XXH3_state_t *xs;
	uint64_t n;
	int err;
	struct progress pg;
};

/* Milliseconds of CLOCK_REALTIME: the clock of the table's expiry times. */
static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int dump_bytes(struct dumper *d, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, d->f) != n) {
		d->err = errno ? errno : EIO;
		return -1;
	}
	XXH3_64bits_update(d->xs, p, n);
	return 0;
}

static int dump_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	struct dumper *d = arg;
	unsigned char hd[16];
	uint64_t expiry = 0;
	uint32_t r;

	(void)uid;
	/* The key's expiry, absolute, so that a later load keeps it. */
	shf_make_hash(key, key_len);
	r = shf_get_key_ttl(d->shf);
	if (r & SHF_RET_ERROR) {
		d->err = errno ? errno : EIO;
		return 1;
	}
	if (r != SHF_RET_KEY_FOUND)
		return 0; /* expired or deleted since the snapshot */
	if (shf_val_long >= 0)
		expiry = realtime_ms() + (uint64_t)shf_val_long;
	put_u32le(hd, key_len);
	put_u32le(hd + 4, val_len);
	put_u64le(hd + 8, expiry);
	if (dump_bytes(d, hd, 16) || dump_bytes(d, key, key_len) ||
	    dump_bytes(d, val, val_len))
		return 1;
	d->n++;
	progress(&d->pg, d->n);
	return 0;
}

static int cmd_dump(int argc, char **argv)
{
	struct dumper d = { 0 };
	struct shf_stats st;
	unsigned char tail[24];
	const char *out;
	char *name;
	SHF *shf;
	int to_file, rc = 0;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return usage_err("usage: shf dump NAME [FILE]");
	out = argc == 3 ? argv[2] : "-";
	to_file = strcmp(out, "-") != 0;
	if (!to_file && isatty(STDOUT_FILENO))
		return usage_err("refusing to write a binary dump to a terminal; "
				 "give a FILE or redirect");
	name = table_name(argv[1]);
	shf = table_open(name, 0);
	d.shf = shf;
	d.xs = XXH3_createState();
	if (!d.xs || XXH3_64bits_reset(d.xs) == XXH_ERROR) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	d.f = to_file ? fopen(out, "wbe") : stdout;
	if (!d.f) {
		say("%s: %s", out, strerror(errno));
		XXH3_freeState(d.xs);
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	d.pg.what = "dump";
	if (!(shf_get_stats(shf, &st, sizeof(st)) & SHF_RET_ERROR))
		d.pg.total = st.keys;

	if (dump_bytes(&d, DUMP_MAGIC, DUMP_MAGIC_LEN) == 0) {
		errno = 0;
		if (shf_iterate(shf, dump_cb, &d) & SHF_RET_ERROR) {
			progress_end(&d.pg);
			say("%s: reading the table: %s", name, strerror(errno));
			rc = EXIT_ERR;
		}
	}
	progress_end(&d.pg);
	if (!rc && !d.err) {
		put_u32le(tail, DUMP_END);
		put_u32le(tail + 4, DUMP_END);
		put_u64le(tail + 8, d.n);
		if (dump_bytes(&d, tail, 16) == 0) {
			put_u64le(tail + 16, XXH3_64bits_digest(d.xs));
			if (fwrite(tail + 16, 1, 8, d.f) != 8)
				d.err = errno ? errno : EIO;
		}
	}
	if ((fflush(d.f) == EOF || ferror(d.f)) && !d.err)
		d.err = errno ? errno : EIO;
	if (to_file && fclose(d.f) == EOF && !d.err)
		d.err = errno ? errno : EIO;
	if (d.err && !rc) {
		say("%s: %s", to_file ? out : "standard output",
		    strerror(d.err));
		rc = EXIT_ERR;
	}
	if (rc && to_file)
		unlink(out); /* no half dump left to be mistaken for a whole */
	XXH3_freeState(d.xs);
	shf_detach(shf);
	free(name);
	return rc;
}

/* ---------------------------------------------------------------- load */

struct loader {
	FILE *f;
	const char *src;
	XXH3_state_t *xs;
	char *buf;
	size_t cap;
};

/*
 * Read len bytes into l->buf + at, growing the buffer only as bytes
 * arrive (a damaged length cannot make us allocate gigabytes first).
 * 0, or -1 on a short read (errno 0: end of file).
 */
static int load_read(struct loader *l, size_t at, size_t len, int hash)
{
	size_t have = 0;

	while (have < len) {
		size_t chunk = len - have, n;

		if (chunk > (1u << 20))
			chunk = 1u << 20;
		if (at + have + chunk > l->cap) {
			size_t nc = l->cap ? l->cap : 4096;
			char *nb;

			while (nc < at + have + chunk)
				nc *= 2;
			nb = realloc(l->buf, nc);
			if (!nb)
				return -1;
			l->buf = nb;
			l->cap = nc;
		}
		errno = 0;
		n = fread(l->buf + at + have, 1, chunk, l->f);
		have += n;
		if (n < chunk) {
			if (!ferror(l->f))
				errno = 0;
			return -1;
		}
	}
	if (hash)
		XXH3_64bits_update(l->xs, l->buf + at, len);
	return 0;
}

static int cmd_load(int argc, char **argv)
{
	struct loader l = { 0 };
	struct progress pg = { "load", 0, 0, 0 };
	unsigned char hd[16];
	const char *in;
	char *name, what[128];
	uint64_t n = 0, count, sum, expired = 0;
	SHF *shf;
	int from_file, v2, rc = 0;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return usage_err("usage: shf load NAME [FILE]");
	in = argc == 3 ? argv[2] : "-";
	from_file = strcmp(in, "-") != 0;
	l.src = from_file ? in : "standard input";
	l.f = from_file ? fopen(in, "rbe") : stdin;
	if (!l.f) {
		say("%s: %s", in, strerror(errno));
		return EXIT_ERR;
	}
	l.xs = XXH3_createState();
	if (!l.xs || XXH3_64bits_reset(l.xs) == XXH_ERROR) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	if (load_read(&l, 0, DUMP_MAGIC_LEN, 1) < 0 ||
	    (memcmp(l.buf, DUMP_MAGIC, DUMP_MAGIC_LEN) &&
	     memcmp(l.buf, DUMP_MAGIC_V1, DUMP_MAGIC_LEN))) {
		if (errno)
			say("%s: %s", l.src, strerror(errno));
		else
			say("%s: not a shf dump (no %s or %s magic)", l.src,
			    DUMP_MAGIC, DUMP_MAGIC_V1);
		if (from_file)
			fclose(l.f);
		XXH3_freeState(l.xs);
		free(l.buf);
		return EXIT_ERR;
	}
	v2 = !memcmp(l.buf, DUMP_MAGIC, DUMP_MAGIC_LEN);
	name = table_name(argv[1]);
	shf = table_open(name, 1);
	for (;;) {
		uint32_t klen, vlen, ttl = 0, r;
		uint64_t expiry = 0;

		if (load_read(&l, 0, 8, 0) < 0)
			goto truncated;
		memcpy(hd, l.buf, 8);
		XXH3_64bits_update(l.xs, hd, 8);
		klen = get_u32le(hd);
		vlen = get_u32le(hd + 4);
		if (klen == DUMP_END && vlen == DUMP_END)
			break;
		if (klen == DUMP_END || vlen == DUMP_END) {
			snprintf(what, sizeof(what),
				 "record %" PRIu64 " has a bad length", n + 1);
			goto corrupt;
		}
		if (v2) {
			if (load_read(&l, 0, 8, 1) < 0)
				goto truncated;
			expiry = get_u64le((unsigned char *)l.buf);
		}
		if (load_read(&l, 0, (size_t)klen + vlen, 1) < 0)
			goto truncated;
		n++;
		if (expiry) {
			uint64_t now = realtime_ms();

			if (expiry <= now) {
				expired++; /* it expired after the dump */
				progress(&pg, n);
				continue;
			}
			/* at most the longest TTL (clocks of two machines) */
			ttl = expiry - now < UINT32_MAX - 1 ?
				      (uint32_t)(expiry - now) :
				      UINT32_MAX - 1;
		}
		shf_make_hash(l.buf, klen);
		/*
		 * A version 2 record without an expiry gets none here either
		 * (not the table's default TTL); version 1 records say
		 * nothing: they get the default.
		 */
		if (v2)
			r = shf_put_key_val_ttl(shf, l.buf + klen, vlen, ttl);
		else
			r = shf_put_key_val(shf, l.buf + klen, vlen);
		if (r & SHF_RET_ERROR) {
			progress_end(&pg);
			say("%s: cannot put record %" PRIu64 ": %s", name, n,
			    strerror(errno));
			rc = EXIT_ERR;
			goto out;
		}
		progress(&pg, n);
	}
	if (load_read(&l, 0, 8, 1) < 0)
		goto truncated;
	count = get_u64le((unsigned char *)l.buf);
	sum = XXH3_64bits_digest(l.xs);
	if (load_read(&l, 0, 8, 0) < 0)
		goto truncated;
	if (get_u64le((unsigned char *)l.buf) != sum) {
		snprintf(what, sizeof(what), "checksum mismatch");
		goto corrupt;
	}
	if (count != n) {
		snprintf(what, sizeof(what),
			 "%" PRIu64 " records read, the end marker says %" PRIu64,
			 n, count);
		goto corrupt;
	}
	if (fgetc(l.f) != EOF) {
		snprintf(what, sizeof(what), "bytes after the checksum");
		goto corrupt;
	}
	progress_end(&pg);
	if (expired)
		say("%" PRIu64 " of %" PRIu64 " keys had expired since the dump "
		    "and were not loaded", expired, n);
	goto out;
truncated:
	if (errno) {
		progress_end(&pg);
		say("%s: %s", l.src, strerror(errno));
		rc = EXIT_ERR;
		goto out;
	}
	snprintf(what, sizeof(what), "truncated after %" PRIu64 " records", n);
corrupt:
	progress_end(&pg);
	say("%s: corrupt dump: %s; %" PRIu64 " records before the damage were "
	    "already loaded into table '%s'", l.src, what, n - expired, name);
	rc = EXIT_NOTFOUND;
out:
	if (from_file)
		fclose(l.f);
	XXH3_freeState(l.xs);
	free(l.buf);
	shf_detach(shf);
	free(name);
	return rc;
}

/* --------------------------------------------------------------- check */

static void check_cb(const char *problem, void *arg)
{
	printf("%s: %s\n", (const char *)arg, problem);
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, repair = 0;
	uint32_t p, again;
	char *name;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "rh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': repair = 1; break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf check NAME [--repair]");
	name = table_name(argv[optind]);
	shf = table_open(name, 0);
	if (is_tty_err())
		fprintf(stderr, "shf: check: %s: checking 256 shards...", name);
	p = shf_check(shf, repair ? SHF_CHECK_REPAIR : 0, check_cb, name);
	if (is_tty_err())
		fprintf(stderr, "\r\033[K");
	fflush(stdout);
	if (p == UINT32_MAX) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	if (!p) {
		printf("%s: sound\n", name);
	} else if (!repair) {
		printf("%s: %u problem%s found (shf check --repair %s drops "
		       "what is broken)\n", name, p, p == 1 ? "" : "s", name);
	} else {
		again = shf_check(shf, 0, NULL, NULL);
		printf("%s: %u problem%s found and repaired; %s\n", name, p,
		       p == 1 ? "" : "s",
		       again == 0 ? "the table is sound now" :
				    "problems remain");
	}
	shf_detach(shf);
	free(name);
	return p ? EXIT_NOTFOUND : 0;
}

/* ------------------------------------------------------------------ rm */

static int cmd_rm(int argc, char **argv)
{
	char *name, *msg;
	SHF *shf;

	if (argc != 2)
		return usage_err("usage: shf rm NAME");
	name = table_name(argv[1]);
	shf = table_open(name, 0);
	msg = shf_del(shf);
	if (!msg) {
		say("%s: %s", name, strerror(errno));
		free(name);
		return EXIT_ERR;
	}
	printf("%s\n", msg);
	free(msg);
	free(name);
	return 0;
}

/* ------------------------------------------------------------------ gc */

static int run_wait(const char *prog, char *const argv[])
{
	pid_t pid;
	int st, e;

	e = posix_spawn(&pid, prog, NULL, NULL, argv, environ);
	if (e) {
		say("cannot run %s: %s", prog, strerror(e));
		return EXIT_ERR;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			say("waitpid: %s", strerror(errno));
			return EXIT_ERR;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		say("%s exited with status %d", prog, WEXITSTATUS(st));
	else
		say("%s killed by signal %d", prog, WTERMSIG(st));
	return EXIT_ERR;
}

static int cmd_gc(int argc, char **argv)
{
	int b, rc;
	const char *prog;

	(void)argv;
	if (argc != 1)
		return usage_err("usage: shf gc");
	prog = monitor_path(&b);
	char *const av[] = { (char *)"shf-monitor", (char *)"--sweep",
			     (char *)dir, NULL };
	rc = run_wait(prog, av);
	if (b)
		free((char *)prog);
	return rc;
}

/* --------------------------------------------------------------- bench */

static int cmd_bench(int argc, char **argv)
{
	char *prog = beside("shf-bench");
	const char *inst = SHF_BINDIR "/shf-bench";

	char **av;
	int i;

	if (!prog) {
		if (access(inst, X_OK) < 0) {
			say("shf-bench not found beside shf or in %s",
			    SHF_BINDIR);
			return EXIT_ERR;
		}
		prog = (char *)inst;
	}
	/* shf -d DIR bench ... runs shf-bench -d DIR ... */
	av = calloc((size_t)argc + 3, sizeof(*av));
	if (!av) {
		say("out of memory");
		return EXIT_ERR;
	}
	av[0] = (char *)"shf-bench";
	i = 1;
	if (dir_set) {
		av[i++] = (char *)"-d";
		av[i++] = (char *)dir;
	}
	memcpy(av + i, argv + 1, (size_t)argc * sizeof(*av));
	execv(prog, av);
	say("cannot run %s: %s", prog, strerror(errno));
	free(av);
	if (prog != inst)
		free(prog);
	return EXIT_ERR;
}

/* ---------------------------------------------------------------- demo */

#define DEMO_MAX_PROCS 64
#define DEMO_KEYS 50000u
#define DEMO_ITEM_SIZE 64u
#define DEMO_ITEMS_PER_PROC 16u

struct demo_item {
	uint64_t hops;  /* times the item moved from one worker to the next */
	int32_t last;   /* worker that moved it last */
	char note[DEMO_ITEM_SIZE - 12];
};

struct demo_worker {
	_Atomic uint64_t ops, gets, hits, foreign, puts, dels, moves;
	_Atomic int32_t pid;
	_Atomic int32_t failed;
	char pad[8];
};

struct demo_shared {
	_Atomic int stop;
	struct demo_worker w[DEMO_MAX_PROCS];
};

static volatile sig_atomic_t demo_interrupted;

static void demo_on_signal(int sig)
{
	(void)sig;
	demo_interrupted = 1;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* One worker process: random gets, puts and deletes, and the queue ring. */
static int demo_worker(SHF *inherited, const char *name, uint32_t me,
		       uint32_t procs, struct demo_shared *sh)
{
	struct demo_worker *w = &sh->w[me];
	uint32_t mine = me, next = (me + 1) % procs, held = SHF_QIID_NONE;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)getpid() << 17), ops = 0;
	uint64_t gets = 0, hits = 0, foreign = 0, puts = 0, dels = 0, moves = 0;
	char key[32], val[64], *items;
	SHF *shf;
	int len;

	atomic_store(&w->pid, (int32_t)getpid());
	/* Attach by name, as an unrelated process would. */
	shf = shf_attach_existing(dir, name);
	items = shf ? shf_q_get(shf) : NULL;
	/* All start together; the parent is a horse too. */
	shf_race_start(inherited, "start", 5, procs + 1);
	if (!shf || !items) {
		atomic_store(&w->failed, errno ? errno : EIO);
		return 1;
	}
	len = snprintf(val, sizeof(val), "worker %u (pid %ld) says hello",
		       me + 1, (long)getpid());
	shf_make_hash(key, (uint32_t)snprintf(key, sizeof(key),
					       "hello/worker-%u", me + 1));
	if (shf_put_key_val(shf, val, (uint32_t)len) & SHF_RET_ERROR) {
		atomic_store(&w->failed, errno);
		return 1;
	}
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		uint64_t r = xorshift(&rnd);
		uint32_t k = (uint32_t)(r >> 32) % DEMO_KEYS, op = (r >> 8) % 10;
		uint32_t klen = (uint32_t)snprintf(key, sizeof(key), "key-%05u", k);

		shf_make_hash(key, klen);
		if (op < 6) {
			gets++;
			if (shf_get_key_val_copy(shf) & SHF_RET_KEY_FOUND) {
				hits++;
				/* values start with the writer's number */
				if (shf_val_len >= 4 &&
				    (uint32_t)atoi(shf_val + 1) != me + 1)
					foreign++;
			}
		} else if (op < 9) {
			len = snprintf(val, sizeof(val), "w%u put this at op %llu",
				       me + 1, (unsigned long long)ops);
			if (shf_put_key_val(shf, val, (uint32_t)len) &
			    SHF_RET_ERROR) {
				atomic_store(&w->failed, errno);
				return 1;
			}
			puts++;
		} else {
			shf_del_key_val(shf);
			dels++;
		}
		ops++;
		/* Every 8th operation, pass an item on along the ring. */
		if (!(ops & 7)) {
			uint32_t got = shf_q_push_head_pull_tail(shf, next, held,
								 mine);
			if (held != SHF_QIID_NONE)
				moves++;
			held = got;
			if (got != SHF_QIID_NONE) {
				struct demo_item *it = (struct demo_item *)
					(items + (uint64_t)got * DEMO_ITEM_SIZE);

				it->hops++;
				it->last = (int32_t)me;
			}
		}
		if (!(ops & 1023)) {
			atomic_store_explicit(&w->ops, ops, memory_order_relaxed);
			atomic_store_explicit(&w->gets, gets, memory_order_relaxed);
			atomic_store_explicit(&w->hits, hits, memory_order_relaxed);
			atomic_store_explicit(&w->foreign, foreign,
					      memory_order_relaxed);
			atomic_store_explicit(&w->puts, puts, memory_order_relaxed);
			atomic_store_explicit(&w->dels, dels, memory_order_relaxed);
			atomic_store_explicit(&w->moves, moves,
					      memory_order_relaxed);
		}
	}
	if (held != SHF_QIID_NONE) {
		shf_q_push_head(shf, next, held);
		moves++;
	}
	shf_q_flush(shf, SHF_QID_NONE);
	atomic_store(&w->ops, ops);
	atomic_store(&w->gets, gets);
	atomic_store(&w->hits, hits);
	atomic_store(&w->foreign, foreign);
	atomic_store(&w->puts, puts);
	atomic_store(&w->dels, dels);
	atomic_store(&w->moves, moves);
	shf_detach(shf);
	return 0;
}

static void human(char *buf, size_t size, double v)
{
	if (v >= 1e9)
		snprintf(buf, size, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, size, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, size, "%.0fk", v / 1e3);
	else
		snprintf(buf, size, "%.0f", v);
}

static void mib(char *buf, size_t size, uint64_t b)
{
	snprintf(buf, size, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

static int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "procs", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t procs = 4, i, q_items, qid;
	double secs = 5, t0, tprev, now, elapsed;
	uint64_t prev_ops[DEMO_MAX_PROCS] = { 0 }, prev_moves = 0;
	uint64_t ops = 0, gets = 0, hits = 0, foreign = 0, puts = 0, dels = 0;
	uint64_t moves = 0, hops = 0, back = 0;
	pid_t kids[DEMO_MAX_PROCS], parent = getpid();
	struct demo_shared *sh;
	struct shf_stats st;
	struct sigaction sa;
	char name[64], path[PATH_MAX + 80], a[32], b[32];
	const char *mon;
	char *items, *end, *msg;
	int c, from_beside, owned = 1, failed = 0, tick = 0;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "p:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			errno = 0;
			procs = (uint32_t)strtoul(optarg, &end, 10);
			if (errno || *end || procs < 1 || procs > DEMO_MAX_PROCS)
				return usage_err("-p wants 1 to %d processes",
						 DEMO_MAX_PROCS);
			break;
		case 's':
			errno = 0;
			secs = strtod(optarg, &end);
			if (errno || *end || !(secs > 0 && secs <= 3600))
				return usage_err("-s wants 0 to 3600 seconds");
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);

	/* From a build tree, the library must use the monitor built beside. */
	mon = monitor_path(&from_beside);
	if (from_beside) {
		setenv("SHF_MONITOR", mon, 1);
		free((char *)mon);
		mon = getenv("SHF_MONITOR");
	}

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		say("mmap: %s", strerror(errno));
		return EXIT_ERR;
	}
	snprintf(name, sizeof(name), "demo-%ld", (long)getpid());
	snprintf(path, sizeof(path), "%s/%s.shf", dir, name);
	shf = shf_attach(dir, name, 1);
	if (!shf) {
		int e = errno;

		if (access(dir, W_OK) == 0) {
			/* Most likely no monitor: go on without the safety net. */
			fprintf(stderr,
				"shf: demo: cannot start %s (%s); the table "
				"will not be removed if the demo is killed\n",
				mon, strerror(e));
			owned = 0;
			shf = shf_attach(dir, name, 0);
		}
		if (!shf) {
			table_err(name, errno);
			return EXIT_ERR;
		}
	}
	q_items = procs * DEMO_ITEMS_PER_PROC;
	items = shf_q_new(shf, procs, q_items, DEMO_ITEM_SIZE, 1);
	if (!items) {
		say("%s: cannot make the queues: %s", name, strerror(errno));
		free(shf_del(shf));
		return EXIT_ERR;
	}
	for (i = 0; i < procs; i++) {
		snprintf(a, sizeof(a), "worker-%u", i + 1);
		shf_q_new_name(shf, a, (uint32_t)strlen(a));
	}
	shf_race_init(shf, "start", 5);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = demo_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("shf demo: %u worker process%s share%s one hash table and %u "
	       "queue%s.\n"
	       "  table  %s (%s)\n"
	       "  work   each worker gets (60%%), puts (30%%) and deletes "
	       "(10%%) random keys\n"
	       "         among %u names, and every 8th operation passes a "
	       "queue item on\n"
	       "         to the next worker (1 -> 2 -> ... -> %u -> 1) "
	       "without copying it.\n\n",
	       procs, procs == 1 ? "" : "es", procs == 1 ? "s" : "", procs,
	       procs == 1 ? "" : "s", path,
	       owned ? "removed at the end, or by shf-monitor if the demo "
		       "is killed" :
		       "removed at the end",
	       DEMO_KEYS, procs);
	fflush(stdout);

	for (i = 0; i < procs; i++) {
		kids[i] = fork();
		if (kids[i] < 0) {
			say("fork: %s", strerror(errno));
			atomic_store(&sh->stop, 1);
			procs = i;
			failed = 1;
			break;
		}
		if (kids[i] == 0) {
			signal(SIGINT, SIG_IGN); /* the parent stops us */
			/* ... or its death does: no worker outlives it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(demo_worker(shf, name, i, procs, sh));
		}
	}
	if (!failed)
		shf_race_start(shf, "start", 5, procs + 1);
	t0 = tprev = shf_get_time_in_seconds();

	printf("  time  %-*s  %9s  %8s  %10s  %s\n",
	       procs <= 8 ? (int)procs * 7 : 20, "ops/s per worker", "total",
	       "keys", "table", "queue moves/s");
	while (!failed && !demo_interrupted) {
		uint64_t tot = 0, mv = 0;
		char line[1024];
		size_t off = 0;
		double dt;

		now = shf_get_time_in_seconds();
		if (now - t0 >= secs)
			break;
		{
			double left = secs - (now - t0), step = 1.0 - (now - tprev);
			struct timespec ts;

			if (step > left)
				step = left;
			if (step > 0) {
				ts.tv_sec = (time_t)step;
				ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
			}
		}
		now = shf_get_time_in_seconds();
		dt = now - tprev;
		if (dt < 0.5 && now - t0 < secs)
			continue;
		tprev = now;
		tick++;
		for (i = 0; i < procs; i++) {
			uint64_t o = atomic_load(&sh->w[i].ops);

			if (atomic_load(&sh->w[i].failed))
				failed = 1;
			tot += o - prev_ops[i];
			if (procs <= 8) {
				human(a, sizeof(a), (double)(o - prev_ops[i]) / dt);
				off += (size_t)snprintf(line + off, sizeof(line) - off,
							"%7s", a);
			}
			prev_ops[i] = o;
			mv += atomic_load(&sh->w[i].moves);
		}
		if (procs > 8)
			off += (size_t)snprintf(line, sizeof(line), "%20s",
						"(too many to show)");
		shf_get_stats(shf, &st, sizeof(st));
		human(a, sizeof(a), (double)tot / dt);
		mib(b, sizeof(b), st.bytes_file);
		printf("  %3.0fs  %s  %9s  %8" PRIu64 "  %10s  ", now - t0,
		       line, a, st.keys, b);
		human(a, sizeof(a), (double)(mv - prev_moves) / dt);
		printf("%s\n", a);
		fflush(stdout);
		prev_moves = mv;
	}
	atomic_store(&sh->stop, 1);
	for (i = 0; i < procs; i++) {
		int ws;

		while (waitpid(kids[i], &ws, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(ws) || WEXITSTATUS(ws))
			failed = 1;
	}
	elapsed = shf_get_time_in_seconds() - t0;
	for (i = 0; i < procs; i++) {
		struct demo_worker *w = &sh->w[i];

		if (atomic_load(&w->failed))
			fprintf(stderr, "shf: demo: worker %u failed: %s\n", i + 1,
				strerror(atomic_load(&w->failed)));
		ops += atomic_load(&w->ops);
		gets += atomic_load(&w->gets);
		hits += atomic_load(&w->hits);
		foreign += atomic_load(&w->foreign);
		puts += atomic_load(&w->puts);
		dels += atomic_load(&w->dels);
		moves += atomic_load(&w->moves);
	}
	/* Every item must be back on some queue, with its hops counted. */
	for (i = 0; i < q_items; i++)
		hops += ((struct demo_item *)(items +
					      (uint64_t)i * DEMO_ITEM_SIZE))->hops;
	for (qid = 0; qid < procs; qid++)
		while (shf_q_pull_tail(shf, qid) != SHF_QIID_NONE)
			back++;
	shf_get_stats(shf, &st, sizeof(st));

	printf("\nWhat happened%s:\n", demo_interrupted ? " (interrupted)" : "");
	human(a, sizeof(a), (double)ops / elapsed);
	printf("  %u process%s shared one table for %.1f s: %" PRIu64
	       " operations, %s ops/s together\n"
	       "  (%" PRIu64 " gets, %" PRIu64 " puts, %" PRIu64
	       " deletes), with no server process in between.\n",
	       procs, procs == 1 ? "" : "es", elapsed, ops, a, gets, puts,
	       dels);
	if (hits)
		printf("  %" PRIu64 " gets found their key; %.0f%% of those "
		       "values had been written by another\n"
		       "  process: each process sees the others' writes at "
		       "once, in shared memory.\n",
		       hits, 100.0 * (double)foreign / (double)hits);
	mib(b, sizeof(b), st.bytes_file);
	printf("  The table ends with %" PRIu64 " keys in a %s file.\n",
	       st.keys, b);
	printf("  Queue items moved %" PRIu64 " times from one process to "
	       "the next, relinked, never\n"
	       "  copied; %" PRIu64 " of %u items are back on the queues "
	       "and their hop counters add\n"
	       "  up to %" PRIu64 " (%s).\n",
	       moves, back, q_items, hops,
	       back == q_items && hops == moves ? "none lost" : "MISMATCH");
	printf("  Each worker left a greeting in the table; the parent "
	       "reads them back:\n");
	for (i = 0; i < procs; i++) {
		uint32_t kl = (uint32_t)snprintf(a, sizeof(a),
						 "hello/worker-%u", i + 1);

		shf_make_hash(a, kl);
		if (shf_get_key_val_copy(shf) & SHF_RET_KEY_FOUND)
			printf("    %-16s %.*s\n", a, (int)shf_val_len, shf_val);
		else
			printf("    %-16s (missing)\n", a);
	}
	msg = shf_del(shf);
	printf("  %s%s.\n", msg ? msg : "removing the table failed: ",
	       msg ? "" : errno_name_or(errno));
	if (owned)
		printf("  Had the demo been killed, shf-monitor would have "
		       "removed it just the same.\n");
	free(msg);
	munmap(sh, sizeof(*sh));
	if (failed || back != q_items || hops != moves) {
		say("something went wrong (see above)");
		return EXIT_ERR;
	}
	return demo_interrupted ? EXIT_NOTFOUND : 0;
}

/* ---------------------------------------------------------------- main */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
	{ "ls", cmd_ls },       { "stat", cmd_stat },   { "get", cmd_kv },
	{ "put", cmd_kv },      { "del", cmd_kv },      { "ttl", cmd_kv },
	{ "set", cmd_set },     { "expire", cmd_expire }, { "dump", cmd_dump },
	{ "load", cmd_load },   { "check", cmd_check }, { "rm", cmd_rm },
	{ "gc", cmd_gc },       { "bench", cmd_bench }, { "demo", cmd_demo },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	size_t i;
	int c;

	shf_init();
	while ((c = getopt_long(argc, argv, "+d:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; dir_set = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("shf (libshf) %s\n", shf_version()); return 0;
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_ERR;
	}
	if (!strcmp(argv[optind], "help")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[optind], cmds[i].name))
			continue;
		cmd = cmds[i].name;
		argv += optind;
		argc -= optind;
		optind = 0; /* glibc: start afresh; the command parses its own */
		return cmds[i].fn(argc, argv);
	}
	fprintf(stderr, "shf: unknown command '%s' (see shf --help)\n",
		argv[optind]);
	return EXIT_ERR;
}
