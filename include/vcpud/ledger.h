/* ledger.h - where tenants and their quotas are kept and decided: one
 * interface, two backends (like the cgroup engine's real and dry-run ops).
 *
 *   local  (the default) this host's SQLite file is the truth: tenants are
 *          its rows, and admit_vm() decides a tenant's quota against this
 *          host's reservations (src/registry). Every operation completes at
 *          once, on the caller's thread.
 *   fleet  (vcpud --fleet URL[,URL...], src/fleet/fleet.c) etcd is the
 *          truth for tenants and for every host's bookings: a tenant's
 *          quota holds across the hosts. Operations go to a thread of the
 *          ledger's own and complete later, on the daemon's thread
 *          (ledger_dispatch() when ledger_fd() is readable), within the
 *          policy's fleet.timeout_ms; this host keeps a copy of the tenants
 *          in its SQLite file, so that it enforces the last known settings
 *          while etcd is out of reach.
 *
 * A booking is a VM's vCPUs and memory counted against its tenant's quota.
 * The host's own capacity (NUMA nodes, overcommit, dedicated pCPUs) stays
 * local whatever the ledger: admit_vm() decides it, and with the fleet
 * ledger it leaves the tenant's quota to the booking. */
#ifndef VCPUD_LEDGER_H
#define VCPUD_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/tenant.h"

struct ledger;

struct ledger_booking {
	char tenant[NAME_MAX_LEN + 1];
	char vm[NAME_MAX_LEN + 1];
	uint32_t vcpus;
	bool memory_set;
	int64_t memory_bytes;
};

/* An operation's end, on the daemon's thread: rc 0 or -1 with err (borrowed
 * for the call; codes: EDQUOT over a quota, ENOENT, EEXIST, EBUSY, and
 * ETIMEDOUT / ECONNREFUSED / EIO when the ledger cannot be reached);
 * `result` a borrowed JSON object for operations that return one, else
 * NULL. Called exactly once per operation, also when the ledger is freed
 * with the operation still queued (ECANCELED). */
typedef void (*ledger_done_fn)(void *data, int rc, const struct error *err, json_t *result);

/* What the fleet's copy of the tenants holds (ledger_sync_fn): the tenants
 * and each one's fleet-wide use. */
struct ledger_tenant_use {
	char name[NAME_MAX_LEN + 1];
	uint64_t vcpus;
	int64_t memory_bytes;
};

struct ledger_ops {
	const char *name;                     /* "local", "fleet" */
	bool fleet;                           /* tenants and quotas live off this host */
	void (*free)(struct ledger *l);
	/* count a VM against its tenant's quota (EDQUOT when it does not fit;
	 * booking the same VM with the same figures again is a success) */
	void (*book)(struct ledger *l, const struct ledger_booking *b, ledger_done_fn done,
		     void *data);
	/* give a VM's booking back; done (may be NULL: nothing waits) when it
	 * is (what fails is released by the next ledger_sync_bookings()) */
	void (*unbook)(struct ledger *l, const char *tenant, const char *vm, ledger_done_fn done,
		       void *data);
	/* this host's bookings as its reservations say: the ledger releases
	 * what this host no longer has and books what it has unbooked */
	void (*sync_bookings)(struct ledger *l, const struct ledger_booking *local, size_t n);
	/* tenant definitions: ENOENT, EEXIST; delete is EBUSY while the
	 * tenant has bookings */
	void (*tenant_create)(struct ledger *l, const struct tenant *t, ledger_done_fn done,
			      void *data);
	void (*tenant_update)(struct ledger *l, const char *name, const struct tenant_patch *p,
			      ledger_done_fn done, void *data);
	void (*tenant_delete)(struct ledger *l, const char *name, ledger_done_fn done,
			      void *data);
	/* {"hosts":[{"host","live","bookings","vcpus","memory_bytes",...}]} */
	void (*hosts)(struct ledger *l, ledger_done_fn done, void *data);
	/* free a dead host's bookings: {"host","bookings","vcpus"}; EBUSY for a
	 * live host */
	void (*evict)(struct ledger *l, const char *host, ledger_done_fn done, void *data);
	/* a new JSON object for GET /v1/health's "ledger" */
	json_t *(*status)(struct ledger *l);
	/* fd readable when results wait for ledger_dispatch(); -1: never */
	int (*fd)(struct ledger *l);
	void (*dispatch)(struct ledger *l);
	/* the fleet-wide use of a tenant as last read (false: not known) */
	bool (*tenant_use)(struct ledger *l, const char *tenant, struct ledger_tenant_use *out);
};

struct ledger {
	const struct ledger_ops *ops;
};

/* The tenants as the fleet holds them, delivered on the daemon's thread
 * after each read (at start, on a change seen by the watch, and every few
 * seconds): the daemon makes its SQLite copy match. */
typedef void (*ledger_sync_fn)(void *data, const struct tenant *tenants, size_t n);

/* Notices the fleet ledger raises on its own (an automatic eviction, a
 * booking found missing), for the daemon to log and audit: action
 * ("fleet.evict", "fleet.unbooked", ...), target and details (borrowed). */
typedef void (*ledger_notice_fn)(void *data, const char *action, const char *target,
				 json_t *details);

/* The local ledger. */
struct ledger *ledger_local_new(void);

static inline bool ledger_is_fleet(const struct ledger *l)
{
	return l && l->ops->fleet;
}
static inline void ledger_free(struct ledger *l)
{
	if (l)
		l->ops->free(l);
}
static inline void ledger_book(struct ledger *l, const struct ledger_booking *b,
			       ledger_done_fn done, void *data)
{
	l->ops->book(l, b, done, data);
}
static inline void ledger_unbook(struct ledger *l, const char *tenant, const char *vm)
{
	l->ops->unbook(l, tenant, vm, NULL, NULL);
}
static inline void ledger_sync_bookings(struct ledger *l, const struct ledger_booking *local,
					size_t n)
{
	l->ops->sync_bookings(l, local, n);
}
static inline int ledger_fd(struct ledger *l)
{
	return l ? l->ops->fd(l) : -1;
}
static inline void ledger_dispatch(struct ledger *l)
{
	if (l)
		l->ops->dispatch(l);
}

/* --- the fleet ledger (src/fleet/fleet.c) ------------------------------------- */

struct fleet_config {
	const char *const *urls;        /* etcd's client URLs */
	size_t n_urls;
	const char *cacert, *cert, *key; /* https: PEM files */
	const char *host_id;            /* this host's name in the fleet */
	const char *prefix;             /* key prefix, "/vcpud/" */
	unsigned timeout_ms;            /* policy fleet.timeout_ms */
	unsigned lease_ttl_s;           /* the host's lease (liveness) */
	unsigned evict_dead_after_s;    /* policy fleet.evict_dead_after_s, 0: never */
	ledger_sync_fn on_tenants;
	ledger_notice_fn on_notice;
	void *data;
};

/* Start the fleet ledger: its threads connect, take the host's lease and
 * read the tenants in the background (nothing here waits for etcd). */
int fleet_new(const struct fleet_config *cfg, struct ledger **out, struct error **err);

/* Parse "URL[,URL...]" into a NULL-terminated array (free with
 * fleet_urls_free): EINVAL for an empty list or a URL that is not
 * http(s)://HOST:PORT. */
int fleet_urls_parse(const char *list, char ***out, size_t *n, struct error **err);
void fleet_urls_free(char **urls);

#endif
