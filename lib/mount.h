/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mount.h - what the mount a path lies on says of 2 MiB pages, and a
 * mapping that can hold them (mount.c).
 * libc only: the library includes it through shf-internal.h, and shf(1)
 * builds mount.c into its own object for "shf stat".
 */
#ifndef SHF_MOUNT_H
#define SHF_MOUNT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The policy that decides whether the file system of path gives files 2
 * MiB pages, as text in out (n bytes): "huge=within_size", "huge=never"
 * (a tmpfs without the option), "deny (shmem_enabled)", the type of a
 * file system that is not tmpfs, or "unknown".  Returns out.
 */
const char *shf_huge_policy(const char *path, char *out, size_t n);

/*
 * 1 if space that a file on the file system fs (st_dev of the open file)
 * grows by gets 2 MiB pages when it grows by whole, aligned 2 MiB (a tmpfs
 * mounted huge=within_size or huge=always, or shmem_enabled force); 0
 * otherwise, or when unknown.  Keeps errno.  The last file system's answer
 * is kept for the process.
 */
int shf_huge_growth(dev_t fs);

/*
 * Map len bytes of fd (MAP_SHARED, prot) at an address that is a multiple
 * of 2 MiB, as the file's offset 0 is: only then can a 2 MiB page of the
 * file be mapped whole, with one page-table entry.  A tmpfs mounted huge=
 * aligns such mappings itself; one without (the usual /dev/shm) does not,
 * and its files' small pages can still be gathered into 2 MiB ones
 * (MADV_COLLAPSE: "shf huge", shf(1)).  The mapping (munmap() len bytes
 * of it), or MAP_FAILED with errno.
 */
void *shf_mmap_2m(int fd, uint64_t len, int prot);

#endif /* SHF_MOUNT_H */
