/* policy.c - `vcpuctl policy check|show`: the operator's policy file,
 * checked and printed locally through the same parser vcpud uses
 * (policy_load_file), so no daemon is needed and a file can be checked
 * before it is installed. FILE defaults to the installed policy,
 * CLI_DEFAULT_POLICY (/etc/vcpud/policy.yaml). */
#include <string.h>

#include "cli/cli.h"
#include "vcpud/api.h"
#include "vcpud/policy.h"
#include "vcpud/util.h"

static const char group_usage[] =
	"usage: vcpuctl policy check [FILE]\n"
	"       vcpuctl policy show [FILE | --defaults]";

static const char check_usage[] = "usage: vcpuctl policy check [FILE]";
static const char show_usage[] = "usage: vcpuctl policy show [FILE | --defaults]";

static const char group_help[] =
	"check  parse and validate a policy file; prints 'FILE: ok' or the first\n"
	"       problem as FILE:LINE:COLUMN: MESSAGE (exit code 2; 3 when FILE\n"
	"       does not exist)\n"
	"show   print a policy file as vcpud reads it, defaults filled in\n"
	"       (--defaults: the built-in defaults)\n"
	"\n"
	"FILE defaults to " CLI_DEFAULT_POLICY ". Neither command needs vcpud.\n";

static const char check_help[] =
	"Options:\n"
	"  --json         print {\"file\":..,\"ok\":true|false,\"error\":{..}}\n"
	"  -h, --help     this help\n"
	"\nFILE defaults to " CLI_DEFAULT_POLICY ".\n";

static const char show_help[] =
	"Options:\n"
	"  --defaults     print the built-in defaults instead of a file\n"
	"  -h, --help     this help\n"
	"\nFILE defaults to " CLI_DEFAULT_POLICY ". The output is YAML; there is no\n"
	"--json form.\n";

enum { OPT_DEFAULTS = CLI_OPT_FIRST };

static const struct option check_opts[] = { CLI_OPTS_COMMON };

static const struct option show_opts[] = {
	{ "defaults", no_argument, NULL, OPT_DEFAULTS },
	CLI_OPTS_COMMON
};

/* What `policy check` and `policy show` share: their command line. */
struct policy_cmd {
	const char *usage;
	const char *help;
	const char *help_cmd;       /* "vcpuctl policy check" */
	const struct option *opts;
};

static const struct policy_cmd check_cmd = {
	check_usage, check_help, "vcpuctl policy check", check_opts,
};

static const struct policy_cmd show_cmd = {
	show_usage, show_help, "vcpuctl policy show", show_opts,
};

/* Parse `policy SUB [FILE] [OPTIONS]` into *a. Returns -1 when SUB goes on,
 * else the exit code it ends with: a usage error or its help, printed. */
static int policy_args(struct cli_ctx *ctx, const struct policy_cmd *cmd, int argc,
		       char **argv, struct cli_args *a)
{
	_cleanup_error_ struct error *err = NULL;
	if (cli_args_parse(argc, argv, cmd->opts, true, a, &err) < 0)
		return cli_usage_error(ctx, err->msg, cmd->usage, cmd->help_cmd);
	if (cli_arg_set(a, 'h')) {
		cli_print_help(ctx->out, cmd->usage, cmd->help);
		return CLI_EXIT_OK;
	}
	return -1;
}

static int policy_check(struct cli_ctx *ctx, int argc, char **argv)
{
	struct cli_args a;
	int rc = policy_args(ctx, &check_cmd, argc, argv, &a);
	if (rc >= 0)
		return rc;
	const char *file = a.name ? a.name : CLI_DEFAULT_POLICY;
	bool json = ctx->json || cli_arg_set(&a, CLI_OPT_JSON);

	_cleanup_error_ struct error *err = NULL;
	_cleanup_(policy_freep) struct policy *p = NULL;
	rc = policy_load_file(file, &p, &err) < 0 ? cli_exit_for_errno(error_code(err))
						  : CLI_EXIT_OK;
	/* whatever the parser said, a failed check must not exit 0 */
	if (err && rc == CLI_EXIT_OK)
		rc = CLI_EXIT_ERROR;
	if (json) {
		json_t *o = json_pack("{s:s,s:b}", "file", file, "ok", rc == CLI_EXIT_OK);
		if (err) {
			json_t *e = api_error_json(api_status_for_errno(err->code), err->msg);
			json_object_set(o, "error", json_object_get(e, "error"));
			json_decref(e);
		}
		cli_print_json(ctx->out, o);
		json_decref(o);
	}
	if (err) {
		cli_errorf(ctx, "%s", err->msg);
		return rc;
	}
	if (!json)
		fprintf(ctx->out, "%s: ok\n", file);
	return CLI_EXIT_OK;
}

static int policy_show(struct cli_ctx *ctx, int argc, char **argv)
{
	struct cli_args a;
	int rc = policy_args(ctx, &show_cmd, argc, argv, &a);
	if (rc >= 0)
		return rc;
	bool defaults = cli_arg_set(&a, OPT_DEFAULTS);
	if (ctx->json || cli_arg_set(&a, CLI_OPT_JSON))
		return cli_usage_error(ctx, "policy show prints YAML; --json is not supported",
				       show_usage, "vcpuctl policy show");
	if (defaults && a.name)
		return cli_usage_error(ctx, "give either FILE or --defaults, not both", show_usage,
				       "vcpuctl policy show");

	_cleanup_error_ struct error *err = NULL;
	_cleanup_(policy_freep) struct policy *p = NULL;
	if (defaults) {
		p = xcalloc(1, sizeof(*p));
		policy_defaults(p);
	} else {
		const char *file = a.name ? a.name : CLI_DEFAULT_POLICY;
		if (policy_load_file(file, &p, &err) < 0) {
			cli_errorf(ctx, "%s", err->msg);
			rc = cli_exit_for_errno(err->code);
			return rc == CLI_EXIT_OK ? CLI_EXIT_ERROR : rc;
		}
	}
	_cleanup_free_ char *yaml = policy_to_yaml(p);
	fputs(yaml, ctx->out);
	return CLI_EXIT_OK;
}

/* `vcpuctl policy ...` */
static int policy_run(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error(ctx, "missing policy command", group_usage,
				       "vcpuctl policy");
	const char *sub = argv[1];
	if (strcmp(sub, "check") == 0)
		return policy_check(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return policy_show(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		cli_print_help(ctx->out, group_usage, group_help);
		return CLI_EXIT_OK;
	}
	_cleanup_free_ char *m = xasprintf("unknown policy command '%s'", sub);
	return cli_usage_error(ctx, m, group_usage, "vcpuctl policy");
}

const struct cli_command cli_cmd_policy = {
	.name = "policy",
	.summary = "check or show a policy file (no daemon needed)",
	.run = policy_run,
	.offline = true,
};
