// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache.c - the read API of libshf-nearcache: shf_nc_open(),
 * shf_nc_get(), shf_nc_close(), over libshf's public API only.
 *
 * Why no read serves a value that Redis replaced more than stale_ms
 * before the read began (see also libshf(7), NEAR-CACHE):
 *
 *  1. The daemon deletes a key from the table for every invalidation
 *     message, in the order Redis sent them, and then, for each PONG that
 *     follows on the same connection, stores in synced_ms the time it
 *     sent that PING.  Redis queues invalidations on the subscriber's
 *     connection as the writes happen (BCAST ones at the end of its event
 *     loop turn, hence one PING later there), so when synced_ms = S every
 *     write Redis ran before S has had its key deleted.
 *  2. A read serves a stored value only if, loaded as one snapshot before
 *     it looks at the table, gen says UP at epoch E and S is younger than
 *     stale_ms, and the value was stored under E (its header).  Every
 *     write before S >= start - stale_ms has thus been applied before the
 *     table is looked at; a value stored later comes from a fill (3).
 *  3. A fill: the filler holds the key's lease (a placeholder record),
 *     then reads gen (epoch E), then (redirect mode) has the daemon read
 *     the key on its fetch connection, which has CLIENT TRACKING on
 *     REDIRECT to the subscriber and lives as long as E (a "track"
 *     request; in BCAST mode the subscriber registered the prefixes
 *     before UP), then GETs on its own connection, then stores with
 *     shf_put_key_val_if_leased(), which stores only while the very lease
 *     it was granted holds.  A write that Redis runs after that GET, hence
 *     after the tracking read, sends an invalidation; the daemon's delete
 *     of the key removes the lease (or the stored value), so the fill
 *     stores nothing (counted as a fill race) or is deleted.  A write
 *     before the GET is in the value fetched.  (The filler's own
 *     connection cannot hold the tracking: Redis forgets what a connection
 *     tracked when it closes, and the filler may exit at any time.)
 *  4. What the daemon cannot see (its connection lost, Redis restarted,
 *     the daemon killed): synced_ms stops, so within stale_ms reads go to
 *     Redis (bypassed); when the daemon notices it bumps the epoch first
 *     and only then empties the table, so values of the old epoch, even
 *     fills that land after the emptying (a lease is invisible to
 *     shf_iterate(), so the daemon cannot delete leases in flight), are
 *     never served again: a read that finds one deletes it.
 *  5. The filler's connection must be to the very server the daemon
 *     subscribes to: it compares the servers' run_id and, if they
 *     differ (a restart, or a misconfiguration), never fills.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "nearcache-internal.h"

#define TIMEOUT_MS_DEFAULT 1000u
#define TIMEOUT_MS_MAX 3600000u
#define FLUSH_EVERY 64u /* reads between two adds to the shared counters */
#define TRIES 4

struct shf_nc {
	SHF *shf;
	struct nc_map map;
	struct nc_addr addr;
	int addr_from_side; /* no address given: the daemon's */
	struct nc_auth auth;
	uint32_t timeout_ms, lease_ms, wait_ms, ttl_ms, flags;

	/* This handle's Redis connection. */
	redisContext *rc;
	pid_t rc_pid;   /* the process that made it */
	char rc_run_id[NC_RUN_ID_LEN + 1]; /* "" until asked */

	/* Track requests to the daemon. */
	int tfd;
	pid_t tfd_pid;
	uint64_t tseq;
	struct sockaddr_un taddr;
	unsigned taddr_len;

	/* What the daemon published for one epoch (view_load()). */
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

/* ---------------------------------------------------------- counters */

static void ctr_flush(struct shf_nc *nc)
{
	unsigned i;

	for (i = 0; i < NC_CTR_N; i++) {
		nc_ctr_add(nc->map.side, i, nc->ctr[i]);
		nc->ctr[i] = 0;
	}
	nc->ops = 0;
}

static void count(struct shf_nc *nc, unsigned c)
{
	nc->ctr[c]++;
}

/* One read done: its counters reach the sidecar every FLUSH_EVERY reads. */
static void read_done(struct shf_nc *nc)
{
	if (++nc->ops >= FLUSH_EVERY)
		ctr_flush(nc);
}

/* -------------------------------------------------- the daemon's state */

/*
 * A consistent snapshot of gen and synced_ms: the daemon stores synced_ms
 * of a new epoch only after it published that epoch, so the same gen
 * before and after means S belongs to it.  1 if the table may serve.
 */
static int usable(struct shf_nc *nc, uint64_t *genp)
{
	struct nc_side *s = nc->map.side;
	uint64_t g1, g2, synced, now;
	uint32_t stale;

	g1 = nc_load(&s->gen);
	if (NC_GEN_STATE(g1) != SHF_NC_UP)
		return 0;
	synced = nc_load(&s->synced_ms);
	stale = nc_load32(&s->stale_ms);
	g2 = nc_load(&s->gen);
	if (g1 != g2 || stale < NC_STALE_MS_MIN || stale > NC_STALE_MS_MAX)
		return 0;
	/* Late rather than early: the sync may only look older. */
	now = nc_mono_late_ms();
	if (synced > now || now - synced >= stale)
		return 0;
	*genp = g1;
	return 1;
}

/* Copy what the daemon published for gen's epoch, checked; 0 or -1. */
static int view_load(struct shf_nc *nc, uint64_t gen)
{
	struct nc_side *s = nc->map.side;
	char rid[sizeof(s->run_id)];
	uint32_t mode, n, i, j, len[NC_PREFIX_MAX];
	char pre[NC_PREFIX_MAX][NC_PREFIX_LEN];
	uint64_t token[2];

	token[0] = nc_load(&s->token[0]);
	token[1] = nc_load(&s->token[1]);
	mode = nc_load32(&s->mode);
	nc_str_copy(rid, sizeof(rid), s->run_id, sizeof(s->run_id));
	if (mode > SHF_NC_MODE_BCAST || strlen(rid) != NC_RUN_ID_LEN)
		return -1;
	n = 0;
	if (mode == SHF_NC_MODE_BCAST) {
		n = nc_load32(&s->nprefix);
		if (n > NC_PREFIX_MAX)
			return -1;
		for (i = 0; i < n; i++) {
			len[i] = nc_load32(&s->prefix_len[i]);
			if (len[i] > NC_PREFIX_LEN)
				return -1;
			for (j = 0; j < len[i]; j++)
				pre[i][j] = __atomic_load_n(&s->prefix[i][j],
							    __ATOMIC_RELAXED);
		}
	}
	/* Unchanged meanwhile: all of it belongs to gen. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (nc_load(&s->gen) != gen)
		return -1;
	nc->token[0] = token[0];
	nc->token[1] = token[1];
	nc->mode = mode;
	memcpy(nc->run_id, rid, sizeof(nc->run_id));
	nc->nprefix = n;
	for (i = 0; i < n; i++) {
		nc->prefix_len[i] = len[i];
		memcpy(nc->prefix[i], pre[i], len[i]);
	}
	nc->epoch = NC_GEN_EPOCH(gen);
	return 0;
}

static int prefix_match(const struct shf_nc *nc, const char *key,
			uint32_t key_len)
{
	uint32_t i;

	if (!nc->nprefix)
		return 1; /* BCAST without prefixes: every key */
	for (i = 0; i < nc->nprefix; i++)
		if (key_len >= nc->prefix_len[i] &&
		    !memcmp(key, nc->prefix[i], nc->prefix_len[i]))
			return 1;
	return 0;
}

/* ----------------------------------------------------------- buffers */

static int grow(char **buf, size_t *size, size_t need)
{
	char *p;
	size_t n;

	if (need <= *size)
		return 0;
	n = *size ? *size : 256;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	p = realloc(*buf, n);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	*buf = p;
	*size = n;
	return 0;
}

static uint32_t give(struct shf_nc *nc, const char *v, size_t len,
		     const char **val, uint32_t *val_len)
{
	if (len > UINT32_MAX - 64) {
		errno = EPROTO;
		return SHF_RET_ERROR;
	}
	if (grow(&nc->out, &nc->out_size, len + 1) < 0)
		return SHF_RET_ERROR;
	memcpy(nc->out, v, len);
	nc->out[len] = '\0';
	*val = nc->out;
	*val_len = (uint32_t)len;
	return SHF_RET_KEY_FOUND;
}

/* -------------------------------------------------------------- Redis */

/*
 * This process's connection, made if need be, with the server's run_id.
 * 1 if it is new, 0 if it served before (and may have died since: the
 * server restarted, an idle timeout), or -1 with errno.
 */
static int conn_ensure(struct shf_nc *nc)
{
	struct nc_addr side_addr;
	struct nc_sigpipe sp;
	char addr[NC_ADDR_MAX], err[160];
	const struct nc_addr *a = &nc->addr;
	pid_t me = getpid();
	int rc, e;

	if (nc->rc && (nc->rc_pid != me || nc->rc->err))
		nc_disconnect(&nc->rc); /* another process's, or dead */
	if (nc->rc)
		return 0;
	if (nc->addr_from_side) {
		nc_str_copy(addr, sizeof(addr), nc->map.side->redis,
			    sizeof(nc->map.side->redis));
		if (!addr[0]) {
			errno = EDESTADDRREQ; /* no daemon ever said */
			return -1;
		}
		if (nc_addr_parse(addr, &side_addr) < 0)
			return -1;
		a = &side_addr;
	}
	nc_sigpipe_block(&sp);
	nc->rc = nc_connect(a, &nc->auth, nc->timeout_ms, err, sizeof(err));
	rc = nc->rc ? nc_run_id(nc->rc, nc->rc_run_id) : -1;
	e = errno;
	nc_sigpipe_restore(&sp);
	if (rc < 0) {
		nc_disconnect(&nc->rc);
		errno = e;
		return -1;
	}
	nc->rc_pid = me;
	return 1;
}

static int reply_errno(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR ? EIO : EPROTO;
}

/*
 * GET key[, PTTL key] in one round trip.  0 with *get (a string or nil)
 * and *pttl, or -1 with errno.  A connection that served before and
 * turns out closed is made anew once (the commands only read).
 */
static int redis_get(struct shf_nc *nc, const char *key, uint32_t key_len,
		     int want_ttl, redisReply **get, long long *pttl)
{
	const char *argv[2];
	size_t lens[2] = { 0, key_len };
	redisReply *r[2];
	struct nc_sigpipe sp;
	int n, i, e, fresh, attempt;

	*get = NULL;
	*pttl = -1;
	for (attempt = 0;; attempt++) {
		fresh = conn_ensure(nc);
		if (fresh < 0)
			return -1;
		r[0] = r[1] = NULL;
		n = 0;
		nc_sigpipe_block(&sp);
		argv[0] = "GET";
		lens[0] = 3;
		argv[1] = key;
		if (redisAppendCommandArgv(nc->rc, 2, argv, lens) != REDIS_OK)
			goto io;
		n++;
		if (want_ttl) {
			argv[0] = "PTTL";
			lens[0] = 4;
			if (redisAppendCommandArgv(nc->rc, 2, argv, lens) !=
			    REDIS_OK)
				goto io;
			n++;
		}
		for (i = 0; i < n; i++)
			if (redisGetReply(nc->rc, (void **)&r[i]) != REDIS_OK ||
			    !r[i])
				goto io;
		nc_sigpipe_restore(&sp);
		break;
io:
		e = nc_ctx_errno(nc->rc);
		nc_sigpipe_restore(&sp);
		nc_disconnect(&nc->rc);
		for (i = 0; i < 2; i++)
			nc_reply_free(r[i]);
		if (!fresh && !attempt && e == ECONNRESET)
			continue;
		errno = e;
		return -1;
	}
	e = 0;
	if (r[0]->type != REDIS_REPLY_STRING && r[0]->type != REDIS_REPLY_NIL)
		e = reply_errno(r[0]);
	else if (want_ttl && r[1]->type != REDIS_REPLY_INTEGER)
		e = reply_errno(r[1]);
	if (e) {
		for (i = 0; i < 2; i++)
			nc_reply_free(r[i]);
		errno = e;
		return -1;
	}
	if (want_ttl)
		*pttl = r[1]->integer;
	*get = r[0];
	nc_reply_free(r[1]);
	return 0;
}

/* The answer of a GET as shf_nc_get()'s result. */
static uint32_t answer(struct shf_nc *nc, const redisReply *r,
		       const char **val, uint32_t *val_len)
{
	if (r->type == REDIS_REPLY_NIL)
		return SHF_RET_KEY_NONE;
	return give(nc, r->str, r->len, val, val_len);
}

/* Read from Redis without the table. */
static uint32_t bypass(struct shf_nc *nc, const char *key, uint32_t key_len,
		       const char **val, uint32_t *val_len)
{
	redisReply *r;
	long long pttl;
	uint32_t ret;

	count(nc, NC_BYPASSED);
	if (redis_get(nc, key, key_len, 0, &r, &pttl) < 0) {
		count(nc, NC_ERRORS);
		return SHF_RET_ERROR;
	}
	ret = answer(nc, r, val, val_len);
	nc_reply_free(r);
	return ret;
}

/* ------------------------------------------------------ fill and hit */

/* Give the lease up so that a waiter takes it at once.  (If the lease was
 * deleted meanwhile and another process leased the key again, this ends
 * that lease too: its fill then stores nothing, which is safe.) */
static void lease_drop(struct shf_nc *nc, const char *key, uint32_t key_len)
{
	shf_make_hash(key, key_len);
	shf_del_key_val(nc->shf);
}

static int track_socket(struct shf_nc *nc)
{
	struct sockaddr_un self;
	pid_t me = getpid();

	if (nc->tfd >= 0 && nc->tfd_pid == me)
		return 0;
	if (nc->tfd >= 0)
		close(nc->tfd); /* our copy of another process's socket */
	nc->tfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (nc->tfd < 0)
		return -1;
	/* Autobind: a unique abstract address the daemon answers to. */
	memset(&self, 0, sizeof(self));
	self.sun_family = AF_UNIX;
	if (bind(nc->tfd, (struct sockaddr *)&self, sizeof(sa_family_t)) < 0) {
		int e = errno;

		close(nc->tfd);
		nc->tfd = -1;
		errno = e;
		return -1;
	}
	nc->tfd_pid = me;
	return 0;
}

/*
 * Have the daemon read the key with tracking on, in this epoch: 0 once it
 * says so, or -1 with errno (EAGAIN: not up or another epoch, ETIMEDOUT,
 * EBUSY, EIO, ECONNREFUSED: no daemon listens, ENAMETOOLONG).
 */
static int track(struct shf_nc *nc, const char *key, uint32_t key_len)
{
	struct nc_req req;
	struct nc_rep rep;
	struct iovec iov[2];
	struct msghdr mh;
	struct pollfd pfd;
	uint64_t end, now;
	ssize_t n;

	if (key_len > NC_KEY_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (track_socket(nc) < 0)
		return -1;
	memset(&req, 0, sizeof(req));
	req.magic = NC_REQ_MAGIC;
	req.key_len = key_len;
	req.seq = ++nc->tseq;
	req.epoch = nc->epoch;
	req.token[0] = nc->token[0];
	req.token[1] = nc->token[1];
	iov[0].iov_base = &req;
	iov[0].iov_len = sizeof(req);
	iov[1].iov_base = (void *)key;
	iov[1].iov_len = key_len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &nc->taddr;
	mh.msg_namelen = nc->taddr_len;
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if (sendmsg(nc->tfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -1;
	end = nc_mono_ms() + nc->timeout_ms;
	for (;;) {
		now = nc_mono_ms();
		if (now >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		/* A daemon that changed epoch (or was replaced) ignores or
		 * drops a request of the old one: do not wait it out. */
		if (NC_GEN_EPOCH(nc_load(&nc->map.side->gen)) != req.epoch) {
			errno = EAGAIN;
			return -1;
		}
		pfd.fd = nc->tfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, end - now > 10 ? 10 : (int)(end - now)) < 0 &&
		    errno != EINTR)
			return -1;
		n = recv(nc->tfd, &rep, sizeof(rep), MSG_DONTWAIT);
		/* Anything but our answer (a late one, or noise): skip. */
		if (n != (ssize_t)sizeof(rep) || rep.magic != NC_REP_MAGIC ||
		    rep.seq != req.seq || rep.token[0] != req.token[0] ||
		    rep.token[1] != req.token[1])
			continue;
		if (rep.epoch != req.epoch) {
			errno = EAGAIN;
			return -1;
		}
		switch (rep.status) {
		case NC_REP_TRACKED:
			return 0;
		case NC_REP_BUSY:
			errno = EBUSY;
			return -1;
		case NC_REP_FAILED:
			errno = EIO;
			return -1;
		default:
			errno = EAGAIN;
			return -1;
		}
	}
}

static uint32_t fill_ttl(const struct shf_nc *nc, long long pttl)
{
	uint32_t ttl = nc->ttl_ms;

	if (pttl > 0) {
		uint32_t p = pttl > UINT32_MAX ? UINT32_MAX : (uint32_t)pttl;

		if (!ttl || p < ttl)
			ttl = p;
	}
	return ttl;
}

/* The caller holds the key's lease: fetch from Redis and store. */
static uint32_t fill(struct shf_nc *nc, const char *key, uint32_t key_len,
		     uint64_t gen, const char **val, uint32_t *val_len)
{
	struct nc_side *s = nc->map.side;
	redisReply *r;
	long long pttl;
	uint64_t g, hdr;
	uint32_t ret, put;
	size_t vlen;
	int same, tracked = 1, can_fill;

	/* The lease first, then the epoch, the tracking, the GET. */
	g = nc_load(&s->gen);
	if (g != gen &&
	    (NC_GEN_STATE(g) != SHF_NC_UP ||
	     (NC_GEN_EPOCH(g) != nc->epoch && view_load(nc, g) < 0))) {
		lease_drop(nc, key, key_len);
		return bypass(nc, key, key_len, val, val_len);
	}
	if (nc->mode == SHF_NC_MODE_REDIRECT && track(nc, key, key_len) < 0) {
		/* Not cached this time; the daemon going down, or a key too
		 * long to ask about, is no error. */
		if (errno != EAGAIN && errno != ENAMETOOLONG)
			count(nc, NC_ERRORS);
		tracked = 0;
	}
	if (redis_get(nc, key, key_len, 1, &r, &pttl) < 0)
		goto err;
	/* Our server must be the daemon's: else its tracking is no use
	 * (another server, or Redis restarted since the daemon connected). */
	same = !strcmp(nc->rc_run_id, nc->run_id);
	if (!same)
		count(nc, NC_ERRORS);
	can_fill = same && tracked;
	if (r->type == REDIS_REPLY_NIL && (nc->flags & SHF_NC_NO_NEGATIVE))
		can_fill = 0;
	vlen = r->type == REDIS_REPLY_STRING ? r->len : 0;
	if (can_fill && vlen > UINT32_MAX - 64 - NC_REC_HDR - key_len)
		can_fill = 0;
	if (can_fill && grow(&nc->rec, &nc->rec_size, NC_REC_HDR + vlen) < 0)
		can_fill = 0;
	if (!can_fill) {
		lease_drop(nc, key, key_len);
	} else {
		hdr = nc->epoch;
		if (r->type == REDIS_REPLY_NIL)
			hdr |= NC_REC_ABSENT;
		memcpy(nc->rec, &hdr, NC_REC_HDR);
		if (vlen)
			memcpy(nc->rec + NC_REC_HDR, r->str, vlen);
		shf_make_hash(key, key_len);
		put = shf_put_key_val_if_leased(nc->shf, nc->rec,
						(uint32_t)(NC_REC_HDR + vlen),
						fill_ttl(nc, pttl));
		if (put == SHF_RET_KEY_PUT) {
			count(nc, NC_FILLS);
		} else if (put & SHF_RET_ERROR) {
			count(nc, NC_ERRORS); /* ENOSPC...: serve it anyway */
			lease_drop(nc, key, key_len);
		} else {
			/* Invalidated (or taken over) during the fetch. */
			count(nc, NC_FILL_RACES);
		}
	}
	ret = answer(nc, r, val, val_len);
	nc_reply_free(r);
	return ret;
err:
	count(nc, NC_ERRORS);
	{
		int e = errno;

		lease_drop(nc, key, key_len);
		errno = e;
	}
	return SHF_RET_ERROR;
}

enum { REC_VALUE, REC_ABSENT, REC_OLD };

/* What the record in shf_val is, for epoch. */
static int rec_kind(uint64_t epoch)
{
	uint64_t hdr;

	if (shf_val_len < NC_REC_HDR)
		return REC_OLD;
	memcpy(&hdr, shf_val, NC_REC_HDR);
	if ((hdr & NC_REC_BAD) || (hdr & ~NC_REC_ABSENT) != epoch)
		return REC_OLD;
	if (hdr & NC_REC_ABSENT)
		return shf_val_len == NC_REC_HDR ? REC_ABSENT : REC_OLD;
	return REC_VALUE;
}

NC_EXPORT uint32_t shf_nc_get(SHF_NC *nc, const char *key, uint32_t key_len,
			      const char **val, uint32_t *val_len)
{
	uint64_t gen;
	uint32_t r, ret;
	int tries, kind;

	if (!nc || !key || !val || !val_len) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	*val = NULL;
	*val_len = 0;
	for (tries = 0;; tries++) {
		if (tries == TRIES || !usable(nc, &gen) ||
		    (NC_GEN_EPOCH(gen) != nc->epoch &&
		     view_load(nc, gen) < 0) ||
		    (nc->mode == SHF_NC_MODE_BCAST &&
		     !prefix_match(nc, key, key_len))) {
			ret = bypass(nc, key, key_len, val, val_len);
			break;
		}
		shf_make_hash(key, key_len);
		/* A plain get first: get-or-lease asks getpid() each time,
		 * a system call that costs more than the whole hit. */
		r = shf_get_key_val_copy(nc->shf);
		if (r != SHF_RET_KEY_FOUND)
			r = shf_get_key_val_copy_or_lease(nc->shf, nc->lease_ms,
							  nc->wait_ms);
		if (r == SHF_RET_KEY_FOUND) {
			kind = rec_kind(nc->epoch);
			if (kind == REC_OLD) {
				/* Of an older epoch (or damaged): away. */
				shf_make_hash(key, key_len);
				shf_del_key_val(nc->shf);
				continue;
			}
			count(nc, NC_HITS);
			ret = SHF_RET_KEY_NONE;
			if (kind == REC_VALUE)
				ret = give(nc, shf_val + NC_REC_HDR,
					   shf_val_len - NC_REC_HDR, val,
					   val_len);
			break;
		}
		if (r == (SHF_RET_KEY_NONE | SHF_RET_LEASED)) {
			count(nc, NC_MISSES);
			ret = fill(nc, key, key_len, gen, val, val_len);
			break;
		}
		/* Another's fetch took longer than wait_ms (ETIMEDOUT), or
		 * the table failed (ENOSPC, EBADMSG): Redis still answers. */
		if (!(r & SHF_RET_ERROR) || errno != ETIMEDOUT)
			count(nc, NC_ERRORS);
		ret = bypass(nc, key, key_len, val, val_len);
		break;
	}
	read_done(nc);
	return ret;
}

/* ------------------------------------------------------ open and close */

NC_EXPORT SHF_NC *shf_nc_open(const char *dir, const char *name,
			      const struct shf_nc_options *opt,
			      size_t opt_size)
{
	struct shf_nc_options o;
	struct shf_stats st;
	struct shf_nc *nc;
	size_t i;
	int e;

	memset(&o, 0, sizeof(o));
	if (!dir || !*dir || !nc_name_ok(name) || (opt && !opt_size)) {
		errno = EINVAL;
		return NULL;
	}
	if (opt) {
		/* A newer caller's options must be zero where we know none. */
		for (i = sizeof(o); i < opt_size; i++)
			if (((const char *)opt)[i]) {
				errno = EINVAL;
				return NULL;
			}
		memcpy(&o, opt, opt_size < sizeof(o) ? opt_size : sizeof(o));
	}
	if (o.timeout_ms > TIMEOUT_MS_MAX || o.flags & ~SHF_NC_NO_NEGATIVE) {
		errno = EINVAL;
		return NULL;
	}
	nc = calloc(1, sizeof(*nc));
	if (!nc) {
		errno = ENOMEM;
		return NULL;
	}
	nc->map.fd = -1;
	nc->tfd = -1;
	nc->timeout_ms = o.timeout_ms ? o.timeout_ms : TIMEOUT_MS_DEFAULT;
	nc->lease_ms = o.lease_ms ? o.lease_ms : 4 * nc->timeout_ms;
	nc->wait_ms = o.wait_ms ? o.wait_ms : nc->lease_ms;
	nc->flags = o.flags;
	if (o.redis) {
		if (nc_addr_parse(o.redis, &nc->addr) < 0)
			goto fail;
	} else if (o.auth_file) {
		/* Never send a password where shared memory points. */
		errno = EINVAL;
		goto fail;
	} else {
		nc->addr_from_side = 1;
	}
	if (o.auth_file && nc_auth_read(o.auth_file, &nc->auth) < 0)
		goto fail;
	shf_init();
	nc->shf = shf_attach(dir, name, 0);
	if (!nc->shf)
		goto fail;
	if (nc_side_open(&nc->map, dir, name, 1, 1) < 0 ||
	    nc_track_addr(nc->map.fd, &nc->taddr, &nc->taddr_len) < 0)
		goto fail;
	nc->ttl_ms = o.ttl_ms;
	memset(&st, 0, sizeof(st));
	if (!nc->ttl_ms &&
	    shf_get_stats(nc->shf, &st, sizeof(st)) == SHF_RET_OK)
		nc->ttl_ms = st.ttl_default_ms;
	return nc;
fail:
	e = errno;
	shf_nc_close(nc);
	errno = e;
	return NULL;
}

NC_EXPORT void shf_nc_close(SHF_NC *nc)
{
	int e = errno;

	if (!nc)
		return;
	if (nc->map.side)
		ctr_flush(nc);
	/* A copy of another process's connection too: redisFree() sends
	 * nothing, it closes this process's descriptor. */
	nc_disconnect(&nc->rc);
	if (nc->tfd >= 0)
		close(nc->tfd);
	nc_side_close(&nc->map);
	if (nc->shf)
		shf_detach(nc->shf);
	nc_auth_clear(&nc->auth);
	free(nc->out);
	free(nc->rec);
	free(nc);
	errno = e;
}
