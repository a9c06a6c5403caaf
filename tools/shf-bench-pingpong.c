// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-pingpong.c - the PINGPONG phase of shf-bench(1).
 *
 * Ping-pong, SharedHashFile's queue example and the workload of libshf's
 * queue issue: q_items items of size bytes made with shf_q_new(shf, 3,
 * q_items, size, nolock), all first pushed onto queue "a2b"; process A
 * loops on shf_q_push_head_pull_tail(a2b, item, b2a), process B on
 * shf_q_push_head_pull_tail(b2a, item, a2b); each writes its next
 * sequence number into the item it pushes on and checks the one it pulls
 * (a lost, doubled or reordered item is an error), and calls shf_q_flush()
 * when it pulled nothing, until each side has moved moves items.  The
 * same game through two pipes (as many items going round as a pipe holds)
 * and through two eventfd rings (q_items going round, copied: a ring
 * holds copies, not the items) is the baseline.  Bare rings are the
 * ceiling: the same items, passed by index through two single-producer,
 * single-consumer rings with the libshf run's batches (nolock indexes
 * at a time), inline, with no lock, no check of who holds an item and
 * nothing a crash could be recovered from: what the game costs any
 * zero-copy queue on this machine.
 *
 * Fan-out and fan-in: one producer to PP_FAN consumers and PP_FAN
 * producers to one consumer, through queues "free" and "work"; consumers
 * check each producer's order; moves items in all.  With more processes
 * than cores, whoever finds a queue empty yields the CPU.
 *
 * Every role runs in a child of its own; the parent sets up, starts them
 * together and waits.  The time of a run is its slowest child's, from the
 * start to its last item.  Where the kernel lends hardware counters
 * (perf_event_open(2); not in most virtual machines), cache misses and
 * locked instructions (Intel's MEM_INST_RETIRED.LOCK_LOADS) of all the
 * run's processes are counted too, a moved item each.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shf.h"
#include "shf-bench-child.h"
#include "shf-bench-items.h"
#include "shf-bench-pingpong.h"

enum { Q_FREE, Q_A2B, Q_B2A };   /* ping-pong's queues */
enum { F_FREE, F_WORK };         /* the fans' */
#define END_MARK UINT64_MAX      /* fan-out: a consumer stops */
#define PROCS_MAX (PP_FAN + 1)

static const char *const pp_label[PP_N] = {
	"libshf queues", "pipe", "eventfd ring", "bare rings",
	"libshf 1 -> 4", "libshf 4 -> 1"
};
static const char *const pp_opt[PP_N] = {
	"libshf", "pipe", "ring", "bare", "fan-out", "fan-in"
};
static const char *const pp_key[PP_N] = {
	"libshf", "pipe", "eventfd_ring", "bare_rings", "libshf_fan_out",
	"libshf_fan_in"
};

/*
 * Bare rings: ring k's entries [tail, head) mod q_items are item indexes;
 * each end on a line of its own, written by one side only.
 */
struct bare_ends {
	uint64_t head __attribute__((aligned(64))); /* the pusher's */
	uint64_t tail __attribute__((aligned(64))); /* the puller's */
};

struct bare {
	void *map;
	size_t len;
	struct bare_ends *ends;   /* [2]: a2b, b2a */
	uint32_t *e[2];           /* q_items entries each */
	char *items;              /* q_items of size bytes */
};

/* What each child reports, in shared memory. */
/*
 * A child's counts, written by it on every item: a cache line each, or
 * the children's counts would share lines that bounce between their
 * cores on every item (a cost of the benchmark, not of what it measures).
 */
struct pp_proc {
	uint64_t moved;
	uint64_t errors;
	double secs;
} __attribute__((aligned(64)));

static struct {
	struct pp_cfg c;
	volatile sig_atomic_t *stop;
	int run;
	char path[PATH_MAX];
	SHF *shf;                  /* the parent's (the creator's) handle */
	int a2b[2], b2a[2];        /* pipes */
	uint32_t pipe_items;       /* items a pipe holds */
	struct eq_view ring[2];    /* a2b, b2a */
	void *ring_map;
	size_t ring_len;
	struct bare bare;          /* bare rings */
	struct pp_proc *proc;      /* [PROCS_MAX], shared */
	struct bench_kids kids;
	int pmc[2];                /* cache misses, locked instructions */
} g = { .a2b = { -1, -1 }, .b2a = { -1, -1 }, .pmc = { -1, -1 },
	.kids = { .done = -1 } };

/* ------------------------------------------------------ counters */

static int pmc_open(uint32_t type, uint64_t config)
{
	struct perf_event_attr a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = type;
	a.config = config;
	a.inherit = 1; /* the children forked after this count too */
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

static int cpu_is_intel(void)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");
	int intel = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "vendor_id", 9)) {
			intel = strstr(line, "GenuineIntel") != NULL;
			break;
		}
	fclose(f);
	return intel;
}

/* Before the fork: counters that the children inherit (-1: none). */
static void pmc_start(void)
{
	g.pmc[0] = pmc_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES);
	/* MEM_INST_RETIRED.LOCK_LOADS: event 0xd0, umask 0x21 */
	g.pmc[1] = cpu_is_intel() ? pmc_open(PERF_TYPE_RAW, 0x21d0) : -1;
}

/* After the children are reaped: their counts, an item each (-1: none). */
static void pmc_end(struct pp_run_res *r)
{
	double *out[2] = { &r->misses_item, &r->locked_item };
	uint64_t v;

	for (int k = 0; k < 2; k++) {
		*out[k] = -1;
		if (g.pmc[k] >= 0 && r->items &&
		    read(g.pmc[k], &v, sizeof(v)) == (ssize_t)sizeof(v))
			*out[k] = (double)v / (double)r->items;
		if (g.pmc[k] >= 0)
			close(g.pmc[k]);
		g.pmc[k] = -1;
	}
}

/* ------------------------------------------------------ libshf */

/* A table with a queue set: every item on queue 0 (named name0). */
static int shf_setup(uint32_t qs, const char *const *names)
{
	g.shf = shf_attach(g.c.dir, g.c.name, 0);
	if (!g.shf)
		return -1;
	if (!shf_q_new(g.shf, qs, g.c.q_items, g.c.size, g.c.nolock))
		return -1;
	for (uint32_t q = 0; q < qs; q++)
		if (shf_q_new_name(g.shf, names[q], (uint32_t)strlen(names[q]))
		    != q)
			return -1;
	return 0;
}

/* Ping-pong: every item from "free" onto "a2b", numbered 0, 1, ... */
static int pp_shf_setup(void)
{
	static const char *const names[] = { "free", "a2b", "b2a" };
	uint32_t qiid;
	uint64_t seq = 0;

	if (shf_setup(3, names) < 0)
		return -1;
	while ((qiid = shf_q_pull_tail(g.shf, Q_FREE)) != SHF_QIID_NONE) {
		memset(shf_qiid_addr, 0, g.c.size); /* no page fault timed */
		memcpy(shf_qiid_addr, &seq, 8);
		seq++;
		shf_q_push_head(g.shf, Q_A2B, qiid);
	}
	shf_q_flush(g.shf, SHF_QID_NONE);
	return seq == g.c.q_items ? 0 : -1;
}

static SHF *kid_attach(void)
{
	SHF *s = shf_attach_existing(g.c.dir, g.c.name);

	if (s && !shf_q_get(s)) {
		shf_detach(s);
		s = NULL;
	}
	return s;
}

/* Side me (0: A, 1: B) of the ping-pong; -1 if a call failed. */
static int pp_shf_side(unsigned me, struct pp_proc *out)
{
	uint32_t push = me ? Q_B2A : Q_A2B, pull = me ? Q_A2B : Q_B2A;
	uint64_t next_in = 0, next_out = me ? 0 : g.c.q_items, *w;
	uint32_t qiid = SHF_QIID_NONE;
	SHF *s = kid_attach();

	if (!s)
		return -1;
	while (out->moved < g.c.moves) {
		qiid = shf_q_push_head_pull_tail(s, push, qiid, pull);
		if (qiid == SHF_QIID_NONE) {
			if (errno != EAGAIN)
				return -1;
			shf_q_flush(s, pull);
			continue;
		}
		w = (uint64_t *)shf_qiid_addr;
		out->errors += *w != next_in++;
		*w = next_out++;
		out->moved++;
	}
	shf_q_push_head(s, push, qiid);
	shf_q_flush(s, SHF_QID_NONE);
	shf_detach(s);
	return 0;
}

/* Fans: every item on "free". */
static int fan_setup(void)
{
	static const char *const names[] = { "free", "work" };
	uint32_t qiid;

	if (shf_setup(2, names) < 0)
		return -1;
	/* Touch every item once, so that no page fault is timed. */
	while ((qiid = shf_q_pull_tail(g.shf, F_FREE)) != SHF_QIID_NONE) {
		memset(shf_qiid_addr, 0, g.c.size);
		shf_q_push_head(g.shf, F_WORK, qiid);
	}
	shf_q_flush(g.shf, SHF_QID_NONE);
	while ((qiid = shf_q_pull_tail(g.shf, F_WORK)) != SHF_QIID_NONE)
		shf_q_push_head(g.shf, F_FREE, qiid);
	shf_q_flush(g.shf, SHF_QID_NONE);
	return 0;
}

/* Producer id of a fan: items n, numbered 0, 1, ...; then marks. */
static int fan_produce(uint64_t id, uint64_t n, unsigned marks,
		       struct pp_proc *out)
{
	uint32_t qiid = SHF_QIID_NONE;
	uint64_t sent = 0, *w;
	SHF *s = kid_attach();

	if (!s)
		return -1;
	while (sent < n + marks) {
		qiid = shf_q_push_head_pull_tail(s, F_WORK, qiid, F_FREE);
		if (qiid == SHF_QIID_NONE) {
			if (errno != EAGAIN)
				return -1;
			shf_q_flush(s, F_FREE);
			sched_yield();
			continue;
		}
		w = (uint64_t *)shf_qiid_addr;
		w[0] = sent < n ? sent : END_MARK;
		w[1] = id;
		sent++;
	}
	shf_q_push_head(s, F_WORK, qiid);
	shf_q_flush(s, SHF_QID_NONE);
	out->moved = n;
	shf_detach(s);
	return 0;
}

/*
 * A consumer of a fan: until an end mark (until is 0) or until items.
 * Each producer's items come in order: exactly (one consumer) or rising.
 */
static int fan_consume(uint64_t until, unsigned producers, int exact,
		       struct pp_proc *out)
{
	uint64_t next[PROCS_MAX] = { 0 }, *w;
	uint32_t qiid = SHF_QIID_NONE;
	SHF *s = kid_attach();

	if (!s)
		return -1;
	while (!until || out->moved < until) {
		qiid = shf_q_push_head_pull_tail(s, F_FREE, qiid, F_WORK);
		if (qiid == SHF_QIID_NONE) {
			if (errno != EAGAIN)
				return -1;
			shf_q_flush(s, F_WORK);
			sched_yield();
			continue;
		}
		w = (uint64_t *)shf_qiid_addr;
		if (!until && w[0] == END_MARK)
			break;
		if (w[1] >= producers || (exact ? w[0] != next[w[1]] :
						  w[0] < next[w[1]]))
			out->errors++;
		else
			next[w[1]] = w[0] + 1;
		out->moved++;
	}
	shf_q_push_head(s, F_FREE, qiid); /* the mark, or the last item */
	shf_q_flush(s, SHF_QID_NONE); /* marks pulled along go back too */
	shf_detach(s);
	return 0;
}

/* ------------------------------------------------------ pipes */

static int pipe_setup(void)
{
	uint64_t seq;
	char *item;
	int sz;

	if (pipe(g.a2b) < 0 || pipe(g.b2a) < 0)
		return -1;
	sz = fcntl(g.a2b[1], F_GETPIPE_SZ);
	g.pipe_items = sz > 0 ? (uint32_t)sz / g.c.size : 1;
	if (!g.pipe_items)
		g.pipe_items = 1;
	if (g.pipe_items > g.c.q_items)
		g.pipe_items = g.c.q_items;
	item = calloc(1, g.c.size);
	if (!item)
		return -1;
	/* What goes round: as many items as a pipe holds (a write of
	 * more would wait for the other side, which waits for it). */
	for (seq = 0; seq < g.pipe_items; seq++) {
		memcpy(item, &seq, 8);
		if (write(g.a2b[1], item, g.c.size) != (ssize_t)g.c.size) {
			free(item);
			return -1;
		}
	}
	free(item);
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int pp_pipe_side(unsigned me, struct pp_proc *out)
{
	int in = me ? g.a2b[0] : g.b2a[0], to = me ? g.b2a[1] : g.a2b[1];
	size_t cap = (size_t)g.pipe_items * g.c.size, have = 0, k, i;
	uint64_t next_in = 0, next_out = me ? 0 : g.pipe_items, seq;
	char *buf = malloc(cap), *obuf = calloc(1, cap);

	if (!buf || !obuf)
		return -1;
	/* the other side's ends: EOF (or EPIPE) when it is gone */
	close(me ? g.a2b[1] : g.b2a[1]);
	close(me ? g.b2a[0] : g.a2b[0]);
	while (out->moved < g.c.moves) {
		size_t want = (size_t)(g.c.moves - out->moved) * g.c.size;
		ssize_t n = read(in, buf + have,
				 (want < cap ? want : cap) - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!n)
				errno = ECHILD;
			return -1;
		}
		have += (size_t)n;
		k = have / g.c.size;
		for (i = 0; i < k; i++) {
			/* the item goes on with the next number */
			memcpy(&seq, buf + i * g.c.size, 8);
			out->errors += seq != next_in++;
			memcpy(obuf + i * g.c.size, buf + i * g.c.size,
			       g.c.size);
			memcpy(obuf + i * g.c.size, &next_out, 8);
			next_out++;
		}
		if (k && write_all(to, obuf, k * g.c.size) < 0)
			return -1;
		out->moved += k;
		memmove(buf, buf + k * g.c.size, have - k * g.c.size);
		have -= k * g.c.size;
	}
	free(buf);
	free(obuf);
	return 0;
}

/* ------------------------------------------------------ eventfd rings */

static int ring_setup(void)
{
	uint32_t slots = 1;
	size_t one;
	char *p;

	while (slots < g.c.q_items) /* room for all: a put never waits */
		slots <<= 1;
	one = sizeof(struct eq_ring) + (size_t)slots * g.c.size;
	g.ring_len = 2 * one;
	g.ring_map = mmap(NULL, g.ring_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g.ring_map == MAP_FAILED) {
		g.ring_map = NULL;
		return -1;
	}
	p = g.ring_map;
	memset(p, 0, g.ring_len); /* fault it in */
	for (int k = 0; k < 2; k++) {
		struct eq_view *v = &g.ring[k];

		v->r = (struct eq_ring *)(p + k * one);
		v->slots = (char *)(v->r + 1);
		v->mask = slots - 1;
		v->size = g.c.size;
		v->to_cons = eventfd(0, EFD_CLOEXEC);
		v->to_prod = eventfd(0, EFD_CLOEXEC);
		if (v->to_cons < 0 || v->to_prod < 0)
			return -1;
	}
	for (uint64_t seq = 0; seq < g.c.q_items; seq++) {
		char *slot = eq_room(&g.ring[0], g.stop);

		if (!slot)
			return -1;
		memcpy(slot, &seq, 8);
		eq_put(&g.ring[0]);
	}
	return 0;
}

static int pp_ring_side(unsigned me, struct pp_proc *out)
{
	struct eq_view *in = &g.ring[me ? 0 : 1], *to = &g.ring[me ? 1 : 0];
	uint64_t next_in = 0, next_out = me ? 0 : g.c.q_items, seq;
	const char *from;
	char *slot;

	while (out->moved < g.c.moves) {
		if (!(from = eq_next(in, g.stop, NULL)) ||
		    !(slot = eq_room(to, g.stop)))
			return -1;
		memcpy(&seq, from, 8);
		out->errors += seq != next_in++;
		memcpy(slot, from, g.c.size); /* a ring holds copies */
		memcpy(slot, &next_out, 8);
		next_out++;
		if (eq_done(in) < 0 || eq_put(to) < 0)
			return -1;
		out->moved++;
	}
	return 0;
}

/* ------------------------------------------------------ bare rings */

static int bare_setup(void)
{
	size_t ends = 2 * sizeof(struct bare_ends),
	       ents = ((size_t)g.c.q_items * 4 + 63) & ~(size_t)63;
	char *p;

	g.bare.len = ends + 2 * ents + (size_t)g.c.q_items * g.c.size;
	p = mmap(NULL, g.bare.len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	memset(p, 0, g.bare.len); /* no page fault timed */
	g.bare.map = p;
	g.bare.ends = (struct bare_ends *)p;
	g.bare.e[0] = (uint32_t *)(p + ends);
	g.bare.e[1] = (uint32_t *)(p + ends + ents);
	g.bare.items = p + ends + 2 * ents;
	/* every item on a2b, numbered 0, 1, ... */
	for (uint32_t x = 0; x < g.c.q_items; x++) {
		uint64_t seq = x;

		memcpy(g.bare.items + (size_t)x * g.c.size, &seq, 8);
		g.bare.e[0][x] = x;
	}
	g.bare.ends[0].head = g.c.q_items;
	return 0;
}

/* Append v[0 .. *n) to ring k, with one store of its head. */
static void bare_push(unsigned k, const uint32_t *v, uint32_t *n)
{
	struct bare_ends *r = &g.bare.ends[k];
	uint64_t head = r->head;
	uint32_t at = (uint32_t)(head % g.c.q_items);

	for (uint32_t i = 0; i < *n; i++) {
		g.bare.e[k][at] = v[i];
		if (++at == g.c.q_items)
			at = 0;
	}
	__atomic_store_n(&r->head, head + *n, __ATOMIC_RELEASE);
	*n = 0;
}

/* Take up to max entries of ring k into v, with one store of its tail. */
static uint32_t bare_pull(unsigned k, uint32_t *v, uint32_t max)
{
	struct bare_ends *r = &g.bare.ends[k];
	uint64_t tail = r->tail, head = __atomic_load_n(&r->head,
							__ATOMIC_ACQUIRE);
	uint32_t n = head - tail < max ? (uint32_t)(head - tail) : max,
		 at = (uint32_t)(tail % g.c.q_items);

	for (uint32_t i = 0; i < n; i++) {
		v[i] = g.bare.e[k][at];
		if (++at == g.c.q_items)
			at = 0;
	}
	__atomic_store_n(&r->tail, tail + n, __ATOMIC_RELEASE);
	return n;
}

/* The libshf side's loop, every call inlined and no check but the item's. */
static int pp_bare_side(unsigned me, struct pp_proc *out)
{
	unsigned in = me ? 0 : 1, to = me ? 1 : 0;
	uint32_t nolock = g.c.nolock, pi = 0, pn = 0, qn = 0, x, spins = 0;
	uint32_t *pull = malloc(sizeof(*pull) * nolock),
		 *push = malloc(sizeof(*push) * nolock);
	uint64_t next_in = 0, next_out = me ? 0 : g.c.q_items, *w;

	if (!pull || !push)
		return -1;
	while (out->moved < g.c.moves) {
		if (pi == pn) {
			if (qn)
				bare_push(to, push, &qn);
			pn = bare_pull(in, pull, nolock);
			pi = 0;
			if (!pn) {
				if (*g.stop)
					return -1;
				if (++spins % 64 == 0) /* one core: let go */
					sched_yield();
				continue;
			}
		}
		x = pull[pi++];
		if (x >= g.c.q_items)
			return -1;
		w = (uint64_t *)(g.bare.items + (size_t)x * g.c.size);
		out->errors += *w != next_in++;
		*w = next_out++;
		push[qn++] = x;
		if (qn == nolock)
			bare_push(to, push, &qn);
		out->moved++;
	}
	if (qn)
		bare_push(to, push, &qn);
	free(pull);
	free(push);
	return 0;
}

/* ------------------------------------------------------ one run */

static unsigned run_procs(int run)
{
	return run == PP_FAN_OUT || run == PP_FAN_IN ? PP_FAN + 1 : 2;
}

static int role(unsigned p, struct pp_proc *out)
{
	uint64_t share = g.c.moves / PP_FAN;

	switch (g.run) {
	case PP_SHF:
		return pp_shf_side(p, out);
	case PP_PIPE:
		return pp_pipe_side(p, out);
	case PP_RING:
		return pp_ring_side(p, out);
	case PP_BARE:
		return pp_bare_side(p, out);
	case PP_FAN_OUT:
		return p == 0 ? fan_produce(0, g.c.moves, PP_FAN, out) :
				fan_consume(0, 1, 0, out);
	default: /* PP_FAN_IN: the last producer takes the remainder */
		if (p < PP_FAN)
			return fan_produce(p, p + 1 < PP_FAN ? share :
					   g.c.moves - share * (PP_FAN - 1),
					   0, out);
		return fan_consume(g.c.moves, PP_FAN, 1, out);
	}
}

static void kid_main(void *arg, unsigned p, int go_fd, int done_fd,
		     pid_t parent)
{
	struct pp_proc *out = &g.proc[p];
	char b = 'r';
	double t0;
	int rc;

	(void)arg;
	bench_child_init(parent);
	signal(SIGHUP, SIG_DFL);
	if (write(done_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 1)
		_exit(1);
	t0 = items_now_s();
	rc = role(p, out);
	out->secs = items_now_s() - t0;
	_exit(rc < 0 ? 1 : 0);
}

/* Reap the run's children as they end; the first to fail stops all. */
static int reap_all(void)
{
	unsigned left = g.kids.n;
	int st;

	while (left) {
		pid_t pid = waitpid(-1, &st, 0);
		unsigned i;

		if (pid < 0) {
			if (errno == EINTR && !*g.stop)
				continue;
			return -1;
		}
		for (i = 0; i < g.kids.n && g.kids.pid[i] != pid; i++)
			;
		if (i == g.kids.n)
			continue; /* not one of ours */
		g.kids.pid[i] = 0;
		left--;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			bench_kids_kill(&g.kids);
			errno = ECHILD;
			return -1;
		}
	}
	return 0;
}

static void run_teardown(void)
{
	int *fds[4] = { &g.a2b[0], &g.a2b[1], &g.b2a[0], &g.b2a[1] };

	if (g.shf) {
		free(shf_del(g.shf));
		g.shf = NULL;
	}
	if (g.path[0])
		unlink(g.path); /* in case shf_del() could not */
	for (int k = 0; k < 4; k++)
		if (*fds[k] >= 0) {
			close(*fds[k]);
			*fds[k] = -1;
		}
	for (int k = 0; k < 2; k++) {
		if (g.ring[k].to_cons >= 0)
			close(g.ring[k].to_cons);
		if (g.ring[k].to_prod >= 0)
			close(g.ring[k].to_prod);
		g.ring[k].to_cons = g.ring[k].to_prod = -1;
	}
	if (g.ring_map)
		munmap(g.ring_map, g.ring_len);
	g.ring_map = NULL;
	if (g.bare.map)
		munmap(g.bare.map, g.bare.len);
	g.bare.map = NULL;
	for (int k = 0; k < 2; k++)
		if (g.pmc[k] >= 0) {
			close(g.pmc[k]);
			g.pmc[k] = -1;
		}
}

static int run_setup(int run)
{
	switch (run) {
	case PP_SHF:
		return pp_shf_setup();
	case PP_PIPE:
		return pipe_setup();
	case PP_RING:
		return ring_setup();
	case PP_BARE:
		return bare_setup();
	default:
		return fan_setup();
	}
}

static int run_one(int run, struct pp_run_res *r, const char **what)
{
	unsigned n = run_procs(run), p;
	char b;

	memset(r, 0, sizeof(*r));
	memset(g.proc, 0, sizeof(*g.proc) * PROCS_MAX);
	g.run = run;
	*what = "cannot set the run up";
	if (run_setup(run) < 0)
		return -1;
	r->in_flight = run == PP_PIPE ? g.pipe_items : g.c.q_items;
	pmc_start();
	if (bench_kids_fork(&g.kids, n, kid_main, NULL, what) < 0)
		return -1;
	/* Everyone ready (or gone: then read() returns 0)? */
	*what = "a process failed to start";
	for (p = 0; p < n; p++) {
		ssize_t rc;

		do
			rc = read(g.kids.done, &b, 1);
		while (rc < 0 && errno == EINTR && !*g.stop);
		if (rc != 1)
			return -1;
	}
	*what = "a process failed";
	if (bench_kids_go(&g.kids, 'g') < 0)
		return -1;
	bench_kids_close(&g.kids);
	if (reap_all() < 0)
		return -1;
	for (p = 0; p < n; p++) {
		/* ping-pong: both sides move; fans: the consumers count */
		if (run < PP_FAN_OUT || (run == PP_FAN_OUT ? p > 0 : p == PP_FAN))
			r->items += g.proc[p].moved;
		r->errors += g.proc[p].errors;
		if (g.proc[p].secs > r->secs)
			r->secs = g.proc[p].secs;
	}
	/* Fan-out: the consumers must have had every item between them. */
	if (run == PP_FAN_OUT && r->items != g.c.moves)
		r->errors += r->items > g.c.moves ? r->items - g.c.moves :
						    g.c.moves - r->items;
	pmc_end(r);
	r->ran = 1;
	run_teardown();
	return 0;
}

/* ------------------------------------------------------ entry points */

void pp_abort(void)
{
	bench_kids_kill(&g.kids);
	run_teardown();
}

static double items_s(const struct pp_run_res *r)
{
	return r->secs > 0 ? (double)r->items / r->secs : 0;
}

int pp_run(const struct pp_cfg *cfg, volatile sig_atomic_t *stop,
	   FILE *live, struct pp_res *res, const char **what)
{
	static char name[96];
	int run, rc = 0;

	memset(res, 0, sizeof(*res));
	g.c = *cfg;
	g.stop = stop;
	snprintf(name, sizeof(name), "%s-pingpong", cfg->name);
	g.c.name = name;
	snprintf(g.path, sizeof(g.path), "%s/%s.shf", cfg->dir, name);
	res->moves = cfg->moves;
	res->q_items = cfg->q_items;
	res->size = cfg->size;
	res->nolock = cfg->nolock;
	g.proc = mmap(NULL, sizeof(*g.proc) * PROCS_MAX,
		      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	if (g.proc == MAP_FAILED) {
		g.proc = NULL;
		*what = "mmap";
		return -1;
	}
	fprintf(live, "PINGPONG: %u items of %u bytes going round between two "
		      "processes, %" PRIu64 " moves a side\n",
		cfg->q_items, cfg->size, cfg->moves);
	fflush(live);
	for (run = 0; run < PP_N; run++) {
		struct pp_run_res *r = &res->run[run];

		if (*stop) {
			*what = NULL;
			rc = -1;
			break;
		}
		if (!(cfg->runs & (1u << run)))
			continue;
		if (run_one(run, r, what) < 0) {
			int e = errno;

			pp_abort();
			errno = e;
			rc = -1;
			break;
		}
		res->errors += r->errors;
		fprintf(live, "PINGPONG %-16s %12" PRIu64 " items %7.3f s "
			      "%8.3fM items/s  errors %" PRIu64 "\n",
			pp_label[run], r->items, r->secs, items_s(r) / 1e6,
			r->errors);
		fflush(live);
	}
	munmap(g.proc, sizeof(*g.proc) * PROCS_MAX);
	g.proc = NULL;
	g.path[0] = 0;
	res->ran = rc == 0;
	return rc;
}

unsigned pp_runs_parse(const char *list)
{
	unsigned mask = 0;
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		int run;

		for (run = 0; run < PP_N; run++)
			if (strlen(pp_opt[run]) == n && !strncmp(p, pp_opt[run], n))
				break;
		if (run == PP_N)
			return 0;
		mask |= 1u << run;
		p += n + (p[n] == ',');
	}
	return mask;
}

/* ------------------------------------------------------ output */

static void counter(char *buf, size_t n, double v)
{
	if (v < 0)
		snprintf(buf, n, "n/a");
	else
		snprintf(buf, n, "%.3f", v);
}

void pp_print_text(const struct pp_res *res, const char *dir)
{
	const struct pp_run_res *shf = &res->run[PP_SHF];
	char cm[32], lk[32];
	int run;

	printf("\npingpong: %u items of %u bytes going round between two "
	       "processes, %" PRIu64 " moves a side;\n"
	       "pingpong: libshf: shf_q_new(shf, 3, %u, %u, %u) in %s; "
	       "fans: %u processes, %" PRIu64 " items\n",
	       res->q_items, res->size, res->moves, res->q_items, res->size,
	       res->nolock, dir, PP_FAN + 1, res->moves);
	printf("pingpong %-16s %12s %7s %9s %9s %10s %8s\n", "run", "items",
	       "secs", "items/s", "in flight", "misses/it", "lock/it");
	for (run = 0; run < PP_N; run++) {
		const struct pp_run_res *r = &res->run[run];

		if (!r->ran)
			continue;
		counter(cm, sizeof(cm), r->misses_item);
		counter(lk, sizeof(lk), r->locked_item);
		printf("pingpong %-16s %12" PRIu64 " %7.3f %8.3fM %9u %10s %8s"
		       "\n", pp_label[run], r->items, r->secs,
		       items_s(r) / 1e6, r->in_flight, cm, lk);
	}
	for (run = PP_PIPE; run <= PP_BARE; run++)
		if (shf->ran && res->run[run].ran)
			printf("ratio    libshf/%-12s %9.2fx\n",
			       pp_label[run],
			       items_s(&res->run[run]) > 0 ?
				       items_s(shf) / items_s(&res->run[run]) :
				       0);
	printf("pingpong errors: %" PRIu64 "\n", res->errors);
}

static void json_counter(const char *key, double v)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.4f", key, v);
}

void pp_print_json(const struct pp_res *res)
{
	int run, first;

	printf("{\"moves_per_side\":%" PRIu64 ",\"q_items\":%u,\"item_size\""
	       ":%u,\"nolock_max\":%u,\"fan\":%u,\"errors\":%" PRIu64
	       ",\"runs\":[",
	       res->moves, res->q_items, res->size, res->nolock, PP_FAN,
	       res->errors);
	for (run = 0, first = 1; run < PP_N; run++) {
		const struct pp_run_res *r = &res->run[run];

		if (!r->ran)
			continue;
		printf("%s{\"run\":\"%s\",\"items\":%" PRIu64 ",\"secs\":%.4f,"
		       "\"items_per_sec\":%.0f,\"in_flight\":%u,\"errors\":%"
		       PRIu64, first ? "" : ",", pp_key[run], r->items, r->secs,
		       items_s(r), r->in_flight, r->errors);
		json_counter("cache_misses_per_item", r->misses_item);
		json_counter("locked_per_item", r->locked_item);
		printf("}");
		first = 0;
	}
	printf("],\"ratio\":{");
	for (run = PP_PIPE, first = 1; run <= PP_BARE; run++) {
		if (!res->run[PP_SHF].ran || !res->run[run].ran)
			continue;
		printf("%s\"%s\":%.3f", first ? "" : ",", pp_key[run],
		       items_s(&res->run[run]) > 0 ?
			       items_s(&res->run[PP_SHF]) /
				       items_s(&res->run[run]) :
			       0);
		first = 0;
	}
	printf("}}");
}
