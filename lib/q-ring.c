// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * q-ring.c - the queue set in a table: its region, the rings, who holds
 * which item, and giving back what dead processes held.  See
 * q-internal.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "q-internal.h"

static uint64_t q_size_align(uint64_t x)
{
	return (x + Q_ALIGN - 1) & ~(uint64_t)(Q_ALIGN - 1);
}

uint64_t q_layout(uint32_t qs, uint32_t q_items, uint32_t item_size,
		  uint64_t *rings, uint64_t *entries, uint64_t *own,
		  uint64_t *names, uint64_t *items)
{
	uint64_t off = q_size_align(sizeof(struct q_hdr));

	if (!qs || !q_items || !item_size || qs > Q_QS_MAX ||
	    q_items >= Q_TOMB ||
	    (uint64_t)qs * q_items > (1ULL << 36) ||
	    (uint64_t)q_items * item_size > (1ULL << 40)) {
		errno = EINVAL;
		return 0;
	}
	*rings = off;
	off += (uint64_t)qs * sizeof(struct q_ring);
	*entries = off;
	off += q_size_align((uint64_t)qs * q_items * 4);
	*own = off;
	off += q_size_align((uint64_t)q_items * 4);
	*names = off;
	off += q_size_align((uint64_t)qs * sizeof(struct q_name));
	/* Items keep their given size; only the array start is aligned. */
	*items = off;
	off += q_size_align((uint64_t)q_items * item_size);
	return off;
}

static uint64_t q_nonce(void)
{
	uint64_t n = 0;

	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != sizeof(n))
		n = shf_clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 40);
	return n | 1;
}

int q_set_init(SHF *shf, struct q_hdr *h, uint32_t qs, uint32_t q_items,
	       uint32_t item_size, uint32_t nolock_max)
{
	uint64_t rings, entries, own, names, items;
	uint32_t *e;
	struct q_ring *r;

	(void)shf;
	if (!q_layout(qs, q_items, item_size, &rings, &entries, &own, &names,
		      &items))
		return -1;
	__atomic_store_n(&h->lk.w, 0, __ATOMIC_RELAXED);
	h->magic = Q_MAGIC;
	h->qs = qs;
	h->q_items = q_items;
	h->q_item_size = item_size;
	h->nolock_max = nolock_max;
	h->off_rings = rings;
	h->off_entries = entries;
	h->off_own = own;
	h->off_names = names;
	h->off_items = items;
	h->names_used = 0;
	h->recoveries = h->repairs = h->checked_ms = 0;
	memset(h->slots, 0, sizeof(h->slots));
	r = (struct q_ring *)((char *)h + rings);
	memset(r, 0, (uint64_t)qs * sizeof(*r));
	memset((char *)h + own, 0, (uint64_t)q_items * 4);
	memset((char *)h + names, 0, (uint64_t)qs * sizeof(struct q_name));
	/* every item starts on queue 0 */
	e = (uint32_t *)((char *)h + entries);
	for (uint32_t i = 0; i < q_items; i++)
		e[i] = i;
	r[0].head = q_items;
	h->nonce = q_nonce();
	__atomic_store_n(&h->state, Q_READY, __ATOMIC_RELEASE);
	return 0;
}

int q_set_bind(SHF *shf, struct q_hdr *h, uint64_t size, struct q_set *s)
{
	uint64_t rings, entries, own, names, items, need;
	uint32_t qs, q_items, item_size, nolock_max;

	if (size < sizeof(*h) || h->magic != Q_MAGIC ||
	    __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != Q_READY) {
		errno = ENOENT;
		return -1;
	}
	qs = h->qs;
	q_items = h->q_items;
	item_size = h->q_item_size;
	nolock_max = h->nolock_max;
	need = q_layout(qs, q_items, item_size, &rings, &entries, &own,
			&names, &items);
	if (!need || need > size || !nolock_max || h->off_rings != rings ||
	    h->off_entries != entries || h->off_own != own ||
	    h->off_names != names || h->off_items != items) {
		errno = EBADMSG;
		return -1;
	}
	s->hdr = h;
	s->rings = (struct q_ring *)((char *)h + rings);
	s->entries = (uint32_t *)((char *)h + entries);
	s->own = (uint32_t *)((char *)h + own);
	s->names = (struct q_name *)((char *)h + names);
	s->items = (char *)h + items;
	s->nonce = h->nonce;
	s->qs = qs;
	s->q_items = q_items;
	s->item_size = item_size;
	s->nolock_max = nolock_max < q_items ? nolock_max : q_items;
	s->site = shf_handle_lock_site(shf);
	return 0;
}

static inline uint32_t *q_ring_entry(struct q_set *s, uint32_t qid,
				     uint64_t pos)
{
	return &s->entries[(uint64_t)qid * s->q_items + pos % s->q_items];
}

/* A ring's ends, read once; 0 if they cannot be (damage: repair). */
static int q_ring_ends(struct q_set *s, uint32_t qid, uint64_t *head,
		       uint64_t *tail)
{
	*head = __atomic_load_n(&s->rings[qid].head, __ATOMIC_RELAXED);
	*tail = __atomic_load_n(&s->rings[qid].tail, __ATOMIC_RELAXED);
	return *head - *tail <= s->q_items;
}

/* ---------------------------------------------------- repair, dead slots */

/*
 * Is the process of a slot alive?  Where /proc does not tell (hidepid=,
 * another user's process), it is: a slot given away while its process
 * lives would hand its items to another, and its number to a second
 * process.  A start time of 0 (its process could not read its own) is
 * compared by the pid alone.
 */
static int q_slot_alive(const struct q_slot *sl)
{
	return shf_proc_alive(__atomic_load_n(&sl->pid, __ATOMIC_RELAXED), 1,
			      sl->start);
}

/*
 * Under the lock: which items are on a ring (a bit each).  An entry that
 * is no item, or an item met a second time, becomes a tombstone; a ring
 * whose ends are impossible keeps its last q_items entries.  An item on
 * a ring whose word names a holder (a puller killed between its marks
 * and its commit, q_ring_pull()) is marked as pushed there, as
 * q_ring_unpull() marks what it puts back: the dead slot goes to another
 * process next, which must not find the item its own.
 */
static void q_scan_rings(struct q_set *s, uint8_t *on)
{
	for (uint32_t qid = 0; qid < s->qs; qid++) {
		uint64_t head, tail, pos;

		if (!q_ring_ends(s, qid, &head, &tail)) {
			tail = head - s->q_items;
			__atomic_store_n(&s->rings[qid].tail, tail,
					 __ATOMIC_RELEASE);
			s->hdr->repairs++;
		}
		for (pos = tail; pos != head; pos++) {
			uint32_t *e = q_ring_entry(s, qid, pos), x = *e;

			if (x == Q_TOMB)
				continue;
			if (x >= s->q_items || (on[x / 8] & (1u << (x % 8)))) {
				*e = Q_TOMB;
				s->hdr->repairs++;
				continue;
			}
			on[x / 8] |= (uint8_t)(1u << (x % 8));
			if (!(s->own[x] & Q_OWN_PUSH))
				s->own[x] = Q_OWN_PUSH | qid;
		}
	}
}

/*
 * Room for n more entries on ring qid, its tombstones (items taken out of
 * the middle by shf_q_take_item()) compacted away if that makes it: the
 * gaps are closed from the head down, then the tail moves up (a writer
 * killed half way leaves items twice, which q_scan_rings() drops).
 */
static int q_ring_room_for(struct q_set *s, uint32_t qid, uint32_t n)
{
	uint64_t head, tail, pos, out;

	if (!q_ring_ends(s, qid, &head, &tail))
		return 0;
	if (head - tail + n <= s->q_items)
		return 1;
	for (pos = out = head; pos != tail; pos--) {
		uint32_t x = *q_ring_entry(s, qid, pos - 1);

		if (x == Q_TOMB)
			continue;
		*q_ring_entry(s, qid, --out) = x;
	}
	__atomic_store_n(&s->rings[qid].tail, out, __ATOMIC_RELEASE);
	return head - out + n <= s->q_items;
}

/* Room for one more entry on ring qid (see q_ring_room_for()). */
static int q_ring_room(struct q_set *s, uint32_t qid)
{
	return q_ring_room_for(s, qid, 1);
}

/* Put item x (on no ring) back: as pushed to its qid, or pulled from it. */
static void q_give_back(struct q_set *s, uint32_t x, uint32_t w)
{
	uint32_t qid = Q_OWN_QID(w);
	struct q_ring *r;

	if (qid >= s->qs)
		qid = 0; /* nothing says where: the first queue */
	if (!q_ring_room(s, qid)) {
		s->hdr->repairs++; /* only damage fills a ring: it is lost */
		return;
	}
	r = &s->rings[qid];
	if (w & Q_OWN_PUSH) {
		*q_ring_entry(s, qid, r->head) = x;
		__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
	} else { /* pulled again first */
		*q_ring_entry(s, qid, r->tail - 1) = x;
		__atomic_store_n(&r->tail, r->tail - 1, __ATOMIC_RELEASE);
	}
	s->own[x] = 0;
}

/*
 * Under the lock: give back every item that is on no ring and held by no
 * live slot (dead[slot] set, or marked with no slot at all: damage), then
 * free the dead slots.  Without memory for the map, nothing happens now.
 */
static void q_reclaim(struct q_set *s, const uint8_t *dead)
{
	uint8_t *on = calloc(s->q_items / 8 + 1, 1);
	uint32_t x, given = 0;

	if (!on)
		return;
	q_scan_rings(s, on);
	for (x = 0; x < s->q_items; x++) {
		uint32_t w = s->own[x], slot = Q_OWN_SLOT(w);

		if (on[x / 8] & (1u << (x % 8)))
			continue;
		if (slot < Q_SLOTS && !dead[slot])
			continue; /* a live process has it */
		q_give_back(s, x, w);
		given++;
	}
	for (x = 0; x < Q_SLOTS; x++)
		if (dead[x])
			memset(&s->hdr->slots[x], 0, sizeof(s->hdr->slots[x]));
	if (given)
		s->hdr->recoveries++;
	free(on);
}

/* Under the lock: reclaim the slots whose processes are gone. */
static void q_reap(struct q_set *s, int always)
{
	uint8_t dead[Q_SLOTS] = { 0 };
	int any = always;

	for (uint32_t i = 0; i < Q_SLOTS; i++) {
		struct q_slot *sl = &s->hdr->slots[i];

		if (sl->pid && !q_slot_alive(sl)) {
			dead[i] = 1;
			any = 1;
		}
	}
	s->hdr->checked_ms = shf_clock_ms(CLOCK_MONOTONIC);
	if (any)
		q_reclaim(s, dead);
}

int q_lock(struct q_set *s, int look_for_dead)
{
	int r = shf_lock_take(&s->hdr->lk, s->site, &s->stuck);

	if (r < 0)
		return -1;
	if (r == 1) /* the holder died: maybe mid-move */
		q_reap(s, 1);
	else if (look_for_dead &&
		 shf_clock_ms(CLOCK_MONOTONIC) - s->hdr->checked_ms >=
			 Q_CHECK_MS)
		q_reap(s, 0);
	return 0;
}

void q_unlock(struct q_set *s)
{
	shf_lock_release(&s->hdr->lk);
}

/* ------------------------------------------------------------- slots */

int q_slot_take(struct q_set *s)
{
	pid_t me = getpid();
	uint64_t start = shf_proc_group_start_time(me);

	/* ours already (a bind through another handle): that one */
	for (uint32_t i = 0; i < Q_SLOTS; i++)
		if (s->hdr->slots[i].pid == me && s->hdr->slots[i].start == start)
			return (int)i;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < Q_SLOTS; i++) {
			struct q_slot *sl = &s->hdr->slots[i];

			if (sl->pid)
				continue;
			sl->start = start;
			__atomic_store_n(&sl->pid, me, __ATOMIC_RELEASE);
			return (int)i;
		}
		q_reap(s, 0);
	}
	errno = EUSERS;
	return -1;
}

/* ------------------------------------------------------------- moves */

int q_ring_idle(struct q_set *s, uint32_t qid)
{
	struct q_ring *r = &s->rings[qid];

	return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) ==
		       __atomic_load_n(&r->tail, __ATOMIC_RELAXED) &&
	       shf_clock_ms(CLOCK_MONOTONIC) -
			       __atomic_load_n(&s->hdr->checked_ms,
					       __ATOMIC_RELAXED) <
		       Q_CHECK_MS;
}

int q_ring_push(struct q_set *s, uint32_t qid, const uint32_t *v, uint32_t n)
{
	uint64_t head, tail;

	if (!q_ring_room_for(s, qid, n)) {
		uint8_t dead[Q_SLOTS] = { 0 };

		/* only damage fills a ring past its tombstones: mend, retry */
		q_reclaim(s, dead);
		if (!q_ring_room_for(s, qid, n)) {
			errno = EBADMSG;
			return -1;
		}
	}
	if (!q_ring_ends(s, qid, &head, &tail)) {
		errno = EBADMSG;
		return -1;
	}
	/* two copies at most: up to the ring's end, then from its start */
	{
		uint32_t *base = s->entries + (uint64_t)qid * s->q_items;
		uint32_t at = (uint32_t)(head % s->q_items);
		uint32_t first = n < s->q_items - at ? n : s->q_items - at;

		memcpy(base + at, v, (size_t)first * sizeof(*v));
		memcpy(base, v + first, (size_t)(n - first) * sizeof(*v));
	}
	/* commit: the entries are there before the head says so */
	__atomic_store_n(&s->rings[qid].head, head + n, __ATOMIC_RELEASE);
	return 0;
}

uint32_t q_ring_pull(struct q_set *s, int slot, uint32_t qid, uint32_t *v,
		     uint32_t max)
{
	uint64_t head, tail, pos;
	uint32_t n = 0, w = Q_OWN((uint32_t)slot, qid);

	if (!q_ring_ends(s, qid, &head, &tail)) {
		uint8_t dead[Q_SLOTS] = { 0 };

		q_reclaim(s, dead); /* damaged ends: mend first */
		if (!q_ring_ends(s, qid, &head, &tail))
			return 0;
	}
	/*
	 * Runs of entries up to the ring's end, then from its start: a
	 * division per run, one test per entry (tombstones, damage).  Each
	 * run takes at least one entry and none past head: bounded.
	 */
	for (pos = tail; pos != head && n < max;) {
		const uint32_t *e = s->entries + (uint64_t)qid * s->q_items;
		uint32_t items = s->q_items, *own = s->own;
		uint32_t at = (uint32_t)(pos % items);
		uint64_t want = head - pos < max - n ? head - pos : max - n;
		uint32_t run = want < items - at ? (uint32_t)want : items - at;

		e += at;
		for (uint32_t k = 0; k < run; k++) {
			uint32_t x = e[k];

			if (SHF_UNLIKELY(x >= items)) {
				/* a tombstone, or damage (dropped) */
				if (x != Q_TOMB)
					s->hdr->repairs++;
				continue;
			}
			own[x] = w;
			v[n++] = x;
		}
		pos += run;
	}
	/* commit: the items are marked as ours before they leave */
	__atomic_store_n(&s->rings[qid].tail, pos, __ATOMIC_RELEASE);
	return n;
}

int q_ring_unpull(struct q_set *s, uint32_t qid, const uint32_t *v,
		  uint32_t n)
{
	uint64_t head, tail;

	if (!q_ring_room_for(s, qid, n) || !q_ring_ends(s, qid, &head, &tail)) {
		errno = EBADMSG;
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		*q_ring_entry(s, qid, tail - n + i) = v[i];
	__atomic_store_n(&s->rings[qid].tail, tail - n, __ATOMIC_RELEASE);
	/*
	 * Held by nobody now: on ring qid (where q_ring_take() looks), so
	 * that a push of one is refused (EINVAL) as of any item on a queue.
	 * A process killed before this leaves the old words on items that
	 * are on the ring, which every reader of them checks.
	 */
	for (uint32_t i = 0; i < n; i++)
		if (v[i] < s->q_items)
			__atomic_store_n(&s->own[v[i]], Q_OWN_PUSH | qid,
					 __ATOMIC_RELAXED);
	return 0;
}

/* Where on ring qid item x is; 0 if it is not on it. */
static int q_ring_find(struct q_set *s, uint32_t qid, uint32_t x,
		       uint64_t *at)
{
	uint64_t head, tail, pos;

	if (!q_ring_ends(s, qid, &head, &tail))
		return 0;
	for (pos = tail; pos != head; pos++)
		if (*q_ring_entry(s, qid, pos) == x) {
			*at = pos;
			return 1;
		}
	return 0;
}

int q_ring_take(struct q_set *s, int slot, uint32_t x)
{
	uint32_t w = s->own[x], qid = Q_OWN_QID(w), first, last;
	uint64_t at;

	/* where it was last pushed, if the word says; else every ring */
	first = (w & Q_OWN_PUSH) && qid < s->qs ? qid : 0;
	last = (w & Q_OWN_PUSH) && qid < s->qs ? qid + 1 : s->qs;
	for (qid = first; qid < last; qid++) {
		if (!q_ring_find(s, qid, x, &at))
			continue;
		s->own[x] = Q_OWN((uint32_t)slot, qid);
		/* commit: marked as ours before it leaves its ring */
		__atomic_store_n(q_ring_entry(s, qid, at), Q_TOMB,
				 __ATOMIC_RELEASE);
		return 0;
	}
	errno = ENOENT;
	return -1;
}
