/* test_store_reservation.c - the store's admission ledger against real
 * SQLite files in a temporary directory: add, get, list and delete with
 * every field and their audit events; duplicates, unknown tenants and
 * invalid fields that change nothing and log nothing; the schema's CHECKs
 * agreeing with the C checks at the edges; a tenant with admitted VMs that
 * cannot be deleted; and the upgrade of a version-3 database. */
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-store-res.XXXXXX"
#include "store_test_util.h"

#include <stdarg.h>

#include "vcpud/tenant.h"
#include "vcpud/vm.h"

/* --- helpers ------------------------------------------------------------ */

static int64_t res_count(struct store *st)
{
	return st_int(st, "SELECT count(*) FROM reservations");
}

static void tenant_ok(struct store *st, const char *name, uint32_t vcpus)
{
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus = vcpus;
	struct error *err = NULL;
	if (store_tenant_create(st, &t, "uid:0", &err) < 0)
		fail_msg("create tenant %s: %s", name, err->msg);
}

static void vm_ok(struct store *st, const char *name, const char *tenant, uint32_t vcpus)
{
	struct vm v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.tenant, sizeof(v.tenant), "%s", tenant);
	v.vcpus = vcpus;
	v.state = VM_STATE_RUNNING;
	v.source = VM_SOURCE_REGISTERED;
	struct error *err = NULL;
	if (store_vm_create(st, &v, "uid:0", &err) < 0)
		fail_msg("register %s: %s", name, err->msg);
}

/* Replace one of the heap texts of a reservation (shares, pcpus). */
static void res_text(char **field, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void res_text(char **field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *v = NULL;
	assert_true(vasprintf(&v, fmt, ap) >= 0);
	va_end(ap);
	free(*field);
	*field = v;
}

/* A text of n copies of c. */
static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A shared reservation on node 0 without memory (its texts on the heap:
 * store_reservation_clear() it). */
static struct store_reservation mk_res(const char *vm, const char *tenant, uint32_t vcpus)
{
	struct store_reservation r;
	memset(&r, 0, sizeof(r));
	snprintf(r.vm, sizeof(r.vm), "%s", vm);
	snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
	r.vcpus = vcpus;
	snprintf(r.cpu_policy, sizeof(r.cpu_policy), "shared");
	snprintf(r.thread_policy, sizeof(r.thread_policy), "prefer");
	res_text(&r.shares, "0:%u", vcpus);
	res_text(&r.pcpus, "%s", "");
	return r;
}

/* *r = new, freeing what *r held. */
static void res_set(struct store_reservation *r, struct store_reservation new)
{
	store_reservation_clear(r);
	*r = new;
}

/* A dedicated reservation across two nodes with memory: every field set. */
static struct store_reservation mk_dedicated(const char *vm, const char *tenant)
{
	struct store_reservation r = mk_res(vm, tenant, 4);
	r.memory_set = true;
	r.memory_bytes = 3 * GIB;
	snprintf(r.cpu_policy, sizeof(r.cpu_policy), "dedicated");
	snprintf(r.thread_policy, sizeof(r.thread_policy), "require");
	res_text(&r.shares, "0:2,1:2");
	res_text(&r.pcpus, "4-5,12-13");
	return r;
}

static void res_ok(struct store *st, const struct store_reservation *r)
{
	struct error *err = NULL;
	if (store_reservation_add(st, r, "uid:1000", &err) < 0)
		fail_msg("admit %s: %s", r->vm, err->msg);
}

static struct store_reservation res_get_ok(struct store *st, const char *vm)
{
	struct error *err = NULL;
	struct store_reservation r;
	if (store_reservation_get(st, vm, &r, &err) < 0)
		fail_msg("get reservation %s: %s", vm, err->msg);
	return r;
}

/* Every field but created_at (set by the store). */
static void assert_res_equal(const struct store_reservation *a,
			     const struct store_reservation *b)
{
	assert_string_equal(a->vm, b->vm);
	assert_string_equal(a->tenant, b->tenant);
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->memory_set, b->memory_set);
	if (a->memory_set)
		assert_int_equal(a->memory_bytes, b->memory_bytes);
	assert_string_equal(a->cpu_policy, b->cpu_policy);
	assert_string_equal(a->thread_policy, b->thread_policy);
	assert_string_equal(a->shares, b->shares);
	assert_string_equal(a->pcpus, b->pcpus);
}

/* The details must be exactly the reservation, field for field. */
static void assert_res_json(const json_t *d, const struct store_reservation *r)
{
	assert_int_equal(json_object_size(d), 8);
	assert_string_equal(jstr(d, "vm"), r->vm);
	assert_string_equal(jstr(d, "tenant"), r->tenant);
	assert_int_equal(jint(d, "vcpus"), r->vcpus);
	if (r->memory_set)
		assert_int_equal(jint(d, "memory_bytes"), r->memory_bytes);
	else
		assert_true(json_is_null(json_object_get(d, "memory_bytes")));
	assert_string_equal(jstr(d, "cpu_policy"), r->cpu_policy);
	assert_string_equal(jstr(d, "thread_policy"), r->thread_policy);
	assert_string_equal(jstr(d, "shares"), r->shares);
	assert_string_equal(jstr(d, "pcpus"), r->pcpus);
}

/* --- round trip ------------------------------------------------------------- */

static void test_add_get_list_delete(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16);
	tenant_ok(f->st, "beta", 16);

	_cleanup_(store_reservation_clear) struct store_reservation web = mk_dedicated("web-1", "acme");
	res_ok(f->st, &web);
	json_t *d = last_event(f->st, "vm.admit", "vm/web-1", "uid:1000");
	assert_res_json(d, &web);
	json_decref(d);

	fake_now_ms += 5000;
	_cleanup_(store_reservation_clear) struct store_reservation db = mk_res("db-1", "beta", 6);
	snprintf(db.thread_policy, sizeof(db.thread_policy), "isolate");
	assert_int_equal(store_reservation_add(f->st, &db, NULL, &err), 0);
	assert_null(err);
	d = last_event(f->st, "vm.admit", "vm/db-1", "vcpud");
	assert_res_json(d, &db);
	json_decref(d);
	assert_int_equal(event_count(f->st), 4);

	_cleanup_(store_reservation_clear) struct store_reservation got = res_get_ok(f->st, "web-1");
	assert_res_equal(&got, &web);
	assert_true(got.memory_set);
	assert_int_equal(got.memory_bytes, 3 * GIB);
	assert_int_equal(got.created_at, 1700000000);
	res_set(&got, res_get_ok(f->st, "db-1"));
	assert_res_equal(&got, &db);
	assert_false(got.memory_set);
	assert_string_equal(got.pcpus, "");
	assert_int_equal(got.created_at, 1700000005);
	/* "no memory" is a NULL column */
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM reservations WHERE vm = 'db-1' "
				"AND memory_bytes IS NULL"), 1);

	/* ordered by VM name, not by insertion */
	struct store_reservation *list = NULL;
	size_t n = 0;
	assert_int_equal(store_reservation_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_res_equal(&list[0], &db);
	assert_res_equal(&list[1], &web);
	assert_int_equal(list[0].created_at, 1700000005);
	assert_int_equal(list[1].created_at, 1700000000);
	store_reservations_free(list, n);

	fake_now_ms += 1000;
	assert_int_equal(store_reservation_delete(f->st, "web-1", "uid:7", NULL, &err), 0);
	assert_null(err);
	d = last_event(f->st, "vm.unadmit", "vm/web-1", "uid:7");
	assert_res_json(d, &web);
	json_decref(d);
	assert_int_equal(event_count(f->st), 5);
	assert_int_equal(store_reservation_get(f->st, "web-1", &got, &err), -1);
	expect_error_msg(&err, ENOENT, "VM 'web-1' is not admitted");
	assert_int_equal(store_reservation_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].vm, "db-1");
	store_reservations_free(list, n);

	/* an unadmitted name can be admitted again, with another placement */
	web.vcpus = 2;
	res_text(&web.shares, "1:2");
	res_text(&web.pcpus, "12-13");
	res_ok(f->st, &web);
	res_set(&got, res_get_ok(f->st, "web-1"));
	assert_res_equal(&got, &web);
	assert_int_equal(got.created_at, 1700000006);
	assert_int_equal(store_integrity_check(f->st, &err), 0);
}

static void test_list_empty_and_get_unknown(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	static struct store_reservation stale;
	struct store_reservation *list = &stale; /* must be reset */
	size_t n = 99;
	assert_int_equal(store_reservation_list(f->st, &list, &n, &err), 0);
	assert_null(list);
	assert_int_equal(n, 0);

	tenant_ok(f->st, "acme", 8);
	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("web-1", "acme", 1);
	res_ok(f->st, &r);
	int64_t events = event_count(f->st);
	struct store_reservation got = { 0 };
	assert_int_equal(store_reservation_get(f->st, "ghost", &got, &err), -1);
	expect_error_msg(&err, ENOENT, "VM 'ghost' is not admitted");
	assert_int_equal(store_reservation_get(f->st, NULL, &got, &err), -1);
	expect_error(&err, EINVAL, NULL);
	assert_int_equal(store_reservation_delete(f->st, "ghost", "uid:0", NULL, &err), -1);
	expect_error_msg(&err, ENOENT, "VM 'ghost' is not admitted");
	assert_int_equal(store_reservation_delete(f->st, NULL, "uid:0", NULL, &err), -1);
	expect_error(&err, EINVAL, NULL);
	assert_int_equal(store_reservation_add(f->st, NULL, "uid:0", &err), -1);
	expect_error(&err, EINVAL, NULL);
	/* a registered VM is not an admitted one */
	vm_ok(f->st, "db-1", "acme", 1);
	events++;
	assert_int_equal(store_reservation_get(f->st, "db-1", &got, &err), -1);
	expect_error_msg(&err, ENOENT, "VM 'db-1' is not admitted");
	assert_int_equal(res_count(f->st), 1);
	assert_int_equal(event_count(f->st), events);

	assert_int_equal(store_reservation_delete(f->st, "web-1", NULL, NULL, &err), 0);
	assert_int_equal(store_reservation_delete(f->st, "web-1", NULL, NULL, &err), -1);
	expect_error(&err, ENOENT, NULL);
	assert_int_equal(event_count(f->st), events + 1);
}

/* --- refusals ------------------------------------------------------------------ */

static void test_duplicate(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16);
	tenant_ok(f->st, "other", 16);
	_cleanup_(store_reservation_clear) struct store_reservation web = mk_dedicated("web-1", "acme");
	res_ok(f->st, &web);
	int64_t events = event_count(f->st);
	fake_now_ms += 60000;

	_cleanup_(store_reservation_clear) struct store_reservation again = mk_dedicated("web-1", "acme");
	assert_int_equal(store_reservation_add(f->st, &again, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "VM 'web-1' is already admitted");
	/* under another tenant and another placement, still the same VM */
	_cleanup_(store_reservation_clear) struct store_reservation other = mk_res("web-1", "other", 2);
	assert_int_equal(store_reservation_add(f->st, &other, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "VM 'web-1' is already admitted");

	_cleanup_(store_reservation_clear) struct store_reservation got = res_get_ok(f->st, "web-1");
	assert_res_equal(&got, &web);
	assert_int_equal(got.created_at, 1700000000);
	assert_int_equal(res_count(f->st), 1);
	assert_int_equal(event_count(f->st), events);
}

static void test_unknown_tenant(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8);
	int64_t events = event_count(f->st);
	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("web-1", "ghost", 1);
	assert_int_equal(store_reservation_add(f->st, &r, "uid:0", &err), -1);
	expect_error_msg(&err, ENOENT, "no tenant 'ghost'");
	/* names are case-sensitive, as the tenants table's key is */
	res_set(&r, mk_res("web-1", "ACME", 1));
	assert_int_equal(store_reservation_add(f->st, &r, "uid:0", &err), -1);
	expect_error_msg(&err, ENOENT, "no tenant 'ACME'");
	assert_int_equal(res_count(f->st), 0);
	assert_int_equal(event_count(f->st), events);
}

/* One invalid reservation: EINVAL with `needle` in the message, no row, no
 * event. */
static void expect_invalid(struct store *st, const struct store_reservation *r,
			   const char *needle)
{
	struct error *err = NULL;
	int64_t rows = res_count(st), events = event_count(st);
	assert_int_equal(store_reservation_add(st, r, "uid:0", &err), -1);
	expect_error(&err, EINVAL, needle);
	assert_int_equal(res_count(st), rows);
	assert_int_equal(event_count(st), events);
}

static void test_invalid_fields(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8);

	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("../x", "acme", 1);
	assert_int_equal(store_reservation_add(f->st, &r, "uid:0", &err), -1);
	expect_error_msg(&err, EINVAL, "cannot admit VM: invalid VM name '../x': use 1 to "
			 "64 of A-Z a-z 0-9 _ . - (not '.' or '..')");
	res_set(&r, mk_res("", "acme", 1));
	expect_invalid(f->st, &r, "VM name is empty");
	res_set(&r, mk_res("..", "acme", 1));
	expect_invalid(f->st, &r, "invalid VM name '..'");
	res_set(&r, mk_res("web-1", "../x", 1));
	expect_invalid(f->st, &r, "cannot admit VM 'web-1': invalid tenant name '../x'");
	res_set(&r, mk_res("web-1", "", 1));
	expect_invalid(f->st, &r, "tenant name is empty");

	res_set(&r, mk_res("web-1", "acme", 0));
	assert_int_equal(store_reservation_add(f->st, &r, "uid:0", &err), -1);
	expect_error_msg(&err, EINVAL, "cannot admit VM 'web-1': 0 vCPUs is out of range "
			 "(1..4096)");
	res_set(&r, mk_res("web-1", "acme", 4097));
	expect_invalid(f->st, &r, "4097 vCPUs is out of range (1..4096)");
	res_set(&r, mk_res("web-1", "acme", UINT32_MAX));
	expect_invalid(f->st, &r, "vCPUs is out of range");

	res_set(&r, mk_res("web-1", "acme", 1));
	r.memory_set = true;
	r.memory_bytes = 0;
	expect_invalid(f->st, &r, "memory size 0 bytes is not positive");
	r.memory_bytes = -GIB;
	expect_invalid(f->st, &r, "is not positive");

	res_set(&r, mk_res("web-1", "acme", 1));
	snprintf(r.cpu_policy, sizeof(r.cpu_policy), "Shared");
	expect_invalid(f->st, &r, "unknown CPU policy 'Shared' (shared or dedicated)");
	r.cpu_policy[0] = '\0';
	expect_invalid(f->st, &r, "unknown CPU policy ''");
	res_set(&r, mk_res("web-1", "acme", 1));
	snprintf(r.thread_policy, sizeof(r.thread_policy), "strict");
	expect_invalid(f->st, &r, "unknown thread policy 'strict' (prefer, isolate or "
		       "require)");
	snprintf(r.thread_policy, sizeof(r.thread_policy), "prefer ");
	expect_invalid(f->st, &r, "unknown thread policy 'prefer '");

	res_set(&r, mk_res("web-1", "acme", 1));
	res_text(&r.shares, "0:6;1");
	expect_invalid(f->st, &r, "invalid shares '0:6;1'");
	res_text(&r.shares, "0:1 ");
	expect_invalid(f->st, &r, "invalid shares '0:1 '");
	res_text(&r.shares, "-1:1");
	expect_invalid(f->st, &r, "invalid shares '-1:1'");
	res_text(&r.shares, "%s", "");
	expect_invalid(f->st, &r, "its shares are empty");

	res_set(&r, mk_res("web-1", "acme", 1));
	res_text(&r.pcpus, "1-3x");
	expect_invalid(f->st, &r, "invalid pCPU list '1-3x'");
	res_text(&r.pcpus, "0:1");
	expect_invalid(f->st, &r, "invalid pCPU list '0:1'");
	res_text(&r.pcpus, "1 2");
	expect_invalid(f->st, &r, "invalid pCPU list '1 2'");

	/* texts one past their limits; fixed buffers filled to the last byte
	 * (no terminating NUL) */
	res_set(&r, mk_res("web-1", "acme", 1));
	free(r.shares);
	r.shares = repeat('1', STORE_RES_SHARES_MAX + 1);
	expect_invalid(f->st, &r, "its shares are longer than 1023 characters");
	res_set(&r, mk_res("web-1", "acme", 1));
	free(r.pcpus);
	r.pcpus = repeat('1', STORE_RES_PCPUS_MAX + 1);
	expect_invalid(f->st, &r, "its pCPU list is longer than 65535 characters");
	free(r.pcpus);
	r.pcpus = NULL;
	expect_invalid(f->st, &r, "its pCPU list is missing");
	res_set(&r, mk_res("web-1", "acme", 1));
	memset(r.cpu_policy, 's', sizeof(r.cpu_policy));
	expect_invalid(f->st, &r, "unknown CPU policy 'ssssssssssssssss'");
	res_set(&r, mk_res("web-1", "acme", 1));
	memset(r.thread_policy, 'p', sizeof(r.thread_policy));
	expect_invalid(f->st, &r, "unknown thread policy");
	res_set(&r, mk_res("web-1", "acme", 1));
	memset(r.vm, 'a', sizeof(r.vm));
	expect_invalid(f->st, &r, "longer than 64 characters");
	res_set(&r, mk_res("web-1", "acme", 1));
	memset(r.tenant, 'a', sizeof(r.tenant));
	expect_invalid(f->st, &r, "longer than 64 characters");

	assert_int_equal(res_count(f->st), 0);
	assert_int_equal(event_count(f->st), 1);
}

/* What the C checks accept at their edges the table accepts too. */
static void test_edges_accepted(void **state)
{
	struct fx *f = *state;
	tenant_ok(f->st, "acme", 8);

	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("a", "acme", 1);
	res_ok(f->st, &r);
	res_set(&r, mk_res("b", "acme", VM_VCPUS_MAX));
	r.memory_set = true;
	r.memory_bytes = 1;
	res_ok(f->st, &r);
	res_set(&r, mk_res("c", "acme", 2));
	r.memory_set = true;
	r.memory_bytes = INT64_MAX;
	free(r.shares);
	r.shares = repeat('1', STORE_RES_SHARES_MAX);
	free(r.pcpus);
	r.pcpus = repeat(',', STORE_RES_PCPUS_MAX);
	res_ok(f->st, &r);
	char name[NAME_MAX_LEN + 1];
	memset(name, 'v', NAME_MAX_LEN);
	name[NAME_MAX_LEN] = '\0';
	res_set(&r, mk_res(name, "acme", 1));
	snprintf(r.cpu_policy, sizeof(r.cpu_policy), "dedicated");
	snprintf(r.thread_policy, sizeof(r.thread_policy), "isolate");
	res_text(&r.pcpus, "7");
	res_ok(f->st, &r);

	_cleanup_(store_reservation_clear) struct store_reservation got = res_get_ok(f->st, "c");
	assert_int_equal(strlen(got.shares), STORE_RES_SHARES_MAX);
	assert_int_equal(strlen(got.pcpus), STORE_RES_PCPUS_MAX);
	assert_int_equal(got.memory_bytes, INT64_MAX);
	res_set(&got, res_get_ok(f->st, "b"));
	assert_int_equal(got.vcpus, VM_VCPUS_MAX);
	assert_int_equal(got.memory_bytes, 1);
	res_set(&got, res_get_ok(f->st, name));
	assert_string_equal(got.vm, name);
	assert_string_equal(got.thread_policy, "isolate");
	assert_int_equal(res_count(f->st), 4);
}

/* The schema refuses what the C checks refuse, even from raw SQL. */
static void test_schema_checks(void **state)
{
	struct fx *f = *state;
	tenant_ok(f->st, "acme", 8);
#define INS "INSERT INTO reservations (vm, tenant, vcpus, memory_bytes, cpu_policy, " \
	"thread_policy, shares, pcpus, created_at) VALUES "
	assert_int_equal(st_exec(f->st, INS "('ok', 'acme', 2, NULL, 'shared', 'prefer', "
				 "'0:1,1:1', '', 1)"), SQLITE_OK);
	/* pcpus defaults to '' */
	assert_int_equal(st_exec(f->st, "INSERT INTO reservations (vm, tenant, vcpus, "
				 "cpu_policy, thread_policy, shares, created_at) VALUES "
				 "('ok2', 'acme', 1, 'shared', 'prefer', '0:1', 1)"), SQLITE_OK);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM reservations WHERE vm = 'ok2' "
				"AND pcpus = ''"), 1);
	static const char *const bad[] = {
		INS "('../x', 'acme', 1, NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('', 'acme', 1, NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'ghost', 1, NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 0, NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 4097, NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 'one', NULL, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 1, 0, 'shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 1, NULL, 'Shared', 'prefer', '0:1', '', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'strict', '0:1', '', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', '0:6;1', '', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', '', '', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', NULL, '', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', '0:1', '1-3x', 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', '0:1', NULL, 1)",
		INS "('x', 'acme', 1, NULL, 'shared', 'prefer', '0:1', '', NULL)",
		INS "('ok', 'acme', 1, NULL, 'shared', 'prefer', '0:1', '', 1)",
	};
#undef INS
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (st_exec(f->st, bad[i]) != SQLITE_CONSTRAINT)
			fail_msg("the schema accepted: %s", bad[i]);
	/* one past the limits of the C checks (STORE_RES_*_MAX) */
	assert_int_equal(st_exec(f->st, "INSERT INTO reservations (vm, tenant, vcpus, "
				 "cpu_policy, thread_policy, shares, created_at) VALUES ('x', "
				 "'acme', 1, 'shared', 'prefer', printf('%.1024c', '1'), 1)"),
			 SQLITE_CONSTRAINT);
	assert_int_equal(st_exec(f->st, "INSERT INTO reservations (vm, tenant, vcpus, "
				 "cpu_policy, thread_policy, shares, pcpus, created_at) VALUES "
				 "('x', 'acme', 1, 'shared', 'prefer', '1', printf('%.65536c', '1'), "
				 "1)"), SQLITE_CONSTRAINT);
	assert_int_equal(st_exec(f->st, "INSERT INTO reservations (vm, tenant, vcpus, "
				 "cpu_policy, thread_policy, shares, pcpus, created_at) VALUES "
				 "('x', 'acme', 1, 'shared', 'prefer', printf('%.1023c', '1'), "
				 "printf('%.65535c', '1'), 1)"), SQLITE_OK);
	assert_int_equal(res_count(f->st), 3);
}

/* --- tenants, atomicity, upgrade ----------------------------------------------- */

static void test_tenant_delete_refused(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16);
	tenant_ok(f->st, "other", 16);
	_cleanup_(store_reservation_clear) struct store_reservation r = mk_dedicated("web-1", "acme");
	res_ok(f->st, &r);
	res_set(&r, mk_res("web-2", "acme", 2));
	res_ok(f->st, &r);
	res_set(&r, mk_res("db-1", "other", 2));
	res_ok(f->st, &r);
	int64_t events = event_count(f->st);

	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	expect_error_msg(&err, EBUSY, "tenant 'acme' still has 2 admitted VMs: release them "
			 "first");
	assert_int_equal(store_tenant_delete(f->st, "other", "uid:0", &err), -1);
	expect_error_msg(&err, EBUSY, "tenant 'other' still has 1 admitted VM: release them "
			 "first");
	/* the schema backs the check up: RESTRICT even for raw SQL */
	assert_int_equal(st_exec(f->st, "DELETE FROM tenants WHERE name = 'acme'"),
			 SQLITE_CONSTRAINT);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM tenants"), 2);
	assert_int_equal(event_count(f->st), events);

	/* registered and admitted: both are named */
	vm_ok(f->st, "web-1", "acme", 4);
	assert_int_equal(store_reservation_delete(f->st, "web-2", "uid:0", NULL, &err), 0);
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	expect_error_msg(&err, EBUSY, "tenant 'acme' still has 1 VM and 1 admitted VM: "
			 "release them first");
	/* a release removes the VM and its reservation together */
	events = event_count(f->st);
	assert_int_equal(store_vm_delete(f->st, "web-1", "uid:0", &err), 0);
	assert_null(err);
	assert_int_equal(event_count(f->st), events + 2);
	json_t *ud = last_event(f->st, "vm.unadmit", "vm/web-1", "uid:0");
	assert_string_equal(jstr(ud, "reason"), "released");
	json_decref(ud);
	assert_int_equal(store_reservation_get(f->st, "web-1", &r, &err), -1);
	expect_error(&err, ENOENT, NULL);
	/* a reservation without a VM is released the same way */
	res_set(&r, mk_res("web-3", "acme", 1));
	res_ok(f->st, &r);
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	expect_error_msg(&err, EBUSY, "tenant 'acme' still has 1 admitted VM: release them "
			 "first");
	assert_int_equal(store_vm_delete(f->st, "web-3", "uid:0", &err), 0);
	assert_int_equal(store_vm_delete(f->st, "web-3", "uid:0", &err), -1);
	expect_error_msg(&err, ENOENT, "no VM or reservation 'web-3'");
	events = event_count(f->st);

	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), 0);
	assert_null(err);
	json_t *d = last_event(f->st, "tenant.delete", "tenant/acme", "uid:0");
	assert_string_equal(jstr(d, "name"), "acme");
	json_decref(d);
	assert_int_equal(event_count(f->st), events + 1);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM tenants"), 1);
	/* the other tenant's reservation is untouched */
	_cleanup_(store_reservation_clear) struct store_reservation other = res_get_ok(f->st, "db-1");
	assert_string_equal(other.tenant, "other");
	assert_int_equal(store_integrity_check(f->st, &err), 0);
}

/* A reservation whose audit event cannot be written does not happen. */
static void test_rolled_back_with_its_event(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16);
	_cleanup_(store_reservation_clear) struct store_reservation web = mk_dedicated("web-1", "acme");
	res_ok(f->st, &web);
	int64_t events = event_count(f->st);
	assert_int_equal(st_exec(f->st, "CREATE TEMP TRIGGER no_audit BEFORE INSERT ON "
				 "main.events BEGIN SELECT RAISE(ABORT, 'audit log "
				 "unavailable'); END"), SQLITE_OK);

	_cleanup_(store_reservation_clear) struct store_reservation db = mk_res("db-1", "acme", 2);
	assert_int_equal(store_reservation_add(f->st, &db, "uid:0", &err), -1);
	expect_error(&err, EIO, "audit log unavailable");
	assert_int_equal(store_reservation_delete(f->st, "web-1", "uid:0", NULL, &err), -1);
	expect_error(&err, EIO, "cannot unadmit VM 'web-1'");

	assert_int_equal(res_count(f->st), 1);
	_cleanup_(store_reservation_clear) struct store_reservation got = res_get_ok(f->st, "web-1");
	assert_res_equal(&got, &web);
	assert_int_equal(event_count(f->st), events);
	/* and the connection is usable again afterwards */
	assert_int_equal(st_exec(f->st, "DROP TRIGGER temp.no_audit"), SQLITE_OK);
	res_ok(f->st, &db);
	assert_int_equal(res_count(f->st), 2);
	assert_int_equal(event_count(f->st), events + 1);
}

static void test_upgrade_from_version_3(void **state)
{
	(void)state;
	_cleanup_free_ char *path = new_db_path();
	struct store *st = NULL;
	struct error *err = NULL;
	assert_int_equal(store_open_at_version(path, 3, &st, &err), 0);
	assert_int_equal(store_schema_version(st), 3);
	assert_int_equal(st_int(st, "SELECT count(*) FROM sqlite_schema WHERE name = "
				"'reservations'"), 0);
	/* rows as a version-3 vcpud wrote them (today's code needs the newest
	 * schema, so raw SQL) */
	assert_int_equal(st_exec(st, "INSERT INTO tenants (name, vcpus, created_at, updated_at) "
				 "VALUES ('acme', 8, 1700000000, 1700000000)"), SQLITE_OK);
	assert_int_equal(st_exec(st, "INSERT INTO vms (name, tenant, vcpus, state, source, "
				 "created_at, updated_at) VALUES ('web-1', 'acme', 2, 'running', "
				 "'registered', 1700000000, 1700000000)"), SQLITE_OK);
	int64_t events = event_count(st);
	store_close(st);

	assert_int_equal(store_open(path, &st, &err), 0);
	assert_null(err);
	assert_true(store_schema_version(st) >= 4);
	assert_int_equal(store_schema_version(st), (int)store_migrations_count);
	store_set_clock(st, fake_clock);
	struct tenant t;
	assert_int_equal(store_tenant_get(st, "acme", &t, &err), 0);
	assert_int_equal(t.vcpus, 8);
	assert_int_equal(t.vm_count, 1);
	struct vm v;
	assert_int_equal(store_vm_get(st, "web-1", &v, &err), 0);
	assert_int_equal(v.vcpus, 2);
	vm_clear(&v);
	assert_int_equal(event_count(st), events);
	assert_int_equal(st_int(st, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				"AND name = 'reservations'"), 1);
	assert_int_equal(st_int(st, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
				"AND name = 'reservations_tenant'"), 1);

	/* the new table works, with its foreign key */
	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("web-1", "acme", 2);
	res_ok(st, &r);
	_cleanup_(store_reservation_clear) struct store_reservation got = res_get_ok(st, "web-1");
	assert_res_equal(&got, &r);
	res_set(&r, mk_res("db-1", "ghost", 1));
	assert_int_equal(store_reservation_add(st, &r, "uid:0", &err), -1);
	expect_error(&err, ENOENT, "no tenant 'ghost'");
	assert_int_equal(store_integrity_check(st, &err), 0);
	store_close(st);

	/* and a reopen keeps it */
	assert_int_equal(store_open(path, &st, &err), 0);
	res_set(&got, res_get_ok(st, "web-1"));
	assert_string_equal(got.tenant, "acme");
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_get_list_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_list_empty_and_get_unknown, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_tenant, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_fields, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_edges_accepted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_schema_checks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_delete_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rolled_back_with_its_event, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_upgrade_from_version_3),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
