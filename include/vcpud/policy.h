/* policy.h - the operator's policy file (YAML), parsed strictly.
 *
 * policy_load_*() turn a YAML document into a struct policy; unknown keys,
 * wrong types and out-of-range values are errors whose message starts with
 * "FILE:LINE:COLUMN: ". Missing keys take the defaults of policy_defaults(),
 * which are the values in policies/default.yaml. */
#ifndef VCPUD_POLICY_H
#define VCPUD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/cpulist.h"
#include "vcpud/error.h"

#define POLICY_VERSION 1
/* Largest policy file or buffer accepted (EFBIG beyond). */
#define POLICY_MAX_BYTES (1024 * 1024)

/* How a VM's steal is summarised over its vCPUs (steal.metric). */
enum policy_steal_metric {
	POLICY_STEAL_MEAN,             /* "mean": the mean over its vCPUs */
	POLICY_STEAL_MAX,              /* "max": its worst vCPU */
	POLICY_STEAL_METRIC_LAST
};

struct policy {
	int version;                   /* must be 1 */
	/* host: CPU pools, cpulist strings (may be empty) */
	char *housekeeping_cpus;       /* owned; "" when unset */
	char *dedicated_cpus;          /* owned; "" when unset */
	struct cpuset housekeeping;    /* parsed forms of the two strings */
	struct cpuset dedicated;
	/* overcommit */
	double cpu_ratio;              /* > 0, <= 64; default 4.0 */
	/* admission (see src/registry/ and policies/default.yaml) */
	uint32_t gone_grace_s;         /* seconds a gone VM keeps its admission,
					* 0..86400; default 60; 0 frees it in the
					* tick that finds the VM gone */
	/* fleet (vcpud --fleet): see policies/default.yaml */
	uint32_t fleet_timeout_ms;     /* 100..60000; default 2000 */
	uint32_t fleet_lease_ttl_s;    /* 2..600; default 10 */
	uint32_t fleet_evict_dead_after_s; /* 0 (never, default)..a year */
	/* sampling */
	uint32_t interval_ms;          /* 100..60000; default 1000 */
	uint32_t retention_s;          /* per-VM sample history kept, 10..86400; default 900 */
	/* steal */
	double steal_high_pct;         /* (0, 100]; default 30 */
	double steal_low_pct;          /* [0, high); default 15 */
	double breach_s;               /* [0.1, 3600] s of measured time; default 3 */
	double clear_s;                /* [0.1, 3600] s; default 5 */
	enum policy_steal_metric steal_metric; /* default POLICY_STEAL_MEAN */
	/* throttle (see src/throttle/ and policies/default.yaml) */
	bool throttle_enabled;         /* default true */
	bool throttle_dry_run;         /* default false */
	double tighten_fraction;       /* (0, 0.95]; default 0.5 */
	double burstable_floor_pct;    /* [1, 100] per vCPU; default 25 */
	double best_effort_floor_pct;  /* [1, 100] per vCPU; default 5 */
	double hold_s;                 /* [0.1, 86400] s; default 10 */
	double hold_max_s;             /* [hold_s, 86400] s; default 300 */
	double loosen_step_pct;        /* [1, 100] per vCPU; default 25 */
	double burst_pct;              /* [0, 100] of a cap: its cpu.max.burst;
					* default 100 */
	double idle_pct;               /* (0, 99]; default 50 */
	uint32_t max_actions_per_tick; /* 1..1000; default 4 */
	char **exempt_tenants;         /* owned; valid tenant names, no duplicates */
	size_t n_exempt_tenants;       /* default 0 (exempt_tenants NULL) */
	/* classes */
	bool best_effort_idle;         /* classes.best_effort.cpu_idle: best-effort
					* tenants' groups in cpu.idle; default true */
	/* discovery (see src/discover/scan.c and policies/default.yaml) */
	bool discovery_proc;           /* find VMs in /proc by vCPU thread names;
					* default true */
	bool discovery_tenant_from_name; /* a VM found in /proc whose given name
					  * is TENANT.REST belongs to TENANT;
					  * default false */
	/* events: retention of the audit log (see store_event_prune()) */
	uint32_t events_retention_days; /* 1..3650; default 30 */
	uint32_t events_max_rows;       /* 1000..100000000; default 1000000 */
};

/* "mean", "max"; NULL out of range. */
const char *policy_steal_metric_name(enum policy_steal_metric m);

/* Fill *p with the defaults (strings allocated; release them with
 * policy_clear() when *p is not from policy_load_*()). Overwrites *p
 * without freeing what it held. The default exempt_tenants list is empty
 * (NULL): only the two CPU list strings are allocated. */
void policy_defaults(struct policy *p);

/* Parse a YAML buffer; `name` is used in messages ("FILE:L:C: ..."). On
 * success *out is a new policy the caller frees with policy_free(); on
 * failure *out is untouched. Errors: EINVAL (syntax, unknown key, wrong
 * type, duplicate, missing version, crossed values), ERANGE (a number or
 * CPU out of range), EFBIG (more than POLICY_MAX_BYTES). The CPU list
 * strings of the result are in canonical form ("0-3,8"). */
int policy_load_buffer(const char *buf, size_t len, const char *name,
		       struct policy **out, struct error **err);

/* Read and parse a file. An unreadable file is an error with its errno
 * ("cannot open policy file PATH: No such file or directory"). */
int policy_load_file(const char *path, struct policy **out, struct error **err);

/* Free what *p owns and zero it (for a struct policy not from the heap). */
void policy_clear(struct policy *p);
/* policy_clear() and free p itself. NULL is fine. */
void policy_free(struct policy *p);
static inline void policy_freep(struct policy **p) { if (*p) policy_free(*p); }

/* True when every setting of a and b is the same (e.g. to tell whether a
 * reload changed anything). */
bool policy_equal(const struct policy *a, const struct policy *b);

/* YAML text of a policy (what `vcpuctl policy show` prints): every key,
 * in the order of policies/default.yaml; policy_load_buffer() of the text
 * gives back an equal policy. Caller frees. */
char *policy_to_yaml(const struct policy *p);

#endif
