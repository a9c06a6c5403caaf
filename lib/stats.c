// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * stats.c - the counters and settings of a table in one call, and
 * SharedHashFile's garbage count.  Counters are read one by one, without
 * a lock: each is exact, their sum a snapshot of moving parts.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

SHF_EXPORT uint32_t shf_get_stats(SHF *h, struct shf_stats *out, size_t size)
{
	struct shf_stats st;
	uint32_t i;

	if (!h || !out) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	getstat_flush_handle(h);
	memset(&st, 0, sizeof(st));
	for (i = 0; i < NSHARDS; i++) {
		struct shard *sh = &h->shards[i];

		st.bytes_cached += atomic_load(&sh->rbytes);
		st.evictions += atomic_load(&sh->evictions);
		st.expirations += atomic_load(&sh->expirations);
		st.keys += atomic_load(&sh->nkeys);
		st.bytes_used += atomic_load(&sh->bytes_used);
		st.bytes_free += atomic_load(&sh->bytes_free);
		st.splits += atomic_load(&sh->splits);
		st.puts += atomic_load(&sh->puts);
		st.dels += atomic_load(&sh->dels);
	}
	st.byte_budget = atomic_load(&h->h->byte_budget);
	/*
	 * With a budget: the table's count, which the budget bounds (the sum
	 * of the shards', read one by one while writers move records between
	 * them, can be larger than any count the table ever had).
	 */
	if (st.byte_budget)
		st.bytes_cached = atomic_load(&h->h->cache_bytes);
	st.bytes_file = atomic_load(&h->h->file_size);
	st.lock_waits = atomic_load(&h->h->locks.lock_waits);
	st.recoveries = atomic_load(&h->h->locks.recoveries);
	st.shards = NSHARDS;
	if (h->h->fixed_set) {
		st.fixed_key_len = h->h->fixed_klen;
		st.fixed_val_len = h->h->fixed_vlen;
	}
	st.layout = SHF_LAYOUT;
	st.ttl_default_ms = atomic_load(&h->h->ttl_default);
	st.hits = atomic_load(&h->h->hits);
	st.misses = atomic_load(&h->h->misses);
	st.leases = atomic_load(&h->h->leases);
	st.lease_waits = atomic_load(&h->h->lease_waits);
	/*
	 * A pair of one owner: the pid again after the start time (a new
	 * owner's pid is 0 while its start time goes in, see handle.c), a
	 * few times at most, else none (an owner being set has no say yet).
	 */
	for (i = 0; i < 8; i++) {
		st.owner_pid = atomic_load(&h->h->owner_pid);
		st.owner_start = atomic_load(&h->h->owner_start);
		if (atomic_load(&h->h->owner_pid) == st.owner_pid)
			break;
	}
	if (i == 8)
		st.owner_pid = 0;
	if (st.owner_pid > 0) {
		/* the process: alive while any of its threads is */
		uint64_t now =
			shf_proc_group_start_time((pid_t)st.owner_pid);

		st.owner_alive = now && now == st.owner_start;
	} else {
		st.owner_pid = 0;
	}
	memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
	return SHF_RET_OK;
}

SHF_EXPORT uint64_t shf_debug_get_garbage(SHF *h)
{
	uint64_t g = 0;
	uint32_t i;

	if (!h)
		return 0;
	for (i = 0; i < NSHARDS; i++)
		g += atomic_load(&h->shards[i].bytes_free);
	return g;
}
