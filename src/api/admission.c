/* admission.c - the admission ledger (see admission.h): SQLite rows <->
 * admit reservations, decisions persisted in the same call, and the JSON
 * of reservations and of the host's capacity. */
#include <errno.h>
#include <string.h>

#include "vcpud/admission.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

static int from_store(const struct store_reservation *s, struct admit_reservation *r,
		      struct error **err)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->vm, s->vm);
	strcpy(r->tenant, s->tenant);
	r->vcpus = s->vcpus;
	r->memory_set = s->memory_set;
	r->memory_bytes = s->memory_bytes;
	if (admit_cpu_policy_from_string(s->cpu_policy, &r->cpu_policy, err) < 0 ||
	    admit_thread_policy_from_string(s->thread_policy, &r->thread_policy, err) < 0 ||
	    admit_shares_parse(s->shares, r, err) < 0 ||
	    cpulist_parse(s->pcpus, &r->pcpus, err) < 0)
		return error_wrap(err, "reservation of VM %s", s->vm);
	return 0;
}

static void to_store(const struct admit_reservation *r, struct store_reservation *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->vm, r->vm);
	strcpy(s->tenant, r->tenant);
	s->vcpus = r->vcpus;
	s->memory_set = r->memory_set;
	s->memory_bytes = r->memory_bytes;
	snprintf(s->cpu_policy, sizeof(s->cpu_policy), "%s", admit_cpu_policy_name(r->cpu_policy));
	snprintf(s->thread_policy, sizeof(s->thread_policy), "%s",
		 admit_thread_policy_name(r->thread_policy));
	_cleanup_free_ char *shares = admit_shares_format(r);
	_cleanup_free_ char *pcpus = cpulist_format(&r->pcpus);
	snprintf(s->shares, sizeof(s->shares), "%s", shares);
	snprintf(s->pcpus, sizeof(s->pcpus), "%s", pcpus);
}

int admission_load(struct store *st, struct admit_reservation **out, size_t *n,
		   struct error **err)
{
	_cleanup_free_ struct store_reservation *rows = NULL;
	size_t nr = 0;
	*out = NULL;
	*n = 0;
	if (store_reservation_list(st, &rows, &nr, err) < 0)
		return -1;
	struct admit_reservation *v = xcalloc(nr ? nr : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < nr; i++) {
		_cleanup_error_ struct error *e = NULL;
		if (from_store(&rows[i], &v[k], &e) < 0) {
			log_warn("admission: %s: skipped", e->msg);
			continue;
		}
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

int admission_admit(const struct admission_env *env, const struct admit_request *req,
		    bool dry_run, const char *actor, struct admit_placement *out,
		    struct error **err)
{
	if (!env->topo || !env->pools)
		return error_set(err, EAGAIN, "admission is unavailable: no host topology");
	struct tenant t;
	if (store_tenant_get(env->store, req->tenant, &t, err) < 0)
		return -1;
	_cleanup_free_ struct admit_reservation *res = NULL;
	size_t nres = 0;
	if (admission_load(env->store, &res, &nres, err) < 0)
		return -1;
	struct admit_tenant at = { .vcpus_quota = t.vcpus, .memory_set = t.memory_set,
				   .memory_quota_bytes = t.memory_bytes };
	strcpy(at.name, t.name);
	for (size_t i = 0; i < nres; i++) {
		if (strcmp(res[i].tenant, t.name) != 0)
			continue;
		at.vcpus_used += res[i].vcpus;
		if (res[i].memory_set)
			at.memory_used_bytes += res[i].memory_bytes;
	}
	struct admit_host host = { env->topo, env->pools, env->cpu_ratio, res, nres };
	if (admit_vm(&host, &at, req, out, err) < 0)
		return -1;
	if (dry_run)
		return 0;
	struct store_reservation row;
	to_store(&out->res, &row);
	return store_reservation_add(env->store, &row, actor, err);
}

json_t *admission_reservation_json(const struct admission_env *env,
				   const struct admit_reservation *r, bool dry_run,
				   bool registered)
{
	struct admit_host host = { env->topo, env->pools, env->cpu_ratio, NULL, 0 };
	struct cpuset cpus, mems;
	admit_pin(&host, r, &cpus, &mems);
	_cleanup_free_ char *c = cpulist_format(&cpus);
	_cleanup_free_ char *m = cpulist_format(&mems);
	_cleanup_free_ char *p = cpulist_format(&r->pcpus);
	json_t *shares = json_array(), *nodes = json_array();
	for (size_t i = 0; i < r->n_shares; i++) {
		json_array_append_new(shares, json_pack("{s:i,s:i}", "node", (int)r->shares[i].node,
							"vcpus", (int)r->shares[i].vcpus));
		json_array_append_new(nodes, json_integer(r->shares[i].node));
	}
	bool dedicated = r->cpu_policy == ADMIT_CPU_DEDICATED;
	return json_pack("{s:s,s:s,s:i,s:o,s:s,s:s,s:s,s:o,s:o,s:b,s:s,s:s,s:s,s:b,s:b}",
			 "name", r->vm, "tenant", r->tenant, "vcpus", (int)r->vcpus,
			 "memory_bytes", r->memory_set ? json_integer(r->memory_bytes) : json_null(),
			 "cpu_policy", admit_cpu_policy_name(r->cpu_policy),
			 "thread_policy", admit_thread_policy_name(r->thread_policy),
			 "pool", dedicated ? "dedicated" : "shared", "shares", shares, "nodes", nodes,
			 "spans_nodes", r->n_shares > 1, "pcpus", p, "cpus", c, "mems", m,
			 "dry_run", dry_run, "registered", registered);
}

static json_t *usage_json(const struct admit_node_usage *u, bool total)
{
	return json_pack("{s:o,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
			 "node", total ? json_null() : json_integer(u->node),
			 "shared_pcpus", (int)u->shared_pcpus, "shared_capacity",
			 (int)u->shared_capacity, "shared_admitted", (int)u->shared_admitted,
			 "dedicated_pcpus", (int)u->dedicated_pcpus, "dedicated_used",
			 (int)u->dedicated_used, "dedicated_blocked", (int)u->dedicated_blocked,
			 "dedicated_free", (int)u->dedicated_free, "dedicated_free_cores",
			 (int)u->dedicated_free_cores, "vms", (int)u->vms);
}

int admission_host_json(const struct admission_env *env, json_t **out, struct error **err)
{
	if (!env->topo || !env->pools)
		return error_set(err, EAGAIN, "no host topology");
	_cleanup_free_ struct admit_reservation *res = NULL;
	size_t nres = 0;
	if (admission_load(env->store, &res, &nres, err) < 0)
		return -1;
	struct vm *vms = NULL;
	size_t nv = 0;
	if (store_vm_list(env->store, &vms, &nv, err) < 0)
		return -1;
	struct admit_host host = { env->topo, env->pools, env->cpu_ratio, res, nres };
	struct admit_usage u;
	admit_usage_compute(&host, &u);

	const struct topology *t = env->topo;
	_cleanup_free_ char *desc = topology_describe(t);
	_cleanup_free_ char *online = cpulist_format(&t->online);
	json_t *nodes = json_array();
	for (size_t i = 0; i < t->n_nodes; i++) {
		_cleanup_free_ char *c = cpulist_format(&t->nodes[i].cpus);
		json_array_append_new(nodes, json_pack("{s:i,s:s,s:I}", "id", (int)t->nodes[i].id,
						       "cpus", c, "memory_bytes",
						       (json_int_t)t->nodes[i].mem_total_bytes));
	}
	_cleanup_free_ char *hk = cpulist_format(&env->pools->housekeeping);
	_cleanup_free_ char *sh = cpulist_format(&env->pools->shared);
	_cleanup_free_ char *de = cpulist_format(&env->pools->dedicated);
	json_t *usage = json_array();
	for (size_t i = 0; i < u.n_nodes; i++)
		json_array_append_new(usage, usage_json(&u.nodes[i], false));
	json_t *rj = json_array();
	for (size_t i = 0; i < nres; i++) {
		bool registered = false;
		for (size_t j = 0; j < nv; j++)
			if (strcmp(vms[j].name, res[i].vm) == 0)
				registered = true;
		json_array_append_new(rj, admission_reservation_json(env, &res[i], false, registered));
	}
	*out = json_pack("{s:{s:s,s:s,s:i,s:o},s:{s:s,s:s,s:s},s:f,s:o,s:o,s:o}",
			 "topology", "description", desc, "online", online, "threads_per_core",
			 (int)t->threads_per_core, "nodes", nodes,
			 "pools", "housekeeping", hk, "shared", sh, "dedicated", de,
			 "overcommit_ratio", env->cpu_ratio, "usage", usage, "totals",
			 usage_json(&u.total, true), "reservations", rj);
	admit_usage_clear(&u);
	vm_list_free(vms, nv);
	return 0;
}
