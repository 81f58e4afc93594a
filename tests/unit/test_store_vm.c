/* test_store_vm.c - the store's VMs against real SQLite files in a temporary
 * directory: registration with threads and read-back, registration with its
 * reservation in one transaction, conflicts and invalid input that change
 * nothing and log nothing (a PID held by a live VM, on create and on
 * update), the runtime updates the lifecycle makes (a no-op writes
 * nothing; identity and state_since_ms), the tenant's usage counted from
 * the reservations, the one-read inventory, and release. Quotas are
 * decided by admission (test_admit.c, test_registry.c), not here. */
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-store-vm.XXXXXX"
#include "store_test_util.h"

#include "vcpud/tenant.h"
#include "vcpud/vm.h"

/* --- helpers ------------------------------------------------------------ */

static int64_t vm_count(struct store *st)
{
	return st_int(st, "SELECT count(*) FROM vms");
}

static int64_t vcpu_rows(struct store *st)
{
	return st_int(st, "SELECT count(*) FROM vcpus");
}

static void tenant_ok(struct store *st, const char *name, uint32_t vcpus, int64_t memory)
{
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus = vcpus;
	if (memory) {
		t.memory_set = true;
		t.memory_bytes = memory;
	}
	struct error *err = NULL;
	if (store_tenant_create(st, &t, "uid:0", &err) < 0)
		fail_msg("create tenant %s: %s", name, err->msg);
}

static struct tenant tenant_get_ok(struct store *st, const char *name)
{
	struct error *err = NULL;
	struct tenant t;
	if (store_tenant_get(st, name, &t, &err) < 0)
		fail_msg("get tenant %s: %s", name, err->msg);
	return t;
}

/* A VM without threads; threads point at the caller's array. */
static struct vm mk_vm(const char *name, const char *tenant, uint32_t vcpus, pid_t pid)
{
	struct vm v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.tenant, sizeof(v.tenant), "%s", tenant);
	v.vcpus = vcpus;
	v.pid = pid;
	v.state = VM_STATE_RUNNING;
	v.source = VM_SOURCE_REGISTERED;
	return v;
}

static void vm_ok(struct store *st, const struct vm *v)
{
	struct error *err = NULL;
	if (store_vm_create(st, v, "uid:1000", &err) < 0)
		fail_msg("register %s: %s", v->name, err->msg);
}

static void vm_add(struct store *st, const char *name, const char *tenant, uint32_t vcpus,
		   pid_t pid)
{
	struct vm v = mk_vm(name, tenant, vcpus, pid);
	vm_ok(st, &v);
}

static struct vm vm_get_ok(struct store *st, const char *name)
{
	struct error *err = NULL;
	struct vm v;
	if (store_vm_get(st, name, &v, &err) < 0)
		fail_msg("get VM %s: %s", name, err->msg);
	return v;
}

/* store_vm_update_runtime() keeping the VM's source, start time unknown. */
static int upd(struct store *st, const char *name, enum vm_state state, pid_t pid,
	       const struct vm_vcpu *threads, size_t n, struct error **err)
{
	struct vm cur;
	enum vm_source src = VM_SOURCE_REGISTERED;
	if (name && store_vm_get(st, name, &cur, NULL) == 0) {
		src = cur.source;
		vm_clear(&cur);
	}
	struct store_vm_runtime rt = { .state = state, .source = src, .pid = pid,
				       .threads = threads, .n_threads = n };
	return store_vm_update_runtime(st, name, &rt, NULL, err);
}

static void set_state(struct store *st, const char *name, enum vm_state state, pid_t pid)
{
	struct error *err = NULL;
	if (upd(st, name, state, pid, NULL, 0, &err) < 0)
		fail_msg("update %s: %s", name, err->msg);
}

/* --- registration and reads ------------------------------------------------ */

static void test_register_and_read(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16, 0);

	struct vm_vcpu th[] = { { 0, 5001 }, { 2, 5003 }, { 3, 5004 } };
	struct vm web = mk_vm("web-1", "acme", 4, 1234);
	web.memory_set = true;
	web.memory_bytes = 2 * GIB;
	web.source = VM_SOURCE_LIBVIRT;
	snprintf(web.uuid, sizeof(web.uuid), "%s", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
	web.threads = th;
	web.n_threads = ARRAY_SIZE(th);
	vm_ok(f->st, &web);
	vm_add(f->st, "db-1", "acme", 2, 0);

	struct vm got = vm_get_ok(f->st, "web-1");
	assert_string_equal(got.name, "web-1");
	assert_string_equal(got.tenant, "acme");
	assert_int_equal(got.pid, 1234);
	assert_int_equal(got.vcpus, 4);
	assert_true(got.memory_set);
	assert_int_equal(got.memory_bytes, 2 * GIB);
	assert_int_equal(got.state, VM_STATE_RUNNING);
	assert_int_equal(got.source, VM_SOURCE_LIBVIRT);
	assert_string_equal(got.uuid, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
	assert_int_equal(got.created_at, 1700000000);
	assert_int_equal(got.updated_at, 1700000000);
	assert_int_equal(got.n_threads, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(got.threads[i].index, th[i].index);
		assert_int_equal(got.threads[i].tid, th[i].tid);
	}
	vm_clear(&got);
	/* one vcpus row per vCPU, NULL where the tid is not known */
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus WHERE vm = 'web-1'"), 4);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus WHERE vm = 'web-1' "
				"AND idx = 1 AND tid IS NULL"), 1);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus WHERE vm = 'db-1' "
				"AND tid IS NULL"), 2);
	/* "no pid", "no memory" and "no UUID" are NULL columns */
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vms WHERE name = 'db-1' AND "
				"pid IS NULL AND memory_bytes IS NULL AND uuid IS NULL"), 1);

	got = vm_get_ok(f->st, "db-1");
	assert_int_equal(got.pid, 0);
	assert_false(got.memory_set);
	assert_string_equal(got.uuid, "");
	assert_int_equal(got.n_threads, 0);
	assert_null(got.threads);
	vm_clear(&got);

	struct vm *list = NULL;
	size_t n = 0;
	assert_int_equal(store_vm_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "db-1");
	assert_int_equal(list[0].n_threads, 0);
	assert_string_equal(list[1].name, "web-1");
	assert_int_equal(list[1].n_threads, 3);
	assert_int_equal(list[1].threads[1].index, 2);
	assert_int_equal(list[1].threads[1].tid, 5003);
	assert_int_equal(list[1].memory_bytes, 2 * GIB);
	vm_list_free(list, n);

	/* usage is what the reservations hold: these two were never admitted */
	struct tenant t = tenant_get_ok(f->st, "acme");
	assert_int_equal(t.vcpus_used, 0);
	assert_int_equal(t.vm_count, 2);

	/* the audit event carries the VM as stored */
	assert_int_equal(event_count(f->st), 3);
	json_t *d = last_event(f->st, "vm.register", "vm/db-1", "uid:1000");
	assert_true(json_is_null(json_object_get(d, "pid")));
	assert_true(json_is_null(json_object_get(d, "memory_bytes")));
	assert_int_equal(json_array_size(json_object_get(d, "threads")), 0);
	json_decref(d);
	struct store_event *ev = NULL;
	assert_int_equal(store_event_list(f->st, 0, 0, 0, &ev, &n, &err), 0);
	assert_string_equal(ev[1].action, "vm.register");
	assert_string_equal(ev[1].target, "vm/web-1");
	json_error_t jerr;
	d = json_loads(ev[1].details, 0, &jerr);
	assert_non_null(d);
	assert_string_equal(jstr(d, "name"), "web-1");
	assert_string_equal(jstr(d, "tenant"), "acme");
	assert_int_equal(jint(d, "pid"), 1234);
	assert_int_equal(jint(d, "vcpus"), 4);
	assert_int_equal(jint(d, "memory_bytes"), 2 * GIB);
	assert_string_equal(jstr(d, "source"), "libvirt");
	json_t *threads = json_object_get(d, "threads");
	assert_int_equal(json_array_size(threads), 3);
	assert_int_equal(jint(json_array_get(threads, 2), "index"), 3);
	assert_int_equal(jint(json_array_get(threads, 2), "tid"), 5004);
	json_decref(d);
	store_events_free(ev, n);
}

static void test_list_empty_and_get_unknown(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct vm *list = (struct vm *)&err; /* must be overwritten */
	size_t n = 99;
	assert_int_equal(store_vm_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(list);
	struct vm v;
	assert_int_equal(store_vm_get(f->st, "ghost", &v, &err), -1);
	expect_error_msg(&err, ENOENT, "no VM 'ghost'");
}

/* The live VM holding a PID, by the PID: gone and stopped ones hold none;
 * one statement and one row, not the table. */
static void test_get_by_pid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16, 0);
	vm_add(f->st, "web-1", "acme", 2, 4000);
	vm_add(f->st, "web-2", "acme", 1, 4001);
	vm_add(f->st, "db-1", "acme", 1, 4002);
	set_state(f->st, "web-2", VM_STATE_GONE, 4001);
	set_state(f->st, "db-1", VM_STATE_STOPPED, 0);
	struct vm v;
	uint64_t r0 = store_rows(f->st), s0 = store_statements(f->st);
	assert_int_equal(store_vm_get_by_pid(f->st, 4000, &v, &err), 0);
	assert_int_equal(store_rows(f->st) - r0, 1);
	assert_true(store_statements(f->st) - s0 <= 3); /* BEGIN, SELECT, COMMIT */
	assert_string_equal(v.name, "web-1");
	assert_string_equal(v.tenant, "acme");
	assert_int_equal(v.pid, 4000);
	assert_int_equal(v.vcpus, 2);
	assert_int_equal(v.n_threads, 0);
	vm_clear(&v);
	assert_int_equal(store_vm_get_by_pid(f->st, 4001, &v, &err), -1);
	expect_error_msg(&err, ENOENT, "no live VM holds process 4001");
	assert_int_equal(store_vm_get_by_pid(f->st, 4002, &v, &err), -1);
	expect_error_msg(&err, ENOENT, "no live VM holds process 4002");
	assert_int_equal(store_vm_get_by_pid(f->st, 0, &v, &err), -1);
	expect_error_msg(&err, EINVAL, "cannot look a VM up by process: no process given");
	/* the PID taken by a new VM after web-2 went */
	vm_add(f->st, "web-3", "acme", 1, 4001);
	assert_int_equal(store_vm_get_by_pid(f->st, 4001, &v, &err), 0);
	assert_string_equal(v.name, "web-3");
	vm_clear(&v);
}

static void test_unknown_tenant(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	struct vm v = mk_vm("web-1", "ghost", 1, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error_msg(&err, ENOENT, "no tenant 'ghost'");
	assert_int_equal(vm_count(f->st), 0);
	assert_int_equal(event_count(f->st), 0);
}

static void test_duplicate_name(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	tenant_ok(f->st, "other", 8, 0);
	vm_add(f->st, "web-1", "acme", 2, 100);
	int64_t events = event_count(f->st);
	fake_now_ms += 60000;

	struct vm v = mk_vm("web-1", "other", 1, 200);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "VM 'web-1' already exists");
	/* even when it is gone: the name is taken until it is released */
	set_state(f->st, "web-1", VM_STATE_GONE, 100);
	events++;
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "VM 'web-1' already exists");

	struct vm got = vm_get_ok(f->st, "web-1");
	assert_string_equal(got.tenant, "acme");
	assert_int_equal(got.vcpus, 2);
	assert_int_equal(got.created_at, 1700000000);
	assert_int_equal(vm_count(f->st), 1);
	assert_int_equal(event_count(f->st), events);
}

static void test_duplicate_pid_and_uuid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	tenant_ok(f->st, "other", 8, 0);
	struct vm v = mk_vm("web-1", "acme", 1, 1234);
	snprintf(v.uuid, sizeof(v.uuid), "%s", "00000000-0000-0000-0000-000000000001");
	vm_ok(f->st, &v);
	int64_t events = event_count(f->st);

	v = mk_vm("web-2", "other", 1, 1234);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "process 1234 is already registered as VM 'web-1'");
	v = mk_vm("web-2", "other", 1, 99);
	snprintf(v.uuid, sizeof(v.uuid), "%s", "00000000-0000-0000-0000-000000000001");
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EEXIST, "is already registered as VM 'web-1'");
	v = mk_vm("web-2", "other", 1, 99);
	snprintf(v.uuid, sizeof(v.uuid), "%s", "not-a-uuid");
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "UUID 'not-a-uuid'");
	assert_int_equal(vm_count(f->st), 1);
	assert_int_equal(event_count(f->st), events);

	/* several VMs without a pid are fine */
	vm_add(f->st, "nopid-1", "acme", 1, 0);
	vm_add(f->st, "nopid-2", "acme", 1, 0);
	/* once web-1 is gone its pid may belong to a new VM */
	set_state(f->st, "web-1", VM_STATE_GONE, 1234);
	vm_add(f->st, "web-2", "other", 1, 1234);
	assert_int_equal(vm_get_ok(f->st, "web-2").pid, 1234);
}

static void test_invalid_vm(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);

	struct vm v = mk_vm("../x", "acme", 1, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid VM name '../x'");
	v = mk_vm("", "acme", 1, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "VM name is empty");
	v = mk_vm("web-1", "a/b", 1, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid tenant name 'a/b'");
	v = mk_vm("web-1", "acme", 0, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "vcpus 0 is out of range");
	v = mk_vm("web-1", "acme", VM_VCPUS_MAX + 1, 0);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "vcpus 4097 is out of range");
	v = mk_vm("web-1", "acme", 1, -5);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid pid -5");
	v = mk_vm("web-1", "acme", 1, 0);
	v.memory_set = true;
	v.memory_bytes = 0;
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "memory must be positive");
	v = mk_vm("web-1", "acme", 1, 0);
	v.state = VM_STATE_LAST;
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "invalid state or source");

	struct vm_vcpu over[] = { { 0, 10 }, { 4, 14 } };
	v = mk_vm("web-1", "acme", 4, 0);
	v.threads = over;
	v.n_threads = ARRAY_SIZE(over);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "vCPU index 4 is not below 4");
	struct vm_vcpu dup_idx[] = { { 1, 10 }, { 1, 11 } };
	v.threads = dup_idx;
	v.n_threads = ARRAY_SIZE(dup_idx);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "must be unique");
	struct vm_vcpu dup_tid[] = { { 0, 10 }, { 1, 10 } };
	v.threads = dup_tid;
	v.n_threads = ARRAY_SIZE(dup_tid);
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "thread 10 is listed twice");

	assert_int_equal(store_vm_create(f->st, NULL, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "no VM given");

	assert_int_equal(vm_count(f->st), 0);
	assert_int_equal(vcpu_rows(f->st), 0);
	assert_int_equal(event_count(f->st), 1); /* the tenant's */
}

/* A registration whose audit event cannot be written does not happen. */
static void test_register_rolled_back_with_its_event(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	vm_add(f->st, "keep", "acme", 1, 0);
	assert_int_equal(st_exec(f->st, "CREATE TEMP TRIGGER no_audit BEFORE INSERT ON "
				 "main.events BEGIN SELECT RAISE(ABORT, 'audit log "
				 "unavailable'); END"), SQLITE_OK);
	struct vm_vcpu th[] = { { 0, 10 } };
	struct vm v = mk_vm("web-1", "acme", 2, 77);
	v.threads = th;
	v.n_threads = 1;
	assert_int_equal(store_vm_create(f->st, &v, "uid:0", &err), -1);
	expect_error(&err, EIO, "audit log unavailable");
	assert_int_equal(upd(f->st, "keep", VM_STATE_GONE, 0, NULL, 0,
						 &err), -1);
	expect_error(&err, EIO, "audit log unavailable");
	assert_int_equal(store_vm_delete(f->st, "keep", "uid:0", &err), -1);
	expect_error(&err, EIO, "audit log unavailable");

	assert_int_equal(vm_count(f->st), 1);
	assert_int_equal(vcpu_rows(f->st), 1);
	assert_int_equal(vm_get_ok(f->st, "keep").state, VM_STATE_RUNNING);
	assert_int_equal(event_count(f->st), 2);
	assert_int_equal(st_exec(f->st, "DROP TRIGGER temp.no_audit"), SQLITE_OK);
	vm_ok(f->st, &v);
}

/* --- runtime updates ------------------------------------------------------------- */

static void test_update_runtime_noop(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	struct vm_vcpu th[] = { { 0, 100 }, { 1, 101 }, { 3, 103 } };
	struct vm v = mk_vm("web-1", "acme", 4, 1234);
	v.threads = th;
	v.n_threads = ARRAY_SIZE(th);
	vm_ok(f->st, &v);
	int64_t events = event_count(f->st);
	fake_now_ms += 60000;

	assert_int_equal(upd(f->st, "web-1", VM_STATE_RUNNING, 1234, th,
						 ARRAY_SIZE(th), &err), 0);
	assert_null(err);
	/* the same threads in another order, with an unknown tid listed */
	struct vm_vcpu shuffled[] = { { 3, 103 }, { 2, 0 }, { 0, 100 }, { 1, 101 } };
	assert_int_equal(upd(f->st, "web-1", VM_STATE_RUNNING, 1234,
						 shuffled, ARRAY_SIZE(shuffled), &err), 0);
	assert_int_equal(event_count(f->st), events);
	struct vm got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.updated_at, 1700000000);
	assert_int_equal(got.n_threads, 3);
	vm_clear(&got);

	/* a VM without threads stays so */
	vm_add(f->st, "bare", "acme", 1, 0);
	events = event_count(f->st);
	assert_int_equal(upd(f->st, "bare", VM_STATE_RUNNING, 0, NULL, 0,
						 &err), 0);
	assert_int_equal(event_count(f->st), events);
	assert_int_equal(vm_get_ok(f->st, "bare").updated_at, 1700000060);
}

static void test_update_runtime_changes(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	struct vm_vcpu th[] = { { 0, 100 }, { 1, 101 } };
	struct vm v = mk_vm("web-1", "acme", 4, 1234);
	v.threads = th;
	v.n_threads = ARRAY_SIZE(th);
	vm_ok(f->st, &v);
	int64_t events = event_count(f->st);

	/* threads only: written, but no event */
	fake_now_ms += 5000;
	struct vm_vcpu th2[] = { { 3, 203 }, { 1, 201 } };
	assert_int_equal(upd(f->st, "web-1", VM_STATE_RUNNING, 1234, th2,
						 ARRAY_SIZE(th2), &err), 1);
	assert_null(err);
	assert_int_equal(event_count(f->st), events);
	struct vm got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.updated_at, 1700000005);
	assert_int_equal(got.n_threads, 2);
	assert_int_equal(got.threads[0].index, 1);
	assert_int_equal(got.threads[0].tid, 201);
	assert_int_equal(got.threads[1].index, 3);
	assert_int_equal(got.threads[1].tid, 203);
	vm_clear(&got);
	assert_int_equal(vcpu_rows(f->st), 4);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus WHERE tid IS NULL AND "
				"idx IN (0, 2)"), 2);

	/* pid only: no event either */
	assert_int_equal(upd(f->st, "web-1", VM_STATE_RUNNING, 4321, th2,
						 ARRAY_SIZE(th2), &err), 1);
	assert_int_equal(event_count(f->st), events);
	got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.pid, 4321);
	assert_int_equal(got.n_threads, 2);
	vm_clear(&got);

	/* a state change is logged */
	fake_now_ms += 5000;
	assert_int_equal(upd(f->st, "web-1", VM_STATE_PAUSED, 4321, th2,
						 ARRAY_SIZE(th2), &err), 1);
	assert_int_equal(event_count(f->st), events + 1);
	json_t *d = last_event(f->st, "vm.state", "vm/web-1", "vcpud");
	assert_string_equal(jstr(d, "old"), "running");
	assert_string_equal(jstr(d, "new"), "paused");
	assert_int_equal(jint(d, "pid"), 4321);
	assert_null(json_object_get(d, "old_pid"));
	json_decref(d);

	/* gone: the process and its threads are no more */
	fake_now_ms += 5000;
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, NULL, 0,
						 &err), 1);
	d = last_event(f->st, "vm.state", "vm/web-1", "vcpud");
	assert_string_equal(jstr(d, "old"), "paused");
	assert_string_equal(jstr(d, "new"), "gone");
	assert_true(json_is_null(json_object_get(d, "pid")));
	assert_int_equal(jint(d, "old_pid"), 4321);
	json_decref(d);
	got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.state, VM_STATE_GONE);
	assert_int_equal(got.pid, 0);
	assert_int_equal(got.n_threads, 0);
	assert_int_equal(got.updated_at, 1700000015);
	assert_int_equal(got.created_at, 1700000000);
	vm_clear(&got);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vcpus WHERE tid IS NULL"), 4);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM vms WHERE pid IS NULL"), 1);
	/* and once more is a no-op */
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, NULL, 0,
						 &err), 0);
	assert_int_equal(event_count(f->st), events + 2);

	/* a VM whose vcpus rows are missing (hand-inserted) gets them */
	assert_int_equal(st_exec(f->st, "INSERT INTO vms (name, tenant, vcpus, state, source, "
				 "created_at, updated_at) VALUES ('raw', 'acme', 2, 'unknown', "
				 "'proc', 1, 1)"), SQLITE_OK);
	struct vm_vcpu th3[] = { { 1, 301 } };
	assert_int_equal(upd(f->st, "raw", VM_STATE_UNKNOWN, 0, th3, 1,
						 &err), 1);
	got = vm_get_ok(f->st, "raw");
	assert_int_equal(got.n_threads, 1);
	assert_int_equal(got.threads[0].tid, 301);
	vm_clear(&got);
}

static void test_update_runtime_invalid(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	struct vm_vcpu th[] = { { 0, 100 }, { 1, 101 } };
	struct vm v = mk_vm("web-1", "acme", 2, 1234);
	v.threads = th;
	v.n_threads = ARRAY_SIZE(th);
	vm_ok(f->st, &v);
	int64_t events = event_count(f->st);
	fake_now_ms += 5000;

	struct vm_vcpu over[] = { { 0, 200 }, { 2, 202 } };
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, over,
						 ARRAY_SIZE(over), &err), -1);
	expect_error(&err, EINVAL, "vCPU index 2 is not below 2");
	struct vm_vcpu dup[] = { { 1, 200 }, { 1, 201 } };
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, dup,
						 ARRAY_SIZE(dup), &err), -1);
	expect_error(&err, EINVAL, "must be unique");
	struct vm_vcpu dup_tid[] = { { 0, 200 }, { 1, 200 } };
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, dup_tid,
						 ARRAY_SIZE(dup_tid), &err), -1);
	expect_error(&err, EINVAL, "listed twice");
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, -1, NULL, 0,
						 &err), -1);
	expect_error(&err, EINVAL, "invalid pid");
	assert_int_equal(upd(f->st, "web-1", VM_STATE_LAST, 0, NULL, 0,
						 &err), -1);
	expect_error(&err, EINVAL, "invalid state");
	assert_int_equal(upd(f->st, "web-1", VM_STATE_GONE, 0, NULL, 2,
						 &err), -1);
	expect_error(&err, EINVAL, "no threads given");
	assert_int_equal(upd(f->st, "ghost", VM_STATE_GONE, 0, NULL, 0,
						 &err), -1);
	expect_error_msg(&err, ENOENT, "no VM 'ghost'");

	struct vm got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.state, VM_STATE_RUNNING);
	assert_int_equal(got.pid, 1234);
	assert_int_equal(got.n_threads, 2);
	assert_int_equal(got.threads[1].tid, 101);
	assert_int_equal(got.updated_at, 1700000000);
	vm_clear(&got);
	assert_int_equal(event_count(f->st), events);
}

/* --- gone VMs, tenants and release --------------------------------------------- */

/* A shared reservation of `vcpus` on node 0 (heap texts: clear it). */
static struct store_reservation mk_res(const char *vm, const char *tenant, uint32_t vcpus)
{
	struct store_reservation r;
	memset(&r, 0, sizeof(r));
	snprintf(r.vm, sizeof(r.vm), "%s", vm);
	snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
	r.vcpus = vcpus;
	snprintf(r.cpu_policy, sizeof(r.cpu_policy), "shared");
	snprintf(r.thread_policy, sizeof(r.thread_policy), "prefer");
	r.shares = xasprintf("0:%u", vcpus);
	r.pcpus = xstrdup("");
	return r;
}

static void test_register_with_reservation(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	_cleanup_(store_reservation_clear) struct store_reservation r = mk_res("web-1", "acme", 2);
	struct vm v = mk_vm("web-1", "acme", 2, 1234);
	v.start_time = 987654;
	int64_t events = event_count(f->st);
	assert_int_equal(store_vm_register(f->st, &r, &v, "uid:0", &err), 0);
	assert_null(err);
	/* one transaction, two events: the admission and the registration */
	assert_int_equal(event_count(f->st), events + 2);
	json_t *d = last_event(f->st, "vm.register", "vm/web-1", "uid:0");
	json_decref(d);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM events WHERE action = 'vm.admit' "
				"AND target = 'vm/web-1'"), 1);
	struct tenant t = tenant_get_ok(f->st, "acme");
	assert_int_equal(t.vcpus_used, 2);
	struct vm got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.start_time, 987654);
	assert_int_equal(got.state_since_ms, 1700000000000LL);
	vm_clear(&got);

	/* a refused VM leaves no reservation behind: the PID is web-1's */
	_cleanup_(store_reservation_clear) struct store_reservation r2 = mk_res("web-2", "acme", 1);
	v = mk_vm("web-2", "acme", 1, 1234);
	events = event_count(f->st);
	assert_int_equal(store_vm_register(f->st, &r2, &v, "uid:0", &err), -1);
	expect_error_msg(&err, EEXIST, "process 1234 is already registered as VM 'web-1'");
	assert_int_equal(store_reservation_get(f->st, "web-2", &r2, &err), -1);
	expect_error(&err, ENOENT, NULL);
	assert_int_equal(event_count(f->st), events);
	assert_int_equal(tenant_get_ok(f->st, "acme").vcpus_used, 2);
	/* nor does one whose reservation is already there */
	v = mk_vm("web-1", "acme", 2, 555);
	assert_int_equal(store_vm_register(f->st, &r, &v, "uid:0", &err), -1);
	expect_error(&err, EEXIST, "already admitted");
	/* a reservation for another VM or tenant is refused outright */
	v = mk_vm("web-3", "acme", 1, 556);
	assert_int_equal(store_vm_register(f->st, &r2, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "its reservation is for VM 'web-2'");
	assert_int_equal(event_count(f->st), events);

	/* the PID is refused on update too, unless its holder is gone */
	vm_add(f->st, "db-1", "acme", 1, 4000);
	events = event_count(f->st);
	assert_int_equal(upd(f->st, "db-1", VM_STATE_RUNNING, 1234, NULL, 0, &err), -1);
	expect_error(&err, EEXIST, "process 1234 is already registered as VM 'web-1'");
	assert_int_equal(vm_get_ok(f->st, "db-1").pid, 4000);
	assert_int_equal(event_count(f->st), events);
	fake_now_ms += 7000;
	set_state(f->st, "web-1", VM_STATE_GONE, 1234);
	got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.state_since_ms, 1700000007000LL);
	assert_int_equal(got.start_time, 0); /* the runtime gave none */
	vm_clear(&got);
	assert_int_equal(upd(f->st, "db-1", VM_STATE_RUNNING, 1234, NULL, 0, &err), 1);
	/* a gone VM keeps its reservation until the lifecycle frees it */
	assert_int_equal(tenant_get_ok(f->st, "acme").vcpus_used, 2);

	/* a VM coming back with a new reservation in the same transaction */
	assert_int_equal(store_reservation_delete(f->st, "web-1", "vcpud", "gone for 60 s", &err), 0);
	d = last_event(f->st, "vm.unadmit", "vm/web-1", "vcpud");
	assert_string_equal(jstr(d, "reason"), "gone for 60 s");
	json_decref(d);
	assert_int_equal(tenant_get_ok(f->st, "acme").vcpus_used, 0);
	struct store_vm_runtime rt = { .state = VM_STATE_RUNNING, .source = VM_SOURCE_PROC,
				       .pid = 5555, .start_time = 42 };
	assert_int_equal(store_vm_update_runtime(f->st, "web-1", &rt, &r, &err), 1);
	got = vm_get_ok(f->st, "web-1");
	assert_int_equal(got.source, VM_SOURCE_PROC);
	assert_int_equal(got.start_time, 42);
	vm_clear(&got);
	assert_int_equal(tenant_get_ok(f->st, "acme").vcpus_used, 2);
	/* ADMITTED is a view, never a stored state */
	rt.state = VM_STATE_ADMITTED;
	assert_int_equal(store_vm_update_runtime(f->st, "web-1", &rt, NULL, &err), -1);
	expect_error(&err, EINVAL, "not a state of a VM row");

	/* the inventory: everything in one read */
	struct store_inventory inv;
	assert_int_equal(store_inventory_read(f->st, &inv, &err), 0);
	assert_int_equal(inv.n_tenants, 1);
	assert_int_equal(inv.tenants[0].vcpus_used, 2);
	assert_int_equal(inv.n_vms, 2);
	assert_string_equal(inv.vms[0].name, "db-1");
	assert_string_equal(inv.vms[1].name, "web-1");
	assert_int_equal(inv.n_res, 1);
	assert_string_equal(inv.res[0].vm, "web-1");
	store_inventory_clear(&inv);
}

/* The inventory's threads are every VM's own, read in one statement. */
static void test_inventory_threads(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 64, 0);
	/* names whose order differs between "by name" and by insertion */
	const char *names[] = { "b", "a-2", "a", "c.1", "B", "a_1" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct vm_vcpu th[3];
		size_t n = i % 4; /* some with none */
		for (size_t k = 0; k < n && k < 3; k++)
			th[k] = (struct vm_vcpu){ (unsigned)k, (pid_t)(1000 * (i + 1) + k) };
		struct vm v = mk_vm(names[i], "acme", 3, (pid_t)(100 + i));
		v.threads = th;
		v.n_threads = n < 3 ? n : 3;
		vm_ok(f->st, &v);
	}
	struct store_inventory inv;
	assert_int_equal(store_inventory_read(f->st, &inv, &err), 0);
	assert_int_equal(inv.n_vms, ARRAY_SIZE(names));
	for (size_t j = 0; j < inv.n_vms; j++) {
		struct vm got = vm_get_ok(f->st, inv.vms[j].name);
		assert_int_equal(inv.vms[j].n_threads, got.n_threads);
		for (size_t k = 0; k < got.n_threads; k++)
			assert_int_equal(inv.vms[j].threads[k].tid, got.threads[k].tid);
		if (j > 0)
			assert_true(strcmp(inv.vms[j - 1].name, inv.vms[j].name) < 0);
		vm_clear(&got);
	}
	store_inventory_clear(&inv);
}

static void test_tenant_delete_and_release(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	struct vm_vcpu th[] = { { 0, 100 }, { 1, 101 } };
	struct vm v = mk_vm("web-1", "acme", 2, 1234);
	v.threads = th;
	v.n_threads = ARRAY_SIZE(th);
	vm_ok(f->st, &v);
	set_state(f->st, "web-1", VM_STATE_GONE, 0);
	int64_t events = event_count(f->st);

	/* gone still blocks the tenant's deletion */
	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), -1);
	expect_error_msg(&err, EBUSY, "tenant 'acme' still has 1 VM: release them first");
	assert_int_equal(event_count(f->st), events);

	fake_now_ms += 1000;
	assert_int_equal(store_vm_delete(f->st, "web-1", "uid:7", &err), 0);
	assert_null(err);
	assert_int_equal(vm_count(f->st), 0);
	assert_int_equal(vcpu_rows(f->st), 0);
	json_t *d = last_event(f->st, "vm.release", "vm/web-1", "uid:7");
	assert_string_equal(jstr(d, "name"), "web-1");
	assert_string_equal(jstr(d, "tenant"), "acme");
	assert_int_equal(jint(d, "vcpus"), 2);
	assert_string_equal(jstr(d, "state"), "gone");
	json_decref(d);
	struct vm got;
	assert_int_equal(store_vm_get(f->st, "web-1", &got, &err), -1);
	expect_error(&err, ENOENT, NULL);

	assert_int_equal(store_tenant_delete(f->st, "acme", "uid:0", &err), 0);
	assert_int_equal(event_count(f->st), events + 2);
	assert_int_equal(store_integrity_check(f->st, &err), 0);
}

static void test_release_unknown(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 8, 0);
	vm_add(f->st, "web-1", "acme", 1, 0);
	int64_t events = event_count(f->st);
	assert_int_equal(store_vm_delete(f->st, "ghost", "uid:0", &err), -1);
	expect_error_msg(&err, ENOENT, "no VM or reservation 'ghost'");
	assert_int_equal(store_vm_delete(f->st, NULL, "uid:0", &err), -1);
	expect_error(&err, EINVAL, NULL);
	assert_int_equal(vm_count(f->st), 1);
	assert_int_equal(event_count(f->st), events);
	/* a released name can be registered again */
	assert_int_equal(store_vm_delete(f->st, "web-1", NULL, &err), 0);
	assert_int_equal(store_vm_delete(f->st, "web-1", NULL, &err), -1);
	expect_error(&err, ENOENT, NULL);
	vm_add(f->st, "web-1", "acme", 8, 0);
}

/* --- the throttler's saved caps ------------------------------------------ */

static struct store_throttle_cap mk_cap(const char *vm, uint64_t quota, int64_t hold_until_ms)
{
	struct store_throttle_cap c;
	memset(&c, 0, sizeof(c));
	snprintf(c.c.vm, sizeof(c.c.vm), "%s", vm);
	c.c.quota_us = quota;
	c.c.hold_len_ms = 6000;
	c.c.last_kind = THROTTLE_BACKOFF;
	c.c.last_good_us = quota;
	c.hold_until_ms = hold_until_ms;
	return c;
}

static void test_throttle_caps(void **state)
{
	struct fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f->st, "acme", 16, 0);
	vm_add(f->st, "noisy1", "acme", 2, 0);
	vm_add(f->st, "noisy2", "acme", 2, 0);
	vm_add(f->st, "victim", "acme", 2, 0);
	char victims[1][NAME_MAX_LEN + 1] = { "victim" };
	struct store_throttle_cap caps[3] = {
		mk_cap("noisy1", 25000, 1700000010000),
		mk_cap("noisy2", 40000, 0),
		mk_cap("released", 30000, 0), /* not registered: skipped */
	};
	caps[0].c.victims = victims;
	caps[0].c.n_victims = 1;
	caps[1].c.dry = true;
	caps[1].c.probing = true;
	struct store_event_in ev[2] = {
		{ "throttle.cap", "vm/noisy1", "{\"cap_pct\":25}" },
		{ "throttle.cap", "vm/noisy2", NULL },
	};
	int64_t ev0 = event_count(f->st);
	assert_int_equal(store_throttle_record(f->st, ev, 2, true, caps, 3, &err), 0);
	assert_int_equal(event_count(f->st), ev0 + 2);

	struct store_throttle_cap *got = NULL;
	size_t n = 0;
	assert_int_equal(store_throttle_load(f->st, &got, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].c.vm, "noisy1");
	assert_int_equal(got[0].c.quota_us, 25000);
	assert_int_equal(got[0].c.last_good_us, 25000);
	assert_int_equal(got[0].c.hold_len_ms, 6000);
	assert_int_equal(got[0].hold_until_ms, 1700000010000);
	assert_int_equal(got[0].c.last_kind, THROTTLE_BACKOFF);
	assert_false(got[0].c.dry);
	assert_int_equal(got[0].c.n_victims, 1);
	assert_string_equal(got[0].c.victims[0], "victim");
	assert_true(got[1].c.dry);
	assert_true(got[1].c.probing);
	assert_int_equal(got[1].c.n_victims, 0);
	store_throttle_caps_free(got, n);

	/* events only: the caps stay */
	assert_int_equal(store_throttle_record(f->st, ev, 1, false, NULL, 0, &err), 0);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM throttle_caps"), 2);

	/* a bad row in the batch (a quota under the kernel's 1 ms) rolls back
	 * the events with it: never a decision without its cap */
	int64_t ev1 = event_count(f->st);
	struct store_throttle_cap bad[2] = { mk_cap("noisy1", 30000, 0), mk_cap("noisy2", 10, 0) };
	assert_int_equal(store_throttle_record(f->st, ev, 2, true, bad, 2, &err), -1);
	expect_error(&err, EIO, "cannot save the cap of VM noisy2");
	assert_int_equal(event_count(f->st), ev1);
	assert_int_equal(st_int(f->st, "SELECT quota_us FROM throttle_caps WHERE vm = 'noisy1'"),
			 25000);

	/* releasing a VM drops its cap; saving none clears the rest */
	assert_int_equal(store_vm_delete(f->st, "noisy1", "uid:0", &err), 0);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM throttle_caps"), 1);
	assert_int_equal(store_throttle_record(f->st, NULL, 0, true, NULL, 0, &err), 0);
	assert_int_equal(st_int(f->st, "SELECT count(*) FROM throttle_caps"), 0);

	/* a hand-edited victims list that is not names loses its victims only */
	assert_int_equal(store_throttle_record(f->st, NULL, 0, true, &caps[1], 1, &err), 0);
	assert_int_equal(st_exec(f->st, "UPDATE throttle_caps SET victims = '[1, \"../x\", \"ok\"]'"),
			 0);
	assert_int_equal(store_throttle_load(f->st, &got, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].c.n_victims, 1);
	assert_string_equal(got[0].c.victims[0], "ok");
	store_throttle_caps_free(got, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_and_read, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_list_empty_and_get_unknown, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_get_by_pid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_tenant, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_name, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_pid_and_uuid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_vm, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_register_rolled_back_with_its_event, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_update_runtime_noop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_update_runtime_changes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_update_runtime_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_register_with_reservation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_inventory_threads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tenant_delete_and_release, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_release_unknown, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_throttle_caps, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
