// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache.c - the read API of libshf-nearcache: shf_nc_open(),
 * shf_nc_get(), shf_nc_close(), over libshf's public API only: the
 * handle, its counters, whether the table may serve, a hit.  A miss is
 * nearcache-fill.c's, a read from Redis nearcache-fetch.c's.
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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nearcache-internal.h"

#define TIMEOUT_MS_DEFAULT 1000u
#define TIMEOUT_MS_MAX 3600000u
#define FLUSH_EVERY 64u /* reads between two adds to the shared counters */
#define TRIES 4

/* ---------------------------------------------------------- counters */

/* The handle's counters onto the sidecar's. */
static void ctr_flush(struct shf_nc *nc)
{
	unsigned i;

	for (i = 0; i < NC_CTR_N; i++) {
		nc_ctr_add(nc->map.side, i, nc->ctr[i]);
		nc->ctr[i] = 0;
	}
	nc->ops = 0;
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

/* ---------------------------------------------------------------- get */

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
		     nc_view_load(nc, gen) < 0) ||
		    (nc->mode == SHF_NC_MODE_BCAST &&
		     !prefix_match(nc, key, key_len))) {
			ret = nc_bypass(nc, key, key_len, val, val_len);
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
			nc_count(nc, NC_HITS);
			ret = SHF_RET_KEY_NONE;
			if (kind == REC_VALUE)
				ret = nc_give(nc, shf_val + NC_REC_HDR,
					      shf_val_len - NC_REC_HDR, val,
					      val_len);
			break;
		}
		if (r == (SHF_RET_KEY_NONE | SHF_RET_LEASED)) {
			nc_count(nc, NC_MISSES);
			ret = nc_fill(nc, key, key_len, gen, val, val_len);
			break;
		}
		/* Another's fetch took longer than wait_ms (ETIMEDOUT), or
		 * the table failed (ENOSPC, EBADMSG): Redis still answers. */
		if (!(r & SHF_RET_ERROR) || errno != ETIMEDOUT)
			nc_count(nc, NC_ERRORS);
		ret = nc_bypass(nc, key, key_len, val, val_len);
		break;
	}
	read_done(nc);
	return ret;
}

/* ------------------------------------------------------ open and close */

NC_EXPORT SHF_NC *shf_nc_open(const char *dir, const char *name,
			      const struct shf_nc_options *opt, size_t opt_size)
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
