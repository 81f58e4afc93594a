/* control.h - the sample -> decide -> record half of vcpud's tick.
 *
 * After discover/plan/reconcile, control_tick() samples every vCPU thread
 * (schedstat through kept fds) and the VM and tenant cgroups' cpu.stat,
 * derives per-VM figures, lets the pure throttler decide, records the
 * decisions as events and the figures as sample history in the store, and
 * keeps the /v1/top snapshot. The caps it holds are laid over the planned
 * tree by the daemon's next reconcile (immediately when they changed). */
#ifndef VCPUD_DAEMON_CONTROL_H
#define VCPUD_DAEMON_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vcpud/cgroup.h"
#include "vcpud/error.h"
#include "vcpud/plan.h"
#include "vcpud/policy.h"
#include "vcpud/registry.h"
#include "vcpud/store.h"

struct control;

int control_new(const char *host_root, uint32_t interval_ms, struct control **out,
		struct error **err);
void control_free(struct control *c);

/* A policy reload may change the interval. */
void control_set_interval(struct control *c, uint32_t interval_ms);

struct control_input {
	struct store *store;
	const char *cgroup_root;
	const struct policy *policy;
	uint64_t tick;
	bool engine_dry_run;          /* --dry-run: say so in /v1/top */
	const struct tenant *tenants;
	size_t n_tenants;
	const struct vm *vms;         /* as stored this tick (after discover) */
	size_t n_vms;
	/* called between the stage's steps (within and after sampling, after
	 * deciding, before the history is written):
	 * the daemon answers waiting API reads there; NULL: none */
	void (*yield)(void *data);
	void *yield_data;
	unsigned yield_every_us;      /* ... and within the sampling, this often */
};

/* One tick's sample, decide and record. *caps_changed says whether the set
 * of enforced caps differs from before (the daemon then reconciles again at
 * once). Failures of one VM or one store write are logged, not fatal. */
int control_tick(struct control *c, const struct control_input *in, bool *caps_changed,
		 struct error **err);

/* Take over the throttle caps saved by an earlier run (a crash, an
 * upgrade), with what is left of their holds, before the first tick: the
 * first reconcile then lays them over the tree as they are in cpu.max, and
 * the law goes on from there. *adopted = how many (logged). */
int control_adopt(struct control *c, struct store *st, size_t *adopted, struct error **err);

/* These VMs were placed anew (cgroup_engine_replanned()): their threads'
 * effective CPUs are read again at the next tick. */
void control_replanned(struct control *c, const char *const *vms, size_t n);

/* What the last tick's sampling saw of each sampled VM's threads, for
 * registry_thread_news() (valid until the next tick; names point into
 * that tick's input). */
const struct registry_thread_news *control_thread_news(const struct control *c, size_t *n);

/* Read vCPU threads through BPF from now on (sampler_use_bpf()): 0, or -1
 * and *err saying why not (the schedstat files stay). */
int control_use_bpf(struct control *c, struct error **err);
/* "bpf" or "pread" (a static string). */
const char *control_sampler(const struct control *c);

/* The caps in force, for plan_tree() (valid until the next control_tick). */
const struct plan_vm_cap *control_caps(const struct control *c, size_t *n);

/* The CPUs VM `vm`'s vCPU threads may run on (cpuset and affinity
 * together), as last read by a tick: false when not known. */
bool control_vm_cpus(const struct control *c, const char *vm, struct cpuset *out);

/* The history rows still in memory (history.h): all of them written, and
 * every VM's pruned to retention_s, at a clean stop. */
int control_history_flush(struct control *c, struct store *st, uint32_t retention_s,
			  struct error **err);

/* Rows of `vm` with ts_ms >= since_ms not written yet, oldest first (*out
 * freed by the caller). */
void control_history_pending(const struct control *c, const char *vm, int64_t since_ms,
			     struct store_sample **out, size_t *n);

/* The latest /v1/top object (borrowed, valid until the next control_tick;
 * NULL before the first tick), made at the first call after a tick. */
json_t *control_top(struct control *c);

/* The throttler's view of one VM for GET /v1/vms/NAME/explain: its last
 * figures, whether it is a victim (its runs, clear level, residual, the
 * caps that name it) and its cap (hold, last good cap, victims). NULL when
 * the last tick did not see the VM. New reference. */
json_t *control_explain(struct control *c, const struct policy *pol, const char *vm);

/* GET /metrics' families of the last tick: per vCPU run and delay seconds,
 * per VM usage, steal, throttled seconds and cap, and the throttle's
 * actions so far. */
void control_metrics(struct control *c, FILE *f);

#endif
