// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-nearcache.c - the near-cache daemon, one per host and table: keeps
 * the table <dir>/<name>.shf coherent with Redis through Redis's
 * client-side caching protocol (RESP2).  See shf-nearcache(1) and
 * libshf(7), NEAR-CACHE.
 *
 * Connections (all in one thread, one poll() loop, nothing blocks longer
 * than --timeout-ms):
 *  - the subscriber: CLIENT ID, then SUBSCRIBE __redis__:invalidate; in
 *    BCAST mode it first turns CLIENT TRACKING on for its prefixes,
 *    redirected to itself.  Each invalidation message deletes its keys
 *    from the table; a null one empties it.  PINGs every --ping-ms prove
 *    it alive and in order (see nearcache.c for why that makes synced_ms
 *    a bound on staleness).
 *  - the fetch connection (redirect mode): CLIENT TRACKING on REDIRECT to
 *    the subscriber.  A reader about to fill a key asks (a datagram) that
 *    it be read here first (EXISTS), so that Redis tracks it for as long
 *    as this connection, i.e. the epoch, lives; PINGed as well.
 *  - the track socket: requests from the readers, answered in order.
 *
 * On any loss, timeout or protocol error: the epoch is bumped with state
 * DOWN before anything else, then the table emptied, then reconnection
 * with backoff; after SUBSCRIBE the epoch is bumped again (RESYNCING),
 * the table emptied again, and UP is set once a PING round trip has
 * confirmed the subscription.  SIGTERM/SIGINT: DOWN, exit 0.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shf.h"
#include "nearcache-internal.h"
#include "shf-nearcache-print.h"

#define EXIT_FAIL 1    /* cannot start: table, sidecar, socket */
#define EXIT_USAGE 2
#define EXIT_RUNNING 3 /* another daemon serves the table */

#define CHANNEL "__redis__:invalidate"
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define PEND_MAX 4096u /* track requests in flight */
#define REQ_BATCH 64   /* track requests read per loop turn */

/* ------------------------------------------------------------ options */

static const char *o_dir = "/dev/shm";
static const char *o_name, *o_redis, *o_auth_file;
static uint64_t o_budget;
static int o_budget_set;
static uint32_t o_ttl;
static int o_ttl_set;
static uint32_t o_ping_ms = NC_PING_MS_DEFAULT, o_stale_ms,
		o_timeout_ms = 1000;
static int o_bcast;
static const char *o_prefix[NC_PREFIX_MAX];
static uint32_t o_nprefix;
static int o_quiet;

/* -------------------------------------------------------------- state */

static volatile sig_atomic_t g_stop;
static SHF *g_shf;
static struct nc_map g_map;
static struct nc_side *S;
static struct nc_addr g_addr;
static struct nc_auth g_auth;
static uint64_t g_epoch;
static uint32_t g_state = SHF_NC_DOWN;
static uint64_t g_token[2];
static int g_tfd = -1;
static char g_err[NC_ERR_MAX]; /* why the session ended */
static int g_err_logged;       /* g_err was logged already */

struct conn {
	redisContext *c;
	int ping_out;       /* a PING waits for its PONG */
	uint64_t ping_seq;
	uint64_t ping_sent; /* when it was sent */
	uint64_t next_ping;
	uint64_t answered;  /* sent time of the last PING answered */
	uint64_t synced;    /* what this connection vouches for */
};
static struct conn g_sub, g_fetch;

/* What the fetch connection's replies answer, in order. */
struct pend {
	int is_ping;
	uint64_t seq;
	uint64_t token[2]; /* the request's, echoed */
	struct sockaddr_un from;
	socklen_t from_len;
};
static struct pend *g_pend;
static size_t g_pend_head, g_pend_n;

/* ------------------------------------------------------------ logging */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shf-nearcache %s: ", o_name ? o_name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Record why the session fails (in the sidecar too); 0. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_err, sizeof(g_err), fmt, ap);
	va_end(ap);
	return -1;
}

static void on_signal(int sig)
{
	g_stop = sig;
}

/* -------------------------------------------------------- the sidecar */

/* Publish a state; every state but UP starts a new epoch. */
static void set_state(uint32_t state)
{
	if (state != SHF_NC_UP)
		g_epoch++;
	g_state = state;
	nc_store(&S->state_ms, nc_real_ms());
	nc_store(&S->gen, NC_GEN(g_epoch, state));
}

static void beat(void)
{
	nc_store(&S->beat_ms, nc_mono_ms());
}

static void new_token(void)
{
	uint64_t t[2] = { 0, 0 };

	/* Unguessable enough; a short read only weakens it. */
	if (getrandom(t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t)) {
		t[0] ^= nc_mono_ms() * 0x9e3779b97f4a7c15ULL;
		t[1] ^= (uint64_t)getpid() * 0xc2b2ae3d27d4eb4fULL;
	}
	t[1] ^= g_epoch; /* never the same twice */
	g_token[0] = t[0];
	g_token[1] = t[1];
	nc_store(&S->token[0], t[0]);
	nc_store(&S->token[1], t[1]);
}

static unsigned long flush_n;

static int flush_cb(const char *key, uint32_t key_len, const char *val,
		    uint32_t val_len, uint32_t uid, void *arg)
{
	(void)val;
	(void)val_len;
	(void)uid;
	(void)arg;
	shf_make_hash(key, key_len);
	shf_del_key_val(g_shf);
	if (++flush_n % 4096 == 0)
		beat();
	return g_stop ? 1 : 0;
}

/*
 * Empty the table.  Leases in progress are invisible to shf_iterate() and
 * stay: their fills carry an older epoch and are never served.
 */
static void flush_table(void)
{
	flush_n = 0;
	shf_iterate(g_shf, flush_cb, NULL);
	nc_ctr_add(S, NC_RESYNCS, 1);
	beat();
}

/* Lost (or starting): DOWN in a new epoch first, then empty the table. */
static void go_down(void)
{
	set_state(SHF_NC_DOWN);
	flush_table();
}

/* ------------------------------------------------------ track socket */

/*
 * Answer a request: its token (which was the epoch's when it came) and the
 * epoch now, so that a reader whose epoch ended meanwhile does not fill.
 */
static void track_reply(const struct sockaddr_un *to, socklen_t to_len,
			uint64_t seq, const uint64_t token[2], uint32_t status)
{
	struct nc_rep rep;

	memset(&rep, 0, sizeof(rep));
	rep.magic = NC_REP_MAGIC;
	rep.status = status;
	rep.seq = seq;
	rep.epoch = g_epoch;
	rep.token[0] = token[0];
	rep.token[1] = token[1];
	/* A reader gone or its queue full: it times out on its own. */
	sendto(g_tfd, &rep, sizeof(rep), MSG_DONTWAIT | MSG_NOSIGNAL,
	       (const struct sockaddr *)to, to_len);
}

static int pend_push(int is_ping, uint64_t seq, const struct sockaddr_un *from,
		     socklen_t from_len)
{
	struct pend *p;

	if (g_pend_n >= PEND_MAX)
		return -1;
	p = &g_pend[(g_pend_head + g_pend_n) % PEND_MAX];
	p->is_ping = is_ping;
	p->seq = seq;
	p->token[0] = g_token[0];
	p->token[1] = g_token[1];
	if (from) {
		p->from = *from;
		p->from_len = from_len;
	}
	g_pend_n++;
	return 0;
}

static struct pend *pend_pop(void)
{
	struct pend *p;

	if (!g_pend_n)
		return NULL;
	p = &g_pend[g_pend_head];
	g_pend_head = (g_pend_head + 1) % PEND_MAX;
	g_pend_n--;
	return p;
}

/* Tell the readers still waiting that this epoch is over. */
static void pend_drop(void)
{
	struct pend *p;

	while ((p = pend_pop()))
		if (!p->is_ping)
			track_reply(&p->from, p->from_len, p->seq, p->token,
				    NC_REP_NOT_UP);
}

/* Read and answer (or queue) the track requests waiting; -1 on loss. */
static int track_requests(void)
{
	static char buf[sizeof(struct nc_req) + NC_KEY_MAX + 1];
	const struct nc_req *req = (const struct nc_req *)buf;
	struct sockaddr_un from;
	socklen_t from_len;
	const char *argv[2];
	size_t lens[2];
	ssize_t n;
	int i;

	for (i = 0; i < REQ_BATCH; i++) {
		from_len = sizeof(from);
		n = recvfrom(g_tfd, buf, sizeof(buf), MSG_DONTWAIT,
			     (struct sockaddr *)&from, &from_len);
		if (n < 0)
			return 0; /* EAGAIN: none left */
		if ((size_t)n < sizeof(*req) || req->magic != NC_REQ_MAGIC ||
		    req->key_len > NC_KEY_MAX ||
		    (size_t)n != sizeof(*req) + req->key_len ||
		    from_len <= offsetof(struct sockaddr_un, sun_path))
			continue; /* noise, or nobody to answer */
		/* Only who can read the sidecar knows the token. */
		if (req->token[0] != g_token[0] || req->token[1] != g_token[1])
			continue;
		if (g_state != SHF_NC_UP || req->epoch != g_epoch ||
		    !g_fetch.c) {
			track_reply(&from, from_len, req->seq, g_token,
				    NC_REP_NOT_UP);
			continue;
		}
		/* the last slot is the fetch connection's PING's */
		if (g_pend_n >= PEND_MAX - 1 ||
		    pend_push(0, req->seq, &from, from_len) < 0) {
			track_reply(&from, from_len, req->seq, g_token,
				    NC_REP_BUSY);
			continue;
		}
		argv[0] = "EXISTS";
		lens[0] = 6;
		argv[1] = buf + sizeof(*req);
		lens[1] = req->key_len;
		if (redisAppendCommandArgv(g_fetch.c, 2, argv, lens) !=
		    REDIS_OK)
			return fail("fetch connection: %s", g_fetch.c->errstr);
	}
	return 0;
}

/* ------------------------------------------------------- connections */

static void conn_close(struct conn *k)
{
	nc_disconnect(&k->c);
	memset(k, 0, sizeof(*k));
}

/* Non-blocking from now on: writes queue, reads take what is there. */
static int conn_nonblock(struct conn *k)
{
	int fl = fcntl(k->c->fd, F_GETFL);

	if (fl < 0 || fcntl(k->c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	k->c->flags &= ~REDIS_BLOCK;
	return 0;
}

/* A blocking command during setup; the reply, or NULL after fail(). */
static redisReply *setup_cmd(struct conn *k, const char *what, int argc,
			     const char **argv, const size_t *lens)
{
	redisReply *r = nc_command(k->c, o_timeout_ms, argc, argv, lens);

	if (!r) {
		if (errno == ETIMEDOUT)
			fail("%s: no answer within %u ms", what, o_timeout_ms);
		else if (k->c->errstr[0])
			fail("%s: %s", what, k->c->errstr);
		else
			fail("%s: %s", what, strerror(errno));
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fail("%s: %.*s", what, (int)(r->len > 200 ? 200 : r->len),
		     r->str);
		nc_reply_free(r);
		return NULL;
	}
	return r;
}

static int client_id(struct conn *k, uint64_t *id)
{
	const char *argv[2] = { "CLIENT", "ID" };
	size_t lens[2] = { 6, 2 };
	redisReply *r = setup_cmd(k, "CLIENT ID", 2, argv, lens);

	if (!r)
		return -1;
	if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
		nc_reply_free(r);
		return fail("CLIENT ID: not a client id");
	}
	*id = (uint64_t)r->integer;
	nc_reply_free(r);
	return 0;
}

/* CLIENT TRACKING on REDIRECT id [BCAST PREFIX p...] */
static int tracking(struct conn *k, uint64_t redirect, int bcast)
{
	const char *argv[6 + 2 * NC_PREFIX_MAX];
	size_t lens[6 + 2 * NC_PREFIX_MAX];
	char id[24];
	redisReply *r;
	int argc = 0;
	uint32_t i;

	snprintf(id, sizeof(id), "%" PRIu64, redirect);
	argv[argc++] = "CLIENT";
	argv[argc++] = "TRACKING";
	argv[argc++] = "on";
	argv[argc++] = "REDIRECT";
	argv[argc++] = id;
	if (bcast) {
		argv[argc++] = "BCAST";
		for (i = 0; i < o_nprefix; i++) {
			argv[argc++] = "PREFIX";
			argv[argc++] = o_prefix[i];
		}
	}
	for (i = 0; i < (uint32_t)argc; i++)
		lens[i] = strlen(argv[i]);
	r = setup_cmd(k, "CLIENT TRACKING", argc, argv, lens);
	if (!r)
		return -1;
	if (!nc_reply_ok(r)) {
		nc_reply_free(r);
		return fail("CLIENT TRACKING: unexpected reply");
	}
	nc_reply_free(r);
	return 0;
}

static int str_is(const redisReply *r, const char *s)
{
	size_t n = strlen(s);

	return r->type == REDIS_REPLY_STRING && r->len == n &&
	       !memcmp(r->str, s, n);
}

static int subscribe(struct conn *k)
{
	const char *argv[2] = { "SUBSCRIBE", CHANNEL };
	size_t lens[2] = { 9, sizeof(CHANNEL) - 1 };
	redisReply *r = setup_cmd(k, "SUBSCRIBE", 2, argv, lens);
	int ok;

	if (!r)
		return -1;
	ok = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	     str_is(r->element[0], "subscribe") &&
	     str_is(r->element[1], CHANNEL) &&
	     r->element[2]->type == REDIS_REPLY_INTEGER;
	nc_reply_free(r);
	return ok ? 0 : fail("SUBSCRIBE: unexpected reply");
}

static int conn_open(struct conn *k, const char *what)
{
	char err[200];

	memset(k, 0, sizeof(*k));
	k->c = nc_connect(&g_addr, &g_auth, o_timeout_ms, err, sizeof(err));
	if (!k->c)
		return fail("%s: %s", what, err);
	return 0;
}

/* Queue a PING (with a sequence number, to match its answer). */
static int ping(struct conn *k, int is_sub, uint64_t now)
{
	char seq[24];
	const char *argv[2] = { "PING", seq };
	size_t lens[2] = { 4, 0 };
	int argc = 2;

	k->ping_seq++;
	lens[1] = (size_t)snprintf(seq, sizeof(seq), "%" PRIu64, k->ping_seq);
	if (!is_sub) {
		argc = 1; /* plain PONG, matched by order */
		if (pend_push(1, k->ping_seq, NULL, 0) < 0)
			return fail("fetch connection: too many in flight");
	}
	if (redisAppendCommandArgv(k->c, argc, argv, lens) != REDIS_OK)
		return fail("PING: %s", k->c->errstr);
	k->ping_out = 1;
	k->ping_sent = now;
	k->next_ping = now + o_ping_ms;
	return 0;
}

/*
 * A PONG: everything Redis queued on this connection before it ran the
 * PING has been read and applied.  BCAST invalidations are queued at the
 * end of Redis's loop turn, possibly after a PONG of the same turn, so
 * there the PING before vouches.
 */
static void ponged(struct conn *k, int bcast)
{
	k->ping_out = 0;
	k->synced = bcast ? k->answered : k->ping_sent;
	k->answered = k->ping_sent;
}

/* ----------------------------------------------------------- replies */

static uint64_t g_sid;
static int g_ever_up, g_session_up;

/*
 * Everything the table holds is suspect: a new epoch, in which no record
 * made before is served, then the table emptied.  The requests in flight
 * are answered with the new epoch: their fills will not be.
 */
static void resync(void)
{
	set_state(SHF_NC_RESYNCING);
	new_token();
	flush_table();
	set_state(SHF_NC_UP);
}

static int invalidate(const redisReply *keys)
{
	size_t i, failed = 0;
	int e = 0;

	if (keys->type == REDIS_REPLY_NIL) { /* FLUSHALL or FLUSHDB */
		resync();
		return 0;
	}
	if (keys->type != REDIS_REPLY_ARRAY)
		return fail("invalidation: neither keys nor null");
	for (i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];

		if (k->type != REDIS_REPLY_STRING || k->len > UINT32_MAX)
			return fail("invalidation: a key that is no string");
		shf_make_hash(k->str, (uint32_t)k->len);
		if (shf_del_key_val(g_shf) & SHF_RET_ERROR) {
			e = errno;
			failed++;
		}
	}
	nc_ctr_add(S, NC_INVALIDATIONS, keys->elements);
	/*
	 * A delete that failed (another process held the key's shard lock
	 * past the lock's wait, ETIMEDOUT; a damaged shard) leaves a value
	 * that Redis changed: no record of the epoch before is served.
	 */
	if (failed) {
		say("%zu invalidated key(s) not deleted (%s): resynced", failed,
		    strerror(e));
		resync();
	}
	return 0;
}

static int on_sub_reply(const redisReply *r)
{
	char seq[24];

	if (r->type == REDIS_REPLY_ERROR)
		return fail("subscriber: %.*s",
			    (int)(r->len > 200 ? 200 : r->len), r->str);
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return fail("subscriber: unexpected reply");
	if (str_is(r->element[0], "message")) {
		if (r->elements != 3 || !str_is(r->element[1], CHANNEL))
			return fail("subscriber: message of another channel");
		return invalidate(r->element[2]);
	}
	if (str_is(r->element[0], "pong")) {
		snprintf(seq, sizeof(seq), "%" PRIu64, g_sub.ping_seq);
		if (r->elements != 2 || !g_sub.ping_out ||
		    !str_is(r->element[1], seq))
			return fail("subscriber: a PONG out of order");
		ponged(&g_sub, o_bcast);
		return 0;
	}
	return fail("subscriber: unexpected %.*s",
		    (int)(r->element[0]->len > 40 ? 40 : r->element[0]->len),
		    r->element[0]->str);
}

static int on_fetch_reply(const redisReply *r)
{
	struct pend *p = pend_pop();

	if (!p)
		return fail("fetch connection: a reply nobody asked for");
	if (p->is_ping) {
		if (r->type != REDIS_REPLY_STATUS || r->len != 4 ||
		    memcmp(r->str, "PONG", 4) || p->seq != g_fetch.ping_seq)
			return fail("fetch connection: a bad PONG");
		ponged(&g_fetch, 0);
		return 0;
	}
	if (r->type == REDIS_REPLY_INTEGER) {
		track_reply(&p->from, p->from_len, p->seq, p->token,
			    NC_REP_TRACKED);
		return 0;
	}
	track_reply(&p->from, p->from_len, p->seq, p->token, NC_REP_FAILED);
	if (r->type == REDIS_REPLY_ERROR)
		return 0; /* e.g. OOM: this key only */
	return fail("fetch connection: EXISTS gave no integer");
}

/* Read what came on k and handle each reply; -1 on loss. */
static int conn_read(struct conn *k, int (*on)(const redisReply *))
{
	void *r;
	int rc;

	if (redisBufferRead(k->c) != REDIS_OK)
		return fail("%s", k->c->err == REDIS_ERR_EOF ?
					  "connection closed by the server" :
					  k->c->errstr);
	for (;;) {
		if (redisGetReplyFromReader(k->c, &r) != REDIS_OK) {
			nc_reply_refused(k->c);
			return fail("%s", k->c->errstr);
		}
		if (!r)
			return 0;
		rc = on(r);
		freeReplyObject(r);
		if (rc < 0)
			return -1;
	}
}

/* Write what is queued on k: 1 if all of it went, 0 if not, -1 on loss. */
static int conn_write(struct conn *k)
{
	int done = 1;

	if (k->c && redisBufferWrite(k->c, &done) != REDIS_OK)
		return fail("%s", k->c->errstr);
	return done;
}

/* ------------------------------------------------------------ session */

/*
 * A connection's turn before poll(): no PONG in time is a loss, a PING
 * due is queued, what is queued is written; *wake is lowered to its next
 * deadline.  1 if output still waits, 0 if not, -1 on loss.
 */
static int conn_tick(struct conn *k, int is_sub, uint64_t now, uint64_t *wake)
{
	int rc;

	if (k->ping_out && now - k->ping_sent >= o_timeout_ms)
		return fail("no PONG within %u ms (%s)", o_timeout_ms,
			    is_sub ? "subscriber" : "fetch connection");
	if (!k->ping_out && now >= k->next_ping && ping(k, is_sub, now) < 0)
		return -1;
	if (k->ping_out && k->ping_sent + o_timeout_ms < *wake)
		*wake = k->ping_sent + o_timeout_ms;
	if (!k->ping_out && k->next_ping < *wake)
		*wake = k->next_ping;
	rc = conn_write(k);
	if (rc < 0)
		return -1;
	return !rc;
}

/*
 * Wait (until wake at the latest) for the connections k (and their
 * output where want_out) and the track socket, and handle what came;
 * -1 on loss.
 */
static int conn_poll(struct conn *const k[2], const int want_out[2],
		     uint64_t wake)
{
	struct pollfd pfd[3];
	uint64_t now;
	int i, n = 0;

	for (i = 0; i < 2; i++) {
		if (!k[i])
			continue;
		pfd[n].fd = k[i]->c->fd;
		pfd[n].events = POLLIN | (want_out[i] ? POLLOUT : 0);
		pfd[n++].revents = 0;
	}
	pfd[n].fd = g_tfd;
	pfd[n].events = POLLIN;
	pfd[n++].revents = 0;
	now = nc_mono_ms();
	if (poll(pfd, (nfds_t)n, wake > now ? (int)(wake - now) : 0) < 0 &&
	    errno != EINTR)
		return fail("poll: %s", strerror(errno));
	for (i = 0, n = 0; i < 2; i++) {
		if (!k[i])
			continue;
		if ((pfd[n].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    conn_read(k[i], i ? on_fetch_reply : on_sub_reply) < 0)
			return -1;
		n++;
	}
	if ((pfd[n].revents & POLLIN) && track_requests() < 0)
		return -1;
	return 0;
}

/*
 * The loop of a connected session: PINGs, replies, track requests.
 * Returns 1 once the subscription is confirmed (with until_synced set),
 * 0 when told to stop, -1 on loss (g_err says why).
 */
static int run_loop(int until_synced)
{
	struct conn *k[2] = { &g_sub, o_bcast ? NULL : &g_fetch };
	uint64_t now, wake, synced;
	int i, rc, want_out[2] = { 0, 0 };

	for (;;) {
		if (g_stop)
			return 0;
		now = nc_mono_ms();
		beat();
		wake = now + 100;
		for (i = 0; i < 2; i++) {
			if (!k[i])
				continue;
			rc = conn_tick(k[i], i == 0, now, &wake);
			if (rc < 0)
				return -1;
			want_out[i] = rc;
		}
		if (conn_poll(k, want_out, wake) < 0)
			return -1;
		synced = g_sub.synced;
		if (k[1] && g_fetch.synced < synced)
			synced = g_fetch.synced;
		if (synced) {
			nc_store(&S->synced_ms, synced);
			if (until_synced)
				return 1;
		}
	}
}

/* Connect and subscribe, publish, resync, go UP, serve; -1 on loss. */
static int session(void)
{
	char run_id[NC_RUN_ID_LEN + 1], fetch_run_id[NC_RUN_ID_LEN + 1];
	uint64_t fetch_id;
	uint32_t i;
	int rc;

	if (conn_open(&g_sub, "subscriber") < 0 ||
	    client_id(&g_sub, &g_sid) < 0)
		return -1;
	if (nc_run_id(g_sub.c, o_timeout_ms, run_id) < 0)
		return fail("INFO server: no run_id");
	if (o_bcast && tracking(&g_sub, g_sid, 1) < 0)
		return -1;
	if (subscribe(&g_sub) < 0)
		return -1;
	if (!o_bcast) {
		if (conn_open(&g_fetch, "fetch connection") < 0 ||
		    client_id(&g_fetch, &fetch_id) < 0)
			return -1;
		if (nc_run_id(g_fetch.c, o_timeout_ms, fetch_run_id) < 0)
			return fail("INFO server: no run_id");
		if (strcmp(run_id, fetch_run_id))
			return fail("two connections reached two servers");
		if (tracking(&g_fetch, g_sid, 0) < 0)
			return -1;
	}
	if (conn_nonblock(&g_sub) < 0 ||
	    (!o_bcast && conn_nonblock(&g_fetch) < 0))
		return fail("fcntl: %s", strerror(errno));
	/* Still DOWN: readers read nothing of this yet. */
	nc_store(&S->sid, g_sid);
	nc_str_set(S->run_id, sizeof(S->run_id), run_id);
	set_state(SHF_NC_RESYNCING);
	new_token();
	flush_table();
	rc = run_loop(1);
	if (rc <= 0)
		return rc;
	set_state(SHF_NC_UP);
	if (g_ever_up)
		nc_ctr_add(S, NC_RECONNECTS, 1);
	g_ever_up = g_session_up = 1;
	if (!o_quiet) {
		say("up: %s, client id %" PRIu64 ", epoch %" PRIu64 "%s",
		    o_redis, g_sid, g_epoch,
		    o_bcast ? ", broadcasting mode" : "");
		for (i = 0; i < o_nprefix; i++)
			say("  prefix \"%s\"", o_prefix[i]);
	}
	g_err_logged = 0;
	return run_loop(0);
}

static void session_end(void)
{
	conn_close(&g_sub);
	conn_close(&g_fetch);
	pend_drop();
}

/* Answer track requests while DOWN (they fail at once), until ms pass. */
static void idle(uint32_t ms)
{
	uint64_t end = nc_mono_ms() + ms, now;
	struct pollfd pfd;

	while (!g_stop && (now = nc_mono_ms()) < end) {
		beat();
		pfd.fd = g_tfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, end - now > 100 ? 100 : (int)(end - now)) >
			    0 &&
		    (pfd.revents & POLLIN))
			track_requests();
	}
}

/* -------------------------------------------------------------- setup */

static int track_socket(void)
{
	struct sockaddr_un sa;
	unsigned len;

	if (nc_track_addr(g_map.fd, &sa, &len) < 0)
		return -1;
	g_tfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (g_tfd < 0)
		return -1;
	/* The flock proves no other daemon serves this sidecar, so the
	 * name is ours; another process holding it is a squatter. */
	if (bind(g_tfd, (struct sockaddr *)&sa, len) < 0)
		return -1;
	return 0;
}

static void publish_config(void)
{
	uint32_t i;

	__atomic_store_n(&S->ping_ms, o_ping_ms, __ATOMIC_RELEASE);
	__atomic_store_n(&S->stale_ms, o_stale_ms, __ATOMIC_RELEASE);
	__atomic_store_n(&S->mode,
			 o_bcast ? SHF_NC_MODE_BCAST : SHF_NC_MODE_REDIRECT,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&S->nprefix, o_nprefix, __ATOMIC_RELEASE);
	for (i = 0; i < NC_PREFIX_MAX; i++) {
		uint32_t len = 0;

		if (i < o_nprefix)
			len = (uint32_t)strlen(o_prefix[i]);

		__atomic_store_n(&S->prefix_len[i], len, __ATOMIC_RELEASE);
		nc_str_set(S->prefix[i], sizeof(S->prefix[i]),
			   i < o_nprefix ? o_prefix[i] : "");
	}
	nc_str_set(S->redis, sizeof(S->redis), o_redis);
}

static int stat_print(int format)
{
	struct shf_nc_stats st;

	if (shf_nc_stats(o_dir, o_name, &st, sizeof(st)) != SHF_RET_OK) {
		say("%s", errno == ENOENT ? "no near-cache for this table" :
					    strerror(errno));
		return 1;
	}
	shf_nc_stats_print(stdout, o_name, &st, format);
	if (format == NC_PRINT_JSON)
		putchar('\n');
	if (fflush(stdout) == EOF || ferror(stdout))
		return 1;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shf-nearcache [OPTION]... --redis ADDRESS NAME\n"
		"       shf-nearcache [-d DIR] --stat [--json|--prometheus] NAME\n"
		"Keep the libshf table DIR/NAME.shf coherent with Redis, as a\n"
		"near-cache of this host (see shf-nearcache(1)).\n\n"
		"  -d, --dir DIR          directory of the table (default /dev/shm)\n"
		"  -r, --redis ADDRESS    unix:/PATH or HOST:PORT of Redis\n"
		"  -a, --auth-file FILE   password, or ACL user and password\n"
		"                         (two lines), readable by the owner only\n"
		"      --bcast            broadcasting mode (every key, or those\n"
		"                         under the --prefix given)\n"
		"  -p, --prefix PREFIX    broadcasting mode for keys under PREFIX\n"
		"                         (up to 16)\n"
		"      --budget BYTES     byte budget of the table\n"
		"      --ttl MS           default time to live of its values\n"
		"      --ping-ms MS       PING period (default 100)\n"
		"      --stale-ms MS      reads bypass the table when the last\n"
		"                         confirmed sync is older (default 3 *\n"
		"                         ping)\n"
		"      --timeout-ms MS    connect, command and PONG timeout\n"
		"                         (default 1000)\n"
		"      --stat             print the state and counters, exit\n"
		"      --json, --prometheus  with --stat\n"
		"  -q, --quiet            log errors only\n"
		"  -V, --version          print the version\n"
		"  -h, --help             this help\n\n"
		"Exit status: 0 stopped by SIGTERM or SIGINT (or --stat done),\n"
		"1 cannot start, 2 usage, 3 another shf-nearcache serves NAME.\n");
}

static int usage_err(const char *msg)
{
	fprintf(stderr, "shf-nearcache: %s\n", msg);
	usage(stderr);
	return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end || x < min || x > max)
		return -1;
	*v = x;
	return 0;
}

/* parse_*(): no exit status yet, go on. */
#define GO_ON -1

enum { O_BCAST = 256, O_BUDGET, O_TTL, O_PING, O_STALE, O_TIMEOUT, O_STAT,
       O_JSON, O_PROM };

static const struct option opts[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "redis", required_argument, NULL, 'r' },
	{ "auth-file", required_argument, NULL, 'a' },
	{ "bcast", no_argument, NULL, O_BCAST },
	{ "prefix", required_argument, NULL, 'p' },
	{ "budget", required_argument, NULL, O_BUDGET },
	{ "ttl", required_argument, NULL, O_TTL },
	{ "ping-ms", required_argument, NULL, O_PING },
	{ "stale-ms", required_argument, NULL, O_STALE },
	{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
	{ "stat", no_argument, NULL, O_STAT },
	{ "json", no_argument, NULL, O_JSON },
	{ "prometheus", no_argument, NULL, O_PROM },
	{ "quiet", no_argument, NULL, 'q' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* What the command line asks of this run, beside the o_* options. */
struct cmdline {
	int stat;   /* --stat: print the state and counters, exit */
	int format; /* of --stat: NC_PRINT_TEXT, _JSON or _PROMETHEUS */
};

/* A numeric option into its o_*: GO_ON, or EXIT_USAGE (said why). */
static int parse_num_opt(int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case O_BUDGET:
		if (parse_u64(arg, 0, UINT64_MAX, &o_budget) < 0)
			return usage_err("--budget: bytes");
		o_budget_set = 1;
		break;
	case O_TTL:
		if (parse_u64(arg, 0, UINT32_MAX, &v) < 0)
			return usage_err("--ttl: 0 to 4294967295 ms");
		o_ttl = (uint32_t)v;
		o_ttl_set = 1;
		break;
	case O_PING:
		if (parse_u64(arg, 1, 60000, &v) < 0)
			return usage_err("--ping-ms: 1 to 60000");
		o_ping_ms = (uint32_t)v;
		break;
	case O_STALE:
		if (parse_u64(arg, NC_STALE_MS_MIN, NC_STALE_MS_MAX, &v) < 0)
			return usage_err("--stale-ms: 10 to 600000");
		o_stale_ms = (uint32_t)v;
		break;
	case O_TIMEOUT:
		if (parse_u64(arg, 10, 600000, &v) < 0)
			return usage_err("--timeout-ms: 10 to 600000");
		o_timeout_ms = (uint32_t)v;
		break;
	}
	return GO_ON;
}

/* Option c (getopt_long()'s) into o_* or cmd: GO_ON, or an exit status
 * (--version and --help done, or a usage error said). */
static int parse_opt(int c, struct cmdline *cmd)
{
	switch (c) {
	case 'd':
		o_dir = optarg;
		break;
	case 'r':
		o_redis = optarg;
		break;
	case 'a':
		o_auth_file = optarg;
		break;
	case O_BCAST:
		o_bcast = 1;
		break;
	case 'p':
		if (o_nprefix == NC_PREFIX_MAX)
			return usage_err("--prefix: at most 16");
		if (strlen(optarg) > NC_PREFIX_LEN - 1)
			return usage_err("--prefix: at most 63 bytes");
		o_prefix[o_nprefix++] = optarg;
		o_bcast = 1;
		break;
	case O_BUDGET:
	case O_TTL:
	case O_PING:
	case O_STALE:
	case O_TIMEOUT:
		return parse_num_opt(c, optarg);
	case O_STAT:
		cmd->stat = 1;
		break;
	case O_JSON:
		cmd->format = NC_PRINT_JSON;
		break;
	case O_PROM:
		cmd->format = NC_PRINT_PROMETHEUS;
		break;
	case 'q':
		o_quiet = 1;
		break;
	case 'V':
		printf("shf-nearcache (libshf) %s\n", PACKAGE_VERSION);
		return 0;
	case 'h':
		usage(stdout);
		return 0;
	default:
		usage(stderr);
		return EXIT_USAGE;
	}
	return GO_ON;
}

/* The options and the table NAME: GO_ON, or an exit status. */
static int parse_args(int argc, char **argv, struct cmdline *cmd)
{
	int c, rc;

	cmd->stat = 0;
	cmd->format = NC_PRINT_TEXT;
	while ((c = getopt_long(argc, argv, "d:r:a:p:qVh", opts, NULL)) != -1) {
		rc = parse_opt(c, cmd);
		if (rc != GO_ON)
			return rc;
	}
	if (optind + 1 != argc)
		return usage_err("one table NAME expected");
	o_name = argv[optind];
	if (!nc_name_ok(o_name))
		return usage_err("bad table name");
	return GO_ON;
}

/* After the options: --redis, and --stale-ms (its default, or checked
 * against --ping-ms); GO_ON, or EXIT_USAGE. */
static int config_check(void)
{
	uint64_t v;

	if (!o_redis || nc_addr_parse(o_redis, &g_addr) < 0)
		return usage_err("--redis unix:/PATH or HOST:PORT needed");
	if (!o_stale_ms) {
		v = 3ULL * o_ping_ms;
		o_stale_ms = v < NC_STALE_MS_MIN ? NC_STALE_MS_MIN :
			     v > NC_STALE_MS_MAX ? NC_STALE_MS_MAX :
						   (uint32_t)v;
	}
	if (o_stale_ms <= o_ping_ms)
		return usage_err("--stale-ms must be more than --ping-ms");
	return GO_ON;
}

/* The auth file and the queue of track requests; GO_ON, or EXIT_FAIL. */
static int resources_get(void)
{
	if (o_auth_file && nc_auth_read(o_auth_file, &g_auth) < 0) {
		say("%s: %s", o_auth_file,
		    errno == EACCES ? "others may read it (chmod o-rwx)" :
		    errno == EINVAL ? "not one or two lines" :
				      strerror(errno));
		return EXIT_FAIL;
	}
	g_pend = calloc(PEND_MAX, sizeof(*g_pend));
	if (!g_pend) {
		say("out of memory");
		return EXIT_FAIL;
	}
	return GO_ON;
}

/* Attach the table, with --budget and --ttl; GO_ON, or EXIT_FAIL. */
static int table_attach(void)
{
	shf_init();
	g_shf = shf_attach(o_dir, o_name, 0);
	if (!g_shf) {
		say("%s/%s.shf: %s", o_dir, o_name, strerror(errno));
		return EXIT_FAIL;
	}
	if ((o_budget_set &&
	     shf_set_byte_budget(g_shf, o_budget) != SHF_RET_OK) ||
	    (o_ttl_set && shf_set_ttl_default(g_shf, o_ttl) != SHF_RET_OK)) {
		say("setting the budget or TTL: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return GO_ON;
}

/*
 * Open the sidecar and lock it (one daemon per table), and take its epoch
 * over; GO_ON, EXIT_FAIL, or EXIT_RUNNING if another daemon holds it.
 */
static int sidecar_claim(void)
{
	uint64_t gen;
	pid_t other;

	if (nc_side_open(&g_map, o_dir, o_name, 1, 1) < 0) {
		say("%s/%s%s: %s%s", o_dir, o_name, NC_SUFFIX, strerror(errno),
		    errno == EBADMSG || errno == EPROTO ?
			    " (remove it while no program uses the table)" :
			    "");
		return EXIT_FAIL;
	}
	S = g_map.side;
	/* One daemon per table: the kernel drops the lock of a dead one. */
	if (flock(g_map.fd, LOCK_EX | LOCK_NB) < 0) {
		other = (pid_t)nc_load32((const uint32_t *)&S->pid);
		say("another shf-nearcache (pid %ld) serves this table",
		    (long)other);
		return EXIT_RUNNING;
	}
	gen = nc_load(&S->gen);
	g_epoch = NC_GEN_EPOCH(gen);
	if (g_epoch >= NC_EPOCH_MAX - (1ULL << 40)) {
		say("%s/%s%s: damaged epoch; remove the file", o_dir, o_name,
		    NC_SUFFIX);
		return EXIT_FAIL;
	}
	other = (pid_t)nc_load32((const uint32_t *)&S->pid);
	if (NC_GEN_STATE(gen) != SHF_NC_DOWN && other > 0 && !o_quiet)
		say("taking over from pid %ld, which did not stop cleanly",
		    (long)other);
	return GO_ON;
}

/* SIGTERM and SIGINT stop the daemon; SIGPIPE and SIGHUP are ignored. */
static void signals_set(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

/*
 * Everything before the first session: the table, the sidecar (DOWN in a
 * new epoch, the table emptied, this daemon and its options published),
 * the track socket, the signals; GO_ON, or an exit status.
 */
static int start_up(void)
{
	int rc;

	rc = resources_get();
	if (rc == GO_ON)
		rc = table_attach();
	if (rc == GO_ON)
		rc = sidecar_claim();
	if (rc != GO_ON)
		return rc;
	/* DOWN in a new epoch before anything else, then empty. */
	go_down();
	nc_store(&S->start_time, shf_proc_start_time(getpid()));
	__atomic_store_n(&S->pid, (int32_t)getpid(), __ATOMIC_RELEASE);
	publish_config();
	if (track_socket() < 0) {
		say("track socket: %s", strerror(errno));
		return EXIT_FAIL;
	}
	signals_set();
	if (!o_quiet)
		say("started, pid %ld, epoch %" PRIu64, (long)getpid(),
		    g_epoch);
	return GO_ON;
}

/*
 * Sessions until SIGTERM or SIGINT.  After each loss: DOWN, the error
 * recorded (and logged once), then a backoff with jitter.
 */
static void serve(void)
{
	uint32_t backoff = BACKOFF_MIN_MS;
	int reconnect = 0;

	while (!g_stop) {
		if (session() == 0 && g_stop)
			break;
		/* Lost, or never connected: DOWN first, then empty. */
		if (g_state != SHF_NC_DOWN)
			go_down();
		session_end();
		nc_ctr_add(S, NC_ERRORS, 1);
		nc_str_set(S->last_error, sizeof(S->last_error), g_err);
		if (!g_err_logged) {
			say("%s; reconnecting", g_err);
			g_err_logged = 1;
		}
		if (g_session_up)
			backoff = BACKOFF_MIN_MS; /* it worked for a while */
		else if (reconnect && backoff * 2 <= BACKOFF_MAX_MS)
			backoff *= 2;
		else if (reconnect)
			backoff = BACKOFF_MAX_MS;
		g_session_up = 0;
		reconnect = 1;
		/* Jitter: hosts that lost Redis together come back apart. */
		idle(backoff - backoff / 5 +
		     (uint32_t)(nc_mono_ms() % (backoff / 5 * 2 + 1)));
	}
}

/* Stopped: DOWN, connections closed, the table and sidecar let go. */
static void clean_up(void)
{
	set_state(SHF_NC_DOWN);
	session_end();
	if (!o_quiet)
		say("stopped (signal %d)", (int)g_stop);
	shf_detach(g_shf);
	nc_side_close(&g_map);
	nc_auth_clear(&g_auth);
	free(g_pend);
}

int main(int argc, char **argv)
{
	struct cmdline cmd;
	int rc;

	rc = parse_args(argc, argv, &cmd);
	if (rc != GO_ON)
		return rc;
	if (cmd.stat)
		return stat_print(cmd.format);
	rc = config_check();
	if (rc == GO_ON)
		rc = start_up();
	if (rc != GO_ON)
		return rc;
	serve();
	clean_up();
	return 0;
}
