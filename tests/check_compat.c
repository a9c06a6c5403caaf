/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_compat.c - a program written the way SharedHashFile's users write
 * them: only <shf.h>, its macros, thread-local results and return flags.
 * It must build unchanged against libshf and behave as API.md says,
 * including where libshf does better (a put replaces and keeps the UID).
 * Plain program for the automake harness: exit 0 pass, 1 fail.
 */
#include <shf.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define OK(cond, what)                                                   \
	do {                                                             \
		if (!(cond)) {                                           \
			failures++;                                      \
			printf("not ok - %s (line %d)\n", what, __LINE__); \
		} else {                                                 \
			printf("ok - %s\n", what);                       \
		}                                                        \
	} while (0)

static uint32_t swap_ends(const char *val, uint32_t val_len)
{
	char t = val[0];

	((char *)val)[0] = val[val_len - 1];
	((char *)val)[val_len - 1] = t;
	return val_len;
}

int main(void)
{
	char name[64];
	const char *dir = getenv("SHF_TEST_DIR") ? getenv("SHF_TEST_DIR") :
						   "/dev/shm";
	uint32_t uid, uid2;
	char *gone;
	SHF *shf;

	snprintf(name, sizeof(name), "shf-test-%d-compat", (int)getpid());
	shf_init();
	OK(shf_attach_existing(dir, name) == NULL, "attach_existing fails for a new name");
	shf = shf_attach(dir, name, 0);
	OK(shf != NULL, "attach creates");
	if (!shf)
		return 1;
	shf_set_is_lockable(shf, 0);

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
	OK(shf_upd_callback_copy(SHF_CONST_STR_AND_SIZE("upvZ")) == SHF_RET_OK, "preset");
	OK(shf_upd_key_val(shf) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_CB), "bad callback size");
	OK(shf_upd_callback_copy(SHF_CONST_STR_AND_SIZE("up1")) == SHF_RET_OK, "preset 2");
	OK(shf_upd_uid_val(shf, uid) == SHF_RET_KEY_FOUND, "upd by uid");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && !memcmp(shf_val, "up1", 3), "upd result");
	shf_upd_callback_set(swap_ends);
	OK(shf_upd_key_val(shf) == SHF_RET_KEY_FOUND, "custom callback");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && !memcmp(shf_val, "1pu", 3), "custom result");
	/* libshf does better: a put replaces and keeps the UID */
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("value2")) == SHF_RET_KEY_PUT, "re-put");
	uid2 = shf_uid;
	OK(uid2 == uid, "re-put keeps the uid");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_FOUND && shf_val_len == 6, "one value, replaced");
	OK(shf_del_key_val(shf) == SHF_RET_KEY_FOUND, "del");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "gone");
	OK(shf_del_uid_val(shf, uid) == SHF_RET_KEY_NONE, "del by stale uid");
	OK(shf_put_key_val(shf, SHF_CONST_STR_AND_SIZE("val")) == SHF_RET_KEY_PUT, "put again");
	uid = shf_uid;
	OK(shf_add_key_val(shf, 123) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL), "add to non-long");
	OK(shf_add_uid_val(shf, uid, 123) == (SHF_RET_KEY_FOUND | SHF_RET_BAD_VAL), "add by uid to non-long");
	OK(shf_del_key_val(shf) == SHF_RET_KEY_FOUND, "del 2");
	OK(shf_add_key_val(shf, 123) == SHF_RET_KEY_FOUND && shf_val_long == 123, "add creates");
	OK(shf_add_key_val_atom(shf, -100) == SHF_RET_KEY_FOUND && shf_val_long == 23, "add atom");
	OK(shf_add_uid_val(shf, shf_uid, -23) == SHF_RET_KEY_FOUND && shf_val_long == 0 &&
	   shf_uid == SHF_UID_NONE, "add to zero deletes");
	OK(shf_get_key_val_copy(shf) == SHF_RET_KEY_NONE, "zero deleted");
	OK(shf_debug_get_garbage(shf) > 0, "garbage counted");
	shf_set_data_need_factor(250);
	gone = shf_del(shf);
	OK(gone != NULL, "del table");
	free(gone);
	return failures ? 1 : 0;
}
