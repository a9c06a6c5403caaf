/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * shf-dumpfmt.h - reading the dump stream of "shf dump" (shf(1), DUMP
 * FORMAT) into a table: what "shf load" does, without its messages, so
 * that the fuzz target tests/fuzz/fuzz_load.c runs the very same code.
 *
 * The stream: the magic "SHFDUMP2" (or "SHFDUMP1": records without an
 * expiry); records of u32 key length, u32 value length, (version 2) u64
 * expiry in ms of CLOCK_REALTIME (0: none), key, value; an end marker of
 * two u32 0xffffffff and a u64 record count; the XXH3-64 of every byte
 * before it.  All numbers little-endian, as do_dump() in
 * tools/shf-dump.c writes them.
 */
#ifndef SHF_DUMPFMT_H
#define SHF_DUMPFMT_H

#include <stdint.h>
#include <stdio.h>

#include "shf.h"

#define SHF_DUMP_MAGIC "SHFDUMP2"
#define SHF_DUMP_MAGIC_V1 "SHFDUMP1"
#define SHF_DUMP_MAGIC_LEN 8
#define SHF_DUMP_END UINT32_MAX

/* A dump being read. */
struct shf_dump_reader {
	FILE *f;
	void *xs; /* XXH3_state_t */
	char *buf;
	size_t cap;
	int v2;
	/* what shf_dump_load() found */
	uint64_t records; /* records read */
	uint64_t expired; /* of them, expired since the dump (not put) */
	char what[128]; /* SHF_DUMP_CORRUPT: what is wrong */
};

enum shf_dump_status {
	SHF_DUMP_OK, /* the whole dump is in the table */
	SHF_DUMP_NOT_DUMP, /* no magic (errno 0), or errno from reading */
	SHF_DUMP_READ_ERR, /* errno: reading the stream failed */
	SHF_DUMP_PUT_ERR, /* errno: the table refused record ->records */
	SHF_DUMP_CORRUPT, /* ->what says why; records before it are in */
	SHF_DUMP_NOMEM,
};

/* Start reading f: allocate, read and check the magic. */
enum shf_dump_status shf_dump_open(struct shf_dump_reader *r, FILE *f);
/*
 * Put every record of the dump into shf (records that expired since the
 * dump are counted and skipped; version 1 records get the table's default
 * TTL, version 2 records their own expiry or none), then check the end
 * marker, the count and the checksum, and that nothing follows.
 * progress(arg, records) is called after each record (may be NULL).
 */
enum shf_dump_status shf_dump_load(struct shf_dump_reader *r, SHF *shf,
				   void (*progress)(void *arg, uint64_t n),
				   void *arg);
/* Free what shf_dump_open() allocated (not the FILE). */
void shf_dump_close(struct shf_dump_reader *r);

#endif /* SHF_DUMPFMT_H */
