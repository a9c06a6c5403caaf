// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache-side.c - the sidecar file of a near-cache, <dir>/<name>.shfnc:
 * made atomically (written under a temporary name, then linked into
 * place, so that racing creators end up with one file), opened without
 * following symbolic links, and checked (type, size, owner, magic,
 * layout) before it is mapped.  Also clocks and /proc start times.  Uses libc
 * only, so that shf(1) can link it for "shf stat".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nearcache-internal.h"

_Static_assert(sizeof(struct nc_side) <= NC_SIDE_SIZE,
	       "the sidecar's layout must fit its page");
_Static_assert(offsetof(struct nc_side, gen) == 64, "gen on line 1");
_Static_assert(offsetof(struct nc_side, synced_ms) == 128, "clocks on line 2");
_Static_assert(offsetof(struct nc_side, ctr) == 256, "counters on line 4");
_Static_assert(offsetof(struct nc_side, sid) == 192, "daemon on line 3");

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t nc_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

uint64_t nc_mono_late_ms(void)
{
	static uint64_t res_ms; /* the coarse clock's tick, rounded up */
	struct timespec ts;
	uint64_t r = __atomic_load_n(&res_ms, __ATOMIC_RELAXED);

	if (!r) {
		if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) < 0)
			return nc_mono_ms();
		r = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
		     999999u) / 1000000u + 1;
		__atomic_store_n(&res_ms, r, __ATOMIC_RELAXED);
	}
	return clock_ms(CLOCK_MONOTONIC_COARSE) + r;
}

uint64_t nc_real_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int nc_name_ok(const char *name)
{
	size_t n;

	if (!name)
		return 0;
	n = strlen(name);
	return n > 0 && n <= 200 && !strchr(name, '/') && name[0] != '.';
}

int nc_side_path(char *buf, size_t size, const char *dir, const char *name)
{
	int n;

	if (!dir || !*dir || !nc_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(buf, size, "%s/%s%s", dir, name, NC_SUFFIX);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

void nc_str_copy(char *dst, size_t dsize, const char *src, size_t ssize)
{
	size_t i;

	if (!dsize)
		return;
	/* Byte by byte: the daemon may be writing it (a new epoch); the
	 * callers check the epoch again afterwards. */
	for (i = 0; i + 1 < dsize && i < ssize; i++) {
		char c = __atomic_load_n(&src[i], __ATOMIC_RELAXED);

		if (!c)
			break;
		dst[i] = c;
	}
	dst[i] = '\0';
}

void nc_str_set(char *dst, size_t dsize, const char *src)
{
	size_t i;

	if (!dsize)
		return;
	for (i = 0; src && src[i] && i + 1 < dsize; i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
	for (; i < dsize; i++)
		__atomic_store_n(&dst[i], 0, __ATOMIC_RELAXED);
}

/* The table's file <dir>/<name>.shf, if it is one: 0, or -1. */
static int table_stat(const char *dir, const char *name, struct stat *st)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s.shf", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, st) < 0 ||
	    !S_ISREG(st->st_mode))
		return -1;
	return 0;
}

/*
 * Mode and group of a new sidecar: the table's, so that whoever may use
 * the table may use its near-cache (owner read and write always).  A
 * file takes its maker's primary group, so the group is set from the
 * table's (side_group()); -1 for none.
 */
static mode_t side_mode(const char *dir, const char *name, gid_t *gid)
{
	struct stat st;

	*gid = (gid_t)-1;
	if (table_stat(dir, name, &st) < 0)
		return 0600;
	*gid = st.st_gid;
	return (st.st_mode & 0666) | 0600;
}

/*
 * Give the new sidecar (fd, of the mode given) the table's group.  A maker
 * who may not (not a member of it, no CAP_CHOWN) gives the group the file
 * got what others may do, no more: the table never let that group in.
 */
static int side_group(int fd, gid_t gid, mode_t *mode)
{
	struct stat st;
	int e = errno;

	if (gid == (gid_t)-1 || !(*mode & 0060))
		return 0;
	if (fstat(fd, &st) < 0)
		return -1;
	/* the group the file got may do what others may, no more */
	if (st.st_gid != gid && fchown(fd, (uid_t)-1, gid) < 0)
		*mode = (*mode & ~(mode_t)0070) | ((*mode & 0007) << 3);
	errno = e;
	return 0;
}

static int side_create(const char *dir, const char *name, const char *path)
{
	static unsigned counter;
	struct nc_side *s;
	char tmp[PATH_MAX];
	gid_t gid;
	mode_t mode = side_mode(dir, name, &gid);
	int fd, n, e;

	n = snprintf(tmp, sizeof(tmp), "%s/.%s%s.%ld.%u.tmp", dir, name,
		     NC_SUFFIX, (long)getpid(),
		     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0)
		return -1;
	s = calloc(1, NC_SIDE_SIZE);
	if (!s) {
		e = ENOMEM;
		goto fail;
	}
	s->magic = NC_MAGIC;
	s->layout = NC_LAYOUT;
	s->size = NC_SIDE_SIZE;
	/* Epochs never repeat, even for a sidecar made anew beside a table
	 * that still holds values of the old one's: start at the clock. */
	s->gen = NC_GEN(nc_real_ms(), SHF_NC_DOWN);
	s->stale_ms = 3 * NC_PING_MS_DEFAULT;
	s->ping_ms = NC_PING_MS_DEFAULT;
	/* The umask must not take the table's group bits away (set after
	 * the group: a chown may clear set-id bits, never these). */
	errno = 0;
	if (side_group(fd, gid, &mode) < 0 || fchmod(fd, mode) < 0 ||
	    pwrite(fd, s, NC_SIDE_SIZE, 0) != (ssize_t)NC_SIDE_SIZE) {
		e = errno ? errno : EIO;
		if (e == EFBIG)
			e = ENOSPC;
		free(s);
		goto fail;
	}
	free(s);
	/* link(2) never replaces: a racing creator's file wins, and ours
	 * goes away. */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		e = errno;
		goto fail;
	}
	unlink(tmp);
	close(fd);
	return 0;
fail:
	unlink(tmp);
	close(fd);
	errno = e;
	return -1;
}

/*
 * May the sidecar (st) be trusted?  It tells readers where Redis and the
 * daemon are, so one that another user made in a world-writable /dev/shm
 * could have them fill the table from a server of that user's.  Its
 * maker must be one who may write the table anyway: the table's owner
 * (which shf_attach() trusted; with no table, the caller), the caller, or
 * a member of a group that may write the table (side_create() gave the
 * sidecar the table's group, which only a member or root may do, or a
 * directory's set-group-ID bit, which the directory's owner chose); and
 * others may write it only where they may write the table.
 */
static int side_trusted(const struct stat *st, const char *dir,
			const char *name)
{
	struct stat tst;

	if (table_stat(dir, name, &tst) < 0) {
		tst.st_uid = geteuid();
		tst.st_mode = 0600;
	}
	if ((st->st_mode & S_IWOTH) && !(tst.st_mode & S_IWOTH))
		return 0;
	return st->st_uid == tst.st_uid || st->st_uid == geteuid() ||
	       ((tst.st_mode & S_IWGRP) && st->st_gid == tst.st_gid);
}

int nc_side_open(struct nc_map *m, const char *dir, const char *name,
		 int create, int writable)
{
	char path[PATH_MAX];
	struct stat st;
	struct nc_side *s;
	int fd, e, tries;

	m->side = NULL;
	m->fd = -1;
	if (nc_side_path(path, sizeof(path), dir, name) < 0)
		return -1;
	for (tries = 0;; tries++) {
		/*
		 * O_NONBLOCK: a FIFO that another user put in the sidecar's
		 * place (in a world-writable /dev/shm) would hold a
		 * read-only open for ever; the fstat() below refuses it.
		 */
		fd = open(path,
			  (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW |
				  O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0 || errno != ENOENT || !create || tries == 2)
			break;
		if (side_create(dir, name, path) < 0)
			return -1;
	}
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		e = errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != (off_t)NC_SIDE_SIZE) {
		e = EBADMSG;
		goto fail;
	}
	if (!side_trusted(&st, dir, name)) {
		e = EPERM;
		goto fail;
	}
	s = mmap(NULL, NC_SIDE_SIZE, PROT_READ | (writable ? PROT_WRITE : 0),
		 MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		e = errno;
		goto fail;
	}
	if (nc_load(&s->magic) != NC_MAGIC ||
	    nc_load32(&s->size) != NC_SIDE_SIZE) {
		munmap(s, NC_SIDE_SIZE);
		e = EBADMSG;
		goto fail;
	}
	if (nc_load32(&s->layout) != NC_LAYOUT) {
		munmap(s, NC_SIDE_SIZE);
		e = EPROTO;
		goto fail;
	}
	m->side = s;
	m->fd = fd;
	return 0;
fail:
	close(fd);
	errno = e;
	return -1;
}

int nc_track_addr(int side_fd, struct sockaddr_un *sa, unsigned *len)
{
	struct stat st;
	int n;

	if (fstat(side_fd, &st) < 0)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* Abstract: sun_path[0] is 0; no file to leave behind. */
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
		     "shf-nearcache/%llx/%llx", (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino);
	*len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  (size_t)n);
	return 0;
}

void nc_side_close(struct nc_map *m)
{
	if (m->side)
		munmap(m->side, NC_SIDE_SIZE);
	if (m->fd >= 0)
		close(m->fd);
	m->side = NULL;
	m->fd = -1;
}
