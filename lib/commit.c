// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * commit.c - the three changes a writer makes to a shard it holds locked:
 * a new key, a replaced record, a deleted key.  Each notes the operation
 * in the shard's journal (with a copy of what it overwrites in the key's
 * cell), writes its new record, commits with one store (a new or deleted
 * key: into the index slot; a replace: into the key's cell, its forward or
 * its record's kind word, or, in place, by ending the operation) and then
 * tidies up (the old record, counters); shard.c replays or undoes a
 * journal left by a writer that died anywhere in between.
 */
#include "config.h"
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "table.h"

/* The journal's counts and records before and after, for key f. */
static void journal_note(struct shard *sh, const struct found *f,
			 uint64_t rec_new, uint64_t cost_new)
{
	sh->j.uid = f->r.uid;
	sh->j.rec_old = f->rec_off;
	sh->j.rec_new = rec_new;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + cost_new -
			     rec_cost(f->r.size);
}

/* After a replace: the found key as it is now, waking a lease's waiters. */
static void replaced(SHF *h, struct shard *sh, struct found *f,
		     uint64_t ro, uint32_t was_lease)
{
	uint32_t ul = f->r.uid;

	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	f->rec_off = ro;
	f->sval = slot_key(f->slot);
	rec_get(h, ro, &f->r);
	f->r.uid = ul; /* a home record does not say */
	if (was_lease)
		lease_end(sh);
}

/* p, or where it lies in copy when it lies in [cell, cell + len). */
static const uint8_t *in_copy(const void *p, const uint8_t *cell,
			      uint32_t len, const uint8_t *copy)
{
	uintptr_t a = (uintptr_t)p, c = (uintptr_t)cell;

	return a >= c && a < c + len ? copy + (a - c) : p;
}

/*
 * Space for a record of size bytes outside its key's cell, which the
 * journal names before it is written (rec_write_named()), so that a writer
 * killed anywhere after this loses no space: its first word is cleared
 * first, so that what was left there is not taken for a record meanwhile.
 * 0 with errno.
 */
static uint64_t alloc_named(SHF *h, struct shard *sh, uint64_t size)
{
	uint64_t ro = shard_alloc(h, sh, size);

	if (ro) {
		__atomic_store_n((uint32_t *)(h->base + ro), 0,
				 __ATOMIC_RELAXED);
		barrier();
	}
	return ro;
}

/*
 * The new record goes into the key's own cell (home, of the new record's
 * class): over the old record (OP_INPLACE, committed by the operation's
 * end), or over the forward to it (OP_REPLACE, committed by the record's
 * kind word, written last; never with cb, which would edit a committed
 * value).  Either way what the cell held is copied into the journal
 * first, and put back if the writer dies before the commit or cb refuses.
 */
static int replace_home(SHF *h, struct shard *sh, struct found *f,
			uint64_t home, uint64_t bound, const void *val,
			uint32_t vlen, int from_old, rec_edit_fn cb,
			void *cb_arg, uint32_t *cb_ret, uint32_t kind,
			uint32_t hlen, uint64_t size, uint64_t expiry)
{
	struct journal *j = &sh->j;
	uint64_t old = f->rec_off;
	int inplace = old == home;
	uint32_t keep;
	const uint8_t *cell = h->base + home, *key, *v;

	if (inplace && (f->r.size > bound || f->r.size > CELL_MAX)) {
		errno = EBADMSG;
		return -1;
	}
	keep = inplace ? (uint32_t)f->r.size : 12;
	memcpy(j->undo, cell, keep);
	j->undo_len = keep;
	journal_note(sh, f, home, rec_cost(size));
	/* what is read from the cell itself (the old key and value, or a
	 * value the caller took from it) is read from its copy */
	key = in_copy(f->r.key, cell, keep, j->undo);
	v = in_copy(from_old ? f->r.val : val, cell, keep, j->undo);
	barrier();
	j->op = inplace ? OP_INPLACE : OP_REPLACE;
	barrier();
	if (!inplace)
		CRASH(CP_REPL_WRITTEN); /* (nothing written: the writing commits) */
	rec_write(h, home, kind, f->r.uid, key, f->r.klen, v, vlen, hlen,
		  expiry);
	if (inplace)
		CRASH(CP_INPLACE);
	if (cb) {
		*cb_ret = cb(cb_arg, (char *)h->base + home + hlen + f->r.klen,
			     vlen);
		if (*cb_ret != SHF_RET_OK) {
			/* the value stays as it was */
			memcpy(h->base + home, j->undo, keep);
			barrier();
			j->op = OP_NONE;
			return 1;
		}
	}
	if (!inplace) {
		CRASH(CP_REPL_COMMITTED);
		rec_free(h, sh, old);
		CRASH(CP_REPL_UID);
	}
	replaced(h, sh, f, home, f->r.flags & KF_LEASE);
	return 0;
}

/*
 * Does a replace of the found key (whose cell holds: holds, of class hc)
 * by a home record of size bytes and kind go into the cell (*b: the
 * cell's bound)?  Home when of the cell's class; over the record itself
 * only with the same header (a reader that meets the rewrite half done
 * must read the same lengths' layout, so no length it decodes passes the
 * cell); over a forward never with cb.
 */
static int replace_goes_home(const struct found *f, int holds, uint32_t hc,
			     uint64_t size, uint32_t kind, int cb,
			     uint64_t *b)
{
	return size <= CELL_MAX &&
	       cls_of(size < REC_MIN ? REC_MIN : size, b) == hc &&
	       (holds == 2 ? !cb : kind == (f->r.kind | f->r.flags));
}

uint64_t replace_size(SHF *h, struct shard *sh, const struct found *f,
		      uint32_t vlen, uint32_t kflags)
{
	uint32_t hlen, kind, hc = 0;
	uint64_t size = rec_size_for(h, f->r.klen, vlen, kflags, 1, &hlen,
				     &kind),
		 home, b, to = 0;
	int holds = key_cell(h, sh, f->r.uid, &home, &hc, &to);

	if (replace_goes_home(f, holds, hc, size, kind, 0, &b))
		return size;
	return rec_size_for(h, f->r.klen, vlen, kflags, 0, &hlen, &kind);
}

/*
 * Write a new record for the found key with value (val, vlen) — or, when
 * cb is set, a copy of the old value passed through cb — and commit it:
 * in the key's cell when the new record is of its class, else elsewhere
 * with the cell forwarding to it.  kflags (KF_*) and expiry are the new
 * record's.  The index is not touched: the key keeps its UID, and so its
 * slot.
 */
int replace_rec(SHF *h, struct shard *sh, struct found *f, const void *val,
		uint32_t vlen, int from_old, rec_edit_fn cb, void *cb_arg,
		uint32_t *cb_ret, uint32_t kflags, uint64_t expiry)
{
	uint32_t hlen, kind, hc = 0, was_lease = f->r.flags & KF_LEASE;
	uint64_t size = rec_size_for(h, f->r.klen, vlen, kflags, 1, &hlen,
				     &kind),
		 home, ro, b, to = 0;
	int holds = key_cell(h, sh, f->r.uid, &home, &hc, &to);

	/*
	 * The key's cell must hold its record (where found) or forward to
	 * it: anything else is a damaged slab directory, not to be written.
	 */
	if (cell_record(holds, home, to) != f->rec_off) {
		errno = EBADMSG;
		return -1;
	}
	if (replace_goes_home(f, holds, hc, size, kind, cb != NULL, &b))
		return replace_home(h, sh, f, home, b, val, vlen, from_old, cb,
				    cb_arg, cb_ret, kind, hlen, size, expiry);
	size = rec_size_for(h, f->r.klen, vlen, kflags, 0, &hlen, &kind);
	ro = alloc_named(h, sh, size);
	if (!ro)
		return -1;
	/*
	 * Named before it is written: recovery frees it until the commit.
	 * The forward goes over the cell's first words (its record's, or the
	 * old forward), kept in the journal until then.
	 */
	memcpy(sh->j.undo, h->base + home, 12);
	sh->j.undo_len = 12;
	journal_note(sh, f, ro, rec_cost(size));
	barrier();
	sh->j.op = OP_REPLACE;
	barrier();
	rec_write_named(h, ro, kind, f->r.uid, f->r.key, f->r.klen,
			from_old ? f->r.val : val, vlen, hlen, expiry);
	if (cb) {
		*cb_ret = cb(cb_arg, (char *)h->base + ro + hlen + f->r.klen,
			     vlen);
		if (*cb_ret != SHF_RET_OK) {
			/* the value stays as it was */
			rec_free(h, sh, ro);
			barrier();
			sh->j.op = OP_NONE;
			return 1;
		}
	}
	CRASH(CP_REPL_WRITTEN);
	/* commit: over a forward its offset's store, else the kind word's */
	if (cell_forward(h, home, f->r.uid, ro) < 0) {
		/*
		 * The new record was written over the cell (a damaged free
		 * list handed out space that overlaps it): the cell gets its
		 * words back and the new record is left unreachable, not
		 * freed, since it overlaps.
		 */
		memcpy(h->base + home, sh->j.undo, 12);
		barrier();
		sh->j.op = OP_NONE;
		errno = EBADMSG;
		return -1;
	}
	CRASH(CP_REPL_COMMITTED);
	if (f->rec_off != home)
		rec_free(h, sh, f->rec_off);
	CRASH(CP_REPL_UID);
	replaced(h, sh, f, ro, was_lease);
	return 0;
}

int insert_new(SHF *h, struct shard *sh, uint64_t hash,
		      const void *key, uint32_t klen, const void *val,
		      uint32_t vlen, uint32_t kflags, uint64_t expiry,
		      uint32_t *ul_out)
{
	uint32_t hlen, kind, ul;
	uint64_t size = rec_size_new(h, klen, vlen, kflags, &hlen, &kind), ro,
		 home;
	uint32_t *slot;

	/* OP_TAKE's recovery frees the record it names (none yet) */
	sh->j.rec_new = 0;
	barrier();
	ul = cell_alloc(h, sh, cell_class(size), &home); /* OP_TAKE */
	if (ul == UINT32_MAX)
		return -1;
	CRASH(CP_CELL_TAKEN);
	ro = home;
	if (size > CELL_MAX) {
		ro = alloc_named(h, sh, size);
		if (!ro) {
			int e = errno;

			cell_release(h, sh, ul);
			barrier();
			sh->j.op = OP_NONE;
			errno = e;
			return -1;
		}
		sh->j.rec_new = ro;
		barrier();
		rec_write_named(h, ro, kind, ul, key, klen, val, vlen, hlen,
				expiry);
		CRASH(CP_BIG_WRITTEN);
	}
	/* noted before the cell is written: recovery takes the cell back */
	sh->j.uid = ul;
	sh->j.rec_new = ro;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + rec_cost(size);
	barrier();
	sh->j.op = OP_NEW;
	barrier();
	if (ro != home)
		cell_forward(h, home, ul, ro);
	else
		rec_write(h, ro, kind, ul, key, klen, val, vlen, hlen, expiry);
	CRASH(CP_NEW_WRITTEN);
	slot = idx_insert(h, sh, hash);
	if (!slot) {
		int e = errno;

		if (ro != home)
			rec_free(h, sh, ro);
		cell_release(h, sh, ul);
		sh->j.op = OP_NONE;
		errno = e;
		return -1;
	}
	slot_st(slot, slot_make(tag_of(hash), ul)); /* commit */
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
	uint64_t cost = rec_cost(f->r.size), home, to = 0;
	uint32_t hc;

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
	/*
	 * Copies first: killed before the commit, the delete is undone with
	 * the key's own slot still there; after it, recovery must find no
	 * copy that names the key (it would take the delete for undone).
	 */
	idx_drop_copies(f->slot, f->sval);
	barrier();
	CRASH(CP_DEL_COPIES);
	slot_st(f->slot, 0); /* commit */
	CRASH(CP_DEL_COMMITTED);
	/* a record elsewhere is freed only when the key's cell forwards to
	 * it (else a damaged directory could free a cell as a record) */
	if (key_cell(h, sh, f->r.uid, &home, &hc, &to) == 2 &&
	    to == f->rec_off)
		rec_free(h, sh, f->rec_off);
	CRASH(CP_DEL_UID);
	cell_release(h, sh, f->r.uid);
	ctr_set(&sh->nkeys, sh->j.nkeys_before - 1);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	if (atomic_load_explicit(&h->h->byte_budget, memory_order_relaxed))
		cache_bytes_sub(h->h, cost);
	if (f->r.flags & KF_LEASE)
		lease_end(sh);
}

/* A lease ended (its record replaced or deleted): wake its waiters. */
void lease_end(struct shard *sh)
{
	atomic_fetch_add(&sh->lease_seq, 1);
	shf_futex_wake((uint32_t *)&sh->lease_seq, INT_MAX);
}

