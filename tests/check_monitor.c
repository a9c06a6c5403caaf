/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_monitor.c - tables attached with delete_upon_process_exit go away
 * with their owner, and only then (shf-monitor(1)).
 *
 * The monitor binary is $SHF_MONITOR when the harness sets it, else
 * $top_builddir/tools/shf-monitor, else ../tools/shf-monitor next to this
 * program's build folder.  Tables live in shf_test_dir() ($SHF_TEST_DIR,
 * /dev/shm by default).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf-test.h"
#include "shf.h"

#define SHM shf_test_dir()
#define KILLS 20        /* owner deaths measured for the worst time */
#define LIMIT_MS 50.0   /* owner death -> table gone, times the multiplier */
#define MAX_KIDS 16

static pid_t kids[MAX_KIDS];
static int nkids;
static char priv_dir[PATH_MAX]; /* a test's private folder, if any */
static double worst_ms;

static double now_ms(void)
{
	return shf_test_now() * 1e3;
}

static void set_monitor_env(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 32], *slash;
	const char *top = getenv("top_builddir");
	ssize_t n;

	if (getenv("SHF_MONITOR"))
		return;
	if (top) {
		snprintf(path, sizeof(path), "%s/tools/shf-monitor", top);
	} else {
		/* tests/check_monitor or tests/.libs/check_monitor */
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			return;
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		*slash = '\0';
		n = (ssize_t)strlen(exe);
		if (n >= 6 && !strcmp(exe + n - 6, "/.libs"))
			exe[n - 6] = '\0';
		snprintf(path, sizeof(path), "%s/../tools/shf-monitor", exe);
	}
	/* Absolute, as some tests change their working folder. */
	if (realpath(path, exe))
		setenv("SHF_MONITOR", exe, 1);
	else
		setenv("SHF_MONITOR", path, 1);
}

static void table_file(char *buf, size_t len, const char *dir,
		       const char *name)
{
	ck_assert((size_t)snprintf(buf, len, "%s/%s.shf", dir, name) < len);
}

static int exists(const char *file)
{
	struct stat st;

	return lstat(file, &st) == 0;
}

static ino_t inode(const char *file)
{
	struct stat st;

	return lstat(file, &st) == 0 ? st.st_ino : 0;
}

/*
 * Milliseconds from t0 until file is gone (1 ms steps), or -1 after ms
 * (times the test multiplier: a loaded machine).
 */
static double gone_after(const char *file, double t0, long ms)
{
	struct timespec step = { 0, 1000000L };

	while (exists(file)) {
		if (now_ms() - t0 > ms * shf_test_multiplier())
			return -1;
		nanosleep(&step, NULL);
	}
	return now_ms() - t0;
}

enum owner_mode { OWNER_WAIT, OWNER_EXIT, OWNER_EXEC, OWNER_DEL,
		  OWNER_KEEP };

/*
 * Fork an owner that attaches dir/name with delete_upon_process_exit
 * (OWNER_KEEP: without) and then, once told on its pipe: waits to be
 * killed, exits, execs, or shf_del()s.  The child never uses Check.
 * Returns its pid; *go is the pipe that tells it to go on.
 */
static pid_t owner_start(const char *dir, const char *name,
			 enum owner_mode mode, int *go)
{
	int ready[2], gop[2];
	char b = 1;
	pid_t pid;
	SHF *shf;

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(gop, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Check's own SIGTERM/SIGINT handlers would kill the group. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		shf_init();
		shf = shf_attach(dir, name, mode != OWNER_KEEP);
		b = shf ? 0 : 1;
		if (write(ready[1], &b, 1) != 1 || !shf)
			_exit(1);
		if (read(gop[0], &b, 1) != 1)
			_exit(1); /* the test went away */
		switch (mode) {
		case OWNER_EXIT:
			_exit(0);
		case OWNER_EXEC:
			execl("/bin/sleep", "sleep", "0.3", (char *)NULL);
			execl("/bin/true", "true", (char *)NULL);
			_exit(1);
		case OWNER_DEL:
			free(shf_del(shf));
			_exit(0);
		default:
			for (;;)
				pause();
		}
	}
	close(ready[1]);
	close(gop[0]);
	if (nkids < MAX_KIDS)
		kids[nkids++] = pid;
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);
	ck_assert_msg(b == 0, "owner could not attach %s/%s", dir, name);
	*go = gop[1];
	return pid;
}

static void owner_go(int go)
{
	char b = 1;

	ck_assert_int_eq(write(go, &b, 1), 1);
	close(go);
}

static int reap(pid_t pid)
{
	int status, i;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	for (i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	return status;
}

/*
 * For each process whose /proc/PID/what could be read, fn(pid, buf, n,
 * arg): its n bytes in buf, a NUL after them; until fn returns non-zero.
 * 0, or -1 where /proc cannot be read.
 */
static int proc_each(const char *what,
		     int (*fn)(long pid, char *buf, ssize_t n, void *arg),
		     void *arg)
{
	char path[300], buf[4096];
	struct dirent *de;
	ssize_t n;
	int fd, stop = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return -1;
	while (!stop && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/%s", de->d_name, what);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		stop = fn(atol(de->d_name), buf, n, arg);
	}
	closedir(d);
	return 0;
}

struct mon_look {
	const char *dir, *file;
	pid_t found;
	int *count; /* NULL: the first one found will do */
};

/* proc_each(): is the command line a monitor of look's dir and file? */
static int mon_look_at(long pid, char *buf, ssize_t n, void *arg)
{
	struct mon_look *l = arg;
	int has_dir = 0, has_file = 0;
	char *p, *end, *prev = "";

	for (p = buf, end = buf + n; p < end; p += strlen(p) + 1) {
		if (!strcmp(prev, "--dir") && !strcmp(p, l->dir))
			has_dir = 1;
		if (!strcmp(prev, "--file") && !strcmp(p, l->file))
			has_file = 1;
		prev = p;
	}
	if (!has_dir || !has_file)
		return 0;
	l->found = (pid_t)pid;
	if (l->count)
		++*l->count;
	return !l->count;
}

/*
 * Pid of a monitor watching dir/file, or 0; *count (if not NULL): how
 * many there are (else the look stops at the first).
 */
static pid_t monitors_of(const char *dir, const char *file, int *count)
{
	struct mon_look l = { dir, file, 0, count };

	if (count)
		*count = 0;
	proc_each("cmdline", mon_look_at, &l);
	return l.found;
}

/* Pid of the monitor watching dir/file, or 0. */
static pid_t monitor_find(const char *dir, const char *file)
{
	return monitors_of(dir, file, NULL);
}

/*
 * How many monitors watch dir/file once they are want (a monitor told to
 * go takes a moment), or after 5 s; *pid: one of them.
 */
static int monitors_settle(const char *dir, const char *file, int want,
			   pid_t *pid)
{
	double t0 = now_ms();
	pid_t p;
	int n;

	for (;;) {
		p = monitors_of(dir, file, &n);
		if (n == want || now_ms() - t0 > 5000 * shf_test_multiplier())
			break;
		shf_test_msleep(2);
	}
	if (pid)
		*pid = p;
	return n;
}

/* Is pid gone (or a zombie waiting for init)? */
static int proc_gone(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && (p[2] == 'Z' || p[2] == 'X');
}

static int proc_gone_within(pid_t pid, long ms)
{
	double t0 = now_ms();

	while (!proc_gone(pid)) {
		if (now_ms() - t0 > ms * shf_test_multiplier())
			return 0;
		shf_test_msleep(1);
	}
	return 1;
}

static void make_priv_dir(const char *tag)
{
	char name[SHF_TEST_NAME_MAX];

	shf_test_name(name, sizeof(name), tag);
	snprintf(priv_dir, sizeof(priv_dir), "%s/%s", SHM, name);
	ck_assert_msg(mkdir(priv_dir, 0700) == 0, "mkdir %s: %s", priv_dir,
		      strerror(errno));
}

/* Run shf-monitor --sweep dir; its exit status; its output in out. */
static int run_sweep(const char *dir, char *out, size_t len)
{
	const char *mon = getenv("SHF_MONITOR");
	size_t got = 0;
	int p[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		execl(mon, "shf-monitor", "--sweep", dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < len - 1 &&
	       ((n = read(p[0], out + got, len - 1 - got)) > 0 ||
		(n < 0 && errno == EINTR)))
		if (n > 0)
			got += n;
	out[got] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static void setup(void)
{
	nkids = 0;
	priv_dir[0] = '\0';
}

/* Kill what a failed test left behind and remove its files. */
static void teardown(void)
{
	char pat[SHF_TEST_NAME_MAX], path[PATH_MAX + 300];
	struct dirent *de;
	size_t plen;
	DIR *d;
	int i;

	for (i = 0; i < nkids; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	if (priv_dir[0]) {
		d = opendir(priv_dir);
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' &&
			    (!de->d_name[1] || !strcmp(de->d_name, "..")))
				continue;
			snprintf(path, sizeof(path), "%s/%s", priv_dir,
				 de->d_name);
			unlink(path);
		}
		if (d)
			closedir(d);
		rmdir(priv_dir);
	}
	shf_test_name(pat, sizeof(pat), "");
	plen = strlen(pat);
	d = opendir(SHM);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, pat, plen))
			continue;
		snprintf(path, sizeof(path), "%s/%s", SHM, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

/* Kill the owner with sig; milliseconds until its table is gone. */
static double kill_and_time(const char *tag, int sig)
{
	char name[64], file[PATH_MAX];
	double t0, ms;
	pid_t pid;
	int go, status;

	shf_test_name(name, sizeof(name), tag);
	table_file(file, sizeof(file), SHM, name);
	pid = owner_start(SHM, name, OWNER_WAIT, &go);
	ck_assert(exists(file));
	t0 = now_ms();
	ck_assert_int_eq(kill(pid, sig), 0);
	ms = gone_after(file, t0, 2000);
	status = reap(pid);
	close(go);
	ck_assert_msg(ms >= 0, "%s still there 2 s after the owner died", file);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig);
	if (ms > worst_ms)
		worst_ms = ms;
	return ms;
}

START_TEST(test_sigkill)
{
	char tag[16];
	double ms;
	int i;

	worst_ms = 0;
	for (i = 0; i < KILLS; i++) {
		snprintf(tag, sizeof(tag), "kill%d", i);
		ms = kill_and_time(tag, SIGKILL);
		ck_assert_msg(ms < LIMIT_MS * shf_test_multiplier(),
			      "table removed %.1f ms after SIGKILL", ms);
	}
	printf("check_monitor: SIGKILL -> table gone: worst %.2f ms over %d\n",
	       worst_ms, KILLS);
	fflush(stdout);
}
END_TEST

START_TEST(test_sigterm)
{
	double ms = kill_and_time("term", SIGTERM);

	ck_assert_msg(ms < LIMIT_MS * shf_test_multiplier(),
		      "table removed %.1f ms after SIGTERM", ms);
}
END_TEST

START_TEST(test_exit)
{
	char name[64], file[PATH_MAX];
	int go, status;
	double ms;
	pid_t pid;

	shf_test_name(name, sizeof(name), "exit");
	table_file(file, sizeof(file), SHM, name);
	pid = owner_start(SHM, name, OWNER_EXIT, &go);
	ck_assert(exists(file));
	owner_go(go);
	status = reap(pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ms = gone_after(file, now_ms(), 2000);
	ck_assert_msg(ms >= 0 && ms < LIMIT_MS * shf_test_multiplier(),
		      "table removed %.1f ms after exit", ms);
}
END_TEST

/* exec() keeps the process: the table lives until the new program exits. */
START_TEST(test_exec)
{
	char name[64], file[PATH_MAX], path[64], comm[32] = "";
	int go, status, fd, n;
	double t0, ms;
	pid_t pid;

	shf_test_name(name, sizeof(name), "exec");
	table_file(file, sizeof(file), SHM, name);
	pid = owner_start(SHM, name, OWNER_EXEC, &go);
	owner_go(go);

	/* Wait for the exec (comm becomes "sleep"). */
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	t0 = now_ms();
	while (strncmp(comm, "sleep", 5) && now_ms() - t0 < 1000) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, comm, sizeof(comm) - 1) : -1;
		if (fd >= 0)
			close(fd);
		comm[n > 0 ? n : 0] = '\0';
		if (strncmp(comm, "sleep", 5))
			shf_test_msleep(1);
	}
	if (!strncmp(comm, "sleep", 5)) {
		shf_test_msleep(50);
		ck_assert_msg(exists(file), "table removed at exec()");
	}
	status = reap(pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ms = gone_after(file, now_ms(), 2000);
	ck_assert_msg(ms >= 0 && ms < LIMIT_MS * shf_test_multiplier(),
		      "table removed %.1f ms after the exec()ed program", ms);
}
END_TEST

/* shf_del() removes the table; the monitor has nothing left to do. */
START_TEST(test_del_monitor_exits)
{
	char name[64], file[PATH_MAX], base[80];
	int go, status;
	pid_t pid, mon;

	shf_test_name(name, sizeof(name), "del");
	table_file(file, sizeof(file), SHM, name);
	snprintf(base, sizeof(base), "%s.shf", name);
	pid = owner_start(SHM, name, OWNER_DEL, &go);
	mon = monitor_find(SHM, base);
	ck_assert_msg(mon > 0, "no monitor for %s", file);
	owner_go(go);
	status = reap(pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(!exists(file));
	ck_assert_msg(proc_gone_within(mon, 1500),
		      "monitor %ld outlived its table", (long)mon);
}
END_TEST

/* The owner record, as shf_get_stats() reports it to any process. */
START_TEST(test_owner_in_stats)
{
	char name[64], file[PATH_MAX];
	struct shf_stats st;
	int go;
	pid_t pid;
	SHF *shf;

	shf_test_name(name, sizeof(name), "ownerstats");
	table_file(file, sizeof(file), SHM, name);
	pid = owner_start(SHM, name, OWNER_WAIT, &go);
	shf = shf_attach_existing(SHM, name);
	ck_assert_ptr_nonnull(shf);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, pid);
	ck_assert_uint_ne(st.owner_start, 0);
	ck_assert_uint_eq(st.owner_alive, 1);
	/* a reader built before 1.2 asks for less and gets no more */
	memset(&st, 0xa5, sizeof(st));
	ck_assert_uint_eq(shf_get_stats(shf, &st,
					offsetof(struct shf_stats, owner_pid)),
			  SHF_RET_OK);
	ck_assert_uint_eq((uint64_t)st.owner_pid, 0xa5a5a5a5a5a5a5a5ULL);
	/* killed: not alive, whatever its pid now names */
	kill(pid, SIGKILL);
	reap(pid);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, pid);
	ck_assert_uint_eq(st.owner_alive, 0);
	shf_detach(shf);
	close(go);
	/* the monitor removes it; a table without owner says pid 0 */
	ck_assert_msg(gone_after(file, now_ms(), 2000) >= 0,
		      "%s still there", file);
	shf = shf_attach(SHM, name, 0);
	ck_assert_ptr_nonnull(shf);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, 0);
	ck_assert_uint_eq(st.owner_alive, 0);
	free(shf_del(shf));
}
END_TEST

/* A relative folder is the owner's, not the monitor's. */
START_TEST(test_relative_dir)
{
	char name[64], file[PATH_MAX];
	int go, status;
	double ms;
	pid_t pid;

	make_priv_dir("rel");
	ck_assert_int_eq(chdir(priv_dir), 0);
	shf_test_name(name, sizeof(name), "rel");
	table_file(file, sizeof(file), priv_dir, name);
	pid = owner_start(".", name, OWNER_WAIT, &go);
	ck_assert(exists(file));
	kill(pid, SIGKILL);
	status = reap(pid);
	close(go);
	ck_assert(WIFSIGNALED(status));
	ms = gone_after(file, now_ms(), 2000);
	ck_assert_msg(ms >= 0 && ms < LIMIT_MS * shf_test_multiplier(),
		      "table removed %.1f ms after SIGKILL", ms);
	ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

/* A monitor killed leaves the table; a sweep removes it later. */
START_TEST(test_monitor_killed)
{
	char name[64], file[PATH_MAX], base[80], out[4096];
	int go, status;
	pid_t pid, mon;

	make_priv_dir("mkill");
	shf_test_name(name, sizeof(name), "mkill");
	table_file(file, sizeof(file), priv_dir, name);
	snprintf(base, sizeof(base), "%s.shf", name);
	pid = owner_start(priv_dir, name, OWNER_WAIT, &go);
	mon = monitor_find(priv_dir, base);
	ck_assert_msg(mon > 0, "no monitor for %s", file);
	ck_assert_int_eq(kill(mon, SIGKILL), 0);
	ck_assert(proc_gone_within(mon, 5000));

	/* The owner is alive: a sweep keeps the table. */
	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(out, "");
	ck_assert(exists(file));

	kill(pid, SIGKILL);
	reap(pid);
	close(go);
	shf_test_msleep(100);
	ck_assert_msg(exists(file), "table removed without a monitor");

	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_msg(strstr(out, base), "sweep said: %s", out);
	ck_assert(!exists(file));
}
END_TEST

/*
 * One monitor a table and process (found by an audit): each
 * shf_attach(..., 1) started a monitor that lived as long as the
 * process, so one that attached a table and detached it in a loop grew a
 * process a turn.  Each attach's monitor now sends the one before it
 * away; one killed is replaced by the next attach.
 */
START_TEST(test_one_monitor_per_table)
{
	char name[64], file[PATH_MAX], base[80];
	SHF *shf, *two;
	pid_t mon, mon2;
	int i, n;

	make_priv_dir("onemon");
	shf_test_name(name, sizeof(name), "onemon");
	table_file(file, sizeof(file), priv_dir, name);
	snprintf(base, sizeof(base), "%s.shf", name);
	for (i = 0; i < 5; i++) {
		shf = shf_attach(priv_dir, name, 1);
		ck_assert_ptr_nonnull(shf);
		shf_detach(shf);
	}
	shf = shf_attach(priv_dir, name, 1);
	two = shf_attach(priv_dir, name, 1);
	ck_assert_ptr_nonnull(shf);
	ck_assert_ptr_nonnull(two);
	n = monitors_settle(priv_dir, base, 1, &mon);
	ck_assert_msg(n == 1, "%d monitors for %s", n, file);
	shf_detach(two);

	/* its monitor killed: the next attach starts another */
	ck_assert_int_eq(kill(mon, SIGKILL), 0);
	ck_assert(proc_gone_within(mon, 5000));
	two = shf_attach(priv_dir, name, 1);
	ck_assert_ptr_nonnull(two);
	n = monitors_settle(priv_dir, base, 1, &mon2);
	ck_assert_msg(n == 1 && mon2 != mon, "%d monitors for %s", n, file);
	shf_detach(two);

	/* removed (and detached): the monitor leaves */
	free(shf_del(shf));
	ck_assert(!exists(file));
	ck_assert(proc_gone_within(mon2, 5000));
}
END_TEST

/* proc_each(): one more in *arg if the process is a zombie child of us. */
static int zombie_of_mine(long pid, char *buf, ssize_t n, void *arg)
{
	char *p = strrchr(buf, ')'), st;
	long ppid;

	(void)pid, (void)n;
	if (p && sscanf(p + 1, " %c %ld", &st, &ppid) == 2 && st == 'Z' &&
	    ppid == (long)getpid())
		++*(int *)arg;
	return 0;
}

/* Zombie children of this process (state Z, parent us) in /proc. */
static int my_zombies(void)
{
	int n = 0;

	return proc_each("stat", zombie_of_mine, &n) < 0 ? -1 : n;
}

/*
 * A monitor sent away is reaped where it is a child of the process (found
 * by review): the monitor forks twice so that it is re-parented, to init,
 * or to the nearest subreaper, or to the process itself where it is PID 1
 * of a namespace (a container without an init).  Sent away there, each
 * one stayed as a zombie of the process: a loop of attaches filled the
 * process table.
 */
START_TEST(test_retired_monitor_reaped)
{
	char name[64];
	int status, i, z;
	pid_t pid;
	SHF *shf;

	make_priv_dir("reaped");
	shf_test_name(name, sizeof(name), "reaped");
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
			_exit(100);
		for (i = 0; i < 5; i++) {
			shf = shf_attach(priv_dir, name, 1);
			if (!shf)
				_exit(101);
			shf_detach(shf);
		}
		z = my_zombies();
		shf = shf_attach_existing(priv_dir, name);
		if (shf)
			free(shf_del(shf));
		_exit(z < 0 ? 102 : z > 99 ? 99 : z);
	}
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status), "the owner: status %#x", status);
	ck_assert_msg(WEXITSTATUS(status) == 0,
		      "the owner: %d zombies (or failure %d)",
		      WEXITSTATUS(status), WEXITSTATUS(status));
}
END_TEST

/*
 * A monitor watches a name (found by review of the one-monitor rule,
 * which first went by the file alone, then raced with a monitor leaving
 * on CI): a table renamed, or linked under a second name, and attached
 * under its new name with delete_upon_process_exit, has a monitor for
 * that name, even while the monitor of the old name is still there, or
 * one of the new name that is leaving (its name was gone a moment).
 */
START_TEST(test_monitor_follows_the_name)
{
	char a[64], b[64], fa[PATH_MAX], fb[PATH_MAX], ba[80], bb[80];
	SHF *shf, *two;
	int n;

	make_priv_dir("monname");
	shf_test_name(a, sizeof(a), "mna");
	shf_test_name(b, sizeof(b), "mnb");
	table_file(fa, sizeof(fa), priv_dir, a);
	table_file(fb, sizeof(fb), priv_dir, b);
	snprintf(ba, sizeof(ba), "%s.shf", a);
	snprintf(bb, sizeof(bb), "%s.shf", b);

	/* a second name for the same file: each has its monitor */
	shf = shf_attach(priv_dir, a, 1);
	ck_assert_ptr_nonnull(shf);
	ck_assert_int_eq(link(fa, fb), 0);
	two = shf_attach(priv_dir, b, 1);
	ck_assert_ptr_nonnull(two);
	n = monitors_settle(priv_dir, bb, 1, NULL);
	ck_assert_msg(n == 1, "%d monitors for the second name", n);
	n = monitors_settle(priv_dir, ba, 1, NULL);
	ck_assert_msg(n == 1, "%d monitors for the first name", n);
	shf_detach(two);
	ck_assert_int_eq(unlink(fb), 0);

	/* renamed, and attached at once under its new name */
	ck_assert_int_eq(rename(fa, fb), 0);
	two = shf_attach(priv_dir, b, 1);
	ck_assert_ptr_nonnull(two);
	n = monitors_settle(priv_dir, bb, 1, NULL);
	ck_assert_msg(n == 1, "%d monitors for the new name", n);
	shf_detach(shf);
	free(shf_del(two));
	ck_assert(!exists(fb));
}
END_TEST

/*
 * An owner in another time namespace (a container, a restored
 * checkpoint), whose /proc start times are shifted by its boot time
 * offset: alive to shf_get_stats() and to a sweep from outside it, and
 * its table removed once it is gone (found by review: the start time the
 * owner recorded did not match the one read here, so a sweep removed a
 * live owner's table).
 */
static char tns_name[64];
static uint32_t *tns_step;

static int tns_owner(void *arg)
{
	SHF *shf;

	(void)arg;
	shf = shf_attach(priv_dir, tns_name, 1);
	if (!shf)
		return 3;
	shf_test_add_u32(tns_step, 1);
	return shf_test_wait_u32(tns_step, 2, 30) < 0 ? 4 : 0;
}

START_TEST(test_owner_other_time_namespace)
{
	char file[PATH_MAX], out[4096];
	struct shf_stats st;
	int status;
	pid_t pid;
	SHF *shf;

	make_priv_dir("tns");
	shf_test_name(tns_name, sizeof(tns_name), "tns");
	table_file(file, sizeof(file), priv_dir, tns_name);
	tns_step = shf_test_shared(sizeof(*tns_step));
	pid = shf_test_timens_run(tns_owner, NULL);
	if (pid > 0) {
		ck_assert_int_eq(shf_test_wait_u32(tns_step, 1, 30), 0);
		shf = shf_attach_existing(priv_dir, tns_name);
		ck_assert_ptr_nonnull(shf);
		ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)),
				  SHF_RET_OK);
		ck_assert_uint_eq(st.owner_alive, 1);
		shf_detach(shf);
		status = run_sweep(priv_dir, out, sizeof(out));
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ck_assert_msg(!strcmp(out, ""), "sweep said: %s", out);
		shf_test_msleep(200);
		ck_assert_msg(exists(file), "a live owner's table removed");
		shf_test_add_u32(tns_step, 1);
		status = shf_test_waitpid(pid, 30);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "the owner: status %#x", status);
		ck_assert_msg(gone_after(file, now_ms(), 2000) >= 0,
			      "%s still there after its owner", file);
	}
	shf_test_unshared(tns_step, sizeof(*tns_step));
}
END_TEST

/*
 * An owner whose first thread called pthread_exit() while another thread
 * goes on: its /proc entry shows a zombie, but the process lives.  Its
 * table showed "orphaned" (shf_get_stats()), a sweep removed it, and an
 * attach with a monitor from the remaining thread failed (ESRCH): the
 * zombie was taken for the process (found by an audit).
 */
static char ptx_name[64], ptx_name2[64];
static uint32_t *ptx_step;

static void *ptx_thread(void *arg)
{
	SHF *shf;

	(void)arg;
	/* the first thread gone: a table and its monitor from this one */
	if (shf_test_wait_u32(ptx_step, 1, 30) < 0)
		_exit(5);
	shf_test_msleep(100);
	shf = shf_attach(priv_dir, ptx_name2, 1);
	shf_test_add_u32(ptx_step, shf ? 1 : 100);
	if (shf_test_wait_u32(ptx_step, 3, 30) < 0)
		_exit(6);
	_exit(0);
}

START_TEST(test_owner_first_thread_exited)
{
	char file[PATH_MAX], file2[PATH_MAX], out[4096];
	struct shf_stats st;
	int status;
	pid_t pid;
	SHF *shf;

	make_priv_dir("ptx");
	shf_test_name(ptx_name, sizeof(ptx_name), "ptx");
	shf_test_name(ptx_name2, sizeof(ptx_name2), "ptx2");
	table_file(file, sizeof(file), priv_dir, ptx_name);
	table_file(file2, sizeof(file2), priv_dir, ptx_name2);
	ptx_step = shf_test_shared(sizeof(*ptx_step));
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_t t;

		if (!shf_attach(priv_dir, ptx_name, 1) ||
		    pthread_create(&t, NULL, ptx_thread, NULL))
			_exit(3);
		shf_test_add_u32(ptx_step, 1);
		pthread_exit(NULL);
	}
	ck_assert_int_eq(shf_test_wait_u32(ptx_step, 2, 30), 0);
	ck_assert_msg(*ptx_step == 2, "the attach from the other thread "
		      "failed (step %u)", *ptx_step);
	shf = shf_attach_existing(priv_dir, ptx_name);
	ck_assert_ptr_nonnull(shf);
	ck_assert_uint_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, pid);
	ck_assert_uint_eq(st.owner_alive, 1);
	shf_detach(shf);
	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_msg(!strcmp(out, ""), "sweep said: %s", out);
	ck_assert_msg(exists(file) && exists(file2),
		      "a live owner's table removed");
	/* the process gone at last: both tables with it */
	shf_test_add_u32(ptx_step, 1);
	status = shf_test_waitpid(pid, 30);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the owner: status %#x", status);
	ck_assert(gone_after(file, now_ms(), 2000) >= 0);
	ck_assert(gone_after(file2, now_ms(), 2000) >= 0);
	shf_test_unshared(ptx_step, sizeof(*ptx_step));
}
END_TEST

/*
 * A table whose file another process keeps cutting short and growing
 * back: the sweep read each table's owner through a mapping, and died of
 * SIGBUS when a cut fell between the attach's checks and its reads (a
 * sweep in ten; found by an audit), leaving the tables after it unswept.
 * It reads the owner from the file now.
 */
START_TEST(test_sweep_beside_a_cutter)
{
	char name[64], file[PATH_MAX], out[4096];
	int i, status;
	struct stat st;
	pid_t cutter;
	SHF *shf;

	make_priv_dir("cut");
	shf_test_name(name, sizeof(name), "cut");
	table_file(file, sizeof(file), priv_dir, name);
	shf = shf_attach(priv_dir, name, 0);
	ck_assert_ptr_nonnull(shf);
	shf_detach(shf);
	ck_assert_int_eq(stat(file, &st), 0);
	fflush(NULL);
	cutter = fork();
	ck_assert_int_ge(cutter, 0);
	if (cutter == 0) {
		int fd = open(file, O_RDWR | O_CLOEXEC);

		if (fd < 0)
			_exit(1);
		for (;;)
			if (ftruncate(fd, 8192) < 0 ||
			    ftruncate(fd, st.st_size) < 0)
				_exit(2);
	}
	for (i = 0; i < 30; i++) {
		status = run_sweep(priv_dir, out, sizeof(out));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			break;
	}
	kill(cutter, SIGKILL);
	reap(cutter);
	unlink(file);
	ck_assert_msg(i == 30, "sweep %d: status %#x", i, status);
}
END_TEST

/*
 * Owner A's table is removed and recreated by owner B under the same name;
 * when A dies, its monitor must leave B's table alone.  A's monitor is
 * stopped while the name changes hands so that it sees A's death first.
 */
START_TEST(test_recreated_name)
{
	char name[64], file[PATH_MAX], base[80];
	int go_a, go_b;
	pid_t a, b, mon_a;
	ino_t ino_a, ino_b;
	double ms;

	shf_test_name(name, sizeof(name), "race");
	table_file(file, sizeof(file), SHM, name);
	snprintf(base, sizeof(base), "%s.shf", name);

	a = owner_start(SHM, name, OWNER_WAIT, &go_a);
	ino_a = inode(file);
	mon_a = monitor_find(SHM, base);
	ck_assert_msg(mon_a > 0, "no monitor for A");
	ck_assert_int_eq(kill(mon_a, SIGSTOP), 0);

	ck_assert_int_eq(unlink(file), 0);
	b = owner_start(SHM, name, OWNER_WAIT, &go_b);
	ino_b = inode(file);
	ck_assert(ino_b != 0 && ino_b != ino_a);

	kill(a, SIGKILL);
	reap(a);
	close(go_a);
	ck_assert_int_eq(kill(mon_a, SIGCONT), 0);
	ck_assert_msg(proc_gone_within(mon_a, 1500), "A's monitor stayed");
	ck_assert_msg(inode(file) == ino_b, "B's table was removed");

	/* A third attacher that does not own it changes nothing either. */
	kill(b, SIGKILL);
	reap(b);
	close(go_b);
	ms = gone_after(file, now_ms(), 2000);
	ck_assert_msg(ms >= 0, "B's table stayed after B died");
}
END_TEST

/* Same, without stopping anything: A's monitor leaves when A's file goes. */
START_TEST(test_replaced_monitor_exits)
{
	char name[64], file[PATH_MAX], base[80];
	int go_a, go_b;
	pid_t a, b, mon_a;
	ino_t ino_b;

	shf_test_name(name, sizeof(name), "repl");
	table_file(file, sizeof(file), SHM, name);
	snprintf(base, sizeof(base), "%s.shf", name);

	a = owner_start(SHM, name, OWNER_WAIT, &go_a);
	mon_a = monitor_find(SHM, base);
	ck_assert(mon_a > 0);
	ck_assert_int_eq(unlink(file), 0);
	b = owner_start(SHM, name, OWNER_WAIT, &go_b);
	ino_b = inode(file);
	ck_assert_msg(proc_gone_within(mon_a, 1500), "A's monitor stayed");

	kill(a, SIGKILL);
	reap(a);
	close(go_a);
	shf_test_msleep(100);
	ck_assert_msg(inode(file) == ino_b, "B's table was removed");
	kill(b, SIGKILL);
	reap(b);
	close(go_b);
	ck_assert(gone_after(file, now_ms(), 2000) >= 0);
}
END_TEST

/*
 * fstatat() of this program, the library's calls included (the
 * executable's definition comes first for libshf.so too): the first look
 * at swap_file hands the name over to another table first, as a process
 * that deletes and makes the table anew would between shf_attach()'s
 * open and its start of the monitor.
 */
static char swap_file[PATH_MAX];
static const char *swap_name;
static SHF *swap_shf;
static int swap_seen;

__attribute__((visibility("default"))) int
fstatat(int dfd, const char *path, struct stat *st, int flags)
{
	static int (*real)(int, const char *, struct stat *, int);

	if (!real)
		real = (int (*)(int, const char *, struct stat *, int))dlsym(
			RTLD_NEXT, "fstatat");
	if (swap_file[0] && dfd == AT_FDCWD && !strcmp(path, swap_file)) {
		swap_file[0] = '\0';
		swap_seen = 1;
		if (unlink(path) == 0)
			swap_shf = shf_attach(SHM, swap_name, 0);
	}
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(dfd, path, st, flags);
}

/*
 * The name handed over between shf_attach()'s open and the monitor's
 * start (found by review): the monitor was given what the name named by
 * then, so it watched B's table for A and removed it once A died.  Now
 * shf_attach() fails with ESTALE, B's table stays as it was, and no
 * monitor starts.
 */
START_TEST(test_name_changed_hands)
{
	char name[64], file[PATH_MAX], base[80];
	struct shf_stats st;
	ino_t ino_b;
	SHF *shf;

	shf_test_name(name, sizeof(name), "hands");
	table_file(file, sizeof(file), SHM, name);
	snprintf(base, sizeof(base), "%s.shf", name);
	swap_name = name;
	snprintf(swap_file, sizeof(swap_file), "%s", file);
	errno = 0;
	shf = shf_attach(SHM, name, 1);
	if (!swap_seen) {
		printf("fstatat() is not interposed here: skipped\n");
		swap_file[0] = '\0';
		if (shf)
			free(shf_del(shf));
		return;
	}
	ck_assert_ptr_nonnull(swap_shf);
	ino_b = inode(file);
	ck_assert_msg(shf == NULL, "shf_attach() took B's table for its own");
	ck_assert_int_eq(errno, ESTALE);
	ck_assert_int_eq(monitor_find(SHM, base), 0);
	ck_assert_msg(inode(file) == ino_b, "B's table was replaced");
	ck_assert_uint_eq(shf_get_stats(swap_shf, &st, sizeof(st)),
			  SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, 0);
	free(shf_del(swap_shf));
	ck_assert(!exists(file));
}
END_TEST

/*
 * Sweep: dead owners' tables go; live, ownerless, symlinks, others stay;
 * so do the temporary files of dead creators, when old enough.  A dead
 * owner's table that group or others may write stays too (its owner
 * record may be forged), and the sweep says why.
 */
START_TEST(test_sweep)
{
	char n_dead1[64], n_dead2[64], n_dead3[64], n_live[64], n_none[64];
	char f_dead1[PATH_MAX], f_dead2[PATH_MAX], f_live[PATH_MAX];
	char f_dead3[PATH_MAX];
	char f_none[PATH_MAX], f_sym[PATH_MAX], f_txt[PATH_MAX];
	char base[80], out[4096];
	char f_tmp_old[PATH_MAX + 100], f_tmp_new[PATH_MAX + 100];
	const struct timespec old_times[2] = { { 1000000000, 0 },
					       { 1000000000, 0 } };
	pid_t dead1, dead2, dead3, live, none, mon;
	int go1, go2, go3, go4, go5, status, fd;
	const char *p;
	int lines = 0;

	make_priv_dir("sweep");
	shf_test_name(n_dead1, sizeof(n_dead1), "dead1");
	shf_test_name(n_dead2, sizeof(n_dead2), "dead2");
	shf_test_name(n_dead3, sizeof(n_dead3), "dead3");
	shf_test_name(n_live, sizeof(n_live), "live");
	shf_test_name(n_none, sizeof(n_none), "none");
	table_file(f_dead1, sizeof(f_dead1), priv_dir, n_dead1);
	table_file(f_dead2, sizeof(f_dead2), priv_dir, n_dead2);
	table_file(f_dead3, sizeof(f_dead3), priv_dir, n_dead3);
	table_file(f_live, sizeof(f_live), priv_dir, n_live);
	table_file(f_none, sizeof(f_none), priv_dir, n_none);
	table_file(f_sym, sizeof(f_sym), priv_dir, "link");
	ck_assert((size_t)snprintf(f_txt, sizeof(f_txt), "%s/other.txt",
				   priv_dir) < sizeof(f_txt));

	/* Owners whose monitors are gone (killed), so only a sweep helps. */
	dead1 = owner_start(priv_dir, n_dead1, OWNER_WAIT, &go1);
	dead2 = owner_start(priv_dir, n_dead2, OWNER_WAIT, &go2);
	dead3 = owner_start(priv_dir, n_dead3, OWNER_WAIT, &go5);
	live = owner_start(priv_dir, n_live, OWNER_WAIT, &go3);
	none = owner_start(priv_dir, n_none, OWNER_KEEP, &go4);
	snprintf(base, sizeof(base), "%s.shf", n_dead1);
	ck_assert((mon = monitor_find(priv_dir, base)) > 0);
	kill(mon, SIGKILL);
	ck_assert(proc_gone_within(mon, 5000));
	snprintf(base, sizeof(base), "%s.shf", n_dead2);
	ck_assert((mon = monitor_find(priv_dir, base)) > 0);
	kill(mon, SIGKILL);
	ck_assert(proc_gone_within(mon, 5000));
	snprintf(base, sizeof(base), "%s.shf", n_dead3);
	ck_assert((mon = monitor_find(priv_dir, base)) > 0);
	kill(mon, SIGKILL);
	ck_assert(proc_gone_within(mon, 5000));
	snprintf(base, sizeof(base), "%s.shf", n_live);
	ck_assert((mon = monitor_find(priv_dir, base)) > 0);
	kill(mon, SIGKILL);
	ck_assert(proc_gone_within(mon, 5000));

	kill(dead1, SIGKILL);
	reap(dead1);
	kill(dead2, SIGKILL);
	reap(dead2);
	kill(dead3, SIGKILL);
	reap(dead3);
	ck_assert_int_eq(chmod(f_dead3, 0620), 0); /* group may write it */
	kill(none, SIGKILL);
	reap(none);
	close(go1);
	close(go2);
	close(go4);
	close(go5);

	/* Temporary files of creators that died (see lib/shf.c): an old one
	 * goes, a young one stays. */
	snprintf(f_tmp_old, sizeof(f_tmp_old), "%s/.%s.shf.%ld.1a2b.tmp",
		 priv_dir, n_dead1, (long)dead1);
	snprintf(f_tmp_new, sizeof(f_tmp_new), "%s/.%s.shf.%ld.1a2c.tmp",
		 priv_dir, n_dead2, (long)dead2);
	fd = open(f_tmp_old, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(futimens(fd, old_times), 0);
	close(fd);
	fd = open(f_tmp_new, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);

	ck_assert_int_eq(symlink(f_dead1, f_sym), 0);
	fd = open(f_txt, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);

	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (p = out; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_msg(lines == 4, "sweep said: %s", out);
	ck_assert(strstr(out, n_dead1) && strstr(out, n_dead2));
	ck_assert_msg(strstr(out, "skipped") && strstr(out, n_dead3) &&
			      strstr(out, "not trusted"),
		      "sweep said: %s", out);
	ck_assert(exists(f_dead3));
	ck_assert(!exists(f_tmp_old));
	ck_assert(exists(f_tmp_new));
	ck_assert(!exists(f_dead1));
	ck_assert(!exists(f_dead2));
	ck_assert(exists(f_live));
	ck_assert(exists(f_none));
	ck_assert(exists(f_sym));
	ck_assert(exists(f_txt));

	/* A second sweep finds nothing to do (the skipped table aside);
	 * once only its owner may write it, the table goes. */
	ck_assert_int_eq(chmod(f_dead3, 0600), 0);
	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_msg(strstr(out, "removed") && strstr(out, n_dead3) &&
			      !strchr(strchr(out, '\n') + 1, '\n'),
		      "sweep said: %s", out);
	ck_assert(!exists(f_dead3));
	status = run_sweep(priv_dir, out, sizeof(out));
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(out, "");

	kill(live, SIGKILL);
	reap(live);
	close(go3);
	/* teardown() removes the rest and the folder */
}
END_TEST

/*
 * No monitor to start (not installed) makes shf_attach() fail before it
 * makes anything: no table is left behind (one was, for shf gc), and a
 * table that was there keeps the owner it had (it got the caller).  A
 * monitor that starts but fails: test_monitor_timeout.
 */
START_TEST(test_no_monitor)
{
	char name[64], path[PATH_MAX];
	struct shf_stats st;
	SHF *shf, *mine;

	shf_test_name(name, sizeof(name), "nomon");
	snprintf(path, sizeof(path), "%s/%s.shf", SHM, name);
	setenv("SHF_MONITOR", "/nonexistent/shf-monitor", 1);
	errno = 0;
	shf = shf_attach(SHM, name, 1);
	ck_assert_ptr_null(shf);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_msg(access(path, F_OK) < 0 && errno == ENOENT,
		      "a table was left behind");

	mine = shf_attach(SHM, name, 0);
	ck_assert_ptr_nonnull(mine);
	errno = 0;
	shf = shf_attach(SHM, name, 1);
	ck_assert_ptr_null(shf);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_uint_eq(shf_get_stats(mine, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, 0);
	free(shf_del(mine));
}
END_TEST

/* SIGCHLD ignored (children auto-reaped) or reaped by a handler. */
static void reap_all(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

static void attach_with_sigchld(void (*handler)(int), const char *tag)
{
	char name[64], base[80], *text;
	struct sigaction sa = { .sa_handler = handler };
	pid_t mon;
	SHF *shf;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGCHLD, &sa, NULL), 0);
	shf_test_name(name, sizeof(name), tag);
	snprintf(base, sizeof(base), "%s.shf", name);
	errno = 0;
	shf = shf_attach(SHM, name, 1);
	ck_assert_msg(shf != NULL, "shf_attach: %s", strerror(errno));
	mon = monitor_find(SHM, base);
	ck_assert(mon > 0);
	text = shf_del(shf);
	ck_assert_ptr_nonnull(text);
	free(text);
	ck_assert_msg(proc_gone_within(mon, 1500), "monitor stayed");
}

START_TEST(test_sigchld_ignored)
{
	attach_with_sigchld(SIG_IGN, "sigign");
}
END_TEST

START_TEST(test_sigchld_handler)
{
	attach_with_sigchld(reap_all, "sighandler");
}
END_TEST

/*
 * A monitor that never reports (this program, started as the monitor,
 * sleeps; see main()): ETIMEDOUT after about 2 s, and no child is left.
 * The table the call made stays with the caller as its owner (shf gc
 * removes it once the caller is gone; others may have attached it
 * meanwhile).
 */
START_TEST(test_monitor_timeout)
{
	char name[64], self[PATH_MAX];
	struct shf_stats st;
	double t0, ms;
	ssize_t n;
	SHF *shf, *mine;
	int status;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	setenv("SHF_MONITOR", self, 1);

	shf_test_name(name, sizeof(name), "tmo");
	t0 = now_ms();
	errno = 0;
	shf = shf_attach(SHM, name, 1);
	ms = now_ms() - t0;
	ck_assert_ptr_null(shf);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_msg(ms > 1900 && ms < 2000 + 1000 * shf_test_multiplier(),
		      "gave up after %.0f ms", ms);
	ck_assert_int_eq(waitpid(-1, &status, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	mine = shf_attach_existing(SHM, name);
	ck_assert_ptr_nonnull(mine);
	ck_assert_uint_eq(shf_get_stats(mine, &st, sizeof(st)), SHF_RET_OK);
	ck_assert_int_eq(st.owner_pid, getpid());
	free(shf_del(mine));
}
END_TEST

/* A test case of s whose tests run between setup() and teardown(). */
static TCase *fixture_tcase(Suite *s, const char *name)
{
	TCase *tc = shf_test_tcase(s, name, 30);

	tcase_add_checked_fixture(tc, setup, teardown);
	return tc;
}

static Suite *monitor_suite(void)
{
	Suite *s = suite_create("monitor");

	shf_test_add_tests(fixture_tcase(s, "death"), test_sigkill,
			   test_sigterm, test_exit, test_exec);

	shf_test_add_tests(fixture_tcase(s, "lifecycle"),
			   test_del_monitor_exits, test_owner_in_stats,
			   test_relative_dir, test_monitor_killed,
			   test_recreated_name, test_replaced_monitor_exits,
			   test_sweep, test_owner_other_time_namespace,
			   test_owner_first_thread_exited,
			   test_sweep_beside_a_cutter,
			   test_one_monitor_per_table,
			   test_monitor_follows_the_name,
			   test_retired_monitor_reaped);

	shf_test_add_tests(fixture_tcase(s, "errors"), test_no_monitor,
			   test_sigchld_ignored, test_sigchld_handler,
			   test_monitor_timeout, test_name_changed_hands);

	return s;
}

int main(int argc, char **argv)
{
	/* Started as a monitor by test_monitor_timeout: never report. */
	if (argc > 1 && !strcmp(argv[1], "--pid")) {
		sleep(30);
		return 0;
	}
	shf_test_init();
	set_monitor_env();
	return shf_test_main(monitor_suite());
}
