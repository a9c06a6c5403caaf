// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * batch.c - many gets in one call: the keys' memory misses overlap in a
 * software pipeline instead of coming one key at a time.
 */
#include "config.h"
#include <errno.h>

#include "table.h"

/*
 * A key on its way through the pipeline: what the earlier stages worked
 * out, so that the later ones need not work it out again.  The pointers
 * only aim prefetches and the stage after; the lookup itself (get_into())
 * reads the directory again under the shard's seqlock.  They stay valid
 * within the call: the mapping never moves and the file never shrinks.
 */
struct bkey {
	uint64_t hash;
	struct shard *sh;
	uint64_t dw; /* the shard's dir_word that dirent was found in */
	const uint64_t *dirent; /* the key's directory entry, or NULL */
	uint64_t seg_off; /* the segment the entry named then */
	uint64_t *seg; /* that segment, or NULL */
	uint32_t tag, b[2];
	uint32_t hint; /* first slot of its tag in seg; UINT32_MAX: none */
	struct cell_hint ch; /* that slot's UID and its cell */
};

/*
 * The key's segment, read now (under the caller's seqlock): the one the
 * stages found and checked while the shard's directory word and the key's
 * entry are what they were then, which saves walking the directory again.
 * The directory a word names is always at the same place, so its entry for
 * the key is too, even if the word was freed and came back meanwhile.
 */
static inline uint64_t *batch_seg(SHF *h, const struct bkey *bk)
{
	uint64_t dw = atomic_load_explicit(&bk->sh->dir_word,
					   memory_order_acquire), so;
	uint32_t idx;

	if (bk->seg && dw == bk->dw &&
	    (ld64(bk->dirent) & ~63ULL) == bk->seg_off)
		return bk->seg;
	return seg_for_dw(h, dw, bk->tag, &so, &idx);
}

/*
 * Look the key up optimistically and copy its value to dst (cap bytes).
 * 1 found (*len set; copied if it fits), 0 absent, -1 corrupt.  mark: the
 * table is in cache mode (mark the slot found used).
 */
static int get_into(SHF *h, const struct bkey *bk, const char *key,
		    uint32_t klen, char *dst, uint64_t cap, uint32_t *len,
		    uint32_t *uid, int mark)
{
	struct shard *sh = bk->sh;
	struct found f;
	struct clk c = { 0 };
	uint64_t *seg;
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
		seg = batch_seg(h, bk);
		rc = !seg ? -1 :
		     idx_find_seg(h, sh, seg, bk->tag, bk->b, key, klen, &f,
				  seg == bk->seg ? bk->hint : UINT32_MAX,
				  seg == bk->seg && bk->ch.ul != UINT32_MAX &&
						  bk->ch.home ?
					  &bk->ch :
					  NULL);
		if (rc == 1 && !rec_visible(&f.r, &c))
			rc = 0;
		if (rc == 1) {
			*len = f.r.vlen;
			*uid = f.r.uid;
			/* an empty value may go to a NULL buffer: no memcpy() */
			if (f.r.vlen && f.r.vlen <= cap)
				copy_val(dst, f.r.val, f.r.vlen);
		}
		if (!locked && read_retry(sh, s))
			continue;
		if (locked)
			shard_unlock(h, sh);
		if (rc == 1 && mark)
			slot_mark(h, f.slot);
		if (rc < 0)
			errno = EBADMSG;
		return rc;
	}
}

/* Stage 1: hash the key and prefetch its directory entry. */
static inline void stage_dir(SHF *h, struct bkey *bk, const char *key,
			     uint32_t klen)
{
	uint32_t idx;

	bk->hash = rec_hash(h, key, klen);
	bk->sh = shard_of(h, bk->hash);
	bk->tag = tag_of(bk->hash);
	buckets_of(bk->hash, bk->tag, bk->b);
	bk->dw = atomic_load_explicit(&bk->sh->dir_word, memory_order_acquire);
	bk->dirent = dir_entry(h, bk->dw, bk->tag, &idx);
	if (bk->dirent)
		__builtin_prefetch(bk->dirent);
}

/* Stage 2: find the key's segment and prefetch its two bucket lines. */
static inline void stage_buckets(SHF *h, struct bkey *bk)
{
	bk->hint = UINT32_MAX;
	bk->ch.ul = UINT32_MAX;
	bk->seg = bk->dirent ? seg_of_entry(h, bk->dirent, &bk->seg_off) :
			       NULL;
	if (!bk->seg)
		return;
	__builtin_prefetch(seg_bucket(bk->seg, bk->b[0]));
	__builtin_prefetch(seg_bucket(bk->seg, bk->b[1]));
}

/*
 * Stage 3: prefetch the slab directory entry of the UID that the first
 * slot of the key's tag names.
 */
static inline void stage_uid(SHF *h, struct bkey *bk)
{
	uint32_t k, i;

	bk->ch.ul = UINT32_MAX;
	if (!bk->seg)
		return;
	for (k = 0; k < 2; k++) {
		const uint32_t *b = seg_bucket(bk->seg, bk->b[k]);
		uint32_t m;

		for (m = bucket_match(b, bk->tag); m; m &= m - 1) {
			uint64_t s = slot_key(&b[i = match_slot(m)]), d;

			if (s && slot_tag(s) == bk->tag) {
				bk->hint = k * BUCKET_SLOTS + i;
				/* a prefetch never faults: the bound keeps the
				 * address inside the mapping */
				d = ld64(&bk->sh->uid_dir) +
				    (uint64_t)(slot_ul(s) / SLAB_CELLS) * 8;
				bk->ch.ul = slot_ul(s);
				bk->ch.home = 0;
				if (d < h->map_size)
					__builtin_prefetch(h->base + d);
				return;
			}
		}
	}
}

/* Stage 4: prefetch that UID's cell (both its lines where it spans two). */
static inline void stage_record(SHF *h, struct bkey *bk)
{
	uint32_t c;
	uint64_t off;

	if (bk->ch.ul == UINT32_MAX)
		return;
	off = cell_of(h, bk->sh, bk->ch.ul, &c);
	if (!off) {
		bk->ch.ul = UINT32_MAX;
		return;
	}
	bk->ch.home = off;
	bk->ch.cls = c;
	__builtin_prefetch(h->base + off);
	__builtin_prefetch(h->base + off + cls_bound(c) - 1);
}

/*
 * The batch is a pipeline of five stages BATCH_LAG keys apart: hash the key
 * and prefetch its directory entry; prefetch its two bucket lines; prefetch
 * its UID's slab directory entry; prefetch its cell; look it up and copy
 * its value.  So the memory misses of about 4 * BATCH_LAG keys are in
 * flight at once instead of one key's at a time.
 */
#define BATCH_LAG 4
#define BATCH_RING (5 * BATCH_LAG)

SHF_EXPORT uint32_t shf_get_key_val_copy_batch(SHF *h, uint32_t n,
					       const char *const *keys,
					       const uint32_t *key_lens,
					       char *buf, uint64_t buf_size,
					       uint64_t *offs, uint32_t *lens,
					       uint32_t *uids)
{
	struct bkey ring[BATCH_RING];
	uint64_t used = 0;
	uint32_t found = 0, hits = 0, len = 0, uid = 0;
	uint64_t i; /* n + 3 * BATCH_LAG does not fit 32 bits for every n */
	int nobufs = 0, mark;

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
	/* cache mode, read once: a budget set meanwhile misses a few marks */
	mark = atomic_load_explicit(&h->h->byte_budget,
				    memory_order_relaxed) != 0;
	for (i = 0; i < (uint64_t)n + 4 * BATCH_LAG; i++) {
		uint32_t k;
		int rc;

		if (i < n)
			stage_dir(h, &ring[i % BATCH_RING],
				  keys[i] ? keys[i] : "",
				  key_lens[i]);
		if (i >= BATCH_LAG && i - BATCH_LAG < n)
			stage_buckets(h, &ring[(i - BATCH_LAG) % BATCH_RING]);
		if (i >= 2 * BATCH_LAG && i - 2 * BATCH_LAG < n)
			stage_uid(h, &ring[(i - 2 * BATCH_LAG) % BATCH_RING]);
		if (i >= 3 * BATCH_LAG && i - 3 * BATCH_LAG < n)
			stage_record(h, &ring[(i - 3 * BATCH_LAG) % BATCH_RING]);
		if (i < 4 * BATCH_LAG || i - 4 * BATCH_LAG >= n)
			continue;
		k = (uint32_t)(i - 4 * BATCH_LAG);
		/* an empty key may be NULL: no memcmp() of NULL */
		rc = get_into(h, &ring[k % BATCH_RING],
			      keys[k] ? keys[k] : "", key_lens[k],
			      buf ? buf + used : NULL, buf_size - used, &len,
			      &uid, mark);
		if (rc < 0) { /* errno: get_into()'s */
			count_gets(h, hits, k - hits);
			return UINT32_MAX;
		}
		hits += (uint32_t)rc;
		if (uids)
			uids[k] = rc ? uid_make((uint32_t)(ring[k % BATCH_RING].sh -
							   h->shards),
						uid)
				     : SHF_UID_NONE;
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
	count_gets(h, hits, n - hits);
	if (nobufs) {
		errno = ENOBUFS;
		return UINT32_MAX;
	}
	return found;
}
