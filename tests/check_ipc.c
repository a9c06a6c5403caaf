// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * check_ipc.c - queues, race start and the multiplexed log, across
 * processes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

/* ---------------------------------------------------------- items */

#define ITEM_SIZE 64
#define PAYLOAD 48

struct item {
	uint64_t seq;
	uint32_t producer;
	uint32_t sum;
	uint8_t payload[PAYLOAD];
};

static uint32_t fnv(const void *p, size_t len, uint32_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void item_write(void *addr, uint64_t seq, uint32_t producer)
{
	struct item *it = addr;

	it->seq = seq;
	it->producer = producer;
	for (int i = 0; i < PAYLOAD; i++)
		it->payload[i] = (uint8_t)(seq * 31 + producer * 7 + i);
	it->sum = fnv(it->payload, PAYLOAD,
		      fnv(&it->seq, 12, 2166136261u));
}

static int item_ok(const void *addr)
{
	const struct item *it = addr;

	for (int i = 0; i < PAYLOAD; i++)
		if (it->payload[i] !=
		    (uint8_t)(it->seq * 31 + it->producer * 7 + i))
			return 0;
	return it->sum == fnv(it->payload, PAYLOAD,
			      fnv(&it->seq, 12, 2166136261u));
}

/* ---------------------------------------------------- basic queues */

START_TEST(test_q_new_get)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-new", name, sizeof(name));
	uint32_t n = 0, qiid;
	char *items, *seen;

	ck_assert_uint_eq(shf_q_is_ready(shf), 0);
	ck_assert_ptr_null(shf_q_get(shf));
	items = shf_q_new(shf, 3, 1000, ITEM_SIZE, 10);
	ck_assert_ptr_nonnull(items);
	ck_assert_uint_eq(shf_q_is_ready(shf), 1);
	ck_assert_ptr_eq(shf_q_get(shf), items);
	ck_assert_uint_eq(shf_qiid_addr_len, 1000 * ITEM_SIZE);
	/* A second set on the same table is refused. */
	errno = 0;
	ck_assert_ptr_null(shf_q_new(shf, 3, 1000, ITEM_SIZE, 10));
	ck_assert_int_eq(errno, EEXIST);

	seen = calloc(1000, 1);
	/* Every item starts on queue 0, in index order. */
	while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE) {
		ck_assert_uint_eq(qiid, n);
		ck_assert_ptr_eq(shf_qiid_addr, items + (size_t)qiid * ITEM_SIZE);
		ck_assert_uint_eq(shf_qiid_addr_len, ITEM_SIZE);
		seen[qiid]++;
		n++;
		shf_q_push_head(shf, 1, qiid);
	}
	ck_assert_uint_eq(n, 1000);
	ck_assert_ptr_null(shf_qiid_addr);
	/* All on queue 1 now, in the same order. */
	for (n = 0; (qiid = shf_q_pull_tail(shf, 1)) != SHF_QIID_NONE; n++) {
		ck_assert_uint_eq(qiid, n);
		shf_q_push_head(shf, 2, qiid);
	}
	ck_assert_uint_eq(n, 1000);
	shf_q_flush(shf, SHF_QID_NONE);
	free(seen);
	shf_q_del(shf);
	ck_assert_uint_eq(shf_q_is_ready(shf), 0);
	/* And a new set after the delete. */
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 10, 16, 1));
	ck_assert_uint_eq(shf_q_pull_tail(shf, 0), 0);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_q_names)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-names", name, sizeof(name));

	ck_assert_ptr_nonnull(shf_q_new(shf, 3, 100, 16, 1));
	ck_assert_uint_eq(shf_q_new_name(shf, "qid-free", 8), 0);
	ck_assert_uint_eq(shf_q_new_name(shf, "qid-a2b", 7), 1);
	errno = 0;
	ck_assert_uint_eq(shf_q_new_name(shf, "qid-a2b", 7), SHF_QID_NONE);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_uint_eq(shf_q_new_name(shf, "qid-b2a", 7), 2);
	errno = 0;
	ck_assert_uint_eq(shf_q_new_name(shf, "qid-more", 8), SHF_QID_NONE);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_uint_eq(shf_q_get_name(shf, "qid-b2a", 7), 2);
	ck_assert_uint_eq(shf_q_get_name(shf, "qid-free", 8), 0);
	errno = 0;
	ck_assert_uint_eq(shf_q_get_name(shf, "qid-free", 7), SHF_QID_NONE);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_uint_eq(shf_q_get_name(shf, NULL, 3), SHF_QID_NONE);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(shf_q_new_name(shf, name, 61), SHF_QID_NONE);
	ck_assert_int_eq(errno, EINVAL);

	/* Another process finds them by name. */
	pid_t pid = fork();

	if (pid == 0) {
		SHF *s = shf_attach_existing(shf_test_dir(), name);
		int ok = s && shf_q_get(s) &&
			 shf_q_get_name(s, "qid-a2b", 7) == 1 &&
			 shf_q_get_name(s, "qid-b2a", 7) == 2;

		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(shf_test_waitpid(pid, 10), 0);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_q_bad)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-bad", name, sizeof(name));
	uint32_t qiid;

	/* No queue set yet. */
	errno = 0;
	ck_assert_uint_eq(shf_q_pull_tail(shf, 0), SHF_QIID_NONE);
	ck_assert_int_eq(errno, ENOENT);
	shf_q_push_head(shf, 0, 0);
	shf_q_flush(shf, 0);
	ck_assert_uint_eq(shf_q_new_name(shf, "x", 1), SHF_QID_NONE);

	errno = 0;
	ck_assert_ptr_null(shf_q_new(NULL, 3, 10, 16, 1));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(shf_q_new(shf, 0, 10, 16, 1));
	ck_assert_ptr_null(shf_q_new(shf, 3, 0, 16, 1));
	ck_assert_ptr_null(shf_q_new(shf, 3, 10, 0, 1));
	ck_assert_ptr_null(shf_q_new(shf, 3, 10, 16, 0));
	ck_assert_ptr_null(shf_q_new(shf, 3, SHF_QIID_NONE, 16, 1));
	ck_assert_ptr_null(shf_q_new(shf, SHF_QID_NONE, 10, 16, 1));

	ck_assert_ptr_nonnull(shf_q_new(shf, 3, 10, 16, 1));
	errno = 0;
	ck_assert_uint_eq(shf_q_pull_tail(shf, 3), SHF_QIID_NONE);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(shf_q_pull_tail(shf, SHF_QID_NONE), SHF_QIID_NONE);
	errno = 0;
	ck_assert_uint_eq(shf_q_push_head_pull_tail(shf, 7, SHF_QIID_NONE, 0),
			  SHF_QIID_NONE);
	ck_assert_int_eq(errno, EINVAL);

	qiid = shf_q_pull_tail(shf, 0);
	ck_assert_uint_eq(qiid, 0);
	/* Bad qiids and items not held are refused. */
	errno = 0;
	shf_q_push_head(shf, 1, 10);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_q_push_head(shf, 1, 5); /* still on queue 0 */
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_q_push_head(shf, 3, qiid);
	ck_assert_int_eq(errno, EINVAL);
	shf_q_push_head(shf, 1, qiid);
	errno = 0;
	shf_q_push_head(shf, 1, qiid); /* pushed twice */
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_q_flush(shf, 99);
	ck_assert_int_eq(errno, EINVAL);
	/* Nothing got lost or doubled. */
	uint32_t n = 0;

	while (shf_q_pull_tail(shf, 0) != SHF_QIID_NONE)
		n++;
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), 0);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	ck_assert_uint_eq(n, 9);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Rings wrap around many times and keep holes (items taken from their
 * middle): pulls in batches still come in FIFO order, each item once.
 */
START_TEST(test_q_ring_wrap)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-wrap", name, sizeof(name));
	uint32_t want[10], n_want = 0, got[10], n, qiid, prev, i, round;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 10, 16, 4));
	/* items 2 and 5 leave holes in ring 0 */
	ck_assert_uint_eq(shf_q_take_item(shf, 5), 5);
	ck_assert_uint_eq(shf_q_take_item(shf, 2), 2);
	for (i = 0; i < 10; i++)
		if (i != 2 && i != 5)
			want[n_want++] = i;
	for (round = 0; round < 60; round++) {
		uint32_t from = round % 2, to = 1 - from;

		/* move every item from -> to, one call each (the fast path) */
		n = 0;
		prev = SHF_QIID_NONE;
		while ((qiid = shf_q_push_head_pull_tail(shf, to, prev,
							 from)) !=
		       SHF_QIID_NONE) {
			ck_assert_uint_lt(n, 10);
			got[n++] = qiid;
			prev = qiid;
		}
		/* the call that found nothing pushed the last one */
		ck_assert_int_eq(errno, EAGAIN);
		if (round == 7) { /* the two held items join at the head */
			shf_q_push_head(shf, to, 2);
			shf_q_push_head(shf, to, 5);
		}
		shf_q_flush(shf, SHF_QID_NONE);
		ck_assert_uint_eq(n, n_want);
		for (i = 0; i < n; i++)
			ck_assert_uint_eq(got[i], want[i]);
		if (round == 7) {
			want[n_want++] = 2;
			want[n_want++] = 5;
		}
	}
	ck_assert_uint_eq(n_want, 10);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Items taken out of a ring's middle (shf_q_take_item()) leave tombstones
 * there, which a push of a whole pre-queue must compact when the ring
 * would not take it otherwise (found by review: only a ring exactly full
 * was compacted, so the pushed items stayed in the pusher's pre-queue,
 * unseen by other processes, and the next pushes wrote past the
 * pre-queue's array).  Another process then sees every item.
 */
enum { TQ_ITEMS = 4096, TQ_BATCH = 2048, TQ_TAKEN = 2100 };
static char tq_name[SHF_TEST_NAME_MAX];

/* Do the queues hold every item?  0, or 1 + the percentage they hold. */
static int kid_count_items(int idx, void *arg)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), tq_name);
	uint32_t n = 0, q;

	(void)idx;
	(void)arg;
	if (!shf || !shf_q_get(shf))
		return 255;
	for (q = 0; q < 2; q++)
		while (shf_q_pull_tail(shf, q) != SHF_QIID_NONE)
			n++;
	/* dies holding them: they come back */
	return n == TQ_ITEMS ? 0 : 1 + (int)(n * 100 / TQ_ITEMS);
}

START_TEST(test_q_push_over_tombstones)
{
	static uint32_t held[TQ_TAKEN];
	SHF *shf = shf_test_new("q-tomb", tq_name, sizeof(tq_name));
	struct shf_test_kids kids;
	uint32_t i, x;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, TQ_ITEMS, 8, TQ_BATCH));
	for (i = 0; i < TQ_TAKEN; i++) {
		held[i] = shf_q_pull_tail(shf, 0);
		ck_assert_uint_ne(held[i], SHF_QIID_NONE);
		shf_q_push_head(shf, 1, held[i]);
	}
	shf_q_flush(shf, SHF_QID_NONE);
	for (i = 0; i < TQ_TAKEN; i++) /* TQ_TAKEN tombstones on queue 1 */
		ck_assert_uint_eq(shf_q_take_item(shf, held[i]), held[i]);
	for (i = 0; i < TQ_TAKEN; i++) /* TQ_BATCH at a time onto queue 1 */
		shf_q_push_head(shf, 1, held[i]);
	while ((x = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
		shf_q_push_head(shf, 1, x);
	shf_q_flush(shf, SHF_QID_NONE);
	/* every item is on a queue, for anyone to pull */
	shf_test_spawn(&kids, 1, kid_count_items, NULL);
	shf_test_go(&kids);
	shf_test_wait(&kids, 30);
	ck_assert_msg(WIFEXITED(kids.status[0]) &&
			      WEXITSTATUS(kids.status[0]) == 0,
		      "another process saw %d%% of the items (status %#x)",
		      WIFEXITED(kids.status[0]) ?
			      WEXITSTATUS(kids.status[0]) - 1 : -1,
		      kids.status[0]);
	shf_test_del(shf, tq_name);
}
END_TEST

/*
 * Items a thread pulled into its pre-queue and did not take go back to
 * their ring when it flushes or exits, tombstones or not (found by
 * review: the give-back refused a ring whose tombstones left no room, and
 * the items were lost with the thread).
 */
static SHF *unpull_shf;

static void *unpull_worker(void *arg)
{
	uint32_t a, b, c;

	(void)arg;
	a = shf_q_pull_tail(unpull_shf, 0); /* its pre-queue: 0 and 1 */
	b = shf_q_take_item(unpull_shf, 2); /* queue 0: a tombstone, 3 */
	c = shf_q_take_item(unpull_shf, 3); /* queue 0: two tombstones */
	shf_q_push_head(unpull_shf, 0, a);
	shf_q_push_head(unpull_shf, 0, b);
	shf_q_push_head(unpull_shf, 1, c);
	shf_q_flush(unpull_shf, SHF_QID_NONE); /* 1 goes back */
	return (void *)(uintptr_t)(a == 0 && b == 2 && c == 3);
}

START_TEST(test_q_unpull_over_tombstones)
{
	char name[SHF_TEST_NAME_MAX];
	uint32_t n = 0, q, seen = 0, x;
	pthread_t t;
	void *ok;

	unpull_shf = shf_test_new("q-unpull", name, sizeof(name));
	ck_assert_ptr_nonnull(shf_q_new(unpull_shf, 2, 4, 8, 2));
	ck_assert_int_eq(pthread_create(&t, NULL, unpull_worker, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &ok), 0);
	ck_assert_ptr_eq(ok, (void *)1);
	for (q = 0; q < 2; q++)
		while ((x = shf_q_pull_tail(unpull_shf, q)) != SHF_QIID_NONE) {
			ck_assert_uint_lt(x, 4);
			ck_assert(!(seen & (1u << x)));
			seen |= 1u << x;
			n++;
		}
	ck_assert_uint_eq(n, 4);
	shf_test_del(unpull_shf, name);
}
END_TEST

/*
 * A process whose first thread called pthread_exit() lives on in its
 * other threads, though /proc shows its entry as a zombie (found by
 * review: the queues took it for dead, reaped its slot and gave the item
 * its worker held to another process as well).  Here the worker holds the
 * only item for a while: nobody else may pull it meanwhile; it is back
 * once the worker pushed it and the process ended.
 */
static SHF *lead_shf;
static int lead_pipe[2], lead_go[2];
static uint32_t lead_pulled; /* the worker holds the item */

static void *lead_worker(void *arg)
{
	uint32_t x = shf_q_pull_tail(lead_shf, 0);
	char g;

	(void)arg;
	shf_test_add_u32(&lead_pulled, 1);
	if (x == SHF_QIID_NONE || write(lead_pipe[1], "x", 1) != 1)
		_exit(3);
	/* held until the parent has tried to pull it (no clock to race) */
	if (read(lead_go[0], &g, 1) != 1)
		_exit(5);
	shf_q_push_head(lead_shf, 0, x);
	shf_q_flush(lead_shf, SHF_QID_NONE);
	_exit(0); /* the process's last thread: no exit handlers */
}

/*
 * first_pull: the leader exits only once the worker pulled, so that what
 * looks at the leader's threads is the other processes' reaping, not the
 * worker's first queue call.
 */
static void leader_exited(const char *tag, int first_pull)
{
	char name[SHF_TEST_NAME_MAX], c;
	uint32_t i, got = 0;
	int status;
	pid_t pid;

	lead_shf = shf_test_new(tag, name, sizeof(name));
	ck_assert_ptr_nonnull(shf_q_new(lead_shf, 1, 1, 8, 1));
	ck_assert_int_eq(pipe(lead_pipe), 0);
	ck_assert_int_eq(pipe(lead_go), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_t t;

		/* the parent's end only: gone with it, the worker sees EOF */
		close(lead_go[1]);
		if (!shf_q_get(lead_shf) ||
		    pthread_create(&t, NULL, lead_worker, NULL))
			_exit(2);
		if (first_pull && shf_test_wait_u32(&lead_pulled, 1, 30) < 0)
			_exit(4);
		pthread_exit(NULL); /* the process goes on in its worker */
	}
	/* the child's ends only: gone with it, a read here sees EOF */
	close(lead_go[0]);
	close(lead_pipe[1]);
	ck_assert_int_eq(read(lead_pipe[0], &c, 1), 1);
	for (i = 0; i < 20; i++) { /* 0.6 s while the worker holds it */
		ck_assert_msg(shf_q_pull_tail(lead_shf, 0) == SHF_QIID_NONE,
			      "pulled the item that another process holds");
		usleep(30000);
	}
	ck_assert_int_eq(write(lead_go[1], "g", 1), 1);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the holder: status %#x", status);
	for (i = 0; i < 100 && !got; i++) {
		got = shf_q_pull_tail(lead_shf, 0) != SHF_QIID_NONE;
		if (!got)
			usleep(10000);
	}
	ck_assert_msg(got, "the item did not come back");
	close(lead_pipe[0]);
	close(lead_go[1]);
	shf_test_del(lead_shf, name);
}

START_TEST(test_q_leader_exited)
{
	leader_exited("q-leader", 0);
}
END_TEST

/*
 * The same for a process in many supplementary groups (found by review):
 * the look at its thread count read the first 4 KiB of /proc/PID/status,
 * where a long Groups: line pushed Threads: out of sight, so the leader
 * counted as dead.  Here the holder is in 16384 groups of ten digits
 * (some 176 KiB of them), and its leader exits only once the worker holds
 * the item, so that the other process's reaping looks at it.  The test
 * process joins the groups before it forks, which needs CAP_SETGID:
 * skipped without.
 */
#define LEAD_GROUPS 16384

START_TEST(test_q_leader_exited_many_groups)
{
	static gid_t gids[LEAD_GROUPS];
	uint32_t i;

	for (i = 0; i < LEAD_GROUPS; i++)
		gids[i] = (gid_t)(1000000000u + i);
	if (setgroups(LEAD_GROUPS, gids) < 0) {
		printf("setgroups(%u): %s: skipped\n", LEAD_GROUPS,
		       strerror(errno));
		return;
	}
	leader_exited("q-leader-groups", 1);
}
END_TEST

/*
 * A process in another time namespace (a container, a restored
 * checkpoint) sees every /proc start time shifted by its boot time offset
 * (found by review: the queues compared start times as each process's
 * /proc shows them, so the item such a live process held was reaped and
 * pulled by another process as well).  Here it holds the only item: nobody
 * else may pull it meanwhile; it is back once that process pushed it.
 */
static SHF *tns_shf;
static uint32_t *tns_step;

static int tns_holder(void *arg)
{
	uint32_t x;

	(void)arg;
	x = shf_q_pull_tail(tns_shf, 0);
	if (x == SHF_QIID_NONE)
		return 3;
	shf_test_add_u32(tns_step, 1);
	if (shf_test_wait_u32(tns_step, 2, 30) < 0)
		return 4;
	shf_q_push_head(tns_shf, 0, x);
	shf_q_flush(tns_shf, SHF_QID_NONE);
	return 0;
}

START_TEST(test_q_other_time_namespace)
{
	char name[SHF_TEST_NAME_MAX];
	uint32_t i, got = 0;
	int status;
	pid_t pid;

	tns_shf = shf_test_new("q-timens", name, sizeof(name));
	tns_step = shf_test_shared(sizeof(*tns_step));
	ck_assert_ptr_nonnull(shf_q_new(tns_shf, 1, 1, 8, 1));
	pid = shf_test_timens_run(tns_holder, NULL);
	if (pid > 0) {
		ck_assert_msg(shf_test_wait_u32(tns_step, 1, 30) == 0,
			      "the holder did not pull the item");
		for (i = 0; i < 20; i++) { /* 0.6 s while it holds it */
			ck_assert_msg(shf_q_pull_tail(tns_shf, 0) ==
					      SHF_QIID_NONE,
				      "pulled the item that a live process "
				      "in another time namespace holds");
			usleep(30000);
		}
		shf_test_add_u32(tns_step, 1);
		status = shf_test_waitpid(pid, 30);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "the holder: status %#x", status);
		for (i = 0; i < 100 && !got; i++) {
			got = shf_q_pull_tail(tns_shf, 0) != SHF_QIID_NONE;
			if (!got)
				usleep(10000);
		}
		ck_assert_msg(got, "the item did not come back");
	}
	shf_test_unshared(tns_step, sizeof(*tns_step));
	shf_test_del(tns_shf, name);
}
END_TEST

/* Queues and keys in the same table at the same time. */
START_TEST(test_q_and_kv)
{
	char name[SHF_TEST_NAME_MAX], key[32];
	SHF *shf = shf_test_new("q-kv", name, sizeof(name));
	uint32_t qiid;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 5000, ITEM_SIZE, 100));
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		shf_make_hash(key, (uint32_t)strlen(key));
		ck_assert_uint_eq(shf_put_key_val(shf, (char *)&i, 4),
				  SHF_RET_KEY_PUT);
		qiid = shf_q_pull_tail(shf, 0);
		ck_assert_uint_eq(qiid, i);
		item_write(shf_qiid_addr, i, 0);
		shf_q_push_head(shf, 1, qiid);
	}
	shf_q_flush(shf, SHF_QID_NONE);
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		shf_make_hash(key, (uint32_t)strlen(key));
		ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		ck_assert_uint_eq(*(uint32_t *)shf_val, i);
		qiid = shf_q_pull_tail(shf, 1);
		ck_assert_uint_eq(qiid, i);
		ck_assert(item_ok(shf_qiid_addr));
	}
	shf_test_del(shf, name);
}
END_TEST

/* ------------------------------------------- producers, consumers */

struct flow {
	char name[SHF_TEST_NAME_MAX];
	uint32_t producers, consumers;
	uint64_t per_producer;
	uint32_t use_phpt;            /* push_head_pull_tail */
	uint64_t consumed;            /* shared counter */
	uint8_t seen[];               /* producers * per_producer */
};

static int flow_producer(int idx, void *arg)
{
	struct flow *f = arg;
	SHF *shf = shf_attach_existing(shf_test_dir(), f->name);
	uint32_t qfree, qdata, qiid;
	uint64_t seq = 0;

	if (!shf || !shf_q_get(shf))
		return 1;
	qfree = shf_q_get_name(shf, "free", 4);
	qdata = shf_q_get_name(shf, "data", 4);
	if (qfree == SHF_QID_NONE || qdata == SHF_QID_NONE)
		return 1;
	shf_qiid = SHF_QIID_NONE;
	while (seq < f->per_producer) {
		if (f->use_phpt)
			qiid = shf_q_push_head_pull_tail(shf, qdata, shf_qiid,
							 qfree);
		else
			qiid = shf_q_pull_tail(shf, qfree);
		if (qiid == SHF_QIID_NONE) {
			sched_yield();
			continue;
		}
		item_write(shf_qiid_addr, seq++, (uint32_t)idx);
		if (!f->use_phpt) {
			shf_q_push_head(shf, qdata, qiid);
			shf_qiid = SHF_QIID_NONE;
		}
	}
	if (f->use_phpt && shf_qiid != SHF_QIID_NONE)
		shf_q_push_head(shf, qdata, shf_qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_detach(shf);
	return 0;
}

static int flow_consumer(int idx, void *arg)
{
	struct flow *f = arg;
	SHF *shf = shf_attach_existing(shf_test_dir(), f->name);
	uint64_t total = f->producers * f->per_producer, *last;
	uint32_t qfree, qdata, qiid;
	int bad = 0;

	(void)idx;
	last = calloc(f->producers, sizeof(*last));
	if (!shf || !shf_q_get(shf) || !last)
		return 1;
	qfree = shf_q_get_name(shf, "free", 4);
	qdata = shf_q_get_name(shf, "data", 4);
	shf_qiid = SHF_QIID_NONE;
	for (;;) {
		if (f->use_phpt)
			qiid = shf_q_push_head_pull_tail(shf, qfree, shf_qiid,
							 qdata);
		else
			qiid = shf_q_pull_tail(shf, qdata);
		if (qiid == SHF_QIID_NONE) {
			if (__atomic_load_n(&f->consumed, __ATOMIC_ACQUIRE) >=
			    total)
				break;
			sched_yield();
			continue;
		}
		const struct item *it = (const void *)shf_qiid_addr;

		if (!item_ok(it) || it->producer >= f->producers ||
		    it->seq >= f->per_producer) {
			bad = 1;
		} else {
			uint64_t k = it->producer * f->per_producer + it->seq;

			/* Exactly once, and in order per producer. */
			if (__atomic_add_fetch(&f->seen[k], 1,
					       __ATOMIC_RELAXED) != 1)
				bad = 1;
			if (last[it->producer] && it->seq < last[it->producer])
				bad = 1;
			last[it->producer] = it->seq;
		}
		__atomic_add_fetch(&f->consumed, 1, __ATOMIC_RELEASE);
		if (!f->use_phpt) {
			shf_q_push_head(shf, qfree, qiid);
			shf_qiid = SHF_QIID_NONE;
		}
	}
	if (f->use_phpt && shf_qiid != SHF_QIID_NONE)
		shf_q_push_head(shf, qfree, shf_qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_detach(shf);
	free(last);
	return bad;
}

static int flow_kid(int idx, void *arg)
{
	struct flow *f = arg;

	if ((uint32_t)idx < f->producers)
		return flow_producer(idx, arg);
	return flow_consumer(idx, arg);
}

static void flow_run(const char *tag, uint32_t producers, uint32_t consumers,
		     uint64_t per_producer, uint32_t items, uint32_t nolock,
		     uint32_t use_phpt)
{
	size_t seen = (size_t)producers * per_producer;
	struct flow *f = shf_test_shared(sizeof(*f) + seen);
	SHF *shf = shf_test_new(tag, f->name, sizeof(f->name));
	uint32_t qiid, n = 0;

	f->producers = producers;
	f->consumers = consumers;
	f->per_producer = per_producer;
	f->use_phpt = use_phpt;
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, items, ITEM_SIZE, nolock));
	ck_assert_uint_eq(shf_q_new_name(shf, "free", 4), 0);
	ck_assert_uint_eq(shf_q_new_name(shf, "data", 4), 1);
	ck_assert_int_eq(shf_test_run((int)(producers + consumers), flow_kid,
				      f, 60),
			 0);
	ck_assert_uint_eq(f->consumed, seen);
	for (size_t i = 0; i < seen; i++)
		ck_assert_msg(f->seen[i] == 1, "item %zu seen %u times", i,
			      f->seen[i]);
	/* Every item is back on the free queue. */
	while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
		n++;
	ck_assert_uint_eq(n, items);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	shf_test_del(shf, f->name);
	shf_test_unshared(f, sizeof(*f) + seen);
}

START_TEST(test_q_two_procs)
{
	/* 2 million items, one producer, one consumer, one by one locks. */
	flow_run("q-two", 1, 1, 2000000, 10000, 100, 0);
}
END_TEST

START_TEST(test_q_many_procs)
{
	/* 3 producers, 2 consumers, 1.5 million items. */
	flow_run("q-many", 3, 2, 500000, 5000, 50, 0);
}
END_TEST

START_TEST(test_q_push_head_pull_tail)
{
	/* The fast path: push and pull in one call, batches of 1000. */
	flow_run("q-phpt", 2, 2, 1000000, 20000, 1000, 1);
}
END_TEST

/* Ping-pong between two processes as in SharedHashFile's example. */
static int pingpong_kid(int idx, void *arg)
{
	const char *name = arg;
	SHF *shf = shf_attach_existing(shf_test_dir(), name);
	uint32_t from, to, moved = 0;

	if (!shf || !shf_q_get(shf))
		return 1;
	from = shf_q_get_name(shf, idx ? "a2b" : "b2a", 3);
	to = shf_q_get_name(shf, idx ? "b2a" : "a2b", 3);
	shf_qiid = SHF_QIID_NONE;
	while (moved < 1000000) {
		if (shf_q_push_head_pull_tail(shf, to, shf_qiid, from) ==
		    SHF_QIID_NONE)
			continue;
		uint64_t *count = (uint64_t *)shf_qiid_addr;

		(*count)++;
		moved++;
	}
	shf_q_push_head(shf, to, shf_qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_detach(shf);
	return 0;
}

START_TEST(test_q_pingpong)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-ping", name, sizeof(name));
	uint32_t qiid, n = 0;
	uint64_t sum = 0;

	ck_assert_ptr_nonnull(shf_q_new(shf, 3, 100000, ITEM_SIZE, 1000));
	shf_q_new_name(shf, "free", 4);
	shf_q_new_name(shf, "a2b", 3);
	shf_q_new_name(shf, "b2a", 3);
	while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
		shf_q_push_head(shf, 1, qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	ck_assert_int_eq(shf_test_run(2, pingpong_kid, name, 60), 0);
	for (uint32_t q = 1; q <= 2; q++) {
		while ((qiid = shf_q_pull_tail(shf, q)) != SHF_QIID_NONE) {
			sum += *(uint64_t *)shf_qiid_addr;
			n++;
		}
	}
	ck_assert_uint_eq(n, 100000);
	ck_assert_uint_eq(sum, 2000000);
	shf_test_del(shf, name);
}
END_TEST

/* A process killed at any moment, even holding the lock, blocks no one. */
static void q_kill_child(const char *name)
{
	SHF *s = shf_attach_existing(shf_test_dir(), name);
	uint32_t qiid = SHF_QIID_NONE;

	if (!s || !shf_q_get(s))
		_exit(1);
	for (;;) {
		qiid = shf_q_push_head_pull_tail(s, 1, qiid, 0);
		if (qiid == SHF_QIID_NONE)
			qiid = shf_q_push_head_pull_tail(s, 0, SHF_QIID_NONE,
							 1);
	}
}

START_TEST(test_q_kill)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-kill", name, sizeof(name));
	uint32_t items = 2000, qiid, n;
	double t0;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, items, ITEM_SIZE, 1));
	for (int round = 0; round < 30; round++) {
		pid_t pid = fork();

		if (pid == 0)
			q_kill_child(name);
		ck_assert_int_ge(pid, 0);
		shf_test_msleep(2 + round % 7);
		/* Compete for the lock while it runs, then kill it. */
		for (int i = 0; i < 1000; i++) {
			qiid = shf_q_pull_tail(shf, round & 1);
			if (qiid != SHF_QIID_NONE)
				shf_q_push_head(shf, !(round & 1), qiid);
		}
		kill(pid, SIGKILL);
		ck_assert_int_ne(shf_test_waitpid(pid, 10), -1);
	}
	/* The lists are whole: pull everything within a bounded time. */
	t0 = shf_test_now();
	n = 0;
	for (uint32_t q = 0; q < 2; q++)
		while ((qiid = shf_q_pull_tail(shf, q)) != SHF_QIID_NONE)
			n++;
	ck_assert(shf_test_now() - t0 < 2.0 * shf_test_multiplier());
	/* Each killed child could hold at most 1 pulled + 1 pre-queued. */
	ck_assert_uint_le(n, items);
	ck_assert_uint_ge(n, items - 30 * 3);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Nothing a killed process held is lost: whatever it had pulled, or had
 * waiting in its pre-queues (100 items a batch here), comes back to the
 * queues, each item exactly once, within a bounded time.
 */
static void q_kill_batch_child(const char *name, uint32_t seed)
{
	SHF *s = shf_attach_existing(shf_test_dir(), name);
	uint32_t held[64], nheld = 0;

	if (!s || !shf_q_get(s))
		_exit(1);
	for (;;) {
		uint32_t q = seed & 1, qiid;

		seed = seed * 1103515245u + 12345u;
		qiid = shf_q_pull_tail(s, q);
		if (qiid != SHF_QIID_NONE && nheld < 64 && (seed >> 20) % 3 == 0)
			held[nheld++] = qiid; /* keep some for a while */
		else if (qiid != SHF_QIID_NONE)
			shf_q_push_head(s, !q, qiid);
		if (nheld && (seed >> 24) % 5 == 0)
			shf_q_push_head(s, seed & 1, held[--nheld]);
		if ((seed >> 16) % 97 == 0)
			shf_q_flush(s, SHF_QID_NONE);
	}
}

START_TEST(test_q_kill_no_loss)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-kill-nl", name, sizeof(name));
	uint32_t items = 3000, qiid, n = 0, dups = 0;
	uint8_t *seen = calloc(items, 1);
	struct shf_stats st;
	double t0;

	ck_assert_ptr_nonnull(seen);
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, items, ITEM_SIZE, 100));
	for (uint32_t round = 0; round < 40; round++) {
		pid_t pid[2];

		for (int k = 0; k < 2; k++) {
			pid[k] = fork();
			if (pid[k] == 0)
				q_kill_batch_child(name, round * 7919 + k);
			ck_assert_int_ge(pid[k], 0);
		}
		shf_test_msleep(1 + round % 9);
		for (int i = 0; i < 300; i++) { /* compete for the lock */
			qiid = shf_q_pull_tail(shf, round & 1);
			if (qiid != SHF_QIID_NONE)
				shf_q_push_head(shf, !(round & 1), qiid);
		}
		shf_q_flush(shf, SHF_QID_NONE);
		for (int k = 0; k < 2; k++) {
			kill(pid[k], SIGKILL);
			ck_assert_int_ne(shf_test_waitpid(pid[k], 10), -1);
		}
	}
	/* every item comes back, exactly once, within a bounded time */
	t0 = shf_test_now();
	while (n < items && shf_test_now() - t0 < 5.0 * shf_test_multiplier()) {
		uint32_t got = 0;

		for (uint32_t q = 0; q < 2; q++)
			while ((qiid = shf_q_pull_tail(shf, q)) != SHF_QIID_NONE) {
				ck_assert_uint_lt(qiid, items);
				if (seen[qiid]++)
					dups++;
				n++;
				got++;
			}
		if (!got)
			shf_test_msleep(10);
	}
	ck_assert_uint_eq(dups, 0);
	ck_assert_msg(n == items, "%u of %u items came back after 80 kills", n,
		      items);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	free(seen);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A thread that used the queues exits while another detaches the handle:
 * its exit gave its pre-queues back through the table after the detach
 * unmapped it (a crash, or a write into whatever was mapped there next).
 */
static SHF *exit_shf;
static int exit_go;

static void *q_exit_worker(void *arg)
{
	uint32_t x = shf_q_pull_tail(exit_shf, 0);

	(void)arg;
	if (x != SHF_QIID_NONE)
		shf_q_push_head(exit_shf, 0, x);
	__atomic_store_n(&exit_go, 1, __ATOMIC_RELEASE);
	return NULL; /* the queues' thread-exit handler runs now */
}

START_TEST(test_q_thread_exit_while_detached)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-exit-det", name, sizeof(name));
	int i;

	ck_assert_ptr_nonnull(shf_q_new(shf, 4, 4096, ITEM_SIZE, 1000));
	exit_shf = shf;
	for (i = 0; i < 2000; i++) {
		pthread_t t;

		__atomic_store_n(&exit_go, 0, __ATOMIC_RELAXED);
		ck_assert_int_eq(pthread_create(&t, NULL, q_exit_worker, NULL),
				 0);
		while (!__atomic_load_n(&exit_go, __ATOMIC_ACQUIRE))
			; /* no yield: the detach races the worker's exit */
		shf_detach(exit_shf); /* the worker is done with it */
		pthread_join(t, NULL);
		exit_shf = shf_attach_existing(shf_test_dir(), name);
		ck_assert_ptr_nonnull(exit_shf);
	}
	shf_test_del(exit_shf, name);
}
END_TEST

/*
 * An item given back to its ring from a pull pre-queue (a flush) kept the
 * word that said its process held it: a push of it was taken, and it was
 * then on two queues.  Such a push is refused like that of any item on a
 * queue (EINVAL), and each item comes out once.
 */
START_TEST(test_q_push_of_unpulled_refused)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-unpull-push", name, sizeof(name));
	uint32_t a, x, seen[16] = { 0 };
	int q, i;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 16, ITEM_SIZE, 8));
	a = shf_q_pull_tail(shf, 0); /* and the next ones pre-queued */
	ck_assert_uint_ne(a, SHF_QIID_NONE);
	shf_q_flush(shf, SHF_QID_NONE); /* back on queue 0 */
	for (x = 0; x < 16; x++) {
		if (x == a)
			continue;
		errno = 0;
		shf_q_push_head(shf, 1, x);
		ck_assert_msg(errno == EINVAL, "a push of item %u, on queue "
			      "0: errno %d", x, errno);
	}
	shf_q_push_head(shf, 1, a);
	shf_q_flush(shf, SHF_QID_NONE);
	for (q = 0; q < 2; q++)
		while ((x = shf_q_pull_tail(shf, q)) != SHF_QIID_NONE) {
			ck_assert_uint_lt(x, 16);
			seen[x]++;
		}
	for (i = 0; i < 16; i++)
		ck_assert_msg(seen[i] == 1, "item %d came out %u times", i,
			      seen[i]);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A process whose /proc entry another cannot read (hidepid=2, another
 * user) counted as dead: the other's idle pull gave its slot away, and
 * with it the items it held and had pre-queued.  Root only (a mount
 * namespace with its own /proc, and another user): skipped elsewhere.
 */
START_TEST(test_q_holder_hidden_by_hidepid)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf;
	uint32_t held;
	int status;
	pid_t pid;

	if (geteuid() != 0)
		return;
	shf = shf_test_new("q-hidepid", name, sizeof(name));
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 16, ITEM_SIZE, 8));
	held = shf_q_pull_tail(shf, 0); /* and 7 more pre-queued */
	ck_assert_uint_ne(held, SHF_QIID_NONE);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint32_t x, n = 0;

		/* the fork's handler let go of the parent's state here */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("proc", "/proc", "proc", 0, "hidepid=2") < 0 ||
		    setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(77); /* no namespaces here: not tested */
		if (kill(getppid(), 0) == 0 || errno != EPERM)
			_exit(78);
		usleep(200000); /* past Q_CHECK_MS: an idle pull reaps */
		shf_q_pull_tail(shf, 1);
		while ((x = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE) {
			if (x == held)
				_exit(3);
			n++;
		}
		_exit(n == 8 ? 0 : 10 + (int)n);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert(status != -1 && WIFEXITED(status));
	if (WEXITSTATUS(status) != 77 && WEXITSTATUS(status) != 78)
		ck_assert_msg(WEXITSTATUS(status) == 0,
			      "the other user's process: status %d (3: it "
			      "pulled the item this process holds; 10+n: it "
			      "pulled n items, of 8 on the queue)",
			      WEXITSTATUS(status));
	shf_q_flush(shf, SHF_QID_NONE);
	shf_test_del(shf, name);
}
END_TEST

/* ----------------------------------- children that run no atfork handler */

/*
 * A table named after tag (name: SHF_TEST_NAME_MAX bytes) with one queue
 * of items, which this thread has used (its state and this process's slot
 * made before a child is); NULL where no MADV_WIPEONFORK tells a child of
 * _Fork() apart (not tested).
 */
static SHF *nofork_queues(const char *tag, char *name, uint32_t items)
{
	SHF *shf = shf_test_new(tag, name, SHF_TEST_NAME_MAX);
	uint32_t qiid;

	if (!shf_test_wipeonfork()) {
		shf_test_del(shf, name);
		return NULL;
	}
	ck_assert_ptr_nonnull(shf_q_new(shf, 1, items, ITEM_SIZE, 100));
	qiid = shf_q_pull_tail(shf, 0);
	ck_assert_uint_ne(qiid, SHF_QIID_NONE);
	shf_q_push_head(shf, 0, qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	return shf;
}

/*
 * A child of fork() pushes an item its parent pulled, as SharedHashFile's
 * programs may (a job pulled, a worker forked to finish it): an audit's
 * fix had a push ask that the caller's own process hold the item, which
 * refused it (EINVAL); it was taken back.
 */
START_TEST(test_q_child_pushes_what_parent_pulled)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-forkpush", name, sizeof(name));
	uint32_t x, y;
	int status;
	pid_t pid;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 8, ITEM_SIZE, 1));
	x = shf_q_pull_tail(shf, 0);
	ck_assert_uint_ne(x, SHF_QIID_NONE);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int e;

		errno = 0;
		shf_q_push_head(shf, 1, x);
		e = errno;
		shf_q_flush(shf, SHF_QID_NONE);
		_exit(e == 0 ? 0 : e == EINVAL ? 10 : 11);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's push: status %#x (10: EINVAL)", status);
	y = shf_q_pull_tail(shf, 1);
	ck_assert_uint_eq(y, x);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A _Fork() child of a process that used the queues took its items in
 * its parent's slot (the thread's state was the parent's): killed, it
 * left them owned by a live process, and they never came back.  Now it
 * takes a slot of its own, and its items come back once it is gone.
 */
START_TEST(test_q_no_atfork_child)
{
	char name[SHF_TEST_NAME_MAX];
	uint32_t items = 200, qiid, got = 0, n = 0;
	SHF *shf = nofork_queues("q-nofork", name, items);
	int go[2];
	double t0;
	pid_t pid;

	if (!shf)
		return;
	ck_assert_int_eq(pipe(go), 0);
	pid = shf_test_fork_no_atfork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* every item into this process's hands, then wait for death */
		while (shf_q_pull_tail(shf, 0) != SHF_QIID_NONE)
			got++;
		if (write(go[1], &got, sizeof(got)) != sizeof(got))
			_exit(2);
		for (;;)
			pause();
	}
	ck_assert_int_eq(read(go[0], &got, sizeof(got)), sizeof(got));
	ck_assert_uint_eq(got, items);
	kill(pid, SIGKILL);
	ck_assert_int_ne(shf_test_waitpid(pid, 10), -1);
	t0 = shf_test_now();
	while (n < items && shf_test_now() - t0 < 5.0 * shf_test_multiplier()) {
		while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
			n++;
		if (n < items)
			shf_test_msleep(10);
	}
	ck_assert_msg(n == items, "%u of %u items came back after the "
		      "_Fork() child was killed", n, items);
	close(go[0]);
	close(go[1]);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A _Fork() child whose threads all make their first queue call at once:
 * one of them lets go of the parent's slots while the others wait for
 * the list's lock.  That lock was a pthread mutex made anew by the first
 * thread (the child's copy could be held by the parent's), which the
 * others could be locking at that moment; now the lock word names its
 * holder's process, and a word of the parent's is taken over.
 */
#define NOFORK_THREADS 8

struct nofork_arg {
	SHF *shf;
	pthread_barrier_t *bar;
};

static void *nofork_thread(void *p)
{
	struct nofork_arg *a = p;
	uint32_t got[4], n = 0, i;

	pthread_barrier_wait(a->bar);
	while (n < 4 && (got[n] = shf_q_pull_tail(a->shf, 0)) != SHF_QIID_NONE)
		n++;
	for (i = 0; i < n; i++)
		shf_q_push_head(a->shf, 0, got[i]);
	/* n may be 0: the others' pull pre-queues may hold every item */
	shf_q_flush(a->shf, SHF_QID_NONE);
	return NULL;
}

START_TEST(test_q_no_atfork_threads)
{
	char name[SHF_TEST_NAME_MAX];
	uint32_t items = 400, qiid, n = 0;
	SHF *shf = nofork_queues("q-nofork-thr", name, items);
	int round, status;
	pid_t pid;

	if (!shf)
		return;
	for (round = 0; round < 20; round++) {
		pid = shf_test_fork_no_atfork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			pthread_barrier_t bar;
			pthread_t t[NOFORK_THREADS];
			struct nofork_arg a[NOFORK_THREADS];
			int i;

			pthread_barrier_init(&bar, NULL, NOFORK_THREADS);
			for (i = 0; i < NOFORK_THREADS; i++) {
				a[i] = (struct nofork_arg){ shf, &bar };
				if (pthread_create(&t[i], NULL, nofork_thread,
						   &a[i]))
					_exit(3);
			}
			for (i = 0; i < NOFORK_THREADS; i++)
				pthread_join(t[i], NULL);
			_exit(0);
		}
		status = shf_test_waitpid(pid, 10 * shf_test_multiplier());
		ck_assert_msg(status != -1 && WIFEXITED(status) &&
				      WEXITSTATUS(status) == 0,
			      "round %d: the _Fork() child: status %#x", round,
			      status);
	}
	while ((qiid = shf_q_pull_tail(shf, 0)) != SHF_QIID_NONE)
		n++;
	ck_assert_msg(n == items, "%u of %u items after the children", n,
		      items);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The fast path of shf_q_push_head_pull_tail() in a _Fork() child used
 * the parent's state (the thread's last): the child handed out an item
 * of its parent's pull pre-queue, which the parent then handed out too.
 * Now the child takes an item of the ring, never one its parent holds.
 */
START_TEST(test_q_no_atfork_fast_path)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("q-nofork-fast", name, sizeof(name));
	uint32_t a, a2, b;
	int status;
	pid_t pid;

	if (!shf_test_wipeonfork()) {
		shf_test_del(shf, name);
		return;
	}
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 16, ITEM_SIZE, 8));
	a = shf_q_push_head_pull_tail(shf, 1, SHF_QIID_NONE, 0);
	ck_assert_uint_ne(a, SHF_QIID_NONE);
	a2 = shf_q_push_head_pull_tail(shf, 1, a, 0);
	ck_assert_uint_ne(a2, SHF_QIID_NONE);
	pid = shf_test_fork_no_atfork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint32_t c = shf_q_push_head_pull_tail(shf, 1, SHF_QIID_NONE,
						       0);

		_exit(c < 16 ? (int)c : 99);
	}
	status = shf_test_waitpid(pid, 10);
	ck_assert(status != -1 && WIFEXITED(status));
	ck_assert_int_lt(WEXITSTATUS(status), 16);
	/* the parent's next item, from its pull pre-queue */
	b = shf_q_push_head_pull_tail(shf, 1, SHF_QIID_NONE, 0);
	ck_assert_uint_ne(b, SHF_QIID_NONE);
	ck_assert_msg((uint32_t)WEXITSTATUS(status) != b,
		      "the child and its parent both pulled item %u", b);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A _Fork() child of a process whose log has a drain thread: the thread
 * is the parent's, and stopping it in the child (shf_log_thread_del(),
 * or shf_detach()'s hook) joined a thread the child does not have, and
 * waited for ever.  Now the child has none to stop (ENOENT).
 */
START_TEST(test_log_no_atfork_child)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-nofork", name, sizeof(name));
	int fd, status;
	pid_t pid;

	if (!shf_test_wipeonfork()) {
		shf_test_del(shf, name);
		return;
	}
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, fd), SHF_RET_OK);
	pid = shf_test_fork_no_atfork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		errno = 0;
		if (shf_log_thread_del(shf) != SHF_RET_ERROR || errno != ENOENT)
			_exit(2);
		shf_detach(shf);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 10);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "the _Fork() child: status %#x", status);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	close(fd);
	shf_test_del(shf, name);
}
END_TEST

/* ------------------------------------------------------ race start */

struct race {
	char name[SHF_TEST_NAME_MAX];
	uint32_t before;
	uint32_t bad;
};

static int race_kid(int idx, void *arg)
{
	struct race *r = arg;
	SHF *shf = shf_attach_existing(shf_test_dir(), r->name);

	if (!shf)
		return 1;
	/* Arrive at different times. */
	shf_test_msleep((unsigned)idx * 50);
	__atomic_add_fetch(&r->before, 1, __ATOMIC_SEQ_CST);
	shf_race_start(shf, "line", 4, 4);
	if (__atomic_load_n(&r->before, __ATOMIC_SEQ_CST) != 4)
		__atomic_store_n(&r->bad, 1, __ATOMIC_SEQ_CST);
	shf_detach(shf);
	return 0;
}

START_TEST(test_race_start)
{
	struct race *r = shf_test_shared(sizeof(*r));
	SHF *shf = shf_test_new("race", r->name, sizeof(r->name));

	shf_race_init(shf, "line", 4);
	ck_assert_int_eq(shf_test_run(4, race_kid, r, 20), 0);
	ck_assert_uint_eq(r->before, 4);
	ck_assert_uint_eq(r->bad, 0);

	/* Bad names; a line nobody set up. */
	errno = 0;
	shf_race_init(shf, "0123456789012345678901234567890123456789012", 43);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_race_start(shf, "none", 4, 2);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	shf_race_start(shf, "line", 4, 0);
	ck_assert_int_eq(errno, EINVAL);
	/* A finished line lets a late horse straight through. */
	shf_race_start(shf, "line", 4, 4);
	shf_test_del(shf, r->name);
	shf_test_unshared(r, sizeof(*r));
}
END_TEST

/* ------------------------------------------------------------- log */

START_TEST(test_log_basic)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log", name, sizeof(name));
	FILE *out = tmpfile();
	char *text, pidstr[32], big[5000];
	size_t len;

	ck_assert_ptr_nonnull(out);
	/* Not attached: straight to the stream. */
	ck_assert_int_eq(shf_log_fprintf(out, "plain %d\n", 1), 8);
	fflush(out);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, fileno(out)), SHF_RET_OK);
	errno = 0;
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, fileno(out)),
			  SHF_RET_ERROR);
	ck_assert_int_eq(errno, EBUSY);
	/* lines come as given unless a prefix is asked for (check_compat) */
	ck_assert_uint_eq(shf_log_set_prefix(shf, SHF_LOG_PREFIX_TIME_PID),
			  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "hello\n", 6), SHF_RET_OK);
	ck_assert_int_eq(shf_log_fprintf(stdout, "two %s\n", "x"), 6);
	shf_log_fputs("thr", stdout);
	shf_log_fputc('e', stdout);
	shf_log_fputs("e\n", stdout);
	SHF_PLAIN("plain macro\n");
	SHF_DEBUG("never %d\n", 1);
	memset(big, 'b', sizeof(big));
	errno = 0;
	ck_assert_uint_eq(shf_log_append(shf, big, 1u << 21), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EMSGSIZE);
	big[sizeof(big) - 1] = '\n';
	ck_assert_uint_eq(shf_log_append(shf, big, sizeof(big)), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	errno = 0;
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_ERROR);
	ck_assert_int_eq(errno, ENOENT);
	/* Detached again: to the stream. */
	shf_log_fputs("after\n", out);

	text = shf_test_slurp(out, &len);
	snprintf(pidstr, sizeof(pidstr), " %ld ", (long)getpid());
	ck_assert_msg(strncmp(text, "plain 1\n", 8) == 0, "%s", text);
	char *l = text + 8;
	const char *want[] = { "hello", "two x", "three", "plain macro" };

	for (int i = 0; i < 4; i++) {
		char *nl = strchr(l, '\n'), *sp;

		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		/* "<sec>.<usec> <pid> text" */
		sp = strstr(l, pidstr);
		ck_assert_msg(sp && strchr(l, '.') < sp, "line '%s'", l);
		ck_assert_str_eq(sp + strlen(pidstr), want[i]);
		l = nl + 1;
	}
	ck_assert_ptr_nonnull(strstr(l, "bbbbb\n"));
	ck_assert_ptr_nonnull(strstr(l, "\nafter\n"));
	free(text);
	fclose(out);
	shf_test_del(shf, name);
}
END_TEST

#define LOG_WRITERS 4
#define LOG_LINES 20000

struct logt {
	char name[SHF_TEST_NAME_MAX];
};

static int log_writer(int idx, void *arg)
{
	struct logt *t = arg;
	SHF *shf = shf_attach_existing(shf_test_dir(), t->name);

	if (!shf || shf_log_attach_existing(shf) != SHF_RET_OK)
		return 1;
	for (int i = 0; i < LOG_LINES; i++) {
		/* Mix whole lines, pieces and single characters. */
		switch (i % 3) {
		case 0:
			if (shf_log_fprintf(stdout,
					    "w%d %d abcdefghijklmnopqrstuvwxyz "
					    "%08x end\n",
					    idx, i, (unsigned)(i * 2654435761u)) < 0)
				return 1;
			break;
		case 1:
			shf_log_fprintf(stdout, "w%d %d ", idx, i);
			shf_log_fputs("abcdefghijklmnopqrstuvwxyz ", stdout);
			shf_log_fprintf(stdout, "%08x", (unsigned)(i * 2654435761u));
			shf_log_fputs(" end", stdout);
			shf_log_fputc('\n', stdout);
			break;
		default: {
			char line[128];
			int n = snprintf(line, sizeof(line),
					 "w%d %d abcdefghijklmnopqrstuvwxyz "
					 "%08x end\n",
					 idx, i, (unsigned)(i * 2654435761u));

			if (shf_log_append(shf, line, (uint32_t)n) != SHF_RET_OK)
				return 1;
		}
		}
	}
	shf_log_detach_existing(shf);
	shf_detach(shf);
	return 0;
}

START_TEST(test_log_writers)
{
	struct logt *t = shf_test_shared(sizeof(*t));
	SHF *shf = shf_test_new("log-w", t->name, sizeof(t->name));
	FILE *out = tmpfile();
	int next[LOG_WRITERS] = { 0 }, lines = 0;
	char *text, *l, *nl;
	size_t len;

	ck_assert_ptr_nonnull(out);
	/* A small ring so that writers have to wait for the drain. */
	ck_assert_uint_eq(shf_log_thread_new(shf, 16384, fileno(out)),
			  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_set_prefix(shf, SHF_LOG_PREFIX_TIME_PID),
			  SHF_RET_OK);
	ck_assert_int_eq(shf_test_run(LOG_WRITERS, log_writer, t, 30), 0);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	text = shf_test_slurp(out, &len);
	for (l = text; *l; l = nl + 1) {
		unsigned long sec, usec;
		long pid;
		int w, i, used = 0;
		unsigned x;
		char tail[8];

		nl = strchr(l, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		ck_assert_msg(sscanf(l, "%lu.%6lu %ld w%d %d abcdefghijklmnopqrstuvwxyz %8x %3s%n",
				     &sec, &usec, &pid, &w, &i, &x, tail,
				     &used) == 7 &&
				      used == (int)strlen(l) &&
				      !strcmp(tail, "end"),
			      "torn line '%s'", l);
		ck_assert(w >= 0 && w < LOG_WRITERS);
		ck_assert_msg(i == next[w], "writer %d: line %d after %d", w,
			      i, next[w] - 1);
		ck_assert_uint_eq(x, (unsigned)(i * 2654435761u));
		next[w]++;
		lines++;
	}
	ck_assert_int_eq(lines, LOG_WRITERS * LOG_LINES);
	free(text);
	fclose(out);
	shf_test_del(shf, t->name);
	shf_test_unshared(t, sizeof(*t));
}
END_TEST

/* The draining process dies: writers drop and count, never hang. */
START_TEST(test_log_dead_reader)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-dead", name, sizeof(name));
	FILE *out = tmpfile();
	int pipefd[2], dropped = 0;
	char *text, c;
	size_t len;
	double t0;
	pid_t pid;

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		/* Drain into a pipe nobody reads: the ring fills up. */
		SHF *s = shf_attach_existing(shf_test_dir(), name);

		if (!s || shf_log_thread_new(s, 4096, pipefd[1]) != SHF_RET_OK)
			_exit(1);
		if (write(pipefd[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
	/* Fill the pipe and the ring while the reader lives. */
	ck_assert_uint_eq(shf_log_attach_existing(shf), SHF_RET_OK);
	kill(pid, SIGKILL);
	ck_assert_int_ne(shf_test_waitpid(pid, 10), -1);
	close(pipefd[1]);
	close(pipefd[0]);
	t0 = shf_test_now();
	for (int i = 0; i < 500; i++)
		if (shf_log_fprintf(stdout, "line %d of a dead log\n", i) < 0)
			dropped++;
	ck_assert_msg(shf_test_now() - t0 < 5.0 * shf_test_multiplier(),
		      "writers waited too long");
	ck_assert_int_gt(dropped, 0);
	/* Draining resumes here: the kept lines, then the drop count. */
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, fileno(out)),
			  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "resumed\n", 8), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	text = shf_test_slurp(out, &len);
	char want[64];

	snprintf(want, sizeof(want), " %d lines dropped", dropped);
	ck_assert_msg(strstr(text, want) != NULL, "no '%s' in '%s'", want,
		      text);
	ck_assert_ptr_nonnull(strstr(text, "resumed\n"));
	free(text);
	fclose(out);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The state of a process's first thread (/proc/PID/stat) is 'Z' once it
 * called pthread_exit(), though its other threads go on; wait for that,
 * up to 10 s: 0, or -1 if it did not come.
 */
static int logl_leader_exited(pid_t pid)
{
	double t0 = shf_test_now();
	char path[64], buf[512], *p = NULL;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	while (shf_test_now() - t0 < 10.0 * shf_test_multiplier()) {
		FILE *f = fopen(path, "re");

		p = NULL;
		if (f) {
			if (fgets(buf, sizeof(buf), f))
				p = strrchr(buf, ')');
			fclose(f);
		}
		if (p && p[1] == ' ' && p[2] == 'Z')
			return 0;
		usleep(10000);
	}
	return -1;
}

/*
 * A draining process whose first thread called pthread_exit() while its
 * drain thread goes on (found by review): its start time, as /proc shows
 * it for its first thread, read as gone, so writers that waited for room
 * dropped their lines (EPIPE) though the drain was there.  Now the
 * process's start time is that of any of its threads.  The drain is slow
 * (10 ms a line, through the output callback): 100 lines of 200 bytes
 * through a ring of 4096 bytes make the writer wait; none may be dropped,
 * and all of them must come out.
 */
static uint32_t *logl_drained;
static int logl_go[2];

static void logl_slow_output(char *line, uint32_t len)
{
	(void)line;
	(void)len;
	usleep(10000);
	__atomic_add_fetch(logl_drained, 1, __ATOMIC_SEQ_CST);
}

static void *logl_drain_stopper(void *arg)
{
	SHF *shf = arg;
	char c;

	if (read(logl_go[0], &c, 1) != 1 ||
	    shf_log_thread_del(shf) != SHF_RET_OK)
		_exit(2);
	_exit(0);
	return NULL;
}

START_TEST(test_log_drain_leader_exited)
{
	char name[SHF_TEST_NAME_MAX], line[200], c;
	SHF *shf = shf_test_new("log-lead", name, sizeof(name));
	int ready[2], status, i, bad = 0, err = 0;
	pid_t pid;

	logl_drained = shf_test_shared(sizeof(*logl_drained));
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(logl_go), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		pthread_t t;

		shf_log_output_set(logl_slow_output);
		if (null < 0 || shf_log_thread_new(shf, 4096, null) !=
					SHF_RET_OK ||
		    pthread_create(&t, NULL, logl_drain_stopper, shf) ||
		    write(ready[1], "r", 1) != 1)
			_exit(3);
		pthread_exit(NULL); /* the drain and the stopper go on */
	}
	close(ready[1]);
	close(logl_go[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(logl_leader_exited(pid), 0);
	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	for (i = 0; i < 100; i++)
		if (shf_log_append(shf, line, sizeof(line)) != SHF_RET_OK) {
			bad++;
			err = errno;
		}
	ck_assert_int_eq(write(logl_go[1], "g", 1), 1);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "the draining process: status %#x", status);
	ck_assert_msg(bad == 0, "%d of 100 lines not taken (%s)", bad,
		      strerror(err));
	ck_assert_uint_eq(shf_test_load_u32(logl_drained), 100);
	close(ready[0]);
	close(logl_go[1]);
	shf_test_unshared(logl_drained, sizeof(*logl_drained));
	shf_test_del(shf, name);
}
END_TEST

/*
 * Attach shf's log (which no live process drains) and append lines of
 * 200 bytes until its 4 KiB ring is full: the one that finds no room is
 * dropped with EPIPE, at once.
 */
static void log_fill_no_reader(SHF *shf)
{
	uint32_t rc = SHF_RET_OK;
	char line[200];
	double t0;
	int i;

	ck_assert_uint_eq(shf_log_attach_existing(shf), SHF_RET_OK);
	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	t0 = shf_test_now();
	for (i = 0; i < 40 && rc == SHF_RET_OK; i++)
		rc = shf_log_append(shf, line, sizeof(line));
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_msg(errno == EPIPE, "errno %d (%s), not EPIPE", errno,
		      strerror(errno));
	ck_assert(shf_test_now() - t0 < 2.0 * shf_test_multiplier());
}

/*
 * The same process started its drain only after its first thread had
 * exited (found by review): its start time was stored as 0, which is what
 * a dead process reads as too, so once it was killed writers never found
 * it gone and waited for ever on a full ring.  Now they drop their lines
 * (EPIPE) at once.
 */
static void *logl_late_drain(void *arg)
{
	SHF *shf = arg;
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (null < 0 || logl_leader_exited(getpid()) < 0 ||
	    shf_log_thread_new(shf, 4096, null) != SHF_RET_OK ||
	    write(logl_go[1], "r", 1) != 1)
		_exit(3);
	for (;;)
		pause();
	return NULL;
}

START_TEST(test_log_drain_started_leader_exited)
{
	char name[SHF_TEST_NAME_MAX], c;
	SHF *shf = shf_test_new("log-late", name, sizeof(name));
	int status;
	pid_t pid;

	ck_assert_int_eq(pipe(logl_go), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, logl_late_drain, shf))
			_exit(2);
		pthread_exit(NULL);
	}
	close(logl_go[1]);
	ck_assert_int_eq(read(logl_go[0], &c, 1), 1);
	kill(pid, SIGKILL);
	status = shf_test_waitpid(pid, 10);
	ck_assert(status != -1 && WIFSIGNALED(status));
	log_fill_no_reader(shf);
	ck_assert_uint_eq(shf_log_detach_existing(shf), SHF_RET_OK);
	close(logl_go[0]);
	shf_test_del(shf, name);
}
END_TEST

/*
 * malloc() of this program, which the library's calls take too: while
 * log_malloc_fails is set, a request of 1 MiB or more fails (ENOMEM), as
 * where memory runs out; others, and all of them otherwise, go to the
 * next malloc() (libc's, or a sanitizer's, whose free() takes them back).
 */
static int log_malloc_fails;
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOG_NO_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(LOG_NO_MALLOC)
#define LOG_NO_MALLOC 1
#endif
#ifndef LOG_NO_MALLOC
/*
 * Not under ThreadSanitizer, whose run-time is part of this program and
 * calls malloc() before dlsym() can (the test is skipped there).
 */
static void *(*log_next_malloc)(size_t);

__attribute__((visibility("default")))
void *malloc(size_t n)
{
	void *(*next)(size_t) = __atomic_load_n(&log_next_malloc,
						__ATOMIC_ACQUIRE);

	if (n >= (1u << 20) &&
	    __atomic_load_n(&log_malloc_fails, __ATOMIC_ACQUIRE)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!next) {
		next = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
		__atomic_store_n(&log_next_malloc, next, __ATOMIC_RELEASE);
	}
	return next(n);
}
#endif

/*
 * The drain thread's buffers could not be made (found by review): the
 * thread made them only once it ran, after shf_log_thread_new() had
 * claimed the log for this process and returned SHF_RET_OK, and exited
 * without a word; its claim named a live process, so once the ring was
 * full every writer waited for ever.  Now they are made first, and
 * shf_log_thread_new() fails with ENOMEM, claiming nothing: the writer
 * that fills the ring drops its line (EPIPE), and a later
 * shf_log_thread_new() drains the log.
 */
START_TEST(test_log_drain_no_memory)
{
	char name[SHF_TEST_NAME_MAX], line[200];
	SHF *shf = shf_test_new("log-nomem", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uint32_t got;
	int i;

#ifdef LOG_NO_MALLOC
	close(null);
	shf_test_del(shf, name);
	return;
#endif
	ck_assert_int_ge(null, 0);
	__atomic_store_n(&log_malloc_fails, 1, __ATOMIC_RELEASE);
	errno = 0;
	got = shf_log_thread_new(shf, 4096, null);
	__atomic_store_n(&log_malloc_fails, 0, __ATOMIC_RELEASE);
	ck_assert_uint_eq(got, SHF_RET_ERROR);
	ck_assert_int_eq(errno, ENOMEM);
	log_fill_no_reader(shf);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, null), SHF_RET_OK);
	for (i = 0; i < 40; i++)
		ck_assert_uint_eq(shf_log_append(shf, line, sizeof(line)),
				  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A drain that is slow but works is no stalled one: its output function
 * takes 1.5 s a line, so a batch of a full ring (4 lines of 900 bytes)
 * takes longer than a writer waits for a reader that shows no progress
 * (5 s), but the drain shows its progress line by line.  Every line is
 * taken (13: one at least waits for a whole batch) and comes out; the
 * drain runs in the writer's own process.
 */
static uint32_t logs_out, logs_slow;

static void logs_slow_output(char *line, uint32_t len)
{
	(void)line;
	(void)len;
	if (__atomic_load_n(&logs_slow, __ATOMIC_SEQ_CST))
		usleep(1500000);
	__atomic_add_fetch(&logs_out, 1, __ATOMIC_SEQ_CST);
}

START_TEST(test_log_drain_slow_output)
{
	char name[SHF_TEST_NAME_MAX], line[900];
	SHF *shf = shf_test_new("log-slow", name, sizeof(name));
	int i;

	__atomic_store_n(&logs_slow, 1, __ATOMIC_SEQ_CST);
	shf_log_output_set(logs_slow_output);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, 1), SHF_RET_OK);
	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	for (i = 0; i < 13; i++)
		ck_assert_msg(shf_log_append(shf, line, sizeof(line)) ==
				      SHF_RET_OK,
			      "line %d: %s", i, strerror(errno));
	/* the rest at once */
	__atomic_store_n(&logs_slow, 0, __ATOMIC_SEQ_CST);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	shf_log_output_set(NULL);
	ck_assert_uint_eq(__atomic_load_n(&logs_out, __ATOMIC_SEQ_CST), 13);
	shf_test_del(shf, name);
}
END_TEST

/*
 * fork() while another thread holds one of the log's locks of the
 * process (found by review): shf_log_thread_del() holds the drain
 * thread's while the drain finishes, an append holds the current log's
 * (read) while it waits for room.  The child, where that thread is not,
 * found them held for ever: its shf_detach() or shf_log_detach_existing()
 * waited for ever.  Now the child makes them anew.  The drain is slow
 * (50 ms a line), the ring full: the other thread is still inside when
 * the child is made, 100 ms later.
 */
static SHF *logf_shf;

static void logf_slow_output(char *line, uint32_t len)
{
	(void)line;
	(void)len;
	usleep(50000);
}

static void *logf_thread_del(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)(shf_log_thread_del(logf_shf) != SHF_RET_OK);
}

static void *logf_appends(void *arg)
{
	char line[200];
	int bad = 0;

	(void)arg;
	memset(line, 'y', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 40; i++)
		bad += shf_log_append(logf_shf, line, sizeof(line)) !=
		       SHF_RET_OK;
	return (void *)(uintptr_t)bad;
}

static void log_fork_while_held(const char *tag, int appending)
{
	char name[SHF_TEST_NAME_MAX], line[200];
	void *bad = NULL;
	pthread_t t;
	int status;
	pid_t pid;

	logf_shf = shf_test_new(tag, name, sizeof(name));
	shf_log_output_set(logf_slow_output);
	ck_assert_uint_eq(shf_log_thread_new(logf_shf, 4096, 1), SHF_RET_OK);
	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 18; i++) /* about a ring's worth */
		ck_assert_uint_eq(shf_log_append(logf_shf, line, sizeof(line)),
				  SHF_RET_OK);
	ck_assert_int_eq(pthread_create(&t, NULL, appending ? logf_appends :
							  logf_thread_del,
					NULL),
			 0);
	usleep(100000);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (appending &&
		    shf_log_detach_existing(logf_shf) != SHF_RET_OK)
			_exit(2);
		shf_detach(logf_shf);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 10);
	ck_assert_int_eq(pthread_join(t, &bad), 0);
	ck_assert_ptr_null(bad);
	if (appending)
		ck_assert_uint_eq(shf_log_thread_del(logf_shf), SHF_RET_OK);
	shf_log_output_set(NULL);
	ck_assert_msg(status != -1, "the child hung");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child: status %#x", status);
	shf_test_del(logf_shf, name);
}

START_TEST(test_log_fork_while_thread_del)
{
	log_fork_while_held("log-fork-del", 0);
}
END_TEST

START_TEST(test_log_fork_while_append_waits)
{
	log_fork_while_held("log-fork-app", 1);
}
END_TEST

/*
 * A thread's unfinished line begun for a log of longer records than the
 * one that is current when it goes on (found by review): the room left
 * for it in a record (max - log_pend_len) wrapped below zero, the line
 * grew past what a record takes, and it was lost (EMSGSIZE), as was the
 * one shf_log_detach_existing() ends.  Now what was begun goes out first,
 * in pieces of the current log's records, as a long line does.
 */
START_TEST(test_log_line_begun_for_a_longer_log)
{
	char na[SHF_TEST_NAME_MAX], nb[SHF_TEST_NAME_MAX], xs[2001], ys[1501];
	SHF *a = shf_test_new("log-long", na, sizeof(na));
	SHF *b = shf_test_new("log-short", nb, sizeof(nb));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	FILE *out = tmpfile();
	char *text, *want;
	size_t len;

	ck_assert_int_ge(null, 0);
	ck_assert_ptr_nonnull(out);
	memset(xs, 'x', sizeof(xs) - 1);
	xs[sizeof(xs) - 1] = '\0';
	memset(ys, 'y', sizeof(ys) - 1);
	ys[sizeof(ys) - 1] = '\0';
	/* a's log: records of up to 256 KiB; b's: 960 bytes */
	ck_assert_uint_eq(shf_log_thread_new(a, 0, null), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(a), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_new(b, 4096, fileno(out)),
			  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_attach_existing(a), SHF_RET_OK);
	ck_assert_int_ne(shf_log_fputs(xs, stdout), EOF);
	ck_assert_uint_eq(shf_log_attach_existing(b), SHF_RET_OK);
	ck_assert_msg(shf_log_fputs("tail\n", stdout) != EOF, "%s",
		      strerror(errno));
	/* the same for the line that shf_log_detach_existing() ends */
	ck_assert_uint_eq(shf_log_attach_existing(a), SHF_RET_OK);
	ck_assert_int_ne(shf_log_fputs(ys, stdout), EOF);
	ck_assert_uint_eq(shf_log_attach_existing(b), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_detach_existing(b), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(b), SHF_RET_OK);
	text = shf_test_slurp(out, &len);
	want = malloc(sizeof(xs) + sizeof(ys) + 8);
	ck_assert_ptr_nonnull(want);
	sprintf(want, "%stail\n%s\n", xs, ys);
	ck_assert_msg(!strcmp(text, want), "%zu bytes out, %zu wanted", len,
		      strlen(want));
	free(want);
	free(text);
	fclose(out);
	close(null);
	shf_test_del(b, nb);
	shf_test_del(a, na);
}
END_TEST

/* Is line l (no newline) a whole note of lines lost to ENOSPC?  *k: its count. */
static int log_note_count(const char *l, unsigned long long *k)
{
	int used = 0;

	return sscanf(l, "shf-log: %llu lines dropped while the output could "
			 "not be written (No space left on device)%n",
		      k, &used) == 1 &&
	       used == (int)strlen(l);
}

/*
 * Walk the drain's output (text, changed in place): the notes of lost
 * lines (their counts added to *lost, *notes of them) come before every
 * line; with cut_ok, a note cut short ("shf-log: " and no note) may come
 * on a line of its own before every note and line, holding none of
 * test_log_write_note_cut's "keep" lines; every other line is fmt
 * ("...%d%n", nothing after) with a number above the one before (*last,
 * from its start value), *got of them.
 */
static void log_output_walk(char *text, const char *fmt, int cut_ok,
			    int *got, int *last, int *notes,
			    unsigned long long *lost)
{
	char *l, *nl;

	for (l = text; *l; l = nl + 1) {
		unsigned long long k;
		int i, used = 0;

		nl = strchr(l, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		if (log_note_count(l, &k)) {
			ck_assert_msg(*got == 0, "note after a line: '%s'", l);
			*lost += k;
			(*notes)++;
			continue;
		}
		if (cut_ok && !strncmp(l, "shf-log: ", 9)) {
			ck_assert_msg(!strstr(l, "keep") && *notes == 0 &&
					      *got == 0,
				      "cut note '%s'", l);
			continue;
		}
		ck_assert_msg(sscanf(l, fmt, &i, &used) == 1 &&
				      used == (int)strlen(l),
			      "line '%s'", l);
		ck_assert_int_gt(i, *last);
		*last = i;
		(*got)++;
	}
}

/*
 * The drain's fd fails (ENOSPC) and then works again: every line is
 * either written or counted in a note that comes before the first line
 * written after the failure.  A 4 KiB ring: once lines of more than two
 * rings have gone in, the drain has tried to write the first batch (it
 * takes a batch out only after writing the one before).
 */
#define LOG_WLINES 500

START_TEST(test_log_write_errors)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-werr", name, sizeof(name));
	FILE *out = tmpfile();
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC), fd, got = 0;
	int last = -1, notes = 0;
	unsigned long long lost = 0;
	char *text, line[64];

	ck_assert_ptr_nonnull(out);
	ck_assert_int_ge(full, 0);
	fd = dup(full);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, fd), SHF_RET_OK);
	for (int i = 0; i < LOG_WLINES + 10; i++) {
		int n = snprintf(line, sizeof(line), "line %04d of a full disk\n",
				 i);

		if (i == LOG_WLINES) /* the output works again */
			ck_assert_int_eq(dup2(fileno(out), fd), fd);
		ck_assert_uint_eq(shf_log_append(shf, line, (uint32_t)n),
				  SHF_RET_OK);
	}
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	text = shf_test_slurp(out, NULL);
	log_output_walk(text, "line %d of a full disk%n", 0, &got, &last,
			&notes, &lost);
	ck_assert_int_eq(notes, 1);
	ck_assert_uint_ge(lost, 1);
	ck_assert_uint_eq(lost + (unsigned long long)got, LOG_WLINES + 10);
	ck_assert_int_eq(last, LOG_WLINES + 9);
	free(text);
	fclose(out);
	close(fd);
	close(full);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The writes to one fd (log_fault.fd; -1: none) fail as a test asks:
 * every batch with a "drop " line (ENOSPC, its lines counted in drops);
 * the first note of the lines lost is cut short: its first 12 bytes go
 * out, the rest fails (ENOSPC; cut is 1, then 2).  This write() takes the
 * library's calls; other fds, and the same fd after, write as usual.
 */
static struct {
	int fd;
	int drops;
	int cut;
} log_fault = { -1, 0, 0 };

__attribute__((visibility("default")))
ssize_t write(int fd, const void *buf, size_t n)
{
	const char *b = buf;

	if (fd < 0 || fd != __atomic_load_n(&log_fault.fd, __ATOMIC_ACQUIRE))
		return syscall(SYS_write, fd, buf, n);
	if (memmem(b, n, "drop ", 5)) {
		int lines = 0;

		for (size_t i = 0; i < n; i++)
			lines += b[i] == '\n';
		__atomic_add_fetch(&log_fault.drops, lines, __ATOMIC_RELEASE);
		errno = ENOSPC;
		return -1;
	}
	if (!log_fault.cut && n > 12 && !memcmp(b, "shf-log: ", 9)) {
		ssize_t done = syscall(SYS_write, fd, buf, 12);

		__atomic_store_n(&log_fault.cut, 1, __ATOMIC_RELEASE);
		return done;
	}
	if (log_fault.cut == 1 && memmem(b, n, "dropped while", 13)) {
		__atomic_store_n(&log_fault.cut, 2, __ATOMIC_RELEASE);
		errno = ENOSPC;
		return -1;
	}
	return syscall(SYS_write, fd, buf, n);
}

/* Until *v is at least want, up to 10 s. */
static void log_wait_for(int *v, int want)
{
	double t0 = shf_test_now();

	while (__atomic_load_n(v, __ATOMIC_ACQUIRE) < want &&
	       shf_test_now() - t0 < 10.0)
		usleep(1000);
	ck_assert_int_ge(__atomic_load_n(v, __ATOMIC_ACQUIRE), want);
}

/*
 * The note of lost lines is cut short by a write error: the batch of the
 * same turn is lost too (counted), not written after the cut note, which
 * it would join; the next note, whole and on a line of its own, counts
 * it and comes before the next line written.  5 lines fail, then the
 * note is cut in the turn of "keep 0", then "keep 1" to "keep 9" go out.
 */
START_TEST(test_log_write_note_cut)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-cut", name, sizeof(name));
	FILE *out = tmpfile();
	int fd, got = 0, last = 0, notes = 0;
	unsigned long long lost = 0;
	char *text, line[32];

	ck_assert_ptr_nonnull(out);
	fd = dup(fileno(out));
	ck_assert_int_ge(fd, 0);
	__atomic_store_n(&log_fault.fd, fd, __ATOMIC_RELEASE);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, fd), SHF_RET_OK);
	for (int i = 0; i < 5; i++) {
		int n = snprintf(line, sizeof(line), "drop %d\n", i);

		ck_assert_uint_eq(shf_log_append(shf, line, (uint32_t)n),
				  SHF_RET_OK);
	}
	log_wait_for(&log_fault.drops, 5);
	ck_assert_uint_eq(shf_log_append(shf, "keep 0\n", 7), SHF_RET_OK);
	/* the drain has taken "keep 0" out: the next lines are a new batch */
	log_wait_for(&log_fault.cut, 2);
	for (int i = 1; i < 10; i++) {
		int n = snprintf(line, sizeof(line), "keep %d\n", i);

		ck_assert_uint_eq(shf_log_append(shf, line, (uint32_t)n),
				  SHF_RET_OK);
	}
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	__atomic_store_n(&log_fault.fd, -1, __ATOMIC_RELEASE);
	text = shf_test_slurp(out, NULL);
	log_output_walk(text, "keep %d%n", 1, &got, &last, &notes, &lost);
	ck_assert_int_eq(notes, 1);
	ck_assert_uint_eq(lost, 6);
	ck_assert_int_eq(got, 9);
	ck_assert_int_eq(last, 9);
	free(text);
	fclose(out);
	close(fd);
	shf_test_del(shf, name);
}
END_TEST

/* A pipe made full, its write end blocking if asked; the bytes it took. */
static size_t log_full_pipe_as(int p[2], int blocking)
{
	char junk[4096];
	size_t filled = 0;
	ssize_t n;

	memset(junk, 'x', sizeof(junk));
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	while ((n = write(p[1], junk, sizeof(junk))) > 0 ||
	       (n < 0 && errno == EINTR))
		filled += n > 0 ? (size_t)n : 0;
	ck_assert_int_eq(errno, EAGAIN);
	if (blocking)
		ck_assert_int_eq(fcntl(p[1], F_SETFL, 0), 0);
	return filled;
}

/* A pipe made full, nonblocking; the bytes it took. */
static size_t log_full_pipe(int p[2])
{
	return log_full_pipe_as(p, 0);
}

/* Read fd into buf until want bytes came, or 10 s; the bytes read. */
static size_t log_read_pipe(int fd, char *buf, size_t size, size_t want)
{
	double t0 = shf_test_now();
	size_t len = 0;

	while (len < want && shf_test_now() - t0 < 10.0) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;

		poll(&pf, 1, 100);
		n = read(fd, buf + len, size - 1 - len);
		if (n > 0)
			len += (size_t)n;
		ck_assert_uint_lt(len, size - 1);
	}
	return len;
}

/*
 * A nonblocking fd without room (EAGAIN): the drain waits for room, here
 * 0.3 s, rather than losing the lines.
 */
START_TEST(test_log_write_waits_for_room)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-room", name, sizeof(name));
	static char buf[1 << 17];
	const char *want = "room 0\nroom 1\nroom 2\nroom 3\nroom 4\n";
	size_t filled, len;
	int p[2];

	filled = log_full_pipe(p);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, p[1]), SHF_RET_OK);
	for (int i = 0; i < 5; i++) {
		char line[16];
		int n = snprintf(line, sizeof(line), "room %d\n", i);

		ck_assert_uint_eq(shf_log_append(shf, line, (uint32_t)n),
				  SHF_RET_OK);
	}
	usleep(300000);
	/* Read until the lines are there, or 10 s. */
	len = log_read_pipe(p[0], buf, sizeof(buf), filled + strlen(want));
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	buf[len] = '\0';
	ck_assert_uint_ge(len, filled);
	ck_assert_str_eq(buf + filled, want);
	close(p[0]);
	close(p[1]);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A full pipe (its write end blocking if asked) that nobody reads: the
 * drain gives up after LOG_WRITE_WAIT_MS (2 s), so that
 * shf_log_thread_del() returns; the lines are lost.
 */
static void log_gives_up(const char *tag, int blocking)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new(tag, name, sizeof(name));
	double t0 = shf_test_now(), took;
	int p[2];

	log_full_pipe_as(p, blocking);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, p[1]), SHF_RET_OK);
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(shf_log_append(shf, "stuck\n", 6),
				  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	took = shf_test_now() - t0;
	ck_assert_msg(took >= 1.9 && took < 10.0, "took %.3f s", took);
	close(p[0]);
	close(p[1]);
	shf_test_del(shf, name);
}

/* A nonblocking pipe says EAGAIN. */
START_TEST(test_log_write_gives_up)
{
	log_gives_up("log-stuck", 0);
}
END_TEST

/*
 * A blocking one: its write() waited for a reader that never came, and
 * the drain thread stayed in it, and shf_log_thread_del() (and
 * shf_detach(), and writers waiting for room in the ring) with it.  Now
 * the drain writes through a nonblocking open of its own.
 */
START_TEST(test_log_write_gives_up_blocking)
{
	log_gives_up("log-block", 1);
}
END_TEST

/*
 * The same with a terminal nobody reads (a pty's master never read): a
 * blocking write there waits for room even after poll() said there was
 * some; the drain writes through a nonblocking open of its own.
 */
START_TEST(test_log_write_gives_up_tty)
{
	char name[SHF_TEST_NAME_MAX], line[200];
	SHF *shf = shf_test_new("log-tty", name, sizeof(name));
	double t0, took;
	int m, s;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || !ptsname(m)) {
		printf("no pty: skipped\n");
		if (m >= 0)
			close(m);
		shf_test_del(shf, name);
		return;
	}
	s = open(ptsname(m), O_WRONLY | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(s, 0);
	memset(line, 'y', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	t0 = shf_test_now();
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, s), SHF_RET_OK);
	/* far more than a pty holds (a few KiB to 64 KiB) */
	for (int i = 0; i < 2000; i++)
		ck_assert_uint_eq(shf_log_append(shf, line, sizeof(line)),
				  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	took = shf_test_now() - t0;
	ck_assert_msg(took < 10.0, "took %.3f s", took);
	close(s);
	close(m);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A blocking fd whose reader comes back within the wait: every line gets
 * out, whole, though each write() may take only part of the batch.
 */
START_TEST(test_log_write_blocking_waits_for_room)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-broom", name, sizeof(name));
	static char buf[1 << 18], want[1 << 16];
	size_t filled, len, wlen = 0;
	int p[2];

	filled = log_full_pipe_as(p, 1);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, p[1]), SHF_RET_OK);
	/* more than a pipe's page, so that a batch is written in parts */
	for (int i = 0; i < 2000; i++) {
		char line[32];
		int n = snprintf(line, sizeof(line), "blocking room %d\n", i);

		ck_assert_uint_eq(shf_log_append(shf, line, (uint32_t)n),
				  SHF_RET_OK);
		memcpy(want + wlen, line, (size_t)n);
		wlen += (size_t)n;
	}
	usleep(300000);
	len = log_read_pipe(p[0], buf, sizeof(buf), filled + wlen);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	ck_assert_uint_eq(len, filled + wlen);
	ck_assert_msg(memcmp(buf + filled, want, wlen) == 0,
		      "the lines came out changed");
	close(p[0]);
	close(p[1]);
	shf_test_del(shf, name);
}
END_TEST

/* The output callback takes the drained lines. */
static int cb_lines;
static void cb_output(char *line, uint32_t len)
{
	if (len && line[len - 1] == '\n')
		__atomic_add_fetch(&cb_lines, 1, __ATOMIC_RELAXED);
}

START_TEST(test_log_output_set)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("log-cb", name, sizeof(name));

	shf_log_output_set(cb_output);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, 1), SHF_RET_OK);
	for (int i = 0; i < 100; i++)
		SHF_PLAIN("cb %d\n", i);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	ck_assert_int_eq(cb_lines, 100);
	/* Unattached output goes to the callback too. */
	SHF_PLAIN("direct\n");
	ck_assert_int_eq(cb_lines, 101);
	shf_log_output_set(NULL);
	errno = 0;
	ck_assert_uint_eq(shf_log_attach_existing(NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(shf_log_detach_existing(shf), SHF_RET_ERROR);
	shf_test_del(shf, name);
}
END_TEST

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("ipc");

	shf_test_add_tcase(s, "queues", 30, test_q_new_get, test_q_names,
			   test_q_ring_wrap,
			   test_q_bad, test_q_and_kv, test_q_two_procs,
			   test_q_many_procs, test_q_push_head_pull_tail,
			   test_q_pingpong, test_q_kill,
			   test_q_kill_no_loss, test_q_push_over_tombstones,
			   test_q_unpull_over_tombstones, test_q_leader_exited,
			   test_q_leader_exited_many_groups,
			   test_q_other_time_namespace);
	shf_test_add_tcase(s, "queue-findings", 60,
			   test_q_thread_exit_while_detached,
			   test_q_push_of_unpulled_refused,
			   test_q_child_pushes_what_parent_pulled,
			   test_q_holder_hidden_by_hidepid);

	shf_test_add_tcase(s, "race", 20, test_race_start);

	shf_test_add_tcase(s, "no-atfork", 60, test_q_no_atfork_child,
			   test_q_no_atfork_threads, test_q_no_atfork_fast_path,
			   test_log_no_atfork_child);

	shf_test_add_tcase(s, "log", 30, test_log_basic, test_log_writers,
			   test_log_dead_reader, test_log_output_set,
			   test_log_write_errors, test_log_write_waits_for_room,
			   test_log_write_gives_up, test_log_write_note_cut,
			   test_log_write_gives_up_blocking,
			   test_log_write_blocking_waits_for_room,
			   test_log_write_gives_up_tty,
			   test_log_line_begun_for_a_longer_log);

	shf_test_add_tcase(s, "log-drain", 60, test_log_drain_leader_exited,
			   test_log_drain_started_leader_exited,
			   test_log_drain_no_memory, test_log_drain_slow_output,
			   test_log_fork_while_thread_del,
			   test_log_fork_while_append_waits);
	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(ipc_suite());
}
