// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * lock.c - the library's own lock: one word that names its holder (thread
 * id and start time), for the locks taken on every write (a table's
 * shards).  A waiter looks at the holder now and then (sync.c's looks)
 * and takes over from one that is gone.  See shf-internal.h, section
 * lock.c.
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

__thread uint64_t shf_lock_me SHF_TLS_IE;
__thread uint64_t shf_lock_gen SHF_TLS_IE;

/*
 * A child process runs as another thread: its word is made again.  A
 * child of fork() runs the atfork handler below; one of _Fork() or of a
 * clone() without CLONE_VM runs no handler, and took its parent's word:
 * a lock it took named its parent, and a lock it died holding was never
 * taken over (its parent alive), so every other writer of that shard
 * waited for ever.  So a thread's word goes with the process generation
 * it was made in (shf_lock_gen), which shf_lock_self() compares with the
 * process's (proc.c: shf_proc_gen_now()).
 */
static void lock_me_forget(void)
{
	shf_lock_me = 0;
}

static pthread_once_t lock_atfork_once = PTHREAD_ONCE_INIT;

static void lock_atfork(void)
{
	pthread_atfork(NULL, NULL, lock_me_forget);
}

uint64_t shf_lock_me_slow(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	uint64_t start = shf_proc_start_time(tid);

	pthread_once(&lock_atfork_once, lock_atfork);
	shf_lock_gen = shf_proc_gen();
	shf_lock_me = ((uint64_t)(uint32_t)start << 32) |
		      ((uint32_t)tid & FUTEX_TID_MASK);
	return shf_lock_me;
}

/* The futex: the word's low 32 bits (tid | waiters). */
static uint32_t *lock_futex(struct shf_lock *l)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (uint32_t *)(void *)&l->w + 1;
#else
	return (uint32_t *)(void *)&l->w;
#endif
}

void shf_lock_wake(struct shf_lock *l)
{
	shf_futex_wake(lock_futex(l), 1);
}

/*
 * Is the holder that word v names gone (or never held the lock: a word
 * that only another process's writes can have put there)?  Gone: no
 * such thread, or one with another start time (its number used again),
 * a kernel thread, the caller's number with another start time (a
 * word of another pid namespace, or of a thread that had the number
 * before; the caller's own word is EDEADLK, see shf_lock_wait()), or a
 * live thread that provably does not map the lock's file.
 */
static int lock_holder_gone(uint64_t v, const struct shf_lock_site *site)
{
	pid_t tid = (pid_t)(v & FUTEX_TID_MASK);
	uint64_t start;
	uint32_t flags;
	char state;

	if (tid <= 0 || (uint32_t)tid == (uint32_t)(shf_lock_self() &
						     FUTEX_TID_MASK))
		return 1;
	if (shf_proc_stat(tid, &state, &flags, &start) < 0) {
		if (errno == EIO)
			return 0; /* cannot tell */
		/* no such thread, or no /proc to tell: ask the kernel */
		return kill(tid, 0) < 0 && errno == ESRCH;
	}
	/*
	 * Dead (a zombie until reaped), another thread with its number (a
	 * start time of 0: the holder could not read its own, not told), or
	 * a kernel thread.
	 */
	if (state == 'Z' || state == 'X' || (flags & SHF_PF_KTHREAD) ||
	    ((uint32_t)(v >> 32) && (uint32_t)start != (uint32_t)(v >> 32)))
		return 1;
	/* alive: only a holder that maps the lock's file is real */
	return site && site->ino &&
	       shf_tid_maps_file(tid, site->dev, site->ino) == 0;
}

/*
 * Take the lock from the gone holder of word v (unless it changed
 * meanwhile), keeping the waiters bit for those who may still sleep;
 * counted as a recovery.  1 taken, 0 not.
 */
static int lock_take_over(struct shf_lock *l, uint64_t v, uint64_t me,
			  const struct shf_lock_site *site)
{
	if (!__atomic_compare_exchange_n(&l->w, &v, me | SHF_LOCK_WAITERS, 0,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return 0;
	if (site && site->counts)
		atomic_fetch_add_explicit(&site->counts->recoveries, 1,
					  memory_order_relaxed);
	return 1;
}

/*
 * The lock shows word v, which a wait of this process gave up on: no new
 * wait, one look (a holder's death leaves the word as it was).  1 taken
 * over, -1 with ETIMEDOUT, 0 the word changed meanwhile (wait for it).
 */
static int lock_stuck_look(struct shf_lock *l, uint64_t v, uint64_t me,
			   const struct shf_lock_site *site)
{
	if (!lock_holder_gone(v, site)) {
		errno = ETIMEDOUT;
		return -1;
	}
	return lock_take_over(l, v, me, site);
}

/*
 * The lock shows the caller's own word *me: a libshf call made from code
 * that runs under the lock (an update's callback, a signal handler).
 * Taking it over would run recovery under the holder's feet (an update's
 * new record freed while its callback runs): -1 with EDEADLK.  Unless the
 * word is stale (a child made by a raw clone() or _Fork(), which run no
 * atfork handler, keeps its parent's: its thread id says), made again in
 * *me; or it has no start time (no /proc), which cannot tell a dead
 * holder whose number the caller got: taken over as before.  0: go on.
 */
static int lock_own_word(uint64_t *me)
{
	if ((uint32_t)syscall(SYS_gettid) != (uint32_t)(*me & FUTEX_TID_MASK)) {
		shf_lock_me = 0;
		*me = shf_lock_self();
	} else if (*me >> 32) {
		errno = EDEADLK;
		return -1;
	}
	return 0;
}

/*
 * How long a waiter spins before it sleeps on the futex: longer than a
 * holder keeps the lock for its longest common work (an index segment's
 * split, 8-30 us), since a sleep costs the waiter a wake-up (tens of us on
 * a virtual machine) and the holder a futex wake.  A holder that is not
 * running wastes this much of a core at most.
 */
#define LOCK_SPIN_NS 50000u

/*
 * One turn of a busy lock's waiter: 1 to spin on (a pause made, or time
 * left), 0 once LOCK_SPIN_NS have passed since the clock was first read
 * (after 100 pauses; then every 32), and for the rest of the wait.
 */
static int lock_spin(unsigned *spins, uint64_t *end)
{
	uint64_t ns;

	if (*end == UINT64_MAX)
		return 0;
	if (*spins < 100 || (*spins & 31)) {
		++*spins;
		shf_cpu_relax();
		return 1;
	}
	ns = shf_clock_ns(CLOCK_MONOTONIC);
	if (!*end)
		*end = ns + LOCK_SPIN_NS;
	if (ns < *end) {
		++*spins;
		return 1;
	}
	*end = UINT64_MAX;
	return 0;
}

/*
 * The lock is busy: spin (holders hold it for microseconds), then sleep
 * on the futex, marked as waiting, looking at the holder each time a
 * sleep times out.
 */
int shf_lock_wait(struct shf_lock *l, const struct shf_lock_site *site,
		  uint64_t *stuck)
{
	static const long first_ms[] = { 2, 20 };
	uint64_t me = shf_lock_self(), v, t0 = 0, now, next = 0;
	uint64_t was = __atomic_load_n(stuck, __ATOMIC_RELAXED);
	unsigned polls = 0, spins = 0;
	uint64_t spin_end = 0;

	v = __atomic_load_n(&l->w, __ATOMIC_RELAXED);
	if (SHF_UNLIKELY((v & ~(uint64_t)SHF_LOCK_WAITERS) == me) &&
	    lock_own_word(&me) < 0)
		return -1;
	if (SHF_UNLIKELY(was)) {
		int rc = v == was ? lock_stuck_look(l, v, me, site) : 0;

		if (rc < 0)
			return -1;
		__atomic_store_n(stuck, 0, __ATOMIC_RELAXED);
		if (rc)
			return 1;
	}
	if (site && site->counts)
		atomic_fetch_add_explicit(&site->counts->lock_waits, 1,
					  memory_order_relaxed);
	/*
	 * The looks at the holder are due at times of their own (t0 + 2 ms,
	 * then 20 ms later, then every 200 ms), checked on every turn: a
	 * sleep cut short (a signal, a wake, a word that keeps changing)
	 * neither puts a look off nor the end of the wait.
	 */
	for (;;) {
		v = __atomic_load_n(&l->w, __ATOMIC_RELAXED);
		if (!(v & FUTEX_TID_MASK)) {
			/* free (a stray waiters bit or start: any word
			 * without a holder is free); others may wait still */
			if (__atomic_compare_exchange_n(
				    &l->w, &v, me | SHF_LOCK_WAITERS, 0,
				    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return 0;
			continue;
		}
		if (lock_spin(&spins, &spin_end))
			continue;
		now = shf_clock_ms(CLOCK_MONOTONIC);
		if (!t0) {
			t0 = now;
			next = now + first_ms[0];
		}
		if (now >= next) {
			polls++;
			next = now + (polls < 2 ? (uint64_t)first_ms[polls] :
						  SHF_LOCK_LOOK_MS);
			if (lock_holder_gone(v, site)) {
				if (lock_take_over(l, v, me, site))
					return 1;
				continue;
			}
			if (site && site->max_wait_ms &&
			    now - t0 >= site->max_wait_ms) {
				__atomic_store_n(stuck, v, __ATOMIC_RELAXED);
				errno = ETIMEDOUT;
				return -1;
			}
		}
		if (!(v & SHF_LOCK_WAITERS)) {
			uint64_t nv = v | SHF_LOCK_WAITERS;

			if (!__atomic_compare_exchange_n(&l->w, &v, nv, 0,
							 __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED))
				continue;
			v = nv;
		}
		/* woken, timed out, interrupted or changed: the loop says */
		shf_futex_wait(lock_futex(l), (uint32_t)v, (int)(next - now));
	}
}
