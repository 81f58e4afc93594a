/* store_reservation.c - the admission ledger in SQLite: one reservation per
 * admitted VM (add, read, list, delete). Like store_tenant.c and store_vm.c,
 * each mutation is one write transaction holding its checks, its write and
 * its audit event ("vm.admit", "vm.unadmit"). The placement texts (shares,
 * pcpus) belong to the plan module: only their characters are checked here,
 * so that the store never depends on plan. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/path.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

#define RES_SELECT                                                                 \
	"SELECT vm, tenant, vcpus, memory_bytes, cpu_policy, thread_policy, shares, "  \
	"pcpus, created_at FROM reservations "

static const char *const cpu_policies[] = { "shared", "dedicated" };
static const char *const thread_policies[] = { "prefer", "isolate", "require" };

/* --- validation ------------------------------------------------------------- */

static bool one_of(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

/* True when every character of s is in `allowed` (s NUL-terminated). */
static bool only_chars(const char *s, const char *allowed)
{
	return s[strspn(s, allowed)] == '\0';
}

/* A fixed buffer must hold a terminated string: a caller that filled all of
 * it would make every later strlen() read past its end. */
static bool terminated(const char *buf, size_t size)
{
	return strnlen(buf, size) < size;
}

/* A VM name the caller may put into a message: terminated and valid. */
static int vm_name_check(const struct store_reservation *r, struct error **err)
{
	if (!terminated(r->vm, sizeof(r->vm)))
		return error_set(err, EINVAL, "invalid VM name '%.*s...': longer than %d "
				 "characters", (int)sizeof(r->vm), r->vm, NAME_MAX_LEN);
	return name_check("VM name", r->vm, err);
}

/* The other fields, as the table's CHECKs see them (EINVAL; the messages
 * leave the VM name to the caller's context). */
static int fields_check(const struct store_reservation *r, struct error **err)
{
	if (!terminated(r->tenant, sizeof(r->tenant)))
		return error_set(err, EINVAL, "invalid tenant name '%.*s...': longer than %d "
				 "characters", (int)sizeof(r->tenant), r->tenant, NAME_MAX_LEN);
	if (name_check("tenant name", r->tenant, err) < 0)
		return -1;
	if (r->vcpus < 1 || r->vcpus > VM_VCPUS_MAX)
		return error_set(err, EINVAL, "%" PRIu32 " vCPUs is out of range (1..%d)",
				 r->vcpus, VM_VCPUS_MAX);
	if (r->memory_set && r->memory_bytes <= 0)
		return error_set(err, EINVAL, "memory size %" PRId64 " bytes is not positive",
				 r->memory_bytes);
	if (!terminated(r->cpu_policy, sizeof(r->cpu_policy)) ||
	    !one_of(r->cpu_policy, cpu_policies, ARRAY_SIZE(cpu_policies)))
		return error_set(err, EINVAL, "unknown CPU policy '%.*s' (shared or dedicated)",
				 (int)strnlen(r->cpu_policy, sizeof(r->cpu_policy)),
				 r->cpu_policy);
	if (!terminated(r->thread_policy, sizeof(r->thread_policy)) ||
	    !one_of(r->thread_policy, thread_policies, ARRAY_SIZE(thread_policies)))
		return error_set(err, EINVAL, "unknown thread policy '%.*s' (prefer, isolate "
				 "or require)",
				 (int)strnlen(r->thread_policy, sizeof(r->thread_policy)),
				 r->thread_policy);
	if (!r->shares || !r->shares[0])
		return error_set(err, EINVAL, "its shares are empty (NODE:VCPUS"
				 "[,NODE:VCPUS...])");
	if (strlen(r->shares) > STORE_RES_SHARES_MAX)
		return error_set(err, EINVAL, "its shares are longer than %d characters",
				 STORE_RES_SHARES_MAX);
	if (!only_chars(r->shares, "0123456789:,"))
		return error_set(err, EINVAL, "invalid shares '%.80s': use NODE:VCPUS"
				 "[,NODE:VCPUS...] (digits, ':' and ',')", r->shares);
	if (!r->pcpus)
		return error_set(err, EINVAL, "its pCPU list is missing");
	if (strlen(r->pcpus) > STORE_RES_PCPUS_MAX)
		return error_set(err, EINVAL, "its pCPU list is longer than %d characters",
				 STORE_RES_PCPUS_MAX);
	if (!only_chars(r->pcpus, "0123456789-,"))
		return error_set(err, EINVAL, "invalid pCPU list '%.80s': use a CPU list such "
				 "as 0-3,8 (digits, '-' and ',')", r->pcpus);
	return 0;
}

void store_reservation_clear(struct store_reservation *r)
{
	if (!r)
		return;
	free(r->shares);
	free(r->pcpus);
	r->shares = NULL;
	r->pcpus = NULL;
}

void store_reservations_free(struct store_reservation *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_reservation_clear(&v[i]);
	free(v);
}

/* --- rows ------------------------------------------------------------------- */

static int reservation_from_row(struct store *st, sqlite3_stmt *s,
				struct store_reservation *r, struct error **err)
{
	memset(r, 0, sizeof(*r));
	if (store_column_copy(s, 0, r->vm, sizeof(r->vm)) < 0)
		return error_set(err, EIO, "database %s holds a reservation with an invalid "
				 "VM name", st->path);
	if (store_column_copy(s, 1, r->tenant, sizeof(r->tenant)) < 0 ||
	    store_column_copy(s, 4, r->cpu_policy, sizeof(r->cpu_policy)) < 0 ||
	    store_column_copy(s, 5, r->thread_policy, sizeof(r->thread_policy)) < 0 ||
	    !sqlite3_column_text(s, 6) || !sqlite3_column_text(s, 7))
		return error_set(err, EIO, "database %s: the reservation of VM '%s' has an "
				 "invalid text field", st->path, r->vm);
	r->shares = xstrdup((const char *)sqlite3_column_text(s, 6));
	r->pcpus = xstrdup((const char *)sqlite3_column_text(s, 7));
	int64_t vcpus = sqlite3_column_int64(s, 2);
	if (vcpus < 1 || vcpus > VM_VCPUS_MAX)
		return error_set(err, EIO, "database %s: the reservation of VM '%s' has %"
				 PRId64 " vCPUs (1..%d)", st->path, r->vm, vcpus, VM_VCPUS_MAX);
	r->vcpus = (uint32_t)vcpus;
	if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
		r->memory_set = true;
		r->memory_bytes = sqlite3_column_int64(s, 3);
	}
	r->created_at = sqlite3_column_int64(s, 8);
	/* what the CHECKs hold; a file edited with them off may not */
	_cleanup_error_ struct error *bad = NULL;
	if (vm_name_check(r, &bad) < 0 || fields_check(r, &bad) < 0) {
		store_reservation_clear(r);
		return error_set(err, EIO, "database %s: the reservation of VM '%s' is "
				 "invalid: %s", st->path, r->vm, bad->msg);
	}
	return 0;
}

/* 1 and *out (the caller clears it) when the VM is admitted, 0 when it is
 * not, -1 on error. */
int store_reservation_read(struct store *st, const char *vm, struct store_reservation *out,
			    struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, RES_SELECT "WHERE vm = ?1", &s, "read a reservation", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, vm, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read the reservation of VM '%.80s'", vm);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read the reservation of VM '%.80s'", vm);
	if (reservation_from_row(st, s, out, err) < 0)
		return -1;
	return 1;
}

/* 1 when the tenant exists, 0 when it does not, -1 on error. */
static int tenant_exists(struct store *st, const char *tenant, struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "SELECT 1 FROM tenants WHERE name = ?1", &s,
			  "look a tenant up", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, tenant, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read tenant '%s'", tenant);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read tenant '%s'", tenant);
	return 1;
}

/* --- audit details ------------------------------------------------------------ */

static json_t *reservation_json(const struct store_reservation *r)
{
	return store_json(json_pack(
		"{s:s, s:s, s:I, s:o, s:s, s:s, s:s, s:s}",
		"vm", r->vm,
		"tenant", r->tenant,
		"vcpus", (json_int_t)r->vcpus,
		"memory_bytes", store_json(r->memory_set ? json_integer(r->memory_bytes)
							     : json_null()),
		"cpu_policy", r->cpu_policy,
		"thread_policy", r->thread_policy,
		"shares", r->shares,
		"pcpus", r->pcpus));
}

/* --- public functions ----------------------------------------------------------- */

int store_reservation_insert(struct store *st, const struct store_reservation *r,
			     const char *actor, int64_t now_ms, struct error **err)
{
	if (!r)
		return error_set(err, EINVAL, "cannot admit a VM: no reservation given");
	if (vm_name_check(r, err) < 0)
		return error_wrap(err, "cannot admit VM");
	if (fields_check(r, err) < 0)
		return error_wrap(err, "cannot admit VM '%s'", r->vm);
	int found = tenant_exists(st, r->tenant, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%s'", r->tenant);
	_cleanup_(store_reservation_clear) struct store_reservation cur = { 0 };
	found = store_reservation_read(st, r->vm, &cur, err);
	if (found < 0)
		return -1;
	if (found)
		return error_set(err, EEXIST, "VM '%s' is already admitted", r->vm);

	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "INSERT INTO reservations (vm, tenant, vcpus, memory_bytes, "
			  "cpu_policy, thread_policy, shares, pcpus, created_at) VALUES "
			  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &s, "admit a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, r->vm, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, r->tenant, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, r->vcpus) != SQLITE_OK ||
	    (r->memory_set ? sqlite3_bind_int64(s, 4, r->memory_bytes)
			   : sqlite3_bind_null(s, 4)) != SQLITE_OK ||
	    sqlite3_bind_text(s, 5, r->cpu_policy, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 6, r->thread_policy, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 7, r->shares, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 8, r->pcpus, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, now_ms / 1000) != SQLITE_OK)
		return store_sql_error(st, err, "cannot admit VM '%s'", r->vm);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return error_set(err, EEXIST, "VM '%s' is already admitted", r->vm);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return error_set(err, ENOENT, "no tenant '%s'", r->tenant);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return error_set(err, EINVAL, "cannot admit VM '%s': the database refused it: "
				 "%s", r->vm, sqlite3_errmsg(st->db));
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot admit VM '%s'", r->vm);

	/* log what was stored, not what was asked for */
	store_reservation_clear(&cur);
	if (store_reservation_read(st, r->vm, &cur, err) != 1)
		return error_set(err, EIO, "cannot admit VM '%s': it is not there after the "
				 "insert", r->vm);
	json_auto_t *details = reservation_json(&cur);
	return store_audit(st, now_ms, actor, "vm.admit", "vm", r->vm, details, err);
}

int store_reservation_add(struct store *st, const struct store_reservation *r,
			  const char *actor, struct error **err)
{
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot admit VM '%s'", r ? r->vm : "?");
	if (store_reservation_insert(st, r, actor, store_now_ms(st), err) < 0)
		return -1;
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot admit VM '%s'", r->vm);
	return 0;
}

int store_reservation_rows(struct store *st, struct store_reservation **out, size_t *n,
			   struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, RES_SELECT "ORDER BY vm", &s, "list reservations", err) < 0)
		return -1;
	struct store_reservation *v = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		if (reservation_from_row(st, s, &v[count], err) < 0) {
			store_reservations_free(v, count);
			return -1;
		}
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_reservations_free(v, count);
		return store_sql_error(st, err, "cannot list reservations");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_reservation_list(struct store *st, struct store_reservation **out, size_t *n,
			   struct error **err)
{
	STORE_LOCK(st);
	return store_reservation_rows(st, out, n, err);
}

int store_reservation_get(struct store *st, const char *vm, struct store_reservation *out,
			  struct error **err)
{
	if (!vm)
		return error_set(err, EINVAL, "cannot read a reservation: no VM name given");
	STORE_LOCK(st);
	struct store_reservation r;
	int found = store_reservation_read(st, vm, &r, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "VM '%.80s' is not admitted", vm);
	*out = r;
	return 0;
}

int store_reservation_remove(struct store *st, const char *vm, const char *actor,
			     const char *reason, int64_t now_ms, struct error **err)
{
	_cleanup_(store_reservation_clear) struct store_reservation old = { 0 };
	int found = store_reservation_read(st, vm, &old, err);
	if (found <= 0)
		return found;
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "DELETE FROM reservations WHERE vm = ?1", &s,
			  "unadmit a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, vm, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot unadmit VM '%s'", vm);
	json_auto_t *details = reservation_json(&old);
	if (reason)
		json_object_set_new(details, "reason", store_json(json_string(reason)));
	if (store_audit(st, now_ms, actor, "vm.unadmit", "vm", vm, details, err) < 0)
		return -1;
	return 1;
}

int store_reservation_delete(struct store *st, const char *vm, const char *actor,
			     const char *reason, struct error **err)
{
	if (!vm)
		return error_set(err, EINVAL, "cannot unadmit a VM: no name given");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot unadmit VM '%.80s'", vm);
	int found = store_reservation_remove(st, vm, actor, reason, store_now_ms(st), err);
	if (found < 0)
		return error_wrap(err, "cannot unadmit VM '%s'", vm);
	if (!found)
		return error_set(err, ENOENT, "VM '%.80s' is not admitted", vm);
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot unadmit VM '%s'", vm);
	return 0;
}
