/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc-internal.h - what the queue, race and log files (lib/q.c,
 * lib/race.c, lib/log.c) share with the rest of the library; never
 * installed.
 */
#ifndef SHF_IPC_INTERNAL_H
#define SHF_IPC_INTERNAL_H

#include <stdint.h>
#include <time.h>

#include "shf.h"

/*
 * Forget every per-process and per-thread state the IPC calls keep for a
 * handle: stops this process's log thread on it, drops its queue states.
 * shf_detach() and shf_del() call it before they unmap the table, so that
 * a later handle that malloc() places at the same address is never taken
 * for the old one.  Safe to call for a handle that never used queues or
 * logs.
 */
void shf_ipc_detach(SHF *shf);

/* lib/log.c's part of shf_ipc_detach(). */
void shf_log_forget(SHF *shf);

/*
 * Futex helpers on a 32-bit word in shared memory (not FUTEX_PRIVATE: the
 * waiters are in other processes).  wait returns when *addr != val, when
 * woken, or after timeout_ms (<0: no timeout); wake wakes up to n waiters.
 */
int shf_futex_wait(uint32_t *addr, uint32_t val, int timeout_ms);
void shf_futex_wake(uint32_t *addr, int n);

#endif /* SHF_IPC_INTERNAL_H */
