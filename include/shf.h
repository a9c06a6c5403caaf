/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf.h - libshf: hash tables shared by unrelated processes and threads
 * through memory-mapped files (by default under /dev/shm).
 *
 * Source compatible with SharedHashFile's public API; see libshf(7).
 *
 * Multi-process rules (read these first):
 *  - Any process may create a table with shf_attach(); creation is atomic
 *    (the file is built under a temporary name and renamed into place), so
 *    racing creators end up attached to one and the same table.
 *  - Any number of processes and threads may attach to the same table at
 *    once.  An SHF handle may be shared by the threads of one process.
 *  - Keys, values and results are per thread: shf_make_hash() names the key
 *    for the next call made by the same thread, and results come back in
 *    the thread-local variables declared below.
 *  - fork(): the child inherits the mapping; it may keep using a handle it
 *    inherited, but a handle must not be in use by another thread of the
 *    parent at the moment of fork().  exec() drops every handle.
 *  - A process that dies at any instant, even by SIGKILL while it holds a
 *    lock, never blocks the others: locks are robust futexes and the next
 *    locker repairs the shard from its journal.
 *  - Tables live on a local file system (tmpfs by default); network file
 *    systems are not supported.
 *  - No call exits, aborts or prints.  Constructors return NULL with errno
 *    set; other calls return SHF_RET_ERROR in their flags with errno set.
 */
#ifndef SHF_H
#define SHF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHF_VERSION_MAJOR 1
#define SHF_VERSION_MINOR 2
#define SHF_VERSION_PATCH 0

/** An attached table (opaque). */
typedef struct shf SHF;

/* Return flags (bit flags, may be combined). */
#define SHF_RET_OK        0u   /**< done, nothing to report */
#define SHF_RET_KEY_FOUND 1u   /**< the key (or UID) exists */
#define SHF_RET_BAD_VAL   2u   /**< the stored value does not fit the call */
#define SHF_RET_BAD_CB    4u   /**< the update callback misbehaved */
#define SHF_RET_KEY_PUT   8u   /**< the key,value pair was stored */
#define SHF_RET_NOT_TTL  16u   /**< conditional delete: the value differs */
#define SHF_RET_LEASED   32u   /**< get-or-lease: the caller holds the lease */
#define SHF_RET_KEY_NONE 128u  /**< the key (or UID) does not exist */
#define SHF_RET_ERROR    256u  /**< the call failed; errno says why */

/* SharedHashFile's helper macros for string literals. */
#define SHF_MAKE_HASH(KEY) shf_make_hash(KEY, sizeof(KEY) - 1)
#define SHF_CONST_STR_AND_SIZE(KEY) KEY, (sizeof(KEY) - 1)

/*
 * SharedHashFile's shf.h declares these; libshf keeps them so that such
 * programs build unchanged, but no libshf call takes or returns them.
 */
typedef enum SHF_KEY_TYPES {
	SHF_KEY_TYPE_KEY_IS_UID,
	SHF_KEY_TYPE_KEY_AT_UID,
	SHF_KEY_TYPE_KEY_IS_U32,
	SHF_KEY_TYPE_KEY_IS_U64,
	SHF_KEY_TYPE_KEY_IS_STR08,
	SHF_KEY_TYPE_KEY_IS_STR16,
	SHF_KEY_TYPE_KEY_IS_STR32,
	SHF_KEY_TYPE_KEY_IS_DELETED
} SHF_KEY_TYPES;
typedef enum SHF_VAL_TYPES {
	SHF_VAL_TYPE_UNUSED = 0,
	SHF_VAL_TYPE_VAL_AT_UID,
	SHF_VAL_TYPE_VAL_IS_U32,
	SHF_VAL_TYPE_VAL_IS_U64,
	SHF_VAL_TYPE_VAL_IS_SHM,
	SHF_KEY_TYPE_VAL_IS_STR08,
	SHF_KEY_TYPE_VAL_IS_STR16,
	SHF_KEY_TYPE_VAL_IS_STR32,
	SHF_KEY_TYPE_VAL_IS_UNUSED08,
	SHF_KEY_TYPE_VAL_IS_UNUSED09,
	SHF_KEY_TYPE_VAL_IS_UNUSED10,
	SHF_KEY_TYPE_VAL_IS_UNUSED11,
	SHF_KEY_TYPE_VAL_IS_UNUSED12,
	SHF_KEY_TYPE_VAL_IS_UNUSED13,
	SHF_KEY_TYPE_VAL_IS_UNUSED14,
	SHF_KEY_TYPE_VAL_IS_UNUSED15
} SHF_VAL_TYPES;
typedef union SHF_DATA_TYPE {
	struct {
		SHF_KEY_TYPES key_type : 3;
		SHF_VAL_TYPES val_type : 4;
		uint8_t extended : 1;
	} __attribute__((packed)) as_type;
	uint8_t as_u08;
} __attribute__((packed)) SHF_DATA_TYPE;
#define SHF_DATA_TYPE_DELETED (0xff)
/* Two of SharedHashFile's shf.defines.h macros that its programs use. */
#define SHF_CAST(TYPE, PTR) ((TYPE)(uintptr_t)(PTR))
#define SHF_UNUSE(ARGUMENT) (void)(ARGUMENT)

#define SHF_UID_NONE  (4294967295U) /**< no UID */
#define SHF_QID_NONE  (4294967295U) /**< no queue */
#define SHF_QIID_NONE (4294967295U) /**< no queue item */

/* Thread-local results. */
extern __thread uint32_t shf_uid;          /**< UID of the key found or put */
extern __thread char *shf_key;             /**< copy of a key (thread's buffer) */
extern __thread uint32_t shf_key_len;      /**< its length */
extern __thread char *shf_val;             /**< copy of a value (thread's buffer) */
extern __thread uint32_t shf_val_len;      /**< its length */
extern __thread long shf_val_long;         /**< result of shf_add_*_val() */
extern __thread void *shf_val_addr;        /**< value in shared memory */
/**
 * SharedHashFile's conditional delete (one shot): when non-zero, the
 * thread's next shf_del_*() deletes only a value whose first 4 bytes equal
 * it (copying it to shf_val first), else returns FOUND|NOT_TTL.  Every
 * shf_del_*() resets it to 0.  Not a time to live: see shf_put_key_val_ttl.
 */
extern __thread uint32_t shf_ttl;
/**
 * SharedHashFile's raw walk: the copy shf_tab_copy_iterate() made of one
 * shard (libshf's record format, not SharedHashFile's internal table; see
 * shf_tab_copy_iterate(3)), and its length in bytes.
 */
extern __thread void *shf_tab;
extern __thread uint32_t shf_tab_len;
extern __thread uint32_t shf_qiid;         /**< queue item pulled */
extern __thread char *shf_qiid_addr;       /**< its address */
extern __thread uint32_t shf_qiid_addr_len; /**< its size */

/** Version of the library, "X.Y.Z". */
const char *shf_version(void);

/** Once per process before any other call (idempotent, thread safe). */
void shf_init(void);

/**
 * Attach to <path>/<name>.shf, creating it atomically if it is absent.
 * With delete_upon_process_exit 1 the table is removed when the calling
 * process exits or dies (see shf-monitor(1)).
 * @return the handle, or NULL with errno: EINVAL (bad name or path),
 * ENOENT (no such path), EBADMSG (not a table or corrupt), EPROTO (layout
 * version mismatch), ENOSPC, ENOMEM, EACCES, ELOOP (symlink).
 */
SHF *shf_attach(const char *path, const char *name,
		uint32_t delete_upon_process_exit);

/** Attach only if the table exists; NULL with errno ENOENT otherwise. */
SHF *shf_attach_existing(const char *path, const char *name);

/** Unmap and free everything this process holds for the table. */
void shf_detach(SHF *shf);

/**
 * Detach and remove the table.  @return a malloc()ed text saying what was
 * removed (free() it), or NULL with errno.
 */
char *shf_del(SHF *shf);

/**
 * Name the key for the thread's next call (which hashes it with XXH3 and
 * the table's secret).
 */
void shf_make_hash(const char *key, uint32_t key_len);

/**
 * Put the key named by shf_make_hash() with a value; an existing key has
 * its value replaced atomically and keeps its UID.  val NULL reserves
 * val_len zero bytes.  Sets shf_uid.
 * @return SHF_RET_KEY_PUT, or SHF_RET_ERROR with errno (ENOSPC, ENOMEM,
 * EINVAL, EBADMSG).
 */
uint32_t shf_put_key_val(SHF *shf, const char *val, uint32_t val_len);

/** Put only if the key is absent: KEY_PUT, or KEY_FOUND (nothing put). */
uint32_t shf_put_key_val_if_absent(SHF *shf, const char *val,
				   uint32_t val_len);
/** Replace only if present: FOUND|KEY_PUT, or KEY_NONE (nothing put). */
uint32_t shf_replace_key_val(SHF *shf, const char *val, uint32_t val_len);
/**
 * Compare-and-swap: replace the value only if it equals old.
 * @return FOUND|KEY_PUT if swapped, FOUND|BAD_VAL if the value differs,
 * KEY_NONE if absent.
 */
uint32_t shf_cas_key_val(SHF *shf, const char *old, uint32_t old_len,
			 const char *val, uint32_t val_len);

/** Copy the value into shf_val/shf_val_len and set shf_uid. */
uint32_t shf_get_key_val_copy(SHF *shf);
uint32_t shf_get_uid_val_copy(SHF *shf, uint32_t uid);
/** Copy the key into shf_key/shf_key_len and set shf_uid. */
uint32_t shf_get_key_key_copy(SHF *shf);
uint32_t shf_get_uid_key_copy(SHF *shf, uint32_t uid);
/**
 * Set shf_val_addr/shf_val_len to the value in shared memory.  The address
 * stays mapped until shf_detach(); its bytes belong to the key until the key
 * is deleted or its value replaced by a put (see shf_get_key_val_addr(3)).
 */
uint32_t shf_get_key_val_addr(SHF *shf);
uint32_t shf_get_uid_val_addr(SHF *shf, uint32_t uid);

/**
 * Batched get: look up n keys in one call, overlapping their memory misses
 * (the keys are hashed and their index lines prefetched in groups).  Values
 * are copied one after another into buf (buf_size bytes): for key i,
 * offs[i] and lens[i] get the value's place in buf, uids[i] (uids may be
 * NULL) its UID; an absent key gets lens[i] = UINT32_MAX and uids[i] =
 * SHF_UID_NONE.  Does not use or change the key named by shf_make_hash().
 * @return the number of keys found, or UINT32_MAX with errno: EINVAL,
 * ENOBUFS (buf too small: the values that fit are copied, the others get
 * lens[i] = UINT32_MAX - 1), EBADMSG.
 */
uint32_t shf_get_key_val_copy_batch(SHF *shf, uint32_t n,
				    const char *const *keys,
				    const uint32_t *key_lens, char *buf,
				    uint64_t buf_size, uint64_t *offs,
				    uint32_t *lens, uint32_t *uids);

/** Delete: KEY_FOUND if it was there, KEY_NONE if not. */
uint32_t shf_del_key_val(SHF *shf);
uint32_t shf_del_uid_val(SHF *shf, uint32_t uid);

/**
 * Update callback: may change the val_len bytes at val (a private copy of
 * the value); returns 0 (SHF_RET_OK) to commit the change, or flags such as
 * SHF_RET_BAD_CB that the update ORs into its result, discarding the copy.
 */
typedef uint32_t (*shf_upd_callback_t)(const char *val, uint32_t val_len);
/** Update the value in place, under the shard's lock, with the callback. */
uint32_t shf_upd_key_val(SHF *shf);
uint32_t shf_upd_uid_val(SHF *shf, uint32_t uid);
/** Set the thread's update callback. */
void shf_upd_callback_set(shf_upd_callback_t cb);
/** Preset a value for the built-in copy callback and select it. */
uint32_t shf_upd_callback_copy(const char *val, uint32_t val_len);

/**
 * Add to a value that is a long (8 bytes): sets shf_val_long to the sum;
 * a missing key is created with the value add; a sum of 0 deletes the key.
 */
uint32_t shf_add_key_val(SHF *shf, long add);
uint32_t shf_add_uid_val(SHF *shf, uint32_t uid, long add);
uint32_t shf_add_key_val_atom(SHF *shf, long add);
uint32_t shf_add_uid_val_atom(SHF *shf, uint32_t uid, long add);

/** 0: the caller promises single-threaded, single-process use. */
void shf_set_is_lockable(SHF *shf, uint32_t is_lockable);
/**
 * Make every key key_len and every value val_len bytes (stored in the
 * table; only while it is empty, or to the lengths it already has).
 * Sets errno to EBUSY and changes nothing otherwise.
 */
void shf_set_is_fixed_len(SHF *shf, uint32_t key_len, uint32_t val_len);
/**
 * Mode of the table files this process creates from now on (default 0600;
 * e.g. 0660 for a cache shared by a group).  Owner read and write are always
 * set; bits other than 0666, or 0002 (others may write) unless
 * shf_set_allow_shared() is on, give errno EINVAL and change nothing.
 */
void shf_set_file_mode(mode_t mode);
/**
 * Trust tables that another user owns, or that others may write (a cache
 * shared by a group, a table made 0666).  By default (0) shf_attach()
 * refuses them with EPERM: whoever can write a table can read and steer
 * what the caller puts in it.  For the whole process, from now on.
 */
void shf_set_allow_shared(uint32_t allow);
/** Growth tuning knob of SharedHashFile: accepted and ignored. */
void shf_set_data_need_factor(uint32_t data_needed_factor);

/**
 * Iteration callback: return 0 to go on, anything else to stop.  The
 * pointers are private copies valid during the call only.
 */
typedef int (*shf_iterate_cb_t)(const char *key, uint32_t key_len,
				const char *val, uint32_t val_len,
				uint32_t uid, void *arg);
/**
 * Call cb for every live key,value pair.  Safe while others put and
 * delete: each key that lives through the whole walk is seen exactly once;
 * no lock is held while cb runs.  @return SHF_RET_OK, or SHF_RET_ERROR.
 */
uint32_t shf_iterate(SHF *shf, shf_iterate_cb_t cb, void *arg);
/** SharedHashFile's raw walk: visits one shard per call (see man page). */
void shf_tab_copy_iterate(SHF *shf, uint32_t *win, uint32_t *tab);

/** Statistics of a table (see shf_get_stats(3)). */
struct shf_stats {
	uint64_t keys;          /**< live keys */
	uint64_t bytes_file;    /**< size of the file */
	uint64_t bytes_used;    /**< bytes holding live records and indexes */
	uint64_t bytes_free;    /**< bytes in free lists (garbage) */
	uint64_t splits;        /**< index segment splits (growth events) */
	uint64_t lock_waits;    /**< lock acquisitions that had to wait */
	uint64_t recoveries;    /**< locks recovered from dead holders */
	uint64_t puts, dels;    /**< puts and deletes done */
	uint32_t shards;        /**< lock shards */
	uint32_t fixed_key_len; /**< fixed key length, 0 if variable */
	uint32_t fixed_val_len; /**< fixed value length */
	uint32_t layout;        /**< on-disk layout version */
	/* Since 1.1 (cache mode). */
	uint32_t ttl_default_ms; /**< table default TTL, 0: none */
	uint64_t byte_budget;   /**< byte budget, 0: none */
	uint64_t bytes_cached;  /**< bytes of live records (what the budget counts) */
	uint64_t hits, misses;  /**< gets that found / did not find a key */
	uint64_t evictions;     /**< keys evicted to stay within the budget */
	uint64_t expirations;   /**< expired keys whose space was reclaimed */
	uint64_t leases;        /**< leases granted by get-or-lease */
	uint64_t lease_waits;   /**< get-or-lease calls that waited for a lease */
	/* Since 1.2: the owner (shf_attach() with delete_upon_process_exit). */
	int64_t owner_pid;      /**< 0: none (the table persists) */
	uint64_t owner_start;   /**< its start time (see shf_get_stats(3)) */
	uint32_t owner_alive;   /**< 1: that very process still runs */
	uint32_t pad0;
};
/** Fill st (size bytes of it, for ABI growth); OK or ERROR. */
uint32_t shf_get_stats(SHF *shf, struct shf_stats *st, size_t size);

/*
 * Cache mode (see libshf(7), CACHE MODE).  Expiry times are kept in
 * milliseconds of CLOCK_REALTIME; an expired key is invisible at once to
 * every call of every process, and its space is reclaimed incrementally by
 * later puts and by shf_expire(), never by a full scan under a lock.
 */
/**
 * Put with a time to live: the key expires ttl_ms milliseconds from now
 * (0: never).  Otherwise exactly as shf_put_key_val().
 */
uint32_t shf_put_key_val_ttl(SHF *shf, const char *val, uint32_t val_len,
			     uint32_t ttl_ms);
/**
 * The table's default TTL (0: keys never expire), stored in the table: used
 * by every call that stores a new value and gives no TTL of its own
 * (shf_put_key_val, _if_absent, shf_replace_key_val, shf_cas_key_val,
 * shf_add_key_val creating a key).  Updates in place (shf_upd_*, shf_add_*
 * of an existing key) keep the key's expiry.  @return SHF_RET_OK, or
 * SHF_RET_ERROR with errno EINVAL.
 */
uint32_t shf_set_ttl_default(SHF *shf, uint32_t ttl_ms);
/**
 * Keep the bytes of live records (key + value + record header, rounded to
 * the allocation class: stats bytes_cached) at or below bytes: a put that
 * would go over first evicts least recently used keys (CLOCK: a get marks
 * its key by setting one bit, at most once per sweep) from the key's own
 * shard, then from others, so that the put succeeds.  0: no budget.  Stored
 * in the table.  @return SHF_RET_OK, or SHF_RET_ERROR with errno (EINVAL).
 */
uint32_t shf_set_byte_budget(SHF *shf, uint64_t bytes);
/**
 * Time left to the key named by shf_make_hash(): KEY_FOUND with
 * shf_val_long set to the milliseconds left (-1: never expires), or
 * KEY_NONE.
 */
uint32_t shf_get_key_ttl(SHF *shf);
/**
 * Get or lease, so that only one process computes a missing value:
 *  - the key has a value: copied as by shf_get_key_val_copy(), KEY_FOUND;
 *  - it has none: the caller gets the lease, KEY_NONE | LEASED, and is
 *    expected to store the value with any put call (which ends the lease
 *    and wakes the waiters) or to give up with shf_del_key_val();
 *  - another process holds the lease: wait up to wait_ms for its value
 *    (KEY_FOUND).  If the holder gives up, dies (seen within 50 ms) or
 *    keeps its lease longer than its lease_ms, the caller takes the lease
 *    over (KEY_NONE | LEASED).  After wait_ms: KEY_NONE | ERROR with errno
 *    ETIMEDOUT.
 * A lease belongs to a process: its threads get LEASED again.  A leased
 * key has no value: gets, iteration and dumps do not see it.
 * @return as above, or SHF_RET_ERROR with errno (EINVAL: lease_ms 0 or no
 * key named, ENOSPC, ENOMEM, EBADMSG).
 */
uint32_t shf_get_key_val_copy_or_lease(SHF *shf, uint32_t lease_ms,
				       uint32_t wait_ms);
/**
 * Put, with a TTL as shf_put_key_val_ttl(), only if the key still holds
 * the lease that shf_get_key_val_copy_or_lease() last granted this thread
 * for it: a lease that was deleted (e.g. by an invalidation), expired or
 * taken over in the meantime is not filled, so a value fetched before a
 * change elsewhere is never stored after it.  (Since 1.2.)
 * @return KEY_PUT (stored, the lease ended), KEY_NONE (no such lease:
 * nothing stored), KEY_FOUND (the key has a value now: nothing stored), or
 * SHF_RET_ERROR with errno as shf_put_key_val().
 */
uint32_t shf_put_key_val_if_leased(SHF *shf, const char *val,
				   uint32_t val_len, uint32_t ttl_ms);
/**
 * The lease that shf_get_key_val_copy_or_lease() last granted the calling
 * thread, while the thread has not filled it: a number, never 0, that no
 * other grant of the process has; 0 if none.  With shf_lease_adopt(), a
 * lease granted in one thread is filled in another.  (Since 1.2.)
 */
uint32_t shf_lease_grant(void);
/**
 * Make grant (from shf_lease_grant(), in any thread of this process) the
 * lease that the calling thread's next shf_put_key_val_if_leased() fills,
 * for the key this thread named last with shf_make_hash() (call it after).
 * A grant that ended, or that is another key's, fills nothing (KEY_NONE).
 * 0 forgets the thread's grant.  (Since 1.2.)
 */
void shf_lease_adopt(uint32_t grant);
/**
 * Give up the lease of the key named by shf_make_hash() that the calling
 * thread's grant names (as granted, or as shf_lease_adopt() set it): its
 * placeholder is deleted and the waiters take the lease over at once, only
 * if the key still holds that very lease.  @return KEY_FOUND (given up),
 * KEY_NONE (no such lease: nothing deleted), or ERROR with errno (EINVAL:
 * NULL shf or no key named; EBADMSG, ETIMEDOUT).  (Since 1.2.)
 */
uint32_t shf_del_key_val_if_leased(SHF *shf);
/**
 * Reclaim the space of expired keys: visits up to max_slots index slots of
 * each shard (holding that shard's lock only for those), going on from
 * where the previous visit of that shard stopped.
 * @return the number of keys reclaimed, or UINT32_MAX with errno.
 */
uint32_t shf_expire(SHF *shf, uint32_t max_slots);

/** Problem report callback of shf_check(): one line of text per problem. */
typedef void (*shf_check_cb_t)(const char *problem, void *arg);
#define SHF_CHECK_REPAIR 1u /**< drop what is broken, fix counters */
/**
 * Verify the table's structure shard by shard (each under its lock): index,
 * records, UID cells, counters, free lists.  With SHF_CHECK_REPAIR, entries
 * that point at unreadable records are dropped and counters fixed.
 * @return the number of problems found (0: sound), or UINT32_MAX with errno.
 */
uint32_t shf_check(SHF *shf, uint32_t flags, shf_check_cb_t cb, void *arg);

/** Bytes held by deleted entries, waiting for reuse. */
uint64_t shf_debug_get_garbage(SHF *shf);
/** Debug output control (libshf prints nothing; kept for compatibility). */
void shf_debug_verbosity_less(void);
void shf_debug_verbosity_more(void);

/** Bytes available to unprivileged users on the file system of path. */
uint64_t shf_get_vfs_available(const char *path);
/** Monotonic time in seconds. */
double shf_get_time_in_seconds(void);
/** Start child_path/child_file with up to two arguments; its pid or -1. */
pid_t shf_exec_child(const char *child_path, const char *child_file,
		     const char *child_argument_1,
		     const char *child_argument_2);
/** Run cmd with /bin/sh -c and return its output (malloc()ed) or NULL. */
char *shf_backticks(const char *cmd);

/* Zero-copy IPC queues (see shf_q_new(3)). */
void *shf_q_new(SHF *shf, uint32_t qs, uint32_t q_items,
		uint32_t q_item_size, uint32_t qids_nolock_max);
void *shf_q_get(SHF *shf);
uint32_t shf_q_is_ready(SHF *shf);
void shf_q_del(SHF *shf);
uint32_t shf_q_new_name(SHF *shf, const char *name, uint32_t name_len);
uint32_t shf_q_get_name(SHF *shf, const char *name, uint32_t name_len);
void shf_q_push_head(SHF *shf, uint32_t qid, uint32_t qiid);
uint32_t shf_q_pull_tail(SHF *shf, uint32_t qid);
uint32_t shf_q_push_head_pull_tail(SHF *shf, uint32_t push_qid,
				   uint32_t push_qiid, uint32_t pull_qid);
void shf_q_flush(SHF *shf, uint32_t pull_qid);
/**
 * Take item qiid out of the shared queue it is on, wherever it sits in
 * it: its qiid, with shf_qiid and shf_qiid_addr set as by a pull, or
 * SHF_QIID_NONE (errno ENOENT: not on a shared queue, EINVAL).
 */
uint32_t shf_q_take_item(SHF *shf, uint32_t qiid);
/** SharedHashFile's debug print of queue sizes: libshf prints nothing. */
void shf_q_size(SHF *shf, uint32_t qid);

/*
 * Race start (see shf_race_init(3)).  shf_race_start() gives up after 6
 * seconds, as SharedHashFile's does, but returns with errno ETIMEDOUT
 * instead of exiting; shf_race_start_timeout() takes the time and returns
 * SHF_RET_OK, or SHF_RET_ERROR with errno (ETIMEDOUT, ENOENT, EINVAL).
 */
void shf_race_init(SHF *shf, const char *name, uint32_t name_len);
void shf_race_start(SHF *shf, const char *name, uint32_t name_len,
		    uint32_t horses);
uint32_t shf_race_start_timeout(SHF *shf, const char *name,
				uint32_t name_len, uint32_t horses,
				uint32_t timeout_ms);

/*
 * Multiplexed logging (see shf_log_thread_new(3)).  One process drains a
 * shared ring buffer in the table to a file descriptor; any thread of any
 * process appends whole lines, which come out never torn, in order per
 * writer, byte for byte as written (or prefixed "<seconds> <pid> " after
 * shf_log_set_prefix()).  A full buffer makes writers wait; if the
 * draining process is gone a line is dropped and counted instead.
 */
/** SharedHashFile's: kept for source compatibility, does nothing. */
void shf_log_init(void);
/** Make the log (ring of log_size bytes, 0: 1 MiB) and its drain thread. */
uint32_t shf_log_thread_new(SHF *shf, uint32_t log_size, int fd);
/** Drain what is left, stop the thread; OK or ERROR (ENOENT, EINVAL). */
uint32_t shf_log_thread_del(SHF *shf);
/** Send this process's shf_log_f*() output to the table's log. */
uint32_t shf_log_attach_existing(SHF *shf);
/** Stop doing so; OK, or ERROR with ENOENT if it was not attached. */
uint32_t shf_log_detach_existing(SHF *shf);
/** Append len bytes as one record, as given; OK or ERROR. */
uint32_t shf_log_append(SHF *shf, const char *line, uint32_t len);
#define SHF_LOG_PREFIX_NONE 0u     /**< lines as written (the default) */
#define SHF_LOG_PREFIX_TIME_PID 1u /**< "<seconds> <pid> " before each */
/** What goes before every line of the table's log, for every writer. */
uint32_t shf_log_set_prefix(SHF *shf, uint32_t prefix);
/** Where this process's drain thread (and unattached output) goes. */
void shf_log_output_set(void (*output)(char *line, uint32_t len));
/** stdio-like calls: to the attached log, else to stream. */
int shf_log_fprintf(FILE *stream, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
int shf_log_vfprintf(FILE *stream, const char *format, va_list ap)
	__attribute__((format(printf, 2, 0)));
int shf_log_fputs(const char *s, FILE *stream);
int shf_log_fputc(int c, FILE *stream);

/** printf-like logging; SHF_DEBUG() only with -DSHF_DEBUG_VERSION. */
#define SHF_PLAIN(...) shf_log_fprintf(stdout, __VA_ARGS__)
#ifdef SHF_DEBUG_VERSION
#define SHF_DEBUG(...) shf_log_fprintf(stdout, __VA_ARGS__)
#else
#define SHF_DEBUG(...) ((void)0)
#endif

#ifdef __cplusplus
}
#endif

#endif /* SHF_H */
