/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_nearcache.c - libshf as a near-cache in front of Redis
 * (libshf-nearcache and shf-nearcache(1)) against real redis-server
 * processes: read-through and fill, invalidation by another client's
 * write, the fill/invalidate race over many rounds, connection loss
 * (Redis killed and restarted, a partition made by a proxy of ours), the
 * daemon SIGKILLed and replaced, bad server replies (a fake server of
 * ours), a hostile sidecar, two "hosts" on one Redis, BCAST mode.
 *
 * Redis: each test that kills, restarts or flushes Redis starts its own
 * (redis-server --port 0 --unixsocket DIR/redis.sock in a mkdtemp()
 * directory, removed at the end); the others use $SHF_TEST_REDIS
 * ("unix:/path", started by .ci/run) when it is set, or their own.  No
 * redis-server in PATH: exit 77 (skip).  The daemon is $SHF_NEARCACHE
 * (make check sets it), else tools/shf-nearcache.
 *
 * Children (readers, the proxy, the fake server, redis-server, the
 * daemon) die with the test (PR_SET_PDEATHSIG); readers never ck_assert:
 * they _exit() with a code and write one line about the first problem
 * into shared memory.  Timing checks are orders of magnitude, scaled by
 * CK_TIMEOUT_MULTIPLIER; the staleness checks rely on the daemon's
 * stale_ms, which load can only make more conservative.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis/hiredis.h>

#include "shf.h"
#include "shf-nearcache.h"
#include "nearcache-internal.h" /* record header, sidecar layout */
#include "shf-test.h"

#define WAIT_S 10.0 /* bound of the waits for a state (times multiplier) */

/* The test program's pid: its Redis directories are named after it, so
 * that main() removes what a failed test (a process of its own) left. */
static pid_t runner;

/* ================================================== redis-server ===== */

struct rs {
	pid_t pid;
	int own;        /* started here (else $SHF_TEST_REDIS) */
	char dir[128];
	char sock[192];
	char addr[200]; /* "unix:" sock */
	char extra[64]; /* one more "--option value" pair, or "" */
};

static int in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096], *dir, *save = NULL;
	char file[4200];

	if (!path)
		return 0;
	snprintf(buf, sizeof(buf), "%s", path);
	for (dir = strtok_r(buf, ":", &save); dir;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof(file), "%s/%s", *dir ? dir : ".", prog);
		if (access(file, X_OK) == 0)
			return 1;
	}
	return 0;
}

static redisContext *cli_connect_path(const char *sock)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectUnixWithTimeout(sock, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	if (c)
		redisSetTimeout(c, tv);
	return c;
}

static int rs_ping(const char *sock)
{
	redisContext *c = cli_connect_path(sock);
	redisReply *r;
	int ok;

	if (!c)
		return 0;
	r = redisCommand(c, "PING");
	/* PONG, or NOAUTH (--requirepass): up either way. */
	ok = r && (r->type == REDIS_REPLY_STATUS ||
		   r->type == REDIS_REPLY_ERROR);
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ok;
}

static void rs_spawn(struct rs *r)
{
	char log[256];
	double end;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *argv[24];
		int n = 0;
		char *extra = strdup(r->extra), *sp;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		argv[n++] = "redis-server";
		argv[n++] = "--port";
		argv[n++] = "0";
		argv[n++] = "--unixsocket";
		argv[n++] = r->sock;
		argv[n++] = "--unixsocketperm";
		argv[n++] = "700";
		argv[n++] = "--save";
		argv[n++] = "";
		argv[n++] = "--appendonly";
		argv[n++] = "no";
		argv[n++] = "--daemonize";
		argv[n++] = "no";
		argv[n++] = "--dir";
		argv[n++] = r->dir;
		argv[n++] = "--logfile";
		argv[n++] = log;
		if (extra && *extra && (sp = strchr(extra, ' '))) {
			*sp = '\0';
			argv[n++] = extra;
			argv[n++] = sp + 1;
		}
		argv[n] = NULL;
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	r->pid = pid;
	end = shf_test_now() + WAIT_S * shf_test_multiplier();
	while (!rs_ping(r->sock)) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid)
			ck_abort_msg("redis-server exited (see %s)", log);
		ck_assert_msg(shf_test_now() < end,
			      "redis-server did not answer in time");
		shf_test_msleep(10);
	}
}

/* A redis-server of this test; extra: "--opt value" or NULL. */
static void rs_start_own(struct rs *r, const char *extra)
{
	memset(r, 0, sizeof(*r));
	r->own = 1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/shf-nc-test-%ld-XXXXXX",
		 (long)runner);
	ck_assert_msg(mkdtemp(r->dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
	snprintf(r->addr, sizeof(r->addr), "unix:%s", r->sock);
	snprintf(r->extra, sizeof(r->extra), "%s", extra ? extra : "");
	rs_spawn(r);
}

/* $SHF_TEST_REDIS if set, else one of our own. */
static void rs_start(struct rs *r)
{
	const char *env = getenv("SHF_TEST_REDIS");

	if (env && !strncmp(env, "unix:/", 6) && rs_ping(env + 5)) {
		memset(r, 0, sizeof(*r));
		snprintf(r->sock, sizeof(r->sock), "%s", env + 5);
		snprintf(r->addr, sizeof(r->addr), "%s", env);
		return;
	}
	rs_start_own(r, NULL);
}

static void rs_kill(struct rs *r, int sig)
{
	int st;

	ck_assert(r->own);
	if (r->pid > 0) {
		kill(r->pid, sig);
		waitpid(r->pid, &st, 0);
	}
	r->pid = 0;
	unlink(r->sock);
}

static void rs_restart(struct rs *r)
{
	rs_spawn(r);
}

static void rs_end(struct rs *r)
{
	char f[256];

	if (!r->own)
		return;
	if (r->pid > 0)
		rs_kill(r, SIGKILL);
	snprintf(f, sizeof(f), "%s/redis.log", r->dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/proxy.sock", r->dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/fake.sock", r->dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/auth", r->dir);
	unlink(f);
	rmdir(r->dir);
}

/* ================================================== another client === */

static redisContext *cli(const struct rs *r)
{
	redisContext *c = cli_connect_path(r->sock);

	ck_assert_msg(c != NULL, "cannot connect to %s", r->sock);
	return c;
}

static redisContext *cli_auth(const struct rs *r, const char *pass)
{
	redisContext *c = cli(r);
	redisReply *x = redisCommand(c, "AUTH %s", pass);

	ck_assert(x && x->type == REDIS_REPLY_STATUS);
	freeReplyObject(x);
	return c;
}

/* A command that must succeed (no error reply). */
static void cmd(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: %s", fmt, c->errstr);
	ck_assert_msg(r->type != REDIS_REPLY_ERROR, "%s: %s", fmt, r->str);
	freeReplyObject(r);
}

/* Calls of a command so far (INFO commandstats). */
static long long calls_of(redisContext *c, const char *name)
{
	redisReply *r = redisCommand(c, "INFO commandstats");
	char want[64];
	const char *p;
	long long n = 0;

	ck_assert(r && r->type == REDIS_REPLY_STRING);
	snprintf(want, sizeof(want), "cmdstat_%s:calls=", name);
	p = strstr(r->str, want);
	if (p)
		n = strtoll(p + strlen(want), NULL, 10);
	freeReplyObject(r);
	return n;
}

/* ======================================================= the daemon === */

static const char *daemon_path(void)
{
	const char *p = getenv("SHF_NEARCACHE");

	return p && *p ? p : "tools/shf-nearcache";
}

/* shf(1) (or $SHF_CLI): "shf -d DIR stat ARGS NAME" prints needle. */
static int shf_stat_shows(const char *name, const char *args,
			  const char *needle)
{
	const char *cli = getenv("SHF_CLI");
	char cmdline[1024], out[16384];
	size_t n;
	FILE *p;

	snprintf(cmdline, sizeof(cmdline), "%s -d '%s' stat %s '%s'",
		 cli && *cli ? cli : "tools/shf", shf_test_dir(), args, name);
	fflush(NULL);
	p = popen(cmdline, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	ck_assert_int_eq(pclose(p), 0);
	return strstr(out, needle) != NULL;
}

/* Start shf-nearcache for table name; args: more options, NULL-ended. */
static pid_t daemon_start(const char *name, const char *addr, ...)
{
	const char *argv[32];
	va_list ap;
	pid_t pid;
	int n = 0;

	argv[n++] = "shf-nearcache";
	argv[n++] = "-q";
	argv[n++] = "-d";
	argv[n++] = shf_test_dir();
	argv[n++] = "--redis";
	argv[n++] = addr;
	va_start(ap, addr);
	while (n < 30 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n++] = name;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(daemon_path(), (char **)argv);
		_exit(127);
	}
	return pid;
}

static struct shf_nc_stats nc_st(const char *name)
{
	struct shf_nc_stats st;

	memset(&st, 0, sizeof(st));
	ck_assert_msg(shf_nc_stats(shf_test_dir(), name, &st, sizeof(st)) ==
			      SHF_RET_OK,
		      "shf_nc_stats(%s): %s", name, strerror(errno));
	return st;
}

/* Wait for a state (UP: and a sync younger than 100 ms); 0 or -1. */
static int wait_state(const char *name, uint32_t state, double secs)
{
	double end = shf_test_now() + secs * shf_test_multiplier();
	struct shf_nc_stats st;

	for (;;) {
		memset(&st, 0, sizeof(st));
		if (shf_nc_stats(shf_test_dir(), name, &st, sizeof(st)) ==
			    SHF_RET_OK &&
		    st.state == state &&
		    (state != SHF_NC_UP ||
		     (st.synced_age_ms >= 0 &&
		      st.synced_age_ms < (int64_t)st.stale_ms / 2)))
			return 0;
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(5);
	}
}

/*
 * Wait until the daemon is DOWN and has emptied the table since resyncs
 * was before: it publishes DOWN first, then empties.  0 or -1.
 */
static int wait_emptied(const char *name, uint64_t before, double secs)
{
	double end = shf_test_now() + secs * shf_test_multiplier();
	struct shf_nc_stats st;

	for (;;) {
		memset(&st, 0, sizeof(st));
		if (shf_nc_stats(shf_test_dir(), name, &st, sizeof(st)) ==
			    SHF_RET_OK &&
		    st.state != SHF_NC_UP && st.resyncs > before)
			return 0;
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(5);
	}
}

/* Wait until the daemon has handled want invalidated keys in all. */
static int wait_invalidations(const char *name, uint64_t want, double secs)
{
	double end = shf_test_now() + secs * shf_test_multiplier();
	struct shf_nc_stats st;

	for (;;) {
		memset(&st, 0, sizeof(st));
		if (shf_nc_stats(shf_test_dir(), name, &st, sizeof(st)) ==
			    SHF_RET_OK &&
		    st.invalidations >= want)
			return 0;
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(2);
	}
}

static void wait_up(const char *name)
{
	ck_assert_msg(wait_state(name, SHF_NC_UP, WAIT_S) == 0,
		      "%s: the near-cache did not come up", name);
}

/* SIGTERM, and it must exit 0 (state DOWN). */
static void daemon_stop(pid_t pid, const char *name)
{
	int rc;

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	rc = shf_test_waitpid(pid, WAIT_S);
	ck_assert_msg(rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
		      "shf-nearcache: status %d", rc);
	if (name)
		ck_assert_uint_eq(nc_st(name).state, SHF_NC_DOWN);
}

static void daemon_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ====================================================== the tables === */

struct tab {
	char name[SHF_TEST_NAME_MAX];
	SHF *shf; /* for looking at the records */
};

static void tab_new(struct tab *t, const char *tag)
{
	char side[SHF_TEST_PATH_MAX];

	t->shf = shf_test_new(tag, t->name, sizeof(t->name));
	snprintf(side, sizeof(side), "%s/%s%s", shf_test_dir(), t->name,
		 NC_SUFFIX);
	unlink(side);
}

static void tab_end(struct tab *t)
{
	char side[SHF_TEST_PATH_MAX];

	snprintf(side, sizeof(side), "%s/%s%s", shf_test_dir(), t->name,
		 NC_SUFFIX);
	unlink(side);
	shf_test_del(t->shf, t->name);
}

enum { REC_NONE, REC_VAL, REC_ABS, REC_BAD };

/* What the table holds for key: REC_*, the value into buf, its epoch. */
static int rec_of(SHF *shf, const char *key, char *buf, size_t size,
		  uint64_t *epoch)
{
	uint64_t hdr;
	uint32_t n;

	shf_make_hash(key, (uint32_t)strlen(key));
	if (shf_get_key_val_copy(shf) != SHF_RET_KEY_FOUND)
		return REC_NONE;
	if (shf_val_len < NC_REC_HDR)
		return REC_BAD;
	memcpy(&hdr, shf_val, NC_REC_HDR);
	if (epoch)
		*epoch = hdr & ~NC_REC_ABSENT;
	if (hdr & NC_REC_ABSENT)
		return REC_ABS;
	n = shf_val_len - NC_REC_HDR;
	if (buf) {
		if (n >= size)
			n = (uint32_t)size - 1;
		memcpy(buf, shf_val + NC_REC_HDR, n);
		buf[n] = '\0';
	}
	return REC_VAL;
}

/* Wait until the table holds no value of key other than want (NULL:
 * none); 0, or -1 after secs. */
static int wait_rec_not(SHF *shf, const char *key, const char *old,
			double secs)
{
	double end = shf_test_now() + secs * shf_test_multiplier();
	char buf[256];

	for (;;) {
		if (rec_of(shf, key, buf, sizeof(buf), NULL) != REC_VAL ||
		    strcmp(buf, old))
			return 0;
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(1);
	}
}

/* Wait until the table's record of key is not of kind; 0 or -1. */
static int wait_rec_gone(SHF *shf, const char *key, int kind, double secs)
{
	double end = shf_test_now() + secs * shf_test_multiplier();

	while (rec_of(shf, key, NULL, 0, NULL) == kind) {
		if (shf_test_now() > end)
			return -1;
		shf_test_msleep(1);
	}
	return 0;
}

static SHF_NC *nc_open_at(const char *name, const char *addr)
{
	struct shf_nc_options o;
	SHF_NC *nc;

	memset(&o, 0, sizeof(o));
	o.redis = addr;
	nc = shf_nc_open(shf_test_dir(), name, &o, sizeof(o));
	return nc;
}

static SHF_NC *nc_open(const char *name, const char *addr)
{
	SHF_NC *nc = nc_open_at(name, addr);

	ck_assert_msg(nc != NULL, "shf_nc_open(%s): %s", name, strerror(errno));
	return nc;
}

/* nc_get of a string key: the return flags, the value into buf. */
static uint32_t get(SHF_NC *nc, const char *key, char *buf, size_t size)
{
	const char *v = NULL;
	uint32_t len = 0, r;

	r = shf_nc_get(nc, key, (uint32_t)strlen(key), &v, &len);
	if (buf && size) {
		buf[0] = '\0';
		if (r == SHF_RET_KEY_FOUND) {
			if (len >= size)
				len = (uint32_t)size - 1;
			memcpy(buf, v, len);
			buf[len] = '\0';
		}
	}
	return r;
}

/* The value of key must be want (NULL: absent). */
static void get_is(SHF_NC *nc, const char *key, const char *want)
{
	char buf[256];
	uint32_t r = get(nc, key, buf, sizeof(buf));

	if (!want) {
		ck_assert_msg(r == SHF_RET_KEY_NONE, "get %s: %u (%s) '%s'",
			      key, r, r & SHF_RET_ERROR ? strerror(errno) : "",
			      buf);
		return;
	}
	ck_assert_msg(r == SHF_RET_KEY_FOUND, "get %s: %u (%s)", key, r,
		      r & SHF_RET_ERROR ? strerror(errno) : "");
	ck_assert_msg(!strcmp(buf, want), "get %s: '%s', want '%s'", key, buf,
		      want);
}

/* A key of this test run: "t<pid>:<what>". */
static const char *key_of(const char *what)
{
	static char buf[8][128];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "t%ld:%s", (long)getpid(), what);
	return buf[i];
}

/* =========================================== children's shared memory = */

struct shared {
	uint32_t go, done, stop, claim, failed;
	char msg[512];
	uint32_t mode, delay_ms, inject, accepted;
	uint64_t u[16];
};

static struct shared *sh;

static int kfail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int kfail(int code, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&sh->claim, 1, __ATOMIC_SEQ_CST) == 0) {
		va_start(ap, fmt);
		vsnprintf(sh->msg, sizeof(sh->msg), fmt, ap);
		va_end(ap);
		__atomic_store_n(&sh->failed, 1, __ATOMIC_SEQ_CST);
	}
	return code;
}

static void shared_new(void)
{
	sh = shf_test_shared(sizeof(*sh));
}

static void shared_end(void)
{
	shf_test_unshared(sh, sizeof(*sh));
	sh = NULL;
}

static void kids_ok(struct shf_test_kids *k, double secs)
{
	int failed = shf_test_wait(k, secs);

	ck_assert_msg(failed == 0, "%d child(ren) failed: %s", failed,
		      sh->failed ? sh->msg : "(no message)");
}

/* A child that runs fn() and _exit()s: for servers of the test. */
static pid_t helper(void (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fn(arg);
		_exit(0);
	}
	return pid;
}

static int set_path(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n >= sizeof(sa->sun_path))
		return -1;
	memcpy(sa->sun_path, path, n);
	return 0;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (set_path(&sa, path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (set_path(&sa, path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Wait until a server of ours listens on path (bound is not enough). */
static void wait_listen(const char *path)
{
	double end = shf_test_now() + WAIT_S * shf_test_multiplier();
	int fd;

	while ((fd = connect_unix(path)) < 0) {
		ck_assert_msg(shf_test_now() < end, "nobody listens on %s",
			      path);
		shf_test_msleep(2);
	}
	close(fd);
}

/* ========================================================= the proxy = */

/*
 * A unix-socket proxy in front of Redis, in a child: PASS forwards (the
 * server's bytes delay_ms late), BLACKHOLE reads and drops everything
 * both ways (a partition: connections stay open, nothing arrives), CUT
 * closes every connection and refuses new ones.
 */
enum { PX_PASS, PX_BLACKHOLE, PX_CUT };

#define PX_CONNS 32
#define PX_CHUNKS 256

struct px_chunk {
	uint64_t due;
	uint32_t len;
	char data[4096];
};

struct px_pair {
	int c, s;
	unsigned head, n;
	struct px_chunk *q; /* the server's bytes, on their way */
};

struct px_arg {
	char listen[256];
	char target[256];
};

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void px_close(struct px_pair *p)
{
	if (p->c >= 0)
		close(p->c);
	if (p->s >= 0)
		close(p->s);
	p->c = p->s = -1;
	p->n = p->head = 0;
}

static void proxy_run(void *argp)
{
	struct px_arg *a = argp;
	struct px_pair pr[PX_CONNS];
	struct pollfd pfd[1 + 2 * PX_CONNS];
	int map[1 + 2 * PX_CONNS];
	int lfd = listen_unix(a->listen), i, n;
	char buf[4096];

	signal(SIGPIPE, SIG_IGN);
	if (lfd < 0)
		_exit(1);
	for (i = 0; i < PX_CONNS; i++) {
		pr[i].c = pr[i].s = -1;
		pr[i].n = pr[i].head = 0;
		pr[i].q = malloc(sizeof(struct px_chunk) * PX_CHUNKS);
		if (!pr[i].q)
			_exit(1);
	}
	for (;;) {
		uint32_t mode = __atomic_load_n(&sh->mode, __ATOMIC_SEQ_CST);
		uint64_t now = ms_now();
		int timeout = 5;

		for (i = 0; i < PX_CONNS; i++) {
			struct px_pair *p = &pr[i];

			if (p->c < 0)
				continue;
			if (mode == PX_CUT) {
				px_close(p);
				continue;
			}
			while (p->n && p->q[p->head].due <= now) {
				if (mode == PX_PASS)
					write_all(p->c, p->q[p->head].data,
						  p->q[p->head].len);
				p->head = (p->head + 1) % PX_CHUNKS;
				p->n--;
			}
		}
		n = 0;
		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		map[n++] = -1;
		for (i = 0; i < PX_CONNS; i++) {
			if (pr[i].c < 0)
				continue;
			pfd[n].fd = pr[i].c;
			pfd[n].events = POLLIN;
			map[n++] = i;
			pfd[n].fd = pr[i].s;
			pfd[n].events = POLLIN;
			/* a full queue: let the server wait */
			if (pr[i].n == PX_CHUNKS)
				pfd[n].events = 0;
			map[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0)
			continue;
		for (i = 1; i < n; i++) {
			struct px_pair *p = &pr[map[i]];
			int from_c = (i % 2) == 1;
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ||
			    p->c < 0)
				continue;
			r = read(pfd[i].fd, buf, sizeof(buf));
			if (r <= 0) {
				px_close(p);
				continue;
			}
			mode = __atomic_load_n(&sh->mode, __ATOMIC_SEQ_CST);
			if (mode != PX_PASS)
				continue; /* dropped */
			if (from_c) {
				write_all(p->s, buf, (size_t)r);
			} else if (p->n < PX_CHUNKS) {
				struct px_chunk *ch =
					&p->q[(p->head + p->n) % PX_CHUNKS];

				ch->due = ms_now() +
					  __atomic_load_n(&sh->delay_ms,
							  __ATOMIC_SEQ_CST);
				ch->len = (uint32_t)r;
				memcpy(ch->data, buf, (size_t)r);
				p->n++;
			}
		}
		if (pfd[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), s;

			if (c < 0)
				continue;
			if (__atomic_load_n(&sh->mode, __ATOMIC_SEQ_CST) ==
				    PX_CUT ||
			    (s = connect_unix(a->target)) < 0) {
				close(c);
				continue;
			}
			for (i = 0; i < PX_CONNS && pr[i].c >= 0; i++)
				;
			if (i == PX_CONNS) {
				close(c);
				close(s);
				continue;
			}
			pr[i].c = c;
			pr[i].s = s;
			__atomic_add_fetch(&sh->accepted, 1, __ATOMIC_SEQ_CST);
		}
	}
}

static pid_t proxy_start(const struct rs *r, struct px_arg *a)
{
	pid_t pid;

	snprintf(a->listen, sizeof(a->listen), "%s/proxy.sock", r->dir);
	snprintf(a->target, sizeof(a->target), "%s", r->sock);
	unlink(a->listen);
	pid = helper(proxy_run, a);
	wait_listen(a->listen);
	return pid;
}

/* =================================================== the fake server = */

/*
 * A server that plays Redis badly, in a child.  FK_PLAY answers the
 * daemon's handshake as Redis would (and EXISTS, PINGs), so that it goes
 * UP; sh->inject then makes it send a bad invalidation message.  The
 * others answer every command (GET included) with one kind of nonsense.
 */
enum {
	FK_PLAY,
	FK_GARBAGE,   /* not RESP at all */
	FK_INTEGER,   /* ":42" to everything */
	FK_ERROR,     /* "-ERR" to everything */
	FK_CLOSE,     /* close after the first command */
	FK_SILENT,    /* never answer */
	FK_HUGE,      /* an array of 99999999999 elements, then nothing */
	FK_BADPONG,   /* as FK_PLAY, but PONGs carry the wrong number */
	FK_WRONG_ID,  /* CLIENT ID answers +OK */
	FK_GET_WRONG, /* as FK_PLAY, GET answers an array */
	FK_DRIP,      /* a long string, a byte every 100 ms */
	FK_FLOOD,     /* an array of 100,000,000 empty arrays, streamed */
	FK_PTTL0,     /* as FK_PLAY, PTTL answers 0 (expiring now) */
	FK_PTTL2,     /* as FK_PLAY, PTTL answers -2 (expired since GET) */
};

#define FK_CONNS 16
#define FK_RUN_ID "0123456789abcdef0123456789abcdef01234567"

struct fk_conn {
	int fd;
	int subscribed;
	size_t len;
	char in[16384];
};

/* One complete command of in[0..len): its arguments (pointers into in).
 * Consumed bytes, 0 if incomplete, -1 if not RESP. */
static long fk_parse(const char *in, size_t len, int *argc, const char **argv,
		     size_t *lens, int max)
{
	const char *p = in, *end = in + len, *nl;
	long n, i, l;

	if (len < 1)
		return 0;
	if (*p != '*')
		return -1;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return 0;
	n = strtol(p + 1, NULL, 10);
	if (n < 1 || n > max)
		return -1;
	p = nl + 1;
	for (i = 0; i < n; i++) {
		if (p >= end)
			return 0;
		if (*p != '$')
			return -1;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return 0;
		l = strtol(p + 1, NULL, 10);
		if (l < 0 || l > 8192)
			return -1;
		p = nl + 1;
		if (end - p < l + 2)
			return 0;
		argv[i] = p;
		lens[i] = (size_t)l;
		p += l + 2;
	}
	*argc = (int)n;
	return p - in;
}

static int arg_is(const char *a, size_t len, const char *s)
{
	return len == strlen(s) && !strncasecmp(a, s, len);
}

static void fk_send(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

static void fk_bulk(int fd, const char *s, size_t len)
{
	char h[32];

	snprintf(h, sizeof(h), "$%zu\r\n", len);
	fk_send(fd, h);
	write_all(fd, s, len);
	fk_send(fd, "\r\n");
}

/* Answer one command; -1 to close the connection. */
static int fk_answer(struct fk_conn *k, uint32_t mode, int argc,
		     const char **argv, const size_t *lens)
{
	char buf[256];

	switch (mode) {
	case FK_GARBAGE:
		fk_send(k->fd, "hello world\r\n");
		return 0;
	case FK_INTEGER:
		fk_send(k->fd, ":42\r\n");
		return 0;
	case FK_ERROR:
		fk_send(k->fd, "-ERR no such thing\r\n");
		return 0;
	case FK_CLOSE:
		return -1;
	case FK_SILENT:
		return 0;
	case FK_HUGE:
		fk_send(k->fd, "*99999999999\r\n");
		return 0;
	case FK_FLOOD: { /* until the reader gives up and closes */
		static char empties[65536];
		double end = shf_test_now() + 2.0;

		for (size_t i = 0; i < sizeof(empties); i += 4)
			memcpy(empties + i, "*0\r\n", 4);
		fk_send(k->fd, "*100000000\r\n");
		while (shf_test_now() < end &&
		       write(k->fd, empties, sizeof(empties)) > 0)
			;
		return -1;
	}
	case FK_DRIP: /* each read the reader makes returns in time */
		fk_send(k->fd, "$100000\r\n");
		for (int i = 0; i < 60; i++) {
			if (write(k->fd, "x", 1) != 1)
				break; /* it gave up and closed */
			usleep(100000);
		}
		return -1;
	}
	if (arg_is(argv[0], lens[0], "CLIENT") && argc >= 2 &&
	    arg_is(argv[1], lens[1], "ID")) {
		fk_send(k->fd, mode == FK_WRONG_ID ? "+OK\r\n" : ":7\r\n");
	} else if (arg_is(argv[0], lens[0], "CLIENT")) {
		fk_send(k->fd, "+OK\r\n");
	} else if (arg_is(argv[0], lens[0], "INFO")) {
		snprintf(buf, sizeof(buf), "# Server\r\nrun_id:%s\r\n",
			 FK_RUN_ID);
		fk_bulk(k->fd, buf, strlen(buf));
	} else if (arg_is(argv[0], lens[0], "SUBSCRIBE")) {
		fk_send(k->fd, "*3\r\n$9\r\nsubscribe\r\n$20\r\n"
			       "__redis__:invalidate\r\n:1\r\n");
		k->subscribed = 1;
	} else if (arg_is(argv[0], lens[0], "PING")) {
		if (argc == 1) {
			fk_send(k->fd, "+PONG\r\n");
		} else {
			fk_send(k->fd, "*2\r\n$4\r\npong\r\n");
			if (mode == FK_BADPONG)
				fk_bulk(k->fd, "999999", 6);
			else
				fk_bulk(k->fd, argv[1], lens[1]);
		}
	} else if (arg_is(argv[0], lens[0], "EXISTS")) {
		fk_send(k->fd, ":0\r\n");
	} else if (arg_is(argv[0], lens[0], "GET")) {
		fk_send(k->fd, mode == FK_GET_WRONG ? "*1\r\n:1\r\n" :
						       "$5\r\nfaked\r\n");
	} else if (arg_is(argv[0], lens[0], "PTTL")) {
		fk_send(k->fd, mode == FK_PTTL0 ? ":0\r\n" :
			       mode == FK_PTTL2 ? ":-2\r\n" : ":-1\r\n");
	} else {
		fk_send(k->fd, "-ERR unknown\r\n");
	}
	return 0;
}

static void fake_run(void *argp)
{
	const char *path = argp;
	struct fk_conn *k = calloc(FK_CONNS, sizeof(*k));
	struct pollfd pfd[1 + FK_CONNS];
	int lfd = listen_unix(path), i, n, idx[1 + FK_CONNS];

	signal(SIGPIPE, SIG_IGN);
	if (lfd < 0 || !k)
		_exit(1);
	for (i = 0; i < FK_CONNS; i++)
		k[i].fd = -1;
	for (;;) {
		uint32_t mode = __atomic_load_n(&sh->mode, __ATOMIC_SEQ_CST);

		if (__atomic_exchange_n(&sh->inject, 0, __ATOMIC_SEQ_CST))
			for (i = 0; i < FK_CONNS; i++)
				if (k[i].fd >= 0 && k[i].subscribed)
					fk_send(k[i].fd,
						"*3\r\n$7\r\nmessage\r\n$20\r\n"
						"__redis__:invalidate\r\n"
						":5\r\n");
		n = 0;
		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (i = 0; i < FK_CONNS; i++) {
			if (k[i].fd < 0)
				continue;
			pfd[n].fd = k[i].fd;
			pfd[n].events = POLLIN;
			idx[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, 5) <= 0)
			continue;
		for (i = 1; i < n; i++) {
			struct fk_conn *c = &k[idx[i]];
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
			if (r <= 0) {
				close(c->fd);
				c->fd = -1;
				continue;
			}
			c->len += (size_t)r;
			for (;;) {
				const char *argv[16];
				size_t lens[16];
				int argc = 0;
				long used = fk_parse(c->in, c->len, &argc,
						     argv, lens, 16);

				if (used > 0 &&
				    fk_answer(c, mode, argc, argv, lens) < 0)
					used = -1;
				if (used < 0) {
					close(c->fd);
					c->fd = -1;
					c->len = 0;
					break;
				}
				if (used == 0)
					break;
				memmove(c->in, c->in + used,
					c->len - (size_t)used);
				c->len -= (size_t)used;
			}
			if (c->fd >= 0 && c->len == sizeof(c->in))
				c->len = 0; /* junk: forget it */
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			for (i = 0; fd >= 0 && i < FK_CONNS; i++)
				if (k[i].fd < 0)
					break;
			if (fd >= 0 && i == FK_CONNS) {
				close(fd);
				continue;
			}
			if (fd >= 0) {
				k[i].fd = fd;
				k[i].len = 0;
				k[i].subscribed = 0;
				__atomic_add_fetch(&sh->accepted, 1,
						   __ATOMIC_SEQ_CST);
			}
		}
	}
}

/* ========================================================= the tests = */

/* ---- 1. read-through and fill, one fetch for many processes -------- */

struct multi_arg {
	const char *name, *addr, *key;
};

static int kid_multi_get(int idx, void *argp)
{
	struct multi_arg *a = argp;
	SHF_NC *nc;
	char buf[64];
	uint32_t r;

	(void)idx;
	shf_init();
	nc = nc_open_at(a->name, a->addr);
	if (!nc)
		return kfail(1, "open: %s", strerror(errno));
	r = get(nc, a->key, buf, sizeof(buf));
	if (r != SHF_RET_KEY_FOUND || strcmp(buf, "shared"))
		return kfail(2, "get: %u '%s' (%s)", r, buf, strerror(errno));
	shf_nc_close(nc);
	return 0;
}

START_TEST(test_read_through)
{
	struct shf_nc_stats st, st2;
	struct shf_test_kids k;
	struct multi_arg ma;
	struct rs r;
	struct tab t;
	redisContext *c;
	char buf[256];
	uint64_t epoch = 0;
	long long gets;
	SHF_NC *nc;
	pid_t d;

	rs_start(&r);
	shared_new();
	tab_new(&t, "readthrough");
	d = daemon_start(t.name, r.addr, "--stale-ms", "2000", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s %s", key_of("k1"), "v1");
	cmd(c, "SET %s %s", key_of("multi"), "shared");
	cmd(c, "DEL %s", key_of("absent"));

	nc = nc_open(t.name, r.addr);
	get_is(nc, key_of("k1"), "v1");         /* miss, fetch, fill */
	ck_assert_int_eq(rec_of(t.shf, key_of("k1"), buf, sizeof(buf), &epoch),
			 REC_VAL);
	ck_assert_str_eq(buf, "v1");
	ck_assert_uint_eq(epoch, nc_st(t.name).epoch);
	get_is(nc, key_of("k1"), "v1");         /* hit */
	get_is(nc, key_of("absent"), NULL);     /* Redis has none: cached */
	ck_assert_int_eq(rec_of(t.shf, key_of("absent"), NULL, 0, NULL),
			 REC_ABS);
	get_is(nc, key_of("absent"), NULL);     /* a hit of the absence */
	shf_nc_close(nc);                       /* counters reach the file */
	st = nc_st(t.name);
	ck_assert_uint_eq(st.state, SHF_NC_UP);
	ck_assert_uint_eq(st.mode, SHF_NC_MODE_REDIRECT);
	ck_assert_uint_eq(st.fills, 2);
	ck_assert_uint_eq(st.misses, 2);
	ck_assert_uint_eq(st.hits + st.bypassed, 2);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_int_eq(st.daemon_pid, d);
	ck_assert_uint_eq(st.daemon_alive, 1);
	ck_assert_str_eq(st.redis, r.addr);
	ck_assert(st.client_id > 0);

	/* Four processes want one key: one fetch, the others wait. */
	gets = calls_of(c, "get");
	ma.name = t.name;
	ma.addr = r.addr;
	ma.key = key_of("multi");
	shf_test_spawn(&k, 4, kid_multi_get, &ma);
	shf_test_go(&k);
	kids_ok(&k, 20);
	st2 = nc_st(t.name);
	ck_assert_uint_eq(st2.fills - st.fills, 1);
	ck_assert_int_eq(calls_of(c, "get") - gets,
			 1 + (long long)(st2.bypassed - st.bypassed));

	/* The stats of an older caller: only its size is written. */
	memset(&st, 0xa5, sizeof(st));
	ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), t.name, &st,
				       offsetof(struct shf_nc_stats, hits)),
			  SHF_RET_OK);
	ck_assert_uint_eq(st.state, SHF_NC_UP);
	ck_assert_uint_eq(st.hits, 0xa5a5a5a5a5a5a5a5ULL);

	/* shf stat shows the near-cache beside the table's own figures. */
	ck_assert(shf_stat_shows(t.name, "--json",
				 "\"nearcache\": {\"state\": \"up\""));
	ck_assert(shf_stat_shows(t.name, "--prometheus", "libshf_nc_up{"));
	ck_assert(shf_stat_shows(t.name, "", "\nnc_state       up\n"));

	daemon_stop(d, t.name);
	redisFree(c);
	tab_end(&t);
	shared_end();
	rs_end(&r);
}
END_TEST

/* ---- 2. another client's writes reach the table ------------------- */

START_TEST(test_invalidation)
{
	struct shf_nc_stats st;
	struct rs r;
	struct tab t;
	redisContext *c;
	double t0, dt;
	uint64_t inv;
	SHF_NC *nc;
	pid_t d;
	const char bin[] = "bin\0ary\nkey";

	rs_start(&r);
	tab_new(&t, "invalidation");
	d = daemon_start(t.name, r.addr, "--stale-ms", "2000", NULL);
	wait_up(t.name);
	c = cli(&r);
	nc = nc_open(t.name, r.addr);

	cmd(c, "SET %s %s", key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	t0 = shf_test_now();
	cmd(c, "SET %s %s", key_of("k"), "v2");
	ck_assert_msg(wait_rec_not(t.shf, key_of("k"), "v1", 2) == 0,
		      "v1 still in the table");
	dt = shf_test_now() - t0;
	ck_assert_msg(dt < 1.0 * shf_test_multiplier(),
		      "invalidation took %.3f s", dt);
	get_is(nc, key_of("k"), "v2");

	/* A delete; the absence is cached, and a write removes that too. */
	cmd(c, "DEL %s", key_of("k"));
	ck_assert(wait_rec_not(t.shf, key_of("k"), "v2", 2) == 0);
	get_is(nc, key_of("k"), NULL);
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_ABS);
	cmd(c, "SET %s %s", key_of("k"), "v3");
	ck_assert(wait_rec_gone(t.shf, key_of("k"), REC_ABS, 2) == 0);
	get_is(nc, key_of("k"), "v3");

	/* Keys never read here cost no invalidation. */
	shf_nc_close(nc);
	inv = nc_st(t.name).invalidations;
	cmd(c, "SET %s %s", key_of("never-read"), "x");
	shf_test_msleep(200);
	ck_assert_uint_eq(nc_st(t.name).invalidations, inv);

	/* Binary keys; Redis's TTL bounds the table's. */
	nc = nc_open(t.name, r.addr);
	cmd(c, "SET %b %s PX 600000", bin, sizeof(bin) - 1, "binval");
	{
		const char *v;
		uint32_t len;

		ck_assert_uint_eq(shf_nc_get(nc, bin, sizeof(bin) - 1, &v,
					     &len),
				  SHF_RET_KEY_FOUND);
		ck_assert_uint_eq(len, 6);
		ck_assert_mem_eq(v, "binval", 6);
		shf_make_hash(bin, sizeof(bin) - 1);
		ck_assert_uint_eq(shf_get_key_ttl(t.shf), SHF_RET_KEY_FOUND);
		ck_assert(shf_val_long > 0 && shf_val_long <= 600000);
		cmd(c, "DEL %b", bin, sizeof(bin) - 1);
		t0 = shf_test_now() + 2 * shf_test_multiplier();
		shf_make_hash(bin, sizeof(bin) - 1);
		while (shf_get_key_val_copy(t.shf) == SHF_RET_KEY_FOUND &&
		       shf_test_now() < t0) {
			shf_test_msleep(1);
			shf_make_hash(bin, sizeof(bin) - 1);
		}
		ck_assert_uint_eq(shf_nc_get(nc, bin, sizeof(bin) - 1, &v,
					     &len),
				  SHF_RET_KEY_NONE);
	}
	shf_nc_close(nc);
	st = nc_st(t.name);
	ck_assert(st.invalidations >= 4);
	ck_assert_uint_eq(st.errors, 0);
	daemon_stop(d, t.name);
	redisFree(c);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/* ---- 3. the fill/invalidate race ------------------------------------ */

/*
 * Readers reach Redis through our proxy, which holds Redis's answers back
 * 25 ms; the daemon and the writer do not.  Each round the writer changes
 * the key at a random moment while readers (one fetching, the others
 * waiting for its lease) are between their GET and their fill.  After
 * each write the table must lose the old value within a bound (no fill of
 * it may land after the invalidation), and every read after that must
 * return the new one; a reader may return the old value only while its
 * read overlapped the write.
 */
#define RACE_ROUNDS 60
#define RACE_READERS 3

struct race_arg {
	const char *name, *addr, *key;
};

static int kid_race(int idx, void *argp)
{
	struct race_arg *a = argp;
	SHF_NC *nc;
	char buf[64];
	uint32_t round, r, v;

	(void)idx;
	shf_init();
	nc = nc_open_at(a->name, a->addr);
	if (!nc)
		return kfail(1, "open: %s", strerror(errno));
	for (round = 1; round <= RACE_ROUNDS; round++) {
		/* sh->u[0]: the round the parent started. */
		while (__atomic_load_n(&sh->u[0], __ATOMIC_SEQ_CST) < round) {
			if (__atomic_load_n(&sh->failed, __ATOMIC_SEQ_CST))
				return 3;
			shf_test_msleep(1);
		}
		r = get(nc, a->key, buf, sizeof(buf));
		if (r != SHF_RET_KEY_FOUND)
			return kfail(4, "round %u: get %u (%s)", round, r,
				     strerror(errno));
		v = (uint32_t)strtoul(buf, NULL, 10);
		/* The value before this round's write, or after it. */
		if (v != round - 1 && v != round)
			return kfail(5, "round %u: read %u", round, v);
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_SEQ_CST);
	}
	shf_nc_close(nc);
	return 0;
}

START_TEST(test_fill_race)
{
	struct shf_test_kids k;
	struct shf_nc_stats st;
	struct race_arg ra;
	struct px_arg pa;
	struct rs r;
	struct tab t;
	char paddr[300], val[32], buf[64];
	redisContext *c;
	uint32_t round;
	unsigned seed = (unsigned)getpid();
	SHF_NC *nc;
	pid_t d, px;
	int i;

	rs_start_own(&r, NULL);
	shared_new();
	tab_new(&t, "race");
	px = proxy_start(&r, &pa);
	__atomic_store_n(&sh->delay_ms, 25, __ATOMIC_SEQ_CST);
	snprintf(paddr, sizeof(paddr), "unix:%s", pa.listen);
	d = daemon_start(t.name, r.addr, "--stale-ms", "5000", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s 0", key_of("race"));
	nc = nc_open(t.name, r.addr); /* the parent's reads: direct */

	ra.name = t.name;
	ra.addr = paddr;
	ra.key = key_of("race");
	shf_test_spawn(&k, RACE_READERS, kid_race, &ra);
	shf_test_go(&k);
	for (round = 1; round <= RACE_ROUNDS; round++) {
		/* The readers must fetch: away with what our checks of the
		 * round before stored (as an eviction would). */
		shf_make_hash(key_of("race"), (uint32_t)strlen(key_of("race")));
		shf_del_key_val(t.shf);
		__atomic_store_n(&sh->done, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&sh->u[0], round, __ATOMIC_SEQ_CST);
		/* Write while the readers' fetch is held back, or just
		 * before or after it. */
		shf_test_msleep((unsigned)(rand_r(&seed) % 40));
		snprintf(val, sizeof(val), "%u", round);
		cmd(c, "SET %s %s", key_of("race"), val);
		snprintf(val, sizeof(val), "%u", round - 1);
		ck_assert_msg(shf_test_wait_u32(&sh->done, RACE_READERS, 20) ==
				      0,
			      "round %u: readers late: %s", round,
			      sh->failed ? sh->msg : "");
		/* The old value leaves the table and never comes back. */
		ck_assert_msg(wait_rec_not(t.shf, key_of("race"), val, 2) == 0,
			      "round %u: the old value stays in the table",
			      round);
		snprintf(val, sizeof(val), "%u", round);
		for (i = 0; i < 3; i++)
			get_is(nc, key_of("race"), val);
		ck_assert_int_ne(rec_of(t.shf, key_of("race"), buf,
					sizeof(buf), NULL),
				 REC_ABS);
	}
	kids_ok(&k, 20);
	shf_nc_close(nc);
	st = nc_st(t.name);
	fprintf(stderr,
		"race: %u rounds: fills %llu, fill races %llu, "
		"invalidations %llu, bypassed %llu\n",
		RACE_ROUNDS, (unsigned long long)st.fills,
		(unsigned long long)st.fill_races,
		(unsigned long long)st.invalidations,
		(unsigned long long)st.bypassed);
	/* The race did happen, often. */
	ck_assert_msg(st.fill_races >= RACE_ROUNDS / 10,
		      "only %llu fill races in %u rounds",
		      (unsigned long long)st.fill_races, RACE_ROUNDS);
	ck_assert_uint_eq(st.errors, 0);
	daemon_stop(d, t.name);
	daemon_kill(px);
	redisFree(c);
	tab_end(&t);
	shared_end();
	rs_end(&r);
}
END_TEST

/*
 * A read of key, absent from Redis, whose absence must come to be kept in
 * the table.  A fill may be given up for a reason of the moment (the
 * daemon's answer to the tracking request late on a loaded machine, an
 * epoch that moved on): each later read tries again, a few times; what
 * the counters said is printed when one did not take.
 */
static void get_absent_cached(SHF_NC *nc, struct tab *t, const char *key)
{
	struct shf_nc_stats st;
	int tries;

	for (tries = 0; tries < 20 * shf_test_multiplier(); tries++) {
		get_is(nc, key, NULL);
		if (rec_of(t->shf, key, NULL, 0, NULL) == REC_ABS)
			return;
		st = nc_st(t->name);
		printf("absence of %s not kept (try %d): state %u, epoch %llu, "
		       "fills %llu, fill races %llu, bypassed %llu, errors "
		       "%llu, resyncs %llu\n", key, tries, st.state,
		       (unsigned long long)st.epoch,
		       (unsigned long long)st.fills,
		       (unsigned long long)st.fill_races,
		       (unsigned long long)st.bypassed,
		       (unsigned long long)st.errors,
		       (unsigned long long)st.resyncs);
		shf_test_msleep(50);
	}
	ck_assert_msg(0, "the absence of %s never kept", key);
}

/* ---- 4. connection loss: Redis killed and restarted; a partition ---- */

START_TEST(test_redis_restart)
{
	struct shf_nc_stats st;
	struct rs r;
	struct tab t;
	redisContext *c;
	char buf[64];
	uint64_t epoch;
	uint32_t ret;
	SHF_NC *nc;
	pid_t d;

	rs_start_own(&r, NULL);
	tab_new(&t, "restart");
	d = daemon_start(t.name, r.addr, "--stale-ms", "5000", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s v1", key_of("k"));
	nc = nc_open(t.name, r.addr);
	get_is(nc, key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	st = nc_st(t.name);
	epoch = st.epoch;
	redisFree(c);

	/* Redis dies: the daemon sees it at once (DOWN, new epoch, empty
	 * table) and no read is served from the table. */
	rs_kill(&r, SIGKILL);
	ck_assert_msg(wait_emptied(t.name, st.resyncs, 2) == 0,
		      "not DOWN, or the table not emptied");
	st = nc_st(t.name);
	ck_assert(st.epoch > epoch);
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_NONE);
	ret = get(nc, key_of("k"), buf, sizeof(buf));
	ck_assert_msg(ret == SHF_RET_ERROR && errno == ECONNREFUSED,
		      "get with Redis down: %u '%s' (%s)", ret, buf,
		      strerror(errno));
	ret = get(nc, key_of("k"), buf, sizeof(buf));
	ck_assert_msg(ret == SHF_RET_ERROR && errno == ECONNREFUSED,
		      "get with Redis down, again: %u '%s' (%s)", ret, buf,
		      strerror(errno));

	/* Back, empty (no persistence): the key is gone for everyone. */
	rs_restart(&r);
	wait_up(t.name);
	get_absent_cached(nc, &t, key_of("k"));
	c = cli(&r);
	cmd(c, "SET %s v2", key_of("k"));
	ck_assert(wait_rec_gone(t.shf, key_of("k"), REC_ABS, 2) == 0);
	get_is(nc, key_of("k"), "v2");
	shf_nc_close(nc);
	st = nc_st(t.name);
	ck_assert_uint_eq(st.reconnects, 1);
	ck_assert(st.resyncs >= 4);
	ck_assert(st.last_error[0] != '\0');
	daemon_stop(d, t.name);
	redisFree(c);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/*
 * The daemon reaches Redis through the proxy, the readers directly: the
 * worst case, where readers can fill while invalidations are lost.  A
 * partition (BLACKHOLE): no read may return the replaced value once
 * stale_ms have passed since the write; the daemon notices within its
 * timeout and empties the table.  Healed: UP again.  CUT: noticed at once.
 */
START_TEST(test_partition)
{
	struct shf_nc_stats st;
	struct px_arg pa;
	struct rs r;
	struct tab t;
	char paddr[300], buf[64];
	redisContext *c;
	double t_set, left;
	uint64_t epoch, resyncs;
	uint32_t ret;
	SHF_NC *nc;
	pid_t d, px;

	rs_start_own(&r, NULL);
	shared_new();
	tab_new(&t, "partition");
	px = proxy_start(&r, &pa);
	snprintf(paddr, sizeof(paddr), "unix:%s", pa.listen);
	d = daemon_start(t.name, paddr, "--ping-ms", "50", "--stale-ms", "300",
			 "--timeout-ms", "1000", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s v1", key_of("k"));
	nc = nc_open(t.name, r.addr);
	get_is(nc, key_of("k"), "v1");
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_VAL);

	resyncs = nc_st(t.name).resyncs;
	__atomic_store_n(&sh->mode, PX_BLACKHOLE, __ATOMIC_SEQ_CST);
	shf_test_msleep(20);
	t_set = shf_test_now();
	cmd(c, "SET %s v2", key_of("k"));
	/* Until stale_ms after the write, v1 may still be served; from
	 * then on never. */
	shf_test_msleep(310);
	while ((left = t_set + 1.5 - shf_test_now()) > 0) {
		ret = get(nc, key_of("k"), buf, sizeof(buf));
		ck_assert_msg(ret == SHF_RET_KEY_FOUND && !strcmp(buf, "v2"),
			      "%.0f ms after the write: %u '%s'",
			      (shf_test_now() - t_set) * 1000, ret, buf);
		shf_test_msleep(10);
	}
	ck_assert_msg(wait_emptied(t.name, resyncs, 3) == 0,
		      "the partition was not noticed");
	st = nc_st(t.name);
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_NONE);
	epoch = st.epoch;

	__atomic_store_n(&sh->mode, PX_PASS, __ATOMIC_SEQ_CST);
	wait_up(t.name);
	ck_assert(nc_st(t.name).epoch > epoch);
	get_is(nc, key_of("k"), "v2");
	get_is(nc, key_of("k"), "v2");
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), buf, sizeof(buf), NULL),
			 REC_VAL);
	ck_assert_str_eq(buf, "v2");

	/* Cut: the daemon sees its connections close, at once. */
	resyncs = nc_st(t.name).resyncs;
	__atomic_store_n(&sh->mode, PX_CUT, __ATOMIC_SEQ_CST);
	ck_assert_msg(wait_emptied(t.name, resyncs, 0.5) == 0,
		      "the cut was not noticed at once");
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_NONE);
	__atomic_store_n(&sh->mode, PX_PASS, __ATOMIC_SEQ_CST);
	wait_up(t.name);
	get_is(nc, key_of("k"), "v2");
	shf_nc_close(nc);
	ck_assert(nc_st(t.name).reconnects >= 2);
	daemon_stop(d, t.name);
	daemon_kill(px);
	redisFree(c);
	tab_end(&t);
	shared_end();
	rs_end(&r);
}
END_TEST

/* ---- 5. the daemon SIGKILLed, then replaced ------------------------ */

START_TEST(test_daemon_killed)
{
	struct shf_nc_stats st;
	struct rs r;
	struct tab t;
	redisContext *c;
	uint64_t epoch;
	SHF_NC *nc;
	pid_t d, d2, d3;
	int rc;

	rs_start(&r);
	tab_new(&t, "killed");
	d = daemon_start(t.name, r.addr, "--stale-ms", "300", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s v1", key_of("k"));
	nc = nc_open(t.name, r.addr);
	get_is(nc, key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	epoch = nc_st(t.name).epoch;

	daemon_kill(d);
	cmd(c, "SET %s v2", key_of("k"));
	/* Nobody deletes it now, but after stale_ms no read uses it. */
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_VAL);
	shf_test_msleep(310);
	get_is(nc, key_of("k"), "v2");
	get_is(nc, key_of("k"), "v2");
	st = nc_st(t.name);
	ck_assert_uint_eq(st.state, SHF_NC_UP); /* as it was left */
	ck_assert_uint_eq(st.daemon_alive, 0);

	/* A new daemon takes over: new epoch, table emptied. */
	d2 = daemon_start(t.name, r.addr, "--stale-ms", "300", NULL);
	wait_up(t.name);
	st = nc_st(t.name);
	ck_assert(st.epoch > epoch);
	ck_assert_int_eq(st.daemon_pid, d2);
	ck_assert_int_eq(rec_of(t.shf, key_of("k"), NULL, 0, NULL), REC_NONE);
	get_is(nc, key_of("k"), "v2");
	get_is(nc, key_of("k"), "v2");

	/* A second daemon for the same table refuses: exit 3. */
	d3 = daemon_start(t.name, r.addr, NULL);
	rc = shf_test_waitpid(d3, WAIT_S);
	ck_assert_msg(rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 3,
		      "second daemon: status %d", rc);
	ck_assert_int_eq(nc_st(t.name).daemon_pid, d2);
	ck_assert_uint_eq(nc_st(t.name).state, SHF_NC_UP);

	shf_nc_close(nc);
	daemon_stop(d2, t.name);
	redisFree(c);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/* ---- 6. bad server replies ----------------------------------------- */

static pid_t fake_start(const struct rs *r, char *addr, size_t size,
			char *path, size_t psize)
{
	pid_t pid;

	snprintf(path, psize, "%s/fake.sock", r->dir);
	snprintf(addr, size, "unix:%s", path);
	unlink(path);
	pid = helper(fake_run, path);
	wait_listen(path);
	return pid;
}

/* A reader (no daemon: every read goes to the server) against a mode. */
static void reader_vs(const char *name, const char *addr, uint32_t mode,
		      int want_errno, int or_errno)
{
	struct shf_nc_options o;
	const char *v;
	uint32_t len, ret;
	double t0;
	SHF_NC *nc;
	int i;

	__atomic_store_n(&sh->mode, mode, __ATOMIC_SEQ_CST);
	memset(&o, 0, sizeof(o));
	o.redis = addr;
	o.timeout_ms = 300;
	nc = shf_nc_open(shf_test_dir(), name, &o, sizeof(o));
	ck_assert(nc != NULL);
	for (i = 0; i < 2; i++) {
		t0 = shf_test_now();
		errno = 0;
		ret = shf_nc_get(nc, "k", 1, &v, &len);
		ck_assert_msg(ret == SHF_RET_ERROR && (errno == want_errno ||
						       errno == or_errno),
			      "mode %u: %u, errno %d (%s), want %d", mode, ret,
			      errno, strerror(errno), want_errno);
		ck_assert_msg(shf_test_now() - t0 <
				      1.0 * shf_test_multiplier(),
			      "mode %u: %.3f s", mode, shf_test_now() - t0);
	}
	shf_nc_close(nc);
}

/* A daemon against a mode: it must live on, never UP, counting errors,
 * and stop cleanly. */
static void daemon_vs(const char *name, const char *addr, uint32_t mode)
{
	struct shf_nc_stats st;
	uint64_t errors = nc_st(name).errors;
	uint32_t acc;
	double end;
	pid_t d;

	__atomic_store_n(&sh->mode, mode, __ATOMIC_SEQ_CST);
	acc = __atomic_load_n(&sh->accepted, __ATOMIC_SEQ_CST);
	d = daemon_start(name, addr, "--timeout-ms", "200", NULL);
	/* Two sessions at least (the second after the backoff). */
	end = shf_test_now() + WAIT_S * shf_test_multiplier();
	while (__atomic_load_n(&sh->accepted, __ATOMIC_SEQ_CST) < acc + 2 ||
	       nc_st(name).errors < errors + 2) {
		ck_assert_msg(shf_test_now() < end, "mode %u: no retry", mode);
		ck_assert_msg(kill(d, 0) == 0, "mode %u: daemon died", mode);
		shf_test_msleep(10);
	}
	st = nc_st(name);
	ck_assert_msg(st.state != SHF_NC_UP, "mode %u: UP", mode);
	ck_assert_msg(st.last_error[0], "mode %u: no last error", mode);
	daemon_stop(d, name);
}

START_TEST(test_bad_replies)
{
	char addr[300], path[256];
	struct shf_nc_stats st;
	struct rs r;
	struct tab t;
	const char *v;
	uint32_t len;
	SHF_NC *nc;
	pid_t fk, d;

	rs_start_own(&r, NULL); /* for its directory */
	shared_new();
	tab_new(&t, "badreplies");
	fk = fake_start(&r, addr, sizeof(addr), path, sizeof(path));

	/* The read API: a clean error each time, bounded. */
	reader_vs(t.name, addr, FK_GARBAGE, EPROTO, EPROTO);
	reader_vs(t.name, addr, FK_INTEGER, EPROTO, EPROTO);
	reader_vs(t.name, addr, FK_ERROR, EIO, EIO);
	reader_vs(t.name, addr, FK_CLOSE, ECONNRESET, ECONNRESET);
	reader_vs(t.name, addr, FK_SILENT, ETIMEDOUT, ETIMEDOUT);
	/* timeout_ms bounds the reply, not each read of it */
	reader_vs(t.name, addr, FK_DRIP, ETIMEDOUT, ETIMEDOUT);
	/* hiredis refuses the length (EPROTO) or cannot allocate it */
	reader_vs(t.name, addr, FK_HUGE, EPROTO, ENOMEM);
	/*
	 * an array's elements are bounded, not only its unparsed bytes:
	 * before, the heap grew until the reply's time ran out (ETIMEDOUT)
	 */
	reader_vs(t.name, addr, FK_FLOOD, EPROTO, EPROTO);

	/* The daemon: errors, retries with backoff, never crashes. */
	daemon_vs(t.name, addr, FK_GARBAGE);
	daemon_vs(t.name, addr, FK_WRONG_ID);
	daemon_vs(t.name, addr, FK_BADPONG);
	daemon_vs(t.name, addr, FK_SILENT);
	daemon_vs(t.name, addr, FK_CLOSE);
	daemon_vs(t.name, addr, FK_HUGE);

	/* A server good enough to go UP, then a bad invalidation. */
	__atomic_store_n(&sh->mode, FK_PLAY, __ATOMIC_SEQ_CST);
	d = daemon_start(t.name, addr, "--timeout-ms", "300", NULL);
	wait_up(t.name);
	/* While UP, a reader whose GET gets an array: an error, no fill. */
	__atomic_store_n(&sh->mode, FK_GET_WRONG, __ATOMIC_SEQ_CST);
	nc = nc_open(t.name, addr);
	errno = 0;
	ck_assert_uint_eq(shf_nc_get(nc, "k", 1, &v, &len), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(rec_of(t.shf, "k", NULL, 0, NULL), REC_NONE);
	__atomic_store_n(&sh->mode, FK_PLAY, __ATOMIC_SEQ_CST);
	/*
	 * A value whose time ends now, or ended since the GET: served, not
	 * kept (kept before, with the handle's TTL: no end).
	 */
	for (uint32_t m = FK_PTTL0; m <= FK_PTTL2; m++) {
		__atomic_store_n(&sh->mode, m, __ATOMIC_SEQ_CST);
		ck_assert_uint_eq(shf_nc_get(nc, "k", 1, &v, &len),
				  SHF_RET_KEY_FOUND);
		ck_assert_mem_eq(v, "faked", 5);
		ck_assert_int_eq(rec_of(t.shf, "k", NULL, 0, NULL), REC_NONE);
	}
	__atomic_store_n(&sh->mode, FK_PLAY, __ATOMIC_SEQ_CST);
	ck_assert_uint_eq(shf_nc_get(nc, "k", 1, &v, &len), SHF_RET_KEY_FOUND);
	ck_assert_mem_eq(v, "faked", 5);
	shf_nc_close(nc);
	__atomic_store_n(&sh->inject, 1, __ATOMIC_SEQ_CST);
	ck_assert_msg(wait_state(t.name, SHF_NC_DOWN, 2) == 0 ||
			      nc_st(t.name).reconnects > 0,
		      "a bad invalidation was not noticed");
	wait_up(t.name);
	st = nc_st(t.name);
	ck_assert(st.reconnects >= 1);
	ck_assert_msg(strstr(st.last_error, "invalidation") != NULL,
		      "last error: %s", st.last_error);
	daemon_stop(d, t.name);

	daemon_kill(fk);
	unlink(path);
	tab_end(&t);
	shared_end();
	rs_end(&r);
}
END_TEST

/* ---- 7. a hostile sidecar ------------------------------------------- */

static void side_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s%s", shf_test_dir(), name, NC_SUFFIX);
}

static void side_poke(const char *name, size_t off, const void *p, size_t n)
{
	char path[SHF_TEST_PATH_MAX];
	int fd;

	side_path(path, sizeof(path), name);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/*
 * A FIFO that another user made in the sidecar's place (a world-writable
 * /dev/shm): shf_nc_stats(), so "shf stat" of any table, waited for ever
 * in its read-only open().  Now it is refused (EBADMSG) at once.
 */
START_TEST(test_sidecar_fifo)
{
	struct shf_nc_stats st;
	char path[SHF_TEST_PATH_MAX];
	struct tab t;
	int status;
	pid_t pid;

	tab_new(&t, "fifo");
	side_path(path, sizeof(path), t.name);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		errno = 0;
		_exit(shf_nc_stats(shf_test_dir(), t.name, &st, sizeof(st)) ==
				      SHF_RET_ERROR &&
			      errno == EBADMSG ?
			      0 :
			      1);
	}
	status = shf_test_waitpid(pid, 10);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "shf_nc_stats() of a FIFO: status %#x (-1: it hung)",
		      status);
	tab_end(&t);
}
END_TEST

/*
 * A sidecar of another user's, or one that others may write beside a
 * table they may not (found by review): it names the Redis server and the
 * daemon's socket that readers use, and was taken whoever made it.  Now
 * its owner must be the table's, and it is refused (EPERM) otherwise.
 */
START_TEST(test_sidecar_of_another_user)
{
	struct shf_nc_stats st;
	struct nc_side side;
	char path[SHF_TEST_PATH_MAX], page[NC_SIDE_SIZE];
	struct tab t;
	int fd;

	tab_new(&t, "sideowner");
	side_path(path, sizeof(path), t.name);
	memset(&side, 0, sizeof(side));
	side.magic = NC_MAGIC;
	side.layout = NC_LAYOUT;
	side.size = NC_SIDE_SIZE;
	memset(page, 0, sizeof(page));
	memcpy(page, &side, sizeof(side));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, page, sizeof(page)), (ssize_t)sizeof(page));
	close(fd);
	ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), t.name, &st, sizeof(st)),
			  SHF_RET_OK);
	/* others may write it, not the table */
	ck_assert_int_eq(chmod(path, 0666), 0);
	errno = 0;
	ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), t.name, &st, sizeof(st)),
			  SHF_RET_ERROR);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(chmod(path, 0600), 0);
	/* another user's (root can hand it over to nobody) */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		errno = 0;
		ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), t.name, &st,
					       sizeof(st)),
				  SHF_RET_ERROR);
		ck_assert_int_eq(errno, EPERM);
	}
	unlink(path);
	tab_end(&t);
}
END_TEST

/*
 * As user uid (primary group uid, also in group grp), open the near-cache
 * of table name (mk: shf_nc_open(), which makes the sidecar; else
 * shf_nc_stats()): 0, or the errno it failed with.
 */
static int nc_as(uid_t uid, gid_t grp, const char *name, int mk)
{
	struct shf_nc_stats st;
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		gid_t groups[1] = { grp };
		SHF_NC *nc;

		if (setgroups(1, groups) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid))
			_exit(100);
		shf_set_allow_shared(1);
		errno = 0;
		if (mk) {
			nc = shf_nc_open(shf_test_dir(), name, NULL, 0);
			if (nc)
				shf_nc_close(nc);
			_exit(nc ? 0 : errno ? errno : 101);
		}
		_exit(shf_nc_stats(shf_test_dir(), name, &st, sizeof(st)) ==
				      SHF_RET_OK ?
			      0 :
		      errno ? errno :
			      101);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * A member of the table's group (not by its primary group) makes the
 * sidecar: it gets the table's group, and the table's owner and the
 * group's other members may use it.
 */
START_TEST(test_sidecar_of_a_group_member)
{
	char path[SHF_TEST_PATH_MAX], table[SHF_TEST_PATH_MAX];
	const uid_t owner = 61001, member = 61002, other = 61003;
	const gid_t grp = 61000;
	struct stat st;
	struct tab t;

	if (geteuid() != 0)
		return; /* needs setresuid(); CI runs as root */
	tab_new(&t, "sidegroup");
	side_path(path, sizeof(path), t.name);
	snprintf(table, sizeof(table), "%s/%s.shf", shf_test_dir(), t.name);
	ck_assert_int_eq(chown(table, owner, grp), 0);
	ck_assert_int_eq(chmod(table, 0664), 0);
	ck_assert_int_eq(nc_as(member, grp, t.name, 1), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq((int)st.st_uid, (int)member);
	ck_assert_int_eq((int)st.st_gid, (int)grp);
	ck_assert_int_eq(st.st_mode & 0777, 0664);
	/* the table's owner (in the group) and another member */
	ck_assert_int_eq(nc_as(owner, grp, t.name, 0), 0);
	ck_assert_int_eq(nc_as(other, grp, t.name, 0), 0);
	ck_assert_int_eq(nc_as(other, grp, t.name, 1), 0);
	/* one outside the group may not write the table: no near-cache */
	ck_assert_int_eq(nc_as(other, other, t.name, 1), EACCES);
	unlink(path);
	tab_end(&t);
}
END_TEST

START_TEST(test_hostile_sidecar)
{
	struct shf_nc_stats st;
	char path[SHF_TEST_PATH_MAX], good[NC_SIDE_SIZE];
	struct rs r;
	struct tab t;
	redisContext *c;
	uint64_t v64;
	uint32_t v32;
	SHF_NC *nc;
	pid_t d;
	int fd;

	rs_start(&r);
	tab_new(&t, "hostile");
	d = daemon_start(t.name, r.addr, "--stale-ms", "2000", NULL);
	wait_up(t.name);
	c = cli(&r);
	cmd(c, "SET %s v1", key_of("k"));
	nc = nc_open(t.name, r.addr);
	get_is(nc, key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	daemon_stop(d, t.name);
	cmd(c, "SET %s v2", key_of("k"));
	side_path(path, sizeof(path), t.name);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, good, sizeof(good)), (ssize_t)sizeof(good));
	close(fd);

	/* States no daemon writes: reads go to Redis, right. */
	v64 = NC_GEN(nc_st(t.name).epoch, 3);
	side_poke(t.name, offsetof(struct nc_side, gen), &v64, 8);
	get_is(nc, key_of("k"), "v2");
	v64 = NC_GEN(nc_st(t.name).epoch, SHF_NC_UP);
	side_poke(t.name, offsetof(struct nc_side, gen), &v64, 8);
	v64 = UINT64_MAX; /* a sync in the future */
	side_poke(t.name, offsetof(struct nc_side, synced_ms), &v64, 8);
	get_is(nc, key_of("k"), "v2");
	v32 = 0; /* no bound */
	side_poke(t.name, offsetof(struct nc_side, stale_ms), &v32, 4);
	get_is(nc, key_of("k"), "v2");
	v32 = 1000000; /* a sync "now", a mode and prefixes of nonsense */
	side_poke(t.name, offsetof(struct nc_side, stale_ms), &v32, 4);
	v64 = ms_now();
	side_poke(t.name, offsetof(struct nc_side, synced_ms), &v64, 8);
	v64 = NC_GEN(nc_st(t.name).epoch + 1, SHF_NC_UP);
	side_poke(t.name, offsetof(struct nc_side, gen), &v64, 8);
	v32 = 7;
	side_poke(t.name, offsetof(struct nc_side, mode), &v32, 4);
	get_is(nc, key_of("k"), "v2");
	v32 = SHF_NC_MODE_BCAST;
	side_poke(t.name, offsetof(struct nc_side, mode), &v32, 4);
	v32 = 100000;
	side_poke(t.name, offsetof(struct nc_side, nprefix), &v32, 4);
	get_is(nc, key_of("k"), "v2");
	v32 = 1;
	side_poke(t.name, offsetof(struct nc_side, nprefix), &v32, 4);
	v32 = 100000;
	side_poke(t.name, offsetof(struct nc_side, prefix_len), &v32, 4);
	get_is(nc, key_of("k"), "v2");
	st = nc_st(t.name);
	ck_assert_uint_eq(st.prefixes, 1);
	shf_nc_close(nc);

	/* Not a sidecar, another layout, the wrong size, a symlink. */
	v64 = 12345;
	side_poke(t.name, 0, &v64, 8);
	errno = 0;
	ck_assert(nc_open_at(t.name, r.addr) == NULL);
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), t.name, &st, sizeof(st)),
			  SHF_RET_ERROR);
	ck_assert_int_eq(errno, EBADMSG);
	side_poke(t.name, 0, good, sizeof(good));
	v32 = NC_LAYOUT + 1;
	side_poke(t.name, offsetof(struct nc_side, layout), &v32, 4);
	errno = 0;
	ck_assert(nc_open_at(t.name, r.addr) == NULL);
	ck_assert_int_eq(errno, EPROTO);
	side_poke(t.name, 0, good, sizeof(good));
	ck_assert_int_eq(truncate(path, NC_SIDE_SIZE / 2), 0);
	errno = 0;
	ck_assert(nc_open_at(t.name, r.addr) == NULL);
	ck_assert_int_eq(errno, EBADMSG);
	unlink(path);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	errno = 0;
	ck_assert(nc_open_at(t.name, r.addr) == NULL);
	ck_assert_int_eq(errno, ELOOP);
	/* The daemon refuses it too, saying so. */
	d = daemon_start(t.name, r.addr, NULL);
	fd = shf_test_waitpid(d, WAIT_S);
	ck_assert_msg(fd >= 0 && WIFEXITED(fd) && WEXITSTATUS(fd) == 1,
		      "daemon on a symlink: %d", fd);
	unlink(path);

	redisFree(c);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/* ---- 8. two hosts on one Redis; readers that come and go ------------- */

struct host_arg {
	const char *name, *addr, *key;
	int sigkill; /* die without closing */
};

/* Fill key, then leave: by exit (handle not closed) or SIGKILL. */
static int kid_fill_and_go(int idx, void *argp)
{
	struct host_arg *a = argp;
	SHF_NC *nc;
	char buf[64];

	(void)idx;
	shf_init();
	nc = nc_open_at(a->name, a->addr);
	if (!nc)
		return kfail(1, "open: %s", strerror(errno));
	if (get(nc, a->key, buf, sizeof(buf)) != SHF_RET_KEY_FOUND)
		return kfail(2, "get: %s", strerror(errno));
	if (a->sigkill)
		raise(SIGKILL);
	_exit(0);
}

START_TEST(test_two_hosts)
{
	struct shf_test_kids k;
	struct host_arg ha;
	struct rs r;
	struct tab a, b;
	redisContext *c;
	SHF_NC *na, *nb;
	pid_t da, db;
	int i, ka;

	rs_start(&r);
	shared_new();
	tab_new(&a, "host-a");
	tab_new(&b, "host-b");
	da = daemon_start(a.name, r.addr, "--stale-ms", "2000", NULL);
	db = daemon_start(b.name, r.addr, "--stale-ms", "2000", NULL);
	wait_up(a.name);
	wait_up(b.name);
	c = cli(&r);
	na = nc_open(a.name, r.addr);
	nb = nc_open(b.name, r.addr);
	cmd(c, "SET %s v1", key_of("k"));
	get_is(na, key_of("k"), "v1");
	get_is(nb, key_of("k"), "v1");
	cmd(c, "SET %s v2", key_of("k"));
	ck_assert(wait_rec_not(a.shf, key_of("k"), "v1", 2) == 0);
	ck_assert(wait_rec_not(b.shf, key_of("k"), "v1", 2) == 0);
	get_is(na, key_of("k"), "v2");
	get_is(nb, key_of("k"), "v2");
	/* Only host A reads k2: only A hears of it. */
	cmd(c, "SET %s v1", key_of("k2"));
	get_is(na, key_of("k2"), "v1");
	ka = (int)nc_st(b.name).invalidations;
	cmd(c, "SET %s v2", key_of("k2"));
	ck_assert(wait_rec_not(a.shf, key_of("k2"), "v1", 2) == 0);
	shf_test_msleep(100);
	ck_assert_int_eq((int)nc_st(b.name).invalidations, ka);

	/* A reader that fills and exits (or is killed): Redis forgets what
	 * its connection tracked, yet the write must reach the table. */
	for (i = 0; i < 2; i++) {
		uint64_t inv = nc_st(a.name).invalidations;

		cmd(c, "SET %s old", key_of("gone"));
		/* The second time host A has the key: let its invalidation
		 * pass first, or it may delete the child's (fresh) fill. */
		if (i)
			ck_assert(wait_invalidations(a.name, inv + 1, 2) == 0);
		ha.name = a.name;
		ha.addr = r.addr;
		ha.key = key_of("gone");
		ha.sigkill = i;
		shf_test_spawn(&k, 1, kid_fill_and_go, &ha);
		shf_test_go(&k);
		shf_test_wait(&k, 20);
		ck_assert_msg(!sh->failed, "%s", sh->msg);
		ck_assert_int_eq(rec_of(a.shf, key_of("gone"), NULL, 0, NULL),
				 REC_VAL);
		shf_test_msleep(50);
		cmd(c, "SET %s new", key_of("gone"));
		ck_assert_msg(wait_rec_not(a.shf, key_of("gone"), "old", 2) == 0,
			      "a departed reader's key kept its old value");
		get_is(na, key_of("gone"), "new");
	}

	shf_nc_close(na);
	shf_nc_close(nb);
	daemon_stop(da, a.name);
	daemon_stop(db, b.name);
	redisFree(c);
	tab_end(&a);
	tab_end(&b);
	shared_end();
	rs_end(&r);
}
END_TEST

/* ---- 9. broadcasting mode; FLUSHALL ---------------------------------- */

START_TEST(test_bcast)
{
	struct shf_nc_stats st;
	char prefix[64];
	struct rs r;
	struct tab t;
	redisContext *c;
	uint64_t epoch;
	SHF_NC *nc;
	pid_t d;

	rs_start_own(&r, NULL); /* FLUSHALL below */
	tab_new(&t, "bcast");
	snprintf(prefix, sizeof(prefix), "%s", key_of("p:"));
	d = daemon_start(t.name, r.addr, "--prefix", prefix, "--stale-ms",
			 "2000", NULL);
	wait_up(t.name);
	ck_assert_uint_eq(nc_st(t.name).mode, SHF_NC_MODE_BCAST);
	ck_assert_uint_eq(nc_st(t.name).prefixes, 1);
	c = cli(&r);
	nc = nc_open(t.name, r.addr);
	cmd(c, "SET %s v1", key_of("p:k"));
	cmd(c, "SET %s v1", key_of("q:k"));
	/* Its invalidation may come after our fill, and delete it: a fresh
	 * value, so no harm, but the check below would not hold. */
	ck_assert(wait_invalidations(t.name, 1, 2) == 0);
	get_is(nc, key_of("p:k"), "v1");
	get_is(nc, key_of("q:k"), "v1");
	ck_assert_int_eq(rec_of(t.shf, key_of("p:k"), NULL, 0, NULL), REC_VAL);
	/* Outside the prefixes: never in the table. */
	ck_assert_int_eq(rec_of(t.shf, key_of("q:k"), NULL, 0, NULL),
			 REC_NONE);
	cmd(c, "SET %s v2", key_of("p:k"));
	ck_assert(wait_rec_not(t.shf, key_of("p:k"), "v1", 2) == 0);
	get_is(nc, key_of("p:k"), "v2");

	/* FLUSHALL: a null invalidation, a new epoch, an empty table. */
	get_is(nc, key_of("p:k"), "v2");
	epoch = nc_st(t.name).epoch;
	cmd(c, "FLUSHALL");
	ck_assert(wait_rec_not(t.shf, key_of("p:k"), "v2", 2) == 0);
	ck_assert_msg(wait_state(t.name, SHF_NC_UP, 2) == 0, "not UP");
	ck_assert(nc_st(t.name).epoch > epoch);
	get_is(nc, key_of("p:k"), NULL);
	shf_nc_close(nc);
	st = nc_st(t.name);
	ck_assert(st.bypassed >= 1);
	ck_assert_uint_eq(st.errors, 0);
	daemon_stop(d, t.name);

	/* --bcast without prefixes: every key. */
	d = daemon_start(t.name, r.addr, "--bcast", "--stale-ms", "2000",
			 NULL);
	wait_up(t.name);
	ck_assert_uint_eq(nc_st(t.name).prefixes, 0);
	nc = nc_open(t.name, r.addr);
	st = nc_st(t.name);
	cmd(c, "SET %s v3", key_of("q:k"));
	ck_assert(wait_invalidations(t.name, st.invalidations + 1, 2) == 0);
	get_is(nc, key_of("q:k"), "v3");
	ck_assert_int_eq(rec_of(t.shf, key_of("q:k"), NULL, 0, NULL), REC_VAL);
	cmd(c, "SET %s v4", key_of("q:k"));
	ck_assert(wait_rec_not(t.shf, key_of("q:k"), "v3", 2) == 0);
	get_is(nc, key_of("q:k"), "v4");
	shf_nc_close(nc);
	ck_assert_uint_eq(nc_st(t.name).errors, 0);
	daemon_stop(d, t.name);
	redisFree(c);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/* ---- 10. options, errors, passwords ---------------------------------- */

START_TEST(test_options_auth)
{
	struct shf_nc_options o;
	struct rs r;
	struct tab t;
	char auth[256];
	redisContext *c;
	const char *v;
	uint32_t len;
	SHF_NC *nc;
	FILE *f;
	pid_t d;
	struct {
		struct shf_nc_options o;
		uint64_t more;
	} big;

	rs_start_own(&r, "--requirepass s3cret");
	tab_new(&t, "options");
	snprintf(auth, sizeof(auth), "%s/auth", r.dir);

	/* Bad arguments. */
	memset(&o, 0, sizeof(o));
	errno = 0;
	ck_assert(shf_nc_open(NULL, t.name, NULL, 0) == NULL);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert(shf_nc_open(shf_test_dir(), "a/b", NULL, 0) == NULL);
	ck_assert(shf_nc_open(shf_test_dir(), ".x", NULL, 0) == NULL);
	o.redis = "nowhere";
	ck_assert(shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o)) == NULL);
	ck_assert_int_eq(errno, EINVAL);
	o.redis = "host:99999";
	ck_assert(shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o)) == NULL);
	o.redis = NULL;
	o.auth_file = auth; /* a password, but no address */
	ck_assert(shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o)) == NULL);
	ck_assert_int_eq(errno, EINVAL);
	memset(&big, 0, sizeof(big));
	big.more = 1; /* an option of a later version */
	ck_assert(shf_nc_open(shf_test_dir(), t.name, &big.o, sizeof(big)) ==
		  NULL);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(shf_nc_get(NULL, "k", 1, &v, &len), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(shf_nc_stats(shf_test_dir(), "shf-test-no-such",
				       NULL, 0),
			  SHF_RET_ERROR);
	{
		struct shf_nc_stats st;

		ck_assert_uint_eq(shf_nc_stats(shf_test_dir(),
					       "shf-test-no-such", &st,
					       sizeof(st)),
				  SHF_RET_ERROR);
		ck_assert_int_eq(errno, ENOENT);
	}
	shf_nc_close(NULL);

	/* The auth file: one line, owner only. */
	f = fopen(auth, "w");
	ck_assert(f != NULL);
	fputs("s3cret\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(auth, 0644), 0);
	o.redis = r.addr;
	o.auth_file = auth;
	errno = 0;
	ck_assert(shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o)) == NULL);
	ck_assert_int_eq(errno, EACCES);
	d = daemon_start(t.name, r.addr, "--auth-file", auth, NULL);
	ck_assert_int_eq(WEXITSTATUS(shf_test_waitpid(d, WAIT_S)), 1);
	ck_assert_int_eq(chmod(auth, 0600), 0);

	/* With it, both work; without it, the read fails (EIO). */
	d = daemon_start(t.name, r.addr, "--auth-file", auth, "--stale-ms",
			 "2000", NULL);
	wait_up(t.name);
	c = cli_auth(&r, "s3cret");
	cmd(c, "SET %s v1", key_of("k"));
	nc = shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o));
	ck_assert(nc != NULL);
	get_is(nc, key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	cmd(c, "SET %s v2", key_of("k"));
	ck_assert(wait_rec_not(t.shf, key_of("k"), "v1", 2) == 0);
	get_is(nc, key_of("k"), "v2");
	shf_nc_close(nc);
	nc = nc_open(t.name, r.addr); /* no password */
	errno = 0;
	ck_assert_uint_eq(get(nc, key_of("other"), NULL, 0), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EIO);
	shf_nc_close(nc);
	/* No address: the daemon's (without a password: refused). */
	memset(&o, 0, sizeof(o));
	nc = shf_nc_open(shf_test_dir(), t.name, &o, sizeof(o));
	ck_assert(nc != NULL);
	ck_assert_uint_eq(get(nc, key_of("other"), NULL, 0), SHF_RET_ERROR);
	ck_assert_int_eq(errno, EIO);
	shf_nc_close(nc);
	daemon_stop(d, t.name);
	redisFree(c);
	unlink(auth);
	tab_end(&t);
	rs_end(&r);
}
END_TEST

/*
 * The daemon's delete of an invalidated key failed (another process held
 * the key's shard lock past the lock's wait, 2 s) and the daemon went
 * on: the value Redis had changed was served on, in the same epoch, until
 * its TTL (found by an audit).  A failed delete resyncs the table now.
 */
static uint32_t hold_cb(const char *val, uint32_t val_len)
{
	(void)val;
	(void)val_len;
	__atomic_store_n(&sh->go, 1, __ATOMIC_SEQ_CST);
	sleep(3); /* in the shard's lock */
	return SHF_RET_OK;
}

static void hold_shard(void *argp)
{
	const char **a = argp;
	SHF *s;

	shf_init();
	s = shf_attach(shf_test_dir(), a[0], 0);
	if (!s)
		_exit(1);
	shf_upd_callback_set(hold_cb);
	shf_make_hash(a[1], (uint32_t)strlen(a[1]));
	shf_upd_key_val(s);
	_exit(0);
}

START_TEST(test_invalidation_delete_fails)
{
	char k2[128];
	const char *arg[2];
	uint32_t shard;
	struct rs r;
	struct tab t;
	redisContext *c;
	SHF_NC *nc;
	pid_t d, kid;
	int i;

	rs_start(&r);
	shared_new();
	tab_new(&t, "delfail");
	/* no PING may time out while the delete waits */
	d = daemon_start(t.name, r.addr, "--timeout-ms", "5000", NULL);
	wait_up(t.name);
	c = cli(&r);
	nc = nc_open(t.name, r.addr);
	cmd(c, "SET %s %s", key_of("k"), "v1");
	get_is(nc, key_of("k"), "v1");
	shf_make_hash(key_of("k"), (uint32_t)strlen(key_of("k")));
	ck_assert_uint_eq(shf_get_key_val_copy(t.shf), SHF_RET_KEY_FOUND);
	shard = shf_uid >> 24;
	for (i = 0;; i++) { /* a key of the same shard */
		ck_assert_int_lt(i, 100000);
		snprintf(k2, sizeof(k2), "%s%d", key_of("other"), i);
		shf_make_hash(k2, (uint32_t)strlen(k2));
		ck_assert_uint_eq(shf_put_key_val(t.shf, "x", 1),
				  SHF_RET_KEY_PUT);
		if (shf_uid >> 24 == shard)
			break;
		shf_make_hash(k2, (uint32_t)strlen(k2));
		shf_del_key_val(t.shf);
	}
	arg[0] = t.name;
	arg[1] = k2;
	kid = helper(hold_shard, arg);
	while (!__atomic_load_n(&sh->go, __ATOMIC_SEQ_CST))
		shf_test_msleep(1);
	cmd(c, "SET %s %s", key_of("k"), "v2");
	ck_assert_int_ge(shf_test_waitpid(kid, 10), 0);
	wait_up(t.name);
	shf_test_msleep(200);
	wait_up(t.name);
	get_is(nc, key_of("k"), "v2");
	shf_nc_close(nc);
	daemon_stop(d, t.name);
	redisFree(c);
	tab_end(&t);
	shared_end();
	rs_end(&r);
}
END_TEST

static Suite *nearcache_suite(void)
{
	Suite *s = suite_create("nearcache");
	TCase *tc;

	tc = tcase_create("read");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_read_through);
	tcase_add_test(tc, test_invalidation);
	tcase_add_test(tc, test_two_hosts);
	tcase_add_test(tc, test_bcast);
	suite_add_tcase(s, tc);

	tc = tcase_create("race");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_fill_race);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_redis_restart);
	tcase_add_test(tc, test_partition);
	tcase_add_test(tc, test_daemon_killed);
	tcase_add_test(tc, test_bad_replies);
	tcase_add_test(tc, test_hostile_sidecar);
	tcase_add_test(tc, test_sidecar_fifo);
	tcase_add_test(tc, test_sidecar_of_another_user);
	tcase_add_test(tc, test_sidecar_of_a_group_member);
	tcase_add_test(tc, test_options_auth);
	tcase_add_test(tc, test_invalidation_delete_fails);
	suite_add_tcase(s, tc);
	return s;
}

/* Remove the Redis directories of this run (a failed test leaves its). */
static void dirs_remove(void)
{
	char prefix[64], path[512];
	struct dirent *de, *fe;
	DIR *d, *sub;

	snprintf(prefix, sizeof(prefix), "shf-nc-test-%ld-", (long)runner);
	d = opendir("/tmp");
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
		sub = opendir(path);
		while (sub && (fe = readdir(sub)) != NULL) {
			char f[1024];

			if (fe->d_name[0] == '.')
				continue;
			snprintf(f, sizeof(f), "%s/%s", path, fe->d_name);
			unlink(f);
		}
		if (sub)
			closedir(sub);
		rmdir(path);
	}
	closedir(d);
}

int main(void)
{
	int rc;

	if (!in_path("redis-server")) {
		fprintf(stderr, "redis-server not found in PATH; skipped\n");
		return 77;
	}
	if (access(daemon_path(), X_OK) != 0) {
		fprintf(stderr, "%s: not built; skipped\n", daemon_path());
		return 77;
	}
	runner = getpid();
	shf_test_init();
	rc = shf_test_main(nearcache_suite());
	dirs_remove();
	return rc;
}
