/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * enospc.c - a full file system gives ENOSPC, never SIGBUS.
 *
 * In a private mount namespace (unshare(CLONE_NEWNS), or a user namespace
 * as well when not privileged; exit 77 where neither is allowed) a 4 MiB
 * tmpfs is mounted over a directory; a child process then:
 *  - puts keys until a put fails with SHF_RET_ERROR and errno ENOSPC (a
 *    SIGBUS would kill it, and it must not exit on its own);
 *  - reads back every key it stored; more puts fail the same way;
 *  - deletes half and puts them back: that works again;
 *  - fills it up again and attaches a new table: NULL with ENOSPC, and no
 *    file is left behind by the attempt.
 * Everything lives in the private tmpfs, gone with the namespace.
 * Exit 0 pass, 1 fail, 77 skip, 99 hard error (automake conventions).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shf.h"

#define MAX_KEYS 200000u

static const char *dir = "/dev/shm"; /* hidden by the private mount */
static uint32_t *vlen_of; /* value length of each key put */

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int failf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("enospc: FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

/* A private mount namespace; 77 where the system allows none. */
static int enter_namespace(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	if (unshare(CLONE_NEWNS) != 0) {
		if (errno != EPERM && errno != EINVAL && errno != ENOSYS)
			return 99;
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
			return 77;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_str("/proc/self/uid_map", map) != 0)
			return 77;
		(void)write_str("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (write_str("/proc/self/gid_map", map) != 0)
			return 77;
	}
	/* nothing we mount may propagate back */
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return 77;
	if (access(dir, F_OK) != 0)
		dir = "/tmp";
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=4m,mode=0700") != 0)
		return 77;
	return 0;
}

static uint32_t key_of(char *buf, uint32_t i, uint32_t round)
{
	return (uint32_t)sprintf(buf, "key-%u-%u", round, i);
}

/* Length of the value of key i: mostly small, some big (global extents). */
static uint32_t len_for(uint32_t i)
{
	if (i % 97 == 0)
		return 70000;
	if (i % 13 == 0)
		return 3000;
	return 50 + (i * 37) % 500;
}

static void val_of(char *buf, uint32_t i, uint32_t len)
{
	uint32_t k;

	for (k = 0; k < len; k++)
		buf[k] = (char)(i * 131 + k * 7);
}

static char vbuf[80000];

/*
 * Put keys from `from` on until 300 in a row fail with ENOSPC (a shard
 * that still has room takes more after the first refusal); the index after
 * the last key tried, or -1.  *stored counts the keys that went in.
 */
static long fill(SHF *shf, uint32_t from, uint32_t round, uint32_t *stored)
{
	char key[48];
	uint32_t i, r, len, refused = 0;

	*stored = 0;
	for (i = from; i < MAX_KEYS && refused < 300; i++) {
		len = len_for(i);
		val_of(vbuf, i, len);
		shf_make_hash(key, key_of(key, i, round));
		errno = 0;
		r = shf_put_key_val(shf, vbuf, len);
		if (r == SHF_RET_KEY_PUT) {
			vlen_of[i] = len;
			++*stored;
			refused = 0;
			continue;
		}
		if (r != SHF_RET_ERROR || errno != ENOSPC) {
			failf("put %u gave %#x, errno %d (%s); expected ENOSPC",
			      i, r, errno, strerror(errno));
			return -1;
		}
		refused++;
	}
	if (i == MAX_KEYS) {
		failf("%u keys went into a 4 MiB file system", MAX_KEYS);
		return -1;
	}
	return (long)i;
}

static int verify(SHF *shf, uint32_t n, uint32_t round, const char *when)
{
	char key[48], want[80000];
	uint32_t i, r;

	for (i = 0; i < n; i++) {
		shf_make_hash(key, key_of(key, i, round));
		r = shf_get_key_val_copy(shf);
		if (!vlen_of[i]) {
			if (r != SHF_RET_KEY_NONE)
				return failf("%s: key %u, refused, is there",
					     when, i);
			continue;
		}
		val_of(want, i, vlen_of[i]);
		if (r != SHF_RET_KEY_FOUND || shf_val_len != vlen_of[i] ||
		    memcmp(shf_val, want, vlen_of[i]))
			return failf("%s: key %u lost or wrong (%#x, %u bytes)",
				     when, i, r, shf_val_len);
	}
	return 0;
}

static int files_in_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int scenario(void)
{
	char key[48];
	uint32_t i, r, half_ok = 0, half = 0, stored, more_stored;
	long n, more;
	SHF *shf, *other;
	char *text;

	vlen_of = calloc(MAX_KEYS, sizeof(*vlen_of));
	if (!vlen_of)
		return 99;
	shf = shf_attach(dir, "full", 0);
	if (!shf)
		return failf("shf_attach on an empty 4 MiB tmpfs: %s",
			     strerror(errno));

	n = fill(shf, 0, 0, &stored);
	if (n < 0)
		return 1;
	if (stored < 100)
		return failf("only %u keys fit", stored);
	printf("enospc: %u of %ld keys stored, the others refused with "
	       "ENOSPC\n",
	       stored, n);
	if (verify(shf, (uint32_t)n, 0, "after ENOSPC"))
		return 1;
	/* still full: puts keep failing cleanly, reads keep working */
	for (i = 0; i < 50; i++) {
		shf_make_hash(key, key_of(key, i, 7));
		errno = 0;
		r = shf_put_key_val(shf, NULL, 60000);
		if (r != SHF_RET_ERROR || errno != ENOSPC)
			return failf("put on a full fs: %#x, errno %d", r,
				     errno);
	}
	if (shf_check(shf, 0, NULL, NULL) != 0)
		return failf("shf_check after ENOSPC: problems");

	/* another process attaches the full table */
	other = shf_attach_existing(dir, "full");
	if (!other)
		return failf("attach of the full table: %s", strerror(errno));
	shf_detach(other);

	/* delete half, put them back */
	for (i = 0; i < (uint32_t)n; i += 2) {
		if (!vlen_of[i])
			continue;
		shf_make_hash(key, key_of(key, i, 0));
		if (shf_del_key_val(shf) != SHF_RET_KEY_FOUND)
			return failf("delete of key %u failed", i);
	}
	for (i = 0; i < (uint32_t)n; i += 2) {
		if (!vlen_of[i])
			continue;
		half++;
		val_of(vbuf, i, vlen_of[i]);
		shf_make_hash(key, key_of(key, i, 0));
		if (shf_put_key_val(shf, vbuf, vlen_of[i]) == SHF_RET_KEY_PUT)
			half_ok++;
		else
			vlen_of[i] = 0;
	}
	printf("enospc: %u of %u deleted keys put back\n", half_ok, half);
	if (half_ok < half)
		return failf("only %u of %u deleted keys could be put back",
			     half_ok, half);
	if (verify(shf, (uint32_t)n, 0, "after putting half back"))
		return 1;

	/* full again, then a new table cannot be made */
	more = fill(shf, (uint32_t)n, 0, &more_stored);
	if (more < 0)
		return 1;
	printf("enospc: %u more keys stored\n", more_stored);
	errno = 0;
	other = shf_attach(dir, "second", 0);
	if (other)
		return failf("a new table was made on a full file system");
	if (errno != ENOSPC)
		return failf("new table on a full fs: errno %d (%s), expected "
			     "ENOSPC",
			     errno, strerror(errno));
	if (files_in_dir() != 1)
		return failf("%d files in %s after a failed attach, expected 1",
			     files_in_dir(), dir);
	if (verify(shf, (uint32_t)more, 0, "at the end"))
		return 1;
	if (shf_check(shf, 0, NULL, NULL) != 0)
		return failf("shf_check at the end: problems");
	text = shf_del(shf);
	if (!text)
		return failf("shf_del: %s", strerror(errno));
	free(text);
	free(vlen_of);
	return 0;
}

int main(void)
{
	int status, rc;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 99;
	if (pid == 0) {
		rc = enter_namespace();
		if (rc == 77)
			fprintf(stderr,
				"enospc: no private mount namespace "
				"(%s); skipped\n",
				strerror(errno));
		if (rc)
			_exit(rc);
		shf_init();
		rc = scenario();
		fflush(NULL);
		_exit(rc);
	}
	if (waitpid(pid, &status, 0) != pid)
		return 99;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "enospc: FAIL: the child died of signal %d%s\n",
			WTERMSIG(status),
			WTERMSIG(status) == SIGBUS ? " (SIGBUS)" : "");
		return 1;
	}
	rc = WEXITSTATUS(status);
	if (rc == 0)
		printf("enospc: PASS\n");
	return rc;
}
