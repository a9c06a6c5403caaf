// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-tool.h - what the files of shf(1) share: a command's entry in the
 * table of tools/shf.c, the global options and the helpers of
 * tools/shf-util.c.  (Not "shf.h": that is the library's header.)
 */
#ifndef SHF_TOOL_H
#define SHF_TOOL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "shf.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERR 2

/*
 * A command: argv[0] is its name, options and arguments follow; it
 * returns the exit status.  help is its lines of "shf --help".
 */
struct shf_cmd {
	const char *name;
	int (*cmd)(int argc, char **argv);
	const char *help;
};

/* The commands, in the order of "shf --help" (one file per group). */
/* shf-ls.c */
extern const struct shf_cmd shf_cmd_ls, shf_cmd_stat;
/* shf-kv.c */
extern const struct shf_cmd shf_cmd_get, shf_cmd_put, shf_cmd_del,
	shf_cmd_ttl, shf_cmd_set, shf_cmd_expire;
/* shf-dump.c */
extern const struct shf_cmd shf_cmd_dump, shf_cmd_load;
/* shf-admin.c */
extern const struct shf_cmd shf_cmd_check, shf_cmd_rm, shf_cmd_gc,
	shf_cmd_huge, shf_cmd_bench;
/* shf-demo.c */
extern const struct shf_cmd shf_cmd_demo;

/* Global options (tools/shf.c). */
extern const char *cli_dir;	/* -d DIR, else /dev/shm */
extern int cli_dir_set;		/* -d given */
extern const char *cli_cmd;	/* the command running, for messages */
extern int cli_sigbus_status;	/* exit status if a table's file is cut */
/*
 * A file being written under a temporary name (shf dump), which a bus
 * error, SIGINT, SIGTERM, SIGHUP or SIGXFSZ removes before the program
 * ends.
 */
extern char *volatile cli_tmp_path;
/* Those signals (block them while cli_tmp_path changes). */
void cli_stop_signals(sigset_t *set);

/* "shf --help" (tools/shf.c). */
void usage(FILE *f);

/* Messages: "shf: CMD: ..." on stderr; usage_err() returns EXIT_ERR. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 0, or EXIT_ERR after saying why standard output could not be written. */
int stdout_check(void);
int is_tty_err(void);
const char *errno_name_or(int e);

/* Tables: NAME from "NAME" or "NAME.shf"; attach or exit (1 or 2). */
char *table_name(const char *arg);
void table_err(const char *name, int e);
SHF *table_open(const char *name, int create);

/* Arguments: numbers, byte sizes, key and value bytes (malloc()ed). */
int parse_num(const char *s, uint64_t max, uint64_t *out);
int parse_bytes(const char *s, uint64_t *out);
char *arg_bytes(const char *what, const char *s, int hex, uint32_t *len);
char *file_bytes(const char *path, uint32_t *len);

/* Helper programs: beside this one (malloc()ed) or NULL; the monitor. */
char *beside(const char *prog);
const char *monitor_path(int *from_beside);

/* A progress line on a terminal for long walks (dump, load). */
struct progress {
	const char *what;
	uint64_t total; /* 0: unknown */
	double last;
	int shown;
};
void progress(struct progress *p, uint64_t n);
void progress_end(struct progress *p);

/*
 * 2 MiB pages (shf-pages.c): how many bytes of the file at path the file
 * system holds in 2 MiB pages (*huge, of *size); -1 with errno if that
 * cannot be found out.  The policy that decides it is lib/mount.c's
 * shf_huge_policy(), which shf(1) builds in.
 */
int shf_tool_huge_bytes(const char *path, uint64_t *huge, uint64_t *size);
/*
 * Gather the file's small pages into 2 MiB ones (MADV_COLLAPSE): *done of
 * its *all whole 2 MiB ranges are in 2 MiB pages now (a range that the
 * kernel could not gather, for want of a free 2 MiB of memory, stays as
 * it was).  0, or -1 with errno (EOPNOTSUPP: the kernel cannot, before
 * Linux 6.1 or where shmem_enabled says deny).
 */
int shf_tool_huge_collapse(const char *path, uint64_t *done, uint64_t *all);

#endif /* SHF_TOOL_H */
