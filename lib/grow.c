// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * grow.c - the table file's size: it grows in steps reserved with
 * fallocate() (a full tmpfs is ENOSPC, never SIGBUS), kept ahead of use
 * and outside the shard locks; the header's size is a claim, checked
 * against the file (fstat()) before anything past what a process knew is
 * read; on tmpfs, space the file grew by is mapped (MADV_POPULATE_WRITE)
 * a piece at a time, between puts.  alloc.c hands the space out.  See
 * table.h.
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

/* The most of the file this process can use: its size, or its mapping. */
static uint64_t map_cap(const SHF *h, uint64_t x)
{
	return x < h->map_size ? x : h->map_size;
}

/* The new size claimed, and known to this process (as far as it maps). */
static void file_claim(SHF *h, uint64_t nsz)
{
	atomic_store(&h->h->file_size, nsz);
	valid_raise(h, map_cap(h, nsz));
	atomic_store(&h->claim_seen, nsz);
}

/* x rounded up to a whole number of the table's growth steps. */
static uint64_t step_up(const SHF *h, uint64_t x)
{
	return (x + h->grow_step - 1) & ~(h->grow_step - 1);
}

/*
 * A claim past the file's end (or past what this process maps), under
 * alloc_lk.  The file only grows before its claim does, so a claim past
 * the file was damaged (or the file cut): where all the space in use is
 * still inside the file, the claim comes down to the file's size, in *sz,
 * and the table grows from there again: 0.  Where the file reaches the
 * claim after all (grown since this process looked, or past its mapping),
 * what this process maps of it is known to be inside: 0.  Else records
 * were lost with the file's end: -1, EBADMSG (shf_check(3)).
 */
static int claim_mend(SHF *h, uint64_t *sz)
{
	uint64_t used = atomic_load(&h->h->file_used), real;
	struct stat st;

	if (fstat(h->fd, &st) < 0)
		return -1;
	real = (uint64_t)st.st_size;
	if (real >= *sz) {
		valid_raise(h, map_cap(h, real));
		return 0;
	}
	if (used > real) {
		errno = EBADMSG;
		return -1;
	}
	file_claim(h, real);
	*sz = real;
	return 0;
}

/*
 * Grow the file so that `need` bytes are reserved.  Under alloc_lk.  The
 * header's size is a claim: space it claims that the file does not have
 * (a damaged or truncated file) is never used (a SIGBUS later): the claim
 * is mended, or the call fails with EBADMSG.
 */
int file_reserve(SHF *h, uint64_t need)
{
	uint64_t sz = atomic_load(&h->h->file_size), nsz;

	if (need > h->map_size) {
		errno = EFBIG;
		return -1;
	}
	/* growth starts at the claimed end: the file must reach it */
	if (!range_ok(h, 0, map_cap(h, sz)) && claim_mend(h, &sz) < 0)
		return -1;
	if (need <= sz)
		return 0; /* inside what this process maps and knows (valid) */
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
 * alloc.c's CHUNK_MAX, and a growth step's), so that the puts that need
 * space find it, and the file grows between puts instead
 * (file_grow_ahead()).
 */
uint64_t grow_ahead(const SHF *h)
{
	return h->grow_step < GROW_STEP ? GROW_STEP / 2 : GROW_STEP;
}

__thread SHF *shf_grow_due SHF_TLS_IE;
__thread uint64_t shf_alloc_took SHF_TLS_IE;

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
 *    past the space in use, and more than half of the reserve is left,
 *    it maps map_piece() of it, or what shf_alloc_took says, if more
 *    (space in use far behind what it mapped is left to faults), and
 *    leaves the flag set, so that its next unlock goes on;
 *  - else, if less than grow_ahead() is reserved, it grows the file back
 *    to that, in whole steps, unless another thread holds alloc_lk (one
 *    that does is growing it, or allocating), and waits for the lock
 *    only to raise the claim once the space is reserved;
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

void file_map_grown(SHF *h)
{
	file_map_next(h, map_piece(h));
}
