// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-items.h - what the QUEUE and PINGPONG phases of shf-bench(1)
 * share: the items' checked payload, and the baseline they both measure
 * libshf against, a single-producer single-consumer ring in shared memory
 * whose sides sleep on eventfds.  Header only (inline functions).
 */
#ifndef SHF_BENCH_ITEMS_H
#define SHF_BENCH_ITEMS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double items_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------ payload */

#define PAY_MUL 0x9e3779b97f4a7c15ULL

/* Word k (k >= 1) of item seq; word 0 is seq itself. */
static inline uint64_t pay_word(uint64_t seq, unsigned off)
{
	return seq ^ ((uint64_t)off * PAY_MUL);
}

/* Every byte of an item of size bytes: seq, then words derived from it. */
static inline void pay_fill(char *p, uint64_t seq, unsigned size)
{
	unsigned off;
	uint64_t w;

	memcpy(p, &seq, 8);
	for (off = 8; off + 8 <= size; off += 8) {
		w = pay_word(seq, off);
		memcpy(p + off, &w, 8);
	}
	if (off < size) {
		w = pay_word(seq, off);
		memcpy(p + off, &w, size - off);
	}
}

/* 0 if p holds item seq, else 1. */
static inline int pay_bad(const char *p, uint64_t seq, unsigned size)
{
	unsigned off;
	uint64_t w;

	memcpy(&w, p, 8);
	if (w != seq)
		return 1;
	for (off = 8; off + 8 <= size; off += 8) {
		memcpy(&w, p + off, 8);
		if (w != pay_word(seq, off))
			return 1;
	}
	if (off < size) {
		w = pay_word(seq, off);
		if (memcmp(p + off, &w, size - off))
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------ eventfd ring */

/*
 * The shared part of a ring: entries [tail, head) of slots slots (a power
 * of two).  A side that finds it full (producer) or empty (consumer) says
 * so in its sleeping word and sleeps in read() on its eventfd, which the
 * other side writes when it sees it asleep.
 */
struct eq_ring {
	uint64_t head __attribute__((aligned(64)));
	uint32_t cons_sleeping;
	uint64_t tail __attribute__((aligned(64)));
	uint32_t prod_sleeping;
} __attribute__((aligned(64)));

/* A process's view: the ring, its slots, the two eventfds. */
struct eq_view {
	struct eq_ring *r;
	char *slots;
	uint32_t mask; /* slots - 1 */
	unsigned size; /* bytes a slot */
	int to_cons, to_prod;
};

static inline char *eq_slot(const struct eq_view *v, uint64_t i)
{
	return v->slots + (size_t)(i & v->mask) * v->size;
}

static inline int eq_wake(int fd)
{
	uint64_t one = 1;

	return write(fd, &one, 8) == 8 ? 0 : -1;
}

/*
 * The producer's next slot (to fill, then eq_put()); NULL with errno if a
 * read() failed or *stop was set while waiting for room.
 */
static inline char *eq_room(struct eq_view *v, volatile sig_atomic_t *stop)
{
	struct eq_ring *r = v->r;
	uint64_t h = r->head, x;

	while (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) > v->mask) {
		__atomic_store_n(&r->prod_sleeping, 1, __ATOMIC_SEQ_CST);
		if (h - __atomic_load_n(&r->tail, __ATOMIC_SEQ_CST) > v->mask) {
			if (*stop) {
				errno = EINTR;
				return NULL;
			}
			if (read(v->to_prod, &x, 8) != 8 && errno != EINTR)
				return NULL;
		}
		__atomic_store_n(&r->prod_sleeping, 0, __ATOMIC_SEQ_CST);
	}
	return eq_slot(v, h);
}

/* The slot of eq_room() is full: publish it; 0, or -1 with errno. */
static inline int eq_put(struct eq_view *v)
{
	struct eq_ring *r = v->r;

	__atomic_store_n(&r->head, r->head + 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->cons_sleeping, __ATOMIC_SEQ_CST))
		return eq_wake(v->to_cons);
	return 0;
}

/*
 * The consumer's next item (to read, then eq_done()); NULL with errno if
 * a read() failed, *stop was set, or *gone (the producer has ended: set
 * by a SIGCHLD handler, which also interrupts the read) with ECHILD.
 */
static inline char *eq_next(struct eq_view *v, volatile sig_atomic_t *stop,
			    volatile sig_atomic_t *gone)
{
	struct eq_ring *r = v->r;
	uint64_t t = r->tail, x;
	int was_gone;

	while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == t) {
		__atomic_store_n(&r->cons_sleeping, 1, __ATOMIC_SEQ_CST);
		was_gone = gone && *gone; /* before the look: then final */
		if (__atomic_load_n(&r->head, __ATOMIC_SEQ_CST) == t) {
			if (was_gone) {
				errno = ECHILD;
				return NULL;
			}
			if (*stop) {
				errno = EINTR;
				return NULL;
			}
			if (read(v->to_cons, &x, 8) != 8 && errno != EINTR)
				return NULL;
		}
		__atomic_store_n(&r->cons_sleeping, 0, __ATOMIC_SEQ_CST);
	}
	return eq_slot(v, t);
}

/* The item of eq_next() is used: free its slot; 0, or -1 with errno. */
static inline int eq_done(struct eq_view *v)
{
	struct eq_ring *r = v->r;

	__atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->prod_sleeping, __ATOMIC_SEQ_CST))
		return eq_wake(v->to_prod);
	return 0;
}

#endif /* SHF_BENCH_ITEMS_H */
