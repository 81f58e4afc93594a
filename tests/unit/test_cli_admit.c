/* test_cli_admit.c - `vcpuctl vm admit` and `vcpuctl host` without a daemon:
 * the admit request built from argv and every usage error, the admit
 * renderer on JSON fixtures (shared, dedicated, dry run, a VM spanning
 * nodes, malformed replies), help, and whole exchanges through cli_main()
 * against cli_test_util.h's fake vcpud: admissions and their refusals
 * (409 -> exit 4, 400 -> exit 2), and GET /v1/host rendered from fixtures. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/vm.h"
#include "vcpud/util.h"

#define FAKE_DIR_TEMPLATE "/tmp/vcpuctl-admit-fake-XXXXXX"
#include "cli_test_util.h"

/* cli_vm_build() on a literal argv (argv[0] = the vm subcommand) */
#define BUILD(req, err, ...) cli_vm_build(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), req, err)

/* The JSON text `got` (a body or the fake's report) equals `want_text`
 * (keys in any order). */
static void assert_json(const json_t *got, const char *want_text)
{
	json_t *want = load(want_text);
	if (!got || !json_equal(got, want)) {
		char *s = got ? json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
		fail_msg("JSON %s, expected %s", s ? s : "(none)", want_text);
	}
	json_decref(want);
}

/* --- fixtures: admission replies as vcpud sends them -------------------- */

#define RES(name, vcpus, cpu, thread, pool, shares, nodes, spans, pcpus, cpus, mems, dry) \
	"{\"name\":\"" name "\",\"tenant\":\"acme\",\"vcpus\":" #vcpus ","            \
	"\"memory_bytes\":null,\"cpu_policy\":\"" cpu "\",\"thread_policy\":\"" thread \
	"\",\"pool\":\"" pool "\",\"shares\":" shares ",\"nodes\":" nodes ","           \
	"\"spans_nodes\":" spans ",\"pcpus\":\"" pcpus "\",\"cpus\":\"" cpus "\","      \
	"\"mems\":\"" mems "\",\"dry_run\":" dry ",\"registered\":false}"

static const char web_res[] =
	RES("web", 4, "shared", "prefer", "shared", "[{\"node\":0,\"vcpus\":4}]", "[0]", "false",
	    "", "2-7", "0", "false");
static const char web_dry_res[] =
	RES("web", 4, "shared", "prefer", "shared", "[{\"node\":0,\"vcpus\":4}]", "[0]", "false",
	    "", "2-7", "0", "true");
static const char db_res[] =
	RES("db", 2, "dedicated", "isolate", "dedicated", "[{\"node\":1,\"vcpus\":2}]", "[1]",
	    "false", "12,14", "12,14", "1", "false");
static const char big_res[] =
	RES("big", 10, "shared", "prefer", "shared",
	    "[{\"node\":0,\"vcpus\":6},{\"node\":1,\"vcpus\":4}]", "[0,1]", "true", "", "2-11",
	    "0-1", "false");
static const char one_res[] =
	RES("one", 1, "dedicated", "prefer", "dedicated", "[{\"node\":1,\"vcpus\":1}]", "[1]",
	    "false", "15", "15", "1", "true");
static const char far_res[] =
	RES("far", 3, "shared", "prefer", "shared",
	    "[{\"node\":0,\"vcpus\":1},{\"node\":2,\"vcpus\":1},{\"node\":3,\"vcpus\":1}]",
	    "[0,2,3]", "true", "", "2-5,16-19,24-27", "0,2-3", "false");

/* --- request building ------------------------------------------------- */

static void test_build_admit(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	/* the defaults, sent explicitly */
	assert_int_equal(BUILD(&r, &err, "admit", "web", "--tenant", "acme", "--vcpus", "4"), 0);
	assert_null(err);
	assert_false(r.help);
	assert_false(r.json);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/v1/vms/admit");
	assert_string_equal(r.subject, "web");
	assert_non_null(r.render);
	assert_json(r.body, "{\"name\":\"web\",\"tenant\":\"acme\",\"vcpus\":4,"
			    "\"cpu_policy\":\"shared\",\"thread_policy\":\"prefer\","
			    "\"dry_run\":false}");
	cli_request_clear(&r);

	/* everything, options around NAME, --opt=value, the range ends */
	assert_int_equal(BUILD(&r, &err, "admit", "--cpu-policy=dedicated", "--vcpus=4096",
			       "db.prod-1", "--thread-policy", "isolate", "--memory", "16G",
			       "--dry-run", "--json", "--tenant", "beta_2"), 0);
	assert_true(r.json);
	assert_json(r.body, "{\"name\":\"db.prod-1\",\"tenant\":\"beta_2\",\"vcpus\":4096,"
			    "\"memory_bytes\":17179869184,\"cpu_policy\":\"dedicated\","
			    "\"thread_policy\":\"isolate\",\"dry_run\":true}");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "admit", "v", "--tenant", "t", "--vcpus", "1",
			       "--cpu-policy", "dedicated", "--thread-policy", "require",
			       "--memory", "4K"), 0);
	assert_json(r.body, "{\"name\":\"v\",\"tenant\":\"t\",\"vcpus\":1,\"memory_bytes\":4096,"
			    "\"cpu_policy\":\"dedicated\",\"thread_policy\":\"require\","
			    "\"dry_run\":false}");
	cli_request_clear(&r);

	/* prefer is what a shared VM takes anyway: allowed */
	assert_int_equal(BUILD(&r, &err, "admit", "w", "--tenant", "t", "--vcpus", "2",
			       "--cpu-policy", "shared", "--thread-policy", "prefer"), 0);
	assert_json(r.body, "{\"name\":\"w\",\"tenant\":\"t\",\"vcpus\":2,"
			    "\"cpu_policy\":\"shared\",\"thread_policy\":\"prefer\","
			    "\"dry_run\":false}");
	cli_request_clear(&r);

	/* the last of a repeated option wins: shared after dedicated makes
	 * isolate a usage error, dedicated after shared makes it valid */
	assert_int_equal(BUILD(&r, &err, "admit", "x", "--tenant", "t", "--vcpus", "2",
			       "--cpu-policy", "shared", "--cpu-policy", "dedicated",
			       "--thread-policy", "isolate", "--vcpus", "3"), 0);
	assert_json(r.body, "{\"name\":\"x\",\"tenant\":\"t\",\"vcpus\":3,"
			    "\"cpu_policy\":\"dedicated\",\"thread_policy\":\"isolate\","
			    "\"dry_run\":false}");
	cli_request_clear(&r);
	assert_int_equal(BUILD(&r, &err, "admit", "x", "--tenant", "t", "--vcpus", "2",
			       "--cpu-policy", "dedicated", "--cpu-policy", "shared",
			       "--thread-policy", "isolate"), -1);
	assert_contains(err->msg, "--thread-policy isolate needs --cpu-policy dedicated");
	error_free(&err);
	cli_request_clear(&r);

	/* after "--" a name may start with '-' */
	assert_int_equal(BUILD(&r, &err, "admit", "--tenant", "a", "--vcpus", "8", "--", "-v"), 0);
	assert_string_equal(r.subject, "-v");
	assert_json(json_object_get(r.body, "name"), "\"-v\"");
	cli_request_clear(&r);

	/* --help: nothing to send, whatever else is wrong */
	assert_int_equal(BUILD(&r, &err, "admit", "../x", "--vcpus", "0", "-h"), 0);
	assert_true(r.help);
	assert_null(r.method);
	assert_null(r.body);
	assert_contains(r.usage, "vm admit NAME --tenant T --vcpus N");
	assert_contains(r.help_text, "--thread-policy P");
	cli_request_clear(&r);
	assert_null(err);
}

#define ADM "admit", "web", "--tenant", "acme"
#define ADM4 ADM, "--vcpus", "4"

/* Each of these is refused before any I/O, with EINVAL or ERANGE (exit 2),
 * a message naming the problem and admit's usage. */
static void test_build_admit_usage_errors(void **state)
{
	(void)state;
	const struct bad_case cases[] = {
		{ "vm admit", "missing --tenant (the tenant the VM belongs to)",
		  { "admit", "web", "--vcpus", "4" } },
		{ "vm admit", "missing --tenant", { "admit", "web" } },
		{ "vm admit", "missing --vcpus (the VM's vCPUs)", { ADM } },
		{ "vm admit", "missing --vcpus", { ADM, "--cpu-policy", "dedicated" } },
		{ "vm admit", "missing VM NAME", { "admit", "--tenant", "acme", "--vcpus", "4" } },
		{ "vm admit", "--vcpus: 0 is out of range (1..4096)", { ADM, "--vcpus", "0" } },
		{ "vm admit", "--vcpus: 4097 is out of range (1..4096)", { ADM, "--vcpus", "4097" } },
		{ "vm admit", "--vcpus: 99999999999999999999 is out of range",
		  { ADM, "--vcpus", "99999999999999999999" } },
		{ "vm admit", "--vcpus: 'abc' is not a whole number", { ADM, "--vcpus", "abc" } },
		{ "vm admit", "--vcpus: '-1' is not a whole number", { ADM, "--vcpus=-1" } },
		{ "vm admit", "--vcpus: '2.5' is not a whole number", { ADM, "--vcpus", "2.5" } },
		{ "vm admit", "--vcpus: '' is not a whole number", { ADM, "--vcpus", "" } },
		{ "vm admit", "--cpu-policy: invalid cpu policy 'pinned': use shared or dedicated",
		  { ADM4, "--cpu-policy", "pinned" } },
		{ "vm admit", "--cpu-policy: invalid cpu policy 'Shared'",
		  { ADM4, "--cpu-policy", "Shared" } },
		{ "vm admit", "--cpu-policy: invalid cpu policy ''", { ADM4, "--cpu-policy", "" } },
		{ "vm admit",
		  "--thread-policy: invalid thread policy 'mixed': use prefer, isolate or require",
		  { ADM4, "--cpu-policy", "dedicated", "--thread-policy", "mixed" } },
		{ "vm admit", "--thread-policy: invalid thread policy ''",
		  { ADM4, "--thread-policy=" } },
		{ "vm admit", "--thread-policy isolate needs --cpu-policy dedicated",
		  { ADM4, "--thread-policy", "isolate" } },
		{ "vm admit", "--thread-policy isolate needs --cpu-policy dedicated",
		  { ADM4, "--cpu-policy", "shared", "--thread-policy", "isolate" } },
		{ "vm admit", "--thread-policy require needs --cpu-policy dedicated",
		  { ADM4, "--thread-policy", "require", "--dry-run" } },
		{ "vm admit", "--memory: invalid size '12Q'", { ADM4, "--memory", "12Q" } },
		{ "vm admit", "--memory: invalid size 'none'", { ADM4, "--memory", "none" } },
		{ "vm admit", "--memory: 1K is out of range (4K..1024T)", { ADM4, "--memory", "1K" } },
		{ "vm admit", "--memory: 0 is out of range", { ADM4, "--memory", "0" } },
		{ "vm admit", "invalid VM name '../x'",
		  { "admit", "../x", "--tenant", "acme", "--vcpus", "4" } },
		{ "vm admit", "VM name is empty", { "admit", "", "--tenant", "acme", "--vcpus", "4" } },
		{ "vm admit", "invalid VM name 'a123",
		  { "admit", (char *)long_name, "--tenant", "acme", "--vcpus", "4" } },
		{ "vm admit", "--tenant: invalid tenant name '../x'",
		  { "admit", "web", "--tenant", "../x", "--vcpus", "4" } },
		{ "vm admit", "--tenant: tenant name is empty",
		  { "admit", "web", "--tenant", "", "--vcpus", "4" } },
		{ "vm admit", "unexpected argument 'extra'", { ADM4, "extra" } },
		{ "vm admit", "unknown option '--pid'", { ADM4, "--pid", "1" } },
		{ "vm admit", "unknown option '--dryrun'", { ADM4, "--dryrun" } },
		{ "vm admit", "option '--dry-run' does not take a value", { ADM4, "--dry-run=yes" } },
		{ "vm admit", "option '--vcpus' needs a value", { ADM, "--vcpus" } },
		{ "vm admit", "option '--cpu-policy' needs a value", { ADM4, "--cpu-policy" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cli_request r;
		struct error *err;
		assert_build_refused(cli_vm_build, i, &cases[i], &r, &err);
		/* admit's own usage, not the group's */
		assert_true(str_has_prefix(r.usage, "usage: vcpuctl vm admit NAME --tenant T"));
		assert_null(strstr(r.usage, "vm register"));
		error_free(&err);
		cli_request_clear(&r);
	}
}

/* --- rendering admission replies ---------------------------------------- */

/* What vm admit's renderer prints for the reply `json`; *rc its result,
 * *msg (caller frees, NULL on success) its error message. */
static char *render_admit(const char *json, int *rc, char **msg)
{
	struct cli_request r;
	struct error *err = NULL;
	assert_int_equal(BUILD(&r, &err, "admit", "web", "--tenant", "acme", "--vcpus", "4"), 0);
	char *out = NULL, *errs = NULL;
	size_t olen, elen;
	struct cli_ctx ctx = { .target.socket_path = "/nonexistent", .out = open_memstream(&out, &olen),
			       .err = open_memstream(&errs, &elen) };
	json_t *reply = load(json);
	*rc = r.render(&ctx, &r, reply, &err);
	fclose(ctx.out);
	fclose(ctx.err);
	assert_string_equal(errs, ""); /* a renderer reports through *err */
	free(errs);
	*msg = NULL;
	if (*rc < 0) {
		assert_non_null(err);
		assert_int_equal(err->code, EPROTO);
		*msg = xstrdup(err->msg);
		error_free(&err);
	}
	json_decref(reply);
	cli_request_clear(&r);
	return out;
}

static void test_render_admit(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *text;
	} cases[] = {
		{ web_res, "vm web admitted: shared pool, node 0 (4 vCPUs), pinned to CPUs 2-7\n" },
		{ web_dry_res, "vm web admitted: shared pool, node 0 (4 vCPUs), pinned to CPUs 2-7 "
			       "(dry run: nothing reserved)\n" },
		{ db_res, "vm db admitted: dedicated pool, node 1 (2 vCPUs), dedicated pCPUs 12,14 "
			  "(isolate)\n" },
		{ big_res, "vm big admitted: shared pool, nodes 0-1 (0: 6, 1: 4 vCPUs), pinned to "
			   "CPUs 2-11\n" },
		{ one_res, "vm one admitted: dedicated pool, node 1 (1 vCPU), dedicated pCPUs 15 "
			   "(prefer) (dry run: nothing reserved)\n" },
		{ far_res, "vm far admitted: shared pool, nodes 0,2-3 (0: 1, 2: 1, 3: 1 vCPUs), "
			   "pinned to CPUs 2-5,16-19,24-27\n" },
		/* keys this client does not know, none it needs missing */
		{ "{\"name\":\"m\",\"pool\":\"shared\",\"shares\":[{\"node\":3,\"vcpus\":2}],"
		  "\"cpus\":\"0-1\",\"future\":{\"x\":1}}",
		  "vm m admitted: shared pool, node 3 (2 vCPUs), pinned to CPUs 0-1\n" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc;
		char *msg;
		char *out = render_admit(cases[i].json, &rc, &msg);
		if (rc != 0)
			fail_msg("case %zu: refused: %s", i, msg);
		assert_string_equal(out, cases[i].text);
		free(out);
	}
}

static void test_render_admit_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *msg;
	} cases[] = {
		{ "[]", "the admission reply is not an object" },
		{ "null", "the admission reply is not an object" },
		{ "{}", "no \"name\" string in the admission reply" },
		{ "{\"name\":7,\"pool\":\"shared\"}", "no \"name\" string" },
		{ "{\"name\":\"a\"}", "no \"pool\" string" },
		{ "{\"name\":\"a\",\"pool\":\"turbo\",\"shares\":[{\"node\":0,\"vcpus\":1}]}",
		  "unknown pool 'turbo'" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\"}", "no \"shares\"" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\",\"shares\":[]}", "no \"shares\"" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\",\"shares\":{}}", "no \"shares\"" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\",\"shares\":[1]}",
		  "share 1 of the VM is not" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\","
		  "\"shares\":[{\"node\":0,\"vcpus\":1},{\"node\":-1,\"vcpus\":1}]}",
		  "share 2 of the VM is not" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\","
		  "\"shares\":[{\"node\":0,\"vcpus\":0}]}", "share 1 of the VM is not" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\","
		  "\"shares\":[{\"node\":\"0\",\"vcpus\":1}]}", "share 1 of the VM is not" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\","
		  "\"shares\":[{\"node\":99999,\"vcpus\":1}]}", "share 1 of the VM is not" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"shares\":[{\"node\":0,\"vcpus\":1}]}",
		  "no \"cpus\" string" },
		{ "{\"name\":\"a\",\"pool\":\"dedicated\",\"thread_policy\":\"prefer\","
		  "\"shares\":[{\"node\":0,\"vcpus\":1}]}", "no \"pcpus\" string" },
		{ "{\"name\":\"a\",\"pool\":\"dedicated\",\"pcpus\":\"3\","
		  "\"shares\":[{\"node\":0,\"vcpus\":1}]}", "no \"thread_policy\" string" },
		{ "{\"name\":\"a\",\"pool\":\"shared\",\"cpus\":\"1\",\"dry_run\":\"yes\","
		  "\"shares\":[{\"node\":0,\"vcpus\":1}]}", "\"dry_run\" of the admission reply is "
							   "not a boolean" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc;
		char *msg;
		char *out = render_admit(cases[i].json, &rc, &msg);
		if (rc != -1)
			fail_msg("case %zu: accepted %s, printed \"%s\"", i, cases[i].json, out);
		if (!strstr(msg, cases[i].msg))
			fail_msg("case %zu: expected \"%s\" in \"%s\"", i, cases[i].msg, msg);
		assert_string_equal(out, ""); /* nothing half-printed */
		free(msg);
		free(out);
	}
}

/* --- help and usage errors through the whole program -------------------- */

static void test_help(void **state)
{
	(void)state;
	struct cap c;

	RUN(&c, "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "\n  host       CPU topology, pools and overcommit");
	assert_contains(c.out, "\n  vm         ");
	cap_free(&c);

	RUN(&c, "vm", "help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "       vcpuctl vm admit NAME --tenant T --vcpus N [--memory SIZE]\n");
	assert_contains(c.out, "\nadmit     reserve room for a VM");
	cap_free(&c);

	char **admit_argvs[] = {
		ARGV("vcpuctl", "vm", "admit", "--help"), ARGV("vcpuctl", "vm", "help", "admit"),
		ARGV("vcpuctl", "vm", "admit", "web", "-h", "--vcpus", "0"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(admit_argvs); i++) {
		run_argv(&c, argv_len(admit_argvs[i]), admit_argvs[i]);
		assert_int_equal(c.rc, 0);
		assert_true(str_has_prefix(c.out, "usage: vcpuctl vm admit NAME --tenant T --vcpus N "
						  "[--memory SIZE]\n"));
		assert_contains(c.out, "[--thread-policy prefer|isolate|require] [--dry-run]\n");
		assert_contains(c.out, "  --vcpus N          the VM's vCPUs, 1..4096\n");
		assert_contains(c.out, "  --dry-run          ");
		assert_contains(c.out, "VM and tenant names are 1 to 64");
		assert_string_equal(c.err, "");
		cap_free(&c);
	}

	char **host_argvs[] = {
		ARGV("vcpuctl", "host", "--help"), ARGV("vcpuctl", "host", "-h"),
		ARGV("vcpuctl", "help", "host"), ARGV("vcpuctl", "host", "--json", "--help"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(host_argvs); i++) {
		run_argv(&c, argv_len(host_argvs[i]), host_argvs[i]);
		assert_int_equal(c.rc, 0);
		assert_true(str_has_prefix(c.out, "usage: vcpuctl host [--json]\n\nShows the host"));
		assert_contains(c.out, "  ADMITTED/CAPACITY  ");
		assert_contains(c.out, "  --json             print the API's JSON\n");
		assert_string_equal(c.err, "");
		cap_free(&c);
	}
}

static void test_main_usage_errors(void **state)
{
	(void)state;
	static const struct {
		const char *message;
		const char *usage;
		const char *try_cmd;
		char *argv[12];
	} cases[] = {
		{ "missing --vcpus (the VM's vCPUs)", "usage: vcpuctl vm admit NAME", "vcpuctl vm admit",
		  { "vm", "admit", "web", "--tenant", "acme" } },
		{ "--vcpus: 4097 is out of range (1..4096)", "usage: vcpuctl vm admit NAME",
		  "vcpuctl vm admit", { "vm", "admit", "web", "--tenant", "a", "--vcpus", "4097" } },
		{ "--thread-policy isolate needs --cpu-policy dedicated",
		  "usage: vcpuctl vm admit NAME", "vcpuctl vm admit",
		  { "vm", "admit", "web", "--tenant", "a", "--vcpus", "2", "--thread-policy",
		    "isolate" } },
		{ "--memory: invalid size '12Q': unknown suffix 'Q' (use K, M, G or T)",
		  "usage: vcpuctl vm admit NAME", "vcpuctl vm admit",
		  { "vm", "admit", "web", "--tenant", "a", "--vcpus", "2", "--memory", "12Q" } },
		{ "unexpected argument 'now'", "usage: vcpuctl host [--json]", "vcpuctl host",
		  { "host", "now" } },
		{ "unknown option '--all'", "usage: vcpuctl host [--json]", "vcpuctl host",
		  { "host", "--all" } },
		{ "option '--json' does not take a value", "usage: vcpuctl host [--json]",
		  "vcpuctl host", { "host", "--json=1" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		/* the socket does not exist: reaching for it would exit 5 */
		char *argv[16] = { "vcpuctl", "--socket", "/nonexistent-vcpuctl/vcpud.sock" };
		int argc = 3;
		for (int k = 0; cases[i].argv[k]; k++)
			argv[argc++] = cases[i].argv[k];
		struct cap c;
		run_argv(&c, argc, argv);
		char *want = xasprintf("vcpuctl: %s\n%s", cases[i].message, cases[i].usage);
		char *try = xasprintf("\nTry '%s --help' for more information.\n", cases[i].try_cmd);
		if (c.rc != CLI_EXIT_USAGE || !str_has_prefix(c.err, want) || !strstr(c.err, try))
			fail_msg("case %zu: exit %d, stderr \"%s\", expected exit 2 and \"%s...%s\"",
				 i, c.rc, c.err, want, try);
		assert_string_equal(c.out, "");
		free(want);
		free(try);
		cap_free(&c);
	}

	/* while valid command lines do go for the socket */
	struct cap c;
	RUN(&c, "--socket", "/nonexistent-vcpuctl/vcpud.sock", "host");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "cannot reach vcpud at /nonexistent-vcpuctl/vcpud.sock");
	cap_free(&c);
	RUN(&c, "--socket", "/nonexistent-vcpuctl/vcpud.sock", "vm", "admit", "w", "--tenant", "a",
	    "--vcpus", "1");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	cap_free(&c);
}

/* --- vm admit against the fake vcpud ------------------------------------ */

/* `vcpuctl --socket FAKE ARGS...` against one reply; *body the request's
 * JSON body (NULL for none), *head its "METHOD PATH" (both caller-owned). */
static void run_one(struct cap *c, char **head, json_t **body, int status, const char *reply,
		    char *const *args)
{
	const struct fake_reply r = { status, reply, false };
	char *req;
	run_script(c, &req, &r, 1, args);
	char *nl = strchr(req, '\n');
	assert_non_null(nl);
	*head = xstrndup(req, (size_t)(nl - req));
	*body = nl[1] ? load(nl + 1) : NULL;
	free(req);
}
#define RUN_ONE(c, head, body, status, reply, ...) \
	run_one(c, head, body, status, reply, ARGV(__VA_ARGS__))

static void test_fake_admit(void **state)
{
	(void)state;
	struct cap c;
	char *head;
	json_t *body;

	RUN_ONE(&c, &head, &body, 201, web_res, "vm", "admit", "web", "--tenant", "acme",
		"--vcpus", "4", "--memory", "2G");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.err, "");
	assert_string_equal(c.out,
			    "vm web admitted: shared pool, node 0 (4 vCPUs), pinned to CPUs 2-7\n");
	assert_string_equal(head, "POST /v1/vms/admit");
	assert_json(body, "{\"name\":\"web\",\"tenant\":\"acme\",\"vcpus\":4,"
			  "\"memory_bytes\":2147483648,\"cpu_policy\":\"shared\","
			  "\"thread_policy\":\"prefer\",\"dry_run\":false}");
	json_decref(body);
	free(head);
	cap_free(&c);

	/* a dry run answers 200 */
	RUN_ONE(&c, &head, &body, 200, one_res, "vm", "admit", "one", "--tenant", "acme",
		"--vcpus", "1", "--cpu-policy", "dedicated", "--dry-run");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "vm one admitted: dedicated pool, node 1 (1 vCPU), dedicated "
				   "pCPUs 15 (prefer) (dry run: nothing reserved)\n");
	assert_true(json_is_true(json_object_get(body, "dry_run")));
	assert_string_equal(json_string_value(json_object_get(body, "cpu_policy")), "dedicated");
	json_decref(body);
	free(head);
	cap_free(&c);

	/* --json, global or after the command: the reply as received */
	for (int after = 0; after < 2; after++) {
		if (after)
			RUN_ONE(&c, &head, &body, 201, db_res, "vm", "admit", "db", "--tenant",
				"acme", "--vcpus", "2", "--cpu-policy", "dedicated",
				"--thread-policy", "isolate", "--json");
		else
			RUN_ONE(&c, &head, &body, 201, db_res, "--json", "vm", "admit", "db",
				"--tenant", "acme", "--vcpus", "2", "--cpu-policy", "dedicated",
				"--thread-policy", "isolate");
		assert_int_equal(c.rc, 0);
		json_t *got = load(c.out);
		assert_json(got, db_res);
		json_decref(got);
		json_decref(body);
		free(head);
		cap_free(&c);
	}

	/* a reply that is not an admission: exit 1, nothing on stdout */
	RUN_ONE(&c, &head, &body, 201, "{\"name\":\"web\"}", "vm", "admit", "web", "--tenant",
		"acme", "--vcpus", "4");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_string_equal(c.out, "");
	assert_string_equal(c.err, "vcpuctl: unexpected reply from vcpud to POST /v1/vms/admit: "
				   "no \"pool\" string in the admission reply\n");
	json_decref(body);
	free(head);
	cap_free(&c);

	/* release is unchanged: it frees the reservation too */
	RUN_ONE(&c, &head, &body, 204, NULL, "vm", "release", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(head, "DELETE /v1/vms/web");
	assert_null(body);
	assert_string_equal(c.out, "vm web released\n");
	free(head);
	cap_free(&c);
}

/* Refusals: the daemon's message on stderr, the exit code from the status,
 * the error JSON on stdout under --json. */
static void test_fake_admit_refused(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *code;
		const char *message;
		int exit;
	} cases[] = {
		{ 409, "conflict", "vm x not admitted: tenant acme: 30 of 32 vCPUs used, 4 requested",
		  CLI_EXIT_CONFLICT },
		{ 409, "conflict", "vm x not admitted: shared pool on node 0: 14 of 16 vCPUs "
				   "admitted (ratio 2.0 x 8 pCPUs), 4 requested", CLI_EXIT_CONFLICT },
		{ 400, "invalid", "vm x not admitted: 4 vCPUs requested, the host has 2 online CPUs",
		  CLI_EXIT_USAGE },
		{ 404, "not_found", "tenant acme not found", CLI_EXIT_NOT_FOUND },
		{ 500, "internal", "cannot save the reservation", CLI_EXIT_ERROR },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int json = 0; json < 2; json++) {
			char *reply = xasprintf("{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
						cases[i].code, cases[i].message);
			struct cap c;
			char *head;
			json_t *body;
			if (json)
				RUN_ONE(&c, &head, &body, cases[i].status, reply, "--json", "vm",
					"admit", "x", "--tenant", "acme", "--vcpus", "4");
			else
				RUN_ONE(&c, &head, &body, cases[i].status, reply, "vm", "admit", "x",
					"--tenant", "acme", "--vcpus", "4");
			if (c.rc != cases[i].exit)
				fail_msg("case %zu (HTTP %d): exit %d, expected %d", i,
					 cases[i].status, c.rc, cases[i].exit);
			char *want = xasprintf("vcpuctl: %s\n", cases[i].message);
			assert_string_equal(c.err, want);
			if (json) {
				json_t *got = load(c.out);
				assert_json(got, reply);
				json_decref(got);
			} else {
				assert_string_equal(c.out, "");
			}
			assert_string_equal(head, "POST /v1/vms/admit");
			free(want);
			json_decref(body);
			free(head);
			free(reply);
			cap_free(&c);
		}
	}
}

/* --- vcpuctl host against the fake -------------------------------------- */

#define USAGE(node, sp, cap, adm, dp, du, df, dfc)                                          \
	"{\"node\":" node ",\"shared_pcpus\":" #sp ",\"shared_capacity\":" #cap ","            \
	"\"shared_admitted\":" #adm ",\"dedicated_pcpus\":" #dp ",\"dedicated_used\":" #du "," \
	"\"dedicated_free\":" #df ",\"dedicated_free_cores\":" #dfc "}"

#define TOPOLOGY_2N                                                                        \
	"\"topology\":{\"description\":\"16 CPUs, 8 cores (SMT2), 1 package, 2 NUMA nodes, "  \
	"32G\",\"online\":\"0-15\",\"threads_per_core\":2,\"nodes\":["                         \
	"{\"id\":0,\"cpus\":\"0-7\",\"memory_bytes\":17179869184},"                            \
	"{\"id\":1,\"cpus\":\"8-15\",\"memory_bytes\":17179869184}]}"

/* Two nodes: web and big (spanning) in the shared pool, db dedicated with
 * isolate (pCPUs 12 and 14, siblings 13 and 15 blocked: no core free). */
static const char host_json[] =
	"{" TOPOLOGY_2N ","
	"\"pools\":{\"housekeeping\":\"0-1\",\"shared\":\"2-11\",\"dedicated\":\"12-15\"},"
	"\"overcommit_ratio\":2.0,"
	"\"usage\":[" USAGE("0", 6, 12, 10, 0, 0, 0, 0) ","
		      USAGE("1", 4, 8, 4, 4, 2, 0, 0) "],"
	"\"totals\":" USAGE("null", 10, 20, 14, 4, 2, 0, 0) ","
	"\"reservations\":[" RES("web", 4, "shared", "prefer", "shared",
				 "[{\"node\":0,\"vcpus\":4}]", "[0]", "false", "", "2-7", "0",
				 "false") ","
			     RES("big", 10, "shared", "prefer", "shared",
				 "[{\"node\":0,\"vcpus\":6},{\"node\":1,\"vcpus\":4}]", "[0,1]",
				 "true", "", "2-11", "0-1", "false") ","
			     "{\"name\":\"db\",\"tenant\":\"beta-corporation\",\"vcpus\":2,"
			     "\"memory_bytes\":4294967296,\"cpu_policy\":\"dedicated\","
			     "\"thread_policy\":\"isolate\",\"pool\":\"dedicated\","
			     "\"shares\":[{\"node\":1,\"vcpus\":2}],\"nodes\":[1],"
			     "\"spans_nodes\":false,\"pcpus\":\"12,14\",\"cpus\":\"12,14\","
			     "\"mems\":\"1\",\"dry_run\":false,\"registered\":true}]}";

static const char host_text[] =
	"host:        16 CPUs, 8 cores (SMT2), 1 package, 2 NUMA nodes, 32G\n"
	"online CPUs: 0-15\n"
	"NUMA nodes:  0: CPUs 0-7, 16G; 1: CPUs 8-15, 16G\n"
	"pools:       housekeeping 0-1, shared 2-11, dedicated 12-15\n"
	"overcommit:  2.0 shared vCPUs per shared pCPU\n"
	"\n"
	"NODE   SHARED-PCPUS  ADMITTED/CAPACITY  DEDICATED        FREE-CORES\n"
	"0      6             10/12              0/0              0\n"
	"1      4             4/8                2/4 (2 blocked)  0\n"
	"total  10            14/20              2/4 (2 blocked)  0\n"
	"\n"
	"VM   TENANT            VCPUS  POOL       NODES    PCPUS  REGISTERED\n"
	"web  acme              4      shared     0        -      no\n"
	"big  acme              10     shared     0:6,1:4  -      no\n"
	"db   beta-corporation  2      dedicated  1        12,14  yes\n";

/* One node, no dedicated pool, a ratio cut below what is admitted, no
 * memory figure, nothing admitted... and keys this client does not know. */
static const char small_json[] =
	"{\"topology\":{\"description\":\"4 CPUs, 4 cores, 1 package, 1 NUMA node, 8G\","
	"\"online\":\"0-3\",\"threads_per_core\":1,"
	"\"nodes\":[{\"id\":0,\"cpus\":\"0-3\",\"memory_bytes\":null}]},"
	"\"pools\":{\"housekeeping\":\"0\",\"shared\":\"1-3\",\"dedicated\":\"\"},"
	"\"overcommit_ratio\":1.5,\"future\":[1,2],"
	"\"usage\":[" USAGE("0", 3, 4, 6, 0, 0, 0, 0) "],"
	"\"totals\":" USAGE("null", 3, 4, 6, 0, 0, 0, 0) ","
	"\"reservations\":[]}";

static const char small_text[] =
	"host:        4 CPUs, 4 cores, 1 package, 1 NUMA node, 8G\n"
	"online CPUs: 0-3\n"
	"NUMA nodes:  0: CPUs 0-3\n"
	"pools:       housekeeping 0, shared 1-3, dedicated none\n"
	"overcommit:  1.5 shared vCPUs per shared pCPU\n"
	"\n"
	"NODE   SHARED-PCPUS  ADMITTED/CAPACITY  DEDICATED  FREE-CORES\n"
	"0      3             6/4 (over)         0/0        0\n"
	"total  3             6/4 (over)         0/0        0\n"
	"\n"
	"no VMs admitted\n";

static void test_fake_host(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *text;
	} cases[] = {
		{ host_json, host_text },
		{ small_json, small_text },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cap c;
		char *head;
		json_t *body;
		RUN_ONE(&c, &head, &body, 200, cases[i].json, "host");
		assert_int_equal(c.rc, 0);
		assert_string_equal(head, "GET /v1/host");
		assert_null(body);
		assert_string_equal(c.err, "");
		if (strcmp(c.out, cases[i].text) != 0)
			fail_msg("case %zu: printed\n%s\nexpected\n%s", i, c.out, cases[i].text);
		free(head);
		cap_free(&c);
	}

	/* --json: the object as received */
	struct cap c;
	char *head;
	json_t *body;
	RUN_ONE(&c, &head, &body, 200, host_json, "host", "--json");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "{\n  \""));
	json_t *got = load(c.out);
	assert_json(got, host_json);
	json_decref(got);
	free(head);
	cap_free(&c);

	/* an error status: the daemon's message */
	RUN_ONE(&c, &head, &body, 503, "{\"error\":{\"code\":\"unavailable\","
		"\"message\":\"no topology yet\"}}", "host");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_string_equal(c.err, "vcpuctl: no topology yet\n");
	assert_string_equal(c.out, "");
	free(head);
	cap_free(&c);
}

/* host_json with `from` replaced by `to` (once; the fixture must have it). */
static char *host_with(const char *from, const char *to)
{
	const char *p = strstr(host_json, from);
	if (!p)
		fail_msg("fixture has no \"%s\"", from);
	return xasprintf("%.*s%s%s", (int)(p - host_json), host_json, to, p + strlen(from));
}

static void test_fake_host_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *from, *to;  /* in host_json; from NULL: `to` is the reply */
		const char *msg;
	} cases[] = {
		{ NULL, "[]", "the host reply is not an object" },
		{ NULL, "{}", "no \"topology\" object in the reply" },
		{ "\"description\":", "\"summary\":", "no \"description\" string in the topology" },
		{ "\"online\":\"0-15\"", "\"online\":15", "no \"online\" string in the topology" },
		{ "\"nodes\":[{\"id\":0", "\"nodes\":\"0-1\",\"n\":[{\"id\":0",
		  "no \"nodes\" array in the topology" },
		{ "{\"id\":1,", "{\"id\":-1,", "\"id\" of NUMA node 2 of the topology is not an "
					       "integer >= 0" },
		{ "\"cpus\":\"8-15\",\"memory_bytes\":17179869184",
		  "\"cpus\":\"8-15\",\"memory_bytes\":\"16G\"",
		  "\"memory_bytes\" of NUMA node 2 of the topology is not an integer" },
		{ "\"pools\":", "\"pool\":", "no \"pools\" object in the reply" },
		{ "\"dedicated\":\"12-15\"", "\"dedicated\":null",
		  "no \"dedicated\" string in the pools" },
		{ "\"overcommit_ratio\":2.0", "\"overcommit_ratio\":\"2\"",
		  "no \"overcommit_ratio\" number in the reply" },
		{ "\"usage\":[", "\"usage\":7,\"u\":[", "no \"usage\" array in the reply" },
		{ "\"shared_admitted\":4,", "\"shared_admitted\":-4,",
		  "\"shared_admitted\" of usage 2 is not an integer >= 0" },
		{ "{\"node\":1,", "{\"node\":null,", "\"node\" of usage 2 is not an integer" },
		{ "\"dedicated_free_cores\":0}", "\"dedicated_free_cores\":0.5}",
		  "\"dedicated_free_cores\" of usage 1 is not an integer" },
		{ "\"usage\":[{", "\"usage\":[7,{", "usage 1 is not an object" },
		{ "\"totals\":{", "\"totals\":[],\"x\":{", "\"totals\" is not an object" },
		{ "\"reservations\":[", "\"reservations\":null,\"r\":[",
		  "no \"reservations\" array in the reply" },
		{ "\"reservations\":[", "\"reservations\":[1,", "reservation 1 is not an object" },
		{ "\"tenant\":\"beta-corporation\"", "\"tenant\":false",
		  "no \"tenant\" string in reservation 3" },
		{ "\"name\":\"big\"", "\"nom\":\"big\"", "no \"name\" string in reservation 2" },
		{ "\"pcpus\":\"12,14\"", "\"pcpus\":null", "no \"pcpus\" string in reservation 3" },
		{ "\"vcpus\":10,", "\"vcpus\":\"10\",",
		  "\"vcpus\" of reservation 2 is not an integer >= 0" },
		{ "\"registered\":true", "\"registered\":1",
		  "\"registered\" of reservation 3 is not a boolean" },
		{ "\"shares\":[{\"node\":1,\"vcpus\":2}]", "\"shares\":[]",
		  "reservation 3 is on no NUMA node" },
		{ "\"shares\":[{\"node\":1,\"vcpus\":2}]", "\"shares\":1",
		  "no \"shares\" array in reservation 3" },
		{ "{\"node\":1,\"vcpus\":4}", "{\"node\":1}",
		  "\"vcpus\" of share 2 of reservation 2 is not an integer" },
		{ "{\"node\":0,\"vcpus\":6}", "\"0:6\"", "share 1 of reservation 2 is not an object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *reply = cases[i].from ? host_with(cases[i].from, cases[i].to)
					    : xstrdup(cases[i].to);
		struct cap c;
		char *head;
		json_t *body;
		RUN_ONE(&c, &head, &body, 200, reply, "host");
		char *want = xasprintf("vcpuctl: unexpected reply from vcpud to GET /v1/host: %s",
				       cases[i].msg);
		if (c.rc != CLI_EXIT_ERROR || !str_has_prefix(c.err, want))
			fail_msg("case %zu: exit %d, stderr \"%s\", expected exit 1 and \"%s\"", i,
				 c.rc, c.err, want);
		/* all or nothing: no half table */
		assert_string_equal(c.out, "");
		free(want);
		free(head);
		free(reply);
		cap_free(&c);
	}
}

int main(void)
{
	/* a dying fake server must not kill the test through SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_admit),
		cmocka_unit_test(test_build_admit_usage_errors),
		cmocka_unit_test(test_render_admit),
		cmocka_unit_test(test_render_admit_malformed),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_main_usage_errors),
		cmocka_unit_test(test_fake_admit),
		cmocka_unit_test(test_fake_admit_refused),
		cmocka_unit_test(test_fake_host),
		cmocka_unit_test(test_fake_host_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
