// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-kv.c - one key at a time (shf get, put, del, ttl) and the cache
 * settings of a table (shf set, expire).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shf-tool.h"
#include "shf-escape.h"

/* -------------------------------------------------- get, put, del, ttl */

/* 0 if r says the key was found; else say why and return the exit status. */
static int found_or_say(uint32_t r, const char *name, const char *key)
{
	if (r & SHF_RET_ERROR) {
		say("%s: %s", name, strerror(errno));
		return EXIT_ERR;
	}
	if (!(r & SHF_RET_KEY_FOUND)) {
		say("key '%s' not found in table '%s'", key, name);
		return EXIT_NOTFOUND;
	}
	return 0;
}

/* The options and arguments of get, put, del and ttl. */
struct kv_args {
	int hex, put, ttl_set;
	uint32_t ttl;
	const char *file;
	int want; /* arguments after the options */
};

/* -1 to go on, else the exit status (--help, usage errors). */
static int kv_parse(int argc, char **argv, struct kv_args *a)
{
	static const struct option opts[] = {
		{ "hex", no_argument, NULL, 'x' },
		{ "file", required_argument, NULL, 'f' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "xf:h", opts, NULL)) != -1) {
		switch (c) {
		case 'x': a->hex = 1; break;
		case 'f': a->file = optarg; break;
		case 'T':
			if (parse_num(optarg, UINT32_MAX, &v))
				return usage_err("--ttl wants milliseconds, 0 "
						 "to %" PRIu32, UINT32_MAX);
			a->ttl = (uint32_t)v;
			a->ttl_set = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	a->put = !strcmp(cli_cmd, "put");
	if (a->put)
		a->want = a->file ? 2 : 3;
	else
		a->want = 2;
	if (a->file && !a->put)
		return usage_err("-f is for put only");
	if (a->ttl_set && !a->put)
		return usage_err("--ttl is for put only");
	if (argc - optind != a->want)
		return usage_err("usage: shf %s NAME KEY%s [--hex]", cli_cmd,
				 a->put ? " VALUE|-f FILE [--ttl MS]" : "");
	return -1;
}

static int kv_put(SHF *shf, const struct kv_args *a, const char *name,
		  const char *val, uint32_t vlen)
{
	uint32_t r;

	/* Without --ttl, the table's default TTL applies. */
	if (a->ttl_set)
		r = shf_put_key_val_ttl(shf, val ? val : "", vlen, a->ttl);
	else
		r = shf_put_key_val(shf, val ? val : "", vlen);
	if (r & SHF_RET_ERROR) {
		say("%s: cannot put the key: %s", name, strerror(errno));
		return EXIT_ERR;
	}
	return 0;
}

static int kv_ttl(SHF *shf, const char *name, const char *key)
{
	int rc = found_or_say(shf_get_key_ttl(shf), name, key);

	if (!rc && shf_val_long < 0)
		printf("never\n");
	else if (!rc)
		printf("%ld\n", shf_val_long);
	return stdout_check() ? EXIT_ERR : rc;
}

static int kv_get(SHF *shf, const char *name, const char *key, int hex)
{
	int rc = found_or_say(shf_get_key_val_copy(shf), name, key);

	if (!rc && hex) {
		for (uint32_t i = 0; i < shf_val_len; i++)
			printf("%02x", (unsigned char)shf_val[i]);
		putchar('\n');
	} else if (!rc && isatty(STDOUT_FILENO)) {
		/*
		 * On a terminal, what another user of a shared table stored
		 * must not reach it as a command (an escape sequence that
		 * retitles the window, moves the cursor, rewrites the line
		 * above): shown escaped, then a newline for the prompt.
		 */
		shf_esc_write(stdout, shf_val, shf_val_len, 1);
		putchar('\n');
	} else if (!rc) {
		/* in a pipe or a file, the exact bytes */
		fwrite(shf_val, 1, shf_val_len, stdout);
	}
	return stdout_check() ? EXIT_ERR : rc;
}

static int do_kv(int argc, char **argv)
{
	struct kv_args a = { 0 };
	char *name, *key, *val = NULL;
	uint32_t klen, vlen = 0;
	const char *karg;
	SHF *shf;
	int rc;

	rc = kv_parse(argc, argv, &a);
	if (rc >= 0)
		return rc;
	name = table_name(argv[optind]);
	karg = argv[optind + 1];
	key = arg_bytes("key", karg, a.hex, &klen);
	if (a.file)
		val = file_bytes(a.file, &vlen);
	else if (a.want == 3)
		val = arg_bytes("value", argv[optind + 2], a.hex, &vlen);
	shf = table_open(name, a.put);

	shf_make_hash(key, klen);
	if (a.put)
		rc = kv_put(shf, &a, name, val, vlen);
	else if (!strcmp(cli_cmd, "del"))
		rc = found_or_say(shf_del_key_val(shf), name, karg);
	else if (!strcmp(cli_cmd, "ttl"))
		rc = kv_ttl(shf, name, karg);
	else
		rc = kv_get(shf, name, karg, a.hex);
	shf_detach(shf);
	free(name);
	free(key);
	free(val);
	return rc;
}

const struct shf_cmd shf_cmd_get = {
	.name = "get",
	.cmd = do_kv,
	.help = "  get NAME KEY [--hex]       print the value of KEY\n",
};

const struct shf_cmd shf_cmd_put = {
	.name = "put",
	.cmd = do_kv,
	.help = "  put NAME KEY VALUE [--hex] store KEY (creates NAME if absent)\n"
		"  put NAME KEY -f FILE       ... with the bytes of FILE (- = stdin)\n"
		"      [--ttl MS]             ... expiring in MS milliseconds\n"
		"                             (0: never; default: the table's)\n",
};

const struct shf_cmd shf_cmd_del = {
	.name = "del",
	.cmd = do_kv,
	.help = "  del NAME KEY [--hex]       delete KEY\n",
};

const struct shf_cmd shf_cmd_ttl = {
	.name = "ttl",
	.cmd = do_kv,
	.help = "  ttl NAME KEY [--hex]       print the milliseconds KEY has left,\n"
		"                             or \"never\"\n",
};

/* ---------------------------------------------------------- set, expire */

static int do_set(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "budget", required_argument, NULL, 'b' },
		{ "ttl-default", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, budget_set = 0, ttl_set = 0, rc = 0;
	uint64_t budget = 0, v;
	uint32_t ttl = 0;
	struct shf_stats st;
	char *name;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_bytes(optarg, &budget))
				return usage_err("--budget wants bytes (a number, "
						 "optionally with K, M, G or T)");
			budget_set = 1;
			break;
		case 'T':
			if (parse_num(optarg, UINT32_MAX, &v))
				return usage_err("--ttl-default wants milliseconds, "
						 "0 to %" PRIu32, UINT32_MAX);
			ttl = (uint32_t)v;
			ttl_set = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf set NAME [--budget BYTES] "
				 "[--ttl-default MS]");
	if (!budget_set && !ttl_set)
		return usage_err("nothing to set: give --budget or --ttl-default");
	name = table_name(argv[optind]);
	shf = table_open(name, 1);
	if (budget_set && shf_set_byte_budget(shf, budget) & SHF_RET_ERROR) {
		say("%s: cannot set the byte budget: %s", name, strerror(errno));
		rc = EXIT_ERR;
	}
	if (!rc && ttl_set && shf_set_ttl_default(shf, ttl) & SHF_RET_ERROR) {
		say("%s: cannot set the default TTL: %s", name, strerror(errno));
		rc = EXIT_ERR;
	}
	if (!rc) {
		/* What the table holds now. */
		if (shf_get_stats(shf, &st, sizeof(st)) & SHF_RET_ERROR) {
			say("%s: %s", name, strerror(errno));
			rc = EXIT_ERR;
		} else {
			printf("%s: byte_budget %" PRIu64 ", ttl_default_ms %"
			       PRIu32 "\n", shf_esc(name), st.byte_budget,
			       st.ttl_default_ms);
		}
	}
	shf_detach(shf);
	free(name);
	return rc;
}

const struct shf_cmd shf_cmd_set = {
	.name = "set",
	.cmd = do_set,
	.help = "  set NAME [--budget BYTES] [--ttl-default MS]\n"
		"                             store cache settings in NAME (creates\n"
		"                             it); BYTES may end in K, M, G or T\n",
};

static int do_expire(int argc, char **argv)
{
	uint64_t max = 4096;
	char *name;
	uint32_t n;
	SHF *shf;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return usage_err("usage: shf expire NAME [MAX_SLOTS]");
	if (argc == 3 && (parse_num(argv[2], UINT32_MAX, &max) || !max))
		return usage_err("MAX_SLOTS wants 1 to %" PRIu32, UINT32_MAX);
	name = table_name(argv[1]);
	shf = table_open(name, 0);
	n = shf_expire(shf, (uint32_t)max);
	if (n == UINT32_MAX) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	printf("%s: %" PRIu32 " expired key%s reclaimed\n", shf_esc(name), n,
	       n == 1 ? "" : "s");
	shf_detach(shf);
	free(name);
	return stdout_check();
}

const struct shf_cmd shf_cmd_expire = {
	.name = "expire",
	.cmd = do_expire,
	.help = "  expire NAME [MAX_SLOTS]    reclaim the space of expired keys\n"
		"                             (MAX_SLOTS per shard, default 4096)\n",
};
