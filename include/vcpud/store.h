/* store.h - vcpud's persistent state in SQLite: tenants, VMs, vCPUs and the
 * audit log of events.
 *
 * The database runs in WAL mode with foreign keys on and a busy timeout.
 * Schema migrations (schema/NNN_*.sql, compiled into the binary) are applied
 * in order at open and tracked by PRAGMA user_version; a database written by
 * a newer vcpud is refused. Every mutation runs in one transaction together
 * with its audit event, so a refused or failed request changes nothing.
 * Only this module writes to SQLite. */
#ifndef VCPUD_STORE_H
#define VCPUD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"
#include "vcpud/tenant.h"
#include "vcpud/throttle.h"
#include "vcpud/vm.h"

struct store;
struct store_reservation;

/* PRAGMA application_id of a vcpud database ('vcpu' in ASCII), set by
 * schema/001_init.sql. A file with another non-zero id is refused. */
#define STORE_APPLICATION_ID 0x76637075
/* How long a statement waits for another connection's lock. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* One compiled-in migration (schema/NNN_name.sql). */
struct store_migration {
	int version;          /* NNN */
	const char *name;     /* "001_init.sql" */
	const char *sql;
};
/* All migrations, in version order; generated from schema/ at build time. */
extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;

/* Open (creating if needed) and migrate to the newest schema. *out is owned
 * by the caller (store_close). Errors: EPROTO for a database from a newer
 * schema version ("was written by a newer vcpud"), EIO for SQLite failures. */
int store_open(const char *path, struct store **out, struct error **err);

/* Move the WAL's checkpoints off the caller's thread: SQLite runs one
 * (copying the log into the database and fsync'ing it) in whichever commit
 * crosses 1,000 log pages, which made one tick in four wait for the disk
 * (20+ ms, once 480 ms). After this the connection never checkpoints; a
 * thread with its own connection does, PASSIVE (it never waits for the
 * writer, nor the writer for it), every every_ms (0: the default,
 * STORE_CHECKPOINT_EVERY_MS). Stopped by store_close(). A database in
 * memory has nothing to checkpoint: 0, nothing started. */
#define STORE_CHECKPOINT_EVERY_MS 2000
int store_checkpoint_in_background(struct store *st, unsigned every_ms, struct error **err);
/* How many checkpoints the thread made (tests). */
uint64_t store_checkpoints(struct store *st);

/* As store_open() but migrate only up to `version` (tests: build an "old"
 * database and upgrade it). A database already past `version` is opened
 * as it is (never downgraded); `version` beyond the newest migration is
 * EINVAL. */
int store_open_at_version(const char *path, int version, struct store **out,
			  struct error **err);

void store_close(struct store *st);
static inline void store_closep(struct store **st) { if (*st) store_close(*st); }

/* PRAGMA user_version of the open database (-1 if it cannot be read). */
int store_schema_version(struct store *st);

/* SQL statements run on this connection so far (each statement start,
 * counted by SQLite's tracing): the daemon reports them per tick. */
uint64_t store_statements(struct store *st);
/* Result rows those statements returned so far (SQLite's tracing too): what
 * a call read, for tests that a call reads what it needs, not a table. */
uint64_t store_rows(struct store *st);

/* The path the store was opened with (owned by the store). */
const char *store_path(const struct store *st);

/* Tests: stamp rows and events with now_ms() (unix milliseconds) instead of
 * the real clock; NULL restores the real clock. */
void store_set_clock(struct store *st, int64_t (*now_ms)(void));

/* "ok" when PRAGMA integrity_check passes and PRAGMA foreign_key_check finds
 * no dangling reference; 0 or -1 (EIO) with the first problem. */
int store_integrity_check(struct store *st, struct error **err);

/* --- tenants ---------------------------------------------------------- */

/* Insert a validated tenant. EEXIST if the name is taken, EINVAL if it does
 * not validate. `actor` ("uid:0"; NULL = "vcpud") goes into the audit event
 * ("tenant.create", details: the tenant). created_at, updated_at,
 * vcpus_used and vm_count of *t are ignored. */
int store_tenant_create(struct store *st, const struct tenant *t,
			const char *actor, struct error **err);

/* Read one tenant (with vcpus_used and vm_count). ENOENT when unknown. */
int store_tenant_get(struct store *st, const char *name, struct tenant *out,
		     struct error **err);
/* The same without the usage (vcpus_used and vm_count are 0): one row by
 * its key, whatever the tenant's VMs (admission counts use in memory). */
int store_tenant_get_limits(struct store *st, const char *name, struct tenant *out,
			    struct error **err);

/* All tenants ordered by name. *out (array of *n) is freed by the caller. */
int store_tenant_list(struct store *st, struct tenant **out, size_t *n,
		      struct error **err);

/* Apply a patch. ENOENT unknown tenant; EINVAL the result does not validate;
 * EBUSY lowering the vCPU quota below what its VMs use. On success *out (if
 * non-NULL) holds the new tenant. The audit event "tenant.update" has
 * details {"changed":{"FIELD":{"old":..,"new":..},...}}; a patch that
 * changes nothing writes nothing (no event, updated_at kept). */
int store_tenant_update(struct store *st, const char *name,
			const struct tenant_patch *p, const char *actor,
			struct tenant *out, struct error **err);

/* Delete. ENOENT unknown; EBUSY while the tenant still has VMs. The audit
 * event "tenant.delete" has the deleted tenant as details. */
int store_tenant_delete(struct store *st, const char *name, const char *actor,
			struct error **err);

/* --- VMs ------------------------------------------------------------- */

/* Register a VM (v->threads included) in one transaction with its audit
 * event "vm.register" and, when `admit` is not NULL, the VM's admission
 * reservation (event "vm.admit") in the same transaction: a refusal changes
 * nothing. Checks: vm_validate(); the tenant exists (ENOENT "no tenant
 * 'x'"); the name is free (EEXIST "VM 'web-1' already exists"); the pid is
 * not another live VM's (EEXIST "process 123 is already registered as VM
 * 'x'"); the UUID is free (EEXIST); with `admit`, the VM is not admitted yet
 * (EEXIST) and the reservation names the same VM and tenant (EINVAL). The
 * tenant's quota is not checked here: admission (src/plan/admit.c, called by
 * src/registry/) is the one place that decides it, against the reservations. */
int store_vm_register(struct store *st, const struct store_reservation *admit,
		      const struct vm *v, const char *actor, struct error **err);
/* store_vm_register() without a reservation. */
int store_vm_create(struct store *st, const struct vm *v, const char *actor,
		    struct error **err);

/* One VM with its threads; ENOENT when unknown. The caller vm_clear()s. */
int store_vm_get(struct store *st, const char *name, struct vm *out, struct error **err);

/* The live VM (state neither gone nor stopped) whose row holds process
 * `pid`, without its threads (the first by name if rows disagree); one
 * indexed row, whatever the number of VMs. ENOENT when none. */
int store_vm_get_by_pid(struct store *st, pid_t pid, struct vm *out, struct error **err);

/* All VMs ordered by name, with threads; freed with vm_list_free(). */
int store_vm_list(struct store *st, struct vm **out, size_t *n, struct error **err);

/* What a discovery source or the lifecycle saw of a VM's process. */
struct store_vm_runtime {
	enum vm_state state;
	enum vm_source source;          /* who owns the VM's runtime from now on */
	pid_t pid;                      /* 0: none */
	uint64_t start_time;            /* of that pid, 0 unknown */
	const struct vm_vcpu *threads;  /* any order; tids 0 are left out */
	size_t n_threads;
};

/* Replace a VM's runtime (state, source, pid, start time, threads) in one
 * transaction, with, when `admit` is not NULL, a new admission reservation
 * (a VM coming back after its capacity was freed). Writes only when
 * something differs (returns 1, else 0). A state change stamps
 * state_since_ms and writes an event "vm.state" (old and new state, pid;
 * actor "vcpud"); a change of source or pid alone writes none. ENOENT when
 * unknown; EINVAL when the threads do not validate; EEXIST when the pid is
 * another live VM's (nothing written). */
int store_vm_update_runtime(struct store *st, const char *name,
			    const struct store_vm_runtime *rt,
			    const struct store_reservation *admit, struct error **err);

/* Set a VM's own cpu.weight (weight 0: back to the default, by vCPUs);
 * event "vm.set" with the old and new weights. 1 when it changed, 0 when it
 * already was that (nothing written), -1: ENOENT (no VM row), EINVAL (out
 * of range). */
int store_vm_set_weight(struct store *st, const char *name, uint32_t weight,
			const char *actor, struct error **err);

/* Release (delete) a VM and its vCPU rows, and its reservation when it has
 * one, in one transaction; events "vm.release" (and "vm.unadmit"). ENOENT
 * when there is neither a VM nor a reservation of that name. */
int store_vm_delete(struct store *st, const char *name, const char *actor,
		    struct error **err);

/* --- admission reservations ---------------------------------------------
 *
 * The admission ledger: one row per admitted VM, whether or not its process
 * runs yet; the one ledger tenant quotas are counted against. The placement
 * is kept in text forms owned by the plan module's admit.h (shares
 * "0:6,1:4", pcpus a cpulist); the store only checks their syntax loosely
 * and never interprets them, so that the dependency points store <- plan. */
#define STORE_RES_SHARES_MAX 1023       /* characters of shares */
#define STORE_RES_PCPUS_MAX 65535       /* characters of pcpus */
struct store_reservation {
	char vm[NAME_MAX_LEN + 1];
	char tenant[NAME_MAX_LEN + 1];
	uint32_t vcpus;                 /* 1..VM_VCPUS_MAX */
	bool memory_set;
	int64_t memory_bytes;
	char cpu_policy[16];            /* "shared" | "dedicated" */
	char thread_policy[16];         /* "prefer" | "isolate" | "require" */
	char *shares;                   /* owned: "NODE:VCPUS[,NODE:VCPUS...]" */
	char *pcpus;                    /* owned: dedicated pCPUs (cpulist), "" for shared */
	int64_t created_at;             /* unix seconds, set by the store */
};

/* Free what r owns (shares, pcpus) and zero them; the array form frees the
 * array too. */
void store_reservation_clear(struct store_reservation *r);
void store_reservations_free(struct store_reservation *v, size_t n);

/* Add a reservation (event "vm.admit", details: the reservation). EEXIST
 * "VM 'x' is already admitted"; ENOENT unknown tenant; EINVAL a field out
 * of range. */
int store_reservation_add(struct store *st, const struct store_reservation *r,
			  const char *actor, struct error **err);

/* All reservations ordered by VM name; freed with store_reservations_free(). */
int store_reservation_list(struct store *st, struct store_reservation **out, size_t *n,
			   struct error **err);

/* One reservation (store_reservation_clear() it); ENOENT when there is none. */
int store_reservation_get(struct store *st, const char *vm, struct store_reservation *out,
			  struct error **err);

/* Delete (event "vm.unadmit", with `reason` in its details when not NULL:
 * "gone for 60 s"); ENOENT when there is none. */
int store_reservation_delete(struct store *st, const char *vm, const char *actor,
			     const char *reason, struct error **err);

/* --- the inventory ----------------------------------------------------------
 *
 * Everything the control loop's tick needs from the store, read in one
 * read transaction (one consistent snapshot, a handful of statements
 * whatever the number of VMs): tenants (with their usage), VMs with their
 * vCPU threads, reservations. */
struct store_inventory {
	struct tenant *tenants;         /* by name */
	size_t n_tenants;
	struct vm *vms;                 /* by name, with threads */
	size_t n_vms;
	struct store_reservation *res;  /* by VM name */
	size_t n_res;
};
int store_inventory_read(struct store *st, struct store_inventory *out, struct error **err);
void store_inventory_clear(struct store_inventory *inv);

/* What the inventory may have become: two marks are equal only when no
 * write of this connection since could have changed it (history, events
 * and throttle state do not count) and no other connection committed
 * anything (PRAGMA data_version). A reader keeps an inventory read after
 * a mark for as long as the mark stays the same. */
struct store_mark {
	int64_t changes;
	int64_t data_version;
};
int store_inventory_mark(struct store *st, struct store_mark *out, struct error **err);
static inline bool store_mark_equal(const struct store_mark *a, const struct store_mark *b)
{
	return a->changes == b->changes && a->data_version == b->data_version;
}

/* --- per-VM sample history ---------------------------------------------- */

struct store_sample {
	const char *vm;       /* on add: a registered VM (others are skipped) */
	int64_t ts_ms;
	double usage_pct;     /* % of one CPU, summed over vCPUs, >= 0 */
	double steal_pct;     /* mean over vCPUs, clamped to 0..100 */
	double cap_pct;       /* the throttle's cap then, % of one pCPU; NAN:
			       * not capped (NULL in the table) */
};

/* Append samples (one transaction; VMs that are no longer registered are
 * skipped), then delete the samples older than `keep_since_ts_ms` (the
 * retention) of the VMs prune[0..n_prune), each by its primary key, or of
 * every VM when prune is NULL. Returns the rows written. */
int store_samples_add(struct store *st, const struct store_sample *rows, size_t n,
		      const char *const *prune, size_t n_prune, int64_t keep_since_ts_ms,
		      struct error **err);

/* Samples of one VM with ts_ms >= since_ts_ms, oldest first, at most
 * `limit` (0 = all; the newest are kept when there are more). *out (vm
 * pointers NULL) is freed by the caller. ENOENT for an unknown VM. */
int store_samples_list(struct store *st, const char *vm, int64_t since_ts_ms, size_t limit,
		       struct store_sample **out, size_t *n, struct error **err);

/* --- throttle caps (schema/006_throttle.sql) -------------------------- */

/* A saved cap: the throttler's export with its hold as a wall-clock time. */
struct store_throttle_cap {
	struct throttle_saved c;      /* c.hold_left_ms is not stored */
	int64_t hold_until_ms;        /* unix ms; 0: no hold */
};

/* An event to add with the caps (details: a JSON object text or NULL). */
struct store_event_in {
	const char *action;
	const char *target;
	const char *details;
};

/* In one transaction: add the events (actor "vcpud") and, with save_caps,
 * replace the saved caps with caps[0..n) (n 0: none left). A cap of a VM
 * that is not registered is skipped (it was released meanwhile). */
int store_throttle_record(struct store *st, const struct store_event_in *ev, size_t n_ev,
			  bool save_caps, const struct store_throttle_cap *caps, size_t n,
			  struct error **err);

/* The saved caps, sorted by VM. A row that does not parse (victims not a
 * list of names) is returned without its victims. *out: store_throttle_caps_free(). */
int store_throttle_load(struct store *st, struct store_throttle_cap **out, size_t *n,
			struct error **err);
void store_throttle_caps_free(struct store_throttle_cap *v, size_t n);

/* --- events (audit log) ----------------------------------------------- */

struct store_event {
	int64_t id;
	int64_t ts_ms;        /* unix time, milliseconds */
	char *actor;          /* "uid:0", "vcpud" */
	char *action;         /* "tenant.create", "throttle.cap", ... */
	char *target;         /* "tenant/acme", "vm/web-1" */
	char *details;        /* JSON object text */
};

/* Append an event in its own transaction. details_json must be a JSON object
 * text or NULL ("{}"), else EINVAL; action must be non-empty (EINVAL);
 * actor NULL = "vcpud", target NULL = "". */
int store_event_add(struct store *st, const char *actor, const char *action,
		    const char *target, const char *details_json,
		    struct error **err);

/* Events with id > after_id and ts_ms >= since_ts_ms, oldest first, at most
 * `limit` (0 = no limit). The caller frees *out (NULL when *n is 0) with
 * store_events_free(). */
int store_event_list(struct store *st, int64_t after_id, int64_t since_ts_ms,
		     size_t limit, struct store_event **out, size_t *n,
		     struct error **err);
void store_events_free(struct store_event *ev, size_t n);

/* The newest throttle.* event about VM vm (its target), or, as_victim,
 * naming vm as its victim, among the last STORE_EVENT_SCAN_MAX events: 1
 * and *out (store_event_clear() it), 0 when there is none. */
#define STORE_EVENT_SCAN_MAX 50000
int store_event_last_throttle(struct store *st, const char *vm, bool as_victim,
			      struct store_event *out, struct error **err);
void store_event_clear(struct store_event *e);

/* store_event_list(), and *oldest_id: the id of the oldest event kept (0
 * when the log is empty), read in the same snapshot so that no pruning
 * falls between the two. A reader whose cursor is after_id missed events
 * when after_id + 1 < *oldest_id (see store_event_prune()). */
int store_event_page(struct store *st, int64_t after_id, int64_t since_ts_ms,
		     size_t limit, struct store_event **out, size_t *n,
		     int64_t *oldest_id, struct error **err);

/* Most rows store_event_prune() deletes in one call. */
#define STORE_EVENT_PRUNE_BATCH 10000

/* Trim the audit log from its oldest end, in one transaction:
 *  - by age: the events before the first one whose ts_ms is at most
 *    retention_days old at now_ms (unix ms); an event is deleted once it
 *    and every event before it are that old, so the deleted ids are always
 *    a prefix of the log even when the clock stepped back;
 *  - by count: the oldest beyond max_rows, i.e. every id <= newest id -
 *    max_rows (ids have no gaps: exactly max_rows are kept).
 * At most STORE_EVENT_PRUNE_BATCH rows per call, so that a huge backlog
 * never stalls the caller; the next call continues (*deleted equal to the
 * batch says there may be more). The newest event is never deleted, and
 * ids are never reused (the table is AUTOINCREMENT), so "events after id
 * N" stays a reliable cursor. *deleted (may be NULL) is the number of rows
 * deleted. EINVAL when retention_days or max_rows is 0. */
int store_event_prune(struct store *st, int64_t now_ms, uint32_t retention_days,
		      uint64_t max_rows, uint64_t *deleted, struct error **err);

/* The oldest event kept (*oldest_id, *oldest_ts_ms) and how many there are
 * (*count: a count(*), linear in the rows; pass NULL to skip it). All 0
 * when the log is empty. Each pointer may be NULL. */
int store_event_bounds(struct store *st, int64_t *oldest_id, int64_t *oldest_ts_ms,
		       uint64_t *count, struct error **err);

#endif
