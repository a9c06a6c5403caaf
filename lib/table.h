/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * table.h - the byte layout of a table file and what the table's files
 * (lib/grow.c ... lib/handle.c, see HACKING) lend each other: one section
 * per file, as shf-internal.h has for the layers below.  Only the table's
 * files include it; the queues, race lines and log above reach the table
 * through shf-internal.h's handle section only.  The hot path (record
 * decoding, the index lookup, the seqlock) is static inline here.
 *
 * One file <path>/<name>.shf holds everything.  The header takes the first
 * two pages; then 256 shard descriptors; then space handed out by a bump
 * allocator that grows the file with fallocate() (so a full tmpfs is
 * ENOSPC, not SIGBUS).
 *
 * A key's XXH3-64 hash H, with the random secret of the table's header
 * (shf_hash(), key_hash()), picks its shard (top 8 bits) and its 17-bit
 * tag (the next 17 bits).  Each shard has:
 *  - a lock for writers (sync.c's own: holder thread and start time in
 *    one word) and a sequence counter that lets readers work without any
 *    lock or shared write (seqlock);
 *  - an extendible-hashing index: a directory of 4 KiB segments, each 64
 *    buckets (a cache line each) of 12 slots of 5 bytes: 16 bits of the
 *    tag and the key's local UID (see slot_ld()).  A key may live in two buckets of
 *    its segment (b1 from H, b2 = b1 ^ alt(tag)); a full segment splits in
 *    two by the next tag bit, without rehashing;
 *  - record cells: a UID names a cell of one of the shard's slabs (64
 *    cells of one size class each, found through the shard's slab
 *    directory), where the key's record lives for the key's life, with no
 *    UID of its own (K_HOME: a 4-byte header of kind and lengths):
 *    replaced in place under the journal's undo copy while its size class
 *    stays, else the cell forwards to a record elsewhere (K_FWD), which
 *    names its UID.  A replace never changes the index: it commits with
 *    one store into the cell;
 *  - per-size-class free lists of cells and of other records;
 *  - a journal of the operation in flight, replayed by the next locker when
 *    a writer died holding the lock (its waiters find the holder gone).
 */
#ifndef SHF_TABLE_H
#define SHF_TABLE_H

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "shf-internal.h"

/* ================================================================ layout */

#define SHF_MAGIC 0x314c425446485342ULL /* "BSHFTBL1" */
/*
 * 7: slots of 8 bytes naming UIDs (80a71d8); 8: 16-bit tags (29df203);
 * 9: 17-bit tags (7eb714d); 10: a hash secret of each table's own
 */
#define SHF_LAYOUT 10u
#define NSHARDS 256u
#define PAGE 4096u
#define SEG_BUCKETS 64u
#define BUCKET_SLOTS 12u
#define SEG_SLOTS (SEG_BUCKETS * BUCKET_SLOTS) /* 768 */
#define SEG_BYTES (SEG_BUCKETS * 64u)          /* 4096: a line a bucket */
#define TAG_BITS 17u
#define MAX_DEPTH 16u /* of the 17 tag bits */
#define UID_LOCAL_MAX 0xfffffeu
#define SMALL_CLASSES 128u     /* 4..512 by 4 */
/* A slab: the cells of SLAB_CELLS consecutive UIDs, of one size class. */
#define SLAB_CELLS 64u
/* Records of up to CELL_MAX bytes live in their cell (classes below it). */
#define CELL_MAX 512u
#define CELL_CLASSES SMALL_CLASSES
#define CLASS_MAX_SHARD 65536u /* larger records: global extents */
#define SUB 8u                 /* sub-classes per doubling */
#define NCLASS (SMALL_CLASSES + 7u * SUB)        /* up to 64 KiB */
#define NBIG (16u + 18u * SUB) /* page counts: 1..16, then 8 per doubling */
/*
 * The file grows by GROW_STEP where 2 MiB pages may back it (mount.c) and
 * off tmpfs; on a tmpfs of 4 KiB pages by GROW_SMALL, since reserving and
 * mapping space there costs about 0.9 us a page, so that no put waits for
 * more than 64 KiB of it (a 2 MiB step took 300-1,000 us).
 */
#define GROW_STEP (2u << 20)
#define GROW_SMALL (64u << 10)
#define MAP_MAX (1ULL << 40)
#define REC_MIN 16u
/* A reader that keeps meeting writers takes the lock after so many tries. */
#define READ_TRIES 64
/*
 * How long a writer waits for a shard's lock held by a live thread that
 * cannot be shown not to map the table (another user's) before it gives
 * up with ETIMEDOUT: locks are held for microseconds, so only a holder
 * stopped (a debugger, SIGSTOP) or a lock word written by a hostile
 * process gets here.  Once a wait gave up, the process's next lockers
 * give up at once while the lock shows the same word (sync.c), so a
 * damaged word costs one such wait, not one per call.
 */
#define LOCK_WAIT_MAX_MS 2000u

#define K_SMALL 0xa1u
#define K_LARGE 0xa2u
#define K_FIXED 0xa3u
#define K_TINY 0xa4u
#define K_FWD 0xa5u  /* a cell whose record is elsewhere: u64 offset at +4 */
#define K_HOME 0xa6u /* a record in its UID's cell: lengths, no UID */
#define K_FREE 0xfeu
/* The first word of a free cell (a record's UID is never 0xffffff). */
#define CELL_FREE ((K_FREE << 24) | 0xffffffu)
/* flags of a record's kind byte (a base kind above, or-ed with these) */
#define KF_TTL 0x10u   /* an expiry time (u64 ms, CLOCK_REALTIME) follows */
#define KF_LEASE 0x40u /* a lease placeholder: no value yet */
#define KF_MASK (KF_TTL | KF_LEASE)

#define OP_NONE 0u
#define OP_NEW 1u
#define OP_REPLACE 2u
#define OP_DEL 3u
#define OP_INPLACE 4u /* a record rewritten in its cell: undone if met */
#define OP_TAKE 5u    /* a new key's cell taken off its list: put back */

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
	struct shf_lock_counts locks; /* recoveries, lock_waits */
	/* the library's own locks (shf-internal.h), as a shard's */
	struct shf_lock alloc_lk;
	uint64_t big_free[NBIG];
	struct shf_lock region_lk;
	struct region regions[SHF_REGIONS_MAX];
	/* cache mode */
	_Atomic uint32_t ttl_default; /* ms; 0 none */
	_Atomic uint32_t ttl_used;    /* some record was given an expiry */
	_Atomic uint64_t byte_budget; /* 0 none */
	_Atomic uint64_t cache_bytes __attribute__((aligned(64)));
	_Atomic uint64_t hits __attribute__((aligned(64)));
	_Atomic uint64_t misses, leases, lease_waits;
	/* the keys' hash's secret (shf_hash()), random, set at creation */
	uint8_t hash_secret[SHF_HASH_SECRET] __attribute__((aligned(64)));
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
	/* what a record's cell held before the operation wrote into it */
	uint32_t undo_len;
	/* a record being freed onto the shard's list of class free_cls - 1 */
	uint32_t free_cls;
	uint8_t undo[CELL_MAX];
};

struct shard {
	struct shf_lock lk; /* the writers' (sync.c: the library's own lock) */
	_Atomic uint32_t seq;
	uint32_t pad0;
	_Atomic uint64_t dir_word; /* directory offset << 6 | global depth */
	/* the slab directory: u64[uid_dir_cap], slab offset | class + 1 << 48 */
	uint64_t uid_dir;
	uint32_t uid_dir_cap;
	uint32_t uid_next;  /* the first UID of the next slab */
	uint32_t pad3;
	uint32_t pad1;
	_Atomic uint64_t nkeys;
	/*
	 * The chunk small records are cut from: [chunk_base, chunk_end), the
	 * next at chunk_cur; chunk_sum = chunk_mix(base, end), so that no
	 * single damaged word can point the cursor outside a real chunk.
	 */
	uint64_t chunk_cur, chunk_end, chunk_base, chunk_sum;
	_Atomic uint64_t bytes_used, bytes_free;
	_Atomic uint64_t puts, dels, splits;
	_Atomic uint64_t rbytes; /* bytes of live records (class bounds) */
	_Atomic uint64_t evictions, expirations;
	uint64_t hand; /* CLOCK hand: directory index << 10 | slot */
	_Atomic uint32_t lease_seq; /* futex word: bumped when a lease ends */
	uint32_t pad2;
	uint64_t free_head[NCLASS];
	/* free cells of each class: a list by UID + 1 (0: empty) */
	uint32_t cell_free[CELL_CLASSES];
	struct journal j;
} __attribute__((aligned(64)));

struct shf {
	int fd;
	int lockable;
	struct shf_lock_site site; /* of the table's locks */
	uint8_t *base;
	uint64_t map_size;
	int populate; /* map grown space at once (tmpfs: see grow.c) */
	_Atomic uint64_t mapped; /* mapped here below it (populate: grow.c) */
	uint64_t grow_step; /* GROW_STEP or GROW_SMALL (grow.c) */
	/* what a call maps on 4 KiB pages, and a page's cost (grow.c) */
	_Atomic uint64_t map_piece, page_ns;
	_Atomic uint64_t valid; /* bytes known to be inside the file */
	/*
	 * The header's size claim when valid was last refreshed: the file
	 * grows only by file_reserve(), which then raises the claim, so while
	 * the claim is unchanged an offset past valid is not looked up again
	 * (no fstat() per damaged offset).
	 */
	_Atomic uint64_t claim_seen;
	uint64_t data_start; /* the header's, as checked at attach */
	/* the header's hash secret, as read at attach (key_hash()) */
	uint8_t secret[SHF_HASH_SECRET];
	struct hdr *h;
	struct shard *shards;
	char *path;
	char *name;
	uint64_t reg_id; /* in the registry (registry.c) */
	/*
	 * The last dir_word this process saw of each shard: a hint for
	 * prefetching a put's buckets before the shard's first line (which
	 * the other writers' locking keeps taking away) has arrived.
	 */
	_Atomic uint64_t dw_hint[NSHARDS];
	/* the lock words that this process's waits gave up on (sync.c) */
	uint64_t lk_stuck[NSHARDS];
	/* the words that waits for those two locks gave up on (sync.c) */
	uint64_t alloc_stuck, region_stuck;
};

/* The shard descriptors start on the first page after the header. */
#define SHARDS_OFF ((uint64_t)((sizeof(struct hdr) + PAGE - 1) & ~(PAGE - 1)))
_Static_assert(sizeof(struct hdr) <= 2 * PAGE, "header grew past two pages");

#define SIG_VALUE \
	((uint32_t)(sizeof(struct hdr) * 31u + sizeof(struct shard) * 7u + \
		    sizeof(pthread_mutex_t) * 131u))


/* ===================================================== common helpers */

static inline uint64_t ld64(const void *p)
{
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}

static inline void st64(void *p, uint64_t v)
{
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
}

/*
 * A word that readers without the lock may read at the same time (a hint,
 * checked after): stored atomically, which costs nothing more than a
 * plain store, so that the read is no data race.
 */
static inline void st32(void *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED);
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
 * Key compare and value copy for the hot path: most keys and values are a
 * few bytes, for which a call to memcmp()/memcpy() costs more than the
 * work.  8 to 16 bytes are two (overlapping) 8-byte words.
 */
static inline int key_eq(const void *a, const void *b, uint32_t len)
{
	const char *x = a, *y = b;

	if (len >= 8 && len <= 16)
		return ldu64(x) == ldu64(y) &&
		       ldu64(x + len - 8) == ldu64(y + len - 8);
	return memcmp(x, y, len) == 0;
}

static inline void copy_val(void *dst, const void *src, uint32_t len)
{
	char *d = dst;
	const char *s = src;

	if (len >= 8 && len <= 16) {
		uint64_t lo = ldu64(s), hi = ldu64(s + len - 8);

		stu64(d, lo);
		stu64(d + len - 8, hi);
		return;
	}
	memcpy(d, s, len);
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

/*
 * Take d off the table's count of cached bytes, never below 0: a recount
 * by another shard's recovery between a writer's raise and its lowering,
 * or a record size another process forged, made it wrap to about 2^64,
 * and every put then evicted all it could until the next recount.
 */
static inline void cache_bytes_sub(struct hdr *hd, uint64_t d)
{
	uint64_t v = atomic_load(&hd->cache_bytes);

	while (!atomic_compare_exchange_weak(&hd->cache_bytes, &v,
					     v > d ? v - d : 0))
		;
}

static inline void barrier(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/*
 * Crash injection, in test builds only (configure --enable-test-hooks):
 * SHF_TEST_CRASH="POINT:N" makes the process SIGKILL itself the N-th time
 * it passes crash point POINT (see tests/check_crash.c).  In other builds
 * CRASH() is nothing: no environment variable can make a program that
 * uses the installed library kill itself.
 */
enum crash_point {
	CP_NEW_WRITTEN = 1,  /* new record written, not yet in the index */
	CP_NEW_COMMITTED,    /* in the index, counters not yet updated */
	CP_REPL_WRITTEN,     /* replacement written, not committed */
	CP_REPL_COMMITTED,   /* committed, the cell not yet forwarding */
	CP_REPL_UID,         /* the cell forwards, old record not yet freed */
	CP_DEL_COMMITTED,    /* slot cleared, record not yet freed */
	CP_DEL_UID,          /* record freed, cell not yet released */
	CP_SPLIT_COPIED,     /* split: entries copied, directory unchanged */
	CP_SPLIT_DIR,        /* split: directory half updated */
	CP_KICK,             /* displacement: entry in both buckets */
	CP_DIR_DOUBLE,       /* directory doubled, old one not yet freed */
	CP_CHUNK,            /* chunk switch in progress */
	CP_FREE_PUSH,        /* free-list push half done */
	CP_ALLOC_LOCKED,     /* holding the allocator's lock */
	CP_INPLACE,          /* a record half rewritten in its cell */
	CP_CELL_TAKEN,       /* a new key's cell taken, nothing written */
	CP_SLAB_ADDED,       /* a new slab in the directory, not yet counted */
	CP_BIG_WRITTEN,      /* a new key's record outside its cell written */
	CP_GROWN,            /* the file grown ahead, its claim not yet raised */
	CP_DEL_COPIES,       /* a delete's slot copies cleared, not committed */
	CP_MAX
};
#ifdef SHF_TEST_HOOKS
extern int shf_crash_at;
extern long shf_crash_count;
/* Read SHF_TEST_CRASH (handle.c calls it from shf_init()). */
void shf_crash_init(void);
#define CRASH(p)                                                             \
	do {                                                                 \
		if (SHF_UNLIKELY(shf_crash_at == (p)) && --shf_crash_count <= 0) \
			raise(SIGKILL);                                      \
	} while (0)
#else
#define CRASH(p) ((void)0)
#endif

/* =============================================================== create.c */

/*
 * Make dfd/fname a new table of the given mode (whatever the umask),
 * atomically: linked into place only once it is whole, never over another
 * file.  The descriptor, or -1 with errno (EEXIST: somebody else's table
 * took the name meanwhile).
 */
int table_create(int dfd, const char *fname, mode_t mode);
/*
 * Remove dfd/fname, a table the caller made with table_create() but could
 * not attach, while the name still names that very file (fd's).
 */
void table_unmake(int dfd, const char *fname, int fd);

/* ================================================================= grow.c */

/* Is [off, off+len) inside the file?  Refreshes from fstat() when needed. */
int range_ok_slow(SHF *h, uint64_t off, uint64_t len);
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
	if (SHF_UNLIKELY(off < h->data_start || !range_ok(h, off, len)))
		return NULL;
	return h->base + off;
}

/*
 * A process maps space the file grew by into its page tables (tmpfs
 * only), at most MAP_PIECE_MAX a call on 4 KiB pages, less where mapping
 * a page costs more.
 */
#define MAP_PIECE_MAX (32u << 10)
/* The table's allocation lock (alloc_lk): growth and extents. */
static inline int alloc_lock(SHF *h)
{
	return shf_lock_take(&h->h->alloc_lk, &h->site, &h->alloc_stuck);
}

static inline void alloc_unlock(SHF *h)
{
	shf_lock_release(&h->h->alloc_lk);
}
/* Reserve the file up to need bytes (fallocate); under alloc_lk. */
int file_reserve(SHF *h, uint64_t need);
/* The space the file keeps reserved past its bump pointer. */
uint64_t grow_ahead(const SHF *h);
/*
 * The handle whose allocation left the file less than grow_ahead()
 * reserved ahead; shard_unlock() of that handle then calls
 * file_grow_ahead(), which maps what the process has not, or grows the
 * file back to that reserve.
 */
extern __thread SHF *shf_grow_due SHF_TLS_IE;
void file_grow_ahead(SHF *h);
/*
 * Bytes of a page or more that this thread's allocations took since it
 * last mapped (shard_alloc_a(): large records, which their put writes at
 * once; not the chunks small records are cut from, which fill slowly):
 * file_grow_ahead() maps at least that much.
 */
extern __thread uint64_t shf_alloc_took SHF_TLS_IE;
/* Map the next piece of what the file grew by (after a growth). */
void file_map_grown(SHF *h);

/* ================================================================ alloc.c */

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

/* bound of class c (shard classes) */
static inline uint64_t cls_bound(uint32_t c)
{
	uint32_t lg;

	if (c < SMALL_CLASSES)
		return (c + 1) * 4ULL;
	lg = (c - SMALL_CLASSES) / SUB + 9;
	return (1ULL << lg) + ((uint64_t)((c - SMALL_CLASSES) % SUB + 1) << (lg - 3));
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

/* Page-aligned extent of at least size bytes; 0 with errno. */
uint64_t big_alloc(SHF *h, uint64_t size, int zero);
void big_free(SHF *h, uint64_t off, uint64_t size);
/* size bytes, 4-aligned (8 with align8), for shard sh (locked); 0 + errno */
uint64_t shard_alloc_a(SHF *h, struct shard *sh, uint64_t size, int align8);
void shard_free(SHF *h, struct shard *sh, uint64_t off, uint64_t size);
/*
 * The class of the shard's free list that shard_free() puts size bytes
 * on, or -1 where they go back to the table (an extent of whole pages).
 */
static inline int free_class(uint64_t size)
{
	uint64_t b;

	if (size < REC_MIN)
		size = REC_MIN;
	if (size > CLASS_MAX_SHARD || !(size & (PAGE - 1)))
		return -1;
	return (int)cls_of(size, &b);
}
/*
 * The free block at off, which a dead writer was pushing onto the list of
 * class cls1 - 1 (the journal's free_cls): finish the push if it stopped
 * half way.
 */
void shard_free_finish(SHF *h, struct shard *sh, uint64_t off, uint32_t cls1);

static inline uint64_t shard_alloc(SHF *h, struct shard *sh, uint64_t size)
{
	return shard_alloc_a(h, sh, size, 0);
}

/* =============================================================== record.c */

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
 * home: in its UID's cell (K_HOME, or K_FIXED with the UID in its word:
 * a 4-byte header either way), else elsewhere (its header names its UID).
 * A home record is at most CELL_MAX bytes (rec_home_fits()).
 */
static inline uint64_t rec_size_for(SHF *h, uint32_t klen, uint32_t vlen,
				    uint32_t flags, int home, uint32_t *hlen,
				    uint32_t *kind)
{
	if (h->h->fixed_set && !(flags & KF_LEASE)) {
		*hlen = 4;
		*kind = K_FIXED;
	} else if (home) {
		*hlen = 4;
		*kind = K_HOME;
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

/* The size of a home record of these lengths (rec_size_for(), home). */
static inline uint64_t rec_home_size(uint32_t klen, uint32_t vlen,
				     uint32_t flags)
{
	return 4u + ((flags & KF_TTL) ? 8u : 0u) + (uint64_t)klen + vlen;
}

/* A new key's record: home where it fits its cell (CELL_MAX), else not. */
static inline uint64_t rec_size_new(SHF *h, uint32_t klen, uint32_t vlen,
				    uint32_t flags, uint32_t *hlen,
				    uint32_t *kind)
{
	return rec_size_for(h, klen, vlen, flags,
			    rec_home_size(klen, vlen, flags) <= CELL_MAX, hlen,
			    kind);
}

void rec_write(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
	       const void *key, uint32_t klen, const void *val, uint32_t vlen,
	       uint32_t hlen, uint64_t expiry);
/*
 * The same for a record outside its key's cell that the shard's journal
 * names (rec_new) before it is written, so that recovery can free it: its
 * header goes before its value, a writer killed while it copies the value
 * leaving a record of the journal's UID and key.  Its first word must be 0
 * until then (alloc_named() in commit.c).
 */
void rec_write_named(SHF *h, uint64_t off, uint32_t kind, uint32_t uid,
		     const void *key, uint32_t klen, const void *val,
		     uint32_t vlen, uint32_t hlen, uint64_t expiry);
void rec_free(SHF *h, struct shard *sh, uint64_t off);
/* Bytes a record of size bytes counts for in the budget (its class). */
uint64_t rec_cost(uint64_t size);
/*
 * A free cell of class c (its offset in *off, its first word 0): its local
 * UID, or UINT32_MAX with errno (EOVERFLOW: the shard's UIDs are spent).
 * The shard's journal names it (OP_TAKE) before it leaves its list, so
 * that a writer killed before its record is written loses no cell.
 */
uint32_t cell_alloc(SHF *h, struct shard *sh, uint32_t c, uint64_t *off);
/* Put UID ul's cell back on its class's list (once: a free cell stays). */
void cell_release(SHF *h, struct shard *sh, uint32_t ul);
/*
 * Make the cell at off forward UID ul to the record at rec, if the cell is
 * ul's (cell_holds() 1 to 3); 0, or -1 (another's: left as it is).
 */
int cell_forward(SHF *h, uint64_t off, uint32_t ul, uint64_t rec);

/* The key's 17-bit tag: the hash's bits 39 to 55 (the shard: 56 to 63). */
static inline uint32_t tag_of(uint64_t hash)
{
	return (uint32_t)(hash >> 39) & 0x1ffff;
}

/*
 * 1..63: ((tag * 0x9e3779b1) >> 26) % 63 + 1, the layout's, with no
 * division (for y = x + 1 in 1..64, (y & 63) + (y >> 6) is y, or 1 for
 * 64); tests/check_layout compares the two for every tag.
 */
static inline uint32_t alt_of(uint32_t tag)
{
	uint32_t y = ((tag * 0x9e3779b1u) >> 26) + 1u;

	return (y & 63u) + (y >> 6);
}

/*
 * A bucket is a cache line of BUCKET_SLOTS slots: each one a 32-bit word
 * (bytes 0 to 47) of its tag's low byte << 24 | the key's local UID + 1
 * (0: empty), a byte of its tag's bits 8 to 15 (bytes 48 to 59), and in
 * the bucket's last word (bytes 60 to 63) a CLOCK use mark a slot (bit i,
 * which readers set, once per sweep, in cache mode) and the tag's bit 16
 * (bit 12 + i: the bit a segment's first split goes by, so that even at
 * MAX_DEPTH a segment's tags differ in a bit).  The word commits: an
 * entry is written tag first and goes with its word's clearing.  The code
 * handles a slot as one 64-bit value, tag << 40 | mark << 39 | UID + 1
 * (slot_ld(), slot_st()), and names it by a pointer to its word.
 */
#define B_TAGHI 48u
#define B_REF 60u
#define B_TOP 12u /* the tag's bit 16 of slot i: bit B_TOP + i of B_REF */
#define SLOT_REF (1ULL << 39)
_Static_assert(BUCKET_SLOTS * 5u + 4u <= 64u, "a bucket is a line");

static inline uint64_t slot_make(uint32_t tag, uint32_t ul)
{
	return ((uint64_t)tag << 40) | (ul + 1u);
}

/* The local UID a slot names (UINT32_MAX for a damaged 0, beyond any). */
static inline uint32_t slot_ul(uint64_t s)
{
	return (uint32_t)(s & 0xffffff) - 1u;
}

/* Compare slots with slot_same(), which ignores the mark. */
static inline int slot_same(uint64_t a, uint64_t b)
{
	return ((a ^ b) & ~SLOT_REF) == 0;
}

static inline uint32_t slot_tag(uint64_t s)
{
	return (uint32_t)(s >> 40);
}

/* The bucket (64-aligned) of the slot at w, and the slot's place in it. */
static inline uint8_t *slot_bucket(const uint32_t *w)
{
	return (uint8_t *)((uintptr_t)w & ~(uintptr_t)63);
}

static inline uint32_t slot_idx(const uint32_t *w)
{
	return (uint32_t)(((uintptr_t)w & 63) >> 2);
}

/* Bucket b of the segment at seg, and its slot k of the segment's. */
static inline uint32_t *seg_bucket(void *seg, uint32_t b)
{
	return (uint32_t *)((uint8_t *)seg + (uint64_t)b * 64);
}

static inline uint32_t *seg_slot(void *seg, uint32_t k)
{
	return seg_bucket(seg, k / BUCKET_SLOTS) + k % BUCKET_SLOTS;
}

/* The slot at w without its mark (0: empty): what a lookup needs. */
static inline uint64_t slot_key(const uint32_t *w)
{
	const uint8_t *b = slot_bucket(w);
	uint32_t i = slot_idx(w), x = __atomic_load_n(w, __ATOMIC_RELAXED), hi,
		 top;

	if (!x)
		return 0;
	hi = __atomic_load_n(b + B_TAGHI + i, __ATOMIC_RELAXED);
	top = (__atomic_load_n((const uint32_t *)(b + B_REF),
			       __ATOMIC_RELAXED) >>
	       (B_TOP + i)) &
	      1;
	return ((uint64_t)(top << 16 | hi << 8 | x >> 24) << 40) |
	       (x & 0xffffff);
}

/* Is slot w's use mark set? */
static inline int slot_ref(const uint32_t *w)
{
	return (__atomic_load_n((const uint32_t *)(slot_bucket(w) + B_REF),
				__ATOMIC_RELAXED) >>
		slot_idx(w)) &
	       1;
}

/* The slot at w as one value, mark and all (0: empty). */
static inline uint64_t slot_ld(const uint32_t *w)
{
	uint64_t s = slot_key(w);

	return s && slot_ref(w) ? s | SLOT_REF : s;
}

/*
 * Store slot value v at w (the lock held): its tag's high bits and its
 * mark as v says, then its word (the commit: 0 empties the slot).  The
 * last word of the bucket is written with locked instructions, and only
 * where it changes: readers set marks in it.
 */
static inline void slot_st(uint32_t *w, uint64_t v)
{
	uint8_t *b = slot_bucket(w);
	uint32_t i = slot_idx(w),
		 ref = __atomic_load_n((uint32_t *)(b + B_REF),
				       __ATOMIC_RELAXED),
		 mask = 1u << i | 1u << (B_TOP + i), want;

	if (v) {
		__atomic_store_n(b + B_TAGHI + i, (uint8_t)(slot_tag(v) >> 8),
				 __ATOMIC_RELAXED);
		want = (v & SLOT_REF ? 1u << i : 0) |
		       ((slot_tag(v) >> 16) & 1) << (B_TOP + i);
		if ((ref & mask) != want) {
			if (want & ~ref)
				__atomic_fetch_or((uint32_t *)(b + B_REF),
						  want & ~ref,
						  __ATOMIC_RELAXED);
			if (ref & mask & ~want)
				__atomic_fetch_and((uint32_t *)(b + B_REF),
						   ~(ref & mask & ~want),
						   __ATOMIC_RELAXED);
		}
	}
	__atomic_store_n(w,
			 v ? (slot_tag(v) & 0xff) << 24 | (uint32_t)(v & 0xffffff) :
			     0,
			 __ATOMIC_RELEASE);
}

/* Set (readers, once) or clear (the CLOCK hand) slot w's use mark. */
static inline void slot_ref_set(uint32_t *w)
{
	__atomic_fetch_or((uint32_t *)(slot_bucket(w) + B_REF),
			  1u << slot_idx(w), __ATOMIC_RELAXED);
}

static inline void slot_ref_clear(uint32_t *w)
{
	__atomic_fetch_and((uint32_t *)(slot_bucket(w) + B_REF),
			   ~(1u << slot_idx(w)), __ATOMIC_RELAXED);
}

/*
 * The slot at file offset off (a journal's word, checked): its word, or
 * NULL where off names none.
 */
static inline uint32_t *slot_at(SHF *h, uint64_t off)
{
	if ((off & 3) || (off & 63) >= B_TAGHI || !at(h, off & ~63ULL, 64))
		return NULL;
	return (uint32_t *)(h->base + off);
}

/*
 * The slots of the bucket at bk whose tag's low 16 bits are tag's: bit i
 * set for slot i (an empty slot shows for a tag of low byte 0).  A
 * filter, read without the lock: the caller reads each slot it names
 * again (slot_key()) and checks its whole tag; a slot that a writer changed meanwhile is a reader's retry
 * (seqlock) in any case.  With SSE2 (every x86-64) four words and the
 * twelve high bytes are compared at a time; elsewhere (and under TSan,
 * for which a vector load is a plain, racing read) one at a time.
 */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHF_TSAN 1
#endif
#endif
#if defined(__SSE2__) && !defined(__SANITIZE_THREAD__) && !defined(SHF_TSAN) && \
	!defined(SHF_NO_SLOT_SIMD) /* CPPFLAGS=-DSHF_NO_SLOT_SIMD tests the loop */
#define SHF_SLOT_SIMD 1
#include <emmintrin.h>
#endif

#ifdef SHF_SLOT_SIMD
/* The 4-bit mask of words p[0..3] whose bits under m are v. */
static inline uint32_t quad_eq(const uint32_t *p, __m128i m, __m128i v)
{
	return (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(
		_mm_and_si128(_mm_loadu_si128((const __m128i *)p), m), v)));
}
#endif

static inline uint32_t bucket_match(const uint32_t *bk, uint32_t tag)
{
#ifdef SHF_SLOT_SIMD
	const __m128i m = _mm_set1_epi32((int)0xff000000u);
	const __m128i v = _mm_set1_epi32((int)((tag & 0xffu) << 24));
	uint32_t lo = quad_eq(bk, m, v) | quad_eq(bk + 4, m, v) << 4 |
		      quad_eq(bk + 8, m, v) << 8;
	uint32_t hi = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(
		_mm_loadu_si128((const __m128i *)(bk + 12)),
		_mm_set1_epi8((char)(tag >> 8 & 0xffu))));

	_Static_assert(BUCKET_SLOTS == 12, "three quads of slots");
	return lo & hi & 0xfffu;
#else
	const uint8_t *b = (const uint8_t *)bk;
	uint32_t i, r = 0;

	for (i = 0; i < BUCKET_SLOTS; i++)
		if (__atomic_load_n(&bk[i], __ATOMIC_RELAXED) >> 24 ==
			    (tag & 0xffu) &&
		    __atomic_load_n(b + B_TAGHI + i, __ATOMIC_RELAXED) ==
			    (tag >> 8 & 0xffu))
			r |= 1u << i;
	return r;
#endif
}

/* The empty slots of the bucket at bk, as bucket_match() gives them. */
static inline uint32_t bucket_empty(const uint32_t *bk)
{
#ifdef SHF_SLOT_SIMD
	const __m128i m = _mm_set1_epi32(-1), v = _mm_setzero_si128();

	return quad_eq(bk, m, v) | quad_eq(bk + 4, m, v) << 4 |
	       quad_eq(bk + 8, m, v) << 8;
#else
	uint32_t i, r = 0;

	for (i = 0; i < BUCKET_SLOTS; i++)
		if (!__atomic_load_n(&bk[i], __ATOMIC_RELAXED))
			r |= 1u << i;
	return r;
#endif
}

/* The slot a bucket_match() bit names. */
static inline uint32_t match_slot(uint32_t m)
{
	return (uint32_t)__builtin_ctz(m);
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

/*
 * The directory entry (its index *idx) of a tag in the directory of dw.
 * This and seg_of_entry() are seg_for_dw()'s two halves, which a batch
 * takes one at a time; always inlined, so that the hot path's lookup
 * stays as it was (a get took 7 instructions more without).
 */
static inline __attribute__((always_inline)) uint64_t *
dir_entry(SHF *h, uint64_t dw, uint32_t tag, uint32_t *idx)
{
	uint32_t d;
	uint64_t *dir = dir_get(h, dw, &d);

	if (!dir)
		return NULL;
	*idx = d ? tag >> (TAG_BITS - d) : 0;
	return &dir[*idx];
}

/* The segment a directory entry names (its offset in *seg_off). */
static inline __attribute__((always_inline)) uint64_t *
seg_of_entry(SHF *h, const uint64_t *de, uint64_t *seg_off)
{
	*seg_off = ld64(de) & ~63ULL;
	if (*seg_off & (PAGE - 1))
		return NULL;
	return at(h, *seg_off, SEG_BYTES);
}

/* The segment a tag belongs to, in the directory of dw. */
static inline uint64_t *seg_for_dw(SHF *h, uint64_t dw, uint32_t tag,
				   uint64_t *seg_off, uint32_t *idx)
{
	uint64_t *de = dir_entry(h, dw, tag, idx);

	if (!de)
		return NULL;
	return seg_of_entry(h, de, seg_off);
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
	uint32_t *slot; /* its word */
	uint64_t sval;  /* its value (slot_key(): without its mark; a walk's
			   slot_ld(): with it; compare with slot_same()) */
	struct rec r;
	uint64_t rec_off;
};

/*
 * Milliseconds of CLOCK_REALTIME, the clock of expiry times: read only for
 * records that have an expiry, and by puts that give one.
 */
static inline uint64_t now_ms(void)
{
	return shf_clock_ms(CLOCK_REALTIME);
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

static inline struct shard *shard_of(SHF *h, uint64_t hash)
{
	return &h->shards[hash >> 56];
}

/* The hash in table h of a key (shf_hash() with the table's secret). */
static inline uint64_t rec_hash(const SHF *h, const void *key, uint32_t len)
{
	return shf_hash(h->secret, key, len);
}

/*
 * The hash in table h of the key named by shf_make_hash() (which the
 * caller checked it did): worked out once a key and table.
 */
static inline uint64_t key_hash(const SHF *h)
{
	if (SHF_UNLIKELY(shf_tls.hash_of != h->reg_id)) {
		shf_tls.hash = rec_hash(h, shf_tls.key, shf_tls.key_len);
		shf_tls.hash_of = h->reg_id;
	}
	return shf_tls.hash;
}

static inline uint32_t uid_make(uint32_t shard, uint32_t ul)
{
	return (shard << 24) | ul;
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

/* ================================================ the hot path (inline) */

/* Decode the record at off; 0 if it is not a live record inside the file. */
static inline int rec_get(SHF *h, uint64_t off, struct rec *r)
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
	case K_HOME:
		r->hlen = 4;
		r->uid = UINT32_MAX; /* its cell's: the caller knows it */
		r->klen = (w0 >> 12) & 0xfff;
		r->vlen = w0 & 0xfff;
		break;
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

/* The class of the cell that holds (or forwards) a record of size bytes. */
static inline uint32_t cell_class(uint64_t size)
{
	uint64_t b;

	return cls_of(size <= CELL_MAX ? (size < REC_MIN ? REC_MIN : size)
				       : REC_MIN, &b);
}

/* Bits enough for each local UID of a slab directory of cap slabs. */
static inline uint32_t uid_bits_n(uint32_t cap)
{
	return cap > (UID_LOCAL_MAX + 1) / SLAB_CELLS ? UID_LOCAL_MAX + 1
						      : cap * SLAB_CELLS;
}

/*
 * Bit i of the n bits at bits: 1 if it was set already; sets it.  0 where
 * there are no bits (no memory for them) or i is past them.
 */
static inline int bit_seen(uint64_t *bits, uint64_t n, uint64_t i)
{
	uint64_t bit = 1ULL << (i % 64);

	if (!bits || i >= n)
		return 0;
	if (bits[i / 64] & bit)
		return 1;
	bits[i / 64] |= bit;
	return 0;
}

/*
 * The cell of local UID ul: its offset (0 if the shard has none such, or
 * its slab is not inside the file) and class.
 */
static inline __attribute__((always_inline)) uint64_t
cell_of(SHF *h, struct shard *sh, uint32_t ul, uint32_t *cls)
{
	/* each word once: the capacity checked is the one of the array */
	uint32_t si = ul / SLAB_CELLS, c,
		 cap = __atomic_load_n(&sh->uid_dir_cap, __ATOMIC_ACQUIRE);
	uint64_t *dir, e, off, b, d = ld64(&sh->uid_dir);

	if (ul > UID_LOCAL_MAX || si >= cap || (d & 7))
		return 0;
	dir = at(h, d, (uint64_t)cap * 8);
	if (!dir)
		return 0;
	e = ld64(&dir[si]);
	c = (uint32_t)(e >> 48);
	/* cells hold at least a forward (12 bytes) or a free cell's link */
	if (c < REC_MIN / 4 || c > CELL_CLASSES)
		return 0;
	*cls = --c;
	_Static_assert(CELL_CLASSES <= SMALL_CLASSES, "cells by 4 bytes");
	b = (uint64_t)(c + 1) * 4; /* cls_bound(c) */
	off = (e & ((1ULL << 48) - 1)) + (uint64_t)(ul % SLAB_CELLS) * b;
	if ((off & 3) || !at(h, off, b))
		return 0;
	return off;
}

/*
 * What the cell at off holds for UID ul: 1 its record, 2 a forward (to
 * *to), 3 nothing yet (taken, word 0 is 0), 0 something else (free, or
 * another UID's: a damaged slab directory), where it must not be written.
 */
static inline int cell_holds(SHF *h, uint64_t off, uint32_t ul, uint64_t *to)
{
	uint32_t w0 = __atomic_load_n((const uint32_t *)(h->base + off),
				      __ATOMIC_ACQUIRE);

	if (!w0)
		return 3;
	if (((w0 >> 24) & ~KF_MASK) == K_HOME)
		return 1;
	if ((w0 & 0xffffff) != ul || w0 == CELL_FREE)
		return 0;
	if ((w0 >> 24) != K_FWD)
		return 1;
	memcpy(to, h->base + off + 4, 8);
	return 2;
}

/* Where a cell that cell_holds() said holds leads: its record, or 0. */
static inline uint64_t cell_record(int holds, uint64_t home, uint64_t to)
{
	return holds == 1 ? home : holds == 2 ? to : 0;
}

/* UID ul's cell (*home; 0 if none, and so 0 returned) and cell_holds(). */
static inline int key_cell(SHF *h, struct shard *sh, uint32_t ul,
			   uint64_t *home, uint32_t *cls, uint64_t *to)
{
	*home = cell_of(h, sh, ul, cls);
	return *home ? cell_holds(h, *home, ul, to) : 0;
}

/*
 * The record of local UID ul, whose cell cell_of() found at home (of
 * class c), decoded into *r (r->uid set to ul): its offset, or 0 where the
 * UID names no record (*bad: the cell leads to no record of ul, damage).
 * The record lives in the cell, within the cell's class, or elsewhere with
 * its header naming ul.  A cell that ends in the next cache line has that
 * line fetched at once, so that the two misses overlap.
 */
static inline __attribute__((always_inline)) uint64_t
cell_find(SHF *h, uint32_t ul, uint64_t home, uint32_t c, struct rec *r,
	  int *bad)
{
	uint64_t to, b = cls_bound(c), end = home + b - 1;
	uint32_t w0;
	int holds;

	*bad = 0;
	if ((home ^ end) & ~63ULL)
		__builtin_prefetch(h->base + end);
	/*
	 * The common case, a plain record in its cell (which cell_of() found
	 * inside the file), decoded here: its lengths must keep it there.
	 */
	w0 = __atomic_load_n((const uint32_t *)(h->base + home),
			     __ATOMIC_ACQUIRE);
	if (SHF_LIKELY(w0 >> 24 == K_HOME)) {
		r->kind = K_HOME;
		r->flags = 0;
		r->expiry = 0;
		r->uid = ul;
		r->hlen = 4;
		r->klen = (w0 >> 12) & 0xfff;
		r->vlen = w0 & 0xfff;
		r->size = 4u + r->klen + r->vlen;
		if (r->size > b) {
			*bad = 1;
			return 0;
		}
		r->key = h->base + home + 4;
		r->val = h->base + home + 4 + r->klen;
		return home;
	}
	holds = cell_holds(h, home, ul, &to);
	if (holds == 1) {
		if (!rec_get(h, home, r) || r->size > b) {
			*bad = 1;
			return 0;
		}
		r->uid = ul;
		return home;
	}
	if (holds != 2)
		return 0; /* free, or taken and not yet written */
	if (!rec_get(h, to, r) || r->uid != ul) {
		*bad = 1;
		return 0;
	}
	return to;
}

/*
 * The record of local UID ul (cell_find()): 0 also where the UID names no
 * cell at all (*bad).
 */
static inline __attribute__((always_inline)) uint64_t
uid_find(SHF *h, struct shard *sh, uint32_t ul, struct rec *r, int *bad)
{
	uint32_t c;
	uint64_t home = cell_of(h, sh, ul, &c);

	if (!home) {
		*bad = 1;
		return 0;
	}
	return cell_find(h, ul, home, c, r, bad);
}

/* What a batch found of a key's first slot of its tag: its UID's cell. */
struct cell_hint {
	uint32_t ul, cls; /* UINT32_MAX: none */
	uint64_t home;
};

/*
 * A slot of tag whose UID led to no record, or to the record *r of a key
 * of another tag or shard: 1 (the index or the slab directory is damaged;
 * index.c, out of line: met only then or for a tag shared by chance).
 */
int slot_misleads(SHF *h, struct shard *sh, uint32_t tag,
		  const struct rec *r);

/*
 * Find key in segment seg, given its tag and buckets (tag_of(),
 * buckets_of(): a batch works them out once); 1 found, 0 absent, -1 a
 * slot of its tag that leads nowhere or to another tag's key.  hint:
 * the slot (k * BUCKET_SLOTS + i) where a batch saw the first slot of this
 * tag in this segment, worth trying first; then every slot of the two
 * buckets read now, as always (UINT32_MAX: none).  The hint only orders
 * the look.  ch (or NULL): the cell the batch found for the UID of that
 * slot, used where the slot still names it (a UID's cell never moves).
 */
static inline int idx_find_seg(SHF *h, struct shard *sh, uint64_t *seg,
			       uint32_t tag, const uint32_t b[2],
			       const void *key, uint32_t klen, struct found *f,
			       uint32_t hint, const struct cell_hint *ch)
{
	uint32_t i, k;
	uint64_t ro;
	int bad, damaged = 0;

	if (hint < 2 * BUCKET_SLOTS) {
		uint32_t *sp = seg_bucket(seg, b[hint / BUCKET_SLOTS]) +
			       hint % BUCKET_SLOTS;
		uint64_t s = slot_key(sp);

		if (s && slot_tag(s) == tag &&
		    (ro = ch && ch->ul == slot_ul(s) ?
				  cell_find(h, ch->ul, ch->home, ch->cls,
					    &f->r, &bad) :
				  uid_find(h, sh, slot_ul(s), &f->r, &bad)) &&
		    f->r.klen == klen && key_eq(f->r.key, key, klen)) {
			f->slot = sp;
			f->sval = s;
			f->rec_off = ro;
			return 1;
		}
	}
	__builtin_prefetch(seg_bucket(seg, b[1])); /* overlap both misses */
	for (k = 0; k < 2; k++) {
		uint32_t *bk = seg_bucket(seg, b[k]), m;

		for (m = bucket_match(bk, tag); m; m &= m - 1) {
			uint64_t s;

			i = match_slot(m);
			s = slot_key(&bk[i]);
			if (!s || slot_tag(s) != tag)
				continue;
			ro = uid_find(h, sh, slot_ul(s), &f->r, &bad);
			if (!ro) {
				damaged = 1;
				continue;
			}
			if (f->r.klen != klen || !key_eq(f->r.key, key, klen)) {
				damaged |= slot_misleads(h, sh, tag, &f->r);
				continue;
			}
			f->slot = &bk[i];
			f->sval = s;
			f->rec_off = ro;
			return 1;
		}
	}
	return damaged ? -1 : 0;
}

/*
 * Find key in its shard; 1 found, 0 absent, -1 structure unreadable (or a
 * slot of its tag that leads nowhere, or to another tag's key: damage).
 */
static inline int idx_find(SHF *h, struct shard *sh, uint64_t hash,
			   const void *key, uint32_t klen, struct found *f)
{
	uint32_t tag = tag_of(hash), b[2], idx;
	uint64_t so, *seg = seg_for(h, sh, tag, &so, &idx);

	if (!seg)
		return -1;
	buckets_of(hash, tag, b);
	return idx_find_seg(h, sh, seg, tag, b, key, klen, f, UINT32_MAX,
			    NULL);
}

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
		__builtin_prefetch(seg_bucket(seg, b[0]), 1);
		__builtin_prefetch(seg_bucket(seg, b[1]), 1);
	} else {
		__builtin_prefetch(seg_bucket(seg, b[0]));
		__builtin_prefetch(seg_bucket(seg, b[1]));
	}
	return 1;
}

/* ================================================================ index.c */

/* Insert a slot for hash (known absent); under the lock.  NULL + errno. */
uint32_t *idx_insert(SHF *h, struct shard *sh, uint64_t hash);
/*
 * Clear the entries of segment seg whose tag has bit set: those a split by
 * that bit copied into the new segment (under the lock; recovery finishes
 * a split with it too).
 */
void seg_unmove(uint64_t *seg, uint32_t bit);
/* Does the index lead to the record at rec_off (for its own key)? */
int idx_holds(SHF *h, struct shard *sh, uint64_t rec_off);
/*
 * Is slot (NULL: any) the one a look-up of r's key (r at rec_off) finds?
 * Not for a copy of it that another process wrote where no look-up goes:
 * what a walk of the slots does to a key (eviction) goes through that
 * one only.
 */
int idx_slot_is(SHF *h, struct shard *sh, const struct rec *r,
		uint64_t rec_off, const uint32_t *slot);
/*
 * Clear the copies of slot value sv (its mark aside) that another process
 * wrote into the bucket pair of slot, which the caller is about to clear:
 * a look-up of the key would find them next, naming a UID given up (a
 * damage shf_check() reports).  Under the lock.
 */
void idx_drop_copies(uint32_t *slot, uint64_t sv);
/* Does the index lead, by the key of local UID ul's record, to that record? */
int idx_names_uid(SHF *h, struct shard *sh, uint32_t ul);
/* The slot under the shard's CLOCK hand, which moves on; NULL: unreadable */
uint32_t *hand_next(SHF *h, struct shard *sh, uint32_t *depth);

/* ================================================================ shard.c */

/* Writers: lock (making the sequence odd, repairing after a dead holder) */
int shard_lock(SHF *h, struct shard *sh);
/* Only if free (never wait while holding another shard): 0, or -1. */
int shard_trylock(SHF *h, struct shard *sh);
void shard_unlock(SHF *h, struct shard *sh);
/* Every shard, in order; the number locked (NSHARDS: all). */
uint32_t lock_all(SHF *h);
void unlock_all(SHF *h, uint32_t n);
/* The table's count of record bytes, made again from the shards'. */
void cache_bytes_recount(SHF *h);

/* =============================================================== commit.c */

/*
 * The journaled changes of a shard (locked): each commits with one store,
 * so a writer killed at any instant leaves the old state or the new.
 * replace_rec() writes a new record for the found key with (val, vlen),
 * or with a copy of the old value passed through cb(arg, copy, vlen),
 * which returns 0 to commit; 0, 1 (cb refused, its flags in *cb_ret), or
 * -1 with errno.
 */
typedef uint32_t (*rec_edit_fn)(void *arg, char *val, uint32_t vlen);
int replace_rec(SHF *h, struct shard *sh, struct found *f, const void *val,
		uint32_t vlen, int from_old, rec_edit_fn cb, void *cb_arg,
		uint32_t *cb_ret, uint32_t kflags, uint64_t expiry);
/*
 * The size of the record that replace_rec() (without cb) writes for the
 * found key with a value of vlen bytes: a home record where it goes into
 * the key's cell, else one elsewhere (a longer header).
 */
uint64_t replace_size(SHF *h, struct shard *sh, const struct found *f,
		      uint32_t vlen, uint32_t kflags);
int insert_new(SHF *h, struct shard *sh, uint64_t hash, const void *key,
	       uint32_t klen, const void *val, uint32_t vlen, uint32_t kflags,
	       uint64_t expiry, uint32_t *ul_out);
void delete_found(SHF *h, struct shard *sh, struct found *f);
/* A lease ended (its record replaced or deleted): wake its waiters. */
void lease_end(struct shard *sh);

/* ================================================================ evict.c */

/* Lock a key's shard for a write, reclaiming a few expired keys first. */
int write_lock(SHF *h, struct shard *sh, struct clk *c);
/* The expiry of a value stored now with ttl_ms (0: none); sets *kflags. */
uint64_t ttl_expiry(SHF *h, uint32_t ttl_ms, struct clk *c, uint32_t *kflags);
/*
 * Store (the thread's key, val) in sh (locked): over the found record if
 * found (keeping its UID), else as a new key, within the byte budget.
 * 0 (*ul set), or -1 with errno.
 */
int store(SHF *h, struct shard *sh, struct found *f, int found,
	  uint64_t hash, const void *val, uint32_t vlen, uint32_t kflags,
	  uint64_t expiry, struct clk *c, uint32_t *ul);

/* ================================================================== get.c */

/*
 * What a get copies out; W_QUIET or-ed in: count it as neither a hit nor
 * a miss (the polls of a get-or-lease that waits, after its first).
 */
enum what { W_VAL_COPY, W_KEY_COPY, W_VAL_ADDR, W_TTL, W_QUIET = 0x100 };
/* Locate (by key, or by uid when by_uid) and copy out; seqlock first. */
uint32_t do_get(SHF *h, int by_uid, uint32_t uid, enum what w);
/* Copy len bytes from src into one of the thread's buffers; 0 or -1. */
static inline int tls_copy(char **buf, uint64_t *cap, const void *src,
			   uint32_t len)
{
	if (shf_tls_reserve(buf, cap, len + 1ULL) < 0)
		return -1;
	copy_val(*buf, src, len); /* a short key or value: two words */
	return 0;
}

/* Copy the record's key or value into the thread's buffer; 0 or -1. */
static inline int copy_out(struct rec *r, enum what w)
{
	if (w == W_KEY_COPY)
		return tls_copy(&shf_tls.kbuf, &shf_tls.kbuf_cap, r->key,
				r->klen);
	if (w == W_VAL_COPY)
		return tls_copy(&shf_tls.val, &shf_tls.val_cap, r->val,
				r->vlen);
	return 0;
}

static inline void publish(struct rec *r, uint32_t uid, enum what w)
{
	shf_uid = uid;
	if (w == W_KEY_COPY) {
		shf_tls.kbuf[r->klen] = 0;
		shf_key = shf_tls.kbuf;
		shf_key_len = r->klen;
	} else if (w == W_VAL_COPY) {
		shf_tls.val[r->vlen] = 0;
		shf_val = shf_tls.val;
		shf_val_len = r->vlen;
	} else if (w == W_VAL_ADDR) {
		shf_val_addr = (void *)r->val;
		shf_val_len = r->vlen;
	}
}

/*
 * Hits and misses of the thread's gets, added to the table in batches
 * (count_get_slow(): every GETSTAT_BATCH, or for another handle).
 */
#define GETSTAT_BATCH 64
struct getstat {
	SHF *h;
	uint64_t id; /* h's registry id */
	uint32_t hits, misses;
	int registered;
};
extern __thread struct getstat shf_getstat SHF_TLS_IE;
void count_get_slow(SHF *h, int hit);
/* Count the hits and misses of a batch of gets at once. */
void count_gets(SHF *h, uint32_t hits, uint32_t misses);

static inline void count_get(SHF *h, int hit)
{
	struct getstat *g = &shf_getstat;

	if (SHF_UNLIKELY(g->h != h || g->id != h->reg_id ||
			 g->hits + g->misses + 1 >= GETSTAT_BATCH)) {
		count_get_slow(h, hit);
		return;
	}
	if (hit)
		g->hits++;
	else
		g->misses++;
}
/* Add this thread's pending counts of h to the table now. */
void getstat_flush_handle(SHF *h);
/* Set the CLOCK use mark of the slot a get found, once per sweep. */
void slot_mark(SHF *h, uint32_t *slot);

/* ================================================================== put.c */

/*
 * Put modes; P_GUARDED stores only where the guard, called with the found
 * record under the lock, says yes (lease.c's fill).
 */
enum put_mode { P_PUT, P_IF_ABSENT, P_REPLACE, P_CAS, P_GUARDED };
typedef int (*put_guard_fn)(const struct rec *r, struct clk *c);
/* ttl_ms: UINT32_MAX for the table's default. */
uint32_t do_put(SHF *h, const char *val, uint32_t vlen, enum put_mode mode,
		const char *old, uint32_t old_len, uint32_t ttl_ms,
		put_guard_fn guard);
/*
 * Lock the shard of the key (the thread's) or uid and find it: *rc 1
 * found, 0 absent (shard locked, returned), -2 error (nothing locked,
 * errno set).  *vis tells whether a found record is visible.
 */
struct shard *lock_find(SHF *h, int by_uid, uint32_t uid, struct found *f,
			uint64_t *hash, int *rc, int *vis, struct clk *c);
/* Unlock (if sh) keeping errno, and return ret. */
uint32_t unlock_ret(SHF *h, struct shard *sh, uint32_t ret);

#endif /* SHF_TABLE_H */
