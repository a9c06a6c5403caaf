/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-test.c - helpers shared by the Check test programs of libshf.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf-test.h"

static pid_t runner_pid;

void shf_test_init(void)
{
	struct stat st;

	runner_pid = getpid();
	if (stat(shf_test_dir(), &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: no such directory; skipped\n",
			shf_test_dir());
		exit(77);
	}
	shf_init();
}

int shf_test_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed, left;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	/* A passing test must remove its table; a failing one may not. */
	left = shf_test_leftovers(1);
	if (left > 0) {
		fprintf(stderr, "%d test table file(s) left in %s (removed)\n",
			left, shf_test_dir());
		if (failed == 0)
			failed = 1;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

TCase *shf_test_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

const char *shf_test_dir(void)
{
	const char *d = getenv("SHF_TEST_DIR");

	return d && *d ? d : "/dev/shm";
}

char *shf_test_name(char *buf, size_t size, const char *tag)
{
	if (runner_pid == 0)
		runner_pid = getpid();
	snprintf(buf, size, "shf-test-%ld-%s", (long)runner_pid, tag);
	return buf;
}

char *shf_test_file(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s.shf", shf_test_dir(), name);
	return buf;
}

int shf_test_exists(const char *name)
{
	char file[SHF_TEST_PATH_MAX];

	return access(shf_test_file(file, sizeof(file), name), F_OK) == 0;
}

void shf_test_pread(const char *name, uint64_t off, void *buf, size_t len)
{
	char file[SHF_TEST_PATH_MAX];
	int fd = open(shf_test_file(file, sizeof(file), name),
		      O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "%s: %s", file, strerror(errno));
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

SHF *shf_test_new(const char *tag, char *name, size_t size)
{
	char file[SHF_TEST_PATH_MAX];
	SHF *shf;

	shf_test_name(name, size, tag);
	/* A table left by an earlier run of a dead runner with our pid. */
	unlink(shf_test_file(file, sizeof(file), name));
	errno = 0;
	shf = shf_attach(shf_test_dir(), name, 0);
	ck_assert_msg(shf != NULL, "shf_attach(%s, %s): %s", shf_test_dir(),
		      name, strerror(errno));
	ck_assert_msg(shf_test_exists(name), "no file %s after shf_attach",
		      file);
	return shf;
}

/* Files in the directory whose names start with "<name>.". */
static int files_of(const char *name)
{
	char prefix[SHF_TEST_NAME_MAX + 2];
	struct dirent *de;
	size_t plen;
	DIR *dir;
	int n = 0;

	/* The table, and the hidden temporary files of its creation. */
	snprintf(prefix, sizeof(prefix), "%s.", name);
	plen = strlen(prefix);
	dir = opendir(shf_test_dir());
	if (!dir)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (strncmp(de->d_name, prefix, plen) == 0 ||
		    (de->d_name[0] == '.' &&
		     strncmp(de->d_name + 1, prefix, plen) == 0))
			n++;
	closedir(dir);
	return n;
}

void shf_test_del(SHF *shf, const char *name)
{
	char *text;

	errno = 0;
	text = shf_del(shf);
	ck_assert_msg(text != NULL, "shf_del(%s) gave NULL: %s", name,
		      strerror(errno));
	free(text);
	ck_assert_msg(!shf_test_exists(name), "%s still exists after shf_del",
		      name);
	ck_assert_msg(files_of(name) == 0,
		      "files named %s.* left after shf_del", name);
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

int shf_test_leftovers(int remove_them)
{
	char prefix[SHF_TEST_NAME_MAX];
	char file[SHF_TEST_PATH_MAX];
	struct dirent *de;
	size_t plen;
	DIR *dir;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "shf-test-%ld-", (long)runner_pid);
	plen = strlen(prefix);
	dir = opendir(shf_test_dir());
	if (!dir)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		/* Tables, and hidden temporary files of creation. */
		if (strncmp(de->d_name, prefix, plen) != 0 &&
		    (de->d_name[0] != '.' ||
		     strncmp(de->d_name + 1, prefix, plen) != 0))
			continue;
		n++;
		fprintf(stderr, "left behind: %s/%s\n", shf_test_dir(),
			de->d_name);
		if (remove_them) {
			snprintf(file, sizeof(file), "%s/%s", shf_test_dir(),
				 de->d_name);
			/* a table, or a test's own folder with its tables */
			if (unlink(file) < 0)
				nftw(file, remove_one, 8, FTW_DEPTH | FTW_PHYS);
		}
	}
	closedir(dir);
	return n;
}

double shf_test_multiplier(void)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double d;

	if (!m || !*m)
		return 1.0;
	d = strtod(m, NULL);
	return d >= 1.0 ? d : 1.0;
}

double shf_test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void shf_test_msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void shf_test_add_u32(uint32_t *p, uint32_t v)
{
	__atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}

uint32_t shf_test_load_u32(uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

int shf_test_wait_u32(uint32_t *p, uint32_t want, double timeout_s)
{
	double end = shf_test_now() + timeout_s * shf_test_multiplier();

	while (shf_test_load_u32(p) < want) {
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(1);
	}
	return 0;
}

SHF *shf_test_attach_existing(const char *name)
{
	shf_init();
	return shf_attach_existing(shf_test_dir(), name);
}

void *shf_test_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_msg(p != MAP_FAILED, "mmap(%zu): %s", size, strerror(errno));
	return p;
}

void shf_test_unshared(void *p, size_t size)
{
	munmap(p, size);
}

struct shf_test_job *shf_test_job_alloc(const char *tag, SHF **shf,
					size_t sh_size, uint32_t n,
					uint32_t kids)
{
	static struct shf_test_job j;
	char file[SHF_TEST_PATH_MAX];

	memset(&j, 0, sizeof(j));
	if (shf) {
		*shf = shf_test_new(tag, j.name, sizeof(j.name));
	} else {
		shf_test_name(j.name, sizeof(j.name), tag);
		unlink(shf_test_file(file, sizeof(file), j.name));
	}
	j.sh = shf_test_shared(sh_size);
	j.sh_size = sh_size;
	j.n = n;
	j.kids = kids;
	return &j;
}

void shf_test_job_end(struct shf_test_job *j, SHF *shf)
{
	shf_test_check_sound(shf);
	shf_test_del(shf, j->name);
	shf_test_unshared(j->sh, j->sh_size);
}

void shf_test_spawn(struct shf_test_kids *k, int n, shf_test_kid_fn fn,
		    void *arg)
{
	pid_t parent = getpid();
	int fds[2];
	int i;

	ck_assert_int_le(n, SHF_TEST_KIDS_MAX);
	ck_assert_int_eq(pipe(fds), 0);
	k->n = 0;
	k->go_fd = fds[1];
	fflush(NULL);
	for (i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			char c;
			int rc;

			/* Die with the test, never outlive it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(3);
			close(fds[1]);
			while (read(fds[0], &c, 1) < 0 && errno == EINTR)
				;
			close(fds[0]);
			rc = fn(i, arg);
			/* Keep small codes: they tell which check failed. */
			_exit(rc >= 0 && rc < 126 ? rc : 1);
		}
		if (pid < 0) {
			int e = errno;

			shf_test_go(k);
			shf_test_wait(k, 5);
			ck_abort_msg("fork: %s", strerror(e));
		}
		k->pid[i] = pid;
		k->status[i] = -1;
		k->n = i + 1;
	}
	close(fds[0]);
}

void shf_test_go(struct shf_test_kids *k)
{
	if (k->go_fd >= 0) {
		close(k->go_fd);
		k->go_fd = -1;
	}
}

int shf_test_waitpid(pid_t pid, double timeout_s)
{
	double end = shf_test_now() + timeout_s * shf_test_multiplier();
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (shf_test_now() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		shf_test_msleep(5);
	}
}

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* In a child: a new time namespace, 100000 s later, for its children. */
static int timens_enter(void)
{
	static const char off[] = "boottime 100000 0";
	int fd;

	if (unshare(CLONE_NEWTIME) < 0)
		return -1;
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, off, sizeof(off) - 1) != (ssize_t)sizeof(off) - 1) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static pid_t timens_run(int (*fn)(void *), void *arg, int self)
{
	int p[2], status;
	pid_t pid, g;
	char c = 'n';

	if (pipe(p) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		if (timens_enter() < 0) {
			c = 'n';
			if (write(p[1], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
		if (self) { /* stays where it was: only its children move */
			c = 'y';
			if (write(p[1], &c, 1) < 0)
				_exit(1);
			close(p[1]);
			_exit(fn(arg));
		}
		g = fork(); /* the first process of the new namespace */
		if (g == 0) {
			close(p[1]);
			_exit(fn(arg));
		}
		c = g > 0 ? 'y' : 'n';
		if (write(p[1], &c, 1) < 0 || g < 0)
			_exit(1);
		close(p[1]);
		while (waitpid(g, &status, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 100);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		c = 'n';
	close(p[0]);
	if (c == 'y')
		return pid;
	waitpid(pid, &status, 0);
	fprintf(stderr, "note: no time namespace can be made here: skipped\n");
	return -1;
}

pid_t shf_test_timens_run(int (*fn)(void *), void *arg)
{
	return timens_run(fn, arg, 0);
}

pid_t shf_test_timens_unshare_run(int (*fn)(void *), void *arg)
{
	return timens_run(fn, arg, 1);
}

int shf_test_wait(struct shf_test_kids *k, double timeout_s)
{
	double end = shf_test_now() + timeout_s * shf_test_multiplier();
	int failed = 0;
	int left = k->n;
	int i;

	shf_test_go(k);
	while (left > 0) {
		for (i = 0; i < k->n; i++) {
			int status;

			if (k->status[i] != -1 || k->pid[i] <= 0)
				continue;
			if (waitpid(k->pid[i], &status, WNOHANG) == k->pid[i]) {
				k->status[i] = status;
				left--;
			}
		}
		if (left == 0)
			break;
		if (shf_test_now() > end) {
			for (i = 0; i < k->n; i++) {
				if (k->status[i] != -1 || k->pid[i] <= 0)
					continue;
				fprintf(stderr,
					"child %d (pid %ld) timed out; "
					"killed\n",
					i, (long)k->pid[i]);
				kill(k->pid[i], SIGKILL);
				waitpid(k->pid[i], &k->status[i], 0);
				k->status[i] = -2;
				left--;
			}
			break;
		}
		shf_test_msleep(2);
	}
	for (i = 0; i < k->n; i++) {
		int s = k->status[i];

		if (s >= 0 && WIFEXITED(s) && WEXITSTATUS(s) == 0)
			continue;
		failed++;
		if (s >= 0 && WIFEXITED(s))
			fprintf(stderr, "child %d exited with %d\n", i,
				WEXITSTATUS(s));
		else if (s >= 0 && WIFSIGNALED(s))
			fprintf(stderr, "child %d killed by signal %d\n", i,
				WTERMSIG(s));
	}
	return failed;
}

int shf_test_run(int n, shf_test_kid_fn fn, void *arg, double timeout_s)
{
	struct shf_test_kids k;

	shf_test_spawn(&k, n, fn, arg);
	shf_test_go(&k);
	return shf_test_wait(&k, timeout_s);
}

uint32_t shf_test_key(char *buf, uint64_t i)
{
	return (uint32_t)sprintf(buf, "key-%llu", (unsigned long long)i);
}

void shf_test_hash(uint64_t i)
{
	char key[32];
	uint32_t len = shf_test_key(key, i);

	shf_make_hash(key, len);
}

uint32_t shf_test_val(char *buf, uint64_t i, uint32_t w)
{
	uint32_t len =
		(uint32_t)sprintf(buf, "%llu:%u:", (unsigned long long)i, w);
	uint32_t want = 8 + (uint32_t)((i * 13 + (uint64_t)w * 29) % 64);
	char c = (char)('a' + (i * 31 + (uint64_t)w * 7) % 26);

	while (len < want)
		buf[len++] = c;
	buf[len] = '\0';
	return len;
}

int shf_test_val_ok(const char *val, uint32_t len, uint64_t i, uint32_t writers,
		    uint32_t *w_out)
{
	char want[80];
	uint32_t w;

	for (w = 0; w < writers; w++) {
		uint32_t wlen = shf_test_val(want, i, w);

		if (wlen == len && memcmp(want, val, len) == 0) {
			if (w_out)
				*w_out = w;
			return 1;
		}
	}
	return 0;
}

void shf_test_fill(SHF *shf, uint64_t from, uint64_t to, uint32_t w,
		   uint32_t *uids)
{
	uint64_t i;

	for (i = from; i < to; i++) {
		char v[80];
		uint32_t len = shf_test_val(v, i, w);

		shf_test_hash(i);
		shf_assert_eq(shf_put_key_val(shf, v, len), SHF_RET_KEY_PUT);
		if (uids)
			uids[i - from] = shf_uid;
	}
}

void shf_test_check_keys(SHF *shf, uint64_t from, uint64_t to, uint32_t writers)
{
	uint64_t i;

	for (i = from; i < to; i++) {
		uint32_t ret;

		shf_test_hash(i);
		ret = shf_get_key_val_copy(shf);
		shf_assert_msg(ret == SHF_RET_KEY_FOUND, "key %llu: ret %u",
			       (unsigned long long)i, ret);
		shf_assert_msg(shf_test_val_ok(shf_val, shf_val_len, i, writers,
					       NULL),
			       "key %llu: bad value", (unsigned long long)i);
	}
}

char *shf_test_slurp(FILE *f, size_t *len)
{
	char *buf;
	long size;

	fflush(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
	buf[size] = '\0';
	if (len)
		*len = (size_t)size;
	return buf;
}

void shf_test_pattern(char *buf, size_t len, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ seed;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	for (; i < len; i++)
		buf[i] = (char)(i * 131 + seed);
}

int shf_test_count_cb(const char *key, uint32_t key_len, const char *val,
		      uint32_t val_len, uint32_t uid, void *arg)
{
	(void)key, (void)key_len, (void)val, (void)val_len, (void)uid;
	++*(uint64_t *)arg;
	return 0;
}

void shf_test_stats(SHF *shf, struct shf_stats *st)
{
	memset(st, 0, sizeof(*st));
	shf_assert_msg(shf_get_stats(shf, st, sizeof(*st)) == SHF_RET_OK,
		       "shf_get_stats: %s", strerror(errno));
}

uint64_t shf_test_keys(SHF *shf)
{
	struct shf_stats st;

	memset(&st, 0, sizeof(st));
	if (shf_get_stats(shf, &st, sizeof(st)) != SHF_RET_OK)
		return UINT64_MAX;
	return st.keys;
}

static void problem_cb(const char *problem, void *arg)
{
	(void)arg;
	fprintf(stderr, "shf_check: %s\n", problem);
}

void shf_test_check_sound(SHF *shf)
{
	uint32_t problems;

	errno = 0;
	problems = shf_check(shf, 0, problem_cb, NULL);
	shf_assert_msg(problems == 0, "shf_check: %u problem(s) (%s)", problems,
		       problems == UINT32_MAX ? strerror(errno) : "see stderr");
}

int shf_test_wipeonfork(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ok;

	ck_assert_ptr_ne(p, MAP_FAILED);
	ok = madvise(p, 4096, 18 /* MADV_WIPEONFORK */) == 0;
	munmap(p, 4096);
	if (!ok)
		printf("no MADV_WIPEONFORK: _Fork() test skipped\n");
	return ok;
}

pid_t shf_test_fork_no_atfork(void)
{
	fflush(NULL);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	return _Fork();
#else
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
#endif
}
