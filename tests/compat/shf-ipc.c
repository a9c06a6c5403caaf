/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-ipc.c - SharedHashFile's IPC calls as its users write them: a
 * parent starts itself as a child with shf_exec_child() (found with
 * shf_backticks("which ...")), both meet at a race start line, ping-pong
 * queue items through two named queues, and report as TAP lines through
 * the shared log, which must reach standard output byte for byte (a TAP
 * harness reads "ok" at the start of each line).  Built as C and as C++
 * with -Wall -Werror (tests/compat.sh), run with its directory on PATH.
 *
 *   shf-ipc                 parent: prints the TAP stream of both
 *   shf-ipc child NAME      the child (started by the parent)
 */
#include <shf.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ITEMS 1000
#define ROUNDS 50
#define NOLOCK 10

struct item {
	uint32_t moves; /* even: on its way to the child; odd: back */
	uint32_t id;
};

static int failures;

/* A TAP line through the shared log (shf_log_fprintf: a whole line). */
static void ok(const char *who, int cond, const char *what)
{
	if (!cond)
		failures++;
	shf_log_fprintf(stdout, "%sok - %s: %s\n", cond ? "" : "not ", who,
			what);
}

/* The drain thread's output: straight to standard output. */
static void to_stdout(char *line, uint32_t len)
{
	fwrite(line, 1, len, stdout);
	fflush(stdout);
}

static const char *dir(void)
{
	return getenv("SHF_TEST_DIR") ? getenv("SHF_TEST_DIR") : "/dev/shm";
}

/*
 * Move items from pull_qid, checking and counting each, back onto
 * push_qid, until total were pulled; parity is what a move must find.
 */
static uint32_t ping_pong(SHF *shf, struct item *items, uint32_t push_qid,
			  uint32_t pull_qid, uint32_t parity, uint32_t total,
			  uint32_t last_qid)
{
	uint32_t qiid = SHF_QIID_NONE, moved = 0, bad = 0, spins = 0;

	while (moved < total && spins < 100000000) {
		uint32_t got = shf_q_push_head_pull_tail(shf, push_qid, qiid,
							 pull_qid);

		qiid = SHF_QIID_NONE;
		if (got == SHF_QIID_NONE) {
			shf_q_flush(shf, pull_qid);
			spins++;
			continue;
		}
		if (got >= ITEMS || shf_qiid_addr != (char *)&items[got] ||
		    shf_qiid_addr_len != sizeof(struct item) ||
		    (items[got].moves & 1) != parity || items[got].id != got)
			bad++;
		items[got].moves++;
		moved++;
		if (items[got].moves == 2 * ROUNDS)
			shf_q_push_head(shf, last_qid, got);
		else
			qiid = got;
	}
	if (qiid != SHF_QIID_NONE)
		shf_q_push_head(shf, push_qid, qiid);
	shf_q_flush(shf, SHF_QID_NONE);
	return bad;
}

static int child(const char *name)
{
	SHF *shf = shf_attach_existing(dir(), name);
	struct item *items;
	uint32_t a2b, b2a, bad;

	if (!shf)
		return 1;
	if (shf_log_attach_existing(shf) != SHF_RET_OK)
		return 1;
	items = (struct item *)shf_q_get(shf);
	ok("child", items != NULL && shf_q_is_ready(shf), "q_get");
	a2b = shf_q_get_name(shf, SHF_CONST_STR_AND_SIZE("qid-a2b"));
	b2a = shf_q_get_name(shf, SHF_CONST_STR_AND_SIZE("qid-b2a"));
	ok("child", a2b != SHF_QID_NONE && b2a != SHF_QID_NONE, "q_get_name");
	shf_race_start(shf, SHF_CONST_STR_AND_SIZE("race"), 2);
	ok("child", 1, "race started");
	bad = ping_pong(shf, items, b2a, a2b, 0, ITEMS * ROUNDS, b2a);
	ok("child", bad == 0, "every item pulled from a2b as sent");
	SHF_PLAIN("ok - child: SHF_PLAIN reaches the log\n");
	SHF_DEBUG("not ok - SHF_DEBUG is compiled out\n");
	shf_log_fputs("ok - child: ", stdout);
	shf_log_fputc('f', stdout);
	shf_log_fputs("puts and fputc make one line\n", stdout);
	shf_log_detach_existing(shf);
	shf_detach(shf);
	return failures ? 1 : 0;
}

static int parent(void)
{
	char name[64], *path;
	struct item *items;
	uint32_t qfree, a2b, b2a, bad, i, n;
	int status = -1;
	pid_t pid;
	SHF *shf;

	snprintf(name, sizeof(name), "shf-test-%d-compat-ipc", (int)getpid());
	shf = shf_attach(dir(), name, 1);
	if (!shf) {
		printf("not ok - parent: attach\n");
		return 1;
	}
	shf_log_init();
	shf_log_output_set(to_stdout);
	if (shf_log_thread_new(shf, 0, 1) != SHF_RET_OK ||
	    shf_log_attach_existing(shf) != SHF_RET_OK) {
		printf("not ok - parent: log\n");
		return 1;
	}
	items = (struct item *)shf_q_new(shf, 3, ITEMS, sizeof(struct item),
					 NOLOCK);
	ok("parent", items != NULL, "q_new");
	if (!items)
		return 1;
	qfree = shf_q_new_name(shf, SHF_CONST_STR_AND_SIZE("qid-free"));
	a2b = shf_q_new_name(shf, SHF_CONST_STR_AND_SIZE("qid-a2b"));
	b2a = shf_q_new_name(shf, SHF_CONST_STR_AND_SIZE("qid-b2a"));
	ok("parent", qfree == 0 && a2b == 1 && b2a == 2, "q_new_name");
	for (n = 0; shf_q_pull_tail(shf, qfree) != SHF_QIID_NONE; n++) {
		items[shf_qiid].moves = 0;
		items[shf_qiid].id = shf_qiid;
		shf_q_push_head(shf, a2b, shf_qiid);
	}
	shf_q_flush(shf, SHF_QID_NONE);
	ok("parent", n == ITEMS, "every item starts on queue 0");
	shf_q_size(shf, a2b);
	shf_race_init(shf, SHF_CONST_STR_AND_SIZE("race"));

	path = shf_backticks("which shf-ipc");
	ok("parent", path != NULL && path[0] == '/', "which shf-ipc");
	pid = path ? shf_exec_child(path, "shf-ipc", "child", name) : -1;
	ok("parent", pid > 0, "exec_child");
	free(path);
	shf_race_start(shf, SHF_CONST_STR_AND_SIZE("race"), 2);
	ok("parent", 1, "race started");
	bad = ping_pong(shf, items, a2b, b2a, 1, ITEMS * ROUNDS, qfree);
	ok("parent", bad == 0, "every item pulled from b2a as sent");
	ok("parent", pid > 0 && waitpid(pid, &status, 0) == pid &&
			     WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "child exited with 0");
	for (i = 0; i < ITEMS; i++)
		if (items[i].moves != 2 * ROUNDS)
			break;
	ok("parent", i == ITEMS, "every item made every round");
	ok("parent", shf_q_take_item(shf, ITEMS / 2) == ITEMS / 2 &&
			     shf_qiid == ITEMS / 2,
	   "q_take_item from the middle of queue 0");
	shf_q_push_head(shf, qfree, ITEMS / 2);
	shf_q_flush(shf, SHF_QID_NONE);
	shf_log_detach_existing(shf);
	shf_log_thread_del(shf);
	shf_q_del(shf);
	free(shf_del(shf));
	printf("%s\n", failures ? "# failed" : "# passed");
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	shf_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(argv[2]);
	return parent();
}
