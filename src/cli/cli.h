/* cli.h - vcpuctl's shared core: exit codes, the global context, the
 * command dispatch table, the one option parser every command uses, the
 * request runner and GET helper every daemon-talking command uses, and the
 * subcommand table machinery of `tenant` and `vm`.
 *
 * A subcommand is one file (tenant.c, vm.c, policy.c, ...) exporting one
 * `struct cli_command`; cli.c lists them in its dispatch table. Subcommands
 * that talk to vcpud split into a pure "argv -> struct cli_request" builder
 * (unit-tested without a daemon) and cli_request_run(), which does the HTTP
 * exchange, maps the HTTP status to an exit code and renders the reply.
 * Commands made of such subcommands describe them in a struct cli_group
 * and leave argv, help and usage errors to cli_group_build()/_run(). */
#ifndef VCPUD_CLI_H
#define VCPUD_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/client.h"
#include "vcpud/error.h"

#ifndef VCPUD_VERSION
#define VCPUD_VERSION "0.1.0"
#endif

#define CLI_DEFAULT_SOCKET "/run/vcpud/vcpud.sock"
#define CLI_SOCKET_ENV "VCPUD_SOCKET"
#define CLI_URL_ENV "VCPUD_URL"
#define CLI_TOKEN_FILE_ENV "VCPUD_TOKEN_FILE"
#define CLI_CACERT_ENV "VCPUD_CACERT"
#define CLI_DEFAULT_POLICY "/etc/vcpud/policy.yaml"
#define CLI_DEFAULT_TIMEOUT_MS 30000L

/* vcpuctl's exit codes (documented in `vcpuctl --help`). */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,        /* anything else: server 5xx, unexpected reply */
	CLI_EXIT_USAGE = 2,        /* bad arguments or invalid input (HTTP 400, 413) */
	CLI_EXIT_NOT_FOUND = 3,    /* HTTP 404, or a missing file */
	CLI_EXIT_CONFLICT = 4,     /* HTTP 409: exists already, still in use */
	CLI_EXIT_UNREACHABLE = 5,  /* cannot connect to vcpud's socket */
	CLI_EXIT_FORBIDDEN = 6,    /* HTTP 401/403, or no permission on the socket */
	CLI_EXIT_LAST
};

/* Exit code for an HTTP status (2xx -> 0). */
int cli_exit_for_status(long status);

/* Exit code for an error's errno value (0 -> 0). The client reports an
 * unreachable daemon as ECONNREFUSED and a refused connect as EACCES. */
int cli_exit_for_errno(int code);

/* What every subcommand gets: global options and where to print. */
struct cli_ctx {
	struct client_target target; /* socket_path never NULL once cli_main() has
				      * run; url, token and cacert for --url */
	bool json;                 /* --json: print the API's JSON */
	long timeout_ms;
	FILE *out;                 /* stdout (tests: a memstream) */
	FILE *err;                 /* stderr */
};

/* One row of the dispatch table. `run` gets argv[0] = the command's name
 * and returns an enum cli_exit; it handles its own "--help" and "help". */
struct cli_command {
	const char *name;
	const char *summary;       /* one line for `vcpuctl --help` */
	int (*run)(struct cli_ctx *ctx, int argc, char **argv);
	bool offline;              /* needs no daemon: --url and the token are
				    * not read for it */
};

extern const struct cli_command cli_cmd_tenant;
extern const struct cli_command cli_cmd_vm;
extern const struct cli_command cli_cmd_explain;
extern const struct cli_command cli_cmd_host;
extern const struct cli_command cli_cmd_fleet;
extern const struct cli_command cli_cmd_policy;
extern const struct cli_command cli_cmd_status;
extern const struct cli_command cli_cmd_top;
extern const struct cli_command cli_cmd_events;
extern const struct cli_command cli_cmd_metrics;

/* A transport failure (client.h's codes) said on ctx->err: its exit code. */
int cli_transport_failed(struct cli_ctx *ctx, const struct error *err);

/* The whole program: global options, then dispatch. Returns the exit code.
 * Safe to call repeatedly (tests); getopt state is reset on each call. */
int cli_main(int argc, char **argv, FILE *out, FILE *err);

/* --- requests --------------------------------------------------------- */

struct cli_request;

/* Turns a 2xx reply into human output on ctx->out. `reply` is NULL for a
 * reply without a body (204). Returns 0, or -1 with *err (EPROTO) when the
 * reply does not have the expected shape. */
typedef int (*cli_render_fn)(struct cli_ctx *ctx, const struct cli_request *req,
			     const json_t *reply, struct error **err);

/* A request built from argv, before any I/O. */
struct cli_request {
	bool help;                 /* --help was given: print help, send nothing */
	bool json;                 /* --json was given after the command */
	bool ascii;                /* --ascii: no Unicode in what is drawn */
	const char *usage;         /* usage line(s) of the (sub)command; static */
	const char *help_text;     /* option descriptions; static, may be NULL */
	const char *method;        /* "GET", "POST", "PATCH", "DELETE"; static */
	char *path;                /* "/v1/tenants/acme"; owned */
	json_t *body;              /* owned reference, NULL for none */
	char *subject;             /* "acme": for human messages; owned, may be NULL */
	cli_render_fn render;
};

/* Free what a request owns and zero it (safe on a zeroed request). */
void cli_request_clear(struct cli_request *req);
static inline void cli_request_clearp(struct cli_request *req) { cli_request_clear(req); }

/* Send the request to vcpud and report the outcome: --json prints the JSON
 * received (errors too) on ctx->out, otherwise req->render; errors go to
 * ctx->err as "vcpuctl: MESSAGE". Returns an enum cli_exit. */
int cli_request_run(struct cli_ctx *ctx, const struct cli_request *req);

/* --- helpers for subcommands ------------------------------------------ */

/* Print "vcpuctl: " + the formatted message + newline on ctx->err. */
void cli_errorf(struct cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report a usage error: the message, the usage line and a hint to --help
 * (`help_cmd` = "vcpuctl tenant create"). Returns CLI_EXIT_USAGE. */
int cli_usage_error(struct cli_ctx *ctx, const char *msg, const char *usage,
		    const char *help_cmd);

/* Print `usage` and `help_text` (may be NULL) on f. */
void cli_print_help(FILE *f, const char *usage, const char *help_text);

/* After getopt_long() returned '?' or ':', describe the problem in *err
 * (EINVAL): unknown option, option needing a value, option taking none.
 * `opts` is the table that was passed to getopt_long(). Returns -1. */
int cli_getopt_error(int c, char **argv, const struct option *opts, struct error **err);

/* Print a JSON value on f with two-space indentation and a newline. */
void cli_print_json(FILE *f, const json_t *v);

/* --- talking to vcpud without a struct cli_request -------------------- */

enum {
	CLI_GET_JSON_ERRORS = 1 << 0,  /* print an error reply's JSON on ctx->out */
	CLI_GET_QUIET_404 = 1 << 1,    /* 404 "not_found": no message, just the code */
};

/* GET `path` from vcpud. On a 2xx reply *reply gets its JSON (a new
 * reference, NULL for an empty body) and 0 comes back. Otherwise the
 * failure is reported on ctx->err as cli_request_run() does (the same
 * code does both: the daemon unreachable names the socket) and the enum
 * cli_exit is returned, *reply NULL; with CLI_GET_QUIET_404 a 404 whose
 * code is "not_found" returns CLI_EXIT_NOT_FOUND without a word. */
int cli_get_json(struct cli_ctx *ctx, const char *path, unsigned flags, json_t **reply);

/* --- command lines ---------------------------------------------------- */

/* The getopt value of --json, which every command takes, and the first
 * value free for a command's own long options. */
enum { CLI_OPT_JSON = 256, CLI_OPT_FIRST };

/* The rows that end every option table: --json, -h/--help, the end. */
#define CLI_OPTS_COMMON \
	{ "json", no_argument, NULL, CLI_OPT_JSON }, \
	{ "help", no_argument, NULL, 'h' }, \
	{ NULL, 0, NULL, 0 }

/* Most rows an option table may have, the closing one included. */
#define CLI_ARGS_MAX 16

/* A command line as given, before any validation. The strings point into
 * argv. */
struct cli_args {
	const struct option *opts;          /* the table it was parsed against */
	const char *name;                   /* the positional argument, or NULL */
	const char *value[CLI_ARGS_MAX];    /* per row of opts: the last value
					     * given, "" for an option that takes
					     * none, NULL when it was not given */
};

/* Parse argv (argv[0] = the command's name) against `opts` (rows that set
 * no flag, ending with CLI_OPTS_COMMON; a row whose val is a letter is
 * also that short option, as 'h' is). Options may come before or after
 * the positional argument whatever POSIXLY_CORRECT says, "--" ends them;
 * of a repeated option the last wins. There may be one positional
 * argument, and only when takes_name. Returns 0, or -1 with *err (EINVAL):
 * unknown option, option needing a value or taking none (see
 * cli_getopt_error()), "unexpected argument 'ARG'". Resets getopt. */
int cli_args_parse(int argc, char **argv, const struct option *opts, bool takes_name,
		   struct cli_args *a, struct error **err);

/* The value of the option whose getopt value is `val` ("" for one without
 * a value), NULL when it was not given or is not in the table. */
const char *cli_arg(const struct cli_args *a, int val);

static inline bool cli_arg_set(const struct cli_args *a, int val)
{
	return cli_arg(a, val) != NULL;
}

/* --- commands made of subcommands (tenant, vm) -------------------------- */

/* `vcpuctl GROUP SUB [NAME] [OPTIONS]`: one row of a group's table. */
struct cli_sub {
	const char *name;           /* "create" */
	const char *usage;          /* its usage line(s); static */
	const char *help;           /* its option descriptions; static */
	const struct option *opts;  /* its options, ending with CLI_OPTS_COMMON */
	bool takes_name;            /* NAME is required (a URL-safe name) */
	/* Fill out->method, path, body and render from the options;
	 * out->subject holds NAME already. Returns 0, or -1 with *err (EINVAL
	 * or ERANGE: a usage error); what it put in *out is then dropped. */
	int (*build)(const struct cli_args *a, struct cli_request *out, struct error **err);
};

struct cli_group {
	const char *name;           /* "tenant": "vcpuctl tenant", "missing tenant command" */
	const char *noun;           /* "tenant", "VM": "missing VM NAME", name_check("VM name") */
	const char *usage;          /* the usage lines of all its subcommands */
	const char *help;           /* after them in `vcpuctl GROUP help`; may be NULL */
	const char *names_help;     /* what NAME may be: shown with the group's help
				     * and a NAME-taking subcommand's --help */
	bool names_in_help_sub;     /* `vcpuctl GROUP help SUB` shows names_help
				     * too (vm's does, tenant's never has) */
	const struct cli_sub *subs;
	size_t n_subs;
};

/* Build the request for `vcpuctl GROUP SUB ...`; argv[0] is SUB. Options
 * may come before or after NAME; NAME is checked with name_check(), the
 * rest by the row's build().
 * Returns 0 with *out filled (out->help set means "print help, send
 * nothing"), or -1 with *err (EINVAL or ERANGE: a usage error) and
 * out->usage set to the usage line to show. Either way the caller calls
 * cli_request_clear(out). */
int cli_group_build(const struct cli_group *g, int argc, char **argv, struct cli_request *out,
		    struct error **err);

/* The whole of `vcpuctl GROUP ...` (argv[0] = GROUP): `help [SUB]`,
 * --help, usage errors, then cli_request_run(). Returns an enum cli_exit. */
int cli_group_run(struct cli_ctx *ctx, const struct cli_group *g, int argc, char **argv);

#endif
