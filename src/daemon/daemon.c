/* daemon.c - vcpud's main loop.
 *
 * Start-up: open the store (migrating it), load the policy, start the API
 * server, report readiness. Then one poll() loop: signals (TERM/INT stop,
 * HUP reloads the policy), the tick timer (the control loop of DESIGN.md:
 * discover, plan, reconcile, sample, decide, record; and once a minute the
 * audit log's retention) and API requests.
 * Nothing here writes SQLite or cgroupfs directly: the store and the cgroup
 * engine do. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include "daemon/control.h"
#include "daemon/daemon.h"
#include "daemon/discovery.h"
#include "daemon/notify.h"
#include "daemon/heap.h"
#include "api/fleet.h"
#include "vcpud/api.h"
#include "vcpud/cgroup.h"
#include "vcpud/discover.h"
#include "vcpud/ledger.h"
#include "vcpud/log.h"
#include "vcpud/plan.h"
#include "vcpud/policy.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

struct daemon {
	const struct daemon_options *opt;
	struct store *store;
	struct policy *policy;
	struct api_ctx api;
	struct api_server *server;
	struct notify notify;     /* systemd: READY, STATUS, WATCHDOG */
	struct cgroup_engine *engine;
	struct control *control;  /* sample, decide, record */
	/* the last desired tree: kept while the plan's inputs keep its
	 * fingerprint (a steady tick plans nothing) */
	struct cgroup_tree *tree;
	struct discovery *disc;   /* registered, libvirt and /proc VMs */
	struct registry *reg;     /* the VM lifecycle, its faults */
	struct topology *topo;    /* the host, from --host-root's sysfs */
	struct pools pools;       /* from the policy; recomputed on reload */
	char *cgroup_root;
	char *cgroup_mount;      /* NULL with --cgroup-root: the root's parent */
	int sig_fd;
	int timer_fd;
	uint64_t ticks;
	int64_t place_due_ns;    /* monotonic: a change asks for a placement
				    pass by then (0: none asked) */
	bool place_discover;     /* ... that runs discovery too (a libvirt event) */
	int64_t place_took_ns;   /* how long the last placement pass took */
	char *last_error;        /* the last tick error logged, to log repeats once */
	unsigned tick_errors;    /* failures in the current tick */
	char *tick_error_msg;    /* the first of them */
	struct cgroup_reconcile_stats last_stats; /* last said at info, and when */
	int64_t last_stats_ns;
	int64_t next_prune_ns;   /* monotonic; 0: prune the audit log next tick */
	uint64_t pruned;         /* events deleted since the last log line */
	char *libvirt_error;     /* what /v1/health shows (d->api borrows it) */
	int64_t stage_start_ns;  /* monotonic: the tick's current stage began */
	int64_t stage_max_ns;    /* its longest stage so far: the API waits that long */
	struct ledger *ledger;   /* tenants and quotas: local, or the fleet's */
	uint64_t bookings_gen;   /* the reservations last handed to the fleet */
	int64_t bookings_due_ns; /* ... and when to hand them again anyway */
	bool fleet_read;         /* the fleet's tenants were read once */
	char **kept_said;        /* local tenants not in the fleet, said once */
	size_t n_kept_said;
	char **fleet_seen;       /* tenants the fleet held at some read of this run */
	size_t n_fleet_seen;
	bool stop;
};

/* This host's reservations are handed to the fleet ledger when they
 * change, and this often anyway (it releases what the host no longer
 * has, and books what it has unbooked). */
#define BOOKINGS_SYNC_NS (30 * (int64_t)1000000000)

/* Within a tick's reconcile and sampling, API reads are answered at least
 * this often. */
#define STAGE_YIELD_US 3000

/* How long a change waits for the ones that follow it before its
 * placement pass: a burst of registrations shares one pass. At least
 * PLACE_DELAY_NS; at least PLACE_DELAY_PER_PASS times what the last pass
 * took (a pass costs with the number of VMs and holds the API's changes
 * while it runs: under a stream of changes, passes take at most a third of
 * the loop); at most PLACE_DELAY_MAX_NS. */
#define PLACE_DELAY_NS (20 * (int64_t)1000000)
#define PLACE_DELAY_PER_PASS 2
#define PLACE_DELAY_MAX_NS (200 * (int64_t)1000000)

/* How often the audit log is trimmed to the policy's events.* limits. */
#define EVENTS_PRUNE_EVERY_NS (60 * (int64_t)1000000000)
/* How often a reconcile figure that repeats is said at info. */
#define RECONCILE_REPEAT_NS (60 * (int64_t)1000000000)

static void report_ready(int *ready_fd, const char *msg)
{
	if (*ready_fd < 0)
		return;
	_cleanup_free_ char *line = xasprintf("%s\n", msg);
	ssize_t n = write(*ready_fd, line, strlen(line));
	(void)n;
	close(*ready_fd);
	*ready_fd = -1;
}

/* mkdir the last component of dirname(path) when missing (e.g. /run/vcpud) */
static int ensure_parent_dir(const char *path, mode_t mode, struct error **err)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return error_set_errno(err, errno, "cannot create directory %s", dir);
	return 0;
}

static int arm_timer(struct daemon *d, struct error **err)
{
	uint32_t ms = d->policy->interval_ms;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { ms / 1000, (long)(ms % 1000) * 1000000L },
	};
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return error_set_errno(err, errno, "cannot arm the tick timer");
	return 0;
}

/* The policy file, or with no --policy and no file at the default path,
 * the built-in defaults (the values of policies/default.yaml). */
static int policy_read(const struct daemon_options *o, struct policy **out, bool *builtin,
		       struct error **err)
{
	*builtin = false;
	struct stat st;
	if (!o->policy_given && stat(o->policy_path, &st) < 0 && errno == ENOENT) {
		struct policy *p = xcalloc(1, sizeof(*p));
		policy_defaults(p);
		*out = p;
		*builtin = true;
		return 0;
	}
	return policy_load_file(o->policy_path, out, err);
}

static const char *policy_name(const struct daemon *d)
{
	return d->api.policy_builtin ? "built-in defaults" : d->opt->policy_path;
}

static void reload_policy(struct daemon *d)
{
	_cleanup_error_ struct error *err = NULL;
	struct policy *np = NULL;
	bool builtin = false;
	if (policy_read(d->opt, &np, &builtin, &err) < 0) {
		log_error("SIGHUP: policy not reloaded, keeping the current one: %s", err->msg);
		return;
	}
	struct pools np_pools;
	_cleanup_error_ struct error *perr = NULL;
	if (topology_pools(d->topo, &np->housekeeping, &np->dedicated, &np_pools, &perr) < 0) {
		log_error("SIGHUP: policy not reloaded, keeping the current one: %s: %s",
			  d->opt->policy_path, perr->msg);
		policy_free(np);
		return;
	}
	d->pools = np_pools;
	discovery_configure(d->disc, np);
	registry_configure(d->reg, &d->pools, np->cpu_ratio, np->gone_grace_s);
	bool interval_changed = np->interval_ms != d->policy->interval_ms;
	policy_free(d->policy);
	d->policy = np;
	d->api.policy = np;
	d->api.policy_builtin = builtin;
	d->api.policy_path = policy_name(d);
	d->api.interval_ms = np->interval_ms;
	control_set_interval(d->control, np->interval_ms);
	d->next_prune_ns = 0; /* new events.* limits apply at the next tick */
	if (builtin)
		log_info("SIGHUP: still no policy file at %s: keeping the built-in defaults",
			 d->opt->policy_path);
	else
		log_info("SIGHUP: policy %s reloaded", d->opt->policy_path);
	_cleanup_error_ struct error *e2 = NULL;
	if (interval_changed && arm_timer(d, &e2) < 0)
		log_error("%s", e2->msg);
	_cleanup_error_ struct error *e3 = NULL;
	if (store_event_add(d->store, "vcpud", "policy.reload", policy_name(d), NULL, &e3) < 0)
		log_warn("cannot record the policy reload: %s", e3->msg);
}

/* A tick failure: counted for /v1/health, logged once while it repeats. */
static void tick_error(struct daemon *d, const char *msg)
{
	d->tick_errors++;
	if (!d->tick_error_msg)
		d->tick_error_msg = xstrdup(msg);
	if (d->last_error && strcmp(d->last_error, msg) == 0) {
		log_debug("%s (again)", msg);
		return;
	}
	log_error("%s", msg);
	free(d->last_error);
	d->last_error = xstrdup(msg);
}

static void plan_fault(void *data, const char *tenant, const char *vm, const char *msg)
{
	struct daemon *d = data;
	if (vm && name_valid(vm))
		registry_fault_set(d->reg, vm, REGISTRY_FAULT_PLAN, msg);
	else
		tick_error(d, msg);
	(void)tenant;
}

/* plan + reconcile: make the cgroup tree match the inventory, with the
 * throttler's caps laid over it. A VM that cannot be planned or written
 * is quarantined with its reason; every other one is still reconciled. */
static void serve_reads(void *data);

/* in_tick: API reads may be answered between planning and reconciling and
 * within a long reconcile (never in a placement pass, which runs between
 * api_server_run() calls and holds nothing back). */
static void reconcile(struct daemon *d, const struct inventory *inv, bool in_tick)
{
	_cleanup_error_ struct error *err = NULL;
	struct admit_host host = registry_host(d->reg, inv->res, inv->n_res);
	struct plan_input in = {
		.root = d->cgroup_root,
		.tenants = inv->tenants, .n_tenants = inv->n_tenants,
		.vms = inv->vms, .n_vms = inv->n_vms,
		.admission = &host,
		.fault = plan_fault, .fault_data = d,
		.best_effort_idle = d->policy->best_effort_idle,
		.burst_pct = d->policy->burst_pct,
	};
	in.caps = control_caps(d->control, &in.n_caps);
	/* the same inputs make the same tree, with the same plan faults
	 * (kept in the registry until the next plan) */
	uint64_t fp = plan_input_fingerprint(&in);
	if (!d->tree || d->tree->fingerprint != fp) {
		cgroup_tree_freep(&d->tree);
		d->tree = NULL;
		registry_faults_begin(d->reg, REGISTRY_FAULT_PLAN);
		int prc = plan_tree(&in, &d->tree, &err);
		registry_faults_end(d->reg, REGISTRY_FAULT_PLAN);
		if (prc < 0) {
			tick_error(d, err->msg);
			return;
		}
		d->tree->fingerprint = fp;
	}
	const struct cgroup_tree *tree = d->tree;
	registry_faults_begin(d->reg, REGISTRY_FAULT_CGROUP);
	struct cgroup_reconcile_stats st = { 0 };
	struct cgroup_faults faults = { 0 };
	if (in_tick) {
		serve_reads(d);
		cgroup_engine_set_yield(d->engine, serve_reads, d, STAGE_YIELD_US);
	}
	int rc = cgroup_tree_reconcile(d->engine, tree, &st, &faults, &err);
	cgroup_engine_set_yield(d->engine, NULL, NULL, 0);
	size_t n_replanned;
	const char *const *replanned = cgroup_engine_replanned(d->engine, &n_replanned);
	control_replanned(d->control, replanned, n_replanned);
	for (size_t i = 0; i < faults.n; i++) {
		const struct cgroup_fault *f = &faults.v[i];
		if (f->vm[0]) {
			registry_fault_set(d->reg, f->vm, REGISTRY_FAULT_CGROUP, f->msg);
			continue;
		}
		tick_error(d, f->msg);
		/* a tenant skipped whole: each of its VMs says why */
		for (size_t t = 0; f->skipped && f->of_tenant && f->tenant[0] && t < tree->n_tenants;
		     t++)
			if (strcmp(tree->tenants[t].name, f->tenant) == 0)
				for (size_t j = 0; j < tree->tenants[t].n_vms; j++)
					registry_fault_set(d->reg, tree->tenants[t].vms[j].name,
							   REGISTRY_FAULT_CGROUP, f->msg);
	}
	cgroup_faults_clear(&faults);
	registry_faults_end(d->reg, REGISTRY_FAULT_CGROUP);
	d->api.last_writes += st.writes;
	d->tick_errors += st.errors;
	/* a steady tick writes nothing (a dry run too: its overlay reads its
	 * intents back) and says nothing; a figure that stays the same tick
	 * after tick (a vCPU thread that is gone, a group still busy) is
	 * said at info once a minute, at debug in between */
	if (st.writes || st.mkdirs || st.rmdirs || st.vanished || st.busy) {
		int64_t now = now_mono_ns();
		bool same = memcmp(&st, &d->last_stats, sizeof(st)) == 0 &&
			    now - d->last_stats_ns < RECONCILE_REPEAT_NS;
		if (!same) {
			d->last_stats = st;
			d->last_stats_ns = now;
		}
		log_msg(same ? LOG_LVL_DEBUG : LOG_LVL_INFO,
			"reconcile: %u writes (%u moves), %u mkdir, %u rmdir, %u vanished, "
			"%u busy, %u errors", st.writes, st.moves, st.mkdirs, st.rmdirs,
			st.vanished, st.busy, st.errors);
	} else {
		d->last_stats = st;
	}
	if (rc < 0 && !faults.n && err) {
		if (!d->tick_error_msg)
			d->tick_error_msg = xstrdup(err->msg);
		if (!d->last_error || strcmp(d->last_error, err->msg) != 0) {
			log_error("%s", err->msg);
			free(d->last_error);
			d->last_error = xstrdup(err->msg);
		}
	}
}

/* A stage of the tick ends: the longest one is how long an API read may
 * have waited (/v1/health last_tick_stage_max_us). */
static void stage_end(struct daemon *d)
{
	int64_t now = now_mono_ns();
	if (now - d->stage_start_ns > d->stage_max_ns)
		d->stage_max_ns = now - d->stage_start_ns;
	d->stage_start_ns = now;
}

/* What /v1/health says about the tick that just ended. */
static void health_update(struct daemon *d, int64_t started_ns, uint64_t sql0)
{
	d->api.last_tick_sql = store_statements(d->store) - sql0;
	d->api.ticks = d->ticks;
	d->api.last_errors = d->tick_errors;
	free(d->api.last_error);
	d->api.last_error = steal_ptr(&d->tick_error_msg);
	d->api.last_tick_ms = now_real_ns() / 1000000;
	d->api.last_tick_us = (uint32_t)((now_mono_ns() - started_ns) / 1000);
	api_tick_observe(&d->api, (double)d->api.last_tick_us / 1e6);
	stage_end(d);
	d->api.last_tick_stage_max_us = (uint32_t)(d->stage_max_ns / 1000);
	struct discovery_libvirt_state lv;
	discovery_libvirt_state(d->disc, &lv);
	d->api.libvirt_state = lv.state; /* a static string */
	d->api.libvirt_since_ms = lv.since_ms;
	/* a copy: discovery replaces its own during the next tick, while the
	 * API may answer /v1/health between that tick's stages */
	free(d->libvirt_error);
	d->libvirt_error = lv.error ? xstrdup(lv.error) : NULL;
	d->api.libvirt_error = d->libvirt_error;
	if (d->tick_errors == 0 && !d->api.last_error) {
		free(d->last_error);
		d->last_error = NULL;
	}
}

/* The audit log's retention (policy events.*), from the tick: at most
 * once a minute, one bounded batch (STORE_EVENT_PRUNE_BATCH rows) a call;
 * while a backlog remains (a full batch went) it goes on every tick, so a
 * large backlog is worked off without any one tick stalling. One info line
 * when a round deleted anything. */
static void events_prune(struct daemon *d)
{
	int64_t now = now_mono_ns();
	if (d->next_prune_ns && now < d->next_prune_ns)
		return;
	const struct policy *p = d->policy;
	uint64_t n = 0;
	_cleanup_error_ struct error *err = NULL;
	if (store_event_prune(d->store, now_real_ns() / 1000000, p->events_retention_days,
			      p->events_max_rows, &n, &err) < 0) {
		tick_error(d, err->msg);
		d->next_prune_ns = now + EVENTS_PRUNE_EVERY_NS;
		return;
	}
	d->pruned += n;
	if (n >= STORE_EVENT_PRUNE_BATCH) {
		d->next_prune_ns = 0;
		return;
	}
	d->next_prune_ns = now + EVENTS_PRUNE_EVERY_NS;
	if (d->pruned)
		log_info("events: pruned %llu rows older than %u days / beyond %u rows",
			 (unsigned long long)d->pruned, (unsigned)p->events_retention_days,
			 (unsigned)p->events_max_rows);
	d->pruned = 0;
}

/* Between two stages of a tick: answer the API's waiting reads (changes
 * wait for the end of the tick), so that a long tick never holds up
 * /v1/health or /v1/top for more than one stage. */
static void serve_reads(void *data)
{
	struct daemon *d = data;
	stage_end(d);
	api_server_serve_reads(d->server);
	d->stage_start_ns = now_mono_ns();
}

/* The lifecycle's part of a pass over the inventory: what the sources see
 * (when `discover`; the identity and admission faults they find are
 * renewed), PIDs two VMs claim, VMs running without an admission, and
 * (when `expire`) the end of gone VMs' grace. */
static void lifecycle(struct daemon *d, struct inventory *inv, bool discover, bool expire)
{
	if (discover) {
		registry_faults_begin(d->reg, REGISTRY_FAULT_IDENTITY);
		registry_faults_begin(d->reg, REGISTRY_FAULT_ADMISSION);
		discovery_run(d->disc, d->reg, inv);
	}
	registry_check_pids(d->reg, inv);
	registry_admit_missing(d->reg, inv);
	if (expire)
		registry_expire(d->reg, inv);
	if (discover) {
		registry_faults_end(d->reg, REGISTRY_FAULT_IDENTITY);
		registry_faults_end(d->reg, REGISTRY_FAULT_ADMISSION);
		d->api.unmanaged = discovery_unmanaged(d->disc);
	}
}

/* One control-loop tick, in the order of DESIGN.md: read the inventory
 * once; discover (the sources, merged by the registry); plan and
 * reconcile; sample, decide, record; when the decision changed a cap,
 * plan and reconcile again at once so it takes effect in this tick. */
/* --- the fleet ledger's side -------------------------------------------------- */

static void place_soon(struct daemon *d, bool discover);

/* Whether name is in the list; added when it is not (false then). */
static bool listed_or_add(char ***list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*list)[i], name) == 0)
			return true;
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrdup(name);
	return false;
}

static bool kept_said(struct daemon *d, const char *name)
{
	return listed_or_add(&d->kept_said, &d->n_kept_said, name);
}

/* The fleet's tenants: the local copy made to match (the fleet is the
 * truth). A local tenant the fleet no longer has (it had it at an earlier
 * read of this run: deleted in the fleet) goes, unless VMs here still
 * count against it; one the fleet never had in this run (this host kept
 * tenants before it joined, or the fleet lost it while this host was
 * down) stays and is said once: admissions for it are refused (no tenant
 * in the fleet) until an operator creates it in the fleet or deletes it. */
static void on_fleet_tenants(void *data, const struct tenant *ts, size_t n)
{
	struct daemon *d = data;
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		listed_or_add(&d->fleet_seen, &d->n_fleet_seen, ts[i].name);
		_cleanup_error_ struct error *e = NULL;
		int rc = api_fleet_tenant_copy(d->store, &ts[i], "fleet", &e);
		if (rc < 0)
			log_warn("fleet: tenant %s not copied here: %s", ts[i].name, e->msg);
		else if (rc > 0) {
			log_info("fleet: tenant %s copied from the fleet: %u vCPUs, weight %u",
				 ts[i].name, ts[i].vcpus, ts[i].weight);
			changed = true;
		}
	}
	_cleanup_free_ struct tenant *local = NULL;
	size_t nl = 0;
	_cleanup_error_ struct error *le = NULL;
	if (store_tenant_list(d->store, &local, &nl, &le) < 0) {
		log_warn("fleet: cannot list the local tenants: %s", le->msg);
		nl = 0;
	}
	for (size_t i = 0; i < nl; i++) {
		bool in_fleet = false;
		for (size_t j = 0; j < n && !in_fleet; j++)
			in_fleet = strcmp(ts[j].name, local[i].name) == 0;
		if (in_fleet)
			continue;
		bool seen = false;
		for (size_t j = 0; j < d->n_fleet_seen && !seen; j++)
			seen = strcmp(d->fleet_seen[j], local[i].name) == 0;
		if (!seen) {
			if (!kept_said(d, local[i].name))
				log_warn("fleet: tenant %s is on this host only, not in the fleet: its "
					 "VMs here are kept, new ones refused; create it in the fleet "
					 "(vcpuctl tenant create) or delete it (vcpuctl tenant delete)",
					 local[i].name);
			continue;
		}
		if (local[i].vm_count || local[i].vcpus_used) {
			if (!kept_said(d, local[i].name))
				log_warn("fleet: tenant %s is not in the fleet, but %u of its VMs are "
					 "here: kept until they are released", local[i].name,
					 local[i].vm_count);
			continue;
		}
		_cleanup_error_ struct error *e = NULL;
		if (store_tenant_delete(d->store, local[i].name, "fleet", &e) < 0)
			log_warn("fleet: tenant %s, gone from the fleet, stays here: %s",
				 local[i].name, e->msg);
		else {
			log_info("fleet: tenant %s is gone from the fleet: deleted here",
				 local[i].name);
			changed = true;
		}
	}
	if (!d->fleet_read) {
		log_info("fleet: %zu tenants read from etcd", n);
		d->fleet_read = true;
	}
	if (changed)
		place_soon(d, false);
}

static void on_fleet_notice(void *data, const char *action, const char *target, json_t *details)
{
	struct daemon *d = data;
	_cleanup_free_ char *det = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS)
					   : NULL;
	_cleanup_error_ struct error *e = NULL;
	if (store_event_add(d->store, "fleet", action, target, det, &e) < 0)
		log_warn("fleet: cannot record %s of %s: %s", action, target, e->msg);
}

/* This host's reservations to the fleet ledger when they changed (or
 * every BOOKINGS_SYNC_NS). Not while an admission waits for the ledger:
 * its booking is in etcd before its reservation is here. */
static void sync_bookings(struct daemon *d)
{
	if (!ledger_is_fleet(d->ledger) || d->api.ledger_busy)
		return;
	uint64_t gen = registry_ledger_gen(d->reg);
	int64_t now = now_mono_ns();
	if (gen == d->bookings_gen && now < d->bookings_due_ns)
		return;
	struct ledger_booking *b = NULL;
	ssize_t n = registry_bookings(d->reg, &b);
	if (n < 0)
		return; /* the reservations could not be read: not "none" */
	ledger_sync_bookings(d->ledger, b, (size_t)n);
	free(b);
	d->bookings_gen = gen;
	d->bookings_due_ns = now + BOOKINGS_SYNC_NS;
}

static int ledger_start(struct daemon *d, struct error **err)
{
	if (!d->opt->fleet) {
		d->ledger = ledger_local_new();
		d->api.ledger = d->ledger;
		return 0;
	}
	char **urls = NULL;
	size_t n = 0;
	if (fleet_urls_parse(d->opt->fleet, &urls, &n, err) < 0)
		return -1;
	char host[256] = "";
	const char *host_id = d->opt->host_id;
	if (!host_id) {
		/* the kernel's name for this host: no NSS lookup */
		if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host_id = host; /* whole: node1.dc1 and node1.dc2 are two hosts */
	}
	struct fleet_config fc = {
		.urls = (const char *const *)urls, .n_urls = n,
		.cacert = d->opt->fleet_cacert, .cert = d->opt->fleet_cert, .key = d->opt->fleet_key,
		.host_id = host_id, .prefix = "/vcpud/",
		.timeout_ms = d->policy->fleet_timeout_ms,
		.lease_ttl_s = d->policy->fleet_lease_ttl_s,
		.evict_dead_after_s = d->policy->fleet_evict_dead_after_s,
		.on_tenants = on_fleet_tenants, .on_notice = on_fleet_notice, .data = d,
	};
	int rc = fleet_new(&fc, &d->ledger, err);
	fleet_urls_free(urls);
	if (rc < 0)
		return -1;
	d->api.ledger = d->ledger;
	registry_set_fleet_quotas(d->reg, true);
	log_info("fleet: host %s, tenants and quotas in etcd at %s (timeout %u ms); until it is "
		 "read, the tenants last copied here are enforced", host_id, d->opt->fleet,
		 d->policy->fleet_timeout_ms);
	return 0;
}

static void tick(struct daemon *d)
{
	int64_t started = now_mono_ns();
	uint64_t sql0 = store_statements(d->store);
	d->ticks++;
	d->api.last_writes = 0;
	d->tick_errors = 0;
	free(d->tick_error_msg);
	d->tick_error_msg = NULL;
	d->place_due_ns = 0; /* the tick places everything */
	d->stage_start_ns = started;
	d->stage_max_ns = 0;
	d->place_discover = false;

	_cleanup_error_ struct error *err = NULL;
	_cleanup_(inventory_clear) struct inventory inv = { 0 };
	if (registry_inventory_load(d->reg, &inv, &err) < 0) {
		tick_error(d, err->msg);
		health_update(d, started, sql0);
		return;
	}
	registry_ledger_resync(d->reg, &inv);
	serve_reads(d);
	lifecycle(d, &inv, true, true);
	serve_reads(d);

	reconcile(d, &inv, true);
	serve_reads(d);
	struct control_input in = {
		.store = d->store,
		.cgroup_root = d->cgroup_root,
		.policy = d->policy,
		.tick = d->ticks,
		.engine_dry_run = d->opt->dry_run,
		.tenants = inv.tenants, .n_tenants = inv.n_tenants,
		.vms = inv.vms, .n_vms = inv.n_vms,
		.yield = serve_reads, .yield_data = d, .yield_every_us = STAGE_YIELD_US,
	};
	bool caps_changed = false;
	if (control_tick(d->control, &in, &caps_changed, &err) < 0) {
		tick_error(d, err->msg);
	} else {
		/* threads found gone or changed: read again at the next tick */
		size_t n_news;
		const struct registry_thread_news *news = control_thread_news(d->control, &n_news);
		registry_thread_news(d->reg, news, n_news);
		if (caps_changed)
			reconcile(d, &inv, true);
	}
	events_prune(d);
	sync_bookings(d);
	health_update(d, started, sql0);
	api_server_resume(d->server);
	_cleanup_free_ char *st = xasprintf("%zu VMs, %zu tenants; tick %llu took %.1f ms%s%s",
					    inv.n_vms, inv.n_tenants, (unsigned long long)d->ticks,
					    (double)(now_mono_ns() - started) / 1e6,
					    d->tick_error_msg ? "; degraded: " : "",
					    d->tick_error_msg ? d->tick_error_msg : "");
	notify_status(&d->notify, st);
}

/* A placement pass: what a change (an API call, a libvirt event) needs
 * at once, without the tick's sampling and recording: read the inventory,
 * discover when a source changed, plan and reconcile. The engine's
 * knowledge of the kernel makes this cost the changed VM's files only,
 * whatever the number of VMs, and changes that come within
 * PLACE_DELAY_NS of each other share one pass. */
static void place(struct daemon *d)
{
	int64_t started = now_mono_ns();
	bool discover = d->place_discover;
	d->place_due_ns = 0;
	d->place_discover = false;
	_cleanup_error_ struct error *err = NULL;
	_cleanup_(inventory_clear) struct inventory inv = { 0 };
	if (registry_inventory_load(d->reg, &inv, &err) < 0) {
		tick_error(d, err->msg);
		return;
	}
	lifecycle(d, &inv, discover, false);
	unsigned writes0 = d->api.last_writes;
	reconcile(d, &inv, false);
	log_debug("placed after a change%s: %u reads, %u writes, %u moves in %.1f ms",
		  discover ? " (with discovery)" : "", d->last_stats.reads,
		  d->api.last_writes - writes0, d->last_stats.moves,
		  (double)(now_mono_ns() - started) / 1e6);
	d->place_took_ns = now_mono_ns() - started;
}

/* Ask for a placement pass within the placement delay (PLACE_DELAY_NS). */
static void place_soon(struct daemon *d, bool discover)
{
	int64_t delay = d->place_took_ns * PLACE_DELAY_PER_PASS;
	delay = delay < PLACE_DELAY_NS ? PLACE_DELAY_NS
	      : delay > PLACE_DELAY_MAX_NS ? PLACE_DELAY_MAX_NS : delay;
	if (!d->place_due_ns)
		d->place_due_ns = now_mono_ns() + delay;
	d->place_discover |= discover;
}

static int on_release_process(void *data, const struct vm *v, struct error **err)
{
	struct daemon *d = data;
	if (cgroup_engine_release_process(d->engine, d->cgroup_root, v->pid, v->origin_cgroup,
					  err) < 0)
		return -1;
	log_info("VM %s released: process %d moved to %s", v->name, (int)v->pid,
		 v->origin_cgroup[0] ? v->origin_cgroup : "the root cgroup");
	return 0;
}

static json_t *api_top(void *data)
{
	struct daemon *d = data;
	return control_top(d->control);
}

static json_t *api_explain(void *data, const char *vm)
{
	struct daemon *d = data;
	return control_explain(d->control, d->policy, vm);
}

static void api_metrics(void *data, FILE *f)
{
	struct daemon *d = data;
	control_metrics(d->control, f);
}

static void api_samples_pending(void *data, const char *vm, int64_t since_ms,
				struct store_sample **out, size_t *n)
{
	struct daemon *d = data;
	control_history_pending(d->control, vm, since_ms, out, n);
}

static void on_api_change(void *data)
{
	place_soon(data, false);
}

/* The cgroup root: --cgroup-root as given, else the cgroup2 mount found by
 * cgroup_discover() (which refuses a hybrid or v1 host) + /vcpud.slice. */
static int setup_cgroups(struct daemon *d, struct error **err)
{
	if (d->opt->cgroup_root) {
		d->cgroup_root = xstrdup(d->opt->cgroup_root);
	} else {
		if (cgroup_discover("/", &d->cgroup_mount, err) < 0)
			return error_wrap(err, "cannot use this host's cgroups");
		d->cgroup_root = path_join(d->cgroup_mount, "vcpud.slice", NULL);
	}
	struct cgroup_engine_config cfg = {
		.cgroup_mount = d->cgroup_mount,
		.sysroot = d->opt->host_root,
		.dry_run = d->opt->dry_run,
	};
	if (cgroup_engine_new(&cfg, &d->engine, err) < 0)
		return -1;
	return 0;
}

static void reload_tokens(struct daemon *d)
{
	_cleanup_error_ struct error *err = NULL;
	int n = api_server_reload_tokens(d->server, &err);
	if (n < 0)
		log_error("SIGHUP: tokens not reloaded, keeping the current ones: %s", err->msg);
	else if (d->opt->token_file) {
		log_info("SIGHUP: %d token(s) of %s loaded", n, d->opt->token_file);
		_cleanup_error_ struct error *e = NULL;
		char det[32];
		snprintf(det, sizeof(det), "{\"tokens\":%d}", n);
		if (store_event_add(d->store, "vcpud", "tokens.reload", d->opt->token_file, det,
				    &e) < 0)
			log_warn("cannot record the token reload: %s", e->msg);
	}
}

static void reload_tls(struct daemon *d)
{
	_cleanup_error_ struct error *err = NULL;
	int r = api_server_reload_tls(d->server, &err);
	if (r < 0) {
		log_error("SIGHUP: %s", err->msg);
		return;
	}
	if (r == 0)
		return;
	log_info("SIGHUP: TLS certificate %s reloaded: new connections get it", d->opt->tls_cert);
	_cleanup_error_ struct error *e = NULL;
	if (store_event_add(d->store, "vcpud", "tls.reload", d->opt->tls_cert, NULL, &e) < 0)
		log_warn("cannot record the TLS reload: %s", e->msg);
}

static void handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;
	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: shutting down", (int)si.ssi_signo);
			d->stop = true;
			break;
		case SIGHUP:
			notify_reloading(&d->notify);
			reload_policy(d);
			reload_tokens(d);
			reload_tls(d);
			notify_ready(&d->notify, "reloaded");
			break;
		default:
			break;
		}
	}
}

static int daemon_start(struct daemon *d, struct error **err)
{
	gid_t group = (gid_t)-1;
	if (daemon_options_check(d->opt, &group, err) < 0)
		return -1;
	if (policy_read(d->opt, &d->policy, &d->api.policy_builtin, err) < 0)
		return error_wrap(err, "cannot load the policy");
	if (d->api.policy_builtin)
		log_info("no policy file at %s and no --policy: running on the built-in "
			 "defaults (the values of policies/default.yaml)", d->opt->policy_path);
	if (topology_load(d->opt->host_root, &d->topo, err) < 0)
		return error_wrap(err, "cannot read the host's topology");
	if (topology_pools(d->topo, &d->policy->housekeeping, &d->policy->dedicated, &d->pools,
			   err) < 0)
		return error_wrap(err, "policy %s", policy_name(d));
	if (control_new(d->opt->host_root, d->policy->interval_ms, &d->control, err) < 0)
		return -1;
	if (d->opt->sampler != DAEMON_SAMPLER_PREAD) {
		_cleanup_error_ struct error *be = NULL;
		if (control_use_bpf(d->control, &be) == 0)
			log_info("sampler: BPF task iterator (one walk of the host's tasks a "
				 "tick for all VMs, no file kept per vCPU thread)");
		else if (d->opt->sampler == DAEMON_SAMPLER_BPF)
			return error_set(err, be->code, "--sampler bpf: %s", be->msg);
		else
			log_info("sampler: schedstat files, one kept per vCPU thread (BPF not "
				 "used: %s)", be->msg);
	}
	d->api.sampler = control_sampler(d->control);
	if (discovery_new(d->opt->host_root, d->opt->libvirt_uri, d->policy, &d->disc, err) < 0)
		return -1;
	if (ensure_parent_dir(d->opt->db_path, 0750, err) < 0)
		return -1;
	if (store_open(d->opt->db_path, &d->store, err) < 0)
		return -1;
	/* the tick never waits for a checkpoint's disk writes */
	_cleanup_error_ struct error *ce = NULL;
	if (store_checkpoint_in_background(d->store, 0, &ce) < 0)
		log_warn("%s: checkpoints stay in the commits", ce->msg);
	struct registry_config rcfg = {
		.store = d->store, .host_root = d->opt->host_root, .topo = d->topo,
		.pools = &d->pools, .cpu_ratio = d->policy->cpu_ratio,
		.gone_grace_s = d->policy->gone_grace_s,
	};
	if (registry_new(&rcfg, &d->reg, err) < 0)
		return -1;
	if (setup_cgroups(d, err) < 0)
		return -1;
	if (ledger_start(d, err) < 0)
		return -1;
	/* the caps an earlier run set are still in cpu.max: take them over
	 * before the first tick, which would otherwise lift them */
	size_t adopted = 0;
	_cleanup_error_ struct error *aerr = NULL;
	if (control_adopt(d->control, d->store, &adopted, &aerr) < 0)
		log_warn("cannot read the saved throttle caps: %s; starting without them",
			 aerr->msg);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0)
		return error_set_errno(err, errno, "signalfd");
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return error_set_errno(err, errno, "timerfd_create");
	if (arm_timer(d, err) < 0)
		return -1;

	d->api.store = d->store;
	d->api.reg = d->reg;
	d->api.policy = d->policy;
	d->api.policy_path = policy_name(d);
	d->api.started_mono_ns = now_mono_ns();
	d->api.host_root = d->opt->host_root;
	d->api.topo = d->topo;
	d->api.pools = &d->pools;
	d->api.after_change = on_api_change;
	d->api.after_change_data = d;
	d->api.top = api_top;
	d->api.top_data = d;
	d->api.explain = api_explain;
	d->api.explain_data = d;
	d->api.metrics = api_metrics;
	d->api.metrics_data = d;
	d->api.samples_pending = api_samples_pending;
	d->api.samples_pending_data = d;
	d->api.release_process = on_release_process;
	d->api.cgroup_root = d->cgroup_root;
	d->api.dry_run = d->opt->dry_run;
	d->api.interval_ms = d->policy->interval_ms;
	if (ensure_parent_dir(d->opt->socket_path, 0755, err) < 0)
		return -1;
	struct api_server_config cfg = {
		.socket_path = d->opt->socket_path,
		.group = group,
		.group_set = d->opt->socket_group != NULL,
		.listen = d->opt->listen,
		.tls_cert = d->opt->tls_cert,
		.tls_key = d->opt->tls_key,
		.insecure_http = d->opt->insecure_http,
		.token_file = d->opt->token_file,
	};
	if (api_server_start(&d->api, &cfg, &d->server, err) < 0)
		return -1;
	return 0;
}

static void daemon_teardown(struct daemon *d)
{
	/* the fleet's threads first: what still waits for it is answered
	 * (ECANCELED) while the server can still deliver */
	ledger_free(d->ledger);
	d->ledger = NULL;
	d->api.ledger = NULL;
	api_server_stop(d->server);
	for (size_t i = 0; i < d->n_kept_said; i++)
		free(d->kept_said[i]);
	free(d->kept_said);
	for (size_t i = 0; i < d->n_fleet_seen; i++)
		free(d->fleet_seen[i]);
	free(d->fleet_seen);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->store && d->control && d->policy) {
		/* the history rows still in memory: a clean stop loses none */
		_cleanup_error_ struct error *e = NULL;
		if (control_history_flush(d->control, d->store, d->policy->retention_s, &e) < 0)
			log_warn("cannot record the last samples: %s", e->msg);
	}
	if (d->store)
		store_close(d->store);
	if (d->policy)
		policy_free(d->policy);
	if (d->engine)
		cgroup_engine_free(d->engine);
	cgroup_tree_freep(&d->tree);
	d->api.top = NULL;
	d->api.top_data = NULL;
	d->api.explain = NULL;
	d->api.explain_data = NULL;
	d->api.metrics = NULL;
	d->api.metrics_data = NULL;
	control_free(d->control);
	d->api.unmanaged = NULL;
	discovery_free(d->disc);
	registry_free(d->reg);
	free(d->api.last_error);
	free(d->tick_error_msg);
	if (d->topo)
		topology_free(d->topo);
	free(d->cgroup_root);
	free(d->cgroup_mount);
	free(d->last_error);
	free(d->libvirt_error);
}

int daemon_run(const struct daemon_options *o, int ready_fd)
{
	struct daemon d = { .opt = o, .sig_fd = -1, .timer_fd = -1 };
	_cleanup_error_ struct error *err = NULL;

	notify_init(&d.notify);
	if (daemon_start(&d, &err) < 0) {
		log_error("%s", err->msg);
		report_ready(&ready_fd, err->msg);
		_cleanup_free_ char *st = xasprintf("failed to start: %s", err->msg);
		notify_status(&d.notify, st);
		notify_free(&d.notify);
		daemon_teardown(&d);
		return 1;
	}
	log_info("vcpud ready: socket %s%s%s%s, database %s (schema %d), policy %s, cgroup root "
		 "%s, tick %u ms%s", o->socket_path, o->listen ? ", " : "",
		 o->listen ? (o->insecure_http ? "http://" : "https://") : "",
		 o->listen ? o->listen : "", o->db_path, store_schema_version(d.store),
		 policy_name(&d), d.cgroup_root, d.policy->interval_ms,
		 o->dry_run ? ", dry-run" : "");
	/* the first tick adopts whatever tree an earlier run left */
	tick(&d);
	report_ready(&ready_fd, "ok");
	{
		_cleanup_free_ char *st = xasprintf("serving %s%s%s", o->socket_path,
						    o->listen ? " and " : "",
						    o->listen ? o->listen : "");
		notify_ready(&d.notify, st);
	}
	notify_watchdog(&d.notify);

	while (!d.stop) {
		struct pollfd pfd[5] = {
			{ .fd = d.sig_fd, .events = POLLIN },
			{ .fd = d.timer_fd, .events = POLLIN },
			{ .fd = api_server_fd(d.server), .events = POLLIN },
			{ .fd = discovery_fd(d.disc), .events = POLLIN }, /* -1: ignored */
			{ .fd = ledger_fd(d.ledger), .events = POLLIN },  /* -1: ignored */
		};
		int timeout = api_server_timeout_ms(d.server);
		int wd = notify_timeout_ms(&d.notify);
		if (wd >= 0 && (timeout < 0 || wd < timeout))
			timeout = wd;
		if (d.place_due_ns) {
			int64_t left = (d.place_due_ns - now_mono_ns() + 999999) / 1000000;
			int place_ms = left > 0 ? (int)left : 0;
			if (timeout < 0 || place_ms < timeout)
				timeout = place_ms;
		}
		int rc = poll(pfd, 5, timeout);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			break;
		}
		notify_watchdog(&d.notify);
		if (pfd[0].revents & POLLIN)
			handle_signal(&d);
		/* the fleet ledger's answers: admissions, tenants, notices */
		if (pfd[4].revents & POLLIN)
			ledger_dispatch(d.ledger);
		/* a domain started or stopped: discover and place it now */
		if ((pfd[3].revents & POLLIN) && discovery_dispatch(d.disc))
			place_soon(&d, true);
		if (pfd[1].revents & POLLIN) {
			uint64_t expirations;
			if (read(d.timer_fd, &expirations, sizeof(expirations)) > 0) {
				if (expirations > 1)
					log_debug("%llu ticks missed",
						  (unsigned long long)(expirations - 1));
				tick(&d);
				heap_after_tick(NULL); /* what the tick freed */
			}
		}
		/* MHD also needs a call on its own timeouts, so run it every time */
		api_server_run(d.server);
		if (d.place_due_ns && now_mono_ns() >= d.place_due_ns && !d.stop)
			place(&d);
	}
	notify_stopping(&d.notify);
	daemon_teardown(&d);
	notify_free(&d.notify);
	log_info("vcpud stopped");
	return 0;
}
