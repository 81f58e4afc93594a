/* store_sample.c - the bounded per-VM history of what the sampler measured
 * (schema 002, vm_samples): one row per VM per tick, pruned to the policy's
 * retention in the same transaction, so `vcpuctl vm show` can give the last
 * minutes and the figures survive a restart. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "store/store_internal.h"
#include "vcpud/util.h"

static double clamp(double v, double lo, double hi)
{
	if (!isfinite(v))
		return lo;
	return v < lo ? lo : v > hi ? hi : v;
}

int store_samples_add(struct store *st, const struct store_sample *rows, size_t n,
		      int64_t keep_since_ts_ms, struct error **err)
{
	STORE_LOCK(st);
	STORE_QUIET(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot record samples");
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	/* INSERT ... SELECT: a VM released meanwhile is skipped, not an error;
	 * OR REPLACE: two ticks in the same millisecond keep the last */
	if (store_prepare(st, "INSERT OR REPLACE INTO vm_samples (vm, ts_ms, usage_pct, steal_pct) "
			  "SELECT name, ?2, ?3, ?4 FROM vms WHERE name = ?1", &ins,
			  "record a sample", err) < 0)
		return -1;
	int written = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(ins);
		if (sqlite3_bind_text(ins, 1, rows[i].vm, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(ins, 2, rows[i].ts_ms) != SQLITE_OK ||
		    sqlite3_bind_double(ins, 3, clamp(rows[i].usage_pct, 0, 1e6)) != SQLITE_OK ||
		    sqlite3_bind_double(ins, 4, clamp(rows[i].steal_pct, 0, 100)) != SQLITE_OK ||
		    sqlite3_step(ins) != SQLITE_DONE)
			return store_sql_error(st, err, "cannot record a sample of VM '%s'",
					       rows[i].vm);
		written += sqlite3_changes(st->db) > 0;
	}
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	if (store_prepare(st, "DELETE FROM vm_samples WHERE ts_ms < ?1", &del,
			  "prune samples", err) < 0)
		return -1;
	if (sqlite3_bind_int64(del, 1, keep_since_ts_ms) != SQLITE_OK ||
	    sqlite3_step(del) != SQLITE_DONE)
		return store_sql_error(st, err, "cannot prune samples");
	if (store_tx_commit(&tx, err) < 0)
		return -1;
	return written;
}

int store_samples_list(struct store *st, const char *vm, int64_t since_ts_ms, size_t limit,
		       struct store_sample **out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	if (name_check("VM name", vm, err) < 0)
		return -1;
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *chk = NULL;
	if (store_prepare(st, "SELECT 1 FROM vms WHERE name = ?1", &chk, "look up a VM", err) < 0)
		return -1;
	sqlite3_bind_text(chk, 1, vm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(chk);
	if (rc == SQLITE_DONE)
		return error_set(err, ENOENT, "no VM '%s'", vm);
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot look up VM '%s'", vm);

	/* newest first with the limit, reversed below to oldest first */
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "SELECT ts_ms, usage_pct, steal_pct FROM vm_samples "
			  "WHERE vm = ?1 AND ts_ms >= ?2 ORDER BY ts_ms DESC LIMIT ?3", &s,
			  "read samples", err) < 0)
		return -1;
	if (sqlite3_bind_text(s, 1, vm, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, since_ts_ms) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, limit ? (int64_t)limit : -1) != SQLITE_OK)
		return store_sql_error(st, err, "cannot read samples of VM '%s'", vm);
	struct store_sample *v = NULL;
	size_t cnt = 0, cap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt].vm = NULL;
		v[cnt].ts_ms = sqlite3_column_int64(s, 0);
		v[cnt].usage_pct = sqlite3_column_double(s, 1);
		v[cnt].steal_pct = sqlite3_column_double(s, 2);
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		free(v);
		return store_sql_error(st, err, "cannot read samples of VM '%s'", vm);
	}
	for (size_t i = 0; i < cnt / 2; i++) {
		struct store_sample t = v[i];
		v[i] = v[cnt - 1 - i];
		v[cnt - 1 - i] = t;
	}
	*out = v;
	*n = cnt;
	return 0;
}
