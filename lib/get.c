// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * get.c - reads by key and by UID.  A reader takes no lock and writes no
 * shared cache line: it reads the shard's sequence, looks the key up,
 * copies what it found into the thread's buffer and reads the sequence
 * again; a writer in between (an odd or changed sequence) makes it try
 * again, and after READ_TRIES tries it takes the lock.  Hit and miss
 * counts go to the table in batches (a TTL query counts as neither, and
 * does not mark the key used).
 */
#include "config.h"
#include <errno.h>
#include <pthread.h>

#include "table.h"

/*
 * Hits and misses: each thread counts in private and adds its counts to the
 * table every GETSTAT_BATCH gets, when it turns to another handle, when it
 * exits, in shf_get_stats() and in shf_detach(), so that a get writes no
 * shared line.  Counts are only added through a handle the registry still
 * holds (another thread may have detached it).
 */
__thread struct getstat shf_getstat SHF_TLS_IE;
static pthread_key_t gs_key;
static pthread_once_t gs_once = PTHREAD_ONCE_INIT;
static int gs_key_ok;

static void gs_add(void *hv, void *arg)
{
	SHF *h = hv;
	struct getstat *g = arg;

	/* no locked add of 0 on the table's shared line */
	if (g->hits)
		atomic_fetch_add_explicit(&h->h->hits, g->hits,
					  memory_order_relaxed);
	if (g->misses)
		atomic_fetch_add_explicit(&h->h->misses, g->misses,
					  memory_order_relaxed);
}

static void getstat_flush(void)
{
	if (shf_getstat.h && (shf_getstat.hits || shf_getstat.misses))
		shf_reg_with(shf_getstat.h, shf_getstat.id, gs_add, &shf_getstat);
	shf_getstat.hits = 0;
	shf_getstat.misses = 0;
}

static void gs_thread_exit(void *arg)
{
	(void)arg;
	getstat_flush();
	shf_getstat.h = NULL;
}

static void gs_once_init(void)
{
	gs_key_ok = pthread_key_create(&gs_key, gs_thread_exit) == 0;
}

void getstat_flush_handle(SHF *h)
{
	if (shf_getstat.h != h)
		return;
	getstat_flush();
	shf_getstat.h = NULL;
}

/* Make the thread's counts those of h (flushing another handle's). */
static void getstat_for(SHF *h)
{
	if (shf_getstat.h != h || shf_getstat.id != h->reg_id) {
		getstat_flush();
		shf_getstat.h = h;
		shf_getstat.id = h->reg_id;
		if (!shf_getstat.registered) {
			pthread_once(&gs_once, gs_once_init);
			shf_getstat.registered = gs_key_ok &&
					pthread_setspecific(gs_key, &shf_getstat) == 0;
		}
	}
}

void count_get_slow(SHF *h, int hit)
{
	getstat_for(h);
	if (hit)
		shf_getstat.hits++;
	else
		shf_getstat.misses++;
	if (SHF_UNLIKELY(shf_getstat.hits + shf_getstat.misses >= GETSTAT_BATCH))
		getstat_flush();
}

void count_gets(SHF *h, uint32_t hits, uint32_t misses)
{
	if (!hits && !misses)
		return;
	if (hits >= GETSTAT_BATCH || misses >= GETSTAT_BATCH) {
		/* a big batch: straight to the table (h is the caller's) */
		struct getstat g = { .hits = hits, .misses = misses };

		gs_add(h, &g);
		return;
	}
	getstat_for(h);
	shf_getstat.hits += hits;
	shf_getstat.misses += misses;
	if (shf_getstat.hits + shf_getstat.misses >= GETSTAT_BATCH)
		getstat_flush();
}

/* Set the CLOCK use mark of the slot a get found, once per sweep. */
void slot_mark(SHF *h, uint32_t *slot)
{
	if (SHF_LIKELY(!atomic_load_explicit(&h->h->byte_budget,
					     memory_order_relaxed)) ||
	    slot_ref(slot))
		return;
	/* a writer that changed the slot meanwhile leaves a mark: harmless */
	slot_ref_set(slot);
}


/* Locate (by key, or by uid when by_uid) and copy out; seqlock first. */
uint32_t do_get(SHF *h, int by_uid, uint32_t uid, enum what w)
{
	struct shard *sh;
	struct found f;
	struct clk c = { 0 };
	uint32_t s, tries, ul = uid & 0xffffff;
	uint64_t hash = 0;
	int rc, locked = 0, counted = !(w & W_QUIET);

	w = (enum what)(w & ~W_QUIET);
	shf_uid = SHF_UID_NONE;
	if (w == W_VAL_ADDR)
		shf_val_addr = NULL;
	if (!h || (!by_uid && !shf_tls.have_key)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (by_uid && (uid == SHF_UID_NONE || ul > UID_LOCAL_MAX)) {
		if (counted)
			count_get(h, 0);
		return SHF_RET_KEY_NONE;
	}
	if (!by_uid)
		hash = key_hash(h);
	sh = by_uid ? &h->shards[uid >> 24] : shard_of(h, hash);
	for (tries = 0;; tries++) {
		if (tries >= READ_TRIES && !locked) {
			if (shard_lock(h, sh) < 0)
				return SHF_RET_ERROR;
			locked = 1;
		}
		s = locked ? 0 : read_begin(sh);
		if (!locked && (s & 1)) {
			shf_cpu_relax();
			continue;
		}
		if (by_uid) {
			int bad;

			rc = 0;
			f.slot = NULL;
			if (uid_find(h, sh, ul, &f.r, &bad))
				rc = 1;
			else if (bad && ul < sh->uid_next)
				rc = -1;
		} else {
			rc = idx_find(h, sh, hash, shf_tls.key, shf_tls.key_len, &f);
		}
		if (rc == 1 && !rec_visible(&f.r, &c))
			rc = 0;
		if (rc == 1 && copy_out(&f.r, w) < 0) {
			if (locked)
				shard_unlock(h, sh);
			return SHF_RET_ERROR;
		}
		if (!locked && read_retry(sh, s))
			continue;
		if (locked)
			shard_unlock(h, sh);
		if (rc < 0) {
			errno = EBADMSG;
			return SHF_RET_ERROR;
		}
		/* a TTL query is no use of the key (Redis's TTL neither) */
		if (w != W_TTL && counted)
			count_get(h, rc == 1);
		if (rc == 0)
			return SHF_RET_KEY_NONE;
		if (f.slot && w != W_TTL)
			slot_mark(h, f.slot);
		if (w == W_TTL)
			shf_val_long = (f.r.flags & KF_TTL) ?
					       (long)(f.r.expiry - clk_now(&c)) :
					       -1;
		publish(&f.r, uid_make((uint32_t)(sh - h->shards), f.r.uid), w);
		return SHF_RET_KEY_FOUND;
	}
}

SHF_EXPORT uint32_t shf_get_key_ttl(SHF *h)
{
	return do_get(h, 0, 0, W_TTL);
}

SHF_EXPORT uint32_t shf_get_key_val_copy(SHF *h)
{
	return do_get(h, 0, 0, W_VAL_COPY);
}

SHF_EXPORT uint32_t shf_get_uid_val_copy(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_VAL_COPY);
}

SHF_EXPORT uint32_t shf_get_key_key_copy(SHF *h)
{
	return do_get(h, 0, 0, W_KEY_COPY);
}

SHF_EXPORT uint32_t shf_get_uid_key_copy(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_KEY_COPY);
}

SHF_EXPORT uint32_t shf_get_key_val_addr(SHF *h)
{
	return do_get(h, 0, 0, W_VAL_ADDR);
}

SHF_EXPORT uint32_t shf_get_uid_val_addr(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_VAL_ADDR);
}
