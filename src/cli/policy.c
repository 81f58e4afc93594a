/* policy.c - `vcpuctl policy check|show`: the operator's policy file,
 * checked and printed locally through the same parser vcpud uses
 * (policy_load_file), so no daemon is needed and a file can be checked
 * before it is installed. FILE defaults to the installed policy,
 * CLI_DEFAULT_POLICY (/etc/vcpud/policy.yaml). */
#include <errno.h>
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

enum { OPT_JSON = 256, OPT_DEFAULTS };

struct policy_args {
	const char *file;
	bool json;
	bool defaults;
	bool help;
};

static int parse_args(int argc, char **argv, const struct option *opts,
		      struct policy_args *a, struct error **err)
{
	memset(a, 0, sizeof(*a));
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "-:h", opts, NULL)) != -1) {
		switch (c) {
		case 1:
			if (a->file)
				return error_set(err, EINVAL, "unexpected argument '%s'", optarg);
			a->file = optarg;
			break;
		case 'h':
			a->help = true;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_DEFAULTS:
			a->defaults = true;
			break;
		default:
			return cli_getopt_error(c, argv, opts, err);
		}
	}
	for (; optind < argc; optind++) {
		if (a->file)
			return error_set(err, EINVAL, "unexpected argument '%s'", argv[optind]);
		a->file = argv[optind];
	}
	return 0;
}

static int policy_check(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_error_ struct error *err = NULL;
	struct policy_args a;
	if (parse_args(argc, argv, opts, &a, &err) < 0)
		return cli_usage_error(ctx, err->msg, check_usage, "vcpuctl policy check");
	if (a.help) {
		cli_print_help(ctx->out, check_usage, check_help);
		return CLI_EXIT_OK;
	}
	const char *file = a.file ? a.file : CLI_DEFAULT_POLICY;
	bool json = ctx->json || a.json;

	_cleanup_(policy_freep) struct policy *p = NULL;
	int rc = policy_load_file(file, &p, &err) < 0 ? cli_exit_for_errno(error_code(err))
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
	static const struct option opts[] = {
		{ "defaults", no_argument, NULL, OPT_DEFAULTS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_error_ struct error *err = NULL;
	struct policy_args a;
	if (parse_args(argc, argv, opts, &a, &err) < 0)
		return cli_usage_error(ctx, err->msg, show_usage, "vcpuctl policy show");
	if (a.help) {
		cli_print_help(ctx->out, show_usage, show_help);
		return CLI_EXIT_OK;
	}
	if (ctx->json || a.json)
		return cli_usage_error(ctx, "policy show prints YAML; --json is not supported",
				       show_usage, "vcpuctl policy show");
	if (a.defaults && a.file)
		return cli_usage_error(ctx, "give either FILE or --defaults, not both", show_usage,
				       "vcpuctl policy show");

	_cleanup_(policy_freep) struct policy *p = NULL;
	if (a.defaults) {
		p = xcalloc(1, sizeof(*p));
		policy_defaults(p);
	} else {
		const char *file = a.file ? a.file : CLI_DEFAULT_POLICY;
		if (policy_load_file(file, &p, &err) < 0) {
			cli_errorf(ctx, "%s", err->msg);
			int rc = cli_exit_for_errno(err->code);
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
};
