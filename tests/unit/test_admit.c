/* test_admit.c - VM admission (src/plan/admit.c): the 16-CPU scenario
 * (2 nodes x 4 cores x 2 threads, housekeeping 0-1, dedicated 12-15, ratio
 * 2.0) filled exactly to capacity, node choice and spanning, the thread
 * policies on SMT and non-SMT hosts, quota and impossible requests with
 * their messages, persisted forms, the host check, usage, and property
 * tests: seeded random sequences of admits and releases on several hosts,
 * checked after every step against an independent model recomputed from
 * the reservation list (ratio per node, exclusive pCPUs, thread policies,
 * quotas, and that every refusal was due and every due admission made).
 * SEED=n in the environment changes the property tests' seed. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vcpud/admit.h"
#include "vcpud/cpulist.h"
#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

#define GiB (1024LL * 1024 * 1024)

static struct cpuset cs(const char *list)
{
	struct cpuset s;
	struct error *err = NULL;
	if (cpulist_parse(list, &s, &err) < 0)
		fail_msg("bad list in test: %s", err->msg);
	return s;
}

static void assert_cpuset(const struct cpuset *s, const char *want)
{
	_cleanup_free_ char *l = cpulist_format(s);
	if (strcmp(l, want) != 0)
		fail_msg("cpuset %s, want %s", l, want);
}

/* --- a host with reservations and tenants ---------------------------------------- */

#define MAX_TENANTS 4

struct world {
	struct topology *t;
	struct pools pools;
	double ratio;
	struct admit_reservation *res;
	size_t n, cap;
	struct admit_tenant tenants[MAX_TENANTS];
	size_t n_tenants;
};

static void world_pools(struct world *w, const char *hk, const char *ded)
{
	struct cpuset h = cs(hk), d = cs(ded);
	struct error *err = NULL;
	if (topology_pools(w->t, &h, &d, &w->pools, &err) < 0)
		fail_msg("%s", err->msg);
}

static void world_spec(struct world *w, unsigned nodes, unsigned cores, unsigned threads,
		       bool adjacent, const char *hk, const char *ded, double ratio)
{
	memset(w, 0, sizeof(*w));
	struct topology_spec s = { .packages = nodes, .nodes_per_package = 1,
				   .cores_per_node = cores, .threads_per_core = threads,
				   .siblings_adjacent = adjacent, .mem_per_node_bytes = 64 * GiB };
	struct error *err = NULL;
	if (topology_from_spec(&s, &w->t, &err) < 0)
		fail_msg("%s", err->msg);
	world_pools(w, hk, ded);
	w->ratio = ratio;
}

static void world_fixture(struct world *w, const char *name, const char *hk,
			  const char *ded, double ratio)
{
	memset(w, 0, sizeof(*w));
	const char *root = getenv("VCPUD_SRC");
	_cleanup_free_ char *dir = path_join(root && *root ? root : ".",
					     "tests/fixtures/topology", name, NULL);
	struct error *err = NULL;
	if (topology_load(dir, &w->t, &err) < 0)
		fail_msg("%s", err->msg);
	world_pools(w, hk, ded);
	w->ratio = ratio;
}

static void world_free(struct world *w)
{
	topology_free(w->t);
	free(w->res);
	memset(w, 0, sizeof(*w));
}

static struct admit_tenant *world_tenant(struct world *w, const char *name, uint32_t vcpus,
					 int64_t memory)
{
	assert_true(w->n_tenants < MAX_TENANTS);
	struct admit_tenant *t = &w->tenants[w->n_tenants++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->vcpus_quota = vcpus;
	t->memory_set = memory > 0;
	t->memory_quota_bytes = memory;
	return t;
}

static struct admit_host world_host(const struct world *w)
{
	return (struct admit_host){ .topo = w->t, .pools = &w->pools, .cpu_ratio = w->ratio,
				    .reservations = w->res, .n_reservations = w->n };
}

/* The tenant's quota with its use recomputed from the reservations. */
static struct admit_tenant tenant_now(const struct world *w, const char *name)
{
	struct admit_tenant t;
	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus_quota = 1000000;
	for (size_t i = 0; i < w->n_tenants; i++)
		if (strcmp(w->tenants[i].name, name) == 0)
			t = w->tenants[i];
	t.vcpus_used = 0;
	t.memory_used_bytes = 0;
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->res[i].tenant, name) == 0) {
			t.vcpus_used += w->res[i].vcpus;
			t.memory_used_bytes += w->res[i].memory_set ? w->res[i].memory_bytes : 0;
		}
	return t;
}

static void world_add(struct world *w, const struct admit_reservation *r)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 16;
		w->res = xrealloc(w->res, w->cap * sizeof(*w->res));
	}
	w->res[w->n++] = *r;
}

static void world_release(struct world *w, const char *vm)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->res[i].vm, vm) == 0) {
			w->res[i] = w->res[--w->n];
			return;
		}
	fail_msg("no vm %s", vm);
}

static struct admit_request req_make(const char *vm, const char *tenant, uint32_t vcpus,
				     enum admit_cpu_policy cp, enum admit_thread_policy tp)
{
	return (struct admit_request){ .vm = vm, .tenant = tenant, .vcpus = vcpus,
				       .cpu_policy = cp, .thread_policy = tp };
}

/* Admit; on success keep the reservation. Returns 0 or the error code;
 * *msg (if given) gets the message. */
static int try_req(struct world *w, const struct admit_request *rq, struct admit_placement *pl,
		   char **msg)
{
	struct admit_host h = world_host(w);
	struct admit_tenant t = tenant_now(w, rq->tenant ? rq->tenant : "");
	struct admit_placement local;
	struct error *err = NULL;
	if (!pl)
		pl = &local;
	int rc = admit_vm(&h, &t, rq, pl, &err);
	if (msg)
		*msg = NULL;
	if (rc == 0) {
		assert_null(err);
		world_add(w, &pl->res);
		return 0;
	}
	assert_int_equal(rc, -1);
	assert_non_null(err);
	int code = err->code;
	if (msg)
		*msg = xstrdup(err->msg);
	error_free(&err);
	return code;
}

static int try_admit(struct world *w, const char *vm, const char *tenant, uint32_t vcpus,
		     enum admit_cpu_policy cp, enum admit_thread_policy tp,
		     struct admit_placement *pl, char **msg)
{
	struct admit_request rq = req_make(vm, tenant, vcpus, cp, tp);
	return try_req(w, &rq, pl, msg);
}

static void must_admit(struct world *w, const char *vm, uint32_t vcpus,
		       enum admit_cpu_policy cp, enum admit_thread_policy tp,
		       struct admit_placement *pl)
{
	_cleanup_free_ char *msg = NULL;
	int rc = try_admit(w, vm, "acme", vcpus, cp, tp, pl, &msg);
	if (rc != 0)
		fail_msg("vm %s refused (%d): %s", vm, rc, msg);
}

static void must_refuse(struct world *w, const char *vm, const char *tenant, uint32_t vcpus,
			enum admit_cpu_policy cp, enum admit_thread_policy tp, int code,
			const char *want)
{
	_cleanup_free_ char *msg = NULL;
	size_t before = w->n;
	int rc = try_admit(w, vm, tenant, vcpus, cp, tp, NULL, &msg);
	if (rc != code)
		fail_msg("vm %s: code %d, want %d (%s)", vm, rc, code, msg ? msg : "admitted");
	if (!strstr(msg, want))
		fail_msg("vm %s: message\n  '%s'\nlacks\n  '%s'", vm, msg, want);
	assert_int_equal(w->n, before);
}

static char *shares(const struct admit_reservation *r)
{
	return admit_shares_format(r);
}

#define SH ADMIT_CPU_SHARED
#define DED ADMIT_CPU_DEDICATED
#define PREFER ADMIT_THREAD_PREFER
#define ISOLATE ADMIT_THREAD_ISOLATE
#define REQUIRE ADMIT_THREAD_REQUIRE

/* --- the scenario ----------------------------------------------------------------- */

/* 16 CPUs, 2 nodes x 4 cores x 2 threads (siblings adjacent: node 0 is 0-7,
 * node 1 8-15), housekeeping 0-1, dedicated 12-15, ratio 2.0: shared pool
 * node 0 = 2-7 (6 pCPUs, 12 vCPUs), node 1 = 8-11 (4 pCPUs, 8 vCPUs). */
static void scenario(struct world *w)
{
	world_spec(w, 2, 4, 2, true, "0-1", "12-15", 2.0);
	world_tenant(w, "acme", 1000, 0);
}

static void test_scenario_shared_to_capacity(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	assert_cpuset(&w.pools.shared, "2-11");

	/* 2-vCPU VMs: each goes to the node with the most room (node 0 on a
	 * tie), so the nodes fill 12 and 8 */
	const char *want_node[] = { "0:2", "0:2", "0:2", "1:2", "0:2",
				    "1:2", "0:2", "1:2", "0:2", "1:2" };
	for (int i = 0; i < 10; i++) {
		char vm[16];
		snprintf(vm, sizeof(vm), "vm%d", i);
		struct admit_placement pl;
		must_admit(&w, vm, 2, SH, PREFER, &pl);
		_cleanup_free_ char *s = shares(&pl.res);
		if (strcmp(s, want_node[i]) != 0)
			fail_msg("%s: shares %s, want %s", vm, s, want_node[i]);
		assert_false(pl.spans);
		assert_cpuset(&pl.cpus, s[0] == '0' ? "2-7" : "8-11");
		assert_cpuset(&pl.mems, s[0] == '0' ? "0" : "1");
		assert_cpuset(&pl.res.pcpus, "");
	}
	/* exactly full: the next is refused with the figures */
	must_refuse(&w, "vm10", "acme", 1, SH, PREFER, EBUSY,
		    "vm vm10 not admitted: shared pool on node 0: 12 of 12 vCPUs admitted "
		    "(ratio 2.0 x 6 pCPUs), 1 requested; node 1: 8 of 8");

	struct admit_host h = world_host(&w);
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	assert_int_equal(u.n_nodes, 2);
	assert_int_equal(u.nodes[0].shared_admitted, 12);
	assert_int_equal(u.nodes[0].shared_capacity, 12);
	assert_int_equal(u.nodes[0].shared_pcpus, 6);
	assert_int_equal(u.nodes[1].shared_admitted, 8);
	assert_int_equal(u.nodes[1].shared_capacity, 8);
	assert_int_equal(u.nodes[0].vms, 6);
	assert_int_equal(u.nodes[1].vms, 4);
	assert_int_equal(u.total.shared_capacity, 20);
	assert_int_equal(u.total.shared_admitted, 20);
	assert_int_equal(u.total.vms, 10);
	assert_int_equal(u.total.dedicated_pcpus, 4);
	assert_int_equal(u.total.dedicated_free, 4);
	assert_int_equal(u.total.dedicated_free_cores, 2);
	admit_usage_clear(&u);

	/* the dedicated pool is separate: still open */
	must_admit(&w, "d0", 2, DED, REQUIRE, NULL);
	/* a release makes room again, on the node it freed */
	world_release(&w, "vm3");
	struct admit_placement pl;
	must_admit(&w, "vm11", 2, SH, PREFER, &pl);
	_cleanup_free_ char *s = shares(&pl.res);
	assert_string_equal(s, "1:2");
	must_refuse(&w, "vm12", "acme", 1, SH, PREFER, EBUSY, "node 1: 8 of 8");
	world_free(&w);
}

static void test_scenario_spanning(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_placement pl;

	/* 8 vCPUs: node 0 has the room (12) but only 6 pCPUs, so it spans */
	must_admit(&w, "big", 8, SH, PREFER, &pl);
	_cleanup_free_ char *s1 = shares(&pl.res);
	assert_string_equal(s1, "0:6,1:2");
	assert_true(pl.spans);
	assert_cpuset(&pl.cpus, "2-11");
	assert_cpuset(&pl.mems, "0-1");
	struct admit_host h = world_host(&w);
	_cleanup_free_ char *d = admit_placement_describe(&h, &pl.res);
	assert_string_equal(d, "shared pool, nodes 0-1 (0: 6, 1: 2 vCPUs; CPUs 2-11)");

	/* 6 fits node 0 alone (room 6, 6 pCPUs), so it does not span */
	must_admit(&w, "six", 6, SH, PREFER, &pl);
	_cleanup_free_ char *s2 = shares(&pl.res);
	assert_string_equal(s2, "0:6");
	/* node 0 full (12/12), node 1 2/8 */
	must_admit(&w, "four", 4, SH, PREFER, &pl);
	_cleanup_free_ char *s3 = shares(&pl.res);
	assert_string_equal(s3, "1:4");
	/* node 1: 6/8; 3 vCPUs do not fit anywhere */
	must_refuse(&w, "three", "acme", 3, SH, PREFER, EBUSY,
		    "shared pool on node 0: 12 of 12 vCPUs admitted (ratio 2.0 x 6 pCPUs), "
		    "3 requested; node 1: 6 of 8");
	must_admit(&w, "two", 2, SH, PREFER, &pl);

	/* impossible requests: more than the pool's pCPUs, more than the host */
	must_refuse(&w, "huge", "acme", 11, SH, PREFER, EINVAL,
		    "vm huge not admitted: shared pool has 10 pCPUs, 11 vCPUs requested");
	must_refuse(&w, "huger", "acme", 17, SH, PREFER, EINVAL,
		    "vm huger not admitted: 17 vCPUs requested, the host has 16 online CPUs");
	must_refuse(&w, "d", "acme", 17, DED, PREFER, EINVAL, "the host has 16 online CPUs");
	world_free(&w);
}

/* The message of the brief, on 2 nodes of 8 shared pCPUs each. */
static void test_refusal_figures(void **state)
{
	(void)state;
	struct world w;
	world_spec(&w, 2, 4, 2, true, "", "", 2.0);
	world_tenant(&w, "acme", 1000, 0);
	for (int i = 0; i < 8; i++) {
		char vm[16];
		snprintf(vm, sizeof(vm), "a%d", i);
		must_admit(&w, vm, 4, SH, PREFER, NULL);  /* alternates 0, 1, ... */
	}
	world_release(&w, "a0");                        /* node 0: 12 of 16 */
	must_admit(&w, "b", 2, SH, PREFER, NULL);        /* node 0: 14 of 16 */
	must_refuse(&w, "c", "acme", 4, SH, PREFER, EBUSY,
		    "vm c not admitted: shared pool on node 0: 14 of 16 vCPUs admitted "
		    "(ratio 2.0 x 8 pCPUs), 4 requested; node 1: 16 of 16");
	must_admit(&w, "d", 2, SH, PREFER, NULL);
	world_free(&w);
}

static void test_ratio_rounding_and_fractions(void **state)
{
	(void)state;
	struct world w;
	/* 1 node, 3 shared pCPUs, ratio 1.5: floor(4.5) = 4 */
	world_spec(&w, 1, 3, 1, true, "", "", 1.5);
	world_tenant(&w, "acme", 1000, 0);
	must_admit(&w, "a", 3, SH, PREFER, NULL);
	must_admit(&w, "b", 1, SH, PREFER, NULL);
	must_refuse(&w, "c", "acme", 1, SH, PREFER, EBUSY,
		    "shared pool on node 0: 4 of 4 vCPUs admitted (ratio 1.5 x 3 pCPUs), "
		    "1 requested");
	world_free(&w);

	/* ratio 0.5: 4 pCPUs hold 2 vCPUs, a 3-vCPU VM never fits */
	world_spec(&w, 1, 4, 1, true, "", "", 0.5);
	must_refuse(&w, "c", "acme", 3, SH, PREFER, EINVAL,
		    "shared pool holds at most 2 vCPUs of one VM (ratio 0.5 x 4 pCPUs), "
		    "3 requested");
	must_admit(&w, "a", 2, SH, PREFER, NULL);
	must_refuse(&w, "b", "acme", 1, SH, PREFER, EBUSY, "2 of 2 vCPUs admitted (ratio 0.5");
	world_free(&w);

	/* 1.25 is printed as such; 2.0 x 8 is 16 whatever the float */
	world_spec(&w, 1, 8, 1, true, "", "", 1.25);
	struct admit_host h = world_host(&w);
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	assert_int_equal(u.nodes[0].shared_capacity, 10);
	admit_usage_clear(&u);
	for (int i = 0; i < 10; i++) {
		char vm[8];
		snprintf(vm, sizeof(vm), "v%d", i);
		must_admit(&w, vm, 1, SH, PREFER, NULL);
	}
	must_refuse(&w, "x", "acme", 1, SH, PREFER, EBUSY, "(ratio 1.25 x 8 pCPUs)");
	world_free(&w);

	world_spec(&w, 1, 10, 1, true, "", "", 0.1 * 3);  /* 0.30000000000000004 */
	h = world_host(&w);
	admit_usage_compute(&h, &u);
	assert_int_equal(u.nodes[0].shared_capacity, 3);
	admit_usage_clear(&u);
	world_free(&w);
}

/* --- thread policies ------------------------------------------------------------- */

static void test_dedicated_prefer(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_placement pl;

	/* siblings together */
	must_admit(&w, "a", 2, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12-13");
	assert_cpuset(&pl.cpus, "12-13");
	assert_cpuset(&pl.mems, "1");
	_cleanup_free_ char *s = shares(&pl.res);
	assert_string_equal(s, "1:2");
	assert_int_equal(admit_vcpu_pcpu(&pl.res, 0), 12);
	assert_int_equal(admit_vcpu_pcpu(&pl.res, 1), 13);
	assert_int_equal(admit_vcpu_pcpu(&pl.res, 2), -1);
	world_release(&w, "a");

	/* a remainder takes a hole before it breaks a whole core */
	must_admit(&w, "b", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12");
	must_admit(&w, "c", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "13");
	must_admit(&w, "d", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "14");
	world_release(&w, "c");
	must_admit(&w, "e", 1, DED, PREFER, &pl);   /* holes 13 and 15: lowest */
	assert_cpuset(&pl.res.pcpus, "13");
	/* two vCPUs, no whole core left: two half cores */
	world_release(&w, "b");
	must_admit(&w, "f", 2, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12,15");
	must_refuse(&w, "g", "acme", 1, DED, PREFER, EBUSY,
		    "vm g not admitted: dedicated pool: 0 free pCPUs with prefer, 1 requested "
		    "(node 0: 0, node 1: 0)");
	world_free(&w);

	/* 3 vCPUs: one whole core and a hole */
	scenario(&w);
	must_admit(&w, "h", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12");
	must_admit(&w, "i", 3, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "13-15");
	must_refuse(&w, "j", "acme", 5, DED, PREFER, EINVAL,
		    "dedicated pool has 4 pCPUs usable with prefer, 5 requested");
	world_free(&w);
}

static void test_dedicated_isolate(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_placement pl;

	/* one vCPU per core; the sibling is blocked */
	must_admit(&w, "a", 2, DED, ISOLATE, &pl);
	assert_cpuset(&pl.res.pcpus, "12,14");
	struct admit_host h = world_host(&w);
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	assert_cpuset(&u.dedicated_used, "12,14");
	assert_cpuset(&u.dedicated_blocked, "13,15");
	assert_int_equal(u.nodes[1].dedicated_used, 2);
	assert_int_equal(u.nodes[1].dedicated_blocked, 2);
	assert_int_equal(u.nodes[1].dedicated_free, 0);
	assert_int_equal(u.nodes[1].dedicated_free_cores, 0);
	assert_int_equal(u.nodes[0].dedicated_pcpus, 0);
	admit_usage_clear(&u);
	_cleanup_free_ char *d = admit_placement_describe(&h, &pl.res);
	assert_string_equal(d, "dedicated pool (isolate), node 1, pCPUs 12,14");
	/* blocked siblings go to no one, whatever the policy */
	must_refuse(&w, "b", "acme", 1, DED, PREFER, EBUSY, "0 free pCPUs with prefer");
	must_refuse(&w, "c", "acme", 1, DED, ISOLATE, EBUSY,
		    "dedicated pool: 0 free cores with isolate, 1 requested");
	world_release(&w, "a");

	/* a prefer VM on one thread makes its core unusable for isolate */
	must_admit(&w, "p", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12");
	must_admit(&w, "i", 1, DED, ISOLATE, &pl);
	assert_cpuset(&pl.res.pcpus, "14");
	must_refuse(&w, "j", "acme", 1, DED, ISOLATE, EBUSY,
		    "dedicated pool: 0 free cores with isolate, 1 requested");
	/* the hole next to the prefer VM is still there for prefer */
	must_admit(&w, "q", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "13");
	must_refuse(&w, "k", "acme", 3, DED, ISOLATE, EINVAL,
		    "dedicated pool has 2 cores usable with isolate, 3 requested");
	world_free(&w);

	/* the brief's message: 4 cores in the pool, 2 free */
	world_spec(&w, 1, 8, 2, true, "0-1", "8-15", 2.0);
	world_tenant(&w, "acme", 1000, 0);
	must_admit(&w, "x", 2, DED, REQUIRE, &pl);
	assert_cpuset(&pl.res.pcpus, "8-9");
	must_admit(&w, "y", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "10");
	must_refuse(&w, "z", "acme", 3, DED, ISOLATE, EBUSY,
		    "vm z not admitted: dedicated pool: 2 free cores with isolate, 3 requested");
	must_admit(&w, "z", 2, DED, ISOLATE, &pl);
	assert_cpuset(&pl.res.pcpus, "12,14");
	world_free(&w);

	/* isolate needs cores wholly in the pool: with the x86 numbering,
	 * dedicated 12-15 are second threads whose siblings are shared */
	world_spec(&w, 2, 4, 2, false, "0-1", "12-15", 2.0);
	world_tenant(&w, "acme", 1000, 0);
	must_refuse(&w, "i", "acme", 1, DED, ISOLATE, EINVAL,
		    "dedicated pool has 0 cores usable with isolate, 1 requested (a core "
		    "counts only when all its threads are in host.dedicated_cpus)");
	must_refuse(&w, "r", "acme", 2, DED, REQUIRE, EINVAL,
		    "dedicated pool has 0 whole cores usable with require, 1 requested "
		    "(2 vCPUs)");
	must_admit(&w, "p", 4, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "12-15");
	world_free(&w);
}

static void test_dedicated_require(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_placement pl;
	must_refuse(&w, "odd", "acme", 3, DED, REQUIRE, EINVAL,
		    "thread policy require takes whole cores: 3 vCPUs is not a multiple of "
		    "2 threads per core");
	must_refuse(&w, "one", "acme", 1, DED, REQUIRE, EINVAL, "not a multiple");
	must_admit(&w, "a", 2, DED, REQUIRE, &pl);
	assert_cpuset(&pl.res.pcpus, "12-13");
	/* a hole on a whole core's sibling makes that core unusable */
	must_admit(&w, "p", 1, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "14");
	must_refuse(&w, "b", "acme", 2, DED, REQUIRE, EBUSY,
		    "dedicated pool: 0 free whole cores with require, 1 requested (2 vCPUs)");
	world_release(&w, "p");
	must_admit(&w, "b", 2, DED, REQUIRE, &pl);
	assert_cpuset(&pl.res.pcpus, "14-15");
	must_refuse(&w, "c", "acme", 6, DED, REQUIRE, EINVAL,
		    "dedicated pool has 2 whole cores usable with require, 3 requested "
		    "(6 vCPUs)");
	world_free(&w);

	/* a core with an offline sibling is not whole */
	world_fixture(&w, "offline", "0-1", "2,4-5", 2.0);
	world_tenant(&w, "acme", 1000, 0);
	must_refuse(&w, "r", "acme", 4, DED, REQUIRE, EINVAL,
		    "dedicated pool has 1 whole core usable with require, 2 requested "
		    "(4 vCPUs) (a core counts only when all its threads are online");
	must_admit(&w, "r", 2, DED, REQUIRE, &pl);
	assert_cpuset(&pl.res.pcpus, "4-5");
	/* ... but isolate can use it: its one thread has no sibling */
	must_admit(&w, "i", 1, DED, ISOLATE, &pl);
	assert_cpuset(&pl.res.pcpus, "2");
	world_free(&w);
}

static void test_dedicated_spanning_nodes(void **state)
{
	(void)state;
	struct world w;
	/* node 0 = 0-7, node 1 = 8-15; dedicated 4-11: two cores on each */
	world_spec(&w, 2, 4, 2, true, "0-1", "4-11", 2.0);
	world_tenant(&w, "acme", 1000, 0);
	struct admit_placement pl;
	must_admit(&w, "a", 2, DED, REQUIRE, &pl);        /* node 0 (tie: lowest) */
	assert_cpuset(&pl.res.pcpus, "4-5");
	must_admit(&w, "b", 4, DED, REQUIRE, &pl);        /* node 1 has 2 whole cores */
	assert_cpuset(&pl.res.pcpus, "8-11");
	assert_false(pl.spans);
	world_release(&w, "a");
	world_release(&w, "b");
	must_admit(&w, "c", 6, DED, REQUIRE, &pl);        /* 3 cores: spans */
	assert_true(pl.spans);
	/* most first: both nodes have 2 cores; node 0 wins the tie */
	assert_cpuset(&pl.res.pcpus, "4-9");
	_cleanup_free_ char *s = shares(&pl.res);
	assert_string_equal(s, "0:4,1:2");
	assert_cpuset(&pl.mems, "0-1");
	struct admit_host h = world_host(&w);
	_cleanup_free_ char *desc = admit_placement_describe(&h, &pl.res);
	assert_string_equal(desc, "dedicated pool (require), nodes 0-1, pCPUs 4-9");
	world_free(&w);
}

static void test_non_smt_host(void **state)
{
	(void)state;
	struct world w;
	world_fixture(&w, "64c-nosmt", "0-1", "32-63", 4.0);
	world_tenant(&w, "acme", 1000, 0);
	struct admit_placement pl;
	/* require and isolate are whole cores of one thread: any count */
	must_admit(&w, "r", 3, DED, REQUIRE, &pl);
	assert_cpuset(&pl.res.pcpus, "32-34");
	must_admit(&w, "i", 3, DED, ISOLATE, &pl);
	assert_cpuset(&pl.res.pcpus, "35-37");
	must_admit(&w, "p", 26, DED, PREFER, &pl);
	assert_cpuset(&pl.res.pcpus, "38-63");
	must_refuse(&w, "x", "acme", 1, DED, ISOLATE, EBUSY,
		    "vm x not admitted: dedicated pool: 0 free cores with isolate, 1 requested");
	/* shared: 30 pCPUs x 4 = 120 */
	for (int i = 0; i < 4; i++) {
		char vm[8];
		snprintf(vm, sizeof(vm), "s%d", i);
		must_admit(&w, vm, 30, SH, PREFER, &pl);
		assert_cpuset(&pl.cpus, "2-31");
	}
	must_refuse(&w, "s4", "acme", 1, SH, PREFER, EBUSY,
		    "shared pool on node 0: 120 of 120 vCPUs admitted (ratio 4.0 x 30 pCPUs)");
	world_free(&w);
}

static void test_uneven_and_memory_only_nodes(void **state)
{
	(void)state;
	struct world w;
	/* node 0: 0-5, node 1: 6-7, node 2: memory only */
	world_fixture(&w, "uneven", "", "", 1.0);
	world_tenant(&w, "acme", 1000, 0);
	struct admit_placement pl;
	must_admit(&w, "a", 6, SH, PREFER, &pl);
	_cleanup_free_ char *s1 = shares(&pl.res);
	assert_string_equal(s1, "0:6");
	must_admit(&w, "b", 2, SH, PREFER, &pl);
	_cleanup_free_ char *s2 = shares(&pl.res);
	assert_string_equal(s2, "1:2");
	must_refuse(&w, "c", "acme", 1, SH, PREFER, EBUSY,
		    "shared pool on node 0: 6 of 6 vCPUs admitted (ratio 1.0 x 6 pCPUs), "
		    "1 requested; node 1: 2 of 2");
	world_release(&w, "a");
	world_release(&w, "b");
	must_admit(&w, "d", 8, SH, PREFER, &pl);
	_cleanup_free_ char *s3 = shares(&pl.res);
	assert_string_equal(s3, "0:6,1:2");
	struct admit_host h = world_host(&w);
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	assert_int_equal(u.n_nodes, 3);
	assert_int_equal(u.nodes[2].node, 2);
	assert_int_equal(u.nodes[2].shared_pcpus, 0);
	assert_int_equal(u.nodes[2].shared_capacity, 0);
	assert_int_equal(u.nodes[2].vms, 0);
	admit_usage_clear(&u);
	/* memory beyond the host's 28G is impossible */
	struct admit_request rq = req_make("m", "acme", 1, SH, PREFER);
	rq.memory_set = true;
	rq.memory_bytes = 29 * GiB;
	_cleanup_free_ char *msg = NULL;
	world_release(&w, "d");
	assert_int_equal(try_req(&w, &rq, NULL, &msg), EINVAL);
	assert_string_equal(msg, "vm m not admitted: 29G of memory requested, the host has 28G");
	world_free(&w);
}

/* --- quotas, bad requests, order of checks -------------------------------------------- */

static void test_quota(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	w.tenants[0].vcpus_quota = 32;
	w.tenants[0].memory_set = true;
	w.tenants[0].memory_quota_bytes = 32 * GiB;
	world_tenant(&w, "other", 4, 0);
	w.ratio = 8.0;

	for (int i = 0; i < 15; i++) {
		char vm[8];
		snprintf(vm, sizeof(vm), "a%d", i);
		must_admit(&w, vm, 2, SH, PREFER, NULL);
	}
	/* 30 of 32 used */
	must_refuse(&w, "x", "acme", 4, SH, PREFER, EBUSY,
		    "vm x not admitted: tenant acme: 30 of 32 vCPUs used, 4 requested");
	must_refuse(&w, "x", "acme", 4, DED, PREFER, EBUSY, "tenant acme: 30 of 32 vCPUs used");
	/* the quota is per tenant */
	struct admit_request rq = req_make("o1", "other", 4, SH, PREFER);
	_cleanup_free_ char *m0 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m0), 0);
	rq.vm = "o2";
	rq.vcpus = 1;
	_cleanup_free_ char *m1 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m1), EBUSY);
	assert_string_equal(m1, "vm o2 not admitted: tenant other: 4 of 4 vCPUs used, 1 requested");

	/* memory */
	rq = req_make("m1", "acme", 1, SH, PREFER);
	rq.memory_set = true;
	rq.memory_bytes = 30 * GiB;
	_cleanup_free_ char *m2 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m2), 0);
	rq.vm = "m2";
	rq.memory_bytes = 4 * GiB;
	_cleanup_free_ char *m3 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m3), EBUSY);
	assert_string_equal(m3, "vm m2 not admitted: tenant acme: 30G of 32G memory used, "
			    "4G requested");
	rq.memory_bytes = 2 * GiB;
	_cleanup_free_ char *m4 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m4), 0);  /* exactly 32G */
	/* a VM without memory does not count against the memory quota */
	rq.vm = "m3";
	rq.memory_set = false;
	_cleanup_free_ char *m5 = NULL;
	assert_int_equal(try_req(&w, &rq, NULL, &m5), EBUSY);  /* 33 of 32 vCPUs though */
	assert_non_null(strstr(m5, "tenant acme: 32 of 32 vCPUs used, 1 requested"));
	world_free(&w);
}

static void test_check_order(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	w.tenants[0].vcpus_quota = 4;
	must_admit(&w, "a", 4, SH, PREFER, NULL);
	/* impossible beats quota */
	must_refuse(&w, "b", "acme", 11, SH, PREFER, EINVAL, "shared pool has 10 pCPUs");
	must_refuse(&w, "b", "acme", 3, DED, REQUIRE, EINVAL, "not a multiple");
	/* quota beats capacity */
	w.tenants[0].vcpus_quota = 1000;
	for (int i = 0; i < 8; i++) {
		char vm[8];
		snprintf(vm, sizeof(vm), "f%d", i);
		must_admit(&w, vm, 2, SH, PREFER, NULL);
	}
	w.tenants[0].vcpus_quota = 20;
	must_refuse(&w, "c", "acme", 1, SH, PREFER, EBUSY, "tenant acme: 20 of 20 vCPUs used");
	w.tenants[0].vcpus_quota = 21;
	must_refuse(&w, "c", "acme", 1, SH, PREFER, EBUSY, "shared pool on node 0: 12 of 12");
	/* already admitted beats everything but the names */
	must_refuse(&w, "a", "acme", 100, SH, PREFER, EEXIST,
		    "vm a not admitted: already admitted (tenant acme, 4 vCPUs, shared)");
	world_free(&w);
}

static void test_bad_requests(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_host h = world_host(&w);
	struct admit_tenant t = tenant_now(&w, "acme");
	struct admit_placement pl, untouched;
	memset(&untouched, 0x5a, sizeof(untouched));
	struct error *err = NULL;

	struct { struct admit_request rq; int code; const char *want; } cases[] = {
		{ req_make("", "acme", 1, SH, PREFER), EINVAL, "VM name is empty" },
		{ req_make(NULL, "acme", 1, SH, PREFER), EINVAL, "VM name is empty" },
		{ req_make("../x", "acme", 1, SH, PREFER), EINVAL, "invalid VM name '../x'" },
		{ req_make("a", "ac me", 1, SH, PREFER), EINVAL, "invalid tenant name" },
		{ req_make("a", "other", 1, SH, PREFER), EINVAL,
		  "vm a not admitted: request for tenant other, quota of tenant acme" },
		{ req_make("a", "acme", 0, SH, PREFER), EINVAL, "vcpus 0 is out of range (1..4096)" },
		{ req_make("a", "acme", 4097, SH, PREFER), EINVAL, "vcpus 4097 is out of range" },
		{ req_make("a", "acme", 1, (enum admit_cpu_policy)2, PREFER), EINVAL,
		  "invalid cpu policy 2" },
		{ req_make("a", "acme", 1, (enum admit_cpu_policy)-1, PREFER), EINVAL,
		  "invalid cpu policy -1" },
		{ req_make("a", "acme", 1, DED, (enum admit_thread_policy)3), EINVAL,
		  "invalid thread policy 3" },
		{ req_make("a", "acme", 1, SH, ISOLATE), EINVAL,
		  "thread policy isolate needs cpu policy dedicated" },
		{ req_make("a", "acme", 1, SH, REQUIRE), EINVAL,
		  "thread policy require needs cpu policy dedicated" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		pl = untouched;
		assert_int_equal(admit_vm(&h, &t, &cases[i].rq, &pl, &err), -1);
		assert_non_null(err);
		if (!strstr(err->msg, cases[i].want))
			fail_msg("case %zu: '%s' lacks '%s'", i, err->msg, cases[i].want);
		assert_int_equal(err->code, cases[i].code);
		error_free(&err);
		assert_memory_equal(&pl, &untouched, sizeof(pl));
	}
	struct admit_request rq = req_make("a", "acme", 1, SH, PREFER);
	rq.memory_set = true;
	rq.memory_bytes = 0;
	assert_int_equal(admit_vm(&h, &t, &rq, &pl, &err), -1);
	assert_non_null(strstr(err->msg, "memory 0 is not positive"));
	error_free(&err);

	rq.memory_set = false;
	h.cpu_ratio = 0;
	assert_int_equal(admit_vm(&h, &t, &rq, &pl, &err), -1);
	assert_non_null(strstr(err->msg, "overcommit ratio 0 is not positive"));
	error_free(&err);
	h.cpu_ratio = NAN;
	assert_int_equal(admit_vm(&h, &t, &rq, &pl, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	h.cpu_ratio = 2.0;
	assert_int_equal(admit_vm(&h, NULL, &rq, &pl, &err), -1);
	assert_non_null(strstr(err->msg, "missing input"));
	error_free(&err);
	assert_int_equal(admit_vm(&h, &t, NULL, &pl, &err), -1);
	assert_non_null(strstr(err->msg, "no request"));
	error_free(&err);
	assert_memory_equal(&pl, &untouched, sizeof(pl));
	world_free(&w);

	/* empty pools */
	world_spec(&w, 1, 2, 2, true, "0-1", "2-3", 2.0);
	must_refuse(&w, "a", "acme", 1, SH, PREFER, EINVAL,
		    "shared pool is empty: every online CPU is in host.housekeeping_cpus or "
		    "host.dedicated_cpus");
	world_free(&w);
	world_spec(&w, 1, 2, 2, true, "0-1", "", 2.0);
	must_refuse(&w, "a", "acme", 1, DED, PREFER, EINVAL,
		    "dedicated pool is empty (host.dedicated_cpus)");
	world_free(&w);
}

/* --- persisted forms, pins, the host check ------------------------------------------------ */

/* A retry of the request that made a reservation differs in nothing; any
 * other request is told field by field. */
static void test_request_diff(void **state)
{
	(void)state;
	struct admit_reservation r = { .vm = "a", .tenant = "acme", .vcpus = 4,
				       .memory_set = true, .memory_bytes = 2LL << 30,
				       .cpu_policy = DED, .thread_policy = ISOLATE };
	struct admit_request q = req_make("a", "acme", 4, DED, ISOLATE);
	q.memory_set = true;
	q.memory_bytes = 2LL << 30;
	assert_null(admit_request_diff(&r, &q));
	q.thread_policy = REQUIRE;
	char *d = admit_request_diff(&r, &q);
	assert_string_equal(d, "thread policy require (admitted with isolate)");
	free(d);
	q = req_make("a", "beta", 5, SH, PREFER);
	q.memory_set = true;
	q.memory_bytes = 1LL << 30;
	d = admit_request_diff(&r, &q);
	assert_string_equal(d, "tenant beta (admitted for acme), vcpus 5 (admitted with 4), "
			       "memory 1G (admitted with 2G), cpu policy shared (admitted with "
			       "dedicated), thread policy prefer (admitted with isolate)");
	free(d);
	/* memory asked where none was booked, and the other way round */
	q = req_make("a", "acme", 4, DED, ISOLATE);
	d = admit_request_diff(&r, &q);
	assert_string_equal(d, "memory none (admitted with 2G)");
	free(d);
	r.memory_set = false;
	assert_null(admit_request_diff(&r, &q));
	q.memory_set = true;
	q.memory_bytes = 512LL << 20;
	d = admit_request_diff(&r, &q);
	assert_string_equal(d, "memory 512M (admitted with none)");
	free(d);
}

static void test_names_and_shares(void **state)
{
	(void)state;
	struct error *err = NULL;
	for (int i = 0; i < ADMIT_CPU_POLICY_LAST; i++) {
		enum admit_cpu_policy p;
		assert_int_equal(admit_cpu_policy_from_string(
			admit_cpu_policy_name((enum admit_cpu_policy)i), &p, &err), 0);
		assert_int_equal(p, i);
	}
	for (int i = 0; i < ADMIT_THREAD_POLICY_LAST; i++) {
		enum admit_thread_policy p;
		assert_int_equal(admit_thread_policy_from_string(
			admit_thread_policy_name((enum admit_thread_policy)i), &p, &err), 0);
		assert_int_equal(p, i);
	}
	assert_string_equal(admit_cpu_policy_name(ADMIT_CPU_DEDICATED), "dedicated");
	assert_string_equal(admit_thread_policy_name(ADMIT_THREAD_REQUIRE), "require");
	assert_null(admit_cpu_policy_name(ADMIT_CPU_POLICY_LAST));
	assert_null(admit_thread_policy_name((enum admit_thread_policy)-1));
	enum admit_cpu_policy cp = ADMIT_CPU_SHARED;
	assert_int_equal(admit_cpu_policy_from_string("Dedicated", &cp, &err), -1);
	assert_string_equal(err->msg, "invalid cpu policy 'Dedicated': use shared or dedicated");
	error_free(&err);
	assert_int_equal(admit_cpu_policy_from_string(NULL, &cp, &err), -1);
	error_free(&err);
	enum admit_thread_policy tp = ADMIT_THREAD_PREFER;
	assert_int_equal(admit_thread_policy_from_string("", &tp, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_int_equal(cp, ADMIT_CPU_SHARED);
	assert_int_equal(tp, ADMIT_THREAD_PREFER);

	struct admit_reservation r;
	memset(&r, 0, sizeof(r));
	const char *good[] = { "0:6,1:4", "3:1", "", "0:1,2:3,7:4096", "4294967295:1" };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(admit_shares_parse(good[i], &r, &err), 0);
		_cleanup_free_ char *s = admit_shares_format(&r);
		assert_string_equal(s, good[i]);
	}
	assert_int_equal(admit_shares_parse("0:6,1:4", &r, &err), 0);
	assert_int_equal(r.n_shares, 2);
	assert_int_equal(r.shares[1].node, 1);
	assert_int_equal(r.shares[1].vcpus, 4);
	const char *bad[] = { "0", "0:", ":1", "0:1,", "0:1,,1:2", "1:1,0:1", "0:1,0:2", "0:0",
			      "a:1", "0:1x", " 0:1", "0:-1", "0:4294967296", "0:1;1:2" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (admit_shares_parse(bad[i], &r, &err) != -1)
			fail_msg("'%s' parsed", bad[i]);
		assert_non_null(err);
		error_free(&err);
		assert_int_equal(r.n_shares, 2);  /* untouched */
	}
	_cleanup_free_ char *many = xstrdup("");
	for (int i = 0; i <= ADMIT_SPAN_MAX; i++) {
		char *n = xasprintf("%s%s%d:1", many, i ? "," : "", i);
		free(many);
		many = n;
	}
	assert_int_equal(admit_shares_parse(many, &r, &err), -1);
	_cleanup_free_ char *want = xasprintf("more than %d", ADMIT_SPAN_MAX);
	assert_non_null(strstr(err->msg, want));
	error_free(&err);
	assert_int_equal(admit_shares_parse(NULL, &r, &err), -1);
	error_free(&err);
}

static void test_pin_and_persisted_form(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	struct admit_placement pl;
	must_admit(&w, "s", 8, SH, PREFER, &pl);
	must_admit(&w, "d", 2, DED, ISOLATE, &pl);

	struct admit_host h = world_host(&w);
	for (size_t i = 0; i < w.n; i++) {
		/* through the strings a store would keep, and back */
		const struct admit_reservation *r = &w.res[i];
		_cleanup_free_ char *sh = admit_shares_format(r);
		_cleanup_free_ char *pc = cpulist_format(&r->pcpus);
		struct admit_reservation back;
		memset(&back, 0, sizeof(back));
		snprintf(back.vm, sizeof(back.vm), "%s", r->vm);
		snprintf(back.tenant, sizeof(back.tenant), "%s", r->tenant);
		back.vcpus = r->vcpus;
		struct error *err = NULL;
		assert_int_equal(admit_cpu_policy_from_string(admit_cpu_policy_name(r->cpu_policy),
							      &back.cpu_policy, &err), 0);
		assert_int_equal(admit_thread_policy_from_string(
			admit_thread_policy_name(r->thread_policy), &back.thread_policy, &err), 0);
		assert_int_equal(admit_shares_parse(sh, &back, &err), 0);
		assert_int_equal(cpulist_parse(pc, &back.pcpus, &err), 0);
		assert_memory_equal(&back, r, sizeof(back));

		struct cpuset c1, m1;
		admit_pin(&h, &back, &c1, &m1);
		if (r->cpu_policy == ADMIT_CPU_SHARED) {
			assert_cpuset(&c1, "2-11");
			assert_cpuset(&m1, "0-1");
			assert_int_equal(admit_vcpu_pcpu(r, 0), -1);
		} else {
			assert_cpuset(&c1, "12,14");
			assert_cpuset(&m1, "1");
		}
	}
	struct error *err = NULL;
	assert_int_equal(admit_host_check(&h, &err), 0);
	world_free(&w);
}

static void test_host_check(void **state)
{
	(void)state;
	struct world w;
	scenario(&w);
	must_admit(&w, "s", 3, SH, PREFER, NULL);
	must_admit(&w, "i", 1, DED, ISOLATE, NULL);    /* 12, blocks 13 */
	must_admit(&w, "r", 2, DED, REQUIRE, NULL);    /* 14-15 */
	struct admit_host h = world_host(&w);
	struct error *err = NULL;
	assert_int_equal(admit_host_check(&h, &err), 0);

	struct admit_reservation saved[3];
	memcpy(saved, w.res, sizeof(saved));
#define EXPECT_CHECK(want) do {                                              \
		h = world_host(&w);                                          \
		assert_int_equal(admit_host_check(&h, &err), -1);            \
		if (!strstr(err->msg, want))                                 \
			fail_msg("'%s' lacks '%s'", err->msg, want);         \
		assert_int_equal(err->code, EINVAL);                         \
		error_free(&err);                                            \
		memcpy(w.res, saved, sizeof(saved));                         \
	} while (0)

	w.res[0].shares[0].vcpus = 2;
	EXPECT_CHECK("reservation of vm s: node shares sum to 2, not 3 vCPUs");
	w.res[0].shares[0].node = 5;
	EXPECT_CHECK("node 5 does not exist");
	w.res[0].n_shares = 0;
	EXPECT_CHECK("0 node shares");
	w.res[0].shares[1] = w.res[0].shares[0];
	w.res[0].n_shares = 2;
	EXPECT_CHECK("not in ascending order");
	cpuset_set(&w.res[0].pcpus, 3);
	EXPECT_CHECK("a shared VM holds dedicated pCPUs");
	w.res[0].thread_policy = ADMIT_THREAD_ISOLATE;
	EXPECT_CHECK("shared with thread policy isolate");
	w.res[0].vcpus = 0;
	EXPECT_CHECK("vcpus 0 is out of range");
	snprintf(w.res[0].tenant, sizeof(w.res[0].tenant), "a/b");
	EXPECT_CHECK("invalid tenant name");
	snprintf(w.res[0].vm, sizeof(w.res[0].vm), "..");
	EXPECT_CHECK("reservation 0: invalid VM name");
	snprintf(w.res[2].vm, sizeof(w.res[2].vm), "s");
	EXPECT_CHECK("vm s has two reservations");
	w.res[1].pcpus = cs("13");
	w.res[2].pcpus = cs("12,15");
	w.res[2].thread_policy = ADMIT_THREAD_PREFER;
	EXPECT_CHECK("vm i (isolate) holds core 12-13, vm r has a pCPU on it");
	w.res[1].pcpus = cs("12-13");
	EXPECT_CHECK("reservation of vm i: pCPUs 12-13 are not 1");
	w.res[1].pcpus = cs("11");
	EXPECT_CHECK("pCPUs 11 are not in the dedicated pool");
	w.res[2].pcpus = cs("12,15");
	EXPECT_CHECK("require breached on core 12-13");
	w.res[1].vcpus = 2;
	w.res[1].shares[0].vcpus = 2;
	w.res[1].pcpus = cs("12-13");
	EXPECT_CHECK("isolate breached on core 12-13");
	w.res[2].pcpus = cs("12-13");
	w.res[2].thread_policy = ADMIT_THREAD_PREFER;
	EXPECT_CHECK("vms i and r both hold pCPUs 12");
	w.res[2].shares[0].node = 0;
	EXPECT_CHECK("pCPUs 14-15 do not match the node shares");
	w.res[2].memory_set = true;
	EXPECT_CHECK("memory is not positive");
	/* a prefer VM next to an isolate VM's blocked sibling */
	w.res[2].vcpus = 1;
	w.res[2].shares[0].vcpus = 1;
	w.res[2].pcpus = cs("13");
	w.res[2].thread_policy = ADMIT_THREAD_PREFER;
	EXPECT_CHECK("vm i (isolate) holds core 12-13, vm r has a pCPU on it");
#undef EXPECT_CHECK
	h = world_host(&w);
	assert_int_equal(admit_host_check(&h, &err), 0);

	/* a ratio cut leaves admitted VMs alone; usage shows the excess */
	must_admit(&w, "t", 9, SH, PREFER, NULL);
	w.ratio = 1.0;
	h = world_host(&w);
	assert_int_equal(admit_host_check(&h, &err), 0);
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	assert_int_equal(u.total.shared_capacity, 10);
	assert_int_equal(u.total.shared_admitted, 12);
	assert_true(u.nodes[0].shared_admitted > u.nodes[0].shared_capacity);
	admit_usage_clear(&u);
	struct admit_placement pl;
	must_admit(&w, "u", 1, SH, PREFER, &pl);         /* node 1: 3 of 4 */
	_cleanup_free_ char *s = shares(&pl.res);
	assert_string_equal(s, "1:1");
	must_refuse(&w, "v", "acme", 1, SH, PREFER, EBUSY,
		    "shared pool on node 0: 9 of 6 vCPUs admitted (ratio 1.0 x 6 pCPUs), "
		    "1 requested; node 1: 4 of 4");
	world_free(&w);
}

/* --- property tests ------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* One past the highest online CPU: bounds the model's loops. */
static unsigned cpu_end(const struct topology *t)
{
	return t->cpus[t->n_cpus - 1].id + 1;
}

/* An independent model of the host, recomputed from the reservation list. */
struct model {
	unsigned n_nodes;
	unsigned shared_p[64];
	uint32_t cap[64];
	uint32_t admitted[64];
	struct cpuset used;      /* dedicated pCPUs */
	struct cpuset blocked;   /* siblings of isolate VMs' cores, not used */
};

static unsigned model_node(const struct topology *t, unsigned id)
{
	for (unsigned i = 0; i < t->n_nodes; i++)
		if (t->nodes[i].id == id)
			return i;
	fail_msg("no node %u", id);
	return 0;
}

static void model_build(const struct world *w, struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->n_nodes = (unsigned)w->t->n_nodes;
	assert_true(m->n_nodes <= 64);
	for (unsigned i = 0; i < m->n_nodes; i++) {
		for (unsigned c = 0; c < cpu_end(w->t); c++)
			if (cpuset_isset(&w->t->nodes[i].cpus, c) && cpuset_isset(&w->pools.shared, c))
				m->shared_p[i]++;
		m->cap[i] = (uint32_t)(w->ratio * m->shared_p[i] + 1e-9);
	}
	for (size_t r = 0; r < w->n; r++) {
		const struct admit_reservation *res = &w->res[r];
		if (res->cpu_policy == ADMIT_CPU_SHARED) {
			for (size_t s = 0; s < res->n_shares; s++)
				m->admitted[model_node(w->t, res->shares[s].node)] += res->shares[s].vcpus;
			continue;
		}
		cpuset_or(&m->used, &m->used, &res->pcpus);
	}
	for (size_t r = 0; r < w->n; r++) {
		const struct admit_reservation *res = &w->res[r];
		if (res->cpu_policy != ADMIT_CPU_DEDICATED || res->thread_policy != ADMIT_THREAD_ISOLATE)
			continue;
		for (unsigned c = 0; c < cpu_end(w->t); c++) {
			if (!cpuset_isset(&res->pcpus, c))
				continue;
			const struct topology_core *core = topology_cpu_core(w->t, c);
			for (unsigned s = 0; s < cpu_end(w->t); s++)
				if (cpuset_isset(&core->threads, s) && !cpuset_isset(&m->used, s))
					cpuset_set(&m->blocked, s);
		}
	}
}

static bool core_wholly(const struct topology_core *core, const struct cpuset *s)
{
	struct cpuset x;
	cpuset_andnot(&x, &core->threads, s);
	return cpuset_empty(&x);
}

/* Free units of a thread policy on node i (or, all_free, of the whole pool
 * as if nothing were admitted). */
static unsigned model_units(const struct world *w, const struct model *m, unsigned ni,
			    enum admit_thread_policy tp, bool all_free)
{
	const struct topology *t = w->t;
	unsigned n = 0;
	if (tp == ADMIT_THREAD_PREFER) {
		for (unsigned c = 0; c < cpu_end(w->t); c++)
			if (cpuset_isset(&t->nodes[ni].cpus, c) && cpuset_isset(&w->pools.dedicated, c) &&
			    (all_free || (!cpuset_isset(&m->used, c) && !cpuset_isset(&m->blocked, c))))
				n++;
		return n;
	}
	for (size_t k = 0; k < t->n_cores; k++) {
		const struct topology_core *core = &t->cores[k];
		if (core->node != t->nodes[ni].id || !core_wholly(core, &w->pools.dedicated))
			continue;
		if (tp == ADMIT_THREAD_REQUIRE && core->n_threads != t->threads_per_core)
			continue;
		if (!all_free && (cpuset_intersects(&core->threads, &m->used) ||
				  cpuset_intersects(&core->threads, &m->blocked)))
			continue;
		n++;
	}
	return n;
}

/* Every invariant, from the reservation list alone. */
static void check_invariants(const struct world *w, uint64_t step)
{
	struct model m;
	model_build(w, &m);
	for (unsigned i = 0; i < m.n_nodes; i++)
		if (m.admitted[i] > m.cap[i])
			fail_msg("step %lu: node %u: %u shared vCPUs > capacity %u", (unsigned long)step,
				 w->t->nodes[i].id, m.admitted[i], m.cap[i]);
	struct cpuset seen;
	cpuset_zero(&seen);
	for (size_t r = 0; r < w->n; r++) {
		const struct admit_reservation *res = &w->res[r];
		uint32_t sum = 0;
		for (size_t s = 0; s < res->n_shares; s++) {
			sum += res->shares[s].vcpus;
			if (s > 0)
				assert_true(res->shares[s].node > res->shares[s - 1].node);
			if (res->cpu_policy == ADMIT_CPU_SHARED &&
			    res->shares[s].vcpus > m.shared_p[model_node(w->t, res->shares[s].node)])
				fail_msg("step %lu: vm %s has more vCPUs on node %u than pCPUs",
					 (unsigned long)step, res->vm, res->shares[s].node);
		}
		assert_int_equal(sum, res->vcpus);
		if (res->cpu_policy == ADMIT_CPU_SHARED) {
			assert_true(cpuset_empty(&res->pcpus));
			continue;
		}
		assert_int_equal(cpuset_count(&res->pcpus), res->vcpus);
		struct cpuset out;
		cpuset_andnot(&out, &res->pcpus, &w->pools.dedicated);
		if (!cpuset_empty(&out))
			fail_msg("step %lu: vm %s has pCPUs outside the pool", (unsigned long)step,
				 res->vm);
		if (cpuset_intersects(&seen, &res->pcpus))
			fail_msg("step %lu: vm %s shares a pCPU with another VM", (unsigned long)step,
				 res->vm);
		cpuset_or(&seen, &seen, &res->pcpus);
	}
	/* thread policies: isolate = one vCPU per core, its core wholly in the
	 * pool and nobody else's pCPU on it; require = whole cores */
	for (size_t r = 0; r < w->n; r++) {
		const struct admit_reservation *res = &w->res[r];
		if (res->cpu_policy != ADMIT_CPU_DEDICATED)
			continue;
		for (unsigned c = 0; c < cpu_end(w->t); c++) {
			if (!cpuset_isset(&res->pcpus, c))
				continue;
			const struct topology_core *core = topology_cpu_core(w->t, c);
			if (res->thread_policy == ADMIT_THREAD_REQUIRE && !core_wholly(core, &res->pcpus))
				fail_msg("step %lu: vm %s (require) has part of core of CPU %u",
					 (unsigned long)step, res->vm, c);
			if (res->thread_policy != ADMIT_THREAD_ISOLATE)
				continue;
			if (!core_wholly(core, &w->pools.dedicated))
				fail_msg("step %lu: vm %s (isolate) on a core partly outside the pool",
					 (unsigned long)step, res->vm);
			for (unsigned s = 0; s < cpu_end(w->t); s++) {
				if (s == c || !cpuset_isset(&core->threads, s))
					continue;
				if (cpuset_isset(&seen, s))
					fail_msg("step %lu: vm %s (isolate) CPU %u has sibling %u in use",
						 (unsigned long)step, res->vm, c, s);
			}
		}
	}
	/* quotas */
	for (size_t i = 0; i < w->n_tenants; i++) {
		struct admit_tenant t = tenant_now(w, w->tenants[i].name);
		assert_true(t.vcpus_used <= t.vcpus_quota);
		if (t.memory_set)
			assert_true(t.memory_used_bytes <= t.memory_quota_bytes);
	}
	struct admit_host h = world_host(w);
	struct error *err = NULL;
	if (admit_host_check(&h, &err) < 0)
		fail_msg("step %lu: host check: %s", (unsigned long)step, err->msg);
	/* usage agrees with the model */
	struct admit_usage u;
	admit_usage_compute(&h, &u);
	for (unsigned i = 0; i < m.n_nodes; i++) {
		assert_int_equal(u.nodes[i].shared_admitted, m.admitted[i]);
		assert_int_equal(u.nodes[i].shared_capacity, m.cap[i]);
	}
	assert_true(cpuset_equal(&u.dedicated_used, &m.used));
	assert_true(cpuset_equal(&u.dedicated_blocked, &m.blocked));
	admit_usage_clear(&u);
}

struct stats {
	unsigned admitted_shared, admitted_ded[3], spans, refused_quota, refused_capacity,
		refused_impossible, releases;
};

/* One admit attempt, with the model's verdict checked against admit_vm(). */
static void property_admit(struct world *w, uint64_t step, struct stats *st)
{
	const struct topology *t = w->t;
	char vm[32];
	snprintf(vm, sizeof(vm), "vm%lu", (unsigned long)step);
	const char *tenant = w->tenants[rnd_below((unsigned)w->n_tenants)].name;
	unsigned maxv = rnd_below(20) == 0 ? t->n_cpus + 2 : 6;
	struct admit_request rq = req_make(vm, tenant, 1 + rnd_below(maxv),
					   rnd_below(2) ? SH : DED, PREFER);
	if (rq.cpu_policy == DED)
		rq.thread_policy = (enum admit_thread_policy)rnd_below(3);
	if (rnd_below(2)) {
		rq.memory_set = true;
		rq.memory_bytes = (int64_t)(1 + rnd_below(8)) * GiB;
	}

	/* the model's verdict */
	struct model m;
	model_build(w, &m);
	struct admit_tenant ten = tenant_now(w, tenant);
	unsigned v = rq.vcpus, wdt = t->threads_per_core;
	bool impossible = v > t->n_cpus ||
		(rq.memory_set && (uint64_t)rq.memory_bytes > t->mem_total_bytes);
	bool fits = false, single = false;
	unsigned need = v;
	if (rq.cpu_policy == SH) {
		unsigned pool = 0, ever = 0, have = 0;
		for (unsigned i = 0; i < m.n_nodes; i++) {
			unsigned room = m.cap[i] > m.admitted[i] ? m.cap[i] - m.admitted[i] : 0;
			pool += m.shared_p[i];
			ever += m.cap[i] < m.shared_p[i] ? m.cap[i] : m.shared_p[i];
			unsigned hv = room < m.shared_p[i] ? room : m.shared_p[i];
			have += hv;
			if (hv >= v)
				single = true;
		}
		impossible = impossible || v > pool || v > ever;
		fits = have >= v;
	} else {
		if (rq.thread_policy == REQUIRE) {
			impossible = impossible || v % wdt != 0;
			need = v / wdt;
		}
		unsigned all = 0, fr = 0;
		for (unsigned i = 0; i < m.n_nodes; i++) {
			all += model_units(w, &m, i, rq.thread_policy, true);
			unsigned f = model_units(w, &m, i, rq.thread_policy, false);
			fr += f;
			if (f >= need)
				single = true;
		}
		impossible = impossible || need > all;
		fits = fr >= need;
	}
	bool over_quota = ten.vcpus_used + v > ten.vcpus_quota ||
		(ten.memory_set && rq.memory_set &&
		 ten.memory_used_bytes + rq.memory_bytes > ten.memory_quota_bytes);

	struct admit_placement pl;
	_cleanup_free_ char *msg = NULL;
	int rc = try_req(w, &rq, &pl, &msg);
	if (impossible) {
		if (rc != EINVAL)
			fail_msg("step %lu: %s %u vCPUs (%s/%s): want EINVAL, got %d (%s)",
				 (unsigned long)step, vm, v, admit_cpu_policy_name(rq.cpu_policy),
				 admit_thread_policy_name(rq.thread_policy), rc, msg ? msg : "");
		st->refused_impossible++;
		return;
	}
	if (over_quota) {
		if (rc != EBUSY || !strstr(msg, "tenant "))
			fail_msg("step %lu: %s: want a quota refusal, got %d (%s)",
				 (unsigned long)step, vm, rc, msg ? msg : "admitted");
		st->refused_quota++;
		return;
	}
	if (!fits) {
		if (rc != EBUSY || !(strstr(msg, "shared pool on node ") ||
				     strstr(msg, "dedicated pool: ")))
			fail_msg("step %lu: %s %u vCPUs (%s/%s): want a capacity refusal, got %d (%s)",
				 (unsigned long)step, vm, v, admit_cpu_policy_name(rq.cpu_policy),
				 admit_thread_policy_name(rq.thread_policy), rc, msg ? msg : "admitted");
		st->refused_capacity++;
		return;
	}
	if (rc != 0)
		fail_msg("step %lu: %s %u vCPUs (%s/%s) fits but was refused: %s",
			 (unsigned long)step, vm, v, admit_cpu_policy_name(rq.cpu_policy),
			 admit_thread_policy_name(rq.thread_policy), msg);
	/* the placement is the request's, on one node when one could hold it,
	 * the one with the most room */
	assert_string_equal(pl.res.vm, vm);
	assert_string_equal(pl.res.tenant, tenant);
	assert_int_equal(pl.res.vcpus, v);
	assert_int_equal(pl.res.cpu_policy, rq.cpu_policy);
	assert_int_equal(pl.res.thread_policy, rq.thread_policy);
	assert_int_equal(pl.res.memory_set, rq.memory_set);
	if (single != (pl.res.n_shares == 1) || pl.spans != (pl.res.n_shares > 1))
		fail_msg("step %lu: %s: single node possible %d, placed on %zu nodes",
			 (unsigned long)step, vm, single, pl.res.n_shares);
	if (rq.cpu_policy == SH && single) {
		unsigned chosen = model_node(t, pl.res.shares[0].node);
		unsigned room_c = m.cap[chosen] - m.admitted[chosen];
		for (unsigned i = 0; i < m.n_nodes; i++) {
			unsigned room = m.cap[i] > m.admitted[i] ? m.cap[i] - m.admitted[i] : 0;
			if (room > room_c && m.shared_p[i] >= v)
				fail_msg("step %lu: %s on node %u (room %u), node %u has room %u",
					 (unsigned long)step, vm, pl.res.shares[0].node, room_c,
					 t->nodes[i].id, room);
		}
	}
	struct cpuset want_cpus, want_mems;
	cpuset_zero(&want_cpus);
	cpuset_zero(&want_mems);
	for (size_t s = 0; s < pl.res.n_shares; s++) {
		cpuset_set(&want_mems, pl.res.shares[s].node);
		struct cpuset nc;
		cpuset_and(&nc, &topology_node(t, pl.res.shares[s].node)->cpus, &w->pools.shared);
		cpuset_or(&want_cpus, &want_cpus, &nc);
	}
	if (rq.cpu_policy == DED)
		want_cpus = pl.res.pcpus;
	assert_true(cpuset_equal(&pl.cpus, &want_cpus));
	assert_true(cpuset_equal(&pl.mems, &want_mems));
	if (rq.cpu_policy == SH)
		st->admitted_shared++;
	else
		st->admitted_ded[rq.thread_policy]++;
	if (pl.spans)
		st->spans++;
}

static void property_run(struct world *w, const char *name, unsigned steps)
{
	const char *seed_env = getenv("SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 20240605;
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	/* quotas that bite before the host is full: a share of its CPUs */
	world_tenant(w, "acme", w->t->n_cpus * 3 / 4, 12 * GiB);
	world_tenant(w, "beta", w->t->n_cpus / 2 + 1, 0);
	world_tenant(w, "gamma", 100000, 0);
	struct stats st = { 0 };
	/* a ledger kept step by step, as the registry keeps it, must equal
	 * one summed afresh from the reservation list after every step */
	struct admit_ledger kept;
	admit_ledger_init(&kept, w->t);
	for (size_t i = 0; i < w->n; i++)
		admit_ledger_add(&kept, &w->res[i]);
	for (uint64_t step = 0; step < steps; step++) {
		/* admit more often than release, so the host fills and stays full */
		if (w->n > 0 && rnd_below(5) < 2) {
			size_t i = rnd_below((unsigned)w->n);
			admit_ledger_remove(&kept, &w->res[i]);
			w->res[i] = w->res[--w->n];
			st.releases++;
		} else {
			size_t before = w->n;
			property_admit(w, step, &st);
			if (w->n > before)
				admit_ledger_add(&kept, &w->res[w->n - 1]);
		}
		check_invariants(w, step);
		struct admit_ledger fresh;
		admit_ledger_init(&fresh, w->t);
		for (size_t i = 0; i < w->n; i++)
			admit_ledger_add(&fresh, &w->res[i]);
		if (!admit_ledger_equal(&kept, &fresh))
			fail_msg("%s step %lu: the kept ledger differs from the reservations'",
				 name, (unsigned long)step);
		admit_ledger_clear(&fresh);
	}
	admit_ledger_clear(&kept);
	print_message("%s (seed %lu): %u shared, %u/%u/%u dedicated prefer/isolate/require "
		      "admitted, %u spanning; refused %u quota, %u capacity, %u impossible; "
		      "%u releases\n", name, (unsigned long)seed, st.admitted_shared,
		      st.admitted_ded[0], st.admitted_ded[1], st.admitted_ded[2], st.spans,
		      st.refused_quota, st.refused_capacity, st.refused_impossible, st.releases);
	/* the run must have exercised each outcome, or it proves little */
	assert_true(st.admitted_shared > 20);
	assert_true(st.admitted_ded[0] + st.admitted_ded[1] + st.admitted_ded[2] > 20);
	assert_true(st.refused_quota > 0);
	assert_true(st.refused_capacity > 0);
	assert_true(st.refused_impossible > 0);
}

static void test_property_scenario(void **state)
{
	(void)state;
	struct world w;
	world_spec(&w, 2, 4, 2, true, "0-1", "12-15", 2.0);
	property_run(&w, "16 CPUs adjacent", 4000);
	world_free(&w);
}

static void test_property_x86_numbering(void **state)
{
	(void)state;
	struct world w;
	/* 2 nodes x 6 cores x 2 threads, thread t of core c is CPU 12t + c:
	 * node 1's cores 6-11 are CPUs 6-11,18-23; dedicated: cores 8-11 whole
	 * plus CPU 7 (whose sibling 19 is shared) */
	world_spec(&w, 2, 6, 2, false, "0,12", "7-11,20-23", 1.5);
	property_run(&w, "24 CPUs x86 order", 4000);
	world_free(&w);
}

static void test_property_fixtures(void **state)
{
	(void)state;
	struct world w;
	world_fixture(&w, "uneven", "0", "2-3,6-7", 3.0);
	property_run(&w, "uneven", 3000);
	world_free(&w);
	world_fixture(&w, "2s2n-8c-smt2", "0,16", "4-7,20-23,12-15,28-31", 1.0);
	property_run(&w, "2s2n", 3000);
	world_free(&w);
	world_fixture(&w, "64c-nosmt", "0-1", "40-63", 0.25);
	property_run(&w, "64c-nosmt", 2000);
	world_free(&w);
	world_fixture(&w, "offline", "", "2,4-5", 2.0);
	property_run(&w, "offline", 2000);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenario_shared_to_capacity),
		cmocka_unit_test(test_scenario_spanning),
		cmocka_unit_test(test_refusal_figures),
		cmocka_unit_test(test_ratio_rounding_and_fractions),
		cmocka_unit_test(test_dedicated_prefer),
		cmocka_unit_test(test_dedicated_isolate),
		cmocka_unit_test(test_dedicated_require),
		cmocka_unit_test(test_dedicated_spanning_nodes),
		cmocka_unit_test(test_non_smt_host),
		cmocka_unit_test(test_uneven_and_memory_only_nodes),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_check_order),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_request_diff),
		cmocka_unit_test(test_names_and_shares),
		cmocka_unit_test(test_pin_and_persisted_form),
		cmocka_unit_test(test_host_check),
		cmocka_unit_test(test_property_scenario),
		cmocka_unit_test(test_property_x86_numbering),
		cmocka_unit_test(test_property_fixtures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
