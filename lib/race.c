// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * race.c - start lines for processes (shf_race_init, shf_race_start).
 *
 * A race line is a named region "race:<name>" holding a counter.  Each
 * horse adds one and sleeps on the counter (a shared futex) until it
 * reaches the number of horses; the last one to arrive wakes them all.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shf-internal.h"

#define RACE_PREFIX "race:"
#define RACE_PREFIX_LEN (sizeof(RACE_PREFIX) - 1)

/*
 * One 64-bit word: the horses at the line so far (its low half, which
 * they sleep on) and the line's generation (shf_race_init() bumps it), so
 * that a horse that gives up takes itself off its own race only, never
 * off a race set up again meanwhile.
 */
struct race_line {
	uint64_t word;
	uint32_t pad[14];
};

#define RACE_COUNT(w) ((uint32_t)(w))
#define RACE_GEN(w) ((uint32_t)((w) >> 32))

/* The count's half of the word, for the futex. */
static inline uint32_t *race_count(struct race_line *r)
{
	return (uint32_t *)&r->word + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

/* "race:<name>" into buf; -1 with EINVAL if it does not fit. */
static int race_name(char *buf, const char *name, uint32_t name_len)
{
	if (!name || name_len == 0 ||
	    name_len > SHF_REGION_NAME_MAX - 1 - RACE_PREFIX_LEN ||
	    memchr(name, '\0', name_len)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, RACE_PREFIX, RACE_PREFIX_LEN);
	memcpy(buf + RACE_PREFIX_LEN, name, name_len);
	buf[RACE_PREFIX_LEN + name_len] = '\0';
	return 0;
}

SHF_EXPORT void shf_race_init(SHF *shf, const char *name, uint32_t name_len)
{
	char rname[SHF_REGION_NAME_MAX];
	struct race_line *r;
	uint64_t w;

	if (!shf) {
		errno = EINVAL;
		return;
	}
	if (race_name(rname, name, name_len) < 0)
		return;
	r = shf_region(shf, rname, sizeof(*r), 1, NULL);
	if (!r)
		return;
	/* Re-initialising an existing line starts a new race. */
	w = __atomic_load_n(&r->word, __ATOMIC_ACQUIRE);
	while (!__atomic_compare_exchange_n(
		&r->word, &w, (uint64_t)(RACE_GEN(w) + 1u) << 32, 0,
		__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	/* horses of the race before wait out their time, and give up */
}

/* SharedHashFile's horses give up after 6 seconds. */
#define RACE_WAIT_MS_DEFAULT 6000u

SHF_EXPORT uint32_t shf_race_start_timeout(SHF *shf, const char *name,
					   uint32_t name_len, uint32_t horses,
					   uint32_t timeout_ms)
{
	char rname[SHF_REGION_NAME_MAX];
	struct race_line *r;
	uint64_t deadline, w;
	uint32_t seen, gen;
	int saved = errno; /* the futex waits set it: keep it on success */

	if (!shf || horses == 0) {
		errno = EINVAL;
		return SHF_RET_ERROR;
	}
	if (race_name(rname, name, name_len) < 0)
		return SHF_RET_ERROR;
	r = shf_region(shf, rname, sizeof(*r), 0, NULL);
	if (!r)
		return SHF_RET_ERROR; /* ENOENT: no shf_race_init() for it */

	deadline = shf_clock_ms(CLOCK_MONOTONIC) + timeout_ms;
	w = __atomic_load_n(&r->word, __ATOMIC_ACQUIRE);
	while (!__atomic_compare_exchange_n(
		&r->word, &w, (w & ~0xffffffffULL) | (uint32_t)(w + 1), 0,
		__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	seen = RACE_COUNT(w) + 1u;
	gen = RACE_GEN(w);
	if (seen >= horses) {
		shf_futex_wake(race_count(r), INT_MAX);
		errno = saved;
		return SHF_RET_OK;
	}
	while (seen < horses) {
		uint64_t now = shf_clock_ms(CLOCK_MONOTONIC);

		if (now >= deadline) {
			/*
			 * Give up: leave the line unless the race started,
			 * or the line was set up again meanwhile (another
			 * generation: its count is other horses').
			 */
			w = __atomic_load_n(&r->word, __ATOMIC_ACQUIRE);
			for (;;) {
				seen = RACE_COUNT(w);
				if (RACE_GEN(w) != gen || !seen) {
					errno = ETIMEDOUT;
					return SHF_RET_ERROR;
				}
				if (seen >= horses)
					break; /* started meanwhile */
				if (__atomic_compare_exchange_n(
					    &r->word, &w, w - 1, 0,
					    __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE)) {
					errno = ETIMEDOUT;
					return SHF_RET_ERROR;
				}
			}
			continue;
		}
		/*
		 * Returns at once if the counter moved on; the timeout also
		 * bounds the cost of a signal handler that ate a wake-up.
		 */
		shf_futex_wait(race_count(r), seen,
			       deadline - now < 1000 ? (int)(deadline - now)
						     : 1000);
		seen = __atomic_load_n(race_count(r), __ATOMIC_ACQUIRE);
	}
	errno = saved;
	return SHF_RET_OK;
}

SHF_EXPORT void shf_race_start(SHF *shf, const char *name, uint32_t name_len,
			       uint32_t horses)
{
	shf_race_start_timeout(shf, name, name_len, horses,
			       RACE_WAIT_MS_DEFAULT);
}
