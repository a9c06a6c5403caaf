// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-kv.c - the table phases of shf-bench(1): PUT, GET, MIX, UPD
 * and BATCH over each worker's own range of keys, and the worker
 * processes that run them (and the CACHE phase).
 *
 * The parent creates the table and forks the workers; each worker attaches
 * on its own (as an unrelated process would), owns the index range
 * [p*n/P, (p+1)*n/P) and runs the phases when the parent says so through
 * its pipe.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shf-bench.h"

/* The key's prefix (see key_make()). */
static void key_prefix(char *k)
{
	unsigned i, pre = opt_klen - 8;

	for (i = 0; i < pre; i++)
		k[i] = i < 4 ? "key:"[i] : '-';
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static int is_prime(uint64_t x)
{
	uint64_t d;

	if (x < 2)
		return 0;
	for (d = 2; d * d <= x; d++)
		if (x % d == 0)
			return 0;
	return 1;
}

/* 1000003, or the next prime coprime with the range size. */
static uint64_t stride_for(uint64_t n)
{
	uint64_t s = 1000003;

	while (n && gcd64(s, n) != 1)
		do
			s++;
		while (!is_prime(s));
	return s;
}

/* libshf operations: 0 right, 1 wrong result, -1 failed call. */
static int shf_op_put(struct ctx *c, uint64_t i)
{
	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	val_make(c->val, val_word(c, i, c->flip));
	return shf_put_key_val(c->shf, c->val, opt_vlen) & SHF_RET_KEY_PUT ?
		       0 : -1;
}

static int shf_op_get(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	r = shf_get_key_val_copy(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	return (r & SHF_RET_KEY_FOUND) &&
			       val_ok(shf_val, shf_val_len,
				      val_word(c, i, c->flip)) ?
		       0 : 1;
}

static int shf_op_delput(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	r = shf_del_key_val(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	if (!(r & SHF_RET_KEY_FOUND))
		return 1;
	val_make(c->val, val_word(c, i, c->flip));
	return shf_put_key_val(c->shf, c->val, opt_vlen) & SHF_RET_KEY_PUT ?
		       0 : -1;
}

static int shf_op_upd(struct ctx *c, uint64_t i)
{
	uint32_t r;

	key_make(c->key, i);
	shf_make_hash(c->key, opt_klen);
	val_make(c->val, val_word(c, i, !c->flip));
	if (shf_upd_callback_copy(c->val, opt_vlen) & SHF_RET_ERROR)
		return -1;
	r = shf_upd_key_val(c->shf);
	if (r & SHF_RET_ERROR)
		return -1;
	return (r & SHF_RET_KEY_FOUND) && !(r & SHF_RET_BAD_CB) ? 0 : 1;
}

static int shf_op_batch(struct ctx *c, const uint64_t *ix, unsigned n)
{
	unsigned k;
	uint32_t r;
	int bad = 0;

	for (k = 0; k < n; k++)
		key_make(c->bkeys + (size_t)k * opt_klen, ix[k]);
	r = shf_get_key_val_copy_batch(c->shf, n, c->bkp, c->bklen, c->bbuf,
				       (uint64_t)BATCH_KEYS * opt_vlen,
				       c->boffs, c->blens, c->buids);
	if (r == UINT32_MAX)
		return -1;
	for (k = 0; k < n; k++)
		if (c->blens[k] == UINT32_MAX ||
		    !val_ok(c->bbuf + c->boffs[k], c->blens[k],
			    val_word(c, ix[k], c->flip)))
			bad++;
	return bad;
}

static const struct store_ops shf_ops = {
	shf_op_put, shf_op_get, shf_op_delput, shf_op_upd, shf_op_batch, NULL
};

static const struct store_ops *const be_ops[NBE] = { &shf_ops, &lmdb_ops };

/* One phase over the process's range; -1 if a call failed. */
static int run_phase(struct ctx *c, int ph)
{
	const struct store_ops *o = be_ops[c->be];
	struct proc_stat *st = c->st;
	uint64_t j, pos = 0, step = c->n ? c->stride % c->n : 0, t0, t1;
	uint64_t ix[BATCH_KEYS];
	unsigned acc = 0, nb = 0;
	int rc = 0;

	atomic_store_explicit(&st->ops, 0, memory_order_relaxed);
	t0 = ticks();
	for (j = 0; j < c->n; j++) {
		uint64_t i;

		if (ph == PH_PUT) {
			i = c->lo + j;
		} else {
			i = c->lo + pos;
			pos += step;
			if (pos >= c->n)
				pos -= c->n;
		}
		switch (ph) {
		case PH_PUT:
			rc = o->put(c, i);
			break;
		case PH_GET:
			rc = o->get(c, i);
			break;
		case PH_MIX:
			acc += opt_mix;
			if (acc >= 100) {
				acc -= 100;
				rc = o->delput(c, i);
			} else {
				rc = o->get(c, i);
			}
			break;
		case PH_UPD:
			rc = o->upd(c, i);
			break;
		case PH_BATCH:
			ix[nb++] = i;
			if (nb < BATCH_KEYS && j + 1 < c->n)
				continue;
			rc = o->batch(c, ix, nb);
			break;
		}
		if (rc < 0)
			return -1;
		st->errors += (uint64_t)rc;
		t1 = ticks();
		lat_add(st, ph, t1 - t0);
		t0 = t1;
		if (ph == PH_BATCH) {
			nb = 0;
			atomic_store_explicit(&st->ops, j + 1,
					      memory_order_relaxed);
		} else if ((j & 255) == 255) {
			atomic_store_explicit(&st->ops, j + 1,
					      memory_order_relaxed);
		}
	}
	if (o->phase_end && o->phase_end(c) < 0)
		return -1;
	if (ph == PH_UPD)
		c->flip = !c->flip;
	atomic_store_explicit(&st->ops, c->n, memory_order_release);
	return 0;
}

static int ctx_open(struct ctx *c)
{
	unsigned k;

	c->key = calloc(1, opt_klen);
	c->val = calloc(1, opt_vlen + 8);
	c->bkeys = calloc(BATCH_KEYS, opt_klen);
	c->bbuf = calloc(BATCH_KEYS, opt_vlen + 8ULL);
	if (!c->key || !c->val || !c->bkeys || !c->bbuf)
		return -1;
	memset(c->val, 'v', opt_vlen);
	key_prefix(c->key);
	for (k = 0; k < BATCH_KEYS; k++) {
		key_prefix(c->bkeys + (size_t)k * opt_klen);
		c->bkp[k] = c->bkeys + (size_t)k * opt_klen;
		c->bklen[k] = opt_klen;
	}
	if (c->be == BE_SHF) {
		/* Attach on its own, as an unrelated process would. */
		c->shf = shf_attach_existing(opt_dir, g_attach);
		return c->shf ? 0 : -1;
	}
	return lmdb_ctx_open(c);
}

static void ctx_close(struct ctx *c)
{
	if (c->shf)
		shf_detach(c->shf);
	lmdb_ctx_close(c);
}

/* A worker process: attach, then run each phase the parent names. */
static void worker_main(void *arg, unsigned p, int go_fd, int done_fd,
			pid_t parent)
{
	int be = *(const int *)arg;
	struct ctx c;
	unsigned char b;
	char r = 'k';

	bench_child_init(parent);
	memset(&c, 0, sizeof(c));
	c.be = be;
	c.p = p;
	c.lo = opt_keys * p / opt_procs;
	c.n = opt_keys * (p + 1) / opt_procs - c.lo;
	c.stride = stride_for(c.n);
	c.st = &g_stat[be * opt_procs + p];
	if (ctx_open(&c) < 0)
		r = 'e';
	if (write(done_fd, &r, 1) != 1 || r == 'e')
		_exit(1);
	while (read(go_fd, &b, 1) == 1 && b != GO_EXIT) {
		if (b >= NPH)
			r = 'e';
		else if (b == PH_CACHE ? run_cache_phase(&c) < 0 :
					 run_phase(&c, b) < 0)
			r = 'e';
		if (write(done_fd, &r, 1) != 1 || r == 'e')
			_exit(1);
	}
	ctx_close(&c);
	_exit(0);
}

/* Fork the workers (they attach to g_attach) and wait until all have. */
void workers_start(int be)
{
	const char *what;
	double secs;

	if (bench_kids_fork(&g_kids, opt_procs, worker_main, &be, &what) < 0)
		die(what);
	/* Everyone attached: the start of each phase is a pipe barrier. */
	if (parent_wait(g_kids.done, be, -1, &secs) < 0)
		die(g_stop ? NULL : "a worker failed to attach");
}

/* Run phase ph on every worker; its seconds. */
double workers_phase(int be, int ph)
{
	double secs;

	if (bench_kids_go(&g_kids, (unsigned char)ph) < 0)
		die("pipe");
	if (parent_wait(g_kids.done, be, ph, &secs) < 0)
		die(g_stop ? NULL : "a worker failed");
	return secs;
}

/* Tell the workers to exit and reap them. */
void workers_end(void)
{
	if (bench_kids_go(&g_kids, GO_EXIT) < 0)
		die("pipe");
	bench_kids_close(&g_kids);
	if (bench_kids_wait(&g_kids, &g_stop) < 0)
		die("a worker failed");
}

static uint64_t file_bytes(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return 0;
	return (uint64_t)sb.st_blocks * 512;
}

static int store_create(int be)
{
	if (be == BE_SHF) {
		g_shf = shf_attach(opt_dir, g_name, 0);
		if (!g_shf)
			return -1;
		if (opt_fixed) {
			struct shf_stats s;

			errno = 0;
			shf_set_is_fixed_len(g_shf, opt_klen, opt_vlen);
			if (shf_get_stats(g_shf, &s, sizeof(s)) & SHF_RET_ERROR)
				return -1;
			if (s.fixed_key_len != opt_klen) {
				if (!errno)
					errno = EINVAL;
				return -1;
			}
		}
		return 0;
	}
	return lmdb_store_create();
}

/*
 * --huge: gather the table into 2 MiB pages between PUT and the phases
 * after it (shf huge; the workers keep their mappings, which the kernel
 * maps anew with 2 MiB entries).
 */
static void gather_huge(struct be_res *res)
{
	uint64_t t0 = ticks();

	if (shf_tool_huge_collapse(g_shf_path, &res->huge_done,
				   &res->huge_all) < 0)
		res->huge_errno = errno;
	res->huge_secs = (double)(ticks() - t0) / g_ticks_per_ns / 1e9;
	fprintf(g_live, "%s: %" PRIu64 " of %" PRIu64 " whole 2 MiB in 2 MiB "
		"pages after PUT (%.2f s)\n", be_name[BE_SHF], res->huge_done,
		res->huge_all, res->huge_secs);
}

/* The table phases on one store, from its creation to its removal. */
void run_backend(int be, struct be_res *res)
{
	int i;
	unsigned p;

	memset(res, 0, sizeof(*res));
	if (store_create(be) < 0)
		die(be == BE_SHF ? "cannot create the table" :
				   "cannot create the LMDB environment");
	g_attach = g_name;
	workers_start(be);
	fprintf(g_live, "%s: %u processes, %" PRIu64 " keys\n", be_name[be],
		opt_procs, opt_keys);
	for (i = 0; i < opt_nphases; i++) {
		int ph = opt_order[i];

		res->ph[ph].secs = workers_phase(be, ph);
		res->ph[ph].ran = 1;
		res->ph[ph].ops = opt_keys;
		percentiles(be, ph, &res->ph[ph]);
		if (ph == PH_PUT)
			res->file_bytes = file_bytes(be == BE_SHF ?
						     g_shf_path : g_lmdb_path);
		if (ph == PH_PUT && be == BE_SHF && opt_huge)
			gather_huge(res);
	}
	workers_end();
	for (p = 0; p < opt_procs; p++)
		res->errors += g_stat[be * opt_procs + p].errors;
	res->ran = 1;
	files_remove();
	if (be == BE_SHF)
		g_shf_path[0] = 0;
	else
		g_lmdb_path[0] = 0;
}
