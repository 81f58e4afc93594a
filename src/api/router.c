/* router.c - maps (method, path) to handlers and turns their results into
 * HTTP status codes and JSON. No HTTP library here: the daemon's server
 * (server.c) hands in a complete request and sends back what this returns,
 * so the handlers are unit-tested without sockets.
 *
 * Every handler either succeeds or returns an error carrying an errno, which
 * api_status_for_errno() maps to the status; a refused request changes
 * nothing because the store runs each mutation in one transaction. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/fleet.h"
#include "vcpud/admission.h"
#include "vcpud/api.h"
#include "vcpud/cgroup.h"
#include "vcpud/discover.h"
#include "vcpud/ledger.h"
#include "vcpud/log.h"
#include "vcpud/policy.h"
#include "vcpud/prom.h"
#include "vcpud/registry.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

#ifndef VCPUD_VERSION
#define VCPUD_VERSION "0.1.0"
#endif

enum route_id { R_HEALTH, R_TENANTS, R_TENANT, R_VMS, R_VM, R_VM_ADMIT, R_VM_STATS,
		R_VM_EXPLAIN, R_HOST, R_TOP, R_EVENTS, R_FLEET_HOSTS, R_FLEET_EVICT, R_LAST };

struct route_match {
	enum route_id id;
	char name[NAME_MAX_LEN + 1]; /* {name} segment, validated */
};

typedef int (*handler_fn)(struct api_ctx *ctx, const struct api_request *req,
			  const struct route_match *m, json_t *body, int *status,
			  json_t **out, struct error **err);

/* Parse the body as one JSON value. Empty body -> error. */
static int body_json(const struct api_request *req, json_t **out, struct error **err)
{
	if (!req->body || req->body_len == 0)
		return error_set(err, EINVAL, "request body is empty: expected a JSON object");
	json_error_t je;
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return error_set(err, EINVAL, "malformed JSON at line %d column %d: %s",
				 je.line, je.column, je.text);
	*out = j;
	return 0;
}

static void notify_change(struct api_ctx *ctx)
{
	if (ctx->after_change)
		ctx->after_change(ctx->after_change_data);
}

static int h_health(struct api_ctx *ctx, const struct api_request *req,
		    const struct route_match *m, json_t *body, int *status, json_t **out,
		    struct error **err)
{
	(void)req; (void)m; (void)body; (void)err;
	int64_t up = (now_mono_ns() - ctx->started_mono_ns) / 1000000000LL;
	json_t *qv = json_array();
	size_t nq = ctx->reg ? registry_fault_count(ctx->reg) : 0;
	for (size_t i = 0; i < nq; i++) {
		const char *name = NULL, *msg = NULL;
		enum registry_fault_kind kind = REGISTRY_FAULT_LAST;
		registry_fault_get(ctx->reg, i, &name, &msg, &kind);
		int64_t since = 0;
		registry_fault_of(ctx->reg, name, &since, NULL);
		json_array_append_new(qv, json_pack("{s:s,s:s,s:s,s:I}", "name", name, "kind",
						    registry_fault_kind_name(kind), "reason", msg,
						    "since_ms", (json_int_t)since));
	}
	bool degraded = ctx->last_errors > 0 || nq > 0;
	json_t *lv = json_pack("{s:s,s:o,s:o}", "state",
			       ctx->libvirt_state ? ctx->libvirt_state : "unknown", "since_ms",
			       ctx->libvirt_since_ms ? json_integer(ctx->libvirt_since_ms)
						     : json_null(),
			       "error", ctx->libvirt_error ? json_string(ctx->libvirt_error)
							   : json_null());
	*out = json_pack("{s:s,s:s,s:i,s:I,s:s?,s:b,s:s?,s:b,s:s?,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:o,s:I,s:o,s:o}",
			 "status", degraded ? "degraded" : "ok",
			 "version", VCPUD_VERSION, "schema_version",
			 store_schema_version(ctx->store), "uptime_s", (json_int_t)up, "policy",
			 ctx->policy_path, "policy_builtin", ctx->policy_builtin, "cgroup_root",
			 ctx->cgroup_root, "dry_run", ctx->dry_run, "sampler", ctx->sampler,
			 "ticks", (json_int_t)ctx->ticks,
			 "last_tick_ms", (json_int_t)ctx->last_tick_ms, "last_tick_us",
			 (json_int_t)ctx->last_tick_us, "last_tick_sql", (json_int_t)ctx->last_tick_sql,
			 "last_tick_stage_max_us", (json_int_t)ctx->last_tick_stage_max_us,
			 "last_tick_writes", (int)ctx->last_writes,
			 "last_tick_errors", (int)ctx->last_errors, "last_error",
			 ctx->last_error ? json_string(ctx->last_error) : json_null(),
			 "quarantined", (json_int_t)nq, "quarantined_vms", qv, "libvirt", lv);
	json_object_set_new(*out, "ledger", ctx->ledger ? ctx->ledger->ops->status(ctx->ledger)
							: json_pack("{s:s}", "backend", "local"));
	*status = 200;
	return 0;
}

/* The VM endpoints need the lifecycle. */
static int need_registry(struct api_ctx *ctx, struct error **err)
{
	if (!ctx->reg)
		return error_set(err, EIO, "the VM lifecycle is not available");
	return 0;
}

static int h_tenant_list(struct api_ctx *ctx, const struct api_request *req,
			 const struct route_match *m, json_t *body, int *status,
			 json_t **out, struct error **err)
{
	(void)req; (void)m; (void)body;
	_cleanup_free_ struct tenant *ts = NULL;
	size_t n = 0;
	if (store_tenant_list(ctx->store, &ts, &n, err) < 0)
		return -1;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, api_tenant_json(ctx, &ts[i]));
	*out = json_pack("{s:o}", "tenants", arr);
	*status = 200;
	return 0;
}

static int h_tenant_create(struct api_ctx *ctx, const struct api_request *req,
			   const struct route_match *m, json_t *body, int *status,
			   json_t **out, struct error **err)
{
	(void)m;
	struct tenant t;
	if (api_tenant_create_from_json(body, &t, err) < 0)
		return -1;
	if (ledger_is_fleet(ctx->ledger))
		return api_fleet_tenant_create(ctx, req->actor, &t, status);
	if (store_tenant_create(ctx->store, &t, req->actor, err) < 0)
		return -1;
	if (store_tenant_get(ctx->store, t.name, &t, err) < 0)
		return -1;
	log_info("tenant %s created by %s: %u vCPUs, weight %u, class %s", t.name, req->actor,
		 t.vcpus, t.weight, tenant_class_to_string(t.class_));
	notify_change(ctx);
	*out = api_tenant_to_json(&t);
	*status = 201;
	return 0;
}

static int h_tenant_get(struct api_ctx *ctx, const struct api_request *req,
			const struct route_match *m, json_t *body, int *status, json_t **out,
			struct error **err)
{
	(void)req; (void)body;
	struct tenant t;
	if (store_tenant_get(ctx->store, m->name, &t, err) < 0)
		return -1;
	*out = api_tenant_json(ctx, &t);
	*status = 200;
	return 0;
}

static int h_tenant_patch(struct api_ctx *ctx, const struct api_request *req,
			  const struct route_match *m, json_t *body, int *status,
			  json_t **out, struct error **err)
{
	struct tenant_patch p;
	struct tenant t;
	if (api_tenant_patch_from_json(body, &p, err) < 0)
		return -1;
	if (ledger_is_fleet(ctx->ledger))
		return api_fleet_tenant_update(ctx, req->actor, m->name, &p, status);
	if (store_tenant_update(ctx->store, m->name, &p, req->actor, &t, err) < 0)
		return -1;
	if (store_tenant_get(ctx->store, m->name, &t, err) < 0)
		return -1;
	log_info("tenant %s changed by %s", t.name, req->actor);
	notify_change(ctx);
	*out = api_tenant_to_json(&t);
	*status = 200;
	return 0;
}

static int h_tenant_delete(struct api_ctx *ctx, const struct api_request *req,
			   const struct route_match *m, json_t *body, int *status,
			   json_t **out, struct error **err)
{
	(void)body;
	if (ledger_is_fleet(ctx->ledger)) {
		*out = NULL;
		return api_fleet_tenant_delete(ctx, req->actor, m->name, status);
	}
	if (store_tenant_delete(ctx->store, m->name, req->actor, err) < 0)
		return -1;
	log_info("tenant %s deleted by %s", m->name, req->actor);
	notify_change(ctx);
	*out = NULL;
	*status = 204;
	return 0;
}

/* POST /v1/vms/admit */
static int h_vm_admit(struct api_ctx *ctx, const struct api_request *req,
		      const struct route_match *m, json_t *body, int *status, json_t **out,
		      struct error **err)
{
	(void)m;
	struct admit_request ar;
	bool dry_run = false;
	if (need_registry(ctx, err) < 0 || api_admit_from_json(body, &ar, &dry_run, err) < 0)
		return -1;
	if (ledger_is_fleet(ctx->ledger) && !dry_run)
		return api_fleet_admit(ctx, req->actor, &ar, status, out, err);
	struct admit_placement pl;
	if (registry_admit(ctx->reg, &ar, dry_run, req->actor, &pl, err) < 0) {
		if (err && *err && (*err)->code == EAGAIN)
			(*err)->code = EIO;
		return -1;
	}
	/* a dry run with the fleet ledger: this host's checks above, the
	 * fleet's quota against its use as last read */
	if (dry_run && !pl.existing && ledger_is_fleet(ctx->ledger) &&
	    api_fleet_dry_check(ctx, &ar, err) < 0)
		return -1;
	struct vm v;
	bool registered = store_vm_get(ctx->store, ar.vm, &v, NULL) == 0;
	if (registered)
		vm_clear(&v);
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	_cleanup_free_ char *where = admit_placement_describe(&host, &pl.res);
	if (pl.existing)
		log_info("VM %s: admission asked again by %s, the same request: %s", ar.vm,
			 req->actor, where);
	else
		log_info("VM %s %s for tenant %s by %s: %u vCPUs, %s", ar.vm,
			 dry_run ? "would be admitted" : "admitted", ar.tenant, req->actor,
			 ar.vcpus, where);
	if (!dry_run && !pl.existing)
		notify_change(ctx);
	*out = admission_reservation_json(ctx->reg, &pl.res, dry_run, registered);
	/* 201 made now; 200 a dry run or the same answer again */
	*status = dry_run || pl.existing ? 200 : 201;
	return 0;
}

/* The value of `key` in a query "after=12&since_ms=...&limit=100" (a new
 * string), or NULL. */
static char *query_value(const char *query, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == '=')
			return xstrndup(p + kl + 1, strcspn(p + kl + 1, "&"));
	return NULL;
}

/* An integer parameter in min..max; *out untouched when it is absent. */
static int query_i64(const char *query, const char *key, int64_t min, int64_t max,
		     int64_t *out, struct error **err)
{
	_cleanup_free_ char *s = query_value(query, key);
	if (s && parse_i64(s, min, max, out, err) < 0)
		return error_wrap(err, "query parameter %s", key);
	return 0;
}

/* query "after=NAME": a VM name (name_valid), or none (*out ""). */
static int query_name(const char *query, const char *key, char out[NAME_MAX_LEN + 1],
		      struct error **err)
{
	out[0] = '\0';
	_cleanup_free_ char *name = query_value(query, key);
	if (!name)
		return 0;
	if (name_check("query parameter after", name, err) < 0)
		return -1;
	snprintf(out, NAME_MAX_LEN + 1, "%s", name);
	return 0;
}

static int name_cmp_json(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
	return strcmp(x ? x : "", y ? y : "");
}

/* One page of `all` (objects with a "name"), by name: those after `after`
 * (all when ""), at most `limit`. *next = the last name of the page when
 * more follow, else NULL (borrowed from the page). Returns a new array. */
static json_t *page_by_name(const json_t *all, const char *after, size_t limit,
			    const char **next)
{
	size_t n = json_array_size(all);
	json_t **v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(all, i);
	qsort(v, n, sizeof(*v), name_cmp_json);
	json_t *page = json_array();
	*next = NULL;
	size_t i = 0;
	while (i < n && after[0] &&
	       strcmp(json_string_value(json_object_get(v[i], "name")) ?: "", after) <= 0)
		i++;
	for (; i < n; i++) {
		if (json_array_size(page) == limit) {
			*next = json_string_value(json_object_get(json_array_get(page, limit - 1),
								  "name"));
			break;
		}
		json_array_append(page, v[i]);
	}
	free(v);
	return page;
}

/* limit and after of a listing; limit 1..API_PAGE_MAX, default API_PAGE_DEFAULT */
static int page_query(const struct api_request *req, char after[NAME_MAX_LEN + 1],
		      size_t *limit, struct error **err)
{
	int64_t l = API_PAGE_DEFAULT;
	if (query_i64(req->query, "limit", 1, API_PAGE_MAX, &l, err) < 0 ||
	    query_name(req->query, "after", after, err) < 0)
		return -1;
	*limit = (size_t)l;
	return 0;
}

/* Make out[key] one page of `all` (out[key] itself when all is NULL) and
 * set out["next"]; true when more pages follow. */
static bool page_set(json_t *out, const char *key, const json_t *all, const char *after,
		     size_t limit)
{
	const char *next = NULL;
	json_t *page = page_by_name(all ? all : json_object_get(out, key), after, limit, &next);
	json_object_set_new(out, "next", next ? json_string(next) : json_null());
	json_object_set_new(out, key, page);
	return next != NULL;
}

/* GET /v1/host */
static int h_host(struct api_ctx *ctx, const struct api_request *req,
		  const struct route_match *m, json_t *body, int *status, json_t **out,
		  struct error **err)
{
	(void)m; (void)body;
	size_t limit;
	char after[NAME_MAX_LEN + 1];
	if (page_query(req, after, &limit, err) < 0 || need_registry(ctx, err) < 0)
		return -1;
	if (admission_host_json(ctx->reg, ctx->store, out, err) < 0) {
		if (err && *err && (*err)->code == EAGAIN)
			(*err)->code = EIO;
		return -1;
	}
	/* the reservations in pages by name; the rest comes whole */
	page_set(*out, "reservations", NULL, after, limit);
	*status = 200;
	return 0;
}

/* GET /v1/vms?limit=N&after=NAME: a page of the VMs by name, with "next"
 * (the name to ask after) while more follow; the unmanaged VMs discovery
 * found come with the last page. */
static int h_vm_list(struct api_ctx *ctx, const struct api_request *req,
		     const struct route_match *m, json_t *body, int *status, json_t **out,
		     struct error **err)
{
	(void)m; (void)body;
	struct registry_vm_view *vv = NULL;
	size_t n = 0, limit;
	char after[NAME_MAX_LEN + 1];
	if (page_query(req, after, &limit, err) < 0)
		return -1;
	if (need_registry(ctx, err) < 0 || registry_vm_list(ctx->reg, &vv, &n, err) < 0)
		return -1;
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, api_vm_view_to_json(&vv[i], &host));
		registry_vm_view_clear(&vv[i]);
	}
	free(vv);
	*out = json_object();
	bool more = page_set(*out, "vms", arr, after, limit);
	json_decref(arr);
	/* VMs discovery found without a tenant: listed, left alone */
	size_t k;
	json_t *u;
	if (!more)
		json_array_foreach(ctx->unmanaged, k, u)
			json_array_append(json_object_get(*out, "vms"), u);
	*status = 200;
	return 0;
}

static int vm_view_reply(struct api_ctx *ctx, const char *name, json_t **out,
			 struct error **err)
{
	struct registry_vm_view v;
	if (registry_vm_get(ctx->reg, name, &v, err) < 0)
		return -1;
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	*out = api_vm_view_to_json(&v, &host);
	registry_vm_view_clear(&v);
	return 0;
}

/* Register a running VM by PID: find its vCPU threads by name, then let
 * the lifecycle admit and store it in one transaction. */
static int h_vm_register(struct api_ctx *ctx, const struct api_request *req,
			 const struct route_match *m, json_t *body, int *status,
			 json_t **out, struct error **err)
{
	(void)m;
	struct vm v;
	if (need_registry(ctx, err) < 0 || api_vm_register_from_json(body, &v, err) < 0)
		return -1;
	struct vm_vcpu *th = NULL;
	size_t nth = 0;
	if (proc_vm_vcpus(ctx->host_root, v.pid, &th, &nth, err) < 0) {
		/* a missing process or one without vCPU threads is bad input */
		if (err && *err && ((*err)->code == ESRCH || (*err)->code == ENOENT))
			(*err)->code = EINVAL;
		return error_wrap(err, "cannot register VM '%s'", v.name);
	}
	v.threads = th;
	v.n_threads = nth;
	v.vcpus = th[nth - 1].index + 1; /* indexes are sorted; gaps are hot-unplugged */
	if (ledger_is_fleet(ctx->ledger) && !registry_reservation_of(ctx->reg, v.name, NULL)) {
		/* booked in the fleet first */
		int frc = api_fleet_register(ctx, req->actor, &v, status);
		vm_clear(&v);
		return frc;
	}
	int rc = registry_register(ctx->reg, &v, req->actor, err);
	vm_clear(&v);
	if (rc < 0)
		return -1;
	notify_change(ctx);
	if (vm_view_reply(ctx, v.name, out, err) < 0)
		return -1;
	*status = 201;
	return 0;
}

static int h_vm_get(struct api_ctx *ctx, const struct api_request *req,
		    const struct route_match *m, json_t *body, int *status, json_t **out,
		    struct error **err)
{
	(void)req; (void)body;
	if (need_registry(ctx, err) < 0 || vm_view_reply(ctx, m->name, out, err) < 0)
		return -1;
	*status = 200;
	return 0;
}

/* GET /v1/vms/NAME/explain */
static int h_vm_explain(struct api_ctx *ctx, const struct api_request *req,
			const struct route_match *m, json_t *body, int *status, json_t **out,
			struct error **err)
{
	(void)req; (void)body;
	if (need_registry(ctx, err) < 0 || api_explain_vm(ctx, m->name, out, err) < 0)
		return -1;
	*status = 200;
	return 0;
}

/* PATCH /v1/vms/NAME: its own cpu.weight */
static int h_vm_patch(struct api_ctx *ctx, const struct api_request *req,
		      const struct route_match *m, json_t *body, int *status, json_t **out,
		      struct error **err)
{
	uint32_t weight = 0;
	if (need_registry(ctx, err) < 0 || api_vm_patch_from_json(body, &weight, err) < 0)
		return -1;
	int changed = store_vm_set_weight(ctx->store, m->name, weight, req->actor, err);
	if (changed < 0)
		return -1;
	if (changed) {
		if (weight)
			log_info("VM %s: cpu.weight %u, set by %s", m->name, weight, req->actor);
		else
			log_info("VM %s: cpu.weight by vCPUs again, set by %s", m->name, req->actor);
		notify_change(ctx);
	}
	if (vm_view_reply(ctx, m->name, out, err) < 0)
		return -1;
	*status = 200;
	return 0;
}

/* DELETE /v1/vms/NAME[?missing_ok=1]: with missing_ok a VM that is not
 * there (released already: a retry) is not an error. */
static int h_vm_release(struct api_ctx *ctx, const struct api_request *req,
			const struct route_match *m, json_t *body, int *status,
			json_t **out, struct error **err)
{
	(void)body;
	int64_t missing_ok = 0;
	if (need_registry(ctx, err) < 0 ||
	    query_i64(req->query, "missing_ok", 0, 1, &missing_ok, err) < 0)
		return -1;
	*out = NULL;
	*status = 204;
	char tenant[NAME_MAX_LEN + 1] = "";
	bool booked = registry_reservation_of(ctx->reg, m->name, tenant);
	if (registry_release(ctx->reg, m->name, req->actor, ctx->release_process,
			     ctx->after_change_data, err) < 0) {
		if (!missing_ok || !err || !*err || (*err)->code != ENOENT)
			return -1;
		error_free(err);
		return 0;
	}
	notify_change(ctx);
	/* the fleet's booking goes too, before the answer: a client that was
	 * told 204 may admit the VM on another host at once (what fails is
	 * released by the next reconciliation of the bookings) */
	if (booked && ledger_is_fleet(ctx->ledger))
		return api_fleet_release(ctx, req->actor, tenant, m->name, status);
	return 0;
}

static int h_vm_stats(struct api_ctx *ctx, const struct api_request *req,
		      const struct route_match *m, json_t *body, int *status, json_t **out,
		      struct error **err)
{
	(void)body;
	int64_t since = 0, limit = 3600;
	if (query_i64(req->query, "since_ms", 0, INT64_MAX, &since, err) < 0 ||
	    query_i64(req->query, "limit", 1, 100000, &limit, err) < 0)
		return -1;
	struct store_sample *s = NULL;
	size_t n = 0;
	if (store_samples_list(ctx->store, m->name, since, (size_t)limit, &s, &n, err) < 0)
		return -1;
	/* then the rows still on their way to the store (newer), the newest
	 * `limit` of all kept */
	struct store_sample *p = NULL;
	size_t np = 0;
	if (ctx->samples_pending)
		ctx->samples_pending(ctx->samples_pending_data, m->name, since, &p, &np);
	if (np) {
		int64_t last = n ? s[n - 1].ts_ms : INT64_MIN;
		s = xrealloc(s, (n + np) * sizeof(*s));
		for (size_t i = 0; i < np; i++)
			if (p[i].ts_ms > last)
				s[n++] = p[i];
	}
	free(p);
	size_t first = n > (size_t)limit ? n - (size_t)limit : 0;
	json_t *arr = json_array();
	for (size_t i = first; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:f,s:f,s:o}", "ts_ms",
						     (json_int_t)s[i].ts_ms, "usage_pct",
						     s[i].usage_pct, "steal_pct", s[i].steal_pct,
						     "cap_pct", isfinite(s[i].cap_pct)
							     ? json_real(s[i].cap_pct) : json_null()));
	free(s);
	*out = json_pack("{s:s,s:i,s:o}", "vm", m->name, "interval_ms", (int)ctx->interval_ms,
			 "samples", arr);
	*status = 200;
	return 0;
}

static int h_top(struct api_ctx *ctx, const struct api_request *req,
		 const struct route_match *m, json_t *body, int *status, json_t **out,
		 struct error **err)
{
	(void)m; (void)body;
	size_t limit;
	char after[NAME_MAX_LEN + 1];
	if (page_query(req, after, &limit, err) < 0)
		return -1;
	json_t *top = ctx->top ? ctx->top(ctx->top_data) : NULL;
	if (top)
		*out = json_copy(top); /* shallow: "vms" is replaced by its page */
	else
		*out = json_pack("{s:I,s:I,s:i,s:b,s:[]}", "ts_ms",
				 (json_int_t)(now_real_ns() / 1000000), "tick", (json_int_t)ctx->ticks,
				 "interval_ms", (int)ctx->interval_ms, "dry_run", ctx->dry_run, "vms");
	page_set(*out, "vms", NULL, after, limit);
	*status = 200;
	return 0;
}

static int h_events(struct api_ctx *ctx, const struct api_request *req,
		    const struct route_match *m, json_t *body, int *status, json_t **out,
		    struct error **err)
{
	(void)m; (void)body;
	int64_t after = -1, since = 0, limit = 1000; /* after -1: not given */
	if (query_i64(req->query, "after", 0, INT64_MAX, &after, err) < 0 ||
	    query_i64(req->query, "since_ms", 0, INT64_MAX, &since, err) < 0 ||
	    query_i64(req->query, "limit", 1, 10000, &limit, err) < 0)
		return -1;
	struct store_event *ev = NULL;
	size_t n = 0;
	int64_t oldest = 0;
	if (store_event_page(ctx->store, after < 0 ? 0 : after, since, (size_t)limit, &ev, &n,
			     &oldest, err) < 0)
		return -1;
	/* the retention deleted events the client's cursor had not reached:
	 * the log is trimmed from its oldest end and ids have no gaps */
	bool pruned = after >= 0 && oldest > 0 && after < oldest - 1;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *details = json_loads(ev[i].details ? ev[i].details : "{}", 0, NULL);
		json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s,s:o}", "id",
						     (json_int_t)ev[i].id, "ts_ms",
						     (json_int_t)ev[i].ts_ms, "actor", ev[i].actor,
						     "action", ev[i].action, "target", ev[i].target,
						     "details", details ? details : json_object()));
	}
	store_events_free(ev, n);
	*out = json_pack("{s:o,s:o,s:b}", "events", arr, "oldest_id",
			 oldest > 0 ? json_integer(oldest) : json_null(), "pruned", pruned);
	*status = 200;
	return 0;
}

struct route {
	enum route_id id;
	const char *method;
	handler_fn fn;
	bool needs_body;
};

/* GET /v1/fleet/hosts */
static int h_fleet_hosts(struct api_ctx *ctx, const struct api_request *req,
			 const struct route_match *m, json_t *body, int *status, json_t **out,
			 struct error **err)
{
	(void)m; (void)body; (void)out;
	if (!ledger_is_fleet(ctx->ledger))
		return error_set(err, ENOENT, "this vcpud keeps its tenants on this host only (it "
				 "runs without --fleet): there is no fleet of hosts");
	return api_fleet_hosts(ctx, req->actor, status);
}

/* POST /v1/fleet/hosts/{name}/evict */
static int h_fleet_evict(struct api_ctx *ctx, const struct api_request *req,
			 const struct route_match *m, json_t *body, int *status, json_t **out,
			 struct error **err)
{
	(void)body; (void)out;
	if (!ledger_is_fleet(ctx->ledger))
		return error_set(err, ENOENT, "this vcpud keeps its tenants on this host only (it "
				 "runs without --fleet): there is no fleet of hosts");
	return api_fleet_evict(ctx, req->actor, m->name, status);
}

static const struct route routes[] = {
	{ R_HEALTH, "GET", h_health, false },
	{ R_TENANTS, "GET", h_tenant_list, false },
	{ R_TENANTS, "POST", h_tenant_create, true },
	{ R_TENANT, "GET", h_tenant_get, false },
	{ R_TENANT, "PATCH", h_tenant_patch, true },
	{ R_TENANT, "DELETE", h_tenant_delete, false },
	{ R_VMS, "GET", h_vm_list, false },
	{ R_VMS, "POST", h_vm_register, true },
	{ R_VM, "GET", h_vm_get, false },
	{ R_VM, "DELETE", h_vm_release, false },
	{ R_VM, "PATCH", h_vm_patch, true },
	{ R_VM_ADMIT, "POST", h_vm_admit, true },
	{ R_VM_ADMIT, "GET", h_vm_get, false },     /* a VM named "admit" */
	{ R_VM_ADMIT, "DELETE", h_vm_release, false },
	{ R_HOST, "GET", h_host, false },
	{ R_VM_STATS, "GET", h_vm_stats, false },
	{ R_VM_EXPLAIN, "GET", h_vm_explain, false },
	{ R_TOP, "GET", h_top, false },
	{ R_EVENTS, "GET", h_events, false },
	{ R_FLEET_HOSTS, "GET", h_fleet_hosts, false },
	{ R_FLEET_EVICT, "POST", h_fleet_evict, false },
};

/* Each route id's path, as the OpenAPI document writes it. */
static const char *const route_paths[R_LAST] = {
	[R_HEALTH] = "/v1/health",       [R_TENANTS] = "/v1/tenants",
	[R_TENANT] = "/v1/tenants/{name}", [R_VMS] = "/v1/vms",
	[R_VM] = "/v1/vms/{name}",       [R_VM_ADMIT] = "/v1/vms/admit",
	[R_VM_STATS] = "/v1/vms/{name}/stats", [R_HOST] = "/v1/host",
	[R_VM_EXPLAIN] = "/v1/vms/{name}/explain",
	[R_TOP] = "/v1/top",             [R_EVENTS] = "/v1/events",
	[R_FLEET_HOSTS] = "/v1/fleet/hosts", [R_FLEET_EVICT] = "/v1/fleet/hosts/{name}/evict",
};

size_t api_routes(struct api_route_info *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		/* GET and DELETE /v1/vms/admit are /v1/vms/{name} of a VM
		 * named "admit" */
		if (routes[i].id == R_VM_ADMIT && strcmp(routes[i].method, "POST") != 0)
			continue;
		if (n < max)
			out[n] = (struct api_route_info){ routes[i].method, route_paths[routes[i].id] };
		n++;
	}
	if (n < max)
		out[n] = (struct api_route_info){ "GET", "/metrics" };
	return n + 1;
}

/* Match the path to a route id; fills m->name for /v1/tenants/{name}.
 * Returns 0, or -1 with ENOENT (no such path) / EINVAL (bad name). */
static int match_path(const char *path, struct route_match *m, struct error **err)
{
	memset(m, 0, sizeof(*m));
	if (strcmp(path, "/v1/health") == 0) {
		m->id = R_HEALTH;
		return 0;
	}
	if (strcmp(path, "/v1/tenants") == 0 || strcmp(path, "/v1/tenants/") == 0) {
		m->id = R_TENANTS;
		return 0;
	}
	if (strcmp(path, "/v1/events") == 0) {
		m->id = R_EVENTS;
		return 0;
	}
	if (strcmp(path, "/v1/vms") == 0 || strcmp(path, "/v1/vms/") == 0) {
		m->id = R_VMS;
		return 0;
	}
	if (strcmp(path, "/v1/top") == 0) {
		m->id = R_TOP;
		return 0;
	}
	if (strcmp(path, "/v1/host") == 0) {
		m->id = R_HOST;
		return 0;
	}
	if (strcmp(path, "/v1/vms/admit") == 0) {
		m->id = R_VM_ADMIT;
		strcpy(m->name, "admit");
		return 0;
	}
	if (str_has_prefix(path, "/v1/vms/")) {
		const char *name = path + strlen("/v1/vms/");
		size_t len = strlen(name);
		static const struct { const char *sfx; enum route_id id; } sub[] = {
			{ "/stats", R_VM_STATS }, { "/explain", R_VM_EXPLAIN },
		};
		m->id = R_VM;
		for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
			size_t sl = strlen(sub[i].sfx);
			if (len > sl && strcmp(name + len - sl, sub[i].sfx) == 0) {
				len -= sl;
				m->id = sub[i].id;
				break;
			}
		}
		_cleanup_free_ char *n = xstrndup(name, len);
		if (name_check("VM name", n, err) < 0)
			return -1;
		strcpy(m->name, n);
		return 0;
	}
	if (strcmp(path, "/v1/fleet/hosts") == 0) {
		m->id = R_FLEET_HOSTS;
		return 0;
	}
	if (str_has_prefix(path, "/v1/fleet/hosts/")) {
		const char *name = path + strlen("/v1/fleet/hosts/");
		size_t len = strlen(name);
		if (len <= strlen("/evict") || strcmp(name + len - strlen("/evict"), "/evict") != 0)
			return error_set(err, ENOENT, "no such endpoint: %.200s", path);
		_cleanup_free_ char *n = xstrndup(name, len - strlen("/evict"));
		if (name_check("host name", n, err) < 0)
			return -1;
		strcpy(m->name, n);
		m->id = R_FLEET_EVICT;
		return 0;
	}
	if (str_has_prefix(path, "/v1/tenants/")) {
		const char *name = path + strlen("/v1/tenants/");
		if (name_check("tenant name", name, err) < 0)
			return -1;
		strcpy(m->name, name);
		m->id = R_TENANT;
		return 0;
	}
	return error_set(err, ENOENT, "no such endpoint: %.200s", path);
}

static void respond_error(struct api_response *resp, int status, const char *msg)
{
	json_t *j = api_error_json(status, msg);
	resp->status = status;
	resp->body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
}

const double API_TICK_BUCKETS_S[API_TICK_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

void api_tick_observe(struct api_ctx *ctx, double secs)
{
	size_t i = 0;
	while (i < API_TICK_BUCKETS && secs > API_TICK_BUCKETS_S[i])
		i++;
	if (i < API_TICK_BUCKETS)
		ctx->ticks_le[i]++;
	else
		ctx->ticks_over++;
	ctx->ticks_sum_s += secs;
}

/* The tenants' families of GET /metrics, a row per tenant. */
static bool t_vcpus(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = ((const struct tenant *)row)->vcpus;
	return true;
}

static bool t_vcpus_used(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = ((const struct tenant *)row)->vcpus_used;
	return true;
}

static bool t_vms(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = ((const struct tenant *)row)->vm_count;
	return true;
}

static bool t_memory(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	const struct tenant *t = row;
	*v = (double)t->memory_bytes;
	return t->memory_set;
}

static bool t_cpu_max(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	const struct tenant *t = row;
	*v = t->cpu_max_cores;
	return t->cpu_max_set;
}

static bool t_weight(const void *ctx, const void *row, double *v)
{
	(void)ctx;
	*v = ((const struct tenant *)row)->weight;
	return true;
}

static const struct prom_col tenant_cols[] = {
	{ "vcpud_tenant_vcpus_quota", "gauge", "the tenant's vCPU quota", t_vcpus },
	{ "vcpud_tenant_vcpus_admitted", "gauge", "vCPUs of the tenant's admitted VMs",
	  t_vcpus_used },
	{ "vcpud_tenant_vms", "gauge", "the tenant's VMs", t_vms },
	{ "vcpud_tenant_memory_quota_bytes", "gauge", "the tenant's memory quota (none: absent)",
	  t_memory },
	{ "vcpud_tenant_cpu_max_cores", "gauge", "the tenant's CPU cap in cores (none: absent)",
	  t_cpu_max },
	{ "vcpud_tenant_weight", "gauge", "the tenant's cpu.weight", t_weight },
};

static void tenant_labels(const void *ctx, const void *row, char *buf, const char **l)
{
	(void)ctx;
	(void)buf;
	l[0] = "tenant";
	l[1] = ((const struct tenant *)row)->name;
}

/* GET /metrics, the API's families: build, ticks, API requests, tenants'
 * quotas and use, the nodes' shared pool; then the daemon's (ctx->metrics). */
static int metrics_write(struct api_ctx *ctx, FILE *f, struct error **err)
{
	_cleanup_free_ struct tenant *ts = NULL;
	size_t n = 0;
	if (store_tenant_list(ctx->store, &ts, &n, err) < 0)
		return -1;
	prom_family(f, "vcpud_build_info", "gauge", "vcpud's version (the value is 1)");
	prom_sample(f, "vcpud_build_info", (const char *[]){ "version", VCPUD_VERSION, NULL }, 1);
	prom_family(f, "vcpud_ticks_total", "counter", "control loop ticks since vcpud started");
	prom_sample(f, "vcpud_ticks_total", NULL, (double)ctx->ticks);
	prom_family(f, "vcpud_tick_duration_seconds", "histogram",
		    "wall time of a control loop tick");
	prom_histogram(f, "vcpud_tick_duration_seconds", API_TICK_BUCKETS_S, ctx->ticks_le,
		       API_TICK_BUCKETS, ctx->ticks_over, ctx->ticks_sum_s);
	prom_family(f, "vcpud_api_requests_total", "counter",
		    "API requests answered, by HTTP status code");
	for (int c = 0; c < 500; c++) {
		if (!ctx->requests[c])
			continue;
		char code[8];
		snprintf(code, sizeof(code), "%d", c + 100);
		prom_sample(f, "vcpud_api_requests_total", (const char *[]){ "code", code, NULL },
			    (double)ctx->requests[c]);
	}
	prom_family(f, "vcpud_api_connections_dropped_total", "counter",
		    "API connections vcpud closed before a whole request: slow while the "
		    "listener was nearly full, or over the per-peer limit");
	prom_sample(f, "vcpud_api_connections_dropped_total",
		    (const char *[]){ "reason", "slow", NULL }, (double)ctx->conns_dropped_slow);
	prom_sample(f, "vcpud_api_connections_dropped_total",
		    (const char *[]){ "reason", "peer_limit", NULL },
		    (double)ctx->conns_dropped_peer);
	prom_rows(f, tenant_cols, ARRAY_SIZE(tenant_cols), ts, n, sizeof(*ts), tenant_labels, NULL);
	if (ctx->reg && admission_node_metrics(ctx->reg, f, err) < 0)
		return -1;
	if (ctx->metrics)
		ctx->metrics(ctx->metrics_data, f);
	return 0;
}

static void api_handle_(struct api_ctx *ctx, const struct api_request *req,
			struct api_response *resp);

void api_handle(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp)
{
	resp->content_type = NULL;
	if (strcmp(req->path, "/metrics") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			respond_error(resp, 405, "method not allowed on /metrics (GET only)");
		} else {
			_cleanup_error_ struct error *err = NULL;
			char *buf = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&buf, &len);
			if (!f)
				abort();
			int rc = metrics_write(ctx, f, &err);
			fclose(f);
			if (rc < 0) {
				free(buf);
				respond_error(resp, api_status_for_errno(err->code), err->msg);
			} else {
				resp->status = 200;
				resp->body = buf;
				resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
			}
		}
	} else {
		api_handle_(ctx, req, resp);
	}
	if (resp->status >= 100 && resp->status < 600)
		ctx->requests[resp->status - 100]++;
}

static void api_handle_(struct api_ctx *ctx, const struct api_request *req,
			struct api_response *resp)
{
	_cleanup_error_ struct error *err = NULL;
	struct route_match m;
	resp->status = 500;
	resp->body = NULL;

	if (match_path(req->path, &m, &err) < 0) {
		respond_error(resp, api_status_for_errno(err->code), err->msg);
		return;
	}
	const struct route *r = NULL;
	bool path_known = false;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (routes[i].id != m.id)
			continue;
		path_known = true;
		if (strcmp(routes[i].method, req->method) == 0) {
			r = &routes[i];
			break;
		}
	}
	if (!r) {
		_cleanup_free_ char *msg = xasprintf("method %.16s is not allowed on %.200s",
						     req->method, req->path);
		respond_error(resp, path_known ? 405 : 404, msg);
		return;
	}
	if (req->body_len > API_MAX_BODY_BYTES) {
		_cleanup_free_ char *msg = xasprintf("request body is larger than %d bytes",
						     API_MAX_BODY_BYTES);
		respond_error(resp, 413, msg);
		return;
	}
	json_t *body = NULL;
	if (r->needs_body && body_json(req, &body, &err) < 0) {
		respond_error(resp, 400, err->msg);
		return;
	}
	json_t *out = NULL;
	int status = 200;
	int rc = r->fn(ctx, req, &m, body, &status, &out, &err);
	json_decref(body);
	if (rc < 0) {
		int st = api_status_for_errno(err ? err->code : EIO);
		if (st >= 500)
			log_error("%s %s: %s", req->method, req->path, err ? err->msg : "failed");
		respond_error(resp, st, err ? err->msg : "internal error");
		return;
	}
	resp->status = status;
	if (status == API_STATUS_PENDING)
		resp->ticket = ctx->pending_ticket;
	resp->body = out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(out);
}
