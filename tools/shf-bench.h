// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench.h - what the files of shf-bench(1) share: the phases and
 * stores, the options, the run state, the per-process counters and
 * histograms, the workload's keys and values (inline: the measured loops
 * use them), and each file's entry points.
 *
 *   shf-bench.c         main: options, the order of the phases, cleanup
 *   shf-bench-kv.c      the table phases (PUT GET MIX UPD BATCH) and the
 *                       worker processes that run them (and CACHE)
 *   shf-bench-lmdb.c    the same operations on LMDB (--vs lmdb)
 *   shf-bench-cache.c   the CACHE phase: Zipf draws, get-or-lease
 *   shf-bench-queue.c   the QUEUE phase (shf-bench-queue.h)
 *   shf-bench-report.c  latencies, live lines and the summaries
 *   shf-bench-child.c   forking the worker processes (shf-bench-child.h)
 */
#ifndef SHF_BENCH_H
#define SHF_BENCH_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <limits.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif
#ifdef HAVE_LMDB
#include <lmdb.h>
#endif

#include "shf.h"
#include "shf-bench-child.h"

/* PH_CACHE is not a table phase: it has a table of its own (opt_cache). */
enum { PH_PUT, PH_GET, PH_MIX, PH_UPD, PH_BATCH, PH_CACHE, NPH };
extern const char *const ph_name[NPH];
extern const char *const ph_lower[NPH];

enum { BE_SHF, BE_LMDB, NBE };
extern const char *const be_name[NBE];

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
	/* --huge: 2 MiB ranges gathered after PUT, of all, and how long */
	uint64_t huge_done, huge_all;
	double huge_secs;
	int huge_errno;
};

/* The CACHE phase: what the workers saw, and the table's stats after. */
struct cache_res {
	int ran;
	struct phase_res ph;
	uint64_t hits, misses, timeouts, errors;
	struct shf_stats st;
};

/* Options (shf-bench.c). */
extern unsigned opt_procs;
extern uint64_t opt_keys;
extern unsigned opt_klen;
extern unsigned opt_vlen;
extern unsigned opt_mix;
extern int opt_fixed;
extern int opt_huge;
extern int opt_sorted;
extern const char *opt_dir;
extern int opt_phase[NPH], opt_nphases;
extern int opt_order[NPH];
extern int opt_vs_lmdb;
extern uint64_t opt_cache_ops;    /* 0: keys */
extern double opt_cache_secs;     /* > 0: run that long instead */
extern uint64_t opt_cache_budget; /* bytes; see cache_budget() */
extern int opt_cache_budget_set;
extern uint32_t opt_cache_ttl;    /* ms, 0: none */
extern double opt_zipf;

/* Run state (shf-bench.c; the signal handler and cleanup use it). */
extern volatile sig_atomic_t g_stop;
extern struct bench_kids g_kids;  /* the workers of the phase running */
extern char g_name[64];
extern char g_cache_name[72];
extern const char *g_attach;      /* the table the workers attach */
extern char g_shf_path[PATH_MAX], g_cache_path[PATH_MAX + 8];
extern char g_lmdb_path[PATH_MAX], g_lmdb_lock[PATH_MAX + 8];
extern SHF *g_shf, *g_cache_shf;
extern struct proc_stat *g_stat;  /* [NBE][procs] */
extern double g_ticks_per_ns;
extern FILE *g_live;              /* live lines: stdout, or stderr (--json) */
extern uint64_t g_total_ops;

/* ------------------------------------------------------------ clocks */

double now_s(void);
void ticks_calibrate(void);

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

static inline unsigned bucket_of(uint64_t v)
{
	unsigned e;

	if (v < LIN)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	return LIN + (e - 6) * SUB + (unsigned)((v >> (e - 5)) & (SUB - 1));
}

static inline void lat_add(struct proc_stat *st, int ph, uint64_t t)
{
	st->hist[ph][bucket_of(t)]++;
	if (t > st->max[ph])
		st->max[ph] = t;
}

/* ---------------------------------------------------------- workload */

/* One worker process's view of the store and its own range. */
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

/* A store's operations: 0 right, 1 wrong result, -1 failed call. */
struct store_ops {
	int (*put)(struct ctx *, uint64_t);
	int (*get)(struct ctx *, uint64_t);
	int (*delput)(struct ctx *, uint64_t);
	int (*upd)(struct ctx *, uint64_t);
	int (*batch)(struct ctx *, const uint64_t *, unsigned);
	int (*phase_end)(struct ctx *);
};

/* ---------------------------------------------------------- entries */

/* shf-bench.c: kill the workers, remove the files, say what and exit. */
__attribute__((noreturn)) void die(const char *what);
/* shf-bench.c: remove the tables and LMDB files that are still there. */
void files_remove(void);

/* shf-bench-kv.c: the worker processes and the table phases. */
void workers_start(int be);
double workers_phase(int be, int ph);
void workers_end(void);
void run_backend(int be, struct be_res *res);
/* shf huge's (tools/shf-pages.c, shf-tool.h), for --huge */
int shf_tool_huge_collapse(const char *path, uint64_t *done, uint64_t *all);

/* shf-bench-lmdb.c: LMDB as a store (stubs without LMDB). */
extern const struct store_ops lmdb_ops;
int lmdb_store_create(void);
int lmdb_ctx_open(struct ctx *c);
void lmdb_ctx_close(struct ctx *c);

/* shf-bench-cache.c: the CACHE phase. */
int run_cache_phase(struct ctx *c);
void run_cache(struct cache_res *res);
void print_cache_text(const struct cache_res *cr);
void print_cache_json(const struct cache_res *cr);

/* shf-bench-report.c: latencies, live lines, summaries. */
void percentiles(int be, int ph, struct phase_res *pr);
int parent_wait(int done_fd, int be, int ph, double *secs);
double ops_s(const struct phase_res *pr);
void print_text(const struct be_res *res);
/* "host: CPU model, CPUs, L3" before the text summaries. */
void print_host_text(void);
/* The JSON summary but for its closing brace (more keys may follow). */
void print_json(const struct be_res *res);
extern const char *const lat_key[5];

#endif /* SHF_BENCH_H */
