// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-nearcache.c - the NEARCACHE phase of shf-bench(1).
 *
 * Redis: --redis ADDRESS, or a redis-server of our own on a unix socket
 * in a mkdtemp() directory (no persistence), stopped and removed at the
 * end.  The daemon: shf-nearcache beside this program (or $SHF_NEARCACHE,
 * or from PATH), one per table.  Keys "nc" + digits, --key-len bytes,
 * values --val-len bytes, --nc-keys of them SET in Redis first.
 *
 *  1. Hits: each of --procs forked workers opens a handle; the hot keys
 *     (up to 100000) are read once (fetched and stored), then every
 *     worker reads random hot keys for --nc-secs seconds through
 *     shf_nc_get(), then GETs random hot keys from Redis with hiredis for
 *     as long, on its own connection.  The latency of one read in 16 is
 *     timed (every GET is).
 *  2. Invalidation: one process reads a key through the near-cache (so
 *     that the table holds it), then another connection SETs it, and the
 *     process watches the table until the key is gone: the time from
 *     before the SET was sent to the removal, --nc-writes times.
 *  3. Zipf: a table of its own with a byte budget that holds 20% of the
 *     keys (records of key + 8-byte header + value + 6, rounded up to 4);
 *     the workers read Zipf-drawn keys (skew --zipf) through the
 *     near-cache, --nc-ops reads after as many unmeasured ones to warm the
 *     table; the hit ratio comes from the sidecar's counters.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shf.h"
#include "shf-nearcache.h"
#include "shf-bench-nearcache.h"

#define LAT_EVERY 16u          /* hits timed: one in 16 */
#define LAT_MAX (1u << 18)     /* samples kept per worker and run */
#define PROCS_MAX 64u
#define FILL_BATCH 1000u       /* SETs per pipeline when filling Redis */
#define WAIT_UP_MS 15000u
#define INV_TIMEOUT_NS 1000000000ULL

/* What the workers share with the parent. */
struct wstat {
	uint64_t ops, errors, not_found;
	uint64_t n;                /* samples */
	uint64_t lat[LAT_MAX];     /* ns */
};

struct shm {
	uint32_t go;    /* the run the parent started */
	uint32_t ready; /* workers at the line */
	uint32_t done;  /* workers done with the run */
	uint32_t stop;
	struct wstat w[];
};

static struct {
	char dir[200];        /* our redis-server's */
	char sock[220];
	char addr[NCB_ADDR_MAX];
	pid_t redis_pid;
	pid_t daemon_pid;
	pid_t kids[PROCS_MAX];
	unsigned nkids;
	char table[2][128];
	int ntables;
	const char *tdir;
	struct shm *shm;
	size_t shm_size;
	volatile sig_atomic_t *stop;
	const struct ncb_cfg *cfg;
	struct ncb_cfg cfg_copy;
} g;

/* Keys of the hot set, made once: a key's snprintf() costs more than a
 * local hit. */
static char *g_hot_keys;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Key i: "nc" and digits, klen bytes in all. */
static uint32_t key_of(char *buf, uint64_t i, unsigned klen)
{
	snprintf(buf, klen + 1, "nc%0*" PRIu64, (int)klen - 2, i);
	return (uint32_t)strlen(buf);
}

static void val_of(char *buf, uint64_t i, unsigned vlen, uint32_t w)
{
	unsigned k;

	for (k = 0; k < vlen; k++)
		buf[k] = (char)('a' + (i * 7 + k + w) % 26);
}

/* ----------------------------------------------------- processes */

static void kill_wait(pid_t *pid, int sig)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

static void side_path(char *buf, size_t size, const char *table)
{
	snprintf(buf, size, "%s/%s.shfnc", g.tdir, table);
}

static void table_remove(const char *table)
{
	char path[PATH_MAX + 160];
	SHF *shf;

	side_path(path, sizeof(path), table);
	unlink(path);
	shf = shf_attach_existing(g.tdir, table);
	if (shf)
		free(shf_del(shf));
}

void ncb_abort(void)
{
	char path[PATH_MAX];
	unsigned i;
	int t;

	for (i = 0; i < g.nkids; i++)
		kill_wait(&g.kids[i], SIGKILL);
	g.nkids = 0;
	kill_wait(&g.daemon_pid, SIGKILL);
	for (t = 0; t < g.ntables; t++)
		table_remove(g.table[t]);
	g.ntables = 0;
	if (g.redis_pid > 0) {
		kill_wait(&g.redis_pid, SIGTERM);
		unlink(g.sock);
		snprintf(path, sizeof(path), "%s/redis.log", g.dir);
		unlink(path);
		rmdir(g.dir);
	}
	if (g.shm) {
		munmap(g.shm, g.shm_size);
		g.shm = NULL;
	}
	free(g_hot_keys);
	g_hot_keys = NULL;
}

static int fail(const char **what, const char *msg)
{
	int e = errno ? errno : EIO;

	*what = msg;
	errno = e;
	return -1;
}

static redisContext *connect_redis(void)
{
	struct timeval tv = { 5, 0 };
	redisContext *c;

	if (!strncmp(g.addr, "unix:", 5)) {
		c = redisConnectUnixWithTimeout(g.addr + 5, tv);
	} else {
		char host[256];
		const char *colon = strrchr(g.addr, ':');
		size_t n = colon ? (size_t)(colon - g.addr) : 0;

		if (!colon || n >= sizeof(host)) {
			errno = EINVAL;
			return NULL;
		}
		memcpy(host, g.addr, n);
		host[n] = '\0';
		c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
	}
	if (c && c->err) {
		redisFree(c);
		errno = ECONNREFUSED;
		return NULL;
	}
	if (c)
		redisSetTimeout(c, tv);
	return c;
}

static int redis_start(void)
{
	char log[PATH_MAX];
	redisContext *c;
	uint64_t end;
	pid_t pid;

	const char *tmp = getenv("TMPDIR");

	/* A unix socket's path is short: a long TMPDIR will not do. */
	if (!tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(g.dir, sizeof(g.dir), "%s/shf-bench-redis-XXXXXX", tmp);
	if (!mkdtemp(g.dir))
		return -1;
	snprintf(g.sock, sizeof(g.sock), "%s/redis.sock", g.dir);
	snprintf(g.addr, sizeof(g.addr), "unix:%s", g.sock);
	snprintf(log, sizeof(log), "%s/redis.log", g.dir);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execlp("redis-server", "redis-server", "--port", "0",
		       "--unixsocket", g.sock, "--unixsocketperm", "700",
		       "--save", "", "--appendonly", "no", "--daemonize", "no",
		       "--dir", g.dir, "--logfile", log, (char *)NULL);
		_exit(127);
	}
	g.redis_pid = pid;
	end = now_ns() + 10000000000ULL;
	while (!(c = connect_redis())) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			g.redis_pid = 0;
			errno = ENOENT;
			return -1;
		}
		if (now_ns() > end || *g.stop) {
			errno = ETIMEDOUT;
			return -1;
		}
		msleep(10);
	}
	redisFree(c);
	return 0;
}

/* shf-nearcache: $SHF_NEARCACHE, beside this program, or from PATH. */
static const char *daemon_path(char *buf, size_t size)
{
	const char *env = getenv("SHF_NEARCACHE");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			/* A libtool build: the program lies in tools/.libs. */
			n = (ssize_t)strlen(self);
			if (n >= 6 && !strcmp(self + n - 6, "/.libs"))
				self[n - 6] = '\0';
			snprintf(buf, size, "%s/shf-nearcache", self);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	return "shf-nearcache";
}

static int daemon_start(const char *table, uint64_t budget)
{
	struct shf_nc_stats st;
	char path[PATH_MAX + 32], b[32];
	const char *prog = daemon_path(path, sizeof(path));
	uint64_t end;
	pid_t pid;

	snprintf(b, sizeof(b), "%" PRIu64, budget);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (budget)
			execlp(prog, "shf-nearcache", "-q", "-d", g.tdir,
			       "--redis", g.addr, "--budget", b, table,
			       (char *)NULL);
		else
			execlp(prog, "shf-nearcache", "-q", "-d", g.tdir,
			       "--redis", g.addr, table, (char *)NULL);
		_exit(127);
	}
	g.daemon_pid = pid;
	end = now_ns() + WAIT_UP_MS * 1000000ULL;
	for (;;) {
		if (shf_nc_stats(g.tdir, table, &st, sizeof(st)) ==
			    SHF_RET_OK &&
		    st.state == SHF_NC_UP && st.daemon_pid == pid)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			g.daemon_pid = 0;
			errno = ENOENT;
			return -1;
		}
		if (now_ns() > end || *g.stop) {
			errno = ETIMEDOUT;
			return -1;
		}
		msleep(5);
	}
}

static int daemon_stop(void)
{
	int st;

	if (g.daemon_pid <= 0)
		return 0;
	kill(g.daemon_pid, SIGTERM);
	if (waitpid(g.daemon_pid, &st, 0) != g.daemon_pid)
		st = -1;
	g.daemon_pid = 0;
	return st == 0 ? 0 : -1;
}

static SHF_NC *nc_open(const char *table)
{
	struct shf_nc_options o;

	memset(&o, 0, sizeof(o));
	o.redis = g.addr;
	return shf_nc_open(g.tdir, table, &o, sizeof(o));
}

/* Every key into Redis, FILL_BATCH per round trip. */
static int redis_fill(FILE *live)
{
	const struct ncb_cfg *cfg = g.cfg;
	char key[80], *val = malloc(cfg->vlen + 1);
	redisContext *c = connect_redis();
	redisReply *r;
	uint64_t i, j, n;

	if (!c || !val) {
		free(val);
		if (c)
			redisFree(c);
		return -1;
	}
	fprintf(live, "nearcache: SET %" PRIu64 " keys in Redis\n", cfg->keys);
	fflush(live);
	for (i = 0; i < cfg->keys && !*g.stop; i += n) {
		n = cfg->keys - i < FILL_BATCH ? cfg->keys - i : FILL_BATCH;
		for (j = 0; j < n; j++) {
			uint32_t kl = key_of(key, i + j, cfg->klen);

			val_of(val, i + j, cfg->vlen, 0);
			redisAppendCommand(c, "SET %b %b", key, (size_t)kl, val,
					   (size_t)cfg->vlen);
		}
		for (j = 0; j < n; j++) {
			if (redisGetReply(c, (void **)&r) != REDIS_OK || !r ||
			    r->type == REDIS_REPLY_ERROR) {
				if (r)
					freeReplyObject(r);
				redisFree(c);
				free(val);
				errno = EIO;
				return -1;
			}
			freeReplyObject(r);
		}
	}
	redisFree(c);
	free(val);
	return *g.stop ? -1 : 0;
}

/* ------------------------------------------------------------ workers */

/* A run a worker does between two lines of the parent. */
enum { RUN_WARM = 1, RUN_HIT, RUN_GET, RUN_ZWARM, RUN_ZIPF, RUN_END };

/* Zipf draws over [0, n) (Gray et al., "Quickly generating billion-record
 * synthetic databases"); rank 0 the most frequent. */
struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow;
};

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1.0 + pow(0.5, theta);
	uint64_t i;

	z->n = n;
	z->theta = theta;
	z->zetan = 0;
	for (i = 1; i <= n; i++)
		z->zetan += 1.0 / pow((double)i, theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) /
		 (1.0 - zeta2 / z->zetan);
	z->half_pow = 1.0 + pow(0.5, theta);
}

static uint64_t zipf_next(const struct zipf *z, uint64_t *seed)
{
	double u = (double)(xorshift(seed) >> 11) / 9007199254740992.0;
	double uz = u * z->zetan;
	uint64_t v;

	if (uz < 1.0)
		return 0;
	if (uz < z->half_pow)
		return 1;
	v = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return v < z->n ? v : z->n - 1;
}

static struct zipf g_zipf;

/* Wait for the parent to start run; 0, or -1 if told to stop. */
static int line(uint32_t run)
{
	__atomic_add_fetch(&g.shm->ready, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&g.shm->go, __ATOMIC_SEQ_CST) < run) {
		if (__atomic_load_n(&g.shm->stop, __ATOMIC_SEQ_CST))
			return -1;
		msleep(1);
	}
	return 0;
}

static void sample(struct wstat *w, uint64_t ns)
{
	if (w->n < LAT_MAX)
		w->lat[w->n++] = ns;
}


static const char *hot_key(uint64_t i)
{
	return g_hot_keys + i * (g.cfg->klen + 1);
}

/* The reads of a run, timed; into w.  Hot keys (zipf 0) for secs, or
 * count Zipf-drawn ones. */
static void nc_reads(SHF_NC *nc, struct wstat *w, uint64_t range,
		     uint64_t count, double secs, int zipf, uint64_t *seed)
{
	const struct ncb_cfg *cfg = g.cfg;
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9), i, k, t0 = 0;
	char buf[80];
	const char *v, *key;
	uint32_t kl = cfg->klen, len, r;

	for (i = 0; count ? i < count : 1; i++) {
		if ((i & 255) == 0 &&
		    ((!count && now_ns() >= end) ||
		     __atomic_load_n(&g.shm->stop, __ATOMIC_RELAXED)))
			break;
		if (zipf) {
			k = zipf_next(&g_zipf, seed);
			kl = key_of(buf, k, cfg->klen);
			key = buf;
		} else {
			key = hot_key(xorshift(seed) % range);
		}
		if (i % LAT_EVERY == 0)
			t0 = now_ns();
		r = shf_nc_get(nc, key, kl, &v, &len);
		if (i % LAT_EVERY == 0)
			sample(w, now_ns() - t0);
		if (r & SHF_RET_ERROR)
			w->errors++;
		else if (r != SHF_RET_KEY_FOUND || len != cfg->vlen)
			w->not_found++;
		w->ops++;
	}
}

static void redis_gets(redisContext *c, struct wstat *w, uint64_t range,
		       double secs, uint64_t *seed)
{
	const struct ncb_cfg *cfg = g.cfg;
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9), t0, i;
	const char *argv[2];
	size_t lens[2];
	redisReply *r;

	argv[0] = "GET";
	lens[0] = 3;
	lens[1] = cfg->klen;
	for (i = 0;; i++) {
		if ((i & 15) == 0 &&
		    (now_ns() >= end ||
		     __atomic_load_n(&g.shm->stop, __ATOMIC_RELAXED)))
			break;
		argv[1] = hot_key(xorshift(seed) % range);
		t0 = now_ns();
		r = redisCommandArgv(c, 2, argv, lens);
		sample(w, now_ns() - t0);
		if (!r) {
			w->errors++;
			break;
		}
		if (r->type != REDIS_REPLY_STRING || r->len != cfg->vlen)
			w->not_found++;
		freeReplyObject(r);
		w->ops++;
	}
}

/* RUN_WARM: worker idx reads its share of the hot keys once, through a
 * handle of its own, closed after: its counters reach the sidecar before
 * the hit run. */
static void warm_reads(unsigned idx, uint64_t hot, struct wstat *w)
{
	const struct ncb_cfg *cfg = g.cfg;
	SHF_NC *nc = nc_open(g.table[0]);
	const char *v;
	uint32_t len, kl;
	char key[80];
	uint64_t i;

	if (!nc)
		_exit(2);
	for (i = idx; i < hot; i += cfg->procs) {
		kl = key_of(key, i, cfg->klen);
		if (shf_nc_get(nc, key, kl, &v, &len) & SHF_RET_ERROR)
			w->errors++;
		w->ops++;
	}
	shf_nc_close(nc);
}

/*
 * Run run of worker idx, into w.  *nc, the hit run's handle, stays open
 * through the GET run.  Exits at RUN_END, or if it cannot open a handle
 * or connect.
 */
static void worker_run(uint32_t run, unsigned idx, uint64_t hot,
		       struct wstat *w, SHF_NC **nc, uint64_t *seed)
{
	const struct ncb_cfg *cfg = g.cfg;
	redisContext *c;

	switch (run) {
	case RUN_WARM: /* each its share of the hot keys */
		warm_reads(idx, hot, w);
		break;
	case RUN_HIT:
		*nc = nc_open(g.table[0]);
		if (!*nc)
			_exit(2);
		nc_reads(*nc, w, hot, 0, cfg->secs, 0, seed);
		break;
	case RUN_GET:
		c = connect_redis();
		if (!c)
			_exit(3);
		redis_gets(c, w, hot, cfg->secs, seed);
		redisFree(c);
		shf_nc_close(*nc);
		*nc = NULL;
		break;
	case RUN_ZWARM:
	case RUN_ZIPF:
		*nc = nc_open(g.table[1]);
		if (!*nc)
			_exit(4);
		nc_reads(*nc, w, 0, cfg->ops / cfg->procs, 0, 1, seed);
		shf_nc_close(*nc); /* its counters to the sidecar */
		*nc = NULL;
		break;
	default:
		_exit(0);
	}
}

/* Worker idx (a forked process): each run the parent starts, done, its
 * counts and latencies in its struct wstat, until RUN_END. */
static __attribute__((noreturn)) void worker(unsigned idx, uint64_t hot)
{
	struct wstat *w = (struct wstat *)((char *)g.shm->w +
					   idx * sizeof(struct wstat));
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (idx + 1);
	SHF_NC *nc = NULL;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	shf_init();
	for (;;) {
		uint32_t run;

		run = __atomic_load_n(&g.shm->go, __ATOMIC_SEQ_CST) + 1;

		if (line(run) < 0)
			_exit(1);
		memset(w, 0, offsetof(struct wstat, lat));
		worker_run(run, idx, hot, w, &nc, &seed);
		__atomic_add_fetch(&g.shm->done, 1, __ATOMIC_SEQ_CST);
	}
}

/* Start run on every worker and wait for them; its seconds. */
static double run_all(uint32_t run)
{
	uint64_t t0;
	unsigned i;

	/* All at the line (each added one), then go. */
	while (__atomic_load_n(&g.shm->ready, __ATOMIC_SEQ_CST) <
	       g.cfg->procs) {
		if (*g.stop)
			return -1;
		msleep(1);
	}
	__atomic_store_n(&g.shm->ready, 0, __ATOMIC_SEQ_CST);
	t0 = now_ns();
	__atomic_store_n(&g.shm->go, run, __ATOMIC_SEQ_CST);
	/* Each adds one when done. */
	while (__atomic_load_n(&g.shm->done, __ATOMIC_SEQ_CST) <
	       g.cfg->procs) {
		for (i = 0; i < g.nkids; i++) {
			int st;

			if (g.kids[i] > 0 &&
			    waitpid(g.kids[i], &st, WNOHANG) == g.kids[i]) {
				g.kids[i] = 0;
				errno = ECHILD;
				return -1;
			}
		}
		if (*g.stop) {
			__atomic_store_n(&g.shm->stop, 1, __ATOMIC_SEQ_CST);
			return -1;
		}
		msleep(1);
	}
	__atomic_store_n(&g.shm->done, 0, __ATOMIC_SEQ_CST);
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void lat_of(uint64_t *all, uint64_t n, struct ncb_lat *l)
{
	memset(l, 0, sizeof(*l));
	if (!n)
		return;
	qsort(all, n, sizeof(*all), cmp_u64);
	l->n = n;
	l->p50 = all[n / 2];
	l->p99 = all[n * 99 / 100];
	l->max = all[n - 1];
}

/* The workers' counts and latencies of the run just done. */
static uint64_t gather(struct ncb_lat *l, uint64_t *errors,
		       uint64_t *not_found)
{
	uint64_t *all = malloc(sizeof(uint64_t) * LAT_MAX * g.cfg->procs);
	uint64_t ops = 0, n = 0;
	unsigned i;

	for (i = 0; i < g.cfg->procs; i++) {
		struct wstat *w = (struct wstat *)((char *)g.shm->w +
						   i * sizeof(struct wstat));

		ops += w->ops;
		*errors += w->errors;
		if (not_found)
			*not_found += w->not_found;
		if (all) {
			memcpy(all + n, w->lat, w->n * sizeof(uint64_t));
			n += w->n;
		}
	}
	if (l && all)
		lat_of(all, n, l);
	free(all);
	return ops;
}

/* ---------------------------------------------------- invalidation */

/* What the invalidation run uses. */
struct inv {
	redisContext *c;  /* the writer */
	SHF_NC *nc;       /* the reader that fills the table */
	SHF *shf;         /* the table, watched */
	char key[80], *val;
	uint64_t *lat, nlat; /* ns from SET to removal */
};

/* Open what the run uses, for n SETs; 0, or -1 (inv_close() then). */
static int inv_open(struct inv *iv, uint64_t n)
{
	memset(iv, 0, sizeof(*iv));
	iv->val = malloc(g.cfg->vlen + 1);
	iv->c = connect_redis();
	iv->nc = nc_open(g.table[0]);
	iv->shf = shf_attach_existing(g.tdir, g.table[0]);
	iv->lat = malloc(sizeof(*iv->lat) * (n ? n : 1));
	if (!iv->c || !iv->nc || !iv->shf || !iv->val || !iv->lat)
		return -1;
	return 0;
}

/* Let go of what inv_open() got, all or part of it. */
static void inv_close(struct inv *iv)
{
	if (iv->c)
		redisFree(iv->c);
	shf_nc_close(iv->nc);
	if (iv->shf)
		shf_detach(iv->shf);
	free(iv->val);
	free(iv->lat);
}

/*
 * SET number i, of key k, timed until the key leaves the table: its
 * latency into iv->lat, or a timeout counted in res; -1 if the SET failed.
 */
static int inv_one(struct inv *iv, uint64_t i, uint64_t k, struct ncb_res *res)
{
	const struct ncb_cfg *cfg = g.cfg;
	uint32_t kl = key_of(iv->key, k, cfg->klen), len;
	uint64_t t0, t1;
	const char *v;
	redisReply *r;
	int tries;

	/* The table holds the key (a fill may race: try again). */
	for (tries = 0; tries < 10; tries++) {
		shf_nc_get(iv->nc, iv->key, kl, &v, &len);
		shf_make_hash(iv->key, kl);
		if (shf_get_key_val_copy(iv->shf) == SHF_RET_KEY_FOUND)
			break;
	}
	val_of(iv->val, k, cfg->vlen, (uint32_t)i + 1);
	t0 = now_ns();
	r = redisCommand(iv->c, "SET %b %b", iv->key, (size_t)kl, iv->val,
			 (size_t)cfg->vlen);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	for (;;) {
		shf_make_hash(iv->key, kl);
		if (shf_get_key_val_copy(iv->shf) != SHF_RET_KEY_FOUND) {
			t1 = now_ns();
			iv->lat[iv->nlat++] = t1 - t0;
			return 0;
		}
		if (now_ns() - t0 > INV_TIMEOUT_NS) {
			res->inv_timeouts++;
			return 0;
		}
		sched_yield();
	}
}

/* --nc-writes SETs, each timed until its key (of the first 1000 hot ones)
 * leaves the table; into res.  0, or -1 if what it needs failed. */
static int invalidation_run(struct ncb_res *res, uint64_t hot, FILE *live)
{
	uint64_t n = g.cfg->writes, i;
	uint64_t keys = hot < 1000 ? hot : 1000;
	struct inv iv;

	if (inv_open(&iv, n) < 0) {
		inv_close(&iv);
		return -1;
	}
	fprintf(live, "nearcache: %" PRIu64 " SETs, each timed until its key "
		      "leaves the table\n", n);
	fflush(live);
	for (i = 0; i < n && !*g.stop; i++) {
		if (inv_one(&iv, i, i % keys, res) < 0) {
			res->errors++;
			break;
		}
		if (live != stdout && (i + 1) % 20000 == 0) {
			fprintf(live, "nearcache: %" PRIu64 " SETs\n", i + 1);
			fflush(live);
		}
	}
	res->inv_writes = iv.nlat + res->inv_timeouts;
	lat_of(iv.lat, iv.nlat, &res->inv_lat);
	inv_close(&iv);
	return 0;
}

/* ------------------------------------------------------------- run */

static int workers_start(uint64_t hot)
{
	unsigned i;
	pid_t pid;

	fflush(NULL);
	for (i = 0; i < g.cfg->procs; i++) {
		pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0)
			worker(i, hot);
		g.kids[g.nkids++] = pid;
	}
	return 0;
}

/* The configuration (ops 0: keys) checked and kept, the results zeroed;
 * 0, or -1 after fail(). */
static int cfg_init(const struct ncb_cfg *cfg, volatile sig_atomic_t *stop,
		    struct ncb_res *res, const char **what)
{
	memset(res, 0, sizeof(*res));
	memset(&g, 0, sizeof(g));
	g.cfg_copy = *cfg;
	if (!g.cfg_copy.ops)
		g.cfg_copy.ops = cfg->keys;
	cfg = g.cfg = &g.cfg_copy;
	g.stop = stop;
	g.tdir = cfg->dir;
	res->cfg = *cfg;
	errno = 0;
	if (cfg->procs < 1 || cfg->procs > PROCS_MAX || cfg->klen < 8 ||
	    cfg->klen > 64 || !cfg->keys) {
		errno = EINVAL;
		return fail(what, "nearcache: 1 to 64 processes, keys of 8 to "
				  "64 bytes");
	}
	res->hot = cfg->keys < NCB_HOT_MAX ? cfg->keys : NCB_HOT_MAX;
	return 0;
}

/* Redis (--redis, or a redis-server of our own), the two tables named
 * and removed, every key SET; 0, or -1 after fail(). */
static int redis_init(FILE *live, struct ncb_res *res, const char **what)
{
	const struct ncb_cfg *cfg = g.cfg;
	int i;

	if (cfg->redis) {
		if (strlen(cfg->redis) >= sizeof(g.addr)) {
			errno = EINVAL;
			return fail(what, "nearcache: --redis: too long");
		}
		snprintf(g.addr, sizeof(g.addr), "%s", cfg->redis);
	} else {
		if (redis_start() < 0)
			return fail(what,
				    "nearcache: cannot start redis-server");
		res->own_redis = 1;
	}
	snprintf(res->redis, sizeof(res->redis), "%s", g.addr);
	for (i = 0; i < 2; i++) {
		snprintf(g.table[i], sizeof(g.table[i]), "%s-%s", cfg->name,
			 i ? "ncz" : "nc");
		table_remove(g.table[i]);
	}
	g.ntables = 2;
	if (redis_fill(live) < 0)
		return fail(what, "nearcache: filling Redis");
	return 0;
}

/* The shared memory, the daemon of the first table, the Zipf draws and
 * the hot keys, then the workers; 0, or -1 after fail(). */
static int workers_init(uint64_t hot, const char **what)
{
	const struct ncb_cfg *cfg = g.cfg;
	uint64_t i;

	g.shm_size = sizeof(struct shm) + sizeof(struct wstat) * cfg->procs;
	g.shm = mmap(NULL, g.shm_size, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g.shm == MAP_FAILED) {
		g.shm = NULL;
		return fail(what, "nearcache: mmap");
	}
	if (daemon_start(g.table[0], 0) < 0)
		return fail(what, "nearcache: the daemon did not come up");
	/* Before the fork: the workers use them. */
	zipf_init(&g_zipf, cfg->keys, cfg->zipf);
	g_hot_keys = malloc(hot * (cfg->klen + 1));
	if (!g_hot_keys)
		return fail(what, "nearcache: out of memory");
	for (i = 0; i < hot; i++)
		key_of(g_hot_keys + i * (cfg->klen + 1), i, cfg->klen);
	if (workers_start(hot) < 0)
		return fail(what, "nearcache: fork");
	return 0;
}

/* 1. The hot keys read once, then local hits against Redis GETs; 0, or
 * -1 after fail(). */
static int hits_vs_gets(FILE *live, struct ncb_res *res, const char **what)
{
	const struct ncb_cfg *cfg = g.cfg;
	struct shf_nc_stats st0, st1;
	uint64_t err = 0;

	fprintf(live, "nearcache: %u processes read %" PRIu64 " hot keys "
		      "once, then %.1f s each of local hits and of Redis "
		      "GETs\n", cfg->procs, res->hot, cfg->secs);
	fflush(live);
	if (run_all(RUN_WARM) < 0)
		return fail(what, "nearcache: a worker failed");
	gather(NULL, &res->errors, NULL);
	if (shf_nc_stats(g.tdir, g.table[0], &st0, sizeof(st0)) != SHF_RET_OK)
		return fail(what, "nearcache: shf_nc_stats");
	res->hit_secs = run_all(RUN_HIT);
	if (res->hit_secs < 0)
		return fail(what, "nearcache: a worker failed");
	res->hit_ops = gather(&res->hit_lat, &res->errors, &res->hit_not_local);
	res->get_secs = run_all(RUN_GET);
	if (res->get_secs < 0)
		return fail(what, "nearcache: a worker failed");
	res->get_ops = gather(&res->get_lat, &res->errors, &err);
	if (shf_nc_stats(g.tdir, g.table[0], &st1, sizeof(st1)) != SHF_RET_OK)
		return fail(what, "nearcache: shf_nc_stats");
	/* Reads of the hit run that were not served from the table. */
	res->hit_not_local += (st1.misses - st0.misses) +
			      (st1.bypassed - st0.bypassed);
	return 0;
}

/* 2. SET to removal, then the first table's daemon stopped and the table
 * removed; 0, or -1 after fail(). */
static int set_to_removal(FILE *live, struct ncb_res *res, const char **what)
{
	if (invalidation_run(res, res->hot, live) < 0)
		return fail(what, "nearcache: the invalidation run failed");
	if (daemon_stop() < 0)
		return fail(what, "nearcache: the daemon did not stop cleanly");
	table_remove(g.table[0]);
	return 0;
}

/* The Zipf table's keys and bytes now into res. */
static void zipf_table_stats(struct ncb_res *res)
{
	SHF *shf = shf_attach_existing(g.tdir, g.table[1]);
	struct shf_stats ts;

	memset(&ts, 0, sizeof(ts));
	if (shf) {
		shf_get_stats(shf, &ts, sizeof(ts));
		shf_detach(shf);
	}
	res->z_keys = ts.keys;
	res->z_bytes_cached = ts.bytes_cached;
}

/* 3. Zipf reads, with a budget that holds 20% of the keys; 0, or -1
 * after fail(). */
static int zipf_hit_ratio(FILE *live, struct ncb_res *res, const char **what)
{
	const struct ncb_cfg *cfg = g.cfg;
	struct shf_nc_stats st0, st1;
	uint64_t per_rec, budget;
	double secs;

	per_rec = ((uint64_t)cfg->klen + 8 + cfg->vlen + 6 + 3) / 4 * 4;
	budget = (cfg->keys + 4) / 5 * per_rec;
	res->z_budget = budget;
	fprintf(live, "nearcache: zipf %.2f over %" PRIu64 " keys, budget %"
		      PRIu64 " bytes: %" PRIu64 " reads to warm, %" PRIu64
		      " measured\n", cfg->zipf, cfg->keys, budget, cfg->ops,
		cfg->ops);
	fflush(live);
	if (daemon_start(g.table[1], budget) < 0)
		return fail(what, "nearcache: the daemon did not come up");
	if (run_all(RUN_ZWARM) < 0)
		return fail(what, "nearcache: a worker failed");
	gather(NULL, &res->errors, NULL);
	if (shf_nc_stats(g.tdir, g.table[1], &st0, sizeof(st0)) != SHF_RET_OK)
		return fail(what, "nearcache: shf_nc_stats");
	secs = run_all(RUN_ZIPF);
	if (secs < 0)
		return fail(what, "nearcache: a worker failed");
	res->z_secs = secs;
	res->z_ops = gather(NULL, &res->errors, NULL);
	/* The warm run's counters reached the sidecar every 64 reads; the
	 * measured run's all of them (the handles were closed). */
	if (shf_nc_stats(g.tdir, g.table[1], &st1, sizeof(st1)) != SHF_RET_OK)
		return fail(what, "nearcache: shf_nc_stats");
	res->z_hits = st1.hits - st0.hits;
	res->z_misses = st1.misses - st0.misses;
	res->z_bypassed = st1.bypassed - st0.bypassed;
	res->z_fills = st1.fills - st0.fills;
	res->z_races = st1.fill_races - st0.fill_races;
	res->errors += st1.errors;
	zipf_table_stats(res);
	return 0;
}

/* The workers told to end and reaped, the daemon stopped, the tables,
 * Redis and memory let go; 0, or -1 after fail(). */
static int teardown(const char **what)
{
	unsigned i;

	run_all(RUN_END);
	for (i = 0; i < g.nkids; i++)
		if (g.kids[i] > 0) {
			waitpid(g.kids[i], NULL, 0);
			g.kids[i] = 0;
		}
	g.nkids = 0;
	if (daemon_stop() < 0)
		return fail(what, "nearcache: the daemon did not stop cleanly");
	ncb_abort(); /* tables, Redis, memory */
	return 0;
}

/* The phase, step by step (see shf-bench-nearcache.h); what a failed
 * step leaves, ncb_abort() cleans up (die() calls it). */
int ncb_run(const struct ncb_cfg *cfg, volatile sig_atomic_t *stop,
	    FILE *live, struct ncb_res *res, const char **what)
{
	if (cfg_init(cfg, stop, res, what) < 0 ||
	    redis_init(live, res, what) < 0 || workers_init(res->hot, what) < 0)
		return -1;
	if (hits_vs_gets(live, res, what) < 0 ||
	    set_to_removal(live, res, what) < 0 ||
	    zipf_hit_ratio(live, res, what) < 0 || teardown(what) < 0)
		return -1;
	res->ran = 1;
	return 0;
}

/* ---------------------------------------------------------- output */

static double per_s(uint64_t ops, double secs)
{
	return secs > 0 ? (double)ops / secs : 0;
}

static double ratio_of(const struct ncb_res *r)
{
	double g2 = per_s(r->get_ops, r->get_secs);

	return g2 > 0 ? per_s(r->hit_ops, r->hit_secs) / g2 : 0;
}

static double hit_ratio(const struct ncb_res *r)
{
	uint64_t all = r->z_hits + r->z_misses + r->z_bypassed;

	return all ? (double)r->z_hits / (double)all : 0;
}

void ncb_print_text(const struct ncb_res *r)
{
	const struct ncb_cfg *c = &r->cfg;

	printf("\nnearcache: %u processes, Redis %s%s, %" PRIu64
	       " keys of %u bytes, values of %u bytes\n",
	       c->procs, r->redis, r->own_redis ? " (started here)" : "",
	       c->keys, c->klen, c->vlen);
	printf("nearcache %-16s %11s %7s %10s %9s %9s %9s\n", "run", "reads",
	       "secs", "reads/s", "p50 us", "p99 us", "max us");
	printf("nearcache %-16s %11" PRIu64 " %7.3f %9.3fM %9.3f %9.3f %9.1f\n",
	       "local hit", r->hit_ops, r->hit_secs,
	       per_s(r->hit_ops, r->hit_secs) / 1e6,
	       (double)r->hit_lat.p50 / 1e3, (double)r->hit_lat.p99 / 1e3,
	       (double)r->hit_lat.max / 1e3);
	printf("nearcache %-16s %11" PRIu64 " %7.3f %9.3fM %9.3f %9.3f %9.1f\n",
	       "Redis GET", r->get_ops, r->get_secs,
	       per_s(r->get_ops, r->get_secs) / 1e6,
	       (double)r->get_lat.p50 / 1e3, (double)r->get_lat.p99 / 1e3,
	       (double)r->get_lat.max / 1e3);
	printf("ratio     local hit / Redis GET: %.1fx (goal >= 50x); "
	       "%" PRIu64 " hot keys, %" PRIu64 " reads not local\n",
	       ratio_of(r), r->hot, r->hit_not_local);
	printf("nearcache SET -> removed: %" PRIu64 " writes, p50 %.1f us, "
	       "p99 %.1f us, max %.1f us, timeouts %" PRIu64
	       " (goal p99 < 2 ms)\n",
	       r->inv_writes, (double)r->inv_lat.p50 / 1e3,
	       (double)r->inv_lat.p99 / 1e3, (double)r->inv_lat.max / 1e3,
	       r->inv_timeouts);
	printf("nearcache zipf %.2f: %" PRIu64 " reads in %.3f s (%.3fM/s), "
	       "hit ratio %.3f (hits %" PRIu64 ", misses %" PRIu64
	       ", bypassed %" PRIu64 ")\n",
	       c->zipf, r->z_ops, r->z_secs, per_s(r->z_ops, r->z_secs) / 1e6,
	       hit_ratio(r), r->z_hits, r->z_misses, r->z_bypassed);
	printf("nearcache zipf table: budget %" PRIu64 " bytes (20%% of the "
	       "keys), %" PRIu64 " keys, bytes_cached %" PRIu64 ", fills %"
	       PRIu64 ", fill races %" PRIu64 "\n",
	       r->z_budget, r->z_keys, r->z_bytes_cached, r->z_fills,
	       r->z_races);
	printf("nearcache errors: %" PRIu64 "\n", r->errors);
}

static void lat_json(const char *name, const struct ncb_lat *l)
{
	printf("\"%s\":{\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
	       ",\"max\":%" PRIu64 ",\"samples\":%" PRIu64 "}",
	       name, l->p50, l->p99, l->max, l->n);
}

void ncb_print_json(const struct ncb_res *r)
{
	const char *s;

	printf("{\"procs\":%u,\"keys\":%" PRIu64 ",\"own_redis\":%s,"
	       "\"redis\":\"",
	       r->cfg.procs, r->cfg.keys, r->own_redis ? "true" : "false");
	for (s = r->redis; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	printf("\",\"hit\":{\"reads\":%" PRIu64 ",\"secs\":%.4f,"
	       "\"per_sec\":%.0f,\"hot_keys\":%" PRIu64 ",\"not_local\":%"
	       PRIu64 ",",
	       r->hit_ops, r->hit_secs, per_s(r->hit_ops, r->hit_secs), r->hot,
	       r->hit_not_local);
	lat_json("lat_ns", &r->hit_lat);
	printf("},\"redis_get\":{\"reads\":%" PRIu64 ",\"secs\":%.4f,"
	       "\"per_sec\":%.0f,",
	       r->get_ops, r->get_secs, per_s(r->get_ops, r->get_secs));
	lat_json("lat_ns", &r->get_lat);
	printf("},\"hit_vs_get\":%.2f,\"invalidation\":{\"writes\":%" PRIu64
	       ",\"timeouts\":%" PRIu64 ",",
	       ratio_of(r), r->inv_writes, r->inv_timeouts);
	lat_json("lat_ns", &r->inv_lat);
	printf("},\"zipf\":{\"theta\":%.3f,\"reads\":%" PRIu64
	       ",\"secs\":%.4f,\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
	       ",\"bypassed\":%" PRIu64 ",\"hit_ratio\":%.4f,\"budget\":%"
	       PRIu64 ",\"keys_cached\":%" PRIu64 ",\"bytes_cached\":%" PRIu64
	       ",\"fills\":%" PRIu64 ",\"fill_races\":%" PRIu64
	       "},\"errors\":%" PRIu64 "}",
	       r->cfg.zipf, r->z_ops, r->z_secs, r->z_hits, r->z_misses,
	       r->z_bypassed, hit_ratio(r), r->z_budget, r->z_keys,
	       r->z_bytes_cached, r->z_fills, r->z_races, r->errors);
}
