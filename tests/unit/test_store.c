/* test_store.c - the store module against real SQLite files in a temporary
 * directory: opening (WAL, foreign keys, migrations, refusing newer, foreign
 * and garbage files), tenant CRUD with its conflicts, the audit events each
 * mutation writes (and refused ones do not), event listing and the integrity
 * check. Raw SQL through a second connection plays the hand-editing admin. */
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-store.XXXXXX"
#include "store_test_util.h"

#include "vcpud/tenant.h"

/* --- helpers ------------------------------------------------------------ */

/* Run SQL on a separate connection (foreign keys off, as sqlite3(1) has). */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("raw SQL '%s' failed: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	int64_t v = db_int(db, sql);
	sqlite3_close(db);
	return v;
}

static char *raw_text(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	char *v = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static int64_t tenant_count(struct store *st)
{
	return st_int(st, "SELECT count(*) FROM tenants");
}

static struct tenant mk_tenant(const char *name, uint32_t vcpus)
{
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus = vcpus;
	return t;
}

static void create_ok(struct store *st, const struct tenant *t)
{
	struct error *err = NULL;
	if (store_tenant_create(st, t, "uid:1000", &err) < 0)
		fail_msg("create %s: %s", t->name, err->msg);
}

static struct tenant get_ok(struct store *st, const char *name)
{
	struct error *err = NULL;
	struct tenant t;
	if (store_tenant_get(st, name, &t, &err) < 0)
		fail_msg("get %s: %s", name, err->msg);
	return t;
}

static void assert_tenant_config_equal(const struct tenant *a, const struct tenant *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->weight, b->weight);
	assert_int_equal(a->cpu_max_set, b->cpu_max_set);
	if (a->cpu_max_set)
		assert_true(a->cpu_max_cores == b->cpu_max_cores);
	assert_int_equal(a->memory_set, b->memory_set);
	if (a->memory_set)
		assert_int_equal(a->memory_bytes, b->memory_bytes);
	assert_int_equal(a->class_, b->class_);
}

static void assert_tenant_equal(const struct tenant *a, const struct tenant *b)
{
	assert_tenant_config_equal(a, b);
	assert_int_equal(a->created_at, b->created_at);
	assert_int_equal(a->updated_at, b->updated_at);
	assert_int_equal(a->vcpus_used, b->vcpus_used);
	assert_int_equal(a->vm_count, b->vm_count);
}

/* A registered VM with its admission reservation (the ledger a tenant's
 * usage is counted from), as the registry stores one. */
static void add_vm(struct store *st, const char *name, const char *tenant, int vcpus)
{
	char *sql = xasprintf("INSERT INTO vms (name, tenant, pid, vcpus, state, source, "
			      "created_at, updated_at) VALUES ('%s', '%s', 4242, %d, "
			      "'running', 'registered', 1, 1); INSERT INTO reservations (vm, "
			      "tenant, vcpus, cpu_policy, thread_policy, shares, created_at) "
			      "VALUES ('%s', '%s', %d, 'shared', 'prefer', '0:%d', 1)", name,
			      tenant, vcpus, name, tenant, vcpus, vcpus);
	if (st_exec(st, sql) != SQLITE_OK)
		fail_msg("insert VM: %s", sqlite3_errmsg(store_sqlite(st)));
	free(sql);
}

static json_t *parse_details(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j || !json_is_object(j))
		fail_msg("details '%s' are not a JSON object", text);
	return j;
}

/* --- opening and migrations ------------------------------------------------ */

static void test_open_creates_wal_db(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(path, &st, &err), 0);
	assert_null(err);
	assert_int_equal(store_schema_version(st), (int)store_migrations_count);
	assert_string_equal(store_path(st), path);
	/* not readable by others, nor its WAL (umask 022: SQLite made 0644) */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0007, 0);
	_cleanup_free_ char *wal = xasprintf("%s-wal", path);
	if (stat(wal, &sb) == 0)
		assert_int_equal(sb.st_mode & 0007, 0);
	store_close(st);
	/* an older database others could read loses that at the next open */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(store_open(path, &st, &err), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	store_close(st);

	/* read back by another connection: WAL is a property of the file */
	_cleanup_free_ char *mode = raw_text(path, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	assert_int_equal(raw_int(path, "PRAGMA application_id"), STORE_APPLICATION_ID);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), (int)store_migrations_count);
	/* the newest migration is the version a new database is at */
	assert_int_equal(store_migrations[store_migrations_count - 1].version,
			 (int)store_migrations_count);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				 "AND name IN ('tenants', 'vms', 'vcpus', 'events', 'vm_samples')"), 5);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
				 "AND name IN ('events_ts', 'vms_tenant')"), 2);
}

static void test_connection_settings(void **state)
{
	struct fx *f = *state;
	assert_int_equal(st_int(f->st, "PRAGMA foreign_keys"), 1);
	assert_int_equal(st_int(f->st, "PRAGMA busy_timeout"), STORE_BUSY_TIMEOUT_MS);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1); /* NORMAL */
	/* and foreign keys are enforced, not just reported */
	assert_int_equal(st_exec(f->st, "INSERT INTO vms (name, tenant, vcpus, source, "
				 "created_at, updated_at) VALUES ('vm1', 'nobody', 1, "
				 "'registered', 1, 1)"), SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_extended_errcode(store_sqlite(f->st)),
			 SQLITE_CONSTRAINT_FOREIGNKEY);
}

static void test_reopen_is_idempotent(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(path, &st, &err), 0);
	struct tenant t = mk_tenant("acme", 8);
	create_ok(st, &t);
	store_close(st);
	int64_t objects = raw_int(path, "SELECT count(*) FROM sqlite_schema");
	assert_true(objects >= 8);

	for (int i = 0; i < 2; i++) {
		assert_int_equal(store_open(path, &st, &err), 0);
		assert_int_equal(store_schema_version(st), (int)store_migrations_count);
		struct tenant got = get_ok(st, "acme");
		assert_int_equal(got.vcpus, 8);
		assert_int_equal(event_count(st), 1);
		store_close(st);
		assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_schema"), objects);
	}
}

static void test_two_connections_share_a_file(void **state)
{
	struct fx *f = *state;
	struct store *other = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(f->path, &other, &err), 0);
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	struct tenant got = get_ok(other, "acme");
	assert_int_equal(got.vcpus, 4);
	store_close(other);
}

/* 008: a cap saved by a vcpud that counted holds in ticks keeps its cap
 * and its wall-clock hold; its hold length becomes milliseconds (ticks of
 * the default 1 s interval). */
static void test_upgrade_throttle_holds_to_ms(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open_at_version(path, 7, &st, &err), 0);
	assert_int_equal(st_exec(st, "INSERT INTO tenants (name, vcpus, weight, class, "
				 "created_at, updated_at) VALUES ('t', 8, 100, 'best-effort', 1, 1);"
				 "INSERT INTO vms (name, tenant, vcpus, source, created_at, "
				 "updated_at) VALUES ('b1', 't', 2, 'registered', 1, 1);"
				 "INSERT INTO throttle_caps (vm, dry, quota_us, last_good_us, probing, "
				 "hold_len, hold_until_ms, last_action, victims, saved_ms) VALUES "
				 "('b1', 0, 25000, 0, 0, 40, 1700000040000, 'backoff', '[\"g\"]', "
				 "1700000000000)"), SQLITE_OK);
	store_close(st);
	assert_int_equal(store_open(path, &st, &err), 0);
	struct store_throttle_cap *caps = NULL;
	size_t n = 0;
	assert_int_equal(store_throttle_load(st, &caps, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(caps[0].c.vm, "b1");
	assert_int_equal(caps[0].c.quota_us, 25000);
	assert_int_equal(caps[0].c.hold_len_ms, 40000);
	assert_int_equal(caps[0].hold_until_ms, 1700000040000LL);
	store_throttle_caps_free(caps, n);
	store_close(st);
}

static void test_upgrade_from_version_1(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open_at_version(path, 1, &st, &err), 0);
	assert_int_equal(store_schema_version(st), 1);
	assert_int_equal(st_int(st, "SELECT count(*) FROM sqlite_schema WHERE name = 'vm_samples'"), 0);
	/* a tenant and its event as a version-1 vcpud wrote them (today's code
	 * needs the newest schema, so raw SQL) */
	assert_int_equal(st_exec(st, "INSERT INTO tenants (name, vcpus, weight, cpu_max_cores, "
				 "class, created_at, updated_at) VALUES ('acme', 8, 300, 2.5, "
				 "'guaranteed', 1700000000, 1700000000); INSERT INTO events (ts_ms, "
				 "actor, action, target) VALUES (1700000000000, 'uid:0', "
				 "'tenant.create', 'tenant/acme')"), SQLITE_OK);
	store_close(st);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);

	assert_int_equal(store_open(path, &st, &err), 0);
	assert_null(err);
	assert_int_equal(store_schema_version(st), (int)store_migrations_count);
	struct tenant after = get_ok(st, "acme");
	assert_int_equal(after.vcpus, 8);
	assert_int_equal(after.weight, 300);
	assert_true(after.cpu_max_set);
	assert_true(after.cpu_max_cores == 2.5);
	assert_false(after.memory_set);
	assert_int_equal(after.class_, TENANT_CLASS_GUARANTEED);
	assert_int_equal(after.created_at, 1700000000);
	assert_int_equal(after.vcpus_used, 0);
	assert_int_equal(event_count(st), 1);
	/* the new table is there and works with its foreign key */
	add_vm(st, "web-1", "acme", 2);
	assert_int_equal(st_exec(st, "INSERT INTO vm_samples (vm, ts_ms, usage_pct, steal_pct) VALUES ('web-1', 1000, 150.0, 12.5)"),
			 SQLITE_OK);
	assert_int_equal(st_exec(st, "INSERT INTO vm_samples (vm, ts_ms, usage_pct, steal_pct) VALUES ('ghost', 1000, 1.0, 1.0)"),
			 SQLITE_CONSTRAINT);
	assert_int_equal(st_exec(st, "INSERT INTO vm_samples (vm, ts_ms, usage_pct, steal_pct) VALUES ('web-1', 2000, 1.0, 101.0)"),
			 SQLITE_CONSTRAINT);
	assert_int_equal(store_integrity_check(st, &err), 0);
	store_close(st);

	/* asking for an older version never downgrades */
	assert_int_equal(store_open_at_version(path, 1, &st, &err), 0);
	assert_int_equal(store_schema_version(st), (int)store_migrations_count);
	store_close(st);
	/* and a version this binary does not have is refused */
	int beyond = (int)store_migrations_count + 1;
	assert_int_equal(store_open_at_version(path, beyond, &st, &err), -1);
	assert_null(st);
	_cleanup_free_ char *range = xasprintf("schema version %d is out of range (0..%zu)",
					       beyond, store_migrations_count);
	expect_error(&err, EINVAL, range);
}

static void test_newer_version_refused(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(path, &st, &err), 0);
	store_close(st);
	raw_exec(path, "PRAGMA user_version = 99");

	assert_int_equal(store_open(path, &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_int_equal(err->code, EPROTO);
	_cleanup_free_ char *want = xasprintf("database %s has schema version 99 but this "
					      "vcpud supports up to %zu: it was written by a "
					      "newer vcpud; refusing to open it", path,
					      store_migrations_count);
	assert_string_equal(err->msg, want);
	error_free(&err);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 99);
}

static void test_foreign_file_refused(void **state)
{
	(void)state;
	struct store *st = NULL;
	struct error *err = NULL;

	/* another application's database, marked as such */
	_cleanup_free_ char *path = new_db_path();
	raw_exec(path, "PRAGMA application_id = 1234; CREATE TABLE songs (title TEXT);");
	assert_int_equal(store_open(path, &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_int_equal(err->code, EPROTO);
	assert_contains(err->msg, path);
	assert_contains(err->msg, "is not a vcpud database (its application_id is 0x000004d2");
	error_free(&err);
	/* untouched: not switched to WAL, no tables of ours */
	_cleanup_free_ char *mode = raw_text(path, "PRAGMA journal_mode");
	assert_string_equal(mode, "delete");
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_schema"), 1);

	/* an unmarked database that already has tables */
	_cleanup_free_ char *path2 = new_db_path();
	raw_exec(path2, "CREATE TABLE songs (title TEXT);");
	assert_int_equal(store_open(path2, &st, &err), -1);
	expect_error(&err, EPROTO, "no vcpud application_id");
	assert_int_equal(raw_int(path2, "PRAGMA user_version"), 0);

	/* an unmarked database with another application's user_version */
	_cleanup_free_ char *path3 = new_db_path();
	raw_exec(path3, "PRAGMA user_version = 1");
	assert_int_equal(store_open(path3, &st, &err), -1);
	expect_error(&err, EPROTO, "is not a vcpud database");
}

static void test_garbage_file_refused(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", fp);
	fclose(fp);
	struct stat before;
	assert_int_equal(stat(path, &before), 0);

	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(path, &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_int_equal(err->code, EIO);
	_cleanup_free_ char *want = xasprintf("cannot open database %s: file is not a database",
					      path);
	assert_string_equal(err->msg, want);
	error_free(&err);
	struct stat after;
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct store *st = NULL;
	struct error *err = NULL;
	_cleanup_free_ char *path = xasprintf("%s/no/such/dir/x.db", tmpdir);
	assert_int_equal(store_open(path, &st, &err), -1);
	assert_null(st);
	assert_non_null(err);
	assert_int_equal(err->code, EIO);
	assert_contains(err->msg, path);
	assert_contains(err->msg, "unable to open database file");
	error_free(&err);

	/* a directory is not a database either */
	assert_int_equal(store_open(tmpdir, &st, &err), -1);
	expect_error(&err, EIO, tmpdir);

	assert_int_equal(store_open("", &st, &err), -1);
	expect_error(&err, EINVAL, "path is empty");
}

/* An in-memory database (other modules' tests) has no WAL but works. */
static void test_open_in_memory(void **state)
{
	(void)state;
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open(":memory:", &st, &err), 0);
	assert_int_equal(store_schema_version(st), (int)store_migrations_count);
	assert_int_equal(st_int(st, "PRAGMA foreign_keys"), 1);
	struct tenant t = mk_tenant("acme", 2);
	create_ok(st, &t);
	assert_int_equal(get_ok(st, "acme").vcpus, 2);
	store_close(st);
}

/* --- tenants ---------------------------------------------------------------- */

static void test_tenant_crud(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant acme = mk_tenant("acme", 8);
	acme.weight = 200;
	acme.cpu_max_set = true;
	acme.cpu_max_cores = 2.5;
	acme.memory_set = true;
	acme.memory_bytes = (int64_t)1 << 30;
	acme.class_ = TENANT_CLASS_GUARANTEED;
	create_ok(f->st, &acme);
	struct tenant zeta = mk_tenant("zeta", 0);
	create_ok(f->st, &zeta);
	struct tenant beta = mk_tenant("beta", 2);
	create_ok(f->st, &beta);

	struct tenant got = get_ok(f->st, "acme");
	assert_tenant_config_equal(&got, &acme);
	assert_int_equal(got.created_at, 1700000000);
	assert_int_equal(got.updated_at, 1700000000);
	assert_int_equal(got.vcpus_used, 0);
	assert_int_equal(got.vm_count, 0);
	/* NULL columns are "not set" */
	got = get_ok(f->st, "beta");
	assert_false(got.cpu_max_set);
	assert_false(got.memory_set);
	assert_int_equal(got.weight, TENANT_WEIGHT_DEFAULT);
	assert_int_equal(got.class_, TENANT_CLASS_BURSTABLE);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM tenants WHERE name = 'beta' "
				"AND cpu_max_cores IS NULL AND memory_bytes IS NULL"), 1);

	struct tenant *list = NULL;
	size_t n = 0;
	assert_int_equal(store_tenant_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "acme");
	assert_string_equal(list[1].name, "beta");
	assert_string_equal(list[2].name, "zeta");
	assert_int_equal(list[0].weight, 200);
	assert_int_equal(list[2].vcpus, 0);
	free(list);

	fake_now_ms += 5000;
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 16, .set_cpu_max = true,
				  .cpu_max_set = false, .set_class = true,
				  .class_ = TENANT_CLASS_BEST_EFFORT };
	struct tenant upd;
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", &upd, &err), 0);
	assert_int_equal(upd.vcpus, 16);
	assert_false(upd.cpu_max_set);
	assert_int_equal(upd.class_, TENANT_CLASS_BEST_EFFORT);
	assert_int_equal(upd.weight, 200);
	assert_true(upd.memory_set);
	assert_int_equal(upd.memory_bytes, (int64_t)1 << 30);
	assert_int_equal(upd.created_at, 1700000000);
	assert_int_equal(upd.updated_at, 1700000005);
	got = get_ok(f->st, "acme");
	assert_tenant_equal(&got, &upd);
	/* out may be NULL */
	struct tenant_patch p2 = { .set_memory = true, .memory_set = false };
	assert_int_equal(store_tenant_update(f->st, "acme", &p2, "uid:0", NULL, &err), 0);
	assert_false(get_ok(f->st, "acme").memory_set);

	assert_int_equal(store_tenant_delete(f->st, "beta", "uid:0", &err), 0);
	struct tenant gone;
	assert_int_equal(store_tenant_get(f->st, "beta", &gone, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, ENOENT);
	assert_string_equal(err->msg, "no tenant 'beta'");
	error_free(&err);
	assert_int_equal(tenant_count(f->st), 2);

	assert_int_equal(store_tenant_delete(f->st, "beta", "uid:0", &err), -1);
	expect_error(&err, ENOENT, "no tenant 'beta'");
	assert_int_equal(store_tenant_update(f->st, "beta", &p, "uid:0", NULL, &err), -1);
	expect_error(&err, ENOENT, "no tenant 'beta'");
}

static void test_tenant_list_empty(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant *list = (struct tenant *)&err; /* must be overwritten */
	size_t n = 99;
	assert_int_equal(store_tenant_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
}

static void test_tenant_limits_round_trip(void **state)
{
	struct fx *f = *state;
	struct tenant lo = mk_tenant("lo", 0);
	lo.weight = TENANT_WEIGHT_MIN;
	lo.cpu_max_set = true;
	lo.cpu_max_cores = TENANT_CPU_MAX_CORES_MIN;
	lo.memory_set = true;
	lo.memory_bytes = TENANT_MEMORY_MIN;
	struct tenant hi = mk_tenant("hi", TENANT_VCPUS_MAX);
	hi.weight = TENANT_WEIGHT_MAX;
	hi.cpu_max_set = true;
	hi.cpu_max_cores = TENANT_CPU_MAX_CORES_MAX;
	hi.memory_set = true;
	hi.memory_bytes = TENANT_MEMORY_MAX;
	hi.class_ = TENANT_CLASS_BEST_EFFORT;
	/* a name of the longest allowed length, all allowed characters */
	struct tenant longname = mk_tenant("", 1);
	memset(longname.name, 'a', NAME_MAX_LEN);
	memcpy(longname.name, "A-z_0.9", 7);
	longname.name[NAME_MAX_LEN] = '\0';
	create_ok(f->st, &lo);
	create_ok(f->st, &hi);
	create_ok(f->st, &longname);
	struct tenant g = get_ok(f->st, "lo");
	assert_tenant_config_equal(&g, &lo);
	g = get_ok(f->st, "hi");
	assert_tenant_config_equal(&g, &hi);
	g = get_ok(f->st, longname.name);
	assert_tenant_config_equal(&g, &longname);
}

static void test_tenant_create_invalid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("a/b", 1);
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid tenant name 'a/b'");
	t = mk_tenant("..", 1);
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid tenant name");
	t = mk_tenant("", 1);
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "tenant name is empty");
	t = mk_tenant("acme", TENANT_VCPUS_MAX + 1);
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "cannot create tenant 'acme': vcpus 65537 is out of range");
	t = mk_tenant("acme", 1);
	t.weight = 0;
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "weight 0");
	t = mk_tenant("acme", 1);
	t.memory_set = true;
	t.memory_bytes = 100;
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "memory_bytes 100");
	t = mk_tenant("acme", 1);
	t.class_ = TENANT_CLASS_LAST;
	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "class");
	assert_int_equal(store_tenant_create(f->st, NULL, "uid:0", &err), -1);
	expect_error(&err, EINVAL, NULL);
	assert_int_equal(tenant_count(f->st), 0);
	assert_int_equal(event_count(f->st), 0);
}

static void test_tenant_duplicate(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	create_ok(f->st, &t);
	struct tenant before = get_ok(f->st, "acme");
	fake_now_ms += 60000;
	struct tenant dup = mk_tenant("acme", 4);
	dup.weight = 5;
	assert_int_equal(store_tenant_create(f->st, &dup, "uid:0", &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EEXIST);
	assert_string_equal(err->msg, "tenant 'acme' already exists");
	error_free(&err);
	struct tenant after = get_ok(f->st, "acme");
	assert_tenant_equal(&before, &after);
	assert_int_equal(tenant_count(f->st), 1);
	assert_int_equal(event_count(f->st), 1);
}

static void test_tenant_update_invalid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	t.cpu_max_set = true;
	t.cpu_max_cores = 3;
	create_ok(f->st, &t);
	struct tenant before = get_ok(f->st, "acme");
	fake_now_ms += 60000;

	/* a valid field together with an invalid one: neither is applied */
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 12, .set_weight = true,
				  .weight = 0 };
	struct tenant out = before;
	out.vcpus = 777;
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", &out, &err), -1);
	expect_error(&err, EINVAL, "cannot update tenant 'acme': weight 0 is out of range");
	assert_int_equal(out.vcpus, 777); /* *out untouched on failure */

	struct tenant_patch p2 = { .set_cpu_max = true, .cpu_max_set = true,
				   .cpu_max_cores = 0.001 };
	assert_int_equal(store_tenant_update(f->st, "acme", &p2, "uid:0", NULL, &err), -1);
	expect_error(&err, EINVAL, "cpu_max_cores");
	struct tenant_patch p3 = { .set_vcpus = true, .vcpus = TENANT_VCPUS_MAX + 1 };
	assert_int_equal(store_tenant_update(f->st, "acme", &p3, "uid:0", NULL, &err), -1);
	expect_error(&err, EINVAL, "vcpus");
	struct tenant_patch p4 = { .set_class = true, .class_ = (enum tenant_class)7 };
	assert_int_equal(store_tenant_update(f->st, "acme", &p4, "uid:0", NULL, &err), -1);
	expect_error(&err, EINVAL, "class");
	assert_int_equal(store_tenant_update(f->st, "acme", NULL, "uid:0", NULL, &err), -1);
	expect_error(&err, EINVAL, "no patch");

	struct tenant after = get_ok(f->st, "acme");
	assert_tenant_equal(&before, &after);
	assert_int_equal(event_count(f->st), 1);
}

static void test_tenant_update_noop(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	create_ok(f->st, &t);
	fake_now_ms += 60000;
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 8, .set_memory = true,
				  .memory_set = false };
	struct tenant out;
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", &out, &err), 0);
	assert_int_equal(out.vcpus, 8);
	assert_int_equal(out.updated_at, 1700000000);
	assert_int_equal(get_ok(f->st, "acme").updated_at, 1700000000);
	assert_int_equal(event_count(f->st), 1);
}

static void test_tenant_delete_with_vms(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	create_ok(f->st, &t);
	struct tenant other = mk_tenant("other", 8);
	create_ok(f->st, &other);
	add_vm(f->st, "web-1", "acme", 2);
	add_vm(f->st, "web-2", "acme", 4);
	add_vm(f->st, "db-1", "other", 3);

	struct tenant got = get_ok(f->st, "acme");
	assert_int_equal(got.vcpus_used, 6);
	assert_int_equal(got.vm_count, 2);
	struct tenant *list = NULL;
	size_t n = 0;
	assert_int_equal(store_tenant_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].vcpus_used, 6);
	assert_int_equal(list[0].vm_count, 2);
	assert_int_equal(list[1].vcpus_used, 3);
	assert_int_equal(list[1].vm_count, 1);
	free(list);

	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EBUSY);
	assert_string_equal(err->msg, "tenant 'acme' still has 2 VMs and 2 admitted VMs: "
			    "release them first");
	error_free(&err);
	assert_int_equal(store_tenant_delete(f->st, "other", "uid:0", &err), -1);
	assert_non_null(err);
	assert_string_equal(err->msg, "tenant 'other' still has 1 VM and 1 admitted VM: "
			    "release them first");
	error_free(&err);
	assert_int_equal(tenant_count(f->st), 2);
	assert_int_equal(event_count(f->st), 2);

	/* the schema backs the check up: RESTRICT even for raw SQL */
	assert_int_equal(st_exec(f->st, "DELETE FROM tenants WHERE name = 'acme'"),
			 SQLITE_CONSTRAINT);

	/* deleting a VM takes its vCPU rows with it */
	assert_int_equal(st_exec(f->st, "INSERT INTO vcpus VALUES ('web-1', 0, 100), "
				 "('web-1', 1, 101)"), SQLITE_OK);
	assert_int_equal(st_exec(f->st, "DELETE FROM vms WHERE tenant = 'acme'; DELETE FROM "
				 "reservations WHERE tenant = 'acme'"), SQLITE_OK);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus"), 0);
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), 0);
	assert_int_equal(tenant_count(f->st), 1);
	assert_int_equal(event_count(f->st), 3);
}

static void test_tenant_lower_vcpus_below_used(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	create_ok(f->st, &t);
	add_vm(f->st, "web-1", "acme", 2);
	add_vm(f->st, "web-2", "acme", 4);
	struct tenant before = get_ok(f->st, "acme");

	struct tenant_patch p = { .set_vcpus = true, .vcpus = 5, .set_weight = true,
				  .weight = 50 };
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", NULL, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EBUSY);
	assert_string_equal(err->msg, "cannot lower the vCPU quota of tenant 'acme' to 5: "
			    "its 2 admitted VMs already hold 6 vCPUs");
	error_free(&err);
	struct tenant after = get_ok(f->st, "acme");
	assert_tenant_equal(&before, &after);
	assert_int_equal(event_count(f->st), 1);

	/* down to exactly what is used is fine */
	p.vcpus = 6;
	struct tenant out;
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", &out, &err), 0);
	assert_int_equal(out.vcpus, 6);
	assert_int_equal(out.weight, 50);
	assert_int_equal(out.vcpus_used, 6);
	assert_int_equal(event_count(f->st), 2);

	/* a tenant already over quota may still be raised or re-weighted */
	add_vm(f->st, "web-3", "acme", 4);
	struct tenant_patch w = { .set_weight = true, .weight = 70 };
	assert_int_equal(store_tenant_update(f->st, "acme", &w, "uid:0", NULL, &err), 0);
	struct tenant_patch up = { .set_vcpus = true, .vcpus = 8 };
	assert_int_equal(store_tenant_update(f->st, "acme", &up, "uid:0", NULL, &err), 0);
	struct tenant_patch down = { .set_vcpus = true, .vcpus = 7 };
	assert_int_equal(store_tenant_update(f->st, "acme", &down, "uid:0", NULL, &err), -1);
	expect_error(&err, EBUSY, "its 3 admitted VMs already hold 10 vCPUs");
	assert_int_equal(get_ok(f->st, "acme").vcpus, 8);
}

/* --- audit events ------------------------------------------------------------- */

static void test_audit_events_per_mutation(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 8);
	t.cpu_max_set = true;
	t.cpu_max_cores = 2.3;
	create_ok(f->st, &t);
	fake_now_ms += 1000;
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 16, .set_cpu_max = true,
				  .cpu_max_set = false, .set_weight = true, .weight = 100 };
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:7", NULL, &err), 0);
	fake_now_ms += 1000;
	assert_int_equal(store_tenant_delete(f->st, "acme", NULL, &err), 0);

	struct store_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(store_event_list(f->st, 0, 0, 0, &ev, &n, &err), 0);
	assert_int_equal(n, 3);

	assert_string_equal(ev[0].action, "tenant.create");
	assert_string_equal(ev[0].actor, "uid:1000");
	assert_string_equal(ev[0].target, "tenant/acme");
	assert_int_equal(ev[0].ts_ms, 1700000000000LL);
	assert_string_equal(ev[0].details,
			    "{\"name\":\"acme\",\"vcpus\":8,\"weight\":100,\"cpu_max_cores\":2.3,"
			    "\"memory_bytes\":null,\"class\":\"burstable\"}");

	assert_string_equal(ev[1].action, "tenant.update");
	assert_string_equal(ev[1].actor, "uid:7");
	assert_string_equal(ev[1].target, "tenant/acme");
	assert_int_equal(ev[1].ts_ms, 1700000001000LL);
	json_t *d = parse_details(ev[1].details);
	json_t *changed = json_object_get(d, "changed");
	assert_true(json_is_object(changed));
	assert_int_equal(json_object_size(changed), 2); /* weight 100 -> 100 is no change */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(changed, "vcpus"), "old")), 8);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(changed, "vcpus"), "new")), 16);
	json_t *cm = json_object_get(changed, "cpu_max_cores");
	assert_true(json_real_value(json_object_get(cm, "old")) == 2.3);
	assert_true(json_is_null(json_object_get(cm, "new")));
	json_decref(d);

	assert_string_equal(ev[2].action, "tenant.delete");
	assert_string_equal(ev[2].actor, "vcpud");
	assert_int_equal(ev[2].ts_ms, 1700000002000LL);
	d = parse_details(ev[2].details);
	assert_string_equal(json_string_value(json_object_get(d, "name")), "acme");
	assert_int_equal(json_integer_value(json_object_get(d, "vcpus")), 16);
	assert_true(json_is_null(json_object_get(d, "cpu_max_cores")));
	json_decref(d);
	assert_true(ev[0].id < ev[1].id && ev[1].id < ev[2].id);
	store_events_free(ev, n);
}

static void test_refused_mutations_write_no_event(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	add_vm(f->st, "web-1", "acme", 4);
	assert_int_equal(event_count(f->st), 1);

	assert_int_equal(store_tenant_create(f->st, &t, "uid:0", &err), -1);      /* EEXIST */
	error_free(&err);
	struct tenant bad = mk_tenant("x y", 1);
	assert_int_equal(store_tenant_create(f->st, &bad, "uid:0", &err), -1);    /* EINVAL */
	error_free(&err);
	struct tenant_patch low = { .set_vcpus = true, .vcpus = 1 };
	assert_int_equal(store_tenant_update(f->st, "acme", &low, "uid:0", NULL, &err), -1);
	error_free(&err);
	struct tenant_patch inval = { .set_weight = true, .weight = 99999 };
	assert_int_equal(store_tenant_update(f->st, "acme", &inval, "uid:0", NULL, &err), -1);
	error_free(&err);
	assert_int_equal(store_tenant_update(f->st, "nope", &inval, "uid:0", NULL, &err), -1);
	error_free(&err);
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);  /* EBUSY */
	error_free(&err);
	assert_int_equal(store_tenant_delete(f->st, "nope", "uid:0", &err), -1);  /* ENOENT */
	error_free(&err);
	assert_int_equal(event_count(f->st), 1);
}

/* A mutation whose audit event cannot be written does not happen at all. */
static void test_mutation_rolled_back_with_its_event(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	struct tenant before = get_ok(f->st, "acme");
	assert_int_equal(st_exec(f->st, "CREATE TEMP TRIGGER no_audit BEFORE INSERT ON "
				 "main.events BEGIN SELECT RAISE(ABORT, 'audit log "
				 "unavailable'); END"), SQLITE_OK);

	struct tenant t2 = mk_tenant("beta", 1);
	assert_int_equal(store_tenant_create(f->st, &t2, "uid:0", &err), -1);
	expect_error(&err, EIO, "audit log unavailable");
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 9 };
	fake_now_ms += 1000;
	assert_int_equal(store_tenant_update(f->st, "acme", &p, "uid:0", NULL, &err), -1);
	expect_error(&err, EIO, "cannot update tenant 'acme'");
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	expect_error(&err, EIO, "cannot delete tenant 'acme'");
	assert_int_equal(store_event_add(f->st, "vcpud", "daemon.start", "", NULL, &err), -1);
	expect_error(&err, EIO, "audit log unavailable");

	assert_int_equal(tenant_count(f->st), 1);
	struct tenant after = get_ok(f->st, "acme");
	assert_tenant_equal(&before, &after);
	assert_int_equal(event_count(f->st), 1);
	/* the failed durable ones left the connection at NORMAL */
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);
	/* and the connection is usable again afterwards */
	assert_int_equal(st_exec(f->st, "DROP TRIGGER temp.no_audit"), SQLITE_OK);
	assert_int_equal(store_tenant_create(f->st, &t2, "uid:0", &err), 0);
	assert_int_equal(tenant_count(f->st), 2);
}

/* A change a client is told has been made syncs at its commit (FULL);
 * then, and after a rollback, the connection is at NORMAL again. */
static void test_durable_transactions(void **state)
{
	struct fx *f = *state;
	struct store_tx tx = { 0 };
	assert_int_equal(store_tx_begin_durable(f->st, &tx, NULL), 0);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 2); /* FULL */
	assert_int_equal(store_tx_commit(&tx, NULL), 0);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);
	store_tx_endp(&tx);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);

	struct store_tx rb = { 0 };
	assert_int_equal(store_tx_begin_durable(f->st, &rb, NULL), 0);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 2);
	store_tx_endp(&rb); /* rolled back */
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);

	/* an ordinary one stays NORMAL; a tenant's creation ends at NORMAL */
	struct store_tx n = { 0 };
	assert_int_equal(store_tx_begin(f->st, &n, NULL), 0);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);
	assert_int_equal(store_tx_commit(&n, NULL), 0);
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	assert_int_equal(st_int(f->st, "PRAGMA synchronous"), 1);
}

static void test_event_add_and_list(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	int64_t ids[5];
	for (int i = 0; i < 5; i++) {
		fake_now_ms = 1000 * (i + 1);
		char target[32];
		snprintf(target, sizeof(target), "vm/web-%d", i);
		assert_int_equal(store_event_add(f->st, i == 0 ? NULL : "vcpud", "throttle.cap",
						 i == 4 ? NULL : target,
						 i == 1 ? NULL : "{\"steal_pct\":31.5}", &err), 0);
		ids[i] = sqlite3_last_insert_rowid(store_sqlite(f->st));
	}

	struct store_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(store_event_list(f->st, 0, 0, 0, &ev, &n, &err), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ev[i].id, ids[i]);
		assert_int_equal(ev[i].ts_ms, 1000 * (int64_t)(i + 1));
		assert_string_equal(ev[i].action, "throttle.cap");
	}
	assert_string_equal(ev[0].actor, "vcpud");     /* NULL actor */
	assert_string_equal(ev[1].details, "{}");      /* NULL details */
	assert_string_equal(ev[2].details, "{\"steal_pct\":31.5}");
	assert_string_equal(ev[3].target, "vm/web-3");
	assert_string_equal(ev[4].target, "");         /* NULL target */
	store_events_free(ev, n);

	/* after an id: strictly after */
	assert_int_equal(store_event_list(f->st, ids[1], 0, 0, &ev, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ev[0].id, ids[2]);
	store_events_free(ev, n);
	/* since a time: inclusive */
	assert_int_equal(store_event_list(f->st, 0, 4000, 0, &ev, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0].ts_ms, 4000);
	assert_int_equal(ev[1].ts_ms, 5000);
	store_events_free(ev, n);
	/* both, and a limit keeps the oldest */
	assert_int_equal(store_event_list(f->st, ids[0], 2000, 2, &ev, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0].id, ids[1]);
	assert_int_equal(ev[1].id, ids[2]);
	store_events_free(ev, n);
	/* nothing left */
	assert_int_equal(store_event_list(f->st, ids[4], 0, 10, &ev, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(ev);
	store_events_free(ev, n);
	assert_int_equal(store_event_list(f->st, 0, 6000, 10, &ev, &n, &err), 0);
	assert_int_equal(n, 0);
	/* limit 1 */
	assert_int_equal(store_event_list(f->st, 0, 0, 1, &ev, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].id, ids[0]);
	store_events_free(ev, n);
}

static void test_event_add_invalid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "[1,2]", &err), -1);
	expect_error(&err, EINVAL, "must be a JSON object, not an array");
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "\"s\"", &err), -1);
	expect_error(&err, EINVAL, "not a string");
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "{\"a\":", &err), -1);
	expect_error(&err, EINVAL, "not valid JSON");
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "{} {}", &err), -1);
	expect_error(&err, EINVAL, "not valid JSON");
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "{\"a\":1,\"a\":2}", &err), -1);
	expect_error(&err, EINVAL, "duplicate");
	assert_int_equal(store_event_add(f->st, "vcpud", "x.y", "t", "", &err), -1);
	expect_error(&err, EINVAL, "not valid JSON");
	assert_int_equal(store_event_add(f->st, "vcpud", "", "t", "{}", &err), -1);
	expect_error(&err, EINVAL, "action is empty");
	assert_int_equal(store_event_add(f->st, "vcpud", NULL, "t", "{}", &err), -1);
	expect_error(&err, EINVAL, "action is empty");
	assert_int_equal(event_count(f->st), 0);
	/* the table refuses non-objects too, whoever writes */
	assert_int_equal(st_exec(f->st, "INSERT INTO events (ts_ms, actor, action, target, "
				 "details) VALUES (1, 'a', 'b', 'c', '[]')"), SQLITE_CONSTRAINT);
	assert_int_equal(st_exec(f->st, "INSERT INTO events (ts_ms, actor, action, target, "
				 "details) VALUES (1, 'a', 'b', 'c', 'nope')"), SQLITE_CONSTRAINT);
}

/* --- schema constraints and integrity --------------------------------------- */

static void test_schema_refuses_bad_rows(void **state)
{
	struct fx *f = *state;
	const char *bad[] = {
		"INSERT INTO tenants VALUES ('a/b', 1, 100, NULL, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('..', 1, 100, NULL, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 65537, 100, NULL, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 1, 0, NULL, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 1, 100, 0.001, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 1, 100, NULL, 100, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 1, 100, NULL, NULL, 'gold', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 'eight', 100, NULL, NULL, 'burstable', 1, 1)",
		"INSERT INTO tenants VALUES ('t', 1, 100, NULL, NULL, 'burstable', 5, 1)",
		"INSERT INTO vms (name, tenant, vcpus, source, created_at, updated_at) "
		"VALUES ('v', 'ok', 0, 'registered', 1, 1)",
		"INSERT INTO vms (name, tenant, vcpus, source, created_at, updated_at) "
		"VALUES ('v', 'ok', 1, 'magic', 1, 1)",
		"INSERT INTO vms (name, tenant, vcpus, state, source, created_at, updated_at) "
		"VALUES ('v', 'ok', 1, 'dancing', 'proc', 1, 1)",
		"INSERT INTO vms (name, tenant, pid, vcpus, source, created_at, updated_at) "
		"VALUES ('v', 'ok', 0, 1, 'proc', 1, 1)",
	};
	assert_int_equal(st_exec(f->st, "INSERT INTO tenants VALUES ('ok', 1, 100, NULL, NULL, "
				 "'burstable', 1, 1)"), SQLITE_OK);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int rc = st_exec(f->st, bad[i]);
		if (rc != SQLITE_CONSTRAINT)
			fail_msg("expected a constraint error for %s, got %d", bad[i], rc);
	}
	assert_int_equal(tenant_count(f->st), 1);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vms"), 0);
}

static void test_integrity_check(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	assert_int_equal(store_integrity_check(f->st, &err), 0);
	assert_null(err);

	/* a hand edit with foreign keys off leaves an orphan behind */
	raw_exec(f->path, "INSERT INTO vms (name, tenant, vcpus, source, created_at, "
		 "updated_at) VALUES ('orphan', 'ghost', 1, 'proc', 1, 1)");
	assert_int_equal(store_integrity_check(f->st, &err), -1);
	expect_error(&err, EIO, "a row of table vms refers to a missing row of table tenants");
	raw_exec(f->path, "DELETE FROM vms WHERE name = 'orphan'");
	assert_int_equal(store_integrity_check(f->st, &err), 0);
}

/* --- the statement cache ------------------------------------------------------ */

/* A statement is compiled once and reused by later calls: the cache does
 * not grow with the calls, and every run still counts as a statement. */
static void test_stmt_cache_reuse(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	struct tenant got;
	assert_int_equal(store_tenant_get(f->st, "acme", &got, &err), 0);
	size_t cached = store_stmt_cached(f->st);
	uint64_t compiled = store_stmt_compiled(f->st);
	assert_true(cached > 0);
	assert_int_equal(cached, compiled);
	uint64_t runs = store_statements(f->st);
	for (int i = 0; i < 50; i++)
		assert_int_equal(store_tenant_get(f->st, "acme", &got, &err), 0);
	assert_int_equal(store_stmt_cached(f->st), cached);
	assert_int_equal(store_stmt_compiled(f->st), compiled);
	/* one SELECT per get: reuse runs the statement, and counts it */
	assert_int_equal(store_statements(f->st) - runs, 50);
	assert_string_equal(got.name, "acme");
	assert_int_equal(got.vcpus, 4);
	/* the same SQL text at another address is the same statement */
	_cleanup_free_ char *copy = xstrdup("SELECT count(*) FROM tenants");
	sqlite3_stmt *a = NULL, *b = NULL;
	assert_int_equal(store_prepare(f->st, "SELECT count(*) FROM tenants", &a, "count", &err), 0);
	store_stmt_release(a);
	assert_int_equal(store_prepare(f->st, copy, &b, "count", &err), 0);
	assert_ptr_equal(a, b);
	store_stmt_release(b);
}

/* A failed run (a constraint, a missing row) leaves a statement that the
 * next call runs cleanly, with its own bindings. */
static void test_stmt_cache_reuse_after_error(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct tenant t = mk_tenant("acme", 4);
	create_ok(f->st, &t);
	/* the INSERT fails on the primary key, then succeeds for another name */
	assert_int_equal(store_tenant_create(f->st, &t, NULL, &err), -1);
	assert_non_null(err);
	error_free(&err);
	uint64_t compiled = store_stmt_compiled(f->st);
	struct tenant u = mk_tenant("beta", 2);
	create_ok(f->st, &u);
	assert_int_equal(store_stmt_compiled(f->st), compiled);
	assert_int_equal(tenant_count(f->st), 2);
	/* a read that finds nothing, then one that finds a row */
	struct tenant got;
	assert_int_equal(store_tenant_get(f->st, "nobody", &got, &err), -1);
	expect_error(&err, ENOENT, "nobody");
	assert_int_equal(store_tenant_get(f->st, "beta", &got, &err), 0);
	assert_int_equal(got.vcpus, 2);
	/* a statement whose table went away fails; once it is back, it runs */
	sqlite3_stmt *s = NULL;
	assert_int_equal(st_exec(f->st, "CREATE TABLE scratch (x INTEGER)"), SQLITE_OK);
	assert_int_equal(store_prepare(f->st, "INSERT INTO scratch VALUES (?1)", &s, "scratch",
				       &err), 0);
	assert_int_equal(sqlite3_bind_int(s, 1, 7), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	store_stmt_release(s);
	assert_int_equal(st_exec(f->st, "DROP TABLE scratch"), SQLITE_OK);
	assert_int_equal(store_prepare(f->st, "INSERT INTO scratch VALUES (?1)", &s, "scratch",
				       &err), 0);
	assert_int_equal(sqlite3_bind_int(s, 1, 8), SQLITE_OK);
	assert_int_equal(sqlite3_step(s) & 0xff, SQLITE_ERROR);
	store_stmt_release(s);
	assert_int_equal(st_exec(f->st, "CREATE TABLE scratch (x INTEGER)"), SQLITE_OK);
	assert_int_equal(store_prepare(f->st, "INSERT INTO scratch VALUES (?1)", &s, "scratch",
				       &err), 0);
	/* released: its old binding is gone (NULL), not 7 or 8 */
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	store_stmt_release(s);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM scratch WHERE x IS NULL"), 1);
	/* SQL that does not compile is an error naming what, and is not kept */
	size_t cached = store_stmt_cached(f->st);
	assert_int_equal(store_prepare(f->st, "SELEC nonsense", &s, "do nonsense", &err), -1);
	expect_error(&err, EIO, "cannot prepare the statement to do nonsense");
	assert_null(s);
	assert_int_equal(store_stmt_cached(f->st), cached);
}

/* A cached statement serves transaction after transaction, committed or
 * rolled back, and a read left half way does not hold the next writer. */
static void test_stmt_cache_across_transactions(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *name = xasprintf("t%d", i);
		struct tenant t = mk_tenant(name, 1);
		create_ok(f->st, &t);
	}
	uint64_t compiled = store_stmt_compiled(f->st);
	for (int i = 3; i < 6; i++) {
		_cleanup_free_ char *name = xasprintf("t%d", i);
		struct tenant t = mk_tenant(name, 1);
		create_ok(f->st, &t);
	}
	/* each create is a transaction; none compiled anything new */
	assert_int_equal(store_stmt_compiled(f->st), compiled);
	assert_int_equal(tenant_count(f->st), 6);

	/* by hand: a read stepped once (one row of six), then the scope ends
	 * and the write transaction after it commits */
	{
		STORE_LOCK(f->st);
		_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
		assert_int_equal(store_read_begin(f->st, &tx, &err), 0);
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		assert_int_equal(store_prepare(f->st, "SELECT name FROM tenants ORDER BY name", &s,
					       "list", &err), 0);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_true(sqlite3_stmt_busy(s));
		/* the same SQL while the first is mid-read: a second copy */
		sqlite3_stmt *again = NULL;
		assert_int_equal(store_prepare(f->st, "SELECT name FROM tenants ORDER BY name",
					       &again, "list", &err), 0);
		assert_ptr_not_equal(again, s);
		assert_int_equal(sqlite3_step(again), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(again, 0), "t0");
		store_stmt_release(again);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), "t1");
	}
	{
		STORE_LOCK(f->st);
		_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
		assert_int_equal(store_tx_begin(f->st, &tx, &err), 0);
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		assert_int_equal(store_prepare(f->st, "DELETE FROM tenants WHERE name = ?1", &s,
					       "delete", &err), 0);
		assert_int_equal(sqlite3_bind_text(s, 1, "t0", -1, SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_DONE);
		/* not committed: rolled back at the end of the scope */
	}
	assert_int_equal(tenant_count(f->st), 6);
	{
		STORE_LOCK(f->st);
		_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
		assert_int_equal(store_tx_begin(f->st, &tx, &err), 0);
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		assert_int_equal(store_prepare(f->st, "DELETE FROM tenants WHERE name = ?1", &s,
					       "delete", &err), 0);
		assert_int_equal(sqlite3_bind_text(s, 1, "t5", -1, SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_DONE);
		assert_int_equal(store_tx_commit(&tx, &err), 0);
	}
	assert_int_equal(tenant_count(f->st), 5);
	/* the mutations after all that still work and leave their events */
	struct tenant t = mk_tenant("last", 1);
	create_ok(f->st, &t);
	assert_int_equal(tenant_count(f->st), 6);
	/* a second connection can write: no statement holds a lock */
	raw_exec(f->path, "UPDATE tenants SET weight = 7 WHERE name = 'last'");
	struct tenant got;
	assert_int_equal(store_tenant_get(f->st, "last", &got, &err), 0);
	assert_int_equal(got.weight, 7);
}

/* Checkpoints in the background: the connection's commits never checkpoint
 * (the WAL grows past SQLite's 1,000-page trigger), the thread copies the
 * log into the database, and close stops it and leaves nothing behind. */
static void wal_frames(struct store *st, int64_t *log, int64_t *done)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(sqlite3_db_filename(store_sqlite(st), "main"), &db,
					 SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_stmt *s = NULL;
	/* PASSIVE from a third connection: says how much of the log is in */
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &s, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	*log = sqlite3_column_int64(s, 1);
	*done = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void test_checkpoint_in_background(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	assert_int_equal(store_checkpoint_in_background(f->st, 3600 * 1000, &err), 0);
	/* about 1,500 pages of log, none of it checkpointed by the commits */
	char big[4000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char *details = xasprintf("{\"pad\":\"%s\"}", big);
	for (int i = 0; i < 1500; i++)
		assert_int_equal(store_event_add(f->st, "uid:0", "test.pad", NULL, details, &err), 0);
	free(details);
	assert_int_equal(store_checkpoints(f->st), 0);
	struct stat sb;
	_cleanup_free_ char *wal = xasprintf("%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size > 1200 * 4096); /* no commit cut it short */
	store_close(f->st);

	/* a thread that checkpoints every 20 ms catches up on its own */
	assert_int_equal(store_open(f->path, &f->st, &err), 0);
	store_set_clock(f->st, fake_clock);
	assert_int_equal(store_checkpoint_in_background(f->st, 20, &err), 0);
	assert_int_equal(store_event_add(f->st, "uid:0", "test.one", NULL, NULL, &err), 0);
	for (int i = 0; i < 200 && store_checkpoints(f->st) < 2; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_true(store_checkpoints(f->st) >= 2);
	int64_t log = -1, done = -1;
	wal_frames(f->st, &log, &done);
	assert_true(log >= 0);
	assert_int_equal(done, log);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM events WHERE action = 'test.pad'"),
			 1500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_creates_wal_db),
		cmocka_unit_test_setup_teardown(test_connection_settings, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_durable_transactions, fx_setup, fx_teardown),
		cmocka_unit_test(test_reopen_is_idempotent),
		cmocka_unit_test_setup_teardown(test_two_connections_share_a_file, fx_setup, fx_teardown),
		cmocka_unit_test(test_upgrade_from_version_1),
		cmocka_unit_test(test_upgrade_throttle_holds_to_ms),
		cmocka_unit_test(test_newer_version_refused),
		cmocka_unit_test(test_foreign_file_refused),
		cmocka_unit_test(test_garbage_file_refused),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_in_memory),
		cmocka_unit_test_setup_teardown(test_tenant_crud, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_list_empty, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_limits_round_trip, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_create_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_duplicate, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_update_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_update_noop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_delete_with_vms, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_lower_vcpus_below_used, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit_events_per_mutation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refused_mutations_write_no_event, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mutation_rolled_back_with_its_event, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_add_and_list, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_add_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_schema_refuses_bad_rows, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_integrity_check, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_in_background, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stmt_cache_reuse, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stmt_cache_reuse_after_error, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stmt_cache_across_transactions, fx_setup,
						fx_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
