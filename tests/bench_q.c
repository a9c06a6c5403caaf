// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench_q.c - items per second between two processes: libshf queues
 * (shf_q_push_head_pull_tail(), qids_nolock_max 1000) against a pipe, a
 * unix socket pair and an eventfd-signalled ring in shared memory, each
 * moving 64-byte items.  Not run by make check.
 *
 *   tests/bench_q [DIR]        (DIR default /dev/shm)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf.h"

#define ITEM 64
#define Q_ITEMS 100000u
#define Q_MOVES 20000000u
#define FD_MOVES 2000000u
#define RING 4096u
#define RING_MOVES 20000000u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, uint64_t items, double secs)
{
	printf("%-34s %12.0f items/s  (%llu items, %.3f s)\n", what,
	       (double)items / secs, (unsigned long long)items, secs);
	fflush(stdout);
}

/* One side of the ping-pong: pull from 'from', touch, push to 'to'. */
static uint64_t q_side(SHF *shf, uint32_t from, uint32_t to, uint64_t moves)
{
	uint64_t moved = 0;

	shf_qiid = SHF_QIID_NONE;
	while (moved < moves) {
		if (shf_q_push_head_pull_tail(shf, to, shf_qiid, from) ==
		    SHF_QIID_NONE)
			continue;
		(*(uint64_t *)shf_qiid_addr)++;
		moved++;
	}
	shf_q_push_head(shf, to, shf_qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	return moved;
}

static int bench_q(const char *dir)
{
	char name[64];
	SHF *shf;
	uint32_t qiid;
	pid_t pid;
	double t0;

	snprintf(name, sizeof(name), "shf-bench-%ld", (long)getpid());
	shf = shf_attach(dir, name, 0);
	if (!shf || !shf_q_new(shf, 3, Q_ITEMS, ITEM, 1000)) {
		perror("shf_attach/shf_q_new");
		return 1;
	}
	shf_q_new_name(shf, "free", 4);
	shf_q_new_name(shf, "a2b", 3);
	shf_q_new_name(shf, "b2a", 3);
	while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
		shf_q_push_head(shf, 1, qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_race_init(shf, "go", 2);

	pid = fork();
	if (pid == 0) {
		SHF *s = shf_attach_existing(dir, name);

		shf_q_get(s);
		shf_race_start(s, "go", 2, 2);
		q_side(s, 1, 2, Q_MOVES);
		shf_detach(s);
		_exit(0);
	}
	shf_race_start(shf, "go", 2, 2);
	t0 = now();
	q_side(shf, 2, 1, Q_MOVES);
	waitpid(pid, NULL, 0);
	/* Each side moved Q_MOVES items one way. */
	report("shf queue (phpt, nolock 1000)", 2ull * Q_MOVES, now() - t0);
	free(shf_del(shf));
	return 0;
}

/* A writes FD_MOVES 64-byte items into fds[1], B reads them from fds[0]. */
static void bench_fd(const char *what, int fds[2])
{
	char item[ITEM], buf[ITEM * 256];
	uint64_t got = 0;
	pid_t pid;
	double t0;

	memset(item, 'x', sizeof(item));
	t0 = now();
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		for (uint32_t i = 0; i < FD_MOVES; i++) {
			memcpy(item, &i, sizeof(i));
			if (write(fds[1], item, ITEM) != ITEM)
				_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < (uint64_t)FD_MOVES * ITEM) {
		ssize_t n = read(fds[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	waitpid(pid, NULL, 0);
	close(fds[0]);
	report(what, got / ITEM, now() - t0);
}

/* Single-producer ring in shared memory; eventfds wake a sleeping peer. */
struct ring {
	uint64_t head __attribute__((aligned(64)));
	uint32_t cons_sleeping;
	uint64_t tail __attribute__((aligned(64)));
	uint32_t prod_sleeping;
	char slot[RING][ITEM] __attribute__((aligned(64)));
};

static void bench_ring(void)
{
	struct ring *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int to_cons = eventfd(0, 0), to_prod = eventfd(0, 0);
	uint64_t v, sum = 0;
	pid_t pid;
	double t0;

	if (r == MAP_FAILED || to_cons < 0 || to_prod < 0) {
		perror("ring");
		return;
	}
	t0 = now();
	pid = fork();
	if (pid == 0) {
		for (uint64_t i = 0; i < RING_MOVES; i++) {
			uint64_t h = r->head;

			while (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >=
			       RING) {
				__atomic_store_n(&r->prod_sleeping, 1,
						 __ATOMIC_SEQ_CST);
				if (h - __atomic_load_n(&r->tail,
							__ATOMIC_SEQ_CST) >= RING &&
				    read(to_prod, &v, 8) != 8)
					_exit(1);
				__atomic_store_n(&r->prod_sleeping, 0,
						 __ATOMIC_SEQ_CST);
			}
			memcpy(r->slot[h % RING], &i, sizeof(i));
			__atomic_store_n(&r->head, h + 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&r->cons_sleeping, __ATOMIC_SEQ_CST)) {
				v = 1;
				if (write(to_cons, &v, 8) != 8)
					_exit(1);
			}
		}
		_exit(0);
	}
	for (uint64_t i = 0; i < RING_MOVES; i++) {
		uint64_t t = r->tail, x;

		while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == t) {
			__atomic_store_n(&r->cons_sleeping, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&r->head, __ATOMIC_SEQ_CST) == t &&
			    read(to_cons, &v, 8) != 8)
				return;
			__atomic_store_n(&r->cons_sleeping, 0, __ATOMIC_SEQ_CST);
		}
		memcpy(&x, r->slot[t % RING], sizeof(x));
		sum += x;
		__atomic_store_n(&r->tail, t + 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&r->prod_sleeping, __ATOMIC_SEQ_CST)) {
			v = 1;
			if (write(to_prod, &v, 8) != 8)
				return;
		}
	}
	waitpid(pid, NULL, 0);
	report("eventfd + shared ring (SPSC)", RING_MOVES, now() - t0);
	if (sum != (uint64_t)RING_MOVES * (RING_MOVES - 1) / 2)
		printf("ring: bad sum\n");
	munmap(r, sizeof(*r));
	close(to_cons);
	close(to_prod);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	int fds[2];

	shf_init();
	if (bench_q(dir))
		return 1;
	if (pipe(fds) == 0)
		bench_fd("pipe (64-byte writes)", fds);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0)
		bench_fd("unix socketpair (64-byte writes)", fds);
	bench_ring();
	return 0;
}
