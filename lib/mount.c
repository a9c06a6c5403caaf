// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mount.c - what the mount a path lies on says of 2 MiB pages: a tmpfs
 * gives a file's space huge pages when it is mounted huge=within_size or
 * always (for space that fallocate() adds past the end of a file, from
 * Linux 6.12 on), unless /sys/kernel/mm/transparent_hugepage/shmem_enabled
 * says deny (or force: always).  A table grows by whole 2 MiB steps there,
 * and by small ones elsewhere (grow.c).  And a mapping that can hold them
 * (shf_mmap_2m()).  libc only; see mount.h.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "mount.h"

/* The value of opt= in a comma-separated list of mount options, or NULL. */
static const char *mount_opt(const char *opts, const char *opt, char *out,
			     size_t n)
{
	size_t ol = strlen(opt);
	const char *p = opts;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);

		if (l > ol && !strncmp(p, opt, ol) && p[ol] == '=') {
			l -= ol + 1;
			if (l >= n)
				l = n - 1;
			memcpy(out, p + ol + 1, l);
			out[l] = '\0';
			return out;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

/* shf_huge_policy() for the file system of device dev. */
static const char *huge_policy_dev(dev_t dev, char *out, size_t n)
{
	char sysl[256], sys[64] = "", *p, *line = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(out, n, "unknown");
	f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	if (f) {
		/* the choice is the one in brackets */
		if (fgets(sysl, sizeof(sysl), f) && (p = strchr(sysl, '[')) &&
		    sscanf(p + 1, "%63[^]]", sys) == 1 &&
		    (!strcmp(sys, "deny") || !strcmp(sys, "force"))) {
			fclose(f);
			snprintf(out, n, "%s (shmem_enabled)", sys);
			return out;
		}
		fclose(f);
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return out;
	/* id parent major:minor root mountpoint opts ... - fstype source sopts */
	while (getline(&line, &cap, f) > 0) {
		unsigned int ma, mi;
		char fstype[64], sopts[1024], val[64];
		const char *dash = strstr(line, " - ");

		if (sscanf(line, "%*s %*s %u:%u", &ma, &mi) != 2 || !dash ||
		    makedev(ma, mi) != dev)
			continue;
		if (sscanf(dash + 3, "%63s %*s %1023s", fstype, sopts) != 2)
			continue;
		if (strcmp(fstype, "tmpfs"))
			snprintf(out, n, "%s", fstype);
		else if (mount_opt(sopts, "huge", val, sizeof(val)))
			snprintf(out, n, "huge=%s", val);
		else
			snprintf(out, n, "huge=never");
	}
	free(line);
	fclose(f);
	return out;
}

const char *shf_huge_policy(const char *path, char *out, size_t n)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(out, n, "unknown");
		return out;
	}
	return huge_policy_dev(st.st_dev, out, n);
}

/*
 * The answer for the last file system asked about, in one word (device
 * << 2 | 2 | answer; 0: none), so that an attach reads /proc/self/mountinfo
 * once per process and file system, not every time (a host may have
 * thousands of mounts), with no lock a fork could leave held.
 */
static _Atomic uint64_t growth_word;

int shf_huge_growth(dev_t fs)
{
	char pol[128];
	uint64_t w, dev = (uint64_t)fs;
	int e = errno, huge;

	w = atomic_load_explicit(&growth_word, memory_order_relaxed);
	if (dev < (1ULL << 62) && w && w >> 2 == dev)
		return (int)(w & 1);
	huge_policy_dev(fs, pol, sizeof(pol));
	huge = !strcmp(pol, "huge=within_size") ||
	       !strcmp(pol, "huge=always") ||
	       !strcmp(pol, "force (shmem_enabled)");
	if (dev < (1ULL << 62))
		atomic_store_explicit(&growth_word, dev << 2 | 2 | (uint64_t)huge,
				      memory_order_relaxed);
	errno = e;
	return huge;
}

void *shf_mmap_2m(int fd, uint64_t len, int prot)
{
	const uint64_t al = 2u << 20;
	uint8_t *r, *a;
	void *m;

	r = mmap(NULL, len + al, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	a = (uint8_t *)(((uintptr_t)r + al - 1) & ~(uintptr_t)(al - 1));
	/* over this call's own reservation: nothing else is mapped there */
	m = mmap(a, len, prot, MAP_SHARED | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED) {
		munmap(r, len + al);
		return MAP_FAILED;
	}
	if (a > r)
		munmap(r, (size_t)(a - r));
	if (a + len < r + len + al)
		munmap(a + len, (size_t)(r + len + al - (a + len)));
	return m;
}
