// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * record.c - records and UIDs.  A record is a header (kind and local UID
 * in one word, then the lengths), an optional expiry, the key and the
 * value, 4-aligned; the word with the kind is written last, so a record is
 * either whole or not one.  A UID names an entry of the shard's UID table
 * that points at the key's record wherever it moves; free entries form a
 * list through the table.  rec_get() is inline in table.h.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

void rec_write(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
		      const void *key, uint32_t klen, const void *val,
		      uint32_t vlen, uint32_t hlen, uint64_t expiry)
{
	uint8_t *p = h->base + off;
	uint32_t *w = (uint32_t *)p;

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
	if (val)
		memmove(p + hlen + klen, val, vlen);
	else
		memset(p + hlen + klen, 0, vlen);
	barrier();
	__atomic_store_n(w, (kind << 24) | uid, __ATOMIC_RELEASE);
}

void rec_free(SHF *h, struct shard *sh, uint64_t off)
{
	struct rec r;

	if (!rec_get(h, off, &r))
		return;
	shard_free(h, sh, off, r.size);
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

/* Double the shard's directory of UID pages; 0, or -1 with errno. */
static int uid_dir_grow(SHF *h, struct shard *sh)
{
	/* each word read once: what is copied and freed is what was checked */
	uint32_t ocap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED),
		 ncap = ocap ? ocap * 2 : 4;
	uint64_t od = ld64(&sh->uid_dir), nd;
	uint64_t *n, *o;

	if (ncap > UID_LOCAL_MAX / UID_PAGE_ENTRIES + 1) {
		errno = EBADMSG; /* more pages than UIDs */
		return -1;
	}
	nd = shard_alloc_a(h, sh, (uint64_t)ncap * 8, 1);
	if (!nd)
		return -1;
	n = at(h, nd, (uint64_t)ncap * 8);
	o = ocap ? at(h, od, (uint64_t)ocap * 8) : NULL;
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

/* Give UID page pi (new) a page of entries; 0, or -1 with errno. */
static int uid_page_add(SHF *h, struct shard *sh, uint32_t pi)
{
	uint64_t *dir, page;
	uint32_t cap;

	if (pi >= sh->uid_dir_cap && uid_dir_grow(h, sh) < 0)
		return -1;
	page = shard_alloc_a(h, sh, UID_PAGE_ENTRIES * 8, 1);
	if (!page)
		return -1;
	/* each word once: the index checked is checked against this array */
	cap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_RELAXED);
	dir = at(h, ld64(&sh->uid_dir), (uint64_t)cap * 8);
	if (!dir || pi >= cap ||
	    !at(h, page, UID_PAGE_ENTRIES * 8)) {
		errno = EBADMSG;
		return -1;
	}
	memset(h->base + page, 0, UID_PAGE_ENTRIES * 8);
	barrier();
	st64(&dir[pi], page);
	return 0;
}

/* A free uid_local, its entry pointing at rec; UINT32_MAX + errno if none */
uint32_t uid_alloc(SHF *h, struct shard *sh, uint64_t rec)
{
	uint64_t *e;
	uint32_t ul;

	if (sh->uid_free) {
		ul = sh->uid_free - 1;
		e = uid_entry(h, sh, ul);
		if (e && (ld64(e) & 1)) {
			uint64_t nx = ld64(e) >> 1;

			sh->uid_free = nx <= UID_LOCAL_MAX + 1 ? (uint32_t)nx : 0;
			st64(e, rec);
			return ul;
		}
		sh->uid_free = 0; /* corrupt list: abandon it */
	}
	ul = sh->uid_next;
	if (ul > UID_LOCAL_MAX) {
		errno = EOVERFLOW;
		return UINT32_MAX;
	}
	if ((ul / UID_PAGE_ENTRIES >= sh->uid_dir_cap ||
	     !uid_entry(h, sh, ul)) &&
	    uid_page_add(h, sh, ul / UID_PAGE_ENTRIES) < 0)
		return UINT32_MAX;
	e = uid_entry(h, sh, ul);
	if (!e) {
		errno = EBADMSG;
		return UINT32_MAX;
	}
	st64(e, rec);
	barrier();
	sh->uid_next = ul + 1;
	return ul;
}

void uid_release(SHF *h, struct shard *sh, uint32_t ul)
{
	uint64_t *e = uid_entry(h, sh, ul);

	if (!e || sh->uid_free == ul + 1)
		return;
	st64(e, ((uint64_t)sh->uid_free << 1) | 1);
	barrier();
	sh->uid_free = ul + 1;
}
