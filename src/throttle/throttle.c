/* throttle.c - the noisy-neighbour throttler's decisions (see throttle.h for
 * the rules): who is a victim, who are its antagonists, and how their
 * VM-level caps move tick by tick. Pure: structs in, structs out.
 *
 * One tick, in order: match the samples to the kept state by VM name
 * (dropping VMs that are gone); apply what the policy forces (throttling
 * off, dry-run switched, protected VMs, raised floors); update every VM's
 * breach and clear runs; walk the caps (idle, victims gone, relapse,
 * loosening); walk the pressing victims (cap and tighten their
 * antagonists); apply the most urgent candidates up to the per-tick limit;
 * list the caps for the planner and remember this tick's caps for the lag. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/throttle.h"
#include "vcpud/util.h"

#define NO_CAP UINT64_MAX
#define NONE ((size_t)-1)

/* --- names ------------------------------------------------------------- */

static const char *const action_names[] = {
	[THROTTLE_CAP] = "cap",
	[THROTTLE_TIGHTEN] = "tighten",
	[THROTTLE_LOOSEN] = "loosen",
	[THROTTLE_BACKOFF] = "backoff",
	[THROTTLE_RESTORE] = "restore",
};
_Static_assert(ARRAY_SIZE(action_names) == THROTTLE_ACTION_LAST, "action names");

static const char *const reason_names[] = {
	[THROTTLE_REASON_STEAL] = "steal",
	[THROTTLE_REASON_CLEAR] = "clear",
	[THROTTLE_REASON_RELAPSE] = "relapse",
	[THROTTLE_REASON_IDLE] = "idle",
	[THROTTLE_REASON_NO_VICTIM] = "no-victim",
	[THROTTLE_REASON_PROTECTED] = "protected",
	[THROTTLE_REASON_FLOOR] = "floor",
	[THROTTLE_REASON_DISABLED] = "disabled",
	[THROTTLE_REASON_DRY_RUN] = "dry-run",
};
_Static_assert(ARRAY_SIZE(reason_names) == THROTTLE_REASON_LAST, "reason names");

static const char *const status_names[] = {
	[THROTTLE_STATUS_NONE] = "none",
	[THROTTLE_STATUS_VICTIM] = "victim",
	[THROTTLE_STATUS_CAPPED] = "capped",
	[THROTTLE_STATUS_HOLD] = "hold",
	[THROTTLE_STATUS_WOULD_CAP] = "would-cap",
};
_Static_assert(ARRAY_SIZE(status_names) == THROTTLE_STATUS_LAST, "status names");

const char *throttle_action_name(enum throttle_action_kind k)
{
	return (unsigned)k < THROTTLE_ACTION_LAST ? action_names[k] : NULL;
}

const char *throttle_reason_name(enum throttle_reason r)
{
	return (unsigned)r < THROTTLE_REASON_LAST ? reason_names[r] : NULL;
}

const char *throttle_status_name(enum throttle_status s)
{
	return (unsigned)s < THROTTLE_STATUS_LAST ? status_names[s] : NULL;
}

/* --- params ------------------------------------------------------------ */

void throttle_params_from_policy(struct throttle_params *out, const struct policy *p)
{
	*out = (struct throttle_params){
		.enabled = p->throttle_enabled,
		.dry_run = p->throttle_dry_run,
		.metric = p->steal_metric,
		.high_pct = p->steal_high_pct,
		.low_pct = p->steal_low_pct,
		.breach_s = p->breach_s,
		.clear_s = p->clear_s,
		.tighten_fraction = p->tighten_fraction,
		.burstable_floor_pct = p->burstable_floor_pct,
		.best_effort_floor_pct = p->best_effort_floor_pct,
		.hold_s = p->hold_s,
		.hold_max_s = p->hold_max_s,
		.loosen_step_pct = p->loosen_step_pct,
		.idle_pct = p->idle_pct,
		.max_actions_per_tick = p->max_actions_per_tick,
		.exempt_tenants = p->exempt_tenants,
		.n_exempt_tenants = p->n_exempt_tenants,
		.lag_ticks = THROTTLE_LAG_DEFAULT,
		.min_window_s = p->interval_ms / 2000.0,
	};
}

/* A copy with every value in a range the law can work with (a policy from
 * policy_load_*() is already within them). */
static struct throttle_params params_sane(const struct throttle_params *in)
{
	struct throttle_params p = *in;
	if (!(p.high_pct > 0) || !(p.high_pct <= 100))
		p.high_pct = 30;
	if (!(p.low_pct >= 0) || !(p.low_pct < p.high_pct))
		p.low_pct = p.high_pct / 2;
	if (!(p.breach_s > 0) || !(p.breach_s <= 86400))
		p.breach_s = 3;
	if (!(p.clear_s > 0) || !(p.clear_s <= 86400))
		p.clear_s = 5;
	if (!(p.tighten_fraction > 0) || !(p.tighten_fraction < 1))
		p.tighten_fraction = 0.5;
	if (!(p.burstable_floor_pct >= 0))
		p.burstable_floor_pct = 25;
	if (!(p.best_effort_floor_pct >= 0))
		p.best_effort_floor_pct = 5;
	if (!(p.hold_s > 0) || !(p.hold_s <= 86400))
		p.hold_s = 10;
	if (!(p.hold_max_s >= p.hold_s) || !(p.hold_max_s <= 86400))
		p.hold_max_s = p.hold_s > 300 ? p.hold_s : 300;
	if (!(p.min_window_s >= 0) || !(p.min_window_s <= 3600))
		p.min_window_s = 0;
	if (!(p.loosen_step_pct > 0))
		p.loosen_step_pct = 25;
	if (!(p.idle_pct >= 0) || !(p.idle_pct <= 100))
		p.idle_pct = 50;
	if (p.max_actions_per_tick < 1)
		p.max_actions_per_tick = 1;
	if (p.lag_ticks < 1)
		p.lag_ticks = 1;
	if (p.lag_ticks > THROTTLE_LAG_MAX)
		p.lag_ticks = THROTTLE_LAG_MAX;
	if (!p.exempt_tenants)
		p.n_exempt_tenants = 0;
	return p;
}

/* --- state ------------------------------------------------------------- */

void throttle_state_init(struct throttle_state *st)
{
	memset(st, 0, sizeof(*st));
}

static void vm_state_free(struct throttle_vm_state *s)
{
	free(s->victims);
	s->victims = NULL;
	s->n_victims = 0;
}

void throttle_state_clear(struct throttle_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_vms; i++)
		vm_state_free(&st->vms[i]);
	free(st->vms);
	memset(st, 0, sizeof(*st));
}

/* Where `vm` is or would go in st->vms (sorted by name). */
static size_t state_pos(const struct throttle_state *st, const char *vm, bool *found)
{
	size_t lo = 0, hi = st->n_vms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->vms[mid].name, vm);
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

static size_t state_index(const struct throttle_state *st, const char *vm)
{
	bool found;
	size_t i = state_pos(st, vm, &found);
	return found ? i : NONE;
}

const struct throttle_vm_state *throttle_state_find(const struct throttle_state *st,
						    const char *vm)
{
	if (!st || !vm)
		return NULL;
	size_t i = state_index(st, vm);
	return i == NONE ? NULL : &st->vms[i];
}

enum throttle_status throttle_vm_status(const struct throttle_state *st, const char *vm)
{
	const struct throttle_vm_state *s = throttle_state_find(st, vm);
	if (!s)
		return THROTTLE_STATUS_NONE;
	if (s->capped && s->dry)
		return THROTTLE_STATUS_WOULD_CAP;
	if (s->capped)
		return st->now_ms < s->hold_until_ms ? THROTTLE_STATUS_HOLD : THROTTLE_STATUS_CAPPED;
	if (s->victim)
		return THROTTLE_STATUS_VICTIM;
	return THROTTLE_STATUS_NONE;
}

/* --- saved caps ---------------------------------------------------------- */

static void victims_add(struct throttle_vm_state *s, const char *name);

void throttle_saved_free(struct throttle_saved *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].victims);
	free(v);
}

size_t throttle_state_export(const struct throttle_state *st, struct throttle_saved **out)
{
	*out = NULL;
	size_t n = 0;
	for (size_t i = 0; i < st->n_vms; i++)
		n += st->vms[i].capped;
	if (!n)
		return 0;
	struct throttle_saved *v = xcalloc(n, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < st->n_vms; i++) {
		const struct throttle_vm_state *s = &st->vms[i];
		if (!s->capped)
			continue;
		struct throttle_saved *d = &v[k++];
		memcpy(d->vm, s->name, sizeof(d->vm));
		d->dry = s->dry;
		d->quota_us = s->quota_us;
		d->last_good_us = s->last_good_us;
		d->probing = s->probing;
		d->hold_len_ms = s->hold_len_ms;
		int64_t left = s->hold_until_ms - st->now_ms;
		d->hold_left_ms = left > 0 ? (uint32_t)(left < UINT32_MAX ? left : UINT32_MAX) : 0;
		d->last_kind = s->last_kind;
		if (s->n_victims) {
			d->victims = xcalloc(s->n_victims, sizeof(*d->victims));
			memcpy(d->victims, s->victims, s->n_victims * sizeof(*d->victims));
			d->n_victims = s->n_victims;
		}
	}
	*out = v;
	return n;
}

bool throttle_saved_equal(const struct throttle_saved *a, size_t na,
			  const struct throttle_saved *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		const struct throttle_saved *x = &a[i], *y = &b[i];
		if (strcmp(x->vm, y->vm) != 0 || x->dry != y->dry || x->quota_us != y->quota_us ||
		    x->last_good_us != y->last_good_us || x->probing != y->probing ||
		    x->hold_len_ms != y->hold_len_ms || x->last_kind != y->last_kind ||
		    x->n_victims != y->n_victims)
			return false;
		for (size_t k = 0; k < x->n_victims; k++)
			if (strcmp(x->victims[k], y->victims[k]) != 0)
				return false;
	}
	return true;
}

size_t throttle_state_adopt(struct throttle_state *st, uint64_t tick, int64_t now_ms,
			    const struct throttle_saved *v, size_t n)
{
	st->tick = tick;
	st->now_ms = now_ms;
	size_t adopted = 0;
	for (size_t i = 0; i < n; i++) {
		const struct throttle_saved *d = &v[i];
		bool found = false;
		if (!name_valid(d->vm) || d->quota_us < THROTTLE_QUOTA_MIN_US ||
		    d->quota_us == NO_CAP)
			continue;
		size_t at = state_pos(st, d->vm, &found);
		if (found)
			continue;
		/* in its place by name, for state_index() */
		st->vms = xrealloc(st->vms, (st->n_vms + 1) * sizeof(*st->vms));
		memmove(&st->vms[at + 1], &st->vms[at], (st->n_vms - at) * sizeof(*st->vms));
		st->n_vms++;
		struct throttle_vm_state *s = &st->vms[at];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", d->vm);
		s->capped = true;
		s->dry = d->dry;
		s->quota_us = d->quota_us;
		s->last_good_us = d->last_good_us;
		s->probing = d->probing;
		s->hold_len_ms = d->hold_len_ms;
		s->hold_until_ms = now_ms + d->hold_left_ms;
		s->changed_at = tick;
		s->last_kind = (unsigned)d->last_kind < THROTTLE_ACTION_LAST ? d->last_kind
									 : THROTTLE_CAP;
		for (size_t k = 0; k < THROTTLE_LAG_MAX; k++)
			s->quota_hist[k] = d->quota_us;
		for (size_t k = 0; k < d->n_victims; k++)
			if (name_valid(d->victims[k]))
				victims_add(s, d->victims[k]);
		if (d->dry)
			st->dry_run = true;
		adopted++;
	}
	return adopted;
}

size_t throttle_state_caps(const struct throttle_state *st, struct throttle_cap **out)
{
	size_t n = 0;
	for (size_t i = 0; i < st->n_vms; i++)
		n += st->vms[i].capped && !st->vms[i].dry;
	*out = xcalloc(n ? n : 1, sizeof(**out));
	size_t k = 0;
	for (size_t i = 0; i < st->n_vms; i++)
		if (st->vms[i].capped && !st->vms[i].dry) {
			snprintf((*out)[k].vm, sizeof((*out)[k].vm), "%s", st->vms[i].name);
			(*out)[k++].quota_us = st->vms[i].quota_us;
		}
	return n;
}

static bool victims_has(const struct throttle_vm_state *s, const char *name)
{
	for (size_t i = 0; i < s->n_victims; i++)
		if (strcmp(s->victims[i], name) == 0)
			return true;
	return false;
}

static void victims_add(struct throttle_vm_state *s, const char *name)
{
	if (victims_has(s, name))
		return;
	s->victims = xrealloc(s->victims, (s->n_victims + 1) * sizeof(*s->victims));
	snprintf(s->victims[s->n_victims++], sizeof(*s->victims), "%s", name);
}

/* Forget everything about s as an antagonist (the cap is gone). */
static void antagonist_reset(struct throttle_vm_state *s)
{
	vm_state_free(s);
	s->capped = false;
	s->dry = false;
	s->quota_us = 0;
	s->last_good_us = 0;
	s->probing = false;
	s->hold_until_ms = 0;
	s->hold_len_ms = 0;
	s->calm_s = 0;
	s->calm_n = 0;
	s->idle_run = 0;
}

static void victim_reset(struct throttle_vm_state *s)
{
	s->breach_s = 0;
	s->clear_s = 0;
	s->clear_n = 0;
	s->resid_pct = 0;
	s->engaged = false;
	s->victim = false;
}

void throttle_result_clear(struct throttle_result *r)
{
	if (!r)
		return;
	free(r->actions);
	free(r->caps);
	memset(r, 0, sizeof(*r));
}

/* --- one tick ------------------------------------------------------------ */

/* A VM this tick: its sample, its state and what this tick found. */
struct view {
	const struct throttle_vm_obs *o;
	struct throttle_vm_state *s;
	uint32_t vcpus;          /* >= 1 */
	unsigned ncpus;          /* CPUs in o->cpus */
	bool valid;              /* figures for a window long enough to judge */
	double window_s;         /* its length (0 when not valid) */
	double usage_pct;        /* sanitised figures (0 when not valid) */
	double steal_pct;        /* per the metric, less the self-inflicted part */
	double clear_pct;        /* a victim is clear at or below this */
	bool exempt;
	bool protect;            /* guaranteed or exempt: never capped */
	bool eligible;           /* may be a victim this tick */
	bool pressing;           /* a victim the law acts for this tick */
	bool linked;             /* some cap names it as its victim */
	bool acted;              /* has had its action this tick */
	uint64_t floor_us;       /* its class floor */
	uint64_t limit_us;       /* a cap at or above this is no cap */
	double headroom_us;      /* loosening room left, NAN until computed */
	double probe_us;         /* the same up to the probe's target */
};

enum prio { PRIO_BACKOFF, PRIO_TIGHTEN, PRIO_RESTORE, PRIO_LOOSEN };

struct cand {
	size_t vm;               /* view index */
	enum throttle_action_kind kind;
	enum throttle_reason reason;
	enum prio prio;
	double rank;             /* CAP/TIGHTEN: usage above floor, % */
	uint64_t quota_us;       /* the new cap (CAP, TIGHTEN, LOOSEN) */
	uint64_t floor_us;
	size_t victim;           /* view index of the victim named, or NONE */
	size_t *victims;         /* CAP/TIGHTEN: views of the victims to link */
	size_t n_victims;
};

struct tick {
	struct throttle_params p;
	uint64_t tick;
	int64_t now_ms;
	struct throttle_state *st;
	struct view *v;
	size_t n;
	struct cand *cands;
	size_t n_cands;
	size_t *cand_of;         /* per view: index in cands, or NONE */
	struct throttle_result *out;
	size_t out_cap;
};

static double finite_or_zero(double x)
{
	return isfinite(x) && x > 0 ? x : 0;
}

static uint64_t pct_to_us(double pct)
{
	double us = pct * (double)THROTTLE_PERIOD_US / 100.0;
	if (!(us >= (double)THROTTLE_QUOTA_MIN_US))
		return THROTTLE_QUOTA_MIN_US;
	if (us >= 1e15)
		return (uint64_t)1e15;
	return (uint64_t)llround(us);
}

static double us_to_pct(uint64_t us)
{
	return (double)us * 100.0 / (double)THROTTLE_PERIOD_US;
}

static int class_rank(enum tenant_class c)
{
	switch (c) {
	case TENANT_CLASS_BEST_EFFORT: return 0;
	case TENANT_CLASS_BURSTABLE: return 1;
	case TENANT_CLASS_GUARANTEED: return 2;
	default: return 1;
	}
}

static bool tenant_exempt(const struct throttle_params *p, const char *tenant)
{
	for (size_t i = 0; i < p->n_exempt_tenants; i++)
		if (p->exempt_tenants[i] && tenant && strcmp(p->exempt_tenants[i], tenant) == 0)
			return true;
	return false;
}

/* The smallest cap in force over the last lag ticks (NO_CAP: none). */
static uint64_t window_cap(const struct tick *t, const struct throttle_vm_state *s)
{
	uint64_t m = NO_CAP;
	for (uint32_t i = 0; i < t->p.lag_ticks; i++)
		if (s->quota_hist[i] < m)
			m = s->quota_hist[i];
	return m;
}

static size_t view_index(const struct tick *t, const char *name)
{
	return state_index(t->st, name);
}

/* --- matching samples to state --------------------------------------- */

struct ord {
	const char *name;
	size_t idx;
};

static int ord_cmp(const void *a, const void *b)
{
	const struct ord *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Rebuild st->vms in the order of the sorted sample names, keeping the
 * state of VMs seen before, and make one view per VM. */
static void sync_state(struct tick *t, const struct throttle_vm_obs *obs, size_t n_obs)
{
	struct throttle_state *st = t->st;
	struct ord *ord = xcalloc(n_obs ? n_obs : 1, sizeof(*ord));
	size_t m = 0;
	for (size_t i = 0; i < n_obs; i++) {
		const char *nm = obs[i].name;
		if (!nm || !*nm || strnlen(nm, NAME_MAX_LEN + 1) > NAME_MAX_LEN)
			continue;
		ord[m++] = (struct ord){ .name = nm, .idx = i };
	}
	qsort(ord, m, sizeof(*ord), ord_cmp);
	size_t u = 0;   /* drop repeated names: the first entry counts */
	for (size_t i = 0; i < m; i++)
		if (u == 0 || strcmp(ord[u - 1].name, ord[i].name) != 0)
			ord[u++] = ord[i];
	m = u;

	struct throttle_vm_state *vms = xcalloc(m ? m : 1, sizeof(*vms));
	size_t j = 0;
	for (size_t i = 0; i < m; i++) {
		while (j < st->n_vms && strcmp(st->vms[j].name, ord[i].name) < 0)
			vm_state_free(&st->vms[j++]);   /* gone */
		if (j < st->n_vms && strcmp(st->vms[j].name, ord[i].name) == 0) {
			vms[i] = st->vms[j++];
		} else {
			snprintf(vms[i].name, sizeof(vms[i].name), "%s", ord[i].name);
			for (size_t k = 0; k < THROTTLE_LAG_MAX; k++)
				vms[i].quota_hist[k] = NO_CAP;
			vms[i].last_kind = THROTTLE_ACTION_LAST;
		}
	}
	while (j < st->n_vms)
		vm_state_free(&st->vms[j++]);
	free(st->vms);
	st->vms = vms;
	st->n_vms = m;

	t->n = m;
	t->v = xcalloc(m ? m : 1, sizeof(*t->v));
	t->cand_of = xmalloc((m ? m : 1) * sizeof(*t->cand_of));
	for (size_t i = 0; i < m; i++) {
		struct view *v = &t->v[i];
		const struct throttle_vm_obs *o = &obs[ord[i].idx];
		v->o = o;
		v->s = &vms[i];
		v->vcpus = o->vcpus ? o->vcpus : 1;
		v->ncpus = cpuset_count(&o->cpus);
		v->valid = o->valid && isfinite(o->window_s) && o->window_s > 0 &&
			   o->window_s >= t->p.min_window_s;
		v->window_s = v->valid ? o->window_s : 0;
		v->usage_pct = v->valid ? finite_or_zero(o->usage_pct) : 0;
		/* waiting on its own or its tenant's cap is not contention */
		double steal = t->p.metric == POLICY_STEAL_MAX ? o->steal_max_pct : o->steal_pct;
		double self = finite_or_zero(o->self_throttled_frac);
		steal = finite_or_zero(steal) - 100.0 * (self < 1 ? self : 1);
		v->steal_pct = v->valid ? finite_or_zero(steal) : 0;
		v->exempt = tenant_exempt(&t->p, o->tenant);
		v->protect = o->class_ == TENANT_CLASS_GUARANTEED || v->exempt;
		double floor_pct = o->class_ == TENANT_CLASS_BEST_EFFORT ? t->p.best_effort_floor_pct
									: t->p.burstable_floor_pct;
		v->floor_us = pct_to_us(floor_pct * v->vcpus);
		uint32_t lim = v->ncpus && v->ncpus < v->vcpus ? v->ncpus : v->vcpus;
		v->limit_us = (uint64_t)lim * THROTTLE_PERIOD_US;
		v->headroom_us = NAN;
		v->probe_us = NAN;
		t->cand_of[i] = NONE;
	}
	free(ord);
}

/* --- actions ------------------------------------------------------------ */

static void push_action(struct tick *t, const struct throttle_action *a)
{
	struct throttle_result *r = t->out;
	if (r->n_actions == t->out_cap) {
		t->out_cap = t->out_cap ? 2 * t->out_cap : 8;
		r->actions = xrealloc(r->actions, t->out_cap * sizeof(*r->actions));
	}
	r->actions[r->n_actions++] = *a;
}

/* The victim to name for a cap that is not being tightened: the one of its
 * victims with the highest steal now, or NONE. */
static size_t named_victim(const struct tick *t, const struct throttle_vm_state *s)
{
	size_t best = NONE;
	for (size_t i = 0; i < s->n_victims; i++) {
		size_t w = view_index(t, s->victims[i]);
		if (w == NONE)
			continue;
		if (best == NONE || t->v[w].steal_pct > t->v[best].steal_pct)
			best = w;
	}
	return best;
}

static uint32_t hold_ms(double s)
{
	return (uint32_t)llround(s * 1000.0);   /* params_sane(): at most a day */
}

static void calm_reset(struct throttle_vm_state *s)
{
	s->calm_s = 0;
	s->calm_n = 0;
}

/* Apply one decision to view a's state and record it. */
static void apply(struct tick *t, size_t a, enum throttle_action_kind kind,
		  enum throttle_reason reason, uint64_t quota_us, uint64_t floor_us,
		  size_t victim, const size_t *link, size_t n_link)
{
	struct view *v = &t->v[a];
	struct throttle_vm_state *s = v->s;
	struct throttle_action act = {
		.kind = kind,
		.reason = reason,
		.dry_run = kind == THROTTLE_RESTORE ? s->dry : t->p.dry_run,
		.usage_pct = v->usage_pct,
		.floor_pct = us_to_pct(floor_us ? floor_us : v->floor_us),
		.old_quota_us = s->capped ? s->quota_us : 0,
	};
	snprintf(act.vm, sizeof(act.vm), "%s", s->name);
	snprintf(act.tenant, sizeof(act.tenant), "%s", v->o->tenant ? v->o->tenant : "");
	if (victim == NONE && (kind != THROTTLE_CAP && kind != THROTTLE_TIGHTEN))
		victim = named_victim(t, s);
	if (victim != NONE) {
		snprintf(act.victim, sizeof(act.victim), "%s", t->v[victim].s->name);
		act.victim_steal_pct = t->v[victim].steal_pct;
	}

	switch (kind) {
	case THROTTLE_CAP:
		s->capped = true;
		s->dry = t->p.dry_run;
		s->quota_us = quota_us;
		s->last_good_us = 0;
		s->probing = false;
		s->hold_len_ms = hold_ms(t->p.hold_s);
		s->hold_until_ms = t->now_ms + s->hold_len_ms;
		calm_reset(s);
		s->idle_run = 0;
		break;
	case THROTTLE_TIGHTEN:
		s->quota_us = quota_us;
		s->probing = false;
		s->hold_until_ms = t->now_ms + s->hold_len_ms;
		calm_reset(s);
		s->idle_run = 0;
		break;
	case THROTTLE_LOOSEN:
		if (reason == THROTTLE_REASON_FLOOR) {
			if (s->last_good_us && s->last_good_us < quota_us)
				s->last_good_us = quota_us;
		} else {
			s->last_good_us = s->quota_us;
			s->probing = true;
			calm_reset(s);
		}
		s->quota_us = quota_us;
		break;
	case THROTTLE_BACKOFF:
		if (s->last_good_us)
			s->quota_us = s->last_good_us;
		s->hold_len_ms = s->hold_len_ms > hold_ms(t->p.hold_max_s) / 2
			? hold_ms(t->p.hold_max_s) : 2 * s->hold_len_ms;
		if (s->hold_len_ms < hold_ms(t->p.hold_s))
			s->hold_len_ms = hold_ms(t->p.hold_s);
		s->hold_until_ms = t->now_ms + s->hold_len_ms;
		s->probing = false;
		calm_reset(s);
		break;
	case THROTTLE_RESTORE:
		antagonist_reset(s);
		break;
	case THROTTLE_ACTION_LAST:
		abort();
	}
	for (size_t i = 0; i < n_link; i++)
		victims_add(s, t->v[link[i]].s->name);
	s->changed_at = t->tick;
	s->last_kind = (int)kind;
	v->acted = true;

	act.quota_us = s->capped ? s->quota_us : 0;
	act.hold_ms = s->capped ? s->hold_len_ms : 0;
	push_action(t, &act);
}

/* --- candidates ---------------------------------------------------------- */

static struct cand *cand_new(struct tick *t, size_t a)
{
	if (t->cand_of[a] != NONE)
		return &t->cands[t->cand_of[a]];
	t->cands = xrealloc(t->cands, (t->n_cands + 1) * sizeof(*t->cands));
	struct cand *c = &t->cands[t->n_cands];
	*c = (struct cand){ .vm = a, .victim = NONE };
	t->cand_of[a] = t->n_cands++;
	return c;
}

static void cand_set(struct tick *t, size_t a, enum throttle_action_kind kind,
		     enum throttle_reason reason, enum prio prio, uint64_t quota_us,
		     size_t victim)
{
	struct cand *c = cand_new(t, a);
	free(c->victims);
	*c = (struct cand){ .vm = a, .kind = kind, .reason = reason, .prio = prio,
			    .quota_us = quota_us, .victim = victim };
}

static void cand_drop(struct tick *t, size_t a)
{
	size_t i = t->cand_of[a];
	if (i == NONE)
		return;
	free(t->cands[i].victims);
	t->cands[i].victims = NULL;
	t->cands[i].n_victims = 0;
	t->cands[i].vm = NONE;   /* a hole, skipped when applying */
	t->cand_of[a] = NONE;
}

static int cand_cmp(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	if (a->vm == NONE || b->vm == NONE)
		return (a->vm == NONE) - (b->vm == NONE);
	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	if (a->prio == PRIO_TIGHTEN && a->rank != b->rank)
		return a->rank > b->rank ? -1 : 1;
	return a->vm < b->vm ? -1 : a->vm > b->vm;
}

/* --- the victims' side ---------------------------------------------------- */

#define EPS_S 1e-6   /* time sums of float windows: 3 x 1.0 s is 3 s */

/* The steal at or below which a victim is clear: low_pct, or above its
 * residual steal once one is learnt. */
static double clear_level(const struct throttle_params *p, const struct throttle_vm_state *s)
{
	if (!(s->resid_pct > 0))
		return p->low_pct;
	double m = THROTTLE_RESID_MARGIN * p->low_pct;
	double c = s->resid_pct + (m > 2 ? m : 2);
	return c > p->low_pct ? c : p->low_pct;
}

double throttle_clear_level(const struct throttle_params *p, const struct throttle_vm_state *s)
{
	struct throttle_params q = params_sane(p);
	return clear_level(&q, s);
}

static void victims_update(struct tick *t)
{
	const struct throttle_params *p = &t->p;
	for (size_t i = 0; i < t->n; i++) {
		const struct throttle_vm_state *s = t->v[i].s;
		if (!s->capped)
			continue;
		for (size_t k = 0; k < s->n_victims; k++) {
			size_t w = view_index(t, s->victims[k]);
			if (w != NONE)
				t->v[w].linked = true;
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		struct view *v = &t->v[i];
		struct throttle_vm_state *s = v->s;
		/* A VM held back by a cap (its own, its tenant's, ours) is
		 * judged on its steal less that wait (sync_state()): only
		 * best-effort VMs are never victims. */
		v->eligible = v->o->class_ != TENANT_CLASS_BEST_EFFORT;
		if (!v->valid) {
			v->clear_pct = clear_level(p, s);
			continue; /* frozen: neither breaks nor extends a run */
		}
		s->steal_pct = v->steal_pct;
		memmove(&s->recent_steal_pct[1], &s->recent_steal_pct[0],
			(THROTTLE_STEAL_WINDOW - 1) * sizeof(s->recent_steal_pct[0]));
		s->recent_steal_pct[0] = v->steal_pct;
		if (s->resid_pct > 0) {
			/* a residual follows the victim down (a burst learnt at
			 * the floor is not its level), up only by learning */
			double m = 0;
			for (size_t k = 0; k < THROTTLE_STEAL_WINDOW; k++)
				m = s->recent_steal_pct[k] > m ? s->recent_steal_pct[k] : m;
			if (m < s->resid_pct)
				s->resid_pct = m > 0 ? m : 0;
		}
		if (v->eligible && v->steal_pct > p->high_pct)
			s->breach_s += v->window_s;
		else
			s->breach_s = 0;
		if (!v->eligible || v->steal_pct <= p->low_pct)
			s->low_s += v->window_s;
		else
			s->low_s = 0;
		if (!v->eligible || s->low_s + EPS_S >= p->clear_s)
			s->resid_pct = 0;   /* clear by the policy's own measure */
		v->clear_pct = clear_level(p, s);
		if (!v->eligible || v->steal_pct <= v->clear_pct) {
			s->clear_s += v->window_s;
			if (s->clear_n < UINT32_MAX)
				s->clear_n++;
		} else {
			s->clear_s = 0;
			s->clear_n = 0;
		}
		if (v->eligible && s->breach_s + EPS_S >= p->breach_s)
			s->engaged = true;
		if (s->clear_s + EPS_S >= p->clear_s)
			s->engaged = false;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct view *v = &t->v[i];
		v->pressing = v->valid && v->eligible && v->steal_pct > v->clear_pct &&
			      (v->s->engaged || v->linked);
		if (v->valid)
			v->s->victim = v->s->engaged || v->pressing;
	}
}

/* Loosening room for victim w, in us of cap over all its antagonists. Its
 * steal is modelled as its residual (0 unless learnt) plus a part
 * proportional to the usage of the capped antagonists that name it, and,
 * while it runs and no residual is known, no better than the worst case:
 * every us given back taken from it (its steal per vCPU grows by the step
 * over its vCPUs; that is what a victim sees once the pCPUs are full and
 * the model's steal is near 0). The room is shared by the caps that name
 * it. A step may bring it to THROTTLE_LOOSEN_TARGET of the way from
 * the residual to its clear level (*room), a probe halfway from the clear
 * level to high_pct (*probe: a relapse that stays under high_pct). */
static void headroom_us(struct tick *t, size_t w, double *room, double *probe)
{
	struct view *v = &t->v[w];
	if (isnan(v->headroom_us)) {
		double s = v->steal_pct;
		for (uint32_t i = 1; i < THROTTLE_STEAL_WINDOW && i < v->s->clear_n; i++)
			if (v->s->recent_steal_pct[i] > s)
				s = v->s->recent_steal_pct[i];
		double used = 0;
		for (size_t i = 0; i < t->n; i++) {
			const struct view *a = &t->v[i];
			if (a->s->capped && a->valid && victims_has(a->s, v->s->name))
				used += a->usage_pct;
		}
		double b = v->s->resid_pct > 0 ? v->s->resid_pct : 0;
		double hi = t->p.high_pct > v->clear_pct ? t->p.high_pct : v->clear_pct + 2;
		double tgt = b + THROTTLE_LOOSEN_TARGET * (v->clear_pct - b);
		double ptgt = v->clear_pct + 0.5 * (hi - v->clear_pct);
		double r = INFINITY, pr = INFINITY;
		if (v->eligible && s - b >= 0.01 && used >= 0.01) {
			r = used * ((tgt - b) / (s - b) - 1.0);
			pr = used * ((ptgt - b) / (s - b) - 1.0);
		}
		if (v->eligible && v->usage_pct >= THROTTLE_ACTIVE_PCT && !(b > 0)) {
			double wr = (tgt - s) * v->vcpus, wp = (ptgt - s) * v->vcpus;
			r = wr < r ? wr : r;
			pr = wp < pr ? wp : pr;
		}
		size_t ncaps = 0;
		for (size_t i = 0; i < t->n; i++)
			ncaps += t->v[i].s->capped && victims_has(t->v[i].s, v->s->name);
		double per = ncaps ? (double)ncaps : 1;
		v->headroom_us = r > 0 ? r / per * (double)THROTTLE_PERIOD_US / 100.0 : 0;
		v->probe_us = pr > 0 ? pr / per * (double)THROTTLE_PERIOD_US / 100.0 : 0;
	}
	*room = v->headroom_us;
	*probe = v->probe_us;
}

/* --- the antagonists' side ------------------------------------------------ */

/* Forced by the policy: dry-run switched, protected VMs, raised floors.
 * Not counted against max_actions_per_tick. */
static void forced(struct tick *t)
{
	struct throttle_state *st = t->st;
	if (t->p.dry_run != st->dry_run) {
		for (size_t i = 0; i < t->n; i++) {
			struct throttle_vm_state *s = t->v[i].s;
			if (!s->capped)
				continue;
			if (t->p.dry_run && !s->dry) {
				apply(t, i, THROTTLE_RESTORE, THROTTLE_REASON_DRY_RUN, 0, 0, NONE,
				      NULL, 0);
			} else if (!t->p.dry_run && s->dry) {
				/* shadow caps were never enforced: forget them */
				antagonist_reset(s);
				for (size_t k = 0; k < THROTTLE_LAG_MAX; k++)
					s->quota_hist[k] = NO_CAP;
			}
		}
		st->dry_run = t->p.dry_run;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct view *v = &t->v[i];
		struct throttle_vm_state *s = v->s;
		if (!s->capped || v->acted)
			continue;
		if (v->protect)
			apply(t, i, THROTTLE_RESTORE, THROTTLE_REASON_PROTECTED, 0, 0, NONE, NULL, 0);
		else if (v->floor_us >= v->limit_us)
			apply(t, i, THROTTLE_RESTORE, THROTTLE_REASON_FLOOR, 0, 0, NONE, NULL, 0);
		else if (s->quota_us < v->floor_us)
			apply(t, i, THROTTLE_LOOSEN, THROTTLE_REASON_FLOOR, v->floor_us, 0, NONE,
			      NULL, 0);
	}
}

/* Wall time since the last decide (0 for the first). */
static double tick_gap_s(const struct tick *t)
{
	int64_t d = t->now_ms - t->st->now_ms;
	return t->st->now_ms > 0 && d > 0 ? (double)d / 1000.0 : 0;
}

/* Every cap: prune its victims, then idle, relapse or loosening. */
static void caps_walk(struct tick *t)
{
	const struct throttle_params *p = &t->p;
	for (size_t i = 0; i < t->n; i++) {
		struct view *a = &t->v[i];
		struct throttle_vm_state *s = a->s;
		if (!s->capped || a->acted)
			continue;

		/* victims gone, or no longer sharing pCPUs with it */
		size_t keep = 0;
		for (size_t k = 0; k < s->n_victims; k++) {
			size_t w = view_index(t, s->victims[k]);
			if (w == NONE || !cpuset_intersects(&t->v[w].o->cpus, &a->o->cpus))
				continue;
			memmove(s->victims[keep++], s->victims[k], sizeof(*s->victims));
		}
		s->n_victims = keep;
		if (!keep) {
			cand_set(t, i, THROTTLE_RESTORE, THROTTLE_REASON_NO_VICTIM, PRIO_RESTORE, 0,
				 NONE);
			continue;
		}

		/* gone quiet: usage well under the cap that was in force */
		if (a->valid) {
			uint64_t wc = window_cap(t, s);
			if (wc == NO_CAP || wc > s->quota_us)
				wc = s->quota_us;
			if (a->usage_pct < us_to_pct(wc) * p->idle_pct / 100.0) {
				if (s->idle_run < UINT32_MAX)
					s->idle_run++;
			} else {
				s->idle_run = 0;
			}
			if (s->idle_run >= THROTTLE_IDLE_WINDOWS) {
				cand_set(t, i, THROTTLE_RESTORE, THROTTLE_REASON_IDLE, PRIO_RESTORE, 0,
					 NONE);
				continue;
			}
		}

		/* A victim without figures (stopped, its threads unreadable)
		 * counts as clear: it must not keep a cap forever, and relapse
		 * is seen when its figures come back. */
		bool press = false;
		size_t worst = NONE;
		for (size_t k = 0; k < s->n_victims; k++) {
			size_t w = view_index(t, s->victims[k]);
			const struct view *vw = &t->v[w];
			if (vw->pressing) {
				press = true;
				if (worst == NONE || vw->steal_pct > t->v[worst].steal_pct)
					worst = w;
			}
		}
		if (press) {
			calm_reset(s);
			if (s->probing)
				cand_set(t, i, THROTTLE_BACKOFF, THROTTLE_REASON_RELAPSE, PRIO_BACKOFF,
					 s->last_good_us, worst);
			continue;
		}
		/* calm time on the antagonist's own clock (its window, or the
		 * tick's wall time when it has no figures: a cap must not stay
		 * because nobody can be measured) */
		s->calm_s += a->valid ? a->window_s : tick_gap_s(t);
		if (s->calm_n < UINT32_MAX)
			s->calm_n++;
		bool settled = s->calm_s + EPS_S >= p->clear_s && s->calm_n >= p->lag_ticks;
		if (s->probing && settled) {
			s->probing = false;   /* the step proved good */
			s->last_good_us = s->quota_us;
		}
		if (s->probing || !settled || t->now_ms < s->hold_until_ms)
			continue;
		if (s->idle_run)
			continue; /* going quiet: the idle rule may lift it instead */

		/* A loosening step as large as every victim's room allows. When
		 * the model leaves less than a probe (THROTTLE_PROBE_FRACTION
		 * of a step), a probe all the same, as large as keeps the
		 * predicted steal halfway below high_pct, and at least 1% of a
		 * pCPU per vCPU: the model cannot see steal that comes from
		 * elsewhere, so a cap it would keep forever is tried; a relapse
		 * backs off and doubles the hold. */
		double full = p->loosen_step_pct * a->vcpus * (double)THROTTLE_PERIOD_US / 100.0;
		double step = full, pstep = THROTTLE_PROBE_FRACTION * full;
		for (size_t k = 0; k < s->n_victims; k++) {
			double room, probe;
			headroom_us(t, view_index(t, s->victims[k]), &room, &probe);
			if (room < step)
				step = room;
			if (probe < pstep)
				pstep = probe;
		}
		double least = (double)a->vcpus * THROTTLE_PERIOD_US / 100.0;
		if (step < THROTTLE_PROBE_FRACTION * full)
			step = pstep > least ? pstep : least;

		uint64_t q = s->quota_us + (uint64_t)llround(step);
		if (q >= a->limit_us)
			cand_set(t, i, THROTTLE_RESTORE, THROTTLE_REASON_CLEAR, PRIO_RESTORE, 0, NONE);
		else
			cand_set(t, i, THROTTLE_LOOSEN, THROTTLE_REASON_CLEAR, PRIO_LOOSEN, q, NONE);
	}
}

/* Whether view a is an antagonist of victim vi. *floor_us gets the lowest
 * cap it may get on that victim's account, *shared_frac the part of its
 * CPUs it shares with the victim: each step cuts only that part of its
 * usage (a VM on 16 CPUs that shares 1 with the victim loses 1/16 of what
 * a step would take from a VM on the victim's CPUs alone). */
static bool antagonist_of(struct tick *t, size_t vi, size_t ai, uint64_t *floor_us,
			  double *shared_frac)
{
	const struct view *v = &t->v[vi], *a = &t->v[ai];
	if (ai == vi || !a->valid || a->protect)
		return false;
	if (!cpuset_intersects(&v->o->cpus, &a->o->cpus))
		return false;
	int rv = class_rank(v->o->class_), ra = class_rank(a->o->class_);
	if (ra > rv)
		return false;
	struct cpuset shared;
	cpuset_and(&shared, &v->o->cpus, &a->o->cpus);
	unsigned ns = cpuset_count(&shared);
	double f = a->ncpus ? (double)ns / a->ncpus : 1;
	if (f > 1)
		f = 1;
	*shared_frac = f;
	if (ra < rv) {
		*floor_us = a->floor_us;
		return true;
	}

	/* Same class: only beyond its weight-fair share of the shared pCPUs,
	 * as CFS splits them: tenants active there by weight, each counted
	 * by the part of its vCPUs that run there (CFS spreads a group's
	 * weight over the CPUs by its load), a tenant's VMs by their VM
	 * weights (each counted by the part of its CPUs that is shared). */
	struct group { const char *tenant; double weight, vc_all, vc_here, w_here; } *g =
		xcalloc(t->n, sizeof(*g));
	size_t ng = 0;
	double mine = 0;
	for (size_t j = 0; j < t->n; j++) {
		const struct view *x = &t->v[j];
		if (!x->valid || !x->ncpus)
			continue;
		if (j != ai && j != vi && x->usage_pct < THROTTLE_ACTIVE_PCT)
			continue;
		struct cpuset both;
		cpuset_and(&both, &x->o->cpus, &shared);
		unsigned nb = cpuset_count(&both);
		const char *tn = x->o->tenant ? x->o->tenant : "";
		size_t k = 0;
		while (k < ng && strcmp(g[k].tenant, tn) != 0)
			k++;
		if (k == ng)
			g[ng++] = (struct group){ .tenant = tn,
						  .weight = x->o->weight ? x->o->weight : 1 };
		g[k].vc_all += x->vcpus;
		if (!nb)
			continue;
		double part = (double)nb / x->ncpus;
		double vw = x->o->vm_weight > 0 && isfinite(x->o->vm_weight) ? x->o->vm_weight
									   : (double)x->vcpus;
		g[k].vc_here += x->vcpus * part;
		g[k].w_here += vw * part;
		if (j == ai)
			mine = vw * part;
	}
	double wsum = 0, share = 0;
	for (size_t k = 0; k < ng; k++)
		if (g[k].vc_all > 0)
			wsum += g[k].weight * g[k].vc_here / g[k].vc_all;
	const char *atn = a->o->tenant ? a->o->tenant : "";
	for (size_t k = 0; k < ng; k++)
		if (strcmp(g[k].tenant, atn) == 0 && g[k].w_here > 0 && wsum > 0)
			share = g[k].weight * g[k].vc_here / g[k].vc_all / wsum * mine /
				g[k].w_here;
	free(g);
	double fair_pct = share * ns * 100.0;          /* of the shared pCPUs */
	double used_pct = a->usage_pct * f;
	if (!(used_pct > fair_pct * THROTTLE_FAIR_MARGIN))
		return false;
	/* its fair share there, and what it uses elsewhere */
	double keep_us = (1 - f) * a->usage_pct * (double)THROTTLE_PERIOD_US / 100.0;
	uint64_t fair_us = pct_to_us(fair_pct) + (uint64_t)llround(keep_us);
	*floor_us = fair_us > a->floor_us ? fair_us : a->floor_us;
	return true;
}

static int pressing_cmp(const void *x, const void *y, void *arg)
{
	const struct view *v = arg;
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	if (v[a].steal_pct != v[b].steal_pct)
		return v[a].steal_pct > v[b].steal_pct ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* Every pressing victim caps or tightens its antagonists. */
static void victims_walk(struct tick *t)
{
	const struct throttle_params *p = &t->p;
	size_t *order = xcalloc(t->n ? t->n : 1, sizeof(*order));
	size_t np = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].pressing)
			order[np++] = i;
	qsort_r(order, np, sizeof(*order), pressing_cmp, t->v);

	for (size_t k = 0; k < np; k++) {
		size_t vi = order[k];
		size_t cut = 0, at_floor = 0;
		for (size_t ai = 0; ai < t->n; ai++) {
			uint64_t floor_us;
			double f;
			struct view *a = &t->v[ai];
			struct throttle_vm_state *s = a->s;
			if (a->acted || !antagonist_of(t, vi, ai, &floor_us, &f))
				continue;
			struct cand *c = t->cand_of[ai] == NONE ? NULL : &t->cands[t->cand_of[ai]];
			if (c && (c->kind == THROTTLE_BACKOFF ||
				  (c->kind == THROTTLE_RESTORE && c->reason == THROTTLE_REASON_IDLE)))
				continue;
			/* a step cuts the shared part of its usage by tighten_fraction */
			double keep = 1 - (1 - p->tighten_fraction) * f;
			double usage_us = a->usage_pct * (double)THROTTLE_PERIOD_US / 100.0;
			uint64_t q;
			enum throttle_action_kind kind;
			if (!s->capped) {
				if (usage_us <= (double)floor_us)
					continue; /* a cap at its floor would not bind */
				double x = keep * usage_us;
				q = x > (double)floor_us ? (uint64_t)llround(x) : floor_us;
				if (q >= a->limit_us)
					continue;
				kind = THROTTLE_CAP;
			} else {
				if (s->last_kind == THROTTLE_BACKOFF &&
				    t->tick < s->changed_at + p->lag_ticks)
					continue; /* the back-off cannot be seen yet */
				double base = usage_us < (double)s->quota_us ? usage_us
									     : (double)s->quota_us;
				double x = keep * base;
				q = x > (double)floor_us ? (uint64_t)llround(x) : floor_us;
				kind = THROTTLE_TIGHTEN;
				if (q >= s->quota_us) {
					/* at its floor for this victim: no action, but it
					 * stays capped on this victim's account too */
					victims_add(s, t->v[vi].s->name);
					if (c && c->kind != THROTTLE_TIGHTEN)
						cand_drop(t, ai);
					/* seen at that floor for at least the lag */
					if (t->tick >= s->changed_at + p->lag_ticks)
						at_floor++;
					continue;
				}
			}
			if (c && (c->kind == THROTTLE_CAP || c->kind == THROTTLE_TIGHTEN)) {
				if (q < c->quota_us) {
					c->quota_us = q;
					c->floor_us = floor_us;
				}
			} else {
				cand_set(t, ai, kind, THROTTLE_REASON_STEAL, PRIO_TIGHTEN, q, vi);
				c = &t->cands[t->cand_of[ai]];
				c->floor_us = floor_us;
				c->rank = a->usage_pct - us_to_pct(floor_us);
			}
			c->victims = xrealloc(c->victims, (c->n_victims + 1) * sizeof(size_t));
			c->victims[c->n_victims++] = vi;
			cut++;
		}
		/* Still pressing with every antagonist at its floor: the rest
		 * of its steal is not theirs to give back. Learn it, so that
		 * the victim counts as clear around it and the caps may be
		 * probed off instead of staying forever. (Not from shadow caps:
		 * dry-run caps change nothing, and would all be "learnt".) */
		struct view *v = &t->v[vi];
		if (!cut && at_floor && !p->dry_run) {
			double r = v->steal_pct;   /* and the window before */
			if (v->s->recent_steal_pct[1] > r)
				r = v->s->recent_steal_pct[1];
			if (r > v->s->resid_pct)
				v->s->resid_pct = r;
		}
	}
	free(order);
}

/* --- the tick ------------------------------------------------------------ */

static void disable_all(struct tick *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct throttle_vm_state *s = t->v[i].s;
		if (s->capped)
			apply(t, i, THROTTLE_RESTORE, THROTTLE_REASON_DISABLED, 0, 0, NONE, NULL, 0);
		victim_reset(s);
		s->steal_pct = t->v[i].steal_pct;
	}
	t->st->dry_run = t->p.dry_run;
}

void throttle_decide(struct throttle_state *st, const struct throttle_params *params,
		     uint64_t tick, int64_t now_ms, const struct throttle_vm_obs *obs,
		     size_t n_obs, struct throttle_result *out)
{
	throttle_result_clear(out);
	struct tick t = { .p = params_sane(params), .tick = tick, .now_ms = now_ms, .st = st,
			  .out = out };
	sync_state(&t, obs, n_obs);

	if (!t.p.enabled) {
		disable_all(&t);
	} else {
		forced(&t);
		victims_update(&t);
		caps_walk(&t);
		victims_walk(&t);

		if (t.n_cands)
			qsort(t.cands, t.n_cands, sizeof(*t.cands), cand_cmp);
		uint32_t done = 0;
		for (size_t i = 0; i < t.n_cands && done < t.p.max_actions_per_tick; i++) {
			const struct cand *c = &t.cands[i];
			if (c->vm == NONE)
				break; /* holes sort last */
			apply(&t, c->vm, c->kind, c->reason, c->quota_us, c->floor_us, c->victim,
			      c->victims, c->n_victims);
			done++;
		}
	}

	st->tick = tick;
	st->now_ms = now_ms;

	/* the caps for the planner, and this tick's caps for the lag */
	size_t nc = 0;
	for (size_t i = 0; i < st->n_vms; i++)
		nc += st->vms[i].capped && !st->vms[i].dry;
	out->caps = xcalloc(nc ? nc : 1, sizeof(*out->caps));
	for (size_t i = 0; i < st->n_vms; i++) {
		struct throttle_vm_state *s = &st->vms[i];
		if (s->capped && !s->dry) {
			snprintf(out->caps[out->n_caps].vm, sizeof(out->caps->vm), "%s", s->name);
			out->caps[out->n_caps++].quota_us = s->quota_us;
		}
		memmove(&s->quota_hist[1], &s->quota_hist[0],
			(THROTTLE_LAG_MAX - 1) * sizeof(s->quota_hist[0]));
		s->quota_hist[0] = s->capped ? s->quota_us : NO_CAP;
	}

	for (size_t i = 0; i < t.n_cands; i++)
		free(t.cands[i].victims);
	free(t.cands);
	free(t.cand_of);
	free(t.v);
}
