// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-nearcache-print.h - print a near-cache's state and counters
 * (struct shf_nc_stats) as "shf stat" prints a table's: aligned text,
 * one JSON object, or Prometheus metrics.  Used by shf-nearcache --stat
 * and meant for shf(1)'s "stat"; needs libc and shf-nearcache.h only.
 */
#ifndef SHF_NEARCACHE_PRINT_H
#define SHF_NEARCACHE_PRINT_H

#include <stdio.h>

#include "shf-nearcache.h"

enum { NC_PRINT_TEXT, NC_PRINT_JSON, NC_PRINT_PROMETHEUS };

/* "down", "resyncing", "up" */
const char *shf_nc_state_name(uint32_t state);

/*
 * Print st of the near-cache of table to f:
 *  - NC_PRINT_TEXT: lines "nc_<field>  value", names padded to 14 like
 *    shf stat's;
 *  - NC_PRINT_JSON: one object {"state": "up", ...}, no newline (the
 *    value of shf stat's "nearcache" key);
 *  - NC_PRINT_PROMETHEUS: # HELP / # TYPE and libshf_nc_<field>{table=..}
 *    lines; counters end in _total, the state is libshf_nc_up (0 or 1)
 *    and libshf_nc_state (0 down, 1 resyncing, 2 up).
 */
void shf_nc_stats_print(FILE *f, const char *table,
			const struct shf_nc_stats *st, int format);

#endif
