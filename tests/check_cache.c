/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_cache.c - cache mode across processes: TTLs and the table's
 * default TTL, reclaim of expired keys, the byte budget and CLOCK
 * eviction, get-or-lease, hit and miss counters (see libshf(7), CACHE
 * MODE).
 *
 * Children attach by name, as unrelated processes would, never ck_assert,
 * and _exit(0) on success; a child that finds a problem writes one line
 * about it into the shared memory (the first one wins) and exits with a
 * code that tells which check failed; the parent prints that line.
 *
 * Timing: TTL windows are scaled by CK_TIMEOUT_MULTIPLIER where a slow
 * process could otherwise miss them; every "still there" check is made
 * only while the clock says the key must still live, every "gone" check
 * only once it must be gone, so a late process can neither fail nor
 * pass a check it did not really make (the number of checks made in time
 * is itself checked).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

#define KID_TIMEOUT 20.0

#define LEASED (SHF_RET_KEY_NONE | SHF_RET_LEASED)

/* What the children share with the parent (MAP_SHARED). */
struct shared {
	uint32_t flag[16]; /* phases, set by whoever reached them */
	uint32_t ready;
	uint32_t done;
	uint32_t stop;
	uint32_t claim; /* a child is writing msg */
	uint32_t failed; /* msg is written */
	char msg[512]; /* the first problem a child found */
	int64_t rt[16]; /* CLOCK_REALTIME ms */
	double t[16]; /* CLOCK_MONOTONIC s (the same in every process) */
	uint32_t ret[16];
	int err[16];
	uint64_t u[16];
	char val[16][64];
	uint32_t vlen[16];
	uint32_t timely; /* "still there" checks made in time */
	uint32_t uids[1024];
};

/* Record the first problem; returns code (a child's exit status). */
static int kfail(struct shf_test_job *j, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int kfail(struct shf_test_job *j, int code, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&j->sh->claim, 1, __ATOMIC_SEQ_CST) == 0) {
		va_start(ap, fmt);
		vsnprintf(j->sh->msg, sizeof(j->sh->msg), fmt, ap);
		va_end(ap);
		/* The message is there before anyone sees "failed". */
		__atomic_store_n(&j->sh->failed, 1, __ATOMIC_SEQ_CST);
	}
	return code;
}

#define KCHECK(cond, code, ...)                             \
	do {                                                \
		if (__builtin_expect(!(cond), 0))           \
			return kfail(j, code, __VA_ARGS__); \
	} while (0)

/* In the parent: run a check shared with the children. */
#define PCHECK(call)                                               \
	do {                                                       \
		int rc_ = (call);                                  \
		shf_assert_msg(rc_ == 0, "%s: %d: %s", #call, rc_, \
			       j->sh->msg);                        \
	} while (0)

static void kids_ok(struct shf_test_job *j, struct shf_test_kids *k)
{
	int failed = shf_test_wait(k, KID_TIMEOUT);

	ck_assert_msg(failed == 0, "%d child(ren) failed: %s", failed,
		      j->sh->failed ? j->sh->msg : "(no message)");
}

static void run_kids(struct shf_test_job *j, int n, shf_test_kid_fn fn)
{
	struct shf_test_kids k;

	shf_test_spawn(&k, n, fn, j);
	shf_test_go(&k);
	kids_ok(j, &k);
}

static void set_flag(struct shf_test_job *j, int f)
{
	__atomic_store_n(&j->sh->flag[f], 1, __ATOMIC_SEQ_CST);
}

/* In a child: wait for a flag; gives up if another child failed. */
static int kid_wait_flag(struct shf_test_job *j, int f)
{
	double end = shf_test_now() + KID_TIMEOUT * shf_test_multiplier();

	while (!shf_test_load_u32(&j->sh->flag[f])) {
		if (shf_test_load_u32(&j->sh->failed))
			return 121;
		if (shf_test_now() > end)
			return kfail(j, 120, "timed out waiting for phase %d",
				     f);
		shf_test_msleep(1);
	}
	return 0;
}

/* In the parent: wait for a flag; fails early if a child failed. */
static void parent_wait_flag(struct shf_test_job *j, int f)
{
	double end = shf_test_now() + KID_TIMEOUT * shf_test_multiplier();

	while (!shf_test_load_u32(&j->sh->flag[f])) {
		ck_assert_msg(!shf_test_load_u32(&j->sh->failed),
			      "waiting for phase %d: a child failed: %s", f,
			      j->sh->msg);
		ck_assert_msg(shf_test_now() < end,
			      "timed out waiting for phase %d", f);
		shf_test_msleep(1);
	}
}

/*
 * Wait until some process waits for a lease: the table's lease_waits is
 * counted before a waiter sleeps (a sleep here was no proof of it).
 */
static void parent_wait_lease_waiter(struct shf_test_job *j, SHF *shf)
{
	double end = shf_test_now() + KID_TIMEOUT * shf_test_multiplier();
	struct shf_stats st;

	for (;;) {
		shf_test_stats(shf, &st);
		if (st.lease_waits >= 1)
			return;
		ck_assert_msg(!shf_test_load_u32(&j->sh->failed),
			      "waiting for a lease waiter: a child failed: %s",
			      j->sh->msg);
		ck_assert_msg(shf_test_now() < end,
			      "timed out waiting for a lease waiter");
		shf_test_msleep(1);
	}
}

/*
 * Slack of the expiry checks, in ms: rounding to ms, and the resolution
 * of a coarse clock (CLOCK_REALTIME_COARSE, one tick) that the library
 * may read instead of CLOCK_REALTIME, so that a key can expire up to one
 * tick before the exact time.
 */
static int64_t slack_ms(void)
{
	static int64_t slack;
	struct timespec res;

	if (!slack) {
		slack = 2;
		if (clock_getres(CLOCK_REALTIME_COARSE, &res) == 0)
			slack += (int64_t)res.tv_sec * 1000 +
				 (res.tv_nsec + 999999) / 1000000;
	}
	return slack;
}
#define SLACK slack_ms()

static int64_t rt_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until_rt(int64_t when_ms)
{
	int64_t now;

	while ((now = rt_ms()) < when_ms)
		shf_test_msleep((unsigned)(when_ms - now));
}

static void usleep_100(void)
{
	struct timespec ts = { 0, 100000 };

	nanosleep(&ts, NULL);
}

static uint32_t scaled_ms(uint32_t ms)
{
	return (uint32_t)(ms * shf_test_multiplier());
}

static void hash_str(const char *key)
{
	shf_make_hash(key, (uint32_t)strlen(key));
}

static int get_stats(SHF *shf, struct shf_stats *st)
{
	memset(st, 0, sizeof(*st));
	return shf_get_stats(shf, st, sizeof(*st)) == SHF_RET_OK ? 0 : -1;
}

/* Bytes a record of these lengths may take (header 4 to 14 bytes). */
static uint64_t entry_min(uint32_t klen, uint32_t vlen)
{
	return (uint64_t)klen + vlen + 4;
}

static uint64_t entry_max(uint32_t klen, uint32_t vlen)
{
	uint64_t b = ((uint64_t)klen + vlen + 14 + 3) & ~(uint64_t)3;

	return b < 16 ? 16 : b;
}

/*
 * A value that belongs to key k alone: "<k>:" and a pattern seeded by
 * k, 8 .. maxlen bytes long (the length depends on k).  buf: maxlen.
 */
static uint32_t kval(char *buf, uint64_t k, uint32_t maxlen)
{
	uint32_t len =
		8 + (uint32_t)(((k + 1) * 2654435761u) >> 7) % (maxlen - 7);
	int n = snprintf(buf, 32, "%llu:", (unsigned long long)k);

	shf_test_pattern(buf + n, len - (uint32_t)n, (uint32_t)k * 7919u);
	return len;
}

static int kval_ok(const char *val, uint32_t len, uint64_t k, uint32_t maxlen)
{
	char want[512];
	uint32_t wlen = kval(want, k, maxlen);

	return len == wlen && memcmp(val, want, len) == 0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ==== 1. keys with a TTL seen, then gone, by every process ========== */

#define T1_TTL_KEYS 200u
#define T1_KEYS 300u /* 200 .. 299 never expire */

/* sh: rt[0], rt[1] before / after A's puts, u[0] the TTL. */
static int ttl_check_live(struct shf_test_job *j, SHF *shf, const char *who)
{
	struct shared *sh = j->sh;
	int64_t t0 = sh->rt[0], t1 = sh->rt[1], ttl = (int64_t)sh->u[0];
	uint32_t i, timely = 0;

	for (i = 0; i < T1_KEYS; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0), r, rt, ru;
		int64_t tb = rt_ms(), ta;
		int val_ok, uval_ok;
		long left;

		shf_test_hash(i);
		r = shf_get_key_val_copy(shf);
		val_ok = r == SHF_RET_KEY_FOUND && shf_val_len == len &&
			 memcmp(shf_val, v, len) == 0;
		shf_test_hash(i);
		rt = shf_get_key_ttl(shf);
		left = shf_val_long;
		ru = shf_get_uid_val_copy(shf, sh->uids[i]);
		uval_ok = ru == SHF_RET_KEY_FOUND && shf_val_len == len &&
			  memcmp(shf_val, v, len) == 0;
		ta = rt_ms();
		if (i < T1_TTL_KEYS) {
			/* Only while it must still live. */
			if (ta + SLACK >= t0 + ttl)
				continue;
			timely++;
			KCHECK(val_ok, 10, "%s: TTL key %u: get %u (ok %d)",
			       who, i, r, val_ok);
			KCHECK(uval_ok, 11, "%s: TTL key %u: get by uid %u",
			       who, i, ru);
			KCHECK(rt == SHF_RET_KEY_FOUND, 12,
			       "%s: TTL key %u: shf_get_key_ttl %u", who, i,
			       rt);
			KCHECK(left > 0 && left <= ttl, 13,
			       "%s: TTL key %u: %ld ms left, ttl %lld", who, i,
			       left, (long long)ttl);
			KCHECK(left >= t0 + ttl - ta - SLACK &&
				       left <= t1 + ttl - tb + SLACK,
			       14,
			       "%s: TTL key %u: %ld ms left, expected %lld .. "
			       "%lld",
			       who, i, left, (long long)(t0 + ttl - ta - SLACK),
			       (long long)(t1 + ttl - tb + SLACK));
		} else {
			KCHECK(val_ok, 15, "%s: key %u (no TTL): get %u", who,
			       i, r);
			KCHECK(uval_ok, 16, "%s: key %u (no TTL): by uid %u",
			       who, i, ru);
			KCHECK(rt == SHF_RET_KEY_FOUND && left == -1, 17,
			       "%s: key %u (no TTL): ttl %u, %ld ms left", who,
			       i, rt, left);
		}
	}
	shf_test_add_u32(&sh->timely, timely);
	return 0;
}

static int ttl_check_gone(struct shf_test_job *j, SHF *shf, const char *who)
{
	struct shared *sh = j->sh;
	int64_t t1 = sh->rt[1], ttl = (int64_t)sh->u[0];
	uint64_t n = 0;
	uint32_t i;

	KCHECK(rt_ms() >= t1 + ttl + 5, 20, "%s: gone check too early", who);
	for (i = 0; i < T1_KEYS; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0), r;

		shf_test_hash(i);
		r = shf_get_key_val_copy(shf);
		if (i < T1_TTL_KEYS) {
			KCHECK(r == SHF_RET_KEY_NONE, 21,
			       "%s: expired key %u: get %u", who, i, r);
			shf_test_hash(i);
			r = shf_get_key_ttl(shf);
			KCHECK(r == SHF_RET_KEY_NONE, 22,
			       "%s: expired key %u: shf_get_key_ttl %u", who, i,
			       r);
			r = shf_get_uid_val_copy(shf, sh->uids[i]);
			KCHECK(r == SHF_RET_KEY_NONE, 23,
			       "%s: expired key %u: get by uid %u", who, i, r);
			r = shf_get_uid_key_copy(shf, sh->uids[i]);
			KCHECK(r == SHF_RET_KEY_NONE, 24,
			       "%s: expired key %u: key by uid %u", who, i, r);
		} else {
			KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == len &&
				       memcmp(shf_val, v, len) == 0,
			       25, "%s: key %u (no TTL) after expiry: get %u",
			       who, i, r);
		}
	}
	KCHECK(shf_iterate(shf, shf_test_count_cb, &n) == SHF_RET_OK, 26,
	       "%s: shf_iterate failed", who);
	KCHECK(n == T1_KEYS - T1_TTL_KEYS, 27,
	       "%s: shf_iterate saw %llu keys, expected %u", who,
	       (unsigned long long)n, T1_KEYS - T1_TTL_KEYS);
	return 0;
}

static int kid_ttl_visible(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	const char *who = idx == 0 ? "child A" : "child B";
	int rc;

	if (!shf)
		return kfail(j, 1, "%s: attach: %s", who, strerror(errno));
	if (idx == 0) {
		uint32_t i, ttl = (uint32_t)sh->u[0];

		sh->rt[0] = rt_ms();
		for (i = 0; i < T1_KEYS; i++) {
			char v[80];
			uint32_t len = shf_test_val(v, i, 0), r;

			shf_test_hash(i);
			if (i < T1_TTL_KEYS)
				r = shf_put_key_val_ttl(shf, v, len, ttl);
			else if (i < 250)
				r = shf_put_key_val(shf, v, len);
			else
				r = shf_put_key_val_ttl(shf, v, len, 0);
			KCHECK(r == SHF_RET_KEY_PUT, 2, "A: put %u: %u (%s)", i,
			       r, strerror(errno));
			sh->uids[i] = shf_uid;
		}
		sh->rt[1] = rt_ms();
		set_flag(j, 1);
	} else if ((rc = kid_wait_flag(j, 1)) != 0) {
		return rc;
	}
	if ((rc = ttl_check_live(j, shf, who)) != 0)
		return rc;
	if ((rc = kid_wait_flag(j, 2)) != 0)
		return rc;
	if ((rc = ttl_check_gone(j, shf, who)) != 0)
		return rc;
	shf_detach(shf);
	return 0;
}

START_TEST(test_ttl_visible_then_gone)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("ttlvis", &shf, 0, 0);
	struct shf_test_kids k;
	struct shf_stats st;
	uint32_t r;

	j->sh->u[0] = scaled_ms(300);
	shf_test_spawn(&k, 2, kid_ttl_visible, j);
	shf_test_go(&k);
	parent_wait_flag(j, 1);
	PCHECK(ttl_check_live(j, shf, "parent"));
	/* ~450 ms after the puts (scaled). */
	sleep_until_rt(j->sh->rt[1] + (int64_t)j->sh->u[0] + scaled_ms(150));
	set_flag(j, 2);
	PCHECK(ttl_check_gone(j, shf, "parent"));
	kids_ok(j, &k);
	/* The live checks were really made by someone. */
	ck_assert_uint_gt(j->sh->timely, 0);
	/* Expired, not yet reclaimed; reclaimed by shf_expire(). */
	shf_test_stats(shf, &st);
	errno = 0;
	r = shf_expire(shf, 1u << 20);
	ck_assert_msg(r != UINT32_MAX, "shf_expire: %s", strerror(errno));
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.expirations, T1_TTL_KEYS);
	ck_assert_uint_eq(st.keys, T1_KEYS - T1_TTL_KEYS);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 2. the table's default TTL, set by one, used by all =========== */

static const char *const default_keys[] = { "d-put", "d-ifabsent", "d-replace",
					    "d-cas", "d-add" };
#define N_DEFAULT_KEYS (sizeof(default_keys) / sizeof(default_keys[0]))

static int kid_ttl_default(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	int64_t d = (int64_t)sh->u[0];
	uint32_t r, i;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	/* Both attached before the default is set. */
	shf_test_add_u32(&sh->ready, 1);
	if ((rc = kid_wait_flag(j, 1)) != 0)
		return rc;
	if (idx == 0) {
		sh->rt[0] = rt_ms();
		hash_str("d-put");
		r = shf_put_key_val(shf, "v", 1);
		KCHECK(r == SHF_RET_KEY_PUT, 2, "A: put: %u", r);
		hash_str("d-ifabsent");
		r = shf_put_key_val_if_absent(shf, "v", 1);
		KCHECK(r == SHF_RET_KEY_PUT, 3, "A: put_if_absent: %u", r);
		hash_str("d-replace");
		r = shf_replace_key_val(shf, "new", 3);
		KCHECK(r == (SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT), 4,
		       "A: replace: %u", r);
		hash_str("d-cas");
		r = shf_cas_key_val(shf, "old", 3, "new", 3);
		KCHECK(r == (SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT), 5,
		       "A: cas: %u", r);
		hash_str("d-add");
		r = shf_add_key_val(shf, 7);
		KCHECK(!(r & SHF_RET_ERROR) && shf_val_long == 7, 6,
		       "A: add creating: %u, %ld", r, shf_val_long);
		/* An explicit TTL overrides the default; 0 is never. */
		hash_str("d-never");
		r = shf_put_key_val_ttl(shf, "v", 1, 0);
		KCHECK(r == SHF_RET_KEY_PUT, 7, "A: put_ttl 0: %u", r);
		hash_str("d-long");
		r = shf_put_key_val_ttl(shf, "v", 1, 100000);
		KCHECK(r == SHF_RET_KEY_PUT, 8, "A: put_ttl 100000: %u", r);
		sh->rt[1] = rt_ms();
		set_flag(j, 2);
		if ((rc = kid_wait_flag(j, 3)) != 0)
			return rc;
	} else {
		int64_t t0, t1;
		uint32_t timely = 0;

		if ((rc = kid_wait_flag(j, 2)) != 0)
			return rc;
		t0 = sh->rt[0];
		t1 = sh->rt[1];
		for (i = 0; i < N_DEFAULT_KEYS; i++) {
			int64_t tb = rt_ms(), ta;
			uint32_t rg;
			long left;

			hash_str(default_keys[i]);
			rg = shf_get_key_val_copy(shf);
			hash_str(default_keys[i]);
			r = shf_get_key_ttl(shf);
			left = shf_val_long;
			ta = rt_ms();
			if (ta + SLACK >= t0 + d)
				continue;
			timely++;
			KCHECK(rg == SHF_RET_KEY_FOUND, 10, "B: %s: get %u",
			       default_keys[i], rg);
			KCHECK(r == SHF_RET_KEY_FOUND && left > 0 &&
				       left <= d &&
				       left >= t0 + d - ta - SLACK &&
				       left <= t1 + d - tb + SLACK,
			       11,
			       "B: %s: ttl %u, %ld ms left, expected %lld .. "
			       "%lld (default %lld ms)",
			       default_keys[i], r, left,
			       (long long)(t0 + d - ta - SLACK),
			       (long long)(t1 + d - tb + SLACK), (long long)d);
		}
		shf_test_add_u32(&sh->timely, timely);
		hash_str("d-never");
		r = shf_get_key_ttl(shf);
		KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == -1, 12,
		       "B: d-never: ttl %u, %ld ms left", r, shf_val_long);
		hash_str("d-long");
		r = shf_get_key_ttl(shf);
		KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long > d &&
			       shf_val_long <= 100000,
		       13, "B: d-long: ttl %u, %ld ms left", r, shf_val_long);
		/* ~400 ms after the puts (scaled): the defaults are gone. */
		sleep_until_rt(t1 + d + scaled_ms(150));
		for (i = 0; i < N_DEFAULT_KEYS; i++) {
			hash_str(default_keys[i]);
			r = shf_get_key_val_copy(shf);
			KCHECK(r == SHF_RET_KEY_NONE, 14,
			       "B: %s after the default TTL: get %u",
			       default_keys[i], r);
		}
		hash_str("d-never");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_FOUND, 15, "B: d-never: get %u", r);
		hash_str("d-long");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_FOUND, 16, "B: d-long: get %u", r);
		set_flag(j, 3);
	}
	shf_detach(shf);
	return 0;
}

/*
 * A TTL query is no use of the key: no hit or miss counted (found by
 * review: shf dump asks each key's TTL, and so counted every key as a
 * hit and marked it used, which made eviction forget which keys were).
 */
START_TEST(test_ttl_query_is_no_use)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("ttlquery", name, sizeof(name));
	struct shf_stats st;
	int i;

	hash_str("k");
	shf_assert_eq(shf_put_key_val_ttl(shf, "v", 1, 60000),
		      SHF_RET_KEY_PUT);
	for (i = 0; i < 3; i++) {
		hash_str("k");
		shf_assert_eq(shf_get_key_ttl(shf), SHF_RET_KEY_FOUND);
		ck_assert_int_gt(shf_val_long, 0);
		hash_str("absent");
		shf_assert_eq(shf_get_key_ttl(shf), SHF_RET_KEY_NONE);
	}
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.misses, 0);
	hash_str("k");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	hash_str("absent");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.hits, 1);
	ck_assert_uint_eq(st.misses, 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_ttl_default_shared)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("ttldefault", &shf, 0, 0);
	struct shf_test_kids k;
	struct shf_stats st;
	uint32_t i;

	j->sh->u[0] = scaled_ms(250);
	/* Stored before the default: never expire, until replaced. */
	hash_str("d-replace");
	shf_assert_eq(shf_put_key_val(shf, "old", 3), SHF_RET_KEY_PUT);
	hash_str("d-cas");
	shf_assert_eq(shf_put_key_val(shf, "old", 3), SHF_RET_KEY_PUT);
	hash_str("d-before");
	shf_assert_eq(shf_put_key_val(shf, "old", 3), SHF_RET_KEY_PUT);
	shf_test_spawn(&k, 2, kid_ttl_default, j);
	shf_test_go(&k);
	ck_assert_int_eq(shf_test_wait_u32(&j->sh->ready, 2, KID_TIMEOUT), 0);
	shf_assert_eq(shf_set_ttl_default(shf, (uint32_t)j->sh->u[0]),
		      SHF_RET_OK);
	set_flag(j, 1);
	kids_ok(j, &k);
	ck_assert_uint_gt(j->sh->timely, 0);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.ttl_default_ms, j->sh->u[0]);
	for (i = 0; i < N_DEFAULT_KEYS; i++) {
		hash_str(default_keys[i]);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	}
	/* Keys stored before the default keep "never". */
	hash_str("d-before");
	shf_assert_eq(shf_get_key_ttl(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, -1);
	hash_str("d-never");
	shf_assert_eq(shf_get_key_ttl(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, -1);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 3. every call treats an expired key as absent ================= */

static uint32_t upd_calls;

static uint32_t upd_count(const char *val, uint32_t val_len)
{
	(void)val;
	upd_calls++;
	(void)val_len;
	return SHF_RET_OK;
}

struct seen {
	char names[16][16];
	int n;
	int bad;
};

static int seen_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	struct seen *s = arg;

	(void)val;
	(void)val_len;
	(void)uid;
	if (s->n >= 16 || key_len >= 16) {
		s->bad++;
		return 0;
	}
	memcpy(s->names[s->n], key, key_len);
	s->names[s->n][key_len] = '\0';
	s->n++;
	return 0;
}

static int seen_has(const struct seen *s, const char *name)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return 1;
	return 0;
}

static const char *const x_keys[] = { "x-get",	   "x-upd", "x-ifabsent",
				      "x-replace", "x-cas", "x-add",
				      "x-del",	   "x-iter" };
#define N_X_KEYS (sizeof(x_keys) / sizeof(x_keys[0]))
#define T3_TTL 100u
#define T3_LIVE_TTL 5000u

/* The key's TTL left is what its put at put_after gave it, not reset. */
static int left_not_reset(struct shf_test_job *j, SHF *shf, const char *key,
			  int64_t put_after, const char *what)
{
	int64_t tq;
	uint32_t r;
	long left;

	hash_str(key);
	tq = rt_ms();
	r = shf_get_key_ttl(shf);
	left = shf_val_long;
	KCHECK(r == SHF_RET_KEY_FOUND && left > 0, 40,
	       "%s: %s: ttl %u, %ld ms left", what, key, r, left);
	KCHECK(left <= put_after + (int64_t)T3_LIVE_TTL - tq + SLACK, 41,
	       "%s: %s: expiry reset: %ld ms left, at most %lld expected", what,
	       key, left,
	       (long long)(put_after + (int64_t)T3_LIVE_TTL - tq + SLACK));
	return 0;
}

static int kid_expired_semantics(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r, i;
	long l;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx == 0) {
		sh->rt[0] = rt_ms();
		for (i = 0; i < N_X_KEYS; i++) {
			hash_str(x_keys[i]);
			if (strcmp(x_keys[i], "x-add") == 0) {
				l = 100;
				r = shf_put_key_val_ttl(shf, (char *)&l,
							sizeof(l), T3_TTL);
			} else {
				r = shf_put_key_val_ttl(shf, "v1", 2, T3_TTL);
			}
			KCHECK(r == SHF_RET_KEY_PUT, 2, "A: put %s: %u",
			       x_keys[i], r);
			sh->uids[i] = shf_uid;
		}
		hash_str("l-upd");
		r = shf_put_key_val_ttl(shf, "aaaa", 4, T3_LIVE_TTL);
		KCHECK(r == SHF_RET_KEY_PUT, 3, "A: put l-upd: %u", r);
		l = 10;
		hash_str("l-add");
		r = shf_put_key_val_ttl(shf, (char *)&l, sizeof(l),
					T3_LIVE_TTL);
		KCHECK(r == SHF_RET_KEY_PUT, 4, "A: put l-add: %u", r);
		hash_str("l-never");
		r = shf_put_key_val_ttl(shf, (char *)&l, sizeof(l), 0);
		KCHECK(r == SHF_RET_KEY_PUT, 5, "A: put l-never: %u", r);
		sh->rt[1] = rt_ms();
		set_flag(j, 1);
		if ((rc = kid_wait_flag(j, 2)) != 0)
			return rc;
		shf_detach(shf);
		return 0;
	}

	if ((rc = kid_wait_flag(j, 1)) != 0)
		return rc;
	/* The x- keys have expired; the l- keys live. */
	sleep_until_rt(sh->rt[1] + T3_TTL + 20);

	hash_str("x-get");
	r = shf_get_key_val_copy(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 10, "get: %u", r);
	hash_str("x-get");
	r = shf_get_key_ttl(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 11, "shf_get_key_ttl: %u", r);
	hash_str("x-get");
	r = shf_get_key_key_copy(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 12, "get_key_key_copy: %u", r);
	hash_str("x-get");
	r = shf_get_key_val_addr(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 13, "get_key_val_addr: %u", r);
	r = shf_get_uid_val_copy(shf, sh->uids[0]);
	KCHECK(r == SHF_RET_KEY_NONE, 14, "get_uid_val_copy: %u", r);
	r = shf_get_uid_val_addr(shf, sh->uids[0]);
	KCHECK(r == SHF_RET_KEY_NONE, 15, "get_uid_val_addr: %u", r);

	/* Updates in place find nothing; the callback is not called. */
	shf_upd_callback_set(upd_count);
	upd_calls = 0;
	hash_str("x-upd");
	r = shf_upd_key_val(shf);
	KCHECK(r == SHF_RET_KEY_NONE && upd_calls == 0, 16,
	       "upd_key_val: %u, %u callback calls", r, upd_calls);
	r = shf_upd_uid_val(shf, sh->uids[1]);
	KCHECK(r == SHF_RET_KEY_NONE && upd_calls == 0, 17,
	       "upd_uid_val: %u, %u callback calls", r, upd_calls);

	hash_str("x-ifabsent");
	r = shf_put_key_val_if_absent(shf, "v2", 2);
	KCHECK(r == SHF_RET_KEY_PUT, 18, "put_if_absent: %u", r);
	hash_str("x-ifabsent");
	r = shf_get_key_val_copy(shf);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == 2 &&
		       memcmp(shf_val, "v2", 2) == 0,
	       19, "put_if_absent then get: %u", r);
	hash_str("x-ifabsent");
	r = shf_get_key_ttl(shf);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == -1, 20,
	       "put_if_absent then ttl: %u, %ld", r, shf_val_long);

	hash_str("x-replace");
	r = shf_replace_key_val(shf, "v2", 2);
	KCHECK(r == SHF_RET_KEY_NONE, 21, "replace: %u", r);
	hash_str("x-replace");
	r = shf_get_key_val_copy(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 22, "replace then get: %u", r);

	hash_str("x-cas");
	r = shf_cas_key_val(shf, "v1", 2, "v2", 2);
	KCHECK(r == SHF_RET_KEY_NONE, 23, "cas: %u", r);
	hash_str("x-cas");
	r = shf_get_key_val_copy(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 24, "cas then get: %u", r);

	/* add creates the key anew: 5, not 100 + 5. */
	hash_str("x-add");
	r = shf_add_key_val(shf, 5);
	KCHECK(!(r & SHF_RET_ERROR) && shf_val_long == 5, 25,
	       "add: %u, sum %ld", r, shf_val_long);
	hash_str("x-add");
	r = shf_get_key_val_copy(shf);
	if (r == SHF_RET_KEY_FOUND && shf_val_len == sizeof(l))
		memcpy(&l, shf_val, sizeof(l));
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == sizeof(l) && l == 5, 26,
	       "add then get: %u, len %u", r, shf_val_len);
	hash_str("x-add");
	r = shf_get_key_ttl(shf);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == -1, 27,
	       "add then ttl: %u, %ld", r, shf_val_long);

	hash_str("x-del");
	r = shf_del_key_val(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 28, "del: %u", r);

	{
		struct seen s;
		static const char *const want[] = { "x-ifabsent", "x-add",
						    "l-upd", "l-add",
						    "l-never" };

		memset(&s, 0, sizeof(s));
		r = shf_iterate(shf, seen_cb, &s);
		KCHECK(r == SHF_RET_OK && s.bad == 0, 29, "iterate: %u", r);
		KCHECK(s.n == 5, 30, "iterate saw %d keys (first %s)", s.n,
		       s.n ? s.names[0] : "-");
		for (i = 0; i < 5; i++)
			KCHECK(seen_has(&s, want[i]), 31,
			       "iterate did not see %s", want[i]);
	}
	/* By UID too: x-iter, expired. */
	r = shf_del_uid_val(shf, sh->uids[7]);
	KCHECK(r == SHF_RET_KEY_NONE, 32, "del_uid_val: %u", r);

	/* In-place updates of live TTL keys keep their expiry. */
	sleep_until_rt(sh->rt[1] + 150);
	KCHECK(shf_upd_callback_copy("bbbb", 4) == SHF_RET_OK, 33,
	       "upd_callback_copy");
	hash_str("l-upd");
	r = shf_upd_key_val(shf);
	KCHECK(r == SHF_RET_KEY_FOUND, 34, "upd l-upd: %u", r);
	hash_str("l-upd");
	r = shf_get_key_val_copy(shf);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == 4 &&
		       memcmp(shf_val, "bbbb", 4) == 0,
	       35, "l-upd after upd: %u", r);
	if ((rc = left_not_reset(j, shf, "l-upd", sh->rt[1], "upd")) != 0)
		return rc;
	hash_str("l-add");
	r = shf_add_key_val(shf, 1);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == 11, 36,
	       "add l-add: %u, %ld", r, shf_val_long);
	if ((rc = left_not_reset(j, shf, "l-add", sh->rt[1], "add")) != 0)
		return rc;
	/* Nor does a default TTL set now change them. */
	KCHECK(shf_set_ttl_default(shf, 60000) == SHF_RET_OK, 37,
	       "set_ttl_default");
	hash_str("l-never");
	r = shf_add_key_val(shf, 1);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == 11, 38,
	       "add l-never: %u, %ld", r, shf_val_long);
	hash_str("l-never");
	r = shf_get_key_ttl(shf);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == -1, 39,
	       "l-never after add with a default: %u, %ld", r, shf_val_long);
	hash_str("l-add");
	r = shf_add_key_val_atom(shf, 1);
	KCHECK(r == SHF_RET_KEY_FOUND && shf_val_long == 12, 42,
	       "add_atom l-add: %u, %ld", r, shf_val_long);
	if ((rc = left_not_reset(j, shf, "l-add", sh->rt[1],
				 "add_atom with a default")) != 0)
		return rc;
	KCHECK(shf_upd_callback_copy("cccc", 4) == SHF_RET_OK, 43,
	       "upd_callback_copy");
	hash_str("l-upd");
	r = shf_upd_key_val(shf);
	KCHECK(r == SHF_RET_KEY_FOUND, 44, "upd l-upd: %u", r);
	if ((rc = left_not_reset(j, shf, "l-upd", sh->rt[1],
				 "upd with a default")) != 0)
		return rc;
	set_flag(j, 2);
	shf_detach(shf);
	return 0;
}

START_TEST(test_expired_semantics)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("expsem", &shf, 0, 0);
	uint64_t n = 0;

	run_kids(j, 2, kid_expired_semantics);
	shf_assert_eq(shf_iterate(shf, shf_test_count_cb, &n), SHF_RET_OK);
	ck_assert_uint_eq(n, 5);
	hash_str("x-ifabsent");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, 2);
	ck_assert_mem_eq(shf_val, "v2", 2);
	hash_str("x-replace");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 4. expired keys reclaimed by shf_expire() and by puts ========= */

#define T4_KEYS 5000u
#define T4_TTL 100u

static int put_range(struct shf_test_job *j, SHF *shf, uint64_t from,
		     uint64_t n, uint32_t ttl, const char *who)
{
	uint64_t i;

	for (i = from; i < from + n; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0), r;

		shf_test_hash(i);
		r = ttl ? shf_put_key_val_ttl(shf, v, len, ttl) :
			  shf_put_key_val(shf, v, len);
		KCHECK(r == SHF_RET_KEY_PUT, 2, "%s: put key %llu: %u (%s)",
		       who, (unsigned long long)i, r, strerror(errno));
	}
	return 0;
}

static int kid_expired_reclaimed(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	struct shf_stats st;
	uint64_t e0, e1, e2;
	uint32_t r;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx == 0) {
		/* The TTL keys: 0 .. 4999, then 10000 .. 14999. */
		if ((rc = put_range(j, shf, 0, T4_KEYS, T4_TTL, "A")) != 0)
			return rc;
		sh->rt[1] = rt_ms();
		set_flag(j, 1);
		if ((rc = kid_wait_flag(j, 2)) != 0)
			return rc;
		if ((rc = put_range(j, shf, 10000, T4_KEYS, T4_TTL, "A")) != 0)
			return rc;
		sh->rt[2] = rt_ms();
		set_flag(j, 3);
		shf_detach(shf);
		return 0;
	}

	if ((rc = kid_wait_flag(j, 1)) != 0)
		return rc;
	sleep_until_rt(sh->rt[1] + 2 * T4_TTL);
	KCHECK(get_stats(shf, &st) == 0, 10, "stats");
	e0 = st.expirations;
	/* Counted until reclaimed (some may be, by the later puts). */
	KCHECK(st.keys + e0 == T4_KEYS, 11,
	       "before shf_expire: %llu keys + %llu expirations != %u",
	       (unsigned long long)st.keys, (unsigned long long)e0, T4_KEYS);
	shf_test_hash(0);
	KCHECK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, 12,
	       "key 0 not expired");
	errno = 0;
	r = shf_expire(shf, 1u << 20);
	KCHECK(r != UINT32_MAX, 13, "shf_expire: %s", strerror(errno));
	KCHECK(r + e0 == T4_KEYS, 14,
	       "shf_expire reclaimed %u, %llu before: not %u", r,
	       (unsigned long long)e0, T4_KEYS);
	KCHECK(get_stats(shf, &st) == 0, 15, "stats");
	KCHECK(st.expirations == T4_KEYS && st.keys == 0 &&
		       st.bytes_cached == 0,
	       16, "after shf_expire: %llu expirations, %llu keys, %llu bytes",
	       (unsigned long long)st.expirations, (unsigned long long)st.keys,
	       (unsigned long long)st.bytes_cached);
	r = shf_expire(shf, 1u << 20);
	KCHECK(r == 0, 17, "shf_expire again: %u", r);
	set_flag(j, 2);

	/* Puts of other keys alone reclaim expired keys as they go. */
	if ((rc = kid_wait_flag(j, 3)) != 0)
		return rc;
	sleep_until_rt(sh->rt[2] + 2 * T4_TTL);
	KCHECK(get_stats(shf, &st) == 0, 18, "stats");
	e1 = st.expirations;
	KCHECK(st.keys + (e1 - T4_KEYS) == T4_KEYS, 19,
	       "round 2: %llu keys, %llu expirations",
	       (unsigned long long)st.keys, (unsigned long long)e1);
	if ((rc = put_range(j, shf, 20000, T4_KEYS, 0, "B")) != 0)
		return rc;
	KCHECK(get_stats(shf, &st) == 0, 20, "stats");
	e2 = st.expirations;
	KCHECK(e2 > e1, 21,
	       "%u puts reclaimed no expired key (%llu expirations)", T4_KEYS,
	       (unsigned long long)e2);
	KCHECK(st.keys == 2 * T4_KEYS - (e2 - T4_KEYS), 22,
	       "%llu keys after %llu expirations", (unsigned long long)st.keys,
	       (unsigned long long)e2);
	sh->u[0] = e2;
	shf_detach(shf);
	return 0;
}

START_TEST(test_expired_reclaimed)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("expreclaim", &shf, 0, 0);
	struct shf_stats st;
	uint64_t i;
	uint32_t r;

	run_kids(j, 2, kid_expired_reclaimed);
	errno = 0;
	r = shf_expire(shf, 1u << 20);
	ck_assert_msg(r != UINT32_MAX, "shf_expire: %s", strerror(errno));
	ck_assert_uint_eq(r, 2 * T4_KEYS - j->sh->u[0]);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.expirations, 2 * T4_KEYS);
	ck_assert_uint_eq(st.keys, T4_KEYS);
	for (i = 0; i < 25000; i++) {
		uint32_t ret;

		shf_test_hash(i);
		ret = shf_get_key_val_copy(shf);
		if (i >= 20000) {
			shf_assert_eq(ret, SHF_RET_KEY_FOUND);
			shf_assert(shf_test_val_ok(shf_val, shf_val_len, i, 1,
						   NULL));
		} else {
			shf_assert_eq(ret, SHF_RET_KEY_NONE);
		}
	}
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 5. the byte budget is never exceeded ========================== */

#define T5_BUDGET (256u * 1024u)
#define T5_KEYSPACE 100000u
#define T5_MAXV 200u
#define T5_WRITERS 3
#define T5_PUTS 20000u

/* What iteration found: every value its key's own, and the sizes. */
struct kv_walk {
	uint32_t maxv;
	uint64_t n, lo, hi;
	uint32_t bad;
	char first_bad[64];
};

static int kv_walk_cb(const char *key, uint32_t key_len, const char *val,
		      uint32_t val_len, uint32_t uid, void *arg)
{
	struct kv_walk *w = arg;
	unsigned long long k;
	char buf[40];
	int used = 0;

	(void)uid;
	w->n++;
	w->lo += entry_min(key_len, val_len);
	w->hi += entry_max(key_len, val_len);
	if (key_len < sizeof(buf)) {
		memcpy(buf, key, key_len);
		buf[key_len] = '\0';
		if (sscanf(buf, "key-%llu%n", &k, &used) == 1 &&
		    used == (int)key_len && kval_ok(val, val_len, k, w->maxv))
			return 0;
	}
	if (!w->bad++)
		snprintf(w->first_bad, sizeof(w->first_bad), "%.*s (%u bytes)",
			 (int)(key_len < 40 ? key_len : 40), key, val_len);
	return 0;
}

/* Walk the table (at rest): values right, bytes_cached right. */
static void check_walk(SHF *shf, uint32_t maxv)
{
	struct kv_walk w;
	struct shf_stats st;

	memset(&w, 0, sizeof(w));
	w.maxv = maxv;
	shf_assert_eq(shf_iterate(shf, kv_walk_cb, &w), SHF_RET_OK);
	ck_assert_msg(w.bad == 0, "%u keys with a wrong value, first %s", w.bad,
		      w.first_bad);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(w.n, st.keys);
	ck_assert_msg(st.bytes_cached >= w.lo && st.bytes_cached <= w.hi,
		      "bytes_cached %llu for %llu keys: expected %llu .. %llu",
		      (unsigned long long)st.bytes_cached,
		      (unsigned long long)w.n, (unsigned long long)w.lo,
		      (unsigned long long)w.hi);
}

/* Get key k: absent, or with its own value; 0, or a kfail code. */
static int get_checked(struct shf_test_job *j, SHF *shf, uint64_t k,
		       uint32_t maxv, uint32_t *found)
{
	char key[32];
	uint32_t r;

	shf_make_hash(key, shf_test_key(key, k));
	r = shf_get_key_val_copy(shf);
	if (r == SHF_RET_KEY_NONE)
		return 0;
	KCHECK(r == SHF_RET_KEY_FOUND, 50, "get key %llu: %u (%s)",
	       (unsigned long long)k, r, strerror(errno));
	KCHECK(kval_ok(shf_val, shf_val_len, k, maxv), 51,
	       "key %llu: wrong value (%u bytes, \"%.12s\")",
	       (unsigned long long)k, shf_val_len, shf_val);
	if (found)
		(*found)++;
	return 0;
}

static int kid_budget(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(idx + 1);
	struct shf_stats st;
	uint32_t n;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx == T5_WRITERS) {
		/* The sampler. */
		uint64_t max = 0, samples = 0;
		int last = 0;

		while (!last) {
			last = shf_test_load_u32(&sh->done) == T5_WRITERS;
			KCHECK(get_stats(shf, &st) == 0, 2, "stats: %s",
			       strerror(errno));
			KCHECK(st.byte_budget == T5_BUDGET, 3,
			       "byte_budget %llu",
			       (unsigned long long)st.byte_budget);
			if (st.bytes_cached > max)
				max = st.bytes_cached;
			samples++;
			usleep_100();
		}
		sh->u[0] = max;
		sh->u[1] = samples;
		shf_detach(shf);
		return 0;
	}
	for (n = 0; n < T5_PUTS; n++) {
		uint64_t k = xorshift(&seed) % T5_KEYSPACE;
		char key[32], v[T5_MAXV];
		uint32_t len = kval(v, k, T5_MAXV), r;

		shf_make_hash(key, shf_test_key(key, k));
		r = shf_put_key_val(shf, v, len);
		KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 4,
		       "writer %d: put %u: %u (%s)", idx, n, r,
		       strerror(errno));
		if ((n & 3) == 0) {
			if ((rc = get_checked(j, shf, k, T5_MAXV, NULL)) != 0)
				return rc;
			if ((rc = get_checked(j, shf,
					      xorshift(&seed) % T5_KEYSPACE,
					      T5_MAXV, NULL)) != 0)
				return rc;
		}
	}
	shf_test_add_u32(&sh->done, 1);
	shf_detach(shf);
	return 0;
}

START_TEST(test_budget_never_exceeded)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("budget", &shf, 0, 0);
	/* One entry per concurrent writer: "key-99999" and 200 bytes. */
	uint64_t slack = T5_WRITERS * entry_max(10, T5_MAXV);
	struct shf_stats st;
	uint32_t found = 0;
	uint64_t k;

	shf_assert_eq(shf_set_byte_budget(shf, T5_BUDGET), SHF_RET_OK);
	run_kids(j, T5_WRITERS + 1, kid_budget);
	ck_assert_msg(j->sh->u[1] >= 10, "only %llu samples",
		      (unsigned long long)j->sh->u[1]);
	ck_assert_msg(j->sh->u[0] <= T5_BUDGET + slack,
		      "bytes_cached reached %llu: budget %u + %llu",
		      (unsigned long long)j->sh->u[0], T5_BUDGET,
		      (unsigned long long)slack);
	shf_test_stats(shf, &st);
	ck_assert_uint_gt(st.evictions, 0);
	ck_assert_uint_ge(st.puts, T5_WRITERS * T5_PUTS);
	ck_assert_uint_le(st.bytes_cached, T5_BUDGET + slack);
	/* The budget was used, not just respected. */
	ck_assert_uint_ge(st.bytes_cached, T5_BUDGET / 2);
	check_walk(shf, T5_MAXV);
	for (k = 0; k < T5_KEYSPACE; k++)
		PCHECK(get_checked(j, shf, k, T5_MAXV, &found));
	ck_assert_uint_eq(found, st.keys);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 6. eviction while others read ================================= */

#define T6_BUDGET (64u * 1024u)
#define T6_KEYSPACE 4000u
#define T6_MAXV 400u
#define T6_BATCH 16u

static int kid_evict_read(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t seed = 0x2545f4914f6cdd1dULL * (uint64_t)(idx + 1);
	uint64_t ops = 0;
	uint32_t found = 0;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx < 2) {
		double end = shf_test_now() + 1.0;

		while (shf_test_now() < end) {
			uint64_t k = xorshift(&seed) % T6_KEYSPACE;
			char key[32], v[T6_MAXV];
			uint32_t len = kval(v, k, T6_MAXV), r;

			shf_make_hash(key, shf_test_key(key, k));
			r = shf_put_key_val(shf, v, len);
			KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 2,
			       "writer %d: put: %u (%s)", idx, r,
			       strerror(errno));
			ops++;
		}
		sh->u[idx] = ops;
		shf_test_add_u32(&sh->done, 1);
		shf_detach(shf);
		return 0;
	}
	while (shf_test_load_u32(&sh->done) < 2) {
		if ((ops & 15) != 15) {
			rc = get_checked(j, shf, xorshift(&seed) % T6_KEYSPACE,
					 T6_MAXV, &found);
			if (rc != 0)
				return rc;
		} else {
			static char buf[T6_BATCH * T6_MAXV];
			char keys[T6_BATCH][32];
			const char *kp[T6_BATCH];
			uint32_t klen[T6_BATCH], lens[T6_BATCH], i, n = 0, r;
			uint64_t ks[T6_BATCH], offs[T6_BATCH];

			for (i = 0; i < T6_BATCH; i++) {
				ks[i] = xorshift(&seed) % T6_KEYSPACE;
				klen[i] = shf_test_key(keys[i], ks[i]);
				kp[i] = keys[i];
			}
			r = shf_get_key_val_copy_batch(shf, T6_BATCH, kp, klen,
						       buf, sizeof(buf), offs,
						       lens, NULL);
			KCHECK(r != UINT32_MAX, 3, "batch get: %s",
			       strerror(errno));
			for (i = 0; i < T6_BATCH; i++) {
				if (lens[i] == UINT32_MAX)
					continue;
				n++;
				KCHECK(kval_ok(buf + offs[i], lens[i], ks[i],
					       T6_MAXV),
				       4, "batch: key %llu: wrong value",
				       (unsigned long long)ks[i]);
			}
			KCHECK(n == r, 5, "batch: %u found, said %u", n, r);
			found += n;
		}
		ops++;
	}
	sh->u[idx] = ops;
	sh->u[idx + 4] = found;
	shf_detach(shf);
	return 0;
}

START_TEST(test_eviction_with_readers)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("evictread", &shf, 0, 0);
	struct shf_stats st;
	int i;

	shf_assert_eq(shf_set_byte_budget(shf, T6_BUDGET), SHF_RET_OK);
	run_kids(j, 4, kid_evict_read);
	for (i = 0; i < 4; i++)
		ck_assert_msg(j->sh->u[i] >= 1000, "child %d: %llu operations",
			      i, (unsigned long long)j->sh->u[i]);
	ck_assert_uint_gt(j->sh->u[6] + j->sh->u[7], 0);
	shf_test_stats(shf, &st);
	ck_assert_uint_gt(st.evictions, 0);
	ck_assert_uint_le(st.bytes_cached,
			  T6_BUDGET + 2 * entry_max(10, T6_MAXV));
	check_walk(shf, T6_MAXV);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 7. CLOCK keeps the keys that are read ========================= */

#define T7_HOT 200u
#define T7_COLD 20000u
#define T7_VAL 24u

static void clock_key(char *buf, char kind, uint32_t i)
{
	snprintf(buf, 16, "%c%07u", kind, i);
}

static uint32_t clock_val(char *buf, char kind, uint32_t i)
{
	snprintf(buf, T7_VAL + 1, "%c%07u:%015u", kind, i, i * 7u);
	return T7_VAL;
}

static uint32_t clock_put(SHF *shf, char kind, uint32_t i)
{
	char key[16], v[T7_VAL + 1];

	clock_key(key, kind, i);
	shf_make_hash(key, 8);
	return shf_put_key_val(shf, v, clock_val(v, kind, i));
}

/* 1 found with its value, 0 absent, -1 wrong. */
static int clock_get(SHF *shf, char kind, uint32_t i)
{
	char key[16], v[T7_VAL + 1];
	uint32_t r;

	clock_key(key, kind, i);
	shf_make_hash(key, 8);
	r = shf_get_key_val_copy(shf);
	if (r == SHF_RET_KEY_NONE)
		return 0;
	if (r != SHF_RET_KEY_FOUND || shf_val_len != T7_VAL ||
	    memcmp(shf_val, v, clock_val(v, kind, i)) != 0)
		return -1;
	return 1;
}

static int kid_clock(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	struct shf_stats st;
	uint32_t i, r;
	int g, rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx == 1) {
		/* Another process reads the hot set all along. */
		uint64_t reads = 0;

		if ((rc = kid_wait_flag(j, 1)) != 0)
			return rc;
		while (!shf_test_load_u32(&sh->done)) {
			for (i = 0; i < T7_HOT; i++) {
				g = clock_get(shf, 'h', i);
				KCHECK(g >= 0, 2, "reader: hot %u: bad value",
				       i);
			}
			reads += T7_HOT;
		}
		sh->u[3] = reads;
		shf_detach(shf);
		return 0;
	}
	for (i = 0; i < T7_HOT; i++)
		KCHECK(clock_put(shf, 'h', i) == SHF_RET_KEY_PUT, 3,
		       "put hot %u", i);
	for (i = 0; i < 1000; i++)
		KCHECK(clock_put(shf, 'c', i) == SHF_RET_KEY_PUT, 4,
		       "put cold %u", i);
	/* A budget for about half of the cold keys. */
	KCHECK(get_stats(shf, &st) == 0 && st.keys == T7_HOT + 1000, 5,
	       "stats: %llu keys", (unsigned long long)st.keys);
	sh->u[0] = st.bytes_cached / (T7_HOT + 1000) * (T7_COLD / 2);
	sh->u[1] = st.bytes_cached / (T7_HOT + 1000);
	KCHECK(shf_set_byte_budget(shf, sh->u[0]) == SHF_RET_OK, 6,
	       "set_byte_budget: %s", strerror(errno));
	set_flag(j, 1);
	for (i = 1000; i < T7_COLD; i++) {
		r = clock_put(shf, 'c', i);
		KCHECK(r == SHF_RET_KEY_PUT, 7, "put cold %u: %u", i, r);
		/* And this one reads a hot key between puts. */
		g = clock_get(shf, 'h', i % T7_HOT);
		KCHECK(g >= 0, 8, "writer: hot %u: bad value", i % T7_HOT);
		sh->u[2] += (uint64_t)g;
	}
	shf_test_add_u32(&sh->done, 1);
	shf_detach(shf);
	return 0;
}

START_TEST(test_clock_keeps_hot_keys)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("clock", &shf, 0, 0);
	struct shf_stats st;
	uint32_t i, hot = 0, cold = 0;
	double hot_frac, cold_frac;

	run_kids(j, 2, kid_clock);
	for (i = 0; i < T7_HOT; i++) {
		int g = clock_get(shf, 'h', i);

		ck_assert_int_ge(g, 0);
		hot += (uint32_t)g;
	}
	for (i = 0; i < T7_COLD; i++) {
		int g = clock_get(shf, 'c', i);

		shf_assert(g >= 0);
		cold += (uint32_t)g;
	}
	shf_test_stats(shf, &st);
	hot_frac = (double)hot / T7_HOT;
	cold_frac = (double)cold / T7_COLD;
	fprintf(stderr,
		"clock: %u/%u hot and %u/%u cold keys kept, budget %llu "
		"(%llu B a key), %llu evictions\n",
		hot, T7_HOT, cold, T7_COLD, (unsigned long long)j->sh->u[0],
		(unsigned long long)j->sh->u[1],
		(unsigned long long)st.evictions);
	ck_assert_uint_ge(st.evictions, T7_COLD / 4);
	ck_assert_uint_le(st.bytes_cached, j->sh->u[0] + 2 * 48);
	ck_assert_msg(hot_frac >= 0.8, "only %u of %u hot keys kept", hot,
		      T7_HOT);
	ck_assert_msg(cold_frac <= 0.65 && hot_frac >= cold_frac + 0.3,
		      "hot keys kept %.2f, cold %.2f: no better than chance",
		      hot_frac, cold_frac);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 8. get-or-lease: one computes, the others wait for its value == */

static int kid_lease_one(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	/* All four ask at once. */
	shf_test_add_u32(&sh->ready, 1);
	{
		double end = shf_test_now() + 10 * shf_test_multiplier();

		while (shf_test_load_u32(&sh->ready) < 4) {
			KCHECK(shf_test_now() < end, 5,
			       "the others never came");
			sched_yield();
		}
	}
	hash_str("computed");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 5000, scaled_ms(5000));
	sh->ret[idx] = r;
	sh->err[idx] = errno;
	if (r == LEASED) {
		char v[32];
		int n = snprintf(v, sizeof(v), "computed-by-%d", idx);

		shf_test_msleep(150);
		hash_str("computed");
		r = shf_put_key_val(shf, v, (uint32_t)n);
		KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 2,
		       "child %d: put of the leased key: %u", idx, r);
		sh->u[0] = (uint64_t)idx + 1;
	} else if (r == SHF_RET_KEY_FOUND) {
		KCHECK(shf_val_len < sizeof(sh->val[0]), 3, "value too long");
		memcpy(sh->val[idx], shf_val, shf_val_len);
		sh->vlen[idx] = shf_val_len;
	} else {
		return kfail(j, 4, "child %d: get_or_lease: %u (%s)", idx, r,
			     strerror(sh->err[idx]));
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_lease_single_computer)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("leaseone", &shf, 0, 0);
	struct shf_stats st;
	int i, leased = 0, found = 0, who;
	char want[32];
	int n;

	run_kids(j, 4, kid_lease_one);
	for (i = 0; i < 4; i++) {
		if (j->sh->ret[i] == LEASED)
			leased++;
		else if (j->sh->ret[i] == SHF_RET_KEY_FOUND)
			found++;
	}
	ck_assert_msg(leased == 1 && found == 3, "%d leased, %d found", leased,
		      found);
	who = (int)j->sh->u[0] - 1;
	ck_assert_int_ge(who, 0);
	n = snprintf(want, sizeof(want), "computed-by-%d", who);
	for (i = 0; i < 4; i++) {
		if (i == who)
			continue;
		ck_assert_uint_eq(j->sh->vlen[i], n);
		ck_assert_mem_eq(j->sh->val[i], want, (size_t)n);
	}
	hash_str("computed");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, n);
	ck_assert_mem_eq(shf_val, want, (size_t)n);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.leases, 1);
	ck_assert_uint_ge(st.lease_waits, 1);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 9. the holder is killed: a waiter takes over =================== */

/*
 * The opening of the children of a lease test: A (idx 0) leases key for
 * lease_ms, then sets phase 1; the others wait for phase 1.  0, or the
 * exit code of the check that failed.
 */
static int lease_opening(struct shf_test_job *j, SHF *shf, int idx,
			 const char *key, uint32_t lease_ms)
{
	uint32_t r;

	if (idx != 0)
		return kid_wait_flag(j, 1);
	hash_str(key);
	r = shf_get_key_val_copy_or_lease(shf, lease_ms, 0);
	KCHECK(r == LEASED, 2, "A: get_or_lease: %u (%s)", r, strerror(errno));
	set_flag(j, 1);
	return 0;
}

/* Lease key (flag[1] when held) and stay alive until killed. */
static int kid_lease_and_hang(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	double end;
	uint32_t r;

	(void)idx;
	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	hash_str((const char *)j->sh->val[0]);
	r = shf_get_key_val_copy_or_lease(shf, 10000, 1000);
	KCHECK(r == LEASED, 2, "holder: get_or_lease: %u (%s)", r,
	       strerror(errno));
	set_flag(j, 1);
	end = shf_test_now() + KID_TIMEOUT * shf_test_multiplier();
	while (shf_test_now() < end)
		shf_test_msleep(10);
	return 0;
}

static int kid_lease_waiter(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r;
	int rc;

	(void)idx;
	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if ((rc = kid_wait_flag(j, 1)) != 0)
		return rc;
	set_flag(j, 2);
	hash_str((const char *)sh->val[0]);
	errno = 0;
	sh->t[0] = shf_test_now();
	r = shf_get_key_val_copy_or_lease(shf, 10000, scaled_ms(5000));
	sh->t[1] = shf_test_now();
	KCHECK(r == LEASED, 3, "waiter: get_or_lease: %u (%s) after %.3f s", r,
	       strerror(errno), sh->t[1] - sh->t[0]);
	hash_str((const char *)sh->val[0]);
	r = shf_put_key_val(shf, "by-B", 4);
	KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 4,
	       "waiter: put: %u", r);
	shf_detach(shf);
	return 0;
}

/* SIGKILL child 0 of k and reap it. */
static void kill_holder(struct shf_test_job *j, struct shf_test_kids *k)
{
	int status;

	ck_assert_int_eq(kill(k->pid[0], SIGKILL), 0);
	status = shf_test_waitpid(k->pid[0], 10);
	ck_assert_msg(status != -1 && WIFSIGNALED(status) &&
			      WTERMSIG(status) == SIGKILL,
		      "holder ended otherwise (%#x): %s", status,
		      j->sh->failed ? j->sh->msg : "-");
}

START_TEST(test_lease_holder_killed)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("leasekill", &shf, 0, 0);
	struct shf_test_kids ka, kb;
	struct shf_stats st;
	double t_kill, t0, dt;
	uint32_t r;

	/* Round 1: B waits while A holds the lease; A is SIGKILLed. */
	strcpy(j->sh->val[0], "victim");
	shf_test_spawn(&ka, 1, kid_lease_and_hang, j);
	shf_test_go(&ka);
	parent_wait_flag(j, 1);
	shf_test_spawn(&kb, 1, kid_lease_waiter, j);
	shf_test_go(&kb);
	parent_wait_flag(j, 2);
	parent_wait_lease_waiter(j, shf);
	/* While leased, the key has no value. */
	hash_str("victim");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	t_kill = shf_test_now();
	kill_holder(j, &ka);
	kids_ok(j, &kb);
	dt = j->sh->t[1] - t_kill;
	ck_assert_msg(dt > 0, "B got the lease %.3f s before A was killed",
		      -dt);
	ck_assert_msg(dt < 1.0 * shf_test_multiplier(),
		      "B took the lease over %.3f s after A was killed", dt);
	hash_str("victim");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, 4);
	ck_assert_mem_eq(shf_val, "by-B", 4);

	/* Round 2: the holder dies with nobody waiting; the next asker. */
	memset(j->sh->flag, 0, sizeof(j->sh->flag));
	strcpy(j->sh->val[0], "victim2");
	shf_test_spawn(&ka, 1, kid_lease_and_hang, j);
	shf_test_go(&ka);
	parent_wait_flag(j, 1);
	kill_holder(j, &ka);
	hash_str("victim2");
	t0 = shf_test_now();
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 10000, scaled_ms(5000));
	dt = shf_test_now() - t0;
	ck_assert_msg(r == LEASED, "after the holder died: %u (%s)", r,
		      strerror(errno));
	ck_assert_msg(dt < 1.0 * shf_test_multiplier(),
		      "lease of a dead holder taken after %.3f s", dt);
	/* Give it up. */
	hash_str("victim2");
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_NONE);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.leases, 4);
	ck_assert_uint_ge(st.lease_waits, 1);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 10. a live holder keeps its lease only lease_ms ================ */

static int kid_lease_slow(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (idx == 0) {
		struct shf_stats st;
		double end;

		hash_str("slow");
		sh->t[0] = shf_test_now();
		r = shf_get_key_val_copy_or_lease(shf, 200, 0);
		KCHECK(r == LEASED, 2, "A: get_or_lease: %u (%s)", r,
		       strerror(errno));
		/* The same process asking again holds it still. */
		hash_str("slow");
		r = shf_get_key_val_copy_or_lease(shf, 200, 1000);
		sh->t[1] = shf_test_now();
		KCHECK(r == LEASED, 3, "A: get_or_lease again: %u (%s)", r,
		       strerror(errno));
		/* without a wait (counted before any: no clock to race) */
		shf_test_stats(shf, &st);
		KCHECK(st.lease_waits == 0, 4,
		       "A: asking again waited (%.3f s)", sh->t[1] - sh->t[0]);
		set_flag(j, 1);
		/* Alive, never puts; 2 s at most. */
		end = shf_test_now() + 2.0;
		while (!shf_test_load_u32(&sh->stop) && shf_test_now() < end)
			shf_test_msleep(5);
		shf_detach(shf);
		return 0;
	}
	if ((rc = kid_wait_flag(j, 1)) != 0)
		return rc;
	{
		uint64_t n = 0;

		hash_str("slow");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_NONE, 10, "B: get of a leased key: %u",
		       r);
		KCHECK(shf_iterate(shf, shf_test_count_cb, &n) == SHF_RET_OK &&
			       n == 0,
		       11, "B: iterate saw %llu keys (a leased one)",
		       (unsigned long long)n);
	}
	hash_str("slow");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 5000, scaled_ms(5000));
	sh->t[2] = shf_test_now();
	KCHECK(r == LEASED, 12, "B: get_or_lease: %u (%s) after %.3f s", r,
	       strerror(errno), sh->t[2] - sh->t[1]);
	KCHECK(sh->t[2] - sh->t[0] >= 0.150, 13,
	       "B took a 200 ms lease over %.3f s after it was granted",
	       sh->t[2] - sh->t[0]);
	KCHECK(sh->t[2] - sh->t[1] < 1.5 * shf_test_multiplier(), 14,
	       "B took a 200 ms lease over only after %.3f s",
	       sh->t[2] - sh->t[1]);
	hash_str("slow");
	r = shf_put_key_val(shf, "by-B", 4);
	KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 15, "B: put: %u",
	       r);
	shf_test_add_u32(&sh->stop, 1);
	shf_detach(shf);
	return 0;
}

START_TEST(test_lease_expires_alive_holder)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("leaseslow", &shf, 0, 0);
	struct shf_test_kids k;
	struct shf_stats st;

	shf_test_spawn(&k, 2, kid_lease_slow, j);
	shf_test_go(&k);
	parent_wait_flag(j, 1);
	hash_str("slow");
	if (!shf_test_load_u32(&j->sh->stop))
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	kids_ok(j, &k);
	hash_str("slow");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, 4);
	ck_assert_mem_eq(shf_val, "by-B", 4);
	shf_test_stats(shf, &st);
	ck_assert_uint_ge(st.leases, 2);
	ck_assert_uint_ge(st.lease_waits, 1);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 11. waiting gives up after wait_ms; lease_ms 0 is invalid ====== */

static int kid_lease_timeout(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	double t0, dt;
	uint32_t r;
	int rc, e;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if ((rc = lease_opening(j, shf, idx, "held", 5000)) != 0)
		return rc;
	if (idx == 0) {
		if (shf_test_wait_u32(&sh->stop, 1, KID_TIMEOUT) != 0)
			return kfail(j, 3, "A: not told to stop");
		/* Give it up. */
		hash_str("held");
		r = shf_del_key_val(shf);
		KCHECK(r == SHF_RET_KEY_NONE, 4, "A: del of own lease: %u", r);
		shf_detach(shf);
		return 0;
	}
	hash_str("held");
	errno = 0;
	t0 = shf_test_now();
	r = shf_get_key_val_copy_or_lease(shf, 5000, 100);
	e = errno;
	dt = shf_test_now() - t0;
	KCHECK(r == (SHF_RET_KEY_NONE | SHF_RET_ERROR) && e == ETIMEDOUT, 10,
	       "B: get_or_lease(wait 100 ms): %u (%s)", r, strerror(e));
	KCHECK(dt >= 0.095 && dt < 0.1 + 0.4 * shf_test_multiplier(), 11,
	       "B: gave up after %.3f s, not 0.1 s", dt);
	/* lease_ms 0: EINVAL, on a held key and on an absent one. */
	hash_str("held");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 0, 100);
	e = errno;
	KCHECK((r & SHF_RET_ERROR) && !(r & SHF_RET_LEASED) && e == EINVAL, 12,
	       "B: lease_ms 0 on a held key: %u (%s)", r, strerror(e));
	hash_str("absent");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 0, 100);
	e = errno;
	KCHECK((r & SHF_RET_ERROR) && !(r & SHF_RET_LEASED) && e == EINVAL, 13,
	       "B: lease_ms 0 on an absent key: %u (%s)", r, strerror(e));
	/* It left no lease behind; a lease given up is free again. */
	hash_str("absent");
	r = shf_get_key_val_copy_or_lease(shf, 1000, 0);
	KCHECK(r == LEASED, 14, "B: lease after lease_ms 0: %u (%s)", r,
	       strerror(errno));
	hash_str("absent");
	r = shf_del_key_val(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 15, "B: del of own lease: %u", r);
	hash_str("absent");
	r = shf_get_key_val_copy_or_lease(shf, 1000, 0);
	KCHECK(r == LEASED, 16, "B: lease after giving up: %u (%s)", r,
	       strerror(errno));
	hash_str("absent");
	r = shf_del_key_val(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 17, "B: del of own lease: %u", r);
	shf_test_add_u32(&sh->stop, 1);
	shf_detach(shf);
	return 0;
}

/*
 * A lease held by a live process in another time namespace, whose /proc
 * start times are shifted by its boot time offset: still its (found by
 * review: the start time it recorded did not match the one read here, so
 * the lease was taken over from a live holder at once).
 */
static SHF *tns_shf;
static uint32_t *tns_step;

static int tns_lease_holder(void *arg)
{
	uint64_t v = 42;

	(void)arg;
	hash_str("tns");
	if (shf_get_key_val_copy_or_lease(tns_shf, 60000, 0) != LEASED)
		return 3;
	shf_test_add_u32(tns_step, 1);
	if (shf_test_wait_u32(tns_step, 2, 30) < 0)
		return 4;
	hash_str("tns");
	return shf_put_key_val(tns_shf, (const char *)&v, 8) ==
			       SHF_RET_KEY_PUT ? 0 : 5;
}

/*
 * The holder, run by run (in or beside another time namespace), lives:
 * no takeover, only the wait's end; its value once it stored it.
 */
static void lease_held_elsewhere(const char *tag,
				 pid_t (*run)(int (*)(void *), void *))
{
	char name[SHF_TEST_NAME_MAX];
	int status;
	pid_t pid;

	tns_shf = shf_test_new(tag, name, sizeof(name));
	tns_step = shf_test_shared(sizeof(*tns_step));
	pid = run(tns_lease_holder, NULL);
	if (pid > 0) {
		ck_assert_int_eq(shf_test_wait_u32(tns_step, 1, 30), 0);
		hash_str("tns");
		errno = 0;
		shf_assert_eq(shf_get_key_val_copy_or_lease(tns_shf, 1000,
							    300),
			      SHF_RET_KEY_NONE | SHF_RET_ERROR);
		ck_assert_int_eq(errno, ETIMEDOUT);
		shf_test_add_u32(tns_step, 1);
		status = shf_test_waitpid(pid, 30);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "the holder: status %#x", status);
		hash_str("tns");
		shf_assert_eq(shf_get_key_val_copy(tns_shf),
			      SHF_RET_KEY_FOUND);
	}
	shf_test_unshared(tns_step, sizeof(*tns_step));
	shf_test_del(tns_shf, name);
}

START_TEST(test_lease_other_time_namespace)
{
	lease_held_elsewhere("lease-timens", shf_test_timens_run);
}
END_TEST

/*
 * The same lease held by a process that unshared a time namespace
 * itself: it stays in its own, while /proc/self/timens_offsets shows it
 * the new one's offsets (found by review: taken away from its start
 * times, they made it look dead, and its lease was taken over).
 */
START_TEST(test_lease_after_unshare)
{
	lease_held_elsewhere("lease-unshare", shf_test_timens_unshare_run);
}
END_TEST

/*
 * shf_lease_grant() and shf_lease_adopt(): two leases held at once by one
 * thread, each filled with its own grant, one of them from another
 * thread; grants that ended, of another key, or of another process fill
 * nothing.
 */
struct adopt_arg {
	SHF *shf;
	uint32_t grant, ret;
};

static void *adopt_filler(void *p)
{
	struct adopt_arg *a = p;

	hash_str("adopt2");
	shf_lease_adopt(a->grant);
	a->ret = shf_put_key_val_if_leased(a->shf, "two", 3, 0);
	return NULL;
}

START_TEST(test_lease_adopt)
{
	char name[SHF_TEST_NAME_MAX];
	struct adopt_arg a;
	uint32_t g1, g2;
	pthread_t t;
	int status;
	pid_t pid;
	SHF *shf = shf_test_new("lease-adopt", name, sizeof(name));

	ck_assert_uint_eq(shf_lease_grant(), 0);
	hash_str("adopt1");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 60000, 0), LEASED);
	g1 = shf_lease_grant();
	hash_str("adopt2");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 60000, 0), LEASED);
	g2 = shf_lease_grant();
	ck_assert_uint_ne(g1, 0);
	ck_assert_uint_ne(g2, 0);
	ck_assert_uint_ne(g1, g2);
	/* another key's grant fills nothing */
	hash_str("adopt1");
	shf_lease_adopt(g2);
	shf_assert_eq(shf_put_key_val_if_leased(shf, "one", 3, 0),
		      SHF_RET_KEY_NONE);
	/* nor in a child: the lease is the parent's */
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hash_str("adopt1");
		shf_lease_adopt(g1);
		_exit(shf_put_key_val_if_leased(shf, "kid", 3, 0) ==
			      SHF_RET_KEY_NONE ? 0 : 1);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a child filled its parent's lease: %#x", status);
	/* the first lease, though the thread was granted another since */
	hash_str("adopt1");
	shf_lease_adopt(g1);
	shf_assert_eq(shf_put_key_val_if_leased(shf, "one", 3, 0),
		      SHF_RET_KEY_PUT);
	ck_assert_uint_eq(shf_lease_grant(), 0);
	/* ended: the same grant again fills nothing */
	hash_str("adopt1");
	shf_lease_adopt(g1);
	shf_assert_eq(shf_put_key_val_if_leased(shf, "ONE", 3, 0),
		      SHF_RET_KEY_FOUND);
	/* the second, from another thread */
	a.shf = shf;
	a.grant = g2;
	a.ret = 0;
	ck_assert_int_eq(pthread_create(&t, NULL, adopt_filler, &a), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	shf_assert_eq(a.ret, SHF_RET_KEY_PUT);
	hash_str("adopt1");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "one", 3);
	hash_str("adopt2");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "two", 3);
	shf_lease_adopt(0);
	ck_assert_uint_eq(shf_lease_grant(), 0);
	/* giving up: that very grant's lease only */
	hash_str("adopt3");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 50, 0), LEASED);
	g1 = shf_lease_grant();
	shf_test_msleep(120); /* it expires; a new grant of this process */
	hash_str("adopt3");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 60000, 0), LEASED);
	g2 = shf_lease_grant();
	ck_assert_uint_ne(g1, g2);
	hash_str("adopt3");
	shf_lease_adopt(g1);
	shf_assert_eq(shf_del_key_val_if_leased(shf), SHF_RET_KEY_NONE);
	hash_str("adopt3");
	shf_lease_adopt(g2);
	shf_assert_eq(shf_del_key_val_if_leased(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_del_key_val_if_leased(shf), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_del_key_val_if_leased(NULL), SHF_RET_ERROR);
	hash_str("adopt3");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 60000, 0), LEASED);
	shf_assert_eq(shf_del_key_val_if_leased(shf), SHF_RET_KEY_FOUND);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_lease_wait_timeout)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("leasetimeout", &shf, 0, 0);
	struct shf_stats st;

	run_kids(j, 2, kid_lease_timeout);
	shf_test_stats(shf, &st);
	ck_assert_uint_ge(st.lease_waits, 1);
	ck_assert_uint_eq(st.leases, 3);
	ck_assert_uint_eq(st.keys, 0);
	hash_str("held");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	/* Given up by A: free for the next asker. */
	hash_str("held");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 1000, 0), LEASED);
	hash_str("held");
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_NONE);
	shf_test_job_end(j, shf);
}
END_TEST

/*
 * A get-or-lease that waits for another process's lease is one get: it
 * counted a miss on every poll (every 50 ms) of its wait (found by an
 * audit).  Its first look counts, its polls not.
 */
START_TEST(test_lease_wait_counts_one_miss)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("leasemiss", name, sizeof(name));
	struct shf_stats a, b;
	int status;
	pid_t pid;

	hash_str("held");
	shf_assert_eq(shf_get_key_val_copy_or_lease(shf, 60000, 0), LEASED);
	shf_test_stats(shf, &a);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *c = shf_test_attach_existing(name);
		uint32_t r;

		if (!c)
			_exit(2);
		hash_str("held");
		r = shf_get_key_val_copy_or_lease(c, 1000, 700);
		shf_detach(c); /* its counts go to the table */
		_exit(r & SHF_RET_LEASED ? 3 : 0);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	shf_test_stats(shf, &b);
	ck_assert_uint_ge(b.lease_waits, a.lease_waits + 1);
	ck_assert_msg(b.misses - a.misses <= 2, "%llu misses for one wait",
		      (unsigned long long)(b.misses - a.misses));
	shf_test_del(shf, name);
}
END_TEST

/*
 * A lease is its process's: one whose first thread called pthread_exit()
 * (a zombie entry in /proc) while another thread fills the lease is alive.
 * Another process's get-or-lease took such a lease over, as a dead
 * holder's: two fillers for one key.  Now it waits, and times out.
 */
static SHF *lx_shf;
static int lx_ready[2], lx_done[2];

static void *lx_filler(void *arg)
{
	char c = 0;
	uint32_t r;

	(void)arg;
	hash_str("lx");
	r = shf_get_key_val_copy_or_lease(lx_shf, 60000, 0);
	c = r == LEASED ? 'L' : 'x';
	if (write(lx_ready[1], &c, 1) != 1 || read(lx_done[0], &c, 1) < 0)
		_exit(3);
	/* the filler's value, once the other process has asked */
	hash_str("lx");
	r = shf_put_key_val_if_leased(lx_shf, "fill", 4, 0);
	_exit(r & SHF_RET_KEY_PUT ? 0 : 4);
}

static void lx_leader(void)
{
	pthread_t t;

	close(lx_done[1]); /* its read ends when the test closes its own */
	close(lx_ready[0]);
	if (pthread_create(&t, NULL, lx_filler, NULL))
		_exit(2);
	pthread_exit(NULL); /* the process goes on in its other thread */
}

START_TEST(test_lease_holder_leader_exited)
{
	char name[SHF_TEST_NAME_MAX], c = 0;
	uint32_t r;
	int status;
	pid_t pid;

	lx_shf = shf_test_new("lease-lx", name, sizeof(name));
	ck_assert_int_eq(pipe(lx_ready), 0);
	ck_assert_int_eq(pipe(lx_done), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		lx_leader();
	ck_assert_int_eq(read(lx_ready[0], &c, 1), 1);
	ck_assert_msg(c == 'L', "the filler got no lease");
	hash_str("lx");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(lx_shf, 60000, 300);
	ck_assert_msg(r == (SHF_RET_KEY_NONE | SHF_RET_ERROR) &&
			      errno == ETIMEDOUT,
		      "another process's get-or-lease of a live holder's "
		      "lease: %#x (%s)", r, strerror(errno));
	close(lx_done[1]);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "the filler: status %#x", status);
	hash_str("lx");
	shf_assert_eq(shf_get_key_val_copy(lx_shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, 4);
	close(lx_ready[0]);
	close(lx_ready[1]);
	close(lx_done[0]);
	shf_test_del(lx_shf, name);
}
END_TEST

/* ==== 12. the holder gives up: a waiter gets the lease ============== */

static int kid_lease_give_up(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	struct shared *sh = j->sh;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if ((rc = lease_opening(j, shf, idx, "giveup", 10000)) != 0)
		return rc;
	if (idx == 0) {
		if ((rc = kid_wait_flag(j, 3)) != 0)
			return rc;
		hash_str("giveup");
		sh->t[0] = shf_test_now();
		r = shf_del_key_val(shf);
		KCHECK(r == SHF_RET_KEY_NONE, 3, "A: del: %u", r);
		if ((rc = kid_wait_flag(j, 5)) != 0)
			return rc;
		hash_str("giveup");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == 4 &&
			       memcmp(shf_val, "by-B", 4) == 0,
		       4, "A: B's value: %u", r);
		shf_detach(shf);
		return 0;
	}
	set_flag(j, 2);
	hash_str("giveup");
	errno = 0;
	r = shf_get_key_val_copy_or_lease(shf, 10000, scaled_ms(5000));
	sh->t[3] = shf_test_now();
	KCHECK(r == LEASED, 10, "B: get_or_lease: %u (%s)", r, strerror(errno));
	KCHECK(sh->t[0] > 0 && sh->t[3] >= sh->t[0], 11,
	       "B got the lease before A gave it up");
	/*
	 * From t[0], which A wrote before its del: B may wake and get here
	 * before A has written t[1].
	 */
	KCHECK(sh->t[3] - sh->t[0] < 1.0 * shf_test_multiplier(), 12,
	       "B got the lease %.3f s after A began to give it up",
	       sh->t[3] - sh->t[0]);
	hash_str("giveup");
	r = shf_put_key_val(shf, "by-B", 4);
	KCHECK((r & SHF_RET_KEY_PUT) && !(r & SHF_RET_ERROR), 13, "B: put: %u",
	       r);
	set_flag(j, 5);
	shf_detach(shf);
	return 0;
}

START_TEST(test_lease_give_up)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("leasegiveup", &shf, 0, 0);
	struct shf_test_kids k;
	struct shf_stats st;

	shf_test_spawn(&k, 2, kid_lease_give_up, j);
	shf_test_go(&k);
	parent_wait_flag(j, 2);
	parent_wait_lease_waiter(j, shf);
	set_flag(j, 3);
	kids_ok(j, &k);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.leases, 2);
	ck_assert_uint_ge(st.lease_waits, 1);
	hash_str("giveup");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 12b. a fill only lands while its lease holds =================== */

/*
 * A fetches "slowly" under its lease while B, another process, changes
 * the key: B deletes it (an invalidation), B puts a value of its own, or
 * the lease runs out and B takes it over.  A's shf_put_key_val_if_leased()
 * must store nothing in each case, and store when nothing happened.
 */
static int kid_fill_leased(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t r;
	int rc;

	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	/* 1: B deletes the leased key meanwhile */
	if ((rc = lease_opening(j, shf, idx, "fill", 10000)) != 0)
		return rc;
	if (idx == 0) {
		if ((rc = kid_wait_flag(j, 2)) != 0)
			return rc;
		hash_str("fill");
		r = shf_put_key_val_if_leased(shf, "stale", 5, 0);
		KCHECK(r == SHF_RET_KEY_NONE, 3, "A: fill after del: %u", r);
		hash_str("fill");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_NONE, 4, "A: get after del: %u", r);
		/* 2: B puts its own value meanwhile */
		hash_str("fill");
		r = shf_get_key_val_copy_or_lease(shf, 10000, 0);
		KCHECK(r == LEASED, 5, "A: lease 2: %u", r);
		set_flag(j, 3);
		if ((rc = kid_wait_flag(j, 4)) != 0)
			return rc;
		hash_str("fill");
		r = shf_put_key_val_if_leased(shf, "stale", 5, 0);
		KCHECK(r == SHF_RET_KEY_FOUND, 6, "A: fill after put: %u", r);
		hash_str("fill");
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_FOUND && shf_val_len == 4 &&
			       !memcmp(shf_val, "by-B", 4),
		       7, "A: B's value lost: %u", r);
		/* 3: the lease runs out and B takes it over */
		hash_str("fill2");
		r = shf_get_key_val_copy_or_lease(shf, 50, 0);
		KCHECK(r == LEASED, 8, "A: lease 3: %u", r);
		set_flag(j, 5);
		if ((rc = kid_wait_flag(j, 6)) != 0)
			return rc;
		hash_str("fill2");
		r = shf_put_key_val_if_leased(shf, "stale", 5, 0);
		KCHECK(r == SHF_RET_KEY_NONE, 9, "A: fill after takeover: %u",
		       r);
		set_flag(j, 7);
		/* 4: nothing happens: the fill lands, and only once */
		hash_str("fill3");
		r = shf_get_key_val_copy_or_lease(shf, 10000, 0);
		KCHECK(r == LEASED, 10, "A: lease 4: %u", r);
		hash_str("other"); /* naming another key forgets nothing */
		hash_str("fill3");
		r = shf_put_key_val_if_leased(shf, "fresh", 5, 0);
		KCHECK(r == SHF_RET_KEY_PUT, 11, "A: fill: %u", r);
		hash_str("fill3");
		r = shf_put_key_val_if_leased(shf, "again", 5, 0);
		KCHECK(r == SHF_RET_KEY_NONE, 12, "A: second fill: %u", r);
		shf_detach(shf);
		return 0;
	}
	hash_str("fill");
	r = shf_del_key_val(shf);
	KCHECK(r == SHF_RET_KEY_NONE, 20, "B: del of the lease: %u", r);
	set_flag(j, 2);
	if ((rc = kid_wait_flag(j, 3)) != 0)
		return rc;
	hash_str("fill");
	r = shf_put_key_val(shf, "by-B", 4);
	KCHECK(r == SHF_RET_KEY_PUT, 21, "B: put: %u", r);
	set_flag(j, 4);
	if ((rc = kid_wait_flag(j, 5)) != 0)
		return rc;
	hash_str("fill2");
	r = shf_get_key_val_copy_or_lease(shf, 10000, scaled_ms(5000));
	KCHECK(r == LEASED, 22, "B: takeover: %u", r);
	set_flag(j, 6);
	if ((rc = kid_wait_flag(j, 7)) != 0)
		return rc;
	hash_str("fill2");
	r = shf_put_key_val_if_leased(shf, "by-B", 4, 0);
	KCHECK(r == SHF_RET_KEY_PUT, 23, "B: fill of its lease: %u", r);
	shf_detach(shf);
	return 0;
}

START_TEST(test_fill_if_leased)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("fillleased", &shf, 0, 0);

	run_kids(j, 2, kid_fill_leased);
	hash_str("fill3");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "fresh", 5);
	hash_str("fill2");
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "by-B", 4);
	/* no lease of this thread's: nothing stored, no error */
	hash_str("nolease");
	shf_assert_eq(shf_put_key_val_if_leased(shf, "x", 1, 0),
		      SHF_RET_KEY_NONE);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_put_key_val_if_leased(NULL, "x", 1, 0),
		      SHF_RET_ERROR);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 13. hits and misses reach the table =========================== */

static int kid_hits(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	struct shf_stats st;
	uint32_t i, r;
	int rc;

	(void)idx;
	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	if (j->sh->u[9] == 0) {
		for (i = 0; i < 100; i++) {
			shf_test_hash(i);
			r = shf_get_key_val_copy(shf);
			KCHECK(r == SHF_RET_KEY_FOUND, 2, "get %u: %u", i, r);
		}
		for (i = 1000; i < 1050; i++) {
			shf_test_hash(i);
			r = shf_get_key_val_copy(shf);
			KCHECK(r == SHF_RET_KEY_NONE, 3, "get %u: %u", i, r);
		}
		shf_detach(shf);
		return 0;
	}
	/* 70 hits: 64 of them reach the table at once, the rest later. */
	for (i = 0; i < 70; i++) {
		shf_test_hash(i);
		r = shf_get_key_val_copy(shf);
		KCHECK(r == SHF_RET_KEY_FOUND, 4, "get %u: %u", i, r);
	}
	set_flag(j, 1);
	if ((rc = kid_wait_flag(j, 2)) != 0)
		return rc;
	KCHECK(get_stats(shf, &st) == 0, 5, "stats");
	set_flag(j, 3);
	if ((rc = kid_wait_flag(j, 4)) != 0)
		return rc;
	return 0; /* exits attached */
}

START_TEST(test_hits_misses_counted)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("hits", &shf, 0, 0);
	struct shf_test_kids k;
	struct shf_stats st;
	uint64_t h0;

	shf_test_fill(shf, 0, 100, 0, NULL);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.misses, 0);
	shf_test_spawn(&k, 1, kid_hits, j);
	shf_test_go(&k);
	kids_ok(j, &k);
	shf_test_stats(shf, &st);
	ck_assert_uint_ge(st.hits, 100);
	ck_assert_uint_ge(st.misses, 50);
	h0 = st.hits;

	j->sh->u[9] = 1;
	shf_test_spawn(&k, 1, kid_hits, j);
	shf_test_go(&k);
	parent_wait_flag(j, 1);
	shf_test_stats(shf, &st);
	ck_assert_msg(st.hits - h0 >= 64,
		      "after 64 gets of a child still attached: %llu hits",
		      (unsigned long long)(st.hits - h0));
	set_flag(j, 2);
	parent_wait_flag(j, 3);
	shf_test_stats(shf, &st);
	ck_assert_msg(st.hits - h0 >= 70,
		      "after shf_get_stats in the child: %llu hits of 70",
		      (unsigned long long)(st.hits - h0));
	set_flag(j, 4);
	kids_ok(j, &k);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 14. budget and default TTL read back elsewhere ================ */

static uint64_t bytes_min, bytes_max;

static void sizes_of_keys(uint32_t n)
{
	uint32_t i;

	bytes_min = bytes_max = 0;
	for (i = 0; i < n; i++) {
		char key[32], v[80];
		uint32_t klen = shf_test_key(key, i),
			 vlen = shf_test_val(v, i, 0);

		bytes_min += entry_min(klen, vlen);
		bytes_max += entry_max(klen, vlen);
	}
}

static int kid_stats_fields(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	struct shf_stats st;
	uint32_t i, r;

	(void)idx;
	if (!shf)
		return kfail(j, 1, "attach: %s", strerror(errno));
	KCHECK(get_stats(shf, &st) == 0, 2, "stats");
	KCHECK(st.byte_budget == (1u << 20) && st.ttl_default_ms == 1234, 3,
	       "child reads budget %llu, default TTL %u",
	       (unsigned long long)st.byte_budget, st.ttl_default_ms);
	KCHECK(shf_set_byte_budget(shf, 2u << 20) == SHF_RET_OK, 4,
	       "set_byte_budget");
	KCHECK(shf_set_ttl_default(shf, 0) == SHF_RET_OK, 5, "set_ttl_default");
	for (i = 0; i < 100; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0);

		shf_test_hash(i);
		r = shf_put_key_val(shf, v, len);
		KCHECK(r == SHF_RET_KEY_PUT, 6, "put %u: %u", i, r);
	}
	KCHECK(get_stats(shf, &st) == 0, 7, "stats");
	KCHECK(st.bytes_cached >= bytes_min && st.bytes_cached <= bytes_max, 8,
	       "bytes_cached %llu for 100 keys, not %llu .. %llu",
	       (unsigned long long)st.bytes_cached,
	       (unsigned long long)bytes_min, (unsigned long long)bytes_max);
	shf_detach(shf);
	return 0;
}

START_TEST(test_stats_fields)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("statsfields", &shf, 0, 0);
	struct shf_stats st, old;
	const unsigned char *ob = (const unsigned char *)&old;
	size_t old_size = offsetof(struct shf_stats, ttl_default_ms), b;
	uint32_t i;

	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.byte_budget, 0);
	ck_assert_uint_eq(st.ttl_default_ms, 0);
	ck_assert_uint_eq(st.bytes_cached, 0);
	ck_assert_uint_eq(st.evictions, 0);
	ck_assert_uint_eq(st.expirations, 0);
	ck_assert_uint_eq(st.leases, 0);
	ck_assert_uint_eq(st.lease_waits, 0);
	shf_assert_eq(shf_set_byte_budget(shf, 1u << 20), SHF_RET_OK);
	shf_assert_eq(shf_set_ttl_default(shf, 1234), SHF_RET_OK);
	sizes_of_keys(100);
	run_kids(j, 1, kid_stats_fields);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.byte_budget, 2u << 20);
	ck_assert_uint_eq(st.ttl_default_ms, 0);
	ck_assert_uint_eq(st.keys, 100);
	ck_assert_uint_ge(st.bytes_cached, bytes_min);
	ck_assert_uint_le(st.bytes_cached, bytes_max);
	ck_assert_uint_eq(st.evictions, 0);
	/* The keys put by the child have no TTL (default set to 0 first). */
	shf_test_hash(0);
	shf_assert_eq(shf_get_key_ttl(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, -1);
	for (i = 0; i < 100; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.bytes_cached, 0);
	ck_assert_uint_eq(st.keys, 0);
	/* A caller built against 1.0 gets the 1.0 fields only. */
	memset(&old, 0xa5, sizeof(old));
	shf_assert_eq(shf_get_stats(shf, &old, old_size), SHF_RET_OK);
	for (b = old_size; b < sizeof(old); b++)
		ck_assert_msg(ob[b] == 0xa5, "byte %zu past size %zu written",
			      b, old_size);
	ck_assert_uint_eq(old.keys, 0);
	shf_test_job_end(j, shf);
}
END_TEST

/* ==== 15. writers killed at random instants in a cache table ======= */

#define RK_KEYS 3000u
#define RK_MAXV 120u
#define RK_KILLS 40u
#define RK_BUDGET (48u << 10)
#define RK_LEASE_MS 200u
#define RK_TTL_MS 300u

/*
 * Put, delete, get and get-or-lease random keys, with and without TTLs,
 * until killed.  Every value found must be the key's own.
 */
static void rk_writer(struct shf_test_job *j, uint64_t seed)
{
	char key[40], val[RK_MAXV + 8];
	SHF *shf = shf_test_attach_existing(j->name);

	if (!shf)
		_exit(kfail(j, 1, "writer: attach: %s", strerror(errno)));
	for (;;) {
		uint64_t k = xorshift(&seed) % RK_KEYS, op = xorshift(&seed) % 10;
		int n = snprintf(key, sizeof(key), "key-%llu",
				 (unsigned long long)k);
		uint32_t len = kval(val, k, RK_MAXV), r;

		shf_make_hash(key, (uint32_t)n);
		if (op < 4) {
			r = shf_put_key_val_ttl(shf, val, len,
						op == 0 ? RK_TTL_MS : 0);
			if (r != SHF_RET_KEY_PUT)
				_exit(kfail(j, 2, "put %s: %#x %s", key, r,
					    strerror(errno)));
		} else if (op == 4) {
			r = shf_del_key_val(shf);
			if (r & SHF_RET_ERROR)
				_exit(kfail(j, 3, "del %s: %s", key,
					    strerror(errno)));
		} else if (op == 5) {
			r = shf_get_key_val_copy_or_lease(shf, RK_LEASE_MS, 50);
			if (r == LEASED) {
				shf_make_hash(key, (uint32_t)n);
				r = shf_put_key_val(shf, val, len);
				if (r != SHF_RET_KEY_PUT)
					_exit(kfail(j, 4, "put lease %s: %#x", key,
						    r));
			} else if (r == SHF_RET_KEY_FOUND) {
				if (!kval_ok(shf_val, shf_val_len, k, RK_MAXV))
					_exit(kfail(j, 5, "lease get %s: wrong value",
						    key));
			} else if (!(r & SHF_RET_ERROR) || errno != ETIMEDOUT) {
				_exit(kfail(j, 6, "get or lease %s: %#x %s", key,
					    r, strerror(errno)));
			}
		} else {
			r = shf_get_key_val_copy(shf);
			if (r == SHF_RET_KEY_FOUND &&
			    !kval_ok(shf_val, shf_val_len, k, RK_MAXV))
				_exit(kfail(j, 7, "get %s: wrong value", key));
			if (r & SHF_RET_ERROR)
				_exit(kfail(j, 8, "get %s: %s", key,
					    strerror(errno)));
		}
	}
}

static pid_t rk_spawn(struct shf_test_job *j, uint64_t seed)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		rk_writer(j, seed); /* never returns */
	return pid;
}

START_TEST(test_cache_random_kills)
{
	struct shf_test_job *j;
	struct shf_stats st;
	uint64_t rs = 0xcafe, seed = 1, max_entry = entry_max(16, RK_MAXV);
	double worst = 0;
	pid_t pid[2];
	uint32_t kill_n, w, i;
	int status;
	SHF *shf;

	j = shf_test_job_new("kills", &shf, 0, 0);
	shf_assert_eq(shf_set_byte_budget(shf, RK_BUDGET), SHF_RET_OK);
	for (w = 0; w < 2; w++)
		pid[w] = rk_spawn(j, seed++);
	for (kill_n = 0; kill_n < RK_KILLS; kill_n++) {
		double t0, t;
		char key[32];

		w = (uint32_t)(xorshift(&rs) % 2);
		usleep((useconds_t)(2000 + xorshift(&rs) % 20000));
		kill(pid[w], SIGKILL);
		ck_assert_int_eq(waitpid(pid[w], &status, 0), pid[w]);
		ck_assert_msg(WIFSIGNALED(status), "writer exited (%d): %s",
			      status, j->sh->failed ? j->sh->msg : "");
		/* every shard's lock is usable at once */
		t0 = shf_test_now();
		for (i = 0; i < 512; i++) {
			int n = snprintf(key, sizeof(key), "probe-%u", i);

			shf_make_hash(key, (uint32_t)n);
			shf_assert_eq(shf_put_key_val(shf, "p", 1),
				      SHF_RET_KEY_PUT);
			shf_make_hash(key, (uint32_t)n);
			shf_del_key_val(shf);
		}
		t = shf_test_now() - t0;
		if (t > worst)
			worst = t;
		shf_test_stats(shf, &st);
		ck_assert_msg(st.bytes_cached <= RK_BUDGET + 2 * max_entry,
			      "after kill %u: bytes_cached %llu over budget %u",
			      kill_n, (unsigned long long)st.bytes_cached,
			      RK_BUDGET);
		pid[w] = rk_spawn(j, seed++);
	}
	for (w = 0; w < 2; w++) {
		kill(pid[w], SIGKILL);
		ck_assert_int_eq(waitpid(pid[w], &status, 0), pid[w]);
	}
	ck_assert_msg(!j->sh->failed, "a writer failed: %s", j->sh->msg);
	ck_assert_msg(worst < 2.0 * shf_test_multiplier(),
		      "a put and a delete in every shard took %.3f s after a kill",
		      worst);
	/* structure and counters sound, every stored value right */
	shf_test_check_sound(shf);
	shf_test_stats(shf, &st);
	ck_assert_msg(st.evictions > 0, "no eviction in %u kills", RK_KILLS);
	/* leases of dead writers and TTL keys run out, then are reclaimed */
	shf_test_msleep(RK_TTL_MS + RK_LEASE_MS + 50);
	ck_assert_uint_ne(shf_expire(shf, UINT32_MAX), UINT32_MAX);
	check_walk(shf, RK_MAXV);
	shf_test_stats(shf, &st);
	printf("cache random kills: %u kills, worst recovery (1024 writes) "
	       "%.1f ms, %llu keys, %llu evictions, %llu expirations, %llu "
	       "leases, %llu recoveries\n",
	       RK_KILLS, worst * 1e3, (unsigned long long)st.keys,
	       (unsigned long long)st.evictions,
	       (unsigned long long)st.expirations,
	       (unsigned long long)st.leases,
	       (unsigned long long)st.recoveries);
	shf_test_job_end(j, shf);
}
END_TEST

/*
 * A replace that moves the key out of its cell (a value of another size
 * class) counts what it stores: its record elsewhere has a longer header
 * than the home record the budget was reserved for, and a delete takes
 * back what the record costs, so bytes_cached must end at 0, not wrap.
 */
START_TEST(test_budget_count_record_moved)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("budgetmoved", &shf, 0, 0);
	struct shf_stats st;
	char v[64];
	uint32_t i;

	memset(v, 'v', sizeof(v));
	shf_assert_eq(shf_set_byte_budget(shf, 1u << 20), SHF_RET_OK);
	for (i = 0; i < 8; i++) {
		/* 8-byte key: home 4 + 8 + 4 = 16, then 4 + 8 + 12 = 24
		 * (another class: elsewhere, 6 + 8 + 12 = 26, costs 28) */
		shf_make_hash("key-move", 8);
		shf_assert_eq(shf_put_key_val(shf, v, 4), SHF_RET_KEY_PUT);
		shf_assert_eq(shf_put_key_val(shf, v, 12), SHF_RET_KEY_PUT);
		shf_test_stats(shf, &st);
		ck_assert_uint_eq(st.bytes_cached, 28);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
		shf_test_stats(shf, &st);
		ck_assert_uint_eq(st.bytes_cached, 0);
	}
	shf_test_job_end(j, shf);
}
END_TEST

/*
 * An add (same length, same flags) may move the value back into its cell
 * (a record that went elsewhere when the put dropped its TTL), with a
 * shorter header: the budget's count follows, and ends at 0.
 */
START_TEST(test_budget_count_add_home)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("budgetadd", &shf, 0, 0);
	struct shf_stats st;
	long v = 41;

	shf_assert_eq(shf_set_byte_budget(shf, 1u << 20), SHF_RET_OK);
	shf_make_hash("key-adds", 8);
	/* home, with a TTL: 4 + 8 + 8 = 20 */
	shf_assert_eq(shf_put_key_val_ttl(shf, "", 0, 1000000),
		      SHF_RET_KEY_PUT);
	/* no TTL, a cell of its class but another header: elsewhere,
	 * 6 + 8 + 8 = 22 (costs 24) */
	shf_assert_eq(shf_put_key_val(shf, (const char *)&v, sizeof(v)),
		      SHF_RET_KEY_PUT);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.bytes_cached, 24);
	/* back home: 4 + 8 + 8 = 20 */
	shf_assert_eq(shf_add_key_val(shf, 1), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 42);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.bytes_cached, 20);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_test_stats(shf, &st);
	ck_assert_uint_eq(st.bytes_cached, 0);
	shf_test_job_end(j, shf);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");

	shf_test_add_tcase(s, "ttl", 60, test_ttl_visible_then_gone,
			   test_ttl_default_shared, test_expired_semantics,
			   test_expired_reclaimed, test_ttl_query_is_no_use);

	shf_test_add_tcase(s, "budget", 60, test_budget_never_exceeded,
			   test_eviction_with_readers,
			   test_clock_keeps_hot_keys);

	shf_test_add_tcase(s, "lease", 60, test_lease_single_computer,
			   test_lease_holder_killed,
			   test_lease_expires_alive_holder,
			   test_lease_wait_timeout, test_lease_give_up,
			   test_fill_if_leased, test_lease_adopt,
			   test_lease_other_time_namespace,
			   test_lease_after_unshare,
			   test_lease_holder_leader_exited,
			   test_lease_wait_counts_one_miss);

	shf_test_add_tcase(s, "stats", 60, test_hits_misses_counted,
			   test_stats_fields, test_budget_count_record_moved,
			   test_budget_count_add_home);

	shf_test_add_tcase(s, "kills", 120, test_cache_random_kills);

	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(cache_suite());
}
