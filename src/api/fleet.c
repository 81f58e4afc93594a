/* fleet.c - the API's requests that go through the fleet ledger (vcpud
 * --fleet; see vcpud/ledger.h): tenant changes, admissions and
 * registrations that book vCPUs, and the fleet's hosts. The ledger answers
 * later, on the daemon's thread: each request here is told
 * API_STATUS_PENDING with a ticket, and its continuation (below) finishes
 * the work on this host and delivers the answer. One admission waits for
 * the ledger at a time (ctx->ledger_busy): the next is held and runs again
 * when it is done, so that this host's capacity is decided on what the
 * first one took. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/fleet.h"
#include "vcpud/admission.h"
#include "vcpud/ledger.h"
#include "vcpud/log.h"
#include "vcpud/procfs.h"
#include "vcpud/registry.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

enum pend_kind { P_T_CREATE, P_T_UPDATE, P_T_DELETE, P_ADMIT, P_REGISTER, P_RELEASE, P_HOSTS,
		 P_EVICT };

struct pend {
	struct api_ctx *ctx;
	uint64_t ticket;
	enum pend_kind kind;
	char actor[64];
	char name[NAME_MAX_LEN + 1];
	char tenant[NAME_MAX_LEN + 1];
	struct tenant t;
	struct tenant_patch p;
	struct admit_request ar;        /* vm and tenant point at name, tenant */
	struct vm v;                    /* P_REGISTER: owned threads */
};

static int pending(struct api_ctx *ctx, struct pend *p, int *status)
{
	p->ctx = ctx;
	p->ticket = ++ctx->next_ticket;
	ctx->pending_ticket = p->ticket;
	*status = API_STATUS_PENDING;
	return 0;
}

static struct pend *pend_new(enum pend_kind k, const char *actor)
{
	struct pend *p = xcalloc(1, sizeof(*p));
	p->kind = k;
	snprintf(p->actor, sizeof(p->actor), "%s", actor ? actor : "?");
	return p;
}

static void pend_free(struct pend *p)
{
	vm_clear(&p->v);
	free(p);
}

/* The status of a ledger's failure: a quota is a conflict, a ledger out
 * of reach is 503 (try again later), the rest as any error. */
static int fleet_status(const struct error *err)
{
	int code = err ? err->code : EIO;
	switch (code) {
	case EDQUOT:
		return 409;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECANCELED:
	case EAGAIN:
	case EPROTO:
	case EIO:
		return 503;
	default:
		return api_status_for_errno(code);
	}
}

static void answer(struct pend *p, int status, json_t *body)
{
	struct api_ctx *ctx = p->ctx;
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(body);
	if (ctx->deliver)
		ctx->deliver(ctx->deliver_data, p->ticket, status, text);
	else
		free(text);
}

static void answer_error(struct pend *p, int status, const char *msg)
{
	if (status >= 500)
		log_warn("%s", msg);
	answer(p, status, api_error_json(status, msg));
}

static void notify_change(struct api_ctx *ctx)
{
	if (ctx->after_change)
		ctx->after_change(ctx->after_change_data);
}

static void ledger_free_again(struct api_ctx *ctx)
{
	ctx->ledger_busy = false;
	if (ctx->wake_held)
		ctx->wake_held(ctx->wake_held_data);
}

json_t *api_tenant_json(struct api_ctx *ctx, const struct tenant *t)
{
	json_t *o = api_tenant_to_json(t);
	struct ledger_tenant_use u;
	if (ledger_is_fleet(ctx->ledger)) {
		bool known = ctx->ledger->ops->tenant_use(ctx->ledger, t->name, &u);
		json_object_set_new(o, "fleet", known ? json_pack("{s:I,s:I}", "vcpus_used",
								  (json_int_t)u.vcpus,
								  "memory_used_bytes",
								  (json_int_t)u.memory_bytes)
						      : json_null());
	}
	return o;
}

/* --- tenants -------------------------------------------------------------------- */

/* Make the local copy hold t (created or changed), as the fleet has it:
 * 1 when it changed, 0 when it held it already. */
int api_fleet_tenant_copy(struct store *st, const struct tenant *t, const char *actor,
			  struct error **err)
{
	struct tenant cur;
	_cleanup_error_ struct error *e = NULL;
	if (store_tenant_get(st, t->name, &cur, &e) < 0) {
		if (e->code != ENOENT) {
			*err = steal_ptr(&e);
			return -1;
		}
		return store_tenant_create(st, t, actor, err) < 0 ? -1 : 1;
	}
	if (cur.vcpus == t->vcpus && cur.weight == t->weight && cur.class_ == t->class_ &&
	    cur.cpu_max_set == t->cpu_max_set && cur.memory_set == t->memory_set &&
	    (!t->cpu_max_set || cur.cpu_max_cores == t->cpu_max_cores) &&
	    (!t->memory_set || cur.memory_bytes == t->memory_bytes))
		return 0;
	struct tenant_patch p = {
		.set_vcpus = true, .vcpus = t->vcpus, .set_weight = true, .weight = t->weight,
		.set_cpu_max = true, .cpu_max_set = t->cpu_max_set, .cpu_max_cores = t->cpu_max_cores,
		.set_memory = true, .memory_set = t->memory_set, .memory_bytes = t->memory_bytes,
		.set_class = true, .class_ = t->class_,
	};
	struct tenant out;
	return store_tenant_update(st, t->name, &p, actor, &out, err) < 0 ? -1 : 1;
}

static void on_tenant_done(void *data, int rc, const struct error *err, json_t *result)
{
	struct pend *p = data;
	struct api_ctx *ctx = p->ctx;
	/* deleting a tenant the fleet does not have: the one on this host
	 * only (kept from before it joined) goes */
	if (rc < 0 && p->kind == P_T_DELETE && err && err->code == ENOENT) {
		_cleanup_error_ struct error *e = NULL;
		if (store_tenant_delete(ctx->store, p->name, p->actor, &e) == 0) {
			log_info("tenant %s, on this host only, deleted by %s", p->name, p->actor);
			notify_change(ctx);
			answer(p, 204, NULL);
		} else {
			answer_error(p, api_status_for_errno(e->code), e->msg);
		}
		pend_free(p);
		return;
	}
	if (rc < 0) {
		answer_error(p, fleet_status(err), err ? err->msg : "fleet: failed");
		pend_free(p);
		return;
	}
	_cleanup_error_ struct error *e = NULL;
	struct tenant t;
	int status = p->kind == P_T_CREATE ? 201 : p->kind == P_T_DELETE ? 204 : 200;
	if (p->kind == P_T_DELETE) {
		if (store_tenant_delete(ctx->store, p->name, p->actor, &e) < 0 && e->code != ENOENT) {
			_cleanup_free_ char *m = xasprintf("tenant %s was deleted in the fleet, but "
							   "not here: %s", p->name, e->msg);
			answer_error(p, 500, m);
			pend_free(p);
			return;
		}
		log_info("tenant %s deleted in the fleet by %s", p->name, p->actor);
		notify_change(ctx);
		answer(p, status, NULL);
		pend_free(p);
		return;
	}
	/* what the fleet holds now (the worker's api_tenant_to_json()) */
	struct tenant ft = p->t;
	if (result && api_tenant_from_reply(result, &ft, &e) < 0)
		error_free(&e); /* ft untouched: what was asked */
	if (api_fleet_tenant_copy(ctx->store, &ft, p->actor, &e) < 0 ||
	    store_tenant_get(ctx->store, ft.name, &t, &e) < 0) {
		_cleanup_free_ char *m = xasprintf("tenant %s was changed in the fleet, but its "
						   "copy here was not: %s", ft.name, e->msg);
		answer_error(p, 500, m);
		pend_free(p);
		return;
	}
	log_info("tenant %s %s in the fleet by %s: %u vCPUs, weight %u, class %s", t.name,
		 p->kind == P_T_CREATE ? "created" : "changed", p->actor, t.vcpus, t.weight,
		 tenant_class_to_string(t.class_));
	notify_change(ctx);
	answer(p, status, api_tenant_json(ctx, &t));
	pend_free(p);
}

int api_fleet_tenant_create(struct api_ctx *ctx, const char *actor, const struct tenant *t,
			    int *status)
{
	struct pend *p = pend_new(P_T_CREATE, actor);
	p->t = *t;
	snprintf(p->name, sizeof(p->name), "%s", t->name);
	pending(ctx, p, status);
	ctx->ledger->ops->tenant_create(ctx->ledger, t, on_tenant_done, p);
	return 0;
}

int api_fleet_tenant_update(struct api_ctx *ctx, const char *actor, const char *name,
			    const struct tenant_patch *patch, int *status)
{
	struct pend *p = pend_new(P_T_UPDATE, actor);
	p->p = *patch;
	snprintf(p->name, sizeof(p->name), "%s", name);
	pending(ctx, p, status);
	ctx->ledger->ops->tenant_update(ctx->ledger, name, patch, on_tenant_done, p);
	return 0;
}

int api_fleet_tenant_delete(struct api_ctx *ctx, const char *actor, const char *name,
			    int *status)
{
	struct pend *p = pend_new(P_T_DELETE, actor);
	snprintf(p->name, sizeof(p->name), "%s", name);
	pending(ctx, p, status);
	ctx->ledger->ops->tenant_delete(ctx->ledger, name, on_tenant_done, p);
	return 0;
}

/* --- admissions, registrations --------------------------------------------------- */

static void given_back(void *data, int rc, const struct error *err, json_t *result)
{
	(void)data; (void)result;
	if (rc < 0)
		log_warn("fleet: a booking not used here stays until the reconciliation: %s",
			 err ? err->msg : "?");
}

/* The booking of a VM this host could not take after all: given back by
 * the worker, in order with the bookings (a retry booking it again right
 * after is not undone by this). */
static void give_back(struct api_ctx *ctx, struct pend *p)
{
	ctx->ledger->ops->unbook(ctx->ledger, p->tenant, p->name, given_back, NULL);
}

/* Book p's VM (p->name, p->tenant) in the fleet: the request waits, and
 * the ledger is busy until done. */
static void book(struct api_ctx *ctx, struct pend *p, uint32_t vcpus, bool memory_set,
		 int64_t memory_bytes, ledger_done_fn done, int *status)
{
	struct ledger_booking b = { .vcpus = vcpus, .memory_set = memory_set,
				    .memory_bytes = memory_bytes };
	strcpy(b.tenant, p->tenant);
	strcpy(b.vm, p->name);
	pending(ctx, p, status);
	ctx->ledger_busy = true;
	ledger_book(ctx->ledger, &b, done, p);
}

/* A booking's answer: the ledger is free for the next admission; a
 * refusal answered (and false returned). */
static bool booked(struct pend *p, int rc, const struct error *err)
{
	ledger_free_again(p->ctx);
	if (rc == 0)
		return true;
	log_info("VM %s of tenant %s refused by the fleet's ledger: %s", p->name, p->tenant,
		 err ? err->msg : "?");
	answer_error(p, fleet_status(err), err ? err->msg : "fleet: failed");
	pend_free(p);
	return false;
}

static void on_admit_booked(void *data, int rc, const struct error *err, json_t *result)
{
	(void)result;
	struct pend *p = data;
	struct api_ctx *ctx = p->ctx;
	if (!booked(p, rc, err))
		return;
	_cleanup_error_ struct error *e = NULL;
	struct admit_placement pl;
	if (registry_admit(ctx->reg, &p->ar, false, p->actor, &pl, &e) < 0) {
		/* the host changed while the fleet booked: give the booking back */
		give_back(ctx, p);
		answer_error(p, api_status_for_errno(e->code == EAGAIN ? EIO : e->code), e->msg);
		pend_free(p);
		return;
	}
	struct vm v;
	bool registered = store_vm_get(ctx->store, p->name, &v, NULL) == 0;
	if (registered)
		vm_clear(&v);
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	_cleanup_free_ char *where = admit_placement_describe(&host, &pl.res);
	log_info("VM %s admitted for tenant %s by %s (booked in the fleet): %u vCPUs, %s", p->name,
		 p->tenant, p->actor, p->ar.vcpus, where);
	notify_change(ctx);
	answer(p, pl.existing ? 200 : 201,
	       admission_reservation_json(ctx->reg, &pl.res, false, registered));
	pend_free(p);
}

int api_fleet_admit(struct api_ctx *ctx, const char *actor, const struct admit_request *ar,
		    int *status, json_t **out, struct error **err)
{
	if (ctx->ledger_busy) {
		*status = API_STATUS_HOLD;
		return 0;
	}
	/* this host's own checks first: a VM that does not fit here books
	 * nothing in the fleet */
	struct admit_placement pl;
	if (registry_admit(ctx->reg, ar, true, actor, &pl, err) < 0) {
		if (err && *err && (*err)->code == EAGAIN)
			(*err)->code = EIO;
		return -1;
	}
	if (pl.existing) {
		struct vm v;
		bool registered = store_vm_get(ctx->store, ar->vm, &v, NULL) == 0;
		if (registered)
			vm_clear(&v);
		*out = admission_reservation_json(ctx->reg, &pl.res, false, registered);
		*status = 200;
		return 0;
	}
	struct pend *p = pend_new(P_ADMIT, actor);
	snprintf(p->name, sizeof(p->name), "%s", ar->vm);
	snprintf(p->tenant, sizeof(p->tenant), "%s", ar->tenant);
	p->ar = *ar;
	p->ar.vm = p->name;
	p->ar.tenant = p->tenant;
	book(ctx, p, ar->vcpus, ar->memory_set, ar->memory_bytes, on_admit_booked, status);
	return 0;
}

int api_fleet_dry_check(struct api_ctx *ctx, const struct admit_request *ar, struct error **err)
{
	struct tenant t;
	struct ledger_tenant_use u;
	if (store_tenant_get_limits(ctx->store, ar->tenant, &t, err) < 0)
		return -1;
	if (!ctx->ledger->ops->tenant_use(ctx->ledger, ar->tenant, &u))
		return error_set(err, ETIMEDOUT, "fleet: the tenants' use was not read from etcd "
				 "yet: a dry run cannot say whether tenant %s has room", ar->tenant);
	if (u.vcpus + ar->vcpus > t.vcpus)
		return error_set(err, EDQUOT, "tenant %s: %llu of its %u vCPUs are booked in the "
				 "fleet (as last read), %u more do not fit", t.name,
				 (unsigned long long)u.vcpus, t.vcpus, ar->vcpus);
	if (t.memory_set && ar->memory_set && u.memory_bytes + ar->memory_bytes > t.memory_bytes)
		return error_set(err, EDQUOT, "tenant %s: %lld of its %lld bytes of memory are "
				 "booked in the fleet (as last read), %lld more do not fit", t.name,
				 (long long)u.memory_bytes, (long long)t.memory_bytes,
				 (long long)ar->memory_bytes);
	return 0;
}

static void on_register_booked(void *data, int rc, const struct error *err, json_t *result)
{
	(void)result;
	struct pend *p = data;
	struct api_ctx *ctx = p->ctx;
	if (!booked(p, rc, err))
		return;
	_cleanup_error_ struct error *e = NULL;
	if (registry_register(ctx->reg, &p->v, p->actor, &e) < 0) {
		give_back(ctx, p);
		answer_error(p, api_status_for_errno(e->code), e->msg);
		pend_free(p);
		return;
	}
	notify_change(ctx);
	struct registry_vm_view view;
	if (registry_vm_get(ctx->reg, p->name, &view, &e) < 0) {
		answer_error(p, 500, e->msg);
		pend_free(p);
		return;
	}
	struct admit_host host = registry_host(ctx->reg, NULL, 0);
	answer(p, 201, api_vm_view_to_json(&view, &host));
	registry_vm_view_clear(&view);
	pend_free(p);
}

int api_fleet_register(struct api_ctx *ctx, const char *actor, struct vm *v, int *status)
{
	if (ctx->ledger_busy) {
		*status = API_STATUS_HOLD;
		return 0;
	}
	struct pend *p = pend_new(P_REGISTER, actor);
	snprintf(p->name, sizeof(p->name), "%s", v->name);
	snprintf(p->tenant, sizeof(p->tenant), "%s", v->tenant);
	p->v = *v;
	memset(v, 0, sizeof(*v)); /* its threads are the pend's now */
	book(ctx, p, p->v.vcpus, p->v.memory_set, p->v.memory_bytes, on_register_booked, status);
	return 0;
}

static void on_unbooked(void *data, int rc, const struct error *err, json_t *result)
{
	(void)result;
	struct pend *p = data;
	/* released here whatever the fleet said: what it could not take back
	 * now, this host's reconciliation of its bookings does later */
	if (rc < 0)
		log_warn("VM %s released; its booking in the fleet stays until etcd answers: %s",
			 p->name, err ? err->msg : "?");
	answer(p, 204, NULL);
	pend_free(p);
}

int api_fleet_release(struct api_ctx *ctx, const char *actor, const char *tenant, const char *vm,
		      int *status)
{
	struct pend *p = pend_new(P_RELEASE, actor);
	snprintf(p->name, sizeof(p->name), "%s", vm);
	snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
	pending(ctx, p, status);
	ctx->ledger->ops->unbook(ctx->ledger, tenant, vm, on_unbooked, p);
	return 0;
}

/* --- the fleet's hosts ------------------------------------------------------------- */

static void on_hosts(void *data, int rc, const struct error *err, json_t *result)
{
	struct pend *p = data;
	if (rc < 0)
		answer_error(p, fleet_status(err), err ? err->msg : "fleet: failed");
	else
		answer(p, 200, json_incref(result));
	pend_free(p);
}

int api_fleet_hosts(struct api_ctx *ctx, const char *actor, int *status)
{
	struct pend *p = pend_new(P_HOSTS, actor);
	pending(ctx, p, status);
	ctx->ledger->ops->hosts(ctx->ledger, on_hosts, p);
	return 0;
}

static void on_evict(void *data, int rc, const struct error *err, json_t *result)
{
	struct pend *p = data;
	struct api_ctx *ctx = p->ctx;
	if (rc < 0) {
		answer_error(p, fleet_status(err), err ? err->msg : "fleet: failed");
		pend_free(p);
		return;
	}
	_cleanup_free_ char *details = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS);
	_cleanup_error_ struct error *e = NULL;
	if (store_event_add(ctx->store, p->actor, "fleet.evict", p->name, details, &e) < 0)
		log_warn("fleet: cannot record the eviction of host %s: %s", p->name, e->msg);
	log_warn("fleet: host %s evicted by %s: %lld bookings, %lld vCPUs freed", p->name, p->actor,
		 (long long)json_integer_value(json_object_get(result, "bookings")),
		 (long long)json_integer_value(json_object_get(result, "vcpus")));
	answer(p, 200, json_incref(result));
	pend_free(p);
}

int api_fleet_evict(struct api_ctx *ctx, const char *actor, const char *host, int *status)
{
	struct pend *p = pend_new(P_EVICT, actor);
	snprintf(p->name, sizeof(p->name), "%s", host);
	pending(ctx, p, status);
	ctx->ledger->ops->evict(ctx->ledger, host, on_evict, p);
	return 0;
}
