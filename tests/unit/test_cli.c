/* test_cli.c - vcpuctl without a daemon: request building from argv for
 * every tenant subcommand and option, every usage error, value parsing,
 * the human renderers, exit-code mapping, the whole program through
 * cli_main() (help, policy check/show), the unreachable-daemon path, and
 * full HTTP exchanges against a fake vcpud on a UNIX socket (the one in
 * cli_test_util.h, answering one canned reply). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "cli/tenant.h"
#include "vcpud/policy.h"
#include "vcpud/util.h"
#include "cli_test_util.h"

/* --- helpers ---------------------------------------------------------- */

/* cli_tenant_build() on a literal argv (argv[0] = the tenant subcommand) */
#define BUILD(req, err, ...) cli_tenant_build(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), req, err)

static json_t *body_of(const struct cli_request *r)
{
	assert_non_null(r->body);
	assert_true(json_is_object(r->body));
	return r->body;
}

static void assert_json_int(const json_t *o, const char *key, json_int_t v)
{
	const json_t *x = json_object_get(o, key);
	if (!json_is_integer(x))
		fail_msg("%s is not an integer", key);
	assert_int_equal(json_integer_value(x), v);
}

static void assert_json_str(const json_t *o, const char *key, const char *v)
{
	const json_t *x = json_object_get(o, key);
	if (!json_is_string(x))
		fail_msg("%s is not a string", key);
	assert_string_equal(json_string_value(x), v);
}

/* --- exit codes ------------------------------------------------------- */

static void test_exit_for_status(void **state)
{
	(void)state;
	assert_int_equal(cli_exit_for_status(200), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_status(201), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_status(204), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_status(400), CLI_EXIT_USAGE);
	assert_int_equal(cli_exit_for_status(413), CLI_EXIT_USAGE);
	assert_int_equal(cli_exit_for_status(401), CLI_EXIT_FORBIDDEN);
	assert_int_equal(cli_exit_for_status(403), CLI_EXIT_FORBIDDEN);
	assert_int_equal(cli_exit_for_status(404), CLI_EXIT_NOT_FOUND);
	assert_int_equal(cli_exit_for_status(409), CLI_EXIT_CONFLICT);
	assert_int_equal(cli_exit_for_status(405), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_status(415), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_status(500), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_status(503), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_status(302), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_status(0), CLI_EXIT_ERROR);
	/* the documented values are part of the interface */
	assert_int_equal(CLI_EXIT_OK, 0);
	assert_int_equal(CLI_EXIT_ERROR, 1);
	assert_int_equal(CLI_EXIT_USAGE, 2);
	assert_int_equal(CLI_EXIT_NOT_FOUND, 3);
	assert_int_equal(CLI_EXIT_CONFLICT, 4);
	assert_int_equal(CLI_EXIT_UNREACHABLE, 5);
	assert_int_equal(CLI_EXIT_FORBIDDEN, 6);
}

static void test_exit_for_errno(void **state)
{
	(void)state;
	assert_int_equal(cli_exit_for_errno(0), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_errno(EINVAL), CLI_EXIT_USAGE);
	assert_int_equal(cli_exit_for_errno(ERANGE), CLI_EXIT_USAGE);
	assert_int_equal(cli_exit_for_errno(ENOENT), CLI_EXIT_NOT_FOUND);
	assert_int_equal(cli_exit_for_errno(EEXIST), CLI_EXIT_CONFLICT);
	assert_int_equal(cli_exit_for_errno(EBUSY), CLI_EXIT_CONFLICT);
	assert_int_equal(cli_exit_for_errno(ECONNREFUSED), CLI_EXIT_UNREACHABLE);
	assert_int_equal(cli_exit_for_errno(EACCES), CLI_EXIT_FORBIDDEN);
	assert_int_equal(cli_exit_for_errno(EPERM), CLI_EXIT_FORBIDDEN);
	assert_int_equal(cli_exit_for_errno(EIO), CLI_EXIT_ERROR);
	assert_int_equal(cli_exit_for_errno(EPROTO), CLI_EXIT_ERROR);
}

/* --- request building ------------------------------------------------- */

static void test_build_create_minimal(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;
	assert_int_equal(BUILD(&r, &err, "create", "acme", "--vcpus", "8"), 0);
	assert_null(err);
	assert_false(r.help);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/v1/tenants");
	assert_string_equal(r.subject, "acme");
	assert_non_null(r.render);
	json_t *b = body_of(&r);
	/* only what was given: the server applies its defaults */
	assert_int_equal(json_object_size(b), 2);
	assert_json_str(b, "name", "acme");
	assert_json_int(b, "vcpus", 8);
	cli_request_clear(&r);
	assert_null(r.path);
	assert_null(r.body);
}

static void test_build_create_all_options(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;
	/* options before and after NAME, --opt=value and --opt value forms */
	assert_int_equal(BUILD(&r, &err, "create", "--weight=250", "--cpu-max", "2.5", "web.prod-1",
			       "--memory", "1G", "--class", "best-effort", "--vcpus=16"), 0);
	assert_null(err);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/v1/tenants");
	json_t *b = body_of(&r);
	assert_int_equal(json_object_size(b), 6);
	assert_json_str(b, "name", "web.prod-1");
	assert_json_int(b, "vcpus", 16);
	assert_json_int(b, "weight", 250);
	assert_true(json_is_number(json_object_get(b, "cpu_max_cores")));
	assert_true(json_number_value(json_object_get(b, "cpu_max_cores")) == 2.5);
	assert_json_int(b, "memory_bytes", 1073741824);
	assert_json_str(b, "class", "best-effort");
	cli_request_clear(&r);
}

static void test_build_create_name_last(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;
	assert_int_equal(BUILD(&r, &err, "create", "--vcpus", "0", "--class", "guaranteed", "z"), 0);
	json_t *b = body_of(&r);
	assert_json_str(b, "name", "z");
	assert_json_int(b, "vcpus", 0);
	assert_json_str(b, "class", "guaranteed");
	cli_request_clear(&r);

	/* the last of a repeated option wins */
	assert_int_equal(BUILD(&r, &err, "create", "a", "--vcpus", "1", "--vcpus", "65536"), 0);
	assert_json_int(body_of(&r), "vcpus", 65536);
	cli_request_clear(&r);
}

static void test_build_list_show_delete(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(BUILD(&r, &err, "list"), 0);
	assert_request(&r, "GET", "/v1/tenants", NULL);
	assert_false(r.json);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "list", "--json"), 0);
	assert_true(r.json);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "show", "acme"), 0);
	assert_request(&r, "GET", "/v1/tenants/acme", "acme");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "delete", "--json", "acme"), 0);
	assert_request(&r, "DELETE", "/v1/tenants/acme", "acme");
	assert_true(r.json);
	cli_request_clear(&r);

	/* after "--" a name may start with '-' */
	assert_int_equal(BUILD(&r, &err, "show", "--", "-x"), 0);
	assert_string_equal(r.path, "/v1/tenants/-x");
	cli_request_clear(&r);
	assert_null(err);
}

static void test_build_set(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(BUILD(&r, &err, "set", "acme", "--vcpus", "12"), 0);
	assert_string_equal(r.method, "PATCH");
	assert_string_equal(r.path, "/v1/tenants/acme");
	json_t *b = body_of(&r);
	assert_int_equal(json_object_size(b), 1);
	assert_json_int(b, "vcpus", 12);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "set", "--weight", "10000", "acme"), 0);
	b = body_of(&r);
	assert_int_equal(json_object_size(b), 1);
	assert_json_int(b, "weight", 10000);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "set", "acme", "--cpu-max", "0.5"), 0);
	b = body_of(&r);
	assert_int_equal(json_object_size(b), 1);
	assert_true(json_number_value(json_object_get(b, "cpu_max_cores")) == 0.5);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "set", "acme", "--memory", "512M"), 0);
	assert_json_int(body_of(&r), "memory_bytes", 512LL << 20);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "set", "acme", "--class", "burstable"), 0);
	assert_json_str(body_of(&r), "class", "burstable");
	cli_request_clear(&r);

	/* "none" clears a limit: JSON null */
	assert_int_equal(BUILD(&r, &err, "set", "acme", "--cpu-max", "none", "--memory", "none"), 0);
	b = body_of(&r);
	assert_int_equal(json_object_size(b), 2);
	assert_true(json_is_null(json_object_get(b, "cpu_max_cores")));
	assert_true(json_is_null(json_object_get(b, "memory_bytes")));
	assert_null(json_object_get(b, "name"));
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "set", "acme", "--vcpus", "1", "--weight", "1",
			       "--cpu-max", "4096", "--memory", "4K", "--class", "guaranteed"), 0);
	assert_int_equal(json_object_size(body_of(&r)), 5);
	assert_json_int(body_of(&r), "memory_bytes", 4096);
	cli_request_clear(&r);
	assert_null(err);
}

static void test_build_help(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;
	assert_int_equal(BUILD(&r, &err, "create", "--help"), 0);
	assert_true(r.help);
	assert_null(r.method);
	assert_null(r.path);
	assert_contains(r.usage, "tenant create NAME --vcpus N");
	assert_contains(r.help_text, "--memory SIZE");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "delete", "-h"), 0);
	assert_true(r.help);
	assert_contains(r.usage, "tenant delete NAME");
	cli_request_clear(&r);
}

/* Each of these must be refused before any I/O, with EINVAL or ERANGE (exit
 * 2), a message naming the problem and the subcommand's usage line. */
static void test_build_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(strlen(long_name), 65);
	const struct bad_case cases[] = {
		{ "tenant create", "missing --vcpus", { "create", "acme" } },
		{ "tenant create", "missing --vcpus", { "create", "acme", "--weight", "5" } },
		{ "tenant create", "missing tenant NAME", { "create", "--vcpus", "4" } },
		{ "tenant create", "--weight: 0 is out of range (1..10000)",
		  { "create", "acme", "--vcpus", "4", "--weight", "0" } },
		{ "tenant create", "--weight: 10001 is out of range (1..10000)",
		  { "create", "acme", "--vcpus", "4", "--weight", "10001" } },
		{ "tenant create", "--weight: 'ten' is not a whole number",
		  { "create", "acme", "--vcpus", "4", "--weight", "ten" } },
		{ "tenant create", "--vcpus: 65537 is out of range (0..65536)",
		  { "create", "acme", "--vcpus", "65537" } },
		{ "tenant create", "--vcpus: '-1' is not a whole number",
		  { "create", "acme", "--vcpus", "-1" } },
		{ "tenant create", "--vcpus: '8x' is not a whole number",
		  { "create", "acme", "--vcpus", "8x" } },
		{ "tenant create", "--memory: invalid size '12Q'",
		  { "create", "acme", "--vcpus", "4", "--memory", "12Q" } },
		{ "tenant create", "--memory: 1K is out of range (4K..1024T)",
		  { "create", "acme", "--vcpus", "4", "--memory", "1K" } },
		{ "tenant create", "--memory: 1025T is out of range",
		  { "create", "acme", "--vcpus", "4", "--memory", "1025T" } },
		{ "tenant create", "--memory none only applies to 'tenant set'",
		  { "create", "acme", "--vcpus", "4", "--memory", "none" } },
		{ "tenant create", "--cpu-max: -1 is out of range (0.01..4096)",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "-1" } },
		{ "tenant create", "--cpu-max: 0 is out of range",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "0" } },
		{ "tenant create", "--cpu-max: 4097 is out of range",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "4097" } },
		{ "tenant create", "--cpu-max: 'inf' is not a number",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "inf" } },
		{ "tenant create", "--cpu-max: '2 cores' is not a number",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "2 cores" } },
		{ "tenant create", "--cpu-max none only applies to 'tenant set'",
		  { "create", "acme", "--vcpus", "4", "--cpu-max", "none" } },
		{ "tenant create", "--class: invalid class 'gold'",
		  { "create", "acme", "--vcpus", "4", "--class", "gold" } },
		{ "tenant create", "--class: invalid class 'Guaranteed'",
		  { "create", "acme", "--vcpus", "4", "--class", "Guaranteed" } },
		{ "tenant create", "unknown option '--cpus'",
		  { "create", "acme", "--cpus", "4" } },
		{ "tenant create", "unknown option '-x'", { "create", "acme", "-x" } },
		{ "tenant create", "option '--vcpus' needs a value", { "create", "acme", "--vcpus" } },
		{ "tenant create", "option '--json' does not take a value",
		  { "create", "acme", "--vcpus", "1", "--json=yes" } },
		{ "tenant create", "unexpected argument 'extra'",
		  { "create", "acme", "extra", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name '../x'", { "create", "../x", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name 'a/b'", { "create", "a/b", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name '..'", { "create", "..", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name '.'", { "create", ".", "--vcpus", "4" } },
		{ "tenant create", "tenant name is empty", { "create", "", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name 'a123", { "create", (char *)long_name, "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name 'a b'", { "create", "a b", "--vcpus", "4" } },
		{ "tenant create", "invalid tenant name 'a?x=1'", { "create", "a?x=1", "--vcpus", "4" } },
		{ "tenant list", "unexpected argument 'acme'", { "list", "acme" } },
		{ "tenant list", "unknown option '--vcpus'", { "list", "--vcpus", "3" } },
		{ "tenant show", "missing tenant NAME", { "show" } },
		{ "tenant show", "unexpected argument 'b'", { "show", "a", "b" } },
		{ "tenant show", "unexpected argument 'b'", { "show", "a", "--", "b" } },
		{ "tenant show", "invalid tenant name '../etc'", { "show", "../etc" } },
		{ "tenant show", "invalid tenant name 'a/b'", { "show", "a/b" } },
		{ "tenant show", "tenant name is empty", { "show", "" } },
		{ "tenant show", "unknown option '--weight'", { "show", "a", "--weight", "3" } },
		{ "tenant delete", "missing tenant NAME", { "delete" } },
		{ "tenant delete", "invalid tenant name '../x'", { "delete", "../x" } },
		{ "tenant delete", "invalid tenant name 'a/b'", { "delete", "a/b" } },
		{ "tenant delete", "unexpected argument 'y'", { "delete", "x", "y" } },
		{ "tenant set", "nothing to change", { "set", "acme" } },
		{ "tenant set", "nothing to change", { "set", "acme", "--json" } },
		{ "tenant set", "missing tenant NAME", { "set", "--vcpus", "3" } },
		{ "tenant set", "--weight: 0 is out of range", { "set", "acme", "--weight", "0" } },
		{ "tenant set", "--weight: 10001 is out of range", { "set", "acme", "--weight", "10001" } },
		{ "tenant set", "--cpu-max: -1 is out of range", { "set", "acme", "--cpu-max", "-1" } },
		{ "tenant set", "--cpu-max: 'None' is not a number", { "set", "acme", "--cpu-max", "None" } },
		{ "tenant set", "--memory: invalid size '12Q'", { "set", "acme", "--memory", "12Q" } },
		{ "tenant set", "--memory: invalid size ''", { "set", "acme", "--memory", "" } },
		{ "tenant set", "--class: invalid class ''", { "set", "acme", "--class", "" } },
		{ "tenant set", "invalid tenant name '../x'", { "set", "../x", "--vcpus", "3" } },
		{ "tenant set", "invalid tenant name 'a123", { "set", (char *)long_name, "--vcpus", "3" } },
		{ "tenant set", "unknown option '--name'", { "set", "acme", "--name", "b" } },
		{ "tenant set", "option '--class' needs a value", { "set", "acme", "--class" } },
		{ "tenant create|list|show|set|delete", "unknown tenant command 'rm'", { "rm", "acme" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bad_case *c = &cases[i];
		struct cli_request r;
		struct error *err;
		assert_build_refused(cli_tenant_build, i, c, &r, &err);
		if (strcmp(c->usage, "tenant create|list|show|set|delete") == 0) {
			/* an unknown subcommand shows the whole group */
			assert_contains(r.usage, "tenant create NAME");
			assert_contains(r.usage, "tenant delete NAME");
		} else {
			assert_contains(r.usage, c->usage);
		}
		error_free(&err);
		cli_request_clear(&r);
	}
}

static void test_build_no_subcommand(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;
	assert_int_equal(cli_tenant_build(0, ARGV(NULL), &r, &err), -1);
	assert_contains(err->msg, "missing tenant command");
	error_free(&err);
	cli_request_clear(&r);
}

/* --- the option parser every command uses ------------------------------ */

enum { T_OPT_VALUE = CLI_OPT_FIRST, T_OPT_FLAG };

static const struct option t_opts[] = {
	{ "value", required_argument, NULL, T_OPT_VALUE },
	{ "flag", no_argument, NULL, T_OPT_FLAG },
	{ "follow", no_argument, NULL, 'f' },
	{ "count", required_argument, NULL, 'n' },
	CLI_OPTS_COMMON
};

#define ARGS_PARSE(a, takes_name, err, ...) \
	cli_args_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), t_opts, takes_name, a, err)

static void test_args_parse(void **state)
{
	(void)state;
	struct cli_args a;
	struct error *err = NULL;

	/* nothing given: no name, every option NULL */
	assert_int_equal(ARGS_PARSE(&a, true, &err, "cmd"), 0);
	assert_null(a.name);
	assert_null(cli_arg(&a, T_OPT_VALUE));
	assert_false(cli_arg_set(&a, T_OPT_FLAG));
	assert_false(cli_arg_set(&a, 'h'));
	assert_false(cli_arg_set(&a, CLI_OPT_JSON));
	/* a value not in the table */
	assert_null(cli_arg(&a, 'z'));

	/* options before and after NAME, --opt=value, the last of a repeated
	 * one wins, "" for a flag, letters as short options */
	assert_int_equal(ARGS_PARSE(&a, true, &err, "cmd", "--value", "1", "x", "--value=2",
				    "--flag", "-f", "-n", "5", "--json"), 0);
	assert_string_equal(a.name, "x");
	assert_string_equal(cli_arg(&a, T_OPT_VALUE), "2");
	assert_string_equal(cli_arg(&a, T_OPT_FLAG), "");
	assert_string_equal(cli_arg(&a, 'f'), "");
	assert_string_equal(cli_arg(&a, 'n'), "5");
	assert_true(cli_arg_set(&a, CLI_OPT_JSON));
	assert_false(cli_arg_set(&a, 'h'));

	/* an empty value is given, not absent; "-h", "-fn3" bundled, "--" */
	assert_int_equal(ARGS_PARSE(&a, true, &err, "cmd", "--value=", "-h", "-fn3", "--",
				    "-name"), 0);
	assert_string_equal(cli_arg(&a, T_OPT_VALUE), "");
	assert_true(cli_arg_set(&a, 'h'));
	assert_true(cli_arg_set(&a, 'f'));
	assert_string_equal(cli_arg(&a, 'n'), "3");
	assert_string_equal(a.name, "-name");

	/* unique prefixes of long options */
	assert_int_equal(ARGS_PARSE(&a, false, &err, "cmd", "--val", "v", "--fl", "--js"), 0);
	assert_string_equal(cli_arg(&a, T_OPT_VALUE), "v");
	assert_true(cli_arg_set(&a, T_OPT_FLAG));
	assert_true(cli_arg_set(&a, CLI_OPT_JSON));
	assert_null(err);

	static const struct {
		bool takes_name;
		const char *msg;
		char *argv[6];
	} bad[] = {
		{ false, "unexpected argument 'x'", { "cmd", "x" } },
		{ false, "unexpected argument 'x'", { "cmd", "--flag", "--", "x" } },
		{ true, "unexpected argument 'y'", { "cmd", "x", "y" } },
		{ true, "unexpected argument 'y'", { "cmd", "x", "--", "y" } },
		{ true, "unknown option '--nope'", { "cmd", "--nope=1" } },
		{ true, "unknown option '--f'", { "cmd", "--f" } }, /* ambiguous */
		{ true, "unknown option '-x'", { "cmd", "-x" } },
		{ true, "option '--value' needs a value", { "cmd", "--value" } },
		{ true, "option '--count' needs a value", { "cmd", "-n" } }, /* its long name */
		{ true, "option '--flag' does not take a value", { "cmd", "--flag=1" } },
		{ true, "option '--help' does not take a value", { "cmd", "--help=1" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char **argv = (char **)bad[i].argv;
		int rc = cli_args_parse(argv_len(argv), argv, t_opts, bad[i].takes_name, &a, &err);
		assert_usage_error(i, argv, rc, err, bad[i].msg);
		error_free(&err);
	}
}

/* --- value parsing ---------------------------------------------------- */

static void test_class_parsing(void **state)
{
	(void)state;
	enum tenant_class c;
	struct error *err = NULL;
	assert_int_equal(tenant_class_from_string("guaranteed", &c, &err), 0);
	assert_int_equal(c, TENANT_CLASS_GUARANTEED);
	assert_int_equal(tenant_class_from_string("burstable", &c, &err), 0);
	assert_int_equal(c, TENANT_CLASS_BURSTABLE);
	assert_int_equal(tenant_class_from_string("best-effort", &c, &err), 0);
	assert_int_equal(c, TENANT_CLASS_BEST_EFFORT);
	assert_int_equal(tenant_class_from_string("besteffort", &c, &err), -1);
	error_free(&err);

	/* each class goes into the body under its wire name */
	static const char *const names[] = { "guaranteed", "burstable", "best-effort" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct cli_request r;
		assert_int_equal(BUILD(&r, &err, "create", "t", "--vcpus", "1", "--class",
				       (char *)names[i]), 0);
		assert_json_str(body_of(&r), "class", names[i]);
		cli_request_clear(&r);
	}
}

static void test_size_suffixes(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int64_t bytes;
	} good[] = {
		{ "4096", 4096 },
		{ "4K", 4096 },
		{ "4k", 4096 },
		{ "512M", 512LL << 20 },
		{ "1536M", 1536LL << 20 },
		{ "2G", 2LL << 30 },
		{ "2g", 2LL << 30 },
		{ "4GiB", 4LL << 30 },
		{ "4GB", 4LL << 30 },
		{ "1T", 1LL << 40 },
		{ "1024T", 1LL << 50 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct error *err = NULL;
		bool set = false;
		int64_t v = 0;
		if (cli_tenant_parse_memory(good[i].in, false, &set, &v, &err) < 0)
			fail_msg("%s: %s", good[i].in, err->msg);
		assert_true(set);
		assert_int_equal(v, good[i].bytes);
	}
	static const char *const bad[] = {
		"12Q", "", "-1G", "1.5G", "G", "4 G", "4096 ", "1K", "4095", "1025T", "1P",
		"99999999999999999999", "none",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error *err = NULL;
		bool set = false;
		int64_t v = 0;
		if (cli_tenant_parse_memory(bad[i], false, &set, &v, &err) == 0)
			fail_msg("'%s' accepted as %lld bytes", bad[i], (long long)v);
		assert_non_null(err);
		assert_int_equal(cli_exit_for_errno(err->code), CLI_EXIT_USAGE);
		error_free(&err);
	}
	struct error *err = NULL;
	bool set = true;
	int64_t v = 7;
	assert_int_equal(cli_tenant_parse_memory("none", true, &set, &v, &err), 0);
	assert_false(set);
	assert_int_equal(v, 0);
}

static void test_cpu_max_values(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		double cores;
	} good[] = { { "2.5", 2.5 }, { "0.01", 0.01 }, { "4096", 4096 }, { "1", 1 }, { ".5", 0.5 } };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct error *err = NULL;
		bool set = false;
		double v = 0;
		if (cli_tenant_parse_cpu_max(good[i].in, false, &set, &v, &err) < 0)
			fail_msg("%s: %s", good[i].in, err->msg);
		assert_true(set);
		assert_true(v == good[i].cores);
	}
	static const char *const bad[] = {
		"-1", "0", "0.001", "4096.5", "abc", "inf", "nan", "", "2,5", "none",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error *err = NULL;
		bool set = false;
		double v = 0;
		if (cli_tenant_parse_cpu_max(bad[i], false, &set, &v, &err) == 0)
			fail_msg("'%s' accepted as %g cores", bad[i], v);
		assert_int_equal(cli_exit_for_errno(err->code), CLI_EXIT_USAGE);
		error_free(&err);
	}
	struct error *err = NULL;
	bool set = true;
	double v = 3;
	assert_int_equal(cli_tenant_parse_cpu_max("none", true, &set, &v, &err), 0);
	assert_false(set);
}

/* --- rendering -------------------------------------------------------- */

static char *render_table(const struct tenant *ts, size_t n)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_tenant_print_table(f, ts, n);
	fclose(f);
	return buf;
}

static void sample_tenants(struct tenant ts[3])
{
	for (int i = 0; i < 3; i++)
		tenant_init(&ts[i]);
	strcpy(ts[0].name, "acme");
	ts[0].vcpus = 8;
	ts[0].vcpus_used = 6;
	ts[0].vm_count = 2;
	ts[0].cpu_max_set = true;
	ts[0].cpu_max_cores = 2.5;
	ts[0].memory_set = true;
	ts[0].memory_bytes = 1LL << 30;
	strcpy(ts[1].name, "beta-corporation");
	ts[1].vcpus = 128;
	ts[1].weight = 10000;
	ts[1].class_ = TENANT_CLASS_BEST_EFFORT;
	ts[1].memory_set = true;
	ts[1].memory_bytes = 1536LL << 20;
	strcpy(ts[2].name, "g");
	ts[2].vcpus = 0;
	ts[2].weight = 1;
	ts[2].class_ = TENANT_CLASS_GUARANTEED;
	ts[2].cpu_max_set = true;
	ts[2].cpu_max_cores = 16;
	ts[2].vm_count = 0;
	ts[2].memory_set = true;
	ts[2].memory_bytes = 5000; /* not a multiple of 1024: plain bytes */
}

static void test_table_render(void **state)
{
	(void)state;
	struct tenant ts[3];
	sample_tenants(ts);
	char *out = render_table(ts, 3);
	assert_string_equal(out,
		"NAME              VCPUS  USED  WEIGHT  CPU-MAX  MEMORY  CLASS        VMS\n"
		"acme              8      6     100     2.5      1G      burstable    2\n"
		"beta-corporation  128    0     10000   -        1536M   best-effort  0\n"
		"g                 0      0     1       16       5000    guaranteed   0\n");
	free(out);

	out = render_table(ts, 0);
	assert_string_equal(out, "no tenants\n");
	free(out);
}

static void test_table_generic(void **state)
{
	(void)state;
	static const char *const h[] = { "A", "LONGER", "C" };
	struct table *t = table_new(3, h);
	table_row(t);
	table_cell(t, "%d", 12345);
	table_cell(t, "x");
	table_cell(t, "%s", ""); /* empty last cell: no trailing blanks */
	table_row(t);
	table_cell(t, "b");      /* short row: the rest empty */
	table_row(t);
	table_cell(t, "1");
	table_cell(t, "2");
	table_cell(t, "3");
	table_cell(t, "ignored");
	assert_int_equal(table_rows(t), 3);
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	table_print(t, f);
	fclose(f);
	assert_string_equal(buf,
		"A      LONGER  C\n"
		"12345  x\n"
		"b\n"
		"1      2       3\n");
	free(buf);
	table_free(t);

	/* many rows grow the table */
	t = table_new(1, (const char *const[]){ "N" });
	for (int i = 0; i < 100; i++) {
		table_row(t);
		table_cell(t, "%d", i);
	}
	assert_int_equal(table_rows(t), 100);
	table_free(t);
}

static void test_show_render(void **state)
{
	(void)state;
	struct tenant ts[3];
	sample_tenants(ts);
	ts[0].created_at = 1700000000;
	ts[0].updated_at = 1700003600;
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_tenant_print(f, &ts[0]);
	cli_tenant_print(f, &ts[1]);
	fclose(f);
	assert_string_equal(buf,
		"name:        acme\n"
		"class:       burstable\n"
		"vcpus:       8\n"
		"vcpus used:  6\n"
		"vms:         2\n"
		"weight:      100\n"
		"cpu max:     2.5 cores\n"
		"memory:      1G\n"
		"created:     2023-11-14T22:13:20Z\n"
		"updated:     2023-11-14T23:13:20Z\n"
		"name:        beta-corporation\n"
		"class:       best-effort\n"
		"vcpus:       128\n"
		"vcpus used:  0\n"
		"vms:         0\n"
		"weight:      10000\n"
		"cpu max:     none\n"
		"memory:      1536M\n"
		"created:     -\n"
		"updated:     -\n");
	free(buf);
}

static void test_list_from_reply(void **state)
{
	(void)state;
	json_t *reply = json_loads(
		"{\"tenants\":[{\"name\":\"acme\",\"vcpus\":8,\"weight\":100,\"cpu_max_cores\":2.5,"
		"\"memory_bytes\":null,\"class\":\"guaranteed\",\"vcpus_used\":3,\"vm_count\":1,"
		"\"created_at\":1,\"updated_at\":2,\"future_key\":true},"
		"{\"name\":\"b\",\"vcpus\":1,\"weight\":5,\"cpu_max_cores\":null,"
		"\"memory_bytes\":8192,\"class\":\"best-effort\"}]}", 0, NULL);
	assert_non_null(reply);
	struct tenant *ts = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cli_tenant_list_from_reply(reply, &ts, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ts[0].name, "acme");
	assert_int_equal(ts[0].vcpus_used, 3);
	assert_true(ts[0].cpu_max_set);
	assert_false(ts[0].memory_set);
	assert_int_equal(ts[0].class_, TENANT_CLASS_GUARANTEED);
	assert_string_equal(ts[1].name, "b");
	assert_true(ts[1].memory_set);
	assert_int_equal(ts[1].memory_bytes, 8192);
	char *out = render_table(ts, n);
	assert_string_equal(out,
		"NAME  VCPUS  USED  WEIGHT  CPU-MAX  MEMORY  CLASS        VMS\n"
		"acme  8      3     100     2.5      -       guaranteed   1\n"
		"b     1      0     5       -        8K      best-effort  0\n");
	free(out);
	free(ts);
	json_decref(reply);

	static const char *const bad[] = {
		"{}", "[]", "{\"tenants\":{}}", "{\"tenants\":[1]}", "{\"tenants\":[{\"vcpus\":1}]}",
		"{\"tenants\":[{\"name\":\"a\",\"class\":\"gold\"}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		reply = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		assert_non_null(reply);
		ts = NULL;
		if (cli_tenant_list_from_reply(reply, &ts, &n, &err) == 0)
			fail_msg("malformed reply accepted: %s", bad[i]);
		assert_int_equal(err->code, EPROTO);
		assert_null(ts);
		error_free(&err);
		json_decref(reply);
	}
}

/* --- the whole program ------------------------------------------------ */

static void test_main_help_and_usage(void **state)
{
	(void)state;
	struct cap c;

	RUN(&c, "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "usage: vcpuctl");
	assert_contains(c.out, "tenant");
	assert_contains(c.out, "policy");
	assert_contains(c.out, "Exit codes:");
	static const char *const codes[] = {
		"  0  success", "  1  other error", "  2  usage error", "  3  not found",
		"  4  conflict", "  5  vcpud unreachable", "  6  permission denied",
	};
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		assert_contains(c.out, codes[i]);
	assert_contains(c.out, "VCPUD_SOCKET");
	assert_contains(c.out, CLI_DEFAULT_SOCKET);
	assert_string_equal(c.err, "");
	cap_free(&c);

	RUN(&c, "help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "Exit codes:");
	cap_free(&c);

	RUN(&c, "--version");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "vcpuctl " VCPUD_VERSION "\n");
	cap_free(&c);

	run_argv(&c, 1, ARGV("vcpuctl"));
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: missing COMMAND");
	assert_contains(c.err, "usage: vcpuctl");
	assert_string_equal(c.out, "");
	cap_free(&c);

	RUN(&c, "frobnicate");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: unknown command 'frobnicate'");
	cap_free(&c);

	RUN(&c, "--bogus", "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "unknown option '--bogus'");
	cap_free(&c);

	RUN(&c, "--socket");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "needs a value");
	cap_free(&c);

	RUN(&c, "--timeout", "0", "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "--timeout");
	cap_free(&c);

	RUN(&c, "help", "tenant");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "vcpuctl tenant create NAME --vcpus N");
	assert_contains(c.out, "vcpuctl tenant delete NAME");
	cap_free(&c);

	RUN(&c, "help", "nope");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	cap_free(&c);

	RUN(&c, "tenant", "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "vcpuctl tenant set NAME");
	cap_free(&c);

	RUN(&c, "tenant", "help", "set");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "'none' as --cpu-max or --memory removes that limit");
	cap_free(&c);

	RUN(&c, "tenant", "create", "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "usage: vcpuctl tenant create NAME --vcpus N");
	assert_contains(c.out, "--class CLASS");
	assert_string_equal(c.err, "");
	cap_free(&c);

	RUN(&c, "tenant");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "missing tenant command");
	cap_free(&c);

	RUN(&c, "tenant", "rm", "x");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: unknown tenant command 'rm'");
	assert_contains(c.err, "usage: vcpuctl tenant create");
	cap_free(&c);

	/* a usage error names the problem, shows the usage line, sends nothing
	 * (the socket does not exist: reaching for it would exit 5) */
	RUN(&c, "--socket", "/nonexistent/vcpud.sock", "tenant", "create", "acme", "--weight", "0",
	    "--vcpus", "2");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: --weight: 0 is out of range (1..10000)\n"
			       "usage: vcpuctl tenant create NAME --vcpus N");
	assert_contains(c.err, "Try 'vcpuctl tenant create --help'");
	assert_string_equal(c.out, "");
	cap_free(&c);
}

/* A socket path that does not exist: exit 5 and a message naming it. */
static void test_unreachable(void **state)
{
	(void)state;
	char dir[] = "/tmp/vcpuctl-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *sock = path_join(dir, "missing.sock", NULL);
	struct cap c;

	RUN(&c, "--socket", sock, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	char *want = xasprintf("vcpuctl: cannot reach vcpud at %s: No such file or directory "
			       "(is vcpud running? use --socket or VCPUD_SOCKET)\n", sock);
	assert_string_equal(c.err, want);
	assert_string_equal(c.out, "");
	free(want);
	cap_free(&c);

	/* --json does not change it: there is no server JSON to print */
	RUN(&c, "--json", "--socket", sock, "tenant", "show", "acme");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, sock);
	assert_string_equal(c.out, "");
	cap_free(&c);

	/* the default comes from VCPUD_SOCKET */
	char *old = getenv("VCPUD_SOCKET") ? xstrdup(getenv("VCPUD_SOCKET")) : NULL;
	setenv("VCPUD_SOCKET", sock, 1);
	RUN(&c, "tenant", "delete", "acme");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, sock);
	cap_free(&c);
	/* --socket beats the environment */
	RUN(&c, "--socket", "/nonexistent-vcpuctl/x.sock", "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "at /nonexistent-vcpuctl/x.sock:");
	cap_free(&c);
	if (old)
		setenv("VCPUD_SOCKET", old, 1);
	else
		unsetenv("VCPUD_SOCKET");
	free(old);

	/* a socket nobody listens on */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	RUN(&c, "--socket", sock, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "cannot reach vcpud at ");
	assert_contains(c.err, "Connection refused");
	cap_free(&c);
	close(fd);
	unlink(sock);

	/* a socket path too long for sun_path is bad input */
	char *long_path = xasprintf("/tmp/%0200d.sock", 0);
	RUN(&c, "--socket", long_path, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "too long");
	cap_free(&c);
	free(long_path);

	free(sock);
	rmdir(dir);
}

/* --url and its options: usage errors said before anything is sent; a
 * token file others may read is refused; VCPUD_URL is the default unless
 * --socket is given; nobody listening is "unreachable". */
static void test_remote_options(void **state)
{
	(void)state;
	char dir[] = "/tmp/vcpuctl-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *tok = path_join(dir, "token", NULL);
	FILE *f = fopen(tok, "w");
	fputs("  s3cret-token \nsecond line ignored\n", f);
	fclose(f);
	chmod(tok, 0600);
	struct cap c;
	const struct {
		const char *a[6];
		int rc;
		const char *msg;
	} cases[] = {
		{ { "--url", "https://h:1", "--socket", "/x", "tenant", "list" }, CLI_EXIT_USAGE,
		  "--socket and --url: one or the other" },
		{ { "--token-file", "/x", "tenant", "list" }, CLI_EXIT_USAGE,
		  "--token-file goes with --url" },
		{ { "--cacert", "/x", "tenant", "list" }, CLI_EXIT_USAGE, "--cacert goes with --url" },
		{ { "--url", "ftp://h", "tenant", "list" }, CLI_EXIT_USAGE,
		  "is not https://HOST[:PORT]" },
		{ { "--url", "http://192.0.2.1:80", "tenant", "list" }, CLI_EXIT_USAGE,
		  "plain http only to a loopback address" },
		{ { "--url", "", "tenant", "list" }, CLI_EXIT_USAGE, "--url needs a URL" },
		{ { "--url", "https://127.0.0.1:9", "--token-file", "/nonexistent/t", "tenant",
		    "list" }, CLI_EXIT_NOT_FOUND, "cannot open token file /nonexistent/t" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[8] = { (char *)"vcpuctl" };
		int argc = 1;
		for (int k = 0; k < 6 && cases[i].a[k]; k++)
			argv[argc++] = (char *)cases[i].a[k];
		run_argv(&c, argc, argv);
		if (c.rc != cases[i].rc || !strstr(c.err, cases[i].msg))
			fail_msg("case %zu: rc %d: %s", i, c.rc, c.err);
		cap_free(&c);
	}
	/* a token anyone may read */
	chmod(tok, 0644);
	RUN(&c, "--url", "http://127.0.0.1:9", "--token-file", tok, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_FORBIDDEN);
	assert_contains(c.err, "may be read by anyone (mode 0644): chmod o-r it");
	cap_free(&c);
	chmod(tok, 0600);
	/* port 9 on loopback: nobody (discard is not run) */
	RUN(&c, "--url", "http://127.0.0.1:9", "--token-file", tok, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "cannot reach vcpud at http://127.0.0.1:9: Connection refused "
			"(is vcpud listening there (vcpud --listen)? use --url or VCPUD_URL)");
	cap_free(&c);
	/* VCPUD_URL is taken unless --socket is given */
	setenv("VCPUD_URL", "http://127.0.0.1:9", 1);
	RUN(&c, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "http://127.0.0.1:9");
	cap_free(&c);
	RUN(&c, "--socket", "/nonexistent-vcpuctl/x.sock", "tenant", "list");
	assert_contains(c.err, "/nonexistent-vcpuctl/x.sock");
	cap_free(&c);
	/* commands that need no daemon do not read them: policy, help */
	setenv("VCPUD_TOKEN_FILE", "/nonexistent/token", 1);
	RUN(&c, "policy", "show", "--defaults");
	assert_int_equal(c.rc, CLI_EXIT_OK);
	cap_free(&c);
	RUN(&c, "help", "tenant");
	assert_int_equal(c.rc, CLI_EXIT_OK);
	cap_free(&c);
	RUN(&c, "tenant", "list");
	assert_int_equal(c.rc, CLI_EXIT_NOT_FOUND);
	assert_contains(c.err, "cannot open token file /nonexistent/token");
	cap_free(&c);
	unsetenv("VCPUD_TOKEN_FILE");
	unsetenv("VCPUD_URL");
	unlink(tok);
	rmdir(dir);
}

/* --- against a fake vcpud (cli_test_util.h) ----------------------------- */

static const char acme_json[] =
	"{\"name\":\"acme\",\"vcpus\":8,\"weight\":100,\"cpu_max_cores\":2.5,"
	"\"memory_bytes\":1073741824,\"class\":\"burstable\",\"vcpus_used\":0,"
	"\"vm_count\":0,\"created_at\":1700000000,\"updated_at\":1700000000}";

static void test_fake_create(void **state)
{
	(void)state;
	struct fake f;
	struct cap c;
	fake_start(&f, 201, acme_json);
	RUN(&c, "--socket", f.sock, "tenant", "create", "acme", "--vcpus", "8", "--memory", "1G",
	    "--cpu-max", "2.5");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "tenant acme created\n");
	assert_string_equal(c.err, "");
	/* the server saw the request as built */
	assert_true(str_has_prefix(f.requests, "POST /v1/tenants\n"));
	json_t *b = json_loads(strchr(f.requests, '\n') + 1, 0, NULL);
	assert_non_null(b);
	assert_json_str(b, "name", "acme");
	assert_json_int(b, "vcpus", 8);
	assert_json_int(b, "memory_bytes", 1LL << 30);
	assert_true(json_number_value(json_object_get(b, "cpu_max_cores")) == 2.5);
	json_decref(b);
	free(f.requests);
	cap_free(&c);
}

static void test_fake_show_and_list(void **state)
{
	(void)state;
	struct fake f;
	struct cap c;

	fake_start(&f, 200, acme_json);
	RUN(&c, "--socket", f.sock, "tenant", "show", "acme");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(f.requests, "GET /v1/tenants/acme\n");
	assert_contains(c.out, "name:        acme\n");
	assert_contains(c.out, "cpu max:     2.5 cores\n");
	assert_contains(c.out, "created:     2023-11-14T22:13:20Z\n");
	free(f.requests);
	cap_free(&c);

	/* --json after the subcommand: the reply as received, indented */
	fake_start(&f, 200, acme_json);
	RUN(&c, "--socket", f.sock, "tenant", "show", "acme", "--json");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "{\n  \"name\": \"acme\",\n  \"vcpus\": 8,\n"));
	json_t *j = json_loads(c.out, 0, NULL);
	json_t *want = json_loads(acme_json, 0, NULL);
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);
	free(f.requests);
	cap_free(&c);

	char *list = xasprintf("{\"tenants\":[%s]}", acme_json);
	fake_start(&f, 200, list);
	RUN(&c, "--socket", f.sock, "tenant", "list");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(f.requests, "GET /v1/tenants\n");
	assert_string_equal(c.out,
		"NAME  VCPUS  USED  WEIGHT  CPU-MAX  MEMORY  CLASS      VMS\n"
		"acme  8      0     100     2.5      1G      burstable  0\n");
	free(f.requests);
	cap_free(&c);
	free(list);
}

static void test_fake_set_delete(void **state)
{
	(void)state;
	struct fake f;
	struct cap c;

	fake_start(&f, 200, acme_json);
	RUN(&c, "--socket", f.sock, "tenant", "set", "acme", "--cpu-max", "none");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "tenant acme updated\n");
	assert_string_equal(f.requests, "PATCH /v1/tenants/acme\n{\"cpu_max_cores\":null}");
	free(f.requests);
	cap_free(&c);

	fake_start(&f, 204, NULL);
	RUN(&c, "--socket", f.sock, "tenant", "delete", "acme");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "tenant acme deleted\n");
	assert_string_equal(f.requests, "DELETE /v1/tenants/acme\n");
	free(f.requests);
	cap_free(&c);

	/* no body, nothing to print in --json mode */
	fake_start(&f, 204, NULL);
	RUN(&c, "--json", "--socket", f.sock, "tenant", "delete", "acme");
	fake_finish(&f);
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "");
	free(f.requests);
	cap_free(&c);
}

/* Server errors: the server's message on stderr, the exit code from the
 * status, and in --json mode the error JSON on stdout too. */
static void test_fake_errors(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *code;
		int exit;
	} cases[] = {
		{ 400, "invalid", CLI_EXIT_USAGE },
		{ 403, "forbidden", CLI_EXIT_FORBIDDEN },
		{ 404, "not_found", CLI_EXIT_NOT_FOUND },
		{ 409, "conflict", CLI_EXIT_CONFLICT },
		{ 413, "too_large", CLI_EXIT_USAGE },
		{ 500, "internal", CLI_EXIT_ERROR },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int json = 0; json < 2; json++) {
			char *body = xasprintf("{\"error\":{\"code\":\"%s\",\"message\":\"boom %d\"}}",
					       cases[i].code, cases[i].status);
			struct fake f;
			struct cap c;
			fake_start(&f, cases[i].status, body);
			if (json)
				RUN(&c, "--json", "--socket", f.sock, "tenant", "show", "acme");
			else
				RUN(&c, "--socket", f.sock, "tenant", "show", "acme");
			fake_finish(&f);
			assert_int_equal(c.rc, cases[i].exit);
			char *msg = xasprintf("vcpuctl: boom %d\n", cases[i].status);
			assert_string_equal(c.err, msg);
			if (json) {
				json_t *got = json_loads(c.out, 0, NULL);
				json_t *want = json_loads(body, 0, NULL);
				assert_non_null(got);
				assert_true(json_equal(got, want));
				json_decref(got);
				json_decref(want);
			} else {
				assert_string_equal(c.out, "");
			}
			free(msg);
			free(body);
			free(f.requests);
			cap_free(&c);
		}
	}
}

static void test_fake_bad_replies(void **state)
{
	(void)state;
	struct fake f;
	struct cap c;

	/* not JSON */
	fake_start(&f, 200, "<html>hello</html>");
	RUN(&c, "--socket", f.sock, "tenant", "list");
	fake_finish(&f);
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "not JSON");
	free(f.requests);
	cap_free(&c);

	/* JSON, wrong shape */
	fake_start(&f, 200, "{\"tenant\":[]}");
	RUN(&c, "--socket", f.sock, "tenant", "list");
	fake_finish(&f);
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "unexpected reply from vcpud to GET /v1/tenants");
	free(f.requests);
	cap_free(&c);

	/* an error status without an error body */
	fake_start(&f, 502, NULL);
	RUN(&c, "--socket", f.sock, "tenant", "show", "acme");
	fake_finish(&f);
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "HTTP 502");
	free(f.requests);
	cap_free(&c);
}

/* `vcpuctl metrics`: the text as it came; an error status said from its
 * JSON; bad arguments before any I/O. */
static void test_fake_metrics(void **state)
{
	(void)state;
	struct fake f;
	struct cap c;
	static const char text[] = "# HELP vcpud_ticks_total t\n# TYPE vcpud_ticks_total counter\n"
				   "vcpud_ticks_total 7\n";
	fake_start(&f, 200, text);
	RUN(&c, "--socket", f.sock, "metrics");
	fake_finish(&f);
	assert_int_equal(c.rc, CLI_EXIT_OK);
	assert_string_equal(c.out, text);
	assert_string_equal(c.err, "");
	assert_string_equal(f.requests, "GET /metrics\n");
	free(f.requests);
	cap_free(&c);

	fake_start(&f, 500, "{\"error\":{\"code\":\"internal\",\"message\":\"store broke\"}}");
	RUN(&c, "--socket", f.sock, "metrics");
	fake_finish(&f);
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_string_equal(c.err, "vcpuctl: store broke\n");
	assert_string_equal(c.out, "");
	free(f.requests);
	cap_free(&c);

	RUN(&c, "--socket", "/nonexistent-vcpuctl/x.sock", "metrics", "--all");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "unexpected argument '--all'\nusage: vcpuctl metrics");
	cap_free(&c);
	RUN(&c, "--socket", "/nonexistent-vcpuctl/x.sock", "metrics");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	cap_free(&c);
	RUN(&c, "metrics", "--help");
	assert_int_equal(c.rc, CLI_EXIT_OK);
	assert_contains(c.out, "usage: vcpuctl metrics");
	cap_free(&c);
}

/* --- policy ----------------------------------------------------------- */

struct policy_files {
	char dir[64];
	char *good;
	char *bad;
	char *missing;
	char *yaml;           /* policy_to_yaml() of the defaults */
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void policy_files_make(struct policy_files *p)
{
	strcpy(p->dir, "/tmp/vcpuctl-policy-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	p->good = path_join(p->dir, "good.yaml", NULL);
	p->bad = path_join(p->dir, "bad.yaml", NULL);
	p->missing = path_join(p->dir, "missing.yaml", NULL);
	struct policy d;
	policy_defaults(&d);
	p->yaml = policy_to_yaml(&d);
	free(d.housekeeping_cpus);
	free(d.dedicated_cpus);
	write_file(p->good, p->yaml);
	write_file(p->bad, "version: 1\nno_such_key: 3\n");
}

static void policy_files_remove(struct policy_files *p)
{
	unlink(p->good);
	unlink(p->bad);
	rmdir(p->dir);
	free(p->good);
	free(p->bad);
	free(p->missing);
	free(p->yaml);
}

static void test_policy_check(void **state)
{
	(void)state;
	struct policy_files p;
	policy_files_make(&p);
	struct cap c;

	RUN(&c, "policy", "check", p.good);
	assert_int_equal(c.rc, 0);
	char *want = xasprintf("%s: ok\n", p.good);
	assert_string_equal(c.out, want);
	assert_string_equal(c.err, "");
	free(want);
	cap_free(&c);

	RUN(&c, "policy", "check", p.bad);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_string_equal(c.out, "");
	want = xasprintf("vcpuctl: %s:2:", p.bad);
	assert_true(str_has_prefix(c.err, want));
	assert_contains(c.err, "no_such_key");
	free(want);
	cap_free(&c);

	RUN(&c, "policy", "check", p.missing);
	assert_int_equal(c.rc, CLI_EXIT_NOT_FOUND);
	assert_contains(c.err, p.missing);
	cap_free(&c);

	RUN(&c, "--json", "policy", "check", p.bad);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	json_t *j = json_loads(c.out, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "ok")));
	assert_json_str(j, "file", p.bad);
	assert_json_str(json_object_get(j, "error"), "code", "invalid");
	assert_contains(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
			"no_such_key");
	json_decref(j);
	cap_free(&c);

	RUN(&c, "policy", "check", "--json", p.good);
	assert_int_equal(c.rc, 0);
	j = json_loads(c.out, 0, NULL);
	assert_true(json_is_true(json_object_get(j, "ok")));
	assert_null(json_object_get(j, "error"));
	json_decref(j);
	cap_free(&c);

	RUN(&c, "policy", "check", p.good, p.bad);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "unexpected argument");
	assert_contains(c.err, "usage: vcpuctl policy check [FILE]");
	cap_free(&c);

	RUN(&c, "policy", "check", "--strict", p.good);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "unknown option '--strict'");
	cap_free(&c);

	RUN(&c, "policy");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	cap_free(&c);

	RUN(&c, "policy", "lint");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "unknown policy command 'lint'");
	cap_free(&c);

	RUN(&c, "policy", "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, CLI_DEFAULT_POLICY);
	cap_free(&c);

	policy_files_remove(&p);
}

static void test_policy_show(void **state)
{
	(void)state;
	struct policy_files p;
	policy_files_make(&p);
	struct cap c;

	RUN(&c, "policy", "show", p.good);
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, p.yaml);
	cap_free(&c);

	RUN(&c, "policy", "show", "--defaults");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, p.yaml);
	cap_free(&c);

	RUN(&c, "policy", "show", p.bad);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_string_equal(c.out, "");
	assert_contains(c.err, "no_such_key");
	cap_free(&c);

	RUN(&c, "policy", "show", p.missing);
	assert_int_equal(c.rc, CLI_EXIT_NOT_FOUND);
	cap_free(&c);

	RUN(&c, "policy", "show", "--defaults", p.good);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	cap_free(&c);

	RUN(&c, "--json", "policy", "show", p.good);
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "--json is not supported");
	cap_free(&c);

	policy_files_remove(&p);
}

int main(void)
{
	/* a dying fake server must not kill the test through SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_for_status),
		cmocka_unit_test(test_exit_for_errno),
		cmocka_unit_test(test_build_create_minimal),
		cmocka_unit_test(test_build_create_all_options),
		cmocka_unit_test(test_build_create_name_last),
		cmocka_unit_test(test_build_list_show_delete),
		cmocka_unit_test(test_build_set),
		cmocka_unit_test(test_build_help),
		cmocka_unit_test(test_build_usage_errors),
		cmocka_unit_test(test_build_no_subcommand),
		cmocka_unit_test(test_args_parse),
		cmocka_unit_test(test_class_parsing),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_cpu_max_values),
		cmocka_unit_test(test_table_render),
		cmocka_unit_test(test_table_generic),
		cmocka_unit_test(test_show_render),
		cmocka_unit_test(test_list_from_reply),
		cmocka_unit_test(test_main_help_and_usage),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_remote_options),
		cmocka_unit_test(test_fake_create),
		cmocka_unit_test(test_fake_show_and_list),
		cmocka_unit_test(test_fake_set_delete),
		cmocka_unit_test(test_fake_errors),
		cmocka_unit_test(test_fake_bad_replies),
		cmocka_unit_test(test_fake_metrics),
		cmocka_unit_test(test_policy_check),
		cmocka_unit_test(test_policy_show),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
