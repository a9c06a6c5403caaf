/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-nearcache.h - libshf-nearcache: a libshf table as a host-wide
 * near-cache in front of Redis (or Valkey), kept coherent by Redis's
 * client-side caching protocol.  See libshf(7), NEAR-CACHE.
 *
 * One daemon per host and table, shf-nearcache(1), keeps a connection to
 * Redis subscribed to invalidations and deletes every invalidated key from
 * the table at once.  Programs read through the table with shf_nc_get():
 * a key found there is served at memory speed; a missing one is fetched
 * from Redis by one process of the host while the others wait, and
 * stored.
 *
 * The promise: a read never returns a value that Redis replaced or
 * deleted more than the sidecar's stale_ms (300 ms unless the daemon was
 * told otherwise) before the read began, whatever fails (Redis, the
 * network, the daemon); while all is well, a write reaches the table
 * within a millisecond or so.
 *
 * Multi-process rules:
 *  - A handle (SHF_NC) is used by one thread at a time: each thread that
 *    reads opens its own (each has its own Redis connection).
 *  - fork(): the child must not use a handle that another process uses;
 *    it opens its own (closing the inherited one is allowed).
 *  - The near-cache's shared state lives in <dir>/<name>.shfnc beside the
 *    table <dir>/<name>.shf; any process that may read the table may open
 *    it.  Remove both together.
 *  - No call exits, aborts or prints.  shf_nc_open() returns NULL with
 *    errno set; other calls return SHF_RET_ERROR with errno set.
 *
 * Link with -lshf-nearcache (pkg-config module shf-nearcache).
 */
#ifndef SHF_NEARCACHE_H
#define SHF_NEARCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <shf.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A near-cache handle of one thread (opaque). */
typedef struct shf_nc SHF_NC;

/* Connection states of a near-cache (struct shf_nc_stats, state). */
#define SHF_NC_DOWN      0u /**< no daemon, or not connected: reads bypass */
#define SHF_NC_RESYNCING 1u /**< connected, emptying the table: reads bypass */
#define SHF_NC_UP        2u /**< subscribed: the table serves reads */

/* Tracking modes (struct shf_nc_stats, mode). */
#define SHF_NC_MODE_REDIRECT 0u /**< Redis tracks the keys each host read */
#define SHF_NC_MODE_BCAST    1u /**< every write under the key prefixes */

/* Flags of struct shf_nc_options. */
#define SHF_NC_NO_NEGATIVE 1u /**< do not cache that a key is absent */

/** Options of shf_nc_open(); zero for every default. */
struct shf_nc_options {
	/** "unix:/path/to/redis.sock" or "host:port"; NULL: the address
	 * the daemon uses (only without auth_file). */
	const char *redis;
	/** File holding the password (one line), or an ACL user and its
	 * password (two lines); NULL: none. */
	const char *auth_file;
	uint32_t timeout_ms; /**< bound of each Redis call (default 1000) */
	uint32_t lease_ms;   /**< lease of a fetching process (4 * timeout) */
	uint32_t wait_ms;    /**< wait for another's fetch (lease_ms) */
	uint32_t ttl_ms;     /**< TTL of stored values (0: the table's
			      * default TTL); a shorter Redis TTL wins */
	uint32_t flags;      /**< SHF_NC_NO_NEGATIVE */
};

/**
 * Open a near-cache handle on the table <dir>/<name>.shf and its sidecar
 * <dir>/<name>.shfnc, creating either if it is absent (the daemon may
 * start later: reads go to Redis until it is up).  opt may be NULL;
 * opt_size is sizeof(struct shf_nc_options) of the caller's header.
 * The Redis connection is made at the first read that needs it.
 * @return the handle, or NULL with errno: EINVAL (bad name, dir,
 * address or option), ENOENT (no such dir or auth file), EACCES (the
 * auth file can be read by others, or no access), EBADMSG (the sidecar
 * or table is not one), EPERM (the sidecar was made by a user who may
 * not write the table), EPROTO (made by another layout version),
 * ENOMEM, ENOSPC, ELOOP (a symbolic link).
 */
SHF_NC *shf_nc_open(const char *dir, const char *name,
		    const struct shf_nc_options *opt, size_t opt_size);

/** Flush the handle's counters, close its connection, free it. */
void shf_nc_close(SHF_NC *nc);

/**
 * Read key through the near-cache.  *val and *val_len get the value: a
 * pointer into the handle's buffer, valid until the next call on nc.
 *  - found in the table and the near-cache is up: served from memory;
 *  - not in the table: fetched from Redis by this process, which holds
 *    the key's lease meanwhile (other processes wait for it), and
 *    stored, unless an invalidation came during the fetch;
 *  - the near-cache is not up (no daemon, connection lost, state older
 *    than stale_ms), another process's fetch took longer than wait_ms,
 *    or in BCAST mode a key outside the prefixes: read from Redis
 *    without the table (counted as bypassed).
 * @return SHF_RET_KEY_FOUND (value set), SHF_RET_KEY_NONE (Redis has no
 * such key; *val NULL, *val_len 0), or SHF_RET_ERROR with errno:
 * EINVAL (bad argument), ECONNREFUSED (cannot connect), ECONNRESET (the
 * connection was lost), ETIMEDOUT (no answer within timeout_ms), EIO
 * (Redis answered with an error: wrong type, authentication, loading),
 * EPROTO (an answer that is not Redis's protocol, or of the wrong
 * type), ENOMEM.
 */
uint32_t shf_nc_get(SHF_NC *nc, const char *key, uint32_t key_len,
		    const char **val, uint32_t *val_len);

/** Statistics and state of a near-cache (see shf_nc_stats(3)). */
struct shf_nc_stats {
	uint32_t state;         /**< SHF_NC_DOWN, _RESYNCING or _UP */
	uint32_t mode;          /**< SHF_NC_MODE_REDIRECT or _BCAST */
	uint64_t epoch;         /**< bumped at every (re)connection, flush */
	int32_t daemon_pid;     /**< the daemon's process, 0 if none yet */
	uint32_t daemon_alive;  /**< 1 if that process still runs */
	int64_t beat_age_ms;    /**< since its last heartbeat, -1: never */
	int64_t synced_age_ms;  /**< since its last confirmed sync, -1: never */
	int64_t state_age_ms;   /**< since the last state change, -1: never */
	uint32_t ping_ms;       /**< the daemon's PING period */
	uint32_t stale_ms;      /**< reads bypass a sync older than this */
	uint64_t client_id;     /**< the daemon's Redis client id */
	uint32_t prefixes;      /**< BCAST prefixes */
	uint32_t reserved;
	uint64_t hits;          /**< reads served from the table */
	uint64_t misses;        /**< reads that found nothing valid there */
	uint64_t fills;         /**< values (or absences) stored, fetched */
	uint64_t fill_races;    /**< fills refused: invalidated meanwhile */
	uint64_t invalidations; /**< keys deleted on Redis's invalidations */
	uint64_t resyncs;       /**< times the table was emptied */
	uint64_t reconnects;    /**< connections made after a loss */
	uint64_t bypassed;      /**< reads served by Redis, not the table */
	uint64_t errors;        /**< failed reads, daemon connection errors */
	char redis[256];        /**< the daemon's Redis address */
	char last_error[256];   /**< the daemon's last connection problem */
};

/**
 * Fill st (size bytes of it, for ABI growth) with the state and counters
 * of the near-cache of <dir>/<name>, as any process sees them (readers add
 * their counters every 64 reads and when they close).  Needs no daemon
 * and no Redis.
 * @return SHF_RET_OK, or SHF_RET_ERROR with errno: ENOENT (no
 * near-cache for this table), EINVAL, EBADMSG, EPROTO, EACCES, EPERM.
 */
uint32_t shf_nc_stats(const char *dir, const char *name,
		      struct shf_nc_stats *st, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SHF_NEARCACHE_H */
