/* test_cpulist.c - the CPU set bitmap and the kernel CPU list parser and
 * formatter (src/common/cpulist.c): every operation, canonical output,
 * malformed input (which must leave the output untouched) and round trips. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vcpud/cpulist.h"
#include "vcpud/util.h"

/* Parse s, which must succeed, and return the canonical form (caller frees). */
static char *canon(const char *s)
{
	struct cpuset set;
	struct error *err = NULL;
	int r = cpulist_parse(s, &set, &err);
	if (r != 0)
		fail_msg("cpulist_parse(\"%s\") failed: %s", s, err ? err->msg : "?");
	assert_null(err);
	return cpulist_format(&set);
}

static void test_bit_ops(void **state)
{
	(void)state;
	struct cpuset s;
	cpuset_zero(&s);
	assert_true(cpuset_empty(&s));
	assert_int_equal(cpuset_count(&s), 0);

	unsigned cpus[] = { 0, 1, 63, 64, 65, 127, 128, 1023, CPULIST_MAX_CPUS - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(cpus); i++) {
		assert_false(cpuset_isset(&s, cpus[i]));
		cpuset_set(&s, cpus[i]);
		assert_true(cpuset_isset(&s, cpus[i]));
		assert_int_equal(cpuset_count(&s), i + 1);
		assert_false(cpuset_empty(&s));
	}
	/* neighbours stay clear */
	assert_false(cpuset_isset(&s, 2));
	assert_false(cpuset_isset(&s, 62));
	assert_false(cpuset_isset(&s, 66));
	/* setting twice counts once */
	cpuset_set(&s, 64);
	assert_int_equal(cpuset_count(&s), ARRAY_SIZE(cpus));

	for (size_t i = 0; i < ARRAY_SIZE(cpus); i++) {
		cpuset_clear(&s, cpus[i]);
		assert_false(cpuset_isset(&s, cpus[i]));
		assert_int_equal(cpuset_count(&s), ARRAY_SIZE(cpus) - i - 1);
	}
	assert_true(cpuset_empty(&s));
	/* clearing a clear bit is a no-op */
	cpuset_clear(&s, 5);
	assert_true(cpuset_empty(&s));
}

static void test_out_of_range_bits_ignored(void **state)
{
	(void)state;
	struct cpuset s, z;
	cpuset_zero(&s);
	cpuset_zero(&z);
	cpuset_set(&s, CPULIST_MAX_CPUS);
	cpuset_set(&s, CPULIST_MAX_CPUS + 64);
	cpuset_set(&s, ~0U);
	assert_true(cpuset_empty(&s));
	assert_true(cpuset_equal(&s, &z));
	assert_false(cpuset_isset(&s, CPULIST_MAX_CPUS));
	assert_false(cpuset_isset(&s, ~0U));
	cpuset_set(&s, 3);
	cpuset_clear(&s, CPULIST_MAX_CPUS + 3);
	assert_true(cpuset_isset(&s, 3));
}

static void test_set_algebra(void **state)
{
	(void)state;
	struct cpuset a, b, d, e;
	struct error *err = NULL;
	assert_int_equal(cpulist_parse("0-7,64-70", &a, &err), 0);
	assert_int_equal(cpulist_parse("4-11,70,2000", &b, &err), 0);

	assert_true(cpuset_intersects(&a, &b));
	assert_true(cpuset_intersects(&b, &a));

	cpuset_and(&d, &a, &b);
	char *s = cpulist_format(&d);
	assert_string_equal(s, "4-7,70");
	free(s);

	cpuset_or(&d, &a, &b);
	s = cpulist_format(&d);
	assert_string_equal(s, "0-11,64-70,2000");
	free(s);

	cpuset_andnot(&d, &a, &b);
	s = cpulist_format(&d);
	assert_string_equal(s, "0-3,64-69");
	free(s);

	cpuset_andnot(&d, &b, &a);
	s = cpulist_format(&d);
	assert_string_equal(s, "8-11,2000");
	free(s);

	/* aliasing dst with an operand */
	e = a;
	cpuset_and(&e, &e, &b);
	cpuset_and(&d, &a, &b);
	assert_true(cpuset_equal(&e, &d));
	e = a;
	cpuset_or(&e, &e, &b);
	cpuset_or(&d, &a, &b);
	assert_true(cpuset_equal(&e, &d));
	e = a;
	cpuset_andnot(&e, &e, &e);
	assert_true(cpuset_empty(&e));

	/* disjoint sets, and the empty set against anything */
	assert_int_equal(cpulist_parse("8-63", &d, &err), 0);
	assert_false(cpuset_intersects(&a, &d));
	cpuset_zero(&e);
	assert_false(cpuset_intersects(&a, &e));
	assert_false(cpuset_intersects(&e, &e));

	/* equality looks at every word */
	assert_int_equal(cpulist_parse("0-7,64-70", &d, &err), 0);
	assert_true(cpuset_equal(&a, &d));
	cpuset_set(&d, CPULIST_MAX_CPUS - 1);
	assert_false(cpuset_equal(&a, &d));
	assert_null(err);
}

static void test_parse_valid(void **state)
{
	(void)state;
	static const struct {
		const char *in, *canonical;
		unsigned count;
	} cases[] = {
		{ "", "", 0 },
		{ "\n", "", 0 },
		{ "   ", "", 0 },
		{ "0", "0", 1 },
		{ "0\n", "0", 1 },
		{ "  0-3 \n", "0-3", 4 },
		{ "\t0-3,8\n", "0-3,8", 5 },
		{ "0-3,8,10-11", "0-3,8,10-11", 7 },
		{ "0-0", "0", 1 },
		{ "5-5,5", "5", 1 },
		{ "1,0", "0-1", 2 },          /* order does not matter */
		{ "3,2,1,0", "0-3", 4 },
		{ "0-3,2-5", "0-5", 6 },      /* overlaps merge */
		{ "0-3,4-7", "0-7", 8 },      /* adjacent ranges merge */
		{ "0,2,4", "0,2,4", 3 },
		{ "10,11", "10-11", 2 },      /* two in a row print as a range */
		{ "007", "7", 1 },            /* leading zeros are decimal */
		{ "63-64", "63-64", 2 },      /* word boundary */
		{ "0-2047", "0-2047", 2048 },
		{ "2047", "2047", 1 },
		{ "0,2047", "0,2047", 2 },
		{ "0-63,128-191", "0-63,128-191", 128 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cpuset s;
		struct error *err = NULL;
		if (cpulist_parse(cases[i].in, &s, &err) != 0)
			fail_msg("case %zu \"%s\": %s", i, cases[i].in, err->msg);
		assert_int_equal(cpuset_count(&s), cases[i].count);
		char *f = cpulist_format(&s);
		if (strcmp(f, cases[i].canonical) != 0)
			fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, cases[i].in,
				 f, cases[i].canonical);
		free(f);
	}
}

static void test_parse_members(void **state)
{
	(void)state;
	struct cpuset s;
	struct error *err = NULL;
	assert_int_equal(cpulist_parse("0-3,8,10-11", &s, &err), 0);
	for (unsigned c = 0; c < 64; c++) {
		bool want = c <= 3 || c == 8 || c == 10 || c == 11;
		assert_int_equal(cpuset_isset(&s, c), want);
	}
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int code;
		const char *msg_part;
	} cases[] = {
		{ "3-1", EINVAL, "range 3-1 is reversed" },
		{ "1,,2", EINVAL, "expected a CPU number at offset 2" },
		{ ",", EINVAL, "expected a CPU number at offset 0" },
		{ ",1", EINVAL, "expected a CPU number at offset 0" },
		{ "1,", EINVAL, "trailing ','" },
		{ "1,\n", EINVAL, "trailing ','" },
		{ "a", EINVAL, "expected a CPU number" },
		{ "0x3", EINVAL, "expected ',' or '-' at offset 1" },
		{ "-1", EINVAL, "expected a CPU number at offset 0" },
		{ "+1", EINVAL, "expected a CPU number" },
		{ "1-", EINVAL, "found the end" },
		{ "1--2", EINVAL, "expected a CPU number at offset 2" },
		{ "1-2-3", EINVAL, "expected ',' or '-'" },
		{ "-", EINVAL, "expected a CPU number" },
		{ " 1 - 2", EINVAL, "expected ',' or '-'" },
		{ "1 ,2", EINVAL, "expected ',' or '-'" },
		{ "1, 2", EINVAL, "expected a CPU number" },
		{ "1\n2", EINVAL, "expected ',' or '-'" },
		{ "0-3\n\n\n4", EINVAL, "expected ',' or '-'" },
		{ "1;2", EINVAL, "expected ',' or '-'" },
		{ "1.5", EINVAL, "expected ',' or '-'" },
		{ "0-15:2/4", EINVAL, "stride" },
		{ "3a", EINVAL, "expected ',' or '-'" },
		{ "all", EINVAL, "expected a CPU number" },
		{ "2048", ERANGE, "CPU 2048 is out of range (0..2047)" },
		{ "0-2048", ERANGE, "CPU 2048 is out of range" },
		{ "99999999999999999999999999", ERANGE, "out of range" },
		{ "18446744073709551617", ERANGE, "out of range" },
		{ "4294967297", ERANGE, "out of range" },
		{ "0-99999999999999999999", ERANGE, "out of range" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cpuset s, orig;
		struct error *err = NULL;
		cpuset_zero(&s);
		cpuset_set(&s, 42);
		orig = s;
		if (cpulist_parse(cases[i].in, &s, &err) != -1)
			fail_msg("case %zu \"%s\" was accepted", i, cases[i].in);
		assert_non_null(err);
		if (err->code != cases[i].code || !strstr(err->msg, cases[i].msg_part))
			fail_msg("case %zu \"%s\": code %d msg \"%s\", want code %d and \"%s\"",
				 i, cases[i].in, err->code, err->msg, cases[i].code,
				 cases[i].msg_part);
		assert_true(strstr(err->msg, "invalid CPU list") == err->msg);
		/* the output is untouched on failure */
		assert_true(cpuset_equal(&s, &orig));
		error_free(&err);
		assert_null(err);
	}
}

static void test_parse_message_quotes_input(void **state)
{
	(void)state;
	struct cpuset s;
	struct error *err = NULL;
	assert_int_equal(cpulist_parse("0-3,x", &s, &err), -1);
	assert_string_equal(err->msg,
			    "invalid CPU list '0-3,x': expected a CPU number at offset 4");
	error_free(&err);

	/* control characters never reach the message; long input is cut */
	assert_int_equal(cpulist_parse("1\x1b[2J", &s, &err), -1);
	assert_null(strchr(err->msg, '\x1b'));
	assert_non_null(strstr(err->msg, "'1?[2J'"));
	error_free(&err);

	char big[300];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(cpulist_parse(big, &s, &err), -1);
	assert_int_equal(err->code, ERANGE);
	assert_non_null(strstr(err->msg, "..."));
	assert_true(strlen(err->msg) < 250);
	error_free(&err);

	assert_int_equal(cpulist_parse(NULL, &s, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);

	/* a NULL err is allowed: the failure is still reported */
	assert_int_equal(cpulist_parse("3-1", &s, NULL), -1);
}

static void test_format_empty_and_full(void **state)
{
	(void)state;
	struct cpuset s;
	cpuset_zero(&s);
	char *f = cpulist_format(&s);
	assert_string_equal(f, "");
	free(f);

	for (unsigned c = 0; c < CPULIST_MAX_CPUS; c++)
		cpuset_set(&s, c);
	f = cpulist_format(&s);
	assert_string_equal(f, "0-2047");
	free(f);

	/* every other CPU: the longest output */
	cpuset_zero(&s);
	for (unsigned c = 0; c < CPULIST_MAX_CPUS; c += 2)
		cpuset_set(&s, c);
	f = cpulist_format(&s);
	assert_int_equal(strncmp(f, "0,2,4,6,", 8), 0);
	assert_non_null(strstr(f, ",2044,2046"));
	assert_int_equal(f[strlen(f) - 1], '6');
	struct cpuset back;
	struct error *err = NULL;
	assert_int_equal(cpulist_parse(f, &back, &err), 0);
	assert_true(cpuset_equal(&s, &back));
	free(f);
}

/* A small deterministic PRNG, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_round_trip_random(void **state)
{
	(void)state;
	for (int iter = 0; iter < 2000; iter++) {
		struct cpuset s;
		cpuset_zero(&s);
		/* mixes of sparse bits and runs, sometimes near the top */
		int items = (int)(rng() % 20);
		unsigned span = (rng() % 2) ? 256 : CPULIST_MAX_CPUS;
		for (int k = 0; k < items; k++) {
			unsigned a = (unsigned)(rng() % span);
			unsigned len = (unsigned)(rng() % 4 == 0 ? rng() % 130 : 0);
			for (unsigned c = a; c <= a + len && c < CPULIST_MAX_CPUS; c++)
				cpuset_set(&s, c);
		}
		char *f = cpulist_format(&s);
		struct cpuset back;
		struct error *err = NULL;
		if (cpulist_parse(f, &back, &err) != 0)
			fail_msg("iter %d: \"%s\" did not re-parse: %s", iter, f, err->msg);
		assert_true(cpuset_equal(&s, &back));
		/* canonical: formatting again gives the same text */
		char *g = cpulist_format(&back);
		assert_string_equal(f, g);
		/* and the text has no empty items and no reversed ranges */
		assert_null(strstr(f, ",,"));
		assert_true(f[0] != ',');
		free(g);
		free(f);
	}
}

static void test_round_trip_text(void **state)
{
	(void)state;
	/* canonical strings are fixed points */
	const char *fixed[] = { "", "0", "0-1", "0-3,8,10-11", "1,3,5", "0-63",
				"64-127", "0,2047", "100-200,300,2000-2047" };
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
		char *f = canon(fixed[i]);
		assert_string_equal(f, fixed[i]);
		free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bit_ops),
		cmocka_unit_test(test_out_of_range_bits_ignored),
		cmocka_unit_test(test_set_algebra),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_members),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_message_quotes_input),
		cmocka_unit_test(test_format_empty_and_full),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_round_trip_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
