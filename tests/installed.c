/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * installed.c - a program built against an installed libshf, the way its
 * users build theirs: cc installed.c $(pkg-config --cflags --libs shf).
 * Run by "make installcheck" (packaging.am) and by .ci/run against the
 * Debian packages.  It puts a key and gets it back in a table under
 * /dev/shm (or argv[1]), then deletes the table.  With "monitor" as
 * argv[2] it also checks that the installed shf-monitor removes a table
 * whose owner exits (it is started from the libexecdir fixed at build
 * time, so this catches a package that ships it elsewhere).
 * Exit status: 0 passed, 1 failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shf.h>

#define KEY "installed-key"
#define VAL "installed-value"

static int fail(const char *what)
{
	fprintf(stderr, "installed: %s: %s\n", what, strerror(errno));
	return 1;
}

static int put_get_del(const char *dir, const char *name)
{
	SHF *shf;
	char *what;

	shf = shf_attach(dir, name, 0);
	if (!shf)
		return fail("shf_attach");
	shf_make_hash(KEY, sizeof(KEY) - 1);
	if (!(shf_put_key_val(shf, VAL, sizeof(VAL) - 1) & SHF_RET_KEY_PUT))
		return fail("shf_put_key_val");
	shf_make_hash(KEY, sizeof(KEY) - 1);
	if (!(shf_get_key_val_copy(shf) & SHF_RET_KEY_FOUND))
		return fail("shf_get_key_val_copy");
	if (shf_val_len != sizeof(VAL) - 1 ||
	    memcmp(shf_val, VAL, sizeof(VAL) - 1) != 0) {
		fprintf(stderr, "installed: got '%.*s', want '%s'\n",
			(int)shf_val_len, shf_val, VAL);
		return 1;
	}
	what = shf_del(shf);
	if (!what)
		return fail("shf_del");
	free(what);
	return 0;
}

/* A child attaches with delete_upon_process_exit and exits; its monitor
 * must remove the table. */
static int monitor(const char *dir, const char *name)
{
	char file[4096];
	struct stat st;
	pid_t pid;
	int status, i;

	snprintf(file, sizeof(file), "%s/%s.shf", dir, name);
	pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0)
		_exit(shf_attach(dir, name, 1) ? 0 : 2);
	if (waitpid(pid, &status, 0) < 0)
		return fail("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "installed: shf_attach(..., 1) failed in the child"
			" (is %s installed?)\n", "shf-monitor");
		unlink(file);
		return 1;
	}
	/* The monitor removes the file promptly; allow a loaded machine 10 s. */
	for (i = 0; i < 1000; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (stat(file, &st) < 0 && errno == ENOENT)
			return 0;
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "installed: %s still exists after its owner exited\n",
		file);
	unlink(file);
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	char name[64];

	shf_init();
	if (strcmp(shf_version(), "") == 0) {
		fprintf(stderr, "installed: shf_version() is empty\n");
		return 1;
	}
	snprintf(name, sizeof(name), "shf-installed-%ld", (long)getpid());
	if (put_get_del(dir, name))
		return 1;
	if (argc > 2 && strcmp(argv[2], "monitor") == 0 && monitor(dir, name))
		return 1;
	printf("installed: libshf %s (built against %d.%d.%d) works\n",
	       shf_version(), SHF_VERSION_MAJOR, SHF_VERSION_MINOR,
	       SHF_VERSION_PATCH);
	return 0;
}
