/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_hostile.c - whatever another process writes into a table's file,
 * a process using the table gets errors or wrong answers, never a signal,
 * an exit or a hang (libshf(7), SECURITY).
 *
 * Per trial: a table of one kind (small records, large records, fixed
 * lengths, cache mode with a default TTL, a byte budget and leases, queues
 * with items on them, the log's region) is copied from a template made at
 * start-up; a child attaches it and runs a random mix of every call that
 * kind has (gets, puts, deletes, adds, updates, UID gets, batched gets,
 * shf_iterate(), shf_check(), shf_expire(), leases, queue pushes, pulls and
 * flushes, log appends) for a while, then detaches and exits 0.  Damage is
 * 1 to 8 bytes at a random offset of the file (random values, a quarter of
 * them runs of 0x00 or 0xff), written with pwrite():
 *  - cold: up to a few thousand such writes before the child attaches;
 *  - live: one every ~200 us while the child runs.
 * The child must exit normally with 0 within 10 s (times
 * CK_TIMEOUT_MULTIPLIER); on a timeout it is SIGKILLed (after its stacks
 * are printed, where gdb is installed) and the trial fails.  A failing
 * trial prints its seed; SHF_HOSTILE_SEED=SEED CK_RUN_CASE=CASE
 * SHF_HOSTILE_TRIALS=1 replays it (live damage depends on timing too).
 *
 * SHF_HOSTILE_TRIALS: trials per case (make check: 8; make soak sets
 * SHF_SOAK_TRIALS, default 2000, spread over the 12 cases).  Each child may
 * grow its file to SHF_HOSTILE_FILE_MAX bytes at most (RLIMIT_FSIZE,
 * default 256 MiB); one trial's file exists at a time.
 *
 * A white-box test: the "findings" case includes lib/table.h to write the
 * exact words of the regressions that this torture found.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"
#include "table.h"
#include "q-internal.h"
#include "log-internal.h"

/* ------------------------------------------------------------- kinds */

enum kind {
	HK_SMALL,
	HK_LARGE,
	HK_FIXED,
	HK_CACHE,
	HK_QUEUE,
	HK_LOG,
	HK_NKINDS
};
static const char *const kind_names[HK_NKINDS] = {
	"small", "large", "fixed", "cache", "queue", "log",
};
/* Keys of each kind's template. */
static const uint32_t kind_keys[HK_NKINDS] = { 20000, 3000, 20000,
					       20000, 5000, 5000 };

#define KLEN 12 /* "k%011u" */
#define FIXED_VLEN 8
#define QS 4
#define Q_ITEMS 2000
#define Q_ITEM_SIZE 64
#define LOG_SIZE 65536
#define RUN_MS 250 /* how long a child works */
#define OPS_MAX 40000
#define FILE_MAX_DEFAULT (256ULL << 20)

struct tmpl {
	uint8_t *buf;
	size_t len;
};
static struct tmpl tmpl[HK_NKINDS];

static uint32_t trials_per_case = 8;
static uint64_t seed_given, seed_base;
static int have_seed;
static uint64_t file_max = FILE_MAX_DEFAULT;

/* ---------------------------------------------------------- randomness */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix64(*s);
}

static uint32_t below(uint64_t *s, uint32_t n)
{
	return n ? (uint32_t)(rnd(s) % n) : 0;
}

/* -------------------------------------------------------- keys, values */

static uint32_t key_of(char *buf, uint32_t i)
{
	return (uint32_t)sprintf(buf, "k%011u", i);
}

static uint32_t ckey_of(char *buf, uint32_t i)
{
	return (uint32_t)sprintf(buf, "c%011u", i);
}

/* Length of a value of kind k (seed r). */
static uint32_t vlen_of(enum kind k, uint64_t r)
{
	switch (k) {
	case HK_FIXED:
		return FIXED_VLEN;
	case HK_LARGE:
		if (r % 97 == 0)
			return 70000 + (uint32_t)(r % 5000);
		return 1024 + (uint32_t)(r % 3072);
	case HK_SMALL:
		return 8;
	default:
		return 1 + (uint32_t)(r % 64);
	}
}

static char vbuf[80000];

/* ----------------------------------------------------------- templates */

static int quiet_cb(const char *key, uint32_t key_len, const char *val,
		    uint32_t val_len, uint32_t uid, void *arg)
{
	(void)key, (void)key_len, (void)val, (void)val_len, (void)uid;
	++*(uint64_t *)arg;
	return 0;
}

static void tmpl_fill(SHF *shf, enum kind k)
{
	uint64_t r = 0x7e3a11 + k;
	char key[32];
	uint32_t i, n = kind_keys[k];

	for (i = 0; i < n; i++) {
		uint32_t len = vlen_of(k, rnd(&r));

		shf_test_pattern(vbuf, len, i);
		shf_make_hash(key, key_of(key, i));
		if (k == HK_CACHE && i % 7 == 0)
			shf_put_key_val_ttl(shf, vbuf, len, i % 2 ? 1 : 600000);
		else
			shf_put_key_val(shf, vbuf, len);
	}
	for (i = 0; i < n; i += 10) { /* free lists */
		shf_make_hash(key, key_of(key, i));
		shf_del_key_val(shf);
	}
	for (i = 0; i < 200; i++) { /* counters */
		shf_make_hash(key, ckey_of(key, i));
		shf_add_key_val(shf, (long)i + 1);
	}
}

/* Build the template of kind k into tmpl[k] (the file is then removed). */
static void tmpl_make(enum kind k)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], tag[32], key[32];
	struct stat st;
	uint64_t n = 0;
	SHF *shf;
	int fd;

	snprintf(tag, sizeof(tag), "tmpl-%s", kind_names[k]);
	shf_test_name(name, sizeof(name), tag);
	shf_test_file(path, sizeof(path), name);
	unlink(path);
	shf = shf_attach(shf_test_dir(), name, 0);
	if (!shf) {
		fprintf(stderr, "template %s: %s\n", name, strerror(errno));
		exit(99);
	}
	if (k == HK_FIXED)
		shf_set_is_fixed_len(shf, KLEN, FIXED_VLEN);
	if (k == HK_CACHE) {
		shf_set_ttl_default(shf, 600000);
		/* about two thirds of what the keys need: eviction runs */
		shf_set_byte_budget(shf, 20000ULL * 40);
	}
	if (k == HK_QUEUE) {
		uint32_t q, i;

		if (!shf_q_new(shf, QS, Q_ITEMS, Q_ITEM_SIZE, 2)) {
			fprintf(stderr, "template queue: %s\n",
				strerror(errno));
			exit(99);
		}
		shf_q_new_name(shf, "qid-a", 5);
		for (i = 0; i < Q_ITEMS / 2; i++) { /* items on every queue */
			uint32_t qiid = shf_q_pull_tail(shf, 0);

			if (qiid == SHF_QIID_NONE)
				break;
			q = 1 + i % (QS - 1);
			shf_q_push_head(shf, q, qiid);
		}
	}
	if (k == HK_LOG) {
		int dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
		uint32_t i;

		if (shf_log_thread_new(shf, LOG_SIZE, dn) != SHF_RET_OK) {
			fprintf(stderr, "template log: %s\n", strerror(errno));
			exit(99);
		}
		for (i = 0; i < 100; i++)
			shf_log_append(shf, "template line\n", 14);
		shf_log_thread_del(shf);
		close(dn);
	}
	tmpl_fill(shf, k);
	if (k == HK_CACHE) {
		uint32_t i;

		for (i = 0; i < 20; i++) { /* leases held by a live process */
			shf_make_hash(key,
				      (uint32_t)sprintf(key, "lease-%u", i));
			shf_get_key_val_copy_or_lease(shf, 600000, 0);
		}
	}
	shf_iterate(shf, quiet_cb, &n);
	shf_detach(shf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "template %s: %s\n", path, strerror(errno));
		exit(99);
	}
	tmpl[k].len = (size_t)st.st_size;
	tmpl[k].buf = malloc(tmpl[k].len);
	if (!tmpl[k].buf ||
	    pread(fd, tmpl[k].buf, tmpl[k].len, 0) != (ssize_t)tmpl[k].len) {
		fprintf(stderr, "template %s: read failed\n", path);
		exit(99);
	}
	close(fd);
	unlink(path);
}

/* ---------------------------------------------------------------- damage */

/*
 * One damage: 1..8 bytes at a random offset below size; a quarter of them
 * a run of 0x00 or 0xff, the others random.  Offsets: mostly anywhere,
 * some in the first 1 MiB (header, shard descriptors, the first
 * segments), where every word matters.
 */
static void damage_one(int fd, uint64_t size, uint64_t *rs)
{
	unsigned char b[8];
	uint32_t len = 1 + below(rs, 8), i;
	uint64_t off, r = rnd(rs);

	if (size <= 8)
		return;
	if (r % 4 == 0)
		memset(b, (r >> 8) & 1 ? 0xff : 0x00, len);
	else
		for (i = 0; i < len; i++)
			b[i] = (unsigned char)rnd(rs);
	if ((r >> 16) % 3 == 0 && size > (1u << 20))
		off = rnd(rs) % (1u << 20);
	else
		off = rnd(rs) % (size - len);
	if (pwrite(fd, b, len, (off_t)off) < 0)
		return;
}

/* ----------------------------------------------------------- the child */

struct child {
	enum kind k;
	int live;
	uint64_t seed;
	char name[SHF_TEST_NAME_MAX];
};

static uint32_t uids[64];

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
	if (uid != SHF_UID_NONE)
		uids[*n % 64] = uid;
	return ++*n > 100000;
}

static uint32_t upd_cb(const char *val, uint32_t val_len)
{
	if (val_len)
		((char *)val)[0] ^= 1;
	return SHF_RET_OK;
}

static void touch(const void *p, uint32_t len)
{
	volatile char sink;

	if (p && len)
		sink = ((const volatile char *)p)[len - 1];
	(void)sink;
}

/* One key-value operation of the mix. */
static void op_kv(SHF *shf, enum kind k, uint64_t *rs, uint32_t nkeys)
{
	char key[32], old[16];
	uint32_t i = below(rs, nkeys + nkeys / 4), len, op = below(rs, 24);
	uint32_t uid = uids[below(rs, 64)];

	shf_make_hash(key, key_of(key, i));
	len = vlen_of(k, rnd(rs));
	switch (op) {
	case 0:
	case 1:
	case 2:
	case 3:
		shf_get_key_val_copy(shf);
		if (shf_uid != SHF_UID_NONE)
			uids[i % 64] = shf_uid;
		break;
	case 4:
		shf_get_key_key_copy(shf);
		break;
	case 5:
		if (shf_get_key_val_addr(shf) == SHF_RET_KEY_FOUND)
			touch(shf_val_addr, shf_val_len);
		break;
	case 6:
	case 7:
	case 8:
		shf_test_pattern(vbuf, len, i);
		shf_put_key_val(shf, vbuf, len);
		if (shf_uid != SHF_UID_NONE)
			uids[i % 64] = shf_uid;
		break;
	case 9:
		shf_put_key_val_if_absent(shf, vbuf, len);
		break;
	case 10:
		shf_replace_key_val(shf, vbuf, len);
		break;
	case 11:
		memset(old, 0, sizeof(old));
		shf_cas_key_val(shf, old, k == HK_FIXED ? FIXED_VLEN : 4, vbuf,
				len);
		break;
	case 12:
	case 13:
		shf_del_key_val(shf);
		break;
	case 14:
		shf_upd_callback_set(upd_cb);
		shf_upd_key_val(shf);
		break;
	case 15:
	case 16:
		shf_make_hash(key, ckey_of(key, below(rs, 256)));
		if (below(rs, 2))
			shf_add_key_val(shf, (long)below(rs, 7) - 3);
		else
			shf_add_key_val_atom(shf, 1);
		break;
	case 17:
		shf_get_uid_val_copy(shf, uid);
		break;
	case 18:
		shf_get_uid_key_copy(shf, uid);
		break;
	case 19:
		if (shf_get_uid_val_addr(shf, uid) == SHF_RET_KEY_FOUND)
			touch(shf_val_addr, shf_val_len);
		break;
	case 20:
		shf_add_uid_val(shf, uid, 1);
		break;
	case 21:
		shf_upd_callback_set(upd_cb);
		shf_upd_uid_val(shf, uid);
		break;
	case 22:
		if (below(rs, 8) == 0)
			shf_del_uid_val(shf, uid);
		else
			shf_get_uid_val_copy(shf, (uint32_t)rnd(rs));
		break;
	default:
		shf_ttl = below(rs, 2) ? 0x12345678u : 0; /* conditional */
		shf_del_key_val(shf);
		break;
	}
}

/* Operations on the whole table: walks, batches, checks. */
static void op_table(SHF *shf, uint64_t *rs, uint32_t nkeys)
{
	static char bkeys[16][32];
	static const char *kp[16];
	static uint32_t kl[16], lens[16], buids[16];
	static uint64_t offs[16];
	static char buf[1 << 16];
	struct shf_stats st;
	uint32_t i, win = below(rs, 256), tab = 0;
	uint64_t n = 0;

	switch (below(rs, 8)) {
	case 0:
		shf_iterate(shf, walk_cb, &n);
		break;
	case 1:
		for (i = 0; i < 16; i++) {
			kl[i] = key_of(bkeys[i], below(rs, nkeys));
			kp[i] = bkeys[i];
		}
		shf_get_key_val_copy_batch(shf, 16, kp, kl, buf, sizeof(buf),
					   offs, lens, buids);
		break;
	case 2:
		shf_check(shf, 0, NULL, NULL);
		break;
	case 3:
		shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
		break;
	case 4:
		shf_expire(shf, 1 + below(rs, 512));
		break;
	case 5:
		shf_get_stats(shf, &st, sizeof(st));
		shf_debug_get_garbage(shf);
		break;
	case 6:
		shf_tab_copy_iterate(shf, &win, &tab);
		break;
	default:
		shf_get_key_val_copy_batch(shf, 0, NULL, NULL, NULL, 0, NULL,
					   NULL, NULL);
		break;
	}
}

/* Cache mode: TTLs, leases, budget. */
static void op_cache(SHF *shf, uint64_t *rs, uint32_t nkeys)
{
	char key[32];
	uint32_t i = below(rs, nkeys), len = vlen_of(HK_CACHE, rnd(rs));

	shf_make_hash(key, key_of(key, i));
	switch (below(rs, 7)) {
	case 0:
		shf_put_key_val_ttl(shf, vbuf, len, below(rs, 3) ? 60000 : 1);
		break;
	case 1:
		shf_get_key_ttl(shf);
		break;
	case 2:
		shf_make_hash(key, (uint32_t)sprintf(key, "lease-%u",
						     below(rs, 40)));
		if (shf_get_key_val_copy_or_lease(shf, 1 + below(rs, 50),
						  below(rs, 3)) ==
			    (SHF_RET_KEY_NONE | SHF_RET_LEASED) &&
		    below(rs, 2))
			shf_put_key_val_if_leased(shf, vbuf, len, 60000);
		break;
	case 3:
		shf_put_key_val_if_leased(shf, vbuf, len, 0);
		break;
	case 4:
		if (below(rs, 16) == 0)
			shf_set_byte_budget(shf, 400000 + below(rs, 800000));
		break;
	case 5:
		if (below(rs, 16) == 0)
			shf_set_ttl_default(shf, below(rs, 2) ? 600000 : 5);
		break;
	default:
		shf_expire(shf, below(rs, 64));
		break;
	}
}

static void op_queue(SHF *shf, uint64_t *rs)
{
	uint32_t q = below(rs, 8) ? below(rs, QS) : (uint32_t)rnd(rs);
	uint32_t qiid;

	switch (below(rs, 8)) {
	case 0:
	case 1:
		qiid = shf_q_pull_tail(shf, q);
		if (qiid != SHF_QIID_NONE) {
			touch(shf_qiid_addr, shf_qiid_addr_len);
			shf_q_push_head(shf, below(rs, QS), qiid);
		}
		break;
	case 2:
		qiid = shf_q_pull_tail(shf, q);
		if (qiid != SHF_QIID_NONE)
			shf_q_push_head_pull_tail(shf, below(rs, QS), qiid,
						  below(rs, QS));
		break;
	case 3:
		shf_q_flush(shf, q);
		break;
	case 4:
		qiid = shf_q_take_item(shf, below(rs, Q_ITEMS + 8));
		if (qiid != SHF_QIID_NONE)
			shf_q_push_head(shf, below(rs, QS), qiid);
		break;
	case 5:
		shf_q_get_name(shf, "qid-a", 5);
		shf_q_is_ready(shf);
		break;
	case 6:
		shf_q_get(shf);
		break;
	default:
		shf_q_push_head(shf, q, (uint32_t)rnd(rs) % (Q_ITEMS + 8));
		break;
	}
}

static void op_log(SHF *shf, uint64_t *rs)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "line %" PRIu64 " of a child\n",
			 rnd(rs) % 100000);

	if (below(rs, 8) == 0)
		shf_log_fprintf(stdout, "fprintf %u\n", below(rs, 1000));
	else
		shf_log_append(shf, line, (uint32_t)n);
}

static double test_ms(void)
{
	return shf_test_now() * 1e3;
}

/* The child: attach, work for RUN_MS, detach; 0 unless the test broke. */
static int child_run(const struct child *c)
{
	uint32_t nkeys = kind_keys[c->k], ops;
	uint64_t rs = c->seed ^ 0xc411d;
	struct rlimit rl = { file_max, file_max };
	double end;
	int dn = -1, logging = 0;
	SHF *shf;

	/* a table damaged to want more and more room gets EFBIG */
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &rl);
	shf_init();
	shf = shf_attach_existing(shf_test_dir(), c->name);
	if (!shf)
		return 0; /* refused: an error is a fine answer */
	if (c->k == HK_QUEUE)
		shf_q_get(shf);
	if (c->k == HK_LOG) {
		dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
		logging = shf_log_thread_new(shf, 0, dn) == SHF_RET_OK;
		if (!logging)
			shf_log_attach_existing(shf);
	}
	end = test_ms() + RUN_MS;
	for (ops = 0; ops < OPS_MAX; ops++) {
		uint32_t what = below(&rs, 100);

		if ((ops & 31) == 0 && test_ms() > end)
			break;
		if (what < 3)
			op_table(shf, &rs, nkeys);
		else if (c->k == HK_CACHE && what < 30)
			op_cache(shf, &rs, nkeys);
		else if (c->k == HK_QUEUE && what < 40)
			op_queue(shf, &rs);
		else if (c->k == HK_LOG && what < 30)
			op_log(shf, &rs);
		else
			op_kv(shf, c->k, &rs, nkeys);
	}
	if (logging)
		shf_log_thread_del(shf);
	else if (c->k == HK_LOG)
		shf_log_detach_existing(shf);
	shf_detach(shf);
	if (dn >= 0)
		close(dn);
	return 0;
}

/* ----------------------------------------------------------- the parent */

/* Print the stacks of a process that hangs (gdb, if installed). */
static void show_stacks(pid_t pid)
{
	char cmd[256], path[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = 0;
			fprintf(stderr, "hung child %d waits in %s\n", (int)pid,
				buf);
		}
		close(fd);
	}
	if (access("/usr/bin/gdb", X_OK) == 0) {
		snprintf(cmd, sizeof(cmd),
			 "/usr/bin/gdb -p %d -batch -nx -ex 'thread apply all "
			 "bt' </dev/null 2>/dev/null | grep -v '^\\[' >&2",
			 (int)pid);
		if (system(cmd) < 0)
			fprintf(stderr, "gdb: %s\n", strerror(errno));
	}
}

static uint64_t trial_seed(int kase, uint32_t i)
{
	if (have_seed)
		return i == 0 ? seed_given : mix64(seed_given + i);
	return mix64(seed_base + (uint64_t)kase * 1000003u + i);
}

/* Write the template of kind k as the trial's table; its descriptor. */
static int trial_file(enum kind k, const char *name)
{
	char path[SHF_TEST_PATH_MAX];
	size_t done = 0;
	int fd;

	shf_test_file(path, sizeof(path), name);
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	while (done < tmpl[k].len) {
		ssize_t n = write(fd, tmpl[k].buf + done, tmpl[k].len - done);

		ck_assert_msg(n > 0, "write %s: %s", path, strerror(errno));
		done += (size_t)n;
	}
	return fd;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void trial(enum kind k, int live, uint32_t i)
{
	int kase = (int)k * 2 + live;
	struct child c;
	char path[SHF_TEST_PATH_MAX];
	double limit = 10.0 * shf_test_multiplier(), t0, t;
	uint64_t rs, size, writes = 0;
	int fd, status = 0, done = 0;
	pid_t pid;

	memset(&c, 0, sizeof(c));
	c.k = k;
	c.live = live;
	c.seed = trial_seed(kase, i);
	rs = c.seed;
	snprintf(path, sizeof(path), "%s-%s", kind_names[k],
		 live ? "live" : "cold");
	shf_test_name(c.name, sizeof(c.name), path);
	fd = trial_file(k, c.name);
	size = file_size(fd);
	if (!live) {
		/* from one write to a few thousand, most often a few hundred */
		uint32_t nw = 1 + below(&rs, 1u << (1 + below(&rs, 12)));

		for (; writes < nw; writes++)
			damage_one(fd, size, &rs);
	}
	fflush(NULL);
	t0 = shf_test_now();
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fd);
		_exit(child_run(&c));
	}
	while (!done) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		t = shf_test_now() - t0;
		if (t > limit) {
			show_stacks(pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			done = -1;
			break;
		}
		if (live) {
			if ((writes & 63) == 0)
				size = file_size(fd);
			damage_one(fd, size, &rs);
			writes++;
			usleep(200);
		} else {
			usleep(2000);
		}
	}
	t = shf_test_now() - t0;
	close(fd);
	shf_test_file(path, sizeof(path), c.name);
	unlink(path);
	if (done < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr,
			"FAILED trial: kind %s, %s, %" PRIu64 " damage writes; "
			"replay: SHF_HOSTILE_SEED=%#" PRIx64
			" CK_RUN_CASE=%s-%s "
			"SHF_HOSTILE_TRIALS=1\n",
			kind_names[k], live ? "live" : "cold", writes, c.seed,
			kind_names[k], live ? "live" : "cold");
	ck_assert_msg(done == 0,
		      "seed %#" PRIx64 ": child hung (killed after "
		      "%.1f s)",
		      c.seed, t);
	ck_assert_msg(!WIFSIGNALED(status),
		      "seed %#" PRIx64 ": child died of signal %d (%s)", c.seed,
		      WTERMSIG(status), strsignal(WTERMSIG(status)));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "seed %#" PRIx64 ": child exited with %d", c.seed,
		      WEXITSTATUS(status));
}

START_TEST(test_small_cold)
{
	trial(HK_SMALL, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_small_live)
{
	trial(HK_SMALL, 1, (uint32_t)_i);
}
END_TEST
START_TEST(test_large_cold)
{
	trial(HK_LARGE, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_large_live)
{
	trial(HK_LARGE, 1, (uint32_t)_i);
}
END_TEST
START_TEST(test_fixed_cold)
{
	trial(HK_FIXED, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_fixed_live)
{
	trial(HK_FIXED, 1, (uint32_t)_i);
}
END_TEST
START_TEST(test_cache_cold)
{
	trial(HK_CACHE, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_cache_live)
{
	trial(HK_CACHE, 1, (uint32_t)_i);
}
END_TEST
START_TEST(test_queue_cold)
{
	trial(HK_QUEUE, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_queue_live)
{
	trial(HK_QUEUE, 1, (uint32_t)_i);
}
END_TEST
START_TEST(test_log_cold)
{
	trial(HK_LOG, 0, (uint32_t)_i);
}
END_TEST
START_TEST(test_log_live)
{
	trial(HK_LOG, 1, (uint32_t)_i);
}
END_TEST

/* Does CK_RUN_CASE (if set) name a case of kind k? */
static int kind_wanted(enum kind k)
{
	const char *c = getenv("CK_RUN_CASE");
	size_t n = strlen(kind_names[k]);

	return !c || !*c || (!strncmp(c, kind_names[k], n) && c[n] == '-');
}

/* ------------------------------------------------------------ findings */

/*
 * Regressions of what the torture found, each with the exact words it
 * damaged (white-box: lib/table.h).  A table of FIND_KEYS keys "k..." is
 * made and detached; the test damages its file with pwrite() and uses it.
 */
#define FIND_KEYS 2000

/*
 * The hash secret of the table whose file table_secret() read last
 * (find_table() does): each table hashes its keys with a secret of its own.
 */
static uint8_t secret[SHF_HASH_SECRET];
static int secret_read;

static void table_secret(const char *name)
{
	shf_test_pread(name, offsetof(struct hdr, hash_secret), secret,
		       sizeof(secret));
	secret_read = 1;
}

/* A key's hash in that table (see table.h). */
static uint64_t table_hash(const void *key, size_t len)
{
	ck_assert_msg(secret_read, "no table's hash secret read yet");
	return XXH3_64bits_withSecret(key, len, secret, sizeof(secret));
}

static void find_table(const char *tag, char *name, char *path)
{
	SHF *shf = shf_test_new(tag, name, SHF_TEST_NAME_MAX);
	char key[32];
	uint32_t i;

	for (i = 0; i < FIND_KEYS; i++) {
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_put_key_val(shf, "value", 5),
			      SHF_RET_KEY_PUT);
	}
	shf_detach(shf);
	shf_test_file(path, SHF_TEST_PATH_MAX, name);
	table_secret(name);
}

static void poke(const char *path, uint64_t off, const void *p, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static uint64_t shard_at(uint32_t si)
{
	return SHARDS_OFF + (uint64_t)si * sizeof(struct shard);
}

/* The UID of key "k<i>" in the table name (which holds it). */
static uint32_t uid_of_key(const char *name, uint32_t i)
{
	char key[32];
	SHF *shf = shf_attach_existing(shf_test_dir(), name);
	uint32_t uid;

	ck_assert_ptr_nonnull(shf);
	shf_make_hash(key, key_of(key, i));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	uid = shf_uid;
	shf_detach(shf);
	return uid;
}

/* The shard of key "k<i>" (the top 8 bits of its hash, see table.h). */
static uint32_t shard_of_key(uint32_t i)
{
	static char key[256];
	uint32_t len = key_of(key, i);

	return (uint32_t)(table_hash(key, len) >> 56);
}

/*
 * State (field 3), flags (9) and start time (22) of /proc/PID/stat; 0, or
 * -1 if there is no such line to read.
 */
static int stat_of(pid_t pid, char *state, unsigned int *flags,
		   unsigned long long *start)
{
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %c %*d %*d %*d %*d %*d %u %*u %*u %*u %*u %*u %*u"
			  " %*d %*d %*d %*d %*d %*d %llu",
		   state, flags, start) != 3)
		return -1;
	return 0;
}

/* A kernel thread's id, or 0 if none can be seen (a pid namespace). */
static pid_t kernel_thread(void)
{
	unsigned long long start;
	unsigned int flags;
	char state;
	pid_t tid;

	for (tid = 2; tid < 4096; tid++)
		if (stat_of(tid, &state, &flags, &start) == 0 &&
		    (flags & 0x00200000u))
			return tid;
	return 0;
}

/*
 * A shard's lock word naming a kernel thread (found by the live torture:
 * a random byte made it name a kworker): its maps are empty, which the
 * lock's wait took for "cannot tell" and waited 10 s for, then gave up
 * with ETIMEDOUT.  A kernel thread holds no lock of ours: the put goes on
 * at once.  The same for a word naming the waiting thread itself.
 */
START_TEST(test_lock_word_kernel_thread)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t words[2], w, si;
	double t0;
	SHF *shf;

	words[0] = (uint32_t)kernel_thread();
	words[1] = 0; /* this thread: set below */
	find_table("kthread", name, path);
	si = shard_of_key(7);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	words[1] = (uint32_t)syscall(SYS_gettid);
	for (w = 0; w < 2; w++) {
		uint32_t r;

		if (!words[w]) {
			printf("no kernel thread to be seen: skipped\n");
			continue;
		}
		poke(path, shard_at(si), &words[w], 4);
		shf_make_hash(key, key_of(key, 7));
		t0 = shf_test_now();
		errno = 0;
		r = shf_put_key_val(shf, "new", 3);
		ck_assert_msg(r == SHF_RET_KEY_PUT,
			      "lock word %u: put %#x (%s)", words[w], r,
			      strerror(errno));
		ck_assert_msg(shf_test_now() - t0 < 2.0 * shf_test_multiplier(),
			      "lock word %u held a put up for %.1f s", words[w],
			      shf_test_now() - t0);
	}
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

/*
 * fstat() calls of this program, the library's included (the executable's
 * definition comes first for libshf.so too): a damaged offset must not
 * cost a system call each time it is met.
 */
static _Atomic unsigned long fstat_calls;

__attribute__((visibility("default"))) int fstat(int fd, struct stat *st)
{
	static int (*real)(int, struct stat *);

	if (!real)
		real = (int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat");
	atomic_fetch_add(&fstat_calls, 1);
	return real ? real(fd, st) : (int)syscall(SYS_fstat, fd, st);
}

static uint64_t peek64(const char *path, uint64_t off)
{
	uint64_t v = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &v, 8, (off_t)off), 8);
	close(fd);
	return v;
}

/* The offset of shard si's first segment. */
static uint64_t first_segment(const char *path, uint32_t si)
{
	uint64_t dw =
		peek64(path, shard_at(si) + offsetof(struct shard, dir_word));

	return peek64(path, dw >> 6) & ~63ULL;
}

/*
 * Index slots that point past the end of the file (found by the live
 * torture: a run of 0xff in a slot): each one met made the library call
 * fstat() to see whether the file had grown, so that a walk over a
 * damaged segment cost a system call per slot, over and over.  The file
 * grows only with its header's size claim: while that is unchanged, no
 * new look.  (Since layout 7 a slot names a UID, whose slab directory
 * entry is what may point past the end; a segment of garbage still must
 * cost no system call a slot.)
 */
START_TEST(test_offsets_past_the_end)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint64_t seg, bad[SEG_BYTES / 8];
	unsigned long before;
	uint32_t i;
	SHF *shf;

	find_table("pastend", name, path);
	before = atomic_load(&fstat_calls);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	if (atomic_load(&fstat_calls) == before) {
		printf("fstat() is not interposed here: skipped\n");
		shf_detach(shf);
		unlink(path);
		return;
	}
	seg = first_segment(path, 3);
	for (i = 0; i < SEG_BYTES / 8; i++)
		bad[i] = ((uint64_t)i << 40) | ((1ULL << 38) - 1 - i);
	poke(path, seg, bad, sizeof(bad));
	before = atomic_load(&fstat_calls);
	for (i = 0; i < 20; i++)
		shf_check(shf, 0, NULL, NULL);
	ck_assert_msg(atomic_load(&fstat_calls) - before < 10,
		      "%lu fstat() calls for 20 checks of a damaged segment",
		      atomic_load(&fstat_calls) - before);
	shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	shf_test_check_sound(shf);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * A put over the byte budget evicts from its shard, then from the others.
 * With a count that no eviction brings down and directories that damage
 * made deep (found by the cache torture: puts took seconds), each put
 * walked two turns of every one of the 256 shards.  Now a put visits at
 * most a fixed number of slots in all, then goes ahead over the budget.
 */
START_TEST(test_eviction_bounded)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	const uint32_t depth = MAX_DEPTH;
	uint64_t end, dir, seg, dw, huge = 1ULL << 60, *d;
	uint32_t i, si;
	double t0, t;
	struct stat st;
	SHF *shf;
	int fd;

	/* a deeper directory is refused whole: nothing would be walked */
	ck_assert_uint_le(depth, MAX_DEPTH);
	find_table("evict", name, path);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	ck_assert_uint_eq(shf_set_byte_budget(shf, 100000), SHF_RET_OK);
	shf_detach(shf);
	/* a deep directory of empty segments past the data, for every shard */
	ck_assert_int_eq(stat(path, &st), 0);
	end = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	dir = end;
	seg = end + (8ULL << depth);
	ck_assert_int_eq(truncate(path, (off_t)(seg + SEG_BYTES)), 0);
	d = malloc(8ULL << depth);
	ck_assert_ptr_nonnull(d);
	for (i = 0; i < (1u << depth); i++)
		d[i] = seg | depth;
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, d, 8ULL << depth, (off_t)dir),
			 (ssize_t)(8ULL << depth));
	free(d);
	dw = (dir << 6) | depth;
	for (si = 0; si < NSHARDS; si++)
		ck_assert_int_eq(
			pwrite(fd, &dw, 8,
			       (off_t)(shard_at(si) +
				       offsetof(struct shard, dir_word))),
			8);
	ck_assert_int_eq(pwrite(fd, &huge, 8,
				(off_t)offsetof(struct hdr, cache_bytes)),
			 8);
	close(fd);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	t0 = shf_test_now();
	for (i = 0; i < 3; i++) {
		shf_make_hash(key, (uint32_t)sprintf(key, "new-%u", i));
		shf_put_key_val(shf, "v", 1);
	}
	t = shf_test_now() - t0;
	ck_assert_msg(t < 1.0 * shf_test_multiplier(),
		      "3 puts over a budget that eviction cannot reach took "
		      "%.2f s",
		      t);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * shf_expire() walks one turn of each shard's CLOCK hand, and took the
 * length of a turn from the directory's depth (found by review): one byte
 * that made a one-segment shard's depth the deepest the file allows sent
 * the hand round that segment 2^depth times, about a second a shard under
 * its lock.  A directory of that depth whose entries all name one segment
 * was walked as often.  Now a turn ends where it began, and is at most a
 * slot for each 5 bytes of the file.
 */
static void deepen(const char *path, uint32_t si, uint64_t fsz, int fd)
{
	uint64_t dw = peek64(path, shard_at(si) + offsetof(struct shard,
							 dir_word)),
		 off = dw >> 6;
	uint32_t depth = MAX_DEPTH;

	while (depth && off + (8ULL << depth) > fsz)
		depth--;
	dw = (off << 6) | depth;
	ck_assert_int_eq(pwrite(fd, &dw, 8,
				(off_t)(shard_at(si) +
					offsetof(struct shard, dir_word))),
			 8);
}

static double expire_time(const char *name)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), name);
	double t0;

	ck_assert_ptr_nonnull(shf);
	t0 = shf_test_now();
	shf_expire(shf, UINT32_MAX);
	t0 = shf_test_now() - t0;
	shf_detach(shf);
	return t0;
}

START_TEST(test_expire_bounded)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	const uint32_t depth = MAX_DEPTH, nbad = 8;
	uint64_t end, seg, dw, *d;
	struct stat st;
	uint32_t i;
	double t;
	SHF *shf;
	int fd;

	ck_assert_uint_le(depth, MAX_DEPTH); /* else refused, not walked */
	find_table("expire", name, path);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = 0; i < 100; i++) { /* expired at once: shf_expire() walks */
		shf_make_hash(key, (uint32_t)sprintf(key, "ttl-%u", i));
		ck_assert_uint_eq(shf_put_key_val_ttl(shf, "v", 1, 1),
				  SHF_RET_KEY_PUT);
	}
	shf_detach(shf);
	/* 2000 keys: every shard has one segment; make nbad of them deep */
	ck_assert_int_eq(stat(path, &st), 0);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (i = 0; i < nbad; i++)
		deepen(path, i, (uint64_t)st.st_size, fd);
	close(fd);
	t = expire_time(name);
	ck_assert_msg(t < 1.0 * shf_test_multiplier(),
		      "shf_expire() over %u shards of a damaged depth took "
		      "%.2f s", nbad, t);

	/* nbad / 2 shards' directories of 2^MAX_DEPTH entries naming one segment */
	ck_assert_int_eq(stat(path, &st), 0);
	end = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	ck_assert_int_eq(truncate(path, (off_t)(end + nbad / 2 * (8ULL << depth))),
			 0);
	d = malloc(8ULL << depth);
	ck_assert_ptr_nonnull(d);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (i = 0; i < nbad / 2; i++) {
		uint64_t k, dir = end + i * (8ULL << depth);

		seg = first_segment(path, nbad + i);
		for (k = 0; k < (1u << depth); k++)
			d[k] = seg | depth;
		ck_assert_int_eq(pwrite(fd, d, 8ULL << depth, (off_t)dir),
				 (ssize_t)(8ULL << depth));
		dw = (dir << 6) | depth;
		ck_assert_int_eq(pwrite(fd, &dw, 8,
					(off_t)(shard_at(nbad + i) +
						offsetof(struct shard,
							 dir_word))),
				 8);
	}
	free(d);
	close(fd);
	t = expire_time(name);
	ck_assert_msg(t < 1.0 * shf_test_multiplier(),
		      "shf_expire() over %u directories naming one segment "
		      "took %.2f s", nbad / 2, t);
	unlink(path);
}
END_TEST

/* The start time of pid (/proc/PID/stat, field 22); 0 if unknown. */
static uint64_t start_of(pid_t pid)
{
	unsigned long long start;
	unsigned int flags;
	char state;

	return stat_of(pid, &state, &flags, &start) == 0 ? start : 0;
}

/*
 * A child that waits until the caller closes *wfd (the write end of its
 * pipe), then exits 0: a live process for a word of the table to name.
 * Its start time in *start.
 */
static pid_t waiting_child(int *wfd, uint64_t *start)
{
	int pfd[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[0]);
	*wfd = pfd[1];
	*start = start_of(pid);
	ck_assert_uint_ne(*start, 0);
	return pid;
}

static uint64_t recoveries_of(SHF *shf)
{
	struct shf_stats st;

	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	return st.recoveries;
}

/*
 * A shard's lock word names its holder by thread id and start time.  A
 * word naming a live process that maps the table, with another start time
 * (the holder died and its number went to that process), is taken over
 * after one short wait; with that process's own start time the holder is
 * real, and a put waits for it 2 s, then fails with ETIMEDOUT, and the
 * next put at once.  Once that holder is killed (a zombie, not reaped
 * yet; the word left as it was), the next put takes the lock over.
 */
static volatile sig_atomic_t ticks;

static void tick(int sig)
{
	(void)sig;
	ticks++;
}

START_TEST(test_lock_word_start_time)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32], b;
	const struct itimerval every_5ms = { { 0, 5000 }, { 0, 5000 } },
			       off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa, old_sa;
	uint32_t si, r;
	uint64_t st, word, rec;
	int fds[2], status;
	double t0, t;
	SHF *shf;
	pid_t pid;

	find_table("start", name, path);
	si = shard_of_key(9);
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *s = shf_attach_existing(shf_test_dir(), name);

		if (!s || write(fds[1], "r", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &b, 1), 1);
	close(fds[0]);
	st = start_of(pid);
	if (!st) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		printf("no start time in /proc: skipped\n");
		unlink(path);
		return;
	}
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	rec = recoveries_of(shf);

	/* another start time: the holder is gone */
	word = (uint64_t)((uint32_t)(st + 1) ? (uint32_t)(st + 1) : 1u) << 32 |
	       (uint32_t)pid;
	poke(path, shard_at(si), &word, 8);
	shf_make_hash(key, key_of(key, 9));
	t0 = shf_test_now();
	r = shf_put_key_val(shf, "a", 1);
	t = shf_test_now() - t0;
	ck_assert_msg(r == SHF_RET_KEY_PUT, "put: %#x (%s)", r,
		      strerror(errno));
	ck_assert_msg(t < 1.0 * shf_test_multiplier(),
		      "a reused thread id held a put up for %.2f s", t);
	ck_assert_uint_eq(recoveries_of(shf), rec + 1);

	/*
	 * its own start time: a live holder that maps the table; the wait
	 * ends after 2 s even when a signal every 5 ms cuts its sleeps short
	 * (found by review: sleeps of 20 and 200 ms never ended)
	 */
	word = (uint64_t)(uint32_t)st << 32 | (uint32_t)pid;
	poke(path, shard_at(si), &word, 8);
	shf_make_hash(key, key_of(key, 9));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick;
	sa.sa_flags = SA_RESTART;
	ck_assert_int_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &every_5ms, NULL), 0);
	t0 = shf_test_now();
	errno = 0;
	r = shf_put_key_val(shf, "b", 1);
	t = shf_test_now() - t0;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	ck_assert_int_eq(sigaction(SIGALRM, &old_sa, NULL), 0);
	ck_assert_msg(t < 4.0 * shf_test_multiplier(),
		      "a wait cut short by signals lasted %.2f s", t);
	ck_assert_msg(ticks > 100, "only %d signals", (int)ticks);
	ck_assert_msg(r == SHF_RET_ERROR && errno == ETIMEDOUT,
		      "put under a live holder: %#x (%s)", r, strerror(errno));
	ck_assert_msg(t >= 1.5, "gave up after %.2f s", t);
	shf_make_hash(key, key_of(key, 9));
	t0 = shf_test_now();
	r = shf_put_key_val(shf, "c", 1);
	ck_assert_msg(r == SHF_RET_ERROR && errno == ETIMEDOUT &&
			      shf_test_now() - t0 < 1.0 * shf_test_multiplier(),
		      "second put under the same holder: %#x (%s) %.2f s", r,
		      strerror(errno), shf_test_now() - t0);

	/* the holder killed, not reaped: the word is the same */
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 500; i++) {
		unsigned long long zs;
		unsigned int zf;
		char state;

		if (stat_of(pid, &state, &zf, &zs) < 0 || state == 'Z')
			break;
		usleep(2000);
	}
	shf_make_hash(key, key_of(key, 9));
	r = shf_put_key_val(shf, "d", 1);
	ck_assert_msg(r == SHF_RET_KEY_PUT, "put after the holder died: %#x (%s)",
		      r, strerror(errno));
	ck_assert_uint_eq(recoveries_of(shf), rec + 2);
	shf_make_hash(key, key_of(key, 9));
	ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, 1);
	ck_assert_int_eq(shf_val[0], 'd');
	waitpid(pid, &status, 0);
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A holder in another time namespace (a container's, a restored
 * process's) sees its start time shifted by that namespace's boot time
 * offset; found by review: a waiter outside took its start time for
 * another thread's and took the lock over from the live holder after
 * 2 ms.  Lock words hold start times without the offset.  Here a process
 * in a namespace 100000 s ahead holds a shard's lock for 1 s (an update
 * callback); a put of this process waits for it, takes nothing over.
 * Needs CLONE_NEWTIME (Linux 5.6, root): skipped without.
 */
static int tns_pipe[2];

static uint32_t hold_lock_cb(const char *val, uint32_t val_len)
{
	(void)val, (void)val_len;
	if (write(tns_pipe[1], "h", 1) != 1)
		_exit(20);
	usleep(1000000);
	/* done, the lock still held: a put that waited finds this byte */
	if (write(tns_pipe[1], "d", 1) != 1)
		_exit(21);
	return SHF_RET_OK;
}

START_TEST(test_lock_holder_other_time_namespace)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32], b;
	struct pollfd pfd = { .events = POLLIN };
	uint32_t si, r;
	uint64_t rec;
	int status;
	double t0, t;
	SHF *shf;
	pid_t pid;

	find_table("timens", name, path);
	si = shard_of_key(13);
	ck_assert_int_eq(pipe(tns_pipe), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a new time namespace, entered by the children made after */
		int fd;
		pid_t gc;

		close(tns_pipe[0]);
#ifdef CLONE_NEWTIME
		if (unshare(CLONE_NEWTIME) < 0)
			_exit(77);
#else
		_exit(77);
#endif
		fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "boottime 100000 0", 17) != 17)
			_exit(77);
		close(fd);
		gc = fork();
		if (gc == 0) {
			SHF *c = shf_attach_existing(shf_test_dir(), name);

			if (!c)
				_exit(2);
			shf_make_hash(key, key_of(key, 13));
			shf_upd_callback_set(hold_lock_cb);
			_exit(shf_upd_key_val(c) == SHF_RET_KEY_FOUND ? 0 : 3);
		}
		if (gc < 0 || waitpid(gc, &status, 0) != gc)
			_exit(4);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 5);
	}
	close(tns_pipe[1]);
	if (read(tns_pipe[0], &b, 1) != 1) {
		close(tns_pipe[0]);
		status = shf_test_waitpid(pid, 30);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 77,
			      "the holder: status %#x", status);
		printf("no time namespace to make: skipped\n");
		unlink(path);
		return;
	}
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	rec = recoveries_of(shf);
	ck_assert_uint_eq(shard_of_key(13), si);
	shf_make_hash(key, key_of(key, 13));
	t0 = shf_test_now();
	r = shf_put_key_val(shf, "after", 5);
	t = shf_test_now() - t0;
	ck_assert_msg(r == SHF_RET_KEY_PUT, "put: %#x (%s)", r,
		      strerror(errno));
	/* the holder's callback had ended: the put waited for it */
	pfd.fd = tns_pipe[0];
	ck_assert_msg(poll(&pfd, 1, 0) == 1 && read(tns_pipe[0], &b, 1) == 1 &&
			      b == 'd',
		      "the put did not wait for the holder (%.3f s)", t);
	close(tns_pipe[0]);
	ck_assert_uint_eq(recoveries_of(shf), rec);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the holder: status %#x", status);
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Another process writes a shard's lock word while a writer holds it.
 * With glibc's robust mutexes (found by the live torture: SIGSEGV in
 * pthread_mutex_unlock() under shf_check()) the holder wrote through link
 * words inside the lock when it unlocked; the library's own lock keeps no
 * such words, and its release is an exchange with 0 whatever the word
 * says.  Here an update callback, which runs under the shard's lock,
 * writes junk over the word (naming no thread, then a free word, then
 * this very thread with a start time of 0): every release leaves the lock
 * free, so the next put takes it at once, and nobody counts a recovery.
 */
/*
 * Another process writes junk over the queues' lock while a thread holds
 * it (found by review): the lock was a glibc robust mutex, whose unlock
 * writes through link words inside it, a SIGSEGV in the holder (and the
 * holder's putting them back first, as the table's allocator lock does,
 * only narrows the window: a writer that keeps writing wins it).  The
 * queues now have the library's own lock word, which keeps nothing its
 * holder writes through.  Here one child takes and pushes an item over and
 * over (each call locks: a pre-queue of one) while another writes a junk
 * pointer where the mutex's links were (bytes 24 to 39 of the lock's
 * line); the first must finish, not crash.
 */
/* Where region name of the table starts in this mapping; NULL if none. */
static char *region_at(SHF *shf, const char *name)
{
	int i;

	for (i = 0; i < SHF_REGIONS_MAX; i++)
		if (!strcmp(shf->h->regions[i].name, name))
			return (char *)shf->base + shf->h->regions[i].off;
	return NULL;
}

/*
 * The lock users of the "links damaged while held" tests: setting up in
 * a child, a byte to ready_fd, then 2 s of calls that take the lock; 0, or
 * what failed.
 */
typedef int (*lock_user_fn)(SHF *shf, int ready_fd);

/*
 * Run user in one child while another writes a junk pointer into words 3
 * and 4 at lw (where a glibc mutex kept its links); the user must finish,
 * not crash or hang.
 */
static void links_damaged_while(SHF *shf, uint64_t *lw, lock_user_fn user,
				const char *who)
{
	pid_t upid, hostile;
	int status, i, pfd[2];
	char c;

	ck_assert_ptr_nonnull(lw);
	ck_assert_int_eq(pipe(pfd), 0);
	fflush(NULL);
	upid = fork();
	ck_assert_int_ge(upid, 0);
	if (upid == 0) {
		close(pfd[0]);
		_exit(user(shf, pfd[1]));
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	hostile = fork();
	ck_assert_int_ge(hostile, 0);
	if (hostile == 0) {
		double end = shf_test_now() + 2.0;

		while (shf_test_now() < end)
			for (i = 0; i < 5000; i++) /* the links */
				__atomic_store_n(&lw[3 + i % 2], 0x10,
						 __ATOMIC_RELAXED);
		_exit(0);
	}
	status = shf_test_waitpid(upid, 30);
	kill(hostile, SIGKILL);
	shf_test_waitpid(hostile, 30);
	ck_assert_msg(status != -1, "the %s hung", who);
	ck_assert_msg(!WIFSIGNALED(status), "the %s died of signal %d", who,
		      WTERMSIG(status));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the %s exited with %d", who, WEXITSTATUS(status));
}

enum { QL_ITEMS = 1 << 16 };

static int qlinks_user(SHF *shf, int ready_fd)
{
	double end;
	uint32_t x;

	shf_q_push_head(shf, 0, shf_q_take_item(shf, QL_ITEMS - 1));
	if (write(ready_fd, "x", 1) != 1)
		return 2;
	end = shf_test_now() + 2.0;
	while (shf_test_now() < end) {
		x = shf_q_take_item(shf, QL_ITEMS - 1);
		if (x != SHF_QIID_NONE)
			shf_q_push_head(shf, 0, x);
	}
	return 0;
}

START_TEST(test_queue_lock_links_damaged_while_held)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("qlinks", name, sizeof(name));
	char *q;

	ck_assert_ptr_nonnull(shf_q_new(shf, 1, QL_ITEMS, 8, 1));
	q = region_at(shf, Q_REGION);
	ck_assert_ptr_nonnull(q);
	links_damaged_while(shf,
			    (uint64_t *)(q + offsetof(struct q_hdr, lk)),
			    qlinks_user, "taker");
	shf_test_del(shf, name);
}
END_TEST

/*
 * The same for the table's allocator lock (found by reading, after the
 * queues'): a glibc robust mutex until layout 6, whose link words the
 * holder put back before unlocking, which only narrowed the window.  One
 * child puts and deletes a value of 100 KiB (an extent: the allocator's
 * lock each time) while another writes a junk pointer where the mutex's
 * links were (now two heads of the table's extent lists, which a damaged
 * value only makes it drop).
 */
static int alloclinks_user(SHF *shf, int ready_fd)
{
	static char big[100 << 10];
	double end = shf_test_now() + 2.0;

	if (write(ready_fd, "x", 1) != 1)
		return 3;
	while (shf_test_now() < end) {
		shf_make_hash("big", 3);
		if (shf_put_key_val(shf, big, sizeof(big)) & SHF_RET_ERROR)
			return 2;
		shf_make_hash("big", 3);
		shf_del_key_val(shf);
	}
	return 0;
}

START_TEST(test_alloc_lock_links_damaged_while_held)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("alloclinks", name, sizeof(name));

	links_damaged_while(shf,
			    (uint64_t *)((char *)shf->h +
					 offsetof(struct hdr, alloc_lk)),
			    alloclinks_user, "writer");
	shf_test_del(shf, name);
}
END_TEST

/* shf's log of 4 KiB, made by a drain thread since stopped: its header. */
static struct log_hdr *log_made(SHF *shf, int null)
{
	struct log_hdr *lh;

	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, null), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	lh = (struct log_hdr *)region_at(shf, LOG_REGION);
	ck_assert_ptr_nonnull(lh);
	return lh;
}

/*
 * Log positions off the 8-byte grid that every record keeps (found by
 * review): a writer at 4 bytes from the ring's end wrote its padding
 * record's header across the end, into whatever the file holds next.
 * Now such positions are corrupt: the writer starts again on the grid,
 * the drain drops what it cannot read.
 */
START_TEST(test_log_positions_off_the_grid)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("loggrid", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct log_hdr *lh = NULL;
	uint32_t *next;

	ck_assert_int_ge(null, 0);
	lh = log_made(shf, null);
	ck_assert_uint_eq(lh->size, 4096);
	/* the next thing in the file: a race line's region, right after */
	shf_race_init(shf, "n", 1);
	next = (uint32_t *)region_at(shf, "race:n");
	ck_assert_ptr_eq((char *)next, (char *)lh + LOG_HDR_SIZE + 4096);
	next[0] = 0x11111111;
	lh->read_pos = lh->write_pos = 4092; /* empty, off the grid */
	ck_assert_uint_eq(shf_log_attach_existing(shf), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "hello\n", 6), SHF_RET_OK);
	ck_assert_uint_eq(next[0], 0x11111111);
	ck_assert_uint_eq(lh->write_pos & 7, 0);
	ck_assert_uint_eq(shf_log_detach_existing(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A log whose maker was killed while setting it up (found by review): its
 * state stayed INIT and every later open waited 1 s and failed with EBUSY,
 * for ever.  Now the maker's claim names it, and an opener that finds the
 * maker gone sets the log up in its place.
 */
START_TEST(test_log_maker_killed)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("logmaker", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct log_hdr *lh = NULL;
	pid_t pid;

	ck_assert_int_ge(null, 0);
	lh = log_made(shf, null);
	pid = fork(); /* a maker that is gone */
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_ne(shf_test_waitpid(pid, 30), -1);
	lh->init_claim = (uint64_t)pid;
	lh->state = LOG_INIT;
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, null), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "again\n", 6), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Log writers that wait for a drain nobody will do, or for a lock word
 * that names a live process (found by review): a writer waited for room
 * holding the log's lock, and the lock never gave up on a live holder, so
 * a reader_pid naming a live stranger (here a process that became
 * sleep(1) by execve(), as a drainer may) with a full ring, or a
 * lock word naming a live process that maps the table, stopped every
 * append for good.  Now writers wait for room without the lock, the lock
 * gives up after the table's bound (ETIMEDOUT), and a reader that does not
 * map the table is no reader (EPIPE).
 */
START_TEST(test_log_waits_have_a_way_out)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("logwait", name, sizeof(name));
	int i, null = open("/dev/null", O_WRONLY | O_CLOEXEC), wfd;
	struct log_hdr *lh = NULL;
	uint64_t start;
	uint32_t rc = SHF_RET_OK;
	double t0;
	pid_t pid, sleeper;

	ck_assert_int_ge(null, 0);
	lh = log_made(shf, null);
	ck_assert_uint_eq(shf_log_attach_existing(shf), SHF_RET_OK);
	/* a reader that lives on in another program (as after execve()) */
	fflush(NULL);
	sleeper = fork();
	ck_assert_int_ge(sleeper, 0);
	if (sleeper == 0) {
		execlp("sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500; i++) { /* until it is sleep(1) */
		char comm[64] = "", path[64];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)sleeper);
		f = fopen(path, "re");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		if (!strcmp(comm, "sleep\n"))
			break;
		usleep(10000);
	}
	start = start_of(sleeper);
	ck_assert_uint_ne(start, 0);
	lh->reader_start = start;
	lh->reader_dead = 0;
	lh->reader_pid = sleeper;
	t0 = shf_test_now();
	for (i = 0; i < 1000 && rc == SHF_RET_OK; i++)
		rc = shf_log_append(shf, "a line of the log\n", 18);
	kill(sleeper, SIGKILL);
	shf_test_waitpid(sleeper, 30);
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_int_eq(errno, EPIPE);
	ck_assert(shf_test_now() - t0 < 5.0 * shf_test_multiplier());
	/* the lock word of a live process that maps the table */
	pid = waiting_child(&wfd, &start);
	lh->reader_pid = 0;
	lh->read_pos = lh->write_pos;
	__atomic_store_n(&lh->lk.w, (start & 0xffffffffULL) << 32 | (uint32_t)pid,
			 __ATOMIC_RELEASE);
	t0 = shf_test_now();
	rc = shf_log_append(shf, "blocked?\n", 9);
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert(shf_test_now() - t0 < 10.0 * shf_test_multiplier());
	close(wfd);
	shf_test_waitpid(pid, 30);
	__atomic_store_n(&lh->lk.w, 0, __ATOMIC_RELEASE);
	ck_assert_uint_eq(shf_log_detach_existing(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A reader word that names a live process which drains nothing (found by
 * review): the writer's own process, or another one that maps the table,
 * passed for the drain, and once the ring was full every writer waited
 * for it for ever.  Now a writer takes its own process, which runs no
 * drain thread on the log, for no reader (EPIPE at once), and gives up on
 * a reader that shows no progress for LOG_STALL_MS (ETIMEDOUT).
 */
START_TEST(test_log_reader_names_a_live_mapper)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("logidle", name, sizeof(name));
	int i, null = open("/dev/null", O_WRONLY | O_CLOEXEC), wfd;
	struct log_hdr *lh = NULL;
	uint32_t rc = SHF_RET_OK;
	uint64_t start;
	double t0, took;
	pid_t pid;

	ck_assert_int_ge(null, 0);
	lh = log_made(shf, null);
	ck_assert_uint_eq(shf_log_attach_existing(shf), SHF_RET_OK);
	/* this very process, which drains nothing */
	start = start_of(getpid());
	ck_assert_uint_ne(start, 0);
	lh->reader_start = start;
	lh->reader_dead = 0;
	lh->reader_pid = getpid();
	t0 = shf_test_now();
	for (i = 0; i < 1000 && rc == SHF_RET_OK; i++)
		rc = shf_log_append(shf, "a line of the log\n", 18);
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_int_eq(errno, EPIPE);
	ck_assert(shf_test_now() - t0 < 2.0 * shf_test_multiplier());
	/* another live process that maps the table (the ring is full) */
	pid = waiting_child(&wfd, &start);
	lh->reader_start = start;
	lh->reader_dead = 0;
	lh->reader_pid = pid;
	t0 = shf_test_now();
	rc = shf_log_append(shf, "blocked?\n", 9);
	took = shf_test_now() - t0;
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_msg(took >= LOG_STALL_MS / 1000.0 * 0.9 &&
			      took < (LOG_STALL_MS / 1000.0 + 5.0) *
					     shf_test_multiplier(),
		      "gave up after %.3f s", took);
	/* the next lines, while the reader still shows nothing: at once */
	t0 = shf_test_now();
	for (i = 0; i < 3; i++) {
		errno = 0;
		rc = shf_log_append(shf, "blocked too?\n", 13);
		ck_assert_uint_eq(rc, SHF_RET_ERROR);
		ck_assert_int_eq(errno, ETIMEDOUT);
	}
	took = shf_test_now() - t0;
	ck_assert_msg(took < 1.0 * shf_test_multiplier(),
		      "3 more lines took %.3f s", took);
	close(wfd);
	ck_assert_int_ne(shf_test_waitpid(pid, 30), -1);
	ck_assert_uint_eq(shf_log_detach_existing(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A region entry smaller than what its user needs (found by review): a
 * race line opened by name took the entry's size on trust, and an entry
 * of 0 bytes at the file's end made shf_race_start_timeout() add to a
 * word past the end: SIGBUS.  Now an entry smaller than asked is damage
 * (EBADMSG).
 */
START_TEST(test_region_smaller_than_asked)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("region", name, sizeof(name));
	struct stat st;
	int i, n = 0;

	shf_race_init(shf, "r", 1);
	ck_assert_int_eq(fstat(shf->fd, &st), 0);
	for (i = 0; i < SHF_REGIONS_MAX; i++)
		if (!strcmp(shf->h->regions[i].name, "race:r")) {
			shf->h->regions[i].size = 0;
			shf->h->regions[i].off = (uint64_t)st.st_size;
			n++;
		}
	ck_assert_int_eq(n, 1);
	errno = 0;
	shf_race_start_timeout(shf, "r", 1, 2, 100);
	ck_assert_int_eq(errno, EBADMSG);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A region entry off a page boundary (found by review): the offset was
 * only checked to lie inside the file, so a race line 2 bytes off made
 * shf_race_start_timeout() do its atomics on a misaligned word (a trap
 * on some CPUs, an abort under the sanitizers) and wait on it with a
 * futex, which says EINVAL at once: the wait spun for its whole timeout.
 * Now such an entry is damage (EBADMSG), told at once.
 */
START_TEST(test_region_off_a_page)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("region-page", name, sizeof(name));
	double t0, s;
	uint32_t rc;
	int i, n = 0;

	shf_race_init(shf, "r", 1);
	for (i = 0; i < SHF_REGIONS_MAX; i++)
		if (!strcmp(shf->h->regions[i].name, "race:r")) {
			shf->h->regions[i].off += 2;
			n++;
		}
	ck_assert_int_eq(n, 1);
	errno = 0;
	t0 = shf_test_now();
	rc = shf_race_start_timeout(shf, "r", 1, 2, 5000);
	s = shf_test_now() - t0;
	ck_assert_uint_eq(rc, SHF_RET_ERROR);
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_msg(s < 1.0 * shf_test_multiplier(),
		      "gave up after %.2f s", s);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Free region entries whose name bytes are damaged (found by review): a
 * new region's name was copied with strncpy() of SHF_REGION_NAME_MAX - 1
 * bytes, so a name that long kept the entry's last byte as it was, and
 * no look-up found the region again (ENOENT).  Now the name is cleared
 * first.
 */
START_TEST(test_region_name_over_junk)
{
	char name[SHF_TEST_NAME_MAX], line[SHF_REGION_NAME_MAX];
	SHF *shf = shf_test_new("region-name", name, sizeof(name));
	uint32_t len = SHF_REGION_NAME_MAX - 1 - 5; /* "race:" */
	int i, n = 0;

	memset(line, 'l', len);
	line[len] = '\0';
	for (i = 0; i < SHF_REGIONS_MAX; i++)
		if (!shf->h->regions[i].off)
			memset(shf->h->regions[i].name, 'x',
			       sizeof(shf->h->regions[i].name));
	shf_race_init(shf, line, len);
	for (i = 0; i < SHF_REGIONS_MAX; i++)
		if (shf->h->regions[i].off &&
		    !strncmp(shf->h->regions[i].name, "race:", 5)) {
			ck_assert_uint_eq(strnlen(shf->h->regions[i].name,
						  SHF_REGION_NAME_MAX),
					  SHF_REGION_NAME_MAX - 1);
			n++;
		}
	ck_assert_int_eq(n, 1);
	errno = 0;
	ck_assert_uint_eq(shf_race_start_timeout(shf, line, len, 1, 5000),
			  SHF_RET_OK);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The same for the log's lock (found by reading, after the queues'): it
 * was a glibc robust mutex too, unlocked plainly.  One child appends lines
 * while another writes a junk pointer where the mutex's links were.
 */
static int loglinks_user(SHF *shf, int ready_fd)
{
	double end = shf_test_now() + 2.0;

	if (write(ready_fd, "x", 1) != 1)
		return 3;
	while (shf_test_now() < end)
		if (shf_log_append(shf, "a line\n", 7) != SHF_RET_OK)
			return 2;
	return 0;
}

START_TEST(test_log_lock_links_damaged_while_held)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("loglinks", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	char *log;

	ck_assert_int_ge(null, 0);
	ck_assert_uint_eq(shf_log_thread_new(shf, 1u << 16, null), SHF_RET_OK);
	log = region_at(shf, LOG_REGION);
	ck_assert_ptr_nonnull(log);
	links_damaged_while(shf,
			    (uint64_t *)(log + offsetof(struct log_hdr, lk)),
			    loglinks_user, "writer");
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * shf_q_new() claims the queues' region in one word that names the
 * claimant (pid and start time), so that one killed at any instant while
 * making them is seen to be gone and its claim taken over (found by
 * review: a claimant killed between marking the region as being made and
 * writing its pid left pid 0, which every later shf_q_new() took for a
 * claimant not written yet: EBUSY for ever).  A live claimant's region is
 * EBUSY; once it is dead, the next shf_q_new() makes the queues; the same
 * for a claim by the pid alone, which a process without /proc makes.
 */
static char qclaim_name[SHF_TEST_NAME_MAX];

static int kid_q_new(int idx, void *arg)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), qclaim_name);
	void *p;

	(void)idx;
	if (!shf)
		return 2;
	p = shf_q_new(shf, 2, 64, 16, 1);
	if (arg) /* expect a live claimant */
		return !p && errno == EBUSY ? 0 : 3;
	return p && shf_q_get(shf) ? 0 : 4;
}

START_TEST(test_queue_claim_of_the_dead)
{
	SHF *shf = shf_test_new("qclaim", qclaim_name, sizeof(qclaim_name));
	struct q_hdr *qh;
	int wfd, status;
	uint64_t start;
	pid_t pid;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 64, 16, 1));
	qh = (struct q_hdr *)region_at(shf, Q_REGION);
	ck_assert_ptr_nonnull(qh);
	/* being made, by nobody named (the old window, or damage) */
	__atomic_store_n(&qh->state, Q_INIT, __ATOMIC_RELEASE);
	__atomic_store_n(&qh->init_pid, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&qh->init_start, 0, __ATOMIC_RELEASE);
	shf_assert_eq(shf_test_run(1, kid_q_new, NULL, 30), 0);
	/* being made by a live process, then by that process dead */
	pid = waiting_child(&wfd, &start);
	__atomic_store_n(&qh->state, Q_INIT, __ATOMIC_RELEASE);
	__atomic_store_n(&qh->init_pid, pid, __ATOMIC_RELEASE);
	__atomic_store_n(&qh->init_start, (uint64_t)pid | start << 22,
			 __ATOMIC_RELEASE);
	shf_assert_eq(shf_test_run(1, kid_q_new, (void *)1, 30), 0);
	/* a claim by the pid alone (its maker could not read /proc) */
	__atomic_store_n(&qh->init_start, (uint64_t)pid, __ATOMIC_RELEASE);
	shf_assert_eq(shf_test_run(1, kid_q_new, (void *)1, 30), 0);
	close(wfd);
	status = shf_test_waitpid(pid, 30);
	ck_assert(WIFEXITED(status));
	shf_assert_eq(shf_test_run(1, kid_q_new, NULL, 30), 0);
	/* the same, dead */
	__atomic_store_n(&qh->state, Q_INIT, __ATOMIC_RELEASE);
	__atomic_store_n(&qh->init_start, (uint64_t)pid, __ATOMIC_RELEASE);
	shf_assert_eq(shf_test_run(1, kid_q_new, NULL, 30), 0);
	shf_test_del(shf, qclaim_name);
}
END_TEST

/*
 * shf_q_del() marks the queues dead, then removes their region: a process
 * killed in between (or whose removal failed) left a region that no call
 * could use or remove, and every shf_q_new() failed (EBUSY, or EEXIST for
 * another size) for good.  Now shf_q_new() removes it and makes queues.
 */
START_TEST(test_queue_deleted_half_way)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("qdead", name, sizeof(name));
	struct q_hdr *qh;
	int size;

	for (size = 0; size < 2; size++) {
		ck_assert_ptr_nonnull(shf_q_new(shf, 2, 64, 16, 1));
		qh = (struct q_hdr *)region_at(shf, Q_REGION);
		ck_assert_ptr_nonnull(qh);
		__atomic_store_n(&qh->state, Q_DEAD, __ATOMIC_RELEASE);
		/* the same size, then another */
		ck_assert_ptr_nonnull(shf_q_new(shf, 2, 64 + size, 16, 1));
		ck_assert_ptr_nonnull(shf_q_get(shf));
		ck_assert_ptr_ne(region_at(shf, Q_REGION), (char *)qh);
		ck_assert_uint_ne(shf_q_pull_tail(shf, 0), SHF_QIID_NONE);
		shf_q_flush(shf, SHF_QID_NONE);
		shf_q_del(shf);
		ck_assert_ptr_null(region_at(shf, Q_REGION));
	}
	shf_test_del(shf, name);
}
END_TEST

/*
 * A process that binds to the queues through a second handle (another
 * mapping of the table) took a second slot where a lower one was free;
 * neither went back while it lived.  It keeps the one it has.
 */
static int kid_q_make(int idx, void *arg)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), arg);

	(void)idx;
	if (!shf || !shf_q_new(shf, 2, 64, 16, 1))
		return 2;
	return 0;
}

START_TEST(test_queue_one_slot_a_process)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("qslot", name, sizeof(name)), *h2;
	struct q_hdr *qh;
	uint32_t i, mine = 0;

	/* slot 0 to a child (gone), ours after it, then 0 given back */
	shf_assert_eq(shf_test_run(1, kid_q_make, name, 30), 0);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	shf_test_msleep(2 * Q_CHECK_MS);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	qh = (struct q_hdr *)region_at(shf, Q_REGION);
	ck_assert_int_eq(qh->slots[0].pid, 0);
	h2 = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(h2);
	ck_assert_uint_eq(shf_q_pull_tail(h2, 1), SHF_QIID_NONE);
	for (i = 0; i < Q_SLOTS; i++)
		mine += qh->slots[i].pid == getpid();
	ck_assert_uint_eq(mine, 1);
	shf_detach(h2);
	shf_test_del(shf, name);
}
END_TEST

static char cb_path[SHF_TEST_PATH_MAX];
static uint64_t cb_lock;
static uint32_t cb_calls;

static uint32_t damage_lock_cb(const char *val, uint32_t val_len)
{
	uint64_t junk[3] = { 0x4141414141414141ULL, 0,
			     (uint64_t)syscall(SYS_gettid) };
	int fd = open(cb_path, O_RDWR | O_CLOEXEC);

	(void)val, (void)val_len;
	if (fd >= 0) {
		if (pwrite(fd, &junk[cb_calls++ % 3], 8, (off_t)cb_lock) != 8)
			_exit(20);
		close(fd);
	}
	return SHF_RET_OK;
}

START_TEST(test_lock_word_damaged_while_held)
{
	char name[SHF_TEST_NAME_MAX], key[32];
	uint32_t i, si;
	int status;
	pid_t pid;

	find_table("links", name, cb_path);
	si = shard_of_key(11);
	cb_lock = shard_at(si) + offsetof(struct shard, lk);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *shf = shf_attach_existing(shf_test_dir(), name);
		struct shf_stats st;
		double t0;

		if (!shf)
			_exit(2);
		for (i = 0; i < 3; i++) {
			shf_make_hash(key, key_of(key, 11));
			shf_upd_callback_set(damage_lock_cb);
			if (shf_upd_key_val(shf) != SHF_RET_KEY_FOUND)
				_exit(3);
			/* the lock is free again, at once */
			t0 = shf_test_now();
			shf_make_hash(key, key_of(key, 11));
			if (shf_put_key_val(shf, "again", 5) != SHF_RET_KEY_PUT)
				_exit(4);
			if (shf_test_now() - t0 > 0.5 * shf_test_multiplier())
				_exit(5);
		}
		if (cb_calls != 3 ||
		    shf_get_stats(shf, &st, sizeof(st)) != SHF_RET_OK ||
		    st.recoveries != 0)
			_exit(6);
		shf_detach(shf);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(status != -1, "the child hung");
	ck_assert_msg(!WIFSIGNALED(status), "the child died of signal %d",
		      WTERMSIG(status));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child exited with %d", WEXITSTATUS(status));
	unlink(cb_path);
}
END_TEST

/*
 * A lock word naming a live thread whose maps cannot be read (here init's
 * threads; found by the cold and live torture: a byte made a shard's lock
 * name one): each call that needed the lock waited the whole 10 s before
 * ETIMEDOUT, so a process using the table hung in all but name.  Now the
 * wait is 2 s, and the process's next calls give up at once while the
 * lock shows the same word.  Where init's maps can be read (the holder is
 * then seen not to map the table) the puts simply succeed.
 */
START_TEST(test_unexaminable_holder_once)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t one = 1, si, i, n = 0, r;
	double t0, t;
	SHF *shf;

	find_table("unexaminable", name, path);
	si = shard_of_key(5);
	poke(path, shard_at(si), &one, 4);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	t0 = shf_test_now();
	/* keys of the table, then new ones: the shard may hold fewer */
	for (i = 0; i < FIND_KEYS + 100000 && n < 6; i++) {
		if (shard_of_key(i) != si)
			continue;
		n++;
		shf_make_hash(key, key_of(key, i));
		errno = 0;
		r = shf_put_key_val(shf, "x", 1);
		ck_assert_msg(r == SHF_RET_KEY_PUT || (r == SHF_RET_ERROR &&
						       errno == ETIMEDOUT),
			      "put: %#x (%s)", r, strerror(errno));
	}
	t = shf_test_now() - t0;
	ck_assert_uint_eq(n, 6);
	ck_assert_msg(t < 5.0 * shf_test_multiplier(),
		      "6 puts in a shard whose lock names init took %.1f s", t);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/* Write the journal field at off (of struct journal) of shard si. */
static void poke_journal(const char *path, uint32_t si, size_t off,
			 const void *p, size_t len)
{
	poke(path, shard_at(si) + offsetof(struct shard, j) + off, p, len);
}

/*
 * A journal the next locker replays, with words no writer wrote (found by
 * review, then by the torture's sanitizer runs): a split whose range wraps
 * around (start + length overflowing to a small number) made the replay
 * write the directory entries at a wild address; a split depth over 23
 * shifted by more than a word; a record offset off the 4-byte grid was
 * read as a word.  A split that is not one of this directory is dropped
 * now, and record offsets are checked for alignment first.
 */
START_TEST(test_journal_replay_damaged)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint64_t start = 0xf000000000000000ULL, len = (1ULL << 60) + 1;
	uint64_t seg, off;
	uint32_t one = 1, deep = 40, op = OP_NEW, si[3], i, k;
	SHF *shf;

	find_table("journal", name, path);
	si[0] = shard_of_key(1);
	for (k = 1, i = 2; k < 3; i++)
		if (shard_of_key(i) != si[0] &&
		    (k == 1 || shard_of_key(i) != si[1]))
			si[k++] = shard_of_key(i);
	seg = first_segment(path, si[0]);
	/* shard 0: a split range that wraps around */
	poke_journal(path, si[0], offsetof(struct journal, split_seg), &seg, 8);
	poke_journal(path, si[0], offsetof(struct journal, split_new), &seg, 8);
	poke_journal(path, si[0], offsetof(struct journal, split_start), &start,
		     8);
	poke_journal(path, si[0], offsetof(struct journal, split_len), &len, 8);
	poke_journal(path, si[0], offsetof(struct journal, split_state), &one,
		     4);
	/* shard 1: a split deeper than any tag */
	seg = first_segment(path, si[1]);
	start = 0;
	len = 1;
	poke_journal(path, si[1], offsetof(struct journal, split_seg), &seg, 8);
	poke_journal(path, si[1], offsetof(struct journal, split_start), &start,
		     8);
	poke_journal(path, si[1], offsetof(struct journal, split_len), &len, 8);
	poke_journal(path, si[1], offsetof(struct journal, split_depth), &deep,
		     4);
	poke_journal(path, si[1], offsetof(struct journal, split_state), &one,
		     4);
	/* shard 2: a new record two bytes off the grid */
	off = first_segment(path, si[2]) + 2;
	poke_journal(path, si[2], offsetof(struct journal, rec_new), &off, 8);
	poke_journal(path, si[2], offsetof(struct journal, op), &op, 4);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = 0; i < FIND_KEYS; i++) { /* every shard is locked */
		shf_make_hash(key, key_of(key, i));
		shf_put_key_val(shf, "v2", 2);
	}
	shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	shf_test_check_sound(shf);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * A journal that names a live key's UID as a new key's (OP_NEW, OP_TAKE)
 * or a deleted one's (OP_DEL over a slot that changed), written by a
 * process that may write the file (found by review): the next locker's
 * recovery freed the live key's cell, so that its acknowledged value was
 * lost and its slot led to a free cell.  Now recovery leaves a cell alone
 * while a slot of the index names its UID for its key.
 */
START_TEST(test_journal_names_a_live_uid)
{
	static const uint32_t ops[] = { OP_NEW, OP_TAKE, OP_DEL };
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t si, ul, o, i, n = 0, next = FIND_KEYS + 1;
	uint64_t zero = 0, slot, old;
	SHF *shf;

	find_table("livejournal", name, path);
	si = shard_of_key(5);
	ul = uid_of_key(name, 5) & 0xffffff;
	old = ul;
	/* a slot that holds no UID now: an OP_DEL over it looks committed */
	slot = first_segment(path, si) + 4 * (BUCKET_SLOTS - 1);
	for (o = 0; o < 3; o++) {
		poke_journal(path, si, offsetof(struct journal, uid), &ul, 4);
		poke_journal(path, si, offsetof(struct journal, rec_new), &zero,
			     8);
		poke_journal(path, si, offsetof(struct journal, rec_old), &zero,
			     8);
		poke_journal(path, si, offsetof(struct journal, slot_off), &slot,
			     8);
		poke_journal(path, si, offsetof(struct journal, slot_old), &old,
			     8);
		poke_journal(path, si, offsetof(struct journal, op), &ops[o], 4);
		shf = shf_attach_existing(shf_test_dir(), name);
		ck_assert_ptr_nonnull(shf);
		/*
		 * A put of a new key of the shard replays the journal: each
		 * pass looks past the key the pass before put.
		 */
		for (i = next; shard_of_key(i) != si; i++)
			;
		next = i + 1;
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_put_key_val(shf, "new", 3), SHF_RET_KEY_PUT);
		n++;
		shf_make_hash(key, key_of(key, 5));
		ck_assert_msg(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND,
			      "op %u: key 5 lost (%s)", ops[o], strerror(errno));
		ck_assert_mem_eq(shf_val, "value", 5);
		shf_assert_eq(shf_get_uid_val_copy(shf, shf_uid),
			      SHF_RET_KEY_FOUND);
		/* the forged counters, if any, mended */
		shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
		ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
		shf_test_check_sound(shf);
		shf_detach(shf);
	}
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	ck_assert_uint_eq(shf_test_keys(shf), FIND_KEYS + n);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A directory whose entries each claim a segment of their own, all the
 * same one (found by review; the fuzzer's walks were slow on such
 * inputs): shf_iterate() copied that segment's records once per entry and
 * shf_check() checked them once per entry, up to millions of times.  A
 * directory that names more segments than the file has pages is damaged:
 * the walk says EBADMSG, and the check stops the shard at as many
 * segments as the file could hold.
 */
START_TEST(test_directory_names_one_segment_often)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	const uint32_t depth = 14;
	uint32_t si, i, problems;
	uint64_t end, seg, dw, *d, n = 0;
	struct stat st;
	uint32_t r;
	SHF *shf;
	int fd;

	find_table("dirdup", name, path);
	si = shard_of_key(3);
	seg = first_segment(path, si);
	ck_assert_int_eq(stat(path, &st), 0);
	end = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	ck_assert_int_eq(truncate(path, (off_t)(end + (8ULL << depth))), 0);
	d = malloc(8ULL << depth);
	ck_assert_ptr_nonnull(d);
	for (i = 0; i < (1u << depth); i++)
		d[i] = seg | depth;
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, d, 8ULL << depth, (off_t)end),
			 (ssize_t)(8ULL << depth));
	free(d);
	close(fd);
	dw = (end << 6) | depth;
	poke(path, shard_at(si) + offsetof(struct shard, dir_word), &dw, 8);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	errno = 0;
	r = shf_iterate(shf, quiet_cb, &n);
	ck_assert_msg(r == SHF_RET_ERROR && errno == EBADMSG,
		      "iterate: %#x (%s), %llu pairs", r, strerror(errno),
		      (unsigned long long)n);
	problems = shf_check(shf, 0, NULL, NULL);
	/* each entry's slots once: 16384 x 8 and more; now the file's pages */
	ck_assert_msg(problems >= 1 && problems < 40000,
		      "shf_check: %u problems", problems);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * A directory range that does not start on its own boundary (found by
 * review): entry 0 of depth 2, entries 1-3 of depth 0, a range of four
 * from entry 1.  shf_check() read entry 4, past the directory: here the
 * directory ends the file, and that read was a SIGBUS.
 */
START_TEST(test_directory_range_off_its_boundary)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint32_t si, problems;
	uint64_t end, d[4], dw;
	struct stat st;
	SHF *shf;
	int fd;

	find_table("dirrange", name, path);
	si = shard_of_key(5);
	d[0] = first_segment(path, si) | 2;
	d[1] = d[2] = d[3] = 0;
	ck_assert_int_eq(stat(path, &st), 0);
	end = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	/* the directory's end is the file's, on a page boundary */
	ck_assert_int_eq(truncate(path, (off_t)(end + PAGE)), 0);
	end += PAGE - sizeof(d);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, d, sizeof(d), (off_t)end),
			 (ssize_t)sizeof(d));
	close(fd);
	dw = (end << 6) | 2;
	poke(path, shard_at(si) + offsetof(struct shard, dir_word), &dw, 8);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	problems = shf_check(shf, 0, NULL, NULL);
	ck_assert_msg(problems >= 1, "shf_check: %u problems", problems);
	shf_detach(shf);
	unlink(path);
}
END_TEST

#ifdef SHF_TEST_HOOKS
/*
 * An extent (a record of two pages) freed by a delete that was killed
 * before it ended, then handed by the table to another shard as its first
 * chunk, whose slab directory, outgrown, goes onto that shard's list of
 * 32-byte blocks (found by review of the mend that finishes half-done
 * pushes): recovery must not link it into the first shard's list as well,
 * where two writers could take it at once.
 */
START_TEST(test_extent_not_linked_twice)
{
	static char big[8192 - 8 - 12];
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	char tool[4096];
	const char *top = getenv("abs_top_builddir");
	uint32_t ka[2], kb[5], na = 0, nb = 0, i, A, B = 0;
	const uint64_t fh7 = offsetof(struct shard, free_head) + 7 * 8;
	uint64_t ha, hb;
	pid_t pid;
	int st;
	SHF *shf;

	if (!top || !*top) {
		printf("check_hostile: extent test skipped: no tools/shf\n");
		return;
	}
	snprintf(tool, sizeof(tool), "%s/tools/shf", top);
	shf = shf_test_new("extent", name, sizeof(name));
	shf_test_file(path, sizeof(path), name);
	table_secret(name);
	A = shard_of_key(0);
	for (i = 0; na < 2 || nb < 5; i++) {
		uint32_t si = shard_of_key(i);

		if (si == A && na < 2)
			ka[na++] = i;
		else if (si != A && nb < 5 && (!nb || si == B)) {
			B = si;
			kb[nb++] = i;
		}
	}
	memset(big, 'K', sizeof(big));
	shf_make_hash(key, key_of(key, ka[0]));
	shf_assert_eq(shf_put_key_val(shf, big, sizeof(big)), SHF_RET_KEY_PUT);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* the shf command, killed after freeing the extent */
		setenv("SHF_TEST_CRASH", "7:1", 1);
		execl(tool, "shf", "-d", shf_test_dir(), "del", name, key,
		      (char *)NULL);
		_exit(127);
	}
	st = shf_test_waitpid(pid, 30.0);
	ck_assert_msg(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		      "shf del: status %#x", st);
	/* five cell classes: five slabs, the directory grows past 32 bytes */
	for (i = 0; i < 5; i++) {
		shf_make_hash(key, key_of(key, kb[i]));
		shf_assert_eq(shf_put_key_val(shf, big, 2 + 4 * i),
			      SHF_RET_KEY_PUT);
	}
	shf_make_hash(key, key_of(key, ka[1])); /* recovery of shard A */
	shf_assert_eq(shf_put_key_val(shf, "a", 1), SHF_RET_KEY_PUT);
	ha = peek64(path, shard_at(A) + fh7);
	hb = peek64(path, shard_at(B) + fh7);
	ck_assert_msg(hb, "setup: shard %u has no free 32-byte block", B);
	/* A never freed a block of 32 bytes: any on its list is another's */
	ck_assert_msg(!ha, "block %#" PRIx64 " of shard %u's 32-byte list "
		      "on shard %u's list too", ha, B, A);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST
#endif

/*
 * A free list that loops back on itself in every class of every shard
 * (found by review: each walk of shf_check() was bounded by the blocks the
 * file could hold, but each of the 256 x 184 lists had that bound of its
 * own: a file's worth of steps 47104 times).  The walks of one check now
 * share one bound.
 */
START_TEST(test_free_list_cycles_everywhere)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	size_t nblk = (size_t)NSHARDS * NCLASS;
	uint64_t end, heads[NCLASS];
	uint32_t *blk, si, c;
	struct stat st;
	int fd, status;
	pid_t pid;

	find_table("freecycles", name, path);
	ck_assert_int_eq(stat(path, &st), 0);
	end = ((uint64_t)st.st_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	blk = calloc(nblk, REC_MIN);
	ck_assert_ptr_nonnull(blk);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (si = 0; si < NSHARDS; si++) {
		for (c = 0; c < NCLASS; c++) {
			uint32_t *w = blk + ((size_t)si * NCLASS + c) * 4;
			uint64_t off = end + ((uint64_t)si * NCLASS + c) * REC_MIN;

			w[0] = K_FREE << 24;
			w[1] = c;
			memcpy(w + 2, &off, 8); /* itself: a cycle */
			heads[c] = off;
		}
		ck_assert_int_eq(pwrite(fd, heads, sizeof(heads),
					(off_t)(shard_at(si) +
						offsetof(struct shard,
							 free_head))),
				 (ssize_t)sizeof(heads));
	}
	ck_assert_int_eq(pwrite(fd, blk, nblk * REC_MIN, (off_t)end),
			 (ssize_t)(nblk * REC_MIN));
	close(fd);
	free(blk);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *shf = shf_attach_existing(shf_test_dir(), name);

		if (!shf)
			_exit(2);
		_exit(shf_check(shf, 0, NULL, NULL) > 0 ? 0 : 3);
	}
	status = shf_test_waitpid(pid, 10);
	unlink(path);
	ck_assert_msg(status != -1, "shf_check walked the cycles for 10 s");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "shf_check: status %#x", status);
}
END_TEST

/* A call on damaged cells: it fails with EBADMSG. */
#define FAILS_EBADMSG(call, what)                                         \
	do {                                                              \
		uint32_t r_;                                              \
									  \
		errno = 0;                                                \
		r_ = (call);                                              \
		ck_assert_msg(r_ == SHF_RET_ERROR && errno == EBADMSG,    \
			      "%s: %#x (%s)", what, r_, strerror(errno)); \
	} while (0)

/*
 * The cells that UIDs name (layout 5), damaged: lists of free cells whose
 * heads name a live cell or a UID the shard never handed out, and a slab
 * directory entry that puts a slab outside the file or gives it no class.
 * New keys go in (a damaged list is dropped, a new slab taken), a get by
 * the UID says EBADMSG, and so does a get by the key (layout 7: its slot
 * names the UID), a replace of the key an error, and shf_check() finds
 * the damage and repairs the lists.
 */
START_TEST(test_cells_damaged)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t si, c, i, n, r, uid, ul,
		 list[CELL_CLASSES];
	uint64_t dir, e, bad;
	SHF *shf;
	int w;

	find_table("cells", name, path);
	si = shard_of_key(5);
	uid = uid_of_key(name, 5);
	ul = uid & 0xffffff;
	dir = peek64(path, shard_at(si) + offsetof(struct shard, uid_dir));
	e = peek64(path, dir + 8ULL * (ul / SLAB_CELLS));
	ck_assert_uint_ne(e >> 48, 0);

	for (c = 0; c < CELL_CLASSES; c++)
		list[c] = c & 1 ? ul + 1 : 0xfffff0u;
	poke(path, shard_at(si) + offsetof(struct shard, cell_free), list,
	     sizeof(list));
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = FIND_KEYS, n = 0; n < 20 && i < FIND_KEYS + 200000; i++) {
		if (shard_of_key(i) != si)
			continue;
		shf_make_hash(key, key_of(key, i));
		r = shf_put_key_val(shf, "vv", 1 + n % 3);
		ck_assert_msg(r == SHF_RET_KEY_PUT, "put %u: %#x (%s)", n, r,
			      strerror(errno));
		n++;
	}
	ck_assert_uint_eq(n, 20);
	shf_make_hash(key, key_of(key, 5));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_uid, uid);
	ck_assert_uint_gt(shf_check(shf, 0, NULL, NULL), 0);
	shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);

	for (w = 0; w < 2; w++) {
		bad = w == 0 ? (e & ~((1ULL << 48) - 1)) | (1ULL << 44)
			     : e & ((1ULL << 48) - 1);
		poke(path, dir + 8ULL * (ul / SLAB_CELLS), &bad, 8);
		FAILS_EBADMSG(shf_get_uid_val_copy(shf, uid), "get by UID");
		shf_make_hash(key, key_of(key, 5));
		FAILS_EBADMSG(shf_get_key_val_copy(shf), "get by key");
		FAILS_EBADMSG(shf_put_key_val(shf, "other", 5), "replace");
		ck_assert_uint_gt(shf_check(shf, 0, NULL, NULL), 0);
		poke(path, dir + 8ULL * (ul / SLAB_CELLS), &e, 8);
	}
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_assert_eq(shf_get_uid_val_copy(shf, uid), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "value", 5);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Layout 7 (found by review): a key whose value lives elsewhere, behind
 * its cell's forward, where the record names another UID (damage).  A get
 * and a delete by the UID said KEY_NONE, hiding it; now they, and a get
 * by the key, say EBADMSG, shf_check() finds it, and the other keys are
 * untouched.  Mended, the record is whole again.
 */
START_TEST(test_forward_to_another_uid)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	char big[600];
	uint32_t uid, ul, si, w0;
	uint64_t dir, e, cell, rec;
	SHF *shf;

	find_table("fwd", name, path);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	memset(big, 'b', sizeof(big));
	shf_make_hash(key, key_of(key, 7));
	shf_assert_eq(shf_put_key_val(shf, big, sizeof(big)), SHF_RET_KEY_PUT);
	uid = shf_uid;
	ul = uid & 0xffffff;
	si = uid >> 24;
	shf_detach(shf);
	dir = peek64(path, shard_at(si) + offsetof(struct shard, uid_dir));
	e = peek64(path, dir + 8ULL * (ul / SLAB_CELLS));
	cell = (e & ((1ULL << 48) - 1)) +
	       (uint64_t)(ul % SLAB_CELLS) * cls_bound((uint32_t)(e >> 48) - 1);
	ck_assert_uint_eq((uint32_t)peek64(path, cell), K_FWD << 24 | ul);
	rec = peek64(path, cell + 4);
	w0 = (uint32_t)peek64(path, rec);
	ck_assert_uint_eq(w0 & 0xffffff, ul); /* a record elsewhere names it */
	w0 ^= 1;
	poke(path, rec, &w0, 4);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	FAILS_EBADMSG(shf_get_uid_val_copy(shf, uid), "get by UID");
	FAILS_EBADMSG(shf_del_uid_val(shf, uid), "delete by UID");
	shf_make_hash(key, key_of(key, 7));
	FAILS_EBADMSG(shf_get_key_val_copy(shf), "get by key");
	shf_make_hash(key, key_of(key, 8));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_gt(shf_check(shf, 0, NULL, NULL), 0);

	w0 ^= 1;
	poke(path, rec, &w0, 4);
	shf_assert_eq(shf_get_uid_val_copy(shf, uid), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, sizeof(big));
	ck_assert_mem_eq(shf_val, big, sizeof(big));
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/* shf_check() callback: count the problems that name arg's words. */
struct said {
	const char *words;
	uint32_t n;
};

static void said_cb(const char *problem, void *arg)
{
	struct said *s = arg;

	if (strstr(problem, s->words))
		s->n++;
}

/*
 * A slot copied into an empty slot of its bucket, so that two slots name
 * one UID (found by review): shf_check() counted the key twice, found only
 * the key counter off by one, and a repair set it so.  Now it says which
 * slot names a UID again, a repair drops that slot, and the key counts
 * once; the key is found, and deleted, as before.  shf_iterate() reported
 * the key twice; now once.
 */
/*
 * Copy the slot of key "k<i>" of the table at path (2000 keys: each shard
 * has one segment) into an empty slot of its bucket: word, tag byte and
 * the tag's top bit.
 */
static void slot_copy_in_bucket(const char *name, const char *path,
				uint32_t i_key)
{
	uint32_t si = shard_of_key(i_key), ul, i, j, b, w, ref;
	uint8_t seg[SEG_BYTES], *bk = NULL;
	uint64_t off;
	int fd;

	ul = uid_of_key(name, i_key) & 0xffffff;
	off = first_segment(path, si);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, seg, SEG_BYTES, (off_t)off), SEG_BYTES);
	close(fd);
	for (b = 0; b < SEG_BUCKETS && !bk; b++)
		for (i = 0; i < BUCKET_SLOTS; i++) {
			memcpy(&w, seg + b * 64 + i * 4, 4);
			if ((w & 0xffffff) == ul + 1) {
				bk = seg + b * 64;
				break;
			}
		}
	ck_assert_ptr_nonnull(bk);
	b--;
	for (j = 0; j < BUCKET_SLOTS; j++) {
		memcpy(&w, bk + j * 4, 4);
		if (!w)
			break;
	}
	ck_assert_uint_lt(j, BUCKET_SLOTS);
	memcpy(bk + j * 4, bk + i * 4, 4);
	bk[B_TAGHI + j] = bk[B_TAGHI + i];
	memcpy(&ref, bk + B_REF, 4);
	ref |= ((ref >> (B_TOP + i)) & 1) << (B_TOP + j);
	memcpy(bk + B_REF, &ref, 4);
	poke(path, off + b * 64, bk, 64);
}

START_TEST(test_slot_copied)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	struct said said = { "named by another slot", 0 };
	struct shf_stats st;
	uint64_t pairs = 0;
	SHF *shf;

	find_table("slotcopy", name, path);
	slot_copy_in_bucket(name, path, 5);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	shf_make_hash(key, key_of(key, 5));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	/* a walk sees the key once (it saw it twice) */
	ck_assert_uint_eq(shf_iterate(shf, quiet_cb, &pairs), SHF_RET_OK);
	ck_assert_uint_eq(pairs, FIND_KEYS);
	ck_assert_uint_gt(shf_check(shf, 0, said_cb, &said), 0);
	ck_assert_uint_eq(said.n, 1);
	shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_uint_eq(st.keys, FIND_KEYS);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "value", 5);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The same copy, and no repair: a delete cleared the slot it found, and
 * the look-ups after it found the copy, which named the UID given up:
 * EBADMSG for the key from then on.  A delete clears the copies of its
 * slot in the key's bucket pair too.
 */
START_TEST(test_slot_copied_then_deleted)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	struct shf_stats st;
	uint32_t r;
	SHF *shf;

	find_table("slotcopydel", name, path);
	slot_copy_in_bucket(name, path, 5);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	shf_make_hash(key, key_of(key, 5));
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	errno = 0;
	r = shf_get_key_val_copy(shf);
	ck_assert_msg(r == SHF_RET_KEY_NONE, "get after the delete: %#x (%s)",
		      r, strerror(errno));
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	/* and the key comes back */
	shf_assert_eq(shf_put_key_val(shf, "again", 5), SHF_RET_KEY_PUT);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "again", 5);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_uint_eq(st.keys, FIND_KEYS);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/*
 * The same copy of a key whose own slot carries its use mark (a get under
 * a byte budget sets it), and the key expired and reclaimed (found by
 * review): the reclaim compared the copy with the marked value and left
 * it, naming the UID given up: EBADMSG for the key from then on.
 */
START_TEST(test_slot_copied_then_expired)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t r, i;
	SHF *shf;

	shf = shf_test_new("slotcopyttl", name, sizeof(name));
	ck_assert_ptr_nonnull(shf);
	shf_assert_eq(shf_set_byte_budget(shf, 1ULL << 30), SHF_RET_OK);
	shf_make_hash(key, key_of(key, 5));
	/* long enough for the set-up below on a loaded machine */
	shf_assert_eq(shf_put_key_val_ttl(shf, "value", 5,
					  (uint32_t)(2000 *
						     shf_test_multiplier())),
		      SHF_RET_KEY_PUT);
	shf_detach(shf);
	shf_test_file(path, SHF_TEST_PATH_MAX, name);
	table_secret(name);
	/* its UID looked up by a get: the key's own slot is marked */
	slot_copy_in_bucket(name, path, 5);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	shf_make_hash(key, key_of(key, 5));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	/* expired, then reclaimed by a walk of the shard */
	for (i = 0; i < 400 * shf_test_multiplier() &&
		    shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND;
	     i++)
		shf_test_msleep(10);
	shf_expire(shf, UINT32_MAX);
	errno = 0;
	shf_make_hash(key, key_of(key, 5));
	r = shf_get_key_val_copy(shf);
	ck_assert_msg(r == SHF_RET_KEY_NONE, "get after the reclaim: %#x (%s)",
		      r, strerror(errno));
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/*
 * Cells again (found by review): a slab count damaged below the slabs in
 * use (or past the end of the directory) made the next slab take an entry
 * of the directory in use, so that two keys had one UID and a put of one
 * overwrote the other; and a directory entry moved by one cell made a
 * delete free another key's cell.  Now a slab never takes an entry in
 * use, and a cell is written, forwarded or freed only for the UID it
 * carries.
 */
START_TEST(test_cells_damaged_counts)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t si, i, j, n = 0, w, r, next, ul;
	uint32_t idx[200], uid[200], x = UINT32_MAX, y = UINT32_MAX;
	uint64_t dir, e, moved, b;
	SHF *shf;

	find_table("cellcount", name, path);
	si = shard_of_key(5);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = 0; i < FIND_KEYS; i++) {
		if (shard_of_key(i) != si)
			continue;
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		idx[n] = i;
		uid[n++] = shf_uid;
	}
	/* key 5 at least (another of the 2000 in its shard: not always) */
	ck_assert_uint_ge(n, 1);
	for (w = 0; w < 2; w++) {
		next = w ? 0xffffffc1u : 0;
		poke(path, shard_at(si) + offsetof(struct shard, uid_next),
		     &next, 4);
		/* enough new keys of a class of their own for a new slab */
		for (i = FIND_KEYS + w * 100000, j = 0; j < 70 && n < 200; i++) {
			if (shard_of_key(i) != si)
				continue;
			shf_make_hash(key, key_of(key, i));
			r = shf_put_key_val(shf, "a-longer-value-of-its-own", 25);
			ck_assert_msg(r == SHF_RET_KEY_PUT, "put: %#x (%s)", r,
				      strerror(errno));
			idx[n] = i;
			uid[n++] = shf_uid;
			j++;
		}
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			ck_assert_msg(uid[i] != uid[j], "keys %u and %u: UID %#x",
				      idx[i], idx[j], uid[i]);
		shf_make_hash(key, key_of(key, idx[i]));
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		ck_assert_mem_eq(shf_val, idx[i] < FIND_KEYS ? "value" :
				 "a-longer-value-of-its-own", shf_val_len);
		shf_assert_eq(shf_get_uid_key_copy(shf, uid[i]),
			      SHF_RET_KEY_FOUND);
		ck_assert_mem_eq(shf_key, key, shf_key_len);
	}
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);

	/* two keys in neighbouring cells: X's entry moved onto Y's cell */
	for (i = 0; i < n && x == UINT32_MAX; i++)
		for (j = 0; j < n; j++)
			if (uid[j] == uid[i] + 1 && (uid[i] + 1) % SLAB_CELLS) {
				x = i;
				y = j;
				break;
			}
	ck_assert_uint_ne(x, UINT32_MAX);
	ul = uid[x] & 0xffffff;
	dir = peek64(path, shard_at(si) + offsetof(struct shard, uid_dir));
	e = peek64(path, dir + 8ULL * (ul / SLAB_CELLS));
	b = cls_bound((uint32_t)(e >> 48) - 1);
	moved = e + b;
	poke(path, dir + 8ULL * (ul / SLAB_CELLS), &moved, 8);
	shf_make_hash(key, key_of(key, idx[x]));
	/* X's slot now leads to Y's record, of another tag: found damaged */
	FAILS_EBADMSG(shf_del_key_val(shf), "del");
	poke(path, dir + 8ULL * (ul / SLAB_CELLS), &e, 8);
	shf_make_hash(key, key_of(key, idx[y]));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_uid, uid[y]);
	shf_assert_eq(shf_get_uid_val_copy(shf, uid[y]), SHF_RET_KEY_FOUND);
	/* nothing was freed: both keys are whole, and the check finds so */
	shf_make_hash(key, key_of(key, idx[x]));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_uid, uid[x]);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A free block whose place overlaps the record a replace copies its key
 * from (found by make soak: live damage made a shard's free list hand out
 * such a block, and rec_write() memcpy()ed the key onto itself, which is
 * undefined and stops an ASan build).  The free-list head of the class of
 * the key's new record is pointed at a block that starts 16 to 23 bytes
 * before the record; the put must end, whatever it returns.
 */
START_TEST(test_free_block_over_its_record)
{
	static const char key[] = "overlap-key-A-0123456789"; /* 24 bytes */
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint32_t klen = sizeof(key) - 1, si, c, w[4] = { K_FREE << 24 };
	uint64_t b, rs, f;
	struct stat st;
	char *map, *k;
	int fd, status;
	pid_t pid;
	SHF *shf;

	shf = shf_test_new("overlap", name, sizeof(name));
	shf_test_file(path, sizeof(path), name);
	table_secret(name);
	shf_make_hash(key, klen);
	shf_assert_eq(shf_put_key_val(shf, "12345678", 8), SHF_RET_KEY_PUT);
	shf_detach(shf);

	/* where its record is: the key's bytes are in the file once */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	ck_assert_ptr_ne(map, MAP_FAILED);
	k = memmem(map, (size_t)st.st_size, key, klen);
	ck_assert_ptr_nonnull(k);
	rs = (uint64_t)(k - map) - 6; /* a tiny record's 6-byte header */
	munmap(map, (size_t)st.st_size);

	/* a "free" block of the new record's class, 16 to 23 bytes before */
	c = cls_of(6 + klen + 8, &b);
	f = (rs - 16) & ~(uint64_t)7;
	w[1] = c;
	poke(path, f, w, sizeof(w));
	si = (uint32_t)(table_hash(key, klen) >> 56);
	poke(path,
	     shard_at(si) + offsetof(struct shard, free_head) + 8 * (uint64_t)c,
	     &f, 8);

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *s = shf_attach_existing(shf_test_dir(), name);

		if (!s)
			_exit(2);
		shf_make_hash(key, klen);
		(void)shf_put_key_val(s, "87654321", 8);
		(void)shf_check(s, 0, NULL, NULL);
		shf_detach(s);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 10);
	unlink(path);
	ck_assert_msg(status != -1, "the put hung");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the put over its own record: status %#x", status);
}
END_TEST

/* ================================================ audit findings === */

/* The slot of process pid in the queues qh; -1 for none. */
static int q_slot_of(const struct q_hdr *qh, pid_t pid)
{
	for (uint32_t i = 0; i < Q_SLOTS; i++)
		if (__atomic_load_n(&qh->slots[i].pid, __ATOMIC_ACQUIRE) == pid)
			return (int)i;
	return -1;
}

/*
 * In a child: the table name attached, and a slot taken in its queues
 * (a pull from queue 1, which is empty); exits 2 where that fails.
 */
static SHF *q_child_bind(const char *name)
{
	SHF *c = shf_attach_existing(shf_test_dir(), name);

	if (!c || !shf_q_get(c) || shf_q_pull_tail(c, 1) != SHF_QIID_NONE)
		_exit(2);
	return c;
}

/*
 * A puller killed between marking its items (own[]) and the store of its
 * ring's tail, q_ring_pull()'s commit, leaves them on the ring with its
 * slot's mark.  The dead slot was reclaimed and given to a new process,
 * which could then push such an item: the item was on two rings, pulled
 * twice.  The reclaim marks what it finds on a ring as being there now
 * (found by an audit).
 */
START_TEST(test_queue_pull_killed_before_commit)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("qstale", name, sizeof(name));
	uint32_t items = 16, seen[16] = { 0 }, x, n = 0, *own;
	int fds[2], slot_a = -1, status;
	struct q_hdr *qh;
	double t0;
	pid_t pid;

	ck_assert_ptr_nonnull(shf_q_new(shf, 2, items, 64, 1));
	qh = (struct q_hdr *)region_at(shf, Q_REGION);
	ck_assert_ptr_nonnull(qh);
	own = (uint32_t *)((char *)qh + qh->off_own);
	ck_assert_int_eq(pipe(fds), 0);
	/* A: takes a slot, marks item 5 (on ring 0) as its pull did, dies */
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int slot;

		q_child_bind(name);
		slot = q_slot_of(qh, getpid());
		if (slot < 0)
			_exit(3);
		__atomic_store_n(&own[5], Q_OWN((uint32_t)slot, 0u),
				 __ATOMIC_RELEASE);
		if (write(fds[1], &slot, sizeof(slot)) != sizeof(slot))
			_exit(4);
		_exit(0);
	}
	ck_assert_int_eq(read(fds[0], &slot_a, sizeof(slot_a)),
			 (ssize_t)sizeof(slot_a));
	status = shf_test_waitpid(pid, 30);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* its slot reclaimed: an idle puller looks for the dead */
	t0 = shf_test_now();
	while (__atomic_load_n(&qh->slots[slot_a].pid, __ATOMIC_ACQUIRE)) {
		ck_assert(shf_test_now() - t0 < 5.0 * shf_test_multiplier());
		shf_test_msleep(Q_CHECK_MS);
		ck_assert_uint_eq(shf_q_pull_tail(shf, 1), SHF_QIID_NONE);
	}
	/* B: given that slot, pushes item 5, which is on ring 0 */
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *c = q_child_bind(name);
		int e;

		if (q_slot_of(qh, getpid()) != slot_a)
			_exit(3);
		errno = 0;
		shf_q_push_head(c, 1, 5);
		e = errno;
		shf_q_flush(c, SHF_QID_NONE);
		_exit(e == EINVAL ? 0 : 4);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the push of an item on a ring: status %#x", status);
	/* every item once */
	shf_q_flush(shf, SHF_QID_NONE);
	for (uint32_t q = 0; q < 2; q++)
		while ((x = shf_q_pull_tail(shf, q)) != SHF_QIID_NONE) {
			ck_assert_uint_lt(x, items);
			ck_assert_msg(!seen[x]++, "item %u pulled twice", x);
			n++;
		}
	ck_assert_uint_eq(n, items);
	close(fds[0]);
	close(fds[1]);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A file lease (F_SETLEASE) that another user took on a table in a
 * shared folder held every attach, shf ls and sweep for the lease break
 * time (45 s) each (found by an audit).  The open does not wait now:
 * EAGAIN at once.
 */
START_TEST(test_attach_beside_a_file_lease)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	SHF *shf = shf_test_new("lease-f", name, sizeof(name));
	int ready[2], status;
	double t0;
	pid_t pid;
	char b;

	shf_test_file(path, sizeof(path), name);
	shf_detach(shf); /* a read lease needs no writer */
	ck_assert_int_eq(pipe(ready), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		signal(SIGIO, SIG_IGN); /* told of the break: stays */
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
			_exit(write(ready[1], "n", 1) == 1 ? 2 : 3);
		if (write(ready[1], "y", 1) != 1)
			_exit(4);
		pause();
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	if (b == 'y') {
		SHF *other;

		t0 = shf_test_now();
		errno = 0;
		other = shf_attach_existing(shf_test_dir(), name);
		ck_assert_msg(shf_test_now() - t0 < 5.0 * shf_test_multiplier(),
			      "the attach waited %.1f s", shf_test_now() - t0);
		if (other)
			shf_detach(other); /* a kernel that broke it at once */
		else
			ck_assert_int_eq(errno, EAGAIN);
	} else {
		printf("no file lease here: skipped\n");
	}
	kill(pid, SIGKILL);
	status = shf_test_waitpid(pid, 30);
	ck_assert(status != -1);
	close(ready[0]);
	close(ready[1]);
	unlink(path);
}
END_TEST

/*
 * A copy of a key's slot that another process wrote in a bucket no
 * look-up of the key goes to: eviction took it for the key, freed the
 * key's cell while the key's own slot still named it, and the next new
 * key of the shard got that cell; the key read as damage (EBADMSG) from
 * then on (found by an audit).  Eviction acts through the slot a look-up
 * finds only.
 */
START_TEST(test_evict_through_a_copied_slot)
{
	char name[SHF_TEST_NAME_MAX], key[32], zkey[32];
	SHF *h = shf_test_new("evcopy", name, sizeof(name));
	uint32_t b[2], tag = 0, ul = 0, real = UINT32_MAX, k, n, i, r, klen = 0;
	uint32_t zlen = 0;
	uint64_t hash = 0, dw, *seg = NULL;
	struct shard *sh = NULL;

	table_secret(name);
	/* a key whose two buckets leave bucket 0 free for the copy */
	for (n = 0; n < 1000; n++) {
		klen = (uint32_t)sprintf(key, "x%u", n);
		hash = table_hash(key, klen);
		tag = tag_of(hash);
		buckets_of(hash, tag, b);
		if (b[0] && b[1])
			break;
	}
	ck_assert_uint_lt(n, 1000);
	shf_make_hash(key, klen);
	ck_assert_uint_eq(shf_put_key_val(h, "xval", 4), SHF_RET_KEY_PUT);
	ul = shf_uid & 0xffffff;
	sh = &h->shards[hash >> 56];
	/* its shard's only segment (depth 0): the directory's one entry */
	dw = atomic_load(&sh->dir_word);
	ck_assert_uint_eq(dw & 63, 0);
	seg = (uint64_t *)(h->base +
			   (*(uint64_t *)(h->base + (dw >> 6)) & ~63ULL));
	for (k = 0; k < SEG_SLOTS; k++) {
		uint64_t v = slot_key(seg_slot(seg, k));

		if (v && slot_ul(v) == ul)
			real = k;
	}
	ck_assert_uint_ne(real, UINT32_MAX);
	ck_assert_uint_eq(slot_key(seg_slot(seg, 0)), 0);
	slot_st(seg_slot(seg, 0), slot_key(seg_slot(seg, real)));
	/* a put of that shard over a budget of one byte evicts */
	for (n = 0; n < 100000; n++) {
		zlen = (uint32_t)sprintf(zkey, "z%u", n);
		if (table_hash(zkey, zlen) >> 56 == hash >> 56)
			break;
	}
	ck_assert_uint_lt(n, 100000);
	ck_assert_uint_eq(shf_set_byte_budget(h, 1), SHF_RET_OK);
	shf_make_hash(zkey, zlen);
	ck_assert_uint_ne(shf_put_key_val(h, "zval", 4) & SHF_RET_ERROR,
			  SHF_RET_ERROR);
	ck_assert_uint_eq(shf_set_byte_budget(h, 0), SHF_RET_OK);
	/* new keys of the shard take the cells freed meanwhile */
	for (i = n + 1, k = 0; k < 8 && i < n + 200000; i++) {
		zlen = (uint32_t)sprintf(zkey, "z%u", i);
		if (table_hash(zkey, zlen) >> 56 != hash >> 56)
			continue;
		shf_make_hash(zkey, zlen);
		ck_assert_uint_eq(shf_put_key_val(h, "new", 3), SHF_RET_KEY_PUT);
		k++;
	}
	/* the key: there, or evicted through its own slot; never damage */
	shf_make_hash(key, klen);
	errno = 0;
	r = shf_get_key_val_copy(h);
	ck_assert_msg(!(r & SHF_RET_ERROR), "get of the key: %#x (%s)", r,
		      strerror(errno));
	if (r == SHF_RET_KEY_FOUND)
		ck_assert_mem_eq(shf_val, "xval", 4);
	shf_test_del(h, name);
}
END_TEST

/* The count of horses at race line "race:<name>" (its word's low half). */
static uint32_t race_at_line(SHF *shf, const char *name)
{
	char rname[64];
	uint64_t *w;

	snprintf(rname, sizeof(rname), "race:%s", name);
	w = (uint64_t *)region_at(shf, rname);
	ck_assert_ptr_nonnull(w);
	return (uint32_t)__atomic_load_n(w, __ATOMIC_ACQUIRE);
}

/* A horse in a child: 0 started, 10 gave up, 11 another error. */
static pid_t race_horse(const char *name, uint32_t timeout_ms)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *c = shf_attach_existing(shf_test_dir(), name);
		uint32_t rc;

		if (!c)
			_exit(2);
		rc = shf_race_start_timeout(c, "line", 4, 2, timeout_ms);
		_exit(rc == SHF_RET_OK ? 0 : errno == ETIMEDOUT ? 10 : 11);
	}
	return pid;
}

/*
 * A horse still waiting when its line was set up again took itself off
 * the new race's count when it gave up, so that the new race lacked an
 * arrival and never started (found by an audit).
 */
START_TEST(test_race_reset_while_a_horse_waits)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("racereset", name, sizeof(name));
	int status[3];
	pid_t pid[3];
	double t0;

	shf_race_init(shf, "line", 4);
	/* the first horse waits at the line, 2 s at most */
	pid[0] = race_horse(name, 2000);
	t0 = shf_test_now();
	while (race_at_line(shf, "line") < 1) {
		ck_assert(shf_test_now() - t0 < 10.0 * shf_test_multiplier());
		shf_test_msleep(1);
	}
	/* a new race on that line; its first horse waits */
	shf_race_init(shf, "line", 4);
	pid[1] = race_horse(name, 30000);
	while (race_at_line(shf, "line") < 1) {
		ck_assert(shf_test_now() - t0 < 10.0 * shf_test_multiplier());
		shf_test_msleep(1);
	}
	/* the first gives up (it took the second's place off the line) */
	status[0] = shf_test_waitpid(pid[0], 30);
	ck_assert(status[0] != -1 && WIFEXITED(status[0]));
	ck_assert_int_eq(WEXITSTATUS(status[0]), 10);
	/* the new race's second horse: both start */
	pid[2] = race_horse(name, 30000);
	for (int k = 1; k < 3; k++) {
		status[k] = shf_test_waitpid(pid[k], 60);
		ck_assert(status[k] != -1 && WIFEXITED(status[k]));
		ck_assert_msg(WEXITSTATUS(status[k]) == 0,
			      "horse %d of the new race: %d (10: gave up)", k,
			      WEXITSTATUS(status[k]));
	}
	shf_test_del(shf, name);
}
END_TEST

static void log_out_slow(char *line, uint32_t len)
{
	(void)line;
	(void)len;
	usleep(500); /* an output slower than the writers */
}

/*
 * The drain stopped (shf_log_thread_del(), shf_detach()) only when it
 * found the ring empty: while another process went on writing faster
 * than the output took lines, the stop waited as long as it wrote (found
 * by an audit).  It drains what was written by then, in a bounded number
 * of batches.
 */
START_TEST(test_log_stop_while_others_write)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("logstop", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC), status;
	double t0, took;
	pid_t pid;

	ck_assert_int_ge(null, 0);
	shf_log_output_set(log_out_slow);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, null), SHF_RET_OK);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* writes for 6 s, or until killed */
		SHF *c = shf_attach_existing(shf_test_dir(), name);
		double end = shf_test_now() + 6.0;

		if (!c || shf_log_attach_existing(c) != SHF_RET_OK)
			_exit(2);
		while (shf_test_now() < end)
			(void)shf_log_append(c, "a line of another process\n",
					     26);
		_exit(0);
	}
	shf_test_msleep(300);
	t0 = shf_test_now();
	shf_log_thread_del(shf);
	took = shf_test_now() - t0;
	kill(pid, SIGKILL);
	status = shf_test_waitpid(pid, 30);
	ck_assert(status != -1);
	shf_log_output_set(NULL);
	ck_assert_msg(took < 3.0 * shf_test_multiplier(),
		      "the stop took %.2f s", took);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

static void log_out_slower(char *line, uint32_t len)
{
	(void)line;
	(void)len;
	usleep(5000);
}

/*
 * A writer that cannot read the drain's /proc entry (another user's,
 * under hidepid=2) took the live drain for dead once the ring was full:
 * every writer got EPIPE from then on, and a second drain could start
 * beside the first (found by an audit).  Only proof of death counts.
 * Needs root and a mount namespace; skipped where they are not had.
 */
START_TEST(test_log_reader_hidden_from_a_writer)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("loghide", name, sizeof(name));
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC), status;
	struct log_hdr *lh;
	pid_t pid;

	ck_assert_int_ge(null, 0);
	if (geteuid() != 0) {
		shf_test_del(shf, name);
		close(null);
		return;
	}
	shf_log_output_set(log_out_slower);
	ck_assert_uint_eq(shf_log_thread_new(shf, 4096, null), SHF_RET_OK);
	lh = (struct log_hdr *)region_at(shf, LOG_REGION);
	ck_assert_ptr_nonnull(lh);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char pp[64];
		int i;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("proc", "/proc", "proc", 0, "hidepid=2") < 0 ||
		    setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(77);
		snprintf(pp, sizeof(pp), "/proc/%d/stat", (int)getppid());
		if (access(pp, F_OK) == 0)
			_exit(77); /* the drain is visible after all */
		/* the ring fills: a writer waits for room */
		for (i = 0; i < 300; i++)
			if (shf_log_append(shf, "a line from a hidden user, "
					   "in a log .........\n", 46) !=
			    SHF_RET_OK)
				_exit(errno == EPIPE ? 10 : 11);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 60);
	ck_assert(status != -1 && WIFEXITED(status));
	if (WEXITSTATUS(status) != 77) {
		ck_assert_msg(WEXITSTATUS(status) == 0,
			      "the hidden writer: %d (10: EPIPE)",
			      WEXITSTATUS(status));
		ck_assert_uint_eq(lh->reader_dead, 0);
	} else {
		printf("no mount namespace or hidepid: skipped\n");
	}
	shf_log_thread_del(shf);
	shf_log_output_set(NULL);
	close(null);
	shf_test_del(shf, name);
}
END_TEST

/*
 * One shard's directory names another shard's segment (only the first
 * shard damaged): a repair walked the segment as its own, found every
 * slot wrong for it, and dropped the sound shard's keys; a second repair
 * still found the damage (found by an audit).  The range that names a
 * segment whose slots are all another's, or one already named, gets a
 * new, empty segment.
 */
START_TEST(test_repair_of_a_segment_named_twice)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t sa, sb, i, lost = 0, in_sa = 0, p1, p2;
	uint64_t seg, dwb;
	SHF *shf;

	find_table("segshare", name, path);
	sa = shard_of_key(0);
	sb = (sa + 1) % NSHARDS;
	seg = first_segment(path, sa);
	dwb = peek64(path, shard_at(sb) + offsetof(struct shard, dir_word));
	ck_assert_uint_eq(dwb & 63, 0);
	poke(path, dwb >> 6, &seg, 8); /* shard sb's dir[0]: sa's segment */
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = 0; i < FIND_KEYS; i++) {
		if (shard_of_key(i) != sa)
			continue;
		in_sa++;
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	}
	ck_assert_uint_gt(in_sa, 0);
	p1 = shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	for (i = 0; i < FIND_KEYS; i++) {
		if (shard_of_key(i) != sa)
			continue;
		shf_make_hash(key, key_of(key, i));
		if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND)
			lost++;
	}
	p2 = shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	shf_detach(shf);
	unlink(path);
	ck_assert_uint_ge(p1, 1);
	ck_assert_msg(lost == 0, "%u of shard %u's %u keys lost by the repair",
		      lost, sa, in_sa);
	ck_assert_msg(p2 == 0, "a second repair found %u problems", p2);
}
END_TEST

/*
 * A directory entry that names a segment outside the file: a repair
 * reported it and changed nothing, so the shard's range returned
 * EBADMSG for good and its counters went unchecked (found by an audit).
 * The range gets a new, empty segment.
 */
START_TEST(test_repair_of_a_segment_outside_the_file)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	uint32_t sa, p1, p2, r;
	uint64_t dw, bad;
	SHF *shf;

	find_table("segout", name, path);
	sa = shard_of_key(0);
	dw = peek64(path, shard_at(sa) + offsetof(struct shard, dir_word));
	ck_assert_uint_eq(dw & 63, 0);
	bad = (1ULL << 39); /* depth 0, far past the file's end */
	poke(path, dw >> 6, &bad, 8);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	p1 = shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	p2 = shf_check(shf, 0, NULL, NULL);
	/* the shard takes keys again */
	shf_make_hash(key, key_of(key, 0));
	r = shf_put_key_val(shf, "again", 5);
	shf_make_hash(key, key_of(key, 0));
	ck_assert_uint_eq(r & SHF_RET_ERROR, 0);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_detach(shf);
	unlink(path);
	ck_assert_uint_ge(p1, 1);
	ck_assert_msg(p2 == 0, "a check after the repair found %u problems",
		      p2);
}
END_TEST

/*
 * Directory ranges bad in shape (an entry's depth past the directory's, a
 * range off its own boundary, an entry inside a range that says
 * otherwise): shf_check() stopped the shard there, and a repair left the
 * directory as it was, so the shard's keys stayed out of reach and its
 * counters unchecked.  A repair now derives each entry's depth again from
 * the segments the entries name: a directory whose depths alone were
 * damaged comes back as it was, every key with it.
 */
/* A directory of shard si's as orig was (n entries), and shard si's keys. */
struct dir_case {
	const char *name, *path;
	uint64_t dw, orig[8];
	uint32_t si, n, last, want, keys;
};

/*
 * The directory's entries written as bad, then a repair: it must find
 * something, leave nothing for a check after it, bring every entry back
 * as it was and every key of the shard with it.
 */
static void depth_trial(const struct dir_case *dc, const uint64_t *bad,
			const char *what)
{
	char key[32];
	uint32_t i, p1, p2, found = 0;
	uint64_t e;
	SHF *shf;

	for (i = 0; i < dc->n; i++)
		poke(dc->path, (dc->dw >> 6) + 8 * i, &bad[i], 8);
	shf = shf_attach_existing(shf_test_dir(), dc->name);
	ck_assert_ptr_nonnull(shf);
	p1 = shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	p2 = shf_check(shf, 0, NULL, NULL);
	for (i = 0; i < dc->last; i++) {
		if (shard_of_key(i) != dc->si)
			continue;
		shf_make_hash(key, key_of(key, i));
		found += shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND;
	}
	ck_assert_uint_eq(shf_test_keys(shf), dc->keys);
	shf_detach(shf);
	ck_assert_msg(p1 >= 1, "%s: no problem found", what);
	ck_assert_msg(p2 == 0, "%s: %u problems after the repair", what, p2);
	for (i = 0; i < dc->n; i++) {
		e = peek64(dc->path, (dc->dw >> 6) + 8 * i);
		ck_assert_msg(e == dc->orig[i], "%s: dir[%u] %#llx, was %#llx",
			      what, i, (unsigned long long)e,
			      (unsigned long long)dc->orig[i]);
	}
	ck_assert_msg(found == dc->want, "%s: %u of the shard's %u keys found",
		      what, found, dc->want);
}

START_TEST(test_repair_of_directory_depths)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	struct dir_case dc = { name, path, 0, { 0 }, 0, 0, 0, 0, 0 };
	uint64_t bad[8];
	uint32_t g, i, k, t, added = 0, wide = 0;
	char what[64];
	SHF *shf;

	find_table("dirdepth", name, path);
	dc.si = shard_of_key(0);
	for (i = 0; i < FIND_KEYS; i++)
		dc.want += shard_of_key(i) == dc.si;
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	/*
	 * keys of shard si alone, until its directory has 4 entries or more
	 * and one range of two or more (a range the split left whole)
	 */
	for (i = FIND_KEYS;; i++) {
		dc.dw = peek64(path, shard_at(dc.si) +
					     offsetof(struct shard, dir_word));
		g = (uint32_t)(dc.dw & 63);
		for (k = 0, wide = 0; g >= 2 && k < 4; k++)
			wide |= (peek64(path, (dc.dw >> 6) + 8 * k) & 63) < g;
		if (wide)
			break;
		ck_assert_uint_lt(i, 100000000);
		if (shard_of_key(i) != dc.si)
			continue;
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_put_key_val(shf, "value", 5), SHF_RET_KEY_PUT);
		added++;
	}
	shf_detach(shf);
	dc.want += added;
	dc.keys = FIND_KEYS + added;
	dc.last = i;
	dc.n = (1u << g) < 8 ? 1u << g : 8;
	for (k = 0; k < dc.n; k++)
		dc.orig[k] = peek64(path, (dc.dw >> 6) + 8 * k);
	/* each entry alone: past the directory's depth, the widest, one
	 * narrower */
	for (k = 0; k < dc.n; k++)
		for (t = 0; t < 3; t++) {
			const uint64_t depth[3] = {
				g + 5, 0, ((dc.orig[k] & 63) + 1) % (g + 1)
			};

			memcpy(bad, dc.orig, sizeof(bad));
			bad[k] = (dc.orig[k] & ~63ULL) | depth[t];
			if (bad[k] == dc.orig[k])
				continue;
			snprintf(what, sizeof(what), "entry %u depth %llu", k,
				 (unsigned long long)depth[t]);
			depth_trial(&dc, bad, what);
		}
	/*
	 * every entry at the directory's depth: each range one entry long,
	 * a shape that looks sound (found by review: a repair gave the
	 * second entry of a range a new, empty segment, and its keys went)
	 */
	for (k = 0; k < dc.n; k++)
		bad[k] = (dc.orig[k] & ~63ULL) | g;
	depth_trial(&dc, bad, "every entry at the directory's depth");
	unlink(path);
}
END_TEST

/* A case of trials_per_case trials. */
#define HOSTILE_CASE(s, name, test)                               \
	tcase_add_loop_test(shf_test_tcase(s, name, 30), test, 0, \
			    (int)trials_per_case)

/*
 * Pages of [p, p + len) that are not mapped in this process
 * (/proc/self/pagemap, bit 63: present); UINT64_MAX if it cannot be read.
 */
static uint64_t pages_unmapped(const void *p, uint64_t len)
{
	uint64_t first = (uint64_t)(uintptr_t)p / PAGE, i, e, miss = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return UINT64_MAX;
	for (i = 0; i < len / PAGE; i++) {
		if (pread(fd, &e, 8, (off_t)((first + i) * 8)) != 8) {
			close(fd);
			return UINT64_MAX;
		}
		miss += !(e >> 63);
	}
	close(fd);
	return miss;
}

static uint64_t file_size_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/*
 * A page a process touches first costs it a fault (11-12 us each on the
 * virtual machines measured); the space a tmpfs table grows by is mapped
 * ahead of use instead (grow.c): by the process that grew the file,
 * every page of it but the last step or so, which its next unlocks map,
 * and by another when it first sees the new size, the first piece of it
 * (map_piece: up to MAP_PIECE_MAX, where the records past its old end
 * lie), though it read only a few of its pages.
 */
START_TEST(test_growth_mapped_at_once)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32], b;
	int go[2], done[2], status;
	uint64_t s0, s1, miss, seen;
	uint32_t n = 0, i;
	void *probe;
	SHF *shf;
	pid_t pid;

	shf = shf_test_new("grow", name, sizeof(name));
	shf_test_file(path, sizeof(path), name);
	probe = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(probe, MAP_FAILED);
	if (!shf->populate || madvise(probe, PAGE, 23 /* POPULATE_WRITE */)) {
		printf("not tmpfs, or no MADV_POPULATE_WRITE: skipped\n");
		munmap(probe, PAGE);
		shf_test_del(shf, name);
		return;
	}
	munmap(probe, PAGE);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	s0 = file_size_of(path);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *c = shf_attach_existing(shf_test_dir(), name);
		uint64_t piece;
		uint32_t keys;

		if (!c || write(done[1], "r", 1) != 1 ||
		    read(go[0], &keys, 4) != 4)
			_exit(2);
		/*
		 * read the last key, whose record lies past the old end (a
		 * fault maps 16 pages around it at most: fault-around)
		 */
		shf_make_hash(key, (uint32_t)sprintf(key, "g%011u", keys - 1));
		piece = atomic_load(&c->map_piece);
		if (shf_get_key_val_copy(c) != SHF_RET_KEY_FOUND)
			_exit(3);
		s1 = file_size_of(path);
		seen = s1 - s0;
		if (seen > piece)
			seen = piece;
		miss = pages_unmapped(c->base + s0, seen);
		if (miss)
			fprintf(stderr, "the reader: %" PRIu64 " of %" PRIu64
				" pages not mapped\n", miss, seen / PAGE);
		_exit(miss ? 4 : 0);
	}
	ck_assert_int_eq(read(done[0], &b, 1), 1);
	/*
	 * grow the file until the last key's record lies past its old end
	 * (other shards' chunks may take the new space before it)
	 */
	for (;;) {
		for (i = 0; i < 100; i++, n++) {
			shf_make_hash(key, (uint32_t)sprintf(key, "g%011u", n));
			ck_assert_uint_eq(shf_put_key_val(shf, "vvvvvvvv", 8),
					  SHF_RET_KEY_PUT);
		}
		if (atomic_load(&shf->h->file_used) <= s0)
			continue;
		ck_assert_uint_eq(shf_get_key_val_addr(shf),
				  SHF_RET_KEY_FOUND);
		if ((uint64_t)((uint8_t *)shf_val_addr - shf->base) >= s0)
			break;
		ck_assert_uint_lt(n, 10000000);
	}
	s1 = file_size_of(path);
	ck_assert_uint_gt(s1, s0);
	/* the writer's pages mapped at least as far as the space in use */
	seen = atomic_load(&shf->mapped);
	ck_assert_uint_ge(seen, atomic_load(&shf->h->file_used));
	miss = pages_unmapped(shf->base + s0, seen - s0);
	ck_assert_msg(miss == 0, "the writer: %" PRIu64 " of %" PRIu64
		      " pages not mapped", miss, (seen - s0) / PAGE);
	ck_assert_int_eq(write(go[1], &n, 4), 4);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the reader: status %#x", status);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
	shf_test_del(shf, name);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");

	shf_test_add_tcase(s, "findings", 120, test_lock_word_kernel_thread,
			   test_offsets_past_the_end, test_eviction_bounded,
			   test_expire_bounded,
			   test_lock_word_damaged_while_held,
			   test_lock_word_start_time,
			   test_lock_holder_other_time_namespace,
			   test_unexaminable_holder_once,
			   test_journal_replay_damaged,
			   test_journal_names_a_live_uid,
			   test_directory_names_one_segment_often,
			   test_directory_range_off_its_boundary,
			   test_free_list_cycles_everywhere,
			   test_free_block_over_its_record, test_cells_damaged,
			   test_cells_damaged_counts);
	shf_test_add_tcase(s, "layout7", 60, test_forward_to_another_uid,
			   test_slot_copied, test_slot_copied_then_deleted,
			   test_slot_copied_then_expired);
#ifdef SHF_TEST_HOOKS
	shf_test_add_tcase(s, "extent", 60, test_extent_not_linked_twice);
#endif
	shf_test_add_tcase(s, "growth", 60, test_growth_mapped_at_once);
	shf_test_add_tcase(s, "lock-findings", 60,
			   test_alloc_lock_links_damaged_while_held,
			   test_queue_lock_links_damaged_while_held,
			   test_queue_claim_of_the_dead,
			   test_queue_deleted_half_way,
			   test_queue_one_slot_a_process,
			   test_log_lock_links_damaged_while_held,
			   test_region_smaller_than_asked,
			   test_region_off_a_page, test_region_name_over_junk,
			   test_log_positions_off_the_grid, test_log_maker_killed,
			   test_log_waits_have_a_way_out,
			   test_log_reader_names_a_live_mapper);
	shf_test_add_tcase(s, "audit-findings", 60,
			   test_attach_beside_a_file_lease,
			   test_evict_through_a_copied_slot,
			   test_race_reset_while_a_horse_waits,
			   test_repair_of_a_segment_named_twice,
			   test_repair_of_a_segment_outside_the_file,
			   test_repair_of_directory_depths,
			   test_queue_pull_killed_before_commit,
			   test_log_stop_while_others_write,
			   test_log_reader_hidden_from_a_writer);
	HOSTILE_CASE(s, "small-cold", test_small_cold);
	HOSTILE_CASE(s, "small-live", test_small_live);
	HOSTILE_CASE(s, "large-cold", test_large_cold);
	HOSTILE_CASE(s, "large-live", test_large_live);
	HOSTILE_CASE(s, "fixed-cold", test_fixed_cold);
	HOSTILE_CASE(s, "fixed-live", test_fixed_live);
	HOSTILE_CASE(s, "cache-cold", test_cache_cold);
	HOSTILE_CASE(s, "cache-live", test_cache_live);
	HOSTILE_CASE(s, "queue-cold", test_queue_cold);
	HOSTILE_CASE(s, "queue-live", test_queue_live);
	HOSTILE_CASE(s, "log-cold", test_log_cold);
	HOSTILE_CASE(s, "log-live", test_log_live);
	return s;
}

int main(void)
{
	const char *e;
	int k;

	shf_test_init();
	e = getenv("SHF_HOSTILE_TRIALS");
	if (e && *e)
		trials_per_case = (uint32_t)strtoul(e, NULL, 0);
	e = getenv("SHF_HOSTILE_FILE_MAX");
	if (e && *e)
		file_max = strtoull(e, NULL, 0);
	e = getenv("SHF_HOSTILE_SEED");
	if (e && *e) {
		seed_given = strtoull(e, NULL, 0);
		have_seed = 1;
	}
	seed_base = mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	printf("check_hostile: %u trial(s) per case, base seed %#" PRIx64
	       "%s\n",
	       trials_per_case, have_seed ? seed_given : seed_base,
	       have_seed ? " (given)" : "");
	fflush(stdout);
	for (k = 0; k < HK_NKINDS; k++)
		if (kind_wanted((enum kind)k))
			tmpl_make((enum kind)k);
	return shf_test_main(hostile_suite());
}
