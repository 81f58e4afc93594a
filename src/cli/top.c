/* top.c - `vcpuctl top [--once] [--interval SECONDS] [--json]`: what the
 * throttler saw at its last tick, per VM, from GET /v1/top. On a terminal
 * the table is redrawn in place every interval until Ctrl-C; into a pipe
 * successive tables follow each other, separated by a blank line, until
 * the reader goes away. Also the renderers of a VM's recent samples that
 * `vm show` and `vm stats` (vm.c) use.
 *
 * Pure parts first (argv -> options, JSON -> text), then the loop. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/events.h"
#include "cli/output.h"
#include "cli/top.h"
#include "vcpud/util.h"

/* --- options ---------------------------------------------------------- */

static const char usage[] = "usage: vcpuctl top [--once] [--interval SECONDS] [--json]";

static const char help_text[] =
	"Per VM, what vcpud's control loop measured at its last tick: CPU usage\n"
	"(% of one pCPU, summed over the vCPUs: 2 vCPUs flat out is 200.0), steal\n"
	"(% of the time its vCPUs were runnable but waiting, mean over the vCPUs),\n"
	"the throttler's cap on it (% of one pCPU, \"-\" for none) and what the\n"
	"throttler does with it (none, victim, capped, hold; would-cap in dry-run).\n"
	"\"-\": no valid sample yet. Rows by steal, highest first.\n"
	"\n"
	"On a terminal the table is redrawn every interval until Ctrl-C; otherwise\n"
	"tables follow each other, separated by a blank line.\n"
	"\n"
	"Options:\n"
	"  --once               print one table and exit\n"
	"  --interval SECONDS   time between refreshes (0.1..3600, default 1)\n"
	"  --json               print the API's JSON once (implies --once)\n"
	"  -h, --help           this help\n";

enum { OPT_ONCE = CLI_OPT_FIRST, OPT_INTERVAL };

int cli_top_parse(int argc, char **argv, struct cli_top_opts *o, struct error **err)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		CLI_OPTS_COMMON
	};
	struct cli_args a;
	memset(o, 0, sizeof(*o));
	o->interval_ms = CLI_TOP_INTERVAL_DEFAULT_MS;
	if (cli_args_parse(argc, argv, opts, false, &a, err) < 0)
		return -1;
	o->help = cli_arg_set(&a, 'h');
	o->json = cli_arg_set(&a, CLI_OPT_JSON);
	o->once = cli_arg_set(&a, OPT_ONCE) || o->json;
	if (o->help)
		return 0;
	const char *interval = cli_arg(&a, OPT_INTERVAL);
	if (interval) {
		double s;
		if (parse_double(interval, CLI_TOP_INTERVAL_MIN_S, CLI_TOP_INTERVAL_MAX_S, &s,
				 err) < 0)
			return error_wrap(err, "--interval");
		o->interval_ms = llround(s * 1000);
	}
	return 0;
}

/* --- rendering: top ----------------------------------------------------- */

/* A figure: a number, or null/missing (unknown). Anything else is EPROTO. */
static int figure(const json_t *obj, const char *key, const char *what, size_t i, bool *has,
		  double *v, struct error **err)
{
	const json_t *x = json_object_get(obj, key);
	*has = json_is_number(x);
	*v = *has ? json_number_value(x) : 0;
	if (x && !*has && !json_is_null(x))
		return error_set(err, EPROTO, "\"%s\" of %s %zu is not a number", key, what, i + 1);
	return 0;
}

static int opt_string(const json_t *obj, const char *key, const char *what, size_t i,
		      const char **out, struct error **err)
{
	const json_t *x = json_object_get(obj, key);
	if (x && !json_is_string(x) && !json_is_null(x))
		return error_set(err, EPROTO, "\"%s\" of %s %zu is not a string", key, what, i + 1);
	const char *s = json_string_value(x);
	*out = s && *s ? s : "-";
	return 0;
}

struct top_row {
	const char *name, *tenant, *cls, *state, *throttle;
	bool has_vcpus, has_usage, has_steal, has_cap;
	json_int_t vcpus;
	double usage, steal, cap;
};

static int top_row_from_json(const json_t *vm, size_t i, struct top_row *r, struct error **err)
{
	if (!json_is_object(vm))
		return error_set(err, EPROTO, "VM %zu is not an object", i + 1);
	r->name = json_string_value(json_object_get(vm, "name"));
	if (!r->name || !*r->name)
		return error_set(err, EPROTO, "VM %zu has no \"name\"", i + 1);
	const json_t *vcpus = json_object_get(vm, "vcpus");
	if (vcpus && !json_is_integer(vcpus) && !json_is_null(vcpus))
		return error_set(err, EPROTO, "\"vcpus\" of VM %zu is not an integer", i + 1);
	r->has_vcpus = json_is_integer(vcpus);
	r->vcpus = json_integer_value(vcpus);
	if (opt_string(vm, "tenant", "VM", i, &r->tenant, err) < 0 ||
	    opt_string(vm, "class", "VM", i, &r->cls, err) < 0 ||
	    opt_string(vm, "state", "VM", i, &r->state, err) < 0 ||
	    opt_string(vm, "throttle", "VM", i, &r->throttle, err) < 0 ||
	    figure(vm, "usage_pct", "VM", i, &r->has_usage, &r->usage, err) < 0 ||
	    figure(vm, "steal_pct", "VM", i, &r->has_steal, &r->steal, err) < 0 ||
	    figure(vm, "cap_pct", "VM", i, &r->has_cap, &r->cap, err) < 0)
		return -1;
	return 0;
}

/* Steal, highest first, unknown last; then name. */
static int top_row_cmp(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;
	if (x->has_steal != y->has_steal)
		return x->has_steal ? -1 : 1;
	if (x->has_steal && x->steal != y->steal)
		return x->steal > y->steal ? -1 : 1;
	return strcmp(x->name, y->name);
}

static char *fig_str(bool has, double v, const char *suffix)
{
	return has ? xasprintf("%.1f%s", v, suffix) : xstrdup("-");
}

static char *int_field_str(const json_t *obj, const char *key)
{
	const json_t *x = json_object_get(obj, key);
	return json_is_integer(x) ? xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(x))
				  : xstrdup("-");
}

int cli_top_render(FILE *f, const json_t *reply, struct error **err)
{
	if (!json_is_object(reply))
		return error_set(err, EPROTO, "the reply is not an object");
	const json_t *vms = json_object_get(reply, "vms");
	if (!json_is_array(vms))
		return error_set(err, EPROTO, "no \"vms\" array in the reply");
	size_t n = json_array_size(vms);
	_cleanup_free_ struct top_row *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++)
		if (top_row_from_json(json_array_get(vms, i), i, &rows[i], err) < 0)
			return -1;
	qsort(rows, n, sizeof(*rows), top_row_cmp);

	const json_t *ts = json_object_get(reply, "ts_ms");
	_cleanup_free_ char *when = json_is_integer(ts)
		? output_time(json_integer_value(ts) / 1000) : xstrdup("-");
	_cleanup_free_ char *tick = int_field_str(reply, "tick");
	fprintf(f, "%s  tick %s  %zu VM%s%s\n", when, tick, n, n == 1 ? "" : "s",
		json_is_true(json_object_get(reply, "dry_run")) ? "  (dry-run)" : "");
	if (n == 0) {
		fputs("no VMs\n", f);
		return 0;
	}
	static const char *const headers[] = {
		"VM", "TENANT", "CLASS", "VCPUS", "USAGE%", "STEAL%", "CAP", "THROTTLE", "STATE",
	};
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < n; i++) {
		const struct top_row *r = &rows[i];
		_cleanup_free_ char *vcpus = r->has_vcpus
			? xasprintf("%" JSON_INTEGER_FORMAT, r->vcpus) : xstrdup("-");
		_cleanup_free_ char *usage_s = fig_str(r->has_usage, r->usage, "");
		_cleanup_free_ char *steal = fig_str(r->has_steal, r->steal, "");
		_cleanup_free_ char *cap = fig_str(r->has_cap, r->cap, "%");
		table_row(t);
		table_cell(t, "%s", r->name);
		table_cell(t, "%s", r->tenant);
		table_cell(t, "%s", r->cls);
		table_cell(t, "%s", vcpus);
		table_cell(t, "%s", usage_s);
		table_cell(t, "%s", steal);
		table_cell(t, "%s", cap);
		table_cell(t, "%s", r->throttle);
		table_cell(t, "%s", r->state);
	}
	table_print(t, f);
	return 0;
}

/* --- rendering: a VM's samples ------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

struct sample {
	int64_t ts_ms;
	bool has_usage, has_steal, has_cap;
	double usage, steal, cap;
};

static int sample_from_json(const json_t *s, size_t i, struct sample *out, struct error **err)
{
	if (!json_is_object(s))
		return error_set(err, EPROTO, "sample %zu is not an object", i + 1);
	const json_t *ts = json_object_get(s, "ts_ms");
	if (!json_is_integer(ts) || json_integer_value(ts) < 0)
		return error_set(err, EPROTO, "sample %zu has no integer \"ts_ms\" >= 0", i + 1);
	out->ts_ms = json_integer_value(ts);
	if (figure(s, "usage_pct", "sample", i, &out->has_usage, &out->usage, err) < 0 ||
	    figure(s, "steal_pct", "sample", i, &out->has_steal, &out->steal, err) < 0 ||
	    figure(s, "cap_pct", "sample", i, &out->has_cap, &out->cap, err) < 0)
		return -1;
	return 0;
}

/* --- sparklines ------------------------------------------------------------ */

static const char *const blocks[] = { "\u2581", "\u2582", "\u2583", "\u2584", "\u2585",
				      "\u2586", "\u2587", "\u2588" };
static const char ascii_levels[] = "_.-=+*#@";

/* One character for v in [0, top] (8 levels), "none" when !has. */
static void spark_put(FILE *f, bool ascii, bool has, double v, double top, const char *none)
{
	if (!has) {
		fputs(none, f);
		return;
	}
	int k = top > 0 ? (int)floor(v / top * 8) : 0;
	k = k < 0 ? 0 : k > 7 ? 7 : k;
	if (ascii)
		fputc(ascii_levels[k], f);
	else
		fputs(blocks[k], f);
}

int cli_sparklines_print(FILE *f, const json_t *stats, size_t width, bool ascii,
			 struct error **err)
{
	const json_t *arr = json_object_get(stats, "samples");
	if (!json_is_array(arr))
		return error_set(err, EPROTO, "no \"samples\" array in the reply");
	size_t n = json_array_size(arr), first = n > width ? n - width : 0;
	if (n == 0)
		return 0;
	_cleanup_free_ struct sample *s = xcalloc(n - first, sizeof(*s));
	double cap_top = 0, usage_top = 0;
	bool any_cap = false;
	for (size_t i = first; i < n; i++) {
		struct sample *x = &s[i - first];
		if (sample_from_json(json_array_get(arr, i), i, x, err) < 0)
			return -1;
		if (x->has_cap && x->cap > cap_top)
			cap_top = x->cap;
		if (x->has_usage && x->usage > usage_top)
			usage_top = x->usage;
		any_cap |= x->has_cap;
	}
	size_t m = n - first;
	char label[32];
	fprintf(f, "%-21s", "steal  0-100%");
	for (size_t i = 0; i < m; i++)
		spark_put(f, ascii, s[i].has_steal, s[i].steal, 100, " ");
	snprintf(label, sizeof(label), "usage  0-%.0f%%", usage_top);
	fprintf(f, "\n%-21s", label);
	for (size_t i = 0; i < m; i++)
		spark_put(f, ascii, s[i].has_usage, s[i].usage, usage_top, " ");
	if (any_cap) {
		snprintf(label, sizeof(label), "cap    0-%.0f%%", cap_top);
		fprintf(f, "\n%-21s", label);
		for (size_t i = 0; i < m; i++)
			spark_put(f, ascii, s[i].has_cap, s[i].cap, cap_top, ascii ? "." : "\u00b7");
	} else {
		fputs("\ncap    never capped in these samples", f);
	}
	fprintf(f, "\n       (the last %zu ticks, oldest first)\n", m);
	return 0;
}

static int minute_cmp(const void *a, const void *b)
{
	const struct cli_history_minute *x = a, *y = b;
	return (x->minute_ms > y->minute_ms) - (x->minute_ms < y->minute_ms);
}

int cli_history_summarize(const json_t *samples, struct cli_history_minute **out, size_t *n,
			  struct error **err)
{
	*out = NULL;
	*n = 0;
	if (!json_is_array(samples))
		return error_set(err, EPROTO, "no \"samples\" array in the reply");
	size_t count = json_array_size(samples), nm = 0;
	if (count == 0)
		return 0;
	_cleanup_free_ struct cli_history_minute *m = xcalloc(count, sizeof(*m));
	for (size_t i = 0; i < count; i++) {
		struct sample s;
		if (sample_from_json(json_array_get(samples, i), i, &s, err) < 0)
			return -1;
		int64_t minute = floor_div(s.ts_ms, 60000) * 60000;
		/* samples come oldest first: the bucket is nearly always the last */
		struct cli_history_minute *b = NULL;
		for (size_t k = nm; k-- > 0;)
			if (m[k].minute_ms == minute) {
				b = &m[k];
				break;
			}
		if (!b) {
			b = &m[nm++];
			b->minute_ms = minute;
		}
		b->samples++;
		if (s.has_usage) {
			b->usage_mean += s.usage; /* a sum until the end */
			b->n_usage++;
		}
		if (s.has_steal) {
			b->steal_mean += s.steal;
			if (b->n_steal == 0 || s.steal > b->steal_max)
				b->steal_max = s.steal;
			b->n_steal++;
		}
	}
	for (size_t k = 0; k < nm; k++) {
		if (m[k].n_usage)
			m[k].usage_mean /= m[k].n_usage;
		if (m[k].n_steal)
			m[k].steal_mean /= m[k].n_steal;
	}
	qsort(m, nm, sizeof(*m), minute_cmp);
	*out = steal_ptr(&m);
	*n = nm;
	return 0;
}

static const json_t *stats_samples(const json_t *stats, struct error **err)
{
	const json_t *arr = json_object_get(stats, "samples");
	if (!json_is_array(arr)) {
		error_set(err, EPROTO, "no \"samples\" array in the reply");
		return NULL;
	}
	return arr;
}

/* Samples from index `from` on as a table TIME USAGE% STEAL%. The array
 * has been checked by cli_history_summarize() or sample_from_json(). */
static void samples_table(FILE *f, const json_t *arr, size_t from)
{
	static const char *const headers[] = { "TIME", "USAGE%", "STEAL%" };
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = from; i < json_array_size(arr); i++) {
		struct sample s;
		if (sample_from_json(json_array_get(arr, i), i, &s, NULL) < 0)
			continue;
		_cleanup_free_ char *when = output_time(s.ts_ms / 1000);
		_cleanup_free_ char *u = fig_str(s.has_usage, s.usage, "");
		_cleanup_free_ char *st = fig_str(s.has_steal, s.steal, "");
		table_row(t);
		table_cell(t, "%s", when);
		table_cell(t, "%s", u);
		table_cell(t, "%s", st);
	}
	table_print(t, f);
}

int cli_history_print(FILE *f, const json_t *stats, size_t last_n, struct error **err)
{
	const json_t *arr = stats_samples(stats, err);
	if (!arr)
		return -1;
	_cleanup_free_ struct cli_history_minute *m = NULL;
	size_t nm;
	if (cli_history_summarize(arr, &m, &nm, err) < 0)
		return -1;
	if (nm == 0) {
		fputs("no samples yet\n", f);
		return 0;
	}
	static const char *const headers[] = {
		"MINUTE", "SAMPLES", "USAGE%", "STEAL%", "STEAL-MAX%",
	};
	_cleanup_(table_freep) struct table *t = table_new(ARRAY_SIZE(headers), headers);
	for (size_t k = 0; k < nm; k++) {
		_cleanup_free_ char *when = output_time(m[k].minute_ms / 1000);
		_cleanup_free_ char *u = fig_str(m[k].n_usage > 0, m[k].usage_mean, "");
		_cleanup_free_ char *sm = fig_str(m[k].n_steal > 0, m[k].steal_mean, "");
		_cleanup_free_ char *sx = fig_str(m[k].n_steal > 0, m[k].steal_max, "");
		table_row(t);
		table_cell(t, "%s", when);
		table_cell(t, "%u", m[k].samples);
		table_cell(t, "%s", u);
		table_cell(t, "%s", sm);
		table_cell(t, "%s", sx);
	}
	table_print(t, f);
	size_t n = json_array_size(arr);
	size_t show = last_n < n ? last_n : n;
	if (show == 0)
		return 0;
	fprintf(f, "\nlast %zu sample%s:\n", show, show == 1 ? "" : "s");
	samples_table(f, arr, n - show);
	return 0;
}

int cli_samples_print(FILE *f, const json_t *stats, struct error **err)
{
	const json_t *arr = stats_samples(stats, err);
	if (!arr)
		return -1;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		struct sample s;
		if (sample_from_json(json_array_get(arr, i), i, &s, err) < 0)
			return -1;
	}
	if (json_array_size(arr) == 0) {
		fputs("no samples yet\n", f);
		return 0;
	}
	samples_table(f, arr, 0);
	return 0;
}

/* --- the command ---------------------------------------------------------- */

static const char top_path[] = "/v1/top";

/* One table, rendered in memory: *text (caller frees) is printed only
 * whole. Returns an enum cli_exit; errors are reported. */
static int top_frame(struct cli_ctx *ctx, char **text)
{
	json_t *reply = NULL;
	*text = NULL;
	int rc = cli_get_json(ctx, top_path, 0, &reply);
	if (rc != CLI_EXIT_OK)
		return rc;
	_cleanup_error_ struct error *err = NULL;
	size_t len;
	FILE *m = open_memstream(text, &len);
	if (!m)
		abort();
	int r = cli_top_render(m, reply, &err);
	fclose(m);
	json_decref(reply);
	if (r < 0) {
		cli_errorf(ctx, "unexpected reply from vcpud to GET %s: %s", top_path, err->msg);
		free(*text);
		*text = NULL;
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* Refresh until SIGINT/SIGTERM (exit 0), an error, or the reader of a
 * pipe going away (exit 0, nothing said). */
static int top_loop(struct cli_ctx *ctx, const struct cli_top_opts *o)
{
	bool tty = isatty(fileno(ctx->out)) == 1;
	int rc = CLI_EXIT_OK;
	for (unsigned long frame = 0; !cli_watch_stopped(); frame++) {
		_cleanup_free_ char *text = NULL;
		rc = top_frame(ctx, &text);
		if (rc != CLI_EXIT_OK)
			break;
		if (tty)
			fputs("\033[H\033[2J", ctx->out); /* home, clear screen */
		else if (frame > 0)
			fputc('\n', ctx->out);
		fputs(text, ctx->out);
		int w = cli_watch_flush(ctx->out);
		if (w == 1)
			break;
		if (w < 0) {
			cli_errorf(ctx, "cannot write output: %s", strerror(errno));
			rc = CLI_EXIT_ERROR;
			break;
		}
		if (cli_watch_sleep(o->interval_ms))
			break;
	}
	return rc;
}

static int top_run(struct cli_ctx *ctx, int argc, char **argv)
{
	struct cli_top_opts o;
	_cleanup_error_ struct error *err = NULL;
	if (cli_top_parse(argc, argv, &o, &err) < 0)
		return cli_usage_error(ctx, err->msg, usage, "vcpuctl top");
	if (o.help) {
		cli_print_help(ctx->out, usage, help_text);
		return CLI_EXIT_OK;
	}
	if (o.json || ctx->json) {
		json_t *reply = NULL;
		int rc = cli_get_json(ctx, top_path, CLI_GET_JSON_ERRORS, &reply);
		if (reply) {
			cli_print_json(ctx->out, reply);
			json_decref(reply);
		}
		return rc;
	}
	if (o.once) {
		_cleanup_free_ char *text = NULL;
		int rc = top_frame(ctx, &text);
		if (text)
			fputs(text, ctx->out);
		return rc;
	}
	struct cli_watch w;
	cli_watch_begin(&w);
	int rc = top_loop(ctx, &o);
	cli_watch_end(&w);
	return rc;
}

const struct cli_command cli_cmd_top = {
	.name = "top",
	.summary = "VMs by steal: usage, steal, caps; refreshed until Ctrl-C",
	.run = top_run,
};
