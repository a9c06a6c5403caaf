// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thread.c - the per-thread side of SharedHashFile's API: the thread-local
 * results (shf_uid, shf_val, ...), the key named by shf_make_hash() and
 * its hash, and the thread's buffers, freed when the thread exits.  Knows
 * nothing of tables.  See shf-internal.h, section thread.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shf-internal.h"

/*
 * Thread-local results (shf.h).  initial-exec within the library too, as
 * its own thread-locals are: no __tls_get_addr() call per result (the
 * library needs static TLS anyway).
 */
SHF_EXPORT __thread uint32_t shf_uid SHF_TLS_IE = SHF_UID_NONE;
SHF_EXPORT __thread char *shf_key SHF_TLS_IE;
SHF_EXPORT __thread uint32_t shf_key_len SHF_TLS_IE;
SHF_EXPORT __thread char *shf_val SHF_TLS_IE;
SHF_EXPORT __thread uint32_t shf_val_len SHF_TLS_IE;
SHF_EXPORT __thread long shf_val_long SHF_TLS_IE;
SHF_EXPORT __thread void *shf_val_addr SHF_TLS_IE;
/* SharedHashFile's conditional delete: see shf_del_key_val(3). */
SHF_EXPORT __thread uint32_t shf_ttl SHF_TLS_IE;
/* SharedHashFile's raw walk: see shf_tab_copy_iterate(3). */
SHF_EXPORT __thread void *shf_tab SHF_TLS_IE;
SHF_EXPORT __thread uint32_t shf_tab_len SHF_TLS_IE;

__thread struct shf_tls shf_tls SHF_TLS_IE;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void tls_free(void *arg)
{
	(void)arg;
	free(shf_tls.key);
	free(shf_tls.val);
	free(shf_tls.kbuf);
	free(shf_tls.upd_val);
	memset(&shf_tls, 0, sizeof(shf_tls));
	shf_val = NULL;
	shf_key = NULL;
}

static void tls_once_init(void)
{
	tls_key_ok = pthread_key_create(&tls_key, tls_free) == 0;
}

/* Have tls_free() called when the thread exits. */
static void tls_register(void)
{
	if (SHF_LIKELY(shf_tls.registered))
		return;
	pthread_once(&tls_once, tls_once_init);
	if (tls_key_ok && pthread_setspecific(tls_key, &shf_tls) == 0)
		shf_tls.registered = 1;
}

int shf_tls_grow(char **buf, uint64_t *cap, uint64_t len)
{
	if (shf_buf_grow(buf, cap, len) < 0)
		return -1;
	tls_register();
	return 0;
}

SHF_EXPORT void shf_make_hash(const char *key, uint32_t key_len)
{
	shf_tls.have_key = 0;
	if (!key && key_len)
		return;
	if (shf_tls_reserve(&shf_tls.key, &shf_tls.key_cap,
			    key_len ? key_len : 1) < 0)
		return;
	if (key_len)
		memcpy(shf_tls.key, key, key_len);
	shf_tls.key_len = key_len;
	shf_tls.hash_of = 0;
	shf_tls.have_key = 1;
}

uint64_t shf_hash(const uint8_t *secret, const void *key, uint32_t len)
{
	return XXH3_64bits_withSecret(key, len, secret, SHF_HASH_SECRET);
}

uint64_t shf_key_id(void)
{
	return XXH3_64bits(shf_tls.key, shf_tls.key_len);
}

_Static_assert(SHF_HASH_SECRET >= XXH3_SECRET_SIZE_MIN, "XXH3's secret");

/* len bytes of /dev/urandom: 0, or -1. */
static int urandom_read(uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t r;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -1;
	while (got < len) {
		r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return got == len ? 0 : -1;
}

void shf_hash_secret_make(uint8_t *secret)
{
	ssize_t got = getrandom(secret, SHF_HASH_SECRET, GRND_NONBLOCK);
	uint64_t x, i;

#ifdef GRND_INSECURE
	if (got != (ssize_t)SHF_HASH_SECRET) /* early boot: Linux 5.6 on */
		got = getrandom(secret, SHF_HASH_SECRET, GRND_INSECURE);
#endif
	if (got == (ssize_t)SHF_HASH_SECRET)
		return;
	/* getrandom() refused (a seccomp filter): the kernel's device */
	if (urandom_read(secret, SHF_HASH_SECRET) == 0)
		return;
	/*
	 * Neither: what this process and instant have, spread out.  Guessable
	 * by one who sees the file's ctime; libshf(7) says so.
	 */
	x = shf_clock_ns(CLOCK_REALTIME) ^ (uint64_t)getpid() << 32 ^
	    (uint64_t)(uintptr_t)&x;
	for (i = 0; i < SHF_HASH_SECRET; i += 8) {
		x = XXH3_64bits_withSeed(&i, sizeof(i), x);
		memcpy(secret + i, &x, 8);
	}
}
