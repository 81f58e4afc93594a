/* admission.h - the API's JSON of admission: a reservation as POST
 * /v1/vms/admit answers it, and GET /v1/host (topology, pools, ratio,
 * per-node use and reservations). The decisions and the ledger belong to
 * the registry (src/registry/, admit_vm() in src/plan/admit.c). */
#ifndef VCPUD_ADMISSION_H
#define VCPUD_ADMISSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "vcpud/admit.h"
#include "vcpud/error.h"
#include "vcpud/registry.h"

/* A reservation as the API shows it (see api.h, POST /v1/vms/admit). */
json_t *admission_reservation_json(const struct registry *reg, const struct admit_reservation *r,
				   bool dry_run, bool registered);

/* GET /v1/host: topology, pools, ratio, per-node usage and reservations.
 * EAGAIN when the daemon has no topology. */
int admission_host_json(struct registry *reg, struct store *st, json_t **out,
			struct error **err);

/* The admission figures of nodes[0..n) as one phrase, the ledger read
 * once ("node 0: 10 of 24 shared vCPUs admitted (4 x 6 shared pCPUs), 2
 * of 4 dedicated pCPUs in use; node 1: ..."), or NULL (no topology, none
 * of those nodes). The caller frees it. */
char *admission_nodes_use(struct registry *reg, const unsigned *nodes, size_t n);

/* GET /metrics' families of the NUMA nodes' pools (shared pCPUs, admitted
 * shared vCPUs and their ratio, dedicated pCPUs and those in use). No
 * topology: none. */
int admission_node_metrics(struct registry *reg, FILE *f, struct error **err);

#endif
