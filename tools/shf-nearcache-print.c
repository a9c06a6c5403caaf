// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-nearcache-print.c - a near-cache's state and counters as text, JSON
 * or Prometheus metrics (see shf-nearcache-print.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "shf-nearcache-print.h"
#include "shf-escape.h"

const char *shf_nc_state_name(uint32_t state)
{
	switch (state) {
	case SHF_NC_UP:
		return "up";
	case SHF_NC_RESYNCING:
		return "resyncing";
	default:
		return "down";
	}
}

struct nc_field {
	const char *name;
	const char *help;
	int counter; /* a Prometheus counter, else a gauge */
	int64_t v;
};

/* JSON: "state" as a word; the number is for Prometheus. */
static void print_json(FILE *f, const struct shf_nc_stats *st,
		       const struct nc_field *fl, size_t n)
{
	size_t i;

	fprintf(f, "{\"state\": \"%s\"", shf_nc_state_name(st->state));
	for (i = 0; i < n; i++)
		if (strcmp(fl[i].name, "state"))
			fprintf(f, ", \"%s\": %" PRId64, fl[i].name, fl[i].v);
	fprintf(f, ", \"redis\": ");
	shf_json_str(f, st->redis);
	fprintf(f, ", \"last_error\": ");
	shf_json_str(f, st->last_error);
	fputc('}', f);
}

static void print_prometheus(FILE *f, const char *table,
			     const struct nc_field *fl, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *suf = fl[i].counter ? "_total" : "";

		fprintf(f, "# HELP libshf_nc_%s%s %s\n", fl[i].name, suf,
			fl[i].help);
		fprintf(f, "# TYPE libshf_nc_%s%s %s\n", fl[i].name, suf,
			fl[i].counter ? "counter" : "gauge");
		fprintf(f, "libshf_nc_%s%s{table=\"", fl[i].name, suf);
		shf_prom_label(f, table);
		fprintf(f, "\"} %" PRId64 "\n", fl[i].v);
	}
}

/* Text: the state as a word, then the fields after "up" and "state". */
static void print_text(FILE *f, const struct shf_nc_stats *st,
		       const struct nc_field *fl, size_t n)
{
	size_t i;

	fprintf(f, "%-14s %s\n", "nc_state", shf_nc_state_name(st->state));
	for (i = 2; i < n; i++)
		fprintf(f, "nc_%-11s %" PRId64 "\n", fl[i].name, fl[i].v);
	fprintf(f, "%-14s %s\n", "nc_redis", shf_esc(st->redis));
	if (st->last_error[0])
		fprintf(f, "%-14s %s\n", "nc_last_error",
			shf_esc(st->last_error));
}

void shf_nc_stats_print(FILE *f, const char *table,
			const struct shf_nc_stats *st, int format)
{
	const struct nc_field fl[] = {
		{ "up", "1 if the near-cache serves reads from the table.", 0,
		  st->state == SHF_NC_UP },
		{ "state", "0 down, 1 resyncing, 2 up.", 0, st->state },
		{ "epoch", "Bumped at every (re)connection and flush.", 0,
		  (int64_t)st->epoch },
		{ "bcast", "1 in broadcasting mode (key prefixes).", 0,
		  st->mode == SHF_NC_MODE_BCAST },
		{ "daemon_pid", "Process of the daemon, 0 if none yet.", 0,
		  st->daemon_pid },
		{ "daemon_alive", "1 if the daemon still runs.", 0,
		  st->daemon_alive },
		{ "beat_age_ms", "Since the daemon's heartbeat, -1 never.", 0,
		  st->beat_age_ms },
		{ "synced_age_ms",
		  "Since the daemon last confirmed it is in sync, -1 never.",
		  0, st->synced_age_ms },
		{ "stale_ms",
		  "Reads bypass the table when the sync is older than this.",
		  0, st->stale_ms },
		{ "hits", "Reads served from the table.", 1,
		  (int64_t)st->hits },
		{ "misses", "Reads that found nothing valid in the table.", 1,
		  (int64_t)st->misses },
		{ "fills", "Values stored in the table after a fetch.", 1,
		  (int64_t)st->fills },
		{ "fill_races",
		  "Fills refused: invalidated during their fetch.", 1,
		  (int64_t)st->fill_races },
		{ "invalidations", "Keys deleted on Redis's invalidations.", 1,
		  (int64_t)st->invalidations },
		{ "resyncs", "Times the table was emptied.", 1,
		  (int64_t)st->resyncs },
		{ "reconnects", "Connections to Redis made after a loss.", 1,
		  (int64_t)st->reconnects },
		{ "bypassed", "Reads served by Redis without the table.", 1,
		  (int64_t)st->bypassed },
		{ "errors", "Failed reads and daemon connection errors.", 1,
		  (int64_t)st->errors },
	};
	size_t n = sizeof(fl) / sizeof(fl[0]);

	if (format == NC_PRINT_JSON)
		print_json(f, st, fl, n);
	else if (format == NC_PRINT_PROMETHEUS)
		print_prometheus(f, table, fl, n);
	else
		print_text(f, st, fl, n);
}
