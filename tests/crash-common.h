/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * crash-common.h - what tests/check_crash.c and its helper program
 * tests/crash-child.c agree on: the keys, their values, and the shared
 * record of acknowledged writes.
 *
 * The record lives in a memfd that the parent creates and the child
 * inherits across exec().  A writer owns the keys i with
 * i % nwriters == its index, so each key has one writer and the record of a
 * key is exact: before an operation the writer notes it as in flight (key,
 * old state, new state); once the library acknowledged it, it stores the
 * new state and clears the in-flight note.  A writer killed at any instant
 * leaves every key at its recorded state, except the in-flight key, which
 * may hold the old state or the new one, never anything else; both
 * programs check that with cc_holds().
 */
#ifndef SHF_CRASH_COMMON_H
#define SHF_CRASH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shf.h"

/*
 * Keys: CONC of them live in the first CONC_SHARDS shards (found by trial,
 * see check_crash.c), so that those shards split their index segments and
 * double their directories several times; SPREAD go everywhere (one in 101
 * is longer than 255 bytes, another record format); CNT are counters
 * (shf_add_key_val()); GROW are put for the first time all along the run,
 * with values of 1 to 17 KiB (one in 16 of 40 to 70 KiB: extents of
 * their own), so that the table and its file keep growing while writers
 * are killed.
 */
#define CC_CONC 12000u
#define CC_CONC_SHARDS 8u
#define CC_SPREAD 4000u
#define CC_GROW 3000u
#define CC_CNT 600u
#define CC_GROW_FIRST (CC_CONC + CC_SPREAD)
#define CC_CNT_FIRST (CC_GROW_FIRST + CC_GROW)
#define CC_NKEYS (CC_CNT_FIRST + CC_CNT)
#define CC_WRITERS_MAX 4u
#define CC_KEY_MAX 320u
#define CC_VAL_MAX 70000u

#define CC_MAGIC 0x43524153u

struct cc_writer {
	uint32_t active; /* an operation is in flight */
	uint32_t key;
	int64_t old_state, new_state;
	uint64_t ops; /* acknowledged operations */
	uint32_t running; /* set by the child once it is in its loop */
	uint32_t error; /* the child found a problem (msg) */
	uint32_t grow_next; /* the writer's next growth key (its n-th) */
	char msg[240];
};

/*
 * State of key i: for a key-value key, 0 absent, v > 0 holding
 * cc_val(i, v); for a counter, its value (0 absent).
 */
struct cc_shm {
	uint32_t magic;
	uint32_t nkeys;
	uint32_t conc_num[CC_CONC]; /* number j of key i: "ck-<j>" */
	struct cc_writer w[CC_WRITERS_MAX];
	int64_t state[CC_NKEYS];
};

static inline int cc_is_counter(uint32_t i)
{
	return i >= CC_CNT_FIRST;
}

static inline int cc_is_growth(uint32_t i)
{
	return i >= CC_GROW_FIRST && i < CC_CNT_FIRST;
}

/* The key of index i into buf (CC_KEY_MAX bytes); returns its length. */
static inline uint32_t cc_key(const struct cc_shm *s, uint32_t i, char *buf)
{
	int n;

	if (i < CC_CONC)
		return (uint32_t)sprintf(buf, "ck-%u", s->conc_num[i]);
	if (i < CC_CONC + CC_SPREAD) {
		uint32_t j = i - CC_CONC;

		n = sprintf(buf, "sk-%u-", j);
		if (j % 101 == 0) { /* a key of more than 255 bytes */
			memset(buf + n, 'k', 300 - (size_t)n);
			n = 300;
		}
		return (uint32_t)n;
	}
	if (i < CC_CNT_FIRST)
		return (uint32_t)sprintf(buf, "gk-%u", i - CC_GROW_FIRST);
	return (uint32_t)sprintf(buf, "cnt-%u", i - CC_CNT_FIRST);
}

/* Length of the value of key i at version v (same for v and v + 4). */
static inline uint32_t cc_val_len(uint32_t i, int64_t v)
{
	static const uint32_t big[4] = { 600, 3000, 20000, 70000 };
	uint32_t q = (uint32_t)((uint64_t)v & 3);

	if (cc_is_growth(i)) { /* large records, some beyond 64 KiB */
		if ((i + q) % 16 == 0)
			return 40000 + (i * 7919 + q * 4099) % 30000;
		return 1024 + (i * 7919 + q * 4099) % 16384;
	}
	if (i % 53 == 0) /* several size classes, and beyond 64 KiB */
		return big[(i / 53 + q) & 3];
	return 1 + (i * 31 + q * 17) % 200;
}

static inline uint64_t cc_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The value of key i at version v into buf; returns its length. */
static inline uint32_t cc_val(uint32_t i, int64_t v, char *buf)
{
	uint32_t len = cc_val_len(i, v), k;
	uint64_t x = cc_mix(((uint64_t)i << 32) ^ (uint64_t)v);

	for (k = 0; k + 8 <= len; k += 8) {
		memcpy(buf + k, &x, 8);
		x = cc_mix(x);
	}
	if (k < len)
		memcpy(buf + k, &x, len - k);
	return len;
}

/*
 * Does the table hold state st for key i?  r: what the get of the key just
 * made returned (shf_get_key_val_copy(), with shf_val and shf_val_len);
 * buf: CC_VAL_MAX bytes, for the value of that state.
 */
static inline int cc_holds(uint32_t i, int64_t st, uint32_t r, char *buf)
{
	uint32_t len;

	if (st == 0)
		return r == SHF_RET_KEY_NONE;
	if (r != SHF_RET_KEY_FOUND)
		return 0;
	if (cc_is_counter(i)) {
		long v;

		if (shf_val_len != sizeof(v))
			return 0;
		memcpy(&v, shf_val, sizeof(v));
		return v == st;
	}
	len = cc_val(i, st, buf);
	return shf_val_len == len && memcmp(shf_val, buf, len) == 0;
}

/* A small fast generator for the writers and the parent. */
static inline uint64_t cc_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return cc_mix(*s);
}

#endif /* SHF_CRASH_COMMON_H */
