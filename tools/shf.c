// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf - look at and change libshf tables from the shell (see shf(1)).
 *
 *   shf [-d DIR] ls | stat | get | put | del | ttl | set | expire | dump |
 *                load | check | rm | gc | bench | demo ...
 *
 * Exit statuses: 0 done, 1 not found or problems found, 2 usage or system
 * error.  Errors are one line on stderr, "shf: CMD: what: why".
 *
 * This file is the dispatcher: global options, "shf --help" and the table
 * of commands; each group of commands has a file of its own (shf-ls.c,
 * shf-kv.c, shf-dump.c, shf-admin.c, shf-demo.c) and shares the helpers
 * of shf-util.c.  Only the public API is used: a table's owner comes
 * with shf_get_stats().
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shf-tool.h"

const char *cli_dir = "/dev/shm";
int cli_dir_set;
const char *cli_cmd = "";
int cli_sigbus_status = EXIT_ERR;
char *volatile cli_tmp_path;

static const struct shf_cmd *const cmds[] = {
	&shf_cmd_ls,	 &shf_cmd_stat,	 &shf_cmd_get,	 &shf_cmd_put,
	&shf_cmd_del,	 &shf_cmd_ttl,	 &shf_cmd_set,	 &shf_cmd_expire,
	&shf_cmd_dump,	 &shf_cmd_load,	 &shf_cmd_check, &shf_cmd_rm,
	&shf_cmd_gc,	 &shf_cmd_huge,	 &shf_cmd_bench, &shf_cmd_demo,
};

void usage(FILE *f)
{
	size_t i;

	fputs("usage: shf [-d DIR] [--allow-shared] COMMAND [ARGS]\n"
	      "Tables are files DIR/NAME.shf (DIR defaults to /dev/shm).\n"
	      "--allow-shared: also open tables of other users, or that others\n"
	      "may write (see libshf(7), SECURITY).\n"
	      "\n", f);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fputs(cmds[i]->help, f);
	fputs("\n"
	      "Exit status: 0 done, 1 not found or problems found, 2 usage or\n"
	      "system error.  See shf(1).\n", f);
}

/*
 * A table's file cut shorter than the mapping (another process that may
 * write it ran ftruncate(), which mmap() cannot prevent) raises SIGBUS at
 * the next access.  The library leaves signals to the program; shf says
 * what happened and exits, 2 (or 1 for check: a problem found), instead
 * of dying.  Only async-signal-safe calls here.
 */
static void put_err(const char *s)
{
	size_t n = strlen(s);
	ssize_t w;

	while (n && (w = write(STDERR_FILENO, s, n)) > 0) {
		s += w;
		n -= (size_t)w;
	}
}

static void tmp_remove(void)
{
	char *p = cli_tmp_path;

	if (p)
		unlink(p);
}

static void on_sigbus(int sig)
{
	(void)sig;
	tmp_remove();
	put_err("shf: ");
	put_err(cli_cmd);
	put_err(": the table's file is shorter than its mapping: another "
		"process truncated it (bus error); the table is damaged\n");
	_exit(cli_sigbus_status);
}

/* Ended by a signal: no half-written file is left under its own name. */
static void on_stop(int sig)
{
	tmp_remove();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The signals whose handler removes cli_tmp_path (on_stop()). */
static const int stops[] = { SIGINT, SIGTERM, SIGHUP, SIGXFSZ };

void cli_stop_signals(sigset_t *set)
{
	size_t i;

	sigemptyset(set);
	for (i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
		sigaddset(set, stops[i]);
}

static void sigbus_guard(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sa.sa_handler = on_stop;
	for (i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		struct sigaction old;

		/* a signal ignored by whoever started us stays ignored */
		if (sigaction(stops[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigaction(stops[i], &sa, NULL);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "allow-shared", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	size_t i;
	int c, rc;

	shf_init();
	sigbus_guard();
	while ((c = getopt_long(argc, argv, "+d:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd': cli_dir = optarg; cli_dir_set = 1; break;
		case 'A': shf_set_allow_shared(1); break;
		case 'h': usage(stdout); return stdout_check();
		case 'V':
			printf("shf (libshf) %s\n", shf_version());
			return stdout_check();
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_ERR;
	}
	if (!strcmp(argv[optind], "help")) {
		usage(stdout);
		return stdout_check();
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[optind], cmds[i]->name))
			continue;
		cli_cmd = cmds[i]->name;
		argv += optind;
		argc -= optind;
		optind = 0; /* glibc: start afresh; the command parses its own */
		rc = cmds[i]->cmd(argc, argv);
		/* what every command wrote: lost output is a failure (one a
		 * command found already, it said) */
		return rc ? rc : stdout_check();
	}
	fprintf(stderr, "shf: unknown command '%s' (see shf --help)\n",
		argv[optind]);
	return EXIT_ERR;
}
