/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf.c - the shared hash table: file layout, attach, locks, index, records.
 *
 * One file <path>/<name>.shf holds everything.  The header takes the first
 * two pages; then 256 shard descriptors; then space handed out by a bump
 * allocator that grows the file with fallocate() (so a full tmpfs is
 * ENOSPC, not SIGBUS).
 *
 * A key's XXH3-64 hash H picks its shard (top 8 bits) and its 24-bit tag
 * (the next 24 bits).  Each shard has:
 *  - a robust process-shared mutex for writers and a sequence counter that
 *    lets readers work without any lock or shared write (seqlock);
 *  - an extendible-hashing index: a directory of 4 KiB segments, each 64
 *    buckets of 8 slots; a slot is tag << 40 | record offset / 8.  A key may
 *    live in two buckets of its segment (b1 from H, b2 = b1 ^ alt(tag)); a
 *    full segment splits in two by the next tag bit, without rehashing;
 *  - a UID table (pages of 512 offsets) so that UIDs survive moves;
 *  - per-size-class free lists of records;
 *  - a journal of the operation in flight, replayed by the next locker when
 *    a writer died holding the mutex (robust futex: EOWNERDEAD).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <time.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shf-internal.h"
#include "ipc-internal.h"

/* ---------------------------------------------------------------- layout */

#define SHF_MAGIC 0x314c425446485342ULL /* "BSHFTBL1" */
#define SHF_LAYOUT 2u
#define NSHARDS 256u
#define PAGE 4096u
#define SEG_BUCKETS 64u
#define BUCKET_SLOTS 8u
#define SEG_BYTES (SEG_BUCKETS * BUCKET_SLOTS * 8u) /* 4096 */
#define MAX_DEPTH 22u                               /* of 24 tag bits */
#define UID_PAGE_ENTRIES 512u
#define UID_LOCAL_MAX 0xfffffeu
#define SMALL_CLASSES 128u     /* 4..512 by 4 */
#define CLASS_MAX_SHARD 65536u /* larger records: global extents */
#define SUB 8u                 /* sub-classes per doubling */
#define NCLASS (SMALL_CLASSES + 7u * SUB)        /* up to 64 KiB */
#define NBIG (16u + 18u * SUB) /* page counts: 1..16, then 8 per doubling */
#define GROW_STEP (2u << 20)
#define MAP_MAX (1ULL << 40)
#define REC_MIN 16u

#define K_SMALL 0xa1u
#define K_LARGE 0xa2u
#define K_FIXED 0xa3u
#define K_TINY 0xa4u
#define K_FREE 0xfeu
/* flags of a record's kind byte (a base kind above, or-ed with these) */
#define KF_TTL 0x10u   /* an expiry time (u64 ms, CLOCK_REALTIME) follows */
#define KF_LEASE 0x40u /* a lease placeholder: no value yet */
#define KF_MASK (KF_TTL | KF_LEASE)

#define OP_NONE 0u
#define OP_NEW 1u
#define OP_REPLACE 2u
#define OP_DEL 3u

struct region {
	char name[SHF_REGION_NAME_MAX];
	uint64_t off;
	uint64_t size;
};

struct hdr {
	uint64_t magic;
	uint32_t layout;
	uint32_t sig;
	uint64_t shards_off;
	uint64_t data_start;
	uint32_t nshards;
	uint32_t fixed_klen;
	uint32_t fixed_vlen;
	uint32_t fixed_set;
	_Atomic uint64_t file_size; /* bytes reserved with fallocate */
	_Atomic uint64_t file_used; /* bump pointer */
	_Atomic int32_t owner_pid;
	uint32_t pad0;
	_Atomic uint64_t owner_start;
	_Atomic uint64_t recoveries;
	_Atomic uint64_t lock_waits;
	pthread_mutex_t alloc_mx;
	uint64_t big_free[NBIG];
	pthread_mutex_t region_mx;
	struct region regions[SHF_REGIONS_MAX];
	/* cache mode */
	_Atomic uint32_t ttl_default; /* ms; 0 none */
	_Atomic uint32_t ttl_used;    /* some record was given an expiry */
	_Atomic uint64_t byte_budget; /* 0 none */
	_Atomic uint64_t cache_bytes __attribute__((aligned(64)));
	_Atomic uint64_t hits __attribute__((aligned(64)));
	_Atomic uint64_t misses, leases, lease_waits;
};

struct journal {
	uint32_t op;
	uint32_t uid;
	uint64_t slot_off; /* file offset of the slot */
	uint64_t slot_old;
	uint64_t slot_new;
	uint64_t rec_old;
	uint64_t rec_new;
	uint64_t nkeys_before;
	uint64_t rbytes_before, rbytes_after;
	/* structural sub-operations */
	uint64_t kick_from, kick_to, kick_val;
	uint64_t split_seg, split_new, split_start, split_len;
	uint32_t split_depth, split_state;
};

struct shard {
	pthread_mutex_t mx;
	_Atomic uint32_t seq;
	uint32_t pad0;
	_Atomic uint64_t dir_word; /* directory offset << 6 | global depth */
	uint64_t uid_dir;          /* offset of u64[uid_dir_cap] page offsets */
	uint32_t uid_dir_cap;
	uint32_t uid_next;  /* never used uid_local */
	uint32_t uid_free;  /* free list head + 1; 0: empty */
	uint32_t pad1;
	_Atomic uint64_t nkeys;
	uint64_t chunk_cur, chunk_end;
	_Atomic uint64_t bytes_used, bytes_free;
	_Atomic uint64_t puts, dels, splits;
	_Atomic uint64_t rbytes; /* bytes of live records (class bounds) */
	_Atomic uint64_t evictions, expirations;
	uint64_t hand; /* CLOCK hand: directory index << 9 | slot */
	_Atomic uint32_t lease_seq; /* futex word: bumped when a lease ends */
	uint32_t pad2;
	struct journal j;
	uint64_t free_head[NCLASS];
} __attribute__((aligned(64)));

struct shf {
	int fd;
	int lockable;
	uint8_t *base;
	uint64_t map_size;
	_Atomic uint64_t valid; /* bytes known to be inside the file */
	struct hdr *h;
	struct shard *shards;
	char *path;
	char *name;
	struct shf *reg_next; /* the process's list of live handles */
	uint64_t reg_gen;     /* unique in the process */
	/*
	 * The last dir_word this process saw of each shard: a hint for
	 * prefetching a put's buckets before the shard's first line (which
	 * the other writers' locking keeps taking away) has arrived.
	 */
	_Atomic uint64_t dw_hint[NSHARDS];
};

/* The shard descriptors start on the first page after the header. */
#define SHARDS_OFF ((uint64_t)((sizeof(struct hdr) + PAGE - 1) & ~(PAGE - 1)))
_Static_assert(sizeof(struct hdr) <= 2 * PAGE, "header grew past two pages");

#define SIG_VALUE \
	((uint32_t)(sizeof(struct hdr) * 31u + sizeof(struct shard) * 7u + \
		    sizeof(pthread_mutex_t) * 131u))

/* ------------------------------------------------------ thread-locals */

SHF_EXPORT __thread uint32_t shf_uid = SHF_UID_NONE;
SHF_EXPORT __thread char *shf_key;
SHF_EXPORT __thread uint32_t shf_key_len;
SHF_EXPORT __thread char *shf_val;
SHF_EXPORT __thread uint32_t shf_val_len;
SHF_EXPORT __thread long shf_val_long;
SHF_EXPORT __thread void *shf_val_addr;
/* SharedHashFile's conditional delete: see shf_del_key_val(3). */
SHF_EXPORT __thread uint32_t shf_ttl;
/* SharedHashFile's raw walk: see shf_tab_copy_iterate(3). */
SHF_EXPORT __thread void *shf_tab;
SHF_EXPORT __thread uint32_t shf_tab_len;

struct tls {
	char *key; /* the key named by shf_make_hash() */
	uint64_t key_cap;
	uint32_t key_len;
	int have_key;
	uint64_t hash;
	char *val; /* shf_val's buffer */
	uint64_t val_cap;
	char *kbuf; /* shf_key's buffer */
	uint64_t kbuf_cap;
	char *upd_val; /* preset of shf_upd_callback_copy() */
	uint64_t upd_cap;
	uint32_t upd_len;
	shf_upd_callback_t upd_cb;
	int upd_cb_v1; /* set by a libshf 1.0/1.1 binary: returns val_len */
	int registered;
	/* hits and misses not yet added to the table of st_h */
	SHF *st_h;
	uint64_t st_gen;
	uint32_t st_hits, st_misses;
	/* the lease this thread was last granted (get-or-lease) */
	uint64_t lease_hash;
	uint32_t lease_nonce;
};
/* initial-exec: no __tls_get_addr() call on the hot path */
static __thread struct tls tls __attribute__((tls_model("initial-exec")));
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void getstat_flush(void);

static void tls_free(void *arg)
{
	(void)arg;
	getstat_flush();
	free(tls.key);
	free(tls.val);
	free(tls.kbuf);
	free(tls.upd_val);
	memset(&tls, 0, sizeof(tls));
	shf_val = NULL;
	shf_key = NULL;
}

static void tls_once_init(void)
{
	(void)pthread_key_create(&tls_key, tls_free);
}

static void tls_register(void)
{
	if (SHF_LIKELY(tls.registered))
		return;
	pthread_once(&tls_once, tls_once_init);
	if (pthread_setspecific(tls_key, &tls) == 0)
		tls.registered = 1;
}

static int tls_reserve(char **buf, uint64_t *cap, uint64_t len)
{
	uint64_t n;
	char *p;

	if (SHF_LIKELY(*cap >= len && *buf))
		return 0;
	n = *cap ? *cap : 64;
	while (n < len)
		n *= 2;
	p = realloc(*buf, n);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	*buf = p;
	*cap = n;
	tls_register();
	return 0;
}

/* ------------------------------------------------ crash injection */

/*
 * Test-only: SHF_TEST_CRASH="POINT:N" makes the process SIGKILL itself the
 * N-th time it passes crash point POINT (see tests/check_crash.c).  Read
 * once by shf_init(); costs one predictable branch otherwise.
 */
enum crash_point {
	CP_NEW_WRITTEN = 1,  /* new record written, not yet in the index */
	CP_NEW_COMMITTED,    /* in the index, counters not yet updated */
	CP_REPL_WRITTEN,     /* replacement written, not committed */
	CP_REPL_COMMITTED,   /* committed, UID table not yet updated */
	CP_REPL_UID,         /* UID updated, old record not yet freed */
	CP_DEL_COMMITTED,    /* slot cleared, UID not yet released */
	CP_DEL_UID,          /* UID released, record not yet freed */
	CP_SPLIT_COPIED,     /* split: entries copied, directory unchanged */
	CP_SPLIT_DIR,        /* split: directory half updated */
	CP_KICK,             /* displacement: entry in both buckets */
	CP_DIR_DOUBLE,       /* directory doubled, old one not yet freed */
	CP_CHUNK,            /* chunk switch in progress */
	CP_FREE_PUSH,        /* free-list push half done */
	CP_ALLOC_LOCKED,     /* holding the allocator's lock */
	CP_MAX
};
static int crash_at;
static long crash_count;

static void crash_init(void)
{
	const char *e = getenv("SHF_TEST_CRASH");
	char *end;
	long p;

	if (!e)
		return;
	p = strtol(e, &end, 10);
	if (p <= 0 || p >= CP_MAX || *end != ':')
		return;
	crash_count = strtol(end + 1, NULL, 10);
	crash_at = (int)p;
}

#define CRASH(p)                                                         \
	do {                                                             \
		if (SHF_UNLIKELY(crash_at == (p)) && --crash_count <= 0) \
			raise(SIGKILL);                                  \
	} while (0)

/* ----------------------------------------------------------- helpers */

static inline uint64_t ld64(const void *p)
{
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}

static inline void st64(void *p, uint64_t v)
{
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
}

/* free-list links sit at 4-byte aligned places: copy them */
static inline uint64_t ldu64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline void stu64(void *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/*
 * Counters of a shard that only the holder of its lock changes: a plain
 * load and store (no locked instruction, which would wait for every store
 * still in flight — a record being written — in the middle of a put).
 */
static inline void ctr_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline void ctr_add(_Atomic uint64_t *c, uint64_t d)
{
	ctr_set(c, atomic_load_explicit(c, memory_order_relaxed) + d);
}

static inline void ctr_sub(_Atomic uint64_t *c, uint64_t d)
{
	ctr_set(c, atomic_load_explicit(c, memory_order_relaxed) - d);
}

static inline void barrier(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Is [off, off+len) inside the file?  Refreshes from fstat() when needed. */
static int range_ok_slow(SHF *h, uint64_t off, uint64_t len)
{
	struct stat st;
	uint64_t sz;

	if (fstat(h->fd, &st) < 0)
		return 0;
	sz = (uint64_t)st.st_size;
	if (sz > h->map_size)
		sz = h->map_size;
	atomic_store(&h->valid, sz);
	return len <= sz && off <= sz - len;
}

static inline int range_ok(SHF *h, uint64_t off, uint64_t len)
{
	uint64_t v = atomic_load_explicit(&h->valid, memory_order_relaxed);

	if (SHF_LIKELY(len <= v && off <= v - len))
		return 1;
	return range_ok_slow(h, off, len);
}

/* A pointer to len bytes at off, or NULL if that is not inside the file. */
static inline void *at(SHF *h, uint64_t off, uint64_t len)
{
	if (SHF_UNLIKELY(off < h->h->data_start || !range_ok(h, off, len)))
		return NULL;
	return h->base + off;
}

static inline uint32_t cls_of(uint64_t size, uint64_t *bound)
{
	uint32_t c, lg, sub;
	uint64_t b;

	if (size <= 512) {
		c = (uint32_t)((size + 3) / 4);
		if (c < REC_MIN / 4)
			c = REC_MIN / 4;
		*bound = (uint64_t)c * 4;
		return c - 1;
	}
	lg = 63u - (uint32_t)__builtin_clzll(size - 1); /* 2^lg < size */
	/* size in (2^lg, 2^(lg+1)]; sub-steps of 2^lg / SUB */
	sub = (uint32_t)(((size - 1) - (1ULL << lg)) >> (lg - 3)); /* 0..7 */
	b = (1ULL << lg) + ((uint64_t)(sub + 1) << (lg - 3));
	*bound = b;
	return SMALL_CLASSES + (lg - 9) * SUB + sub;
}

/* class of a block of exactly `size` bytes, rounding down (chunk tails) */
/* bound of class c (shard classes) */
static inline uint64_t cls_bound(uint32_t c)
{
	uint32_t lg;

	if (c < SMALL_CLASSES)
		return (c + 1) * 4ULL;
	lg = (c - SMALL_CLASSES) / SUB + 9;
	return (1ULL << lg) + ((uint64_t)((c - SMALL_CLASSES) % SUB + 1) << (lg - 3));
}

static inline int cls_floor(uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		return -1;
	c = cls_of(size, &b);
	while (cls_bound(c) > size) {
		if (c == 0)
			return -1;
		c--;
	}
	return (int)c;
}

static inline uint64_t big_bound(uint64_t size, uint32_t *cls)
{
	uint64_t pages = (size + PAGE - 1) / PAGE, bp;
	uint32_t lg, sub;

	if (pages <= 16) {
		*cls = (uint32_t)(pages ? pages - 1 : 0);
		return (pages ? pages : 1) * PAGE;
	}
	lg = 63u - (uint32_t)__builtin_clzll(pages - 1);
	sub = (uint32_t)(((pages - 1) - (1ULL << lg)) >> (lg - 3));
	bp = (1ULL << lg) + ((uint64_t)(sub + 1) << (lg - 3));
	*cls = 16 + (lg - 4) * SUB + sub;
	return bp * PAGE;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}


/* ------------------------------------------------------------- locks */

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
 * the kernel never saw it hold the lock: a table file copied, or kept on a
 * disk across a reboot, while a writer held it.  Waiters look at the owner
 * every LOCK_POLL_MS and, when that thread no longer exists, mark the lock
 * as the kernel would, so that the next locker gets EOWNERDEAD and repairs.
 * (glibc keeps the futex word, owner tid | flags, first in the mutex.)
 */
#define LOCK_POLL_MS 200

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
#define TSAN_OWNERDEAD_LOCKED(m)                  \
	do {                                      \
		__tsan_mutex_pre_lock((m), 0);    \
		__tsan_mutex_post_lock((m), 0, 0); \
	} while (0)
#else
#define TSAN_OWNERDEAD_LOCKED(m) ((void)0)
#endif

static void mutex_release_stale(pthread_mutex_t *m)
{
	uint32_t *w = (uint32_t *)(void *)m;
	uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE), nv;
	pid_t tid = (pid_t)(v & FUTEX_TID_MASK);

	if (!tid || (v & FUTEX_OWNER_DIED))
		return;
	if (kill(tid, 0) == 0 || errno != ESRCH)
		return; /* alive (or not ours to judge) */
	nv = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
	if (__atomic_compare_exchange_n(w, &v, nv, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
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

int shf_mutex_lock(SHF *h, pthread_mutex_t *m)
{
	int rc, remade = 0;

	if (SHF_UNLIKELY(!mutex_sane(m))) {
		if (shf_mutex_init(m) < 0)
			return -1;
		remade = 1;
	}
again:
	rc = pthread_mutex_trylock(m);

	if (rc == EBUSY) {
		if (h)
			atomic_fetch_add_explicit(&h->h->lock_waits, 1,
						  memory_order_relaxed);
		for (;;) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += LOCK_POLL_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			rc = pthread_mutex_timedlock(m, &ts);
			if (rc == EOWNERDEAD)
				TSAN_OWNERDEAD_LOCKED(m);
			if (rc != ETIMEDOUT)
				break;
			mutex_release_stale(m);
		}
	}
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
		if (h)
			atomic_fetch_add(&h->h->recoveries, 1);
		return 1;
	}
	errno = rc;
	return -1;
}

void shf_mutex_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

static void shard_recover(SHF *h, struct shard *sh);
static void cache_bytes_recount(SHF *h);

/*
 * The shard's lock is held (owner_died: its previous holder died holding
 * it): finish or undo what an interrupted writer left, then make the
 * sequence odd.
 */
static void shard_enter(SHF *h, struct shard *sh, int owner_died)
{
	if (h->lockable &&
	    (owner_died || (atomic_load(&sh->seq) & 1) || sh->j.op ||
	     sh->j.kick_from || sh->j.split_state)) {
		if (atomic_load(&sh->seq) & 1)
			atomic_fetch_add(&sh->seq, 1);
		shard_recover(h, sh);
	}
	/* only the lock holder writes seq: no locked instruction needed */
	atomic_store_explicit(&sh->seq,
			      atomic_load_explicit(&sh->seq,
						   memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

/* Writer side: lock the shard and make its sequence odd. */
static int shard_lock(SHF *h, struct shard *sh)
{
	int rc = 0;

	if (h->lockable) {
		rc = shf_mutex_lock(h, &sh->mx);
		if (rc < 0)
			return -1;
	}
	shard_enter(h, sh, rc == 1);
	return 0;
}

/*
 * The same for a shard that is not the caller's: take its lock only if it
 * is free (never wait while holding another shard).  0 locked, -1 not.
 */
static int shard_trylock(SHF *h, struct shard *sh)
{
	int rc = 0;

	if (h->lockable) {
		if (!mutex_sane(&sh->mx))
			return -1;
		rc = pthread_mutex_trylock(&sh->mx);
		if (rc == EOWNERDEAD) {
			pthread_mutex_consistent(&sh->mx);
			atomic_fetch_add(&h->h->recoveries, 1);
		} else if (rc) {
			return -1;
		}
	}
	shard_enter(h, sh, rc == EOWNERDEAD);
	return 0;
}

static void shard_unlock(SHF *h, struct shard *sh)
{
	atomic_store_explicit(&sh->seq,
			      atomic_load_explicit(&sh->seq,
						   memory_order_relaxed) + 1,
			      memory_order_release);
	if (h->lockable)
		shf_mutex_unlock(&sh->mx);
}

/* Reader side. */
static inline uint32_t read_begin(struct shard *sh)
{
	return atomic_load_explicit(&sh->seq, memory_order_acquire);
}

static inline int read_retry(struct shard *sh, uint32_t s)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&sh->seq, memory_order_relaxed) != s;
}

/* ------------------------------------------------- global allocation */

/* Grow the file so that `need` bytes are reserved.  Under alloc_mx. */
static int file_reserve(SHF *h, uint64_t need)
{
	uint64_t sz = atomic_load(&h->h->file_size), nsz;
	int rc;

	if (need <= sz)
		return 0;
	if (need > h->map_size) {
		errno = EFBIG;
		return -1;
	}
	nsz = sz + GROW_STEP;
	if (nsz < need)
		nsz = (need + GROW_STEP - 1) & ~(uint64_t)(GROW_STEP - 1);
	if (nsz > h->map_size)
		nsz = need;
	do
		rc = fallocate(h->fd, 0, (off_t)sz, (off_t)(nsz - sz));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		if (errno == EOPNOTSUPP) { /* not tmpfs: fall back */
			if (ftruncate(h->fd, (off_t)nsz) < 0)
				return -1;
		} else {
			if (errno != ENOSPC && errno != EFBIG)
				return -1;
			/* a smaller step may still fit */
			if (nsz == need)
				return -1;
			do
				rc = fallocate(h->fd, 0, (off_t)sz,
					       (off_t)(need - sz));
			while (rc < 0 && errno == EINTR);
			if (rc < 0)
				return -1;
			nsz = need;
		}
	}
	atomic_store(&h->h->file_size, nsz);
	atomic_store(&h->valid, nsz);
	return 0;
}

/* Page-aligned extent of at least size bytes (size rounded to its class). */
static uint64_t big_alloc(SHF *h, uint64_t size, int zero)
{
	uint32_t c;
	uint64_t b = big_bound(size, &c), off, used;
	int rc;

	if (c >= NBIG) {
		errno = EOVERFLOW;
		return 0;
	}
	rc = shf_mutex_lock(h, &h->h->alloc_mx);
	if (rc < 0)
		return 0;
	CRASH(CP_ALLOC_LOCKED);
	off = h->h->big_free[c];
	if (off) {
		uint64_t *p = at(h, off, b);

		if (!p || (off & (PAGE - 1))) { /* corrupt: drop the list */
			h->h->big_free[c] = 0;
			off = 0;
		} else {
			h->h->big_free[c] = ld64(p);
			shf_mutex_unlock(&h->h->alloc_mx);
			if (zero)
				memset(p, 0, b);
			return off;
		}
	}
	used = atomic_load(&h->h->file_used);
	if (used < h->h->data_start) { /* a damaged header */
		shf_mutex_unlock(&h->h->alloc_mx);
		errno = EBADMSG;
		return 0;
	}
	used = (used + PAGE - 1) & ~(uint64_t)(PAGE - 1); /* extents: pages */
	if (file_reserve(h, used + b) < 0) {
		int e = errno;

		shf_mutex_unlock(&h->h->alloc_mx);
		errno = e;
		return 0;
	}
	atomic_store(&h->h->file_used, used + b);
	shf_mutex_unlock(&h->h->alloc_mx);
	(void)zero; /* fresh file space reads as zeroes */
	return used;
}

static void big_free(SHF *h, uint64_t off, uint64_t size)
{
	uint32_t c;
	uint64_t b = big_bound(size, &c);
	uint64_t *p = at(h, off, b);

	if (!p || c >= NBIG)
		return;
	if (shf_mutex_lock(h, &h->h->alloc_mx) < 0)
		return;
	st64(p, h->h->big_free[c]);
	h->h->big_free[c] = off;
	shf_mutex_unlock(&h->h->alloc_mx);
}

/* ------------------------------------------------- shard allocation */

static void cls_push(SHF *h, struct shard *sh, uint32_t c, uint64_t off)
{
	uint32_t *w = at(h, off, REC_MIN);

	if (!w)
		return;
	w[0] = K_FREE << 24;
	w[1] = c;
	stu64(w + 2, sh->free_head[c]);
	barrier();
	CRASH(CP_FREE_PUSH);
	st64(&sh->free_head[c], off);
}

/*
 * size bytes, 4-aligned (8-aligned with align8, for arrays of 64-bit words),
 * from the shard's lists or chunk; 0 + errno.
 */
static uint64_t shard_alloc_a(SHF *h, struct shard *sh, uint64_t size,
			      int align8)
{
	uint64_t b, off;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	/* whole pages (UID pages, directories) never come from a chunk: a
	 * chunk's tail would be too short for them and wasted */
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1))) {
		off = big_alloc(h, size, 0);
		if (off)
			ctr_add(&sh->bytes_used, size);
		return off;
	}
	c = cls_of(size, &b);
	off = sh->free_head[c];
	if (off) {
		uint32_t *w = at(h, off, b);

		if (w && w[0] == K_FREE << 24 && w[1] == c && !(off & 3)) {
			if (!align8 || !(off & 7)) {
				st64(&sh->free_head[c], ldu64(w + 2));
				ctr_sub(&sh->bytes_free, b);
				ctr_add(&sh->bytes_used, b);
				return off;
			}
		} else {
			st64(&sh->free_head[c], 0); /* corrupt list: drop it */
		}
	}
	if ((sh->chunk_cur | sh->chunk_end) & 3) { /* damaged: abandon it */
		st64(&sh->chunk_end, 0);
		st64(&sh->chunk_cur, 0);
	}
	if (align8 && (sh->chunk_cur & 7) && sh->chunk_cur < sh->chunk_end)
		st64(&sh->chunk_cur, sh->chunk_cur + 4); /* 4 bytes lost */
	if (sh->chunk_end - sh->chunk_cur < b || sh->chunk_cur > sh->chunk_end) {
		uint64_t used = atomic_load(&sh->bytes_used), csz, nc, tail;
		int tc;

		csz = 8192;
		while (csz < used / 32 && csz < (256u << 10))
			csz *= 2;
		while (csz < b)
			csz *= 2;
		nc = big_alloc(h, csz, 0);
		if (!nc)
			return 0;
		/* retire the old chunk: empty it first, then free its tail */
		off = sh->chunk_cur;
		tail = sh->chunk_end - sh->chunk_cur;
		st64(&sh->chunk_end, sh->chunk_cur);
		while (tail >= REC_MIN && tail <= (1u << 20)) {
			uint64_t piece = tail > CLASS_MAX_SHARD ? CLASS_MAX_SHARD : tail, pb;

			tc = cls_floor(piece);
			if (tc < 0)
				break;
			pb = cls_bound((uint32_t)tc);
			cls_push(h, sh, (uint32_t)tc, off);
			ctr_add(&sh->bytes_free, pb);
			off += pb;
			tail -= pb;
		}
		st64(&sh->chunk_end, 0);
		st64(&sh->chunk_cur, nc);
		barrier();
		CRASH(CP_CHUNK);
		st64(&sh->chunk_end, nc + csz);
	}
	off = sh->chunk_cur;
	st64(&sh->chunk_cur, off + b);
	ctr_add(&sh->bytes_used, b);
	return off;
}

static inline uint64_t shard_alloc(SHF *h, struct shard *sh, uint64_t size)
{
	return shard_alloc_a(h, sh, size, 0);
}

static void shard_free(SHF *h, struct shard *sh, uint64_t off, uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1))) {
		big_free(h, off, size);
		ctr_sub(&sh->bytes_used, size);
		return;
	}
	c = cls_of(size, &b);
	cls_push(h, sh, c, off);
	ctr_sub(&sh->bytes_used, b);
	ctr_add(&sh->bytes_free, b);
}

/* ----------------------------------------------------------- records */

struct rec {
	uint32_t kind;  /* base kind */
	uint32_t flags; /* KF_* */
	uint64_t expiry; /* ms of CLOCK_REALTIME, with KF_TTL */
	uint32_t uid; /* local */
	uint32_t klen, vlen;
	uint32_t hlen; /* header bytes */
	const uint8_t *key;
	uint8_t *val;
	uint64_t size; /* hlen + klen + vlen */
};

/*
 * Size and layout of a record; flags KF_* (a lease never takes the fixed
 * layout: its value is the holder, not a value of the table's length).
 */
static inline uint64_t rec_size_for(SHF *h, uint32_t klen, uint32_t vlen,
				    uint32_t flags, uint32_t *hlen,
				    uint32_t *kind)
{
	if (h->h->fixed_set && !(flags & KF_LEASE)) {
		*hlen = 4;
		*kind = K_FIXED;
	} else if (klen < 256 && vlen < 256) {
		*hlen = 6;
		*kind = K_TINY;
	} else if (klen < 256 && vlen < (1u << 24)) {
		*hlen = 8;
		*kind = K_SMALL;
	} else {
		*hlen = 12;
		*kind = K_LARGE;
	}
	if (flags & KF_TTL)
		*hlen += 8;
	*kind |= flags;
	return *hlen + (uint64_t)klen + vlen;
}

/* Decode the record at off; 0 if it is not a live record inside the file. */
static int rec_get(SHF *h, uint64_t off, struct rec *r)
{
	const uint32_t *w = at(h, off, 8);
	uint32_t w0;

	if (!w || (off & 3))
		return 0;
	w0 = __atomic_load_n(w, __ATOMIC_RELAXED);
	r->kind = (w0 >> 24) & ~KF_MASK;
	r->flags = (w0 >> 24) & KF_MASK;
	r->uid = w0 & 0xffffff;
	switch (r->kind) {
	case K_TINY:
		r->hlen = 6;
		r->klen = ((const volatile uint8_t *)w)[4];
		r->vlen = ((const volatile uint8_t *)w)[5];
		break;
	case K_SMALL: {
		uint32_t w1 = __atomic_load_n(w + 1, __ATOMIC_RELAXED);

		r->hlen = 8;
		r->klen = w1 & 0xff;
		r->vlen = w1 >> 8;
		break;
	}
	case K_LARGE:
		if (!at(h, off, 12))
			return 0;
		r->hlen = 12;
		r->klen = __atomic_load_n(w + 1, __ATOMIC_RELAXED);
		r->vlen = __atomic_load_n(w + 2, __ATOMIC_RELAXED);
		break;
	case K_FIXED:
		r->hlen = 4;
		r->klen = h->h->fixed_klen;
		r->vlen = h->h->fixed_vlen;
		break;
	default:
		return 0;
	}
	r->expiry = 0;
	if (r->flags & KF_TTL) {
		if (!at(h, off, r->hlen + 8ULL))
			return 0;
		memcpy(&r->expiry, (const uint8_t *)w + r->hlen, 8);
		r->hlen += 8;
	}
	r->size = r->hlen + (uint64_t)r->klen + r->vlen;
	if (!at(h, off, r->size))
		return 0;
	r->key = h->base + off + r->hlen;
	r->val = h->base + off + r->hlen + r->klen;
	return 1;
}

static void rec_write(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
		      const void *key, uint32_t klen, const void *val,
		      uint32_t vlen, uint32_t hlen, uint64_t expiry)
{
	uint8_t *p = h->base + off;
	uint32_t *w = (uint32_t *)p;

	if (kind & KF_TTL)
		memcpy(p + hlen - 8, &expiry, 8);
	switch (kind & ~KF_MASK) {
	case K_TINY:
		p[4] = (uint8_t)klen;
		p[5] = (uint8_t)vlen;
		break;
	case K_SMALL:
		w[1] = klen | (vlen << 8);
		break;
	case K_LARGE:
		w[1] = klen;
		w[2] = vlen;
		break;
	default:
		break;
	}
	memcpy(p + hlen, key, klen);
	if (val)
		memcpy(p + hlen + klen, val, vlen);
	else
		memset(p + hlen + klen, 0, vlen);
	barrier();
	__atomic_store_n(w, (kind << 24) | uid, __ATOMIC_RELEASE);
}

static void rec_free(SHF *h, struct shard *sh, uint64_t off)
{
	struct rec r;

	if (!rec_get(h, off, &r))
		return;
	shard_free(h, sh, off, r.size);
}

/* ------------------------------------------------------------- UIDs */

static inline uint64_t *uid_entry(SHF *h, struct shard *sh, uint32_t ul)
{
	uint64_t *dir, page;
	uint32_t pi = ul / UID_PAGE_ENTRIES;

	if (pi >= sh->uid_dir_cap)
		return NULL;
	dir = at(h, sh->uid_dir, (uint64_t)sh->uid_dir_cap * 8);
	if (!dir)
		return NULL;
	page = ld64(&dir[pi]);
	if (!page || (page & 7))
		return NULL; /* pages are 8-aligned */
	return at(h, page + (uint64_t)(ul % UID_PAGE_ENTRIES) * 8, 8);
}

/* A free uid_local, its entry pointing at rec; UINT32_MAX + errno if none */
static uint32_t uid_alloc(SHF *h, struct shard *sh, uint64_t rec)
{
	uint64_t *e;
	uint32_t ul;

	if (sh->uid_free) {
		ul = sh->uid_free - 1;
		e = uid_entry(h, sh, ul);
		if (e && (ld64(e) & 1)) {
			uint64_t nx = ld64(e) >> 1;

			sh->uid_free = nx <= UID_LOCAL_MAX + 1 ? (uint32_t)nx : 0;
			st64(e, rec);
			return ul;
		}
		sh->uid_free = 0; /* corrupt list: abandon it */
	}
	ul = sh->uid_next;
	if (ul > UID_LOCAL_MAX) {
		errno = EOVERFLOW;
		return UINT32_MAX;
	}
	if (ul / UID_PAGE_ENTRIES >= sh->uid_dir_cap ||
	    !uid_entry(h, sh, ul)) {
		uint32_t pi = ul / UID_PAGE_ENTRIES;
		uint64_t *dir, page;

		if (pi >= sh->uid_dir_cap) { /* grow the page directory */
			uint32_t ncap = sh->uid_dir_cap ? sh->uid_dir_cap * 2 : 4;
			uint64_t nd = shard_alloc_a(h, sh, (uint64_t)ncap * 8, 1), od;
			uint64_t *n, *o;

			if (!nd)
				return UINT32_MAX;
			n = at(h, nd, (uint64_t)ncap * 8);
			o = sh->uid_dir_cap ?
				    at(h, sh->uid_dir, (uint64_t)sh->uid_dir_cap * 8) :
				    NULL;
			if (!n)
				return UINT32_MAX;
			memset(n, 0, (uint64_t)ncap * 8);
			if (o)
				memcpy(n, o, (uint64_t)sh->uid_dir_cap * 8);
			od = sh->uid_dir;
			barrier();
			/* cap is checked against dir size by readers: publish
			 * the bigger array first, then its capacity */
			st64(&sh->uid_dir, nd);
			barrier();
			{
				uint32_t ocap = sh->uid_dir_cap;

				__atomic_store_n(&sh->uid_dir_cap, ncap,
						 __ATOMIC_RELEASE);
				if (o)
					shard_free(h, sh, od, (uint64_t)ocap * 8);
			}
		}
		page = shard_alloc_a(h, sh, UID_PAGE_ENTRIES * 8, 1);
		if (!page)
			return UINT32_MAX;
		dir = at(h, sh->uid_dir, (uint64_t)sh->uid_dir_cap * 8);
		if (!dir || !at(h, page, UID_PAGE_ENTRIES * 8)) {
			errno = EBADMSG;
			return UINT32_MAX;
		}
		memset(h->base + page, 0, UID_PAGE_ENTRIES * 8);
		barrier();
		st64(&dir[pi], page);
	}
	e = uid_entry(h, sh, ul);
	if (!e) {
		errno = EBADMSG;
		return UINT32_MAX;
	}
	st64(e, rec);
	barrier();
	sh->uid_next = ul + 1;
	return ul;
}

static void uid_release(SHF *h, struct shard *sh, uint32_t ul)
{
	uint64_t *e = uid_entry(h, sh, ul);

	if (!e || sh->uid_free == ul + 1)
		return;
	st64(e, ((uint64_t)sh->uid_free << 1) | 1);
	barrier();
	sh->uid_free = ul + 1;
}

/* ------------------------------------------------------------ index */

static inline uint32_t tag_of(uint64_t hash)
{
	return (uint32_t)(hash >> 32) & 0xffffff;
}

static inline uint32_t alt_of(uint32_t tag)
{
	return ((tag * 0x9e3779b1u) >> 26) % 63u + 1u; /* 1..63 */
}

static inline uint64_t slot_make(uint32_t tag, uint64_t rec)
{
	return ((uint64_t)tag << 40) | (rec >> 2);
}

/*
 * Record offsets are below MAP_MAX (2^40), so offset / 4 takes 38 bits; bit
 * 39 is the CLOCK use mark that gets set (once per sweep, with a CAS) in
 * cache mode.  Compare slots with slot_same(), which ignores the mark.
 */
#define SLOT_REF (1ULL << 39)

static inline uint64_t slot_rec(uint64_t s)
{
	return (s & ((1ULL << 38) - 1)) << 2;
}

static inline int slot_same(uint64_t a, uint64_t b)
{
	return ((a ^ b) & ~SLOT_REF) == 0;
}

static inline uint32_t slot_tag(uint64_t s)
{
	return (uint32_t)(s >> 40);
}

/* Directory: offset << 6 | depth in dir_word; 8-aligned arrays. */
static inline uint64_t *dir_get(SHF *h, uint64_t dw, uint32_t *depth)
{
	*depth = (uint32_t)(dw & 63);
	if (*depth > MAX_DEPTH)
		return NULL;
	if ((dw >> 6) & 7)
		return NULL;
	return at(h, dw >> 6, 8ULL << *depth);
}

/* The segment a tag belongs to, in the directory of dw. */
static inline uint64_t *seg_for_dw(SHF *h, uint64_t dw, uint32_t tag,
				   uint64_t *seg_off, uint32_t *idx)
{
	uint32_t d;
	uint64_t *dir = dir_get(h, dw, &d);
	uint64_t de;

	if (!dir)
		return NULL;
	*idx = d ? tag >> (24 - d) : 0;
	de = ld64(&dir[*idx]);
	*seg_off = de & ~63ULL;
	if (*seg_off & (PAGE - 1))
		return NULL;
	return at(h, *seg_off, SEG_BYTES);
}

static inline uint64_t *seg_for(SHF *h, struct shard *sh, uint32_t tag,
				uint64_t *seg_off, uint32_t *idx)
{
	return seg_for_dw(h,
			  atomic_load_explicit(&sh->dir_word,
					       memory_order_acquire),
			  tag, seg_off, idx);
}

/* The two buckets a key may live in, within its segment. */
static inline void buckets_of(uint64_t hash, uint32_t tag, uint32_t b[2])
{
	b[0] = (uint32_t)hash & (SEG_BUCKETS - 1);
	b[1] = b[0] ^ alt_of(tag);
}

struct found {
	uint64_t *slot;
	uint64_t sval;
	struct rec r;
	uint64_t rec_off;
};

/*
 * A small record that starts near the end of a cache line ends in the
 * next one: start fetching that line too, before the header (in the first)
 * says how long the record is, so that the two misses overlap.  The guess:
 * a header, the key and a few bytes of value.
 */
static inline void rec_prefetch_tail(SHF *h, uint64_t off, uint32_t klen)
{
	uint64_t end = off + 12u + klen;

	if (((off ^ end) & ~63ULL) && end < h->map_size)
		__builtin_prefetch(h->base + end);
}

/* Find key in its shard; 1 found, 0 absent, -1 structure unreadable. */
static int idx_find(SHF *h, struct shard *sh, uint64_t hash, const void *key,
		    uint32_t klen, struct found *f)
{
	uint32_t tag = tag_of(hash), idx, b[2], i, k;
	uint64_t so, *seg = seg_for(h, sh, tag, &so, &idx);

	if (!seg)
		return -1;
	buckets_of(hash, tag, b);
	__builtin_prefetch(seg + b[1] * BUCKET_SLOTS); /* overlap both misses */
	for (k = 0; k < 2; k++) {
		uint64_t *bk = seg + b[k] * BUCKET_SLOTS;

		for (i = 0; i < BUCKET_SLOTS; i++) {
			uint64_t s = ld64(&bk[i]);

			if (!s || slot_tag(s) != tag)
				continue;
			rec_prefetch_tail(h, slot_rec(s), klen);
			if (!rec_get(h, slot_rec(s), &f->r))
				continue;
			if (f->r.klen != klen || memcmp(f->r.key, key, klen))
				continue;
			f->slot = &bk[i];
			f->sval = s;
			f->rec_off = slot_rec(s);
			return 1;
		}
	}
	return 0;
}

/* Split the segment at directory index idx (under the lock). */
static int seg_split(SHF *h, struct shard *sh, uint32_t idx)
{
	uint32_t g, l, start, len, i, bit;
	uint64_t dw = atomic_load(&sh->dir_word), *dir = dir_get(h, dw, &g);
	uint64_t de, so, no, *seg, *nseg;

	if (!dir)
		goto corrupt;
	de = ld64(&dir[idx]);
	l = (uint32_t)(de & 63);
	if (l > g)
		goto corrupt;
	if (l >= MAX_DEPTH) {
		errno = EOVERFLOW;
		return -1;
	}
	if (l == g) { /* double the directory; one store publishes it */
		uint64_t nd = shard_alloc_a(h, sh, 8ULL << (g + 1), 1);
		uint64_t *n;

		if (!nd)
			return -1;
		n = at(h, nd, 8ULL << (g + 1));
		if (!n || (nd & 7))
			goto corrupt;
		for (i = 0; i < (1u << (g + 1)); i++)
			n[i] = ld64(&dir[i >> 1]);
		barrier();
		atomic_store(&sh->dir_word, (nd << 6) | (g + 1));
		CRASH(CP_DIR_DOUBLE);
		if (g > 0) /* depth 0 directories live in the initial area */
			shard_free(h, sh, dw >> 6, 8ULL << g);
		dw = (nd << 6) | (g + 1);
		dir = n;
		g++;
		idx = idx * 2;
	}
	len = 1u << (g - l);
	start = idx & ~(len - 1);
	so = de & ~63ULL;
	seg = at(h, so, SEG_BYTES);
	no = big_alloc(h, SEG_BYTES, 1);
	if (!no)
		return -1;
	nseg = at(h, no, SEG_BYTES);
	if (!seg || !nseg)
		goto corrupt;
	bit = 23 - l; /* tag bit that separates the halves */
	sh->j.split_seg = so;
	sh->j.split_new = no;
	sh->j.split_start = start;
	sh->j.split_len = len;
	sh->j.split_depth = l;
	barrier();
	for (i = 0; i < SEG_BUCKETS * BUCKET_SLOTS; i++) {
		uint64_t s = ld64(&seg[i]);

		nseg[i] = s && ((slot_tag(s) >> bit) & 1) ? s : 0;
	}
	barrier();
	sh->j.split_state = 1;
	barrier();
	CRASH(CP_SPLIT_COPIED);
	for (i = 0; i < len; i++) {
		st64(&dir[start + i], (i < len / 2 ? so : no) | (l + 1));
		if (i == len / 2)
			CRASH(CP_SPLIT_DIR);
	}
	for (i = 0; i < SEG_BUCKETS * BUCKET_SLOTS; i++) {
		uint64_t s = ld64(&seg[i]);

		if (s && ((slot_tag(s) >> bit) & 1))
			st64(&seg[i], 0);
	}
	barrier();
	sh->j.split_state = 0;
	ctr_add(&sh->splits, 1);
	return 0;
corrupt:
	errno = EBADMSG;
	return -1;
}

/* Insert slot value sv for hash (known absent); under the lock. */
static uint64_t *idx_insert(SHF *h, struct shard *sh, uint64_t hash)
{
	uint32_t tag = tag_of(hash), idx, b[2], i, k, tries;

	for (tries = 0; tries < 2 * MAX_DEPTH + 2; tries++) {
		uint64_t so, *seg = seg_for(h, sh, tag, &so, &idx);

		if (!seg) {
			errno = EBADMSG;
			return NULL;
		}
		buckets_of(hash, tag, b);
		for (k = 0; k < 2; k++) {
			uint64_t *bk = seg + b[k] * BUCKET_SLOTS;

			for (i = 0; i < BUCKET_SLOTS; i++)
				if (!ld64(&bk[i]))
					return &bk[i];
		}
		/* one level of cuckoo displacement */
		for (k = 0; k < 2; k++) {
			uint64_t *bk = seg + b[k] * BUCKET_SLOTS;

			for (i = 0; i < BUCKET_SLOTS; i++) {
				uint64_t s = ld64(&bk[i]);
				uint32_t ob = b[k] ^ alt_of(slot_tag(s)), m;
				uint64_t *obk = seg + ob * BUCKET_SLOTS;

				for (m = 0; m < BUCKET_SLOTS; m++) {
					if (ld64(&obk[m]))
						continue;
					sh->j.kick_to = (uint64_t)((uint8_t *)&obk[m] - h->base);
					sh->j.kick_val = s;
					barrier();
					sh->j.kick_from = (uint64_t)((uint8_t *)&bk[i] - h->base);
					barrier();
					st64(&obk[m], s);
					CRASH(CP_KICK);
					st64(&bk[i], 0);
					barrier();
					sh->j.kick_from = 0;
					return &bk[i];
				}
			}
		}
		if (seg_split(h, sh, idx) < 0)
			return NULL;
	}
	errno = EOVERFLOW;
	return NULL;
}

/* -------------------------------------------------------- recovery */

/* Does the index hold slot value sv (for the record's own key)? */
static int idx_holds(SHF *h, struct shard *sh, uint64_t rec_off)
{
	struct rec r;
	struct found f;

	if (!rec_get(h, rec_off, &r))
		return 0;
	if (idx_find(h, sh, XXH3_64bits(r.key, r.klen), r.key, r.klen, &f) != 1)
		return 0;
	return f.rec_off == rec_off;
}

/* Recovery may meet a record it freed before: free it only once. */
static void rec_free_live(SHF *h, struct shard *sh, uint64_t off)
{
	const uint32_t *w = at(h, off, 8);

	if (w && (w[0] >> 24) != K_FREE)
		rec_free(h, sh, off);
}

static void shard_recover(SHF *h, struct shard *sh)
{
	struct journal *j = &sh->j;
	uint64_t *p, *q;

	if (j->kick_from) { /* a displacement: the entry must be in one place */
		p = at(h, j->kick_from, 8);
		q = at(h, j->kick_to, 8);
		if (p && q && slot_same(ld64(q), j->kick_val) &&
		    slot_same(ld64(p), j->kick_val))
			st64(p, 0);
		j->kick_from = 0;
	}
	if (j->split_state == 1) { /* entries copied: finish the split */
		uint32_t g, i, bit = 23 - j->split_depth;
		uint64_t *dir = dir_get(h, atomic_load(&sh->dir_word), &g);
		uint64_t *seg = at(h, j->split_seg, SEG_BYTES);

		if (dir && seg && j->split_start + j->split_len <= (1ULL << g)) {
			for (i = 0; i < j->split_len; i++)
				st64(&dir[j->split_start + i],
				     (i < j->split_len / 2 ? j->split_seg :
							     j->split_new) |
					     (j->split_depth + 1));
			for (i = 0; i < SEG_BUCKETS * BUCKET_SLOTS; i++) {
				uint64_t s = ld64(&seg[i]);

				if (s && ((slot_tag(s) >> bit) & 1))
					st64(&seg[i], 0);
			}
		}
		j->split_state = 0;
	}
	switch (j->op) {
	case OP_NEW:
		if (idx_holds(h, sh, j->rec_new)) {
			ctr_set(&sh->nkeys, j->nkeys_before + 1);
			ctr_set(&sh->rbytes, j->rbytes_after);
		} else {
			uint64_t *e = uid_entry(h, sh, j->uid);

			if (e && ld64(e) == j->rec_new)
				uid_release(h, sh, j->uid);
			rec_free_live(h, sh, j->rec_new);
			ctr_set(&sh->nkeys, j->nkeys_before);
			ctr_set(&sh->rbytes, j->rbytes_before);
		}
		break;
	case OP_REPLACE:
		p = at(h, j->slot_off, 8);
		if (p && slot_same(ld64(p), j->slot_new)) { /* committed */
			uint64_t *e = uid_entry(h, sh, j->uid);

			if (e)
				st64(e, j->rec_new);
			j->rec_new = 0; /* keep it */
			rec_free_live(h, sh, j->rec_old);
			ctr_set(&sh->rbytes, j->rbytes_after);
		} else {
			rec_free_live(h, sh, j->rec_new);
			ctr_set(&sh->rbytes, j->rbytes_before);
		}
		break;
	case OP_DEL:
		p = at(h, j->slot_off, 8);
		if (p && !slot_same(ld64(p), j->slot_old)) { /* committed */
			uint64_t *e = uid_entry(h, sh, j->uid);

			if (e && ld64(e) == j->rec_old)
				uid_release(h, sh, j->uid);
			rec_free_live(h, sh, j->rec_old);
			ctr_set(&sh->nkeys, j->nkeys_before - 1);
			ctr_set(&sh->rbytes, j->rbytes_after);
		} else {
			ctr_set(&sh->nkeys, j->nkeys_before);
			ctr_set(&sh->rbytes, j->rbytes_before);
		}
		break;
	default:
		break;
	}
	/* a record written for an operation that did not commit is leaked
	 * space, not damage: its bytes are unreachable */
	j->op = OP_NONE;
	/*
	 * The dead writer may have raised the table's count of record bytes
	 * without applying it (or applied a change without lowering it):
	 * count again, so that crashes do not shrink the budget over time.
	 */
	if (atomic_load_explicit(&h->h->byte_budget, memory_order_relaxed))
		cache_bytes_recount(h);
}

/* ------------------------------------------------------ cache helpers */

/* Milliseconds of a clock (a vDSO read, no system call). */
static inline uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Milliseconds of CLOCK_REALTIME, the clock of expiry times: read only for
 * records that have an expiry, and by puts that give one.
 */
static inline uint64_t now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

/* The time of one call, read only if a record with an expiry is met. */
struct clk {
	uint64_t ms;
};

static inline uint64_t clk_now(struct clk *c)
{
	if (!c->ms)
		c->ms = now_ms();
	return c->ms;
}

static inline int rec_expired(const struct rec *r, struct clk *c)
{
	return (r->flags & KF_TTL) && clk_now(c) >= r->expiry;
}

/* May a get see this record's value?  Not a lease, not expired. */
static inline int rec_visible(const struct rec *r, struct clk *c)
{
	if (SHF_LIKELY(!r->flags))
		return 1;
	if (r->flags & KF_LEASE)
		return 0;
	return !rec_expired(r, c);
}

/* Bytes a record of size bytes counts for in the budget (its class). */
static inline uint64_t rec_cost(uint64_t size)
{
	uint64_t b;
	uint32_t c;

	if (size < REC_MIN)
		size = REC_MIN;
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1)))
		return big_bound(size, &c);
	cls_of(size, &b);
	return b;
}

/*
 * Hits and misses: each thread counts in private and adds its counts to the
 * table every GETSTAT_BATCH gets, when it turns to another handle, in
 * shf_get_stats() and shf_detach(), so that a get writes no shared line.
 * The process keeps a list of its live handles so that a count is never
 * added through a handle another thread has detached.
 */
#define GETSTAT_BATCH 64
static pthread_mutex_t reg_mx = PTHREAD_MUTEX_INITIALIZER;
static SHF *reg_head;
static uint64_t reg_gen_next = 1;

static void reg_add(SHF *h)
{
	pthread_mutex_lock(&reg_mx);
	h->reg_gen = reg_gen_next++;
	h->reg_next = reg_head;
	reg_head = h;
	pthread_mutex_unlock(&reg_mx);
}

static void reg_remove(SHF *h)
{
	SHF **pp;

	pthread_mutex_lock(&reg_mx);
	for (pp = &reg_head; *pp; pp = &(*pp)->reg_next)
		if (*pp == h) {
			*pp = h->reg_next;
			break;
		}
	pthread_mutex_unlock(&reg_mx);
}

static void getstat_flush(void)
{
	SHF *p;

	if (tls.st_h && (tls.st_hits || tls.st_misses)) {
		pthread_mutex_lock(&reg_mx);
		for (p = reg_head; p; p = p->reg_next)
			if (p == tls.st_h && p->reg_gen == tls.st_gen)
				break;
		if (p) {
			atomic_fetch_add_explicit(&p->h->hits, tls.st_hits,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&p->h->misses, tls.st_misses,
						  memory_order_relaxed);
		}
		pthread_mutex_unlock(&reg_mx);
	}
	tls.st_hits = 0;
	tls.st_misses = 0;
}

static inline void count_get(SHF *h, int hit)
{
	if (SHF_UNLIKELY(tls.st_h != h || tls.st_gen != h->reg_gen)) {
		getstat_flush();
		tls.st_h = h;
		tls.st_gen = h->reg_gen;
	}
	if (hit)
		tls.st_hits++;
	else
		tls.st_misses++;
	if (SHF_UNLIKELY(tls.st_hits + tls.st_misses >= GETSTAT_BATCH))
		getstat_flush();
}

static void reg_atfork_prepare(void)
{
	pthread_mutex_lock(&reg_mx);
}

static void reg_atfork_release(void)
{
	pthread_mutex_unlock(&reg_mx);
}

/* Set the CLOCK use mark of the slot a get found, once per sweep. */
static inline void slot_mark(SHF *h, uint64_t *slot, uint64_t sv)
{
	if (SHF_LIKELY(!atomic_load_explicit(&h->h->byte_budget,
					     memory_order_relaxed)) ||
	    (sv & SLOT_REF))
		return;
	/* fails harmlessly if a writer changed the slot meanwhile */
	__atomic_compare_exchange_n(slot, &sv, sv | SLOT_REF, 0,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------ attach/detach */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
	tls_once_init();
	crash_init();
	pthread_atfork(reg_atfork_prepare, reg_atfork_release,
		       reg_atfork_release);
}

SHF_EXPORT void shf_init(void)
{
	pthread_once(&init_once, do_init);
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
	    atomic_load(&hd->file_used) > fsize ||
	    (hd->fixed_set && (hd->fixed_klen > (1u << 30) ||
			       hd->fixed_vlen > (1u << 30)))) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

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
	atomic_store(&hd->file_size, size);
	if (shf_mutex_init(&hd->alloc_mx) || shf_mutex_init(&hd->region_mx))
		goto fail;
	sh = (struct shard *)(m + SHARDS_OFF);
	for (i = 0; i < NSHARDS; i++) {
		uint64_t seg = data + (uint64_t)i * SEG_BYTES;
		uint64_t dir = data + (uint64_t)NSHARDS * SEG_BYTES + i * 64ULL;

		if (shf_mutex_init(&sh[i].mx))
			goto fail;
		*(uint64_t *)(m + dir) = seg; /* depth 0 */
		atomic_store(&sh[i].dir_word, dir << 6);
	}
	atomic_store(&hd->file_used, data + NSHARDS * (SEG_BYTES + 64ULL));
	atomic_thread_fence(memory_order_seq_cst);
	hd->magic = SHF_MAGIC;
	munmap(m, size);
	return 0;
fail:
	munmap(m, size);
	return -1;
}

static SHF *attach_fd(int fd, const char *path, const char *name)
{
	struct hdr hd;
	struct stat st;
	SHF *h;
	uint64_t ms;
	void *m = MAP_FAILED;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode)) {
		errno = EBADMSG;
		return NULL;
	}
	if ((uint64_t)st.st_size < sizeof(hd) ||
	    pread(fd, &hd, sizeof(hd), 0) != (ssize_t)sizeof(hd)) {
		errno = EBADMSG;
		return NULL;
	}
	if (hdr_check(&hd, (uint64_t)st.st_size) < 0)
		return NULL;
	for (ms = MAP_MAX; ms >= (64ULL << 20); ms /= 2) {
		if (ms < (uint64_t)st.st_size)
			break;
		m = mmap(NULL, ms, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED)
			break;
	}
	if (m == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
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
	atomic_store(&h->valid, (uint64_t)st.st_size);
	h->h = m;
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
	reg_add(h);
	return h;
}

static _Atomic unsigned tmp_counter;
static _Atomic unsigned file_mode = 0600;

SHF_EXPORT void shf_set_file_mode(mode_t mode)
{
	if (mode & ~(mode_t)0666) {
		errno = EINVAL;
		return;
	}
	atomic_store(&file_mode, (unsigned)(mode | 0600));
}

static SHF *do_attach(const char *path, const char *name, int create)
{
	char fname[256], tname[300];
	int dfd, fd, e;
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
	for (;;) {
		fd = openat(dfd, fname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || !create)
			break;
		/* build it under a temporary name, then link it in place */
		snprintf(tname, sizeof(tname), ".%s.%ld.%u.tmp", fname,
			 (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
		fd = openat(dfd, tname,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0)
			break;
		/* the mode asked for, whatever the umask */
		if (fchmod(fd, (mode_t)atomic_load(&file_mode)) < 0 ||
		    table_init(fd) < 0 ||
		    syscall(SYS_renameat2, dfd, tname, dfd, fname, 1 /* NOREPLACE */) < 0) {
			e = errno;
			unlinkat(dfd, tname, 0);
			close(fd);
			if (e == EEXIST)
				continue; /* somebody else won: attach theirs */
			close(dfd);
			errno = e;
			return NULL;
		}
		break;
	}
	e = errno;
	close(dfd);
	if (fd < 0) {
		errno = e;
		return NULL;
	}
	h = attach_fd(fd, path, name);
	if (!h) {
		e = errno;
		close(fd);
		errno = e;
	}
	return h;
}

SHF_EXPORT SHF *shf_attach_existing(const char *path, const char *name)
{
	return do_attach(path, name, 0);
}

SHF_EXPORT SHF *shf_attach(const char *path, const char *name,
			   uint32_t delete_upon_process_exit)
{
	SHF *h = do_attach(path, name, 1);

	if (h && delete_upon_process_exit) {
		pid_t me = getpid();
		uint64_t st = shf_proc_start_time(me);

		atomic_store(&h->h->owner_start, st);
		atomic_store(&h->h->owner_pid, me);
		if (shf_monitor_start(h) < 0) {
			int e = errno;

			shf_detach(h);
			errno = e;
			return NULL;
		}
	}
	return h;
}

SHF_EXPORT void shf_detach(SHF *h)
{
	if (!h)
		return;
	if (tls.st_h == h) {
		getstat_flush();
		tls.st_h = NULL;
	}
	reg_remove(h);
	shf_ipc_detach(h);
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

const char *shf_handle_path(SHF *h)
{
	return h->path;
}

const char *shf_handle_name(SHF *h)
{
	return h->name;
}

int shf_handle_fd(SHF *h)
{
	return h->fd;
}

int shf_owner_get(SHF *h, pid_t *pid, uint64_t *start_time)
{
	if (!h) {
		errno = EINVAL;
		return -1;
	}
	*pid = atomic_load(&h->h->owner_pid);
	*start_time = atomic_load(&h->h->owner_start);
	return 0;
}

/* ------------------------------------------------------------- regions */

void *shf_region(SHF *h, const char *name, uint64_t size, int create,
		 uint64_t *size_out)
{
	struct region *r, *fr = NULL;
	void *p = NULL;
	uint32_t i;
	int e = 0;

	if (!h || !name || strlen(name) >= SHF_REGION_NAME_MAX || !*name ||
	    (create && !size)) {
		errno = EINVAL;
		return NULL;
	}
	if (shf_mutex_lock(h, &h->h->region_mx) < 0)
		return NULL;
	for (i = 0; i < SHF_REGIONS_MAX; i++) {
		r = &h->h->regions[i];
		if (!r->off) {
			if (!fr)
				fr = r;
			continue;
		}
		if (strncmp(r->name, name, SHF_REGION_NAME_MAX))
			continue;
		if (create && r->size != size)
			e = EEXIST;
		else if (!(p = at(h, r->off, r->size)))
			e = EBADMSG;
		else if (size_out)
			*size_out = r->size;
		goto done;
	}
	if (!create) {
		e = ENOENT;
		goto done;
	}
	if (!fr) {
		e = ENOSPC;
		goto done;
	}
	{
		uint64_t off = big_alloc(h, size, 1);

		if (!off) {
			e = errno;
			goto done;
		}
		p = at(h, off, size);
		if (!p) {
			e = EBADMSG;
			goto done;
		}
		strncpy(fr->name, name, SHF_REGION_NAME_MAX - 1);
		fr->size = size;
		barrier();
		st64(&fr->off, off);
		if (size_out)
			*size_out = size;
	}
done:
	shf_mutex_unlock(&h->h->region_mx);
	if (e) {
		errno = e;
		return NULL;
	}
	return p;
}

int shf_region_remove(SHF *h, const char *name)
{
	uint32_t i;
	int rc = -1;

	if (!h || !name) {
		errno = EINVAL;
		return -1;
	}
	if (shf_mutex_lock(h, &h->h->region_mx) < 0)
		return -1;
	errno = ENOENT;
	for (i = 0; i < SHF_REGIONS_MAX; i++) {
		struct region *r = &h->h->regions[i];

		if (r->off && !strncmp(r->name, name, SHF_REGION_NAME_MAX)) {
			st64(&r->off, 0);
			memset(r->name, 0, sizeof(r->name));
			rc = 0;
			break;
		}
	}
	shf_mutex_unlock(&h->h->region_mx);
	return rc;
}

/* --------------------------------------------------------- key naming */

SHF_EXPORT void shf_make_hash(const char *key, uint32_t key_len)
{
	tls.have_key = 0;
	if (!key && key_len)
		return;
	if (tls_reserve(&tls.key, &tls.key_cap, key_len ? key_len : 1) < 0)
		return;
	if (key_len)
		memcpy(tls.key, key, key_len);
	tls.key_len = key_len;
	tls.hash = XXH3_64bits(tls.key, key_len);
	tls.have_key = 1;
}

static inline struct shard *shard_of(SHF *h, uint64_t hash)
{
	return &h->shards[hash >> 56];
}

static inline uint32_t uid_make(uint32_t shard, uint32_t ul)
{
	return (shard << 24) | ul;
}

/* --------------------------------------------------------------- reads */

#define READ_TRIES 64

enum what { W_VAL_COPY, W_KEY_COPY, W_VAL_ADDR, W_TTL };

static int copy_out(struct rec *r, enum what w)
{
	if (w == W_KEY_COPY) {
		if (tls_reserve(&tls.kbuf, &tls.kbuf_cap, r->klen + 1ULL) < 0)
			return -1;
		memcpy(tls.kbuf, r->key, r->klen);
		return 0;
	}
	if (w == W_VAL_COPY) {
		if (tls_reserve(&tls.val, &tls.val_cap, r->vlen + 1ULL) < 0)
			return -1;
		memcpy(tls.val, r->val, r->vlen);
	}
	return 0;
}

static void publish(struct rec *r, uint32_t uid, enum what w)
{
	shf_uid = uid;
	if (w == W_KEY_COPY) {
		tls.kbuf[r->klen] = 0;
		shf_key = tls.kbuf;
		shf_key_len = r->klen;
	} else if (w == W_VAL_COPY) {
		tls.val[r->vlen] = 0;
		shf_val = tls.val;
		shf_val_len = r->vlen;
	} else if (w == W_VAL_ADDR) {
		shf_val_addr = (void *)r->val;
		shf_val_len = r->vlen;
	}
}

/* Locate (by key, or by uid when by_uid) and copy out; seqlock first. */
static uint32_t do_get(SHF *h, int by_uid, uint32_t uid, enum what w)
{
	struct shard *sh;
	struct found f;
	struct clk c = { 0 };
	uint32_t s, tries, ul = uid & 0xffffff;
	int rc, locked = 0;

	shf_uid = SHF_UID_NONE;
	if (w == W_VAL_ADDR)
		shf_val_addr = NULL;
	if (!h || (!by_uid && !tls.have_key)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (by_uid && (uid == SHF_UID_NONE || ul > UID_LOCAL_MAX)) {
		count_get(h, 0);
		return SHF_RET_KEY_NONE;
	}
	sh = by_uid ? &h->shards[uid >> 24] : shard_of(h, tls.hash);
	for (tries = 0;; tries++) {
		if (tries >= READ_TRIES && !locked) {
			if (shard_lock(h, sh) < 0)
				return SHF_RET_ERROR;
			locked = 1;
		}
		s = locked ? 0 : read_begin(sh);
		if (!locked && (s & 1)) {
			cpu_relax();
			continue;
		}
		if (by_uid) {
			uint64_t *e = uid_entry(h, sh, ul), ro;

			rc = 0;
			f.slot = NULL;
			if (e && ((ro = ld64(e)) & 1) == 0 && ro &&
			    rec_get(h, ro, &f.r) && f.r.uid == ul)
				rc = 1;
			else if (!e && ul < sh->uid_next)
				rc = -1;
		} else {
			rc = idx_find(h, sh, tls.hash, tls.key, tls.key_len, &f);
		}
		if (rc == 1 && !rec_visible(&f.r, &c))
			rc = 0;
		if (rc == 1 && copy_out(&f.r, w) < 0) {
			if (locked)
				shard_unlock(h, sh);
			return SHF_RET_ERROR;
		}
		if (!locked && read_retry(sh, s))
			continue;
		if (locked)
			shard_unlock(h, sh);
		if (rc < 0) {
			errno = EBADMSG;
			return SHF_RET_ERROR;
		}
		count_get(h, rc == 1);
		if (rc == 0)
			return SHF_RET_KEY_NONE;
		if (f.slot)
			slot_mark(h, f.slot, f.sval);
		if (w == W_TTL)
			shf_val_long = (f.r.flags & KF_TTL) ?
					       (long)(f.r.expiry - clk_now(&c)) :
					       -1;
		publish(&f.r, uid_make((uint32_t)(sh - h->shards), f.r.uid), w);
		return SHF_RET_KEY_FOUND;
	}
}

SHF_EXPORT uint32_t shf_get_key_ttl(SHF *h)
{
	return do_get(h, 0, 0, W_TTL);
}

SHF_EXPORT uint32_t shf_get_key_val_copy(SHF *h)
{
	return do_get(h, 0, 0, W_VAL_COPY);
}

SHF_EXPORT uint32_t shf_get_uid_val_copy(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_VAL_COPY);
}

SHF_EXPORT uint32_t shf_get_key_key_copy(SHF *h)
{
	return do_get(h, 0, 0, W_KEY_COPY);
}

SHF_EXPORT uint32_t shf_get_uid_key_copy(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_KEY_COPY);
}

SHF_EXPORT uint32_t shf_get_key_val_addr(SHF *h)
{
	return do_get(h, 0, 0, W_VAL_ADDR);
}

SHF_EXPORT uint32_t shf_get_uid_val_addr(SHF *h, uint32_t uid)
{
	return do_get(h, 1, uid, W_VAL_ADDR);
}

/* -------------------------------------------------------------- writes */

/* Find the key under the lock, by key (tls) or by uid. */
static int locked_find(SHF *h, struct shard *sh, int by_uid, uint32_t ul,
		       struct found *f, uint64_t *hash)
{
	if (!by_uid) {
		*hash = tls.hash;
		return idx_find(h, sh, tls.hash, tls.key, tls.key_len, f);
	}
	{
		uint64_t *e = uid_entry(h, sh, ul), ro;
		struct rec r;

		if (!e || ((ro = ld64(e)) & 1) || !ro)
			return 0;
		if (!rec_get(h, ro, &r) || r.uid != ul)
			return -1;
		*hash = XXH3_64bits(r.key, r.klen);
		if (idx_find(h, sh, *hash, r.key, r.klen, f) != 1 ||
		    f->rec_off != ro)
			return -1;
		return 1;
	}
}

/* A lease ended (its record replaced or deleted): wake its waiters. */
static void lease_end(struct shard *sh)
{
	atomic_fetch_add(&sh->lease_seq, 1);
	syscall(SYS_futex, &sh->lease_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * The thread's update callback on the copy at val: 0 to commit it, else
 * the flags to OR into the result (SharedHashFile's convention).  A
 * callback set by a binary built for libshf 1.0 or 1.1 returned val_len
 * to commit; anything else meant SHF_RET_BAD_CB.
 */
static uint32_t upd_call(shf_upd_callback_t cb, char *val, uint32_t vlen)
{
	uint32_t r = cb(val, vlen);

	if (tls.upd_cb_v1)
		return r == vlen ? SHF_RET_OK : SHF_RET_BAD_CB;
	return r;
}

/*
 * Write a new record for the found key with value (val, vlen) — or, when
 * cb is set, a copy of the old value passed through cb — and commit it with
 * one store into the slot.  kflags (KF_*) and expiry are the new record's.
 * Returns 0, 1 (the callback refused, its flags in *cb_ret: nothing
 * changed), or -1 with errno.
 */
static int replace_rec(SHF *h, struct shard *sh, struct found *f,
		       const void *val, uint32_t vlen, int from_old,
		       shf_upd_callback_t cb, uint32_t *cb_ret,
		       uint32_t kflags, uint64_t expiry)
{
	uint32_t hlen, kind, was_lease = f->r.flags & KF_LEASE;
	uint64_t size = rec_size_for(h, f->r.klen, vlen, kflags, &hlen, &kind),
		 ro;

	ro = shard_alloc(h, sh, size);
	if (!ro)
		return -1;
	rec_write(h, ro, kind, f->r.uid, f->r.key, f->r.klen,
		  from_old ? f->r.val : val, vlen, hlen, expiry);
	if (cb) {
		*cb_ret = upd_call(cb, (char *)h->base + ro + hlen + f->r.klen,
				   vlen);
		if (*cb_ret != SHF_RET_OK) {
			/* the value stays as it was */
			shard_free(h, sh, ro, size);
			return 1;
		}
	}
	sh->j.uid = f->r.uid;
	sh->j.slot_off = (uint64_t)((uint8_t *)f->slot - h->base);
	sh->j.slot_old = f->sval;
	sh->j.slot_new = slot_make(slot_tag(f->sval), ro);
	sh->j.rec_old = f->rec_off;
	sh->j.rec_new = ro;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + rec_cost(size) -
			     rec_cost(f->r.size);
	barrier();
	sh->j.op = OP_REPLACE;
	barrier();
	CRASH(CP_REPL_WRITTEN);
	st64(f->slot, sh->j.slot_new); /* commit */
	CRASH(CP_REPL_COMMITTED);
	{
		uint64_t *e = uid_entry(h, sh, f->r.uid);

		if (e)
			st64(e, ro);
	}
	CRASH(CP_REPL_UID);
	rec_free(h, sh, f->rec_off);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	f->rec_off = ro;
	f->sval = sh->j.slot_new;
	rec_get(h, ro, &f->r);
	if (was_lease)
		lease_end(sh);
	return 0;
}

static int insert_new(SHF *h, struct shard *sh, uint64_t hash,
		      const void *key, uint32_t klen, const void *val,
		      uint32_t vlen, uint32_t kflags, uint64_t expiry,
		      uint32_t *ul_out)
{
	uint32_t hlen, kind, ul;
	uint64_t size = rec_size_for(h, klen, vlen, kflags, &hlen, &kind), ro,
		 *slot;

	ro = shard_alloc(h, sh, size);
	if (!ro)
		return -1;
	ul = uid_alloc(h, sh, ro);
	if (ul == UINT32_MAX) {
		int e = errno;

		shard_free(h, sh, ro, size);
		errno = e;
		return -1;
	}
	rec_write(h, ro, kind, ul, key, klen, val, vlen, hlen, expiry);
	sh->j.uid = ul;
	sh->j.rec_new = ro;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before + rec_cost(size);
	barrier();
	sh->j.op = OP_NEW;
	barrier();
	CRASH(CP_NEW_WRITTEN);
	slot = idx_insert(h, sh, hash);
	if (!slot) {
		int e = errno;

		uid_release(h, sh, ul);
		shard_free(h, sh, ro, size);
		sh->j.op = OP_NONE;
		errno = e;
		return -1;
	}
	st64(slot, slot_make(tag_of(hash), ro)); /* commit */
	CRASH(CP_NEW_COMMITTED);
	ctr_set(&sh->nkeys, sh->j.nkeys_before + 1);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	*ul_out = ul;
	return 0;
}

static void delete_found(SHF *h, struct shard *sh, struct found *f)
{
	uint64_t cost = rec_cost(f->r.size);

	sh->j.uid = f->r.uid;
	sh->j.slot_off = (uint64_t)((uint8_t *)f->slot - h->base);
	sh->j.slot_old = f->sval;
	sh->j.rec_old = f->rec_off;
	sh->j.nkeys_before = atomic_load(&sh->nkeys);
	sh->j.rbytes_before = atomic_load(&sh->rbytes);
	sh->j.rbytes_after = sh->j.rbytes_before - cost;
	barrier();
	sh->j.op = OP_DEL;
	barrier();
	st64(f->slot, 0); /* commit */
	CRASH(CP_DEL_COMMITTED);
	uid_release(h, sh, f->r.uid);
	CRASH(CP_DEL_UID);
	rec_free(h, sh, f->rec_off);
	ctr_set(&sh->nkeys, sh->j.nkeys_before - 1);
	ctr_set(&sh->rbytes, sh->j.rbytes_after);
	barrier();
	sh->j.op = OP_NONE;
	if (atomic_load_explicit(&h->h->byte_budget, memory_order_relaxed))
		atomic_fetch_sub(&h->h->cache_bytes, cost);
	if (f->r.flags & KF_LEASE)
		lease_end(sh);
}

/* ------------------------------------------------------ CLOCK, budget */

/*
 * The slot under the shard's CLOCK hand; the hand moves on by one.  The
 * hand walks every segment once per turn (a segment that several directory
 * entries share is walked from its first entry).  NULL: index unreadable.
 */
static uint64_t *hand_next(SHF *h, struct shard *sh, uint32_t *depth)
{
	uint32_t g, idx, k, l;
	uint64_t *dir = dir_get(h, atomic_load(&sh->dir_word), &g), de, so,
		 *seg;

	if (!dir)
		return NULL;
	*depth = g;
	idx = (uint32_t)(sh->hand >> 9);
	k = (uint32_t)(sh->hand & 511);
	if (idx >= (1u << g)) {
		idx = 0;
		k = 0;
	}
	de = ld64(&dir[idx]);
	l = (uint32_t)(de & 63);
	if (l > g)
		return NULL;
	idx &= ~((1u << (g - l)) - 1); /* the segment's first entry */
	so = de & ~63ULL;
	seg = (so & (PAGE - 1)) ? NULL : at(h, so, SEG_BYTES);
	if (!seg)
		return NULL;
	if (k + 1 < SEG_BUCKETS * BUCKET_SLOTS)
		sh->hand = ((uint64_t)idx << 9) | (k + 1);
	else
		sh->hand = (uint64_t)(idx + (1u << (g - l))) << 9;
	return &seg[k];
}

enum sweep { SW_EXPIRED, SW_EVICT };

/*
 * Move the hand over at most max slots, and at most one turn of the shard.
 * SW_EXPIRED: reclaim every expired key met; returns how many.
 * SW_EVICT (max is then two turns): stop at the first victim — an
 * expired key, or one whose use mark is clear (marks met are cleared) —
 * never skip_rec nor a lease still running; returns 1, or 0 if none was
 * found.  Under sh's lock.
 */
static uint32_t sweep(SHF *h, struct shard *sh, enum sweep mode,
		      uint64_t max, uint64_t skip_rec, struct clk *c)
{
	uint32_t depth, n = 0;
	uint64_t i;

	if (mode == SW_EXPIRED && !atomic_load(&h->h->ttl_used))
		return 0;
	for (i = 0; i < max; i++) {
		uint64_t *sl = hand_next(h, sh, &depth), sv;
		struct found f;
		int exp;

		if (!sl)
			break;
		if (i == 0) {
			uint64_t turn = ((1ULL << depth) + 1) * SEG_BUCKETS *
					BUCKET_SLOTS;

			if (mode == SW_EVICT)
				max = 2 * turn;
			else if (max > turn)
				max = turn;
		}
		sv = ld64(sl);
		if (!sv || slot_rec(sv) == skip_rec)
			continue;
		if (mode == SW_EVICT && (sv & SLOT_REF)) {
			uint64_t e = sv;

			__atomic_compare_exchange_n(sl, &e, sv & ~SLOT_REF, 0,
						    __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			continue;
		}
		if (!rec_get(h, slot_rec(sv), &f.r))
			continue;
		exp = rec_expired(&f.r, c);
		if (!exp && (mode == SW_EXPIRED || (f.r.flags & KF_LEASE)))
			continue;
		f.slot = sl;
		f.sval = sv;
		f.rec_off = slot_rec(sv);
		delete_found(h, sh, &f);
		if (exp)
			ctr_add(&sh->expirations, 1);
		else
			ctr_add(&sh->evictions, 1);
		n++;
		if (mode == SW_EVICT)
			break;
	}
	return n;
}

/* Slots a put's hand visits to reclaim expired keys. */
#define PUT_SWEEP 8

static __thread uint32_t evict_rot;

/*
 * Before a put adds need (> 0) bytes of records, under sh's lock: reserve
 * them in the table's count, then evict until the count is within the
 * budget — from sh first, then from other shards whose lock is free.  If
 * nothing can be evicted the put goes ahead over the budget (by its own
 * entry at most).  The count is only ever raised before a change and
 * lowered after it, so a writer killed in between leaves it too high
 * (the table then holds a little less than its budget), never too low.
 */
static void budget_reserve(SHF *h, struct shard *sh, uint64_t budget,
			   int64_t need, uint64_t skip_rec, struct clk *c)
{
	uint32_t si = (uint32_t)(sh - h->shards), i, start;

	atomic_fetch_add(&h->h->cache_bytes, (uint64_t)need);
	while (atomic_load(&h->h->cache_bytes) > budget &&
	       sweep(h, sh, SW_EVICT, 1, skip_rec, c))
		;
	start = ++evict_rot;
	for (i = 0; i < NSHARDS - 1 &&
		    atomic_load(&h->h->cache_bytes) > budget; i++) {
		struct shard *t = &h->shards[(si + 1 + (start + i) %
					      (NSHARDS - 1)) % NSHARDS];

		if (!atomic_load(&t->nkeys) || shard_trylock(h, t) < 0)
			continue;
		while (atomic_load(&h->h->cache_bytes) > budget &&
		       sweep(h, t, SW_EVICT, 1, 0, c))
			;
		shard_unlock(h, t);
	}
}

static inline uint64_t ttl_expiry(SHF *h, uint32_t ttl_ms, struct clk *c,
				  uint32_t *kflags)
{
	if (!ttl_ms) {
		*kflags = 0;
		return 0;
	}
	*kflags = KF_TTL;
	if (SHF_UNLIKELY(!atomic_load_explicit(&h->h->ttl_used,
					       memory_order_relaxed)))
		atomic_store(&h->h->ttl_used, 1);
	return clk_now(c) + ttl_ms;
}

/*
 * Store (key of tls, val) in sh (locked): over the found record if found
 * (keeping its UID), else as a new key; with kflags/expiry.  Keeps the
 * budget.  0 (*ul set), or -1 with errno.
 */
static int store(SHF *h, struct shard *sh, struct found *f, int found,
		 uint64_t hash, const void *val, uint32_t vlen,
		 uint32_t kflags, uint64_t expiry, struct clk *c,
		 uint32_t *ul)
{
	uint64_t budget = atomic_load_explicit(&h->h->byte_budget,
					       memory_order_relaxed);
	int64_t need = 0;
	uint32_t hlen, kind;
	int rc;

	if (budget) {
		need = (int64_t)rec_cost(rec_size_for(h, tls.key_len, vlen,
						      kflags, &hlen, &kind));
		if (found)
			need -= (int64_t)rec_cost(f->r.size);
		if (need > 0)
			budget_reserve(h, sh, budget, need,
				       found ? f->rec_off : 0, c);
	}
	if (found) {
		rc = replace_rec(h, sh, f, val, vlen, 0, NULL, NULL, kflags,
				 expiry);
		*ul = f->r.uid;
	} else {
		rc = insert_new(h, sh, hash, tls.key, tls.key_len, val, vlen,
				kflags, expiry, ul);
	}
	if (rc < 0 && need > 0) {
		int e = errno;

		atomic_fetch_sub(&h->h->cache_bytes, (uint64_t)need);
		errno = e;
	} else if (rc >= 0 && need < 0) {
		atomic_fetch_add(&h->h->cache_bytes, (uint64_t)need);
	}
	return rc < 0 ? -1 : 0;
}

/* Unlock (if sh) keeping errno, and return ret. */
static uint32_t unlock_ret(SHF *h, struct shard *sh, uint32_t ret)
{
	int e = errno;

	if (sh)
		shard_unlock(h, sh);
	errno = e;
	return ret;
}

/*
 * Start fetching, for writing, the place a record of size bytes would take
 * (its class's free list head, or the chunk), so that its miss overlaps the
 * index lookup's.  A hint: sh's lock need not be held (a prefetch never
 * faults).
 */
static inline void prefetch_alloc(SHF *h, struct shard *sh, uint64_t size)
{
	uint64_t b, off;

	if (size > CLASS_MAX_SHARD)
		return;
	off = ld64(&sh->free_head[cls_of(size < REC_MIN ? REC_MIN : size, &b)]);
	if (!off)
		off = ld64(&sh->chunk_cur);
	if (off < h->map_size)
		__builtin_prefetch(h->base + off, 1);
}

/* The same for the UID entry that a new key would take. */
static inline void prefetch_uid(SHF *h, struct shard *sh)
{
	uint32_t ul = __atomic_load_n(&sh->uid_free, __ATOMIC_RELAXED);
	uint64_t *e;

	ul = ul ? ul - 1 : __atomic_load_n(&sh->uid_next, __ATOMIC_RELAXED);
	if (ul <= UID_LOCAL_MAX && (e = uid_entry(h, sh, ul)) != NULL)
		__builtin_prefetch(e, 1);
}

/* Lock a key's shard for a write; reclaim a few expired keys first. */
static int write_lock(SHF *h, struct shard *sh, struct clk *c)
{
	if (shard_lock(h, sh) < 0)
		return -1;
	if (SHF_UNLIKELY(atomic_load_explicit(&h->h->ttl_used,
					      memory_order_relaxed)))
		sweep(h, sh, SW_EXPIRED, PUT_SWEEP, 0, c);
	return 0;
}

enum put_mode { P_PUT, P_IF_ABSENT, P_REPLACE, P_CAS, P_IF_LEASED };

static int lease_is_mine(const struct rec *r);

/*
 * Prefetch (for writing if write) the two bucket lines of a key in the
 * directory of dw; 0 if dw leads to no segment.
 */
static inline int prefetch_buckets_dw(SHF *h, uint64_t dw, uint64_t hash,
				      int write)
{
	uint32_t tag = tag_of(hash), idx, b[2];
	uint64_t so, *seg = seg_for_dw(h, dw, tag, &so, &idx);

	if (!seg)
		return 0;
	buckets_of(hash, tag, b);
	if (write) {
		__builtin_prefetch(seg + b[0] * BUCKET_SLOTS, 1);
		__builtin_prefetch(seg + b[1] * BUCKET_SLOTS, 1);
	} else {
		__builtin_prefetch(seg + b[0] * BUCKET_SLOTS);
		__builtin_prefetch(seg + b[1] * BUCKET_SLOTS);
	}
	return 1;
}

/*
 * Hints for a write to sh, before its lock is taken: start moving here the
 * shard's lines that a put writes (the other writers of the shard took
 * them), and the key's two buckets, found through the directory this
 * process last saw (a stale one only prefetches the wrong lines), so that
 * the bucket's miss need not wait for the shard's first line.
 */
static inline void prefetch_put(SHF *h, struct shard *sh, uint64_t hash)
{
	uint64_t dw = atomic_load_explicit(&h->dw_hint[hash >> 56],
					   memory_order_relaxed);
	const char *p = (const char *)sh;

	__builtin_prefetch(p, 1);
	__builtin_prefetch(&sh->nkeys, 1);
	__builtin_prefetch(&sh->puts, 1);
	__builtin_prefetch(&sh->j, 1);
	__builtin_prefetch((const char *)&sh->j + 64, 1);
	__builtin_prefetch((const char *)&sh->j + 128, 1);
	if (!dw || !prefetch_buckets_dw(h, dw, hash, 1))
		prefetch_buckets_dw(h,
				    atomic_load_explicit(&sh->dir_word,
							 memory_order_acquire),
				    hash, 1);
}

/* Under sh's lock: keep the process's hint of sh's directory current. */
static inline void dw_hint_set(SHF *h, struct shard *sh, uint64_t hash)
{
	uint64_t dw = atomic_load_explicit(&sh->dir_word,
					   memory_order_relaxed);

	if (atomic_load_explicit(&h->dw_hint[hash >> 56],
				 memory_order_relaxed) != dw)
		atomic_store_explicit(&h->dw_hint[hash >> 56], dw,
				      memory_order_relaxed);
}

/* ttl_ms: UINT32_MAX for the table's default. */
static uint32_t do_put(SHF *h, const char *val, uint32_t vlen,
		       enum put_mode mode, const char *old, uint32_t old_len,
		       uint32_t ttl_ms)
{
	struct shard *sh;
	struct found f;
	struct clk c = { 0 };
	uint64_t hash, expiry;
	uint32_t ul, ret, kflags;
	int rc, vis;

	shf_uid = SHF_UID_NONE;
	if (!h || !tls.have_key || (!val && mode == P_CAS) ||
	    (uint64_t)tls.key_len + vlen > 0xffffffc0ULL) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (h->h->fixed_set && (tls.key_len != h->h->fixed_klen ||
				vlen != h->h->fixed_vlen)) {
		errno = EINVAL;
		return SHF_RET_ERROR | SHF_RET_BAD_VAL;
	}
	if (ttl_ms == UINT32_MAX)
		ttl_ms = atomic_load_explicit(&h->h->ttl_default,
					      memory_order_relaxed);
	hash = tls.hash;
	sh = shard_of(h, hash);
	/* hints, read without the lock: the misses overlap with taking it */
	prefetch_put(h, sh, hash);
	prefetch_alloc(h, sh, rec_size_for(h, tls.key_len, vlen, 0, &kflags,
					   &ul));
	prefetch_uid(h, sh);
	if (write_lock(h, sh, &c) < 0)
		return SHF_RET_ERROR;
	rc = idx_find(h, sh, hash, tls.key, tls.key_len, &f);
	dw_hint_set(h, sh, hash);
	vis = rc == 1 && rec_visible(&f.r, &c);
	if (rc < 0) {
		errno = EBADMSG;
		ret = SHF_RET_ERROR;
	} else if (mode == P_IF_LEASED &&
		   (rc != 1 || vis || !lease_is_mine(&f.r) ||
		    rec_expired(&f.r, &c))) {
		/* the lease ended (put, deleted, expired, taken over) */
		ret = vis ? SHF_RET_KEY_FOUND : SHF_RET_KEY_NONE;
		if (vis)
			shf_uid = uid_make(hash >> 56, f.r.uid);
	} else if (vis && mode == P_IF_ABSENT) {
		ret = SHF_RET_KEY_FOUND;
		shf_uid = uid_make(hash >> 56, f.r.uid);
	} else if (vis && mode == P_CAS &&
		   (f.r.vlen != old_len || memcmp(f.r.val, old, old_len))) {
		ret = SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL;
		shf_uid = uid_make(hash >> 56, f.r.uid);
	} else if (!vis && (mode == P_REPLACE || mode == P_CAS)) {
		ret = SHF_RET_KEY_NONE;
	} else {
		int expired = rc == 1 && !vis && rec_expired(&f.r, &c);

		expiry = ttl_expiry(h, ttl_ms, &c, &kflags);
		if (store(h, sh, &f, rc == 1, hash, val, vlen, kflags, expiry,
			  &c, &ul) < 0) {
			ret = SHF_RET_ERROR;
		} else {
			ret = SHF_RET_KEY_PUT;
			if (vis && mode != P_PUT)
				ret |= SHF_RET_KEY_FOUND;
			if (mode == P_IF_LEASED)
				tls.lease_nonce = 0;
			if (expired)
				ctr_add(&sh->expirations, 1);
			shf_uid = uid_make(hash >> 56, ul);
			ctr_add(&sh->puts, 1);
		}
	}
	return unlock_ret(h, sh, ret);
}

SHF_EXPORT uint32_t shf_put_key_val(SHF *h, const char *val, uint32_t vlen)
{
	return do_put(h, val, vlen, P_PUT, NULL, 0, UINT32_MAX);
}

SHF_EXPORT uint32_t shf_put_key_val_ttl(SHF *h, const char *val,
					uint32_t vlen, uint32_t ttl_ms)
{
	/* UINT32_MAX ms is a TTL too here, not "the default" */
	return do_put(h, val, vlen, P_PUT, NULL, 0,
		      ttl_ms == UINT32_MAX ? UINT32_MAX - 1 : ttl_ms);
}

SHF_EXPORT uint32_t shf_put_key_val_if_leased(SHF *h, const char *val,
					      uint32_t vlen, uint32_t ttl_ms)
{
	if (!tls.have_key || !tls.lease_nonce || tls.lease_hash != tls.hash) {
		shf_uid = SHF_UID_NONE;
		if (!h || !tls.have_key) {
			errno = EINVAL;
			return SHF_RET_ERROR;
		}
		return SHF_RET_KEY_NONE; /* no lease of this thread's */
	}
	return do_put(h, val, vlen, P_IF_LEASED, NULL, 0,
		      ttl_ms == UINT32_MAX ? UINT32_MAX - 1 : ttl_ms);
}

SHF_EXPORT uint32_t shf_put_key_val_if_absent(SHF *h, const char *val,
					      uint32_t vlen)
{
	return do_put(h, val, vlen, P_IF_ABSENT, NULL, 0, UINT32_MAX);
}

SHF_EXPORT uint32_t shf_replace_key_val(SHF *h, const char *val,
					uint32_t vlen)
{
	return do_put(h, val, vlen, P_REPLACE, NULL, 0, UINT32_MAX);
}

SHF_EXPORT uint32_t shf_cas_key_val(SHF *h, const char *old,
				    uint32_t old_len, const char *val,
				    uint32_t vlen)
{
	if ((!old && old_len) || (!val && vlen)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	return do_put(h, val ? val : "", vlen, P_CAS, old ? old : "", old_len,
		      UINT32_MAX);
}

/*
 * Lock the shard of the key (tls) or uid and find it: *rc 1 found, 0 absent
 * (shard locked, returned), -2 error (nothing locked, errno set).  *vis
 * tells whether a found record is visible (not a lease, not expired).
 */
static struct shard *lock_find(SHF *h, int by_uid, uint32_t uid,
			       struct found *f, uint64_t *hash, int *rc,
			       int *vis, struct clk *c)
{
	struct shard *sh;

	shf_uid = SHF_UID_NONE;
	*vis = 0;
	if (!h || (!by_uid && !tls.have_key)) {
		errno = EINVAL;
		*rc = -2;
		return NULL;
	}
	if (by_uid && (uid == SHF_UID_NONE || (uid & 0xffffff) > UID_LOCAL_MAX)) {
		*rc = 0;
		return NULL;
	}
	sh = by_uid ? &h->shards[uid >> 24] : shard_of(h, tls.hash);
	if (!by_uid)
		prefetch_put(h, sh, tls.hash);
	if (write_lock(h, sh, c) < 0) {
		*rc = -2;
		return NULL;
	}
	*rc = locked_find(h, sh, by_uid, uid & 0xffffff, f, hash);
	if (!by_uid)
		dw_hint_set(h, sh, tls.hash);
	if (*rc < 0) { /* the shard's structure is unreadable */
		shard_unlock(h, sh);
		errno = EBADMSG;
		*rc = -2;
		return NULL;
	}
	*vis = *rc == 1 && rec_visible(&f->r, c);
	return sh;
}

/*
 * Delete.  With shf_ttl set (one shot, SharedHashFile's conditional
 * delete), only a value whose first 4 bytes equal it is deleted, and it
 * is copied to shf_val first; another value gives FOUND|NOT_TTL.
 */
static uint32_t do_del(SHF *h, int by_uid, uint32_t uid)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash;
	uint32_t want = shf_ttl;
	int rc, vis;
	struct shard *sh;

	shf_ttl = 0;
	sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);
	if (rc == -2)
		return SHF_RET_ERROR;
	if (rc == 0)
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	if (want && vis) {
		if (f.r.vlen < sizeof(want) ||
		    memcmp(f.r.val, &want, sizeof(want))) {
			shf_uid = uid_make((uint32_t)(sh - h->shards),
					   f.r.uid);
			return unlock_ret(h, sh, SHF_RET_KEY_FOUND |
						       SHF_RET_NOT_TTL);
		}
		if (copy_out(&f.r, W_VAL_COPY) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
	}
	if (!vis) { /* expired or a lease: no value, but remove it */
		if (rec_expired(&f.r, &c))
			ctr_add(&sh->expirations, 1);
		delete_found(h, sh, &f);
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	}
	delete_found(h, sh, &f);
	ctr_add(&sh->dels, 1);
	return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
}

SHF_EXPORT uint32_t shf_del_key_val(SHF *h)
{
	return do_del(h, 0, 0);
}

SHF_EXPORT uint32_t shf_del_uid_val(SHF *h, uint32_t uid)
{
	return do_del(h, 1, uid);
}

/* The built-in callback of shf_upd_callback_copy(). */
static uint32_t copy_cb(const char *val, uint32_t val_len)
{
	if (val_len != tls.upd_len)
		return SHF_RET_BAD_CB;
	memcpy((char *)val, tls.upd_val, val_len);
	return SHF_RET_OK;
}

/* Both versions are bound with .symver, as glibc does for its compat ones. */
void shf_upd_callback_set_v2(shf_upd_callback_t cb);
__asm__(".symver shf_upd_callback_set_v2,shf_upd_callback_set@@LIBSHF_1.2");
SHF_EXPORT void shf_upd_callback_set_v2(shf_upd_callback_t cb)
{
	tls.upd_cb = cb;
	tls.upd_cb_v1 = 0;
}

/*
 * Binaries built for libshf 1.0 and 1.1 bind this one: their callbacks
 * return val_len to commit (see upd_call()).
 */
void shf_upd_callback_set_v1(shf_upd_callback_t cb);
__asm__(".symver shf_upd_callback_set_v1,shf_upd_callback_set@LIBSHF_1.0");
SHF_EXPORT void shf_upd_callback_set_v1(shf_upd_callback_t cb)
{
	tls.upd_cb = cb;
	tls.upd_cb_v1 = 1;
}

SHF_EXPORT uint32_t shf_upd_callback_copy(const char *val, uint32_t val_len)
{
	if ((!val && val_len) ||
	    tls_reserve(&tls.upd_val, &tls.upd_cap, val_len + 1ULL) < 0) {
		if (!val && val_len)
			errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (val_len)
		memcpy(tls.upd_val, val, val_len);
	tls.upd_len = val_len;
	tls.upd_cb = copy_cb;
	tls.upd_cb_v1 = 0;
	return SHF_RET_OK;
}

/*
 * Update: copy the record, let the callback change the copy, commit the copy
 * with one store (a crash leaves the old value or the new, never a mix).
 * The key keeps its expiry.
 */
static uint32_t do_upd(SHF *h, int by_uid, uint32_t uid)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash;
	uint32_t ret, ul, cb_ret = SHF_RET_OK;
	int rc, vis;
	struct shard *sh;

	sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);
	if (rc == -2)
		return SHF_RET_ERROR;
	if (!vis)
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	if (!tls.upd_cb) { /* no callback set in this thread */
		errno = EINVAL;
		return unlock_ret(h, sh, SHF_RET_ERROR);
	}
	ul = f.r.uid;
	shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
	rc = replace_rec(h, sh, &f, NULL, f.r.vlen, 1, tls.upd_cb, &cb_ret,
			 f.r.flags & KF_TTL, f.r.expiry);
	if (rc < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	ret = SHF_RET_KEY_FOUND;
	if (rc > 0)
		ret |= cb_ret;
	return unlock_ret(h, sh, ret);
}

SHF_EXPORT uint32_t shf_upd_key_val(SHF *h)
{
	return do_upd(h, 0, 0);
}

SHF_EXPORT uint32_t shf_upd_uid_val(SHF *h, uint32_t uid)
{
	return do_upd(h, 1, uid);
}

static uint32_t do_add(SHF *h, int by_uid, uint32_t uid, long add)
{
	struct found f;
	struct clk c = { 0 };
	uint64_t hash, expiry;
	long v;
	uint32_t ul, kflags;
	int rc, vis;
	struct shard *sh = lock_find(h, by_uid, uid, &f, &hash, &rc, &vis, &c);

	if (rc == -2)
		return SHF_RET_ERROR;
	if (!vis) {
		int expired = rc == 1 && rec_expired(&f.r, &c);

		if (by_uid || add == 0)
			return unlock_ret(h, sh, SHF_RET_KEY_NONE);
		if (h->h->fixed_set && (tls.key_len != h->h->fixed_klen ||
					h->h->fixed_vlen != sizeof(long))) {
			errno = EINVAL;
			return unlock_ret(h, sh, SHF_RET_ERROR | SHF_RET_BAD_VAL);
		}
		expiry = ttl_expiry(h, atomic_load(&h->h->ttl_default), &c,
				    &kflags);
		if (store(h, sh, &f, rc == 1, hash, &add, sizeof(long), kflags,
			  expiry, &c, &ul) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
		if (expired)
			ctr_add(&sh->expirations, 1);
		ctr_add(&sh->puts, 1);
		shf_val_long = add;
		shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
	}
	shf_uid = uid_make((uint32_t)(sh - h->shards), f.r.uid);
	if (f.r.vlen != sizeof(long))
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL);
	memcpy(&v, f.r.val, sizeof(v));
	v = (long)((unsigned long)v + (unsigned long)add);
	shf_val_long = v;
	if (v == 0) {
		delete_found(h, sh, &f);
		ctr_add(&sh->dels, 1);
		shf_uid = SHF_UID_NONE;
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
	}
	if (replace_rec(h, sh, &f, &v, sizeof(v), 0, NULL, NULL,
			f.r.flags & KF_TTL, f.r.expiry) < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
}

SHF_EXPORT uint32_t shf_add_key_val(SHF *h, long add)
{
	return do_add(h, 0, 0, add);
}

SHF_EXPORT uint32_t shf_add_uid_val(SHF *h, uint32_t uid, long add)
{
	return do_add(h, 1, uid, add);
}

/* The sum is published with one store under the shard's lock, so the two
 * flavours are equally atomic; _atom is kept for source compatibility. */
SHF_EXPORT uint32_t shf_add_key_val_atom(SHF *h, long add)
{
	return do_add(h, 0, 0, add);
}

SHF_EXPORT uint32_t shf_add_uid_val_atom(SHF *h, uint32_t uid, long add)
{
	return do_add(h, 1, uid, add);
}

/* ---------------------------------------------------------- cache mode */

SHF_EXPORT uint32_t shf_set_ttl_default(SHF *h, uint32_t ttl_ms)
{
	if (!h) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (ttl_ms)
		atomic_store(&h->h->ttl_used, 1);
	atomic_store(&h->h->ttl_default, ttl_ms);
	return SHF_RET_OK;
}

/* Lock every shard, in order; the number locked (NSHARDS: all). */
static uint32_t lock_all(SHF *h)
{
	uint32_t n;

	for (n = 0; n < NSHARDS; n++)
		if (shard_lock(h, &h->shards[n]) < 0)
			break;
	return n;
}

static void unlock_all(SHF *h, uint32_t n)
{
	while (n)
		shard_unlock(h, &h->shards[--n]);
}

/*
 * The table's count of record bytes, made again from the shards'.  Exact
 * with all shards locked; from a shard's recovery (one lock) it misses at
 * most what the writers of other shards had reserved but not yet stored.
 */
static void cache_bytes_recount(SHF *h)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < NSHARDS; i++)
		sum += atomic_load(&h->shards[i].rbytes);
	atomic_store(&h->h->cache_bytes, sum);
}

SHF_EXPORT uint32_t shf_set_byte_budget(SHF *h, uint64_t bytes)
{
	uint32_t n;
	int e;

	if (!h) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	n = lock_all(h);
	if (n < NSHARDS) {
		e = errno;
		unlock_all(h, n);
		errno = e;
		return SHF_RET_ERROR;
	}
	cache_bytes_recount(h);
	atomic_store(&h->h->byte_budget, bytes);
	unlock_all(h, n);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_expire(SHF *h, uint32_t max_slots)
{
	uint32_t si, n = 0;

	if (!h) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	if (!atomic_load(&h->h->ttl_used))
		return 0;
	for (si = 0; si < NSHARDS; si++) {
		struct shard *sh = &h->shards[si];
		struct clk c = { 0 };

		if (!atomic_load(&sh->nkeys))
			continue;
		if (shard_lock(h, sh) < 0)
			return UINT32_MAX;
		n += sweep(h, sh, SW_EXPIRED, max_slots, 0, &c);
		shard_unlock(h, sh);
	}
	return n;
}

/* A lease's value: the process holding it. */
struct lease_val {
	int32_t pid;
	uint32_t nonce; /* which grant (shf_put_key_val_if_leased) */
	uint64_t start; /* start time of the process (pid reuse) */
};

static _Atomic pid_t id_pid;
static _Atomic uint64_t id_start;

static void my_identity(struct lease_val *lv)
{
	pid_t me = getpid();

	if (atomic_load(&id_pid) != me) {
		atomic_store(&id_start, shf_proc_start_time(me));
		atomic_store(&id_pid, me);
	}
	memset(lv, 0, sizeof(*lv));
	lv->pid = me;
	lv->start = atomic_load(&id_start);
}

/* A new grant's nonce: never 0, distinct within the process. */
static uint32_t lease_nonce_new(void)
{
	static _Atomic uint32_t next;
	uint32_t n;

	do
		n = atomic_fetch_add(&next, 1) + 1;
	while (!n);
	return n;
}

/* Is r a lease of the grant this thread was last given (for its key)? */
static int lease_is_mine(const struct rec *r)
{
	struct lease_val lv = { 0 }, me;

	if (!(r->flags & KF_LEASE) || r->vlen < sizeof(lv))
		return 0;
	memcpy(&lv, r->val, sizeof(lv));
	my_identity(&me);
	return lv.pid == me.pid && lv.start == me.start &&
	       lv.nonce == tls.lease_nonce && tls.lease_hash == tls.hash;
}

/* Does the process that took the lease still exist? */
static int holder_alive(const struct lease_val *lv)
{
	uint64_t st;

	if (lv->pid <= 0)
		return 0;
	if (kill(lv->pid, 0) < 0 && errno == ESRCH)
		return 0;
	st = shf_proc_start_time(lv->pid);
	if (!st)
		return errno != ENOENT && errno != ESRCH; /* unknown: alive */
	return !lv->start || st == lv->start;
}

static uint64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* How often a waiter looks at the lease's holder. */
#define LEASE_POLL_MS 50

SHF_EXPORT uint32_t shf_get_key_val_copy_or_lease(SHF *h, uint32_t lease_ms,
						  uint32_t wait_ms)
{
	uint64_t deadline, now;
	struct lease_val me;
	int waited = 0;

	if (!h || !tls.have_key || !lease_ms) {
		shf_uid = SHF_UID_NONE;
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (h->h->fixed_set && tls.key_len != h->h->fixed_klen) {
		shf_uid = SHF_UID_NONE;
		errno = EINVAL;
		return SHF_RET_ERROR | SHF_RET_BAD_VAL;
	}
	my_identity(&me);
	deadline = mono_ms() + wait_ms;
	for (;;) {
		struct shard *sh;
		struct found f;
		struct clk c = { 0 };
		uint32_t ret, ul, seq;
		int rc, expired;

		ret = do_get(h, 0, 0, W_VAL_COPY);
		if (ret != SHF_RET_KEY_NONE)
			return ret;
		sh = shard_of(h, tls.hash);
		if (write_lock(h, sh, &c) < 0)
			return SHF_RET_ERROR;
		rc = idx_find(h, sh, tls.hash, tls.key, tls.key_len, &f);
		if (rc < 0) {
			errno = EBADMSG;
			return unlock_ret(h, sh, SHF_RET_ERROR);
		}
		if (rc == 1 && rec_visible(&f.r, &c)) { /* it just came */
			if (copy_out(&f.r, W_VAL_COPY) < 0)
				return unlock_ret(h, sh, SHF_RET_ERROR);
			publish(&f.r, uid_make((uint32_t)(sh - h->shards),
					       f.r.uid), W_VAL_COPY);
			return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
		}
		expired = rc == 1 && rec_expired(&f.r, &c);
		if (rc == 1 && (f.r.flags & KF_LEASE) && !expired) {
			struct lease_val lv = { 0 };

			memcpy(&lv, f.r.val,
			       f.r.vlen < sizeof(lv) ? f.r.vlen : sizeof(lv));
			if (lv.pid == me.pid && lv.start == me.start) {
				shf_uid = uid_make((uint32_t)(sh - h->shards),
						   f.r.uid);
				tls.lease_hash = tls.hash;
				tls.lease_nonce = lv.nonce;
				return unlock_ret(h, sh, SHF_RET_KEY_NONE |
							       SHF_RET_LEASED);
			}
			if (holder_alive(&lv)) { /* wait for its value */
				struct timespec ts;
				uint64_t t;

				seq = atomic_load(&sh->lease_seq);
				shard_unlock(h, sh);
				now = mono_ms();
				if (now >= deadline) {
					shf_uid = SHF_UID_NONE;
					errno = ETIMEDOUT;
					return SHF_RET_KEY_NONE | SHF_RET_ERROR;
				}
				if (!waited) {
					waited = 1;
					atomic_fetch_add(&h->h->lease_waits, 1);
				}
				t = deadline - now;
				if (t > LEASE_POLL_MS)
					t = LEASE_POLL_MS;
				ts.tv_sec = (time_t)(t / 1000);
				ts.tv_nsec = (long)(t % 1000) * 1000000L;
				syscall(SYS_futex, &sh->lease_seq, FUTEX_WAIT, seq,
					&ts, NULL, 0);
				continue;
			}
			/* its holder is gone: take the lease over */
		}
		/* no value: take the lease (over an expired key or lease) */
		expired = expired && !(f.r.flags & KF_LEASE);
		atomic_store(&h->h->ttl_used, 1);
		me.nonce = lease_nonce_new();
		if (store(h, sh, &f, rc == 1, tls.hash, &me, sizeof(me),
			  KF_LEASE | KF_TTL, clk_now(&c) + lease_ms, &c,
			  &ul) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
		if (expired)
			ctr_add(&sh->expirations, 1);
		atomic_fetch_add(&h->h->leases, 1);
		tls.lease_hash = tls.hash;
		tls.lease_nonce = me.nonce;
		shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
		return unlock_ret(h, sh, SHF_RET_KEY_NONE | SHF_RET_LEASED);
	}
}

/* ------------------------------------------------------------ settings */

SHF_EXPORT void shf_set_is_lockable(SHF *h, uint32_t is_lockable)
{
	if (h)
		h->lockable = is_lockable ? 1 : 0;
}

SHF_EXPORT void shf_set_is_fixed_len(SHF *h, uint32_t key_len,
				     uint32_t val_len)
{
	uint32_t i, n;
	int busy = 0;

	if (!h || !key_len || !val_len || key_len > (1u << 30) ||
	    val_len > (1u << 30)) {
		errno = EINVAL;
		return;
	}
	n = lock_all(h);
	if (n < NSHARDS) {
		busy = -1;
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
	if (busy > 0)
		errno = EBUSY;
}

/* ----------------------------------------------------------- iteration */

struct snap {
	char *buf;
	uint64_t len, cap;
	uint32_t count;
};

static int snap_add(struct snap *s, struct rec *r, uint32_t uid)
{
	uint64_t need = 12 + (uint64_t)r->klen + r->vlen;
	uint32_t hdr[3] = { uid, r->klen, r->vlen };

	if (s->len + need > s->cap) {
		uint64_t n = s->cap ? s->cap : 4096;
		char *p;

		while (n < s->len + need)
			n *= 2;
		p = realloc(s->buf, n);
		if (!p) {
			errno = ENOMEM;
			return -1;
		}
		s->buf = p;
		s->cap = n;
	}
	memcpy(s->buf + s->len, hdr, 12);
	memcpy(s->buf + s->len + 12, r->key, r->klen);
	memcpy(s->buf + s->len + 12 + r->klen, r->val, r->vlen);
	s->len += need;
	s->count++;
	return 0;
}

/* Copy the live pairs of one shard into s; 0, -1 error, 1 retry. */
static int snap_shard_once(SHF *h, uint32_t si, struct snap *s)
{
	struct shard *sh = &h->shards[si];
	struct clk c = { 0 };
	uint32_t g, i, k;
	uint64_t *dir = dir_get(h, atomic_load_explicit(&sh->dir_word,
							memory_order_acquire),
				&g);

	s->len = 0;
	s->count = 0;
	if (!dir)
		return 1;
	for (i = 0; i < (1u << g); i++) {
		uint64_t de = ld64(&dir[i]), *seg;
		uint32_t l = (uint32_t)(de & 63);

		if (l > g)
			return 1;
		if (i & ((1u << (g - l)) - 1))
			continue; /* not the first entry for this segment */
		seg = at(h, de & ~63ULL, SEG_BYTES);
		if (!seg)
			return 1;
		for (k = 0; k < SEG_BUCKETS * BUCKET_SLOTS; k++) {
			uint64_t sv = ld64(&seg[k]);
			struct rec r;

			if (!sv)
				continue;
			if (!rec_get(h, slot_rec(sv), &r))
				return 1;
			if (!rec_visible(&r, &c))
				continue; /* expired, or a lease */
			if (snap_add(s, &r, uid_make(si, r.uid)) < 0)
				return -1;
		}
	}
	return 0;
}

static int snap_shard(SHF *h, uint32_t si, struct snap *s)
{
	struct shard *sh = &h->shards[si];
	uint32_t tries, q;
	int rc;

	for (tries = 0; tries < 8; tries++) {
		q = read_begin(sh);
		if (q & 1) {
			cpu_relax();
			continue;
		}
		rc = snap_shard_once(h, si, s);
		if (rc < 0)
			return -1;
		if (!read_retry(sh, q) && rc == 0)
			return 0;
	}
	if (shard_lock(h, sh) < 0)
		return -1;
	rc = snap_shard_once(h, si, s);
	shard_unlock(h, sh);
	if (rc > 0) {
		errno = EBADMSG;
		rc = -1;
	}
	return rc;
}

SHF_EXPORT uint32_t shf_iterate(SHF *h, shf_iterate_cb_t cb, void *arg)
{
	struct snap s = { 0 };
	uint32_t si, n;
	uint64_t off;

	if (!h || !cb) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	for (si = 0; si < NSHARDS; si++) {
		if (snap_shard(h, si, &s) < 0) {
			free(s.buf);
			return SHF_RET_ERROR;
		}
		for (n = 0, off = 0; n < s.count; n++) {
			uint32_t hd[3];

			memcpy(hd, s.buf + off, 12);
			if (cb(s.buf + off + 12, hd[1], s.buf + off + 12 + hd[1],
			       hd[2], hd[0], arg)) {
				free(s.buf);
				return SHF_RET_OK;
			}
			off += 12 + (uint64_t)hd[1] + hd[2];
		}
	}
	free(s.buf);
	return SHF_RET_OK;
}

/*
 * SharedHashFile's raw walk, kept for source compatibility: copies the live
 * pairs of shard *win into shf_val as records of u32 uid, u32 key length,
 * u32 value length, key, value; shf_val_len is the bytes copied.  Then
 * advances *win (and sets *tab to 0); past the last shard shf_val_len is 0.
 */
SHF_EXPORT void shf_tab_copy_iterate(SHF *h, uint32_t *win, uint32_t *tab)
{
	struct snap s = { 0 };

	shf_val_len = 0;
	shf_tab = NULL;
	shf_tab_len = 0;
	if (!h || !win || !tab || *win >= NSHARDS) {
		errno = EINVAL;
		return;
	}
	if (snap_shard(h, *win, &s) == 0 &&
	    tls_reserve(&tls.val, &tls.val_cap, s.len + 1) == 0) {
		if (s.len)
			memcpy(tls.val, s.buf, s.len);
		shf_val = tls.val;
		shf_val_len = (uint32_t)s.len;
		shf_tab = tls.val;
		shf_tab_len = (uint32_t)s.len;
	}
	free(s.buf);
	*win = (*win + 1) % NSHARDS; /* 0 again: the walk is complete */
	*tab = 0;
}

/* --------------------------------------------------------------- stats */

SHF_EXPORT uint32_t shf_get_stats(SHF *h, struct shf_stats *out, size_t size)
{
	struct shf_stats st;
	uint32_t i;

	if (!h || !out) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (tls.st_h == h)
		getstat_flush();
	memset(&st, 0, sizeof(st));
	for (i = 0; i < NSHARDS; i++) {
		struct shard *sh = &h->shards[i];

		st.bytes_cached += atomic_load(&sh->rbytes);
		st.evictions += atomic_load(&sh->evictions);
		st.expirations += atomic_load(&sh->expirations);
		st.keys += atomic_load(&sh->nkeys);
		st.bytes_used += atomic_load(&sh->bytes_used);
		st.bytes_free += atomic_load(&sh->bytes_free);
		st.splits += atomic_load(&sh->splits);
		st.puts += atomic_load(&sh->puts);
		st.dels += atomic_load(&sh->dels);
	}
	st.byte_budget = atomic_load(&h->h->byte_budget);
	/*
	 * With a budget: the table's count, which the budget bounds (the sum
	 * of the shards', read one by one while writers move records between
	 * them, can be larger than any count the table ever had).
	 */
	if (st.byte_budget)
		st.bytes_cached = atomic_load(&h->h->cache_bytes);
	st.bytes_file = atomic_load(&h->h->file_size);
	st.lock_waits = atomic_load(&h->h->lock_waits);
	st.recoveries = atomic_load(&h->h->recoveries);
	st.shards = NSHARDS;
	if (h->h->fixed_set) {
		st.fixed_key_len = h->h->fixed_klen;
		st.fixed_val_len = h->h->fixed_vlen;
	}
	st.layout = SHF_LAYOUT;
	st.ttl_default_ms = atomic_load(&h->h->ttl_default);
	st.hits = atomic_load(&h->h->hits);
	st.misses = atomic_load(&h->h->misses);
	st.leases = atomic_load(&h->h->leases);
	st.lease_waits = atomic_load(&h->h->lease_waits);
	st.owner_pid = atomic_load(&h->h->owner_pid);
	st.owner_start = atomic_load(&h->h->owner_start);
	if (st.owner_pid > 0) {
		uint64_t now = shf_proc_start_time((pid_t)st.owner_pid);

		st.owner_alive = now && now == st.owner_start;
	} else {
		st.owner_pid = 0;
	}
	memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
	return SHF_RET_OK;
}

SHF_EXPORT uint64_t shf_debug_get_garbage(SHF *h)
{
	uint64_t g = 0;
	uint32_t i;

	if (!h)
		return 0;
	for (i = 0; i < NSHARDS; i++)
		g += atomic_load(&h->shards[i].bytes_free);
	return g;
}

/* --------------------------------------------------------------- check */

struct chk {
	shf_check_cb_t cb;
	void *arg;
	uint32_t problems;
};

static void chk_report(struct chk *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void chk_report(struct chk *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	c->problems++;
	if (!c->cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->cb(msg, c->arg);
}

/*
 * Last resort of a repair: give a shard whose index cannot be read a new,
 * empty one.  Its keys are lost; its old space is not reused.
 */
static void shard_reset(SHF *h, struct shard *sh)
{
	uint64_t seg = big_alloc(h, SEG_BYTES, 1), dir;
	uint64_t *d;
	uint32_t c;

	if (!seg)
		return;
	memset(&sh->j, 0, sizeof(sh->j));
	sh->chunk_cur = sh->chunk_end = 0;
	for (c = 0; c < NCLASS; c++)
		sh->free_head[c] = 0;
	sh->uid_dir = 0;
	sh->uid_dir_cap = 0;
	sh->uid_next = 0;
	sh->uid_free = 0;
	sh->hand = 0;
	ctr_set(&sh->rbytes, 0);
	dir = shard_alloc_a(h, sh, 8, 1);
	d = dir ? at(h, dir, 8) : NULL;
	if (!d)
		return;
	st64(d, seg);
	atomic_store(&sh->dir_word, dir << 6);
	ctr_set(&sh->nkeys, 0);
}

/* Verify one shard under its lock; repair what can be repaired safely. */
static void check_shard(SHF *h, uint32_t si, struct chk *c, int repair)
{
	struct shard *sh = &h->shards[si];
	uint32_t g, i, k, l, start, len;
	uint64_t dw = atomic_load(&sh->dir_word), *dir = dir_get(h, dw, &g);
	uint64_t live = 0, rbytes = 0;

	if (!dir) {
		chk_report(c, "shard %u: directory unreadable (word %#llx)", si,
			   (unsigned long long)dw);
		if (repair)
			shard_reset(h, sh);
		return;
	}
	for (i = 0; i < (1u << g); i += len) {
		uint64_t de = ld64(&dir[i]), *seg;

		l = (uint32_t)(de & 63);
		if (l > g) {
			chk_report(c, "shard %u: dir[%u] depth %u > %u", si, i, l, g);
			return;
		}
		len = 1u << (g - l);
		start = i;
		for (k = start; k < start + len; k++)
			if (ld64(&dir[k]) != de) {
				chk_report(c, "shard %u: dir[%u] breaks the range of dir[%u]",
					   si, k, start);
				return;
			}
		seg = at(h, de & ~63ULL, SEG_BYTES);
		if (!seg || (de & ~63ULL & (PAGE - 1))) {
			chk_report(c, "shard %u: segment %#llx outside the file", si,
				   (unsigned long long)(de & ~63ULL));
			return;
		}
		for (k = 0; k < SEG_BUCKETS * BUCKET_SLOTS; k++) {
			uint64_t sv = ld64(&seg[k]), hash, *e;
			uint32_t tag, bb[2], b;
			struct rec r;
			const char *why = NULL;

			if (!sv)
				continue;
			tag = slot_tag(sv);
			b = k / BUCKET_SLOTS;
			if (!rec_get(h, slot_rec(sv), &r)) {
				why = "record unreadable";
			} else {
				hash = XXH3_64bits(r.key, r.klen);
				buckets_of(hash, tag, bb);
				e = uid_entry(h, sh, r.uid);
				if ((hash >> 56) != si || tag_of(hash) != tag)
					why = "hash does not match the key";
				else if (l && (tag >> (24 - l)) != (start >> (g - l)))
					why = "key in the wrong segment";
				else if (b != bb[0] && b != bb[1])
					why = "key in the wrong bucket";
				else if (!e || ld64(e) != slot_rec(sv))
					why = "UID table does not point at the record";
			}
			if (why) {
				chk_report(c, "shard %u: slot %#llx: %s", si,
					   (unsigned long long)((uint8_t *)&seg[k] - h->base),
					   why);
				if (repair)
					st64(&seg[k], 0);
				continue;
			}
			live++;
			rbytes += rec_cost(r.size);
		}
	}
	if (live != atomic_load(&sh->nkeys)) {
		chk_report(c, "shard %u: %llu live keys, counter says %llu", si,
			   (unsigned long long)live,
			   (unsigned long long)atomic_load(&sh->nkeys));
		if (repair)
			ctr_set(&sh->nkeys, live);
	}
	if (rbytes != atomic_load(&sh->rbytes)) {
		chk_report(c, "shard %u: %llu bytes of records, counter says %llu",
			   si, (unsigned long long)rbytes,
			   (unsigned long long)atomic_load(&sh->rbytes));
		if (repair)
			ctr_set(&sh->rbytes, rbytes);
	}
	for (k = 0; k < NCLASS; k++) {
		uint64_t off = sh->free_head[k], n = 0, *prev = &sh->free_head[k];

		while (off) {
			uint32_t *w = at(h, off, REC_MIN);

			if (!w || (off & 3) || w[0] != K_FREE << 24 || w[1] != k ||
			    ++n > (1ULL << 32)) {
				chk_report(c, "shard %u: free list %u broken at %#llx",
					   si, k, (unsigned long long)off);
				if (repair)
					stu64(prev, 0);
				break;
			}
			prev = (uint64_t *)(w + 2);
			off = ldu64(w + 2);
		}
	}
}

SHF_EXPORT uint32_t shf_check(SHF *h, uint32_t flags, shf_check_cb_t cb,
			      void *arg)
{
	struct chk c = { cb, arg, 0 };
	uint32_t si;

	if (!h || (flags & ~SHF_CHECK_REPAIR)) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	for (si = 0; si < NSHARDS; si++) {
		struct shard *sh = &h->shards[si];

		if (shard_lock(h, sh) < 0)
			return UINT32_MAX;
		check_shard(h, si, &c, flags & SHF_CHECK_REPAIR);
		shard_unlock(h, sh);
	}
	if ((flags & SHF_CHECK_REPAIR) && atomic_load(&h->h->byte_budget)) {
		uint32_t n = lock_all(h);

		if (n == NSHARDS)
			cache_bytes_recount(h);
		unlock_all(h, n);
	}
	return c.problems;
}

/* --------------------------------------------------------- batched get */

/*
 * Look the key up optimistically and copy its value to dst (cap bytes).
 * 1 found (*len set; copied if it fits), 0 absent, -1 corrupt.
 */
static int get_into(SHF *h, uint64_t hash, const char *key, uint32_t klen,
		    char *dst, uint64_t cap, uint32_t *len, uint32_t *uid)
{
	struct shard *sh = shard_of(h, hash);
	struct found f;
	struct clk c = { 0 };
	uint32_t s, tries;
	int rc, locked = 0;

	for (tries = 0;; tries++) {
		if (tries >= READ_TRIES && !locked) {
			if (shard_lock(h, sh) < 0)
				return -1;
			locked = 1;
		}
		s = locked ? 0 : read_begin(sh);
		if (!locked && (s & 1)) {
			cpu_relax();
			continue;
		}
		rc = idx_find(h, sh, hash, key, klen, &f);
		if (rc == 1 && !rec_visible(&f.r, &c))
			rc = 0;
		if (rc == 1) {
			*len = f.r.vlen;
			*uid = uid_make((uint32_t)(sh - h->shards), f.r.uid);
			if (f.r.vlen <= cap)
				memcpy(dst, f.r.val, f.r.vlen);
		}
		if (!locked && read_retry(sh, s))
			continue;
		if (locked)
			shard_unlock(h, sh);
		if (rc >= 0)
			count_get(h, rc == 1);
		if (rc == 1)
			slot_mark(h, f.slot, f.sval);
		return rc;
	}
}

/* Prefetch the two bucket lines of a key. */
static inline void prefetch_buckets(SHF *h, uint64_t hash)
{
	struct shard *sh = shard_of(h, hash);

	prefetch_buckets_dw(h,
			    atomic_load_explicit(&sh->dir_word,
						 memory_order_acquire),
			    hash, 0);
}

/* Prefetch the record (klen: its key's) the first matching slot points at. */
static inline void prefetch_record(SHF *h, uint64_t hash, uint32_t klen)
{
	uint32_t tag = tag_of(hash), idx, b[2], k, i;
	uint64_t so, *seg = seg_for(h, shard_of(h, hash), tag, &so, &idx);

	if (!seg)
		return;
	buckets_of(hash, tag, b);
	for (k = 0; k < 2; k++)
		for (i = 0; i < BUCKET_SLOTS; i++) {
			uint64_t s = ld64(&seg[b[k] * BUCKET_SLOTS + i]);

			if (s && slot_tag(s) == tag) {
				if (range_ok(h, slot_rec(s), 64))
					__builtin_prefetch(h->base + slot_rec(s));
				rec_prefetch_tail(h, slot_rec(s), klen);
				return;
			}
		}
}

/* Prefetch the directory entry of a key's segment. */
static inline void prefetch_dir(SHF *h, uint64_t hash)
{
	struct shard *sh = shard_of(h, hash);
	uint32_t d;
	uint64_t *dir = dir_get(h, atomic_load_explicit(&sh->dir_word,
							memory_order_acquire),
				&d);

	if (dir)
		__builtin_prefetch(&dir[d ? tag_of(hash) >> (24 - d) : 0]);
}

/*
 * The batch is a pipeline of four stages BATCH_LAG keys apart: hash the key
 * and prefetch its directory entry; prefetch its two bucket lines; prefetch
 * its record; look it up and copy its value.  So the memory misses of about
 * 3 * BATCH_LAG keys are in flight at once instead of one key's at a time.
 */
#define BATCH_LAG 4
#define BATCH_RING (4 * BATCH_LAG)

SHF_EXPORT uint32_t shf_get_key_val_copy_batch(SHF *h, uint32_t n,
					       const char *const *keys,
					       const uint32_t *key_lens,
					       char *buf, uint64_t buf_size,
					       uint64_t *offs, uint32_t *lens,
					       uint32_t *uids)
{
	uint64_t hashes[BATCH_RING], used = 0;
	uint32_t found = 0, i, len = 0, uid = 0;
	int nobufs = 0;

	if (!h || (n && (!keys || !key_lens || !offs || !lens)) ||
	    (!buf && buf_size)) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	for (i = 0; i < n; i++)
		if (!keys[i] && key_lens[i]) {
			errno = EINVAL;
			return UINT32_MAX;
		}
	for (i = 0; i < n + 3 * BATCH_LAG; i++) {
		uint32_t k;
		int rc;

		if (i < n) {
			hashes[i % BATCH_RING] = XXH3_64bits(keys[i], key_lens[i]);
			prefetch_dir(h, hashes[i % BATCH_RING]);
		}
		if (i >= BATCH_LAG && i - BATCH_LAG < n)
			prefetch_buckets(h, hashes[(i - BATCH_LAG) % BATCH_RING]);
		if (i >= 2 * BATCH_LAG && i - 2 * BATCH_LAG < n)
			prefetch_record(h,
					hashes[(i - 2 * BATCH_LAG) % BATCH_RING],
					key_lens[i - 2 * BATCH_LAG]);
		if (i < 3 * BATCH_LAG || i - 3 * BATCH_LAG >= n)
			continue;
		k = i - 3 * BATCH_LAG;
		rc = get_into(h, hashes[k % BATCH_RING], keys[k], key_lens[k],
			      buf ? buf + used : NULL, buf_size - used, &len,
			      &uid);
		if (rc < 0) {
			errno = EBADMSG;
			return UINT32_MAX;
		}
		if (uids)
			uids[k] = rc ? uid : SHF_UID_NONE;
		offs[k] = used;
		if (!rc) {
			lens[k] = UINT32_MAX;
			continue;
		}
		if (len > buf_size - used) {
			lens[k] = UINT32_MAX - 1;
			nobufs = 1;
			continue;
		}
		lens[k] = len;
		used += len;
		found++;
	}
	if (nobufs) {
		errno = ENOBUFS;
		return UINT32_MAX;
	}
	return found;
}

/* CACHE-MODE-READY */
