/* throttle.h - the noisy-neighbour decision ("decide" in DESIGN.md's control
 * loop): a pure function of this tick's per-VM samples, the policy and the
 * state it keeps across ticks, returning the throttle actions to record and
 * the VM-level cpu.max caps for the planner to lay over the tree. No I/O,
 * no clocks, no globals; the same inputs always give the same outputs.
 *
 * Once per tick, after sampling, the daemon calls
 *
 *     throttle_params_from_policy(&params, policy);
 *     throttle_decide(&state, &params, tick, now_ms, obs, n_obs, &result);
 *
 * records result.actions as events and hands result.caps to plan_tree()
 * (struct plan_vm_cap { vm, quota_us }) at the next tick.
 *
 * Who is who (DESIGN.md "Noisy-neighbour throttling"):
 *  - a VM's steal is the mean over its vCPUs (or the max: steal.metric),
 *    less the time it waited on its own or its tenant's cpu.max (the
 *    throttler's cap included: self_throttled_frac), which is not
 *    contention; what is left counts, however much it was held back;
 *  - a victim is a VM of a guaranteed or burstable tenant whose steal has
 *    been above steal.high_pct for steal.breach_s seconds of judged
 *    windows in a row;
 *  - its antagonists are the VMs whose effective CPUs intersect its own,
 *    that are neither guaranteed nor in throttle.exempt_tenants, and that
 *    belong to a lower class than the victim (best-effort < burstable <
 *    guaranteed) or, in the same class, use more than THROTTLE_FAIR_MARGIN
 *    x their weight-fair share of the shared pCPUs (as CFS splits them:
 *    tenants by weight, each counted by the part of its vCPUs there; a
 *    tenant's VMs by their VM weights). Ranked by usage above floor.
 *  - a floor is never undercut: vcpus x throttle.best_effort_floor_pct or
 *    vcpus x throttle.burstable_floor_pct percent of one pCPU (at least the
 *    kernel's 1 ms per period); a burstable VM throttled only for using
 *    more than its share keeps at least that share (and what it uses off
 *    the shared CPUs).
 *
 * Time: runs (breach, clear), holds and back-off are seconds: of the
 * windows' measured lengths (obs.window_s) for runs, of decide's clock
 * (now_ms) for holds. A window shorter than params.min_window_s (an extra
 * tick right after another) is not judged: like an invalid one it neither
 * breaks nor extends a run. Only the lag counts ticks.
 *
 * The control law, per antagonist (all caps are quota_us per 100 ms period
 * for the whole VM; a step cuts only the part of its usage on the CPUs it
 * shares with the victim):
 *  - CAP: a confirmed victim's steal is above its clear level (steal.
 *    low_pct, see the residual below): the antagonist gets max(floor,
 *    usage less (1 - tighten_fraction) of its shared part);
 *  - TIGHTEN: each further tick a victim of it (or another victim) stays
 *    above its clear level: the same from min(cap, usage); every cap and
 *    tighten (re)starts the hold (throttle.hold_s);
 *  - residual: a victim that still presses when every antagonist it names
 *    is at its floor (and has been for the lag) has steal the caps cannot
 *    remove (a guaranteed neighbour, the host): it is learnt (its steal
 *    then), follows the victim's steal down, and makes the victim clear
 *    at or below max(low_pct, residual + max(2, THROTTLE_RESID_MARGIN x
 *    low_pct)) until it has been at or below low_pct for clear_s;
 *  - LOOSEN: once every victim it was capped for has been at or below its
 *    clear level (or without figures) for steal.clear_s and at least lag
 *    ticks since its last change, and the hold has passed: + loosen_step_pct
 *    x vcpus, no more than the victims' headroom allows (the model in
 *    throttle.c: steal as the residual plus a part proportional to the
 *    capped usage, and while the victim runs no better than every us
 *    given back taken from it), but never less than a probe: half a step,
 *    no more than keeps the predicted steal halfway from the clear level to
 *    high_pct, at least 1% of a pCPU per vCPU. So no cap stays forever
 *    because the model sees no room. Not for a VM that used less than
 *    idle_pct of its cap this tick (the idle rule below may lift it).
 *    Each step waits for the previous one to prove good (the same clear
 *    time);
 *  - BACKOFF: a victim goes above its clear level while a loosening step
 *    is being proved: back to the last good cap, and the hold doubles (up
 *    to throttle.hold_max_s): at most one probe and its back-off per hold;
 *  - RESTORE: the cap is lifted when a loosening step would reach the VM's
 *    vCPU count (or its pCPU count, if smaller); when the VM has used less
 *    than throttle.idle_pct of its cap for THROTTLE_IDLE_WINDOWS judged
 *    windows (an antagonist gone quiet is freed at once, whatever the
 *    hold); when no victim of it remains (gone, or no longer sharing
 *    pCPUs); when the VM becomes guaranteed or exempt; when throttling is
 *    turned off.
 * At most throttle.max_actions_per_tick actions per tick, most urgent
 * first: BACKOFF, then CAP/TIGHTEN by rank, then RESTORE, then LOOSEN; the
 * rest wait a tick. Restores forced by the policy (throttling off, dry-run
 * switched on, guaranteed, exempt) and raising a cap to a raised floor are
 * not limited. At most one action per VM per tick.
 *
 * Lag: in the daemon's tick (discover, plan, reconcile, sample, decide) a
 * cap decided at tick t is written at tick t+1's reconcile, just before
 * t+1's sample, so the first window that shows it is the one sampled at
 * t+2: params.lag_ticks = 2 (THROTTLE_LAG_DEFAULT). The law allows for it:
 * a loosening step is proved over at least lag ticks, no tightening
 * follows a BACKOFF until its effect can be seen, and "idle" compares the
 * usage with the smallest cap in force over the last lag ticks.
 *
 * Dry-run (throttle.dry_run): decide computes the same actions, flagged
 * dry_run, and keeps the caps it would have set in its state (shadow caps,
 * status "would-cap") but returns no caps. Since the shadow caps are not
 * enforced the victim's steal does not fall, so a shadow cap is tightened
 * down to its floor and then stays quiet: repeated dry-run ticks do not
 * repeat identical actions. Switching dry-run on RESTOREs every real cap
 * (real actions); switching it off drops the shadow caps without actions
 * (the live law then acts on the next tick's figures, at once if a victim
 * is still confirmed). throttle.enabled = false: no new actions, every cap
 * (real or shadow) is RESTOREd in that tick and the state is reset.
 *
 * Samples: obs[i].valid = false (no usable window this tick) freezes that
 * VM's counters: an invalid tick neither breaks nor extends a breach or a
 * clear run. VMs missing from obs are dropped from the state (their caps
 * vanish with them: the planner has nothing to lay them on); a VM that
 * comes back starts afresh. */
#ifndef VCPUD_THROTTLE_H
#define VCPUD_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/cpulist.h"
#include "vcpud/path.h"
#include "vcpud/policy.h"
#include "vcpud/tenant.h"

#define THROTTLE_PERIOD_US 100000ULL   /* caps are quota per this period */
#define THROTTLE_QUOTA_MIN_US 1000ULL  /* the kernel's smallest cpu.max quota */
#define THROTTLE_LAG_DEFAULT 2         /* ticks from decide to a window showing it */
#define THROTTLE_LAG_MAX 4
#define THROTTLE_IDLE_WINDOWS 2        /* judged windows under idle_pct of the cap
					* to lift it */
#define THROTTLE_FAIR_MARGIN 1.1       /* same class: antagonist above 1.1 x fair share */
#define THROTTLE_LOOSEN_TARGET 0.6     /* loosening aims at 0.6 x steal.low_pct */
#define THROTTLE_ACTIVE_PCT 1.0        /* VMs using less do not count in fair shares */
#define THROTTLE_STEAL_WINDOW 8        /* loosening reads a victim's highest steal
					* over its last this many judged windows */
#define THROTTLE_PROBE_FRACTION 0.5    /* a loosening step is at least this part of
					* throttle.loosen_step_pct, whatever the
					* model predicts */
#define THROTTLE_RESID_MARGIN 0.25     /* a learnt residual steal R makes a victim
					* clear at or below R + max(2, this x
					* low_pct) points */

/* --- inputs -------------------------------------------------------------- */

/* One VM this tick. name, tenant, class_, weight, vcpus and cpus are always
 * filled; the figures only count when valid. */
struct throttle_vm_obs {
	const char *name;             /* VM name, unique among obs (borrowed);
				       * NULL, "" or longer than NAME_MAX_LEN:
				       * the entry is ignored; a repeated name:
				       * only its first entry counts */
	const char *tenant;           /* its tenant's name (borrowed) */
	enum tenant_class class_;     /* its tenant's class */
	uint32_t weight;              /* its tenant's cpu.weight (1..10000) */
	uint32_t vcpus;               /* vCPUs of the VM (0 is taken as 1) */
	struct cpuset cpus;           /* effective CPUs its vCPUs may run on (the
				       * union of their cpuset.cpus.effective) */
	bool valid;                   /* the figures below cover this tick's window */
	double window_s;              /* that window's length in seconds of measured
				       * wall time (shorter than min_window_s: not
				       * judged, as if not valid) */
	double usage_pct;             /* CPU used, summed over its vCPUs, % of one
				       * pCPU (2 vCPUs flat out: 200) */
	double steal_pct;             /* mean over its vCPUs of run_delay / wall, % */
	double steal_max_pct;         /* its worst vCPU's */
	double self_throttled_frac;   /* 0..1: share of the window each of its vCPU
				       * threads was held back by its own VM-level
				       * cpu.max (the throttler's cap included) or
				       * its tenant's: cpu.stat throttled_usec /
				       * (window x min(vCPUs, CPUs)) of the VM
				       * cgroup plus the same of the tenant's
				       * (counters are per cgroup, not
				       * hierarchical, and a throttled parent does
				       * not count in its children). Subtracted
				       * from its steal: waiting on its own cap is
				       * not contention. */
	double vm_weight;             /* its VM cgroup's cpu.weight (how the kernel
				       * splits its tenant's share between the
				       * tenant's VMs); 0: by vCPUs */
};

/* The policy's steal.* and throttle.* settings (throttle_params_from_policy()
 * fills them; tests may set them by hand). */
struct throttle_params {
	bool enabled;                 /* throttle.enabled */
	bool dry_run;                 /* throttle.dry_run */
	enum policy_steal_metric metric;
	double high_pct;              /* steal.high_pct */
	double low_pct;               /* steal.low_pct (< high_pct) */
	double breach_s;              /* steal.breach_s, > 0 */
	double clear_s;               /* steal.clear_s, > 0 */
	double tighten_fraction;      /* (0, 1) */
	double burstable_floor_pct;   /* per vCPU, % of one pCPU */
	double best_effort_floor_pct;
	double hold_s;                /* throttle.hold_s, > 0 */
	double hold_max_s;            /* the doubled hold's ceiling */
	double loosen_step_pct;       /* per vCPU, % of one pCPU */
	double idle_pct;              /* % of the cap */
	uint32_t max_actions_per_tick;/* >= 1 */
	char *const *exempt_tenants;  /* borrowed from the policy */
	size_t n_exempt_tenants;
	uint32_t lag_ticks;           /* 1..THROTTLE_LAG_MAX; not a policy key:
				       * THROTTLE_LAG_DEFAULT for the daemon's
				       * tick order (see above) */
	double min_window_s;          /* a shorter window is not judged (an extra
				       * tick soon after another); not a policy
				       * key: half of sampling.interval_ms */
};

/* Fill *out from a policy; exempt_tenants points into *p, which must
 * outlive the params. lag_ticks = THROTTLE_LAG_DEFAULT. */
void throttle_params_from_policy(struct throttle_params *out, const struct policy *p);

/* --- state --------------------------------------------------------------- */

/* What decide remembers about one VM. Read-only for callers. */
struct throttle_vm_state {
	char name[NAME_MAX_LEN + 1];
	/* as a (possible) victim */
	double breach_s;              /* judged time in a row above high_pct */
	double clear_s;               /* judged time in a row at or below its clear
				       * level (or not a possible victim) */
	uint32_t clear_n;             /* windows in that run */
	double low_s;                 /* judged time in a row at or below low_pct */
	double resid_pct;             /* residual steal the caps could not remove
				       * (learnt when every antagonist named is at
				       * its floor and it still presses); 0: none.
				       * Its clear level is max(low_pct, this +
				       * the margin). Forgotten once its steal has
				       * been at or below low_pct for clear_s. */
	double recent_steal_pct[THROTTLE_STEAL_WINDOW]; /* its steal in its last
				       * judged windows, newest first */
	bool engaged;                 /* confirmed victim, not yet clear for
				       * clear_s */
	bool victim;                  /* engaged, or above low_pct while a cap of
				       * an antagonist names it (last tick) */
	double steal_pct;             /* its steal (per metric) at the last valid tick */
	/* as an antagonist */
	bool capped;                  /* a cap is in force (or would be: dry) */
	bool dry;                     /* a shadow cap of dry-run: not enforced */
	uint64_t quota_us;            /* the cap, when capped */
	uint64_t last_good_us;        /* the cap before the loosening step being
				       * proved (BACKOFF returns there), 0 none */
	bool probing;                 /* a loosening step not yet proved good */
	int64_t hold_until_ms;        /* no loosening before this (decide's clock) */
	uint32_t hold_len_ms;         /* the hold; doubles on BACKOFF */
	double calm_s;                /* judged time since its last change with
				       * every victim of it at or below its clear
				       * level */
	uint32_t calm_n;              /* ticks in that run */
	uint32_t idle_run;            /* judged windows in a row under idle_pct */
	uint64_t changed_at;          /* tick of its last cap change */
	int last_kind;                /* enum throttle_action_kind of that change */
	uint64_t quota_hist[THROTTLE_LAG_MAX]; /* cap after each of the last
				       * ticks, newest first; UINT64_MAX: none */
	char (*victims)[NAME_MAX_LEN + 1]; /* the victims it is capped for */
	size_t n_victims;
};

/* Owned by the caller, kept across ticks. Zero-initialised (or
 * throttle_state_init()) is an empty state; throttle_state_clear() frees
 * it. VMs are kept sorted by name. */
struct throttle_state {
	struct throttle_vm_state *vms;
	size_t n_vms;
	bool dry_run;                 /* the mode of the last tick */
	uint64_t tick;                /* the last tick decided */
	int64_t now_ms;               /* and its time */
};

void throttle_state_init(struct throttle_state *st);
void throttle_state_clear(struct throttle_state *st);

/* The state of one VM, or NULL when decide does not know it. The pointer
 * is valid until the next throttle_decide() or throttle_state_clear(). */
const struct throttle_vm_state *throttle_state_find(const struct throttle_state *st,
						    const char *vm);

/* --- what survives a restart -------------------------------------------
 *
 * A cap (enforced or a dry-run shadow) with what the law needs to go on
 * from where it was: the cap, the last good cap and whether a loosening
 * step was being proved, the hold still to run and its length (doubled by
 * each BACKOFF: the back-off history), and the victims it is capped for.
 * Victim-side runs are not kept: they rebuild from the samples within
 * breach_s. The daemon stores these with wall-clock holds
 * (store_throttle_*) and adopts them before its first tick, so that a
 * restart neither lifts a cap nor forgets a doubled hold. */
struct throttle_saved {
	char vm[NAME_MAX_LEN + 1];
	bool dry;                     /* a dry-run shadow cap */
	uint64_t quota_us;            /* THROTTLE_QUOTA_MIN_US.. */
	uint64_t last_good_us;        /* 0: none */
	bool probing;
	uint32_t hold_len_ms;
	uint32_t hold_left_ms;        /* of the hold still to run */
	int last_kind;                /* enum throttle_action_kind */
	char (*victims)[NAME_MAX_LEN + 1];
	size_t n_victims;
};
void throttle_saved_free(struct throttle_saved *v, size_t n);

/* The caps of st (enforced and shadow), sorted by VM name, as of st->tick.
 * *out (NULL when none): throttle_saved_free(). Returns the count. */
size_t throttle_state_export(const struct throttle_state *st, struct throttle_saved **out);

/* Whether two exports hold the same caps and law state (hold_left, which
 * counts down by itself, is not compared). */
bool throttle_saved_equal(const struct throttle_saved *a, size_t na,
			  const struct throttle_saved *b, size_t nb);

/* Take saved caps over into an empty state, as of `tick` and `now_ms` (the
 * tick before the next throttle_decide(), and the time on decide's clock):
 * each is a cap in force since then, with
 * its hold, last good cap and victims. Entries with a bad name, a quota
 * below THROTTLE_QUOTA_MIN_US, or a repeated name are skipped. The caps
 * show up in throttle_state_caps() at once and are kept or changed by the
 * next decide as if the daemon had never stopped (a VM missing from that
 * decide's samples is dropped with its cap, as always). Returns how many
 * were adopted. */
size_t throttle_state_adopt(struct throttle_state *st, uint64_t tick, int64_t now_ms,
			    const struct throttle_saved *v, size_t n);

/* The enforced caps of st, sorted by VM name (what throttle_decide() last
 * returned, or what adoption gave). *out: free(). Returns the count. */
struct throttle_cap;
size_t throttle_state_caps(const struct throttle_state *st, struct throttle_cap **out);

/* The steal at or below which VM s counts as clear as a victim: low_pct,
 * or a margin above its learnt residual steal. */
double throttle_clear_level(const struct throttle_params *p, const struct throttle_vm_state *s);

/* For /v1/top: "none", "victim", "capped" (a cap the law may loosen),
 * "hold" (a cap within its hold), "would-cap" (a dry-run shadow cap). */
enum throttle_status {
	THROTTLE_STATUS_NONE,
	THROTTLE_STATUS_VICTIM,
	THROTTLE_STATUS_CAPPED,
	THROTTLE_STATUS_HOLD,
	THROTTLE_STATUS_WOULD_CAP,
	THROTTLE_STATUS_LAST
};
enum throttle_status throttle_vm_status(const struct throttle_state *st, const char *vm);
const char *throttle_status_name(enum throttle_status s); /* NULL out of range */

/* --- outputs ------------------------------------------------------------- */

enum throttle_action_kind {
	THROTTLE_CAP,        /* first cap on an antagonist */
	THROTTLE_TIGHTEN,    /* a lower cap */
	THROTTLE_LOOSEN,     /* a higher cap (a step, or up to a raised floor) */
	THROTTLE_BACKOFF,    /* relapse: back to the last good cap, hold doubled */
	THROTTLE_RESTORE,    /* the cap is lifted */
	THROTTLE_ACTION_LAST
};
/* "cap", "tighten", "loosen", "backoff", "restore"; NULL out of range. */
const char *throttle_action_name(enum throttle_action_kind k);

enum throttle_reason {
	THROTTLE_REASON_STEAL,       /* CAP, TIGHTEN: a victim above low_pct */
	THROTTLE_REASON_CLEAR,       /* LOOSEN, RESTORE: victims clear, hold over */
	THROTTLE_REASON_RELAPSE,     /* BACKOFF */
	THROTTLE_REASON_IDLE,        /* RESTORE: using well under its cap */
	THROTTLE_REASON_NO_VICTIM,   /* RESTORE: its victims are gone or moved */
	THROTTLE_REASON_PROTECTED,   /* RESTORE: now guaranteed or exempt */
	THROTTLE_REASON_FLOOR,       /* LOOSEN: its floor went up (policy, class) */
	THROTTLE_REASON_DISABLED,    /* RESTORE: throttle.enabled is false */
	THROTTLE_REASON_DRY_RUN,     /* RESTORE: throttle.dry_run switched on */
	THROTTLE_REASON_LAST
};
/* "steal", "clear", "relapse", "idle", "no-victim", "protected", "floor",
 * "disabled", "dry-run"; NULL out of range. */
const char *throttle_reason_name(enum throttle_reason r);

/* One decision, with the figures that drove it (for the event log). */
struct throttle_action {
	enum throttle_action_kind kind;
	enum throttle_reason reason;
	bool dry_run;                 /* decided, not applied (a shadow cap) */
	char vm[NAME_MAX_LEN + 1];    /* the antagonist */
	char tenant[NAME_MAX_LEN + 1];
	char victim[NAME_MAX_LEN + 1];/* the victim that drove it (the one with
				       * the highest steal); "" when none */
	double victim_steal_pct;      /* that victim's steal this tick (0: none) */
	double usage_pct;             /* the antagonist's usage this tick (0 when
				       * its sample is not valid) */
	double floor_pct;             /* its floor, % of one pCPU */
	uint64_t old_quota_us;        /* cap before, 0 = none */
	uint64_t quota_us;            /* cap after, 0 = none (lifted) */
	uint32_t hold_ms;             /* the hold now in force (0 after RESTORE) */
};

/* A cap for the planner: quota_us per THROTTLE_PERIOD_US for the VM. */
struct throttle_cap {
	char vm[NAME_MAX_LEN + 1];
	uint64_t quota_us;
};

struct throttle_result {
	struct throttle_action *actions; /* this tick's, in the order applied */
	size_t n_actions;
	struct throttle_cap *caps;       /* every enforced cap, sorted by VM name;
					  * empty in dry-run */
	size_t n_caps;
};

/* Free what *r holds and zero it. */
void throttle_result_clear(struct throttle_result *r);

/* Decide one tick. `tick` increases by one per control-loop tick (gaps are
 * fine; it counts the lag), `now_ms` is a monotonic clock in ms (runs,
 * holds and back-off are measured on it and on the windows' lengths).
 * obs[0..n_obs) are this tick's VMs
 * (n_obs 0 with obs NULL is fine). *out is cleared first (zero it before
 * the first call), then filled; the caller frees it with
 * throttle_result_clear(). Never fails; out-of-range params are clamped. */
void throttle_decide(struct throttle_state *st, const struct throttle_params *p,
		     uint64_t tick, int64_t now_ms, const struct throttle_vm_obs *obs,
		     size_t n_obs, struct throttle_result *out);

#endif
