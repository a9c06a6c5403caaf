/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nearcache-internal.h - what the parts of libshf-nearcache lend each
 * other, and the daemon shf-nearcache(1):
 *  - nearcache-side.c: the sidecar file <dir>/<name>.shfnc (layout below),
 *    clocks, /proc start times (libc only: shf(1) links it for "stat");
 *  - nearcache-stats.c: shf_nc_stats() (libc only);
 *  - nearcache-redis.c: hiredis connections, addresses, auth files;
 *  - nearcache.c: the read API (shf_nc_open/get/close), over libshf's
 *    public API only: the handle, its counters, a hit;
 *  - nearcache-fill.c: a miss: the daemon's published view of an epoch,
 *    track requests, the fill under a lease;
 *  - nearcache-fetch.c: the handle's reads from Redis, bypassing reads.
 *
 * Coherence (the argument is in nearcache.c and libshf(7), NEAR-CACHE):
 * every stored value carries the epoch under which it was fetched; a
 * read serves a stored value only if the sidecar says UP, the daemon
 * confirmed its subscription less than stale_ms ago, and the value's
 * epoch is the current one.  The daemon bumps the epoch before it
 * empties the table and at every (re)connection.  Before a filler GETs a
 * key, the daemon's own fetch connection reads it with tracking on
 * (a "track" request over a datagram socket), because Redis forgets the
 * keys a connection tracked when that connection closes: a filler's own
 * connection would leave keys that no invalidation ever reaches once its
 * process exits.
 */
#ifndef SHF_NEARCACHE_INTERNAL_H
#define SHF_NEARCACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "shf-nearcache.h"

#define NC_EXPORT __attribute__((visibility("default")))

/* ==== nearcache-side.c: the sidecar ================================== */

#define NC_SUFFIX ".shfnc"
#define NC_MAGIC 0x314353434e464853ULL /* "SHFNCSC1" */
#define NC_LAYOUT 1u
#define NC_SIDE_SIZE 4096u

/* gen: the epoch and the state in one word, read with one load. */
#define NC_GEN(epoch, state) (((uint64_t)(epoch) << 2) | (uint64_t)(state))
#define NC_GEN_STATE(g) ((uint32_t)((g)&3u))
#define NC_GEN_EPOCH(g) ((uint64_t)(g) >> 2)
#define NC_EPOCH_MAX ((1ULL << 61) - 1) /* see NC_REC_* */

enum nc_ctr {
	NC_HITS,
	NC_MISSES,
	NC_FILLS,
	NC_FILL_RACES,
	NC_INVALIDATIONS,
	NC_RESYNCS,
	NC_RECONNECTS,
	NC_BYPASSED,
	NC_ERRORS,
	NC_CTR_N
};

#define NC_PREFIX_MAX 16u
#define NC_PREFIX_LEN 64u  /* bytes of one BCAST prefix, at most */
#define NC_RUN_ID_LEN 40u  /* Redis's run_id: 40 hex digits */
#define NC_ADDR_MAX 256u
#define NC_ERR_MAX 256u

#define NC_PING_MS_DEFAULT 100u
#define NC_STALE_MS_MIN 10u
#define NC_STALE_MS_MAX 600000u

/*
 * The sidecar: one page, shared by the daemon (the only writer of gen,
 * the clocks and the published strings) and every reader (which add to
 * the counters).  Any process that can open it can write anything into
 * it: every field is validated where it is read, strings are bounded,
 * nothing in it is ever used as a size or an index unchecked.
 */
struct nc_side {
	/* Line 0: identity, written at creation only. */
	uint64_t magic;
	uint32_t layout;
	uint32_t size;
	uint8_t pad0[48];
	/* Line 1: read by every get; written at state changes only. */
	uint64_t gen;
	uint32_t stale_ms;
	uint32_t ping_ms;
	uint8_t pad1[48];
	/* Line 2: the daemon's clocks (CLOCK_MONOTONIC ms). */
	uint64_t synced_ms; /* sent time of the last PING whose PONG came */
	uint64_t beat_ms;   /* heartbeat of the daemon's loop */
	uint8_t pad2[48];
	/* Line 3: the daemon and its connection, for gen's epoch. */
	uint64_t sid;        /* the subscriber's Redis client id */
	uint64_t start_time; /* the daemon's, field 22 of /proc/PID/stat */
	int32_t pid;
	uint32_t mode;     /* SHF_NC_MODE_* */
	uint64_t state_ms; /* CLOCK_REALTIME ms of the last state change */
	uint64_t token[2]; /* per epoch: proves access to this file */
	uint8_t pad3[16];
	/* Lines 4 and 5: counters. */
	uint64_t ctr[16];
	/* Published by the daemon before UP (read once per epoch). */
	char run_id[48];
	char redis[NC_ADDR_MAX];
	char last_error[NC_ERR_MAX];
	uint32_t nprefix;
	uint32_t prefix_len[NC_PREFIX_MAX];
	char prefix[NC_PREFIX_MAX][NC_PREFIX_LEN];
};

struct nc_map {
	struct nc_side *side;
	int fd;
};

/* "<dir>/<name>.shfnc" into buf: 0, or -1 with errno (EINVAL, ENAMETOOLONG). */
int nc_side_path(char *buf, size_t size, const char *dir, const char *name);
/* A table name as libshf takes it: 1 to 200 bytes, no '/', no leading '.'. */
int nc_name_ok(const char *name);
/*
 * Map the sidecar of <dir>/<name>; create it (state DOWN, mode that of
 * the table's file, at least 0600) if it is absent and create is set.
 * 0, or -1 with errno (ENOENT, EBADMSG, EPROTO, EACCES, ELOOP, ...).
 */
int nc_side_open(struct nc_map *m, const char *dir, const char *name,
		 int create, int writable);
void nc_side_close(struct nc_map *m);

uint64_t nc_mono_ms(void);
/*
 * CLOCK_MONOTONIC read from the coarse clock (a few ns instead of tens)
 * plus its tick: never earlier than the precise clock, at most a tick or
 * two later; what a staleness check on every read can afford.
 */
uint64_t nc_mono_late_ms(void);
uint64_t nc_real_ms(void);
/*
 * A process's start time is lib/proc.c's shf_proc_start_time() (compiled
 * into this side too): the daemon's, as its users judge it, compares
 * across time namespaces.
 */
uint64_t shf_proc_start_time(pid_t pid);
/* Copy a string of shared memory, bounded and NUL-terminated. */
void nc_str_copy(char *dst, size_t dsize, const char *src, size_t ssize);
/* Set a string of shared memory (truncated, NUL-terminated). */
void nc_str_set(char *dst, size_t dsize, const char *src);

static inline uint64_t nc_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint32_t nc_load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void nc_store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void nc_ctr_add(struct nc_side *s, unsigned c, uint64_t v)
{
	if (v && c < NC_CTR_N)
		__atomic_add_fetch(&s->ctr[c], v, __ATOMIC_RELAXED);
}

/* ==== nearcache-redis.c: connections ================================= */

struct redisContext;
struct redisReply;

struct nc_addr {
	int is_unix;
	int port;
	char path[108]; /* sun_path */
	char host[256];
};

struct nc_auth {
	int have;
	int have_user;
	char user[256];
	char pass[1024];
};

/* "unix:/path" or "host:port" ("[v6]:port"): 0, or -1 with errno EINVAL. */
int nc_addr_parse(const char *s, struct nc_addr *a);
/*
 * Read an auth file: one line (the password) or two (ACL user, then
 * password).  Refused when others may read or write it (EACCES).  0, or
 * -1 with errno.
 */
int nc_auth_read(const char *file, struct nc_auth *a);
void nc_auth_clear(struct nc_auth *a);

/*
 * Connect, with every call bounded by timeout_ms, and AUTH.  The context,
 * or NULL with errno (ECONNREFUSED, ETIMEDOUT, EIO, EPROTO, ENOMEM) and a
 * line in err.
 */
struct redisContext *nc_connect(const struct nc_addr *a,
				const struct nc_auth *auth,
				uint32_t timeout_ms, char *err, size_t esize);
void nc_disconnect(struct redisContext **c);
/* errno for a failed context (ETIMEDOUT, ECONNRESET, EPROTO, ...). */
int nc_ctx_errno(const struct redisContext *c);
/*
 * One blocking command, its reply within timeout_ms (nc_get_reply()).
 * The reply, or NULL with errno (the context is then dead:
 * nc_disconnect() it).  An error reply is returned as is.
 */
struct redisReply *nc_command(struct redisContext *c, uint32_t timeout_ms,
			      int argc, const char **argv, const size_t *lens);
/*
 * The next reply of c (writing the commands appended first), within
 * timeout_ms in all: hiredis's redisGetReply() bounds each read by the
 * socket's timeout, so a server (one a damaged sidecar names) that sent
 * a byte at a time held the caller for ever, and one that sent a huge
 * string grew its buffer without end (here at most 512 MiB, EPROTO).
 * REDIS_OK, or REDIS_ERR with c->err set (nc_ctx_errno(): ETIMEDOUT...).
 */
int nc_get_reply(struct redisContext *c, uint32_t timeout_ms, void **reply);
/*
 * Contexts from nc_connect() refuse a reply whose arrays hold more than
 * 1,048,576 elements in all (hiredis made each array's table at its
 * header, and each element as it came).  After a read of c that failed:
 * 1, with c's error made EPROTO ("Reply of more than ... elements"), if
 * that was why; else 0.  nc_get_reply() says it by itself.
 */
int nc_reply_refused(struct redisContext *c);
/* The server's run_id (INFO server): 0, or -1 with errno (EPROTO, ...). */
int nc_run_id(struct redisContext *c, uint32_t timeout_ms,
	      char out[NC_RUN_ID_LEN + 1]);
/* A reply that is a simple "+OK". */
int nc_reply_ok(const struct redisReply *r);
void nc_reply_free(struct redisReply *r);

/*
 * SIGPIPE: hiredis writes with write(2); a library must not let a closed
 * connection kill its caller.  Block SIGPIPE in the calling thread around
 * the Redis calls and swallow the one they raised.
 */
struct nc_sigpipe {
	int blocked;   /* this call blocked it */
	int was_pending;
};
void nc_sigpipe_block(struct nc_sigpipe *s);
void nc_sigpipe_restore(struct nc_sigpipe *s);

/* ==== track requests: reader -> daemon -> reader ====================== */

/*
 * A reader that holds a key's lease asks the daemon, over a datagram
 * socket in the abstract namespace named after the sidecar's device and
 * inode, to read the key on its fetch connection (EXISTS, with CLIENT
 * TRACKING on REDIRECT to the subscriber); once the answer says so, any
 * later write of the key sends an invalidation for as long as the epoch
 * lasts.  Both ways carry the epoch's token, which only processes that
 * can read the sidecar know: a squatter of the socket's name can neither
 * make the daemon work nor answer in its place.
 */
#define NC_REQ_MAGIC 0x4b52434eu /* "NCRK" */
#define NC_REP_MAGIC 0x5052434eu /* "NCRP" */
#define NC_KEY_MAX 60000u /* longer keys are not cached */

enum nc_rep_status {
	NC_REP_TRACKED, /* tracked on the fetch connection in epoch */
	NC_REP_NOT_UP,  /* not UP, or another epoch, or a bad token */
	NC_REP_BUSY,    /* too many requests in flight */
	NC_REP_FAILED   /* Redis refused (an error reply) */
};

struct nc_req {
	uint32_t magic;
	uint32_t key_len; /* the key's bytes follow */
	uint64_t seq;
	uint64_t epoch;
	uint64_t token[2];
};

struct nc_rep {
	uint32_t magic;
	uint32_t status;
	uint64_t seq;
	uint64_t epoch;
	uint64_t token[2];
};

/* The daemon's address for the sidecar open as fd: 0, or -1 with errno. */
int nc_track_addr(int side_fd, struct sockaddr_un *sa, unsigned *len);

/* ==== stored records ================================================= */

/*
 * A value in the table is an 8-byte header and the value's bytes.  The
 * header: bits 0-60 the epoch the value was fetched under, bit 63 set for
 * "Redis has no such key" (then nothing follows), bits 61-62 zero.
 */
#define NC_REC_HDR 8u
#define NC_REC_ABSENT (1ULL << 63)
#define NC_REC_BAD (3ULL << 61)

/* ==== the library: nearcache.c, nearcache-fill.c, nearcache-fetch.c === */

/* An SHF_NC handle. */
struct shf_nc {
	SHF *shf;
	struct nc_map map;
	struct nc_addr addr;
	int addr_from_side; /* no address given: the daemon's */
	struct nc_auth auth;
	uint32_t timeout_ms, lease_ms, wait_ms, ttl_ms, flags;

	/* This handle's Redis connection. */
	struct redisContext *rc;
	pid_t rc_pid; /* the process that made it */
	char rc_run_id[NC_RUN_ID_LEN + 1]; /* "" until asked */

	/* Track requests to the daemon. */
	int tfd;
	pid_t tfd_pid;
	uint64_t tseq;
	struct sockaddr_un taddr;
	unsigned taddr_len;

	/* What the daemon published for one epoch (nc_view_load()). */
	uint64_t epoch; /* 0: nothing loaded */
	uint64_t token[2];
	uint32_t mode;
	char run_id[NC_RUN_ID_LEN + 1];
	uint32_t nprefix;
	uint32_t prefix_len[NC_PREFIX_MAX];
	char prefix[NC_PREFIX_MAX][NC_PREFIX_LEN];

	uint64_t ctr[NC_CTR_N];
	uint32_t ops;

	char *out; /* the value returned */
	size_t out_size;
	char *rec; /* header + value, for a fill */
	size_t rec_size;
};

/* Counted in the handle; nearcache.c adds them to the sidecar's. */
static inline void nc_count(struct shf_nc *nc, unsigned c)
{
	nc->ctr[c]++;
}

/* ---- nearcache-fetch.c: reads from Redis */

/* Grow a buffer to at least need bytes: 0, or -1 with ENOMEM. */
int nc_grow(char **buf, size_t *size, size_t need);
/* A copy of a value in nc->out as shf_nc_get() returns it. */
uint32_t nc_give(struct shf_nc *nc, const char *v, size_t len, const char **val,
		 uint32_t *val_len);
/*
 * GET key[, PTTL key] in one round trip on the handle's connection.  0
 * with *get (a string or nil) and *pttl, or -1 with errno.
 */
int nc_redis_get(struct shf_nc *nc, const char *key, uint32_t key_len,
		 int want_ttl, struct redisReply **get, long long *pttl);
/* The answer of a GET as shf_nc_get()'s result. */
uint32_t nc_answer(struct shf_nc *nc, const struct redisReply *r,
		   const char **val, uint32_t *val_len);
/* Read from Redis without the table (counted as bypassed). */
uint32_t nc_bypass(struct shf_nc *nc, const char *key, uint32_t key_len,
		   const char **val, uint32_t *val_len);

/* ---- nearcache-fill.c: a miss */

/* Copy what the daemon published for gen's epoch, checked; 0 or -1. */
int nc_view_load(struct shf_nc *nc, uint64_t gen);
/*
 * The caller holds the key's lease, granted while gen was current: have
 * the key tracked, fetch it from Redis, store it if the lease still holds,
 * and return it (or read around the table if the epoch changed).
 */
uint32_t nc_fill(struct shf_nc *nc, const char *key, uint32_t key_len,
		 uint64_t gen, const char **val, uint32_t *val_len);

#endif /* SHF_NEARCACHE_INTERNAL_H */
