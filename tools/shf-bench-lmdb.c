// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-lmdb.c - shf-bench --vs lmdb: the table phases' operations on
 * LMDB, with the same keys, values and checks as on libshf.  Without
 * LMDB (configure found none) the entry points are stubs that fail.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shf-bench.h"

#ifdef HAVE_LMDB
static int lmdb_wtxn_begin(struct ctx *c)
{
	if (c->wtxn)
		return 0;
	c->wcount = 0;
	return mdb_txn_begin(c->env, NULL, 0, &c->wtxn) ? -1 : 0;
}

static int lmdb_wtxn_commit(struct ctx *c)
{
	int rc;

	if (!c->wtxn)
		return 0;
	rc = mdb_txn_commit(c->wtxn);
	c->wtxn = NULL;
	return rc ? -1 : 0;
}

/* PUT and UPD: LMDB_PUT_TXN puts per write transaction. */
static int lmdb_put_batched(struct ctx *c, uint64_t i, int flip)
{
	MDB_val k = { opt_klen, c->key }, v = { opt_vlen, c->val };

	key_make(c->key, i);
	val_make(c->val, val_word(c, i, flip));
	if (lmdb_wtxn_begin(c) || mdb_put(c->wtxn, c->dbi, &k, &v, 0))
		return -1;
	if (++c->wcount == LMDB_PUT_TXN)
		return lmdb_wtxn_commit(c);
	return 0;
}

static int lmdb_op_put(struct ctx *c, uint64_t i)
{
	return lmdb_put_batched(c, i, c->flip);
}

static int lmdb_op_upd(struct ctx *c, uint64_t i)
{
	return lmdb_put_batched(c, i, !c->flip);
}

/* Each get in the process's read transaction, renewed and reset. */
static int lmdb_get1(struct ctx *c, uint64_t i, char *dst)
{
	MDB_val k = { opt_klen, c->key }, v;
	int rc;

	key_make(c->key, i);
	rc = mdb_get(c->rtxn, c->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return -1;
	memcpy(dst, v.mv_data, v.mv_size < opt_vlen ? v.mv_size : opt_vlen);
	return val_ok(dst, (uint32_t)v.mv_size, val_word(c, i, c->flip)) ?
		       0 : 1;
}

static int lmdb_op_get(struct ctx *c, uint64_t i)
{
	int rc;

	if (mdb_txn_renew(c->rtxn))
		return -1;
	rc = lmdb_get1(c, i, c->lbuf);
	mdb_txn_reset(c->rtxn);
	return rc;
}

/* MIX: each del+put is a write transaction of its own (visible at once,
 * as a libshf del+put is). */
static int lmdb_op_delput(struct ctx *c, uint64_t i)
{
	MDB_val k = { opt_klen, c->key }, v = { opt_vlen, c->val };
	int rc;

	key_make(c->key, i);
	val_make(c->val, val_word(c, i, c->flip));
	if (lmdb_wtxn_begin(c))
		return -1;
	rc = mdb_del(c->wtxn, c->dbi, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return -1;
	if (mdb_put(c->wtxn, c->dbi, &k, &v, 0) || lmdb_wtxn_commit(c))
		return -1;
	return rc == MDB_NOTFOUND ? 1 : 0;
}

/* BATCH: the keys of a batch in one read transaction. */
static int lmdb_op_batch(struct ctx *c, const uint64_t *ix, unsigned n)
{
	unsigned k;
	int rc, bad = 0;

	if (mdb_txn_renew(c->rtxn))
		return -1;
	for (k = 0; k < n; k++) {
		rc = lmdb_get1(c, ix[k], c->bbuf + (size_t)k * opt_vlen);
		if (rc < 0) {
			mdb_txn_reset(c->rtxn);
			return -1;
		}
		bad += rc;
	}
	mdb_txn_reset(c->rtxn);
	return bad;
}

static int lmdb_phase_end(struct ctx *c)
{
	return lmdb_wtxn_commit(c);
}

const struct store_ops lmdb_ops = {
	lmdb_op_put, lmdb_op_get, lmdb_op_delput, lmdb_op_upd, lmdb_op_batch,
	lmdb_phase_end
};

static size_t lmdb_mapsize(void)
{
	uint64_t m = opt_keys * (uint64_t)(opt_klen + opt_vlen + 64) * 3;

	m += 64ULL << 20;
	return (size_t)m;
}

static int lmdb_env_open(MDB_env **env)
{
	unsigned flags = MDB_NOSUBDIR | MDB_WRITEMAP | MDB_NOSYNC |
			 MDB_NOMETASYNC | MDB_NORDAHEAD | MDB_NOTLS;

	if (mdb_env_create(env))
		return -1;
	if (mdb_env_set_mapsize(*env, lmdb_mapsize()) ||
	    mdb_env_set_maxreaders(*env, opt_procs + 8) ||
	    mdb_env_open(*env, g_lmdb_path, flags, 0600)) {
		mdb_env_close(*env);
		*env = NULL;
		return -1;
	}
	return 0;
}

static int lmdb_dbi_open(MDB_env *env, MDB_dbi *dbi)
{
	MDB_txn *txn;

	if (mdb_txn_begin(env, NULL, 0, &txn))
		return -1;
	if (mdb_dbi_open(txn, NULL, 0, dbi)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) ? -1 : 0;
}

/* The environment and its database, made by the parent before the fork. */
int lmdb_store_create(void)
{
	MDB_env *env;
	MDB_dbi dbi;
	int rc;

	if (lmdb_env_open(&env))
		return -1;
	rc = lmdb_dbi_open(env, &dbi);
	mdb_env_close(env);
	return rc;
}

/* A worker's environment and read transaction (reset until used). */
int lmdb_ctx_open(struct ctx *c)
{
	c->lbuf = calloc(1, opt_vlen + 8);
	if (!c->lbuf || lmdb_env_open(&c->env) ||
	    lmdb_dbi_open(c->env, &c->dbi) ||
	    mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->rtxn))
		return -1;
	mdb_txn_reset(c->rtxn);
	return 0;
}

void lmdb_ctx_close(struct ctx *c)
{
	if (c->rtxn)
		mdb_txn_abort(c->rtxn);
	if (c->env)
		mdb_env_close(c->env);
}

#else /* !HAVE_LMDB */

const struct store_ops lmdb_ops = { NULL, NULL, NULL, NULL, NULL, NULL };

int lmdb_store_create(void)
{
	errno = ENOTSUP;
	return -1;
}

int lmdb_ctx_open(struct ctx *c)
{
	(void)c;
	return -1;
}

void lmdb_ctx_close(struct ctx *c)
{
	(void)c;
}

#endif /* HAVE_LMDB */
