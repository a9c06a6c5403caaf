/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_attach.c - libFuzzer target: whatever bytes lie in a table's file,
 * shf_attach_existing() and the calls on the handle it gives never crash,
 * hang or read outside the file.
 *
 * The input's first byte picks how the file X.shf is made in a private
 * directory (mkdtemp under /dev/shm):
 *  - even: the rest of the input is the file;
 *  - odd:  the file is a real table (made by the library at start-up, with
 *          keys of several sizes) patched by the rest of the input, read as
 *          records of u32 offset (modulo the file size), u8 length (1..32)
 *          and that many bytes; small inputs reach every part of the file.
 * When attached: gets by key and by UID, puts, updates, adds, deletes,
 * cache mode (TTL puts and reads, get-or-lease, eviction under a budget,
 * shf_expire), iteration, shf_check() with and without repair, stats;
 * then detach.  The template holds keys with TTLs and a lease, so that
 * patches reach those records too.
 *
 * Robust mutexes whose owner word names a thread that does not exist block
 * forever (reported; no kernel will ever mark such an owner dead), so the
 * bytes of the table's mutexes are put back as they were in the template
 * unless SHF_FUZZ_LOCKS=1.
 *
 * SHF_FUZZ_SEEDS=DIR: write a seed corpus into DIR and exit ("make
 * fuzz-seeds" keeps the small ones in tests/fuzz/corpus-attach/; the raw
 * table is only made at run time).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEMPLATE_KEYS 64
#define MUTEX_MAX 1024

static char dir[64];
static char file[128];
static uint8_t *tmpl;
static size_t tmpl_len;
static size_t mutex_off[MUTEX_MAX];
static size_t mutexes;
static int keep_locks;
static uint8_t *work;
static size_t work_cap;

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

static uint32_t key_of(char *buf, uint32_t i)
{
	return (uint32_t)sprintf(buf, "key-%u", i);
}

static uint32_t len_of(uint32_t i)
{
	return i % 13 == 0 ? 70000 : i % 5 == 0 ? 3000 : 1 + (i * 13) % 300;
}

static char vbuf[80000];

static int write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, p, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

/* A real table made by the library, read into tmpl. */
static void make_template(void)
{
	char key[32];
	struct stat st;
	uint32_t i;
	SHF *shf = shf_attach(dir, "X", 0);
	int fd;

	if (!shf) {
		perror("fuzz_attach: shf_attach");
		exit(1);
	}
	for (i = 0; i < TEMPLATE_KEYS; i++) {
		memset(vbuf, 'a' + i % 26, len_of(i));
		shf_make_hash(key, key_of(key, i));
		shf_put_key_val(shf, vbuf, len_of(i));
	}
	for (i = 0; i < TEMPLATE_KEYS; i += 3) { /* garbage, free lists */
		shf_make_hash(key, key_of(key, i));
		shf_del_key_val(shf);
	}
	for (i = 0; i < 16; i++) { /* cache mode: TTLs (some expired), a lease */
		shf_make_hash(key, (uint32_t)sprintf(key, "ttl-%u", i));
		shf_put_key_val_ttl(shf, "t", 1, i % 2 ? 1 : 3600000);
	}
	shf_make_hash("leased", 6);
	shf_get_key_val_copy_or_lease(shf, 3600000, 0);
	shf_detach(shf);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror("fuzz_attach: template");
		exit(1);
	}
	tmpl_len = (size_t)st.st_size;
	tmpl = malloc(tmpl_len);
	work = malloc(tmpl_len);
	work_cap = tmpl_len;
	if (!tmpl || !work ||
	    pread(fd, tmpl, tmpl_len, 0) != (ssize_t)tmpl_len) {
		perror("fuzz_attach: template");
		exit(1);
	}
	close(fd);
	unlink(file);
}

/*
 * Where the template's mutexes are: every place that holds the bytes of a
 * fresh unlocked robust process-shared mutex (but for __count and the
 * robust-list links, which glibc leaves behind after an unlock).
 */
static void find_mutexes(void)
{
	pthread_mutexattr_t a;
	pthread_mutex_t m;
	size_t off, scan = tmpl_len < (1u << 20) ? tmpl_len : (1u << 20);

	memset(&m, 0, sizeof(m));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&m, &a);
	pthread_mutexattr_destroy(&a);
	for (off = 0; off + sizeof(m) <= scan && mutexes < MUTEX_MAX; off += 8)
		if (!memcmp(tmpl + off, &m, 4) && /* __lock; not __count */
		    !memcmp(tmpl + off + 8, (char *)&m + 8,
			    offsetof(struct __pthread_mutex_s, __list) - 8))
			mutex_off[mutexes++] = off;
	if (getenv("SHF_FUZZ_VERBOSE"))
		fprintf(stderr, "fuzz_attach: %zu mutexes in the template\n",
			mutexes);
}

static void restore_mutexes(uint8_t *p, size_t len)
{
	size_t k;

	if (keep_locks)
		return;
	for (k = 0; k < mutexes; k++)
		if (mutex_off[k] + sizeof(pthread_mutex_t) <= len)
			memcpy(p + mutex_off[k], tmpl + mutex_off[k],
			       sizeof(pthread_mutex_t));
}

static void write_seeds(const char *out)
{
	char path[4096];
	uint8_t *buf = malloc(tmpl_len + 1);
	uint8_t patch[64];
	size_t n;

	if (!buf)
		exit(1);
	mkdir(out, 0700);
	/* the real table, raw */
	buf[0] = 0;
	memcpy(buf + 1, tmpl, tmpl_len);
	snprintf(path, sizeof(path), "%s/raw-table", out);
	if (write_file(path, buf, tmpl_len + 1))
		exit(1);
	/* its header page only */
	snprintf(path, sizeof(path), "%s/raw-header", out);
	if (write_file(path, buf, 4097))
		exit(1);
	/* the template with no patch, and with a few */
	snprintf(path, sizeof(path), "%s/patch-none", out);
	if (write_file(path, "\001", 1))
		exit(1);
	n = 0;
	patch[n++] = 1;
	/* offset 8 (the layout version), 4 bytes */
	memcpy(patch + n, (uint32_t[]){ 8 }, 4), n += 4;
	patch[n++] = 4;
	memcpy(patch + n, (uint32_t[]){ 1 }, 4), n += 4;
	/* a word in the shard descriptors */
	memcpy(patch + n, (uint32_t[]){ 8192 + 64 }, 4), n += 4;
	patch[n++] = 8;
	memset(patch + n, 0x41, 8), n += 8;
	snprintf(path, sizeof(path), "%s/patch-some", out);
	if (write_file(path, patch, n))
		exit(1);
	free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("SHF_FUZZ_SEEDS");

	(void)argc, (void)argv;
	keep_locks = getenv("SHF_FUZZ_LOCKS") &&
		     *getenv("SHF_FUZZ_LOCKS") == '1';
	shf_init();
	snprintf(dir, sizeof(dir), "/dev/shm/shf-fuzz-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("fuzz_attach: mkdtemp");
		exit(1);
	}
	snprintf(file, sizeof(file), "%s/X.shf", dir);
	atexit(cleanup);
	make_template();
	find_mutexes();
	if (seeds) {
		write_seeds(seeds);
		exit(0);
	}
	return 0;
}

static int iter_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	uint64_t *n = arg;
	volatile char sink;

	if (key_len)
		sink = key[key_len - 1];
	if (val_len)
		sink = val[val_len - 1];
	(void)sink, (void)uid;
	return ++*n > 20000;
}

static void use(SHF *shf, const uint8_t *data, size_t size)
{
	uint32_t i, uid, win = 0, tab = 0;
	struct shf_stats st;
	uint64_t n = 0;
	char key[32];

	for (i = 0; i < 40; i++) {
		uint32_t k = i * 7 % TEMPLATE_KEYS;

		uid = size >= 4 ?
			      (uint32_t)data[(i * 4) % size] << 24 |
				      (uint32_t)data[(i * 4 + 1) % size] << 8 |
				      data[(i * 4 + 2) % size] :
			      i;
		shf_make_hash(key, key_of(key, k));
		shf_get_key_val_copy(shf);
		shf_get_key_key_copy(shf);
		if (shf_get_key_val_addr(shf) == SHF_RET_KEY_FOUND &&
		    shf_val_len) {
			volatile char c = ((const char *)shf_val_addr)[shf_val_len - 1];
			(void)c;
		}
		shf_get_uid_val_copy(shf, uid);
		shf_get_uid_key_copy(shf, uid);
		switch (i % 6) {
		case 0:
			memset(vbuf, 'p', len_of(k + i));
			shf_put_key_val(shf, vbuf, len_of(k + i));
			break;
		case 1:
			shf_del_key_val(shf);
			break;
		case 2:
			shf_add_key_val(shf, 1);
			break;
		case 3:
			shf_upd_callback_copy("z", 1);
			shf_upd_key_val(shf);
			break;
		case 4:
			shf_del_uid_val(shf, uid);
			break;
		default:
			shf_make_hash(key, (uint32_t)sprintf(key, "new-%u", i));
			shf_put_key_val(shf, NULL, 100 + i * 500);
			shf_cas_key_val(shf, "", 0, "x", 1);
			break;
		}
	}
	/* cache mode, on whatever the file holds */
	shf_make_hash("ttl-1", 5);
	shf_get_key_ttl(shf);
	shf_make_hash("ttl-2", 5);
	shf_put_key_val_ttl(shf, "u", 1, 1);
	shf_make_hash("leased", 6);
	shf_get_key_val_copy_or_lease(shf, 1000, 0);
	shf_make_hash("mine", 4);
	shf_get_key_val_copy_or_lease(shf, 1000, 0);
	shf_put_key_val(shf, "m", 1);
	shf_set_byte_budget(shf, size >= 2 ? (uint64_t)data[1] << 8 : 4096);
	for (i = 0; i < 8; i++) {
		shf_make_hash(key, (uint32_t)sprintf(key, "evict-%u", i));
		shf_put_key_val(shf, vbuf, 200);
	}
	shf_expire(shf, 64);
	shf_set_byte_budget(shf, 0);
	shf_iterate(shf, iter_cb, &n);
	for (i = 0; i < 4; i++)
		shf_tab_copy_iterate(shf, &win, &tab);
	shf_get_stats(shf, &st, sizeof(st));
	shf_debug_get_garbage(shf);
	shf_check(shf, 0, NULL, NULL);
	shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	shf_make_hash("after-repair", 12);
	shf_put_key_val(shf, "v", 1);
	shf_get_key_val_copy(shf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p;
	size_t len;
	SHF *shf;

	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		/* the input is the file */
		len = size - 1;
		if (len > work_cap) {
			uint8_t *w = realloc(work, len);

			if (!w)
				return 0;
			work = w;
			work_cap = len;
		}
		memcpy(work, data + 1, len);
	} else {
		/* the template, patched */
		len = tmpl_len;
		memcpy(work, tmpl, len);
		for (p = data + 1; p + 5 <= data + size;) {
			uint32_t off, n;

			memcpy(&off, p, 4);
			n = p[4] % 32 + 1;
			p += 5;
			if (n > (size_t)(data + size - p))
				n = (uint32_t)(data + size - p);
			off %= (uint32_t)len;
			if (off + n > len)
				n = (uint32_t)(len - off);
			memcpy(work + off, p, n);
			p += n;
		}
	}
	restore_mutexes(work, len);
	if (write_file(file, work, len))
		return 0;
	shf = shf_attach_existing(dir, "X");
	if (shf) {
		use(shf, data, size);
		shf_detach(shf);
	}
	unlink(file);
	return 0;
}
