/* test_cli_vm.c - `vcpuctl vm` without a daemon: request building from argv
 * for every subcommand, every usage error, the renderers on JSON fixtures
 * (list, show, register; a VM without memory limit, a gone VM, unknown
 * tids), malformed replies, help, and whole exchanges through cli_main()
 * against a fake vcpud on a UNIX socket (cli_test_util.h's, answering one
 * canned reply). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/vm.h"
#include "vcpud/api.h"
#include "vcpud/util.h"

#define FAKE_DIR_TEMPLATE "/tmp/vcpuctl-vm-fake-XXXXXX"
#include "cli_test_util.h"

/* --- helpers ---------------------------------------------------------- */

/* cli_vm_build() on a literal argv (argv[0] = the vm subcommand) */
#define BUILD(req, err, ...) cli_vm_build(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), req, err)

/* The request body equals this JSON text exactly (keys in any order). */
static void assert_body(const json_t *body, const char *want_text)
{
	json_t *want = json_loads(want_text, 0, NULL);
	assert_non_null(want);
	if (!body || !json_equal(body, want)) {
		char *got = body ? json_dumps(body, JSON_SORT_KEYS) : NULL;
		fail_msg("body %s, expected %s", got ? got : "(none)", want_text);
	}
	json_decref(want);
}

/* --- fixtures: VMs as vcpud sends them --------------------------------- */

/* web (web_json, web_show): running, two threads; cli_test_util.h */

/* exited: state gone, no memory limit, no threads left */
static const char db_json[] =
	"{\"name\":\"db-primary\",\"tenant\":\"beta-corporation\",\"pid\":5678,"
	"\"state\":\"gone\",\"source\":\"proc\",\"uuid\":null,\"vcpus\":16,"
	"\"memory_bytes\":null,\"vcpu_threads\":[],"
	"\"created_at\":1700000000,\"updated_at\":0}";

/* from libvirt: a UUID, no pid, a thread whose tid and cgroup are unknown,
 * and a key this client does not know */
static const char x_json[] =
	"{\"name\":\"x\",\"tenant\":\"acme\",\"pid\":0,\"state\":\"paused\","
	"\"source\":\"libvirt\",\"uuid\":\"6f1c2b1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f\","
	"\"vcpus\":1,\"memory_bytes\":1610612736,\"weight\":250,"
	"\"vcpu_threads\":[{\"index\":0,\"tid\":0}],"
	"\"created_at\":1700000000,\"updated_at\":1700000000,\"future_key\":[1]}";

/* found by discovery without a tenant: listed, left alone */
static const char stray_json[] =
	"{\"name\":\"qemu-system-x86-99\",\"tenant\":null,\"managed\":false,\"pid\":99,"
	"\"state\":\"running\",\"source\":\"proc\",\"uuid\":null,\"vcpus\":1,"
	"\"memory_bytes\":null,\"vcpu_threads\":[{\"index\":0,\"tid\":100,\"cgroup\":null}],"
	"\"created_at\":0,\"updated_at\":0}";

static const char list_table[] =
	"NAME                TENANT            PID   STATE    SOURCE      VCPUS  MEMORY  UUID\n"
	"web                 acme              1234  running  registered  2      1G      -\n"
	"db-primary          beta-corporation  5678  gone     proc        16     -       -\n"
	"x                   acme              -     paused   libvirt     1      1536M   "
	"6f1c2b1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f\n"
	"qemu-system-x86-99  -                 99    running  proc        1      -       -\n";

static char *list_json(void)
{
	return xasprintf("{\"vms\":[%s,%s,%s,%s]}", web_json, db_json, x_json, stray_json);
}

/* --- request building ------------------------------------------------- */

static void test_build_register(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(BUILD(&r, &err, "register", "web", "--tenant", "acme", "--pid", "1234"), 0);
	assert_null(err);
	assert_false(r.help);
	assert_false(r.json);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/v1/vms");
	assert_string_equal(r.subject, "web");
	assert_non_null(r.render);
	/* only what was given: no memory_bytes */
	assert_body(r.body, "{\"name\":\"web\",\"tenant\":\"acme\",\"pid\":1234}");
	cli_request_clear(&r);
	assert_null(r.path);
	assert_null(r.body);

	/* options before and after NAME, --opt=value, the range ends, --json */
	assert_int_equal(BUILD(&r, &err, "register", "--memory=512M", "--pid=4194304", "db.prod-1",
			       "--json", "--tenant", "beta_2"), 0);
	assert_true(r.json);
	assert_body(r.body, "{\"name\":\"db.prod-1\",\"tenant\":\"beta_2\",\"pid\":4194304,"
			    "\"memory_bytes\":536870912}");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "register", "--tenant", "t", "--pid", "1", "--memory", "4K",
			       "v"), 0);
	assert_body(r.body, "{\"name\":\"v\",\"tenant\":\"t\",\"pid\":1,\"memory_bytes\":4096}");
	cli_request_clear(&r);

	/* the last of a repeated option wins; after "--" a name may start with '-' */
	assert_int_equal(BUILD(&r, &err, "register", "--pid", "7", "--pid", "8", "--tenant", "a",
			       "--memory", "1T", "--", "-v"), 0);
	assert_body(r.body, "{\"name\":\"-v\",\"tenant\":\"a\",\"pid\":8,"
			    "\"memory_bytes\":1099511627776}");
	cli_request_clear(&r);
	assert_null(err);
}

static void test_build_list_show_release(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(BUILD(&r, &err, "list"), 0);
	assert_request(&r, "GET", "/v1/vms", NULL);
	assert_false(r.json);
	assert_non_null(r.render);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "list", "--json"), 0);
	assert_true(r.json);
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "show", "web"), 0);
	assert_request(&r, "GET", "/v1/vms/web", "web");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "release", "--json", "web.1"), 0);
	assert_request(&r, "DELETE", "/v1/vms/web.1", "web.1");
	assert_true(r.json);
	cli_request_clear(&r);
	/* a retrying script: a VM already gone is no error */
	assert_int_equal(BUILD(&r, &err, "release", "web.1", "--missing-ok"), 0);
	assert_request(&r, "DELETE", "/v1/vms/web.1?missing_ok=1", "web.1");
	cli_request_clear(&r);

	assert_int_equal(BUILD(&r, &err, "show", "--", "-x"), 0);
	assert_string_equal(r.path, "/v1/vms/-x");
	cli_request_clear(&r);

	/* vm set: its own cpu.weight, or back to the default */
	assert_int_equal(BUILD(&r, &err, "set", "web", "--weight", "250"), 0);
	assert_string_equal(r.method, "PATCH");
	assert_string_equal(r.path, "/v1/vms/web");
	assert_string_equal(r.subject, "web");
	assert_int_equal(json_integer_value(json_object_get(r.body, "weight")), 250);
	uint32_t w = 1;
	assert_int_equal(api_vm_patch_from_json(r.body, &w, NULL), 0); /* the server takes it */
	assert_int_equal(w, 250);
	cli_request_clear(&r);
	assert_int_equal(BUILD(&r, &err, "set", "web", "--weight", "auto"), 0);
	assert_true(json_is_null(json_object_get(r.body, "weight")));
	assert_int_equal(api_vm_patch_from_json(r.body, &w, NULL), 0);
	assert_int_equal(w, 0);
	cli_request_clear(&r);
	assert_null(err);
}

static void test_build_help(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(BUILD(&r, &err, "register", "--help"), 0);
	assert_true(r.help);
	assert_null(r.method);
	assert_null(r.path);
	assert_null(r.body);
	assert_contains(r.usage, "vm register NAME --tenant T --pid PID [--memory SIZE]");
	assert_contains(r.help_text, "--memory SIZE");
	cli_request_clear(&r);

	/* --help wins over a bad or missing NAME, not over a bad command line */
	assert_int_equal(BUILD(&r, &err, "release", "../x", "-h"), 0);
	assert_true(r.help);
	assert_null(r.path);
	assert_contains(r.usage, "vm release NAME");
	cli_request_clear(&r);
	assert_int_equal(BUILD(&r, &err, "register", "-h", "--pid", "0"), 0);
	assert_true(r.help);
	assert_null(r.body);
	cli_request_clear(&r);
	assert_int_equal(BUILD(&r, &err, "release", "-h", "a", "b"), -1);
	assert_contains(err->msg, "unexpected argument 'b'");
	error_free(&err);
	cli_request_clear(&r);
	assert_null(err);
}

/* Each of these must be refused before any I/O, with EINVAL or ERANGE (exit
 * 2), a message naming the problem and the subcommand's usage line. */
#define REG "register", "web", "--tenant", "acme"

static void test_build_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(strlen(long_name), 65);
	const struct bad_case cases[] = {
		{ "vm register", "missing --tenant", { "register", "web", "--pid", "1" } },
		{ "vm register", "missing --tenant", { "register", "web" } },
		{ "vm register", "missing --pid", { REG } },
		{ "vm register", "missing --pid", { REG, "--memory", "1G" } },
		{ "vm register", "missing VM NAME", { "register", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "--pid: 0 is out of range (1..4194304)", { REG, "--pid", "0" } },
		{ "vm register", "--pid: 4194305 is out of range (1..4194304)",
		  { REG, "--pid", "4194305" } },
		{ "vm register", "--pid: 99999999999999999999 is out of range",
		  { REG, "--pid", "99999999999999999999" } },
		{ "vm register", "--pid: '-1' is not a whole number", { REG, "--pid", "-1" } },
		{ "vm register", "--pid: '-1' is not a whole number", { REG, "--pid=-1" } },
		{ "vm register", "--pid: 'abc' is not a whole number", { REG, "--pid", "abc" } },
		{ "vm register", "--pid: '12x' is not a whole number", { REG, "--pid", "12x" } },
		{ "vm register", "--pid: '+5' is not a whole number", { REG, "--pid", "+5" } },
		{ "vm register", "--pid: '' is not a whole number", { REG, "--pid", "" } },
		{ "vm register", "invalid VM name '../x'",
		  { "register", "../x", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "invalid VM name 'a/b'",
		  { "register", "a/b", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "invalid VM name '..'",
		  { "register", "..", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "VM name is empty",
		  { "register", "", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "invalid VM name 'a123",
		  { "register", (char *)long_name, "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "--tenant: invalid tenant name '../x'",
		  { "register", "web", "--tenant", "../x", "--pid", "1" } },
		{ "vm register", "--tenant: invalid tenant name 'a b'",
		  { "register", "web", "--tenant", "a b", "--pid", "1" } },
		{ "vm register", "--tenant: tenant name is empty",
		  { "register", "web", "--tenant", "", "--pid", "1" } },
		{ "vm register", "--tenant: invalid tenant name 'a123",
		  { "register", "web", "--tenant", (char *)long_name, "--pid", "1" } },
		{ "vm register", "--memory: invalid size '12Q'",
		  { REG, "--pid", "1", "--memory", "12Q" } },
		{ "vm register", "--memory: invalid size 'none'",
		  { REG, "--pid", "1", "--memory", "none" } },
		{ "vm register", "--memory: invalid size ''", { REG, "--pid", "1", "--memory", "" } },
		{ "vm register", "--memory: 1K is out of range (4K..1024T)",
		  { REG, "--pid", "1", "--memory", "1K" } },
		{ "vm register", "--memory: 0 is out of range", { REG, "--pid", "1", "--memory", "0" } },
		{ "vm register", "--memory: 1025T is out of range",
		  { REG, "--pid", "1", "--memory", "1025T" } },
		{ "vm register", "unexpected argument 'extra'",
		  { "register", "web", "extra", "--tenant", "acme", "--pid", "1" } },
		{ "vm register", "unexpected argument 'extra'",
		  { REG, "--pid", "1", "--", "extra" } },
		{ "vm register", "unknown option '--vcpus'", { REG, "--pid", "1", "--vcpus", "2" } },
		{ "vm register", "unknown option '--name'", { REG, "--pid", "1", "--name=web" } },
		{ "vm register", "unknown option '-p'", { REG, "-p", "1" } },
		{ "vm register", "option '--pid' needs a value", { REG, "--pid" } },
		{ "vm register", "option '--tenant' needs a value", { "register", "web", "--tenant" } },
		{ "vm register", "option '--json' does not take a value",
		  { REG, "--pid", "1", "--json=yes" } },
		{ "vm list", "unexpected argument 'web'", { "list", "web" } },
		{ "vm list", "unknown option '--tenant'", { "list", "--tenant", "acme" } },
		{ "vm show", "missing VM NAME", { "show" } },
		{ "vm show", "missing VM NAME", { "show", "--json" } },
		{ "vm show", "unexpected argument 'b'", { "show", "a", "b" } },
		{ "vm show", "unexpected argument 'b'", { "show", "a", "--", "b" } },
		{ "vm show", "invalid VM name '../x'", { "show", "../x" } },
		{ "vm show", "invalid VM name 'a?x=1'", { "show", "a?x=1" } },
		{ "vm show", "VM name is empty", { "show", "" } },
		{ "vm show", "unknown option '--pid'", { "show", "web", "--pid", "3" } },
		{ "vm release", "missing VM NAME", { "release" } },
		{ "vm release", "invalid VM name '../x'", { "release", "../x" } },
		{ "vm release", "invalid VM name '.'", { "release", "." } },
		{ "vm release", "unexpected argument 'y'", { "release", "x", "y" } },
		{ "vm release", "unknown option '--force'", { "release", "x", "--force" } },
		{ "vm set", "nothing to change", { "set", "x" } },
		{ "vm set", "--weight (or auto)", { "set", "x", "--weight", "0" } },
		{ "vm set", "--weight (or auto)", { "set", "x", "--weight", "10001" } },
		{ "vm set", "--weight (or auto)", { "set", "x", "--weight", "AUTO" } },
		{ "vm set", "missing VM NAME", { "set", "--weight", "5" } },
		{ "vm register|list|show|release", "unknown vm command 'delete'", { "delete", "web" } },
		{ "vm register|list|show|release", "unknown vm command ''", { "" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bad_case *c = &cases[i];
		struct cli_request r;
		struct error *err;
		assert_build_refused(cli_vm_build, i, c, &r, &err);
		if (strcmp(c->usage, "vm register|list|show|release") == 0) {
			/* an unknown subcommand shows the whole group */
			assert_contains(r.usage, "vm register NAME");
			assert_contains(r.usage, "vm release NAME");
		} else {
			assert_contains(r.usage, c->usage);
			if (strstr(r.usage, "\n"))
				fail_msg("case %zu: group usage for a known subcommand", i);
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
	assert_int_equal(cli_vm_build(0, ARGV(NULL), &r, &err), -1);
	assert_contains(err->msg, "missing vm command");
	assert_contains(r.usage, "vm list");
	error_free(&err);
	cli_request_clear(&r);
}

/* --- rendering -------------------------------------------------------- */

static void test_render_list(void **state)
{
	(void)state;
	char *text = list_json();
	json_t *reply = load(text);
	struct vm *vms = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cli_vm_list_from_reply(reply, &vms, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(vms[3].tenant, ""); /* unmanaged */
	assert_string_equal(vms[1].name, "db-primary");
	assert_int_equal(vms[1].state, VM_STATE_GONE);
	assert_false(vms[1].memory_set);
	assert_int_equal(vms[0].n_threads, 2);

	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_vm_print_table(f, vms, n);
	cli_vm_print_table(f, vms, 0);
	fclose(f);
	char *want = xasprintf("%sno VMs\n", list_table);
	assert_string_equal(buf, want);
	free(want);
	free(buf);
	vm_list_free(vms, n);
	json_decref(reply);
	free(text);

	/* an empty list */
	reply = load("{\"vms\":[]}");
	assert_int_equal(cli_vm_list_from_reply(reply, &vms, &n, &err), 0);
	assert_int_equal(n, 0);
	vm_list_free(vms, n);
	json_decref(reply);
}

static char *render_show(const char *json)
{
	json_t *reply = load(json);
	struct vm v;
	const char **cg = NULL;
	struct error *err = NULL;
	if (cli_vm_from_reply(reply, &v, &cg, &err) < 0)
		fail_msg("%s", err->msg);
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_vm_print(f, &v, cg, reply);
	fclose(f);
	free(cg);
	vm_clear(&v);
	json_decref(reply);
	return buf;
}

static void test_render_show(void **state)
{
	(void)state;
	char *out = render_show(web_json);
	assert_string_equal(out, web_show);
	free(out);

	out = render_show(db_json);
	assert_string_equal(out,
		"name:     db-primary\n"
		"tenant:   beta-corporation\n"
		"pid:      5678\n"
		"state:    gone\n"
		"source:   proc\n"
		"uuid:     -\n"
		"vcpus:    16\n"
		"memory:   none\n"
		"weight:   by vCPUs\n"
		"created:  2023-11-14T22:13:20Z\n"
		"updated:  -\n"
		"\n"
		"no vCPU threads\n");
	free(out);

	out = render_show(x_json);
	assert_string_equal(out,
		"name:     x\n"
		"tenant:   acme\n"
		"pid:      -\n"
		"state:    paused\n"
		"source:   libvirt\n"
		"uuid:     6f1c2b1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f\n"
		"vcpus:    1\n"
		"memory:   1536M\n"
		"weight:   250 (set)\n"
		"created:  2023-11-14T22:13:20Z\n"
		"updated:  2023-11-14T22:13:20Z\n"
		"\n"
		"INDEX  TID  CGROUP\n"
		"0      -    -\n");
	free(out);

	/* a state this client does not know reads as unknown, not as an error */
	out = render_show("{\"name\":\"n\",\"tenant\":\"t\",\"state\":\"migrating\","
			  "\"source\":\"elsewhere\",\"vcpus\":1}");
	assert_contains(out, "state:    unknown\n");
	assert_contains(out, "source:   unknown\n");
	assert_contains(out, "\nno vCPU threads\n");
	free(out);
}

/* What the server's api_vm_to_json() writes, the client reads back whole,
 * cgroup paths included. */
/* The lifecycle's fields: an admitted VM with no process yet, a
 * quarantined one, one that holds no admission. */
static void test_render_admission_and_fault(void **state)
{
	(void)state;
	char *out = render_show(
		"{\"name\":\"db-1\",\"tenant\":\"acme\",\"pid\":0,\"state\":\"admitted\","
		"\"source\":\"registered\",\"uuid\":null,\"vcpus\":2,\"memory_bytes\":null,"
		"\"vcpu_threads\":[],\"created_at\":0,\"updated_at\":0,"
		"\"placement\":{\"pool\":\"shared\",\"cpu_policy\":\"shared\","
		"\"thread_policy\":\"prefer\",\"nodes\":[1],\"pcpus\":\"\",\"cpus\":\"10-15\","
		"\"mems\":\"1\"},\"fault\":null}");
	assert_string_equal(out,
		"name:     db-1\n"
		"tenant:   acme\n"
		"pid:      -\n"
		"state:    admitted\n"
		"source:   registered\n"
		"uuid:     -\n"
		"vcpus:    2\n"
		"memory:   none\n"
		"weight:   by vCPUs\n"
		"created:  -\n"
		"updated:  -\n"
		"placement: shared pool (prefer), node 1, CPUs 10-15, memory nodes 1\n"
		"\n"
		"no vCPU threads\n");
	free(out);
	out = render_show(
		"{\"name\":\"web-2\",\"tenant\":\"acme\",\"pid\":77,\"state\":\"running\","
		"\"source\":\"libvirt\",\"uuid\":null,\"vcpus\":2,\"memory_bytes\":null,"
		"\"vcpu_threads\":[],\"created_at\":0,\"updated_at\":0,"
		"\"placement\":{\"pool\":\"dedicated\",\"thread_policy\":\"isolate\","
		"\"nodes\":[0,1],\"pcpus\":\"2,10\",\"cpus\":\"2,10\",\"mems\":\"0-1\"},"
		"\"fault\":{\"kind\":\"identity\",\"reason\":\"libvirt reports VM web-2 with "
		"process 77, which is VM web-1 (registered): refused\",\"since_ms\":1700000000000}}");
	assert_non_null(strstr(out, "placement: dedicated pool (isolate), nodes 0,1, CPUs 2,10, "
			       "memory nodes 0-1, pCPUs 2,10\n"));
	assert_non_null(strstr(out, "fault:     quarantined (identity) since "
			       "2023-11-14T22:13:20Z: libvirt reports VM web-2 with process 77, "
			       "which is VM web-1 (registered): refused\n"));
	free(out);
	out = render_show(
		"{\"name\":\"old\",\"tenant\":\"acme\",\"pid\":5,\"state\":\"gone\","
		"\"source\":\"proc\",\"uuid\":null,\"vcpus\":1,\"memory_bytes\":null,"
		"\"vcpu_threads\":[],\"created_at\":0,\"updated_at\":0,\"placement\":null,"
		"\"fault\":null}");
	assert_non_null(strstr(out, "placement: none (not admitted: holds no capacity)\n"));
	assert_null(strstr(out, "fault:"));
	free(out);
}

static void test_render_server_json(void **state)
{
	(void)state;
	struct vm v;
	memset(&v, 0, sizeof(v));
	strcpy(v.name, "web");
	strcpy(v.tenant, "acme");
	v.pid = 4242;
	v.vcpus = 3;
	v.state = VM_STATE_RUNNING;
	v.source = VM_SOURCE_REGISTERED;
	v.memory_set = true;
	v.memory_bytes = 2LL << 30;
	v.created_at = 1700000000;
	v.updated_at = 1700000000;
	struct vm_vcpu th[] = { { 0, 4243 }, { 2, 4245 } }; /* vCPU 1 unplugged */
	v.threads = th;
	v.n_threads = 2;
	json_t *j = api_vm_to_json(&v);

	struct vm got;
	const char **cg = NULL;
	struct error *err = NULL;
	assert_int_equal(cli_vm_from_reply(j, &got, &cg, &err), 0);
	assert_string_equal(got.name, "web");
	assert_int_equal(got.pid, 4242);
	assert_int_equal(got.vcpus, 3);
	assert_true(got.memory_set);
	assert_int_equal(got.memory_bytes, 2LL << 30);
	assert_int_equal(got.n_threads, 2);
	assert_int_equal(got.threads[1].index, 2);
	assert_int_equal(got.threads[1].tid, 4245);
	assert_non_null(cg);
	assert_string_equal(cg[0], "tenant-acme/vm-web/vcpu0");
	assert_string_equal(cg[1], "tenant-acme/vm-web/vcpu2");

	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_vm_print_threads(f, &got, cg);
	cli_vm_print_threads(f, &got, NULL); /* no cgroups known: "-" */
	cli_vm_print_table(f, &got, 1);
	fclose(f);
	assert_string_equal(buf,
		"INDEX  TID   CGROUP\n"
		"0      4243  tenant-acme/vm-web/vcpu0\n"
		"2      4245  tenant-acme/vm-web/vcpu2\n"
		"INDEX  TID   CGROUP\n"
		"0      4243  -\n"
		"2      4245  -\n"
		"NAME  TENANT  PID   STATE    SOURCE      VCPUS  MEMORY  UUID\n"
		"web   acme    4242  running  registered  3      2G      -\n");
	free(buf);
	free(cg);
	vm_clear(&got);
	json_decref(j);
}

static void test_malformed_replies(void **state)
{
	(void)state;
	static const char *const bad_vm[] = {
		"[]", "1", "{}", "{\"name\":\"a\"}", "{\"tenant\":\"t\"}",
		"{\"name\":1,\"tenant\":\"t\"}",
		"{\"name\":\"a123456789b123456789c123456789d123456789e123456789f123456789ghijk\","
		"\"tenant\":\"t\"}",
		"{\"name\":\"a\",\"tenant\":\"t\",\"vcpu_threads\":{}}",
		"{\"name\":\"a\",\"tenant\":\"t\",\"vcpu_threads\":[1]}",
		"{\"name\":\"a\",\"tenant\":\"t\",\"vcpu_threads\":[{\"index\":0},null]}",
	};
	struct error *err = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(bad_vm); i++) {
		json_t *j = load(bad_vm[i]);
		struct vm v;
		const char **cg = NULL;
		if (cli_vm_from_reply(j, &v, &cg, &err) == 0)
			fail_msg("malformed VM accepted: %s", bad_vm[i]);
		assert_int_equal(err->code, EPROTO);
		assert_null(cg);
		error_free(&err);
		json_decref(j);
	}

	/* the second VM is bad after the first was read: nothing leaks
	 * (the sanitizer build checks) and nothing comes back */
	char *second_bad = xasprintf("{\"vms\":[%s,{\"tenant\":\"x\"}]}", web_json);
	const char *const bad_list[] = {
		"{}", "[]", "{\"vms\":{}}", "{\"vms\":null}", "{\"vms\":[1]}", "{\"vm\":[]}",
		second_bad,
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_list); i++) {
		json_t *j = load(bad_list[i]);
		struct vm *vms = NULL;
		size_t n = 99;
		if (cli_vm_list_from_reply(j, &vms, &n, &err) == 0)
			fail_msg("malformed list accepted: %s", bad_list[i]);
		assert_int_equal(err->code, EPROTO);
		assert_null(vms);
		assert_int_equal(n, 99);
		error_free(&err);
		json_decref(j);
	}
	free(second_bad);
}

/* --- the whole program: help and usage errors -------------------------- */

static void test_main_help(void **state)
{
	(void)state;
	struct cap c;

	RUN(&c, "--help");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "\n  vm         register, list, show and release VMs");
	assert_contains(c.out, "\n  tenant     ");
	assert_contains(c.out, "\n  policy     ");
	cap_free(&c);

	static const char *const group_lines[] = {
		"usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]\n",
		"       vcpuctl vm list\n", "       vcpuctl vm show NAME [--ascii]\n",
		"       vcpuctl vm release NAME [--missing-ok]\n", "VM and tenant names are 1 to 64",
		"Run 'vcpuctl vm COMMAND --help'",
	};
	char **group_argvs[] = {
		ARGV("vcpuctl", "vm", "--help"), ARGV("vcpuctl", "vm", "-h"),
		ARGV("vcpuctl", "vm", "help"), ARGV("vcpuctl", "help", "vm"),
		ARGV("vcpuctl", "vm", "help", "nonsense"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(group_argvs); i++) {
		int argc = 0;
		while (group_argvs[i][argc])
			argc++;
		run_argv(&c, argc, group_argvs[i]);
		assert_int_equal(c.rc, 0);
		for (size_t k = 0; k < ARRAY_SIZE(group_lines); k++)
			assert_contains(c.out, group_lines[k]);
		assert_string_equal(c.err, "");
		cap_free(&c);
	}

	RUN(&c, "vm", "register", "--help");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "usage: vcpuctl vm register NAME --tenant T --pid PID "
					  "[--memory SIZE]\n\nOptions:\n"));
	assert_contains(c.out, "--tenant T");
	assert_contains(c.out, "--pid PID");
	assert_contains(c.out, "1..4194304");
	assert_contains(c.out, "VM and tenant names");
	assert_string_equal(c.err, "");
	cap_free(&c);

	RUN(&c, "vm", "help", "show");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "usage: vcpuctl vm show NAME [--ascii]\n"));
	assert_contains(c.out, "--ascii");
	cap_free(&c);

	RUN(&c, "vm", "list", "--help");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "usage: vcpuctl vm list\n"));
	assert_null(strstr(c.out, "names are")); /* list takes no NAME */
	cap_free(&c);
}

static void test_main_usage_errors(void **state)
{
	(void)state;
	struct cap c;

	RUN(&c, "vm");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: missing vm command\nusage: vcpuctl vm register");
	assert_string_equal(c.out, "");
	cap_free(&c);

	RUN(&c, "vm", "rm", "web");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: unknown vm command 'rm'\nusage: vcpuctl vm register");
	assert_contains(c.err, "vcpuctl vm release NAME [--missing-ok]\n");
	assert_contains(c.err, "Try 'vcpuctl vm --help' for more information.\n");
	cap_free(&c);

	/* refused before any I/O: the socket does not exist, reaching for it
	 * would exit 5 */
	static const struct {
		const char *message;
		const char *usage;
		const char *try_cmd;
		char *argv[12];
	} cases[] = {
		{ "--pid: 0 is out of range (1..4194304)",
		  "usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]",
		  "vcpuctl vm register",
		  { "register", "web", "--tenant", "acme", "--pid", "0" } },
		{ "--pid: '-1' is not a whole number",
		  "usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]",
		  "vcpuctl vm register",
		  { "register", "web", "--tenant", "acme", "--pid", "-1" } },
		{ "missing --tenant (the tenant the VM belongs to)",
		  "usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]",
		  "vcpuctl vm register", { "register", "web", "--pid", "12" } },
		{ "--memory: invalid size '12Q': unknown suffix 'Q' (use K, M, G or T)",
		  "usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]",
		  "vcpuctl vm register",
		  { "register", "web", "--tenant", "acme", "--pid", "9", "--memory", "12Q" } },
		{ "invalid VM name '../x': use 1 to 64 of A-Z a-z 0-9 _ . - (not '.' or '..')",
		  "usage: vcpuctl vm show NAME [--ascii]", "vcpuctl vm show",
		  { "show", "../x" } },
		{ "unexpected argument 'b'", "usage: vcpuctl vm release NAME [--missing-ok]",
		  "vcpuctl vm release",
		  { "release", "a", "b" } },
		{ "unknown option '--all'", "usage: vcpuctl vm list", "vcpuctl vm list",
		  { "list", "--all" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[16] = { "vcpuctl", "--socket", "/nonexistent-vcpuctl/vcpud.sock", "vm" };
		int argc = 4;
		for (int k = 0; cases[i].argv[k]; k++)
			argv[argc++] = cases[i].argv[k];
		run_argv(&c, argc, argv);
		char *want = xasprintf("vcpuctl: %s\n%s\nTry '%s --help' for more information.\n",
				       cases[i].message, cases[i].usage, cases[i].try_cmd);
		if (c.rc != CLI_EXIT_USAGE || strcmp(c.err, want) != 0)
			fail_msg("case %zu: exit %d, stderr \"%s\", expected exit 2 and \"%s\"", i,
				 c.rc, c.err, want);
		assert_string_equal(c.out, "");
		free(want);
		cap_free(&c);
	}

	/* while a valid request does go for the socket */
	RUN(&c, "--socket", "/nonexistent-vcpuctl/vcpud.sock", "vm", "release", "web");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "cannot reach vcpud at /nonexistent-vcpuctl/vcpud.sock");
	cap_free(&c);
}

/* --- against a fake vcpud (cli_test_util.h) ----------------------------- */

/* Run `vcpuctl [--json] --socket FAKE vm ARGS...` against a fake answering
 * status/body; *request gets what the fake saw (caller frees). */
static void run_fake(struct cap *c, char **request, int status, const char *body, bool json,
		     char *const *args)
{
	const struct fake_reply reply = { status, body, false };
	char *argv[16] = { NULL };
	int argc = 0;
	if (json)
		argv[argc++] = "--json";
	argv[argc++] = "vm";
	for (; *args; args++) {
		assert_true(argc + 1 < (int)ARRAY_SIZE(argv));
		argv[argc++] = *args;
	}
	run_script(c, request, &reply, 1, argv);
}
#define RUN_FAKE(c, req, status, body, json, ...) \
	run_fake(c, req, status, body, json, ARGV(__VA_ARGS__))

static void test_fake_register(void **state)
{
	(void)state;
	struct cap c;
	char *req;

	RUN_FAKE(&c, &req, 201, web_json, false, "register", "web", "--tenant", "acme", "--pid",
		 "1234", "--memory", "1G");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.err, "");
	assert_string_equal(c.out,
		"vm web registered: tenant acme, pid 1234, 2 vCPUs\n"
		"INDEX  TID   CGROUP\n"
		"0      1235  tenant-acme/vm-web/vcpu0\n"
		"1      1236  tenant-acme/vm-web/vcpu1\n");
	/* the server saw the request as built */
	assert_true(str_has_prefix(req, "POST /v1/vms\n"));
	json_t *b = load(strchr(req, '\n') + 1);
	assert_body(b, "{\"name\":\"web\",\"tenant\":\"acme\",\"pid\":1234,"
		       "\"memory_bytes\":1073741824}");
	json_decref(b);
	free(req);
	cap_free(&c);

	/* --json: the reply as received */
	RUN_FAKE(&c, &req, 201, web_json, true, "register", "web", "--tenant", "acme", "--pid",
		 "1234");
	assert_int_equal(c.rc, 0);
	json_t *got = load(c.out);
	json_t *want = load(web_json);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(req);
	cap_free(&c);
}

static void test_fake_list_show_release(void **state)
{
	(void)state;
	struct cap c;
	char *req;
	char *list = list_json();

	RUN_FAKE(&c, &req, 200, list, false, "list");
	assert_int_equal(c.rc, 0);
	assert_string_equal(req, "GET /v1/vms\n");
	assert_string_equal(c.out, list_table);
	assert_string_equal(c.err, "");
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 200, "{\"vms\":[]}", false, "list");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "no VMs\n");
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 200, list, false, "list", "--json");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "{\n  \"vms\": [\n"));
	json_t *got = load(c.out);
	json_t *want = load(list);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 200, web_json, false, "show", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(req, "GET /v1/vms/web\n");
	assert_string_equal(c.out, web_show);
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 204, NULL, false, "release", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(req, "DELETE /v1/vms/web\n");
	assert_string_equal(c.out, "vm web released\n");
	free(req);
	cap_free(&c);

	/* no body, nothing to print in --json mode */
	RUN_FAKE(&c, &req, 204, NULL, true, "release", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "");
	free(req);
	cap_free(&c);
	free(list);
}

/* Server errors: its message on stderr, the exit code from the status, the
 * error JSON on stdout under --json. */
static void test_fake_errors(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *code;
		int exit;
		char *args[8];
	} cases[] = {
		{ 400, "invalid", CLI_EXIT_USAGE,
		  { "register", "web", "--tenant", "acme", "--pid", "77" } },
		{ 404, "not_found", CLI_EXIT_NOT_FOUND,
		  { "register", "web", "--tenant", "nope", "--pid", "77" } },
		{ 409, "conflict", CLI_EXIT_CONFLICT,
		  { "register", "web", "--tenant", "acme", "--pid", "77" } },
		{ 404, "not_found", CLI_EXIT_NOT_FOUND, { "show", "ghost" } },
		{ 404, "not_found", CLI_EXIT_NOT_FOUND, { "release", "ghost" } },
		{ 403, "forbidden", CLI_EXIT_FORBIDDEN, { "release", "web" } },
		{ 500, "internal", CLI_EXIT_ERROR, { "list" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int json = 0; json < 2; json++) {
			char *body = xasprintf("{\"error\":{\"code\":\"%s\",\"message\":\"boom %d\"}}",
					       cases[i].code, cases[i].status);
			struct cap c;
			char *req;
			run_fake(&c, &req, cases[i].status, body, json, cases[i].args);
			if (c.rc != cases[i].exit)
				fail_msg("case %zu (%s, HTTP %d): exit %d, expected %d", i,
					 cases[i].args[0], cases[i].status, c.rc, cases[i].exit);
			char *msg = xasprintf("vcpuctl: boom %d\n", cases[i].status);
			assert_string_equal(c.err, msg);
			if (json) {
				json_t *got = load(c.out);
				json_t *want = load(body);
				assert_true(json_equal(got, want));
				json_decref(got);
				json_decref(want);
			} else {
				assert_string_equal(c.out, "");
			}
			free(msg);
			free(body);
			free(req);
			cap_free(&c);
		}
	}
}

static void test_fake_bad_replies(void **state)
{
	(void)state;
	struct cap c;
	char *req;

	RUN_FAKE(&c, &req, 200, "{\"vm\":[]}", false, "list");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "unexpected reply from vcpud to GET /v1/vms: no \"vms\" array");
	assert_string_equal(c.out, "");
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 201, "{}", false, "register", "web", "--tenant", "acme", "--pid", "5");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "unexpected reply from vcpud to POST /v1/vms");
	free(req);
	cap_free(&c);

	RUN_FAKE(&c, &req, 200, "{\"name\":\"web\",\"tenant\":\"acme\",\"vcpu_threads\":7}", false,
		 "show", "web");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "\"vcpu_threads\" of the VM is not an array");
	free(req);
	cap_free(&c);
}

/* A listing in pages: vcpuctl asks for each next page and shows them as
 * one; a server whose pages never end is an error, not a loop. */
static void test_follows_pages(void **state)
{
	(void)state;
	const struct fake_reply pages[] = {
		{ 200, "{\"vms\":[{\"name\":\"a\",\"tenant\":\"t\",\"state\":\"running\",\"vcpus\":1}],"
		       "\"next\":\"a\"}", false },
		{ 200, "{\"vms\":[{\"name\":\"b\",\"tenant\":\"t\",\"state\":\"running\",\"vcpus\":1}],"
		       "\"next\":null}", false },
	};
	struct cap c;
	char *reqs = NULL;
	RUN_SCRIPT(&c, &reqs, pages, "--json", "vm", "list");
	assert_int_equal(c.rc, 0);
	assert_contains(reqs, "GET /v1/vms\n");
	assert_contains(reqs, "GET /v1/vms?after=a\n");
	json_t *j = load(c.out);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 2);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	free(reqs);
	cap_free(&c);

	/* human output too */
	RUN_SCRIPT(&c, &reqs, pages, "vm", "list");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "a ");
	assert_contains(c.out, "b ");
	free(reqs);
	cap_free(&c);

	/* a page that fails: the command fails */
	const struct fake_reply broken[] = {
		{ 200, "{\"vms\":[],\"next\":\"a\"}", false },
		{ 500, "{\"error\":{\"code\":\"internal\",\"message\":\"boom\"}}", false },
	};
	RUN_SCRIPT(&c, &reqs, broken, "vm", "list");
	assert_int_not_equal(c.rc, 0);
	assert_contains(c.err, "boom");
	free(reqs);
	cap_free(&c);
}

int main(void)
{
	/* a dying fake server must not kill the test through SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_register),
		cmocka_unit_test(test_build_list_show_release),
		cmocka_unit_test(test_build_help),
		cmocka_unit_test(test_build_usage_errors),
		cmocka_unit_test(test_build_no_subcommand),
		cmocka_unit_test(test_render_list),
		cmocka_unit_test(test_render_show),
		cmocka_unit_test(test_render_admission_and_fault),
		cmocka_unit_test(test_render_server_json),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_main_help),
		cmocka_unit_test(test_main_usage_errors),
		cmocka_unit_test(test_fake_register),
		cmocka_unit_test(test_fake_list_show_release),
		cmocka_unit_test(test_fake_errors),
		cmocka_unit_test(test_fake_bad_replies),
		cmocka_unit_test(test_follows_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
