// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * alloc.c - space in a table file: the file grows in steps reserved with
 * fallocate() (a full tmpfs is ENOSPC, never SIGBUS); page-aligned extents
 * for segments, directories and large records come from the table's bump
 * pointer and free lists by size class; each shard cuts its small records
 * from a chunk of its own and keeps free lists per class.  See table.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table.h"

/* Is [off, off+len) inside the file?  Refreshes from fstat() when needed. */
int range_ok_slow(SHF *h, uint64_t off, uint64_t len)
{
	struct stat st;
	uint64_t sz;

	if (fstat(h->fd, &st) < 0)
		return 0;
	sz = (uint64_t)st.st_size;
	if (sz > h->map_size)
		sz = h->map_size;
	atomic_store(&h->valid, sz);
	return len <= sz && off <= sz - len;
}

/* Grow the file so that `need` bytes are reserved.  Under alloc_mx. */
int file_reserve(SHF *h, uint64_t need)
{
	uint64_t sz = atomic_load(&h->h->file_size), nsz;
	int rc;

	if (need <= sz)
		return 0;
	if (need > h->map_size) {
		errno = EFBIG;
		return -1;
	}
	nsz = sz + GROW_STEP;
	if (nsz < need)
		nsz = (need + GROW_STEP - 1) & ~(uint64_t)(GROW_STEP - 1);
	if (nsz > h->map_size)
		nsz = need;
	do
		rc = fallocate(h->fd, 0, (off_t)sz, (off_t)(nsz - sz));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		if (errno == EOPNOTSUPP) { /* not tmpfs: fall back */
			if (ftruncate(h->fd, (off_t)nsz) < 0)
				return -1;
		} else {
			if (errno != ENOSPC && errno != EFBIG)
				return -1;
			/* a smaller step may still fit */
			if (nsz == need)
				return -1;
			do
				rc = fallocate(h->fd, 0, (off_t)sz,
					       (off_t)(need - sz));
			while (rc < 0 && errno == EINTR);
			if (rc < 0)
				return -1;
			nsz = need;
		}
	}
	atomic_store(&h->h->file_size, nsz);
	atomic_store(&h->valid, nsz);
	return 0;
}

/* Page-aligned extent of at least size bytes (size rounded to its class). */
uint64_t big_alloc(SHF *h, uint64_t size, int zero)
{
	uint32_t c;
	uint64_t b = big_bound(size, &c), off, used;
	int rc;

	if (c >= NBIG) {
		errno = EOVERFLOW;
		return 0;
	}
	rc = shf_mutex_lock(&h->h->alloc_mx, &h->site);
	if (rc < 0)
		return 0;
	CRASH(CP_ALLOC_LOCKED);
	off = h->h->big_free[c];
	if (off) {
		uint64_t *p = at(h, off, b);

		if (!p || (off & (PAGE - 1))) { /* corrupt: drop the list */
			h->h->big_free[c] = 0;
			off = 0;
		} else {
			h->h->big_free[c] = ld64(p);
			shf_mutex_unlock(&h->h->alloc_mx);
			if (zero)
				memset(p, 0, b);
			return off;
		}
	}
	used = atomic_load(&h->h->file_used);
	if (used < h->h->data_start) { /* a damaged header */
		shf_mutex_unlock(&h->h->alloc_mx);
		errno = EBADMSG;
		return 0;
	}
	used = (used + PAGE - 1) & ~(uint64_t)(PAGE - 1); /* extents: pages */
	if (file_reserve(h, used + b) < 0) {
		int e = errno;

		shf_mutex_unlock(&h->h->alloc_mx);
		errno = e;
		return 0;
	}
	atomic_store(&h->h->file_used, used + b);
	shf_mutex_unlock(&h->h->alloc_mx);
	(void)zero; /* fresh file space reads as zeroes */
	return used;
}

void big_free(SHF *h, uint64_t off, uint64_t size)
{
	uint32_t c;
	uint64_t b = big_bound(size, &c);
	uint64_t *p = at(h, off, b);

	if (!p || c >= NBIG)
		return;
	if (shf_mutex_lock(&h->h->alloc_mx, &h->site) < 0)
		return;
	st64(p, h->h->big_free[c]);
	h->h->big_free[c] = off;
	shf_mutex_unlock(&h->h->alloc_mx);
}

static inline int cls_floor(uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		return -1;
	c = cls_of(size, &b);
	while (cls_bound(c) > size) {
		if (c == 0)
			return -1;
		c--;
	}
	return (int)c;
}

static void cls_push(SHF *h, struct shard *sh, uint32_t c, uint64_t off)
{
	uint32_t *w = at(h, off, REC_MIN);

	if (!w)
		return;
	w[0] = K_FREE << 24;
	w[1] = c;
	stu64(w + 2, sh->free_head[c]);
	barrier();
	CRASH(CP_FREE_PUSH);
	st64(&sh->free_head[c], off);
}

/*
 * size bytes, 4-aligned (8-aligned with align8, for arrays of 64-bit words),
 * from the shard's lists or chunk; 0 + errno.
 */
uint64_t shard_alloc_a(SHF *h, struct shard *sh, uint64_t size,
			      int align8)
{
	uint64_t b, off;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	/* whole pages (UID pages, directories) never come from a chunk: a
	 * chunk's tail would be too short for them and wasted */
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1))) {
		off = big_alloc(h, size, 0);
		if (off)
			ctr_add(&sh->bytes_used, size);
		return off;
	}
	c = cls_of(size, &b);
	off = sh->free_head[c];
	if (off) {
		uint32_t *w = at(h, off, b);

		if (w && w[0] == K_FREE << 24 && w[1] == c && !(off & 3)) {
			if (!align8 || !(off & 7)) {
				st64(&sh->free_head[c], ldu64(w + 2));
				ctr_sub(&sh->bytes_free, b);
				ctr_add(&sh->bytes_used, b);
				return off;
			}
		} else {
			st64(&sh->free_head[c], 0); /* corrupt list: drop it */
		}
	}
	if ((sh->chunk_cur | sh->chunk_end) & 3) { /* damaged: abandon it */
		st64(&sh->chunk_end, 0);
		st64(&sh->chunk_cur, 0);
	}
	if (align8 && (sh->chunk_cur & 7) && sh->chunk_cur < sh->chunk_end)
		st64(&sh->chunk_cur, sh->chunk_cur + 4); /* 4 bytes lost */
	if (sh->chunk_end - sh->chunk_cur < b || sh->chunk_cur > sh->chunk_end) {
		uint64_t used = atomic_load(&sh->bytes_used), csz, nc, tail;
		int tc;

		csz = 8192;
		while (csz < used / 32 && csz < (256u << 10))
			csz *= 2;
		while (csz < b)
			csz *= 2;
		nc = big_alloc(h, csz, 0);
		if (!nc)
			return 0;
		/* retire the old chunk: empty it first, then free its tail */
		off = sh->chunk_cur;
		tail = sh->chunk_end - sh->chunk_cur;
		st64(&sh->chunk_end, sh->chunk_cur);
		while (tail >= REC_MIN && tail <= (1u << 20)) {
			uint64_t piece = tail > CLASS_MAX_SHARD ? CLASS_MAX_SHARD : tail, pb;

			tc = cls_floor(piece);
			if (tc < 0)
				break;
			pb = cls_bound((uint32_t)tc);
			cls_push(h, sh, (uint32_t)tc, off);
			ctr_add(&sh->bytes_free, pb);
			off += pb;
			tail -= pb;
		}
		st64(&sh->chunk_end, 0);
		st64(&sh->chunk_cur, nc);
		barrier();
		CRASH(CP_CHUNK);
		st64(&sh->chunk_end, nc + csz);
	}
	off = sh->chunk_cur;
	st64(&sh->chunk_cur, off + b);
	ctr_add(&sh->bytes_used, b);
	return off;
}

void shard_free(SHF *h, struct shard *sh, uint64_t off, uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1))) {
		big_free(h, off, size);
		ctr_sub(&sh->bytes_used, size);
		return;
	}
	c = cls_of(size, &b);
	cls_push(h, sh, c, off);
	ctr_sub(&sh->bytes_used, b);
	ctr_add(&sh->bytes_free, b);
}
