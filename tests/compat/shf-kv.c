/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-kv.c - a program written the way SharedHashFile's users write them:
 * only <shf.h>, its macros, thread-local results and return flags.  It
 * uses every key-value call and variable of SharedHashFile's public API
 * and must build unchanged against libshf, as C and as C++ (gcc and g++
 * with -Wall -Werror, see tests/compat.sh), and behave as SharedHashFile
 * does, except where libshf(7) says it does better (a put replaces and
 * keeps the UID).  Prints TAP lines; exit status 0 when all passed.
 */
#include <shf.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int tests, failures;

#define OK(cond, what)                                                   \
	do {                                                             \
		tests++;                                                 \
		if (!(cond)) {                                           \
			failures++;                                      \
			printf("not ok %d - %s (line %d)\n", tests, what, \
			       __LINE__);                                \
		} else {                                                 \
			printf("ok %d - %s\n", tests, what);             \
		}                                                        \
	} while (0)

/* SharedHashFile's callback convention: 0 keeps the change. */
static uint32_t swap_ends(const char *val, uint32_t val_len)
{
	char t = val[0];

	SHF_CAST(char *, val)[0] = val[val_len - 1];
	SHF_CAST(char *, val)[val_len - 1] = t;
	return SHF_RET_OK;
}

static uint32_t refuse(const char *val, uint32_t val_len)
{
	SHF_UNUSE(val_len);
	SHF_CAST(char *, val)[0] = '!';
	return SHF_RET_BAD_CB;
}

static void kv(const char *dir, const char *name)
{
	uint32_t uid, uid2, lock = 0x12345678, win = 0, tab = 0;
	uint32_t *addr;
	uint64_t walked = 0;
	int tab_set = 1;
	char *gone;
	SHF *shf;

	OK(shf_attach_existing(dir, name) == NULL, "attach_existing fails for a new name");
	shf = shf_attach(dir, name, 0);
	OK(shf != NULL, "attach creates");
	if (!shf)
		exit(1);
	shf_set_is_lockable(shf, 1);

	SHF_MAKE_HASH("key");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "absent key");
	OK(shf_uid == SHF_UID_NONE, "shf_uid unset");
	OK(shf_upd_key_val(shf) == SHF_RET_KEY_NONE, "upd of absent key");
	OK(shf_del_key_val(shf) == SHF_RET_KEY_NONE, "del of absent key");
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("val")) == SHF_RET_KEY_PUT, "put");
	uid = shf_uid;
	OK(uid != SHF_UID_NONE, "put sets shf_uid");
	OK(shf_get_uid_val_copy(shf, uid) == SHF_RET_KEY_FOUND &&
	   shf_val_len == 3 && !memcmp(shf_val, "val", 3), "get by uid");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && shf_uid == uid, "get by key");
	OK(shf_get_key_key_copy(shf) == SHF_RET_KEY_FOUND && shf_key_len == 3 &&
	   !memcmp(shf_key, "key", 3), "key copy");
	OK(shf_get_uid_key_copy(shf, uid) == SHF_RET_KEY_FOUND, "key copy by uid");
	OK(shf_get_key_val_addr(shf) == SHF_RET_KEY_FOUND && shf_val_len == 3 &&
	   !memcmp(shf_val_addr, "val", 3), "value address");
	OK(shf_get_uid_val_addr(shf, uid) == SHF_RET_KEY_FOUND, "value address by uid");

	/* update in place: the built-in copy callback, then one of ours */
	OK(shf_upd_callback_copy(SHF_CONST_STR_AND_SIZE("upvZ")) == SHF_RET_OK, "preset");
	OK(shf_upd_key_val(shf) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_CB), "copy of another size refused");
	OK(shf_upd_callback_copy(SHF_CONST_STR_AND_SIZE("up1")) == SHF_RET_OK, "preset 2");
	OK(shf_upd_uid_val(shf, uid) == SHF_RET_KEY_FOUND, "upd by uid");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && !memcmp(shf_val, "up1", 3), "upd result");
	shf_upd_callback_set(swap_ends);
	OK(shf_upd_key_val(shf) == SHF_RET_KEY_FOUND, "callback returning 0 commits");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && !memcmp(shf_val, "1pu", 3), "callback result");
	shf_upd_callback_set(refuse);
	OK(shf_upd_key_val(shf) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_CB), "callback flags ORed in");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && !memcmp(shf_val, "1pu", 3), "refused change discarded");

	/* libshf does better: a put replaces and keeps the UID */
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("value2")) == SHF_RET_KEY_PUT, "re-put");
	uid2 = shf_uid;
	OK(uid2 == uid, "re-put keeps the uid");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && shf_val_len == 6, "one value, replaced");
	OK(shf_del_key_val(shf) == SHF_RET_KEY_FOUND, "del");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "gone");
	OK(shf_del_uid_val(shf, uid) == SHF_RET_KEY_NONE, "del by stale uid");

	/* conditional delete: a lock held under a 4-byte tag */
	SHF_MAKE_HASH("lock");
	OK(shf_put_key_val(shf, SHF_CAST(const char *, &lock), sizeof(lock)) == SHF_RET_KEY_PUT, "put a lock");
	OK(shf_get_key_val_addr(shf) == SHF_RET_KEY_FOUND, "lock address");
#ifdef __cplusplus
	addr = static_cast<uint32_t *>(shf_val_addr);
#else
	addr = shf_val_addr; /* a void *, as in SharedHashFile: no cast */
#endif
	OK(addr != NULL, "shf_val_addr is a void *");
	shf_ttl = lock + 1;
	OK(shf_del_key_val(shf) == (SHF_RET_KEY_FOUND | SHF_RET_NOT_TTL), "del with another tag refused");
	OK(shf_ttl == 0, "shf_ttl is one shot");
	shf_ttl = lock;
	OK(shf_del_key_val(shf) == SHF_RET_KEY_FOUND && shf_val_len == sizeof(lock), "del with the tag");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "lock gone");

	/* atomic adds */
	SHF_MAKE_HASH("key");
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("val")) == SHF_RET_KEY_PUT, "put again");
	uid = shf_uid;
	OK(shf_add_key_val(shf, 123) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL), "add to non-long");
	OK(shf_add_uid_val(shf, uid, 123) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL), "add by uid to non-long");
	OK(shf_del_key_val(shf) == SHF_RET_KEY_FOUND, "del 2");
	OK(shf_add_key_val(shf, 123) == SHF_RET_KEY_FOUND && shf_val_long == 123, "add creates");
	OK(shf_add_key_val_atom(shf, -100) == SHF_RET_KEY_FOUND && shf_val_long == 23, "add atom");
	OK(shf_add_uid_val_atom(shf, shf_uid, 1) == SHF_RET_KEY_FOUND && shf_val_long == 24, "add atom by uid");
	OK(shf_add_uid_val(shf, shf_uid, -24) == SHF_RET_KEY_FOUND && shf_val_long == 0 &&
	   shf_uid == SHF_UID_NONE, "add to zero deletes");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "zero deleted");

	/* the raw walk */
	SHF_MAKE_HASH("walk");
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("me")) == SHF_RET_KEY_PUT, "put for the walk");
	do {
		shf_tab_copy_iterate(shf, &win, &tab);
		walked += shf_tab_len;
		if (shf_tab_len && !shf_tab)
			tab_set = 0;
	} while (win > 0 || tab > 0);
	OK(walked > 0 && tab_set, "walk saw the key in shf_tab");

	OK(shf_debug_get_garbage(shf) > 0, "garbage counted");
	shf_debug_verbosity_less();
	shf_debug_verbosity_more();
	shf_set_data_need_factor(250);
	gone = shf_del(shf);
	OK(gone != NULL, "del table");
	free(gone);
}

static void fixed(const char *dir, const char *name)
{
	uint32_t k = 7, v = 42;
	SHF *shf = shf_attach(dir, name, 1);

	OK(shf != NULL, "attach, deleted at exit");
	if (!shf)
		return;
	shf_set_is_fixed_len(shf, sizeof(k), sizeof(v));
	shf_make_hash(SHF_CAST(const char *, &k), sizeof(k));
	OK(shf_put_key_val(shf, SHF_CAST(const char *, &v), sizeof(v)) == SHF_RET_KEY_PUT, "fixed put");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && shf_val_len == sizeof(v), "fixed get");
	OK(shf_put_key_val(shf, "x", 1) & SHF_RET_BAD_VAL, "fixed length kept");
	shf_detach(shf);
}

static void helpers(const char *dir)
{
	char *sh = shf_backticks("which sh");
	double t = shf_get_time_in_seconds();
	int status = -1;
	pid_t pid;

	OK(sh != NULL && sh[0] == '/' && !strchr(sh, '\n'), "backticks: a path, no newline");
	pid = shf_exec_child(sh, "sh", "-c", "exit 3");
	OK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	   WEXITSTATUS(status) == 3, "exec_child(path, file, arg1, arg2)");
	free(sh);
	OK(shf_get_vfs_available(dir) > 0, "vfs available");
	OK(shf_get_time_in_seconds() >= t, "time in seconds");
}

int main(void)
{
	const char *dir = getenv("SHF_TEST_DIR") ? getenv("SHF_TEST_DIR") :
						   "/dev/shm";
	char name[64];

	shf_init();
	snprintf(name, sizeof(name), "shf-test-%d-compat-kv", (int)getpid());
	kv(dir, name);
	snprintf(name, sizeof(name), "shf-test-%d-compat-fixed", (int)getpid());
	fixed(dir, name);
	helpers(dir);
	printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
