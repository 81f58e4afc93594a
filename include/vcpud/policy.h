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

struct policy {
	int version;                   /* must be 1 */
	/* host: CPU pools, cpulist strings (may be empty) */
	char *housekeeping_cpus;       /* owned; "" when unset */
	char *dedicated_cpus;          /* owned; "" when unset */
	struct cpuset housekeeping;    /* parsed forms of the two strings */
	struct cpuset dedicated;
	/* overcommit */
	double cpu_ratio;              /* > 0, <= 64; default 4.0 */
	/* sampling */
	uint32_t interval_ms;          /* 100..60000; default 1000 */
	/* steal */
	double steal_high_pct;         /* (0, 100]; default 30 */
	double steal_low_pct;          /* [0, high); default 15 */
	uint32_t breach_ticks;         /* 1..1000; default 3 */
	uint32_t clear_ticks;          /* 1..1000; default 5 */
	/* throttle */
	bool throttle_enabled;         /* default true */
	bool throttle_dry_run;         /* default false */
};

/* Fill *p with the defaults (strings allocated). */
void policy_defaults(struct policy *p);

/* Parse a YAML buffer; `name` is used in messages ("FILE:L:C: ..."). On
 * success *out is a new policy the caller frees with policy_free(). */
int policy_load_buffer(const char *buf, size_t len, const char *name,
		       struct policy **out, struct error **err);

/* Read and parse a file. */
int policy_load_file(const char *path, struct policy **out, struct error **err);

void policy_free(struct policy *p);
static inline void policy_freep(struct policy **p) { if (*p) policy_free(*p); }

/* YAML text of a policy (what `vcpuctl policy show` prints). Caller frees. */
char *policy_to_yaml(const struct policy *p);

#endif
