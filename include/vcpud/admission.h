/* admission.h - the admission ledger between the store and the pure
 * admit module: reservations in SQLite (struct store_reservation) become
 * struct admit_reservation and back, requests are decided with admit_vm()
 * against the live topology, pools and ratio, and the result is persisted
 * in the same call. The daemon is single-threaded, so two admissions never
 * interleave: a decision and its insert see the same ledger, and the
 * host is never overbooked. */
#ifndef VCPUD_ADMISSION_H
#define VCPUD_ADMISSION_H

#include <jansson.h>
#include <stdbool.h>

#include "vcpud/admit.h"
#include "vcpud/error.h"
#include "vcpud/store.h"
#include "vcpud/topology.h"

/* What admission needs from the daemon (borrowed). */
struct admission_env {
	struct store *store;
	const struct topology *topo;   /* NULL: admission unavailable */
	const struct pools *pools;
	double cpu_ratio;
};

/* Every reservation in the store, converted; a row that does not parse is
 * skipped with a warning (never fatal). *out freed by the caller. */
int admission_load(struct store *st, struct admit_reservation **out, size_t *n,
		   struct error **err);

/* Decide a request against the ledger and, unless dry_run, persist it (event
 * vm.admit). The tenant's quota counts its reservations. Errors: EBUSY
 * (quota, capacity: "vm x not admitted: ..."), EINVAL, EEXIST, ENOENT
 * (unknown tenant), EAGAIN when the daemon has no topology. */
int admission_admit(const struct admission_env *env, const struct admit_request *req,
		    bool dry_run, const char *actor, struct admit_placement *out,
		    struct error **err);

/* A reservation as the API shows it (see api.h, POST /v1/vms/admit). */
json_t *admission_reservation_json(const struct admission_env *env,
				   const struct admit_reservation *r, bool dry_run,
				   bool registered);

/* GET /v1/host: topology, pools, ratio, per-node usage and reservations. */
int admission_host_json(const struct admission_env *env, json_t **out, struct error **err);

#endif
