// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * nearcache-stats.c - shf_nc_stats(): the state and counters of a
 * near-cache, read from its sidecar without a daemon or Redis.  Uses libc
 * only (with nearcache-side.c), so that shf(1) can link it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "nearcache-internal.h"

static int64_t age_of(uint64_t then, uint64_t now)
{
	if (!then)
		return -1;
	/* A time in the future comes from a damaged file: say "never". */
	return then <= now ? (int64_t)(now - then) : -1;
}

NC_EXPORT uint32_t shf_nc_stats(const char *dir, const char *name,
				struct shf_nc_stats *st, size_t size)
{
	struct shf_nc_stats out;
	struct nc_side *s;
	struct nc_map m;
	uint64_t gen, now, start;
	uint32_t i, n;
	int32_t pid;

	if (!st) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (nc_side_open(&m, dir, name, 0, 0) < 0)
		return SHF_RET_ERROR;
	s = m.side;
	memset(&out, 0, sizeof(out));
	gen = nc_load(&s->gen);
	out.state = NC_GEN_STATE(gen) <= SHF_NC_UP ? NC_GEN_STATE(gen) :
						     SHF_NC_DOWN;
	out.epoch = NC_GEN_EPOCH(gen);
	out.mode = nc_load32(&s->mode) == SHF_NC_MODE_BCAST ?
			   SHF_NC_MODE_BCAST :
			   SHF_NC_MODE_REDIRECT;
	pid = (int32_t)nc_load32((const uint32_t *)&s->pid);
	if (pid > 0) {
		out.daemon_pid = pid;
		start = nc_load(&s->start_time);
		out.daemon_alive = start && shf_proc_start_time(pid) == start;
	}
	now = nc_mono_ms();
	out.beat_age_ms = age_of(nc_load(&s->beat_ms), now);
	out.synced_age_ms = age_of(nc_load(&s->synced_ms), now);
	out.state_age_ms = age_of(nc_load(&s->state_ms), nc_real_ms());
	out.ping_ms = nc_load32(&s->ping_ms);
	out.stale_ms = nc_load32(&s->stale_ms);
	out.client_id = nc_load(&s->sid);
	n = nc_load32(&s->nprefix);
	out.prefixes = n <= NC_PREFIX_MAX ? n : 0;
	out.hits = nc_load(&s->ctr[NC_HITS]);
	out.misses = nc_load(&s->ctr[NC_MISSES]);
	out.fills = nc_load(&s->ctr[NC_FILLS]);
	out.fill_races = nc_load(&s->ctr[NC_FILL_RACES]);
	out.invalidations = nc_load(&s->ctr[NC_INVALIDATIONS]);
	out.resyncs = nc_load(&s->ctr[NC_RESYNCS]);
	out.reconnects = nc_load(&s->ctr[NC_RECONNECTS]);
	out.bypassed = nc_load(&s->ctr[NC_BYPASSED]);
	out.errors = nc_load(&s->ctr[NC_ERRORS]);
	nc_str_copy(out.redis, sizeof(out.redis), s->redis, sizeof(s->redis));
	nc_str_copy(out.last_error, sizeof(out.last_error), s->last_error,
		    sizeof(s->last_error));
	/* Printable only: the strings come from shared memory. */
	for (i = 0; out.redis[i]; i++)
		if ((unsigned char)out.redis[i] < 0x20)
			out.redis[i] = '?';
	for (i = 0; out.last_error[i]; i++)
		if ((unsigned char)out.last_error[i] < 0x20)
			out.last_error[i] = '?';
	nc_side_close(&m);
	memcpy(st, &out, size < sizeof(out) ? size : sizeof(out));
	if (size > sizeof(out))
		memset((char *)st + sizeof(out), 0, size - sizeof(out));
	return SHF_RET_OK;
}
