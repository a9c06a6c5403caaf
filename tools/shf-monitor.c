/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-monitor - remove a table when the process that owns it dies.
 *
 * Watch mode is started by libshf (lib/monitor.c) for every
 * shf_attach(path, name, 1); sweep mode is for people and timers: it
 * removes every table in a directory whose recorded owner is dead.
 * See shf-monitor(1).
 *
 * The owner recorded in a table comes with shf_get_stats(); whether that
 * process still runs is read from /proc by the library's own reader
 * (lib/proc.c, linked in: start times compare across time namespaces),
 * the same way in both modes.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "shf.h"
#include "shf-escape.h"
#include "shf-internal.h"

#define EXIT_USAGE 2

/* Polling periods where the kernel cannot tell us (no pidfd, no inotify). */
#define ALIVE_POLL_MS 10
#define FILE_POLL_MS 1000

/* A sweep leaves younger temporary files of table creators alone. */
#define TEMP_MIN_AGE_S 60

struct watch {
	pid_t pid;
	uint64_t start;
	const char *dir;
	const char *file;
	dev_t dev;
	ino_t ino;
	int ready_fd;
	int dir_fd;
	int pid_fd;
	int ino_fd;
};

static const char *prog = "shf-monitor";

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	*v = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/*
 * Start time and state of a process (lib/proc.c: the start time without
 * this namespace's boot time offset, as the library records it).  0, or
 * -1 with errno (ESRCH where it is gone).
 */
static int proc_stat(pid_t pid, uint64_t *start, char *state)
{
	uint32_t flags;

	if (shf_proc_stat(pid, state, &flags, start) == 0)
		return 0;
	if (errno == ENOENT)
		errno = ESRCH;
	return -1;
}

/*
 * Is the process pid, started at start, alive?  Zombies are not, but for
 * a leader that called pthread_exit(), which shows 'Z' while the
 * process's other threads go on (shf_proc_alive(), group).
 */
static int owner_alive(pid_t pid, uint64_t start)
{
	uint64_t t;
	char state;

	if (kill(pid, 0) < 0 && errno != EPERM)
		return 0;
	if (proc_stat(pid, &t, &state) < 0)
		return errno != ESRCH; /* no /proc: trust kill() */
	/* /proc read again only for a zombie: its other threads */
	return t == start && state != 'X' &&
	       (state != 'Z' || shf_proc_alive(pid, 1, start));
}

/*
 * Tell the library: one byte, an errno value or 0 once we watch; after a
 * 0, in the same write, our pid (4 bytes, host order), by which the
 * library sends us away (SIGTERM) once the monitor of the process's next
 * attach of the same table name watches.
 */
static void report(struct watch *w, int err)
{
	unsigned char b[5] = { (unsigned char)(err > 0 && err < 256 ? err :
					       (err ? EIO : 0)) };
	int32_t me = (int32_t)getpid();
	size_t n = 1;

	if (w->ready_fd < 0)
		return;
	if (!b[0]) {
		memcpy(b + 1, &me, 4);
		n = 5;
	}
	/* The library gave up waiting (EPIPE): we are not wanted. */
	if (write(w->ready_fd, b, n) != (ssize_t)n)
		_exit(EXIT_FAILURE);
	close(w->ready_fd);
	w->ready_fd = -1;
}

static __attribute__((noreturn)) void fail(struct watch *w, int err)
{
	report(w, err ? err : EIO);
	_exit(EXIT_FAILURE);
}

/* Is the file still there and still the table we watch? */
static int table_same(const struct watch *w)
{
	struct stat st;

	if (fstatat(w->dir_fd, w->file, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return S_ISREG(st.st_mode) && st.st_dev == w->dev &&
	       st.st_ino == w->ino;
}

static __attribute__((noreturn)) void owner_died(const struct watch *w)
{
	/*
	 * Remove only the table we were told about: one recreated under
	 * the same name by someone else has another inode.
	 */
	if (table_same(w))
		unlinkat(w->dir_fd, w->file, 0);
	_exit(EXIT_SUCCESS);
}

/* Drain inotify; 1 when the file (or its folder) may have changed. */
static int inotify_hit(const struct watch *w)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	int hit = 0;
	ssize_t n;
	char *p;

	for (;;) {
		n = read(w->ino_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return hit;
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED |
					IN_DELETE_SELF | IN_MOVE_SELF))
				hit = 1;
			else if (ev->len && !strcmp(ev->name, w->file))
				hit = 1;
		}
	}
}

static int watch_setup_inotify(struct watch *w)
{
	char path[40];

	w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino_fd < 0)
		return -1; /* e.g. EMFILE: fs.inotify.max_user_instances */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", w->dir_fd);
	if (inotify_add_watch(w->ino_fd, path,
			      IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
				      IN_DELETE_SELF | IN_MOVE_SELF |
				      IN_ONLYDIR) < 0) {
		close(w->ino_fd);
		w->ino_fd = -1;
		return -1;
	}
	return 0;
}

/*
 * Descriptors the caller left without O_CLOEXEC would otherwise stay open
 * for the owner's whole life (a pipe's reader would never see EOF).
 */
static void close_other_fds(int keep)
{
	struct dirent *de;
	uint64_t v;
	DIR *d;
	int fd;

#ifdef SYS_close_range
	if (keep >= 0 && keep < 3)
		keep = -1; /* stays open anyway */
	if (keep < 0 && syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	if (keep >= 0 &&
	    (keep == 3 || syscall(SYS_close_range, 3U, keep - 1U, 0U) == 0) &&
	    syscall(SYS_close_range, keep + 1U, ~0U, 0U) == 0)
		return;
#endif
	d = opendir("/proc/self/fd");
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (parse_u64(de->d_name, &v) < 0 || v > INT_MAX)
			continue;
		fd = (int)v;
		if (fd > 2 && fd != keep && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
}

static __attribute__((noreturn)) void watch(struct watch *w)
{
	struct pollfd pfd[2];
	uint64_t t;
	int n, r, timeout;
	pid_t child;
	char state;

	signal(SIGPIPE, SIG_IGN);
	close_other_fds(w->ready_fd);

	/* Fork once so that the library reaps our first process and the
	 * monitor is re-parented: it never becomes the caller's zombie. */
	child = fork();
	if (child < 0)
		fail(w, errno);
	if (child > 0)
		_exit(EXIT_SUCCESS);
	w->pid_fd = (int)syscall(SYS_pidfd_open, w->pid, 0);
	if (w->pid_fd < 0 && errno != ENOSYS)
		fail(w, errno);
	/* The pid may have been reused before pidfd_open: check it is the
	 * process that attached. */
	if (proc_stat(w->pid, &t, &state) < 0)
		fail(w, errno);
	if (t != w->start || state == 'X' ||
	    (state == 'Z' && !shf_proc_alive(w->pid, 1, w->start)))
		fail(w, ESRCH);

	/* dir may be relative to the owner's working folder, which we keep
	 * only until it is open. */
	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0 || chdir("/") < 0)
		fail(w, errno);
	watch_setup_inotify(w); /* without it, look every FILE_POLL_MS */
	if (!table_same(w))
		fail(w, ENOENT);

	report(w, 0);

	for (;;) {
		n = 0;
		if (w->pid_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = w->pid_fd,
						    .events = POLLIN };
		if (w->ino_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = w->ino_fd,
						    .events = POLLIN };
		if (w->pid_fd < 0)
			timeout = ALIVE_POLL_MS;
		else if (w->ino_fd < 0)
			timeout = FILE_POLL_MS;
		else
			timeout = -1;

		r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR)
			_exit(EXIT_FAILURE);
		if (r <= 0) {
			if (w->pid_fd < 0 && !owner_alive(w->pid, w->start))
				owner_died(w);
			if (!table_same(w))
				_exit(EXIT_SUCCESS);
			continue;
		}
		if (w->pid_fd >= 0 && pfd[0].revents)
			owner_died(w);
		if (w->ino_fd >= 0 && pfd[n - 1].revents &&
		    inotify_hit(w) && !table_same(w))
			_exit(EXIT_SUCCESS); /* shf_del() or replaced */
		if (w->pid_fd < 0 && !owner_alive(w->pid, w->start))
			owner_died(w);
	}
}

/*
 * The pid in the name of a table being created, ".<name>.shf.<pid>.<hex>.tmp"
 * (see do_attach() in lib/shf.c), or 0 if name is not one.
 */
static pid_t temp_creator(const char *name)
{
	char buf[NAME_MAX + 1], *p, *q;
	size_t len = strlen(name);
	uint64_t v;

	if (name[0] != '.' || len < 10 || len > NAME_MAX ||
	    strcmp(name + len - 4, ".tmp"))
		return 0;
	memcpy(buf, name, len - 4);
	buf[len - 4] = '\0';
	p = strrchr(buf, '.'); /* .<hex> */
	if (!p || p == buf || !p[1] || strspn(p + 1, "0123456789abcdef") !=
					       strlen(p + 1))
		return 0;
	*p = '\0';
	q = strrchr(buf, '.'); /* .<pid> */
	if (!q || parse_u64(q + 1, &v) < 0 || !v || v > INT_MAX)
		return 0;
	*q = '\0';
	len = strlen(buf);
	if (len <= 5 || strcmp(buf + len - 4, ".shf"))
		return 0;
	return (pid_t)v;
}

/*
 * A creator that died before renaming its table in place leaves a
 * temporary file that nobody can attach: remove it.  A reused pid keeps
 * it; so does youth (a creator in another pid namespace).
 */
static void sweep_temp(int fd, const char *dir, const char *name, pid_t pid)
{
	struct stat st;

	if (kill(pid, 0) < 0 && errno == ESRCH &&
	    fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_mtime < time(NULL) - TEMP_MIN_AGE_S &&
	    unlinkat(fd, name, 0) == 0)
		printf("removed %s/%s (creator pid %ld is gone)\n",
		       shf_esc(dir), shf_esc(name), (long)pid);
}

/*
 * The owner recorded in the table file name of the directory open on fd,
 * which must still be the file st describes: its pid, or 0 if none.  Read
 * from the file, not mapped (another user truncating a table of theirs
 * would have this process fault), and through fd, not the directory's
 * path (which may lead elsewhere by now).
 */
static pid_t table_owner(int fd, const char *name, const struct stat *st,
			 uint64_t *start)
{
	struct stat st2;
	pid_t pid = 0;
	int tfd;

	/* O_NONBLOCK: neither a FIFO nor another user's file lease waits */
	tfd = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (tfd < 0)
		return 0; /* gone meanwhile */
	if (fstat(tfd, &st2) < 0 || st2.st_dev != st->st_dev ||
	    st2.st_ino != st->st_ino ||
	    shf_table_owner_read(tfd, &pid, start) < 0)
		pid = 0; /* replaced meanwhile, or not a table */
	close(tfd);
	return pid;
}

/*
 * Remove the table file name (NAME.shf) if its owner is dead; -1 if that
 * failed.  The owner record is believed only where nobody but the file's
 * owner (and root) can have written it: a file that group or others may
 * write is skipped (another user could have put a dead pid there to have
 * root remove a table that user may write but not delete).
 */
static int sweep_table(int fd, const char *dir, const char *name)
{
	struct stat st, st2;
	uint64_t start = 0;
	pid_t pid;

	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		printf("skipped %s/%s (group or others may write it: its owner "
		       "record is not trusted)\n", shf_esc(dir), shf_esc(name));
		return 0;
	}
	pid = table_owner(fd, name, &st, &start);
	if (pid <= 0 || owner_alive(pid, start))
		return 0;

	/* Still the file whose owner we read? */
	if (fstatat(fd, name, &st2, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
	    (st2.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	if (unlinkat(fd, name, 0) < 0) {
		fprintf(stderr, "%s: %s/%s: %s\n", prog, shf_esc(dir),
			shf_esc(name), strerror(errno));
		return -1;
	}
	printf("removed %s/%s (owner pid %ld is gone)\n", shf_esc(dir),
	       shf_esc(name), (long)pid);
	return 0;
}

/* Remove the tables in dir whose owner is dead; 0, or -1 if dir fails. */
static int sweep(const char *dir)
{
	struct dirent *de;
	size_t len;
	int fd, ret = 0;
	DIR *d;
	pid_t pid;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		fprintf(stderr, "%s: %s: %s\n", prog, shf_esc(dir),
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	shf_init();
	/* Other users' tables too (their owner records are checked above:
	 * only a file its owner alone may write is believed). */
	shf_set_allow_shared(1);
	while ((errno = 0, de = readdir(d))) {
		len = strlen(de->d_name);
		pid = temp_creator(de->d_name);
		if (pid > 0)
			sweep_temp(fd, dir, de->d_name, pid);
		else if (len > 4 && de->d_name[0] != '.' &&
			 !strcmp(de->d_name + len - 4, ".shf") &&
			 sweep_table(fd, dir, de->d_name) < 0)
			ret = -1;
	}
	if (errno) {
		fprintf(stderr, "%s: %s: %s\n", prog, shf_esc(dir),
			strerror(errno));
		ret = -1;
	}
	closedir(d);
	if (fflush(stdout) == EOF)
		ret = -1;
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --sweep DIR\n"
		"       %s --pid PID --start-time T --dir DIR --file NAME.shf\n"
		"                   --dev D --ino I [--ready-fd FD]\n"
		"Remove shared hash tables whose owner process is dead.\n"
		"See shf-monitor(1).\n",
		prog, prog);
}

/* An option of watch mode into w; have: the options given (a bit each). */
static void watch_opt(int c, struct watch *w, int *have, int *bad)
{
	uint64_t v = 0;

	switch (c) {
	case 'p':
		*bad |= parse_u64(optarg, &v) < 0 || !v || v > INT_MAX;
		w->pid = (pid_t)v;
		*have |= 1;
		break;
	case 's':
		*bad |= parse_u64(optarg, &w->start) < 0;
		*have |= 2;
		break;
	case 'd':
		w->dir = optarg;
		*have |= 4;
		break;
	case 'f':
		w->file = optarg;
		*bad |= !*optarg || strchr(optarg, '/') ||
			!strcmp(optarg, ".") || !strcmp(optarg, "..");
		*have |= 8;
		break;
	case 'D':
		*bad |= parse_u64(optarg, &v) < 0;
		w->dev = (dev_t)v;
		*have |= 16;
		break;
	case 'I':
		*bad |= parse_u64(optarg, &v) < 0;
		w->ino = (ino_t)v;
		*have |= 32;
		break;
	case 'r':
		*bad |= parse_u64(optarg, &v) < 0 || v > INT_MAX;
		w->ready_fd = (int)v;
		break;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "start-time", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "dev", required_argument, NULL, 'D' },
		{ "ino", required_argument, NULL, 'I' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "sweep", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct watch w = { .ready_fd = -1, .dir_fd = -1, .pid_fd = -1,
			   .ino_fd = -1 };
	const char *sweep_dir = NULL;
	int c, have = 0, bad = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': case 's': case 'd': case 'f': case 'D': case 'I':
		case 'r':
			watch_opt(c, &w, &have, &bad);
			break;
		case 'S':
			sweep_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("shf-monitor (libshf) %s\n", shf_version());
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || bad || (sweep_dir && (have || w.ready_fd >= 0)) ||
	    (!sweep_dir && have != 63)) {
		/* Tell the library, if it is waiting, rather than time out. */
		if (w.ready_fd >= 0)
			report(&w, EINVAL);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sweep_dir)
		return sweep(sweep_dir) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	watch(&w);
}
