// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * evict.c - cache mode's bounds: expired keys reclaimed a few slots at a
 * time by the CLOCK hand of their shard (never by a full scan under a
 * lock), and the byte budget kept by evicting keys whose use mark a get
 * did not set since the hand last passed.  store() is the put that keeps
 * the budget; write_lock() the lock a put takes.
 */
#include "config.h"
#include <errno.h>

#include "table.h"

enum sweep { SW_EXPIRED, SW_EVICT };

/*
 * Bounds of the work one put does for the budget, whatever the table's
 * words say (another process may have written them): slots the hand
 * visits to find a victim, victims evicted.
 */
#define SWEEP_EVICT_MAX (1u << 20)
#define EVICT_MAX 4096u
/*
 * Slots one put's eviction visits in all, over every shard it looks at:
 * without it a put could walk two turns of each of the 256 shards' (a
 * damaged count that no eviction brings down, directories that a damaged
 * word made deep), seconds of work.
 */
#define PUT_VISITS_MAX (2u * SWEEP_EVICT_MAX)

/*
 * The slots of a turn of a shard's hand in a directory of that depth, and
 * at most one for each 5 bytes of the file (a slot takes 64 / 12 bytes;
 * a directory whose entries name one segment over and over is walked as
 * often as it says); the file's size brought up to date first.
 */
static uint64_t sweep_turn(SHF *h, uint32_t depth)
{
	uint64_t turn = ((1ULL << depth) + 1) * SEG_SLOTS,
		 fmax;

	range_ok(h, 0, UINT64_MAX);
	fmax = atomic_load_explicit(&h->valid, memory_order_relaxed) / 5 +
	       SEG_SLOTS;
	return turn < fmax ? turn : fmax;
}

/*
 * Move the hand over at most max slots, and at most one turn of the shard.
 * SW_EXPIRED: reclaim every expired key met; returns how many.
 * SW_EVICT (max is then two turns): stop at the first victim — an
 * expired key, or one whose use mark is clear (marks met are cleared) —
 * never the key of local UID skip (UINT32_MAX: none) nor a lease still running; returns 1, or 0 if none was
 * found.  At most *left slots (left may be NULL), which it lowers.  Under
 * sh's lock.
 */
static uint32_t sweep(SHF *h, struct shard *sh, enum sweep mode,
		      uint64_t max, uint32_t skip, struct clk *c,
		      uint64_t *left)
{
	uint32_t depth, n = 0, rounds = 0;
	uint64_t i, first = 0;

	if (mode == SW_EXPIRED && !atomic_load(&h->h->ttl_used))
		return 0;
	for (i = 0; i < max; i++) {
		uint32_t *sl;
		uint64_t sv;
		struct found f;
		int exp, bad;

		/*
		 * The hand is back where this sweep's first step left it: a
		 * turn, however deep the directory says the shard is (a
		 * damaged depth would make its count of a turn billions).
		 */
		if (i > 1 && sh->hand == first &&
		    ++rounds >= (mode == SW_EVICT ? 2u : 1u))
			break;
		sl = hand_next(h, sh, &depth);
		if (!sl)
			break;
		if (i == 0) {
			uint64_t turn = sweep_turn(h, depth);

			first = sh->hand;
			if (mode == SW_EVICT)
				max = 2 * turn < SWEEP_EVICT_MAX ? 2 * turn :
								   SWEEP_EVICT_MAX;
			else if (max > turn)
				max = turn;
			if (left && max > *left)
				max = *left;
		}
		if (left)
			--*left;
		sv = slot_ld(sl);
		if (!sv || slot_ul(sv) == skip)
			continue;
		if (mode == SW_EVICT && (sv & SLOT_REF)) {
			slot_ref_clear(sl);
			continue;
		}
		f.rec_off = uid_find(h, sh, slot_ul(sv), &f.r, &bad);
		if (!f.rec_off)
			continue;
		exp = rec_expired(&f.r, c);
		if (!exp && (mode == SW_EXPIRED || (f.r.flags & KF_LEASE)))
			continue;
		/*
		 * The key's own slot only: a copy of it that another process
		 * wrote elsewhere (found by an audit) had the key's cell freed
		 * while its slot still named it, and given to the next key.
		 */
		if (!idx_slot_is(h, sh, &f.r, f.rec_off, sl))
			continue;
		f.slot = sl;
		f.sval = sv;
		delete_found(h, sh, &f);
		if (exp)
			ctr_add(&sh->expirations, 1);
		else
			ctr_add(&sh->evictions, 1);
		n++;
		if (mode == SW_EVICT)
			break;
	}
	return n;
}

/* Slots a put's hand visits to reclaim expired keys. */
#define PUT_SWEEP 8

static __thread uint32_t evict_rot SHF_TLS_IE;

/*
 * Before a put adds need (> 0) bytes of records, under sh's lock: reserve
 * them in the table's count, then evict until the count is within the
 * budget — from sh first, then from other shards whose lock is free.  If
 * nothing can be evicted the put goes ahead over the budget (by its own
 * entry at most).  The count is only ever raised before a change and
 * lowered after it, so a writer killed in between leaves it too high
 * (the table then holds a little less than its budget), never too low.
 */
static void budget_reserve(SHF *h, struct shard *sh, uint64_t budget,
			   int64_t need, uint32_t skip, struct clk *c)
{
	uint32_t si = (uint32_t)(sh - h->shards), i, start, n = 0;
	uint64_t left = PUT_VISITS_MAX;

	atomic_fetch_add(&h->h->cache_bytes, (uint64_t)need);
	while (atomic_load(&h->h->cache_bytes) > budget && n < EVICT_MAX &&
	       left && sweep(h, sh, SW_EVICT, 1, skip, c, &left))
		n++;
	start = ++evict_rot;
	for (i = 0; i < NSHARDS - 1 && n < EVICT_MAX && left &&
		    atomic_load(&h->h->cache_bytes) > budget; i++) {
		struct shard *t = &h->shards[(si + 1 + (start + i) %
					      (NSHARDS - 1)) % NSHARDS];

		if (!atomic_load(&t->nkeys) || shard_trylock(h, t) < 0)
			continue;
		while (atomic_load(&h->h->cache_bytes) > budget &&
		       n < EVICT_MAX && left &&
		       sweep(h, t, SW_EVICT, 1, UINT32_MAX, c, &left))
			n++;
		shard_unlock(h, t);
	}
}

uint64_t ttl_expiry(SHF *h, uint32_t ttl_ms, struct clk *c,
				  uint32_t *kflags)
{
	if (!ttl_ms) {
		*kflags = 0;
		return 0;
	}
	*kflags = KF_TTL;
	if (SHF_UNLIKELY(!atomic_load_explicit(&h->h->ttl_used,
					       memory_order_relaxed)))
		atomic_store(&h->h->ttl_used, 1);
	return clk_now(c) + ttl_ms;
}

/*
 * Store (key of tls, val) in sh (locked): over the found record if found
 * (keeping its UID), else as a new key; with kflags/expiry.  Keeps the
 * budget.  0 (*ul set), or -1 with errno.
 */
int store(SHF *h, struct shard *sh, struct found *f, int found,
		 uint64_t hash, const void *val, uint32_t vlen,
		 uint32_t kflags, uint64_t expiry, struct clk *c,
		 uint32_t *ul)
{
	uint64_t budget = atomic_load_explicit(&h->h->byte_budget,
					       memory_order_relaxed);
	int64_t need = 0;
	uint32_t hlen, kind;
	int rc;

	if (budget) {
		/* what the record stored will cost: a replace may go home
		 * or elsewhere, whose headers differ */
		need = (int64_t)rec_cost(
			found ? replace_size(h, sh, f, vlen, kflags) :
				rec_size_new(h, shf_tls.key_len, vlen, kflags,
					     &hlen, &kind));
		if (found)
			need -= (int64_t)rec_cost(f->r.size);
		if (need > 0)
			budget_reserve(h, sh, budget, need,
				       found ? f->r.uid : UINT32_MAX, c);
	}
	if (found) {
		rc = replace_rec(h, sh, f, val, vlen, 0, NULL, NULL, NULL, kflags,
				 expiry);
		*ul = f->r.uid;
	} else {
		rc = insert_new(h, sh, hash, shf_tls.key, shf_tls.key_len, val, vlen,
				kflags, expiry, ul);
	}
	if (rc < 0 && need > 0) {
		int e = errno;

		cache_bytes_sub(h->h, (uint64_t)need);
		errno = e;
	} else if (rc >= 0 && need < 0) {
		cache_bytes_sub(h->h, (uint64_t)-need);
	}
	return rc < 0 ? -1 : 0;
}

/* Lock a key's shard for a write; reclaim a few expired keys first. */
int write_lock(SHF *h, struct shard *sh, struct clk *c)
{
	if (shard_lock(h, sh) < 0)
		return -1;
	if (SHF_UNLIKELY(atomic_load_explicit(&h->h->ttl_used,
					      memory_order_relaxed)))
		sweep(h, sh, SW_EXPIRED, PUT_SWEEP, UINT32_MAX, c, NULL);
	return 0;
}

SHF_EXPORT uint32_t shf_set_ttl_default(SHF *h, uint32_t ttl_ms)
{
	if (!h) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (ttl_ms)
		atomic_store(&h->h->ttl_used, 1);
	atomic_store(&h->h->ttl_default, ttl_ms);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_set_byte_budget(SHF *h, uint64_t bytes)
{
	uint32_t n;
	int e;

	if (!h) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	n = lock_all(h);
	if (n < NSHARDS) {
		e = errno;
		unlock_all(h, n);
		errno = e;
		return SHF_RET_ERROR;
	}
	cache_bytes_recount(h);
	atomic_store(&h->h->byte_budget, bytes);
	unlock_all(h, n);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_expire(SHF *h, uint32_t max_slots)
{
	uint32_t si, n = 0;

	if (!h) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	if (!atomic_load(&h->h->ttl_used))
		return 0;
	for (si = 0; si < NSHARDS; si++) {
		struct shard *sh = &h->shards[si];
		struct clk c = { 0 };

		if (!atomic_load(&sh->nkeys))
			continue;
		if (shard_lock(h, sh) < 0)
			return UINT32_MAX;
		n += sweep(h, sh, SW_EXPIRED, max_slots, UINT32_MAX, &c, NULL);
		shard_unlock(h, sh);
	}
	return n;
}
