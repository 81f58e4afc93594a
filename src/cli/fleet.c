/* fleet.c - `vcpuctl fleet hosts|evict`: the hosts of a fleet (vcpud
 * --fleet) as etcd holds them, live or dead, with what each has booked
 * (GET /v1/fleet/hosts), and freeing a dead host's bookings (POST
 * /v1/fleet/hosts/HOST/evict, audited as fleet.evict). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "vcpud/util.h"

static const struct option plain_opts[] = { CLI_OPTS_COMMON };

static const char group_usage[] =
	"usage: vcpuctl fleet hosts\n"
	"       vcpuctl fleet evict HOST";

static const char group_help[] =
	"With vcpud --fleet, tenants and their quotas live in etcd and every\n"
	"host books its VMs there. `fleet hosts` lists the hosts: LIVE is whether\n"
	"the host holds its etcd lease (a host that crashed or lost etcd is dead\n"
	"after policy fleet.lease_ttl_s), BOOKINGS/VCPUS/MEMORY what its VMs hold\n"
	"in the tenants' quotas. A dead host's bookings keep counting (its VMs\n"
	"may still run) until `fleet evict HOST` frees them, or policy\n"
	"fleet.evict_dead_after_s passes. A live host is not evicted.\n";

static const char plain_help[] =
	"Options:\n"
	"  --json             print the API's JSON\n"
	"  -h, --help         this help\n";

static const char host_names_help[] =
	"A host's name is its vcpud --host-id (default: its hostname).\n";

static int render_hosts(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
			struct error **err)
{
	(void)req;
	const json_t *arr = json_object_get(reply, "hosts");
	if (!json_is_array(arr))
		return error_set(err, EPROTO, "no \"hosts\" array in the reply");
	static const char *const headers[] = {
		"HOST", "LIVE", "BOOKINGS", "VCPUS", "MEMORY", "TENANTS",
	};
	if (!json_array_size(arr)) {
		fputs("no hosts in the fleet\n", ctx->out);
		return 0;
	}
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	size_t i;
	const json_t *h;
	json_array_foreach(arr, i, h) {
		const char *name = json_string_value(json_object_get(h, "host"));
		const json_t *tn = json_object_get(h, "tenants");
		if (!name || !json_is_object(tn))
			return error_set(err, EPROTO, "host %zu of the reply has no name or tenants",
					 i + 1);
		_cleanup_free_ char *mem = format_size(json_integer_value(json_object_get(h,
									"memory_bytes")));
		char *tl = xstrdup("");
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)tn, k, v) {
			char *n = xasprintf("%s%s%s:%lld", tl, *tl ? "," : "", k,
					    (long long)json_integer_value(v));
			free(tl);
			tl = n;
		}
		table_row(t);
		table_cell(t, "%s%s", name, json_is_true(json_object_get(h, "self")) ? " (this)" : "");
		table_cell(t, "%s", json_is_true(json_object_get(h, "live")) ? "yes" : "DEAD");
		table_cell(t, "%lld", (long long)json_integer_value(json_object_get(h, "bookings")));
		table_cell(t, "%lld", (long long)json_integer_value(json_object_get(h, "vcpus")));
		table_cell(t, "%s", mem);
		table_cell(t, "%s", *tl ? tl : "-");
		free(tl);
	}
	table_print(t, ctx->out);
	return 0;
}

static int render_evicted(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
			  struct error **err)
{
	(void)err;
	fprintf(ctx->out, "host %s evicted: %lld bookings, %lld vCPUs freed\n", req->subject,
		(long long)json_integer_value(json_object_get(reply, "bookings")),
		(long long)json_integer_value(json_object_get(reply, "vcpus")));
	return 0;
}

static int build_hosts(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)a; (void)err;
	out->method = "GET";
	out->path = xstrdup("/v1/fleet/hosts");
	out->render = render_hosts;
	return 0;
}

static int build_evict(const struct cli_args *a, struct cli_request *out, struct error **err)
{
	(void)err;
	out->method = "POST";
	out->path = xasprintf("/v1/fleet/hosts/%s/evict", a->name);
	out->render = render_evicted;
	return 0;
}

static const struct cli_sub subs[] = {
	{ "hosts", "usage: vcpuctl fleet hosts", plain_help, plain_opts, false, build_hosts },
	{ "evict", "usage: vcpuctl fleet evict HOST", plain_help, plain_opts, true, build_evict },
};

static const struct cli_group group = {
	.name = "fleet",
	.noun = "host",
	.usage = group_usage,
	.help = group_help,
	.names_help = host_names_help,
	.subs = subs,
	.n_subs = ARRAY_SIZE(subs),
};

static int fleet_run(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_group_run(ctx, &group, argc, argv);
}

const struct cli_command cli_cmd_fleet = {
	.name = "fleet",
	.summary = "the hosts of a fleet (vcpud --fleet), and evicting a dead one",
	.run = fleet_run,
};
