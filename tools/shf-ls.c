// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-ls.c - shf ls and shf stat: the tables of a directory, and the
 * statistics of one (text, --json or --prometheus).  The owner comes with
 * shf_get_stats(); no internal call is needed.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include "shf-tool.h"
#include "shf-nearcache-print.h"
#include "shf-escape.h"
#include "mount.h"

static const char *owner_state(const struct shf_stats *st)
{
	return !st->owner_pid ? "persistent" :
	       st->owner_alive ? "live" : "orphaned";
}

/* ------------------------------------------------------------------ ls */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the tables in cli_dir, sorted, in *out; 0 or -1. */
static int ls_names(char ***out, size_t *n)
{
	size_t cap = 0;
	char **names = NULL;
	struct dirent *de;
	DIR *d;

	*n = 0;
	d = opendir(cli_dir);
	if (!d) {
		say("%s: %s", cli_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l <= 4 ||
		    strcmp(de->d_name + l - 4, ".shf"))
			continue;
		if (*n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 32;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				goto oom;
			names = nn;
		}
		names[*n] = strndup(de->d_name, l - 4);
		if (!names[*n])
			goto oom;
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(names, *n, sizeof(*names), cmp_str);
	*out = names;
	return 0;
oom:
	say("out of memory");
	return -1;
}

/* The line of one table. */
static void ls_one(const char *name)
{
	SHF *shf = shf_attach_existing(cli_dir, name);
	struct shf_stats st;
	char owner[24];

	if (!shf) {
		printf("%-32s %12s %14s %8s  unreadable: %s\n", shf_esc(name),
		       "-", "-",
		       "-", strerror(errno));
		return;
	}
	shf_get_stats(shf, &st, sizeof(st));
	if (st.owner_pid)
		snprintf(owner, sizeof(owner), "%ld", (long)st.owner_pid);
	else
		snprintf(owner, sizeof(owner), "-");
	printf("%-32s %12" PRIu64 " %14" PRIu64 " %8s  %s\n", shf_esc(name),
	       st.keys, st.bytes_file, owner, owner_state(&st));
	shf_detach(shf);
}

static int do_ls(int argc, char **argv)
{
	char **names;
	size_t n, i;

	if (argc > 1)
		return usage_err("unexpected argument '%s'", argv[1]);
	if (ls_names(&names, &n) < 0)
		return EXIT_ERR;
	printf("%-32s %12s %14s %8s  %s\n", "NAME", "KEYS", "BYTES", "OWNER",
	       "STATE");
	for (i = 0; i < n; i++) {
		ls_one(names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

const struct shf_cmd shf_cmd_ls = {
	.name = "ls",
	.cmd = do_ls,
	.help = "  ls                         list the tables in DIR\n",
};

/* ---------------------------------------------------------------- stat */

struct stat_field {
	const char *name;
	const char *help;
	int counter; /* a Prometheus counter, else a gauge */
	uint64_t v;
};

#define STAT_FIELDS 25

/* The fields of stat, in the order they are printed. */
static void stat_fields(const struct shf_stats *st, uint64_t huge,
			struct stat_field f[STAT_FIELDS])
{
	const struct stat_field v[STAT_FIELDS] = {
		{ "keys", "Live keys in the table.", 0, st->keys },
		{ "bytes_file", "Size of the table's file in bytes.", 0,
		  st->bytes_file },
		{ "bytes_used", "Bytes holding live records and indexes.", 0,
		  st->bytes_used },
		{ "bytes_free", "Bytes in free lists (garbage) waiting for reuse.",
		  0, st->bytes_free },
		{ "splits", "Index segment splits (growth events).", 1,
		  st->splits },
		{ "lock_waits", "Lock acquisitions that had to wait.", 1,
		  st->lock_waits },
		{ "recoveries", "Locks recovered from dead holders.", 1,
		  st->recoveries },
		{ "puts", "Puts done.", 1, st->puts },
		{ "dels", "Deletes done.", 1, st->dels },
		{ "shards", "Lock shards.", 0, st->shards },
		{ "fixed_key_len", "Fixed key length, 0 if variable.", 0,
		  st->fixed_key_len },
		{ "fixed_val_len", "Fixed value length, 0 if variable.", 0,
		  st->fixed_val_len },
		{ "layout", "On-disk layout version.", 0, st->layout },
		{ "ttl_default_ms",
		  "Default time to live of new values in milliseconds, 0 if none.",
		  0, st->ttl_default_ms },
		{ "byte_budget", "Byte budget of the cache, 0 if none.", 0,
		  st->byte_budget },
		{ "bytes_cached",
		  "Bytes of live records, as counted against the byte budget.", 0,
		  st->bytes_cached },
		{ "hits", "Gets that found their key.", 1, st->hits },
		{ "misses", "Gets that did not find their key.", 1, st->misses },
		{ "evictions", "Keys evicted to stay within the byte budget.", 1,
		  st->evictions },
		{ "expirations", "Expired keys whose space was reclaimed.", 1,
		  st->expirations },
		{ "leases", "Leases granted by get-or-lease.", 1, st->leases },
		{ "lease_waits", "Get-or-lease calls that waited for a lease.", 1,
		  st->lease_waits },
		{ "owner_pid",
		  "Process that removes the table when it exits, 0 if none.", 0,
		  (uint64_t)st->owner_pid },
		{ "owner_alive", "1 if the owner process still runs.", 0,
		  st->owner_alive },
		/* last: left out when it cannot be found out */
		{ "bytes_huge",
		  "Bytes of the file the file system holds in 2 MiB pages.", 0,
		  huge },
	};

	memcpy(f, v, sizeof(v));
}

static void stat_json(const char *name, const char *path,
		      const struct stat_field *f, size_t nf, const char *state,
		      const char *pages, const struct shf_nc_stats *nc)
{
	size_t i;

	printf("{\"table\": ");
	shf_json_str(stdout, name);
	printf(", \"path\": ");
	shf_json_str(stdout, path);
	for (i = 0; i < nf; i++)
		printf(", \"%s\": %" PRIu64, f[i].name, f[i].v);
	if (nc) {
		printf(", \"nearcache\": ");
		shf_nc_stats_print(stdout, name, nc, NC_PRINT_JSON);
	}
	printf(", \"huge_pages\": ");
	shf_json_str(stdout, pages);
	printf(", \"state\": \"%s\"}\n", state);
}

static void stat_prom(const char *name, const struct stat_field *f,
		      size_t nf, const struct shf_nc_stats *nc)
{
	size_t i;

	for (i = 0; i < nf; i++) {
		const char *suf = f[i].counter ? "_total" : "";

		printf("# HELP libshf_%s%s %s\n", f[i].name, suf, f[i].help);
		printf("# TYPE libshf_%s%s %s\n", f[i].name, suf,
		       f[i].counter ? "counter" : "gauge");
		printf("libshf_%s%s{table=\"", f[i].name, suf);
		shf_prom_label(stdout, name);
		printf("\"} %" PRIu64 "\n", f[i].v);
	}
	if (nc)
		shf_nc_stats_print(stdout, name, nc, NC_PRINT_PROMETHEUS);
}

static void stat_text(const char *name, const char *path,
		      const struct stat_field *f, size_t nf, const char *state,
		      const char *pages, const struct shf_nc_stats *nc)
{
	size_t i;

	printf("%-14s %s\n", "table", shf_esc(name));
	printf("%-14s %s\n", "path", shf_esc(path));
	for (i = 0; i < nf; i++)
		printf("%-14s %" PRIu64 "\n", f[i].name, f[i].v);
	printf("%-14s %s\n", "huge_pages", pages);
	printf("%-14s %s\n", "state", state);
	if (nc)
		shf_nc_stats_print(stdout, name, nc, NC_PRINT_TEXT);
}

static int do_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, json = 0, prom = 0;
	char *name, path[PATH_MAX + 8];
	struct stat_field f[STAT_FIELDS];
	char policy[128], pages[192];
	uint64_t huge = 0, fsize = 0;
	size_t nf = STAT_FIELDS;
	struct shf_stats st;
	struct shf_nc_stats ncst;
	const struct shf_nc_stats *nc = NULL;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "jPh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'P': prom = 1; break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf stat NAME [--json|--prometheus]");
	if (json && prom)
		return usage_err("--json and --prometheus exclude each other");
	name = table_name(argv[optind]);
	shf = table_open(name, 0);
	if (shf_get_stats(shf, &st, sizeof(st)) & SHF_RET_ERROR) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	snprintf(path, sizeof(path), "%s/%s.shf", cli_dir, name);
	/* 2 MiB pages: how many, and the policy behind it */
	shf_huge_policy(cli_dir, policy, sizeof(policy));
	if (shf_tool_huge_bytes(path, &huge, &fsize) == 0) {
		snprintf(pages, sizeof(pages), "%" PRIu64 "%% of the file (%s)",
			 fsize ? huge * 100 / fsize : 0, policy);
	} else {
		/* not known: bytes_huge (the last field) is left out */
		snprintf(pages, sizeof(pages), "unknown: %s (%s)",
			 strerror(errno), policy);
		nf = STAT_FIELDS - 1;
	}
	stat_fields(&st, huge, f);
	/* A near-cache daemon's sidecar beside the table, if there is one. */
	if (shf_nc_stats(cli_dir, name, &ncst, sizeof(ncst)) == SHF_RET_OK)
		nc = &ncst;
	if (json)
		stat_json(name, path, f, nf, owner_state(&st), pages, nc);
	else if (prom)
		stat_prom(name, f, nf, nc);
	else
		stat_text(name, path, f, nf, owner_state(&st), pages, nc);
	shf_detach(shf);
	free(name);
	return stdout_check();
}

const struct shf_cmd shf_cmd_stat = {
	.name = "stat",
	.cmd = do_stat,
	.help = "  stat NAME [--json|--prometheus]\n"
		"                             show a table's statistics\n",
};
