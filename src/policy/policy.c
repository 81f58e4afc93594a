/* policy.c - the operator's policy file: YAML in, struct policy out.
 *
 * Every key lives in one table (policy_keys[] below: dotted path, type,
 * range, default, field offset). Loading, defaults, equality and the YAML
 * printer all walk that table, so a new setting is one struct field plus
 * one row. libyaml's event parser feeds a small node tree (so that `version`
 * is checked before anything else and every node keeps its position); the
 * tree is then validated strictly: unknown keys, wrong types, duplicates and
 * out-of-range values are errors that start with "FILE:LINE:COLUMN: ". */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "vcpud/cpulist.h"
#include "vcpud/path.h"
#include "vcpud/policy.h"
#include "vcpud/util.h"

/* --- the key table ---------------------------------------------------- */

enum key_type {
	KEY_INT,      /* int field, decimal integer */
	KEY_U32,      /* uint32_t field, decimal integer */
	KEY_DOUBLE,   /* double field, integer or decimal number */
	KEY_BOOL,     /* bool field, true or false */
	KEY_CPULIST,  /* char * field (canonical text) + struct cpuset field */
	KEY_ENUM,     /* an enum field (int-sized), one of the row's names */
	KEY_NAMES,    /* char ** field + size_t count: a list of distinct names */
	KEY_TYPE_LAST
};

struct policy_key {
	const char *path;     /* "steal.high_pct"; the sections are its prefixes */
	enum key_type type;
	size_t off;           /* the field */
	size_t off_set;       /* KEY_CPULIST: the parsed struct cpuset;
			       * KEY_NAMES: the size_t count */
	double min, max;      /* numbers: the allowed range */
	bool min_excl;        /* KEY_DOUBLE: min itself is not allowed */
	double def_num;       /* default of a number */
	bool def_bool;
	const char *def_str;  /* default of a CPU list */
	const char *const *names; /* KEY_ENUM: the values, indexed by the enum */
	size_t n_names;
	const char *what;     /* KEY_NAMES: what each entry is ("tenant") */
	bool required;
	const char *note;     /* appended to range errors, or NULL */
};

/* offsetof(struct policy, f), refusing to compile when f is not of type T */
#define FIELD(f, T) \
	(offsetof(struct policy, f) + 0 * sizeof(char[ \
		__builtin_types_compatible_p(__typeof__(((struct policy *)0)->f), T) ? 1 : -1]))

#define K_INT(p, f, lo, hi, def, req, nt) \
	{ .path = p, .type = KEY_INT, .off = FIELD(f, int), .min = lo, .max = hi, \
	  .def_num = def, .required = req, .note = nt }
#define K_U32(p, f, lo, hi, def) \
	{ .path = p, .type = KEY_U32, .off = FIELD(f, uint32_t), .min = lo, .max = hi, \
	  .def_num = def }
#define K_DOUBLE(p, f, lo, excl, hi, def) \
	{ .path = p, .type = KEY_DOUBLE, .off = FIELD(f, double), .min = lo, \
	  .min_excl = excl, .max = hi, .def_num = def }
#define K_BOOL(p, f, def) \
	{ .path = p, .type = KEY_BOOL, .off = FIELD(f, bool), .def_bool = def }
#define K_CPULIST(p, f, fset, def) \
	{ .path = p, .type = KEY_CPULIST, .off = FIELD(f, char *), \
	  .off_set = FIELD(fset, struct cpuset), .def_str = def }
/* T is the field's enum type; it must be the size of an int, which is how
 * the generic code below reads and writes it */
#define K_ENUM(p, f, T, nm, def) \
	{ .path = p, .type = KEY_ENUM, .off = FIELD(f, T) + 0 * sizeof(char[ \
		sizeof(T) == sizeof(int) ? 1 : -1]), \
	  .names = nm, .n_names = ARRAY_SIZE(nm), .def_num = def }
#define K_NAMES(p, f, fn, wh) \
	{ .path = p, .type = KEY_NAMES, .off = FIELD(f, char **), \
	  .off_set = FIELD(fn, size_t), .what = wh }

static const char *const steal_metric_names[] = {
	[POLICY_STEAL_MEAN] = "mean",
	[POLICY_STEAL_MAX] = "max",
};
_Static_assert(ARRAY_SIZE(steal_metric_names) == POLICY_STEAL_METRIC_LAST,
	       "a name for every steal metric");

const char *policy_steal_metric_name(enum policy_steal_metric m)
{
	return (unsigned)m < POLICY_STEAL_METRIC_LAST ? steal_metric_names[m] : NULL;
}

/* Keep the rows of one section together: policy_to_yaml() prints them in
 * this order, and policies/default.yaml follows it. Defaults here are the
 * values documented in policies/default.yaml (a unit test compares them). */
static const struct policy_key policy_keys[] = {
	K_INT("version", version, POLICY_VERSION, POLICY_VERSION, POLICY_VERSION, true,
	      "the policy format this vcpud understands"),
	K_CPULIST("host.housekeeping_cpus", housekeeping_cpus, housekeeping, "0-1"),
	K_CPULIST("host.dedicated_cpus", dedicated_cpus, dedicated, ""),
	K_DOUBLE("overcommit.cpu_ratio", cpu_ratio, 0, true, 64, 4.0),
	K_U32("admission.gone_grace_s", gone_grace_s, 0, 86400, 60),
	K_U32("sampling.interval_ms", interval_ms, 100, 60000, 1000),
	K_U32("sampling.retention_s", retention_s, 10, 86400, 900),
	K_DOUBLE("steal.high_pct", steal_high_pct, 0, true, 100, 30),
	K_DOUBLE("steal.low_pct", steal_low_pct, 0, false, 100, 15),
	K_DOUBLE("steal.breach_s", breach_s, 0.1, false, 3600, 3),
	K_DOUBLE("steal.clear_s", clear_s, 0.1, false, 3600, 5),
	K_ENUM("steal.metric", steal_metric, enum policy_steal_metric, steal_metric_names,
	       POLICY_STEAL_MEAN),
	K_BOOL("throttle.enabled", throttle_enabled, true),
	K_BOOL("throttle.dry_run", throttle_dry_run, false),
	K_DOUBLE("throttle.tighten_fraction", tighten_fraction, 0, true, 0.95, 0.5),
	K_DOUBLE("throttle.burstable_floor_pct", burstable_floor_pct, 1, false, 100, 25),
	K_DOUBLE("throttle.best_effort_floor_pct", best_effort_floor_pct, 1, false, 100, 5),
	K_DOUBLE("throttle.hold_s", hold_s, 0.1, false, 86400, 10),
	K_DOUBLE("throttle.hold_max_s", hold_max_s, 0.1, false, 86400, 300),
	K_DOUBLE("throttle.loosen_step_pct", loosen_step_pct, 1, false, 100, 25),
	K_DOUBLE("throttle.burst_pct", burst_pct, 0, false, 100, 100),
	K_DOUBLE("throttle.idle_pct", idle_pct, 0, true, 99, 50),
	K_U32("throttle.max_actions_per_tick", max_actions_per_tick, 1, 1000, 4),
	K_NAMES("throttle.exempt_tenants", exempt_tenants, n_exempt_tenants, "tenant"),
	K_BOOL("classes.best_effort.cpu_idle", best_effort_idle, true),
	K_BOOL("discovery.proc", discovery_proc, true),
	K_BOOL("discovery.tenant_from_name", discovery_tenant_from_name, false),
	K_U32("events.retention_days", events_retention_days, 1, 3650, 30),
	K_U32("events.max_rows", events_max_rows, 1000, 100000000, 1000000),
	K_U32("fleet.timeout_ms", fleet_timeout_ms, 100, 60000, 2000),
	K_U32("fleet.lease_ttl_s", fleet_lease_ttl_s, 2, 600, 10),
	K_U32("fleet.evict_dead_after_s", fleet_evict_dead_after_s, 0, 31536000, 0),
};
#define NKEYS ARRAY_SIZE(policy_keys)

static void *field(struct policy *p, size_t off) { return (char *)p + off; }
static const void *cfield(const struct policy *p, size_t off) { return (const char *)p + off; }

static int key_index(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(policy_keys[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* True when some key lives under "path." (path is a section). */
static bool is_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(policy_keys[i].path, path, n) == 0 && policy_keys[i].path[n] == '.')
			return true;
	return false;
}

/* "version, host, overcommit" - the names allowed directly under a section
 * ("" for the top level). Caller frees. */
static char *section_children(const char *section)
{
	size_t n = strlen(section);
	char *out = xstrdup("");
	for (size_t i = 0; i < NKEYS; i++) {
		const char *p = policy_keys[i].path;
		if (n) {
			if (strncmp(p, section, n) != 0 || p[n] != '.')
				continue;
			p += n + 1;
		}
		size_t len = strcspn(p, ".");
		/* already listed? (rows of a section are adjacent, but be sure) */
		bool dup = false;
		for (const char *q = out; *q; ) {
			size_t ql = strcspn(q, ",");
			if (ql == len && strncmp(q, p, len) == 0)
				dup = true;
			q += ql;
			while (*q == ',' || *q == ' ')
				q++;
		}
		if (dup)
			continue;
		char *next = xasprintf("%s%s%.*s", out, *out ? ", " : "", (int)len, p);
		free(out);
		out = next;
	}
	return out;
}

/* --- defaults, equality, freeing ---------------------------------------- */

static void key_set_cpulist(struct policy *p, const struct policy_key *k,
			    const struct cpuset *set)
{
	char **s = field(p, k->off);
	free(*s);
	*s = cpulist_format(set);
	*(struct cpuset *)field(p, k->off_set) = *set;
}

void policy_defaults(struct policy *p)
{
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		switch (k->type) {
		case KEY_INT:
			*(int *)field(p, k->off) = (int)k->def_num;
			break;
		case KEY_U32:
			*(uint32_t *)field(p, k->off) = (uint32_t)k->def_num;
			break;
		case KEY_DOUBLE:
			*(double *)field(p, k->off) = k->def_num;
			break;
		case KEY_BOOL:
			*(bool *)field(p, k->off) = k->def_bool;
			break;
		case KEY_CPULIST: {
			struct cpuset set;
			if (cpulist_parse(k->def_str, &set, NULL) < 0)
				abort(); /* a bad default in the table above */
			key_set_cpulist(p, k, &set);
			break;
		}
		case KEY_ENUM:
			*(int *)field(p, k->off) = (int)k->def_num;
			break;
		case KEY_NAMES: /* always empty by default */
			*(char ***)field(p, k->off) = NULL;
			*(size_t *)field(p, k->off_set) = 0;
			break;
		case KEY_TYPE_LAST:
			abort();
		}
	}
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n && names; i++)
		free(names[i]);
	free(names);
}

void policy_clear(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		if (k->type == KEY_CPULIST)
			free(*(char **)field(p, k->off));
		else if (k->type == KEY_NAMES)
			names_free(*(char ***)field(p, k->off), *(size_t *)field(p, k->off_set));
	}
	memset(p, 0, sizeof(*p));
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	policy_clear(p);
	free(p);
}

bool policy_equal(const struct policy *a, const struct policy *b)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		const void *x = cfield(a, k->off), *y = cfield(b, k->off);
		switch (k->type) {
		case KEY_INT:
			if (*(const int *)x != *(const int *)y)
				return false;
			break;
		case KEY_U32:
			if (*(const uint32_t *)x != *(const uint32_t *)y)
				return false;
			break;
		case KEY_DOUBLE:
			if (*(const double *)x != *(const double *)y)
				return false;
			break;
		case KEY_BOOL:
			if (*(const bool *)x != *(const bool *)y)
				return false;
			break;
		case KEY_CPULIST: {
			const char *s = *(char *const *)x, *t = *(char *const *)y;
			if (strcmp(s ? s : "", t ? t : "") != 0 ||
			    !cpuset_equal(cfield(a, k->off_set), cfield(b, k->off_set)))
				return false;
			break;
		}
		case KEY_ENUM:
			if (*(const int *)x != *(const int *)y)
				return false;
			break;
		case KEY_NAMES: {
			size_t n = *(const size_t *)cfield(a, k->off_set);
			if (n != *(const size_t *)cfield(b, k->off_set))
				return false;
			char *const *s = *(char **const *)x, *const *t = *(char **const *)y;
			for (size_t j = 0; j < n; j++)
				if (strcmp(s[j], t[j]) != 0)
					return false;
			break;
		}
		case KEY_TYPE_LAST:
			abort();
		}
	}
	return true;
}

/* --- a node tree from libyaml events ------------------------------------ */

/* Policies are small and flat; these bound what a hostile or broken file
 * can make us allocate or recurse through. */
#define YAML_MAX_DEPTH 32
#define YAML_MAX_NODES 10000

enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ };

struct ynode {
	enum ynode_kind kind;
	yaml_mark_t mark;        /* where the node starts (0-based) */
	char *value;             /* scalar text (NUL-terminated copy) */
	bool plain;              /* scalar written without quotes or | > */
	struct ynode **items;    /* map: key, value, key, value...; seq: items */
	size_t n, cap;
};

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->items[i]);
	free(n->items);
	free(n->value);
	free(n);
}

static void ynode_freep(struct ynode **n) { ynode_free(*n); }

static void ynode_push(struct ynode *parent, struct ynode *child)
{
	if (parent->n == parent->cap) {
		parent->cap = parent->cap ? 2 * parent->cap : 8;
		parent->items = xrealloc(parent->items, parent->cap * sizeof(*parent->items));
	}
	parent->items[parent->n++] = child;
}

struct loader {
	const char *name;        /* file name for messages */
	const char *buf;
	size_t len;
	yaml_parser_t parser;
	size_t nodes;
};

static int errf(const char *name, yaml_mark_t m, struct error **err, int code,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "NAME:LINE:COLUMN: message", 1-based, from a libyaml mark. */
static int errf(const char *name, yaml_mark_t m, struct error **err, int code,
		const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	return error_set(err, code, "%s:%zu:%zu: %s", name, m.line + 1, m.column + 1, msg);
}

/* A reader error (bad UTF-8, control characters) has only a byte offset. */
static yaml_mark_t mark_from_offset(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = { .index = off };
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int syntax_error(struct loader *l, struct error **err)
{
	yaml_parser_t *y = &l->parser;
	const char *problem = y->problem ? y->problem : "unknown error";
	switch (y->error) {
	case YAML_READER_ERROR:
		return errf(l->name, mark_from_offset(l->buf, l->len, y->problem_offset), err,
			    EINVAL, "invalid YAML: %s", problem);
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (y->context)
			return errf(l->name, y->problem_mark, err, EINVAL,
				    "invalid YAML: %s (%s at line %zu, column %zu)", problem,
				    y->context, y->context_mark.line + 1,
				    y->context_mark.column + 1);
		return errf(l->name, y->problem_mark, err, EINVAL, "invalid YAML: %s", problem);
	default:
		return errf(l->name, y->problem_mark, err, EINVAL, "cannot parse YAML: %s",
			    problem);
	}
}

static int next_event(struct loader *l, yaml_event_t *ev, struct error **err)
{
	if (!yaml_parser_parse(&l->parser, ev))
		return syntax_error(l, err);
	return 0;
}

static int refuse_extras(struct loader *l, yaml_mark_t m, const yaml_char_t *anchor,
			 const yaml_char_t *tag, struct error **err)
{
	if (anchor)
		return errf(l->name, m, err, EINVAL,
			    "YAML anchors and aliases are not allowed in a policy (&%s)",
			    (const char *)anchor);
	if (tag)
		return errf(l->name, m, err, EINVAL,
			    "explicit YAML tags are not allowed in a policy (%s)",
			    (const char *)tag);
	return 0;
}

/* Build the node that starts with *ev (which this function frees). */
static int load_node(struct loader *l, yaml_event_t *ev, int depth, struct ynode **out,
		     struct error **err)
{
	_cleanup_(ynode_freep) struct ynode *n = NULL;
	yaml_mark_t m = ev->start_mark;
	int r = 0;

	if (++l->nodes > YAML_MAX_NODES) {
		r = errf(l->name, m, err, EFBIG, "too many YAML nodes (more than %d)",
			 YAML_MAX_NODES);
		goto out;
	}
	if (depth > YAML_MAX_DEPTH) {
		r = errf(l->name, m, err, EINVAL, "YAML nested too deeply (more than %d levels)",
			 YAML_MAX_DEPTH);
		goto out;
	}

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		r = errf(l->name, m, err, EINVAL,
			 "YAML anchors and aliases are not allowed in a policy (*%s)",
			 (const char *)ev->data.alias.anchor);
		goto out;
	case YAML_SCALAR_EVENT:
		if ((r = refuse_extras(l, m, ev->data.scalar.anchor, ev->data.scalar.tag, err)) < 0)
			goto out;
		n = xcalloc(1, sizeof(*n));
		n->kind = YN_SCALAR;
		n->mark = m;
		n->value = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (strlen(n->value) != ev->data.scalar.length) {
			r = errf(l->name, m, err, EINVAL, "NUL character in a YAML string");
			goto out;
		}
		break;
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT: {
		bool map = ev->type == YAML_MAPPING_START_EVENT;
		if (map)
			r = refuse_extras(l, m, ev->data.mapping_start.anchor,
					  ev->data.mapping_start.tag, err);
		else
			r = refuse_extras(l, m, ev->data.sequence_start.anchor,
					  ev->data.sequence_start.tag, err);
		if (r < 0)
			goto out;
		n = xcalloc(1, sizeof(*n));
		n->kind = map ? YN_MAP : YN_SEQ;
		n->mark = m;
		yaml_event_type_t end = map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
		for (;;) {
			yaml_event_t child;
			if ((r = next_event(l, &child, err)) < 0)
				goto out;
			if (child.type == end) {
				yaml_event_delete(&child);
				break;
			}
			struct ynode *c = NULL;
			if ((r = load_node(l, &child, depth + 1, &c, err)) < 0)
				goto out;
			ynode_push(n, c);
		}
		break;
	}
	default:
		r = errf(l->name, m, err, EINVAL, "unexpected YAML event %d", (int)ev->type);
		goto out;
	}
	*out = steal_ptr(&n);
out:
	yaml_event_delete(ev);
	return r;
}

/* The one document of the buffer, or NULL (and no error) when there is
 * none: an empty file or one of only comments. */
static int load_document(struct loader *l, struct ynode **out, struct error **err)
{
	yaml_event_t ev;
	_cleanup_(ynode_freep) struct ynode *root = NULL;

	*out = NULL;
	if (next_event(l, &ev, err) < 0)              /* STREAM-START */
		return -1;
	yaml_event_delete(&ev);
	if (next_event(l, &ev, err) < 0)
		return -1;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		return 0;
	}
	yaml_event_delete(&ev);                       /* DOCUMENT-START */
	if (next_event(l, &ev, err) < 0 || load_node(l, &ev, 0, &root, err) < 0)
		return -1;
	if (next_event(l, &ev, err) < 0)              /* DOCUMENT-END */
		return -1;
	yaml_event_delete(&ev);
	if (next_event(l, &ev, err) < 0)
		return -1;
	if (ev.type != YAML_STREAM_END_EVENT) {
		yaml_mark_t m = ev.start_mark;
		yaml_event_delete(&ev);
		return errf(l->name, m, err, EINVAL,
			    "a policy file holds one YAML document; found a second one");
	}
	yaml_event_delete(&ev);
	*out = steal_ptr(&root);
	return 0;
}

/* --- validation --------------------------------------------------------- */

struct validator {
	const char *name;
	struct policy *p;
	bool given[NKEYS];
	yaml_mark_t mark[NKEYS]; /* of the value, when given */
};

static bool scalar_is_null(const struct ynode *n)
{
	return n->kind == YN_SCALAR && n->plain &&
	       (!*n->value || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
		!strcmp(n->value, "Null") || !strcmp(n->value, "NULL"));
}

/* "a mapping", "a list", "null", "the string \"30\"", "'abc'" - what the
 * operator wrote, for type errors. Caller frees. */
static char *describe(const struct ynode *n)
{
	switch (n->kind) {
	case YN_MAP: return xstrdup("a mapping");
	case YN_SEQ: return xstrdup("a list");
	case YN_SCALAR: break;
	}
	if (scalar_is_null(n))
		return xstrdup("nothing (null)");
	char q[68];
	size_t len = strlen(n->value), j = 0;
	for (size_t i = 0; i < len && i < 60; i++) {
		unsigned char c = (unsigned char)n->value[i];
		q[j++] = (c >= 0x20 && c != 0x7f) ? (char)c : '?';
	}
	q[j] = '\0';
	const char *more = len > 60 ? "..." : "";
	if (n->plain)
		return xasprintf("'%s%s'", q, more);
	return xasprintf("the string \"%s%s\"", q, more);
}

/* Decimal number syntax: -?(0|[1-9][0-9]*)(\.[0-9]*)?([eE][-+]?[0-9]+)?
 * or -?\.[0-9]+(exponent)?. Leading zeros are refused because YAML 1.1
 * readers take "010" as octal. *is_int is set when there is no fraction
 * and no exponent. */
static bool number_syntax(const char *s, bool *is_int)
{
	const char *p = s;
	bool digits = false;
	*is_int = true;
	if (*p == '-')
		p++;
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return false;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits = true;
	}
	if (*p == '.') {
		*is_int = false;
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		*is_int = false;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

static int range_error(struct validator *v, const struct policy_key *k, yaml_mark_t m,
		       const char *got, struct error **err)
{
	/* whole-number bounds in full: "100000000", not %g's "1e+08" */
	char lo[40], hi[40], range[128];
	bool whole = k->type != KEY_DOUBLE;
	snprintf(lo, sizeof(lo), whole ? "%.0f" : "%g", k->min);
	snprintf(hi, sizeof(hi), whole ? "%.0f" : "%g", k->max);
	if (k->min == k->max)
		snprintf(range, sizeof(range), "%s", lo);
	else if (k->min_excl)
		snprintf(range, sizeof(range), "greater than %s and at most %s", lo, hi);
	else
		snprintf(range, sizeof(range), "between %s and %s", lo, hi);
	return errf(v->name, m, err, ERANGE, "%s must be %s%s%s%s, got %s", k->path, range,
		    k->note ? " (" : "", k->note ? k->note : "", k->note ? ")" : "", got);
}

static int set_number(struct validator *v, const struct policy_key *k,
		      const struct ynode *n, yaml_mark_t at, struct error **err)
{
	bool integer = k->type != KEY_DOUBLE;
	const char *want = integer ? "a whole number" : "a number";
	bool is_int;

	if (n->kind != YN_SCALAR || scalar_is_null(n)) {
		_cleanup_free_ char *d = describe(n);
		return errf(v->name, at, err, EINVAL, "%s must be %s, got %s", k->path,
			    want, d);
	}
	bool syntax = number_syntax(n->value, &is_int);
	if (!n->plain) {
		_cleanup_free_ char *d = describe(n);
		return errf(v->name, at, err, EINVAL, "%s must be %s, got %s%s", k->path,
			    want, d, syntax ? " (write numbers without quotes)" : "");
	}
	if (!syntax || (integer && !is_int)) {
		const char *s = n->value + (n->value[0] == '-');
		bool zeros = s[0] == '0' && s[1] >= '0' && s[1] <= '9';
		_cleanup_free_ char *d = describe(n);
		return errf(v->name, at, err, EINVAL, "%s must be %s%s, got %s", k->path, want,
			    zeros ? " without leading zeros" : "", d);
	}

	errno = 0;
	if (integer) {
		char *end;
		long long x = strtoll(n->value, &end, 10);
		if (errno == ERANGE || x < (long long)k->min || x > (long long)k->max)
			return range_error(v, k, at, n->value, err);
		if (k->type == KEY_INT)
			*(int *)field(v->p, k->off) = (int)x;
		else
			*(uint32_t *)field(v->p, k->off) = (uint32_t)x;
		return 0;
	}
	double x = strtod(n->value, NULL);
	/* an overflow is out of range; an underflow to ~0 is just a small number */
	if (!isfinite(x) || (errno == ERANGE && fabs(x) > 1) ||
	    x > k->max || x < k->min || (k->min_excl && x == k->min))
		return range_error(v, k, at, n->value, err);
	*(double *)field(v->p, k->off) = x;
	return 0;
}

static int set_bool(struct validator *v, const struct policy_key *k, const struct ynode *n,
		    yaml_mark_t at, struct error **err)
{
	if (n->kind == YN_SCALAR && n->plain) {
		if (!strcmp(n->value, "true")) {
			*(bool *)field(v->p, k->off) = true;
			return 0;
		}
		if (!strcmp(n->value, "false")) {
			*(bool *)field(v->p, k->off) = false;
			return 0;
		}
	}
	_cleanup_free_ char *d = describe(n);
	return errf(v->name, at, err, EINVAL,
		    "%s must be true or false, got %s (yes/no/on/off are not accepted)",
		    k->path, d);
}

static int set_cpulist(struct validator *v, const struct policy_key *k,
		       const struct ynode *n, yaml_mark_t at, struct error **err)
{
	if (n->kind != YN_SCALAR || scalar_is_null(n)) {
		_cleanup_free_ char *d = describe(n);
		return errf(v->name, at, err, EINVAL,
			    "%s must be a CPU list such as \"0-3,8\" (\"\" for none), got %s",
			    k->path, d);
	}
	struct cpuset set;
	_cleanup_error_ struct error *e = NULL;
	if (cpulist_parse(n->value, &set, &e) < 0)
		return errf(v->name, at, err, e->code,
			    "%s: %s (expected a CPU list such as \"0-3,8\", CPUs 0..%d)",
			    k->path, e->msg, CPULIST_MAX_CPUS - 1);
	key_set_cpulist(v->p, k, &set);
	return 0;
}

/* "mean, max" - the values of an enum key. Caller frees. */
static char *enum_choices(const struct policy_key *k)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < k->n_names; i++) {
		char *next = xasprintf("%s%s%s", out, i ? ", " : "", k->names[i]);
		free(out);
		out = next;
	}
	return out;
}

/* A scalar naming one of the key's values; quotes are fine ("max"). */
static int set_enum(struct validator *v, const struct policy_key *k, const struct ynode *n,
		    yaml_mark_t at, struct error **err)
{
	if (n->kind == YN_SCALAR && !scalar_is_null(n)) {
		for (size_t i = 0; i < k->n_names; i++) {
			if (strcmp(n->value, k->names[i]) == 0) {
				*(int *)field(v->p, k->off) = (int)i;
				return 0;
			}
		}
	}
	_cleanup_free_ char *d = describe(n);
	_cleanup_free_ char *choices = enum_choices(k);
	return errf(v->name, at, err, EINVAL, "%s must be one of %s, got %s", k->path,
		    choices, d);
}

struct names_list {
	char **v;
	size_t n;
};

static void names_listp(struct names_list *l) { names_free(l->v, l->n); }

/* A list of distinct valid names (name_valid()); [] for none. Entries may
 * be quoted: a tenant called "null" is written "null". Errors point at the
 * entry. */
static int set_names(struct validator *v, const struct policy_key *k, const struct ynode *n,
		     yaml_mark_t at, struct error **err)
{
	if (n->kind != YN_SEQ) {
		_cleanup_free_ char *d = describe(n);
		return errf(v->name, at, err, EINVAL,
			    "%s must be a list of %s names such as [infra, batch] ([] for none), "
			    "got %s", k->path, k->what, d);
	}
	_cleanup_(names_listp) struct names_list l = {
		.v = xcalloc(n->n ? n->n : 1, sizeof(char *)),
	};
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];
		if (it->kind != YN_SCALAR || scalar_is_null(it) || !name_valid(it->value)) {
			_cleanup_free_ char *d = describe(it);
			return errf(v->name, it->mark, err, EINVAL,
				    "%s: %s is not a valid %s name (1 to %d of A-Z a-z 0-9 _ . -, "
				    "not . or ..)", k->path, d, k->what, NAME_MAX_LEN);
		}
		for (size_t j = 0; j < l.n; j++)
			if (strcmp(l.v[j], it->value) == 0)
				return errf(v->name, it->mark, err, EINVAL,
					    "%s: %s '%s' is listed twice", k->path, k->what,
					    it->value);
		l.v[l.n++] = xstrdup(it->value);
	}
	char ***names = field(v->p, k->off);
	size_t *count = field(v->p, k->off_set);
	names_free(*names, *count);
	*names = l.n ? steal_ptr(&l.v) : NULL;
	*count = l.n;
	l.n = 0;
	return 0;
}

/* Set key i from the value node n of the mapping entry whose key node is
 * `key`. Errors point at the value, except for an empty value ("a:" and
 * nothing after it), which libyaml places at the next token: those point
 * at the key. */
static int set_key(struct validator *v, size_t i, const struct ynode *key,
		   const struct ynode *n, struct error **err)
{
	const struct policy_key *k = &policy_keys[i];
	yaml_mark_t at = n->kind == YN_SCALAR && n->plain && !*n->value ? key->mark : n->mark;
	int r;
	switch (k->type) {
	case KEY_INT:
	case KEY_U32:
	case KEY_DOUBLE:
		r = set_number(v, k, n, at, err);
		break;
	case KEY_BOOL:
		r = set_bool(v, k, n, at, err);
		break;
	case KEY_CPULIST:
		r = set_cpulist(v, k, n, at, err);
		break;
	case KEY_ENUM:
		r = set_enum(v, k, n, at, err);
		break;
	case KEY_NAMES:
		r = set_names(v, k, n, at, err);
		break;
	default:
		abort();
	}
	if (r == 0) {
		v->given[i] = true;
		v->mark[i] = at;
	}
	return r;
}

/* Keys of earlier versions of the policy format, and what to do instead.
 * Refused, not converted: a tick count has no fixed length in time
 * (sampling.interval_ms, and the extra ticks of API calls), so any
 * conversion would guess. */
#define IN_SECONDS "runs and holds are measured in seconds of wall time now, not in " \
	"ticks (API calls and libvirt events add ticks, which made them shorter); give " \
	"the time in seconds"
static const char *retired_key(const char *path)
{
	static const char *const old_new[][2] = {
		{ "steal.breach_ticks", "was replaced by steal.breach_s: " IN_SECONDS },
		{ "steal.clear_ticks", "was replaced by steal.clear_s: " IN_SECONDS },
		{ "throttle.hold_ticks", "was replaced by throttle.hold_s: " IN_SECONDS },
		{ "throttle.hold_max_ticks", "was replaced by throttle.hold_max_s: " IN_SECONDS },
		{ "steal.self_throttled_pct", "is no longer used: the time a VM is held back by "
		  "its own or its tenant's cpu.max is subtracted from its steal instead of "
		  "keeping it from being a victim; remove the key" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(old_new); i++)
		if (strcmp(path, old_new[i][0]) == 0)
			return old_new[i][1];
	return NULL;
}

/* Validate the mapping `map` found at `section` ("" for the top level). */
static int walk_mapping(struct validator *v, const char *section, const struct ynode *map,
			struct error **err)
{
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *key = map->items[i], *val = map->items[i + 1];
		if (key->kind != YN_SCALAR) {
			_cleanup_free_ char *d = describe(key);
			return errf(v->name, key->mark, err, EINVAL,
				    "keys must be plain names, got %s", d);
		}
		/* Duplicates first: the keys before this one are all known (an
		 * unknown one has stopped us), so this loop stays short. */
		for (size_t j = 0; j < i; j += 2) {
			if (strcmp(map->items[j]->value, key->value) == 0)
				return errf(v->name, key->mark, err, EINVAL,
					    "duplicate key '%s%s%s' (first given at line %zu)",
					    section, *section ? "." : "", key->value,
					    map->items[j]->mark.line + 1);
		}
		_cleanup_free_ char *path = *section ? xasprintf("%s.%s", section, key->value)
						     : xstrdup(key->value);
		int idx = strchr(key->value, '.') || !*key->value ? -1 : key_index(path);
		if (idx >= 0) {
			if (set_key(v, (size_t)idx, key, val, err) < 0)
				return -1;
			continue;
		}
		if (!strchr(key->value, '.') && *key->value && is_section(path)) {
			if (scalar_is_null(val))
				continue; /* "steal:" with every key commented out */
			if (val->kind != YN_MAP) {
				_cleanup_free_ char *d = describe(val);
				_cleanup_free_ char *kids = section_children(path);
				return errf(v->name, val->mark, err, EINVAL,
					    "%s must be a mapping (with keys %s), got %s", path,
					    kids, d);
			}
			if (walk_mapping(v, path, val, err) < 0)
				return -1;
			continue;
		}
		const char *retired = retired_key(path);
		if (retired)
			return errf(v->name, key->mark, err, EINVAL, "%s %s", path, retired);
		_cleanup_free_ char *kids = section_children(section);
		_cleanup_free_ char *d = describe(key);
		if (*section)
			return errf(v->name, key->mark, err, EINVAL,
				    "unknown key %s in %s (known keys: %s)", d, section, kids);
		return errf(v->name, key->mark, err, EINVAL,
			    "unknown key %s at the top level (known keys: %s)", d, kids);
	}
	return 0;
}

/* Checks that involve more than one key, once every key is read. The error
 * points at whichever of the keys the file gave (the later one if both). */
static int check_cross(struct validator *v, const struct ynode *root, struct error **err)
{
	struct policy *p = v->p;
	int hi = key_index("steal.high_pct"), lo = key_index("steal.low_pct");
	if (p->steal_low_pct >= p->steal_high_pct) {
		if (v->given[lo])
			return errf(v->name, v->mark[lo], err, EINVAL,
				    "steal.low_pct must be less than steal.high_pct (%g), got %g",
				    p->steal_high_pct, p->steal_low_pct);
		return errf(v->name, v->given[hi] ? v->mark[hi] : root->mark, err, EINVAL,
			    "steal.high_pct must be greater than steal.low_pct (%g, the default), "
			    "got %g", p->steal_low_pct, p->steal_high_pct);
	}

	int ht = key_index("throttle.hold_s"), hm = key_index("throttle.hold_max_s");
	if (p->hold_max_s < p->hold_s) {
		if (v->given[hm])
			return errf(v->name, v->mark[hm], err, EINVAL,
				    "throttle.hold_max_s must be at least throttle.hold_s "
				    "(%g), got %g", p->hold_s, p->hold_max_s);
		return errf(v->name, v->given[ht] ? v->mark[ht] : root->mark, err, EINVAL,
			    "throttle.hold_s must be at most throttle.hold_max_s (%g%s), "
			    "got %g", p->hold_max_s, v->given[hm] ? "" : ", the default", p->hold_s);
	}

	int hk = key_index("host.housekeeping_cpus"), dd = key_index("host.dedicated_cpus");
	if (cpuset_intersects(&p->housekeeping, &p->dedicated)) {
		struct cpuset both;
		cpuset_and(&both, &p->housekeeping, &p->dedicated);
		_cleanup_free_ char *s = cpulist_format(&both);
		int at = v->given[dd] ? dd : hk;
		return errf(v->name, v->given[at] ? v->mark[at] : root->mark, err, EINVAL,
			    "host.dedicated_cpus (\"%s\") and host.housekeeping_cpus (\"%s\") "
			    "overlap on CPUs %s; a CPU belongs to one pool only",
			    p->dedicated_cpus, p->housekeeping_cpus, s);
	}
	return 0;
}

static int validate(struct validator *v, const struct ynode *root, struct error **err)
{
	if (root->kind != YN_MAP) {
		_cleanup_free_ char *d = describe(root);
		return errf(v->name, root->mark, err, EINVAL,
			    "a policy must be a mapping of keys (starting with 'version: %d'), "
			    "got %s", POLICY_VERSION, d);
	}

	/* The version decides what the rest means, so it goes first: a newer
	 * file gets "version must be 1", not "unknown key". */
	int vi = key_index("version");
	size_t ver = 0;
	while (ver + 1 < root->n && !(root->items[ver]->kind == YN_SCALAR &&
				      !strcmp(root->items[ver]->value, "version")))
		ver += 2;
	if (ver + 1 >= root->n)
		return errf(v->name, root->mark, err, EINVAL,
			    "'version' is required (add 'version: %d' at the top)", POLICY_VERSION);
	if (set_key(v, (size_t)vi, root->items[ver], root->items[ver + 1], err) < 0)
		return -1;

	if (walk_mapping(v, "", root, err) < 0)
		return -1;
	for (size_t i = 0; i < NKEYS; i++)
		if (policy_keys[i].required && !v->given[i])
			return errf(v->name, root->mark, err, EINVAL, "'%s' is required",
				    policy_keys[i].path);
	return check_cross(v, root, err);
}

/* --- loading ------------------------------------------------------------ */

int policy_load_buffer(const char *buf, size_t len, const char *name,
		       struct policy **out, struct error **err)
{
	if (!name)
		name = "<policy>";
	if (len > POLICY_MAX_BYTES)
		return error_set(err, EFBIG, "%s: policy is too large (%zu bytes; the limit is %d)",
				 name, len, POLICY_MAX_BYTES);

	struct loader l = { .name = name, .buf = buf, .len = len };
	if (!yaml_parser_initialize(&l.parser))
		abort();
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)(buf ? buf : ""),
				     buf ? len : 0);
	_cleanup_(ynode_freep) struct ynode *root = NULL;
	int r = load_document(&l, &root, err);
	yaml_parser_delete(&l.parser);
	if (r < 0)
		return -1;
	if (!root || scalar_is_null(root)) /* no document, or "---" and nothing */
		return error_set(err, EINVAL,
				 "%s:1:1: the policy is empty (it needs at least 'version: %d')",
				 name, POLICY_VERSION);

	_cleanup_(policy_freep) struct policy *p = xcalloc(1, sizeof(*p));
	policy_defaults(p);
	struct validator v = { .name = name, .p = p };
	if (validate(&v, root, err) < 0)
		return -1;
	*out = steal_ptr(&p);
	return 0;
}

int policy_load_file(const char *path, struct policy **out, struct error **err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	if (read_file_max(path, "policy file", POLICY_MAX_BYTES, &buf, &len, err) < 0)
		return -1;
	return policy_load_buffer(buf, len, path, out, err);
}

/* --- printing ----------------------------------------------------------- */

/* The shortest text that reads back as exactly x, always with a '.' or an
 * exponent so that it reads as a number with a fraction ("4.0"). */
static void fmt_double(char *out, size_t sz, double x)
{
	/* no exponent for everyday magnitudes: "30.0", not "3e+01" */
	bool plain = fabs(x) >= 1e-4 && fabs(x) < 1e15;
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, sz, "%.*g", prec, x);
		if (strtod(out, NULL) == x && !(plain && strchr(out, 'e')))
			break;
	}
	if (isfinite(x) && !strpbrk(out, ".e"))
		strncat(out, ".0", sz - strlen(out) - 1);
}

static void put_yaml_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\x%02x", *c);
		else
			fputc(*c, f);
	}
	fputc('"', f);
}

char *policy_to_yaml(const struct policy *p)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	if (!f)
		abort();

	const char *prev = "";
	for (size_t i = 0; i < NKEYS; i++) {
		const struct policy_key *k = &policy_keys[i];
		/* open the sections this key is in that the previous key was not */
		size_t common = 0, depth = 0;
		for (size_t j = 0; k->path[j] && k->path[j] == prev[j]; j++)
			if (k->path[j] == '.')
				common = j + 1;
		for (size_t j = 0; j < common; j++)
			depth += k->path[j] == '.';
		const char *rest = k->path + common;
		for (const char *dot; (dot = strchr(rest, '.')); rest = dot + 1, depth++)
			fprintf(f, "%*s%.*s:\n", (int)(2 * depth), "", (int)(dot - rest), rest);
		fprintf(f, "%*s%s: ", (int)(2 * depth), "", rest);

		const void *x = cfield(p, k->off);
		switch (k->type) {
		case KEY_INT:
			fprintf(f, "%d\n", *(const int *)x);
			break;
		case KEY_U32:
			fprintf(f, "%u\n", (unsigned)*(const uint32_t *)x);
			break;
		case KEY_DOUBLE: {
			char num[40];
			fmt_double(num, sizeof(num), *(const double *)x);
			fprintf(f, "%s\n", num);
			break;
		}
		case KEY_BOOL:
			fputs(*(const bool *)x ? "true\n" : "false\n", f);
			break;
		case KEY_CPULIST:
			put_yaml_string(f, *(char *const *)x);
			fputc('\n', f);
			break;
		case KEY_ENUM:
			fprintf(f, "%s\n", k->names[*(const int *)x]);
			break;
		case KEY_NAMES: {
			char *const *names = *(char **const *)x;
			size_t n = *(const size_t *)cfield(p, k->off_set);
			fputc('[', f);
			for (size_t j = 0; j < n; j++) {
				if (j)
					fputs(", ", f);
				put_yaml_string(f, names[j]);
			}
			fputs("]\n", f);
			break;
		}
		case KEY_TYPE_LAST:
			abort();
		}
		prev = k->path;
	}
	if (fclose(f) != 0)
		abort();
	return text;
}
