/* test_policy.c - the policy loader (src/policy/policy.c): valid and broken
 * fixtures under tests/fixtures/policy/ with the exact "FILE:LINE:COLUMN: "
 * of every error, strict typing of numbers and booleans, limits, the
 * shipped policies/ files, and the policy_to_yaml() round trip. Runs from
 * the repository root, or from anywhere with VCPUD_SRC set to it. */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vcpud/policy.h"
#include "vcpud/util.h"

/* --- helpers ---------------------------------------------------------- */

/* A path under the source tree; caller frees. */
static char *src_path(const char *rel)
{
	const char *root = getenv("VCPUD_SRC");
	if (root && *root)
		return xasprintf("%s/%s", root, rel);
	return xstrdup(rel);
}

static char *fixture(const char *name)
{
	_cleanup_free_ char *rel = xasprintf("tests/fixtures/policy/%s", name);
	return src_path(rel);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = xmalloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Load a fixture that must be valid. */
static struct policy *load_ok(const char *name)
{
	_cleanup_free_ char *path = fixture(name);
	struct policy *p = NULL;
	struct error *err = NULL;
	if (policy_load_file(path, &p, &err) != 0)
		fail_msg("%s: %s", name, err ? err->msg : "(no error)");
	assert_null(err);
	assert_non_null(p);
	return p;
}

/* Load a buffer that must be valid. */
static struct policy *buf_ok(const char *text)
{
	struct policy *p = NULL;
	struct error *err = NULL;
	if (policy_load_buffer(text, strlen(text), "t.yaml", &p, &err) != 0)
		fail_msg("\"%s\": %s", text, err ? err->msg : "(no error)");
	assert_non_null(p);
	return p;
}

/* Load a buffer that must fail with `code` and a message that starts with
 * `prefix` and contains `part`. */
static void buf_bad(const char *text, int code, const char *prefix, const char *part)
{
	struct policy *p = (struct policy *)0x1; /* must stay untouched */
	struct error *err = NULL;
	if (policy_load_buffer(text, strlen(text), "t.yaml", &p, &err) != -1)
		fail_msg("\"%s\" was accepted", text);
	assert_ptr_equal(p, (struct policy *)0x1);
	assert_non_null(err);
	if (err->code != code || strncmp(err->msg, prefix, strlen(prefix)) != 0 ||
	    !strstr(err->msg, part))
		fail_msg("\"%s\":\n  got  code %d \"%s\"\n  want code %d \"%s...%s...\"", text,
			 err->code, err->msg, code, prefix, part);
	error_free(&err);
}

static void round_trip(const struct policy *p);

/* --- valid files ------------------------------------------------------ */

static void test_defaults(void **state)
{
	(void)state;
	struct policy p;
	policy_defaults(&p);
	assert_int_equal(p.version, 1);
	assert_string_equal(p.housekeeping_cpus, "0-1");
	assert_string_equal(p.dedicated_cpus, "");
	assert_int_equal(cpuset_count(&p.housekeeping), 2);
	assert_true(cpuset_isset(&p.housekeeping, 0));
	assert_true(cpuset_isset(&p.housekeeping, 1));
	assert_true(cpuset_empty(&p.dedicated));
	assert_true(p.cpu_ratio == 4.0);
	assert_int_equal(p.gone_grace_s, 60);
	assert_int_equal(p.interval_ms, 1000);
	assert_true(p.steal_high_pct == 30);
	assert_true(p.steal_low_pct == 15);
	assert_true(p.breach_s == 3);
	assert_true(p.clear_s == 5);
	assert_true(p.throttle_enabled);
	assert_false(p.throttle_dry_run);
	assert_int_equal(p.steal_metric, POLICY_STEAL_MEAN);
	assert_true(p.tighten_fraction == 0.5);
	assert_true(p.burstable_floor_pct == 25);
	assert_true(p.best_effort_floor_pct == 5);
	assert_true(p.hold_s == 10);
	assert_true(p.hold_max_s == 300);
	assert_true(p.loosen_step_pct == 25);
	assert_true(p.burst_pct == 100);
	assert_true(p.best_effort_idle);
	assert_true(p.idle_pct == 50);
	assert_int_equal(p.max_actions_per_tick, 4);
	assert_null(p.exempt_tenants);
	assert_int_equal(p.n_exempt_tenants, 0);
	assert_true(p.discovery_proc);
	assert_false(p.discovery_tenant_from_name);
	assert_int_equal(p.events_retention_days, 30);
	assert_int_equal(p.events_max_rows, 1000000);
	policy_clear(&p);
	assert_null(p.housekeeping_cpus);
	policy_clear(&p); /* twice is fine */
	policy_free(NULL);
}

/* valid_full.yaml with the discovery section (keys added after the
 * fixture was written) appended, none at its default either; the fixture
 * ends with the events section, so discovery comes after it here (the
 * order of sections in a file is free). */
static struct policy *load_full(void)
{
	_cleanup_free_ char *path = fixture("valid_full.yaml");
	_cleanup_free_ char *text = slurp(path);
	_cleanup_free_ char *full = xasprintf("%s%sdiscovery:\n  proc: false\n"
					      "  tenant_from_name: true\n", text,
					      *text && text[strlen(text) - 1] != '\n' ? "\n" : "");
	return buf_ok(full);
}

static void test_valid_full(void **state)
{
	(void)state;
	_cleanup_(policy_freep) struct policy *p = load_full();
	assert_int_equal(p->version, 1);
	assert_string_equal(p->housekeeping_cpus, "0-2");    /* canonical */
	assert_string_equal(p->dedicated_cpus, "4-11");
	assert_int_equal(cpuset_count(&p->dedicated), 8);
	assert_true(cpuset_isset(&p->dedicated, 4));
	assert_true(cpuset_isset(&p->dedicated, 11));
	assert_false(cpuset_isset(&p->dedicated, 3));
	assert_true(p->cpu_ratio == 8.0);
	assert_int_equal(p->gone_grace_s, 0);
	assert_int_equal(p->interval_ms, 250);
	assert_int_equal(p->retention_s, 60);
	assert_true(p->steal_high_pct == 42.5);
	assert_true(p->steal_low_pct == 0);
	assert_true(p->breach_s == 0.5);
	assert_true(p->clear_s == 1000);
	assert_false(p->throttle_enabled);
	assert_true(p->throttle_dry_run);
	assert_int_equal(p->steal_metric, POLICY_STEAL_MAX);
	assert_true(p->tighten_fraction == 0.25);
	assert_true(p->burstable_floor_pct == 30);
	assert_true(p->best_effort_floor_pct == 2.5);
	assert_true(p->hold_s == 20.5);
	assert_true(p->hold_max_s == 86400);
	assert_true(p->loosen_step_pct == 10);
	assert_true(p->burst_pct == 0);
	assert_false(p->best_effort_idle);
	assert_true(p->idle_pct == 40);
	assert_int_equal(p->max_actions_per_tick, 1000);
	assert_int_equal(p->n_exempt_tenants, 3);
	assert_string_equal(p->exempt_tenants[0], "infra");
	assert_string_equal(p->exempt_tenants[1], "null"); /* quoted: a name */
	assert_string_equal(p->exempt_tenants[2], "batch-2.x");
	assert_false(p->discovery_proc);
	assert_true(p->discovery_tenant_from_name);
	assert_int_equal(p->events_retention_days, 3650);
	assert_int_equal(p->events_max_rows, 1000);
	assert_int_equal(p->fleet_timeout_ms, 100);
	assert_int_equal(p->fleet_lease_ttl_s, 600);
	assert_int_equal(p->fleet_evict_dead_after_s, 3600);

	/* and no key is at its default */
	struct policy d;
	policy_defaults(&d);
	_cleanup_free_ char *ours = policy_to_yaml(p);
	_cleanup_free_ char *defs = policy_to_yaml(&d);
	policy_clear(&d);
	for (char *a = ours, *b = defs; *a && *b; ) {
		char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
		assert_non_null(na);
		assert_non_null(nb);
		/* a "key: value" line, not a section; version can only be 1 */
		if (strchr(a, ':') + 2 < na && strncmp(a, "version:", 8) != 0)
			if (na - a == nb - b && strncmp(a, b, (size_t)(na - a)) == 0)
				fail_msg("valid_full.yaml leaves %.*s at its default",
					 (int)(na - a), a);
		a = na + 1;
		b = nb + 1;
	}
}

static void test_valid_minimal(void **state)
{
	(void)state;
	_cleanup_(policy_freep) struct policy *p = load_ok("valid_minimal.yaml");
	struct policy d;
	policy_defaults(&d);
	assert_true(policy_equal(p, &d));
	policy_clear(&d);
}

static void test_valid_flow_and_nulls(void **state)
{
	(void)state;
	_cleanup_(policy_freep) struct policy *p = load_ok("valid_flow_and_nulls.yaml");
	assert_string_equal(p->housekeeping_cpus, "");
	assert_true(cpuset_empty(&p->housekeeping));
	assert_string_equal(p->dedicated_cpus, "2-3");
	assert_true(p->throttle_dry_run);
	assert_true(p->throttle_enabled);     /* default kept */
	assert_true(p->steal_high_pct == 30); /* empty section: defaults */
	assert_true(p->cpu_ratio == 5.0);
}

/* The file operators read must be exactly the built-in defaults, and name
 * every key. */
static void test_default_yaml_is_defaults(void **state)
{
	(void)state;
	_cleanup_free_ char *path = src_path("policies/default.yaml");
	_cleanup_(policy_freep) struct policy *p = NULL;
	struct error *err = NULL;
	if (policy_load_file(path, &p, &err) != 0)
		fail_msg("%s", err->msg);
	struct policy d;
	policy_defaults(&d);
	assert_true(policy_equal(p, &d));

	_cleanup_free_ char *text = slurp(path);
	_cleanup_free_ char *yaml = policy_to_yaml(&d);
	policy_clear(&d);
	/* every "  key:" line of the full printout appears in the file, with
	 * the same indentation, at the start of a line */
	int keys = 0;
	for (char *line = yaml, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		char *colon = strchr(line, ':');
		assert_true(colon && colon < nl);
		_cleanup_free_ char *want = xasprintf("\n%.*s", (int)(colon - line + 1), line);
		if (!strstr(text, want))
			fail_msg("policies/default.yaml lacks the key line \"%s\"", want + 1);
		keys++;
	}
	assert_true(keys >= 16);
	/* and every key is explained: a comment line right above it */
	assert_non_null(strstr(text, "# Policy format version"));
}

/* Every shipped policy validates. */
static void test_shipped_policies_validate(void **state)
{
	(void)state;
	_cleanup_free_ char *pattern = src_path("policies/*.yaml");
	glob_t g;
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 2);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct policy *p = NULL;
		struct error *err = NULL;
		if (policy_load_file(g.gl_pathv[i], &p, &err) != 0)
			fail_msg("%s", err->msg);
		policy_free(p);
	}
	globfree(&g);
}

static void test_demo_policy(void **state)
{
	(void)state;
	_cleanup_free_ char *path = src_path("policies/demo.yaml");
	_cleanup_(policy_freep) struct policy *p = NULL;
	assert_int_equal(policy_load_file(path, &p, NULL), 0);
	assert_true(p->steal_high_pct == 30);
	assert_true(p->steal_low_pct == 15);
	assert_true(p->breach_s == 2);
	assert_int_equal(p->interval_ms, 1000);
}

/* --- broken fixtures -------------------------------------------------- */

static const struct broken {
	const char *file;
	int line, col, code;
	const char *msg;          /* what follows "FILE:L:C: " (a prefix of it) */
} broken[] = {
	{ "unknown_key.yaml", 5, 3, EINVAL,
	  "unknown key 'breach_tick' in steal (known keys: high_pct, low_pct, "
	  "breach_s, clear_s, metric)" },
	{ "unknown_top_key.yaml", 4, 1, EINVAL,
	  "unknown key 'throtle' at the top level (known keys: version, host, "
	  "overcommit, admission, sampling, steal, throttle, classes, discovery, events, "
	  "fleet)" },
	{ "dotted_key.yaml", 2, 1, EINVAL, "unknown key 'steal.high_pct' at the top level" },
	{ "wrong_type_mapping.yaml", 4, 5, EINVAL,
	  "overcommit.cpu_ratio must be a number, got a mapping" },
	{ "wrong_type_string.yaml", 3, 16, EINVAL,
	  "sampling.interval_ms must be a whole number, got 'fast'" },
	{ "wrong_type_list.yaml", 3, 22, EINVAL,
	  "host.housekeeping_cpus must be a CPU list such as \"0-3,8\" (\"\" for none), "
	  "got a list" },
	{ "quoted_number.yaml", 3, 13, EINVAL,
	  "steal.high_pct must be a number, got the string \"30\" "
	  "(write numbers without quotes)" },
	{ "float_for_int.yaml", 3, 19, EINVAL,
	  "events.retention_days must be a whole number, got '2.5'" },
	{ "leading_zero.yaml", 3, 16, EINVAL,
	  "sampling.retention_s must be a whole number without leading zeros, got '010'" },
	{ "retired_key.yaml", 4, 3, EINVAL,
	  "steal.breach_ticks was replaced by steal.breach_s: runs and holds are measured "
	  "in seconds of wall time now, not in ticks" },
	{ "retired_self_throttled.yaml", 3, 3, EINVAL,
	  "steal.self_throttled_pct is no longer used: the time a VM is held back by its "
	  "own or its tenant's cpu.max is subtracted from its steal" },
	{ "out_of_range.yaml", 3, 16, ERANGE,
	  "sampling.interval_ms must be between 100 and 60000, got 50" },
	{ "gone_grace_out_of_range.yaml", 3, 17, ERANGE,
	  "admission.gone_grace_s must be between 0 and 86400, got 86401" },
	{ "gone_grace_negative.yaml", 3, 17, ERANGE,
	  "admission.gone_grace_s must be between 0 and 86400, got -1" },
	{ "events_retention_zero.yaml", 3, 19, ERANGE,
	  "events.retention_days must be between 1 and 3650, got 0" },
	{ "events_retention_too_long.yaml", 3, 19, ERANGE,
	  "events.retention_days must be between 1 and 3650, got 3651" },
	{ "events_max_rows_too_few.yaml", 4, 13, ERANGE,
	  "events.max_rows must be between 1000 and 100000000, got 999" },
	{ "events_max_rows_too_many.yaml", 3, 13, ERANGE,
	  "events.max_rows must be between 1000 and 100000000, got 100000001" },
	{ "out_of_range_ratio.yaml", 3, 14, ERANGE,
	  "overcommit.cpu_ratio must be greater than 0 and at most 64, got 0" },
	{ "low_ge_high.yaml", 7, 12, EINVAL,
	  "steal.low_pct must be less than steal.high_pct (30), got 30" },
	{ "high_below_default_low.yaml", 3, 13, EINVAL,
	  "steal.high_pct must be greater than steal.low_pct (15, the default), got 10" },
	{ "bad_cpulist.yaml", 4, 19, EINVAL,
	  "host.dedicated_cpus: invalid CPU list '7-4': range 7-4 is reversed" },
	{ "cpulist_out_of_range.yaml", 3, 19, ERANGE,
	  "host.dedicated_cpus: invalid CPU list '8000-9000': CPU 8000 is out of range "
	  "(0..2047)" },
	{ "overlapping_pools.yaml", 4, 19, EINVAL,
	  "host.dedicated_cpus (\"2-5,8\") and host.housekeeping_cpus (\"0-3\") overlap "
	  "on CPUs 2-3; a CPU belongs to one pool only" },
	{ "duplicate_key.yaml", 5, 3, EINVAL,
	  "duplicate key 'steal.high_pct' (first given at line 3)" },
	{ "duplicate_section.yaml", 6, 1, EINVAL,
	  "duplicate key 'steal' (first given at line 2)" },
	{ "version_2.yaml", 2, 10, ERANGE,
	  "version must be 1 (the policy format this vcpud understands), got 2" },
	{ "version_quoted.yaml", 1, 10, EINVAL,
	  "version must be a whole number, got the string \"1\"" },
	{ "missing_version.yaml", 2, 1, EINVAL, "'version' is required" },
	{ "syntax_error.yaml", 4, 2, EINVAL, "invalid YAML: did not find expected key" },
	{ "syntax_error_flow.yaml", 3, 1, EINVAL,
	  "invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping "
	  "at line 2, column 7)" },
	{ "tab_indent.yaml", 3, 1, EINVAL,
	  "invalid YAML: found character that cannot start any token" },
	{ "bad_utf8.yaml", 4, 20, EINVAL, "invalid YAML: invalid leading UTF-8 octet" },
	{ "empty.yaml", 1, 1, EINVAL, "the policy is empty (it needs at least 'version: 1')" },
	{ "comments_only.yaml", 1, 1, EINVAL, "the policy is empty" },
	{ "top_level_list.yaml", 1, 1, EINVAL,
	  "a policy must be a mapping of keys (starting with 'version: 1'), got a list" },
	{ "top_level_scalar.yaml", 1, 1, EINVAL,
	  "a policy must be a mapping of keys (starting with 'version: 1'), "
	  "got 'just some words'" },
	{ "yes_no_bool.yaml", 3, 12, EINVAL,
	  "throttle.enabled must be true or false, got 'yes' (yes/no/on/off are not accepted)" },
	{ "quoted_bool.yaml", 3, 12, EINVAL,
	  "throttle.dry_run must be true or false, got the string \"false\"" },
	{ "section_not_mapping.yaml", 2, 8, EINVAL,
	  "steal must be a mapping (with keys high_pct, low_pct, breach_s, clear_s, "
	  "metric), got '30'" },
	{ "bad_metric.yaml", 3, 11, EINVAL,
	  "steal.metric must be one of mean, max, got 'average'" },
	{ "exempt_bad_name.yaml", 5, 7, EINVAL,
	  "throttle.exempt_tenants: the string \"a/b\" is not a valid tenant name "
	  "(1 to 64 of A-Z a-z 0-9 _ . -, not . or ..)" },
	{ "exempt_duplicate.yaml", 3, 34, EINVAL,
	  "throttle.exempt_tenants: tenant 'infra' is listed twice" },
	{ "exempt_not_list.yaml", 3, 19, EINVAL,
	  "throttle.exempt_tenants must be a list of tenant names such as [infra, batch] "
	  "([] for none), got 'infra'" },
	{ "hold_max_below_hold.yaml", 5, 15, EINVAL,
	  "throttle.hold_max_s must be at least throttle.hold_s (50), got 40" },
	{ "hold_above_default_max.yaml", 3, 11, EINVAL,
	  "throttle.hold_s must be at most throttle.hold_max_s (300, the default), "
	  "got 301" },
	{ "tighten_fraction_one.yaml", 3, 21, ERANGE,
	  "throttle.tighten_fraction must be greater than 0 and at most 0.95, got 1" },
	{ "alias.yaml", 3, 13, EINVAL, "YAML anchors and aliases are not allowed in a policy (&h)" },
	{ "multi_document.yaml", 2, 1, EINVAL,
	  "a policy file holds one YAML document; found a second one" },
	{ "null_value.yaml", 3, 3, EINVAL,
	  "sampling.interval_ms must be a whole number, got nothing (null)" },
};

static void test_broken_fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(broken); i++) {
		const struct broken *b = &broken[i];
		_cleanup_free_ char *path = fixture(b->file);
		_cleanup_free_ char *want = xasprintf("%s:%d:%d: %s", path, b->line, b->col,
						      b->msg);
		struct policy *p = NULL;
		struct error *err = NULL;
		if (policy_load_file(path, &p, &err) != -1)
			fail_msg("%s was accepted", b->file);
		assert_null(p);
		assert_non_null(err);
		if (strncmp(err->msg, want, strlen(want)) != 0 || err->code != b->code)
			fail_msg("%s:\n  got  (%d) %s\n  want (%d) %s", b->file, err->code,
				 err->msg, b->code, want);
		error_free(&err);
	}
}

/* Every fixture is either in the table above or named valid_*. */
static void test_every_fixture_is_checked(void **state)
{
	(void)state;
	_cleanup_free_ char *pattern = fixture("*.yaml");
	glob_t g;
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		bool known = str_has_prefix(base, "valid_");
		for (size_t j = 0; j < ARRAY_SIZE(broken) && !known; j++)
			known = strcmp(broken[j].file, base) == 0;
		if (!known)
			fail_msg("fixture %s is not tested", base);
	}
	globfree(&g);
}

/* --- strict typing, inline ------------------------------------------- */

static void test_numbers(void **state)
{
	(void)state;
	struct policy *p;

	p = buf_ok("version: 1\novercommit: {cpu_ratio: 1e1}\n");
	assert_true(p->cpu_ratio == 10.0);
	policy_free(p);
	p = buf_ok("version: 1\novercommit: {cpu_ratio: .5}\n");
	assert_true(p->cpu_ratio == 0.5);
	policy_free(p);
	p = buf_ok("version: 1\novercommit: {cpu_ratio: 64}\n");
	assert_true(p->cpu_ratio == 64.0);
	policy_free(p);
	p = buf_ok("version: 1\novercommit: {cpu_ratio: 1e-300}\n");
	assert_true(p->cpu_ratio > 0);
	policy_free(p);
	p = buf_ok("version: 1\nsampling: {interval_ms: 100}\nsteal: {high_pct: 100, "
		   "low_pct: 99.999, breach_s: 3600, clear_s: 0.1}\n");
	assert_int_equal(p->interval_ms, 100);
	assert_true(p->steal_high_pct == 100);
	assert_true(p->breach_s == 3600);
	assert_true(p->clear_s == 0.1);
	policy_free(p);
	p = buf_ok("version: 1\nsampling: {interval_ms: 60000}\n");
	assert_int_equal(p->interval_ms, 60000);
	policy_free(p);

	const char *pre = "t.yaml:2:25: ";
	buf_bad("version: 1\novercommit: {cpu_ratio: 64.0001}\n", ERANGE, pre,
		"greater than 0 and at most 64, got 64.0001");
	buf_bad("version: 1\novercommit: {cpu_ratio: -1}\n", ERANGE, pre, "got -1");
	buf_bad("version: 1\novercommit: {cpu_ratio: 1e400}\n", ERANGE, pre, "got 1e400");
	buf_bad("version: 1\novercommit: {cpu_ratio: .inf}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: .nan}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: 0x10}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: +4}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: 4.0.0}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: 1e}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: .}\n", EINVAL, pre, "must be a number");
	buf_bad("version: 1\novercommit: {cpu_ratio: '4'}\n", EINVAL, pre,
		"got the string \"4\" (write numbers without quotes)");
	buf_bad("version: 1\novercommit: {cpu_ratio: 4 cores}\n", EINVAL, pre,
		"got '4 cores'");

	pre = "t.yaml:2:25: ";
	buf_bad("version: 1\nsampling: {interval_ms: 99}\n", ERANGE, pre,
		"between 100 and 60000, got 99");
	buf_bad("version: 1\nsampling: {interval_ms: 60001}\n", ERANGE, pre, "got 60001");
	buf_bad("version: 1\nsampling: {interval_ms: -5}\n", ERANGE, pre, "got -5");
	buf_bad("version: 1\nsampling: {interval_ms: 4294968296}\n", ERANGE, pre,
		"got 4294968296");
	buf_bad("version: 1\nsampling: {interval_ms: 99999999999999999999999}\n", ERANGE, pre,
		"got 99999999999999999999999");
	buf_bad("version: 1\nsampling: {interval_ms: 1e3}\n", EINVAL, pre,
		"must be a whole number, got '1e3'");
	buf_bad("version: 1\nsampling: {interval_ms: 1000.0}\n", EINVAL, pre,
		"must be a whole number, got '1000.0'");
	buf_bad("version: 1\nsampling: {interval_ms: 1_000}\n", EINVAL, pre,
		"must be a whole number, got '1_000'");
	buf_bad("version: 1\nsampling: {interval_ms: true}\n", EINVAL, pre,
		"must be a whole number, got 'true'");
	buf_bad("version: 1\nsampling: {interval_ms: ~}\n", EINVAL, pre,
		"must be a whole number, got nothing (null)");
	buf_bad("version: 1\nsampling: {interval_ms: !!int 500}\n", EINVAL, pre,
		"explicit YAML tags are not allowed");

	buf_bad("version: 1\nsteal: {high_pct: 0}\n", ERANGE, "t.yaml:2:19: ",
		"steal.high_pct must be greater than 0 and at most 100, got 0");
	buf_bad("version: 1\nsteal: {high_pct: 100.5}\n", ERANGE, "t.yaml:2:19: ", "got 100.5");
	buf_bad("version: 1\nsteal: {low_pct: -0.1}\n", ERANGE, "t.yaml:2:18: ",
		"steal.low_pct must be between 0 and 100, got -0.1");
	buf_bad("version: 1\nsteal: {breach_s: 0}\n", ERANGE, "t.yaml:2:19: ",
		"steal.breach_s must be between 0.1 and 3600, got 0");
	buf_bad("version: 1\nsteal: {clear_s: 3601}\n", ERANGE, "t.yaml:2:18: ",
		"steal.clear_s must be between 0.1 and 3600, got 3601");
	/* an old key in a flow mapping: where it is, and what replaced it */
	buf_bad("version: 1\nthrottle: {hold_max_ticks: 9}\n", EINVAL, "t.yaml:2:12: ",
		"throttle.hold_max_ticks was replaced by throttle.hold_max_s");
	buf_bad("version: 1.0\n", EINVAL, "t.yaml:1:10: ", "version must be a whole number");
	buf_bad("version: 0\n", ERANGE, "t.yaml:1:10: ", "version must be 1");
	buf_bad("version:\n", EINVAL, "t.yaml:1:1: ", "version must be a whole number, got nothing");
}

static void test_booleans(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\nthrottle: {enabled: false, dry_run: true}\n");
	assert_false(p->throttle_enabled);
	assert_true(p->throttle_dry_run);
	policy_free(p);

	const char *bad[] = { "yes", "no", "on", "off", "y", "n", "True", "FALSE", "1", "0",
			      "'true'", "\"false\"", "[true]", "{a: true}", "~" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *text = xasprintf("version: 1\nthrottle:\n  enabled: %s\n",
						      bad[i]);
		buf_bad(text, EINVAL, "t.yaml:3:12: ", "throttle.enabled must be true or false");
	}
}

/* The keys the noisy-neighbour throttler reads: ranges, the steal metric
 * and the exempt tenant list. */
static void test_throttle_keys(void **state)
{
	(void)state;
	struct policy *p;

	p = buf_ok("version: 1\nsteal: {metric: \"max\"}\n"
		   "throttle: {tighten_fraction: 0.95, burstable_floor_pct: 100, "
		   "best_effort_floor_pct: 1, hold_s: 86400, hold_max_s: 86400, "
		   "loosen_step_pct: 1, idle_pct: 99, max_actions_per_tick: 1}\n");
	assert_int_equal(p->steal_metric, POLICY_STEAL_MAX);
	assert_true(p->tighten_fraction == 0.95);
	assert_true(p->burstable_floor_pct == 100);
	assert_true(p->best_effort_floor_pct == 1);
	assert_true(p->hold_s == 86400);
	assert_true(p->hold_max_s == 86400);
	assert_true(p->loosen_step_pct == 1);
	assert_true(p->idle_pct == 99);
	assert_int_equal(p->max_actions_per_tick, 1);
	policy_free(p);
	/* hold_s equal to the maximum is fine */
	p = buf_ok("version: 1\nthrottle: {hold_s: 300}\n");
	assert_true(p->hold_s == 300);
	policy_free(p);

	buf_bad("version: 1\nsteal: {metric: MAX}\n", EINVAL, "t.yaml:2:17: ",
		"steal.metric must be one of mean, max, got 'MAX'");
	buf_bad("version: 1\nsteal: {metric: ~}\n", EINVAL, "t.yaml:2:17: ",
		"got nothing (null)");
	buf_bad("version: 1\nsteal: {metric: [mean]}\n", EINVAL, "t.yaml:2:17: ", "got a list");
	buf_bad("version: 1\nthrottle: {tighten_fraction: 0}\n", ERANGE, "t.yaml:2:30: ",
		"greater than 0 and at most 0.95, got 0");
	buf_bad("version: 1\nthrottle: {burstable_floor_pct: 0.5}\n", ERANGE, "t.yaml:2:33: ",
		"throttle.burstable_floor_pct must be between 1 and 100, got 0.5");
	buf_bad("version: 1\nthrottle: {best_effort_floor_pct: 101}\n", ERANGE,
		"t.yaml:2:35: ", "throttle.best_effort_floor_pct must be between 1 and 100");
	buf_bad("version: 1\nthrottle: {hold_s: 0}\n", ERANGE, "t.yaml:2:20: ",
		"throttle.hold_s must be between 0.1 and 86400, got 0");
	buf_bad("version: 1\nthrottle: {hold_max_s: 86401}\n", ERANGE, "t.yaml:2:24: ",
		"throttle.hold_max_s must be between 0.1 and 86400");
	buf_bad("version: 1\nthrottle: {burst_pct: 100.5}\n", ERANGE, "t.yaml:2:23: ",
		"throttle.burst_pct must be between 0 and 100, got 100.5");
	buf_bad("version: 1\nclasses: {best_effort: {cpu_idle: 1}}\n", EINVAL, "t.yaml:2:35: ",
		"classes.best_effort.cpu_idle must be true or false");
	buf_bad("version: 1\nclasses: {best_effort: {idle: true}}\n", EINVAL, "t.yaml:2:25: ",
		"unknown key 'idle' in classes.best_effort (known keys: cpu_idle)");
	buf_bad("version: 1\nthrottle: {loosen_step_pct: 100.5}\n", ERANGE, "t.yaml:2:29: ",
		"got 100.5");
	buf_bad("version: 1\nthrottle: {idle_pct: 99.5}\n", ERANGE, "t.yaml:2:22: ",
		"throttle.idle_pct must be greater than 0 and at most 99, got 99.5");
	buf_bad("version: 1\nthrottle: {max_actions_per_tick: 0}\n", ERANGE, "t.yaml:2:34: ",
		"throttle.max_actions_per_tick must be between 1 and 1000, got 0");
	buf_bad("version: 1\nthrottle: {max_actions_per_tick: 2.0}\n", EINVAL, "t.yaml:2:34: ",
		"must be a whole number");
	/* hold_max below hold, both given: the maximum is blamed */
	buf_bad("version: 1\nthrottle: {hold_max_s: 5, hold_s: 6.5}\n", EINVAL,
		"t.yaml:2:24: ", "throttle.hold_max_s must be at least throttle.hold_s (6.5)");

	/* exempt tenants */
	p = buf_ok("version: 1\nthrottle:\n  exempt_tenants:\n    - infra\n    - 'db.prod'\n");
	assert_int_equal(p->n_exempt_tenants, 2);
	assert_string_equal(p->exempt_tenants[0], "infra");
	assert_string_equal(p->exempt_tenants[1], "db.prod");
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\nthrottle: {exempt_tenants: []}\n");
	assert_int_equal(p->n_exempt_tenants, 0);
	assert_null(p->exempt_tenants);
	policy_free(p);
	/* 64 characters is the longest name */
	_cleanup_free_ char *longest = xasprintf("version: 1\nthrottle: {exempt_tenants: [%s]}\n",
						 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	p = buf_ok(longest);
	assert_int_equal(strlen(p->exempt_tenants[0]), 64);
	policy_free(p);
	_cleanup_free_ char *toolong = xasprintf("version: 1\nthrottle: {exempt_tenants: [%s]}\n",
						 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	buf_bad(toolong, EINVAL, "t.yaml:2:29: ", "is not a valid tenant name");

	const char *pre = "t.yaml:2:29: ";
	buf_bad("version: 1\nthrottle: {exempt_tenants: [..]}\n", EINVAL, pre,
		"throttle.exempt_tenants: '..' is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [~]}\n", EINVAL, pre,
		"nothing (null) is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [\"\"]}\n", EINVAL, pre,
		"the string \"\" is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [[a]]}\n", EINVAL, pre,
		"a list is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [{a: b}]}\n", EINVAL, pre,
		"a mapping is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [a b]}\n", EINVAL, pre,
		"'a b' is not a valid tenant name");
	buf_bad("version: 1\nthrottle: {exempt_tenants: [a, b, a]}\n", EINVAL,
		"t.yaml:2:35: ", "tenant 'a' is listed twice");
	buf_bad("version: 1\nthrottle: {exempt_tenants: ~}\n", EINVAL, "t.yaml:2:28: ",
		"must be a list of tenant names such as [infra, batch] ([] for none), "
		"got nothing (null)");
	buf_bad("version: 1\nthrottle: {exempt_tenants: {infra: true}}\n", EINVAL,
		"t.yaml:2:28: ", "got a mapping");
	buf_bad("version: 1\nthrottle: {exempt_tenants: \"infra\"}\n", EINVAL,
		"t.yaml:2:28: ", "got the string \"infra\"");
}

/* The keys of the /proc discovery backend: two booleans in their own
 * section, strict like the others. */
static void test_discovery_keys(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\ndiscovery: {proc: false, tenant_from_name: true}\n");
	assert_false(p->discovery_proc);
	assert_true(p->discovery_tenant_from_name);
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\ndiscovery:\n  tenant_from_name: true\n");
	assert_true(p->discovery_proc); /* default kept */
	assert_true(p->discovery_tenant_from_name);
	policy_free(p);
	p = buf_ok("version: 1\ndiscovery:\n");
	assert_true(p->discovery_proc);
	assert_false(p->discovery_tenant_from_name);
	policy_free(p);

	buf_bad("version: 1\ndiscovery: {proc: yes}\n", EINVAL, "t.yaml:2:19: ",
		"discovery.proc must be true or false");
	buf_bad("version: 1\ndiscovery: {tenant_from_name: \"true\"}\n", EINVAL,
		"t.yaml:2:31: ", "discovery.tenant_from_name must be true or false");
	buf_bad("version: 1\ndiscovery: {rules: []}\n", EINVAL, "t.yaml:2:13: ",
		"unknown key 'rules' in discovery (known keys: proc, tenant_from_name)");
	buf_bad("version: 1\ndiscovery: true\n", EINVAL, "t.yaml:2:12: ",
		"discovery must be a mapping (with keys proc, tenant_from_name), got");
}

/* How long a gone VM keeps its admission: whole seconds, 0 (free at once)
 * to a day, in its own section. */
static void test_admission_keys(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\nadmission: {gone_grace_s: 0}\n");
	assert_int_equal(p->gone_grace_s, 0);
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\nadmission:\n  gone_grace_s: 86400\n");
	assert_int_equal(p->gone_grace_s, 86400);
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\nadmission:\n");
	assert_int_equal(p->gone_grace_s, 60); /* empty section: the default */
	policy_free(p);

	const char *pre = "t.yaml:2:27: ";
	buf_bad("version: 1\nadmission: {gone_grace_s: 86401}\n", ERANGE, pre,
		"admission.gone_grace_s must be between 0 and 86400, got 86401");
	buf_bad("version: 1\nadmission: {gone_grace_s: 4294967356}\n", ERANGE, pre,
		"got 4294967356");
	buf_bad("version: 1\nadmission: {gone_grace_s: 60s}\n", EINVAL, pre,
		"admission.gone_grace_s must be a whole number, got '60s'");
	buf_bad("version: 1\nadmission: {gone_grace_s: 1.5}\n", EINVAL, pre,
		"must be a whole number");
	buf_bad("version: 1\nadmission: {gone_grace_s: ~}\n", EINVAL, pre,
		"got nothing (null)");
	buf_bad("version: 1\nadmission: {grace_s: 5}\n", EINVAL, "t.yaml:2:13: ",
		"unknown key 'grace_s' in admission (known keys: gone_grace_s)");
	buf_bad("version: 1\nadmission: 60\n", EINVAL, "t.yaml:2:12: ",
		"admission must be a mapping (with keys gone_grace_s), got '60'");
}

/* Retention of the audit log: days and a row count, both bounded so that
 * the log can neither be switched off nor grow without limit. */
static void test_events_keys(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\nevents: {retention_days: 1, max_rows: 1000}\n");
	assert_int_equal(p->events_retention_days, 1);
	assert_int_equal(p->events_max_rows, 1000);
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\nevents:\n  retention_days: 3650\n  max_rows: 100000000\n");
	assert_int_equal(p->events_retention_days, 3650);
	assert_int_equal(p->events_max_rows, 100000000);
	round_trip(p);
	policy_free(p);
	p = buf_ok("version: 1\nevents:\n  max_rows: 5000\n");
	assert_int_equal(p->events_retention_days, 30); /* default kept */
	assert_int_equal(p->events_max_rows, 5000);
	policy_free(p);

	buf_bad("version: 1\nevents: {retention_days: 0}\n", ERANGE, "t.yaml:2:26: ",
		"events.retention_days must be between 1 and 3650, got 0");
	buf_bad("version: 1\nevents: {retention_days: 30d}\n", EINVAL, "t.yaml:2:26: ",
		"events.retention_days must be a whole number, got '30d'");
	buf_bad("version: 1\nevents: {max_rows: 999}\n", ERANGE, "t.yaml:2:20: ",
		"events.max_rows must be between 1000 and 100000000, got 999");
	buf_bad("version: 1\nevents: {max_rows: 1e6}\n", EINVAL, "t.yaml:2:20: ",
		"events.max_rows must be a whole number, got '1e6'");
	buf_bad("version: 1\nevents: {max_rows: -1000}\n", ERANGE, "t.yaml:2:20: ",
		"got -1000");
	buf_bad("version: 1\nevents: {max_rows: 18446744073709551616}\n", ERANGE,
		"t.yaml:2:20: ", "got 18446744073709551616");
	buf_bad("version: 1\nevents: {keep: 5}\n", EINVAL, "t.yaml:2:10: ",
		"unknown key 'keep' in events (known keys: retention_days, max_rows)");
	buf_bad("version: 1\nevents: [30]\n", EINVAL, "t.yaml:2:9: ",
		"events must be a mapping (with keys retention_days, max_rows), got a list");
}

/* fleet.*: vcpud --fleet's etcd timeouts, lease and eviction */
static void test_fleet_keys(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\nfleet: {timeout_ms: 500, evict_dead_after_s: 60}\n");
	assert_int_equal(p->fleet_timeout_ms, 500);
	assert_int_equal(p->fleet_lease_ttl_s, 10); /* default kept */
	assert_int_equal(p->fleet_evict_dead_after_s, 60);
	round_trip(p);
	policy_free(p);
	buf_bad("version: 1\nfleet: {timeout_ms: 99}\n", ERANGE, "t.yaml:2:21: ",
		"fleet.timeout_ms must be between 100 and 60000, got 99");
	buf_bad("version: 1\nfleet: {lease_ttl_s: 1}\n", ERANGE, "t.yaml:2:22: ",
		"fleet.lease_ttl_s must be between 2 and 600, got 1");
	buf_bad("version: 1\nfleet: {urls: x}\n", EINVAL, "t.yaml:2:9: ",
		"unknown key 'urls' in fleet (known keys: timeout_ms, lease_ttl_s, "
		"evict_dead_after_s)");
}

static void test_cpulists(void **state)
{
	(void)state;
	struct policy *p = buf_ok("version: 1\nhost:\n  housekeeping_cpus: 0\n"
				  "  dedicated_cpus: 4-7,2\n");
	assert_string_equal(p->housekeeping_cpus, "0");     /* plain scalars are fine */
	assert_string_equal(p->dedicated_cpus, "2,4-7");
	assert_int_equal(cpuset_count(&p->dedicated), 5);
	policy_free(p);

	p = buf_ok("version: 1\nhost: {housekeeping_cpus: \"\", dedicated_cpus: \"\"}\n");
	assert_true(cpuset_empty(&p->housekeeping));
	assert_true(cpuset_empty(&p->dedicated));
	policy_free(p);

	/* adjacent but disjoint pools are fine */
	p = buf_ok("version: 1\nhost: {housekeeping_cpus: \"0-1\", dedicated_cpus: \"2-3\"}\n");
	policy_free(p);

	buf_bad("version: 1\nhost: {housekeeping_cpus: \"0 - 1\"}\n", EINVAL, "t.yaml:2:27: ",
		"host.housekeeping_cpus: invalid CPU list '0 - 1'");
	buf_bad("version: 1\nhost: {housekeeping_cpus: \"1,,2\"}\n", EINVAL, "t.yaml:2:27: ",
		"invalid CPU list '1,,2'");
	buf_bad("version: 1\nhost: {housekeeping_cpus: ~}\n", EINVAL, "t.yaml:2:27: ",
		"must be a CPU list such as \"0-3,8\" (\"\" for none), got nothing (null)");
	buf_bad("version: 1\nhost: {housekeeping_cpus: {a: 1}}\n", EINVAL, "t.yaml:2:27: ",
		"got a mapping");
	/* overlap with the default housekeeping pool: points at dedicated_cpus */
	buf_bad("version: 1\nhost:\n  dedicated_cpus: \"1-4\"\n", EINVAL, "t.yaml:3:19: ",
		"overlap on CPUs 1;");
	/* overlap caused by a housekeeping pool that meets the given dedicated one */
	buf_bad("version: 1\nhost:\n  dedicated_cpus: \"8\"\n  housekeeping_cpus: \"0-8\"\n",
		EINVAL, "t.yaml:3:19: ", "overlap on CPUs 8;");
}

static void test_structure(void **state)
{
	(void)state;
	/* keys that are not scalars */
	buf_bad("version: 1\n? [a]\n: 1\n", EINVAL, "t.yaml:2:3: ", "keys must be plain names");
	/* the version is checked before anything else */
	buf_bad("foo: 1\nversion: 3\n", ERANGE, "t.yaml:2:10: ", "version must be 1");
	/* the version may come last */
	struct policy *p = buf_ok("steal: {high_pct: 50}\nversion: 1\n");
	assert_true(p->steal_high_pct == 50);
	policy_free(p);
	/* duplicate version */
	buf_bad("version: 1\nversion: 1\n", EINVAL, "t.yaml:2:1: ",
		"duplicate key 'version' (first given at line 1)");
	/* a duplicate inside a flow mapping */
	buf_bad("version: 1\nsteal: {low_pct: 1, low_pct: 2}\n", EINVAL, "t.yaml:2:21: ",
		"duplicate key 'steal.low_pct'");
	/* unknown keys deep inside an unknown section name the first unknown */
	buf_bad("version: 1\nsteal:\n  tighten:\n    fraction: 0.5\n", EINVAL, "t.yaml:3:3: ",
		"unknown key 'tighten' in steal");
	/* a key that is a section at another level */
	buf_bad("version: 1\nsteal:\n  steal: {}\n", EINVAL, "t.yaml:3:3: ",
		"unknown key 'steal' in steal");
	/* sections must be mappings */
	buf_bad("version: 1\nthrottle: [enabled]\n", EINVAL, "t.yaml:2:11: ",
		"throttle must be a mapping (with keys enabled, dry_run, tighten_fraction, "
		"burstable_floor_pct, best_effort_floor_pct, hold_s, hold_max_s, "
		"loosen_step_pct, burst_pct, idle_pct, max_actions_per_tick, exempt_tenants), "
		"got a list");
	buf_bad("version: 1\nhost: \"0-1\"\n", EINVAL, "t.yaml:2:7: ",
		"host must be a mapping (with keys housekeeping_cpus, dedicated_cpus), "
		"got the string \"0-1\"");
	/* anchors on sections, aliases anywhere */
	buf_bad("version: 1\nsteal: &s {high_pct: 30}\n", EINVAL, "t.yaml:2:8: ", "(&s)");
	buf_bad("version: 1\nx: &a 1\nsteal: {high_pct: *a}\n", EINVAL, "t.yaml:2:4: ", "(&a)");
	/* tags on sections */
	buf_bad("version: 1\nsteal: !!map {high_pct: 30}\n", EINVAL, "t.yaml:2:8: ",
		"explicit YAML tags are not allowed in a policy (tag:yaml.org,2002:map)");
	/* a second document, even an empty one */
	buf_bad("version: 1\n---\n", EINVAL, "t.yaml:2:1: ", "one YAML document");
	/* an explicitly empty document */
	buf_bad("---\n...\n", EINVAL, "t.yaml:1:1: ", "the policy is empty");
	buf_bad("~\n", EINVAL, "t.yaml:1:1: ", "the policy is empty");
	/* control characters and NUL bytes */
	static const char nul[] = "version: 1\n\0\n";
	struct policy *q = NULL;
	struct error *err = NULL;
	assert_int_equal(policy_load_buffer(nul, sizeof(nul) - 1, "n.yaml", &q, &err), -1);
	assert_true(str_has_prefix(err->msg, "n.yaml:2:1: invalid YAML: "));
	assert_null(q);
	error_free(&err);
	/* a NULL name and a NULL err are handled */
	assert_int_equal(policy_load_buffer("x: 1", 4, NULL, &q, &err), -1);
	assert_true(str_has_prefix(err->msg, "<policy>:1:1: "));
	error_free(&err);
	assert_int_equal(policy_load_buffer("x: 1", 4, NULL, &q, NULL), -1);
	assert_int_equal(policy_load_buffer(NULL, 0, "e", &q, &err), -1);
	assert_true(str_has_prefix(err->msg, "e:1:1: the policy is empty"));
	error_free(&err);
	/* a buffer need not be NUL-terminated: only len bytes are read */
	static const char part[] = "version: 1garbage";
	assert_int_equal(policy_load_buffer(part, 10, "p", &q, &err), 0);
	policy_free(q);
}

static void test_limits(void **state)
{
	(void)state;
	/* deep nesting */
	char deep[200];
	int n = snprintf(deep, sizeof(deep), "version: 1\nx: ");
	for (int i = 0; i < 60; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	buf_bad(deep, EINVAL, "t.yaml:2:", "YAML nested too deeply (more than 32 levels)");

	/* many nodes */
	size_t cap = 3 * 20000 + 64;
	_cleanup_free_ char *many = xmalloc(cap);
	size_t len = (size_t)snprintf(many, cap, "version: 1\nx: [");
	for (int i = 0; i < 20000; i++)
		len += (size_t)snprintf(many + len, cap - len, "1,");
	snprintf(many + len, cap - len, "1]\n");
	buf_bad(many, EFBIG, "t.yaml:2:", "too many YAML nodes");

	/* size: a buffer over the limit is refused without parsing */
	_cleanup_free_ char *big = xmalloc(POLICY_MAX_BYTES + 2);
	memset(big, '#', POLICY_MAX_BYTES + 1);
	big[POLICY_MAX_BYTES + 1] = '\0';
	buf_bad(big, EFBIG, "t.yaml: ", "policy is too large (1048577 bytes; the limit is 1048576)");
	/* exactly at the limit is parsed (and is empty: all comment) */
	big[POLICY_MAX_BYTES] = '\0';
	buf_bad(big, EINVAL, "t.yaml:1:1: ", "the policy is empty");

	/* the same through a file */
	char path[] = "/tmp/test_policy_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(big, '#', POLICY_MAX_BYTES + 1);
	assert_int_equal(write(fd, big, POLICY_MAX_BYTES + 1), POLICY_MAX_BYTES + 1);
	close(fd);
	struct policy *p = NULL;
	struct error *err = NULL;
	assert_int_equal(policy_load_file(path, &p, &err), -1);
	assert_int_equal(err->code, EFBIG);
	_cleanup_free_ char *want = xasprintf("%s: policy file is too large", path);
	assert_true(str_has_prefix(err->msg, want));
	error_free(&err);
	unlink(path);
}

static void test_file_errors(void **state)
{
	(void)state;
	struct policy *p = NULL;
	struct error *err = NULL;
	assert_int_equal(policy_load_file("/nonexistent/policy.yaml", &p, &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_string_equal(err->msg, "cannot open policy file /nonexistent/policy.yaml: "
			    "No such file or directory");
	assert_null(p);
	error_free(&err);

	assert_int_equal(policy_load_file("/tmp", &p, &err), -1);
	assert_int_equal(err->code, EISDIR);
	assert_true(str_has_prefix(err->msg, "cannot read policy file /tmp: "));
	error_free(&err);
}

/* --- equality and printing ------------------------------------------- */

static void test_equal(void **state)
{
	(void)state;
	struct policy a, b;
	policy_defaults(&a);
	policy_defaults(&b);
	assert_true(policy_equal(&a, &b));

	/* every field counts */
#define DIFFERS(stmt) do { stmt; assert_false(policy_equal(&a, &b)); \
		policy_clear(&b); policy_defaults(&b); assert_true(policy_equal(&a, &b)); } while (0)
	DIFFERS(b.version = 2);
	DIFFERS(b.cpu_ratio = 4.5);
	DIFFERS(b.gone_grace_s = 61);
	DIFFERS(b.interval_ms = 999);
	DIFFERS(b.steal_high_pct = 31);
	DIFFERS(b.steal_low_pct = 14);
	DIFFERS(b.breach_s = 3.5);
	DIFFERS(b.clear_s = 6);
	DIFFERS(b.throttle_enabled = false);
	DIFFERS(b.throttle_dry_run = true);
	DIFFERS(b.steal_metric = POLICY_STEAL_MAX);
	DIFFERS(b.tighten_fraction = 0.75);
	DIFFERS(b.burstable_floor_pct = 20);
	DIFFERS(b.best_effort_floor_pct = 4);
	DIFFERS(b.hold_s = 11);
	DIFFERS(b.hold_max_s = 301);
	DIFFERS(b.loosen_step_pct = 24);
	DIFFERS(b.burst_pct = 50);
	DIFFERS(b.best_effort_idle = false);
	DIFFERS(b.idle_pct = 49);
	DIFFERS(b.max_actions_per_tick = 5);
	DIFFERS(b.discovery_proc = false);
	DIFFERS(b.discovery_tenant_from_name = true);
	DIFFERS(b.events_retention_days = 31);
	DIFFERS(b.events_max_rows = 1000001);
	DIFFERS(b.exempt_tenants = xcalloc(1, sizeof(char *));
		b.exempt_tenants[0] = xstrdup("infra"); b.n_exempt_tenants = 1);
	DIFFERS(cpuset_set(&b.housekeeping, 5));
	DIFFERS(cpuset_set(&b.dedicated, 5));
	DIFFERS(free(b.dedicated_cpus); b.dedicated_cpus = xstrdup("5"));
#undef DIFFERS
	/* same length, another name; then the same names */
	a.exempt_tenants = xcalloc(2, sizeof(char *));
	a.exempt_tenants[0] = xstrdup("infra");
	a.exempt_tenants[1] = xstrdup("batch");
	a.n_exempt_tenants = 2;
	b.exempt_tenants = xcalloc(2, sizeof(char *));
	b.exempt_tenants[0] = xstrdup("infra");
	b.exempt_tenants[1] = xstrdup("batcH");
	b.n_exempt_tenants = 2;
	assert_false(policy_equal(&a, &b));
	b.exempt_tenants[1][4] = 'h';
	assert_true(policy_equal(&a, &b));
	b.n_exempt_tenants = 1;
	assert_false(policy_equal(&a, &b));
	b.n_exempt_tenants = 2;
	policy_clear(&a);
	policy_clear(&b);
}

static void round_trip(const struct policy *p)
{
	_cleanup_free_ char *text = policy_to_yaml(p);
	struct policy *q = NULL;
	struct error *err = NULL;
	if (policy_load_buffer(text, strlen(text), "show", &q, &err) != 0)
		fail_msg("policy_to_yaml output does not load: %s\n%s", err->msg, text);
	if (!policy_equal(p, q))
		fail_msg("round trip changed the policy:\n%s", text);
	/* and printing again gives the same text */
	_cleanup_free_ char *again = policy_to_yaml(q);
	assert_string_equal(text, again);
	policy_free(q);
}

static void test_to_yaml_defaults(void **state)
{
	(void)state;
	struct policy d;
	policy_defaults(&d);
	_cleanup_free_ char *text = policy_to_yaml(&d);
	assert_string_equal(text,
			    "version: 1\n"
			    "host:\n"
			    "  housekeeping_cpus: \"0-1\"\n"
			    "  dedicated_cpus: \"\"\n"
			    "overcommit:\n"
			    "  cpu_ratio: 4.0\n"
			    "admission:\n"
			    "  gone_grace_s: 60\n"
			    "sampling:\n"
			    "  interval_ms: 1000\n"
			    "  retention_s: 900\n"
			    "steal:\n"
			    "  high_pct: 30.0\n"
			    "  low_pct: 15.0\n"
			    "  breach_s: 3.0\n"
			    "  clear_s: 5.0\n"
			    "  metric: mean\n"
			    "throttle:\n"
			    "  enabled: true\n"
			    "  dry_run: false\n"
			    "  tighten_fraction: 0.5\n"
			    "  burstable_floor_pct: 25.0\n"
			    "  best_effort_floor_pct: 5.0\n"
			    "  hold_s: 10.0\n"
			    "  hold_max_s: 300.0\n"
			    "  loosen_step_pct: 25.0\n"
			    "  burst_pct: 100.0\n"
			    "  idle_pct: 50.0\n"
			    "  max_actions_per_tick: 4\n"
			    "  exempt_tenants: []\n"
			    "classes:\n"
			    "  best_effort:\n"
			    "    cpu_idle: true\n"
			    "discovery:\n"
			    "  proc: true\n"
			    "  tenant_from_name: false\n"
			    "events:\n"
			    "  retention_days: 30\n"
			    "  max_rows: 1000000\n"
			    "fleet:\n"
			    "  timeout_ms: 2000\n"
			    "  lease_ttl_s: 10\n"
			    "  evict_dead_after_s: 0\n");
	round_trip(&d);
	policy_clear(&d);
}

static void test_to_yaml_round_trip(void **state)
{
	(void)state;
	static const char *files[] = { "valid_full.yaml", "valid_minimal.yaml",
				       "valid_flow_and_nulls.yaml" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct policy *p = load_ok(files[i]);
		round_trip(p);
		policy_free(p);
	}
	struct policy *full = load_full();
	round_trip(full);
	policy_free(full);

	/* awkward doubles survive exactly */
	static const double ratios[] = { 0.1, 1.0 / 3, 2.0 / 3, 63.99999999999999, 64,
					 1e-300, 4.9406564584124654e-324, 1.5, 7 };
	for (size_t i = 0; i < ARRAY_SIZE(ratios); i++) {
		struct policy p;
		policy_defaults(&p);
		p.cpu_ratio = ratios[i];
		p.steal_high_pct = 100 * ratios[i] / 64;
		p.steal_low_pct = p.steal_high_pct / 3;
		round_trip(&p);
		policy_clear(&p);
	}

	/* a large CPU list */
	struct policy p;
	policy_defaults(&p);
	cpuset_zero(&p.dedicated);
	for (unsigned c = 2; c < CPULIST_MAX_CPUS; c += 3)
		cpuset_set(&p.dedicated, c);
	free(p.dedicated_cpus);
	p.dedicated_cpus = cpulist_format(&p.dedicated);
	round_trip(&p);
	policy_clear(&p);
}

static void test_to_yaml_quotes_strings(void **state)
{
	(void)state;
	/* a policy built by hand with a hostile string still prints valid
	 * YAML: the string is quoted and escaped, so it cannot inject keys */
	struct policy p;
	policy_defaults(&p);
	free(p.dedicated_cpus);
	p.dedicated_cpus = xstrdup("\"\nthrottle: {enabled: false}\n\\\t");
	_cleanup_free_ char *text = policy_to_yaml(&p);
	assert_non_null(strstr(text,
			       "  dedicated_cpus: \"\\\"\\x0athrottle: {enabled: false}\\x0a\\\\\\x09\"\n"));
	struct policy *q = NULL;
	struct error *err = NULL;
	/* it loads up to the CPU list check, which refuses the string */
	assert_int_equal(policy_load_buffer(text, strlen(text), "s", &q, &err), -1);
	assert_true(str_has_prefix(err->msg, "s:4:19: host.dedicated_cpus: invalid CPU list"));
	error_free(&err);
	policy_clear(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_valid_minimal),
		cmocka_unit_test(test_valid_flow_and_nulls),
		cmocka_unit_test(test_default_yaml_is_defaults),
		cmocka_unit_test(test_shipped_policies_validate),
		cmocka_unit_test(test_demo_policy),
		cmocka_unit_test(test_broken_fixtures),
		cmocka_unit_test(test_every_fixture_is_checked),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_fleet_keys),
		cmocka_unit_test(test_cpulists),
		cmocka_unit_test(test_throttle_keys),
		cmocka_unit_test(test_discovery_keys),
		cmocka_unit_test(test_admission_keys),
		cmocka_unit_test(test_events_keys),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_to_yaml_defaults),
		cmocka_unit_test(test_to_yaml_round_trip),
		cmocka_unit_test(test_to_yaml_quotes_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
