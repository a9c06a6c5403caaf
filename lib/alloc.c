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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * A page of a table that a process touches for the first time costs it a
 * page fault: 11-12 us each on a virtual machine measured (a put touches
 * a new page every hundred or so records; p99 of puts was that fault),
 * where mapping the pages of a growth step at once costs about 0.4 us a
 * page (MADV_POPULATE_WRITE, which fails with an error where a touch would
 * raise SIGBUS).  So space that the file grew by is mapped at once: by the
 * process that grew it, and by the others when they first see the new
 * size.  A process maps the space past what it mapped last (h->mapped),
 * in order (records go there first: the rest is the space kept ahead), a
 * bounded amount a call, map_piece(): when it sees the file grown, and
 * between its puts (file_grow_ahead()).  One
 * that comes back to a table grown by gigabytes does not stop to map them
 * all; it faults in what it needs before its later calls map it.  tmpfs
 * only: on a disk file system the write would dirty every page.
 */
static _Atomic int populate_off; /* the kernel has no MADV_POPULATE_WRITE */

/* Does this process map grown space at once (tmpfs, and a kernel that can)? */
static int file_maps(const SHF *h)
{
	return h->populate &&
	       !atomic_load_explicit(&populate_off, memory_order_relaxed);
}

/*
 * How long a call that maps space may take, about (MAP_CALL_NS), and how
 * much it maps at most: a put that maps pays for it.  Mapping a page cost
 * about 0.9 us on a virtual machine measured, where a table had touched
 * little memory, and 10 us once it had touched more than a gigabyte or
 * so (the host backing the guest's memory at its first touch): 32 KiB a
 * call made 8 to 12% of those calls, and of a table of 40 M keys the
 * 99.99th percentile of puts, take 50 to 200 us.  So each call's cost a
 * page is kept (a moving average), and a call maps what that average says
 * takes MAP_CALL_NS: from one page to MAP_PIECE_MAX.
 */
#define MAP_CALL_NS 20000u

static uint64_t mono_ns(void)
{
	return shf_clock_ns(CLOCK_MONOTONIC);
}

/* Map [off, off + len) now (the caller bounds len). */
static void file_populate(SHF *h, uint64_t off, uint64_t len)
{
	uint64_t end, t0, pages, pn, avg, piece;

	if (!file_maps(h) || len == 0)
		return;
	end = off + len;
	off &= ~(uint64_t)(PAGE - 1);
	if (end > h->map_size || off >= end)
		return;
	t0 = mono_ns();
	if (madvise(h->base + off, end - off, MADV_POPULATE_WRITE) < 0) {
		if (errno == EINVAL)
			atomic_store_explicit(&populate_off, 1,
					      memory_order_relaxed);
		return;
	}
	/* threads of the process may race here: any of their figures do */
	pages = (end - off + PAGE - 1) / PAGE;
	pn = (mono_ns() - t0) / pages;
	avg = atomic_load_explicit(&h->page_ns, memory_order_relaxed);
	avg = avg ? (3 * avg + pn) / 4 : pn;
	atomic_store_explicit(&h->page_ns, avg, memory_order_relaxed);
	piece = avg ? MAP_CALL_NS / avg * PAGE : MAP_PIECE_MAX;
	if (piece < PAGE)
		piece = PAGE;
	if (piece > MAP_PIECE_MAX)
		piece = MAP_PIECE_MAX;
	atomic_store_explicit(&h->map_piece, piece, memory_order_relaxed);
}

/*
 * What a call maps (file_grow_ahead(), range_ok_slow()): a step of 2 MiB
 * pages (one page-table entry), else h->map_piece (file_populate()), at
 * most MAP_PIECE_MAX.  Mapping a 64 KiB step of 4 KiB pages at once took
 * 14 us on average and over 40 us in 2% of the calls, on an Intel Xeon VM:
 * a put's 99.99th percentile was those.  Pieces of 16 KiB made its 99th
 * percentile longer (more puts map), of 32 KiB did not.
 */
static uint64_t map_piece(const SHF *h)
{
	return h->grow_step == GROW_STEP
		       ? GROW_STEP
		       : atomic_load_explicit(&h->map_piece,
					      memory_order_relaxed);
}

/*
 * Map up to len bytes past what this process mapped last, within what it
 * knows to be inside the file; a thread that finds another at it leaves
 * it to that one.  Where nothing is mapped at once, the mark just follows
 * what is known.
 */
static void file_map_next(SHF *h, uint64_t len)
{
	uint64_t m = atomic_load(&h->mapped), v = atomic_load(&h->valid), end;
	int e = errno;

	if (m >= v)
		return;
	end = file_maps(h) ? m + len : v;
	if (end > v)
		end = v;
	if (atomic_compare_exchange_strong(&h->mapped, &m, end))
		file_populate(h, m, end - m);
	errno = e;
}

/*
 * Raise valid to sz, never lower it: two threads that looked at different
 * times must not leave the older size (records in between would read as
 * outside the file), nor a claim below what a process saw (a writer killed
 * before its claim left the file longer).  Returns valid as it was.
 */
static uint64_t valid_raise(SHF *h, uint64_t sz)
{
	uint64_t was = atomic_load(&h->valid);

	while (sz > was && !atomic_compare_exchange_weak(&h->valid, &was, sz))
		;
	return was;
}

/*
 * Raise valid to the file's size if the header's claim changed since the
 * last look (fstat()); 1 if it rose, 0 if not, -1 if fstat() failed.
 */
static int file_refresh(SHF *h)
{
	uint64_t claim = atomic_load_explicit(&h->h->file_size,
					      memory_order_acquire), sz;
	struct stat st;
	int rose;

	/* the file has not grown since the last look: no need to look */
	if (claim == atomic_load_explicit(&h->claim_seen, memory_order_relaxed))
		return 0;
	if (fstat(h->fd, &st) < 0)
		return -1;
	sz = (uint64_t)st.st_size;
	if (sz > h->map_size)
		sz = h->map_size;
	rose = sz > valid_raise(h, sz);
	atomic_store_explicit(&h->claim_seen, claim, memory_order_relaxed);
	return rose;
}

/* Is [off, off+len) inside the file?  Refreshes from fstat() when needed. */
int range_ok_slow(SHF *h, uint64_t off, uint64_t len)
{
	uint64_t sz;
	int rc = file_refresh(h);

	if (rc <= 0)
		return 0;
	file_map_next(h, map_piece(h));
	sz = atomic_load(&h->valid);
	return len <= sz && off <= sz - len;
}

static int alloc_lock(SHF *h)
{
	return shf_lock_take(&h->h->alloc_lk, &h->site, &h->alloc_stuck);
}

static void alloc_unlock(SHF *h)
{
	shf_lock_release(&h->h->alloc_lk);
}

/*
 * Reserve [sz, nsz) with fallocate(), or where the file system has none,
 * with ftruncate() if truncate (which must hold alloc_lk then: another
 * thread's longer file would be cut): 0, or -1.
 */
static int file_extend(SHF *h, uint64_t sz, uint64_t nsz, int truncate)
{
	int rc;

	do
		rc = fallocate(h->fd, 0, (off_t)sz, (off_t)(nsz - sz));
	while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno == EOPNOTSUPP && truncate) /* not tmpfs */
		rc = ftruncate(h->fd, (off_t)nsz);
	return rc;
}

/* The new size claimed, and known to this process. */
static void file_claim(SHF *h, uint64_t nsz)
{
	atomic_store(&h->h->file_size, nsz);
	valid_raise(h, nsz);
	atomic_store(&h->claim_seen, nsz);
}

/* x rounded up to a whole number of the table's growth steps. */
static uint64_t step_up(const SHF *h, uint64_t x)
{
	return (x + h->grow_step - 1) & ~(h->grow_step - 1);
}

/*
 * Grow the file so that `need` bytes are reserved.  Under alloc_lk.  The
 * header's size is a claim: space it claims that the file does not have
 * (a damaged or truncated file) is EBADMSG, never a SIGBUS later.
 */
int file_reserve(SHF *h, uint64_t need)
{
	uint64_t sz = atomic_load(&h->h->file_size), nsz;

	if (need <= sz) {
		if (range_ok(h, 0, need))
			return 0;
		errno = EBADMSG;
		return -1;
	}
	/* growth starts at the claimed end: the file must reach it */
	if (!range_ok(h, 0, sz)) {
		errno = EBADMSG;
		return -1;
	}
	if (need > h->map_size) {
		errno = EFBIG;
		return -1;
	}
	nsz = step_up(h, sz + 1);
	if (nsz < need)
		nsz = step_up(h, need);
	if (nsz > h->map_size)
		nsz = need;
	if (file_extend(h, sz, nsz, 1) < 0) {
		if (errno != ENOSPC && errno != EFBIG)
			return -1;
		/* a smaller step may still fit */
		if (nsz == need || file_extend(h, sz, need, 1) < 0)
			return -1;
		nsz = need;
	}
	file_claim(h, nsz);
	return 0;
}

/*
 * The space kept reserved ahead of the bump pointer (at least a chunk's,
 * CHUNK_MAX, and a growth step's), so that the puts that need space find
 * it, and the file grows between puts instead (file_grow_ahead()).
 */
static uint64_t grow_ahead(const SHF *h)
{
	return h->grow_step < GROW_STEP ? GROW_STEP / 2 : GROW_STEP;
}

__thread SHF *shf_grow_due SHF_TLS_IE;
/*
 * Bytes of a page or more that this thread's allocations took since it
 * last mapped (shard_alloc_a(): large records, which their put writes at
 * once; not the chunks small records are cut from, which fill slowly).
 */
static __thread uint64_t shf_alloc_took SHF_TLS_IE;

/*
 * Growing the file is the one slow step of a put that makes room: about
 * 0.9 us a page on tmpfs (reserving, zeroing and mapping it).  A put that
 * grew the file under its shard's lock made the shard's other writers and
 * readers wait too, and on a tmpfs of 4 KiB pages a 2 MiB step took 300
 * to 1,000 us.  So the file keeps grow_ahead() bytes reserved past its
 * bump pointer: an allocation that leaves less sets shf_grow_due to the
 * handle, and shard_unlock(), once the shard is free, calls this.
 *
 * A call either maps or reserves, not both, so that it costs one of the
 * two (map_piece(), or a 64 KiB step, a few microseconds each):
 *  - if this process has not mapped the space up to half of grow_ahead()
 *    past the space in use, it maps map_piece() of it (space in use far
 *    behind what it mapped is left to faults), and leaves the flag set,
 *    so that its next unlock goes on;
 *  - else, if less than grow_ahead() is reserved, it grows the file back
 *    to that, in whole steps, unless another thread holds alloc_lk (one
 *    that does is growing it, or allocating: it waits for nobody);
 *  - else it maps map_piece() more of what this process knows of, if any.
 * A step of 2 MiB pages is mapped when it is reserved (one page-table
 * entry).  A failure (ENOSPC) is left to the allocation that needs the
 * space, which says so.
 */
void file_grow_ahead(SHF *h)
{
	uint64_t ahead = grow_ahead(h), sz, used, nsz = 0, m, v, want, len;
	int e = errno;

	shf_grow_due = NULL;
	m = atomic_load(&h->mapped);
	v = atomic_load(&h->valid);
	used = atomic_load(&h->h->file_used);
	sz = atomic_load(&h->h->file_size);
	want = used + ahead / 2;
	/* less than half the reserve left: grow first (a put that maps one
	 * piece while the puts take more would never get to it) */
	if (file_maps(h) && m < v && m < want && used <= v &&
	    !(used <= sz && sz - used < ahead / 2)) {
		if (want - m > ahead) {
			/* far behind: from the space in use on */
			atomic_compare_exchange_strong(
				&h->mapped, &m, used & ~(uint64_t)(PAGE - 1));
			m = atomic_load(&h->mapped);
		}
		/* a piece, or what this thread's puts took since, if more
		 * (large values): mapping keeps up with what they write */
		len = map_piece(h);
		if (shf_alloc_took > len)
			len = shf_alloc_took;
		shf_alloc_took = 0;
		file_map_next(h, len < ahead ? len : ahead);
		shf_grow_due = h;
		errno = e;
		return;
	}
	if (shf_lock_try(&h->h->alloc_lk) < 0) {
		errno = e;
		return;
	}
	sz = atomic_load(&h->h->file_size);
	used = atomic_load(&h->h->file_used);
	/* only from an end this process knows to be inside the file */
	if (used <= sz && sz - used < ahead &&
	    (sz <= atomic_load(&h->valid) ||
	     (file_refresh(h) > 0 && sz <= atomic_load(&h->valid)))) {
		nsz = step_up(h, used + ahead);
		if (nsz > h->map_size)
			nsz = h->map_size;
	}
	alloc_unlock(h);
	/*
	 * Reserved without the lock, which allocations in other shards take
	 * meanwhile (from the space still ahead): a put that needed a chunk
	 * waited, under its shard's lock, for all of a step's fallocate().
	 * Another thread may reserve the same space meanwhile (harmless:
	 * fallocate() of reserved space changes nothing); the claim is only
	 * ever raised, under the lock, which this call may wait for: it
	 * holds no other (a lock word it gives up on: the next growth's).
	 * On a file system without fallocate(), the file grows under the
	 * lock when a put needs the space (file_reserve(): ftruncate()).
	 */
	if (nsz > sz && file_extend(h, sz, nsz, 0) == 0) {
		CRASH(CP_GROWN);
		if (alloc_lock(h) < 0) {
			nsz = 0;
		} else {
			if (nsz > atomic_load(&h->h->file_size))
				file_claim(h, nsz);
			alloc_unlock(h);
		}
	}
	if (h->grow_step == GROW_STEP)
		file_map_next(h, nsz > sz ? nsz - sz : 0);
	else if (nsz <= sz)
		file_map_next(h, map_piece(h));
	/* mapping goes on at the next unlock if it is behind */
	m = atomic_load(&h->mapped);
	if (file_maps(h) && m < atomic_load(&h->valid) &&
	    m < atomic_load(&h->h->file_used) + ahead / 2)
		shf_grow_due = h;
	errno = e;
}

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
		file_map_next(h, map_piece(h));
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
