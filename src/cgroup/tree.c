/* tree.c - the desired cgroup tree that `plan` builds for the engine: its
 * validation (no I/O; the engine refuses a bad tree before touching
 * anything), freeing, and the directory names of its groups. Every name
 * that becomes a path is checked with name_valid() here, and again by the
 * engine, so a bad name is rejected rather than sanitised. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/cgroup.h"
#include "vcpud/cpulist.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

#define TENANT_PREFIX "tenant-"
#define VM_PREFIX "vm-"

void cgroup_tree_free(struct cgroup_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_tenants; i++) {
		struct cgroup_tenant_spec *ts = &t->tenants[i];
		for (size_t j = 0; j < ts->n_vms; j++) {
			struct cgroup_vm_spec *vm = &ts->vms[j];
			for (size_t k = 0; k < vm->n_vcpus; k++)
				free(vm->vcpus[k].cpus);
			free(vm->vcpus);
			free(vm->name);
			free(vm->cpus);
			free(vm->mems);
			free(vm->emulator_cpus);
		}
		free(ts->vms);
		free(ts->name);
		free(ts->cpus);
		free(ts->mems);
	}
	free(t->tenants);
	free(t->root);
	free(t);
}

/* --- directory names ----------------------------------------------------- */

int cgroup_tenant_dir(const char *root, const char *tenant, char **out, struct error **err)
{
	if (name_check("tenant name", tenant, err) < 0)
		return -1;
	_cleanup_free_ char *base = xasprintf(TENANT_PREFIX "%s", tenant);
	*out = path_join(root, base, NULL);
	return 0;
}

int cgroup_vm_dir(const char *root, const char *tenant, const char *vm, char **out,
		  struct error **err)
{
	_cleanup_free_ char *t = NULL;
	if (cgroup_tenant_dir(root, tenant, &t, err) < 0 || name_check("VM name", vm, err) < 0)
		return -1;
	_cleanup_free_ char *base = xasprintf(VM_PREFIX "%s", vm);
	*out = path_join(t, base, NULL);
	return 0;
}

int cgroup_vcpu_dir(const char *root, const char *tenant, const char *vm, unsigned index,
		    char **out, struct error **err)
{
	_cleanup_free_ char *v = NULL;
	if (cgroup_vm_dir(root, tenant, vm, &v, err) < 0)
		return -1;
	if (index > CGROUP_VCPU_INDEX_MAX)
		return error_set(err, ERANGE, "vCPU index %u is above %d", index,
				 CGROUP_VCPU_INDEX_MAX);
	_cleanup_free_ char *base = xasprintf("vcpu%u", index);
	*out = path_join(v, base, NULL);
	return 0;
}

/* --- validation ---------------------------------------------------------- */

static int check_weight(uint32_t w, struct error **err)
{
	if (w != 0 && (w < CGROUP_WEIGHT_MIN || w > CGROUP_WEIGHT_MAX))
		return error_set(err, ERANGE, "cpu.weight %u is out of range (%d..%d)", w,
				 CGROUP_WEIGHT_MIN, CGROUP_WEIGHT_MAX);
	return 0;
}

static int check_cpu_max(const struct cgroup_cpu_max *m, struct error **err)
{
	if (!m->set)
		return 0;
	if (m->period_us != 0 &&
	    (m->period_us < CGROUP_PERIOD_MIN_US || m->period_us > CGROUP_PERIOD_MAX_US))
		return error_set(err, ERANGE, "cpu.max period %llu us is out of range (%llu..%llu)",
				 (unsigned long long)m->period_us, CGROUP_PERIOD_MIN_US,
				 CGROUP_PERIOD_MAX_US);
	if (!m->unlimited &&
	    (m->quota_us < CGROUP_QUOTA_MIN_US || m->quota_us > CGROUP_QUOTA_MAX_US))
		return error_set(err, ERANGE, "cpu.max quota %llu us is out of range (%llu..%llu)",
				 (unsigned long long)m->quota_us, CGROUP_QUOTA_MIN_US,
				 CGROUP_QUOTA_MAX_US);
	return 0;
}

static int check_mem_max(const struct cgroup_mem_max *m, struct error **err)
{
	if (m->set && !m->unlimited && m->bytes > CGROUP_MEMORY_MAX_BYTES)
		return error_set(err, ERANGE, "memory.max %llu bytes is too large",
				 (unsigned long long)m->bytes);
	return 0;
}

/* Parse an optional cpuset string. *have = false for NULL (leave alone) and
 * for "" (inherit the parent's), which constrain nothing. */
static int check_cpulist(const char *what, const char *s, struct cpuset *set, bool *have,
			 struct error **err)
{
	*have = false;
	cpuset_zero(set);
	if (!s)
		return 0;
	if (cpulist_parse(s, set, err) < 0)
		return error_wrap(err, "%s", what);
	*have = !cpuset_empty(set);
	return 0;
}

/* The child's CPUs must lie within the nearest ancestor's that is set. */
static int check_within(const char *what, const struct cpuset *child, bool have_child,
			const struct cpuset *parent, bool have_parent, const char *parent_name,
			struct error **err)
{
	if (!have_child || !have_parent)
		return 0;
	struct cpuset outside;
	cpuset_andnot(&outside, child, parent);
	if (cpuset_empty(&outside))
		return 0;
	_cleanup_free_ char *c = cpulist_format(child);
	_cleanup_free_ char *p = cpulist_format(parent);
	return error_set(err, EINVAL,
			 "%s %s is not within %s's %s (its effective set would be cut down)",
			 what, c, parent_name, p);
}

struct id_owner {
	pid_t id;
	size_t tenant, vm;
};

static int cmp_id(const void *a, const void *b)
{
	pid_t x = ((const struct id_owner *)a)->id, y = ((const struct id_owner *)b)->id;
	return (x > y) - (x < y);
}

static int validate_vm(const struct cgroup_vm_spec *vm, const struct cpuset *tcpus, bool have_tcpus,
		       const struct cpuset *tmems, bool have_tmems, struct error **err)
{
	if (vm->pid < 0)
		return error_set(err, EINVAL, "PID %d is negative", (int)vm->pid);
	if (check_weight(vm->weight, err) < 0 || check_cpu_max(&vm->cpu_max, err) < 0 ||
	    check_mem_max(&vm->memory_max, err) < 0)
		return -1;
	if (vm->burst_set && vm->burst_us &&
	    (!vm->cpu_max.set || vm->cpu_max.unlimited || vm->burst_us > vm->cpu_max.quota_us))
		return error_set(err, ERANGE, "cpu.max.burst %" PRIu64 " us above its quota "
				 "(the kernel refuses a burst without a smaller quota)",
				 vm->burst_us);
	if (vm->n_vcpus && !vm->vcpus)
		return error_set(err, EINVAL, "%zu vCPUs but no vCPU array", vm->n_vcpus);

	struct cpuset cpus, mems, emu, vc, eff;
	bool have_cpus, have_mems, have_emu, have_vc;
	if (check_cpulist("cpuset.cpus", vm->cpus, &cpus, &have_cpus, err) < 0 ||
	    check_cpulist("cpuset.mems", vm->mems, &mems, &have_mems, err) < 0 ||
	    check_cpulist("emulator cpuset.cpus", vm->emulator_cpus, &emu, &have_emu, err) < 0)
		return -1;
	if (check_within("cpuset.cpus", &cpus, have_cpus, tcpus, have_tcpus, "the tenant", err) < 0 ||
	    check_within("cpuset.mems", &mems, have_mems, tmems, have_tmems, "the tenant", err) < 0)
		return -1;
	/* the nearest ancestor with a cpuset bounds the children */
	eff = have_cpus ? cpus : *tcpus;
	bool have_eff = have_cpus || have_tcpus;
	const char *eff_name = have_cpus ? "the VM" : "the tenant";
	if (check_within("emulator cpuset.cpus", &emu, have_emu, &eff, have_eff, eff_name, err) < 0)
		return -1;

	for (size_t k = 0; k < vm->n_vcpus; k++) {
		const struct cgroup_vcpu_spec *v = &vm->vcpus[k];
		if (v->index > CGROUP_VCPU_INDEX_MAX)
			return error_set(err, ERANGE, "vCPU index %u is above %d", v->index,
					 CGROUP_VCPU_INDEX_MAX);
		for (size_t l = 0; l < k; l++) {
			if (vm->vcpus[l].index == v->index)
				return error_set(err, EINVAL, "vCPU %u is listed twice", v->index);
			if (v->tid > 0 && vm->vcpus[l].tid == v->tid)
				return error_set(err, EINVAL, "vCPUs %u and %u have the same TID %d",
						 vm->vcpus[l].index, v->index, (int)v->tid);
		}
		if (v->tid < 0)
			return error_set(err, EINVAL, "vCPU %u: TID %d is negative", v->index,
					 (int)v->tid);
		if (v->tid > 0 && vm->pid == 0)
			return error_set(err, EINVAL, "vCPU %u has TID %d but the VM has no PID",
					 v->index, (int)v->tid);
		if (check_weight(v->weight, err) < 0 || check_cpu_max(&v->cpu_max, err) < 0 ||
		    check_cpulist("cpuset.cpus", v->cpus, &vc, &have_vc, err) < 0 ||
		    check_within("cpuset.cpus", &vc, have_vc, &eff, have_eff, eff_name, err) < 0)
			return error_wrap(err, "vCPU %u", v->index);
	}
	return 0;
}

int cgroup_tree_root_check(const struct cgroup_tree *t, struct error **err)
{
	if (!t)
		return error_set(err, EINVAL, "no desired tree");
	if (!t->root || t->root[0] != '/')
		return error_set(err, EINVAL, "cgroup root '%s' is not an absolute path",
				 t->root ? t->root : "");
	_cleanup_free_ char *copy = xstrdup(t->root);
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
			return error_set(err, EINVAL, "cgroup root '%s' contains '%s'", t->root, c);
	if (t->n_tenants && !t->tenants)
		return error_set(err, EINVAL, "%zu tenants but no tenant array", t->n_tenants);
	for (size_t i = 0; i < t->n_tenants; i++)
		if (t->tenants[i].n_vms && !t->tenants[i].vms)
			return error_set(err, EINVAL, "tenant %zu: %zu VMs but no VM array", i,
					 t->tenants[i].n_vms);
	return 0;
}

static int check_tenant(const struct cgroup_tree *t, size_t i, struct cpuset *cpus,
			bool *have_cpus, struct cpuset *mems, bool *have_mems, struct error **err)
{
	const struct cgroup_tenant_spec *ts = &t->tenants[i];
	if (name_check("tenant name", ts->name, err) < 0)
		return -1;
	for (size_t j = 0; j < i; j++)
		if (t->tenants[j].name && strcmp(t->tenants[j].name, ts->name) == 0)
			return error_set(err, EINVAL, "tenant '%s' is listed twice", ts->name);
	if ((unsigned)ts->cpu_idle > CGROUP_IDLE_ON)
		return error_set(err, EINVAL, "tenant '%s': cpu.idle setting %d is not one of "
				 "leave, off, on", ts->name, (int)ts->cpu_idle);
	if (check_weight(ts->weight, err) < 0 || check_cpu_max(&ts->cpu_max, err) < 0 ||
	    check_mem_max(&ts->memory_max, err) < 0 ||
	    check_cpulist("cpuset.cpus", ts->cpus, cpus, have_cpus, err) < 0 ||
	    check_cpulist("cpuset.mems", ts->mems, mems, have_mems, err) < 0)
		return error_wrap(err, "tenant '%s'", ts->name);
	return 0;
}

struct name_at {
	const char *name;
	size_t j;
};

static int name_at_cmp(const void *a, const void *b)
{
	const struct name_at *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->j > y->j) - (x->j < y->j);
}

/* Which VMs of ts repeat the name of an earlier one (O(n log n)). *out:
 * free(). */
static bool *vm_repeats(const struct cgroup_tenant_spec *ts)
{
	bool *rep = xcalloc(ts->n_vms ? ts->n_vms : 1, sizeof(*rep));
	struct name_at *v = xcalloc(ts->n_vms ? ts->n_vms : 1, sizeof(*v));
	size_t n = 0;
	for (size_t k = 0; k < ts->n_vms; k++)
		if (ts->vms[k].name)
			v[n++] = (struct name_at){ ts->vms[k].name, k };
	qsort(v, n, sizeof(*v), name_at_cmp);
	for (size_t k = 1; k < n; k++)
		if (strcmp(v[k].name, v[k - 1].name) == 0)
			rep[v[k].j] = true;
	free(v);
	return rep;
}

static int check_vm(const struct cgroup_tenant_spec *ts, size_t j, bool repeated,
		    const struct cpuset *cpus, bool have_cpus, const struct cpuset *mems,
		    bool have_mems, struct error **err)
{
	const struct cgroup_vm_spec *vm = &ts->vms[j];
	if (name_check("VM name", vm->name, err) < 0)
		return error_wrap(err, "tenant '%s'", ts->name);
	if (repeated)
		return error_set(err, EINVAL, "tenant '%s': VM '%s' is listed twice",
				 ts->name, vm->name);
	if (validate_vm(vm, cpus, have_cpus, mems, have_mems, err) < 0)
		return error_wrap(err, "tenant '%s': VM '%s'", ts->name, vm->name);
	return 0;
}

void cgroup_judgement_free(struct cgroup_judgement *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n_tenants; i++) {
		error_free(&j->tenant[i]);
		for (size_t k = 0; j->vm && k < j->n_vms[i]; k++)
			error_free(&j->vm[i][k]);
		if (j->vm)
			free(j->vm[i]);
	}
	free(j->tenant);
	free(j->vm);
	free(j->n_vms);
	*j = (struct cgroup_judgement){ 0 };
}

void cgroup_tree_judge(const struct cgroup_tree *t, struct cgroup_judgement *out)
{
	cgroup_tree_judge_with(t, out, NULL, NULL);
}

void cgroup_tree_judge_with(const struct cgroup_tree *t, struct cgroup_judgement *out,
			    bool (*judged)(void *data, size_t tenant, size_t vm), void *data)
{
	*out = (struct cgroup_judgement){ 0 };
	size_t nt = t->n_tenants;
	out->n_tenants = nt;
	out->tenant = xcalloc(nt ? nt : 1, sizeof(*out->tenant));
	out->vm = xcalloc(nt ? nt : 1, sizeof(*out->vm));
	out->n_vms = xcalloc(nt ? nt : 1, sizeof(*out->n_vms));

	size_t n_ids = 0, cap_ids = 0;
	_cleanup_free_ struct id_owner *ids = NULL;
	for (size_t i = 0; i < nt; i++) {
		const struct cgroup_tenant_spec *ts = &t->tenants[i];
		out->n_vms[i] = ts->n_vms;
		out->vm[i] = xcalloc(ts->n_vms ? ts->n_vms : 1, sizeof(*out->vm[i]));
		struct cpuset cpus, mems;
		bool have_cpus = false, have_mems = false;
		if (check_tenant(t, i, &cpus, &have_cpus, &mems, &have_mems, &out->tenant[i]) < 0)
			continue; /* its VMs are not looked at: none is reconciled */
		_cleanup_free_ bool *repeated = vm_repeats(ts);
		for (size_t j = 0; j < ts->n_vms; j++) {
			bool before = !repeated[j] && judged && judged(data, i, j);
			if (!before && check_vm(ts, j, repeated[j], &cpus, have_cpus, &mems,
						have_mems, &out->vm[i][j]) < 0)
				continue;
			/* collect PIDs and TIDs: one thread cannot be in two places */
			const struct cgroup_vm_spec *vm = &ts->vms[j];
			for (size_t k = 0; k <= vm->n_vcpus; k++) {
				pid_t id = k == 0 ? vm->pid : vm->vcpus[k - 1].tid;
				if (id <= 0 || (k > 0 && id == vm->pid))
					continue;
				if (n_ids == cap_ids) {
					cap_ids = cap_ids ? cap_ids * 2 : 64;
					ids = xrealloc(ids, cap_ids * sizeof(*ids));
				}
				ids[n_ids++] = (struct id_owner){ id, i, j };
			}
		}
	}
	if (n_ids < 2)
		return;
	/* a PID or TID that two VMs claim: both are refused (which one is
	 * right is not the engine's to guess; moving it twice a tick would
	 * make it flap), every other VM goes on */
	qsort(ids, n_ids, sizeof(*ids), cmp_id);
	for (size_t k = 1; k < n_ids; k++) {
		const struct id_owner *a = &ids[k - 1], *b = &ids[k];
		if (a->id != b->id || (a->tenant == b->tenant && a->vm == b->vm))
			continue;
		const struct cgroup_tenant_spec *ta = &t->tenants[a->tenant], *tb = &t->tenants[b->tenant];
		const struct id_owner *pair[2] = { a, b };
		for (int s = 0; s < 2; s++) {
			const struct id_owner *me = pair[s];
			struct error **slot = &out->vm[me->tenant][me->vm];
			if (*slot)
				continue;
			error_set(slot, EINVAL,
				  "tenant '%s': VM '%s': process/thread %d is listed twice (VM '%s' "
				  "of tenant '%s' and VM '%s' of tenant '%s')",
				  t->tenants[me->tenant].name, t->tenants[me->tenant].vms[me->vm].name,
				  (int)a->id, ta->vms[a->vm].name, ta->name, tb->vms[b->vm].name,
				  tb->name);
		}
	}
}

int cgroup_tree_validate(const struct cgroup_tree *t, struct error **err)
{
	if (cgroup_tree_root_check(t, err) < 0)
		return -1;
	struct cgroup_judgement j;
	cgroup_tree_judge(t, &j);
	int ret = 0;
	for (size_t i = 0; i < j.n_tenants && ret == 0; i++) {
		struct error *first = j.tenant[i];
		for (size_t k = 0; !first && k < j.n_vms[i]; k++)
			first = j.vm[i][k];
		if (first)
			ret = error_set(err, first->code, "%s", first->msg);
	}
	cgroup_judgement_free(&j);
	return ret;
}
