/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_edge.c - limits, growth, bad files and documented error paths.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

/* ---- size ----------------------------------------------------------- */

START_TEST(test_value_200mib)
{
	SHF_TEST_NEW("big");
	size_t len = 200u << 20;
	char *v = malloc(len);
	uint32_t uid;

	ck_assert_ptr_nonnull(v);
	shf_test_pattern(v, len, 42);
	shf_make_hash("big", 3);
	shf_assert_eq(shf_put_key_val(shf, v, (uint32_t)len), SHF_RET_KEY_PUT);
	uid = shf_uid;
	/* A small neighbour is unaffected. */
	shf_make_hash("small", 5);
	shf_assert_eq(shf_put_key_val(shf, "s", 1), SHF_RET_KEY_PUT);

	shf_make_hash("big", 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, len);
	shf_assert_msg(memcmp(shf_val, v, len) == 0, "200 MiB value differs");
	shf_assert_eq(shf_uid, uid);

	shf_make_hash("big", 3);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, len);
	shf_assert(memcmp(shf_val_addr, v, len) == 0);

	/* Replaced by a small value, and back to the big one. */
	shf_make_hash("big", 3);
	shf_assert(shf_put_key_val(shf, "tiny", 4) & SHF_RET_KEY_PUT);
	shf_assert_eq(shf_uid, uid);
	shf_make_hash("big", 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 4);
	v[len / 2] ^= 0x55;
	shf_make_hash("big", 3);
	shf_assert(shf_put_key_val(shf, v, (uint32_t)len) & SHF_RET_KEY_PUT);
	shf_make_hash("big", 3);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, len);
	shf_assert(memcmp(shf_val, v, len) == 0);

	shf_make_hash("small", 5);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 1);
	ck_assert_int_eq(shf_val[0], 's');
	free(v);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_growth_1m)
{
	SHF_TEST_NEW("1m");
	struct shf_stats st0, st;
	uint32_t i, n = 1000000;

	shf_test_stats(shf, &st0);
	shf_test_fill(shf, 0, n, 0, NULL);
	shf_test_check_keys(shf, 0, n, 1);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.keys, n);
	ck_assert_uint_gt(st.bytes_file, st0.bytes_file);
	ck_assert_uint_gt(st.splits, st0.splits);
	/* Another handle, attached after the growth, sees it all. */
	{
		SHF *two = shf_attach_existing(shf_test_dir(), name);

		ck_assert_ptr_nonnull(two);
		for (i = 0; i < n; i += 101) {
			shf_test_hash(i);
			shf_assert_eq(shf_get_key_val_copy(two),
				      SHF_RET_KEY_FOUND);
		}
		shf_detach(two);
	}
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_uids_stable_growth)
{
	SHF_TEST_NEW("uidgrow1");
	uint32_t uid[1000];
	uint32_t i;

	shf_test_fill(shf, 0, 1000, 0, uid);
	for (i = 1000; i < 501000; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, 0);

		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, v, len), SHF_RET_KEY_PUT);
		/* Replace some of the first keys on the way (records move). */
		if (i % 1000 == 0) {
			uint64_t k = (i / 1000) % 1000;

			len = shf_test_val(v, k, 1);
			shf_test_hash(k);
			shf_assert(shf_put_key_val(shf, v, len) &
				   SHF_RET_KEY_PUT);
			shf_assert_eq(shf_uid, uid[k]);
		}
	}
	for (i = 0; i < 1000; i++) {
		char key[32];
		uint32_t klen = shf_test_key(key, i);

		shf_assert_eq(shf_get_uid_key_copy(shf, uid[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_key_len, klen);
		ck_assert_mem_eq(shf_key, key, klen);
		shf_assert_eq(shf_get_uid_val_copy(shf, uid[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert(shf_test_val_ok(shf_val, shf_val_len, i, 2, NULL));
		shf_test_hash(i);
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_uid, uid[i]);
	}
	shf_test_del(shf, name);
}
END_TEST

/*
 * A UID names its key's record cell (layout 5).  Values whose records
 * change size class, pass 512 bytes (the cell forwards) and come back keep
 * the key's UID; a value of the same class is rewritten in its cell (its
 * address stays); another process finds every value by UID; a deleted
 * key's UID finds nothing.
 */
static const uint32_t cell_lens[] = { 8, 100, 600, 9, 70000, 4, 500, 12, 0, 513 };
#define CELL_LENS (sizeof(cell_lens) / sizeof(cell_lens[0]))
#define CELL_KEYS 300u

static int cell_val_ok(const char *val, uint32_t len, uint32_t i, uint32_t s)
{
	char c = (char)('a' + (i + s) % 26);

	return len == cell_lens[(s + i) % CELL_LENS] &&
	       (!len || (val[0] == c && val[len / 2] == c && val[len - 1] == c));
}

START_TEST(test_uid_cells_across_classes)
{
	SHF_TEST_NEW("uidcells");
	static char v[70000];
	uint32_t uid[CELL_KEYS], i, s, len;
	const char *a;
	pid_t pid;
	int status;

	for (s = 0; s < CELL_LENS; s++) {
		for (i = 0; i < CELL_KEYS; i++) {
			len = cell_lens[(s + i) % CELL_LENS];
			memset(v, 'a' + (i + s) % 26, len);
			shf_test_hash(i);
			shf_assert(shf_put_key_val(shf, v, len) &
				   SHF_RET_KEY_PUT);
			if (s == 0)
				uid[i] = shf_uid;
			shf_assert_eq(shf_uid, uid[i]);
		}
		for (i = 0; i < CELL_KEYS; i++) {
			shf_assert_eq(shf_get_uid_val_copy(shf, uid[i]),
				      SHF_RET_KEY_FOUND);
			shf_assert(cell_val_ok(shf_val, shf_val_len, i, s));
		}
		shf_test_check_sound(shf);
	}
	s = CELL_LENS - 1;

	/* another process, by UID */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *two = shf_attach_existing(shf_test_dir(), name);

		if (!two)
			_exit(2);
		for (i = 0; i < CELL_KEYS; i++)
			if (shf_get_uid_val_copy(two, uid[i]) !=
				    SHF_RET_KEY_FOUND ||
			    !cell_val_ok(shf_val, shf_val_len, i, s))
				_exit(3);
		shf_detach(two);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "the other process's gets by UID: status %#x", status);

	/* the same class: rewritten where it is */
	shf_test_hash(CELL_KEYS);
	shf_assert_eq(shf_put_key_val(shf, "12345678", 8), SHF_RET_KEY_PUT);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	a = shf_val_addr;
	shf_assert_eq(shf_put_key_val(shf, "abcdefgh", 8), SHF_RET_KEY_PUT);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	ck_assert_ptr_eq(shf_val_addr, a);
	ck_assert_mem_eq(a, "abcdefgh", 8);

	for (i = 0; i < CELL_KEYS / 2; i++) {
		shf_assert_eq(shf_del_uid_val(shf, uid[i]), SHF_RET_KEY_FOUND);
		shf_assert_eq(shf_get_uid_val_copy(shf, uid[i]),
			      SHF_RET_KEY_NONE);
	}
	for (i = CELL_KEYS / 2; i < CELL_KEYS; i++) {
		shf_assert_eq(shf_get_uid_val_copy(shf, uid[i]),
			      SHF_RET_KEY_FOUND);
		shf_assert(cell_val_ok(shf_val, shf_val_len, i, s));
	}
	shf_test_check_sound(shf);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_val_addr_survives_growth)
{
	SHF_TEST_NEW("addrgrow");
	char v[100];
	char *addr;
	uint32_t i;

	memset(v, 'q', sizeof(v));
	shf_make_hash("pinned", 6);
	shf_assert_eq(shf_put_key_val(shf, v, sizeof(v)), SHF_RET_KEY_PUT);
	shf_make_hash("pinned", 6);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	addr = shf_val_addr;
	for (i = 0; i < 200000; i++) {
		char w[80];
		uint32_t len = shf_test_val(w, i, 0);

		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, w, len), SHF_RET_KEY_PUT);
	}
	/* Growth and other keys do not move a value. */
	ck_assert_mem_eq(addr, v, sizeof(v));
	shf_make_hash("pinned", 6);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	ck_assert_ptr_eq(shf_val_addr, addr);
	/* Write in place through the address (reserve-then-fill). */
	shf_make_hash("filled", 6);
	shf_assert_eq(shf_put_key_val(shf, NULL, 8), SHF_RET_KEY_PUT);
	shf_make_hash("filled", 6);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	memcpy(shf_val_addr, "12345678", 8);
	shf_make_hash("filled", 6);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(shf_val, "12345678", 8);
	/* Absent key: NULL address. */
	shf_val_addr = addr;
	shf_make_hash("absent", 6);
	shf_assert_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_NONE);
	ck_assert_ptr_null(shf_val_addr);
	shf_assert_eq(shf_uid, SHF_UID_NONE);
	shf_test_del(shf, name);
}
END_TEST

START_TEST(test_name_200_bytes)
{
	char tag[201];
	char name[SHF_TEST_NAME_MAX + 200];
	char longer[sizeof(name) + 1];
	size_t plen;
	SHF *shf;

	/* 200 bytes is the longest name; 201 is refused. */
	shf_test_name(name, sizeof(name), "");
	plen = strlen(name);
	memset(tag, 'n', sizeof(tag));
	tag[200 - plen] = '\0';
	shf_test_name(name, sizeof(name), tag);
	shf_assert_eq(strlen(name), 200);
	shf = shf_attach(shf_test_dir(), name, 0);
	ck_assert_ptr_nonnull(shf);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	snprintf(longer, sizeof(longer), "%sn", name);
	errno = 0;
	ck_assert_ptr_null(shf_attach(shf_test_dir(), longer, 0));
	ck_assert_int_eq(errno, EINVAL);
	shf_test_del(shf, name);
}
END_TEST

/* ---- files that are not tables --------------------------------------- */

static void write_file(const char *path, char c, size_t len)
{
	char buf[4096];
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	ck_assert_int_ge(fd, 0);
	memset(buf, c, sizeof(buf));
	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
		len -= n;
	}
	close(fd);
}

START_TEST(test_not_a_table)
{
	char name[SHF_TEST_NAME_MAX], file[SHF_TEST_PATH_MAX];
	const size_t sizes[] = { 10, 65536, 1 << 20 };
	const char fill[] = { 'x', 0, 'x' };
	size_t i;

	shf_test_name(name, sizeof(name), "garbage");
	shf_test_file(file, sizeof(file), name);
	for (i = 0; i < 3; i++) {
		struct stat st;

		write_file(file, fill[i], sizes[i]);
		errno = 0;
		ck_assert_ptr_null(shf_attach(shf_test_dir(), name, 0));
		ck_assert_int_eq(errno, EBADMSG);
		errno = 0;
		ck_assert_ptr_null(shf_attach_existing(shf_test_dir(), name));
		ck_assert_int_eq(errno, EBADMSG);
		/* The file is left alone. */
		ck_assert_int_eq(stat(file, &st), 0);
		ck_assert_int_eq(st.st_size, (off_t)sizes[i]);
	}
	ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_scrambled_table)
{
	SHF_TEST_NEW("scrambled");
	char file[SHF_TEST_PATH_MAX];
	char junk[256];
	int fd;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	shf_detach(shf);
	/* Overwrite the header (magic, version) of a real table. */
	shf_test_file(file, sizeof(file), name);
	fd = open(file, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	memset(junk, 0xa5, sizeof(junk));
	ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 0),
			 (ssize_t)sizeof(junk));
	close(fd);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(shf_test_dir(), name));
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_symlink_refused)
{
	char target[SHF_TEST_NAME_MAX], link[SHF_TEST_NAME_MAX];
	char tfile[SHF_TEST_PATH_MAX], lfile[SHF_TEST_PATH_MAX];
	SHF *shf = shf_test_new("target", target, sizeof(target));

	shf_test_name(link, sizeof(link), "link");
	shf_test_file(tfile, sizeof(tfile), target);
	shf_test_file(lfile, sizeof(lfile), link);
	unlink(lfile);
	ck_assert_int_eq(symlink(tfile, lfile), 0);
	errno = 0;
	ck_assert_ptr_null(shf_attach(shf_test_dir(), link, 0));
	ck_assert_int_eq(errno, ELOOP);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(shf_test_dir(), link));
	ck_assert_int_eq(errno, ELOOP);
	/* A dangling link is not followed to create a file either. */
	ck_assert_int_eq(unlink(lfile), 0);
	shf_test_del(shf, target);
	ck_assert_int_eq(symlink(tfile, lfile), 0);
	errno = 0;
	ck_assert_ptr_null(shf_attach(shf_test_dir(), link, 0));
	ck_assert_int_eq(errno, ELOOP);
	ck_assert_int_ne(access(tfile, F_OK), 0);
	ck_assert_int_eq(unlink(lfile), 0);
}
END_TEST

START_TEST(test_path_not_dir)
{
	char name[SHF_TEST_NAME_MAX], file[SHF_TEST_PATH_MAX];

	shf_test_name(name, sizeof(name), "notdir");
	snprintf(file, sizeof(file), "%s/%s.shf", shf_test_dir(), name);
	write_file(file, 'x', 10);
	errno = 0;
	ck_assert_ptr_null(shf_attach(file, "x", 0));
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_file_mode_0600)
{
	SHF_TEST_NEW("mode");
	char file[SHF_TEST_PATH_MAX];
	struct stat st;
	mode_t old = umask(0);

	shf_test_del(shf, name);
	shf = shf_attach(shf_test_dir(), name, 0);
	umask(old);
	ck_assert_ptr_nonnull(shf);
	ck_assert_int_eq(stat(shf_test_file(file, sizeof(file), name), &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	shf_test_del(shf, name);
}
END_TEST

/* ---- shf_del with other handles --------------------------------------- */

START_TEST(test_del_other_handles)
{
	SHF_TEST_NEW("delhandles");
	SHF *two, *three;
	char *text;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	two = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(two);
	shf_test_del(shf, name);
	/* Still attached: the mapping stays usable. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_get_key_val_copy(two), SHF_RET_KEY_FOUND);
	shf_make_hash("k2", 2);
	shf_assert_eq(shf_put_key_val(two, "v2", 2), SHF_RET_KEY_PUT);
	/* A new table of that name is another table. */
	three = shf_attach(shf_test_dir(), name, 0);
	ck_assert_ptr_nonnull(three);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_get_key_val_copy(three), SHF_RET_KEY_NONE);
	/* The old handle may not remove the new file. */
	errno = 0;
	text = shf_del(two);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(errno, ESTALE);
	shf_assert(shf_test_exists(name));
	shf_test_del(three, name);
}
END_TEST

START_TEST(test_del_twice)
{
	SHF_TEST_NEW("deltwice");
	SHF *two = shf_attach_existing(shf_test_dir(), name);
	char *text;

	ck_assert_ptr_nonnull(two);
	shf_test_del(shf, name);
	errno = 0;
	text = shf_del(two);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- documented errors for bad arguments ------------------------------- */

START_TEST(test_null_handle)
{
	struct shf_stats st;

	shf_make_hash("k", 1);
	errno = 0;
	shf_assert_eq(shf_put_key_val(NULL, "v", 1), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_key_val_copy(NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_uid_val_copy(NULL, 1), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_key_val_addr(NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_upd_callback_copy("v", 1);
	shf_assert_eq(shf_upd_key_val(NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_add_key_val(NULL, 1), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_stats(NULL, &st, sizeof(st)), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_del(NULL));
	ck_assert_int_eq(errno, EINVAL);
	shf_assert_eq(shf_debug_get_garbage(NULL), 0);
	shf_set_is_lockable(NULL, 0); /* documented: does nothing */
	errno = 0;
	shf_set_is_fixed_len(NULL, 8, 8);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static int dummy_cb(const char *key, uint32_t key_len, const char *val,
		    uint32_t val_len, uint32_t uid, void *arg)
{
	(void)key;
	(void)key_len;
	(void)val;
	(void)val_len;
	(void)uid;
	(void)arg;
	return 0;
}

START_TEST(test_bad_arguments)
{
	SHF_TEST_NEW("badargs");
	struct shf_stats st;

	errno = 0;
	shf_assert_eq(shf_iterate(shf, NULL, NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_iterate(NULL, dummy_cb, NULL), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0; /* it read the handle before checking it (review) */
	shf_assert_eq(shf_check(NULL, 0, NULL, NULL), UINT32_MAX);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_assert_eq(shf_get_stats(shf, NULL, sizeof(st)), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	/* Zero fixed lengths are refused and change nothing. */
	errno = 0;
	shf_set_is_fixed_len(shf, 0, 8);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	shf_set_is_fixed_len(shf, 8, 0);
	ck_assert_int_eq(errno, EINVAL);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 0);
	shf_assert_eq(st.fixed_val_len, 0);
	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val(shf, "any length", 10), SHF_RET_KEY_PUT);
	/* Fixed lengths on an empty table that has other ones: EBUSY. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	shf_set_is_fixed_len(shf, 4, 4);
	errno = 0;
	shf_set_is_fixed_len(shf, 8, 8);
	ck_assert_int_eq(errno, EBUSY);
	shf_test_stats(shf, &st);
	shf_assert_eq(st.fixed_key_len, 4);
	shf_assert_eq(st.fixed_val_len, 4);
	shf_test_del(shf, name);
}
END_TEST

/* A new thread has named no key and set no callback. */
struct fresh {
	SHF *shf;
	uint32_t put, get, del, upd, add;
	int put_errno, upd_errno;
};

static void *fresh_thread(void *arg)
{
	struct fresh *f = arg;

	errno = 0;
	f->put = shf_put_key_val(f->shf, "v", 1);
	f->put_errno = errno;
	f->get = shf_get_key_val_copy(f->shf);
	f->del = shf_del_key_val(f->shf);
	f->add = shf_add_key_val(f->shf, 1);
	shf_make_hash("k", 1);
	errno = 0;
	f->upd = shf_upd_key_val(f->shf);
	f->upd_errno = errno;
	return NULL;
}

START_TEST(test_no_key_named)
{
	SHF_TEST_NEW("nokey");
	struct fresh f;
	pthread_t t;

	shf_make_hash("k", 1);
	shf_assert_eq(shf_put_key_val(shf, "v", 1), SHF_RET_KEY_PUT);
	memset(&f, 0, sizeof(f));
	f.shf = shf;
	ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread, &f), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	shf_assert_eq(f.put, SHF_RET_ERROR);
	ck_assert_int_eq(f.put_errno, EINVAL);
	shf_assert_eq(f.get, SHF_RET_ERROR);
	shf_assert_eq(f.del, SHF_RET_ERROR);
	shf_assert_eq(f.add, SHF_RET_ERROR);
	shf_assert_eq(f.upd, SHF_RET_ERROR);
	ck_assert_int_eq(f.upd_errno, EINVAL);
	/* Nothing changed. */
	shf_make_hash("k", 1);
	shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	shf_assert_eq(shf_val_len, 1);
	shf_assert_eq(shf_test_keys(shf), 1);
	shf_test_del(shf, name);
}
END_TEST

/* ---- helpers SharedHashFile exported ----------------------------------- */

START_TEST(test_util_helpers)
{
	double t0, t1;

	ck_assert_uint_gt(shf_get_vfs_available(shf_test_dir()), 0);
	t0 = shf_get_time_in_seconds();
	shf_test_msleep(20);
	t1 = shf_get_time_in_seconds();
	shf_assert(t1 >= t0 + 0.015);
	shf_assert(t1 < t0 + 60);
}
END_TEST

START_TEST(test_add_wraps)
{
	SHF_TEST_NEW("wrap");
	long max = 0x7fffffffffffffffL;

	shf_make_hash("w", 1);
	shf_assert_eq(shf_put_key_val(shf, (char *)&max, sizeof(max)),
		      SHF_RET_KEY_PUT);
	shf_make_hash("w", 1);
	shf_assert_eq(shf_add_key_val(shf, 1), SHF_RET_KEY_FOUND);
	shf_assert(shf_val_long == (-0x7fffffffffffffffL - 1));
	shf_make_hash("w", 1);
	shf_assert_eq(shf_add_key_val_atom(shf, -1), SHF_RET_KEY_FOUND);
	shf_assert(shf_val_long == max);
	shf_test_del(shf, name);
}
END_TEST

static Suite *edge_suite(void)
{
	Suite *s = suite_create("edge");

	shf_test_add_tcase(s, "size", 120, test_value_200mib, test_growth_1m,
			   test_uids_stable_growth, test_uid_cells_across_classes,
			   test_val_addr_survives_growth, test_name_200_bytes);

	shf_test_add_tcase(s, "files", 60, test_not_a_table,
			   test_scrambled_table, test_symlink_refused,
			   test_path_not_dir, test_file_mode_0600,
			   test_del_other_handles, test_del_twice);

	shf_test_add_tcase(s, "errors", 60, test_null_handle,
			   test_bad_arguments, test_no_key_named,
			   test_util_helpers, test_add_wraps);

	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(edge_suite());
}
