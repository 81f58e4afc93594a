/* explain.c - GET /v1/vms/NAME/explain: why a VM is placed where it is,
 * whether it is a victim or an antagonist now, which cap it has, which
 * event and figures caused it, and what would lift it. The pieces come
 * from the registry (the VM and its admission), the store (its tenant, the
 * throttle events) and the daemon's throttler (ctx->explain); the
 * "explanation" is those pieces in plain sentences, for `vcpuctl explain`. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/admission.h"
#include "vcpud/api.h"
#include "vcpud/log.h"
#include "vcpud/plan.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

/* --- reading the pieces --------------------------------------------------- */

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* A throttle event as JSON ({"ts_ms","action","target","details"}), or null. */
static json_t *event_json(struct store *st, const char *vm, bool as_victim)
{
	struct store_event ev;
	_cleanup_error_ struct error *e = NULL;
	int found = store_event_last_throttle(st, vm, as_victim, &ev, &e);
	if (found < 0)
		log_warn("explain %s: %s", vm, e->msg);
	if (found <= 0)
		return json_null();
	json_t *d = ev.details ? json_loads(ev.details, 0, NULL) : NULL;
	json_t *o = json_pack("{s:I,s:s,s:s,s:o}", "ts_ms", (json_int_t)ev.ts_ms, "action",
			      ev.action ? ev.action : "", "target", ev.target ? ev.target : "",
			      "details", d ? d : json_object());
	store_event_clear(&ev);
	return o;
}

/* --- sentences ------------------------------------------------------------- */

struct text {
	json_t *lines;
};

__attribute__((format(printf, 2, 3)))
static void say(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	json_array_append_new(t->lines, json_string(s));
	free(s);
}

static char *names_of(const json_t *arr, const char *key)
{
	char *out = xstrdup("");
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v) {
		const char *n = key ? str(v, key) : json_string_value(v);
		char *cap = NULL;
		if (key && json_is_number(json_object_get(v, "cap_pct")))
			cap = xasprintf(" (cap %.1f%%)", num(v, "cap_pct"));
		char *m = xasprintf("%s%s%s%s", out, i ? ", " : "", n ? n : "?", cap ? cap : "");
		free(cap);
		free(out);
		out = m;
	}
	return out;
}

static void say_placement(struct text *t, struct registry *reg, const json_t *view,
			  const struct tenant *tn)
{
	const json_t *w = json_object_get(view, "weight");
	json_int_t set = json_is_integer(w) ? json_integer_value(w) : 0;
	json_int_t vcpus = json_integer_value(json_object_get(view, "vcpus"));
	say(t, "%s belongs to tenant %s (%s, cpu.weight %u, %u of %u vCPUs in use); its VM "
	    "cgroup's cpu.weight is %u, %s.", str(view, "name"), tn->name,
	    tenant_class_to_string(tn->class_), tn->weight, tn->vcpus_used, tn->vcpus,
	    plan_vm_weight(set > 0 && set <= CGROUP_WEIGHT_MAX ? (uint32_t)set : 0,
			   vcpus > 0 && vcpus <= TENANT_VCPUS_MAX ? (uint32_t)vcpus : 0),
	    set ? "its own (vcpuctl vm set --weight)"
		: "100 per vCPU (its tenant's share is split between its VMs by vCPUs)");
	const json_t *pl = json_object_get(view, "placement");
	if (!json_is_object(pl)) {
		say(t, "It holds no admission: it is not pinned, and runs on the CPUs its cgroups "
		    "allow.");
		return;
	}
	const json_t *nodes = json_object_get(pl, "nodes");
	size_t nn = json_array_size(nodes);
	unsigned *ids = xcalloc(nn ? nn : 1, sizeof(*ids));
	for (size_t i = 0; i < nn; i++)
		ids[i] = (unsigned)json_integer_value(json_array_get(nodes, i));
	_cleanup_free_ char *use = admission_nodes_use(reg, ids, nn);
	free(ids);
	char *figs = use ? xasprintf("; %s", use) : xstrdup("");
	if (strcmp(str(pl, "pool"), "dedicated") == 0)
		say(t, "It is admitted to the dedicated pool: pCPUs %s, one per vCPU, never "
		    "overcommitted (thread policy %s)%s.", str(pl, "pcpus"), str(pl, "thread_policy"),
		    figs);
	else
		say(t, "It is admitted to the shared pool and pinned to CPUs %s, memory nodes %s: "
		    "its vCPUs count against each node's overcommit%s.", str(pl, "cpus"),
		    str(pl, "mems"), figs);
	free(figs);
}

static void say_event(struct text *t, const json_t *ev, const char *why)
{
	if (!json_is_object(ev))
		return;
	const json_t *d = json_object_get(ev, "details");
	_cleanup_free_ char *when = utc_time_str(json_integer_value(json_object_get(ev, "ts_ms")) /
						 1000);
	_cleanup_free_ char *cap = json_is_number(json_object_get(d, "cap_pct"))
		? xasprintf("%.1f%%", num(d, "cap_pct")) : xstrdup("none");
	const char *victim = str(d, "victim");
	say(t, "%s %s: %s of %s to %s (reason %s; victim %s at %.1f%% steal, its usage %.1f%%, "
	    "floor %.1f%%).", why, when, str(ev, "action"), str(ev, "target"), cap,
	    str(d, "reason"), *victim ? victim : "-", num(d, "victim_steal_pct"),
	    num(d, "usage_pct"), num(d, "floor_pct"));
}

static void say_throttle(struct text *t, const json_t *th, const json_t *ev, const json_t *vev,
			 enum tenant_class cls)
{
	if (!json_is_object(th)) {
		say(t, "vcpud has no figures of it from its last tick (not running, not sampled "
		    "yet, or its tenant unknown): the throttler does not judge it.");
		return;
	}
	const json_t *cap = json_object_get(th, "cap");
	const json_t *vic = json_object_get(th, "victim");
	double steal = num(th, "steal_pct"), usage = num(th, "usage_pct");
	if (!isnan(steal))
		say(t, "Last tick: %.1f%% of a pCPU used over its vCPUs, %.1f%% steal (mean "
		    "run_delay per vCPU), %.1f%% of the time held back by its own or its "
		    "tenant's cap (subtracted from its steal).", usage, steal,
		    isnan(num(th, "self_throttled_pct")) ? 0 : num(th, "self_throttled_pct"));
	if (json_is_object(vic)) {
		const json_t *by = json_object_get(vic, "capped_for_it");
		_cleanup_free_ char *names = names_of(by, "vm");
		say(t, "It is %s victim: steal %.1f%% against steal.high_pct %.1f%% (%.1f s of "
		    "%.1f s above it%s); clear at or below %.1f%%.",
		    json_is_true(json_object_get(vic, "engaged")) ? "a confirmed" : "a possible",
		    num(vic, "steal_pct"), num(vic, "high_pct"), num(vic, "breach_s"),
		    num(vic, "breach_need_s"),
		    json_is_true(json_object_get(vic, "engaged")) ? ": confirmed" : "",
		    num(vic, "clear_level_pct"));
		if (json_array_size(by))
			say(t, "Capped on its account: %s.", names);
		else
			say(t, "No neighbour is capped on its account (none shares its pCPUs and "
			    "is of a lower class or over its fair share, or none can be cut).");
		if (json_is_number(json_object_get(vic, "resid_pct")))
			say(t, "%.1f%% of its steal is residual: its antagonists are at their floors "
			    "and it stayed, so it comes from elsewhere (a guaranteed neighbour, the "
			    "host); it counts as clear up to %.1f%%, so the caps are still let go.",
			    num(vic, "resid_pct"), num(vic, "clear_level_pct"));
		say_event(t, vev, "The last throttle event naming it:");
	}
	if (json_is_object(cap)) {
		_cleanup_free_ char *victims = names_of(json_object_get(cap, "victims"), NULL);
		bool dry = json_is_true(json_object_get(cap, "dry_run"));
		say(t, "It is %s at %.1f%% of a pCPU (cpu.max %s) as an antagonist of %s.",
		    dry ? "would be capped (dry-run: nothing written)" : "capped", num(cap, "cap_pct"),
		    str(cap, "cpu_max"), *victims ? victims : "no victim now");
		say_event(t, ev, "The cap's last change,");
		double left = num(cap, "hold_left_s");
		if (json_is_true(json_object_get(cap, "probing")))
			say(t, "A loosening step is being proved: if a victim goes back above its "
			    "clear level the cap returns to %.1f%% and the hold doubles.",
			    num(cap, "last_good_pct"));
		say(t, "What lifts it: its victims at or below their clear level for %.1f s "
		    "(%.1f s so far) and the hold over (%.0f s, %.0f s left), then loosening steps "
		    "until it reaches its vCPUs; at once if it uses less than %.0f%% of its cap "
		    "for two windows, if its victims go or stop sharing its pCPUs, or if its "
		    "tenant becomes guaranteed or exempt.", num(cap, "clear_need_s"),
		    num(cap, "calm_s"), num(cap, "hold_s"), left, num(cap, "idle_pct"));
	} else if (!json_is_object(vic)) {
		say(t, "It is neither a victim nor capped%s.",
		    cls == TENANT_CLASS_GUARANTEED ? " (a guaranteed VM is never capped)"
		    : cls == TENANT_CLASS_BEST_EFFORT ? " (a best-effort VM is never a victim)" : "");
	}
}

int api_explain_vm(struct api_ctx *ctx, const char *name, json_t **out, struct error **err)
{
	struct registry_vm_view v;
	if (registry_vm_get(ctx->reg, name, &v, err) < 0)
		return -1;
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	json_t *view = api_vm_view_to_json(&v, &host);
	registry_vm_view_clear(&v);
	struct tenant tn;
	const char *tname = str(view, "tenant");
	bool have_tenant = *tname && store_tenant_get(ctx->store, tname, &tn, NULL) == 0;

	json_t *th = ctx->explain ? ctx->explain(ctx->explain_data, name) : NULL;
	json_t *ev = event_json(ctx->store, name, false);
	json_t *vev = event_json(ctx->store, name, true);
	struct text t = { json_array() };
	if (have_tenant)
		say_placement(&t, ctx->reg, view, &tn);
	else
		say(&t, "%s has no tenant vcpud knows: it is not managed.", name);
	say(&t, "Its state is %s.", str(view, "state"));
	say_throttle(&t, th, ev, vev,
		     have_tenant ? tn.class_ : TENANT_CLASS_BURSTABLE);

	*out = json_pack("{s:s,s:s?,s:s?,s:s,s:O,s:O,s:o,s:o,s:o,s:o}", "vm", name, "tenant",
			 have_tenant ? tn.name : NULL, "class",
			 have_tenant ? tenant_class_to_string(tn.class_) : NULL, "state",
			 str(view, "state"), "placement", json_object_get(view, "placement"),
			 "weight", json_object_get(view, "weight"), "throttle",
			 th ? th : json_null(), "event", ev, "victim_event", vev, "explanation",
			 t.lines);
	json_decref(view);
	return 0;
}
