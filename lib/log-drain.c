// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log-drain.c - this process's drain thread of a table's log (at most one):
 * its state across fork(), whether a log's reader is alive, and the
 * thread that copies records out of the ring for log-out.c to write.
 * log-ring.c, the writers' side, asks it whether a reader lives.  See
 * log-internal.h.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log-internal.h"

/* This process's draining thread (at most one). */
static pthread_mutex_t log_thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct log_ref ref;
	pthread_t th;
	int fd;
	int running;
	uint32_t stop;
	uint64_t proc; /* shf_proc_gen() of the process that started it */
	char *buf;     /* its buffers, made before it claims the log */
	uint32_t *lens;
} log_thr;
static pthread_once_t log_thr_once = PTHREAD_ONCE_INIT;

/* The drain thread's buffers, if it never started (or never will). */
static void log_thr_bufs_free(void)
{
	free(log_thr.buf);
	free(log_thr.lens);
	log_thr.buf = NULL;
	log_thr.lens = NULL;
}

/* The drain thread is another process's: this one has none. */
static void log_thr_forget(void)
{
	log_thr.running = 0;
	memset(&log_thr.ref, 0, sizeof(log_thr.ref));
}

/*
 * fork(): the drain thread stays in the parent; the child has none.  And
 * log_thr_lock is made anew: another thread of the parent may have held
 * it at the fork (shf_log_thread_del() holds it while the drain finishes),
 * and it would stay held for ever in the child, where that thread is not.
 */
static void log_atfork_child(void)
{
	pthread_mutex_init(&log_thr_lock, NULL);
	log_thr_forget();
}

/*
 * The same in a child of _Fork() or of a clone() without CLONE_VM, which
 * runs no atfork handler: a drain thread started in another process
 * generation is its parent's (joining it here would wait on a thread this
 * process does not have).  Under log_thr_lock (which such a child finds
 * as its parent left it: see libshf(7)).
 */
static void log_thr_forget_parents(void)
{
	if (log_thr.running && log_thr.proc != shf_proc_gen())
		log_thr_forget();
}

static void log_thr_init(void)
{
	pthread_atfork(NULL, NULL, log_atfork_child);
}

/*
 * log_thr_lock, with the atfork handler registered first: a fork() while
 * it is held must find the handler there.  trylock: 0 if taken.
 */
static void log_thr_lock_take(void)
{
	pthread_once(&log_thr_once, log_thr_init);
	pthread_mutex_lock(&log_thr_lock);
}

static int log_thr_lock_try(void)
{
	pthread_once(&log_thr_once, log_thr_init);
	return pthread_mutex_trylock(&log_thr_lock);
}

/*
 * Does this process run a drain thread on r's log (through any handle of
 * its file)?  Asked by a writer that holds the log's lock, which
 * log_thread_start() takes under log_thr_lock: so log_thr_lock is only
 * tried, and a thread that holds it (starting or stopping a drain right
 * now) counts as a drain; the next look, LOG_WAIT_MS later, tells.
 */
static int log_thr_drains(const struct log_ref *r)
{
	const struct shf_lock_site *mine = shf_handle_lock_site(r->shf), *its;
	int yes = 0;

	if (log_thr_lock_try())
		return 1;
	if (log_thr.running && log_thr.proc == shf_proc_gen()) {
		its = shf_handle_lock_site(log_thr.ref.shf);
		yes = its->dev == mine->dev && its->ino == mine->ino;
	}
	pthread_mutex_unlock(&log_thr_lock);
	return yes;
}

int log_reader_alive(const struct log_ref *r, int check_proc)
{
	struct log_hdr *h = r->h;
	const struct shf_lock_site *site = shf_handle_lock_site(r->shf);
	pid_t pid = __atomic_load_n(&h->reader_pid, __ATOMIC_ACQUIRE);

	if (pid <= 0 || __atomic_load_n(&h->reader_dead, __ATOMIC_ACQUIRE))
		return 0;
	/*
	 * This process, which runs no drain on the log: its drain thread
	 * failed, or another process wrote the word.  No drain will come.
	 */
	if (check_proc && pid == getpid() && !log_thr_drains(r)) {
		__atomic_store_n(&h->reader_dead, 1, __ATOMIC_RELEASE);
		return 0;
	}
	/*
	 * gone, or no longer mapping the table (it called execve(), or the
	 * word names a stranger): no drain will come.  The process as a
	 * whole: its drain thread goes on after its first thread called
	 * pthread_exit(), whose own start time then reads as gone.  Only on
	 * proof: a writer that cannot read the reader's /proc entry (another
	 * user's under hidepid=) takes it for alive.
	 */
	if (check_proc && (!shf_proc_alive(pid, 1, h->reader_start) ||
			   (site->ino && shf_tid_maps_file(pid, site->dev,
							   site->ino) == 0))) {
		__atomic_store_n(&h->reader_dead, 1, __ATOMIC_RELEASE);
		return 0;
	}
	return 1;
}

#define LOG_BATCH (256u << 10)
#define LOG_BATCH_LINES 4096u
/* The longest text a writer puts in one record. */
#define LOG_TEXT_MAX (LOG_LINE_MAX + LOG_PREFIX_MAX + 1)

struct drain {
	char *buf; /* LOG_BATCH + LOG_TEXT_MAX + 256 bytes */
	uint32_t *lens;
	size_t len;
	uint32_t nlines;
};

/* The count of lines writers dropped, as a line of its own. */
static void drain_dropped(struct log_hdr *h, struct drain *d)
{
	uint64_t dropped = __atomic_exchange_n(&h->dropped, 0,
					       __ATOMIC_ACQ_REL);
	char pre[LOG_PREFIX_MAX];
	uint32_t plen;
	int n;

	if (!dropped)
		return;
	plen = log_prefix(h, pre, sizeof(pre));
	n = snprintf(d->buf, 256,
		     "%.*sshf-log: %llu lines dropped while no thread drained "
		     "the log\n",
		     (int)plen, pre, (unsigned long long)dropped);
	if (n > 0 && n < 256) {
		d->len = (size_t)n;
		d->lens[d->nlines++] = (uint32_t)n;
	}
}

/*
 * Copy the records published between rd and w into d, up to a batch;
 * returns where it stopped.  A record that is not what a writer makes
 * (another process wrote the ring) ends the batch and what is left.
 */
static uint64_t drain_copy(const struct log_ref *r, uint64_t rd, uint64_t w,
			   struct drain *d)
{
	uint32_t size = r->size, mask = size - 1;

	if (w - rd > size)
		rd = w - size; /* corrupt: keep what may be valid */
	while (rd != w && d->len < LOG_BATCH && d->nlines < LOG_BATCH_LINES) {
		uint32_t off = (uint32_t)(rd & mask), rlen, tlen;
		struct log_rec *rec = (struct log_rec *)(log_data(r->h) + off);

		if (rd & 7) { /* off the grid: its header may cross the end */
			__atomic_add_fetch(&r->h->dropped, 1,
					   __ATOMIC_RELAXED);
			return w;
		}
		rlen = rec->len;
		tlen = rec->text_len;

		if (rlen < sizeof(*rec) || (rlen & 7) || rlen > w - rd ||
		    rlen > size - off ||
		    (tlen != LOG_REC_PAD &&
		     (tlen > rlen - sizeof(*rec) || tlen > LOG_TEXT_MAX))) {
			__atomic_add_fetch(&r->h->dropped, 1,
					   __ATOMIC_RELAXED);
			return w;
		}
		if (tlen != LOG_REC_PAD) {
			memcpy(d->buf + d->len, rec + 1, tlen);
			d->len += tlen;
			d->lens[d->nlines++] = tlen;
		}
		rd += rlen;
	}
	return rd;
}

/* Nothing published: sleep until a writer says so (or 200 ms). */
static void drain_wait(struct log_hdr *h, uint64_t rd)
{
	uint32_t seq;

	__atomic_store_n(&h->reader_waiting, 1, __ATOMIC_SEQ_CST);
	seq = __atomic_load_n(&h->write_seq, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->write_pos, __ATOMIC_SEQ_CST) == rd)
		shf_futex_wait(&h->write_seq, seq, 200);
	__atomic_store_n(&h->reader_waiting, 0, __ATOMIC_RELAXED);
}

static void *log_drain(void *arg)
{
	const struct log_ref *r = arg;
	struct log_hdr *h = r->h;
	struct drain d;
	uint64_t stop_w = 0;
	uint32_t left = 0;
	int stopping = 0;

	/* its own from here (log_thread_start() made them) */
	d.buf = log_thr.buf;
	d.lens = log_thr.lens;
	for (;;) {
		uint64_t rd = h->read_pos;
		uint64_t w = __atomic_load_n(&h->write_pos, __ATOMIC_ACQUIRE);

		/*
		 * Told to stop: drain what was published by then, in a bounded
		 * number of batches (each covers at least 8 * LOG_BATCH_LINES
		 * bytes of the ring, or a note of dropped lines), however
		 * fast others go on writing (or forge the dropped count).
		 * What they write later waits in the ring for the next drain.
		 */
		if (!stopping &&
		    __atomic_load_n(&log_thr.stop, __ATOMIC_ACQUIRE)) {
			stopping = 1;
			stop_w = w;
			left = r->size / (8 * LOG_BATCH_LINES) + 2;
		}
		d.len = 0;
		d.nlines = 0;
		drain_dropped(h, &d);
		if (stopping && ((!d.len && (rd == w ||
					     (int64_t)(rd - stop_w) >= 0)) ||
				 !left--)) {
			if (d.len) /* a note of dropped lines, taken */
				log_out_emit(h, log_thr.fd, d.buf, d.len,
					     d.lens, d.nlines);
			log_out_stop(h, log_thr.fd);
			break;
		}
		if (rd == w && !d.len) {
			drain_wait(h, rd);
			continue;
		}
		rd = drain_copy(r, rd, w, &d);
		/* Copied out: give writers the room before the slow write. */
		__atomic_store_n(&h->read_pos, rd, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&h->read_seq, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->writers_waiting, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&h->writers_waiting, 0,
					 __ATOMIC_SEQ_CST);
			shf_futex_wake(&h->read_seq, INT_MAX);
		}
		log_out_emit(h, log_thr.fd, d.buf, d.len, d.lens, d.nlines);
	}
	free(d.buf);
	free(d.lens);
	return NULL;
}

/* Under log_thr_lock: be r's log's only reader; 0 or -1 (EBUSY). */
static int log_claim_reader(const struct log_ref *r)
{
	struct log_hdr *h = r->h;
	pid_t me = getpid();

	if (log_lock(r) < 0)
		return -1;
	if (log_reader_alive(r, 1) && h->reader_pid != me) {
		shf_lock_release(&h->lk);
		errno = EBUSY;
		return -1;
	}
	/* of the process: its first thread may have exited (see above) */
	h->reader_start = shf_proc_group_start_time(me);
	__atomic_store_n(&h->reader_pid, me, __ATOMIC_RELEASE);
	__atomic_store_n(&h->reader_dead, 0, __ATOMIC_RELEASE);
	h->stalled = 0; /* a new reader: waited for anew */
	shf_lock_release(&h->lk);
	return 0;
}

int log_thread_start(const struct log_ref *r, int fd)
{
	sigset_t all, old;
	int err;

	log_thr_lock_take();
	log_thr_forget_parents();
	if (log_thr.running) {
		pthread_mutex_unlock(&log_thr_lock);
		errno = EBUSY;
		return -1;
	}
	/*
	 * The thread's buffers, before the log is claimed: a thread that
	 * could not make them would leave a claim that names a live
	 * process, and writers would wait on a drain that never comes.
	 */
	log_thr.buf = malloc(LOG_BATCH + LOG_TEXT_MAX + 256);
	log_thr.lens = malloc(sizeof(*log_thr.lens) * LOG_BATCH_LINES);
	if (!log_thr.buf || !log_thr.lens || log_claim_reader(r) < 0) {
		err = log_thr.buf && log_thr.lens ? errno : ENOMEM;
		log_thr_bufs_free();
		pthread_mutex_unlock(&log_thr_lock);
		errno = err;
		return -1;
	}
	log_thr.ref = *r;
	log_thr.fd = fd;
	log_thr.stop = 0;
	log_out_start();
	/* The drain thread takes no signals: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&log_thr.th, NULL, log_drain, &log_thr.ref);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		__atomic_store_n(&r->h->reader_pid, 0, __ATOMIC_RELEASE);
		log_thr_bufs_free();
		pthread_mutex_unlock(&log_thr_lock);
		errno = err;
		return -1;
	}
	log_thr.running = 1;
	log_thr.proc = shf_proc_gen();
	pthread_mutex_unlock(&log_thr_lock);
	return 0;
}

int log_thread_stop(SHF *shf)
{
	struct log_hdr *h;

	log_thr_lock_take();
	log_thr_forget_parents();
	if (!log_thr.running || log_thr.ref.shf != shf) {
		pthread_mutex_unlock(&log_thr_lock);
		errno = ENOENT;
		return -1;
	}
	h = log_thr.ref.h;
	__atomic_store_n(&log_thr.stop, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&h->write_seq, 1, __ATOMIC_SEQ_CST);
	shf_futex_wake(&h->write_seq, INT_MAX);
	pthread_join(log_thr.th, NULL);
	log_thr.running = 0;
	log_thr.buf = NULL; /* the thread freed them */
	log_thr.lens = NULL;
	memset(&log_thr.ref, 0, sizeof(log_thr.ref));
	if (__atomic_load_n(&h->reader_pid, __ATOMIC_ACQUIRE) == getpid())
		__atomic_store_n(&h->reader_pid, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&log_thr_lock);
	return 0;
}
