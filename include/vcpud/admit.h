/* admit.h - VM admission: may this VM run here, and where? (pure, no I/O)
 *
 * Input: the host (topology, pools, overcommit ratio, the reservations of
 * the VMs already admitted), the tenant's quota and use, and a request. A
 * VM is admitted only if its tenant's vCPU and memory quota allow it and
 *   shared:    on every NUMA node, the shared vCPUs counted there stay
 *              <= floor(cpu_ratio x shared pCPUs of the node); a VM sits on
 *              one node when one can hold it (the node with the most room),
 *              else it spans nodes; it never has more vCPUs on a node than
 *              that node has shared pCPUs (as Nova's NUMA fitting);
 *   dedicated: each vCPU gets its own pCPU of the dedicated pool, never
 *              shared, chosen by the thread policy (Nova's
 *              hw:cpu_thread_policy) on one node when one has room.
 * The verdict is a placement (a reservation to persist plus the cpuset to
 * pin to) or an error whose code is EBUSY (quota or capacity: may succeed
 * later), EINVAL (impossible here, or a bad request) or EEXIST (already
 * admitted), with a message naming the limit and the figures. */
#ifndef VCPUD_ADMIT_H
#define VCPUD_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/cpulist.h"
#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/topology.h"

enum admit_cpu_policy {
	ADMIT_CPU_SHARED,          /* "shared": overcommitted shared pool */
	ADMIT_CPU_DEDICATED,       /* "dedicated": one pCPU per vCPU */
	ADMIT_CPU_POLICY_LAST
};

/* For dedicated VMs (a shared VM takes PREFER, the default). */
enum admit_thread_policy {
	ADMIT_THREAD_PREFER,       /* "prefer": siblings together, packed; a
				    * core's other threads may go to others */
	ADMIT_THREAD_ISOLATE,      /* "isolate": one vCPU per core; the core's
				    * other threads stay idle (blocked) */
	ADMIT_THREAD_REQUIRE,      /* "require": whole cores: every thread of
				    * each core it uses is its own; the vCPU
				    * count must be a multiple of the SMT width */
	ADMIT_THREAD_POLICY_LAST
};

/* Most NUMA nodes one VM may span: 32 covers a whole 8-socket host with 4
 * sub-NUMA clusters per socket. A reservation holds this many shares in
 * place (8 bytes each), and a host keeps three copies of every
 * reservation (the ledger, the inventory and the tick's copy of it): 64
 * cost 0.6 MiB more at 1,250 VMs for spans no host has. A VM that would
 * span more is refused, naming the count. */
#define ADMIT_SPAN_MAX 32

/* vCPUs of a VM counted on one node. */
struct admit_share {
	uint32_t node;             /* NUMA node id */
	uint32_t vcpus;
};

/* One admitted VM: what the daemon persists (one SQLite row: names,
 * numbers, enum names, shares as "0:6,1:4" via admit_shares_format() and
 * pcpus as a CPU list via cpulist_format()). Fixed size, no pointers. */
struct admit_reservation {
	char vm[NAME_MAX_LEN + 1];
	char tenant[NAME_MAX_LEN + 1];
	uint32_t vcpus;
	bool memory_set;
	int64_t memory_bytes;      /* when memory_set */
	enum admit_cpu_policy cpu_policy;
	enum admit_thread_policy thread_policy;
	/* ascending node ids, each vcpus >= 1, summing to vcpus. For shared
	 * VMs this split is what counts against each node's capacity; for
	 * dedicated ones it is the number of its pCPUs on each node. */
	struct admit_share shares[ADMIT_SPAN_MAX];
	size_t n_shares;
	struct cpuset pcpus;       /* dedicated: its vcpus pCPUs; shared: empty */
};

/* The tenant's quota and what its admitted VMs already use (not counting
 * the VM of the request). */
struct admit_tenant {
	char name[NAME_MAX_LEN + 1];
	uint32_t vcpus_quota;
	uint32_t vcpus_used;
	bool memory_set;           /* false: no memory quota */
	int64_t memory_quota_bytes;
	int64_t memory_used_bytes;
};

struct admit_request {
	const char *vm;
	const char *tenant;
	uint32_t vcpus;            /* 1..VM_VCPUS_MAX */
	bool memory_set;           /* false: counts as 0 against the quota */
	int64_t memory_bytes;
	enum admit_cpu_policy cpu_policy;
	enum admit_thread_policy thread_policy;
};

/* The host as admission sees it. Borrowed pointers. */
struct admit_host {
	const struct topology *topo;
	const struct pools *pools;
	double cpu_ratio;          /* policy overcommit.cpu_ratio, > 0 */
	const struct admit_reservation *reservations;
	size_t n_reservations;
};

struct admit_placement {
	struct admit_reservation res;  /* persist this */
	struct cpuset cpus;        /* cpuset.cpus for its vCPUs: dedicated: its
				    * pCPUs; shared: the shared pool of its nodes */
	struct cpuset mems;        /* cpuset.mems: its node(s) */
	bool spans;                /* on more than one node */
	bool existing;             /* the VM was already admitted with this very
				    * request: res is its reservation, unchanged */
};

/* Decide on a request. 0: admitted, *out filled (and nothing else
 * changes: the caller persists out->res). -1: refused or invalid, *err
 * set (EBUSY, EINVAL or EEXIST, see above), *out untouched. Examples:
 *   "tenant acme: 30 of 32 vCPUs used, 4 requested"
 *   "shared pool on node 0: 14 of 16 vCPUs admitted (ratio 2.0 x 8 pCPUs),
 *    4 requested; node 1: 16 of 16"
 *   "dedicated pool: 2 free cores with isolate, 3 requested" */
int admit_vm(const struct admit_host *host, const struct admit_tenant *tenant,
	     const struct admit_request *req, struct admit_placement *out,
	     struct error **err);

/* --- a ledger kept by the caller -------------------------------------------- */

/* What the admitted VMs use, summed from their reservations and kept
 * current with admit_ledger_add()/admit_ledger_remove(), so that a decision
 * costs the same with 10 VMs on the host as with 1,000: per NUMA node
 * (topology order) the shared vCPUs counted there and the VMs with vCPUs
 * there; per pCPU how many reservations hold it (dedicated) and how many
 * isolate reservations hold its core. Pools and ratio are not in it (a
 * policy reload keeps it). Shares on nodes the topology lacks count
 * nowhere, as in admit_usage_compute(). Owned arrays: admit_ledger_clear(). */
struct admit_ledger {
	const struct topology *topo;   /* borrowed */
	uint32_t *node_admitted;       /* [n_nodes] shared vCPUs */
	uint32_t *node_vms;            /* [n_nodes] VMs with vCPUs on the node */
	uint32_t *cpu_used;            /* [CPULIST_MAX_CPUS] */
	uint32_t *cpu_held;            /* [CPULIST_MAX_CPUS] */
	struct cpuset used;            /* pCPUs with cpu_used > 0 */
	struct cpuset held;            /* pCPUs with cpu_held > 0 */
	size_t n;                      /* reservations counted */
};

/* An empty ledger for topology t (borrowed: it must outlive the ledger). */
void admit_ledger_init(struct admit_ledger *l, const struct topology *t);
void admit_ledger_clear(struct admit_ledger *l);
/* Count a reservation in, or take it out again (the same reservation as
 * was added: removing one never added leaves the sums wrong). */
void admit_ledger_add(struct admit_ledger *l, const struct admit_reservation *r);
void admit_ledger_remove(struct admit_ledger *l, const struct admit_reservation *r);
/* Same topology and same sums. */
bool admit_ledger_equal(const struct admit_ledger *a, const struct admit_ledger *b);

/* admit_vm() against a ledger instead of host->reservations (not read):
 * `existing` is the request's VM's own reservation when it has one (the
 * caller looks it up: EEXIST), `tenant` carries the tenant's use. Same
 * verdicts and messages as admit_vm(), which is this over a ledger of
 * host->reservations. */
int admit_vm_ledger(const struct admit_host *host, const struct admit_ledger *ledger,
		    const struct admit_reservation *existing, const struct admit_tenant *tenant,
		    const struct admit_request *req, struct admit_placement *out,
		    struct error **err);

/* The cpuset.cpus and cpuset.mems of a (persisted) reservation on this host,
 * as admit_vm() gave them. */
void admit_pin(const struct admit_host *host, const struct admit_reservation *r,
	       struct cpuset *cpus, struct cpuset *mems);

/* The pCPU of vCPU `index` of a dedicated reservation (its pCPUs in
 * ascending order), or -1 for a shared VM or an index out of range. */
int admit_vcpu_pcpu(const struct admit_reservation *r, unsigned index);

/* Check the reservations against the host (e.g. after a restart or a policy
 * reload): each well-formed (names, counts, shares on existing nodes,
 * dedicated pCPUs online, in the dedicated pool and keeping their thread
 * policy) and no two in conflict (same VM, same pCPU, a pCPU on a core an
 * isolate VM holds). Capacity is not checked: a lowered ratio leaves
 * admitted VMs alone (admit_usage() shows the excess). 0 or -1 (EINVAL)
 * naming the VM. */
int admit_host_check(const struct admit_host *host, struct error **err);

/* --- usage, for `vcpuctl host` and GET /v1/host ----------------------------- */

struct admit_node_usage {
	unsigned node;                 /* node id; UINT32_MAX in the total */
	unsigned shared_pcpus;
	uint32_t shared_capacity;      /* floor(ratio x shared_pcpus) */
	uint32_t shared_admitted;      /* shared vCPUs counted here (may exceed
					* the capacity after a ratio cut) */
	unsigned dedicated_pcpus;
	unsigned dedicated_used;       /* pCPUs given to dedicated vCPUs */
	unsigned dedicated_blocked;    /* idle siblings held by isolate VMs */
	unsigned dedicated_free;       /* pCPUs neither used nor blocked */
	unsigned dedicated_free_cores; /* cores wholly in the pool and free:
					* what isolate and require can take */
	uint32_t vms;                  /* VMs with vCPUs here */
};

struct admit_usage {
	struct admit_node_usage *nodes;  /* owned; one per topology node, same order */
	size_t n_nodes;
	struct admit_node_usage total;   /* sums (vms: distinct VMs) */
	struct cpuset dedicated_used;
	struct cpuset dedicated_blocked;
};

/* Per-node use and capacity. Reservations naming unknown nodes or CPUs
 * count only where they fit. Free with admit_usage_clear(). */
void admit_usage_compute(const struct admit_host *host, struct admit_usage *out);
void admit_usage_clear(struct admit_usage *u);

/* --- names and the persisted forms ------------------------------------------ */

const char *admit_cpu_policy_name(enum admit_cpu_policy p);       /* NULL out of range */

/* How `req` differs from the reservation `r` of the same VM (a sentence
 * naming each field, what was asked and what is admitted: "vcpus 8
 * (admitted with 4), memory none (admitted with 1G)"), or NULL when a
 * retry of the request that made r. The caller frees it. */
char *admit_request_diff(const struct admit_reservation *r, const struct admit_request *req);
const char *admit_thread_policy_name(enum admit_thread_policy p); /* NULL out of range */
int admit_cpu_policy_from_string(const char *s, enum admit_cpu_policy *out,
				 struct error **err);
int admit_thread_policy_from_string(const char *s, enum admit_thread_policy *out,
				    struct error **err);

/* r->shares as "0:6,1:4" ("" for none). Caller frees. */
char *admit_shares_format(const struct admit_reservation *r);
/* Parse that form into r->shares / r->n_shares (ascending unique nodes,
 * counts >= 1, at most ADMIT_SPAN_MAX); r changes only on success. */
int admit_shares_parse(const char *s, struct admit_reservation *r, struct error **err);

/* For people and logs: "shared pool, node 1 (CPUs 8-11)" or "shared pool,
 * nodes 0-1 (0: 6, 1: 4 vCPUs; CPUs 2-11)" or "dedicated pool (isolate),
 * node 1, pCPUs 12,14". Caller frees. */
char *admit_placement_describe(const struct admit_host *host, const struct admit_reservation *r);

#endif
