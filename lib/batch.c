// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * batch.c - many gets in one call: the keys' memory misses overlap in a
 * software pipeline instead of coming one key at a time.
 */
#include "config.h"
#include <errno.h>

#include "table.h"

/*
 * Look the key up optimistically and copy its value to dst (cap bytes).
 * 1 found (*len set; copied if it fits), 0 absent, -1 corrupt.
 */
static int get_into(SHF *h, uint64_t hash, const char *key, uint32_t klen,
		    char *dst, uint64_t cap, uint32_t *len, uint32_t *uid)
{
	struct shard *sh = shard_of(h, hash);
	struct found f;
	struct clk c = { 0 };
	uint32_t s, tries;
	int rc, locked = 0;

	for (tries = 0;; tries++) {
		if (tries >= READ_TRIES && !locked) {
			if (shard_lock(h, sh) < 0)
				return -1;
			locked = 1;
		}
		s = locked ? 0 : read_begin(sh);
		if (!locked && (s & 1)) {
			shf_cpu_relax();
			continue;
		}
		rc = idx_find(h, sh, hash, key, klen, &f);
		if (rc == 1 && !rec_visible(&f.r, &c))
			rc = 0;
		if (rc == 1) {
			*len = f.r.vlen;
			*uid = uid_make((uint32_t)(sh - h->shards), f.r.uid);
			if (f.r.vlen <= cap)
				memcpy(dst, f.r.val, f.r.vlen);
		}
		if (!locked && read_retry(sh, s))
			continue;
		if (locked)
			shard_unlock(h, sh);
		if (rc >= 0)
			count_get(h, rc == 1);
		if (rc == 1)
			slot_mark(h, f.slot, f.sval);
		return rc;
	}
}

/* Prefetch the two bucket lines of a key. */
static inline void prefetch_buckets(SHF *h, uint64_t hash)
{
	struct shard *sh = shard_of(h, hash);

	prefetch_buckets_dw(h,
			    atomic_load_explicit(&sh->dir_word,
						 memory_order_acquire),
			    hash, 0);
}

/* Prefetch the record (klen: its key's) the first matching slot points at. */
static inline void prefetch_record(SHF *h, uint64_t hash, uint32_t klen)
{
	uint32_t tag = tag_of(hash), idx, b[2], k, i;
	uint64_t so, *seg = seg_for(h, shard_of(h, hash), tag, &so, &idx);

	if (!seg)
		return;
	buckets_of(hash, tag, b);
	for (k = 0; k < 2; k++)
		for (i = 0; i < BUCKET_SLOTS; i++) {
			uint64_t s = ld64(&seg[b[k] * BUCKET_SLOTS + i]);

			if (s && slot_tag(s) == tag) {
				if (range_ok(h, slot_rec(s), 64))
					__builtin_prefetch(h->base + slot_rec(s));
				rec_prefetch_tail(h, slot_rec(s), klen);
				return;
			}
		}
}

/* Prefetch the directory entry of a key's segment. */
static inline void prefetch_dir(SHF *h, uint64_t hash)
{
	struct shard *sh = shard_of(h, hash);
	uint32_t d;
	uint64_t *dir = dir_get(h, atomic_load_explicit(&sh->dir_word,
							memory_order_acquire),
				&d);

	if (dir)
		__builtin_prefetch(&dir[d ? tag_of(hash) >> (24 - d) : 0]);
}

/*
 * The batch is a pipeline of four stages BATCH_LAG keys apart: hash the key
 * and prefetch its directory entry; prefetch its two bucket lines; prefetch
 * its record; look it up and copy its value.  So the memory misses of about
 * 3 * BATCH_LAG keys are in flight at once instead of one key's at a time.
 */
#define BATCH_LAG 4
#define BATCH_RING (4 * BATCH_LAG)

SHF_EXPORT uint32_t shf_get_key_val_copy_batch(SHF *h, uint32_t n,
					       const char *const *keys,
					       const uint32_t *key_lens,
					       char *buf, uint64_t buf_size,
					       uint64_t *offs, uint32_t *lens,
					       uint32_t *uids)
{
	uint64_t hashes[BATCH_RING], used = 0;
	uint32_t found = 0, i, len = 0, uid = 0;
	int nobufs = 0;

	if (!h || (n && (!keys || !key_lens || !offs || !lens)) ||
	    (!buf && buf_size)) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	for (i = 0; i < n; i++)
		if (!keys[i] && key_lens[i]) {
			errno = EINVAL;
			return UINT32_MAX;
		}
	for (i = 0; i < n + 3 * BATCH_LAG; i++) {
		uint32_t k;
		int rc;

		if (i < n) {
			hashes[i % BATCH_RING] = shf_hash(keys[i], key_lens[i]);
			prefetch_dir(h, hashes[i % BATCH_RING]);
		}
		if (i >= BATCH_LAG && i - BATCH_LAG < n)
			prefetch_buckets(h, hashes[(i - BATCH_LAG) % BATCH_RING]);
		if (i >= 2 * BATCH_LAG && i - 2 * BATCH_LAG < n)
			prefetch_record(h,
					hashes[(i - 2 * BATCH_LAG) % BATCH_RING],
					key_lens[i - 2 * BATCH_LAG]);
		if (i < 3 * BATCH_LAG || i - 3 * BATCH_LAG >= n)
			continue;
		k = i - 3 * BATCH_LAG;
		rc = get_into(h, hashes[k % BATCH_RING], keys[k], key_lens[k],
			      buf ? buf + used : NULL, buf_size - used, &len,
			      &uid);
		if (rc < 0) {
			errno = EBADMSG;
			return UINT32_MAX;
		}
		if (uids)
			uids[k] = rc ? uid : SHF_UID_NONE;
		offs[k] = used;
		if (!rc) {
			lens[k] = UINT32_MAX;
			continue;
		}
		if (len > buf_size - used) {
			lens[k] = UINT32_MAX - 1;
			nobufs = 1;
			continue;
		}
		lens[k] = len;
		used += len;
		found++;
	}
	if (nobufs) {
		errno = ENOBUFS;
		return UINT32_MAX;
	}
	return found;
}
