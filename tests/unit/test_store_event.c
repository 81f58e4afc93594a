/* test_store_event.c - retention of the audit log on real SQLite files:
 * store_event_prune() by age and by count, its batch bound (the next call
 * continues), the newest event kept and ids never reused, one transaction
 * per call, and store_event_bounds() / store_event_page(). Events are
 * written with raw SQL (thousands of them, in one statement) or through
 * store_event_add() on the fake clock. */
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-store-event.XXXXXX"
#include <inttypes.h>

#include "store_test_util.h"

#define DAY_MS ((int64_t)86400 * 1000)
#define NOW_MS ((int64_t)1700000000000LL)

/* Append n events, the i-th (from 0) stamped ts0 + i * step_ms, in one
 * statement. */
static void events_insert(struct store *st, int64_t n, int64_t ts0, int64_t step_ms)
{
	_cleanup_free_ char *sql = xasprintf(
		"WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c "
		"WHERE i + 1 < %" PRId64 ") "
		"INSERT INTO events (ts_ms, actor, action, target) "
		"SELECT %" PRId64 " + i * %" PRId64 ", 'test', 'test.event', 't/' || i FROM c",
		n, ts0, step_ms);
	assert_int_equal(st_exec(st, sql), SQLITE_OK);
}

static int64_t max_id(struct store *st)
{
	return st_int(st, "SELECT coalesce(max(id), 0) FROM events");
}

static int64_t min_id(struct store *st)
{
	return st_int(st, "SELECT coalesce(min(id), 0) FROM events");
}

/* store_event_prune() that must succeed; the rows it deleted. */
static uint64_t prune(struct store *st, uint32_t days, uint64_t max_rows)
{
	struct error *err = NULL;
	uint64_t deleted = 12345;
	if (store_event_prune(st, NOW_MS, days, max_rows, &deleted, &err) < 0)
		fail_msg("store_event_prune: %s", err->msg);
	assert_null(err);
	return deleted;
}

/* The next id the log hands out, by adding an event. */
static int64_t next_id(struct store *st)
{
	struct error *err = NULL;
	assert_int_equal(store_event_add(st, "test", "test.next", "t", NULL, &err), 0);
	return max_id(st);
}

static void test_prune_by_age(void **state)
{
	struct fx *f = *state;
	/* 10 events 40..31 days old, then 5 from 29 days old to now */
	events_insert(f->st, 10, NOW_MS - 40 * DAY_MS, DAY_MS);
	events_insert(f->st, 5, NOW_MS - 29 * DAY_MS, 7 * DAY_MS);
	assert_int_equal(event_count(f->st), 15);

	assert_int_equal(prune(f->st, 30, 1000000), 10);
	assert_int_equal(event_count(f->st), 5);
	assert_int_equal(min_id(f->st), 11);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM events WHERE ts_ms < "
				"1700000000000 - 30 * 86400000"), 0);
	/* nothing more to do */
	assert_int_equal(prune(f->st, 30, 1000000), 0);
	assert_int_equal(event_count(f->st), 5);

	/* a shorter retention: only the event of now is young enough */
	assert_int_equal(prune(f->st, 1, 1000000), 4);
	assert_int_equal(event_count(f->st), 1);
	assert_int_equal(st_int(f->st, "SELECT ts_ms FROM events"), NOW_MS - 1 * DAY_MS);

	/* exactly retention_days old is kept, a millisecond more is not */
	events_insert(f->st, 1, NOW_MS - 7 * DAY_MS - 1, 0);
	events_insert(f->st, 1, NOW_MS - 7 * DAY_MS, 0);
	events_insert(f->st, 1, NOW_MS, 0);
	assert_int_equal(st_exec(f->st, "DELETE FROM events WHERE id < 16"), SQLITE_OK);
	assert_int_equal(prune(f->st, 7, 1000000), 1);
	assert_int_equal(st_int(f->st, "SELECT min(ts_ms) FROM events"), NOW_MS - 7 * DAY_MS);
}

/* The log is trimmed from its oldest end only: an old event behind a young
 * one (the clock stepped back) waits until the young one is old too, so
 * the deleted ids are always a prefix. */
static void test_prune_by_age_is_a_prefix(void **state)
{
	struct fx *f = *state;
	events_insert(f->st, 3, NOW_MS - 50 * DAY_MS, 0);  /* ids 1-3: old */
	events_insert(f->st, 1, NOW_MS - 10 * DAY_MS, 0);  /* 4: young */
	events_insert(f->st, 2, NOW_MS - 60 * DAY_MS, 0);  /* 5-6: old again */
	events_insert(f->st, 1, NOW_MS, 0);                /* 7 */
	assert_int_equal(prune(f->st, 30, 1000000), 3);
	assert_int_equal(min_id(f->st), 4);
	assert_int_equal(event_count(f->st), 4);
	/* with a retention that makes 4 old, 4-6 go */
	assert_int_equal(prune(f->st, 5, 1000000), 3);
	assert_int_equal(min_id(f->st), 7);
}

static void test_prune_by_count(void **state)
{
	struct fx *f = *state;
	events_insert(f->st, 2500, NOW_MS - 1000, 0);
	assert_int_equal(prune(f->st, 30, 1000), 1500);
	assert_int_equal(event_count(f->st), 1000);
	assert_int_equal(min_id(f->st), 1501);
	assert_int_equal(max_id(f->st), 2500);
	assert_int_equal(prune(f->st, 30, 1000), 0);
	/* one more event: one more goes */
	assert_int_equal(next_id(f->st), 2501);
	assert_int_equal(prune(f->st, 30, 1000), 1);
	assert_int_equal(event_count(f->st), 1000);
	assert_int_equal(min_id(f->st), 1502);
	/* a limit above the count deletes nothing */
	assert_int_equal(prune(f->st, 30, UINT64_MAX), 0);
	/* what a call costs the tick that makes it (README): BEGIN, one
	 * SELECT, one DELETE, COMMIT */
	uint64_t sql0 = store_statements(f->st);
	assert_int_equal(prune(f->st, 30, 999), 1);
	assert_int_equal(store_statements(f->st) - sql0, 4);
	sql0 = store_statements(f->st);
	assert_int_equal(prune(f->st, 30, 999), 0);
	assert_int_equal(store_statements(f->st) - sql0, 4);
	assert_int_equal(prune(f->st, 30, 1001), 0);
	assert_int_equal(event_count(f->st), 999);
}

/* Both limits in one call: the old ones, then the oldest of the young ones
 * beyond the row limit. */
static void test_prune_by_age_and_count(void **state)
{
	struct fx *f = *state;
	events_insert(f->st, 100, NOW_MS - 90 * DAY_MS, 1000);
	events_insert(f->st, 1500, NOW_MS - 2 * DAY_MS, 1000);
	assert_int_equal(prune(f->st, 30, 1000), 600);
	assert_int_equal(event_count(f->st), 1000);
	assert_int_equal(min_id(f->st), 601);
	/* the age limit alone would have kept more */
	assert_int_equal(prune(f->st, 30, 100000), 0);
	assert_int_equal(prune(f->st, 1, 100000), 999); /* all 2 days old: the newest stays */
}

/* A backlog larger than a batch is worked off one batch per call. */
static void test_prune_batch_bound(void **state)
{
	struct fx *f = *state;
	assert_int_equal(STORE_EVENT_PRUNE_BATCH, 10000);
	/* by age: 25000 old events and 3 young ones */
	events_insert(f->st, 25000, NOW_MS - 100 * DAY_MS, 1);
	events_insert(f->st, 3, NOW_MS, 0);
	assert_int_equal(prune(f->st, 30, 100000000), 10000);
	assert_int_equal(min_id(f->st), 10001);
	assert_int_equal(prune(f->st, 30, 100000000), 10000);
	assert_int_equal(prune(f->st, 30, 100000000), 5000);
	assert_int_equal(prune(f->st, 30, 100000000), 0);
	assert_int_equal(event_count(f->st), 3);
	assert_int_equal(min_id(f->st), 25001);

	/* by count: 23000 young events beyond a limit of 1000 */
	events_insert(f->st, 22997, NOW_MS, 0);
	assert_int_equal(event_count(f->st), 23000);
	assert_int_equal(prune(f->st, 30, 1000), 10000);
	assert_int_equal(prune(f->st, 30, 1000), 10000);
	assert_int_equal(prune(f->st, 30, 1000), 2000);
	assert_int_equal(prune(f->st, 30, 1000), 0);
	assert_int_equal(event_count(f->st), 1000);
	assert_int_equal(min_id(f->st), 47001);
}

/* The newest event is never deleted, and no id is ever handed out twice:
 * not after a prune, not after the log was emptied by hand, not after the
 * database was closed and opened again. */
static void test_ids_never_reused(void **state)
{
	struct fx *f = *state;
	events_insert(f->st, 5, NOW_MS - 400 * DAY_MS, 1);
	assert_int_equal(prune(f->st, 1, 1000), 4);
	assert_int_equal(event_count(f->st), 1);
	assert_int_equal(min_id(f->st), 5);
	assert_int_equal(prune(f->st, 1, 1000), 0); /* the newest stays, however old */
	assert_int_equal(next_id(f->st), 6);

	/* AUTOINCREMENT: the largest id ever used is remembered, even when
	 * every row goes (which pruning alone never does) */
	assert_int_equal(st_exec(f->st, "DELETE FROM events"), SQLITE_OK);
	assert_int_equal(next_id(f->st), 7);

	events_insert(f->st, 2000, NOW_MS, 0);
	assert_int_equal(prune(f->st, 30, 1000), 1001);
	int64_t last = max_id(f->st);
	assert_int_equal(last, 2007);
	struct error *err = NULL;
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->path, &f->st, &err), 0);
	store_set_clock(f->st, fake_clock);
	assert_int_equal(next_id(f->st), last + 1);
}

/* A failure half way changes nothing: one transaction per call. */
static void test_prune_is_one_transaction(void **state)
{
	struct fx *f = *state;
	events_insert(f->st, 2000, NOW_MS - 40 * DAY_MS, 0);
	events_insert(f->st, 10, NOW_MS, 0);
	assert_int_equal(st_exec(f->st, "CREATE TEMP TRIGGER no_delete BEFORE DELETE ON "
				 "main.events WHEN old.id = 1500 BEGIN SELECT RAISE(ABORT, "
				 "'event 1500 is held'); END"), SQLITE_OK);
	struct error *err = NULL;
	uint64_t deleted = 7;
	assert_int_equal(store_event_prune(f->st, NOW_MS, 30, 1000, &deleted, &err), -1);
	expect_error(&err, EIO, "cannot prune events");
	assert_int_equal(deleted, 0);
	assert_int_equal(event_count(f->st), 2010);
	assert_int_equal(st_exec(f->st, "DROP TRIGGER no_delete"), SQLITE_OK);
	assert_int_equal(prune(f->st, 30, 1000), 2000);
	/* the store still works after the failure */
	assert_int_equal(next_id(f->st), 2011);
}

static void test_prune_invalid_and_empty(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	/* an empty log: nothing to do */
	assert_int_equal(prune(f->st, 1, 1000), 0);
	assert_int_equal(store_event_prune(f->st, NOW_MS, 1, 1000, NULL, &err), 0);

	events_insert(f->st, 3, 0, 0);
	uint64_t deleted = 9;
	assert_int_equal(store_event_prune(f->st, NOW_MS, 0, 1000, &deleted, &err), -1);
	expect_error(&err, EINVAL, "the retention");
	assert_int_equal(deleted, 0);
	assert_int_equal(store_event_prune(f->st, NOW_MS, 30, 0, &deleted, &err), -1);
	expect_error(&err, EINVAL, "the row limit");
	assert_int_equal(event_count(f->st), 3);
	/* NULL for deleted is fine */
	assert_int_equal(store_event_prune(f->st, NOW_MS, 30, 1000, NULL, &err), 0);
	assert_int_equal(event_count(f->st), 1);
	/* a retention far beyond now does not overflow */
	assert_int_equal(store_event_prune(f->st, 0, UINT32_MAX, UINT64_MAX, &deleted, &err), 0);
	assert_int_equal(deleted, 0);
}

static void test_event_bounds(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	int64_t id = -1, ts = -1;
	uint64_t count = 99;
	assert_int_equal(store_event_bounds(f->st, &id, &ts, &count, &err), 0);
	assert_int_equal(id, 0);
	assert_int_equal(ts, 0);
	assert_int_equal(count, 0);

	events_insert(f->st, 1500, NOW_MS - 50 * DAY_MS, DAY_MS / 100);
	assert_int_equal(store_event_bounds(f->st, &id, &ts, &count, &err), 0);
	assert_int_equal(id, 1);
	assert_int_equal(ts, NOW_MS - 50 * DAY_MS);
	assert_int_equal(count, 1500);

	/* 1500 events 0.01 days apart, from 50 to 35 days ago: all older than
	 * 30 days, so all go but the newest */
	assert_int_equal(prune(f->st, 30, 1000), 1499);
	assert_int_equal(store_event_bounds(f->st, &id, &ts, &count, &err), 0);
	assert_int_equal(id, 1500);
	assert_int_equal(ts, NOW_MS - 50 * DAY_MS + 1499 * (DAY_MS / 100));
	assert_int_equal(count, 1);

	/* any pointer may be NULL; NULL count skips the count */
	id = 0;
	assert_int_equal(store_event_bounds(f->st, &id, NULL, NULL, &err), 0);
	assert_int_equal(id, 1500);
	assert_int_equal(store_event_bounds(f->st, NULL, NULL, NULL, &err), 0);
}

static void test_event_page(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct store_event *ev = NULL;
	size_t n = 7;
	int64_t oldest = -1;
	assert_int_equal(store_event_page(f->st, 0, 0, 0, &ev, &n, &oldest, &err), 0);
	assert_int_equal(n, 0);
	assert_null(ev);
	assert_int_equal(oldest, 0);

	events_insert(f->st, 1200, NOW_MS, 0);
	assert_int_equal(prune(f->st, 30, 1000), 200);
	/* a cursor before the oldest kept: the page starts at the oldest */
	assert_int_equal(store_event_page(f->st, 5, 0, 3, &ev, &n, &oldest, &err), 0);
	assert_int_equal(oldest, 201);
	assert_int_equal(n, 3);
	assert_int_equal(ev[0].id, 201);
	assert_int_equal(ev[2].id, 203);
	assert_string_equal(ev[0].action, "test.event");
	store_events_free(ev, n);
	/* a cursor past the end: no events, the oldest all the same */
	assert_int_equal(store_event_page(f->st, 1200, 0, 0, &ev, &n, &oldest, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(oldest, 201);
	/* the same filters as store_event_list() */
	assert_int_equal(store_event_page(f->st, 1100, NOW_MS + 1, 0, &ev, &n, &oldest, &err), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prune_by_age, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_by_age_is_a_prefix, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_by_count, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_by_age_and_count, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_batch_bound, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ids_never_reused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_is_one_transaction, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_prune_invalid_and_empty, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_page, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
