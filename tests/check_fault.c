/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_fault.c - hostile and corrupt files, bad names and paths.
 *
 * Whatever lies at <dir>/<name>.shf (nothing, an empty file, a cut or
 * patched table, random bytes, a directory, a symlink, a FIFO), attaching
 * gives a handle or NULL with errno, and never crashes, hangs or writes
 * through a link.  A table whose body was scrambled while no one was
 * attached may give errors or wrong answers, never a crash or a hang, and
 * shf_check() reports the damage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"

#define LAYOUT_OFF 8 /* uint32 layout version in the header */
#define SIG_OFF 12 /* uint32 size signature */
#define PAGE 4096

/* ------------------------------------------------------------- helpers */

static uint64_t rnd_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rnd_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void rnd_fill(void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(rnd() >> 56);
}

static char *path_of(char *buf, size_t size, const char *name)
{
	return shf_test_file(buf, size, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_msg(write(fd, data, len) == (ssize_t)len, "write %s: %s",
		      path, strerror(errno));
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(read(fd, buf, (size_t)st.st_size) == st.st_size,
		      "read %s", path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static uint32_t key_of(char *buf, uint32_t i)
{
	return (uint32_t)sprintf(buf, "fault-key-%u", i);
}

/* Value of key i: length 1..~9000 bytes, one in 50 about 70 KiB. */
static uint32_t val_of(char *buf, uint32_t i)
{
	uint32_t len = i % 50 == 0 ? 70000 + i % 7 : 1 + (i * 37) % 900;

	shf_test_pattern(buf, len, i);
	return len;
}

static char vbuf[80000];

/* A table of n keys, detached; its name in name. */
static void make_table(const char *tag, char *name, size_t size, uint32_t n)
{
	char key[32];
	uint32_t i;
	SHF *shf = shf_test_new(tag, name, size);

	for (i = 0; i < n; i++) {
		shf_make_hash(key, key_of(key, i));
		shf_assert_eq(shf_put_key_val(shf, vbuf, val_of(vbuf, i)),
			      SHF_RET_KEY_PUT);
	}
	shf_detach(shf);
}

/* Attaching name (existing only, or creating) fails with one of errs. */
static void attach_fails(const char *name, int create, const int *errs,
			 const char *what)
{
	SHF *shf;
	int i, ok = 0;

	errno = 0;
	shf = create ? shf_attach(shf_test_dir(), name, 0) :
		       shf_attach_existing(shf_test_dir(), name);
	if (shf)
		shf_detach(shf);
	ck_assert_msg(shf == NULL, "%s: %s attached", what,
		      create ? "shf_attach" : "shf_attach_existing");
	for (i = 0; errs[i]; i++)
		if (errno == errs[i])
			ok = 1;
	ck_assert_msg(ok, "%s: %s failed with errno %d (%s), expected %s", what,
		      create ? "shf_attach" : "shf_attach_existing", errno,
		      strerror(errno), strerror(errs[0]));
}

static const int e_badmsg[] = { EBADMSG, 0 };
static const int e_proto[] = { EPROTO, 0 };
static const int e_loop[] = { ELOOP, 0 };
static const int e_inval[] = { EINVAL, 0 };
static const int e_noent[] = { ENOENT, 0 };

/* ------------------------------------------------------ not a table */

START_TEST(test_zero_length)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];

	shf_test_name(name, sizeof(name), "zero");
	write_file(path_of(path, sizeof(path), name), "", 0);
	attach_fails(name, 0, e_badmsg, "zero-length file");
	attach_fails(name, 1, e_badmsg, "zero-length file");
	unlink(path);
}
END_TEST

START_TEST(test_random_bytes)
{
	static const size_t sizes[] = { 1, 100, 4096, 65536, 3 << 20 };
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	size_t i;
	char *buf = malloc(3 << 20);

	ck_assert_ptr_nonnull(buf);
	shf_test_name(name, sizeof(name), "random");
	path_of(path, sizeof(path), name);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		rnd_fill(buf, sizes[i]);
		write_file(path, buf, sizes[i]);
		attach_fails(name, 0, e_badmsg, "file of random bytes");
		attach_fails(name, 1, e_badmsg, "file of random bytes");
	}
	unlink(path);
	free(buf);
}
END_TEST

/* Ops that must not crash on a table of doubtful health. */
static void poke(SHF *shf, uint32_t n)
{
	char key[32];
	uint32_t i, r, problems;

	for (i = 0; i < n; i++) {
		shf_make_hash(key, key_of(key, i));
		r = shf_get_key_val_copy(shf);
		shf_assert_msg(r == SHF_RET_KEY_FOUND ||
				       r == SHF_RET_KEY_NONE ||
				       r == SHF_RET_ERROR,
			       "get gave %#x", r);
		(void)shf_get_key_val_addr(shf);
		(void)shf_get_uid_val_copy(shf, (uint32_t)rnd());
		(void)shf_get_uid_key_copy(shf, (uint32_t)(rnd() & 0xff00ffff));
		if (i % 3 == 0)
			(void)shf_put_key_val(shf, vbuf, val_of(vbuf, i + 1));
		if (i % 5 == 0)
			(void)shf_del_key_val(shf);
		if (i % 7 == 0)
			(void)shf_add_key_val(shf, 3);
		if (i % 11 == 0) {
			shf_upd_callback_copy("x", 1);
			(void)shf_upd_key_val(shf);
		}
		if (i % 13 == 0)
			(void)shf_del_uid_val(shf,
					      (uint32_t)rnd() & 0xff0003ff);
	}
	for (i = 0; i < n; i++) { /* new keys */
		shf_make_hash(key, (uint32_t)sprintf(key, "new-%u", i));
		(void)shf_put_key_val(shf, vbuf, val_of(vbuf, i));
		(void)shf_get_key_val_copy(shf);
	}
	problems = shf_check(shf, 0, NULL, NULL);
	(void)problems;
}

static void walk(SHF *shf)
{
	uint32_t win = 0, tab = 0, k;
	uint64_t n = 0;

	(void)shf_iterate(shf, shf_test_count_cb, &n);
	for (k = 0; k < 256; k++)
		shf_tab_copy_iterate(shf, &win, &tab);
}

/* A table cut after `cut` bytes: NULL + EBADMSG, or a handle that works. */
START_TEST(test_truncated)
{
	char name[SHF_TEST_NAME_MAX], cut_name[SHF_TEST_NAME_MAX];
	char path[SHF_TEST_PATH_MAX], cut_path[SHF_TEST_PATH_MAX];
	size_t len, cuts[8], c;
	char *buf;
	SHF *shf;

	make_table("full", name, sizeof(name), 3000);
	buf = read_file(path_of(path, sizeof(path), name), &len);
	unlink(path);
	cuts[0] = 100;
	cuts[1] = PAGE;
	cuts[2] = PAGE + 100;
	cuts[3] = 64 * 1024;
	cuts[4] = len / 4;
	cuts[5] = len / 2;
	cuts[6] = len - PAGE;
	cuts[7] = len - 1;
	shf_test_name(cut_name, sizeof(cut_name), "cut");
	path_of(cut_path, sizeof(cut_path), cut_name);
	for (c = 0; c < 8; c++) {
		write_file(cut_path, buf, cuts[c]);
		errno = 0;
		shf = shf_attach_existing(shf_test_dir(), cut_name);
		if (!shf) {
			ck_assert_msg(errno == EBADMSG,
				      "table cut at %zu of %zu bytes: errno %d "
				      "(%s)",
				      cuts[c], len, errno, strerror(errno));
			continue;
		}
		ck_assert_msg(cuts[c] > PAGE, "table cut at %zu bytes attached",
			      cuts[c]);
		poke(shf, 3000);
		walk(shf);
		shf_detach(shf);
	}
	ck_assert_int_eq(unlink(cut_path), 0);
	free(buf);
}
END_TEST

/* A real table with one field patched: refused with the right errno. */
static void patched(uint32_t off, uint32_t value, const int *errs,
		    const char *what)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint32_t old;
	int fd;

	make_table("patched", name, sizeof(name), 10);
	fd = open(path_of(path, sizeof(path), name), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &old, 4, off), 4);
	ck_assert_int_eq(pwrite(fd, &value, 4, off), 4);
	close(fd);
	attach_fails(name, 0, errs, what);
	attach_fails(name, 1, errs, what);
	/* the original comes back to life */
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(pwrite(fd, &old, 4, off), 4);
	close(fd);
	{
		SHF *shf = shf_attach_existing(shf_test_dir(), name);

		ck_assert_msg(shf != NULL, "restored table: %s",
			      strerror(errno));
		ck_assert_int_eq(shf_test_keys(shf), 10);
		shf_test_del(shf, name);
	}
}

START_TEST(test_layout_version)
{
	patched(LAYOUT_OFF, 1, e_proto, "layout version 1 (libshf 1.0)");
	patched(LAYOUT_OFF, 2, e_proto, "layout version 2 (libshf 1.1)");
	patched(LAYOUT_OFF, 3, e_proto,
		"layout version 3 (libshf 1.2 with robust shard mutexes)");
	patched(LAYOUT_OFF, 4, e_proto,
		"layout version 4 (libshf 1.2 with a UID table)");
	patched(LAYOUT_OFF, 5, e_proto,
		"layout version 5 (libshf 1.2 with glibc allocator mutexes)");
	patched(LAYOUT_OFF, 6, e_proto,
		"layout version 6 (libshf 1.2 with UIDs in records and slots "
		"naming records)");
	patched(LAYOUT_OFF, 7, e_proto,
		"layout version 7 (8 slots of 8 bytes a bucket, 24-bit tags)");
	patched(LAYOUT_OFF, 8, e_proto,
		"layout version 8 (12 slots of 5 bytes, 16-bit tags)");
	patched(LAYOUT_OFF, 9, e_proto,
		"layout version 9 (17-bit tags, keys hashed without a secret)");
	patched(LAYOUT_OFF, 11, e_proto, "layout version 11");
	patched(LAYOUT_OFF, 0, e_proto, "layout version 0");
	patched(LAYOUT_OFF, 0xffffffffu, e_proto, "layout version ~0");
	patched(SIG_OFF, 12345, e_proto, "size signature");
}
END_TEST

START_TEST(test_bad_magic)
{
	patched(0, 0x46485342u ^ 1u, e_badmsg, "magic, low word");
	patched(4, 0, e_badmsg, "magic, high word");
}
END_TEST

/* Bad header fields after a good magic and version. */
START_TEST(test_bad_header_fields)
{
	static const uint32_t offs[] = { 16, 24, 32, 36, 40, 44, 48, 56 };
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	size_t len, i, k;
	char *buf, *copy;
	SHF *shf;

	make_table("hdr", name, sizeof(name), 100);
	buf = read_file(path_of(path, sizeof(path), name), &len);
	copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (k = 0; k < 4; k++) {
			uint64_t v = k == 0 ? 0 :
				     k == 1 ? ~0ULL :
				     k == 2 ? (uint64_t)len * 4 :
					      rnd();

			memcpy(copy, buf, len);
			memcpy(copy + offs[i], &v, 8);
			write_file(path, copy, len);
			errno = 0;
			shf = shf_attach_existing(shf_test_dir(), name);
			if (!shf) {
				ck_assert_msg(
					errno == EBADMSG || errno == EPROTO,
					"header word at %u = %#llx: errno "
					"%d (%s)",
					offs[i], (unsigned long long)v, errno,
					strerror(errno));
				continue;
			}
			poke(shf, 100);
			walk(shf);
			shf_detach(shf);
		}
	}
	unlink(path);
	free(copy);
	free(buf);
}
END_TEST

/* ------------------------------------------------ not a regular file */

START_TEST(test_directory)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	const int errs[] = { EISDIR, EBADMSG, 0 };
	struct stat st;

	shf_test_name(name, sizeof(name), "dir");
	ck_assert_int_eq(mkdir(path_of(path, sizeof(path), name), 0700), 0);
	attach_fails(name, 0, errs, "a directory");
	attach_fails(name, 1, errs, "a directory");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

START_TEST(test_symlink_to_table)
{
	char name[SHF_TEST_NAME_MAX], link_name[SHF_TEST_NAME_MAX];
	char path[SHF_TEST_PATH_MAX], link_path[SHF_TEST_PATH_MAX];
	struct stat before, after;
	SHF *shf;

	make_table("target", name, sizeof(name), 50);
	ck_assert_int_eq(stat(path_of(path, sizeof(path), name), &before), 0);
	shf_test_name(link_name, sizeof(link_name), "link");
	ck_assert_int_eq(
		symlink(path, path_of(link_path, sizeof(link_path), link_name)),
		0);
	attach_fails(link_name, 0, e_loop, "a symlink to a table");
	attach_fails(link_name, 1, e_loop, "a symlink to a table");
	ck_assert_int_eq(lstat(link_path, &after), 0);
	ck_assert(S_ISLNK(after.st_mode));
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_int_eq(after.st_size, before.st_size);
	ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	unlink(link_path);
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	ck_assert_int_eq(shf_test_keys(shf), 50);
	shf_test_del(shf, name);
}
END_TEST

/* Creating over a symlink never writes through it, dangling or not. */
START_TEST(test_symlink_no_write_through)
{
	char name[SHF_TEST_NAME_MAX], target[SHF_TEST_NAME_MAX];
	char path[SHF_TEST_PATH_MAX], tpath[SHF_TEST_PATH_MAX];
	struct stat st;
	size_t len;
	char *buf;

	shf_test_name(name, sizeof(name), "symlink");
	shf_test_name(target, sizeof(target), "symlink-target");
	snprintf(tpath, sizeof(tpath), "%s/%s.txt", shf_test_dir(), target);
	path_of(path, sizeof(path), name);
	ck_assert_int_eq(symlink(tpath, path), 0);

	/* dangling: the target must not be created */
	attach_fails(name, 1, e_loop, "a dangling symlink");
	ck_assert_msg(lstat(tpath, &st) != 0 && errno == ENOENT,
		      "shf_attach created the target of a dangling symlink");

	/* to a plain file: not a byte changes */
	write_file(tpath, "precious", 8);
	attach_fails(name, 1, e_loop, "a symlink to a file");
	attach_fails(name, 0, e_loop, "a symlink to a file");
	buf = read_file(tpath, &len);
	ck_assert_int_eq(len, 8);
	ck_assert_mem_eq(buf, "precious", 8);
	free(buf);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	unlink(path);
	unlink(tpath);
}
END_TEST

/* A FIFO: an error, at once (opening a FIFO can block). */
START_TEST(test_fifo)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	int create, status;

	shf_test_name(name, sizeof(name), "fifo");
	ck_assert_int_eq(mkfifo(path_of(path, sizeof(path), name), 0600), 0);
	for (create = 0; create < 2; create++) {
		double t0 = shf_test_now();
		pid_t pid;

		fflush(NULL);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			SHF *shf;

			alarm(30);
			errno = 0;
			shf = create ?
				      shf_attach(shf_test_dir(), name, 0) :
				      shf_attach_existing(shf_test_dir(), name);
			_exit(shf ? 1 : errno == 0 ? 2 : 0);
		}
		status = shf_test_waitpid(pid, 5);
		ck_assert_msg(status != -1, "attaching a FIFO hangs");
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "attaching a FIFO: status %#x", status);
		ck_assert_msg(shf_test_now() - t0 < 2.0 * shf_test_multiplier(),
			      "attaching a FIFO took %.1f s",
			      shf_test_now() - t0);
	}
	/* it fails the same in this process too, with errno */
	attach_fails(name, 0, (const int[]){ EBADMSG, ENXIO, EINVAL, 0 },
		     "a FIFO");
	unlink(path);
}
END_TEST

/* ------------------------------------------------ scrambled bodies */

enum scramble {
	SCR_DATA_RANDOM, /* every byte of the data area random */
	SCR_DATA_FLIPS, /* a few thousand random bytes in the data area */
	SCR_DATA_OFFSETS, /* words replaced by plausible in-file offsets */
	SCR_SHARDS_LISTS, /* shard descriptors: everything but the locks */
	SCR_MAX,
	SCR_SHARDS_ALL = SCR_MAX, /* shard descriptors, locks included */
	SCR_MAX_LOCKS
};
static const char *const scramble_names[SCR_MAX_LOCKS] = {
	"data area random",
	"data area byte flips",
	"plausible offsets",
	"shard descriptors (not the locks)",
	"shard descriptors and locks",
};

/* Shard descriptors start at the header's shards_off (page aligned); each
 * begins with its 40-byte mutex. */
#define SHARD_MUTEX 40

static size_t shards_off(const unsigned char *m)
{
	uint64_t off;

	memcpy(&off, m + 16, 8); /* after magic, layout+sig */
	return (size_t)off;
}

static size_t shard_size_guess(const unsigned char *m, size_t len)
{
	uint64_t data_start;
	size_t so = shards_off(m);

	memcpy(&data_start, m + 24, 8); /* after shards_off */
	if (so < PAGE || so % PAGE || data_start <= so || data_start > len)
		return 0;
	return (size_t)(data_start - so) / 256 / 64 * 64;
}

/* Map a table's file for writing: its length and its shards' size too. */
static unsigned char *map_table(const char *path, size_t *len,
				size_t *shard_sz)
{
	unsigned char *m;
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(m != MAP_FAILED);
	close(fd);
	*shard_sz = shard_size_guess(m, *len);
	ck_assert_msg(*shard_sz >= 128, "cannot find the shard size");
	return m;
}

static void scramble(const char *path, enum scramble how)
{
	size_t len, i, data, shard_sz;
	unsigned char *m = map_table(path, &len, &shard_sz);

	data = shards_off(m) + 256 * shard_sz;
	data = (data + PAGE - 1) / PAGE * PAGE;
	switch (how) {
	case SCR_DATA_RANDOM:
		rnd_fill(m + data, len - data);
		break;
	case SCR_DATA_FLIPS:
		for (i = 0; i < 5000; i++)
			m[data + rnd() % (len - data)] ^=
				(unsigned char)(1 + rnd() % 255);
		break;
	case SCR_DATA_OFFSETS:
		for (i = 0; i < 20000; i++) {
			uint64_t v,
				off = data + (rnd() % ((len - data) / 8)) * 8;

			switch (rnd() % 4) {
			case 0: /* an offset inside the file */
				v = rnd() % len & ~7ULL;
				break;
			case 1: /* a slot: tag << 40 | offset / 8 */
				v = (rnd() << 40) | ((rnd() % len) >> 3);
				break;
			case 2: /* a length */
				v = rnd() % 100000;
				break;
			default:
				v = rnd();
				break;
			}
			memcpy(m + off, &v, 8);
		}
		break;
	case SCR_SHARDS_LISTS:
		for (i = 0; i < 256; i++)
			rnd_fill(m + shards_off(m) + i * shard_sz + SHARD_MUTEX,
				 shard_sz - SHARD_MUTEX);
		break;
	case SCR_SHARDS_ALL:
		rnd_fill(m + shards_off(m), 256 * shard_sz);
		break;
	default:
		break;
	}
	munmap(m, len);
}

static void check_cb(const char *problem, void *arg)
{
	(void)problem;
	++*(uint32_t *)arg;
}

static void print_cb(const char *problem, void *arg)
{
	(void)arg;
	fprintf(stderr, "shf_check: %s\n", problem);
}

START_TEST(test_scrambled)
{
	enum scramble how = (enum scramble)_i;
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint32_t problems, reported = 0, after;
	SHF *shf;

	rnd_state ^= (uint64_t)_i * 0x9e3779b97f4a7c15ULL;
	make_table("scrambled", name, sizeof(name), 4000);
	scramble(path_of(path, sizeof(path), name), how);
	errno = 0;
	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_msg(shf != NULL, "%s: header intact, yet: %s",
		      scramble_names[how], strerror(errno));
	problems = shf_check(shf, 0, check_cb, &reported);
	ck_assert_msg(problems != UINT32_MAX || errno != 0,
		      "shf_check failed without errno");
	if (problems != UINT32_MAX)
		ck_assert_int_eq(problems, reported);
	if (how == SCR_DATA_RANDOM)
		ck_assert_msg(problems > 0, "%s: shf_check found nothing wrong",
			      scramble_names[how]);
	walk(shf);
	poke(shf, 4000);
	walk(shf);
	/* repair, then the table must be usable again */
	(void)shf_check(shf, SHF_CHECK_REPAIR, NULL, NULL);
	poke(shf, 1000);
	walk(shf);
	after = shf_check(shf, 0, getenv("SHF_FAULT_VERBOSE") ? print_cb : NULL,
			  NULL);
	printf("scrambled (%s): shf_check found %u problem(s); after repair "
	       "and more writes: %u\n",
	       scramble_names[how], problems, after);
	fflush(stdout);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * Allocation pointers that are in the file but not aligned: every shard's
 * chunk cursor one byte on, the header's bump pointer three.  Found by
 * fuzz_attach: records were handed out (and freed) at odd addresses.  Now
 * the damaged chunks are abandoned and the bump pointer rounded up: every
 * put is stored where a get finds it, and the table checks sound.
 */
#define HDR_FILE_USED 56 /* magic, layout, sig, shards_off, data_start,
			    nshards, fixed_*, file_size: then file_used */
#define SHARD_CHUNK_CUR 56 /* lock 8, seq, pad, dir_word, uid_dir,
			      uid_dir_cap, uid_next, uid_free, pad, nkeys */

START_TEST(test_misaligned_alloc)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], key[32];
	size_t len, shard_sz, i, moved = 0;
	uint64_t cur, end, used;
	unsigned char *m;
	uint32_t k, problems;
	SHF *shf;

	make_table("misaligned", name, sizeof(name), 3000);
	m = map_table(path_of(path, sizeof(path), name), &len, &shard_sz);
	for (i = 0; i < 256; i++) {
		unsigned char *d = m + shards_off(m) + i * shard_sz;

		memcpy(&cur, d + SHARD_CHUNK_CUR, 8);
		memcpy(&end, d + SHARD_CHUNK_CUR + 8, 8);
		if (!cur || cur + 64 > end || end > len)
			continue;
		cur++;
		memcpy(d + SHARD_CHUNK_CUR, &cur, 8);
		moved++;
	}
	ck_assert_msg(moved > 200, "only %zu shards have a chunk", moved);
	memcpy(&used, m + HDR_FILE_USED, 8);
	ck_assert_msg(used > 0 && used <= len && used % PAGE == 0,
		      "file_used %llu is not where this test expects it",
		      (unsigned long long)used);
	used += 3;
	memcpy(m + HDR_FILE_USED, &used, 8);
	munmap(m, len);

	shf = shf_attach_existing(shf_test_dir(), name);
	ck_assert_ptr_nonnull(shf);
	/* new keys in every shard, more than the chunks' tails hold */
	for (k = 0; k < 20000; k++) {
		shf_make_hash(key, (uint32_t)sprintf(key, "new-%u", k));
		shf_assert_eq(shf_put_key_val(shf, vbuf, val_of(vbuf, k)),
			      SHF_RET_KEY_PUT);
	}
	for (k = 0; k < 20000; k++) {
		shf_make_hash(key, (uint32_t)sprintf(key, "new-%u", k));
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
		ck_assert_uint_eq(shf_val_len, val_of(vbuf, k));
		ck_assert_mem_eq(shf_val, vbuf, shf_val_len);
		if (k % 2)
			shf_assert_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	}
	for (k = 0; k < 3000; k++) {
		shf_make_hash(key, key_of(key, k));
		shf_assert_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	}
	problems = shf_check(shf, 0, print_cb, NULL);
	ck_assert_uint_eq(problems, 0);
	shf_detach(shf);
	unlink(path);
}
END_TEST

/*
 * A lock word that names a thread that no longer exists: what a table
 * copied while a writer held a lock carries, or a table on a persistent
 * file system after a reboot.  No kernel will ever mark that owner dead, so
 * a library that only waits blocks forever.  A put must still finish in
 * 2 s.  (SHF_TEST_STALE_LOCKS=0 skips it.)
 */
static int stale_locks_wanted(void)
{
	const char *e = getenv("SHF_TEST_STALE_LOCKS");

	return !e || *e != '0'; /* on: the library detects stale owners */
}

/* A thread id that does not exist now. */
static uint32_t dead_tid(void)
{
	char p[64];
	uint32_t tid;

	for (tid = 4000000; tid > 1000; tid -= 977) {
		snprintf(p, sizeof(p), "/proc/%u", tid);
		if (access(p, F_OK) != 0 && kill((pid_t)tid, 0) != 0 &&
		    errno == ESRCH)
			return tid;
	}
	return 0;
}

/* Put a key in each shard in a child; 0 if it finished within 2 s. */
static int put_everywhere_in_time(const char *name)
{
	double t0 = shf_test_now();
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		SHF *shf = shf_attach_existing(shf_test_dir(), name);
		char key[32];
		uint32_t i;

		if (!shf)
			_exit(2);
		for (i = 0; i < 4096; i++) { /* every shard, very likely */
			shf_make_hash(key, (uint32_t)sprintf(key, "any-%u", i));
			(void)shf_put_key_val(shf, "v", 1);
		}
		shf_detach(shf);
		_exit(0);
	}
	status = shf_test_waitpid(pid, 10);
	if (status == -1)
		return -1;
	return shf_test_now() - t0 < 2.0 * shf_test_multiplier() ? 0 : 1;
}

START_TEST(test_stale_lock_owner)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	uint32_t tid = dead_tid();
	int fd, rc;

	ck_assert_uint_ne(tid, 0);
	make_table("stale", name, sizeof(name), 100);
	fd = open(path_of(path, sizeof(path), name), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	/* the first word of shard 0's mutex: the owner's thread id */
	{
		uint64_t so = 0;

		ck_assert_int_eq(pread(fd, &so, 8, 16), 8);
		ck_assert_uint_eq(so % PAGE, 0);
		ck_assert_int_eq(pwrite(fd, &tid, 4, (off_t)so), 4);
	}
	close(fd);
	rc = put_everywhere_in_time(name);
	unlink(path);
	ck_assert_msg(rc != -1,
		      "a lock owned by dead thread %u blocks a put "
		      "forever",
		      tid);
	ck_assert_msg(rc == 0,
		      "a lock owned by dead thread %u blocked a put "
		      "for more than 2 s",
		      tid);
}
END_TEST

/* ------------------------------------------------ names and paths */

START_TEST(test_bad_names)
{
	char long_name[301];
	const char *bad[] = { "", "/", "a/b", "..", ".", "../x", long_name };
	size_t i;

	memset(long_name, 'n', 300);
	long_name[300] = 0;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		attach_fails(bad[i], 0, e_inval, bad[i]);
		attach_fails(bad[i], 1, e_inval, bad[i]);
	}
	attach_fails(NULL, 0, e_inval, "NULL name");
	attach_fails(NULL, 1, e_inval, "NULL name");
	errno = 0;
	ck_assert_ptr_null(shf_attach(NULL, "x", 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(NULL, "x"));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(shf_attach("", "x", 0));
	ck_assert_int_eq(errno, EINVAL);
	/* nothing was created by any of it */
	ck_assert_int_eq(shf_test_leftovers(0), 0);
}
END_TEST

START_TEST(test_missing_dir)
{
	char dir[SHF_TEST_PATH_MAX], name[SHF_TEST_NAME_MAX];
	char file[SHF_TEST_PATH_MAX];

	shf_test_name(name, sizeof(name), "nodir");
	snprintf(dir, sizeof(dir), "%s/%s.d/sub", shf_test_dir(), name);
	errno = 0;
	ck_assert_ptr_null(shf_attach(dir, "t", 0));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(shf_attach_existing(dir, "t"));
	ck_assert_int_eq(errno, ENOENT);
	/* a path that is a file */
	path_of(file, sizeof(file), name);
	write_file(file, "x", 1);
	errno = 0;
	ck_assert_ptr_null(shf_attach(file, "t", 0));
	ck_assert_int_eq(errno, ENOTDIR);
	unlink(file);
	/* an absent table is not created by shf_attach_existing */
	attach_fails(name, 0, e_noent, "absent table");
	ck_assert(!shf_test_exists(name));
}
END_TEST

START_TEST(test_mode_0600)
{
	static const mode_t masks[] = { 0, 022, 077, 0277, 0777 };
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX], tag[16];
	struct stat st;
	size_t i;
	SHF *shf;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		mode_t old = umask(masks[i]);

		snprintf(tag, sizeof(tag), "mode%zu", i);
		shf = shf_test_new(tag, name, sizeof(name));
		umask(old);
		ck_assert_int_eq(stat(path_of(path, sizeof(path), name), &st),
				 0);
		ck_assert_msg((st.st_mode & 07777) == 0600,
			      "umask %03o: mode %04o", masks[i],
			      st.st_mode & 07777);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_int_eq(st.st_uid, geteuid());
		shf_test_del(shf, name);
	}
}
END_TEST

/* A group-shared cache: shf_set_file_mode() widens, the umask does not
 * narrow, bad bits are refused. */
START_TEST(test_file_mode_group)
{
	char name[SHF_TEST_NAME_MAX], path[SHF_TEST_PATH_MAX];
	struct stat st;
	mode_t old;
	SHF *shf;

	errno = 0;
	shf_set_file_mode(04755);
	ck_assert_int_eq(errno, EINVAL);
	shf_set_file_mode(0640);
	old = umask(077);
	shf = shf_test_new("gmode", name, sizeof(name));
	umask(old);
	ck_assert_int_eq(stat(path_of(path, sizeof(path), name), &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0640, "mode %04o",
		      st.st_mode & 07777);
	shf_test_del(shf, name);
	shf_set_file_mode(0040); /* owner rw always added */
	shf = shf_test_new("gmode2", name, sizeof(name));
	ck_assert_int_eq(stat(path_of(path, sizeof(path), name), &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	shf_test_del(shf, name);
	shf_set_file_mode(0600);
}
END_TEST

static Suite *fault_suite(void)
{
	Suite *s = suite_create("fault");
	TCase *tc;

	shf_test_add_tcase(s, "files", 30, test_zero_length, test_random_bytes,
			   test_truncated, test_layout_version, test_bad_magic,
			   test_bad_header_fields, test_directory,
			   test_symlink_to_table, test_symlink_no_write_through,
			   test_fifo);

	tc = shf_test_tcase(s, "scrambled", 60);
	tcase_add_loop_test(tc, test_scrambled, 0, SCR_MAX);
	tcase_add_test(tc, test_misaligned_alloc);

	if (stale_locks_wanted()) {
		tc = shf_test_tcase(s, "stale-locks", 60);
		tcase_add_test(tc, test_stale_lock_owner);
		tcase_add_loop_test(tc, test_scrambled, SCR_SHARDS_ALL,
				    SCR_MAX_LOCKS);
	}

	shf_test_add_tcase(s, "names", 30, test_bad_names, test_missing_dir,
			   test_mode_0600, test_file_mode_group);
	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(fault_suite());
}
