// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * proc.c - what /proc tells of another process: its state, flags and
 * start time (to tell it from a later one with the same pid), read the
 * same way by every part of libshf that judges whether a process it
 * names in shared memory is still there (lock words, claims, queue slots,
 * the log's reader, leases, a table's owner, shf-monitor, the near-cache
 * daemon).  Start times are given without the boot time offset of the
 * reader's time namespace (time_namespaces(7)), so that two processes in
 * different namespaces agree on a third's.  And this process's own
 * generation, which tells a child (of fork(), _Fork() or clone()) from
 * its parent.  Calls nothing else of libshf's.  See shf-internal.h,
 * section proc.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "shf-internal.h"

/*
 * The boot time offset of this process's time namespace, in clock ticks.
 * /proc/self/timens_offsets shows those of the namespace its children
 * get (ns/time_for_children): its own, unless it called
 * unshare(CLONE_NEWTIME) since.  So the file is read only while the two
 * are one namespace, and what it said is kept with that namespace's
 * inode: a process that unshares later keeps its own offset (shf_init()
 * reads it first), and a child of fork() living in the new namespace, or
 * a process moved by setns(), finds another inode and reads again.
 * Threads of a process share their time namespace (setns() into one
 * needs a single thread), so whoever stores stores the same pair.
 */
static _Atomic uint64_t off_ns; /* inode of off_val's namespace; 0 none */
static _Atomic int64_t off_val;

static uint64_t ns_inode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The offsets file's boottime line: 0 and *off, or -1 (not known). */
static int boot_offset_read(int64_t *off)
{
	FILE *f = fopen("/proc/self/timens_offsets", "re");
	long hz = sysconf(_SC_CLK_TCK);
	long long sec, nsec;
	char line[128];

	*off = 0;
	if (!f)
		return errno == ENOENT ? 0 : -1; /* ENOENT: no offsets */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "boottime %lld %lld", &sec, &nsec) == 2 &&
		    hz > 0 && hz <= 1000000000L)
			*off = (int64_t)(sec * hz + nsec / (1000000000LL / hz));
	fclose(f);
	return 0;
}

static int64_t boot_offset(void)
{
	uint64_t self = ns_inode("/proc/self/ns/time");
	int64_t off;

	if (!self)
		return 0; /* no time namespaces (or no /proc): no offset */
	if (atomic_load_explicit(&off_ns, memory_order_acquire) == self)
		return atomic_load_explicit(&off_val, memory_order_relaxed);
	/*
	 * Unshared since, with nothing read before: this namespace's offsets
	 * cannot be read; 0, as in the initial namespace (not kept).
	 */
	if (ns_inode("/proc/self/ns/time_for_children") != self ||
	    boot_offset_read(&off) < 0)
		return 0;
	atomic_store_explicit(&off_val, off, memory_order_relaxed);
	atomic_store_explicit(&off_ns, self, memory_order_release);
	return off;
}

void shf_proc_init(void)
{
	int saved_errno = errno;

	boot_offset();
	errno = saved_errno;
}

uint64_t shf_proc_start_normal(uint64_t shown)
{
	int saved_errno = errno;
	int64_t r = (int64_t)shown - boot_offset();

	errno = saved_errno;
	/* never 0, which the callers read as "not known" */
	return r > 0 ? (uint64_t)r : 1;
}

/*
 * Fields of /proc/PID/stat: state (3), session (6), flags (9), start
 * time (22); each out pointer may be NULL.
 */
static int proc_stat_read(pid_t pid, char *state, pid_t *session,
			  uint32_t *flags, uint64_t *start)
{
	char path[32], buf[1024], *p, *end;
	unsigned long long v;
	int fd, field;
	size_t len = 0;
	ssize_t n;

	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* ESRCH: the process went away after open(). */
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';

	/*
	 * "pid (comm) state ppid ...": comm may hold spaces and ')', so the
	 * fields start after the last ')'.  Field 3 (state) comes first,
	 * session is field 6, flags are field 9, starttime is field 22.
	 */
	p = strrchr(buf, ')');
	if (!p) {
		errno = EIO;
		return -1;
	}
	p++;
	for (field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p) {
			errno = EIO;
			return -1;
		}
		if (field == 3) {
			if (state)
				*state = *p;
		} else if (field == 6 || field == 9 || field == 22) {
			errno = 0;
			v = strtoull(p, &end, 10);
			if (end == p || errno ||
			    (*end != ' ' && *end != '\n' && *end) ||
			    (field != 22 && v > UINT32_MAX)) {
				errno = EIO;
				return -1;
			}
			if (field == 6 && session)
				*session = (pid_t)v;
			else if (field == 9 && flags)
				*flags = (uint32_t)v;
			else if (field == 22 && start)
				*start = shf_proc_start_normal((uint64_t)v);
		}
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

int shf_proc_stat(pid_t pid, char *state, uint32_t *flags, uint64_t *start)
{
	return proc_stat_read(pid, state, NULL, flags, start);
}

pid_t shf_proc_session(pid_t pid)
{
	int saved_errno = errno;
	pid_t sid = 0;

	if (proc_stat_read(pid, NULL, &sid, NULL, NULL) < 0)
		sid = 0;
	errno = saved_errno;
	return sid;
}

/*
 * The most of /proc/PID/status read: a process in NGROUPS_MAX (65536)
 * supplementary groups has a Groups: line of up to some 704 KiB before
 * Threads:.
 */
#define PROC_STATUS_MAX (1u << 20)

/*
 * Threads: of /proc/PID/status, 0 if unknown.  Read a piece at a time, a
 * line at a time, to the end: a process in many groups has Threads: far
 * past the first 4 KiB (its leader, gone with pthread_exit(), then
 * counted as dead).  A line longer than the buffer is skipped.
 */
static unsigned long proc_threads(pid_t pid)
{
	char path[40], buf[4096], *line, *nl;
	size_t have = 0, total = 0;
	unsigned long n = 0;
	int fd, skip = 0; /* in the rest of a line too long to keep */
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (total < PROC_STATUS_MAX) {
		len = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		total += (size_t)len;
		have += (size_t)len;
		buf[have] = '\0';
		line = buf;
		while ((nl = memchr(line, '\n', have))) {
			if (!skip && !strncmp(line, "Threads:", 8)) {
				n = strtoul(line + 8, NULL, 10);
				goto out;
			}
			skip = 0;
			have -= (size_t)(nl + 1 - line);
			line = nl + 1;
		}
		if (have == sizeof(buf) - 1) {
			skip = 1;
			have = 0;
		} else {
			memmove(buf, line, have);
		}
	}
out:
	close(fd);
	return n;
}

/*
 * A process in state (of /proc/PID/stat) that will never act again: a
 * zombie, or dying.  group: a leader that called pthread_exit() shows 'Z'
 * while the process's other threads go on, and counts as alive while it
 * has more threads than itself.
 */
static int proc_gone(pid_t pid, char state, int group)
{
	return state == 'X' ||
	       (state == 'Z' && (!group || proc_threads(pid) < 2));
}

/* Start time of pid (see shf_proc_start_time()); group: as proc_gone(). */
static uint64_t proc_start(pid_t pid, int group)
{
	int saved_errno = errno;
	uint64_t start;
	uint32_t flags;
	char state;

	if (shf_proc_stat(pid, &state, &flags, &start) < 0) {
		if (errno == ENOENT)
			errno = ESRCH;
		return 0;
	}
	if (proc_gone(pid, state, group)) {
		errno = ESRCH;
		return 0;
	}
	errno = saved_errno;
	return start;
}

uint64_t shf_proc_group_start_time(pid_t pid)
{
	return proc_start(pid, 1);
}

int shf_proc_alive(pid_t pid, int group, uint64_t started)
{
	int saved_errno = errno, alive = 1;
	uint64_t start;
	uint32_t flags;
	char state;

	if (pid <= 0)
		return 0;
	/* the kernel's word first: ESRCH, and only that, is gone for sure */
	if (kill(pid, 0) < 0 && errno == ESRCH)
		alive = 0;
	else if (shf_proc_stat(pid, &state, &flags, &start) == 0)
		/* a zombie; or another process of the pid, both times known */
		alive = !proc_gone(pid, state, group) &&
			(!started || start == started);
	errno = saved_errno;
	return alive;
}

uint64_t shf_proc_start_time(pid_t pid)
{
	return proc_start(pid, 0);
}

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18 /* Linux 4.14 */
#endif

/*
 * This process's generation (shf-internal.h): a word of a page that reads
 * as zero in any child (MADV_WIPEONFORK), set to the process's pid by the
 * first thread that asks; on a kernel without it, a word that stays 1.
 */
static const uint64_t proc_gen_one = 1;
const uint64_t *shf_proc_gen_word = &proc_gen_one;
static pthread_once_t proc_gen_once = PTHREAD_ONCE_INIT;

static void proc_gen_page(void)
{
	uint64_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	*p = (uint64_t)getpid();
	if (madvise(p, 4096, MADV_WIPEONFORK) == 0) {
		__atomic_store_n(&shf_proc_gen_word, p, __ATOMIC_RELEASE);
		return;
	}
	munmap(p, 4096);
}

uint64_t shf_proc_gen(void)
{
	const uint64_t *w;
	uint64_t gen;

	pthread_once(&proc_gen_once, proc_gen_page);
	/* a child's page reads 0: it starts a generation of its own */
	w = __atomic_load_n(&shf_proc_gen_word, __ATOMIC_ACQUIRE);
	gen = __atomic_load_n(w, __ATOMIC_RELAXED);
	if (!gen) {
		gen = (uint64_t)getpid();
		__atomic_store_n((uint64_t *)w, gen, __ATOMIC_RELAXED);
	}
	return gen;
}
