// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * sync.c - process-shared synchronisation in memory that other processes
 * write: the library's only futex calls, and the look at a lock's holder
 * (does it map the lock's file?) that lock.c's lock takes.  Knows nothing
 * of tables; a lock's "site" says which file it lives in and where to
 * count waits and recoveries.  See shf-internal.h, section sync.c.  (The
 * glibc robust mutexes that it wrapped are gone: their unlock writes
 * through words inside them, which another process may change.)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

int shf_futex_wait(uint32_t *addr, uint32_t val, int timeout_ms)
{
	struct timespec ts, *tp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tp = &ts;
	}
	/* Shared futex: no FUTEX_PRIVATE_FLAG, the waker is elsewhere. */
	return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, tp, NULL, 0);
}

void shf_futex_wake(uint32_t *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

int shf_tid_maps_file(pid_t tid, uint64_t dev, uint64_t ino)
{
	char path[40], line[512];
	unsigned int maj, min;
	unsigned long long in;
	unsigned long lines = 0;
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f) && ++lines < (1ul << 20)) {
		/* "start-end perms offset MAJ:MIN inode path" */
		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &in) != 3)
			continue;
		if (in == ino && makedev(maj, min) == dev) {
			found = 1;
			break;
		}
		/* a line longer than the buffer: skip its rest */
		while (!strchr(line, '\n') && fgets(line, sizeof(line), f))
			;
	}
	/* An empty maps file is a kernel thread's, or not readable to us. */
	if (!found && lines == 0) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return found;
}
