// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * iterate.c - walks over every live pair: each shard is copied whole and
 * consistent (seqlock, then its lock after a few tries) into a private
 * buffer, and the caller's code runs on the copy with no lock held.  A key
 * that lives through the walk is seen exactly once.
 */
#include "config.h"
#include <errno.h>
#include <stdlib.h>

#include "table.h"

struct snap {
	char *buf;
	uint64_t len, cap;
	uint32_t count;
	uint64_t *seen; /* a bit a local UID, of seen_cap words */
	uint64_t seen_cap;
};

static void snap_free(struct snap *s)
{
	free(s->buf);
	free(s->seen);
}

/*
 * No UID seen yet of a shard whose slab directory holds cap slabs: *n
 * bits for them; 0, or -1 (no memory for them).
 */
static int snap_seen_clear(struct snap *s, uint32_t cap, uint32_t *n)
{
	uint64_t words;

	*n = uid_bits_n(cap);
	words = *n / 64 + 1;
	if (words > s->seen_cap) {
		uint64_t *p = realloc(s->seen, words * 8);

		if (!p)
			return -1;
		s->seen = p;
		s->seen_cap = words;
	}
	memset(s->seen, 0, words * 8);
	return 0;
}

static int snap_add(struct snap *s, struct rec *r, uint32_t uid)
{
	uint64_t need = 12 + (uint64_t)r->klen + r->vlen;
	uint32_t hdr[3] = { uid, r->klen, r->vlen };

	if (s->len + need > s->cap) {
		uint64_t n = s->cap ? s->cap : 4096;
		char *p;

		while (n < s->len + need)
			n *= 2;
		p = realloc(s->buf, n);
		if (!p) {
			errno = ENOMEM;
			return -1;
		}
		s->buf = p;
		s->cap = n;
	}
	memcpy(s->buf + s->len, hdr, 12);
	memcpy(s->buf + s->len + 12, r->key, r->klen);
	memcpy(s->buf + s->len + 12 + r->klen, r->val, r->vlen);
	s->len += need;
	s->count++;
	return 0;
}

/* Copy the live pairs of one shard into s; 0, -1 error, 1 retry. */
static int snap_shard_once(SHF *h, uint32_t si, struct snap *s)
{
	struct shard *sh = &h->shards[si];
	struct clk c = { 0 };
	uint32_t g, i, k;
	uint64_t *dir = dir_get(h, atomic_load_explicit(&sh->dir_word,
							memory_order_acquire),
				&g);
	/*
	 * A directory naming more segments than the file has pages for, or
	 * records that add up to more than the file, names some twice: it
	 * is damaged (else the walk could copy the same records for ever).
	 */
	uint64_t valid = atomic_load(&h->valid), segs = 0;
	/*
	 * A UID that two slots name (one copied by another process, a
	 * damage shf_check() repairs) is one key, seen once.
	 */
	uint32_t seen_n;

	s->len = 0;
	s->count = 0;
	/* no memory for the bits: a walk without them, as before them */
	if (snap_seen_clear(s, __atomic_load_n(&sh->uid_dir_cap,
					       __ATOMIC_ACQUIRE),
			    &seen_n) < 0)
		seen_n = 0;
	if (!dir)
		return 1;
	for (i = 0; i < (1u << g); i++) {
		uint64_t de = ld64(&dir[i]), *seg;
		uint32_t l = (uint32_t)(de & 63);

		if (l > g)
			return 1;
		if (i & ((1u << (g - l)) - 1))
			continue; /* not the first entry for this segment */
		/* segments are whole pages (as the lookup and check expect) */
		seg = (de & ~63ULL & (PAGE - 1)) ? NULL :
						   at(h, de & ~63ULL, SEG_BYTES);
		if (!seg || ++segs > valid / SEG_BYTES)
			return 1;
		for (k = 0; k < SEG_SLOTS; k++) {
			uint64_t sv = slot_ld(seg_slot(seg, k));
			struct rec r;
			int bad;

			if (!sv)
				continue;
			if (!uid_find(h, sh, slot_ul(sv), &r, &bad))
				return 1;
			if (bit_seen(s->seen, seen_n, slot_ul(sv)))
				continue;
			if (!rec_visible(&r, &c))
				continue; /* expired, or a lease */
			if (s->len + 12 + (uint64_t)r.klen + r.vlen > valid)
				return 1;
			if (snap_add(s, &r, uid_make(si, r.uid)) < 0)
				return -1;
		}
	}
	return 0;
}

static int snap_shard(SHF *h, uint32_t si, struct snap *s)
{
	struct shard *sh = &h->shards[si];
	uint32_t tries, q;
	int rc;

	for (tries = 0; tries < 8; tries++) {
		q = read_begin(sh);
		if (q & 1) {
			shf_cpu_relax();
			continue;
		}
		rc = snap_shard_once(h, si, s);
		/* a failure (ENOMEM for lengths a writer was changing) counts
		 * only if no writer came meanwhile */
		if (read_retry(sh, q))
			continue;
		if (rc < 0)
			return -1;
		if (rc == 0)
			return 0;
	}
	if (shard_lock(h, sh) < 0)
		return -1;
	rc = snap_shard_once(h, si, s);
	shard_unlock(h, sh);
	if (rc > 0) {
		errno = EBADMSG;
		rc = -1;
	}
	return rc;
}

SHF_EXPORT uint32_t shf_iterate(SHF *h, shf_iterate_cb_t cb, void *arg)
{
	struct snap s = { 0 };
	uint32_t si, n;
	uint64_t off;

	if (!h || !cb) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	for (si = 0; si < NSHARDS; si++) {
		if (snap_shard(h, si, &s) < 0) {
			snap_free(&s);
			return SHF_RET_ERROR;
		}
		for (n = 0, off = 0; n < s.count; n++) {
			uint32_t hd[3];

			memcpy(hd, s.buf + off, 12);
			if (cb(s.buf + off + 12, hd[1], s.buf + off + 12 + hd[1],
			       hd[2], hd[0], arg)) {
				snap_free(&s);
				return SHF_RET_OK;
			}
			off += 12 + (uint64_t)hd[1] + hd[2];
		}
	}
	snap_free(&s);
	return SHF_RET_OK;
}

/*
 * SharedHashFile's raw walk, kept for source compatibility: copies the live
 * pairs of shard *win into shf_val as records of u32 uid, u32 key length,
 * u32 value length, key, value; shf_val_len is the bytes copied.  Then
 * advances *win (and sets *tab to 0); past the last shard shf_val_len is 0.
 */
SHF_EXPORT void shf_tab_copy_iterate(SHF *h, uint32_t *win, uint32_t *tab)
{
	struct snap s = { 0 };
	int rc;

	shf_val_len = 0;
	shf_tab = NULL;
	shf_tab_len = 0;
	if (!h || !win || !tab || *win >= NSHARDS) {
		errno = EINVAL;
		return;
	}
	rc = snap_shard(h, *win, &s);
	if (rc == 0 && s.len > UINT32_MAX - 1) {
		errno = EOVERFLOW; /* a shard of 4 GiB: no length to say it */
		rc = -1;
	}
	if (rc == 0 &&
	    shf_tls_reserve(&shf_tls.val, &shf_tls.val_cap, s.len + 1) == 0) {
		if (s.len)
			memcpy(shf_tls.val, s.buf, s.len);
		shf_tls.val[s.len] = '\0'; /* as every copy shf_val holds */
		shf_val = shf_tls.val;
		shf_val_len = (uint32_t)s.len;
		shf_tab = shf_tls.val;
		shf_tab_len = (uint32_t)s.len;
	}
	snap_free(&s);
	*win = (*win + 1) % NSHARDS; /* 0 again: the walk is complete */
	*tab = 0;
}
