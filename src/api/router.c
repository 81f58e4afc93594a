/* router.c - maps (method, path) to handlers and turns their results into
 * HTTP status codes and JSON. No HTTP library here: the daemon's server
 * (server.c) hands in a complete request and sends back what this returns,
 * so the handlers are unit-tested without sockets.
 *
 * Every handler either succeeds or returns an error carrying an errno, which
 * api_status_for_errno() maps to the status; a refused request changes
 * nothing because the store runs each mutation in one transaction. */
#include <errno.h>
#include <string.h>

#include "vcpud/admission.h"
#include "vcpud/api.h"
#include "vcpud/cgroup.h"
#include "vcpud/discover.h"
#include "vcpud/log.h"
#include "vcpud/policy.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

#ifndef VCPUD_VERSION
#define VCPUD_VERSION "0.1.0"
#endif

enum route_id { R_HEALTH, R_TENANTS, R_TENANT, R_VMS, R_VM, R_VM_ADMIT, R_VM_STATS, R_HOST, R_TOP,
		R_EVENTS, R_LAST };

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
	*out = json_pack("{s:s,s:s,s:i,s:I,s:s?,s:s?,s:b,s:I,s:i,s:i}", "status", "ok",
			 "version", VCPUD_VERSION, "schema_version",
			 store_schema_version(ctx->store), "uptime_s", (json_int_t)up, "policy",
			 ctx->policy_path, "cgroup_root", ctx->cgroup_root, "dry_run",
			 ctx->dry_run, "ticks", (json_int_t)ctx->ticks, "last_tick_writes",
			 (int)ctx->last_writes, "last_tick_errors", (int)ctx->last_errors);
	*status = 200;
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
		json_array_append_new(arr, api_tenant_to_json(&ts[i]));
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
	*out = api_tenant_to_json(&t);
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
	if (store_tenant_delete(ctx->store, m->name, req->actor, err) < 0)
		return -1;
	log_info("tenant %s deleted by %s", m->name, req->actor);
	notify_change(ctx);
	*out = NULL;
	*status = 204;
	return 0;
}

static struct admission_env admission_env(struct api_ctx *ctx)
{
	return (struct admission_env){ ctx->store, ctx->topo, ctx->pools,
				       ctx->policy ? ctx->policy->cpu_ratio : 0 };
}

/* POST /v1/vms/admit */
static int h_vm_admit(struct api_ctx *ctx, const struct api_request *req,
		      const struct route_match *m, json_t *body, int *status, json_t **out,
		      struct error **err)
{
	(void)m;
	struct admit_request ar;
	bool dry_run = false;
	if (api_admit_from_json(body, &ar, &dry_run, err) < 0)
		return -1;
	struct admission_env env = admission_env(ctx);
	struct admit_placement pl;
	if (admission_admit(&env, &ar, dry_run, req->actor, &pl, err) < 0) {
		if (err && *err && (*err)->code == EAGAIN)
			(*err)->code = EIO;
		return -1;
	}
	struct vm v;
	bool registered = store_vm_get(ctx->store, ar.vm, &v, NULL) == 0;
	if (registered)
		vm_clear(&v);
	_cleanup_free_ char *where = admit_placement_describe(
		&(struct admit_host){ ctx->topo, ctx->pools, env.cpu_ratio, NULL, 0 }, &pl.res);
	log_info("VM %s %s for tenant %s by %s: %u vCPUs, %s", ar.vm,
		 dry_run ? "would be admitted" : "admitted", ar.tenant, req->actor, ar.vcpus, where);
	if (!dry_run)
		notify_change(ctx);
	*out = admission_reservation_json(&env, &pl.res, dry_run, registered);
	*status = dry_run ? 200 : 201;
	return 0;
}

/* GET /v1/host */
static int h_host(struct api_ctx *ctx, const struct api_request *req,
		  const struct route_match *m, json_t *body, int *status, json_t **out,
		  struct error **err)
{
	(void)req; (void)m; (void)body;
	struct admission_env env = admission_env(ctx);
	if (admission_host_json(&env, out, err) < 0) {
		if (err && *err && (*err)->code == EAGAIN)
			(*err)->code = EIO;
		return -1;
	}
	*status = 200;
	return 0;
}

/* Bind a VM being registered to its reservation, or admit it now (shared,
 * prefer). Sets *admitted when a reservation was made here (the caller
 * undoes it if the registration then fails). */
static int vm_bind(struct api_ctx *ctx, const struct vm *v, const char *actor, bool *admitted,
		   struct error **err)
{
	*admitted = false;
	if (!ctx->topo)
		return 0; /* no admission on this daemon (tests) */
	struct store_reservation r;
	_cleanup_error_ struct error *e = NULL;
	if (store_reservation_get(ctx->store, v->name, &r, &e) == 0) {
		if (strcmp(r.tenant, v->tenant) != 0)
			return error_set(err, EBUSY, "VM '%s' is admitted for tenant '%s', not '%s'",
					 v->name, r.tenant, v->tenant);
		return 0;
	}
	if (e->code != ENOENT)
		return error_set(err, e->code, "%s", e->msg);
	struct admit_request ar = {
		.vm = v->name, .tenant = v->tenant, .vcpus = v->vcpus,
		.memory_set = v->memory_set, .memory_bytes = v->memory_bytes,
		.cpu_policy = ADMIT_CPU_SHARED, .thread_policy = ADMIT_THREAD_PREFER,
	};
	struct admission_env env = admission_env(ctx);
	struct admit_placement pl;
	if (admission_admit(&env, &ar, false, actor, &pl, err) < 0)
		return -1;
	*admitted = true;
	return 0;
}

static int h_vm_list(struct api_ctx *ctx, const struct api_request *req,
		     const struct route_match *m, json_t *body, int *status, json_t **out,
		     struct error **err)
{
	(void)req; (void)m; (void)body;
	struct vm *vms = NULL;
	size_t n = 0;
	if (store_vm_list(ctx->store, &vms, &n, err) < 0)
		return -1;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, api_vm_to_json(&vms[i]));
	vm_list_free(vms, n);
	/* VMs discovery found without a tenant: listed, left alone */
	size_t k;
	json_t *u;
	json_array_foreach(ctx->unmanaged, k, u)
		json_array_append(arr, u);
	*out = json_pack("{s:o}", "vms", arr);
	*status = 200;
	return 0;
}

/* Remember which cgroup the process is in now, so a release can put it
 * back. Best effort: unknown ("") when /proc does not say or the path is
 * too long to keep. */
static void vm_origin_read(struct api_ctx *ctx, struct vm *v)
{
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)v->pid);
	_cleanup_free_ char *p = path_join(ctx->host_root ? ctx->host_root : "/", "proc",
					   pidbuf, "cgroup", NULL);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	char buf[4096];
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = '\0';
	_cleanup_free_ char *cg = NULL;
	if (n > 0 && cgroup_proc_cgroup_parse(buf, &cg, NULL) == 0 && cg[0] == '/' &&
	    strlen(cg) <= VM_ORIGIN_MAX)
		strcpy(v->origin_cgroup, cg);
}

/* Register a running VM by PID: find its vCPU threads by name, then store
 * it (the store checks the tenant's quota in the same transaction). */
int api_vm_admit_and_store(struct api_ctx *ctx, struct vm *v, const char *actor,
			   struct error **err)
{
	vm_origin_read(ctx, v);
	bool admitted = false;
	if (vm_bind(ctx, v, actor, &admitted, err) < 0)
		return error_wrap(err, "cannot register VM '%s'", v->name);
	if (store_vm_create(ctx->store, v, actor, err) < 0) {
		/* undo the admission made for it: a refused request changes nothing */
		if (admitted)
			store_reservation_delete(ctx->store, v->name, actor, NULL);
		return -1;
	}
	log_info("VM %s (pid %d, %u vCPUs, %s) registered to tenant %s by %s", v->name,
		 (int)v->pid, v->vcpus, vm_source_to_string(v->source), v->tenant, actor);
	notify_change(ctx);
	return 0;
}

static int h_vm_register(struct api_ctx *ctx, const struct api_request *req,
			 const struct route_match *m, json_t *body, int *status,
			 json_t **out, struct error **err)
{
	(void)m;
	struct vm v;
	if (api_vm_register_from_json(body, &v, err) < 0)
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
	int rc = api_vm_admit_and_store(ctx, &v, req->actor, err);
	vm_clear(&v);
	if (rc < 0)
		return -1;
	struct vm got;
	if (store_vm_get(ctx->store, v.name, &got, err) < 0)
		return -1;
	*out = api_vm_to_json(&got);
	vm_clear(&got);
	*status = 201;
	return 0;
}

static int h_vm_get(struct api_ctx *ctx, const struct api_request *req,
		    const struct route_match *m, json_t *body, int *status, json_t **out,
		    struct error **err)
{
	(void)req; (void)body;
	struct vm v;
	if (store_vm_get(ctx->store, m->name, &v, err) < 0)
		return -1;
	*out = api_vm_to_json(&v);
	vm_clear(&v);
	*status = 200;
	return 0;
}

static int h_vm_release(struct api_ctx *ctx, const struct api_request *req,
			const struct route_match *m, json_t *body, int *status,
			json_t **out, struct error **err)
{
	(void)body;
	struct vm v;
	struct store_reservation r;
	_cleanup_error_ struct error *e1 = NULL, *e2 = NULL;
	bool have_vm = store_vm_get(ctx->store, m->name, &v, &e1) == 0;
	bool have_res = store_reservation_get(ctx->store, m->name, &r, &e2) == 0;
	if (!have_vm && e1->code != ENOENT)
		return error_set(err, e1->code, "%s", e1->msg);
	if (!have_res && e2->code != ENOENT)
		return error_set(err, e2->code, "%s", e2->msg);
	if (!have_vm && !have_res)
		return error_set(err, ENOENT, "no VM or reservation '%s'", m->name);
	if (have_vm) {
		int rc = 0;
		if (v.state != VM_STATE_GONE && v.pid > 0 && ctx->release_process)
			rc = ctx->release_process(ctx->after_change_data, &v, err);
		vm_clear(&v);
		if (rc < 0)
			return error_wrap(err, "cannot release VM '%s'", m->name);
		if (store_vm_delete(ctx->store, m->name, req->actor, err) < 0)
			return -1;
	}
	if (have_res && store_reservation_delete(ctx->store, m->name, req->actor, err) < 0)
		return -1;
	log_info("VM %s released by %s", m->name, req->actor);
	notify_change(ctx);
	*out = NULL;
	*status = 204;
	return 0;
}

/* query "after=12&since_ms=...&limit=100" */
static int query_i64(const char *query, const char *key, int64_t min, int64_t max,
		     int64_t *out, struct error **err)
{
	if (!query)
		return 0;
	size_t kl = strlen(key);
	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t n = strcspn(v, "&");
			_cleanup_free_ char *s = xstrndup(v, n);
			if (parse_i64(s, min, max, out, err) < 0)
				return error_wrap(err, "query parameter %s", key);
			return 0;
		}
	}
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
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:f,s:f}", "ts_ms",
						     (json_int_t)s[i].ts_ms, "usage_pct",
						     s[i].usage_pct, "steal_pct", s[i].steal_pct));
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
	(void)req; (void)m; (void)body; (void)err;
	if (ctx->top)
		*out = json_deep_copy(ctx->top);
	else
		*out = json_pack("{s:I,s:I,s:i,s:b,s:[]}", "ts_ms",
				 (json_int_t)(now_real_ns() / 1000000), "tick", (json_int_t)ctx->ticks,
				 "interval_ms", (int)ctx->interval_ms, "dry_run", ctx->dry_run, "vms");
	*status = 200;
	return 0;
}

static int h_events(struct api_ctx *ctx, const struct api_request *req,
		    const struct route_match *m, json_t *body, int *status, json_t **out,
		    struct error **err)
{
	(void)m; (void)body;
	int64_t after = 0, since = 0, limit = 1000;
	if (query_i64(req->query, "after", 0, INT64_MAX, &after, err) < 0 ||
	    query_i64(req->query, "since_ms", 0, INT64_MAX, &since, err) < 0 ||
	    query_i64(req->query, "limit", 1, 10000, &limit, err) < 0)
		return -1;
	struct store_event *ev = NULL;
	size_t n = 0;
	if (store_event_list(ctx->store, after, since, (size_t)limit, &ev, &n, err) < 0)
		return -1;
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
	*out = json_pack("{s:o}", "events", arr);
	*status = 200;
	return 0;
}

struct route {
	enum route_id id;
	const char *method;
	handler_fn fn;
	bool needs_body;
};

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
	{ R_VM_ADMIT, "POST", h_vm_admit, true },
	{ R_VM_ADMIT, "GET", h_vm_get, false },     /* a VM named "admit" */
	{ R_VM_ADMIT, "DELETE", h_vm_release, false },
	{ R_HOST, "GET", h_host, false },
	{ R_VM_STATS, "GET", h_vm_stats, false },
	{ R_TOP, "GET", h_top, false },
	{ R_EVENTS, "GET", h_events, false },
};

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
		const char *sfx = "/stats";
		m->id = R_VM;
		if (len > strlen(sfx) && strcmp(name + len - strlen(sfx), sfx) == 0) {
			len -= strlen(sfx);
			m->id = R_VM_STATS;
		}
		_cleanup_free_ char *n = xstrndup(name, len);
		if (name_check("VM name", n, err) < 0)
			return -1;
		strcpy(m->name, n);
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

void api_handle(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp)
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
	resp->body = out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(out);
}
