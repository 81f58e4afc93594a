/* test_common.c - the common layer: errors, names that become paths, path
 * joining, strict number and size parsing, the tenant model's rules, the
 * /proc/PID/stat parser (procfs.h). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "vcpud/error.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/procfs.h"
#include "vcpud/prom.h"
#include "vcpud/tenant.h"
#include "vcpud/util.h"

static void test_error_set_wrap(void **state)
{
	(void)state;
	struct error *err = NULL;
	assert_int_equal(error_set(&err, EINVAL, "bad %s", "thing"), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EINVAL);
	assert_string_equal(err->msg, "bad thing");
	/* a second set does not overwrite the first error */
	error_set(&err, ENOENT, "other");
	assert_string_equal(err->msg, "bad thing");
	error_wrap(&err, "tenant %s", "acme");
	assert_string_equal(err->msg, "tenant acme: bad thing");
	assert_int_equal(error_code(err), EINVAL);
	error_free(&err);
	assert_null(err);
	assert_int_equal(error_code(NULL), 0);
	/* NULL err is allowed everywhere */
	assert_int_equal(error_set(NULL, EINVAL, "x"), -1);
	assert_int_equal(error_wrap(NULL, "x"), -1);
	error_set_errno(&err, ENOENT, "cannot open %s", "f");
	assert_string_equal(err->msg, "cannot open f: No such file or directory");
	error_free(&err);
}

static void test_name_valid(void **state)
{
	(void)state;
	const char *good[] = { "a", "acme", "A-Z_0.9", "x.y", "...", "-", "a..b",
			       "0123456789012345678901234567890123456789012345678901234567890123" };
	const char *bad[] = { "", ".", "..", "../x", "a/b", "/", "a b", "a\nb", "é",
			      "acme;rm", "tenant\t", "x/..",
			      "01234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(name_valid(good[i]));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(name_valid(bad[i]));
	assert_false(name_valid(NULL));
	struct error *err = NULL;
	assert_int_equal(name_check("tenant name", "../x", &err), -1);
	assert_int_equal(err->code, EINVAL);
	assert_non_null(strstr(err->msg, "invalid tenant name '../x'"));
	error_free(&err);
	assert_int_equal(name_check("tenant name", "", &err), -1);
	assert_string_equal(err->msg, "tenant name is empty");
	error_free(&err);
}

static void test_path_join(void **state)
{
	(void)state;
	char *p = path_join("/", "proc", "1", "task", NULL);
	assert_string_equal(p, "/proc/1/task");
	free(p);
	p = path_join("/tmp/root/", "/sys/fs/cgroup/", "vcpud.slice", NULL);
	assert_string_equal(p, "/tmp/root/sys/fs/cgroup/vcpud.slice");
	free(p);
	p = path_join("rel", "", "x", NULL);
	assert_string_equal(p, "rel/x");
	free(p);
	p = path_join("/", NULL);
	assert_string_equal(p, "/");
	free(p);
	char longc[300];
	memset(longc, 'a', sizeof(longc) - 1);
	longc[299] = '\0';
	p = path_join("/r", longc, longc, NULL);
	assert_int_equal(strlen(p), 2 + 1 + 299 + 1 + 299);
	free(p);
}

static void test_parse_numbers(void **state)
{
	(void)state;
	uint64_t u;
	int64_t i;
	double d;
	struct error *err = NULL;
	assert_int_equal(parse_u64("42", 0, 100, &u, NULL), 0);
	assert_int_equal(u, 42);
	const char *bad_u[] = { "", "-1", "+1", " 1", "1 ", "1x", "0x10", "abc" };
	for (size_t k = 0; k < ARRAY_SIZE(bad_u); k++) {
		assert_int_equal(parse_u64(bad_u[k], 0, 100, &u, &err), -1);
		assert_int_equal(err->code, EINVAL);
		error_free(&err);
	}
	assert_int_equal(parse_u64("101", 0, 100, &u, &err), -1);
	assert_int_equal(err->code, ERANGE);
	error_free(&err);
	assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &u, &err), -1);
	assert_int_equal(err->code, ERANGE);
	error_free(&err);
	assert_int_equal(parse_i64("-5", -10, 10, &i, NULL), 0);
	assert_int_equal(i, -5);
	assert_int_equal(parse_i64("-11", -10, 10, &i, NULL), -1);
	assert_int_equal(parse_i64("--1", -10, 10, &i, NULL), -1);
	assert_int_equal(parse_double("2.5", 0.01, 10, &d, NULL), 0);
	assert_true(d == 2.5);
	assert_int_equal(parse_double(".5", 0, 1, &d, NULL), 0);
	assert_int_equal(parse_double("nan", 0, 10, &d, NULL), -1);
	assert_int_equal(parse_double("inf", 0, 10, &d, NULL), -1);
	assert_int_equal(parse_double("1e999", 0, 1e300, &d, NULL), -1);
	assert_int_equal(parse_double("-1", 0, 10, &d, NULL), -1);
	assert_int_equal(parse_double("2.5x", 0, 10, &d, NULL), -1);
}

static void test_parse_size(void **state)
{
	(void)state;
	struct { const char *s; int64_t v; } ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "1K", 1024 }, { "1k", 1024 },
		{ "512M", 512LL << 20 }, { "2G", 2LL << 30 }, { "1T", 1LL << 40 },
		{ "4GiB", 4LL << 30 }, { "4GB", 4LL << 30 }, { "100B", 100 },
	};
	for (size_t k = 0; k < ARRAY_SIZE(ok); k++) {
		int64_t v = -1;
		assert_int_equal(parse_size(ok[k].s, &v, NULL), 0);
		assert_int_equal(v, ok[k].v);
	}
	const char *bad[] = { "", "12Q", "G", "-1G", "1.5G", "1 G", "1GG", "1Gx", "0x10" };
	struct error *err = NULL;
	for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
		int64_t v;
		assert_int_equal(parse_size(bad[k], &v, &err), -1);
		assert_int_equal(err->code, EINVAL);
		error_free(&err);
	}
	int64_t v;
	assert_int_equal(parse_size("9999999999T", &v, &err), -1);
	assert_int_equal(err->code, ERANGE);
	error_free(&err);
	assert_int_equal(parse_size("12Q", &v, &err), -1);
	assert_non_null(strstr(err->msg, "12Q"));
	error_free(&err);

	char *s = format_size(512LL << 20);
	assert_string_equal(s, "512M");
	free(s);
	s = format_size(1536);
	assert_string_equal(s, "1536");
	free(s);
	s = format_size(3LL << 40);
	assert_string_equal(s, "3T");
	free(s);
	s = format_size(1024LL << 40);
	assert_string_equal(s, "1024T");
	free(s);
}

static void test_tenant_rules(void **state)
{
	(void)state;
	struct tenant t;
	tenant_init(&t);
	strcpy(t.name, "acme");
	t.vcpus = 8;
	assert_int_equal(t.weight, 100);
	assert_int_equal(t.class_, TENANT_CLASS_BURSTABLE);
	assert_int_equal(tenant_validate(&t, NULL), 0);

	struct error *err = NULL;
	t.weight = 0;
	assert_int_equal(tenant_validate(&t, &err), -1);
	assert_non_null(strstr(err->msg, "weight 0 is out of range (1..10000)"));
	error_free(&err);
	t.weight = 10001;
	assert_int_equal(tenant_validate(&t, NULL), -1);
	t.weight = 10000;
	assert_int_equal(tenant_validate(&t, NULL), 0);

	struct tenant_patch p = { .set_cpu_max = true, .cpu_max_set = true, .cpu_max_cores = 0.001 };
	assert_int_equal(tenant_apply_patch(&t, &p, &err), -1);
	assert_false(t.cpu_max_set); /* unchanged on failure */
	error_free(&err);
	p.cpu_max_cores = 2.5;
	p.set_memory = true;
	p.memory_set = true;
	p.memory_bytes = 1LL << 30;
	assert_int_equal(tenant_apply_patch(&t, &p, NULL), 0);
	assert_true(t.cpu_max_set);
	assert_true(t.cpu_max_cores == 2.5);
	assert_int_equal(t.memory_bytes, 1LL << 30);
	struct tenant_patch clear = { .set_cpu_max = true, .set_memory = true };
	assert_int_equal(tenant_apply_patch(&t, &clear, NULL), 0);
	assert_false(t.cpu_max_set);
	assert_false(t.memory_set);

	enum tenant_class c;
	assert_int_equal(tenant_class_from_string("best-effort", &c, NULL), 0);
	assert_int_equal(c, TENANT_CLASS_BEST_EFFORT);
	assert_string_equal(tenant_class_to_string(c), "best-effort");
	assert_int_equal(tenant_class_from_string("besteffort", &c, NULL), -1);
	assert_int_equal(tenant_class_from_string(NULL, &c, NULL), -1);
	assert_string_equal(tenant_class_to_string(TENANT_CLASS_LAST), "unknown");

	strcpy(t.name, "..");
	assert_int_equal(tenant_validate(&t, NULL), -1);
}

/* --- proc_stat_parse --------------------------------------------------------- */

static void test_stat_parse(void **state)
{
	(void)state;
	struct proc_stat st;
	struct error *err = NULL;
	const char *line = "4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 1020 0 3 0 "
			   "15 9 0 0 20 0 11 0 987654321 2197254144 9876 18446744073709551615\n";
	assert_int_equal(proc_stat_parse(line, &st, &err), 0);
	assert_null(err);
	assert_int_equal(st.pid, 4242);
	assert_string_equal(st.comm, "qemu-system-x86");
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.flags, 4194560u);
	assert_int_equal(st.num_threads, 11);
	assert_true(st.start_time == 987654321ull);

	/* a comm with spaces, parentheses and a ") " inside: it ends at the
	 * last ')' */
	const char *odd = "7 (a) b (c) ) Z 1 7 7 0 -1 2097152 0 0 0 0 0 0 0 0 20 0 1 0 "
			  "18446744073709551615 0 0\n";
	assert_int_equal(proc_stat_parse(odd, &st, &err), 0);
	assert_string_equal(st.comm, "a) b (c) ");
	assert_int_equal(st.state, 'Z');
	assert_true(st.flags & PROC_PF_KTHREAD);
	assert_int_equal(st.num_threads, 1);
	assert_true(st.start_time == UINT64_MAX);

	/* a long kernel worker name is cut to 15 characters */
	const char *kw = "99 (kworker/u8:2-events_unbound) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 "
			 "0 20 0 1 0 55 0 0\n";
	assert_int_equal(proc_stat_parse(kw, &st, &err), 0);
	assert_string_equal(st.comm, "kworker/u8:2-ev");
	assert_true(st.start_time == 55);

	/* the real thing */
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_int_equal(proc_stat_parse(buf, &st, &err), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.num_threads, 1);
	assert_true(st.start_time > 0);

	const char *bad[] = {
		"",
		"4242",
		"4242 qemu S 1",
		"4242 (qemu S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"(qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"x (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"0 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"-5 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"99999999999 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"4242(qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"4242 (qemu)S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"4242 (qemu) SS 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0\n",   /* no field 22 */
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x\n",
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 -1 0 5\n", /* threads */
		"4242 (qemu) S 1 4242 4242 0 -1 -1 0 0 0 0 0 0 0 0 20 0 1 0 5\n", /* flags */
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5x\n",
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 "
		"18446744073709551616\n",
		"4242 (qemu) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 4294967296 0 5\n",
		"4242 (qemu) S 1 4242  4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&st, 0x5a, sizeof(st));
		struct proc_stat before = st;
		if (proc_stat_parse(bad[i], &st, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err->code, EINVAL);
		assert_non_null(strstr(err->msg, "malformed /proc stat"));
		error_free(&err);
		assert_memory_equal(&st, &before, sizeof(st));
	}
	assert_int_equal(proc_stat_parse(NULL, &st, NULL), -1);
}

struct named {
	int value;
	char name[16];
};

static void test_name_index(void **state)
{
	(void)state;
	struct name_index ix;
	name_index_init(&ix, sizeof(struct named), offsetof(struct named, name));
	assert_int_equal(name_index_find(&ix, NULL, "x"), SIZE_MAX); /* empty */
	struct named *v = NULL;
	size_t n = 0;
	for (int i = 0; i < 1000; i++) { /* appended one by one, growing */
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].value = i;
		snprintf(v[n].name, sizeof(v[n].name), "vm-%d", i);
		name_index_add(&ix, v, n++);
	}
	for (int i = 0; i < 1000; i += 37) {
		char nm[16];
		snprintf(nm, sizeof(nm), "vm-%d", i);
		size_t k = name_index_find(&ix, v, nm);
		assert_int_not_equal(k, SIZE_MAX);
		assert_int_equal(v[k].value, i);
	}
	assert_int_equal(name_index_find(&ix, v, "vm-1000"), SIZE_MAX);
	assert_int_equal(name_index_find(&ix, v, NULL), SIZE_MAX);
	/* compacted (every other one dropped) and rebuilt */
	size_t j = 0;
	for (size_t i = 0; i < n; i += 2)
		v[j++] = v[i];
	n = j;
	name_index_build(&ix, v, n);
	assert_int_equal(name_index_find(&ix, v, "vm-1"), SIZE_MAX);
	assert_int_equal(v[name_index_find(&ix, v, "vm-998")].value, 998);
	name_index_clear(&ix);
	assert_int_equal(name_index_find(&ix, v, "vm-998"), SIZE_MAX);
	free(v);
}

/* One log line is one write(): stderr on a SOCK_SEQPACKET socket keeps
 * each write() a record of its own. */
static void test_log_one_write_per_line(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(sv[0], 2), 2);
	enum log_level lvl = log_get_level();
	log_set_level(LOG_LVL_INFO);
	char big[2001];
	memset(big, 'x', 2000);
	big[2000] = '\0';
	log_info("short %d", 42);
	log_warn("long %s end", big);
	log_debug("not at info");
	log_set_level(lvl);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);

	char buf[4096];
	ssize_t n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Z info: short 42\n"));
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(strchr(buf, '\n') + 1, buf + n); /* one line, whole */
	n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 2000);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Z warn: long xxxx"));
	assert_non_null(strstr(buf, "x end\n"));
	assert_int_equal(strchr(buf, '\n') + 1, buf + n);
	/* nothing more: the debug line was not written */
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	close(sv[0]);
	close(sv[1]);
}

/* Prometheus' text format: values as Prometheus reads them, label values
 * and HELP text escaped, a histogram cumulated with +Inf, _sum, _count. */
static void test_prom(void **state)
{
	(void)state;
	char b[32];
	assert_string_equal(prom_value(NAN, b), "NaN");
	assert_string_equal(prom_value(INFINITY, b), "+Inf");
	assert_string_equal(prom_value(-INFINITY, b), "-Inf");
	assert_string_equal(prom_value(0, b), "0");
	assert_string_equal(prom_value(4294967296.0, b), "4294967296");
	assert_string_equal(prom_value(0.1, b), "0.1");
	assert_string_equal(prom_value(-2.5e-7, b), "-2.5e-07");
	assert_true(strtod(prom_value(1.0 / 3, b), NULL) == 1.0 / 3);
	assert_string_equal(prom_value(1e300, b), "1e+300");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	prom_family(f, "x_total", "counter", "a \\ b\nc");
	prom_sample(f, "x_total", NULL, 3);
	prom_sample(f, "x_total", (const char *[]){ "vm", "a\"b\\c\nd", "vcpu", "0", NULL }, 0.5);
	static const double le[] = { 0.01, 0.1 };
	static const uint64_t counts[] = { 2, 0 };
	prom_histogram(f, "t_seconds", le, counts, 2, 1, 0.75);
	fclose(f);
	assert_string_equal(buf,
		"# HELP x_total a \\\\ b\\nc\n"
		"# TYPE x_total counter\n"
		"x_total 3\n"
		"x_total{vm=\"a\\\"b\\\\c\\nd\",vcpu=\"0\"} 0.5\n"
		"t_seconds_bucket{le=\"0.01\"} 2\n"
		"t_seconds_bucket{le=\"0.1\"} 2\n"
		"t_seconds_bucket{le=\"+Inf\"} 3\n"
		"t_seconds_sum 0.75\n"
		"t_seconds_count 3\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_set_wrap),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_parse_numbers),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_tenant_rules),
		cmocka_unit_test(test_stat_parse),
		cmocka_unit_test(test_name_index),
		cmocka_unit_test(test_log_one_write_per_line),
		cmocka_unit_test(test_prom),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
