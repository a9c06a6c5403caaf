// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * record.c - records and the cells UIDs name.  A record is a header (kind
 * and, in one word, its lengths in its UID's cell (K_HOME) or its local
 * UID elsewhere, then the lengths), an optional expiry, the key and the
 * value, 4-aligned; the word with the kind is written last, so a record is
 * either whole or not one.  A UID names a cell: UIDs come in
 * slabs of SLAB_CELLS, each the cells of one size class side by side (the
 * shard's slab directory says where and which class), and a key's record
 * lives in its UID's cell, or elsewhere with the cell forwarding to it
 * (K_FWD) when it outgrew the cell's class.  Free cells form a list per
 * class through their first two words.  rec_get(), cell_of() and uid_rec()
 * are inline in table.h.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

/*
 * The record at off.  Its word with the kind goes last, after the value
 * (head_first 0), or right after the key (head_first 1: a record that no
 * reader can reach yet and that the journal names, so that a writer killed
 * while it copies the value leaves a whole header and key, which recovery
 * knows and frees).
 */
static inline __attribute__((always_inline)) void
rec_put(SHF *h, uint64_t off, uint32_t kind, uint32_t uid, const void *key,
	uint32_t klen, const void *val, uint32_t vlen, uint32_t hlen,
	uint64_t expiry, int head_first)
{
	uint8_t *p = h->base + off;
	uint32_t *w = (uint32_t *)p;
	/* the word's low 24 bits: a home record's lengths, else its UID */
	uint32_t lo = (kind & ~KF_MASK) == K_HOME ? klen << 12 | vlen : uid;

	if (kind & KF_TTL)
		memcpy(p + hlen - 8, &expiry, 8);
	switch (kind & ~KF_MASK) {
	case K_TINY:
		p[4] = (uint8_t)klen;
		p[5] = (uint8_t)vlen;
		break;
	case K_SMALL:
		w[1] = klen | (vlen << 8);
		break;
	case K_LARGE:
		w[1] = klen;
		w[2] = vlen;
		break;
	default:
		break;
	}
	/*
	 * memmove: key and val may be the old record's, in the file, and a
	 * damaged free list can hand out a place that overlaps them (the
	 * bytes are then wrong, as the file is, but nothing is undefined).
	 */
	memmove(p + hlen, key, klen);
	if (head_first) {
		barrier();
		__atomic_store_n(w, (kind << 24) | lo, __ATOMIC_RELEASE);
	}
	if (val)
		memmove(p + hlen + klen, val, vlen);
	else
		memset(p + hlen + klen, 0, vlen);
	barrier();
	if (!head_first)
		__atomic_store_n(w, (kind << 24) | lo, __ATOMIC_RELEASE);
}

void rec_write(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
	       const void *key, uint32_t klen, const void *val, uint32_t vlen,
	       uint32_t hlen, uint64_t expiry)
{
	rec_put(h, off, kind, uid, key, klen, val, vlen, hlen, expiry, 0);
}

void rec_write_named(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
		     const void *key, uint32_t klen, const void *val,
		     uint32_t vlen, uint32_t hlen, uint64_t expiry)
{
	rec_put(h, off, kind, uid, key, klen, val, vlen, hlen, expiry, 1);
}

void rec_free(SHF *h, struct shard *sh, uint64_t off)
{
	struct rec r;
	int c;

	if (!rec_get(h, off, &r))
		return;
	/* a push onto the shard's own list is noted: recovery may finish it */
	c = free_class(r.size);
	sh->j.free_cls = c < 0 ? 0 : (uint32_t)c + 1;
	barrier();
	shard_free(h, sh, off, r.size);
	barrier();
	sh->j.free_cls = 0;
}

/* Bytes a record of size bytes counts for in the budget (its class). */
uint64_t rec_cost(uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1)))
		return big_bound(size, &c);
	cls_of(size, &b);
	return b;
}

/* Double the shard's slab directory; 0, or -1 with errno. */
static int uid_dir_grow(SHF *h, struct shard *sh)
{
	/* each word read once: what is copied and freed is what was checked */
	uint32_t ocap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED),
		 ncap = ocap ? ocap * 2 : 4;
	uint64_t od = ld64(&sh->uid_dir), nd;
	uint64_t *n, *o;

	if (ncap > UID_LOCAL_MAX / SLAB_CELLS + 1) {
		errno = EBADMSG; /* more slabs than UIDs */
		return -1;
	}
	nd = shard_alloc_a(h, sh, (uint64_t)ncap * 8, 1);
	if (!nd)
		return -1;
	n = at(h, nd, (uint64_t)ncap * 8);
	/* an array that is not 8-aligned is not one: neither copied nor freed */
	o = ocap && !(od & 7) ? at(h, od, (uint64_t)ocap * 8) : NULL;
	if (!n) {
		errno = EBADMSG;
		return -1;
	}
	memset(n, 0, (uint64_t)ncap * 8);
	if (o) /* memmove: a damaged file may give n over o */
		memmove(n, o, (uint64_t)ocap * 8);
	barrier();
	/* cap is checked against dir size by readers: publish the bigger
	 * array first, then its capacity */
	st64(&sh->uid_dir, nd);
	barrier();
	__atomic_store_n(&sh->uid_dir_cap, ncap, __ATOMIC_RELEASE);
	if (o)
		shard_free(h, sh, od, (uint64_t)ocap * 8);
	return 0;
}

/* The number of cells of the slab of UIDs from first on (the last has 63). */
static uint32_t slab_cells(uint64_t first)
{
	return UID_LOCAL_MAX + 1 - first < SLAB_CELLS ?
		       (uint32_t)(UID_LOCAL_MAX + 1 - first) : SLAB_CELLS;
}

/*
 * The link of cell i of a new slab of n cells (UIDs from first on), as
 * slab_add() writes it: the next cell's UID + 1, 0 after the last.
 */
static uint32_t slab_link(uint32_t first, uint32_t i, uint32_t n)
{
	return i + 1 < n ? first + i + 2 : 0;
}

/*
 * The slab of n cells of class c from UID first on heads the class's list
 * now: its cells are free space until handed out.
 */
static void slab_listed(struct shard *sh, uint32_t c, uint32_t first,
			uint32_t n)
{
	st32(&sh->cell_free[c], first + 1);
	ctr_sub(&sh->bytes_used, n * cls_bound(c));
	ctr_add(&sh->bytes_free, n * cls_bound(c));
}

/*
 * Directory entry si (word e), where the shard's count of UIDs says the
 * next slab goes, names a slab: one that a writer killed in slab_add() had
 * published but not counted.  Count it and put its cells on their class's
 * list, as slab_add() would have, if they still are exactly the chain of
 * free cells it wrote (anything else is damage, passed over for good).
 * Its class, or -1.
 */
static int slab_adopt(SHF *h, struct shard *sh, uint32_t si, uint64_t e)
{
	uint32_t c = (uint32_t)(e >> 48), first = si * SLAB_CELLS, n, i, hd;
	uint64_t b, slab = e & ((1ULL << 48) - 1);
	uint8_t *p;

	if (c < REC_MIN / 4 || c > CELL_CLASSES || (slab & 7))
		return -1;
	b = cls_bound(--c);
	p = at(h, slab, SLAB_CELLS * b);
	n = slab_cells(first);
	hd = sh->cell_free[c];
	if (!p || (hd > first && hd <= first + n))
		return -1;
	for (i = 0; i < n; i++) {
		const uint32_t *w = (const uint32_t *)(p + i * b);

		if (w[0] != CELL_FREE || w[1] != slab_link(first, i, n))
			return -1;
	}
	/* counted first: killed before the list takes it, it is lost, never
	 * listed twice */
	sh->uid_next = first + SLAB_CELLS;
	barrier();
	((uint32_t *)(p + (n - 1) * b))[1] = hd;
	barrier();
	slab_listed(sh, c, first, n);
	return (int)c;
}

/*
 * A new slab of class c for the shard's next SLAB_CELLS UIDs, its cells
 * on the class's (empty) list; 0, or -1 with errno.  A writer that dies
 * in here leaves UIDs unused, nothing pointing wrong; the next call takes
 * back a slab it published but did not count (slab_adopt()).
 */
static int slab_add(SHF *h, struct shard *sh, uint32_t c)
{
	uint64_t first = sh->uid_next, b = cls_bound(c), doff, slab, *dir, e;
	uint32_t si, at_count, cap, i, n, grown = 0;
	uint8_t *p;

	/* a count past the directory's end is damaged: go on from there */
	cap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED);
	if (first > (uint64_t)cap * SLAB_CELLS)
		first = (uint64_t)cap * SLAB_CELLS;
	si = at_count = (uint32_t)((first + SLAB_CELLS - 1) / SLAB_CELLS);
	/*
	 * The entries from the count on are empty, but for a slab published
	 * by a writer killed before it counted it (taken back) or damage
	 * (passed over: never reused); past the directory's end it grows (a
	 * fresh directory's new half is empty: twice at most).
	 */
	for (;;) {
		if ((uint64_t)si * SLAB_CELLS > UID_LOCAL_MAX) {
			errno = EOVERFLOW;
			return -1;
		}
		if (si >= __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED)) {
			if (grown++ == 2) {
				errno = EBADMSG;
				return -1;
			}
			if (uid_dir_grow(h, sh) < 0)
				return -1;
		}
		/* each word once: the index checked is checked against this
		 * array */
		cap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED);
		doff = ld64(&sh->uid_dir); /* the directory's offset, read once */
		dir = doff & 7 ? NULL : at(h, doff, (uint64_t)cap * 8);
		if (!dir || si >= cap) {
			errno = EBADMSG;
			return -1;
		}
		while (si < cap && (e = ld64(&dir[si])) != 0) {
			/* only where the count says the next slab goes */
			if (si == at_count && slab_adopt(h, sh, si, e) == (int)c)
				return 0;
			si++;
		}
		if (si < cap)
			break;
	}
	first = (uint64_t)si * SLAB_CELLS;
	if (first > UID_LOCAL_MAX) { /* a damaged capacity let the walk on */
		errno = EOVERFLOW;
		return -1;
	}
	slab = shard_alloc_a(h, sh, SLAB_CELLS * b, 1);
	if (!slab)
		return -1;
	p = at(h, slab, SLAB_CELLS * b);
	if (!p || slab >= (1ULL << 48)) {
		errno = EBADMSG;
		return -1;
	}
	n = slab_cells(first);
	for (i = 0; i < n; i++) {
		uint32_t *w = (uint32_t *)(p + i * b);

		w[1] = slab_link((uint32_t)first, i, n);
		w[0] = CELL_FREE;
	}
	barrier();
	st64(&dir[si], slab | (uint64_t)(c + 1) << 48);
	CRASH(CP_SLAB_ADDED);
	barrier();
	sh->uid_next = (uint32_t)first + SLAB_CELLS;
	slab_listed(sh, c, (uint32_t)first, n);
	return 0;
}

/* Pop the head of class c's list: its UID, or UINT32_MAX (empty or bad). */
static uint32_t cell_pop(SHF *h, struct shard *sh, uint32_t c, uint64_t *off)
{
	uint32_t ul, hc, nx, *w;

	if (!sh->cell_free[c])
		return UINT32_MAX;
	ul = sh->cell_free[c] - 1;
	*off = cell_of(h, sh, ul, &hc);
	w = *off ? (uint32_t *)(h->base + *off) : NULL;
	if (!w || hc != c || __atomic_load_n(w, __ATOMIC_RELAXED) != CELL_FREE) {
		st32(&sh->cell_free[c], 0); /* a damaged list: abandon it */
		return UINT32_MAX;
	}
	nx = w[1];
	/* named first: recovery puts it back (cell_release() also finishes
	 * a pop that stopped half way) */
	sh->j.uid = ul;
	barrier();
	sh->j.op = OP_TAKE;
	barrier();
	st32(&sh->cell_free[c], nx <= UID_LOCAL_MAX + 1 ? nx : 0);
	/* neither free nor a record: cell_release() takes it back */
	__atomic_store_n(w, 0, __ATOMIC_RELAXED);
	ctr_sub(&sh->bytes_free, cls_bound(c));
	ctr_add(&sh->bytes_used, cls_bound(c));
	return ul;
}

uint32_t cell_alloc(SHF *h, struct shard *sh, uint32_t c, uint64_t *off)
{
	uint32_t ul = cell_pop(h, sh, c, off);

	if (ul != UINT32_MAX)
		return ul;
	if (slab_add(h, sh, c) < 0)
		return UINT32_MAX;
	ul = cell_pop(h, sh, c, off);
	if (ul == UINT32_MAX)
		errno = EBADMSG;
	return ul;
}

void cell_release(SHF *h, struct shard *sh, uint32_t ul)
{
	uint32_t c, *w;
	uint64_t off = cell_of(h, sh, ul, &c), to;

	if (!off)
		return;
	w = (uint32_t *)(h->base + off);
	if (__atomic_load_n(w, __ATOMIC_RELAXED) == CELL_FREE) {
		/* a push that a dead writer left half done: finish it */
		if (w[1] == sh->cell_free[c] && sh->cell_free[c] != ul + 1)
			st32(&sh->cell_free[c], ul + 1);
		return;
	}
	if (!cell_holds(h, off, ul, &to) || sh->cell_free[c] == ul + 1)
		return; /* another UID's (a damaged directory): leave it */
	w[1] = sh->cell_free[c];
	barrier();
	__atomic_store_n(w, CELL_FREE, __ATOMIC_RELEASE);
	barrier();
	st32(&sh->cell_free[c], ul + 1);
	ctr_sub(&sh->bytes_used, cls_bound(c));
	ctr_add(&sh->bytes_free, cls_bound(c));
}

int cell_forward(SHF *h, uint64_t off, uint32_t ul, uint64_t rec)
{
	uint32_t *w = (uint32_t *)(h->base + off);
	uint64_t to;

	if (!cell_holds(h, off, ul, &to))
		return -1;
	memcpy(w + 1, &rec, 8);
	barrier();
	__atomic_store_n(w, (K_FWD << 24) | ul, __ATOMIC_RELEASE);
	return 0;
}
