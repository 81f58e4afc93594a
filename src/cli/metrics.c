/* metrics.c - `vcpuctl metrics`: vcpud's GET /metrics, Prometheus' text
 * format, printed as it came (for a look by hand, or `| promtool check
 * metrics`). */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "vcpud/util.h"

static const char usage[] = "usage: vcpuctl metrics";
static const char help_text[] =
	"Prints vcpud's metrics in Prometheus' text format, as a scraper of\n"
	"GET /metrics gets them: per-vCPU run and delay seconds, per-VM usage,\n"
	"steal, throttled seconds and caps, the throttle's actions, tenants'\n"
	"quotas and use, the NUMA nodes' pools, tick durations and API requests.\n";

static int metrics_run(struct cli_ctx *ctx, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_print_help(ctx->out, usage, help_text);
			return CLI_EXIT_OK;
		}
		_cleanup_free_ char *msg = xasprintf("unexpected argument '%s'", argv[i]);
		return cli_usage_error(ctx, msg, usage, "vcpuctl metrics");
	}
	_cleanup_error_ struct error *err = NULL;
	long status = 0;
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	if (client_request_raw(&ctx->target, "GET", "/metrics", NULL, ctx->timeout_ms, &status,
			       &body, &len, &err) < 0)
		return cli_transport_failed(ctx, err);
	int rc = cli_exit_for_status(status);
	if (rc == CLI_EXIT_OK) {
		if (len)
			fwrite(body, 1, len, ctx->out);
		return CLI_EXIT_OK;
	}
	/* an error is the API's JSON shape */
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *msg = j ? client_error_message(j) : NULL;
	if (msg)
		cli_errorf(ctx, "%s", msg);
	else
		cli_errorf(ctx, "vcpud answered GET /metrics with HTTP %ld", status);
	json_decref(j);
	return rc;
}

const struct cli_command cli_cmd_metrics = {
	.name = "metrics",
	.summary = "vcpud's metrics, in Prometheus' text format",
	.run = metrics_run,
};
