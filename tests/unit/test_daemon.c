/* test_daemon.c - vcpud's command line: parsing and the checks that look at
 * the file system without changing it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "daemon/daemon.h"
#include "vcpud/util.h"

static int parse(struct daemon_options *o, struct error **err, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, err);
	argv[argc++] = (char *)"vcpud";
	for (char *a = va_arg(ap, char *); a && argc < 31; a = va_arg(ap, char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return daemon_options_parse(argc, argv, o, err);
}

static void test_defaults(void **state)
{
	(void)state;
	struct daemon_options o;
	assert_int_equal(parse(&o, NULL, NULL), 0);
	assert_string_equal(o.db_path, DAEMON_DEFAULT_DB);
	assert_string_equal(o.socket_path, DAEMON_DEFAULT_SOCKET);
	assert_string_equal(o.policy_path, DAEMON_DEFAULT_POLICY);
	assert_null(o.cgroup_root);
	assert_string_equal(o.host_root, "/");
	assert_false(o.foreground);
	assert_false(o.dry_run);
	assert_int_equal(o.log_level, LOG_LVL_INFO);
}

static void test_all_options(void **state)
{
	(void)state;
	struct daemon_options o;
	assert_int_equal(parse(&o, NULL, "--db", "/tmp/a.db", "--socket=/tmp/s", "--policy",
			       "p.yaml", "--cgroup-root", "/tmp", "--foreground", "--log-level",
			       "debug", "--dry-run", "--socket-group", "root", NULL), 0);
	assert_string_equal(o.db_path, "/tmp/a.db");
	assert_string_equal(o.socket_path, "/tmp/s");
	assert_string_equal(o.policy_path, "p.yaml");
	assert_string_equal(o.cgroup_root, "/tmp");
	assert_string_equal(o.socket_group, "root");
	assert_true(o.foreground && o.dry_run);
	assert_int_equal(o.log_level, LOG_LVL_DEBUG);
	gid_t g = 12345;
	assert_int_equal(daemon_options_check(&o, &g, NULL), 0);
	assert_int_equal(g, 0);
	assert_int_equal(parse(&o, NULL, "-f", "-h", "-V", NULL), 0);
	assert_true(o.foreground && o.help && o.version);
	/* --sampler: auto by default */
	assert_int_equal(parse(&o, NULL, NULL), 0);
	assert_int_equal(o.sampler, DAEMON_SAMPLER_AUTO);
	const struct { const char *arg; enum daemon_sampler want; } smp[] = {
		{ "auto", DAEMON_SAMPLER_AUTO }, { "bpf", DAEMON_SAMPLER_BPF },
		{ "pread", DAEMON_SAMPLER_PREAD },
	};
	for (size_t i = 0; i < ARRAY_SIZE(smp); i++) {
		assert_int_equal(parse(&o, NULL, "--sampler", smp[i].arg, NULL), 0);
		assert_int_equal(o.sampler, smp[i].want);
	}
}

static void test_bad_options(void **state)
{
	(void)state;
	struct daemon_options o;
	struct error *err = NULL;
	assert_int_equal(parse(&o, &err, "--bogus", NULL), -1);
	assert_non_null(strstr(err->msg, "unknown option '--bogus'"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--db", NULL), -1);
	assert_non_null(strstr(err->msg, "needs a value"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--db=", NULL), -1);
	assert_non_null(strstr(err->msg, "non-empty"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--log-level", "loud", NULL), -1);
	assert_non_null(strstr(err->msg, "unknown log level 'loud'"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--sampler", "ebpf", NULL), -1);
	assert_non_null(strstr(err->msg, "--sampler: 'ebpf' is not auto, bpf or pread"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--sampler", NULL), -1);
	assert_non_null(strstr(err->msg, "needs a value"));
	error_free(&err);
	/* --listen and its options */
	const struct {
		const char *a[8];
		const char *msg;
	} lc[] = {
		{ { "--tls-cert", "c.pem" }, "--tls-cert is an option of --listen" },
		{ { "--token-file", "t" }, "--token-file is an option of --listen" },
		{ { "--insecure-http" }, "--insecure-http is an option of --listen" },
		{ { "--listen", "127.0.0.1:8443", "--token-file", "t" },
		  "--listen needs --tls-cert and --tls-key" },
		{ { "--listen", "127.0.0.1:8443", "--tls-cert", "c", "--tls-key", "k" },
		  "--listen needs --token-file" },
		{ { "--listen", "127.0.0.1:8443", "--insecure-http", "--tls-cert", "c",
		    "--token-file", "t" }, "plain HTTP or TLS, not both" },
		{ { "--listen=" }, "non-empty" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(lc); i++) {
		char *argv[10] = { (char *)"vcpud" };
		int argc = 1;
		for (int k = 0; k < 8 && lc[i].a[k]; k++)
			argv[argc++] = (char *)lc[i].a[k];
		assert_int_equal(daemon_options_parse(argc, argv, &o, &err), -1);
		if (!strstr(err->msg, lc[i].msg))
			fail_msg("case %zu: %s", i, err->msg);
		error_free(&err);
	}
	assert_int_equal(parse(&o, &err, "--listen", "[::1]:8443", "--tls-cert", "c.pem",
			       "--tls-key", "k.pem", "--token-file", "t", NULL), 0);
	assert_string_equal(o.listen, "[::1]:8443");
	assert_string_equal(o.tls_cert, "c.pem");
	assert_string_equal(o.tls_key, "k.pem");
	assert_string_equal(o.token_file, "t");
	gid_t g;
	assert_int_equal(daemon_options_check(&o, &g, &err), 0);
	assert_int_equal(parse(&o, &err, "--listen", "0.0.0.0:8080", "--insecure-http",
			       "--token-file", "t", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "loopback addresses only, not on 0.0.0.0:8080"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "--listen", "host:1", "--insecure-http",
			       "--token-file", "t", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "--listen: listen address 'host:1'"));
	error_free(&err);
	assert_int_equal(parse(&o, &err, "extra", NULL), -1);
	assert_non_null(strstr(err->msg, "unexpected argument 'extra'"));
	error_free(&err);
}

static void test_check_cgroup_root(void **state)
{
	(void)state;
	char dir[] = "/tmp/vcpud-test-daemon-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct daemon_options o;
	struct error *err = NULL;
	gid_t g;
	const char *bad[] = { "relative/dir", "/tmp/../etc", "/tmp/./x", "/nonexistent-parent/x" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(&o, NULL, "--cgroup-root", bad[i], NULL), 0);
		assert_int_equal(daemon_options_check(&o, &g, &err), -1);
		assert_non_null(strstr(err->msg, "--cgroup-root"));
		error_free(&err);
	}
	/* a missing last component is fine (vcpud creates it) */
	char *sub = xasprintf("%s/vcpud.slice", dir);
	assert_int_equal(parse(&o, NULL, "--cgroup-root", sub, NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, NULL), 0);
	struct stat st;
	assert_int_equal(stat(sub, &st), -1); /* and the check created nothing */
	/* a file is not a directory */
	FILE *fp = fopen(sub, "w");
	fclose(fp);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "not a directory"));
	error_free(&err);
	unlink(sub);
	free(sub);
	rmdir(dir);

	assert_int_equal(parse(&o, NULL, "--host-root", "/nonexistent-host-root", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "--host-root /nonexistent-host-root is not a directory"));
	error_free(&err);
	assert_int_equal(parse(&o, NULL, "--host-root", "fixtures", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "must be an absolute path"));
	error_free(&err);
	assert_int_equal(parse(&o, NULL, "--host-root", "/tmp", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, NULL), 0);

	assert_int_equal(parse(&o, NULL, "--socket-group", "no-such-group-xyz", NULL), 0);
	assert_int_equal(daemon_options_check(&o, &g, &err), -1);
	assert_non_null(strstr(err->msg, "no group named 'no-such-group-xyz'"));
	error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_check_cgroup_root),
	};
	return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
