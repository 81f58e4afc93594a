/* test_sample.c - the steal-time sampler: the schedstat parser (good and
 * malformed text), every clamp of sample_derive(), the aggregates and the
 * cpu.stat throttled share; the stateful sampler on a fake /proc under a
 * temp root (windows, baselines, gone threads, dropped targets and their
 * fds, reordered and duplicated lists, the fd limit); and one run against
 * real threads of this process (a spinning one, a sleeping one, one that
 * exits). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fakeproc_test_util.h"

#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/sample.h"
#include "vcpud/util.h"

#define SEC 1000000000LL
#define MS 1000000LL
#define UNTOUCHED 0xdeadbeefULL

static void assert_near(double got, double want, double tol, const char *what)
{
	if (!(fabs(got - want) <= tol))
		fail_msg("%s: %.6f, want %.6f +- %g", what, got, want, tol);
}

/* --- schedstat_parse ------------------------------------------------------- */

static void test_parse_good(void **state)
{
	(void)state;
	const struct {
		const char *text;
		uint64_t cpu, delay;
	} good[] = {
		{ "125495 102343 2\n", 125495, 102343 },
		{ "0 0 0\n", 0, 0 },
		{ "1 2\n", 1, 2 },                      /* two fields are enough */
		{ "1 2 3 4\n", 1, 2 },                  /* more are ignored */
		{ "007 0008 9\n", 7, 8 },
		{ "18446744073709551615 18446744073709551614 0\n", UINT64_MAX, UINT64_MAX - 1 },
		{ "4242424242424 99 18446744073709551615\n", 4242424242424ULL, 99 },
		{ "00000000000000000001 9999999999999999999\n", 1, 9999999999999999999ULL },
		{ "18446744073709551609 10000000000000000000\n", 18446744073709551609ULL,
		  10000000000000000000ULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t c = UNTOUCHED, d = UNTOUCHED;
		struct error *err = NULL;
		if (schedstat_parse(good[i].text, strlen(good[i].text), &c, &d, &err) != 0)
			fail_msg("'%s' refused: %s", good[i].text, err ? err->msg : "?");
		assert_null(err);
		if (c != good[i].cpu || d != good[i].delay)
			fail_msg("'%s': %llu %llu", good[i].text, (unsigned long long)c,
				 (unsigned long long)d);
	}
	/* not NUL-terminated: only len bytes count */
	const char raw[] = { '5', ' ', '6', ' ', '7', '\n', 'j', 'u', 'n', 'k' };
	uint64_t c = 0, d = 0;
	assert_int_equal(schedstat_parse(raw, 6, &c, &d, NULL), 0);
	assert_int_equal(c, 5);
	assert_int_equal(d, 6);
}

static void test_parse_bad(void **state)
{
	(void)state;
	const struct {
		const char *text;
		size_t len; /* 0: strlen */
		int code;
	} bad[] = {
		{ "\n", 0, EINVAL },
		{ "1\n", 0, EINVAL },
		{ "1 \n", 0, EINVAL },
		{ " 1 2\n", 0, EINVAL },
		{ "1  2\n", 0, EINVAL },
		{ "1 2 3 \n", 0, EINVAL },
		{ "1 2", 0, EINVAL },           /* truncated */
		{ "1 2 3", 0, EINVAL },
		{ "1 2 ", 0, EINVAL },
		{ "1", 0, EINVAL },
		{ "-1 2 3\n", 0, EINVAL },
		{ "1 -2 3\n", 0, EINVAL },
		{ "+1 2 3\n", 0, EINVAL },
		{ "1 2 x\n", 0, EINVAL },
		{ "1 2 3x\n", 0, EINVAL },
		{ "0x10 2 3\n", 0, EINVAL },
		{ "1.5 2 3\n", 0, EINVAL },
		{ "1,2,3\n", 0, EINVAL },
		{ "1\t2\t3\n", 0, EINVAL },
		{ "1 2 3\r\n", 0, EINVAL },
		{ "1 2 3\n\n", 0, EINVAL },     /* text after the newline */
		{ "1 2 3\nfoo", 0, EINVAL },
		{ "1 2\0003\n", 6, EINVAL },    /* a NUL inside */
		{ "cpu 1 2\n", 0, EINVAL },
		{ "18446744073709551616 0 0\n", 0, ERANGE },
		{ "0 99999999999999999999 0\n", 0, ERANGE },
		{ "1 2 99999999999999999999999\n", 0, ERANGE },
		{ "18446744073709551620 0\n", 0, ERANGE },
		{ "18446744073709551700 0\n", 0, ERANGE },
		{ "28446744073709551615 0\n", 0, ERANGE },
		{ "184467440737095516150 0\n", 0, ERANGE },
		{ "000000000000000000001 0\n", 0, ERANGE }, /* more than 20 digits */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t c = UNTOUCHED, d = UNTOUCHED;
		struct error *err = NULL;
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
		if (schedstat_parse(bad[i].text, len, &c, &d, &err) != -1)
			fail_msg("'%s' accepted (%llu %llu)", bad[i].text, (unsigned long long)c,
				 (unsigned long long)d);
		assert_non_null(err);
		if (err->code != bad[i].code)
			fail_msg("'%s': code %d, want %d (%s)", bad[i].text, err->code, bad[i].code,
				 err->msg);
		assert_non_null(strstr(err->msg, "schedstat"));
		assert_int_equal(c, UNTOUCHED);
		assert_int_equal(d, UNTOUCHED);
		error_free(&err);
	}
	/* the message shows the text, escaped */
	struct error *err = NULL;
	uint64_t c, d;
	assert_int_equal(schedstat_parse("12 x\n", 5, &c, &d, &err), -1);
	assert_non_null(strstr(err->msg, "'12 x\\n'"));
	error_free(&err);
	/* a long junk buffer is cut in the message */
	char junk[300];
	memset(junk, 'z', sizeof(junk));
	assert_int_equal(schedstat_parse(junk, sizeof(junk), &c, &d, &err), -1);
	assert_true(strlen(err->msg) < 200);
	error_free(&err);
	/* empty and NULL */
	assert_int_equal(schedstat_parse("", 0, &c, &d, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_int_equal(schedstat_parse(NULL, 5, &c, &d, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	/* no err pointer: still refused */
	assert_int_equal(schedstat_parse("x", 1, &c, &d, NULL), -1);
}

/* --- sample_derive ---------------------------------------------------------- */

static const struct sample_counters base = { 1000 * MS, 2000 * MS };

static struct sample_counters plus(int64_t dcpu, int64_t ddelay)
{
	return (struct sample_counters){ (uint64_t)((int64_t)base.cpu_ns + dcpu),
					 (uint64_t)((int64_t)base.run_delay_ns + ddelay) };
}

static void assert_invalid(const struct sample_delta *d, enum sample_state st)
{
	if (d->state != st)
		fail_msg("state %s, want %s", sample_state_name(d->state), sample_state_name(st));
	assert_true(d->usage_pct == 0.0);
	assert_true(d->steal_pct == 0.0);
	assert_int_equal(d->window_ns, 0);
	assert_int_equal(d->flags, 0);
}

static void test_derive_valid(void **state)
{
	(void)state;
	struct sample_delta d;
	struct sample_counters cur = plus(500 * MS, 250 * MS);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_VALID);
	assert_near(d.usage_pct, 50.0, 1e-9, "usage");
	assert_near(d.steal_pct, 25.0, 1e-9, "steal");
	assert_int_equal(d.window_ns, SEC);
	assert_int_equal(d.flags, 0);
	assert_true(sample_state_rebases(d.state));

	/* nothing happened: zero, valid */
	assert_int_equal(sample_derive(&base, &base, 2 * SEC, SEC, &d), SAMPLE_VALID);
	assert_true(d.usage_pct == 0.0 && d.steal_pct == 0.0);

	/* the figures are per wall time: 300 ms of cpu in 3 s is 10% */
	cur = plus(300 * MS, 2700 * MS);
	assert_int_equal(sample_derive(&base, &cur, 3 * SEC, SEC, &d), SAMPLE_VALID);
	assert_near(d.usage_pct, 10.0, 1e-9, "usage");
	assert_near(d.steal_pct, 90.0, 1e-9, "steal");

	/* exactly the wall: 100, not flagged */
	cur = plus(SEC, SEC);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_VALID);
	assert_true(d.usage_pct == 100.0 && d.steal_pct == 100.0);
	assert_int_equal(d.flags, 0);
}

static void test_derive_no_baseline(void **state)
{
	(void)state;
	struct sample_delta d;
	assert_int_equal(sample_derive(NULL, &base, SEC, SEC, &d), SAMPLE_NO_BASELINE);
	assert_invalid(&d, SAMPLE_NO_BASELINE);
	assert_true(sample_state_rebases(d.state));
}

static void test_derive_backwards(void **state)
{
	(void)state;
	struct sample_delta d;
	struct sample_counters cur = plus(-1, 100 * MS);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_COUNTER_RESET);
	assert_invalid(&d, SAMPLE_COUNTER_RESET);
	assert_true(sample_state_rebases(d.state));
	cur = plus(100 * MS, -1);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_COUNTER_RESET);
	cur = (struct sample_counters){ 0, 0 };
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_COUNTER_RESET);
}

static void test_derive_short_window(void **state)
{
	(void)state;
	struct sample_delta d;
	struct sample_counters cur = plus(10 * MS, 10 * MS);
	const int64_t shorts[] = { 0, 1, 50 * MS, SAMPLE_MIN_WINDOW_NS - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(shorts); i++) {
		assert_int_equal(sample_derive(&base, &cur, shorts[i], SEC, &d), SAMPLE_SHORT_WINDOW);
		assert_invalid(&d, SAMPLE_SHORT_WINDOW);
		/* the old baseline stays */
		assert_false(sample_state_rebases(d.state));
	}
	/* even a counter going backwards waits for a real window */
	struct sample_counters back = plus(-5, 0);
	assert_int_equal(sample_derive(&base, &back, 0, SEC, &d), SAMPLE_SHORT_WINDOW);

	/* one period: reported, flagged as fewer than ten periods */
	assert_int_equal(sample_derive(&base, &cur, SAMPLE_MIN_WINDOW_NS, SEC, &d), SAMPLE_VALID);
	assert_true(d.flags & SAMPLE_FLAG_SHORT_WINDOW);
	assert_near(d.usage_pct, 100.0 * 10 / 90, 1e-9, "usage");
	assert_int_equal(sample_derive(&base, &cur, SAMPLE_STEADY_WINDOW_NS - 1, SEC, &d),
			 SAMPLE_VALID);
	assert_true(d.flags & SAMPLE_FLAG_SHORT_WINDOW);
	assert_int_equal(sample_derive(&base, &cur, SAMPLE_STEADY_WINDOW_NS, SEC, &d), SAMPLE_VALID);
	assert_int_equal(d.flags, 0);
}

static void test_derive_clock_jump(void **state)
{
	(void)state;
	struct sample_delta d;
	struct sample_counters cur = plus(10 * MS, 10 * MS);
	assert_int_equal(sample_derive(&base, &cur, -1, SEC, &d), SAMPLE_CLOCK_JUMP);
	assert_invalid(&d, SAMPLE_CLOCK_JUMP);
	assert_true(sample_state_rebases(d.state));
	assert_int_equal(sample_derive(&base, &cur, INT64_MIN, SEC, &d), SAMPLE_CLOCK_JUMP);

	/* up to ten ticks is a (late) window; beyond is a jump */
	assert_int_equal(sample_derive(&base, &cur, 10 * SEC, SEC, &d), SAMPLE_VALID);
	assert_int_equal(sample_derive(&base, &cur, 10 * SEC + 1, SEC, &d), SAMPLE_CLOCK_JUMP);
	assert_invalid(&d, SAMPLE_CLOCK_JUMP);
	assert_int_equal(sample_derive(&base, &cur, 3 * SEC, 200 * MS, &d), SAMPLE_CLOCK_JUMP);
	assert_int_equal(sample_derive(&base, &cur, INT64_MAX, SEC, &d), SAMPLE_CLOCK_JUMP);
	/* no interval: no upper bound; an absurd interval does not overflow */
	assert_int_equal(sample_derive(&base, &cur, 1000 * SEC, 0, &d), SAMPLE_VALID);
	assert_int_equal(sample_derive(&base, &cur, 1000 * SEC, INT64_MAX, &d), SAMPLE_VALID);
}

static void test_derive_clamps(void **state)
{
	(void)state;
	struct sample_delta d;
	/* run_delay credited late: 1.5 s of waiting lands in a 1 s window */
	struct sample_counters cur = plus(0, 1500 * MS);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_VALID);
	assert_true(d.steal_pct == 100.0);
	assert_int_equal(d.flags, SAMPLE_FLAG_STEAL_CLAMPED);
	assert_true(d.usage_pct == 0.0);
	/* cpu time a tick ahead of the wall */
	cur = plus(SEC + 4 * MS, 0);
	assert_int_equal(sample_derive(&base, &cur, SEC, SEC, &d), SAMPLE_VALID);
	assert_true(d.usage_pct == 100.0);
	assert_int_equal(d.flags, SAMPLE_FLAG_USAGE_CLAMPED);
	/* both, in a short window */
	cur = plus(200 * MS, 300 * MS);
	assert_int_equal(sample_derive(&base, &cur, 100 * MS, SEC, &d), SAMPLE_VALID);
	assert_int_equal(d.flags, SAMPLE_FLAG_STEAL_CLAMPED | SAMPLE_FLAG_USAGE_CLAMPED |
					  SAMPLE_FLAG_SHORT_WINDOW);
	assert_true(d.usage_pct == 100.0 && d.steal_pct == 100.0);
	/* huge counters: no overflow, still clamped */
	struct sample_counters lo = { 0, 0 }, hi = { UINT64_MAX, UINT64_MAX };
	assert_int_equal(sample_derive(&lo, &hi, SEC, SEC, &d), SAMPLE_VALID);
	assert_true(d.usage_pct == 100.0 && d.steal_pct == 100.0);
}

static void test_state_names(void **state)
{
	(void)state;
	for (int s = 0; s < SAMPLE_STATE_LAST; s++)
		assert_non_null(sample_state_name((enum sample_state)s));
	assert_string_equal(sample_state_name(SAMPLE_VALID), "valid");
	assert_string_equal(sample_state_name(SAMPLE_GONE), "gone");
	assert_string_equal(sample_state_name(SAMPLE_SHORT_WINDOW), "short-window");
	assert_null(sample_state_name(SAMPLE_STATE_LAST));
	assert_null(sample_state_name((enum sample_state)-1));
}

/* --- aggregates -------------------------------------------------------------- */

static struct sample_vcpu vcpu_ok(double usage, double steal, unsigned flags)
{
	return (struct sample_vcpu){ .valid = true, .state = SAMPLE_VALID, .flags = flags,
				     .usage_pct = usage, .steal_pct = steal,
				     .window_ns = SEC };
}

static void test_aggregates(void **state)
{
	(void)state;
	struct sample_vcpu vm1[] = {
		vcpu_ok(100, 10, 0),
		vcpu_ok(100, 30, SAMPLE_FLAG_STEAL_CLAMPED),
		{ .state = SAMPLE_NO_BASELINE },
	};
	struct sample_agg a = { 0 };
	sample_agg_add_all(&a, vm1, ARRAY_SIZE(vm1));
	assert_int_equal(a.n_vcpus, 3);
	assert_int_equal(a.n_valid, 2);
	assert_int_equal(a.n_gone, 0);
	assert_near(a.usage_sum_pct, 200, 1e-9, "usage sum"); /* 2 vCPUs flat out */
	assert_near(sample_agg_steal_mean_pct(&a), 20, 1e-9, "steal mean");
	assert_near(a.steal_max_pct, 30, 1e-9, "steal max");
	assert_int_equal(a.flags, SAMPLE_FLAG_STEAL_CLAMPED);

	/* a VM with only zero steal has max 0; one with a gone vCPU */
	struct sample_vcpu vm2[] = {
		vcpu_ok(50, 0, 0),
		{ .gone = true, .state = SAMPLE_GONE },
	};
	struct sample_agg b = { 0 };
	sample_agg_add_all(&b, vm2, ARRAY_SIZE(vm2));
	assert_int_equal(b.n_gone, 1);
	assert_true(b.steal_max_pct == 0.0);
	assert_near(sample_agg_steal_mean_pct(&b), 0, 1e-9, "steal mean");

	/* the tenant: vCPU-weighted mean, max of maxes, sums */
	struct sample_agg t = { 0 };
	sample_agg_merge(&t, &b);
	sample_agg_merge(&t, &a);
	assert_int_equal(t.n_vcpus, 5);
	assert_int_equal(t.n_valid, 3);
	assert_int_equal(t.n_gone, 1);
	assert_near(t.usage_sum_pct, 250, 1e-9, "tenant usage");
	assert_near(sample_agg_steal_mean_pct(&t), 40.0 / 3, 1e-9, "tenant steal mean");
	assert_near(t.steal_max_pct, 30, 1e-9, "tenant steal max");
	/* merging an empty aggregate changes nothing */
	struct sample_agg empty = { 0 };
	struct sample_agg t2 = t;
	sample_agg_merge(&t2, &empty);
	assert_memory_equal(&t2, &t, sizeof(t));
	assert_true(sample_agg_steal_mean_pct(&empty) == 0.0);
	/* a max below the first one's (merge into one whose max is larger) */
	struct sample_vcpu hi = vcpu_ok(1, 90, 0);
	struct sample_agg h = { 0 };
	sample_agg_add(&h, &hi);
	sample_agg_merge(&h, &a);
	assert_near(h.steal_max_pct, 90, 1e-9, "max kept");
}

static void test_throttled_frac(void **state)
{
	(void)state;
	/* FACTS.md: parent capped at 50000/100000, 2 s, 2 CPUs: 2917611 us */
	struct cgroup_cpu_stat p = { .throttled_usec = 1000 }, c = { .throttled_usec = 2918611 };
	double f = -1;
	assert_true(sample_throttled_frac(&p, &c, 2 * SEC, 2, &f));
	assert_near(f, 2917611.0 / 4e6, 1e-9, "frac");
	/* on one CPU the same figure is more than the window: clamped */
	assert_true(sample_throttled_frac(&p, &c, 2 * SEC, 1, &f));
	assert_true(f == 1.0);
	/* nothing throttled */
	assert_true(sample_throttled_frac(&p, &p, SEC, 4, &f));
	assert_true(f == 0.0);
	/* no figure: no CPUs, short window, counter backwards */
	f = -1;
	assert_false(sample_throttled_frac(&p, &c, 2 * SEC, 0, &f));
	assert_true(f == 0.0);
	f = -1;
	assert_false(sample_throttled_frac(&p, &c, SAMPLE_MIN_WINDOW_NS - 1, 2, &f));
	assert_true(f == 0.0);
	assert_false(sample_throttled_frac(&p, &c, -SEC, 2, &f));
	assert_false(sample_throttled_frac(&c, &p, SEC, 2, &f));
	assert_false(sample_throttled_frac(NULL, &p, SEC, 2, &f));
}

/* --- a fake /proc under a temp root ------------------------------------------ */

struct fake {
	char root[64];
	struct sampler *s;
};

static int fake_setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	if (fake_root_make(f->root, sizeof(f->root), "/tmp/vcpud-test-sample.XXXXXX") < 0) {
		free(f);
		return -1;
	}
	struct error *err = NULL;
	if (sampler_new(f->root, SEC, &f->s, &err) < 0) {
		error_free(&err);
		return -1;
	}
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	sampler_free(f->s);
	int r = fake_tree_remove(f->root);
	free(f);
	return r;
}

static char *stat_path(const struct fake *f, int pid, int tid)
{
	return xasprintf("%s/proc/%d/task/%d/schedstat", f->root, pid, tid);
}

/* Write ROOT/proc/PID/task/TID/schedstat in place (same inode, so a kept
 * fd reads the new text, as it would from the kernel). */
static void put_text(const struct fake *f, int pid, int tid, const char *text)
{
	_cleanup_free_ char *dir = xasprintf("%s/proc/%d/task/%d", f->root, pid, tid);
	mkdir_p(dir);
	_cleanup_free_ char *p = stat_path(f, pid, tid);
	put_file(p, text);
}

static void put_stat(const struct fake *f, int pid, int tid, uint64_t cpu, uint64_t delay)
{
	char text[80];
	snprintf(text, sizeof(text), "%llu %llu 17\n", (unsigned long long)cpu,
		 (unsigned long long)delay);
	put_text(f, pid, tid, text);
}

static void rm_stat(const struct fake *f, int pid, int tid)
{
	_cleanup_free_ char *p = stat_path(f, pid, tid);
	assert_int_equal(unlink(p), 0);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static void tick_ok(struct fake *f, const struct sample_target *t, size_t n, int64_t mono,
		    struct sample_vcpu *out)
{
	struct error *err = NULL;
	if (sampler_tick(f->s, t, n, mono, out, &err) != 0)
		fail_msg("tick at %lld failed: %s", (long long)mono, err ? err->msg : "?");
	assert_null(err);
}

static void assert_state(const struct sample_vcpu *o, enum sample_state st)
{
	if (o->state != st)
		fail_msg("state %s, want %s", sample_state_name(o->state), sample_state_name(st));
	assert_int_equal(o->valid, st == SAMPLE_VALID);
	assert_int_equal(o->gone, st == SAMPLE_GONE);
}

/* Two vCPUs of one VM: the first tick sets baselines, the second reports. */
static void test_sampler_two_ticks(void **state)
{
	struct fake *f = *state;
	put_stat(f, 100, 101, 5 * SEC, 1 * SEC);
	put_stat(f, 100, 102, 7 * SEC, 0);
	const struct sample_target t[] = {
		{ "web", 0, 100, 101 },
		{ "web", 1, 100, 102 },
	};
	struct sample_vcpu out[2];
	tick_ok(f, t, 2, 10 * SEC, out);
	assert_state(&out[0], SAMPLE_NO_BASELINE);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	assert_int_equal(out[0].cpu_ns, 5 * SEC);
	assert_int_equal(out[0].run_delay_ns, 1 * SEC);
	assert_int_equal(sampler_size(f->s), 2);
	assert_int_equal(sampler_open_fds(f->s), 2);
	assert_true(sampler_fd(f->s, 100, 101) >= 0);
	assert_true(sampler_fd(f->s, 100, 102) >= 0);
	assert_int_equal(sampler_fd(f->s, 100, 103), -1);

	/* vCPU 0 ran 60% and waited 30%; vCPU 1 ran 250 ms of 1 s, no wait */
	put_stat(f, 100, 101, 5 * SEC + 600 * MS, 1 * SEC + 300 * MS);
	put_stat(f, 100, 102, 7 * SEC + 250 * MS, 0);
	tick_ok(f, t, 2, 11 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 60, 1e-9, "usage 0");
	assert_near(out[0].steal_pct, 30, 1e-9, "steal 0");
	assert_near(out[1].usage_pct, 25, 1e-9, "usage 1");
	assert_near(out[1].steal_pct, 0, 1e-9, "steal 1");
	assert_int_equal(out[0].window_ns, SEC);
	assert_int_equal(out[1].cpu_ns, 7 * SEC + 250 * MS);

	struct sample_agg a = { 0 };
	sample_agg_add_all(&a, out, 2);
	assert_near(a.usage_sum_pct, 85, 1e-9, "VM usage");
	assert_near(sample_agg_steal_mean_pct(&a), 15, 1e-9, "VM steal mean");
	assert_near(a.steal_max_pct, 30, 1e-9, "VM steal max");

	/* run_delay credited late is clamped and flagged */
	put_stat(f, 100, 101, 5 * SEC + 600 * MS, 3 * SEC);
	tick_ok(f, t, 2, 12 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_true(out[0].steal_pct == 100.0);
	assert_true(out[0].flags & SAMPLE_FLAG_STEAL_CLAMPED);
	assert_true(out[0].usage_pct == 0.0);
	/* no fd was opened again */
	assert_int_equal(sampler_open_fds(f->s), 2);
}

static void count_and_wait(void *data)
{
	(*(int *)data)++;
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

/* The yield hook runs within a long tick, every 256 targets once its time
 * has passed, and the readings after it are stamped later by the time it
 * took: their windows stay right. */
static void test_sampler_yield(void **state)
{
	struct fake *f = *state;
	enum { N = 600 };
	struct sample_target t[N];
	static struct sample_vcpu out[N];
	for (int i = 0; i < N; i++) {
		put_stat(f, 100, 1000 + i, 5 * SEC, 0);
		t[i] = (struct sample_target){ "big", (unsigned)i, 100, 1000 + i };
	}
	tick_ok(f, t, N, 10 * SEC, out);
	for (int i = 0; i < N; i++)
		put_stat(f, 100, 1000 + i, 5 * SEC + 500 * MS, 0);
	int calls = 0;
	sampler_set_yield(f->s, count_and_wait, &calls, 0);
	tick_ok(f, t, N, 11 * SEC, out);
	assert_int_equal(calls, 2); /* after 256 and 512 targets */
	assert_int_equal(out[0].window_ns, SEC);
	assert_true(out[N - 1].window_ns >= SEC + 10 * MS);
	for (int i = 0; i < N; i++)
		assert_state(&out[i], SAMPLE_VALID);
	/* cleared: no call */
	sampler_set_yield(f->s, NULL, NULL, 0);
	calls = 0;
	tick_ok(f, t, N, 12 * SEC, out);
	assert_int_equal(calls, 0);
}

/* A tick too soon keeps the old baseline; a late one after a gap resets. */
static void test_sampler_windows(void **state)
{
	struct fake *f = *state;
	const struct sample_target t[] = { { "db", 0, 200, 201 } };
	struct sample_vcpu out[1];
	put_stat(f, 200, 201, 0, 0);
	tick_ok(f, t, 1, 100 * SEC, out);
	put_stat(f, 200, 201, 100 * MS, 0);
	tick_ok(f, t, 1, 101 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 10, 1e-9, "usage");

	/* 50 ms later: too short; the baseline stays at 101 s */
	put_stat(f, 200, 201, 140 * MS, 0);
	tick_ok(f, t, 1, 101 * SEC + 50 * MS, out);
	assert_state(&out[0], SAMPLE_SHORT_WINDOW);
	assert_int_equal(out[0].cpu_ns, 140 * MS);
	/* the same time again (dt = 0) */
	tick_ok(f, t, 1, 101 * SEC + 50 * MS, out);
	assert_state(&out[0], SAMPLE_SHORT_WINDOW);
	/* at 102 s: the window is 1 s from the kept baseline (100 ms -> 600 ms) */
	put_stat(f, 200, 201, 600 * MS, 0);
	tick_ok(f, t, 1, 102 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 50, 1e-9, "usage from the kept baseline");
	assert_int_equal(out[0].window_ns, SEC);

	/* the daemon was stopped for 30 s: reset, then normal again */
	put_stat(f, 200, 201, 20 * SEC, 0);
	tick_ok(f, t, 1, 132 * SEC, out);
	assert_state(&out[0], SAMPLE_CLOCK_JUMP);
	put_stat(f, 200, 201, 20 * SEC + 700 * MS, 0);
	tick_ok(f, t, 1, 133 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 70, 1e-9, "usage after the jump");

	/* the clock goes backwards: reset */
	tick_ok(f, t, 1, 130 * SEC, out);
	assert_state(&out[0], SAMPLE_CLOCK_JUMP);
	put_stat(f, 200, 201, 20 * SEC + 800 * MS, 0);
	tick_ok(f, t, 1, 131 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 10, 1e-9, "usage after going back");

	/* counters backwards: reset, then from the new numbers */
	put_stat(f, 200, 201, 1 * MS, 0);
	tick_ok(f, t, 1, 132 * SEC, out);
	assert_state(&out[0], SAMPLE_COUNTER_RESET);
	put_stat(f, 200, 201, 201 * MS, 0);
	tick_ok(f, t, 1, 133 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 20, 1e-9, "usage after the reset");

	/* a longer interval makes a 30 s gap an ordinary window */
	struct error *err = NULL;
	assert_int_equal(sampler_set_interval(f->s, 5 * SEC, &err), 0);
	put_stat(f, 200, 201, 3201 * MS, 0);
	tick_ok(f, t, 1, 163 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_near(out[0].usage_pct, 10, 1e-9, "usage over 30 s");
	assert_int_equal(sampler_set_interval(f->s, 0, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
}

/* Threads that exit: an empty read or a missing file is "gone", the fd is
 * closed, and the thread is picked up again if it comes back. */
static void test_sampler_gone(void **state)
{
	struct fake *f = *state;
	const struct sample_target t[] = {
		{ "vm1", 0, 300, 301 },
		{ "vm1", 1, 300, 302 },
	};
	struct sample_vcpu out[2];
	put_stat(f, 300, 301, 1, 1);
	put_stat(f, 300, 302, 1, 1);
	tick_ok(f, t, 2, SEC, out);
	int fds = count_fds();
	assert_int_equal(sampler_open_fds(f->s), 2);

	/* 302 reads nothing */
	put_text(f, 300, 302, "");
	tick_ok(f, t, 2, 2 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_GONE);
	assert_int_equal(out[1].cpu_ns, 0);
	assert_int_equal(sampler_open_fds(f->s), 1);
	assert_int_equal(sampler_fd(f->s, 300, 302), -1);
	assert_int_equal(count_fds(), fds - 1);
	/* still listed: still known, still gone, no fd */
	rm_stat(f, 300, 302);
	tick_ok(f, t, 2, 3 * SEC, out);
	assert_state(&out[1], SAMPLE_GONE);
	assert_int_equal(sampler_size(f->s), 2);
	assert_int_equal(count_fds(), fds - 1);
	/* the whole process directory is gone */
	_cleanup_free_ char *pdir = xasprintf("%s/proc/300", f->root);
	assert_int_equal(fake_tree_remove(pdir), 0);
	tick_ok(f, t, 2, 4 * SEC, out);
	/* 301's kept fd still reads its (unlinked) file: a fake tree cannot
	 * make a kept fd fail; ESRCH is checked on real threads below */
	assert_state(&out[1], SAMPLE_GONE);

	/* it comes back (same tid, new thread): a new baseline first */
	put_stat(f, 300, 302, 5, 5);
	tick_ok(f, t, 2, 5 * SEC, out);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	assert_int_equal(out[1].cpu_ns, 5);
	assert_int_equal(sampler_open_fds(f->s), 2);
	put_stat(f, 300, 302, 5 + 100 * MS, 5);
	tick_ok(f, t, 2, 6 * SEC, out);
	assert_state(&out[1], SAMPLE_VALID);
	assert_near(out[1].usage_pct, 10, 1e-9, "usage after coming back");
}

/* A target dropped from the list has its fd closed at once. */
static void test_sampler_dropped_target(void **state)
{
	struct fake *f = *state;
	struct sample_target t[] = {
		{ "a", 0, 400, 401 },
		{ "b", 0, 410, 411 },
		{ "c", 0, 420, 421 },
	};
	struct sample_vcpu out[3];
	for (size_t i = 0; i < 3; i++)
		put_stat(f, t[i].pid, t[i].tid, 10 * i, 0);
	int fds0 = count_fds();
	tick_ok(f, t, 3, SEC, out);
	assert_int_equal(count_fds(), fds0 + 3);
	int fd_b = sampler_fd(f->s, 410, 411);
	assert_true(fd_b >= 0);
	assert_true(fcntl(fd_b, F_GETFD) >= 0);
	/* the kept fds are close-on-exec */
	assert_true(fcntl(fd_b, F_GETFD) & FD_CLOEXEC);

	struct sample_target t2[] = { t[0], t[2] };
	tick_ok(f, t2, 2, 2 * SEC, out);
	assert_int_equal(count_fds(), fds0 + 2);
	assert_int_equal(sampler_size(f->s), 2);
	assert_int_equal(sampler_open_fds(f->s), 2);
	assert_int_equal(sampler_fd(f->s, 410, 411), -1);
	assert_int_equal(fcntl(fd_b, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	/* the others kept their baselines through the change */
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_VALID);
	assert_int_equal(out[1].cpu_ns, 20);

	/* b again: new baseline */
	tick_ok(f, t, 3, 3 * SEC, out);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	assert_state(&out[2], SAMPLE_VALID);
	assert_int_equal(count_fds(), fds0 + 3);

	/* an empty list closes everything */
	tick_ok(f, NULL, 0, 4 * SEC, NULL);
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(sampler_size(f->s), 0);
	assert_int_equal(sampler_open_fds(f->s), 0);

	/* and freeing the sampler closes what it holds */
	tick_ok(f, t, 3, 5 * SEC, out);
	assert_int_equal(count_fds(), fds0 + 3);
	sampler_free(f->s);
	f->s = NULL;
	assert_int_equal(count_fds(), fds0);
	struct error *err = NULL;
	assert_int_equal(sampler_new(f->root, SEC, &f->s, &err), 0);
}

/* Lists that change order, grow, shrink and repeat entries: every target
 * still gets its own thread's numbers, and the fds held are exactly the
 * distinct threads listed. */
static void test_sampler_shuffled_lists(void **state)
{
	struct fake *f = *state;
	enum { NT = 300, ROUNDS = 12 };
	/* a fixed pseudo-random sequence, so that a failure repeats */
	unsigned long long rng = 0x2545f4914f6cdd1dULL;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
	struct sample_target all[NT];
	for (int i = 0; i < NT; i++)
		all[i] = (struct sample_target){ "vm", (unsigned)i, 1000 + i / 4, 5000 + i * 7 };
	struct sample_target list[NT + 40];
	struct sample_vcpu out[NT + 40];
	for (int r = 1; r <= ROUNDS; r++) {
		for (int i = 0; i < NT; i++)
			put_stat(f, all[i].pid, all[i].tid, (uint64_t)r * 1000000 + i,
				 (uint64_t)r * 10 + i);
		/* round 3 and 7: the same list as before (the fast path) */
		size_t n = 0;
		if (r == 3 || r == 7) {
			n = 0;
			for (int i = 0; i < NT; i += 2)
				list[n++] = all[i];
		} else {
			for (int i = 0; i < NT; i++)
				if (NEXT() % 3)
					list[n++] = all[i];
			for (size_t i = n; i > 1; i--) { /* shuffle */
				size_t j = NEXT() % i;
				struct sample_target tmp = list[i - 1];
				list[i - 1] = list[j];
				list[j] = tmp;
			}
			for (int k = 0; k < 40 && n; k++) /* duplicates */
				list[n + (size_t)k] = list[NEXT() % n];
			n += 40;
		}
		if (r == 2) { /* the list of rounds 3 and 7, once before */
			n = 0;
			for (int i = 0; i < NT; i += 2)
				list[n++] = all[i];
		}
		tick_ok(f, list, n, r * SEC, out);
		size_t distinct = 0;
		for (size_t i = 0; i < n; i++) {
			int k = (int)list[i].vcpu;
			if (out[i].cpu_ns != (uint64_t)r * 1000000 + (uint64_t)k ||
			    out[i].run_delay_ns != (uint64_t)r * 10 + (uint64_t)k)
				fail_msg("round %d, target %zu (thread %d): %llu %llu", r, i, k,
					 (unsigned long long)out[i].cpu_ns,
					 (unsigned long long)out[i].run_delay_ns);
			bool first = true;
			for (size_t j = 0; j < i; j++)
				if (list[j].tid == list[i].tid)
					first = false;
			distinct += first;
		}
		assert_int_equal(sampler_size(f->s), distinct);
		assert_int_equal(sampler_open_fds(f->s), distinct);
		for (int i = 0; i < NT; i++) {
			bool listed = false;
			for (size_t j = 0; j < n; j++)
				listed |= list[j].tid == all[i].tid;
			if (listed != (sampler_fd(f->s, all[i].pid, all[i].tid) >= 0))
				fail_msg("round %d: thread %d listed %d, fd %d", r, i, listed,
					 sampler_fd(f->s, all[i].pid, all[i].tid));
		}
		/* round 3 follows round 2's list: every thread has a baseline */
		if (r == 3)
			for (size_t i = 0; i < n; i++)
				assert_state(&out[i], SAMPLE_VALID);
	}
#undef NEXT
}

/* Bad files and bad targets: those targets are errors, the others are
 * still read, and the tick says what failed. */
static void test_sampler_errors(void **state)
{
	struct fake *f = *state;
	const struct sample_target t[] = {
		{ "good", 0, 500, 501 },
		{ "bad", 3, 510, 511 },
		{ NULL, 4, 0, 12 },
		{ "good", 1, 500, 502 },
	};
	struct sample_vcpu out[4];
	put_stat(f, 500, 501, 1, 1);
	put_text(f, 510, 511, "12 junk\n");
	put_stat(f, 500, 502, 1, 1);
	struct error *err = NULL;
	assert_int_equal(sampler_tick(f->s, t, 4, SEC, out, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EINVAL);
	assert_non_null(strstr(err->msg, "vCPU 3 of VM bad"));
	assert_non_null(strstr(err->msg, "malformed schedstat"));
	assert_non_null(strstr(err->msg, "and 1 more"));
	error_free(&err);
	assert_state(&out[0], SAMPLE_NO_BASELINE);
	assert_state(&out[1], SAMPLE_ERROR);
	assert_state(&out[2], SAMPLE_ERROR);
	assert_state(&out[3], SAMPLE_NO_BASELINE);

	/* fixed: the bad one gets a baseline, the good ones report */
	put_stat(f, 510, 511, 7, 7);
	assert_int_equal(sampler_tick(f->s, t, 2, 2 * SEC, out, &err), 0);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	/* broken again: error, and no stale baseline survives it */
	put_text(f, 510, 511, "1 2 3");
	assert_int_equal(sampler_tick(f->s, t, 2, 3 * SEC, out, &err), -1);
	assert_non_null(strstr(err->msg, "truncated"));
	assert_null(strstr(err->msg, "more"));
	error_free(&err);
	put_stat(f, 510, 511, 8, 8);
	assert_int_equal(sampler_tick(f->s, t, 2, 4 * SEC, out, &err), 0);
	assert_state(&out[1], SAMPLE_NO_BASELINE);

	/* unreadable file (a directory where the file should be) */
	_cleanup_free_ char *dir = xasprintf("%s/proc/520/task/521/schedstat", f->root);
	mkdir_p(dir);
	const struct sample_target td[] = { { "dir", 0, 520, 521 } };
	assert_int_equal(sampler_tick(f->s, td, 1, 5 * SEC, out, &err), -1);
	assert_int_equal(err->code, EISDIR);
	assert_non_null(strstr(err->msg, "vCPU 0 of VM dir"));
	assert_int_equal(out[0].state, SAMPLE_ERROR);
	error_free(&err);
	assert_int_equal(sampler_open_fds(f->s), 0);

	/* bad arguments: nothing done */
	assert_int_equal(sampler_tick(f->s, t, 2, SEC, NULL, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	struct sampler *s2 = NULL;
	assert_int_equal(sampler_new(f->root, 0, &s2, &err), -1);
	assert_int_equal(err->code, EINVAL);
	assert_null(s2);
	error_free(&err);
	/* a tick with no err pointer still fails */
	assert_int_equal(sampler_tick(f->s, td, 1, 6 * SEC, out, NULL), -1);
}

/* The open file limit: raised in sampler_new(); a target count above it is
 * refused up front; running out in the middle of a tick fails clearly. */
static void test_sampler_fd_limit(void **state)
{
	struct fake *f = *state;
	struct rlimit orig;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &orig), 0);
	/* sampler_new raised the soft limit to the hard one */
	assert_true(orig.rlim_cur == orig.rlim_max);

	enum { N = 100 };
	struct sample_target t[N];
	struct sample_vcpu out[N];
	for (int i = 0; i < N; i++) {
		t[i] = (struct sample_target){ "many", (unsigned)i, 600, 601 + i };
		put_stat(f, 600, 601 + i, 1, 1);
	}
	assert_true(count_fds() < 50);

	/* N + reserve > limit: refused, nothing opened, out untouched */
	struct rlimit low = { (rlim_t)(N + SAMPLER_FD_RESERVE - 1), orig.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	memset(out, 0x5a, sizeof(out));
	struct error *err = NULL;
	int rc = sampler_tick(f->s, t, N, SEC, out, &err);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &orig), 0);
	assert_int_equal(rc, -1);
	assert_int_equal(err->code, EMFILE);
	assert_non_null(strstr(err->msg, "cannot sample 100 threads: open file limit 163"));
	assert_int_equal(sampler_open_fds(f->s), 0);
	assert_int_equal(sampler_size(f->s), 0);
	assert_int_equal(((unsigned char *)out)[0], 0x5a);
	error_free(&err);

	/* enough by the count, but the fd table fills up mid-tick: 30 free */
	struct rlimit mid = { (rlim_t)(N + SAMPLER_FD_RESERVE + 10), orig.rlim_max };
	int fillers[256];
	int nfill = 0;
	while (count_fds() < (int)mid.rlim_cur - 30) {
		assert_true(nfill < (int)ARRAY_SIZE(fillers));
		fillers[nfill] = dup(0);
		assert_true(fillers[nfill] >= 0);
		nfill++;
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &mid), 0);
	rc = sampler_tick(f->s, t, N, 2 * SEC, out, &err);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &orig), 0);
	for (int i = 0; i < nfill; i++)
		close(fillers[i]);
	assert_int_equal(rc, -1);
	assert_int_equal(err->code, EMFILE);
	assert_non_null(strstr(err->msg, "cannot sample 100 threads: open file limit 174"));
	/* about 30 opened (what the table had room for), the rest failed */
	size_t opened = sampler_open_fds(f->s);
	assert_true(opened >= 25 && opened <= 35);
	size_t n_err = 0;
	for (int i = 0; i < N; i++) {
		n_err += out[i].state == SAMPLE_ERROR;
		assert_true(out[i].state == SAMPLE_ERROR || out[i].state == SAMPLE_NO_BASELINE);
	}
	assert_int_equal(n_err, N - opened);
	char more[64];
	snprintf(more, sizeof(more), "(and %zu more threads)", n_err - 1);
	if (!strstr(err->msg, more))
		fail_msg("%s", err->msg);
	error_free(&err);

	/* room again: every thread is read, those opened before have baselines */
	assert_int_equal(sampler_tick(f->s, t, N, 3 * SEC, out, &err), 0);
	assert_int_equal(sampler_open_fds(f->s), N);
	size_t n_valid = 0;
	for (int i = 0; i < N; i++)
		n_valid += out[i].valid;
	assert_int_equal(n_valid, opened);
}

/* --- real threads of this process --------------------------------------------- */

struct real {
	pid_t tid;
	volatile int stop;
	int pipe_r;
};

static void *spinner(void *arg)
{
	struct real *r = arg;
	__atomic_store_n(&r->tid, gettid(), __ATOMIC_RELEASE);
	volatile unsigned long x = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		x++;
	return NULL;
}

static void *sleeper(void *arg)
{
	struct real *r = arg;
	__atomic_store_n(&r->tid, gettid(), __ATOMIC_RELEASE);
	char c;
	while (read(r->pipe_r, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void wait_tid(struct real *r)
{
	for (int i = 0; i < 5000 && !__atomic_load_n(&r->tid, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	assert_true(r->tid > 0);
}

/* A spinning and a sleeping thread of this process, as two vCPUs. */
struct pair {
	int p[2];
	struct real spin, sleep_;
	pthread_t ts, tl;
	struct sample_target t[2];
};

static void pair_start(struct pair *x)
{
	memset(x, 0, sizeof(*x));
	assert_int_equal(pipe(x->p), 0);
	x->sleep_.pipe_r = x->p[0];
	assert_int_equal(pthread_create(&x->ts, NULL, spinner, &x->spin), 0);
	assert_int_equal(pthread_create(&x->tl, NULL, sleeper, &x->sleep_), 0);
	wait_tid(&x->spin);
	wait_tid(&x->sleep_);
	x->t[0] = (struct sample_target){ "real", 0, getpid(), x->spin.tid };
	x->t[1] = (struct sample_target){ "real", 1, getpid(), x->sleep_.tid };
}

/* Two ticks 300 ms apart: first no baseline, then the spinner ran or
 * waited all the time (other load on this 2-CPU host can take its CPU,
 * which is steal) and the sleeper did neither. */
static void pair_two_ticks(struct pair *x, struct sampler *s, struct sample_vcpu *out)
{
	struct error *err = NULL;
	assert_int_equal(sampler_tick(s, x->t, 2, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_NO_BASELINE);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	struct timespec ts300 = { 0, 300 * MS };
	while (nanosleep(&ts300, &ts300) < 0 && errno == EINTR)
		;
	assert_int_equal(sampler_tick(s, x->t, 2, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_VALID);
	print_message("%s: spinner usage %.1f%% steal %.1f%%; sleeper usage %.1f%% steal %.1f%% "
		      "(window %.0f ms)\n", sampler_backend(s), out[0].usage_pct, out[0].steal_pct,
		      out[1].usage_pct, out[1].steal_pct, out[0].window_ns / 1e6);
	if (out[0].usage_pct < 50 || out[0].usage_pct + out[0].steal_pct < 85)
		fail_msg("spinner: usage %.1f steal %.1f", out[0].usage_pct, out[0].steal_pct);
	if (out[1].usage_pct > 5 || out[1].steal_pct > 5)
		fail_msg("sleeper: usage %.1f steal %.1f", out[1].usage_pct, out[1].steal_pct);
}

/* The spinner exits: GONE within a second of ticks; the sleeper is not. */
static void pair_spinner_exits(struct pair *x, struct sampler *s, struct sample_vcpu *out)
{
	struct error *err = NULL;
	__atomic_store_n(&x->spin.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(x->ts, NULL), 0);
	bool gone = false;
	for (int i = 0; i < 200 && !gone; i++) {
		assert_int_equal(sampler_tick(s, x->t, 2, now_mono_ns(), out, &err), 0);
		gone = out[0].gone;
		if (!gone)
			usleep(5000);
	}
	assert_true(gone);
	assert_state(&out[0], SAMPLE_GONE);
	assert_false(out[1].gone);
}

static void pair_stop(struct pair *x)
{
	assert_int_equal(write(x->p[1], "x", 1), 1);
	assert_int_equal(pthread_join(x->tl, NULL), 0);
	close(x->p[0]);
	close(x->p[1]);
}

static void test_sampler_real_threads(void **state)
{
	(void)state;
	struct pair x;
	pair_start(&x);
	_cleanup_(sampler_freep) struct sampler *s = NULL;
	struct error *err = NULL;
	assert_int_equal(sampler_new("/", 300 * MS, &s, &err), 0);
	struct sample_vcpu out[2];
	pair_two_ticks(&x, s, out);
	/* the spinner exits: its kept fd reads ESRCH once it is reaped */
	assert_true(sampler_fd(s, getpid(), x.spin.tid) >= 0);
	pair_spinner_exits(&x, s, out);
	assert_int_equal(sampler_fd(s, getpid(), x.spin.tid), -1);
	assert_int_equal(sampler_open_fds(s), 1);
	pair_stop(&x);
}

/* What /proc says of a thread: its run time, and its delay in *delay. */
static uint64_t schedstat_cpu(pid_t pid, pid_t tid, uint64_t *delay)
{
	_cleanup_free_ char *path = xasprintf("/proc/%d/task/%d/schedstat", pid, tid);
	char text[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	uint64_t cpu = 0, d = 0;
	assert_int_equal(schedstat_parse(text, (size_t)n, &cpu, &d, NULL), 0);
	if (delay)
		*delay = d;
	return cpu;
}

/* The BPF path (sampler_use_bpf) on the same real threads: readings that
 * agree with schedstat, a spinner's usage, an exited thread GONE at once,
 * no fd kept per thread (one process watched), and the fake proc refused.
 * Needs root (CAP_BPF, CAP_PERFMON), kernel BTF and Linux 6.1+: skipped,
 * saying why, without them. */
static void test_sampler_bpf(void **state)
{
	(void)state;
	_cleanup_(sampler_freep) struct sampler *s = NULL;
	struct error *err = NULL;
	assert_int_equal(sampler_new("/", 300 * MS, &s, &err), 0);
	if (sampler_use_bpf(s, &err) < 0) {
		print_message("BPF sampler not usable here: %s\n", err->msg);
		assert_int_equal(err->code, ENOTSUP);
		error_free(&err);
		skip();
	}
	assert_string_equal(sampler_backend(s), "bpf");
	struct pair x;
	pair_start(&x);
	struct sample_vcpu out[2];
	pair_two_ticks(&x, s, out);
	assert_int_equal(sampler_open_fds(s), 1); /* the process's link, no fd per thread */
	assert_int_equal(sampler_fd(s, getpid(), x.spin.tid), -1);
	/* the sleeper does not run: what BPF read is what schedstat says */
	uint64_t delay = 0;
	assert_int_equal(out[1].cpu_ns, schedstat_cpu(getpid(), x.sleep_.tid, &delay));
	assert_int_equal(out[1].run_delay_ns, delay);
	/* the process's thread count as the last tick read it */
	size_t nt = 0;
	uint64_t sum = 0;
	assert_int_equal(sampler_process_threads(s, getpid(), &nt, &sum), 0);
	assert_true(nt >= 3 && sum != 0);
	/* gone: the spinner exits (no longer a task of the process) */
	pair_spinner_exits(&x, s, out);
	/* a tid that is not a thread of that process is gone too */
	const struct sample_target other = { "x", 0, getpid(), getppid() };
	assert_int_equal(sampler_tick(s, &other, 1, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_GONE);
	/* a process no longer listed loses its link */
	assert_int_equal(sampler_tick(s, NULL, 0, now_mono_ns(), NULL, &err), 0);
	assert_int_equal(sampler_open_fds(s), 0);
	assert_int_equal(sampler_process_threads(s, getpid(), &nt, &sum), -1);
	pair_stop(&x);
}

/* A child process blocked on a pipe: a VM process of one idle thread. */
static pid_t idle_child(int *wr)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		close(p[1]);
		char ch;
		while (read(p[0], &ch, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	*wr = p[1];
	return c;
}

/* The BPF path over several processes: one walk of every task a tick,
 * each process given its own threads; a process first listed after the
 * tick's walk is read on its own that tick and by the walks after; a
 * process that exits is GONE; one no longer listed is dropped. */
static void test_sampler_bpf_processes(void **state)
{
	(void)state;
	_cleanup_(sampler_freep) struct sampler *s = NULL;
	struct error *err = NULL;
	assert_int_equal(sampler_new("/", 20 * MS, &s, &err), 0);
	if (sampler_use_bpf(s, &err) < 0) {
		print_message("BPF sampler not usable here: %s\n", err->msg);
		error_free(&err);
		skip();
	}
	int w1, w2;
	pid_t c1 = idle_child(&w1), c2 = idle_child(&w2);
	struct sample_target t[3] = {
		{ "one", 0, c1, c1 },
		{ "two", 0, c2, c2 },
		{ "self", 0, getpid(), gettid() },
	};
	struct sample_vcpu out[3];
	size_t nt;
	uint64_t sum;
	/* tick 1: c1 and this process (the walk at c1's read) */
	const struct sample_target t1[2] = { t[0], t[2] };
	assert_int_equal(sampler_tick(s, t1, 2, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_NO_BASELINE);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	assert_int_equal(sampler_open_fds(s), 2);
	assert_int_equal(sampler_process_threads(s, c1, &nt, &sum), 0);
	assert_int_equal(nt, 1);
	/* tick 2: c2 comes after the walk (at c1's read) and is read alone */
	usleep(100 * 1000);
	assert_int_equal(sampler_tick(s, t, 3, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_VALID);
	assert_state(&out[1], SAMPLE_NO_BASELINE);
	assert_state(&out[2], SAMPLE_VALID);
	assert_int_equal(out[1].cpu_ns, schedstat_cpu(c2, c2, NULL));
	assert_int_equal(sampler_process_threads(s, c2, &nt, &sum), 0);
	assert_int_equal(nt, 1);
	assert_int_equal(sampler_open_fds(s), 3);
	/* tick 3: all three from the walk, each its own (idle: as /proc says) */
	usleep(100 * 1000);
	assert_int_equal(sampler_tick(s, t, 3, now_mono_ns(), out, &err), 0);
	for (int i = 0; i < 3; i++)
		assert_state(&out[i], SAMPLE_VALID);
	assert_int_equal(out[0].cpu_ns, schedstat_cpu(c1, c1, NULL));
	assert_int_equal(out[1].cpu_ns, schedstat_cpu(c2, c2, NULL));
	/* a tid of another process is not found in this one's slice */
	const struct sample_target wrong = { "wrong", 0, c1, c2 };
	assert_int_equal(sampler_tick(s, &wrong, 1, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_GONE);
	/* c1 exits: GONE at the next tick, c2 still read */
	kill(c1, SIGKILL); /* (c2 holds w1 too: a close would not end c1) */
	assert_int_equal(waitpid(c1, NULL, 0), c1);
	close(w1);
	assert_int_equal(sampler_tick(s, t, 3, now_mono_ns(), out, &err), 0);
	assert_state(&out[0], SAMPLE_GONE);
	assert_int_equal(sampler_process_threads(s, c1, &nt, &sum), 0);
	assert_int_equal(nt, 0);
	assert_false(out[1].gone);
	assert_false(out[2].gone);
	/* no longer listed: dropped (from the map: none of it is read again) */
	assert_int_equal(sampler_tick(s, &t[1], 1, now_mono_ns(), out, &err), 0);
	assert_int_equal(sampler_open_fds(s), 1);
	assert_int_equal(sampler_process_threads(s, getpid(), &nt, &sum), -1);
	close(w2);
	kill(c2, SIGKILL);
	assert_int_equal(waitpid(c2, NULL, 0), c2);
}

/* A fake proc (tests, --host-root fixtures) is not the kernel's: no BPF. */
static void test_sampler_bpf_fake_proc(void **state)
{
	struct fake *f = *state;
	_cleanup_(sampler_freep) struct sampler *s = NULL;
	struct error *err = NULL;
	assert_int_equal(sampler_new(f->root, 100 * MS, &s, &err), 0);
	assert_int_equal(sampler_use_bpf(s, &err), -1);
	assert_int_equal(err->code, ENOTSUP);
	assert_non_null(strstr(err->msg, "is not this kernel's proc"));
	error_free(&err);
	assert_string_equal(sampler_backend(s), "pread");
}

/* The kernel behaviour the sampler's exit detection relies on, checked
 * directly: once a thread is reaped, pread on an fd kept open on its
 * schedstat fails with ESRCH (the fd stays bound to the dead thread). */
static void *blocked(void *arg)
{
	struct real *r = arg;
	__atomic_store_n(&r->tid, gettid(), __ATOMIC_RELEASE);
	char c;
	while (read(r->pipe_r, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void test_kernel_esrch(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct real r = { .pipe_r = p[0] };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocked, &r), 0);
	wait_tid(&r);
	_cleanup_free_ char *path = xasprintf("/proc/%d/task/%d/schedstat", getpid(), r.tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char buf[128];
	assert_true(pread(fd, buf, sizeof(buf), 0) > 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	ssize_t n = 1;
	for (int i = 0; i < 200 && n > 0; i++) {
		n = pread(fd, buf, sizeof(buf), 0);
		if (n > 0)
			usleep(5000);
	}
	assert_int_equal(n, -1);
	assert_int_equal(errno, ESRCH);
	close(fd);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_derive_valid),
		cmocka_unit_test(test_derive_no_baseline),
		cmocka_unit_test(test_derive_backwards),
		cmocka_unit_test(test_derive_short_window),
		cmocka_unit_test(test_derive_clock_jump),
		cmocka_unit_test(test_derive_clamps),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_aggregates),
		cmocka_unit_test(test_throttled_frac),
		cmocka_unit_test_setup_teardown(test_sampler_two_ticks, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_windows, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_yield, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_gone, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_dropped_target, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_bpf_fake_proc, fake_setup,
						fake_teardown),
		cmocka_unit_test(test_sampler_bpf),
		cmocka_unit_test(test_sampler_bpf_processes),
		cmocka_unit_test_setup_teardown(test_sampler_shuffled_lists, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_errors, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_sampler_fd_limit, fake_setup, fake_teardown),
		cmocka_unit_test(test_sampler_real_threads),
		cmocka_unit_test(test_kernel_esrch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
