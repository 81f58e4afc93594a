/* tenant.c - `vcpuctl tenant create|list|show|set|delete`.
 *
 * argv is turned into a struct cli_request by cli_tenant_build() (pure:
 * client-side validation, JSON body through the API's shared wire
 * functions), then cli_request_run() talks to vcpud and calls the renderers
 * below for human output. Each subcommand is one row of `subs`; parsing,
 * NAME, help and usage errors are cli.c's group machinery (as for vm.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"
#include "cli/tenant.h"
#include "vcpud/api.h"
#include "vcpud/util.h"

enum {
	OPT_VCPUS = CLI_OPT_FIRST,
	OPT_WEIGHT,
	OPT_CPU_MAX,
	OPT_MEMORY,
	OPT_CLASS,
};

static const struct option quota_opts[] = {
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "weight", required_argument, NULL, OPT_WEIGHT },
	{ "cpu-max", required_argument, NULL, OPT_CPU_MAX },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "class", required_argument, NULL, OPT_CLASS },
	CLI_OPTS_COMMON
};

static const struct option plain_opts[] = { CLI_OPTS_COMMON };

static const char group_usage[] =
	"usage: vcpuctl tenant create NAME --vcpus N [--weight W] [--cpu-max CORES]\n"
	"                             [--memory SIZE] [--class CLASS]\n"
	"       vcpuctl tenant list\n"
	"       vcpuctl tenant show NAME\n"
	"       vcpuctl tenant set NAME [--vcpus N] [--weight W] [--cpu-max CORES|none]\n"
	"                          [--memory SIZE|none] [--class CLASS]\n"
	"       vcpuctl tenant delete NAME";

#define QUOTA_HELP \
	"Options:\n" \
	"  --vcpus N          vCPU quota: the vCPUs all of the tenant's VMs may have (0..65536)\n" \
	"  --weight W         CPU weight against other tenants, 1..10000 (default 100)\n" \
	"  --cpu-max CORES    cap on the tenant's total CPU use, in cores (0.01..4096)\n" \
	"  --memory SIZE      memory quota; K, M, G, T suffixes are powers of 1024\n" \
	"  --class CLASS      guaranteed, burstable (default) or best-effort: how the\n" \
	"                     noisy-neighbour throttler may treat the tenant's VMs\n" \
	"  --json             print the API's JSON\n" \
	"  -h, --help         this help\n"

static const char create_help[] = QUOTA_HELP;

static const char set_help[] =
	QUOTA_HELP "\n'none' as --cpu-max or --memory removes that limit.\n";

static const char plain_help[] =
	"Options:\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char tenant_names_help[] =
	"Tenant names are 1 to 64 of A-Z a-z 0-9 _ . - (not '.' or '..').\n";

/* --- value parsing ---------------------------------------------------- */

/* "none" for a limit: no limit, which only `tenant set` can ask for
 * (create just leaves the option out). Returns 1 for "none" (*set false),
 * 0 for any other value, -1 with *err (EINVAL) when none is not allowed. */
static int limit_none(const char *s, bool allow_none, const char *opt, const char *without,
		      bool *set, struct error **err)
{
	if (strcmp(s, "none") != 0)
		return 0;
	if (!allow_none)
		return error_set(err, EINVAL, "%s none only applies to 'tenant set'; "
				 "leave out %s for %s", opt, opt, without);
	*set = false;
	return 1;
}

int cli_tenant_parse_memory(const char *s, bool allow_none, bool *set, int64_t *bytes,
			    struct error **err)
{
	int none = limit_none(s, allow_none, "--memory", "no memory quota", set, err);
	if (none < 0)
		return -1;
	if (none) {
		*bytes = 0;
		return 0;
	}
	int64_t v;
	if (parse_size(s, &v, err) < 0)
		return error_wrap(err, "--memory");
	if (v < TENANT_MEMORY_MIN || v > TENANT_MEMORY_MAX) {
		_cleanup_free_ char *lo = format_size(TENANT_MEMORY_MIN);
		_cleanup_free_ char *hi = format_size(TENANT_MEMORY_MAX);
		return error_set(err, ERANGE, "--memory: %s is out of range (%s..%s)", s, lo, hi);
	}
	*set = true;
	*bytes = v;
	return 0;
}

int cli_tenant_parse_cpu_max(const char *s, bool allow_none, bool *set, double *cores,
			     struct error **err)
{
	int none = limit_none(s, allow_none, "--cpu-max", "no CPU cap", set, err);
	if (none < 0)
		return -1;
	if (none) {
		*cores = 0;
		return 0;
	}
	if (parse_double(s, TENANT_CPU_MAX_CORES_MIN, TENANT_CPU_MAX_CORES_MAX, cores, err) < 0)
		return error_wrap(err, "--cpu-max");
	*set = true;
	return 0;
}

/* The options shared by create and set, into a patch. */
static int quota_patch(const struct cli_args *a, bool allow_none, struct tenant_patch *p,
		       struct error **err)
{
	const char *vcpus = cli_arg(a, OPT_VCPUS), *weight = cli_arg(a, OPT_WEIGHT);
	const char *cpu_max = cli_arg(a, OPT_CPU_MAX), *memory = cli_arg(a, OPT_MEMORY);
	const char *class_ = cli_arg(a, OPT_CLASS);
	memset(p, 0, sizeof(*p));
	uint64_t v;
	if (vcpus) {
		if (parse_u64(vcpus, 0, TENANT_VCPUS_MAX, &v, err) < 0)
			return error_wrap(err, "--vcpus");
		p->vcpus = (uint32_t)v;
		p->set_vcpus = true;
	}
	if (weight) {
		if (parse_u64(weight, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX, &v, err) < 0)
			return error_wrap(err, "--weight");
		p->weight = (uint32_t)v;
		p->set_weight = true;
	}
	if (cpu_max) {
		if (cli_tenant_parse_cpu_max(cpu_max, allow_none, &p->cpu_max_set,
					     &p->cpu_max_cores, err) < 0)
			return -1;
		p->set_cpu_max = true;
	}
	if (memory) {
		if (cli_tenant_parse_memory(memory, allow_none, &p->memory_set, &p->memory_bytes,
					    err) < 0)
			return -1;
		p->set_memory = true;
	}
	if (class_) {
		if (tenant_class_from_string(class_, &p->class_, err) < 0)
			return error_wrap(err, "--class");
		p->set_class = true;
	}
	return 0;
}

static char *tenant_path(const char *name)
{
	return xasprintf("/v1/tenants/%s", name);
}

/* --- renderers -------------------------------------------------------- */

static char *cpu_max_str(const struct tenant *t, const char *none)
{
	return t->cpu_max_set ? xasprintf("%g", t->cpu_max_cores) : xstrdup(none);
}

static char *memory_str(const struct tenant *t, const char *none)
{
	return t->memory_set ? format_size(t->memory_bytes) : xstrdup(none);
}

void cli_tenant_print(FILE *f, const struct tenant *t)
{
	_cleanup_free_ char *cpu = cpu_max_str(t, "none");
	_cleanup_free_ char *mem = memory_str(t, "none");
	_cleanup_free_ char *created = output_time(t->created_at);
	_cleanup_free_ char *updated = output_time(t->updated_at);
	fprintf(f, "name:        %s\n", t->name);
	fprintf(f, "class:       %s\n", tenant_class_to_string(t->class_));
	fprintf(f, "vcpus:       %u\n", t->vcpus);
	fprintf(f, "vcpus used:  %u\n", t->vcpus_used);
	fprintf(f, "vms:         %u\n", t->vm_count);
	fprintf(f, "weight:      %u\n", t->weight);
	fprintf(f, "cpu max:     %s%s\n", cpu, t->cpu_max_set ? " cores" : "");
	fprintf(f, "memory:      %s\n", mem);
	fprintf(f, "created:     %s\n", created);
	fprintf(f, "updated:     %s\n", updated);
}

void cli_tenant_print_table(FILE *f, const struct tenant *ts, size_t n)
{
	static const char *const headers[] = {
		"NAME", "VCPUS", "USED", "WEIGHT", "CPU-MAX", "MEMORY", "CLASS", "VMS",
	};
	if (n == 0) {
		fputs("no tenants\n", f);
		return;
	}
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *cpu = cpu_max_str(&ts[i], "-");
		_cleanup_free_ char *mem = memory_str(&ts[i], "-");
		table_row(t);
		table_cell(t, "%s", ts[i].name);
		table_cell(t, "%u", ts[i].vcpus);
		table_cell(t, "%u", ts[i].vcpus_used);
		table_cell(t, "%u", ts[i].weight);
		table_cell(t, "%s", cpu);
		table_cell(t, "%s", mem);
		table_cell(t, "%s", tenant_class_to_string(ts[i].class_));
		table_cell(t, "%u", ts[i].vm_count);
	}
	table_print(t, f);
}

int cli_tenant_list_from_reply(const json_t *reply, struct tenant **out, size_t *n,
			       struct error **err)
{
	const json_t *arr = json_object_get(reply, "tenants");
	if (!json_is_array(arr))
		return error_set(err, EPROTO, "no \"tenants\" array in the reply");
	size_t count = json_array_size(arr);
	_cleanup_free_ struct tenant *ts = xcalloc(count, sizeof(*ts));
	for (size_t i = 0; i < count; i++)
		if (api_tenant_from_reply(json_array_get(arr, i), &ts[i], err) < 0)
			return error_wrap(err, "tenant %zu", i + 1);
	*out = steal_ptr(&ts);
	*n = count;
	return 0;
}

static int render_list(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		       struct error **err)
{
	(void)req;
	_cleanup_free_ struct tenant *ts = NULL;
	size_t n = 0;
	if (cli_tenant_list_from_reply(reply, &ts, &n, err) < 0)
		return -1;
	cli_tenant_print_table(ctx->out, ts, n);
	return 0;
}

static int render_show(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		       struct error **err)
{
	(void)req;
	struct tenant t;
	if (api_tenant_from_reply(reply, &t, err) < 0)
		return -1;
	cli_tenant_print(ctx->out, &t);
	/* vcpud --fleet: the quota is the fleet's, and so is its use */
	const json_t *fl = json_object_get(reply, "fleet");
	if (json_is_object(fl))
		fprintf(ctx->out, "fleet used:  %lld vCPUs of %u, on all hosts\n",
			(long long)json_integer_value(json_object_get(fl, "vcpus_used")), t.vcpus);
	else if (json_is_null(fl))
		fprintf(ctx->out, "fleet used:  not read from etcd yet\n");
	return 0;
}

static int render_done(struct cli_ctx *ctx, const struct cli_request *req, const char *verb)
{
	fprintf(ctx->out, "tenant %s %s\n", req->subject, verb);
	return 0;
}

static int render_created(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
			  struct error **err)
{
	struct tenant t;
	if (api_tenant_from_reply(reply, &t, err) < 0)
		return -1;
	return render_done(ctx, req, "created");
}

static int render_updated(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
			  struct error **err)
{
	struct tenant t;
	if (api_tenant_from_reply(reply, &t, err) < 0)
		return -1;
	return render_done(ctx, req, "updated");
}

static int render_deleted(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
			  struct error **err)
{
	(void)reply;
	(void)err;
	return render_done(ctx, req, "deleted");
}

/* --- builders --------------------------------------------------------- */

static int build_create(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	if (!cli_arg_set(a, OPT_VCPUS))
		return error_set(err, EINVAL, "missing --vcpus (the tenant's vCPU quota)");
	struct tenant_patch p;
	if (quota_patch(a, false, &p, err) < 0)
		return -1;
	/* the whole tenant as the server will see it, defaults included */
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", a->name);
	if (tenant_apply_patch(&t, &p, err) < 0)
		return -1;
	json_t *body = json_object();
	json_object_set_new(body, "name", json_string(a->name));
	json_t *fields = api_tenant_patch_to_json(&p);
	json_object_update(body, fields);
	json_decref(fields);
	out->method = "POST";
	out->path = xstrdup("/v1/tenants");
	out->body = body;
	out->render = render_created;
	return 0;
}

static int build_list(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)a;
	(void)err;
	out->method = "GET";
	out->path = xstrdup("/v1/tenants");
	out->render = render_list;
	return 0;
}

static int build_show(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)err;
	out->method = "GET";
	out->path = tenant_path(a->name);
	out->render = render_show;
	return 0;
}

static int build_set(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	struct tenant_patch p;
	if (quota_patch(a, true, &p, err) < 0)
		return -1;
	if (!p.set_vcpus && !p.set_weight && !p.set_cpu_max && !p.set_memory && !p.set_class)
		return error_set(err, EINVAL, "nothing to change: give at least one of "
				 "--vcpus, --weight, --cpu-max, --memory, --class");
	out->method = "PATCH";
	out->path = tenant_path(a->name);
	out->body = api_tenant_patch_to_json(&p);
	out->render = render_updated;
	return 0;
}

static int build_delete(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)err;
	out->method = "DELETE";
	out->path = tenant_path(a->name);
	out->render = render_deleted;
	return 0;
}

static const struct cli_sub subs[] = {
	{ "create",
	  "usage: vcpuctl tenant create NAME --vcpus N [--weight W] [--cpu-max CORES]\n"
	  "                             [--memory SIZE] [--class CLASS]",
	  create_help, quota_opts, true, build_create },
	{ "list", "usage: vcpuctl tenant list", plain_help, plain_opts, false, build_list },
	{ "show", "usage: vcpuctl tenant show NAME", plain_help, plain_opts, true, build_show },
	{ "set",
	  "usage: vcpuctl tenant set NAME [--vcpus N] [--weight W] [--cpu-max CORES|none]\n"
	  "                          [--memory SIZE|none] [--class CLASS]",
	  set_help, quota_opts, true, build_set },
	{ "delete", "usage: vcpuctl tenant delete NAME", plain_help, plain_opts, true,
	  build_delete },
};

static const struct cli_group group = {
	.name = "tenant",
	.noun = "tenant",
	.usage = group_usage,
	.names_help = tenant_names_help,
	.subs = subs,
	.n_subs = ARRAY_SIZE(subs),
};

int cli_tenant_build(int argc, char **argv, struct cli_request *out, struct error **err)
{
	return cli_group_build(&group, argc, argv, out, err);
}

/* `vcpuctl tenant ...` */
static int tenant_run(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_group_run(ctx, &group, argc, argv);
}

const struct cli_command cli_cmd_tenant = {
	.name = "tenant",
	.summary = "create, list, show, change and delete tenants (quota holders)",
	.run = tenant_run,
};
