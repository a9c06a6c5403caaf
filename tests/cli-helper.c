// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cli-helper - what tests/check_cli.sh cannot do quickly with shf(1):
 *
 *   cli-helper fill DIR NAME N    put key-0 .. key-(N-1) = value-<i>
 *   cli-helper churn DIR NAME     put and delete other keys until killed
 *   cli-helper keys DIR NAME      print "key<TAB>value" of every pair
 *   cli-helper v1dump FILE        write a dump in version 1 of the format
 *                                 (before expiry times): old-1=one,
 *                                 old-2=two
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shf.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int print_cb(const char *key, uint32_t key_len, const char *val,
		    uint32_t val_len, uint32_t uid, void *arg)
{
	(void)uid;
	(void)arg;
	printf("%.*s\t%.*s\n", (int)key_len, key, (int)val_len, val);
	return 0;
}

static void le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* shf(1) DUMP FORMAT, version 1: no expiry in the records. */
static int v1dump(const char *file)
{
	static const char *const kv[][2] = { { "old-1", "one" },
					     { "old-2", "two" } };
	unsigned char b[256], *p = b;
	FILE *f;
	size_t i;

	memcpy(p, "SHFDUMP1", 8);
	p += 8;
	for (i = 0; i < 2; i++) {
		le(p, strlen(kv[i][0]), 4);
		le(p + 4, strlen(kv[i][1]), 4);
		p += 8;
		memcpy(p, kv[i][0], strlen(kv[i][0]));
		p += strlen(kv[i][0]);
		memcpy(p, kv[i][1], strlen(kv[i][1]));
		p += strlen(kv[i][1]);
	}
	le(p, UINT32_MAX, 4);
	le(p + 4, UINT32_MAX, 4);
	le(p + 8, 2, 8);
	p += 16;
	le(p, XXH3_64bits(b, (size_t)(p - b)), 8);
	p += 8;
	f = fopen(file, "wb");
	if (!f || fwrite(b, 1, (size_t)(p - b), f) != (size_t)(p - b) ||
	    fclose(f) != 0) {
		perror("cli-helper: v1dump");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char k[64], v[64];
	unsigned long i, n;
	SHF *shf;

	if (argc == 3 && !strcmp(argv[1], "v1dump"))
		return v1dump(argv[2]);

	if (argc < 4) {
		fprintf(stderr, "usage: cli-helper fill|churn|keys DIR NAME [N]\n");
		return 2;
	}
	shf_init();
	shf = !strcmp(argv[1], "keys") ? shf_attach_existing(argv[2], argv[3]) :
					  shf_attach(argv[2], argv[3], 0);
	if (!shf) {
		perror("cli-helper: attach");
		return 2;
	}
	if (!strcmp(argv[1], "fill") && argc == 5) {
		n = strtoul(argv[4], NULL, 10);
		for (i = 0; i < n; i++) {
			shf_make_hash(k, (uint32_t)snprintf(k, sizeof(k),
							     "key-%lu", i));
			if (shf_put_key_val(shf, v, (uint32_t)snprintf(v, sizeof(v),
				"value-%lu", i)) & SHF_RET_ERROR) {
				perror("cli-helper: put");
				return 2;
			}
		}
	} else if (!strcmp(argv[1], "churn")) {
		signal(SIGTERM, on_term);
		/* Tell the test we are writing, then write until told. */
		printf("churning\n");
		fflush(stdout);
		for (i = 0; !stop; i++) {
			shf_make_hash(k, (uint32_t)snprintf(k, sizeof(k),
							     "churn-%lu", i % 5000));
			if (i % 3 == 2)
				shf_del_key_val(shf);
			else
				shf_put_key_val(shf, v, (uint32_t)snprintf(v,
					sizeof(v), "churned-%lu", i));
		}
	} else if (!strcmp(argv[1], "keys")) {
		if (shf_iterate(shf, print_cb, NULL) & SHF_RET_ERROR) {
			perror("cli-helper: iterate");
			return 2;
		}
	} else {
		fprintf(stderr, "cli-helper: bad arguments\n");
		return 2;
	}
	shf_detach(shf);
	return 0;
}
