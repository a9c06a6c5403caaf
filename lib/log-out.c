// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log-out.c - what the log writes: the prefix of a line, and the drain
 * thread's output (its fd, or the function shf_log_output_set() gave),
 * with the count of the lines that could not be written.  See
 * log-internal.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log-internal.h"

static void (*log_output)(char *line, uint32_t len);

void log_output_store(void (*output)(char *line, uint32_t len))
{
	__atomic_store_n(&log_output, output, __ATOMIC_RELEASE);
}

void (*log_output_load(void))(char *line, uint32_t len)
{
	return __atomic_load_n(&log_output, __ATOMIC_ACQUIRE);
}

/* "<seconds> <pid> " into buf if the log asks for it; its length. */
uint32_t log_prefix(struct log_hdr *h, char *buf, size_t size)
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
 * How the drain writes to fd without ever blocking.  A blocking fd whose
 * reader stopped reading held the drain thread in write() for ever, and
 * with it shf_log_thread_del(), shf_detach() and every shf_log_append()
 * that waited for room in the ring.  So a blocking pipe or terminal is
 * written through a nonblocking open of its own (/proc/self/fd, so that
 * the caller's fd keeps its flags), a socket with send(MSG_DONTWAIT), and
 * where neither can be had, after poll() says there is room, at most what
 * cannot block then: PIPE_BUF for a pipe (one with room has a page free),
 * 256 bytes for a terminal (which says so below 256 bytes queued; a write
 * may still wait for a reader there).  A file, /dev/null and a
 * nonblocking fd as they are.
 */
struct log_dest {
	int fd;      /* what to write to */
	int own;     /* fd is the nonblocking open, to close */
	int sock;    /* send(MSG_DONTWAIT) */
	size_t max;  /* the most a write may take (poll() first), or SIZE_MAX */
};

/*
 * The drain thread's writing to its fd: lines that could not be written
 * since the last note (written before the next line that can be, see
 * log_out_emit()), all of them since the thread started, the errno of the
 * last, a wait for room that gave up (the next ones do not wait until a
 * write works again), and whether the last byte that reached fd ended a
 * line; and how it writes to fd, found out at its first write and kept
 * until it stops (log_out_stop()).  Only the drain thread writes them
 * (log_out_start() runs before it is made); log_thread_lost() reads the
 * total and the errno.
 */
static struct {
	uint64_t wlost, wlost_all;
	int werr;
	int wstuck;
	int midline;
	int dest_set;
	struct log_dest dest;
} log_out;

void log_out_start(void)
{
	memset(&log_out, 0, sizeof(log_out));
}

static void log_dest_open(int fd, struct log_dest *d)
{
	char path[64];
	struct stat st;
	int fl = fcntl(fd, F_GETFL), tty;

	d->fd = fd;
	d->own = d->sock = 0;
	d->max = SIZE_MAX;
	if (fl < 0 || (fl & O_NONBLOCK) || fstat(fd, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode)) {
		d->sock = 1;
		return;
	}
	tty = isatty(fd);
	if (!S_ISFIFO(st.st_mode) && !tty)
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	d->fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (d->fd >= 0) {
		d->own = 1;
		return;
	}
	d->fd = fd;
	d->max = tty ? 256 : PIPE_BUF;
}

static void log_dest_close(struct log_dest *d)
{
	if (d->own)
		close(d->fd);
}

static ssize_t log_dest_write(struct log_dest *d, const char *buf,
			      size_t len)
{
	struct pollfd p = { .fd = d->fd, .events = POLLOUT };

	if (d->sock)
		return send(d->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (d->max != SIZE_MAX) {
		if (poll(&p, 1, 0) <= 0) {
			/* no room: as a nonblocking write */
			errno = EAGAIN;
			return -1;
		}
		if (len > d->max)
			len = d->max;
	}
	return write(d->fd, buf, len);
}

/*
 * Write len bytes to fd: again after EINTR, and after EAGAIN (or, for a
 * blocking fd, before each write) once poll() says there is room, for at
 * most LOG_WRITE_WAIT_MS without progress (not at all after a wait that
 * gave up, until a write works again).  Each write that takes bytes is
 * progress that h's writers see.  The bytes written; fewer than len with
 * errno set.
 */
static size_t log_write_all(struct log_hdr *h, int fd, const char *buf,
			    size_t len)
{
	struct log_dest *d = &log_out.dest;
	size_t done = 0;
	uint64_t until = 0;
	int err = 0;

	if (!log_out.dest_set) {
		log_dest_open(fd, d);
		log_out.dest_set = 1;
	}
	while (done < len) {
		struct pollfd p = { .fd = d->fd, .events = POLLOUT };
		ssize_t n = log_dest_write(d, buf + done, len - done);
		uint64_t now;

		if (n > 0) {
			done += (size_t)n;
			until = 0;
			log_out.wstuck = 0;
			log_out_alive(h);
			continue;
		}
		err = n == 0 ? EIO : errno; /* 0: no progress, no reason */
		if (n < 0 && err == EINTR)
			continue;
		if (n == 0 || (err != EAGAIN && err != EWOULDBLOCK) ||
		    log_out.wstuck)
			break;
		now = log_now_ns();
		if (!until)
			until = now + LOG_WRITE_WAIT_MS * 1000000ull;
		if (now >= until) {
			log_out.wstuck = 1;
			err = EAGAIN;
			break;
		}
		if (poll(&p, 1, (int)((until - now + 999999) / 1000000)) < 0 &&
		    errno != EINTR) {
			err = errno;
			break;
		}
	}
	if (done < len)
		errno = err;
	return done;
}

/*
 * A batch that could not be written whole: count the lines that did not
 * get out whole (one cut short included) and remember why.
 */
static void log_write_failed(const char *buf, size_t done,
			     const uint32_t *lens, uint32_t nlines, int err)
{
	size_t at = 0;
	uint32_t whole = 0;

	while (whole < nlines && at + lens[whole] <= done)
		at += lens[whole++];
	log_out.wlost += nlines - whole;
	__atomic_add_fetch(&log_out.wlost_all, nlines - whole,
			   __ATOMIC_RELAXED);
	__atomic_store_n(&log_out.werr, err, __ATOMIC_RELAXED);
	if (done)
		log_out.midline = buf[done - 1] != '\n';
}

/*
 * Before anything else goes to fd: the count of the lines that could not
 * be written, as a line of its own (after a newline if a line was cut
 * short), in the form of the dropped lines' note.  1 if none is left to
 * write; 0 with errno if it did not go out whole.
 */
static int log_write_note(struct log_hdr *h, int fd)
{
	char note[256 + LOG_PREFIX_MAX], pre[LOG_PREFIX_MAX];
	uint32_t plen;
	size_t done;
	int n;

	if (!log_out.wlost)
		return 1;
	plen = log_prefix(h, pre, sizeof(pre));
	n = snprintf(note, sizeof(note),
		     "%s%.*sshf-log: %llu lines dropped while the output could "
		     "not be written (%s)\n",
		     log_out.midline ? "\n" : "", (int)plen, pre,
		     (unsigned long long)log_out.wlost, strerror(log_out.werr));
	if (n <= 0 || (size_t)n >= sizeof(note)) {
		errno = EOVERFLOW;
		return 0;
	}
	done = log_write_all(h, fd, note, (size_t)n);
	if (done)
		log_out.midline = note[done - 1] != '\n';
	if (done < (size_t)n)
		return 0;
	log_out.wlost = 0;
	return 1;
}

void log_out_emit(struct log_hdr *h, int fd, char *buf, size_t len,
		  const uint32_t *lens, uint32_t nlines)
{
	void (*out)(char *, uint32_t) = log_output_load();

	if (!out) {
		size_t done;

		if (!log_write_note(h, fd)) {
			/*
			 * The note did not go out whole: nor does the batch,
			 * counted as lost, so that no line joins a cut note
			 * and the next note still comes before the next line.
			 */
			if (len)
				log_write_failed(buf, 0, lens, nlines, errno);
			return;
		}
		if (!len)
			return;
		done = log_write_all(h, fd, buf, len);
		if (done < len)
			log_write_failed(buf, done, lens, nlines, errno);
		else
			log_out.midline = buf[len - 1] != '\n';
		return;
	}
	/* a slow function shows its progress line by line */
	for (uint32_t i = 0; i < nlines; i++) {
		out(buf, lens[i]);
		buf += lens[i];
		log_out_alive(h);
	}
}

void log_out_stop(struct log_hdr *h, int fd)
{
	/* the last try at saying what was lost */
	if (!log_output_load())
		log_write_note(h, fd);
	if (log_out.dest_set)
		log_dest_close(&log_out.dest);
	log_out.dest_set = 0;
}

void log_thread_lost(uint64_t *lines, int *err)
{
	*lines = __atomic_load_n(&log_out.wlost_all, __ATOMIC_RELAXED);
	*err = __atomic_load_n(&log_out.werr, __ATOMIC_RELAXED);
}
