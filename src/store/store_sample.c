/* store_sample.c - the bounded per-VM history of what the sampler measured
 * (schema 002, vm_samples): one row per VM per tick, written a VM's rows at
 * a time (src/daemon/history.c) and pruned to the policy's retention in the
 * same transaction, so `vcpuctl vm show` can give the last minutes and the
 * figures survive a restart. */
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

/* rows per INSERT statement (one prepared statement per count up to it) */
#define SAMPLES_PER_INSERT 16

/* "INSERT ... VALUES (?,?,?,?,?)" with k rows; kept for the process's life,
 * so that the statement cache's key stays valid */
static const char *insert_sql(size_t k)
{
	static char *sql[SAMPLES_PER_INSERT + 1];
	if (!sql[k]) {
		size_t len = 96 + 12 * k;
		char *q = xmalloc(len);
		size_t o = (size_t)snprintf(q, len, "INSERT OR REPLACE INTO vm_samples "
					    "(vm, ts_ms, usage_pct, steal_pct, cap_pct) VALUES ");
		for (size_t r = 0; r < k; r++)
			o += (size_t)snprintf(q + o, len - o, "%s(?,?,?,?,?)", r ? "," : "");
		sql[k] = q;
	}
	return sql[k];
}

int store_samples_add(struct store *st, const struct store_sample *rows, size_t n,
		      const char *const *prune, size_t n_prune, int64_t keep_since_ts_ms,
		      struct error **err)
{
	STORE_LOCK(st);
	STORE_QUIET(st);
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	if (store_tx_begin(st, &tx, err) < 0)
		return error_wrap(err, "cannot record samples");
	/* the rows come a VM at a time (history.c): whether the VM is still
	 * registered is asked once per VM (a VM released meanwhile is
	 * skipped, not an error), then its rows go in by up to
	 * SAMPLES_PER_INSERT per statement; OR REPLACE: two ticks in the same
	 * millisecond keep the last */
	_cleanup_stmt_ sqlite3_stmt *chk = NULL;
	if (store_prepare(st, "SELECT 1 FROM vms WHERE name = ?1", &chk, "look up a VM", err) < 0)
		return -1;
	int written = 0;
	for (size_t i = 0; i < n;) {
		size_t g = i + 1;
		while (g < n && strcmp(rows[g].vm, rows[i].vm) == 0)
			g++;
		sqlite3_reset(chk);
		if (sqlite3_bind_text(chk, 1, rows[i].vm, -1, SQLITE_STATIC) != SQLITE_OK)
			return store_sql_error(st, err, "cannot look up VM '%s'", rows[i].vm);
		int rc = sqlite3_step(chk);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return store_sql_error(st, err, "cannot look up VM '%s'", rows[i].vm);
		for (size_t j = i; rc == SQLITE_ROW && j < g;) {
			size_t k = g - j < SAMPLES_PER_INSERT ? g - j : SAMPLES_PER_INSERT;
			_cleanup_stmt_ sqlite3_stmt *ins = NULL;
			if (store_prepare(st, insert_sql(k), &ins, "record samples", err) < 0)
				return -1;
			for (size_t r = 0; r < k; r++) {
				const struct store_sample *x = &rows[j + r];
				int b = (int)(5 * r);
				if (sqlite3_bind_text(ins, b + 1, x->vm, -1, SQLITE_STATIC) != SQLITE_OK ||
				    sqlite3_bind_int64(ins, b + 2, x->ts_ms) != SQLITE_OK ||
				    sqlite3_bind_double(ins, b + 3, clamp(x->usage_pct, 0, 1e6)) !=
					    SQLITE_OK ||
				    sqlite3_bind_double(ins, b + 4, clamp(x->steal_pct, 0, 100)) !=
					    SQLITE_OK ||
				    (isfinite(x->cap_pct) && x->cap_pct >= 0
					     ? sqlite3_bind_double(ins, b + 5, clamp(x->cap_pct, 0, 1e6))
					     : sqlite3_bind_null(ins, b + 5)) != SQLITE_OK)
					return store_sql_error(st, err, "cannot record the samples of "
							       "VM '%s'", x->vm);
			}
			if (sqlite3_step(ins) != SQLITE_DONE)
				return store_sql_error(st, err, "cannot record the samples of VM '%s'",
						       rows[j].vm);
			written += sqlite3_changes(st->db);
			j += k;
		}
		i = g;
	}
	/* by the primary key (vm, ts_ms): a few pages per VM, no index on
	 * ts_ms to keep up at every insert */
	_cleanup_stmt_ sqlite3_stmt *del = NULL;
	if (!prune) {
		if (store_prepare(st, "DELETE FROM vm_samples WHERE vm IN (SELECT name FROM vms) "
				  "AND ts_ms < ?1", &del, "prune samples", err) < 0)
			return -1;
		if (sqlite3_bind_int64(del, 1, keep_since_ts_ms) != SQLITE_OK ||
		    sqlite3_step(del) != SQLITE_DONE)
			return store_sql_error(st, err, "cannot prune samples");
	} else if (n_prune) {
		if (store_prepare(st, "DELETE FROM vm_samples WHERE vm = ?1 AND ts_ms < ?2", &del,
				  "prune a VM's samples", err) < 0)
			return -1;
		for (size_t i = 0; i < n_prune; i++) {
			sqlite3_reset(del);
			if (sqlite3_bind_text(del, 1, prune[i], -1, SQLITE_STATIC) != SQLITE_OK ||
			    sqlite3_bind_int64(del, 2, keep_since_ts_ms) != SQLITE_OK ||
			    sqlite3_step(del) != SQLITE_DONE)
				return store_sql_error(st, err, "cannot prune the samples of VM '%s'",
						       prune[i]);
		}
	}
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
	if (store_prepare(st, "SELECT ts_ms, usage_pct, steal_pct, cap_pct FROM vm_samples "
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
		v[cnt].cap_pct = sqlite3_column_type(s, 3) == SQLITE_NULL
			? NAN : sqlite3_column_double(s, 3);
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
