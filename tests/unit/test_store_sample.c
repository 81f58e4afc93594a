/* test_store_sample.c - the per-VM sample history: append, skip released
 * VMs, prune to the retention, read back oldest first with a limit that
 * keeps the newest, and refuse unknown or invalid VM names. */
#include "store_test_util.h"

#include <math.h>

static int setup(void **state)
{
	struct tmp_store *f = xcalloc(1, sizeof(*f));
	if (tmp_store_open(f, "/tmp/vcpud-test-sample-XXXXXX") < 0)
		return -1;
	struct tenant t;
	tenant_init(&t);
	strcpy(t.name, "acme");
	t.vcpus = 8;
	if (store_tenant_create(f->st, &t, "test", NULL) < 0)
		return -1;
	const char *names[] = { "web", "db" };
	for (int i = 0; i < 2; i++) {
		struct vm v = { .vcpus = 2, .pid = 100 + i, .state = VM_STATE_RUNNING };
		strcpy(v.name, names[i]);
		strcpy(v.tenant, "acme");
		if (store_vm_create(f->st, &v, "test", NULL) < 0)
			return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct tmp_store *f = *state;
	tmp_store_close(f);
	free(f);
	return 0;
}

static void test_add_list_prune(void **state)
{
	struct tmp_store *f = *state;
	for (int64_t t = 1; t <= 10; t++) {
		struct store_sample rows[] = {
			{ "web", t * 1000, 150.0 + (double)t, (double)t, t % 2 ? NAN : 25.0 * (double)t },
			{ "db", t * 1000, 10.0, 0.5, NAN },
			{ "gone-vm", t * 1000, 1.0, 1.0, NAN },   /* not registered: skipped */
		};
		assert_int_equal(store_samples_add(f->st, rows, 3, NULL, 0, 0, NULL), 2);
	}
	struct store_sample *s = NULL;
	size_t n = 0;
	assert_int_equal(store_samples_list(f->st, "web", 0, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 10);
	assert_int_equal(s[0].ts_ms, 1000);
	assert_int_equal(s[9].ts_ms, 10000);
	assert_true(s[9].usage_pct == 160.0 && s[9].steal_pct == 10.0);
	assert_true(s[9].cap_pct == 250.0);   /* the cap then */
	assert_true(isnan(s[8].cap_pct));      /* none */
	free(s);
	/* a limit keeps the newest, still oldest first */
	assert_int_equal(store_samples_list(f->st, "web", 0, 3, &s, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_int_equal(s[0].ts_ms, 8000);
	assert_int_equal(s[2].ts_ms, 10000);
	free(s);
	assert_int_equal(store_samples_list(f->st, "web", 9000, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 2);
	free(s);
	/* retention: the next add prunes everything before 6000 */
	struct store_sample row = { "web", 11000, 1.0, 200.0 /* clamped */, -5 /* none */ };
	assert_int_equal(store_samples_add(f->st, &row, 1, NULL, 0, 6000, NULL), 1);
	assert_int_equal(store_samples_list(f->st, "web", 0, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 6);
	assert_int_equal(s[0].ts_ms, 6000);
	assert_true(s[5].steal_pct == 100.0);
	free(s);
	assert_int_equal(store_samples_list(f->st, "db", 0, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 5);
	free(s);
	/* pruned by name: only the VMs listed */
	const char *only_db[] = { "db" };
	assert_int_equal(store_samples_add(f->st, NULL, 0, only_db, 1, 9000, NULL), 0);
	assert_int_equal(store_samples_list(f->st, "db", 0, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 2);
	free(s);
	assert_int_equal(store_samples_list(f->st, "web", 0, 0, &s, &n, NULL), 0);
	assert_int_equal(n, 6);
	free(s);
}

static void test_release_drops_history(void **state)
{
	struct tmp_store *f = *state;
	struct store_sample row = { "db", 1000, 5.0, 1.0, NAN };
	assert_int_equal(store_samples_add(f->st, &row, 1, NULL, 0, 0, NULL), 1);
	assert_int_equal(store_vm_delete(f->st, "db", "test", NULL), 0);
	struct store_sample *s = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(store_samples_list(f->st, "db", 0, 0, &s, &n, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	assert_int_equal(store_samples_list(f->st, "../x", 0, 0, &s, &n, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_null(s);
	/* an add for the released VM is skipped, not an error */
	assert_int_equal(store_samples_add(f->st, &row, 1, NULL, 0, 0, NULL), 0);
	assert_int_equal(store_integrity_check(f->st, NULL), 0);
}

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_list_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_drops_history, setup, teardown),
	};
	return cmocka_run_group_tests_name("store_sample", tests, NULL, NULL);
}
