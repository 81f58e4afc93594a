/* test_cgparse.c - the cgroup module's pure parts: parsers of cpu.max,
 * memory.max, controller lists, cgroup.procs/threads, /proc/PID/cgroup,
 * cpu.stat and mountinfo (fixtures of pure v2, hybrid and legacy hosts),
 * the mount-table check, desired-tree validation and group paths, and
 * discovery through a root prefix (plus: on this host it must not crash). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vcpud/cgroup.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

#define assert_err(call, want)                                           \
	do {                                                             \
		struct error *e_ = NULL;                                 \
		int r_ = (call);                                         \
		if (r_ != -1 || !e_ || e_->code != (want))               \
			fail_msg("%s: want -1/%d, got %d/%d (%s)", #call, \
				 (want), r_, e_ ? e_->code : 0,          \
				 e_ ? e_->msg : "no error");             \
		error_free(&e_);                                         \
	} while (0)

/* the macro's calls name their error pointer e_ */
#define E (&e_)

/* --- cpu.max ------------------------------------------------------------- */

static void test_cpu_max_good(void **state)
{
	(void)state;
	struct cgroup_cpu_max m;
	struct error *err = NULL;
	assert_int_equal(cgroup_cpu_max_parse("max 100000\n", &m, &err), 0);
	assert_true(m.set);
	assert_true(m.unlimited);
	assert_int_equal(m.period_us, 100000);

	assert_int_equal(cgroup_cpu_max_parse("50000 100000", &m, &err), 0);
	assert_false(m.unlimited);
	assert_int_equal(m.quota_us, 50000);
	assert_int_equal(m.period_us, 100000);

	/* the extremes the kernel accepts */
	assert_int_equal(cgroup_cpu_max_parse("1000 1000\n", &m, &err), 0);
	assert_int_equal(cgroup_cpu_max_parse("17592186044415 1000000\n", &m, &err), 0);
	assert_int_equal(m.quota_us, CGROUP_QUOTA_MAX_US);
	assert_null(err);
}

static void test_cpu_max_bad(void **state)
{
	(void)state;
	struct cgroup_cpu_max m = { .quota_us = 42 };
	assert_err(cgroup_cpu_max_parse("", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("\n", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("abc", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("max", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("-1 100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("+5000 100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000 0", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("50000 999", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("50000 1000001", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("999 100000", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("17592186044416 100000", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("99999999999999999999999 100000", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("50000 99999999999999999999999", &m, E), ERANGE);
	assert_err(cgroup_cpu_max_parse("50000 100000x", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000 100000 ", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000 100000 7", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000  100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse(" 50000 100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("50000\t100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("max 100000\n\n", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse("MAX 100000", &m, E), EINVAL);
	assert_err(cgroup_cpu_max_parse(NULL, &m, E), EINVAL);
	/* nothing written on failure */
	assert_int_equal(m.quota_us, 42);

	/* the message quotes the text */
	struct error *err = NULL;
	assert_int_equal(cgroup_cpu_max_parse("abc\n", &m, &err), -1);
	assert_non_null(strstr(err->msg, "'abc\\n'"));
	error_free(&err);
}

/* --- memory.max ---------------------------------------------------------- */

static void test_mem_max(void **state)
{
	(void)state;
	struct cgroup_mem_max m;
	struct error *err = NULL;
	assert_int_equal(cgroup_mem_max_parse("max\n", &m, &err), 0);
	assert_true(m.set && m.unlimited);
	assert_int_equal(cgroup_mem_max_parse("1073741824\n", &m, &err), 0);
	assert_false(m.unlimited);
	assert_int_equal(m.bytes, 1073741824ULL);
	assert_int_equal(cgroup_mem_max_parse("0", &m, &err), 0);
	assert_int_equal(m.bytes, 0);
	assert_null(err);

	m.bytes = 7;
	assert_err(cgroup_mem_max_parse("", &m, E), EINVAL);
	assert_err(cgroup_mem_max_parse("1G", &m, E), EINVAL);
	assert_err(cgroup_mem_max_parse("-1", &m, E), EINVAL);
	assert_err(cgroup_mem_max_parse("max ", &m, E), EINVAL);
	assert_err(cgroup_mem_max_parse("12 34", &m, E), EINVAL);
	assert_err(cgroup_mem_max_parse("99999999999999999999999", &m, E), ERANGE);
	assert_int_equal(m.bytes, 7);
}

/* --- controller lists ---------------------------------------------------- */

static void test_controllers(void **state)
{
	(void)state;
	unsigned m = 0xdead;
	struct error *err = NULL;
	assert_int_equal(cgroup_controllers_parse("cpuset cpu io memory hugetlb pids rdma misc\n",
						  &m, &err), 0);
	assert_int_equal(m, (1u << CGROUP_CTRL_LAST) - 1);
	assert_int_equal(cgroup_controllers_parse("\n", &m, &err), 0);
	assert_int_equal(m, 0);
	assert_int_equal(cgroup_controllers_parse("", &m, &err), 0);
	assert_int_equal(m, 0);
	assert_int_equal(cgroup_controllers_parse("cpu memory", &m, &err), 0);
	assert_int_equal(m, CGROUP_CTRL_BIT(CGROUP_CTRL_CPU) | CGROUP_CTRL_BIT(CGROUP_CTRL_MEMORY));
	/* a controller of a future kernel is not an error */
	assert_int_equal(cgroup_controllers_parse("cpu dmem\n", &m, &err), 0);
	assert_int_equal(m, CGROUP_CTRL_BIT(CGROUP_CTRL_CPU));
	assert_null(err);

	m = 5;
	assert_err(cgroup_controllers_parse("cpu,memory", &m, E), EINVAL);
	assert_err(cgroup_controllers_parse("+cpu", &m, E), EINVAL);
	assert_err(cgroup_controllers_parse("cpu\nmemory\n", &m, E), EINVAL);
	assert_err(cgroup_controllers_parse("CPU", &m, E), EINVAL);
	assert_int_equal(m, 5);

	assert_string_equal(cgroup_ctrl_name(CGROUP_CTRL_CPUSET), "cpuset");
	assert_null(cgroup_ctrl_name(CGROUP_CTRL_LAST));
}

/* --- cgroup.procs / cgroup.threads --------------------------------------- */

static void test_pids(void **state)
{
	(void)state;
	pid_t *ids = NULL;
	size_t n = 99;
	struct error *err = NULL;
	assert_int_equal(cgroup_pids_parse("", &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(ids);
	assert_int_equal(cgroup_pids_parse("1234\n5\n2147483647\n", &ids, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1234);
	assert_int_equal(ids[1], 5);
	assert_int_equal(ids[2], 2147483647);
	free(ids);
	ids = NULL;
	assert_int_equal(cgroup_pids_parse("42", &ids, &n, &err), 0); /* no newline */
	assert_int_equal(n, 1);
	free(ids);
	ids = NULL;
	assert_null(err);

	/* 40 lines: the array grows */
	char big[512] = "";
	for (int i = 1; i <= 40; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), "%d\n", i * 10);
	assert_int_equal(cgroup_pids_parse(big, &ids, &n, &err), 0);
	assert_int_equal(n, 40);
	assert_int_equal(ids[39], 400);
	free(ids);
	ids = NULL;

	n = 77;
	assert_err(cgroup_pids_parse("12\nabc\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("12\n\n13\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("0\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("-5\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse(" 5\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("5 \n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("2147483648\n", &ids, &n, E), EINVAL);
	assert_err(cgroup_pids_parse("\n", &ids, &n, E), EINVAL);
	assert_int_equal(n, 77);
	assert_null(ids);

	struct error *e2 = NULL;
	assert_int_equal(cgroup_pids_parse("1\n2\nx7\n", &ids, &n, &e2), -1);
	assert_non_null(strstr(e2->msg, "line 3"));
	error_free(&e2);
}

/* --- /proc/PID/cgroup ---------------------------------------------------- */

static void test_proc_cgroup(void **state)
{
	(void)state;
	char *p = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_proc_cgroup_parse("0::/vcpud.slice/tenant-a/vm-1/vcpu0\n", &p, &err), 0);
	assert_string_equal(p, "/vcpud.slice/tenant-a/vm-1/vcpu0");
	free(p);
	assert_int_equal(cgroup_proc_cgroup_parse("0::/\n", &p, &err), 0);
	assert_string_equal(p, "/");
	free(p);
	/* a hybrid host: v1 lines first */
	assert_int_equal(cgroup_proc_cgroup_parse("12:cpu,cpuacct:/user.slice\n"
						  "1:name=systemd:/user.slice/session-1.scope\n"
						  "0::/user.slice/session-1.scope\n",
						  &p, &err), 0);
	assert_string_equal(p, "/user.slice/session-1.scope");
	free(p);
	assert_int_equal(cgroup_proc_cgroup_parse("0::/a b\n", &p, &err), 0);
	assert_string_equal(p, "/a b");
	free(p);
	assert_null(err);

	p = NULL;
	assert_err(cgroup_proc_cgroup_parse("", &p, E), ENOENT);
	assert_err(cgroup_proc_cgroup_parse("12:cpu:/x\n", &p, E), ENOENT);
	assert_err(cgroup_proc_cgroup_parse("0::\n", &p, E), EINVAL);
	assert_err(cgroup_proc_cgroup_parse("0::relative\n", &p, E), EINVAL);
	assert_err(cgroup_proc_cgroup_parse("garbage\n0::/x\n", &p, E), EINVAL);
	assert_err(cgroup_proc_cgroup_parse(":cpu:/x\n", &p, E), EINVAL);
	assert_null(p);
}

/* --- cpu.stat ------------------------------------------------------------ */

static void test_cpu_stat(void **state)
{
	(void)state;
	struct cgroup_cpu_stat s;
	struct error *err = NULL;
	const char *txt = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n"
			  "core_sched.force_idle_usec 0\nnr_periods 20\nnr_throttled 7\n"
			  "throttled_usec 2917611\nnr_bursts 0\nburst_usec 0\n";
	assert_int_equal(cgroup_cpu_stat_parse(txt, &s, &err), 0);
	assert_int_equal(s.usage_usec, 123456);
	assert_int_equal(s.user_usec, 100000);
	assert_int_equal(s.system_usec, 23456);
	assert_int_equal(s.nr_periods, 20);
	assert_int_equal(s.nr_throttled, 7);
	assert_int_equal(s.throttled_usec, 2917611);

	/* a group without the cpu controller: only the first three keys */
	assert_int_equal(cgroup_cpu_stat_parse("usage_usec 5\nuser_usec 3\nsystem_usec 2\n", &s, &err), 0);
	assert_int_equal(s.usage_usec, 5);
	assert_int_equal(s.nr_throttled, 0);
	assert_int_equal(s.throttled_usec, 0);
	assert_int_equal(cgroup_cpu_stat_parse("", &s, &err), 0);
	assert_int_equal(s.usage_usec, 0);
	/* unknown keys with odd values are ignored */
	assert_int_equal(cgroup_cpu_stat_parse("future_key -1\nnr_throttled 3", &s, &err), 0);
	assert_int_equal(s.nr_throttled, 3);
	assert_null(err);

	s.nr_throttled = 99;
	assert_err(cgroup_cpu_stat_parse("nr_throttled x\n", &s, E), EINVAL);
	assert_err(cgroup_cpu_stat_parse("nr_throttled -3\n", &s, E), EINVAL);
	assert_err(cgroup_cpu_stat_parse("nr_throttled\n", &s, E), EINVAL);
	assert_err(cgroup_cpu_stat_parse("nr_throttled \n", &s, E), EINVAL);
	assert_err(cgroup_cpu_stat_parse("usage_usec 1\n\n", &s, E), EINVAL);
	assert_err(cgroup_cpu_stat_parse("usage_usec 99999999999999999999999\n", &s, E), EINVAL);
	assert_int_equal(s.nr_throttled, 99);
}

/* --- mountinfo ----------------------------------------------------------- */

static const char MI_V2[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n"
	"27 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";

/* this host, as seen by trying (FACTS.md) */
static const char MI_HYBRID[] =
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static const char MI_LEGACY[] =
	"31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/systemd rw shared:9 - cgroup cgroup rw,xattr,name=systemd\n"
	"33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpu,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";

static void test_mountinfo_v2(void **state)
{
	(void)state;
	struct cgroup_mount *m = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cgroup_mountinfo_parse(MI_V2, &m, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_true(m[0].v2);
	assert_string_equal(m[0].mount_point, "/sys/fs/cgroup");
	assert_string_equal(m[0].root, "/");
	char *mp = NULL;
	assert_int_equal(cgroup_mounts_check(m, n, &mp, &err), 0);
	assert_string_equal(mp, "/sys/fs/cgroup");
	free(mp);
	cgroup_mounts_free(m, n);
	assert_null(err);
}

static void test_mountinfo_hybrid(void **state)
{
	(void)state;
	struct cgroup_mount *m = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cgroup_mountinfo_parse(MI_HYBRID, &m, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_false(m[0].v2);
	assert_string_equal(m[0].mount_point, "/sys/fs/cgroup/cpu");
	assert_int_equal(m[0].controllers, CGROUP_CTRL_BIT(CGROUP_CTRL_CPU));
	assert_int_equal(m[1].controllers, 0); /* cpuacct is not one vcpud knows */
	assert_int_equal(m[4].controllers, 0); /* name=systemd */
	assert_true(m[5].v2);
	char *mp = NULL;
	assert_int_equal(cgroup_mounts_check(m, n, &mp, &err), -1);
	assert_null(mp);
	assert_int_equal(err->code, ENOTSUP);
	assert_non_null(strstr(err->msg, "controller cpu"));
	assert_non_null(strstr(err->msg, "/sys/fs/cgroup/cpu "));
	assert_non_null(strstr(err->msg, "hybrid"));
	assert_non_null(strstr(err->msg, "systemd.unified_cgroup_hierarchy=1"));
	assert_non_null(strstr(err->msg, "cgroup_no_v1=all"));
	error_free(&err);
	cgroup_mounts_free(m, n);
}

static void test_mountinfo_legacy(void **state)
{
	(void)state;
	struct cgroup_mount *m = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cgroup_mountinfo_parse(MI_LEGACY, &m, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(m[1].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
	assert_int_equal(m[1].controllers, CGROUP_CTRL_BIT(CGROUP_CTRL_CPU));
	char *mp = NULL;
	assert_int_equal(cgroup_mounts_check(m, n, &mp, &err), -1);
	assert_int_equal(err->code, ENOTSUP);
	assert_non_null(strstr(err->msg, "legacy"));
	assert_non_null(strstr(err->msg, "/sys/fs/cgroup/cpu,cpuacct"));
	error_free(&err);
	cgroup_mounts_free(m, n);

	/* no cgroup at all */
	assert_int_equal(cgroup_mountinfo_parse("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", &m, &n,
						&err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cgroup_mounts_check(m, n, &mp, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	cgroup_mounts_free(m, n);
}

static void test_mountinfo_details(void **state)
{
	(void)state;
	struct cgroup_mount *m = NULL;
	size_t n = 0;
	struct error *err = NULL;
	/* octal escapes, no optional fields, several cgroup2 mounts: the one
	 * at /sys/fs/cgroup wins; v1 mounts of other controllers are fine */
	const char *txt = "40 22 0:40 /ct /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"
			  "26 25 0:24 / /sys/fs/cgroup rw shared:9 master:2 - cgroup2 cgroup2 rw\n"
			  "41 22 0:41 / /mnt/pids rw - cgroup cgroup rw,pids\n";
	assert_int_equal(cgroup_mountinfo_parse(txt, &m, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(m[0].mount_point, "/mnt/my cg");
	assert_string_equal(m[0].root, "/ct");
	char *mp = NULL;
	assert_int_equal(cgroup_mounts_check(m, n, &mp, &err), 0);
	assert_string_equal(mp, "/sys/fs/cgroup");
	free(mp);
	cgroup_mounts_free(m, n);
	/* without it, the first cgroup2 mount */
	assert_int_equal(cgroup_mountinfo_parse(txt, &m, &n, &err), 0);
	assert_int_equal(cgroup_mounts_check(m, 1, &mp, &err), 0);
	assert_string_equal(mp, "/mnt/my cg");
	free(mp);
	cgroup_mounts_free(m, n);
	assert_null(err);

	m = NULL;
	assert_err(cgroup_mountinfo_parse("26 25 0:24 / /sys/fs/cgroup rw\n", &m, &n, E), EINVAL);
	assert_err(cgroup_mountinfo_parse("26 25 0:24 / /x rw - cgroup2\n", &m, &n, E), EINVAL);
	assert_err(cgroup_mountinfo_parse("26 25\n", &m, &n, E), EINVAL);
	assert_err(cgroup_mountinfo_parse("junk line\n", &m, &n, E), EINVAL);
	assert_err(cgroup_mountinfo_parse("1 2 0:3 / rel rw - cgroup2 cgroup2 rw\n", &m, &n, E),
		   EINVAL);
	assert_null(m);
	struct error *e2 = NULL;
	assert_int_equal(cgroup_mountinfo_parse("22 1 8:1 / / rw - ext4 x rw\nbad\n", &m, &n, &e2), -1);
	assert_non_null(strstr(e2->msg, "line 2"));
	error_free(&e2);
}

/* --- discovery ----------------------------------------------------------- */

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/vcpud-cgparse-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return xstrdup(d);
}

static void put(const char *dir, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", dir, rel);
	/* mkdir -p of the file's directory */
	for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(path, 0755);
		*s = '/';
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static void rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void test_discover_prefix(void **state)
{
	(void)state;
	char *d = tmpdir_new();
	struct error *err = NULL;
	char *mp = NULL;

	/* pure v2 with everything offered */
	put(d, "proc/self/mountinfo", MI_V2);
	put(d, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	assert_int_equal(cgroup_discover(d, &mp, &err), 0);
	char *want = xasprintf("%s/sys/fs/cgroup", d);
	assert_string_equal(mp, want);
	free(want);
	free(mp);
	mp = NULL;

	/* memory disabled on the command line */
	put(d, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n");
	assert_int_equal(cgroup_discover(d, &mp, &err), -1);
	assert_int_equal(err->code, ENOTSUP);
	assert_non_null(strstr(err->msg, "memory"));
	error_free(&err);

	/* hybrid */
	put(d, "proc/self/mountinfo", MI_HYBRID);
	assert_int_equal(cgroup_discover(d, &mp, &err), -1);
	assert_int_equal(err->code, ENOTSUP);
	assert_non_null(strstr(err->msg, "systemd.unified_cgroup_hierarchy=1"));
	error_free(&err);

	/* no mountinfo at all */
	rm_rf(d);
	assert_int_equal(cgroup_discover(d, &mp, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	assert_null(mp);
	free(d);
}

/* On this host (hybrid v1, FACTS.md) discovery must refuse; on another it
 * may succeed. Either way it must answer cleanly, through libcgroup too. */
static void test_discover_host(void **state)
{
	(void)state;
	struct error *err = NULL;
	char *mp = NULL;
	int r = cgroup_discover(NULL, &mp, &err);
	if (r == 0) {
		assert_non_null(mp);
		assert_null(err);
		print_message("cgroup_discover: cgroup2 at %s\n", mp);
		free(mp);
	} else {
		assert_int_equal(r, -1);
		assert_null(mp);
		assert_non_null(err);
		assert_true(err->code != 0);
		print_message("cgroup_discover refused this host: %s\n", err->msg);
		error_free(&err);
	}
}

/* --- tree validation and paths ------------------------------------------- */

struct vt {
	struct cgroup_vcpu_spec vcpus[2];
	struct cgroup_vm_spec vms[2];
	struct cgroup_tenant_spec tenants[2];
	struct cgroup_tree tree;
};

static void vt_init(struct vt *v)
{
	memset(v, 0, sizeof(*v));
	v->vcpus[0] = (struct cgroup_vcpu_spec){ .index = 0, .tid = 101, .cpus = "0" };
	v->vcpus[1] = (struct cgroup_vcpu_spec){ .index = 1, .tid = 102, .cpus = "1" };
	v->vms[0] = (struct cgroup_vm_spec){ .name = "web-1", .pid = 100, .cpus = "0-3",
					     .vcpus = v->vcpus, .n_vcpus = 2 };
	v->vms[1] = (struct cgroup_vm_spec){ .name = "db", .pid = 200 };
	v->tenants[0] = (struct cgroup_tenant_spec){ .name = "acme", .weight = 100, .cpus = "0-7",
						     .vms = v->vms, .n_vms = 2 };
	v->tenants[1] = (struct cgroup_tenant_spec){ .name = "beta" };
	v->tree = (struct cgroup_tree){ .root = "/sys/fs/cgroup/vcpud.slice",
					.tenants = v->tenants, .n_tenants = 2 };
}

#define assert_invalid(v, want, needle)                                          \
	do {                                                                     \
		struct error *e_ = NULL;                                         \
		assert_int_equal(cgroup_tree_validate(&(v).tree, &e_), -1);      \
		assert_non_null(e_);                                             \
		assert_int_equal(e_->code, (want));                              \
		if (!strstr(e_->msg, (needle)))                                  \
			fail_msg("'%s' not in '%s'", (needle), e_->msg);         \
		error_free(&e_);                                                 \
	} while (0)

static void test_validate(void **state)
{
	(void)state;
	struct vt v;
	struct error *err = NULL;
	vt_init(&v);
	assert_int_equal(cgroup_tree_validate(&v.tree, &err), 0);
	assert_null(err);

	const char *bad_names[] = { "", ".", "..", "../x", "a/b", "a b", "x\n", "/abs",
		"a123456789012345678901234567890123456789012345678901234567890123456" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		vt_init(&v);
		v.tenants[1].name = (char *)bad_names[i];
		assert_invalid(v, EINVAL, "tenant name");
		vt_init(&v);
		v.vms[1].name = (char *)bad_names[i];
		assert_invalid(v, EINVAL, "VM name");
	}
	vt_init(&v);
	v.tenants[1].name = NULL;
	assert_invalid(v, EINVAL, "tenant name");

	vt_init(&v);
	v.tenants[1].name = "acme";
	assert_invalid(v, EINVAL, "listed twice");
	vt_init(&v);
	v.vms[1].name = "web-1";
	assert_invalid(v, EINVAL, "listed twice");
	vt_init(&v);
	v.vcpus[1].index = 0;
	assert_invalid(v, EINVAL, "vCPU 0 is listed twice");
	vt_init(&v);
	v.vcpus[1].tid = 101;
	assert_invalid(v, EINVAL, "same TID");
	vt_init(&v);
	v.vms[1].pid = 101; /* another VM's vCPU thread */
	assert_invalid(v, EINVAL, "101 is listed twice");
	vt_init(&v);
	v.vcpus[0].tid = 100; /* the main thread as a vCPU: allowed */
	assert_int_equal(cgroup_tree_validate(&v.tree, &err), 0);
	vt_init(&v);
	v.vms[0].pid = 0;
	assert_invalid(v, EINVAL, "no PID");
	vt_init(&v);
	v.vms[0].pid = -4;
	assert_invalid(v, EINVAL, "negative");
	vt_init(&v);
	v.vcpus[0].index = CGROUP_VCPU_INDEX_MAX + 1;
	assert_invalid(v, ERANGE, "above");

	/* ranges */
	vt_init(&v);
	v.tenants[0].weight = 10001;
	assert_invalid(v, ERANGE, "cpu.weight 10001");
	vt_init(&v);
	v.vcpus[0].weight = 20000;
	assert_invalid(v, ERANGE, "vCPU 0: cpu.weight");
	vt_init(&v);
	v.vms[0].cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 999 };
	assert_invalid(v, ERANGE, "quota 999");
	vt_init(&v);
	v.vms[0].cpu_max = (struct cgroup_cpu_max){ .set = true, .unlimited = true, .period_us = 5 };
	assert_invalid(v, ERANGE, "period 5");
	vt_init(&v);
	v.vms[0].cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 5000 }; /* period 0 = default */
	assert_int_equal(cgroup_tree_validate(&v.tree, &err), 0);
	vt_init(&v);
	v.tenants[0].memory_max = (struct cgroup_mem_max){ .set = true, .bytes = UINT64_MAX };
	assert_invalid(v, ERANGE, "memory.max");

	/* cpusets: parse and nesting */
	vt_init(&v);
	v.tenants[0].cpus = "0-3,x";
	assert_invalid(v, EINVAL, "cpuset.cpus");
	vt_init(&v);
	v.vms[0].cpus = "6-9"; /* outside the tenant's 0-7 */
	assert_invalid(v, EINVAL, "not within the tenant's 0-7");
	vt_init(&v);
	v.vcpus[1].cpus = "4"; /* outside the VM's 0-3 */
	assert_invalid(v, EINVAL, "not within the VM's 0-3");
	vt_init(&v);
	v.vms[0].cpus = NULL; /* then the tenant bounds the vCPU */
	v.vcpus[1].cpus = "9";
	assert_invalid(v, EINVAL, "the tenant's 0-7");
	vt_init(&v);
	v.vms[0].emulator_cpus = "2-5";
	assert_invalid(v, EINVAL, "emulator");
	vt_init(&v);
	v.vms[0].cpus = ""; /* inherit: no bound of its own */
	v.vcpus[1].cpus = "5";
	assert_int_equal(cgroup_tree_validate(&v.tree, &err), 0);

	/* the root */
	vt_init(&v);
	v.tree.root = "relative/dir";
	assert_invalid(v, EINVAL, "absolute");
	vt_init(&v);
	v.tree.root = "/sys/fs/cgroup/../x";
	assert_invalid(v, EINVAL, "'..'");
	vt_init(&v);
	v.tree.root = NULL;
	assert_invalid(v, EINVAL, "absolute");
	assert_int_equal(cgroup_tree_validate(NULL, &err), -1);
	error_free(&err);
}

static void test_dirs(void **state)
{
	(void)state;
	char *p = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_tenant_dir("/r", "acme", &p, &err), 0);
	assert_string_equal(p, "/r/tenant-acme");
	free(p);
	assert_int_equal(cgroup_vm_dir("/r/", "acme", "7", &p, &err), 0);
	assert_string_equal(p, "/r/tenant-acme/vm-7");
	free(p);
	assert_int_equal(cgroup_vcpu_dir("/r", "acme", "7", 3, &p, &err), 0);
	assert_string_equal(p, "/r/tenant-acme/vm-7/vcpu3");
	free(p);
	p = NULL;
	assert_err(cgroup_tenant_dir("/r", "../x", &p, E), EINVAL);
	assert_err(cgroup_vm_dir("/r", "acme", "a/b", &p, E), EINVAL);
	assert_err(cgroup_vm_dir("/r", "", "x", &p, E), EINVAL);
	assert_err(cgroup_vcpu_dir("/r", "acme", ".", 0, &p, E), EINVAL);
	assert_err(cgroup_vcpu_dir("/r", "acme", "x", 99999, &p, E), ERANGE);
	assert_null(p);
}

/* A heap-built tree is freed whole (ASan checks there is no leak). */
static void test_tree_free(void **state)
{
	(void)state;
	struct cgroup_tree *t = xcalloc(1, sizeof(*t));
	t->root = xstrdup("/x");
	t->n_tenants = 1;
	t->tenants = xcalloc(1, sizeof(*t->tenants));
	t->tenants[0].name = xstrdup("a");
	t->tenants[0].cpus = xstrdup("0");
	t->tenants[0].n_vms = 1;
	t->tenants[0].vms = xcalloc(1, sizeof(*t->tenants[0].vms));
	struct cgroup_vm_spec *vm = &t->tenants[0].vms[0];
	vm->name = xstrdup("v");
	vm->emulator_cpus = xstrdup("0");
	vm->n_vcpus = 2;
	vm->vcpus = xcalloc(2, sizeof(*vm->vcpus));
	vm->vcpus[0].cpus = xstrdup("0");
	vm->vcpus[1].index = 1;
	struct error *err = NULL;
	assert_int_equal(cgroup_tree_validate(t, &err), 0);
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *owned = t;
	(void)owned;
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_max_good),
		cmocka_unit_test(test_cpu_max_bad),
		cmocka_unit_test(test_mem_max),
		cmocka_unit_test(test_controllers),
		cmocka_unit_test(test_pids),
		cmocka_unit_test(test_proc_cgroup),
		cmocka_unit_test(test_cpu_stat),
		cmocka_unit_test(test_mountinfo_v2),
		cmocka_unit_test(test_mountinfo_hybrid),
		cmocka_unit_test(test_mountinfo_legacy),
		cmocka_unit_test(test_mountinfo_details),
		cmocka_unit_test(test_discover_prefix),
		cmocka_unit_test(test_discover_host),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_dirs),
		cmocka_unit_test(test_tree_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
