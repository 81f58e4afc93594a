/* store_internal.h - what the files of the store module share: the
 * connection, its lock, transactions, statement helpers and the audit-event
 * insert that every mutation calls inside its own transaction. Not a public
 * header: only the store's own files and its unit test include it. */
#ifndef VCPUD_STORE_INTERNAL_H
#define VCPUD_STORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "vcpud/error.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

/* SQLite's page cache per connection, in KiB (PRAGMA cache_size = -N):
 * enough for the inventory tables of a thousand VMs. */
#define STORE_CACHE_KIB_STR "512"

struct store {
	sqlite3 *db;
	char *path;                /* as given to store_open() */
	pthread_mutex_t lock;      /* one public call at a time (see below) */
	int64_t (*now_ms)(void);   /* clock; tests replace it */
	bool ready;                /* opened and migrated */
	uint64_t statements;       /* SQL statements run (sqlite3_trace_v2) */
	uint64_t rows;             /* result rows they returned (the same) */
	/* statements prepared once and kept (store_prepare) */
	struct store_cached_stmt *cache;
	size_t n_cache;
	uint64_t compiled;         /* statements store_prepare() compiled */
	/* rows changed by writes that leave the inventory as it is (history,
	 * events, throttle state): store_inventory_mark() discounts them */
	int64_t quiet_changes;
	/* store_checkpoint_in_background(): its thread and connection */
	struct store_checkpointer *ckpt;
};

/* One cached statement: its SQL (a copy: the key) and the literal it was
 * first asked for with (a fast first check). */
struct store_cached_stmt {
	const char *key;
	char *sql;
	sqlite3_stmt *stmt;
};

/* Every public function holds st->lock for its whole duration, so that the
 * statements of two threads (an HTTP server thread and the main loop) can
 * never land in each other's transaction. STORE_LOCK(st) takes it until the
 * end of the enclosing scope. Internal helpers expect it held. */
struct store *store_lock_(struct store *st);
void store_unlockp_(struct store **st);
/* In a public function that writes only what is not the inventory, after
 * STORE_LOCK(st): the rows it changes are counted as quiet. */
struct store_quiet {
	struct store *st;
	int64_t changes0;
};
void store_quiet_end(struct store_quiet *q);
#define STORE_QUIET(st) \
	_cleanup_(store_quiet_end) struct store_quiet store_quiet_ \
		__attribute__((unused)) = { (st), sqlite3_total_changes64((st)->db) }

#define STORE_LOCK(st) \
	_cleanup_(store_unlockp_) struct store *store_locked_ __attribute__((unused)) = \
		store_lock_(st)

/* A write transaction (BEGIN IMMEDIATE: the write lock is taken at once, so
 * a read-then-write cannot fail half way with SQLITE_BUSY). Declare it with
 * _cleanup_(store_tx_endp): if it has not been committed when it goes out of
 * scope it is rolled back, so every error path changes nothing. */
struct store_tx {
	struct store *st;
	bool open;
	bool durable;              /* synchronous = FULL until it ends */
};
int store_tx_begin(struct store *st, struct store_tx *tx, struct error **err);
/* The same for a change a client is told has been made (tenants,
 * admissions, registrations, releases, throttle decisions): its commit
 * syncs the WAL (PRAGMA synchronous = FULL), so that it survives a power
 * cut, not only a crash of vcpud. The connection's NORMAL (a sync at each
 * checkpoint) is back once it ends. What a tick derives again after a
 * restart (samples, runtime state, pruning) stays NORMAL. */
int store_tx_begin_durable(struct store *st, struct store_tx *tx, struct error **err);
/* A read-only snapshot for reads that take more than one statement (BEGIN
 * is deferred: no write lock). End it with store_tx_endp (a rollback). */
int store_read_begin(struct store *st, struct store_tx *tx, struct error **err);
int store_tx_commit(struct store_tx *tx, struct error **err);
void store_tx_endp(struct store_tx *tx);

/* EIO "CONTEXT: PATH: SQLITE_MESSAGE" from the connection's last error.
 * Returns -1. Call it before anything else touches the connection. */
int store_sql_error(struct store *st, struct error **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The statement for `sql`, from the store's cache: compiled the first time
 * (SQLITE_PREPARE_PERSISTENT), reused afterwards; on failure an EIO error
 * naming `what`. The cache owns it (store_close() finalizes it): declare
 * the variable with _cleanup_stmt_, which resets it and clears its
 * bindings at the end of the scope - never finalize it. SQL texts are keys:
 * pass literals, not text built at run time.
 *
 * A statement is in use from store_prepare() until its reset: a caller
 * that needs the same SQL twice at once (a nested loop) gets a second copy
 * as long as the first has been stepped; bind and step right after
 * preparing, before anything else may prepare the same text. Statements are
 * reset at the end of their scope, which is before the transaction of an
 * outer scope ends: declare the transaction first. */
int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out,
		  const char *what, struct error **err);
/* Reset a cached statement and clear its bindings (NULL: nothing). */
void store_stmt_release(sqlite3_stmt *s);
static inline void store_stmt_releasep(sqlite3_stmt **s)
{
	store_stmt_release(*s);
	*s = NULL;
}
#define _cleanup_stmt_ _cleanup_(store_stmt_releasep)

/* A statement outside the cache (PRAGMAs run once at open), finalized at
 * the end of the scope. */
static inline void store_finalizep(sqlite3_stmt **s)
{
	if (*s)
		sqlite3_finalize(*s);
}
#define _cleanup_stmt_once_ _cleanup_(store_finalizep)

/* Tests: statements in the cache, and compiled by store_prepare() so far. */
size_t store_stmt_cached(struct store *st);
uint64_t store_stmt_compiled(struct store *st);

/* One integer from a statement without parameters (PRAGMA user_version). */
int store_query_int64(struct store *st, const char *sql, int64_t *out, struct error **err);

/* The store's clock, unix milliseconds. */
int64_t store_now_ms(struct store *st);

/* Insert an audit event inside the caller's open transaction. details_json
 * must already be a JSON object text (NULL = "{}"); actor NULL = "vcpud". */
int store_event_insert(struct store *st, int64_t ts_ms, const char *actor,
		       const char *action, const char *target,
		       const char *details_json, struct error **err);

/* A jansson constructor's result, aborting on allocation failure (STYLE.md:
 * no ENOMEM plumbing): store_json(json_pack(...)). */
json_t *store_json(json_t *j);

/* store_event_insert() with the target "KIND/NAME" ("tenant/acme",
 * "vm/web-1") and details given as a JSON object, written compactly with
 * 15 significant digits so that 2.3 stays "2.3". */
int store_audit(struct store *st, int64_t ts_ms, const char *actor, const char *action,
		const char *kind, const char *name, const json_t *details,
		struct error **err);

/* --- shared by the VM and reservation files (caller holds a transaction) --- */

/* 1 and *out (store_reservation_clear() it) when `vm` is admitted, 0 when it
 * is not, -1 on error. */
int store_reservation_read(struct store *st, const char *vm, struct store_reservation *out,
			   struct error **err);
/* Validate and insert a reservation with its "vm.admit" event. */
int store_reservation_insert(struct store *st, const struct store_reservation *r,
			     const char *actor, int64_t now_ms, struct error **err);
/* Delete a reservation with its "vm.unadmit" event (reason in the details
 * when not NULL): 1 deleted, 0 there was none, -1 on error. */
int store_reservation_remove(struct store *st, const char *vm, const char *actor,
			     const char *reason, int64_t now_ms, struct error **err);
/* Every reservation, ordered by VM (store_reservations_free()). */
int store_reservation_rows(struct store *st, struct store_reservation **out, size_t *n,
			   struct error **err);
/* Every tenant with its usage, ordered by name (free()). */
int store_tenant_rows(struct store *st, struct tenant **out, size_t *n, struct error **err);
/* Copy a TEXT column into a fixed buffer; -1 when NULL or too long. */
int store_column_copy(sqlite3_stmt *s, int i, char *buf, size_t size);

/* Tests only: the raw connection (foreign keys on, as the store uses it). */
sqlite3 *store_sqlite(struct store *st);

#endif
