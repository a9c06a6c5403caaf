// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-child.c - forking, starting and reaping the child processes
 * of shf-bench(1) (see shf-bench-child.h).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shf-bench-child.h"

int bench_kids_fork(struct bench_kids *k, unsigned n, bench_child_fn *fn,
		    void *arg, const char **what)
{
	pid_t parent = getpid();
	int done[2], e;
	unsigned p;

	k->n = 0;
	k->done = -1;
	*what = "pipe";
	if (pipe(done) < 0)
		return -1;
	for (p = 0; p < n; p++) {
		int gp[2];
		pid_t pid;

		*what = "pipe";
		if (pipe(gp) < 0)
			goto fail;
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			*what = "fork";
			e = errno;
			close(gp[0]);
			close(gp[1]);
			errno = e;
			goto fail;
		}
		if (pid == 0) {
			close(gp[1]);
			close(done[0]);
			fn(arg, p, gp[0], done[1], parent);
			_exit(1);
		}
		close(gp[0]);
		k->go[p] = gp[1];
		k->pid[k->n++] = pid;
	}
	close(done[1]);
	k->done = done[0];
	return 0;
fail:
	e = errno;
	close(done[0]);
	close(done[1]);
	errno = e;
	return -1;
}

void bench_child_init(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}

int bench_kids_go(const struct bench_kids *k, unsigned char b)
{
	unsigned p;

	for (p = 0; p < k->n; p++)
		if (write(k->go[p], &b, 1) != 1)
			return -1;
	return 0;
}

void bench_kids_close(struct bench_kids *k)
{
	unsigned p;

	for (p = 0; p < k->n; p++) {
		if (k->go[p] >= 0)
			close(k->go[p]);
		k->go[p] = -1;
	}
	if (k->done >= 0)
		close(k->done);
	k->done = -1;
}

int bench_kids_wait(struct bench_kids *k, volatile sig_atomic_t *stop)
{
	unsigned p;
	int status, r;

	for (p = 0; p < k->n; p++) {
		while ((r = waitpid(k->pid[p], &status, 0)) < 0 &&
		       errno == EINTR && !(stop && *stop))
			;
		if (r > 0)
			k->pid[p] = 0;
		if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
			errno = ECHILD;
			return -1;
		}
	}
	k->n = 0;
	return 0;
}

void bench_kids_kill(struct bench_kids *k)
{
	unsigned p;

	for (p = 0; p < k->n; p++)
		if (k->pid[p] > 0)
			kill(k->pid[p], SIGKILL);
	for (p = 0; p < k->n; p++)
		if (k->pid[p] > 0)
			waitpid(k->pid[p], NULL, 0);
	k->n = 0;
}
