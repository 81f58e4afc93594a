/* test_history.c - the history rows on their way to the store
 * (src/daemon/history.c), on a real SQLite store: a VM's rows are written
 * together once every HISTORY_FLUSH_TICKS ticks, the VMs spread over the
 * ticks; what waits is answered by history_pending; a VM that is stopped
 * or gone is still pruned to the retention at its turn; a released VM's
 * rows go out at the next write and it is forgotten; a clean stop writes
 * everything; a VM whose rows cannot be written keeps a bounded number. */
#include "store_test_util.h"

#include <math.h>

#include "daemon/history.h"

#define NVMS 12

struct hfx {
	struct tmp_store ts;
	struct history *h;
	char names[NVMS][16];
};

static int setup(void **state)
{
	struct hfx *f = xcalloc(1, sizeof(*f));
	if (tmp_store_open(&f->ts, "/tmp/vcpud-test-history-XXXXXX") < 0)
		return -1;
	struct tenant t;
	tenant_init(&t);
	strcpy(t.name, "acme");
	t.vcpus = 64;
	if (store_tenant_create(f->ts.st, &t, "test", NULL) < 0)
		return -1;
	for (int i = 0; i < NVMS; i++) {
		snprintf(f->names[i], sizeof(f->names[i]), "vm-%d", i);
		struct vm v = { .vcpus = 1, .pid = 100 + i, .state = VM_STATE_RUNNING };
		strcpy(v.name, f->names[i]);
		strcpy(v.tenant, "acme");
		if (store_vm_create(f->ts.st, &v, "test", NULL) < 0)
			return -1;
	}
	f->h = history_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct hfx *f = *state;
	history_free(f->h);
	tmp_store_close(&f->ts);
	free(f);
	return 0;
}

static int64_t stored(struct hfx *f, const char *vm)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM vm_samples WHERE vm = '%s'", vm);
	return st_int(f->ts.st, sql);
}

static size_t pending(struct hfx *f, const char *vm, int64_t since)
{
	struct store_sample *s = NULL;
	size_t n = 0;
	history_pending(f->h, vm, since, &s, &n);
	for (size_t i = 1; i < n; i++)
		assert_true(s[i - 1].ts_ms < s[i].ts_ms); /* oldest first */
	free(s);
	return n;
}

/* One tick: every VM noted (sampled when `sampled`), then the write. */
static int tick(struct hfx *f, uint64_t t, bool sampled, int64_t keep_since)
{
	for (int i = 0; i < NVMS; i++)
		history_note(f->h, f->names[i], sampled, (int64_t)t * 1000, 10.0 * i, 1.0, NAN);
	return history_write(f->h, f->ts.st, t, keep_since, NULL);
}

static void test_spread_over_the_ticks(void **state)
{
	struct hfx *f = *state;
	int64_t total_written = 0;
	for (uint64_t t = 1; t <= HISTORY_FLUSH_TICKS; t++) {
		int64_t before = st_int(f->ts.st, "SELECT count(*) FROM vm_samples");
		int w = tick(f, t, true, 0);
		assert_true(w >= 0);
		total_written += w;
		/* a tick writes the rows of the VMs due then, not of all 12 */
		int64_t after = st_int(f->ts.st, "SELECT count(*) FROM vm_samples");
		assert_int_equal(after - before, w);
		assert_true(w <= (int)(NVMS * t));
		/* nothing is lost: stored + waiting = every sample */
		for (int i = 0; i < NVMS; i++)
			assert_int_equal(stored(f, f->names[i]) +
						 (int64_t)pending(f, f->names[i], 0),
					 (int64_t)t);
	}
	/* a whole round: every VM was written once, so each has rows in the
	 * store, and fewer rows wait than were taken */
	for (int i = 0; i < NVMS; i++)
		assert_true(stored(f, f->names[i]) >= 1);
	assert_int_equal(total_written + (int64_t)history_waiting(f->h),
			 NVMS * HISTORY_FLUSH_TICKS);
	assert_true(history_waiting(f->h) < (size_t)(NVMS * HISTORY_FLUSH_TICKS));
	/* since_ms filters what waits */
	size_t all = pending(f, "vm-3", 0);
	if (all > 0) {
		struct store_sample *s = NULL;
		size_t n = 0;
		history_pending(f->h, "vm-3", 0, &s, &n);
		int64_t newest = s[n - 1].ts_ms;
		free(s);
		assert_int_equal(pending(f, "vm-3", newest), 1);
		assert_int_equal(pending(f, "vm-3", newest + 1), 0);
	}
	assert_int_equal(pending(f, "no-such-vm", 0), 0);

	/* a clean stop writes everything */
	assert_true(history_flush_all(f->h, f->ts.st, 0, NULL) >= 0);
	assert_int_equal(history_waiting(f->h), 0);
	for (int i = 0; i < NVMS; i++)
		assert_int_equal(stored(f, f->names[i]), HISTORY_FLUSH_TICKS);
}

static void test_prune_at_its_turn(void **state)
{
	struct hfx *f = *state;
	/* a round of rows for every VM, written */
	for (uint64_t t = 1; t <= HISTORY_FLUSH_TICKS; t++)
		tick(f, t, true, 0);
	assert_true(history_flush_all(f->h, f->ts.st, 0, NULL) >= 0);
	/* then every VM stops (noted, not sampled) and the retention moves
	 * past all of it: each VM is pruned at its own turn within a round,
	 * by its primary key, though it has nothing new to write */
	int64_t keep = (HISTORY_FLUSH_TICKS + 1) * 1000;
	for (uint64_t t = HISTORY_FLUSH_TICKS + 1; t <= 2 * HISTORY_FLUSH_TICKS; t++)
		assert_int_equal(tick(f, t, false, keep), 0);
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vm_samples"), 0);
	assert_int_equal(history_waiting(f->h), 0);
}

static void test_released_vm_goes_out(void **state)
{
	struct hfx *f = *state;
	/* vm-0 sampled for 3 ticks (not yet due, most likely), then no longer
	 * in the inventory: its rows are written at the next write and it is
	 * forgotten */
	uint64_t t = 1;
	for (; t <= 3; t++)
		tick(f, t, true, 0);
	int64_t vm0 = stored(f, "vm-0") + (int64_t)pending(f, "vm-0", 0);
	assert_int_equal(vm0, 3);
	for (int i = 1; i < NVMS; i++)
		history_note(f->h, f->names[i], true, (int64_t)t * 1000, 1.0, 1.0, NAN);
	assert_true(history_write(f->h, f->ts.st, t, 0, NULL) >= 0);
	assert_int_equal(stored(f, "vm-0"), 3);
	assert_int_equal(pending(f, "vm-0", 0), 0);
	/* a VM released from the store meanwhile: its rows are skipped, not
	 * an error, and the others' still go */
	assert_int_equal(store_vm_delete(f->ts.st, "vm-1", "test", NULL), 0);
	assert_true(history_flush_all(f->h, f->ts.st, 0, NULL) >= 0);
	assert_int_equal(stored(f, "vm-1"), 0);
	assert_int_equal(stored(f, "vm-2"), 4);
}

static void test_bounded_when_writes_fail(void **state)
{
	struct hfx *f = *state;
	/* the table gone: every write fails, and a VM keeps at most a bounded
	 * number of rows, the newest */
	assert_int_equal(st_exec(f->ts.st, "DROP TABLE vm_samples"), 0);
	for (uint64_t t = 1; t <= 10 * HISTORY_FLUSH_TICKS; t++) {
		history_note(f->h, "vm-5", true, (int64_t)t * 1000, 1.0, 1.0, NAN);
		struct error *err = NULL;
		int w = history_write(f->h, f->ts.st, t, 0, &err);
		if (w < 0)
			error_free(&err);
	}
	size_t n = pending(f, "vm-5", 0);
	assert_true(n >= HISTORY_FLUSH_TICKS && n <= 4 * HISTORY_FLUSH_TICKS);
	assert_int_equal(pending(f, "vm-5", 10 * HISTORY_FLUSH_TICKS * 1000), 1);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spread_over_the_ticks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_at_its_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_released_vm_goes_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_when_writes_fail, setup, teardown),
	};
	return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
