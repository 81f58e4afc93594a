/* test_plan.c - the pure planner: tenants and VMs from the store (and the
 * throttler's caps) -> the desired cgroup tree. Checks every knob of the
 * mapping in plan.h, which VMs are left out, the cores -> quota conversion
 * at its edges, that a bad name fails without leaking (run under ASan),
 * and that every tree it builds passes cgroup_tree_validate(). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vcpud/admit.h"
#include "vcpud/cgroup.h"
#include "vcpud/cpulist.h"
#include "vcpud/error.h"
#include "vcpud/plan.h"
#include "vcpud/tenant.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

#define ROOT "/sys/fs/cgroup/vcpud.slice"
#define GiB ((int64_t)1 << 30)
#define MiB ((int64_t)1 << 20)

/* --- builders ---------------------------------------------------------------- */

static struct tenant mk_tenant(const char *name)
{
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus = 64;
	return t;
}

static struct vm mk_vm(const char *name, const char *tenant, enum vm_state state, pid_t pid,
		       struct vm_vcpu *threads, size_t n_threads)
{
	struct vm v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.tenant, sizeof(v.tenant), "%s", tenant);
	v.state = state;
	v.pid = pid;
	v.vcpus = 8;
	v.source = VM_SOURCE_REGISTERED;
	v.threads = threads;
	v.n_threads = n_threads;
	return v;
}

static const struct cgroup_tenant_spec *find_tenant(const struct cgroup_tree *t, const char *name)
{
	for (size_t i = 0; i < t->n_tenants; i++)
		if (strcmp(t->tenants[i].name, name) == 0)
			return &t->tenants[i];
	return NULL;
}

static const struct cgroup_vm_spec *find_vm(const struct cgroup_tree *t, const char *name)
{
	for (size_t i = 0; i < t->n_tenants; i++)
		for (size_t j = 0; j < t->tenants[i].n_vms; j++)
			if (strcmp(t->tenants[i].vms[j].name, name) == 0)
				return &t->tenants[i].vms[j];
	return NULL;
}

static void assert_valid(const struct cgroup_tree *t)
{
	struct error *err = NULL;
	int r = cgroup_tree_validate(t, &err);
	if (r != 0)
		fail_msg("plan built an invalid tree: %s", err ? err->msg : "?");
	assert_null(err);
}

static void assert_unlimited_cpu(const struct cgroup_cpu_max *m)
{
	assert_true(m->set);
	assert_true(m->unlimited);
	assert_int_equal(m->period_us, PLAN_PERIOD_US);
}

static void assert_quota_cpu(const struct cgroup_cpu_max *m, uint64_t quota_us)
{
	assert_true(m->set);
	assert_false(m->unlimited);
	assert_int_equal(m->quota_us, quota_us);
	assert_int_equal(m->period_us, PLAN_PERIOD_US);
}

/* --- plan_cores_to_quota_us ---------------------------------------------- */

static void test_cores_to_quota(void **state)
{
	(void)state;
	const struct {
		double cores;
		uint64_t quota_us;
	} cases[] = {
		{ 1.0, 100000 },
		{ 2.5, 250000 },
		{ 0.5, 50000 },
		{ 0.25, 25000 },
		{ 4096.0, 409600000 },
		{ 0.0125, 1250 },
		/* below the kernel's 1 ms minimum: raised to it */
		{ 0.01, CGROUP_QUOTA_MIN_US },
		{ 0.001, CGROUP_QUOTA_MIN_US },
		{ 0.00999, CGROUP_QUOTA_MIN_US },
		{ 0.0, CGROUP_QUOTA_MIN_US },
		{ -0.0, CGROUP_QUOTA_MIN_US },
		{ -1.0, CGROUP_QUOTA_MIN_US },
		{ -INFINITY, CGROUP_QUOTA_MIN_US },
		{ NAN, CGROUP_QUOTA_MIN_US },
		{ -NAN, CGROUP_QUOTA_MIN_US },
		/* above the kernel's maximum: lowered to it */
		{ 175921860.0, 17592186000000ULL },
		{ 175921861.0, CGROUP_QUOTA_MAX_US },
		{ 1e9, CGROUP_QUOTA_MAX_US },
		{ 1e300, CGROUP_QUOTA_MAX_US },
		{ INFINITY, CGROUP_QUOTA_MAX_US },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t q = plan_cores_to_quota_us(cases[i].cores);
		if (q != cases[i].quota_us)
			fail_msg("%g cores: quota %llu, want %llu", cases[i].cores,
				 (unsigned long long)q, (unsigned long long)cases[i].quota_us);
	}
	/* rounded to the nearest microsecond, not truncated */
	assert_int_equal(plan_cores_to_quota_us(0.123456789), 12346);
	assert_int_equal(plan_cores_to_quota_us(0.0100001), 1000);
	assert_int_equal(plan_cores_to_quota_us(0.010006), 1001);
	/* monotonic over the whole range the API accepts */
	uint64_t prev = 0;
	for (double c = TENANT_CPU_MAX_CORES_MIN; c <= TENANT_CPU_MAX_CORES_MAX; c *= 1.37) {
		uint64_t q = plan_cores_to_quota_us(c);
		assert_true(q >= prev);
		assert_true(q >= CGROUP_QUOTA_MIN_US && q <= CGROUP_QUOTA_MAX_US);
		prev = q;
	}
}

/* --- tenants ------------------------------------------------------------- */

static void test_tenants(void **state)
{
	(void)state;
	struct tenant ts[3];
	ts[0] = mk_tenant("acme");
	ts[0].weight = 200;
	ts[0].cpu_max_set = true;
	ts[0].cpu_max_cores = 2.5;
	ts[0].memory_set = true;
	ts[0].memory_bytes = 4 * GiB;
	ts[1] = mk_tenant("beta"); /* defaults: no cap, no memory quota */
	ts[2] = mk_tenant("gamma");
	ts[2].weight = 10000;
	ts[2].cpu_max_set = true;
	ts[2].cpu_max_cores = 0.001; /* below the kernel minimum: raised */
	ts[2].memory_set = true;
	ts[2].memory_bytes = TENANT_MEMORY_MAX;

	char root[] = ROOT;
	struct plan_input in = { .root = root, .tenants = ts, .n_tenants = 3 };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_null(err);
	assert_non_null(t);
	/* the root is a copy */
	assert_string_equal(t->root, ROOT);
	assert_ptr_not_equal(t->root, root);
	assert_int_equal(t->n_tenants, 3);
	/* in input order */
	assert_string_equal(t->tenants[0].name, "acme");
	assert_string_equal(t->tenants[1].name, "beta");
	assert_string_equal(t->tenants[2].name, "gamma");

	const struct cgroup_tenant_spec *a = &t->tenants[0];
	assert_int_equal(a->weight, 200);
	assert_quota_cpu(&a->cpu_max, 250000);
	assert_true(a->memory_max.set);
	assert_false(a->memory_max.unlimited);
	assert_int_equal(a->memory_max.bytes, (uint64_t)(4 * GiB));
	assert_null(a->cpus);
	assert_null(a->mems);
	assert_int_equal(a->n_vms, 0);

	/* no limit is an explicit "max", so clearing a limit lifts it */
	const struct cgroup_tenant_spec *b = &t->tenants[1];
	assert_int_equal(b->weight, TENANT_WEIGHT_DEFAULT);
	assert_unlimited_cpu(&b->cpu_max);
	assert_true(b->memory_max.set);
	assert_true(b->memory_max.unlimited);
	assert_int_equal(b->n_vms, 0);

	const struct cgroup_tenant_spec *g = &t->tenants[2];
	assert_int_equal(g->weight, 10000);
	assert_quota_cpu(&g->cpu_max, CGROUP_QUOTA_MIN_US);
	assert_false(g->memory_max.unlimited);
	assert_int_equal(g->memory_max.bytes, (uint64_t)TENANT_MEMORY_MAX);
	assert_valid(t);
}

static void test_empty(void **state)
{
	(void)state;
	struct plan_input in = { .root = ROOT };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_non_null(t);
	assert_string_equal(t->root, ROOT);
	assert_int_equal(t->n_tenants, 0);
	assert_valid(t);

	/* tenants without VMs, VMs without tenants */
	struct tenant tn = mk_tenant("solo");
	struct vm v = mk_vm("stray", "nobody", VM_STATE_RUNNING, 77, NULL, 0);
	struct plan_input in2 = { .root = ROOT, .tenants = &tn, .n_tenants = 1, .vms = &v,
				  .n_vms = 1 };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t2 = NULL;
	assert_int_equal(plan_tree(&in2, &t2, &err), 0);
	assert_int_equal(t2->n_tenants, 1);
	assert_int_equal(t2->tenants[0].n_vms, 0);
	assert_valid(t2);
}

/* --- VMs ----------------------------------------------------------------- */

/* Each VM cgroup's cpu.weight: 100 per vCPU, so that the kernel splits a
 * tenant's share by vCPUs as the throttler's fair share assumes; or the
 * VM's own. A VM's weight is its own: another VM coming or going, or the
 * tenant's weight changing, does not move it. */
static void test_vm_weights(void **state)
{
	(void)state;
	struct tenant ts[2] = { mk_tenant("acme"), mk_tenant("tiny") };
	ts[0].weight = 300;
	ts[1].weight = 1;
	struct vm vms[] = {
		mk_vm("a4", "acme", VM_STATE_RUNNING, 100, NULL, 0),
		mk_vm("a2", "acme", VM_STATE_RUNNING, 101, NULL, 0),
		mk_vm("a-gone", "acme", VM_STATE_GONE, 0, NULL, 0),  /* not in the tree */
		mk_vm("a-set", "acme", VM_STATE_RUNNING, 103, NULL, 0),
		mk_vm("t1", "tiny", VM_STATE_RUNNING, 104, NULL, 0),
		mk_vm("t2", "tiny", VM_STATE_RUNNING, 105, NULL, 0),
	};
	vms[0].vcpus = 4;
	vms[1].vcpus = 2;
	vms[2].vcpus = 64;
	vms[3].vcpus = 2;
	vms[3].weight = 7;
	struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = 2, .vms = vms,
				 .n_vms = ARRAY_SIZE(vms) };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	assert_int_equal(plan_tree(&in, &t, NULL), 0);
	const struct cgroup_tenant_spec *a = find_tenant(t, "acme");
	assert_int_equal(a->n_vms, 3);
	/* 4 and 2 vCPUs, its own 7 */
	assert_int_equal(a->vms[0].weight, 400);
	assert_int_equal(a->vms[1].weight, 200);
	assert_int_equal(a->vms[2].weight, 7);
	const struct cgroup_tenant_spec *ti = find_tenant(t, "tiny");
	assert_int_equal(ti->vms[0].weight, 800);  /* the tenant's weight (1) is not theirs */
	assert_int_equal(ti->vms[1].weight, 800);
	assert_valid(t);
	/* the gone VM coming back, the tenant's weight: the others' stay */
	vms[2].state = VM_STATE_RUNNING;
	vms[2].pid = 102;
	ts[0].weight = 50;
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t2 = NULL;
	assert_int_equal(plan_tree(&in, &t2, NULL), 0);
	a = find_tenant(t2, "acme");
	assert_int_equal(a->n_vms, 4);
	for (size_t i = 0; i < a->n_vms; i++)
		assert_int_equal(a->vms[i].weight, strcmp(a->vms[i].name, "a4") == 0      ? 400
						   : strcmp(a->vms[i].name, "a2") == 0    ? 200
						   : strcmp(a->vms[i].name, "a-gone") == 0 ? 6400
											   : 7);
	vms[2].state = VM_STATE_GONE;
	vms[2].pid = 0;
	ts[0].weight = 300;
	/* a weight change is a new plan */
	uint64_t h = plan_input_fingerprint(&in);
	vms[3].weight = 8;
	assert_true(plan_input_fingerprint(&in) != h);
	vms[3].weight = 7;
	vms[1].vcpus = 3;
	assert_true(plan_input_fingerprint(&in) != h);

	assert_int_equal(plan_vm_weight(0, 1), 100);
	assert_int_equal(plan_vm_weight(0, 0), 1);          /* no vCPUs known yet */
	assert_int_equal(plan_vm_weight(0, 99), 9900);
	assert_int_equal(plan_vm_weight(0, 100), 10000);
	assert_int_equal(plan_vm_weight(0, 4096), 10000);   /* the kernel's most */
	assert_int_equal(plan_vm_weight(9999, 1), 9999);
	assert_int_equal(plan_vm_weight(1, 64), 1);
}

static void test_vms(void **state)
{
	(void)state;
	struct tenant ts[2] = { mk_tenant("acme"), mk_tenant("beta") };
	struct vm_vcpu web1_th[] = { { 0, 1001 }, { 1, 1002 }, { 3, 1004 } };
	struct vm_vcpu gone_th[] = { { 0, 2001 } };
	struct vm_vcpu fresh_th[] = { { 0, 0 }, { 1, 3002 } }; /* vCPU 0's thread not known yet */
	struct vm vms[] = {
		mk_vm("web-1", "acme", VM_STATE_RUNNING, 1000, web1_th, ARRAY_SIZE(web1_th)),
		mk_vm("old", "acme", VM_STATE_GONE, 2000, gone_th, ARRAY_SIZE(gone_th)),
		mk_vm("unstarted", "acme", VM_STATE_UNKNOWN, 0, NULL, 0),
		mk_vm("b-1", "beta", VM_STATE_PAUSED, 4000, NULL, 0),
		mk_vm("orphan", "nobody", VM_STATE_RUNNING, 5000, NULL, 0),
		mk_vm("near", "acm", VM_STATE_RUNNING, 5100, NULL, 0),     /* prefix of acme */
		mk_vm("nearer", "acme2", VM_STATE_RUNNING, 5200, NULL, 0), /* acme is its prefix */
		mk_vm("fresh", "acme", VM_STATE_RUNNING, 3000, fresh_th, ARRAY_SIZE(fresh_th)),
		mk_vm("b-gone", "beta", VM_STATE_GONE, 0, NULL, 0),
	};
	vms[0].memory_set = true;
	vms[0].memory_bytes = 512 * MiB;

	struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = 2, .vms = vms,
				 .n_vms = ARRAY_SIZE(vms) };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_null(err);
	assert_valid(t);

	/* acme: web-1 and fresh, in input order; beta: b-1 */
	const struct cgroup_tenant_spec *a = find_tenant(t, "acme");
	const struct cgroup_tenant_spec *b = find_tenant(t, "beta");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->n_vms, 2);
	assert_string_equal(a->vms[0].name, "web-1");
	assert_string_equal(a->vms[1].name, "fresh");
	assert_int_equal(b->n_vms, 1);
	assert_string_equal(b->vms[0].name, "b-1");
	/* gone, no pid, unknown tenant (also by near-miss names): left out */
	const char *absent[] = { "old", "unstarted", "orphan", "near", "nearer", "b-gone" };
	for (size_t i = 0; i < ARRAY_SIZE(absent); i++)
		if (find_vm(t, absent[i]))
			fail_msg("VM %s should not be planned", absent[i]);

	const struct cgroup_vm_spec *w = &a->vms[0];
	assert_ptr_not_equal(w->name, vms[0].name);
	assert_int_equal(w->pid, 1000);
	assert_int_equal(w->weight, 800);   /* 100 per vCPU, 8 vCPUs */
	assert_unlimited_cpu(&w->cpu_max); /* no cap: explicit max */
	assert_true(w->memory_max.set);
	assert_false(w->memory_max.unlimited);
	assert_int_equal(w->memory_max.bytes, (uint64_t)(512 * MiB));
	assert_null(w->cpus);
	assert_null(w->mems);
	assert_null(w->emulator_cpus);
	assert_int_equal(w->n_vcpus, 3);
	for (size_t k = 0; k < w->n_vcpus; k++) {
		assert_int_equal(w->vcpus[k].index, web1_th[k].index);
		assert_int_equal(w->vcpus[k].tid, web1_th[k].tid);
		assert_int_equal(w->vcpus[k].weight, 0);
		assert_false(w->vcpus[k].cpu_max.set);
		assert_null(w->vcpus[k].cpus);
	}

	const struct cgroup_vm_spec *fr = &a->vms[1];
	assert_int_equal(fr->pid, 3000);
	assert_true(fr->memory_max.set);
	assert_true(fr->memory_max.unlimited);
	assert_int_equal(fr->n_vcpus, 2);
	assert_int_equal(fr->vcpus[0].index, 0);
	assert_int_equal(fr->vcpus[0].tid, 0);
	assert_int_equal(fr->vcpus[1].index, 1);
	assert_int_equal(fr->vcpus[1].tid, 3002);

	const struct cgroup_vm_spec *b1 = &b->vms[0];
	assert_int_equal(b1->pid, 4000);
	assert_int_equal(b1->n_vcpus, 0);
	assert_unlimited_cpu(&b1->cpu_max);

	/* the input is not changed */
	assert_int_equal(vms[0].n_threads, 3);
	assert_ptr_equal(vms[0].threads, web1_th);
	assert_int_equal(web1_th[2].tid, 1004);
}

static void test_vm_every_live_state(void **state)
{
	(void)state;
	/* a VM is planned in every state but gone, as long as it has a pid */
	struct tenant tn = mk_tenant("acme");
	struct vm vms[VM_STATE_LAST];
	for (int s = 0; s < VM_STATE_LAST; s++) {
		char name[16];
		snprintf(name, sizeof(name), "vm%d", s);
		vms[s] = mk_vm(name, "acme", (enum vm_state)s, 100 + s, NULL, 0);
	}
	struct plan_input in = { .root = ROOT, .tenants = &tn, .n_tenants = 1, .vms = vms,
				 .n_vms = VM_STATE_LAST };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_int_equal(t->tenants[0].n_vms, VM_STATE_LAST - 1);
	for (int s = 0; s < VM_STATE_LAST; s++) {
		char name[16];
		snprintf(name, sizeof(name), "vm%d", s);
		const struct cgroup_vm_spec *v = find_vm(t, name);
		if (s == VM_STATE_GONE)
			assert_null(v);
		else
			assert_non_null(v);
	}
	assert_valid(t);
}

/* --- the throttler's caps ------------------------------------------------ */

static void test_caps(void **state)
{
	(void)state;
	struct tenant ts[2] = { mk_tenant("acme"), mk_tenant("beta") };
	ts[0].cpu_max_set = true;
	ts[0].cpu_max_cores = 4;
	struct vm_vcpu th[] = { { 0, 1001 }, { 1, 1002 } };
	struct vm vms[] = {
		mk_vm("web-1", "acme", VM_STATE_RUNNING, 1000, th, ARRAY_SIZE(th)),
		mk_vm("web-2", "acme", VM_STATE_RUNNING, 2000, NULL, 0),
		mk_vm("web", "beta", VM_STATE_RUNNING, 3000, NULL, 0),
	};
	const struct plan_vm_cap caps[] = {
		{ "web-1", 150000 },
		{ "ghost", 5000 },  /* a VM not in the plan: ignored */
		{ "web-", 7000 },   /* matches no VM exactly */
		{ "web", 2000 },
	};
	struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = 2, .vms = vms,
				 .n_vms = ARRAY_SIZE(vms), .caps = caps,
				 .n_caps = ARRAY_SIZE(caps) };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_valid(t);
	assert_quota_cpu(&find_vm(t, "web-1")->cpu_max, 150000);
	assert_unlimited_cpu(&find_vm(t, "web-2")->cpu_max); /* uncapped: explicit max */
	assert_quota_cpu(&find_vm(t, "web")->cpu_max, 2000);
	/* a cap is laid over the VM; the tenant's own settings stay */
	assert_quota_cpu(&find_tenant(t, "acme")->cpu_max, 400000);
	assert_unlimited_cpu(&find_tenant(t, "beta")->cpu_max);
	/* and it does not reach the vCPUs */
	const struct cgroup_vm_spec *w = find_vm(t, "web-1");
	for (size_t k = 0; k < w->n_vcpus; k++)
		assert_false(w->vcpus[k].cpu_max.set);

	/* the cap lifted: back to an explicit max, which restores the VM */
	in.caps = NULL;
	in.n_caps = 0;
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t2 = NULL;
	assert_int_equal(plan_tree(&in, &t2, &err), 0);
	assert_unlimited_cpu(&find_vm(t2, "web-1")->cpu_max);
	assert_unlimited_cpu(&find_vm(t2, "web")->cpu_max);
	assert_valid(t2);
}

/* --- bad names ----------------------------------------------------------- */

/* What the plan's fault callback was told. */
struct faults_seen {
	size_t n;
	char tenant[8][NAME_MAX_LEN + 1];
	char vm[8][128];
	char msg[8][256];
};

static void record_fault(void *data, const char *tenant, const char *vm, const char *msg)
{
	struct faults_seen *f = data;
	if (f->n < 8) {
		snprintf(f->tenant[f->n], sizeof(f->tenant[0]), "%s", tenant);
		snprintf(f->vm[f->n], sizeof(f->vm[0]), "%s", vm);
		snprintf(f->msg[f->n], sizeof(f->msg[0]), "%s", msg);
	}
	f->n++;
}

/* One bad name leaves out only what it names: every other tenant and VM is
 * planned, and the fault is reported. */
static void test_invalid_names(void **state)
{
	(void)state;
	const char *bad[] = { "", ".", "..", "../etc", "a/b", "a b", "acme;rm" };
	struct vm_vcpu th[] = { { 0, 1001 }, { 1, 1002 } };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct tenant ts[3] = { mk_tenant("acme"), mk_tenant("x"), mk_tenant("zeta") };
		snprintf(ts[1].name, sizeof(ts[1].name), "%s", bad[i]);
		struct vm vms[] = {
			mk_vm("web-1", "acme", VM_STATE_RUNNING, 1000, th, ARRAY_SIZE(th)),
			mk_vm("web-2", "acme", VM_STATE_RUNNING, 2000, NULL, 0),
			mk_vm("v", bad[i], VM_STATE_RUNNING, 3000, NULL, 0),
			mk_vm("z-1", "zeta", VM_STATE_RUNNING, 4000, NULL, 0),
		};
		struct faults_seen seen = { 0 };
		struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = 3, .vms = vms,
					 .n_vms = ARRAY_SIZE(vms), .fault = record_fault,
					 .fault_data = &seen };
		_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
		struct error *err = NULL;
		assert_int_equal(plan_tree(&in, &t, &err), 0);
		assert_null(err);
		assert_int_equal(t->n_tenants, 2);
		assert_string_equal(t->tenants[0].name, "acme");
		assert_int_equal(t->tenants[0].n_vms, 2);
		assert_string_equal(t->tenants[1].name, "zeta");
		assert_int_equal(t->tenants[1].n_vms, 1);
		assert_valid(t);
		assert_int_equal(seen.n, 1);
		_cleanup_free_ char *want = xasprintf("plan: invalid tenant name '%s'", bad[i]);
		assert_string_equal(seen.msg[0], want);
	}

	/* a bad VM name in a good tenant, after good VMs and a good tenant */
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct tenant ts[2] = { mk_tenant("acme"), mk_tenant("beta") };
		struct vm vms[] = {
			mk_vm("a-1", "acme", VM_STATE_RUNNING, 500, NULL, 0),
			mk_vm("web-1", "beta", VM_STATE_RUNNING, 1000, th, ARRAY_SIZE(th)),
			mk_vm("x", "beta", VM_STATE_RUNNING, 2000, NULL, 0),
			mk_vm("y", "beta", VM_STATE_RUNNING, 3000, NULL, 0),
		};
		snprintf(vms[2].name, sizeof(vms[2].name), "%s", bad[i]);
		struct faults_seen seen = { 0 };
		struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = 2, .vms = vms,
					 .n_vms = ARRAY_SIZE(vms), .fault = record_fault,
					 .fault_data = &seen };
		_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
		struct error *err = NULL;
		assert_int_equal(plan_tree(&in, &t, &err), 0);
		assert_int_equal(t->n_tenants, 2);
		assert_int_equal(t->tenants[0].n_vms, 1);
		assert_int_equal(t->tenants[1].n_vms, 2);
		assert_string_equal(t->tenants[1].vms[0].name, "web-1");
		assert_string_equal(t->tenants[1].vms[1].name, "y");
		assert_valid(t);
		assert_int_equal(seen.n, 1);
		assert_string_equal(seen.tenant[0], "beta");
		assert_string_equal(seen.vm[0], bad[i]);
		_cleanup_free_ char *want = xasprintf("plan: invalid VM name '%s'", bad[i]);
		assert_string_equal(seen.msg[0], want);
	}
	/* without a callback, the same plan, silently */
	struct tenant t1 = mk_tenant("acme");
	struct vm v1 = mk_vm("ok", "acme", VM_STATE_RUNNING, 1000, NULL, 0);
	struct vm v2 = mk_vm("x", "acme", VM_STATE_RUNNING, 1001, NULL, 0);
	snprintf(v2.name, sizeof(v2.name), "a/b");
	struct vm both[] = { v1, v2 };
	struct plan_input in1 = { .root = ROOT, .tenants = &t1, .n_tenants = 1, .vms = both,
				  .n_vms = 2 };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t1t = NULL;
	assert_int_equal(plan_tree(&in1, &t1t, NULL), 0);
	assert_int_equal(t1t->tenants[0].n_vms, 1);

	/* a bad VM name in a VM that is not planned does no harm */
	struct tenant tn = mk_tenant("acme");
	struct vm v = mk_vm("x", "acme", VM_STATE_GONE, 1000, NULL, 0);
	snprintf(v.name, sizeof(v.name), "../x");
	struct plan_input in = { .root = ROOT, .tenants = &tn, .n_tenants = 1, .vms = &v,
				 .n_vms = 1 };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_int_equal(t->tenants[0].n_vms, 0);
	assert_valid(t);
}

/* --- a larger plan ------------------------------------------------------- */

static void test_many_valid(void **state)
{
	(void)state;
	enum { NT = 12, NV = 60, NC = 8 };
	struct tenant ts[NT];
	for (int i = 0; i < NT; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%02d", i);
		ts[i] = mk_tenant(name);
		ts[i].weight = (uint32_t)(1 + i * 900);
		ts[i].cpu_max_set = i % 2 == 0;
		ts[i].cpu_max_cores = 0.5 * (i + 1);
		ts[i].memory_set = i % 3 == 0;
		ts[i].memory_bytes = (i + 1) * GiB;
	}
	struct vm_vcpu th[NV][NC];
	struct vm vms[NV];
	size_t want_vms = 0;
	for (int j = 0; j < NV; j++) {
		char name[16];
		snprintf(name, sizeof(name), "vm-%02d", j);
		for (int k = 0; k < NC; k++)
			th[j][k] = (struct vm_vcpu){ (unsigned)k, 100000 + j * 100 + k + 1 };
		enum vm_state st = j % 7 == 0 ? VM_STATE_GONE : VM_STATE_RUNNING;
		vms[j] = mk_vm(name, ts[j % NT].name, st, 100000 + j * 100, th[j], (size_t)(j % NC));
		if (st != VM_STATE_GONE)
			want_vms++;
	}
	struct plan_vm_cap caps[] = { { "vm-03", 1000 }, { "vm-04", 800000 } };
	struct plan_input in = { .root = ROOT, .tenants = ts, .n_tenants = NT, .vms = vms,
				 .n_vms = NV, .caps = caps, .n_caps = ARRAY_SIZE(caps) };
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_valid(t);
	size_t got = 0;
	for (size_t i = 0; i < t->n_tenants; i++) {
		got += t->tenants[i].n_vms;
		for (size_t j = 0; j < t->tenants[i].n_vms; j++) {
			const struct cgroup_vm_spec *v = &t->tenants[i].vms[j];
			int num = atoi(v->name + 3);
			assert_int_equal(num % NT, (int)i);
			assert_int_equal(v->n_vcpus, (size_t)(num % NC));
			assert_int_equal(v->pid, 100000 + num * 100);
		}
	}
	assert_int_equal(got, want_vms);
	assert_quota_cpu(&find_vm(t, "vm-03")->cpu_max, 1000);
	assert_quota_cpu(&find_vm(t, "vm-04")->cpu_max, 800000);
}

/* --- the fingerprint: the same inputs, the same tree ------------------------ */

/* Everything a plan is made of, with pinning: 2 nodes of 8 CPUs, 2
 * tenants, 3 VMs (shared on node 0, dedicated on node 1, shared on both),
 * one cap. */
struct pfx {
	char root[64];
	struct tenant t[2];
	struct vm_vcpu th[3][2];
	struct vm v[3];
	struct plan_vm_cap caps[2];
	size_t n_caps;
	struct topology_node nodes[2];
	struct topology topo;
	struct pools pools;
	struct admit_reservation res[3];
	struct admit_host host;
};

static void set_cpus(struct cpuset *s, const char *list)
{
	struct error *err = NULL;
	assert_int_equal(cpulist_parse(list, s, &err), 0);
}

static void pfx_init(struct pfx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "%s", ROOT);
	f->t[0] = mk_tenant("gold");
	f->t[0].weight = 400;
	f->t[1] = mk_tenant("batch");
	f->t[1].cpu_max_set = true;
	f->t[1].cpu_max_cores = 2.5;
	const char *names[3] = { "web", "db", "wide" };
	for (int j = 0; j < 3; j++) {
		for (int k = 0; k < 2; k++)
			f->th[j][k] = (struct vm_vcpu){ (unsigned)k, 1000 + 10 * j + k + 1 };
		f->v[j] = mk_vm(names[j], j == 2 ? "batch" : "gold", VM_STATE_RUNNING, 1000 + 10 * j,
				f->th[j], 2);
		f->v[j].vcpus = 2;
		f->v[j].start_time = 500 + (uint64_t)j;
		snprintf(f->res[j].vm, sizeof(f->res[j].vm), "%s", names[j]);
		snprintf(f->res[j].tenant, sizeof(f->res[j].tenant), "%s", f->v[j].tenant);
		f->res[j].vcpus = 2;
		f->res[j].n_shares = 1;
		f->res[j].shares[0] = (struct admit_share){ 0, 2 };
	}
	f->res[1].cpu_policy = ADMIT_CPU_DEDICATED;
	f->res[1].thread_policy = ADMIT_THREAD_PREFER;
	f->res[1].shares[0] = (struct admit_share){ 1, 2 };
	set_cpus(&f->res[1].pcpus, "12-13");
	f->res[2].n_shares = 2;
	f->res[2].shares[0] = (struct admit_share){ 0, 1 };
	f->res[2].shares[1] = (struct admit_share){ 1, 1 };
	f->caps[0] = (struct plan_vm_cap){ "wide", 50000 };
	f->n_caps = 1;
	for (unsigned n = 0; n < 2; n++) {
		f->nodes[n].id = n;
		set_cpus(&f->nodes[n].cpus, n ? "8-15" : "0-7");
		f->nodes[n].n_cpus = 8;
	}
	f->topo.nodes = f->nodes;
	f->topo.n_nodes = 2;
	f->topo.n_cpus = 16;
	set_cpus(&f->topo.online, "0-15");
	set_cpus(&f->pools.housekeeping, "0-1");
	set_cpus(&f->pools.dedicated, "12-15");
	set_cpus(&f->pools.shared, "2-11");
	f->host = (struct admit_host){ &f->topo, &f->pools, 2.0, f->res, 3 };
}

static struct plan_input pfx_input(struct pfx *f)
{
	return (struct plan_input){ .root = f->root, .tenants = f->t, .n_tenants = 2,
				    .vms = f->v, .n_vms = 3, .caps = f->caps,
				    .n_caps = f->n_caps, .admission = &f->host };
}

static void dump_cpu_max(FILE *o, const struct cgroup_cpu_max *m)
{
	fprintf(o, " cpu.max=%d/%d/%llu/%llu", m->set, m->unlimited,
		(unsigned long long)m->quota_us, (unsigned long long)m->period_us);
}

/* Every field of a tree, as text (for "are these two trees the same"). */
static char *tree_text(const struct cgroup_tree *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	fprintf(o, "root=%s\n", t->root);
	for (size_t i = 0; i < t->n_tenants; i++) {
		const struct cgroup_tenant_spec *ts = &t->tenants[i];
		fprintf(o, "tenant %s w=%u cpus=%s mems=%s mem=%d/%d/%llu", ts->name, ts->weight,
			ts->cpus ? ts->cpus : "-", ts->mems ? ts->mems : "-", ts->memory_max.set,
			ts->memory_max.unlimited, (unsigned long long)ts->memory_max.bytes);
		dump_cpu_max(o, &ts->cpu_max);
		fputc('\n', o);
		for (size_t j = 0; j < ts->n_vms; j++) {
			const struct cgroup_vm_spec *v = &ts->vms[j];
			fprintf(o, " vm %s pid=%d start=%llu w=%u cpus=%s mems=%s emu=%s mem=%d/%d/%llu",
				v->name, (int)v->pid, (unsigned long long)v->start_time, v->weight,
				v->cpus ? v->cpus : "-", v->mems ? v->mems : "-",
				v->emulator_cpus ? v->emulator_cpus : "-", v->memory_max.set,
				v->memory_max.unlimited, (unsigned long long)v->memory_max.bytes);
			dump_cpu_max(o, &v->cpu_max);
			fputc('\n', o);
			for (size_t k = 0; k < v->n_vcpus; k++) {
				const struct cgroup_vcpu_spec *c = &v->vcpus[k];
				fprintf(o, "  vcpu %u tid=%d w=%u cpus=%s", c->index, (int)c->tid,
					c->weight, c->cpus ? c->cpus : "-");
				dump_cpu_max(o, &c->cpu_max);
				fputc('\n', o);
			}
		}
	}
	fclose(o);
	return buf;
}

/* The fixture planned: its fingerprint and its tree as text. */
static uint64_t pfx_plan(struct pfx *f, char **text)
{
	struct plan_input in = pfx_input(f);
	uint64_t fp = plan_input_fingerprint(&in);
	assert_int_not_equal(fp, 0);
	_cleanup_(cgroup_tree_freep) struct cgroup_tree *t = NULL;
	struct error *err = NULL;
	assert_int_equal(plan_tree(&in, &t, &err), 0);
	assert_int_equal(t->fingerprint, 0); /* the caller's to set */
	assert_valid(t);
	*text = tree_text(t);
	return fp;
}

typedef void (*pfx_mutation)(struct pfx *f);
static void m_root(struct pfx *f) { strcat(f->root, "2"); }
static void m_weight(struct pfx *f) { f->t[0].weight = 401; }
static void m_tenant_cap(struct pfx *f) { f->t[1].cpu_max_cores = 2.25; }
static void m_tenant_uncap(struct pfx *f) { f->t[1].cpu_max_set = false; }
static void m_tenant_mem(struct pfx *f) { f->t[0].memory_set = true; f->t[0].memory_bytes = GiB; }
static void m_tenant_name(struct pfx *f) { strcpy(f->t[1].name, "batch2"); }
static void m_pid(struct pfx *f) { f->v[0].pid = 4242; }
static void m_start(struct pfx *f) { f->v[0].start_time = 501; }
static void m_gone(struct pfx *f) { f->v[1].state = VM_STATE_GONE; }
static void m_vm_tenant(struct pfx *f) { strcpy(f->v[0].tenant, "batch"); }
static void m_vm_mem(struct pfx *f) { f->v[2].memory_set = true; f->v[2].memory_bytes = 2 * GiB; }
static void m_tid(struct pfx *f) { f->th[0][1].tid = 7777; }
static void m_index(struct pfx *f) { f->th[2][1].index = 5; }
static void m_fewer_threads(struct pfx *f) { f->v[1].n_threads = 1; }
static void m_cap(struct pfx *f) { f->caps[0].quota_us = 60000; }
static void m_cap_other(struct pfx *f) { f->caps[0].vm = "web"; }
static void m_cap_more(struct pfx *f) { f->caps[1] = (struct plan_vm_cap){ "db", 9000 }; f->n_caps = 2; }
static void m_share_node(struct pfx *f) { f->res[0].shares[0].node = 1; }
static void m_span(struct pfx *f) { f->res[2].n_shares = 1; }
static void m_pcpus(struct pfx *f) { set_cpus(&f->res[1].pcpus, "12,14"); }
static void m_policy(struct pfx *f) { f->res[0].cpu_policy = ADMIT_CPU_DEDICATED; set_cpus(&f->res[0].pcpus, "14-15"); }
static void m_unreserved(struct pfx *f) { strcpy(f->res[0].vm, "other"); }
static void m_shared_pool(struct pfx *f) { set_cpus(&f->pools.shared, "2-10"); }
static void m_housekeeping(struct pfx *f) { set_cpus(&f->pools.housekeeping, "0"); }
static void m_node_cpus(struct pfx *f) { set_cpus(&f->nodes[1].cpus, "9-15"); }
static void m_node_id(struct pfx *f) { f->nodes[1].id = 3; }
static void m_no_pools(struct pfx *f) { f->host.pools = NULL; }
/* what a plan does not read: the fingerprint stays */
static void m_uuid(struct pfx *f) { strcpy(f->v[0].uuid, "5f1c9a3e-0000-4000-8000-000000000001"); }
static void m_updated(struct pfx *f) { f->v[0].updated_at = 99; f->v[0].state_since_ms = 12; }
static void m_used(struct pfx *f) { f->t[0].vcpus_used = 7; f->t[0].vm_count = 3; }
static void m_class(struct pfx *f) { f->t[1].class_ = TENANT_CLASS_BEST_EFFORT; }
static void m_ratio(struct pfx *f) { f->host.cpu_ratio = 4.0; }

static void test_fingerprint(void **state)
{
	(void)state;
	struct pfx f;
	pfx_init(&f);
	_cleanup_free_ char *base = NULL, *again = NULL;
	uint64_t fp0 = pfx_plan(&f, &base);
	pfx_init(&f);
	assert_true(pfx_plan(&f, &again) == fp0);
	assert_string_equal(base, again);

	/* every input the tree is made of: a new tree, a new fingerprint */
	static const struct { const char *what; pfx_mutation m; } changes[] = {
		{ "root", m_root }, { "tenant weight", m_weight }, { "tenant cap", m_tenant_cap },
		{ "tenant cap lifted", m_tenant_uncap }, { "tenant memory", m_tenant_mem },
		{ "tenant name", m_tenant_name }, { "pid", m_pid }, { "start time", m_start },
		{ "gone", m_gone }, { "VM's tenant", m_vm_tenant }, { "VM memory", m_vm_mem },
		{ "a vCPU's TID", m_tid }, { "a vCPU's index", m_index },
		{ "a vCPU fewer", m_fewer_threads }, { "cap", m_cap },
		{ "cap on another VM", m_cap_other }, { "one cap more", m_cap_more },
		{ "share's node", m_share_node }, { "span", m_span },
		{ "dedicated pCPUs", m_pcpus }, { "CPU policy", m_policy },
		{ "reservation gone", m_unreserved }, { "shared pool", m_shared_pool },
		{ "housekeeping CPUs", m_housekeeping }, { "node's CPUs", m_node_cpus },
		{ "node id", m_node_id }, { "no pools", m_no_pools },
	};
	for (size_t i = 0; i < ARRAY_SIZE(changes); i++) {
		pfx_init(&f);
		changes[i].m(&f);
		_cleanup_free_ char *text = NULL;
		uint64_t fp = pfx_plan(&f, &text);
		if (strcmp(text, base) == 0)
			fail_msg("%s: the tree did not change (a useless case)", changes[i].what);
		if (fp == fp0)
			fail_msg("%s: the tree changed, the fingerprint did not", changes[i].what);
	}
	/* what no tree is made of: the same fingerprint (a steady tick whose
	 * store rows were touched plans nothing) */
	static const struct { const char *what; pfx_mutation m; } same[] = {
		{ "uuid", m_uuid }, { "updated_at", m_updated }, { "use counts", m_used },
		{ "class", m_class }, { "overcommit ratio", m_ratio },
	};
	for (size_t i = 0; i < ARRAY_SIZE(same); i++) {
		pfx_init(&f);
		same[i].m(&f);
		_cleanup_free_ char *text = NULL;
		uint64_t fp = pfx_plan(&f, &text);
		assert_string_equal(text, base);
		if (fp != fp0)
			fail_msg("%s: the fingerprint changed for the same tree", same[i].what);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cores_to_quota),
		cmocka_unit_test(test_tenants),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_vms),
		cmocka_unit_test(test_vm_weights),
		cmocka_unit_test(test_vm_every_live_state),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_invalid_names),
		cmocka_unit_test(test_many_valid),
		cmocka_unit_test(test_fingerprint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
