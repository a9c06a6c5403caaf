// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache-fill.c - a miss of libshf-nearcache: what the daemon
 * published for an epoch (its token, mode, run_id, BCAST prefixes), the
 * track request that has the daemon read a key with tracking on, and the
 * fill under the key's lease (points 3 to 5 of the argument in
 * nearcache.c).  The reads from Redis are nearcache-fetch.c's.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "nearcache-internal.h"

/* ------------------------------------------- what the daemon published */

/* Copy what the daemon published for gen's epoch, checked; 0 or -1. */
int nc_view_load(struct shf_nc *nc, uint64_t gen)
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

/* --------------------------------------------------------------- fill */

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

/*
 * May reply r to a GET (the key's PTTL with it) be kept in the table?
 * Not an absence where negatives are not kept; not a value whose time
 * ends now (PTTL 0) or ended since the GET (-2, no such key): served,
 * not kept past its end.
 */
static int reply_keepable(const struct shf_nc *nc, const redisReply *r,
			  long long pttl)
{
	if (r->type == REDIS_REPLY_NIL)
		return !(nc->flags & SHF_NC_NO_NEGATIVE);
	return pttl != 0 && pttl != -2; /* a string (nc_redis_get()) */
}

/* The caller holds the key's lease: fetch from Redis and store. */
uint32_t nc_fill(struct shf_nc *nc, const char *key, uint32_t key_len,
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
	     (NC_GEN_EPOCH(g) != nc->epoch && nc_view_load(nc, g) < 0))) {
		lease_drop(nc, key, key_len);
		return nc_bypass(nc, key, key_len, val, val_len);
	}
	if (nc->mode == SHF_NC_MODE_REDIRECT && track(nc, key, key_len) < 0) {
		/* Not cached this time; the daemon going down, or a key too
		 * long to ask about, is no error. */
		if (errno != EAGAIN && errno != ENAMETOOLONG)
			nc_count(nc, NC_ERRORS);
		tracked = 0;
	}
	if (nc_redis_get(nc, key, key_len, 1, &r, &pttl) < 0)
		goto err;
	/* Our server must be the daemon's: else its tracking is no use
	 * (another server, or Redis restarted since the daemon connected). */
	same = !strcmp(nc->rc_run_id, nc->run_id);
	if (!same)
		nc_count(nc, NC_ERRORS);
	can_fill = same && tracked && reply_keepable(nc, r, pttl);
	vlen = r->type == REDIS_REPLY_STRING ? r->len : 0;
	if (can_fill && vlen > UINT32_MAX - 64 - NC_REC_HDR - key_len)
		can_fill = 0;
	if (can_fill && nc_grow(&nc->rec, &nc->rec_size, NC_REC_HDR + vlen) < 0)
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
			nc_count(nc, NC_FILLS);
		} else if (put & SHF_RET_ERROR) {
			/* ENOSPC...: serve it anyway */
			nc_count(nc, NC_ERRORS);
			lease_drop(nc, key, key_len);
		} else {
			/* Invalidated (or taken over) during the fetch. */
			nc_count(nc, NC_FILL_RACES);
		}
	}
	ret = nc_answer(nc, r, val, val_len);
	nc_reply_free(r);
	return ret;
err:
	nc_count(nc, NC_ERRORS);
	{
		int e = errno;

		lease_drop(nc, key, key_len);
		errno = e;
	}
	return SHF_RET_ERROR;
}
