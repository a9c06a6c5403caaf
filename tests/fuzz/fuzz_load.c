/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_load.c - libFuzzer target: "shf load" of any byte stream never
 * crashes, hangs or allocates beyond what the stream holds; a damaged dump
 * is refused with a reason (or loads what came before the damage).
 *
 * The input is the dump.  It goes through shf_dump_open() and
 * shf_dump_load() (tools/shf-dumpfmt.c, the code of "shf load") into a
 * fresh table in a private directory (mkdtemp under /dev/shm), which is
 * then walked, checked and removed.
 *
 * SHF_FUZZ_SEEDS=DIR: write seed dumps (both versions, empty, with
 * expiries, long keys and values, and a few damaged ones) into DIR and
 * exit ("make fuzz-seeds").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shf.h"
#include "shf-dumpfmt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void)
{
	char file[128];

	snprintf(file, sizeof(file), "%s/L.shf", dir);
	unlink(file);
	rmdir(dir);
}

/* ---------------------------------------------------------------- seeds */

struct out {
	uint8_t buf[1 << 16];
	size_t len;
	XXH3_state_t *xs;
};

static void out_bytes(struct out *o, const void *p, size_t n, int hash)
{
	if (o->len + n > sizeof(o->buf))
		return;
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	if (hash)
		XXH3_64bits_update(o->xs, p, n);
}

static void out_u32(struct out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 24) };

	out_bytes(o, b, 4, 1);
}

static void out_u64(struct out *o, uint64_t v, int hash)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	out_bytes(o, b, 8, hash);
}

/* A dump as do_dump() (tools/shf-dump.c) writes it: n records, version v. */
static void make_dump(struct out *o, int v, uint32_t n, uint32_t vmax)
{
	char key[300], val[4096];
	struct timespec ts;
	uint64_t now;
	uint32_t i;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000u;
	o->len = 0;
	XXH3_64bits_reset(o->xs);
	out_bytes(o, v == 2 ? SHF_DUMP_MAGIC : SHF_DUMP_MAGIC_V1,
		  SHF_DUMP_MAGIC_LEN, 1);
	for (i = 0; i < n; i++) {
		uint32_t kl = (uint32_t)sprintf(key, "key-%u", i);
		uint32_t vl = vmax ? (i * 37) % vmax : 0;

		if (i % 11 == 10) { /* a key longer than 255 bytes */
			memset(key + kl, 'k', 300 - kl);
			kl = 300;
		}
		memset(val, 'a' + (int)(i % 26), vl);
		out_u32(o, kl);
		out_u32(o, vl);
		if (v == 2) /* none, long ago, in an hour, in 2100 */
			out_u64(o,
				i % 4 == 0 ? 0 :
				i % 4 == 1 ? 1000 :
				i % 4 == 2 ? now + 3600000 :
					     4102444800000ULL,
				1);
		out_bytes(o, key, kl, 1);
		out_bytes(o, val, vl, 1);
	}
	out_u32(o, SHF_DUMP_END);
	out_u32(o, SHF_DUMP_END);
	out_u64(o, n, 1);
	out_u64(o, XXH3_64bits_digest(o->xs), 0);
}

static void seed(const char *out, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out, name);
	f = fopen(path, "wbe");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void write_seeds(const char *out)
{
	static struct out o;

	o.xs = XXH3_createState();
	if (!o.xs)
		exit(1);
	mkdir(out, 0700);
	make_dump(&o, 2, 0, 0);
	seed(out, "v2-empty", o.buf, o.len);
	make_dump(&o, 2, 12, 200);
	seed(out, "v2-some", o.buf, o.len);
	make_dump(&o, 1, 12, 3000);
	seed(out, "v1-some", o.buf, o.len);
	make_dump(&o, 2, 24, 4000);
	seed(out, "v2-large", o.buf, o.len);
	/* damaged: a bit flipped in a value, cut short, a wild length */
	make_dump(&o, 2, 6, 100);
	o.buf[40] ^= 4;
	seed(out, "v2-flipped", o.buf, o.len);
	make_dump(&o, 2, 6, 100);
	seed(out, "v2-cut", o.buf, o.len / 2);
	make_dump(&o, 2, 3, 10);
	memset(o.buf + 12, 0xfe, 4);
	seed(out, "v2-wild-length", o.buf, o.len);
	seed(out, "not-a-dump", "SHFDUMP3\0\0\0\0", 12);
	XXH3_freeState(o.xs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("SHF_FUZZ_SEEDS");
	struct rlimit rl = { 256ULL << 20, 256ULL << 20 };

	(void)argc, (void)argv;
	if (seeds) {
		write_seeds(seeds);
		exit(0);
	}
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &rl);
	shf_init();
	snprintf(dir, sizeof(dir), "/dev/shm/shf-fuzz-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("fuzz_load: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

static int walk_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	volatile char sink;

	if (key_len)
		sink = key[key_len - 1];
	if (val_len)
		sink = val[val_len - 1];
	(void)sink, (void)uid;
	++*(uint64_t *)arg;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shf_dump_reader r;
	enum shf_dump_status st;
	uint64_t n = 0;
	FILE *f;
	SHF *shf;

	if (!size)
		return 0;
	f = fmemopen((void *)data, size, "rb");
	if (!f)
		return 0;
	st = shf_dump_open(&r, f);
	if (st == SHF_DUMP_OK) {
		shf = shf_attach(dir, "L", 0);
		if (!shf) {
			perror("fuzz_load: shf_attach");
			abort();
		}
		st = shf_dump_load(&r, shf, NULL, NULL);
		if (st == SHF_DUMP_CORRUPT && !r.what[0])
			abort(); /* a corrupt dump always says why */
		shf_iterate(shf, walk_cb, &n);
		if (n > r.records)
			abort(); /* more keys than records read */
		if (shf_check(shf, 0, NULL, NULL) != 0)
			abort(); /* a load never damages the table */
		free(shf_del(shf));
	}
	shf_dump_close(&r);
	fclose(f);
	return 0;
}
