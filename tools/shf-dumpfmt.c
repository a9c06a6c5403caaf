// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-dumpfmt.c - "shf load" without its messages: the dump stream read
 * into a table (see shf-dumpfmt.h).  Used by tools/shf-dump.c and by the
 * fuzz target tests/fuzz/fuzz_load.c; only public libshf.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "shf-dumpfmt.h"

static uint32_t get_u32le(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_u64le(const unsigned char *p)
{
	return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

/* Milliseconds of CLOCK_REALTIME: the clock of the table's expiry times. */
static uint64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Read len bytes into r->buf, growing the buffer only as bytes arrive (a
 * damaged length cannot make us allocate gigabytes first).  0, or -1 on a
 * short read (errno 0: end of file) or no memory (ENOMEM).
 */
static int rd(struct shf_dump_reader *r, size_t len, int hash)
{
	size_t have = 0;

	while (have < len) {
		size_t chunk = len - have, n;

		if (chunk > (1u << 20))
			chunk = 1u << 20;
		if (have + chunk > r->cap) {
			size_t nc = r->cap ? r->cap : 4096;
			char *nb;

			while (nc < have + chunk)
				nc *= 2;
			nb = realloc(r->buf, nc);
			if (!nb) {
				errno = ENOMEM;
				return -1;
			}
			r->buf = nb;
			r->cap = nc;
		}
		errno = 0;
		n = fread(r->buf + have, 1, chunk, r->f);
		have += n;
		if (n < chunk) {
			if (!ferror(r->f))
				errno = 0;
			return -1;
		}
	}
	if (hash)
		XXH3_64bits_update(r->xs, r->buf, len);
	return 0;
}

enum shf_dump_status shf_dump_open(struct shf_dump_reader *r, FILE *f)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->xs = XXH3_createState();
	if (!r->xs || XXH3_64bits_reset(r->xs) == XXH_ERROR)
		return SHF_DUMP_NOMEM;
	if (rd(r, SHF_DUMP_MAGIC_LEN, 1) < 0) {
		if (errno == ENOMEM)
			return SHF_DUMP_NOMEM;
		return SHF_DUMP_NOT_DUMP;
	}
	if (!memcmp(r->buf, SHF_DUMP_MAGIC, SHF_DUMP_MAGIC_LEN)) {
		r->v2 = 1;
	} else if (memcmp(r->buf, SHF_DUMP_MAGIC_V1, SHF_DUMP_MAGIC_LEN)) {
		errno = 0;
		return SHF_DUMP_NOT_DUMP;
	}
	return SHF_DUMP_OK;
}

void shf_dump_close(struct shf_dump_reader *r)
{
	if (r->xs)
		XXH3_freeState(r->xs);
	free(r->buf);
	r->xs = NULL;
	r->buf = NULL;
	r->cap = 0;
}

/* A short read: a read error (errno), no memory, or the end: corrupt. */
static enum shf_dump_status short_read(struct shf_dump_reader *r)
{
	if (errno == ENOMEM)
		return SHF_DUMP_NOMEM;
	if (errno)
		return SHF_DUMP_READ_ERR;
	snprintf(r->what, sizeof(r->what),
		 "truncated after %" PRIu64 " records", r->records);
	return SHF_DUMP_CORRUPT;
}

/* The end marker is read: the count, the checksum, nothing after them. */
static enum shf_dump_status load_tail(struct shf_dump_reader *r)
{
	uint64_t count, sum;

	if (rd(r, 8, 1) < 0)
		return short_read(r);
	count = get_u64le((unsigned char *)r->buf);
	sum = XXH3_64bits_digest(r->xs);
	if (rd(r, 8, 0) < 0)
		return short_read(r);
	if (get_u64le((unsigned char *)r->buf) != sum) {
		snprintf(r->what, sizeof(r->what), "checksum mismatch");
		return SHF_DUMP_CORRUPT;
	}
	if (count != r->records) {
		snprintf(r->what, sizeof(r->what),
			 "%" PRIu64
			 " records read, the end marker says %" PRIu64,
			 r->records, count);
		return SHF_DUMP_CORRUPT;
	}
	if (fgetc(r->f) != EOF) {
		snprintf(r->what, sizeof(r->what), "bytes after the checksum");
		return SHF_DUMP_CORRUPT;
	}
	return SHF_DUMP_OK;
}

enum shf_dump_status shf_dump_load(struct shf_dump_reader *r, SHF *shf,
				   void (*progress)(void *arg, uint64_t n),
				   void *arg)
{
	unsigned char hd[8];

	for (;;) {
		uint32_t klen, vlen, ttl = 0, ret;
		uint64_t expiry = 0;

		if (rd(r, 8, 0) < 0)
			return short_read(r);
		memcpy(hd, r->buf, 8);
		XXH3_64bits_update(r->xs, hd, 8);
		klen = get_u32le(hd);
		vlen = get_u32le(hd + 4);
		if (klen == SHF_DUMP_END && vlen == SHF_DUMP_END)
			return load_tail(r);
		if (klen == SHF_DUMP_END || vlen == SHF_DUMP_END) {
			snprintf(r->what, sizeof(r->what),
				 "record %" PRIu64 " has a bad length",
				 r->records + 1);
			return SHF_DUMP_CORRUPT;
		}
		if (r->v2) {
			if (rd(r, 8, 1) < 0)
				return short_read(r);
			expiry = get_u64le((unsigned char *)r->buf);
		}
		if (rd(r, (size_t)klen + vlen, 1) < 0)
			return short_read(r);
		r->records++;
		if (expiry) {
			uint64_t now = realtime_ms();

			if (expiry <= now) {
				r->expired++; /* it expired after the dump */
				if (progress)
					progress(arg, r->records);
				continue;
			}
			/* at most the longest TTL (clocks of two machines) */
			ttl = expiry - now < UINT32_MAX - 1 ?
				      (uint32_t)(expiry - now) :
				      UINT32_MAX - 1;
		}
		shf_make_hash(r->buf, klen);
		/*
		 * A version 2 record without an expiry gets none here either
		 * (not the table's default TTL); version 1 records say
		 * nothing: they get the default.
		 */
		if (r->v2)
			ret = shf_put_key_val_ttl(shf, r->buf + klen, vlen,
						  ttl);
		else
			ret = shf_put_key_val(shf, r->buf + klen, vlen);
		if (ret & SHF_RET_ERROR)
			return SHF_DUMP_PUT_ERR;
		if (progress)
			progress(arg, r->records);
	}
}
