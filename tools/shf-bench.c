// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench.c - throughput and latency of one table shared by N processes,
 * optionally beside the same workload on LMDB (--vs lmdb).
 *
 * This file holds the options, the order of the phases and the cleanup;
 * shf-bench.h says where the rest is.  The table phases (shf-bench-kv.c)
 * run first, on each store in turn; then the phases with tables of their
 * own, in the order of extra_run(): CACHE (shf-bench-cache.c) and QUEUE
 * (shf-bench-queue.c).  Counters and latency histograms live in a shared
 * anonymous mapping that the parent reads every second and merges at the
 * end.  See shf-bench(1).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shf-bench.h"
#include "shf-bench-queue.h"
#include "shf-bench-pingpong.h"
#ifdef HAVE_NEARCACHE
#include "shf-bench-nearcache.h"
#endif

const char *const ph_name[NPH] = { "PUT", "GET", "MIX", "UPD", "BATCH",
				   "CACHE" };
const char *const ph_lower[NPH] = { "put", "get", "mix", "upd", "batch",
				    "cache" };
const char *const be_name[NBE] = { "libshf", "LMDB" };

/* Options. */
unsigned opt_procs = 2;
uint64_t opt_keys = 10000000;
unsigned opt_klen = 12;
unsigned opt_vlen = 8;
unsigned opt_mix = 2;
int opt_fixed;
int opt_huge;
int opt_sorted;
const char *opt_dir = "/dev/shm";
int opt_phase[NPH], opt_nphases;
int opt_order[NPH];
int opt_vs_lmdb;
static int opt_json;
static int opt_queue; /* the QUEUE phase, apart from the table phases */
static int opt_pingpong; /* the PINGPONG phase, likewise */
static uint64_t opt_pp_moves = PP_MOVES_DEFAULT;
static uint32_t opt_pp_items = PP_ITEMS_DEFAULT;
static uint32_t opt_pp_nolock = PP_NOLOCK_DEFAULT;
static unsigned opt_pp_runs = (1u << PP_N) - 1;
static uint64_t opt_q_items = QB_ITEMS_DEFAULT;
static unsigned opt_q_size = QB_SIZE_DEFAULT;
static int opt_cache; /* the CACHE phase, apart from the table phases */
/* The NEARCACHE phase (shf-bench-nearcache.c), last of all. */
static int opt_nearcache;
static const char *opt_redis; /* NULL: a redis-server of its own */
static uint64_t opt_nc_keys = 1000000, opt_nc_ops, opt_nc_writes = 100000;
static double opt_nc_secs = 2.0;
uint64_t opt_cache_ops;
double opt_cache_secs;
uint64_t opt_cache_budget;
int opt_cache_budget_set;
uint32_t opt_cache_ttl;
double opt_zipf = 0.99;

/* Run state. */
volatile sig_atomic_t g_stop;
struct bench_kids g_kids = { .done = -1 };
char g_name[64];
char g_cache_name[72];
const char *g_attach = g_name;
char g_shf_path[PATH_MAX], g_cache_path[PATH_MAX + 8];
char g_lmdb_path[PATH_MAX], g_lmdb_lock[PATH_MAX + 8];
SHF *g_shf, *g_cache_shf;
struct proc_stat *g_stat;
double g_ticks_per_ns = 1.0;
FILE *g_live;
uint64_t g_total_ops;

/* The results of the phases with tables of their own. */
static struct cache_res cres;
static struct qb_res qres;
static struct pp_res pres;
#ifdef HAVE_NEARCACHE
static struct ncb_res nres;
#endif

/* ------------------------------------------------------ cleanup */

static void on_signal(int sig)
{
	g_stop = sig;
}

void files_remove(void)
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

void die(const char *what)
{
	int e = errno;

	bench_kids_kill(&g_kids);
	files_remove();
	qb_abort();
	pp_abort();
#ifdef HAVE_NEARCACHE
	ncb_abort();
#endif
	if (what)
		fprintf(stderr, "shf-bench: %s: %s\n", what, strerror(e));
	exit(g_stop ? 128 + g_stop : 1);
}

/* ------------------------------------------------------ phases */

/*
 * The phases with tables of their own, run after the table phases in
 * this order.  A new one (shf-bench-queue.c is the pattern) adds its name
 * here, and a line to each of extra_run(), extra_print_text(),
 * extra_print_json(), extra_errors() and die() (its abort).
 */
static const struct {
	const char *name; /* in --phases */
	int *on;
} extra_phases[] = {
	{ "cache", &opt_cache },
	{ "queue", &opt_queue },
	{ "pingpong", &opt_pingpong },
	{ "nearcache", &opt_nearcache },
};

#define N_EXTRA (sizeof(extra_phases) / sizeof(extra_phases[0]))

static void extra_run(void)
{
	const char *qwhat = NULL;

	/* libshf only: LMDB has no get-or-lease to compare with. */
	if (opt_cache)
		run_cache(&cres);
	if (opt_queue && qb_run(opt_dir, g_name, opt_q_items, opt_q_size,
				&g_stop, g_live, &qres, &qwhat) < 0)
		die(g_stop ? NULL : qwhat);
	if (opt_pingpong) {
		struct pp_cfg pcfg = { opt_dir, g_name, opt_pp_moves,
				       opt_pp_items, opt_q_size,
				       opt_pp_nolock, opt_pp_runs };

		if (pp_run(&pcfg, &g_stop, g_live, &pres, &qwhat) < 0)
			die(g_stop ? NULL : qwhat);
	}
#ifdef HAVE_NEARCACHE
	if (opt_nearcache) {
		struct ncb_cfg ncfg = {
			opt_dir, g_name, opt_redis, opt_procs, opt_nc_keys,
			opt_klen, opt_vlen, opt_zipf, opt_nc_ops,
			opt_nc_writes, opt_nc_secs
		};

		if (ncb_run(&ncfg, &g_stop, g_live, &nres, &qwhat) < 0)
			die(g_stop ? NULL : qwhat);
	}
#endif
}

static void extra_print_text(void)
{
	if (cres.ran)
		print_cache_text(&cres);
	if (qres.ran)
		qb_print_text(&qres, opt_dir);
	if (pres.ran)
		pp_print_text(&pres, opt_dir);
#ifdef HAVE_NEARCACHE
	if (nres.ran)
		ncb_print_text(&nres);
#endif
}

/* Their keys of the JSON summary. */
static void extra_print_json(void)
{
	if (cres.ran) {
		printf(",\"cache\":");
		print_cache_json(&cres);
	}
	if (qres.ran) {
		printf(",\"queue\":");
		qb_print_json(&qres);
	}
	if (pres.ran) {
		printf(",\"pingpong\":");
		pp_print_json(&pres);
	}
#ifdef HAVE_NEARCACHE
	if (nres.ran) {
		printf(",\"nearcache\":");
		ncb_print_json(&nres);
	}
#endif
}

static int extra_errors(void)
{
#ifdef HAVE_NEARCACHE
	if (nres.errors)
		return 1;
#endif
	return cres.errors || qres.errors || pres.errors;
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
		"      --huge            after PUT, gather the table into 2\n"
		"                        MiB pages, as shf huge does\n"
		"      --sorted-keys     index big-endian: PUT in memcmp order\n"
		"  -d, --dir DIR         where tables go (default /dev/shm)\n"
		"      --phases LIST     from put,get,mix,upd,batch,cache,queue,\n"
		"                        pingpong,nearcache; put first of the\n"
		"                        table phases; cache, queue, pingpong,\n"
		"                        nearcache after\n"
		"                        (default put,get,mix,upd,batch)\n"
		"      --cache-ops OPS   CACHE: get-or-lease calls (default keys)\n"
		"      --cache-secs SECS CACHE: run that long instead\n"
		"      --cache-budget BYTES\n"
		"                        CACHE: byte budget, 0 none (default\n"
		"                        keys*(key-len+val-len+8)/5)\n"
		"      --cache-ttl MS    CACHE: default TTL, 0 none (default 0)\n"
		"      --zipf THETA      CACHE: Zipf skew, 0 to <1 (default 0.99)\n"
		"      --q-items N       QUEUE: items moved (default 2000000)\n"
		"      --q-size BYTES    QUEUE, PINGPONG: item bytes, 8 to 65536\n"
		"                        (default 64)\n"
		"      --pp-moves N      PINGPONG: items a side moves (default\n"
		"                        10000000; the fans: in all)\n"
		"      --pp-items N      PINGPONG: items going round (default\n"
		"                        100000)\n"
		"      --pp-nolock N     PINGPONG: qids_nolock_max (default 1000)\n"
		"      --pp-runs LIST    PINGPONG: from libshf,pipe,ring,bare,\n"
		"                        fan-out,fan-in (default all)\n"
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

/* A phase with a table of its own: 1, 0 if tok is none, -1 if twice. */
static int parse_extra(const char *tok)
{
	size_t i;

	for (i = 0; i < N_EXTRA; i++)
		if (!strcmp(tok, extra_phases[i].name))
			return (*extra_phases[i].on)++ ? -1 : 1;
	return 0;
}

static int parse_phases(const char *s)
{
	char *dup = strdup(s), *tok, *save = NULL;
	int ph, x, extra = 0;
	size_t i;

	if (!dup)
		return -1;
	memset(opt_phase, 0, sizeof(opt_phase));
	opt_nphases = 0;
	for (i = 0; i < N_EXTRA; i++)
		*extra_phases[i].on = 0;
	for (tok = strtok_r(dup, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		x = parse_extra(tok);
		if (x < 0)
			goto bad;
		if (x) {
			extra = 1;
			continue;
		}
		for (ph = 0; ph < PH_CACHE; ph++)
			if (!strcmp(tok, ph_lower[ph]))
				break;
		if (ph == PH_CACHE || opt_phase[ph])
			goto bad;
		opt_phase[ph] = 1;
		opt_order[opt_nphases++] = ph;
	}
	free(dup);
	/* The other table phases need the keys that PUT stores; CACHE and
	 * QUEUE have tables of their own and can run alone. */
	if (!opt_nphases)
		return extra ? 0 : -1;
	return opt_order[0] == PH_PUT ? 0 : -1;
bad:
	free(dup);
	return -1;
}

static void bad_usage(const char *msg)
{
	fprintf(stderr, "shf-bench: %s\n", msg);
	usage(stderr);
	exit(2);
}

enum { O_MIX = 256, O_FIXED, O_HUGE, O_SORTED, O_PHASES, O_VS, O_JSON, O_Q_ITEMS,
       O_Q_SIZE, O_C_OPS, O_C_SECS, O_C_BUDGET, O_C_TTL, O_ZIPF, O_REDIS,
       O_NC_KEYS, O_NC_OPS, O_NC_WRITES, O_NC_SECS, O_PP_MOVES, O_PP_ITEMS,
       O_PP_NOLOCK, O_PP_RUNS };

static const struct option lopts[] = {
	{ "procs", required_argument, NULL, 'p' },
	{ "keys", required_argument, NULL, 'n' },
	{ "key-len", required_argument, NULL, 'k' },
	{ "val-len", required_argument, NULL, 'v' },
	{ "mix", required_argument, NULL, O_MIX },
	{ "fixed", no_argument, NULL, O_FIXED },
	{ "huge", no_argument, NULL, O_HUGE },
	{ "sorted-keys", no_argument, NULL, O_SORTED },
	{ "dir", required_argument, NULL, 'd' },
	{ "phases", required_argument, NULL, O_PHASES },
	{ "vs", required_argument, NULL, O_VS },
	{ "json", no_argument, NULL, O_JSON },
	{ "q-items", required_argument, NULL, O_Q_ITEMS },
	{ "q-size", required_argument, NULL, O_Q_SIZE },
	{ "pp-moves", required_argument, NULL, O_PP_MOVES },
	{ "pp-items", required_argument, NULL, O_PP_ITEMS },
	{ "pp-nolock", required_argument, NULL, O_PP_NOLOCK },
	{ "pp-runs", required_argument, NULL, O_PP_RUNS },
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

/* An option of the NEARCACHE phase; 0 if c is none. */
static int parse_nc_opt(int c)
{
	char *end;

	switch (c) {
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
	default:
		return 0;
	}
	return 1;
}

/* An option of the CACHE or QUEUE phase; 0 if c is none. */
static int parse_extra_opt(int c)
{
	uint64_t v;
	char *end;

	switch (c) {
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
	case O_PP_MOVES:
		if (parse_u64(optarg, PP_FAN, 1000000000000ULL, &v))
			bad_usage("--pp-moves: 4 to 1000000000000 items");
		opt_pp_moves = v;
		break;
	case O_PP_ITEMS:
		if (parse_u64(optarg, 2, 16777216, &v))
			bad_usage("--pp-items: 2 to 16777216 items");
		opt_pp_items = (uint32_t)v;
		break;
	case O_PP_NOLOCK:
		if (parse_u64(optarg, 1, 1000000, &v))
			bad_usage("--pp-nolock: 1 to 1000000");
		opt_pp_nolock = (uint32_t)v;
		break;
	case O_PP_RUNS:
		opt_pp_runs = pp_runs_parse(optarg);
		if (!opt_pp_runs)
			bad_usage("--pp-runs: from libshf,pipe,ring,bare,"
				  "fan-out,fan-in");
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
	default:
		return 0;
	}
	return 1;
}

/* An option; -1 to go on, else the exit status (--help, errors). */
static int parse_opt(int c)
{
	uint64_t v;

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
	case O_FIXED: opt_fixed = 1; break;
	case O_HUGE: opt_huge = 1; break;
	case O_SORTED: opt_sorted = 1; break;
	case 'd': opt_dir = optarg; break;
	case O_PHASES:
		if (parse_phases(optarg) < 0)
			bad_usage("--phases: put first, then any of "
				  "get,mix,upd,batch, each once; "
				  "cache, queue, pingpong and nearcache "
				  "anywhere, or alone");
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
	case O_JSON: opt_json = 1; break;
	case 'h': usage(stdout); return 0;
	default:
		if (!parse_extra_opt(c) && !parse_nc_opt(c)) {
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

/* ------------------------------------------------------ main */

/* Names, signals and the workers' shared counters, before any phase. */
static void setup(void)
{
	struct sigaction sa;
	size_t map;

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
}

int main(int argc, char **argv)
{
	struct be_res res[NBE];
	int c, rc, be;

	if (parse_phases("put,get,mix,upd,batch") < 0)
		return 2;
	while ((c = getopt_long(argc, argv, "p:n:k:v:d:h", lopts, NULL)) != -1) {
		rc = parse_opt(c);
		if (rc >= 0)
			return rc;
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

	setup();
	memset(res, 0, sizeof(res));
	for (be = 0; be < NBE && opt_nphases; be++) {
		if (be == BE_LMDB && !opt_vs_lmdb)
			continue;
		run_backend(be, &res[be]);
	}
	extra_run();
	if (opt_json) {
		print_json(res);
		extra_print_json();
		printf("}\n");
	} else {
		print_host_text();
		print_text(res);
		extra_print_text();
	}
	return res[BE_SHF].errors || res[BE_LMDB].errors || extra_errors() ?
		       1 : 0;
}
