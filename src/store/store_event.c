/* store_event.c - the audit log: who did what to which object, when, as
 * rows of the append-only events table. Mutations elsewhere in the store
 * call store_event_insert() inside their own transaction; store_event_add()
 * is for events that stand alone (throttle decisions, daemon start).
 * store_event_prune() trims the log from its oldest end (the daemon calls
 * it from its tick), so the deleted ids are always a prefix and a reader's
 * cursor tells whether it missed any. */
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
	STORE_QUIET(st);
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

/* A row of "SELECT id, ts_ms, actor, action, target, details". */
static void event_from_row(sqlite3_stmt *s, struct store_event *e)
{
	e->id = sqlite3_column_int64(s, 0);
	e->ts_ms = sqlite3_column_int64(s, 1);
	e->actor = column_dup(s, 2);
	e->action = column_dup(s, 3);
	e->target = column_dup(s, 4);
	e->details = column_dup(s, 5);
}

/* The SELECT of store_event_list(); the caller holds the lock. */
static int events_select(struct store *st, int64_t after_id, int64_t since_ts_ms,
			 size_t limit, struct store_event **out, size_t *n,
			 struct error **err)
{
	*out = NULL;
	*n = 0;
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
		event_from_row(s, &v[count++]);
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

int store_event_last_throttle(struct store *st, const char *vm, bool as_victim,
			      struct store_event *out, struct error **err)
{
	memset(out, 0, sizeof(*out));
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	/* by rowid from the newest: a bounded scan, never the whole log */
	if (store_prepare(st, as_victim
			  ? "SELECT id, ts_ms, actor, action, target, details FROM events "
			    "WHERE id > (SELECT coalesce(max(id), 0) FROM events) - ?2 "
			    "AND action LIKE 'throttle.%' AND json_valid(details) "
			    "AND json_extract(details, '$.victim') = ?1 ORDER BY id DESC LIMIT 1"
			  : "SELECT id, ts_ms, actor, action, target, details FROM events "
			    "WHERE id > (SELECT coalesce(max(id), 0) FROM events) - ?2 "
			    "AND target = 'vm/' || ?1 AND action LIKE 'throttle.%' "
			    "ORDER BY id DESC LIMIT 1",
			  &s, "find a throttle event", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, vm, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, STORE_EVENT_SCAN_MAX) != SQLITE_OK)
		return store_sql_error(st, err, "cannot find a throttle event");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot find a throttle event");
	event_from_row(s, out);
	return 1;
}

int store_event_list(struct store *st, int64_t after_id, int64_t since_ts_ms,
		     size_t limit, struct store_event **out, size_t *n,
		     struct error **err)
{
	STORE_LOCK(st);
	return events_select(st, after_id, since_ts_ms, limit, out, n, err);
}

/* The oldest event: 1 and its id and ts_ms, 0 when the log is empty. */
static int oldest_read(struct store *st, int64_t *id, int64_t *ts_ms, struct error **err)
{
	*id = 0;
	*ts_ms = 0;
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "SELECT id, ts_ms FROM events ORDER BY id LIMIT 1", &s,
			  "read the oldest event", err) < 0)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read the oldest event");
	*id = sqlite3_column_int64(s, 0);
	*ts_ms = sqlite3_column_int64(s, 1);
	return 1;
}

int store_event_page(struct store *st, int64_t after_id, int64_t since_ts_ms,
		     size_t limit, struct store_event **out, size_t *n,
		     int64_t *oldest_id, struct error **err)
{
	*out = NULL;
	*n = 0;
	*oldest_id = 0;
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	int64_t ts;
	if (store_read_begin(st, &tx, err) < 0 || oldest_read(st, oldest_id, &ts, err) < 0)
		return -1;
	return events_select(st, after_id, since_ts_ms, limit, out, n, err);
}

int store_event_bounds(struct store *st, int64_t *oldest_id, int64_t *oldest_ts_ms,
		       uint64_t *count, struct error **err)
{
	int64_t id, ts;
	STORE_LOCK(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_read_begin(st, &tx, err) < 0 || oldest_read(st, &id, &ts, err) < 0)
		return -1;
	if (count) {
		int64_t c;
		if (store_query_int64(st, "SELECT count(*) FROM events", &c, err) < 0)
			return -1;
		*count = (uint64_t)c;
	}
	if (oldest_id)
		*oldest_id = id;
	if (oldest_ts_ms)
		*oldest_ts_ms = ts;
	return 0;
}

int store_event_prune(struct store *st, int64_t now_ms, uint32_t retention_days,
		      uint64_t max_rows, uint64_t *deleted, struct error **err)
{
	if (deleted)
		*deleted = 0;
	if (!retention_days || !max_rows)
		return error_set(err, EINVAL, "cannot prune events: %s must be at least 1",
				 retention_days ? "the row limit" : "the retention");
	int64_t cutoff = now_ms - (int64_t)retention_days * 86400 * 1000;

	STORE_LOCK(st);
	STORE_QUIET(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot prune events");

	/* The newest id, and in the oldest batch of rows (the most one call
	 * may delete): the first young enough to keep, and the last. Reads at
	 * most a batch of rows in id order, however long the log is. */
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st,
			  "SELECT (SELECT max(id) FROM events), "
			  "min(CASE WHEN ts_ms >= ?2 THEN id END), max(id) "
			  "FROM (SELECT id, ts_ms FROM events ORDER BY id LIMIT ?1)",
			  &s, "prune events", err) < 0)
		return -1;
	if (sqlite3_bind_int64(s, 1, STORE_EVENT_PRUNE_BATCH) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, cutoff) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		return store_sql_error(st, err, "cannot prune events");
	if (sqlite3_column_type(s, 0) == SQLITE_NULL)
		return store_tx_commit(&tx, err); /* no events at all */
	int64_t newest = sqlite3_column_int64(s, 0);
	bool all_old = sqlite3_column_type(s, 1) == SQLITE_NULL;
	int64_t first_young = sqlite3_column_int64(s, 1);
	int64_t batch_end = sqlite3_column_int64(s, 2);

	/* delete every id below `stop` */
	int64_t stop = all_old ? batch_end + 1 : first_young;
	if (max_rows < (uint64_t)newest && newest - (int64_t)max_rows + 1 > stop)
		stop = newest - (int64_t)max_rows + 1;
	if (stop > batch_end + 1)
		stop = batch_end + 1; /* at most one batch */
	if (stop > newest)
		stop = newest;        /* the newest stays: the cursor's anchor */

	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	if (store_prepare(st, "DELETE FROM events WHERE id < ?1", &del, "prune events",
			  err) < 0)
		return -1;
	if (sqlite3_bind_int64(del, 1, stop) != SQLITE_OK || sqlite3_step(del) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot prune events");
	uint64_t n = (uint64_t)sqlite3_changes(st->db);
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot prune events");
	if (deleted)
		*deleted = n;
	return 0;
}

void store_event_clear(struct store_event *e)
{
	if (!e)
		return;
	free(e->actor);
	free(e->action);
	free(e->target);
	free(e->details);
	memset(e, 0, sizeof(*e));
}

void store_events_free(struct store_event *ev, size_t n)
{
	if (!ev)
		return;
	for (size_t i = 0; i < n; i++)
		store_event_clear(&ev[i]);
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
