// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log-ring.c - the log's ring in a table: its region, writing a record,
 * and this process's drain thread (whose output is log-out.c's).  See
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

static inline char *log_data(struct log_hdr *h)
{
	return (char *)h + LOG_HDR_SIZE;
}

uint32_t log_round_size(uint32_t want)
{
	uint32_t size = LOG_SIZE_MIN;

	if (want == 0)
		return LOG_SIZE_DEFAULT;
	if (want > LOG_SIZE_MAX)
		return 0;
	while (size < want)
		size <<= 1;
	return size;
}

uint32_t log_line_max(uint32_t size)
{
	uint32_t m = size / 4 - sizeof(struct log_rec) - LOG_PREFIX_MAX - 8;

	return m < LOG_LINE_MAX ? m : LOG_LINE_MAX;
}

/*
 * The log's lock: held only while a record is copied in (writers wait for
 * room without it), so a waiter gives up on a live holder after the
 * table's bound (ETIMEDOUT), as for a shard.
 */
static int log_lock(const struct log_ref *r)
{
	uint64_t stuck = 0; /* not kept: each wait may last the bound */

	return shf_lock_take(&r->h->lk, shf_handle_lock_site(r->shf), &stuck);
}

/*
 * Make the region a log, unless it is one or a live process is making it:
 * the maker claims it first with a word that names it (shf_claim_word()),
 * so that a maker killed half way is seen to be gone and exactly one
 * other process sets the log up again (the set-up depends only on the
 * region's size).
 */
_Static_assert(LOG_FREE == SHF_CLAIM_FREE && LOG_INIT == SHF_CLAIM_INIT,
	       "the log's states are a claim's");
static void log_init(struct log_hdr *h, uint64_t got)
{
	uint32_t st, size;

	if (shf_claim_take(&h->init_claim, &h->state, &st) < 0)
		return;
	__atomic_store_n(&h->lk.w, 0, __ATOMIC_RELAXED);
	h->magic = LOG_MAGIC;
	size = (uint32_t)(got - LOG_HDR_SIZE);
	while (size & (size - 1))
		size &= size - 1; /* round down to a power of 2 */
	h->size = size;
	h->t0_ns = log_now_ns();
	__atomic_store_n(&h->state, LOG_READY, __ATOMIC_RELEASE);
}

int log_open(SHF *shf, uint32_t size, int create, struct log_ref *ref)
{
	struct log_hdr *h = NULL;
	uint64_t got = 0;
	uint32_t rsize;

	if (!shf) {
		errno = EINVAL;
		return -1;
	}
	if (create)
		h = shf_region(shf, LOG_REGION, (uint64_t)LOG_HDR_SIZE + size,
			       1, &got);
	if (!h && (!create || errno == EEXIST))
		h = shf_region(shf, LOG_REGION, 0, 0, &got);
	if (!h)
		return -1;
	/* a damaged region table may name any offset; a log's is aligned */
	if (((uintptr_t)h & (_Alignof(struct log_hdr) - 1)) ||
	    got < LOG_HDR_SIZE + LOG_SIZE_MIN) {
		errno = EBADMSG;
		return -1;
	}
	if (create)
		log_init(h, got);
	/*
	 * Another process may be setting it up right now: give it 1 s, and
	 * now and then set it up in its place if it is gone.
	 */
	for (int i = 0; i < 1000; i++) {
		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == LOG_READY)
			break;
		if (i % 50 == 49)
			log_init(h, got);
		usleep(1000);
	}
	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != LOG_READY) {
		errno = EBUSY;
		return -1;
	}
	rsize = __atomic_load_n(&h->size, __ATOMIC_RELAXED);
	if (h->magic != LOG_MAGIC || rsize < LOG_SIZE_MIN ||
	    rsize > LOG_SIZE_MAX || (rsize & (rsize - 1)) ||
	    (uint64_t)LOG_HDR_SIZE + rsize > got) {
		errno = EBADMSG;
		return -1;
	}
	ref->shf = shf;
	ref->h = h;
	ref->size = rsize;
	return 0;
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

/* 1 if a draining thread is (still) there. */
static int log_reader_alive(const struct log_ref *r, int check_proc)
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
	 * pthread_exit(), whose own start time then reads as gone.
	 */
	if (check_proc && (shf_proc_group_start_time(pid) != h->reader_start ||
			   (site->ino && shf_tid_maps_file(pid, site->dev,
							   site->ino) == 0))) {
		__atomic_store_n(&h->reader_dead, 1, __ATOMIC_RELEASE);
		return 0;
	}
	return 1;
}

void log_prefix_set(const struct log_ref *r, uint32_t prefix)
{
	__atomic_store_n(&r->h->prefix, prefix, __ATOMIC_RELAXED);
}

/*
 * Under the lock: wait until rlen bytes (plus the padding to the ring's
 * end, if the record does not fit before it) are free at *w (the write
 * position, read again after each wait).  The lock is let go while it
 * sleeps, so that a drain that stalls stalls no other lock taker.  0 (the
 * lock held); -1 with errno EPIPE (no reader) or ETIMEDOUT (a reader that
 * showed no progress for LOG_STALL_MS: a process that drains nothing, or
 * not now), the line dropped and counted, the lock held; -2 with the
 * lock's errno (not held).
 */
static int log_room(const struct log_ref *r, uint64_t *w, uint32_t rlen)
{
	struct log_hdr *h = r->h;
	uint32_t size = r->size, room, last_seq = 0;
	uint64_t need, last_rd = 0, since = 0, now;
	int waited = 0;

	for (;;) {
		uint64_t rd = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
		uint32_t seq;

		if (*w - rd > size || ((*w | rd) & 7)) {
			/*
			 * Corrupt positions (apart, or off the 8-byte grid
			 * every record keeps, whose header would then cross
			 * the ring's end): start again empty, on the grid.
			 */
			*w = (rd + 7) & ~7ull;
			__atomic_store_n(&h->write_pos, *w, __ATOMIC_RELEASE);
		}
		room = size - (uint32_t)(*w & (size - 1));
		need = rlen + (room < rlen ? room : 0);
		if (size - (*w - rd) >= need)
			return 0;
		if (!log_reader_alive(r, waited)) {
			__atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
			errno = EPIPE;
			return -1;
		}
		seq = __atomic_load_n(&h->read_seq, __ATOMIC_SEQ_CST);
		now = log_now_ns();
		if (!since || rd != last_rd || seq != last_seq) {
			since = now;
			last_rd = rd;
			last_seq = seq;
		}
		/*
		 * A writer before this one gave up on the reader, which has
		 * shown no progress since: give up at once, not after another
		 * LOG_STALL_MS (each line of a stopped drain's writers).
		 */
		if ((h->stalled && h->stall_seq == seq) ||
		    now - since >= LOG_STALL_MS * 1000000ull) {
			h->stall_seq = seq;
			h->stalled = 1;
			__atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
			errno = ETIMEDOUT;
			return -1;
		}
		__atomic_store_n(&h->writers_waiting, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->read_pos, __ATOMIC_SEQ_CST) != rd)
			continue;
		shf_lock_release(&h->lk);
		shf_futex_wait(&h->read_seq, seq, LOG_WAIT_MS);
		waited = 1;
		if (log_lock(r) < 0)
			return -2;
		*w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
	}
}

int log_put(const struct log_ref *r, const char *text, uint32_t len,
	    int add_nl)
{
	char prefix[LOG_PREFIX_MAX];
	struct log_hdr *h = r->h;
	uint32_t size = r->size, nl, plen, rlen, off;
	struct log_rec *rec;
	uint64_t w;
	int rc;

	if (len > log_line_max(size)) {
		errno = EMSGSIZE;
		return -1;
	}
	nl = (add_nl && (len == 0 || text[len - 1] != '\n')) ? 1 : 0;
	/* 1: the dead owner published nothing; nothing to repair */
	if (log_lock(r) < 0)
		return -1;
	plen = log_prefix(h, prefix, sizeof(prefix));
	rlen = (uint32_t)((sizeof(*rec) + plen + len + nl + 7) & ~7ull);
	w = __atomic_load_n(&h->write_pos, __ATOMIC_RELAXED);
	rc = log_room(r, &w, rlen);
	if (rc < 0) {
		if (rc == -1)
			shf_lock_release(&h->lk);
		return -1;
	}
	off = (uint32_t)(w & (size - 1));
	if (size - off < rlen) { /* pad to the ring's end */
		rec = (struct log_rec *)(log_data(h) + off);
		rec->len = size - off;
		rec->text_len = LOG_REC_PAD;
		w += size - off;
		off = 0;
	}
	rec = (struct log_rec *)(log_data(h) + off);
	rec->len = rlen;
	rec->text_len = plen + len + nl;
	memcpy((char *)(rec + 1), prefix, plen);
	memcpy((char *)(rec + 1) + plen, text, len);
	if (nl)
		((char *)(rec + 1))[plen + len] = '\n';
	__atomic_store_n(&h->write_pos, w + rlen, __ATOMIC_RELEASE);
	h->lines++;
	__atomic_add_fetch(&h->write_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->reader_waiting, __ATOMIC_SEQ_CST))
		shf_futex_wake(&h->write_seq, 1);
	shf_lock_release(&h->lk);
	return 0;
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

	/* its own from here (log_thread_start() made them) */
	d.buf = log_thr.buf;
	d.lens = log_thr.lens;
	for (;;) {
		uint64_t rd = h->read_pos;
		uint64_t w = __atomic_load_n(&h->write_pos, __ATOMIC_ACQUIRE);

		d.len = 0;
		d.nlines = 0;
		drain_dropped(h, &d);
		if (rd == w && !d.len) {
			if (__atomic_load_n(&log_thr.stop, __ATOMIC_ACQUIRE)) {
				log_out_stop(h, log_thr.fd);
				break;
			}
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
