/* cli.c - vcpuctl's core: global options, the dispatch table of commands,
 * help, exit codes, the option parser of every command, the one HTTP
 * exchange behind cli_request_run() and cli_get_json(), and the
 * sub-command tables of `tenant` and `vm` (argv -> request, help, usage
 * errors). A new command is a new file exporting a struct cli_command
 * plus one row in `commands` below. main.c only calls cli_main(), so all
 * of this is reachable from the unit tests. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

/* The dispatch table: one row per top-level command, in help order. */
static const struct cli_command *const commands[] = {
	&cli_cmd_tenant,
	&cli_cmd_vm,
	&cli_cmd_explain,
	&cli_cmd_host,
	&cli_cmd_fleet,
	&cli_cmd_policy,
	&cli_cmd_status,
	&cli_cmd_top,
	&cli_cmd_events,
	&cli_cmd_metrics,
};

static const char main_usage[] =
	"usage: vcpuctl [--socket PATH | --url URL [--token-file FILE] [--cacert FILE]]\n"
	"               [--json] [--timeout SECONDS] COMMAND [ARGS...]\n"
	"       vcpuctl help [COMMAND] | --help | --version";

static const char main_options[] =
	"Global options:\n"
	"  -s, --socket PATH     vcpud's API socket (default: $" CLI_SOCKET_ENV " if set,\n"
	"                        else " CLI_DEFAULT_SOCKET ")\n"
	"      --url URL         a vcpud on another host instead (vcpud --listen):\n"
	"                        https://HOST:PORT, or http:// to loopback only\n"
	"                        (default: $" CLI_URL_ENV " if set)\n"
	"      --token-file FILE the bearer token for --url, on the file's first\n"
	"                        line (default: $" CLI_TOKEN_FILE_ENV "); the file\n"
	"                        must not be readable by others\n"
	"      --cacert FILE     PEM CA certificates that --url's certificate must\n"
	"                        chain to, or its own self-signed certificate\n"
	"                        (default: $" CLI_CACERT_ENV ", else the system's)\n"
	"  -j, --json            print the API's JSON instead of tables (errors too)\n"
	"      --timeout SECONDS give up waiting for vcpud after this long (default 30)\n"
	"  -h, --help            this help; `vcpuctl COMMAND --help` for a command\n"
	"  -V, --version         print vcpuctl's version\n"
	"\n"
	"Exit codes:\n"
	"  0  success\n"
	"  1  other error (vcpud failed: HTTP 5xx, an unexpected reply)\n"
	"  2  usage error or invalid input (also HTTP 400, 413)\n"
	"  3  not found (HTTP 404, or a missing file)\n"
	"  4  conflict (HTTP 409: already exists, still in use, over quota)\n"
	"  5  vcpud unreachable (no socket, nobody listening)\n"
	"  6  permission denied (HTTP 401, 403, or no access to the socket)\n"
	"\n"
	"Over --url, every command works as on the socket; the audit log names\n"
	"the token (token:NAME) instead of the uid.\n";

int cli_exit_for_status(long status)
{
	if (status >= 200 && status < 300)
		return CLI_EXIT_OK;
	switch (status) {
	case 400:
	case 413:
		return CLI_EXIT_USAGE;
	case 401:
	case 403:
		return CLI_EXIT_FORBIDDEN;
	case 404:
		return CLI_EXIT_NOT_FOUND;
	case 409:
		return CLI_EXIT_CONFLICT;
	default:
		return CLI_EXIT_ERROR;
	}
}

int cli_exit_for_errno(int code)
{
	switch (code) {
	case 0:
		return CLI_EXIT_OK;
	case EINVAL:
	case ERANGE:
	case EFBIG:
	case E2BIG:
		return CLI_EXIT_USAGE;
	case ENOENT:
		return CLI_EXIT_NOT_FOUND;
	case EEXIST:
	case EBUSY:
		return CLI_EXIT_CONFLICT;
	case ECONNREFUSED:
	case EHOSTUNREACH:
		return CLI_EXIT_UNREACHABLE;
	case EACCES:
	case EPERM:
		return CLI_EXIT_FORBIDDEN;
	default:
		return CLI_EXIT_ERROR;
	}
}

void cli_errorf(struct cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("vcpuctl: ", ctx->err);
	vfprintf(ctx->err, fmt, ap);
	fputc('\n', ctx->err);
	va_end(ap);
}

int cli_usage_error(struct cli_ctx *ctx, const char *msg, const char *usage,
		    const char *help_cmd)
{
	cli_errorf(ctx, "%s", msg);
	if (usage)
		fprintf(ctx->err, "%s\n", usage);
	if (help_cmd)
		fprintf(ctx->err, "Try '%s --help' for more information.\n", help_cmd);
	return CLI_EXIT_USAGE;
}

void cli_print_help(FILE *f, const char *usage, const char *help_text)
{
	fprintf(f, "%s\n", usage);
	if (help_text)
		fprintf(f, "\n%s", help_text);
}

/* The row of opts whose val is `val`, or -1. */
static int option_row(const struct option *opts, int val)
{
	for (int i = 0; opts && opts[i].name; i++)
		if (!opts[i].flag && opts[i].val == val)
			return i;
	return -1;
}

int cli_getopt_error(int c, char **argv, const struct option *opts, struct error **err)
{
	int row = optopt ? option_row(opts, optopt) : -1;
	const struct option *o = row < 0 ? NULL : &opts[row];
	if (c == ':') {
		if (o)
			return error_set(err, EINVAL, "option '--%s' needs a value", o->name);
		return error_set(err, EINVAL, "option '-%c' needs a value", optopt);
	}
	if (o && o->has_arg == no_argument)
		return error_set(err, EINVAL, "option '--%s' does not take a value", o->name);
	if (optopt)
		return error_set(err, EINVAL, "unknown option '-%c'", optopt);
	/* an unknown or ambiguous long option: getopt has stepped past it */
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	size_t n = strcspn(arg, "=");
	return error_set(err, EINVAL, "unknown option '%.*s'", (int)n, arg);
}

void cli_print_json(FILE *f, const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
	if (s) {
		fputs(s, f);
		fputc('\n', f);
		free(s);
	}
}

void cli_request_clear(struct cli_request *req)
{
	free(req->path);
	free(req->subject);
	if (req->body)
		json_decref(req->body);
	memset(req, 0, sizeof(*req));
}

int cli_transport_failed(struct cli_ctx *ctx, const struct error *err)
{
	cli_errorf(ctx, "%s", err->msg);
	switch (err->code) {
	case ECONNREFUSED:
		return CLI_EXIT_UNREACHABLE;
	case EACCES:
		return CLI_EXIT_FORBIDDEN;
	case EINVAL: /* e.g. a socket path that is too long */
		return CLI_EXIT_USAGE;
	default:     /* timeouts, replies that are not JSON or too large */
		return CLI_EXIT_ERROR;
	}
}

/* One request to vcpud, its failures reported on ctx->err: a transport
 * failure (the client's message, which names the socket) or an error
 * status (the API's message, else the status; with CLI_GET_JSON_ERRORS
 * the error JSON on ctx->out first). On a 2xx reply *reply gets its JSON
 * (NULL for none). Returns an enum cli_exit. */
static int exchange(struct cli_ctx *ctx, const char *method, const char *path,
		    const json_t *body, unsigned flags, json_t **reply)
{
	_cleanup_error_ struct error *err = NULL;
	struct client_reply r;
	*reply = NULL;
	if (client_request(&ctx->target, method, path, body, ctx->timeout_ms, &r, &err) < 0)
		return cli_transport_failed(ctx, err);
	int rc = cli_exit_for_status(r.status);
	if (rc == CLI_EXIT_OK) {
		*reply = steal_ptr(&r.json);
		return CLI_EXIT_OK;
	}
	const json_t *e = json_object_get(r.json, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	if ((flags & CLI_GET_QUIET_404) && r.status == 404 && code &&
	    strcmp(code, "not_found") == 0) {
		client_reply_clear(&r);
		return CLI_EXIT_NOT_FOUND;
	}
	if ((flags & CLI_GET_JSON_ERRORS) && r.json)
		cli_print_json(ctx->out, r.json);
	const char *msg = client_error_message(r.json);
	if (msg && r.status == 401 && !ctx->target.token)
		cli_errorf(ctx, "%s (vcpuctl: --token-file or $%s)", msg, CLI_TOKEN_FILE_ENV);
	else if (msg)
		cli_errorf(ctx, "%s", msg);
	else
		cli_errorf(ctx, "vcpud answered %s %s with HTTP %ld", method, path, r.status);
	client_reply_clear(&r);
	return rc;
}

/* A GET whose reply is a page ("next" names the item to ask after, and
 * "vms" or "reservations" holds the items): fetch the following pages and
 * append their items to the reply's array, so callers see one whole
 * listing. At most CLI_PAGES_MAX pages (a server that never ends is an
 * error). */
#define CLI_PAGES_MAX 10000

/* The array a page's items are in. */
static json_t *page_items(json_t *page)
{
	static const char *const keys[] = { "vms", "reservations" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_is_array(json_object_get(page, keys[i])))
			return json_object_get(page, keys[i]);
	return NULL;
}

static int follow_pages(struct cli_ctx *ctx, const char *path, unsigned flags, json_t *reply)
{
	for (unsigned pages = 1;; pages++) {
		const char *next = json_string_value(json_object_get(reply, "next"));
		if (!next)
			return CLI_EXIT_OK;
		json_t *arr = page_items(reply);
		if (!arr || pages >= CLI_PAGES_MAX) {
			cli_errorf(ctx, "vcpud's listing at %s does not end", path);
			return CLI_EXIT_ERROR;
		}
		_cleanup_free_ char *base = xstrdup(path);
		char *q = strstr(base, "after=");
		if (q) /* a cursor given by the caller is replaced */
			*q = '\0';
		size_t bl = strlen(base);
		const char *sep = bl && (base[bl - 1] == '?' || base[bl - 1] == '&') ? ""
				: strchr(base, '?') ? "&" : "?";
		_cleanup_free_ char *p = xasprintf("%s%safter=%s", base, sep, next);
		json_t *more = NULL;
		int rc = exchange(ctx, "GET", p, NULL, flags, &more);
		if (rc != CLI_EXIT_OK)
			return rc;
		json_t *marr = page_items(more);
		if (marr)
			json_array_extend(arr, marr);
		json_object_set(reply, "next", json_object_get(more, "next"));
		json_decref(more);
	}
}

int cli_request_run(struct cli_ctx *ctx, const struct cli_request *req)
{
	_cleanup_error_ struct error *err = NULL;
	bool json = ctx->json || req->json;
	json_t *reply;

	int rc = exchange(ctx, req->method, req->path, req->body,
			  json ? CLI_GET_JSON_ERRORS : 0, &reply);
	if (rc == CLI_EXIT_OK && reply && strcmp(req->method, "GET") == 0)
		rc = follow_pages(ctx, req->path, json ? CLI_GET_JSON_ERRORS : 0, reply);
	if (rc != CLI_EXIT_OK) {
		if (reply)
			json_decref(reply);
		return rc;
	}
	if (json) {
		if (reply)
			cli_print_json(ctx->out, reply);
	} else if (req->render && req->render(ctx, req, reply, &err) < 0) {
		cli_errorf(ctx, "unexpected reply from vcpud to %s %s: %s", req->method,
			   req->path, err->msg);
		rc = CLI_EXIT_ERROR;
	}
	if (reply)
		json_decref(reply);
	return rc;
}

int cli_get_json(struct cli_ctx *ctx, const char *path, unsigned flags, json_t **reply)
{
	int rc = exchange(ctx, "GET", path, NULL, flags, reply);
	if (rc == CLI_EXIT_OK && *reply) {
		rc = follow_pages(ctx, path, flags, *reply);
		if (rc != CLI_EXIT_OK) {
			json_decref(*reply);
			*reply = NULL;
		}
	}
	return rc;
}

/* --- command lines ---------------------------------------------------- */

static int args_positional(struct cli_args *a, bool takes_name, const char *arg,
			   struct error **err)
{
	if (!takes_name || a->name)
		return error_set(err, EINVAL, "unexpected argument '%s'", arg);
	a->name = arg;
	return 0;
}

int cli_args_parse(int argc, char **argv, const struct option *opts, bool takes_name,
		   struct cli_args *a, struct error **err)
{
	/* "-": positional arguments come back in place (case 1), so options
	 * may come before or after them whatever POSIXLY_CORRECT says; ":":
	 * report missing values; then the letters of the table */
	char shortopts[3 + 3 * CLI_ARGS_MAX] = "-:";
	size_t n = 2;
	for (int i = 0; opts[i].name; i++) {
		if (i + 1 >= CLI_ARGS_MAX)
			abort(); /* a table too long for struct cli_args */
		int v = opts[i].val;
		if (opts[i].flag || !((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z')))
			continue;
		shortopts[n++] = (char)v;
		if (opts[i].has_arg != no_argument)
			shortopts[n++] = ':';
		if (opts[i].has_arg == optional_argument)
			shortopts[n++] = ':';
	}
	shortopts[n] = '\0';

	memset(a, 0, sizeof(*a));
	a->opts = opts;
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == 1) {
			if (args_positional(a, takes_name, optarg, err) < 0)
				return -1;
			continue;
		}
		int row = c == '?' || c == ':' ? -1 : option_row(opts, c);
		if (row < 0)
			return cli_getopt_error(c, argv, opts, err);
		a->value[row] = optarg ? optarg : "";
	}
	/* whatever follows "--" */
	for (; optind < argc; optind++)
		if (args_positional(a, takes_name, argv[optind], err) < 0)
			return -1;
	return 0;
}

const char *cli_arg(const struct cli_args *a, int val)
{
	int row = option_row(a->opts, val);
	return row < 0 ? NULL : a->value[row];
}

/* --- commands made of subcommands ------------------------------------- */

static const struct cli_sub *group_sub(const struct cli_group *g, const char *name)
{
	for (size_t i = 0; i < g->n_subs; i++)
		if (strcmp(g->subs[i].name, name) == 0)
			return &g->subs[i];
	return NULL;
}

int cli_group_build(const struct cli_group *g, int argc, char **argv, struct cli_request *out,
		    struct error **err)
{
	memset(out, 0, sizeof(*out));
	out->usage = g->usage;
	if (argc < 1 || !argv[0])
		return error_set(err, EINVAL, "missing %s command", g->name);
	const struct cli_sub *sub = group_sub(g, argv[0]);
	if (!sub)
		return error_set(err, EINVAL, "unknown %s command '%s'", g->name, argv[0]);
	out->usage = sub->usage;
	out->help_text = sub->help;

	struct cli_args a;
	if (cli_args_parse(argc, argv, sub->opts, sub->takes_name, &a, err) < 0)
		return -1;
	out->json = cli_arg_set(&a, CLI_OPT_JSON);
	if (cli_arg_set(&a, 'h')) {
		out->help = true;
		return 0;
	}
	if (sub->takes_name) {
		if (!a.name)
			return error_set(err, EINVAL, "missing %s NAME", g->noun);
		/* the name goes into a URL path: only [A-Za-z0-9_.-] gets there */
		_cleanup_free_ char *what = xasprintf("%s name", g->noun);
		if (name_check(what, a.name, err) < 0)
			return -1;
		out->subject = xstrdup(a.name);
	}
	if (sub->build(&a, out, err) < 0) {
		/* keep usage/help for the caller, drop a half-built request */
		const char *usage = out->usage, *help = out->help_text;
		cli_request_clear(out);
		out->usage = usage;
		out->help_text = help;
		return -1;
	}
	return 0;
}

/* A subcommand's help: usage, options, and what NAME may be. */
static void group_sub_help(FILE *f, const struct cli_group *g, const struct cli_sub *s,
			   bool names)
{
	cli_print_help(f, s->usage, s->help);
	if (names && s->takes_name)
		fprintf(f, "\n%s", g->names_help);
}

int cli_group_run(struct cli_ctx *ctx, const struct cli_group *g, int argc, char **argv)
{
	_cleanup_free_ char *group_cmd = xasprintf("vcpuctl %s", g->name);
	if (argc < 2) {
		_cleanup_free_ char *m = xasprintf("missing %s command", g->name);
		return cli_usage_error(ctx, m, g->usage, group_cmd);
	}
	const char *sub = argv[1];
	if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		const struct cli_sub *s = argc > 2 ? group_sub(g, argv[2]) : NULL;
		if (s) {
			/* `vcpuctl tenant help create` */
			group_sub_help(ctx->out, g, s, g->names_in_help_sub);
			return CLI_EXIT_OK;
		}
		cli_print_help(ctx->out, g->usage, g->help);
		fprintf(ctx->out, "\n%s", g->names_help);
		fprintf(ctx->out, "Run 'vcpuctl %s COMMAND --help' for a command's options.\n",
			g->name);
		return CLI_EXIT_OK;
	}

	_cleanup_(cli_request_clearp) struct cli_request req = { 0 };
	_cleanup_error_ struct error *err = NULL;
	if (cli_group_build(g, argc - 1, argv + 1, &req, &err) < 0) {
		_cleanup_free_ char *help_cmd = group_sub(g, sub)
			? xasprintf("vcpuctl %s %s", g->name, sub) : xstrdup(group_cmd);
		return cli_usage_error(ctx, err->msg, req.usage, help_cmd);
	}
	if (req.help) {
		group_sub_help(ctx->out, g, group_sub(g, sub), true);
		return CLI_EXIT_OK;
	}
	return cli_request_run(ctx, &req);
}

/* --- the program ------------------------------------------------------ */

static const struct cli_command *command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static void main_help(FILE *f)
{
	fprintf(f, "%s\n\nvcpuctl is the command-line client of vcpud, the vCPU resource manager.\n\n",
		main_usage);
	fputs("Commands:\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "  %-10s %s\n\n", "help", "help on vcpuctl or on one command");
	fputs(main_options, f);
}

/* `vcpuctl help [COMMAND]` */
static int help_command(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2) {
		main_help(ctx->out);
		return CLI_EXIT_OK;
	}
	if (argc > 2)
		return cli_usage_error(ctx, "help takes at most one COMMAND", main_usage, "vcpuctl");
	const struct cli_command *cmd = command_find(argv[1]);
	if (!cmd) {
		_cleanup_free_ char *m = xasprintf("unknown command '%s'", argv[1]);
		return cli_usage_error(ctx, m, main_usage, "vcpuctl");
	}
	char *sub[] = { (char *)cmd->name, (char *)"--help", NULL };
	return cmd->run(ctx, 2, sub);
}

enum { OPT_TIMEOUT = 256, OPT_URL, OPT_TOKEN_FILE, OPT_CACERT };

/* The token on the first line of `path` (surrounding blanks dropped) into
 * *out. A file others may read is refused: the token is a password. */
static int read_token(const char *path, char **out, struct error **err)
{
	struct stat st;
	if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
		return error_set(err, EACCES, "token file %s may be read by anyone (mode %04o): "
				 "chmod o-r it", path, (unsigned)(st.st_mode & 07777));
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (read_file_max(path, "token file", 16384, &buf, &len, err) < 0)
		return -1;
	int rc = 0;
	if (memchr(buf, '\0', len)) {
		rc = error_set(err, EINVAL, "token file %s has a NUL byte: not a token", path);
	} else {
		buf[strcspn(buf, "\n")] = '\0';
		char *tok = strstrip(buf);
		if (!*tok)
			rc = error_set(err, EINVAL, "token file %s: no token on its first line",
				       path);
		else if (strpbrk(tok, " \t\r\v\f"))
			rc = error_set(err, EINVAL, "token file %s: the token has a blank in it",
				       path);
		else
			*out = xstrdup(tok);
	}
	explicit_bzero(buf, len);
	return rc;
}

int cli_main(int argc, char **argv, FILE *out, FILE *errf)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "url", required_argument, NULL, OPT_URL },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "cacert", required_argument, NULL, OPT_CACERT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv(CLI_SOCKET_ENV);
	struct cli_ctx ctx = {
		.target.socket_path = env && *env ? env : CLI_DEFAULT_SOCKET,
		.timeout_ms = CLI_DEFAULT_TIMEOUT_MS,
		.out = out,
		.err = errf,
	};
	_cleanup_error_ struct error *err = NULL;
	const char *url = NULL, *token_file = NULL, *cacert = NULL;
	bool socket_given = false;

	/* '+': stop at the command name, its options are its own */
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+:s:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg)
				return cli_usage_error(&ctx, "--socket needs a path", main_usage,
						       "vcpuctl");
			ctx.target.socket_path = optarg;
			socket_given = true;
			break;
		case OPT_URL:
		case OPT_TOKEN_FILE:
		case OPT_CACERT:
			if (!*optarg)
				return cli_usage_error(&ctx, c == OPT_URL ? "--url needs a URL" :
						       c == OPT_CACERT ? "--cacert needs a file" :
						       "--token-file needs a file", main_usage,
						       "vcpuctl");
			*(c == OPT_URL ? &url : c == OPT_CACERT ? &cacert : &token_file) = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case OPT_TIMEOUT: {
			double s;
			if (parse_double(optarg, 0.001, 86400, &s, &err) < 0) {
				error_wrap(&err, "--timeout");
				return cli_usage_error(&ctx, err->msg, main_usage, "vcpuctl");
			}
			ctx.timeout_ms = (long)(s * 1000);
			if (ctx.timeout_ms < 1)
				ctx.timeout_ms = 1;
			break;
		}
		case 'h':
			main_help(out);
			return CLI_EXIT_OK;
		case 'V':
			fprintf(out, "vcpuctl %s\n", VCPUD_VERSION);
			return CLI_EXIT_OK;
		default:
			cli_getopt_error(c, argv, opts, &err);
			return cli_usage_error(&ctx, err->msg, main_usage, "vcpuctl");
		}
	}
	if (optind >= argc)
		return cli_usage_error(&ctx, "missing COMMAND", main_usage, "vcpuctl");
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;
	bool help = strcmp(sub_argv[0], "help") == 0;
	const struct cli_command *cmd = help ? NULL : command_find(sub_argv[0]);
	if (!help && !cmd) {
		_cleanup_free_ char *m = xasprintf("unknown command '%s'", sub_argv[0]);
		return cli_usage_error(&ctx, m, main_usage, "vcpuctl");
	}
	/* help and the commands that need no daemon (policy) take no
	 * connection options from the environment */
	_cleanup_free_ char *token = NULL; /* ctx.target.token: lives to the end */
	if (!help && !cmd->offline) {
		if (url && socket_given)
			return cli_usage_error(&ctx, "--socket and --url: one or the other", main_usage,
					       "vcpuctl");
		if (!url && !socket_given && (env = getenv(CLI_URL_ENV)) && *env)
			url = env;
		if (!url && (token_file || cacert))
			return cli_usage_error(&ctx, token_file ? "--token-file goes with --url" :
					       "--cacert goes with --url", main_usage, "vcpuctl");
		if (url) {
			struct client_url u;
			if (client_url_parse(url, &u, &err) < 0)
				return cli_usage_error(&ctx, err->msg, main_usage, "vcpuctl");
			if (!token_file && (env = getenv(CLI_TOKEN_FILE_ENV)) && *env)
				token_file = env;
			if (!cacert && (env = getenv(CLI_CACERT_ENV)) && *env)
				cacert = env;
			if (token_file && read_token(token_file, &token, &err) < 0) {
				cli_errorf(&ctx, "%s", err->msg);
				return cli_exit_for_errno(error_code(err));
			}
			ctx.target.url = url;
			ctx.target.token = token;
			ctx.target.cacert = cacert;
		}
	}
	if (help)
		return help_command(&ctx, sub_argc, sub_argv);
	return cmd->run(&ctx, sub_argc, sub_argv);
}
