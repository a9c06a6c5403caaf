// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-dump.c - shf dump and shf load: every key,value pair of a table as
 * one checksummed stream, and back (shf(1), DUMP FORMAT).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shf-tool.h"

/*
 * The dump stream (shf(1), DUMP FORMAT).  Version 2 gives each record its
 * expiry; load reads both versions.
 */
#define DUMP_MAGIC "SHFDUMP2"
#define DUMP_MAGIC_V1 "SHFDUMP1"
#define DUMP_MAGIC_LEN 8
#define DUMP_END UINT32_MAX

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

	if (dump_bytes(d, DUMP_MAGIC, DUMP_MAGIC_LEN) == 0) {
		errno = 0;
		if (shf_iterate(d->shf, dump_cb, d) & SHF_RET_ERROR) {
			progress_end(&d->pg);
			say("%s: reading the table: %s", name, strerror(errno));
			rc = EXIT_ERR;
		}
	}
	progress_end(&d->pg);
	if (!rc && !d->err) {
		put_u32le(tail, DUMP_END);
		put_u32le(tail + 4, DUMP_END);
		put_u64le(tail + 8, d->n);
		if (dump_bytes(d, tail, 16) == 0) {
			put_u64le(tail + 16, XXH3_64bits_digest(d->xs));
			if (fwrite(tail + 16, 1, 8, d->f) != 8)
				d->err = errno ? errno : EIO;
		}
	}
	return rc;
}

/* Close the output; no half dump is left to be mistaken for a whole. */
static int dump_close(struct dumper *d, const char *out, int to_file, int rc)
{
	if ((fflush(d->f) == EOF || ferror(d->f)) && !d->err)
		d->err = errno ? errno : EIO;
	if (to_file && fclose(d->f) == EOF && !d->err)
		d->err = errno ? errno : EIO;
	if (d->err && !rc) {
		say("%s: %s", to_file ? out : "standard output",
		    strerror(d->err));
		rc = EXIT_ERR;
	}
	if (rc && to_file)
		unlink(out);
	return rc;
}

static int do_dump(int argc, char **argv)
{
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
	d.f = to_file ? fopen(out, "wbe") : stdout;
	if (!d.f) {
		say("%s: %s", out, strerror(errno));
		rc = EXIT_ERR;
	} else {
		d.pg.what = "dump";
		if (!(shf_get_stats(d.shf, &st, sizeof(st)) & SHF_RET_ERROR))
			d.pg.total = st.keys;
		rc = dump_close(&d, out, to_file, dump_walk(&d, name));
	}
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

struct loader {
	FILE *f;
	const char *src;
	int from_file;
	XXH3_state_t *xs;
	char *buf;
	size_t cap;
	int v2;			/* SHFDUMP2: records carry their expiry */
	const char *name;	/* the table */
	SHF *shf;
	uint64_t n, expired;	/* records read, and expired of those */
	struct progress pg;
	char what[128];		/* what is corrupt */
};

/* What load_record() and load_trailer() found. */
enum { LOAD_NEXT, LOAD_END, LOAD_TRUNCATED, LOAD_CORRUPT, LOAD_FAILED };

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

static void load_close(struct loader *l)
{
	if (l->from_file)
		fclose(l->f);
	XXH3_freeState(l->xs);
	free(l->buf);
}

/* Open the dump (in) and read its magic; -1 to go on, else the exit
 * status. */
static int load_open(struct loader *l, const char *in)
{
	l->from_file = strcmp(in, "-") != 0;
	l->src = l->from_file ? in : "standard input";
	l->f = l->from_file ? fopen(in, "rbe") : stdin;
	if (!l->f) {
		say("%s: %s", in, strerror(errno));
		return EXIT_ERR;
	}
	l->xs = XXH3_createState();
	if (!l->xs || XXH3_64bits_reset(l->xs) == XXH_ERROR) {
		say("out of memory");
		exit(EXIT_ERR);
	}
	if (load_read(l, 0, DUMP_MAGIC_LEN, 1) < 0 ||
	    (memcmp(l->buf, DUMP_MAGIC, DUMP_MAGIC_LEN) &&
	     memcmp(l->buf, DUMP_MAGIC_V1, DUMP_MAGIC_LEN))) {
		if (errno)
			say("%s: %s", l->src, strerror(errno));
		else
			say("%s: not a shf dump (no %s or %s magic)", l->src,
			    DUMP_MAGIC, DUMP_MAGIC_V1);
		load_close(l);
		return EXIT_ERR;
	}
	l->v2 = !memcmp(l->buf, DUMP_MAGIC, DUMP_MAGIC_LEN);
	return -1;
}

/* Put the key of l->buf (klen bytes, then the value) with its expiry. */
static int load_put(struct loader *l, uint32_t klen, uint32_t vlen,
		    uint64_t expiry)
{
	uint32_t ttl = 0, r;

	if (expiry) {
		uint64_t now = realtime_ms();

		if (expiry <= now) {
			l->expired++; /* it expired after the dump */
			return LOAD_NEXT;
		}
		/* at most the longest TTL (clocks of two machines) */
		ttl = expiry - now < UINT32_MAX - 1 ?
			      (uint32_t)(expiry - now) :
			      UINT32_MAX - 1;
	}
	shf_make_hash(l->buf, klen);
	/*
	 * A version 2 record without an expiry gets none here either (not
	 * the table's default TTL); version 1 records say nothing: they get
	 * the default.
	 */
	if (l->v2)
		r = shf_put_key_val_ttl(l->shf, l->buf + klen, vlen, ttl);
	else
		r = shf_put_key_val(l->shf, l->buf + klen, vlen);
	if (r & SHF_RET_ERROR) {
		progress_end(&l->pg);
		say("%s: cannot put record %" PRIu64 ": %s", l->name, l->n,
		    strerror(errno));
		return LOAD_FAILED;
	}
	return LOAD_NEXT;
}

/* Read the next record and put it; LOAD_END at the end marker. */
static int load_record(struct loader *l)
{
	unsigned char hd[8];
	uint32_t klen, vlen;
	uint64_t expiry = 0;

	if (load_read(l, 0, 8, 0) < 0)
		return LOAD_TRUNCATED;
	memcpy(hd, l->buf, 8);
	XXH3_64bits_update(l->xs, hd, 8);
	klen = get_u32le(hd);
	vlen = get_u32le(hd + 4);
	if (klen == DUMP_END && vlen == DUMP_END)
		return LOAD_END;
	if (klen == DUMP_END || vlen == DUMP_END) {
		snprintf(l->what, sizeof(l->what),
			 "record %" PRIu64 " has a bad length", l->n + 1);
		return LOAD_CORRUPT;
	}
	if (l->v2) {
		if (load_read(l, 0, 8, 1) < 0)
			return LOAD_TRUNCATED;
		expiry = get_u64le((unsigned char *)l->buf);
	}
	if (load_read(l, 0, (size_t)klen + vlen, 1) < 0)
		return LOAD_TRUNCATED;
	l->n++;
	return load_put(l, klen, vlen, expiry);
}

/* After the end marker: the count, the checksum, and nothing more. */
static int load_trailer(struct loader *l)
{
	uint64_t count, sum;

	if (load_read(l, 0, 8, 1) < 0)
		return LOAD_TRUNCATED;
	count = get_u64le((unsigned char *)l->buf);
	sum = XXH3_64bits_digest(l->xs);
	if (load_read(l, 0, 8, 0) < 0)
		return LOAD_TRUNCATED;
	if (get_u64le((unsigned char *)l->buf) != sum) {
		snprintf(l->what, sizeof(l->what), "checksum mismatch");
		return LOAD_CORRUPT;
	}
	if (count != l->n) {
		snprintf(l->what, sizeof(l->what),
			 "%" PRIu64 " records read, the end marker says %" PRIu64,
			 l->n, count);
		return LOAD_CORRUPT;
	}
	if (fgetc(l->f) != EOF) {
		snprintf(l->what, sizeof(l->what), "bytes after the checksum");
		return LOAD_CORRUPT;
	}
	return LOAD_END;
}

/* Say how the load ended (r from above); the exit status. */
static int load_result(struct loader *l, int r)
{
	if (r == LOAD_FAILED)
		return EXIT_ERR;
	if (r == LOAD_END) {
		progress_end(&l->pg);
		if (l->expired)
			say("%" PRIu64 " of %" PRIu64 " keys had expired since "
			    "the dump and were not loaded", l->expired, l->n);
		return 0;
	}
	if (r == LOAD_TRUNCATED && errno) {
		progress_end(&l->pg);
		say("%s: %s", l->src, strerror(errno));
		return EXIT_ERR;
	}
	if (r == LOAD_TRUNCATED)
		snprintf(l->what, sizeof(l->what),
			 "truncated after %" PRIu64 " records", l->n);
	progress_end(&l->pg);
	say("%s: corrupt dump: %s; %" PRIu64 " records before the damage were "
	    "already loaded into table '%s'", l->src, l->what,
	    l->n - l->expired, l->name);
	return EXIT_NOTFOUND;
}

static int do_load(int argc, char **argv)
{
	struct loader l = { .pg = { "load", 0, 0, 0 } };
	const char *in;
	char *name;
	int r, rc;

	rc = name_file_args(argc, argv, &in);
	if (rc >= 0)
		return rc;
	rc = load_open(&l, in);
	if (rc >= 0)
		return rc;
	l.name = name = table_name(argv[1]);
	l.shf = table_open(name, 1);
	while ((r = load_record(&l)) == LOAD_NEXT)
		progress(&l.pg, l.n);
	if (r == LOAD_END)
		r = load_trailer(&l);
	rc = load_result(&l, r);
	load_close(&l);
	shf_detach(l.shf);
	free(name);
	return rc;
}

const struct shf_cmd shf_cmd_load = {
	.name = "load",
	.cmd = do_load,
	.help = "  load NAME [FILE]           read a dump into NAME (creates it)\n",
};
