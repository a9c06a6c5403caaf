// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * handle.c - a table's file and the handle to it: attaching (making the
 * file with create.c where there is none), checking what an attach finds
 * against its own size, mapping it once for the file's whole possible
 * growth, detaching and removing it; the settings a table keeps.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "table.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
#ifdef SHF_TEST_HOOKS
	shf_crash_init();
#endif
}

SHF_EXPORT void shf_init(void)
{
	pthread_once(&init_once, do_init);
	/* before a later unshare(CLONE_NEWTIME) could hide it (proc.c) */
	shf_proc_init();
}

static int name_ok(const char *name)
{
	size_t n;

	if (!name)
		return 0;
	n = strlen(name);
	if (n == 0 || n > 200 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, "..") || name[0] == '.')
		return 0;
	return 1;
}

static int hdr_check(const struct hdr *hd, uint64_t fsize)
{
	if (fsize < sizeof(struct hdr) || hd->magic != SHF_MAGIC) {
		errno = EBADMSG;
		return -1;
	}
	if (hd->layout != SHF_LAYOUT || hd->sig != SIG_VALUE) {
		errno = EPROTO;
		return -1;
	}
	if (hd->nshards != NSHARDS || hd->shards_off != SHARDS_OFF ||
	    hd->data_start < SHARDS_OFF + NSHARDS * sizeof(struct shard) ||
	    hd->data_start > fsize ||
	    (hd->data_start & (PAGE - 1)) ||
	    atomic_load(&hd->file_size) > fsize ||
	    atomic_load(&hd->file_used) > atomic_load(&hd->file_size) ||
	    atomic_load(&hd->file_used) < hd->data_start ||
	    (hd->fixed_set && (hd->fixed_klen > (1u << 30) ||
			       hd->fixed_vlen > (1u << 30)))) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

static _Atomic unsigned allow_shared;

SHF_EXPORT void shf_set_allow_shared(uint32_t allow)
{
	atomic_store(&allow_shared, allow ? 1u : 0u);
}

/*
 * Who may have written the file: its owner must be the caller (root
 * included) and nobody else may write it, unless the caller said that it
 * trusts others' tables (shf_set_allow_shared()).  Otherwise another user
 * could pre-create a table under the name and read what goes into it.
 */
static int owner_ok(const struct stat *st)
{
	if (atomic_load(&allow_shared))
		return 1;
	return st->st_uid == geteuid() && !(st->st_mode & S_IWOTH);
}

/*
 * The header, read and checked against the file's size as fstat() gives
 * it after the read (the file never shrinks while a table is sound, so a
 * header that claims more than that is damaged): 0, or -1 with errno.
 */
static int header_read(int fd, struct hdr *hd, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return -1;
	if (!S_ISREG(st->st_mode)) {
		errno = EBADMSG;
		return -1;
	}
	if (!owner_ok(st)) {
		errno = EPERM;
		return -1;
	}
	if ((uint64_t)st->st_size < sizeof(*hd) ||
	    pread(fd, hd, sizeof(*hd), 0) != (ssize_t)sizeof(*hd) ||
	    fstat(fd, st) < 0) {
		errno = EBADMSG;
		return -1;
	}
	return hdr_check(hd, (uint64_t)st->st_size);
}

int shf_table_owner_read(int fd, pid_t *pid, uint64_t *start)
{
	struct hdr a, b;
	struct stat st;
	int i;

	/* the owner's two words, alike in two reads (an owner changes) */
	for (i = 0; i < 8; i++) {
		if (header_read(fd, &a, &st) < 0 || header_read(fd, &b, &st) < 0)
			return -1;
		if (atomic_load(&a.owner_pid) == atomic_load(&b.owner_pid) &&
		    atomic_load(&a.owner_start) == atomic_load(&b.owner_start))
			break;
	}
	if (i == 8) {
		errno = EAGAIN;
		return -1;
	}
	*pid = atomic_load(&a.owner_pid) > 0 ? atomic_load(&a.owner_pid) : 0;
	*start = atomic_load(&a.owner_start);
	return 0;
}

/* TMPFS_MAGIC of <linux/magic.h>: the file systems whose growth is mapped
 * at once (grow.c) */
#define SHF_TMPFS_MAGIC 0x01021994

static SHF *attach_fd(int fd, const char *path, const char *name)
{
	struct hdr hd;
	struct stat st;
	struct statfs sfs;
	SHF *h;
	uint64_t ms;
	void *m = MAP_FAILED;

	if (header_read(fd, &hd, &st) < 0)
		return NULL;
	for (ms = MAP_MAX; ms >= (64ULL << 20); ms /= 2) {
		if (ms < (uint64_t)st.st_size)
			break;
		m = shf_mmap_2m(fd, ms, PROT_READ | PROT_WRITE);
		if (m != MAP_FAILED)
			break;
	}
	if (m == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	/*
	 * 2 MiB pages: fewer page-table levels walked and TLB misses per get.
	 * A tmpfs mounted huge=within_size (or always) gives them to the
	 * space fallocate() reserves (Linux 6.12 on; earlier kernels only
	 * inside the file's old size); on one mounted huge=advise this lets
	 * khugepaged gather the reserved small pages into huge ones later.
	 * huge=never ignores it.
	 */
	madvise(m, ms, MADV_HUGEPAGE);
#endif
	h = calloc(1, sizeof(*h));
	if (!h) {
		munmap(m, ms);
		errno = ENOMEM;
		return NULL;
	}
	h->fd = fd;
	h->lockable = 1;
	h->base = m;
	h->map_size = ms;
	h->populate = fstatfs(fd, &sfs) == 0 && sfs.f_type == SHF_TMPFS_MAGIC;
	h->grow_step = h->populate && !shf_huge_growth(st.st_dev) ? GROW_SMALL
								   : GROW_STEP;
	atomic_store(&h->valid, (uint64_t)st.st_size);
	atomic_store(&h->mapped, (uint64_t)st.st_size);
	atomic_store(&h->map_piece, MAP_PIECE_MAX);
	atomic_store(&h->claim_seen, atomic_load(&hd.file_size));
	h->h = m;
	h->data_start = hd.data_start;
	memcpy(h->secret, hd.hash_secret, SHF_HASH_SECRET);
	h->shards = (struct shard *)(h->base + SHARDS_OFF);
	h->path = strdup(path);
	h->name = strdup(name);
	if (!h->path || !h->name) {
		free(h->path);
		free(h->name);
		munmap(m, ms);
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	h->site.counts = &h->h->locks;
	h->site.dev = (uint64_t)st.st_dev;
	h->site.ino = (uint64_t)st.st_ino;
	h->site.max_wait_ms = LOCK_WAIT_MAX_MS;
	h->reg_id = shf_reg_add(h);
	if (!h->reg_id) {
		free(h->path);
		free(h->name);
		munmap(m, ms);
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	return h;
}

static _Atomic unsigned file_mode = 0600;

SHF_EXPORT void shf_set_file_mode(mode_t mode)
{
	/*
	 * A file that others may write is refused by every attach, its
	 * creator's included (owner_ok()), unless the process trusts such
	 * tables: a table made so would be linked into place, then refused.
	 */
	if ((mode & ~(mode_t)0666) ||
	    ((mode & S_IWOTH) && !atomic_load(&allow_shared))) {
		errno = EINVAL;
		return;
	}
	atomic_store(&file_mode, (unsigned)(mode | 0600));
}

static SHF *do_attach(const char *path, const char *name, int create,
			int *created)
{
	char fname[256];
	int dfd, fd, e, tries, made = 0;
	SHF *h;

	shf_init();
	if (!path || !*path || !name_ok(name)) {
		errno = EINVAL;
		return NULL;
	}
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return NULL;
	snprintf(fname, sizeof(fname), "%s.shf", name);
	for (tries = 0;; tries++) {
		/*
		 * O_NONBLOCK: a file lease that another user took on a name
		 * in a shared directory (F_SETLEASE) held an open for writing
		 * for the lease break time (45 s): now EAGAIN at once.  (No
		 * other effect on a regular file.)
		 */
		fd = openat(dfd, fname,
			    O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0 || errno != ENOENT || !create)
			break;
		fd = table_create(dfd, fname,
				  (mode_t)atomic_load(&file_mode));
		made = fd >= 0;
		/* EEXIST: somebody else won the race: attach theirs */
		if (fd >= 0 || errno != EEXIST || tries >= 16)
			break;
	}
	if (fd < 0) {
		e = errno;
		close(dfd);
		errno = e;
		return NULL;
	}
	h = attach_fd(fd, path, name);
	if (!h) {
		e = errno;
		if (made)
			table_unmake(dfd, fname, fd);
		close(fd);
		close(dfd);
		errno = e;
		return NULL;
	}
	close(dfd);
	if (made && created)
		*created = 1;
	return h;
}

SHF_EXPORT SHF *shf_attach_existing(const char *path, const char *name)
{
	return do_attach(path, name, 0, NULL);
}

/*
 * Name the table's owner (pid, start): the pid goes to 0 first, so that a
 * sweep (shf-monitor --sweep) never reads one owner's pid with another's
 * start time, takes the owner for dead and removes the table.
 */
static void owner_set(SHF *h, int32_t pid, uint64_t start)
{
	atomic_store(&h->h->owner_pid, 0);
	atomic_store(&h->h->owner_start, start);
	atomic_store(&h->h->owner_pid, pid);
}

SHF_EXPORT SHF *shf_attach(const char *path, const char *name,
			   uint32_t delete_upon_process_exit)
{
	int created = 0;
	SHF *h;

	/*
	 * No monitor to start (not installed, $SHF_MONITOR wrong): fail
	 * before a table is made that the call would have to leave behind.
	 */
	if (delete_upon_process_exit && path && *path && name_ok(name) &&
	    shf_monitor_findable() < 0)
		return NULL;
	h = do_attach(path, name, 1, &created);
	if (h && delete_upon_process_exit) {
		pid_t me = getpid();
		/* of the process: its first thread may have exited */
		uint64_t start = shf_proc_group_start_time(me);

		/*
		 * A table this call made is the caller's at once: should the
		 * monitor not start, shf gc (shf-monitor --sweep) removes it
		 * once the caller is gone; it is not removed here, since other
		 * processes may have attached it meanwhile.  A table that was
		 * there changes owner only once the monitor watches, so that a
		 * failed call leaves its owner as it was.
		 */
		if (created)
			owner_set(h, me, start);
		if (shf_monitor_start(h->path, h->name, h->site.dev,
				      h->site.ino) < 0) {
			int e = errno;

			shf_detach(h);
			errno = e;
			return NULL;
		}
		if (!created)
			owner_set(h, me, start);
	}
	return h;
}

SHF_EXPORT void shf_detach(SHF *h)
{
	if (!h)
		return;
	getstat_flush_handle(h);
	/* the queues' and log's hooks run first (registry.c) */
	shf_reg_remove(h);
	munmap(h->base, h->map_size);
	close(h->fd);
	free(h->path);
	free(h->name);
	free(h);
}

SHF_EXPORT char *shf_del(SHF *h)
{
	char fname[256], *out = NULL;
	struct stat st;
	int dfd, e;

	if (!h) {
		errno = EINVAL;
		return NULL;
	}
	snprintf(fname, sizeof(fname), "%s.shf", h->name);
	dfd = open(h->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto out;
	/* remove only the file this handle is attached to */
	if (fstatat(dfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		struct stat me;

		if (fstat(h->fd, &me) == 0 && me.st_ino == st.st_ino &&
		    me.st_dev == st.st_dev) {
			if (unlinkat(dfd, fname, 0) == 0 &&
			    asprintf(&out, "removed %s/%s (%llu bytes)",
				     h->path, fname,
				     (unsigned long long)st.st_size) < 0) {
				out = NULL;
				errno = ENOMEM;
			}
		} else {
			errno = ESTALE;
		}
	}
	close(dfd);
out:
	e = errno;
	shf_detach(h);
	errno = e;
	return out;
}

const struct shf_lock_site *shf_handle_lock_site(SHF *h)
{
	return &h->site;
}

uint64_t shf_handle_reg_id(SHF *h)
{
	return h->reg_id;
}

int shf_handle_removed(SHF *h)
{
	struct stat st;

	return fstat(h->fd, &st) == 0 && st.st_nlink == 0;
}

SHF_EXPORT void shf_set_is_lockable(SHF *h, uint32_t is_lockable)
{
	if (h)
		h->lockable = is_lockable ? 1 : 0;
}

SHF_EXPORT void shf_set_is_fixed_len(SHF *h, uint32_t key_len,
				     uint32_t val_len)
{
	uint32_t i, n;
	int busy = 0, saved_errno = errno, lock_errno = 0;

	if (!h || !key_len || !val_len || key_len > (1u << 30) ||
	    val_len > (1u << 30)) {
		errno = EINVAL;
		return;
	}
	n = lock_all(h);
	if (n < NSHARDS) {
		busy = -1;
		lock_errno = errno;
	} else if (h->h->fixed_set) {
		if (h->h->fixed_klen != key_len || h->h->fixed_vlen != val_len)
			busy = 1;
	} else {
		for (i = 0; i < NSHARDS; i++)
			if (atomic_load(&h->shards[i].nkeys))
				busy = 1;
		if (!busy) {
			h->h->fixed_klen = key_len;
			h->h->fixed_vlen = val_len;
			barrier();
			h->h->fixed_set = 1;
		}
	}
	unlock_all(h, n);
	/*
	 * errno is the only result: a success leaves it as the caller set
	 * it (a wait for a busy shard's lock may have changed it).
	 */
	if (busy > 0)
		errno = EBUSY;
	else if (busy < 0)
		errno = lock_errno ? lock_errno : EBADMSG;
	else
		errno = saved_errno;
}
