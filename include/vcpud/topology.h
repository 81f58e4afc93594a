/* topology.h - the host's CPU topology (online CPUs, cores and their SMT
 * threads, packages, NUMA nodes with their CPUs and memory) and the three
 * CPU pools the policy carves out of it (housekeeping, dedicated, shared).
 *
 * topology_load() reads sysfs through a root prefix; the per-file parsers
 * and topology_assemble() are pure and tested on fixture trees. Admission
 * (vcpud/admit.h) places VMs on a struct topology and its struct pools. */
#ifndef VCPUD_TOPOLOGY_H
#define VCPUD_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/cpulist.h"
#include "vcpud/error.h"

/* Largest sysfs/procfs file read (EFBIG beyond). */
#define TOPOLOGY_FILE_MAX (256 * 1024)

struct topology_cpu {
	unsigned id;                /* CPU number (cpuN) */
	int core_id;                /* topology/core_id (unique per package only) */
	int package_id;             /* topology/physical_package_id (-1 on some arm) */
	unsigned core;              /* index into topology.cores */
	unsigned node;              /* NUMA node id (not an index) */
};

/* A physical core: the online CPUs that are each other's thread siblings. */
struct topology_core {
	struct cpuset threads;      /* its online SMT threads, itself included */
	unsigned n_threads;
	unsigned first_cpu;         /* lowest CPU of threads */
	int core_id;
	int package_id;
	unsigned node;              /* NUMA node id of its threads */
};

struct topology_node {
	unsigned id;                /* nodeN */
	struct cpuset cpus;         /* its online CPUs (empty for memory-only nodes) */
	unsigned n_cpus;
	unsigned n_cores;
	uint64_t mem_total_bytes;   /* MemTotal of nodeN/meminfo */
};

struct topology {
	struct cpuset online;       /* sys/devices/system/cpu/online */
	unsigned n_cpus;            /* online CPUs */
	struct topology_cpu *cpus;  /* n_cpus entries, ascending id */
	struct topology_core *cores;/* ascending first_cpu */
	size_t n_cores;
	struct topology_node *nodes;/* ascending id; at least one */
	size_t n_nodes;
	unsigned n_packages;        /* distinct package ids */
	unsigned threads_per_core;  /* SMT width: the most threads of one core */
	uint64_t mem_total_bytes;   /* sum over nodes */
	bool numa;                  /* false: no sys/devices/system/node, one
				     * node 0 with every CPU and proc/meminfo */
	/* private: CPU number -> index into cpus, UINT32_MAX when offline */
	uint32_t *cpu_index_;
	unsigned cpu_index_len_;
};

/* --- pure parsers (one per file format; buffers as read from the file) --- */

/* core_id, physical_package_id: one decimal integer, -1 allowed (some
 * platforms report an unknown package as -1), one trailing newline. 0 or
 * -1 (EINVAL/ERANGE). */
int topology_parse_id(const char *buf, int *out, struct error **err);

/* MemTotal in bytes from a meminfo buffer. node >= 0: the per-node format
 * of nodeN/meminfo ("Node 0 MemTotal:       8048560 kB"), whose node
 * number must be `node`; node < 0: proc/meminfo ("MemTotal: 8048560 kB").
 * EINVAL when the line is missing, malformed or names another node. */
int topology_parse_meminfo(const char *buf, int node, uint64_t *bytes, struct error **err);

/* --- assembling ------------------------------------------------------------ */

/* What the loader read for one online CPU, and for one NUMA node. */
struct topology_cpu_raw {
	unsigned cpu;
	int core_id;
	int package_id;
	struct cpuset siblings;     /* thread_siblings_list / core_cpus_list */
};

struct topology_node_raw {
	unsigned id;
	struct cpuset cpus;         /* nodeN/cpulist (offline CPUs are dropped) */
	uint64_t mem_total_bytes;
};

/* Build a topology from raw records (pure). Every online CPU needs exactly
 * one record and exactly one node; siblings are taken within the online
 * set and must contain the CPU itself, agree among themselves, share a
 * package and a node. `numa` is copied to the result. At least one node.
 * Errors (EINVAL) name the CPUs or nodes at fault. *out is freed with
 * topology_free(). */
int topology_assemble(const struct cpuset *online,
		      const struct topology_cpu_raw *cpus, size_t n_cpus,
		      const struct topology_node_raw *nodes, size_t n_nodes,
		      bool numa, struct topology **out, struct error **err);

/* Read the topology under host_root ("/" on a real host; NULL means "/"):
 *   sys/devices/system/cpu/online
 *   sys/devices/system/cpu/cpuN/topology/{core_id,physical_package_id,
 *       thread_siblings_list (core_cpus_list when that is missing)}
 *   sys/devices/system/node/online, nodeN/cpulist, nodeN/meminfo
 *   proc/meminfo, only when sys/devices/system/node does not exist
 * Only online CPUs and nodes are read. A missing or malformed file is an
 * error whose message starts with the file's path. *out is freed with
 * topology_free(). */
int topology_load(const char *host_root, struct topology **out, struct error **err);

/* A regular topology without sysfs (tests, dry runs). CPU numbering:
 * siblings_adjacent: core c's threads are CPUs c*T .. c*T+T-1 (QEMU's
 * -smp layout); otherwise thread t of core c is CPU t*C + c, C being all
 * cores of the host (the usual x86 firmware order). Cores are numbered
 * package by package, node by node; each node is within one package. */
struct topology_spec {
	unsigned packages;          /* >= 1 */
	unsigned nodes_per_package; /* >= 1 */
	unsigned cores_per_node;    /* >= 1 */
	unsigned threads_per_core;  /* >= 1 */
	bool siblings_adjacent;
	uint64_t mem_per_node_bytes;
};
int topology_from_spec(const struct topology_spec *spec, struct topology **out,
		       struct error **err);

void topology_free(struct topology *t);
static inline void topology_freep(struct topology **t) { if (*t) topology_free(*t); }

/* --- look-ups ---------------------------------------------------------------- */

/* The online CPU `cpu`, or NULL when it is offline or absent. */
const struct topology_cpu *topology_cpu(const struct topology *t, unsigned cpu);
/* The core of an online CPU, or NULL. */
const struct topology_core *topology_cpu_core(const struct topology *t, unsigned cpu);
/* The node with id `node`, or NULL. */
const struct topology_node *topology_node(const struct topology *t, unsigned node);

/* One line for people: "32 CPUs, 16 cores (SMT2), 2 packages, 2 NUMA nodes,
 * 64G". Caller frees. */
char *topology_describe(const struct topology *t);

/* --- CPU pools ------------------------------------------------------------- */

/* The policy's pools (DESIGN.md "Overcommit and placement"): housekeeping
 * (host and emulator threads), dedicated (one vCPU per pCPU, never
 * overcommitted) and shared (every other online CPU, overcommitted). The
 * three are disjoint and their union is the online set. */
struct pools {
	struct cpuset housekeeping;
	struct cpuset dedicated;
	struct cpuset shared;
};

/* Carve the pools out of t from the policy's host.housekeeping_cpus and
 * host.dedicated_cpus (either may be empty). EINVAL when a CPU of either is
 * offline ("host.dedicated_cpus: CPU 17 is offline") or the two overlap
 * ("host.housekeeping_cpus and host.dedicated_cpus overlap on CPUs 4-5").
 * *out is written only on success. */
int topology_pools(const struct topology *t, const struct cpuset *housekeeping,
		   const struct cpuset *dedicated, struct pools *out, struct error **err);

#endif
