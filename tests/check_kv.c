/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_kv.c - the key-value calls of libshf, in one process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

static uint32_t put_str(SHF *shf, const char *key, const char *val)
{
	shf_make_hash(key, (uint32_t)strlen(key));
	return shf_put_key_val(shf, val, (uint32_t)strlen(val));
}

/* Get key and check it holds val (a string). Returns shf_uid. */
static uint32_t expect_str(SHF *shf, const char *key, const char *val)
{
	uint32_t ret;

	shf_make_hash(key, (uint32_t)strlen(key));
	ret = shf_get_key_val_copy(shf);
	shf_assert_msg(ret == SHF_RET_KEY_FOUND, "get %s: ret %u", key, ret);
	shf_assert_eq(shf_val_len, strlen(val));
	shf_assert_msg(memcmp(shf_val, val, shf_val_len) == 0,
		       "get %s: wrong value", key);
	ck_assert_uint_ne(shf_uid, SHF_UID_NONE);
	return shf_uid;
}

static void expect_none(SHF *shf, const char *key)
{
	uint32_t ret;

	shf_make_hash(key, (uint32_t)strlen(key));
	shf_uid = 12345;
	ret = shf_get_key_val_copy(shf);
	shf_assert_msg(ret == SHF_RET_KEY_NONE, "get %s: ret %u, want NONE",
		       key, ret);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
}

static uint32_t put_long(SHF *shf, const char *key, long v)
{
	shf_make_hash(key, (uint32_t)strlen(key));
	return shf_put_key_val(shf, (const char *)&v, sizeof(v));
}

static long get_long(SHF *shf, const char *key)
{
	long v;

	shf_make_hash(key, (uint32_t)strlen(key));
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, sizeof(long));
	memcpy(&v, shf_val, sizeof(v));
	return v;
}

/* ---- attach, detach, delete ---------------------------------------- */

START_TEST(test_version)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", SHF_VERSION_MAJOR,
		 SHF_VERSION_MINOR, SHF_VERSION_PATCH);
	ck_assert_ptr_nonnull(shf_version());
	ck_assert_str_eq(shf_version(), want);
	shf_init();
	shf_init(); /* idempotent */
}
END_TEST

START_TEST(test_attach_existing_missing)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf;

	shf_test_name(name, sizeof(name), "missing");
	shf_assert(!shf_test_exists(name));
	errno = 0;
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_null(shf);
	ck_assert_int_eq(errno, ENOENT);
	shf_assert(!shf_test_exists(name));
}
END_TEST

START_TEST(test_attach_creates)
{
	SHF_TEST_NEW("creates");
	SHF *again;

	shf_assert_eq(shf_test_keys(shf), 0);
	again = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(again);
	shf_detach(again);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_attach_twice_same_data)
{
	SHF_TEST_NEW("twice");
	SHF *two;

	shf_assert_eq(put_str(shf, "alpha", "one"), SHF_RET_KEY_PUT);
	two = shf_attach(shf_test_dir(), name, 0);
	ck_assert_ptr_nonnull(two);
	expect_str(two, "alpha", "one");
	/* And the other way round. */
	shf_assert_eq(put_str(two, "beta", "two"), SHF_RET_KEY_PUT);
	expect_str(shf, "beta", "two");
	shf_assert_eq(shf_test_keys(shf), 2);
	shf_assert_eq(shf_test_keys(two), 2);
	shf_detach(two);
	expect_str(shf, "alpha", "one");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_detach_reattach)
{
	SHF_TEST_NEW("reattach");
	uint32_t uid;
	int i;

	shf_test_fill(shf, 0, 1000, 0, NULL);
	shf_assert_eq(put_str(shf, "last", "value"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	ck_assert_uint_ne(uid, SHF_UID_NONE);
	shf_detach(shf);
	shf_assert(shf_test_exists(name));

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	for (i = 0; i < 1000; i++) {
		shf_test_hash((uint64_t)i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert(shf_test_val_ok(shf_val, shf_val_len, (uint64_t)i, 1,
					   NULL));
	}
	shf_assert_eq(expect_str(shf, "last", "value"), uid);
	shf_assert_eq(shf_test_keys(shf), 1001);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_bad_names)
{
	char longname[301];
	const char *bad[] = { "",	 "a/b",	 "..", ".",
			      ".hidden", "/abs", "x/", longname };
	size_t i;

	memset(longname, 'x', 300);
	longname[300] = '\0';

	errno = 0;
	ck_assert_ptr_null(shf_attach(shf_test_dir(), NULL, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(shf_test_dir(), NULL));
	ck_assert_int_eq(errno, EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		shf_assert_msg(shf_attach(shf_test_dir(), bad[i], 0) == NULL,
			       "shf_attach accepted name \"%.20s\"", bad[i]);
		shf_assert_msg(errno == EINVAL, "name \"%.20s\": errno %d",
			       bad[i], errno);
		errno = 0;
		shf_assert_msg(
			shf_attach_existing(shf_test_dir(), bad[i]) == NULL,
			"shf_attach_existing accepted \"%.20s\"", bad[i]);
		shf_assert_msg(errno == EINVAL, "name \"%.20s\": errno %d",
			       bad[i], errno);
	}
}
END_TEST

START_TEST(test_bad_path)
{
	char name[SHF_TEST_NAME_MAX];

	shf_test_name(name, sizeof(name), "badpath");
	errno = 0;
	ck_assert_ptr_null(shf_attach(NULL, name, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(NULL, name));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_attach("", name, 0));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_missing_dir)
{
	char dir[SHF_TEST_PATH_MAX];
	char name[SHF_TEST_NAME_MAX];

	shf_test_name(name, sizeof(name), "nodir");
	snprintf(dir, sizeof(dir), "%s/%s-no-such-dir", shf_test_dir(), name);
	errno = 0;
	ck_assert_ptr_null(shf_attach(dir, "x", 0));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(dir, "x"));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_ne(access(dir, F_OK), 0);
}
END_TEST

START_TEST(test_del_removes)
{
	SHF_TEST_NEW("del");
	char *text;

	shf_assert_eq(put_str(shf, "k", "v"), SHF_RET_KEY_PUT);
	errno = 0;
	text = shf_del(shf);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_gt(strlen(text), 0);
	free(text);
	shf_assert(!shf_test_exists(name));
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(shf_test_dir(), name));
	ck_assert_int_eq(errno, ENOENT);
	/* A new table of the same name starts empty. */
	shf = shf_attach(shf_test_dir(), name, 0);
	ck_assert_ptr_nonnull(shf);
	expect_none(shf, "k");
	shf_assert_eq(shf_test_keys(shf), 0);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_two_tables_independent)
{
	char name2[SHF_TEST_NAME_MAX];
	SHF_TEST_NEW("indep1");
	SHF *two = shf_test_new("indep2", name2, sizeof(name2));

	shf_assert_eq(put_str(shf, "same", "in one"), SHF_RET_KEY_PUT);
	shf_assert_eq(put_str(two, "same", "in two"), SHF_RET_KEY_PUT);
	expect_str(shf, "same", "in one");
	expect_str(two, "same", "in two");
	shf_assert_eq(put_str(two, "only2", "x"), SHF_RET_KEY_PUT);
	expect_none(shf, "only2");
	shf_test_del(two, name2);
	expect_str(shf, "same", "in one");
	shf_test_del(shf, name);
}
END_TEST

/* ---- put and get ---------------------------------------------------- */

START_TEST(test_put_get_key)
{
	SHF_TEST_NEW("putget");
	uint32_t ret, uid;

	shf_uid = SHF_UID_NONE;
	shf_make_hash("hello", 5);
	ret = shf_put_key_val(shf, "world", 5);
	shf_assert_eq(ret, SHF_RET_KEY_PUT);
	uid = shf_uid;
	ck_assert_uint_ne(uid, SHF_UID_NONE);

	shf_uid = SHF_UID_NONE;
	shf_make_hash("hello", 5);
	ret = shf_get_key_val_copy(shf);
	shf_assert_eq(ret, SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 5);
	ck_assert_mem_eq(shf_val, "world", 5);
	shf_assert_eq(shf_uid, uid);
	/* Prefix and extension of the key are other keys. */
	expect_none(shf, "hell");
	expect_none(shf, "hello!");
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_get_by_uid)
{
	SHF_TEST_NEW("getuid");
	uint32_t uid[100];
	char v[80];
	int i;

	for (i = 0; i < 100; i++) {
		uint32_t len = shf_test_val(v, (uint64_t)i, 3);

		shf_test_hash((uint64_t)i);
		shf_assert_eq(shf_put_key_val(shf, v, len), SHF_RET_KEY_PUT);
		uid[i] = shf_uid;
		ck_assert_uint_ne(uid[i], SHF_UID_NONE);
	}
	for (i = 0; i < 100; i++) {
		int j;

		for (j = 0; j < i; j++)
			ck_assert_uint_ne(uid[i], uid[j]);
	}
	for (i = 99; i >= 0; i--) {
		shf_uid = SHF_UID_NONE;
		shf_assert_eq(shf_get_uid_val_copy(shf, uid[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert(shf_test_val_ok(shf_val, shf_val_len, (uint64_t)i, 4,
					   NULL));
		shf_assert_eq(shf_uid, uid[i]);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_get_absent)
{
	SHF_TEST_NEW("absent");

	expect_none(shf, "nothing here");
	shf_assert_eq(put_str(shf, "something", "x"), SHF_RET_KEY_PUT);
	expect_none(shf, "nothing here");
	expect_none(shf, "somethin");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_put_replace_keeps_uid)
{
	SHF_TEST_NEW("replace");
	char big[5000];
	uint32_t ret, uid;

	shf_assert_eq(put_str(shf, "k", "first"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	/* Same length, longer, much longer, shorter. */
	ret = put_str(shf, "k", "secnd");
	shf_assert_msg((ret & SHF_RET_KEY_PUT) && !(ret & SHF_RET_ERROR),
		       "ret %u", ret);
	shf_assert_eq(shf_uid, uid);
	shf_assert_eq(expect_str(shf, "k", "secnd"), uid);
	ret = put_str(shf, "k", "a longer value than before");
	shf_assert(ret & SHF_RET_KEY_PUT);
	shf_assert_eq(shf_uid, uid);
	shf_assert_eq(expect_str(shf, "k", "a longer value than before"), uid);
	shf_test_pattern(big, sizeof(big), 7);
	shf_make_hash("k", 1);
	ret = shf_put_key_val(shf, big, sizeof(big));
	shf_assert(ret & SHF_RET_KEY_PUT);
	shf_assert_eq(shf_uid, uid);
	shf_assert_eq(shf_get_uid_val_copy(shf, uid), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, sizeof(big));
	ck_assert_mem_eq(shf_val, big, sizeof(big));
	ret = put_str(shf, "k", "s");
	shf_assert(ret & SHF_RET_KEY_PUT);
	shf_assert_eq(expect_str(shf, "k", "s"), uid);
	/* Still one key. */
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	expect_none(shf, "k");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_key_copy)
{
	SHF_TEST_NEW("keycopy");
	const char key[] = "the key";
	uint32_t uid;

	shf_assert_eq(put_str(shf, key, "the value"), SHF_RET_KEY_PUT);
	uid = shf_uid;

	shf_uid = SHF_UID_NONE;
	shf_key_len = 0;
	shf_make_hash(key, (uint32_t)strlen(key));
	shf_assert_eq(shf_get_key_key_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_key_len, strlen(key));
	ck_assert_mem_eq(shf_key, key, strlen(key));
	shf_assert_eq(shf_uid, uid);

	shf_key_len = 0;
	shf_assert_eq(shf_get_uid_key_copy(shf, uid), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_key_len, strlen(key));
	ck_assert_mem_eq(shf_key, key, strlen(key));

	shf_make_hash("other", 5);
	shf_assert_eq(shf_get_key_key_copy(shf), SHF_RET_KEY_NONE);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_val_addr)
{
	SHF_TEST_NEW("valaddr");
	char v[3000];
	uint32_t uid;

	shf_test_pattern(v, sizeof(v), 11);
	shf_make_hash("addr", 4);
	shf_assert_eq(shf_put_key_val(shf, v, sizeof(v)), SHF_RET_KEY_PUT);
	uid = shf_uid;

	shf_val_addr = NULL;
	shf_make_hash("addr", 4);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	ck_assert_ptr_nonnull(shf_val_addr);
	shf_assert_eq(shf_val_len, sizeof(v));
	ck_assert_mem_eq(shf_val_addr, v, sizeof(v));

	shf_val_addr = NULL;
	shf_assert_eq(shf_get_uid_val_addr(shf, uid), SHF_RET_KEY_FOUND);
	ck_assert_ptr_nonnull(shf_val_addr);
	shf_assert_eq(shf_val_len, sizeof(v));
	ck_assert_mem_eq(shf_val_addr, v, sizeof(v));

	shf_make_hash("nope", 4);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_NONE);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_empty_value)
{
	SHF_TEST_NEW("empty");
	uint32_t uid;

	shf_make_hash("e", 1);
	shf_assert_eq(shf_put_key_val(shf, "", 0), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_val_len = 99;
	shf_make_hash("e", 1);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 0);
	shf_assert_eq(shf_uid, uid);

	shf_make_hash("n", 1);
	shf_assert_eq(shf_put_key_val(shf, NULL, 0), SHF_RET_KEY_PUT);
	shf_val_len = 99;
	shf_make_hash("n", 1);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 0);

	/* Empty to something and back. */
	shf_assert(put_str(shf, "e", "full") & SHF_RET_KEY_PUT);
	expect_str(shf, "e", "full");
	shf_assert(put_str(shf, "e", "") & SHF_RET_KEY_PUT);
	shf_assert_eq(expect_str(shf, "e", ""), uid);
	shf_assert_eq(shf_test_keys(shf), 2);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_binary_keys_values)
{
	SHF_TEST_NEW("binary");
	const char k1[] = { 'a', 0, 'b' };
	const char k2[] = { 'a', 0, 'c' };
	const char k3[] = { 'a' };
	const char k4[] = { 0 };
	const char k5[] = { 0, 0 };
	const char v1[] = { 0, 1, 2, 0, (char)0xff };
	const char v2[] = { (char)0xff, 0 };
	const char *keys[] = { k1, k2, k3, k4, k5 };
	const uint32_t klen[] = { 3, 3, 1, 1, 2 };
	int i;

	for (i = 0; i < 5; i++) {
		char v[8];

		memcpy(v, v1, sizeof(v1));
		v[1] = (char)i;
		shf_make_hash(keys[i], klen[i]);
		shf_assert_eq(shf_put_key_val(shf, v, sizeof(v1)),
			      SHF_RET_KEY_PUT);
	}
	shf_assert_eq(shf_test_keys(shf), 5);
	for (i = 0; i < 5; i++) {
		shf_make_hash(keys[i], klen[i]);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, sizeof(v1));
		ck_assert_int_eq(shf_val[1], i);
		ck_assert_int_eq(shf_val[3], 0);
		ck_assert_int_eq((unsigned char)shf_val[4], 0xff);
		shf_make_hash(keys[i], klen[i]);
		shf_assert_eq(shf_get_key_key_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_key_len, klen[i]);
		ck_assert_mem_eq(shf_key, keys[i], klen[i]);
	}
	shf_make_hash(k2, 3);
	shf_assert(shf_put_key_val(shf, v2, sizeof(v2)) & SHF_RET_KEY_PUT);
	shf_make_hash(k2, 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 2);
	ck_assert_mem_eq(shf_val, v2, 2);
	shf_make_hash(k1, 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val[1], 0);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_long_key)
{
	SHF_TEST_NEW("longkey");
	size_t klen = 70000;
	char *key = malloc(klen);

	ck_assert_ptr_nonnull(key);
	shf_test_pattern(key, klen, 5);
	shf_make_hash(key, (uint32_t)klen);
	shf_assert_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	key[klen - 1] ^= 1;
	shf_make_hash(key, (uint32_t)klen);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	key[klen - 1] ^= 1;
	shf_make_hash(key, (uint32_t)klen);
	shf_assert_eq(shf_get_key_key_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_key_len, klen);
	ck_assert_mem_eq(shf_key, key, klen);
	free(key);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_val_null_reserves_zeroes)
{
	SHF_TEST_NEW("reserve");
	char junk[1000];
	uint32_t uid, i;

	shf_make_hash("r", 1);
	shf_assert_eq(shf_put_key_val(shf, NULL, 1000), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_make_hash("r", 1);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 1000);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(shf_val[i], 0);

	/* Over a non-zero value of the same size: zeroes again, same UID. */
	memset(junk, 0x5a, sizeof(junk));
	shf_make_hash("r", 1);
	shf_assert(shf_put_key_val(shf, junk, sizeof(junk)) & SHF_RET_KEY_PUT);
	shf_make_hash("r", 1);
	shf_assert(shf_put_key_val(shf, NULL, 1000) & SHF_RET_KEY_PUT);
	shf_assert_eq(shf_uid, uid);
	shf_assert_eq(shf_get_uid_val_copy(shf, uid), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 1000);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(shf_val[i], 0);

	/* Deleted bytes reused for a reservation must be zeroed too. */
	for (i = 0; i < 200; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, junk, 100), SHF_RET_KEY_PUT);
	}
	for (i = 0; i < 200; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	for (i = 1000; i < 1200; i++) {
		uint32_t j;

		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, NULL, 100), SHF_RET_KEY_PUT);
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, 100);
		for (j = 0; j < 100; j++)
			ck_assert_int_eq(shf_val[j], 0);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_many_value_sizes)
{
	SHF_TEST_NEW("sizes");
	char *buf = malloc(5000);
	uint32_t i;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < 2000; i++) {
		shf_test_pattern(buf, i, i);
		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, buf, i), SHF_RET_KEY_PUT);
	}
	/* Every value changes size. */
	for (i = 0; i < 2000; i++) {
		uint32_t len = (i * 37) % 4999;

		shf_test_pattern(buf, len, i + 7);
		shf_test_hash(i);
		shf_assert(shf_put_key_val(shf, buf, len) & SHF_RET_KEY_PUT);
	}
	for (i = 0; i < 2000; i++) {
		char want[5000];
		uint32_t len = (i * 37) % 4999;

		shf_test_pattern(want, len, i + 7);
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, len);
		shf_assert(memcmp(shf_val, want, len) == 0);
	}
	shf_assert_eq(shf_test_keys(shf), 2000);
	free(buf);
	shf_test_del(shf, name);
}
END_TEST

/* ---- delete --------------------------------------------------------- */

START_TEST(test_del_key)
{
	SHF_TEST_NEW("delkey");

	shf_assert_eq(put_str(shf, "a", "1"), SHF_RET_KEY_PUT);
	shf_assert_eq(put_str(shf, "b", "2"), SHF_RET_KEY_PUT);
	shf_make_hash("a", 1);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_make_hash("a", 1);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_NONE);
	expect_none(shf, "a");
	expect_str(shf, "b", "2");
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_make_hash("never", 5);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_NONE);
	/* Put again after delete. */
	shf_assert_eq(put_str(shf, "a", "again"), SHF_RET_KEY_PUT);
	expect_str(shf, "a", "again");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_del_uid)
{
	SHF_TEST_NEW("deluid");
	uint32_t uid;

	shf_assert_eq(put_str(shf, "a", "1"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_assert_eq(put_str(shf, "b", "2"), SHF_RET_KEY_PUT);
	shf_assert_eq(shf_del_uid_val(shf, uid), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_del_uid_val(shf, uid), SHF_RET_KEY_NONE);
	expect_none(shf, "a");
	expect_str(shf, "b", "2");
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_deleted_uid_is_none)
{
	SHF_TEST_NEW("deaduid");
	uint32_t uid;

	shf_assert_eq(put_str(shf, "gone", "soon"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_assert_eq(put_str(shf, "stays", "here"), SHF_RET_KEY_PUT);
	shf_make_hash("gone", 4);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);

	shf_uid = 7;
	shf_assert_eq(shf_get_uid_val_copy(shf, uid), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
	shf_assert_eq(shf_get_uid_key_copy(shf, uid), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_get_uid_val_addr(shf, uid), SHF_RET_KEY_NONE);
	shf_upd_callback_copy("xxxx", 4);
	shf_assert_eq(shf_upd_uid_val(shf, uid), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_add_uid_val(shf, uid, 1), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_add_uid_val_atom(shf, uid, 1), SHF_RET_KEY_NONE);
	shf_assert_eq(shf_del_uid_val(shf, uid), SHF_RET_KEY_NONE);
	expect_none(shf, "gone");
	expect_str(shf, "stays", "here");
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_uid_never_issued)
{
	SHF_TEST_NEW("baduid");
	uint32_t uids[] = { 0,		 1, 1000, 123456789, SHF_UID_NONE - 1,
			    SHF_UID_NONE };
	size_t i;

	shf_assert_eq(put_str(shf, "one", "1"), SHF_RET_KEY_PUT);
	for (i = 0; i < sizeof(uids) / sizeof(uids[0]); i++) {
		uint32_t ret;

		if (uids[i] == shf_uid)
			continue;
		ret = shf_get_uid_val_copy(shf, uids[i]);
		/* shf_get_uid_val_copy(3): a UID never given out is NONE. */
		shf_assert_msg(ret == SHF_RET_KEY_NONE, "uid %u: ret %u",
			       uids[i], ret);
		ret = shf_del_uid_val(shf, uids[i]);
		shf_assert_msg(!(ret & SHF_RET_KEY_FOUND), "del uid %u: ret %u",
			       uids[i], ret);
	}
	expect_str(shf, "one", "1");
	shf_test_del(shf, name);
}
END_TEST

/* ---- update callbacks ----------------------------------------------- */

static uint32_t upd_upper(const char *val, uint32_t val_len)
{
	char *p = (char *)val;
	uint32_t i;

	for (i = 0; i < val_len; i++)
		if (p[i] >= 'a' && p[i] <= 'z')
			p[i] = (char)(p[i] - 'a' + 'A');
	return SHF_RET_OK; /* commit */
}

/* A callback that refuses (it would need another size). */
static uint32_t upd_grow(const char *val, uint32_t val_len)
{
	(void)val;
	(void)val_len;
	return SHF_RET_BAD_CB;
}

static int upd_calls;
static uint32_t upd_count(const char *val, uint32_t val_len)
{
	(void)val;
	upd_calls++;
	(void)val_len;
	return SHF_RET_OK;
}

START_TEST(test_upd_copy)
{
	SHF_TEST_NEW("updcopy");
	uint32_t uid;

	shf_assert_eq(put_str(shf, "u", "hello"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_assert_eq(shf_upd_callback_copy("world", 5), SHF_RET_OK);
	shf_uid = SHF_UID_NONE;
	shf_make_hash("u", 1);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_uid, uid);
	shf_assert_eq(expect_str(shf, "u", "world"), uid);

	shf_upd_callback_copy("12345", 5);
	shf_assert_eq(shf_upd_uid_val(shf, uid), SHF_RET_KEY_FOUND);
	expect_str(shf, "u", "12345");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_upd_custom)
{
	SHF_TEST_NEW("updcustom");
	uint32_t uid;

	shf_assert_eq(put_str(shf, "u", "mixed Case 1"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_upd_callback_set(upd_upper);
	shf_make_hash("u", 1);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	expect_str(shf, "u", "MIXED CASE 1");

	shf_assert(put_str(shf, "u", "again") & SHF_RET_KEY_PUT);
	shf_upd_callback_set(upd_upper);
	shf_assert_eq(shf_upd_uid_val(shf, uid), SHF_RET_KEY_FOUND);
	expect_str(shf, "u", "AGAIN");

	/* The callback runs once per call, and not for an absent key. */
	upd_calls = 0;
	shf_upd_callback_set(upd_count);
	shf_make_hash("u", 1);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(upd_calls, 1);
	shf_make_hash("absent", 6);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_NONE);
	ck_assert_int_eq(upd_calls, 1);
	expect_none(shf, "absent");
	shf_test_del(shf, name);
}
END_TEST

/*
 * A callback that calls libshf on its own shard (against the man page):
 * the lock it would need is its own thread's, so the call fails with
 * EDEADLK.  It took the lock over before and ran recovery under the
 * update: a value outside its cell was freed while the callback ran, and
 * the acknowledged update pointed at freed space.
 */
static SHF *g_shf;
static uint32_t nested_ret;
static int nested_errno;
static uint32_t upd_nested(const char *val, uint32_t val_len)
{
	char *v = (char *)val;

	shf_make_hash("n", 1);
	nested_ret = shf_get_key_val_copy(g_shf);
	nested_errno = errno;
	if (val_len)
		v[0] = 'z';
	return SHF_RET_OK;
}

START_TEST(test_upd_callback_calls_library)
{
	static char big[700];
	static const uint32_t lens[] = { 5, sizeof(big) };
	SHF_TEST_NEW("updnested");
	uint32_t i;

	g_shf = shf;
	for (i = 0; i < 2; i++) {
		memset(big, 'a', lens[i]);
		shf_make_hash("n", 1);
		shf_assert_eq(shf_put_key_val(shf, big, lens[i]),
			      SHF_RET_KEY_PUT);
		shf_upd_callback_set(upd_nested);
		shf_make_hash("n", 1);
		shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(nested_ret, SHF_RET_ERROR);
		ck_assert_int_eq(nested_errno, EDEADLK);
		big[0] = 'z';
		shf_make_hash("n", 1);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, lens[i]);
		ck_assert_msg(!memcmp(shf_val, big, lens[i]),
			      "the update of %u bytes was lost", lens[i]);
		shf_assert_eq(shf_check(shf, 0, NULL, NULL), 0);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_upd_bad_size)
{
	SHF_TEST_NEW("updbad");
	uint32_t uid;

	shf_assert_eq(put_str(shf, "u", "value"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_upd_callback_set(upd_grow);
	shf_make_hash("u", 1);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	shf_assert_eq(shf_upd_uid_val(shf, uid),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	/* The key is still there with its length and UID. */
	shf_make_hash("u", 1);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 5);
	shf_assert_eq(shf_uid, uid);
	/* A copy of another size can not be done in place. */
	shf_upd_callback_copy("longer value", 12);
	shf_make_hash("u", 1);
	shf_assert_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	expect_str(shf, "u", "value");
	shf_test_del(shf, name);
}
END_TEST

/* ---- add ------------------------------------------------------------ */

typedef uint32_t (*add_key_fn)(SHF *, long);
typedef uint32_t (*add_uid_fn)(SHF *, uint32_t, long);

static void check_add(const char *tag, add_key_fn add_key, add_uid_fn add_uid)
{
	SHF_TEST_NEW(tag);
	uint32_t uid;
	long v;

	/* Creates a missing key with the value add. */
	shf_make_hash("n", 1);
	shf_val_long = 0;
	shf_assert_eq(add_key(shf, 5), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 5);
	uid = shf_uid;
	ck_assert_uint_ne(uid, SHF_UID_NONE);
	ck_assert_int_eq(get_long(shf, "n"), 5);
	shf_assert_eq(shf_uid, uid);

	/* Adds, by key and by UID; negative too. */
	shf_make_hash("n", 1);
	shf_assert_eq(add_key(shf, 10), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 15);
	shf_assert_eq(add_uid(shf, uid, -20), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, -5);
	ck_assert_int_eq(get_long(shf, "n"), -5);
	shf_assert_eq(shf_uid, uid);

	/* Large values. */
	shf_assert(put_long(shf, "big", 0x7ffffffffff0L) & SHF_RET_KEY_PUT);
	shf_make_hash("big", 3);
	shf_assert_eq(add_key(shf, 0xfL), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 0x7fffffffffffL);
	ck_assert_int_eq(get_long(shf, "big"), 0x7fffffffffffL);

	/* A sum of 0 deletes the key. */
	shf_make_hash("n", 1);
	shf_assert(add_key(shf, 5) & SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 0);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
	expect_none(shf, "n");
	shf_assert_eq(shf_test_keys(shf), 1);

	/* By UID to 0. */
	shf_make_hash("m", 1);
	shf_assert_eq(add_key(shf, 3), SHF_RET_KEY_FOUND);
	uid = shf_uid;
	shf_assert(add_uid(shf, uid, -3) & SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 0);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
	expect_none(shf, "m");

	/* A value of another size is left alone. */
	shf_assert_eq(put_str(shf, "s", "abc"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_make_hash("s", 1);
	shf_assert_eq(add_key(shf, 1), SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	shf_assert_eq(add_uid(shf, uid, 1),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	expect_str(shf, "s", "abc");
	shf_assert_eq(put_str(shf, "s9", "123456789"), SHF_RET_KEY_PUT);
	shf_make_hash("s9", 2);
	shf_assert_eq(add_key(shf, 1), SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	expect_str(shf, "s9", "123456789");

	/* An 8-byte value put by hand is a long. */
	v = 40;
	shf_assert_eq(put_long(shf, "p", v), SHF_RET_KEY_PUT);
	shf_make_hash("p", 1);
	shf_assert_eq(add_key(shf, 2), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 42);
	shf_test_del(shf, name);
}

START_TEST(test_add)
{
	check_add("add", shf_add_key_val, shf_add_uid_val);
}
END_TEST

START_TEST(test_add_atom)
{
	check_add("addatom", shf_add_key_val_atom, shf_add_uid_val_atom);
}
END_TEST

START_TEST(test_add_many)
{
	SHF_TEST_NEW("addmany");
	int i;

	for (i = 0; i < 10000; i++) {
		shf_test_hash((uint64_t)(i % 100));
		shf_assert_eq((i & 1) ? shf_add_key_val(shf, i % 100 + 1) :
					shf_add_key_val_atom(shf, i % 100 + 1),
			      SHF_RET_KEY_FOUND);
	}
	for (i = 0; i < 100; i++) {
		char key[32];
		long v;

		shf_test_key(key, (uint64_t)i);
		v = get_long(shf, key);
		ck_assert_int_eq(v, 100L * (i + 1));
	}
	shf_assert_eq(shf_test_keys(shf), 100);
	shf_test_del(shf, name);
}
END_TEST

/* ---- conditional puts ----------------------------------------------- */

START_TEST(test_put_if_absent)
{
	SHF_TEST_NEW("ifabsent");
	uint32_t uid;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val_if_absent(shf, "first", 5),
		      SHF_RET_KEY_PUT);
	uid = expect_str(shf, "k", "first");
	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val_if_absent(shf, "second", 6),
		      SHF_RET_KEY_FOUND);
	shf_assert_eq(expect_str(shf, "k", "first"), uid);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val_if_absent(shf, "third", 5),
		      SHF_RET_KEY_PUT);
	expect_str(shf, "k", "third");
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_replace)
{
	SHF_TEST_NEW("replaceonly");
	uint32_t uid;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_replace_key_val(shf, "x", 1), SHF_RET_KEY_NONE);
	expect_none(shf, "k");
	shf_assert_eq(shf_test_keys(shf), 0);

	shf_assert_eq(put_str(shf, "k", "old"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_make_hash("k", 1);
	shf_assert_eq(shf_replace_key_val(shf, "new value", 9),
		      SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT);
	shf_assert_eq(expect_str(shf, "k", "new value"), uid);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_cas)
{
	SHF_TEST_NEW("cas");
	uint32_t uid;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "a", 1, "b", 1), SHF_RET_KEY_NONE);
	expect_none(shf, "k");

	shf_assert_eq(put_str(shf, "k", "one"), SHF_RET_KEY_PUT);
	uid = shf_uid;
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "two", 3, "three", 5),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	expect_str(shf, "k", "one");
	/* Same bytes, other length: differs. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "on", 2, "three", 5),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "one!", 4, "three", 5),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	expect_str(shf, "k", "one");

	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "one", 3, "three", 5),
		      SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT);
	shf_assert_eq(expect_str(shf, "k", "three"), uid);
	/* The old value no longer matches. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "one", 3, "four", 4),
		      SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	expect_str(shf, "k", "three");
	/* Empty values. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "three", 5, "", 0),
		      SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT);
	expect_str(shf, "k", "");
	shf_make_hash("k", 1);
	shf_assert_eq(shf_cas_key_val(shf, "", 0, "z", 1),
		      SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT);
	shf_assert_eq(expect_str(shf, "k", "z"), uid);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

/* ---- settings ------------------------------------------------------- */

START_TEST(test_not_lockable)
{
	SHF_TEST_NEW("nolock");
	uint32_t i;

	shf_set_is_lockable(shf, 0);
	shf_test_fill(shf, 0, 20000, 1, NULL);
	for (i = 0; i < 20000; i += 2) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	for (i = 0; i < 20000; i++) {
		shf_test_hash(i);
		if (i & 1) {
			shf_assert_eq(shf_get_key_val_copy(shf),
				      SHF_RET_KEY_FOUND);
			shf_assert(shf_test_val_ok(shf_val, shf_val_len, i, 2,
						   NULL));
		} else {
			shf_assert_eq(shf_get_key_val_copy(shf),
				      SHF_RET_KEY_NONE);
		}
	}
	shf_make_hash("c", 1);
	shf_assert_eq(shf_add_key_val(shf, 2), SHF_RET_KEY_FOUND);
	shf_make_hash("c", 1);
	shf_assert_eq(shf_add_key_val_atom(shf, 2), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(shf_val_long, 4);
	shf_assert_eq(shf_test_keys(shf), 10001);
	/* And back on. */
	shf_set_is_lockable(shf, 1);
	ck_assert_int_eq(get_long(shf, "c"), 4);
	shf_test_del(shf, name);
}
END_TEST

static void fixed_key(char *k, uint32_t i)
{
	memset(k, 0, 8);
	memcpy(k, &i, sizeof(i));
}

START_TEST(test_fixed_len)
{
	SHF_TEST_NEW("fixed");
	struct shf_stats st;
	char k[8], v[16];
	uint32_t i;

	shf_set_is_fixed_len(shf, 8, 16);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 8);
	shf_assert_eq(st.fixed_val_len, 16);
	for (i = 0; i < 5000; i++) {
		fixed_key(k, i);
		shf_test_pattern(v, 16, i);
		shf_make_hash(k, 8);
		shf_assert_eq(shf_put_key_val(shf, v, 16), SHF_RET_KEY_PUT);
	}
	for (i = 0; i < 5000; i++) {
		char want[16];

		fixed_key(k, i);
		shf_test_pattern(want, 16, i);
		shf_make_hash(k, 8);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, 16);
		ck_assert_mem_eq(shf_val, want, 16);
		shf_make_hash(k, 8);
		shf_assert_eq(shf_get_key_key_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_key_len, 8);
		ck_assert_mem_eq(shf_key, k, 8);
	}
	/* Replace keeps working. */
	fixed_key(k, 7);
	memset(v, 'r', 16);
	shf_make_hash(k, 8);
	shf_assert(shf_put_key_val(shf, v, 16) & SHF_RET_KEY_PUT);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, v, 16);
	shf_assert_eq(shf_test_keys(shf), 5000);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_fixed_len_wrong_len)
{
	SHF_TEST_NEW("fixedwrong");
	char k[16], v[32];
	uint32_t ret;

	memset(k, 'k', sizeof(k));
	memset(v, 'v', sizeof(v));
	shf_set_is_fixed_len(shf, 8, 16);

	errno = 0;
	shf_make_hash(k, 7);
	ret = shf_put_key_val(shf, v, 16);
	shf_assert_eq(ret, SHF_RET_ERROR | SHF_RET_BAD_VAL);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_make_hash(k, 9);
	shf_assert_eq(shf_put_key_val(shf, v, 16),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 15),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 17),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 0),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	shf_assert_eq(shf_test_keys(shf), 0);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);

	/* A right one, then a wrong replacement leaves it alone. */
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 16), SHF_RET_KEY_PUT);
	errno = 0;
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, "short", 5),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 16);
	ck_assert_mem_eq(shf_val, v, 16);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_fixed_len_persists)
{
	SHF_TEST_NEW("fixedkeep");
	struct shf_stats st;
	char k[8] = "abcdefg", v[4] = "vvv";
	SHF *two;

	shf_set_is_fixed_len(shf, 8, 4);
	shf_detach(shf);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 8);
	shf_assert_eq(st.fixed_val_len, 4);
	errno = 0;
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, "toolong", 7),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 4), SHF_RET_KEY_PUT);
	/* A second handle sees the setting too. */
	two = shf_attach(shf_test_dir(), name, 0);
	ck_assert_ptr_nonnull(two);
	errno = 0;
	shf_make_hash(k, 7);
	shf_assert_eq(shf_put_key_val(two, v, 4),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_get_key_val_copy(two), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, v, 4);
	shf_detach(two);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_fixed_len_busy)
{
	SHF_TEST_NEW("fixedbusy");
	struct shf_stats st;

	shf_assert_eq(put_str(shf, "variable", "lengths"), SHF_RET_KEY_PUT);
	shf_assert_eq(put_str(shf, "v", "l"), SHF_RET_KEY_PUT);
	errno = 0;
	shf_set_is_fixed_len(shf, 8, 16);
	ck_assert_int_eq(errno, EBUSY);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 0);
	shf_assert_eq(st.keys, 2);
	/* Variable lengths still work, old data intact. */
	shf_assert_eq(put_str(shf, "abc", "defgh"), SHF_RET_KEY_PUT);
	expect_str(shf, "variable", "lengths");
	expect_str(shf, "v", "l");
	expect_str(shf, "abc", "defgh");
	shf_test_del(shf, name);
}
END_TEST

/*
 * shf_set_is_fixed_len() tells its result only by errno, so a success
 * must leave errno as the caller set it, even when it waited for a
 * shard's lock (found by review: the wait left ETIMEDOUT or EAGAIN
 * there, and callers that set errno to 0 first took success for failure).
 * Here a child holds the key's shard lock (a slow update callback) while
 * the lengths, already those of the table, are set again.
 */
static uint32_t *slow_step;

static uint32_t slow_cb(const char *val, uint32_t len)
{
	(void)val;
	(void)len;
	shf_test_add_u32(slow_step, 1);
	shf_test_msleep(150);
	return SHF_RET_OK;
}

START_TEST(test_fixed_len_errno_kept)
{
	SHF_TEST_NEW("fixederrno");
	int status;
	pid_t pid;

	slow_step = shf_test_shared(sizeof(*slow_step));
	errno = 0;
	shf_set_is_fixed_len(shf, 4, 4);
	ck_assert_int_eq(errno, 0);
	shf_assert_eq(put_str(shf, "abcd", "efgh"), SHF_RET_KEY_PUT);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shf_make_hash("abcd", 4);
		shf_upd_callback_set(slow_cb);
		_exit(shf_upd_key_val(shf) == SHF_RET_KEY_FOUND ? 0 : 1);
	}
	ck_assert_int_eq(shf_test_wait_u32(slow_step, 1, 30), 0);
	/* not 0, which the look at the lock's holder happened to leave */
	errno = ENOTTY;
	shf_set_is_fixed_len(shf, 4, 4); /* waits for the child's lock */
	ck_assert_msg(errno == ENOTTY, "a success left errno %d (%s)", errno,
		      strerror(errno));
	status = shf_test_waitpid(pid, 30);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	errno = 0;
	shf_set_is_fixed_len(shf, 4, 8);
	ck_assert_int_eq(errno, EBUSY);
	shf_test_unshared(slow_step, sizeof(*slow_step));
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_fixed_len_change_busy)
{
	SHF_TEST_NEW("fixedchange");
	struct shf_stats st;
	char k[8] = "1234567", v[16] = "0123456789abcde";

	shf_set_is_fixed_len(shf, 8, 16);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_put_key_val(shf, v, 16), SHF_RET_KEY_PUT);
	/* The same lengths again are fine. */
	shf_set_is_fixed_len(shf, 8, 16);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 8);
	shf_assert_eq(st.fixed_val_len, 16);
	/* Other lengths on a non-empty table are refused. */
	errno = 0;
	shf_set_is_fixed_len(shf, 4, 4);
	ck_assert_int_eq(errno, EBUSY);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 8);
	shf_assert_eq(st.fixed_val_len, 16);
	shf_make_hash(k, 8);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, v, 16);
	errno = 0;
	shf_make_hash(k, 4);
	shf_assert_eq(shf_put_key_val(shf, v, 4),
		      SHF_RET_ERROR | SHF_RET_BAD_VAL);
	ck_assert_int_eq(errno, EINVAL);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_fixed_len_reuse)
{
	SHF_TEST_NEW("fixedreuse");
	struct shf_stats st;
	uint64_t size1 = 0;
	int round;

	shf_set_is_fixed_len(shf, 8, 8);
	for (round = 0; round < 6; round++) {
		uint32_t i;

		for (i = 0; i < 20000; i++) {
			char k[8];
			uint64_t v = (uint64_t)i * 3 + (uint64_t)round;

			fixed_key(k, i + (uint32_t)round * 1000000u);
			shf_make_hash(k, 8);
			shf_assert_eq(shf_put_key_val(shf, (char *)&v, 8),
				      SHF_RET_KEY_PUT);
		}
		shf_assert_eq(shf_test_keys(shf), 20000);
		for (i = 0; i < 20000; i++) {
			char k[8];

			fixed_key(k, i + (uint32_t)round * 1000000u);
			shf_make_hash(k, 8);
			shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
		}
		shf_assert_eq(shf_test_keys(shf), 0);
		shf_test_stats(shf, &st);
		if (round == 1)
			size1 = st.bytes_file;
	}
	/* Deleted slots are reused: no growth after the second round. */
	shf_assert_msg(st.bytes_file <= size1,
		       "file grew from %llu to %llu bytes with slot reuse",
		       (unsigned long long)size1,
		       (unsigned long long)st.bytes_file);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_data_need_factor)
{
	SHF_TEST_NEW("needfactor");

	shf_set_data_need_factor(250);
	shf_set_data_need_factor(0);
	shf_assert_eq(put_str(shf, "k", "v"), SHF_RET_KEY_PUT);
	expect_str(shf, "k", "v");
	shf_test_del(shf, name);
}
END_TEST

/* ---- iteration ------------------------------------------------------ */

struct seen {
	uint32_t n;
	uint32_t calls;
	uint32_t bad;
	uint32_t stop_after;
	uint8_t *count;
	uint32_t *uid;
};

static int iter_cb(const char *key, uint32_t key_len, const char *val,
		   uint32_t val_len, uint32_t uid, void *arg)
{
	struct seen *s = arg;
	char buf[40];
	unsigned long long i;
	int used = 0;

	s->calls++;
	if (key_len < 5 || key_len >= sizeof(buf)) {
		s->bad++;
		goto out;
	}
	memcpy(buf, key, key_len);
	buf[key_len] = '\0';
	if (sscanf(buf, "key-%llu%n", &i, &used) != 1 || used != (int)key_len ||
	    i >= s->n) {
		s->bad++;
		goto out;
	}
	if (!shf_test_val_ok(val, val_len, i, 1, NULL))
		s->bad++;
	if (s->uid && s->uid[i] != uid)
		s->bad++;
	if (s->count[i] < 255)
		s->count[i]++;
out:
	return s->stop_after && s->calls >= s->stop_after;
}

START_TEST(test_iterate_all)
{
	SHF_TEST_NEW("iterate");
	struct seen s;
	uint32_t i;

	memset(&s, 0, sizeof(s));
	s.n = 20000;
	s.count = calloc(s.n, 1);
	s.uid = calloc(s.n, sizeof(uint32_t));
	ck_assert_ptr_nonnull(s.count);
	ck_assert_ptr_nonnull(s.uid);
	shf_test_fill(shf, 0, s.n, 0, s.uid);
	/* Delete every third key. */
	for (i = 0; i < s.n; i += 3) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	shf_assert_eq(shf_iterate(shf, iter_cb, &s), SHF_RET_OK);
	shf_assert_eq(s.bad, 0);
	for (i = 0; i < s.n; i++)
		shf_assert_msg(s.count[i] == (i % 3 ? 1 : 0),
			       "key %u seen %u times", i, s.count[i]);
	shf_assert_eq(s.calls, s.n - (s.n + 2) / 3);
	free(s.count);
	free(s.uid);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_iterate_stop)
{
	SHF_TEST_NEW("iterstop");
	struct seen s;

	memset(&s, 0, sizeof(s));
	s.n = 1000;
	s.count = calloc(s.n, 1);
	ck_assert_ptr_nonnull(s.count);
	shf_test_fill(shf, 0, s.n, 0, NULL);
	s.stop_after = 10;
	shf_assert_eq(shf_iterate(shf, iter_cb, &s), SHF_RET_OK);
	shf_assert_eq(s.calls, 10);
	shf_assert_eq(s.bad, 0);
	s.stop_after = 1;
	s.calls = 0;
	shf_assert_eq(shf_iterate(shf, iter_cb, &s), SHF_RET_OK);
	shf_assert_eq(s.calls, 1);
	free(s.count);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_iterate_empty)
{
	SHF_TEST_NEW("iterempty");
	struct seen s;

	memset(&s, 0, sizeof(s));
	s.n = 1;
	s.count = calloc(1, 1);
	shf_assert_eq(shf_iterate(shf, iter_cb, &s), SHF_RET_OK);
	shf_assert_eq(s.calls, 0);
	/* A key put and deleted is not seen. */
	shf_test_hash(0);
	shf_assert_eq(shf_put_key_val(shf, "x", 1), SHF_RET_KEY_PUT);
	shf_test_hash(0);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_iterate(shf, iter_cb, &s), SHF_RET_OK);
	shf_assert_eq(s.calls, 0);
	free(s.count);
	shf_test_del(shf, name);
}
END_TEST

struct modify_arg {
	SHF *shf;
	uint32_t calls;
	uint32_t errors;
};

/* The callback may call the library: no lock is held while it runs. */
static int iter_modify_cb(const char *key, uint32_t key_len, const char *val,
			  uint32_t val_len, uint32_t uid, void *arg)
{
	struct modify_arg *m = arg;

	(void)val;
	(void)val_len;
	m->calls++;
	shf_make_hash(key, key_len);
	if (shf_put_key_val(m->shf, "updated", 7) & SHF_RET_ERROR)
		m->errors++;
	if (shf_get_uid_val_copy(m->shf, uid) != SHF_RET_KEY_FOUND ||
	    shf_val_len != 7 || memcmp(shf_val, "updated", 7) != 0)
		m->errors++;
	return 0;
}

START_TEST(test_iterate_callback_calls_library)
{
	SHF_TEST_NEW("itercall");
	struct modify_arg m;
	uint32_t i;

	for (i = 0; i < 500; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, "original", 8),
			      SHF_RET_KEY_PUT);
	}
	memset(&m, 0, sizeof(m));
	m.shf = shf;
	shf_assert_eq(shf_iterate(shf, iter_modify_cb, &m), SHF_RET_OK);
	shf_assert_eq(m.errors, 0);
	shf_assert_eq(m.calls, 500);
	for (i = 0; i < 500; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_val_len, 7);
		ck_assert_mem_eq(shf_val, "updated", 7);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_tab_copy_iterate)
{
	SHF_TEST_NEW("tabiter");
	uint32_t win = 0, tab = 0, calls = 0, pairs = 0, i, n = 5000;
	uint32_t *uid = calloc(n, sizeof(uint32_t));
	uint8_t *seen = calloc(n, 1);
	struct shf_stats st;

	ck_assert_ptr_nonnull(uid);
	ck_assert_ptr_nonnull(seen);
	shf_test_fill(shf, 0, n, 0, uid);
	shf_test_stats(shf, &st);
	do {
		uint32_t off = 0, hdr[3];

		shf_tab_copy_iterate(shf, &win, &tab);
		calls++;
		while (off + sizeof(hdr) <= shf_val_len) {
			unsigned long long k;
			char key[40];
			int used = 0;

			memcpy(hdr, shf_val + off, sizeof(hdr));
			off += sizeof(hdr);
			shf_assert(hdr[1] < sizeof(key));
			shf_assert(off + hdr[1] + hdr[2] <= shf_val_len);
			memcpy(key, shf_val + off, hdr[1]);
			key[hdr[1]] = '\0';
			shf_assert(sscanf(key, "key-%llu%n", &k, &used) == 1 &&
				   used == (int)hdr[1] && k < n);
			shf_assert(shf_test_val_ok(shf_val + off + hdr[1],
						   hdr[2], k, 1, NULL));
			shf_assert_eq(hdr[0], uid[k]);
			seen[k]++;
			pairs++;
			off += hdr[1] + hdr[2];
		}
		shf_assert_eq(off, shf_val_len);
	} while ((win > 0 || tab > 0) && calls < st.shards);
	/* One call per shard, then the position is back to 0, 0. */
	shf_assert_eq(calls, st.shards);
	shf_assert_eq(win, 0);
	shf_assert_eq(tab, 0);
	shf_assert_eq(pairs, n);
	for (i = 0; i < n; i++)
		shf_assert_msg(seen[i] == 1, "key %u seen %u times", i,
			       seen[i]);
	/* Bad position: EINVAL, position unchanged. */
	win = 100000;
	errno = 0;
	shf_tab_copy_iterate(shf, &win, &tab);
	ck_assert_int_eq(errno, EINVAL);
	shf_assert_eq(win, 100000);
	shf_assert_eq(shf_val_len, 0);
	free(uid);
	free(seen);
	shf_test_del(shf, name);
}
END_TEST

/* ---- stats and garbage ---------------------------------------------- */

START_TEST(test_stats)
{
	SHF_TEST_NEW("stats");
	struct shf_stats st;
	uint32_t i;

	memset(&st, 0xff, sizeof(st));
	shf_assert_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	shf_assert_eq(st.keys, 0);
	ck_assert_uint_gt(st.bytes_file, 0);
	ck_assert_uint_gt(st.shards, 0);
	shf_assert_eq(st.fixed_key_len, 0);
	shf_assert_eq(st.fixed_val_len, 0);
	ck_assert_uint_gt(st.layout, 0);
	for (i = 0; i < 1000; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, "value", 5),
			      SHF_RET_KEY_PUT);
	}
	for (i = 0; i < 100; i++) {
		shf_test_hash(i);
		shf_assert(shf_put_key_val(shf, "other", 5) & SHF_RET_KEY_PUT);
	}
	for (i = 0; i < 300; i++) {
		shf_test_hash(i * 2);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	shf_test_stats(shf, &st);
	shf_assert_eq(st.keys, 700);
	ck_assert_uint_ge(st.puts, 1100);
	ck_assert_uint_ge(st.dels, 300);
	ck_assert_uint_gt(st.bytes_used, 0);
	ck_assert_uint_le(st.bytes_used, st.bytes_file);
	ck_assert_uint_le(st.bytes_free, st.bytes_file);
	shf_assert_eq(st.recoveries, 0);
	/* A second handle reads the same numbers. */
	{
		SHF *two = shf_attach_existing(shf_test_dir(), name);

		ck_assert_ptr_nonnull(two);
		shf_assert_eq(shf_test_keys(two), 700);
		shf_detach(two);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_stats_short_size)
{
	SHF_TEST_NEW("statsabi");
	struct {
		struct shf_stats st;
		unsigned char guard[64];
	} b;
	size_t n = offsetof(struct shf_stats, keys) + sizeof(b.st.keys);
	size_t i;

	shf_assert_eq(put_str(shf, "a", "b"), SHF_RET_KEY_PUT);
	memset(&b, 0xa5, sizeof(b));
	/* Only the first n bytes may be written (older callers' struct). */
	shf_assert_eq(shf_get_stats(shf, &b.st, n), SHF_RET_OK);
	shf_assert_eq(b.st.keys, 1);
	for (i = n; i < sizeof(b); i++)
		shf_assert_msg(((unsigned char *)&b)[i] == 0xa5,
			       "byte %zu written beyond size %zu", i, n);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_garbage_grows)
{
	SHF_TEST_NEW("garbage");
	char v[200];
	uint64_t g0, g1, g2;
	struct shf_stats st;
	uint32_t i;

	memset(v, 'g', sizeof(v));
	for (i = 0; i < 2000; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, v, sizeof(v)),
			      SHF_RET_KEY_PUT);
	}
	g0 = shf_debug_get_garbage(shf);
	for (i = 0; i < 1000; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	g1 = shf_debug_get_garbage(shf);
	shf_assert_msg(g1 > g0, "garbage %llu -> %llu after 1000 deletes",
		       (unsigned long long)g0, (unsigned long long)g1);
	ck_assert_uint_ge(g1 - g0, 1000 * sizeof(v) / 2);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.keys, 1000);
	for (i = 1000; i < 1500; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	g2 = shf_debug_get_garbage(shf);
	shf_assert_msg(g2 > g1, "garbage %llu -> %llu after 500 more deletes",
		       (unsigned long long)g1, (unsigned long long)g2);
	shf_debug_verbosity_more();
	shf_debug_verbosity_less();
	shf_test_del(shf, name);
}
END_TEST

/* ---- volume --------------------------------------------------------- */

START_TEST(test_100k)
{
	SHF_TEST_NEW("100k");
	uint32_t i, n = 100000;

	shf_test_fill(shf, 0, n, 0, NULL);
	shf_assert_eq(shf_test_keys(shf), n);
	shf_test_check_keys(shf, 0, n, 1);
	for (i = 0; i < n; i++) {
		shf_test_hash(i);
		shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	shf_assert_eq(shf_test_keys(shf), 0);
	for (i = 0; i < n; i += 97) {
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	}
	shf_test_del(shf, name);
}
END_TEST

/* ---- batched get ---------------------------------------------------- */

static char batch_name[SHF_TEST_NAME_MAX];

/* A child process puts keys b0..b299 with values "v<i>" (i bytes of 'x'
 * after them, so lengths differ), then exits. */
static int kid_batch_put(int idx, void *arg)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), batch_name);
	char k[16], v[400];
	int i;

	(void)idx, (void)arg;
	if (!shf)
		return 1;
	for (i = 0; i < 300; i++) {
		int kl = snprintf(k, sizeof(k), "b%d", i);
		int vl = snprintf(v, sizeof(v), "v%d", i);

		memset(v + vl, 'x', (size_t)i);
		shf_make_hash(k, (uint32_t)kl);
		if (shf_put_key_val(shf, v, (uint32_t)(vl + i)) != SHF_RET_KEY_PUT)
			return 2;
	}
	shf_detach(shf);
	return 0;
}

START_TEST(test_batch_get)
{
	enum { N = 340 }; /* 300 present (written by a child), 40 absent */
	static char kb[N][16], buf[N * 400];
	static const char *keys[N];
	static uint32_t klen[N], lens[N], uids[N];
	static uint64_t offs[N];
	struct shf_stats st0, st1;
	uint32_t i, found;
	SHF *shf = shf_test_new("batch", batch_name, sizeof(batch_name));

	shf_assert_eq(shf_test_run(1, kid_batch_put, NULL, 60), 0);
	for (i = 0; i < N; i++) {
		klen[i] = (uint32_t)snprintf(kb[i], sizeof(kb[i]), "b%u", i);
		keys[i] = kb[i];
	}
	shf_make_hash("named", 5);
	shf_assert_eq(shf_put_key_val(shf, "n", 1), SHF_RET_KEY_PUT);
	shf_test_stats(shf, &st0);
	shf_make_hash("named", 5); /* the batch must not disturb it */
	found = shf_get_key_val_copy_batch(shf, N, keys, klen, buf, sizeof(buf),
					   offs, lens, uids);
	shf_assert_eq(found, 300);
	/* counted as 300 hits and 40 misses */
	shf_test_stats(shf, &st1);
	shf_assert_eq(st1.hits - st0.hits, 300);
	shf_assert_eq(st1.misses - st0.misses, 40);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 1);
	ck_assert_mem_eq(shf_val, "n", 1);
	for (i = 0; i < N; i++) {
		char v[400];
		int vl;

		if (i >= 300) {
			shf_assert_eq(lens[i], UINT32_MAX);
			shf_assert_eq(uids[i], SHF_UID_NONE);
			continue;
		}
		vl = snprintf(v, sizeof(v), "v%u", i);
		memset(v + vl, 'x', i);
		shf_assert_eq(lens[i], (uint32_t)vl + i);
		ck_assert_mem_eq(buf + offs[i], v, lens[i]);
		/* the UID is the key's UID */
		shf_make_hash(keys[i], klen[i]);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(uids[i], shf_uid);
	}
	/* a buffer too small: ENOBUFS, what fits is copied */
	errno = 0;
	shf_assert_eq(shf_get_key_val_copy_batch(shf, N, keys, klen, buf, 100,
						 offs, lens, NULL),
		      UINT32_MAX);
	ck_assert_int_eq(errno, ENOBUFS);
	shf_assert_eq(lens[0], 2u);
	ck_assert_mem_eq(buf + offs[0], "v0", 2);
	shf_assert_eq(lens[299], UINT32_MAX - 1);
	shf_assert_eq(lens[320], UINT32_MAX);
	/* bad arguments */
	errno = 0;
	shf_assert_eq(shf_get_key_val_copy_batch(NULL, 1, keys, klen, buf,
						 sizeof(buf), offs, lens, NULL),
		      UINT32_MAX);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_key_val_copy_batch(shf, 1, NULL, klen, buf,
						 sizeof(buf), offs, lens, NULL),
		      UINT32_MAX);
	ck_assert_int_eq(errno, EINVAL);
	shf_assert_eq(shf_get_key_val_copy_batch(shf, 0, NULL, NULL, NULL, 0,
						 NULL, NULL, NULL),
		      0);
	shf_test_del(shf, batch_name);
}
END_TEST

/*
 * Batches while another process grows the table (segments split and the
 * directory doubles, so keys move to other segments under the batch's
 * pipeline) and gives the batch's keys values of other sizes (records
 * move): every key is found, with a value that some writer gave it.
 */
enum { GB_KEYS = 4096, GB_NEW = 150000 }; /* GB_KEYS: batches of 64 */
static char grow_name[SHF_TEST_NAME_MAX];

static int kid_grow(int idx, void *arg)
{
	SHF *shf = shf_attach_existing(shf_test_dir(), grow_name);
	char v[80];
	uint64_t i;

	(void)idx;
	(void)arg;
	if (!shf)
		return 1;
	for (i = 0; i < GB_NEW; i++) {
		uint64_t old = i % GB_KEYS;

		shf_test_hash(GB_KEYS + i);
		if (shf_put_key_val(shf, v, shf_test_val(v, GB_KEYS + i, 0)) !=
		    SHF_RET_KEY_PUT)
			return 2;
		shf_test_hash(old);
		if (shf_put_key_val(shf, v,
				    shf_test_val(v, old,
						 1 + (uint32_t)(i & 1))) !=
		    SHF_RET_KEY_PUT)
			return 3;
	}
	shf_detach(shf);
	return 0;
}

/*
 * The empty key given as NULL, and an empty value to a NULL buffer of 0
 * bytes, as the API allows: the batch passed NULL to memcmp() and
 * memcpy() (undefined; a sanitized build aborted; found by an audit).
 */
START_TEST(test_batch_get_empty_and_null)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("batchnull", name, sizeof(name));
	const char *keys[2] = { NULL, "e" };
	uint32_t klens[2] = { 0, 1 }, lens[2], uids[2];
	uint64_t offs[2];

	shf_make_hash("", 0);
	ck_assert_uint_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	shf_make_hash("e", 1);
	ck_assert_uint_eq(shf_put_key_val(shf, "", 0), SHF_RET_KEY_PUT);
	/* the empty value fits in no bytes; the other does not */
	errno = 0;
	ck_assert_uint_eq(shf_get_key_val_copy_batch(shf, 2, keys, klens, NULL,
						     0, offs, lens, uids),
			  UINT32_MAX);
	ck_assert_int_eq(errno, ENOBUFS);
	ck_assert_uint_eq(lens[0], UINT32_MAX - 1);
	ck_assert_uint_eq(lens[1], 0);
	ck_assert_uint_ne(uids[0], SHF_UID_NONE);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_batch_get_while_growing)
{
	enum { B = 64 };
	static char kb[GB_KEYS][32], buf[B * 80];
	static const char *keys[GB_KEYS];
	static uint32_t klen[GB_KEYS];
	uint64_t offs[B];
	uint32_t lens[B], i, j, w, batches = 0;
	struct shf_test_kids kids;
	SHF *shf = shf_test_new("batchgrow", grow_name, sizeof(grow_name));
	int done = 0;

	shf_test_fill(shf, 0, GB_KEYS, 0, NULL);
	for (i = 0; i < GB_KEYS; i++) {
		klen[i] = shf_test_key(kb[i], i);
		keys[i] = kb[i];
	}
	shf_test_spawn(&kids, 1, kid_grow, NULL);
	shf_test_go(&kids);
	while (!done) {
		siginfo_t si = { 0 };

		/* has it ended?  (WNOWAIT: shf_test_wait() reaps it) */
		shf_assert_eq(waitid(P_PID, (id_t)kids.pid[0], &si,
				     WEXITED | WNOHANG | WNOWAIT),
			      0);
		done = si.si_pid != 0;
		for (i = 0; i < GB_KEYS; i += B, batches++) {
			shf_assert_eq(shf_get_key_val_copy_batch(
					      shf, B, keys + i, klen + i, buf,
					      sizeof(buf), offs, lens, NULL),
				      B);
			for (j = 0; j < B; j++)
				ck_assert_msg(shf_test_val_ok(buf + offs[j],
							      lens[j], i + j,
							      3, &w),
					      "key %u: a value it never had",
					      i + j);
		}
	}
	shf_assert_eq(shf_test_wait(&kids, 60), 0);
	ck_assert_int_ge(batches, GB_KEYS / B);
	shf_assert_eq(shf_test_keys(shf), GB_KEYS + GB_NEW);
	shf_test_check_sound(shf);
	shf_test_del(shf, grow_name);
}
END_TEST

static Suite *kv_suite(void)
{
	Suite *s = suite_create("kv");

	shf_test_add_tcase(s, "attach", 60, test_version,
			   test_attach_existing_missing, test_attach_creates,
			   test_attach_twice_same_data, test_detach_reattach,
			   test_bad_names, test_bad_path, test_missing_dir,
			   test_del_removes, test_two_tables_independent);

	shf_test_add_tcase(s, "put_get", 60, test_put_get_key, test_get_by_uid,
			   test_get_absent, test_put_replace_keeps_uid,
			   test_key_copy, test_val_addr, test_empty_value,
			   test_binary_keys_values, test_long_key,
			   test_val_null_reserves_zeroes,
			   test_many_value_sizes);

	shf_test_add_tcase(s, "delete", 60, test_del_key, test_del_uid,
			   test_deleted_uid_is_none, test_uid_never_issued);

	shf_test_add_tcase(s, "update", 60, test_upd_copy, test_upd_custom,
			   test_upd_bad_size, test_add, test_add_atom,
			   test_add_many, test_put_if_absent, test_replace,
			   test_cas, test_upd_callback_calls_library);

	shf_test_add_tcase(s, "settings", 60, test_not_lockable, test_fixed_len,
			   test_fixed_len_wrong_len, test_fixed_len_persists,
			   test_fixed_len_busy, test_fixed_len_errno_kept,
			   test_fixed_len_change_busy, test_fixed_len_reuse,
			   test_data_need_factor);

	shf_test_add_tcase(s, "iterate_stats", 60, test_iterate_all,
			   test_iterate_stop, test_iterate_empty,
			   test_iterate_callback_calls_library,
			   test_tab_copy_iterate, test_stats,
			   test_stats_short_size, test_garbage_grows, test_100k,
			   test_batch_get, test_batch_get_while_growing,
			   test_batch_get_empty_and_null);

	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(kv_suite());
}
