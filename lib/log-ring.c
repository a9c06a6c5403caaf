// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log-ring.c - the log's ring in a table: its region, and writing a
 * record (waiting for room while log-drain.c says a reader lives).  See
 * log-internal.h.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log-internal.h"

uint32_t log_round_size(uint32_t want)
{
	uint32_t size = LOG_SIZE_MIN;

	if (want == 0)
		return LOG_SIZE_DEFAULT;
	if (want > LOG_SIZE_MAX)
		return 0;
	while (size < want)
		size <<= 1;
	return size;
}

uint32_t log_line_max(uint32_t size)
{
	uint32_t m = size / 4 - sizeof(struct log_rec) - LOG_PREFIX_MAX - 8;

	return m < LOG_LINE_MAX ? m : LOG_LINE_MAX;
}

/*
 * Make the region a log, unless it is one or a live process is making it:
 * the maker claims it first with a word that names it (shf_claim_word()),
 * so that a maker killed half way is seen to be gone and exactly one
 * other process sets the log up again (the set-up depends only on the
 * region's size).
 */
_Static_assert(LOG_FREE == SHF_CLAIM_FREE && LOG_INIT == SHF_CLAIM_INIT,
	       "the log's states are a claim's");
static void log_init(struct log_hdr *h, uint64_t got)
{
	uint32_t st, size;

	if (shf_claim_take(&h->init_claim, &h->state, &st) < 0)
		return;
	__atomic_store_n(&h->lk.w, 0, __ATOMIC_RELAXED);
	h->magic = LOG_MAGIC;
	size = (uint32_t)(got - LOG_HDR_SIZE);
	while (size & (size - 1))
		size &= size - 1; /* round down to a power of 2 */
	h->size = size;
	h->t0_ns = log_now_ns();
	__atomic_store_n(&h->state, LOG_READY, __ATOMIC_RELEASE);
}

int log_open(SHF *shf, uint32_t size, int create, struct log_ref *ref)
{
	struct log_hdr *h = NULL;
	uint64_t got = 0;
	uint32_t rsize;

	if (!shf) {
		errno = EINVAL;
		return -1;
	}
	if (create)
		h = shf_region(shf, LOG_REGION, (uint64_t)LOG_HDR_SIZE + size,
			       1, &got);
	if (!h && (!create || errno == EEXIST))
		h = shf_region(shf, LOG_REGION, 0, 0, &got);
	if (!h)
		return -1;
	/* a damaged region table may name any offset; a log's is aligned */
	if (((uintptr_t)h & (_Alignof(struct log_hdr) - 1)) ||
	    got < LOG_HDR_SIZE + LOG_SIZE_MIN) {
		errno = EBADMSG;
		return -1;
	}
	if (create)
		log_init(h, got);
	/*
	 * Another process may be setting it up right now: give it 1 s, and
	 * now and then set it up in its place if it is gone.
	 */
	for (int i = 0; i < 1000; i++) {
		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == LOG_READY)
			break;
		if (i % 50 == 49)
			log_init(h, got);
		usleep(1000);
	}
	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != LOG_READY) {
		errno = EBUSY;
		return -1;
	}
	rsize = __atomic_load_n(&h->size, __ATOMIC_RELAXED);
	if (h->magic != LOG_MAGIC || rsize < LOG_SIZE_MIN ||
	    rsize > LOG_SIZE_MAX || (rsize & (rsize - 1)) ||
	    (uint64_t)LOG_HDR_SIZE + rsize > got) {
		errno = EBADMSG;
		return -1;
	}
	ref->shf = shf;
	ref->h = h;
	ref->size = rsize;
	return 0;
}

void log_prefix_set(const struct log_ref *r, uint32_t prefix)
{
	__atomic_store_n(&r->h->prefix, prefix, __ATOMIC_RELAXED);
}

/*
 * Under the lock: wait until rlen bytes (plus the padding to the ring's
 * end, if the record does not fit before it) are free at *w (the write
 * position, read again after each wait).  The lock is let go while it
 * sleeps, so that a drain that stalls stalls no other lock taker.  0 (the
 * lock held); -1 with errno EPIPE (no reader) or ETIMEDOUT (a reader that
 * showed no progress for LOG_STALL_MS: a process that drains nothing, or
 * not now), the line dropped and counted, the lock held; -2 with the
 * lock's errno (not held).
 */
static int log_room(const struct log_ref *r, uint64_t *w, uint32_t rlen)
{
	struct log_hdr *h = r->h;
	uint32_t size = r->size, room, last_seq = 0;
	uint64_t need, last_rd = 0, since = 0, now;
	int waited = 0;

	for (;;) {
		uint64_t rd = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
		uint32_t seq;

		if (*w - rd > size || ((*w | rd) & 7)) {
			/*
			 * Corrupt positions (apart, or off the 8-byte grid
			 * every record keeps, whose header would then cross
			 * the ring's end): start again empty, on the grid.
			 */
			*w = (rd + 7) & ~7ull;
			__atomic_store_n(&h->write_pos, *w, __ATOMIC_RELEASE);
		}
		room = size - (uint32_t)(*w & (size - 1));
		need = rlen + (room < rlen ? room : 0);
		if (size - (*w - rd) >= need)
			return 0;
		if (!log_reader_alive(r, waited)) {
			__atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
			errno = EPIPE;
			return -1;
		}
		seq = __atomic_load_n(&h->read_seq, __ATOMIC_SEQ_CST);
		now = log_now_ns();
		if (!since || rd != last_rd || seq != last_seq) {
			since = now;
			last_rd = rd;
			last_seq = seq;
		}
		/*
		 * A writer before this one gave up on the reader, which has
		 * shown no progress since: give up at once, not after another
		 * LOG_STALL_MS (each line of a stopped drain's writers).
		 */
		if ((h->stalled && h->stall_seq == seq) ||
		    now - since >= LOG_STALL_MS * 1000000ull) {
			h->stall_seq = seq;
			h->stalled = 1;
			__atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
			errno = ETIMEDOUT;
			return -1;
		}
		__atomic_store_n(&h->writers_waiting, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->read_pos, __ATOMIC_SEQ_CST) != rd)
			continue;
		shf_lock_release(&h->lk);
		shf_futex_wait(&h->read_seq, seq, LOG_WAIT_MS);
		waited = 1;
		if (log_lock(r) < 0)
			return -2;
		*w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
	}
}

int log_put(const struct log_ref *r, const char *text, uint32_t len,
	    int add_nl)
{
	char prefix[LOG_PREFIX_MAX];
	struct log_hdr *h = r->h;
	uint32_t size = r->size, nl, plen, rlen, off;
	struct log_rec *rec;
	uint64_t w;
	int rc;

	if (len > log_line_max(size)) {
		errno = EMSGSIZE;
		return -1;
	}
	nl = (add_nl && (len == 0 || text[len - 1] != '\n')) ? 1 : 0;
	/* 1: the dead owner published nothing; nothing to repair */
	if (log_lock(r) < 0)
		return -1;
	plen = log_prefix(h, prefix, sizeof(prefix));
	rlen = (uint32_t)((sizeof(*rec) + plen + len + nl + 7) & ~7ull);
	w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
	rc = log_room(r, &w, rlen);
	if (rc < 0) {
		if (rc == -1)
			shf_lock_release(&h->lk);
		return -1;
	}
	off = (uint32_t)(w & (size - 1));
	if (size - off < rlen) { /* pad to the ring's end */
		rec = (struct log_rec *)(log_data(h) + off);
		rec->len = size - off;
		rec->text_len = LOG_REC_PAD;
		w += size - off;
		off = 0;
	}
	rec = (struct log_rec *)(log_data(h) + off);
	rec->len = rlen;
	rec->text_len = plen + len + nl;
	memcpy((char *)(rec + 1), prefix, plen);
	memcpy((char *)(rec + 1) + plen, text, len);
	if (nl)
		((char *)(rec + 1))[plen + len] = '\n';
	__atomic_store_n(&h->write_pos, w + rlen, __ATOMIC_RELEASE);
	h->lines++;
	__atomic_add_fetch(&h->write_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->reader_waiting, __ATOMIC_SEQ_CST))
		shf_futex_wake(&h->write_seq, 1);
	shf_lock_release(&h->lk);
	return 0;
}
