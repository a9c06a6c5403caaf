// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-pages.c - does a table's file sit in 2 MiB pages?  A tmpfs gives a
 * file's space huge pages when it is mounted huge=within_size or always
 * (for space that fallocate() adds past the end of a file, from Linux
 * 6.12 on), unless /sys/kernel/mm/transparent_hugepage/shmem_enabled says
 * deny; each get then walks fewer page-table levels and misses the TLB
 * less.
 *
 * The page cache does not tell an unprivileged process the size of a
 * file's pages, so this maps the file read-only, touches one byte of each
 * 2 MiB that is already in memory (mincore(): a touch never makes a page,
 * nor reads one from a disk) and reads back from /proc/self/smaps how much
 * of that mapping the kernel mapped with 2 MiB entries (ShmemPmdMapped,
 * FilePmdMapped): it can only do that for a part the file system holds in
 * a 2 MiB page.
 *
 * A tmpfs mounted without huge= (the usual /dev/shm) holds files in 4 KiB
 * pages; since Linux 6.1, MADV_COLLAPSE gathers a file's pages into 2 MiB
 * ones all the same (shf huge): each process that maps the table at a 2
 * MiB boundary (the library does) then maps each with one entry.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount.h"
#include "shf-tool.h"

#define HUGE_2M (2ULL << 20)
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* kB of the "...PmdMapped:" lines of the mapping at start. */
static int smaps_pmd_kb(uintptr_t start, uint64_t *kb)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char *line = NULL;
	size_t cap = 0;
	int in = 0, seen = 0;

	if (!f)
		return -1;
	*kb = 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned long a, b, ino;
		unsigned long long v, off;
		unsigned int ma, mi;
		char perm[8], key[64];

		/* a mapping's header: start-end perms offset dev inode [path] */
		if (sscanf(line, "%lx-%lx %7s %llx %x:%x %lu", &a, &b, perm, &off,
			   &ma, &mi, &ino) == 7) {
			in = a == start;
			seen |= in;
			continue;
		}
		if (!in || sscanf(line, "%63[^:]: %llu kB", key, &v) != 2)
			continue;
		if (!strcmp(key, "ShmemPmdMapped") ||
		    !strcmp(key, "FilePmdMapped"))
			*kb += v;
	}
	free(line);
	fclose(f);
	if (!seen) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/*
 * Read a byte of each 2 MiB of m whose first page is in memory; a touch
 * past the end (the file may shrink meanwhile) ends it.
 */
static __attribute__((noinline)) void touch_each_2m(char *m, uint64_t size)
{
	struct sigaction sa, old;
	volatile uint64_t off = 0;
	unsigned char in;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (!sigsetjmp(bus_jmp, 1))
		for (; off < size; off += HUGE_2M)
			if (mincore(m + off, 1, &in) == 0 && (in & 1))
				(void)*(volatile const char *)(m + off);
	sigaction(SIGBUS, &old, NULL);
}

/*
 * The table file at path, open read-only, and mapped read-only at a 2 MiB
 * boundary (*len bytes from *m, shf_mmap_2m()); the fd, or -1 with
 * errno.  An empty file maps nothing (*len 0).
 */
static int map_2m(const char *path, uint64_t *size, char **m, uint64_t *len)
{
	struct stat st;
	int fd, e = 0;

	/* O_NONBLOCK: a FIFO put in the table's place does not hang here */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		e = errno;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	*size = (uint64_t)st.st_size;
	*len = (*size + HUGE_2M - 1) & ~(HUGE_2M - 1);
	*m = NULL;
	if (!*len)
		return fd;
	*m = shf_mmap_2m(fd, *len, PROT_READ);
	if (*m == MAP_FAILED) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int shf_tool_huge_collapse(const char *path, uint64_t *done, uint64_t *all)
{
	uint64_t size, len, off;
	char *m;
	int fd = map_2m(path, &size, &m, &len), e = 0;

	*done = *all = 0;
	if (fd < 0)
		return -1;
	/* whole 2 MiB inside the file (the last, partial one stays small) */
	*all = size / HUGE_2M;
	for (off = 0; off < *all * HUGE_2M; off += HUGE_2M) {
		if (madvise(m + off, HUGE_2M, MADV_COLLAPSE) == 0) {
			++*done;
			continue;
		}
		/* no MADV_COLLAPSE (before 6.1, or shmem_enabled deny) */
		if (errno == EINVAL) {
			e = EOPNOTSUPP;
			break;
		}
		/* EAGAIN, ENOMEM: this one stays in small pages */
	}
	if (len)
		munmap(m, len);
	close(fd);
	if (e) {
		errno = e;
		return -1;
	}
	return 0;
}

int shf_tool_huge_bytes(const char *path, uint64_t *huge, uint64_t *size)
{
	uint64_t len, kb;
	char *m;
	int fd = map_2m(path, size, &m, &len), rc = -1, e = 0;

	if (fd < 0)
		return -1;
	*huge = 0;
	if (!len) {
		close(fd);
		return 0;
	}
	touch_each_2m(m, *size);
	if (smaps_pmd_kb((uintptr_t)m, &kb) < 0) {
		e = errno;
		goto out;
	}
	*huge = kb * 1024;
	if (*huge > *size)
		*huge = *size;
	rc = 0;
out:
	munmap(m, len);
	close(fd);
	errno = e;
	return rc;
}
