/* registry.c - the VM lifecycle (see registry.h): admission, registration
 * and release for the API; the inventory of a tick and what the discovery
 * sources saw merged into it by one precedence rule; the grace period of
 * gone VMs; the faults that quarantine one VM without stopping the rest.
 * Writes go through the store, one transaction per change; decisions on
 * quota and capacity go through admit_vm() (pure). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vcpud/cgroup.h"
#include "vcpud/discover.h"
#include "vcpud/procfs.h"
#include "vcpud/ledger.h"
#include "vcpud/log.h"
#include "vcpud/registry.h"
#include "vcpud/util.h"

struct fault {
	char name[NAME_MAX_LEN + 1];
	enum registry_fault_kind kind;
	char *msg;
	int64_t since_ms;
	bool touched;              /* set again since its kind's begin */
};

/* A tenant's use in the ledger: what its reservations hold. */
struct ledger_tenant {
	char name[NAME_MAX_LEN + 1];
	uint64_t vcpus;
	int64_t memory_bytes;
	size_t n;                  /* its reservations */
};

/* The admission ledger in memory: the parsed reservations (by VM name),
 * each tenant's use and the host's use (struct admit_ledger), so that an
 * admit costs the same with 10 VMs as with 1,000. The store stays the
 * truth: the ledger is read from it when first needed and again from each
 * tick's inventory (registry_ledger_resync), and changed only after a
 * store write succeeded, by the function that made it. Decision and write happen in one call on
 * the daemon's one thread (the API server runs in its loop), so nothing
 * changes the reservations between the check and the write. */
struct res_ledger {
	bool loaded;
	struct admit_reservation **res; /* owned, sorted by VM name */
	size_t n_res, cap_res;
	struct ledger_tenant *tenants;  /* sorted by name; entries with n = 0 stay */
	size_t n_tenants;
	struct admit_ledger use;
};

struct registry {
	struct store *store;
	char *host_root;
	const struct topology *topo;
	const struct pools *pools;
	double cpu_ratio;
	uint32_t gone_grace_s;
	int64_t (*now_ms)(void);
	struct fault *faults;
	size_t n_faults;
	/* messages already logged (warnings that would repeat every tick) */
	char **said;
	size_t n_said;
	struct res_ledger ledger;
	/* registered VMs whose vCPU threads were read from /proc: the task
	 * directory is read again only when the process's thread count
	 * changes or the entry falls due (THREADS_RECHECK_PASSES) */
	struct threads_seen *seen;
	size_t n_seen, cap_seen;
	struct name_index seen_ix;
	uint32_t passes;           /* registry_refresh_registered() calls */
	bool pidfds;               /* host_root/proc is this system's procfs */
	/* the inventory as last read from the store, and the store's mark
	 * then (registry_inventory_load) */
	struct inventory inv_cache;
	struct store_mark inv_mark;
	bool inv_cached;
	bool inv_served_cached;    /* the last load was a copy of the cache */
	/* the ledger was found to hold the store's reservations at inv_mark,
	 * and has not changed since (ledger_gen counts its changes) */
	uint64_t ledger_gen;
	bool ledger_checked;
	uint64_t ledger_checked_gen;
	struct store_mark ledger_checked_mark;
	bool fleet_quotas;         /* tenants' quotas are the fleet ledger's */
	struct pollfd *pfds;       /* one pass's poll of the pidfds */
	size_t pfds_cap;
	bool thread_news;          /* registry_thread_news() brings thread counts */
};

/* Every this many passes (spread per VM) a steady VM's vCPU threads are
 * read from its task directory again, whatever its thread count says (a
 * thread that exited while another started in one interval); a VM watched
 * by a pidfd is re-read less often, and its stat (the thread count) is
 * read every STAT_RECHECK_PASSES only: the pidfd tells an exit at once. */
#define THREADS_RECHECK_PASSES 10
#define THREADS_RECHECK_PASSES_WATCHED 60
#define STAT_RECHECK_PASSES 10
/* With thread news from the sampler (registry_thread_news, BPF): a safety
 * net only, for a change the news cannot see (a thread replaced by one of
 * the same tid sum) */
#define THREADS_RECHECK_PASSES_NEWS 600
/* A process's thread count or ids changing (a QEMU's I/O worker threads
 * come and go) has its task directory read at most this often; a vCPU
 * thread gone, at once */
#define THREADS_NEWS_MIN_PASSES 10

struct threads_seen {
	char name[NAME_MAX_LEN + 1];
	pid_t pid;
	uint64_t start_time;
	unsigned num_threads;
	uint32_t due;              /* the pass that reads its task directory again */
	uint32_t stat_due;         /* watched: the pass that reads its stat again */
	uint32_t pass;             /* the pass that last looked at it */
	int pidfd;                 /* watches pid (real procfs only), -1 none */
	/* its pidfd said the process (pid, start_time) exited: the VM is
	 * gone, whatever has the PID now. A start time counts clock ticks
	 * (10 ms), so a PID reused within one tick looks the same in /proc;
	 * only the pidfd, taken at registration, tells them apart. */
	bool exited;
	/* the sampler's sum of the process's thread ids since its task
	 * directory was last read (0: none yet), and the pass of that read */
	uint64_t tid_sum;
	uint32_t read_pass;
};

static int64_t real_now_ms(void)
{
	return now_real_ns() / 1000000;
}

static void ledger_reset(struct registry *r);

int registry_new(const struct registry_config *cfg, struct registry **out, struct error **err)
{
	if (!cfg || !cfg->store)
		return error_set(err, EINVAL, "registry: no store given");
	struct registry *r = xcalloc(1, sizeof(*r));
	r->store = cfg->store;
	r->host_root = xstrdup(cfg->host_root ? cfg->host_root : "/");
	r->topo = cfg->topo;
	r->pools = cfg->pools;
	r->cpu_ratio = cfg->cpu_ratio;
	r->gone_grace_s = cfg->gone_grace_s;
	r->now_ms = real_now_ms;
	r->pidfds = procfs_is_real(r->host_root);
	*out = r;
	return 0;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_faults; i++)
		free(r->faults[i].msg);
	free(r->faults);
	for (size_t i = 0; i < r->n_said; i++)
		free(r->said[i]);
	free(r->said);
	for (size_t i = 0; i < r->n_seen; i++)
		if (r->seen[i].pidfd >= 0)
			close(r->seen[i].pidfd);
	free(r->seen);
	free(r->pfds);
	inventory_clear(&r->inv_cache);
	name_index_clear(&r->seen_ix);
	ledger_reset(r);
	free(r->host_root);
	free(r);
}

void registry_configure(struct registry *r, const struct pools *pools, double cpu_ratio,
			uint32_t gone_grace_s)
{
	r->pools = pools;
	r->cpu_ratio = cpu_ratio;
	r->gone_grace_s = gone_grace_s;
}

void registry_set_clock(struct registry *r, int64_t (*now_ms)(void))
{
	r->now_ms = now_ms ? now_ms : real_now_ms;
}

/* Log a warning the first time this exact text comes up (a refusal that
 * would otherwise repeat at every tick). */
static void warn_once(struct registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_once(struct registry *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		abort();
	va_end(ap);
	for (size_t i = 0; i < r->n_said; i++)
		if (strcmp(r->said[i], m) == 0) {
			log_debug("%s (again)", m);
			return;
		}
	log_warn("%s", m);
	/* bounded: a flood of distinct messages forgets the oldest */
	if (r->n_said == 256) {
		free(r->said[0]);
		memmove(r->said, r->said + 1, (r->n_said - 1) * sizeof(*r->said));
		r->n_said--;
	}
	r->said = xrealloc(r->said, (r->n_said + 1) * sizeof(*r->said));
	r->said[r->n_said++] = steal_ptr(&m);
}

/* --- the ledger: store rows <-> admit reservations --------------------------- */

static int res_from_store(const struct store_reservation *s, struct admit_reservation *r,
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

/* The row for an admit reservation (its texts on the heap: clear it). */
static void res_to_store(const struct admit_reservation *r, struct store_reservation *s)
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
	s->shares = admit_shares_format(r);
	s->pcpus = cpulist_format(&r->pcpus);
}

/* Parse rows into *out; bad rows are skipped with a warning (once). */
static void res_parse_all(struct registry *r, const struct store_reservation *rows, size_t nr,
			  struct admit_reservation **out, size_t *n)
{
	struct admit_reservation *v = xcalloc(nr ? nr : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < nr; i++) {
		_cleanup_error_ struct error *e = NULL;
		if (res_from_store(&rows[i], &v[k], &e) < 0) {
			warn_once(r, "admission: %s: skipped", e->msg);
			continue;
		}
		k++;
	}
	*out = v;
	*n = k;
}

int registry_ledger_load(struct registry *r, struct admit_reservation **out, size_t *n,
			 struct error **err)
{
	*out = NULL;
	*n = 0;
	struct store_reservation *rows = NULL;
	size_t nr = 0;
	if (store_reservation_list(r->store, &rows, &nr, err) < 0)
		return -1;
	res_parse_all(r, rows, nr, out, n);
	store_reservations_free(rows, nr);
	return 0;
}

/* --- the ledger in memory (struct res_ledger) -------------------------------------- */

/* Index of `vm` in the sorted reservations (*found), or where it goes. */
static size_t ledger_pos(const struct res_ledger *l, const char *vm, bool *found)
{
	size_t lo = 0, hi = l->n_res;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->res[mid]->vm, vm);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static const struct admit_reservation *ledger_find(const struct registry *r, const char *vm)
{
	bool found;
	size_t i = ledger_pos(&r->ledger, vm, &found);
	return found ? r->ledger.res[i] : NULL;
}

/* The tenant's entry, made when missing. */
static struct ledger_tenant *ledger_tenant(struct res_ledger *l, const char *name)
{
	size_t lo = 0, hi = l->n_tenants;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->tenants[mid].name, name);
		if (c == 0)
			return &l->tenants[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	l->tenants = xrealloc(l->tenants, (l->n_tenants + 1) * sizeof(*l->tenants));
	memmove(&l->tenants[lo + 1], &l->tenants[lo], (l->n_tenants - lo) * sizeof(*l->tenants));
	l->n_tenants++;
	struct ledger_tenant *t = &l->tenants[lo];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* Count a reservation in (+1) or out (-1) of its tenant's and the host's use. */
static void ledger_account(struct registry *r, const struct admit_reservation *res, int delta)
{
	struct res_ledger *l = &r->ledger;
	struct ledger_tenant *t = ledger_tenant(l, res->tenant);
	int64_t mem = res->memory_set ? res->memory_bytes : 0;
	if (delta > 0) {
		t->vcpus += res->vcpus;
		t->memory_bytes += mem;
		t->n++;
	} else {
		t->vcpus -= t->vcpus >= res->vcpus ? res->vcpus : t->vcpus;
		t->memory_bytes -= mem;
		t->n -= t->n ? 1 : 0;
	}
	if (l->use.topo)
		(delta > 0 ? admit_ledger_add : admit_ledger_remove)(&l->use, res);
}

static void ledger_reset(struct registry *r)
{
	struct res_ledger *l = &r->ledger;
	r->ledger_gen++;
	for (size_t i = 0; i < l->n_res; i++)
		free(l->res[i]);
	free(l->res);
	free(l->tenants);
	admit_ledger_clear(&l->use);
	memset(l, 0, sizeof(*l));
}

/* A reservation just stored (or read): in the ledger, replacing one of the
 * same VM. Nothing while the ledger is not loaded (it will be read whole). */
static void ledger_put(struct registry *r, const struct admit_reservation *res)
{
	struct res_ledger *l = &r->ledger;
	if (!l->loaded)
		return;
	r->ledger_gen++;
	bool found;
	size_t i = ledger_pos(l, res->vm, &found);
	if (found) {
		ledger_account(r, l->res[i], -1);
	} else {
		if (l->n_res == l->cap_res) {
			l->cap_res = l->cap_res ? l->cap_res * 2 : 64;
			l->res = xrealloc(l->res, l->cap_res * sizeof(*l->res));
		}
		memmove(&l->res[i + 1], &l->res[i], (l->n_res - i) * sizeof(*l->res));
		l->n_res++;
		l->res[i] = xmalloc(sizeof(*l->res[i]));
	}
	*l->res[i] = *res;
	ledger_account(r, l->res[i], +1);
}

/* A row just stored, as the next load will read it. */
static void ledger_put_row(struct registry *r, const struct store_reservation *row)
{
	struct admit_reservation ar;
	_cleanup_error_ struct error *e = NULL;
	if (res_from_store(row, &ar, &e) < 0) {
		/* what the next load skips too; ours always parse */
		warn_once(r, "admission: %s: skipped", e->msg);
		return;
	}
	ledger_put(r, &ar);
}

/* A reservation just deleted from the store. */
static void ledger_drop(struct registry *r, const char *vm)
{
	struct res_ledger *l = &r->ledger;
	bool found;
	size_t i = ledger_pos(l, vm, &found);
	if (!found)
		return;
	r->ledger_gen++;
	ledger_account(r, l->res[i], -1);
	free(l->res[i]);
	memmove(&l->res[i], &l->res[i + 1], (l->n_res - i - 1) * sizeof(*l->res));
	l->n_res--;
}

/* The ledger from parsed reservations (a fresh read of the store). */
static void ledger_rebuild(struct registry *r, const struct admit_reservation *res, size_t n)
{
	ledger_reset(r);
	struct res_ledger *l = &r->ledger;
	if (r->topo)
		admit_ledger_init(&l->use, r->topo);
	l->loaded = true;
	for (size_t i = 0; i < n; i++)
		ledger_put(r, &res[i]);
}

/* Read the ledger from the store unless it is loaded. */
static int ledger_ensure(struct registry *r, struct error **err)
{
	if (r->ledger.loaded)
		return 0;
	_cleanup_free_ struct admit_reservation *res = NULL;
	size_t n = 0;
	if (registry_ledger_load(r, &res, &n, err) < 0)
		return -1;
	ledger_rebuild(r, res, n);
	return 0;
}

static bool res_same(const struct admit_reservation *a, const struct admit_reservation *b)
{
	return strcmp(a->vm, b->vm) == 0 && strcmp(a->tenant, b->tenant) == 0 &&
	       a->vcpus == b->vcpus && a->memory_set == b->memory_set &&
	       (!a->memory_set || a->memory_bytes == b->memory_bytes) &&
	       a->cpu_policy == b->cpu_policy && a->thread_policy == b->thread_policy &&
	       a->n_shares == b->n_shares &&
	       memcmp(a->shares, b->shares, a->n_shares * sizeof(*a->shares)) == 0 &&
	       cpuset_equal(&a->pcpus, &b->pcpus);
}

int registry_ledger_check(struct registry *r, struct error **err)
{
	_cleanup_free_ struct admit_reservation *res = NULL;
	size_t n = 0;
	if (registry_ledger_load(r, &res, &n, err) < 0)
		return -1;
	if (!r->ledger.loaded)
		return 0; /* read whole when first needed: nothing to differ */
	/* a fresh ledger of what the store holds, swapped in for the compare */
	struct res_ledger mine = r->ledger;
	memset(&r->ledger, 0, sizeof(r->ledger));
	ledger_rebuild(r, res, n);
	struct res_ledger fresh = r->ledger;
	r->ledger = mine;
	_cleanup_free_ char *why = NULL;
	if (fresh.n_res != mine.n_res)
		why = xasprintf("%zu reservations in memory, %zu in the store", mine.n_res,
				fresh.n_res);
	for (size_t i = 0; !why && i < fresh.n_res; i++)
		if (!res_same(fresh.res[i], mine.res[i]))
			why = xasprintf("the reservation of VM %s differs", fresh.res[i]->vm);
	for (size_t i = 0; !why && i < fresh.n_tenants; i++) {
		const struct ledger_tenant *f = &fresh.tenants[i];
		struct ledger_tenant *m = ledger_tenant(&r->ledger, f->name);
		if (f->vcpus != m->vcpus || f->memory_bytes != m->memory_bytes || f->n != m->n)
			why = xasprintf("tenant %s: %" PRIu64 " vCPUs in %zu reservations in memory, %"
					PRIu64 " in %zu in the store", f->name, m->vcpus, m->n,
					f->vcpus, f->n);
	}
	for (size_t i = 0; !why && i < r->ledger.n_tenants; i++)
		if (r->ledger.tenants[i].n && !ledger_tenant(&fresh, r->ledger.tenants[i].name)->n)
			why = xasprintf("tenant %s: reservations in memory, none in the store",
					r->ledger.tenants[i].name);
	if (!why && fresh.use.topo && !admit_ledger_equal(&fresh.use, &r->ledger.use))
		why = xstrdup("the host's use (nodes, pCPUs) differs");
	struct res_ledger keep = r->ledger;
	r->ledger = fresh;
	ledger_reset(r);
	r->ledger = keep;
	if (why)
		return error_set(err, EIO, "admission ledger out of step with the store: %s", why);
	return 0;
}

struct admit_host registry_host(const struct registry *r, const struct admit_reservation *res,
				size_t n)
{
	return (struct admit_host){ r->topo, r->pools, r->cpu_ratio, res, n };
}

/* Decide a request for tenant t (its quota) against the ledger. */
static int decide(struct registry *r, const struct tenant *t, const struct admit_request *req,
		  struct admit_placement *out, struct error **err)
{
	if (!r->topo || !r->pools)
		return error_set(err, EAGAIN, "admission is unavailable: no host topology");
	if (ledger_ensure(r, err) < 0)
		return -1;
	struct admit_tenant at = { .vcpus_quota = t->vcpus, .memory_set = t->memory_set,
				   .memory_quota_bytes = t->memory_bytes };
	if (r->fleet_quotas) {
		/* booked in the fleet's ledger before (or, for a VM found
		 * running, after) this host's own checks */
		at.vcpus_quota = UINT32_MAX;
		at.memory_set = false;
	}
	strcpy(at.name, t->name);
	struct ledger_tenant *lt = ledger_tenant(&r->ledger, t->name);
	at.vcpus_used = lt->vcpus > UINT32_MAX ? UINT32_MAX : (uint32_t)lt->vcpus;
	at.memory_used_bytes = lt->memory_bytes;
	struct admit_host host = registry_host(r, NULL, 0);
	return admit_vm_ledger(&host, &r->ledger.use, req->vm ? ledger_find(r, req->vm) : NULL,
			       &at, req, out, err);
}

void registry_set_fleet_quotas(struct registry *r, bool on)
{
	r->fleet_quotas = on;
}

bool registry_reservation_of(struct registry *r, const char *vm, char tenant[NAME_MAX_LEN + 1])
{
	_cleanup_error_ struct error *e = NULL;
	if (ledger_ensure(r, &e) < 0)
		return false;
	const struct admit_reservation *own = ledger_find(r, vm);
	if (own && tenant)
		snprintf(tenant, NAME_MAX_LEN + 1, "%s", own->tenant);
	return own != NULL;
}

ssize_t registry_bookings(struct registry *r, struct ledger_booking **out)
{
	*out = NULL;
	_cleanup_error_ struct error *e = NULL;
	if (ledger_ensure(r, &e) < 0) {
		warn_once(r, "admission: the reservations cannot be read: %s", e->msg);
		return -1;
	}
	struct res_ledger *l = &r->ledger;
	struct ledger_booking *v = xcalloc(l->n_res ? l->n_res : 1, sizeof(*v));
	for (size_t i = 0; i < l->n_res; i++) {
		const struct admit_reservation *a = l->res[i];
		snprintf(v[i].tenant, sizeof(v[i].tenant), "%s", a->tenant);
		snprintf(v[i].vm, sizeof(v[i].vm), "%s", a->vm);
		v[i].vcpus = a->vcpus;
		v[i].memory_set = a->memory_set;
		v[i].memory_bytes = a->memory_bytes;
	}
	*out = v;
	return (ssize_t)l->n_res;
}

uint64_t registry_ledger_gen(const struct registry *r)
{
	return r->ledger_gen;
}

int registry_admit(struct registry *r, const struct admit_request *req, bool dry_run,
		   const char *actor, struct admit_placement *out, struct error **err)
{
	memset(out, 0, sizeof(*out));
	/* a retry of the request that admitted it gets the same answer (a
	 * control plane that timed out cannot book twice); another request
	 * for the same name is a conflict that names what differs */
	if (ledger_ensure(r, err) < 0)
		return -1;
	const struct admit_reservation *own = req->vm ? ledger_find(r, req->vm) : NULL;
	if (own) {
		_cleanup_free_ char *diff = admit_request_diff(own, req);
		if (diff)
			return error_set(err, EEXIST, "VM '%s' is already admitted; this request "
					 "differs: %s (release it first to admit it anew)",
					 req->vm, diff);
		out->res = *own;
		out->existing = true;
		return 0;
	}
	/* the quota from the store (one row), the use from the ledger */
	struct tenant t;
	if (store_tenant_get_limits(r->store, req->tenant, &t, err) < 0 ||
	    decide(r, &t, req, out, err) < 0)
		return -1;
	if (dry_run)
		return 0;
	_cleanup_(store_reservation_clear) struct store_reservation row;
	res_to_store(&out->res, &row);
	if (store_reservation_add(r->store, &row, actor, err) < 0)
		return -1;
	ledger_put_row(r, &row);
	return 0;
}

/* The reservation a VM being registered binds to: its own (same tenant,
 * else EBUSY) -> *bound, nothing to insert; or a new one admitted now
 * (shared, prefer) -> *row to insert with the VM. Against the ledger;
 * the caller puts *row in it once stored. */
static int bind_or_admit(struct registry *r, struct vm *v, const struct tenant *t,
			 bool *insert, struct store_reservation *row, struct error **err)
{
	*insert = false;
	if (ledger_ensure(r, err) < 0)
		return -1;
	const struct admit_reservation *own = ledger_find(r, v->name);
	if (own) {
		if (strcmp(own->tenant, v->tenant) != 0)
			return error_set(err, EBUSY, "VM '%s' is admitted for tenant '%s', not '%s'",
					 v->name, own->tenant, v->tenant);
		/* the VM is what was admitted: a process started with fewer
		 * vCPUs online (QEMU's -smp N,maxcpus=M) may hot-plug the
		 * rest, which are placed when they appear; one with more
		 * than were booked is refused */
		if (v->vcpus > own->vcpus)
			return error_set(err, EBUSY, "VM '%s' is admitted for %u vCPUs, its process "
					 "has %u", v->name, own->vcpus, v->vcpus);
		v->vcpus = own->vcpus;
		return 0;
	}
	struct admit_request req = {
		.vm = v->name, .tenant = v->tenant, .vcpus = v->vcpus,
		.memory_set = v->memory_set, .memory_bytes = v->memory_bytes,
		.cpu_policy = ADMIT_CPU_SHARED, .thread_policy = ADMIT_THREAD_PREFER,
	};
	struct admit_placement pl;
	if (decide(r, t, &req, &pl, err) < 0)
		return -1;
	res_to_store(&pl.res, row);
	*insert = true;
	return 0;
}

/* --- the inventory ------------------------------------------------------------- */

/* A deep copy of the arrays (the lookups are built again when asked). */
static void inventory_copy(struct inventory *dst, const struct inventory *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->tenants = xmemdup(src->tenants, src->n_tenants * sizeof(*src->tenants));
	dst->n_tenants = src->n_tenants;
	/* vm_copy() sets every byte: no need to zero them first */
	dst->vms = xmalloc((src->n_vms ? src->n_vms : 1) * sizeof(*dst->vms));
	for (size_t i = 0; i < src->n_vms; i++)
		vm_copy(&dst->vms[i], &src->vms[i]);
	dst->n_vms = src->n_vms;
	dst->res = xmemdup(src->res, src->n_res * sizeof(*src->res));
	dst->n_res = src->n_res;
}

/* The store is read only when what it holds may have changed since the
 * last read (store_inventory_mark): a steady tick copies the last one. */
int registry_inventory_load(struct registry *r, struct inventory *out, struct error **err)
{
	memset(out, 0, sizeof(*out));
	struct store_mark mark;
	if (store_inventory_mark(r->store, &mark, err) < 0)
		return -1;
	if (r->inv_cached && store_mark_equal(&mark, &r->inv_mark)) {
		inventory_copy(out, &r->inv_cache);
		r->inv_served_cached = true;
		return 0;
	}
	r->inv_served_cached = false;
	struct store_inventory si;
	if (store_inventory_read(r->store, &si, err) < 0)
		return -1;
	out->tenants = steal_ptr(&si.tenants);
	out->n_tenants = si.n_tenants;
	out->vms = steal_ptr(&si.vms);
	out->n_vms = si.n_vms;
	res_parse_all(r, si.res, si.n_res, &out->res, &out->n_res);
	si.n_vms = 0;
	store_inventory_clear(&si);
	inventory_clear(&r->inv_cache);
	inventory_copy(&r->inv_cache, out);
	r->inv_mark = mark;
	r->inv_cached = true;
	return 0;
}

/* Whether the ledger holds exactly the reservations res[0..n) (names are
 * unique: same count and each one found the same). */
static bool ledger_holds(const struct registry *r, const struct admit_reservation *res, size_t n)
{
	if (!r->ledger.loaded || r->ledger.n_res != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct admit_reservation *own = ledger_find(r, res[i].vm);
		if (!own || !res_same(own, &res[i]))
			return false;
	}
	return true;
}

void registry_ledger_resync(struct registry *r, const struct inventory *inv)
{
	/* a steady tick: the inventory is the cache, found in the ledger
	 * before, and neither has changed since */
	if (r->inv_served_cached && r->ledger_checked && r->ledger_checked_gen == r->ledger_gen &&
	    store_mark_equal(&r->ledger_checked_mark, &r->inv_mark))
		return;
	/* the usual tick after a change: the store holds what the ledger
	 * does, and a rebuild would free and allocate again every
	 * reservation (1.7 KiB each) */
	if (!ledger_holds(r, inv->res, inv->n_res))
		ledger_rebuild(r, inv->res, inv->n_res);
	r->ledger_checked = true;
	r->ledger_checked_gen = r->ledger_gen;
	r->ledger_checked_mark = r->inv_mark;
}

void inventory_clear(struct inventory *inv)
{
	if (!inv)
		return;
	free(inv->tenants);
	vm_list_free(inv->vms, inv->n_vms);
	free(inv->res);
	name_index_clear(&inv->vm_ix);
	name_index_clear(&inv->res_ix);
	memset(inv, 0, sizeof(*inv));
}

const struct tenant *inventory_tenant(const struct inventory *inv, const char *name)
{
	for (size_t i = 0; name && i < inv->n_tenants; i++)
		if (strcmp(inv->tenants[i].name, name) == 0)
			return &inv->tenants[i];
	return NULL;
}

/* The lookups are O(1): an index by name, built on first use and again
 * when the array grew or shrank (VMs are only ever appended within a tick;
 * a dropped reservation marks its index stale). */
struct vm *inventory_vm(const struct inventory *inv, const char *name)
{
	struct inventory *m = (struct inventory *)inv;
	if (!m->vm_ix_ok || m->vm_ix.n != m->n_vms) {
		if (!m->vm_ix.stride)
			name_index_init(&m->vm_ix, sizeof(struct vm), offsetof(struct vm, name));
		name_index_build(&m->vm_ix, m->vms, m->n_vms);
		m->vm_ix_ok = true;
	}
	size_t i = name_index_find(&m->vm_ix, m->vms, name);
	return i == SIZE_MAX ? NULL : &m->vms[i];
}

const struct admit_reservation *inventory_reservation(const struct inventory *inv,
						       const char *vm)
{
	struct inventory *m = (struct inventory *)inv;
	if (!m->res_ix_ok || m->res_ix.n != m->n_res) {
		if (!m->res_ix.stride)
			name_index_init(&m->res_ix, sizeof(struct admit_reservation),
					offsetof(struct admit_reservation, vm));
		name_index_build(&m->res_ix, m->res, m->n_res);
		m->res_ix_ok = true;
	}
	size_t i = name_index_find(&m->res_ix, m->res, vm);
	return i == SIZE_MAX ? NULL : &m->res[i];
}

static bool vm_live(const struct vm *v)
{
	return v->pid > 0 && v->state != VM_STATE_GONE && v->state != VM_STATE_STOPPED;
}

/* The live VM other than `self` whose row holds `pid`. */
static struct vm *inventory_holder(const struct inventory *inv, pid_t pid, const char *self)
{
	for (size_t i = 0; pid > 0 && i < inv->n_vms; i++)
		if (inv->vms[i].pid == pid && vm_live(&inv->vms[i]) &&
		    (!self || strcmp(inv->vms[i].name, self) != 0))
			return &inv->vms[i];
	return NULL;
}

/* Keep the inventory's copy of a VM in step with what was stored. */
static void inv_set_runtime(struct registry *r, struct vm *v, const struct store_vm_runtime *rt)
{
	if (v->state != rt->state)
		v->state_since_ms = r->now_ms();
	v->state = rt->state;
	v->source = rt->source;
	v->pid = rt->pid;
	v->start_time = rt->pid > 0 ? rt->start_time : 0;
	free(v->threads);
	v->threads = NULL;
	v->n_threads = 0;
	size_t k = 0;
	if (rt->n_threads) {
		v->threads = xcalloc(rt->n_threads, sizeof(*v->threads));
		for (size_t i = 0; i < rt->n_threads; i++)
			if (rt->threads[i].tid > 0)
				v->threads[k++] = rt->threads[i];
	}
	v->n_threads = k;
}

static void inv_add_res(struct registry *r, struct inventory *inv,
			const struct store_reservation *row)
{
	ledger_put_row(r, row);
	struct admit_reservation ar;
	_cleanup_error_ struct error *e = NULL;
	if (res_from_store(row, &ar, &e) < 0) {
		log_warn("%s", e->msg); /* we made it: cannot happen */
		return;
	}
	inv->res = xrealloc(inv->res, (inv->n_res + 1) * sizeof(*inv->res));
	inv->res[inv->n_res++] = ar;
}

static void inv_drop_res(struct registry *r, struct inventory *inv, const char *vm)
{
	ledger_drop(r, vm);
	for (size_t i = 0; i < inv->n_res; i++)
		if (strcmp(inv->res[i].vm, vm) == 0) {
			inv->res[i] = inv->res[--inv->n_res];
			inv->res_ix_ok = false;
			return;
		}
}

/* Store a runtime change of VM v (and a new reservation when `row` is not
 * NULL), then mirror it in the inventory (which only a `row` needs). */
static int runtime_write(struct registry *r, struct inventory *inv, struct vm *v,
			 const struct store_vm_runtime *rt, const struct store_reservation *row,
			 struct error **err)
{
	if (store_vm_update_runtime(r->store, v->name, rt, row, err) < 0)
		return -1;
	inv_set_runtime(r, v, rt);
	if (row)
		inv_add_res(r, inv, row);
	return 0;
}

/* VM v's process is gone (or its PID is someone else's now). inv NULL: a
 * VM read from the store outside a pass (nothing to mirror but v). */
static void mark_gone(struct registry *r, struct inventory *inv, struct vm *v, const char *why)
{
	log_info("VM %s: %s: marking it gone", v->name, why);
	struct store_vm_runtime rt = { .state = VM_STATE_GONE, .source = v->source, .pid = v->pid,
				       .start_time = v->start_time };
	_cleanup_error_ struct error *e = NULL;
	if (runtime_write(r, inv, v, &rt, NULL, &e) < 0)
		warn_once(r, "VM %s: %s", v->name, e->msg);
}

/* --- /proc reads ----------------------------------------------------------------- */

/* The start time of process `pid`: 0 and *out; -1 with ESRCH when it is
 * gone, another errno when /proc cannot be read. */
static int proc_stat_read(const char *host_root, pid_t pid, struct proc_stat *out,
			  struct error **err)
{
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	_cleanup_free_ char *p = path_join(host_root, "proc", pidbuf, "stat", NULL);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? error_set(err, ESRCH, "process %d does not exist", (int)pid)
				       : error_set(err, errno, "process %d: %s", (int)pid,
						   strerror(errno));
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int rerr = errno;
	close(fd);
	if (n < 0 && rerr != ESRCH)
		return error_set(err, rerr, "process %d: %s", (int)pid, strerror(rerr));
	if (n <= 0)
		return error_set(err, ESRCH, "process %d does not exist", (int)pid);
	buf[n] = '\0';
	struct proc_stat ps;
	if (proc_stat_parse(buf, &ps, err) < 0)
		return error_wrap(err, "process %d", (int)pid);
	*out = ps;
	return 0;
}

/* How many threads process `pid` has, from its task directory's link
 * count (2 + one per thread: procfs sets it so, as any directory's is
 * 2 + its subdirectories): a stat() instead of the stat file, which the
 * kernel formats field by field and whose CPU times sum every thread.
 * 0 and *out; -1 with ESRCH when it is gone. */
static int proc_thread_count(const char *host_root, pid_t pid, unsigned *out,
			     struct error **err)
{
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	_cleanup_free_ char *p = path_join(host_root, "proc", pidbuf, "task", NULL);
	struct stat st;
	if (stat(p, &st) < 0)
		return errno == ENOENT || errno == ESRCH
			? error_set(err, ESRCH, "process %d does not exist", (int)pid)
			: error_set(err, errno, "process %d: %s", (int)pid, strerror(errno));
	if (st.st_nlink < 2)
		return error_set(err, ESRCH, "process %d has no threads (exiting)", (int)pid);
	*out = (unsigned)(st.st_nlink - 2);
	return 0;
}

static int proc_start_time(const char *host_root, pid_t pid, uint64_t *out, struct error **err)
{
	struct proc_stat ps;
	if (proc_stat_read(host_root, pid, &ps, err) < 0)
		return -1;
	*out = ps.start_time;
	return 0;
}

/* Where the process is now, so a release can put it back. Best effort:
 * "" when /proc does not say or the path is too long to keep. */
static void origin_read(const char *host_root, struct vm *v)
{
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)v->pid);
	_cleanup_free_ char *p = path_join(host_root, "proc", pidbuf, "cgroup", NULL);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	char buf[4096];
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = '\0';
	_cleanup_free_ char *cg = NULL;
	if (n > 0 && cgroup_proc_cgroup_parse(buf, &cg, NULL) == 0 && cg[0] == '/' &&
	    strlen(cg) <= VM_ORIGIN_MAX)
		strcpy(v->origin_cgroup, cg);
}

struct pid_owner {
	pid_t pid;
	size_t vm;
};

static int pid_owner_cmp(const void *a, const void *b)
{
	const struct pid_owner *x = a, *y = b;
	if (x->pid != y->pid)
		return (x->pid > y->pid) - (x->pid < y->pid);
	return (x->vm > y->vm) - (x->vm < y->vm);
}

size_t registry_check_pids(struct registry *r, struct inventory *inv)
{
	/* sorted by PID: the VMs sharing one sit side by side (O(N log N)) */
	struct pid_owner *o = xcalloc(inv->n_vms ? inv->n_vms : 1, sizeof(*o));
	size_t no = 0;
	for (size_t i = 0; i < inv->n_vms; i++)
		if (vm_live(&inv->vms[i]))
			o[no++] = (struct pid_owner){ inv->vms[i].pid, i };
	qsort(o, no, sizeof(*o), pid_owner_cmp);
	size_t n = 0;
	for (size_t k = 0; k < no; k++) {
		for (size_t l = k + 1; l < no && o[l].pid == o[k].pid; l++) {
			const struct vm *a = &inv->vms[o[k].vm], *b = &inv->vms[o[l].vm];
			_cleanup_free_ char *m = xasprintf(
				"process %d is claimed by VMs %s (%s) and %s (%s): neither is "
				"placed until one is released (vcpuctl vm release NAME)",
				(int)a->pid, a->name, vm_source_to_string(a->source), b->name,
				vm_source_to_string(b->source));
			registry_fault_set(r, a->name, REGISTRY_FAULT_IDENTITY, m);
			registry_fault_set(r, b->name, REGISTRY_FAULT_IDENTITY, m);
			n++;
		}
	}
	free(o);
	return n;
}

static struct threads_seen *seen_get(struct registry *r, const char *name)
{
	if (!r->seen_ix.stride)
		name_index_init(&r->seen_ix, sizeof(struct threads_seen),
				offsetof(struct threads_seen, name));
	size_t i = name_index_find(&r->seen_ix, r->seen, name);
	if (i != SIZE_MAX)
		return &r->seen[i];
	if (r->n_seen == r->cap_seen) {
		r->cap_seen = r->cap_seen ? 2 * r->cap_seen : 16;
		r->seen = xrealloc(r->seen, r->cap_seen * sizeof(*r->seen));
	}
	struct threads_seen *t = &r->seen[r->n_seen++];
	memset(t, 0, sizeof(*t));
	t->pidfd = -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	name_index_add(&r->seen_ix, r->seen, r->n_seen - 1);
	return t;
}

/* Let ts watch its process through *pidfd (taken; the old watch closed). */
static void seen_watch(struct threads_seen *ts, int *pidfd)
{
	if (*pidfd < 0)
		return;
	if (ts->pidfd >= 0)
		close(ts->pidfd);
	ts->pidfd = *pidfd;
	ts->exited = false;
	*pidfd = -1;
}

/* Whether ts's pidfd, watching VM v's process, has said it exited
 * (polled now when it has not yet). */
static bool ts_exited(struct threads_seen *ts, const struct vm *v)
{
	if (ts->pid != v->pid || !v->start_time || ts->start_time != v->start_time)
		return false; /* it watched another process of this name */
	if (!ts->exited && ts->pidfd >= 0) {
		struct pollfd pfd = { .fd = ts->pidfd, .events = POLLIN };
		if (poll(&pfd, 1, 0) > 0) {
			close(ts->pidfd);
			ts->pidfd = -1;
			ts->exited = true;
		}
	}
	return ts->exited;
}

/* The same for a VM whose entry is looked up by name (the API's path). */
static bool seen_exited(struct registry *r, const struct vm *v)
{
	size_t i = r->seen_ix.stride ? name_index_find(&r->seen_ix, r->seen, v->name) : SIZE_MAX;
	return i != SIZE_MAX && ts_exited(&r->seen[i], v);
}

/* Drop the entries of VMs this pass did not look at. */
static void seen_sweep(struct registry *r)
{
	size_t j = 0;
	for (size_t i = 0; i < r->n_seen; i++) {
		if (r->seen[i].pass == r->passes)
			r->seen[j++] = r->seen[i];
		else if (r->seen[i].pidfd >= 0)
			close(r->seen[i].pidfd);
	}
	if (j != r->n_seen)
		name_index_build(&r->seen_ix, r->seen, j);
	r->n_seen = j;
}

/* One poll() over the pidfds: a process that exited loses its watch, so
 * that its VM is looked at in this pass (gone, or its PID reused). */
static void seen_poll_exits(struct registry *r)
{
	if (r->pfds_cap < r->n_seen) {
		r->pfds_cap = r->n_seen * 2;
		r->pfds = xrealloc(r->pfds, r->pfds_cap * sizeof(*r->pfds));
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_seen; i++)
		r->pfds[n++] = (struct pollfd){ .fd = r->seen[i].pidfd, .events = POLLIN };
	if (!n || poll(r->pfds, n, 0) <= 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (r->pfds[i].fd >= 0 && r->pfds[i].revents) {
			close(r->seen[i].pidfd);
			r->seen[i].pidfd = -1;
			r->seen[i].exited = true;
		}
}

/* A registered VM whose process is watched by a pidfd that has not said
 * it exited is the same process (no PID reuse without an exit): until its
 * entry falls due, not even its stat is read. Without a watch (a fake
 * procfs, pidfd_open refused) the stat is read every pass. */
static bool seen_watched(const struct registry *r, const struct vm *v,
			 const struct threads_seen *ts)
{
	return ts && ts->pidfd >= 0 && v->state == VM_STATE_RUNNING && ts->pid == v->pid &&
	       v->start_time && ts->start_time == v->start_time &&
	       ((r->thread_news && v->n_threads > 0) || r->passes < ts->stat_due) &&
	       r->passes < ts->due;
}

static void seen_schedule(const struct registry *r, struct threads_seen *ts, uint32_t every)
{
	ts->stat_due = recheck_due(r->passes, STAT_RECHECK_PASSES,
				   hash_str(HASH_SEED, ts->name) >> 8);
	ts->due = every ? recheck_due(r->passes, every, hash_str(HASH_SEED, ts->name)) : ts->due;
}

size_t registry_refresh_registered(struct registry *r, struct inventory *inv)
{
	size_t changed = 0;
	r->passes++;
	seen_poll_exits(r);
	for (size_t i = 0; i < inv->n_vms; i++) {
		struct vm *v = &inv->vms[i];
		if (v->source != VM_SOURCE_REGISTERED || !vm_live(v))
			continue;
		size_t si = r->seen_ix.stride ? name_index_find(&r->seen_ix, r->seen, v->name)
					      : SIZE_MAX;
		struct threads_seen *w = si != SIZE_MAX ? &r->seen[si] : NULL;
		if (w && seen_watched(r, v, w)) {
			w->pass = r->passes;
			continue;
		}
		if (w && ts_exited(w, v)) {
			_cleanup_free_ char *why = xasprintf("process %d exited", (int)v->pid);
			mark_gone(r, inv, v, why);
			changed++;
			continue;
		}
		/* the watch first: the stat read below then names the process
		 * it watches (a PID reused in between shows another start);
		 * a watch this process already has (taken at registration)
		 * is kept */
		bool have_watch = w && w->pidfd >= 0 && w->pid == v->pid &&
				  w->start_time == v->start_time;
		_cleanup_close_ int pidfd = r->pidfds && !have_watch
						    ? (int)syscall(SYS_pidfd_open, v->pid, 0) : -1;
		_cleanup_error_ struct error *e = NULL;
		struct proc_stat ps = { 0 };
		uint64_t start = 0;
		int rc;
		if (have_watch && !w->exited) {
			/* the watched process is there until its pidfd says it
			 * exited: only its thread count is news */
			rc = proc_thread_count(r->host_root, v->pid, &ps.num_threads, &e);
			ps.start_time = w->start_time;
		} else {
			rc = proc_stat_read(r->host_root, v->pid, &ps, &e);
		}
		if (rc == 0)
			start = ps.start_time;
		if (rc < 0) {
			if (e->code == ESRCH) {
				mark_gone(r, inv, v, e->msg);
				changed++;
			} else {
				warn_once(r, "VM %s: %s", v->name, e->msg);
			}
			continue;
		}
		if (v->start_time && v->start_time != start) {
			_cleanup_free_ char *why = xasprintf(
				"process %d was started at %" PRIu64 ", the registered one at %"
				PRIu64 " (PID reused)", (int)v->pid, start, v->start_time);
			mark_gone(r, inv, v, why);
			changed++;
			continue;
		}
		/* the same process with as many threads as when its task
		 * directory was last read: its vCPU threads are the stored ones */
		struct threads_seen *ts = w ? w : seen_get(r, v->name);
		ts->pass = r->passes;
		if (v->state == VM_STATE_RUNNING && v->start_time == start && ts->pid == v->pid &&
		    ts->start_time == start && ts->num_threads == ps.num_threads &&
		    r->passes < ts->due) {
			seen_watch(ts, &pidfd);
			seen_schedule(r, ts, 0);
			continue;
		}
		struct vm_vcpu *th = NULL;
		size_t nth = 0;
		if (proc_vm_vcpus(r->host_root, v->pid, &th, &nth, &e) < 0) {
			if (e->code == ESRCH || e->code == ENOENT) {
				mark_gone(r, inv, v, e->msg);
				changed++;
			} else {
				warn_once(r, "VM %s: %s", v->name, e->msg);
			}
			continue;
		}
		/* threads past the registered vCPU count (hot-plug beyond the
		 * quota) are not placed */
		while (nth > 0 && th[nth - 1].index >= v->vcpus)
			nth--;
		struct store_vm_runtime rt = { .state = VM_STATE_RUNNING, .source = v->source,
					       .pid = v->pid, .start_time = start,
					       .threads = th, .n_threads = nth };
		bool same = v->state == rt.state && v->start_time == start &&
			    v->n_threads == nth &&
			    (nth == 0 || memcmp(v->threads, th, nth * sizeof(*th)) == 0);
		bool known = same;
		if (!same) {
			if (runtime_write(r, inv, v, &rt, NULL, &e) < 0)
				warn_once(r, "VM %s: %s", v->name, e->msg);
			else
				known = true;
			changed += known;
		}
		free(th);
		if (known) {
			ts->pid = v->pid;
			ts->start_time = start;
			ts->num_threads = ps.num_threads;
			ts->tid_sum = 0;
			ts->read_pass = r->passes;
			seen_watch(ts, &pidfd);
			seen_schedule(r, ts, ts->pidfd < 0 ? THREADS_RECHECK_PASSES
					     : r->thread_news ? THREADS_RECHECK_PASSES_NEWS
							      : THREADS_RECHECK_PASSES_WATCHED);
		} else {
			ts->due = 0;
		}
	}
	seen_sweep(r);
	return changed;
}

void registry_thread_news(struct registry *r, const struct registry_thread_news *news,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct registry_thread_news *x = &news[i];
		size_t si = r->seen_ix.stride ? name_index_find(&r->seen_ix, r->seen, x->vm)
					      : SIZE_MAX;
		if (si == SIZE_MAX)
			continue;
		struct threads_seen *ts = &r->seen[si];
		if (x->n_threads >= 0)
			r->thread_news = true;
		bool changed = x->vcpu_gone;
		if (!changed && x->n_threads >= 0) {
			if ((uint64_t)x->n_threads != ts->num_threads)
				changed = true;
			else if (!ts->tid_sum)
				ts->tid_sum = x->tid_sum; /* the set as it is now */
			else
				changed = ts->tid_sum != x->tid_sum;
		}
		if (x->vcpu_gone) {
			ts->due = 0; /* its task directory at the next refresh */
			ts->tid_sum = 0;
		} else if (changed) {
			uint32_t soonest = ts->read_pass + THREADS_NEWS_MIN_PASSES;
			uint32_t at = r->passes >= soonest ? 0 : soonest;
			if (at < ts->due)
				ts->due = at;
		}
	}
}

/* --- what the sources saw ----------------------------------------------------------- */

/* registered (an explicit PID) > libvirt > /proc */
static int source_rank(enum vm_source s)
{
	switch (s) {
	case VM_SOURCE_REGISTERED: return 3;
	case VM_SOURCE_LIBVIRT: return 2;
	case VM_SOURCE_PROC: return 1;
	default: return 0;
	}
}

static const char *source_what(enum vm_source s)
{
	return s == VM_SOURCE_LIBVIRT ? "libvirt" : s == VM_SOURCE_PROC ? "/proc" : "the API";
}

/* A new VM row from a sighting. */
static void vm_from_sighting(const struct registry_sighting *s, struct vm *v)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", s->name);
	snprintf(v->tenant, sizeof(v->tenant), "%s", s->tenant ? s->tenant : "");
	snprintf(v->uuid, sizeof(v->uuid), "%s", s->uuid ? s->uuid : "");
	v->source = s->source;
	v->state = s->state;
	v->pid = s->pid;
	v->start_time = s->start_time;
	v->vcpus = s->vcpus;
	if (s->memory_bytes > 0) {
		v->memory_set = true;
		v->memory_bytes = s->memory_bytes;
	}
	v->threads = (struct vm_vcpu *)s->threads;
	v->n_threads = s->n_threads;
}

/* A managed VM a source found that has no row yet: bind it to its
 * reservation or admit it, and store it, in one transaction. */
static void sighting_register(struct registry *r, struct inventory *inv,
			      const struct registry_sighting *s)
{
	struct vm v;
	vm_from_sighting(s, &v);
	origin_read(r->host_root, &v);
	_cleanup_error_ struct error *e = NULL;
	const struct tenant *t = inventory_tenant(inv, v.tenant);
	if (!t) {
		_cleanup_free_ char *m = xasprintf("%s found VM %s (pid %d) of tenant '%s', which "
						   "does not exist: not placed", source_what(s->source),
						   v.name, (int)v.pid, v.tenant);
		registry_fault_set(r, v.name, REGISTRY_FAULT_ADMISSION, m);
		return;
	}
	bool insert = false;
	_cleanup_(store_reservation_clear) struct store_reservation row = { 0 };
	if (bind_or_admit(r, &v, t, &insert, &row, &e) < 0 ||
	    store_vm_register(r->store, insert ? &row : NULL, &v, "vcpud", &e) < 0) {
		_cleanup_free_ char *m = xasprintf("%s found VM %s (pid %d) but it was not placed: %s",
						   source_what(s->source), v.name, (int)v.pid, e->msg);
		registry_fault_set(r, v.name, e->code == EEXIST ? REGISTRY_FAULT_IDENTITY
								: REGISTRY_FAULT_ADMISSION, m);
		return;
	}
	log_info("VM %s (pid %d, %u vCPUs) registered to tenant %s by %s", v.name, (int)v.pid,
		 v.vcpus, v.tenant, source_what(s->source));
	inv->vms = xrealloc(inv->vms, (inv->n_vms + 1) * sizeof(*inv->vms));
	struct vm *nv = &inv->vms[inv->n_vms++];
	vm_copy(nv, &v);
	nv->state_since_ms = r->now_ms();
	if (insert)
		inv_add_res(r, inv, &row);
}

/* A sighting of a VM that has a row: the precedence rule. */
static void sighting_update(struct registry *r, struct inventory *inv, struct vm *k,
			    const struct registry_sighting *s)
{
	/* a stronger source owns it, unless the VM is gone: then whoever
	 * finds it again (same name, same tenant) brings it back */
	if (source_rank(k->source) > source_rank(s->source) && k->state != VM_STATE_GONE)
		return;
	if (strcmp(k->tenant, s->tenant) != 0) {
		_cleanup_free_ char *m = xasprintf("VM %s belongs to tenant '%s' but %s says '%s': "
						   "not changed", k->name, k->tenant,
						   source_what(s->source), s->tenant);
		registry_fault_set(r, k->name, REGISTRY_FAULT_IDENTITY, m);
		return;
	}
	if (k->state == VM_STATE_GONE && k->pid == s->pid &&
	    (!k->start_time || k->start_time == s->start_time))
		return; /* found exited this tick; this view of it is older */
	struct store_vm_runtime rt = { .state = s->state, .source = s->source, .pid = s->pid,
				       .start_time = s->start_time, .threads = s->threads,
				       .n_threads = s->n_threads };
	/* drop threads past its vCPU count (hot-plug beyond its admission) */
	while (rt.n_threads > 0 && rt.threads[rt.n_threads - 1].index >= k->vcpus)
		rt.n_threads--;
	bool same = k->state == rt.state && k->source == rt.source && k->pid == rt.pid &&
		    k->start_time == rt.start_time && k->n_threads == rt.n_threads &&
		    (rt.n_threads == 0 ||
		     memcmp(k->threads, rt.threads, rt.n_threads * sizeof(*rt.threads)) == 0);
	bool admitted = inventory_reservation(inv, k->name) != NULL;
	if (same && admitted)
		return;
	/* back after its capacity was freed: admit it again, in the same
	 * transaction as its runtime */
	_cleanup_(store_reservation_clear) struct store_reservation row = { 0 };
	bool insert = false;
	_cleanup_error_ struct error *e = NULL;
	const struct tenant *t = inventory_tenant(inv, k->tenant);
	if (!admitted) {
		if (!t) {
			error_set(&e, ENOENT, "no tenant '%s'", k->tenant);
		} else if (bind_or_admit(r, k, t, &insert, &row, &e) == 0) {
			error_free(&e);
		}
		if (e) {
			_cleanup_free_ char *m = xasprintf("%s found VM %s (pid %d) again but it was "
							   "not admitted: %s", source_what(s->source),
							   k->name, (int)s->pid, e->msg);
			registry_fault_set(r, k->name, REGISTRY_FAULT_ADMISSION, m);
			return;
		}
	}
	if (k->source != s->source)
		log_info("VM %s: %s takes it over from %s", k->name, source_what(s->source),
			 source_what(k->source));
	if (runtime_write(r, inv, k, &rt, insert ? &row : NULL, &e) < 0) {
		_cleanup_free_ char *m = xasprintf("%s: VM %s: %s", source_what(s->source), k->name,
						   e->msg);
		registry_fault_set(r, k->name, e->code == EEXIST ? REGISTRY_FAULT_IDENTITY
								 : REGISTRY_FAULT_ADMISSION, m);
	}
}

/* How a source's VM that it did not see this time ended. */
static void unseen(struct registry *r, struct inventory *inv, struct vm *v, bool defined)
{
	struct store_vm_runtime rt = { .source = v->source };
	if (defined) {
		if (v->state == VM_STATE_STOPPED)
			return;
		rt.state = VM_STATE_STOPPED; /* pid 0: its cgroups go at this tick */
		log_info("%s: VM %s stopped (still defined: it keeps its admission)",
			 source_what(v->source), v->name);
	} else {
		if (v->state == VM_STATE_GONE)
			return;
		rt.state = VM_STATE_GONE;
		rt.pid = v->pid;     /* kept for history; gone VMs hold no PID */
		rt.start_time = v->start_time;
		log_info("%s: VM %s is gone%s", source_what(v->source), v->name,
			 v->source == VM_SOURCE_LIBVIRT ? " (no longer defined)" : "");
	}
	_cleanup_error_ struct error *e = NULL;
	if (runtime_write(r, inv, v, &rt, NULL, &e) < 0)
		warn_once(r, "%s: VM %s: %s", source_what(v->source), v->name, e->msg);
}

static bool name_listed(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

void registry_observe(struct registry *r, struct inventory *inv, enum vm_source source,
		      const struct registry_sighting *seen, size_t n, bool complete,
		      const char *const *defined, size_t n_defined)
{
	for (size_t i = 0; i < n; i++) {
		const struct registry_sighting *s = &seen[i];
		if (!s->name || !name_valid(s->name) || s->pid <= 0 || s->vcpus == 0)
			continue; /* not placeable (yet) */
		if (!s->tenant || !s->tenant[0])
			continue; /* unmanaged: the caller lists it */
		struct registry_sighting sv = *s;
		_cleanup_error_ struct error *e = NULL;
		/* a source that does not give the start time (libvirt): the one
		 * recorded for this VM and PID, else /proc's (one read) */
		struct vm *known = inventory_vm(inv, sv.name);
		if (!sv.start_time && known && known->pid == sv.pid && vm_live(known))
			sv.start_time = known->start_time;
		if (!sv.start_time && proc_start_time(r->host_root, sv.pid, &sv.start_time, &e) < 0) {
			log_debug("%s: VM %s: %s", source_what(source), sv.name, e->msg);
			continue; /* exited meanwhile: next pass */
		}
		struct vm *h = inventory_holder(inv, sv.pid, sv.name);
		if (h && h->start_time && h->start_time != sv.start_time) {
			_cleanup_free_ char *why = xasprintf(
				"its PID %d now belongs to another process (VM %s, started at %"
				PRIu64 ")", (int)sv.pid, sv.name, sv.start_time);
			mark_gone(r, inv, h, why);
			h = NULL;
		}
		if (h) {
			/* the same process, known as another VM */
			if (source_rank(h->source) > source_rank(source))
				continue; /* a stronger source's VM: not a conflict */
			_cleanup_free_ char *m = xasprintf(
				"%s reports VM %s with process %d, which is VM %s (%s): refused",
				source_what(source), sv.name, (int)sv.pid, h->name,
				vm_source_to_string(h->source));
			registry_fault_set(r, sv.name, REGISTRY_FAULT_IDENTITY, m);
			continue;
		}
		if (known)
			sighting_update(r, inv, known, &sv);
		else
			sighting_register(r, inv, &sv);
	}
	if (!complete)
		return;
	for (size_t i = 0; i < inv->n_vms; i++) {
		struct vm *v = &inv->vms[i];
		if (v->source != source || v->state == VM_STATE_GONE)
			continue;
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = seen[j].name && strcmp(seen[j].name, v->name) == 0 && seen[j].pid > 0;
		if (found)
			continue;
		bool def = source == VM_SOURCE_LIBVIRT && name_listed(defined, n_defined, v->name);
		unseen(r, inv, v, def);
	}
}

size_t registry_admit_missing(struct registry *r, struct inventory *inv)
{
	size_t admitted = 0;
	for (size_t i = 0; i < inv->n_vms; i++) {
		struct vm *v = &inv->vms[i];
		if (!vm_live(v) || inventory_reservation(inv, v->name))
			continue;
		const struct tenant *t = inventory_tenant(inv, v->tenant);
		_cleanup_(store_reservation_clear) struct store_reservation row = { 0 };
		bool insert = false;
		_cleanup_error_ struct error *e = NULL;
		if (!t)
			error_set(&e, ENOENT, "no tenant '%s'", v->tenant);
		else if (bind_or_admit(r, v, t, &insert, &row, &e) == 0 &&
			 insert && store_reservation_add(r->store, &row, "vcpud", &e) == 0)
			error_free(&e);
		if (e) {
			_cleanup_free_ char *m = xasprintf("VM %s runs without an admission and cannot "
							   "be admitted: %s", v->name, e->msg);
			registry_fault_set(r, v->name, REGISTRY_FAULT_ADMISSION, m);
			continue;
		}
		if (insert) {
			log_info("VM %s had no admission: admitted now", v->name);
			inv_add_res(r, inv, &row);
			admitted++;
		}
	}
	return admitted;
}

size_t registry_expire(struct registry *r, struct inventory *inv)
{
	size_t freed = 0;
	int64_t now = r->now_ms();
	for (size_t i = 0; i < inv->n_vms; i++) {
		struct vm *v = &inv->vms[i];
		if (v->state != VM_STATE_GONE || !inventory_reservation(inv, v->name))
			continue;
		int64_t since = v->state_since_ms ? v->state_since_ms : v->updated_at * 1000;
		int64_t gone_ms = now - since;
		if (gone_ms < (int64_t)r->gone_grace_s * 1000)
			continue;
		_cleanup_free_ char *why = xasprintf("gone for %" PRId64 " s (grace %u s)",
						     gone_ms / 1000, r->gone_grace_s);
		_cleanup_error_ struct error *e = NULL;
		if (store_reservation_delete(r->store, v->name, "vcpud", why, &e) < 0) {
			warn_once(r, "VM %s: cannot free its admission: %s", v->name, e->msg);
			continue;
		}
		log_info("VM %s: %s: its admission is freed", v->name, why);
		inv_drop_res(r, inv, v->name);
		freed++;
	}
	return freed;
}

/* --- faults ------------------------------------------------------------------------ */

static const char *const fault_kind_names[REGISTRY_FAULT_LAST] = {
	"identity", "admission", "plan", "cgroup",
};

const char *registry_fault_kind_name(enum registry_fault_kind k)
{
	return (unsigned)k < REGISTRY_FAULT_LAST ? fault_kind_names[k] : NULL;
}

static struct fault *fault_find(const struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->n_faults; i++)
		if (strcmp(r->faults[i].name, name) == 0)
			return &r->faults[i];
	return NULL;
}

void registry_fault_set(struct registry *r, const char *name, enum registry_fault_kind kind,
			const char *msg)
{
	if (!name || !name_valid(name) || (unsigned)kind >= REGISTRY_FAULT_LAST)
		return;
	struct fault *f = fault_find(r, name);
	if (f) {
		f->touched = true;
		/* the more serious kind (lower) wins for a VM with several */
		if (kind > f->kind || (kind == f->kind && strcmp(f->msg, msg) == 0))
			return;
		free(f->msg);
	} else {
		r->faults = xrealloc(r->faults, (r->n_faults + 1) * sizeof(*r->faults));
		f = &r->faults[r->n_faults++];
		memset(f, 0, sizeof(*f));
		snprintf(f->name, sizeof(f->name), "%s", name);
		f->since_ms = r->now_ms();
		f->touched = true;
	}
	f->kind = kind;
	f->msg = xstrdup(msg);
	log_warn("VM %s quarantined (%s): %s", name, fault_kind_names[kind], msg);
	if (kind == REGISTRY_FAULT_IDENTITY || kind == REGISTRY_FAULT_ADMISSION) {
		json_t *d = json_pack("{s:s,s:s}", "kind", fault_kind_names[kind], "reason", msg);
		_cleanup_free_ char *text = json_dumps(d, JSON_COMPACT);
		json_decref(d);
		_cleanup_free_ char *target = xasprintf("vm/%s", name);
		_cleanup_error_ struct error *e = NULL;
		if (store_event_add(r->store, "vcpud", "vm.refused", target, text, &e) < 0)
			log_warn("cannot record the refusal of VM %s: %s", name, e->msg);
	}
}

void registry_faults_begin(struct registry *r, enum registry_fault_kind kind)
{
	for (size_t i = 0; i < r->n_faults; i++)
		if (r->faults[i].kind == kind)
			r->faults[i].touched = false;
}

void registry_faults_end(struct registry *r, enum registry_fault_kind kind)
{
	size_t j = 0;
	for (size_t i = 0; i < r->n_faults; i++) {
		struct fault *f = &r->faults[i];
		if (f->kind == kind && !f->touched) {
			log_info("VM %s: no longer quarantined (%s: %s)", f->name,
				 fault_kind_names[kind], f->msg);
			free(f->msg);
			continue;
		}
		r->faults[j++] = *f;
	}
	r->n_faults = j;
}

const char *registry_fault_of(const struct registry *r, const char *name, int64_t *since_ms,
			      enum registry_fault_kind *kind)
{
	const struct fault *f = name ? fault_find(r, name) : NULL;
	if (f && since_ms)
		*since_ms = f->since_ms;
	if (f && kind)
		*kind = f->kind;
	return f ? f->msg : NULL;
}

size_t registry_fault_count(const struct registry *r)
{
	return r->n_faults;
}

void registry_fault_get(const struct registry *r, size_t i, const char **name,
			const char **msg, enum registry_fault_kind *kind)
{
	if (i >= r->n_faults)
		return;
	if (name)
		*name = r->faults[i].name;
	if (msg)
		*msg = r->faults[i].msg;
	if (kind)
		*kind = r->faults[i].kind;
}

/* --- the API's side ----------------------------------------------------------------- */

int registry_register(struct registry *r, struct vm *v, const char *actor, struct error **err)
{
	if (v->pid <= 0)
		return error_set(err, EINVAL, "cannot register VM '%s': no process given", v->name);
	/* the watch first, as in registry_refresh_registered(): from now on
	 * an exit is known even when a new process gets the PID within the
	 * same clock tick (and so the same start time) */
	_cleanup_close_ int pidfd = r->pidfds ? (int)syscall(SYS_pidfd_open, v->pid, 0) : -1;
	if (proc_start_time(r->host_root, v->pid, &v->start_time, err) < 0) {
		if ((*err)->code == ESRCH)
			(*err)->code = EINVAL; /* a PID that does not exist is bad input */
		return error_wrap(err, "cannot register VM '%s'", v->name);
	}
	/* what this VM needs, each one indexed row: the live VM holding its
	 * PID, its tenant's quota, its name; the use comes from the ledger */
	_cleanup_(vm_clear) struct vm h = { 0 };
	_cleanup_error_ struct error *e = NULL;
	if (store_vm_get_by_pid(r->store, v->pid, &h, &e) < 0) {
		if (e->code != ENOENT)
			return error_set(err, e->code, "%s", e->msg);
		error_free(&e);
	} else if ((h.start_time && h.start_time != v->start_time) || seen_exited(r, &h)) {
		_cleanup_free_ char *why = xasprintf("its PID %d now belongs to another process "
						     "(being registered as VM %s)", (int)v->pid,
						     v->name);
		mark_gone(r, NULL, &h, why);
	} else {
		return error_set(err, EEXIST, "cannot register VM '%s': process %d is already "
				 "registered as VM '%s'", v->name, (int)v->pid, h.name);
	}
	struct tenant t;
	if (store_tenant_get_limits(r->store, v->tenant, &t, &e) < 0) {
		if (e->code == ENOENT)
			return error_set(err, ENOENT, "cannot register VM '%s': no tenant '%s'",
					 v->name, v->tenant);
		return error_set(err, e->code, "%s", e->msg);
	}
	_cleanup_(vm_clear) struct vm same = { 0 };
	if (store_vm_get(r->store, v->name, &same, &e) == 0)
		return error_set(err, EEXIST, "VM '%s' already exists", v->name);
	if (e->code != ENOENT)
		return error_set(err, e->code, "%s", e->msg);
	origin_read(r->host_root, v);
	bool insert = false;
	_cleanup_(store_reservation_clear) struct store_reservation row = { 0 };
	if (bind_or_admit(r, v, &t, &insert, &row, err) < 0)
		return error_wrap(err, "cannot register VM '%s'", v->name);
	if (store_vm_register(r->store, insert ? &row : NULL, v, actor, err) < 0)
		return -1;
	if (insert)
		ledger_put_row(r, &row);
	/* the first refresh reads its threads (due 0) and keeps this watch */
	struct threads_seen *ts = seen_get(r, v->name);
	ts->pid = v->pid;
	ts->start_time = v->start_time;
	ts->num_threads = 0;
	ts->due = 0;
	ts->pass = r->passes;
	seen_watch(ts, &pidfd);
	log_info("VM %s (pid %d, %u vCPUs, %s) registered to tenant %s by %s", v->name,
		 (int)v->pid, v->vcpus, vm_source_to_string(v->source), v->tenant, actor);
	return 0;
}

int registry_release(struct registry *r, const char *name, const char *actor,
		     int (*move_out)(void *data, const struct vm *v, struct error **err),
		     void *data, struct error **err)
{
	_cleanup_(vm_clear) struct vm v = { 0 };
	_cleanup_error_ struct error *e = NULL;
	bool have_vm = store_vm_get(r->store, name, &v, &e) == 0;
	if (!have_vm && e->code != ENOENT)
		return error_set(err, e->code, "%s", e->msg);
	if (have_vm && vm_live(&v) && move_out && move_out(data, &v, err) < 0)
		return error_wrap(err, "cannot release VM '%s'", name);
	if (store_vm_delete(r->store, name, actor, err) < 0)
		return -1;
	ledger_drop(r, name);
	log_info("VM %s released by %s", name, actor);
	return 0;
}

void registry_vm_view_clear(struct registry_vm_view *v)
{
	if (!v)
		return;
	vm_clear(&v->vm);
	free(v->fault);
	v->fault = NULL;
}

/* A view from a row and/or a reservation. */
static void view_make(const struct registry *r, const struct vm *row,
		      const struct admit_reservation *res, struct registry_vm_view *out)
{
	memset(out, 0, sizeof(*out));
	if (row) {
		vm_copy(&out->vm, row);
	} else {
		snprintf(out->vm.name, sizeof(out->vm.name), "%s", res->vm);
		snprintf(out->vm.tenant, sizeof(out->vm.tenant), "%s", res->tenant);
		out->vm.vcpus = res->vcpus;
		out->vm.memory_set = res->memory_set;
		out->vm.memory_bytes = res->memory_bytes;
		out->vm.state = VM_STATE_ADMITTED;
		out->vm.source = VM_SOURCE_REGISTERED;
	}
	if (res) {
		out->admitted = true;
		out->res = *res;
	}
	const char *f = registry_fault_of(r, out->vm.name, &out->fault_since_ms,
					  &out->fault_kind);
	out->fault = f ? xstrdup(f) : NULL;
}

int registry_vm_get(struct registry *r, const char *name, struct registry_vm_view *out,
		    struct error **err)
{
	_cleanup_(vm_clear) struct vm v = { 0 };
	_cleanup_(store_reservation_clear) struct store_reservation sr = { 0 };
	_cleanup_error_ struct error *e1 = NULL, *e2 = NULL;
	bool have_vm = store_vm_get(r->store, name, &v, &e1) == 0;
	bool have_res = store_reservation_get(r->store, name, &sr, &e2) == 0;
	if (!have_vm && e1->code != ENOENT)
		return error_set(err, e1->code, "%s", e1->msg);
	if (!have_res && e2->code != ENOENT)
		return error_set(err, e2->code, "%s", e2->msg);
	if (!have_vm && !have_res)
		return error_set(err, ENOENT, "no VM '%.80s'", name);
	struct admit_reservation ar;
	_cleanup_error_ struct error *pe = NULL;
	bool parsed = have_res && res_from_store(&sr, &ar, &pe) == 0;
	if (have_res && !parsed)
		warn_once(r, "admission: %s", pe->msg);
	if (!have_vm && !parsed)
		return error_set(err, EIO, "VM '%s': its reservation cannot be read", name);
	view_make(r, have_vm ? &v : NULL, parsed ? &ar : NULL, out);
	return 0;
}

static int view_cmp(const void *a, const void *b)
{
	return strcmp(((const struct registry_vm_view *)a)->vm.name,
		      ((const struct registry_vm_view *)b)->vm.name);
}

int registry_vm_list(struct registry *r, struct registry_vm_view **out, size_t *n,
		     struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_(inventory_clear) struct inventory inv = { 0 };
	if (registry_inventory_load(r, &inv, err) < 0)
		return -1;
	struct registry_vm_view *v = xcalloc(inv.n_vms + inv.n_res + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < inv.n_vms; i++)
		view_make(r, &inv.vms[i], inventory_reservation(&inv, inv.vms[i].name), &v[k++]);
	for (size_t i = 0; i < inv.n_res; i++)
		if (!inventory_vm(&inv, inv.res[i].vm))
			view_make(r, NULL, &inv.res[i], &v[k++]);
	/* by name, admitted-only ones among the rest */
	qsort(v, k, sizeof(*v), view_cmp);
	*out = v;
	*n = k;
	return 0;
}
