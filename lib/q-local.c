// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * q-local.c - zero-copy IPC queues: the state each thread keeps per
 * handle (struct q_local: its view of the queue set, its pre-queues), from
 * its binding to the set to its end: given back at thread exit, at
 * shf_detach() of the handle and by the calls that find the set deleted,
 * dropped in a fork()ed child.  The calls and their fast path are q.c's
 * (see q-internal.h for the design).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "q-internal.h"

static __thread struct q_local *q_tls_list SHF_TLS_IE;
__thread struct q_local *q_tls_last SHF_TLS_IE;

static pthread_once_t q_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t q_key;
static int q_key_ok;

static void q_local_free(struct q_local *l)
{
	for (uint32_t i = 0; l->push && i < l->set.qs; i++)
		free(l->push[i].v);
	for (uint32_t i = 0; l->pull && i < l->set.qs; i++)
		free(l->pull[i].v);
	free(l->push);
	free(l->pull);
	free(l);
}

/* Remove l from the thread's list and free it. */
void q_local_unlink(struct q_local *dead)
{
	struct q_local **pp;

	for (pp = &q_tls_list; *pp; pp = &(*pp)->next) {
		if (*pp == dead) {
			*pp = dead->next;
			break;
		}
	}
	if (q_tls_last == dead)
		q_tls_last = NULL;
	q_local_free(dead);
}

/* Under the lock: every push pre-queue onto its ring. */
void q_flush_all(struct q_local *l)
{
	for (uint32_t qid = 0; qid < l->set.qs && l->push_pending; qid++) {
		struct q_pre *p = &l->push[qid];

		if (!p->n || q_ring_push(&l->set, qid, p->v, p->n) < 0)
			continue; /* a damaged ring: they wait for the next */
		l->push_pending -= p->n;
		p->n = 0;
	}
}

/*
 * Under the lock: every push pre-queue onto its ring, every item left in
 * a pull pre-queue back to its ring's tail.
 */
void q_return_all(struct q_local *l)
{
	q_flush_all(l);
	for (uint32_t qid = 0; qid < l->set.qs; qid++) {
		struct q_pre *p = &l->pull[qid];

		if (p->i < p->n &&
		    q_ring_unpull(&l->set, qid, p->v + p->i, p->n - p->i) == 0)
			p->i = p->n = 0;
	}
}

static void q_local_return_with(void *h, void *arg)
{
	struct q_local *l = arg;

	(void)h;
	if (__atomic_load_n(&l->set.hdr->state, __ATOMIC_ACQUIRE) != Q_READY ||
	    l->set.hdr->nonce != l->set.nonce)
		return;
	if (q_lock(&l->set, 0) < 0)
		return; /* left to the reclaim when this process is gone */
	q_return_all(l);
	q_unlock(&l->set);
}

/*
 * The handle is still attached: give the thread's pre-queues back.  Under
 * the registry's lock, which shf_detach() takes before it unmaps the
 * table: a thread exiting while another detaches the handle wrote into
 * the table after it was unmapped.
 */
static void q_local_return(struct q_local *l)
{
	shf_reg_with(l->shf, l->reg_id, q_local_return_with, l);
}

/*
 * fork(): the child's copy of the forking thread's states lists the
 * parent's pre-queued items; they are the parent's, so the child lets go
 * of them (without touching shared memory) and starts afresh.
 */
static void q_atfork_child(void)
{
	struct q_local *l, *n;

	for (l = q_tls_list; l; l = n) {
		n = l->next;
		q_local_free(l);
	}
	q_tls_list = NULL;
	q_tls_last = NULL;
}

/*
 * The same in a child of _Fork() or of a clone() without CLONE_VM, which
 * runs no atfork handler: the thread's states were made in another
 * process generation (its parent's), whose slot and items they name.
 */
static void q_drop_if_child(void)
{
	if (q_tls_list && q_tls_list->proc != shf_proc_gen())
		q_atfork_child();
}

/* Thread exit: its pre-queued items go back, its states are freed. */
static void q_thread_exit(void *arg)
{
	struct q_local *l, *n;

	(void)arg;
	q_drop_if_child();
	for (l = q_tls_list; l; l = n) {
		n = l->next;
		q_local_return(l);
		q_local_free(l);
	}
	q_tls_list = NULL;
	q_tls_last = NULL;
}

/* shf_detach() of any handle: give back this thread's pre-queues on it. */
static void q_forget(void *h)
{
	struct q_local *l, *n;

	q_drop_if_child();
	for (l = q_tls_list; l; l = n) {
		n = l->next;
		if (l->shf != h)
			continue;
		q_local_return(l);
		q_local_unlink(l);
	}
}

static void q_key_make(void)
{
	q_key_ok = pthread_key_create(&q_key, q_thread_exit) == 0;
	pthread_atfork(NULL, NULL, q_atfork_child);
	shf_reg_hook(q_forget);
}

/* Drop the thread's states whose handle was detached (elsewhere). */
static void q_tls_sweep(uint64_t gen)
{
	struct q_local *l, *n;

	for (l = q_tls_list; l; l = n) {
		n = l->next;
		if (l->gen == gen)
			continue;
		if (shf_reg_alive(l->shf, l->reg_id))
			l->gen = gen;
		else
			q_local_unlink(l);
	}
}

/* Map the thread's view of a ready queue set; NULL with errno. */
static struct q_local *q_local_bind(SHF *shf, uint64_t gen)
{
	struct q_local *l;
	struct q_hdr *h;
	uint64_t size;
	int slot;

	h = shf_region(shf, Q_REGION, 0, 0, &size);
	if (!h)
		return NULL;
	pthread_once(&q_key_once, q_key_make);
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	if (q_set_bind(shf, h, size, &l->set) < 0 ||
	    (slot = q_slot_get(&l->set)) < 0) {
		free(l);
		return NULL;
	}
	l->slot = (uint32_t)slot;
	l->own_push = Q_OWN(l->slot, 0u) | Q_OWN_PUSH;
	l->push = calloc(l->set.qs, sizeof(*l->push));
	l->pull = calloc(l->set.qs, sizeof(*l->pull));
	if (!l->push || !l->pull) {
		q_local_free(l);
		errno = ENOMEM;
		return NULL;
	}
	l->shf = shf;
	l->reg_id = shf_handle_reg_id(shf);
	l->gen = gen;
	l->proc = shf_proc_gen();
	if (q_key_ok)
		pthread_setspecific(q_key, l);
	l->next = q_tls_list;
	q_tls_list = l;
	return l;
}

/* The calling thread's state for shf's queue set; NULL with errno. */
struct q_local *q_local_slow(SHF *shf)
{
	uint64_t gen = shf_reg_generation();
	struct q_local *l, *n;

	if (!shf) {
		errno = EINVAL;
		return NULL;
	}
	q_drop_if_child();
	q_tls_sweep(gen);
	for (l = q_tls_list; l; l = n) {
		n = l->next;
		if (l->shf != shf)
			continue;
		if (__atomic_load_n(&l->set.hdr->state, __ATOMIC_ACQUIRE) ==
			    Q_READY &&
		    l->set.hdr->nonce == l->set.nonce) {
			q_tls_last = l;
			return l;
		}
		/* Deleted (shf_q_del()) since: its pre-queues are moot. */
		q_local_unlink(l);
	}
	l = q_local_bind(shf, gen);
	if (l)
		q_tls_last = l;
	return l;
}
