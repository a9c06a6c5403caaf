/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log-internal.h - what the files of the multiplexed log share; never
 * installed.  In layers: log-out.c writes what the drain takes out (and
 * a line's prefix); log-drain.c runs this process's drain thread and says
 * whether a log's reader lives; log-ring.c owns the ring in the table (its
 * region, writing a record); log.c the process's side (the log its
 * shf_log_f*() calls go to, lines pieced together per thread, the API).
 *
 * The named region "log" holds a header and a ring of records.  Writers
 * (any thread of any process) take the log's lock, wait for room, copy
 * the text (as given, or "<seconds> <pid> <text>" when the log was asked
 * for a prefix) into the ring and publish it by moving write_pos.  One
 * draining thread, started by shf_log_thread_new() in one process, copies
 * records out, moves read_pos and writes them to its fd.
 *
 * A writer that dies while holding the lock has published nothing (the
 * write_pos store is the commit), so the next locker has nothing to
 * repair.  A full ring makes writers wait; if the draining process is
 * gone (its pid and start time no longer match), a writer drops its line
 * instead and counts it; the next draining thread writes the count as a
 * line of its own.  So does a writer that saw no progress of the reader
 * for LOG_STALL_MS (ETIMEDOUT): a live process may drain nothing.  Lines
 * the drain cannot write to its fd (an error, or an fd, blocking or not,
 * without room for LOG_WRITE_WAIT_MS) are counted too, and a note of the
 * same form goes out before the next line that can be written.  Every
 * position and length read from the ring is checked against the ring's
 * size as this process found it when it opened the log (a size word
 * another process rewrites is not believed).
 */
#ifndef SHF_LOG_INTERNAL_H
#define SHF_LOG_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "shf-internal.h"

#define LOG_REGION "log"
/* "SHF_LOG2": 2, the library's own lock word (1 had a glibc mutex) */
#define LOG_MAGIC 0x32474f4c5f464853ULL
#define LOG_HDR_SIZE 4096u
#define LOG_SIZE_DEFAULT (1u << 20)
#define LOG_SIZE_MIN 4096u
#define LOG_SIZE_MAX (1u << 30)
#define LOG_LINE_MAX (1u << 20)
#define LOG_REC_PAD UINT32_MAX
#define LOG_WAIT_MS 50
/* How long the drain waits for room in its fd (log-out.c). */
#define LOG_WRITE_WAIT_MS 2000
/*
 * How long a writer waits for room while the reader shows no progress
 * (read_pos and read_seq unchanged) before it gives up (ETIMEDOUT): the
 * reader may be a live process that drains nothing (stopped, or named by
 * a word another process wrote).  Longer than the drain's own wait for its
 * fd, and the drain shows progress while it writes (log_out_alive()).
 */
#define LOG_STALL_MS 5000
#define LOG_PREFIX_MAX 48

enum { LOG_FREE = 0, LOG_INIT = 1, LOG_READY = 2 };

struct log_hdr {
	uint64_t magic;
	uint32_t state;
	uint32_t size;               /* ring bytes, a power of two */
	uint64_t t0_ns;              /* CLOCK_MONOTONIC at creation */
	uint64_t lines;              /* lines published */
	uint64_t init_claim;         /* who sets it up (shf_claim_word()) */
	/* the library's own lock (shf-internal.h): nothing in it that
	 * its holder writes through, whatever others write */
	struct shf_lock lk __attribute__((aligned(64)));
	/* Written by writers under the lock. */
	uint64_t write_pos __attribute__((aligned(64)));
	uint32_t write_seq;          /* futex: bumped per published line */
	uint32_t reader_waiting;
	/* Written by the draining thread. */
	uint64_t read_pos __attribute__((aligned(64)));
	uint32_t read_seq;           /* futex: bumped per drained batch,
				      * and while it is written out */
	uint32_t writers_waiting;
	int32_t reader_pid;          /* 0: no draining thread */
	uint32_t reader_dead;        /* writers found it gone */
	uint64_t reader_start;       /* its start time */
	uint64_t dropped;            /* lines dropped since last report */
	uint32_t prefix;             /* SHF_LOG_PREFIX_* of every line */
	/*
	 * A writer gave up on the reader (LOG_STALL_MS) at read_seq
	 * stall_seq: while read_seq still reads that, the next ones give
	 * up at once.  Under the lock; in the header's padding (older
	 * libraries leave it 0).
	 */
	uint32_t stalled;
	uint32_t stall_seq;
};

struct log_rec {
	uint32_t len;                /* whole record, a multiple of 8 */
	uint32_t text_len;           /* LOG_REC_PAD: skip to the ring's end */
};

/* This process's view of a table's log, checked when it was opened. */
struct log_ref {
	SHF *shf;
	struct log_hdr *h;
	uint32_t size; /* of the ring: a power of two, inside the region */
};

static inline uint64_t log_now_ns(void)
{
	return shf_clock_ns(CLOCK_MONOTONIC);
}

/* The ring's bytes, after the header. */
static inline char *log_data(struct log_hdr *h)
{
	return (char *)h + LOG_HDR_SIZE;
}

/*
 * The log's lock: held only while a record is copied in (writers wait for
 * room without it), so a waiter gives up on a live holder after the
 * table's bound (ETIMEDOUT), as for a shard.
 */
static inline int log_lock(const struct log_ref *r)
{
	uint64_t stuck = 0; /* not kept: each wait may last the bound */

	return shf_lock_take(&r->h->lk, shf_handle_lock_site(r->shf), &stuck);
}

/*
 * The drain shows writers that wait for room that it lives and works,
 * though the batch it copied out takes long to write: they give up only
 * after LOG_STALL_MS without this (no wake: they look every LOG_WAIT_MS).
 */
static inline void log_out_alive(struct log_hdr *h)
{
	__atomic_add_fetch(&h->read_seq, 1, __ATOMIC_RELAXED);
}

/* ============================================================ log-out.c */

/* "<seconds> <pid> " into buf if h's log asks for it; its length. */
uint32_t log_prefix(struct log_hdr *h, char *buf, size_t size);
/* Where drained lines go instead of the fd (NULL: the fd). */
void log_output_store(void (*output)(char *line, uint32_t len));
void (*log_output_load(void))(char *line, uint32_t len);
/* The drain thread starts: nothing lost yet. */
void log_out_start(void);
/*
 * Hand out a batch of lines (lens[] of each, in buf): the function of
 * shf_log_output_set() line by line, or one write to fd, after the note of
 * the lines that could not be written before, if any (if that note does
 * not go out whole, the batch is not written: its lines are counted in
 * the next one).
 */
void log_out_emit(struct log_hdr *h, int fd, char *buf, size_t len,
		  const uint32_t *lens, uint32_t nlines);
/* The drain thread stops: the last try at that note. */
void log_out_stop(struct log_hdr *h, int fd);
/*
 * The lines this process's drain thread, the last one started, could not
 * write to its fd (a write error, or no room for LOG_WRITE_WAIT_MS), and
 * the errno of the last of them; exact once it has stopped.
 */
void log_thread_lost(uint64_t *lines, int *err);

/* ========================================================== log-drain.c */

/*
 * 1 if a reader (a drain thread) is, as far as can be told, there; with
 * check_proc, also that its process lives, maps the table and, where it
 * is this one, runs its drain on this log (else the log is marked as
 * having a dead reader).
 */
int log_reader_alive(const struct log_ref *r, int check_proc);
/*
 * Start this process's one drain thread on r's log, writing to fd (or to
 * output, when set): 0, or -1 with errno (EBUSY: one drains already;
 * ENOMEM: no memory for its buffers; EAGAIN: no thread).
 */
int log_thread_start(const struct log_ref *r, int fd);
/* Stop it if it drains shf's log: 0, or -1 with ENOENT. */
int log_thread_stop(SHF *shf);

/* =========================================================== log-ring.c */

/* Open shf's log, creating it (ring of size bytes) if asked; 0 or -1. */
int log_open(SHF *shf, uint32_t size, int create, struct log_ref *ref);
/* Ring bytes for log_size (0: the default); 0 if too large. */
uint32_t log_round_size(uint32_t want);
/* Largest text a record of a ring of size bytes may carry. */
uint32_t log_line_max(uint32_t size);
/*
 * Publish one record of text, with a newline added if add_nl and it has
 * none; 0, or -1 with errno (EPIPE: dropped, no reader; ETIMEDOUT: the
 * lock's holder, or the reader, made no progress for its bound;
 * EMSGSIZE).
 */
int log_put(const struct log_ref *r, const char *text, uint32_t len,
	    int add_nl);
/* Set what goes before each line, for every writer. */
void log_prefix_set(const struct log_ref *r, uint32_t prefix);

#endif /* SHF_LOG_INTERNAL_H */
