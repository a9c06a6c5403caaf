// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * lease.c - get-or-lease: when a key has no value, exactly one caller gets
 * its lease (a placeholder record naming the holder's process) and the
 * others wait on the shard's lease futex for the value.  A holder that
 * dies or outlives its lease is replaced by a waiter.  The holder fills
 * the key with any put, or with shf_put_key_val_if_leased(), which stores
 * only while the very lease it was granted still holds.
 */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "table.h"

/* A lease's value: the process holding it, and which grant. */
struct lease_val {
	int32_t pid;
	uint32_t nonce; /* which grant (shf_put_key_val_if_leased) */
	uint64_t start; /* start time of the process (pid reuse) */
};

/* How often a waiter looks at the lease's holder. */
#define LEASE_POLL_MS 50

static _Atomic pid_t id_pid;
static _Atomic uint64_t id_start;
/* The lease this thread was last granted, for its key (shf_key_id()). */
static __thread struct {
	uint64_t hash;
	uint32_t nonce;
} granted SHF_TLS_IE;

static void my_identity(struct lease_val *lv)
{
	pid_t me = getpid();

	if (atomic_load(&id_pid) != me) {
		/* of the process: its first thread may have exited */
		atomic_store(&id_start, shf_proc_group_start_time(me));
		atomic_store(&id_pid, me);
	}
	memset(lv, 0, sizeof(*lv));
	lv->pid = me;
	lv->start = atomic_load(&id_start);
}

/* A new grant's nonce: never 0, distinct within the process. */
static uint32_t lease_nonce_new(void)
{
	static _Atomic uint32_t next;
	uint32_t n;

	do
		n = atomic_fetch_add(&next, 1) + 1;
	while (!n);
	return n;
}

static void lease_read(const struct rec *r, struct lease_val *lv)
{
	memset(lv, 0, sizeof(*lv));
	memcpy(lv, r->val, r->vlen < sizeof(*lv) ? r->vlen : sizeof(*lv));
}

/* Does the process that took the lease still exist? */
static int holder_alive(const struct lease_val *lv)
{
	/*
	 * The process as a whole (a lease is a process's: its first thread
	 * may have called pthread_exit() while another fills the lease);
	 * where /proc does not tell (hidepid=), alive.
	 */
	return shf_proc_alive(lv->pid, 1, lv->start);
}

/* put.c's guard of a fill: is r the running lease this thread was given? */
static int lease_is_mine(const struct rec *r, struct clk *c)
{
	struct lease_val lv, me;

	if (!(r->flags & KF_LEASE) || r->vlen < sizeof(lv) ||
	    rec_expired(r, c))
		return 0;
	lease_read(r, &lv);
	my_identity(&me);
	return lv.pid == me.pid && lv.start == me.start &&
	       lv.nonce == granted.nonce && granted.hash == shf_key_id();
}

/* The key is leased to this thread now. */
static uint32_t leased(SHF *h, struct shard *sh, uint32_t ul, uint32_t nonce)
{
	shf_uid = uid_make((uint32_t)(sh - h->shards), ul);
	granted.hash = shf_key_id();
	granted.nonce = nonce;
	return unlock_ret(h, sh, SHF_RET_KEY_NONE | SHF_RET_LEASED);
}

/*
 * Wait (sh unlocked by now) until the lease's end is signalled, its
 * holder's next check is due, or deadline: 0 to look again, -1 when
 * the time is up (ETIMEDOUT).
 */
static int lease_wait(SHF *h, struct shard *sh, uint32_t seq,
		      uint64_t deadline, int *waited)
{
	uint64_t now = shf_clock_ms(CLOCK_MONOTONIC), t;

	if (now >= deadline) {
		shf_uid = SHF_UID_NONE;
		errno = ETIMEDOUT;
		return -1;
	}
	if (!*waited) {
		*waited = 1;
		atomic_fetch_add(&h->h->lease_waits, 1);
	}
	t = deadline - now;
	if (t > LEASE_POLL_MS)
		t = LEASE_POLL_MS;
	shf_futex_wait((uint32_t *)&sh->lease_seq, seq, (int)t);
	return 0;
}

/* Take the lease of the key (absent, expired, or a dead lease): locked. */
static uint32_t lease_take(SHF *h, struct shard *sh, struct found *f,
			   int found, struct lease_val *me, uint32_t lease_ms,
			   struct clk *c)
{
	int expired = found && rec_expired(&f->r, c) &&
		      !(f->r.flags & KF_LEASE);
	uint32_t ul;

	atomic_store(&h->h->ttl_used, 1);
	me->nonce = lease_nonce_new();
	if (store(h, sh, f, found, key_hash(h), me, sizeof(*me),
		  KF_LEASE | KF_TTL, clk_now(c) + lease_ms, c, &ul) < 0)
		return unlock_ret(h, sh, SHF_RET_ERROR);
	if (expired)
		ctr_add(&sh->expirations, 1);
	atomic_fetch_add(&h->h->leases, 1);
	return leased(h, sh, ul, me->nonce);
}

/*
 * One look at the key under its lock: its value (now there), the lease
 * (taken, or this process's), or 0 with *seq set: another live process
 * holds the lease, wait.
 */
static uint32_t lease_look(SHF *h, struct shard *sh, struct lease_val *me,
			   uint32_t lease_ms, uint32_t *seq)
{
	struct clk c = { 0 };
	struct lease_val lv;
	struct found f;
	int rc;

	if (write_lock(h, sh, &c) < 0)
		return SHF_RET_ERROR;
	rc = idx_find(h, sh, key_hash(h), shf_tls.key, shf_tls.key_len, &f);
	if (rc < 0) {
		errno = EBADMSG;
		return unlock_ret(h, sh, SHF_RET_ERROR);
	}
	if (rc == 1 && rec_visible(&f.r, &c)) { /* it just came */
		if (copy_out(&f.r, W_VAL_COPY) < 0)
			return unlock_ret(h, sh, SHF_RET_ERROR);
		publish(&f.r, uid_make((uint32_t)(sh - h->shards), f.r.uid),
			W_VAL_COPY);
		return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
	}
	if (rc == 1 && (f.r.flags & KF_LEASE) && !rec_expired(&f.r, &c)) {
		lease_read(&f.r, &lv);
		if (lv.pid == me->pid && lv.start == me->start)
			return leased(h, sh, f.r.uid, lv.nonce);
		if (holder_alive(&lv)) { /* wait for its value */
			*seq = atomic_load(&sh->lease_seq);
			shard_unlock(h, sh);
			return 0;
		}
		/* its holder is gone: take the lease over */
	}
	return lease_take(h, sh, &f, rc == 1, me, lease_ms, &c);
}

SHF_EXPORT uint32_t shf_get_key_val_copy_or_lease(SHF *h, uint32_t lease_ms,
						  uint32_t wait_ms)
{
	uint64_t deadline;
	struct lease_val me;
	uint32_t polls;
	int waited = 0;

	if (!h || !shf_tls.have_key || !lease_ms) {
		shf_uid = SHF_UID_NONE;
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (h->h->fixed_set && shf_tls.key_len != h->h->fixed_klen) {
		shf_uid = SHF_UID_NONE;
		errno = EINVAL;
		return SHF_RET_ERROR | SHF_RET_BAD_VAL;
	}
	my_identity(&me);
	deadline = shf_clock_ms(CLOCK_MONOTONIC) + wait_ms;
	for (polls = 0;; polls++) {
		struct shard *sh;
		uint32_t ret, seq = 0;

		/* one get: its first look is a hit or a miss, not its polls */
		ret = do_get(h, 0, 0, polls ? W_VAL_COPY | W_QUIET : W_VAL_COPY);
		if (ret != SHF_RET_KEY_NONE)
			return ret;
		sh = shard_of(h, key_hash(h));
		ret = lease_look(h, sh, &me, lease_ms, &seq);
		if (ret)
			return ret;
		if (lease_wait(h, sh, seq, deadline, &waited) < 0)
			return SHF_RET_KEY_NONE | SHF_RET_ERROR;
	}
}

/*
 * Before a fill or a release of the thread's grant: 0 if it holds one for
 * the key it named, else the call's result (ERROR with EINVAL: no table or
 * no key named; KEY_NONE: no lease of this thread's for that key).
 */
static uint32_t grant_missing(SHF *h)
{
	if (h && shf_tls.have_key && granted.nonce &&
	    granted.hash == shf_key_id())
		return 0;
	shf_uid = SHF_UID_NONE;
	if (!h || !shf_tls.have_key) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	return SHF_RET_KEY_NONE;
}

SHF_EXPORT uint32_t shf_put_key_val_if_leased(SHF *h, const char *val,
					      uint32_t vlen, uint32_t ttl_ms)
{
	uint32_t r = grant_missing(h);

	if (r)
		return r;
	/* UINT32_MAX ms is a TTL too here, not "the default" */
	r = do_put(h, val, vlen, P_GUARDED, NULL, 0,
		   ttl_ms == UINT32_MAX ? UINT32_MAX - 1 : ttl_ms,
		   lease_is_mine);
	if (r == SHF_RET_KEY_PUT)
		granted.nonce = 0; /* the lease ended */
	return r;
}

SHF_EXPORT uint32_t shf_lease_grant(void)
{
	return granted.nonce;
}

SHF_EXPORT void shf_lease_adopt(uint32_t grant)
{
	/* for the key named last: a grant of another key's lease, or one
	 * that ended, matches no lease record, and so fills nothing */
	granted.hash = shf_key_id();
	granted.nonce = grant;
}

SHF_EXPORT uint32_t shf_del_key_val_if_leased(SHF *h)
{
	struct clk c = { 0 };
	struct shard *sh;
	struct found f;
	uint64_t hash;
	uint32_t r = grant_missing(h);
	int rc, vis;

	if (r)
		return r;
	sh = lock_find(h, 0, 0, &f, &hash, &rc, &vis, &c);
	if (rc == -2)
		return SHF_RET_ERROR;
	/* only that very grant's lease, still running, is given up */
	if (rc == 0 || !lease_is_mine(&f.r, &c))
		return unlock_ret(h, sh, SHF_RET_KEY_NONE);
	delete_found(h, sh, &f); /* wakes the waiters (lease_end()) */
	granted.nonce = 0;
	return unlock_ret(h, sh, SHF_RET_KEY_FOUND);
}
