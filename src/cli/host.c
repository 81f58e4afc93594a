/* host.c - `vcpuctl host`: what admission control sees (GET /v1/host): the
 * CPU topology, the CPU pools of the policy, the shared pool's overcommit
 * ratio, the room left on each NUMA node and the VMs admitted (`vm admit`).
 * The whole reply is checked and rendered into memory first, so a malformed
 * reply prints nothing but the error; --json prints the API's object. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "vcpud/util.h"

static const char usage[] = "usage: vcpuctl host [--json]";

static const char help_text[] =
	"Shows the host as vcpud's admission control sees it: its CPU topology,\n"
	"the policy's CPU pools (housekeeping, shared, dedicated), the overcommit\n"
	"ratio of the shared pool, then per NUMA node and in total:\n"
	"  SHARED-PCPUS       pCPUs of the shared pool\n"
	"  ADMITTED/CAPACITY  shared vCPUs admitted / ratio x shared pCPUs\n"
	"                     (\"over\": above it, after the ratio was lowered)\n"
	"  DEDICATED          pCPUs of the dedicated pool given to vCPUs / in the\n"
	"                     pool (\"blocked\": idle siblings of isolate VMs)\n"
	"  FREE-CORES         whole free cores: what isolate and require can take\n"
	"and the VMs admitted: NODES is the node of a VM, or node:vCPUs for each\n"
	"node of one that spans nodes; PCPUS its dedicated pCPUs; REGISTERED\n"
	"whether it runs under vcpud's control yet (`vcpuctl vm register`).\n"
	"\n"
	"Options:\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

/* --- reading the reply ------------------------------------------------- */

/* The string `key` of obj (what: "the topology", "VM 2"), or NULL with
 * *err (EPROTO). */
static const char *field_str(const json_t *obj, const char *key, const char *what,
			     struct error **err)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s)
		error_set(err, EPROTO, "no \"%s\" string in %s", key, what);
	return s;
}

/* The integer `key` of obj, >= 0, or -1 with *err (EPROTO). */
static long long field_uint(const json_t *obj, const char *key, const char *what,
			    struct error **err)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return error_set(err, EPROTO, "\"%s\" of %s is not an integer >= 0", key, what);
	return (long long)json_integer_value(v);
}

/* The object `key` of obj, or NULL with *err (EPROTO). */
static const json_t *field_obj(const json_t *obj, const char *key, struct error **err)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_object(v))
		error_set(err, EPROTO, "no \"%s\" object in the reply", key);
	return json_is_object(v) ? v : NULL;
}

/* The array `key` of obj, or NULL with *err (EPROTO). */
static const json_t *field_array(const json_t *obj, const char *key, const char *what,
				 struct error **err)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_array(v))
		error_set(err, EPROTO, "no \"%s\" array in %s", key, what);
	return json_is_array(v) ? v : NULL;
}

/* "2.0", "1.5", "1.25": a ratio with at least one decimal. */
static char *ratio_str(double r)
{
	char *s = xasprintf("%g", r);
	if (strpbrk(s, ".en")) /* a fraction, an exponent, inf or nan */
		return s;
	char *t = xasprintf("%s.0", s);
	free(s);
	return t;
}

/* --- the parts of the output ------------------------------------------- */

/* The lines about the host: topology, its nodes, pools, ratio. */
static int print_host(FILE *f, const json_t *reply, struct error **err)
{
	const json_t *topo = field_obj(reply, "topology", err);
	if (!topo)
		return -1;
	const char *desc = field_str(topo, "description", "the topology", err);
	const char *online = desc ? field_str(topo, "online", "the topology", err) : NULL;
	const json_t *nodes = online ? field_array(topo, "nodes", "the topology", err) : NULL;
	if (!nodes)
		return -1;
	_cleanup_free_ char *node_list = NULL;
	for (size_t i = 0; i < json_array_size(nodes); i++) {
		const json_t *n = json_array_get(nodes, i);
		_cleanup_free_ char *what = xasprintf("NUMA node %zu of the topology", i + 1);
		long long id = field_uint(n, "id", what, err);
		const char *cpus = id < 0 ? NULL : field_str(n, "cpus", what, err);
		if (!cpus)
			return -1;
		/* memory: unknown (null, 0) on some hosts */
		const json_t *mem = json_object_get(n, "memory_bytes");
		if (mem && !json_is_null(mem) && field_uint(n, "memory_bytes", what, err) < 0)
			return -1;
		_cleanup_free_ char *size = json_integer_value(mem) > 0
			? format_size(json_integer_value(mem)) : NULL;
		char *more = xasprintf("%s%s%lld: CPUs %s%s%s", node_list ? node_list : "",
				       i ? "; " : "", id, cpus, size ? ", " : "", size ? size : "");
		free(node_list);
		node_list = more;
	}

	const json_t *pools = field_obj(reply, "pools", err);
	if (!pools)
		return -1;
	static const char *const pool_names[] = { "housekeeping", "shared", "dedicated" };
	const char *pool[ARRAY_SIZE(pool_names)];
	for (size_t i = 0; i < ARRAY_SIZE(pool_names); i++)
		if (!(pool[i] = field_str(pools, pool_names[i], "the pools", err)))
			return -1;
	const json_t *ratio = json_object_get(reply, "overcommit_ratio");
	if (!json_is_number(ratio))
		return error_set(err, EPROTO, "no \"overcommit_ratio\" number in the reply");
	_cleanup_free_ char *r = ratio_str(json_number_value(ratio));

	fprintf(f, "host:        %s\n", desc);
	fprintf(f, "online CPUs: %s\n", *online ? online : "none");
	fprintf(f, "NUMA nodes:  %s\n", node_list ? node_list : "none");
	fputs("pools:      ", f);
	for (size_t i = 0; i < ARRAY_SIZE(pool_names); i++)
		fprintf(f, "%s %s %s", i ? "," : "", pool_names[i], *pool[i] ? pool[i] : "none");
	fprintf(f, "\novercommit:  %s shared vCPUs per shared pCPU\n", r);
	return 0;
}

/* The figures of one row of "usage" (or of "totals"). */
struct usage_row {
	long long shared_pcpus, shared_capacity, shared_admitted;
	long long dedicated_pcpus, dedicated_used, dedicated_free, dedicated_free_cores;
};

static int usage_row_read(const json_t *u, const char *what, struct usage_row *r,
			  struct error **err)
{
	struct {
		const char *key;
		long long *v;
	} const keys[] = {
		{ "shared_pcpus", &r->shared_pcpus },
		{ "shared_capacity", &r->shared_capacity },
		{ "shared_admitted", &r->shared_admitted },
		{ "dedicated_pcpus", &r->dedicated_pcpus },
		{ "dedicated_used", &r->dedicated_used },
		{ "dedicated_free", &r->dedicated_free },
		{ "dedicated_free_cores", &r->dedicated_free_cores },
	};
	if (!json_is_object(u))
		return error_set(err, EPROTO, "%s is not an object", what);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if ((*keys[i].v = field_uint(u, keys[i].key, what, err)) < 0)
			return -1;
	return 0;
}

static void usage_row_cells(struct table *t, const char *node, const struct usage_row *r)
{
	table_row(t);
	table_cell(t, "%s", node);
	table_cell(t, "%lld", r->shared_pcpus);
	table_cell(t, "%lld/%lld%s", r->shared_admitted, r->shared_capacity,
		   r->shared_admitted > r->shared_capacity ? " (over)" : "");
	/* what is neither used nor free: siblings an isolate VM keeps idle */
	long long blocked = r->dedicated_pcpus - r->dedicated_used - r->dedicated_free;
	if (blocked > 0)
		table_cell(t, "%lld/%lld (%lld blocked)", r->dedicated_used, r->dedicated_pcpus,
			   blocked);
	else
		table_cell(t, "%lld/%lld", r->dedicated_used, r->dedicated_pcpus);
	table_cell(t, "%lld", r->dedicated_free_cores);
}

/* NODE SHARED-PCPUS ADMITTED/CAPACITY DEDICATED FREE-CORES, a row per node
 * and the totals. */
static int print_usage(FILE *f, const json_t *reply, struct error **err)
{
	static const char *const headers[] = {
		"NODE", "SHARED-PCPUS", "ADMITTED/CAPACITY", "DEDICATED", "FREE-CORES",
	};
	const json_t *usage_arr = field_array(reply, "usage", "the reply", err);
	if (!usage_arr)
		return -1;
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	struct usage_row r;
	for (size_t i = 0; i < json_array_size(usage_arr); i++) {
		const json_t *u = json_array_get(usage_arr, i);
		_cleanup_free_ char *what = xasprintf("usage %zu", i + 1);
		if (usage_row_read(u, what, &r, err) < 0)
			return -1;
		long long node = field_uint(u, "node", what, err);
		if (node < 0)
			return -1;
		_cleanup_free_ char *id = xasprintf("%lld", node);
		usage_row_cells(t, id, &r);
	}
	if (usage_row_read(json_object_get(reply, "totals"), "\"totals\"", &r, err) < 0)
		return -1;
	usage_row_cells(t, "total", &r);
	table_print(t, f);
	return 0;
}

/* A reservation's NODES: "1", or "0:6,1:4" for one spanning nodes. */
static char *res_nodes(const json_t *res, const char *what, struct error **err)
{
	const json_t *shares = field_array(res, "shares", what, err);
	if (!shares)
		return NULL;
	size_t n = json_array_size(shares);
	if (n == 0) {
		error_set(err, EPROTO, "%s is on no NUMA node (\"shares\" is empty)", what);
		return NULL;
	}
	char *s = NULL;
	for (size_t i = 0; i < n; i++) {
		const json_t *sh = json_array_get(shares, i);
		_cleanup_free_ char *w = xasprintf("share %zu of %s", i + 1, what);
		long long node = json_is_object(sh) ? field_uint(sh, "node", w, err)
						    : error_set(err, EPROTO, "%s is not an object", w);
		long long vcpus = node < 0 ? -1 : field_uint(sh, "vcpus", w, err);
		if (vcpus < 0) {
			free(s);
			return NULL;
		}
		char *more = n == 1 ? xasprintf("%lld", node)
				    : xasprintf("%s%s%lld:%lld", s ? s : "", i ? "," : "", node,
						vcpus);
		free(s);
		s = more;
	}
	return s;
}

/* VM TENANT VCPUS POOL NODES PCPUS REGISTERED, or "no VMs admitted". */
static int print_reservations(FILE *f, const json_t *reply, struct error **err)
{
	static const char *const headers[] = {
		"VM", "TENANT", "VCPUS", "POOL", "NODES", "PCPUS", "REGISTERED",
	};
	const json_t *arr = field_array(reply, "reservations", "the reply", err);
	if (!arr)
		return -1;
	if (json_array_size(arr) == 0) {
		fputs("no VMs admitted\n", f);
		return 0;
	}
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *res = json_array_get(arr, i);
		_cleanup_free_ char *what = xasprintf("reservation %zu", i + 1);
		if (!json_is_object(res))
			return error_set(err, EPROTO, "%s is not an object", what);
		const char *name = field_str(res, "name", what, err);
		const char *tenant = name ? field_str(res, "tenant", what, err) : NULL;
		const char *pool = tenant ? field_str(res, "pool", what, err) : NULL;
		const char *pcpus = pool ? field_str(res, "pcpus", what, err) : NULL;
		if (!pcpus)
			return -1;
		long long vcpus = field_uint(res, "vcpus", what, err);
		if (vcpus < 0)
			return -1;
		const json_t *reg = json_object_get(res, "registered");
		if (!json_is_boolean(reg))
			return error_set(err, EPROTO, "\"registered\" of %s is not a boolean", what);
		_cleanup_free_ char *nodes = res_nodes(res, what, err);
		if (!nodes)
			return -1;
		table_row(t);
		table_cell(t, "%s", name);
		table_cell(t, "%s", tenant);
		table_cell(t, "%lld", vcpus);
		table_cell(t, "%s", pool);
		table_cell(t, "%s", nodes);
		table_cell(t, "%s", *pcpus ? pcpus : "-");
		table_cell(t, "%s", json_is_true(reg) ? "yes" : "no");
	}
	table_print(t, f);
	return 0;
}

/* The whole of a GET /v1/host reply, printed only when all of it is
 * well-formed. */
static int render(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		  struct error **err)
{
	(void)req;
	if (!json_is_object(reply))
		return error_set(err, EPROTO, "the host reply is not an object");
	_cleanup_free_ char *text = NULL;
	size_t len;
	FILE *m = open_memstream(&text, &len);
	if (!m)
		abort();
	int rc = print_host(m, reply, err);
	if (rc == 0) {
		fputc('\n', m);
		rc = print_usage(m, reply, err);
	}
	if (rc == 0) {
		fputc('\n', m);
		rc = print_reservations(m, reply, err);
	}
	fclose(m);
	if (rc < 0)
		return -1;
	fputs(text, ctx->out);
	return 0;
}

/* --- the command --------------------------------------------------------- */

static int host_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { CLI_OPTS_COMMON };
	_cleanup_error_ struct error *err = NULL;
	struct cli_args a;
	if (cli_args_parse(argc, argv, opts, false, &a, &err) < 0)
		return cli_usage_error(ctx, err->msg, usage, "vcpuctl host");
	if (cli_arg_set(&a, 'h')) {
		cli_print_help(ctx->out, usage, help_text);
		return CLI_EXIT_OK;
	}
	_cleanup_(cli_request_clearp) struct cli_request req = {
		.json = cli_arg_set(&a, CLI_OPT_JSON),
		.usage = usage,
		.method = "GET",
		.path = xstrdup("/v1/host"),
		.render = render,
	};
	return cli_request_run(ctx, &req);
}

const struct cli_command cli_cmd_host = {
	.name = "host",
	.summary = "CPU topology, pools and overcommit; room per NUMA node; admitted VMs",
	.run = host_run,
};
