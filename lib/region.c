// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * region.c - named regions: fixed-size blocks of a table's file, found by
 * name by every process that attaches, for the queues, race lines and log
 * above the table (shf-internal.h, the handle's face).
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "table.h"

/*
 * A new region of size bytes named name, in the free entry fr (under
 * region_lk); NULL with *e set.
 */
static void *region_add(SHF *h, struct region *fr, const char *name,
			uint64_t size, int *e)
{
	uint64_t off = big_alloc(h, size, 1);
	void *p;

	if (!off) {
		*e = errno;
		return NULL;
	}
	p = at(h, off, size);
	if (!p) {
		*e = EBADMSG;
		return NULL;
	}
	/*
	 * The whole name: a free entry's bytes may be anything (a damaged
	 * file), and a name of SHF_REGION_NAME_MAX - 1 bytes left the last
	 * one as it was, so that no look-up matched.
	 */
	memset(fr->name, 0, sizeof(fr->name));
	memcpy(fr->name, name, strlen(name));
	fr->size = size;
	barrier();
	st64(&fr->off, off);
	return p;
}

void *shf_region(SHF *h, const char *name, uint64_t size, int create,
		 uint64_t *size_out)
{
	struct region *r, *fr = NULL;
	void *p = NULL;
	uint32_t i;
	int e = 0;

	if (!h || !name || strlen(name) >= SHF_REGION_NAME_MAX || !*name ||
	    (create && !size)) {
		errno = EINVAL;
		return NULL;
	}
	if (shf_lock_take(&h->h->region_lk, &h->site, &h->region_stuck) < 0)
		return NULL;
	for (i = 0; i < SHF_REGIONS_MAX; i++) {
		/* each word once: the size given out is the size checked */
		uint64_t off, rsize;

		r = &h->h->regions[i];
		off = ld64(&r->off);
		rsize = ld64(&r->size);
		if (!off) {
			if (!fr)
				fr = r;
			continue;
		}
		if (strncmp(r->name, name, SHF_REGION_NAME_MAX))
			continue;
		if (create && rsize != size)
			e = EEXIST;
		/*
		 * Smaller than asked, or off a page boundary (big_alloc()
		 * gives out whole pages only): a damaged entry.  The users
		 * do 32-bit atomics and futex waits in a region, which an
		 * odd offset makes fail at once (a wait that never sleeps),
		 * trap on some CPUs, or abort under the sanitizers.
		 */
		else if (rsize < size || (off & (PAGE - 1)) ||
			 !(p = at(h, off, rsize)))
			e = EBADMSG;
		else if (size_out)
			*size_out = rsize;
		goto done;
	}
	if (!create) {
		e = ENOENT;
		goto done;
	}
	if (!fr) {
		e = ENOSPC;
		goto done;
	}
	p = region_add(h, fr, name, size, &e);
	if (p && size_out)
		*size_out = size;
done:
	shf_lock_release(&h->h->region_lk);
	if (e) {
		errno = e;
		return NULL;
	}
	return p;
}

int shf_region_remove(SHF *h, const char *name, const void *at)
{
	uint32_t i;
	int rc = -1;

	if (!h || !name) {
		errno = EINVAL;
		return -1;
	}
	if (shf_lock_take(&h->h->region_lk, &h->site, &h->region_stuck) < 0)
		return -1;
	errno = ENOENT;
	for (i = 0; i < SHF_REGIONS_MAX; i++) {
		struct region *r = &h->h->regions[i];

		if (r->off && !strncmp(r->name, name, SHF_REGION_NAME_MAX) &&
		    (!at || (const uint8_t *)at == h->base + r->off)) {
			st64(&r->off, 0);
			memset(r->name, 0, sizeof(r->name));
			rc = 0;
			break;
		}
	}
	shf_lock_release(&h->h->region_lk);
	return rc;
}
