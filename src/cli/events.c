/* events.c - `vcpuctl events [--since T] [--follow] [--limit N] [--json]`:
 * the audit log, read page by page with after=ID (the API gives at most
 * 10000 events a request), printed as a table or as NDJSON, and with
 * --follow polled every second until SIGINT/SIGTERM.
 *
 * Also home of what the watching commands share (see events.h): --since
 * parsing, and the signal and EPIPE handling of output loops. The order
 * is: pure parsers and renderers, then the I/O. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/events.h"
#include "cli/output.h"
#include "vcpud/util.h"

/* --- --since ---------------------------------------------------------- */

static const char since_forms[] =
	"use a duration (90s, 10m, 2h, 1d), unix seconds or a UTC time like "
	"2026-11-27T22:00:00Z";

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits at *p, moved past them. */
static bool take_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool take_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): no timegm(), no TZ. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS][Z]]" as unix seconds; -1 when s is not one. */
static int parse_iso(const char *s, int64_t *out_s, struct error **err)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	if (!take_digits(&p, 4, &y) || !take_char(&p, '-') || !take_digits(&p, 2, &mo) ||
	    !take_char(&p, '-') || !take_digits(&p, 2, &d))
		return error_set(err, EINVAL, "invalid time '%s': %s", s, since_forms);
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!take_digits(&p, 2, &h) || !take_char(&p, ':') || !take_digits(&p, 2, &mi))
			return error_set(err, EINVAL, "invalid time '%s': %s", s, since_forms);
		if (take_char(&p, ':') && !take_digits(&p, 2, &sec))
			return error_set(err, EINVAL, "invalid time '%s': %s", s, since_forms);
		if (*p == 'Z' || *p == 'z')
			p++;
	}
	if (*p != '\0')
		return error_set(err, EINVAL, "invalid time '%s': %s (times are UTC: no "
				 "offsets, no fractions of a second)", s, since_forms);
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 59)
		return error_set(err, EINVAL, "invalid time '%s': no such date or time of day", s);
	if (y < 1970)
		return error_set(err, ERANGE, "time '%s' is before 1970", s);
	*out_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

int cli_since_parse(const char *s, int64_t now_ms, int64_t *out_ms, struct error **err)
{
	if (!s || !*s)
		return error_set(err, EINVAL, "invalid time '': %s", since_forms);
	size_t nd = strspn(s, "0123456789");

	if (nd == 4 && s[4] == '-') {
		int64_t secs = 0;
		if (parse_iso(s, &secs, err) < 0)
			return -1;
		if (secs > CLI_SINCE_MAX_S)
			return error_set(err, ERANGE, "time '%s' is after 9999", s);
		*out_ms = secs * 1000;
		return 0;
	}
	if (nd == 0)
		return error_set(err, EINVAL, "invalid time '%s': %s", s, since_forms);

	/* digits, then nothing (unix seconds) or one unit (a duration) */
	int64_t unit_ms = 0;
	if (s[nd] != '\0') {
		switch (s[nd]) {
		case 's': unit_ms = 1000; break;
		case 'm': unit_ms = 60 * 1000; break;
		case 'h': unit_ms = 3600 * 1000; break;
		case 'd': unit_ms = 86400 * 1000; break;
		default: break;
		}
		if (!unit_ms || s[nd + 1] != '\0')
			return error_set(err, EINVAL, "invalid time '%s': %s", s, since_forms);
	}
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	bool overflow = errno == ERANGE;
	if (!unit_ms) {
		if (overflow || v > (unsigned long long)CLI_SINCE_MAX_S)
			return error_set(err, ERANGE, "unix time %s is after 9999", s);
		*out_ms = (int64_t)v * 1000;
		return 0;
	}
	if (overflow || v > (unsigned long long)(INT64_MAX / unit_ms) ||
	    (int64_t)v * unit_ms > now_ms)
		return error_set(err, ERANGE, "duration %s reaches back before 1970", s);
	*out_ms = now_ms - (int64_t)v * unit_ms;
	return 0;
}

/* --- watching --------------------------------------------------------- */

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

void cli_watch_begin(struct cli_watch *w)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a sleep ends when the signal comes */
	watch_stop = 0;
	sigaction(SIGINT, &sa, &w->old_int);
	sigaction(SIGTERM, &sa, &w->old_term);
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &w->old_pipe);
}

void cli_watch_end(struct cli_watch *w)
{
	sigaction(SIGINT, &w->old_int, NULL);
	sigaction(SIGTERM, &w->old_term, NULL);
	sigaction(SIGPIPE, &w->old_pipe, NULL);
	watch_stop = 0;
}

bool cli_watch_stopped(void)
{
	return watch_stop != 0;
}

bool cli_watch_sleep(int64_t ms)
{
	/* in slices, so that a signal landing just before nanosleep() is
	 * noticed within one slice and not after the whole interval */
	int64_t end = now_mono_ns() + ms * 1000000;
	while (!watch_stop) {
		int64_t left = end - now_mono_ns();
		if (left <= 0)
			break;
		if (left > 50 * 1000000)
			left = 50 * 1000000;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)left };
		nanosleep(&ts, NULL);
	}
	return watch_stop != 0;
}

int cli_watch_flush(FILE *f)
{
	errno = 0;
	if (fflush(f) == 0 && !ferror(f))
		return 0;
	if (errno == EPIPE) {
		/* the buffer is gone with the reader: clear the flag so that a
		 * later fflush() (main's) has nothing left to fail on */
		clearerr(f);
		return 1;
	}
	if (errno == 0)
		errno = EIO;
	return -1;
}

/* --- events: parsing --------------------------------------------------- */

static const char usage[] =
	"usage: vcpuctl events [--since T] [--follow] [--limit N] [--json]";

static const char help_text[] =
	"The audit log: who changed what, and the throttler's decisions, oldest first.\n"
	"\n"
	"Options:\n"
	"  --since T          only events from T on; T is a duration back from now\n"
	"                     (90s, 10m, 2h, 1d), unix seconds (1795816800) or a UTC\n"
	"                     time (2026-11-27T22:00:00Z; the Z may be left out, the\n"
	"                     time is UTC either way)\n"
	"  -f, --follow       then wait for new events and print them as they come\n"
	"                     (checked every second) until Ctrl-C\n"
	"  --limit N          only the N most recent of those events (1..1000000);\n"
	"                     with --follow, of the ones already logged\n"
	"  --json             NDJSON: each event as one compact JSON object on its own\n"
	"                     line ({\"id\",\"ts_ms\",\"actor\",\"action\",\"target\",\n"
	"                     \"details\"}), also with --follow; nothing for no events\n"
	"  -h, --help         this help\n"
	"\n"
	"TIME is UTC. DETAILS is the event's details as compact JSON, cut to 100\n"
	"characters (ending in \"...\"); --json has them whole.\n";

enum { OPT_SINCE = CLI_OPT_FIRST, OPT_LIMIT };

int cli_events_parse(int argc, char **argv, int64_t now_ms, struct cli_events_opts *o,
		     struct error **err)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "follow", no_argument, NULL, 'f' },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		CLI_OPTS_COMMON
	};
	struct cli_args a;
	memset(o, 0, sizeof(*o));
	if (cli_args_parse(argc, argv, opts, false, &a, err) < 0)
		return -1;
	o->help = cli_arg_set(&a, 'h');
	o->follow = cli_arg_set(&a, 'f');
	o->json = cli_arg_set(&a, CLI_OPT_JSON);
	if (o->help)
		return 0;
	const char *since = cli_arg(&a, OPT_SINCE), *limit = cli_arg(&a, OPT_LIMIT);
	if (since) {
		if (cli_since_parse(since, now_ms, &o->since_ms, err) < 0)
			return error_wrap(err, "--since");
		o->since_set = true;
	}
	if (limit) {
		uint64_t n;
		if (parse_u64(limit, 1, CLI_EVENTS_LIMIT_MAX, &n, err) < 0)
			return error_wrap(err, "--limit");
		o->limit = (size_t)n;
	}
	return 0;
}

char *cli_events_path(const struct cli_events_opts *o, int64_t after_id)
{
	_cleanup_free_ char *since = o->since_set
		? xasprintf("&since_ms=%" PRId64, o->since_ms) : xstrdup("");
	_cleanup_free_ char *after = after_id > 0
		? xasprintf("&after=%" PRId64, after_id) : xstrdup("");
	return xasprintf("/v1/events?limit=%d%s%s", CLI_EVENTS_PAGE, since, after);
}

/* --- events: rendering ------------------------------------------------- */

static int check_string(const json_t *ev, const char *key, size_t i, struct error **err)
{
	const json_t *v = json_object_get(ev, key);
	if (v && !json_is_string(v) && !json_is_null(v))
		return error_set(err, EPROTO, "\"%s\" of event %zu is not a string", key, i + 1);
	return 0;
}

int cli_events_from_reply(const json_t *reply, const json_t **events, struct error **err)
{
	const json_t *arr = json_object_get(reply, "events");
	if (!json_is_array(arr))
		return error_set(err, EPROTO, "no \"events\" array in the reply");
	json_int_t last = 0;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *ev = json_array_get(arr, i);
		if (!json_is_object(ev))
			return error_set(err, EPROTO, "event %zu is not an object", i + 1);
		const json_t *id = json_object_get(ev, "id");
		if (!json_is_integer(id) || json_integer_value(id) <= 0)
			return error_set(err, EPROTO, "event %zu has no positive integer \"id\"",
					 i + 1);
		if (!json_is_integer(json_object_get(ev, "ts_ms")))
			return error_set(err, EPROTO, "event %zu has no integer \"ts_ms\"", i + 1);
		if (json_integer_value(id) <= last)
			return error_set(err, EPROTO, "event ids are not increasing (%" JSON_INTEGER_FORMAT
					 " after %" JSON_INTEGER_FORMAT ")",
					 json_integer_value(id), last);
		last = json_integer_value(id);
		if (check_string(ev, "actor", i, err) < 0 || check_string(ev, "action", i, err) < 0 ||
		    check_string(ev, "target", i, err) < 0)
			return -1;
	}
	*events = arr;
	return 0;
}

char *cli_events_pruned_note(const json_t *reply, int64_t after_id)
{
	if (!json_is_true(json_object_get(reply, "pruned")))
		return NULL;
	const json_t *o = json_object_get(reply, "oldest_id");
	if (!json_is_integer(o) || json_integer_value(o) - 1 <= after_id)
		return NULL;
	int64_t first = after_id + 1, last = (int64_t)json_integer_value(o) - 1;
	static const char why[] = "by the log's retention (policy events.*) before being read";
	if (first == last)
		return xasprintf("note: 1 event (id %" PRId64 ") was deleted %s", first, why);
	return xasprintf("note: %" PRId64 " events (ids %" PRId64 "..%" PRId64 ") were "
			 "deleted %s", last - first + 1, first, last, why);
}

char *cli_events_details(const json_t *details, size_t max_chars)
{
	if (!details || json_is_null(details) ||
	    (json_is_object(details) && json_object_size(details) == 0))
		return xstrdup("-");
	/* in the server's key order (most telling first), 10 digits so that
	 * 24.8 does not print as 24.800000000000001 */
	_cleanup_free_ char *s = json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY |
						     JSON_REAL_PRECISION(10));
	if (!s)
		return xstrdup("?");
	/* count characters, not bytes: UTF-8 continuation bytes are 10xxxxxx */
	size_t chars = 0;
	for (const char *p = s; *p; p++)
		chars += ((unsigned char)*p & 0xC0) != 0x80;
	if (chars <= max_chars)
		return steal_ptr(&s);
	size_t keep = max_chars > 3 ? max_chars - 3 : 0, n = 0;
	const char *p = s;
	for (; *p; p++) {
		if (((unsigned char)*p & 0xC0) != 0x80) {
			if (n == keep)
				break;
			n++;
		}
	}
	return xasprintf("%.*s...", (int)(p - s), s);
}

static const char *field(const json_t *ev, const char *key)
{
	const char *s = json_string_value(json_object_get(ev, key));
	return s && *s ? s : "-";
}

/* Widths of the variable columns: wide enough for the header and the
 * first batch, within reason (a long value shifts its row, not all). */
#define EVENTS_COL_MAX 40

static int col_width(const json_t *events, const char *key, const char *header)
{
	size_t w = strlen(header);
	for (size_t i = 0; i < json_array_size(events); i++) {
		size_t n = strlen(field(json_array_get(events, i), key));
		if (n > w)
			w = n;
	}
	return (int)(w > EVENTS_COL_MAX ? EVENTS_COL_MAX : w);
}

void cli_events_print(FILE *f, const json_t *events, bool json,
		      struct cli_events_layout *l)
{
	size_t n = json_array_size(events);
	if (json) {
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *s = json_dumps(json_array_get(events, i),
							    JSON_COMPACT | JSON_REAL_PRECISION(10));
			if (s)
				fprintf(f, "%s\n", s);
		}
		return;
	}
	if (n == 0)
		return;
	if (!l->header_done) {
		l->actor = col_width(events, "actor", "ACTOR");
		l->action = col_width(events, "action", "ACTION");
		l->target = col_width(events, "target", "TARGET");
		fprintf(f, "%-20s  %-*s  %-*s  %-*s  %s\n", "TIME", l->actor, "ACTOR", l->action,
			"ACTION", l->target, "TARGET", "DETAILS");
		l->header_done = true;
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *ev = json_array_get(events, i);
		json_int_t ts_ms = json_integer_value(json_object_get(ev, "ts_ms"));
		/* floor, so that a time never prints as the second after */
		json_int_t secs = ts_ms >= 0 ? ts_ms / 1000 : -((-ts_ms + 999) / 1000);
		_cleanup_free_ char *t = output_time(secs);
		_cleanup_free_ char *d = cli_events_details(json_object_get(ev, "details"),
							    CLI_EVENTS_DETAILS_MAX);
		fprintf(f, "%-20s  %-*s  %-*s  %-*s  %s\n", t, l->actor, field(ev, "actor"),
			l->action, field(ev, "action"), l->target, field(ev, "target"), d);
	}
}

/* --- events: the command ---------------------------------------------- */

static int64_t now_ms(void)
{
	return now_real_ns() / 1000000;
}

/* One page after `after`: *page is the reply (caller decrefs), *events its
 * array, *after moved to its last id. Returns an enum cli_exit. */
static int fetch_page(struct cli_ctx *ctx, const struct cli_events_opts *o, int64_t *after,
		      json_t **page, const json_t **events)
{
	_cleanup_free_ char *path = cli_events_path(o, *after);
	_cleanup_error_ struct error *err = NULL;
	int rc = cli_get_json(ctx, path, 0, page);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (cli_events_from_reply(*page, events, &err) < 0) {
		cli_errorf(ctx, "unexpected reply from vcpud to GET %s: %s", path, err->msg);
		json_decref(*page);
		*page = NULL;
		return CLI_EXIT_ERROR;
	}
	_cleanup_free_ char *note = cli_events_pruned_note(*page, *after);
	if (note)
		cli_errorf(ctx, "%s", note);
	size_t n = json_array_size(*events);
	if (n > 0)
		*after = json_integer_value(json_object_get(json_array_get(*events, n - 1), "id"));
	return CLI_EXIT_OK;
}

/* After a batch: 0 go on, OUT_GONE stop quietly (the reader has gone),
 * else an exit code. */
enum { OUT_GONE = -1 };

static int flush_out(struct cli_ctx *ctx)
{
	int r = cli_watch_flush(ctx->out);
	if (r < 0) {
		cli_errorf(ctx, "cannot write output: %s", strerror(errno));
		return CLI_EXIT_ERROR;
	}
	return r == 1 ? OUT_GONE : 0;
}

/* Keep the last `limit` events of `keep` (amortised: trimmed when twice
 * as long). */
static json_t *keep_last(json_t *keep, size_t limit, bool force)
{
	size_t n = json_array_size(keep);
	if (n <= limit || (!force && n < 2 * limit))
		return keep;
	json_t *t = json_array();
	for (size_t i = n - limit; i < n; i++)
		json_array_append(t, json_array_get(keep, i));
	json_decref(keep);
	return t;
}

static int events_watch(struct cli_ctx *ctx, const struct cli_events_opts *o, bool json)
{
	struct cli_events_layout layout = { 0 };
	int64_t after = 0;
	size_t printed = 0;
	json_t *keep = o->limit ? json_array() : NULL;
	int rc = CLI_EXIT_OK;

	/* the log so far, page by page */
	for (;;) {
		json_t *page = NULL;
		const json_t *events;
		rc = fetch_page(ctx, o, &after, &page, &events);
		if (rc != CLI_EXIT_OK)
			goto out;
		size_t n = json_array_size(events);
		if (keep) {
			json_array_extend(keep, (json_t *)events);
			keep = keep_last(keep, o->limit, false);
		} else {
			cli_events_print(ctx->out, events, json, &layout);
			printed += n;
		}
		json_decref(page);
		if (!keep && (rc = flush_out(ctx)) != 0)
			goto out;
		if (n < CLI_EVENTS_PAGE || cli_watch_stopped())
			break;
	}
	if (keep) {
		keep = keep_last(keep, o->limit, true);
		cli_events_print(ctx->out, keep, json, &layout);
		printed = json_array_size(keep);
	}
	if (!o->follow && printed == 0 && !json)
		fputs("no events\n", ctx->out);
	if ((rc = flush_out(ctx)) != 0 || !o->follow)
		goto out;

	/* then what comes */
	while (!cli_watch_sleep(CLI_EVENTS_POLL_MS)) {
		size_t n;
		do {
			json_t *page = NULL;
			const json_t *events;
			rc = fetch_page(ctx, o, &after, &page, &events);
			if (rc != CLI_EXIT_OK)
				goto out;
			n = json_array_size(events);
			cli_events_print(ctx->out, events, json, &layout);
			json_decref(page);
			if ((rc = flush_out(ctx)) != 0)
				goto out;
		} while (n == CLI_EVENTS_PAGE && !cli_watch_stopped());
	}
out:
	if (keep)
		json_decref(keep);
	/* the reader went away: not an error */
	return rc == OUT_GONE ? CLI_EXIT_OK : rc;
}

static int events_run(struct cli_ctx *ctx, int argc, char **argv)
{
	struct cli_events_opts o;
	_cleanup_error_ struct error *err = NULL;
	if (cli_events_parse(argc, argv, now_ms(), &o, &err) < 0)
		return cli_usage_error(ctx, err->msg, usage, "vcpuctl events");
	if (o.help) {
		cli_print_help(ctx->out, usage, help_text);
		return CLI_EXIT_OK;
	}
	/* only a watch catches Ctrl-C: a plain listing just dies of it, not
	 * printing half of what it was asked for as if it were all */
	if (!o.follow)
		return events_watch(ctx, &o, o.json || ctx->json);
	struct cli_watch w;
	cli_watch_begin(&w);
	int rc = events_watch(ctx, &o, o.json || ctx->json);
	cli_watch_end(&w);
	return rc;
}

const struct cli_command cli_cmd_events = {
	.name = "events",
	.summary = "the audit log and throttle decisions; --follow for new ones",
	.run = events_run,
};
