// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-dump.c - shf dump and shf load: every key,value pair of a table as
 * one checksummed stream, and back (shf(1), DUMP FORMAT).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shf-dumpfmt.h"
#include "shf-tool.h"

/*
 * The dump stream (shf(1), DUMP FORMAT; see shf-dumpfmt.h).  Dump writes
 * version 2, which gives each record its expiry; load reads both versions.
 */

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


/* NAME [FILE] of dump and load: -1 to go on with *file ("-" if none),
 * else the exit status. */
static int name_file_args(int argc, char **argv, const char **file)
{
	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return usage_err("usage: shf %s NAME [FILE]", cli_cmd);
	*file = argc == 3 ? argv[2] : "-";
	return -1;
}

/* The magic, every record (as dump_cb() writes it), the end marker with
 * the count, and the checksum; 0, or the exit status (d->err aside). */
static int dump_walk(struct dumper *d, const char *name)
{
	unsigned char tail[24];
	int rc = 0;

	if (dump_bytes(d, SHF_DUMP_MAGIC, SHF_DUMP_MAGIC_LEN) == 0) {
		errno = 0;
		if (shf_iterate(d->shf, dump_cb, d) & SHF_RET_ERROR) {
			int e = errno;

			progress_end(&d->pg);
			say("%s: reading the table: %s", name, strerror(e));
			rc = EXIT_ERR;
		}
	}
	progress_end(&d->pg);
	if (!rc && !d->err) {
		put_u32le(tail, SHF_DUMP_END);
		put_u32le(tail + 4, SHF_DUMP_END);
		put_u64le(tail + 8, d->n);
		if (dump_bytes(d, tail, 16) == 0) {
			put_u64le(tail + 16, XXH3_64bits_digest(d->xs));
			if (fwrite(tail + 16, 1, 8, d->f) != 8)
				d->err = errno ? errno : EIO;
		}
	}
	return rc;
}

/*
 * Where a dump goes.  A new file, or a regular file that only its one
 * name links to, is written under a temporary name beside it (through a
 * symbolic link: beside the file it names) and renamed over it once
 * whole, so that a dump that fails or is interrupted leaves FILE as it
 * was (an earlier dump stays) and nothing half written under its name.
 * Where that cannot be (a device, a FIFO, a dangling link, a link to a
 * deleted file such as /dev/stdout on one, a file with other hard links,
 * a folder the caller may not write to, a name too long for the
 * temporary one), FILE is written in place as it is, and never removed;
 * a bind-mounted FILE, which rename() cannot replace, gets the temporary
 * file's bytes copied in.
 */
struct dump_out {
	const char *name; /* as given, for messages */
	char *final;      /* the regular file to rename over, or NULL */
	char *tmp;        /* the temporary file, or NULL */
};

/* Is out a file that a temporary one beside *final can replace? */
static int dump_replaceable(const char *out, struct dump_out *o,
			    struct stat *st)
{
	struct stat l, f;

	if (lstat(out, &l) < 0) {
		if (errno != ENOENT)
			return 0;
		o->final = strdup(out); /* a new file */
		st->st_mode = 0;
		return o->final != NULL;
	}
	if (stat(out, st) < 0 || !S_ISREG(st->st_mode) || st->st_nlink != 1)
		return 0;
	o->final = realpath(out, NULL);
	if (!o->final || stat(o->final, &f) < 0 || f.st_dev != st->st_dev ||
	    f.st_ino != st->st_ino) {
		free(o->final);
		o->final = NULL;
		return 0;
	}
	return 1;
}

/*
 * Is out a name that another user made in a folder that anyone may write
 * to and only owners may remove from (sticky: /dev/shm, /tmp)?  Such a
 * name (a file of theirs, readable by them after the dump; a FIFO that
 * holds the dump or hands it to them; a link to a file of the caller's)
 * is refused, as the kernel's protected_regular, protected_fifos and
 * protected_symlinks refuse it to an open; the folder's owner's names
 * are not another user's there.
 */
static int foreign_in_sticky(const char *out, const struct stat *l)
{
	struct stat d;
	const char *slash = strrchr(out, '/');
	char dir[PATH_MAX];
	size_t n;

	if (l->st_uid == geteuid())
		return 0; /* the caller's */
	n = slash ? (size_t)(slash - out) : 1;
	if (slash && n == 0)
		n = 1; /* "/name" */
	if (n >= sizeof(dir))
		return 0;
	memcpy(dir, slash ? out : ".", n);
	dir[n] = '\0';
	if (stat(dir, &d) < 0)
		return 0;
	return (d.st_mode & S_ISVTX) && (d.st_mode & S_IWOTH) &&
	       l->st_uid != d.st_uid;
}

static int dump_target_foreign(const char *out)
{
	struct stat l;

	return lstat(out, &l) == 0 && foreign_in_sticky(out, &l);
}

static FILE *dump_open(const char *out, struct dump_out *o)
{
	sigset_t stops, old;
	struct stat st;
	mode_t mask;
	size_t n;
	FILE *f;
	int fd;

	o->name = out;
	o->final = o->tmp = NULL;
	if (dump_target_foreign(out)) {
		errno = EPERM; /* "another user's name in a shared folder" */
		return NULL;
	}
	if (!dump_replaceable(out, o, &st))
		goto in_place;
	/*
	 * The file to be replaced, as dump_replaceable() saw it (made
	 * meanwhile, or named by a link of the caller's): never another
	 * user's in a sticky folder, to whom the dump would be handed.
	 */
	if (st.st_mode && foreign_in_sticky(o->final, &st)) {
		free(o->final);
		o->final = NULL;
		errno = EPERM;
		return NULL;
	}
	n = strlen(o->final) + sizeof(".shf-dump-XXXXXX");
	o->tmp = malloc(n);
	if (!o->tmp)
		goto in_place;
	snprintf(o->tmp, n, "%s.shf-dump-XXXXXX", o->final);
	/* made and noted for the signal handlers (tools/shf.c) as one step */
	cli_stop_signals(&stops);
	sigprocmask(SIG_BLOCK, &stops, &old);
	fd = mkostemp(o->tmp, O_CLOEXEC);
	if (fd >= 0)
		cli_tmp_path = o->tmp;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0)
		goto in_place; /* a folder not ours, a name too long */
	/* the mode (and owner, where we may) of the old file, or fopen()'s */
	mask = umask(0);
	umask(mask);
	if (st.st_mode && fchown(fd, st.st_uid, st.st_gid) < 0 &&
	    errno != EPERM) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	if (fchmod(fd, st.st_mode ? st.st_mode & 07777 : 0666 & ~mask) < 0 ||
	    !(f = fdopen(fd, "wb"))) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	return f;
in_place:
	if (o->tmp) {
		free(o->tmp);
		o->tmp = NULL;
	}
	free(o->final);
	o->final = NULL;
	return fopen(out, "we");
}

/* FILE could not be replaced (a bind mount): copy the dump into it. */
static int dump_copy_in(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, e = 0;
	ssize_t n = 0;

	if (in >= 0)
		out = open(to, O_WRONLY | O_TRUNC | O_CLOEXEC);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		for (ssize_t w, done = 0; done < n; done += w) {
			w = write(out, buf + done, (size_t)(n - done));
			if (w < 0) {
				n = -1;
				break;
			}
		}
	if (in < 0 || out < 0 || n < 0 || fsync(out) < 0)
		e = errno ? errno : EIO;
	if (out >= 0 && close(out) < 0 && !e)
		e = errno;
	if (in >= 0)
		close(in);
	return e;
}

/* Close the output; no half dump is left to be mistaken for a whole. */
static int dump_close(struct dumper *d, struct dump_out *o, int to_file,
		      int rc)
{
	if ((fflush(d->f) == EOF || ferror(d->f)) && !d->err)
		d->err = errno ? errno : EIO;
	if (o->tmp && !rc && !d->err && fsync(fileno(d->f)) < 0)
		d->err = errno;
	if (to_file && fclose(d->f) == EOF && !d->err)
		d->err = errno ? errno : EIO;
	if (o->tmp && !rc && !d->err && rename(o->tmp, o->final) < 0) {
		d->err = errno;
		if (d->err == EBUSY || d->err == EXDEV)
			d->err = dump_copy_in(o->tmp, o->final);
		if (!d->err)
			unlink(o->tmp);
	}
	if (d->err && !rc) {
		say("%s: %s", to_file ? o->name : "standard output",
		    strerror(d->err));
		rc = EXIT_ERR;
	}
	if (rc && o->tmp)
		unlink(o->tmp);
	cli_tmp_path = NULL;
	return rc;
}

static int do_dump(int argc, char **argv)
{
	struct dump_out o = { 0 };
	struct dumper d = { 0 };
	struct shf_stats st;
	const char *out;
	char *name;
	int to_file, rc;

	rc = name_file_args(argc, argv, &out);
	if (rc >= 0)
		return rc;
	to_file = strcmp(out, "-") != 0;
	if (!to_file && isatty(STDOUT_FILENO))
		return usage_err("refusing to write a binary dump to a terminal; "
				 "give a FILE or redirect");
	name = table_name(argv[1]);
	d.shf = table_open(name, 0);
	d.xs = XXH3_createState();
	if (!d.xs || XXH3_64bits_reset(d.xs) == XXH_ERROR) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	d.f = to_file ? dump_open(out, &o) : stdout;
	if (!d.f) {
		say("%s: %s", out, strerror(errno));
		if (o.tmp)
			unlink(o.tmp);
		cli_tmp_path = NULL;
		rc = EXIT_ERR;
	} else {
		d.pg.what = "dump";
		if (!(shf_get_stats(d.shf, &st, sizeof(st)) & SHF_RET_ERROR))
			d.pg.total = st.keys;
		rc = dump_close(&d, &o, to_file, dump_walk(&d, name));
	}
	free(o.final);
	free(o.tmp);
	XXH3_freeState(d.xs);
	shf_detach(d.shf);
	free(name);
	return rc;
}

const struct shf_cmd shf_cmd_dump = {
	.name = "dump",
	.cmd = do_dump,
	.help = "  dump NAME [FILE]           write every key,value pair (- = stdout)\n",
};

/* ---------------------------------------------------------------- load */

/*
 * The stream is read by tools/shf-dumpfmt.c, the code that the fuzz target
 * tests/fuzz/fuzz_load.c runs; here are its messages.
 */
struct loader {
	FILE *f;
	const char *src; /* the dump, for messages */
	int from_file;
	const char *name; /* the table */
	struct shf_dump_reader r;
	struct progress pg;
};

static void load_close(struct loader *l)
{
	if (l->from_file)
		fclose(l->f);
	shf_dump_close(&l->r);
}

/* Open the dump (in) and read its magic; -1 to go on, else the exit
 * status. */
static int load_open(struct loader *l, const char *in)
{
	enum shf_dump_status st;

	l->from_file = strcmp(in, "-") != 0;
	l->src = l->from_file ? in : "standard input";
	l->f = l->from_file ? fopen(in, "rbe") : stdin;
	if (!l->f) {
		say("%s: %s", in, strerror(errno));
		return EXIT_ERR;
	}
	st = shf_dump_open(&l->r, l->f);
	if (st == SHF_DUMP_NOMEM) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	if (st != SHF_DUMP_OK) {
		if (errno)
			say("%s: %s", l->src, strerror(errno));
		else
			say("%s: not a shf dump (no %s or %s magic)", l->src,
			    SHF_DUMP_MAGIC, SHF_DUMP_MAGIC_V1);
		load_close(l);
		return EXIT_ERR;
	}
	return -1;
}

static void load_progress(void *arg, uint64_t n)
{
	progress(arg, n);
}

/* Say how the load ended (st from shf_dump_load()); the exit status. */
static int load_result(struct loader *l, enum shf_dump_status st)
{
	const struct shf_dump_reader *r = &l->r;
	int e = errno; /* progress_end() may write to a terminal */

	progress_end(&l->pg);
	errno = e;
	switch (st) {
	case SHF_DUMP_OK:
		if (r->expired)
			say("%" PRIu64 " of %" PRIu64 " keys had expired since "
			    "the dump and were not loaded",
			    r->expired, r->records);
		return 0;
	case SHF_DUMP_PUT_ERR:
		say("%s: cannot put record %" PRIu64 ": %s", l->name,
		    r->records, strerror(errno));
		return EXIT_ERR;
	case SHF_DUMP_CORRUPT:
		say("%s: corrupt dump: %s; %" PRIu64 " records before the "
		    "damage were already loaded into table '%s'",
		    l->src, r->what, r->records - r->expired, l->name);
		return EXIT_NOTFOUND;
	default: /* a read error, or no memory (errno ENOMEM) */
		say("%s: %s", l->src, strerror(errno));
		return EXIT_ERR;
	}
}

static int do_load(int argc, char **argv)
{
	struct loader l = { .pg = { "load", 0, 0, 0 } };
	const char *in;
	char *name;
	SHF *shf;
	int rc;

	rc = name_file_args(argc, argv, &in);
	if (rc >= 0)
		return rc;
	rc = load_open(&l, in);
	if (rc >= 0)
		return rc;
	l.name = name = table_name(argv[1]);
	shf = table_open(name, 1);
	rc = load_result(&l, shf_dump_load(&l.r, shf, load_progress, &l.pg));
	load_close(&l);
	shf_detach(shf);
	free(name);
	return rc;
}

const struct shf_cmd shf_cmd_load = {
	.name = "load",
	.cmd = do_load,
	.help = "  load NAME [FILE]           read a dump into NAME (creates it)\n",
};
