// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-queue.c - the QUEUE phase of shf-bench(1).
 *
 * A forked sender moves --q-items items of --q-size bytes to the calling
 * process, the receiver, through each peer in turn:
 *
 *  - libshf queues: two queues, "free" (where every item starts) and
 *    "work", in a table of their own.  The sender loops on
 *    shf_q_push_head_pull_tail(work, item, free), the receiver on
 *    shf_q_push_head_pull_tail(free, item, work); once with a
 *    qids_nolock_max of 1000 (batched) and once with 1 (every push and
 *    pull under the lock).  Both poll: nothing in the queue calls waits.
 *  - a pipe and a unix stream socket pair: one write() per item; the
 *    receiver read()s up to 16 KiB at a time and cuts the stream into
 *    items.
 *  - a single-producer ring of 4096 slots in a shared anonymous mapping;
 *    a side that finds the ring full (sender) or empty (receiver) sleeps
 *    in read() on an eventfd that the other side writes when it sees it
 *    asleep.
 *
 * The sender writes every byte of each item (its sequence number, then
 * words derived from it) in place: into the queue item or ring slot, or
 * into the buffer it write()s.  The receiver checks every byte, and the
 * order, where the item lies (queue item, ring slot, read buffer); a bad
 * item counts as an error.  The time runs from the start signal to the
 * last item checked; the forks, attaches and set-ups are outside it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shf.h"
#include "shf-bench-child.h"
#include "shf-bench-items.h"
#include "shf-bench-queue.h"

#define Q_FREE 0u
#define Q_WORK 1u
#define RING_SLOTS 4096u
#define READ_BYTES 16384u
#define Q_ITEMS_MAX 100000u
#define Q_ITEMS_MIN 4096u
#define Q_BYTES (64u << 20) /* the queue items' bytes, within the bounds */

static const char *const qb_label[QB_N] = {
	"libshf nolock 1000", "libshf nolock 1", "pipe", "socketpair",
	"eventfd ring"
};
static const char *const qb_key[QB_N] = { "libshf", "libshf", "pipe",
					  "socketpair", "eventfd_ring" };

static struct {
	int peer;
	uint64_t items;
	unsigned size;
	uint32_t q_items;
	const char *dir;
	char name[80];
	char path[PATH_MAX];
	SHF *shf;                /* the receiver's handle (the creator's) */
	int fds[2];              /* pipe or socket pair */
	struct eq_view ring;     /* the ring's view (r NULL: none) */
	size_t ring_map;
	struct bench_kids kids;  /* the sender */
	volatile sig_atomic_t *stop;
} g = { .fds = { -1, -1 }, .ring = { .to_cons = -1, .to_prod = -1 },
	.kids = { .done = -1 } };

static volatile sig_atomic_t g_chld; /* the sender has ended */

static void on_chld(int sig)
{
	(void)sig;
	g_chld = 1;
}

/* ------------------------------------------------------ libshf queues */

static int shf_setup(uint32_t nolock)
{
	uint32_t qiid;

	g.shf = shf_attach(g.dir, g.name, 0);
	if (!g.shf)
		return -1;
	if (!shf_q_new(g.shf, 2, g.q_items, g.size, nolock) ||
	    shf_q_new_name(g.shf, "free", 4) != Q_FREE ||
	    shf_q_new_name(g.shf, "work", 4) != Q_WORK)
		return -1;
	/* Touch every item once, so that no page fault is timed. */
	while ((qiid = shf_q_pull_tail(g.shf, Q_FREE)) != SHF_QIID_NONE) {
		memset(shf_qiid_addr, 0, g.size);
		shf_q_push_head(g.shf, Q_WORK, qiid);
	}
	shf_q_flush(g.shf, SHF_QID_NONE);
	while ((qiid = shf_q_pull_tail(g.shf, Q_WORK)) != SHF_QIID_NONE)
		shf_q_push_head(g.shf, Q_FREE, qiid);
	shf_q_flush(g.shf, SHF_QID_NONE);
	return 0;
}

static int shf_send(void)
{
	SHF *s = shf_attach_existing(g.dir, g.name);
	uint32_t qiid = SHF_QIID_NONE;
	uint64_t i = 0;

	if (!s || !shf_q_get(s))
		return -1;
	while (i < g.items) {
		qiid = shf_q_push_head_pull_tail(s, Q_WORK, qiid, Q_FREE);
		if (qiid == SHF_QIID_NONE) {
			if (errno != EAGAIN)
				return -1;
			continue;
		}
		pay_fill(shf_qiid_addr, i++, g.size);
	}
	shf_q_push_head(s, Q_WORK, qiid);
	shf_q_flush(s, SHF_QID_NONE);
	shf_detach(s);
	return 0;
}

static int shf_recv(uint64_t *errors)
{
	uint32_t qiid = SHF_QIID_NONE;
	uint64_t i = 0;
	int gone;

	while (i < g.items) {
		if ((i & 0xffff) == 0 && *g.stop)
			return -1;
		gone = g_chld; /* before the pull: then an empty queue is final */
		qiid = shf_q_push_head_pull_tail(g.shf, Q_FREE, qiid, Q_WORK);
		if (qiid == SHF_QIID_NONE) {
			if (errno == EAGAIN && gone)
				errno = ECHILD; /* the sender ended early */
			if (errno != EAGAIN || *g.stop)
				return -1;
			continue;
		}
		*errors += (uint64_t)pay_bad(shf_qiid_addr, i++, g.size);
	}
	shf_q_push_head(g.shf, Q_FREE, qiid);
	shf_q_flush(g.shf, SHF_QID_NONE);
	return 0;
}

/* ------------------------------------------------------ pipe, socket */

static int fd_send(void)
{
	char *item = malloc(g.size);
	uint64_t i;

	if (!item)
		return -1;
	for (i = 0; i < g.items; i++) {
		unsigned done = 0;

		pay_fill(item, i, g.size);
		while (done < g.size) {
			ssize_t n = write(g.fds[1], item + done, g.size - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			done += (unsigned)n;
		}
	}
	close(g.fds[1]);
	free(item);
	return 0;
}

static int fd_recv(uint64_t *errors)
{
	size_t per = READ_BYTES / g.size ? READ_BYTES / g.size : 1;
	size_t cap = (per + 1) * g.size, have = 0, off;
	char *buf = malloc(cap);
	uint64_t i = 0;
	int rc = 0;

	if (!buf)
		return -1;
	while (i < g.items) {
		/* Less than an item is left over: room for per items. */
		ssize_t n = read(g.fds[0], buf + have, cap - have);

		if (n < 0 && errno == EINTR && !*g.stop)
			continue;
		if (n <= 0) {
			if (!n)
				errno = ECHILD; /* the sender ended early */
			rc = -1;
			break;
		}
		have += (size_t)n;
		for (off = 0; have - off >= g.size && i < g.items;
		     off += g.size)
			*errors += (uint64_t)pay_bad(buf + off, i++, g.size);
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------ eventfd ring */

static int ring_setup(void)
{
	struct eq_view *v = &g.ring;

	g.ring_map = sizeof(struct eq_ring) + (size_t)RING_SLOTS * g.size;
	v->r = mmap(NULL, g.ring_map, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (v->r == MAP_FAILED) {
		v->r = NULL;
		return -1;
	}
	v->slots = (char *)(v->r + 1);
	v->mask = RING_SLOTS - 1;
	v->size = g.size;
	memset(v->slots, 0, (size_t)RING_SLOTS * g.size); /* fault it in */
	v->to_cons = eventfd(0, 0);
	v->to_prod = eventfd(0, 0);
	return v->to_cons < 0 || v->to_prod < 0 ? -1 : 0;
}

static int ring_send(void)
{
	char *slot;
	uint64_t i;

	for (i = 0; i < g.items; i++) {
		if (!(slot = eq_room(&g.ring, g.stop)))
			return -1;
		pay_fill(slot, i, g.size);
		if (eq_put(&g.ring) < 0)
			return -1;
	}
	return 0;
}

static int ring_recv(uint64_t *errors)
{
	const char *slot;
	uint64_t i;

	for (i = 0; i < g.items; i++) {
		if ((i & 0xffff) == 0 && *g.stop)
			return -1;
		/* a sender that dies is seen through SIGCHLD (g_chld) */
		if (!(slot = eq_next(&g.ring, g.stop, &g_chld)))
			return -1;
		*errors += (uint64_t)pay_bad(slot, i, g.size);
		if (eq_done(&g.ring) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------ one peer */

static void peer_teardown(void)
{
	if (g.shf) {
		free(shf_del(g.shf));
		g.shf = NULL;
	}
	if (g.path[0])
		unlink(g.path); /* in case shf_del() could not */
	for (int k = 0; k < 2; k++)
		if (g.fds[k] >= 0) {
			close(g.fds[k]);
			g.fds[k] = -1;
		}
	if (g.ring.to_cons >= 0)
		close(g.ring.to_cons);
	if (g.ring.to_prod >= 0)
		close(g.ring.to_prod);
	g.ring.to_cons = g.ring.to_prod = -1;
	if (g.ring.r)
		munmap(g.ring.r, g.ring_map);
	g.ring.r = NULL;
}

static int peer_setup(int peer)
{
	switch (peer) {
	case QB_SHF_BATCH:
		return shf_setup(QB_NOLOCK_BATCH);
	case QB_SHF_1:
		return shf_setup(1);
	case QB_PIPE:
		return pipe(g.fds);
	case QB_SOCK:
		return socketpair(AF_UNIX, SOCK_STREAM, 0, g.fds);
	default:
		return ring_setup();
	}
}

static int peer_send(int peer)
{
	switch (peer) {
	case QB_SHF_BATCH:
	case QB_SHF_1:
		return shf_send();
	case QB_PIPE:
	case QB_SOCK:
		return fd_send();
	default:
		return ring_send();
	}
}

static int peer_recv(int peer, uint64_t *errors)
{
	switch (peer) {
	case QB_SHF_BATCH:
	case QB_SHF_1:
		return shf_recv(errors);
	case QB_PIPE:
	case QB_SOCK:
		return fd_recv(errors);
	default:
		return ring_recv(errors);
	}
}

/* The sender: ready on done_fd, then items when go_fd says so. */
static void sender_main(void *arg, unsigned p, int go_fd, int done_fd,
			pid_t parent)
{
	int peer = *(const int *)arg;
	char b = 'r';

	(void)p;
	bench_child_init(parent);
	signal(SIGHUP, SIG_DFL);
	if (g.fds[0] >= 0)
		close(g.fds[0]); /* the receiver's end */
	if (write(done_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 1)
		_exit(1);
	_exit(peer_send(peer) < 0 ? 1 : 0);
}

/* Start the sender and receive the items; 0, or -1 and *what. */
static int peer_go(int peer, struct qb_peer_res *pr, const char **what)
{
	double t0;
	char b;
	int rc;

	/* The sender is ready (or gone: then read() returns 0). */
	*what = "the sender failed to start";
	do
		rc = (int)read(g.kids.done, &b, 1);
	while (rc < 0 && errno == EINTR && !*g.stop);
	close(g.kids.done);
	g.kids.done = -1;
	if (rc != 1)
		return -1;
	t0 = items_now_s();
	rc = bench_kids_go(&g.kids, 'g') == 0 ? peer_recv(peer, &pr->errors) :
						-1;
	pr->secs = items_now_s() - t0;
	*what = "the sender failed";
	return rc;
}

static int peer_run(int peer, struct qb_peer_res *pr, const char **what)
{
	int rc;

	memset(pr, 0, sizeof(*pr));
	*what = "cannot set the peer up";
	if (peer_setup(peer) < 0)
		return -1;
	g_chld = 0;
	rc = bench_kids_fork(&g.kids, 1, sender_main, &peer, what);
	if (g.fds[1] >= 0) {
		close(g.fds[1]); /* the sender's end: EOF if it dies */
		g.fds[1] = -1;
	}
	if (rc < 0)
		return -1;
	rc = peer_go(peer, pr, what);
	bench_kids_close(&g.kids);
	if (rc < 0 || bench_kids_wait(&g.kids, NULL) < 0)
		return -1;
	pr->ran = 1;
	pr->items = g.items;
	peer_teardown();
	return 0;
}

/* ------------------------------------------------------ entry points */

void qb_abort(void)
{
	bench_kids_kill(&g.kids);
	peer_teardown();
}

int qb_run(const char *dir, const char *name, uint64_t items, unsigned size,
	   volatile sig_atomic_t *stop, FILE *live, struct qb_res *res,
	   const char **what)
{
	struct sigaction sa, old;
	uint64_t q = Q_BYTES / size;
	int peer, rc = 0;

	memset(res, 0, sizeof(*res));
	g.dir = dir;
	g.items = items;
	g.size = size;
	g.stop = stop;
	g.q_items = (uint32_t)(q > Q_ITEMS_MAX ? Q_ITEMS_MAX :
			       q < Q_ITEMS_MIN ? Q_ITEMS_MIN : q);
	snprintf(g.name, sizeof(g.name), "%s-queue", name);
	snprintf(g.path, sizeof(g.path), "%s/%s.shf", dir, g.name);
	res->items = items;
	res->size = size;
	res->q_items = g.q_items;
	res->ring_slots = RING_SLOTS;

	/* SIGCHLD (no SA_RESTART) wakes a receiver whose sender died. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, &old);
	fprintf(live, "QUEUE: %" PRIu64 " items of %u bytes from one process "
		      "to another\n", items, size);
	fflush(live);
	for (peer = 0; peer < QB_N; peer++) {
		struct qb_peer_res *pr = &res->peer[peer];

		if (*stop) {
			*what = NULL;
			rc = -1;
			break;
		}
		if (peer_run(peer, pr, what) < 0) {
			int e = errno;

			qb_abort();
			errno = e;
			rc = -1;
			break;
		}
		res->errors += pr->errors;
		fprintf(live, "QUEUE %-18s %12" PRIu64 " items %7.3f s "
			      "%8.3fM items/s  errors %" PRIu64 "\n",
			qb_label[peer], pr->items, pr->secs,
			pr->secs > 0 ? (double)pr->items / pr->secs / 1e6 : 0,
			pr->errors);
		fflush(live);
	}
	sigaction(SIGCHLD, &old, NULL);
	g.path[0] = 0;
	res->ran = rc == 0;
	return rc;
}

/* ------------------------------------------------------ output */

static double items_s(const struct qb_peer_res *pr)
{
	return pr->secs > 0 ? (double)pr->items / pr->secs : 0;
}

static double ratio(const struct qb_res *res, int shf, int peer)
{
	double p = items_s(&res->peer[peer]);

	return p > 0 ? items_s(&res->peer[shf]) / p : 0;
}

void qb_print_text(const struct qb_res *res, const char *dir)
{
	int peer;

	printf("\nqueue: %" PRIu64 " items of %u bytes from one process to "
	       "another; libshf: %u items in %s, ring: %u slots\n",
	       res->items, res->size, res->q_items, dir, res->ring_slots);
	printf("queue   %-18s %12s %7s %8s %8s\n", "peer", "items", "secs",
	       "items/s", "errors");
	for (peer = 0; peer < QB_N; peer++) {
		const struct qb_peer_res *pr = &res->peer[peer];

		printf("queue   %-18s %12" PRIu64 " %7.3f %7.3fM %8" PRIu64
		       "\n",
		       qb_label[peer], pr->items, pr->secs,
		       items_s(pr) / 1e6, pr->errors);
	}
	printf("ratio   %-12s  %11s %9s\n", "libshf/peer", "nolock 1000",
	       "nolock 1");
	for (peer = QB_PIPE; peer < QB_N; peer++)
		printf("ratio   %-12s  %10.2fx %8.2fx\n", qb_label[peer],
		       ratio(res, QB_SHF_BATCH, peer),
		       ratio(res, QB_SHF_1, peer));
	printf("queue   errors: %" PRIu64 "\n", res->errors);
}

void qb_print_json(const struct qb_res *res)
{
	int peer;

	printf("{\"items\":%" PRIu64 ",\"item_size\":%u,\"q_items\":%u,"
	       "\"ring_slots\":%u,\"errors\":%" PRIu64 ",\"peers\":[",
	       res->items, res->size, res->q_items, res->ring_slots,
	       res->errors);
	for (peer = 0; peer < QB_N; peer++) {
		const struct qb_peer_res *pr = &res->peer[peer];

		printf("%s{\"peer\":\"%s\",", peer ? "," : "", qb_key[peer]);
		if (peer == QB_SHF_BATCH || peer == QB_SHF_1)
			printf("\"nolock_max\":%u,",
			       peer == QB_SHF_1 ? 1 : QB_NOLOCK_BATCH);
		printf("\"items\":%" PRIu64 ",\"secs\":%.4f,"
		       "\"items_per_sec\":%.0f,\"errors\":%" PRIu64 "}",
		       pr->items, pr->secs, items_s(pr), pr->errors);
	}
	printf("],\"ratio\":{");
	for (peer = QB_PIPE; peer < QB_N; peer++)
		printf("%s\"%s\":%.3f", peer > QB_PIPE ? "," : "", qb_key[peer],
		       ratio(res, QB_SHF_BATCH, peer));
	printf("},\"ratio_nolock_1\":{");
	for (peer = QB_PIPE; peer < QB_N; peer++)
		printf("%s\"%s\":%.3f", peer > QB_PIPE ? "," : "", qb_key[peer],
		       ratio(res, QB_SHF_1, peer));
	printf("}}");
}
