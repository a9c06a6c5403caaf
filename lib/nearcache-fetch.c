// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache-fetch.c - libshf-nearcache's reads from Redis: the handle's
 * own connection (made per process, with the server's run_id), GET and
 * PTTL in one round trip, a read that bypasses the table, and the buffers
 * a value is returned and stored in.  The connections themselves are
 * nearcache-redis.c's.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "nearcache-internal.h"

/* ----------------------------------------------------------- buffers */

int nc_grow(char **buf, size_t *size, size_t need)
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

uint32_t nc_give(struct shf_nc *nc, const char *v, size_t len, const char **val,
		 uint32_t *val_len)
{
	if (len > UINT32_MAX - 64) {
		errno = EPROTO;
		return SHF_RET_ERROR;
	}
	if (nc_grow(&nc->out, &nc->out_size, len + 1) < 0)
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
	rc = nc->rc ? nc_run_id(nc->rc, nc->timeout_ms, nc->rc_run_id) : -1;
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
int nc_redis_get(struct shf_nc *nc, const char *key, uint32_t key_len,
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
			if (nc_get_reply(nc->rc, nc->timeout_ms,
					 (void **)&r[i]) != REDIS_OK || !r[i])
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
uint32_t nc_answer(struct shf_nc *nc, const redisReply *r, const char **val,
		   uint32_t *val_len)
{
	if (r->type == REDIS_REPLY_NIL)
		return SHF_RET_KEY_NONE;
	return nc_give(nc, r->str, r->len, val, val_len);
}

/* Read from Redis without the table. */
uint32_t nc_bypass(struct shf_nc *nc, const char *key, uint32_t key_len,
		   const char **val, uint32_t *val_len)
{
	redisReply *r;
	long long pttl;
	uint32_t ret;

	nc_count(nc, NC_BYPASSED);
	if (nc_redis_get(nc, key, key_len, 0, &r, &pttl) < 0) {
		nc_count(nc, NC_ERRORS);
		return SHF_RET_ERROR;
	}
	ret = nc_answer(nc, r, val, val_len);
	nc_reply_free(r);
	return ret;
}
