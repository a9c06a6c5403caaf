// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench.c - throughput and latency of one table shared by N processes,
 * optionally beside the same workload on LMDB (--vs lmdb).
 *
 * The parent creates the table and forks the workers; each worker attaches
 * on its own (as an unrelated process would), owns the index range
 * [p*n/P, (p+1)*n/P) and runs the phases when the parent says so through
 * its pipe.  Counters and latency histograms live in a shared anonymous
 * mapping that the parent reads every second and merges at the end.
 * The CACHE phase has a table of its own, with a byte budget: the workers
 * draw Zipf-distributed keys from the whole range and get-or-lease them,
 * computing and putting what is missing.  It runs after the table phases,
 * and the QUEUE phase (shf-bench-queue.c) after it.  See shf-bench(1).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
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
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif
#ifdef HAVE_LMDB
#include <lmdb.h>
#endif

#include "shf.h"
#include "shf-bench-queue.h"
#ifdef HAVE_NEARCACHE
#include "shf-bench-nearcache.h"
#endif

/* PH_CACHE is not a table phase: it has a table of its own (opt_cache). */
enum { PH_PUT, PH_GET, PH_MIX, PH_UPD, PH_BATCH, PH_CACHE, NPH };
static const char *const ph_name[NPH] = { "PUT", "GET", "MIX", "UPD", "BATCH",
					  "CACHE" };
static const char *const ph_lower[NPH] = { "put", "get", "mix", "upd", "batch",
					   "cache" };

enum { BE_SHF, BE_LMDB, NBE };
static const char *const be_name[NBE] = { "libshf", "LMDB" };

#define BATCH_KEYS 32
#define CACHE_LEASE_MS 1000 /* lease_ms and wait_ms of get-or-lease */
#define CACHE_WAIT_MS 1000
#define CACHE_BUDGET_MIN 4096
#define LMDB_PUT_TXN 1000 /* puts per LMDB write transaction */
#define GO_EXIT 0xff
#define HDR_EVERY 40

/*
 * Log-linear histogram of latencies in clock ticks: values below 64 have a
 * bucket each, above that 32 buckets per power of two (error < 3.2%).
 */
#define LIN 64
#define SUB 32
#define NBUCKETS (LIN + (64 - 6) * SUB)

struct proc_stat {
	_Atomic uint64_t ops; /* ops done in the current phase */
	_Atomic uint64_t hits, misses; /* CACHE: found, leased (so far) */
	char pad[40];         /* the parent polls these: keep them alone */
	uint64_t errors;      /* wrong results (missing key, bad value) */
	uint64_t c_timeouts;  /* CACHE: get-or-lease timed out */
	uint64_t c_errors;    /* CACHE: wrong values or results */
	uint64_t max[NPH];
	uint64_t hist[NPH][NBUCKETS];
} __attribute__((aligned(64)));

struct phase_res {
	int ran;
	uint64_t ops;
	double secs;
	uint64_t lat_ns[5]; /* p50 p99 p99.9 p99.99 max */
};

struct be_res {
	int ran;
	struct phase_res ph[NPH];
	uint64_t file_bytes; /* st_blocks * 512 after PUT */
	uint64_t errors;
};

/* The CACHE phase: what the workers saw, and the table's stats after. */
struct cache_res {
	int ran;
	struct phase_res ph;
	uint64_t hits, misses, timeouts, errors;
	struct shf_stats st;
};

/* Options. */
static unsigned opt_procs = 2;
static uint64_t opt_keys = 10000000;
static unsigned opt_klen = 12;
static unsigned opt_vlen = 8;
static unsigned opt_mix = 2;
static int opt_fixed;
static int opt_sorted;
static const char *opt_dir = "/dev/shm";
static int opt_phase[NPH], opt_nphases;
static int opt_order[NPH];
static int opt_vs_lmdb;
static int opt_json;
static int opt_queue; /* the QUEUE phase, apart from the table phases */
static uint64_t opt_q_items = QB_ITEMS_DEFAULT;
static unsigned opt_q_size = QB_SIZE_DEFAULT;
/* The NEARCACHE phase (shf-bench-nearcache.c), last of all. */
static int opt_nearcache;
static const char *opt_redis; /* NULL: a redis-server of its own */
static uint64_t opt_nc_keys = 1000000, opt_nc_ops, opt_nc_writes = 100000;
static double opt_nc_secs = 2.0;
#ifdef HAVE_NEARCACHE
static const struct ncb_res *g_nres; /* for print_json() */
#endif
static int opt_cache; /* the CACHE phase, apart from the table phases */
static uint64_t opt_cache_ops;    /* 0: keys */
static double opt_cache_secs;     /* > 0: run that long instead */
static uint64_t opt_cache_budget; /* bytes; see cache_budget() */
static int opt_cache_budget_set;
static uint32_t opt_cache_ttl;    /* ms, 0: none */
static double opt_zipf = 0.99;

/* Run state (the signal handler and cleanup use it). */
static volatile sig_atomic_t g_stop;
static pid_t g_pids[1024];
static unsigned g_npids;
static char g_name[64];
static char g_cache_name[72];
static const char *g_attach = g_name; /* the table the workers attach */
static char g_shf_path[PATH_MAX], g_cache_path[PATH_MAX + 8];
static char g_lmdb_path[PATH_MAX], g_lmdb_lock[PATH_MAX + 8];
static SHF *g_shf, *g_cache_shf;
static struct proc_stat *g_stat; /* [NBE][procs] */
static double g_ticks_per_ns = 1.0;
static FILE *g_live; /* live lines: stdout, or stderr with --json */
static uint64_t g_total_ops;

/* ------------------------------------------------------------ clocks */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
#endif
}

/* The TSC rate, measured against CLOCK_MONOTONIC over 50 ms. */
static void ticks_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
	double t0 = now_s(), t1;
	uint64_t r0 = ticks(), r1;

	do
		t1 = now_s();
	while (t1 - t0 < 0.05);
	r1 = ticks();
	g_ticks_per_ns = (double)(r1 - r0) / ((t1 - t0) * 1e9);
	if (g_ticks_per_ns <= 0)
		g_ticks_per_ns = 1.0;
#endif
}

static inline unsigned bucket_of(uint64_t v)
{
	unsigned e;

	if (v < LIN)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	return LIN + (e - 6) * SUB + (unsigned)((v >> (e - 5)) & (SUB - 1));
}

/* Middle of a bucket, in ticks. */
static double bucket_mid(unsigned b)
{
	unsigned e, s;

	if (b < LIN)
		return b;
	e = (b - LIN) / SUB + 6;
	s = (b - LIN) % SUB;
	return ((double)(SUB + s) + 0.5) * (double)(1ULL << (e - 5));
}

static inline void lat_add(struct proc_stat *st, int ph, uint64_t t)
{
	st->hist[ph][bucket_of(t)]++;
	if (t > st->max[ph])
		st->max[ph] = t;
}

/* ---------------------------------------------------------- workload */

struct ctx {
	int be;
	unsigned p;
	uint64_t lo, n;  /* own range */
	uint64_t stride; /* coprime with n */
	int flip;        /* values are ~index after an odd number of UPDs */
	char *key;       /* opt_klen bytes, prefix preset */
	char *val;       /* opt_vlen bytes */
	struct proc_stat *st;
	SHF *shf;
	/* batch buffers */
	char *bkeys;
	const char *bkp[BATCH_KEYS];
	uint32_t bklen[BATCH_KEYS], blens[BATCH_KEYS], buids[BATCH_KEYS];
	uint64_t boffs[BATCH_KEYS];
	char *bbuf;
#ifdef HAVE_LMDB
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rtxn, *wtxn;
	unsigned wcount;
	char *lbuf; /* where LMDB gets copy values, as libshf does */
#endif
};

/*
 * "key:" (padded with '-' or cut to klen-8 bytes), then the index in the
 * machine's byte order: successive indexes are scattered in memcmp order,
 * so LMDB's PUT inserts all over its tree, as with hashed or random keys.
 * --sorted-keys stores the index big-endian instead: PUT then inserts in
 * memcmp order, LMDB's best case (libshf does not care).
 */
static void key_prefix(char *k)
{
	unsigned i, pre = opt_klen - 8;

	for (i = 0; i < pre; i++)
		k[i] = i < 4 ? "key:"[i] : '-';
}

static inline void key_make(char *k, uint64_t i)
{
	if (opt_sorted)
		i = __builtin_bswap64(i);
	memcpy(k + opt_klen - 8, &i, 8);
}

static inline uint64_t val_word(const struct ctx *c, uint64_t i, int flip)
{
	(void)c;
	return flip ? ~i : i;
}

static inline void val_make(char *v, uint64_t w)
{
	memcpy(v, &w, opt_vlen < 8 ? opt_vlen : 8);
}

static inline int val_ok(const char *v, uint32_t len, uint64_t w)
{
	return len == opt_vlen && !memcmp(v, &w, opt_vlen < 8 ? opt_vlen : 8);
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static int is_prime(uint64_t x)
{
	uint64_t d;

	if (x < 2)
		return 0;
	for (d = 2; d * d <= x; d++)
		if (x % d == 0)
			return 0;
	return 1;
}

/* 1000003, or the next prime coprime with the range size. */
static uint64_t stride_for(uint64_t n)
{
	uint64_t s = 1000003;

	while (n && gcd64(s, n) != 1)
		do
			s++;
		while (!is_prime(s));
	return s;
}

/* libshf operations: 0 right, 1 wrong result, -1 failed call. */
static int shf_op_put(struct ctx *c, uint64_t i)
{
	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	val_make(c->val, val_word(c, i, c->flip));
	return shf_put_key_val(c->shf, c->val, opt_vlen) & SHF_RET_KEY_PUT ?
		       0 : -1;
}

static int shf_op_get(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	r = shf_get_key_val_copy(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	return (r & SHF_RET_KEY_FOUND) &&
			       val_ok(shf_val, shf_val_len,
				      val_word(c, i, c->flip)) ?
		       0 : 1;
}

static int shf_op_delput(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	r = shf_del_key_val(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	if (!(r & SHF_RET_KEY_FOUND))
		return 1;
	val_make(c->val, val_word(c, i, c->flip));
	return shf_put_key_val(c->shf, c->val, opt_vlen) & SHF_RET_KEY_PUT ?
		       0 : -1;
}

static int shf_op_upd(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	val_make(c->val, val_word(c, i, !c->flip));
	if (shf_upd_callback_copy(c->val, opt_vlen) & SHF_RET_ERROR)
		return -1;
	r = shf_upd_key_val(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	return (r & SHF_RET_KEY_FOUND) && !(r & SHF_RET_BAD_CB) ? 0 : 1;
}

static int shf_op_batch(struct ctx *c, const uint64_t *ix, unsigned n)
{
	unsigned k;
	uint32_t r;
	int bad = 0;

	for (k = 0; k < n; k++)
		key_make(c->bkeys + (size_t)k * opt_klen, ix[k]);
	r = shf_get_key_val_copy_batch(c->shf, n, c->bkp, c->bklen, c->bbuf,
				       (uint64_t)BATCH_KEYS * opt_vlen,
				       c->boffs, c->blens, c->buids);
	if (r == UINT32_MAX)
		return -1;
	for (k = 0; k < n; k++)
		if (c->blens[k] == UINT32_MAX ||
		    !val_ok(c->bbuf + c->boffs[k], c->blens[k],
			    val_word(c, ix[k], c->flip)))
			bad++;
	return bad;
}

#ifdef HAVE_LMDB
static int lmdb_wtxn_begin(struct ctx *c)
{
	if (c->wtxn)
		return 0;
	c->wcount = 0;
	return mdb_txn_begin(c->env, NULL, 0, &c->wtxn) ? -1 : 0;
}

static int lmdb_wtxn_commit(struct ctx *c)
{
	int rc;

	if (!c->wtxn)
		return 0;
	rc = mdb_txn_commit(c->wtxn);
	c->wtxn = NULL;
	return rc ? -1 : 0;
}

/* PUT and UPD: LMDB_PUT_TXN puts per write transaction. */
static int lmdb_put_batched(struct ctx *c, uint64_t i, int flip)
{
	MDB_val k = { opt_klen, c->key }, v = { opt_vlen, c->val };

	key_make(c->key, i);
	val_make(c->val, val_word(c, i, flip));
	if (lmdb_wtxn_begin(c) || mdb_put(c->wtxn, c->dbi, &k, &v, 0))
		return -1;
	if (++c->wcount == LMDB_PUT_TXN)
		return lmdb_wtxn_commit(c);
	return 0;
}

static int lmdb_op_put(struct ctx *c, uint64_t i)
{
	return lmdb_put_batched(c, i, c->flip);
}

static int lmdb_op_upd(struct ctx *c, uint64_t i)
{
	return lmdb_put_batched(c, i, !c->flip);
}

/* Each get in the process's read transaction, renewed and reset. */
static int lmdb_get1(struct ctx *c, uint64_t i, char *dst)
{
	MDB_val k = { opt_klen, c->key }, v;
	int rc;

	key_make(c->key, i);
	rc = mdb_get(c->rtxn, c->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return -1;
	memcpy(dst, v.mv_data, v.mv_size < opt_vlen ? v.mv_size : opt_vlen);
	return val_ok(dst, (uint32_t)v.mv_size, val_word(c, i, c->flip)) ?
		       0 : 1;
}

static int lmdb_op_get(struct ctx *c, uint64_t i)
{
	int rc;

	if (mdb_txn_renew(c->rtxn))
		return -1;
	rc = lmdb_get1(c, i, c->lbuf);
	mdb_txn_reset(c->rtxn);
	return rc;
}

/* MIX: each del+put is a write transaction of its own (visible at once,
 * as a libshf del+put is). */
static int lmdb_op_delput(struct ctx *c, uint64_t i)
{
	MDB_val k = { opt_klen, c->key }, v = { opt_vlen, c->val };
	int rc;

	key_make(c->key, i);
	val_make(c->val, val_word(c, i, c->flip));
	if (lmdb_wtxn_begin(c))
		return -1;
	rc = mdb_del(c->wtxn, c->dbi, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return -1;
	if (mdb_put(c->wtxn, c->dbi, &k, &v, 0) || lmdb_wtxn_commit(c))
		return -1;
	return rc == MDB_NOTFOUND ? 1 : 0;
}

/* BATCH: the keys of a batch in one read transaction. */
static int lmdb_op_batch(struct ctx *c, const uint64_t *ix, unsigned n)
{
	unsigned k;
	int rc, bad = 0;

	if (mdb_txn_renew(c->rtxn))
		return -1;
	for (k = 0; k < n; k++) {
		rc = lmdb_get1(c, ix[k], c->bbuf + (size_t)k * opt_vlen);
		if (rc < 0) {
			mdb_txn_reset(c->rtxn);
			return -1;
		}
		bad += rc;
	}
	mdb_txn_reset(c->rtxn);
	return bad;
}

static int lmdb_phase_end(struct ctx *c)
{
	return lmdb_wtxn_commit(c);
}
#endif

/* ------------------------------------------------------ CACHE */

/*
 * Zipf-distributed ranks in [0, n), by Gray et al.'s method ("Quickly
 * generating billion-record synthetic databases", SIGMOD 1994) as YCSB's
 * ZipfianGenerator does it: zeta(n, theta) once, then O(1) per draw.
 */
struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
};

/*
 * zeta(n, theta) = sum of 1/i^theta for i = 1..n: exact for the first
 * 2^20 terms, the rest by Euler-Maclaurin (relative error far below
 * 1e-12), so that 4e9 keys take no longer than a million.
 */
static double zeta(uint64_t n, double theta)
{
	const uint64_t m = 1u << 20;
	double sum = 0, a, b, fa, fb;
	uint64_t i;

	for (i = 1; i <= n && i < m; i++)
		sum += pow((double)i, -theta);
	if (n < m)
		return sum;
	/* sum over [m, n] of f(x) = x^-theta */
	a = (double)m;
	b = (double)n;
	fa = pow(a, -theta);
	fb = pow(b, -theta);
	sum += (pow(b, 1 - theta) - pow(a, 1 - theta)) / (1 - theta);
	sum += (fa + fb) / 2;
	sum += (-theta * fb / b + theta * fa / a) / 12;
	return sum;
}

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1 + pow(0.5, theta);

	memset(z, 0, sizeof(*z));
	z->n = n;
	z->theta = theta;
	z->alpha = 1 / (1 - theta);
	z->zetan = zeta(n, theta);
	z->half_pow_theta = pow(0.5, theta);
	/* n <= 2: the first two cases of zipf_next() cover every draw */
	if (n > 2)
		z->eta = (1 - pow(2.0 / (double)n, 1 - theta)) /
			 (1 - zeta2 / z->zetan);
}

/* splitmix64: the per-process random numbers. */
static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t zipf_next(const struct zipf *z, uint64_t *rng)
{
	double u = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
	double uz = u * z->zetan;
	uint64_t r;

	if (uz < 1.0 || z->n < 2)
		return 0;
	if (uz < 1.0 + z->half_pow_theta)
		return 1;
	r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
	return r < z->n ? r : z->n - 1;
}

/*
 * A permutation of [0, n) that scatters the ranks, so that the hot keys
 * are not neighbours: a bijective mix of the bits-bit numbers (xor,
 * multiplication by odd numbers and xorshifts, all modulo 2^bits), walked
 * along its cycle until it lands below n (fewer than 2 steps on average).
 */
struct perm {
	uint64_t n, mask;
	unsigned s1, s2;
};

static void perm_init(struct perm *pm, uint64_t n)
{
	unsigned bits = 0;

	while (bits < 64 && (1ULL << bits) < n)
		bits++;
	pm->n = n;
	pm->mask = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
	pm->s1 = bits / 2 + 1;
	pm->s2 = bits / 3 + 1;
}

static inline uint64_t perm_next(const struct perm *pm, uint64_t x)
{
	x = (x ^ (0x2545f4914f6cdd1dULL & pm->mask)) & pm->mask;
	x = (x * 0x9e3779b97f4a7c15ULL) & pm->mask;
	x ^= x >> pm->s1;
	x = (x * 0xbf58476d1ce4e5b9ULL) & pm->mask;
	x ^= x >> pm->s2;
	return x;
}

static inline uint64_t perm_of(const struct perm *pm, uint64_t r)
{
	do
		r = perm_next(pm, r);
	while (r >= pm->n);
	return r;
}

static struct zipf g_zipf; /* set up by the parent before the fork */
static struct perm g_perm;

/* The default budget: about a fifth of the key space's records. */
static uint64_t cache_budget(void)
{
	uint64_t b;

	if (opt_cache_budget_set)
		return opt_cache_budget;
	b = opt_keys * (uint64_t)(opt_klen + opt_vlen + 8) / 5;
	return b < CACHE_BUDGET_MIN ? CACHE_BUDGET_MIN : b;
}

static int cache_fail(const struct ctx *c, const char *call)
{
	int e = errno;

	fprintf(stderr, "shf-bench: CACHE: worker %u: %s: %s\n", c->p, call,
		strerror(e));
	errno = e;
	return -1;
}

/*
 * The CACHE phase of one worker: its share of opt_cache_ops get-or-lease
 * calls (or as many as opt_cache_secs allow) on Zipf-drawn keys of the
 * whole range; a lease is answered with the key's value, put at once.
 * -1 if a call failed.
 */
static int run_cache_phase(struct ctx *c)
{
	struct proc_stat *st = c->st;
	uint64_t ops = opt_cache_ops ? opt_cache_ops : opt_keys;
	uint64_t n = ops * (c->p + 1) / opt_procs - ops * c->p / opt_procs;
	uint64_t rng = 0x5eed0fcace5ULL + 0x100000001b3ULL * (c->p + 1);
	uint64_t j, t0, t1, end = 0, hits = 0, misses = 0;
	uint32_t r;

	if (opt_cache_secs > 0)
		n = UINT64_MAX;
	atomic_store_explicit(&st->ops, 0, memory_order_relaxed);
	atomic_store_explicit(&st->hits, 0, memory_order_relaxed);
	atomic_store_explicit(&st->misses, 0, memory_order_relaxed);
	t0 = ticks();
	if (opt_cache_secs > 0)
		end = t0 + (uint64_t)(opt_cache_secs * 1e9 * g_ticks_per_ns);
	for (j = 0; j < n; j++) {
		uint64_t i = perm_of(&g_perm, zipf_next(&g_zipf, &rng));

		key_make(c->key, i);
		shf_make_hash(c->key, opt_klen);
		r = shf_get_key_val_copy_or_lease(c->shf, CACHE_LEASE_MS,
						  CACHE_WAIT_MS);
		if (r & SHF_RET_ERROR) {
			if (errno != ETIMEDOUT)
				return cache_fail(c,
						  "shf_get_key_val_copy_or_lease");
			st->c_timeouts++;
		} else if (r & SHF_RET_KEY_FOUND) {
			hits++;
			if (!val_ok(shf_val, shf_val_len, val_word(c, i, 0)))
				st->c_errors++;
		} else if (r & SHF_RET_LEASED) {
			/* "compute" the value, and store it: ends the lease */
			misses++;
			val_make(c->val, val_word(c, i, 0));
			if (!(shf_put_key_val(c->shf, c->val, opt_vlen) &
			      SHF_RET_KEY_PUT))
				return cache_fail(c, "shf_put_key_val");
		} else {
			st->c_errors++; /* neither found nor leased */
		}
		t1 = ticks();
		lat_add(st, PH_CACHE, t1 - t0);
		t0 = t1;
		if ((j & 255) == 255) {
			atomic_store_explicit(&st->hits, hits,
					      memory_order_relaxed);
			atomic_store_explicit(&st->misses, misses,
					      memory_order_relaxed);
			atomic_store_explicit(&st->ops, j + 1,
					      memory_order_relaxed);
			if (end && t1 >= end) {
				j++;
				break;
			}
		}
	}
	atomic_store_explicit(&st->hits, hits, memory_order_relaxed);
	atomic_store_explicit(&st->misses, misses, memory_order_relaxed);
	atomic_store_explicit(&st->ops, j, memory_order_release);
	return 0;
}

struct ops {
	int (*put)(struct ctx *, uint64_t);
	int (*get)(struct ctx *, uint64_t);
	int (*delput)(struct ctx *, uint64_t);
	int (*upd)(struct ctx *, uint64_t);
	int (*batch)(struct ctx *, const uint64_t *, unsigned);
	int (*phase_end)(struct ctx *);
};

static const struct ops be_ops[NBE] = {
	{ shf_op_put, shf_op_get, shf_op_delput, shf_op_upd, shf_op_batch,
	  NULL },
#ifdef HAVE_LMDB
	{ lmdb_op_put, lmdb_op_get, lmdb_op_delput, lmdb_op_upd,
	  lmdb_op_batch, lmdb_phase_end },
#else
	{ NULL, NULL, NULL, NULL, NULL, NULL },
#endif
};

/* One phase over the process's range; -1 if a call failed. */
static int run_phase(struct ctx *c, int ph)
{
	const struct ops *o = &be_ops[c->be];
	struct proc_stat *st = c->st;
	uint64_t j, pos = 0, step = c->n ? c->stride % c->n : 0, t0, t1;
	uint64_t ix[BATCH_KEYS];
	unsigned acc = 0, nb = 0;
	int rc = 0;

	atomic_store_explicit(&st->ops, 0, memory_order_relaxed);
	t0 = ticks();
	for (j = 0; j < c->n; j++) {
		uint64_t i;

		if (ph == PH_PUT) {
			i = c->lo + j;
		} else {
			i = c->lo + pos;
			pos += step;
			if (pos >= c->n)
				pos -= c->n;
		}
		switch (ph) {
		case PH_PUT:
			rc = o->put(c, i);
			break;
		case PH_GET:
			rc = o->get(c, i);
			break;
		case PH_MIX:
			acc += opt_mix;
			if (acc >= 100) {
				acc -= 100;
				rc = o->delput(c, i);
			} else {
				rc = o->get(c, i);
			}
			break;
		case PH_UPD:
			rc = o->upd(c, i);
			break;
		case PH_BATCH:
			ix[nb++] = i;
			if (nb < BATCH_KEYS && j + 1 < c->n)
				continue;
			rc = o->batch(c, ix, nb);
			break;
		}
		if (rc < 0)
			return -1;
		st->errors += (uint64_t)rc;
		t1 = ticks();
		lat_add(st, ph, t1 - t0);
		t0 = t1;
		if (ph == PH_BATCH) {
			nb = 0;
			atomic_store_explicit(&st->ops, j + 1,
					      memory_order_relaxed);
		} else if ((j & 255) == 255) {
			atomic_store_explicit(&st->ops, j + 1,
					      memory_order_relaxed);
		}
	}
	if (o->phase_end && o->phase_end(c) < 0)
		return -1;
	if (ph == PH_UPD)
		c->flip = !c->flip;
	atomic_store_explicit(&st->ops, c->n, memory_order_release);
	return 0;
}

/* ------------------------------------------------------ stores */

#ifdef HAVE_LMDB
static size_t lmdb_mapsize(void)
{
	uint64_t m = opt_keys * (uint64_t)(opt_klen + opt_vlen + 64) * 3;

	m += 64ULL << 20;
	return (size_t)m;
}

static int lmdb_env_open(MDB_env **env)
{
	unsigned flags = MDB_NOSUBDIR | MDB_WRITEMAP | MDB_NOSYNC |
			 MDB_NOMETASYNC | MDB_NORDAHEAD | MDB_NOTLS;

	if (mdb_env_create(env))
		return -1;
	if (mdb_env_set_mapsize(*env, lmdb_mapsize()) ||
	    mdb_env_set_maxreaders(*env, opt_procs + 8) ||
	    mdb_env_open(*env, g_lmdb_path, flags, 0600)) {
		mdb_env_close(*env);
		*env = NULL;
		return -1;
	}
	return 0;
}

static int lmdb_dbi_open(MDB_env *env, MDB_dbi *dbi)
{
	MDB_txn *txn;

	if (mdb_txn_begin(env, NULL, 0, &txn))
		return -1;
	if (mdb_dbi_open(txn, NULL, 0, dbi)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) ? -1 : 0;
}
#endif

static int ctx_open(struct ctx *c)
{
	unsigned k;

	c->key = calloc(1, opt_klen);
	c->val = calloc(1, opt_vlen + 8);
	c->bkeys = calloc(BATCH_KEYS, opt_klen);
	c->bbuf = calloc(BATCH_KEYS, opt_vlen + 8ULL);
	if (!c->key || !c->val || !c->bkeys || !c->bbuf)
		return -1;
	memset(c->val, 'v', opt_vlen);
	key_prefix(c->key);
	for (k = 0; k < BATCH_KEYS; k++) {
		key_prefix(c->bkeys + (size_t)k * opt_klen);
		c->bkp[k] = c->bkeys + (size_t)k * opt_klen;
		c->bklen[k] = opt_klen;
	}
	if (c->be == BE_SHF) {
		/* Attach on its own, as an unrelated process would. */
		c->shf = shf_attach_existing(opt_dir, g_attach);
		return c->shf ? 0 : -1;
	}
#ifdef HAVE_LMDB
	c->lbuf = calloc(1, opt_vlen + 8);
	if (!c->lbuf || lmdb_env_open(&c->env) ||
	    lmdb_dbi_open(c->env, &c->dbi) ||
	    mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->rtxn))
		return -1;
	mdb_txn_reset(c->rtxn);
	return 0;
#else
	return -1;
#endif
}

static void ctx_close(struct ctx *c)
{
	if (c->shf)
		shf_detach(c->shf);
#ifdef HAVE_LMDB
	if (c->rtxn)
		mdb_txn_abort(c->rtxn);
	if (c->env)
		mdb_env_close(c->env);
#endif
}

static void child_main(int be, unsigned p, int go_fd, int done_fd,
		       pid_t parent)
{
	struct ctx c;
	unsigned char b;
	char r = 'k';

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	memset(&c, 0, sizeof(c));
	c.be = be;
	c.p = p;
	c.lo = opt_keys * p / opt_procs;
	c.n = opt_keys * (p + 1) / opt_procs - c.lo;
	c.stride = stride_for(c.n);
	c.st = &g_stat[be * opt_procs + p];
	if (ctx_open(&c) < 0)
		r = 'e';
	if (write(done_fd, &r, 1) != 1 || r == 'e')
		_exit(1);
	while (read(go_fd, &b, 1) == 1 && b != GO_EXIT) {
		if (b >= NPH)
			r = 'e';
		else if (b == PH_CACHE ? run_cache_phase(&c) < 0 :
					 run_phase(&c, b) < 0)
			r = 'e';
		if (write(done_fd, &r, 1) != 1 || r == 'e')
			_exit(1);
	}
	ctx_close(&c);
	_exit(0);
}

/* ------------------------------------------------------ the parent */

static void on_signal(int sig)
{
	g_stop = sig;
}

static void children_kill(void)
{
	unsigned i;

	for (i = 0; i < g_npids; i++)
		if (g_pids[i] > 0)
			kill(g_pids[i], SIGKILL);
	for (i = 0; i < g_npids; i++)
		if (g_pids[i] > 0)
			waitpid(g_pids[i], NULL, 0);
	g_npids = 0;
}

static void files_remove(void)
{
	if (g_shf) {
		free(shf_del(g_shf));
		g_shf = NULL;
	}
	if (g_shf_path[0])
		unlink(g_shf_path);
	if (g_cache_shf) {
		free(shf_del(g_cache_shf));
		g_cache_shf = NULL;
	}
	if (g_cache_path[0])
		unlink(g_cache_path);
	if (g_lmdb_path[0]) {
		unlink(g_lmdb_path);
		unlink(g_lmdb_lock);
	}
}

static void die(const char *what)
{
	int e = errno;

	children_kill();
	files_remove();
	qb_abort();
#ifdef HAVE_NEARCACHE
	ncb_abort();
#endif
	if (what)
		fprintf(stderr, "shf-bench: %s: %s\n", what, strerror(e));
	exit(g_stop ? 128 + g_stop : 1);
}

static uint64_t file_bytes(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return 0;
	return (uint64_t)sb.st_blocks * 512;
}

static void live_header(void)
{
	char col[16];
	unsigned p;

	fprintf(g_live, "-OP  ");
	for (p = 0; p < opt_procs; p++) {
		snprintf(col, sizeof(col), "-P%u", p);
		fprintf(g_live, " %5s", col);
	}
	fprintf(g_live, " ---TOTAL -OPS/s\n");
	fprintf(g_live, "---- ");
	for (p = 0; p < opt_procs; p++)
		fprintf(g_live, " %5s", "k/s");
	fprintf(g_live, " -----ops ----/s\n");
}

/* Wait for one byte from each worker, printing a line every second when
 * ph >= 0.  -1 on a worker error or a signal. */
static int parent_wait(int done_fd, int be, int ph, double *secs)
{
	struct proc_stat *st = &g_stat[be * opt_procs];
	uint64_t last[1024] = { 0 }, sum, lh = 0, lm = 0, h, m;
	double t0 = now_s(), tl = t0, next = t0 + 1.0, t;
	unsigned done = 0, p;
	static unsigned lines;
	char buf[64];
	ssize_t r;
	int ms, i;

	while (done < opt_procs) {
		struct pollfd pfd = { done_fd, POLLIN, 0 };

		if (g_stop)
			return -1;
		t = now_s();
		ms = ph < 0 ? 1000 : (int)((next - t) * 1000.0) + 1;
		if (ms < 0)
			ms = 0;
		if (poll(&pfd, 1, ms) > 0) {
			r = read(done_fd, buf, sizeof(buf));
			if (r <= 0)
				return -1; /* every worker is gone */
			for (i = 0; i < r; i++)
				if (buf[i] != 'k')
					return -1;
			done += (unsigned)r;
		}
		if (ph < 0)
			continue;
		t = now_s();
		if (t < next && done < opt_procs)
			continue;
		if (lines++ % HDR_EVERY == 0)
			live_header();
		fprintf(g_live, "%-5s", ph_name[ph]);
		sum = 0;
		for (p = 0; p < opt_procs; p++) {
			uint64_t o = atomic_load_explicit(&st[p].ops,
							  memory_order_acquire);

			fprintf(g_live, " %4.0fk",
				(double)(o - last[p]) / (t - tl) / 1e3);
			sum += o - last[p];
			last[p] = o;
		}
		g_total_ops += sum;
		fprintf(g_live, " %7.1fM %6.2fM", (double)g_total_ops / 1e6,
			(double)sum / (t - tl) / 1e6);
		if (ph == PH_CACHE) {
			/* hits of the interval's gets (timeouts aside) */
			for (h = m = 0, p = 0; p < opt_procs; p++) {
				h += atomic_load_explicit(&st[p].hits,
							  memory_order_relaxed);
				m += atomic_load_explicit(&st[p].misses,
							  memory_order_relaxed);
			}
			if (h + m > lh + lm)
				fprintf(g_live, " hit %5.1f%%",
					100.0 * (double)(h - lh) /
						(double)(h + m - lh - lm));
			lh = h;
			lm = m;
		}
		fputc('\n', g_live);
		fflush(g_live);
		tl = t;
		next += 1.0;
		if (next < t)
			next = t + 1.0;
	}
	*secs = now_s() - t0;
	return 0;
}

static void percentiles(int be, int ph, struct phase_res *pr)
{
	static const double q[4] = { 0.50, 0.99, 0.999, 0.9999 };
	uint64_t total = 0, cum = 0, max = 0, h;
	unsigned p, b, k = 0;

	for (p = 0; p < opt_procs; p++) {
		struct proc_stat *st = &g_stat[be * opt_procs + p];

		for (b = 0; b < NBUCKETS; b++)
			total += st->hist[ph][b];
		if (st->max[ph] > max)
			max = st->max[ph];
	}
	memset(pr->lat_ns, 0, sizeof(pr->lat_ns));
	for (b = 0; b < NBUCKETS && k < 4 && total; b++) {
		h = 0;
		for (p = 0; p < opt_procs; p++)
			h += g_stat[be * opt_procs + p].hist[ph][b];
		cum += h;
		while (k < 4 && (double)cum >= q[k] * (double)total) {
			double ns = bucket_mid(b) / g_ticks_per_ns;

			pr->lat_ns[k++] = (uint64_t)(ns + 0.5);
		}
	}
	pr->lat_ns[4] = (uint64_t)((double)max / g_ticks_per_ns + 0.5);
	for (k = 0; k < 4; k++)
		if (pr->lat_ns[k] > pr->lat_ns[4])
			pr->lat_ns[k] = pr->lat_ns[4];
}

static int store_create(int be)
{
	if (be == BE_SHF) {
		g_shf = shf_attach(opt_dir, g_name, 0);
		if (!g_shf)
			return -1;
		if (opt_fixed) {
			struct shf_stats s;

			errno = 0;
			shf_set_is_fixed_len(g_shf, opt_klen, opt_vlen);
			if (shf_get_stats(g_shf, &s, sizeof(s)) & SHF_RET_ERROR)
				return -1;
			if (s.fixed_key_len != opt_klen) {
				if (!errno)
					errno = EINVAL;
				return -1;
			}
		}
		return 0;
	}
#ifdef HAVE_LMDB
	{
		MDB_env *env;
		MDB_dbi dbi;
		int rc;

		if (lmdb_env_open(&env))
			return -1;
		rc = lmdb_dbi_open(env, &dbi);
		mdb_env_close(env);
		return rc;
	}
#else
	errno = ENOTSUP;
	return -1;
#endif
}

/* Fork the workers (they attach to g_attach) and wait until all have. */
static void workers_start(int be, int *go, int *done_rd)
{
	int done_pipe[2];
	unsigned p;
	double secs;

	if (pipe(done_pipe) < 0)
		die("pipe");
	for (p = 0; p < opt_procs; p++) {
		int gp[2];
		pid_t pid;

		if (pipe(gp) < 0)
			die("pipe");
		fflush(NULL);
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(gp[1]);
			close(done_pipe[0]);
			child_main(be, p, gp[0], done_pipe[1], getppid());
		}
		close(gp[0]);
		go[p] = gp[1];
		g_pids[g_npids++] = pid;
	}
	close(done_pipe[1]);
	*done_rd = done_pipe[0];
	/* Everyone attached: the start of each phase is a pipe barrier. */
	if (parent_wait(*done_rd, be, -1, &secs) < 0)
		die(g_stop ? NULL : "a worker failed to attach");
}

/* Run phase ph on every worker; its seconds. */
static double workers_phase(int be, const int *go, int done_rd, int ph)
{
	unsigned char b = (unsigned char)ph;
	unsigned p;
	double secs;

	for (p = 0; p < opt_procs; p++)
		if (write(go[p], &b, 1) != 1)
			die("pipe");
	if (parent_wait(done_rd, be, ph, &secs) < 0)
		die(g_stop ? NULL : "a worker failed");
	return secs;
}

/* Tell the workers to exit and reap them. */
static void workers_end(const int *go, int done_rd)
{
	unsigned char b = GO_EXIT;
	unsigned p;

	for (p = 0; p < opt_procs; p++) {
		if (write(go[p], &b, 1) != 1)
			die("pipe");
		close(go[p]);
	}
	close(done_rd);
	for (p = 0; p < g_npids; p++) {
		int status;

		if (waitpid(g_pids[p], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			g_pids[p] = 0;
			errno = ECHILD;
			die("a worker failed");
		}
		g_pids[p] = 0;
	}
	g_npids = 0;
}

static void run_backend(int be, struct be_res *res)
{
	int go[1024], done_rd, i;
	unsigned p;

	memset(res, 0, sizeof(*res));
	if (store_create(be) < 0)
		die(be == BE_SHF ? "cannot create the table" :
				   "cannot create the LMDB environment");
	g_attach = g_name;
	workers_start(be, go, &done_rd);
	fprintf(g_live, "%s: %u processes, %" PRIu64 " keys\n", be_name[be],
		opt_procs, opt_keys);
	for (i = 0; i < opt_nphases; i++) {
		int ph = opt_order[i];

		res->ph[ph].secs = workers_phase(be, go, done_rd, ph);
		res->ph[ph].ran = 1;
		res->ph[ph].ops = opt_keys;
		percentiles(be, ph, &res->ph[ph]);
		if (ph == PH_PUT)
			res->file_bytes = file_bytes(be == BE_SHF ?
						     g_shf_path : g_lmdb_path);
	}
	workers_end(go, done_rd);
	for (p = 0; p < opt_procs; p++)
		res->errors += g_stat[be * opt_procs + p].errors;
	res->ran = 1;
	files_remove();
	if (be == BE_SHF)
		g_shf_path[0] = 0;
	else
		g_lmdb_path[0] = 0;
}

/*
 * The CACHE phase: a table of its own with the byte budget (and default
 * TTL), workers attached to it, one phase, the table's stats, removal.
 */
static void run_cache(struct cache_res *res)
{
	int go[1024], done_rd;
	uint64_t budget = cache_budget(), ops = 0;
	unsigned p;

	memset(res, 0, sizeof(*res));
	snprintf(g_cache_name, sizeof(g_cache_name), "%s-cache", g_name);
	snprintf(g_cache_path, sizeof(g_cache_path), "%s/%s.shf", opt_dir,
		 g_cache_name);
	g_cache_shf = shf_attach(opt_dir, g_cache_name, 0);
	if (!g_cache_shf)
		die("cannot create the cache table");
	if (opt_fixed) {
		errno = 0;
		shf_set_is_fixed_len(g_cache_shf, opt_klen, opt_vlen);
		if (shf_get_stats(g_cache_shf, &res->st, sizeof(res->st)) &
		    SHF_RET_ERROR || res->st.fixed_key_len != opt_klen) {
			if (!errno)
				errno = EINVAL;
			die("cannot make the cache table fixed-length");
		}
	}
	if (budget && shf_set_byte_budget(g_cache_shf, budget) & SHF_RET_ERROR)
		die("cannot set the byte budget");
	if (opt_cache_ttl &&
	    shf_set_ttl_default(g_cache_shf, opt_cache_ttl) & SHF_RET_ERROR)
		die("cannot set the default TTL");
	zipf_init(&g_zipf, opt_keys, opt_zipf);
	perm_init(&g_perm, opt_keys);

	g_attach = g_cache_name;
	workers_start(BE_SHF, go, &done_rd);
	fprintf(g_live, "cache: %u processes, %" PRIu64 " keys, zipf %.2f, "
		"budget %" PRIu64 " bytes, ttl %" PRIu32 " ms\n", opt_procs,
		opt_keys, opt_zipf, budget, opt_cache_ttl);
	res->ph.secs = workers_phase(BE_SHF, go, done_rd, PH_CACHE);
	res->ph.ran = 1;
	percentiles(BE_SHF, PH_CACHE, &res->ph);
	/* After the workers detached: they have added their hits then. */
	workers_end(go, done_rd);
	if (shf_get_stats(g_cache_shf, &res->st, sizeof(res->st)) &
	    SHF_RET_ERROR)
		die("shf_get_stats");
	for (p = 0; p < opt_procs; p++) {
		struct proc_stat *st = &g_stat[BE_SHF * opt_procs + p];

		ops += atomic_load(&st->ops);
		res->hits += atomic_load(&st->hits);
		res->misses += atomic_load(&st->misses);
		res->timeouts += st->c_timeouts;
		res->errors += st->c_errors;
	}
	res->ph.ops = ops;
	res->ran = 1;
	free(shf_del(g_cache_shf));
	g_cache_shf = NULL;
	unlink(g_cache_path);
	g_cache_path[0] = 0;
}

/* ------------------------------------------------------ output */

static double ops_s(const struct phase_res *pr)
{
	return pr->secs > 0 ? (double)pr->ops / pr->secs : 0;
}

static void print_text(const struct be_res *res)
{
	int be, i, k;

	if (!opt_nphases)
		return;
	printf("\nsummary: %u processes, %" PRIu64 " keys, key %u bytes%s, "
	       "value %u bytes%s, MIX %u%% del+put, %s\n",
	       opt_procs, opt_keys, opt_klen, opt_sorted ? " (sorted)" : "",
	       opt_vlen, opt_fixed ? " (fixed)" : "", opt_mix, opt_dir);
	for (be = 0; be < NBE; be++) {
		if (!res[be].ran)
			continue;
		printf("%-6s  phase        ops   secs    ops/s   "
		       "p50 us   p99 us p99.9 us p99.99 us   max us\n",
		       be_name[be]);
		for (i = 0; i < opt_nphases; i++) {
			const struct phase_res *pr = &res[be].ph[opt_order[i]];

			printf("%-6s  %-5s %10" PRIu64 " %6.2f %7.3fM",
			       be_name[be], ph_name[opt_order[i]], pr->ops,
			       pr->secs, ops_s(pr) / 1e6);
			for (k = 0; k < 5; k++)
				printf(" %8.2f", (double)pr->lat_ns[k] / 1e3);
			printf("\n");
		}
		if (res[be].ph[PH_PUT].ran) {
			printf("%-6s  longest put: %.3f ms\n", be_name[be],
			       (double)res[be].ph[PH_PUT].lat_ns[4] / 1e6);
			printf("%-6s  %s per key: %.1f bytes (%" PRIu64
			       " bytes after PUT)\n",
			       be_name[be], opt_dir,
			       (double)res[be].file_bytes / (double)opt_keys,
			       res[be].file_bytes);
		}
		printf("%-6s  errors: %" PRIu64 "\n", be_name[be],
		       res[be].errors);
	}
	if (res[BE_SHF].ran && res[BE_LMDB].ran) {
		printf("ratio   phase  libshf/LMDB\n");
		for (i = 0; i < opt_nphases; i++) {
			int ph = opt_order[i];
			double l = ops_s(&res[BE_LMDB].ph[ph]);

			printf("ratio   %-5s  %6.2fx\n", ph_name[ph],
			       l > 0 ? ops_s(&res[BE_SHF].ph[ph]) / l : 0);
		}
		if (res[BE_SHF].ph[PH_PUT].ran && res[BE_LMDB].file_bytes)
			printf("ratio   bytes  %6.2fx\n",
			       (double)res[BE_SHF].file_bytes /
				       (double)res[BE_LMDB].file_bytes);
	}
	if (opt_phase[PH_BATCH])
		printf("note: BATCH latency is per call of %u keys\n",
		       BATCH_KEYS);
}

static double hit_ratio(const struct cache_res *cr)
{
	uint64_t gets = cr->hits + cr->misses + cr->timeouts;

	return gets ? (double)cr->hits / (double)gets : 0;
}

static int within_budget(const struct cache_res *cr)
{
	return !cr->st.byte_budget || cr->st.bytes_cached <= cr->st.byte_budget;
}

static void print_cache_text(const struct cache_res *cr)
{
	const struct phase_res *pr = &cr->ph;
	const struct shf_stats *st = &cr->st;
	int k;

	printf("\ncache: %u processes, %" PRIu64 " keys, key %u bytes%s, "
	       "value %u bytes%s, zipf %.2f, budget %" PRIu64 " bytes, "
	       "ttl %" PRIu32 " ms, %s\n",
	       opt_procs, opt_keys, opt_klen, opt_sorted ? " (sorted)" : "",
	       opt_vlen, opt_fixed ? " (fixed)" : "", opt_zipf,
	       st->byte_budget, st->ttl_default_ms, opt_dir);
	printf("%-6s  phase        ops   secs    ops/s   "
	       "p50 us   p99 us p99.9 us p99.99 us   max us\n",
	       be_name[BE_SHF]);
	printf("%-6s  %-5s %10" PRIu64 " %6.2f %7.3fM", be_name[BE_SHF],
	       ph_name[PH_CACHE], pr->ops, pr->secs, ops_s(pr) / 1e6);
	for (k = 0; k < 5; k++)
		printf(" %8.2f", (double)pr->lat_ns[k] / 1e3);
	printf("\n");
	printf("cache   hits: %" PRIu64 "  misses: %" PRIu64 "  timeouts: %"
	       PRIu64 "  hit ratio: %.4f\n",
	       cr->hits, cr->misses, cr->timeouts, hit_ratio(cr));
	printf("cache   table: keys %" PRIu64 ", bytes_cached %" PRIu64
	       " of budget %" PRIu64 " (%s), evictions %" PRIu64
	       ", expirations %" PRIu64 ", leases %" PRIu64
	       ", lease_waits %" PRIu64 "\n",
	       st->keys, st->bytes_cached, st->byte_budget,
	       within_budget(cr) ? "within budget" : "OVER BUDGET",
	       st->evictions, st->expirations, st->leases, st->lease_waits);
	printf("cache   errors: %" PRIu64 "\n", cr->errors);
	if (opt_vs_lmdb)
		printf("note: CACHE runs on libshf only (LMDB has no "
		       "get-or-lease)\n");
}

static void print_cache_json(const struct cache_res *cr)
{
	static const char *const lat[5] = { "p50", "p99", "p99_9", "p99_99",
					    "max" };
	const struct phase_res *pr = &cr->ph;
	const struct shf_stats *st = &cr->st;
	int k;

	printf("{\"zipf\":%.4f,\"byte_budget\":%" PRIu64
	       ",\"ttl_ms\":%" PRIu32 ",\"lease_ms\":%u,\"wait_ms\":%u"
	       ",\"ops\":%" PRIu64 ",\"secs\":%.4f,\"ops_per_sec\":%.0f"
	       ",\"lat_ns\":{",
	       opt_zipf, st->byte_budget, st->ttl_default_ms, CACHE_LEASE_MS,
	       CACHE_WAIT_MS, pr->ops, pr->secs, ops_s(pr));
	for (k = 0; k < 5; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", lat[k],
		       pr->lat_ns[k]);
	printf("},\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
	       ",\"timeouts\":%" PRIu64 ",\"hit_ratio\":%.4f,\"errors\":%"
	       PRIu64 ",\"table\":{\"keys\":%" PRIu64 ",\"bytes_cached\":%"
	       PRIu64 ",\"byte_budget\":%" PRIu64 ",\"within_budget\":%s"
	       ",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
	       ",\"evictions\":%" PRIu64 ",\"expirations\":%" PRIu64
	       ",\"leases\":%" PRIu64 ",\"lease_waits\":%" PRIu64 "}}",
	       cr->hits, cr->misses, cr->timeouts, hit_ratio(cr), cr->errors,
	       st->keys, st->bytes_cached, st->byte_budget,
	       within_budget(cr) ? "true" : "false", st->hits, st->misses,
	       st->evictions, st->expirations, st->leases, st->lease_waits);
}

static void print_json(const struct be_res *res, const struct cache_res *cres,
		       const struct qb_res *qres)
{
	static const char *const lat[5] = { "p50", "p99", "p99_9", "p99_99",
					    "max" };
	int be, i, k, first = 1;

	printf("{\"tool\":\"shf-bench\",\"version\":\"%s\",\"procs\":%u,"
	       "\"keys\":%" PRIu64 ",\"key_len\":%u,\"val_len\":%u,"
	       "\"fixed\":%s,\"sorted_keys\":%s,\"mix_pct\":%u,\"batch_keys\":%u,\"dir\":\"",
	       shf_version(), opt_procs, opt_keys, opt_klen, opt_vlen,
	       opt_fixed ? "true" : "false", opt_sorted ? "true" : "false",
	       opt_mix, BATCH_KEYS);
	for (k = 0; opt_dir[k]; k++) {
		unsigned char ch = (unsigned char)opt_dir[k];

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	printf("\",\"results\":[");
	for (be = 0; be < NBE; be++) {
		if (!res[be].ran)
			continue;
		printf("%s{\"store\":\"%s\",\"file_bytes\":%" PRIu64
		       ",\"bytes_per_key\":%.2f,\"errors\":%" PRIu64
		       ",\"phases\":[",
		       first ? "" : ",", be_name[be], res[be].file_bytes,
		       (double)res[be].file_bytes / (double)opt_keys,
		       res[be].errors);
		first = 0;
		for (i = 0; i < opt_nphases; i++) {
			const struct phase_res *pr = &res[be].ph[opt_order[i]];

			printf("%s{\"phase\":\"%s\",\"ops\":%" PRIu64
			       ",\"secs\":%.4f,\"ops_per_sec\":%.0f,"
			       "\"lat_ns\":{",
			       i ? "," : "", ph_lower[opt_order[i]], pr->ops,
			       pr->secs, ops_s(pr));
			for (k = 0; k < 5; k++)
				printf("%s\"%s\":%" PRIu64, k ? "," : "",
				       lat[k], pr->lat_ns[k]);
			printf("}}");
		}
		printf("]}");
	}
	printf("]");
	if (res[BE_SHF].ran && res[BE_LMDB].ran) {
		printf(",\"ratio\":{");
		for (i = 0; i < opt_nphases; i++) {
			int ph = opt_order[i];
			double l = ops_s(&res[BE_LMDB].ph[ph]);

			printf("%s\"%s\":%.3f", i ? "," : "", ph_lower[ph],
			       l > 0 ? ops_s(&res[BE_SHF].ph[ph]) / l : 0);
		}
		printf("}");
	}
	if (cres->ran) {
		printf(",\"cache\":");
		print_cache_json(cres);
	}
	if (qres->ran) {
		printf(",\"queue\":");
		qb_print_json(qres);
	}
#ifdef HAVE_NEARCACHE
	if (g_nres && g_nres->ran) {
		printf(",\"nearcache\":");
		ncb_print_json(g_nres);
	}
#endif
	printf("}\n");
}

/* ------------------------------------------------------ options */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shf-bench [OPTION]...\n"
		"Measure a libshf table shared by forked processes.\n\n"
		"  -p, --procs PROCS     worker processes (default 2)\n"
		"  -n, --keys KEYS       keys in all (default 10000000)\n"
		"  -k, --key-len LEN     key bytes, >= 8 (default 12)\n"
		"  -v, --val-len LEN     value bytes (default 8)\n"
		"      --mix PCT         MIX del+put percent (default 2)\n"
		"      --fixed           shf_set_is_fixed_len() the table\n"
		"      --sorted-keys     index big-endian: PUT in memcmp order\n"
		"  -d, --dir DIR         where tables go (default /dev/shm)\n"
		"      --phases LIST     from put,get,mix,upd,batch,cache,queue,\n"
		"                        nearcache; put first of the table\n"
		"                        phases; cache, queue, nearcache after\n"
		"                        (default put,get,mix,upd,batch)\n"
		"      --cache-ops OPS   CACHE: get-or-lease calls (default keys)\n"
		"      --cache-secs SECS CACHE: run that long instead\n"
		"      --cache-budget BYTES\n"
		"                        CACHE: byte budget, 0 none (default\n"
		"                        keys*(key-len+val-len+8)/5)\n"
		"      --cache-ttl MS    CACHE: default TTL, 0 none (default 0)\n"
		"      --zipf THETA      CACHE: Zipf skew, 0 to <1 (default 0.99)\n"
		"      --q-items N       QUEUE: items moved (default 2000000)\n"
		"      --q-size BYTES    QUEUE: item bytes, 8 to 65536 (default 64)\n"
		"      --redis ADDRESS   NEARCACHE: unix:/PATH or HOST:PORT\n"
		"                        (default: a redis-server of its own)\n"
		"      --nc-keys N       NEARCACHE: keys in Redis (default 1000000)\n"
		"      --nc-ops N        NEARCACHE: Zipf reads (default nc-keys)\n"
		"      --nc-writes N     NEARCACHE: SETs timed (default 100000)\n"
		"      --nc-secs SECS    NEARCACHE: hit and GET runs (default 2)\n"
		"      --vs lmdb         also run the workload on LMDB\n"
		"      --json            JSON summary on stdout\n"
		"  -h, --help            this help\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!s || *s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_phases(const char *s)
{
	char *dup = strdup(s), *tok, *save = NULL;
	int ph;

	if (!dup)
		return -1;
	memset(opt_phase, 0, sizeof(opt_phase));
	opt_nphases = 0;
	opt_queue = 0;
	opt_cache = 0;
	opt_nearcache = 0;
	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "queue") || !strcmp(tok, "cache") ||
		    !strcmp(tok, "nearcache")) {
			int *o = tok[0] == 'q' ? &opt_queue :
				 tok[0] == 'n' ? &opt_nearcache : &opt_cache;

			if ((*o)++) {
				free(dup);
				return -1;
			}
			continue;
		}
		for (ph = 0; ph < PH_CACHE; ph++)
			if (!strcmp(tok, ph_lower[ph]))
				break;
		if (ph == PH_CACHE || opt_phase[ph]) {
			free(dup);
			return -1;
		}
		opt_phase[ph] = 1;
		opt_order[opt_nphases++] = ph;
	}
	free(dup);
	/* The other table phases need the keys that PUT stores; CACHE and
	 * QUEUE have tables of their own and can run alone. */
	if (!opt_nphases)
		return opt_queue || opt_cache || opt_nearcache ? 0 : -1;
	return opt_order[0] == PH_PUT ? 0 : -1;
}

static void bad_usage(const char *msg)
{
	fprintf(stderr, "shf-bench: %s\n", msg);
	usage(stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	enum { O_MIX = 256, O_FIXED, O_SORTED, O_PHASES, O_VS, O_JSON,
	       O_Q_ITEMS, O_Q_SIZE, O_C_OPS, O_C_SECS, O_C_BUDGET, O_C_TTL,
	       O_ZIPF, O_REDIS, O_NC_KEYS, O_NC_OPS, O_NC_WRITES, O_NC_SECS };
	static const struct option lopts[] = {
		{ "procs", required_argument, NULL, 'p' },
		{ "keys", required_argument, NULL, 'n' },
		{ "key-len", required_argument, NULL, 'k' },
		{ "val-len", required_argument, NULL, 'v' },
		{ "mix", required_argument, NULL, O_MIX },
		{ "fixed", no_argument, NULL, O_FIXED },
		{ "sorted-keys", no_argument, NULL, O_SORTED },
		{ "dir", required_argument, NULL, 'd' },
		{ "phases", required_argument, NULL, O_PHASES },
		{ "vs", required_argument, NULL, O_VS },
		{ "json", no_argument, NULL, O_JSON },
		{ "q-items", required_argument, NULL, O_Q_ITEMS },
		{ "q-size", required_argument, NULL, O_Q_SIZE },
		{ "cache-ops", required_argument, NULL, O_C_OPS },
		{ "cache-secs", required_argument, NULL, O_C_SECS },
		{ "cache-budget", required_argument, NULL, O_C_BUDGET },
		{ "cache-ttl", required_argument, NULL, O_C_TTL },
		{ "zipf", required_argument, NULL, O_ZIPF },
		{ "redis", required_argument, NULL, O_REDIS },
		{ "nc-keys", required_argument, NULL, O_NC_KEYS },
		{ "nc-ops", required_argument, NULL, O_NC_OPS },
		{ "nc-writes", required_argument, NULL, O_NC_WRITES },
		{ "nc-secs", required_argument, NULL, O_NC_SECS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct be_res res[NBE];
	struct cache_res cres;
	struct qb_res qres;
#ifdef HAVE_NEARCACHE
	static struct ncb_res nres;
	struct ncb_cfg ncfg;
#endif
	const char *qwhat = NULL;
	struct sigaction sa;
	uint64_t v;
	size_t map;
	int c, be;
	char *end;

	if (parse_phases("put,get,mix,upd,batch") < 0)
		return 2;
	while ((c = getopt_long(argc, argv, "p:n:k:v:d:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_u64(optarg, 1, 1024, &v))
				bad_usage("-p: 1 to 1024 processes");
			opt_procs = (unsigned)v;
			break;
		case 'n':
			if (parse_u64(optarg, 1, 4000000000ULL, &v))
				bad_usage("-n: 1 to 4000000000 keys");
			opt_keys = v;
			break;
		case 'k':
			if (parse_u64(optarg, 8, 65536, &v))
				bad_usage("-k: key length 8 to 65536");
			opt_klen = (unsigned)v;
			break;
		case 'v':
			if (parse_u64(optarg, 0, 1 << 24, &v))
				bad_usage("-v: value length 0 to 16777216");
			opt_vlen = (unsigned)v;
			break;
		case O_MIX:
			if (parse_u64(optarg, 0, 100, &v))
				bad_usage("--mix: 0 to 100 percent");
			opt_mix = (unsigned)v;
			break;
		case O_FIXED:
			opt_fixed = 1;
			break;
		case O_SORTED:
			opt_sorted = 1;
			break;
		case 'd':
			opt_dir = optarg;
			break;
		case O_PHASES:
			if (parse_phases(optarg) < 0)
				bad_usage("--phases: put first, then any of "
					  "get,mix,upd,batch, each once; "
					  "cache and queue anywhere, or "
					  "alone");
			break;
		case O_Q_ITEMS:
			if (parse_u64(optarg, 1, 1000000000000ULL, &v))
				bad_usage("--q-items: 1 to 1000000000000 items");
			opt_q_items = v;
			break;
		case O_Q_SIZE:
			if (parse_u64(optarg, QB_SIZE_MIN, QB_SIZE_MAX, &v))
				bad_usage("--q-size: 8 to 65536 bytes");
			opt_q_size = (unsigned)v;
			break;
		case O_C_OPS:
			if (parse_u64(optarg, 1, UINT64_MAX / 1024, &v))
				bad_usage("--cache-ops: at least 1");
			opt_cache_ops = v;
			break;
		case O_C_SECS:
			errno = 0;
			opt_cache_secs = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(opt_cache_secs > 0 && opt_cache_secs <= 86400))
				bad_usage("--cache-secs: more than 0, at most "
					  "86400 seconds");
			break;
		case O_C_BUDGET:
			if (parse_u64(optarg, 0, UINT64_MAX, &v))
				bad_usage("--cache-budget: bytes, 0 for none");
			opt_cache_budget = v;
			opt_cache_budget_set = 1;
			break;
		case O_C_TTL:
			if (parse_u64(optarg, 0, UINT32_MAX, &v))
				bad_usage("--cache-ttl: 0 to 4294967295 ms");
			opt_cache_ttl = (uint32_t)v;
			break;
		case O_ZIPF:
			errno = 0;
			opt_zipf = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(opt_zipf >= 0 && opt_zipf < 1))
				bad_usage("--zipf: 0 to less than 1");
			break;
		case O_REDIS:
			opt_redis = optarg;
			break;
		case O_NC_KEYS:
			if (parse_u64(optarg, 1, 1000000000ULL, &opt_nc_keys))
				bad_usage("--nc-keys: 1 to 1000000000");
			break;
		case O_NC_OPS:
			if (parse_u64(optarg, 1, UINT64_MAX / 1024, &opt_nc_ops))
				bad_usage("--nc-ops: at least 1");
			break;
		case O_NC_WRITES:
			if (parse_u64(optarg, 0, 100000000ULL, &opt_nc_writes))
				bad_usage("--nc-writes: 0 to 100000000");
			break;
		case O_NC_SECS:
			errno = 0;
			opt_nc_secs = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(opt_nc_secs > 0 && opt_nc_secs <= 3600))
				bad_usage("--nc-secs: more than 0, at most 3600");
			break;
		case O_VS:
			if (strcmp(optarg, "lmdb"))
				bad_usage("--vs: only lmdb is known");
#ifndef HAVE_LMDB
			fprintf(stderr, "shf-bench: built without LMDB\n");
			return 2;
#endif
			opt_vs_lmdb = 1;
			break;
		case O_JSON:
			opt_json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument");
#ifndef HAVE_NEARCACHE
	if (opt_nearcache) {
		fprintf(stderr, "shf-bench: built without hiredis: no "
				"nearcache phase\n");
		return 2;
	}
#endif
	if (opt_vs_lmdb && opt_klen > 511)
		bad_usage("--vs lmdb: LMDB keys are at most 511 bytes");
	if (opt_nphases && opt_procs > opt_keys)
		bad_usage("more processes than keys");
	if (strlen(opt_dir) > PATH_MAX - 64)
		bad_usage("-d: directory name too long");

	g_live = opt_json ? stderr : stdout;
	shf_init();
	ticks_calibrate();
	snprintf(g_name, sizeof(g_name), "bench-%ld", (long)getpid());
	snprintf(g_shf_path, sizeof(g_shf_path), "%s/%s.shf", opt_dir, g_name);
	if (opt_vs_lmdb) {
		snprintf(g_lmdb_path, sizeof(g_lmdb_path), "%s/%s.lmdb",
			 opt_dir, g_name);
		snprintf(g_lmdb_lock, sizeof(g_lmdb_lock), "%s-lock",
			 g_lmdb_path);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	map = sizeof(struct proc_stat) * NBE * opt_procs;
	g_stat = mmap(NULL, map, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_stat == MAP_FAILED)
		die("mmap");

	memset(res, 0, sizeof(res));
	memset(&cres, 0, sizeof(cres));
	memset(&qres, 0, sizeof(qres));
	for (be = 0; be < NBE && opt_nphases; be++) {
		if (be == BE_LMDB && !opt_vs_lmdb)
			continue;
		run_backend(be, &res[be]);
	}
	/* libshf only: LMDB has no get-or-lease to compare with. */
	if (opt_cache)
		run_cache(&cres);
	if (opt_queue && qb_run(opt_dir, g_name, opt_q_items, opt_q_size,
				&g_stop, g_live, &qres, &qwhat) < 0)
		die(g_stop ? NULL : qwhat);
#ifdef HAVE_NEARCACHE
	memset(&nres, 0, sizeof(nres));
	ncfg = (struct ncb_cfg){ opt_dir, g_name, opt_redis, opt_procs,
				 opt_nc_keys, opt_klen, opt_vlen, opt_zipf,
				 opt_nc_ops, opt_nc_writes, opt_nc_secs };
	if (opt_nearcache && ncb_run(&ncfg, &g_stop, g_live, &nres, &qwhat) < 0)
		die(g_stop ? NULL : qwhat);
	g_nres = &nres;
#endif
	if (opt_json) {
		print_json(res, &cres, &qres);
	} else {
		print_text(res);
		if (cres.ran)
			print_cache_text(&cres);
		if (qres.ran)
			qb_print_text(&qres, opt_dir);
#ifdef HAVE_NEARCACHE
		if (nres.ran)
			ncb_print_text(&nres);
#endif
	}
#ifdef HAVE_NEARCACHE
	if (nres.errors)
		return 1;
#endif
	return res[BE_SHF].errors || res[BE_LMDB].errors || cres.errors ||
			       qres.errors ?
		       1 : 0;
}
