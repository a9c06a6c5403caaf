// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * create.c - making a table file: its first layout (header, shards, a
 * segment and a one-entry directory each, the hash secret), written whole
 * in a file with no name (O_TMPFILE), or where there is none under a
 * temporary name nobody can guess, and only then linked into place,
 * never over another file.  handle.c attaches what this makes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "table.h"

static _Atomic unsigned tmp_counter;

static int table_init(int fd)
{
	uint64_t data = SHARDS_OFF + ((NSHARDS * sizeof(struct shard) + PAGE - 1) &
				~(uint64_t)(PAGE - 1));
	/* per shard: one segment and a one-entry directory */
	uint64_t size = data + NSHARDS * (SEG_BYTES + 64);
	uint8_t *m;
	struct hdr *hd;
	struct shard *sh;
	uint32_t i;
	int rc;

	size = (size + GROW_STEP - 1) & ~(uint64_t)(GROW_STEP - 1);
	rc = fallocate(fd, 0, 0, (off_t)size);
	if (rc < 0 && errno == EOPNOTSUPP)
		rc = ftruncate(fd, (off_t)size);
	if (rc < 0)
		return -1;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -1;
	hd = (struct hdr *)m;
	hd->layout = SHF_LAYOUT;
	hd->sig = SIG_VALUE;
	hd->shards_off = SHARDS_OFF;
	hd->data_start = data;
	hd->nshards = NSHARDS;
	shf_hash_secret_make(hd->hash_secret);
	atomic_store(&hd->file_size, size);
	hd->alloc_lk.w = 0; /* free */
	hd->region_lk.w = 0;
	sh = (struct shard *)(m + SHARDS_OFF);
	for (i = 0; i < NSHARDS; i++) {
		uint64_t seg = data + (uint64_t)i * SEG_BYTES;
		uint64_t dir = data + (uint64_t)NSHARDS * SEG_BYTES + i * 64ULL;

		sh[i].lk.w = 0; /* free */
		*(uint64_t *)(m + dir) = seg; /* depth 0 */
		atomic_store(&sh[i].dir_word, dir << 6);
	}
	atomic_store(&hd->file_used, data + NSHARDS * (SEG_BYTES + 64ULL));
	atomic_thread_fence(memory_order_seq_cst);
	hd->magic = SHF_MAGIC;
	munmap(m, size);
	return 0;
}

/* A new table in fd: its mode (whatever the umask), its layout. */
static int table_fill(int fd, mode_t mode)
{
	if (fchmod(fd, mode) < 0)
		return -1;
	return table_init(fd);
}

/*
 * The fallback of table_create() where O_TMPFILE is missing: build under a
 * temporary name nobody can guess (a name taken by someone else is simply
 * another try), then rename into place without replacing.
 */
static int table_create_named(int dfd, const char *fname, mode_t mode)
{
	char tname[300];
	uint32_t rnd;
	int fd, e, tries;

	for (tries = 0; tries < 16; tries++) {
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
			rnd = atomic_fetch_add(&tmp_counter, 1) * 2654435761u ^
			      (uint32_t)shf_clock_ns(CLOCK_MONOTONIC);
		snprintf(tname, sizeof(tname), ".%s.%ld.%u.tmp", fname,
			 (long)getpid(), rnd);
		fd = openat(dfd, tname,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return -1;
		if (table_fill(fd, mode) < 0 ||
		    syscall(SYS_renameat2, dfd, tname, dfd, fname,
			    1 /* RENAME_NOREPLACE */) < 0) {
			e = errno;
			unlinkat(dfd, tname, 0);
			close(fd);
			errno = e;
			return -1;
		}
		return fd;
	}
	errno = EEXIST;
	return -1;
}

/*
 * Make dfd/fname a new table, atomically: built in a file with no name
 * (O_TMPFILE), linked into place only once it is whole, never over
 * another file.  The descriptor, or -1 with errno (EEXIST: somebody
 * else's table took the name meanwhile).
 */
int table_create(int dfd, const char *fname, mode_t mode)
{
	char proc[64];
	int fd, e;

	fd = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return table_create_named(dfd, fname, mode); /* no O_TMPFILE */
	if (table_fill(fd, mode) < 0)
		goto fail;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, dfd, fname, AT_SYMLINK_FOLLOW) == 0)
		return fd;
	if (errno != EEXIST) { /* no /proc: a name of its own, then */
		close(fd);
		return table_create_named(dfd, fname, mode);
	}
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/*
 * Remove dfd/fname, a table this call made but could not attach (the
 * process stopped trusting a mode it set meanwhile, no memory left):
 * nobody could use it under its name either.  Only while the name still
 * names that very file.
 */
void table_unmake(int dfd, const char *fname, int fd)
{
	struct stat me, st;

	if (fstat(fd, &me) == 0 &&
	    fstatat(dfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    me.st_dev == st.st_dev && me.st_ino == st.st_ino)
		unlinkat(dfd, fname, 0);
}
