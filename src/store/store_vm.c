/* store_vm.c - VMs in SQLite: registration (with its admission reservation
 * in the same transaction), reads with their vCPU threads, the runtime the
 * lifecycle records (state, source, pid + start time, threads), release,
 * and the one-snapshot inventory the control loop reads each tick. Like
 * store_tenant.c, every mutation is one write transaction holding its
 * checks, its writes and its audit events ("vm.register", "vm.admit",
 * "vm.state", "vm.release", "vm.unadmit"). Quotas are not checked here:
 * admission (src/plan/admit.c through src/registry/) decides them against
 * the reservations. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

#define VM_SELECT                                                                  \
	"SELECT name, tenant, pid, vcpus, memory_bytes, state, source, uuid, "         \
	"created_at, updated_at, origin_cgroup, start_time, state_since_ms, weight FROM vms "

/* The threads whose tid is known, in index order (what vm->threads holds). */
#define VCPUS_SELECT "SELECT idx, tid FROM vcpus WHERE vm = ?1 AND tid IS NOT NULL ORDER BY idx"
/* Those of every VM at once, in the order of VM_SELECT "ORDER BY name". */
#define VCPUS_ALL_SELECT \
	"SELECT vm, idx, tid FROM vcpus WHERE tid IS NOT NULL ORDER BY vm, idx"

/* --- rows ------------------------------------------------------------------ */

static int vm_from_row(struct store *st, sqlite3_stmt *s, struct vm *v, struct error **err)
{
	memset(v, 0, sizeof(*v));
	if (store_column_copy(s, 0, v->name, sizeof(v->name)) < 0)
		return error_set(err, EIO, "database %s holds a VM with an invalid name",
				 st->path);
	if (store_column_copy(s, 1, v->tenant, sizeof(v->tenant)) < 0)
		return error_set(err, EIO, "database %s: VM '%s' has an invalid tenant name",
				 st->path, v->name);
	v->pid = (pid_t)sqlite3_column_int64(s, 2); /* NULL reads as 0: none */
	int64_t vcpus = sqlite3_column_int64(s, 3);
	if (vcpus < 1 || vcpus > VM_VCPUS_MAX)
		return error_set(err, EIO, "database %s: VM '%s' has %" PRId64 " vCPUs "
				 "(1..%d)", st->path, v->name, vcpus, VM_VCPUS_MAX);
	v->vcpus = (uint32_t)vcpus;
	if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
		v->memory_set = true;
		v->memory_bytes = sqlite3_column_int64(s, 4);
	}
	const char *state = (const char *)sqlite3_column_text(s, 5);
	if (vm_state_from_string(state, &v->state, NULL) < 0)
		return error_set(err, EIO, "database %s: VM '%s' has an unknown state '%s'",
				 st->path, v->name, state ? state : "");
	const char *source = (const char *)sqlite3_column_text(s, 6);
	if (vm_source_from_string(source, &v->source, NULL) < 0)
		return error_set(err, EIO, "database %s: VM '%s' has an unknown source '%s'",
				 st->path, v->name, source ? source : "");
	if (sqlite3_column_type(s, 7) != SQLITE_NULL &&
	    store_column_copy(s, 7, v->uuid, sizeof(v->uuid)) < 0)
		return error_set(err, EIO, "database %s: VM '%s' has an invalid UUID",
				 st->path, v->name);
	v->created_at = sqlite3_column_int64(s, 8);
	v->updated_at = sqlite3_column_int64(s, 9);
	if (sqlite3_column_type(s, 10) != SQLITE_NULL &&
	    store_column_copy(s, 10, v->origin_cgroup, sizeof(v->origin_cgroup)) < 0)
		return error_set(err, EIO, "database %s: VM '%s' has an invalid origin cgroup",
				 st->path, v->name);
	int64_t start = sqlite3_column_int64(s, 11); /* NULL reads as 0: unknown */
	v->start_time = start > 0 ? (uint64_t)start : 0;
	v->state_since_ms = sqlite3_column_int64(s, 12);
	int64_t w = sqlite3_column_int64(s, 13); /* NULL reads as 0: by vCPUs */
	if (w < 0 || w > TENANT_WEIGHT_MAX)
		return error_set(err, EIO, "database %s: VM '%s' has weight %" PRId64 " (%d..%d)",
				 st->path, v->name, w, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX);
	v->weight = (uint32_t)w;
	return 0;
}

/* Fill v->threads with a prepared VCPUS_SELECT (reset and rebound here). */
static int threads_read(struct store *st, sqlite3_stmt *s, struct vm *v, struct error **err)
{
	sqlite3_reset(s);
	if (sqlite3_bind_text(s, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read the vCPUs of VM '%s'", v->name);
	_cleanup_free_ struct vm_vcpu *t = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			t = xrealloc(t, cap * sizeof(*t));
		}
		t[count].index = (unsigned)sqlite3_column_int64(s, 0);
		t[count].tid = (pid_t)sqlite3_column_int64(s, 1);
		count++;
	}
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot read the vCPUs of VM '%s'", v->name);
	sqlite3_reset(s);
	vm_clear(v);
	v->threads = steal_ptr(&t);
	v->n_threads = count;
	return 0;
}

/* 1 and *out (with threads; the caller vm_clear()s) when the VM exists, 0
 * when it does not, -1 on error. */
static int vm_read(struct store *st, const char *name, struct vm *out, struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, VM_SELECT "WHERE name = ?1", &s, "read a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read VM '%.80s'", name);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read VM '%.80s'", name);
	struct vm v;
	if (vm_from_row(st, s, &v, err) < 0)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *ts = NULL;
	if (store_prepare(st, VCPUS_SELECT, &ts, "read the vCPUs of a VM", err) < 0 ||
	    threads_read(st, ts, &v, err) < 0)
		return -1;
	*out = v;
	return 1;
}

/* Run a statement whose parameters are already bound; SQLITE_DONE or -1. */
static int step_done(struct store *st, sqlite3_stmt *s, const char *what, const char *name,
		     struct error **err)
{
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot %s VM '%s'", what, name);
	return 0;
}

/* --- audit details ------------------------------------------------------------ */

static json_t *pid_json(pid_t pid)
{
	return store_json(pid > 0 ? json_integer(pid) : json_null());
}

static json_t *weight_json(uint32_t w)
{
	return store_json(w ? json_integer(w) : json_null());
}

static json_t *vm_json(const struct vm *v)
{
	json_t *threads = store_json(json_array());
	for (size_t i = 0; i < v->n_threads; i++)
		json_array_append_new(threads, store_json(json_pack(
			"{s:I, s:I}", "index", (json_int_t)v->threads[i].index,
			"tid", (json_int_t)v->threads[i].tid)));
	return store_json(json_pack(
		"{s:s, s:s, s:o, s:I, s:o, s:s, s:s, s:o, s:o, s:o}",
		"name", v->name,
		"tenant", v->tenant,
		"pid", pid_json(v->pid),
		"vcpus", (json_int_t)v->vcpus,
		"memory_bytes", store_json(v->memory_set ? json_integer(v->memory_bytes)
							     : json_null()),
		"state", vm_state_to_string(v->state),
		"source", vm_source_to_string(v->source),
		"uuid", store_json(v->uuid[0] ? json_string(v->uuid) : json_null()),
		"threads", threads, "weight", weight_json(v->weight)));
}

/* --- registration checks --------------------------------------------------------- */

/* 1 when the tenant exists, 0 when it does not, -1 on error. */
static int tenant_known(struct store *st, const char *tenant, struct error **err)
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

/* The name of a VM matching `sql` (one bound value ?1, text or integer,
 * and an optional ?2 text: a VM name to leave out) into `name`: 1 found, 0
 * none, -1 error. */
static int vm_find(struct store *st, const char *sql, const char *text, int64_t num,
		   const char *except, char name[static NAME_MAX_LEN + 1], struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, sql, &s, "look a VM up", err) < 0)
		return -1;
	if ((text ? sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC)
		  : sqlite3_bind_int64(s, 1, num)) != SQLITE_OK ||
	    (sqlite3_bind_parameter_count(s) >= 2 &&
	     sqlite3_bind_text(s, 2, except ? except : "", -1, SQLITE_STATIC) != SQLITE_OK))
		return store_sql_error(st, err, "cannot look a VM up");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot look a VM up");
	if (store_column_copy(s, 0, name, NAME_MAX_LEN + 1) < 0)
		snprintf(name, NAME_MAX_LEN + 1, "?");
	return 1;
}

/* EEXIST when a live VM other than `self` holds `pid`. One PID is one
 * process: two VMs naming it would put one process in two places. */
static int pid_free(struct store *st, pid_t pid, const char *self, struct error **err)
{
	if (pid <= 0)
		return 0;
	char other[NAME_MAX_LEN + 1];
	int found = vm_find(st, "SELECT name FROM vms WHERE pid = ?1 AND state <> 'gone' "
			    "AND name <> ?2 ORDER BY name LIMIT 1", NULL, pid, self, other, err);
	if (found < 0)
		return -1;
	if (found)
		return error_set(err, EEXIST, "process %d is already registered as VM '%s'",
				 (int)pid, other);
	return 0;
}

static int thread_cmp(const void *a, const void *b)
{
	unsigned x = ((const struct vm_vcpu *)a)->index, y = ((const struct vm_vcpu *)b)->index;
	return x < y ? -1 : x > y;
}

/* Replace the tids of v's vCPU rows by v->threads (NULL for the others).
 * An upsert, so that a VM whose rows are missing gets them. */
static int threads_write(struct store *st, const struct vm *v, struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *clr = NULL, *set = NULL;
	if (store_prepare(st, "UPDATE vcpus SET tid = NULL WHERE vm = ?1 AND tid IS NOT NULL",
			  &clr, "update the vCPUs of a VM", err) < 0 ||
	    store_prepare(st, "INSERT INTO vcpus (vm, idx, tid) VALUES (?1, ?2, ?3) "
			  "ON CONFLICT (vm, idx) DO UPDATE SET tid = excluded.tid", &set,
			  "update the vCPUs of a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(clr, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot update the vCPUs of VM '%s'", v->name);
	if (step_done(st, clr, "update the vCPUs of", v->name, err) < 0)
		return -1;
	for (size_t i = 0; i < v->n_threads; i++) {
		sqlite3_reset(set);
		if (sqlite3_bind_text(set, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(set, 2, v->threads[i].index) != SQLITE_OK ||
		    sqlite3_bind_int64(set, 3, v->threads[i].tid) != SQLITE_OK)
			return store_sql_error(st, err, "cannot update the vCPUs of VM '%s'",
					       v->name);
		if (step_done(st, set, "update the vCPUs of", v->name, err) < 0)
			return -1;
	}
	return 0;
}

/* The VM row and one vCPU row per vCPU (tids where known); checks first. */
static int vm_insert(struct store *st, const struct vm *v, int64_t now_ms, struct error **err)
{
	size_t uuid_len = strnlen(v->uuid, sizeof(v->uuid));
	int found = tenant_known(st, v->tenant, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%s'", v->tenant);
	char other[NAME_MAX_LEN + 1];
	found = vm_find(st, "SELECT name FROM vms WHERE name = ?1", v->name, 0, NULL, other, err);
	if (found < 0)
		return -1;
	if (found)
		return error_set(err, EEXIST, "VM '%s' already exists", v->name);
	if (pid_free(st, v->pid, v->name, err) < 0)
		return -1;
	if (uuid_len) {
		found = vm_find(st, "SELECT name FROM vms WHERE uuid = ?1", v->uuid, 0, NULL, other,
				err);
		if (found < 0)
			return -1;
		if (found)
			return error_set(err, EEXIST, "UUID %s is already registered as VM '%s'",
					 v->uuid, other);
	}

	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "INSERT INTO vms (name, tenant, pid, vcpus, memory_bytes, "
			  "state, source, uuid, created_at, updated_at, origin_cgroup, start_time, "
			  "state_since_ms, weight) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, "
			  "?10, ?11, ?12, ?13)", &s, "register a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, v->tenant, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (v->pid > 0 ? sqlite3_bind_int64(s, 3, v->pid) : sqlite3_bind_null(s, 3)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, v->vcpus) != SQLITE_OK ||
	    (v->memory_set ? sqlite3_bind_int64(s, 5, v->memory_bytes)
			   : sqlite3_bind_null(s, 5)) != SQLITE_OK ||
	    sqlite3_bind_text(s, 6, vm_state_to_string(v->state), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 7, vm_source_to_string(v->source), -1, SQLITE_STATIC) != SQLITE_OK ||
	    (uuid_len ? sqlite3_bind_text(s, 8, v->uuid, (int)uuid_len, SQLITE_STATIC)
		      : sqlite3_bind_null(s, 8)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, now_ms / 1000) != SQLITE_OK ||
	    (v->origin_cgroup[0] ? sqlite3_bind_text(s, 10, v->origin_cgroup, -1, SQLITE_STATIC)
				 : sqlite3_bind_null(s, 10)) != SQLITE_OK ||
	    (v->start_time && v->start_time <= INT64_MAX
		     ? sqlite3_bind_int64(s, 11, (int64_t)v->start_time)
		     : sqlite3_bind_null(s, 11)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 12, now_ms) != SQLITE_OK ||
	    (v->weight ? sqlite3_bind_int64(s, 13, v->weight) : sqlite3_bind_null(s, 13)) !=
		    SQLITE_OK)
		return store_sql_error(st, err, "cannot register VM '%s'", v->name);
	int rc = sqlite3_step(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return error_set(err, EINVAL, "cannot register VM '%s': the database refused "
				 "it: %s", v->name, sqlite3_errmsg(st->db));
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot register VM '%s'", v->name);

	_cleanup_stmt_ sqlite3_stmt *c = NULL;
	if (store_prepare(st, "INSERT INTO vcpus (vm, idx, tid) VALUES (?1, ?2, ?3)", &c,
			  "add the vCPUs of a VM", err) < 0)
		return -1;
	size_t t = 0;
	for (uint32_t idx = 0; idx < v->vcpus; idx++) {
		pid_t tid = 0;
		if (t < v->n_threads && v->threads[t].index == idx)
			tid = v->threads[t++].tid;
		sqlite3_reset(c);
		if (sqlite3_bind_text(c, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(c, 2, idx) != SQLITE_OK ||
		    (tid > 0 ? sqlite3_bind_int64(c, 3, tid) : sqlite3_bind_null(c, 3)) != SQLITE_OK)
			return store_sql_error(st, err, "cannot add the vCPUs of VM '%s'", v->name);
		if (step_done(st, c, "add the vCPUs of", v->name, err) < 0)
			return -1;
	}
	return 0;
}

/* --- public functions ---------------------------------------------------------------- */

int store_vm_register(struct store *st, const struct store_reservation *admit,
		      const struct vm *v, const char *actor, struct error **err)
{
	if (!v)
		return error_set(err, EINVAL, "cannot register a VM: no VM given");
	if (vm_validate(v, err) < 0)
		return error_wrap(err, "cannot register VM");
	size_t uuid_len = strnlen(v->uuid, sizeof(v->uuid));
	if (uuid_len != 0 && uuid_len != VM_UUID_LEN)
		return error_set(err, EINVAL, "cannot register VM '%s': UUID '%.*s' is not in "
				 "the 8-4-4-4-12 form", v->name, (int)uuid_len, v->uuid);
	if (admit && (strcmp(admit->vm, v->name) != 0 || strcmp(admit->tenant, v->tenant) != 0))
		return error_set(err, EINVAL, "cannot register VM '%s': its reservation is for "
				 "VM '%s' of tenant '%s'", v->name, admit->vm, admit->tenant);

	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot register VM '%s'", v->name);
	int64_t now_ms = store_now_ms(st);
	if (admit && store_reservation_insert(st, admit, actor, now_ms, err) < 0)
		return error_wrap(err, "cannot register VM '%s'", v->name);
	if (vm_insert(st, v, now_ms, err) < 0)
		return -1;
	/* log what was stored, not what was asked for */
	_cleanup_(vm_clear) struct vm cur = { 0 };
	if (vm_read(st, v->name, &cur, err) != 1)
		return error_set(err, EIO, "cannot register VM '%s': it is not there after the "
				 "insert", v->name);
	json_auto_t *details = vm_json(&cur);
	if (store_audit(st, now_ms, actor, "vm.register", "vm", v->name, details, err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot register VM '%s'", v->name);
	return 0;
}

int store_vm_create(struct store *st, const struct vm *v, const char *actor,
		    struct error **err)
{
	return store_vm_register(st, NULL, v, actor, err);
}

int store_vm_get(struct store *st, const char *name, struct vm *out, struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot read a VM: no name given");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_read_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot read VM '%.80s'", name);
	struct vm v;
	int found = vm_read(st, name, &v, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no VM '%.80s'", name);
	*out = v;
	return 0;
}

int store_vm_get_by_pid(struct store *st, pid_t pid, struct vm *out, struct error **err)
{
	if (pid <= 0)
		return error_set(err, EINVAL, "cannot look a VM up by process: no process given");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_read_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot look up the VM of process %d", (int)pid);
	/* vms_pid: the rows of this pid, not the table */
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, VM_SELECT "WHERE pid = ?1 AND state NOT IN ('gone', 'stopped') "
			  "ORDER BY name LIMIT 1", &s, "look a VM up by process", err) < 0)
		return -1;
	if (sqlite3_bind_int64(s, 1, pid) != SQLITE_OK)
		return store_sql_error(st, err, "cannot look up the VM of process %d", (int)pid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return error_set(err, ENOENT, "no live VM holds process %d", (int)pid);
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot look up the VM of process %d", (int)pid);
	struct vm v;
	if (vm_from_row(st, s, &v, err) < 0)
		return -1;
	*out = v;
	return 0;
}

/* Every VM ordered by name, with threads: two statements however many VMs
 * there are (the VMs, then every known thread, merged by name). The caller
 * holds a read transaction. */
static int vm_rows(struct store *st, struct vm **out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *s = NULL, *ts = NULL;
	if (store_prepare(st, VM_SELECT "ORDER BY name", &s, "list VMs", err) < 0 ||
	    store_prepare(st, VCPUS_ALL_SELECT, &ts, "read the vCPUs of the VMs", err) < 0)
		return -1;
	struct vm *v = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		if (vm_from_row(st, s, &v[count], err) < 0) {
			vm_list_free(v, count);
			return -1;
		}
		count++;
	}
	if (rc != SQLITE_DONE) {
		vm_list_free(v, count);
		return store_sql_error(st, err, "cannot list VMs");
	}
	/* threads: both lists are ordered by VM name (BINARY collation, the
	 * order of strcmp for these ASCII names) */
	size_t i = 0;
	struct vm_vcpu *t = NULL;
	size_t nt = 0, tcap = 0;
	while ((rc = sqlite3_step(ts)) == SQLITE_ROW) {
		const char *vm = (const char *)sqlite3_column_text(ts, 0);
		if (!vm)
			continue;
		while (i < count && strcmp(v[i].name, vm) < 0) {
			v[i].threads = t;
			v[i].n_threads = nt;
			t = NULL;
			nt = tcap = 0;
			i++;
		}
		if (i == count || strcmp(v[i].name, vm) != 0)
			continue; /* a thread row without its VM: foreign keys forbid it */
		if (nt == tcap) {
			tcap = tcap ? tcap * 2 : 8;
			t = xrealloc(t, tcap * sizeof(*t));
		}
		t[nt].index = (unsigned)sqlite3_column_int64(ts, 1);
		t[nt].tid = (pid_t)sqlite3_column_int64(ts, 2);
		nt++;
	}
	if (i < count) {
		v[i].threads = t;
		v[i].n_threads = nt;
		t = NULL;
	}
	free(t);
	if (rc != SQLITE_DONE) {
		vm_list_free(v, count);
		return store_sql_error(st, err, "cannot read the vCPUs of the VMs");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_vm_list(struct store *st, struct vm **out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_read_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot list VMs");
	return vm_rows(st, out, n, err);
}

/* Begin a write transaction (durable: synced at commit) and read VM `name`
 * into *old: 0, or -1 (ENOENT: no such VM). The caller holds the lock. */
static int vm_change_begin(struct store *st, struct store_tx *tx, bool durable,
			   const char *name, const char *what, struct vm *old, struct error **err)
{
	if ((durable ? store_tx_begin_durable(st, tx, err) : store_tx_begin(st, tx, err)) < 0)
		return error_wrap(err, "cannot %s VM '%.80s'", what, name);
	int found = vm_read(st, name, old, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no VM '%.80s'", name);
	return 0;
}

int store_vm_update_runtime(struct store *st, const char *name,
			    const struct store_vm_runtime *rt,
			    const struct store_reservation *admit, struct error **err)
{
	if (!name || !rt)
		return error_set(err, EINVAL, "cannot update a VM: no %s given",
				 name ? "runtime" : "name");
	if (rt->n_threads && !rt->threads)
		return error_set(err, EINVAL, "cannot update VM '%.80s': no threads given",
				 name);
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	_cleanup_(vm_clear) struct vm old = { 0 };
	if (vm_change_begin(st, &tx, false, name, "update", &old, err) < 0)
		return -1;

	/* The new runtime, in the stored form: sorted by index, unknown tids
	 * (0) left out as the table keeps them NULL. */
	_cleanup_(vm_clear) struct vm cur = { 0 };
	cur = old;
	cur.threads = NULL;
	cur.n_threads = 0;
	cur.state = rt->state;
	cur.source = rt->source;
	cur.pid = rt->pid;
	cur.start_time = rt->pid > 0 ? rt->start_time : 0;
	if (rt->n_threads) {
		cur.threads = xmalloc(rt->n_threads * sizeof(*rt->threads));
		memcpy(cur.threads, rt->threads, rt->n_threads * sizeof(*rt->threads));
		qsort(cur.threads, rt->n_threads, sizeof(*rt->threads), thread_cmp);
		cur.n_threads = rt->n_threads;
	}
	if (vm_validate(&cur, err) < 0)
		return error_wrap(err, "cannot update VM '%s'", name);
	if (cur.state == VM_STATE_ADMITTED)
		return error_set(err, EINVAL, "cannot update VM '%s': '%s' is not a state of a "
				 "VM row", name, vm_state_to_string(cur.state));
	size_t kept = 0;
	for (size_t i = 0; i < cur.n_threads; i++)
		if (cur.threads[i].tid > 0)
			cur.threads[kept++] = cur.threads[i];
	cur.n_threads = kept;

	bool threads_changed = !vm_threads_equal(old.threads, old.n_threads, cur.threads,
					      cur.n_threads);
	if (old.state == cur.state && old.pid == cur.pid && old.source == cur.source &&
	    old.start_time == cur.start_time && !threads_changed && !admit)
		return 0; /* nothing to write, nothing to log */
	if (cur.state != VM_STATE_GONE && pid_free(st, cur.pid, name, err) < 0)
		return error_wrap(err, "cannot update VM '%s'", name);

	int64_t now_ms = store_now_ms(st);
	if (admit && store_reservation_insert(st, admit, NULL, now_ms, err) < 0)
		return error_wrap(err, "cannot update VM '%s'", name);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "UPDATE vms SET state = ?2, pid = ?3, source = ?4, "
			  "start_time = ?5, updated_at = max(?6, created_at), "
			  "state_since_ms = CASE WHEN state = ?2 THEN state_since_ms ELSE ?7 END "
			  "WHERE name = ?1", &s, "update a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, vm_state_to_string(cur.state), -1, SQLITE_STATIC) != SQLITE_OK ||
	    (cur.pid > 0 ? sqlite3_bind_int64(s, 3, cur.pid) : sqlite3_bind_null(s, 3)) != SQLITE_OK ||
	    sqlite3_bind_text(s, 4, vm_source_to_string(cur.source), -1, SQLITE_STATIC) != SQLITE_OK ||
	    (cur.start_time && cur.start_time <= INT64_MAX
		     ? sqlite3_bind_int64(s, 5, (int64_t)cur.start_time)
		     : sqlite3_bind_null(s, 5)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, now_ms / 1000) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, now_ms) != SQLITE_OK)
		return store_sql_error(st, err, "cannot update VM '%s'", name);
	if (step_done(st, s, "update", name, err) < 0)
		return -1;
	if (threads_changed && threads_write(st, &cur, err) < 0)
		return -1;

	if (old.state != cur.state) {
		json_auto_t *details = store_json(json_pack(
			"{s:s, s:s, s:o}", "old", vm_state_to_string(old.state),
			"new", vm_state_to_string(cur.state), "pid", pid_json(cur.pid)));
		if (old.pid != cur.pid)
			json_object_set_new(details, "old_pid", pid_json(old.pid));
		if (old.source != cur.source)
			json_object_set_new(details, "source",
					    store_json(json_string(vm_source_to_string(cur.source))));
		if (store_audit(st, now_ms, NULL, "vm.state", "vm", name, details, err) < 0)
			return error_wrap(err, "cannot update VM '%s'", name);
	}
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot update VM '%s'", name);
	return 1;
}

int store_vm_set_weight(struct store *st, const char *name, uint32_t weight,
			const char *actor, struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot change a VM: no name given");
	if (weight && (weight < TENANT_WEIGHT_MIN || weight > TENANT_WEIGHT_MAX))
		return error_set(err, EINVAL, "cannot change VM '%.80s': weight %u is out of "
				 "range (%d..%d)", name, weight, TENANT_WEIGHT_MIN,
				 TENANT_WEIGHT_MAX);
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	_cleanup_(vm_clear) struct vm old = { 0 };
	if (vm_change_begin(st, &tx, true, name, "change", &old, err) < 0)
		return -1;
	if (old.weight == weight)
		return 0; /* the same: nothing to write, nothing to log */
	int64_t now_ms = store_now_ms(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "UPDATE vms SET weight = ?2, updated_at = max(?3, created_at) "
			  "WHERE name = ?1", &s, "change a VM", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (weight ? sqlite3_bind_int64(s, 2, weight) : sqlite3_bind_null(s, 2)) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, now_ms / 1000) != SQLITE_OK)
		return store_sql_error(st, err, "cannot change VM '%s'", name);
	if (step_done(st, s, "change", name, err) < 0)
		return -1;
	json_auto_t *details = store_json(json_pack("{s:o, s:o}", "old_weight",
						    weight_json(old.weight), "weight",
						    weight_json(weight)));
	if (store_audit(st, now_ms, actor, "vm.set", "vm", name, details, err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot change VM '%s'", name);
	return 1;
}

int store_vm_delete(struct store *st, const char *name, const char *actor,
		    struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot release a VM: no name given");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot release VM '%.80s'", name);
	_cleanup_(vm_clear) struct vm old = { 0 };
	int found = vm_read(st, name, &old, err);
	if (found < 0)
		return -1;
	int64_t now_ms = store_now_ms(st);
	if (found) {
		/* its vcpus and vm_samples rows go with it (ON DELETE CASCADE) */
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		if (store_prepare(st, "DELETE FROM vms WHERE name = ?1", &s, "release a VM",
				  err) < 0)
			return -1;
		if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
			return store_sql_error(st, err, "cannot release VM '%s'", name);
		if (step_done(st, s, "release", name, err) < 0)
			return -1;
		json_auto_t *details = vm_json(&old);
		if (store_audit(st, now_ms, actor, "vm.release", "vm", name, details, err) < 0)
			return error_wrap(err, "cannot release VM '%s'", name);
	}
	int unadmitted = store_reservation_remove(st, name, actor, "released", now_ms, err);
	if (unadmitted < 0)
		return error_wrap(err, "cannot release VM '%s'", name);
	if (!found && !unadmitted)
		return error_set(err, ENOENT, "no VM or reservation '%.80s'", name);
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot release VM '%s'", name);
	return 0;
}

/* --- the inventory ------------------------------------------------------------------- */

int store_inventory_read(struct store *st, struct store_inventory *out, struct error **err)
{
	memset(out, 0, sizeof(*out));
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_read_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot read the inventory");
	if (store_tenant_rows(st, &out->tenants, &out->n_tenants, err) < 0 ||
	    vm_rows(st, &out->vms, &out->n_vms, err) < 0 ||
	    store_reservation_rows(st, &out->res, &out->n_res, err) < 0) {
		store_inventory_clear(out);
		return error_wrap(err, "cannot read the inventory");
	}
	return 0;
}

void store_inventory_clear(struct store_inventory *inv)
{
	if (!inv)
		return;
	free(inv->tenants);
	vm_list_free(inv->vms, inv->n_vms);
	store_reservations_free(inv->res, inv->n_res);
	memset(inv, 0, sizeof(*inv));
}
