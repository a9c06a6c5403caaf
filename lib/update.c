// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * update.c - changes to a value in place, under the shard's lock: the
 * thread's update callback (SharedHashFile's convention: it returns 0 to
 * keep its change, other flags are ORed into the result) works on a copy
 * that one store commits, so a crash leaves the old value or the new;
 * atomic adds to values that are a long.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

/* The thread's callback and the preset of the built-in one. */
static __thread struct {
	shf_upd_callback_t cb;
	uint32_t len; /* of the preset, in shf_tls.upd_val */
	int v1; /* set by a libshf 1.0/1.1 binary: cb returns val_len */
} upd SHF_TLS_IE;

/*
 * The thread's callback on the copy at val: 0 to commit it, else the
 * flags to OR into the result.  A callback set by a binary built for
 * libshf 1.0 or 1.1 returned val_len to commit; anything else meant
 * SHF_RET_BAD_CB.
 */
static uint32_t upd_call(void *arg, char *val, uint32_t vlen)
{
	uint32_t r = upd.cb(val, vlen);

	(void)arg;
	if (upd.v1)
		return r == vlen ? SHF_RET_OK : SHF_RET_BAD_CB;
	return r;
}

/* The built-in callback of shf_upd_callback_copy(). */
static uint32_t copy_cb(const char *val, uint32_t val_len)
{
	if (val_len != upd.len)
		return SHF_RET_BAD_CB;
	memcpy((char *)val, shf_tls.upd_val, val_len);
	return SHF_RET_OK;
}

/* Both versions are bound with .symver, as glibc does for its compat ones. */
void shf_upd_callback_set_v2(shf_upd_callback_t cb);
__asm__(".symver shf_upd_callback_set_v2,shf_upd_callback_set@@LIBSHF_1.2");
SHF_EXPORT void shf_upd_callback_set_v2(shf_upd_callback_t cb)
{
	upd.cb = cb;
	upd.v1 = 0;
}

/*
 * Binaries built for libshf 1.0 and 1.1 bind this one: their callbacks
 * return val_len to commit (see upd_call()).
 */
void shf_upd_callback_set_v1(shf_upd_callback_t cb);
__asm__(".symver shf_upd_callback_set_v1,shf_upd_callback_set@LIBSHF_1.0");
SHF_EXPORT void shf_upd_callback_set_v1(shf_upd_callback_t cb)
{
	upd.cb = cb;
	upd.v1 = 1;
}

SHF_EXPORT uint32_t shf_upd_callback_copy(const char *val, uint32_t val_len)
{
	if ((!val && val_len) ||
	    shf_tls_reserve(&shf_tls.upd_val, &shf_tls.upd_cap,
			    val_len + 1ULL) < 0) {
		if (!val && val_len)
			errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (val_len)
		memcpy(shf_tls.upd_val, val, val_len);
	upd.len = val_len;
	upd.cb = copy_cb;
	upd.v1 = 0;
	return SHF_RET_OK;
}

/*
 * Update: copy the record, let the callback change the copy, commit the copy
 * with one store (a crash leaves the old value or the new, never a mix).
 * The key keeps its expiry.
 */
static uint32_t do_upd(SHF *h, int by_uid, uint32_t uid)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash;
	uint32_t ret, ul, cb_ret = SHF_RET_OK;
	int rc, vis;
	struct shard *sh;

	sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);
	if (rc == -2)
		return SHF_RET_ERROR;
	if (!vis)
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	if (!upd.cb) { /* no callback set in this thread */
		errno = EINVAL;
		return unlock_ret(h, sh, SHF_RET_ERROR);
	}
	ul = f.r.uid;
	shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
	rc = replace_rec(h, sh, &f, NULL, f.r.vlen, 1, upd_call, NULL, &cb_ret,
			 f.r.flags & KF_TTL, f.r.expiry);
	/* again: a callback that called libshf (on another shard) set it */
	shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
	if (rc < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	ret = SHF_RET_KEY_FOUND;
	if (rc > 0)
		ret |= cb_ret;
	return unlock_ret(h, sh, ret);
}

SHF_EXPORT uint32_t shf_upd_key_val(SHF *h)
{
	return do_upd(h, 0, 0);
}

SHF_EXPORT uint32_t shf_upd_uid_val(SHF *h, uint32_t uid)
{
	return do_upd(h, 1, uid);
}

static uint32_t do_add(SHF *h, int by_uid, uint32_t uid, long add)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash, expiry;
	long v;
	uint32_t ul, kflags;
	int rc, vis;
	struct shard *sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);

	if (rc == -2)
		return SHF_RET_ERROR;
	if (!vis) {
		int expired = rc == 1 && rec_expired(&f.r, &c);

		if (by_uid || add == 0)
			return unlock_ret(h, sh, SHF_RET_KEY_NONE);
		if (h->h->fixed_set && (shf_tls.key_len != h->h->fixed_klen ||
					h->h->fixed_vlen != sizeof(long))) {
			errno = EINVAL;
			return unlock_ret(h, sh, SHF_RET_ERROR | SHF_RET_BAD_VAL);
		}
		expiry = ttl_expiry(h, atomic_load(&h->h->ttl_default), &c,
				    &kflags);
		if (store(h, sh, &f, rc == 1, hash, &add, sizeof(long), kflags,
			  expiry, &c, &ul) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
		if (expired)
			ctr_add(&sh->expirations, 1);
		ctr_add(&sh->puts, 1);
		shf_val_long = add;
		shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
	}
	shf_uid = uid_make((uint32_t)(sh - h->shards), f.r.uid);
	if (f.r.vlen != sizeof(long))
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	memcpy(&v, f.r.val, sizeof(v));
	v = (long)((unsigned long)v + (unsigned long)add);
	shf_val_long = v;
	if (v == 0) {
		delete_found(h, sh, &f);
		ctr_add(&sh->dels, 1);
		shf_uid = SHF_UID_NONE;
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
	}
	/* through store(): the sum may go into the key's cell or out of
	 * it, whose headers differ, and the budget's count follows */
	if (store(h, sh, &f, 1, hash, &v, sizeof(v), f.r.flags & KF_TTL,
		  f.r.expiry, &c, &ul) < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
}

SHF_EXPORT uint32_t shf_add_key_val(SHF *h, long add)
{
	return do_add(h, 0, 0, add);
}

SHF_EXPORT uint32_t shf_add_uid_val(SHF *h, uint32_t uid, long add)
{
	return do_add(h, 1, uid, add);
}

/* The sum is published with one store under the shard's lock, so the two
 * flavours are equally atomic; _atom is kept for source compatibility. */
SHF_EXPORT uint32_t shf_add_key_val_atom(SHF *h, long add)
{
	return do_add(h, 0, 0, add);
}

SHF_EXPORT uint32_t shf_add_uid_val_atom(SHF *h, uint32_t uid, long add)
{
	return do_add(h, 1, uid, add);
}
