/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-internal.h - what the library's files share; never installed.
 */
#ifndef SHF_INTERNAL_H
#define SHF_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "shf.h"

#define SHF_EXPORT __attribute__((visibility("default")))

#define SHF_LIKELY(x) __builtin_expect(!!(x), 1)
#define SHF_UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Named regions: fixed-size blocks of shared memory inside the table's file,
 * found by name by every process that attaches (queues, race lines, logs).
 * The pointer stays valid until shf_detach().  Returns NULL with errno:
 * ENOENT (absent and !create), EEXIST (create with another size), ENOSPC,
 * ENOMEM, EINVAL (name longer than SHF_REGION_NAME_MAX-1, size 0), EBADMSG.
 * The memory of a new region is zeroed.  *size_out (may be NULL) gets the
 * region's size.
 */
#define SHF_REGION_NAME_MAX 48
#define SHF_REGIONS_MAX 64
void *shf_region(SHF *shf, const char *name, uint64_t size, int create,
		 uint64_t *size_out);
/* Remove a named region's entry (its space is not reused). 0 or -1/errno. */
int shf_region_remove(SHF *shf, const char *name);

/*
 * Robust process-shared mutexes for use inside shared memory.  lock returns
 * 0 when the mutex is held, 1 when held and its previous owner died holding
 * it (the caller must repair what it protects; the mutex is already marked
 * consistent), -1 with errno on error.  Counted in the table's stats.
 */
int shf_mutex_init(pthread_mutex_t *m);
int shf_mutex_lock(SHF *shf, pthread_mutex_t *m);
void shf_mutex_unlock(pthread_mutex_t *m);

/* Directory and name of the table, for the monitor and shf_del(). */
const char *shf_handle_path(SHF *shf);
const char *shf_handle_name(SHF *shf);
/* The descriptor of the table file (for fstat(): its dev and inode). */
int shf_handle_fd(SHF *shf);

/* Grow a thread-local buffer to at least len bytes; 0 or -1/ENOMEM. */
int shf_tls_reserve(char **buf, uint64_t *cap, uint64_t len);

/*
 * Owner record: the process that attached with delete_upon_process_exit,
 * as pid and start time (field 22 of /proc/PID/stat, in clock ticks since
 * boot), so that a reused pid is not taken for the owner.  0 if none.
 */
int shf_owner_get(SHF *shf, pid_t *pid, uint64_t *start_time);
/* Start time of a process as above; 0 with errno (ESRCH) if it does not
 * exist or is a zombie. */
uint64_t shf_proc_start_time(pid_t pid);

/*
 * Start the monitor that removes the table when the calling process dies
 * (lib/monitor.c).  0, or -1 with errno.
 */
int shf_monitor_start(SHF *shf);

#endif /* SHF_INTERNAL_H */
