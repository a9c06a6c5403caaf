// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log.c - multiplexed logging (shf_log_*), the process's side: the log
 * this process's shf_log_f*() calls go to, the lines each thread pieces
 * together until their newline, and the calls.  The ring itself is
 * log-ring.c's, the drain thread log-drain.c's (see log-internal.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log-internal.h"
#include "log-tool.h"

/* The log this process's shf_log_f*() calls and SHF_*() macros go to. */
static pthread_rwlock_t log_cur_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct log_ref log_cur; /* .h NULL: none */

/* The thread's unfinished line from shf_log_fputc() and friends. */
static __thread char *log_pend SHF_TLS_IE;
static __thread uint64_t log_pend_cap SHF_TLS_IE;
static __thread uint64_t log_pend_len SHF_TLS_IE;
static __thread char *log_fmt SHF_TLS_IE;
static __thread uint64_t log_fmt_cap SHF_TLS_IE;
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

static void log_forget(void *hv);

/*
 * fork(): log_cur_lock made anew in the child.  Another thread of the
 * parent may have held it at the fork (an append holds it, read, while it
 * waits for room in the ring), and it would stay held for ever in the
 * child, where that thread is not: the child's shf_detach() or
 * shf_log_detach_existing() would wait for it.
 */
static void log_cur_atfork_child(void)
{
	pthread_rwlock_init(&log_cur_lock, NULL);
}

static void log_key_make(void)
{
	log_key_ok = pthread_key_create(&log_key, log_thread_exit) == 0;
	pthread_atfork(NULL, NULL, log_cur_atfork_child);
	shf_reg_hook(log_forget);
}

/* log_cur_lock, with the atfork handler registered before it is held. */
static void log_cur_read(void)
{
	pthread_once(&log_key_once, log_key_make);
	pthread_rwlock_rdlock(&log_cur_lock);
}

static void log_cur_write(void)
{
	pthread_once(&log_key_once, log_key_make);
	pthread_rwlock_wrlock(&log_cur_lock);
}

/* Have the thread's buffers freed when it exits. */
static void log_key_set(void)
{
	pthread_once(&log_key_once, log_key_make);
	if (log_key_ok)
		pthread_setspecific(log_key, (void *)1);
}

/* Open shf's log (registering the detach hook first); 0 or -1. */
static int log_get(SHF *shf, uint32_t size, int create, struct log_ref *ref)
{
	pthread_once(&log_key_once, log_key_make);
	return log_open(shf, size, create, ref);
}

static void log_cur_set(const struct log_ref *ref)
{
	log_cur_write();
	if (ref)
		log_cur = *ref;
	else
		memset(&log_cur, 0, sizeof(log_cur));
	pthread_rwlock_unlock(&log_cur_lock);
}

/* Let go of shf's log if it is the current one; 1 if it was. */
static int log_cur_drop(SHF *shf)
{
	int was;

	log_cur_write();
	was = log_cur.h && log_cur.shf == shf;
	if (was)
		memset(&log_cur, 0, sizeof(log_cur));
	pthread_rwlock_unlock(&log_cur_lock);
	return was;
}

/*
 * The thread's unfinished line may have been begun for another log, of
 * longer records (the current log changed since): the pieces of it that
 * fill a record of this one (max) go out now, as those of a long line
 * do, so that what is left is shorter than max.  Under log_cur_lock, with
 * log_cur set.  0, or -1 with errno if a piece could not be appended.
 */
static int log_pend_cut(uint32_t max)
{
	uint64_t at = 0;
	int ret = 0;

	while (log_pend_len - at >= max) {
		if (log_put(&log_cur, log_pend + at, max, 0) < 0)
			ret = -1;
		at += max;
	}
	if (at) {
		memmove(log_pend, log_pend + at, log_pend_len - at);
		log_pend_len -= at;
	}
	return ret;
}

SHF_EXPORT uint32_t shf_log_thread_new(SHF *shf, uint32_t log_size, int fd)
{
	uint32_t size = log_round_size(log_size);
	struct log_ref ref;

	if (!shf || fd < 0 || !size) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (log_get(shf, size, 1, &ref) < 0 || log_thread_start(&ref, fd) < 0)
		return SHF_RET_ERROR;
	log_cur_set(&ref);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_thread_del(SHF *shf)
{
	if (!shf) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (log_thread_stop(shf) < 0)
		return SHF_RET_ERROR;
	log_cur_drop(shf);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_attach_existing(SHF *shf)
{
	struct log_ref ref;

	if (log_get(shf, 0, 0, &ref) < 0)
		return SHF_RET_ERROR;
	log_cur_set(&ref);
	return SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_detach_existing(SHF *shf)
{
	int found = 0;

	if (!shf) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	log_cur_write();
	if (log_cur.h && log_cur.shf == shf) {
		/* the thread's unfinished line ends here */
		if (log_pend_len) {
			log_pend_cut(log_line_max(log_cur.size));
			log_put(&log_cur, log_pend, (uint32_t)log_pend_len, 1);
		}
		log_pend_len = 0;
		memset(&log_cur, 0, sizeof(log_cur));
		found = 1;
	}
	pthread_rwlock_unlock(&log_cur_lock);
	if (!found) {
		errno = ENOENT;
		return SHF_RET_ERROR;
	}
	return SHF_RET_OK;
}

/*
 * shf_detach() of any handle (a registry hook, registered at the first
 * use of a log): stop this process's drain thread on it and let go of it.
 */
static void log_forget(void *hv)
{
	log_thread_stop(hv);
	log_cur_drop(hv);
}

SHF_EXPORT uint32_t shf_log_append(SHF *shf, const char *line, uint32_t len)
{
	struct log_ref ref;
	int r;

	if (!shf || (!line && len)) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	log_cur_read();
	if (log_cur.h && log_cur.shf == shf) {
		r = log_put(&log_cur, line ? line : "", len, 0);
		pthread_rwlock_unlock(&log_cur_lock);
		return r < 0 ? SHF_RET_ERROR : SHF_RET_OK;
	}
	pthread_rwlock_unlock(&log_cur_lock);
	if (log_get(shf, 0, 0, &ref) < 0)
		return SHF_RET_ERROR;
	return log_put(&ref, line ? line : "", len, 0) < 0 ? SHF_RET_ERROR :
							    SHF_RET_OK;
}

SHF_EXPORT uint32_t shf_log_set_prefix(SHF *shf, uint32_t prefix)
{
	struct log_ref ref;

	if (!shf || prefix > SHF_LOG_PREFIX_TIME_PID) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (log_get(shf, 0, 0, &ref) < 0)
		return SHF_RET_ERROR;
	log_prefix_set(&ref, prefix);
	return SHF_RET_OK;
}

SHF_EXPORT void shf_log_init(void)
{
	/* SharedHashFile reset its thread ids here; libshf keeps none. */
}

SHF_EXPORT void shf_log_output_set(void (*output)(char *line, uint32_t len))
{
	log_output_store(output);
}

/*
 * Text for the current log: complete lines go out one by one, the rest
 * waits in the thread's buffer for its newline; a line longer than a
 * record can carry goes out in pieces (which others' lines may come
 * between).  Called with the read lock held and log_cur set.  0, or -1
 * with errno.
 */
static int log_text(const char *s, size_t len)
{
	uint32_t max = log_line_max(log_cur.size);
	int ret = log_pend_cut(max);

	log_key_set();
	while (len) {
		const char *nl = memchr(s, '\n', len);
		size_t part = nl ? (size_t)(nl - s) + 1 : len;

		if (!log_pend_len && nl && part <= max) {
			if (log_put(&log_cur, s, (uint32_t)part, 1) < 0)
				ret = -1;
			s += part;
			len -= part;
			continue;
		}
		/* log_pend_len < max: cut above, put below when it is max */
		if (part > max - log_pend_len)
			part = max - log_pend_len;
		if (shf_buf_grow(&log_pend, &log_pend_cap,
				 log_pend_len + part) < 0)
			return -1;
		memcpy(log_pend + log_pend_len, s, part);
		log_pend_len += part;
		s += part;
		len -= part;
		if (log_pend[log_pend_len - 1] == '\n' || log_pend_len >= max) {
			if (log_put(&log_cur, log_pend, (uint32_t)log_pend_len,
				    0) < 0)
				ret = -1;
			log_pend_len = 0;
		}
	}
	return ret;
}

/* Text when no log is attached: the output callback or the stream. */
static int log_plain(FILE *stream, const char *s, size_t len)
{
	void (*out)(char *, uint32_t) = log_output_load();
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

	log_cur_read();
	if (log_cur.h)
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
		log_key_set();
		if (shf_buf_grow(&log_fmt, &log_fmt_cap, (uint64_t)n + 1) < 0)
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

/* ------------------------------------------- for shf-log(1): log-tool.h */

uint32_t shf_log_tool_line_max(SHF *shf)
{
	struct log_ref ref;

	if (log_get(shf, 0, 0, &ref) < 0)
		return 0;
	return log_line_max(ref.size);
}

void shf_log_tool_lost(uint64_t *lines, int *err)
{
	log_thread_lost(lines, err);
}

int shf_log_tool_removed(SHF *shf)
{
	return shf && shf_handle_removed(shf);
}
