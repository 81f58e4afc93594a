/* admit.c - VM admission and placement (see vcpud/admit.h): tenant quota,
 * per-NUMA-node overcommit of the shared pool, SMT-aware exclusive pCPUs
 * from the dedicated pool. Pure: admit_vm() sums the host's state from the
 * reservation list on every call, so the same list always gives the same
 * verdict; admit_vm_ledger() takes those sums from a ledger the caller keeps
 * (the registry, so that an admit does not walk every reservation). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/admit.h"
#include "vcpud/path.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

static const char *const cpu_policy_names[ADMIT_CPU_POLICY_LAST] = {
	[ADMIT_CPU_SHARED] = "shared",
	[ADMIT_CPU_DEDICATED] = "dedicated",
};

static const char *const thread_policy_names[ADMIT_THREAD_POLICY_LAST] = {
	[ADMIT_THREAD_PREFER] = "prefer",
	[ADMIT_THREAD_ISOLATE] = "isolate",
	[ADMIT_THREAD_REQUIRE] = "require",
};

const char *admit_cpu_policy_name(enum admit_cpu_policy p)
{
	return (unsigned)p < ADMIT_CPU_POLICY_LAST ? cpu_policy_names[p] : NULL;
}

const char *admit_thread_policy_name(enum admit_thread_policy p)
{
	return (unsigned)p < ADMIT_THREAD_POLICY_LAST ? thread_policy_names[p] : NULL;
}

char *admit_request_diff(const struct admit_reservation *r, const struct admit_request *req)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		abort();
	const char *sep = "";
	if (strcmp(r->tenant, req->tenant) != 0) {
		fprintf(f, "%stenant %s (admitted for %s)", sep, req->tenant, r->tenant);
		sep = ", ";
	}
	if (r->vcpus != req->vcpus) {
		fprintf(f, "%svcpus %u (admitted with %u)", sep, req->vcpus, r->vcpus);
		sep = ", ";
	}
	if (r->memory_set != req->memory_set ||
	    (r->memory_set && r->memory_bytes != req->memory_bytes)) {
		_cleanup_free_ char *a = req->memory_set ? format_size(req->memory_bytes) : NULL;
		_cleanup_free_ char *b = r->memory_set ? format_size(r->memory_bytes) : NULL;
		fprintf(f, "%smemory %s (admitted with %s)", sep, a ? a : "none", b ? b : "none");
		sep = ", ";
	}
	if (r->cpu_policy != req->cpu_policy) {
		const char *a = admit_cpu_policy_name(req->cpu_policy);
		const char *b = admit_cpu_policy_name(r->cpu_policy);
		fprintf(f, "%scpu policy %s (admitted with %s)", sep, a ? a : "?", b ? b : "?");
		sep = ", ";
	}
	if (r->thread_policy != req->thread_policy) {
		const char *a = admit_thread_policy_name(req->thread_policy);
		const char *b = admit_thread_policy_name(r->thread_policy);
		fprintf(f, "%sthread policy %s (admitted with %s)", sep, a ? a : "?", b ? b : "?");
		sep = ", ";
	}
	fclose(f);
	if (len == 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int admit_cpu_policy_from_string(const char *s, enum admit_cpu_policy *out,
				 struct error **err)
{
	for (unsigned i = 0; s && i < ADMIT_CPU_POLICY_LAST; i++)
		if (strcmp(s, cpu_policy_names[i]) == 0) {
			*out = (enum admit_cpu_policy)i;
			return 0;
		}
	return error_set(err, EINVAL, "invalid cpu policy '%.64s': use shared or dedicated",
			 s ? s : "");
}

int admit_thread_policy_from_string(const char *s, enum admit_thread_policy *out,
				    struct error **err)
{
	for (unsigned i = 0; s && i < ADMIT_THREAD_POLICY_LAST; i++)
		if (strcmp(s, thread_policy_names[i]) == 0) {
			*out = (enum admit_thread_policy)i;
			return 0;
		}
	return error_set(err, EINVAL,
			 "invalid thread policy '%.64s': use prefer, isolate or require",
			 s ? s : "");
}

/* --- small helpers ----------------------------------------------------------- */

/* Append to an allocated string. */
__attribute__((format(printf, 2, 3)))
static void append(char **s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *more = xvasprintf(fmt, ap);
	va_end(ap);
	char *n = xasprintf("%s%s", *s ? *s : "", more);
	free(more);
	free(*s);
	*s = n;
}

/* "2.0", "1.5", "1.25": at least one decimal, at most two. */
static void format_ratio(double r, char *buf, size_t size)
{
	snprintf(buf, size, "%.2f", r);
	size_t l = strlen(buf);
	while (l >= 3 && buf[l - 1] == '0' && buf[l - 2] != '.')
		buf[--l] = '\0';
}

static const char *plural(unsigned n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The shared capacity of p pCPUs: floor(ratio x p), with a little slack so
 * that 2.0 x 8 is 16 whatever the rounding of the ratio. */
static uint32_t capacity(double ratio, unsigned p)
{
	double c = floor(ratio * (double)p + 1e-9);
	return c <= 0 ? 0 : c >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

static bool core_in(const struct topology_core *c, const struct cpuset *pool)
{
	struct cpuset x;
	cpuset_andnot(&x, &c->threads, pool);
	return cpuset_empty(&x);
}

static int node_index(const struct topology *t, unsigned id)
{
	for (size_t i = 0; i < t->n_nodes; i++)
		if (t->nodes[i].id == id)
			return (int)i;
	return -1;
}

/* --- the host's state, recomputed from the reservations ---------------------- */

struct node_state {
	unsigned shared_pcpus;
	uint32_t cap;
	uint32_t admitted;   /* shared vCPUs counted on the node */
	uint32_t vms;
};

struct state {
	const struct admit_host *h;
	struct node_state *nodes;  /* one per topology node */
	struct cpuset used;        /* dedicated pCPUs given to vCPUs */
	struct cpuset blocked;     /* idle siblings held by isolate VMs */
	struct cpuset busy;        /* used | blocked */
};

/* --- the ledger: what the reservations use, summed --------------------------- */

void admit_ledger_init(struct admit_ledger *l, const struct topology *t)
{
	memset(l, 0, sizeof(*l));
	l->topo = t;
	l->node_admitted = xcalloc(t->n_nodes ? t->n_nodes : 1, sizeof(*l->node_admitted));
	l->node_vms = xcalloc(t->n_nodes ? t->n_nodes : 1, sizeof(*l->node_vms));
	l->cpu_used = xcalloc(CPULIST_MAX_CPUS, sizeof(*l->cpu_used));
	l->cpu_held = xcalloc(CPULIST_MAX_CPUS, sizeof(*l->cpu_held));
	cpuset_zero(&l->used);
	cpuset_zero(&l->held);
}

void admit_ledger_clear(struct admit_ledger *l)
{
	if (!l)
		return;
	free(l->node_admitted);
	free(l->node_vms);
	free(l->cpu_used);
	free(l->cpu_held);
	memset(l, 0, sizeof(*l));
}

/* Count a pCPU once more (+1) or once less (-1) in `refs`, keeping `set`
 * to the pCPUs counted at least once. */
static void cpu_count(uint32_t *refs, struct cpuset *set, unsigned c, int delta)
{
	if (delta > 0) {
		if (refs[c]++ == 0)
			cpuset_set(set, c);
	} else if (refs[c] > 0 && --refs[c] == 0) {
		cpuset_clear(set, c);
	}
}

/* Add (+1) or take back (-1) one reservation: its shares on the nodes the
 * topology has (others count nowhere), its dedicated pCPUs, the cores an
 * isolate VM holds. Taking back exactly what was added restores the sums. */
static void ledger_apply(struct admit_ledger *l, const struct admit_reservation *res, int delta)
{
	const struct topology *t = l->topo;
	size_t n_shares = res->n_shares < ADMIT_SPAN_MAX ? res->n_shares : ADMIT_SPAN_MAX;
	for (size_t s = 0; s < n_shares; s++) {
		int ni = node_index(t, res->shares[s].node);
		if (ni < 0)
			continue;
		uint32_t v = res->cpu_policy == ADMIT_CPU_SHARED ? res->shares[s].vcpus : 0;
		if (delta > 0) {
			l->node_vms[ni]++;
			l->node_admitted[ni] += v;
		} else {
			l->node_vms[ni] -= l->node_vms[ni] ? 1 : 0;
			l->node_admitted[ni] -= l->node_admitted[ni] >= v ? v : l->node_admitted[ni];
		}
	}
	if (delta > 0)
		l->n++;
	else if (l->n > 0)
		l->n--;
	if (res->cpu_policy != ADMIT_CPU_DEDICATED)
		return;
	for (unsigned c = 0; c < CPULIST_MAX_CPUS; c++)
		if (cpuset_isset(&res->pcpus, c))
			cpu_count(l->cpu_used, &l->used, c, delta);
	if (res->thread_policy != ADMIT_THREAD_ISOLATE)
		return;
	for (size_t c = 0; c < t->n_cores; c++) {
		if (!cpuset_intersects(&t->cores[c].threads, &res->pcpus))
			continue;
		for (unsigned cpu = 0; cpu < CPULIST_MAX_CPUS; cpu++)
			if (cpuset_isset(&t->cores[c].threads, cpu))
				cpu_count(l->cpu_held, &l->held, cpu, delta);
	}
}

void admit_ledger_add(struct admit_ledger *l, const struct admit_reservation *r)
{
	ledger_apply(l, r, +1);
}

void admit_ledger_remove(struct admit_ledger *l, const struct admit_reservation *r)
{
	ledger_apply(l, r, -1);
}

bool admit_ledger_equal(const struct admit_ledger *a, const struct admit_ledger *b)
{
	if (a->topo != b->topo || a->n != b->n || !cpuset_equal(&a->used, &b->used) ||
	    !cpuset_equal(&a->held, &b->held))
		return false;
	size_t nn = a->topo->n_nodes;
	return memcmp(a->node_admitted, b->node_admitted, nn * sizeof(uint32_t)) == 0 &&
	       memcmp(a->node_vms, b->node_vms, nn * sizeof(uint32_t)) == 0 &&
	       memcmp(a->cpu_used, b->cpu_used, CPULIST_MAX_CPUS * sizeof(uint32_t)) == 0 &&
	       memcmp(a->cpu_held, b->cpu_held, CPULIST_MAX_CPUS * sizeof(uint32_t)) == 0;
}

/* The host's state from a ledger: capacities from the pools and ratio of
 * `h`, use from `l` (h->reservations is not read). */
static void state_from_ledger(struct state *st, const struct admit_host *h,
			      const struct admit_ledger *l)
{
	const struct topology *t = h->topo;
	st->h = h;
	st->nodes = xcalloc(t->n_nodes ? t->n_nodes : 1, sizeof(*st->nodes));
	for (size_t i = 0; i < t->n_nodes; i++) {
		struct cpuset s;
		cpuset_and(&s, &h->pools->shared, &t->nodes[i].cpus);
		st->nodes[i].shared_pcpus = cpuset_count(&s);
		st->nodes[i].cap = capacity(h->cpu_ratio, st->nodes[i].shared_pcpus);
		st->nodes[i].admitted = l->node_admitted[i];
		st->nodes[i].vms = l->node_vms[i];
	}
	st->used = l->used;
	cpuset_andnot(&st->blocked, &l->held, &st->used);
	cpuset_or(&st->busy, &st->used, &st->blocked);
}

/* A ledger of h->reservations (admit_ledger_clear() it). */
static void ledger_of_host(struct admit_ledger *l, const struct admit_host *h)
{
	admit_ledger_init(l, h->topo);
	for (size_t r = 0; r < h->n_reservations; r++)
		admit_ledger_add(l, &h->reservations[r]);
}

static void state_init(struct state *st, const struct admit_host *h)
{
	struct admit_ledger l;
	ledger_of_host(&l, h);
	state_from_ledger(st, h, &l);
	admit_ledger_clear(&l);
}

static void state_clear(struct state *st)
{
	free(st->nodes);
	st->nodes = NULL;
}

/* Units of the dedicated pool on node ni a thread policy counts in: pCPUs
 * (prefer), cores wholly in the pool (isolate; one vCPU each), or such
 * cores with the full SMT width (require; one per width vCPUs). With
 * free_only, only what no reservation uses or blocks. */
static unsigned dedicated_units(const struct state *st, size_t ni,
				enum admit_thread_policy tp, bool free_only)
{
	const struct topology *t = st->h->topo;
	const struct cpuset *D = &st->h->pools->dedicated;
	const struct topology_node *node = &t->nodes[ni];
	if (tp == ADMIT_THREAD_PREFER) {
		struct cpuset s;
		cpuset_and(&s, D, &node->cpus);
		if (free_only)
			cpuset_andnot(&s, &s, &st->busy);
		return cpuset_count(&s);
	}
	unsigned n = 0;
	for (size_t c = 0; c < t->n_cores; c++) {
		const struct topology_core *core = &t->cores[c];
		if (core->node != node->id || !core_in(core, D))
			continue;
		if (tp == ADMIT_THREAD_REQUIRE && core->n_threads != t->threads_per_core)
			continue;
		if (free_only && cpuset_intersects(&core->threads, &st->busy))
			continue;
		n++;
	}
	return n;
}

/* Pick `units` units of node ni for a dedicated VM into *pick. The caller
 * checked that the node has them. */
static void dedicated_take(const struct state *st, size_t ni, enum admit_thread_policy tp,
			   unsigned units, struct cpuset *pick)
{
	const struct topology *t = st->h->topo;
	const struct cpuset *D = &st->h->pools->dedicated;
	unsigned node_id = t->nodes[ni].id;

	if (tp != ADMIT_THREAD_PREFER) {
		for (size_t c = 0; c < t->n_cores && units > 0; c++) {
			const struct topology_core *core = &t->cores[c];
			if (core->node != node_id || !core_in(core, D) ||
			    cpuset_intersects(&core->threads, &st->busy))
				continue;
			if (tp == ADMIT_THREAD_REQUIRE) {
				if (core->n_threads != t->threads_per_core)
					continue;
				cpuset_or(pick, pick, &core->threads);
			} else {
				cpuset_set(pick, core->first_cpu);
			}
			units--;
		}
		return;
	}

	/* prefer: keep the VM's vCPUs on sibling threads (take as many of one
	 * core as it can), and pack: a remainder goes to a core that is
	 * already partly taken before it breaks into a free one, so whole
	 * cores stay for isolate and require VMs. */
	struct cpuset avail;
	cpuset_and(&avail, D, &t->nodes[ni].cpus);
	cpuset_andnot(&avail, &avail, &st->busy);
	while (units > 0) {
		size_t best = SIZE_MAX;
		unsigned best_take = 0, best_free = 0;
		bool best_partial = false;
		for (size_t c = 0; c < t->n_cores; c++) {
			const struct topology_core *core = &t->cores[c];
			if (core->node != node_id)
				continue;
			struct cpuset f;
			cpuset_and(&f, &core->threads, &avail);
			unsigned nf = cpuset_count(&f);
			if (nf == 0)
				continue;
			unsigned take = nf < units ? nf : units;
			bool partial = nf < core->n_threads;
			bool better = best == SIZE_MAX || take > best_take ||
				(take == best_take && partial && !best_partial) ||
				(take == best_take && partial == best_partial && nf < best_free);
			if (better) {
				best = c;
				best_take = take;
				best_free = nf;
				best_partial = partial;
			}
		}
		if (best == SIZE_MAX)
			return; /* cannot happen: units were counted */
		const struct topology_core *core = &t->cores[best];
		for (unsigned c = core->first_cpu; best_take > 0 && c < CPULIST_MAX_CPUS; c++) {
			if (cpuset_isset(&core->threads, c) && cpuset_isset(&avail, c)) {
				cpuset_set(pick, c);
				cpuset_clear(&avail, c);
				best_take--;
				units--;
			}
		}
	}
}

/* --- placement ---------------------------------------------------------------- */

struct choice {
	size_t ni;
	unsigned units;
};

/* Nodes for `need` units, `have[i]` on node i: the one node that has them
 * and the most `room` (then the most units, then the lowest id), else as
 * few nodes as possible, those with the most units first. Returns the
 * number of nodes chosen, 0 when the nodes do not have `need` in all. */
static bool ranks_before(const unsigned *have, const unsigned *room, size_t a, size_t b)
{
	if (room[a] != room[b])
		return room[a] > room[b];
	if (have[a] != have[b])
		return have[a] > have[b];
	return a < b;
}

static size_t choose_nodes(const unsigned *have, const unsigned *room, size_t n,
			   unsigned need, struct choice *out)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		if (have[i] >= need && (best == SIZE_MAX || ranks_before(have, room, i, best)))
			best = i;
	if (best != SIZE_MAX) {
		out[0] = (struct choice){ best, need };
		return 1;
	}
	_cleanup_free_ bool *taken = xcalloc(n, sizeof(*taken));
	size_t k = 0;
	unsigned left = need;
	while (left > 0) {
		size_t pick = SIZE_MAX;
		for (size_t i = 0; i < n; i++)
			if (!taken[i] && have[i] > 0 &&
			    (pick == SIZE_MAX || have[i] > have[pick] ||
			     (have[i] == have[pick] && ranks_before(have, room, i, pick))))
				pick = i;
		if (pick == SIZE_MAX)
			return 0;
		taken[pick] = true;
		unsigned u = have[pick] < left ? have[pick] : left;
		out[k++] = (struct choice){ pick, u };
		left -= u;
	}
	return k;
}

static int place_shared(const struct state *st, const struct admit_request *req,
			struct admit_reservation *res, bool check_only, struct error **err)
{
	const struct topology *t = st->h->topo;
	size_t n = t->n_nodes;
	unsigned v = req->vcpus;
	char ratio[32];
	format_ratio(st->h->cpu_ratio, ratio, sizeof(ratio));

	unsigned pool = 0, ever = 0;
	for (size_t i = 0; i < n; i++) {
		const struct node_state *ns = &st->nodes[i];
		pool += ns->shared_pcpus;
		ever += ns->cap < ns->shared_pcpus ? ns->cap : ns->shared_pcpus;
	}
	if (pool == 0)
		return error_set(err, EINVAL,
				 "shared pool is empty: every online CPU is in "
				 "host.housekeeping_cpus or host.dedicated_cpus");
	if (v > pool)
		return error_set(err, EINVAL,
				 "shared pool has %u pCPU%s, %u vCPUs requested (a VM gets at "
				 "most one pCPU per vCPU)", pool, pool == 1 ? "" : "s", v);
	if (v > ever)
		return error_set(err, EINVAL,
				 "shared pool holds at most %u vCPUs of one VM (ratio %s x %u "
				 "pCPUs), %u requested", ever, ratio, pool, v);
	if (check_only)
		return 0;

	_cleanup_free_ unsigned *have = xcalloc(n, sizeof(*have));
	_cleanup_free_ unsigned *room = xcalloc(n, sizeof(*room));
	unsigned room_sum = 0;
	for (size_t i = 0; i < n; i++) {
		const struct node_state *ns = &st->nodes[i];
		room[i] = ns->cap > ns->admitted ? ns->cap - ns->admitted : 0;
		room_sum += room[i];
		/* never more vCPUs of one VM on a node than it has pCPUs */
		have[i] = room[i] < ns->shared_pcpus ? room[i] : ns->shared_pcpus;
	}
	_cleanup_free_ struct choice *ch = xcalloc(n, sizeof(*ch));
	size_t k = choose_nodes(have, room, n, v, ch);
	if (k == 0) {
		_cleanup_free_ char *msg = NULL;
		for (size_t i = 0; i < n; i++) {
			const struct node_state *ns = &st->nodes[i];
			if (ns->shared_pcpus == 0)
				continue;
			if (!msg)
				append(&msg, "shared pool on node %u: %u of %u vCPUs admitted "
				       "(ratio %s x %u pCPU%s), %u requested",
				       t->nodes[i].id, ns->admitted, ns->cap, ratio,
				       ns->shared_pcpus, plural(ns->shared_pcpus, "", "s"), v);
			else
				append(&msg, "; node %u: %u of %u", t->nodes[i].id,
				       ns->admitted, ns->cap);
		}
		if (room_sum >= v)
			append(&msg, " (a VM gets at most one pCPU per vCPU on a node)");
		return error_set(err, EBUSY, "%s", msg);
	}
	if (k > ADMIT_SPAN_MAX)
		return error_set(err, EINVAL, "%u vCPUs would span %zu NUMA nodes, at most %d",
				 v, k, ADMIT_SPAN_MAX);
	/* shares in ascending node order */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < k; j++)
			if (ch[j].ni == i)
				res->shares[res->n_shares++] =
					(struct admit_share){ t->nodes[i].id, ch[j].units };
	return 0;
}

static int place_dedicated(const struct state *st, const struct admit_request *req,
			   struct admit_reservation *res, bool check_only, struct error **err)
{
	const struct topology *t = st->h->topo;
	size_t n = t->n_nodes;
	unsigned v = req->vcpus, w = t->threads_per_core;
	enum admit_thread_policy tp = req->thread_policy;
	const char *tpn = thread_policy_names[tp];

	if (cpuset_empty(&st->h->pools->dedicated))
		return error_set(err, EINVAL, "dedicated pool is empty (host.dedicated_cpus)");
	if (tp == ADMIT_THREAD_REQUIRE && v % w != 0)
		return error_set(err, EINVAL,
				 "thread policy require takes whole cores: %u vCPUs is not a "
				 "multiple of %u threads per core", v, w);
	unsigned need = tp == ADMIT_THREAD_REQUIRE ? v / w : v;
	const char *noun1 = tp == ADMIT_THREAD_PREFER ? "pCPU"
			  : tp == ADMIT_THREAD_ISOLATE ? "core" : "whole core";
	const char *nounN = tp == ADMIT_THREAD_PREFER ? "pCPUs"
			  : tp == ADMIT_THREAD_ISOLATE ? "cores" : "whole cores";
	_cleanup_free_ char *req_vcpus = tp == ADMIT_THREAD_REQUIRE
		? xasprintf(" (%u vCPUs)", v) : xstrdup("");

	unsigned total = 0;
	for (size_t i = 0; i < n; i++)
		total += dedicated_units(st, i, tp, false);
	if (need > total) {
		unsigned touching = 0;
		for (size_t c = 0; c < t->n_cores; c++)
			if (cpuset_intersects(&t->cores[c].threads, &st->h->pools->dedicated))
				touching++;
		const char *why = "";
		if (tp == ADMIT_THREAD_ISOLATE && touching > total)
			why = " (a core counts only when all its threads are in host.dedicated_cpus)";
		else if (tp == ADMIT_THREAD_REQUIRE && touching > total)
			why = " (a core counts only when all its threads are online and in "
			      "host.dedicated_cpus)";
		return error_set(err, EINVAL, "dedicated pool has %u %s usable with %s, %u "
				 "requested%s%s", total, total == 1 ? noun1 : nounN, tpn, need,
				 req_vcpus, why);
	}
	if (check_only)
		return 0;

	_cleanup_free_ unsigned *have = xcalloc(n, sizeof(*have));
	unsigned free_sum = 0;
	for (size_t i = 0; i < n; i++) {
		have[i] = dedicated_units(st, i, tp, true);
		free_sum += have[i];
	}
	_cleanup_free_ struct choice *ch = xcalloc(n, sizeof(*ch));
	size_t k = choose_nodes(have, have, n, need, ch);
	if (k == 0) {
		_cleanup_free_ char *msg = xasprintf(
			"dedicated pool: %u free %s with %s, %u requested%s", free_sum,
			free_sum == 1 ? noun1 : nounN, tpn, need, req_vcpus);
		if (n > 1) {
			for (size_t i = 0; i < n; i++)
				append(&msg, "%snode %u: %u", i == 0 ? " (" : ", ",
				       t->nodes[i].id, have[i]);
			append(&msg, ")");
		}
		return error_set(err, EBUSY, "%s", msg);
	}
	if (k > ADMIT_SPAN_MAX)
		return error_set(err, EINVAL, "%u vCPUs would span %zu NUMA nodes, at most %d",
				 v, k, ADMIT_SPAN_MAX);
	for (size_t j = 0; j < k; j++)
		dedicated_take(st, ch[j].ni, tp, ch[j].units, &res->pcpus);
	for (size_t i = 0; i < n; i++) {
		struct cpuset s;
		cpuset_and(&s, &res->pcpus, &t->nodes[i].cpus);
		unsigned c = cpuset_count(&s);
		if (c > 0)
			res->shares[res->n_shares++] = (struct admit_share){ t->nodes[i].id, c };
	}
	return 0;
}

static int check_request(const struct admit_host *h, const struct admit_tenant *tenant,
			 const struct admit_request *req, const struct admit_reservation *r,
			 struct error **err)
{
	if (!h || !h->topo || !h->pools || !tenant || !req)
		return error_set(err, EINVAL, "admission: missing input");
	if (!(h->cpu_ratio > 0) || !isfinite(h->cpu_ratio))
		return error_set(err, EINVAL, "admission: overcommit ratio %g is not positive",
				 h->cpu_ratio);
	if (strcmp(tenant->name, req->tenant) != 0)
		return error_set(err, EINVAL, "request for tenant %s, quota of tenant %.64s",
				 req->tenant, tenant->name);
	if (req->vcpus < 1 || req->vcpus > VM_VCPUS_MAX)
		return error_set(err, EINVAL, "vcpus %u is out of range (1..%d)",
				 req->vcpus, VM_VCPUS_MAX);
	if (req->memory_set && req->memory_bytes <= 0)
		return error_set(err, EINVAL, "memory %" PRId64 " is not positive",
				 req->memory_bytes);
	if ((unsigned)req->cpu_policy >= ADMIT_CPU_POLICY_LAST)
		return error_set(err, EINVAL, "invalid cpu policy %d",
				 (int)req->cpu_policy);
	if ((unsigned)req->thread_policy >= ADMIT_THREAD_POLICY_LAST)
		return error_set(err, EINVAL, "invalid thread policy %d",
				 (int)req->thread_policy);
	if (req->cpu_policy == ADMIT_CPU_SHARED && req->thread_policy != ADMIT_THREAD_PREFER)
		return error_set(err, EINVAL,
				 "thread policy %s needs cpu policy dedicated",
				 thread_policy_names[req->thread_policy]);
	if (r)
		return error_set(err, EEXIST, "already admitted (tenant %s, %u vCPUs, %s)",
				 r->tenant, r->vcpus,
				 admit_cpu_policy_name(r->cpu_policy)
					 ? admit_cpu_policy_name(r->cpu_policy) : "?");
	if (req->vcpus > h->topo->n_cpus)
		return error_set(err, EINVAL, "%u vCPUs requested, the host has %u online CPU%s",
				 req->vcpus, h->topo->n_cpus,
				 plural(h->topo->n_cpus, "", "s"));
	if (req->memory_set && h->topo->mem_total_bytes > 0 &&
	    (uint64_t)req->memory_bytes > h->topo->mem_total_bytes) {
		_cleanup_free_ char *m = format_size(req->memory_bytes);
		_cleanup_free_ char *hm = format_size((int64_t)h->topo->mem_total_bytes);
		return error_set(err, EINVAL, "%s of memory requested, the host has %s",
				 m, hm);
	}
	return 0;
}

static int check_quota(const struct admit_tenant *tenant, const struct admit_request *req,
		       struct error **err)
{
	if ((uint64_t)tenant->vcpus_used + req->vcpus > tenant->vcpus_quota)
		return error_set(err, EBUSY, "tenant %s: %u of %u vCPUs used, %u requested",
				 tenant->name, tenant->vcpus_used, tenant->vcpus_quota, req->vcpus);
	if (tenant->memory_set && req->memory_set &&
	    (tenant->memory_used_bytes > tenant->memory_quota_bytes ||
	     req->memory_bytes > tenant->memory_quota_bytes - tenant->memory_used_bytes)) {
		_cleanup_free_ char *u = format_size(tenant->memory_used_bytes);
		_cleanup_free_ char *q = format_size(tenant->memory_quota_bytes);
		_cleanup_free_ char *m = format_size(req->memory_bytes);
		return error_set(err, EBUSY, "tenant %s: %s of %s memory used, %s requested",
				 tenant->name, u, q, m);
	}
	return 0;
}

int admit_vm(const struct admit_host *host, const struct admit_tenant *tenant,
	     const struct admit_request *req, struct admit_placement *out,
	     struct error **err)
{
	if (!host || !host->topo || !req)
		return admit_vm_ledger(host, NULL, NULL, tenant, req, out, err);
	const struct admit_reservation *existing = NULL;
	for (size_t i = 0; req->vm && i < host->n_reservations && !existing; i++)
		if (strcmp(host->reservations[i].vm, req->vm) == 0)
			existing = &host->reservations[i];
	struct admit_ledger l;
	ledger_of_host(&l, host);
	int rc = admit_vm_ledger(host, &l, existing, tenant, req, out, err);
	admit_ledger_clear(&l);
	return rc;
}

int admit_vm_ledger(const struct admit_host *host, const struct admit_ledger *ledger,
		    const struct admit_reservation *existing, const struct admit_tenant *tenant,
		    const struct admit_request *req, struct admit_placement *out,
		    struct error **err)
{
	if (!req)
		return error_set(err, EINVAL, "admission: no request");
	if (name_check("VM name", req->vm, err) < 0 ||
	    name_check("tenant name", req->tenant, err) < 0)
		return -1;
	if (check_request(host, tenant, req, existing, err) < 0)
		return error_wrap(err, "vm %s not admitted", req->vm);
	if (!ledger || ledger->topo != host->topo)
		return error_set(err, EINVAL, "vm %s not admitted: admission: the ledger is not "
				 "of this host's topology", req->vm);

	struct state st;
	state_from_ledger(&st, host, ledger);
	_cleanup_free_ struct admit_reservation *res = xcalloc(1, sizeof(*res));
	int (*place)(const struct state *, const struct admit_request *,
		     struct admit_reservation *, bool, struct error **) =
		req->cpu_policy == ADMIT_CPU_SHARED ? place_shared : place_dedicated;

	/* impossible here (EINVAL) before the quota, the quota before capacity */
	int rc = place(&st, req, res, true, err);
	if (rc == 0)
		rc = check_quota(tenant, req, err);
	if (rc == 0)
		rc = place(&st, req, res, false, err);
	state_clear(&st);
	if (rc < 0)
		return error_wrap(err, "vm %s not admitted", req->vm);

	snprintf(res->vm, sizeof(res->vm), "%s", req->vm);
	snprintf(res->tenant, sizeof(res->tenant), "%s", req->tenant);
	res->vcpus = req->vcpus;
	res->memory_set = req->memory_set;
	res->memory_bytes = req->memory_set ? req->memory_bytes : 0;
	res->cpu_policy = req->cpu_policy;
	res->thread_policy = req->thread_policy;

	out->res = *res;
	admit_pin(host, res, &out->cpus, &out->mems);
	out->spans = res->n_shares > 1;
	return 0;
}

void admit_pin(const struct admit_host *host, const struct admit_reservation *r,
	       struct cpuset *cpus, struct cpuset *mems)
{
	const struct topology *t = host->topo;
	cpuset_zero(cpus);
	cpuset_zero(mems);
	size_t n_shares = r->n_shares < ADMIT_SPAN_MAX ? r->n_shares : ADMIT_SPAN_MAX;
	for (size_t s = 0; s < n_shares; s++) {
		cpuset_set(mems, r->shares[s].node);
		const struct topology_node *node = topology_node(t, r->shares[s].node);
		if (node && r->cpu_policy == ADMIT_CPU_SHARED) {
			struct cpuset c;
			cpuset_and(&c, &node->cpus, &host->pools->shared);
			cpuset_or(cpus, cpus, &c);
		}
	}
	if (r->cpu_policy == ADMIT_CPU_DEDICATED)
		*cpus = r->pcpus;
}

int admit_vcpu_pcpu(const struct admit_reservation *r, unsigned index)
{
	if (r->cpu_policy != ADMIT_CPU_DEDICATED)
		return -1;
	for (unsigned c = 0; c < CPULIST_MAX_CPUS; c++)
		if (cpuset_isset(&r->pcpus, c) && index-- == 0)
			return (int)c;
	return -1;
}

/* --- checking persisted reservations ------------------------------------------ */

static int check_reservation(const struct admit_host *h, const struct admit_reservation *r,
			     struct error **err)
{
	const struct topology *t = h->topo;
	if (!name_valid(r->tenant))
		return error_set(err, EINVAL, "invalid tenant name");
	if (r->vcpus < 1 || r->vcpus > VM_VCPUS_MAX)
		return error_set(err, EINVAL, "vcpus %u is out of range (1..%d)", r->vcpus,
				 VM_VCPUS_MAX);
	if (r->memory_set && r->memory_bytes <= 0)
		return error_set(err, EINVAL, "memory is not positive");
	if ((unsigned)r->cpu_policy >= ADMIT_CPU_POLICY_LAST ||
	    (unsigned)r->thread_policy >= ADMIT_THREAD_POLICY_LAST)
		return error_set(err, EINVAL, "invalid cpu or thread policy");
	if (r->cpu_policy == ADMIT_CPU_SHARED && r->thread_policy != ADMIT_THREAD_PREFER)
		return error_set(err, EINVAL, "shared with thread policy %s",
				 thread_policy_names[r->thread_policy]);
	if (r->n_shares < 1 || r->n_shares > ADMIT_SPAN_MAX)
		return error_set(err, EINVAL, "%zu node shares (1..%d)", r->n_shares,
				 ADMIT_SPAN_MAX);
	uint64_t sum = 0;
	for (size_t s = 0; s < r->n_shares; s++) {
		if (s > 0 && r->shares[s].node <= r->shares[s - 1].node)
			return error_set(err, EINVAL, "node shares are not in ascending order");
		if (r->shares[s].vcpus < 1)
			return error_set(err, EINVAL, "no vCPUs on node %u", r->shares[s].node);
		if (!topology_node(t, r->shares[s].node))
			return error_set(err, EINVAL, "node %u does not exist", r->shares[s].node);
		sum += r->shares[s].vcpus;
	}
	if (sum != r->vcpus)
		return error_set(err, EINVAL, "node shares sum to %" PRIu64 ", not %u vCPUs",
				 sum, r->vcpus);
	if (r->cpu_policy == ADMIT_CPU_SHARED) {
		if (!cpuset_empty(&r->pcpus))
			return error_set(err, EINVAL, "a shared VM holds dedicated pCPUs");
		return 0;
	}

	_cleanup_free_ char *pl = cpulist_format(&r->pcpus);
	if (cpuset_count(&r->pcpus) != r->vcpus)
		return error_set(err, EINVAL, "pCPUs %s are not %u", pl, r->vcpus);
	struct cpuset out;
	cpuset_andnot(&out, &r->pcpus, &h->pools->dedicated);
	if (!cpuset_empty(&out)) {
		_cleanup_free_ char *ol = cpulist_format(&out);
		return error_set(err, EINVAL, "pCPUs %s are not in the dedicated pool", ol);
	}
	for (size_t s = 0; s < r->n_shares; s++) {
		struct cpuset on;
		cpuset_and(&on, &r->pcpus, &topology_node(t, r->shares[s].node)->cpus);
		if (cpuset_count(&on) != r->shares[s].vcpus)
			return error_set(err, EINVAL, "pCPUs %s do not match the node shares", pl);
	}
	for (size_t c = 0; c < t->n_cores; c++) {
		const struct topology_core *core = &t->cores[c];
		struct cpuset mine;
		cpuset_and(&mine, &core->threads, &r->pcpus);
		unsigned k = cpuset_count(&mine);
		if (k == 0)
			continue;
		_cleanup_free_ char *cl = cpulist_format(&core->threads);
		if (r->thread_policy == ADMIT_THREAD_ISOLATE && (k > 1 || !core_in(core, &h->pools->dedicated)))
			return error_set(err, EINVAL, "isolate breached on core %s", cl);
		if (r->thread_policy == ADMIT_THREAD_REQUIRE && k != core->n_threads)
			return error_set(err, EINVAL, "require breached on core %s", cl);
	}
	return 0;
}

int admit_host_check(const struct admit_host *h, struct error **err)
{
	const struct topology *t = h->topo;
	for (size_t i = 0; i < h->n_reservations; i++) {
		const struct admit_reservation *r = &h->reservations[i];
		if (!name_valid(r->vm))
			return error_set(err, EINVAL, "reservation %zu: invalid VM name", i);
		if (check_reservation(h, r, err) < 0)
			return error_wrap(err, "reservation of vm %s", r->vm);
		for (size_t j = 0; j < i; j++) {
			const struct admit_reservation *o = &h->reservations[j];
			if (strcmp(o->vm, r->vm) == 0)
				return error_set(err, EINVAL, "vm %s has two reservations", r->vm);
			if (r->cpu_policy != ADMIT_CPU_DEDICATED ||
			    o->cpu_policy != ADMIT_CPU_DEDICATED)
				continue;
			struct cpuset both;
			cpuset_and(&both, &r->pcpus, &o->pcpus);
			if (!cpuset_empty(&both)) {
				_cleanup_free_ char *l = cpulist_format(&both);
				return error_set(err, EINVAL, "vms %s and %s both hold pCPUs %s",
						 o->vm, r->vm, l);
			}
			/* a core an isolate VM holds has no one else's vCPU */
			for (int side = 0; side < 2; side++) {
				const struct admit_reservation *iso = side ? o : r;
				const struct admit_reservation *other = side ? r : o;
				if (iso->thread_policy != ADMIT_THREAD_ISOLATE)
					continue;
				for (size_t c = 0; c < t->n_cores; c++) {
					const struct topology_core *core = &t->cores[c];
					if (cpuset_intersects(&core->threads, &iso->pcpus) &&
					    cpuset_intersects(&core->threads, &other->pcpus)) {
						_cleanup_free_ char *cl = cpulist_format(&core->threads);
						return error_set(err, EINVAL,
								 "vm %s (isolate) holds core %s, "
								 "vm %s has a pCPU on it",
								 iso->vm, cl, other->vm);
					}
				}
			}
		}
	}
	return 0;
}

/* --- usage ---------------------------------------------------------------------- */

void admit_usage_compute(const struct admit_host *host, struct admit_usage *out)
{
	const struct topology *t = host->topo;
	struct state st;
	state_init(&st, host);
	memset(out, 0, sizeof(*out));
	out->n_nodes = t->n_nodes;
	out->nodes = xcalloc(t->n_nodes, sizeof(*out->nodes));
	out->total.node = UINT32_MAX;
	const struct cpuset *D = &host->pools->dedicated;
	for (size_t i = 0; i < t->n_nodes; i++) {
		struct admit_node_usage *u = &out->nodes[i];
		const struct cpuset *nc = &t->nodes[i].cpus;
		struct cpuset s;
		u->node = t->nodes[i].id;
		u->shared_pcpus = st.nodes[i].shared_pcpus;
		u->shared_capacity = st.nodes[i].cap;
		u->shared_admitted = st.nodes[i].admitted;
		u->vms = st.nodes[i].vms;
		cpuset_and(&s, D, nc);
		u->dedicated_pcpus = cpuset_count(&s);
		cpuset_and(&s, &st.used, nc);
		u->dedicated_used = cpuset_count(&s);
		cpuset_and(&s, &st.blocked, nc);
		u->dedicated_blocked = cpuset_count(&s);
		cpuset_and(&s, D, nc);
		cpuset_andnot(&s, &s, &st.busy);
		u->dedicated_free = cpuset_count(&s);
		u->dedicated_free_cores = dedicated_units(&st, i, ADMIT_THREAD_ISOLATE, true);

		out->total.shared_pcpus += u->shared_pcpus;
		out->total.shared_capacity += u->shared_capacity;
		out->total.shared_admitted += u->shared_admitted;
		out->total.dedicated_pcpus += u->dedicated_pcpus;
		out->total.dedicated_used += u->dedicated_used;
		out->total.dedicated_blocked += u->dedicated_blocked;
		out->total.dedicated_free += u->dedicated_free;
		out->total.dedicated_free_cores += u->dedicated_free_cores;
	}
	out->total.vms = (uint32_t)host->n_reservations;
	out->dedicated_used = st.used;
	out->dedicated_blocked = st.blocked;
	state_clear(&st);
}

void admit_usage_clear(struct admit_usage *u)
{
	free(u->nodes);
	memset(u, 0, sizeof(*u));
}

/* --- persisted forms and descriptions ------------------------------------------ */

char *admit_shares_format(const struct admit_reservation *r)
{
	char *s = xstrdup("");
	size_t n = r->n_shares < ADMIT_SPAN_MAX ? r->n_shares : ADMIT_SPAN_MAX;
	for (size_t i = 0; i < n; i++)
		append(&s, "%s%u:%u", i ? "," : "", r->shares[i].node, r->shares[i].vcpus);
	return s;
}

int admit_shares_parse(const char *s, struct admit_reservation *r, struct error **err)
{
	if (!s)
		return error_set(err, EINVAL, "invalid node shares: no text");
	struct admit_share tmp[ADMIT_SPAN_MAX];
	size_t n = 0;
	const char *p = s;
	while (*p) {
		uint64_t v[2];
		for (int f = 0; f < 2; f++) {
			if (*p < '0' || *p > '9')
				return error_set(err, EINVAL, "invalid node shares '%.80s': expected "
						 "NODE:VCPUS[,NODE:VCPUS...] at offset %td", s, p - s);
			v[f] = 0;
			for (; *p >= '0' && *p <= '9'; p++) {
				v[f] = v[f] * 10 + (uint64_t)(*p - '0');
				if (v[f] > UINT32_MAX)
					return error_set(err, ERANGE, "invalid node shares '%.80s': "
							 "number out of range", s);
			}
			if (f == 0 && *p++ != ':')
				return error_set(err, EINVAL, "invalid node shares '%.80s': expected "
						 "':' at offset %td", s, p - 1 - s);
		}
		if (n == ADMIT_SPAN_MAX)
			return error_set(err, EINVAL, "invalid node shares '%.80s': more than %d",
					 s, ADMIT_SPAN_MAX);
		if (v[1] == 0 || (n > 0 && v[0] <= tmp[n - 1].node))
			return error_set(err, EINVAL, "invalid node shares '%.80s': nodes must "
					 "ascend and counts be at least 1", s);
		tmp[n++] = (struct admit_share){ (uint32_t)v[0], (uint32_t)v[1] };
		if (*p == ',') {
			p++;
			if (!*p)
				return error_set(err, EINVAL, "invalid node shares '%.80s': "
						 "trailing ','", s);
		} else if (*p) {
			return error_set(err, EINVAL, "invalid node shares '%.80s': expected ',' "
					 "at offset %td", s, p - s);
		}
	}
	memcpy(r->shares, tmp, n * sizeof(*tmp));
	r->n_shares = n;
	return 0;
}

char *admit_placement_describe(const struct admit_host *host, const struct admit_reservation *r)
{
	struct cpuset cpus, mems;
	admit_pin(host, r, &cpus, &mems);
	_cleanup_free_ char *nodes = cpulist_format(&mems);
	_cleanup_free_ char *cl = cpulist_format(&cpus);
	bool many = r->n_shares > 1;
	if (r->cpu_policy == ADMIT_CPU_DEDICATED)
		return xasprintf("dedicated pool (%s), node%s %s, pCPUs %s",
				 admit_thread_policy_name(r->thread_policy)
					 ? admit_thread_policy_name(r->thread_policy) : "?",
				 many ? "s" : "", nodes, cl);
	if (!many)
		return xasprintf("shared pool, node %s (CPUs %s)", nodes, cl);
	_cleanup_free_ char *split = NULL;
	for (size_t i = 0; i < r->n_shares && i < ADMIT_SPAN_MAX; i++)
		append(&split, "%s%u: %u", i ? ", " : "", r->shares[i].node, r->shares[i].vcpus);
	return xasprintf("shared pool, nodes %s (%s vCPUs; CPUs %s)", nodes, split, cl);
}
