/* api.h - vcpud's HTTP/JSON API: the wire format shared by the daemon and
 * vcpuctl, and the request router the daemon's HTTP server calls.
 *
 * Endpoints (all JSON, HTTP/1.1, on the UNIX socket and on --listen's TCP
 * address, where every request needs a bearer token: server.c, auth.h):
 *   GET    /v1/health                 {"status":"ok","version":..,"schema_version":..}
 *   GET    /v1/tenants                {"tenants":[TENANT...]}
 *   POST   /v1/tenants                body TENANT (name, vcpus required) -> 201 TENANT
 *   GET    /v1/tenants/{name}         TENANT
 *   PATCH  /v1/tenants/{name}         any of vcpus, weight, cpu_max_cores, memory_bytes,
 *                                     class (null clears cpu_max_cores/memory_bytes) -> 200 TENANT
 *   DELETE /v1/tenants/{name}         204, no body
 * TENANT = {"name":"acme","vcpus":8,"weight":100,"cpu_max_cores":2.5|null,
 *           "memory_bytes":1073741824|null,"class":"burstable",
 *           "vcpus_used":0,"vm_count":0,"created_at":UNIX_S,"updated_at":UNIX_S}
 *   GET    /v1/vms                    {"vms":[VM...]}
 *   POST   /v1/vms                    {"name","tenant","pid"[,"memory_bytes"]}: register a
 *                                     running VM; its vCPU threads are found by name -> 201 VM
 *   POST   /v1/vms/admit              {"name","tenant","vcpus"[,"memory_bytes","cpu_policy":
 *                                     "shared"|"dedicated","thread_policy":"prefer"|
 *                                     "isolate"|"require","dry_run":false]} -> 201 RES
 *                                     (200 with dry_run: decided, nothing reserved;
 *                                     200 for a retry: the name admitted with the same
 *                                     request, its RES, nothing booked again);
 *                                     409 with the limit and figures when refused,
 *                                     or naming what differs from the name's admission
 *   GET    /v1/host                   {"topology":{...},"pools":{...},"overcommit_ratio",
 *                                     "usage":[per node],"totals":{...},"reservations":[RES]}
 *   GET    /v1/vms/{name}             VM
 *   PATCH  /v1/vms/{name}             {"weight": 1..10000 | null}: the VM's own
 *                                     cpu.weight (null: 100 per vCPU); VM
 *   DELETE /v1/vms/{name}[?missing_ok=1]
 *                                     release: the VM and/or its reservation; 204; its
 *                                     cgroups go at the next tick (404 when there is
 *                                     none, 204 with missing_ok=1)
 *   GET    /v1/vms/{name}/explain     why it is placed where it is and capped
 *                                     or not: {"vm","tenant","class","state",
 *                                     "placement","throttle","event",
 *                                     "victim_event","explanation":[TEXT...]}
 *   GET    /v1/vms/{name}/stats?since_ms=T&limit=N
 *                                     {"vm":NAME,"interval_ms":N,"samples":[{"ts_ms",
 *                                      "usage_pct","steal_pct"}...]} oldest first: the
 *                                     bounded per-VM history the policy retains
 *   GET    /v1/top                    {"ts_ms","tick","interval_ms","dry_run","vms":[TOP...]}
 *   GET    /metrics                   Prometheus text format (version 0.0.4; README lists
 *                                     the families): the API's, then ctx->metrics
 *   GET    /v1/events?after=ID&since_ms=T&limit=N
 *                                     {"events":[{"id","ts_ms","actor","action","target",
 *                                      "details":{...}}],"oldest_id":ID|null,"pruned":B}
 *                                     oldest first; oldest_id: the oldest event kept
 *                                     (null: none), pruned: true when after was given
 *                                     and the retention (policy events.*) deleted events
 *                                     after it (after < oldest_id - 1): the client
 *                                     missed them
 * RES = {"name","tenant","vcpus","memory_bytes"|null,"cpu_policy","thread_policy","pool",
 *        "shares":[{"node","vcpus"}],"nodes":[..],"spans_nodes","pcpus","cpus","mems",
 *        "dry_run","registered"}. Registering a VM binds it to the reservation of the
 *        same name, or admits it then (shared, prefer) by the same rules.
 * TOP = {"name","tenant","class","state","vcpus","usage_pct"|null,"steal_pct"|null,
 *        "steal_max_pct"|null,"throttled_pct"|null,"cap_pct"|null,"throttle"}:
 *   usage_pct: CPU used over the last tick, % of one pCPU summed over vCPUs
 *   (a 2-vCPU VM flat out is 200); steal_pct: mean over its vCPUs of the time
 *   runnable but waiting; throttled_pct: share of the tick held back by its own
 *   or its tenant's cap; cap_pct: the throttler's cap on the VM in % of one
 *   pCPU, null when uncapped; throttle: "none", "victim", "capped", "hold",
 *   "would-cap" (dry-run); null figures: no valid sample yet. 
 * VM = {"name","tenant"|null,"managed","pid","start_time"|null,"state","source",
 *       "uuid"|null,"vcpus","memory_bytes"|null,
 *       "origin_cgroup"|null (where a release returns the process),
 *       "vcpu_threads":[{"index":0,"tid":1234,"cgroup":"tenant-acme/vm-web/vcpu0"}],
 *       "created_at","updated_at","state_since_ms"|null,
 *       "placement":{"pool","cpu_policy","thread_policy","nodes":[..],"pcpus","cpus",
 *                    "mems"}|null (its admission; null: not admitted),
 *       "fault":{"kind","reason","since_ms"}|null (quarantined: why)}
 *   state: "admitted" (reserved, not started: no process yet), "running",
 *   "paused", "stopped" (a libvirt domain shut off, still defined: keeps its
 *   admission), "gone" (its process exited: the admission is freed after
 *   admission.gone_grace_s), "crashed", "unknown".
 * GET /v1/health: {"status":"ok"|"degraded","version","schema_version","uptime_s",
 *   "policy","policy_builtin","cgroup_root","dry_run","ticks","last_tick_ms",
 *   "last_tick_us","last_tick_sql","last_tick_writes","last_tick_errors","last_error"|null,
 *   "quarantined":N,"quarantined_vms":[{"name","kind","reason","since_ms"}],
 *   "libvirt":{"state","since_ms"|null,"error"|null}}: "degraded" whenever
 *   the last tick had errors or a VM is quarantined.
 * Errors: {"error":{"code":C,"message":M}} with status 400 "invalid",
 * 401 "unauthorized" (TCP: no valid bearer token), 403 "forbidden", 404 "not_found", 405 "method_not_allowed", 409 "conflict",
 * 413 "too_large", 415 "unsupported_media_type", 500 "internal". */
#ifndef VCPUD_API_H
#define VCPUD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/tenant.h"
#include "vcpud/vm.h"

#define API_MAX_BODY_BYTES (64 * 1024)
/* Listings (GET /v1/vms, /v1/top) come in pages by name: ?limit=N (1..
 * API_PAGE_MAX, default API_PAGE_DEFAULT) and ?after=NAME; a reply has
 * "next" (the name to ask after) while more follow, else null. */
#define API_PAGE_DEFAULT 500
#define API_PAGE_MAX 5000

/* --- wire format ------------------------------------------------------ */

/* New JSON object for a tenant (the caller owns the reference). */
json_t *api_tenant_to_json(const struct tenant *t);

/* A create request: name and vcpus required; weight, cpu_max_cores,
 * memory_bytes, class optional; unknown keys and wrong types are EINVAL.
 * The result is validated with tenant_validate(). */
int api_tenant_create_from_json(const json_t *obj, struct tenant *out, struct error **err);

/* A PATCH body: at least one known key; "name" or unknown keys are EINVAL.
 * Values are range-checked. */
int api_tenant_patch_from_json(const json_t *obj, struct tenant_patch *out, struct error **err);

/* A tenant as the server sent it (client side; extra keys are ignored). */
int api_tenant_from_reply(const json_t *obj, struct tenant *out, struct error **err);

/* Patch -> JSON body (client side). */
json_t *api_tenant_patch_to_json(const struct tenant_patch *p);

/* errno -> HTTP status and error code string (EINVAL/ERANGE 400 "invalid",
 * ENOENT 404 "not_found", EEXIST/EBUSY 409 "conflict", EFBIG 413 "too_large",
 * EACCES/EPERM 403 "forbidden", others 500 "internal"). */
int api_status_for_errno(int e);
const char *api_code_for_status(int status);

/* {"error":{"code":..,"message":..}} as a new JSON object. */
json_t *api_error_json(int status, const char *message);

/* A VM; `cgroup` paths of its threads are relative to the tree root. */
json_t *api_vm_to_json(const struct vm *v);

/* A VM of the lifecycle (its row or its reservation alone, state
 * "admitted"): api_vm_to_json() plus "placement" (null when not admitted:
 * {"pool","cpu_policy","thread_policy","nodes","pcpus","cpus","mems"}) and
 * "fault" (null, or {"reason","since_ms"}). `host` gives the cpus/mems of
 * a placement (may be NULL: then "" for both). */
struct registry_vm_view;
struct admit_host;
struct store_sample;
json_t *api_vm_view_to_json(const struct registry_vm_view *v, const struct admit_host *host);

/* A register request: name, tenant, pid required; memory_bytes optional. */
int api_vm_register_from_json(const json_t *obj, struct vm *out, struct error **err);

/* GET /v1/vms/NAME/explain (src/api/explain.c): ENOENT for a VM the
 * registry does not know. */
struct api_ctx;
int api_explain_vm(struct api_ctx *ctx, const char *name, json_t **out, struct error **err);

/* PATCH /v1/vms/NAME: {"weight": 1..10000 | null}; *weight 0 for null
 * (back to the default: the tenant's weight by vCPUs). */
int api_vm_patch_from_json(const json_t *obj, uint32_t *weight, struct error **err);

/* A VM as the server sent it (client side). vm_clear() it. */
int api_vm_from_reply(const json_t *obj, struct vm *out, struct error **err);

/* An admission request (POST /v1/vms/admit): name, tenant, vcpus required;
 * memory_bytes, cpu_policy (default shared), thread_policy (default prefer),
 * dry_run (default false) optional; unknown keys are EINVAL. The request
 * borrows the name strings from obj. */
struct admit_request;
int api_admit_from_json(const json_t *obj, struct admit_request *out, bool *dry_run,
			struct error **err);

/* --- router (server side, no HTTP library here) ----------------------- */

struct store;
struct policy;
struct topology;
struct pools;
struct registry;

/* The tick duration histogram's upper bounds (seconds) of GET /metrics. */
#define API_TICK_BUCKETS 12
extern const double API_TICK_BUCKETS_S[API_TICK_BUCKETS];
/* Count a tick of `secs` in ctx's histogram. */
struct api_ctx;
void api_tick_observe(struct api_ctx *ctx, double secs);

struct api_ctx {
	struct store *store;
	struct registry *reg;          /* the VM lifecycle (NULL: VM endpoints 500) */
	const struct policy *policy;   /* current policy (reloaded on SIGHUP) */
	const char *policy_path;       /* or "built-in defaults" */
	bool policy_builtin;           /* no policy file: the built-in defaults */
	int64_t started_mono_ns;
	const char *host_root;         /* prefix for /proc ("/" on a host) */
	const struct topology *topo;   /* the host, for admission (NULL: none) */
	const struct pools *pools;     /* from the policy; replaced on reload */
	/* called after a change that the cgroup tree should reflect now
	 * (tenant or VM mutations), so the daemon can run a tick at once */
	void (*after_change)(void *data);
	void *after_change_data;
	/* called before a VM that still runs is released: move its process out
	 * of vcpud's tree (back to v->origin_cgroup); a failure refuses the
	 * release. NULL: nothing to do (tests). */
	int (*release_process)(void *data, const struct vm *v, struct error **err);
	/* the latest /v1/top object ({"ts_ms",...,"vms":[...]}), borrowed from
	 * top(top_data) when a request asks (made then, once a tick); NULL
	 * before the first tick. top NULL: none. */
	json_t *(*top)(void *data);
	void *top_data;
	/* the throttler's view of one VM for GET /v1/vms/NAME/explain (a new
	 * reference; NULL: the last tick did not see it). explain NULL: none */
	json_t *(*explain)(void *data, const char *vm);
	void *explain_data;
	/* the rows of a VM's history not written to the store yet (the
	 * daemon writes a VM's rows together, src/daemon/history.h), merged
	 * into GET /v1/vms/NAME/stats: ts_ms >= since_ms, oldest first, *out
	 * freed by the caller. NULL: every row is in the store. */
	void (*samples_pending)(void *data, const char *vm, int64_t since_ms,
				struct store_sample **out, size_t *n);
	void *samples_pending_data;
	/* VMs discovery found with no tenant (libvirt without metadata, /proc
	 * without a mapping): a JSON array of VM objects with "tenant": null
	 * and "managed": false, appended to GET /v1/vms; owned by the daemon */
	json_t *unmanaged;
	uint32_t interval_ms;          /* sampling interval, for /stats */
	/* GET /metrics: the daemon's own families (per vCPU and per VM, from
	 * the last tick), written after the API's; NULL: none */
	void (*metrics)(void *data, FILE *f);
	void *metrics_data;
	/* requests answered, by status (100..599), since start */
	uint64_t requests[500];
	/* connections the server dropped: slow while the listener was full,
	 * or over the per-peer limit */
	uint64_t conns_dropped_slow, conns_dropped_peer;
	/* tick durations, kept by the daemon: ticks_le[i] ticks of at most
	 * API_TICK_BUCKETS_S[i] seconds (not cumulative), the rest over */
	uint64_t ticks_le[API_TICK_BUCKETS];
	uint64_t ticks_over;
	double ticks_sum_s;
	/* control-loop figures for /v1/health, kept up to date by the daemon */
	const char *cgroup_root;
	bool dry_run;
	uint64_t ticks;
	unsigned last_writes, last_errors;
	char *last_error;              /* the last tick's first failure (owned by the
					* daemon), NULL when it had none */
	int64_t last_tick_ms;          /* unix ms the last tick ended, 0 before */
	uint32_t last_tick_us;         /* how long it took */
	uint32_t last_tick_stage_max_us; /* its longest stage: how long a read
					  * waited at most */
	uint64_t last_tick_sql;        /* SQL statements it ran */
	const char *libvirt_state;     /* "disabled", "connecting", "connected",
					* "unreachable"; NULL: not known */
	int64_t libvirt_since_ms;
	const char *libvirt_error;
	const char *sampler;           /* "bpf" or "pread"; NULL: not known */
	/* where tenants and quotas are decided (vcpud/ledger.h); NULL: the
	 * local ledger */
	struct ledger *ledger;
	bool ledger_busy;              /* an admission waits for the ledger */
	uint64_t next_ticket;
	uint64_t pending_ticket;       /* a handler's API_STATUS_PENDING ticket */
	/* set by the server: the answer to the request that got `ticket`
	 * (body JSON text, owned by the callee), and a call that runs held
	 * requests again */
	void (*deliver)(void *data, uint64_t ticket, int status, char *body);
	void *deliver_data;
	void (*wake_held)(void *data);
	void *wake_held_data;
};

struct api_request {
	const char *method;            /* "GET", "POST", ... */
	const char *path;              /* "/v1/tenants/acme" (no query string) */
	const char *query;             /* raw query string or NULL */
	const char *body;              /* may be NULL */
	size_t body_len;
	const char *actor;             /* "uid:1000" from SO_PEERCRED */
};

/* A handler's answer that is not one yet: API_STATUS_PENDING, the answer
 * comes later through ctx->deliver with resp->ticket (the fleet ledger
 * answers on its own time); API_STATUS_HOLD, run the request again when
 * the server's held requests are resumed (the ledger is busy with one
 * admission: the next waits for it, so that both are decided on what the
 * first one booked). The server keeps the connection suspended meanwhile. */
#define API_STATUS_PENDING 1
#define API_STATUS_HOLD 2

struct api_response {
	int status;
	uint64_t ticket;               /* with API_STATUS_PENDING */
	char *body;                    /* JSON text or NULL (204); owned */
	const char *content_type;      /* NULL: application/json */
};

/* The routes the router serves: METHOD and path, {name} for a name
 * segment ("/v1/tenants/{name}"), as deploy/openapi.yaml must list them
 * (tests/unit/test_openapi.c). Fills at most max, returns how many. */
struct api_route_info {
	const char *method, *path;
};
size_t api_routes(struct api_route_info *out, size_t max);

/* Route and handle one request. Never fails: errors become an error body.
 * The caller frees resp->body. */
void api_handle(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp);


/* --- server (libmicrohttpd on a UNIX socket, driven by the daemon loop) -- */

struct api_server;

struct api_server_config {
	const char *socket_path;
	/* peers allowed besides root and the daemon's own uid: members of this
	 * group (primary or supplementary); (gid_t)-1 for none. The socket file
	 * is created 0660 and owned by this group. */
	gid_t group;
	bool group_set;
	/* --listen ADDR:PORT (NULL: the socket only): the same API over HTTPS
	 * with the PEM files tls_cert (the chain) and tls_key (not readable by
	 * others), or plain HTTP with insecure_http on a loopback address;
	 * every request needs a bearer token of token_file (auth.h) */
	const char *listen;
	const char *tls_cert, *tls_key;
	bool insecure_http;
	const char *token_file;
};

/* --listen's address: "A.B.C.D:PORT" or "[IPV6]:PORT" (numeric, no name
 * lookup), port 1..65535. 0, or -1 with EINVAL saying what is wrong. */
struct sockaddr_storage;
int api_listen_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
		     struct error **err);
/* 127.0.0.0/8 or ::1 */
bool api_addr_loopback(const struct sockaddr_storage *ss);

/* Create the socket (refusing to replace a live one or a non-socket file;
 * a stale socket left by a crash is replaced) and start serving in external
 * select mode: the caller polls api_server_fd() and calls api_server_run().
 * *out is freed with api_server_stop(), which also removes the socket. */
int api_server_start(struct api_ctx *ctx, const struct api_server_config *cfg,
		     struct api_server **out, struct error **err);
/* An fd that becomes readable when the server has work (MHD's epoll fd). */
int api_server_fd(const struct api_server *s);
/* Milliseconds until the server needs api_server_run() anyway, or -1. */
int api_server_timeout_ms(const struct api_server *s);
/* Accept, read, handle and answer whatever is ready. Never blocks. */
void api_server_run(struct api_server *s);
/* Serve what is waiting, in the middle of a tick: reads (GET) are answered
 * at once from what the daemon holds (the last tick's health and top, the
 * store), while a request that changes something is held (suspended) until
 * api_server_resume() after the tick, so that it never lands between two
 * stages of a tick that read the inventory before it. The API thus keeps
 * answering reads within one stage of a tick, however long the tick. */
void api_server_serve_reads(struct api_server *s);
/* Read the token file again (SIGHUP): the number of tokens, or -1 and
 * *err with the old tokens kept. 0 without --listen. */
int api_server_reload_tokens(struct api_server *s, struct error **err);
/* Read --tls-cert and --tls-key again (SIGHUP): 1 when the new ones
 * serve (new connections from now; open ones finish on the old, for at
 * most 30 s), 0 without TLS, -1 and *err with the old ones kept. */
int api_server_reload_tls(struct api_server *s, struct error **err);
/* Let the held requests go on (at the next api_server_run()). */
void api_server_resume(struct api_server *s);
void api_server_stop(struct api_server *s);

#endif
