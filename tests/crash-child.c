/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crash-child.c - the writer that tests/check_crash.c kills.
 *
 *   crash-child DIR NAME SHM_FD WRITER NWRITERS seq|rand SEED OPS
 *
 * Attaches to DIR/NAME.shf and writes the keys it owns (index % NWRITERS ==
 * WRITER) with every kind of write: put, put if absent, replace, update,
 * compare-and-swap, delete, add.  Each acknowledged write is recorded in the
 * shared memory of SHM_FD (struct cc_shm, see crash-common.h) before the
 * next one starts.  "seq" walks all its keys once (growing the table) then
 * makes OPS random writes and exits 0; "rand" makes random writes until it
 * is killed (or OPS of them, if OPS > 0).
 *
 * It is started with SHF_TEST_CRASH=POINT:N in its environment to make the
 * library kill it at a crash point, or killed from outside at a random
 * instant.  On start it first settles the write a previous writer left in
 * flight: the table must hold its old or its new state.  Exit 0: done;
 * 2: a check failed (the text is in the shared memory); 3: bad use.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shf.h"
#include "crash-common.h"

static struct cc_shm *shm;
static struct cc_writer *me;
static SHF *shf;
static uint32_t widx, nw;
static char kbuf[CC_KEY_MAX];
static char vbuf[CC_VAL_MAX], obuf[CC_VAL_MAX];

static void fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(me->msg, sizeof(me->msg), fmt, ap);
	va_end(ap);
	__atomic_store_n(&me->error, 1, __ATOMIC_RELEASE);
	_exit(2);
}

static void hash_key(uint32_t i)
{
	shf_make_hash(kbuf, cc_key(shm, i, kbuf));
}

/* Does the table hold state st for key i?  (The key is hashed.) */
static int holds(uint32_t i, int64_t st)
{
	return cc_holds(i, st, shf_get_key_val_copy(shf), vbuf);
}

static void begin(uint32_t i, int64_t old_state, int64_t new_state)
{
	me->key = i;
	me->old_state = old_state;
	me->new_state = new_state;
	__atomic_store_n(&me->active, 1, __ATOMIC_SEQ_CST);
}

static void acked(uint32_t i, int64_t new_state)
{
	__atomic_store_n(&shm->state[i], new_state, __ATOMIC_SEQ_CST);
	__atomic_store_n(&me->active, 0, __ATOMIC_SEQ_CST);
	me->ops++;
}

static void expect(uint32_t got, uint32_t want, const char *what, uint32_t i)
{
	if (got != want)
		fail("writer %u: %s of key %u returned %#x, expected %#x "
		     "(errno %d %s)",
		     widx, what, i, got, want, errno, strerror(errno));
}

static void op_counter(uint32_t i, uint64_t r)
{
	int64_t s = shm->state[i], d, n;
	uint32_t ret;

	if (s != 0 && r % 8 == 0)
		d = -s; /* back to 0: the key is deleted */
	else
		d = (int64_t)((r >> 8) % 7) - 3;
	if (d == 0)
		d = 5;
	n = s + d;
	hash_key(i);
	begin(i, s, n);
	ret = (r >> 16) & 1 ? shf_add_key_val_atom(shf, (long)d) :
			      shf_add_key_val(shf, (long)d);
	expect(ret, SHF_RET_KEY_FOUND, "add", i);
	if (shf_val_long != n)
		fail("writer %u: add %lld to key %u (was %lld) gave %ld", widx,
		     (long long)d, i, (long long)s, shf_val_long);
	acked(i, n);
}

static void op_kv(uint32_t i, uint64_t r)
{
	int64_t s = shm->state[i], n;
	uint32_t ret, len, olen, k;

	hash_key(i);
	if ((r >> 40) % 5 == 0 && !holds(i, s))
		fail("writer %u: key %u does not read back as state %lld "
		     "(get gave len %u)",
		     widx, i, (long long)s, shf_val_len);
	if (s == 0) {
		k = (uint32_t)(r % 10);
		if (k == 9) { /* delete an absent key: nothing changes */
			expect(shf_del_key_val(shf), SHF_RET_KEY_NONE, "del",
			       i);
			return;
		}
		n = 1 + (int64_t)((r >> 8) % 1000);
		len = cc_val(i, n, vbuf);
		begin(i, s, n);
		if (k == 8)
			ret = shf_put_key_val_if_absent(shf, vbuf, len);
		else
			ret = shf_put_key_val(shf, vbuf, len);
		expect(ret, SHF_RET_KEY_PUT, "put", i);
		acked(i, n);
		return;
	}
	k = (uint32_t)(r % 20);
	if (k < 8) {
		n = s + 1;
		len = cc_val(i, n, vbuf);
		begin(i, s, n);
		expect(shf_put_key_val(shf, vbuf, len), SHF_RET_KEY_PUT,
		       "put (replace)", i);
	} else if (k < 11) {
		n = s + 1;
		len = cc_val(i, n, vbuf);
		begin(i, s, n);
		expect(shf_replace_key_val(shf, vbuf, len),
		       SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT, "replace", i);
	} else if (k < 14) {
		n = s + 4; /* same length */
		len = cc_val(i, n, vbuf);
		if (shf_upd_callback_copy(vbuf, len) != SHF_RET_OK)
			fail("writer %u: shf_upd_callback_copy failed", widx);
		begin(i, s, n);
		expect(shf_upd_key_val(shf), SHF_RET_KEY_FOUND, "update", i);
	} else if (k < 16) {
		n = s + 1;
		len = cc_val(i, n, vbuf);
		olen = cc_val(i, s, obuf);
		begin(i, s, n);
		expect(shf_cas_key_val(shf, obuf, olen, vbuf, len),
		       SHF_RET_KEY_FOUND | SHF_RET_KEY_PUT, "cas", i);
	} else {
		n = 0;
		begin(i, s, n);
		expect(shf_del_key_val(shf), SHF_RET_KEY_FOUND, "del", i);
	}
	acked(i, n);
}

static void op(uint32_t i, uint64_t r)
{
	if (cc_is_counter(i))
		op_counter(i, r);
	else
		op_kv(i, r);
}

/*
 * The writer's next growth key (its keys of the growth range, in order,
 * then again from the first: replaced or deleted the second time round).
 */
static uint32_t growth_key(void)
{
	uint32_t first = (widx + nw - CC_GROW_FIRST % nw) % nw, g;

	g = first + me->grow_next * nw;
	if (g >= CC_GROW) {
		me->grow_next = 0;
		g = first;
	}
	me->grow_next++;
	return CC_GROW_FIRST + g;
}

static uint32_t random_key(uint64_t *rs)
{
	uint32_t per = (CC_NKEYS + nw - 1) / nw, i;
	uint64_t r = cc_rand(rs);

	if (r % 8 == 0) /* keep the table growing */
		return growth_key();
	do
		i = (uint32_t)(cc_rand(rs) % per) * nw + widx;
	while (i >= CC_NKEYS);
	return i;
}

int main(int argc, char **argv)
{
	uint64_t rs, ops, k;
	int fd, forever;

	if (argc != 9)
		return 3;
	shf_init();
	fd = atoi(argv[3]);
	widx = (uint32_t)atoi(argv[4]);
	nw = (uint32_t)atoi(argv[5]);
	rs = strtoull(argv[7], NULL, 10);
	ops = strtoull(argv[8], NULL, 10);
	if (nw == 0 || nw > CC_WRITERS_MAX || widx >= nw)
		return 3;
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   0);
	if (shm == MAP_FAILED || shm->magic != CC_MAGIC)
		return 3;
	close(fd);
	me = &shm->w[widx];
	shf = shf_attach_existing(argv[1], argv[2]);
	if (!shf)
		fail("writer %u: shf_attach_existing(%s, %s): %s", widx,
		     argv[1], argv[2], strerror(errno));

	/* The write a killed writer left in flight: old or new, not torn. */
	if (me->active) {
		uint32_t i = me->key;

		hash_key(i);
		if (holds(i, me->new_state))
			shm->state[i] = me->new_state;
		else if (holds(i, me->old_state))
			shm->state[i] = me->old_state;
		else
			fail("writer %u: key %u in flight holds neither state "
			     "%lld nor %lld (get: %#x, len %u)",
			     widx, i, (long long)me->old_state,
			     (long long)me->new_state,
			     shf_get_key_val_copy(shf), shf_val_len);
		me->active = 0;
	}
	__atomic_store_n(&me->running, 1, __ATOMIC_SEQ_CST);

	if (!strcmp(argv[6], "seq")) {
		for (k = 0; k < CC_NKEYS; k++) {
			uint32_t i = (uint32_t)((k * 7919) % CC_NKEYS);

			if (i % nw != widx)
				continue;
			op(i, cc_rand(&rs));
			if (cc_rand(&rs) & 1)
				op(random_key(&rs), cc_rand(&rs));
		}
		forever = 0;
	} else if (!strcmp(argv[6], "rand")) {
		forever = ops == 0;
	} else {
		return 3;
	}
	for (k = 0; forever || k < ops; k++)
		op(random_key(&rs), cc_rand(&rs));
	shf_detach(shf);
	return 0;
}
