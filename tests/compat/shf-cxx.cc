// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-cxx.cc - SharedHashFile's C++ class as its users write with it:
 * <SharedHashFile.hpp>, a SharedHashFile object per table, results in the
 * thread-local variables of shf.h.  Every method of SharedHashFile's class
 * is called once at least.  Built with g++ -Wall -Werror against the
 * header and library as a user would (tests/compat.sh).  Prints TAP lines;
 * exit status 0 when all passed.
 */
#include <SharedHashFile.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

static int tests, failures;

static void ok(bool cond, const char *what)
{
	tests++;
	if (!cond)
		failures++;
	std::printf("%sok %d - %s\n", cond ? "" : "not ", tests, what);
}

int main()
{
	const char *dir = std::getenv("SHF_TEST_DIR") ?
				  std::getenv("SHF_TEST_DIR") :
				  "/dev/shm";
	char name[64];
	SharedHashFile *shf = new SharedHashFile;
	uint32_t uid, win = 0, tab = 0, qid_free, qid_a, qiid;
	uint64_t walked = 0;

	std::snprintf(name, sizeof(name), "shf-test-%d-compat-cxx",
		      (int)getpid());
	ok(!shf->AttachExisting(dir, name), "AttachExisting of a new name");
	ok(!shf->IsAttached(), "not attached");
	ok(shf->Attach(dir, name, 0), "Attach");
	ok(shf->IsAttached(), "attached");
	shf->SetIsLockable(1);
	shf->SetDataNeedFactor(250);
	shf->DebugVerbosityLess();
	shf->DebugVerbosityMore();

	shf->MakeHash(SHF_CONST_STR_AND_SIZE("key"));
	ok(shf->GetKeyValCopy() == SHF_RET_KEY_NONE, "absent");
	ok(shf->PutKeyVal(SHF_CONST_STR_AND_SIZE("val")) == SHF_RET_KEY_PUT, "PutKeyVal");
	uid = shf_uid;
	ok(shf->GetKeyValCopy() == SHF_RET_KEY_FOUND && shf_val_len == 3, "GetKeyValCopy");
	ok(shf->GetUidValCopy(uid) == SHF_RET_KEY_FOUND, "GetUidValCopy");
	ok(shf->GetKeyKeyCopy() == SHF_RET_KEY_FOUND && shf_key_len == 3, "GetKeyKeyCopy");
	ok(shf->GetUidKeyCopy(uid) == SHF_RET_KEY_FOUND, "GetUidKeyCopy");
	ok(shf->UpdCallbackCopy(SHF_CONST_STR_AND_SIZE("new")) == SHF_RET_OK, "UpdCallbackCopy");
	ok(shf->UpdKeyVal() == SHF_RET_KEY_FOUND, "UpdKeyVal");
	ok(shf->UpdUidVal(uid) == SHF_RET_KEY_FOUND, "UpdUidVal");
	ok(shf->GetKeyValCopy() == SHF_RET_KEY_FOUND && !std::memcmp(shf_val, "new", 3), "updated");
	ok(shf->DelKeyVal() == SHF_RET_KEY_FOUND, "DelKeyVal");
	ok(shf->AddKeyVal(5) == SHF_RET_KEY_FOUND && shf_val_long == 5, "AddKeyVal creates");
	ok(shf->AddUidVal(shf_uid, 2) == SHF_RET_KEY_FOUND && shf_val_long == 7, "AddUidVal");
	ok(shf->DelUidVal(shf_uid) == SHF_RET_KEY_FOUND, "DelUidVal");
	shf->MakeHash(SHF_CONST_STR_AND_SIZE("walk"));
	ok(shf->PutKeyVal(SHF_CONST_STR_AND_SIZE("me")) == SHF_RET_KEY_PUT, "put for the walk");
	do {
		shf->TabCopyIterate(&win, &tab);
		walked += shf_tab_len;
	} while (win > 0 || tab > 0);
	ok(walked > 0, "TabCopyIterate");
	ok(shf->DebugGetGarbage() > 0, "DebugGetGarbage");

	ok(shf->QNew(2, 4, 8, 1) != NULL, "QNew");
	ok(shf->QGet() != NULL && shf->QIsReady(), "QGet, QIsReady");
	qid_free = shf->QNewName(SHF_CONST_STR_AND_SIZE("free"));
	qid_a = shf->QNewName(SHF_CONST_STR_AND_SIZE("a"));
	ok(qid_free == 0 && shf->QGetName(SHF_CONST_STR_AND_SIZE("a")) == qid_a, "QNewName, QGetName");
	qiid = shf->QPullTail(qid_free);
	ok(qiid != SHF_QIID_NONE && shf_qiid_addr != NULL && shf_qiid_addr_len == 8, "QPullTail");
	shf->QPushHead(qid_a, qiid);
	shf->QFlush(qid_a);
	ok(shf->QPushHeadPullTail(qid_free, SHF_QIID_NONE, qid_a) == qiid, "QPushHeadPullTail");
	shf->QPushHead(qid_free, qiid);
	shf->QFlush(SHF_QID_NONE);
	shf->QDel();
	ok(!shf->QIsReady(), "QDel");
	shf->RaceInit(SHF_CONST_STR_AND_SIZE("line"));
	shf->RaceStart(SHF_CONST_STR_AND_SIZE("line"), 1);
	ok(true, "RaceInit, RaceStart");

	char *gone = shf->Del();
	ok(gone != NULL && !shf->IsAttached(), "Del");
	std::free(gone);
	delete shf;

	SharedHashFile fixed;
	std::snprintf(name, sizeof(name), "shf-test-%d-compat-cxx2",
		      (int)getpid());
	ok(fixed.Attach(dir, name, 0), "Attach a second table");
	fixed.SetIsFixedLen(4, 4);
	fixed.MakeHash("abcd", 4);
	ok(fixed.PutKeyVal("wxyz", 4) == SHF_RET_KEY_PUT, "fixed length put");
	std::free(fixed.Del());
	fixed.Detach();
	std::printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
