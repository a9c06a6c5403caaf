/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_ops.c - libFuzzer target: a damaged table, then a sequence of
 * calls on it; no call crashes, hangs or reads outside the file.
 *
 * At start-up the library makes one template table of each kind in a
 * private directory (mkdtemp under /dev/shm): small records, large
 * records, fixed lengths, cache mode (default TTL, byte budget, leases,
 * expired keys), queues with items on them, the log's region.  An input is
 *
 *   u8 kind | u16 (LE) patch bytes P | P bytes of patches | calls
 *
 * The file X.shf is the template of kind (modulo 6) patched by records of
 * u32 (LE) offset, u8 length (1..32) and that many bytes; an offset with
 * its top bit set lands in the first MiB (header, shard descriptors, the
 * first segments), any other is taken modulo the file's size.  Then each
 * 4 bytes of the rest are one call: opcode, and three argument bytes
 * (which key, which length, ...): puts of every mode, gets by key and UID,
 * deletes, adds, updates, batched gets, shf_iterate(), shf_check() (with
 * and without repair), expiry, leases, budgets, stats, queue pushes, pulls,
 * flushes and takes, log appends.
 *
 * The bytes of the template's mutexes are put back as they were unless
 * SHF_FUZZ_LOCKS=1: a damaged lock costs the waits that look at its holder
 * (milliseconds each; check_hostile covers them), which would only slow
 * the fuzzer down.
 *
 * SHF_FUZZ_SEEDS=DIR: write a seed corpus (one input per kind, with and
 * without patches) into DIR and exit ("make fuzz-seeds").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum kind { FK_SMALL, FK_LARGE, FK_FIXED, FK_CACHE, FK_QUEUE, FK_LOG, FK_N };
static const char *const kind_names[FK_N] = { "small", "large", "fixed",
					      "cache", "queue", "log" };
#define TKEYS 300
#define KLEN 12
#define FIXED_VLEN 8
#define QS 4
#define Q_ITEMS 256
#define MUTEX_MAX 1024
#define OPS_MAX 512

struct tmpl {
	uint8_t *buf;
	size_t len;
	size_t mutex_off[MUTEX_MAX];
	size_t mutexes;
};

static char dir[64];
static char file[128];
static struct tmpl tmpl[FK_N];
static int keep_locks, devnull = -1;
static uint32_t uids[16];
static char vbuf[80000];

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint32_t key_of(char *buf, uint32_t i)
{
	return (uint32_t)sprintf(buf, "k%011u", i);
}

static uint32_t vlen_of(enum kind k, uint32_t r)
{
	switch (k) {
	case FK_FIXED:
		return FIXED_VLEN;
	case FK_LARGE:
		return r % 31 == 0 ? 70000 + r % 100 : 1024 + (r * 13) % 3072;
	case FK_SMALL:
		return 8;
	default:
		return 1 + r % 64;
	}
}

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

/* Where the template's unlocked mutexes are (as fuzz_attach.c finds them). */
static void find_mutexes(struct tmpl *t)
{
	pthread_mutexattr_t a;
	pthread_mutex_t m;
	size_t off, scan = t->len < (1u << 20) ? t->len : (1u << 20);

	memset(&m, 0, sizeof(m));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&m, &a);
	pthread_mutexattr_destroy(&a);
	for (off = 0; off + sizeof(m) <= scan && t->mutexes < MUTEX_MAX;
	     off += 8)
		if (!memcmp(t->buf + off, &m, 4) &&
		    !memcmp(t->buf + off + 8, (char *)&m + 8,
			    offsetof(struct __pthread_mutex_s, __list) - 8))
			t->mutex_off[t->mutexes++] = off;
}

static void tmpl_make(enum kind k)
{
	struct tmpl *t = &tmpl[k];
	struct stat st;
	char key[32];
	uint32_t i;
	SHF *shf = shf_attach(dir, "X", 0);
	int fd;

	if (!shf)
		die("fuzz_ops: shf_attach");
	if (k == FK_FIXED)
		shf_set_is_fixed_len(shf, KLEN, FIXED_VLEN);
	if (k == FK_CACHE) {
		shf_set_ttl_default(shf, 600000);
		shf_set_byte_budget(shf, TKEYS * 40);
	}
	if (k == FK_QUEUE) {
		if (!shf_q_new(shf, QS, Q_ITEMS, 32, 2))
			die("fuzz_ops: shf_q_new");
		shf_q_new_name(shf, "qid-a", 5);
		for (i = 0; i < Q_ITEMS / 2; i++) {
			uint32_t qiid = shf_q_pull_tail(shf, 0);

			if (qiid != SHF_QIID_NONE)
				shf_q_push_head(shf, 1 + i % (QS - 1), qiid);
		}
	}
	if (k == FK_LOG) {
		if (shf_log_thread_new(shf, 4096, devnull) != SHF_RET_OK)
			die("fuzz_ops: shf_log_thread_new");
		for (i = 0; i < 20; i++)
			shf_log_append(shf, "template line\n", 14);
		shf_log_thread_del(shf);
	}
	for (i = 0; i < TKEYS; i++) {
		uint32_t len = vlen_of(k, i);

		memset(vbuf, 'a' + i % 26, len);
		shf_make_hash(key, key_of(key, i));
		if (k == FK_CACHE && i % 5 == 0)
			shf_put_key_val_ttl(shf, vbuf, len, i % 2 ? 1 : 600000);
		else
			shf_put_key_val(shf, vbuf, len);
	}
	for (i = 0; i < TKEYS; i += 7) {
		shf_make_hash(key, key_of(key, i));
		shf_del_key_val(shf);
	}
	if (k == FK_CACHE)
		for (i = 0; i < 4; i++) {
			shf_make_hash(key,
				      (uint32_t)sprintf(key, "lease-%u", i));
			shf_get_key_val_copy_or_lease(shf, 600000, 0);
		}
	shf_detach(shf);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		die("fuzz_ops: template");
	t->len = (size_t)st.st_size;
	t->buf = malloc(t->len);
	if (!t->buf || pread(fd, t->buf, t->len, 0) != (ssize_t)t->len)
		die("fuzz_ops: template");
	close(fd);
	unlink(file);
	find_mutexes(t);
}

static void write_seeds(const char *out)
{
	static const uint8_t calls[] = {
		/* op, a, b, c */
		0,  1,	2, 3, 1,  1,  0, 0, 2,	5, 0,	0, 3,  9, 0, 0,
		4,  0,	0, 0, 5,  7,  0, 0, 7,	3, 200, 0, 8,  4, 0, 0,
		9,  2,	0, 0, 10, 1,  0, 0, 11, 2, 3,	0, 12, 0, 0, 0,
		13, 16, 0, 0, 14, 64, 0, 0, 15, 0, 0,	0, 16, 0, 0, 0,
		17, 5,	0, 1, 18, 5,  0, 0, 19, 1, 9,	0, 20, 1, 9, 0,
		21, 1,	0, 0, 23, 0,  0, 0, 24, 3, 0,	0, 25, 1, 2, 0,
		26, 1,	2, 3, 27, 2,  0, 0, 28, 9, 0,	0, 29, 0, 0, 0,
		30, 5,	0, 0, 31, 3,  0, 0, 32, 9, 40,	0, 6,  0, 0, 0,
	};
	uint8_t buf[512];
	char path[4096];
	uint32_t k, n;

	mkdir(out, 0700);
	for (k = 0; k < FK_N; k++) {
		/* no damage */
		buf[0] = (uint8_t)k;
		buf[1] = buf[2] = 0;
		memcpy(buf + 3, calls, sizeof(calls));
		snprintf(path, sizeof(path), "%s/%s-calls", out, kind_names[k]);
		if (write_file(path, buf, 3 + sizeof(calls)))
			die(path);
		/* a few words of the shard descriptors and the first pages */
		n = 3;
		memcpy(buf + n, (uint8_t[]){ 0x40, 0x20, 0x00, 0x80, 8 }, 5);
		n += 5;
		memset(buf + n, 0xff, 8), n += 8;
		memcpy(buf + n, (uint8_t[]){ 0x10, 0x90, 0x02, 0x80, 4 }, 5);
		n += 5;
		memset(buf + n, 0x00, 4), n += 4;
		memcpy(buf + n, (uint8_t[]){ 0x00, 0x00, 0x0a, 0x80, 8 }, 5);
		n += 5;
		memcpy(buf + n, "\x41\x42\x43\x44\x45\x46\x47\x48", 8), n += 8;
		buf[1] = (uint8_t)(n - 3);
		buf[2] = 0;
		memcpy(buf + n, calls, sizeof(calls));
		n += sizeof(calls);
		snprintf(path, sizeof(path), "%s/%s-patched", out,
			 kind_names[k]);
		if (write_file(path, buf, n))
			die(path);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("SHF_FUZZ_SEEDS");
	struct rlimit rl = { 512ULL << 20, 512ULL << 20 };
	uint32_t k;

	(void)argc, (void)argv;
	keep_locks = getenv("SHF_FUZZ_LOCKS") &&
		     *getenv("SHF_FUZZ_LOCKS") == '1';
	/* a damaged table that wants ever more room gets EFBIG */
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &rl);
	shf_init();
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	snprintf(dir, sizeof(dir), "/dev/shm/shf-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		die("fuzz_ops: mkdtemp");
	snprintf(file, sizeof(file), "%s/X.shf", dir);
	atexit(cleanup);
	for (k = 0; k < FK_N; k++)
		tmpl_make((enum kind)k);
	if (seeds) {
		write_seeds(seeds);
		exit(0);
	}
	return 0;
}

/* ------------------------------------------------------------ the calls */

static int walk_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	uint64_t *n = arg;
	volatile char sink;

	if (key_len)
		sink = key[key_len - 1];
	if (val_len)
		sink = val[val_len - 1];
	(void)sink;
	uids[*n % 16] = uid;
	return ++*n > 20000;
}

static uint32_t upd_cb(const char *val, uint32_t val_len)
{
	if (val_len)
		((char *)val)[val_len - 1] ^= 1;
	return SHF_RET_OK;
}

static void touch(const void *p, uint32_t len)
{
	volatile char sink;

	if (p && len)
		sink = ((const volatile char *)p)[len - 1];
	(void)sink;
}

static void call_batch(SHF *shf, uint32_t n, uint32_t first)
{
	static char keys[16][32], buf[1 << 16];
	static const char *kp[16];
	static uint32_t kl[16], lens[16], buids[16];
	static uint64_t offs[16];
	uint32_t i;

	for (i = 0; i < n; i++) {
		kl[i] = key_of(keys[i], first + i);
		kp[i] = keys[i];
	}
	shf_get_key_val_copy_batch(shf, n, kp, kl, buf,
				   first % 3 ? sizeof(buf) : 64, offs, lens,
				   buids);
}

static void call(SHF *shf, enum kind k, const uint8_t *op)
{
	uint32_t a = op[1], b = op[2], c = op[3];
	uint32_t ki = a * 4 + (c & 3), len = vlen_of(k, b * 7 + c);
	uint32_t uid = c & 0x80 ? (uint32_t)a << 24 | b << 8 | c : uids[a % 16];
	struct shf_stats st;
	uint32_t win = a, tab = 0;
	uint64_t n = 0;
	char key[32], line[64];

	shf_make_hash(key, key_of(key, ki));
	memset(vbuf, 'a' + (int)(b % 26), len);
	switch (op[0] % 34) {
	case 0:
		shf_put_key_val(shf, vbuf, len);
		uids[a % 16] = shf_uid;
		break;
	case 1:
		shf_get_key_val_copy(shf);
		uids[a % 16] = shf_uid;
		break;
	case 2:
		shf_get_key_key_copy(shf);
		break;
	case 3:
		if (shf_get_key_val_addr(shf) == SHF_RET_KEY_FOUND)
			touch(shf_val_addr, shf_val_len);
		break;
	case 4:
		shf_get_uid_val_copy(shf, uid);
		shf_get_uid_key_copy(shf, uid);
		if (shf_get_uid_val_addr(shf, uid) == SHF_RET_KEY_FOUND)
			touch(shf_val_addr, shf_val_len);
		break;
	case 5:
		shf_ttl = c & 1 ? 0x61616161u : 0;
		shf_del_key_val(shf);
		break;
	case 6:
		shf_del_uid_val(shf, uid);
		break;
	case 7:
		shf_make_hash(key, (uint32_t)sprintf(key, "c%011u", a % 32));
		shf_add_key_val(shf, (long)b - 128);
		break;
	case 8:
		shf_upd_callback_set(upd_cb);
		shf_upd_key_val(shf);
		break;
	case 9:
		shf_cas_key_val(shf, vbuf, len, vbuf, vlen_of(k, c));
		break;
	case 10:
		shf_put_key_val_if_absent(shf, vbuf, len);
		break;
	case 11:
		shf_replace_key_val(shf, vbuf, len);
		break;
	case 12:
		shf_iterate(shf, walk_cb, &n);
		break;
	case 13:
		call_batch(shf, a % 17, b * 4);
		break;
	case 14:
		shf_expire(shf, a * 4 + 1);
		break;
	case 15:
		shf_check(shf, 0, NULL, NULL);
		break;
	case 16:
		shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
		break;
	case 17:
		shf_put_key_val_ttl(shf, vbuf, len, c % 3 ? 600000 : 1);
		break;
	case 18:
		shf_get_key_ttl(shf);
		break;
	case 19:
		shf_make_hash(key, (uint32_t)sprintf(key, "lease-%u", a % 8));
		shf_get_key_val_copy_or_lease(shf, 1 + b, 0);
		break;
	case 20:
		shf_make_hash(key, (uint32_t)sprintf(key, "lease-%u", a % 8));
		shf_put_key_val_if_leased(shf, vbuf, len, c);
		break;
	case 21:
		shf_set_byte_budget(shf, (uint64_t)a << (b % 24));
		break;
	case 22:
		shf_set_ttl_default(shf, (uint32_t)a << (b % 24));
		break;
	case 23:
		shf_get_stats(shf, &st, sizeof(st));
		shf_debug_get_garbage(shf);
		break;
	case 24:
		shf_tab_copy_iterate(shf, &win, &tab);
		break;
	case 25:
		uid = shf_q_pull_tail(shf, a % (QS + 1));
		if (uid != SHF_QIID_NONE) {
			touch(shf_qiid_addr, shf_qiid_addr_len);
			shf_q_push_head(shf, b % (QS + 1), uid);
		}
		break;
	case 26:
		shf_q_push_head_pull_tail(shf, a % (QS + 1), b, c % (QS + 1));
		break;
	case 27:
		shf_q_flush(shf, a % (QS + 2));
		break;
	case 28:
		uid = shf_q_take_item(shf, a * 2 + (b & 1));
		if (uid != SHF_QIID_NONE)
			shf_q_push_head(shf, c % QS, uid);
		break;
	case 29:
		shf_q_get_name(shf, "qid-a", 5);
		shf_q_new_name(shf, "qid-b", 5);
		shf_q_is_ready(shf);
		shf_q_get(shf);
		break;
	case 30:
		shf_log_append(shf, line,
			       (uint32_t)snprintf(line, sizeof(line),
						  "line %u %u\n", a, b));
		break;
	case 31:
		shf_upd_callback_copy(vbuf, len);
		shf_upd_uid_val(shf, uid);
		shf_add_uid_val(shf, uid, (long)b);
		break;
	case 32:
		/* a new key with a big value: chunk, extent, file growth */
		shf_make_hash(key, (uint32_t)sprintf(key, "big-%u", a));
		shf_put_key_val(shf, NULL,
				k == FK_FIXED ? FIXED_VLEN : b * 300);
		break;
	default:
		shf_put_key_val(shf, NULL, 0);
		shf_get_key_val_copy(shf);
		break;
	}
}

static void restore_mutexes(const struct tmpl *t, uint8_t *p, size_t len)
{
	size_t i;

	if (keep_locks)
		return;
	for (i = 0; i < t->mutexes; i++)
		if (t->mutex_off[i] + sizeof(pthread_mutex_t) <= len)
			memcpy(p + t->mutex_off[i], t->buf + t->mutex_off[i],
			       sizeof(pthread_mutex_t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *work;
	static size_t work_cap;
	const uint8_t *p, *end;
	const struct tmpl *t;
	enum kind k;
	size_t plen, nops;
	SHF *shf;

	if (size < 3)
		return 0;
	k = (enum kind)(data[0] % FK_N);
	t = &tmpl[k];
	plen = (size_t)data[1] | (size_t)data[2] << 8;
	if (plen > size - 3)
		plen = size - 3;
	if (work_cap < t->len) {
		uint8_t *w = realloc(work, t->len);

		if (!w)
			return 0;
		work = w;
		work_cap = t->len;
	}
	memcpy(work, t->buf, t->len);
	for (p = data + 3, end = data + 3 + plen; p + 5 <= end;) {
		uint32_t off, n;

		memcpy(&off, p, 4);
		n = p[4] % 32 + 1;
		p += 5;
		if (n > (size_t)(end - p))
			n = (uint32_t)(end - p);
		if (off & 0x80000000u)
			off = (off & 0xfffff) % (uint32_t)t->len;
		else
			off %= (uint32_t)t->len;
		if (off + n > t->len)
			n = (uint32_t)(t->len - off);
		memcpy(work + off, p, n);
		p += n;
	}
	restore_mutexes(t, work, t->len);
	if (write_file(file, work, t->len))
		return 0;
	memset(uids, 0, sizeof(uids));
	shf = shf_attach_existing(dir, "X");
	if (shf) {
		int logging = 0;

		if (k == FK_LOG)
			logging = shf_log_thread_new(shf, 0, devnull) ==
				  SHF_RET_OK;
		p = data + 3 + plen;
		for (nops = 0; p + 4 <= data + size && nops < OPS_MAX;
		     p += 4, nops++)
			call(shf, k, p);
		if (logging)
			shf_log_thread_del(shf);
		shf_detach(shf);
	}
	unlink(file);
	return 0;
}
