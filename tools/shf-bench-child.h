// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-child.h - the child processes of shf-bench(1), for the table
 * phases (a worker per process) and the QUEUE phase (one sender) alike.
 * Each child has a pipe of its own from the parent, "go", and all share
 * one pipe to the parent, "done": the parent starts a step by writing to
 * every go pipe and waits for a byte from each on done.  A child dies
 * with the parent.
 */
#ifndef SHF_BENCH_CHILD_H
#define SHF_BENCH_CHILD_H

#include <signal.h>
#include <sys/types.h>

#define BENCH_KIDS_MAX 1024 /* shf-bench -p */

struct bench_kids {
	unsigned n;                /* forked (pid 0: reaped) */
	pid_t pid[BENCH_KIDS_MAX];
	int go[BENCH_KIDS_MAX];    /* write ends, one per child */
	int done;                  /* read end, shared */
};

/*
 * The body of child p (of the parent pid parent): it reads go_fd and
 * writes done_fd, and must not return (it calls _exit()).
 */
typedef void bench_child_fn(void *arg, unsigned p, int go_fd, int done_fd,
			    pid_t parent);

/*
 * Fork n children that run fn.  0, or -1 with errno and *what ("pipe",
 * "fork"); those forked before a failure are in k, to be killed.
 */
int bench_kids_fork(struct bench_kids *k, unsigned n, bench_child_fn *fn,
		    void *arg, const char **what);

/*
 * In a child, first: die with the parent (exit if it is gone already),
 * SIGINT and SIGTERM to their defaults (the parent's handler is for it).
 */
void bench_child_init(pid_t parent);

/* Write b to every go pipe; 0, or -1 with errno. */
int bench_kids_go(const struct bench_kids *k, unsigned char b);

/* Close the go pipes (a child reading one sees the end) and done. */
void bench_kids_close(struct bench_kids *k);

/*
 * Reap every child, in order, through signals unless *stop is set (stop
 * NULL: through every signal).  0 if
 * each exited with status 0, else -1 with errno ECHILD at the first that
 * did not (the others stay in k, to be killed).
 */
int bench_kids_wait(struct bench_kids *k, volatile sig_atomic_t *stop);

/* Kill and reap the children left in k. */
void bench_kids_kill(struct bench_kids *k);

#endif /* SHF_BENCH_CHILD_H */
