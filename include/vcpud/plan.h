/* plan.h - the desired cgroup tree as a pure function of the store's state
 * (tenants, VMs) and the policy. No I/O: the daemon reads the store, calls
 * plan_tree() and hands the result to cgroup_tree_reconcile().
 *
 * Mapping (DESIGN.md "cgroup v2 layout"):
 *   tenant: cpu.weight = weight; cpu.max = cpu_max_cores x period, or max;
 *           memory.max = memory quota, or max; cpu.idle = 1 for a
 *           best-effort tenant when best_effort_idle, else 0
 *   VM:     every non-gone VM with a pid; memory.max = its memory, or max;
 *           cpu.max = the throttle overlay's cap when one is given, else max,
 *           with cpu.max.burst = burst_pct of the cap (0 when uncapped);
 *           cpu.weight = plan_vm_weight() (the kernel then splits the
 *           tenant's share between its VMs by vCPUs, or as set)
 *   vCPU:   vcpuN with its thread; emulator/ gets every other thread.
 * With an admission ledger (plan_input.admission), a VM that has a
 * reservation is pinned: the VM domain to its CPUs plus the housekeeping
 * pool (a child's cpuset must lie within its parent's), its vCPUs to its
 * dedicated pCPU each or to the shared CPUs of its node(s), emulator/ to
 * the housekeeping pool (its own CPUs when that pool is empty), and
 * cpuset.mems to its node(s). A VM without a reservation is not pinned. */
#ifndef VCPUD_PLAN_H
#define VCPUD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "vcpud/admit.h"
#include "vcpud/cgroup.h"
#include "vcpud/error.h"
#include "vcpud/tenant.h"
#include "vcpud/vm.h"

#define PLAN_PERIOD_US 100000ULL

/* A cap laid over a VM by the throttler (the tenant's own settings in the
 * store stay untouched). */
struct plan_vm_cap {
	const char *vm;
	uint64_t quota_us;     /* per PLAN_PERIOD_US, for the whole VM */
};

struct plan_input {
	const char *root;                 /* cgroup tree root */
	const struct tenant *tenants;
	size_t n_tenants;
	const struct vm *vms;
	size_t n_vms;
	const struct plan_vm_cap *caps;   /* may be NULL */
	size_t n_caps;
	/* policy: best-effort tenants' groups in cpu.idle (others not), and
	 * a capped VM's cpu.max.burst in % of its cap (0..100; uncapped: 0) */
	bool best_effort_idle;
	double burst_pct;
	/* topology, pools and reservations; NULL: no pinning at all */
	const struct admit_host *admission;
	/* called for a tenant or VM that cannot be planned (vm "" for a
	 * tenant); it is left out and everything else is planned. May be NULL. */
	void (*fault)(void *data, const char *tenant, const char *vm, const char *msg);
	void *fault_data;
};

/* Build the desired tree. VMs that are gone, have no pid, or name an
 * unknown tenant are left out (so their cgroups are removed). A tenant or
 * VM whose name is not valid is left out and reported through in->fault.
 * *out is freed with cgroup_tree_free(). Never fails. */
int plan_tree(const struct plan_input *in, struct cgroup_tree **out, struct error **err);

/* A hash of everything plan_tree() reads of `in` (never 0): two inputs
 * with the same fingerprint give the same tree, so a caller may keep its
 * last tree while the fingerprint stays (a steady tick plans nothing),
 * and hand it to the engine in cgroup_tree.fingerprint (plan_tree()
 * leaves it 0). O(VMs + threads + reservations). */
uint64_t plan_input_fingerprint(const struct plan_input *in);

/* Whether plan_tree() gives VM v groups (of its tenant, when the tenant is
 * known): not gone, with a process, a valid name. */
bool plan_vm_in_tree(const struct vm *v);

/* A VM's automatic cpu.weight: this many per vCPU (a 1-vCPU VM has the
 * kernel's default, 100), so that siblings split their tenant's share by
 * vCPUs; at most CGROUP_WEIGHT_MAX (a VM of more than 100 vCPUs counts as
 * 100). It is the VM's own: a VM coming or going changes no other VM's
 * weight, and a placement pass writes the changed VM's files only. */
#define PLAN_VM_WEIGHT_PER_VCPU 100u

/* A VM's cpu.weight: `set` (its own, vcpuctl vm set --weight) when not 0,
 * else PLAN_VM_WEIGHT_PER_VCPU x its vCPUs, within the kernel's 1..10000.
 * Only the ratios between a tenant's VMs matter: the tenant's own
 * cpu.weight sets its share against the other tenants. */
uint32_t plan_vm_weight(uint32_t set, uint32_t vcpus);

/* cpu.max quota for `cores` cores per PLAN_PERIOD_US (at least the kernel's
 * minimum of 1000 us). */
uint64_t plan_cores_to_quota_us(double cores);

#endif
