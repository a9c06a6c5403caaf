/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-internal.h - what the library's files lend each other; never
 * installed.  One section per source file, bottom layer first: a file may
 * use the sections above its own, never those below (HACKING draws the
 * layers).  The table's byte layout and the table files' own sections are
 * in table.h, which only the table's files include.
 */
#ifndef SHF_INTERNAL_H
#define SHF_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "shf.h"

#define SHF_EXPORT __attribute__((visibility("default")))

/* Thread-locals of the library: no __tls_get_addr() call to reach them. */
#define SHF_TLS_IE __attribute__((tls_model("initial-exec")))

#define SHF_LIKELY(x) __builtin_expect(!!(x), 1)
#define SHF_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* =============================================================== proc.c */

/*
 * Start times are clock ticks since boot as /proc/PID/stat (field 22)
 * shows them in the initial time namespace: each reader's boot time
 * offset (time_namespaces(7)) taken away, so that processes in different
 * namespaces agree on a third's.  shf_proc_start_normal(): a start time
 * as /proc shows it here, so given (never 0).
 */
uint64_t shf_proc_start_normal(uint64_t shown);
/* Read this process's time namespace offset now (shf_init()). */
void shf_proc_init(void);
/*
 * Fields of /proc/PID/stat (PID may name any thread): its state (field
 * 3), flags (9) and start time (22, as above).  0, or -1 with errno: that
 * of open() or read() (ENOENT: no such thread, or no /proc), or EIO when
 * the line cannot be read as such.
 */
int shf_proc_stat(pid_t pid, char *state, uint32_t *flags, uint64_t *start);
/* The session of pid (field 6 of /proc/PID/stat); 0 if unknown. */
pid_t shf_proc_session(pid_t pid);
/*
 * Start time of a process (as above), to tell it from a later one with
 * the same pid; 0 with errno (ESRCH) if it does not exist or is a zombie.
 */
uint64_t shf_proc_start_time(pid_t pid);
/*
 * The same for a process as a whole: its start time while any of its
 * threads lives, even once its first thread called pthread_exit() (whose
 * entry then shows a zombie).
 */
uint64_t shf_proc_group_start_time(pid_t pid);
/*
 * Is process pid, that started at started (0: not known), alive (group:
 * as shf_proc_group_start_time() counts)?  0 only where it is known to be
 * gone: no such process (kill() says ESRCH), a zombie, or a process of
 * another start time.  1 otherwise, also where /proc cannot tell (hidden
 * by hidepid=, another user's, not mounted): what a dead process held may
 * be given away only on proof.
 */
int shf_proc_alive(pid_t pid, int group, uint64_t started);
/*
 * This process's generation: a number of its own in every child (of
 * fork(), _Fork() or a clone() without CLONE_VM, which runs no atfork
 * handler), where the kernel has MADV_WIPEONFORK; else 1.  State kept per
 * process or thread (lock words, queue slots and states, the log's drain
 * thread) is the parent's where it was made in another generation.
 */
uint64_t shf_proc_gen(void);
extern const uint64_t *shf_proc_gen_word;
/*
 * The same, or 0 (a child that has not asked yet), for a fast compare;
 * acquire: the page behind the word was made by another thread.
 */
static inline uint64_t shf_proc_gen_now(void)
{
	return __atomic_load_n(__atomic_load_n(&shf_proc_gen_word,
					       __ATOMIC_ACQUIRE),
			       __ATOMIC_RELAXED);
}

/* =============================================================== util.c */

/* Nanoseconds of a clock (CLOCK_MONOTONIC, CLOCK_REALTIME; a vDSO read). */
uint64_t shf_clock_ns(clockid_t id);

static inline uint64_t shf_clock_ms(clockid_t id)
{
	return shf_clock_ns(id) / 1000000u;
}
/*
 * posix_spawn() path with argv and the caller's environment, with no
 * signal blocked; SHF_SPAWN_DAEMON: in a session of its own, with default
 * signal dispositions.  0 with *pid set, or an errno value.
 */
#define SHF_SPAWN_DAEMON 1
int shf_spawn(pid_t *pid, const char *path, char *const argv[],
	      const posix_spawn_file_actions_t *fa, int flags);
/*
 * Reap child pid, retrying on EINTR (a child the kernel reaped itself,
 * SIGCHLD ignored, counts as reaped).  deadline_ms >= 0 (CLOCK_MONOTONIC):
 * one still running then is SIGKILLed first.  0, or -1 with errno.
 */
int shf_reap(pid_t pid, int64_t deadline_ms);
/* Grow a malloc()ed buffer to at least len bytes; 0 or -1/ENOMEM. */
int shf_buf_grow(char **buf, uint64_t *cap, uint64_t len);
/*
 * A claim (of a region to set up) that names its claimant in one word,
 * for a compare-and-swap: pid | its start time << SHF_CLAIM_PID_BITS, or
 * the pid alone where /proc cannot tell the start time; 0 if pid does not
 * fit.  shf_claim_alive(): is the claimant of w still there?
 */
#define SHF_CLAIM_PID_BITS 22 /* PID_MAX_LIMIT is 2^22 */
uint64_t shf_claim_word(pid_t pid);
int shf_claim_alive(uint64_t w);
/*
 * Claim a region to set up, whose state word goes SHF_CLAIM_FREE -> _INIT
 * -> anything above (set up, or going away): the claim word first (unless
 * it names a live claimant), then the state to INIT from FREE or INIT.  0
 * ours; -1 not: *st is the state seen (above INIT: nothing to set up).
 */
#define SHF_CLAIM_FREE 0u
#define SHF_CLAIM_INIT 1u
int shf_claim_take(uint64_t *claim, uint32_t *state, uint32_t *st);

/* ============================================================== mount.c */

/* The 2 MiB page policy of a path's mount: mount.h (shf(1) shares it). */
#include "mount.h"

/* =============================================================== sync.c */

static inline void shf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Futex on a 32-bit word in shared memory (not FUTEX_PRIVATE: the waiters
 * are in other processes).  wait returns when *addr != val, when woken, or
 * after timeout_ms (<0: no timeout); wake wakes up to n waiters.
 */
int shf_futex_wait(uint32_t *addr, uint32_t val, int timeout_ms);
void shf_futex_wake(uint32_t *addr, int n);

/* Counters of a file's locks, kept in the file. */
struct shf_lock_counts {
	_Atomic uint64_t recoveries; /* taken over from dead holders */
	_Atomic uint64_t lock_waits; /* acquisitions that had to wait */
};
/*
 * Where a lock lives: its file (a holder must map it: a lock word naming
 * a live thread that does not is taken over; dev/ino 0: not checked),
 * where to count, and how long a waiter waits for a live holder before it
 * gives up with ETIMEDOUT (0: as long as it takes).
 */
struct shf_lock_site {
	struct shf_lock_counts *counts;
	uint64_t dev, ino;
	uint32_t max_wait_ms;
};
/*
 * Does thread tid map the file (dev, ino)?  1 yes, 0 provably not, -1 it
 * cannot be told (its maps are not ours to read).  Reads /proc/TID/maps
 * with a bound on the lines it looks at.
 */
int shf_tid_maps_file(pid_t tid, uint64_t dev, uint64_t ino);
/* PF_KTHREAD of include/linux/sched.h: the flags of a kernel thread. */
#define SHF_PF_KTHREAD 0x00200000u
/* How often a waiter looks at a lock's holder, after its first looks. */
#define SHF_LOCK_LOOK_MS 200

/* =============================================================== lock.c */

/*
 * The library's own lock, for the locks taken on every write (a table's
 * shards): one 64-bit word, 0 when free, else the holder's thread id
 * (FUTEX_TID_MASK bits) | SHF_LOCK_WAITERS, with the low 32 bits of that
 * thread's start time (/proc/TID/stat, clock ticks since boot) above, so
 * that a thread id used again does not pass for the holder.  Taking it is
 * one compare-and-swap, releasing it one exchange (and a futex wake when
 * somebody waits): no robust list, nothing in the word that the holder
 * writes through.  A holder that dies holding it is found by its waiters,
 * which look at the holder when a futex wait of theirs times out (after
 * 2 ms, then 20 ms, then every 200 ms): gone, another thread with its
 * number, a kernel thread, or a live thread that provably does not map
 * the lock's file, and the lock is taken over and reported as such (1),
 * as a robust mutex reports EOWNERDEAD.  A waiter that finds its own word
 * (it holds the lock itself) gets EDEADLK.
 */
struct shf_lock {
	uint64_t w;
};
#define SHF_LOCK_WAITERS 0x80000000u
/* This thread's lock word (start time << 32 | tid); 0 until first made. */
extern __thread uint64_t shf_lock_me SHF_TLS_IE;
/* The process generation this thread's word was made in (proc.c). */
extern __thread uint64_t shf_lock_gen SHF_TLS_IE;
uint64_t shf_lock_me_slow(void);
int shf_lock_wait(struct shf_lock *l, const struct shf_lock_site *site,
		  uint64_t *stuck);
void shf_lock_wake(struct shf_lock *l);

static inline uint64_t shf_lock_self(void)
{
	uint64_t me = shf_lock_me, gen = shf_proc_gen_now();

	return SHF_LIKELY(me && gen == shf_lock_gen) ? me : shf_lock_me_slow();
}

/*
 * Take l: 0 taken; 1 taken from a holder that died holding it (repair
 * what it protects); -1 with errno (ETIMEDOUT: a live holder kept it
 * site->max_wait_ms).  *stuck (the caller's memory, one per lock) keeps
 * the word a wait gave up on: while the lock shows that word, the next
 * takers give up at once instead of waiting again.
 */
static inline int shf_lock_take(struct shf_lock *l,
				const struct shf_lock_site *site,
				uint64_t *stuck)
{
	uint64_t v = 0;

	if (SHF_LIKELY(__atomic_compare_exchange_n(&l->w, &v, shf_lock_self(),
						   0, __ATOMIC_ACQUIRE,
						   __ATOMIC_RELAXED)))
		return 0;
	return shf_lock_wait(l, site, stuck);
}

/* Take l only if it is free: 0, or -1 with EBUSY (no look at a holder). */
static inline int shf_lock_try(struct shf_lock *l)
{
	uint64_t v = 0;

	if (SHF_LIKELY(__atomic_compare_exchange_n(&l->w, &v, shf_lock_self(),
						   0, __ATOMIC_ACQUIRE,
						   __ATOMIC_RELAXED)))
		return 0;
	errno = EBUSY;
	return -1;
}

static inline void shf_lock_release(struct shf_lock *l)
{
	uint64_t old = __atomic_exchange_n(&l->w, 0, __ATOMIC_RELEASE);

	if (SHF_UNLIKELY(old & SHF_LOCK_WAITERS))
		shf_lock_wake(l);
}

/* ============================================================ monitor.c */

/*
 * Start the monitor that removes dir/name.shf (this very file: the one of
 * device dev and inode ino, the caller's attached file) when the calling
 * process dies; returns once it watches.  0, or -1 with errno (ESTALE:
 * the name now names another file).
 */
int shf_monitor_start(const char *dir, const char *name, uint64_t dev,
		      uint64_t ino);
/*
 * Is there a monitor program to start (an executable file)?  0, or -1
 * with errno (ENOENT where it is not installed, EACCES where it cannot be
 * run), so that shf_attach() makes nothing it would have to leave behind.
 */
int shf_monitor_findable(void);

/* ============================================================ thread.c */

/* shf.h's thread-local results, reached without __tls_get_addr(). */
extern __thread uint32_t shf_uid SHF_TLS_IE;
extern __thread char *shf_key SHF_TLS_IE;
extern __thread uint32_t shf_key_len SHF_TLS_IE;
extern __thread char *shf_val SHF_TLS_IE;
extern __thread uint32_t shf_val_len SHF_TLS_IE;
extern __thread long shf_val_long SHF_TLS_IE;
extern __thread void *shf_val_addr SHF_TLS_IE;
extern __thread uint32_t shf_ttl SHF_TLS_IE;
extern __thread void *shf_tab SHF_TLS_IE;
extern __thread uint32_t shf_tab_len SHF_TLS_IE;
extern __thread uint32_t shf_qiid SHF_TLS_IE;
extern __thread char *shf_qiid_addr SHF_TLS_IE;
extern __thread uint32_t shf_qiid_addr_len SHF_TLS_IE;

/* The calling thread's key and buffers, freed when it exits. */
struct shf_tls {
	char *key; /* the key named by shf_make_hash() */
	uint64_t key_cap;
	uint32_t key_len;
	int have_key;
	/*
	 * shf_hash() of the key with the secret of the table whose handle's
	 * registry id is hash_of (0: none yet): worked out by the first call
	 * on a table after shf_make_hash() (table.h: key_hash()).
	 */
	uint64_t hash, hash_of;
	char *val; /* shf_val's buffer */
	uint64_t val_cap;
	char *kbuf; /* shf_key's buffer */
	uint64_t kbuf_cap;
	char *upd_val; /* preset of shf_upd_callback_copy() */
	uint64_t upd_cap;
	int registered;
};
/* initial-exec: no __tls_get_addr() call on the hot path */
extern __thread struct shf_tls shf_tls SHF_TLS_IE;
/* shf_tls_reserve()'s growing, out of line; 0 or -1/ENOMEM. */
int shf_tls_grow(char **buf, uint64_t *cap, uint64_t len);
/*
 * Grow one of shf_tls's buffers to at least len bytes; 0 or -1/ENOMEM.
 * Inline: it is big enough but for a thread's first calls, and gets call
 * it every time.
 */
static inline int shf_tls_reserve(char **buf, uint64_t *cap, uint64_t len)
{
	if (SHF_LIKELY(*cap >= len && *buf))
		return 0;
	return shf_tls_grow(buf, cap, len);
}
/*
 * The hash of a key in a table (XXH3-64 with the table's secret of
 * SHF_HASH_SECRET random bytes): its shard, tag and buckets.  A secret of
 * each table's own keeps keys made to collide (XXH3 without one has
 * collisions that cost nothing to make) from filling a bucket pair.
 */
#define SHF_HASH_SECRET 192u
uint64_t shf_hash(const uint8_t *secret, const void *key, uint32_t len);
/* SHF_HASH_SECRET bytes of secret, from getrandom(). */
void shf_hash_secret_make(uint8_t *secret);
/* The key named by shf_make_hash() told apart from others (no secret). */
uint64_t shf_key_id(void);

/* =========================================================== registry.c */

/* Register a handle: its id (unique in the process), or 0 with ENOMEM. */
uint64_t shf_reg_add(const void *h);
/* Run the removal hooks for h, then forget it. */
void shf_reg_remove(const void *h);
/* 1 if h is still registered with that id. */
int shf_reg_alive(const void *h, uint64_t id);
/* Call fn(h, arg) with the registry locked, if h is still registered
 * with id (so that h cannot be detached meanwhile); 1 if it was. */
int shf_reg_with(const void *h, uint64_t id, void (*fn)(void *h, void *arg),
		 void *arg);
/* Changes whenever a handle is removed (a load on the queue's hot path). */
extern uint64_t shf_reg_gen;

static inline uint64_t shf_reg_generation(void)
{
	return __atomic_load_n(&shf_reg_gen, __ATOMIC_ACQUIRE);
}
/* Have on_remove(h) called for every handle removed from now on; 0 or -1. */
int shf_reg_hook(void (*on_remove)(void *h));

/* ============================================ handle.c, region.c: the face */

/*
 * What the queue, race and log files (lib/q*.c, lib/race.c, lib/log*.c)
 * may use of a table.  Named regions: fixed-size blocks of shared memory
 * inside the table's file, found by name by every process that attaches.
 * The pointer stays valid until shf_detach().  Returns NULL with errno:
 * ENOENT (absent and !create), EEXIST (create with another size), ENOSPC,
 * ENOMEM, EINVAL (name longer than SHF_REGION_NAME_MAX-1, size 0), EBADMSG
 * (a damaged entry: smaller than asked, off a page boundary, or outside the
 * file).  A region starts on a page boundary; the memory of a new region
 * is zeroed.  *size_out (may be NULL) gets the region's size.
 */
#define SHF_REGION_NAME_MAX 48
#define SHF_REGIONS_MAX 64
void *shf_region(SHF *shf, const char *name, uint64_t size, int create,
		 uint64_t *size_out);
/*
 * Remove a named region's entry (its space is not reused): only if it
 * still names at, the region as shf_region() gave it (another process
 * may have removed it and made a new one since), or whichever with NULL.
 * 0 or -1/errno (ENOENT).
 */
int shf_region_remove(SHF *shf, const char *name, const void *at);
/* The lock site of the table's locks (for locks in its regions). */
const struct shf_lock_site *shf_handle_lock_site(SHF *shf);
/* The handle's id in the registry. */
uint64_t shf_handle_reg_id(SHF *shf);
/* 1 if the handle's file has been removed (no directory names it). */
int shf_handle_removed(SHF *shf);
/*
 * The owner that the table file open on fd (for reading at least)
 * records, read from the file, not mapped: another process that
 * truncates the file meanwhile cannot make the caller fault
 * (shf-monitor's sweep).  *pid 0: none.  0, or -1 with errno (EBADMSG,
 * EPROTO: not a table of this layout; EPERM: another user's, unless
 * shf_set_allow_shared()).
 */
int shf_table_owner_read(int fd, pid_t *pid, uint64_t *start);

#endif /* SHF_INTERNAL_H */
