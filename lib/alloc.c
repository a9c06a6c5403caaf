// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * alloc.c - space in a table file, which grow.c grows: page-aligned
 * extents for segments, directories and large records come from the
 * table's bump pointer and free lists by size class; each shard cuts its
 * small records from a chunk of its own and keeps free lists per class.
 * See table.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table.h"

/* Page-aligned extent of at least size bytes (size rounded to its class). */
uint64_t big_alloc(SHF *h, uint64_t size, int zero)
{
	uint32_t c;
	uint64_t b = big_bound(size, &c), off, used, grown, end;
	int rc;

	if (c >= NBIG) {
		errno = EOVERFLOW;
		return 0;
	}
	rc = alloc_lock(h);
	if (rc < 0)
		return 0;
	CRASH(CP_ALLOC_LOCKED);
	off = h->h->big_free[c];
	if (off) {
		uint64_t *p = at(h, off, b);

		if (!p || (off & (PAGE - 1)) || ld64(p) != K_FREE << 24) {
			h->h->big_free[c] = 0; /* corrupt: drop the list */
			off = 0;
		} else {
			h->h->big_free[c] = ld64(p + 1);
			alloc_unlock(h);
			if (zero)
				memset(p, 0, b);
			return off;
		}
	}
	used = atomic_load(&h->h->file_used);
	/* a damaged header: the bump pointer outside the file's data */
	if (used < h->data_start || !range_ok(h, 0, used)) {
		alloc_unlock(h);
		errno = EBADMSG;
		return 0;
	}
	used = (used + PAGE - 1) & ~(uint64_t)(PAGE - 1); /* extents: pages */
	grown = atomic_load(&h->h->file_size);
	if (file_reserve(h, used + b) < 0) {
		int e = errno;

		alloc_unlock(h);
		errno = e;
		return 0;
	}
	atomic_store(&h->h->file_used, used + b);
	end = atomic_load(&h->h->file_size);
	if (end - (used + b) < grow_ahead(h))
		shf_grow_due = h;
	alloc_unlock(h);
	/* what the file grew by, mapped here once the others may allocate */
	if (end > grown)
		file_map_grown(h);
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
	if (alloc_lock(h) < 0)
		return;
	/* marked free like a shard's free block: recovery frees it once */
	st64(p + 1, h->h->big_free[c]);
	st64(p, K_FREE << 24);
	h->h->big_free[c] = off;
	alloc_unlock(h);
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
	uint32_t *w = at(h, off, REC_MIN), link[2];
	uint64_t head = sh->free_head[c];

	if (!w)
		return;
	/*
	 * Word by word, atomically: a reader without the lock may still read
	 * what the block was (a slab directory that was given up, whose
	 * words it reads atomically) and throws away what it got if the
	 * shard changed meanwhile.  The link's halves go in the order that
	 * ldu64() reads them back.
	 */
	memcpy(link, &head, 8);
	st32(w, K_FREE << 24);
	st32(w + 1, c);
	st32(w + 2, link[0]);
	st32(w + 3, link[1]);
	barrier();
	CRASH(CP_FREE_PUSH);
	st64(&sh->free_head[c], off);
}

/*
 * The block at off, marked free, that a dead writer was pushing onto its
 * shard's list of class cls1 - 1 (its journal said so: no other block,
 * such as an extent the table handed to another shard meanwhile, is ever
 * linked here): if the push stopped half way (CP_FREE_PUSH; the shard
 * locked by its recovery), finish it.
 */
void shard_free_finish(SHF *h, struct shard *sh, uint64_t off, uint32_t cls1)
{
	uint32_t *w = (off & 3) ? NULL : at(h, off, REC_MIN), c = cls1 - 1;
	uint64_t head;

	if (!w || !cls1 || cls1 > NCLASS || w[0] != K_FREE << 24 || w[1] != c)
		return;
	head = ld64(&sh->free_head[c]);
	if (off == head || ldu64(w + 2) != head)
		return;
	st64(&sh->free_head[c], off);
	ctr_sub(&sh->bytes_used, cls_bound(c));
	ctr_add(&sh->bytes_free, cls_bound(c));
}

/*
 * Take a block of class c (bound b) from the shard's free list: its
 * offset, or 0 if there is none (8-aligned with align8).  A head that is
 * not a free block of that class inside the data area (another process
 * wrote it) drops the list: its blocks are lost, not handed out twice.
 */
static uint64_t cls_pop(SHF *h, struct shard *sh, uint32_t c, uint64_t b,
			int align8)
{
	uint64_t off = ld64(&sh->free_head[c]);
	uint32_t *w;

	if (!off)
		return 0;
	/* alignment first: a misaligned head is not even read */
	w = (off & 3) ? NULL : at(h, off, b);
	if (!w || w[0] != K_FREE << 24 || w[1] != c) {
		st64(&sh->free_head[c], 0);
		return 0;
	}
	if (align8 && (off & 7))
		return 0;
	st64(&sh->free_head[c], ldu64(w + 2));
	ctr_sub(&sh->bytes_free, b);
	ctr_add(&sh->bytes_used, b);
	return off;
}

/* Chunks are at most this big (see chunk_new()). */
#define CHUNK_MAX (256u << 10)

/* The check word of a chunk [base, end). */
static inline uint64_t chunk_mix(uint64_t base, uint64_t end)
{
	return (base * 0x9e3779b97f4a7c15ULL) ^ (end * 0xc2b2ae3d27d4eb4fULL) ^
	       0x5348465f43484b31ULL;
}

/*
 * The shard's chunk, read once: *cur and *end (0 and 0 for none).  A chunk
 * whose words do not describe one extent of the data area with the cursor
 * inside it is abandoned: no write ever goes where a damaged cursor (or
 * any one damaged word) points.
 */
static void chunk_get(SHF *h, struct shard *sh, uint64_t *cur, uint64_t *end)
{
	uint64_t c = ld64(&sh->chunk_cur), e = ld64(&sh->chunk_end);
	uint64_t b = ld64(&sh->chunk_base), sum = ld64(&sh->chunk_sum);

	if (!e || ((c | e | b) & 3) || b > c || c > e ||
	    e - b > CHUNK_MAX || sum != chunk_mix(b, e) ||
	    b < h->data_start || !range_ok(h, b, e - b)) {
		if (e || c)
			st64(&sh->chunk_end, 0); /* lost, not written over */
		c = e = 0;
	}
	*cur = c;
	*end = e;
}

/* Free the rest of a chunk (cur..end) by classes, for reuse. */
static void chunk_retire(SHF *h, struct shard *sh, uint64_t cur,
			 uint64_t end)
{
	uint64_t tail = end - cur;
	int tc;

	st64(&sh->chunk_end, cur); /* empty it first, then free its tail */
	while (tail >= REC_MIN && tail <= (1u << 20)) {
		uint64_t piece = tail > CLASS_MAX_SHARD ? CLASS_MAX_SHARD : tail,
			 pb;

		tc = cls_floor(piece);
		if (tc < 0)
			break;
		pb = cls_bound((uint32_t)tc);
		cls_push(h, sh, (uint32_t)tc, cur);
		ctr_add(&sh->bytes_free, pb);
		cur += pb;
		tail -= pb;
	}
}

/*
 * The size of a new chunk for a request of b bytes (nearly always a slab:
 * SLAB_CELLS cells of one class) in a shard that holds used bytes: of the
 * extents' sizes (big_bound(): whole pages) from b to CHUNK_MAX, the one
 * that loses least, counting the tail each chunk leaves after whole
 * requests of b bytes (cut into free blocks of classes a table may never
 * ask for) over the chunks the next used bytes take, each chunk's trip
 * through the table's allocator (counted as CHUNK_TRIP bytes), and half a
 * chunk held, on average, by the chunk being cut.  With chunks of powers
 * of two, a table of 10 M 12/8-byte pairs (slabs of 1,792 bytes) held 5%
 * of its file in tails and chunks.
 */
#define CHUNK_TRIP 256u
static uint64_t chunk_size(uint64_t used, uint64_t b)
{
	uint64_t sz, best, best_cost = ~0ULL;
	uint32_t c, i;

	best = sz = big_bound(b, &c);
	if (used > MAP_MAX)
		used = MAP_MAX; /* a damaged counter: no overflow below */
	for (i = 0; i < 64 && sz <= CHUNK_MAX; i++) {
		uint64_t cost = used * (sz % b + CHUNK_TRIP) / sz + sz / 2;

		if (cost < best_cost) {
			best = sz;
			best_cost = cost;
		}
		sz = big_bound(sz + 1, &c);
	}
	return best;
}

/* A new chunk for at least b bytes, the old one retired: 0 or -1/errno. */
static int chunk_new(SHF *h, struct shard *sh, uint64_t b, uint64_t *cur,
		     uint64_t *end)
{
	uint64_t csz = chunk_size(atomic_load(&sh->bytes_used), b), nc;

	nc = big_alloc(h, csz, 0);
	if (!nc)
		return -1;
	chunk_retire(h, sh, *cur, *end);
	/* no chunk (end 0) until the new one's words agree */
	st64(&sh->chunk_end, 0);
	st64(&sh->chunk_base, nc);
	st64(&sh->chunk_cur, nc);
	st64(&sh->chunk_sum, chunk_mix(nc, nc + csz));
	barrier();
	CRASH(CP_CHUNK);
	st64(&sh->chunk_end, nc + csz);
	*cur = nc;
	*end = nc + csz;
	return 0;
}

/*
 * size bytes, 4-aligned (8-aligned with align8, for arrays of 64-bit words),
 * from the shard's lists or chunk; 0 + errno.
 */
uint64_t shard_alloc_a(SHF *h, struct shard *sh, uint64_t size, int align8)
{
	uint64_t b, off, cur, end;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	/* whole pages (UID pages, directories) never come from a chunk: a
	 * chunk's tail would be too short for them and wasted */
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1))) {
		off = big_alloc(h, size, 0);
		if (off) {
			ctr_add(&sh->bytes_used, size);
			shf_alloc_took += size;
		}
		return off;
	}
	c = cls_of(size, &b);
	off = cls_pop(h, sh, c, b, align8);
	if (off)
		return off;
	chunk_get(h, sh, &cur, &end);
	if (align8 && (cur & 7) && cur < end) {
		cur += 4; /* 4 bytes lost */
		st64(&sh->chunk_cur, cur);
	}
	if (end - cur < b && chunk_new(h, sh, b, &cur, &end) < 0)
		return 0;
	st64(&sh->chunk_cur, cur + b);
	ctr_add(&sh->bytes_used, b);
	if (b >= PAGE)
		shf_alloc_took += b;
	return cur;
}

void shard_free(SHF *h, struct shard *sh, uint64_t off, uint64_t size)
{
	int c = free_class(size);

	if (c < 0) { /* whole pages */
		big_free(h, off, size);
		ctr_sub(&sh->bytes_used, size);
		return;
	}
	cls_push(h, sh, (uint32_t)c, off);
	ctr_sub(&sh->bytes_used, cls_bound((uint32_t)c));
	ctr_add(&sh->bytes_free, cls_bound((uint32_t)c));
}
