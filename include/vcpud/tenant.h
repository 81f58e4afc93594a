/* tenant.h - the tenant model shared by the store, the API and the CLI.
 *
 * A tenant is a quota holder: how many vCPUs its VMs may have, its CPU
 * weight, an optional aggregate CPU cap (in cores), an optional memory quota
 * and a class that decides how the noisy-neighbour throttler may treat it. */
#ifndef VCPUD_TENANT_H
#define VCPUD_TENANT_H

#include <stdbool.h>
#include <stdint.h>

#include "vcpud/error.h"
#include "vcpud/path.h"

enum tenant_class {
	TENANT_CLASS_GUARANTEED,
	TENANT_CLASS_BURSTABLE,
	TENANT_CLASS_BEST_EFFORT,
	TENANT_CLASS_LAST
};

#define TENANT_WEIGHT_MIN 1
#define TENANT_WEIGHT_MAX 10000
#define TENANT_WEIGHT_DEFAULT 100
#define TENANT_VCPUS_MAX 65536
#define TENANT_CPU_MAX_CORES_MAX 4096.0
/* cpu.max needs a quota of at least 1 ms per 100 ms period */
#define TENANT_CPU_MAX_CORES_MIN 0.01
/* memory.max below one page makes no sense; above 2^50 is a typo */
#define TENANT_MEMORY_MIN ((int64_t)4096)
#define TENANT_MEMORY_MAX ((int64_t)1 << 50)

struct tenant {
	char name[NAME_MAX_LEN + 1];
	uint32_t vcpus;          /* vCPU quota: sum of vCPUs of its VMs */
	uint32_t weight;         /* cpu.weight, 1..10000 */
	bool cpu_max_set;
	double cpu_max_cores;    /* aggregate cap in cores, when cpu_max_set */
	bool memory_set;
	int64_t memory_bytes;    /* memory quota, when memory_set */
	enum tenant_class class_;
	int64_t created_at;      /* unix seconds, set by the store */
	int64_t updated_at;
	/* filled by the store on reads: vCPUs of the tenant's VMs, VM count */
	uint32_t vcpus_used;
	uint32_t vm_count;
};

/* A partial update: only fields whose set_* flag is true change. Clearing a
 * limit is set_cpu_max with cpu_max_set = false (likewise memory). */
struct tenant_patch {
	bool set_vcpus, set_weight, set_cpu_max, set_memory, set_class;
	uint32_t vcpus;
	uint32_t weight;
	bool cpu_max_set;
	double cpu_max_cores;
	bool memory_set;
	int64_t memory_bytes;
	enum tenant_class class_;
};

/* A tenant with the defaults: weight 100, burstable, no cap, no memory. */
void tenant_init(struct tenant *t);

/* "guaranteed", "burstable", "best-effort" */
const char *tenant_class_to_string(enum tenant_class c);
int tenant_class_from_string(const char *s, enum tenant_class *out, struct error **err);

/* Check every field's range and the name. 0 or -1 (EINVAL) naming the
 * field, its value and the allowed range. */
int tenant_validate(const struct tenant *t, struct error **err);

/* Apply a patch to a copy and validate the result; *t changes only on
 * success. 0 or -1 (EINVAL). */
int tenant_apply_patch(struct tenant *t, const struct tenant_patch *p, struct error **err);

#endif
