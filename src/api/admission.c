/* admission.c - the JSON of admission (see admission.h): reservations and
 * the host's capacity, over the registry's ledger. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vcpud/admission.h"
#include "vcpud/log.h"
#include "vcpud/prom.h"
#include "vcpud/util.h"

json_t *admission_reservation_json(const struct registry *reg, const struct admit_reservation *r,
				   bool dry_run, bool registered)
{
	struct admit_host host = registry_host(reg, NULL, 0);
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

/* The NUMA nodes' families of GET /metrics, a row per node. */
#define NODE(r) ((const struct admit_node_usage *)(r))

static bool n_shared(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = NODE(row)->shared_pcpus;
	return true;
}

static bool n_shared_admitted(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = NODE(row)->shared_admitted;
	return true;
}

static bool n_overcommit(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = NODE(row)->shared_pcpus ? (double)NODE(row)->shared_admitted / NODE(row)->shared_pcpus
				     : 0;
	return NODE(row)->shared_pcpus > 0; /* no shared pool: no ratio */
}

static bool n_dedicated(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = NODE(row)->dedicated_pcpus;
	return true;
}

static bool n_dedicated_used(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = NODE(row)->dedicated_used;
	return true;
}

static const struct prom_col node_cols[] = {
	{ "vcpud_node_shared_pcpus", "gauge", "pCPUs of the shared pool on the NUMA node",
	  n_shared },
	{ "vcpud_node_shared_vcpus_admitted", "gauge", "vCPUs of shared VMs admitted on the node",
	  n_shared_admitted },
	{ "vcpud_node_shared_overcommit_ratio", "gauge",
	  "admitted shared vCPUs per shared pCPU on the node (the policy's cpu_ratio is the "
	  "most admission allows)", n_overcommit },
	{ "vcpud_node_dedicated_pcpus", "gauge", "pCPUs of the dedicated pool on the node",
	  n_dedicated },
	{ "vcpud_node_dedicated_pcpus_used", "gauge", "dedicated pCPUs given to VMs on the node",
	  n_dedicated_used },
};

static void node_labels(const void *ctx, const void *row, char *buf, const char **l)
{
	(void)ctx;
	snprintf(buf, PROM_LABEL_BUF, "%u", NODE(row)->node);
	l[0] = "node";
	l[1] = buf;
}

/* The host with the ledger's reservations (*res, the caller frees it) and
 * what they use of each node. */
static int usage_load(struct registry *reg, struct admit_host *host,
		      struct admit_reservation **res, struct admit_usage *u, struct error **err)
{
	size_t nres = 0;
	*res = NULL;
	if (registry_ledger_load(reg, res, &nres, err) < 0)
		return -1;
	host->reservations = *res;
	host->n_reservations = nres;
	admit_usage_compute(host, u);
	return 0;
}

char *admission_nodes_use(struct registry *reg, const unsigned *nodes, size_t n)
{
	struct admit_host host = registry_host(reg, NULL, 0);
	if (!host.topo || !host.pools || !n)
		return NULL;
	struct admit_reservation *res = NULL;
	struct admit_usage u;
	_cleanup_error_ struct error *e = NULL;
	if (usage_load(reg, &host, &res, &u, &e) < 0)
		return NULL;
	char *text = NULL;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < u.n_nodes; i++) {
			const struct admit_node_usage *x = &u.nodes[i];
			if (x->node != nodes[k])
				continue;
			char *m = xasprintf("%s%snode %u: %u of %u shared vCPUs admitted (%g x %u "
					    "shared pCPUs), %u of %u dedicated pCPUs in use",
					    text ? text : "", text ? "; " : "", x->node,
					    x->shared_admitted, x->shared_capacity, host.cpu_ratio,
					    x->shared_pcpus, x->dedicated_used, x->dedicated_pcpus);
			free(text);
			text = m;
		}
	admit_usage_clear(&u);
	free(res);
	return text;
}

int admission_host_json(struct registry *reg, struct store *st, json_t **out,
			struct error **err)
{
	struct admit_host host = registry_host(reg, NULL, 0);
	if (!host.topo || !host.pools)
		return error_set(err, EAGAIN, "no host topology");
	struct vm *vms = NULL;
	size_t nv = 0;
	if (store_vm_list(st, &vms, &nv, err) < 0)
		return -1;
	_cleanup_free_ struct admit_reservation *res = NULL;
	struct admit_usage u;
	if (usage_load(reg, &host, &res, &u, err) < 0) {
		vm_list_free(vms, nv);
		return -1;
	}
	size_t nres = host.n_reservations;

	const struct topology *t = host.topo;
	_cleanup_free_ char *desc = topology_describe(t);
	_cleanup_free_ char *online = cpulist_format(&t->online);
	json_t *nodes = json_array();
	for (size_t i = 0; i < t->n_nodes; i++) {
		_cleanup_free_ char *c = cpulist_format(&t->nodes[i].cpus);
		json_array_append_new(nodes, json_pack("{s:i,s:s,s:I}", "id", (int)t->nodes[i].id,
						       "cpus", c, "memory_bytes",
						       (json_int_t)t->nodes[i].mem_total_bytes));
	}
	_cleanup_free_ char *hk = cpulist_format(&host.pools->housekeeping);
	_cleanup_free_ char *sh = cpulist_format(&host.pools->shared);
	_cleanup_free_ char *de = cpulist_format(&host.pools->dedicated);
	json_t *usage = json_array();
	for (size_t i = 0; i < u.n_nodes; i++)
		json_array_append_new(usage, usage_json(&u.nodes[i], false));
	json_t *rj = json_array();
	struct name_index vix;
	name_index_init(&vix, sizeof(struct vm), offsetof(struct vm, name));
	name_index_build(&vix, vms, nv);
	for (size_t i = 0; i < nres; i++) {
		bool registered = name_index_find(&vix, vms, res[i].vm) != SIZE_MAX;
		json_array_append_new(rj, admission_reservation_json(reg, &res[i], false, registered));
	}
	name_index_clear(&vix);
	*out = json_pack("{s:{s:s,s:s,s:i,s:o},s:{s:s,s:s,s:s},s:f,s:o,s:o,s:o}",
			 "topology", "description", desc, "online", online, "threads_per_core",
			 (int)t->threads_per_core, "nodes", nodes,
			 "pools", "housekeeping", hk, "shared", sh, "dedicated", de,
			 "overcommit_ratio", host.cpu_ratio, "usage", usage, "totals",
			 usage_json(&u.total, true), "reservations", rj);
	admit_usage_clear(&u);
	vm_list_free(vms, nv);
	return 0;
}

int admission_node_metrics(struct registry *reg, FILE *f, struct error **err)
{
	struct admit_host host = registry_host(reg, NULL, 0);
	if (!host.topo || !host.pools)
		return 0; /* no topology: no nodes to tell of */
	_cleanup_free_ struct admit_reservation *res = NULL;
	struct admit_usage u;
	if (usage_load(reg, &host, &res, &u, err) < 0)
		return -1;
	prom_rows(f, node_cols, ARRAY_SIZE(node_cols), u.nodes, u.n_nodes, sizeof(*u.nodes),
		  node_labels, NULL);
	admit_usage_clear(&u);
	return 0;
}
