/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_crash.c - writers that die at any instant never block the others
 * and never damage a table.
 *
 *  - crash points: a writer (tests/crash-child, exec()ed with
 *    SHF_TEST_CRASH=POINT:N) SIGKILLs itself the N-th time it passes one of
 *    the library's crash points, for every point and several N.  The parent
 *    then writes and reads in every shard (timed: < 2 s), shf_check() finds
 *    no problem, and every acknowledged write is there with its value; the
 *    write in flight is there whole or not at all (and where the point says
 *    whether it was committed, exactly that).  A second writer then goes on
 *    from that state and is killed the same way, to recover a recovered
 *    table.
 *  - random kills: two writers SIGKILLed at random instants, a few ms
 *    apart, hundreds of times; after each kill the parent times a put in
 *    each of the 256 shards (worst case < 2 s, printed with the recoveries
 *    counted by the library), then the structure and every acknowledged
 *    write are checked.
 *
 * The record of acknowledged writes is shared memory (a memfd the writers
 * inherit, see crash-common.h).  Shards are told apart by the top 8 bits of
 * the key's hash in the table (XXH3-64 with the secret in the table's
 * header, see table.h); if the library ever picks shards otherwise the
 * tests still pass, they only cover less.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <check.h>

#include "shf.h"
#include "shf-test.h"
#include "crash-common.h"
#include "table.h" /* white-box: the header's hash secret */

#define NSHARDS 256u
#define FRESH 2000u
#define RECOVERY_MAX_S 2.0
/* Random kills in make check; make soak sets SHF_CRASH_KILLS (500). */
#define KILLS 200
/* What one table file may grow to (RLIMIT_FSIZE; the writers inherit it). */
#define FILE_MAX (512ULL << 20)

static uint32_t kills_wanted = KILLS;

/* Crash points of lib/table.h (enum crash_point), 1 .. CRASH_POINTS. */
#define CRASH_POINTS 20
static const char *const point_names[CRASH_POINTS + 1] = {
	"",
	"NEW_WRITTEN",
	"NEW_COMMITTED",
	"REPL_WRITTEN",
	"REPL_COMMITTED",
	"REPL_UID",
	"DEL_COMMITTED",
	"DEL_UID",
	"SPLIT_COPIED",
	"SPLIT_DIR",
	"KICK",
	"DIR_DOUBLE",
	"CHUNK",
	"FREE_PUSH",
	"ALLOC_LOCKED",
	"INPLACE",
	"CELL_TAKEN",
	"SLAB_ADDED",
	"BIG_WRITTEN",
	"GROWN",
	"DEL_COPIES",
};
/* What the write in flight must show after recovery at that point. */
enum { EITHER, OLD, NEW };
static const int point_strict[CRASH_POINTS + 1] = {
	EITHER, OLD,	NEW,	OLD,	NEW,	NEW,	NEW,	NEW,
	EITHER, EITHER, EITHER, EITHER, EITHER, EITHER, EITHER, OLD,
	OLD,	OLD,	OLD,	EITHER, OLD,
};
static const long crash_ns[] = { 1, 3, 12, 60, 400, 3000 };
#define NNS ((int)(sizeof(crash_ns) / sizeof(crash_ns[0])))

static uint32_t conc_num[CC_CONC];
static char probe[NSHARDS][32];
static char child[PATH_MAX];

/* The hash secret of the table keys_for() was last called for. */
static uint8_t secret[SHF_HASH_SECRET];

static uint32_t key_shard(const char *key, size_t len)
{
	return (uint32_t)(XXH3_64bits_withSecret(key, len, secret,
						 sizeof(secret)) >>
			  56);
}

/*
 * Keys for the crowded shards, and one probe key per shard, of the table
 * name (each table hashes its keys with a secret of its own).
 */
static void keys_for(const char *name)
{
	uint32_t n = 0, j, filled = 0;
	char key[32];

	shf_test_pread(name, offsetof(struct hdr, hash_secret), secret,
		       sizeof(secret));
	memset(probe, 0, sizeof(probe));

	for (j = 0; n < CC_CONC; j++) {
		int len = sprintf(key, "ck-%u", j);

		if (key_shard(key, (size_t)len) < CC_CONC_SHARDS)
			conc_num[n++] = j;
	}
	for (j = 0; filled < NSHARDS; j++) {
		int len = sprintf(key, "probe-%u", j);
		uint32_t s = key_shard(key, (size_t)len);

		if (!probe[s][0]) {
			memcpy(probe[s], key, (size_t)len + 1);
			filled++;
		}
	}
}

/* The helper program sits next to this one (or $SHF_CRASH_CHILD). */
static void child_init(void)
{
	const char *e = getenv("SHF_CRASH_CHILD");
	ssize_t n;
	char *slash;

	if (e && *e) {
		snprintf(child, sizeof(child), "%s", e);
		return;
	}
	n = readlink("/proc/self/exe", child, sizeof(child) - 32);
	if (n <= 0) {
		fprintf(stderr, "readlink /proc/self/exe: %s\n",
			strerror(errno));
		exit(99);
	}
	child[n] = 0;
	slash = strrchr(child, '/');
	strcpy(slash ? slash + 1 : child, "crash-child");
	if (access(child, X_OK) != 0) {
		fprintf(stderr, "%s: %s\n", child, strerror(errno));
		exit(99);
	}
}

/* The record of acknowledged writes, in a memfd the writers inherit. */
static struct cc_shm *shm_new(int *fd)
{
	struct cc_shm *s;

	*fd = memfd_create("shf-crash-record", 0);
	ck_assert_msg(*fd >= 0, "memfd_create: %s", strerror(errno));
	ck_assert_int_eq(ftruncate(*fd, sizeof(*s)), 0);
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	ck_assert_msg(s != MAP_FAILED, "mmap: %s", strerror(errno));
	s->magic = CC_MAGIC;
	s->nkeys = CC_NKEYS;
	memcpy(s->conc_num, conc_num, sizeof(conc_num));
	return s;
}

static void shm_del(struct cc_shm *s, int fd)
{
	munmap(s, sizeof(*s));
	close(fd);
}

static pid_t spawn(const char *name, int fd, uint32_t w, uint32_t nw,
		   const char *mode, uint64_t seed, uint64_t ops,
		   const char *crash)
{
	char a_fd[16], a_w[16], a_nw[16], a_seed[32], a_ops[32];
	char *argv[10];
	pid_t parent = getpid(), pid;

	snprintf(a_fd, sizeof(a_fd), "%d", fd);
	snprintf(a_w, sizeof(a_w), "%u", w);
	snprintf(a_nw, sizeof(a_nw), "%u", nw);
	snprintf(a_seed, sizeof(a_seed), "%llu", (unsigned long long)seed);
	snprintf(a_ops, sizeof(a_ops), "%llu", (unsigned long long)ops);
	argv[0] = child;
	argv[1] = (char *)shf_test_dir();
	argv[2] = (char *)name;
	argv[3] = a_fd;
	argv[4] = a_w;
	argv[5] = a_nw;
	argv[6] = (char *)mode;
	argv[7] = a_seed;
	argv[8] = a_ops;
	argv[9] = NULL;
	fflush(NULL);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
		/* read by the library once, in the new program's shf_init() */
		if (crash)
			setenv("SHF_TEST_CRASH", crash, 1);
		else
			unsetenv("SHF_TEST_CRASH");
		execv(child, argv);
		_exit(127);
	}
	return pid;
}

/* Put (and read back) one key in every shard; seconds it took. */
static double probe_all(SHF *shf, uint32_t round)
{
	double t0 = shf_test_now();
	char val[32];
	uint32_t s, len, r;

	for (s = 0; s < NSHARDS; s++) {
		len = (uint32_t)sprintf(val, "%u:%u", s, round);
		shf_make_hash(probe[s], (uint32_t)strlen(probe[s]));
		r = shf_put_key_val(shf, val, len);
		shf_assert_msg(r == SHF_RET_KEY_PUT,
			       "put in shard %u gave %#x (%s)", s, r,
			       strerror(errno));
	}
	return shf_test_now() - t0;
}

static void probe_verify(SHF *shf, uint32_t round)
{
	char val[32];
	uint32_t s, len, r;

	for (s = 0; s < NSHARDS; s++) {
		len = (uint32_t)sprintf(val, "%u:%u", s, round);
		shf_make_hash(probe[s], (uint32_t)strlen(probe[s]));
		r = shf_get_key_val_copy(shf);
		shf_assert_msg(r == SHF_RET_KEY_FOUND && shf_val_len == len &&
				       !memcmp(shf_val, val, len),
			       "probe key of shard %u lost (%#x)", s, r);
	}
}

/* FRESH new keys, put then read back. */
static void fresh_keys(SHF *shf, uint32_t round)
{
	char key[48], val[64];
	uint32_t i, klen, vlen, r;

	for (i = 0; i < FRESH; i++) {
		klen = (uint32_t)sprintf(key, "fresh-%u-%u", round, i);
		vlen = (uint32_t)sprintf(val, "v-%u-%u-%u", round, i, i * 7);
		shf_make_hash(key, klen);
		r = shf_put_key_val(shf, val, vlen);
		shf_assert_msg(r == SHF_RET_KEY_PUT, "fresh put %u: %#x (%s)",
			       i, r, strerror(errno));
	}
	for (i = 0; i < FRESH; i++) {
		klen = (uint32_t)sprintf(key, "fresh-%u-%u", round, i);
		vlen = (uint32_t)sprintf(val, "v-%u-%u-%u", round, i, i * 7);
		shf_make_hash(key, klen);
		r = shf_get_key_val_copy(shf);
		shf_assert_msg(r == SHF_RET_KEY_FOUND && shf_val_len == vlen &&
				       !memcmp(shf_val, val, vlen),
			       "fresh key %u lost (%#x)", i, r);
	}
}

static void problem_cb(const char *problem, void *arg)
{
	uint32_t *n = arg;

	if ((*n)++ < 20)
		fprintf(stderr, "shf_check: %s\n", problem);
}

static void check_sound(SHF *shf, const char *when)
{
	uint32_t shown = 0, problems;

	errno = 0;
	problems = shf_check(shf, 0, problem_cb, &shown);
	shf_assert_msg(problems == 0, "%s: shf_check found %u problem(s) (%s)",
		       when, problems,
		       problems == UINT32_MAX ? strerror(errno) : "see log");
}

/* Does the table hold state st for key i?  r: the get of it. */
static int holds(uint32_t i, int64_t st, uint32_t r)
{
	static char want[CC_VAL_MAX];

	return cc_holds(i, st, r, want);
}

/*
 * Every acknowledged write is there with its value; a write in flight is
 * there whole or not at all (strict: OLD or NEW says which).  extra: keys
 * the parent put itself.
 */
static void verify_writes(SHF *shf, struct cc_shm *s, uint32_t nw, int strict,
			  uint64_t extra)
{
	char key[CC_KEY_MAX];
	uint64_t live = 0, walked = 0, slack = 0;
	struct shf_stats st;
	uint32_t i, r;

	for (i = 0; i < CC_NKEYS; i++) {
		struct cc_writer *w = &s->w[i % nw];
		int64_t want = s->state[i];
		int flight = w->active && w->key == i;

		shf_make_hash(key, cc_key(s, i, key));
		r = shf_get_key_val_copy(shf);
		if (flight) {
			int is_old = holds(i, w->old_state, r);
			int is_new = holds(i, w->new_state, r);

			slack++;
			shf_assert_msg(is_old || is_new,
				       "key %u in flight (state %lld -> %lld) "
				       "is torn: get %#x, %u bytes",
				       i, (long long)w->old_state,
				       (long long)w->new_state, r, shf_val_len);
			shf_assert_msg(
				strict != OLD || is_old,
				"key %u: write not committed at the crash "
				"point, yet the new state %lld is there",
				i, (long long)w->new_state);
			shf_assert_msg(
				strict != NEW || is_new,
				"key %u: write committed before the crash "
				"point, yet the old state %lld is there",
				i, (long long)w->old_state);
		} else {
			shf_assert_msg(holds(i, want, r),
				       "key %u: acknowledged state %lld lost "
				       "(get %#x, %u bytes)",
				       i, (long long)want, r, shf_val_len);
		}
		if (r == SHF_RET_KEY_FOUND)
			live++;
	}
	ck_assert_int_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	shf_assert_msg(st.keys == live + extra,
		       "key counter says %llu, the table holds %llu",
		       (unsigned long long)st.keys,
		       (unsigned long long)(live + extra));
	ck_assert_int_eq(shf_iterate(shf, shf_test_count_cb, &walked),
			 SHF_RET_OK);
	shf_assert_msg(walked == live + extra,
		       "shf_iterate saw %llu keys, the table holds %llu",
		       (unsigned long long)walked,
		       (unsigned long long)(live + extra));
	(void)slack;
}

static const char *writer_error(struct cc_shm *s, uint32_t nw)
{
	uint32_t w;

	for (w = 0; w < nw; w++)
		if (s->w[w].error)
			return s->w[w].msg;
	return "";
}

/*
 * After a writer died: write and read in every shard, timed; the
 * structure is sound; the writes are all there.
 */
static double recover_and_verify(SHF *shf, struct cc_shm *s, uint32_t nw,
				 int strict, uint32_t round, const char *what)
{
	double t = probe_all(shf, round), t0 = shf_test_now();

	fresh_keys(shf, round);
	t += shf_test_now() - t0;
	shf_assert_msg(t < RECOVERY_MAX_S * shf_test_multiplier(),
		       "%s: writing and reading every shard took %.3f s", what,
		       t);
	probe_verify(shf, round);
	check_sound(shf, what);
	/* each round's fresh keys stay; the probe keys are one per shard */
	verify_writes(shf, s, nw, strict, NSHARDS + (uint64_t)FRESH * round);
	return t;
}

/* ---------------------------------------------------------- crash points */

/* Run a writer until it dies at point:n; 1 if it did, 0 if it finished. */
static int run_to_crash(const char *name, int fd, struct cc_shm *s,
			const char *mode, uint64_t seed, uint64_t ops,
			const char *crash)
{
	pid_t pid = spawn(name, fd, 0, 1, mode, seed, ops, crash);
	int status = shf_test_waitpid(pid, 60);

	ck_assert_msg(status != -1, "writer (%s) hung: killed", crash);
	if (WIFSIGNALED(status)) {
		ck_assert_msg(WTERMSIG(status) == SIGKILL,
			      "writer (%s) died of signal %d", crash,
			      WTERMSIG(status));
		return 1;
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "writer (%s) exited with %d: %s", crash,
		      WEXITSTATUS(status), writer_error(s, 1));
	return 0;
}

START_TEST(test_crash_point)
{
	int point = _i / NNS + 1;
	long n = crash_ns[_i % NNS];
	char name[SHF_TEST_NAME_MAX], tag[32], crash[32], what[64];
	struct cc_shm *s;
	int fd, crashed, again;
	struct shf_stats st;
	double t1, t2;
	SHF *shf;

	snprintf(tag, sizeof(tag), "crash-%d-%ld", point, n);
	snprintf(crash, sizeof(crash), "%d:%ld", point, n);
	shf = shf_test_new(tag, name, sizeof(name));
	keys_for(name);
	s = shm_new(&fd);

	/* a writer grows the table from empty and dies at point:n */
	crashed =
		run_to_crash(name, fd, s, "seq", (uint64_t)_i + 1, 5000, crash);
	snprintf(what, sizeof(what), "after the crash at %s:%ld",
		 point_names[point], n);
	t1 = recover_and_verify(
		shf, s, 1, crashed ? point_strict[point] : EITHER, 1, what);

	/* another one goes on from there and dies the same way */
	again = run_to_crash(name, fd, s, "rand", (uint64_t)_i + 1000, 8000,
			     crash);
	snprintf(what, sizeof(what), "after the second crash at %s:%ld",
		 point_names[point], n);
	t2 = recover_and_verify(shf, s, 1, again ? point_strict[point] : EITHER,
				2, what);

	ck_assert_int_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	printf("crash point %2d %-13s N=%-5ld: %s, %s; recovery %.1f ms, "
	       "%.1f ms; file %llu MiB\n",
	       point, point_names[point], n,
	       crashed ? "crashed" : "not reached",
	       again ? "crashed again" : "not reached again", t1 * 1e3,
	       t2 * 1e3, (unsigned long long)(st.bytes_file >> 20));
	fflush(stdout);
	/* the workload passes every crash point at least a few times */
	if (n <= 3)
		ck_assert_msg(crashed, "the writer never passed %s %ld times",
			      point_names[point], n);
	shm_del(s, fd);
	shf_test_del(shf, name);
}
END_TEST

/* ---------------------------------------------------------- random kills */

START_TEST(test_random_kills)
{
	const uint32_t nw = 2;
	char name[SHF_TEST_NAME_MAX];
	uint64_t rs = 0x5eed, seed = 1, acked = 0, file0;
	double worst = 0, sum = 0;
	pid_t pid[2];
	struct cc_shm *s;
	struct shf_stats st;
	uint32_t w, kills = 0, early = 0;
	int fd, status;
	SHF *shf;

	shf = shf_test_new("random-kills", name, sizeof(name));
	keys_for(name);
	ck_assert_int_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	file0 = st.bytes_file;
	s = shm_new(&fd);
	for (w = 0; w < nw; w++)
		pid[w] = spawn(name, fd, w, nw, "rand", seed++, 0, NULL);

	while (kills < kills_wanted) {
		double t0, t, end;

		w = (uint32_t)(cc_rand(&rs) % nw);
		/* let it get into its loop, then kill it at a random instant */
		end = shf_test_now() + 5.0 * shf_test_multiplier();
		while (!__atomic_load_n(&s->w[w].running, __ATOMIC_ACQUIRE) &&
		       shf_test_now() < end) {
			if (waitpid(pid[w], &status, WNOHANG) == pid[w])
				ck_abort_msg("writer %u exited early (%d): %s",
					     w, status, writer_error(s, nw));
			usleep(100);
		}
		usleep((useconds_t)(200 + cc_rand(&rs) % 4000));
		kill(pid[w], SIGKILL);
		t0 = shf_test_now();
		/* the dead writer's locks are free once the kernel has
		 * processed its robust list, even before it is reaped */
		probe_all(shf, kills);
		t = shf_test_now() - t0;
		ck_assert_int_eq(waitpid(pid[w], &status, 0), pid[w]);
		if (!WIFSIGNALED(status))
			ck_abort_msg(
				"writer %u exited (%d) before the kill: %s", w,
				status, writer_error(s, nw));
		if (!s->w[w].running)
			early++;
		sum += t;
		if (t > worst)
			worst = t;
		kills++;
		if (kills % 50 == 0)
			check_sound(shf, "between kills");
		s->w[w].running = 0;
		pid[w] = spawn(name, fd, w, nw, "rand", seed++, 0, NULL);
	}
	for (w = 0; w < nw; w++) {
		kill(pid[w], SIGKILL);
		ck_assert_int_eq(waitpid(pid[w], &status, 0), pid[w]);
		ck_assert_msg(WIFSIGNALED(status), "writer %u exited (%d): %s",
			      w, status, writer_error(s, nw));
		acked += s->w[w].ops;
	}
	probe_all(shf, kills);
	probe_verify(shf, kills);
	check_sound(shf, "after the last kill");
	verify_writes(shf, s, nw, EITHER, NSHARDS);
	ck_assert_int_eq(shf_get_stats(shf, &st, sizeof(st)), SHF_RET_OK);
	printf("random kills: %u kills (%u before the writer's loop), "
	       "recovery (a put in each of %u shards) worst %.2f ms, "
	       "mean %.2f ms; library recoveries %llu, lock waits %llu, "
	       "writes acknowledged %llu, keys %llu, splits %llu, file "
	       "%llu MiB (grown from %llu MiB)\n",
	       kills, early, NSHARDS, worst * 1e3, sum / kills * 1e3,
	       (unsigned long long)st.recoveries,
	       (unsigned long long)st.lock_waits, (unsigned long long)acked,
	       (unsigned long long)st.keys, (unsigned long long)st.splits,
	       (unsigned long long)(st.bytes_file >> 20),
	       (unsigned long long)(file0 >> 20));
	fflush(stdout);
	ck_assert_msg(worst < RECOVERY_MAX_S, "worst recovery %.3f s", worst);
	ck_assert_msg(st.recoveries > 0, "no lock was ever recovered");
	ck_assert_msg(st.bytes_file > file0, "the file never grew");
	shm_del(s, fd);
	shf_test_del(shf, name);
}
END_TEST

#ifdef SHF_TEST_HOOKS
/*
 * One write by the shf command, killed at crash point POINT:1 (the
 * command is a writer like any other; $abs_top_builddir, set by make
 * check, says where it is).  0, or -1 where the command is not at hand.
 */
static int cli_killed(const char *name, const char *point, const char *cmd,
		      const char *key, const char *val)
{
	const char *top = getenv("abs_top_builddir");
	char tool[PATH_MAX];
	pid_t pid;
	int st;

	/* else beside this program's directory (tests/ or tests/.libs/) */
	snprintf(tool, sizeof(tool), "%s/tools/shf", top && *top ? top : ".");
	if (!top || !*top) {
		char *slash = strrchr(child, '/');

		snprintf(tool, sizeof(tool), "%.*s/../tools/shf",
			 slash ? (int)(slash - child) : 1, slash ? child : ".");
		if (access(tool, X_OK) != 0)
			snprintf(tool, sizeof(tool), "%.*s/../../tools/shf",
				 slash ? (int)(slash - child) : 1,
				 slash ? child : ".");
	}
	if (access(tool, X_OK) != 0)
		return -1;
	fflush(NULL);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("SHF_TEST_CRASH", point, 1);
		execl(tool, "shf", "-d", shf_test_dir(), cmd, name, key, val,
		      (char *)NULL);
		_exit(127);
	}
	st = shf_test_waitpid(pid, 30.0); /* -1: it hung (killed) */
	ck_assert_msg(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		      "shf %s %s at %s: status %#x", cmd, key, point, st);
	return 0;
}

/* The n-th key (from *from on) of shard si, in buf. */
static const char *key_in(char *buf, uint32_t si, uint32_t *from)
{
	for (;; (*from)++) {
		int len = sprintf(buf, "lk-%06u", *from);

		if (key_shard(buf, (size_t)len) == si) {
			(*from)++;
			return buf;
		}
	}
}

static void put_s(SHF *shf, const char *key, const char *val, uint32_t len)
{
	shf_make_hash(key, (uint32_t)strlen(key));
	ck_assert_uint_eq(shf_put_key_val(shf, val, len), SHF_RET_KEY_PUT);
}

/*
 * What a killed write took or freed comes back once, never twice: a new
 * key's cell (killed after taking it: the next key of its class gets it);
 * a block freed to its shard's list (killed half way through the push:
 * the next record of its size reuses it); a new key's record outside its
 * cell (killed after writing it); and an extent freed to the
 * table's list (killed before the delete ended, the extent taken by
 * another shard's put meanwhile: recovery must not free it again, which
 * gave it to a third put over the second's value).
 */
START_TEST(test_crash_frees_once)
{
	static char big[100000], got[100000];
	char name[SHF_TEST_NAME_MAX], k1[16], kx[16], ky[16], kz[16], kb[16];
	uint32_t from = 0, u1;
	const void *addr;
	SHF *shf = shf_test_new("frees-once", name, sizeof(name));

	keys_for(name);

	/* a cell */
	put_s(shf, key_in(k1, 7, &from), "1", 1);
	u1 = shf_uid;
	if (cli_killed(name, "16:1", "put", key_in(kx, 7, &from), "2") < 0) {
		printf("check_crash: frees-once skipped: no tools/shf\n");
		shf_test_del(shf, name);
		return;
	}
	put_s(shf, key_in(k1, 7, &from), "3", 1);
	ck_assert_msg(shf_uid == u1 + 1, "the killed put's cell %#x was not "
		      "given back (the next key got %#x)", u1 + 1, shf_uid);

	/* a block of the shard's free list: 1000 bytes, outside a cell */
	memset(big, 'b', 1000);
	put_s(shf, key_in(kx, 9, &from), big, 1000);
	shf_make_hash(kx, (uint32_t)strlen(kx));
	ck_assert_uint_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	addr = shf_val_addr;
	ck_assert_int_eq(cli_killed(name, "13:1", "del", kx, NULL), 0);
	put_s(shf, key_in(kb, 9, &from), "r", 1); /* recovery */
	put_s(shf, key_in(ky, 9, &from), big, 1000);
	shf_make_hash(ky, (uint32_t)strlen(ky));
	ck_assert_uint_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	ck_assert_msg(shf_val_addr == addr, "the block freed half way was "
		      "lost (a new record at %p, not %p)", shf_val_addr, addr);

	/* a new key's record of 1000 bytes, outside its cell, killed after it
	 * was written, before the key was in the index: the next record of
	 * its size reuses its block (it was lost before) */
	memset(big, 'c', 1000);
	big[1000] = '\0';
	put_s(shf, key_in(kx, 11, &from), big, 1000);
	shf_make_hash(kx, (uint32_t)strlen(kx));
	ck_assert_uint_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	addr = shf_val_addr;
	shf_make_hash(kx, (uint32_t)strlen(kx));
	ck_assert_uint_eq(shf_del_key_val(shf), SHF_RET_KEY_FOUND);
	ck_assert_int_eq(cli_killed(name, "18:1", "put", key_in(ky, 11, &from),
				    big), 0);
	put_s(shf, key_in(kz, 11, &from), big, 1000);
	shf_make_hash(kz, (uint32_t)strlen(kz));
	ck_assert_uint_eq(shf_get_key_val_addr(shf), SHF_RET_KEY_FOUND);
	ck_assert_msg(shf_val_addr == addr, "the killed put's record was lost "
		      "(a new record at %p, not %p)", shf_val_addr, addr);
	shf_make_hash(ky, (uint32_t)strlen(ky));
	ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);

	/* an extent of the table's list */
	memset(big, 'x', sizeof(big));
	put_s(shf, key_in(kx, 20, &from), big, sizeof(big));
	ck_assert_int_eq(cli_killed(name, "7:1", "del", kx, NULL), 0);
	memset(big, 'y', sizeof(big));
	put_s(shf, key_in(ky, 21, &from), big, sizeof(big));
	put_s(shf, key_in(kb, 20, &from), "r", 1); /* recovery */
	memset(big, 'z', sizeof(big));
	put_s(shf, key_in(kz, 22, &from), big, sizeof(big));
	shf_make_hash(ky, (uint32_t)strlen(ky));
	ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_FOUND);
	ck_assert_uint_eq(shf_val_len, sizeof(big));
	memset(big, 'y', sizeof(big));
	memcpy(got, shf_val, sizeof(got));
	ck_assert_msg(!memcmp(got, big, sizeof(big)), "an acknowledged value "
		      "was written over (an extent freed twice)");
	shf_make_hash(kx, (uint32_t)strlen(kx));
	ck_assert_uint_eq(shf_get_key_val_copy(shf), SHF_RET_KEY_NONE);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST

/*
 * A new slab killed after it was put in its shard's slab directory, before
 * it was counted, in the directory's last entry: the next new key of
 * another size class got EBADMSG (seen in check_cache's random kills),
 * and the slab's 64 cells were lost.  Now the directory grows and the
 * slab is taken back: the next key of its class gets its first cell.
 */
START_TEST(test_crash_slab_counted_once)
{
	char name[SHF_TEST_NAME_MAX], k[16];
	/* one record class each (9-byte keys, 6-byte header, 4-byte steps) */
	static const char *const val[] = { "1", "55555", "999999999",
					   "1313131313131",
					   "17171717171717171" };
	uint32_t from = 0, i;
	SHF *shf = shf_test_new("slab-once", name, sizeof(name));

	keys_for(name);

	/* slabs 0..2 of shard 30's four-entry directory */
	for (i = 0; i < 3; i++) {
		put_s(shf, key_in(k, 30, &from), val[i], (uint32_t)strlen(val[i]));
		ck_assert_uint_eq(shf_uid, 30u << 24 | i * 64);
	}
	/* slab 3 published, then killed */
	if (cli_killed(name, "17:1", "put", key_in(k, 30, &from), val[3]) < 0) {
		printf("check_crash: slab-once skipped: no tools/shf\n");
		shf_test_del(shf, name);
		return;
	}
	/* a fifth class: past the directory's end (slab 4) */
	shf_make_hash(key_in(k, 30, &from), 9);
	ck_assert_msg(shf_put_key_val(shf, val[4], 17) == SHF_RET_KEY_PUT,
		      "a put after the killed slab failed: %s", strerror(errno));
	ck_assert_uint_eq(shf_uid, 30u << 24 | 4 * 64);
	/* the fourth class gets the killed writer's slab */
	put_s(shf, key_in(k, 30, &from), val[3], 13);
	ck_assert_msg(shf_uid == (30u << 24 | 3 * 64), "the killed put's slab "
		      "was lost (the next key of its class got %#x)", shf_uid);
	ck_assert_uint_eq(shf_check(shf, 0, NULL, NULL), 0);
	shf_test_del(shf, name);
}
END_TEST
#endif

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");

#ifdef SHF_TEST_HOOKS
	tcase_add_loop_test(shf_test_tcase(s, "points", 60), test_crash_point,
			    0, CRASH_POINTS * NNS);
	shf_test_add_tcase(s, "frees-once", 60, test_crash_frees_once,
			   test_crash_slab_counted_once);
#else
	/* A release build has no crash points (lib/crash.c). */
	printf("check_crash: crash points skipped: configure "
	       "--enable-test-hooks builds them\n");
#endif
	/* about 0.4 s a kill on a loaded machine, and room to spare */
	shf_test_add_tcase(s, "random-kills", 120.0 * kills_wanted / KILLS,
			   test_random_kills);
	return s;
}

int main(void)
{
	const char *e = getenv("SHF_CRASH_KILLS");
	struct rlimit rl = { FILE_MAX, FILE_MAX };

	if (e && *e && strtoul(e, NULL, 0) > 0)
		kills_wanted = (uint32_t)strtoul(e, NULL, 0);
	/* /dev/shm: no table of this program or its writers grows past this */
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &rl);
	/* only the writers crash, never this program */
	unsetenv("SHF_TEST_CRASH");
	shf_test_init();
	child_init();
	return shf_test_main(crash_suite());
}
