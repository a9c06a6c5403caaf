// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-demo.c - shf demo: worker processes share one table and a ring of
 * queues, live, and the parent explains what happened.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf-tool.h"

#define DEMO_MAX_PROCS 64
#define DEMO_KEYS 50000u
#define DEMO_ITEM_SIZE 64u
#define DEMO_ITEMS_PER_PROC 16u

struct demo_item {
	uint64_t hops;  /* times the item moved from one worker to the next */
	int32_t last;   /* worker that moved it last */
	char note[DEMO_ITEM_SIZE - 12];
};

struct demo_worker {
	_Atomic uint64_t ops, gets, hits, foreign, puts, dels, moves;
	_Atomic int32_t pid;
	_Atomic int32_t failed;
	char pad[8];
};

struct demo_shared {
	_Atomic int stop;
	struct demo_worker w[DEMO_MAX_PROCS];
};

static volatile sig_atomic_t demo_interrupted;

static void demo_on_signal(int sig)
{
	(void)sig;
	demo_interrupted = 1;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------- workers */

struct demo_counts {
	uint64_t ops, gets, hits, foreign, puts, dels, moves;
};

/* What one worker process works with. */
struct demo_self {
	SHF *shf;
	char *items;
	uint32_t me, next, held;
	uint64_t rnd;
	struct demo_counts c;
};

/* The counters for the parent to read (mo: relaxed while running). */
static void demo_publish(struct demo_worker *w, const struct demo_counts *c,
			 memory_order mo)
{
	atomic_store_explicit(&w->ops, c->ops, mo);
	atomic_store_explicit(&w->gets, c->gets, mo);
	atomic_store_explicit(&w->hits, c->hits, mo);
	atomic_store_explicit(&w->foreign, c->foreign, mo);
	atomic_store_explicit(&w->puts, c->puts, mo);
	atomic_store_explicit(&w->dels, c->dels, mo);
	atomic_store_explicit(&w->moves, c->moves, mo);
}

/* Attach, start with the others and leave a greeting; 0 or -1. */
static int demo_hello(struct demo_self *s, SHF *inherited, const char *name,
		      uint32_t procs, struct demo_worker *w)
{
	char key[32], val[64];
	int len;

	atomic_store(&w->pid, (int32_t)getpid());
	/* Attach by name, as an unrelated process would. */
	s->shf = shf_attach_existing(cli_dir, name);
	s->items = s->shf ? shf_q_get(s->shf) : NULL;
	/* All start together; the parent is a horse too. */
	shf_race_start(inherited, "start", 5, procs + 1);
	if (!s->shf || !s->items) {
		atomic_store(&w->failed, errno ? errno : EIO);
		return -1;
	}
	len = snprintf(val, sizeof(val), "worker %u (pid %ld) says hello",
		       s->me + 1, (long)getpid());
	shf_make_hash(key, (uint32_t)snprintf(key, sizeof(key),
					       "hello/worker-%u", s->me + 1));
	if (shf_put_key_val(s->shf, val, (uint32_t)len) & SHF_RET_ERROR) {
		atomic_store(&w->failed, errno);
		return -1;
	}
	return 0;
}

/* A get (60%), put (30%) or delete (10%) of a random key; 0, or -1 with
 * errno if a put failed. */
static int demo_op(struct demo_self *s)
{
	struct demo_counts *c = &s->c;
	uint64_t r = xorshift(&s->rnd);
	uint32_t k = (uint32_t)(r >> 32) % DEMO_KEYS, op = (r >> 8) % 10;
	char key[32], val[64];
	uint32_t klen = (uint32_t)snprintf(key, sizeof(key), "key-%05u", k);
	int len;

	shf_make_hash(key, klen);
	if (op < 6) {
		c->gets++;
		if (shf_get_key_val_copy(s->shf) & SHF_RET_KEY_FOUND) {
			c->hits++;
			/* values start with the writer's number */
			if (shf_val_len >= 4 &&
			    (uint32_t)atoi(shf_val + 1) != s->me + 1)
				c->foreign++;
		}
	} else if (op < 9) {
		len = snprintf(val, sizeof(val), "w%u put this at op %llu",
			       s->me + 1, (unsigned long long)c->ops);
		if (shf_put_key_val(s->shf, val, (uint32_t)len) & SHF_RET_ERROR)
			return -1;
		c->puts++;
	} else {
		shf_del_key_val(s->shf);
		c->dels++;
	}
	c->ops++;
	return 0;
}

/* Pass the item held on to the next worker and take one of ours. */
static void demo_pass(struct demo_self *s)
{
	uint32_t got = shf_q_push_head_pull_tail(s->shf, s->next, s->held,
						 s->me);

	if (s->held != SHF_QIID_NONE)
		s->c.moves++;
	s->held = got;
	if (got != SHF_QIID_NONE) {
		struct demo_item *it = (struct demo_item *)
			(s->items + (uint64_t)got * DEMO_ITEM_SIZE);

		it->hops++;
		it->last = (int32_t)s->me;
	}
}

/* One worker process: random gets, puts and deletes, and the queue ring. */
static int demo_worker(SHF *inherited, const char *name, uint32_t me,
		       uint32_t procs, struct demo_shared *sh)
{
	struct demo_worker *w = &sh->w[me];
	struct demo_self s = {
		.me = me,
		.next = (me + 1) % procs,
		.held = SHF_QIID_NONE,
		.rnd = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)getpid() << 17),
	};

	if (demo_hello(&s, inherited, name, procs, w) < 0)
		return 1;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		if (demo_op(&s) < 0) {
			atomic_store(&w->failed, errno);
			return 1;
		}
		/* Every 8th operation, pass an item on along the ring. */
		if (!(s.c.ops & 7))
			demo_pass(&s);
		if (!(s.c.ops & 1023))
			demo_publish(w, &s.c, memory_order_relaxed);
	}
	if (s.held != SHF_QIID_NONE) {
		shf_q_push_head(s.shf, s.next, s.held);
		s.c.moves++;
	}
	shf_q_flush(s.shf, SHF_QID_NONE);
	demo_publish(w, &s.c, memory_order_seq_cst);
	shf_detach(s.shf);
	return 0;
}

/* -------------------------------------------------------------- parent */

static void human(char *buf, size_t size, double v)
{
	if (v >= 1e9)
		snprintf(buf, size, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, size, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, size, "%.0fk", v / 1e3);
	else
		snprintf(buf, size, "%.0f", v);
}

static void mib(char *buf, size_t size, uint64_t b)
{
	snprintf(buf, size, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

/* What the parent works with. */
struct demo {
	uint32_t procs, q_items;
	double secs, t0;
	struct demo_shared *sh;
	SHF *shf;
	char *items;
	const char *mon;
	int owned, failed;
	char name[64], path[PATH_MAX + 80];
	pid_t kids[DEMO_MAX_PROCS];
};

/* -1 to go on, else the exit status (--help, usage errors). */
static int demo_parse(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = {
		{ "procs", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "p:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			errno = 0;
			d->procs = (uint32_t)strtoul(optarg, &end, 10);
			if (errno || *end || d->procs < 1 ||
			    d->procs > DEMO_MAX_PROCS)
				return usage_err("-p wants 1 to %d processes",
						 DEMO_MAX_PROCS);
			break;
		case 's':
			errno = 0;
			d->secs = strtod(optarg, &end);
			if (errno || *end || !(d->secs > 0 && d->secs <= 3600))
				return usage_err("-s wants 0 to 3600 seconds");
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	return -1;
}

/* The table, owned (removed by the monitor if we die) where it can be,
 * with a queue per worker; 0, or the exit status. */
static int demo_table(struct demo *d)
{
	char qname[32];
	uint32_t i;

	snprintf(d->name, sizeof(d->name), "demo-%ld", (long)getpid());
	snprintf(d->path, sizeof(d->path), "%s/%s.shf", cli_dir, d->name);
	d->shf = shf_attach(cli_dir, d->name, 1);
	if (!d->shf) {
		int e = errno;

		if (access(cli_dir, W_OK) == 0) {
			/* Most likely no monitor: go on without the safety net. */
			fprintf(stderr,
				"shf: demo: cannot start %s (%s); the table "
				"will not be removed if the demo is killed\n",
				d->mon, strerror(e));
			d->owned = 0;
			d->shf = shf_attach(cli_dir, d->name, 0);
		}
		if (!d->shf) {
			table_err(d->name, errno);
			return EXIT_ERR;
		}
	}
	d->q_items = d->procs * DEMO_ITEMS_PER_PROC;
	d->items = shf_q_new(d->shf, d->procs, d->q_items, DEMO_ITEM_SIZE, 1);
	if (!d->items) {
		say("%s: cannot make the queues: %s", d->name, strerror(errno));
		free(shf_del(d->shf));
		return EXIT_ERR;
	}
	for (i = 0; i < d->procs; i++) {
		snprintf(qname, sizeof(qname), "worker-%u", i + 1);
		shf_q_new_name(d->shf, qname, (uint32_t)strlen(qname));
	}
	shf_race_init(d->shf, "start", 5);
	return 0;
}

static void demo_intro(const struct demo *d)
{
	uint32_t procs = d->procs;

	printf("shf demo: %u worker process%s share%s one hash table and %u "
	       "queue%s.\n"
	       "  table  %s (%s)\n"
	       "  work   each worker gets (60%%), puts (30%%) and deletes "
	       "(10%%) random keys\n"
	       "         among %u names, and every 8th operation passes a "
	       "queue item on\n"
	       "         to the next worker (1 -> 2 -> ... -> %u -> 1) "
	       "without copying it.\n\n",
	       procs, procs == 1 ? "" : "es", procs == 1 ? "s" : "", procs,
	       procs == 1 ? "" : "s", d->path,
	       d->owned ? "removed at the end, or by shf-monitor if the demo "
			  "is killed" :
			  "removed at the end",
	       DEMO_KEYS, procs);
	fflush(stdout);
}

/* Fork the workers; on a failure, those forked are told to stop. */
static void demo_fork(struct demo *d)
{
	pid_t parent = getpid();
	uint32_t i;

	for (i = 0; i < d->procs; i++) {
		d->kids[i] = fork();
		if (d->kids[i] < 0) {
			say("fork: %s", strerror(errno));
			atomic_store(&d->sh->stop, 1);
			d->procs = i;
			d->failed = 1;
			break;
		}
		if (d->kids[i] == 0) {
			signal(SIGINT, SIG_IGN); /* the parent stops us */
			/* ... or its death does: no worker outlives it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(demo_worker(d->shf, d->name, i, d->procs, d->sh));
		}
	}
}

/* Sleep until the next line is due (each second) or the time is up. */
static void demo_sleep(const struct demo *d, double now, double tprev)
{
	double left = d->secs - (now - d->t0), step = 1.0 - (now - tprev);
	struct timespec ts;

	if (step > left)
		step = left;
	if (step > 0) {
		ts.tv_sec = (time_t)step;
		ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
}

/* One live line: the rates over the last dt seconds. */
static void demo_line(struct demo *d, double now, double dt,
		      uint64_t *prev_ops, uint64_t *prev_moves)
{
	uint64_t tot = 0, mv = 0;
	struct shf_stats st;
	char line[1024], a[32], b[32];
	size_t off = 0;
	uint32_t i;

	for (i = 0; i < d->procs; i++) {
		uint64_t o = atomic_load(&d->sh->w[i].ops);

		if (atomic_load(&d->sh->w[i].failed))
			d->failed = 1;
		tot += o - prev_ops[i];
		if (d->procs <= 8) {
			human(a, sizeof(a), (double)(o - prev_ops[i]) / dt);
			off += (size_t)snprintf(line + off, sizeof(line) - off,
						"%7s", a);
		}
		prev_ops[i] = o;
		mv += atomic_load(&d->sh->w[i].moves);
	}
	if (d->procs > 8)
		snprintf(line, sizeof(line), "%20s", "(too many to show)");
	shf_get_stats(d->shf, &st, sizeof(st));
	human(a, sizeof(a), (double)tot / dt);
	mib(b, sizeof(b), st.bytes_file);
	printf("  %3.0fs  %s  %9s  %8" PRIu64 "  %10s  ", now - d->t0, line, a,
	       st.keys, b);
	human(a, sizeof(a), (double)(mv - *prev_moves) / dt);
	printf("%s\n", a);
	fflush(stdout);
	*prev_moves = mv;
}

/* A line a second until the time is up, a worker fails or a signal. */
static void demo_live(struct demo *d)
{
	uint64_t prev_ops[DEMO_MAX_PROCS] = { 0 }, prev_moves = 0;
	double tprev = d->t0, now, dt;

	printf("  time  %-*s  %9s  %8s  %10s  %s\n",
	       d->procs <= 8 ? (int)d->procs * 7 : 20, "ops/s per worker",
	       "total", "keys", "table", "queue moves/s");
	while (!d->failed && !demo_interrupted) {
		now = shf_get_time_in_seconds();
		if (now - d->t0 >= d->secs)
			break;
		demo_sleep(d, now, tprev);
		now = shf_get_time_in_seconds();
		dt = now - tprev;
		if (dt < 0.5 && now - d->t0 < d->secs)
			continue;
		tprev = now;
		demo_line(d, now, dt, prev_ops, &prev_moves);
	}
}

/* Stop and reap the workers; what they did, in c; the seconds they ran. */
static double demo_reap(struct demo *d, struct demo_counts *c)
{
	double elapsed;
	uint32_t i;

	atomic_store(&d->sh->stop, 1);
	for (i = 0; i < d->procs; i++) {
		int ws;

		while (waitpid(d->kids[i], &ws, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(ws) || WEXITSTATUS(ws))
			d->failed = 1;
	}
	elapsed = shf_get_time_in_seconds() - d->t0;
	memset(c, 0, sizeof(*c));
	for (i = 0; i < d->procs; i++) {
		struct demo_worker *w = &d->sh->w[i];

		if (atomic_load(&w->failed))
			fprintf(stderr, "shf: demo: worker %u failed: %s\n",
				i + 1, strerror(atomic_load(&w->failed)));
		c->ops += atomic_load(&w->ops);
		c->gets += atomic_load(&w->gets);
		c->hits += atomic_load(&w->hits);
		c->foreign += atomic_load(&w->foreign);
		c->puts += atomic_load(&w->puts);
		c->dels += atomic_load(&w->dels);
		c->moves += atomic_load(&w->moves);
	}
	return elapsed;
}

/* What happened, from the counters, the table and the queues. */
static void demo_report(const struct demo *d, const struct demo_counts *c,
			double elapsed, uint64_t back, uint64_t hops)
{
	uint32_t procs = d->procs;
	struct shf_stats st;
	char a[32], b[32];

	shf_get_stats(d->shf, &st, sizeof(st));
	printf("\nWhat happened%s:\n",
	       demo_interrupted ? " (interrupted)" : "");
	human(a, sizeof(a), (double)c->ops / elapsed);
	printf("  %u process%s shared one table for %.1f s: %" PRIu64
	       " operations, %s ops/s together\n"
	       "  (%" PRIu64 " gets, %" PRIu64 " puts, %" PRIu64
	       " deletes), with no server process in between.\n",
	       procs, procs == 1 ? "" : "es", elapsed, c->ops, a, c->gets,
	       c->puts, c->dels);
	if (c->hits)
		printf("  %" PRIu64 " gets found their key; %.0f%% of those "
		       "values had been written by another\n"
		       "  process: each process sees the others' writes at "
		       "once, in shared memory.\n",
		       c->hits, 100.0 * (double)c->foreign / (double)c->hits);
	mib(b, sizeof(b), st.bytes_file);
	printf("  The table ends with %" PRIu64 " keys in a %s file.\n",
	       st.keys, b);
	printf("  Queue items moved %" PRIu64 " times from one process to "
	       "the next, passed by index, never\n"
	       "  copied; %" PRIu64 " of %u items are back on the queues "
	       "and their hop counters add\n"
	       "  up to %" PRIu64 " (%s).\n",
	       c->moves, back, d->q_items, hops,
	       back == d->q_items && hops == c->moves ? "none lost" :
							 "MISMATCH");
}

/* The workers' greetings, read back; then the table goes. */
static void demo_goodbye(const struct demo *d)
{
	char a[32], *msg;
	uint32_t i;

	printf("  Each worker left a greeting in the table; the parent "
	       "reads them back:\n");
	for (i = 0; i < d->procs; i++) {
		uint32_t kl = (uint32_t)snprintf(a, sizeof(a),
						 "hello/worker-%u", i + 1);

		shf_make_hash(a, kl);
		if (shf_get_key_val_copy(d->shf) & SHF_RET_KEY_FOUND)
			printf("    %-16s %.*s\n", a, (int)shf_val_len,
			       shf_val);
		else
			printf("    %-16s (missing)\n", a);
	}
	msg = shf_del(d->shf);
	printf("  %s%s.\n", msg ? msg : "removing the table failed: ",
	       msg ? "" : errno_name_or(errno));
	if (d->owned)
		printf("  Had the demo been killed, shf-monitor would have "
		       "removed it just the same.\n");
	free(msg);
}

static int do_demo(int argc, char **argv)
{
	struct demo d = { .procs = 4, .secs = 5, .owned = 1 };
	struct demo_counts c;
	uint64_t hops = 0, back = 0;
	struct sigaction sa;
	double elapsed;
	uint32_t i;
	int rc, from_beside;

	rc = demo_parse(argc, argv, &d);
	if (rc >= 0)
		return rc;
	/* From a build tree, the library must use the monitor built beside. */
	d.mon = monitor_path(&from_beside);
	if (from_beside) {
		setenv("SHF_MONITOR", d.mon, 1);
		free((char *)d.mon);
		d.mon = getenv("SHF_MONITOR");
	}
	d.sh = mmap(NULL, sizeof(*d.sh), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d.sh == MAP_FAILED) {
		say("mmap: %s", strerror(errno));
		return EXIT_ERR;
	}
	rc = demo_table(&d);
	if (rc)
		return rc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = demo_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	demo_intro(&d);
	demo_fork(&d);
	if (!d.failed)
		shf_race_start(d.shf, "start", 5, d.procs + 1);
	d.t0 = shf_get_time_in_seconds();
	demo_live(&d);
	elapsed = demo_reap(&d, &c);
	/* Every item must be back on some queue, with its hops counted. */
	for (i = 0; i < d.q_items; i++)
		hops += ((struct demo_item *)(d.items + (uint64_t)i *
					      DEMO_ITEM_SIZE))->hops;
	for (i = 0; i < d.procs; i++)
		while (shf_q_pull_tail(d.shf, i) != SHF_QIID_NONE)
			back++;
	demo_report(&d, &c, elapsed, back, hops);
	demo_goodbye(&d);
	munmap(d.sh, sizeof(*d.sh));
	if (d.failed || back != d.q_items || hops != c.moves) {
		say("something went wrong (see above)");
		return EXIT_ERR;
	}
	return demo_interrupted ? EXIT_NOTFOUND : 0;
}

const struct shf_cmd shf_cmd_demo = {
	.name = "demo",
	.cmd = do_demo,
	.help = "  demo [-p PROCS] [-s SECS]  processes sharing a table, live\n",
};
