/* test_cli_top.c - `vcpuctl top`, `vcpuctl events`, `vcpuctl vm stats` and
 * the history of `vm show`, without a daemon: option parsing and usage
 * errors, the --since parser (durations, unix seconds, UTC times, junk,
 * overflow), the renderers on JSON fixtures (nulls, sorting, the dry-run
 * header, details cut to size, NDJSON), the per-minute summarizer, and
 * whole runs through cli_main() against a fake vcpud on a UNIX socket that
 * answers a script of replies (cli_test_util.h): refreshing tables stopped
 * by SIGTERM, a pipe whose reader has gone, a terminal (pty), paging with
 * after=, --follow. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/events.h"
#include "cli/top.h"
#include "cli/vm.h"
#include "vcpud/util.h"

#define FAKE_DIR_TEMPLATE "/tmp/vcpuctl-top-fake-XXXXXX"
#include "cli_test_util.h"

/* --- helpers ---------------------------------------------------------- */

/* 2026-11-27T22:00:00Z */
#define NOW_MS 1795816800000LL

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Render into a string with a renderer of the form f(FILE *, json, err). */
static char *render_with(int (*fn)(FILE *, const json_t *, struct error **), const char *json,
			 int *rc, struct error **err)
{
	json_t *j = load(json);
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	*rc = fn(f, j, err);
	fclose(f);
	json_decref(j);
	return buf;
}

/* SIGTERM that reached the test's own handler: the command under test
 * should have caught it. */
static volatile sig_atomic_t stray_signals;
static void on_stray(int sig)
{
	(void)sig;
	stray_signals++;
}

/* --- --since ---------------------------------------------------------- */

static void test_since_good(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int64_t want_ms;
	} cases[] = {
		/* durations back from NOW_MS */
		{ "90s", NOW_MS - 90000 },
		{ "10m", NOW_MS - 600000 },
		{ "2h", NOW_MS - 7200000 },
		{ "1d", NOW_MS - 86400000 },
		{ "0s", NOW_MS },
		{ "007m", NOW_MS - 420000 },
		{ "20784d", NOW_MS - 20784LL * 86400000 },
		/* unix seconds */
		{ "1795816800", NOW_MS },
		{ "0", 0 },
		{ "1", 1000 },
		{ "253402300799", 253402300799000LL },
		/* UTC times */
		{ "2026-11-27T22:00:00Z", NOW_MS },
		{ "2026-11-27T22:00:00", NOW_MS },
		{ "2026-11-27t22:00:00z", NOW_MS },
		{ "2026-11-27 22:00:00", NOW_MS },
		{ "2026-11-27T22:00", NOW_MS },
		{ "2026-11-27T22:00Z", NOW_MS },
		{ "2026-11-27T22:00:59Z", NOW_MS + 59000 },
		{ "2026-11-27", NOW_MS - 22 * 3600000LL },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "1970-01-01T00:00:01", 1000 },
		{ "2024-02-29T12:30:15Z", 1709209815000LL },
		{ "2000-02-29", 951782400000LL },
		{ "2025-12-31T23:59:59Z", 1767225599000LL },
		{ "9999-12-31T23:59:59Z", 253402300799000LL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct error *err = NULL;
		int64_t got = -1;
		if (cli_since_parse(cases[i].in, NOW_MS, &got, &err) < 0)
			fail_msg("'%s' refused: %s", cases[i].in, err->msg);
		if (got != cases[i].want_ms)
			fail_msg("'%s': got %lld, expected %lld", cases[i].in, (long long)got,
				 (long long)cases[i].want_ms);
	}
}

static void test_since_bad(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int code;
		const char *msg;
	} cases[] = {
		{ "", EINVAL, "invalid time ''" },
		{ "abc", EINVAL, "invalid time 'abc': use a duration (90s, 10m, 2h, 1d)" },
		{ "10x", EINVAL, "invalid time '10x'" },
		{ "10M", EINVAL, "invalid time '10M'" },
		{ "1w", EINVAL, "invalid time '1w'" },
		{ "10mm", EINVAL, "invalid time '10mm'" },
		{ "10 m", EINVAL, "invalid time '10 m'" },
		{ " 10m", EINVAL, "invalid time ' 10m'" },
		{ "10m ", EINVAL, "invalid time '10m '" },
		{ "m", EINVAL, "invalid time 'm'" },
		{ "-5m", EINVAL, "invalid time '-5m'" },
		{ "+5m", EINVAL, "invalid time '+5m'" },
		{ "1.5h", EINVAL, "invalid time '1.5h'" },
		{ "0x10", EINVAL, "invalid time '0x10'" },
		{ "-1", EINVAL, "invalid time '-1'" },
		{ "yesterday", EINVAL, "invalid time 'yesterday'" },
		{ "2026-13-01", EINVAL, "no such date" },
		{ "2026-00-10", EINVAL, "no such date" },
		{ "2026-02-29", EINVAL, "no such date" },
		{ "1900-02-29", EINVAL, "no such date" },
		{ "2026-04-31T00:00:00Z", EINVAL, "no such date" },
		{ "2026-11-27T24:00:00Z", EINVAL, "no such date or time of day" },
		{ "2026-11-27T22:60:00Z", EINVAL, "no such date" },
		{ "2026-11-27T22:00:60Z", EINVAL, "no such date" },
		{ "2026-11-27T22:00:00+01:00", EINVAL, "times are UTC" },
		{ "2026-11-27T22:00:00.5Z", EINVAL, "no fractions" },
		{ "2026-11-27T22:00:00ZZ", EINVAL, "invalid time" },
		{ "2026-11-27T22", EINVAL, "invalid time '2026-11-27T22'" },
		{ "2026-11-27T", EINVAL, "invalid time" },
		{ "2026-1-27", EINVAL, "invalid time '2026-1-27'" },
		{ "26-11-27", EINVAL, "invalid time '26-11-27'" },
		{ "2026/11/27", EINVAL, "invalid time" },
		{ "10000-01-01", EINVAL, "invalid time" },
		/* out of range and overflow */
		{ "1969-12-31T23:59:59Z", ERANGE, "time '1969-12-31T23:59:59Z' is before 1970" },
		{ "0000-01-01", ERANGE, "before 1970" },
		{ "253402300800", ERANGE, "unix time 253402300800 is after 9999" },
		{ "99999999999999999999", ERANGE, "unix time 99999999999999999999 is after 9999" },
		{ "20785d", ERANGE, "duration 20785d reaches back before 1970" },
		{ "99999999999999999999s", ERANGE, "reaches back before 1970" },
		{ "9223372036854775807d", ERANGE, "reaches back before 1970" },
		{ "9223372036854775807s", ERANGE, "reaches back before 1970" },
		{ "18446744073709551615m", ERANGE, "reaches back before 1970" },
		{ "18446744073709551616h", ERANGE, "reaches back before 1970" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct error *err = NULL;
		int64_t got = 12345;
		if (cli_since_parse(cases[i].in, NOW_MS, &got, &err) == 0)
			fail_msg("'%s' accepted as %lld", cases[i].in, (long long)got);
		if (err->code != cases[i].code || !strstr(err->msg, cases[i].msg))
			fail_msg("'%s': errno %d \"%s\", expected %d \"%s\"", cases[i].in, err->code,
				 err->msg, cases[i].code, cases[i].msg);
		if (cli_exit_for_errno(err->code) != CLI_EXIT_USAGE)
			fail_msg("'%s': not a usage error", cases[i].in);
		assert_int_equal(got, 12345);
		error_free(&err);
	}
	/* NULL is junk too */
	struct error *err = NULL;
	int64_t got;
	assert_int_equal(cli_since_parse(NULL, NOW_MS, &got, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
}

/* --- top: options ------------------------------------------------------ */

#define TOP_PARSE(o, err, ...) cli_top_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), o, err)

static void test_top_parse(void **state)
{
	(void)state;
	struct cli_top_opts o;
	struct error *err = NULL;

	assert_int_equal(TOP_PARSE(&o, &err, "top"), 0);
	assert_false(o.help);
	assert_false(o.once);
	assert_false(o.json);
	assert_int_equal(o.interval_ms, 1000);

	assert_int_equal(TOP_PARSE(&o, &err, "top", "--once", "--interval", "2.5"), 0);
	assert_true(o.once);
	assert_false(o.json);
	assert_int_equal(o.interval_ms, 2500);

	assert_int_equal(TOP_PARSE(&o, &err, "top", "--interval=0.1"), 0);
	assert_int_equal(o.interval_ms, 100);
	assert_false(o.once);
	assert_int_equal(TOP_PARSE(&o, &err, "top", "--interval", "3600"), 0);
	assert_int_equal(o.interval_ms, 3600000);
	assert_int_equal(TOP_PARSE(&o, &err, "top", "--interval", ".25"), 0);
	assert_int_equal(o.interval_ms, 250);

	/* --json implies --once */
	assert_int_equal(TOP_PARSE(&o, &err, "top", "--json"), 0);
	assert_true(o.json);
	assert_true(o.once);

	/* --help wins over bad values, not over a bad command line */
	assert_int_equal(TOP_PARSE(&o, &err, "top", "--interval", "0", "-h"), 0);
	assert_true(o.help);
	assert_int_equal(TOP_PARSE(&o, &err, "top", "--help", "extra"), -1);
	assert_contains(err->msg, "unexpected argument 'extra'");
	error_free(&err);
	assert_null(err);
}

struct bad_opts {
	const char *msg;
	char *argv[8];
};

static void test_top_usage_errors(void **state)
{
	(void)state;
	static const struct bad_opts cases[] = {
		{ "--interval: 0 is out of range (0.1..3600)", { "top", "--interval", "0" } },
		{ "--interval: 0.05 is out of range", { "top", "--interval", "0.05" } },
		{ "--interval: -1 is out of range", { "top", "--interval", "-1" } },
		{ "--interval: 3601 is out of range", { "top", "--interval", "3601" } },
		{ "--interval: 1e9 is out of range", { "top", "--interval=1e9" } },
		{ "--interval: 'abc' is not a number", { "top", "--interval", "abc" } },
		{ "--interval: '' is not a number", { "top", "--interval", "" } },
		{ "--interval: '1s' is not a number", { "top", "--interval", "1s" } },
		{ "--interval: 'nan' is not a number", { "top", "--interval", "nan" } },
		{ "--interval: 'inf' is not a number", { "top", "--interval", "inf" } },
		{ "option '--interval' needs a value", { "top", "--interval" } },
		{ "option '--once' does not take a value", { "top", "--once=yes" } },
		{ "unknown option '--follow'", { "top", "--follow" } },
		{ "unknown option '-n'", { "top", "-n", "1" } },
		{ "unexpected argument 'web'", { "top", "web" } },
		{ "unexpected argument 'web'", { "top", "--once", "--", "web" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char **argv = (char **)cases[i].argv;
		struct cli_top_opts o;
		struct error *err = NULL;
		int rc = cli_top_parse(argv_len(argv), argv, &o, &err);
		assert_usage_error(i, argv, rc, err, cases[i].msg);
		error_free(&err);
	}
}

/* --- events: options ---------------------------------------------------- */

#define EV_PARSE(o, err, ...) \
	cli_events_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), NOW_MS, o, err)

static void test_events_parse(void **state)
{
	(void)state;
	struct cli_events_opts o;
	struct error *err = NULL;

	assert_int_equal(EV_PARSE(&o, &err, "events"), 0);
	assert_false(o.help || o.json || o.follow || o.since_set);
	assert_int_equal(o.limit, 0);
	char *p = cli_events_path(&o, 0);
	assert_string_equal(p, "/v1/events?limit=1000");
	free(p);
	p = cli_events_path(&o, 1234);
	assert_string_equal(p, "/v1/events?limit=1000&after=1234");
	free(p);

	assert_int_equal(EV_PARSE(&o, &err, "events", "--since", "10m", "-f", "--limit", "50",
				  "--json"), 0);
	assert_true(o.follow);
	assert_true(o.json);
	assert_true(o.since_set);
	assert_int_equal(o.since_ms, NOW_MS - 600000);
	assert_int_equal(o.limit, 50);
	p = cli_events_path(&o, 7);
	assert_string_equal(p, "/v1/events?limit=1000&since_ms=1795816200000&after=7");
	free(p);

	assert_int_equal(EV_PARSE(&o, &err, "events", "--since=2026-11-27T22:00:00Z",
				  "--follow", "--limit=1000000"), 0);
	assert_int_equal(o.since_ms, NOW_MS);
	assert_int_equal(o.limit, 1000000);
	assert_false(o.json);
	p = cli_events_path(&o, 0);
	assert_string_equal(p, "/v1/events?limit=1000&since_ms=1795816800000");
	free(p);

	/* unix seconds; the last of a repeated option wins */
	assert_int_equal(EV_PARSE(&o, &err, "events", "--since", "1d", "--since", "0"), 0);
	assert_true(o.since_set);
	assert_int_equal(o.since_ms, 0);

	assert_int_equal(EV_PARSE(&o, &err, "events", "--limit", "0", "--help"), 0);
	assert_true(o.help);
	assert_null(err);
}

static void test_events_usage_errors(void **state)
{
	(void)state;
	static const struct bad_opts cases[] = {
		{ "--since: invalid time 'yesterday': use a duration", { "events", "--since",
									  "yesterday" } },
		{ "--since: invalid time '10x'", { "events", "--since", "10x" } },
		{ "--since: invalid time ''", { "events", "--since=" } },
		{ "--since: invalid time '-1h'", { "events", "--since", "-1h" } },
		{ "--since: invalid time '2026-02-30': no such date", { "events", "--since",
									"2026-02-30" } },
		{ "--since: invalid time '2026-11-27T22:00:00+02:00'", { "events", "--since",
							     "2026-11-27T22:00:00+02:00" } },
		{ "--since: duration 99999999d reaches back before 1970",
		  { "events", "--since", "99999999d" } },
		{ "--since: unix time 99999999999999 is after 9999",
		  { "events", "--since", "99999999999999" } },
		{ "--limit: 0 is out of range (1..1000000)", { "events", "--limit", "0" } },
		{ "--limit: 1000001 is out of range", { "events", "--limit", "1000001" } },
		{ "--limit: 99999999999999999999 is out of range",
		  { "events", "--limit", "99999999999999999999" } },
		{ "--limit: '-1' is not a whole number", { "events", "--limit", "-1" } },
		{ "--limit: 'ten' is not a whole number", { "events", "--limit", "ten" } },
		{ "--limit: '' is not a whole number", { "events", "--limit", "" } },
		{ "--limit: '5x' is not a whole number", { "events", "--limit", "5x" } },
		{ "option '--since' needs a value", { "events", "--since" } },
		{ "option '--limit' needs a value", { "events", "--limit" } },
		{ "option '--follow' does not take a value", { "events", "--follow=1" } },
		{ "unknown option '--tail'", { "events", "--tail", "5" } },
		{ "unknown option '-n'", { "events", "-n", "5" } },
		{ "unexpected argument 'acme'", { "events", "acme" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char **argv = (char **)cases[i].argv;
		struct cli_events_opts o;
		struct error *err = NULL;
		int rc = cli_events_parse(argv_len(argv), argv, NOW_MS, &o, &err);
		assert_usage_error(i, argv, rc, err, cases[i].msg);
		error_free(&err);
	}
}

/* --- vm stats: request building ------------------------------------------ */

#define VM_BUILD(req, err, ...) cli_vm_build(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), req, err)

static void test_vm_stats_build(void **state)
{
	(void)state;
	struct cli_request r;
	struct error *err = NULL;

	assert_int_equal(VM_BUILD(&r, &err, "stats", "web"), 0);
	assert_request(&r, "GET", "/v1/vms/web/stats", "web");
	assert_false(r.json);
	assert_non_null(r.render);
	cli_request_clear(&r);

	assert_int_equal(VM_BUILD(&r, &err, "stats", "--since", "1795816800", "db.1", "--json"), 0);
	assert_string_equal(r.path, "/v1/vms/db.1/stats?since_ms=1795816800000");
	assert_true(r.json);
	cli_request_clear(&r);

	assert_int_equal(VM_BUILD(&r, &err, "stats", "web", "--since=2026-11-27T21:59:00"), 0);
	assert_string_equal(r.path, "/v1/vms/web/stats?since_ms=1795816740000");
	cli_request_clear(&r);

	/* a duration counts back from the real clock */
	int64_t before = now_real_ns() / 1000000;
	assert_int_equal(VM_BUILD(&r, &err, "stats", "web", "--since", "10m"), 0);
	int64_t after = now_real_ns() / 1000000;
	assert_true(str_has_prefix(r.path, "/v1/vms/web/stats?since_ms="));
	long long since = strtoll(r.path + strlen("/v1/vms/web/stats?since_ms="), NULL, 10);
	assert_in_range(since, before - 600000, after - 600000);
	cli_request_clear(&r);

	assert_int_equal(VM_BUILD(&r, &err, "stats", "--help"), 0);
	assert_true(r.help);
	assert_contains(r.usage, "vm stats NAME [--since T]");
	assert_contains(r.help_text, "--since T");
	cli_request_clear(&r);

	/* show still is what it was */
	assert_int_equal(VM_BUILD(&r, &err, "show", "web"), 0);
	assert_string_equal(r.path, "/v1/vms/web");
	cli_request_clear(&r);

	static const struct bad_opts cases[] = {
		{ "--since: invalid time 'soon'", { "stats", "web", "--since", "soon" } },
		{ "--since: invalid time '5 m'", { "stats", "web", "--since", "5 m" } },
		{ "--since: duration 999999999999d reaches back before 1970",
		  { "stats", "web", "--since", "999999999999d" } },
		{ "--since: time '1960-01-01' is before 1970", { "stats", "web", "--since",
								 "1960-01-01" } },
		{ "option '--since' needs a value", { "stats", "web", "--since" } },
		{ "missing VM NAME", { "stats", "--since", "1h" } },
		{ "invalid VM name '../x'", { "stats", "../x" } },
		{ "unexpected argument 'db'", { "stats", "web", "db" } },
		{ "unknown option '--limit'", { "stats", "web", "--limit", "5" } },
		{ "unknown option '--since'", { "show", "web", "--since", "1h" } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char **argv = (char **)cases[i].argv;
		int rc = cli_vm_build(argv_len(argv), argv, &r, &err);
		assert_usage_error(i, argv, rc, err, cases[i].msg);
		assert_null(r.path);
		assert_non_null(r.usage);
		error_free(&err);
		cli_request_clear(&r);
	}
}

/* --- top: rendering ------------------------------------------------------ */

/* Five VMs in no particular order: a tie on steal (api, web), a VM without
 * samples yet (all null), a capped one, a key this client does not know. */
static const char top_json[] =
	"{\"ts_ms\":1795816800123,\"tick\":42,\"interval_ms\":1000,\"dry_run\":true,\"vms\":["
	"{\"name\":\"web\",\"tenant\":\"acme\",\"class\":\"burstable\",\"state\":\"running\","
	"\"vcpus\":2,\"usage_pct\":150.04,\"steal_pct\":3.31,\"steal_max_pct\":9.0,"
	"\"throttled_pct\":0,\"cap_pct\":null,\"throttle\":\"victim\"},"
	"{\"name\":\"batch\",\"tenant\":\"beta\",\"class\":\"besteffort\",\"state\":\"running\","
	"\"vcpus\":8,\"usage_pct\":790,\"steal_pct\":0,\"steal_max_pct\":0,"
	"\"throttled_pct\":12.5,\"cap_pct\":412.5,\"throttle\":\"would-cap\"},"
	"{\"name\":\"new\",\"tenant\":\"acme\",\"class\":\"burstable\",\"state\":\"running\","
	"\"vcpus\":1,\"usage_pct\":null,\"steal_pct\":null,\"steal_max_pct\":null,"
	"\"throttled_pct\":null,\"cap_pct\":null,\"throttle\":\"none\"},"
	"{\"name\":\"db\",\"tenant\":\"beta\",\"class\":\"guaranteed\",\"state\":\"running\","
	"\"vcpus\":4,\"usage_pct\":99.96,\"steal_pct\":12,\"cap_pct\":12.5,\"throttle\":\"hold\","
	"\"future\":{}},"
	"{\"name\":\"api\",\"tenant\":\"acme\",\"class\":\"burstable\",\"state\":\"paused\","
	"\"vcpus\":2,\"usage_pct\":0,\"steal_pct\":3.31,\"cap_pct\":null,\"throttle\":\"none\"}"
	"]}";

static const char top_table[] =
	"2026-11-27T22:00:00Z  tick 42  5 VMs  (dry-run)\n"
	"VM     TENANT  CLASS       VCPUS  USAGE%  STEAL%  CAP     THROTTLE   STATE\n"
	"db     beta    guaranteed  4      100.0   12.0    12.5%   hold       running\n"
	"api    acme    burstable   2      0.0     3.3     -       none       paused\n"
	"web    acme    burstable   2      150.0   3.3     -       victim     running\n"
	"batch  beta    besteffort  8      790.0   0.0     412.5%  would-cap  running\n"
	"new    acme    burstable   1      -       -       -       none       running\n";

static void test_top_render(void **state)
{
	(void)state;
	struct error *err = NULL;
	int rc;
	char *out = render_with(cli_top_render, top_json, &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, top_table);
	free(out);

	/* not in dry-run, one VM, fields missing altogether read as unknown */
	out = render_with(cli_top_render,
			  "{\"ts_ms\":1795816861999,\"tick\":7,\"dry_run\":false,\"vms\":["
			  "{\"name\":\"x\",\"steal_pct\":1.25}]}", &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out,
		"2026-11-27T22:01:01Z  tick 7  1 VM\n"
		"VM  TENANT  CLASS  VCPUS  USAGE%  STEAL%  CAP  THROTTLE  STATE\n"
		"x   -       -      -      -       1.2     -    -         -\n");
	free(out);

	/* no VMs; no time or tick known */
	out = render_with(cli_top_render, "{\"vms\":[]}", &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "-  tick -  0 VMs\nno VMs\n");
	free(out);

	/* the same steal: by name, whatever the order they came in */
	out = render_with(cli_top_render,
			  "{\"tick\":1,\"vms\":[{\"name\":\"b\",\"steal_pct\":5},"
			  "{\"name\":\"c\",\"steal_pct\":null},{\"name\":\"a\",\"steal_pct\":5},"
			  "{\"name\":\"d\",\"steal_pct\":50},{\"name\":\"a0\"}]}", &rc, &err);
	assert_int_equal(rc, 0);
	const char *rows = strstr(out, "\nVM ");
	assert_non_null(rows);
	const char *d = strstr(rows, "\nd "), *a = strstr(rows, "\na "), *b = strstr(rows, "\nb ");
	const char *a0 = strstr(rows, "\na0 "), *c = strstr(rows, "\nc ");
	assert_true(d && a && b && a0 && c);
	assert_true(d < a && a < b && b < a0 && a0 < c);
	free(out);
	assert_null(err);
}

static void test_top_render_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"[]", "1", "null", "{}", "{\"vms\":{}}", "{\"vms\":null}", "{\"vms\":[1]}",
		"{\"vms\":[{}]}", "{\"vms\":[{\"name\":\"\"}]}", "{\"vms\":[{\"name\":5}]}",
		"{\"vms\":[{\"name\":\"a\",\"usage_pct\":\"12\"}]}",
		"{\"vms\":[{\"name\":\"a\",\"steal_pct\":true}]}",
		"{\"vms\":[{\"name\":\"a\",\"cap_pct\":[]}]}",
		"{\"vms\":[{\"name\":\"a\",\"vcpus\":\"2\"}]}",
		"{\"vms\":[{\"name\":\"a\",\"vcpus\":2.5}]}",
		"{\"vms\":[{\"name\":\"a\",\"tenant\":7}]}",
		"{\"vms\":[{\"name\":\"a\",\"throttle\":{}}]}",
		/* the second is bad: nothing of the first is printed */
		"{\"vms\":[{\"name\":\"a\"},{\"name\":\"b\",\"state\":1}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error *err = NULL;
		int rc;
		char *out = render_with(cli_top_render, bad[i], &rc, &err);
		if (rc == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err->code, EPROTO);
		assert_string_equal(out, "");
		free(out);
		error_free(&err);
	}
}

/* --- events: rendering ---------------------------------------------------- */

static const char events_json[] =
	"{\"events\":["
	"{\"id\":1,\"ts_ms\":1795816800123,\"actor\":\"uid:0\",\"action\":\"tenant.create\","
	"\"target\":\"acme\",\"details\":{\"vcpus\":8,\"name\":\"acme\"}},"
	"{\"id\":2,\"ts_ms\":1795816861999,\"actor\":\"vcpud\",\"action\":\"throttle.cap\","
	"\"target\":\"acme/web\",\"details\":{\"cap_pct\":12.5,\"reason\":\"steal\"}},"
	"{\"id\":5,\"ts_ms\":1795816900000,\"actor\":\"uid:1000\",\"action\":\"vm.release\","
	"\"target\":\"\",\"details\":{}}"
	"]}";

static const char events_table[] =
	"TIME                  ACTOR     ACTION         TARGET    DETAILS\n"
	"2026-11-27T22:00:00Z  uid:0     tenant.create  acme      {\"vcpus\":8,\"name\":\"acme\"}\n"
	"2026-11-27T22:01:01Z  vcpud     throttle.cap   acme/web  {\"cap_pct\":12.5,\"reason\":\"steal\"}\n"
	"2026-11-27T22:01:40Z  uid:1000  vm.release     -         -\n";

/* noinline: inlined, gcc takes the memstream's buffer for a local one
 * (-Wdangling-pointer false positive) */
static __attribute__((noinline)) char *print_events(const json_t *events, bool json,
						     struct cli_events_layout *l)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	cli_events_print(f, events, json, l);
	fclose(f);
	return buf;
}

static void test_events_render(void **state)
{
	(void)state;
	json_t *reply = load(events_json);
	const json_t *events = NULL;
	struct error *err = NULL;
	assert_int_equal(cli_events_from_reply(reply, &events, &err), 0);
	assert_int_equal(json_array_size(events), 3);

	struct cli_events_layout l = { 0 };
	char *out = print_events(events, false, &l);
	assert_string_equal(out, events_table);
	free(out);
	assert_true(l.header_done);

	/* a later batch (--follow): no header, the first batch's widths, a
	 * longer value shifts its own row only */
	json_t *more = load("[{\"id\":9,\"ts_ms\":1795816960000,\"actor\":\"uid:123456789\","
			    "\"action\":\"vm.register\",\"target\":\"web\","
			    "\"details\":{\"pid\":1234}}]");
	out = print_events(more, false, &l);
	assert_string_equal(out,
		"2026-11-27T22:02:40Z  uid:123456789  vm.register    web       {\"pid\":1234}\n");
	free(out);

	/* NDJSON: each event whole, compact, as received */
	out = print_events(events, true, &l);
	assert_string_equal(out,
		"{\"id\":1,\"ts_ms\":1795816800123,\"actor\":\"uid:0\",\"action\":\"tenant.create\","
		"\"target\":\"acme\",\"details\":{\"vcpus\":8,\"name\":\"acme\"}}\n"
		"{\"id\":2,\"ts_ms\":1795816861999,\"actor\":\"vcpud\",\"action\":\"throttle.cap\","
		"\"target\":\"acme/web\",\"details\":{\"cap_pct\":12.5,\"reason\":\"steal\"}}\n"
		"{\"id\":5,\"ts_ms\":1795816900000,\"actor\":\"uid:1000\",\"action\":\"vm.release\","
		"\"target\":\"\",\"details\":{}}\n");
	free(out);

	/* an empty batch prints nothing, not even the header */
	struct cli_events_layout fresh = { 0 };
	json_t *none = json_array();
	out = print_events(none, false, &fresh);
	assert_string_equal(out, "");
	assert_false(fresh.header_done);
	free(out);
	out = print_events(none, true, &fresh);
	assert_string_equal(out, "");
	free(out);

	/* missing actor/action/target/details print as "-" */
	json_t *bare = load("[{\"id\":1,\"ts_ms\":0,\"actor\":null}]");
	out = print_events(bare, false, &fresh);
	assert_string_equal(out,
		"TIME                  ACTOR  ACTION  TARGET  DETAILS\n"
		"-                     -      -       -       -\n");
	free(out);

	json_decref(bare);
	json_decref(none);
	json_decref(more);
	json_decref(reply);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static void test_events_details(void **state)
{
	(void)state;
	char *s;
	json_t *j;

	s = cli_events_details(NULL, 100);
	assert_string_equal(s, "-");
	free(s);
	j = json_null();
	s = cli_events_details(j, 100);
	assert_string_equal(s, "-");
	free(s);
	j = json_object();
	s = cli_events_details(j, 100);
	assert_string_equal(s, "-");
	free(s);
	json_decref(j);

	/* keys in the server's order (it puts the telling ones first), compact;
	 * reals with 10 significant digits */
	j = load("{\"b\":[1,2],\"a\":null,\"c\":\"x y\"}");
	s = cli_events_details(j, 100);
	assert_string_equal(s, "{\"b\":[1,2],\"a\":null,\"c\":\"x y\"}");
	free(s);
	json_t *r = load("{\"cap_pct\":24.8,\"x\":12.199999999999999}");
	s = cli_events_details(r, 100);
	assert_string_equal(s, "{\"cap_pct\":24.8,\"x\":12.2}");
	free(s);
	json_decref(r);
	/* exactly the limit: whole; one over: cut to the limit with "..." */
	s = cli_events_details(j, 30);
	assert_string_equal(s, "{\"b\":[1,2],\"a\":null,\"c\":\"x y\"}");
	free(s);
	s = cli_events_details(j, 29);
	assert_string_equal(s, "{\"b\":[1,2],\"a\":null,\"c\":\"x...");
	assert_int_equal(strlen(s), 29);
	free(s);
	s = cli_events_details(j, 3);
	assert_string_equal(s, "...");
	free(s);
	json_decref(j);

	/* long details: 100 characters at most */
	char *long_text = xasprintf("{\"text\":\"%0300d\"}", 0);
	j = load(long_text);
	s = cli_events_details(j, CLI_EVENTS_DETAILS_MAX);
	assert_int_equal(strlen(s), 100);
	assert_true(str_has_prefix(s, "{\"text\":\"000"));
	assert_string_equal(s + 97, "...");
	free(s);
	json_decref(j);
	free(long_text);

	/* UTF-8 is cut between characters, and counted as characters */
	j = load("{\"n\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
	s = cli_events_details(j, 11);
	assert_string_equal(s, "{\"n\":\"\xc3\xa9\xc3\xa9...");
	assert_int_equal(utf8_chars(s), 11);
	assert_int_equal(strlen(s), 13);
	free(s);
	s = cli_events_details(j, 14);
	assert_string_equal(s, "{\"n\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
	free(s);
	json_decref(j);

	/* the table uses CLI_EVENTS_DETAILS_MAX */
	char *ev = xasprintf("[{\"id\":1,\"ts_ms\":1795816800000,\"actor\":\"a\",\"action\":\"b\","
			     "\"target\":\"c\",\"details\":{\"text\":\"%0200d\"}}]", 0);
	j = load(ev);
	struct cli_events_layout l = { 0 };
	char *out = print_events(j, false, &l);
	const char *row = strchr(out, '\n') + 1;
	const char *det = strstr(row, "{\"text\"");
	assert_non_null(det);
	assert_int_equal(strlen(det), 101); /* and the newline */
	assert_true(str_has_prefix(det + 97, "...\n"));
	free(out);
	json_decref(j);
	free(ev);
}

static void test_events_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"[]", "{}", "{\"events\":{}}", "{\"events\":null}", "{\"events\":[1]}",
		"{\"events\":[{\"ts_ms\":1}]}",
		"{\"events\":[{\"id\":\"1\",\"ts_ms\":1}]}",
		"{\"events\":[{\"id\":0,\"ts_ms\":1}]}",
		"{\"events\":[{\"id\":1}]}",
		"{\"events\":[{\"id\":1,\"ts_ms\":1.5}]}",
		"{\"events\":[{\"id\":1,\"ts_ms\":1,\"actor\":5}]}",
		"{\"events\":[{\"id\":1,\"ts_ms\":1,\"action\":[]}]}",
		"{\"events\":[{\"id\":1,\"ts_ms\":1,\"target\":{}}]}",
		/* ids must grow, or after= would loop or skip */
		"{\"events\":[{\"id\":2,\"ts_ms\":1},{\"id\":2,\"ts_ms\":1}]}",
		"{\"events\":[{\"id\":3,\"ts_ms\":1},{\"id\":1,\"ts_ms\":1}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *j = load(bad[i]);
		const json_t *events = NULL;
		struct error *err = NULL;
		if (cli_events_from_reply(j, &events, &err) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err->code, EPROTO);
		assert_null(events);
		error_free(&err);
		json_decref(j);
	}
}

/* --- history ---------------------------------------------------------------- */

/* Three minutes: 22:00 with two samples, 22:01 with three (one without
 * figures, one out of order), 22:03 with one; nothing in 22:02. */
static const char stats_json[] =
	"{\"vm\":\"web\",\"interval_ms\":1000,\"samples\":["
	"{\"ts_ms\":1795816800000,\"usage_pct\":100,\"steal_pct\":2},"
	"{\"ts_ms\":1795816859999,\"usage_pct\":200,\"steal_pct\":6},"
	"{\"ts_ms\":1795816860000,\"usage_pct\":50,\"steal_pct\":10},"
	"{\"ts_ms\":1795816919000,\"usage_pct\":null,\"steal_pct\":null},"
	"{\"ts_ms\":1795816870000,\"usage_pct\":25.5,\"steal_pct\":30.5},"
	"{\"ts_ms\":1795816985000,\"usage_pct\":12.25,\"steal_pct\":0}"
	"]}";

static void test_history_summarize(void **state)
{
	(void)state;
	json_t *reply = load(stats_json);
	struct cli_history_minute *m = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(cli_history_summarize(json_object_get(reply, "samples"), &m, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].minute_ms, 1795816800000LL);
	assert_int_equal(m[0].samples, 2);
	assert_int_equal(m[0].n_usage, 2);
	assert_true(m[0].usage_mean == 150.0);
	assert_true(m[0].steal_mean == 4.0);
	assert_true(m[0].steal_max == 6.0);
	assert_int_equal(m[1].minute_ms, 1795816860000LL);
	assert_int_equal(m[1].samples, 3);
	assert_int_equal(m[1].n_usage, 2);
	assert_int_equal(m[1].n_steal, 2);
	assert_true(m[1].usage_mean == 37.75);
	assert_true(m[1].steal_mean == 20.25);
	assert_true(m[1].steal_max == 30.5);
	assert_int_equal(m[2].minute_ms, 1795816980000LL);
	assert_int_equal(m[2].samples, 1);
	assert_true(m[2].usage_mean == 12.25);
	assert_true(m[2].steal_max == 0.0);
	free(m);
	json_decref(reply);

	/* newest first in, oldest first out; a minute of nulls only */
	reply = load("[{\"ts_ms\":180000,\"usage_pct\":1,\"steal_pct\":1},"
		     "{\"ts_ms\":60001,\"usage_pct\":null,\"steal_pct\":null},"
		     "{\"ts_ms\":0,\"usage_pct\":3,\"steal_pct\":4}]");
	assert_int_equal(cli_history_summarize(reply, &m, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].minute_ms, 0);
	assert_int_equal(m[1].minute_ms, 60000);
	assert_int_equal(m[1].samples, 1);
	assert_int_equal(m[1].n_usage, 0);
	assert_int_equal(m[1].n_steal, 0);
	assert_int_equal(m[2].minute_ms, 180000);
	free(m);
	json_decref(reply);

	/* none */
	reply = load("[]");
	m = (void *)1;
	assert_int_equal(cli_history_summarize(reply, &m, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(m);
	json_decref(reply);

	static const char *const bad[] = {
		"{}", "null", "[1]", "[{}]", "[{\"ts_ms\":\"1\"}]", "[{\"ts_ms\":-1}]",
		"[{\"ts_ms\":1.5}]", "[{\"ts_ms\":1,\"usage_pct\":\"5\"}]",
		"[{\"ts_ms\":1,\"steal_pct\":false}]",
		"[{\"ts_ms\":1,\"usage_pct\":1},{\"ts_ms\":2,\"steal_pct\":[]}]",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *j = load(bad[i]);
		m = (void *)1;
		if (cli_history_summarize(j, &m, &n, &err) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err->code, EPROTO);
		assert_null(m);
		error_free(&err);
		json_decref(j);
	}
}

static const char history_text[] =
	"MINUTE                SAMPLES  USAGE%  STEAL%  STEAL-MAX%\n"
	"2026-11-27T22:00:00Z  2        150.0   4.0     6.0\n"
	"2026-11-27T22:01:00Z  3        37.8    20.2    30.5\n"
	"2026-11-27T22:03:00Z  1        12.2    0.0     0.0\n"
	"\n"
	"last 3 samples:\n"
	"TIME                  USAGE%  STEAL%\n"
	"2026-11-27T22:01:59Z  -       -\n"
	"2026-11-27T22:01:10Z  25.5    30.5\n"
	"2026-11-27T22:03:05Z  12.2    0.0\n";

static int history_print3(FILE *f, const json_t *j, struct error **err)
{
	return cli_history_print(f, j, 3, err);
}

static void test_history_print(void **state)
{
	(void)state;
	struct error *err = NULL;
	int rc;
	char *out = render_with(history_print3, stats_json, &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, history_text);
	free(out);

	/* fewer samples than asked for */
	out = render_with(history_print3,
			  "{\"samples\":[{\"ts_ms\":1795816800000,\"usage_pct\":1,\"steal_pct\":2}]}",
			  &rc, &err);
	assert_int_equal(rc, 0);
	assert_contains(out, "\nlast 1 sample:\nTIME                  USAGE%  STEAL%\n"
			     "2026-11-27T22:00:00Z  1.0     2.0\n");
	free(out);

	out = render_with(history_print3, "{\"vm\":\"web\",\"samples\":[]}", &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "no samples yet\n");
	free(out);

	out = render_with(cli_samples_print, stats_json, &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out,
		"TIME                  USAGE%  STEAL%\n"
		"2026-11-27T22:00:00Z  100.0   2.0\n"
		"2026-11-27T22:00:59Z  200.0   6.0\n"
		"2026-11-27T22:01:00Z  50.0    10.0\n"
		"2026-11-27T22:01:59Z  -       -\n"
		"2026-11-27T22:01:10Z  25.5    30.5\n"
		"2026-11-27T22:03:05Z  12.2    0.0\n");
	free(out);

	out = render_with(cli_samples_print, "{\"samples\":[]}", &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "no samples yet\n");
	free(out);

	static const char *const bad[] = {
		"{}", "[]", "{\"samples\":{}}", "{\"samples\":[{\"ts_ms\":null}]}",
		"{\"samples\":[{\"ts_ms\":1,\"usage_pct\":1},{\"ts_ms\":2,\"usage_pct\":\"x\"}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		for (int k = 0; k < 2; k++) {
			out = render_with(k ? cli_samples_print : history_print3, bad[i], &rc,
					  &err);
			if (rc == 0)
				fail_msg("accepted by %s: %s", k ? "samples" : "history", bad[i]);
			assert_int_equal(err->code, EPROTO);
			assert_string_equal(out, "");
			free(out);
			error_free(&err);
		}
	}
}

/* --- top against the fake ------------------------------------------------------ */

static void test_fake_top_once_and_json(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;
	const struct fake_reply one[] = { { 200, top_json, false } };

	RUN_SCRIPT(&c, &reqs, one, "top", "--once");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/top\n");
	assert_string_equal(c.out, top_table);
	assert_string_equal(c.err, "");
	free(reqs);
	cap_free(&c);

	/* --json after the command, and the global one: the JSON, once */
	for (int global = 0; global < 2; global++) {
		if (global)
			RUN_SCRIPT(&c, &reqs, one, "--json", "top");
		else
			RUN_SCRIPT(&c, &reqs, one, "top", "--json");
		assert_int_equal(c.rc, 0);
		assert_string_equal(reqs, "GET /v1/top\n");
		json_t *got = load(c.out);
		json_t *want = load(top_json);
		assert_true(json_equal(got, want));
		json_decref(got);
		json_decref(want);
		free(reqs);
		cap_free(&c);
	}
}

static void test_fake_top_errors(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;

	const struct fake_reply boom[] = {
		{ 500, "{\"error\":{\"code\":\"internal\",\"message\":\"boom\"}}", false },
	};
	RUN_SCRIPT(&c, &reqs, boom, "top", "--once");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_string_equal(c.err, "vcpuctl: boom\n");
	assert_string_equal(c.out, "");
	free(reqs);
	cap_free(&c);
	/* --json: the error JSON on stdout, as the other commands do */
	RUN_SCRIPT(&c, &reqs, boom, "top", "--json");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.out, "\"internal\"");
	free(reqs);
	cap_free(&c);

	const struct fake_reply bad[] = {
		{ 200, "{\"vms\":[{\"name\":\"a\",\"vcpus\":\"x\"}]}", false },
	};
	RUN_SCRIPT(&c, &reqs, bad, "top", "--once");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "vcpuctl: unexpected reply from vcpud to GET /v1/top: \"vcpus\" "
			       "of VM 1 is not an integer");
	assert_string_equal(c.out, "");
	free(reqs);
	cap_free(&c);

	/* unreachable: exit 5 naming the socket, looping or not */
	static char *const modes[][4] = { { "top", "--once", NULL }, { "top", NULL },
					  { "top", "--json", NULL } };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char *argv[8] = { "vcpuctl", "--socket", "/nonexistent-vcpuctl/top.sock" };
		int argc = 3;
		for (int k = 0; modes[i][k]; k++)
			argv[argc++] = modes[i][k];
		run_argv(&c, argc, argv);
		assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
		assert_contains(c.err, "vcpuctl: cannot reach vcpud at /nonexistent-vcpuctl/top.sock");
		assert_string_equal(c.out, "");
		cap_free(&c);
	}

	/* usage errors come before any I/O */
	RUN(&c, "--socket", "/nonexistent-vcpuctl/top.sock", "top", "--interval", "0");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_string_equal(c.err,
		"vcpuctl: --interval: 0 is out of range (0.1..3600)\n"
		"usage: vcpuctl top [--once] [--interval SECONDS] [--json]\n"
		"Try 'vcpuctl top --help' for more information.\n");
	cap_free(&c);

	RUN(&c, "top", "--help");
	assert_int_equal(c.rc, 0);
	assert_true(str_has_prefix(c.out, "usage: vcpuctl top [--once] [--interval SECONDS] "
					  "[--json]\n"));
	assert_contains(c.out, "--interval SECONDS");
	cap_free(&c);
	RUN(&c, "help", "top");
	assert_int_equal(c.rc, 0);
	assert_contains(c.out, "usage: vcpuctl top");
	cap_free(&c);
	RUN(&c, "--help");
	assert_contains(c.out, "\n  top        ");
	assert_contains(c.out, "\n  events     ");
	cap_free(&c);
}

/* Not a terminal, no --once: tables one after the other, a blank line
 * between, until SIGTERM (exit 0) or an error (its exit code). */
static void test_fake_top_refresh(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;
	const struct fake_reply three[] = {
		{ 200, top_json, false },
		{ 200, "{\"ts_ms\":1795816801000,\"tick\":43,\"vms\":[]}", false },
		{ 200, top_json, true },
	};
	stray_signals = 0;
	/* SIGINT as the test was started with (SIG_IGN under `cmd &` in a
	 * non-interactive shell, SIG_DFL otherwise) */
	struct sigaction int0;
	sigaction(SIGINT, NULL, &int0);
	int64_t t0 = now_mono_ns();
	RUN_SCRIPT(&c, &reqs, three, "top", "--interval", "0.1");
	int64_t took_ms = (now_mono_ns() - t0) / 1000000;
	assert_int_equal(c.rc, 0);
	assert_int_equal(stray_signals, 0);
	assert_string_equal(reqs, "GET /v1/top\nGET /v1/top\nGET /v1/top\n");
	char *want = xasprintf("%s\n2026-11-27T22:00:01Z  tick 43  0 VMs\nno VMs\n\n%s",
			       top_table, top_table);
	assert_string_equal(c.out, want);
	assert_string_equal(c.err, "");
	assert_null(strstr(c.out, "\033[")); /* no escapes into a pipe */
	/* two intervals of 100 ms were slept, and not much more */
	assert_in_range(took_ms, 190, 5000);
	free(want);
	free(reqs);
	cap_free(&c);

	/* the daemon goes away after one table */
	const struct fake_reply one[] = { { 200, top_json, false } };
	RUN_SCRIPT(&c, &reqs, one, "top", "--interval", "0.1");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_string_equal(c.out, top_table);
	assert_contains(c.err, "vcpuctl: cannot reach vcpud at /tmp/vcpuctl-top-fake-");
	free(reqs);
	cap_free(&c);

	/* the signal dispositions are back as they were */
	struct sigaction sa;
	sigaction(SIGTERM, NULL, &sa);
	assert_ptr_equal(sa.sa_handler, on_stray);
	sigaction(SIGPIPE, NULL, &sa);
	assert_ptr_equal(sa.sa_handler, SIG_IGN);
	sigaction(SIGINT, NULL, &sa);
	assert_ptr_equal(sa.sa_handler, int0.sa_handler);
}

/* `vcpuctl top | head`: the reader is gone, top ends quietly with 0 and
 * leaves nothing for main()'s final fflush() to fail on. */
static void test_fake_top_broken_pipe(void **state)
{
	(void)state;
	const struct fake_reply replies[] = { { 200, top_json, false } };
	struct fake f;
	fake_start_script(&f, replies, ARRAY_SIZE(replies));
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	FILE *out = fdopen(p[1], "w");
	assert_non_null(out);
	char *err_text = NULL;
	size_t elen;
	FILE *errf = open_memstream(&err_text, &elen);
	char *argv[] = { "vcpuctl", "--socket", f.sock, "top", "--interval", "0.1", NULL };
	int rc = cli_main(6, argv, out, errf);
	fclose(errf);
	assert_int_equal(rc, 0);
	assert_string_equal(err_text, "");
	assert_false(ferror(out));
	assert_int_equal(fflush(out), 0);
	fclose(out);
	free(err_text);
	fake_finish(&f);
	assert_string_equal(f.requests, "GET /v1/top\n");
	free(f.requests);
}

/* On a terminal: each table drawn over the last (home, clear). */
static void test_fake_top_tty(void **state)
{
	(void)state;
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
		if (master >= 0)
			close(master);
		skip();
	}
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	FILE *out = fdopen(slave, "w");
	assert_non_null(out);

	const struct fake_reply replies[] = {
		{ 200, top_json, false },
		{ 200, top_json, true },
	};
	struct fake f;
	fake_start_script(&f, replies, ARRAY_SIZE(replies));
	char *err_text = NULL;
	size_t elen;
	FILE *errf = open_memstream(&err_text, &elen);
	char *argv[] = { "vcpuctl", "--socket", f.sock, "top", "--interval", "0.1", NULL };
	stray_signals = 0;
	int rc = cli_main(6, argv, out, errf);
	fclose(errf);
	fclose(out);
	fake_finish(&f);
	assert_int_equal(rc, 0);
	assert_int_equal(stray_signals, 0);
	assert_string_equal(err_text, "");

	char buf[16384];
	size_t len = 0;
	fcntl(master, F_SETFL, O_NONBLOCK);
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(master, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(master);
	assert_int_equal(count_of(buf, "\033[H\033[2J"), 2);
	assert_true(str_has_prefix(buf, "\033[H\033[2J2026-11-27T22:00:00Z  tick 42"));
	assert_int_equal(count_of(buf, "tick 42  5 VMs  (dry-run)"), 2);
	free(err_text);
	free(f.requests);
}

/* --- events against the fake ------------------------------------------------------ */

/* {"events":[...]} with ids first..last, one second apart from NOW_MS */
static char *events_page(int first, int last)
{
	size_t cap = 64 + (size_t)(last - first + 1) * 160, len = 0;
	char *s = xmalloc(cap);
	len += (size_t)snprintf(s + len, cap - len, "{\"events\":[");
	for (int id = first; id <= last; id++)
		len += (size_t)snprintf(s + len, cap - len,
					"%s{\"id\":%d,\"ts_ms\":%lld,\"actor\":\"vcpud\","
					"\"action\":\"throttle.cap\",\"target\":\"acme/vm-%d\","
					"\"details\":{\"n\":%d}}",
					id == first ? "" : ",", id, NOW_MS + id * 1000LL, id, id);
	snprintf(s + len, cap - len, "]}");
	return s;
}

/* The note on events the retention deleted before the cursor reached them. */
static void test_events_pruned_note(void **state)
{
	(void)state;
	static const struct {
		const char *reply;
		int64_t after;
		const char *note;      /* NULL: none */
	} cases[] = {
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":true}", 0,
		  "note: 501 events (ids 1..501) were deleted by the log's retention "
		  "(policy events.*) before being read" },
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":true}", 500,
		  "note: 1 event (id 501) was deleted by the log's retention "
		  "(policy events.*) before being read" },
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":false}", 0, NULL },
		{ "{\"events\":[],\"oldest_id\":502}", 0, NULL },          /* older vcpud */
		{ "{\"events\":[]}", 0, NULL },
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":true}", 501, NULL },
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":true}", 9000, NULL },
		{ "{\"events\":[],\"oldest_id\":null,\"pruned\":true}", 0, NULL },
		{ "{\"events\":[],\"oldest_id\":\"502\",\"pruned\":true}", 0, NULL },
		{ "{\"events\":[],\"oldest_id\":502,\"pruned\":1}", 0, NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_t *j = load(cases[i].reply);
		char *note = cli_events_pruned_note(j, cases[i].after);
		if (cases[i].note) {
			if (!note || strcmp(note, cases[i].note) != 0)
				fail_msg("%s after=%lld:\n  got  %s\n  want %s", cases[i].reply,
					 (long long)cases[i].after, note ? note : "(none)",
					 cases[i].note);
		} else if (note) {
			fail_msg("%s after=%lld: unexpected note %s", cases[i].reply,
				 (long long)cases[i].after, note);
		}
		free(note);
		json_decref(j);
	}
}

static void test_fake_events(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;

	const struct fake_reply one[] = { { 200, events_json, false } };
	RUN_SCRIPT(&c, &reqs, one, "events");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/events?limit=1000\n");
	assert_string_equal(c.out, events_table);
	assert_string_equal(c.err, "");
	free(reqs);
	cap_free(&c);

	RUN_SCRIPT(&c, &reqs, one, "events", "--since", "2026-11-27T22:00:00Z", "--json");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/events?limit=1000&since_ms=1795816800000\n");
	/* NDJSON: three lines, each a whole event */
	assert_int_equal(count_of(c.out, "\n"), 3);
	char *line2 = strchr(c.out, '\n') + 1;
	*strchr(line2, '\n') = '\0';
	json_t *ev = load(line2);
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), 2);
	json_decref(ev);
	free(reqs);
	cap_free(&c);

	const struct fake_reply none[] = { { 200, "{\"events\":[]}", false } };
	RUN_SCRIPT(&c, &reqs, none, "events");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "no events\n");
	free(reqs);
	cap_free(&c);
	RUN_SCRIPT(&c, &reqs, none, "--json", "events");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, "");
	free(reqs);
	cap_free(&c);

	const struct fake_reply bad[] = { { 400, "{\"error\":{\"code\":\"invalid\",\"message\":"
					    "\"query parameter limit: bad\"}}", false } };
	RUN_SCRIPT(&c, &reqs, bad, "events");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_string_equal(c.err, "vcpuctl: query parameter limit: bad\n");
	free(reqs);
	cap_free(&c);

	const struct fake_reply junk[] = { { 200, "{\"events\":[{\"id\":1}]}", false } };
	RUN_SCRIPT(&c, &reqs, junk, "events");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "unexpected reply from vcpud to GET /v1/events?limit=1000: "
			       "event 1 has no integer \"ts_ms\"");
	free(reqs);
	cap_free(&c);

	RUN(&c, "--socket", "/nonexistent-vcpuctl/ev.sock", "events", "--follow");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_contains(c.err, "cannot reach vcpud at /nonexistent-vcpuctl/ev.sock");
	cap_free(&c);

	RUN(&c, "--socket", "/nonexistent-vcpuctl/ev.sock", "events", "--since", "soon");
	assert_int_equal(c.rc, CLI_EXIT_USAGE);
	assert_contains(c.err, "vcpuctl: --since: invalid time 'soon'");
	assert_contains(c.err, "usage: vcpuctl events [--since T] [--follow] [--limit N] [--json]");
	cap_free(&c);
}

/* More events than a page: the pages follow each other with after=, and
 * --limit keeps the most recent. */
static void test_fake_events_paging(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;
	char *p1 = events_page(1, 1000), *p2 = events_page(1001, 2000), *p3 = events_page(2001, 2005);
	const struct fake_reply pages[] = { { 200, p1, false }, { 200, p2, false }, { 200, p3, false } };

	RUN_SCRIPT(&c, &reqs, pages, "events", "--limit", "3", "--since", "1795816800");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs,
		"GET /v1/events?limit=1000&since_ms=1795816800000\n"
		"GET /v1/events?limit=1000&since_ms=1795816800000&after=1000\n"
		"GET /v1/events?limit=1000&since_ms=1795816800000&after=2000\n");
	assert_string_equal(c.out,
		"TIME                  ACTOR  ACTION        TARGET        DETAILS\n"
		"2026-11-27T22:33:23Z  vcpud  throttle.cap  acme/vm-2003  {\"n\":2003}\n"
		"2026-11-27T22:33:24Z  vcpud  throttle.cap  acme/vm-2004  {\"n\":2004}\n"
		"2026-11-27T22:33:25Z  vcpud  throttle.cap  acme/vm-2005  {\"n\":2005}\n");
	free(reqs);
	cap_free(&c);

	/* a limit across pages */
	RUN_SCRIPT(&c, &reqs, pages, "events", "--limit", "1500", "--json");
	assert_int_equal(c.rc, 0);
	assert_int_equal(count_of(c.out, "\n"), 1500);
	assert_true(str_has_prefix(c.out, "{\"id\":506,"));
	free(reqs);
	cap_free(&c);

	/* no limit: everything, one header */
	RUN_SCRIPT(&c, &reqs, pages, "events");
	assert_int_equal(c.rc, 0);
	assert_int_equal(count_of(c.out, "\n"), 2006);
	assert_int_equal(count_of(c.out, "TIME "), 1);
	assert_contains(c.out, "acme/vm-1000  {\"n\":1000}\n2026-11-27T22:16:41Z  vcpud  "
			       "throttle.cap  acme/vm-1001  {\"n\":1001}\n");
	free(reqs);
	cap_free(&c);

	/* the retention deleted events between two pages: one note on stderr,
	 * the events that are left all the same */
	char *p2b = events_page(1500, 2499);
	size_t l2 = strlen(p2b);
	p2b[l2 - 1] = '\0'; /* drop the closing brace */
	char *p2p = xasprintf("%s,\"oldest_id\":1500,\"pruned\":true}", p2b);
	char *p3b = events_page(2500, 2502);
	const struct fake_reply gap[] = { { 200, p1, false }, { 200, p2p, false },
					  { 200, p3b, false } };
	RUN_SCRIPT(&c, &reqs, gap, "events", "--json");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs,
		"GET /v1/events?limit=1000\n"
		"GET /v1/events?limit=1000&after=1000\n"
		"GET /v1/events?limit=1000&after=2499\n");
	assert_int_equal(count_of(c.out, "\n"), 2003);
	assert_string_equal(c.err, "vcpuctl: note: 499 events (ids 1001..1499) were deleted "
			    "by the log's retention (policy events.*) before being read\n");
	free(reqs);
	cap_free(&c);
	free(p2b);
	free(p2p);
	free(p3b);

	/* a page stops short, then the daemon is gone: the error, its code */
	const struct fake_reply short_[] = { { 200, p1, false } };
	RUN_SCRIPT(&c, &reqs, short_, "events", "--limit", "2");
	assert_int_equal(c.rc, CLI_EXIT_UNREACHABLE);
	assert_string_equal(c.out, "");
	free(reqs);
	cap_free(&c);
	free(p1);
	free(p2);
	free(p3);
}

/* --follow: the log so far, then every second what came after the last id,
 * until SIGTERM (exit 0). */
static void test_fake_events_follow(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;
	const struct fake_reply replies[] = {
		{ 200, events_json, false },
		{ 200, "{\"events\":[{\"id\":6,\"ts_ms\":1795816960000,\"actor\":\"uid:0\","
		       "\"action\":\"vm.register\",\"target\":\"web\",\"details\":{\"pid\":1}}]}",
		  true },
	};
	stray_signals = 0;
	RUN_SCRIPT(&c, &reqs, replies, "events", "--follow", "--since", "1h");
	assert_int_equal(c.rc, 0);
	assert_int_equal(stray_signals, 0);
	/* the second request goes on from id 5 */
	char *nl = strchr(reqs, '\n');
	assert_non_null(nl);
	assert_true(str_has_prefix(reqs, "GET /v1/events?limit=1000&since_ms="));
	assert_true(str_has_prefix(nl + 1, "GET /v1/events?limit=1000&since_ms="));
	assert_contains(nl + 1, "&after=5\n");
	char *want = xasprintf("%s2026-11-27T22:02:40Z  uid:0     vm.register    web       "
			       "{\"pid\":1}\n", events_table);
	assert_string_equal(c.out, want);
	assert_string_equal(c.err, "");
	free(want);
	free(reqs);
	cap_free(&c);

	/* NDJSON too; an empty log prints nothing while it waits */
	const struct fake_reply later[] = {
		{ 200, "{\"events\":[]}", false },
		{ 200, "{\"events\":[{\"id\":1,\"ts_ms\":1,\"action\":\"x\"}]}", true },
	};
	RUN_SCRIPT(&c, &reqs, later, "events", "-f", "--json");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/events?limit=1000\nGET /v1/events?limit=1000\n");
	assert_string_equal(c.out, "{\"id\":1,\"ts_ms\":1,\"action\":\"x\"}\n");
	free(reqs);
	cap_free(&c);
}

/* --- vm show / vm stats against the fake ---------------------------------------- */

/* web_json and web_show: cli_test_util.h */

/* The demo's story in one line each: steal high, then caps come and steal
 * falls; ASCII for terminals without Unicode, the width bounded. */
static void test_sparklines(void **state)
{
	(void)state;
	json_t *j = json_loads(
		"{\"samples\":[{\"ts_ms\":1,\"usage_pct\":100,\"steal_pct\":50,\"cap_pct\":null},"
		"{\"ts_ms\":2,\"usage_pct\":200,\"steal_pct\":50,\"cap_pct\":null},"
		"{\"ts_ms\":3,\"usage_pct\":150,\"steal_pct\":28,\"cap_pct\":50},"
		"{\"ts_ms\":4,\"usage_pct\":180,\"steal_pct\":10,\"cap_pct\":25},"
		"{\"ts_ms\":5,\"usage_pct\":190,\"steal_pct\":100,\"cap_pct\":12.5}]}", 0, NULL);
	assert_non_null(j);
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);
	assert_int_equal(cli_sparklines_print(f, j, 60, true, NULL), 0);
	fclose(f);
	assert_string_equal(out, "steal  0-100%        ++-_@\n"
				 "usage  0-200%        +@#@@\n"
				 "cap    0-50%         ..@+-\n"
				 "       (the last 5 ticks, oldest first)\n");
	free(out);
	/* the last 2 only, in Unicode */
	f = open_memstream(&out, &len);
	assert_int_equal(cli_sparklines_print(f, j, 2, false, NULL), 0);
	fclose(f);
	assert_string_equal(out, "steal  0-100%        \u2581\u2588\n"
				 "usage  0-190%        \u2588\u2588\n"
				 "cap    0-25%         \u2588\u2585\n"
				 "       (the last 2 ticks, oldest first)\n");
	free(out);
	json_decref(j);
	/* junk is refused */
	j = json_loads("{\"samples\":[{\"ts_ms\":1,\"cap_pct\":\"x\"}]}", 0, NULL);
	f = open_memstream(&out, &len);
	struct error *err = NULL;
	assert_int_equal(cli_sparklines_print(f, j, 60, true, &err), -1);
	assert_non_null(strstr(err->msg, "cap_pct"));
	error_free(&err);
	fclose(f);
	free(out);
	json_decref(j);
}

static void test_fake_vm_show_history(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;

	const struct fake_reply both[] = { { 200, web_json, false }, { 200, stats_json, false } };
	int64_t before = now_real_ns() / 1000000;
	RUN_SCRIPT(&c, &reqs, both, "vm", "show", "web");
	int64_t after = now_real_ns() / 1000000;
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.err, "");
	/* the last 5 minutes, last 10 samples (there are 6) */
	assert_true(str_has_prefix(reqs, "GET /v1/vms/web\nGET /v1/vms/web/stats?since_ms="));
	long long since = strtoll(strchr(reqs, '=') + 1, NULL, 10);
	assert_in_range(since, before - 300000, after - 300000);
	assert_true(str_has_prefix(c.out, web_show));
	const char *hist = c.out + strlen(web_show);
	/* sparklines first: steal 0-100, usage and cap 0 to their highest */
	const char *want_hist = "\nusage, last 5 minutes (UTC):\n"
					 "steal  0-100%        \u2581\u2581\u2581 \u2583\u2581\n"
					 "usage  0-200%        \u2585\u2588\u2583 \u2582\u2581\n"
					 "cap    never capped in these samples\n"
					 "       (the last 6 ticks, oldest first)\n"
					 "\nMINUTE                SAMPLES  USAGE%  STEAL%  STEAL-MAX%\n"
					 "2026-11-27T22:00:00Z  2        150.0   4.0     6.0\n";
	if (!str_has_prefix(hist, want_hist))
		fail_msg("got:\n%s\nwant:\n%s", hist, want_hist);
	assert_contains(hist, "\nlast 6 samples:\nTIME                  USAGE%  STEAL%\n"
			      "2026-11-27T22:00:00Z  100.0   2.0\n");
	assert_true(strlen(hist) > 0 && hist[strlen(hist) - 1] == '\n');
	free(reqs);
	cap_free(&c);

	/* no samples; a 404 for the stats only: no samples yet, exit 0 */
	const struct fake_reply empty[] = { { 200, web_json, false },
				       { 200, "{\"vm\":\"web\",\"samples\":[]}", false } };
	const struct fake_reply gone[] = {
		{ 200, web_json, false },
		{ 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}", false },
	};
	for (int k = 0; k < 2; k++) {
		if (k)
			RUN_SCRIPT(&c, &reqs, gone, "vm", "show", "web");
		else
			RUN_SCRIPT(&c, &reqs, empty, "vm", "show", "web");
		assert_int_equal(c.rc, 0);
		assert_string_equal(c.err, "");
		char *want = xasprintf("%s\nusage, last 5 minutes (UTC):\nno samples yet\n", web_show);
		assert_string_equal(c.out, want);
		free(want);
		free(reqs);
		cap_free(&c);
	}

	/* other failures of the history: the VM still shows, a warning, exit 0 */
	const struct fake_reply failing[] = {
		{ 200, web_json, false },
		{ 400, "{\"error\":{\"code\":\"invalid\",\"message\":\"invalid VM name "
		       "'web/stats'\"}}", false },
	};
	RUN_SCRIPT(&c, &reqs, failing, "vm", "show", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, web_show);
	assert_string_equal(c.err, "vcpuctl: cannot show the recent usage of VM web: invalid VM "
				   "name 'web/stats'\n");
	free(reqs);
	cap_free(&c);

	const struct fake_reply malformed[] = { { 200, web_json, false },
					   { 200, "{\"samples\":[{\"ts_ms\":\"x\"}]}", false } };
	RUN_SCRIPT(&c, &reqs, malformed, "vm", "show", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, web_show);
	assert_contains(c.err, "vcpuctl: cannot show the recent usage of VM web: unexpected reply "
			       "from vcpud to GET /v1/vms/web/stats?since_ms=");
	free(reqs);
	cap_free(&c);

	const struct fake_reply only_vm[] = { { 200, web_json, false } };
	RUN_SCRIPT(&c, &reqs, only_vm, "vm", "show", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(c.out, web_show);
	assert_contains(c.err, "vcpuctl: cannot show the recent usage of VM web: cannot reach "
			       "vcpud at ");
	assert_int_equal(count_of(c.err, "\n"), 1);
	free(reqs);
	cap_free(&c);

	/* --json: the VM's JSON as before, one request */
	RUN_SCRIPT(&c, &reqs, only_vm, "vm", "show", "web", "--json");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/vms/web\n");
	json_t *got = load(c.out);
	json_t *want = load(web_json);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	assert_string_equal(c.err, "");
	free(reqs);
	cap_free(&c);
}

static void test_fake_vm_stats(void **state)
{
	(void)state;
	struct cap c;
	char *reqs;
	const struct fake_reply one[] = { { 200, stats_json, false } };

	RUN_SCRIPT(&c, &reqs, one, "vm", "stats", "web", "--since", "2026-11-27T22:00:00Z");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/vms/web/stats?since_ms=1795816800000\n");
	assert_true(str_has_prefix(c.out, "TIME                  USAGE%  STEAL%\n"
					  "2026-11-27T22:00:00Z  100.0   2.0\n"));
	assert_int_equal(count_of(c.out, "\n"), 7);
	free(reqs);
	cap_free(&c);

	RUN_SCRIPT(&c, &reqs, one, "--json", "vm", "stats", "web");
	assert_int_equal(c.rc, 0);
	assert_string_equal(reqs, "GET /v1/vms/web/stats\n");
	json_t *got = load(c.out);
	json_t *want = load(stats_json);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(reqs);
	cap_free(&c);

	/* asked for directly, a 404 is an error */
	const struct fake_reply nf[] = {
		{ 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no VM 'x'\"}}", false },
	};
	RUN_SCRIPT(&c, &reqs, nf, "vm", "stats", "x");
	assert_int_equal(c.rc, CLI_EXIT_NOT_FOUND);
	assert_string_equal(c.err, "vcpuctl: no VM 'x'\n");
	free(reqs);
	cap_free(&c);

	const struct fake_reply bad[] = { { 200, "{\"samples\":7}", false } };
	RUN_SCRIPT(&c, &reqs, bad, "vm", "stats", "web");
	assert_int_equal(c.rc, CLI_EXIT_ERROR);
	assert_contains(c.err, "no \"samples\" array");
	free(reqs);
	cap_free(&c);
}

int main(void)
{
	/* a dying fake server must not kill the test through SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_stray };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_since_good),
		cmocka_unit_test(test_since_bad),
		cmocka_unit_test(test_top_parse),
		cmocka_unit_test(test_top_usage_errors),
		cmocka_unit_test(test_events_parse),
		cmocka_unit_test(test_events_usage_errors),
		cmocka_unit_test(test_vm_stats_build),
		cmocka_unit_test(test_top_render),
		cmocka_unit_test(test_top_render_malformed),
		cmocka_unit_test(test_events_render),
		cmocka_unit_test(test_events_details),
		cmocka_unit_test(test_events_malformed),
		cmocka_unit_test(test_events_pruned_note),
		cmocka_unit_test(test_history_summarize),
		cmocka_unit_test(test_history_print),
		cmocka_unit_test(test_fake_top_once_and_json),
		cmocka_unit_test(test_fake_top_errors),
		cmocka_unit_test(test_fake_top_refresh),
		cmocka_unit_test(test_fake_top_broken_pipe),
		cmocka_unit_test(test_fake_top_tty),
		cmocka_unit_test(test_fake_events),
		cmocka_unit_test(test_fake_events_paging),
		cmocka_unit_test(test_fake_events_follow),
		cmocka_unit_test(test_sparklines),
		cmocka_unit_test(test_fake_vm_show_history),
		cmocka_unit_test(test_fake_vm_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
