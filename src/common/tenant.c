/* tenant.c - the tenant model's rules: defaults, class names, ranges and
 * patch application. The store, the API and the CLI all validate through
 * here so that a value refused in one place is refused everywhere. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "vcpud/tenant.h"
#include "vcpud/util.h"

static const char *const class_names[TENANT_CLASS_LAST] = {
	[TENANT_CLASS_GUARANTEED] = "guaranteed",
	[TENANT_CLASS_BURSTABLE] = "burstable",
	[TENANT_CLASS_BEST_EFFORT] = "best-effort",
};

void tenant_init(struct tenant *t)
{
	memset(t, 0, sizeof(*t));
	t->weight = TENANT_WEIGHT_DEFAULT;
	t->class_ = TENANT_CLASS_BURSTABLE;
}

const char *tenant_class_to_string(enum tenant_class c)
{
	return (unsigned)c < TENANT_CLASS_LAST ? class_names[c] : "unknown";
}

int tenant_class_from_string(const char *s, enum tenant_class *out, struct error **err)
{
	for (int i = 0; i < TENANT_CLASS_LAST; i++) {
		if (s && strcmp(s, class_names[i]) == 0) {
			*out = (enum tenant_class)i;
			return 0;
		}
	}
	return error_set(err, EINVAL,
			 "invalid class '%s' (guaranteed, burstable or best-effort)",
			 s ? s : "");
}

int tenant_validate(const struct tenant *t, struct error **err)
{
	if (name_check("tenant name", t->name, err) < 0)
		return -1;
	if (t->vcpus > TENANT_VCPUS_MAX)
		return error_set(err, EINVAL, "vcpus %u is out of range (0..%u)",
				 t->vcpus, TENANT_VCPUS_MAX);
	if (t->weight < TENANT_WEIGHT_MIN || t->weight > TENANT_WEIGHT_MAX)
		return error_set(err, EINVAL, "weight %u is out of range (%d..%d)",
				 t->weight, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX);
	if (t->cpu_max_set &&
	    (!isfinite(t->cpu_max_cores) || t->cpu_max_cores < TENANT_CPU_MAX_CORES_MIN ||
	     t->cpu_max_cores > TENANT_CPU_MAX_CORES_MAX))
		return error_set(err, EINVAL, "cpu_max_cores %g is out of range (%g..%g)",
				 t->cpu_max_cores, TENANT_CPU_MAX_CORES_MIN,
				 TENANT_CPU_MAX_CORES_MAX);
	if (t->memory_set &&
	    (t->memory_bytes < TENANT_MEMORY_MIN || t->memory_bytes > TENANT_MEMORY_MAX))
		return error_set(err, EINVAL,
				 "memory_bytes %lld is out of range (%lld..%lld)",
				 (long long)t->memory_bytes, (long long)TENANT_MEMORY_MIN,
				 (long long)TENANT_MEMORY_MAX);
	if ((unsigned)t->class_ >= TENANT_CLASS_LAST)
		return error_set(err, EINVAL, "invalid class %d", (int)t->class_);
	return 0;
}

int tenant_apply_patch(struct tenant *t, const struct tenant_patch *p, struct error **err)
{
	struct tenant n = *t;
	if (p->set_vcpus)
		n.vcpus = p->vcpus;
	if (p->set_weight)
		n.weight = p->weight;
	if (p->set_cpu_max) {
		n.cpu_max_set = p->cpu_max_set;
		n.cpu_max_cores = p->cpu_max_set ? p->cpu_max_cores : 0;
	}
	if (p->set_memory) {
		n.memory_set = p->memory_set;
		n.memory_bytes = p->memory_set ? p->memory_bytes : 0;
	}
	if (p->set_class)
		n.class_ = p->class_;
	if (tenant_validate(&n, err) < 0)
		return -1;
	*t = n;
	return 0;
}
