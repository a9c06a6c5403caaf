// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache-redis.c - connections to Redis through hiredis, for the read
 * API and the daemon: addresses, auth files, connect + AUTH with every
 * call bounded, one command, INFO's run_id, errno for hiredis's errors,
 * and SIGPIPE kept away from the caller.  Nothing here prints or exits.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "nearcache-internal.h"

int nc_addr_parse(const char *s, struct nc_addr *a)
{
	const char *colon, *host, *end;
	size_t hlen;
	char *pend;
	long port;

	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		goto bad;
	if (!strncmp(s, "unix:", 5)) {
		s += 5;
		if (s[0] != '/' || strlen(s) >= sizeof(a->path))
			goto bad;
		a->is_unix = 1;
		strcpy(a->path, s);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s)
		goto bad;
	host = s;
	end = colon;
	if (host[0] == '[') {
		/* [IPv6]:port */
		if (end[-1] != ']' || end - host < 3)
			goto bad;
		host++;
		end--;
	} else if (memchr(host, ':', (size_t)(colon - host))) {
		goto bad; /* a bare IPv6 address needs its brackets */
	}
	hlen = (size_t)(end - host);
	if (hlen >= sizeof(a->host))
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &pend, 10);
	if (errno || pend == colon + 1 || *pend || port < 1 || port > 65535)
		goto bad;
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = (int)port;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

void nc_auth_clear(struct nc_auth *a)
{
	volatile char *p = (volatile char *)a;
	size_t i;

	/* Not optimized away: the password must not linger in freed memory. */
	for (i = 0; i < sizeof(*a); i++)
		p[i] = 0;
}

/* Line n (0 or 1) of buf, without its end: into out (size). */
static int auth_line(const char *buf, int n, char *out, size_t size)
{
	const char *p = buf, *e;
	size_t len;

	while (n-- > 0) {
		p = strchr(p, '\n');
		if (!p)
			return -1;
		p++;
	}
	e = strchr(p, '\n');
	len = e ? (size_t)(e - p) : strlen(p);
	if (len && p[len - 1] == '\r')
		len--;
	if (len == 0 || len >= size)
		return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int nc_auth_read(const char *file, struct nc_auth *a)
{
	char buf[2048];
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, e, lines = 0;
	size_t i;

	memset(a, 0, sizeof(*a));
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		e = errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		goto fail;
	}
	/* A secret others may read (or replace) is no secret. */
	if (st.st_mode & 0007) {
		e = EACCES;
		goto fail;
	}
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	fd = -1;
	buf[len] = '\0';
	if (len == sizeof(buf) - 1 || memchr(buf, '\0', len)) {
		e = EINVAL;
		goto fail;
	}
	/* Lines that hold something, a final newline or not. */
	for (i = 0; i < len; i++)
		if (buf[i] == '\n' && i + 1 < len)
			lines++;
	lines++;
	if (lines == 1) {
		if (auth_line(buf, 0, a->pass, sizeof(a->pass)) < 0) {
			e = EINVAL;
			goto fail;
		}
	} else if (lines == 2) {
		if (auth_line(buf, 0, a->user, sizeof(a->user)) < 0 ||
		    auth_line(buf, 1, a->pass, sizeof(a->pass)) < 0) {
			e = EINVAL;
			goto fail;
		}
		a->have_user = 1;
	} else {
		e = EINVAL;
		goto fail;
	}
	a->have = 1;
	memset(buf, 0, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
	return 0;
fail:
	memset(buf, 0, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
	if (fd >= 0)
		close(fd);
	nc_auth_clear(a);
	errno = e;
	return -1;
}

static struct timeval tv_of(uint32_t ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

int nc_ctx_errno(const struct redisContext *c)
{
	if (!c)
		return ENOMEM;
	switch (c->err) {
	case REDIS_ERR_EOF:
		return ECONNRESET;
	case REDIS_ERR_PROTOCOL:
		return EPROTO;
	case REDIS_ERR_OOM:
		return ENOMEM;
#ifdef REDIS_ERR_TIMEOUT
	case REDIS_ERR_TIMEOUT: /* hiredis >= 1.0 */
		return ETIMEDOUT;
#endif
	case REDIS_ERR_IO:
		/* SO_RCVTIMEO / SO_SNDTIMEO ran out. */
		if (strstr(c->errstr, "temporarily unavailable") ||
		    strstr(c->errstr, "timed out") ||
		    strstr(c->errstr, "Timeout"))
			return ETIMEDOUT;
		return ECONNRESET;
	default:
		return EIO;
	}
}

static int connect_errno(const struct redisContext *c, int e)
{
	if (!c)
		return ENOMEM;
	if (c->err == REDIS_ERR_IO &&
	    (e == EAGAIN || e == EINPROGRESS || e == ETIMEDOUT ||
	     strstr(c->errstr, "timed out")))
		return ETIMEDOUT;
	return ECONNREFUSED;
}

void nc_disconnect(struct redisContext **c)
{
	if (*c) {
		if ((*c)->reader) { /* nc_reader_bound()'s count */
			free((*c)->reader->privdata);
			(*c)->reader->privdata = NULL;
		}
		redisFree(*c);
	}
	*c = NULL;
}

/* Bytes of a reply kept at most: Redis's own proto-max-bulk-len. */
#define NC_REPLY_MAX (512u << 20)

/*
 * Array elements of one reply at most, its nested arrays' counted with
 * its own.  hiredis makes an array's table of elements at its header and
 * an object for each element as it comes, consuming the bytes: a header
 * alone ("*100000000") made it allocate 800 MB, and a server streaming
 * empty elements grew the heap until the reply's time ran out (1.5 GB in
 * 3 s), which NC_REPLY_MAX, a bound of the bytes not yet parsed, never
 * saw.  No reply of the read API holds an array; the daemon's largest are
 * invalidations, a key an element.
 */
#define NC_REPLY_ELEMS_MAX (1u << 20)

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
typedef size_t nc_elems_t;
#else
typedef int nc_elems_t; /* hiredis 0.14 */
#endif

static redisReplyObjectFunctions nc_fns;
static void *(*nc_array_made)(const redisReadTask *, nc_elems_t);
static pthread_once_t nc_fns_once = PTHREAD_ONCE_INIT;
static const redisReplyObjectFunctions *nc_fns_default;
static __thread int nc_elems_refused;

/*
 * The reader's privdata (every task's) is the count of elements the reply
 * it is parsing may still make: the reader's own, since one thread (the
 * daemon's) parses two connections' replies by turns.
 */
static void *nc_array_bounded(const redisReadTask *task, nc_elems_t n)
{
	uint64_t *left = task->privdata;

	if (!left)
		return nc_array_made(task, n);
	if (!task->parent) /* a reply's outermost array */
		*left = NC_REPLY_ELEMS_MAX;
	if ((int64_t)n < 0 || (uint64_t)n > *left) {
		nc_elems_refused = 1;
		return NULL; /* the reader fails: "Out of memory" */
	}
	*left -= (uint64_t)n;
	return nc_array_made(task, n);
}

static void nc_fns_make(void)
{
	nc_fns = *nc_fns_default;
	nc_array_made = nc_fns.createArray;
	nc_fns.createArray = nc_array_bounded;
}

/* Bound the arrays c's replies may hold (NC_REPLY_ELEMS_MAX): 0, or -1. */
static int nc_reader_bound(redisContext *c)
{
	uint64_t *left;

	if (!c->reader || !c->reader->fn || !c->reader->fn->createArray ||
	    c->reader->privdata) {
		errno = EPROTO; /* not the hiredis this was built for */
		return -1;
	}
	left = malloc(sizeof(*left));
	if (!left) {
		errno = ENOMEM;
		return -1;
	}
	*left = NC_REPLY_ELEMS_MAX;
	nc_fns_default = c->reader->fn; /* hiredis's: the same for all */
	pthread_once(&nc_fns_once, nc_fns_make);
	c->reader->privdata = left; /* freed by nc_disconnect() */
	c->reader->fn = &nc_fns;
	return 0;
}

int nc_reply_refused(struct redisContext *c)
{
	if (!nc_elems_refused)
		return 0;
	nc_elems_refused = 0;
	snprintf(c->errstr, sizeof(c->errstr), "Reply of more than %u elements",
		 NC_REPLY_ELEMS_MAX);
	c->err = REDIS_ERR_PROTOCOL;
	return 1;
}

/* c's error: what nc_ctx_errno() reads, as hiredis would set it. */
static int ctx_fail(struct redisContext *c, int type, const char *why)
{
	c->err = type;
	snprintf(c->errstr, sizeof(c->errstr), "%s", why);
	return REDIS_ERR;
}

/* Each read or write of c: at most what is left until end. */
static int ctx_time_left(struct redisContext *c, uint64_t end)
{
	uint64_t now = nc_mono_ms();

	if (now >= end)
		return ctx_fail(c, REDIS_ERR_IO, "Reply timed out");
	return redisSetTimeout(c, tv_of((uint32_t)(end - now)));
}

int nc_get_reply(struct redisContext *c, uint32_t timeout_ms, void **reply)
{
	uint64_t end = nc_mono_ms() + timeout_ms;
	void *aux = NULL;
	int done = 0;

	*reply = NULL;
	if (!c || c->err)
		return REDIS_ERR;
	nc_elems_refused = 0;
	if (redisGetReplyFromReader(c, &aux) == REDIS_ERR) {
		nc_reply_refused(c);
		return REDIS_ERR;
	}
	while (!aux && !done) { /* the commands appended, if any */
		if (ctx_time_left(c, end) != REDIS_OK ||
		    redisBufferWrite(c, &done) == REDIS_ERR)
			return REDIS_ERR;
	}
	while (!aux) {
		if (c->reader && c->reader->len > NC_REPLY_MAX)
			return ctx_fail(c, REDIS_ERR_PROTOCOL,
					"Reply longer than 512 MiB");
		if (ctx_time_left(c, end) != REDIS_OK ||
		    redisBufferRead(c) == REDIS_ERR)
			return REDIS_ERR;
		if (redisGetReplyFromReader(c, &aux) == REDIS_ERR) {
			nc_reply_refused(c);
			return REDIS_ERR;
		}
	}
	/* the context's own bound again, for its other users */
	redisSetTimeout(c, tv_of(timeout_ms));
	*reply = aux;
	return REDIS_OK;
}

struct redisReply *nc_command(struct redisContext *c, uint32_t timeout_ms,
			      int argc, const char **argv, const size_t *lens)
{
	void *r;

	if (!c || c->err) {
		errno = c ? nc_ctx_errno(c) : ENOTCONN;
		return NULL;
	}
	if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK ||
	    nc_get_reply(c, timeout_ms, &r) != REDIS_OK) {
		errno = nc_ctx_errno(c);
		return NULL;
	}
	return r;
}

void nc_reply_free(struct redisReply *r)
{
	if (r)
		freeReplyObject(r);
}

int nc_reply_ok(const struct redisReply *r)
{
	return r && r->type == REDIS_REPLY_STATUS && r->len == 2 &&
	       !memcmp(r->str, "OK", 2);
}

struct redisContext *nc_connect(const struct nc_addr *a,
				const struct nc_auth *auth,
				uint32_t timeout_ms, char *err, size_t esize)
{
	struct timeval tv = tv_of(timeout_ms);
	redisContext *c;
	redisReply *r;
	const char *argv[3];
	size_t lens[3];
	int argc = 0, e;

	errno = 0;
	if (a->is_unix)
		c = redisConnectUnixWithTimeout(a->path, tv);
	else
		c = redisConnectWithTimeout(a->host, a->port, tv);
	if (!c || c->err) {
		e = connect_errno(c, errno);
		snprintf(err, esize, "connect: %s",
			 c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		errno = e;
		return NULL;
	}
	if (nc_reader_bound(c) < 0) {
		e = errno;
		snprintf(err, esize, "bounding replies: %s", strerror(e));
		redisFree(c);
		errno = e;
		return NULL;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(err, esize, "setting the timeout: %s", c->errstr);
		nc_disconnect(&c);
		errno = EIO;
		return NULL;
	}
	if (!auth || !auth->have)
		return c;
	argv[argc] = "AUTH";
	lens[argc++] = 4;
	if (auth->have_user) {
		argv[argc] = auth->user;
		lens[argc++] = strlen(auth->user);
	}
	argv[argc] = auth->pass;
	lens[argc++] = strlen(auth->pass);
	r = nc_command(c, timeout_ms, argc, argv, lens);
	if (!r || !nc_reply_ok(r)) {
		e = r ? (r->type == REDIS_REPLY_ERROR ? EIO : EPROTO) : errno;
		snprintf(err, esize, "AUTH: %.*s",
			 r && r->type == REDIS_REPLY_ERROR ? (int)r->len : 40,
			 r && r->type == REDIS_REPLY_ERROR ?
				 r->str :
				 (r ? "unexpected reply" : c->errstr));
		nc_reply_free(r);
		nc_disconnect(&c);
		errno = e;
		return NULL;
	}
	nc_reply_free(r);
	return c;
}

int nc_run_id(struct redisContext *c, uint32_t timeout_ms,
	      char out[NC_RUN_ID_LEN + 1])
{
	static const char key[] = "run_id:";
	const char *argv[2] = { "INFO", "server" };
	size_t lens[2] = { 4, 6 };
	redisReply *r;
	const char *p = NULL, *s;
	size_t i, left;

	r = nc_command(c, timeout_ms, 2, argv, lens);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR) {
		nc_reply_free(r); /* NOAUTH, most likely */
		errno = EIO;
		return -1;
	}
	if (r->type != REDIS_REPLY_STRING)
		goto bad;
	/* "run_id:" at the start of a line. */
	for (s = r->str, left = r->len; left >= sizeof(key) - 1;) {
		const char *nl;

		if (!memcmp(s, key, sizeof(key) - 1)) {
			p = s + sizeof(key) - 1;
			break;
		}
		nl = memchr(s, '\n', left);
		if (!nl)
			break;
		left -= (size_t)(nl + 1 - s);
		s = nl + 1;
	}
	if (!p || (size_t)(r->str + r->len - p) < NC_RUN_ID_LEN)
		goto bad;
	for (i = 0; i < NC_RUN_ID_LEN; i++) {
		if (!isxdigit((unsigned char)p[i]))
			goto bad;
		out[i] = p[i];
	}
	out[NC_RUN_ID_LEN] = '\0';
	nc_reply_free(r);
	return 0;
bad:
	nc_reply_free(r);
	errno = EPROTO;
	return -1;
}

void nc_sigpipe_block(struct nc_sigpipe *s)
{
	sigset_t set, old, pending;

	s->blocked = 0;
	s->was_pending = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (sigpending(&pending) == 0)
		s->was_pending = sigismember(&pending, SIGPIPE) == 1;
	if (pthread_sigmask(SIG_BLOCK, &set, &old) == 0)
		s->blocked = sigismember(&old, SIGPIPE) != 1;
}

void nc_sigpipe_restore(struct nc_sigpipe *s)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t set, pending;
	int e = errno;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	/*
	 * Swallow the SIGPIPE these calls raised, not one that was there:
	 * also where the caller had blocked SIGPIPE itself, whose unblock
	 * later would have delivered it (and killed the process).
	 */
	if (!s->was_pending && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1)
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	if (s->blocked)
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	s->blocked = 0;
	s->was_pending = 1; /* once: a second restore swallows nothing */
	errno = e;
}
