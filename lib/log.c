// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log.c - multiplexed logging through a shared ring buffer (shf_log_*).
 *
 * The named region "log" holds a header and a ring of records.  Writers
 * (any thread of any process) take the robust mutex, wait for room, copy
 * the text (as given, or "<seconds> <pid> <text>" when the log was asked
 * for a prefix) into the ring and publish it by moving
 * write_pos.  One draining thread, started by shf_log_thread_new() in one
 * process, copies records out, moves read_pos and writes them to its fd.
 *
 * A writer that dies while holding the mutex has published nothing (the
 * write_pos store is the commit), so the next locker has nothing to
 * repair.  A full ring makes writers wait; if the draining process is
 * gone (its pid and start time no longer match), a writer drops its line
 * instead and counts it; the next draining thread writes the count as a
 * line of its own.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"
#include "ipc-internal.h"

#define LOG_REGION "log"
#define LOG_MAGIC 0x31474f4c5f464853ULL /* "SHF_LOG1" */
#define LOG_HDR_SIZE 4096u
#define LOG_SIZE_DEFAULT (1u << 20)
#define LOG_SIZE_MIN 4096u
#define LOG_SIZE_MAX (1u << 30)
#define LOG_LINE_MAX (1u << 20)
#define LOG_REC_PAD UINT32_MAX
#define LOG_WAIT_MS 50
#define LOG_PREFIX_MAX 48

enum { LOG_FREE = 0, LOG_INIT = 1, LOG_READY = 2 };

struct log_hdr {
	uint64_t magic;
	uint32_t state;
	uint32_t size;               /* ring bytes, a power of two */
	uint64_t t0_ns;              /* CLOCK_MONOTONIC at creation */
	uint64_t lines;              /* lines published */
	pthread_mutex_t lock __attribute__((aligned(64)));
	/* Written by writers under the lock. */
	uint64_t write_pos __attribute__((aligned(64)));
	uint32_t write_seq;          /* futex: bumped per published line */
	uint32_t reader_waiting;
	/* Written by the draining thread. */
	uint64_t read_pos __attribute__((aligned(64)));
	uint32_t read_seq;           /* futex: bumped per drained batch */
	uint32_t writers_waiting;
	int32_t reader_pid;          /* 0: no draining thread */
	uint32_t reader_dead;        /* writers found it gone */
	uint64_t reader_start;       /* its start time */
	uint64_t dropped;            /* lines dropped since last report */
	uint32_t prefix;             /* SHF_LOG_PREFIX_* of every line */
};

struct log_rec {
	uint32_t len;                /* whole record, a multiple of 8 */
	uint32_t text_len;           /* LOG_REC_PAD: skip to the ring's end */
};

/* The log this process's shf_log_f*() calls and SHF_*() macros go to. */
static pthread_rwlock_t log_cur_lock = PTHREAD_RWLOCK_INITIALIZER;
static SHF *log_cur_shf;
static struct log_hdr *log_cur;

/* This process's draining thread (at most one). */
static pthread_mutex_t log_thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	SHF *shf;
	struct log_hdr *h;
	pthread_t th;
	int fd;
	int running;
	uint32_t stop;
} log_thr;

static void (*log_output)(char *line, uint32_t len);

/* The thread's unfinished line from shf_log_fputc() and friends. */
static __thread char *log_pend;
static __thread uint64_t log_pend_cap;
static __thread uint64_t log_pend_len;
static __thread char *log_fmt;
static __thread uint64_t log_fmt_cap;
static pthread_once_t log_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t log_key;
static int log_key_ok;

static void log_thread_exit(void *arg)
{
	(void)arg;
	free(log_pend);
	free(log_fmt);
	log_pend = log_fmt = NULL;
	log_pend_cap = log_fmt_cap = log_pend_len = 0;
}

/* fork(): the drain thread stays in the parent; the child has none. */
static void log_atfork_child(void)
{
	log_thr.running = 0;
	log_thr.shf = NULL;
	log_thr.h = NULL;
}

static void log_key_make(void)
{
	log_key_ok = pthread_key_create(&log_key, log_thread_exit) == 0;
	pthread_atfork(NULL, NULL, log_atfork_child);
}

static uint64_t log_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline char *log_data(struct log_hdr *h)
{
	return (char *)h + LOG_HDR_SIZE;
}

static uint32_t log_round_size(uint32_t want)
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

/* Largest text a record of this ring may carry. */
static uint32_t log_line_max(const struct log_hdr *h)
{
	uint32_t m = h->size / 4 - sizeof(struct log_rec) - LOG_PREFIX_MAX - 8;

	return m < LOG_LINE_MAX ? m : LOG_LINE_MAX;
}

/* The log region of shf, creating it (ring of size bytes) if asked. */
static struct log_hdr *log_open(SHF *shf, uint32_t size, int create)
{
	struct log_hdr *h = NULL;
	uint64_t got = 0;
	uint32_t st = LOG_FREE;

	if (!shf) {
		errno = EINVAL;
		return NULL;
	}
	if (create)
		h = shf_region(shf, LOG_REGION, (uint64_t)LOG_HDR_SIZE + size,
			       1, &got);
	if (!h && (!create || errno == EEXIST))
		h = shf_region(shf, LOG_REGION, 0, 0, &got);
	if (!h)
		return NULL;
	if (got < LOG_HDR_SIZE + LOG_SIZE_MIN) {
		errno = EBADMSG;
		return NULL;
	}
	if (create && __atomic_compare_exchange_n(&h->state, &st, LOG_INIT, 0,
						  __ATOMIC_ACQ_REL,
						  __ATOMIC_ACQUIRE)) {
		if (shf_mutex_init(&h->lock) < 0) {
			__atomic_store_n(&h->state, LOG_FREE, __ATOMIC_RELEASE);
			return NULL;
		}
		h->magic = LOG_MAGIC;
		h->size = (uint32_t)(got - LOG_HDR_SIZE);
		while (h->size & (h->size - 1))
			h->size &= h->size - 1; /* round down to a power of 2 */
		h->t0_ns = log_now_ns();
		__atomic_store_n(&h->state, LOG_READY, __ATOMIC_RELEASE);
	}
	/* Another process may be initialising it right now: give it 1 s. */
	for (int i = 0; i < 1000; i++) {
		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == LOG_READY)
			break;
		usleep(1000);
	}
	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != LOG_READY) {
		errno = EBUSY;
		return NULL;
	}
	if (h->magic != LOG_MAGIC || h->size < LOG_SIZE_MIN ||
	    (h->size & (h->size - 1)) ||
	    (uint64_t)LOG_HDR_SIZE + h->size > got) {
		errno = EBADMSG;
		return NULL;
	}
	return h;
}

/* 1 if a draining thread is (still) there. */
static int log_reader_alive(struct log_hdr *h, int check_proc)
{
	pid_t pid = __atomic_load_n(&h->reader_pid, __ATOMIC_ACQUIRE);

	if (pid <= 0 || __atomic_load_n(&h->reader_dead, __ATOMIC_ACQUIRE))
		return 0;
	if (check_proc && shf_proc_start_time(pid) != h->reader_start) {
		__atomic_store_n(&h->reader_dead, 1, __ATOMIC_RELEASE);
		return 0;
	}
	return 1;
}

/* "<seconds> <pid> " into buf if the log asks for it; its length. */
static uint32_t log_prefix(struct log_hdr *h, char *buf, size_t size)
{
	uint64_t ns;
	int n;

	if (__atomic_load_n(&h->prefix, __ATOMIC_RELAXED) !=
	    SHF_LOG_PREFIX_TIME_PID)
		return 0;
	ns = log_now_ns() - h->t0_ns;
	n = snprintf(buf, size, "%llu.%06llu %ld ",
		     (unsigned long long)(ns / 1000000000ull),
		     (unsigned long long)(ns % 1000000000ull) / 1000ull,
		     (long)getpid());
	if (n < 0)
		return 0;
	return (uint32_t)n >= size ? (uint32_t)size - 1 : (uint32_t)n;
}

/*
 * Publish one record of text, with a newline added if add_nl and it has
 * none; 0, or -1 with errno (EPIPE: dropped, no reader).
 */
static int log_put(SHF *shf, struct log_hdr *h, const char *text,
		   uint32_t len, int add_nl)
{
	char prefix[LOG_PREFIX_MAX];
	uint32_t size = h->size, mask = size - 1, nl, plen, rlen, off, room;
	uint64_t w, need;
	struct log_rec *rec;
	int r, waited = 0;

	if (len > log_line_max(h)) {
		errno = EMSGSIZE;
		return -1;
	}
	nl = (add_nl && (len == 0 || text[len - 1] != '\n')) ? 1 : 0;
	r = shf_mutex_lock(shf, &h->lock);
	if (r < 0)
		return -1;
	/* r == 1: the dead owner published nothing; nothing to repair. */

	plen = log_prefix(h, prefix, sizeof(prefix));
	rlen = (uint32_t)((sizeof(*rec) + plen + len + nl + 7) & ~7ull);

	w = h->write_pos;
	off = (uint32_t)(w & mask);
	room = size - off;
	need = rlen + (room < rlen ? room : 0);
	for (;;) {
		uint64_t rd = __atomic_load_n(&h->read_pos, __ATOMIC_ACQUIRE);
		uint32_t seq;

		if (w - rd > size) {
			/* Corrupt positions: start again empty. */
			__atomic_store_n(&h->write_pos, rd, __ATOMIC_RELEASE);
			w = rd;
			off = (uint32_t)(w & mask);
			room = size - off;
			need = rlen + (room < rlen ? room : 0);
		}
		if (size - (w - rd) >= need)
			break;
		if (!log_reader_alive(h, waited)) {
			__atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
			shf_mutex_unlock(&h->lock);
			errno = EPIPE;
			return -1;
		}
		seq = __atomic_load_n(&h->read_seq, __ATOMIC_SEQ_CST);
		__atomic_store_n(&h->writers_waiting, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->read_pos, __ATOMIC_SEQ_CST) != rd)
			continue;
		shf_futex_wait(&h->read_seq, seq, LOG_WAIT_MS);
		waited = 1;
	}
	if (room < rlen) {
		rec = (struct log_rec *)(log_data(h) + off);
		rec->len = room;
		rec->text_len = LOG_REC_PAD;
		w += room;
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
	shf_mutex_unlock(&h->lock);
	return 0;
}

static void log_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere to write: the output is lost */
		buf += n;
		len -= (size_t)n;
	}
}

/* Hand out a batch of lines: the callback line by line, or one write. */
static void log_emit(int fd, char *buf, size_t len, const uint32_t *lens,
		     uint32_t nlines)
{
	void (*out)(char *, uint32_t) = __atomic_load_n(&log_output,
							 __ATOMIC_ACQUIRE);

	if (!out) {
		log_write_all(fd, buf, len);
		return;
	}
	for (uint32_t i = 0; i < nlines; i++) {
		out(buf, lens[i]);
		buf += lens[i];
	}
}

#define LOG_BATCH (256u << 10)
#define LOG_BATCH_LINES 4096u

static void *log_drain(void *arg)
{
	struct log_hdr *h = arg;
	uint32_t size = h->size, mask = size - 1, nlines;
	char *buf = malloc(LOG_BATCH + LOG_LINE_MAX + 256);
	uint32_t *lens = malloc(sizeof(*lens) * LOG_BATCH_LINES);
	size_t len;

	if (!buf || !lens) {
		free(buf);
		free(lens);
		return NULL;
	}
	for (;;) {
		uint64_t rd = h->read_pos;
		uint64_t w = __atomic_load_n(&h->write_pos, __ATOMIC_ACQUIRE);
		uint64_t dropped;

		len = 0;
		nlines = 0;
		dropped = __atomic_exchange_n(&h->dropped, 0, __ATOMIC_ACQ_REL);
		if (dropped) {
			char pre[LOG_PREFIX_MAX];
			uint32_t plen = log_prefix(h, pre, sizeof(pre));
			int n = snprintf(buf, 256,
					 "%.*sshf-log: %llu lines dropped while "
					 "no thread drained the log\n",
					 (int)plen, pre,
					 (unsigned long long)dropped);

			if (n > 0 && n < 256) {
				len = (size_t)n;
				lens[nlines++] = (uint32_t)n;
			}
		}
		if (rd == w && !len) {
			uint32_t seq;

			if (__atomic_load_n(&log_thr.stop, __ATOMIC_ACQUIRE))
				break;
			__atomic_store_n(&h->reader_waiting, 1,
					 __ATOMIC_SEQ_CST);
			seq = __atomic_load_n(&h->write_seq, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&h->write_pos, __ATOMIC_SEQ_CST) ==
			    rd)
				shf_futex_wait(&h->write_seq, seq, 200);
			__atomic_store_n(&h->reader_waiting, 0,
					 __ATOMIC_RELAXED);
			continue;
		}
		if (w - rd > size)
			rd = w - size; /* corrupt: keep what may be valid */
		while (rd != w && len < LOG_BATCH &&
		       nlines < LOG_BATCH_LINES) {
			uint32_t off = (uint32_t)(rd & mask);
			struct log_rec *rec = (struct log_rec *)(log_data(h) +
								 off);
			uint32_t rlen = rec->len, tlen = rec->text_len;

			if (rlen < sizeof(*rec) || (rlen & 7) ||
			    rlen > w - rd || rlen > size - off ||
			    (tlen != LOG_REC_PAD &&
			     tlen > rlen - sizeof(*rec))) {
				/* A bad record: skip what was published. */
				__atomic_add_fetch(&h->dropped, 1,
						   __ATOMIC_RELAXED);
				rd = w;
				break;
			}
			if (tlen != LOG_REC_PAD) {
				memcpy(buf + len, rec + 1, tlen);
				len += tlen;
				lens[nlines++] = tlen;
			}
			rd += rlen;
		}
		/* Copied out: give writers the room before the slow write. */
		__atomic_store_n(&h->read_pos, rd, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&h->read_seq, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h->writers_waiting, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&h->writers_waiting, 0,
					 __ATOMIC_SEQ_CST);
			shf_futex_wake(&h->read_seq, INT_MAX);
		}
		log_emit(log_thr.fd, buf, len, lens, nlines);
	}
	free(buf);
	free(lens);
	return NULL;
}

static void log_cur_set(SHF *shf, struct log_hdr *h)
{
	pthread_rwlock_wrlock(&log_cur_lock);
	log_cur_shf = shf;
	log_cur = h;
	pthread_rwlock_unlock(&log_cur_lock);
}

SHF_EXPORT uint32_t shf_log_thread_new(SHF *shf, uint32_t log_size, int fd)
{
	struct log_hdr *h;
	uint32_t size = log_round_size(log_size);
	pid_t me = getpid();
	sigset_t all, old;
	int err;

	if (!shf || fd < 0 || !size) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	pthread_once(&log_key_once, log_key_make);
	pthread_mutex_lock(&log_thr_lock);
	if (log_thr.running) {
		pthread_mutex_unlock(&log_thr_lock);
		errno = EBUSY;
		return SHF_RET_ERROR;
	}
	h = log_open(shf, size, 1);
	if (!h)
		goto fail;
	if (shf_mutex_lock(shf, &h->lock) < 0)
		goto fail;
	if (log_reader_alive(h, 1) && h->reader_pid != me) {
		shf_mutex_unlock(&h->lock);
		errno = EBUSY;
		goto fail;
	}
	h->reader_start = shf_proc_start_time(me);
	__atomic_store_n(&h->reader_pid, me, __ATOMIC_RELEASE);
	__atomic_store_n(&h->reader_dead, 0, __ATOMIC_RELEASE);
	shf_mutex_unlock(&h->lock);

	log_thr.shf = shf;
	log_thr.h = h;
	log_thr.fd = fd;
	log_thr.stop = 0;
	/* The drain thread takes no signals: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&log_thr.th, NULL, log_drain, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		__atomic_store_n(&h->reader_pid, 0, __ATOMIC_RELEASE);
		errno = err;
		goto fail;
	}
	log_thr.running = 1;
	pthread_mutex_unlock(&log_thr_lock);
	log_cur_set(shf, h);
	return SHF_RET_OK;
fail:
	pthread_mutex_unlock(&log_thr_lock);
	return SHF_RET_ERROR;
}

/* Stop this process's draining thread if it drains shf's log. */
static int log_thread_stop(SHF *shf)
{
	struct log_hdr *h;

	pthread_mutex_lock(&log_thr_lock);
	if (!log_thr.running || log_thr.shf != shf) {
		pthread_mutex_unlock(&log_thr_lock);
		errno = ENOENT;
		return -1;
	}
	h = log_thr.h;
	__atomic_store_n(&log_thr.stop, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&h->write_seq, 1, __ATOMIC_SEQ_CST);
	shf_futex_wake(&h->write_seq, INT_MAX);
	pthread_join(log_thr.th, NULL);
	log_thr.running = 0;
	log_thr.shf = NULL;
	log_thr.h = NULL;
	if (__atomic_load_n(&h->reader_pid, __ATOMIC_ACQUIRE) == getpid())
		__atomic_store_n(&h->reader_pid, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&log_thr_lock);
	return 0;
}

SHF_EXPORT uint32_t shf_log_thread_del(SHF *shf)
{
	if (!shf) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (log_thread_stop(shf) < 0)
		return SHF_RET_ERROR;
	pthread_rwlock_wrlock(&log_cur_lock);
	if (log_cur_shf == shf) {
		log_cur_shf = NULL;
		log_cur = NULL;
	}
	pthread_rwlock_unlock(&log_cur_lock);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_attach_existing(SHF *shf)
{
	struct log_hdr *h = log_open(shf, 0, 0);

	if (!h)
		return SHF_RET_ERROR;
	log_cur_set(shf, h);
	return SHF_RET_OK;
}

/* Publish the thread's unfinished line, if any (to the current log). */
static void log_pend_flush_locked(struct log_hdr *h)
{
	if (log_pend_len && h)
		log_put(log_cur_shf, h, log_pend, (uint32_t)log_pend_len, 1);
	log_pend_len = 0;
}

SHF_EXPORT uint32_t shf_log_detach_existing(SHF *shf)
{
	int found = 0;

	if (!shf) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	pthread_rwlock_wrlock(&log_cur_lock);
	if (log_cur_shf == shf) {
		log_pend_flush_locked(log_cur);
		log_cur_shf = NULL;
		log_cur = NULL;
		found = 1;
	}
	pthread_rwlock_unlock(&log_cur_lock);
	if (!found) {
		errno = ENOENT;
		return SHF_RET_ERROR;
	}
	return SHF_RET_OK;
}

void shf_log_forget(SHF *shf)
{
	log_thread_stop(shf);
	pthread_rwlock_wrlock(&log_cur_lock);
	if (log_cur_shf == shf) {
		log_cur_shf = NULL;
		log_cur = NULL;
	}
	pthread_rwlock_unlock(&log_cur_lock);
}

SHF_EXPORT uint32_t shf_log_append(SHF *shf, const char *line, uint32_t len)
{
	struct log_hdr *h = NULL;
	int r;

	if (!shf || (!line && len)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	pthread_rwlock_rdlock(&log_cur_lock);
	if (log_cur_shf == shf) {
		r = log_put(shf, log_cur, line ? line : "", len, 0);
		pthread_rwlock_unlock(&log_cur_lock);
		return r < 0 ? SHF_RET_ERROR : SHF_RET_OK;
	}
	pthread_rwlock_unlock(&log_cur_lock);
	h = log_open(shf, 0, 0);
	if (!h)
		return SHF_RET_ERROR;
	return log_put(shf, h, line ? line : "", len, 0) < 0 ? SHF_RET_ERROR :
							  SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_set_prefix(SHF *shf, uint32_t prefix)
{
	struct log_hdr *h;

	if (!shf || prefix > SHF_LOG_PREFIX_TIME_PID) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	h = log_open(shf, 0, 0);
	if (!h)
		return SHF_RET_ERROR;
	__atomic_store_n(&h->prefix, prefix, __ATOMIC_RELAXED);
	return SHF_RET_OK;
}

SHF_EXPORT void shf_log_init(void)
{
	/* SharedHashFile reset its thread ids here; libshf keeps none. */
}

SHF_EXPORT void shf_log_output_set(void (*output)(char *line, uint32_t len))
{
	__atomic_store_n(&log_output, output, __ATOMIC_RELEASE);
}

/*
 * Text for the current log: complete lines go out one by one, the rest
 * waits in the thread's buffer for its newline.  Called with the read
 * lock held and log_cur set.  0, or -1 with errno.
 */
static int log_text(const char *s, size_t len)
{
	int ret = 0;

	pthread_once(&log_key_once, log_key_make);
	if (log_key_ok)
		pthread_setspecific(log_key, (void *)1);
	while (len) {
		const char *nl = memchr(s, '\n', len);
		size_t part = nl ? (size_t)(nl - s) + 1 : len;

		if (!log_pend_len && nl) {
			if (log_put(log_cur_shf, log_cur, s, (uint32_t)part, 1) < 0)
				ret = -1;
		} else {
			if (shf_tls_reserve(&log_pend, &log_pend_cap,
					    log_pend_len + part) < 0)
				return -1;
			memcpy(log_pend + log_pend_len, s, part);
			log_pend_len += part;
			if (nl || log_pend_len >= log_line_max(log_cur)) {
				uint64_t n = log_pend_len;

				if (n > log_line_max(log_cur))
					n = log_line_max(log_cur);
				if (log_put(log_cur_shf, log_cur, log_pend,
					    (uint32_t)n, 1) < 0)
					ret = -1;
				log_pend_len = 0;
			}
		}
		s += part;
		len -= part;
	}
	return ret;
}

/* Text when no log is attached: the output callback or the stream. */
static int log_plain(FILE *stream, const char *s, size_t len)
{
	void (*out)(char *, uint32_t) = __atomic_load_n(&log_output,
							 __ATOMIC_ACQUIRE);
	char *copy;

	if (out) {
		copy = malloc(len + 1);
		if (!copy)
			return -1;
		memcpy(copy, s, len);
		copy[len] = '\0';
		out(copy, (uint32_t)len);
		free(copy);
		return 0;
	}
	if (!stream) {
		errno = EINVAL;
		return -1;
	}
	return fwrite(s, 1, len, stream) == len ? 0 : -1;
}

static int log_string(FILE *stream, const char *s, size_t len)
{
	int r;

	pthread_rwlock_rdlock(&log_cur_lock);
	if (log_cur)
		r = log_text(s, len);
	else
		r = log_plain(stream, s, len);
	pthread_rwlock_unlock(&log_cur_lock);
	return r;
}

SHF_EXPORT int shf_log_vfprintf(FILE *stream, const char *format, va_list ap)
{
	va_list ap2;
	int n;

	if (!format) {
		errno = EINVAL;
		return -1;
	}
	va_copy(ap2, ap);
	n = vsnprintf(log_fmt, log_fmt_cap, format, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if ((uint64_t)n >= log_fmt_cap) {
		pthread_once(&log_key_once, log_key_make);
		if (log_key_ok)
			pthread_setspecific(log_key, (void *)1);
		if (shf_tls_reserve(&log_fmt, &log_fmt_cap, (uint64_t)n + 1) < 0)
			return -1;
		n = vsnprintf(log_fmt, log_fmt_cap, format, ap);
		if (n < 0)
			return -1;
	}
	return log_string(stream, log_fmt, (size_t)n) < 0 ? -1 : n;
}

SHF_EXPORT int shf_log_fprintf(FILE *stream, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = shf_log_vfprintf(stream, format, ap);
	va_end(ap);
	return n;
}

SHF_EXPORT int shf_log_fputs(const char *s, FILE *stream)
{
	if (!s) {
		errno = EINVAL;
		return EOF;
	}
	return log_string(stream, s, strlen(s)) < 0 ? EOF : 1;
}

SHF_EXPORT int shf_log_fputc(int c, FILE *stream)
{
	char ch = (char)c;

	return log_string(stream, &ch, 1) < 0 ? EOF : (unsigned char)ch;
}
