/* fleet.h - the API's requests that the fleet ledger decides (src/api/fleet.c).
 * Each returns 0 with *status API_STATUS_PENDING (ctx->pending_ticket: the
 * answer comes through ctx->deliver) or API_STATUS_HOLD (run it again
 * later), or an answer now; -1 with err for a request refused at once. */
#ifndef VCPUD_API_FLEET_H
#define VCPUD_API_FLEET_H

#include <jansson.h>

#include "vcpud/admit.h"
#include "vcpud/api.h"
#include "vcpud/store.h"
#include "vcpud/tenant.h"
#include "vcpud/vm.h"

/* A tenant as the API shows it: with the fleet ledger, its fleet-wide use
 * ("fleet": {"vcpus_used","memory_used_bytes"}, null before the first read). */
json_t *api_tenant_json(struct api_ctx *ctx, const struct tenant *t);

/* Make the local copy of tenant t what the fleet holds (create or change):
 * 1 changed, 0 it held it already, -1 err. */
int api_fleet_tenant_copy(struct store *st, const struct tenant *t, const char *actor,
			  struct error **err);

int api_fleet_tenant_create(struct api_ctx *ctx, const char *actor, const struct tenant *t,
			    int *status);
int api_fleet_tenant_update(struct api_ctx *ctx, const char *actor, const char *name,
			    const struct tenant_patch *patch, int *status);
int api_fleet_tenant_delete(struct api_ctx *ctx, const char *actor, const char *name,
			    int *status);
/* This host's checks now, then the booking. */
int api_fleet_admit(struct api_ctx *ctx, const char *actor, const struct admit_request *ar,
		    int *status, json_t **out, struct error **err);
/* A dry run's fleet quota: the tenant's use as last read from etcd (the
 * watch keeps it within a second) against its quota; EDQUOT when over. */
int api_fleet_dry_check(struct api_ctx *ctx, const struct admit_request *ar, struct error **err);
/* A running VM without a reservation: booked, then registered; v's
 * threads are taken (v is cleared) unless it is held. */
int api_fleet_register(struct api_ctx *ctx, const char *actor, struct vm *v, int *status);
/* After this host released VM vm: its booking given back, then 204. */
int api_fleet_release(struct api_ctx *ctx, const char *actor, const char *tenant, const char *vm,
		      int *status);
int api_fleet_hosts(struct api_ctx *ctx, const char *actor, int *status);
int api_fleet_evict(struct api_ctx *ctx, const char *actor, const char *host, int *status);

#endif
