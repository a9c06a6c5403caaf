// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * registry.c - the handles this process has attached and not detached.
 *
 * Per-thread state that outlives a call (pending hit counts, a thread's
 * queue pre-queues) names a handle by pointer; after shf_detach() the same
 * address may come back from malloc() for another table.  Each handle gets
 * an id unique in the process, and such state is only used while the
 * registry still holds that handle with that id.  The generation changes
 * whenever a handle goes, so that a thread can tell in one load that its
 * cached states need a look.
 *
 * The layers above the table (queues, log) register hooks that run when a
 * handle goes, before it is unmapped: the table never calls up into them.
 * See shf-internal.h, section registry.c.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "shf-internal.h"

#define REG_HOOKS_MAX 4

struct reg {
	const void *h;
	uint64_t id;
	struct reg *next;
};

static pthread_mutex_t reg_mx = PTHREAD_MUTEX_INITIALIZER;
static struct reg *reg_head;
static uint64_t reg_ids;
uint64_t shf_reg_gen = 1;
static void (*reg_hooks[REG_HOOKS_MAX])(void *h);
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_atfork_prepare(void)
{
	pthread_mutex_lock(&reg_mx);
}

static void reg_atfork_release(void)
{
	pthread_mutex_unlock(&reg_mx);
}

/* fork() while another thread holds the lock would leave it held. */
static void reg_init(void)
{
	pthread_atfork(reg_atfork_prepare, reg_atfork_release,
		       reg_atfork_release);
}

uint64_t shf_reg_add(const void *h)
{
	struct reg *r = malloc(sizeof(*r));

	pthread_once(&reg_once, reg_init);
	if (!r) {
		errno = ENOMEM;
		return 0;
	}
	pthread_mutex_lock(&reg_mx);
	r->h = h;
	r->id = ++reg_ids;
	r->next = reg_head;
	reg_head = r;
	pthread_mutex_unlock(&reg_mx);
	return r->id;
}

void shf_reg_remove(const void *h)
{
	struct reg **pp, *r = NULL;
	int i;

	/* Hooks first, with the handle still usable (and not locked here:
	 * a hook may stop a thread that flushes counts through us). */
	for (i = 0; i < REG_HOOKS_MAX; i++) {
		void (*fn)(void *) = __atomic_load_n(&reg_hooks[i],
						     __ATOMIC_ACQUIRE);

		if (fn)
			fn((void *)h);
	}
	pthread_mutex_lock(&reg_mx);
	for (pp = &reg_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->h == h) {
			r = *pp;
			*pp = r->next;
			break;
		}
	}
	__atomic_add_fetch(&shf_reg_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg_mx);
	free(r);
}

static struct reg *reg_find(const void *h, uint64_t id)
{
	struct reg *r;

	for (r = reg_head; r; r = r->next)
		if (r->h == h && r->id == id)
			return r;
	return NULL;
}

int shf_reg_alive(const void *h, uint64_t id)
{
	int alive;

	pthread_mutex_lock(&reg_mx);
	alive = reg_find(h, id) != NULL;
	pthread_mutex_unlock(&reg_mx);
	return alive;
}

int shf_reg_with(const void *h, uint64_t id, void (*fn)(void *h, void *arg),
		 void *arg)
{
	int alive;

	pthread_mutex_lock(&reg_mx);
	alive = reg_find(h, id) != NULL;
	if (alive)
		fn((void *)h, arg);
	pthread_mutex_unlock(&reg_mx);
	return alive;
}

int shf_reg_hook(void (*on_remove)(void *h))
{
	int i, rc = -1;

	pthread_mutex_lock(&reg_mx);
	for (i = 0; i < REG_HOOKS_MAX; i++) {
		if (reg_hooks[i] == on_remove) {
			rc = 0;
			break;
		}
		if (!reg_hooks[i]) {
			__atomic_store_n(&reg_hooks[i], on_remove,
					 __ATOMIC_RELEASE);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mx);
	if (rc)
		errno = ENOSPC;
	return rc;
}
