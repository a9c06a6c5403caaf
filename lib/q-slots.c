// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * q-slots.c - this process's slot in each queue set it uses: the list of
 * them, under a lock of the process's own that a child of _Fork() can take
 * over from its parent's threads, taken from the set (q-ring.c's
 * q_slot_take()) the first time.  See q-internal.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "q-internal.h"

/* This process's slot in each queue set it uses. */
static struct q_myslot {
	const struct q_hdr *hdr;
	uint64_t nonce;
	int slot;
	struct q_myslot *next;
} *q_myslots;

/*
 * The lock of q_myslots, a word of the process's own: 0 free, else the
 * process generation (shf_proc_gen(), a pid) of the thread that holds it,
 * with QSL_WAITED set while another thread sleeps on it.  A child of
 * _Fork() or of a clone() without CLONE_VM runs no atfork handler, and
 * its copy of the word may show a thread of its parent holding the lock:
 * a word of another generation is no thread of this process, so it is
 * taken over, by one thread however many ask at once (a compare-and-swap;
 * a pthread mutex would have to be made anew, which another thread of
 * the child could be locking at that moment).
 */
static uint32_t q_slots_lk;
#define QSL_WAITED 0x80000000u
/* The generation q_myslots belong to: under q_slots_lk. */
static uint64_t q_slots_proc;

static void q_slots_lock(uint32_t me)
{
	uint32_t v = __atomic_load_n(&q_slots_lk, __ATOMIC_RELAXED), want = me;

	for (;;) {
		if (!v || (v & ~QSL_WAITED) != me) {
			if (__atomic_compare_exchange_n(&q_slots_lk, &v, want, 0,
							__ATOMIC_ACQUIRE,
							__ATOMIC_RELAXED))
				return;
			continue;
		}
		/* held here: say a thread waits, and sleep until let go */
		if (!(v & QSL_WAITED) &&
		    !__atomic_compare_exchange_n(&q_slots_lk, &v,
						 v | QSL_WAITED, 0,
						 __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			continue;
		shf_futex_wait(&q_slots_lk, me | QSL_WAITED, -1);
		/* others may still sleep: who takes it now wakes the next */
		want = me | QSL_WAITED;
		v = __atomic_load_n(&q_slots_lk, __ATOMIC_RELAXED);
	}
}

static void q_slots_unlock(void)
{
	if (__atomic_exchange_n(&q_slots_lk, 0, __ATOMIC_RELEASE) &
	    QSL_WAITED)
		shf_futex_wake(&q_slots_lk, 1);
}

/* Let go of the slots of another process generation (under the lock). */
static void q_slots_drop(uint64_t gen)
{
	struct q_myslot *m, *n;

	for (m = q_myslots; m; m = n) {
		n = m->next;
		free(m);
	}
	q_myslots = NULL;
	q_slots_proc = gen;
}

/*
 * fork(): the child is another process, with slots of its own to take.
 * Where no MADV_WIPEONFORK page tells processes apart (shf_proc_gen() is
 * the same in the child), the lock word cannot show that its holder was
 * the parent's: this handler lets it go.
 */
static void q_slots_atfork_child(void)
{
	__atomic_store_n(&q_slots_lk, 0, __ATOMIC_RELAXED);
	q_slots_drop(shf_proc_gen());
}

static void q_slots_atfork_init(void)
{
	pthread_atfork(NULL, NULL, q_slots_atfork_child);
}

int q_slot_get(struct q_set *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct q_myslot *m;
	int slot = -1;
	uint64_t gen = shf_proc_gen();

	pthread_once(&once, q_slots_atfork_init);
	q_slots_lock((uint32_t)gen);
	if (SHF_UNLIKELY(q_slots_proc != gen))
		q_slots_drop(gen); /* the parent's (or none yet) */
	for (m = q_myslots; m; m = m->next)
		if (m->hdr == s->hdr && m->nonce == s->nonce)
			break;
	if (m) {
		slot = m->slot;
		goto out;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		goto out;
	}
	if (q_lock(s, 0) < 0) {
		free(m);
		goto out;
	}
	slot = q_slot_take(s);
	q_unlock(s);
	if (slot < 0) {
		free(m);
		goto out;
	}
	m->hdr = s->hdr;
	m->nonce = s->nonce;
	m->slot = slot;
	m->next = q_myslots;
	q_myslots = m;
out:
	q_slots_unlock();
	return slot;
}
