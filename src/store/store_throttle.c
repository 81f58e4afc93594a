/* store_throttle.c - the throttler's caps, kept so that a restart of vcpud
 * neither lifts a cap nor forgets a doubled hold (schema/006_throttle.sql).
 * They are written together with the throttle decisions' events, in one
 * transaction, and read once when the daemon starts. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

void store_throttle_caps_free(struct store_throttle_cap *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].c.victims);
	free(v);
}

static int cap_insert(struct store *st, sqlite3_stmt *s, const struct store_throttle_cap *cap,
		      int64_t now_ms, struct error **err)
{
	const struct throttle_saved *c = &cap->c;
	const char *last = throttle_action_name(c->last_kind);
	json_t *victims = store_json(json_array());
	for (size_t k = 0; k < c->n_victims; k++)
		json_array_append_new(victims, store_json(json_string(c->victims[k])));
	_cleanup_free_ char *vtext = json_dumps(victims, JSON_COMPACT);
	json_decref(victims);
	if (!vtext)
		abort();
	sqlite3_reset(s);
	if (sqlite3_bind_text(s, 1, c->vm, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(s, 2, c->dry) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, (sqlite3_int64)c->quota_us) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, (sqlite3_int64)c->last_good_us) != SQLITE_OK ||
	    sqlite3_bind_int(s, 5, c->probing) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, c->hold_len_ms) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, cap->hold_until_ms > 0 ? cap->hold_until_ms : 0) != SQLITE_OK ||
	    sqlite3_bind_text(s, 8, last ? last : "cap", -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 9, vtext, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 10, now_ms) != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot save the cap of VM %s", c->vm);
	return 0;
}

int store_throttle_record(struct store *st, const struct store_event_in *ev, size_t n_ev,
			  bool save_caps, const struct store_throttle_cap *caps, size_t n,
			  struct error **err)
{
	if (n && !caps)
		return error_set(err, EINVAL, "%zu caps but no cap array", n);
	for (size_t i = 0; i < n_ev; i++)
		if (!ev[i].action || !*ev[i].action)
			return error_set(err, EINVAL, "cannot add an event: its action is empty");
	STORE_LOCK(st);
	STORE_QUIET(st);
	int64_t now = store_now_ms(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin_durable(st, &tx, err) < 0)
		return error_wrap(err, "cannot record throttle decisions");
	for (size_t i = 0; i < n_ev; i++)
		if (store_event_insert(st, now, "vcpud", ev[i].action, ev[i].target, ev[i].details,
				       err) < 0)
			return error_wrap(err, "cannot record throttle decisions");
	if (save_caps) {
		if (sqlite3_exec(st->db, "DELETE FROM throttle_caps", NULL, NULL, NULL) != SQLITE_OK)
			return store_sql_error(st, err, "cannot replace the saved caps");
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		/* INSERT ... SELECT: a VM released meanwhile is skipped */
		if (n && store_prepare(st,
				       "INSERT INTO throttle_caps (vm, dry, quota_us, last_good_us, "
				       "probing, hold_len_ms, hold_until_ms, last_action, victims, "
				       "saved_ms) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 "
				       "WHERE EXISTS (SELECT 1 FROM vms WHERE name = ?1)",
				       &s, "save a cap", err) < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (cap_insert(st, s, &caps[i], now, err) < 0)
				return -1;
	}
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot record throttle decisions");
	return 0;
}

static void victims_parse(const char *text, struct throttle_saved *c)
{
	json_t *a = json_loads(text ? text : "", 0, NULL);
	if (json_is_array(a) && json_array_size(a)) {
		c->victims = xcalloc(json_array_size(a), sizeof(*c->victims));
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v) {
			const char *name = json_string_value(v);
			if (name && name_valid(name))
				snprintf(c->victims[c->n_victims++], sizeof(*c->victims), "%s", name);
		}
	}
	json_decref(a);
}

int store_throttle_load(struct store *st, struct store_throttle_cap **out, size_t *n,
			struct error **err)
{
	*out = NULL;
	*n = 0;
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st,
			  "SELECT vm, dry, quota_us, last_good_us, probing, hold_len_ms, hold_until_ms, "
			  "last_action, victims FROM throttle_caps ORDER BY vm",
			  &s, "read the saved caps", err) < 0)
		return -1;
	struct store_throttle_cap *v = NULL;
	size_t nv = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (nv + 1) * sizeof(*v));
		struct store_throttle_cap *d = &v[nv++];
		memset(d, 0, sizeof(*d));
		store_column_copy(s, 0, d->c.vm, sizeof(d->c.vm));
		d->c.dry = sqlite3_column_int(s, 1) != 0;
		d->c.quota_us = (uint64_t)sqlite3_column_int64(s, 2);
		d->c.last_good_us = (uint64_t)sqlite3_column_int64(s, 3);
		d->c.probing = sqlite3_column_int(s, 4) != 0;
		d->c.hold_len_ms = (uint32_t)sqlite3_column_int64(s, 5);
		d->hold_until_ms = sqlite3_column_int64(s, 6);
		const char *last = (const char *)sqlite3_column_text(s, 7);
		d->c.last_kind = THROTTLE_CAP;
		for (int k = 0; k < THROTTLE_ACTION_LAST; k++)
			if (last && strcmp(last, throttle_action_name(k)) == 0)
				d->c.last_kind = k;
		victims_parse((const char *)sqlite3_column_text(s, 8), &d->c);
	}
	if (rc != SQLITE_DONE) {
		store_throttle_caps_free(v, nv);
		return store_sql_error(st, err, "cannot read the saved caps");
	}
	*out = v;
	*n = nv;
	return 0;
}
