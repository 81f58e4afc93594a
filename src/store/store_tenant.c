/* store_tenant.c - tenants in SQLite: create, read, list, update, delete.
 * Each mutation is one write transaction that checks, writes and appends its
 * audit event ("tenant.create", "tenant.update", "tenant.delete") together,
 * so a refused request leaves both the tenant and the log as they were.
 * Reads carry the usage of the tenant's VMs (vcpus_used, vm_count). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/tenant.h"
#include "vcpud/util.h"

/* One row per tenant with its usage. vcpus_used is what its admission
 * reservations hold (the one ledger quotas are counted against: admitted
 * VMs, running or not; a gone VM's reservation is freed after its grace
 * period); vm_count counts its VM rows, gone ones included (a gone VM
 * still blocks the tenant's deletion until released). */
#define TENANT_SELECT                                                              \
	"SELECT t.name, t.vcpus, t.weight, t.cpu_max_cores, t.memory_bytes, t.class, " \
	"t.created_at, t.updated_at, "                                                 \
	"(SELECT coalesce(sum(r.vcpus), 0) FROM reservations AS r "                    \
	" WHERE r.tenant = t.name), "                                                  \
	"(SELECT count(*) FROM vms AS v WHERE v.tenant = t.name) "                     \
	"FROM tenants AS t "

/* The same columns without the usage (0, 0): a read that does not grow
 * with the tenant's VMs, for admission (which counts use in memory). */
#define TENANT_SELECT_LIMITS                                                       \
	"SELECT t.name, t.vcpus, t.weight, t.cpu_max_cores, t.memory_bytes, t.class, " \
	"t.created_at, t.updated_at, 0, 0 FROM tenants AS t "

/* The column layout ?1..?7 shared by the INSERT and the UPDATE. */
#define TENANT_INSERT                                                              \
	"INSERT INTO tenants (name, vcpus, weight, cpu_max_cores, memory_bytes, "      \
	"class, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
#define TENANT_UPDATE                                                              \
	"UPDATE tenants SET vcpus = ?2, weight = ?3, cpu_max_cores = ?4, "             \
	"memory_bytes = ?5, class = ?6, updated_at = max(?7, created_at) "             \
	"WHERE name = ?1"

static uint32_t clamp_u32(int64_t v)
{
	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int tenant_from_row(struct store *st, sqlite3_stmt *s, struct tenant *t,
			   struct error **err)
{
	tenant_init(t);
	const char *name = (const char *)sqlite3_column_text(s, 0);
	if (!name || strlen(name) > NAME_MAX_LEN)
		return error_set(err, EIO, "database %s holds a tenant with an invalid name",
				 st->path);
	memcpy(t->name, name, strlen(name) + 1);
	t->vcpus = clamp_u32(sqlite3_column_int64(s, 1));
	t->weight = clamp_u32(sqlite3_column_int64(s, 2));
	if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
		t->cpu_max_set = true;
		t->cpu_max_cores = sqlite3_column_double(s, 3);
	}
	if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
		t->memory_set = true;
		t->memory_bytes = sqlite3_column_int64(s, 4);
	}
	const char *cls = (const char *)sqlite3_column_text(s, 5);
	if (tenant_class_from_string(cls, &t->class_, NULL) < 0)
		return error_set(err, EIO, "database %s: tenant '%s' has an unknown class '%s'",
				 st->path, t->name, cls ? cls : "");
	t->created_at = sqlite3_column_int64(s, 6);
	t->updated_at = sqlite3_column_int64(s, 7);
	t->vcpus_used = clamp_u32(sqlite3_column_int64(s, 8));
	t->vm_count = clamp_u32(sqlite3_column_int64(s, 9));
	return 0;
}

/* 1 and *out when the tenant exists, 0 when it does not, -1 on error. */
static int tenant_read_sql(struct store *st, const char *sql, const char *name,
			   struct tenant *out, struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, sql, &s, "read a tenant", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read tenant '%.80s'", name);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read tenant '%.80s'", name);
	if (tenant_from_row(st, s, out, err) < 0)
		return -1;
	return 1;
}

static int tenant_read(struct store *st, const char *name, struct tenant *out,
		       struct error **err)
{
	return tenant_read_sql(st, TENANT_SELECT "WHERE t.name = ?1", name, out, err);
}

static int bind_tenant(sqlite3_stmt *s, const struct tenant *t, int64_t now_s)
{
	if (sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, t->vcpus) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, t->weight) != SQLITE_OK ||
	    (t->cpu_max_set ? sqlite3_bind_double(s, 4, t->cpu_max_cores)
			    : sqlite3_bind_null(s, 4)) != SQLITE_OK ||
	    (t->memory_set ? sqlite3_bind_int64(s, 5, t->memory_bytes)
			   : sqlite3_bind_null(s, 5)) != SQLITE_OK ||
	    sqlite3_bind_text(s, 6, tenant_class_to_string(t->class_), -1,
			      SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, now_s) != SQLITE_OK)
		return -1;
	return 0;
}

/* --- audit details ---------------------------------------------------------- */

static json_t *cpu_max_json(bool set, double cores)
{
	return store_json(set ? json_real(cores) : json_null());
}

static json_t *memory_json(bool set, int64_t bytes)
{
	return store_json(set ? json_integer(bytes) : json_null());
}

static json_t *tenant_json(const struct tenant *t)
{
	return store_json(json_pack("{s:s, s:I, s:I, s:o, s:o, s:s}",
				       "name", t->name,
				       "vcpus", (json_int_t)t->vcpus,
				       "weight", (json_int_t)t->weight,
				       "cpu_max_cores", cpu_max_json(t->cpu_max_set, t->cpu_max_cores),
				       "memory_bytes", memory_json(t->memory_set, t->memory_bytes),
				       "class", tenant_class_to_string(t->class_)));
}

static void changed_add(json_t *changed, const char *field, json_t *old_v, json_t *new_v)
{
	json_object_set_new(changed, field,
			    store_json(json_pack("{s:o, s:o}", "old", old_v, "new", new_v)));
}

/* {"FIELD":{"old":..,"new":..},...} for every field that differs. */
static json_t *tenant_changes(const struct tenant *a, const struct tenant *b)
{
	json_t *c = store_json(json_object());
	if (a->vcpus != b->vcpus)
		changed_add(c, "vcpus", json_integer(a->vcpus), json_integer(b->vcpus));
	if (a->weight != b->weight)
		changed_add(c, "weight", json_integer(a->weight), json_integer(b->weight));
	if (a->cpu_max_set != b->cpu_max_set ||
	    (a->cpu_max_set && a->cpu_max_cores != b->cpu_max_cores))
		changed_add(c, "cpu_max_cores", cpu_max_json(a->cpu_max_set, a->cpu_max_cores),
			    cpu_max_json(b->cpu_max_set, b->cpu_max_cores));
	if (a->memory_set != b->memory_set ||
	    (a->memory_set && a->memory_bytes != b->memory_bytes))
		changed_add(c, "memory_bytes", memory_json(a->memory_set, a->memory_bytes),
			    memory_json(b->memory_set, b->memory_bytes));
	if (a->class_ != b->class_)
		changed_add(c, "class", json_string(tenant_class_to_string(a->class_)),
			    json_string(tenant_class_to_string(b->class_)));
	return c;
}

/* --- public functions --------------------------------------------------------- */

int store_tenant_create(struct store *st, const struct tenant *t, const char *actor,
			struct error **err)
{
	if (!t)
		return error_set(err, EINVAL, "cannot create a tenant: no tenant given");
	if (name_check("tenant name", t->name, err) < 0)
		return error_wrap(err, "cannot create tenant");
	if (tenant_validate(t, err) < 0)
		return error_wrap(err, "cannot create tenant '%s'", t->name);

	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot create tenant '%s'", t->name);
	struct tenant cur;
	int found = tenant_read(st, t->name, &cur, err);
	if (found < 0)
		return -1;
	if (found)
		return error_set(err, EEXIST, "tenant '%s' already exists", t->name);

	int64_t now_ms = store_now_ms(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, TENANT_INSERT, &s, "create a tenant", err) < 0)
		return -1;
	if (bind_tenant(s, t, now_ms / 1000) < 0)
		return store_sql_error(st, err, "cannot create tenant '%s'", t->name);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return error_set(err, EEXIST, "tenant '%s' already exists", t->name);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return error_set(err, EINVAL, "cannot create tenant '%s': the database "
				 "refused it: %s", t->name, sqlite3_errmsg(st->db));
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot create tenant '%s'", t->name);

	/* log what was stored, not what was asked for */
	if (tenant_read(st, t->name, &cur, err) != 1)
		return error_set(err, EIO, "cannot create tenant '%s': it is not there after "
				 "the insert", t->name);
	json_auto_t *details = tenant_json(&cur);
	if (store_audit(st, now_ms, actor, "tenant.create", "tenant", t->name, details, err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot create tenant '%s'", t->name);
	return 0;
}

int store_tenant_get_limits(struct store *st, const char *name, struct tenant *out,
			    struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot read a tenant: no name given");
	STORE_LOCK(st);
	struct tenant t;
	int found = tenant_read_sql(st, TENANT_SELECT_LIMITS "WHERE t.name = ?1", name, &t, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%.80s'", name);
	*out = t;
	return 0;
}

int store_tenant_get(struct store *st, const char *name, struct tenant *out,
		     struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot read a tenant: no name given");
	STORE_LOCK(st);
	struct tenant t;
	int found = tenant_read(st, name, &t, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%.80s'", name);
	*out = t;
	return 0;
}

int store_tenant_rows(struct store *st, struct tenant **out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, TENANT_SELECT "ORDER BY t.name", &s, "list tenants", err) < 0)
		return -1;
	_cleanup_free_ struct tenant *v = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		if (tenant_from_row(st, s, &v[count], err) < 0)
			return -1;
		count++;
	}
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot list tenants");
	*out = steal_ptr(&v);
	*n = count;
	return 0;
}

int store_tenant_list(struct store *st, struct tenant **out, size_t *n, struct error **err)
{
	STORE_LOCK(st);
	return store_tenant_rows(st, out, n, err);
}

int store_tenant_update(struct store *st, const char *name, const struct tenant_patch *p,
			const char *actor, struct tenant *out, struct error **err)
{
	if (!name || !p)
		return error_set(err, EINVAL, "cannot update a tenant: no %s given",
				 name ? "patch" : "name");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot update tenant '%.80s'", name);
	struct tenant old;
	int found = tenant_read(st, name, &old, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%.80s'", name);

	struct tenant t = old;
	if (tenant_apply_patch(&t, p, err) < 0)
		return error_wrap(err, "cannot update tenant '%s'", name);
	/* Raising a quota that is already exceeded, or changing other fields
	 * of such a tenant, is allowed; only a cut below the usage is not. */
	if (t.vcpus < old.vcpus && t.vcpus < old.vcpus_used) {
		/* vcpus_used is what its reservations hold: count them */
		int64_t active;
		_cleanup_stmt_ sqlite3_stmt *c = NULL;
		if (store_prepare(st, "SELECT count(*) FROM reservations WHERE tenant = ?1", &c,
				  "count a tenant's admitted VMs", err) < 0)
			return -1;
		if (sqlite3_bind_text(c, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(c) != SQLITE_ROW)
			return store_sql_error(st, err, "cannot update tenant '%s'", name);
		active = sqlite3_column_int64(c, 0);
		return error_set(err, EBUSY,
				 "cannot lower the vCPU quota of tenant '%s' to %u: its %" PRId64
				 " admitted VM%s already hold%s %u vCPUs", name, t.vcpus, active,
				 active == 1 ? "" : "s", active == 1 ? "s" : "",
				 old.vcpus_used);
	}

	json_auto_t *changed = tenant_changes(&old, &t);
	if (json_object_size(changed) == 0) {
		if (out)
			*out = old;
		return 0; /* nothing to write, nothing to log */
	}

	int64_t now_ms = store_now_ms(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, TENANT_UPDATE, &s, "update a tenant", err) < 0)
		return -1;
	if (bind_tenant(s, &t, now_ms / 1000) < 0)
		return store_sql_error(st, err, "cannot update tenant '%s'", name);
	int rc = sqlite3_step(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return error_set(err, EINVAL, "cannot update tenant '%s': the database "
				 "refused it: %s", name, sqlite3_errmsg(st->db));
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot update tenant '%s'", name);

	struct tenant fresh;
	if (tenant_read(st, name, &fresh, err) != 1)
		return error_set(err, EIO, "cannot update tenant '%s': it is not there after "
				 "the update", name);
	json_auto_t *details = store_json(json_pack("{s:O}", "changed", changed));
	if (store_audit(st, now_ms, actor, "tenant.update", "tenant", name, details, err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot update tenant '%s'", name);
	if (out)
		*out = fresh;
	return 0;
}

int store_tenant_delete(struct store *st, const char *name, const char *actor,
			struct error **err)
{
	if (!name)
		return error_set(err, EINVAL, "cannot delete a tenant: no name given");
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot delete tenant '%.80s'", name);
	struct tenant old;
	int found = tenant_read(st, name, &old, err);
	if (found < 0)
		return -1;
	if (!found)
		return error_set(err, ENOENT, "no tenant '%.80s'", name);
	/* its admitted VMs hold it too (reservations, ON DELETE RESTRICT) */
	int64_t admitted;
	_cleanup_stmt_ sqlite3_stmt *c = NULL;
	if (store_prepare(st, "SELECT count(*) FROM reservations WHERE tenant = ?1", &c,
			  "count a tenant's admitted VMs", err) < 0)
		return -1;
	if (sqlite3_bind_text(c, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(c) != SQLITE_ROW)
		return store_sql_error(st, err, "cannot delete tenant '%s'", name);
	admitted = sqlite3_column_int64(c, 0);
	if (old.vm_count > 0 && admitted > 0)
		return error_set(err, EBUSY, "tenant '%s' still has %u VM%s and %" PRId64
				 " admitted VM%s: release them first", name, old.vm_count,
				 old.vm_count == 1 ? "" : "s", admitted, admitted == 1 ? "" : "s");
	if (old.vm_count > 0)
		return error_set(err, EBUSY, "tenant '%s' still has %u VM%s: release them first",
				 name, old.vm_count, old.vm_count == 1 ? "" : "s");
	if (admitted > 0)
		return error_set(err, EBUSY, "tenant '%s' still has %" PRId64 " admitted VM%s: "
				 "release them first", name, admitted, admitted == 1 ? "" : "s");

	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "DELETE FROM tenants WHERE name = ?1", &s,
			  "delete a tenant", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot delete tenant '%s'", name);
	int rc = sqlite3_step(s);
	/* the ON DELETE RESTRICT backstop, should a VM or a reservation appear
	 * in between */
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return error_set(err, EBUSY, "tenant '%s' still has VMs or admitted VMs: "
				 "release them first", name);
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot delete tenant '%s'", name);

	json_auto_t *details = tenant_json(&old);
	if (store_audit(st, store_now_ms(st), actor, "tenant.delete", "tenant", name, details, err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot delete tenant '%s'", name);
	return 0;
}
