// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * put.c - puts and deletes.  A put names its key's shard lines, buckets
 * and the place its record will take to the processor before it takes
 * the shard's lock, so that those misses overlap with the lock's; then,
 * locked, it finds the key and stores or refuses by its mode.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

/*
 * Start fetching, for writing, the place a new key's record of size bytes
 * would take (the head of its class's free cells; for a record too big
 * for a cell, also its class's free list head or the chunk), so that its
 * miss overlaps the index lookup's.  A hint: sh's lock need not be held
 * (a prefetch never faults).
 */
static inline void prefetch_alloc(SHF *h, struct shard *sh, uint64_t size)
{
	uint32_t c = cell_class(size), hc,
		 ul = __atomic_load_n(&sh->cell_free[c], __ATOMIC_RELAXED);
	uint64_t b, off;

	if (ul && (off = cell_of(h, sh, ul - 1, &hc)) != 0)
		__builtin_prefetch(h->base + off, 1);
	if (size <= CELL_MAX || size > CLASS_MAX_SHARD)
		return;
	off = ld64(&sh->free_head[cls_of(size, &b)]);
	if (!off)
		off = ld64(&sh->chunk_cur);
	if (off < h->map_size)
		__builtin_prefetch(h->base + off, 1);
}

/*
 * Hints for a write to sh, before its lock is taken: start moving here the
 * shard's lines that a put writes (the other writers of the shard took
 * them), and the key's two buckets, found through the directory this
 * process last saw (a stale one only prefetches the wrong lines), so that
 * the bucket's miss need not wait for the shard's first line.
 */
static inline void prefetch_put(SHF *h, struct shard *sh, uint64_t hash)
{
	uint64_t dw = atomic_load_explicit(&h->dw_hint[hash >> 56],
					   memory_order_relaxed);
	const char *p = (const char *)sh;

	__builtin_prefetch(p, 1);
	__builtin_prefetch(&sh->nkeys, 1);
	__builtin_prefetch(&sh->puts, 1);
	__builtin_prefetch(&sh->j, 1);
	__builtin_prefetch((const char *)&sh->j + 64, 1);
	__builtin_prefetch((const char *)&sh->j + 128, 1);
	if (!dw || !prefetch_buckets_dw(h, dw, hash, 1))
		prefetch_buckets_dw(h,
				    atomic_load_explicit(&sh->dir_word,
							 memory_order_acquire),
				    hash, 1);
}

/* Under sh's lock: keep the process's hint of sh's directory current. */
static inline void dw_hint_set(SHF *h, struct shard *sh, uint64_t hash)
{
	uint64_t dw = atomic_load_explicit(&sh->dir_word,
					   memory_order_relaxed);

	if (atomic_load_explicit(&h->dw_hint[hash >> 56],
				 memory_order_relaxed) != dw)
		atomic_store_explicit(&h->dw_hint[hash >> 56], dw,
				      memory_order_relaxed);
}

/* Unlock (if sh) keeping errno, and return ret. */
uint32_t unlock_ret(SHF *h, struct shard *sh, uint32_t ret)
{
	int e = errno;

	if (sh)
		shard_unlock(h, sh);
	errno = e;
	return ret;
}

/* Can the thread's key be put (lengths, fixed lengths)?  0, or the result. */
static uint32_t put_args(SHF *h, const char *val, uint32_t vlen,
			 enum put_mode mode)
{
	if (!h || !shf_tls.have_key || (!val && mode == P_CAS) ||
	    (uint64_t)shf_tls.key_len + vlen > 0xffffffc0ULL) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (h->h->fixed_set && (shf_tls.key_len != h->h->fixed_klen ||
				vlen != h->h->fixed_vlen)) {
		errno = EINVAL;
		return SHF_RET_ERROR | SHF_RET_BAD_VAL;
	}
	return 0;
}

/*
 * What the key's present state (rc, vis, f: as found under the lock) says
 * of a put in mode: 0 go ahead and store, else the result (nothing stored).
 */
static uint32_t put_refusal(enum put_mode mode, int rc, int vis,
			    const struct found *f, const char *old,
			    uint32_t old_len, put_guard_fn guard,
			    struct clk *c, uint32_t si)
{
	if (rc < 0) {
		errno = EBADMSG;
		return SHF_RET_ERROR;
	}
	if (mode == P_GUARDED && (rc != 1 || !guard(&f->r, c))) {
		if (vis)
			shf_uid = uid_make(si, f->r.uid);
		return vis ? SHF_RET_KEY_FOUND : SHF_RET_KEY_NONE;
	}
	if (vis && mode == P_IF_ABSENT) {
		shf_uid = uid_make(si, f->r.uid);
		return SHF_RET_KEY_FOUND;
	}
	if (vis && mode == P_CAS &&
	    (f->r.vlen != old_len || memcmp(f->r.val, old, old_len))) {
		shf_uid = uid_make(si, f->r.uid);
		return SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL;
	}
	if (!vis && (mode == P_REPLACE || mode == P_CAS))
		return SHF_RET_KEY_NONE;
	return 0;
}

uint32_t do_put(SHF *h, const char *val, uint32_t vlen, enum put_mode mode,
		const char *old, uint32_t old_len, uint32_t ttl_ms,
		put_guard_fn guard)
{
	struct shard *sh;
	struct found f;
	struct clk c = { 0 };
	uint64_t hash, expiry;
	uint32_t ul, ret, kflags;
	int rc, vis, expired;

	shf_uid = SHF_UID_NONE;
	ret = put_args(h, val, vlen, mode);
	if (ret)
		return ret;
	if (ttl_ms == UINT32_MAX)
		ttl_ms = atomic_load_explicit(&h->h->ttl_default,
					      memory_order_relaxed);
	hash = key_hash(h);
	sh = shard_of(h, hash);
	/* hints, read without the lock: the misses overlap with taking it */
	prefetch_put(h, sh, hash);
	prefetch_alloc(h, sh, rec_size_new(h, shf_tls.key_len, vlen, 0,
					   &kflags, &ul));
	if (write_lock(h, sh, &c) < 0)
		return SHF_RET_ERROR;
	rc = idx_find(h, sh, hash, shf_tls.key, shf_tls.key_len, &f);
	dw_hint_set(h, sh, hash);
	vis = rc == 1 && rec_visible(&f.r, &c);
	ret = put_refusal(mode, rc, vis, &f, old, old_len, guard, &c,
			  (uint32_t)(hash >> 56));
	if (ret)
		return unlock_ret(h, sh, ret);
	expired = rc == 1 && !vis && rec_expired(&f.r, &c);
	expiry = ttl_expiry(h, ttl_ms, &c, &kflags);
	if (store(h, sh, &f, rc == 1, hash, val, vlen, kflags, expiry, &c,
		  &ul) < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	ret = SHF_RET_KEY_PUT;
	if (vis && mode != P_PUT)
		ret |= SHF_RET_KEY_FOUND;
	if (expired)
		ctr_add(&sh->expirations, 1);
	shf_uid = uid_make((uint32_t)(hash >> 56), ul);
	ctr_add(&sh->puts, 1);
	return unlock_ret(h, sh, ret);
}

SHF_EXPORT uint32_t shf_put_key_val(SHF *h, const char *val, uint32_t vlen)
{
	return do_put(h, val, vlen, P_PUT, NULL, 0, UINT32_MAX, NULL);
}

SHF_EXPORT uint32_t shf_put_key_val_ttl(SHF *h, const char *val,
					uint32_t vlen, uint32_t ttl_ms)
{
	/* UINT32_MAX ms is a TTL too here, not "the default" */
	return do_put(h, val, vlen, P_PUT, NULL, 0,
		      ttl_ms == UINT32_MAX ? UINT32_MAX - 1 : ttl_ms, NULL);
}

SHF_EXPORT uint32_t shf_put_key_val_if_absent(SHF *h, const char *val,
					      uint32_t vlen)
{
	return do_put(h, val, vlen, P_IF_ABSENT, NULL, 0, UINT32_MAX, NULL);
}

SHF_EXPORT uint32_t shf_replace_key_val(SHF *h, const char *val,
					uint32_t vlen)
{
	return do_put(h, val, vlen, P_REPLACE, NULL, 0, UINT32_MAX, NULL);
}

SHF_EXPORT uint32_t shf_cas_key_val(SHF *h, const char *old,
				    uint32_t old_len, const char *val,
				    uint32_t vlen)
{
	if ((!old && old_len) || (!val && vlen)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	return do_put(h, val ? val : "", vlen, P_CAS, old ? old : "", old_len,
		      UINT32_MAX, NULL);
}

/* Find the key under the lock, by key (tls) or by uid. */
static int locked_find(SHF *h, struct shard *sh, int by_uid, uint32_t ul,
		       struct found *f, uint64_t *hash)
{
	if (!by_uid) {
		*hash = key_hash(h);
		return idx_find(h, sh, *hash, shf_tls.key, shf_tls.key_len, f);
	}
	{
		int bad;
		struct rec r;
		uint64_t ro = uid_find(h, sh, ul, &r, &bad);

		if (!ro)
			return bad && ul < sh->uid_next ? -1 : 0;
		*hash = rec_hash(h, r.key, r.klen);
		if (idx_find(h, sh, *hash, r.key, r.klen, f) != 1 ||
		    f->rec_off != ro)
			return -1;
		return 1;
	}
}

/*
 * Lock the shard of the key (tls) or uid and find it: *rc 1 found, 0 absent
 * (shard locked, returned), -2 error (nothing locked, errno set).  *vis
 * tells whether a found record is visible (not a lease, not expired).
 */
struct shard *lock_find(SHF *h, int by_uid, uint32_t uid,
			       struct found *f, uint64_t *hash, int *rc,
			       int *vis, struct clk *c)
{
	struct shard *sh;
	uint64_t kh = 0;

	shf_uid = SHF_UID_NONE;
	*vis = 0;
	if (!h || (!by_uid && !shf_tls.have_key)) {
		errno = EINVAL;
		*rc = -2;
		return NULL;
	}
	if (by_uid && (uid == SHF_UID_NONE || (uid & 0xffffff) > UID_LOCAL_MAX)) {
		*rc = 0;
		return NULL;
	}
	if (by_uid) {
		sh = &h->shards[uid >> 24];
	} else {
		kh = key_hash(h);
		sh = shard_of(h, kh);
		prefetch_put(h, sh, kh);
	}
	if (write_lock(h, sh, c) < 0) {
		*rc = -2;
		return NULL;
	}
	*rc = locked_find(h, sh, by_uid, uid & 0xffffff, f, hash);
	if (!by_uid)
		dw_hint_set(h, sh, kh);
	if (*rc < 0) { /* the shard's structure is unreadable */
		shard_unlock(h, sh);
		errno = EBADMSG;
		*rc = -2;
		return NULL;
	}
	*vis = *rc == 1 && rec_visible(&f->r, c);
	return sh;
}

/*
 * Delete.  With shf_ttl set (one shot, SharedHashFile's conditional
 * delete), only a value whose first 4 bytes equal it is deleted, and it
 * is copied to shf_val first; another value gives FOUND|NOT_TTL.
 */
static uint32_t do_del(SHF *h, int by_uid, uint32_t uid)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash;
	uint32_t want = shf_ttl;
	int rc, vis;
	struct shard *sh;

	shf_ttl = 0;
	sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);
	if (rc == -2)
		return SHF_RET_ERROR;
	if (rc == 0)
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	if (want && vis) {
		if (f.r.vlen < sizeof(want) ||
		    memcmp(f.r.val, &want, sizeof(want))) {
			shf_uid = uid_make((uint32_t)(sh - h->shards),
					   f.r.uid);
			return unlock_ret(h, sh, SHF_RET_KEY_FOUND |
						       SHF_RET_NOT_TTL);
		}
		if (copy_out(&f.r, W_VAL_COPY) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
		publish(&f.r, uid_make((uint32_t)(sh - h->shards), f.r.uid),
			W_VAL_COPY);
	}
	if (!vis) { /* expired or a lease: no value, but remove it */
		if (rec_expired(&f.r, &c))
			ctr_add(&sh->expirations, 1);
		delete_found(h, sh, &f);
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	}
	delete_found(h, sh, &f);
	ctr_add(&sh->dels, 1);
	return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
}

SHF_EXPORT uint32_t shf_del_key_val(SHF *h)
{
	return do_del(h, 0, 0);
}

SHF_EXPORT uint32_t shf_del_uid_val(SHF *h, uint32_t uid)
{
	return do_del(h, 1, uid);
}
