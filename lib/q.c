// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * q.c - zero-copy IPC queues (shf_q_*).
 *
 * One named region "q" holds, in this order: a header (sizes, the robust
 * mutex, a one-operation journal), the qs shared lists, the qs names, one
 * link per item, and the items themselves.  A list is doubly linked
 * through the links by item index (qiid): items are never copied, only
 * relinked.  Pulls take from a list's tail, pushes add at its head.
 *
 * Each thread keeps, per handle, a private push pre-queue and a private
 * pull pre-queue for every qid.  Their items are linked through the same
 * shared links, but no other process ever reaches them, so no lock is
 * needed to change them.  One lock moves a whole pre-queue at once: the
 * push pre-queue is spliced onto the list's head, and up to
 * qids_nolock_max items are cut from the list's tail into the pull
 * pre-queue.
 *
 * Crash safety: before it changes a shared list, the lock holder writes
 * what it is about to do into the journal and only then flags it active.
 * A locker that finds the previous owner dead (shf_mutex_lock() returns
 * 1) finishes a splice (the pushed items reach their queue) or undoes a
 * cut (the items stay on their queue), then walks every list with a
 * bound, cuts cycles and stray links and recounts the sizes.  The items
 * that sat in the dead thread's private pre-queues are lost to the queues
 * (shf_q_new(3), NOTES).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

SHF_EXPORT __thread uint32_t shf_qiid SHF_TLS_IE = SHF_QIID_NONE;
SHF_EXPORT __thread char *shf_qiid_addr SHF_TLS_IE;
SHF_EXPORT __thread uint32_t shf_qiid_addr_len SHF_TLS_IE;

#define Q_REGION "q"
#define Q_MAGIC 0x3130515f464853ULL /* "SHF_Q01" */
#define Q_NONE SHF_QIID_NONE
#define Q_OUT (SHF_QIID_NONE - 1)   /* link.qid of an item a user holds */
#define Q_NAME_MAX 60
#define Q_ALIGN 64

enum { Q_FREE = 0, Q_INIT = 1, Q_READY = 2, Q_DEAD = 3 };
enum { Q_OP_NONE = 0, Q_OP_SPLICE = 1, Q_OP_CUT = 2, Q_OP_UNPULL = 3,
       Q_OP_TAKE = 4 };

struct q_link {
	uint32_t last;  /* towards the tail */
	uint32_t next;  /* towards the head */
	uint32_t qid;   /* queue it belongs to, or Q_OUT */
	uint32_t pad;
};

struct q_list {
	uint32_t head, tail, size, pad;
};

struct q_name {
	uint32_t len;
	char name[Q_NAME_MAX];
};

/* The operation in progress under the lock (see the top of the file). */
struct q_journal {
	uint32_t op;
	uint32_t qid;
	uint32_t first, last;        /* the moved run, tail end and head end */
	uint32_t n;                  /* its length */
	uint32_t old_head, old_tail, old_size;
	uint32_t new_tail;           /* cut: the list's tail after the cut */
	uint32_t pad;
};

struct q_hdr {
	uint64_t magic;
	uint32_t state;              /* Q_FREE, Q_INIT, Q_READY, Q_DEAD */
	int32_t init_pid;            /* who is initialising (Q_INIT) */
	uint64_t init_start;         /* its start time */
	uint64_t nonce;              /* tells one queue set from the next */
	uint32_t qs, q_items, q_item_size, nolock_max;
	uint32_t names_used;
	uint32_t pad;
	uint64_t off_lists, off_names, off_links, off_items;
	uint64_t recoveries;         /* dead lock owners repaired after */
	struct q_journal j;
	pthread_mutex_t lock __attribute__((aligned(Q_ALIGN)));
} __attribute__((aligned(Q_ALIGN)));

struct q_priv {
	uint32_t head, tail, size;
};

/* A thread's view of one handle's queue set. */
struct q_local {
	SHF *shf;
	uint64_t epoch;              /* the handle's registry id */
	uint64_t gen;                /* registry generation last validated */
	struct q_hdr *hdr;
	uint64_t nonce;
	struct q_list *lists;
	struct q_name *names;
	struct q_link *links;
	char *items;
	uint32_t qs, q_items, item_size, nolock_max;
	uint32_t push_pending;       /* items in all push pre-queues */
	struct q_priv *push;
	struct q_priv *pull;
	struct q_local *next;
};

static __thread struct q_local *q_tls_list SHF_TLS_IE;
static __thread struct q_local *q_tls_last SHF_TLS_IE;

static pthread_once_t q_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t q_key;
static int q_key_ok;

static void q_local_free(struct q_local *l)
{
	free(l->push);
	free(l->pull);
	free(l);
}

/* Thread exit: free the thread's states (pending items are lost). */
static void q_thread_exit(void *arg)
{
	struct q_local *l, *n;

	(void)arg;
	for (l = q_tls_list; l; l = n) {
		n = l->next;
		q_local_free(l);
	}
	q_tls_list = NULL;
	q_tls_last = NULL;
}

/*
 * fork(): the child's copy of the forking thread's states still lists the
 * parent's pre-queued items; they are the parent's, so the child lets go
 * of them (without touching shared memory) and starts afresh.
 */
static void q_atfork_child(void)
{
	q_thread_exit(NULL);
}

static void q_key_make(void)
{
	q_key_ok = pthread_key_create(&q_key, q_thread_exit) == 0;
	pthread_atfork(NULL, NULL, q_atfork_child);
}

static uint64_t q_size_align(uint64_t x)
{
	return (x + Q_ALIGN - 1) & ~(uint64_t)(Q_ALIGN - 1);
}

/* Region layout for the given sizes; 0 with EINVAL if it overflows. */
static uint64_t q_layout(uint32_t qs, uint32_t q_items, uint32_t item_size,
			 uint64_t *lists, uint64_t *names, uint64_t *links,
			 uint64_t *items)
{
	uint64_t off = q_size_align(sizeof(struct q_hdr));

	/* Items keep their given size; only the array start is aligned. */
	*lists = off;
	off += q_size_align((uint64_t)qs * sizeof(struct q_list));
	*names = off;
	off += q_size_align((uint64_t)qs * sizeof(struct q_name));
	*links = off;
	off += q_size_align((uint64_t)q_items * sizeof(struct q_link));
	*items = off;
	if ((uint64_t)q_items * item_size > (UINT64_MAX >> 2)) {
		errno = EINVAL;
		return 0;
	}
	off += q_size_align((uint64_t)q_items * item_size);
	return off;
}

/* Remove dead states from the thread's list. */
static void q_local_unlink(struct q_local *dead)
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

/* Drop the thread's states whose handle was detached. */
static void q_tls_sweep(uint64_t gen)
{
	struct q_local *l, *n;

	for (l = q_tls_list; l; l = n) {
		n = l->next;
		if (l->gen == gen)
			continue;
		if (shf_reg_alive(l->shf, l->epoch))
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
	uint64_t size, lists, names, links, items, need;

	h = shf_region(shf, Q_REGION, 0, 0, &size);
	if (!h)
		return NULL;
	if (size < sizeof(*h) || h->magic != Q_MAGIC ||
	    __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != Q_READY) {
		errno = ENOENT;
		return NULL;
	}
	need = q_layout(h->qs, h->q_items, h->q_item_size, &lists, &names,
			&links, &items);
	if (!need || need > size || h->qs == 0 || h->q_items == 0 ||
	    h->qs >= Q_OUT || h->q_items >= Q_OUT || h->nolock_max == 0 ||
	    h->off_lists != lists || h->off_names != names ||
	    h->off_links != links || h->off_items != items) {
		errno = EBADMSG;
		return NULL;
	}
	pthread_once(&q_key_once, q_key_make);
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->push = malloc(sizeof(*l->push) * h->qs);
	l->pull = malloc(sizeof(*l->pull) * h->qs);
	if (!l->push || !l->pull) {
		q_local_free(l);
		errno = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < h->qs; i++) {
		l->push[i] = (struct q_priv){ Q_NONE, Q_NONE, 0 };
		l->pull[i] = (struct q_priv){ Q_NONE, Q_NONE, 0 };
	}
	l->shf = shf;
	l->epoch = shf_handle_reg_id(shf);
	l->gen = gen;
	l->hdr = h;
	l->nonce = h->nonce;
	l->qs = h->qs;
	l->q_items = h->q_items;
	l->item_size = h->q_item_size;
	l->nolock_max = h->nolock_max;
	l->lists = (struct q_list *)((char *)h + lists);
	l->names = (struct q_name *)((char *)h + names);
	l->links = (struct q_link *)((char *)h + links);
	l->items = (char *)h + items;
	if (q_key_ok)
		pthread_setspecific(q_key, l);
	l->next = q_tls_list;
	q_tls_list = l;
	return l;
}

/* The calling thread's state for shf's queue set; NULL with errno. */
static struct q_local *q_local_slow(SHF *shf)
{
	uint64_t gen = shf_reg_generation();
	struct q_local *l, *n;

	if (!shf) {
		errno = EINVAL;
		return NULL;
	}
	q_tls_sweep(gen);
	for (l = q_tls_list; l; l = n) {
		n = l->next;
		if (l->shf != shf)
			continue;
		if (__atomic_load_n(&l->hdr->state, __ATOMIC_ACQUIRE) ==
		    Q_READY && l->hdr->nonce == l->nonce) {
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

static inline struct q_local *q_local_get(SHF *shf)
{
	struct q_local *l = q_tls_last;

	if (SHF_LIKELY(l && l->shf == shf &&
		       l->gen == shf_reg_generation() &&
		       __atomic_load_n(&l->hdr->state, __ATOMIC_RELAXED) ==
			       Q_READY))
		return l;
	return q_local_slow(shf);
}

static inline int q_idx_ok(const struct q_local *l, uint32_t i)
{
	return i < l->q_items;
}

static inline int q_idx_or_none(const struct q_local *l, uint32_t i)
{
	return i == Q_NONE || i < l->q_items;
}

/*
 * Walk every list from its tail with a visited map: stop at a bad index,
 * a cycle, a link that joins another list or an item marked for another
 * queue; cut there, rebuild the back links and recount.  Items that no
 * list reaches stay where they are (in some thread's pre-queue, held by a
 * user, or lost with a dead process).
 */
static void q_repair(struct q_local *l)
{
	uint8_t *seen = calloc(l->q_items / 8 + 1, 1);

	if (!seen)
		return;
	for (uint32_t qid = 0; qid < l->qs; qid++) {
		struct q_list *L = &l->lists[qid];
		uint32_t cur = L->tail, prev = Q_NONE, n = 0;

		while (cur != Q_NONE) {
			if (!q_idx_ok(l, cur) || (seen[cur / 8] & (1u << (cur % 8))) ||
			    l->links[cur].qid != qid)
				break;
			seen[cur / 8] |= 1u << (cur % 8);
			l->links[cur].last = prev;
			prev = cur;
			n++;
			cur = l->links[cur].next;
		}
		if (prev != Q_NONE)
			l->links[prev].next = Q_NONE;
		L->tail = n ? L->tail : Q_NONE;
		L->head = prev;
		L->size = n;
	}
	free(seen);
}

/* The journaled operations; each sets every field it touches outright. */
static void q_apply_splice(struct q_local *l, const struct q_journal *j)
{
	struct q_list *L = &l->lists[j->qid];

	l->links[j->first].last = j->old_head;
	l->links[j->last].next = Q_NONE;
	if (j->old_head == Q_NONE)
		L->tail = j->first;
	else
		l->links[j->old_head].next = j->first;
	L->head = j->last;
	L->size = j->old_size + j->n;
}

static void q_apply_cut(struct q_local *l, const struct q_journal *j)
{
	struct q_list *L = &l->lists[j->qid];

	l->links[j->last].next = Q_NONE;
	if (j->new_tail == Q_NONE) {
		L->tail = Q_NONE;
		L->head = Q_NONE;
	} else {
		l->links[j->new_tail].last = Q_NONE;
		L->tail = j->new_tail;
	}
	L->size = j->old_size - j->n;
}

static void q_undo_cut(struct q_local *l, const struct q_journal *j)
{
	struct q_list *L = &l->lists[j->qid];

	l->links[j->first].last = Q_NONE;
	l->links[j->last].next = j->new_tail;
	if (j->new_tail != Q_NONE)
		l->links[j->new_tail].last = j->last;
	L->tail = j->old_tail;
	L->head = j->old_head;
	L->size = j->old_size;
}

/* Put a run back in front of the tail (shf_q_flush(SHF_QID_NONE)). */
static void q_apply_unpull(struct q_local *l, const struct q_journal *j)
{
	struct q_list *L = &l->lists[j->qid];

	l->links[j->first].last = Q_NONE;
	l->links[j->last].next = j->old_tail;
	if (j->old_tail == Q_NONE)
		L->head = j->last;
	else
		l->links[j->old_tail].last = j->last;
	L->tail = j->first;
	L->size = j->old_size + j->n;
}

/*
 * Undo a take (shf_q_take_item()) whose taker died: put item j->first back
 * between j->old_tail (its last) and j->old_head (its next).
 */
static void q_undo_take(struct q_local *l, const struct q_journal *j)
{
	struct q_list *L = &l->lists[j->qid];
	uint32_t x = j->first, a = j->old_tail, b = j->old_head;

	l->links[x].last = a;
	l->links[x].next = b;
	l->links[x].qid = j->qid;
	if (a == Q_NONE)
		L->tail = x;
	else
		l->links[a].next = x;
	if (b == Q_NONE)
		L->head = x;
	else
		l->links[b].last = x;
	L->size = j->old_size;
}

static int q_journal_ok(const struct q_local *l, const struct q_journal *j)
{
	return j->qid < l->qs && q_idx_ok(l, j->first) &&
	       q_idx_ok(l, j->last) && q_idx_or_none(l, j->old_head) &&
	       q_idx_or_none(l, j->old_tail) && q_idx_or_none(l, j->new_tail) &&
	       j->n > 0 && j->n <= l->q_items;
}

/* The previous lock owner died: finish or undo its operation, check. */
static void q_recover(struct q_local *l)
{
	struct q_journal *j = &l->hdr->j;
	uint32_t op = __atomic_load_n(&j->op, __ATOMIC_ACQUIRE);

	if (op != Q_OP_NONE && q_journal_ok(l, j)) {
		if (op == Q_OP_SPLICE)
			q_apply_splice(l, j);
		else if (op == Q_OP_CUT)
			q_undo_cut(l, j);
		else if (op == Q_OP_UNPULL)
			q_apply_unpull(l, j);
		else if (op == Q_OP_TAKE)
			q_undo_take(l, j);
	}
	__atomic_store_n(&j->op, Q_OP_NONE, __ATOMIC_RELEASE);
	q_repair(l);
	l->hdr->recoveries++;
}

static int q_lock(struct q_local *l)
{
	int r = shf_mutex_lock(&l->hdr->lock, shf_handle_lock_site(l->shf));

	if (r < 0)
		return -1;
	if (r == 1)
		q_recover(l);
	return 0;
}

static void q_unlock(struct q_local *l)
{
	shf_mutex_unlock(&l->hdr->lock);
}

/* A list's ends and size agree with each other and with the bounds. */
static int q_list_ok(const struct q_local *l, const struct q_list *L)
{
	if (L->size == 0)
		return L->head == Q_NONE && L->tail == Q_NONE;
	return L->size <= l->q_items && q_idx_ok(l, L->head) &&
	       q_idx_ok(l, L->tail);
}

/* Under the lock: splice every push pre-queue onto its list's head. */
/* Record in the journal the splice of private list p into list L. */
static void q_journal_fill(struct q_journal *j, uint32_t qid,
			   const struct q_priv *p, const struct q_list *L)
{
	j->qid = qid;
	j->first = p->tail;
	j->last = p->head;
	j->n = p->size;
	j->old_head = L->head;
	j->old_tail = L->tail;
	j->old_size = L->size;
	j->new_tail = Q_NONE;
}

static void q_flush_pushes(struct q_local *l)
{
	struct q_journal *j = &l->hdr->j;

	for (uint32_t qid = 0; qid < l->qs && l->push_pending; qid++) {
		struct q_priv *p = &l->push[qid];
		struct q_list *L = &l->lists[qid];

		if (!p->size)
			continue;
		if (!q_list_ok(l, L))
			q_repair(l);
		q_journal_fill(j, qid, p, L);
		__atomic_store_n(&j->op, Q_OP_SPLICE, __ATOMIC_RELEASE);
		q_apply_splice(l, j);
		__atomic_store_n(&j->op, Q_OP_NONE, __ATOMIC_RELEASE);
		l->push_pending -= p->size;
		*p = (struct q_priv){ Q_NONE, Q_NONE, 0 };
	}
	l->push_pending = 0;
}

/* Under the lock: cut up to nolock_max items into the pull pre-queue. */
static void q_fill_pull(struct q_local *l, uint32_t qid)
{
	struct q_journal *j = &l->hdr->j;
	struct q_priv *p = &l->pull[qid];
	struct q_list *L = &l->lists[qid];
	uint32_t want, n, first, last, i;

	if (p->size >= l->nolock_max)
		return;
	want = l->nolock_max - p->size;
	for (int tries = 0; tries < 3; tries++) {
		if (!q_list_ok(l, L)) {
			q_repair(l);
			continue;
		}
		n = L->size < want ? L->size : want;
		if (!n)
			return;
		first = L->tail;
		last = first;
		for (i = 1; i < n; i++) {
			uint32_t nx = l->links[last].next;

			if (!q_idx_ok(l, nx))
				break;
			last = nx;
		}
		if (i < n || !q_idx_or_none(l, l->links[last].next) ||
		    (l->links[last].next == Q_NONE) != (n == L->size)) {
			q_repair(l);
			continue;
		}
		j->qid = qid;
		j->first = first;
		j->last = last;
		j->n = n;
		j->old_head = L->head;
		j->old_tail = L->tail;
		j->old_size = L->size;
		j->new_tail = l->links[last].next;
		__atomic_store_n(&j->op, Q_OP_CUT, __ATOMIC_RELEASE);
		q_apply_cut(l, j);
		__atomic_store_n(&j->op, Q_OP_NONE, __ATOMIC_RELEASE);

		/* Now private: append the run to the pull pre-queue. */
		l->links[first].last = p->head;
		if (p->head == Q_NONE)
			p->tail = first;
		else
			l->links[p->head].next = first;
		p->head = last;
		p->size += n;
		return;
	}
}

/* Under the lock: hand a pull pre-queue back to its list's tail. */
static void q_unpull(struct q_local *l, uint32_t qid)
{
	struct q_journal *j = &l->hdr->j;
	struct q_priv *p = &l->pull[qid];
	struct q_list *L = &l->lists[qid];

	if (!p->size)
		return;
	if (!q_list_ok(l, L))
		q_repair(l);
	q_journal_fill(j, qid, p, L);
	__atomic_store_n(&j->op, Q_OP_UNPULL, __ATOMIC_RELEASE);
	q_apply_unpull(l, j);
	__atomic_store_n(&j->op, Q_OP_NONE, __ATOMIC_RELEASE);
	*p = (struct q_priv){ Q_NONE, Q_NONE, 0 };
}

static void q_set_none(void)
{
	shf_qiid = SHF_QIID_NONE;
	shf_qiid_addr = NULL;
	shf_qiid_addr_len = 0;
}

/* Take the oldest item of the pull pre-queue; Q_NONE if empty. */
static inline uint32_t q_take(struct q_local *l, uint32_t qid)
{
	struct q_priv *p = &l->pull[qid];
	uint32_t qiid = p->tail, nx;

	if (!p->size) {
		q_set_none();
		errno = EAGAIN;
		return SHF_QIID_NONE;
	}
	nx = l->links[qiid].next;
	if (SHF_UNLIKELY(!q_idx_or_none(l, nx) ||
			 (nx == Q_NONE) != (p->size == 1))) {
		/* Only memory corruption gets here: drop the pre-queue. */
		nx = Q_NONE;
		p->size = 1;
	}
	p->tail = nx;
	if (nx == Q_NONE)
		p->head = Q_NONE;
	else
		l->links[nx].last = Q_NONE;
	p->size--;
	l->links[qiid].qid = Q_OUT;
	l->links[qiid].next = Q_NONE;
	shf_qiid = qiid;
	shf_qiid_addr = l->items + (uint64_t)qiid * l->item_size;
	shf_qiid_addr_len = l->item_size;
	return qiid;
}

/* Add a held item to the push pre-queue; -1 with EINVAL if not held. */
static inline int q_push_priv(struct q_local *l, uint32_t qid, uint32_t qiid)
{
	struct q_priv *p = &l->push[qid];
	struct q_link *k;

	if (SHF_UNLIKELY(qiid >= l->q_items))
		goto bad;
	k = &l->links[qiid];
	if (SHF_UNLIKELY(k->qid != Q_OUT))
		goto bad;
	k->qid = qid;
	k->next = Q_NONE;
	k->last = p->head;
	if (p->head == Q_NONE)
		p->tail = qiid;
	else
		l->links[p->head].next = qiid;
	p->head = qiid;
	p->size++;
	l->push_pending++;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

static uint64_t q_nonce(void)
{
	uint64_t n = 0;
	struct timespec ts;

	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != sizeof(n)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		n = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^
		    ((uint64_t)getpid() << 40);
	}
	return n | 1;
}

/* Take over a region that a dead process left half initialised. */
static int q_claim(struct q_hdr *h)
{
	uint32_t st = Q_FREE;
	int32_t pid;
	uint64_t start;

	if (__atomic_compare_exchange_n(&h->state, &st, Q_INIT, 0,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	if (st == Q_READY) {
		errno = EEXIST;
		return -1;
	}
	if (st == Q_INIT) {
		pid = __atomic_load_n(&h->init_pid, __ATOMIC_ACQUIRE);
		start = h->init_start;
		if (pid > 0 && start && shf_proc_start_time(pid) == start) {
			errno = EBUSY;
			return -1;
		}
		/* The initialiser died (or has not written its pid yet). */
		if (pid > 0 && __atomic_compare_exchange_n(&h->state, &st,
							   Q_INIT, 0,
							   __ATOMIC_ACQ_REL,
							   __ATOMIC_ACQUIRE))
			return 0;
	}
	errno = EBUSY;
	return -1;
}

SHF_EXPORT void *shf_q_new(SHF *shf, uint32_t qs, uint32_t q_items,
			   uint32_t q_item_size, uint32_t qids_nolock_max)
{
	uint64_t lists, names, links, items, size;
	struct q_local *l;
	struct q_hdr *h;
	pid_t me = getpid();

	if (!shf || qs == 0 || q_items == 0 || q_item_size == 0 ||
	    qids_nolock_max == 0 || qs >= Q_OUT || q_items >= Q_OUT) {
		errno = EINVAL;
		return NULL;
	}
	size = q_layout(qs, q_items, q_item_size, &lists, &names, &links,
			&items);
	if (!size)
		return NULL;
	h = shf_region(shf, Q_REGION, size, 1, NULL);
	if (!h)
		return NULL;
	if (q_claim(h) < 0)
		return NULL;
	h->init_start = shf_proc_start_time(me);
	__atomic_store_n(&h->init_pid, me, __ATOMIC_RELEASE);

	if (shf_mutex_init(&h->lock) < 0) {
		__atomic_store_n(&h->state, Q_FREE, __ATOMIC_RELEASE);
		return NULL;
	}
	h->magic = Q_MAGIC;
	h->qs = qs;
	h->q_items = q_items;
	h->q_item_size = q_item_size;
	h->nolock_max = qids_nolock_max;
	h->names_used = 0;
	h->off_lists = lists;
	h->off_names = names;
	h->off_links = links;
	h->off_items = items;
	h->recoveries = 0;
	memset(&h->j, 0, sizeof(h->j));
	h->nonce = q_nonce();

	struct q_list *L = (struct q_list *)((char *)h + lists);
	struct q_link *k = (struct q_link *)((char *)h + links);

	memset((char *)h + names, 0, (uint64_t)qs * sizeof(struct q_name));
	for (uint32_t i = 0; i < qs; i++)
		L[i] = (struct q_list){ Q_NONE, Q_NONE, 0, 0 };
	for (uint32_t i = 0; i < q_items; i++) {
		k[i].last = i ? i - 1 : Q_NONE;
		k[i].next = i + 1 < q_items ? i + 1 : Q_NONE;
		k[i].qid = 0;
		k[i].pad = 0;
	}
	L[0] = (struct q_list){ q_items - 1, 0, q_items, 0 };
	__atomic_store_n(&h->state, Q_READY, __ATOMIC_RELEASE);

	l = q_local_get(shf);
	if (!l)
		return NULL;
	shf_qiid_addr = l->items;
	shf_qiid_addr_len = (uint64_t)q_items * q_item_size > UINT32_MAX ?
				    UINT32_MAX :
				    q_items * q_item_size;
	return l->items;
}

SHF_EXPORT void *shf_q_get(SHF *shf)
{
	struct q_local *l = q_local_get(shf);
	uint64_t total;

	if (!l)
		return NULL;
	total = (uint64_t)l->q_items * l->item_size;
	shf_qiid_addr = l->items;
	shf_qiid_addr_len = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
	return l->items;
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
	h = l->hdr;
	/* Every other thread sees Q_DEAD on its next call and lets go. */
	__atomic_store_n(&h->state, Q_DEAD, __ATOMIC_RELEASE);
	q_local_unlink(l);
	shf_region_remove(shf, Q_REGION);
}

SHF_EXPORT uint32_t shf_q_new_name(SHF *shf, const char *name,
				   uint32_t name_len)
{
	struct q_local *l = q_local_get(shf);
	uint32_t qid = SHF_QID_NONE, used;

	if (!l)
		return SHF_QID_NONE;
	if (!name || name_len == 0 || name_len > Q_NAME_MAX) {
		errno = EINVAL;
		return SHF_QID_NONE;
	}
	if (q_lock(l) < 0)
		return SHF_QID_NONE;
	used = l->hdr->names_used;
	if (used > l->qs)
		used = l->qs;
	for (uint32_t i = 0; i < used; i++) {
		if (l->names[i].len == name_len &&
		    !memcmp(l->names[i].name, name, name_len)) {
			errno = EEXIST;
			goto out;
		}
	}
	if (used >= l->qs) {
		errno = ENOSPC;
		goto out;
	}
	qid = used;
	memcpy(l->names[qid].name, name, name_len);
	l->names[qid].len = name_len;
	__atomic_store_n(&l->hdr->names_used, used + 1, __ATOMIC_RELEASE);
out:
	q_unlock(l);
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
	used = __atomic_load_n(&l->hdr->names_used, __ATOMIC_ACQUIRE);
	if (used > l->qs)
		used = l->qs;
	for (uint32_t i = 0; i < used; i++) {
		if (l->names[i].len == name_len &&
		    !memcmp(l->names[i].name, name, name_len))
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
	if (qid >= l->qs) {
		errno = EINVAL;
		return;
	}
	if (qiid == SHF_QIID_NONE)
		return;
	if (q_push_priv(l, qid, qiid) < 0)
		return;
	if (l->push[qid].size >= l->nolock_max) {
		if (q_lock(l) < 0)
			return; /* stays pending; the next lock moves it */
		q_flush_pushes(l);
		q_unlock(l);
	}
}

SHF_EXPORT uint32_t shf_q_pull_tail(SHF *shf, uint32_t qid)
{
	struct q_local *l = q_local_get(shf);

	if (!l) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if (qid >= l->qs) {
		q_set_none();
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (!l->pull[qid].size) {
		if (q_lock(l) < 0) {
			q_set_none();
			return SHF_QIID_NONE;
		}
		q_flush_pushes(l);
		q_fill_pull(l, qid);
		q_unlock(l);
	}
	return q_take(l, qid);
}

SHF_EXPORT uint32_t shf_q_push_head_pull_tail(SHF *shf, uint32_t push_qid,
					      uint32_t push_qiid,
					      uint32_t pull_qid)
{
	struct q_local *l = q_local_get(shf);

	if (!l) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if (push_qid >= l->qs || pull_qid >= l->qs) {
		q_set_none();
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (push_qiid != SHF_QIID_NONE && q_push_priv(l, push_qid, push_qiid)) {
		q_set_none();
		return SHF_QIID_NONE;
	}
	if (l->push[push_qid].size >= l->nolock_max || !l->pull[pull_qid].size) {
		if (q_lock(l) < 0) {
			q_set_none();
			return SHF_QIID_NONE;
		}
		q_flush_pushes(l);
		q_fill_pull(l, pull_qid);
		q_unlock(l);
	}
	return q_take(l, pull_qid);
}

SHF_EXPORT void shf_q_flush(SHF *shf, uint32_t pull_qid)
{
	struct q_local *l = q_local_get(shf);

	if (!l)
		return;
	if (pull_qid != SHF_QID_NONE && pull_qid >= l->qs) {
		errno = EINVAL;
		return;
	}
	if (q_lock(l) < 0)
		return;
	q_flush_pushes(l);
	if (pull_qid != SHF_QID_NONE) {
		q_fill_pull(l, pull_qid);
	} else {
		for (uint32_t qid = 0; qid < l->qs; qid++)
			q_unpull(l, qid);
	}
	q_unlock(l);
}

/*
 * Under the lock: is qiid on shared list qid?  Walks it from the tail (an
 * item in some thread's private pre-queue carries its queue's qid too).
 */
static int q_on_list(struct q_local *l, uint32_t qid, uint32_t qiid)
{
	struct q_list *L = &l->lists[qid];
	uint32_t cur = L->tail;

	for (uint32_t n = 0; n < L->size && q_idx_ok(l, cur); n++) {
		if (cur == qiid)
			return 1;
		cur = l->links[cur].next;
	}
	return 0;
}

SHF_EXPORT uint32_t shf_q_take_item(SHF *shf, uint32_t qiid)
{
	struct q_local *l = q_local_get(shf);
	struct q_journal *j;
	struct q_list *L;
	uint32_t qid, a, b;

	q_set_none();
	if (!l)
		return SHF_QIID_NONE;
	if (!q_idx_ok(l, qiid)) {
		errno = EINVAL;
		return SHF_QIID_NONE;
	}
	if (q_lock(l) < 0)
		return SHF_QIID_NONE;
	q_flush_pushes(l);
	qid = l->links[qiid].qid;
	if (qid >= l->qs || !q_list_ok(l, &l->lists[qid]) ||
	    !q_on_list(l, qid, qiid)) {
		q_unlock(l);
		errno = ENOENT;
		return SHF_QIID_NONE;
	}
	L = &l->lists[qid];
	a = l->links[qiid].last;
	b = l->links[qiid].next;
	if (!q_idx_or_none(l, a) || !q_idx_or_none(l, b)) {
		q_repair(l);
		q_unlock(l);
		errno = ENOENT;
		return SHF_QIID_NONE;
	}
	j = &l->hdr->j;
	j->qid = qid;
	j->first = j->last = qiid;
	j->n = 1;
	j->old_tail = a;
	j->old_head = b;
	j->old_size = L->size;
	j->new_tail = Q_NONE;
	__atomic_store_n(&j->op, Q_OP_TAKE, __ATOMIC_RELEASE);
	if (a == Q_NONE)
		L->tail = b;
	else
		l->links[a].next = b;
	if (b == Q_NONE)
		L->head = a;
	else
		l->links[b].last = a;
	L->size--;
	l->links[qiid].qid = Q_OUT;
	l->links[qiid].last = l->links[qiid].next = Q_NONE;
	__atomic_store_n(&j->op, Q_OP_NONE, __ATOMIC_RELEASE);
	q_unlock(l);
	shf_qiid = qiid;
	shf_qiid_addr = l->items + (uint64_t)qiid * l->item_size;
	shf_qiid_addr_len = l->item_size;
	return qiid;
}

SHF_EXPORT void shf_q_size(SHF *shf, uint32_t qid)
{
	/* SharedHashFile's debug print; a library prints nothing. */
	(void)shf;
	(void)qid;
}
