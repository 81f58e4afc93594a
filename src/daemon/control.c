/* control.c - sample, decide, record: the second half of vcpud's tick (see
 * control.h). Everything kernel-facing goes through the sampler (schedstat)
 * and the cgroup engine (cpu.stat); the decision itself is the pure
 * throttle_decide(). Per-VM and per-tenant runtime state (last cpu.stat
 * readings, effective CPUs) lives here, keyed by name, and is dropped when a
 * VM or tenant disappears. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/control.h"
#include "daemon/history.h"
#include "vcpud/discover.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/plan.h"
#include "vcpud/prom.h"
#include "vcpud/sample.h"
#include "vcpud/throttle.h"
#include "vcpud/util.h"

/* How often a VM's effective CPUs (its vCPU threads' Cpus_allowed_list) are
 * read again (spread over the VMs): an open per thread, for what changes
 * when vcpud places the VM (control_replanned() says so at once) or when
 * another tool sets an affinity (seen within this many ticks). */
#define CPUS_REFRESH_TICKS 60

/* A cgroup's cpu.stat, read through an fd kept open (pread each tick, as
 * the sampler does); a group that is not there (not made yet, a dry run)
 * is looked for again every CPU_STAT_RETRY_TICKS or when its VM is placed
 * anew. */
struct cg_reading {
	bool have;
	int64_t mono_ns;
	struct cgroup_cpu_stat stat;
	int fd;                       /* -1: none */
	uint64_t retry_tick;          /* no fd: open again from this tick */
};

#define CPU_STAT_RETRY_TICKS 10

struct vm_rt {
	char name[NAME_MAX_LEN + 1];
	struct cpuset cpus;
	unsigned n_cpus;              /* cpuset_count(&cpus) */
	bool cpus_known;
	uint64_t cpus_due;            /* the tick they are read again */
	struct cg_reading cg;
	bool seen;
	/* windows too short for the throttler to judge (an extra tick right
	 * after another), summed until they make one: time-weighted */
	struct {
		double w, usage, steal, steal_max, self;
	} pend;
};

/* One VM's line of /v1/top, kept by the tick; the JSON is made from these
 * when somebody asks (control_top), not at every tick. */
struct top_row {
	char name[NAME_MAX_LEN + 1];
	char tenant[NAME_MAX_LEN + 1];
	const char *class_;           /* static strings, or NULL */
	const char *state;
	const char *throttle;
	int vcpus;
	bool valid, live, capped;
	double usage_pct, steal_pct, steal_max_pct, throttled_pct;
	uint64_t cap_quota_us;
	bool have_cg;                 /* throttled_usec read (the VM's cpu.stat) */
	uint64_t throttled_usec;
};

/* One vCPU's counters as the last tick read them, for GET /metrics. */
struct vcpu_row {
	uint32_t row;                 /* its VM's top_row */
	uint32_t vcpu;
	uint64_t cpu_ns, delay_ns;
};

struct tenant_rt {
	char name[NAME_MAX_LEN + 1];
	struct cg_reading cg;
	double throttled_frac;
	unsigned vcpus;               /* this tick: its sampled VMs' vCPU threads */
	struct cpuset cpus;           /* this tick: the CPUs they may run on */
	bool cpus_known;
	bool seen;
};

struct control {
	char *host_root;
	/* host_root's proc is this kernel's own (procfs_is_real()): a
	 * thread's CPUs come from sched_getaffinity(), not from its status
	 * file */
	bool own_proc;
	int64_t interval_ns;
	struct sampler *sampler;
	struct vm_rt *vms;
	size_t n_vms, cap_vms;
	struct name_index vm_ix;      /* vms by name */
	struct tenant_rt *tenants;
	size_t n_tenants;
	struct name_index tenant_ix;
	struct name_index in_tenant_ix; /* the tick's input tenants by name */
	struct throttle_state ts;
	struct throttle_result tr;
	struct throttle_cap *own;     /* copies of the enforced caps */
	struct plan_vm_cap *caps;     /* the same for plan_tree(), names into own */
	size_t n_caps;
	/* the caps as last saved to the store (to save only what changed) */
	struct throttle_saved *saved;
	size_t n_saved;
	/* /v1/top: the last tick's rows, and their JSON once asked for */
	struct top_row *rows;
	size_t n_rows, cap_rows;
	/* /metrics: the vCPUs of the rows' VMs, and the throttle's actions */
	struct vcpu_row *vrows;
	size_t n_vrows, cap_vrows;
	uint64_t actions[THROTTLE_ACTION_LAST];
	int64_t top_ts_ms;
	uint64_t top_tick;
	uint32_t top_interval_ms;
	bool top_dry_run, top_throttle_enabled, have_top;
	json_t *top;
	/* the history rows on their way to the store */
	struct history *hist;
	/* what the last tick saw of the VMs' threads (control_thread_news) */
	struct registry_thread_news *news;
	size_t n_news, cap_news;
	/* per-tick buffers, grown as needed (no allocation in steady state) */
	struct sample_target *targets;
	struct sample_vcpu *out;
	size_t cap_targets;
};

int control_new(const char *host_root, uint32_t interval_ms, struct control **out,
		struct error **err)
{
	struct control *c = xcalloc(1, sizeof(*c));
	c->host_root = xstrdup(host_root ? host_root : "/");
	c->own_proc = procfs_is_real(c->host_root);
	c->interval_ns = (int64_t)interval_ms * 1000000;
	if (sampler_new(c->host_root, c->interval_ns, &c->sampler, err) < 0) {
		free(c->host_root);
		free(c);
		return -1;
	}
	throttle_state_init(&c->ts);
	c->hist = history_new();
	name_index_init(&c->vm_ix, sizeof(struct vm_rt), offsetof(struct vm_rt, name));
	name_index_init(&c->tenant_ix, sizeof(struct tenant_rt), offsetof(struct tenant_rt, name));
	name_index_init(&c->in_tenant_ix, sizeof(struct tenant), offsetof(struct tenant, name));
	*out = c;
	return 0;
}

static void cg_close(struct cg_reading *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	sampler_free(c->sampler);
	history_free(c->hist);
	throttle_state_clear(&c->ts);
	throttle_result_clear(&c->tr);
	throttle_saved_free(c->saved, c->n_saved);
	json_decref(c->top);
	for (size_t i = 0; i < c->n_vms; i++)
		cg_close(&c->vms[i].cg);
	for (size_t i = 0; i < c->n_tenants; i++)
		cg_close(&c->tenants[i].cg);
	free(c->rows);
	free(c->caps);
	free(c->own);
	free(c->vms);
	free(c->tenants);
	name_index_clear(&c->vm_ix);
	name_index_clear(&c->tenant_ix);
	name_index_clear(&c->in_tenant_ix);
	free(c->targets);
	free(c->out);
	free(c->vrows);
	free(c->news);
	free(c->host_root);
	free(c);
}

void control_set_interval(struct control *c, uint32_t interval_ms)
{
	c->interval_ns = (int64_t)interval_ms * 1000000;
	_cleanup_error_ struct error *err = NULL;
	if (sampler_set_interval(c->sampler, c->interval_ns, &err) < 0)
		log_warn("sampler: %s", err->msg);
}

const struct plan_vm_cap *control_caps(const struct control *c, size_t *n)
{
	*n = c->n_caps;
	return c->caps;
}

static bool vm_sampled(const struct vm *v)
{
	return v->state != VM_STATE_GONE && v->pid > 0 && v->n_threads > 0;
}

const struct registry_thread_news *control_thread_news(const struct control *c, size_t *n)
{
	*n = c->n_news;
	return c->news;
}

/* The news of this tick's sampling, VM by VM (targets are laid out VM by
 * VM, in the order of in->vms). */
static void news_make(struct control *c, const struct control_input *in)
{
	if (c->cap_news < in->n_vms) {
		c->cap_news = in->n_vms * 2;
		c->news = xrealloc(c->news, c->cap_news * sizeof(*c->news));
	}
	c->n_news = 0;
	size_t k = 0;
	for (size_t i = 0; i < in->n_vms; i++) {
		const struct vm *v = &in->vms[i];
		if (!vm_sampled(v))
			continue;
		struct registry_thread_news *x = &c->news[c->n_news++];
		*x = (struct registry_thread_news){ .vm = v->name, .n_threads = -1 };
		for (size_t j = 0; j < v->n_threads; j++)
			x->vcpu_gone |= c->out[k + j].gone;
		k += v->n_threads;
		size_t nt;
		if (sampler_process_threads(c->sampler, v->pid, &nt, &x->tid_sum) == 0)
			x->n_threads = (int64_t)nt;
	}
}

int control_use_bpf(struct control *c, struct error **err)
{
	return sampler_use_bpf(c->sampler, err);
}

const char *control_sampler(const struct control *c)
{
	return sampler_backend(c->sampler);
}

bool control_vm_cpus(const struct control *c, const char *vm, struct cpuset *out)
{
	size_t i = name_index_find(&c->vm_ix, c->vms, vm);
	if (i == SIZE_MAX || !c->vms[i].cpus_known)
		return false;
	*out = c->vms[i].cpus;
	return true;
}

/* --- runtime state by name --------------------------------------------------- */

static struct vm_rt *vm_rt_get(struct control *c, const char *name)
{
	size_t i = name_index_find(&c->vm_ix, c->vms, name);
	if (i != SIZE_MAX)
		return &c->vms[i];
	if (c->n_vms == c->cap_vms) {
		c->cap_vms = c->cap_vms ? 2 * c->cap_vms : 16;
		c->vms = xrealloc(c->vms, c->cap_vms * sizeof(*c->vms));
	}
	struct vm_rt *r = &c->vms[c->n_vms++];
	memset(r, 0, sizeof(*r));
	r->cg.fd = -1;
	strcpy(r->name, name);
	name_index_add(&c->vm_ix, c->vms, c->n_vms - 1);
	return r;
}

static struct tenant_rt *tenant_rt_get(struct control *c, const char *name)
{
	size_t i = name_index_find(&c->tenant_ix, c->tenants, name);
	if (i != SIZE_MAX)
		return &c->tenants[i];
	c->tenants = xrealloc(c->tenants, (c->n_tenants + 1) * sizeof(*c->tenants));
	struct tenant_rt *r = &c->tenants[c->n_tenants++];
	memset(r, 0, sizeof(*r));
	r->cg.fd = -1;
	strcpy(r->name, name);
	name_index_add(&c->tenant_ix, c->tenants, c->n_tenants - 1);
	return r;
}

void control_replanned(struct control *c, const char *const *vms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = name_index_find(&c->vm_ix, c->vms, vms[i]);
		if (k != SIZE_MAX) {
			c->vms[k].cpus_due = 0;
			/* its group may be new: cpu.stat opened again */
			cg_close(&c->vms[k].cg);
			c->vms[k].cg.retry_tick = 0;
		}
	}
}

/* Drop the entries not seen this tick (VMs released or gone, tenants
 * deleted) and clear the marks for the next one. */
static void rt_sweep(struct control *c)
{
	size_t j = 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		if (c->vms[i].seen) {
			c->vms[i].seen = false;
			c->vms[j++] = c->vms[i];
		} else {
			cg_close(&c->vms[i].cg);
		}
	}
	if (j != c->n_vms)
		name_index_build(&c->vm_ix, c->vms, j);
	c->n_vms = j;
	j = 0;
	for (size_t i = 0; i < c->n_tenants; i++) {
		if (c->tenants[i].seen) {
			c->tenants[i].seen = false;
			c->tenants[j++] = c->tenants[i];
		} else {
			cg_close(&c->tenants[i].cg);
		}
	}
	if (j != c->n_tenants)
		name_index_build(&c->tenant_ix, c->tenants, j);
	c->n_tenants = j;
}

/* --- readings ------------------------------------------------------------------ */

/* The same from the kernel at once (its cpus_mask within the active CPUs;
 * a cpuset's bits are laid out as a cpu_set_t's): 0; 1 when it cannot say
 * (a kernel with more CPUs than a cpuset holds); -1 when the thread is
 * gone. Unlike the status file it does not check that TID is still a
 * thread of the VM: a TID reused meanwhile is seen by the sampler (the
 * thread is no longer the VM process's) and the VM's threads are read
 * again (registry_thread_news). */
static int thread_affinity(pid_t tid, struct cpuset *out)
{
	_Static_assert(sizeof(out->bits) % sizeof(unsigned long) == 0, "cpuset words");
	if (sched_getaffinity(tid, sizeof(out->bits), (cpu_set_t *)(void *)out->bits) == 0)
		return 0;
	return errno == ESRCH ? -1 : 1;
}

/* The CPUs a thread may run on (cpuset and affinity together), from
 * /proc/PID/task/TID/status, or from the kernel when that proc is its own
 * (an open, a read of 1.5 KB of text and a parse less). */
static int thread_cpus(const struct control *c, pid_t pid, pid_t tid, struct cpuset *out)
{
	if (c->own_proc) {
		int rc = thread_affinity(tid, out);
		if (rc <= 0)
			return rc;
	}
	const char *host_root = c->host_root;
	char p[64], t[64];
	snprintf(p, sizeof(p), "%d", (int)pid);
	snprintf(t, sizeof(t), "%d", (int)tid);
	_cleanup_free_ char *path = path_join(host_root, "proc", p, "task", t, "status", NULL);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		if (str_has_prefix(line, "Cpus_allowed_list:"))
			return cpulist_parse(strstrip(line + strlen("Cpus_allowed_list:")), out, NULL);
	}
	return -1;
}

static void vm_cpus_refresh(struct control *c, struct vm_rt *r, const struct vm *v, uint64_t tick)
{
	if (r->cpus_known && tick < r->cpus_due)
		return;
	struct cpuset all, one;
	cpuset_zero(&all);
	bool any = false;
	for (size_t i = 0; i < v->n_threads; i++) {
		if (thread_cpus(c, v->pid, v->threads[i].tid, &one) == 0) {
			cpuset_or(&all, &all, &one);
			any = true;
		}
	}
	if (any) {
		r->cpus = all;
		r->n_cpus = cpuset_count(&all);
		r->cpus_known = true;
		r->cpus_due = recheck_due((uint32_t)tick, CPUS_REFRESH_TICKS,
					  hash_str(HASH_SEED, r->name));
	}
}

/* The cgroup's cpu.stat now (dir() names it when an fd must be opened;
 * NULL: a name that makes no path). -1 when it is not there. */
static int cg_read(struct cg_reading *r, uint64_t tick, char *(*dir)(const void *arg),
		   const void *arg, struct cgroup_cpu_stat *out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (r->fd < 0) {
			if (tick < r->retry_tick)
				return -1;
			_cleanup_free_ char *d = dir(arg);
			_cleanup_free_ char *path = d ? path_join(d, "cpu.stat", NULL) : NULL;
			r->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
			if (r->fd < 0) {
				r->retry_tick = tick + CPU_STAT_RETRY_TICKS;
				return -1;
			}
		}
		char buf[1024];
		ssize_t n = pread(r->fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			return cgroup_cpu_stat_parse(buf, out, NULL);
		}
		/* the group went (ENODEV), perhaps made again: reopen once */
		cg_close(r);
		r->retry_tick = 0;
	}
	return -1;
}

/* Share of the window a cgroup was throttled, updating its last reading.
 * A cgroup that cannot be read (not created yet, dry-run) counts as 0. */
static double cg_throttled(struct cg_reading *r, uint64_t tick, char *(*dir)(const void *arg),
			   const void *arg, int64_t now_ns, unsigned n_cpus)
{
	struct cgroup_cpu_stat cur;
	if (cg_read(r, tick, dir, arg, &cur) < 0) {
		r->have = false;
		return 0;
	}
	double frac = 0;
	if (r->have)
		sample_throttled_frac(&r->stat, &cur, now_ns - r->mono_ns, n_cpus, &frac);
	r->have = true;
	r->stat = cur;
	r->mono_ns = now_ns;
	return frac;
}

static const struct tenant *tenant_find(const struct control *c, const struct control_input *in,
				       const char *name)
{
	size_t i = name_index_find(&c->in_tenant_ix, in->tenants, name);
	return i == SIZE_MAX ? NULL : &in->tenants[i];
}

/* --- record --------------------------------------------------------------------- */

static json_t *cap_json(uint64_t quota_us)
{
	/* % of one pCPU, to 0.1 */
	return quota_us ? json_real(round((double)quota_us * 1000.0 / (double)THROTTLE_PERIOD_US) / 10)
			: json_null();
}

/* The event of one decision (its strings are the caller's to free), logged. */
static struct store_event_in action_event(const struct throttle_action *a)
{
	_cleanup_free_ char *cpu_max = a->quota_us
		? xasprintf("%llu %llu", (unsigned long long)a->quota_us,
			    (unsigned long long)THROTTLE_PERIOD_US)
		: xasprintf("max %llu", (unsigned long long)THROTTLE_PERIOD_US);
	/* most telling first: the table in `vcpuctl events` cuts the tail */
	json_t *d = json_pack("{s:s?,s:f,s:o,s:o,s:s,s:s,s:f,s:f,s:f,s:s,s:b}",
			      "victim", a->victim[0] ? a->victim : NULL,
			      "victim_steal_pct", round(a->victim_steal_pct * 10) / 10,
			      "cap_pct", cap_json(a->quota_us),
			      "old_cap_pct", cap_json(a->old_quota_us),
			      "cpu_max", cpu_max,
			      "reason", throttle_reason_name(a->reason),
			      "usage_pct", round(a->usage_pct * 10) / 10,
			      "floor_pct", round(a->floor_pct * 10) / 10,
			      "hold_s", a->hold_ms / 1000.0,
			      "tenant", a->tenant,
			      "dry_run", a->dry_run);
	char *text = json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(d);
	if (!text)
		abort();
	char *action = xasprintf("throttle.%s", throttle_action_name(a->kind));
	char *target = xasprintf("vm/%s", a->vm);
	log_info("throttle%s: %s %s -> cpu.max %s (%s; victim %s at %.1f%% steal, usage %.1f%%, "
		 "floor %.1f%%)", a->dry_run ? " (dry-run)" : "", throttle_action_name(a->kind),
		 a->vm, cpu_max, throttle_reason_name(a->reason), a->victim[0] ? a->victim : "-",
		 a->victim_steal_pct, a->usage_pct, a->floor_pct);
	return (struct store_event_in){ action, target, text };
}

static void events_free(struct store_event_in *ev, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)ev[i].action);
		free((char *)ev[i].target);
		free((char *)ev[i].details);
	}
	free(ev);
}

/* Record this tick's decisions as events and, when the caps or the law's
 * state of them changed, the caps, in one transaction: after a crash the
 * store never holds a decision without the cap it set, or the reverse. A
 * failed write is logged and tried again at the next tick. */
static void record(struct control *c, struct store *st, int64_t now_ms)
{
	struct throttle_saved *cur = NULL;
	size_t n_cur = throttle_state_export(&c->ts, &cur);
	bool save = !throttle_saved_equal(cur, n_cur, c->saved, c->n_saved);
	size_t n_ev = c->tr.n_actions;
	if (!n_ev && !save) {
		throttle_saved_free(cur, n_cur);
		return;
	}
	struct store_event_in *ev = xcalloc(n_ev ? n_ev : 1, sizeof(*ev));
	for (size_t i = 0; i < n_ev; i++) {
		ev[i] = action_event(&c->tr.actions[i]);
		if ((unsigned)c->tr.actions[i].kind < THROTTLE_ACTION_LAST)
			c->actions[c->tr.actions[i].kind]++;
	}
	struct store_throttle_cap *caps = xcalloc(n_cur ? n_cur : 1, sizeof(*caps));
	for (size_t i = 0; i < n_cur; i++) {
		caps[i].c = cur[i];
		caps[i].hold_until_ms = cur[i].hold_left_ms ? now_ms + cur[i].hold_left_ms : 0;
	}
	_cleanup_error_ struct error *err = NULL;
	if (store_throttle_record(st, ev, n_ev, save, caps, n_cur, &err) < 0) {
		log_warn("%s (tried again at the next tick)", err->msg);
		throttle_saved_free(cur, n_cur);
	} else {
		throttle_saved_free(c->saved, c->n_saved);
		c->saved = cur;
		c->n_saved = n_cur;
	}
	free(caps);
	events_free(ev, n_ev);
}

/* Make v[0..n) the caps in force: copies in c->own, the planner's view of
 * them in c->caps. */
static void caps_set(struct control *c, const struct throttle_cap *v, size_t n)
{
	c->own = xrealloc(c->own, (n ? n : 1) * sizeof(*c->own));
	c->caps = xrealloc(c->caps, (n ? n : 1) * sizeof(*c->caps));
	for (size_t i = 0; i < n; i++) {
		c->own[i] = v[i];
		c->caps[i] = (struct plan_vm_cap){ c->own[i].vm, c->own[i].quota_us };
	}
	c->n_caps = n;
}

/* Make the state's enforced caps the caps in force. */
static void caps_from_state(struct control *c)
{
	struct throttle_cap *v = NULL;
	size_t n = throttle_state_caps(&c->ts, &v);
	caps_set(c, v, n);
	free(v);
}

int control_adopt(struct control *c, struct store *st, size_t *adopted, struct error **err)
{
	*adopted = 0;
	struct store_throttle_cap *caps = NULL;
	size_t n = 0;
	if (store_throttle_load(st, &caps, &n, err) < 0)
		return -1;
	int64_t now_ms = now_real_ns() / 1000000;
	struct throttle_saved *v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i] = caps[i].c;
		int64_t left = caps[i].hold_until_ms - now_ms;
		v[i].hold_left_ms = left > 0 ? (uint32_t)(left < UINT32_MAX ? left : UINT32_MAX) : 0;
	}
	throttle_state_clear(&c->ts);
	*adopted = throttle_state_adopt(&c->ts, 0, now_mono_ns() / 1000000, v, n);
	free(v);
	store_throttle_caps_free(caps, n);
	caps_from_state(c);
	throttle_saved_free(c->saved, c->n_saved);
	c->n_saved = throttle_state_export(&c->ts, &c->saved);
	if (*adopted) {
		_cleanup_free_ char *names = xstrdup("");
		for (size_t i = 0; i < c->n_saved; i++) {
			char *m = xasprintf("%s%s%s %llu us%s", names, i ? ", " : "", c->saved[i].vm,
					    (unsigned long long)c->saved[i].quota_us,
					    c->saved[i].dry ? " (dry-run)" : "");
			free(names);
			names = m;
		}
		log_info("adopted %zu throttle caps from the database (%s)", *adopted, names);
	}
	return 0;
}

/* Take the decision's caps; true when they differ from the ones before
 * (both lists are sorted by VM name). */
static bool caps_take(struct control *c, const struct throttle_result *r)
{
	bool differ = c->n_caps != r->n_caps;
	for (size_t i = 0; !differ && i < r->n_caps; i++)
		differ = strcmp(c->own[i].vm, r->caps[i].vm) != 0 ||
			 c->own[i].quota_us != r->caps[i].quota_us;
	if (!differ)
		return false;
	caps_set(c, r->caps, r->n_caps);
	return true;
}

static json_t *num_or_null(bool valid, double v)
{
	return valid ? json_real(round(v * 10) / 10) : json_null();
}

int control_history_flush(struct control *c, struct store *st, uint32_t retention_s,
			  struct error **err)
{
	int64_t keep_since = now_real_ns() / 1000000 - (int64_t)retention_s * 1000;
	return history_flush_all(c->hist, st, keep_since, err) < 0 ? -1 : 0;
}

void control_history_pending(const struct control *c, const char *vm, int64_t since_ms,
			     struct store_sample **out, size_t *n)
{
	history_pending(c->hist, vm, since_ms, out, n);
}

json_t *control_top(struct control *c)
{
	if (c->top || !c->have_top)
		return c->top;
	json_t *vms = json_array();
	for (size_t i = 0; i < c->n_rows; i++) {
		const struct top_row *r = &c->rows[i];
		json_array_append_new(vms, json_pack(
			"{s:s,s:s,s:s?,s:s,s:i,s:o,s:o,s:o,s:o,s:o,s:s}",
			"name", r->name, "tenant", r->tenant, "class", r->class_,
			"state", r->state, "vcpus", r->vcpus,
			"usage_pct", num_or_null(r->valid, r->usage_pct),
			"steal_pct", num_or_null(r->valid, r->steal_pct),
			"steal_max_pct", num_or_null(r->valid, r->steal_max_pct),
			"throttled_pct", num_or_null(r->live, r->throttled_pct),
			"cap_pct", r->capped ? cap_json(r->cap_quota_us) : json_null(),
			"throttle", r->throttle));
	}
	c->top = json_pack("{s:I,s:I,s:i,s:b,s:b,s:o}", "ts_ms", (json_int_t)c->top_ts_ms, "tick",
			   (json_int_t)c->top_tick, "interval_ms", (int)c->top_interval_ms,
			   "dry_run", c->top_dry_run, "throttle_enabled", c->top_throttle_enabled,
			   "vms", vms);
	return c->top;
}

static json_t *pct_json(double v)
{
	return json_real(round(v * 10) / 10);
}

json_t *control_explain(struct control *c, const struct policy *pol, const char *vm)
{
	const struct top_row *r = NULL;
	for (size_t i = 0; c->have_top && i < c->n_rows; i++)
		if (strcmp(c->rows[i].name, vm) == 0)
			r = &c->rows[i];
	if (!r)
		return NULL;
	struct throttle_params prm;
	throttle_params_from_policy(&prm, pol);
	const struct throttle_vm_state *s = throttle_state_find(&c->ts, vm);
	int64_t now_ms = c->ts.now_ms;
	json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:b}", "status", r->throttle ? r->throttle : "none",
			      "usage_pct", num_or_null(r->valid, r->usage_pct),
			      "steal_pct", num_or_null(r->valid, r->steal_pct),
			      "self_throttled_pct", num_or_null(r->live, r->throttled_pct),
			      "dry_run", c->top_dry_run);
	/* as a victim: its runs, and the caps that name it */
	json_t *capped_for = json_array();
	for (size_t i = 0; i < c->ts.n_vms; i++) {
		const struct throttle_vm_state *a = &c->ts.vms[i];
		for (size_t k = 0; a->capped && k < a->n_victims; k++)
			if (strcmp(a->victims[k], vm) == 0)
				json_array_append_new(capped_for, json_pack(
					"{s:s,s:o,s:b}", "vm", a->name, "cap_pct", cap_json(a->quota_us),
					"dry_run", a->dry));
	}
	if (s && (s->victim || s->engaged || json_array_size(capped_for) || s->breach_s > 0)) {
		json_object_set_new(o, "victim", json_pack(
			"{s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			"engaged", s->engaged, "pressing", s->victim,
			"steal_pct", pct_json(s->steal_pct),
			"high_pct", pct_json(prm.high_pct), "low_pct", pct_json(prm.low_pct),
			"clear_level_pct", pct_json(throttle_clear_level(&prm, s)),
			"resid_pct", s->resid_pct > 0 ? pct_json(s->resid_pct) : json_null(),
			"breach_s", json_real(round(s->breach_s * 10) / 10),
			"breach_need_s", json_real(prm.breach_s),
			"clear_s", json_real(round(s->clear_s * 10) / 10),
			"capped_for_it", capped_for));
	} else {
		json_decref(capped_for);
		json_object_set_new(o, "victim", json_null());
	}
	/* as an antagonist: its cap */
	if (s && s->capped) {
		json_t *victims = json_array();
		for (size_t k = 0; k < s->n_victims; k++)
			json_array_append_new(victims, json_string(s->victims[k]));
		int64_t left = s->hold_until_ms - now_ms;
		_cleanup_free_ char *cpu_max = xasprintf("%llu %llu", (unsigned long long)s->quota_us,
							 (unsigned long long)THROTTLE_PERIOD_US);
		json_object_set_new(o, "cap", json_pack(
			"{s:o,s:s,s:b,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:s?,s:o}",
			"cap_pct", cap_json(s->quota_us), "cpu_max", cpu_max, "dry_run", s->dry,
			"last_good_pct", s->last_good_us ? cap_json(s->last_good_us) : json_null(),
			"probing", s->probing,
			"hold_s", json_real(s->hold_len_ms / 1000.0),
			"hold_left_s", json_real(left > 0 ? round(left / 100.0) / 10 : 0),
			"calm_s", json_real(round(s->calm_s * 10) / 10),
			"clear_need_s", json_real(prm.clear_s),
			"idle_pct", json_real(prm.idle_pct),
			"last_action", (unsigned)s->last_kind < THROTTLE_ACTION_LAST
				? throttle_action_name(s->last_kind) : NULL,
			"victims", victims));
	} else {
		json_object_set_new(o, "cap", json_null());
	}
	return o;
}

/* The per-vCPU and per-VM families of GET /metrics, from the last tick. */
#define VROW(r) ((const struct vcpu_row *)(r))
#define TROW(r) ((const struct top_row *)(r))

static bool v_run(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = (double)VROW(row)->cpu_ns / 1e9;
	return true;
}

static bool v_delay(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = (double)VROW(row)->delay_ns / 1e9;
	return true;
}

static const struct prom_col vcpu_cols[] = {
	{ "vcpud_vcpu_run_seconds_total", "counter",
	  "time the vCPU thread ran on a pCPU (schedstat; restarts with the thread)", v_run },
	{ "vcpud_vcpu_delay_seconds_total", "counter",
	  "time the vCPU thread waited runnable for a pCPU: steal as the guest sees it "
	  "(schedstat run_delay; restarts with the thread)", v_delay },
};

static void vcpu_labels(const void *ctx, const void *row, char *buf, const char **l)
{
	const struct top_row *tr = &((const struct control *)ctx)->rows[VROW(row)->row];
	snprintf(buf, PROM_LABEL_BUF, "%u", VROW(row)->vcpu);
	l[0] = "tenant";
	l[1] = tr->tenant;
	l[2] = "vm";
	l[3] = tr->name;
	l[4] = "vcpu";
	l[5] = buf;
}

static bool m_usage(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = TROW(row)->usage_pct / 100;
	return TROW(row)->valid;
}

static bool m_steal(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = TROW(row)->steal_pct / 100;
	return TROW(row)->valid;
}

static bool m_throttled(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = (double)TROW(row)->throttled_usec / 1e6;
	return TROW(row)->have_cg;
}

static bool m_cap(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = (double)TROW(row)->cap_quota_us / (double)THROTTLE_PERIOD_US;
	return TROW(row)->capped;
}

static const struct prom_col vm_cols[] = {
	{ "vcpud_vm_usage_cores", "gauge",
	  "the VM's vCPUs' CPU use over the last tick's window, in cores", m_usage },
	{ "vcpud_vm_steal_ratio", "gauge",
	  "the mean over the VM's vCPUs of the share of the window they waited for a "
	  "pCPU (0-1)", m_steal },
	{ "vcpud_vm_throttled_seconds_total", "counter",
	  "time the VM's cgroup was held back by a CPU cap (cpu.stat throttled_usec)",
	  m_throttled },
	{ "vcpud_vm_cpu_cap_cores", "gauge",
	  "the noisy-neighbour throttle's cap on the VM, in cores (absent: not capped)", m_cap },
};

static void vm_labels(const void *ctx, const void *row, char *buf, const char **l)
{
	(void)ctx;
	(void)buf;
	l[0] = "tenant";
	l[1] = TROW(row)->tenant;
	l[2] = "vm";
	l[3] = TROW(row)->name;
}

void control_metrics(struct control *c, FILE *f)
{
	prom_rows(f, vcpu_cols, ARRAY_SIZE(vcpu_cols), c->vrows, c->have_top ? c->n_vrows : 0,
		  sizeof(*c->vrows), vcpu_labels, c);
	prom_rows(f, vm_cols, ARRAY_SIZE(vm_cols), c->rows, c->have_top ? c->n_rows : 0,
		  sizeof(*c->rows), vm_labels, c);
	prom_family(f, "vcpud_throttle_actions_total", "counter",
		    "the noisy-neighbour throttle's decisions since vcpud started, by action");
	for (int k = 0; k < THROTTLE_ACTION_LAST; k++)
		prom_sample(f, "vcpud_throttle_actions_total",
			    (const char *[]){ "action", throttle_action_name(k), NULL },
			    (double)c->actions[k]);
}

/* --- the tick ---------------------------------------------------------------------- */

/* Where a tenant's or a VM's cpu.stat is, made only when it is opened. */
struct dir_of {
	const struct control_input *in;
	const char *tenant, *vm;
};

static char *tenant_dir_of(const void *arg)
{
	const struct dir_of *a = arg;
	char *dir = NULL;
	return cgroup_tenant_dir(a->in->cgroup_root, a->tenant, &dir, NULL) < 0 ? NULL : dir;
}

static char *vm_dir_of(const void *arg)
{
	const struct dir_of *a = arg;
	char *dir = NULL;
	return cgroup_vm_dir(a->in->cgroup_root, a->tenant, a->vm, &dir, NULL) < 0 ? NULL : dir;
}

/* Extra ticks (API changes, libvirt events) make windows shorter than the
 * throttler judges. Under a cpu.max period the sampler reports nothing and
 * keeps its baseline (the next window spans both); from there to
 * min_window_s they are summed here, weighted by their lengths, until they
 * make one long enough, which is handed on (the last one's obs becomes the
 * whole; the ones before stay short and are not judged). */
static void pend_window(struct vm_rt *r, struct throttle_vm_obs *o, double min_window_s)
{
	if (!o->valid || !(o->window_s > 0))
		return; /* the sampler's own baseline carries the time */
	if (r->pend.w == 0 && o->window_s >= min_window_s)
		return; /* the usual case: one tick, one window */
	double w = o->window_s;
	r->pend.w += w;
	r->pend.usage += o->usage_pct * w;
	r->pend.steal += o->steal_pct * w;
	r->pend.self += o->self_throttled_frac * w;
	if (o->steal_max_pct > r->pend.steal_max)
		r->pend.steal_max = o->steal_max_pct;
	if (r->pend.w < min_window_s)
		return; /* still short: not judged */
	o->window_s = r->pend.w;
	o->usage_pct = r->pend.usage / r->pend.w;
	o->steal_pct = r->pend.steal / r->pend.w;
	o->self_throttled_frac = r->pend.self / r->pend.w;
	o->steal_max_pct = r->pend.steal_max;
	memset(&r->pend, 0, sizeof(r->pend));
}

int control_tick(struct control *c, const struct control_input *in, bool *caps_changed,
		 struct error **err)
{
	*caps_changed = false;
	int64_t now_ns = now_mono_ns();
	int64_t now_ms = now_real_ns() / 1000000;

	/* sample: every vCPU thread of every live VM */
	size_t n = 0;
	for (size_t i = 0; i < in->n_vms; i++)
		if (vm_sampled(&in->vms[i]))
			n += in->vms[i].n_threads;
	if (n > c->cap_targets) {
		c->cap_targets = n * 2;
		c->targets = xrealloc(c->targets, c->cap_targets * sizeof(*c->targets));
		c->out = xrealloc(c->out, c->cap_targets * sizeof(*c->out));
	}
	size_t k = 0;
	for (size_t i = 0; i < in->n_vms; i++) {
		const struct vm *v = &in->vms[i];
		if (!vm_sampled(v))
			continue;
		for (size_t j = 0; j < v->n_threads; j++)
			c->targets[k++] = (struct sample_target){ v->name, v->threads[j].index, v->pid,
								  v->threads[j].tid };
	}
	_cleanup_error_ struct error *serr = NULL;
	/* thousands of threads: API reads are answered in between */
	sampler_set_yield(c->sampler, in->yield, in->yield_data, in->yield_every_us);
	int src = sampler_tick(c->sampler, c->targets, n, now_ns, c->out, &serr);
	sampler_set_yield(c->sampler, NULL, NULL, 0);
	if (src < 0) {
		if (serr->code == EMFILE)
			return error_set(err, EMFILE, "%s", serr->msg);
		log_debug("sampler: %s", serr->msg); /* per-thread failures: out[] is filled */
	}
	/* the shortest window the throttler judges */
	double min_window_s = in->policy->interval_ms / 2000.0;
	news_make(c, in);

	/* per tenant: its own cap's throttling (counters are per cgroup, and
	 * add up over the CPUs its threads ran on: divided, as a VM's, by
	 * min(vCPU threads, CPUs they may use), not by the threads alone,
	 * which under 4:1 overcommit read a tenant's cap 4 times too low) */
	name_index_build(&c->in_tenant_ix, in->tenants, in->n_tenants);
	for (size_t i = 0; i < in->n_tenants; i++) {
		struct tenant_rt *tr = tenant_rt_get(c, in->tenants[i].name);
		tr->seen = true;
		tr->vcpus = 0;
		tr->cpus_known = false;
		cpuset_zero(&tr->cpus);
	}
	for (size_t j = 0; j < in->n_vms; j++) {
		const struct vm *v = &in->vms[j];
		if (!tenant_find(c, in, v->tenant))
			continue;
		struct tenant_rt *tr = tenant_rt_get(c, v->tenant);
		if (!vm_sampled(v))
			continue;
		tr->vcpus += (unsigned)v->n_threads;
		struct vm_rt *r = vm_rt_get(c, v->name);
		vm_cpus_refresh(c, r, v, in->tick);
		if (r->cpus_known) {
			cpuset_or(&tr->cpus, &tr->cpus, &r->cpus);
			tr->cpus_known = true;
		}
	}
	for (size_t i = 0; i < in->n_tenants; i++) {
		const struct tenant *t = &in->tenants[i];
		struct tenant_rt *tr = tenant_rt_get(c, t->name);
		unsigned ncpu = tr->vcpus;
		if (tr->cpus_known && cpuset_count(&tr->cpus) < ncpu)
			ncpu = cpuset_count(&tr->cpus);
		struct dir_of at = { in, t->name, NULL };
		tr->throttled_frac = cg_throttled(&tr->cg, in->tick, tenant_dir_of, &at, now_ns,
						  ncpu);
	}

	/* per VM: figures for the throttler */
	struct throttle_vm_obs *obs = xcalloc(in->n_vms ? in->n_vms : 1, sizeof(*obs));
	struct sample_agg *agg = xcalloc(in->n_vms ? in->n_vms : 1, sizeof(*agg));
	double *thr = xcalloc(in->n_vms ? in->n_vms : 1, sizeof(*thr));
	size_t n_obs = 0;
	k = 0;
	for (size_t i = 0; i < in->n_vms; i++) {
		const struct vm *v = &in->vms[i];
		const struct tenant *t = tenant_find(c, in, v->tenant);
		if (!vm_sampled(v) || !t)
			continue;
		struct vm_rt *r = vm_rt_get(c, v->name); /* its CPUs: refreshed above */
		r->seen = true;
		struct sample_agg *a = &agg[i];
		sample_agg_add_all(a, c->out + k, v->n_threads);
		k += v->n_threads;
		unsigned ncpu = r->cpus_known ? r->n_cpus : (unsigned)v->n_threads;
		unsigned nthr = (unsigned)v->n_threads < ncpu ? (unsigned)v->n_threads : ncpu;
		struct dir_of at = { in, v->tenant, v->name };
		double vf = cg_throttled(&r->cg, in->tick, vm_dir_of, &at, now_ns, nthr);
		double tf = tenant_rt_get(c, t->name)->throttled_frac;
		/* a throttled tenant does not count in its VMs' cgroups: add */
		thr[i] = vf + tf < 1 ? vf + tf : 1;
		struct throttle_vm_obs *o = &obs[n_obs++];
		o->name = v->name;
		o->tenant = v->tenant;
		o->class_ = t->class_;
		o->weight = t->weight;
		/* the cpu.weight plan_tree() gives its VM cgroup */
		o->vm_weight = plan_vm_weight(v->weight, v->vcpus);
		o->vcpus = v->vcpus;
		if (r->cpus_known)
			o->cpus = r->cpus;
		else
			cpuset_zero(&o->cpus);
		o->valid = a->n_valid > 0 && a->n_valid == a->n_vcpus;
		o->usage_pct = a->usage_sum_pct;
		o->steal_pct = sample_agg_steal_mean_pct(a);
		o->steal_max_pct = a->steal_max_pct;
		o->self_throttled_frac = thr[i];
		o->window_s = (double)a->window_ns / 1e9;
		pend_window(r, o, min_window_s);
	}
	rt_sweep(c);

	if (in->yield)
		in->yield(in->yield_data);

	/* decide */
	struct throttle_params prm;
	throttle_params_from_policy(&prm, in->policy);
	prm.lag_ticks = 1; /* the daemon reconciles right after a change */
	/* with --dry-run no cap reaches the kernel, so deciding as if it did
	 * would tighten forever: decide in the throttler's dry-run mode too */
	if (in->engine_dry_run)
		prm.dry_run = true;
	throttle_decide(&c->ts, &prm, in->tick, now_ns / 1000000, obs, n_obs, &c->tr);
	*caps_changed = caps_take(c, &c->tr);

	if (in->yield)
		in->yield(in->yield_data);

	/* record: decisions as events with the caps, figures as history, the
	 * top snapshot */
	record(c, in->store, now_ms);

	/* no API read is answered from here until the rows are done: the
	 * rows of /v1/top are replaced in place, its JSON dropped to be made
	 * when asked */
	if (in->n_vms > c->cap_rows) {
		c->cap_rows = in->n_vms * 2;
		c->rows = xrealloc(c->rows, c->cap_rows * sizeof(*c->rows));
	}
	json_decref(c->top);
	c->top = NULL;
	c->n_rows = 0;
	c->n_vrows = 0;
	if (n > c->cap_vrows) {
		c->cap_vrows = n * 2;
		c->vrows = xrealloc(c->vrows, c->cap_vrows * sizeof(*c->vrows));
	}
	k = 0;
	for (size_t i = 0; i < in->n_vms; i++) {
		const struct vm *v = &in->vms[i];
		const struct tenant *t = tenant_find(c, in, v->tenant);
		bool live = vm_sampled(v) && t;
		/* its vCPUs' counters (the sampler's slice of this VM) */
		if (vm_sampled(v)) {
			for (size_t j = 0; j < v->n_threads && live; j++) {
				const struct sample_vcpu *o = &c->out[k + j];
				if (o->cpu_ns || o->run_delay_ns)
					c->vrows[c->n_vrows++] = (struct vcpu_row){
						(uint32_t)c->n_rows, c->targets[k + j].vcpu,
						o->cpu_ns, o->run_delay_ns };
			}
			k += v->n_threads;
		}
		const struct sample_agg *a = &agg[i];
		bool valid = live && a->n_valid > 0;
		const struct throttle_vm_state *ts = throttle_state_find(&c->ts, v->name);
		history_note(c->hist, v->name, valid, now_ms, a->usage_sum_pct,
			     sample_agg_steal_mean_pct(a),
			     ts && ts->capped && !ts->dry
				     ? (double)ts->quota_us * 100.0 / (double)THROTTLE_PERIOD_US : NAN);
		struct top_row *tr = &c->rows[c->n_rows++];
		_Static_assert(sizeof(tr->name) == sizeof(v->name) &&
			       sizeof(tr->tenant) == sizeof(v->tenant), "top row names");
		memcpy(tr->name, v->name, sizeof(tr->name));
		memcpy(tr->tenant, v->tenant, sizeof(tr->tenant));
		tr->class_ = t ? tenant_class_to_string(t->class_) : NULL;
		tr->state = vm_state_to_string(v->state);
		tr->throttle = throttle_status_name(throttle_vm_status(&c->ts, v->name));
		tr->vcpus = (int)v->vcpus;
		tr->valid = valid;
		tr->live = live;
		tr->capped = ts && ts->capped && !ts->dry;
		tr->cap_quota_us = tr->capped ? ts->quota_us : 0;
		tr->usage_pct = a->usage_sum_pct;
		tr->steal_pct = sample_agg_steal_mean_pct(a);
		tr->steal_max_pct = a->steal_max_pct;
		tr->throttled_pct = thr[i] * 100;
		const struct vm_rt *rt = live ? vm_rt_get(c, v->name) : NULL;
		tr->have_cg = rt && rt->cg.have;
		tr->throttled_usec = tr->have_cg ? rt->cg.stat.throttled_usec : 0;
	}
	c->have_top = true;
	c->top_ts_ms = now_ms;
	c->top_tick = in->tick;
	c->top_interval_ms = in->policy->interval_ms;
	c->top_dry_run = in->engine_dry_run || in->policy->throttle_dry_run;
	c->top_throttle_enabled = in->policy->throttle_enabled;
	/* /v1/top is whole again: reads may come in before the history */
	if (in->yield)
		in->yield(in->yield_data);
	_cleanup_error_ struct error *e2 = NULL;
	int64_t keep_since = now_ms - (int64_t)in->policy->retention_s * 1000;
	if (history_write(c->hist, in->store, in->tick, keep_since, &e2) < 0)
		log_warn("cannot record samples: %s", e2->msg);
	free(obs);
	free(agg);
	free(thr);
	return 0;
}
