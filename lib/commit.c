// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * commit.c - the three changes a writer makes to a shard it holds locked:
 * a new key, a replaced record, a deleted key.  Each writes its new record
 * first, notes the operation in the shard's journal, commits with one
 * store into the index slot and then tidies up (UID entry, old record,
 * counters); shard.c replays or undoes a journal left by a writer that
 * died anywhere in between.
 */
#include "config.h"
#include <errno.h>
#include <limits.h>

#include "table.h"

/*
 * Write a new record for the found key with value (val, vlen) — or, when
 * cb is set, a copy of the old value passed through cb — and commit it with
 * one store into the slot.  kflags (KF_*) and expiry are the new record's.
 */
int replace_rec(SHF *h, struct shard *sh, struct found *f, const void *val,
		uint32_t vlen, int from_old, rec_edit_fn cb, void *cb_arg,
		uint32_t *cb_ret, uint32_t kflags, uint64_t expiry)
{
	uint32_t hlen, kind, was_lease = f->r.flags & KF_LEASE;
	uint64_t size = rec_size_for(h, f->r.klen, vlen, kflags, &hlen, &kind),
		 ro;

	ro = shard_alloc(h, sh, size);
	if (!ro)
		return -1;
	rec_write(h, ro, kind, f->r.uid, f->r.key, f->r.klen,
		  from_old ? f->r.val : val, vlen, hlen, expiry);
	if (cb) {
		*cb_ret = cb(cb_arg, (char *)h->base + ro + hlen + f->r.klen,
			     vlen);
		if (*cb_ret != SHF_RET_OK) {
			/* the value stays as it was */
			shard_free(h, sh, ro, size);
			return 1;
		}
	}
	sh->j.uid = f->r.uid;
	sh->j.slot_off = (uint64_t)((uint8_t *)f->slot - h->base);
	sh->j.slot_old = f->sval;
	sh->j.slot_new = slot_make(slot_tag(f->sval), ro);
	sh->j.rec_old = f->rec_off;
	sh->j.rec_new = ro;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + rec_cost(size) -
			     rec_cost(f->r.size);
	barrier();
	sh->j.op = OP_REPLACE;
	barrier();
	CRASH(CP_REPL_WRITTEN);
	st64(f->slot, sh->j.slot_new); /* commit */
	CRASH(CP_REPL_COMMITTED);
	{
		uint64_t *e = uid_entry(h, sh, f->r.uid);

		if (e)
			st64(e, ro);
	}
	CRASH(CP_REPL_UID);
	rec_free(h, sh, f->rec_off);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	f->rec_off = ro;
	f->sval = sh->j.slot_new;
	rec_get(h, ro, &f->r);
	if (was_lease)
		lease_end(sh);
	return 0;
}

int insert_new(SHF *h, struct shard *sh, uint64_t hash,
		      const void *key, uint32_t klen, const void *val,
		      uint32_t vlen, uint32_t kflags, uint64_t expiry,
		      uint32_t *ul_out)
{
	uint32_t hlen, kind, ul;
	uint64_t size = rec_size_for(h, klen, vlen, kflags, &hlen, &kind), ro,
		 *slot;

	ro = shard_alloc(h, sh, size);
	if (!ro)
		return -1;
	ul = uid_alloc(h, sh, ro);
	if (ul == UINT32_MAX) {
		int e = errno;

		shard_free(h, sh, ro, size);
		errno = e;
		return -1;
	}
	rec_write(h, ro, kind, ul, key, klen, val, vlen, hlen, expiry);
	sh->j.uid = ul;
	sh->j.rec_new = ro;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + rec_cost(size);
	barrier();
	sh->j.op = OP_NEW;
	barrier();
	CRASH(CP_NEW_WRITTEN);
	slot = idx_insert(h, sh, hash);
	if (!slot) {
		int e = errno;

		uid_release(h, sh, ul);
		shard_free(h, sh, ro, size);
		sh->j.op = OP_NONE;
		errno = e;
		return -1;
	}
	st64(slot, slot_make(tag_of(hash), ro)); /* commit */
	CRASH(CP_NEW_COMMITTED);
	ctr_set(&sh->nkeys, sh->j.nkeys_before + 1);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	*ul_out = ul;
	return 0;
}

void delete_found(SHF *h, struct shard *sh, struct found *f)
{
	uint64_t cost = rec_cost(f->r.size);

	sh->j.uid = f->r.uid;
	sh->j.slot_off = (uint64_t)((uint8_t *)f->slot - h->base);
	sh->j.slot_old = f->sval;
	sh->j.rec_old = f->rec_off;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before - cost;
	barrier();
	sh->j.op = OP_DEL;
	barrier();
	st64(f->slot, 0); /* commit */
	CRASH(CP_DEL_COMMITTED);
	uid_release(h, sh, f->r.uid);
	CRASH(CP_DEL_UID);
	rec_free(h, sh, f->rec_off);
	ctr_set(&sh->nkeys, sh->j.nkeys_before - 1);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	if (atomic_load_explicit(&h->h->byte_budget, memory_order_relaxed))
		atomic_fetch_sub(&h->h->cache_bytes, cost);
	if (f->r.flags & KF_LEASE)
		lease_end(sh);
}

/* A lease ended (its record replaced or deleted): wake its waiters. */
void lease_end(struct shard *sh)
{
	atomic_fetch_add(&sh->lease_seq, 1);
	shf_futex_wake((uint32_t *)&sh->lease_seq, INT_MAX);
}

