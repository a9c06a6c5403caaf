// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * util.c - the library's small helpers that know nothing of tables: one
 * clock, one way to start and to reap a child process, one buffer growth,
 * and the claim of a region to set up (which names its claimant by its
 * start time, proc.c).  None of them prints, exits or aborts.  See
 * shf-internal.h, section util.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

extern char **environ;

uint64_t shf_clock_ns(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these clocks with a valid pointer (a vDSO read). */
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int shf_spawn(pid_t *pid, const char *path, char *const argv[],
	      const posix_spawn_file_actions_t *fa, int flags)
{
	posix_spawnattr_t attr;
	short pflags = POSIX_SPAWN_SETSIGMASK;
	sigset_t set;
	int err;

	err = posix_spawnattr_init(&attr);
	if (err)
		return err;
	/*
	 * Nothing blocked, so that a helper spawned from a thread that blocks
	 * signals still dies on SIGTERM.
	 */
	sigemptyset(&set);
	err = posix_spawnattr_setsigmask(&attr, &set);
	if (!err && (flags & SHF_SPAWN_DAEMON)) {
		/* Own session, default dispositions: not the caller's job. */
		sigfillset(&set);
		err = posix_spawnattr_setsigdefault(&attr, &set);
		pflags |= POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF;
	}
	if (!err)
		err = posix_spawnattr_setflags(&attr, pflags);
	if (!err)
		err = posix_spawn(pid, path, fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	return err;
}

/* Wait for pid with WNOHANG until deadline_ms; 1 reaped, 0 not yet. */
static int reap_until(pid_t pid, int64_t deadline_ms)
{
	struct timespec ms = { 0, 1000000 };
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return 1;
		/* ECHILD: SIGCHLD ignored, or the caller's handler reaped it */
		if (r < 0 && errno != EINTR)
			return 1;
		if (r == 0 && (int64_t)shf_clock_ms(CLOCK_MONOTONIC) >=
				      deadline_ms)
			return 0;
		if (r == 0)
			nanosleep(&ms, NULL);
	}
}

int shf_reap(pid_t pid, int64_t deadline_ms)
{
	int status;

	if (deadline_ms >= 0) {
		if (reap_until(pid, deadline_ms))
			return 0;
		kill(pid, SIGKILL); /* stuck, or not what we started */
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno == EINTR)
			continue;
		/* SIGCHLD ignored by the caller: the kernel reaped it. */
		if (errno == ECHILD)
			return 0;
		return -1;
	}
	return 0;
}

int shf_buf_grow(char **buf, uint64_t *cap, uint64_t len)
{
	uint64_t new_cap;
	char *p;

	if (!buf || !cap) {
		errno = EINVAL;
		return -1;
	}
	if (*buf && *cap >= len)
		return 0;
	new_cap = *cap ? *cap : 64;
	while (new_cap < len) {
		if (new_cap > UINT64_MAX / 2) {
			new_cap = len;
			break;
		}
		new_cap *= 2;
	}
	/* malloc() refuses more than PTRDIFF_MAX bytes. */
	if (new_cap > PTRDIFF_MAX) {
		errno = ENOMEM;
		return -1;
	}
	p = realloc(*buf, (size_t)new_cap);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	*buf = p;
	*cap = new_cap;
	return 0;
}

uint64_t shf_claim_word(pid_t pid)
{
	uint64_t start = shf_proc_group_start_time(pid);

	if (pid <= 0 || (uint64_t)pid >> SHF_CLAIM_PID_BITS)
		return 0;
	return (uint64_t)pid | start << SHF_CLAIM_PID_BITS;
}

int shf_claim_alive(uint64_t w)
{
	pid_t pid = (pid_t)(w & ((1u << SHF_CLAIM_PID_BITS) - 1));

	/* where /proc does not tell (hidepid=), alive */
	return shf_proc_alive(pid, 1, w >> SHF_CLAIM_PID_BITS);
}

int shf_claim_take(uint64_t *claim, uint32_t *state, uint32_t *st)
{
	uint64_t mine = shf_claim_word(getpid()), w;
	int tries;

	*st = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	if (*st > SHF_CLAIM_INIT)
		return -1;
	w = __atomic_load_n(claim, __ATOMIC_ACQUIRE);
	if (!mine || (w && shf_claim_alive(w)) ||
	    !__atomic_compare_exchange_n(claim, &w, mine, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -1;
	/*
	 * Ours.  The state as it is now (a claimant since gone may have moved
	 * it to INIT, or finished: then not again).
	 */
	*st = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	for (tries = 0; tries < 8 && *st <= SHF_CLAIM_INIT; tries++)
		if (__atomic_compare_exchange_n(state, st, SHF_CLAIM_INIT, 0,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
	w = mine; /* let go of the claim, so that nobody waits for us */
	__atomic_compare_exchange_n(claim, &w, 0, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	return -1;
}
