/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shfmodule.c - shf._shf, the Python 3 module over libshf (see
 * libshf-python(7) and shf/_shf.pyi).
 *
 * Rules kept throughout:
 *  - Keys and values are bytes, str (as UTF-8) or any C-contiguous
 *    bytes-like object; values come back as bytes.
 *  - Every libshf call runs with the GIL released, since any of them may
 *    wait (a shard lock, a lease, another process).  libshf's results are
 *    thread-local, and a Python thread is one OS thread, so they are read
 *    after the GIL is taken back and before anything that can run Python
 *    code (only a bytes object is made first: that never runs the GC).
 *  - A Table counts the calls in flight (under the GIL): close() from one
 *    thread while another waits inside libshf detaches when the last call
 *    returns, never under it.
 *  - Nothing a caller passes can crash the interpreter: bad types raise
 *    TypeError, bad sizes and a closed table ValueError, libshf's errors
 *    OSError with errno, absent keys KeyError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shf.h"

/* The longest wait in one libshf call, so that signals (Ctrl-C) are seen. */
#define WAIT_SLICE_MS 500u
/* Largest duration in ms: libshf takes uint32_t, UINT32_MAX is special. */
#define MS_MAX (UINT32_MAX - 1u)
/* A batch's first guess at the bytes of one value, and at most in all. */
#define BATCH_VAL_GUESS 64u
#define BATCH_FIRST_MAX (16u << 20)

/* -------------------------------------------------------------- types */

typedef struct {
	PyObject_HEAD
	SHF *shf;
	PyObject *path; /* str, as given */
	PyObject *name; /* str */
	unsigned int busy; /* calls in flight (GIL released) */
	/* leases that its Lease objects hold: they are given up first */
	unsigned int leases;
	int closing; /* detach once busy and leases drop to 0 */
	/* get_many()'s buffer, reused while no other thread holds it */
	char *bbuf;
	size_t bbuf_cap;
	int bbuf_busy;
	uint32_t val_guess; /* average value size seen by get_many() */
	unsigned long fork_gen; /* the fork_gen busy counts calls of */
	PyObject *weakrefs;
} TableObject;

typedef struct {
	PyObject_HEAD
	TableObject *table;
	PyObject *key; /* bytes */
	PyObject *value; /* bytes or None */
	uint32_t uid;
	uint32_t lease_ms;
	uint32_t ttl_ms; /* of the fill; UINT32_MAX: the table's default */
	int found; /* the key had a value */
	int leased; /* this process holds the lease, not yet ended */
	int stored; /* the value given was stored */
	uint32_t grant; /* libshf's number of the grant (shf_lease_grant()) */
} LeaseObject;

static PyTypeObject Table_Type;
static PyTypeObject Lease_Type;

/* ------------------------------------------------------------ helpers */

/* A key or value as a pointer and a length that libshf takes. */
struct buf {
	const char *p;
	uint32_t len;
	int view_held;
	Py_buffer view;
};

static int buf_get(PyObject *o, struct buf *b, const char *what)
{
	Py_ssize_t n;

	b->view_held = 0;
	if (PyBytes_CheckExact(o)) {
		b->p = PyBytes_AS_STRING(o);
		n = PyBytes_GET_SIZE(o);
	} else if (PyUnicode_Check(o)) {
		/* cached in the str: lives as long as o */
		b->p = PyUnicode_AsUTF8AndSize(o, &n);
		if (!b->p)
			return -1;
	} else if (PyObject_CheckBuffer(o)) {
		/* a held view also stops a bytearray from being resized */
		if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0)
			return -1;
		b->view_held = 1;
		b->p = b->view.buf;
		n = b->view.len;
	} else {
		PyErr_Format(PyExc_TypeError,
			     "%s must be bytes, str or a bytes-like object, "
			     "not %.100s",
			     what, Py_TYPE(o)->tp_name);
		return -1;
	}
	if ((uint64_t)n > UINT32_MAX) {
		if (b->view_held)
			PyBuffer_Release(&b->view);
		b->view_held = 0;
		PyErr_Format(PyExc_ValueError,
			     "%s too long: %zd bytes (at most 4294967295)",
			     what, n);
		return -1;
	}
	b->len = (uint32_t)n;
	return 0;
}

static void buf_release(struct buf *b)
{
	if (b->view_held) {
		PyBuffer_Release(&b->view);
		b->view_held = 0;
	}
}

/* OSError (or its subclass for e: TimeoutError, FileNotFoundError...). */
static PyObject *set_errno(int e)
{
	errno = e ? e : EIO;
	return PyErr_SetFromErrno(PyExc_OSError);
}

/*
 * A libshf call's error result r (errno e): ValueError where a key or
 * value (what) is not of a fixed-length table's length (SHF_RET_BAD_VAL),
 * else OSError.  Returns NULL.
 */
static PyObject *ret_error(uint32_t r, int e, const char *what)
{
	if (r & SHF_RET_BAD_VAL) {
		PyErr_Format(PyExc_ValueError,
			     "the table has fixed lengths; this %s has another",
			     what);
		return NULL;
	}
	return set_errno(e);
}

static PyObject *closed_error(void)
{
	PyErr_SetString(PyExc_ValueError, "operation on a closed table");
	return NULL;
}

/*
 * fork(): bumped in the child.  A Table's count of calls in flight (and
 * its get_many() buffer's flag) counts calls of the parent's threads,
 * which are not in the child: there they start again from 0, else the
 * child's close() never detached and its unlink() was EBUSY for ever.
 */
static unsigned long fork_gen;

static void fork_child(void)
{
	fork_gen++;
}

static void fork_forget(TableObject *t)
{
	if (t->fork_gen != fork_gen) {
		t->fork_gen = fork_gen;
		t->busy = 0;
		t->bbuf_busy = 0;
	}
}

static int enter_lease(TableObject *t);

/* Before a call: the table is open, and stays attached until leave(). */
static int enter(TableObject *t)
{
	if (t->closing) {
		closed_error();
		return -1;
	}
	return enter_lease(t);
}

static void detach_now(TableObject *t)
{
	SHF *shf = t->shf;

	t->shf = NULL;
	t->closing = 0;
	if (shf)
		shf_detach(shf);
}

static void leave(TableObject *t)
{
	if (--t->busy == 0 && t->closing && !t->leases)
		detach_now(t);
}

/*
 * A call that gives up or fills a lease: allowed while the table closes
 * (the handle stays attached until its leases are given up, so that no
 * other process waits for a lease that nobody can end).
 */
static int enter_lease(TableObject *t)
{
	fork_forget(t);
	if (!t->shf) {
		closed_error();
		return -1;
	}
	t->busy++;
	return 0;
}

/* A bytes copy of key (for KeyError and Lease.key). */
static PyObject *key_bytes(PyObject *key, const struct buf *b)
{
	if (PyBytes_CheckExact(key)) {
		Py_INCREF(key);
		return key;
	}
	return PyBytes_FromStringAndSize(b->p, b->len);
}

static void key_error(PyObject *key)
{
	PyObject *t = PyTuple_Pack(1, key);

	/* KeyError(key), as dict raises it (a tuple key stays whole) */
	if (t) {
		PyErr_SetObject(PyExc_KeyError, t);
		Py_DECREF(t);
	}
}

/*
 * Parse vectorcall arguments: names[0..npos-1] may come by position, all
 * by keyword; the first nreq are required.  out[] gets borrowed references
 * or NULL.
 */
static int parse_args(const char *fname, PyObject *const *args,
		      Py_ssize_t nargs, PyObject *kwnames,
		      const char *const *names, int nnames, int npos,
		      int nreq, PyObject **out)
{
	Py_ssize_t i, nkw;
	int j;

	for (j = 0; j < nnames; j++)
		out[j] = NULL;
	if (nargs > npos) {
		PyErr_Format(PyExc_TypeError,
			     "%s() takes at most %d positional argument%s "
			     "(%zd given)",
			     fname, npos, npos == 1 ? "" : "s", nargs);
		return -1;
	}
	for (i = 0; i < nargs; i++)
		out[i] = args[i];
	nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	for (i = 0; i < nkw; i++) {
		PyObject *kw = PyTuple_GET_ITEM(kwnames, i);

		for (j = 0; j < nnames; j++)
			if (PyUnicode_CompareWithASCIIString(kw, names[j]) == 0)
				break;
		if (j == nnames) {
			PyErr_Format(PyExc_TypeError,
				     "%s() got an unexpected keyword argument "
				     "'%U'",
				     fname, kw);
			return -1;
		}
		if (out[j]) {
			PyErr_Format(PyExc_TypeError,
				     "%s() got multiple values for argument "
				     "'%s'",
				     fname, names[j]);
			return -1;
		}
		out[j] = args[nargs + i];
	}
	for (j = 0; j < nreq; j++) {
		if (!out[j]) {
			PyErr_Format(PyExc_TypeError,
				     "%s() missing required argument '%s'",
				     fname, names[j]);
			return -1;
		}
	}
	return 0;
}

/*
 * A duration given in seconds (s: int or float) or in milliseconds (ms:
 * int), not both; None is not given.  *given is 0 when neither was.
 * Seconds round up to the next millisecond, so that a short TTL never
 * becomes 0 ("never expires").
 */
static int duration_ms(PyObject *s, PyObject *ms, const char *name,
		       uint32_t *out, int *given)
{
	if (s == Py_None)
		s = NULL;
	if (ms == Py_None)
		ms = NULL;
	*given = s || ms;
	if (s && ms) {
		PyErr_Format(PyExc_TypeError,
			     "give %s (seconds) or %s_ms, not both", name,
			     name);
		return -1;
	}
	if (s) {
		double d;

		if (!PyFloat_Check(s) && !PyLong_Check(s)) {
			PyErr_Format(PyExc_TypeError,
				     "%s must be a number of seconds, not "
				     "%.100s",
				     name, Py_TYPE(s)->tp_name);
			return -1;
		}
		d = PyFloat_AsDouble(s);
		if (d == -1.0 && PyErr_Occurred())
			return -1;
		/* before ceil(): -0.0004 s would be -0.0 ms, "never expires" */
		d = d < 0.0 ? -1.0 : ceil(d * 1000.0);
		if (!(d >= 0.0 && d <= (double)MS_MAX)) {
			PyErr_Format(PyExc_ValueError,
				     "%s must be 0 to %u ms (about 49 days)",
				     name, MS_MAX);
			return -1;
		}
		*out = (uint32_t)d;
	} else if (ms) {
		long long v;
		int overflow;

		if (!PyLong_Check(ms)) {
			PyErr_Format(PyExc_TypeError,
				     "%s_ms must be an int, not %.100s", name,
				     Py_TYPE(ms)->tp_name);
			return -1;
		}
		v = PyLong_AsLongLongAndOverflow(ms, &overflow);
		if (v == -1 && PyErr_Occurred())
			return -1;
		if (overflow || v < 0 || v > (long long)MS_MAX) {
			PyErr_Format(PyExc_ValueError,
				     "%s_ms must be 0 to %u", name, MS_MAX);
			return -1;
		}
		*out = (uint32_t)v;
	}
	return 0;
}

/* A UID argument: an int in 0..2^32-1. */
static int uid_arg(PyObject *o, uint32_t *uid)
{
	unsigned long long v;
	int overflow;
	long long s;

	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "uid must be an int, not %.100s",
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	s = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (s == -1 && PyErr_Occurred())
		return -1;
	v = (unsigned long long)s;
	if (overflow || s < 0 || v > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError,
				"uid must be 0 to 4294967295");
		return -1;
	}
	*uid = (uint32_t)v;
	return 0;
}

static PyObject *ms_to_seconds(uint64_t ms)
{
	return PyFloat_FromDouble((double)ms / 1000.0);
}

/* ------------------------------------------------------- Table: life */

PyDoc_STRVAR(Table_doc,
"Table(path, name, *, create=True, delete_on_exit=False, ttl=None,\n"
"      ttl_ms=None, budget=None)\n"
"--\n"
"\n"
"A libshf hash table, the file <path>/<name>.shf, shared with every\n"
"process that attaches it.\n"
"\n"
"create=False attaches only an existing table (FileNotFoundError\n"
"otherwise).  delete_on_exit=True removes the table when this process\n"
"ends, however it ends (needs the shf-monitor helper).  ttl (seconds)\n"
"or ttl_ms sets the table's default time to live and budget its byte\n"
"budget (cache mode); both are stored in the table, for every process.\n"
"\n"
"A Table is a mutable mapping of bytes to bytes (str keys and values\n"
"are stored as UTF-8) that other processes change at the same time.");

static int set_cache(TableObject *t, int ttl_given, uint32_t ttl,
		     int budget_given, uint64_t budget);
static int budget_arg(PyObject *v, uint64_t *out);

static int table_attach(TableObject *t, PyObject *path, PyObject *name,
			int create, int delete_on_exit)
{
	PyObject *bpath = NULL, *bname = NULL;
	const char *n;
	Py_ssize_t nlen;
	SHF *shf;
	int e = 0;

	if (!PyUnicode_FSConverter(path, &bpath))
		return -1;
	if (!PyUnicode_Check(name)) {
		PyErr_Format(PyExc_TypeError, "name must be str, not %.100s",
			     Py_TYPE(name)->tp_name);
		goto fail;
	}
	if (!PyUnicode_FSConverter(name, &bname))
		goto fail;
	n = PyBytes_AS_STRING(bname);
	nlen = PyBytes_GET_SIZE(bname);
	/* libshf's EINVAL, said more precisely and as a ValueError */
	if (nlen < 1 || nlen > 200 || memchr(n, '/', (size_t)nlen) ||
	    n[0] == '.') {
		PyErr_SetString(PyExc_ValueError,
				"name must be 1 to 200 bytes, without '/' and "
				"not starting with '.'");
		goto fail;
	}
	if (PyBytes_GET_SIZE(bpath) < 1) {
		PyErr_SetString(PyExc_ValueError, "path must not be empty");
		goto fail;
	}
	Py_BEGIN_ALLOW_THREADS
	if (create)
		shf = shf_attach(PyBytes_AS_STRING(bpath), n,
				 delete_on_exit ? 1 : 0);
	else
		shf = shf_attach_existing(PyBytes_AS_STRING(bpath), n);
	if (!shf)
		e = errno;
	Py_END_ALLOW_THREADS
	if (!shf) {
		PyObject *file = PyUnicode_FromFormat(
			"%s/%s.shf", PyBytes_AS_STRING(bpath), n);

		errno = e ? e : EIO;
		if (errno == EINVAL)
			PyErr_Format(PyExc_ValueError, "bad table path %R",
				     file ? file : path);
		else
			PyErr_SetFromErrnoWithFilenameObject(
				PyExc_OSError, file ? file : path);
		Py_XDECREF(file);
		goto fail;
	}
	t->shf = shf;
	/* the path as str (it may have been bytes or a PathLike) */
	t->path = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(bpath),
						   PyBytes_GET_SIZE(bpath));
	if (!t->path)
		goto fail;
	Py_INCREF(name);
	t->name = name;
	Py_DECREF(bpath);
	Py_DECREF(bname);
	return 0;
fail:
	Py_XDECREF(bpath);
	Py_XDECREF(bname);
	return -1;
}

static PyObject *Table_new(PyTypeObject *type, PyObject *args,
			   PyObject *kwargs)
{
	static char *kwlist[] = { "path", "name", "create", "delete_on_exit",
				  "ttl", "ttl_ms", "budget", NULL };
	PyObject *path, *name, *ttl = Py_None, *ttl_ms = Py_None;
	PyObject *budget = Py_None;
	int create = 1, doe = 0, ttl_given;
	uint32_t ttl_v = 0;
	uint64_t budget_v = 0;
	TableObject *t;

	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$ppOOO:Table",
					 kwlist, &path, &name, &create, &doe,
					 &ttl, &ttl_ms, &budget))
		return NULL;
	/* every argument checked before a table is made */
	if (duration_ms(ttl, ttl_ms, "ttl", &ttl_v, &ttl_given) < 0)
		return NULL;
	if (budget != Py_None && budget_arg(budget, &budget_v) < 0)
		return NULL;
	t = (TableObject *)type->tp_alloc(type, 0);
	if (!t)
		return NULL;
	t->val_guess = BATCH_VAL_GUESS;
	if (table_attach(t, path, name, create, doe) < 0 ||
	    set_cache(t, ttl_given, ttl_v, budget != Py_None, budget_v) < 0) {
		Py_DECREF(t);
		return NULL;
	}
	return (PyObject *)t;
}

static void Table_dealloc(TableObject *t)
{
	if (t->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)t);
	/* no call can be in flight: each holds a reference to t */
	detach_now(t);
	free(t->bbuf);
	Py_CLEAR(t->path);
	Py_CLEAR(t->name);
	Py_TYPE(t)->tp_free((PyObject *)t);
}

PyDoc_STRVAR(attach_existing_doc,
"attach_existing(path, name)\n"
"--\n"
"\n"
"Attach the table <path>/<name>.shf only if it exists: Table(path,\n"
"name, create=False).  FileNotFoundError if it does not.");

static PyObject *Table_attach_existing(PyObject *cls, PyObject *const *args,
				       Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "path", "name" };
	PyObject *a[2];
	TableObject *t;

	if (parse_args("attach_existing", args, nargs, kwnames, names, 2, 2, 2,
		       a) < 0)
		return NULL;
	t = (TableObject *)((PyTypeObject *)cls)->tp_alloc(
		(PyTypeObject *)cls, 0);
	if (!t)
		return NULL;
	t->val_guess = BATCH_VAL_GUESS;
	if (table_attach(t, a[0], a[1], 0, 0) < 0) {
		Py_DECREF(t);
		return NULL;
	}
	return (PyObject *)t;
}

PyDoc_STRVAR(close_doc,
"close($self, /)\n"
"--\n"
"\n"
"Detach from the table (which stays for the other processes).  Calls\n"
"that other threads are making finish first, and leases that Lease\n"
"objects hold through it are given up first (when their with-block ends,\n"
"they are put or released, or they go): nothing is stored through a\n"
"closed table.  Closing twice is allowed.");

static PyObject *Table_close(TableObject *t, PyObject *unused)
{
	(void)unused;
	fork_forget(t);
	if (t->shf) {
		if (t->busy || t->leases)
			t->closing = 1; /* the last call, or lease, detaches */
		else
			detach_now(t);
	}
	Py_RETURN_NONE;
}

PyDoc_STRVAR(unlink_doc,
"unlink($self, /)\n"
"--\n"
"\n"
"Remove the table's file and close this handle.  Processes still\n"
"attached keep their mapping until they close it.  Returns libshf's\n"
"note of what was removed.  OSError (EBUSY) while another thread of this\n"
"process is inside a call on the table, or a Lease holds a lease through\n"
"it (release or fill it first).");

static PyObject *Table_unlink(TableObject *t, PyObject *unused)
{
	SHF *shf = t->shf;
	char *what;
	PyObject *r;
	int e = 0;

	(void)unused;
	fork_forget(t);
	if (!shf || t->closing)
		return closed_error();
	/* calls in flight, or leases that Lease objects hold (their
	 * waiters would wait out the lease time) */
	if (t->busy || t->leases)
		return set_errno(EBUSY);
	t->shf = NULL;
	Py_BEGIN_ALLOW_THREADS
	what = shf_del(shf); /* detaches in every case */
	if (!what)
		e = errno;
	Py_END_ALLOW_THREADS
	if (!what)
		return set_errno(e);
	r = PyUnicode_DecodeFSDefault(what);
	free(what);
	return r;
}

static PyObject *Table_enter(TableObject *t, PyObject *unused)
{
	(void)unused;
	if (!t->shf || t->closing)
		return closed_error();
	Py_INCREF(t);
	return (PyObject *)t;
}

static PyObject *Table_exit(TableObject *t, PyObject *args)
{
	(void)args;
	return Table_close(t, NULL);
}

static PyObject *Table_reduce(TableObject *t, PyObject *unused)
{
	PyObject *f, *r;

	(void)unused;
	if (!t->shf || t->closing)
		return closed_error();
	/* a process that unpickles it (spawn) attaches the same table */
	f = PyObject_GetAttrString((PyObject *)Py_TYPE(t), "attach_existing");
	if (!f)
		return NULL;
	r = Py_BuildValue("N(OO)", f, t->path, t->name);
	return r;
}

static PyObject *Table_repr(TableObject *t)
{
	if (!t->path)
		return PyUnicode_FromString("<shf.Table (not attached)>");
	return PyUnicode_FromFormat("<shf.Table '%U/%U.shf'%s>", t->path,
				    t->name,
				    t->shf && !t->closing ? "" : " closed");
}

static PyObject *Table_get_closed(TableObject *t, void *c)
{
	(void)c;
	return PyBool_FromLong(!t->shf || t->closing);
}

static PyObject *Table_get_path(TableObject *t, void *c)
{
	(void)c;
	if (!t->path)
		Py_RETURN_NONE;
	Py_INCREF(t->path);
	return t->path;
}

static PyObject *Table_get_name(TableObject *t, void *c)
{
	(void)c;
	if (!t->name)
		Py_RETURN_NONE;
	Py_INCREF(t->name);
	return t->name;
}

/* ---------------------------------------------------- Table: mapping */

/*
 * get: KEY_FOUND gives a new bytes, KEY_NONE NULL without an exception,
 * an error NULL with one.
 */
static PyObject *do_get(TableObject *t, PyObject *key)
{
	PyObject *v = NULL;
	struct buf k;
	uint32_t r;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return NULL;
	if (enter(t) < 0) {
		buf_release(&k);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_get_key_val_copy(t->shf);
	e = errno;
	Py_END_ALLOW_THREADS
	/* the thread's value, before a buffer's release can run Python
	 * code (3.12's __release_buffer__) that calls the table again */
	if (r & SHF_RET_KEY_FOUND)
		v = PyBytes_FromStringAndSize(shf_val, shf_val_len);
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_KEY_FOUND)
		return v;
	if (r & SHF_RET_ERROR)
		return set_errno(e);
	return NULL;
}

static PyObject *Table_subscript(TableObject *t, PyObject *key)
{
	PyObject *v = do_get(t, key);

	if (!v && !PyErr_Occurred())
		key_error(key);
	return v;
}

/* put variants: flags of the call, or UINT32_MAX with an exception. */
enum put_how { PUT, PUT_TTL, PUT_IF_ABSENT, PUT_REPLACE };

static uint32_t do_put(TableObject *t, PyObject *key, PyObject *val,
		       enum put_how how, uint32_t ttl, uint32_t *uid)
{
	struct buf k, v;
	uint32_t r;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return UINT32_MAX;
	if (buf_get(val, &v, "value") < 0) {
		buf_release(&k);
		return UINT32_MAX;
	}
	if (enter(t) < 0) {
		buf_release(&k);
		buf_release(&v);
		return UINT32_MAX;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	switch (how) {
	case PUT:
		r = shf_put_key_val(t->shf, v.p, v.len);
		break;
	case PUT_TTL:
		r = shf_put_key_val_ttl(t->shf, v.p, v.len, ttl);
		break;
	case PUT_IF_ABSENT:
		r = shf_put_key_val_if_absent(t->shf, v.p, v.len);
		break;
	default:
		r = shf_replace_key_val(t->shf, v.p, v.len);
		break;
	}
	e = errno;
	Py_END_ALLOW_THREADS
	if (uid)
		*uid = shf_uid;
	leave(t);
	buf_release(&k);
	buf_release(&v);
	if (r & SHF_RET_ERROR) {
		ret_error(r, e, "key or value");
		return UINT32_MAX;
	}
	return r;
}

static uint32_t do_del(TableObject *t, PyObject *key)
{
	struct buf k;
	uint32_t r;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return UINT32_MAX;
	if (enter(t) < 0) {
		buf_release(&k);
		return UINT32_MAX;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_del_key_val(t->shf);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return UINT32_MAX;
	}
	return r;
}

static int Table_ass_subscript(TableObject *t, PyObject *key, PyObject *val)
{
	uint32_t r;

	if (!val) {
		r = do_del(t, key);
		if (r == UINT32_MAX)
			return -1;
		if (!(r & SHF_RET_KEY_FOUND)) {
			key_error(key);
			return -1;
		}
		return 0;
	}
	return do_put(t, key, val, PUT, 0, NULL) == UINT32_MAX ? -1 : 0;
}

static int Table_contains(TableObject *t, PyObject *key)
{
	struct buf k;
	uint32_t r;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return -1;
	if (enter(t) < 0) {
		buf_release(&k);
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	/* no copy: only whether it is there */
	r = shf_get_key_val_addr(t->shf);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return -1;
	}
	return (r & SHF_RET_KEY_FOUND) != 0;
}

static int get_stats(TableObject *t, struct shf_stats *st)
{
	uint32_t r;
	int e = 0;

	if (enter(t) < 0)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	r = shf_get_stats(t->shf, st, sizeof(*st));
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return -1;
	}
	return 0;
}

static Py_ssize_t Table_length(TableObject *t)
{
	struct shf_stats st;

	if (get_stats(t, &st) < 0)
		return -1;
	return st.keys > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)st.keys;
}

/* ------------------------------------------------- Table: iteration */

/* What shf_iterate() saw, gathered without the GIL: [klen key vlen val]. */
struct coll {
	char *p;
	size_t len, cap;
	size_t n;
	int want_val;
	int oom;
};

static int coll_put(struct coll *c, const void *src, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *p;

		while (cap < c->len + n)
			cap *= 2;
		p = realloc(c->p, cap);
		if (!p)
			return -1;
		c->p = p;
		c->cap = cap;
	}
	memcpy(c->p + c->len, src, n);
	c->len += n;
	return 0;
}

static int coll_cb(const char *key, uint32_t klen, const char *val,
		   uint32_t vlen, uint32_t uid, void *arg)
{
	struct coll *c = arg;

	(void)uid;
	if (coll_put(c, &klen, sizeof(klen)) < 0 || coll_put(c, key, klen) < 0)
		goto oom;
	if (c->want_val && (coll_put(c, &vlen, sizeof(vlen)) < 0 ||
			    coll_put(c, val, vlen) < 0))
		goto oom;
	c->n++;
	return 0;
oom:
	c->oom = 1;
	return 1;
}

enum snap { SNAP_KEYS, SNAP_VALUES, SNAP_ITEMS };

/* A list of the keys, values or (key, value) pairs, walked by shf_iterate. */
static PyObject *snapshot(TableObject *t, enum snap what)
{
	struct coll c = { 0 };
	PyObject *list = NULL;
	uint32_t r;
	size_t i, off = 0;
	int e = 0;

	c.want_val = what != SNAP_KEYS;
	if (enter(t) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = shf_iterate(t->shf, coll_cb, &c);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (c.oom) {
		PyErr_NoMemory();
		goto out;
	}
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		goto out;
	}
	if (c.n > PY_SSIZE_T_MAX) {
		PyErr_NoMemory();
		goto out;
	}
	list = PyList_New((Py_ssize_t)c.n);
	if (!list)
		goto out;
	for (i = 0; i < c.n; i++) {
		PyObject *k = NULL, *v = NULL, *item;
		uint32_t len;

		memcpy(&len, c.p + off, sizeof(len));
		off += sizeof(len);
		if (what != SNAP_VALUES) {
			k = PyBytes_FromStringAndSize(c.p + off, len);
			if (!k)
				goto fail;
		}
		off += len;
		if (what != SNAP_KEYS) {
			memcpy(&len, c.p + off, sizeof(len));
			off += sizeof(len);
			v = PyBytes_FromStringAndSize(c.p + off, len);
			if (!v) {
				Py_XDECREF(k);
				goto fail;
			}
			off += len;
		}
		if (what == SNAP_ITEMS) {
			item = PyTuple_Pack(2, k, v);
			Py_DECREF(k);
			Py_DECREF(v);
			if (!item)
				goto fail;
		} else {
			item = k ? k : v;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, item);
	}
	goto out;
fail:
	Py_CLEAR(list);
out:
	free(c.p);
	return list;
}

static PyObject *Table_iter(TableObject *t)
{
	PyObject *keys = snapshot(t, SNAP_KEYS), *it;

	if (!keys)
		return NULL;
	it = PyObject_GetIter(keys);
	Py_DECREF(keys);
	return it;
}

PyDoc_STRVAR(keys_doc,
"keys($self, /)\n"
"--\n"
"\n"
"A list of the keys, taken by one walk of the table (shf_iterate):\n"
"every key that lives through the walk is in it exactly once; keys put\n"
"or deleted by others meanwhile may or may not be.  No order.");

static PyObject *Table_keys(TableObject *t, PyObject *unused)
{
	(void)unused;
	return snapshot(t, SNAP_KEYS);
}

PyDoc_STRVAR(values_doc,
"values($self, /)\n"
"--\n"
"\n"
"A list of the values, taken by one walk as keys() is.");

static PyObject *Table_values(TableObject *t, PyObject *unused)
{
	(void)unused;
	return snapshot(t, SNAP_VALUES);
}

PyDoc_STRVAR(items_doc,
"items($self, /)\n"
"--\n"
"\n"
"A list of (key, value) pairs, taken by one walk as keys() is; each\n"
"value is one the key had during the walk.");

static PyObject *Table_items(TableObject *t, PyObject *unused)
{
	(void)unused;
	return snapshot(t, SNAP_ITEMS);
}

/* ---------------------------------------------- Table: get, put, ... */

PyDoc_STRVAR(get_doc,
"get($self, key, default=None, /)\n"
"--\n"
"\n"
"The value of key, or default if it is absent.");

static PyObject *Table_get(TableObject *t, PyObject *const *args,
			   Py_ssize_t nargs)
{
	PyObject *v;

	if (nargs < 1 || nargs > 2) {
		PyErr_Format(PyExc_TypeError,
			     "get() takes 1 or 2 arguments (%zd given)", nargs);
		return NULL;
	}
	v = do_get(t, args[0]);
	if (v || PyErr_Occurred())
		return v;
	v = nargs > 1 ? args[1] : Py_None;
	Py_INCREF(v);
	return v;
}

PyDoc_STRVAR(put_doc,
"put($self, key, value, /, *, ttl=None, ttl_ms=None)\n"
"--\n"
"\n"
"Store value under key (replacing the value of an existing key, which\n"
"keeps its UID) and return the key's UID.  ttl (seconds) or ttl_ms: the\n"
"key expires that long from now, 0 never; by default the table's\n"
"default TTL applies (t[key] = value is put() without a TTL).");

static PyObject *Table_put(TableObject *t, PyObject *const *args,
			   Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "key", "value", "ttl", "ttl_ms" };
	PyObject *a[4];
	uint32_t ttl = 0, uid = SHF_UID_NONE;
	int given;

	if (parse_args("put", args, nargs, kwnames, names, 4, 2, 2, a) < 0)
		return NULL;
	if (duration_ms(a[2], a[3], "ttl", &ttl, &given) < 0)
		return NULL;
	if (do_put(t, a[0], a[1], given ? PUT_TTL : PUT, ttl, &uid) ==
	    UINT32_MAX)
		return NULL;
	return PyLong_FromUnsignedLong(uid);
}

PyDoc_STRVAR(put_if_absent_doc,
"put_if_absent($self, key, value, /)\n"
"--\n"
"\n"
"Store value only if key is absent.  True if it was stored, False if\n"
"the key had a value (left as it was).");

static PyObject *Table_put_if_absent(TableObject *t, PyObject *const *args,
				     Py_ssize_t nargs)
{
	uint32_t r;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError,
			     "put_if_absent() takes 2 arguments (%zd given)",
			     nargs);
		return NULL;
	}
	r = do_put(t, args[0], args[1], PUT_IF_ABSENT, 0, NULL);
	if (r == UINT32_MAX)
		return NULL;
	return PyBool_FromLong((r & SHF_RET_KEY_PUT) != 0);
}

PyDoc_STRVAR(setdefault_doc,
"setdefault($self, key, default, /)\n"
"--\n"
"\n"
"The value of key; if it is absent, store default first (atomically:\n"
"of processes racing to set it, one wins and all return its value).");

static PyObject *Table_setdefault(TableObject *t, PyObject *const *args,
				  Py_ssize_t nargs)
{
	int tries;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError,
			     "setdefault() takes 2 arguments (%zd given)",
			     nargs);
		return NULL;
	}
	/* a key deleted between the two calls: try again */
	for (tries = 0; tries < 100; tries++) {
		PyObject *v;
		uint32_t r = do_put(t, args[0], args[1], PUT_IF_ABSENT, 0,
				    NULL);

		if (r == UINT32_MAX)
			return NULL;
		if (r & SHF_RET_KEY_PUT) {
			/* what was stored, as bytes */
			struct buf b;

			if (PyBytes_CheckExact(args[1])) {
				Py_INCREF(args[1]);
				return args[1];
			}
			if (buf_get(args[1], &b, "value") < 0)
				return NULL;
			v = PyBytes_FromStringAndSize(b.p, b.len);
			buf_release(&b);
			return v;
		}
		v = do_get(t, args[0]);
		if (v || PyErr_Occurred())
			return v;
	}
	return set_errno(EAGAIN);
}

PyDoc_STRVAR(replace_doc,
"replace($self, key, value, /)\n"
"--\n"
"\n"
"Store value only if key has one.  True if it was replaced, False if\n"
"the key is absent (nothing stored).");

static PyObject *Table_replace(TableObject *t, PyObject *const *args,
			       Py_ssize_t nargs)
{
	uint32_t r;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError,
			     "replace() takes 2 arguments (%zd given)", nargs);
		return NULL;
	}
	r = do_put(t, args[0], args[1], PUT_REPLACE, 0, NULL);
	if (r == UINT32_MAX)
		return NULL;
	return PyBool_FromLong((r & SHF_RET_KEY_PUT) != 0);
}

PyDoc_STRVAR(cas_doc,
"cas($self, key, old, new, /)\n"
"--\n"
"\n"
"Compare and swap: store new only if the value of key is old, in one\n"
"atomic step.  old=None means \"only if absent\".  True if new was\n"
"stored; False if the value differs or the key is absent.");

static PyObject *Table_cas(TableObject *t, PyObject *const *args,
			   Py_ssize_t nargs)
{
	struct buf k, o, v;
	uint32_t r;
	int e = 0;

	if (nargs != 3) {
		PyErr_Format(PyExc_TypeError,
			     "cas() takes 3 arguments (%zd given)", nargs);
		return NULL;
	}
	if (args[1] == Py_None) {
		r = do_put(t, args[0], args[2], PUT_IF_ABSENT, 0, NULL);
		if (r == UINT32_MAX)
			return NULL;
		return PyBool_FromLong((r & SHF_RET_KEY_PUT) != 0);
	}
	if (buf_get(args[0], &k, "key") < 0)
		return NULL;
	if (buf_get(args[1], &o, "old") < 0) {
		buf_release(&k);
		return NULL;
	}
	if (buf_get(args[2], &v, "new") < 0) {
		buf_release(&k);
		buf_release(&o);
		return NULL;
	}
	if (enter(t) < 0) {
		r = UINT32_MAX;
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_cas_key_val(t->shf, o.p, o.len, v.p, v.len);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r & SHF_RET_ERROR) {
		ret_error(r, e, "key or value");
		r = UINT32_MAX;
	}
out:
	buf_release(&k);
	buf_release(&o);
	buf_release(&v);
	if (r == UINT32_MAX)
		return NULL;
	return PyBool_FromLong((r & SHF_RET_KEY_PUT) != 0);
}

PyDoc_STRVAR(delete_doc,
"delete($self, key, /)\n"
"--\n"
"\n"
"Delete key.  True if it was there, False if not (del t[key] raises\n"
"KeyError instead).");

static PyObject *Table_delete(TableObject *t, PyObject *key)
{
	uint32_t r = do_del(t, key);

	if (r == UINT32_MAX)
		return NULL;
	return PyBool_FromLong((r & SHF_RET_KEY_FOUND) != 0);
}

PyDoc_STRVAR(add_doc,
"add($self, key, delta=1, /)\n"
"--\n"
"\n"
"Atomic counter: add delta to the value of key, a signed 64-bit integer\n"
"in native byte order (8 bytes, struct format '=q'), and return the\n"
"sum.  An absent key is created with the value delta; a sum of 0\n"
"deletes the key (so add(key, 0) reads a counter, 0 if absent).\n"
"ValueError if the value is not 8 bytes long.");

static PyObject *Table_add(TableObject *t, PyObject *const *args,
			   Py_ssize_t nargs)
{
	struct buf k;
	long delta = 1, sum;
	uint32_t r;
	int e = 0;

	if (nargs < 1 || nargs > 2) {
		PyErr_Format(PyExc_TypeError,
			     "add() takes 1 or 2 arguments (%zd given)", nargs);
		return NULL;
	}
	if (nargs > 1) {
		if (!PyLong_Check(args[1])) {
			PyErr_Format(PyExc_TypeError,
				     "delta must be an int, not %.100s",
				     Py_TYPE(args[1])->tp_name);
			return NULL;
		}
		delta = PyLong_AsLong(args[1]);
		if (delta == -1 && PyErr_Occurred())
			return NULL;
	}
	if (buf_get(args[0], &k, "key") < 0)
		return NULL;
	if (enter(t) < 0) {
		buf_release(&k);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_add_key_val(t->shf, delta);
	e = errno;
	sum = shf_val_long;
	Py_END_ALLOW_THREADS
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_BAD_VAL) {
		PyErr_SetString(PyExc_ValueError,
				"the value is not an 8-byte counter");
		return NULL;
	}
	if (r & SHF_RET_ERROR)
		return set_errno(e);
	if (!(r & SHF_RET_KEY_FOUND)) /* add 0 to an absent key */
		sum = 0;
	return PyLong_FromLong(sum);
}

PyDoc_STRVAR(ttl_doc,
"ttl($self, key, /)\n"
"--\n"
"\n"
"Seconds key has left to live (a float), or None if it never expires.\n"
"KeyError if it is absent.");

static PyObject *Table_ttl(TableObject *t, PyObject *key)
{
	struct buf k;
	uint32_t r;
	long left;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return NULL;
	if (enter(t) < 0) {
		buf_release(&k);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_get_key_ttl(t->shf);
	e = errno;
	left = shf_val_long;
	Py_END_ALLOW_THREADS
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_ERROR)
		return set_errno(e);
	if (!(r & SHF_RET_KEY_FOUND)) {
		key_error(key);
		return NULL;
	}
	if (left < 0)
		Py_RETURN_NONE;
	return ms_to_seconds((uint64_t)left);
}

/* ---------------------------------------------------- Table: UIDs */

PyDoc_STRVAR(uid_doc,
"uid($self, key, /)\n"
"--\n"
"\n"
"The UID of key: a 32-bit int, stable for the key's life (a put that\n"
"replaces its value keeps it).  KeyError if the key is absent.");

static PyObject *Table_uid(TableObject *t, PyObject *key)
{
	struct buf k;
	uint32_t r, uid;
	int e = 0;

	if (buf_get(key, &k, "key") < 0)
		return NULL;
	if (enter(t) < 0) {
		buf_release(&k);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k.p, k.len);
	r = shf_get_key_val_addr(t->shf); /* sets shf_uid, copies nothing */
	e = errno;
	uid = shf_uid;
	Py_END_ALLOW_THREADS
	leave(t);
	buf_release(&k);
	if (r & SHF_RET_ERROR)
		return set_errno(e);
	if (!(r & SHF_RET_KEY_FOUND)) {
		key_error(key);
		return NULL;
	}
	return PyLong_FromUnsignedLong(uid);
}

enum uid_op { UID_VAL, UID_KEY, UID_DEL };

static PyObject *uid_call(TableObject *t, PyObject *const *args,
			  Py_ssize_t nargs, enum uid_op op, const char *fname)
{
	uint32_t uid, r;
	int e = 0;
	PyObject *dflt = Py_None;

	if (nargs < 1 || nargs > (op == UID_DEL ? 1 : 2)) {
		PyErr_Format(PyExc_TypeError, "%s() takes %s (%zd given)",
			     fname,
			     op == UID_DEL ? "1 argument" : "1 or 2 arguments",
			     nargs);
		return NULL;
	}
	if (nargs > 1)
		dflt = args[1];
	if (uid_arg(args[0], &uid) < 0)
		return NULL;
	if (enter(t) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	if (op == UID_VAL)
		r = shf_get_uid_val_copy(t->shf, uid);
	else if (op == UID_KEY)
		r = shf_get_uid_key_copy(t->shf, uid);
	else
		r = shf_del_uid_val(t->shf, uid);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r & SHF_RET_ERROR)
		return set_errno(e);
	if (op == UID_DEL)
		return PyBool_FromLong((r & SHF_RET_KEY_FOUND) != 0);
	if (r & SHF_RET_KEY_FOUND)
		return op == UID_VAL ?
			       PyBytes_FromStringAndSize(shf_val, shf_val_len) :
			       PyBytes_FromStringAndSize(shf_key, shf_key_len);
	Py_INCREF(dflt);
	return dflt;
}

PyDoc_STRVAR(get_uid_doc,
"get_uid($self, uid, default=None, /)\n"
"--\n"
"\n"
"The value of the key whose UID is uid, or default if there is none.");

static PyObject *Table_get_uid(TableObject *t, PyObject *const *args,
			       Py_ssize_t nargs)
{
	return uid_call(t, args, nargs, UID_VAL, "get_uid");
}

PyDoc_STRVAR(get_uid_key_doc,
"get_uid_key($self, uid, default=None, /)\n"
"--\n"
"\n"
"The key whose UID is uid, or default if there is none.");

static PyObject *Table_get_uid_key(TableObject *t, PyObject *const *args,
				   Py_ssize_t nargs)
{
	return uid_call(t, args, nargs, UID_KEY, "get_uid_key");
}

PyDoc_STRVAR(del_uid_doc,
"del_uid($self, uid, /)\n"
"--\n"
"\n"
"Delete the key whose UID is uid.  True if there was one.");

static PyObject *Table_del_uid(TableObject *t, PyObject *const *args,
			       Py_ssize_t nargs)
{
	return uid_call(t, args, nargs, UID_DEL, "del_uid");
}

/* ---------------------------------------------- Table: batched get */

/* A block of n slots of each array, then the values' buffer. */
struct batch {
	const char **keys;
	uint32_t *klens;
	uint64_t *offs;
	uint32_t *lens;
	uint32_t *idx; /* the slot's index in the caller's sequence */
	char *vals;
	uint64_t vals_size;
	char *block;
	int own; /* block is malloc()ed for this call */
	int claimed; /* block is the table's bbuf */
};

static int batch_alloc(TableObject *t, struct batch *b, size_t n,
		       uint64_t vals_size)
{
	size_t per = sizeof(char *) + sizeof(uint64_t) + 3 * sizeof(uint32_t);
	size_t need;
	char *p;

	if (n > (SIZE_MAX - 64 - vals_size) / per) {
		PyErr_NoMemory();
		return -1;
	}
	need = n * per + vals_size + 64;
	if (!b->own && !b->claimed) {
		if (!t->bbuf_busy) {
			b->claimed = 1;
			t->bbuf_busy = 1;
		} else {
			b->own = 1; /* another thread has the table's */
		}
	}
	if (b->own) {
		p = realloc(b->block, need);
		if (!p) {
			PyErr_NoMemory();
			return -1;
		}
		b->block = p;
	} else {
		if (t->bbuf_cap < need) {
			p = realloc(t->bbuf, need);
			if (!p) {
				PyErr_NoMemory();
				return -1;
			}
			t->bbuf = p;
			t->bbuf_cap = need;
		}
		b->block = t->bbuf;
	}
	p = b->block;
	b->offs = (uint64_t *)p;
	p += n * sizeof(uint64_t);
	b->keys = (const char **)p;
	p += n * sizeof(char *);
	b->klens = (uint32_t *)p;
	p += n * sizeof(uint32_t);
	b->lens = (uint32_t *)p;
	p += n * sizeof(uint32_t);
	b->idx = (uint32_t *)p;
	p += n * sizeof(uint32_t);
	b->vals = p;
	b->vals_size = vals_size;
	return 0;
}

static void batch_free(TableObject *t, struct batch *b)
{
	if (b->own)
		free(b->block);
	if (b->claimed)
		t->bbuf_busy = 0;
	b->block = NULL;
	b->own = b->claimed = 0;
}

PyDoc_STRVAR(get_many_doc,
"get_many($self, keys, default=None, /)\n"
"--\n"
"\n"
"A list of the values of keys (any iterable of keys), default for each\n"
"absent one: one libshf call (shf_get_key_val_copy_batch) looks them up,\n"
"overlapping their memory misses.  Each value is one the key had during\n"
"the call; the batch as a whole is not a snapshot.");

static PyObject *Table_get_many(TableObject *t, PyObject *const *args,
				Py_ssize_t nargs)
{
	PyObject *seq = NULL, *out = NULL, *dflt = Py_None, *conv = NULL;
	struct batch b = { 0 };
	Py_ssize_t n, i;
	uint32_t todo, ret, j, next;
	uint64_t used = 0, found = 0, size;
	int e = 0, entered = 0;

	if (nargs < 1 || nargs > 2) {
		PyErr_Format(PyExc_TypeError,
			     "get_many() takes 1 or 2 arguments (%zd given)",
			     nargs);
		return NULL;
	}
	if (nargs > 1)
		dflt = args[1];
	/* a tuple: the keys stay alive and unchanged without the GIL */
	if (PyTuple_CheckExact(args[0])) {
		seq = args[0];
		Py_INCREF(seq);
	} else {
		seq = PySequence_Tuple(args[0]);
		if (!seq)
			return NULL;
	}
	n = PyTuple_GET_SIZE(seq);
	if ((uint64_t)n >= UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "too many keys");
		goto out;
	}
	out = PyList_New(n);
	if (!out || n == 0)
		goto out;
	size = (uint64_t)n * (t->val_guess + 8u);
	if (batch_alloc(t, &b, (size_t)n,
			size > BATCH_FIRST_MAX ? BATCH_FIRST_MAX : size) < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		PyObject *k = PyTuple_GET_ITEM(seq, i);
		Py_ssize_t klen;

		if (PyBytes_CheckExact(k)) {
			b.keys[i] = PyBytes_AS_STRING(k);
			klen = PyBytes_GET_SIZE(k);
		} else if (PyUnicode_Check(k)) {
			b.keys[i] = PyUnicode_AsUTF8AndSize(k, &klen);
			if (!b.keys[i])
				goto fail;
		} else {
			/* any other bytes-like: a bytes copy, kept in conv */
			struct buf kb;
			PyObject *c;

			if (buf_get(k, &kb, "key") < 0)
				goto fail;
			c = PyBytes_FromStringAndSize(kb.p, kb.len);
			buf_release(&kb);
			if (!c)
				goto fail;
			if (!conv)
				conv = PyList_New(0);
			if (!conv || PyList_Append(conv, c) < 0) {
				Py_DECREF(c);
				goto fail;
			}
			Py_DECREF(c);
			b.keys[i] = PyBytes_AS_STRING(c);
			klen = PyBytes_GET_SIZE(c);
		}
		if ((uint64_t)klen > UINT32_MAX) {
			PyErr_Format(PyExc_ValueError,
				     "key too long: %zd bytes (at most "
				     "4294967295)",
				     klen);
			goto fail;
		}
		b.klens[i] = (uint32_t)klen;
		b.idx[i] = (uint32_t)i;
	}
	if (enter(t) < 0)
		goto fail;
	entered = 1;
	/*
	 * Values that do not fit come back as UINT32_MAX - 1: the rest are
	 * taken, and those are asked again with more room, until none is
	 * left (each pass at least doubles the room).  batch_alloc() keeps
	 * the arrays where they were for the same n, and realloc() their
	 * bytes, so the keys left (compacted to the front) carry over.
	 */
	for (todo = (uint32_t)n;;) {
		Py_BEGIN_ALLOW_THREADS
		ret = shf_get_key_val_copy_batch(t->shf, todo, b.keys, b.klens,
						 b.vals, b.vals_size, b.offs,
						 b.lens, NULL);
		e = errno;
		Py_END_ALLOW_THREADS
		if (ret == UINT32_MAX && e != ENOBUFS) {
			set_errno(e);
			goto fail;
		}
		next = 0;
		for (j = 0; j < todo; j++) {
			PyObject *v;

			if (b.lens[j] == UINT32_MAX - 1) {
				/* compact the ones left to the front */
				b.keys[next] = b.keys[j];
				b.klens[next] = b.klens[j];
				b.idx[next] = b.idx[j];
				next++;
				continue;
			}
			if (b.lens[j] == UINT32_MAX) {
				v = dflt;
				Py_INCREF(v);
			} else {
				v = PyBytes_FromStringAndSize(
					b.vals + b.offs[j], b.lens[j]);
				if (!v)
					goto fail;
				used += b.lens[j];
				found++;
			}
			PyList_SET_ITEM(out, b.idx[j], v);
		}
		if (!next)
			break;
		todo = next;
		size = b.vals_size * 2;
		if (size < (uint64_t)todo * 64)
			size = (uint64_t)todo * 64;
		if (batch_alloc(t, &b, (size_t)n, size) < 0)
			goto fail;
	}
	/* the next call's first guess: this one's average value */
	if (found) {
		uint64_t avg = used / found + 1;

		t->val_guess = avg > (1u << 20) ? (1u << 20) : (uint32_t)avg;
	}
	goto out;
fail:
	Py_CLEAR(out);
out:
	if (entered)
		leave(t);
	batch_free(t, &b);
	Py_XDECREF(conv);
	Py_XDECREF(seq);
	return out;
}

/* -------------------------------------------------- Table: the rest */

PyDoc_STRVAR(update_doc,
"update($self, other=(), /)\n"
"--\n"
"\n"
"Put every (key, value) of other: a mapping, or an iterable of pairs.");

static PyObject *Table_update(TableObject *t, PyObject *const *args,
			      Py_ssize_t nargs)
{
	PyObject *items, *it, *pair;

	if (nargs > 1) {
		PyErr_Format(PyExc_TypeError,
			     "update() takes at most 1 argument (%zd given)",
			     nargs);
		return NULL;
	}
	if (nargs == 0)
		Py_RETURN_NONE;
	if (PyDict_Check(args[0])) {
		/* a copy: the dict may change while the GIL is released */
		items = PyDict_Items(args[0]);
		if (!items)
			return NULL;
	} else if (PyObject_HasAttrString(args[0], "keys")) {
		items = PyMapping_Items(args[0]);
		if (!items)
			return NULL;
	} else {
		items = args[0];
		Py_INCREF(items);
	}
	it = PyObject_GetIter(items);
	Py_DECREF(items);
	if (!it)
		return NULL;
	while ((pair = PyIter_Next(it))) {
		PyObject *kv = PySequence_Tuple(pair);
		uint32_t r;

		Py_DECREF(pair);
		if (!kv)
			goto fail;
		if (PyTuple_GET_SIZE(kv) != 2) {
			PyErr_SetString(PyExc_ValueError,
					"update() needs (key, value) pairs");
			Py_DECREF(kv);
			goto fail;
		}
		r = do_put(t, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1),
			   PUT, 0, NULL);
		Py_DECREF(kv);
		if (r == UINT32_MAX)
			goto fail;
	}
	if (PyErr_Occurred())
		goto fail;
	Py_DECREF(it);
	Py_RETURN_NONE;
fail:
	Py_DECREF(it);
	return NULL;
}

PyDoc_STRVAR(clear_doc,
"clear($self, /)\n"
"--\n"
"\n"
"Delete every key that one walk of the table sees (keys put by others\n"
"meanwhile may survive).");

static PyObject *Table_clear(TableObject *t, PyObject *unused)
{
	PyObject *keys = snapshot(t, SNAP_KEYS);
	Py_ssize_t i;

	(void)unused;
	if (!keys)
		return NULL;
	for (i = 0; i < PyList_GET_SIZE(keys); i++) {
		if (do_del(t, PyList_GET_ITEM(keys, i)) == UINT32_MAX) {
			Py_DECREF(keys);
			return NULL;
		}
	}
	Py_DECREF(keys);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(stats_doc,
"stats($self, /)\n"
"--\n"
"\n"
"The table's statistics (shf_get_stats(3)) as a dict: keys, bytes_file,\n"
"bytes_used, bytes_free, splits, lock_waits, recoveries, puts, dels,\n"
"shards, fixed_key_len, fixed_val_len, layout, ttl_default_ms,\n"
"byte_budget, bytes_cached, hits, misses, evictions, expirations,\n"
"leases, lease_waits.");

/* stats()'s keys: made once (PyDict_SetItemString would intern each). */
static const char *const stat_names[] = {
	"keys",		  "bytes_file",	    "bytes_used",  "bytes_free",
	"splits",	  "lock_waits",	    "recoveries",  "puts",
	"dels",		  "shards",	    "fixed_key_len", "fixed_val_len",
	"layout",	  "ttl_default_ms", "byte_budget", "bytes_cached",
	"hits",		  "misses",	    "evictions",   "expirations",
	"leases",	  "lease_waits",
};
#define NSTATS (sizeof(stat_names) / sizeof(stat_names[0]))
static PyObject *stat_keys[NSTATS];

static PyObject *Table_stats(TableObject *t, PyObject *unused)
{
	struct shf_stats st;
	uint64_t v[NSTATS];
	PyObject *d;
	size_t i;

	(void)unused;
	memset(&st, 0, sizeof(st));
	if (get_stats(t, &st) < 0)
		return NULL;
	/* in stat_names' order */
	v[0] = st.keys;
	v[1] = st.bytes_file;
	v[2] = st.bytes_used;
	v[3] = st.bytes_free;
	v[4] = st.splits;
	v[5] = st.lock_waits;
	v[6] = st.recoveries;
	v[7] = st.puts;
	v[8] = st.dels;
	v[9] = st.shards;
	v[10] = st.fixed_key_len;
	v[11] = st.fixed_val_len;
	v[12] = st.layout;
	v[13] = st.ttl_default_ms;
	v[14] = st.byte_budget;
	v[15] = st.bytes_cached;
	v[16] = st.hits;
	v[17] = st.misses;
	v[18] = st.evictions;
	v[19] = st.expirations;
	v[20] = st.leases;
	v[21] = st.lease_waits;
	d = PyDict_New();
	for (i = 0; d && i < NSTATS; i++) {
		PyObject *o = PyLong_FromUnsignedLongLong(v[i]);

		if (!o || PyDict_SetItem(d, stat_keys[i], o) < 0)
			Py_CLEAR(d);
		Py_XDECREF(o);
	}
	return d;
}

/* shf_check()'s lines, gathered without the GIL, NUL-separated. */
static void check_cb(const char *problem, void *arg)
{
	struct coll *c = arg;

	if (c->oom)
		return;
	if (coll_put(c, problem, strlen(problem) + 1) < 0)
		c->oom = 1;
	else
		c->n++;
}

PyDoc_STRVAR(check_doc,
"check($self, /, repair=False)\n"
"--\n"
"\n"
"Verify the table's structure, shard by shard under its lock\n"
"(shf_check(3)).  Returns the list of problems found, each a line of\n"
"text; empty when the table is sound.  repair=True drops what is broken\n"
"and fixes counters.");

static PyObject *Table_check(TableObject *t, PyObject *const *args,
			     Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "repair" };
	struct coll c = { 0 };
	PyObject *a[1], *list = NULL;
	uint32_t r;
	int repair = 0, e = 0;
	size_t off = 0;

	if (parse_args("check", args, nargs, kwnames, names, 1, 1, 0, a) < 0)
		return NULL;
	if (a[0]) {
		repair = PyObject_IsTrue(a[0]);
		if (repair < 0)
			return NULL;
	}
	if (enter(t) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = shf_check(t->shf, repair ? SHF_CHECK_REPAIR : 0, check_cb, &c);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (c.oom) {
		PyErr_NoMemory();
		goto out;
	}
	if (r == UINT32_MAX) {
		set_errno(e);
		goto out;
	}
	list = PyList_New(0);
	while (list && off < c.len) {
		size_t len = strlen(c.p + off);
		PyObject *s = PyUnicode_DecodeUTF8(c.p + off, (Py_ssize_t)len,
						   "replace");

		off += len + 1;
		if (!s || PyList_Append(list, s) < 0) {
			Py_XDECREF(s);
			Py_CLEAR(list);
			break;
		}
		Py_DECREF(s);
	}
	/* problems that came without a line (cb lines are per problem) */
	while (list && (uint64_t)PyList_GET_SIZE(list) < r) {
		PyObject *s = PyUnicode_FromString("problem");

		if (!s || PyList_Append(list, s) < 0) {
			Py_XDECREF(s);
			Py_CLEAR(list);
			break;
		}
		Py_DECREF(s);
	}
out:
	free(c.p);
	return list;
}

PyDoc_STRVAR(expire_doc,
"expire($self, /, max_slots=1024)\n"
"--\n"
"\n"
"Reclaim the space of expired keys, visiting up to max_slots index\n"
"slots of each shard (shf_expire(3)).  Returns the number of keys\n"
"reclaimed.");

static PyObject *Table_expire(TableObject *t, PyObject *const *args,
			      Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "max_slots" };
	PyObject *a[1];
	unsigned long slots = 1024;
	uint32_t r;
	int e = 0;

	if (parse_args("expire", args, nargs, kwnames, names, 1, 1, 0, a) < 0)
		return NULL;
	if (a[0]) {
		if (!PyLong_Check(a[0])) {
			PyErr_SetString(PyExc_TypeError,
					"max_slots must be an int");
			return NULL;
		}
		slots = PyLong_AsUnsignedLong(a[0]);
		if (PyErr_Occurred() || slots > UINT32_MAX) {
			PyErr_Clear();
			PyErr_SetString(PyExc_ValueError,
					"max_slots must be 0 to 4294967295");
			return NULL;
		}
	}
	if (enter(t) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = shf_expire(t->shf, (uint32_t)slots);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r == UINT32_MAX)
		return set_errno(e);
	return PyLong_FromUnsignedLong(r);
}

PyDoc_STRVAR(set_fixed_len_doc,
"set_fixed_len($self, key_len, val_len, /)\n"
"--\n"
"\n"
"Make every key key_len and every value val_len bytes long, a setting\n"
"stored in the table (shf_set_is_fixed_len(3)).  Only while the table\n"
"is empty or already has these lengths: OSError (EBUSY) otherwise.");

static PyObject *Table_set_fixed_len(TableObject *t, PyObject *const *args,
				     Py_ssize_t nargs)
{
	uint32_t kv[2];
	int e = 0, i;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError,
			     "set_fixed_len() takes 2 arguments (%zd given)",
			     nargs);
		return NULL;
	}
	for (i = 0; i < 2; i++) {
		unsigned long v;

		if (!PyLong_Check(args[i])) {
			PyErr_SetString(PyExc_TypeError,
					"lengths must be ints");
			return NULL;
		}
		v = PyLong_AsUnsignedLong(args[i]);
		if (PyErr_Occurred() || v < 1 || v > UINT32_MAX) {
			PyErr_Clear();
			PyErr_SetString(PyExc_ValueError,
					"lengths must be 1 to 4294967295");
			return NULL;
		}
		kv[i] = (uint32_t)v;
	}
	if (enter(t) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	shf_set_is_fixed_len(t->shf, kv[0], kv[1]);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (e)
		return set_errno(e);
	Py_RETURN_NONE;
}

/* Table(ttl=, budget=) and the properties. */
static int set_ttl_default(TableObject *t, uint32_t ms)
{
	uint32_t r;
	int e = 0;

	if (enter(t) < 0)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	r = shf_set_ttl_default(t->shf, ms);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return -1;
	}
	return 0;
}

static int budget_arg(PyObject *v, uint64_t *out)
{
	unsigned long long bytes;

	if (!PyLong_Check(v)) {
		PyErr_Format(PyExc_TypeError,
			     "budget must be an int (bytes), not %.100s",
			     Py_TYPE(v)->tp_name);
		return -1;
	}
	bytes = PyLong_AsUnsignedLongLong(v);
	if (bytes == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Clear();
		PyErr_SetString(PyExc_ValueError,
				"budget must be 0 (none) to 2**64-1 bytes");
		return -1;
	}
	*out = bytes;
	return 0;
}

static int set_budget(TableObject *t, uint64_t bytes)
{
	uint32_t r;
	int e = 0;

	if (enter(t) < 0)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	r = shf_set_byte_budget(t->shf, bytes);
	e = errno;
	Py_END_ALLOW_THREADS
	leave(t);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return -1;
	}
	return 0;
}

static int set_cache(TableObject *t, int ttl_given, uint32_t ttl,
		     int budget_given, uint64_t budget)
{
	if (ttl_given && set_ttl_default(t, ttl) < 0)
		return -1;
	if (budget_given && set_budget(t, budget) < 0)
		return -1;
	return 0;
}

static PyObject *Table_get_default_ttl(TableObject *t, void *c)
{
	struct shf_stats st;

	(void)c;
	if (get_stats(t, &st) < 0)
		return NULL;
	return ms_to_seconds(st.ttl_default_ms);
}

static int Table_set_default_ttl(TableObject *t, PyObject *v, void *c)
{
	uint32_t ms = 0;
	int given;

	(void)c;
	if (!v) {
		PyErr_SetString(PyExc_AttributeError,
				"set default_ttl to 0 for none");
		return -1;
	}
	if (duration_ms(v, NULL, "default_ttl", &ms, &given) < 0)
		return -1;
	return set_ttl_default(t, ms);
}

static PyObject *Table_get_byte_budget(TableObject *t, void *c)
{
	struct shf_stats st;

	(void)c;
	if (get_stats(t, &st) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(st.byte_budget);
}

static int Table_set_byte_budget(TableObject *t, PyObject *v, void *c)
{
	uint64_t bytes;

	(void)c;
	if (!v) {
		PyErr_SetString(PyExc_AttributeError,
				"set byte_budget to 0 for none");
		return -1;
	}
	if (budget_arg(v, &bytes) < 0)
		return -1;
	return set_budget(t, bytes);
}

/* ------------------------------------------------------- the lease */

/*
 * Make this thread the lease's grantee again: libshf fills only the
 * thread's latest grant, and a process asking for its own lease gets it
 * back at once.  KEY_NONE|LEASED when the lease (still, or again) is
 * this process's.
 */
/*
 * The lease l held is over (filled, given up, lost): the table's count
 * of held leases drops, and a table closed meanwhile detaches once none
 * is held and no call is in flight.
 */
static void lease_ended(LeaseObject *l)
{
	TableObject *t = l->table;

	if (!l->leased)
		return;
	l->leased = 0;
	if (t && t->leases && --t->leases == 0 && t->closing && !t->busy)
		detach_now(t);
}

/*
 * Give up grant, the lease on key (klen bytes), through t, in a call
 * (enter()): only that grant is deleted (shf_del_key_val_if_leased()).
 * libshf's result, errno in *e.
 */
static uint32_t lease_give_up(TableObject *t, const char *key, uint32_t klen,
			      uint32_t grant, int *e)
{
	uint32_t r;

	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(key, klen);
	shf_lease_adopt(grant);
	r = shf_del_key_val_if_leased(t->shf);
	*e = errno;
	Py_END_ALLOW_THREADS
	return r;
}

/* A grant this process now holds, counted in its table (see above). */
static void lease_held(LeaseObject *l, uint32_t grant)
{
	l->leased = 1;
	l->grant = grant;
	l->table->leases++;
}

/*
 * Give the lease up so that a waiter takes it over at once.  Only this
 * Lease's own grant is deleted (shf_del_key_val_if_leased()): a value
 * stored meanwhile, a lease granted anew since (even to this process), or
 * another process's lease is left alone.
 */
static int lease_release(LeaseObject *l)
{
	TableObject *t = l->table;
	const char *k = PyBytes_AS_STRING(l->key);
	uint32_t klen = (uint32_t)PyBytes_GET_SIZE(l->key), r;
	int e = 0;

	if (!l->leased)
		return 0;
	if (enter_lease(t) < 0) {
		lease_ended(l); /* unlinked: nothing to give up */
		return -1;
	}
	r = lease_give_up(t, k, klen, l->grant, &e);
	leave(t);
	lease_ended(l);
	if (r & SHF_RET_ERROR) {
		set_errno(e);
		return -1;
	}
	return 0;
}

/*
 * Give l's lease up, keeping the exception that is set.  An error of the
 * release itself is reported as unraisable where report is set (l must
 * be alive then: PyErr_WriteUnraisable() takes a reference to it), and
 * dropped where it is not.
 */
static void lease_release_keep_error(LeaseObject *l, int report)
{
	PyObject *type, *val, *tb;

	PyErr_Fetch(&type, &val, &tb);
	if (lease_release(l) < 0) {
		if (report)
			PyErr_WriteUnraisable((PyObject *)l);
		else
			PyErr_Clear();
	}
	PyErr_Restore(type, val, tb);
}

/* Give l's lease up after an error, which stays set. */
static void lease_give_up_keep_error(LeaseObject *l)
{
	lease_release_keep_error(l, 0);
}

/*
 * Store v as the leased key's value; 1 stored, 0 not, -1 error.  The
 * grant is named (shf_lease_adopt()), so any thread fills it, whatever
 * leases it was given since.  A fill that fails gives the lease up, so
 * that nobody waits for it.
 */
static int lease_fill(LeaseObject *l, PyObject *v, uint32_t ttl)
{
	TableObject *t = l->table;
	const char *k = PyBytes_AS_STRING(l->key);
	uint32_t klen = (uint32_t)PyBytes_GET_SIZE(l->key), r = 0, uid;
	struct buf vb;
	int e = 0;

	if (!l->leased) {
		PyErr_SetString(PyExc_ValueError,
				"this process holds no lease on the key");
		return -1;
	}
	if (!t->shf || t->closing) {
		/* closed: nothing is stored, and nobody waits for the lease */
		if (lease_release(l) < 0)
			PyErr_Clear();
		closed_error();
		return -1;
	}
	if (buf_get(v, &vb, "value") < 0) {
		lease_give_up_keep_error(l);
		return -1;
	}
	if (ttl == UINT32_MAX) {
		/* put_if_leased has no "table default": read it */
		struct shf_stats st;

		if (get_stats(t, &st) < 0) {
			buf_release(&vb);
			lease_give_up_keep_error(l);
			return -1;
		}
		ttl = st.ttl_default_ms;
	}
	if (enter_lease(t) < 0) {
		buf_release(&vb);
		lease_ended(l); /* unlinked: nothing to fill */
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	shf_make_hash(k, klen);
	shf_lease_adopt(l->grant);
	r = shf_put_key_val_if_leased(t->shf, vb.p, vb.len, ttl);
	e = errno;
	Py_END_ALLOW_THREADS
	uid = shf_uid; /* before anything that can run Python code */
	leave(t);
	buf_release(&vb);
	if (r & SHF_RET_ERROR) {
		/* the lease is still held: give it up, then say why */
		if (lease_release(l) < 0)
			PyErr_Clear();
		ret_error(r, e, "value");
		return -1;
	}
	lease_ended(l);
	if (r & SHF_RET_KEY_PUT) {
		l->stored = 1;
		l->uid = uid;
		return 1;
	}
	/* the lease was lost (deleted, expired, taken over): not stored */
	return 0;
}

PyDoc_STRVAR(get_or_lease_doc,
"get_or_lease($self, key, /, *, lease=None, lease_ms=None, wait=None,\n"
"             wait_ms=None, ttl=None, ttl_ms=None)\n"
"--\n"
"\n"
"Get the value of key, or the lease to compute it, so that of the\n"
"processes that miss the key at once only one computes it while the\n"
"others wait (shf_get_key_val_copy_or_lease(3)).  Returns a Lease:\n"
"\n"
"    with t.get_or_lease(key, lease=30, wait=10) as lease:\n"
"        if lease.value is None:\n"
"            lease.value = compute(key)\n"
"    use(lease.value)\n"
"\n"
"lease.found: the key had a value (lease.value).  lease.leased: this\n"
"process holds the lease; set lease.value in the body, and it is stored\n"
"when the body ends (with ttl or ttl_ms if given, else the table's\n"
"default), only if the lease still holds.  If the body raises, or sets\n"
"no value, the lease is given up and a waiting process takes it over.\n"
"\n"
"lease (seconds) or lease_ms: how long the lease may be held, default 60\n"
"s.  wait (seconds) or wait_ms: how long to wait for another process's\n"
"value, default as long as it takes (its holder stores, dies or\n"
"overruns its lease); TimeoutError past it.");

static PyObject *Table_get_or_lease(TableObject *t, PyObject *const *args,
				    Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "key", "lease", "lease_ms",
					     "wait",  "wait_ms", "ttl",
					     "ttl_ms" };
	PyObject *a[7], *key, *value = NULL;
	uint32_t lease_ms = 60000, wait = 0, ttl = UINT32_MAX, r, uid, grant = 0;
	int wait_given, given, e = 0, forever;
	struct buf k;
	LeaseObject *l;

	if (parse_args("get_or_lease", args, nargs, kwnames, names, 7, 1, 1,
		       a) < 0)
		return NULL;
	if (duration_ms(a[1], a[2], "lease", &lease_ms, &given) < 0 ||
	    duration_ms(a[3], a[4], "wait", &wait, &wait_given) < 0 ||
	    duration_ms(a[5], a[6], "ttl", &ttl, &given) < 0)
		return NULL;
	if (!given)
		ttl = UINT32_MAX;
	if (lease_ms == 0) {
		PyErr_SetString(PyExc_ValueError, "lease must be > 0");
		return NULL;
	}
	forever = !wait_given;
	if (buf_get(a[0], &k, "key") < 0)
		return NULL;
	key = key_bytes(a[0], &k);
	if (!key) {
		buf_release(&k);
		return NULL;
	}
	buf_release(&k);
	if (enter(t) < 0) {
		Py_DECREF(key);
		return NULL;
	}
	/* wait in slices, so that a signal (KeyboardInterrupt) gets through */
	for (;;) {
		uint32_t slice = forever || wait > WAIT_SLICE_MS ?
					 WAIT_SLICE_MS :
					 wait;

		Py_BEGIN_ALLOW_THREADS
		shf_make_hash(PyBytes_AS_STRING(key),
			      (uint32_t)PyBytes_GET_SIZE(key));
		r = shf_get_key_val_copy_or_lease(t->shf, lease_ms, slice);
		e = errno;
		uid = shf_uid;
		grant = shf_lease_grant();
		Py_END_ALLOW_THREADS
		if (!((r & SHF_RET_ERROR) && e == ETIMEDOUT))
			break;
		if (!forever) {
			wait -= slice;
			if (!wait)
				break;
		}
		if (PyErr_CheckSignals() < 0) {
			leave(t);
			Py_DECREF(key);
			return NULL;
		}
	}
	if (r & SHF_RET_ERROR) {
		leave(t);
		Py_DECREF(key);
		return ret_error(r, e, "key");
	}
	/*
	 * The value first, while shf_val is this call's: making the Lease
	 * may run the collector, and a __del__ that reads a table.
	 */
	if (r & SHF_RET_KEY_FOUND) {
		value = PyBytes_FromStringAndSize(shf_val, shf_val_len);
		if (!value) {
			leave(t);
			Py_DECREF(key);
			return NULL;
		}
	}
	l = PyObject_GC_New(LeaseObject, &Lease_Type);
	if (!l) {
		/* a lease granted: give it up, or others wait for it */
		if (r == (SHF_RET_KEY_NONE | SHF_RET_LEASED))
			lease_give_up(t, PyBytes_AS_STRING(key),
				      (uint32_t)PyBytes_GET_SIZE(key), grant, &e);
		leave(t);
		Py_DECREF(key);
		Py_XDECREF(value);
		return NULL;
	}
	Py_INCREF(t);
	l->table = t;
	l->key = key;
	l->value = value;
	l->uid = uid;
	l->lease_ms = lease_ms;
	l->ttl_ms = ttl;
	l->found = value != NULL;
	l->leased = 0;
	l->stored = 0;
	l->grant = 0;
	if (r == (SHF_RET_KEY_NONE | SHF_RET_LEASED))
		lease_held(l, grant);
	leave(t);
	if (!l->value) {
		Py_INCREF(Py_None);
		l->value = Py_None;
	}
	PyObject_GC_Track(l);
	return (PyObject *)l;
}

/*
 * A lease never filled nor released: give it up.  Only where l is alive
 * (tp_finalize, tp_clear): PyErr_WriteUnraisable() takes a reference to
 * it, which in tp_dealloc would free it a second time.
 */
static void lease_drop(LeaseObject *l)
{
	if (l->leased && l->table && l->table->shf)
		lease_release_keep_error(l, 1);
}

/* The last reference gone (PEP 442): the object is whole here. */
static void Lease_finalize(LeaseObject *l)
{
	lease_drop(l);
}

/*
 * A Lease refers to its Table, which a subclass's instance (with a
 * __dict__) may refer back to: the collector finds such cycles.
 */
static int Lease_traverse(LeaseObject *l, visitproc visit, void *arg)
{
	Py_VISIT(l->table);
	Py_VISIT(l->value);
	return 0;
}

static int Lease_clear(LeaseObject *l)
{
	lease_drop(l); /* while the table is still there */
	lease_ended(l);
	Py_CLEAR(l->table);
	Py_CLEAR(l->value);
	return 0;
}

static void Lease_dealloc(LeaseObject *l)
{
	if (PyObject_CallFinalizerFromDealloc((PyObject *)l) < 0)
		return; /* the finalizer gave it a new reference */
	PyObject_GC_UnTrack(l);
	lease_ended(l);
	Py_XDECREF(l->table);
	Py_XDECREF(l->key);
	Py_XDECREF(l->value);
	PyObject_GC_Del(l);
}

static PyObject *Lease_enter(LeaseObject *l, PyObject *unused)
{
	(void)unused;
	Py_INCREF(l);
	return (PyObject *)l;
}

static PyObject *Lease_exit(LeaseObject *l, PyObject *args)
{
	PyObject *exc = PyTuple_Size(args) > 0 ? PyTuple_GetItem(args, 0) :
						 Py_None;

	if (!l->leased)
		Py_RETURN_FALSE;
	/*
	 * The body failed: give up, and let its exception go on; or the
	 * table was closed (the handle waits for that) or unlinked inside
	 * it: give up, nothing to say.
	 */
	if ((exc && exc != Py_None) || !l->table->shf || l->table->closing) {
		if (lease_release(l) < 0)
			PyErr_Clear();
		Py_RETURN_FALSE;
	}
	if (l->value == Py_None) {
		if (lease_release(l) < 0)
			return NULL;
		Py_RETURN_FALSE;
	}
	if (lease_fill(l, l->value, l->ttl_ms) < 0)
		return NULL;
	Py_RETURN_FALSE;
}

PyDoc_STRVAR(lease_put_doc,
"put($self, value, /, *, ttl=None, ttl_ms=None)\n"
"--\n"
"\n"
"Store value now and end the lease.  True if it was stored; False if\n"
"the lease was lost meanwhile (deleted, expired or taken over): then\n"
"nothing is stored.  ValueError if this process holds no lease.");

static PyObject *Lease_put(LeaseObject *l, PyObject *const *args,
			   Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "value", "ttl", "ttl_ms" };
	PyObject *a[3];
	uint32_t ttl = l->ttl_ms;
	int given, r;

	if (parse_args("put", args, nargs, kwnames, names, 3, 1, 1, a) < 0)
		return NULL;
	if (duration_ms(a[1], a[2], "ttl", &ttl, &given) < 0)
		return NULL;
	if (!given)
		ttl = l->ttl_ms;
	r = lease_fill(l, a[0], ttl);
	if (r < 0)
		return NULL;
	if (r) {
		PyObject *v;
		struct buf b;

		if (buf_get(a[0], &b, "value") < 0)
			return NULL;
		v = PyBytes_FromStringAndSize(b.p, b.len);
		buf_release(&b);
		if (!v)
			return NULL;
		Py_SETREF(l->value, v);
	}
	return PyBool_FromLong(r);
}

PyDoc_STRVAR(lease_release_doc,
"release($self, /)\n"
"--\n"
"\n"
"Give the lease up (store nothing): a waiting process takes it over at\n"
"once.  Does nothing if this process holds no lease.");

static PyObject *Lease_release_m(LeaseObject *l, PyObject *unused)
{
	(void)unused;
	if (lease_release(l) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *Lease_get_value(LeaseObject *l, void *c)
{
	(void)c;
	if (!l->value) /* cleared by the collector */
		Py_RETURN_NONE;
	Py_INCREF(l->value);
	return l->value;
}

static int Lease_set_value(LeaseObject *l, PyObject *v, void *c)
{
	struct buf b;
	PyObject *copy;

	(void)c;
	if (!l->leased) {
		PyErr_SetString(PyExc_ValueError,
				"this process holds no lease on the key");
		return -1;
	}
	if (!v || v == Py_None) {
		Py_INCREF(Py_None);
		Py_SETREF(l->value, Py_None);
		return 0;
	}
	/* a bytes copy now: a bad type fails here, not at the with's end */
	if (buf_get(v, &b, "value") < 0)
		return -1;
	copy = PyBytes_FromStringAndSize(b.p, b.len);
	buf_release(&b);
	if (!copy)
		return -1;
	Py_SETREF(l->value, copy);
	return 0;
}

static PyObject *Lease_get_key(LeaseObject *l, void *c)
{
	(void)c;
	Py_INCREF(l->key);
	return l->key;
}

static PyObject *Lease_get_found(LeaseObject *l, void *c)
{
	(void)c;
	return PyBool_FromLong(l->found);
}

static PyObject *Lease_get_leased(LeaseObject *l, void *c)
{
	(void)c;
	return PyBool_FromLong(l->leased);
}

static PyObject *Lease_get_stored(LeaseObject *l, void *c)
{
	(void)c;
	return PyBool_FromLong(l->stored);
}

static PyObject *Lease_get_uid(LeaseObject *l, void *c)
{
	(void)c;
	if (l->uid == SHF_UID_NONE)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLong(l->uid);
}

static PyObject *Lease_repr(LeaseObject *l)
{
	return PyUnicode_FromFormat("<shf.Lease key=%R %s>", l->key,
				    l->found  ? "found" :
				    l->leased ? "leased" :
				    l->stored ? "stored" :
						"ended");
}

/* ------------------------------------------------------- type tables */

#define FASTCALL(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef Table_methods[] = {
	{ "get", FASTCALL(Table_get), METH_FASTCALL, get_doc },
	{ "get_many", FASTCALL(Table_get_many), METH_FASTCALL, get_many_doc },
	{ "put", FASTCALL(Table_put), METH_FASTCALL | METH_KEYWORDS,
	  put_doc },
	{ "put_if_absent", FASTCALL(Table_put_if_absent), METH_FASTCALL,
	  put_if_absent_doc },
	{ "setdefault", FASTCALL(Table_setdefault), METH_FASTCALL,
	  setdefault_doc },
	{ "replace", FASTCALL(Table_replace), METH_FASTCALL, replace_doc },
	{ "cas", FASTCALL(Table_cas), METH_FASTCALL, cas_doc },
	{ "delete", (PyCFunction)Table_delete, METH_O, delete_doc },
	{ "add", FASTCALL(Table_add), METH_FASTCALL, add_doc },
	{ "ttl", (PyCFunction)Table_ttl, METH_O, ttl_doc },
	{ "uid", (PyCFunction)Table_uid, METH_O, uid_doc },
	{ "get_uid", FASTCALL(Table_get_uid), METH_FASTCALL, get_uid_doc },
	{ "get_uid_key", FASTCALL(Table_get_uid_key), METH_FASTCALL,
	  get_uid_key_doc },
	{ "del_uid", FASTCALL(Table_del_uid), METH_FASTCALL, del_uid_doc },
	{ "get_or_lease", FASTCALL(Table_get_or_lease),
	  METH_FASTCALL | METH_KEYWORDS, get_or_lease_doc },
	{ "keys", (PyCFunction)Table_keys, METH_NOARGS, keys_doc },
	{ "values", (PyCFunction)Table_values, METH_NOARGS, values_doc },
	{ "items", (PyCFunction)Table_items, METH_NOARGS, items_doc },
	{ "update", FASTCALL(Table_update), METH_FASTCALL, update_doc },
	{ "clear", (PyCFunction)Table_clear, METH_NOARGS, clear_doc },
	{ "stats", (PyCFunction)Table_stats, METH_NOARGS, stats_doc },
	{ "check", FASTCALL(Table_check), METH_FASTCALL | METH_KEYWORDS,
	  check_doc },
	{ "expire", FASTCALL(Table_expire), METH_FASTCALL | METH_KEYWORDS,
	  expire_doc },
	{ "set_fixed_len", FASTCALL(Table_set_fixed_len), METH_FASTCALL,
	  set_fixed_len_doc },
	{ "close", (PyCFunction)Table_close, METH_NOARGS, close_doc },
	{ "unlink", (PyCFunction)Table_unlink, METH_NOARGS, unlink_doc },
	{ "attach_existing", FASTCALL(Table_attach_existing),
	  METH_FASTCALL | METH_KEYWORDS | METH_CLASS, attach_existing_doc },
	{ "__enter__", (PyCFunction)Table_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)Table_exit, METH_VARARGS, NULL },
	{ "__reduce__", (PyCFunction)Table_reduce, METH_NOARGS, NULL },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef Table_getset[] = {
	{ "closed", (getter)Table_get_closed, NULL,
	  "True once close() or unlink() was called.", NULL },
	{ "path", (getter)Table_get_path, NULL, "The table's directory.",
	  NULL },
	{ "name", (getter)Table_get_name, NULL,
	  "The table's name (its file is <path>/<name>.shf).", NULL },
	{ "default_ttl", (getter)Table_get_default_ttl,
	  (setter)Table_set_default_ttl,
	  "The table's default time to live in seconds, 0 for none (stored "
	  "in the table).",
	  NULL },
	{ "byte_budget", (getter)Table_get_byte_budget,
	  (setter)Table_set_byte_budget,
	  "The table's byte budget, 0 for none (stored in the table).", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyMappingMethods Table_as_mapping = {
	.mp_length = (lenfunc)Table_length,
	.mp_subscript = (binaryfunc)Table_subscript,
	.mp_ass_subscript = (objobjargproc)Table_ass_subscript,
};

static PySequenceMethods Table_as_sequence = {
	.sq_contains = (objobjproc)Table_contains,
};

static PyTypeObject Table_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shf.Table",
	.tp_basicsize = sizeof(TableObject),
	.tp_dealloc = (destructor)Table_dealloc,
	.tp_repr = (reprfunc)Table_repr,
	.tp_as_sequence = &Table_as_sequence,
	.tp_as_mapping = &Table_as_mapping,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = Table_doc,
	.tp_weaklistoffset = offsetof(TableObject, weakrefs),
	.tp_iter = (getiterfunc)Table_iter,
	.tp_methods = Table_methods,
	.tp_getset = Table_getset,
	.tp_new = Table_new,
};

static PyMethodDef Lease_methods[] = {
	{ "put", FASTCALL(Lease_put), METH_FASTCALL | METH_KEYWORDS,
	  lease_put_doc },
	{ "release", (PyCFunction)Lease_release_m, METH_NOARGS,
	  lease_release_doc },
	{ "__enter__", (PyCFunction)Lease_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)Lease_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef Lease_getset[] = {
	{ "value", (getter)Lease_get_value, (setter)Lease_set_value,
	  "The key's value (bytes), or None while it is to be computed.",
	  NULL },
	{ "key", (getter)Lease_get_key, NULL, "The key (bytes).", NULL },
	{ "found", (getter)Lease_get_found, NULL,
	  "True if the key had a value.", NULL },
	{ "leased", (getter)Lease_get_leased, NULL,
	  "True while this process holds the lease (not yet filled or given "
	  "up).",
	  NULL },
	{ "stored", (getter)Lease_get_stored, NULL,
	  "True once the value given was stored.", NULL },
	{ "uid", (getter)Lease_get_uid, NULL,
	  "The key's UID (the one its value will have, while leased).",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyDoc_STRVAR(Lease_doc,
"The result of Table.get_or_lease(): the key's value, or the lease to\n"
"compute it.  A context manager: on a normal exit the value set is\n"
"stored, on an exception the lease is given up.");

static PyTypeObject Lease_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shf.Lease",
	.tp_basicsize = sizeof(LeaseObject),
	.tp_dealloc = (destructor)Lease_dealloc,
	.tp_finalize = (destructor)Lease_finalize,
	.tp_repr = (reprfunc)Lease_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_traverse = (traverseproc)Lease_traverse,
	.tp_clear = (inquiry)Lease_clear,
	.tp_doc = Lease_doc,
	.tp_methods = Lease_methods,
	.tp_getset = Lease_getset,
};

/* ------------------------------------------------------------ module */

PyDoc_STRVAR(set_file_mode_doc,
"set_file_mode(mode, /)\n"
"--\n"
"\n"
"The mode of the table files this process creates from now on (default\n"
"0o600; e.g. 0o660 for a table shared by a group).  ValueError for bits\n"
"other than 0o666, and for 0o002: every attach refuses a table file that\n"
"others may write, its creator's too.");

static PyObject *mod_set_file_mode(PyObject *m, PyObject *arg)
{
	long mode;

	(void)m;
	if (!PyLong_Check(arg)) {
		PyErr_SetString(PyExc_TypeError, "mode must be an int");
		return NULL;
	}
	mode = PyLong_AsLong(arg);
	if (PyErr_Occurred() || mode < 0 || (mode & ~0666L)) {
		PyErr_Clear();
		PyErr_SetString(PyExc_ValueError,
				"mode must only have bits of 0o666");
		return NULL;
	}
	/* the library refuses what its attach would (others may write) */
	errno = 0;
	shf_set_file_mode((mode_t)mode);
	if (errno == EINVAL) {
		PyErr_SetString(PyExc_ValueError,
				"a table file that others may write is refused");
		return NULL;
	}
	Py_RETURN_NONE;
}

PyDoc_STRVAR(library_version_doc,
"library_version()\n"
"--\n"
"\n"
"The version of the libshf the module runs with, \"X.Y.Z\".");

static PyObject *mod_library_version(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	return PyUnicode_FromString(shf_version());
}

static PyMethodDef mod_methods[] = {
	{ "set_file_mode", (PyCFunction)mod_set_file_mode, METH_O,
	  set_file_mode_doc },
	{ "library_version", (PyCFunction)mod_library_version, METH_NOARGS,
	  library_version_doc },
	{ NULL, NULL, 0, NULL }
};

PyDoc_STRVAR(mod_doc,
"The C part of the shf package: hash tables shared by unrelated\n"
"processes through memory-mapped files (libshf).  Import shf, not this.");

static struct PyModuleDef shf_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shf._shf",
	.m_doc = mod_doc,
	.m_size = -1,
	.m_methods = mod_methods,
};

PyMODINIT_FUNC PyInit__shf(void);

PyMODINIT_FUNC PyInit__shf(void)
{
	PyObject *m;

	size_t i;

	shf_init();
	if (PyType_Ready(&Table_Type) < 0 || PyType_Ready(&Lease_Type) < 0)
		return NULL;
	pthread_atfork(NULL, NULL, fork_child);
	for (i = 0; i < NSTATS; i++) {
		if (!stat_keys[i])
			stat_keys[i] =
				PyUnicode_InternFromString(stat_names[i]);
		if (!stat_keys[i])
			return NULL;
	}
	m = PyModule_Create(&shf_module);
	if (!m)
		return NULL;
	Py_INCREF(&Table_Type);
	if (PyModule_AddObject(m, "Table", (PyObject *)&Table_Type) < 0)
		goto fail_table;
	Py_INCREF(&Lease_Type);
	if (PyModule_AddObject(m, "Lease", (PyObject *)&Lease_Type) < 0)
		goto fail_lease;
	if (PyModule_AddStringConstant(m, "__version__", PACKAGE_VERSION) < 0 ||
	    PyModule_AddObject(m, "UID_NONE",
			       PyLong_FromUnsignedLong(SHF_UID_NONE)) < 0)
		goto fail;
	return m;
fail_table:
	Py_DECREF(&Table_Type);
	goto fail;
fail_lease:
	Py_DECREF(&Lease_Type);
fail:
	Py_DECREF(m);
	return NULL;
}
