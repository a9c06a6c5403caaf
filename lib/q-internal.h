/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * q-internal.h - what the files of the zero-copy queues share; never
 * installed.  q-ring.c owns the queue set in the table (its region, the
 * rings, who holds which item, recovery); q-slots.c this process's slot
 * in each set; q-local.c each thread's state (its view of the set, its
 * pre-queues, their end); q.c the calls and their fast path.
 *
 * One named region "q" holds a header, the process slots, one ring per
 * queue, an ownership word per item, the queues' names and the items.  A
 * queue is a ring of item indexes (qiids) with room for every item, so
 * moving a batch of items is one copy of their indexes and one store of
 * the ring's head or tail: items are never copied, and no per-item link
 * is written in shared memory.
 *
 * Each thread keeps, per handle, a push pre-queue and a pull pre-queue
 * for every qid in its own memory; one lock moves a whole pre-queue at
 * once (up to qids_nolock_max items).  Whatever a process has out of the
 * rings, its ownership words say: own[qiid] names the process's slot and
 * the queue the item came from (it holds it, or it waits in a pull
 * pre-queue), or, with Q_OWN_PUSH, the queue it was pushed to (it waits
 * in a push pre-queue).  An item on a ring may keep a stale word; the
 * rings say what is on them.
 *
 * Crash safety: every change of a ring commits with one store (its head
 * after the entries, its tail after the items' words), so a process
 * killed anywhere leaves each item either on a ring or marked with its
 * slot.  The slots of dead processes (a lock taken over from a dead
 * holder, or a look every Q_CHECK_MS by a puller that found nothing) are
 * reclaimed: their items go back to the head of the queue they were
 * pushed to, or to the tail of the one they came from, to be pulled
 * again.  No item is lost, none is on two rings.
 */
#ifndef SHF_Q_INTERNAL_H
#define SHF_Q_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "shf-internal.h"

#define Q_REGION "q"
/* "SHF_Q03": 03, the library's own lock word (02 had a glibc mutex) */
#define Q_MAGIC 0x3330515f464853ULL
#define Q_NONE SHF_QIID_NONE
#define Q_TOMB (SHF_QIID_NONE - 1) /* a ring entry taken from the middle */
#define Q_NAME_MAX 60
#define Q_ALIGN 64
#define Q_SLOTS 255u      /* processes at once: 8 bits of own[] */
#define Q_QS_MAX (1u << 23) /* qids: 23 bits of own[] */
#define Q_CHECK_MS 50     /* how often an idle puller looks for the dead */

/* own[qiid]: slot + 1 (8 bits), Q_OWN_PUSH, qid (23 bits); 0: on a ring */
#define Q_OWN_PUSH (1u << 23)
#define Q_OWN(slot, qid) ((((slot) + 1u) << 24) | (qid))
#define Q_OWN_SLOT(w) (((w) >> 24) - 1u) /* UINT32_MAX: none */
#define Q_OWN_QID(w) ((w) & (Q_OWN_PUSH - 1u))

enum { Q_FREE = 0, Q_INIT = 1, Q_READY = 2, Q_DEAD = 3 };

/* A process that uses the queues: its items are marked with its slot. */
struct q_slot {
	int32_t pid;    /* 0: free */
	uint32_t pad;
	uint64_t start; /* its start time (pid reuse) */
};

/* A ring: entries [tail, head) mod q_items; both only grow. */
struct q_ring {
	uint64_t head; /* next push */
	uint64_t tail; /* next pull */
	uint8_t pad[Q_ALIGN - 16];
};

struct q_name {
	uint32_t len;
	char name[Q_NAME_MAX];
};

struct q_hdr {
	/* Set once by shf_q_new(), read by everyone. */
	uint64_t magic;
	uint32_t state;              /* Q_FREE, Q_INIT, Q_READY, Q_DEAD */
	int32_t init_pid;            /* who is initialising (Q_INIT) */
	uint64_t init_start;         /* its claim: pid | start time << 22 */
	uint64_t nonce;              /* tells one queue set from the next */
	uint32_t qs, q_items, q_item_size, nolock_max;
	uint64_t off_rings, off_entries, off_own, off_names, off_items;
	/*
	 * Under the lock: the library's own (shf-internal.h), which keeps
	 * nothing that its holder writes through, whatever others write.
	 */
	struct shf_lock lk __attribute__((aligned(Q_ALIGN)));
	uint32_t names_used;
	uint32_t pad;
	uint64_t recoveries;         /* dead processes' items given back */
	uint64_t repairs;            /* damaged entries dropped */
	uint64_t checked_ms;         /* last look for dead slots */
	struct q_slot slots[Q_SLOTS] __attribute__((aligned(Q_ALIGN)));
} __attribute__((aligned(Q_ALIGN)));

/*
 * A process's view of one queue set, checked when it was bound: the sizes
 * are this process's copies (never read again from the header).
 */
struct q_set {
	struct q_hdr *hdr;
	struct q_ring *rings;
	uint32_t *entries;           /* qs rings of q_items entries */
	uint32_t *own;
	struct q_name *names;
	char *items;
	uint64_t nonce;
	uint32_t qs, q_items, item_size, nolock_max;
	const struct shf_lock_site *site;
	/* the lock word a wait of this thread gave up on (shf_lock_take()) */
	uint64_t stuck;
};

/* ============================================================ q-ring.c */

/* Region bytes for these sizes, offsets set; 0 with EINVAL if too big. */
uint64_t q_layout(uint32_t qs, uint32_t q_items, uint32_t item_size,
		  uint64_t *rings, uint64_t *entries, uint64_t *own,
		  uint64_t *names, uint64_t *items);
/* Make the region a new queue set (every item on queue 0); 0 or -1. */
int q_set_init(SHF *shf, struct q_hdr *h, uint32_t qs, uint32_t q_items,
	       uint32_t item_size, uint32_t nolock_max);
/* Check a ready region and fill a view of it; 0, or -1 with errno. */
int q_set_bind(SHF *shf, struct q_hdr *h, uint64_t size, struct q_set *s);
/*
 * Under the lock: a slot for this process (the one it has, else a free
 * one, reaping if need be); -1 with errno (EUSERS).
 */
int q_slot_take(struct q_set *s);
/*
 * The set's lock; reclaims the slots of dead processes when the previous
 * holder died, or when look_for_dead and Q_CHECK_MS passed since the
 * last look.  0, or -1 with errno.
 */
int q_lock(struct q_set *s, int look_for_dead);
void q_unlock(struct q_set *s);
/*
 * Under the lock: append n items to ring qid's head (they are this
 * process's, marked pushed); 0, or -1 with EBADMSG when the ring has no
 * room (only damage gets there: the rings were repaired, try again).
 */
int q_ring_push(struct q_set *s, uint32_t qid, const uint32_t *v, uint32_t n);
/*
 * Under the lock: take up to max items from ring qid's tail into v,
 * marking them as slot's, taken from qid; their number.
 */
uint32_t q_ring_pull(struct q_set *s, int slot, uint32_t qid, uint32_t *v,
		     uint32_t max);
/* Under the lock: give n items back to ring qid's tail (unpull). */
int q_ring_unpull(struct q_set *s, uint32_t qid, const uint32_t *v,
		  uint32_t n);
/*
 * Without the lock: 1 if ring qid looks empty and no look for dead
 * processes is due, so that a puller with nothing to push need not lock.
 */
int q_ring_idle(struct q_set *s, uint32_t qid);
/* Under the lock: take qiid out of the ring it is on, for slot: 0 or -1. */
int q_ring_take(struct q_set *s, int slot, uint32_t qiid);

/* =========================================================== q-slots.c */

/* This process's slot in the set (taken if need be); -1 with errno. */
int q_slot_get(struct q_set *s);

/* =========================================================== q-local.c */

/* A pre-queue: v[i .. n) waits (pull), v[0 .. n) waits (push). */
struct q_pre {
	uint32_t *v; /* nolock_max entries, allocated at first use */
	uint32_t n, i;
	uint32_t lim; /* a push's fast path while n < lim (0: no array) */
};

/* A thread's view of one handle's queue set. */
struct q_local {
	SHF *shf;
	uint64_t reg_id;             /* the handle's registry id */
	uint64_t gen;                /* registry generation last validated */
	uint64_t proc;               /* shf_proc_gen() when made */
	struct q_set set;
	uint32_t slot;               /* this process's */
	uint32_t push_pending;       /* items in all push pre-queues */
	uint32_t own_push;           /* own[] of a pushed item, qid 0 */
	struct q_pre *push;          /* [qs] */
	struct q_pre *pull;          /* [qs] */
	struct q_local *next;
};

/* The calling thread's state it used last (NULL: none). */
extern __thread struct q_local *q_tls_last SHF_TLS_IE;

/*
 * The calling thread's state for shf's queue set, found in its list or
 * made (bound to the set, its slot taken); states whose handle was
 * detached, or whose set was deleted, are dropped on the way.  NULL with
 * errno.
 */
struct q_local *q_local_slow(SHF *shf);
/* Remove a state from the thread's list and free it. */
void q_local_unlink(struct q_local *dead);
/* Under the lock: every push pre-queue onto its ring. */
void q_flush_all(struct q_local *l);
/*
 * Under the lock: every push pre-queue onto its ring, every item left in
 * a pull pre-queue back to its ring's tail.
 */
void q_return_all(struct q_local *l);

/* q_local_slow() behind the test of the hot path: the state used last. */
static inline struct q_local *q_local_get(SHF *shf)
{
	struct q_local *l = q_tls_last;

	if (SHF_LIKELY(l && l->shf == shf && l->gen == shf_reg_generation() &&
		       l->proc == shf_proc_gen_now() &&
		       __atomic_load_n(&l->set.hdr->state, __ATOMIC_RELAXED) ==
			       Q_READY))
		return l;
	return q_local_slow(shf);
}

#endif /* SHF_Q_INTERNAL_H */
