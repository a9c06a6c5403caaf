// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * crash.c - crash injection, built only with configure --enable-test-hooks
 * (never in a release build): SHF_TEST_CRASH="POINT:N" makes the process
 * SIGKILL itself the N-th time it passes crash point POINT (table.h,
 * enum crash_point; tests/check_crash.c).  Read once by shf_init().
 */
#include "config.h"
#include <stdlib.h>

#include "table.h"

int shf_crash_at;
long shf_crash_count;

void shf_crash_init(void)
{
	const char *e = getenv("SHF_TEST_CRASH");
	char *end;
	long p;

	if (!e)
		return;
	p = strtol(e, &end, 10);
	if (p <= 0 || p >= CP_MAX || *end != ':')
		return;
	shf_crash_count = strtol(end + 1, NULL, 10);
	shf_crash_at = (int)p;
}
