// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shard.c - a shard's lock and its recovery.  Writers take the shard's
 * lock (sync.c's own lock word) and make its sequence odd while they
 * change it (readers retry on it: seqlock, inline in table.h).  A writer
 * that died holding the lock (found gone by a waiter) left its operation
 * in the shard's journal: the next locker finishes it when it committed
 * and undoes it when it did not, so a SIGKILL at any instruction leaves
 * the old state or the new.
 */
#include "config.h"
#include <errno.h>

#include "table.h"

/*
 * The table's count of record bytes, made again from the shards'.  Exact
 * with all shards locked; from a shard's recovery (one lock) it misses at
 * most what the writers of other shards had reserved but not yet stored.
 */
void cache_bytes_recount(SHF *h)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < NSHARDS; i++)
		sum += atomic_load(&h->shards[i].rbytes);
	atomic_store(&h->h->cache_bytes, sum);
}

/*
 * Free the record at off of the journal's key, if it still is one.
 * Recovery may meet a record that it or the dead writer freed already
 * (marked K_FREE), and an extent freed to the table's list (records over
 * CLASS_MAX_SHARD bytes) may hold another shard's record by then, which
 * must not be freed again: so only a record of this shard's key with the
 * journal's UID goes.
 */
static void rec_free_live(SHF *h, struct shard *sh, struct journal *j,
			  uint64_t off)
{
	struct rec r;

	/* records are 4-aligned: a journal that says otherwise is damaged */
	if (off & 3)
		return;
	if (rec_get(h, off, &r)) {
		if (r.uid == __atomic_load_n(&j->uid, __ATOMIC_RELAXED) &&
		    shard_of(h, rec_hash(h, r.key, r.klen)) == sh)
			rec_free(h, sh, off);
		return;
	}
	/* freed already: finish the push to its free list if it stopped */
	shard_free_finish(h, sh, off,
			  __atomic_load_n(&j->free_cls, __ATOMIC_RELAXED));
}

/* A displacement: the entry must end up in one place (the new one). */
static void recover_kick(SHF *h, struct journal *j)
{
	uint64_t from = ld64(&j->kick_from), to = ld64(&j->kick_to);
	/* two slots, apart (else nothing is written) */
	uint32_t *p = from == to ? NULL : slot_at(h, from),
		 *q = p ? slot_at(h, to) : NULL;

	if (p && q && slot_same(slot_ld(q), j->kick_val) &&
	    slot_same(slot_ld(p), j->kick_val))
		slot_st(p, 0);
	j->kick_from = 0;
}

/*
 * A split whose entries were copied: finish it.  The journal's words are
 * read once and must describe a split of this directory (a range inside
 * it, a depth below its own, segments on pages), else it is dropped.
 */
static void recover_split(SHF *h, struct shard *sh, struct journal *j)
{
	uint64_t so = ld64(&j->split_seg), no = ld64(&j->split_new);
	uint64_t start = ld64(&j->split_start), len = ld64(&j->split_len);
	uint32_t g, i, l = __atomic_load_n(&j->split_depth, __ATOMIC_RELAXED);
	uint64_t *dir = dir_get(h, atomic_load(&sh->dir_word), &g);
	uint64_t *seg = (so & (PAGE - 1)) ? NULL : at(h, so, SEG_BYTES);
	uint32_t bit = TAG_BITS - 1 - l;

	if (dir && seg && !(no & (PAGE - 1)) && l < g && start < (1ULL << g) &&
	    len == (1ULL << (g - l)) && !(start & (len - 1))) {
		for (i = 0; i < len; i++)
			st64(&dir[start + i],
			     (i < len / 2 ? so : no) | (l + 1));
		seg_unmove(seg, bit);
	}
	j->split_state = 0;
}

/*
 * The cell of the journal's UID, if it is the one the journal names (else
 * 0: nothing is written on the journal's word alone).
 */
static uint64_t journal_home(SHF *h, struct shard *sh, struct journal *j,
			     uint32_t *cls)
{
	return cell_of(h, sh, __atomic_load_n(&j->uid, __ATOMIC_RELAXED), cls);
}

/* Put back what the journal's copy says the key's cell held. */
static void undo_cell(SHF *h, struct shard *sh, struct journal *j)
{
	uint32_t c, len = __atomic_load_n(&j->undo_len, __ATOMIC_RELAXED);
	uint64_t home = journal_home(h, sh, j, &c);

	if (home && len <= cls_bound(c) && len <= CELL_MAX)
		memcpy(h->base + home, j->undo, len);
}

/*
 * A replace: committed when the key's cell leads to the new record (its
 * kind word written, or its forward's offset), and then the old record
 * goes; else the cell gets back what it held and the new record goes.
 * 1 committed.
 */
static int replace_end(SHF *h, struct shard *sh, struct journal *j)
{
	uint32_t c;
	uint64_t home = journal_home(h, sh, j, &c), to = 0;
	uint64_t ro = ld64(&j->rec_new), old = ld64(&j->rec_old);
	int holds = home ? cell_holds(h, home, j->uid, &to) : 0;

	if (!home)
		return 0; /* the cell is not the journal's: leave it */
	/* (a forward's offset half written over by a home record's key may
	 * read as anything, even the cell's own) */
	if (ro == home ? holds == 1 : holds == 2 && to == ro) {
		if (old != home)
			rec_free_live(h, sh, j, old);
		return 1;
	}
	undo_cell(h, sh, j);
	if (ro && ro != home)
		rec_free_live(h, sh, j, ro);
	return 0;
}

/*
 * The journal's key has no record any more (a new key not committed, a
 * deletion committed): its record rec goes, if it lived elsewhere, and its
 * cell goes back to its list.
 */
static void key_gone(SHF *h, struct shard *sh, struct journal *j,
		     uint64_t rec)
{
	uint32_t c;
	uint64_t home = journal_home(h, sh, j, &c);

	if (!home)
		return; /* the cell is not the journal's: leave it */
	/*
	 * A key of the index names the UID: committed, and live.  No writer
	 * that died leaves that with an operation to undo (a new key's slot,
	 * its commit, is not there; a delete's is gone), so the journal is
	 * damaged: freeing the cell would lose an acknowledged value.
	 */
	if (idx_names_uid(h, sh, j->uid))
		return;
	if (rec && rec != home)
		rec_free_live(h, sh, j, rec);
	cell_release(h, sh, j->uid);
}

/* The operation in the journal: done if committed, else undone. */
static void recover_op(SHF *h, struct shard *sh, struct journal *j)
{
	uint32_t *p;

	switch (j->op) {
	case OP_NEW:
		if (idx_holds(h, sh, j->rec_new)) {
			ctr_set(&sh->nkeys, j->nkeys_before + 1);
			ctr_set(&sh->rbytes, j->rbytes_after);
			break;
		}
		key_gone(h, sh, j, ld64(&j->rec_new));
		ctr_set(&sh->nkeys, j->nkeys_before);
		ctr_set(&sh->rbytes, j->rbytes_before);
		break;
	case OP_TAKE: /* a new key's cell off its list, and the record
		       * elsewhere that the journal may name: nothing committed */
		key_gone(h, sh, j, ld64(&j->rec_new));
		break;
	case OP_INPLACE:
		undo_cell(h, sh, j);
		ctr_set(&sh->rbytes, j->rbytes_before);
		break;
	case OP_REPLACE:
		if (!replace_end(h, sh, j)) {
			ctr_set(&sh->rbytes, j->rbytes_before);
			break;
		}
		j->rec_new = 0; /* keep it */
		ctr_set(&sh->rbytes, j->rbytes_after);
		break;
	case OP_DEL:
		p = slot_at(h, ld64(&j->slot_off));
		if (!p || slot_same(slot_ld(p), j->slot_old)) {
			ctr_set(&sh->nkeys, j->nkeys_before);
			ctr_set(&sh->rbytes, j->rbytes_before);
			break;
		}
		key_gone(h, sh, j, ld64(&j->rec_old)); /* committed */
		ctr_set(&sh->nkeys, j->nkeys_before - 1);
		ctr_set(&sh->rbytes, j->rbytes_after);
		break;
	default:
		break;
	}
}

static void shard_recover(SHF *h, struct shard *sh)
{
	struct journal *j = &sh->j;

	if (j->kick_from)
		recover_kick(h, j);
	if (j->split_state == 1)
		recover_split(h, sh, j);
	recover_op(h, sh, j);
	/* a record that the journal named is freed above once its header is
	 * written (after its key); space taken and not yet named, or named
	 * while its key was being copied, is leaked, not damage: its bytes
	 * are unreachable */
	j->op = OP_NONE;
	j->free_cls = 0;
	/*
	 * The dead writer may have raised the table's count of record bytes
	 * without applying it (or applied a change without lowering it):
	 * count again, so that crashes do not shrink the budget over time.
	 */
	if (atomic_load_explicit(&h->h->byte_budget, memory_order_relaxed))
		cache_bytes_recount(h);
}

/*
 * The shard's lock is held (owner_died: its previous holder died holding
 * it): make the sequence odd, then finish or undo what an interrupted
 * writer left.  The sequence stays odd while recovery writes (it may put
 * a record's old bytes back into a cell that readers reach), so a reader
 * that met any of it retries.
 */
static void shard_enter(SHF *h, struct shard *sh, int owner_died)
{
	if (h->lockable &&
	    (owner_died || (atomic_load(&sh->seq) & 1) || sh->j.op ||
	     sh->j.kick_from || sh->j.split_state)) {
		if (!(atomic_load(&sh->seq) & 1)) {
			atomic_fetch_add(&sh->seq, 1);
			atomic_thread_fence(memory_order_release);
		}
		shard_recover(h, sh);
		atomic_thread_fence(memory_order_release);
		return;
	}
	/* only the lock holder writes seq: no locked instruction needed */
	atomic_store_explicit(&sh->seq,
			      atomic_load_explicit(&sh->seq,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

/* Writer side: lock the shard and make its sequence odd. */
int shard_lock(SHF *h, struct shard *sh)
{
	int rc = 0;

	if (h->lockable) {
		rc = shf_lock_take(&sh->lk, &h->site,
				   &h->lk_stuck[sh - h->shards]);
		if (rc < 0)
			return -1;
	}
	shard_enter(h, sh, rc == 1);
	return 0;
}

/*
 * The same for a shard that is not the caller's: take its lock only if it
 * is free (never wait while holding another shard).  0 locked, -1 not.
 */
int shard_trylock(SHF *h, struct shard *sh)
{
	int rc = 0;

	if (h->lockable) {
		rc = shf_lock_try(&sh->lk);
		if (rc < 0)
			return -1;
	}
	shard_enter(h, sh, rc == 1);
	return 0;
}

void shard_unlock(SHF *h, struct shard *sh)
{
	atomic_store_explicit(&sh->seq,
			      atomic_load_explicit(&sh->seq,
						   memory_order_relaxed) + 1,
			      memory_order_release);
	if (h->lockable)
		shf_lock_release(&sh->lk);
	if (SHF_UNLIKELY(shf_grow_due == h))
		file_grow_ahead(h);
}

/* Lock every shard, in order; the number locked (NSHARDS: all). */
uint32_t lock_all(SHF *h)
{
	uint32_t n;

	for (n = 0; n < NSHARDS; n++)
		if (shard_lock(h, &h->shards[n]) < 0)
			break;
	return n;
}

void unlock_all(SHF *h, uint32_t n)
{
	while (n)
		shard_unlock(h, &h->shards[--n]);
}
