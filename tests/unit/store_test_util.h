/* store_test_util.h - what the store's unit tests (test_store.c,
 * test_store_vm.c, test_store_reservation.c) share: a temporary directory
 * for the group with a fresh SQLite store per test on a fake clock, raw SQL
 * through the store's connection, error and audit-event assertions. Tests
 * with a per-test store (test_api.c, test_store_sample.c) use tmp_store.
 *
 * Each test file is its own binary (the Makefile builds one .c per test),
 * so this is header-only: static inline functions, unused ones costing
 * nothing. A file may define STORE_TEST_TMPDIR (a mkdtemp() template)
 * before including it to name its group's temp directory. */
#ifndef VCPUD_TESTS_STORE_TEST_UTIL_H
#define VCPUD_TESTS_STORE_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/store_internal.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

#define GIB ((int64_t)1 << 30)

#ifndef STORE_TEST_TMPDIR
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-store.XXXXXX"
#endif

/* --- removing a temp tree ------------------------------------------------- */

static inline int store_test_rm_entry(const char *p, const struct stat *sb, int flag,
				      struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* Remove DIR and everything below it; nftw()'s result. */
static inline int store_test_rm_tree(const char *dir)
{
	return nftw(dir, store_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- a store per test in the group's temp directory, on a fake clock ----- */

static char tmpdir[] = STORE_TEST_TMPDIR;
static int db_counter;
static int64_t fake_now_ms = 1700000000000LL;

static inline int64_t fake_clock(void)
{
	return fake_now_ms;
}

struct fx {
	char *path;
	struct store *st;
};

/* A database path in tmpdir no test has used yet; the caller frees it. */
static inline char *new_db_path(void)
{
	return xasprintf("%s/db-%d.sqlite", tmpdir, ++db_counter);
}

static inline int group_setup(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_WARN);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int group_teardown(void **state)
{
	(void)state;
	return store_test_rm_tree(tmpdir);
}

/* A struct fx with a new store on the fake clock, reset to its start. */
static inline int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct error *err = NULL;
	f->path = new_db_path();
	if (store_open(f->path, &f->st, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err->msg);
		return -1;
	}
	fake_now_ms = 1700000000000LL;
	store_set_clock(f->st, fake_clock);
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->st);
	free(f->path);
	free(f);
	return 0;
}

/* --- a store in a temp directory of its own -------------------------------- */

struct tmp_store {
	char dir[64];
	char *db;		/* DIR/t.db, owned */
	struct store *st;
};

/* Make a temp directory from TEMPLATE and open a new store in it; 0, or -1
 * with the reason on stderr. Undo with tmp_store_close() either way. */
static inline int tmp_store_open(struct tmp_store *ts, const char *template)
{
	snprintf(ts->dir, sizeof(ts->dir), "%s", template);
	if (!mkdtemp(ts->dir)) {
		fprintf(stderr, "mkdtemp %s: %s\n", template, strerror(errno));
		ts->dir[0] = '\0';
		return -1;
	}
	ts->db = path_join(ts->dir, "t.db", NULL);
	struct error *err = NULL;
	if (store_open(ts->db, &ts->st, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err->msg);
		error_free(&err);
		return -1;
	}
	return 0;
}

/* Close the store and remove its directory. */
static inline void tmp_store_close(struct tmp_store *ts)
{
	store_close(ts->st);
	ts->st = NULL;
	if (ts->dir[0] && store_test_rm_tree(ts->dir) < 0)
		fprintf(stderr, "cannot remove %s: %s\n", ts->dir, strerror(errno));
	free(ts->db);
	ts->db = NULL;
}

/* --- assertions ------------------------------------------------------------ */

static inline void assert_contains(const char *haystack, const char *needle)
{
	if (!haystack || !strstr(haystack, needle))
		fail_msg("expected \"%s\" to contain \"%s\"", haystack ? haystack : "(null)",
			 needle);
}

/* *err has this errno and a message containing NEEDLE (if not NULL); frees it. */
static inline void expect_error(struct error **err, int code, const char *needle)
{
	assert_non_null(*err);
	if ((*err)->code != code)
		fail_msg("expected errno %d (%s), got %d: %s", code, strerror(code),
			 (*err)->code, (*err)->msg);
	if (needle)
		assert_contains((*err)->msg, needle);
	error_free(err);
}

/* The whole message, not just a part of it. */
static inline void expect_error_msg(struct error **err, int code, const char *msg)
{
	assert_non_null(*err);
	if ((*err)->code != code)
		fail_msg("expected errno %d (%s), got %d: %s", code, strerror(code),
			 (*err)->code, (*err)->msg);
	assert_string_equal((*err)->msg, msg);
	error_free(err);
}

/* --- SQL --------------------------------------------------------------------- */

/* The one integer a query returns. */
static inline int64_t db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("cannot prepare '%s': %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* SQL through the store's own connection (foreign keys on); the primary
 * result code (the store turns extended codes on). */
static inline int st_exec(struct store *st, const char *sql)
{
	return sqlite3_exec(store_sqlite(st), sql, NULL, NULL, NULL) & 0xff;
}

static inline int64_t st_int(struct store *st, const char *sql)
{
	return db_int(store_sqlite(st), sql);
}

static inline int64_t event_count(struct store *st)
{
	return st_int(st, "SELECT count(*) FROM events");
}

/* --- audit events ------------------------------------------------------------ */

/* The details of the last event, which must have this action, target and
 * actor and the fake clock's time; the caller json_decref()s them. */
static inline json_t *last_event(struct store *st, const char *action, const char *target,
				 const char *actor)
{
	struct error *err = NULL;
	struct store_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(store_event_list(st, 0, 0, 0, &ev, &n, &err), 0);
	assert_true(n > 0);
	assert_string_equal(ev[n - 1].action, action);
	assert_string_equal(ev[n - 1].target, target);
	assert_string_equal(ev[n - 1].actor, actor);
	assert_int_equal(ev[n - 1].ts_ms, fake_now_ms);
	json_error_t jerr;
	json_t *j = json_loads(ev[n - 1].details, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j))
		fail_msg("details '%s' are not a JSON object", ev[n - 1].details);
	store_events_free(ev, n);
	return j;
}

static inline int64_t jint(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("'%s' is not an integer", key);
	return json_integer_value(v);
}

static inline const char *jstr(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("'%s' is not a string", key);
	return json_string_value(v);
}

#endif
