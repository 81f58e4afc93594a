/* plan.c - store state -> desired cgroup tree (pure; see plan.h). Every
 * knob vcpud manages is set explicitly, including "max" for no limit, so
 * that clearing a limit in the store lifts it in the kernel. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "vcpud/plan.h"
#include "vcpud/util.h"

uint64_t plan_cores_to_quota_us(double cores)
{
	double q = cores * (double)PLAN_PERIOD_US;
	if (!(q >= (double)CGROUP_QUOTA_MIN_US))
		return CGROUP_QUOTA_MIN_US;
	if (q > (double)CGROUP_QUOTA_MAX_US)
		return CGROUP_QUOTA_MAX_US;
	return (uint64_t)llround(q);
}

static struct cgroup_cpu_max cpu_max_unlimited(void)
{
	return (struct cgroup_cpu_max){ .set = true, .unlimited = true,
					.period_us = PLAN_PERIOD_US };
}

static struct cgroup_cpu_max cpu_max_quota(uint64_t quota_us)
{
	return (struct cgroup_cpu_max){ .set = true, .quota_us = quota_us,
					.period_us = PLAN_PERIOD_US };
}

static struct cgroup_mem_max mem_max(bool set, int64_t bytes)
{
	if (!set)
		return (struct cgroup_mem_max){ .set = true, .unlimited = true };
	return (struct cgroup_mem_max){ .set = true, .bytes = (uint64_t)bytes };
}

/* Planned (an invalid name is then reported as a fault, not planned) */
static bool vm_planned(const struct vm *v)
{
	return v->state != VM_STATE_GONE && v->pid > 0;
}

bool plan_vm_in_tree(const struct vm *v)
{
	return vm_planned(v) && name_valid(v->name);
}

static const struct plan_vm_cap *find_cap(const struct plan_input *in, const char *vm)
{
	for (size_t i = 0; i < in->n_caps; i++)
		if (strcmp(in->caps[i].vm, vm) == 0)
			return &in->caps[i];
	return NULL;
}

static const struct admit_reservation *find_reservation(const struct admit_host *h,
							 const struct name_index *ix, const char *vm)
{
	size_t i = h ? name_index_find(ix, h->reservations, vm) : SIZE_MAX;
	return i == SIZE_MAX ? NULL : &h->reservations[i];
}

/* The CPU lists formatted lately: most VMs of a host share a few sets
 * (a pool, its node's part), formatted once a plan instead of a dozen
 * times per VM. */
#define FMT_MEMO 4
struct fmt_memo {
	struct cpuset set[FMT_MEMO];
	char *text[FMT_MEMO];
	unsigned next;
};

static char *fmt(struct fmt_memo *m, const struct cpuset *s)
{
	for (unsigned i = 0; i < FMT_MEMO; i++)
		if (m->text[i] && cpuset_equal(&m->set[i], s))
			return xstrdup(m->text[i]);
	unsigned k = m->next++ % FMT_MEMO;
	free(m->text[k]);
	m->set[k] = *s;
	m->text[k] = cpulist_format(s);
	return xstrdup(m->text[k]);
}

static void fmt_memo_clear(struct fmt_memo *m)
{
	for (unsigned i = 0; i < FMT_MEMO; i++)
		free(m->text[i]);
}

/* cpusets of a VM with a reservation (see plan.h) */
static void plan_pin(const struct admit_host *h, const struct admit_reservation *r,
		     struct cgroup_vm_spec *s, struct fmt_memo *m)
{
	struct cpuset cpus, mems, dom, one;
	admit_pin(h, r, &cpus, &mems);
	const struct cpuset *hk = &h->pools->housekeeping;
	cpuset_or(&dom, &cpus, hk);
	s->cpus = fmt(m, &dom);
	s->mems = fmt(m, &mems);
	s->emulator_cpus = fmt(m, cpuset_empty(hk) ? &cpus : hk);
	for (size_t i = 0; i < s->n_vcpus; i++) {
		int p = admit_vcpu_pcpu(r, s->vcpus[i].index);
		if (r->cpu_policy == ADMIT_CPU_DEDICATED && p >= 0) {
			cpuset_zero(&one);
			cpuset_set(&one, (unsigned)p);
			s->vcpus[i].cpus = cpulist_format(&one);
		} else {
			s->vcpus[i].cpus = fmt(m, &cpus);
		}
	}
}

uint32_t plan_vm_weight(uint32_t set, uint32_t vcpus)
{
	if (set)
		return set;
	if (!vcpus)
		return 1;
	if (vcpus >= CGROUP_WEIGHT_MAX / PLAN_VM_WEIGHT_PER_VCPU)
		return CGROUP_WEIGHT_MAX;
	return vcpus * PLAN_VM_WEIGHT_PER_VCPU;
}

static void plan_vm(const struct plan_input *in, const struct vm *v, struct cgroup_vm_spec *s,
		    const struct name_index *res_ix, struct fmt_memo *m)
{
	s->name = xstrdup(v->name);
	s->pid = v->pid;
	s->start_time = v->start_time;
	s->memory_max = mem_max(v->memory_set, v->memory_bytes);
	const struct plan_vm_cap *cap = find_cap(in, v->name);
	/* a throttle cap outside what the kernel takes would make the whole tree
	 * invalid (and no tenant reconciled): clamp it here */
	if (cap) {
		uint64_t q = cap->quota_us < CGROUP_QUOTA_MIN_US   ? CGROUP_QUOTA_MIN_US
			     : cap->quota_us > CGROUP_QUOTA_MAX_US ? CGROUP_QUOTA_MAX_US
								   : cap->quota_us;
		s->cpu_max = cpu_max_quota(q);
		/* a burst lets its vCPUs run on for a while when the period's
		 * quota runs out, instead of all of them stopping at once */
		double pct = in->burst_pct > 0 && in->burst_pct <= 100 ? in->burst_pct : 0;
		s->burst_us = (uint64_t)((double)q * pct / 100.0);
	} else {
		s->cpu_max = cpu_max_unlimited();
		s->burst_us = 0;
	}
	s->burst_set = true;
	s->vcpus = xcalloc(v->n_threads ? v->n_threads : 1, sizeof(*s->vcpus));
	for (size_t i = 0; i < v->n_threads; i++) {
		s->vcpus[i].index = v->threads[i].index;
		s->vcpus[i].tid = v->threads[i].tid;
	}
	s->n_vcpus = v->n_threads;
	const struct admit_reservation *r = find_reservation(in->admission, res_ix, v->name);
	if (r && in->admission->pools)
		plan_pin(in->admission, r, s, m);
}

static void plan_fault(const struct plan_input *in, const char *tenant, const char *vm,
		       const char *msg)
{
	if (in->fault)
		in->fault(in->fault_data, tenant, vm, msg);
}

static uint64_t key_or_one(uint64_t h)
{
	return h ? h : 1;
}

/* --- the fingerprint: everything plan_tree() reads, in its order ----------- */

static uint64_t hash_bits(uint64_t h, const unsigned long *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = hash_u64(h, (uint64_t)w[i]);
	return h;
}

static uint64_t hash_cpuset(uint64_t h, const struct cpuset *s)
{
	return hash_bits(h, s->bits, sizeof(s->bits) / sizeof(s->bits[0]));
}

static uint64_t hash_double(uint64_t h, double d)
{
	uint64_t v;
	memcpy(&v, &d, sizeof(v));
	return hash_u64(h, v);
}

/* What plan_pin() reads of the host (keep the two together). */
static uint64_t hash_host(uint64_t h, const struct admit_host *a)
{
	if (!a)
		return hash_u64(h, 0);
	h = hash_u64(h, 1);
	h = hash_u64(h, a->pools != NULL);
	if (a->pools)
		h = hash_cpuset(hash_cpuset(h, &a->pools->housekeeping), &a->pools->shared);
	h = hash_u64(h, a->topo ? a->topo->n_nodes : 0);
	for (size_t i = 0; a->topo && i < a->topo->n_nodes; i++)
		h = hash_cpuset(hash_u64(h, a->topo->nodes[i].id), &a->topo->nodes[i].cpus);
	return h;
}

/* What plan_pin() and admit_vcpu_pcpu() read of a reservation, and the VM
 * it is found by. */
static uint64_t hash_reservation(uint64_t h, const struct admit_reservation *r)
{
	h = hash_u64(hash_str(h, r->vm), (uint64_t)r->cpu_policy);
	size_t n = r->n_shares < ADMIT_SPAN_MAX ? r->n_shares : ADMIT_SPAN_MAX;
	h = hash_u64(h, n);
	for (size_t s = 0; s < n; s++)
		h = hash_u64(hash_u64(h, r->shares[s].node), r->shares[s].vcpus);
	return r->cpu_policy == ADMIT_CPU_DEDICATED ? hash_cpuset(h, &r->pcpus) : h;
}

uint64_t plan_input_fingerprint(const struct plan_input *in)
{
	uint64_t h = hash_str(hash_str(HASH_SEED, "plan/1"), in->root ? in->root : "");
	h = hash_host(h, in->admission);
	h = hash_u64(hash_u64(h, in->best_effort_idle), (uint64_t)llround(in->burst_pct * 1000));
	h = hash_u64(h, in->n_caps);
	for (size_t i = 0; i < in->n_caps; i++)
		h = hash_u64(hash_str(h, in->caps[i].vm), in->caps[i].quota_us);
	h = hash_u64(h, in->n_tenants);
	for (size_t i = 0; i < in->n_tenants; i++) {
		const struct tenant *t = &in->tenants[i];
		h = hash_u64(hash_u64(hash_str(h, t->name), t->weight), t->cpu_max_set);
		if (in->best_effort_idle)   /* the class then sets cpu.idle */
			h = hash_u64(h, (uint64_t)t->class_);
		h = hash_double(h, t->cpu_max_cores);
		h = hash_u64(hash_u64(h, t->memory_set), (uint64_t)t->memory_bytes);
	}
	h = hash_u64(h, in->n_vms);
	for (size_t j = 0; j < in->n_vms; j++) {
		const struct vm *v = &in->vms[j];
		h = hash_u64(hash_u64(h, (uint64_t)v->state), (uint64_t)v->pid);
		h = hash_str(hash_str(h, v->name), v->tenant);
		h = hash_u64(hash_u64(h, v->start_time), v->memory_set);
		h = hash_u64(hash_u64(h, (uint64_t)v->memory_bytes), v->n_threads);
		h = hash_u64(hash_u64(h, v->vcpus), v->weight);   /* its cpu.weight */
		for (size_t k = 0; k < v->n_threads; k++)
			h = hash_u64(hash_u64(h, v->threads[k].index), (uint64_t)v->threads[k].tid);
	}
	/* every reservation with the VM it is for, in the ledger's order (a
	 * VM's is found by its name; one of a VM not planned only costs a
	 * plan when it changes) */
	size_t n_res = in->admission ? in->admission->n_reservations : 0;
	h = hash_u64(h, n_res);
	for (size_t i = 0; i < n_res; i++)
		h = hash_reservation(h, &in->admission->reservations[i]);
	return key_or_one(h);
}

int plan_tree(const struct plan_input *in, struct cgroup_tree **out, struct error **err)
{
	(void)err;
	struct cgroup_tree *t = xcalloc(1, sizeof(*t));
	t->root = xstrdup(in->root);
	t->tenants = xcalloc(in->n_tenants ? in->n_tenants : 1, sizeof(*t->tenants));
	/* lookups by name: O(VMs + tenants + reservations) in all */
	struct name_index res_ix, tenant_ix;
	name_index_init(&res_ix, sizeof(struct admit_reservation),
			offsetof(struct admit_reservation, vm));
	if (in->admission)
		name_index_build(&res_ix, in->admission->reservations,
				 in->admission->n_reservations);
	name_index_init(&tenant_ix, sizeof(struct tenant), offsetof(struct tenant, name));
	name_index_build(&tenant_ix, in->tenants, in->n_tenants);
	/* the planned VMs by tenant (the first of its name), in their order:
	 * tenant i's are by_tenant[start[i] .. start[i + 1]) */
	size_t *start = xcalloc(in->n_tenants + 2, sizeof(*start));
	size_t *of = xcalloc(in->n_vms ? in->n_vms : 1, sizeof(*of));
	for (size_t j = 0; j < in->n_vms; j++) {
		of[j] = vm_planned(&in->vms[j])
			? name_index_find(&tenant_ix, in->tenants, in->vms[j].tenant) : SIZE_MAX;
		if (of[j] != SIZE_MAX)
			start[of[j] + 2]++;
	}
	for (size_t i = 2; i < in->n_tenants + 2; i++)
		start[i] += start[i - 1];
	size_t *by_tenant = xcalloc(in->n_vms ? in->n_vms : 1, sizeof(*by_tenant));
	struct fmt_memo memo = { 0 };
	for (size_t j = 0; j < in->n_vms; j++)
		if (of[j] != SIZE_MAX)
			by_tenant[start[of[j] + 1]++] = j;
	for (size_t i = 0; i < in->n_tenants; i++) {
		const struct tenant *tn = &in->tenants[i];
		if (!name_valid(tn->name)) {
			_cleanup_free_ char *m = xasprintf("plan: invalid tenant name '%.80s'", tn->name);
			plan_fault(in, "", "", m);
			continue;
		}
		struct cgroup_tenant_spec *ts = &t->tenants[t->n_tenants++];
		ts->name = xstrdup(tn->name);
		ts->weight = tn->weight;
		ts->cpu_idle = in->best_effort_idle && tn->class_ == TENANT_CLASS_BEST_EFFORT
			? CGROUP_IDLE_ON : CGROUP_IDLE_OFF;
		ts->cpu_max = tn->cpu_max_set ? cpu_max_quota(plan_cores_to_quota_us(tn->cpu_max_cores))
					      : cpu_max_unlimited();
		ts->memory_max = mem_max(tn->memory_set, tn->memory_bytes);
		size_t nv = start[i + 1] - start[i];
		ts->vms = xcalloc(nv ? nv : 1, sizeof(*ts->vms));
		for (size_t k = start[i]; k < start[i + 1]; k++) {
			const struct vm *v = &in->vms[by_tenant[k]];
			if (!name_valid(v->name)) {
				_cleanup_free_ char *m = xasprintf("plan: invalid VM name '%.80s'",
								   v->name);
				plan_fault(in, tn->name, v->name, m);
				continue;
			}
			struct cgroup_vm_spec *vs = &ts->vms[ts->n_vms++];
			plan_vm(in, v, vs, &res_ix, &memo);
			vs->weight = plan_vm_weight(v->weight, v->vcpus);
		}
	}
	fmt_memo_clear(&memo);
	free(start);
	free(of);
	free(by_tenant);
	name_index_clear(&res_ix);
	name_index_clear(&tenant_ix);
	*out = t;
	return 0;
}
