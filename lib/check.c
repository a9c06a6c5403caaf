// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * check.c - shf_check(): every shard, under its lock, against what its
 * index, records, UID cells, counters and free lists must say; with
 * SHF_CHECK_REPAIR, what is broken is dropped and counters are fixed.
 */
#include "config.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "table.h"

struct chk {
	shf_check_cb_t cb;
	void *arg;
	uint32_t problems;
	/* what the shard's slots add up to */
	uint64_t live, rbytes;
	/*
	 * Free blocks the walks of all free lists may still visit: no more
	 * than the file has room for, all lists of all shards together (a
	 * cycle in each list would otherwise cost a file's worth each).
	 */
	uint64_t free_left;
	uint32_t free_left_out;
	/*
	 * The shard's local UIDs that a slot named so far, a bit each (NULL
	 * where there was no memory for it: that look is left out).
	 */
	uint64_t *uid_seen;
	uint32_t uid_seen_n;
	/*
	 * The file's pages that a directory range of any shard named as its
	 * segment so far, a bit each (NULL: that look is left out).
	 */
	uint64_t *seg_seen;
	uint64_t seg_seen_n;
};

static void chk_report(struct chk *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void chk_report(struct chk *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	c->problems++;
	if (!c->cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->cb(msg, c->arg);
}

/*
 * Last resort of a repair: give a shard whose index cannot be read a new,
 * empty one.  Its keys are lost; its old space is not reused.
 */
static void shard_reset(SHF *h, struct shard *sh)
{
	uint64_t seg = big_alloc(h, SEG_BYTES, 1), dir;
	uint64_t *d;
	uint32_t c;

	if (!seg)
		return;
	memset(&sh->j, 0, sizeof(sh->j));
	sh->chunk_cur = sh->chunk_end = 0;
	for (c = 0; c < NCLASS; c++)
		sh->free_head[c] = 0;
	sh->uid_dir = 0;
	sh->uid_dir_cap = 0;
	sh->uid_next = 0;
	memset(sh->cell_free, 0, sizeof(sh->cell_free));
	sh->hand = 0;
	ctr_set(&sh->rbytes, 0);
	dir = shard_alloc_a(h, sh, 8, 1);
	d = dir ? at(h, dir, 8) : NULL;
	if (!d)
		return;
	st64(d, seg);
	atomic_store(&sh->dir_word, dir << 6);
	ctr_set(&sh->nkeys, 0);
}

/* What is wrong with slot sv of bucket b of segment (start, l), if any. */
static const char *check_slot(SHF *h, struct shard *sh, uint32_t si,
			      uint64_t sv, uint32_t b, uint32_t start,
			      uint32_t l, uint32_t g, struct rec *r)
{
	uint32_t tag = slot_tag(sv), bb[2], hc, ul = slot_ul(sv);
	uint64_t hash, home, bnd, to, ro;
	int holds, bad;

	ro = uid_find(h, sh, ul, r, &bad);
	if (!ro)
		return bad ? "the slot's UID leads to no cell, or to a "
			     "damaged one" :
			     "the slot's UID names a cell without a record";
	hash = rec_hash(h, r->key, r->klen);
	buckets_of(hash, tag, bb);
	if ((hash >> 56) != si || tag_of(hash) != tag)
		return "hash does not match the key";
	if (l && (tag >> (TAG_BITS - l)) != (start >> (g - l)))
		return "key in the wrong segment";
	if (b != bb[0] && b != bb[1])
		return "key in the wrong bucket";
	holds = key_cell(h, sh, ul, &home, &hc, &to);
	if (holds == 1 && r->kind != K_HOME && r->kind != K_FIXED)
		return "record in a cell with a header for elsewhere";
	if (holds == 1 &&
	    cls_of(r->size < REC_MIN ? REC_MIN : r->size, &bnd) != hc)
		return "record of another size than its cell";
	return NULL;
}

/*
 * Has a slot already named local UID ul?  Marks it named.  Two slots of
 * one UID (a copied slot) would count its key twice, and a delete by one
 * of them would leave the other leading to a free cell.
 */
static int uid_named_again(struct chk *c, uint32_t ul)
{
	return bit_seen(c->uid_seen, c->uid_seen_n, ul);
}

/* Has a range named the segment at seg_off already?  Marks it named. */
static int seg_named_again(struct chk *c, uint64_t seg_off)
{
	return bit_seen(c->seg_seen, c->seg_seen_n, seg_off / PAGE);
}

/*
 * Is the segment another range's (another shard's, or another range's
 * of this one)?  Its slots, if it holds any, then all fail this range's
 * look; its owner's keys must not be dropped for it.
 */
static int seg_foreign(SHF *h, struct shard *sh, uint32_t si, uint64_t *seg,
		       uint32_t start, uint32_t l, uint32_t g)
{
	uint32_t k, used = 0;
	struct rec r;

	for (k = 0; k < SEG_SLOTS; k++) {
		uint64_t sv = slot_ld(seg_slot(seg, k));

		if (!sv)
			continue;
		used++;
		if (!check_slot(h, sh, si, sv, k / BUCKET_SLOTS, start, l, g,
				&r))
			return 0;
	}
	return used > 0;
}

/* Point the range of len entries from start to a new, empty segment. */
static void range_renew(SHF *h, uint64_t *dir, uint32_t start, uint32_t len,
			uint32_t l)
{
	uint64_t seg = big_alloc(h, SEG_BYTES, 1);

	if (!seg)
		return;
	for (uint32_t k = start; k < start + len; k++)
		st64(&dir[k], seg | l);
}

/*
 * The length of the range that dir[start] begins, or 0 (reported) if the
 * range is bad in shape: a depth past the directory's, a start off the
 * range's own boundary, or an entry inside it that says otherwise.
 */
static uint32_t range_shape(struct chk *c, uint32_t si, uint64_t *dir,
			    uint32_t g, uint32_t start)
{
	uint64_t de = ld64(&dir[start]);
	uint32_t l = (uint32_t)(de & 63), len, k;

	if (l > g) {
		chk_report(c, "shard %u: dir[%u] depth %u > %u", si, start, l, g);
		return 0;
	}
	len = 1u << (g - l);
	/* a range starts on its own boundary, so it ends inside the array */
	if (start & (len - 1)) {
		chk_report(c, "shard %u: dir[%u] starts no range of depth %u",
			   si, start, l);
		return 0;
	}
	for (k = start; k < start + len; k++)
		if (ld64(&dir[k]) != de) {
			chk_report(c, "shard %u: dir[%u] breaks the range of dir[%u]",
				   si, k, start);
			return 0;
		}
	return len;
}

/*
 * Repair of a directory's depths: each entry's depth is derived from the
 * segments the entries name, and stored where it differs.  An aligned
 * block of entries that all name one segment is a range, and each entry
 * gets the depth of the widest such block around it: two such blocks are
 * apart or one holds the other, so these tile the directory.  In a sound
 * directory each segment's entries are such a block, so nothing changes;
 * one whose depths alone were damaged comes back as it was, whatever
 * they say (even a shape that looks sound); a segment that two ranges
 * still name is given up by the second, in the walk that follows.  The
 * depths depend on the offsets only, which this never writes, so a
 * repair cut short is finished by the next.  Reports how many entries it
 * mended, if any.
 */
static void dir_mend(struct chk *c, uint32_t si, uint64_t *dir, uint32_t g)
{
	uint32_t n = 1u << g, d, b, k, s, mended = 0;
	uint8_t *depth = malloc(n);

	if (!depth)
		return;
	memset(depth, (int)g, n);
	/* blocks of size s = 2^(g - d), from halves each a range of d + 1 */
	for (d = g; d-- > 0;) {
		s = 1u << (g - d);
		for (b = 0; b < n; b += s)
			if (depth[b] == d + 1 && depth[b + s / 2] == d + 1 &&
			    !((ld64(&dir[b]) ^ ld64(&dir[b + s / 2])) & ~63ULL))
				memset(depth + b, (int)d, s);
	}
	for (k = 0; k < n; k++) {
		uint64_t de = ld64(&dir[k]);

		if ((de & 63) != depth[k]) {
			st64(&dir[k], (de & ~63ULL) | depth[k]);
			mended++;
		}
	}
	free(depth);
	if (mended)
		chk_report(c, "shard %u: %u directory entries of a depth their "
			   "segments deny", si, mended);
}

/* The slots of the segment seg of the range of depth l from start. */
static void check_slots(SHF *h, uint32_t si, uint64_t *seg, uint32_t g,
			uint32_t start, uint32_t l, struct chk *c, int repair)
{
	struct shard *sh = &h->shards[si];

	for (uint32_t k = 0; k < SEG_SLOTS; k++) {
		uint64_t sv = slot_ld(seg_slot(seg, k));
		unsigned long long at =
			(unsigned long long)((uint8_t *)seg_slot(seg, k) - h->base);
		const char *why;
		struct rec r;

		if (!sv)
			continue;
		why = check_slot(h, sh, si, sv, k / BUCKET_SLOTS, start, l, g,
				 &r);
		if (why) {
			chk_report(c, "shard %u: slot %#llx: %s", si, at, why);
		} else if (uid_named_again(c, slot_ul(sv))) {
			/* the first slot stays: it leads to the record */
			chk_report(c, "shard %u: slot %#llx: its UID %u is "
				   "named by another slot too", si, at,
				   slot_ul(sv));
		} else {
			c->live++;
			c->rbytes += rec_cost(r.size);
			continue;
		}
		if (repair)
			slot_st(seg_slot(seg, k), 0);
	}
}

/*
 * The range of the directory that dir[start] begins, and its segment's
 * slots.  The range's length; -1 if it is bad in shape.
 */
static int check_segment(SHF *h, uint32_t si, uint64_t *dir, uint32_t g,
			 uint32_t start, struct chk *c, int repair)
{
	uint32_t len = range_shape(c, si, dir, g, start), l;
	uint64_t de, *seg;

	if (!len)
		return -1;
	de = ld64(&dir[start]);
	l = (uint32_t)(de & 63);
	seg = at(h, de & ~63ULL, SEG_BYTES);
	if (!seg || (de & ~63ULL & (PAGE - 1))) {
		chk_report(c, "shard %u: segment %#llx outside the file", si,
			   (unsigned long long)(de & ~63ULL));
		if (!repair)
			return -1;
		/* its keys are lost with its offset: an empty one instead */
		range_renew(h, dir, start, len, l);
		return (int)len;
	}
	/*
	 * A segment that another range names too (another process wrote
	 * the directory; found by an audit): this range's look would drop
	 * every key of the range it belongs to.  This range gets a new,
	 * empty segment under repair; its keys, if it had any, were lost
	 * with its own segment's offset.
	 */
	if (seg_foreign(h, &h->shards[si], si, seg, start, l, g) ||
	    seg_named_again(c, de & ~63ULL)) {
		chk_report(c, "shard %u: dir[%u] names segment %#llx, which "
			   "another range of the directory names", si, start,
			   (unsigned long long)(de & ~63ULL));
		if (repair)
			range_renew(h, dir, start, len, l);
		return (int)len;
	}
	check_slots(h, si, seg, g, start, l, c, repair);
	return (int)len;
}

/* The counters of a shard against what its slots add up to. */
static void check_counters(struct shard *sh, uint32_t si, struct chk *c,
			   int repair)
{
	if (c->live != atomic_load(&sh->nkeys)) {
		chk_report(c, "shard %u: %llu live keys, counter says %llu", si,
			   (unsigned long long)c->live,
			   (unsigned long long)atomic_load(&sh->nkeys));
		if (repair)
			ctr_set(&sh->nkeys, c->live);
	}
	if (c->rbytes != atomic_load(&sh->rbytes)) {
		chk_report(c, "shard %u: %llu bytes of records, counter says %llu",
			   si, (unsigned long long)c->rbytes,
			   (unsigned long long)atomic_load(&sh->rbytes));
		if (repair)
			ctr_set(&sh->rbytes, c->rbytes);
	}
}

/*
 * May the walks of free lists go on?  Not past as many blocks as the file
 * has room for, all lists of all shards together (a cycle in each list
 * would otherwise cost a file's worth each); said once.
 */
static int walk_left(struct chk *c)
{
	if (c->free_left)
		return 1;
	if (c->free_left_out++ == 0)
		chk_report(c, "free lists hold more blocks than the file: "
			   "not all walked");
	return 0;
}

/* Every free list of a shard: a broken one is cut where it breaks. */
static void check_free_lists(SHF *h, struct shard *sh, uint32_t si,
			     struct chk *c, int repair)
{
	/* a list longer than the file can hold blocks has a cycle */
	uint64_t most = atomic_load(&h->valid) / REC_MIN + 1;
	uint32_t k;

	for (k = 0; k < NCLASS; k++) {
		uint64_t off = sh->free_head[k], n = 0, *prev = &sh->free_head[k];

		while (off) {
			uint32_t *w = (off & 3) ? NULL : at(h, off, REC_MIN);

			if (!walk_left(c))
				return;
			if (!w || w[0] != K_FREE << 24 || w[1] != k || ++n > most) {
				chk_report(c, "shard %u: free list %u broken at %#llx",
					   si, k, (unsigned long long)off);
				if (repair)
					stu64(prev, 0);
				break;
			}
			c->free_left--;
			prev = (uint64_t *)(w + 2);
			off = ldu64(w + 2);
		}
	}
}

/* The lists of free cells: a broken one is cut where it breaks. */
static void check_cell_lists(SHF *h, struct shard *sh, uint32_t si,
			     struct chk *c, int repair)
{
	uint32_t k;

	for (k = 0; k < CELL_CLASSES; k++) {
		uint32_t *prev = &sh->cell_free[k], n = 0, hc;
		uint32_t ul = *prev;

		while (ul) {
			uint64_t off = cell_of(h, sh, ul - 1, &hc);
			uint32_t *w = off ? (uint32_t *)(h->base + off) : NULL;

			if (!walk_left(c))
				return;
			c->free_left--;
			if (!w || hc != k || w[0] != CELL_FREE ||
			    ++n > UID_LOCAL_MAX + 1) {
				chk_report(c, "shard %u: free cells of class %u "
					   "broken at UID %u", si, k, ul - 1);
				if (repair)
					*prev = 0;
				break;
			}
			prev = &w[1];
			ul = w[1];
		}
	}
}

/* Verify one shard under its lock; repair what can be repaired safely. */
static void check_shard(SHF *h, uint32_t si, struct chk *c, int repair)
{
	struct shard *sh = &h->shards[si];
	uint32_t g, i, cap;
	uint64_t dw = atomic_load(&sh->dir_word), *dir = dir_get(h, dw, &g);
	uint64_t segs = 0;
	int len;

	if (!dir) {
		chk_report(c, "shard %u: directory unreadable (word %#llx)", si,
			   (unsigned long long)dw);
		if (repair)
			shard_reset(h, sh);
		return;
	}
	c->live = 0;
	c->rbytes = 0;
	/* a UID a slot names is in a slab of the directory (cell_of()) */
	cap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED);
	c->uid_seen_n = uid_bits_n(cap);
	c->uid_seen = calloc(c->uid_seen_n / 64 + 1, 8);
	if (repair)
		dir_mend(c, si, dir, g);
	for (i = 0; i < (1u << g); i += (uint32_t)len) {
		/* more segments than the file has pages: some named twice */
		if (++segs > atomic_load(&h->valid) / SEG_BYTES) {
			chk_report(c, "shard %u: the directory names more "
				   "segments than the file holds", si);
			break;
		}
		len = check_segment(h, si, dir, g, i, c, repair);
		if (len < 0)
			break;
	}
	free(c->uid_seen);
	c->uid_seen = NULL;
	if (i < (1u << g))
		return;
	check_counters(sh, si, c, repair);
	check_free_lists(h, sh, si, c, repair);
	check_cell_lists(h, sh, si, c, repair);
}

SHF_EXPORT uint32_t shf_check(SHF *h, uint32_t flags, shf_check_cb_t cb,
			      void *arg)
{
	struct chk c = { cb, arg, 0, 0, 0, 0, 0, NULL, 0, NULL, 0 };
	uint32_t si;

	if (!h || (flags & ~SHF_CHECK_REPAIR)) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	c.free_left = atomic_load(&h->valid) / REC_MIN + 1;
	c.seg_seen_n = atomic_load(&h->valid) / PAGE + 1;
	c.seg_seen = calloc(c.seg_seen_n / 64 + 1, 8);
	for (si = 0; si < NSHARDS; si++) {
		struct shard *sh = &h->shards[si];

		if (shard_lock(h, sh) < 0) {
			free(c.seg_seen);
			return UINT32_MAX;
		}
		check_shard(h, si, &c, flags & SHF_CHECK_REPAIR);
		shard_unlock(h, sh);
	}
	free(c.seg_seen);
	if ((flags & SHF_CHECK_REPAIR) && atomic_load(&h->h->byte_budget)) {
		uint32_t n = lock_all(h);

		if (n == NSHARDS)
			cache_bytes_recount(h);
		unlock_all(h, n);
	}
	return c.problems;
}
