/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_mp.c - several processes (and threads) on one table.
 *
 * Children attach by name, as unrelated processes would, never ck_assert,
 * and _exit(0) on success; the parent checks the table afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

#define KID_TIMEOUT 100.0

/* What the children share with the parent (MAP_SHARED). */
struct shared {
	uint64_t acked; /* puts acknowledged by a child */
	uint32_t ready; /* children that reached a point */
	uint32_t done; /* the writer is done */
	uint32_t errors;
	uint32_t uids[20000];
};

static uint64_t iterate_count(SHF *shf)
{
	uint64_t n = 0;

	shf_assert_eq(shf_iterate(shf, shf_test_count_cb, &n), SHF_RET_OK);
	return n;
}

/* Put key, a new one, with val; the children find its UID in uids[0]. */
static void put_uid0(struct shf_test_job *j, SHF *shf, const char *key,
		     const char *val, uint32_t len)
{
	shf_make_hash(key, (uint32_t)strlen(key));
	shf_assert_eq(shf_put_key_val(shf, val, len), SHF_RET_KEY_PUT);
	j->sh->uids[0] = shf_uid;
}

/* ---- disjoint and shared keys --------------------------------------- */

static int kid_disjoint(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t i, from = (uint64_t)idx * j->n;

	if (!shf)
		return 1;
	for (i = from; i < from + j->n; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, (uint32_t)idx);

		shf_test_hash(i);
		if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT)
			return 2;
	}
	/* Read back own keys while the others are still writing. */
	for (i = from; i < from + j->n; i++) {
		shf_test_hash(i);
		if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND ||
		    !shf_test_val_ok(shf_val, shf_val_len, i, j->kids, NULL))
			return 3;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_disjoint)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("disjoint", &shf, 25000, 4);

	ck_assert_int_eq(shf_test_run(4, kid_disjoint, j, KID_TIMEOUT), 0);
	shf_test_check_keys(shf, 0, 100000, 4);
	shf_assert_eq(shf_test_keys(shf), 100000);
	shf_assert_eq(iterate_count(shf), 100000);
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_shared(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t pass, i;

	if (!shf)
		return 1;
	for (pass = 0; pass < 5; pass++) {
		for (i = 0; i < j->n; i++) {
			/* Each child walks in its own order. */
			uint64_t k = (i * 7919u + (uint32_t)idx * 131u + pass) %
				     j->n;
			char v[80];
			uint32_t len = shf_test_val(v, k, (uint32_t)idx);

			shf_test_hash(k);
			if (!(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT))
				return 2;
			shf_test_hash((k * 13) % j->n);
			if (shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND &&
			    !shf_test_val_ok(shf_val, shf_val_len,
					     (k * 13) % j->n, j->kids, NULL))
				return 3;
		}
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_shared_keys)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("shared", &shf, 3000, 4);

	ck_assert_int_eq(shf_test_run(4, kid_shared, j, KID_TIMEOUT), 0);
	shf_test_check_keys(shf, 0, j->n, 4);
	shf_assert_eq(shf_test_keys(shf), j->n);
	shf_assert_eq(iterate_count(shf), j->n);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- counters ------------------------------------------------------- */

static int kid_add(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i;

	if (!shf)
		return 1;
	/* j->kids is the mode: 0 add, 1 add_atom, 2 both (by child). */
	for (i = 0; i < j->n; i++) {
		uint32_t ret;
		int atom = j->kids == 1 ? 1 : j->kids == 2 ? (idx & 1) : 0;

		shf_make_hash("counter", 7);
		ret = atom ? shf_add_key_val_atom(shf, 1) :
			     shf_add_key_val(shf, 1);
		if (ret != SHF_RET_KEY_FOUND || shf_val_long <= 0)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

static void run_counter(const char *tag, uint32_t mode)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new(tag, &shf, 20000, mode);
	long v;

	ck_assert_int_eq(shf_test_run(4, kid_add, j, KID_TIMEOUT), 0);
	shf_make_hash("counter", 7);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, sizeof(long));
	memcpy(&v, shf_val, sizeof(v));
	ck_assert_int_eq(v, 4L * 20000);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_job_end(j, shf);
}

START_TEST(test_mp_add_counter)
{
	run_counter("add", 0);
}
END_TEST

START_TEST(test_mp_add_atom_counter)
{
	run_counter("addatom", 1);
}
END_TEST

START_TEST(test_mp_add_mixed_counter)
{
	run_counter("addmixed", 2);
}
END_TEST

static int kid_add_uid(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i, uid = j->sh->uids[0];

	if (!shf)
		return 1;
	for (i = 0; i < j->n; i++) {
		long add = (idx & 1) ? -1 : 3;
		uint32_t ret = (i & 1) ? shf_add_uid_val(shf, uid, add) :
					 shf_add_uid_val_atom(shf, uid, add);

		if (ret != SHF_RET_KEY_FOUND)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_add_uid_counter)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("adduid", &shf, 20000, 4);
	long v = 1000000;

	put_uid0(j, shf, "counter", (char *)&v, sizeof(v));
	ck_assert_int_eq(shf_test_run(4, kid_add_uid, j, KID_TIMEOUT), 0);
	shf_assert_eq(shf_get_uid_val_copy(shf, j->sh->uids[0]),
		      SHF_RET_KEY_FOUND);
	memcpy(&v, shf_val, sizeof(v));
	/* Two children +3, two -1, 20000 times each. */
	ck_assert_int_eq(v, 1000000L + 2L * 20000 * 3 - 2L * 20000);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- puts racing deletes -------------------------------------------- */

static int kid_put_del(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i;

	if (!shf)
		return 1;
	for (i = 0; i < 30000; i++) {
		uint64_t k = (i * 2654435761u + (uint32_t)idx) % j->n;
		uint32_t ret;

		shf_test_hash(k);
		if (idx < 2) {
			char v[80];
			uint32_t len = shf_test_val(v, k, (uint32_t)idx);

			ret = shf_put_key_val(shf, v, len);
			if (!(ret & SHF_RET_KEY_PUT) || (ret & SHF_RET_ERROR))
				return 2;
		} else {
			ret = shf_del_key_val(shf);
			if (ret != SHF_RET_KEY_FOUND && ret != SHF_RET_KEY_NONE)
				return 3;
		}
		shf_test_hash((k + 1) % j->n);
		ret = shf_get_key_val_copy(shf);
		if (ret == SHF_RET_KEY_FOUND) {
			if (!shf_test_val_ok(shf_val, shf_val_len,
					     (k + 1) % j->n, 2, NULL))
				return 4;
		} else if (ret != SHF_RET_KEY_NONE) {
			return 5;
		}
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_put_del_race)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("putdel", &shf, 1000, 4);
	uint64_t present = 0, i;

	ck_assert_int_eq(shf_test_run(4, kid_put_del, j, KID_TIMEOUT), 0);
	for (i = 0; i < j->n; i++) {
		uint32_t ret;

		shf_test_hash(i);
		ret = shf_get_key_val_copy(shf);
		if (ret == SHF_RET_KEY_NONE)
			continue;
		shf_assert_eq(ret, SHF_RET_KEY_FOUND);
		shf_assert_msg(shf_test_val_ok(shf_val, shf_val_len, i, 2,
					       NULL),
			       "key %llu: bad value", (unsigned long long)i);
		present++;
	}
	shf_assert_eq(shf_test_keys(shf), present);
	shf_assert_eq(iterate_count(shf), present);
	/* The table still works normally. */
	for (i = 0; i < j->n; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0);

		shf_test_hash(i);
		shf_assert(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT);
	}
	shf_test_check_keys(shf, 0, j->n, 1);
	shf_assert_eq(shf_test_keys(shf), j->n);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- growth while others read ---------------------------------------- */

#define BASE_KEYS 10000u
#define GROW_KEYS 500000u

static int kid_grow_or_read(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t i;

	if (!shf)
		return 1;
	if (idx == 0) {
		for (i = BASE_KEYS; i < BASE_KEYS + GROW_KEYS; i++) {
			char v[80];
			uint32_t len = shf_test_val(v, i, 0);

			shf_test_hash(i);
			if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT) {
				shf_test_add_u32(&j->sh->done, 1);
				return 2;
			}
		}
		shf_test_add_u32(&j->sh->done, 1);
	} else {
		uint32_t last = 0;
		uint64_t passes = 0;

		/* Go on until the writer is done, then one more pass. */
		while (!last) {
			last = shf_test_load_u32(&j->sh->done);
			for (i = 0; i < BASE_KEYS; i++) {
				uint64_t k =
					(i * 7 + (uint64_t)idx) % BASE_KEYS;

				shf_test_hash(k);
				if (shf_get_key_val_copy(shf) !=
					    SHF_RET_KEY_FOUND ||
				    !shf_test_val_ok(shf_val, shf_val_len, k, 1,
						     NULL) ||
				    shf_uid != j->sh->uids[k])
					return 3;
				if (shf_get_uid_key_copy(shf, j->sh->uids[k]) !=
				    SHF_RET_KEY_FOUND)
					return 4;
			}
			passes++;
		}
		if (passes < 1)
			return 5;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_growth_while_reading)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("growread", &shf, 0, 1);

	shf_test_fill(shf, 0, BASE_KEYS, 0, j->sh->uids);
	ck_assert_int_eq(shf_test_run(3, kid_grow_or_read, j, KID_TIMEOUT), 0);
	shf_test_check_keys(shf, 0, BASE_KEYS + GROW_KEYS, 1);
	shf_assert_eq(shf_test_keys(shf), BASE_KEYS + GROW_KEYS);
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_grow(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t i;

	(void)idx;
	if (!shf)
		return 1;
	for (i = 1000; i < 1000 + GROW_KEYS; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 1);

		shf_test_hash(i);
		if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_uids_stable_through_growth)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("uidgrow", &shf, 0, 1);
	uint32_t i;

	shf_test_fill(shf, 0, 1000, 0, j->sh->uids);
	ck_assert_int_eq(shf_test_run(1, kid_grow, j, KID_TIMEOUT), 0);
	for (i = 0; i < 1000; i++) {
		char key[32];
		uint32_t klen = shf_test_key(key, i);

		shf_assert_eq(shf_get_uid_key_copy(shf, j->sh->uids[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_key_len, klen);
		ck_assert_mem_eq(shf_key, key, klen);
		shf_assert_eq(shf_get_uid_val_copy(shf, j->sh->uids[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert(shf_test_val_ok(shf_val, shf_val_len, i, 1, NULL));
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_uid, j->sh->uids[i]);
	}
	shf_assert_eq(shf_test_keys(shf), 1000 + GROW_KEYS);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- visibility between processes ------------------------------------ */

static int kid_sees_and_writes(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	/* Child 0 attaches by name, child 1 uses the inherited handle. */
	SHF *shf = idx == 0 ? shf_test_attach_existing(j->name) : j->inherited;
	uint64_t i, from = 1000 + (uint64_t)idx * 1000;

	if (!shf)
		return 1;
	/* Key 0 may already hold the other child's value (writer 1 or 2). */
	for (i = 0; i < 1000; i++) {
		shf_test_hash(i);
		if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND ||
		    !shf_test_val_ok(shf_val, shf_val_len, i, i ? 1 : 3, NULL))
			return 2;
	}
	for (i = from; i < from + 1000; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0);

		shf_test_hash(i);
		if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT)
			return 3;
	}
	/* Parent's key 0 replaced, its UID kept. */
	{
		char v[80];
		uint32_t len = shf_test_val(v, 0, (uint32_t)idx + 1);

		shf_test_hash(0);
		if (!(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT) ||
		    shf_uid != j->sh->uids[0])
			return 4;
	}
	if (idx == 0)
		shf_detach(shf);
	return 0;
}

START_TEST(test_mp_child_writes_seen)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("seen", &shf, 0, 1);

	shf_test_fill(shf, 0, 1000, 0, j->sh->uids);
	j->inherited = shf;
	ck_assert_int_eq(shf_test_run(2, kid_sees_and_writes, j, KID_TIMEOUT),
			 0);
	shf_test_check_keys(shf, 1, 3000, 1);
	shf_test_check_keys(shf, 0, 1, 3);
	shf_test_hash(0);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_uid, j->sh->uids[0]);
	shf_assert_eq(shf_test_keys(shf), 3000);
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_del_by_uid(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i;

	if (!shf)
		return 1;
	for (i = (uint32_t)idx; i < 2000; i += 4)
		if (shf_del_uid_val(shf, j->sh->uids[i]) != SHF_RET_KEY_FOUND)
			return 2;
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_uid_ops_across_processes)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("uidops", &shf, 0, 1);
	uint32_t i;

	shf_test_fill(shf, 0, 4000, 0, j->sh->uids);
	/* UIDs mean the same in every process: 4 children delete 0..1999. */
	ck_assert_int_eq(shf_test_run(4, kid_del_by_uid, j, KID_TIMEOUT), 0);
	for (i = 0; i < 4000; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf),
			      i < 2000 ? SHF_RET_KEY_NONE : SHF_RET_KEY_FOUND);
		if (i >= 2000)
			shf_assert_eq(shf_uid, j->sh->uids[i]);
	}
	shf_assert_eq(shf_test_keys(shf), 2000);
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_fixed(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	char k[8], v[12];

	if (!shf)
		return 1;
	memset(k, 'a' + idx, sizeof(k));
	memset(v, 'v', sizeof(v));
	errno = 0;
	shf_make_hash(k, 8);
	if (shf_put_key_val(shf, v, 11) != (SHF_RET_ERROR | SHF_RET_BAD_VAL) ||
	    errno != EINVAL)
		return 2;
	errno = 0;
	shf_make_hash(k, 7);
	if (shf_put_key_val(shf, v, 12) != (SHF_RET_ERROR | SHF_RET_BAD_VAL) ||
	    errno != EINVAL)
		return 3;
	shf_make_hash(k, 8);
	if (shf_put_key_val(shf, v, 12) != SHF_RET_KEY_PUT)
		return 4;
	/* Nor can a child change the lengths of a non-empty table. */
	errno = 0;
	shf_set_is_fixed_len(shf, 16, 16);
	if (errno != EBUSY)
		return 5;
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_fixed_len_other_process)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("fixedmp", &shf, 0, 1);
	struct shf_stats st;
	char k[8];
	int i;

	shf_set_is_fixed_len(shf, 8, 12);
	ck_assert_int_eq(shf_test_run(2, kid_fixed, j, KID_TIMEOUT), 0);
	for (i = 0; i < 2; i++) {
		memset(k, 'a' + i, sizeof(k));
		shf_make_hash(k, 8);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, 12);
	}
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 8);
	shf_assert_eq(st.fixed_val_len, 12);
	shf_assert_eq(st.keys, 2);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- crashes -------------------------------------------------------- */

static int kid_put_forever(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t base = (uint64_t)j->n * 1000000u;
	uint64_t i;

	(void)idx;
	if (!shf)
		return 1;
	shf_test_add_u32(&j->sh->ready, 1);
	for (i = 0;; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, base + i, 0);

		shf_test_hash(base + i);
		if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT)
			return 2;
		/* And a replacement and a delete in the busy small set. */
		shf_test_hash(base + 900000 + i % 64);
		len = shf_test_val(v, base + 900000 + i % 64, 0);
		if (!(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT))
			return 3;
		shf_test_hash(base + 900000 + (i + 32) % 64);
		shf_del_key_val(shf);
		__atomic_store_n(&j->sh->acked, i + 1, __ATOMIC_SEQ_CST);
	}
	return 0;
}

/* Longest a call may take after a crash: 2 s, and scheduling slack. */
static double crash_limit(void)
{
	return 2.0 * shf_test_multiplier() + 0.5;
}

START_TEST(test_mp_sigkill_mid_put)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("sigkill", &shf, 0, 1);
	uint32_t round;

	for (round = 0; round < 16; round++) {
		struct shf_test_kids k;
		uint64_t base = (uint64_t)round * 1000000u, acked, i;
		double t, worst = 0;
		int status;

		j->n = round;
		j->sh->acked = 0;
		j->sh->ready = 0;
		shf_test_spawn(&k, 1, kid_put_forever, j);
		shf_test_go(&k);
		/* Let it get going (some growth), then kill it mid-loop. */
		t = shf_test_now() + 30 * shf_test_multiplier();
		while (__atomic_load_n(&j->sh->acked, __ATOMIC_SEQ_CST) <
			       2000u + (round % 8) * 3000u &&
		       shf_test_now() < t)
			shf_test_msleep(1);
		shf_test_msleep((round * 5) % 23 + 1);
		kill(k.pid[0], SIGKILL);
		status = shf_test_waitpid(k.pid[0], 10);
		shf_assert_msg(status != -1 && WIFSIGNALED(status) &&
				       WTERMSIG(status) == SIGKILL,
			       "round %u: child ended otherwise (%d)", round,
			       status);
		acked = __atomic_load_n(&j->sh->acked, __ATOMIC_SEQ_CST);
		ck_assert_uint_ge(acked, 2000);

		/* Every call returns promptly and finds what was acked. */
		for (i = 0; i < acked + 1; i++) {
			double t0 = shf_test_now(), dt;
			uint32_t ret;

			shf_test_hash(base + i);
			ret = shf_get_key_val_copy(shf);
			dt = shf_test_now() - t0;
			worst = dt > worst ? dt : worst;
			if (i == acked && ret == SHF_RET_KEY_NONE)
				continue; /* killed before its put */
			shf_assert_msg(ret == SHF_RET_KEY_FOUND,
				       "round %u key %llu of %llu: ret %u",
				       round, (unsigned long long)i,
				       (unsigned long long)acked, ret);
			shf_assert(shf_test_val_ok(shf_val, shf_val_len,
						   base + i, 1, NULL));
		}
		for (i = 0; i < 64; i++) {
			double t0 = shf_test_now(), dt;
			uint64_t key = base + 900000 + i;
			char v[80];
			uint32_t len = shf_test_val(v, key, 0), ret;

			shf_test_hash(key);
			ret = shf_get_key_val_copy(shf);
			shf_assert(ret == SHF_RET_KEY_NONE ||
				   (ret == SHF_RET_KEY_FOUND &&
				    shf_test_val_ok(shf_val, shf_val_len, key,
						    1, NULL)));
			shf_test_hash(key);
			shf_assert(shf_put_key_val(shf, v, len) &
				   SHF_RET_KEY_PUT);
			dt = shf_test_now() - t0;
			worst = dt > worst ? dt : worst;
		}
		/* New keys in every shard. */
		for (i = 0; i < 4096; i++) {
			double t0 = shf_test_now(), dt;
			char v[80];
			uint32_t len = shf_test_val(v, base + 800000 + i, 0);

			shf_test_hash(base + 800000 + i);
			shf_assert_eq(shf_put_key_val(shf, v, len),
				      SHF_RET_KEY_PUT);
			dt = shf_test_now() - t0;
			worst = dt > worst ? dt : worst;
		}
		shf_assert_msg(worst < crash_limit(),
			       "round %u: a call took %.2f s after the crash",
			       round, worst);
		shf_test_check_keys(shf, base + 800000, base + 800000 + 4096,
				    1);
		shf_test_check_keys(shf, base + 900000, base + 900000 + 64, 1);
		shf_test_check_sound(shf);
	}
	/* Structure intact: the count and the walk agree. */
	shf_assert_eq(iterate_count(shf), shf_test_keys(shf));
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_writer_acked(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t i, from = (uint64_t)idx * j->n;

	if (!shf)
		return 1;
	for (i = from; i < from + j->n; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0);

		shf_test_hash(i);
		if (shf_put_key_val(shf, v, len) != SHF_RET_KEY_PUT)
			return 2;
		__atomic_store_n(&j->sh->uids[idx], (uint32_t)(i - from + 1),
				 __ATOMIC_SEQ_CST);
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_sigkill_among_writers)
{
	SHF *shf;
	struct shf_test_job *j =
		shf_test_job_new("killwriter", &shf, 100000, 3);
	struct shf_test_kids k;
	uint32_t acked;
	double end;
	int i, status;

	/* Three writers grow the table; one is killed on the way. */
	shf_test_spawn(&k, 3, kid_writer_acked, j);
	shf_test_go(&k);
	end = shf_test_now() + 60 * shf_test_multiplier();
	while (shf_test_load_u32(&j->sh->uids[0]) < 20000 &&
	       shf_test_now() < end)
		shf_test_msleep(1);
	kill(k.pid[0], SIGKILL);
	/* The others are not blocked: they finish all their puts. */
	for (i = 0; i < 3; i++) {
		status = shf_test_waitpid(k.pid[i], KID_TIMEOUT);
		k.status[i] = status;
		shf_assert_msg(status != -1, "writer %d hung", i);
		if (i == 0)
			shf_assert(WIFSIGNALED(status) || WIFEXITED(status));
		else
			shf_assert_msg(WIFEXITED(status) &&
					       WEXITSTATUS(status) == 0,
				       "writer %d failed (%#x)", i, status);
	}
	acked = shf_test_load_u32(&j->sh->uids[0]);
	shf_assert(acked >= 20000);
	shf_test_check_keys(shf, 0, acked, 1);
	shf_test_check_keys(shf, 100000, 300000, 1);
	/* The killed writer's next key is either there or not. */
	{
		uint64_t keys = shf_test_keys(shf);

		shf_assert_msg(keys == 200000u + acked ||
				       keys == 200000u + acked + 1,
			       "%llu keys for %u acked",
			       (unsigned long long)keys, acked);
		shf_assert_eq(iterate_count(shf), keys);
	}
	shf_test_job_end(j, shf);
}
END_TEST

static uint32_t upd_die(const char *val, uint32_t val_len)
{
	char *p = (char *)val;

	/* Scribble, then die holding the shard's lock. */
	if (val_len > 0)
		p[0] = 'X';
	raise(SIGKILL);
	return SHF_RET_OK;
}

static int kid_die_in_upd(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);

	if (!shf)
		return 1;
	(void)idx;
	shf_upd_callback_set(upd_die);
	if (j->n == 0) {
		shf_make_hash("victim", 6);
		shf_upd_key_val(shf);
	} else {
		shf_upd_uid_val(shf, j->sh->uids[0]);
	}
	return 2; /* not reached */
}

START_TEST(test_mp_sigkill_holding_lock)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("lockdeath", &shf, 0, 1);
	struct shf_stats st;
	int round;

	for (round = 0; round < 2; round++) {
		struct shf_test_kids k;
		double t0, dt;
		int status;
		uint32_t i;

		for (i = 0; i < 1000; i++) {
			char v[80];
			uint32_t len = shf_test_val(v, i, 0);

			shf_test_hash(i);
			shf_assert(shf_put_key_val(shf, v, len) &
				   SHF_RET_KEY_PUT);
		}
		shf_make_hash("victim", 6);
		shf_assert(shf_put_key_val(shf, "victim value", 12) &
			   SHF_RET_KEY_PUT);
		j->sh->uids[0] = shf_uid;

		/* Round 0 updates by key, round 1 by UID. */
		j->n = (uint32_t)round;
		shf_test_spawn(&k, 1, kid_die_in_upd, j);
		shf_test_go(&k);
		status = shf_test_waitpid(k.pid[0], 30);
		shf_assert_msg(status != -1 && WIFSIGNALED(status) &&
				       WTERMSIG(status) == SIGKILL,
			       "child did not die in the callback (%d)",
			       status);

		/* The same shard is usable within the limit. */
		t0 = shf_test_now();
		shf_make_hash("victim", 6);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		dt = shf_test_now() - t0;
		shf_assert_msg(dt < crash_limit(), "get took %.2f s", dt);
		shf_assert_eq(shf_val_len, 12);
		shf_assert_eq(shf_uid, j->sh->uids[0]);
		t0 = shf_test_now();
		shf_make_hash("victim", 6);
		shf_assert(shf_put_key_val(shf, "after", 5) & SHF_RET_KEY_PUT);
		dt = shf_test_now() - t0;
		shf_assert_msg(dt < crash_limit(), "put took %.2f s", dt);
		shf_make_hash("victim", 6);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, 5);
		ck_assert_mem_eq(shf_val, "after", 5);
		shf_assert_eq(shf_uid, j->sh->uids[0]);
		shf_test_check_keys(shf, 0, 1000, 1);
		shf_test_check_sound(shf);
	}
	shf_test_stats(shf, &st);
	ck_assert_uint_ge(st.recoveries, 2);
	shf_assert_eq(st.keys, 1001);
	shf_assert_eq(iterate_count(shf), 1001);
	shf_test_job_end(j, shf);
}
END_TEST

/* A put of another key from another thread (of a _Fork() child). */
static void *put_other(void *arg)
{
	SHF *shf = arg;

	shf_make_hash("other", 5);
	return shf_put_key_val(shf, "x", 1) == SHF_RET_KEY_PUT ? arg : NULL;
}

/*
 * The same, in a child made by _Fork() (or a raw clone()), which runs no
 * atfork handler: it took the lock with the word its parent's thread had
 * made, so the parent met its own word (EDEADLK) and any other writer
 * waited for a holder that was alive (the parent), for ever.  A new
 * thread of the child locks first, so that the child's process-wide
 * mark is set before the thread made by _Fork() locks.
 */
START_TEST(test_mp_sigkill_holding_lock_no_atfork)
{
	SHF_TEST_NEW("lockfork");
	double t0, dt;
	int status;
	pid_t pid;

	if (!shf_test_wipeonfork()) {
		shf_test_del(shf, name);
		return;
	}

	/* this thread's lock word is made here, before the child */
	shf_make_hash("victim", 6);
	shf_assert(shf_put_key_val(shf, "victim value", 12) & SHF_RET_KEY_PUT);
	pid = shf_test_fork_no_atfork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_t th;
		void *ok = NULL;

		if (pthread_create(&th, NULL, put_other, shf) != 0 ||
		    pthread_join(th, &ok) != 0 || ok != shf)
			_exit(3);
		shf_upd_callback_set(upd_die);
		shf_make_hash("victim", 6);
		shf_upd_key_val(shf);
		_exit(2); /* not reached */
	}
	status = shf_test_waitpid(pid, 30);
	shf_assert_msg(status != -1 && WIFSIGNALED(status) &&
			       WTERMSIG(status) == SIGKILL,
		       "child did not die in the callback (%d)", status);
	t0 = shf_test_now();
	shf_make_hash("victim", 6);
	status = (int)shf_put_key_val(shf, "after", 5);
	dt = shf_test_now() - t0;
	shf_assert_msg(status == SHF_RET_KEY_PUT, "put after the child died "
		       "holding the lock: %#x (%s)", status, strerror(errno));
	shf_assert_msg(dt < crash_limit(), "put took %.2f s", dt);
	shf_make_hash("victim", 6);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 5);
	ck_assert_mem_eq(shf_val, "after", 5);
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

/* ---- racing creators ------------------------------------------------- */

static int kid_attach_race(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	char key[16];
	SHF *shf;
	int i;

	shf_init();
	shf = shf_attach(shf_test_dir(), j->name, 0);
	if (!shf)
		return 1;
	snprintf(key, sizeof(key), "kid-%d", idx);
	shf_make_hash(key, (uint32_t)strlen(key));
	if (shf_put_key_val(shf, key, (uint32_t)strlen(key)) != SHF_RET_KEY_PUT)
		return 2;
	shf_test_add_u32(&j->sh->ready, 1);
	if (shf_test_wait_u32(&j->sh->ready, j->kids, KID_TIMEOUT) != 0)
		return 3;
	for (i = 0; i < (int)j->kids; i++) {
		snprintf(key, sizeof(key), "kid-%d", i);
		shf_make_hash(key, (uint32_t)strlen(key));
		if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND ||
		    shf_val_len != strlen(key) ||
		    memcmp(shf_val, key, shf_val_len) != 0)
			return 4;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_attach_race)
{
	int round;

	for (round = 0; round < 10; round++) {
		struct shf_test_job *j;
		char tag[16];
		SHF *shf;
		int i;

		snprintf(tag, sizeof(tag), "race%d", round);
		/* no table: the children create it */
		j = shf_test_job_new(tag, NULL, 0, 4);
		ck_assert_int_eq(
			shf_test_run(4, kid_attach_race, j, KID_TIMEOUT), 0);
		shf = shf_attach_existing(shf_test_dir(), j->name);
		ck_assert_ptr_nonnull(shf);
		shf_assert_eq(shf_test_keys(shf), 4);
		for (i = 0; i < 4; i++) {
			char key[16];

			snprintf(key, sizeof(key), "kid-%d", i);
			shf_make_hash(key, (uint32_t)strlen(key));
			shf_assert_eq(shf_get_key_val_copy(shf),
				      SHF_RET_KEY_FOUND);
		}
		shf_test_job_end(j, shf);
	}
}
END_TEST

/* ---- iteration while others write ------------------------------------ */

static int kid_churn(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint64_t i = 0;

	if (!shf)
		return 1;
	shf_test_add_u32(&j->sh->ready, 1);
	/* Put and delete keys outside the stable set until told to stop. */
	while (!shf_test_load_u32(&j->sh->done)) {
		uint64_t k = 1000000 + (uint64_t)idx * 1000000 + i % 20000;
		char v[80];
		uint32_t len = shf_test_val(v, k, 0);

		shf_test_hash(k);
		if ((i / 20000) & 1) {
			shf_del_key_val(shf);
		} else if (!(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT)) {
			return 2;
		}
		/* Replace stable keys too: they stay alive. */
		if ((i & 15) == 0) {
			uint64_t s = i % 5000;

			len = shf_test_val(v, s, 1);
			shf_test_hash(s);
			if (!(shf_put_key_val(shf, v, len) & SHF_RET_KEY_PUT))
				return 3;
		}
		i++;
	}
	shf_detach(shf);
	return 0;
}

struct stable_seen {
	uint8_t count[5000];
	uint32_t bad;
};

static int stable_cb(const char *key, uint32_t key_len, const char *val,
		     uint32_t val_len, uint32_t uid, void *arg)
{
	struct stable_seen *s = arg;
	unsigned long long i;
	char buf[40];
	int used = 0;

	(void)uid;
	if (key_len >= sizeof(buf))
		goto bad;
	memcpy(buf, key, key_len);
	buf[key_len] = '\0';
	if (sscanf(buf, "key-%llu%n", &i, &used) != 1 || used != (int)key_len)
		goto bad;
	if (i < 5000) {
		if (!shf_test_val_ok(val, val_len, i, 2, NULL))
			goto bad;
		if (s->count[i] < 255)
			s->count[i]++;
	} else if (!shf_test_val_ok(val, val_len, i, 1, NULL)) {
		goto bad;
	}
	return 0;
bad:
	s->bad++;
	return 0;
}

START_TEST(test_mp_iterate_while_writing)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("iterchurn", &shf, 0, 2);
	struct shf_test_kids k;
	struct stable_seen *s = calloc(1, sizeof(*s));
	int walk;
	uint32_t i;

	ck_assert_ptr_nonnull(s);
	shf_test_fill(shf, 0, 5000, 0, NULL);
	shf_test_spawn(&k, 2, kid_churn, j);
	shf_test_go(&k);
	for (i = 0; i < 100000 && shf_test_load_u32(&j->sh->ready) < 2; i++)
		shf_test_msleep(1);
	for (walk = 0; walk < 5; walk++) {
		memset(s, 0, sizeof(*s));
		shf_assert_eq(shf_iterate(shf, stable_cb, s), SHF_RET_OK);
		shf_assert_msg(s->bad == 0, "walk %d: %u bad pairs", walk,
			       s->bad);
		for (i = 0; i < 5000; i++)
			shf_assert_msg(s->count[i] == 1,
				       "walk %d: stable key %u seen %u times",
				       walk, i, s->count[i]);
	}
	shf_test_add_u32(&j->sh->done, 1);
	ck_assert_int_eq(shf_test_wait(&k, KID_TIMEOUT), 0);
	free(s);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- atomic replacement and conditional updates ---------------------- */

#define ATOM_A 1000u
#define ATOM_B 3000u

static int kid_replace_atomic(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	static char a[ATOM_A], b[ATOM_B];
	uint32_t i, k;

	if (!shf)
		return 1;
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	if (idx == 0) {
		/* The writer flips the value between two sizes. */
		for (i = 0; i < j->n; i++) {
			shf_make_hash("atomic", 6);
			if (!(shf_put_key_val(shf, (i & 1) ? b : a,
					      (i & 1) ? ATOM_B : ATOM_A) &
			      SHF_RET_KEY_PUT))
				return 2;
		}
		shf_test_add_u32(&j->sh->done, 1);
	} else {
		/* Readers never see a mix of the two. */
		while (!shf_test_load_u32(&j->sh->done)) {
			shf_make_hash("atomic", 6);
			if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND)
				return 3;
			if (shf_val_len == ATOM_A) {
				for (k = 0; k < ATOM_A; k++)
					if (shf_val[k] != 'a')
						return 4;
			} else if (shf_val_len == ATOM_B) {
				for (k = 0; k < ATOM_B; k++)
					if (shf_val[k] != 'b')
						return 5;
			} else {
				return 6;
			}
			if (shf_uid != j->sh->uids[0])
				return 7;
		}
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_replace_atomic)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("atomicput", &shf, 100000, 3);
	char a[ATOM_A];

	memset(a, 'a', sizeof(a));
	put_uid0(j, shf, "atomic", a, ATOM_A);
	ck_assert_int_eq(shf_test_run(3, kid_replace_atomic, j, KID_TIMEOUT),
			 0);
	shf_make_hash("atomic", 6);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, ATOM_B); /* the last put, i odd */
	shf_assert_eq(shf_uid, j->sh->uids[0]);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_job_end(j, shf);
}
END_TEST

static int kid_cas_increment(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i, tries = 0;

	(void)idx;
	if (!shf)
		return 1;
	for (i = 0; i < j->n; i++) {
		for (;;) {
			uint64_t old, new;
			uint32_t ret;

			shf_make_hash("cas", 3);
			if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND ||
			    shf_val_len != sizeof(old))
				return 2;
			memcpy(&old, shf_val, sizeof(old));
			new = old + 1;
			shf_make_hash("cas", 3);
			ret = shf_cas_key_val(shf, (char *)&old, sizeof(old),
					      (char *)&new, sizeof(new));
			if (ret == (SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT))
				break;
			if (ret != (SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL))
				return 3;
			if (++tries > 100000000u)
				return 4;
		}
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_cas_counter)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("cascount", &shf, 5000, 4);
	uint64_t v = 0;

	shf_make_hash("cas", 3);
	shf_assert_eq(shf_put_key_val(shf, (char *)&v, sizeof(v)),
		      SHF_RET_KEY_PUT);
	ck_assert_int_eq(shf_test_run(4, kid_cas_increment, j, KID_TIMEOUT), 0);
	shf_make_hash("cas", 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	memcpy(&v, shf_val, sizeof(v));
	shf_assert_eq(v, 4 * 5000);
	shf_test_job_end(j, shf);
}
END_TEST

static uint32_t upd_increment(const char *val, uint32_t val_len)
{
	uint64_t v;

	if (val_len != sizeof(v))
		return SHF_RET_BAD_CB;
	memcpy(&v, val, sizeof(v));
	v++;
	memcpy((char *)val, &v, sizeof(v));
	return SHF_RET_OK;
}

static int kid_upd_increment(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i;

	if (!shf)
		return 1;
	shf_upd_callback_set(upd_increment);
	for (i = 0; i < j->n; i++) {
		uint32_t ret;

		if (idx & 1) {
			ret = shf_upd_uid_val(shf, j->sh->uids[0]);
		} else {
			shf_make_hash("upd", 3);
			ret = shf_upd_key_val(shf);
		}
		if (ret != SHF_RET_KEY_FOUND)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_upd_counter)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("updcount", &shf, 20000, 4);
	uint64_t v = 0;

	put_uid0(j, shf, "upd", (char *)&v, sizeof(v));
	ck_assert_int_eq(shf_test_run(4, kid_upd_increment, j, KID_TIMEOUT), 0);
	shf_make_hash("upd", 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	memcpy(&v, shf_val, sizeof(v));
	shf_assert_eq(v, 4 * 20000);
	shf_test_job_end(j, shf);
}
END_TEST

/* Winners of put_if_absent, per key: one bit per child. */
static int kid_if_absent(int idx, void *arg)
{
	struct shf_test_job *j = arg;
	SHF *shf = shf_test_attach_existing(j->name);
	uint32_t i;

	if (!shf)
		return 1;
	for (i = 0; i < j->n; i++) {
		uint64_t k = (i + (uint32_t)idx * 97u) % j->n;
		char v[80];
		uint32_t len = shf_test_val(v, k, (uint32_t)idx), ret;

		shf_test_hash(k);
		ret = shf_put_key_val_if_absent(shf, v, len);
		if (ret == SHF_RET_KEY_PUT)
			__atomic_or_fetch(&j->sh->uids[k], 1u << idx,
					  __ATOMIC_SEQ_CST);
		else if (ret != SHF_RET_KEY_FOUND)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_mp_put_if_absent_race)
{
	SHF *shf;
	struct shf_test_job *j = shf_test_job_new("ifabsentmp", &shf, 10000, 4);
	uint32_t i;

	ck_assert_int_eq(shf_test_run(4, kid_if_absent, j, KID_TIMEOUT), 0);
	for (i = 0; i < j->n; i++) {
		uint32_t won = j->sh->uids[i], w;

		/* Exactly one child put each key, and its value stayed. */
		shf_assert_msg(won != 0 && (won & (won - 1)) == 0,
			       "key %u: winners mask %#x", i, won);
		w = (uint32_t)__builtin_ctz(won);
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		{
			char v[80];
			uint32_t len = shf_test_val(v, i, w);

			shf_assert_eq(shf_val_len, len);
			shf_assert(memcmp(shf_val, v, len) == 0);
		}
	}
	shf_assert_eq(shf_test_keys(shf), j->n);
	shf_test_job_end(j, shf);
}
END_TEST

/* ---- threads -------------------------------------------------------- */

struct thr {
	SHF *shf;
	int idx;
	int errors;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	uint64_t i, from = (uint64_t)t->idx * 20000;

	for (i = from; i < from + 20000; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, (uint32_t)t->idx);

		shf_test_hash(i);
		if (shf_put_key_val(t->shf, v, len) != SHF_RET_KEY_PUT)
			t->errors++;
		/* Thread-local results: this thread's UID and value. */
		shf_test_hash(i);
		if (shf_get_key_val_copy(t->shf) != SHF_RET_KEY_FOUND ||
		    shf_val_len != len || memcmp(shf_val, v, len) != 0)
			t->errors++;
		shf_make_hash("tcounter", 8);
		if (((t->idx & 1) ?
			     shf_add_key_val_atom(t->shf, 1) :
			     shf_add_key_val(t->shf, 1)) != SHF_RET_KEY_FOUND)
			t->errors++;
	}
	return NULL;
}

START_TEST(test_mp_threads)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("threads", name, sizeof(name));
	pthread_t tid[4];
	struct thr t[4];
	long v;
	int i;

	for (i = 0; i < 4; i++) {
		t[i].shf = shf;
		t[i].idx = i;
		t[i].errors = 0;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, thr_main, &t[i]),
				 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
		ck_assert_int_eq(t[i].errors, 0);
	}
	shf_test_check_keys(shf, 0, 80000, 4);
	shf_make_hash("tcounter", 8);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	memcpy(&v, shf_val, sizeof(v));
	ck_assert_int_eq(v, 80000);
	shf_assert_eq(shf_test_keys(shf), 80001);
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

static Suite *mp_suite(void)
{
	Suite *s = suite_create("mp");

	shf_test_add_tcase(s, "sharing", 120, test_mp_disjoint,
			   test_mp_shared_keys, test_mp_child_writes_seen,
			   test_mp_uid_ops_across_processes,
			   test_mp_fixed_len_other_process, test_mp_attach_race,
			   test_mp_threads);

	shf_test_add_tcase(s, "counters", 120, test_mp_add_counter,
			   test_mp_add_atom_counter, test_mp_add_mixed_counter,
			   test_mp_add_uid_counter, test_mp_cas_counter,
			   test_mp_upd_counter, test_mp_put_if_absent_race,
			   test_mp_replace_atomic);

	shf_test_add_tcase(s, "races", 120, test_mp_put_del_race,
			   test_mp_growth_while_reading,
			   test_mp_uids_stable_through_growth,
			   test_mp_iterate_while_writing);

	shf_test_add_tcase(s, "crashes", 120, test_mp_sigkill_mid_put,
			   test_mp_sigkill_holding_lock,
			   test_mp_sigkill_holding_lock_no_atfork,
			   test_mp_sigkill_among_writers);

	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(mp_suite());
}
