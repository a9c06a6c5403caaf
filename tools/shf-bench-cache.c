// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-cache.c - the CACHE phase of shf-bench(1).  It has a table of
 * its own, with a byte budget: the workers draw Zipf-distributed keys from
 * the whole range and get-or-lease them, computing and putting what is
 * missing.  It runs after the table phases (libshf only: LMDB has no
 * get-or-lease to compare with).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shf-bench.h"

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
int run_cache_phase(struct ctx *c)
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

/*
 * The CACHE phase: a table of its own with the byte budget (and default
 * TTL), workers attached to it, one phase, the table's stats, removal.
 */
void run_cache(struct cache_res *res)
{
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
	workers_start(BE_SHF);
	fprintf(g_live, "cache: %u processes, %" PRIu64 " keys, zipf %.2f, "
		"budget %" PRIu64 " bytes, ttl %" PRIu32 " ms\n", opt_procs,
		opt_keys, opt_zipf, budget, opt_cache_ttl);
	res->ph.secs = workers_phase(BE_SHF, PH_CACHE);
	res->ph.ran = 1;
	percentiles(BE_SHF, PH_CACHE, &res->ph);
	/* After the workers detached: they have added their hits then. */
	workers_end();
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

static double hit_ratio(const struct cache_res *cr)
{
	uint64_t gets = cr->hits + cr->misses + cr->timeouts;

	return gets ? (double)cr->hits / (double)gets : 0;
}

static int within_budget(const struct cache_res *cr)
{
	return !cr->st.byte_budget || cr->st.bytes_cached <= cr->st.byte_budget;
}

void print_cache_text(const struct cache_res *cr)
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

void print_cache_json(const struct cache_res *cr)
{
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
		printf("%s\"%s\":%" PRIu64, k ? "," : "", lat_key[k],
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

