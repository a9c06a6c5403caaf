// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * q.c - zero-copy IPC queues (shf_q_*): the calls and their fast path.
 * Each thread's state (its pre-queues) is q-local.c's, the queue set in
 * the table q-ring.c's (see q-internal.h for the design).
 *
 * A push only marks the item as pushed (its ownership word) and appends
 * its index to the thread's push pre-queue for that qid; a pull only
 * takes the next index from the thread's pull pre-queue.  The lock is
 * taken once per qids_nolock_max items: to append a full push pre-queue
 * to its ring, or to fill an empty pull pre-queue from its ring.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q-internal.h"

SHF_EXPORT __thread uint32_t shf_qiid SHF_TLS_IE = SHF_QIID_NONE;
SHF_EXPORT __thread char *shf_qiid_addr SHF_TLS_IE;
SHF_EXPORT __thread uint32_t shf_qiid_addr_len SHF_TLS_IE;

/* own[] >= 1 << 24 names a slot (< Q_SLOTS): the fast path's test. */
_Static_assert(Q_SLOTS == 255u, "own[]: 8 bits of slot + 1");

/* A pre-queue's array, made at its first use; -1 with ENOMEM. */
static int q_pre_ready(struct q_local *l, struct q_pre *p)
{
	if (SHF_LIKELY(p->v != NULL))
		return 0;
	p->v = malloc(sizeof(*p->v) * l->set.nolock_max);
	if (!p->v) {
		errno = ENOMEM;
		return -1;
	}
	/* a push that would fill it takes the slow path, which moves it */
	p->lim = l->set.nolock_max - 1;
	return 0;
}

/* Under the lock: fill qid's pull pre-queue up to nolock_max. */
static void q_fill(struct q_local *l, uint32_t qid)
{
	struct q_pre *p = &l->pull[qid];

	if (q_pre_ready(l, p) < 0)
		return;
	if (p->i) { /* keep what waits, at the front */
		memmove(p->v, p->v + p->i, (p->n - p->i) * sizeof(*p->v));
		p->n -= p->i;
		p->i = 0;
	}
	p->n += q_ring_pull(&l->set, (int)l->slot, qid, p->v + p->n,
			    l->set.nolock_max - p->n);
}

static void q_set_none(void)
{
	shf_qiid = SHF_QIID_NONE;
	shf_qiid_addr = NULL;
	shf_qiid_addr_len = 0;
}

static inline uint32_t q_hand_out(struct q_local *l, uint32_t qiid)
{
	shf_qiid = qiid;
	shf_qiid_addr = l->set.items + (uint64_t)qiid * l->set.item_size;
	shf_qiid_addr_len = l->set.item_size;
	return qiid;
}

/* The next item of the pull pre-queue; SHF_QIID_NONE if empty. */
static inline uint32_t q_take(struct q_local *l, uint32_t qid)
{
	struct q_pre *p = &l->pull[qid];

	if (p->i >= p->n) {
		q_set_none();
		errno = EAGAIN;
		return SHF_QIID_NONE;
	}
	return q_hand_out(l, p->v[p->i++]);
}

/*
 * Add an item the caller holds to the push pre-queue; -1 with EINVAL if
 * nobody holds it (it is on a queue, or pushed already), with ENOBUFS if
 * the pre-queue is full: its ring would not take it (damage, or the
 * lock's wait gave up), and the item stays the caller's.
 */
static inline int q_push_priv(struct q_local *l, uint32_t qid, uint32_t qiid)
{
	struct q_pre *p = &l->push[qid];
	uint32_t w;

	if (SHF_UNLIKELY(qiid >= l->set.q_items))
		goto bad;
	/*
	 * held (a slot's mark), not pushed.  Any slot's: a child of fork()
	 * pushes what its parent pulled, as SharedHashFile's programs do.
	 */
	w = __atomic_load_n(&l->set.own[qiid], __ATOMIC_RELAXED);
	if (SHF_UNLIKELY(Q_OWN_SLOT(w) >= Q_SLOTS || (w & Q_OWN_PUSH)))
		goto bad;
	if (SHF_UNLIKELY(q_pre_ready(l, p) < 0))
		return -1;
	if (SHF_UNLIKELY(p->n >= l->set.nolock_max)) {
		errno = ENOBUFS;
		return -1;
	}
	__atomic_store_n(&l->set.own[qiid], Q_OWN(l->slot, qid) | Q_OWN_PUSH,
			 __ATOMIC_RELAXED);
	p->v[p->n++] = qiid;
	l->push_pending++;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

/*
 * Lock; append the pushes; fill qid's pull pre-queue (qid < qs).  A
 * puller with nothing to push whose ring looks empty does not lock:
 * polling an empty queue writes no shared line.
 */
static int q_exchange(struct q_local *l, uint32_t pull_qid)
{
	if (!l->push_pending && pull_qid < l->set.qs &&
	    q_ring_idle(&l->set, pull_qid))
		return 0;
	if (q_lock(&l->set, pull_qid < l->set.qs) < 0)
		return -1;
	q_flush_all(l);
	if (pull_qid < l->set.qs)
		q_fill(l, pull_qid);
	q_unlock(&l->set);
	return 0;
}

/*
 * Claim a region to make the queues in: a new one, or one whose claimant
 * died before it was ready (shf_claim_take(), its word in init_start).
 * 0, or -1 with errno (EEXIST: ready; EBUSY: a live process is making
 * them, or the region is being removed).
 */
_Static_assert(Q_FREE == SHF_CLAIM_FREE && Q_INIT == SHF_CLAIM_INIT,
	       "the queues' states are a claim's");
static int q_claim(struct q_hdr *h, pid_t me)
{
	uint32_t st;

	if (shf_claim_take(&h->init_start, &h->state, &st) < 0) {
		errno = st == Q_READY ? EEXIST : EBUSY;
		return -1;
	}
	__atomic_store_n(&h->init_pid, me, __ATOMIC_RELEASE); /* to read */
	return 0;
}

/* The whole items array, as shf_q_new() and shf_q_get() report it. */
static void *q_items_out(struct q_local *l)
{
	uint64_t total = (uint64_t)l->set.q_items * l->set.item_size;

	shf_qiid_addr = l->set.items;
	shf_qiid_addr_len = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
	return l->set.items;
}

/*
 * The region to make queues of size bytes in, or NULL with errno
 * (EEXIST: there are queues of another size).  Queues deleted by a
 * process killed (or failing) before it removed their region left it
 * behind, in Q_DEAD for good: it is removed now (only it: if another
 * process removed it and made queues meanwhile, theirs stay), and a new
 * one made.
 */
static struct q_hdr *q_region_new(SHF *shf, uint64_t size)
{
	struct q_hdr *h = shf_region(shf, Q_REGION, size, 1, NULL), *old = h;
	uint64_t osize = size;
	int e = errno;

	if (!h && e == EEXIST)
		old = shf_region(shf, Q_REGION, 0, 0, &osize);
	if (old && osize >= sizeof(*old) &&
	    __atomic_load_n(&old->state, __ATOMIC_ACQUIRE) == Q_DEAD &&
	    shf_region_remove(shf, Q_REGION, old) == 0)
		return shf_region(shf, Q_REGION, size, 1, NULL);
	errno = e;
	return h;
}

SHF_EXPORT void *shf_q_new(SHF *shf, uint32_t qs, uint32_t q_items,
			   uint32_t q_item_size, uint32_t qids_nolock_max)
{
	uint64_t rings, entries, own, names, items, size;
	struct q_local *l;
	struct q_hdr *h;
	pid_t me = getpid();

	if (!shf || qids_nolock_max == 0) {
		errno = EINVAL;
		return NULL;
	}
	size = q_layout(qs, q_items, q_item_size, &rings, &entries, &own,
			&names, &items);
	if (!size)
		return NULL;
	h = q_region_new(shf, size);
	if (!h || q_claim(h, me) < 0)
		return NULL;
	if (q_set_init(shf, h, qs, q_items, q_item_size, qids_nolock_max) < 0) {
		int e = errno;

		__atomic_store_n(&h->state, Q_FREE, __ATOMIC_RELEASE);
		__atomic_store_n(&h->init_start, 0, __ATOMIC_RELEASE);
		errno = e;
		return NULL;
	}
	l = q_local_get(shf);
	return l ? q_items_out(l) : NULL;
}

SHF_EXPORT void *shf_q_get(SHF *shf)
{
	struct q_local *l = q_local_get(shf);

	return l ? q_items_out(l) : NULL;
}

SHF_EXPORT uint32_t shf_q_is_ready(SHF *shf)
{
	return q_local_get(shf) ? 1 : 0;
}

SHF_EXPORT void shf_q_del(SHF *shf)
{
	struct q_local *l = q_local_get(shf);
	struct q_hdr *h;

	if (!l)
		return;
	h = l->set.hdr;
	/* Every other thread sees Q_DEAD on its next call and lets go. */
	__atomic_store_n(&h->state, Q_DEAD, __ATOMIC_RELEASE);
	q_local_unlink(l);
	shf_region_remove(shf, Q_REGION, h);
}

SHF_EXPORT uint32_t shf_q_new_name(SHF *shf, const char *name,
				   uint32_t name_len)
{
	struct q_local *l = q_local_get(shf);
	uint32_t qid = SHF_QID_NONE, used;
	struct q_set *s;

	if (!l)
		return SHF_QID_NONE;
	if (!name || name_len == 0 || name_len > Q_NAME_MAX) {
		errno = EINVAL;
		return SHF_QID_NONE;
	}
	s = &l->set;
	if (q_lock(s, 0) < 0)
		return SHF_QID_NONE;
	used = s->hdr->names_used;
	if (used > s->qs)
		used = s->qs;
	for (uint32_t i = 0; i < used; i++) {
		if (s->names[i].len == name_len &&
		    !memcmp(s->names[i].name, name, name_len)) {
			errno = EEXIST;
			goto out;
		}
	}
	if (used >= s->qs) {
		errno = ENOSPC;
		goto out;
	}
	qid = used;
	memcpy(s->names[qid].name, name, name_len);
	s->names[qid].len = name_len;
	__atomic_store_n(&s->hdr->names_used, used + 1, __ATOMIC_RELEASE);
out:
	q_unlock(s);
	return qid;
}

SHF_EXPORT uint32_t shf_q_get_name(SHF *shf, const char *name,
				   uint32_t name_len)
{
	struct q_local *l = q_local_get(shf);
	uint32_t used;

	if (!l)
		return SHF_QID_NONE;
	if (!name || name_len == 0 || name_len > Q_NAME_MAX) {
		errno = EINVAL;
		return SHF_QID_NONE;
	}
	used = __atomic_load_n(&l->set.hdr->names_used, __ATOMIC_ACQUIRE);
	if (used > l->set.qs)
		used = l->set.qs;
	for (uint32_t i = 0; i < used; i++) {
		if (l->set.names[i].len == name_len &&
		    !memcmp(l->set.names[i].name, name, name_len))
			return i;
	}
	errno = ENOENT;
	return SHF_QID_NONE;
}

SHF_EXPORT void shf_q_push_head(SHF *shf, uint32_t qid, uint32_t qiid)
{
	struct q_local *l = q_local_get(shf);

	if (!l)
		return;
	if (qid >= l->set.qs) {
		errno = EINVAL;
		return;
	}
	if (qiid == SHF_QIID_NONE)
		return;
	if (l->push[qid].n >= l->set.nolock_max) /* a move that failed */
		q_exchange(l, SHF_QID_NONE);
	if (q_push_priv(l, qid, qiid) < 0)
		return;
	if (l->push[qid].n >= l->set.nolock_max)
		q_exchange(l, SHF_QID_NONE); /* on failure: the next moves it */
}

SHF_EXPORT uint32_t shf_q_pull_tail(SHF *shf, uint32_t qid)
{
	struct q_local *l = q_local_get(shf);

	if (!l) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if (qid >= l->set.qs) {
		q_set_none();
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (l->pull[qid].i >= l->pull[qid].n && q_exchange(l, qid) < 0) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	return q_take(l, qid);
}

/* shf_q_push_head_pull_tail() when its fast path cannot do it all. */
static __attribute__((noinline)) uint32_t q_push_pull_slow(SHF *shf,
							   uint32_t push_qid,
							   uint32_t push_qiid,
							   uint32_t pull_qid)
{
	struct q_local *l = q_local_get(shf);

	if (SHF_UNLIKELY(!l)) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if (SHF_UNLIKELY(push_qid >= l->set.qs || pull_qid >= l->set.qs)) {
		q_set_none();
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (push_qiid != SHF_QIID_NONE &&
	    l->push[push_qid].n >= l->set.nolock_max) /* a move that failed */
		q_exchange(l, SHF_QID_NONE);
	if (push_qiid != SHF_QIID_NONE &&
	    SHF_UNLIKELY(q_push_priv(l, push_qid, push_qiid) < 0)) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if ((l->push[push_qid].n >= l->set.nolock_max ||
	     l->pull[pull_qid].i >= l->pull[pull_qid].n) &&
	    q_exchange(l, pull_qid) < 0) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	return q_take(l, pull_qid);
}

/*
 * The fast path of a ping-pong: the thread's state is the one it used
 * last, the item goes into a push pre-queue with room left and the pull
 * pre-queue has an item: no call, no lock, one shared word written (the
 * item's own[]).  Anything else is q_push_pull_slow()'s.
 */
SHF_EXPORT uint32_t shf_q_push_head_pull_tail(SHF *shf, uint32_t push_qid,
					      uint32_t push_qiid,
					      uint32_t pull_qid)
{
	struct q_local *l = q_tls_last;
	struct q_pre *ps, *pl;
	uint32_t *own, w;

	/* a deleted queue set is seen when this thread next locks */
	if (SHF_UNLIKELY(!l || l->shf != shf ||
			 l->gen != shf_reg_generation() ||
			 l->proc != shf_proc_gen_now() ||
			 push_qid >= l->set.qs || pull_qid >= l->set.qs))
		goto slow; /* the slow path drops a parent's state (_Fork()) */
	if (push_qiid != SHF_QIID_NONE) {
		ps = &l->push[push_qid];
		if (SHF_UNLIKELY(push_qiid >= l->set.q_items ||
				 ps->n >= ps->lim))
			goto slow;
		own = &l->set.own[push_qiid];
		w = __atomic_load_n(own, __ATOMIC_RELAXED);
		/* held: a slot's mark (Q_OWN_SLOT() < Q_SLOTS), not pushed */
		if (SHF_UNLIKELY(w < (1u << 24) || (w & Q_OWN_PUSH)))
			goto slow; /* an error: said by the slow path */
		__atomic_store_n(own, l->own_push | push_qid, __ATOMIC_RELAXED);
		ps->v[ps->n++] = push_qiid;
		l->push_pending++;
		push_qiid = SHF_QIID_NONE; /* done */
	}
	pl = &l->pull[pull_qid];
	if (SHF_LIKELY(pl->i < pl->n))
		return q_hand_out(l, pl->v[pl->i++]);
slow:
	return q_push_pull_slow(shf, push_qid, push_qiid, pull_qid);
}

SHF_EXPORT void shf_q_flush(SHF *shf, uint32_t pull_qid)
{
	struct q_local *l = q_local_get(shf);

	if (!l)
		return;
	if (pull_qid != SHF_QID_NONE && pull_qid >= l->set.qs) {
		errno = EINVAL;
		return;
	}
	if (pull_qid != SHF_QID_NONE) {
		q_exchange(l, pull_qid);
		return;
	}
	if (q_lock(&l->set, 0) < 0)
		return;
	q_return_all(l);
	q_unlock(&l->set);
}

SHF_EXPORT uint32_t shf_q_take_item(SHF *shf, uint32_t qiid)
{
	struct q_local *l = q_local_get(shf);
	int rc;

	q_set_none();
	if (!l)
		return SHF_QIID_NONE;
	if (qiid >= l->set.q_items) {
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (q_lock(&l->set, 0) < 0)
		return SHF_QIID_NONE;
	q_flush_all(l);
	rc = q_ring_take(&l->set, (int)l->slot, qiid);
	q_unlock(&l->set);
	if (rc < 0)
		return SHF_QIID_NONE;
	return q_hand_out(l, qiid);
}

SHF_EXPORT void shf_q_size(SHF *shf, uint32_t qid)
{
	/* SharedHashFile's debug print; a library prints nothing. */
	(void)shf;
	(void)qid;
}
