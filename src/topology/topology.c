/* topology.c - the host topology as a struct, built by a pure function from
 * what the sysfs loader (sysfs.c) read, or from a regular spec for tests and
 * dry runs. Cores are identified by their thread-sibling sets, not by
 * core_id (which repeats across packages and, on some machines, dies), and
 * every cross-file inconsistency is an error naming the CPUs involved. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/topology.h"
#include "vcpud/util.h"

static int cmp_node_raw(const void *a, const void *b)
{
	const struct topology_node_raw *x = *(const struct topology_node_raw *const *)a;
	const struct topology_node_raw *y = *(const struct topology_node_raw *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return x < y ? -1 : x > y;
}

/* Highest CPU of a non-empty set. */
static unsigned cpuset_last(const struct cpuset *s)
{
	for (unsigned c = CPULIST_MAX_CPUS; c-- > 0;)
		if (cpuset_isset(s, c))
			return c;
	return 0;
}

static int err_siblings(struct error **err, unsigned a, const struct cpuset *sa, unsigned b,
			const struct cpuset *sb)
{
	_cleanup_free_ char *la = cpulist_format(sa);
	_cleanup_free_ char *lb = cpulist_format(sb);
	return error_set(err, EINVAL,
			 "CPUs %u and %u disagree on their thread siblings (%s and %s)",
			 a, b, la, lb);
}

/* Check the raw records against each other; on success raw_of[cpu] is the
 * record of each online CPU and node_of[cpu] its node id. */
static int check_cpus(const struct cpuset *online, unsigned last,
		      const struct topology_cpu_raw *cpus, size_t n_cpus, size_t *raw_of,
		      struct error **err)
{
	for (unsigned c = 0; c <= last; c++)
		raw_of[c] = SIZE_MAX;
	for (size_t i = 0; i < n_cpus; i++) {
		unsigned c = cpus[i].cpu;
		if (!cpuset_isset(online, c))
			return error_set(err, EINVAL,
					 "CPU %u has a topology record but is not online", c);
		if (raw_of[c] != SIZE_MAX)
			return error_set(err, EINVAL, "CPU %u has two topology records", c);
		raw_of[c] = i;
	}
	for (unsigned c = 0; c <= last; c++)
		if (cpuset_isset(online, c) && raw_of[c] == SIZE_MAX)
			return error_set(err, EINVAL,
					 "CPU %u is online but has no topology record", c);

	/* Thread siblings: the kernel lists only online siblings, but a
	 * sibling going offline between two reads must not split a core, so
	 * compare within the online set. */
	for (size_t i = 0; i < n_cpus; i++) {
		const struct topology_cpu_raw *r = &cpus[i];
		if (!cpuset_isset(&r->siblings, r->cpu)) {
			_cleanup_free_ char *l = cpulist_format(&r->siblings);
			return error_set(err, EINVAL,
					 "CPU %u: its thread siblings '%s' do not include itself",
					 r->cpu, l);
		}
	}
	for (size_t i = 0; i < n_cpus; i++) {
		const struct topology_cpu_raw *r = &cpus[i];
		struct cpuset s;
		cpuset_and(&s, &r->siblings, online);
		for (unsigned o = 0; o <= last; o++) {
			if (o == r->cpu || !cpuset_isset(&s, o))
				continue;
			const struct topology_cpu_raw *q = &cpus[raw_of[o]];
			struct cpuset so;
			cpuset_and(&so, &q->siblings, online);
			if (!cpuset_equal(&s, &so))
				return err_siblings(err, r->cpu, &s, o, &so);
			if (q->package_id != r->package_id)
				return error_set(err, EINVAL,
						 "CPUs %u and %u are thread siblings in different "
						 "packages (%d and %d)",
						 r->cpu, o, r->package_id, q->package_id);
		}
	}
	return 0;
}

static int check_nodes(const struct cpuset *online, unsigned last,
		       const struct topology_node_raw *const *sorted, size_t n_nodes,
		       unsigned *node_of, struct error **err)
{
	for (size_t i = 1; i < n_nodes; i++)
		if (sorted[i]->id == sorted[i - 1]->id)
			return error_set(err, EINVAL, "NUMA node %u is listed twice",
					 sorted[i]->id);
	for (unsigned c = 0; c <= last; c++)
		node_of[c] = UINT32_MAX;
	for (size_t i = 0; i < n_nodes; i++) {
		for (unsigned c = 0; c <= last; c++) {
			if (!cpuset_isset(online, c) || !cpuset_isset(&sorted[i]->cpus, c))
				continue;
			if (node_of[c] != UINT32_MAX)
				return error_set(err, EINVAL,
						 "CPU %u is in NUMA nodes %u and %u", c,
						 node_of[c], sorted[i]->id);
			node_of[c] = sorted[i]->id;
		}
	}
	for (unsigned c = 0; c <= last; c++)
		if (cpuset_isset(online, c) && node_of[c] == UINT32_MAX)
			return error_set(err, EINVAL, "CPU %u is online but in no NUMA node", c);
	return 0;
}

int topology_assemble(const struct cpuset *online,
		      const struct topology_cpu_raw *cpus, size_t n_cpus,
		      const struct topology_node_raw *nodes, size_t n_nodes,
		      bool numa, struct topology **out, struct error **err)
{
	if (cpuset_empty(online))
		return error_set(err, EINVAL, "no online CPUs");
	if (n_nodes == 0)
		return error_set(err, EINVAL, "no NUMA nodes");

	unsigned last = cpuset_last(online);
	_cleanup_free_ size_t *raw_of = xcalloc(last + 1, sizeof(*raw_of));
	_cleanup_free_ unsigned *node_of = xcalloc(last + 1, sizeof(*node_of));
	_cleanup_free_ const struct topology_node_raw **sorted =
		xcalloc(n_nodes, sizeof(*sorted));
	for (size_t i = 0; i < n_nodes; i++)
		sorted[i] = &nodes[i];
	qsort(sorted, n_nodes, sizeof(*sorted), cmp_node_raw);

	if (check_cpus(online, last, cpus, n_cpus, raw_of, err) < 0 ||
	    check_nodes(online, last, sorted, n_nodes, node_of, err) < 0)
		return -1;

	_cleanup_(topology_freep) struct topology *t = xcalloc(1, sizeof(*t));
	t->online = *online;
	t->n_cpus = cpuset_count(online);
	t->numa = numa;
	t->cpus = xcalloc(t->n_cpus, sizeof(*t->cpus));
	t->cores = xcalloc(t->n_cpus, sizeof(*t->cores)); /* at most one per CPU */
	t->cpu_index_len_ = last + 1;
	t->cpu_index_ = xcalloc(last + 1, sizeof(*t->cpu_index_));

	unsigned k = 0;
	for (unsigned c = 0; c <= last; c++) {
		t->cpu_index_[c] = UINT32_MAX;
		if (!cpuset_isset(online, c))
			continue;
		const struct topology_cpu_raw *r = &cpus[raw_of[c]];
		t->cpus[k] = (struct topology_cpu){
			.id = c, .core_id = r->core_id, .package_id = r->package_id,
			.core = UINT32_MAX, .node = node_of[c],
		};
		t->cpu_index_[c] = k++;
	}

	/* Cores, in order of their first thread. */
	for (unsigned i = 0; i < t->n_cpus; i++) {
		struct topology_cpu *cpu = &t->cpus[i];
		if (cpu->core != UINT32_MAX)
			continue;
		struct topology_core *core = &t->cores[t->n_cores];
		cpuset_and(&core->threads, &cpus[raw_of[cpu->id]].siblings, online);
		core->n_threads = cpuset_count(&core->threads);
		core->first_cpu = cpu->id;
		core->core_id = cpu->core_id;
		core->package_id = cpu->package_id;
		core->node = cpu->node;
		for (unsigned c = cpu->id; c <= last; c++) {
			if (!cpuset_isset(&core->threads, c))
				continue;
			struct topology_cpu *sib = &t->cpus[t->cpu_index_[c]];
			if (sib->node != core->node)
				return error_set(err, EINVAL,
						 "CPUs %u and %u are thread siblings on different "
						 "NUMA nodes (%u and %u)",
						 cpu->id, c, core->node, sib->node);
			sib->core = (unsigned)t->n_cores;
		}
		if (core->n_threads > t->threads_per_core)
			t->threads_per_core = core->n_threads;
		t->n_cores++;
	}

	t->n_nodes = n_nodes;
	t->nodes = xcalloc(n_nodes, sizeof(*t->nodes));
	for (size_t i = 0; i < n_nodes; i++) {
		struct topology_node *n = &t->nodes[i];
		n->id = sorted[i]->id;
		cpuset_and(&n->cpus, &sorted[i]->cpus, online);
		n->n_cpus = cpuset_count(&n->cpus);
		n->mem_total_bytes = sorted[i]->mem_total_bytes;
		for (size_t j = 0; j < t->n_cores; j++)
			if (t->cores[j].node == n->id)
				n->n_cores++;
		t->mem_total_bytes += n->mem_total_bytes;
	}

	_cleanup_free_ int *pk = xcalloc(t->n_cores, sizeof(*pk));
	for (size_t i = 0; i < t->n_cores; i++)
		pk[i] = t->cores[i].package_id;
	qsort(pk, t->n_cores, sizeof(*pk), cmp_int);
	for (size_t i = 0; i < t->n_cores; i++)
		if (i == 0 || pk[i] != pk[i - 1])
			t->n_packages++;

	*out = steal_ptr(&t);
	return 0;
}

int topology_from_spec(const struct topology_spec *spec, struct topology **out,
		       struct error **err)
{
	if (!spec || spec->packages < 1 || spec->nodes_per_package < 1 ||
	    spec->cores_per_node < 1 || spec->threads_per_core < 1)
		return error_set(err, EINVAL, "topology spec: every count must be at least 1");
	uint64_t n_nodes = (uint64_t)spec->packages * spec->nodes_per_package;
	uint64_t n_cores = n_nodes * spec->cores_per_node;
	uint64_t n_cpus = n_cores * spec->threads_per_core;
	if (n_cpus > CPULIST_MAX_CPUS)
		return error_set(err, ERANGE, "topology spec: %" PRIu64 " CPUs, at most %d",
				 n_cpus, CPULIST_MAX_CPUS);

	struct cpuset online;
	cpuset_zero(&online);
	_cleanup_free_ struct topology_cpu_raw *cpus = xcalloc(n_cpus, sizeof(*cpus));
	_cleanup_free_ struct topology_node_raw *nodes = xcalloc(n_nodes, sizeof(*nodes));
	for (unsigned n = 0; n < n_nodes; n++) {
		nodes[n].id = n;
		nodes[n].mem_total_bytes = spec->mem_per_node_bytes;
	}
	size_t k = 0;
	for (unsigned core = 0; core < n_cores; core++) {
		unsigned node = core / spec->cores_per_node;
		unsigned pkg = node / spec->nodes_per_package;
		unsigned T = spec->threads_per_core;
		struct cpuset sib;
		cpuset_zero(&sib);
		for (unsigned th = 0; th < T; th++)
			cpuset_set(&sib, spec->siblings_adjacent ? core * T + th
								 : th * (unsigned)n_cores + core);
		for (unsigned th = 0; th < T; th++) {
			unsigned c = spec->siblings_adjacent ? core * T + th
							     : th * (unsigned)n_cores + core;
			cpus[k++] = (struct topology_cpu_raw){
				.cpu = c,
				.core_id = (int)(core % (n_cores / spec->packages)),
				.package_id = (int)pkg,
				.siblings = sib,
			};
			cpuset_set(&online, c);
			cpuset_set(&nodes[node].cpus, c);
		}
	}
	return topology_assemble(&online, cpus, n_cpus, nodes, n_nodes, true, out, err);
}

void topology_free(struct topology *t)
{
	if (!t)
		return;
	free(t->cpus);
	free(t->cores);
	free(t->nodes);
	free(t->cpu_index_);
	free(t);
}

const struct topology_cpu *topology_cpu(const struct topology *t, unsigned cpu)
{
	if (!t || cpu >= t->cpu_index_len_ || t->cpu_index_[cpu] == UINT32_MAX)
		return NULL;
	return &t->cpus[t->cpu_index_[cpu]];
}

const struct topology_core *topology_cpu_core(const struct topology *t, unsigned cpu)
{
	const struct topology_cpu *c = topology_cpu(t, cpu);
	return c ? &t->cores[c->core] : NULL;
}

const struct topology_node *topology_node(const struct topology *t, unsigned node)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_nodes; i++)
		if (t->nodes[i].id == node)
			return &t->nodes[i];
	return NULL;
}

char *topology_describe(const struct topology *t)
{
	_cleanup_free_ char *mem = format_size((int64_t)t->mem_total_bytes);
	_cleanup_free_ char *smt = t->threads_per_core > 1
		? xasprintf(" (SMT%u)", t->threads_per_core) : xstrdup("");
	return xasprintf("%u CPU%s, %zu core%s%s, %u package%s, %zu NUMA node%s%s, %s",
			 t->n_cpus, t->n_cpus == 1 ? "" : "s",
			 t->n_cores, t->n_cores == 1 ? "" : "s", smt,
			 t->n_packages, t->n_packages == 1 ? "" : "s",
			 t->n_nodes, t->n_nodes == 1 ? "" : "s",
			 t->numa ? "" : " (no NUMA)", mem);
}
