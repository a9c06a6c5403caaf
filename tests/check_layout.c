/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * check_layout.c - the arithmetic of a table's layout (lib/table.h) against
 * plain reference formulas: which bucket a key's second choice is, what a
 * slot holds, which size class a record takes.  A faster spelling of any
 * of them must give the same answers for every input, or tables written
 * before it would be read wrong after it.  White-box: includes table.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "shf-test.h"
#include "table.h"

/* alt_of() as layout 5 defined it. */
static uint32_t alt_ref(uint32_t tag)
{
	return ((tag * 0x9e3779b1u) >> 26) % 63u + 1u;
}

START_TEST(test_alt_of_every_tag)
{
	uint32_t tag;

	for (tag = 0; tag <= 0x1ffffu; tag++)
		if (alt_of(tag) != alt_ref(tag))
			ck_abort_msg("alt_of(%#x) is %u, layout 5 says %u", tag,
				     alt_of(tag), alt_ref(tag));
	/* a key's two buckets always differ */
	ck_assert_uint_ge(alt_of(0), 1);
	ck_assert_uint_le(alt_of(0x1ffff), SEG_BUCKETS - 1);
}
END_TEST

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* bucket_match() and bucket_empty(), one slot at a time. */
static uint32_t match_ref(const uint32_t *bk, uint32_t tag, int empty)
{
	const uint8_t *b = (const uint8_t *)bk;
	uint32_t r = 0, i;

	for (i = 0; i < BUCKET_SLOTS; i++)
		if (empty ? bk[i] == 0 :
			    bk[i] >> 24 == (tag & 0xff) &&
				    b[B_TAGHI + i] == (tag >> 8 & 0xff))
			r |= 1u << i;
	return r;
}

START_TEST(test_bucket_compare)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	uint32_t bk[16] __attribute__((aligned(64)));
	uint32_t n, i;

	for (n = 0; n < 200000; n++) {
		uint32_t tag = (uint32_t)rnd(&s) & 0x1ffff;

		for (i = 0; i < BUCKET_SLOTS; i++) {
			uint64_t r = rnd(&s);
			uint32_t t = r % 4 ? tag : (uint32_t)(r >> 8) & 0x1ffff;

			/* empty, the tag (marked or not), a tag one bit off,
			 * another tag, words and high bytes that match alone */
			switch ((r >> 40) % 7) {
			case 0:
				slot_st(&bk[i], 0);
				break;
			case 1:
				slot_st(&bk[i], slot_make(tag, (uint32_t)(r >> 20) %
							       (UID_LOCAL_MAX + 1)) |
							(r & 1 ? SLOT_REF : 0));
				break;
			case 2:
				slot_st(&bk[i], slot_make(tag ^ (1u << (r % 17)), 64));
				break;
			case 3:
				slot_st(&bk[i], slot_make(t, (uint32_t)r & 0xfff));
				break;
			case 4: /* the word alone, the high byte alone */
				bk[i] = (tag & 0xff) << 24 | 5;
				((uint8_t *)bk)[B_TAGHI + i] = (uint8_t)~(tag >> 8);
				break;
			case 5:
				bk[i] = (uint32_t)r | 1;
				((uint8_t *)bk)[B_TAGHI + i] = (uint8_t)(tag >> 8);
				break;
			default:
				bk[i] = (uint32_t)r;
				((uint8_t *)bk)[B_TAGHI + i] = (uint8_t)(r >> 32);
				break;
			}
		}
		bk[15] = (uint32_t)rnd(&s); /* the marks: never compared */
		ck_assert_uint_eq(bucket_match(bk, tag), match_ref(bk, tag, 0));
		ck_assert_uint_eq(bucket_empty(bk), match_ref(bk, tag, 1));
	}
}
END_TEST

START_TEST(test_slot_fields)
{
	uint64_t s = 12345, n, want[BUCKET_SLOTS] = { 0 };
	uint32_t bk[16] __attribute__((aligned(64))) = { 0 };

	for (n = 0; n < 100000; n++) {
		uint32_t tag = (uint32_t)rnd(&s) & 0x1ffff,
			 ul = (uint32_t)(rnd(&s) % (UID_LOCAL_MAX + 1)),
			 i = (uint32_t)(n % BUCKET_SLOTS), j;
		uint64_t sl = slot_make(tag, ul), ref = n & 1 ? SLOT_REF : 0;

		ck_assert_uint_ne(sl, 0); /* never an empty slot */
		ck_assert_uint_eq(slot_tag(sl), tag);
		ck_assert_uint_eq(slot_ul(sl), ul);
		ck_assert(slot_same(sl, sl | SLOT_REF));
		ck_assert(!slot_same(sl, sl ^ 4));
		ck_assert_uint_eq(slot_ul(sl | SLOT_REF), ul);
		ck_assert_uint_eq(slot_tag(sl | SLOT_REF), tag);
		/* stored and loaded whole, mark and all, the others kept */
		ck_assert_ptr_eq(slot_bucket(&bk[i]), (uint8_t *)bk);
		ck_assert_uint_eq(slot_idx(&bk[i]), i);
		slot_st(&bk[i], sl | ref);
		ck_assert_uint_eq(slot_ld(&bk[i]), sl | ref);
		slot_ref_set(&bk[i]);
		ck_assert_uint_eq(slot_ld(&bk[i]), sl | SLOT_REF);
		slot_ref_clear(&bk[i]);
		ck_assert_uint_eq(slot_ld(&bk[i]), sl);
		if (n & 2)
			slot_ref_set(&bk[i]);
		want[i] = sl | (n & 2 ? SLOT_REF : 0);
		/* every slot of the bucket is what was stored in it last */
		for (j = 0; j < BUCKET_SLOTS; j++) {
			ck_assert_uint_eq(slot_ld(&bk[j]), want[j]);
			ck_assert_uint_eq(slot_key(&bk[j]), want[j] & ~SLOT_REF);
		}
	}
	slot_st(&bk[3], 0);
	ck_assert_uint_eq(slot_ld(&bk[3]), 0);
	ck_assert_uint_eq(bucket_empty(bk) & 8, 8);
}
END_TEST

/* Size classes: every size has a class whose bound holds it, classes
 * grow with the size, and the bound is the class's own. */
START_TEST(test_size_classes)
{
	uint64_t size, b, prev_b = 0;
	uint32_t c, prev_c = 0;

	for (size = 1; size <= CLASS_MAX_SHARD; size++) {
		c = cls_of(size, &b);
		ck_assert_uint_lt(c, NCLASS);
		ck_assert_uint_ge(b, size < REC_MIN ? REC_MIN : size);
		ck_assert_uint_eq(cls_bound(c), b);
		ck_assert_uint_ge(c, prev_c);
		ck_assert_uint_ge(b, prev_b);
		/* no more than an eighth (or 4 bytes) of slack */
		ck_assert_uint_le(b - size, size / 8 + 4 > REC_MIN ?
						    size / 8 + 4 : REC_MIN);
		if (size & (PAGE - 1))
			ck_assert_int_eq(free_class(size), (int)c);
		else
			ck_assert_int_eq(free_class(size), -1);
		prev_c = c;
		prev_b = b;
	}
	for (size = 1; size <= (1ULL << 34); size += size / 3 + 1) {
		b = big_bound(size, &c);
		ck_assert_uint_ge(b, size);
		ck_assert_uint_eq(b % PAGE, 0);
		ck_assert_uint_lt(c, NBIG);
	}
	ck_assert_uint_eq(cell_class(CELL_MAX), CELL_CLASSES - 1);
	ck_assert_uint_eq(cell_class(CELL_MAX + 1), REC_MIN / 4 - 1);
}
END_TEST

static Suite *layout_suite(void)
{
	Suite *s = suite_create("layout");

	shf_test_add_tcase(s, "arithmetic", 60, test_alt_of_every_tag,
			   test_bucket_compare, test_slot_fields,
			   test_size_classes);
	return s;
}

int main(void)
{
	shf_test_init();
	return shf_test_main(layout_suite());
}
