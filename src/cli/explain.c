/* explain.c - `vcpuctl explain VM [--json]`: why a VM is placed where it is,
 * whether it is a victim or capped now, which event and figures caused it,
 * and what would lift its cap (GET /v1/vms/NAME/explain). The daemon writes
 * the sentences; this prints them, one per paragraph, wrapped. */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

static const char usage[] = "usage: vcpuctl explain VM [--json]";

static const char help_text[] =
	"Explains one VM in plain sentences: its tenant and class, where admission\n"
	"placed it (pool, node, CPUs, and the node's overcommit figures), its last\n"
	"usage and steal, whether the noisy-neighbour throttle sees it as a victim\n"
	"(its steal against the thresholds, the caps put on its account) or caps\n"
	"it (the cap, the event and figures that set it, its hold, and what would\n"
	"lift it).\n"
	"\n"
	"Options:\n"
	"  --json             print the API's JSON (the same facts as fields)\n"
	"  -h, --help         this help\n";

/* Print `s` wrapped at 78 columns, continuation lines indented by 2. */
static void wrap(FILE *f, const char *s)
{
	size_t col = 0;
	while (*s) {
		size_t w = strcspn(s, " ");
		if (col && col + 1 + w > 78) {
			fputs("\n  ", f);
			col = 2;
		} else if (col) {
			fputc(' ', f);
			col++;
		}
		fwrite(s, 1, w, f);
		col += w;
		s += w;
		while (*s == ' ')
			s++;
	}
	fputc('\n', f);
}

static int render(struct cli_ctx *ctx, const struct cli_request *req, const json_t *reply,
		  struct error **err)
{
	(void)req;
	const json_t *lines = json_object_get(reply, "explanation");
	if (!json_is_array(lines))
		return error_set(err, EPROTO, "no \"explanation\" list in the reply");
	size_t i;
	const json_t *l;
	json_array_foreach(lines, i, l) {
		if (!json_is_string(l))
			return error_set(err, EPROTO, "explanation line %zu is not a string", i);
	}
	json_array_foreach(lines, i, l)
		wrap(ctx->out, json_string_value(l));
	return 0;
}

static int explain_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { CLI_OPTS_COMMON };
	_cleanup_error_ struct error *err = NULL;
	struct cli_args a;
	if (cli_args_parse(argc, argv, opts, true, &a, &err) < 0)
		return cli_usage_error(ctx, err->msg, usage, "vcpuctl explain");
	if (cli_arg_set(&a, 'h')) {
		cli_print_help(ctx->out, usage, help_text);
		return CLI_EXIT_OK;
	}
	if (!a.name)
		return cli_usage_error(ctx, "missing VM name", usage, "vcpuctl explain");
	if (name_check("VM name", a.name, &err) < 0)
		return cli_usage_error(ctx, err->msg, usage, "vcpuctl explain");
	_cleanup_(cli_request_clearp) struct cli_request req = {
		.json = cli_arg_set(&a, CLI_OPT_JSON),
		.usage = usage,
		.method = "GET",
		.path = xasprintf("/v1/vms/%s/explain", a.name),
		.subject = xstrdup(a.name),
		.render = render,
	};
	return cli_request_run(ctx, &req);
}

const struct cli_command cli_cmd_explain = {
	.name = "explain",
	.summary = "why a VM is placed where it is, and capped or not",
	.run = explain_run,
};
