// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * helpers.c - the helpers SharedHashFile exports besides its tables: the
 * version, debug verbosity, the growth knob, file system space, time,
 * starting a child and reading a command's output.  None of them prints,
 * exits or aborts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

/* Kept for compatibility: libshf prints nothing, whatever the level. */
static int debug_verbosity = 1;

SHF_EXPORT const char *shf_version(void)
{
	return PACKAGE_VERSION;
}

SHF_EXPORT void shf_debug_verbosity_less(void)
{
	__atomic_sub_fetch(&debug_verbosity, 1, __ATOMIC_RELAXED);
}

SHF_EXPORT void shf_debug_verbosity_more(void)
{
	__atomic_add_fetch(&debug_verbosity, 1, __ATOMIC_RELAXED);
}

SHF_EXPORT void shf_set_data_need_factor(uint32_t data_needed_factor)
{
	/* Growth is driven by the table itself; see shf_set_data_need_factor(3). */
	(void)data_needed_factor;
}

SHF_EXPORT uint64_t shf_get_vfs_available(const char *path)
{
	struct statvfs sv;

	if (!path) {
		errno = EINVAL;
		return 0;
	}
	if (statvfs(path, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

SHF_EXPORT double shf_get_time_in_seconds(void)
{
	struct timespec ts;

	/* Finer than shf_clock_ms(): callers time short runs with it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* argv of execl(path, child_file, arg1, arg2, NULL): the first NULL ends it. */
static pid_t exec_child(const char *path, const char *child_file,
			const char *arg1, const char *arg2)
{
	char *argv[4] = { (char *)child_file, NULL, NULL, NULL };
	pid_t pid;
	int err;

	if (arg1) {
		argv[1] = (char *)arg1;
		argv[2] = (char *)arg2;
	}
	err = shf_spawn(&pid, path, argv, NULL, 0);
	if (err) {
		errno = err;
		return -1;
	}
	return pid;
}

/*
 * As SharedHashFile: execl(child_path, child_file, arg1, arg2, NULL), with
 * child_path the program's full path and child_file its argv[0].  No PATH
 * search; a NULL or empty child_path runs child_file as a path itself.
 */
pid_t shf_exec_child_v2(const char *child_path, const char *child_file,
			const char *child_argument_1,
			const char *child_argument_2);
__asm__(".symver shf_exec_child_v2,shf_exec_child@@LIBSHF_1.2");
SHF_EXPORT pid_t shf_exec_child_v2(const char *child_path,
				   const char *child_file,
				   const char *child_argument_1,
				   const char *child_argument_2)
{
	if (!child_file || !*child_file) {
		errno = EINVAL;
		return -1;
	}
	return exec_child(child_path && *child_path ? child_path : child_file,
			  child_file, child_argument_1, child_argument_2);
}

/*
 * libshf 1.0 and 1.1 (binaries built before 1.2 bind this one) ran
 * child_path "/" child_file.
 */
pid_t shf_exec_child_v1(const char *child_path, const char *child_file,
			const char *child_argument_1,
			const char *child_argument_2);
__asm__(".symver shf_exec_child_v1,shf_exec_child@LIBSHF_1.0");
SHF_EXPORT pid_t shf_exec_child_v1(const char *child_path,
				   const char *child_file,
				   const char *child_argument_1,
				   const char *child_argument_2)
{
	size_t path_len, file_len;
	char *path_file;
	pid_t pid;
	int err;

	if (!child_file || !*child_file) {
		errno = EINVAL;
		return -1;
	}
	path_len = child_path ? strlen(child_path) : 0;
	file_len = strlen(child_file);
	path_file = malloc(path_len + 1 + file_len + 1);
	if (!path_file) {
		errno = ENOMEM;
		return -1;
	}
	if (path_len) {
		memcpy(path_file, child_path, path_len);
		path_file[path_len] = '/';
		memcpy(path_file + path_len + 1, child_file, file_len + 1);
	} else {
		memcpy(path_file, child_file, file_len + 1);
	}
	pid = exec_child(path_file, child_file, child_argument_1,
			 child_argument_2);
	err = errno;
	free(path_file);
	errno = err;
	return pid;
}

SHF_EXPORT char *shf_backticks(const char *cmd)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	char *out = NULL;
	uint64_t cap = 0, len = 0;
	int fds[2], err, saved;
	pid_t pid = -1;
	ssize_t n;

	if (!cmd) {
		errno = EINVAL;
		return NULL;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return NULL;

	/* dup2() in the child clears O_CLOEXEC on its stdout only. */
	err = posix_spawn_file_actions_init(&fa);
	if (!err) {
		err = posix_spawn_file_actions_adddup2(&fa, fds[1],
						       STDOUT_FILENO);
		if (!err)
			err = shf_spawn(&pid, "/bin/sh", argv, &fa, 0);
		posix_spawn_file_actions_destroy(&fa);
	}
	close(fds[1]);
	if (err) {
		close(fds[0]);
		errno = err;
		return NULL;
	}

	err = 0;
	for (;;) {
		if (shf_buf_grow(&out, &cap, len + 4096 + 1) < 0) {
			err = ENOMEM;
			break;
		}
		n = read(fds[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			break;
		}
		if (n == 0)
			break;
		len += (uint64_t)n;
	}
	close(fds[0]);

	/* Always reap the child, even when reading failed. */
	saved = shf_reap(pid, -1) < 0 ? errno : 0;
	if (!err)
		err = saved;
	if (err) {
		free(out);
		errno = err;
		return NULL;
	}
	/* As SharedHashFile: no trailing newlines, carriage returns, spaces. */
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' ||
		       out[len - 1] == ' '))
		len--;
	out[len] = '\0';
	return out;
}
