// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-admin.c - keeping tables sound and tidy (shf check, rm, gc) and
 * running the helper programs (gc runs shf-monitor --sweep; bench runs
 * shf-bench).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shf-tool.h"
#include "shf-escape.h"

#ifndef SHF_BINDIR
#define SHF_BINDIR "/usr/bin"
#endif

extern char **environ;

/* --------------------------------------------------------------- check */

static void check_cb(const char *problem, void *arg)
{
	printf("%s: %s\n", shf_esc((const char *)arg), shf_esc(problem));
}

static int do_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, repair = 0;
	uint32_t p, again;
	char *name;
	SHF *shf;

	while ((c = getopt_long(argc, argv, "rh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': repair = 1; break;
		case 'h': usage(stdout); return 0;
		default: return usage_err("bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_err("usage: shf check NAME [--repair]");
	name = table_name(argv[optind]);
	shf = table_open(name, 0);
	cli_sigbus_status = EXIT_NOTFOUND; /* a truncated file: a problem */
	if (is_tty_err())
		fprintf(stderr, "shf: check: %s: checking 256 shards...",
			shf_esc(name));
	p = shf_check(shf, repair ? SHF_CHECK_REPAIR : 0, check_cb, name);
	if (is_tty_err())
		fprintf(stderr, "\r\033[K");
	fflush(stdout);
	if (p == UINT32_MAX) {
		say("%s: %s", name, strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	if (!p) {
		printf("%s: sound\n", shf_esc(name));
	} else if (!repair) {
		printf("%s: %u problem%s found (shf check --repair %s drops "
		       "what is broken)\n", shf_esc(name), p, p == 1 ? "" : "s",
		       shf_esc(name));
	} else {
		again = shf_check(shf, 0, NULL, NULL);
		printf("%s: %u problem%s found and repaired; %s\n",
		       shf_esc(name), p,
		       p == 1 ? "" : "s",
		       again == 0 ? "the table is sound now" :
				    "problems remain");
	}
	shf_detach(shf);
	free(name);
	return p ? EXIT_NOTFOUND : 0;
}

const struct shf_cmd shf_cmd_check = {
	.name = "check",
	.cmd = do_check,
	.help = "  check NAME [--repair]      verify (and repair) a table\n",
};

/* ------------------------------------------------------------------ rm */

/* Is the attach's failure (errno e) that of a file that is no table? */
static int unattachable(int e)
{
	return e == EBADMSG || e == EPROTO;
}

/*
 * Remove NAME.shf, which shf_attach_existing() refused as damaged or of
 * another layout (*e): there is no handle for shf_del() to take, and such
 * a file is the one its user most wants gone.  Only a regular file of the
 * caller's, never through a link; and only if it is refused again (a
 * header read while a writer changes it can be refused once) and is still
 * the file found first when it goes.  1: it can be attached after all
 * (*shf), else 0 or the exit status.
 */
static int rm_unattachable(const char *name, int *e, SHF **shf)
{
	char fname[PATH_MAX];
	struct stat st, now;
	int dfd, fd, i, rc = EXIT_ERR;

	if ((size_t)snprintf(fname, sizeof(fname), "%s.shf", name) >=
	    sizeof(fname)) {
		table_err(name, *e);
		return EXIT_ERR;
	}
	dfd = open(cli_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		say("directory %s: %s", cli_dir, strerror(errno));
		return EXIT_ERR;
	}
	fd = openat(dfd, fname,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		say("%s/%s: %s", cli_dir, fname, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		say("%s/%s is not a regular file: not removed", cli_dir, fname);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		say("%s/%s belongs to another user: not removed", cli_dir,
		    fname);
		goto out;
	}
	for (i = 0; i < 3; i++) {
		usleep(10000);
		*shf = shf_attach_existing(cli_dir, name);
		if (*shf) {
			rc = 1;
			goto out;
		}
		if (!unattachable(errno)) {
			*e = errno;
			table_err(name, *e);
			if (*e == ENOENT) /* removed meanwhile */
				rc = EXIT_NOTFOUND;
			goto out;
		}
		*e = errno;
	}
	if (fstatat(dfd, fname, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
		say("%s/%s was replaced meanwhile: not removed", cli_dir,
		    fname);
		goto out;
	}
	if (unlinkat(dfd, fname, 0) < 0) {
		say("cannot remove %s/%s: %s", cli_dir, fname, strerror(errno));
		goto out;
	}
	printf("removed %s/%s (%llu bytes; not attachable: %s)\n",
	       shf_esc(cli_dir), shf_esc(fname), (unsigned long long)st.st_size,
	       strerror(*e));
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

static int do_rm(int argc, char **argv)
{
	char *name, *msg;
	SHF *shf;
	int rc, e;

	if (argc != 2)
		return usage_err("usage: shf rm NAME");
	name = table_name(argv[1]);
	shf = shf_attach_existing(cli_dir, name);
	e = errno;
	if (!shf && unattachable(e)) {
		rc = rm_unattachable(name, &e, &shf);
		if (rc != 1) {
			free(name);
			return rc;
		}
	}
	if (!shf) {
		table_err(name, e);
		free(name);
		return e == ENOENT ? EXIT_NOTFOUND : EXIT_ERR;
	}
	msg = shf_del(shf);
	if (!msg) {
		say("%s: %s", name, strerror(errno));
		free(name);
		return EXIT_ERR;
	}
	/* the message holds the table's name: no raw control bytes */
	printf("%s\n", shf_esc(msg));
	free(msg);
	free(name);
	return 0;
}

const struct shf_cmd shf_cmd_rm = {
	.name = "rm",
	.cmd = do_rm,
	.help = "  rm NAME                    remove a table\n",
};

/* ------------------------------------------------------------------ gc */

static int run_wait(const char *prog, char *const argv[])
{
	pid_t pid;
	int st, e;

	e = posix_spawn(&pid, prog, NULL, NULL, argv, environ);
	if (e) {
		say("cannot run %s: %s", prog, strerror(e));
		return EXIT_ERR;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			say("waitpid: %s", strerror(errno));
			return EXIT_ERR;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		say("%s exited with status %d", prog, WEXITSTATUS(st));
	else
		say("%s killed by signal %d", prog, WTERMSIG(st));
	return EXIT_ERR;
}

static int do_gc(int argc, char **argv)
{
	int b, rc;
	const char *prog;

	(void)argv;
	if (argc != 1)
		return usage_err("usage: shf gc");
	prog = monitor_path(&b);
	char *const av[] = { (char *)"shf-monitor", (char *)"--sweep",
			     (char *)cli_dir, NULL };
	rc = run_wait(prog, av);
	if (b)
		free((char *)prog);
	return rc;
}

const struct shf_cmd shf_cmd_gc = {
	.name = "gc",
	.cmd = do_gc,
	.help = "  gc                         remove tables whose owner died\n",
};

/* ---------------------------------------------------------------- huge */

/*
 * Gather the table's file into 2 MiB pages where its mount gives it 4 KiB
 * ones (shf-pages.c): gets then walk fewer page-table levels and miss the
 * TLB less.  The table stays in use meanwhile: a process that touches a
 * 2 MiB range while the kernel copies it waits for that copy.
 */
static int do_huge(int argc, char **argv)
{
	char *name, path[PATH_MAX + 8];
	uint64_t done, all, huge = 0, size = 0;
	SHF *shf;

	if (argc != 2)
		return usage_err("usage: shf huge NAME");
	name = table_name(argv[1]);
	shf = table_open(name, 0); /* a table, and kept while this runs */
	snprintf(path, sizeof(path), "%s/%s.shf", cli_dir, name);
	if (shf_tool_huge_collapse(path, &done, &all) < 0) {
		say("%s: %s", name,
		    errno == EOPNOTSUPP ? "the kernel cannot gather a file's "
					  "pages (MADV_COLLAPSE: Linux 6.1 on)"
					: strerror(errno));
		shf_detach(shf);
		free(name);
		return EXIT_ERR;
	}
	shf_detach(shf);
	if (shf_tool_huge_bytes(path, &huge, &size) < 0)
		huge = done * (2ULL << 20);
	printf("%s: %" PRIu64 " of %" PRIu64 " MiB in 2 MiB pages (%" PRIu64
	       " of %" PRIu64 " whole 2 MiB gathered now)\n", shf_esc(name),
	       huge >> 20, size >> 20, done, all);
	free(name);
	return done == all ? 0 : EXIT_ERR;
}

const struct shf_cmd shf_cmd_huge = {
	.name = "huge",
	.cmd = do_huge,
	.help = "  huge NAME                  gather the table into 2 MiB pages\n",
};

/* --------------------------------------------------------------- bench */

static int do_bench(int argc, char **argv)
{
	char *prog = beside("shf-bench");
	const char *inst = SHF_BINDIR "/shf-bench";

	char **av;
	int i;

	if (!prog) {
		if (access(inst, X_OK) < 0) {
			say("shf-bench not found beside shf or in %s",
			    SHF_BINDIR);
			return EXIT_ERR;
		}
		prog = (char *)inst;
	}
	/* shf -d DIR bench ... runs shf-bench -d DIR ... */
	av = calloc((size_t)argc + 3, sizeof(*av));
	if (!av) {
		say("out of memory");
		return EXIT_ERR;
	}
	av[0] = (char *)"shf-bench";
	i = 1;
	if (cli_dir_set) {
		av[i++] = (char *)"-d";
		av[i++] = (char *)cli_dir;
	}
	memcpy(av + i, argv + 1, (size_t)argc * sizeof(*av));
	execv(prog, av);
	say("cannot run %s: %s", prog, strerror(errno));
	free(av);
	if (prog != inst)
		free(prog);
	return EXIT_ERR;
}

const struct shf_cmd shf_cmd_bench = {
	.name = "bench",
	.cmd = do_bench,
	.help = "  bench [ARGS]               run shf-bench\n",
};
