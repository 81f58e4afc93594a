/* vm.c - the VM model's rules: state and source names, validation, copying.
 * The store, the API and discovery all go through here. */
#include <errno.h>
#include <string.h>

#include "vcpud/tenant.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

static const char *const state_names[VM_STATE_LAST] = {
	"unknown", "running", "paused", "stopped", "crashed", "gone", "admitted",
};
static const char *const source_names[VM_SOURCE_LAST] = { "registered", "libvirt", "proc" };

const char *vm_state_to_string(enum vm_state s)
{
	return (unsigned)s < VM_STATE_LAST ? state_names[s] : "unknown";
}

int vm_state_from_string(const char *s, enum vm_state *out, struct error **err)
{
	for (int i = 0; i < VM_STATE_LAST; i++)
		if (s && strcmp(s, state_names[i]) == 0) {
			*out = (enum vm_state)i;
			return 0;
		}
	return error_set(err, EINVAL, "unknown VM state '%s'", s ? s : "");
}

const char *vm_source_to_string(enum vm_source s)
{
	return (unsigned)s < VM_SOURCE_LAST ? source_names[s] : "unknown";
}

int vm_source_from_string(const char *s, enum vm_source *out, struct error **err)
{
	for (int i = 0; i < VM_SOURCE_LAST; i++)
		if (s && strcmp(s, source_names[i]) == 0) {
			*out = (enum vm_source)i;
			return 0;
		}
	return error_set(err, EINVAL, "unknown VM source '%s'", s ? s : "");
}

int vm_validate(const struct vm *v, struct error **err)
{
	if (name_check("VM name", v->name, err) < 0 ||
	    name_check("tenant name", v->tenant, err) < 0)
		return -1;
	if (v->vcpus < 1 || v->vcpus > VM_VCPUS_MAX)
		return error_set(err, EINVAL, "VM %s: vcpus %u is out of range (1..%d)", v->name,
				 v->vcpus, VM_VCPUS_MAX);
	if (v->pid < 0)
		return error_set(err, EINVAL, "VM %s: invalid pid %d", v->name, (int)v->pid);
	if (v->weight && (v->weight < TENANT_WEIGHT_MIN || v->weight > TENANT_WEIGHT_MAX))
		return error_set(err, EINVAL, "VM %s: weight %u is out of range (%d..%d)", v->name,
				 v->weight, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX);
	if (v->memory_set && v->memory_bytes <= 0)
		return error_set(err, EINVAL, "VM %s: memory must be positive", v->name);
	if (v->origin_cgroup[0] && (v->origin_cgroup[0] != '/' ||
				    strnlen(v->origin_cgroup, sizeof(v->origin_cgroup)) > VM_ORIGIN_MAX))
		return error_set(err, EINVAL, "VM %s: origin cgroup must be an absolute path",
				 v->name);
	if ((unsigned)v->state >= VM_STATE_LAST || (unsigned)v->source >= VM_SOURCE_LAST)
		return error_set(err, EINVAL, "VM %s: invalid state or source", v->name);
	for (size_t i = 0; i < v->n_threads; i++) {
		const struct vm_vcpu *t = &v->threads[i];
		if (t->index >= v->vcpus)
			return error_set(err, EINVAL, "VM %s: vCPU index %u is not below %u",
					 v->name, t->index, v->vcpus);
		if (t->tid < 0)
			return error_set(err, EINVAL, "VM %s: vCPU %u has an invalid tid", v->name,
					 t->index);
		if (i > 0 && v->threads[i - 1].index >= t->index)
			return error_set(err, EINVAL, "VM %s: vCPU indexes must be unique and "
					 "sorted (%u after %u)", v->name, t->index,
					 v->threads[i - 1].index);
		for (size_t j = 0; j < i; j++)
			if (t->tid && v->threads[j].tid == t->tid)
				return error_set(err, EINVAL, "VM %s: thread %d is listed twice",
						 v->name, (int)t->tid);
	}
	return 0;
}

void vm_clear(struct vm *v)
{
	free(v->threads);
	v->threads = NULL;
	v->n_threads = 0;
}

void vm_list_free(struct vm *vms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vm_clear(&vms[i]);
	free(vms);
}

void vm_copy(struct vm *dst, const struct vm *src)
{
	*dst = *src;
	if (src->n_threads) {
		dst->threads = xmalloc(src->n_threads * sizeof(*src->threads));
		memcpy(dst->threads, src->threads, src->n_threads * sizeof(*src->threads));
	} else {
		dst->threads = NULL;
	}
}

bool vm_threads_equal(const struct vm_vcpu *a, size_t na, const struct vm_vcpu *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].index != b[i].index || a[i].tid != b[i].tid)
			return false;
	return true;
}
