// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * index.c - a shard's extendible-hashing index: a directory of 4 KiB
 * segments of 64 buckets (a cache line each) of 12 slots.  Inserting displaces one entry to
 * its other bucket (cuckoo, one level) before a full segment splits in two
 * by the next tag bit; the directory doubles when a segment reaches its
 * depth.  Each step is journaled in the shard so that a writer killed in
 * the middle is finished by the next locker (shard.c).  idx_find() is
 * inline in table.h; the CLOCK hand of eviction walks the index here.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

/*
 * Double the directory of dw (depth g); one store publishes the new one.
 * Returns the new directory (and *dw), or NULL with errno.
 */
static uint64_t *dir_double(SHF *h, struct shard *sh, uint64_t *dw,
			    uint64_t *dir, uint32_t g)
{
	uint64_t nd = shard_alloc_a(h, sh, 8ULL << (g + 1), 1), *n;
	uint32_t i;

	if (!nd)
		return NULL;
	n = at(h, nd, 8ULL << (g + 1));
	if (!n || (nd & 7)) {
		errno = EBADMSG;
		return NULL;
	}
	for (i = 0; i < (1u << (g + 1)); i++)
		n[i] = ld64(&dir[i >> 1]);
	barrier();
	atomic_store(&sh->dir_word, (nd << 6) | (g + 1));
	CRASH(CP_DIR_DOUBLE);
	if (g > 0) /* depth 0 directories live in the initial area */
		shard_free(h, sh, *dw >> 6, 8ULL << g);
	*dw = (nd << 6) | (g + 1);
	return n;
}

/*
 * The slots of the bucket at bk whose tag has bit set (the entries that
 * a split moves): bit i for slot i.  The bit is read where it lies (the
 * word's top byte, the tag byte or the marks' word, see slot_key()), for
 * the whole bucket at once: a split asks this twice a bucket.
 */
static uint32_t split_moving(const uint32_t *bk, uint32_t bit)
{
	const uint8_t *b = (const uint8_t *)bk;
	uint32_t i, m = 0;

	if (bit >= 16) {
		m = __atomic_load_n((const uint32_t *)(b + B_REF),
				    __ATOMIC_RELAXED) >>
		    B_TOP;
	} else if (bit >= 8) {
		for (i = 0; i < BUCKET_SLOTS; i++)
			m |= (uint32_t)((__atomic_load_n(b + B_TAGHI + i,
							 __ATOMIC_RELAXED) >>
					 (bit - 8)) &
					1)
			     << i;
	} else {
		for (i = 0; i < BUCKET_SLOTS; i++)
			m |= ((__atomic_load_n(&bk[i], __ATOMIC_RELAXED) >>
			       (24 + bit)) &
			      1)
			     << i;
	}
	return m & ~bucket_empty(bk) & ((1u << BUCKET_SLOTS) - 1);
}

/*
 * Copy the entries of segment seg whose tag has bit set into the empty
 * segment nseg, each to the same bucket and slot.  nseg is no reader's
 * until the directory names it: each moving entry's word, tag byte, mark
 * and tag bit 16 are copied as they are.
 */
static void seg_copy_moving(uint64_t *seg, uint64_t *nseg, uint32_t bit)
{
	uint32_t i;

	for (i = 0; i < SEG_BUCKETS; i++) {
		uint32_t *ob = seg_bucket(seg, i), *nb = seg_bucket(nseg, i),
			 m = split_moving(ob, bit), k;
		uint8_t *oh = (uint8_t *)ob + B_TAGHI,
			*nh = (uint8_t *)nb + B_TAGHI;

		for (k = m; k; k &= k - 1) {
			uint32_t j = match_slot(k);

			nh[j] = oh[j];
			nb[j] = ob[j];
		}
		nb[B_REF / 4] = __atomic_load_n(&ob[B_REF / 4],
						__ATOMIC_RELAXED) &
				(m | m << B_TOP);
	}
}

void seg_unmove(uint64_t *seg, uint32_t bit)
{
	uint32_t i, k;

	for (i = 0; i < SEG_BUCKETS; i++) {
		uint32_t *ob = seg_bucket(seg, i);

		for (k = split_moving(ob, bit); k; k &= k - 1)
			slot_st(&ob[match_slot(k)], 0);
	}
}

/*
 * Split the segment at directory index idx of directory word dw, as the
 * caller read it (under the lock): not read again, so that idx indexes the
 * directory that was checked.
 */
static int seg_split(SHF *h, struct shard *sh, uint64_t dw, uint32_t idx)
{
	uint32_t g, l, start, len, i, bit;
	uint64_t *dir = dir_get(h, dw, &g);
	uint64_t de, so, no, *seg, *nseg;

	if (!dir || idx >= (1u << g))
		goto corrupt;
	de = ld64(&dir[idx]);
	l = (uint32_t)(de & 63);
	if (l > g)
		goto corrupt;
	if (l >= MAX_DEPTH) {
		errno = EOVERFLOW;
		return -1;
	}
	if (l == g) {
		dir = dir_double(h, sh, &dw, dir, g);
		if (!dir)
			return -1;
		g++;
		idx = idx * 2;
	}
	len = 1u << (g - l);
	start = idx & ~(len - 1);
	so = de & ~63ULL;
	seg = at(h, so, SEG_BYTES);
	no = big_alloc(h, SEG_BYTES, 1);
	if (!no)
		return -1;
	nseg = at(h, no, SEG_BYTES);
	if (!seg || !nseg)
		goto corrupt;
	/* empty (fresh space is; a damaged file's may not be): only the
	 * moving entries are written below */
	memset(nseg, 0, SEG_BYTES);
	bit = TAG_BITS - 1 - l; /* tag bit that separates the halves */
	sh->j.split_seg = so;
	sh->j.split_new = no;
	sh->j.split_start = start;
	sh->j.split_len = len;
	sh->j.split_depth = l;
	barrier();
	seg_copy_moving(seg, nseg, bit);
	barrier();
	sh->j.split_state = 1;
	barrier();
	CRASH(CP_SPLIT_COPIED);
	for (i = 0; i < len; i++) {
		st64(&dir[start + i], (i < len / 2 ? so : no) | (l + 1));
		if (i == len / 2)
			CRASH(CP_SPLIT_DIR);
	}
	seg_unmove(seg, bit);
	barrier();
	sh->j.split_state = 0;
	ctr_add(&sh->splits, 1);
	return 0;
corrupt:
	errno = EBADMSG;
	return -1;
}

/* A free slot for hash (known absent); under the lock. */
uint32_t *idx_insert(SHF *h, struct shard *sh, uint64_t hash)
{
	uint32_t tag = tag_of(hash), idx, b[2], i, k, tries;

	for (tries = 0; tries < 2 * MAX_DEPTH + 2; tries++) {
		uint64_t so, dw = atomic_load(&sh->dir_word),
			     *seg = seg_for_dw(h, dw, tag, &so, &idx);

		if (!seg) {
			errno = EBADMSG;
			return NULL;
		}
		buckets_of(hash, tag, b);
		for (k = 0; k < 2; k++) {
			uint32_t *bk = seg_bucket(seg, b[k]),
				 m = bucket_empty(bk);

			if (m)
				return &bk[match_slot(m)];
		}
		/* one level of cuckoo displacement */
		for (k = 0; k < 2; k++) {
			uint32_t *bk = seg_bucket(seg, b[k]);

			for (i = 0; i < BUCKET_SLOTS; i++) {
				uint64_t s = slot_ld(&bk[i]);
				uint32_t ob = b[k] ^ alt_of(slot_tag(s)), m;
				uint32_t *obk = seg_bucket(seg, ob),
					 e = bucket_empty(obk);

				if (e) {
					m = match_slot(e);
					sh->j.kick_to = (uint64_t)((uint8_t *)&obk[m] - h->base);
					sh->j.kick_val = s;
					barrier();
					sh->j.kick_from = (uint64_t)((uint8_t *)&bk[i] - h->base);
					barrier();
					slot_st(&obk[m], s);
					CRASH(CP_KICK);
					slot_st(&bk[i], 0);
					barrier();
					sh->j.kick_from = 0;
					return &bk[i];
				}
			}
		}
		if (seg_split(h, sh, dw, idx) < 0)
			return NULL;
	}
	errno = EOVERFLOW;
	return NULL;
}

void idx_drop_copies(uint32_t *slot, uint64_t sv)
{
	uint8_t *bk = slot_bucket(slot);
	uint8_t *seg = (uint8_t *)((uintptr_t)bk & ~(uintptr_t)(SEG_BYTES - 1));
	uint32_t tag = slot_tag(sv), b = (uint32_t)((bk - seg) / 64), k, m;
	const uint32_t pair[2] = { b, b ^ alt_of(tag) };

	for (k = 0; k < 2; k++) {
		uint32_t *w = seg_bucket(seg, pair[k]);

		for (m = bucket_match(w, tag); m; m &= m - 1) {
			uint32_t *c = &w[match_slot(m)];

			/* the value with or without its use mark */
			if (c != slot && slot_same(slot_key(c), sv))
				slot_st(c, 0);
		}
	}
}

int slot_misleads(SHF *h, struct shard *sh, uint32_t tag,
		  const struct rec *r)
{
	uint64_t hash = rec_hash(h, r->key, r->klen);

	return tag_of(hash) != tag || shard_of(h, hash) != sh;
}

/* Does the index lead to the record at rec_off (for its own key)? */
int idx_holds(SHF *h, struct shard *sh, uint64_t rec_off)
{
	struct rec r;

	return rec_get(h, rec_off, &r) && idx_slot_is(h, sh, &r, rec_off, NULL);
}

int idx_slot_is(SHF *h, struct shard *sh, const struct rec *r,
		uint64_t rec_off, const uint32_t *slot)
{
	struct found f;

	return idx_find(h, sh, rec_hash(h, r->key, r->klen), r->key, r->klen,
			&f) == 1 &&
	       (!slot || f.slot == slot) && f.rec_off == rec_off;
}

int idx_names_uid(SHF *h, struct shard *sh, uint32_t ul)
{
	struct rec r;
	int bad;
	uint64_t ro = uid_find(h, sh, ul, &r, &bad);

	return ro && idx_slot_is(h, sh, &r, ro, NULL);
}

/*
 * The slot under the shard's CLOCK hand; the hand moves on by one.  The
 * hand walks every segment once per turn (a segment that several directory
 * entries share is walked from its first entry).  NULL: index unreadable.
 */
uint32_t *hand_next(SHF *h, struct shard *sh, uint32_t *depth)
{
	uint32_t g, idx, k, l;
	uint64_t *dir = dir_get(h, atomic_load(&sh->dir_word), &g), de, so,
		 *seg;

	if (!dir)
		return NULL;
	*depth = g;
	idx = (uint32_t)(sh->hand >> 10);
	k = (uint32_t)(sh->hand & 1023);
	if (idx >= (1u << g) || k >= SEG_SLOTS) {
		idx = 0;
		k = 0;
	}
	de = ld64(&dir[idx]);
	l = (uint32_t)(de & 63);
	if (l > g)
		return NULL;
	idx &= ~((1u << (g - l)) - 1); /* the segment's first entry */
	so = de & ~63ULL;
	seg = (so & (PAGE - 1)) ? NULL : at(h, so, SEG_BYTES);
	if (!seg)
		return NULL;
	if (k + 1 < SEG_SLOTS)
		sh->hand = ((uint64_t)idx << 10) | (k + 1);
	else
		sh->hand = (uint64_t)(idx + (1u << (g - l))) << 10;
	return seg_slot(seg, k);
}
