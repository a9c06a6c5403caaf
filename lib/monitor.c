/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * monitor.c - start shf-monitor(1), which removes a table when the process
 * that attached it with delete_upon_process_exit dies.
 *
 * The helper is started with posix_spawn() (no shell, no PATH search) from
 * SHF_MONITOR_PATH, fixed at build time.  For tests only, the environment
 * variable SHF_MONITOR names another binary; it is read with secure_getenv()
 * so that a set-user-ID caller never runs a program chosen by its user.
 *
 * The helper forks once and its first process exits at once, so the monitor
 * is re-parented to init (or the nearest subreaper) and never becomes a
 * zombie of the caller; that first process is reaped here.  A caller with a
 * SIGCHLD handler sees one SIGCHLD per monitor started.
 *
 * The monitor reports on a pipe (its fd 3): one byte 0 once it watches the
 * caller (pidfd open, start time checked, table found), with its pid, or
 * an errno value if it gave up.  Waiting for it means that a death right
 * after shf_attach() returns is still caught.  Then the monitor this
 * process started before for the same table, if any, is told to go.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

#ifndef SHF_MONITOR_PATH
#error "SHF_MONITOR_PATH must be defined by the build"
#endif

/* How long the caller waits for the monitor to be ready. */
#define MONITOR_READY_MS 2000

/* The descriptor on which the monitor reports readiness. */
#define MONITOR_READY_FD 3

/*
 * The monitors this process started and that said their pid: once a new
 * one watches a table, the one this process started before for the same
 * table is told to go (SIGTERM: it leaves, the table stays), so that a
 * process that attaches and detaches a table in a loop keeps one monitor
 * of it, not one a turn for its whole life.  (Starting none where one is
 * still there would race with that one leaving: it leaves for good once
 * it sees its name gone, even for a moment.)  A monitor watches a name in
 * a folder, and the file it names: an entry is for all three (a table
 * renamed, or linked under another name, keeps a monitor of its own).
 * Not a fork child's: the monitors watch the process that started them.
 */
struct mon {
	uint64_t dir_dev, dir_ino, dev, ino, start;
	pid_t pid;
	char file[NAME_MAX + 1];
};

static pthread_mutex_t mon_mx = PTHREAD_MUTEX_INITIALIZER;
static struct mon *mons;
static size_t mons_n, mons_cap;
static pthread_once_t mon_once = PTHREAD_ONCE_INIT;

/* the list is whole in a fork child: no other thread is in it meanwhile */
static void mon_atfork_prepare(void)
{
	pthread_mutex_lock(&mon_mx);
}

static void mon_atfork_parent(void)
{
	pthread_mutex_unlock(&mon_mx);
}

static void mon_atfork_child(void)
{
	pthread_mutex_init(&mon_mx, NULL);
	mons_n = 0;
}

static void mon_once_init(void)
{
	pthread_atfork(mon_atfork_prepare, mon_atfork_parent,
		       mon_atfork_child);
}

static int mon_is(const struct mon *m, const struct stat *dst,
		  const char *file, uint64_t dev, uint64_t ino)
{
	return m->dev == dev && m->ino == ino &&
	       m->dir_dev == (uint64_t)dst->st_dev &&
	       m->dir_ino == (uint64_t)dst->st_ino && !strcmp(m->file, file);
}

/* Drop entry i (under mon_mx). */
static void mon_drop(size_t i)
{
	mons[i] = mons[mons_n - 1];
	mons_n--;
}

/* How long a monitor told to go is given to leave, to be reaped. */
#define MON_RETIRE_MS 100

/*
 * Tell monitor m to go, if it is still that process: through a pidfd
 * where there is one (no pid reused between the look and the signal).
 * Where it is this process's child (this process is PID 1 of its
 * namespace, or a subreaper, which the monitor's double fork leads it
 * to), it is reaped once gone, a short wait: never a zombie of ours.
 */
static void mon_retire(const struct mon *m)
{
	int fd = (int)syscall(SYS_pidfd_open, m->pid, 0);

	if (fd >= 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (shf_proc_alive(m->pid, 0, m->start) &&
		    syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) == 0 &&
		    poll(&pfd, 1, MON_RETIRE_MS) == 1)
			waitpid(m->pid, NULL, WNOHANG); /* ECHILD: not ours */
		close(fd);
	} else if (errno != ESRCH && shf_proc_alive(m->pid, 0, m->start)) {
		kill(m->pid, SIGTERM);
		shf_reap(m->pid, (int64_t)shf_clock_ms(CLOCK_MONOTONIC) +
					 MON_RETIRE_MS);
	}
}

/*
 * Note monitor pid, which watches file in the folder of dst, naming the
 * file (dev, ino); the one noted before for the same is told to go.  The
 * pid it said is taken only if that process is in the session of the
 * process spawned (its parent made the session, POSIX_SPAWN_SETSID), so
 * a pid read in another pid namespace, or already reused, is not.  Best
 * effort: a monitor not noted only stays as long as the process.
 */
static void mon_note(const struct stat *dst, const char *file, uint64_t dev,
		     uint64_t ino, pid_t pid, pid_t spawned)
{
	uint64_t start = pid > 0 ? shf_proc_start_time(pid) : 0;
	struct mon *m, old = { 0 };
	int retire = 0;
	size_t i;

	if (!start || strlen(file) > NAME_MAX ||
	    shf_proc_session(pid) != spawned)
		return;
	pthread_once(&mon_once, mon_once_init);
	pthread_mutex_lock(&mon_mx);
	for (i = 0; i < mons_n; i++)
		if (mon_is(&mons[i], dst, file, dev, ino)) {
			old = mons[i];
			retire = 1;
			mon_drop(i);
			break;
		}
	/* full: first the monitors that are gone (tables made and removed) */
	if (mons_n == mons_cap)
		for (i = mons_n; i-- > 0;)
			if (!shf_proc_alive(mons[i].pid, 0, mons[i].start))
				mon_drop(i);
	if (mons_n == mons_cap) {
		size_t cap = mons_cap ? 2 * mons_cap : 8;
		struct mon *p = realloc(mons, cap * sizeof(*p));

		if (!p) {
			pthread_mutex_unlock(&mon_mx);
			return; /* the old one stays too */
		}
		mons = p;
		mons_cap = cap;
	}
	m = &mons[mons_n];
	m->dir_dev = (uint64_t)dst->st_dev;
	m->dir_ino = (uint64_t)dst->st_ino;
	m->dev = dev;
	m->ino = ino;
	m->start = start;
	m->pid = pid;
	strcpy(m->file, file);
	mons_n++;
	pthread_mutex_unlock(&mon_mx);
	if (retire)
		mon_retire(&old);
}

/*
 * The pid a monitor sends after its 0, in the same write (so it is there
 * already; a monitor that sent none is not waited for): or 0.
 */
static pid_t monitor_pid_read(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int32_t pid;
	ssize_t n;

	if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLIN))
		return 0;
	do
		n = read(fd, &pid, 4);
	while (n < 0 && errno == EINTR);
	return n == 4 && pid > 0 ? (pid_t)pid : 0;
}

/*
 * Wait for the monitor's report; 0, or -1 with errno.  *mon: the pid the
 * monitor sent after its 0 (0 where it sent none).
 */
static int monitor_wait_ready(int fd, int64_t deadline, pid_t *mon)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	unsigned char b;
	int64_t left;
	ssize_t n;
	int r;

	for (;;) {
		left = deadline - (int64_t)shf_clock_ms(CLOCK_MONOTONIC);
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		n = read(fd, &b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			/* The monitor exited without a word. */
			errno = ECHILD;
			return -1;
		}
		if (b != 0) {
			errno = b;
			return -1;
		}
		*mon = monitor_pid_read(fd);
		return 0;
	}
}

/* Start prog with its report pipe as fd 3 and /dev/null as 0, 1, 2. */
static int monitor_spawn(const char *prog, char *const argv[], int ready_w,
			 pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int err;

	err = posix_spawn_file_actions_init(&fa);
	if (err)
		return err;
	/* Everything else the library opens is O_CLOEXEC. */
	err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
					       0);
	if (!err)
		err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null",
						       O_WRONLY, 0);
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, ready_w,
						       MONITOR_READY_FD);
	if (!err)
		err = shf_spawn(pid, prog, argv, &fa, SHF_SPAWN_DAEMON);
	posix_spawn_file_actions_destroy(&fa);
	return err;
}

/*
 * A pipe whose write end is not fd 3 (so that dup2() onto 3 clears its
 * CLOEXEC in the monitor): 0, or -1 with errno.
 */
static int monitor_pipe(int *r, int *w)
{
	int p[2], saved;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	*r = p[0];
	*w = p[1];
	if (*w > MONITOR_READY_FD)
		return 0;
	*w = fcntl(p[1], F_DUPFD_CLOEXEC, MONITOR_READY_FD + 1);
	saved = errno;
	close(p[1]);
	if (*w < 0) {
		close(p[0]);
		errno = saved;
		return -1;
	}
	return 0;
}

/*
 * The file the monitor removes: this very one (dev, ino), and no other of
 * its name.  The name is looked up again to give the monitor what it
 * names, so a table deleted and made anew under it since the caller
 * attached is ESTALE: the monitor would watch, and in the end remove,
 * another process's table.
 */
static int monitor_target(const char *dir, const char *name, uint64_t dev,
			  uint64_t ino, char *file, size_t file_size,
			  struct stat *st)
{
	char full[PATH_MAX];

	if (snprintf(file, file_size, "%s.shf", name) >= (int)file_size ||
	    snprintf(full, sizeof(full), "%s/%s", dir, file) >=
		    (int)sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (fstatat(AT_FDCWD, full, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISREG(st->st_mode)) {
		errno = EBADMSG;
		return -1;
	}
	if ((uint64_t)st->st_dev != dev || (uint64_t)st->st_ino != ino) {
		errno = ESTALE;
		return -1;
	}
	return 0;
}

/* The monitor program: $SHF_MONITOR (not for setuid callers), else ours. */
static const char *monitor_prog(void)
{
	const char *prog = secure_getenv("SHF_MONITOR");

	return prog && *prog ? prog : SHF_MONITOR_PATH;
}

int shf_monitor_findable(void)
{
	const char *prog = monitor_prog();
	struct stat st;

	if (stat(prog, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EACCES; /* as execve() says of it */
		return -1;
	}
	return faccessat(AT_FDCWD, prog, X_OK, AT_EACCESS);
}

int shf_monitor_start(const char *dir, const char *name, uint64_t dev,
		      uint64_t ino)
{
	char pid_s[24], start_s[24], dev_s[24], ino_s[24], fd_s[12];
	char file[NAME_MAX + 1];
	const char *prog;
	int r, w, err;
	uint64_t start;
	struct stat st, dst;
	pid_t self, pid, mon = 0;

	if (!dir || !name) {
		errno = EINVAL;
		return -1;
	}
	if (monitor_target(dir, name, dev, ino, file, sizeof(file), &st) < 0)
		return -1;
	/* the folder as the monitor will know it (it opens dir) */
	if (stat(dir, &dst) < 0)
		return -1;
	self = getpid();
	start = shf_proc_group_start_time(self); /* see shf_attach() */
	if (!start)
		return -1;
	prog = monitor_prog();
	if (monitor_pipe(&r, &w) < 0)
		return -1;
	snprintf(pid_s, sizeof(pid_s), "%ld", (long)self);
	snprintf(start_s, sizeof(start_s), "%" PRIu64, start);
	snprintf(dev_s, sizeof(dev_s), "%ju", (uintmax_t)st.st_dev);
	snprintf(ino_s, sizeof(ino_s), "%ju", (uintmax_t)st.st_ino);
	snprintf(fd_s, sizeof(fd_s), "%d", MONITOR_READY_FD);
	{
		char *const argv[] = {
			(char *)"shf-monitor",
			(char *)"--pid", pid_s,
			(char *)"--start-time", start_s,
			(char *)"--dir", (char *)dir,
			(char *)"--file", file,
			(char *)"--dev", dev_s,
			(char *)"--ino", ino_s,
			(char *)"--ready-fd", fd_s,
			NULL
		};

		err = monitor_spawn(prog, argv, w, &pid);
	}
	close(w);
	if (err) {
		close(r);
		errno = err;
		return -1;
	}
	err = monitor_wait_ready(r,
				 (int64_t)shf_clock_ms(CLOCK_MONOTONIC) +
					 MONITOR_READY_MS,
				 &mon) < 0 ? errno : 0;
	/* On failure, closing the pipe makes a late monitor give up. */
	close(r);
	/* the one before goes only while this one is still there */
	if (!err)
		mon_note(&dst, file, dev, ino, mon, pid);
	/* Its first process exits right after forking: a short grace. */
	shf_reap(pid, (int64_t)shf_clock_ms(CLOCK_MONOTONIC) + 100);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}
