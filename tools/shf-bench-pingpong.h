// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-pingpong.h - the PINGPONG phase of shf-bench(1): items going
 * round between two processes through two libshf queues (SharedHashFile's
 * ping-pong), beside a pipe and an eventfd ring doing the same, and bare
 * rings (what any zero-copy queue costs at the least on that game); then
 * one producer to four consumers, and four producers to one consumer.
 */
#ifndef SHF_BENCH_PINGPONG_H
#define SHF_BENCH_PINGPONG_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

/* The runs, in the order they run and are reported. */
enum { PP_SHF, PP_PIPE, PP_RING, PP_BARE, PP_FAN_OUT, PP_FAN_IN, PP_N };

#define PP_MOVES_DEFAULT 10000000ULL /* a side */
#define PP_ITEMS_DEFAULT 100000u
#define PP_NOLOCK_DEFAULT 1000u
#define PP_FAN 4u                    /* consumers, or producers */

struct pp_run_res {
	int ran;
	uint64_t items;       /* items moved, all processes together */
	double secs;          /* the slowest process, from the start */
	uint64_t errors;      /* items with a wrong sequence number */
	/* hardware counters of all processes, -1 where unavailable */
	double misses_item;   /* cache misses an item moved */
	double locked_item;   /* locked (atomic) instructions an item */
	uint32_t in_flight;   /* items going round (pipe: what it holds) */
};

struct pp_res {
	int ran;
	uint64_t moves;       /* a side, ping-pong */
	uint32_t q_items, size, nolock;
	struct pp_run_res run[PP_N];
	uint64_t errors;
};

struct pp_cfg {
	const char *dir, *name;
	uint64_t moves;       /* a side (fan: items in all) */
	uint32_t q_items;     /* shf_q_new()'s q_items */
	unsigned size;        /* bytes an item */
	uint32_t nolock;      /* qids_nolock_max */
	unsigned runs;        /* 1 << PP_SHF | ...: the runs to do */
};

/* The runs named in list ("libshf,pipe,ring,bare,fan-out,fan-in"), as a mask
 * for pp_cfg's runs; 0 if a name is unknown. */
unsigned pp_runs_parse(const char *list);

/*
 * Every run in turn; live lines go to live.  0, or -1 with errno and a
 * message in *what when a call failed, a process died or *stop was set.
 */
int pp_run(const struct pp_cfg *cfg, volatile sig_atomic_t *stop,
	   FILE *live, struct pp_res *res, const char **what);

/* Kill the children, remove the table (die() calls it). */
void pp_abort(void);

/* The summary lines, and the value of the JSON summary's "pingpong". */
void pp_print_text(const struct pp_res *res, const char *dir);
void pp_print_json(const struct pp_res *res);

#endif
