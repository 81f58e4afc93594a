/* vm.c - `vcpuctl vm admit|register|list|show|release|stats`.
 *
 * Same shape as tenant.c: argv becomes a struct cli_request in
 * cli_vm_build() (pure: client-side validation, the register body checked
 * with the API's own parser), then cli_request_run() talks to vcpud and
 * calls the renderers below for human output. Each subcommand is one row
 * of `subs`, run by cli.c's group machinery (parsing, NAME, help, usage
 * errors); each column of `vm list` is one row of `list_columns`.
 * `vm show` then asks for the VM's last minutes of samples (GET
 * /v1/vms/NAME/stats) and prints them with top.c's history renderer.
 * `vm admit` asks vcpud's admission control for room for a VM (POST
 * /v1/vms/admit: tenant quota, shared-pool overcommit per NUMA node,
 * dedicated pCPUs) and prints where it was placed. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/events.h"
#include "cli/output.h"
#include "cli/top.h"
#include "cli/vm.h"
#include "vcpud/admit.h"
#include "vcpud/api.h"
#include "vcpud/cpulist.h"
#include "vcpud/tenant.h"
#include "vcpud/util.h"

enum {
	OPT_TENANT = CLI_OPT_FIRST,
	OPT_PID,
	OPT_MEMORY,
	OPT_SINCE,
	OPT_VCPUS,
	OPT_CPU_POLICY,
	OPT_THREAD_POLICY,
	OPT_DRY_RUN,
	OPT_MISSING_OK,
	OPT_WEIGHT,
	OPT_ASCII,
};

static const struct option register_opts[] = {
	{ "tenant", required_argument, NULL, OPT_TENANT },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	CLI_OPTS_COMMON
};

static const struct option admit_opts[] = {
	{ "tenant", required_argument, NULL, OPT_TENANT },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "cpu-policy", required_argument, NULL, OPT_CPU_POLICY },
	{ "thread-policy", required_argument, NULL, OPT_THREAD_POLICY },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	CLI_OPTS_COMMON
};

static const struct option plain_opts[] = { CLI_OPTS_COMMON };

static const struct option release_opts[] = {
	{ "missing-ok", no_argument, NULL, OPT_MISSING_OK },
	CLI_OPTS_COMMON
};

static const char release_usage[] = "usage: vcpuctl vm release NAME [--missing-ok]";

static const char release_help[] =
	"Stops managing the VM (its process is left alone, its vCPU threads go back\n"
	"where the process was) and frees its admission reservation.\n"
	"\n"
	"Options:\n"
	"  --missing-ok       a VM that is not there (released already) is no error\n"
	"                     (for scripts that retry)\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const struct option show_opts[] = {
	{ "ascii", no_argument, NULL, OPT_ASCII },
	CLI_OPTS_COMMON
};

static const char show_help[] =
	"Shows the VM, its vCPU threads with their cgroups, and its recent samples:\n"
	"sparklines of its steal, usage and throttle cap per tick (Unicode blocks),\n"
	"the last minutes' means and the last samples.\n"
	"\n"
	"Options:\n"
	"  --ascii            draw the sparklines in plain ASCII (_.-=+*#@)\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const struct option set_opts[] = {
	{ "weight", required_argument, NULL, OPT_WEIGHT },
	CLI_OPTS_COMMON
};

static const char set_usage[] = "usage: vcpuctl vm set NAME --weight W|auto";

static const char set_help[] =
	"Changes a VM's own settings. Its VM cgroup's cpu.weight (how the kernel\n"
	"splits its tenant's share between the tenant's VMs; the tenant's own\n"
	"weight sets its share against other tenants) is by default 100 per vCPU\n"
	"(at most 10000); --weight sets it (like libvirt's <shares>: 200 for a\n"
	"2-vCPU VM is its default, 400 counts it double), --weight auto goes back\n"
	"to that default.\n"
	"\n"
	"Options:\n"
	"  --weight W|auto    1..10000, or auto\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const struct option stats_opts[] = {
	{ "since", required_argument, NULL, OPT_SINCE },
	CLI_OPTS_COMMON
};

static const char register_usage[] =
	"usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]";

#define ADMIT_USAGE_ARGS \
	"NAME --tenant T --vcpus N [--memory SIZE]\n" \
	"                        [--cpu-policy shared|dedicated]\n" \
	"                        [--thread-policy prefer|isolate|require] [--dry-run]"

static const char admit_usage[] = "usage: vcpuctl vm admit " ADMIT_USAGE_ARGS;

static const char group_usage[] =
	"usage: vcpuctl vm register NAME --tenant T --pid PID [--memory SIZE]\n"
	"       vcpuctl vm admit " ADMIT_USAGE_ARGS "\n"
	"       vcpuctl vm list\n"
	"       vcpuctl vm show NAME [--ascii]\n"
	"       vcpuctl vm release NAME [--missing-ok]\n"
	"       vcpuctl vm set NAME --weight W|auto\n"
	"       vcpuctl vm stats NAME [--since T]";

static const char stats_usage[] = "usage: vcpuctl vm stats NAME [--since T]";

static const char group_help[] =
	"register  put a running VM under vcpud's control: its vCPU threads are found\n"
	"          by name in the VMM process PID and counted against T's vCPU quota\n"
	"admit     reserve room for a VM before it starts: T's quota, the shared pool's\n"
	"          overcommit on each NUMA node or dedicated pCPUs; prints where it goes\n"
	"list      all VMs vcpud manages\n"
	"show      one VM, its vCPU threads with their cgroups, and its usage and\n"
	"          steal over the last 5 minutes (per minute, and the last samples)\n"
	"release   stop managing a VM (the process is left alone) and free its\n"
	"          admission reservation; its cgroups go at vcpud's next tick\n"
	"set       change a VM's own cpu.weight (default: by vCPUs in its tenant)\n"
	"stats     the VM's recent samples (usage and steal at each tick), as many as\n"
	"          the policy keeps, or those from --since T on\n";

static const char register_help[] =
	"Options:\n"
	"  --tenant T         the tenant the VM belongs to; it must exist and have room\n"
	"                     for the VM's vCPUs in its quota\n"
	"  --pid PID          the VMM process (QEMU, Firecracker, cloud-hypervisor),\n"
	"                     1..4194304; its vCPU threads are found by name\n"
	"  --memory SIZE      the VM's memory limit; K, M, G, T suffixes are powers of 1024\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char admit_help[] =
	"Asks vcpud's admission control whether the VM fits: the tenant's vCPU and\n"
	"memory quota, then room on the host. Shared VMs go to the shared pool, whose\n"
	"vCPUs on each NUMA node may be the policy's overcommit ratio times its pCPUs;\n"
	"dedicated VMs get one pCPU of the dedicated pool per vCPU. A VM stays on one\n"
	"node when one can hold it. Prints the placement and the CPUs the VM is\n"
	"pinned to; a refusal (exit 4) says which limit and by how much.\n"
	"The same request again (a retry) gets the same answer; another request for\n"
	"an admitted name is refused, naming what differs.\n"
	"`vcpuctl vm release NAME` frees the reservation.\n"
	"\n"
	"Options:\n"
	"  --tenant T         the tenant whose quota the VM counts against\n"
	"  --vcpus N          the VM's vCPUs, 1..4096\n"
	"  --memory SIZE      the VM's memory; K, M, G, T suffixes are powers of 1024\n"
	"  --cpu-policy P     shared (default): overcommitted shared pool;\n"
	"                     dedicated: a pCPU of its own for each vCPU\n"
	"  --thread-policy P  dedicated VMs only, how vCPUs use SMT siblings:\n"
	"                     prefer (default): siblings together, packed;\n"
	"                     isolate: one vCPU per core, its siblings left idle;\n"
	"                     require: whole cores (N a multiple of the SMT width)\n"
	"  --dry-run          only say whether and where it would go; reserve nothing\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char plain_help[] =
	"Options:\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char stats_help[] =
	"Every sample vcpud keeps of the VM (the policy sets how many), oldest\n"
	"first: TIME (UTC), USAGE% (of one pCPU, summed over the vCPUs) and STEAL%\n"
	"(mean over the vCPUs); \"-\" for a tick without a valid figure.\n"
	"\n"
	"Options:\n"
	"  --since T          only samples from T on: a duration back from now (90s,\n"
	"                     10m, 2h, 1d), unix seconds or a UTC time\n"
	"                     (2026-11-27T22:00:00Z)\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char vm_names_help[] =
	"VM and tenant names are 1 to 64 of A-Z a-z 0-9 _ . - (not '.' or '..').\n";

static char *vm_path(const char *name)
{
	return xasprintf("/v1/vms/%s", name);
}

/* --- renderers -------------------------------------------------------- */

static char *pid_str(pid_t pid)
{
	return pid > 0 ? xasprintf("%d", (int)pid) : xstrdup("-");
}

static char *memory_str(const struct vm *v, const char *none)
{
	return v->memory_set ? format_size(v->memory_bytes) : xstrdup(none);
}

/* `vm list` columns: the cell of one VM, as a new string. */
struct vm_column {
	const char *header;
	char *(*cell)(const struct vm *v);
};

static char *col_name(const struct vm *v) { return xstrdup(v->name); }
/* "-": found by discovery with no tenant, left alone (unmanaged) */
static char *col_tenant(const struct vm *v) { return xstrdup(v->tenant[0] ? v->tenant : "-"); }
static char *col_uuid(const struct vm *v) { return xstrdup(v->uuid[0] ? v->uuid : "-"); }
static char *col_pid(const struct vm *v) { return pid_str(v->pid); }
static char *col_state(const struct vm *v) { return xstrdup(vm_state_to_string(v->state)); }
static char *col_source(const struct vm *v) { return xstrdup(vm_source_to_string(v->source)); }
static char *col_vcpus(const struct vm *v) { return xasprintf("%u", v->vcpus); }
static char *col_memory(const struct vm *v) { return memory_str(v, "-"); }

static const struct vm_column list_columns[] = {
	{ "NAME", col_name },
	{ "TENANT", col_tenant },
	{ "PID", col_pid },
	{ "STATE", col_state },
	{ "SOURCE", col_source },
	{ "VCPUS", col_vcpus },
	{ "MEMORY", col_memory },
	{ "UUID", col_uuid },
};

void cli_vm_print_table(FILE *f, const struct vm *vms, size_t n)
{
	if (n == 0) {
		fputs("no VMs\n", f);
		return;
	}
	const char *headers[ARRAY_SIZE(list_columns)];
	for (size_t c = 0; c < ARRAY_SIZE(list_columns); c++)
		headers[c] = list_columns[c].header;
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < n; i++) {
		table_row(t);
		for (size_t c = 0; c < ARRAY_SIZE(list_columns); c++) {
			_cleanup_free_ char *s = list_columns[c].cell(&vms[i]);
			table_cell(t, "%s", s);
		}
	}
	table_print(t, f);
}

void cli_vm_print_threads(FILE *f, const struct vm *v, const char *const *cgroups)
{
	static const char *const headers[] = { "INDEX", "TID", "CGROUP" };
	if (v->n_threads == 0) {
		fputs("no vCPU threads\n", f);
		return;
	}
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < v->n_threads; i++) {
		_cleanup_free_ char *tid = pid_str(v->threads[i].tid);
		const char *cg = cgroups && cgroups[i] ? cgroups[i] : "-";
		table_row(t);
		table_cell(t, "%u", v->threads[i].index);
		table_cell(t, "%s", tid);
		table_cell(t, "%s", cg);
	}
	table_print(t, f);
}

void cli_vm_print(FILE *f, const struct vm *v, const char *const *cgroups, const json_t *reply)
{
	_cleanup_free_ char *pid = pid_str(v->pid);
	_cleanup_free_ char *mem = memory_str(v, "none");
	_cleanup_free_ char *created = output_time(v->created_at);
	_cleanup_free_ char *updated = output_time(v->updated_at);
	fprintf(f, "name:     %s\n", v->name);
	fprintf(f, "tenant:   %s\n", v->tenant);
	fprintf(f, "pid:      %s\n", pid);
	fprintf(f, "state:    %s\n", vm_state_to_string(v->state));
	fprintf(f, "source:   %s\n", vm_source_to_string(v->source));
	fprintf(f, "uuid:     %s\n", v->uuid[0] ? v->uuid : "-");
	fprintf(f, "vcpus:    %u\n", v->vcpus);
	fprintf(f, "memory:   %s\n", mem);
	if (v->weight)
		fprintf(f, "weight:   %u (set)\n", v->weight);
	else
		fputs("weight:   by vCPUs\n", f);
	fprintf(f, "created:  %s\n", created);
	fprintf(f, "updated:  %s\n", updated);
	if (reply)
		cli_vm_print_admission(f, reply);
	fputc('\n', f);
	cli_vm_print_threads(f, v, cgroups);
}

int cli_vm_from_reply(const json_t *reply, struct vm *out, const char ***cgroups,
		      struct error **err)
{
	/* api_vm_from_reply() reads what it can; refuse the shapes it would
	 * silently read as "no threads" */
	const json_t *arr = json_object_get(reply, "vcpu_threads");
	if (arr && !json_is_array(arr))
		return error_set(err, EPROTO, "\"vcpu_threads\" of the VM is not an array");
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (!json_is_object(json_array_get(arr, i)))
			return error_set(err, EPROTO, "vCPU thread %zu of the VM is not an object",
					 i + 1);
	if (api_vm_from_reply(reply, out, err) < 0)
		return -1;
	/* a source from a newer vcpud: api_vm_from_reply() leaves it at 0,
	 * "registered"; out of range it prints as "unknown" (state already
	 * does, VM_STATE_UNKNOWN being 0) */
	if (vm_source_from_string(json_string_value(json_object_get(reply, "source")),
				  &out->source, NULL) < 0)
		out->source = VM_SOURCE_LAST;
	if (!cgroups)
		return 0;
	*cgroups = NULL;
	if (out->n_threads == 0)
		return 0;
	const char **cg = xcalloc(out->n_threads, sizeof(*cg));
	for (size_t i = 0; i < out->n_threads; i++)
		cg[i] = json_string_value(json_object_get(json_array_get(arr, i), "cgroup"));
	*cgroups = cg;
	return 0;
}

int cli_vm_list_from_reply(const json_t *reply, struct vm **out, size_t *n,
			   struct error **err)
{
	const json_t *arr = json_object_get(reply, "vms");
	if (!json_is_array(arr))
		return error_set(err, EPROTO, "no \"vms\" array in the reply");
	size_t count = json_array_size(arr);
	struct vm *vms = xcalloc(count ? count : 1, sizeof(*vms));
	for (size_t i = 0; i < count; i++)
		if (cli_vm_from_reply(json_array_get(arr, i), &vms[i], NULL, err) < 0) {
			vm_list_free(vms, i);
			return error_wrap(err, "VM %zu", i + 1);
		}
	*out = vms;
	*n = count;
	return 0;
}

static int render_list(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		       struct error **err)
{
	(void)req;
	struct vm *vms = NULL;
	size_t n = 0;
	if (cli_vm_list_from_reply(reply, &vms, &n, err) < 0)
		return -1;
	cli_vm_print_table(ctx->out, vms, n);
	vm_list_free(vms, n);
	/* quarantined VMs: why, under the table */
	size_t i;
	const json_t *o;
	bool first = true;
	json_array_foreach(json_object_get(reply, "vms"), i, o) {
		const json_t *f = json_object_get(o, "fault");
		if (!json_is_object(f))
			continue;
		if (first)
			fputs("\nquarantined (not reconciled until fixed):\n", ctx->out);
		first = false;
		fprintf(ctx->out, "  %s (%s): %s\n",
			json_string_value(json_object_get(o, "name")) ?: "?",
			json_string_value(json_object_get(f, "kind")) ?: "?",
			json_string_value(json_object_get(f, "reason")) ?: "?");
	}
	return 0;
}

void cli_vm_print_admission(FILE *f, const json_t *reply)
{
	const json_t *pl = json_object_get(reply, "placement");
	if (!pl) {
		/* a vcpud from before the lifecycle: it does not say */
	} else if (json_is_object(pl)) {
		const char *pcpus = json_string_value(json_object_get(pl, "pcpus"));
		_cleanup_free_ char *nodes = xstrdup("");
		size_t i;
		const json_t *n;
		json_array_foreach(json_object_get(pl, "nodes"), i, n) {
			char *next = xasprintf("%s%s%lld", nodes, i ? "," : "",
					       (long long)json_integer_value(n));
			free(nodes);
			nodes = next;
		}
		fprintf(f, "placement: %s pool (%s), node%s %s, CPUs %s, memory nodes %s%s%s\n",
			json_string_value(json_object_get(pl, "pool")) ?: "?",
			json_string_value(json_object_get(pl, "thread_policy")) ?: "?",
			strchr(nodes, ',') ? "s" : "", nodes[0] ? nodes : "-",
			json_string_value(json_object_get(pl, "cpus")) ?: "-",
			json_string_value(json_object_get(pl, "mems")) ?: "-",
			pcpus && pcpus[0] ? ", pCPUs " : "", pcpus && pcpus[0] ? pcpus : "");
	} else {
		fputs("placement: none (not admitted: holds no capacity)\n", f);
	}
	const json_t *fl = json_object_get(reply, "fault");
	if (json_is_object(fl)) {
		_cleanup_free_ char *since =
			output_time(json_integer_value(json_object_get(fl, "since_ms")) / 1000);
		fprintf(f, "fault:     quarantined (%s) since %s: %s\n",
			json_string_value(json_object_get(fl, "kind")) ?: "?", since,
			json_string_value(json_object_get(fl, "reason")) ?: "?");
	}
}

static int64_t now_ms(void)
{
	return now_real_ns() / 1000000;
}

static char *stats_path(const char *name, bool since_set, int64_t since_ms)
{
	if (!since_set)
		return xasprintf("/v1/vms/%s/stats", name);
	return xasprintf("/v1/vms/%s/stats?since_ms=%" PRId64, name, since_ms);
}

/* The tail of `vm show`: the last CLI_HISTORY_WINDOW_MS of samples. It is
 * extra to what was asked: a failure is a warning on stderr and leaves the
 * exit code alone (a vcpud without the endpoint, a VM gone meanwhile: 404,
 * "no samples yet"). */
static void show_history(struct cli_ctx *ctx, const char *name, bool ascii)
{
	int64_t since = now_ms() - CLI_HISTORY_WINDOW_MS;
	_cleanup_free_ char *path = stats_path(name, true, since > 0 ? since : 0);
	_cleanup_free_ char *errs = NULL, *text = NULL;
	_cleanup_error_ struct error *err = NULL;
	size_t elen, tlen;

	/* cli_get_json()'s complaint, caught to be given context */
	struct cli_ctx sub = *ctx;
	sub.err = open_memstream(&errs, &elen);
	if (!sub.err)
		abort();
	json_t *reply = NULL;
	int rc = cli_get_json(&sub, path, CLI_GET_QUIET_404, &reply);
	fclose(sub.err);

	FILE *m = open_memstream(&text, &tlen);
	if (!m)
		abort();
	if (rc == CLI_EXIT_NOT_FOUND)
		fputs("no samples yet\n", m);
	else if (rc == CLI_EXIT_OK &&
		 (cli_sparklines_print(m, reply, CLI_SPARK_WIDTH, ascii, &err) < 0 ||
		  (json_array_size(json_object_get(reply, "samples")) && fputc('\n', m) == EOF) ||
		  cli_history_print(m, reply, CLI_HISTORY_LAST, &err) < 0))
		rc = -1;
	fclose(m);
	if (reply)
		json_decref(reply);

	if (rc == CLI_EXIT_OK || rc == CLI_EXIT_NOT_FOUND) {
		fprintf(ctx->out, "\nusage, last %d minutes (UTC):\n%s",
			CLI_HISTORY_WINDOW_MS / 60000, text);
		return;
	}
	if (err) {
		cli_errorf(ctx, "cannot show the recent usage of VM %s: unexpected reply from "
			   "vcpud to GET %s: %s", name, path, err->msg);
		return;
	}
	/* "vcpuctl: MESSAGE\n" -> MESSAGE */
	const char *msg = errs && str_has_prefix(errs, "vcpuctl: ") ? errs + 9 : errs ? errs : "";
	cli_errorf(ctx, "cannot show the recent usage of VM %s: %.*s", name,
		   (int)strcspn(msg, "\n"), msg);
}

static int render_show(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		       struct error **err)
{
	struct vm v;
	_cleanup_free_ const char **cgroups = NULL;
	if (cli_vm_from_reply(reply, &v, &cgroups, err) < 0)
		return -1;
	cli_vm_print(ctx->out, &v, cgroups, reply);
	vm_clear(&v);
	show_history(ctx, req->subject, req->ascii);
	return 0;
}

static int render_stats(struct cli_ctx *ctx, const struct cli_request *req,
			const json_t *reply, struct error **err)
{
	(void)req;
	return cli_samples_print(ctx->out, reply, err);
}

static int render_registered(struct cli_ctx *ctx, const struct cli_request *req,
			     const json_t *reply, struct error **err)
{
	(void)req;
	struct vm v;
	_cleanup_free_ const char **cgroups = NULL;
	if (cli_vm_from_reply(reply, &v, &cgroups, err) < 0)
		return -1;
	fprintf(ctx->out, "vm %s registered: tenant %s, pid %d, %u vCPU%s\n", v.name, v.tenant,
		(int)v.pid, v.vcpus, v.vcpus == 1 ? "" : "s");
	cli_vm_print_threads(ctx->out, &v, cgroups);
	vm_clear(&v);
	return 0;
}

static int render_released(struct cli_ctx *ctx, const struct cli_request *req,
			   const json_t *reply, struct error **err)
{
	(void)reply;
	(void)err;
	fprintf(ctx->out, "vm %s released\n", req->subject);
	return 0;
}

/* --- admission replies ------------------------------------------------ */

/* The string `key` of an admission reply, or NULL with *err (EPROTO). */
static const char *admit_reply_str(const json_t *reply, const char *key, struct error **err)
{
	const char *s = json_string_value(json_object_get(reply, key));
	if (!s)
		error_set(err, EPROTO, "no \"%s\" string in the admission reply", key);
	return s;
}

/* "node 0 (4 vCPUs)", or for a VM spanning nodes "nodes 0-1 (0: 6, 1: 4
 * vCPUs)", from the reply's "shares" ([{"node","vcpus"}...], ascending). */
static char *admit_reply_nodes(const json_t *reply, struct error **err)
{
	const json_t *shares = json_object_get(reply, "shares");
	size_t n = json_array_size(shares);
	if (!json_is_array(shares) || n == 0) {
		error_set(err, EPROTO, "no \"shares\" of the VM on NUMA nodes in the admission "
			  "reply");
		return NULL;
	}
	struct cpuset nodes;
	cpuset_zero(&nodes);
	_cleanup_free_ char *split = NULL;
	json_int_t node = 0, vcpus = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *sh = json_array_get(shares, i);
		const json_t *jn = json_object_get(sh, "node"), *jv = json_object_get(sh, "vcpus");
		node = json_integer_value(jn);
		vcpus = json_integer_value(jv);
		if (!json_is_integer(jn) || !json_is_integer(jv) || node < 0 ||
		    node >= CPULIST_MAX_CPUS || vcpus < 1) {
			error_set(err, EPROTO, "share %zu of the VM is not {\"node\": N >= 0, "
				  "\"vcpus\": N >= 1}", i + 1);
			return NULL;
		}
		cpuset_set(&nodes, (unsigned)node);
		char *more = xasprintf("%s%s%lld: %lld", split ? split : "", i ? ", " : "",
				       (long long)node, (long long)vcpus);
		free(split);
		split = more;
	}
	if (n == 1)
		return xasprintf("node %lld (%lld vCPU%s)", (long long)node, (long long)vcpus,
				 vcpus == 1 ? "" : "s");
	_cleanup_free_ char *list = cpulist_format(&nodes);
	return xasprintf("nodes %s (%s vCPUs)", list, split);
}

/* `vm admit`: "vm web admitted: shared pool, node 0 (4 vCPUs), pinned to
 * CPUs 2-7" or "vm db admitted: dedicated pool, node 1 (2 vCPUs), dedicated
 * pCPUs 12-13 (isolate)", plus " (dry run: nothing reserved)". */
static int render_admitted(struct cli_ctx *ctx, const struct cli_request *req,
			   const json_t *reply, struct error **err)
{
	(void)req;
	if (!json_is_object(reply))
		return error_set(err, EPROTO, "the admission reply is not an object");
	const char *name = admit_reply_str(reply, "name", err);
	const char *pool = name ? admit_reply_str(reply, "pool", err) : NULL;
	if (!pool)
		return -1;
	bool dedicated = strcmp(pool, "dedicated") == 0;
	if (!dedicated && strcmp(pool, "shared") != 0)
		return error_set(err, EPROTO, "unknown pool '%.64s' in the admission reply", pool);
	const json_t *dry = json_object_get(reply, "dry_run");
	if (dry && !json_is_boolean(dry))
		return error_set(err, EPROTO, "\"dry_run\" of the admission reply is not a "
				 "boolean");
	_cleanup_free_ char *nodes = admit_reply_nodes(reply, err);
	if (!nodes)
		return -1;
	_cleanup_free_ char *pin = NULL;
	if (dedicated) {
		const char *pcpus = admit_reply_str(reply, "pcpus", err);
		const char *thread = pcpus ? admit_reply_str(reply, "thread_policy", err) : NULL;
		if (!thread)
			return -1;
		pin = xasprintf("dedicated pCPUs %s (%s)", pcpus, thread);
	} else {
		const char *cpus = admit_reply_str(reply, "cpus", err);
		if (!cpus)
			return -1;
		pin = xasprintf("pinned to CPUs %s", cpus);
	}
	fprintf(ctx->out, "vm %s admitted: %s pool, %s, %s%s\n", name, pool, nodes, pin,
		json_is_true(dry) ? " (dry run: nothing reserved)" : "");
	return 0;
}

/* --- builders --------------------------------------------------------- */

/* A VM's --memory: a size within the range a tenant's memory may have. */
static int memory_parse(const char *s, int64_t *bytes, struct error **err)
{
	if (parse_size(s, bytes, err) < 0)
		return error_wrap(err, "--memory");
	if (*bytes < TENANT_MEMORY_MIN || *bytes > TENANT_MEMORY_MAX) {
		_cleanup_free_ char *lo = format_size(TENANT_MEMORY_MIN);
		_cleanup_free_ char *hi = format_size(TENANT_MEMORY_MAX);
		return error_set(err, ERANGE, "--memory: %s is out of range (%s..%s)", s, lo, hi);
	}
	return 0;
}

static int build_register(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	const char *tenant = cli_arg(a, OPT_TENANT), *pid_s = cli_arg(a, OPT_PID);
	const char *memory = cli_arg(a, OPT_MEMORY);
	if (!tenant)
		return error_set(err, EINVAL, "missing --tenant (the tenant the VM belongs to)");
	if (!pid_s)
		return error_set(err, EINVAL, "missing --pid (the VM's hypervisor process)");
	if (name_check("tenant name", tenant, err) < 0)
		return error_wrap(err, "--tenant");
	uint64_t pid;
	if (parse_u64(pid_s, 1, CLI_VM_PID_MAX, &pid, err) < 0)
		return error_wrap(err, "--pid");
	json_t *body = json_pack("{s:s,s:s,s:I}", "name", a->name, "tenant", tenant, "pid",
				 (json_int_t)pid);
	if (memory) {
		int64_t bytes;
		if (memory_parse(memory, &bytes, err) < 0) {
			json_decref(body);
			return -1;
		}
		json_object_set_new(body, "memory_bytes", json_integer(bytes));
	}
	/* the body as the server will parse it: what it refuses, we refuse */
	struct vm v;
	if (api_vm_register_from_json(body, &v, err) < 0) {
		json_decref(body);
		return -1;
	}
	vm_clear(&v);
	out->method = "POST";
	out->path = xstrdup("/v1/vms");
	out->body = body;
	out->render = render_registered;
	return 0;
}

static int build_admit(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	const char *tenant = cli_arg(a, OPT_TENANT), *vcpus_s = cli_arg(a, OPT_VCPUS);
	const char *memory = cli_arg(a, OPT_MEMORY), *cpu_s = cli_arg(a, OPT_CPU_POLICY);
	const char *thread_s = cli_arg(a, OPT_THREAD_POLICY);
	if (!tenant)
		return error_set(err, EINVAL, "missing --tenant (the tenant the VM belongs to)");
	if (!vcpus_s)
		return error_set(err, EINVAL, "missing --vcpus (the VM's vCPUs)");
	if (name_check("tenant name", tenant, err) < 0)
		return error_wrap(err, "--tenant");
	uint64_t vcpus;
	if (parse_u64(vcpus_s, 1, VM_VCPUS_MAX, &vcpus, err) < 0)
		return error_wrap(err, "--vcpus");
	int64_t bytes = 0;
	if (memory && memory_parse(memory, &bytes, err) < 0)
		return -1;
	enum admit_cpu_policy cpu = ADMIT_CPU_SHARED;
	enum admit_thread_policy thread = ADMIT_THREAD_PREFER;
	if (cpu_s && admit_cpu_policy_from_string(cpu_s, &cpu, err) < 0)
		return error_wrap(err, "--cpu-policy");
	if (thread_s && admit_thread_policy_from_string(thread_s, &thread, err) < 0)
		return error_wrap(err, "--thread-policy");
	/* the thread policy is how dedicated vCPUs take SMT siblings; shared
	 * vCPUs float over the pool (admit_vm() refuses the same) */
	if (cpu == ADMIT_CPU_SHARED && thread != ADMIT_THREAD_PREFER)
		return error_set(err, EINVAL, "--thread-policy %s needs --cpu-policy dedicated",
				 admit_thread_policy_name(thread));
	bool dry_run = cli_arg_set(a, OPT_DRY_RUN);

	json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "name", a->name, "tenant", tenant,
				 "vcpus", (json_int_t)vcpus, "cpu_policy",
				 admit_cpu_policy_name(cpu), "thread_policy",
				 admit_thread_policy_name(thread), "dry_run", dry_run);
	if (memory)
		json_object_set_new(body, "memory_bytes", json_integer(bytes));
	out->method = "POST";
	out->path = xstrdup("/v1/vms/admit");
	out->body = body;
	out->render = render_admitted;
	return 0;
}

static int build_list(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)a;
	(void)err;
	out->method = "GET";
	out->path = xstrdup("/v1/vms");
	out->render = render_list;
	return 0;
}

static int build_show(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)err;
	out->ascii = cli_arg_set(a, OPT_ASCII);
	out->method = "GET";
	out->path = vm_path(a->name);
	out->render = render_show;
	return 0;
}

static int build_stats(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	const char *since = cli_arg(a, OPT_SINCE);
	int64_t since_ms = 0;
	if (since && cli_since_parse(since, now_ms(), &since_ms, err) < 0)
		return error_wrap(err, "--since");
	out->method = "GET";
	out->path = stats_path(a->name, since != NULL, since_ms);
	out->render = render_stats;
	return 0;
}

static int build_release(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)err;
	out->method = "DELETE";
	out->path = vm_path(a->name);
	if (cli_arg_set(a, OPT_MISSING_OK)) {
		char *p = xasprintf("%s?missing_ok=1", out->path);
		free(out->path);
		out->path = p;
	}
	out->render = render_released;
	return 0;
}

static int build_set(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	const char *w = cli_arg(a, OPT_WEIGHT);
	if (!w)
		return error_set(err, EINVAL, "nothing to change: give --weight W|auto");
	uint64_t v = 0;
	if (strcmp(w, "auto") != 0 &&
	    parse_u64(w, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX, &v, err) < 0)
		return error_wrap(err, "--weight (or auto)");
	out->method = "PATCH";
	out->path = vm_path(a->name);
	out->body = json_pack("{s:o}", "weight", v ? json_integer((json_int_t)v) : json_null());
	out->render = render_show;
	return 0;
}

static const struct cli_sub subs[] = {
	{ "register", register_usage, register_help, register_opts, true, build_register },
	{ "admit", admit_usage, admit_help, admit_opts, true, build_admit },
	{ "list", "usage: vcpuctl vm list", plain_help, plain_opts, false, build_list },
	{ "show", "usage: vcpuctl vm show NAME [--ascii]", show_help, show_opts, true, build_show },
	{ "release", release_usage, release_help, release_opts, true, build_release },
	{ "set", set_usage, set_help, set_opts, true, build_set },
	{ "stats", stats_usage, stats_help, stats_opts, true, build_stats },
};

static const struct cli_group group = {
	.name = "vm",
	.noun = "VM",
	.usage = group_usage,
	.help = group_help,
	.names_help = vm_names_help,
	.names_in_help_sub = true,
	.subs = subs,
	.n_subs = ARRAY_SIZE(subs),
};

int cli_vm_build(int argc, char **argv, struct cli_request *out, struct error **err)
{
	return cli_group_build(&group, argc, argv, out, err);
}

/* `vcpuctl vm ...` */
static int vm_run(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_group_run(ctx, &group, argc, argv);
}

const struct cli_command cli_cmd_vm = {
	.name = "vm",
	.summary = "register, list, show and release VMs and their vCPU threads",
	.run = vm_run,
};
