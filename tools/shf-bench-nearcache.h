// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-nearcache.h - the NEARCACHE phase of shf-bench(1): a libshf
 * table as a near-cache in front of Redis (libshf-nearcache and the
 * daemon shf-nearcache): local hits against plain Redis GETs from the
 * same processes, the time from another client's SET to the key's
 * removal from the table, and the hit ratio of a Zipf workload with a
 * byte budget that holds 20% of the keys.
 */
#ifndef SHF_BENCH_NEARCACHE_H
#define SHF_BENCH_NEARCACHE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define NCB_KEYS_DEFAULT 1000000ULL
#define NCB_WRITES_DEFAULT 100000ULL
#define NCB_SECS_DEFAULT 2.0
#define NCB_HOT_MAX 100000ULL /* keys of the hit run */
#define NCB_ADDR_MAX 256

struct ncb_cfg {
	const char *dir;   /* where the tables go */
	const char *name;  /* tables "<name>-nc", "<name>-ncz" */
	const char *redis; /* NULL: a redis-server of our own */
	unsigned procs;
	uint64_t keys;     /* keys in Redis, the Zipf range */
	unsigned klen, vlen;
	double zipf;       /* skew, 0.99 */
	uint64_t ops;      /* Zipf reads measured (0: keys) */
	uint64_t writes;   /* SETs timed to their removal */
	double secs;       /* length of the hit run and of the GET run */
};

struct ncb_lat {
	uint64_t p50, p99, max; /* ns */
	uint64_t n;             /* samples */
};

struct ncb_res {
	int ran;
	struct ncb_cfg cfg;
	char redis[NCB_ADDR_MAX];
	int own_redis;
	/* Local hits, then plain GETs, from the same processes. */
	uint64_t hot;
	uint64_t hit_ops, get_ops;
	double hit_secs, get_secs;
	struct ncb_lat hit_lat, get_lat;
	uint64_t hit_not_local; /* reads of the hit run that missed */
	/* Another client's SET to the key's removal from the table. */
	uint64_t inv_writes, inv_timeouts;
	struct ncb_lat inv_lat;
	/* Zipf. */
	uint64_t z_ops, z_hits, z_misses, z_bypassed, z_fills, z_races;
	double z_secs;
	uint64_t z_budget, z_keys, z_bytes_cached;
	uint64_t errors;
};

/*
 * Run the phase: start Redis (unless cfg->redis) and the daemon
 * (shf-nearcache beside this program, $SHF_NEARCACHE, or from PATH), fill
 * Redis, measure, stop and remove everything.  Live lines go to live.
 * 0, or -1 with errno and a message in *what.
 */
int ncb_run(const struct ncb_cfg *cfg, volatile sig_atomic_t *stop,
	    FILE *live, struct ncb_res *res, const char **what);

/* Kill what the phase started and remove its files (die() calls it). */
void ncb_abort(void);

/* The summary lines, and the value of the JSON summary's "nearcache". */
void ncb_print_text(const struct ncb_res *res);
void ncb_print_json(const struct ncb_res *res);

#endif
