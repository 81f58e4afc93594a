/* status.c - `vcpuctl status`: is vcpud up, and what did its control loop do
 * last (GET /v1/health). Scripts and the real-kernel tests read the tick
 * count and the writes of the last tick from `vcpuctl --json status`. */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "vcpud/util.h"

static const char usage[] = "usage: vcpuctl status";
static const char help_text[] =
	"Shows vcpud's version, uptime, schema version, policy, cgroup root, the\n"
	"control loop's tick count and what its last tick did (duration, cgroup\n"
	"writes: 0 when the tree already matched, errors and the first of them),\n"
	"libvirt's connection state, and the quarantined VMs with their reasons.\n"
	"status is \"degraded\" while the last tick had errors or a VM is\n"
	"quarantined. --json prints the API's object.\n";

static int render(struct cli_ctx *ctx, const struct cli_request *req, const json_t *r,
		  struct error **err)
{
	(void)req;
	if (!json_is_object(r) || !json_is_string(json_object_get(r, "status")))
		return error_set(err, EPROTO, "health reply has no status");
	const char *root = json_string_value(json_object_get(r, "cgroup_root"));
	const json_t *lv = json_object_get(r, "libvirt");
	const char *lv_state = json_string_value(json_object_get(lv, "state"));
	const char *lv_err = json_string_value(json_object_get(lv, "error"));
	int64_t lv_since = json_integer_value(json_object_get(lv, "since_ms"));
	_cleanup_free_ char *since = lv_since ? output_time(lv_since / 1000) : NULL;
	const char *last_error = json_string_value(json_object_get(r, "last_error"));
	fprintf(ctx->out,
		"status:           %s\n"
		"version:          %s\n"
		"uptime:           %llds\n"
		"schema version:   %lld\n"
		"policy:           %s\n"
		"cgroup root:      %s%s\n"
		"ticks:            %lld\n"
		"last tick:        %.1f ms, %lld SQL statements\n"
		"last tick writes: %lld\n"
		"last tick errors: %lld%s%s\n"
		"libvirt:          %s%s%s%s%s\n"
		"quarantined VMs:  %lld\n",
		json_string_value(json_object_get(r, "status")),
		json_string_value(json_object_get(r, "version")) ?: "?",
		(long long)json_integer_value(json_object_get(r, "uptime_s")),
		(long long)json_integer_value(json_object_get(r, "schema_version")),
		json_string_value(json_object_get(r, "policy")) ?: "-", root ? root : "-",
		json_is_true(json_object_get(r, "dry_run")) ? " (dry-run)" : "",
		(long long)json_integer_value(json_object_get(r, "ticks")),
		(double)json_integer_value(json_object_get(r, "last_tick_us")) / 1000.0,
		(long long)json_integer_value(json_object_get(r, "last_tick_sql")),
		(long long)json_integer_value(json_object_get(r, "last_tick_writes")),
		(long long)json_integer_value(json_object_get(r, "last_tick_errors")),
		last_error ? ": " : "", last_error ? last_error : "",
		lv_state ? lv_state : "-", since ? " since " : "", since ? since : "",
		lv_err ? ": " : "", lv_err ? lv_err : "",
		(long long)json_integer_value(json_object_get(r, "quarantined")));
	size_t i;
	const json_t *q;
	json_array_foreach(json_object_get(r, "quarantined_vms"), i, q)
		fprintf(ctx->out, "  %s (%s): %s\n",
			json_string_value(json_object_get(q, "name")) ?: "?",
			json_string_value(json_object_get(q, "kind")) ?: "?",
			json_string_value(json_object_get(q, "reason")) ?: "?");
	return 0;
}

static int status_run(struct cli_ctx *ctx, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_print_help(ctx->out, usage, help_text);
			return CLI_EXIT_OK;
		}
		if (strcmp(argv[i], "--json") == 0) {
			ctx->json = true;
			continue;
		}
		_cleanup_free_ char *msg = xasprintf("unexpected argument '%s'", argv[i]);
		return cli_usage_error(ctx, msg, usage, "vcpuctl status");
	}
	struct cli_request req = {
		.usage = usage,
		.method = "GET",
		.path = xstrdup("/v1/health"),
		.render = render,
	};
	int rc = cli_request_run(ctx, &req);
	cli_request_clear(&req);
	return rc;
}

const struct cli_command cli_cmd_status = {
	.name = "status",
	.summary = "is vcpud up; its control loop's last tick",
	.run = status_run,
};
