// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * SharedHashFile.hpp - the C++ class of SharedHashFile over libshf's C API.
 *
 * Header only: every method is an inline call of the shf_*() function of
 * the same name (see libshf(7) and each function's man page), on the
 * table this object is attached to.  Results come back as in C, in the
 * thread-local variables shf_uid, shf_val, shf_val_len, shf_key, ...
 *
 * One object holds at most one attached table; the destructor detaches
 * it.  Objects cannot be copied (two owners of one handle would detach it
 * twice).  Build with:  c++ prog.cc $(pkg-config --cflags --libs shf)
 */
#ifndef SHAREDHASHFILE_HPP
#define SHAREDHASHFILE_HPP

#include <shf.h>

class SharedHashFile {
public:
	SharedHashFile() : shf(NULL) { shf_init(); }
	~SharedHashFile() { Detach(); }

	/* Attach to path/name.shf, creating it if absent (shf_attach(3)). */
	bool Attach(const char *path, const char *name,
		    uint32_t delete_upon_process_exit)
	{
		Detach();
		shf = shf_attach(path, name, delete_upon_process_exit);
		return shf != NULL;
	}
	/* Attach only if it exists (shf_attach_existing(3)). */
	bool AttachExisting(const char *path, const char *name)
	{
		Detach();
		shf = shf_attach_existing(path, name);
		return shf != NULL;
	}
	void Detach()
	{
		if (shf)
			shf_detach(shf);
		shf = NULL;
	}
	bool IsAttached() const { return shf != NULL; }
	/* The C handle, to call what the class does not wrap. */
	SHF *Handle() const { return shf; }

	/* Keys and values (the key is named by MakeHash()). */
	void MakeHash(const char *key, uint32_t key_len)
	{
		shf_make_hash(key, key_len);
	}
	uint32_t PutKeyVal(const char *val, uint32_t val_len)
	{
		return shf_put_key_val(shf, val, val_len);
	}
	uint32_t GetKeyValCopy() { return shf_get_key_val_copy(shf); }
	uint32_t GetUidValCopy(uint32_t uid)
	{
		return shf_get_uid_val_copy(shf, uid);
	}
	uint32_t GetKeyKeyCopy() { return shf_get_key_key_copy(shf); }
	uint32_t GetUidKeyCopy(uint32_t uid)
	{
		return shf_get_uid_key_copy(shf, uid);
	}
	uint32_t AddKeyVal(long add) { return shf_add_key_val(shf, add); }
	uint32_t AddUidVal(uint32_t uid, long add)
	{
		return shf_add_uid_val(shf, uid, add);
	}
	uint32_t DelKeyVal() { return shf_del_key_val(shf); }
	uint32_t DelUidVal(uint32_t uid) { return shf_del_uid_val(shf, uid); }
	uint32_t UpdKeyVal() { return shf_upd_key_val(shf); }
	uint32_t UpdUidVal(uint32_t uid) { return shf_upd_uid_val(shf, uid); }
	uint32_t UpdCallbackCopy(const char *val, uint32_t val_len)
	{
		return shf_upd_callback_copy(val, val_len);
	}
	void TabCopyIterate(uint32_t *win, uint32_t *tab)
	{
		shf_tab_copy_iterate(shf, win, tab);
	}

	/* Detach and remove the table; a malloc()ed text to free(), or NULL. */
	char *Del()
	{
		char *r = shf_del(shf);

		shf = NULL;
		return r;
	}

	uint64_t DebugGetGarbage() { return shf_debug_get_garbage(shf); }
	void DebugVerbosityLess() { shf_debug_verbosity_less(); }
	void DebugVerbosityMore() { shf_debug_verbosity_more(); }
	void SetDataNeedFactor(uint32_t data_needed_factor)
	{
		shf_set_data_need_factor(data_needed_factor);
	}
	void SetIsLockable(uint32_t is_lockable)
	{
		shf_set_is_lockable(shf, is_lockable);
	}
	void SetIsFixedLen(uint32_t fixed_key_len, uint32_t fixed_val_len)
	{
		shf_set_is_fixed_len(shf, fixed_key_len, fixed_val_len);
	}

	/* Cache mode (libshf 1.1; see libshf(7), CACHE MODE). */
	uint32_t PutKeyValTtl(const char *val, uint32_t val_len,
			      uint32_t ttl_ms)
	{
		return shf_put_key_val_ttl(shf, val, val_len, ttl_ms);
	}
	uint32_t SetTtlDefault(uint32_t ttl_ms)
	{
		return shf_set_ttl_default(shf, ttl_ms);
	}
	uint32_t SetByteBudget(uint64_t bytes)
	{
		return shf_set_byte_budget(shf, bytes);
	}
	uint32_t GetKeyTtl() { return shf_get_key_ttl(shf); }
	uint32_t GetKeyValCopyOrLease(uint32_t lease_ms, uint32_t wait_ms)
	{
		return shf_get_key_val_copy_or_lease(shf, lease_ms, wait_ms);
	}
	uint32_t Expire(uint32_t max_slots) { return shf_expire(shf, max_slots); }
	uint32_t PutKeyValIfLeased(const char *val, uint32_t val_len,
				   uint32_t ttl_ms)
	{
		return shf_put_key_val_if_leased(shf, val, val_len, ttl_ms);
	}

	/* Zero-copy IPC queues (shf_q_new(3)). */
	void *QNew(uint32_t shf_qs, uint32_t shf_q_items,
		   uint32_t shf_q_item_size, uint32_t qids_nolock_max)
	{
		return shf_q_new(shf, shf_qs, shf_q_items, shf_q_item_size,
				 qids_nolock_max);
	}
	void *QGet() { return shf_q_get(shf); }
	void QDel() { shf_q_del(shf); }
	uint32_t QNewName(const char *name, uint32_t name_len)
	{
		return shf_q_new_name(shf, name, name_len);
	}
	uint32_t QGetName(const char *name, uint32_t name_len)
	{
		return shf_q_get_name(shf, name, name_len);
	}
	void QPushHead(uint32_t qid, uint32_t qiid)
	{
		shf_q_push_head(shf, qid, qiid);
	}
	/* Sets shf_qiid, shf_qiid_addr and shf_qiid_addr_len. */
	uint32_t QPullTail(uint32_t qid) { return shf_q_pull_tail(shf, qid); }
	uint32_t QPushHeadPullTail(uint32_t push_qid, uint32_t push_qiid,
				   uint32_t pull_qid)
	{
		return shf_q_push_head_pull_tail(shf, push_qid, push_qiid,
						 pull_qid);
	}
	void QFlush(uint32_t pull_qid) { shf_q_flush(shf, pull_qid); }
	/* Sets shf_qiid, shf_qiid_addr and shf_qiid_addr_len. */
	uint32_t QTakeItem(uint32_t qiid) { return shf_q_take_item(shf, qiid); }
	bool QIsReady() { return shf_q_is_ready(shf) != 0; }

	/* Race start (shf_race_init(3)). */
	void RaceInit(const char *name, uint32_t name_len)
	{
		shf_race_init(shf, name, name_len);
	}
	void RaceStart(const char *name, uint32_t name_len, uint32_t horses)
	{
		shf_race_start(shf, name, name_len, horses);
	}
	uint32_t RaceStartTimeout(const char *name, uint32_t name_len,
				  uint32_t horses, uint32_t timeout_ms)
	{
		return shf_race_start_timeout(shf, name, name_len, horses,
					      timeout_ms);
	}

private:
#if __cplusplus >= 201103L
	SharedHashFile(const SharedHashFile &) = delete;
	SharedHashFile &operator=(const SharedHashFile &) = delete;
#else
	SharedHashFile(const SharedHashFile &);
	SharedHashFile &operator=(const SharedHashFile &);
#endif
	SHF *shf;
};

#endif /* SHAREDHASHFILE_HPP */
