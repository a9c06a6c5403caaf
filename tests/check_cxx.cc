// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * check_cxx.cc - the C++ class SharedHashFile (include/SharedHashFile.hpp):
 * most methods, and a fork()ed child whose puts the parent sees.
 * A plain program: 0 passed, 1 failed, 99 hard error.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>
#if __cplusplus >= 201103L
#include <type_traits>
#endif

#include "SharedHashFile.hpp"

#if __cplusplus >= 201103L
static_assert(!std::is_copy_constructible<SharedHashFile>::value,
	      "SharedHashFile must not be copyable");
static_assert(!std::is_copy_assignable<SharedHashFile>::value,
	      "SharedHashFile must not be assignable");
#endif

static int failures;

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: FAILED: %s (errno %d: %s)\n", \
				__FILE__, __LINE__, #cond, errno,         \
				strerror(errno));                         \
			failures++;                                       \
		}                                                         \
	} while (0)

static const char *dir;
static char name[64], name2[64];

static bool val_is(const char *s)
{
	return shf_val_len == strlen(s) && !memcmp(shf_val, s, shf_val_len);
}

static void test_kv()
{
	SharedHashFile t;
	uint32_t uid;

	CHECK(!t.IsAttached());
	CHECK(!t.AttachExisting(dir, name)); // not there yet
	CHECK(t.Attach(dir, name, 0));
	CHECK(t.IsAttached());
	CHECK(t.Handle() != NULL);

	t.MakeHash("apple", 5);
	CHECK(t.PutKeyVal("red", 3) & SHF_RET_KEY_PUT);
	uid = shf_uid;
	CHECK(uid != SHF_UID_NONE);
	t.MakeHash("apple", 5);
	CHECK(t.GetKeyValCopy() & SHF_RET_KEY_FOUND);
	CHECK(val_is("red"));
	CHECK(t.GetUidValCopy(uid) & SHF_RET_KEY_FOUND);
	CHECK(val_is("red"));
	t.MakeHash("apple", 5);
	CHECK(t.GetKeyKeyCopy() & SHF_RET_KEY_FOUND);
	CHECK(shf_key_len == 5 && !memcmp(shf_key, "apple", 5));
	CHECK(t.GetUidKeyCopy(uid) & SHF_RET_KEY_FOUND);
	CHECK(shf_key_len == 5 && !memcmp(shf_key, "apple", 5));

	// a put on an existing key keeps its UID
	t.MakeHash("apple", 5);
	CHECK(t.PutKeyVal("green", 5) & SHF_RET_KEY_PUT);
	CHECK(shf_uid == uid);

	// update in place with the copy callback (same size)
	CHECK(t.UpdCallbackCopy("GREEN", 5) != SHF_RET_ERROR);
	t.MakeHash("apple", 5);
	CHECK(t.UpdKeyVal() & SHF_RET_KEY_FOUND);
	CHECK(t.GetUidValCopy(uid) & SHF_RET_KEY_FOUND);
	CHECK(val_is("GREEN"));
	t.UpdCallbackCopy("olive", 5);
	CHECK(t.UpdUidVal(uid) & SHF_RET_KEY_FOUND);
	CHECK(t.GetUidValCopy(uid) & SHF_RET_KEY_FOUND);
	CHECK(val_is("olive"));

	// counters
	t.MakeHash("count", 5);
	CHECK(t.AddKeyVal(5) & SHF_RET_KEY_FOUND);
	CHECK(shf_val_long == 5);
	uint32_t cuid = shf_uid;
	CHECK(t.AddUidVal(cuid, 10) & SHF_RET_KEY_FOUND);
	CHECK(shf_val_long == 15);
	t.MakeHash("count", 5);
	CHECK(t.AddKeyVal(-15) & SHF_RET_KEY_FOUND);
	CHECK(shf_val_long == 0);
	t.MakeHash("count", 5);
	CHECK(t.GetKeyValCopy() & SHF_RET_KEY_NONE); // 0 deletes it

	// deletes
	t.MakeHash("apple", 5);
	CHECK(t.DelKeyVal() & SHF_RET_KEY_FOUND);
	t.MakeHash("apple", 5);
	CHECK(t.DelKeyVal() & SHF_RET_KEY_NONE);
	t.MakeHash("pear", 4);
	CHECK(t.PutKeyVal("yellow", 6) & SHF_RET_KEY_PUT);
	CHECK(t.DelUidVal(shf_uid) & SHF_RET_KEY_FOUND);
	t.MakeHash("pear", 4);
	CHECK(t.GetKeyValCopy() & SHF_RET_KEY_NONE);

	// cache mode
	t.MakeHash("plum", 4);
	CHECK(t.PutKeyValTtl("purple", 6, 60000) & SHF_RET_KEY_PUT);
	t.MakeHash("plum", 4);
	CHECK(t.GetKeyTtl() == SHF_RET_KEY_FOUND);
	CHECK(shf_val_long > 0 && shf_val_long <= 60000);
	t.MakeHash("fig", 3);
	CHECK(t.GetKeyValCopyOrLease(1000, 0) ==
	      (SHF_RET_KEY_NONE | SHF_RET_LEASED));
	t.MakeHash("fig", 3);
	CHECK(t.PutKeyVal("brown", 5) & SHF_RET_KEY_PUT);
	t.MakeHash("fig", 3);
	CHECK(t.GetKeyValCopyOrLease(1000, 0) == SHF_RET_KEY_FOUND);
	CHECK(shf_val_len == 5 && !memcmp(shf_val, "brown", 5));
	CHECK(t.SetTtlDefault(0) == SHF_RET_OK);
	CHECK(t.SetByteBudget(1 << 20) == SHF_RET_OK);
	CHECK(t.Expire(4096) == 0);

	t.SetIsLockable(1);
	t.SetDataNeedFactor(250);
	t.DebugVerbosityLess();
	t.DebugVerbosityMore();
	(void)t.DebugGetGarbage();

	// raw walk of SharedHashFile: visits every shard once
	uint32_t win = 0, tab = 0, shards = 0;
	t.MakeHash("walk", 4);
	t.PutKeyVal("me", 2);
	uint64_t bytes = 0;
	do {
		t.TabCopyIterate(&win, &tab);
		bytes += shf_val_len;
		shards++;
	} while (win != 0 && shards < 100000);
	CHECK(bytes > 0);

	t.Detach();
	CHECK(!t.IsAttached());
	t.Detach(); // twice is harmless
}

static void test_fixed_len()
{
	SharedHashFile t;

	CHECK(t.Attach(dir, name2, 0));
	t.SetIsFixedLen(4, 8);
	t.MakeHash("abcd", 4);
	CHECK(t.PutKeyVal("12345678", 8) & SHF_RET_KEY_PUT);
	t.MakeHash("abcd", 4);
	CHECK(t.GetKeyValCopy() & SHF_RET_KEY_FOUND);
	CHECK(val_is("12345678"));
	char *msg = t.Del();
	CHECK(msg != NULL);
	free(msg);
	CHECK(!t.IsAttached());
}

/* fork(), or exit 99 (a hard error) if it fails. */
static pid_t fork_or_exit()
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(99);
	}
	return pid;
}

/* A child process attaches by name and puts keys; the parent sees them. */
static void test_fork()
{
	SharedHashFile t;
	const int n = 500;
	int status;
	pid_t pid;

	CHECK(t.AttachExisting(dir, name));
	t.RaceInit("go", 2);
	pid = fork_or_exit();
	if (pid == 0) {
		SharedHashFile c;
		char k[32], v[32];
		int bad = 0;

		if (!c.AttachExisting(dir, name))
			_exit(1);
		c.RaceStart("go", 2, 2);
		for (int i = 0; i < n; i++) {
			uint32_t kl = (uint32_t)snprintf(k, sizeof(k), "child-%d", i);
			uint32_t vl = (uint32_t)snprintf(v, sizeof(v), "v%d", i * 7);

			c.MakeHash(k, kl);
			if (!(c.PutKeyVal(v, vl) & SHF_RET_KEY_PUT))
				bad = 1;
		}
		_exit(bad);
	}
	t.RaceStart("go", 2, 2);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int seen = 0;
	for (int i = 0; i < n; i++) {
		char k[32], v[32];
		uint32_t kl = (uint32_t)snprintf(k, sizeof(k), "child-%d", i);

		snprintf(v, sizeof(v), "v%d", i * 7);
		t.MakeHash(k, kl);
		if ((t.GetKeyValCopy() & SHF_RET_KEY_FOUND) && val_is(v))
			seen++;
	}
	CHECK(seen == n);
}

struct item {
	int hops;
	char text[28];
};

/* Queues: the parent moves items to queue "b"; a child pulls them. */
static void test_queue()
{
	SharedHashFile t;
	const uint32_t items = 8;
	char *base;
	uint32_t qa, qb, qiid, got = 0;
	int status;
	pid_t pid;

	CHECK(t.AttachExisting(dir, name));
	CHECK(!t.QIsReady());
	base = (char *)t.QNew(2, items, sizeof(struct item), 1);
	CHECK(base != NULL);
	if (!base)
		return;
	CHECK(t.QIsReady());
	CHECK(t.QGet() == base);
	qa = t.QNewName("a", 1);
	qb = t.QNewName("b", 1);
	CHECK(qa == 0 && qb == 1);
	CHECK(t.QGetName("b", 1) == qb);
	CHECK(t.QGetName("zz", 2) == SHF_QID_NONE);

	// every item starts on queue 0 ("a"): move them all to "b"
	qiid = t.QPullTail(qa);
	CHECK(qiid != SHF_QIID_NONE && shf_qiid_addr != NULL);
	while (qiid != SHF_QIID_NONE) {
		struct item *it = (struct item *)(base + qiid * sizeof(*it));

		it->hops = 1;
		snprintf(it->text, sizeof(it->text), "item %u", qiid);
		qiid = t.QPushHeadPullTail(qb, qiid, qa);
		got++;
	}
	CHECK(got == items);
	t.QFlush(SHF_QID_NONE);

	pid = fork_or_exit();
	if (pid == 0) {
		SharedHashFile c;
		uint32_t n = 0, q;

		if (!c.AttachExisting(dir, name) || !c.QIsReady())
			_exit(1);
		char *b = (char *)c.QGet();
		q = c.QGetName("b", 1);
		while ((q = c.QPullTail(1)) != SHF_QIID_NONE) {
			struct item *it = (struct item *)(b + q * sizeof(*it));

			if (it->hops != 1)
				_exit(2);
			it->hops++;
			c.QPushHead(0, q);
			n++;
		}
		c.QFlush(SHF_QID_NONE);
		_exit(n == items ? 0 : 3);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	got = 0;
	while ((qiid = t.QPullTail(qa)) != SHF_QIID_NONE) {
		struct item *it = (struct item *)(base + qiid * sizeof(*it));

		CHECK(it->hops == 2);
		got++;
	}
	CHECK(got == items);
	t.QDel();
	CHECK(!t.QIsReady());
}

int main()
{
	dir = getenv("SHF_TEST_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	if (access(dir, W_OK) != 0) {
		printf("check_cxx: %s not writable; skipped\n", dir);
		return 77;
	}
	snprintf(name, sizeof(name), "shf-test-%ld-cxx", (long)getpid());
	snprintf(name2, sizeof(name2), "shf-test-%ld-cxx-fixed", (long)getpid());

	test_kv();
	test_fixed_len();
	test_fork();
	test_queue();

	SharedHashFile t;
	CHECK(t.AttachExisting(dir, name));
	char *msg = t.Del();
	CHECK(msg != NULL);
	free(msg);
	CHECK(!t.AttachExisting(dir, name));

	printf("check_cxx: %s\n", failures ? "FAILED" : "passed");
	return failures ? 1 : 0;
}
