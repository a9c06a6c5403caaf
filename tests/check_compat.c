/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_compat.c - where libshf behaves as SharedHashFile does (see
 * libshf(7), COMING FROM SHAREDHASHFILE): update callbacks return result
 * flags, the conditional delete of shf_ttl, shf_exec_child() and
 * shf_backticks(), race start that gives up, the log that writes lines as
 * given, and the declarations of SharedHashFile's shf.h.  Binaries built
 * for libshf 1.0 and 1.1 keep the old callback and exec conventions
 * through the symbols' LIBSHF_1.0 versions.
 *
 * The SharedHashFile-style programs of tests/compat/ check the same from
 * a user's side, built against the header and library as installed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

static void hash_str(const char *key)
{
	shf_make_hash(key, (uint32_t)strlen(key));
}

static void put_str(SHF *shf, const char *key, const char *val)
{
	hash_str(key);
	ck_assert_uint_eq(shf_put_key_val(shf, val, (uint32_t)strlen(val)),
			  SHF_RET_KEY_PUT);
}

static void expect_val(SHF *shf, const char *key, const char *val)
{
	hash_str(key);
	ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, strlen(val));
	ck_assert_mem_eq(shf_val, val, strlen(val));
}

/* ------------------------------------------------------- callbacks */

static uint32_t cb_upper_ok(const char *val, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		((char *)val)[i] = (char)(val[i] & ~0x20);
	return SHF_RET_OK;
}

/* Changes the copy, then refuses: the change must not land. */
static uint32_t cb_refuse(const char *val, uint32_t len)
{
	memset((char *)val, 'X', len);
	return SHF_RET_BAD_CB;
}

static uint32_t cb_bad_val(const char *val, uint32_t len)
{
	(void)val;
	(void)len;
	return SHF_RET_BAD_VAL;
}

/* The libshf 1.0 convention: return val_len to commit. */
static uint32_t cb_v1_commit(const char *val, uint32_t len)
{
	((char *)val)[0] = 'V';
	return len;
}

START_TEST(test_upd_callback_flags)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("upd", name, sizeof(name));

	put_str(shf, "k", "abcd");
	/* 0 commits (libshf 1.1 threw such changes away: FOUND|BAD_CB) */
	shf_upd_callback_set(cb_upper_ok);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	expect_val(shf, "k", "ABCD");
	/* BAD_CB (4) on a 4-byte value: discarded (1.1 committed it) */
	shf_upd_callback_set(cb_refuse);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf),
			  SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	expect_val(shf, "k", "ABCD");
	ck_assert_uint_eq(shf_upd_uid_val(shf, shf_uid),
			  SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	expect_val(shf, "k", "ABCD");
	/* any other flags are ORed in, the copy discarded */
	shf_upd_callback_set(cb_bad_val);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf),
			  SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	/* the built-in copy callback */
	ck_assert_uint_eq(shf_upd_callback_copy("wxyz", 4), SHF_RET_OK);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	expect_val(shf, "k", "wxyz");
	ck_assert_uint_eq(shf_upd_callback_copy("toolong", 7), SHF_RET_OK);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf),
			  SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	expect_val(shf, "k", "wxyz");
	/* an absent key: the callback is not called */
	shf_upd_callback_set(cb_refuse);
	hash_str("absent");
	ck_assert_uint_eq(shf_upd_key_val(shf), SHF_RET_KEY_NONE);
	shf_test_del(shf, name);
}
END_TEST

/* A binary built for libshf 1.0 binds shf_upd_callback_set@LIBSHF_1.0. */
START_TEST(test_upd_callback_v1_abi)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("updv1", name, sizeof(name));
	void (*set_v1)(shf_upd_callback_t);

	set_v1 = (void (*)(shf_upd_callback_t))dlvsym(
		RTLD_DEFAULT, "shf_upd_callback_set", "LIBSHF_1.0");
	ck_assert_msg(set_v1 != NULL, "no shf_upd_callback_set@LIBSHF_1.0");
	ck_assert_ptr_ne((void *)set_v1, (void *)shf_upd_callback_set);
	put_str(shf, "k", "abc");
	set_v1(cb_v1_commit);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	expect_val(shf, "k", "Vbc");
	/* under 1.0, anything but val_len was a refusal: BAD_CB */
	set_v1(cb_upper_ok);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf),
			  SHF_RET_KEY_FOUND | SHF_RET_BAD_CB);
	expect_val(shf, "k", "Vbc");
	/* the current entry point switches back */
	shf_upd_callback_set(cb_upper_ok);
	hash_str("k");
	ck_assert_uint_eq(shf_upd_key_val(shf), SHF_RET_KEY_FOUND);
	expect_val(shf, "k", "VBC");
	shf_test_del(shf, name);
}
END_TEST

/* ---------------------------------------------- conditional delete */

static int kid_del_ttl(int idx, void *arg)
{
	const char *name = arg;
	SHF *shf = shf_test_attach_existing(name);
	uint32_t tag = 0x41424344, other = 7, r, put_kid;

	(void)idx;
	if (!shf)
		return 1;
	/* another process's value: not this tag, nothing deleted */
	shf_ttl = other;
	hash_str("lock");
	r = shf_del_key_val(shf);
	if (r != (SHF_RET_KEY_FOUND | SHF_RET_NOT_TTL) || shf_ttl != 0)
		return 2;
	hash_str("lock");
	if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND)
		return 3;
	/* its tag: deleted, and the value copied out (over another one) */
	hash_str("other");
	put_kid = shf_put_key_val(shf, "other-value-x", 13);
	hash_str("other");
	if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND || shf_val_len != 13)
		return 6;
	hash_str("lock");
	shf_ttl = tag;
	hash_str("lock");
	r = shf_del_key_val(shf);
	if (put_kid != SHF_RET_KEY_PUT || r != SHF_RET_KEY_FOUND ||
	    shf_ttl != 0 || shf_val_len != 8 || memcmp(shf_val, "DCBAtail", 8))
		return 4;
	hash_str("lock");
	if (shf_get_key_val_copy(shf) != SHF_RET_KEY_NONE)
		return 5;
	shf_detach(shf);
	return 0;
}

START_TEST(test_del_ttl)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("delttl", name, sizeof(name));
	uint32_t uid;

	/* the first 4 bytes, in memory order, are the tag 0x41424344 */
	put_str(shf, "lock", "DCBAtail");
	ck_assert_int_eq(shf_test_run(1, kid_del_ttl, name, 20), 0);
	/* by UID; a value shorter than 4 bytes never matches */
	put_str(shf, "short", "ab");
	uid = shf_uid;
	shf_ttl = 0x6261;
	ck_assert_uint_eq(shf_del_uid_val(shf, uid),
			  SHF_RET_KEY_FOUND | SHF_RET_NOT_TTL);
	ck_assert_uint_eq(shf_ttl, 0);
	/* one shot: reset by the call, the next delete is plain */
	ck_assert_uint_eq(shf_del_uid_val(shf, uid), SHF_RET_KEY_FOUND);
	/* an absent key: KEY_NONE, and reset too */
	shf_ttl = 1;
	hash_str("absent");
	ck_assert_uint_eq(shf_del_key_val(shf), SHF_RET_KEY_NONE);
	ck_assert_uint_eq(shf_ttl, 0);
	shf_test_del(shf, name);
}
END_TEST

/* --------------------------------------------- children, backticks */

START_TEST(test_exec_child)
{
	char *path = shf_backticks("command -v sh");
	int status;
	pid_t pid;

	ck_assert_ptr_nonnull(path);
	/* no trailing newline: a full path as SharedHashFile's users pass */
	ck_assert_msg(path[0] == '/' && !strchr(path, '\n'), "'%s'", path);
	/* execl(child_path, child_file, arg1, arg2, NULL) */
	pid = shf_exec_child(path, "sh", "-c", "[ \"$0\" = sh ] && exit 7");
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
	/* one argument: the list ends there (sh runs the empty script) */
	pid = shf_exec_child(path, "sh", "/dev/null", NULL);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* a directory is no program */
	errno = 0;
	ck_assert_int_eq(shf_exec_child("/bin", "sh", NULL, NULL), -1);
	ck_assert_int_eq(errno, EACCES);
	errno = 0;
	ck_assert_int_eq(shf_exec_child(path, NULL, NULL, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	free(path);
}
END_TEST

/* A binary built for libshf 1.0 joined child_path "/" child_file. */
START_TEST(test_exec_child_v1_abi)
{
	pid_t (*exec_v1)(const char *, const char *, const char *,
			 const char *);
	char *path = shf_backticks("command -v sh"), *dir, *slash;
	int status;
	pid_t pid;

	exec_v1 = (pid_t(*)(const char *, const char *, const char *,
			    const char *))dlvsym(RTLD_DEFAULT, "shf_exec_child",
						 "LIBSHF_1.0");
	ck_assert_msg(exec_v1 != NULL, "no shf_exec_child@LIBSHF_1.0");
	ck_assert_ptr_nonnull(path);
	slash = strrchr(path, '/');
	ck_assert_ptr_nonnull(slash);
	dir = strndup(path, (size_t)(slash - path));
	pid = exec_v1(dir, slash + 1, "-c", "exit 5");
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 5);
	free(dir);
	free(path);
}
END_TEST

START_TEST(test_backticks_trim)
{
	char *out = shf_backticks("printf 'a b \\r\\n \\n\\n'");

	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "a b");
	free(out);
	out = shf_backticks("printf '\\n\\n'");
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "");
	free(out);
	out = shf_backticks("printf 'x\\ny\\n'");
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "x\ny"); /* inner newlines stay */
	free(out);
}
END_TEST

/* ------------------------------------------------------------ race */

static int kid_horse(int idx, void *arg)
{
	const char *name = arg;
	SHF *shf = shf_test_attach_existing(name);
	uint32_t r;

	if (!shf)
		return 1;
	/* the second horse comes late: the first waits over a second */
	if (idx == 1)
		shf_test_msleep(1500);
	errno = 0;
	r = shf_race_start_timeout(shf, "line", 4, 2, 20000);
	shf_detach(shf);
	if (r != SHF_RET_OK)
		return 2;
	return errno == 0 ? 0 : 3; /* a start is no error */
}

START_TEST(test_race_gives_up)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("race", name, sizeof(name));
	double t0, dt;

	shf_race_init(shf, "line", 4);
	/* SharedHashFile's call: 2 horses, one arrives: 6 s, ETIMEDOUT */
	t0 = shf_test_now();
	errno = 0;
	shf_race_start(shf, "line", 4, 2);
	dt = shf_test_now() - t0;
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_msg(dt >= 5.9 && dt < 6.0 + 5.0 * shf_test_multiplier(),
		      "gave up after %.3f s", dt);
	/* with a time of the caller's */
	t0 = shf_test_now();
	errno = 0;
	ck_assert_uint_eq(shf_race_start_timeout(shf, "line", 4, 2, 200),
			  SHF_RET_ERROR);
	ck_assert_int_eq(errno, ETIMEDOUT);
	dt = shf_test_now() - t0;
	ck_assert_msg(dt >= 0.19 && dt < 5.0, "gave up after %.3f s", dt);
	/* the horses that gave up left the line: a real race of 2 starts */
	ck_assert_int_eq(shf_test_run(2, kid_horse, name, 30), 0);
	errno = 0;
	ck_assert_uint_eq(shf_race_start_timeout(shf, "none", 4, 2, 10),
			  SHF_RET_ERROR);
	ck_assert_int_eq(errno, ENOENT);
	shf_test_del(shf, name);
}
END_TEST

/* ------------------------------------------------------------- log */

static int kid_tap(int idx, void *arg)
{
	const char *name = arg;
	SHF *shf = shf_test_attach_existing(name);

	(void)idx;
	if (!shf || shf_log_attach_existing(shf) != SHF_RET_OK)
		return 1;
	shf_log_fprintf(stdout, "ok 2 - from the child\n");
	shf_log_fputs("ok 3 - in ", stdout);
	shf_log_fputs("pieces\n", stdout);
	shf_log_detach_existing(shf);
	shf_detach(shf);
	return 0;
}

START_TEST(test_log_as_given)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("logtap", name, sizeof(name));
	FILE *out = tmpfile();
	const char *tap = "ok 1 - first\nok 2 - from the child\n"
			  "ok 3 - in pieces\n";
	size_t n = strlen(tap);
	char *text, want[64];

	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(shf_log_thread_new(shf, 0, fileno(out)), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "ok 1 - first\n", 13),
			  SHF_RET_OK);
	ck_assert_int_eq(shf_test_run(1, kid_tap, name, 20), 0);
	/* a prefix on request, for every writer */
	ck_assert_uint_eq(shf_log_set_prefix(shf, SHF_LOG_PREFIX_TIME_PID),
			  SHF_RET_OK);
	ck_assert_uint_eq(shf_log_append(shf, "prefixed\n", 9), SHF_RET_OK);
	ck_assert_uint_eq(shf_log_set_prefix(shf, 9), SHF_RET_ERROR);
	ck_assert_uint_eq(shf_log_thread_del(shf), SHF_RET_OK);
	text = shf_test_slurp(out, NULL);
	snprintf(want, sizeof(want), " %ld prefixed\n", (long)getpid());
	ck_assert_msg(!strncmp(text, tap, n) && strstr(text + n, want) &&
			      text[n] >= '0' && text[n] <= '9',
		      "log: '%s'", text);
	free(text);
	fclose(out);
	shf_log_init(); /* SharedHashFile's; nothing to do */
	shf_test_del(shf, name);
}
END_TEST

/* ---------------------------------------------------- declarations */

START_TEST(test_declarations)
{
	char name[SHF_TEST_NAME_MAX];
	SHF *shf = shf_test_new("decl", name, sizeof(name));
	uint32_t win = 0, tab = 0, walked = 0, *p, qiid;
	uint64_t bytes = 0;
	SHF_DATA_TYPE dt;

	/* SharedHashFile's shf_val_addr is a void *: no cast needed */
	put_str(shf, "k", "\x01\x02\x03\x04");
	hash_str("k");
	ck_assert_uint_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	p = shf_val_addr; /* values are not aligned: read it with memcpy() */
	memcpy(&win, p, sizeof(win));
	ck_assert_uint_eq(win & 0xff, 1);
	win = 0;
	/* shf_tab, shf_tab_len: the shard copied by the raw walk */
	do {
		shf_tab_copy_iterate(shf, &win, &tab);
		ck_assert_uint_eq(shf_tab_len, shf_val_len);
		bytes += shf_tab_len;
		walked++;
		if (shf_tab_len)
			ck_assert_ptr_nonnull(shf_tab);
	} while (win > 0 || tab > 0);
	ck_assert_uint_eq(walked, 256);
	ck_assert_uint_eq(bytes, 12 + 1 + 4);
	win = 0;
	do { /* every copy in shf_val ends with a NUL, as the man page says */
		shf_tab_copy_iterate(shf, &win, &tab);
		ck_assert_int_eq(shf_val[shf_val_len], '\0');
	} while (win > 0);
	dt.as_u08 = SHF_DATA_TYPE_DELETED;
	ck_assert_uint_eq(dt.as_type.key_type, SHF_KEY_TYPE_KEY_IS_DELETED);
	SHF_UNUSE(dt);
	/* a queue item taken from the middle of its queue */
	ck_assert_ptr_nonnull(shf_q_new(shf, 2, 8, 16, 1));
	qiid = shf_q_take_item(shf, 3);
	ck_assert_uint_eq(qiid, 3);
	ck_assert_uint_eq(shf_qiid, 3);
	ck_assert_ptr_nonnull(shf_qiid_addr);
	errno = 0;
	ck_assert_uint_eq(shf_q_take_item(shf, 3), SHF_QIID_NONE);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_uint_eq(shf_q_take_item(shf, 8), SHF_QIID_NONE);
	shf_q_size(shf, 0);
	for (int i = 0; i < 7; i++)
		ck_assert_uint_ne(shf_q_pull_tail(shf, 0), 3);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 0), SHF_QIID_NONE);
	shf_q_push_head(shf, 1, 3);
	shf_q_flush(shf, SHF_QID_NONE);
	ck_assert_uint_eq(shf_q_pull_tail(shf, 1), 3);
	shf_test_del(shf, name);
}
END_TEST

static Suite *compat_suite(void)
{
	Suite *s = suite_create("compat");

	shf_test_add_tcase(s, "kv", 30, test_upd_callback_flags,
			   test_upd_callback_v1_abi, test_del_ttl,
			   test_declarations);

	shf_test_add_tcase(s, "helpers", 30, test_exec_child,
			   test_exec_child_v1_abi, test_backticks_trim);

	shf_test_add_tcase(s, "ipc", 60, test_race_gives_up, test_log_as_given);
	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(compat_suite());
}
