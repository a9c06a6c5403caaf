// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * sync.c - process-shared synchronisation in memory that other processes
 * write: robust mutexes whose holder may die at any instruction, the
 * library's only futex calls, and the looks at a lock's holder that
 * lock.c's own lock shares.  Knows nothing of tables; a lock's "site"
 * says which file it lives in and where to count waits and recoveries.
 * See shf-internal.h, section sync.c.
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

int shf_mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	if (pthread_mutexattr_init(&a))
		return -1;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	if (rc) {
		errno = rc;
		return -1;
	}
	return 0;
}

/*
 * The kernel marks a robust mutex whose owner thread dies (FUTEX_OWNER_DIED)
 * and wakes a waiter.  A lock word can also name a thread that died where
 * the kernel never saw it hold the lock (a table file copied, or kept on a
 * disk across a reboot, while a writer held it), or a live thread that
 * never held it (a word another process wrote).  Waiters look at the owner
 * every SHF_LOCK_LOOK_MS: when that thread no longer exists, or provably does
 * not map the lock's file, they mark the lock as the kernel would, so that
 * the next locker gets EOWNERDEAD and repairs.  (glibc keeps the futex
 * word, owner tid | flags, first in the mutex.)
 */

/*
 * ThreadSanitizer's pthread_mutex_timedlock() does not count a lock taken
 * with EOWNERDEAD as taken (its trylock and lock do): tell it.
 */
#if defined(__SANITIZE_THREAD__)
#define SHF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHF_TSAN 1
#endif
#endif
#ifdef SHF_TSAN
#include <sanitizer/tsan_interface.h>
#define TSAN_OWNERDEAD_LOCKED(m)                   \
	do {                                       \
		__tsan_mutex_pre_lock((m), 0);     \
		__tsan_mutex_post_lock((m), 0, 0); \
	} while (0)
#else
#define TSAN_OWNERDEAD_LOCKED(m) ((void)0)
#endif

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

/*
 * Is tid a kernel thread (its flags in /proc/TID/stat, which anybody may
 * read)?  Kernel threads never hold a lock in a process's memory, and their
 * maps are empty, which shf_tid_maps_file() cannot tell from unreadable.
 */
static int tid_is_kthread(pid_t tid)
{
	uint64_t start;
	uint32_t flags;
	char state;

	return shf_proc_stat(tid, &state, &flags, &start) == 0 &&
	       (flags & SHF_PF_KTHREAD);
}

/*
 * Make a lock whose owner is gone (or never held it) look dead.  Never
 * held it: a thread that provably does not map the lock's file, a kernel
 * thread, or the very thread that waits (the library never takes a lock it
 * holds): words that only another process's writes can have put there.
 */
static void mutex_release_stale(pthread_mutex_t *m,
				const struct shf_lock_site *site)
{
	uint32_t *w = (uint32_t *)(void *)m;
	uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE), nv;
	pid_t tid = (pid_t)(v & FUTEX_TID_MASK);

	if (!tid || (v & FUTEX_OWNER_DIED))
		return;
	if (tid != (pid_t)syscall(SYS_gettid) && !tid_is_kthread(tid) &&
	    (kill(tid, 0) == 0 || errno != ESRCH)) {
		/* alive: only a holder that maps the lock's file is real */
		if (!site || !site->ino ||
		    shf_tid_maps_file(tid, site->dev, site->ino) != 0)
			return;
	}
	nv = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
	if (__atomic_compare_exchange_n(w, &v, nv, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		shf_futex_wake(w, 1);
}

/*
 * The mutex lives in a file that anybody with write access may have
 * damaged, and glibc asserts (aborts) on some impossible kinds, e.g. a
 * priority-protect mutex with a wild ceiling.  So the kind word is checked
 * against the one shf_mutex_init() makes before glibc sees the mutex; a
 * mutex that is not what we made is made again (and counted as a recovery).
 */
#ifdef __GLIBC__
static int mutex_kind = -1;
static pthread_once_t mutex_kind_once = PTHREAD_ONCE_INIT;

static void mutex_kind_init(void)
{
	pthread_mutex_t m;

	if (shf_mutex_init(&m) == 0) {
		mutex_kind = m.__data.__kind;
		pthread_mutex_destroy(&m);
	}
}

static int mutex_sane(pthread_mutex_t *m)
{
	pthread_once(&mutex_kind_once, mutex_kind_init);
	return mutex_kind == -1 ||
	       __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) ==
		       mutex_kind;
}
#else
static int mutex_sane(pthread_mutex_t *m)
{
	(void)m;
	return 1;
}
#endif

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/*
 * Wait for a busy mutex, looking at its owner now and then: soon after
 * the wait begins (locks are held for microseconds, so a wait of
 * milliseconds is already suspect), then every SHF_LOCK_LOOK_MS.
 */
static int mutex_wait(pthread_mutex_t *m, const struct shf_lock_site *site)
{
	static const long first_ms[] = { 2, 20 };
	uint64_t start = shf_clock_ms(CLOCK_MONOTONIC);
	unsigned polls = 0;
	int rc;

	if (site && site->counts)
		count(&site->counts->lock_waits);
	for (;;) {
		long ms = polls < 2 ? first_ms[polls] : SHF_LOCK_LOOK_MS;
		struct timespec ts;

		polls++;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += ms * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		rc = pthread_mutex_timedlock(m, &ts);
		if (rc == EOWNERDEAD)
			TSAN_OWNERDEAD_LOCKED(m);
		if (rc != ETIMEDOUT)
			return rc;
		mutex_release_stale(m, site);
		if (site && site->max_wait_ms &&
		    shf_clock_ms(CLOCK_MONOTONIC) - start >= site->max_wait_ms)
			return ETIMEDOUT;
	}
}

int shf_mutex_lock(pthread_mutex_t *m, const struct shf_lock_site *site)
{
	int rc, remade = 0;

	if (SHF_UNLIKELY(!mutex_sane(m))) {
		if (shf_mutex_init(m) < 0)
			return -1;
		remade = 1;
	}
again:
	rc = pthread_mutex_trylock(m);
	if (rc == EBUSY)
		rc = mutex_wait(m, site);
	if (rc == ENOTRECOVERABLE && !remade) {
		/* an owner died and its successor unlocked without repair */
		if (shf_mutex_init(m) < 0)
			return -1;
		remade = 1;
		goto again;
	}
	if (rc == 0 && !remade)
		return 0;
	if (rc == 0 || rc == EOWNERDEAD) {
		if (rc == EOWNERDEAD)
			pthread_mutex_consistent(m);
		if (site && site->counts)
			count(&site->counts->recoveries);
		return 1;
	}
	errno = rc;
	return -1;
}

int shf_mutex_trylock(pthread_mutex_t *m, const struct shf_lock_site *site)
{
	int rc;

	if (!mutex_sane(m)) {
		errno = EBUSY;
		return -1;
	}
	rc = pthread_mutex_trylock(m);
	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(m);
		if (site && site->counts)
			count(&site->counts->recoveries);
		return 1;
	}
	if (rc) {
		errno = rc;
		return -1;
	}
	return 0;
}

void shf_mutex_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

/*
 * glibc's robust mutexes on 64-bit: the thread's list of held robust
 * mutexes runs through __data.__list of each (prev, next); unlocking one
 * writes through both.  Elsewhere nothing is kept.
 */
#if defined(__GLIBC__) && defined(__x86_64__) || \
	defined(__GLIBC__) && defined(__aarch64__)
#define SHF_ROBUST_LIST 1
#endif

static void mutex_save(pthread_mutex_t *m, struct shf_mutex_save *sv)
{
#ifdef SHF_ROBUST_LIST
	uint32_t v = __atomic_load_n((uint32_t *)&m->__data.__lock,
				     __ATOMIC_RELAXED) & FUTEX_TID_MASK;

	sv->prev = __atomic_load_n(&m->__data.__list.__prev, __ATOMIC_RELAXED);
	sv->next = __atomic_load_n(&m->__data.__list.__next, __ATOMIC_RELAXED);
	/* the lock word names the new holder: this thread */
	if ((int)v != __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED))
		v = (uint32_t)syscall(SYS_gettid);
	sv->tid = v;
#else
	(void)m, (void)sv;
#endif
}

/* Put back what a hostile write may have changed while the lock was held. */
static void mutex_restore(pthread_mutex_t *m, const struct shf_mutex_save *sv)
{
#ifdef SHF_ROBUST_LIST
	uint32_t *w = (uint32_t *)&m->__data.__lock;
	uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

	__atomic_store_n(&m->__data.__list.__prev, sv->prev, __ATOMIC_RELAXED);
	__atomic_store_n(&m->__data.__list.__next, sv->next, __ATOMIC_RELAXED);
	if (SHF_UNLIKELY(__atomic_load_n(&m->__data.__owner,
					 __ATOMIC_RELAXED) != (int)sv->tid))
		__atomic_store_n(&m->__data.__owner, (int)sv->tid,
				 __ATOMIC_RELAXED);
	if (SHF_UNLIKELY(!mutex_sane(m)))
		__atomic_store_n(&m->__data.__kind, mutex_kind,
				 __ATOMIC_RELAXED);
	/* another holder named: glibc would refuse to unlock (EPERM) */
	if (SHF_UNLIKELY((v & (FUTEX_TID_MASK | FUTEX_OWNER_DIED)) != sv->tid))
		__atomic_store_n(w, sv->tid | FUTEX_WAITERS, __ATOMIC_RELAXED);
#else
	(void)m, (void)sv;
#endif
}

int shf_mutex_lock_saved(pthread_mutex_t *m, const struct shf_lock_site *site,
			 struct shf_mutex_save *sv)
{
	uint32_t *w = (uint32_t *)(void *)m;
	uint32_t stuck = __atomic_load_n(&sv->stuck, __ATOMIC_RELAXED);
	int rc;

	/* a holder this process already waited for in vain: no new wait */
	if (SHF_UNLIKELY(stuck) &&
	    __atomic_load_n(w, __ATOMIC_RELAXED) == stuck) {
		rc = shf_mutex_trylock(m, site);
		if (rc < 0 && errno == EBUSY)
			errno = ETIMEDOUT;
	} else {
		rc = shf_mutex_lock(m, site);
	}
	if (rc >= 0) {
		if (SHF_UNLIKELY(stuck))
			__atomic_store_n(&sv->stuck, 0, __ATOMIC_RELAXED);
		mutex_save(m, sv);
	} else if (errno == ETIMEDOUT) {
		uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

		__atomic_store_n(&sv->stuck, v, __ATOMIC_RELAXED);
	}
	return rc;
}

int shf_mutex_trylock_saved(pthread_mutex_t *m,
			    const struct shf_lock_site *site,
			    struct shf_mutex_save *sv)
{
	int rc = shf_mutex_trylock(m, site);

	if (rc >= 0)
		mutex_save(m, sv);
	return rc;
}

void shf_mutex_unlock_saved(pthread_mutex_t *m,
			    const struct shf_mutex_save *sv)
{
	mutex_restore(m, sv);
	pthread_mutex_unlock(m);
}
