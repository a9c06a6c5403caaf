/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-test.h - helpers shared by the Check test programs of libshf.
 *
 * Tables are named "shf-test-<pid>-<tag>" (pid of the test program's
 * runner) and live in $SHF_TEST_DIR, /dev/shm by default, so that
 * "make -j check" never collides and tests/leaks.sh can spot leftovers.
 *
 * Multi-process tests fork children with shf_test_spawn(); the children
 * wait at a start line (a pipe the parent closes in shf_test_go()), run
 * their function and _exit() with its result: children never ck_assert.
 * shf_test_wait() reaps them, SIGKILLs stragglers after a timeout and
 * returns how many failed.
 */
#ifndef SHF_TEST_H
#define SHF_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <check.h>

#include "shf.h"

/*
 * Assertions for loops: Check's ck_assert*() records a checkpoint (a write
 * to the runner) on every success, which costs more than the library call
 * under test; these only call Check when they fail.
 */
#define shf_assert_msg(expr, ...)                  \
	do {                                       \
		if (__builtin_expect(!(expr), 0))  \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)
#define shf_assert(expr) shf_assert_msg(expr, "Assertion '%s' failed", #expr)
#define shf_assert_eq(a, b)                                                   \
	do {                                                                  \
		uintmax_t shf_a_ = (uintmax_t)(a), shf_b_ = (uintmax_t)(b);   \
		shf_assert_msg(shf_a_ == shf_b_,                              \
			       "Assertion '%s == %s' failed: %ju != %ju", #a, \
			       #b, shf_a_, shf_b_);                           \
	} while (0)

#define SHF_TEST_KIDS_MAX 16
#define SHF_TEST_NAME_MAX 128
#define SHF_TEST_PATH_MAX 512

/* Call first in main(): records the runner's pid, checks the directory. */
void shf_test_init(void);
/* Run the suite in CK_ENV mode; EXIT_SUCCESS or EXIT_FAILURE. */
int shf_test_main(Suite *s);

/*
 * A test case named name, added to s, with a timeout of timeout seconds
 * (Check multiplies it by CK_TIMEOUT_MULTIPLIER).  For loop tests and
 * fixtures; shf_test_add_tcase() makes one of plain tests.
 */
TCase *shf_test_tcase(Suite *s, const char *name, double timeout);
/* Add the tests (START_TEST names, 1 to 16 of them) to tc, in order. */
#define shf_test_add_tests(tc, ...)                    \
	do {                                           \
		TCase *shf_tc_ = (tc);                 \
		SHF_T_ADD_EACH_(shf_tc_, __VA_ARGS__); \
	} while (0)
/* shf_test_tcase() and shf_test_add_tests(). */
#define shf_test_add_tcase(s, name, timeout, ...) \
	shf_test_add_tests(shf_test_tcase(s, name, timeout), __VA_ARGS__)

/*
 * One tcase_add_test() per argument: Check's own macro, which takes a
 * TTest * since Check 0.13 and names the test by its argument before.
 */
#define SHF_T_ADD_EACH_(c, ...) \
	SHF_T_CAT_(SHF_T_ADD, SHF_T_NARGS_(__VA_ARGS__))(c, __VA_ARGS__)
#define SHF_T_CAT_(a, b) SHF_T_CAT2_(a, b)
#define SHF_T_CAT2_(a, b) a##b
#define SHF_T_NARGS_(...)                                                     \
	SHF_T_NTH_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, \
		   3, 2, 1, 0)
#define SHF_T_NTH_(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, N, ...) N
/* clang-format off */
#define SHF_T_ADD1(c, t) tcase_add_test(c, t)
#define SHF_T_ADD2(c, t, ...) tcase_add_test(c, t); SHF_T_ADD1(c, __VA_ARGS__)
#define SHF_T_ADD3(c, t, ...) tcase_add_test(c, t); SHF_T_ADD2(c, __VA_ARGS__)
#define SHF_T_ADD4(c, t, ...) tcase_add_test(c, t); SHF_T_ADD3(c, __VA_ARGS__)
#define SHF_T_ADD5(c, t, ...) tcase_add_test(c, t); SHF_T_ADD4(c, __VA_ARGS__)
#define SHF_T_ADD6(c, t, ...) tcase_add_test(c, t); SHF_T_ADD5(c, __VA_ARGS__)
#define SHF_T_ADD7(c, t, ...) tcase_add_test(c, t); SHF_T_ADD6(c, __VA_ARGS__)
#define SHF_T_ADD8(c, t, ...) tcase_add_test(c, t); SHF_T_ADD7(c, __VA_ARGS__)
#define SHF_T_ADD9(c, t, ...) tcase_add_test(c, t); SHF_T_ADD8(c, __VA_ARGS__)
#define SHF_T_ADD10(c, t, ...) tcase_add_test(c, t); SHF_T_ADD9(c, __VA_ARGS__)
#define SHF_T_ADD11(c, t, ...) tcase_add_test(c, t); SHF_T_ADD10(c, __VA_ARGS__)
#define SHF_T_ADD12(c, t, ...) tcase_add_test(c, t); SHF_T_ADD11(c, __VA_ARGS__)
#define SHF_T_ADD13(c, t, ...) tcase_add_test(c, t); SHF_T_ADD12(c, __VA_ARGS__)
#define SHF_T_ADD14(c, t, ...) tcase_add_test(c, t); SHF_T_ADD13(c, __VA_ARGS__)
#define SHF_T_ADD15(c, t, ...) tcase_add_test(c, t); SHF_T_ADD14(c, __VA_ARGS__)
#define SHF_T_ADD16(c, t, ...) tcase_add_test(c, t); SHF_T_ADD15(c, __VA_ARGS__)
/* clang-format on */

/* Directory of the test tables ($SHF_TEST_DIR or /dev/shm). */
const char *shf_test_dir(void);
/* "shf-test-<pid>-<tag>" into buf. */
char *shf_test_name(char *buf, size_t size, const char *tag);
/* "<dir>/<name>.shf" into buf. */
char *shf_test_file(char *buf, size_t size, const char *name);
/* 1 if the table's file exists. */
int shf_test_exists(const char *name);
/* len bytes at off of the table's file into buf (ck_asserts). */
void shf_test_pread(const char *name, uint64_t off, void *buf, size_t len);
/* Name a table by tag, make sure it is absent and attach (ck_asserts). */
SHF *shf_test_new(const char *tag, char *name, size_t size);
/* Declare name and shf, a new table by tag (shf_test_new()). */
#define SHF_TEST_NEW(tag)             \
	char name[SHF_TEST_NAME_MAX]; \
	SHF *shf = shf_test_new(tag, name, sizeof(name))
/* shf_del() it and check the text is not NULL and the file is gone. */
void shf_test_del(SHF *shf, const char *name);
/* Files of this runner left in the directory; removes them if asked. */
int shf_test_leftovers(int remove_them);

/* CK_TIMEOUT_MULTIPLIER (1 if unset), for the tests' own deadlines. */
double shf_test_multiplier(void);
/* Monotonic seconds. */
double shf_test_now(void);
/* Sleep for ms milliseconds. */
void shf_test_msleep(unsigned ms);

/* Shared anonymous memory that forked children see (zeroed). */
void *shf_test_shared(size_t size);
void shf_test_unshared(void *p, size_t size);
/* Counters and flags in that memory (sequentially consistent). */
void shf_test_add_u32(uint32_t *p, uint32_t v);
uint32_t shf_test_load_u32(uint32_t *p);
/* Wait until *p >= want: 0, or -1 after timeout_s (times the multiplier). */
int shf_test_wait_u32(uint32_t *p, uint32_t want, double timeout_s);
/* In a child: shf_init(), then attach the existing table name (or NULL). */
SHF *shf_test_attach_existing(const char *name);

/*
 * Jobs of the multi-process tests: a table, and memory that the children
 * share with the parent (MAP_SHARED, zeroed, mapped before they fork).
 * A program that uses jobs defines its struct shared, what its children
 * share; these helpers never look inside it.
 */
struct shared;
struct shf_test_job {
	char name[SHF_TEST_NAME_MAX]; /* the table's */
	struct shared *sh;
	size_t sh_size;
	uint32_t n; /* keys, or operations, per child */
	uint32_t kids; /* children, or a mode */
	SHF *inherited; /* a handle the children inherit */
};
/*
 * A new job (static storage: one at a time) for tag's table, attached into
 * *shf (shf_test_new()); with shf NULL, only named and any old file
 * removed, for children that create it.  In a program that defines struct
 * shared: shf_test_job_new(tag, &shf, n, kids).
 */
struct shf_test_job *shf_test_job_alloc(const char *tag, SHF **shf,
					size_t sh_size, uint32_t n,
					uint32_t kids);
#define shf_test_job_new(tag, shf, n, kids) \
	shf_test_job_alloc(tag, shf, sizeof(struct shared), n, kids)
/* The table is sound (shf_test_check_sound()) and deleted; memory unmapped. */
void shf_test_job_end(struct shf_test_job *j, SHF *shf);

/* Children. */
typedef int (*shf_test_kid_fn)(int idx, void *arg);
struct shf_test_kids {
	int n;
	int go_fd; /* write end of the start line */
	pid_t pid[SHF_TEST_KIDS_MAX];
	int status[SHF_TEST_KIDS_MAX]; /* waitpid() status, -1 if none */
};
/*
 * Fork n children that wait for shf_test_go(), then _exit() with fn()'s
 * result (0 success; 1 to 125 are kept, to tell which check failed).
 */
void shf_test_spawn(struct shf_test_kids *k, int n, shf_test_kid_fn fn,
		    void *arg);
/* Let them run. */
void shf_test_go(struct shf_test_kids *k);
/*
 * Reap them all within timeout_s seconds (times the multiplier); those
 * still running are SIGKILLed.  Returns how many did not exit with 0.
 */
int shf_test_wait(struct shf_test_kids *k, double timeout_s);
/* spawn + go + wait. */
int shf_test_run(int n, shf_test_kid_fn fn, void *arg, double timeout_s);
/* waitpid() one process within timeout_s; its status, or -1 (killed). */
int shf_test_waitpid(pid_t pid, double timeout_s);
/*
 * Does the kernel wipe a page in a child (MADV_WIPEONFORK, Linux 4.14),
 * which tells the library a child of _Fork() from its parent?  If not,
 * says that the test that asks is skipped.
 */
int shf_test_wipeonfork(void);
/* A child made by _Fork() (or a raw clone()): no atfork handler runs. */
pid_t shf_test_fork_no_atfork(void);
/*
 * Run fn(arg) in a process of a new time namespace whose boot clock is
 * 100000 s ahead of this one's (time_namespaces(7)), as a container or a
 * restored checkpoint may be: its /proc start times differ from those
 * seen here.  The pid to reap with shf_test_waitpid() (its exit status is
 * fn's), or -1 where this kernel or user cannot make one (a note on
 * stderr; the caller skips).
 */
pid_t shf_test_timens_run(int (*fn)(void *), void *arg);
/*
 * The same, but fn runs in the process that made the namespace: it stays
 * in this one (only its children would enter the new one), though
 * /proc/self/timens_offsets shows it the new one's offsets.
 */
pid_t shf_test_timens_unshare_run(int (*fn)(void *), void *arg);

/* Keys and values derived from numbers, checkable by any process. */
/* "key-<i>" into buf (at least 32 bytes); returns its length. */
uint32_t shf_test_key(char *buf, uint64_t i);
/* shf_make_hash() of shf_test_key(i). */
void shf_test_hash(uint64_t i);
/*
 * A value for key i written by writer w: "<i>:<w>:" and filler up to a
 * length of 8 .. 71 bytes that depends on i and w.  buf: 80 bytes.
 */
uint32_t shf_test_val(char *buf, uint64_t i, uint32_t w);
/* 1 if val,len is shf_test_val(i, w) for some w < writers (*w_out). */
int shf_test_val_ok(const char *val, uint32_t len, uint64_t i, uint32_t writers,
		    uint32_t *w_out);

/*
 * The whole of f, from its start, in a malloc()ed string (ck_asserts);
 * its length in *len unless len is NULL.
 */
char *shf_test_slurp(FILE *f, size_t *len);

/* Fill buf with a pattern that depends on seed. */
void shf_test_pattern(char *buf, size_t len, uint32_t seed);

/*
 * Put shf_test_val(i, w) under shf_test_key(i), a new key, for from <= i <
 * to (fails the test unless each is SHF_RET_KEY_PUT); uids (or NULL) gets
 * the UID of key i at uids[i - from].
 */
void shf_test_fill(SHF *shf, uint64_t from, uint64_t to, uint32_t w,
		   uint32_t *uids);
/* Every key from <= i < to holds shf_test_val(i, w) for some w < writers. */
void shf_test_check_keys(SHF *shf, uint64_t from, uint64_t to,
			 uint32_t writers);

/* shf_iterate() callback: counts the pairs in *(uint64_t *)arg. */
int shf_test_count_cb(const char *key, uint32_t key_len, const char *val,
		      uint32_t val_len, uint32_t uid, void *arg);

/* shf_get_stats() into *st (zeroed first); fails the test on error. */
void shf_test_stats(SHF *shf, struct shf_stats *st);
/* Keys of a table by shf_get_stats(), or UINT64_MAX on error. */
uint64_t shf_test_keys(SHF *shf);
/* Fail the test unless shf_check() finds no problem (they go to stderr). */
void shf_test_check_sound(SHF *shf);

#endif /* SHF_TEST_H */
