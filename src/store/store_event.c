/* store_event.c - the audit log: who did what to which object, when, as
 * rows of the append-only events table. Mutations elsewhere in the store
 * call store_event_insert() inside their own transaction; store_event_add()
 * is for events that stand alone (throttle decisions, daemon start). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/util.h"

int store_event_insert(struct store *st, int64_t ts_ms, const char *actor,
		       const char *action, const char *target,
		       const char *details_json, struct error **err)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st,
			  "INSERT INTO events (ts_ms, actor, action, target, details) "
			  "VALUES (?1, ?2, ?3, ?4, ?5)", &s, "add an event", err) < 0)
		return -1;
	if (sqlite3_bind_int64(s, 1, ts_ms) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, actor ? actor : "vcpud", -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 3, action, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 4, target ? target : "", -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 5, details_json ? details_json : "{}", -1,
			      SQLITE_STATIC) != SQLITE_OK)
		return store_sql_error(st, err, "cannot add event %s", action);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot add event %s", action);
	return 0;
}

/* details must be a JSON object: checked here with jansson so the caller
 * gets the position of the mistake, and again by the table's CHECK. */
static int details_check(const char *details, struct error **err)
{
	json_error_t jerr;
	json_auto_t *j = json_loads(details, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return error_set(err, EINVAL, "event details are not valid JSON: %s "
				 "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
	if (!json_is_object(j))
		return error_set(err, EINVAL, "event details must be a JSON object, not %s",
				 json_is_array(j) ? "an array" :
				 json_is_string(j) ? "a string" :
				 json_is_null(j) ? "null" :
				 json_is_boolean(j) ? "a boolean" : "a number");
	return 0;
}

int store_event_add(struct store *st, const char *actor, const char *action,
		    const char *target, const char *details_json, struct error **err)
{
	if (!action || !*action)
		return error_set(err, EINVAL, "cannot add an event: its action is empty");
	if (details_json && details_check(details_json, err) < 0)
		return error_wrap(err, "cannot add event %s", action);

	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin(st, &tx, err) < 0 ||
	    store_event_insert(st, store_now_ms(st), actor, action, target, details_json,
			       err) < 0 ||
	    store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot add event %s", action);
	return 0;
}

static char *column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);
	return xstrdup(v ? (const char *)v : "");
}

int store_event_list(struct store *st, int64_t after_id, int64_t since_ts_ms,
		     size_t limit, struct store_event **out, size_t *n,
		     struct error **err)
{
	*out = NULL;
	*n = 0;
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st,
			  "SELECT id, ts_ms, actor, action, target, details FROM events "
			  "WHERE id > ?1 AND ts_ms >= ?2 ORDER BY id LIMIT ?3",
			  &s, "list events", err) < 0)
		return -1;
	/* LIMIT -1 is SQLite's "no limit" */
	int64_t lim = limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
	if (sqlite3_bind_int64(s, 1, after_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, since_ts_ms) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, lim) != SQLITE_OK)
		return store_sql_error(st, err, "cannot list events");

	struct store_event *v = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 32;
			v = xrealloc(v, cap * sizeof(*v));
		}
		struct store_event *e = &v[count++];
		e->id = sqlite3_column_int64(s, 0);
		e->ts_ms = sqlite3_column_int64(s, 1);
		e->actor = column_dup(s, 2);
		e->action = column_dup(s, 3);
		e->target = column_dup(s, 4);
		e->details = column_dup(s, 5);
	}
	if (rc != SQLITE_DONE) {
		store_sql_error(st, err, "cannot list events");
		store_events_free(v, count);
		return -1;
	}
	*out = v;
	*n = count;
	return 0;
}

void store_events_free(struct store_event *ev, size_t n)
{
	if (!ev)
		return;
	for (size_t i = 0; i < n; i++) {
		free(ev[i].actor);
		free(ev[i].action);
		free(ev[i].target);
		free(ev[i].details);
	}
	free(ev);
}

json_t *store_json(json_t *j)
{
	if (!j)
		abort(); /* allocation failure: see STYLE.md */
	return j;
}

int store_audit(struct store *st, int64_t ts_ms, const char *actor, const char *action,
		const char *kind, const char *name, const json_t *details,
		struct error **err)
{
	_cleanup_free_ char *target = xasprintf("%s/%s", kind, name);
	char *text = json_dumps(details, JSON_COMPACT | JSON_REAL_PRECISION(15));
	if (!text)
		abort();
	int rc = store_event_insert(st, ts_ms, actor, action, target, text, err);
	free(text);
	return rc;
}
