// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-queue.h - the QUEUE phase of shf-bench(1): items per second
 * from one process to another through libshf queues, beside a pipe, a
 * unix socket pair and an eventfd-signalled ring in shared memory.
 */
#ifndef SHF_BENCH_QUEUE_H
#define SHF_BENCH_QUEUE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

/* The peers, in the order they run and are reported. */
enum { QB_SHF_BATCH, QB_SHF_1, QB_PIPE, QB_SOCK, QB_RING, QB_N };

#define QB_ITEMS_DEFAULT 2000000ULL
#define QB_SIZE_DEFAULT 64u
#define QB_SIZE_MIN 8u
#define QB_SIZE_MAX 65536u
#define QB_NOLOCK_BATCH 1000u /* qids_nolock_max of QB_SHF_BATCH */

struct qb_peer_res {
	int ran;
	uint64_t items;  /* items received and checked */
	double secs;     /* from the start signal to the last item checked */
	uint64_t errors; /* items with a wrong payload or out of order */
};

struct qb_res {
	int ran;
	uint64_t items;     /* --q-items */
	unsigned size;      /* --q-size */
	uint32_t q_items;   /* items in the libshf queues */
	uint32_t ring_slots;
	struct qb_peer_res peer[QB_N];
	uint64_t errors;
};

/*
 * Run every peer, each between the calling process (the receiver) and a
 * forked sender.  Live lines go to live.  0, or -1 with errno and a
 * message in *what when a call failed, a sender died or *stop was set.
 */
int qb_run(const char *dir, const char *name, uint64_t items, unsigned size,
	   volatile sig_atomic_t *stop, FILE *live, struct qb_res *res,
	   const char **what);

/* Kill the sender and remove the table, if any (die() calls it). */
void qb_abort(void);

/* The summary lines, and the value of the JSON summary's "queue" key. */
void qb_print_text(const struct qb_res *res, const char *dir);
void qb_print_json(const struct qb_res *res);

#endif
