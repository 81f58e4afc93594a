/* test_registry.c - the VM lifecycle (src/registry/) on a fake host (a
 * fixture topology and a fake /proc) with a real SQLite store: every
 * transition (admitted -> running -> stopped / gone -> capacity freed ->
 * released, and back), every refusal (quota, capacity, a PID held by a
 * live VM on every path, a tenant mismatch), PID reuse caught by the
 * process's start time, the precedence of the sources, faults that are
 * reported once and cleared, and that a refused request changes nothing. */
#define STORE_TEST_TMPDIR "/tmp/vcpud-test-registry.XXXXXX"
#include "store_test_util.h"
#include "registry_test_util.h"

#include "vcpud/discover.h"
#include "vcpud/tenant.h"

/* --- helpers --------------------------------------------------------------- */

static int setup(void **state)
{
	struct reg_fx *f = xcalloc(1, sizeof(*f));
	fake_now_ms = 1700000000000LL;
	if (reg_fx_open(f, "2n-4c-smt2", "", 60) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct reg_fx *f = *state;
	reg_fx_close(f);
	free(f);
	return 0;
}

static void tenant_ok(struct reg_fx *f, const char *name, uint32_t vcpus)
{
	struct tenant t;
	tenant_init(&t);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.vcpus = vcpus;
	struct error *err = NULL;
	if (store_tenant_create(f->ts.st, &t, "uid:0", &err) < 0)
		fail_msg("create tenant %s: %s", name, err->msg);
}

static int admit(struct reg_fx *f, const char *vm, const char *tenant, uint32_t vcpus,
		 bool dry_run, struct error **err)
{
	struct admit_request req = { .vm = vm, .tenant = tenant, .vcpus = vcpus,
				     .cpu_policy = ADMIT_CPU_SHARED,
				     .thread_policy = ADMIT_THREAD_PREFER };
	struct admit_placement pl;
	return registry_admit(f->reg, &req, dry_run, "uid:0", &pl, err);
}

/* Register process `pid` as VM `name` as the API does: threads from /proc. */
static int reg_api(struct reg_fx *f, const char *name, const char *tenant, pid_t pid,
		   struct error **err)
{
	struct vm v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.tenant, sizeof(v.tenant), "%s", tenant);
	v.pid = pid;
	v.state = VM_STATE_RUNNING;
	v.source = VM_SOURCE_REGISTERED;
	if (proc_vm_vcpus(f->ts.dir, pid, &v.threads, &v.n_threads, err) < 0)
		return -1;
	v.vcpus = v.threads[v.n_threads - 1].index + 1;
	int rc = registry_register(f->reg, &v, "uid:0", err);
	vm_clear(&v);
	return rc;
}

static struct registry_vm_view view_ok(struct reg_fx *f, const char *name)
{
	struct registry_vm_view v;
	struct error *err = NULL;
	if (registry_vm_get(f->reg, name, &v, &err) < 0)
		fail_msg("view %s: %s", name, err->msg);
	return v;
}

static enum vm_state state_of(struct reg_fx *f, const char *name)
{
	struct registry_vm_view v = view_ok(f, name);
	enum vm_state s = v.vm.state;
	registry_vm_view_clear(&v);
	return s;
}

static uint32_t used(struct reg_fx *f, const char *tenant)
{
	struct tenant t;
	assert_int_equal(store_tenant_get(f->ts.st, tenant, &t, NULL), 0);
	return t.vcpus_used;
}

static int64_t count_events(struct reg_fx *f, const char *action)
{
	_cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM events WHERE action = '%s'",
					     action);
	return st_int(f->ts.st, sql);
}

/* One tick's worth of the lifecycle, as the daemon runs it, with the
 * sightings of one source (NULL: none). */
static void tick(struct reg_fx *f, enum vm_source src, const struct registry_sighting *seen,
		 size_t n, const char *const *defined, size_t n_defined)
{
	struct inventory inv;
	struct error *err = NULL;
	if (registry_inventory_load(f->reg, &inv, &err) < 0)
		fail_msg("inventory: %s", err->msg);
	registry_ledger_resync(f->reg, &inv);
	registry_faults_begin(f->reg, REGISTRY_FAULT_IDENTITY);
	registry_faults_begin(f->reg, REGISTRY_FAULT_ADMISSION);
	registry_refresh_registered(f->reg, &inv);
	registry_check_pids(f->reg, &inv);
	if (seen)
		registry_observe(f->reg, &inv, src, seen, n, true, defined, n_defined);
	registry_admit_missing(f->reg, &inv);
	registry_expire(f->reg, &inv);
	registry_faults_end(f->reg, REGISTRY_FAULT_IDENTITY);
	registry_faults_end(f->reg, REGISTRY_FAULT_ADMISSION);
	/* the admission ledger kept in memory through the tick is the store's */
	if (registry_ledger_check(f->reg, &err) < 0)
		fail_msg("after the tick: %s", err->msg);
	/* what the inventory says after the tick is what the store says */
	struct inventory again;
	assert_int_equal(registry_inventory_load(f->reg, &again, NULL), 0);
	assert_int_equal(inv.n_res, again.n_res);
	assert_int_equal(inv.n_vms, again.n_vms);
	for (size_t i = 0; i < again.n_vms; i++) {
		const struct vm *a = &again.vms[i], *b = inventory_vm(&inv, a->name);
		assert_non_null(b);
		assert_int_equal(a->state, b->state);
		assert_int_equal(a->pid, b->pid);
		assert_int_equal(a->source, b->source);
		assert_int_equal(a->start_time, b->start_time);
		assert_int_equal(a->n_threads, b->n_threads);
	}
	inventory_clear(&again);
	inventory_clear(&inv);
}

static struct registry_sighting sighting(enum vm_source src, const char *name, const char *tenant,
					 pid_t pid, uint64_t start, const struct vm_vcpu *th,
					 size_t n)
{
	return (struct registry_sighting){
		.source = src, .name = name, .tenant = tenant, .state = VM_STATE_RUNNING,
		.pid = pid, .start_time = start, .vcpus = n ? th[n - 1].index + 1 : 0,
		.threads = th, .n_threads = n,
	};
}

/* --- admitted -> running -> gone -> freed -> released ------------------------ */

static void test_admit_then_register(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 8);

	/* dry run: decided, nothing stored */
	assert_int_equal(admit(f, "db-1", "acme", 2, true, &err), 0);
	assert_int_equal(count_events(f, "vm.admit"), 0);
	assert_int_equal(registry_vm_get(f->reg, "db-1", &(struct registry_vm_view){ 0 }, &err), -1);
	expect_error(&err, ENOENT, "no VM 'db-1'");

	assert_int_equal(admit(f, "db-1", "acme", 2, false, &err), 0);
	assert_null(err);
	/* admitted, not started: visible as a VM with its placement */
	struct registry_vm_view v = view_ok(f, "db-1");
	assert_int_equal(v.vm.state, VM_STATE_ADMITTED);
	assert_true(v.admitted);
	assert_int_equal(v.res.vcpus, 2);
	assert_int_equal(v.res.cpu_policy, ADMIT_CPU_SHARED);
	assert_null(v.fault);
	registry_vm_view_clear(&v);
	struct registry_vm_view *list = NULL;
	size_t n = 0;
	assert_int_equal(registry_vm_list(f->reg, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].vm.name, "db-1");
	assert_int_equal(list[0].vm.state, VM_STATE_ADMITTED);
	registry_vm_view_clear(&list[0]);
	free(list);
	assert_int_equal(used(f, "acme"), 2);
	/* the same request again (a retry): the same reservation, booked once */
	int64_t admits0 = count_events(f, "vm.admit");
	struct admit_request again = { .vm = "db-1", .tenant = "acme", .vcpus = 2,
				       .cpu_policy = ADMIT_CPU_SHARED,
				       .thread_policy = ADMIT_THREAD_PREFER };
	struct admit_placement pl;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(registry_admit(f->reg, &again, i == 1, "uid:0", &pl, &err), 0);
		assert_true(pl.existing);
		assert_string_equal(pl.res.vm, "db-1");
		assert_int_equal(pl.res.vcpus, 2);
	}
	assert_int_equal(used(f, "acme"), 2);
	assert_int_equal(count_events(f, "vm.admit"), admits0);
	/* the same name with another request is a conflict naming what differs */
	assert_int_equal(admit(f, "db-1", "acme", 3, false, &err), -1);
	expect_error(&err, EEXIST, "VM 'db-1' is already admitted; this request differs: "
		     "vcpus 3 (admitted with 2) (release it first to admit it anew)");
	again.memory_set = true;
	again.memory_bytes = 1 << 30;
	again.cpu_policy = ADMIT_CPU_DEDICATED;
	again.tenant = "beta";
	assert_int_equal(registry_admit(f->reg, &again, false, "uid:0", &pl, &err), -1);
	expect_error(&err, EEXIST, "differs: tenant beta (admitted for acme), memory 1G "
		     "(admitted with none), cpu policy dedicated (admitted with shared)");
	assert_int_equal(used(f, "acme"), 2);

	/* its process starts and is registered: bound to the reservation,
	 * no second admission */
	fake_vmm(f, 1000, 5000, 2, 1000);
	int64_t admits = count_events(f, "vm.admit");
	assert_int_equal(reg_api(f, "db-1", "acme", 1000, &err), 0);
	assert_null(err);
	assert_int_equal(count_events(f, "vm.admit"), admits);
	v = view_ok(f, "db-1");
	assert_int_equal(v.vm.state, VM_STATE_RUNNING);
	assert_int_equal(v.vm.pid, 1000);
	assert_int_equal(v.vm.start_time, 5000);
	assert_string_equal(v.vm.origin_cgroup, "/user.slice");
	assert_int_equal(v.vm.n_threads, 2);
	assert_true(v.admitted);
	registry_vm_view_clear(&v);
	assert_int_equal(used(f, "acme"), 2);

	/* a registration under another tenant than its admission is refused */
	tenant_ok(f, "other", 8);
	assert_int_equal(admit(f, "web-1", "acme", 1, false, &err), 0);
	fake_vmm(f, 1100, 6000, 1, 1100);
	int64_t events = event_count(f->ts.st);
	assert_int_equal(reg_api(f, "web-1", "other", 1100, &err), -1);
	expect_error(&err, EBUSY, "VM 'web-1' is admitted for tenant 'acme', not 'other'");
	assert_int_equal(event_count(f->ts.st), events);
	assert_int_equal(state_of(f, "web-1"), VM_STATE_ADMITTED);

	/* a process with more vCPU threads than were admitted is refused */
	fake_vmm(f, 1200, 6100, 2, 1200);
	assert_int_equal(reg_api(f, "web-1", "acme", 1200, &err), -1);
	expect_error(&err, EBUSY, "VM 'web-1' is admitted for 1 vCPUs, its process has 2");
	assert_int_equal(event_count(f->ts.st), events);

	/* one with fewer (QEMU's -smp 2,maxcpus=4) is the VM admitted: 4
	 * vCPUs, the other two placed when they are hot-plugged */
	assert_int_equal(admit(f, "big-1", "acme", 4, false, &err), 0);
	fake_vmm(f, 1300, 6200, 2, 1300);
	assert_int_equal(reg_api(f, "big-1", "acme", 1300, &err), 0);
	v = view_ok(f, "big-1");
	assert_int_equal(v.vm.vcpus, 4);
	assert_int_equal(v.vm.n_threads, 2);
	assert_int_equal(v.res.vcpus, 4);
	registry_vm_view_clear(&v);
	assert_int_equal(used(f, "acme"), 2 + 1 + 4);
	/* vCPU 2 is hot-plugged: its thread is taken at the next look */
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	fake_vmm(f, 1300, 6200, 3, 1300);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	v = view_ok(f, "big-1");
	assert_int_equal(v.vm.n_threads, 3);
	assert_int_equal(v.vm.threads[2].index, 2);
	assert_int_equal(v.vm.threads[2].tid, 1303);
	registry_vm_view_clear(&v);
}

static pid_t tid_of(struct reg_fx *f, const char *vm, size_t k)
{
	struct registry_vm_view v = view_ok(f, vm);
	pid_t t = k < v.vm.n_threads ? v.vm.threads[k].tid : -1;
	registry_vm_view_clear(&v);
	return t;
}

/* Thread discovery by exception: the sampler's news make a VM's task
 * directory read at the next refresh, whatever its schedule says (the
 * fake proc's vCPU threads are replaced by new ones of the same count,
 * which the thread count alone cannot tell). */
static void test_thread_news(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 8);
	fake_vmm(f, 2000, 7000, 2, 2000);
	assert_int_equal(reg_api(f, "n-1", "acme", 2000, &err), 0);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(tid_of(f, "n-1", 1), 2002);

	/* new threads, same count: not seen by the next refresh alone */
	fake_vmm(f, 2000, 7000, 2, 2100);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(tid_of(f, "n-1", 1), 2002);
	/* a vCPU thread was found gone by the sampler: read at once */
	struct registry_thread_news gone = { .vm = "n-1", .vcpu_gone = true, .n_threads = -1 };
	registry_thread_news(f->reg, &gone, 1);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(tid_of(f, "n-1", 0), 2101);
	assert_int_equal(tid_of(f, "n-1", 1), 2102);

	/* BPF news: the count (3 tasks: main + 2 vCPUs) and the tid sum; the
	 * first sum is the baseline, another one means another set, read
	 * within THREADS_NEWS_MIN_PASSES (10) of the last read (a QEMU's
	 * worker threads come and go: not a read every tick for them) */
	struct registry_thread_news x = { .vm = "n-1", .n_threads = 3, .tid_sum = 111 };
	registry_thread_news(f->reg, &x, 1);
	fake_vmm(f, 2000, 7000, 2, 2200);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(tid_of(f, "n-1", 1), 2102); /* the same sum: nothing new */
	x.tid_sum = 222;
	int passes = 0;
	while (tid_of(f, "n-1", 1) != 2202 && passes < 12) {
		registry_thread_news(f->reg, &x, 1);
		tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
		passes++;
	}
	assert_int_equal(tid_of(f, "n-1", 1), 2202);
	assert_true(passes >= 1 && passes <= 10);
	/* a count that differs from the one read last: the same */
	fake_vmm(f, 2000, 7000, 2, 2300);
	x.n_threads = 4;
	passes = 0;
	while (tid_of(f, "n-1", 1) != 2302 && passes < 12) {
		registry_thread_news(f->reg, &x, 1);
		tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
		passes++;
	}
	assert_int_equal(tid_of(f, "n-1", 1), 2302);
	assert_true(passes >= 2 && passes <= 10); /* not at once after a read */
	/* news of a VM the registry does not watch are ignored */
	struct registry_thread_news other = { .vm = "nosuch", .vcpu_gone = true, .n_threads = -1 };
	registry_thread_news(f->reg, &other, 1);
}

static void test_register_admits_atomically(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 3);
	fake_vmm(f, 2000, 100, 2, 2000);
	assert_int_equal(reg_api(f, "web-1", "acme", 2000, &err), 0);
	/* admitted (shared, prefer) and registered in one transaction */
	assert_int_equal(count_events(f, "vm.admit"), 1);
	assert_int_equal(count_events(f, "vm.register"), 1);
	assert_int_equal(used(f, "acme"), 2);

	/* over the quota: nothing at all is written */
	fake_vmm(f, 2100, 200, 2, 2100);
	int64_t events = event_count(f->ts.st);
	int64_t res = st_int(f->ts.st, "SELECT count(*) FROM reservations");
	assert_int_equal(reg_api(f, "big", "acme", 2100, &err), -1);
	expect_error(&err, EBUSY, "tenant acme: 2 of 3 vCPUs used, 2 requested");
	assert_int_equal(event_count(f->ts.st), events);
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM reservations"), res);
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vms"), 1);
	/* over the host's shared capacity (16 CPUs x 4 / per node) likewise */
	tenant_ok(f, "huge", 1000);
	int filled = 0;
	for (int i = 0; i < 100; i++, filled++) {
		char name[16];
		snprintf(name, sizeof(name), "h%d", i);
		if (admit(f, name, "huge", 1, false, &err) < 0)
			break;
	}
	expect_error(&err, EBUSY, "shared pool");
	assert_int_equal(filled, 64 - 2);
	fake_vmm(f, 2200, 300, 1, 2200);
	assert_int_equal(reg_api(f, "one-more", "huge", 2200, &err), -1);
	expect_error(&err, EBUSY, "shared pool");
	/* unknown tenant, a process that does not exist */
	assert_int_equal(reg_api(f, "x", "ghost", 2200, &err), -1);
	expect_error(&err, ENOENT, "no tenant 'ghost'");
	struct vm v = { .pid = 4194000, .vcpus = 1 };
	strcpy(v.name, "y");
	strcpy(v.tenant, "acme");
	assert_int_equal(registry_register(f->reg, &v, "uid:0", &err), -1);
	expect_error(&err, EINVAL, "process 4194000 does not exist");
}

static void test_pid_identity(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 16);
	fake_vmm(f, 3000, 111, 2, 3000);
	assert_int_equal(reg_api(f, "web-1", "acme", 3000, &err), 0);

	/* the same process under another name: refused, nothing written */
	int64_t events = event_count(f->ts.st);
	assert_int_equal(reg_api(f, "web-2", "acme", 3000, &err), -1);
	expect_error(&err, EEXIST, "process 3000 is already registered as VM 'web-1'");
	assert_int_equal(event_count(f->ts.st), events);

	/* the process exits and a new one gets its PID before any tick saw
	 * it: the start time tells them apart; web-1 is gone, web-2 is in */
	fake_vmm(f, 3000, 999, 1, 3100);
	assert_int_equal(reg_api(f, "web-2", "acme", 3000, &err), 0);
	assert_null(err);
	assert_int_equal(state_of(f, "web-1"), VM_STATE_GONE);
	assert_int_equal(state_of(f, "web-2"), VM_STATE_RUNNING);
	struct registry_vm_view v = view_ok(f, "web-2");
	assert_int_equal(v.vm.start_time, 999);
	registry_vm_view_clear(&v);

	/* the refresh sees PID reuse too: web-2's PID is taken over again */
	fake_vmm(f, 3000, 1234, 1, 3200);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(state_of(f, "web-2"), VM_STATE_GONE);
	json_t *d = last_event(f->ts.st, "vm.state", "vm/web-2", "vcpud");
	assert_string_equal(jstr(d, "new"), "gone");
	json_decref(d);
}

static void test_refresh_and_gone_grace(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 4);
	fake_vmm(f, 4000, 10, 2, 4000);
	assert_int_equal(reg_api(f, "web-1", "acme", 4000, &err), 0);
	/* steady: a tick writes nothing */
	int64_t events = event_count(f->ts.st);
	int64_t changes = sqlite3_total_changes(store_sqlite(f->ts.st));
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(event_count(f->ts.st), events);
	assert_int_equal(sqlite3_total_changes(store_sqlite(f->ts.st)), changes);

	/* a vCPU thread comes (hot-plug within its vCPUs): threads updated */
	fake_vmm(f, 4000, 10, 1, 4000);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	struct registry_vm_view v = view_ok(f, "web-1");
	assert_int_equal(v.vm.n_threads, 1);
	registry_vm_view_clear(&v);
	assert_int_equal(event_count(f->ts.st), events); /* no state change */

	/* a vCPU thread replaced by another in one interval (the thread count
	 * stays): the task directory is not read every tick, but within
	 * THREADS_RECHECK_PASSES x 3/2 + 1 ticks */
	fake_vmm(f, 4000, 10, 1, 4100);
	int n = 0;
	pid_t tid = 0;
	do {
		tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
		n++;
		v = view_ok(f, "web-1");
		tid = v.vm.threads[0].tid;
		registry_vm_view_clear(&v);
	} while (tid != 4101 && n < 30);
	assert_int_equal(tid, 4101);
	assert_true(n > 1 && n <= 16);

	/* kill -9: gone at the next tick, its capacity still held */
	fake_exit(f, 4000);
	fake_now_ms += 1000;
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(state_of(f, "web-1"), VM_STATE_GONE);
	assert_int_equal(used(f, "acme"), 2);
	fake_now_ms += 59000;
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(used(f, "acme"), 2);
	/* after the grace period: freed, with an event; the row stays */
	fake_now_ms += 1000;
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(used(f, "acme"), 0);
	json_t *d = last_event(f->ts.st, "vm.unadmit", "vm/web-1", "vcpud");
	assert_string_equal(jstr(d, "reason"), "gone for 60 s (grace 60 s)");
	json_decref(d);
	v = view_ok(f, "web-1");
	assert_int_equal(v.vm.state, VM_STATE_GONE);
	assert_false(v.admitted);
	registry_vm_view_clear(&v);
	/* and the room is there again */
	assert_int_equal(admit(f, "db-1", "acme", 4, false, &err), 0);

	/* release: the row goes (no reservation left to free) */
	assert_int_equal(registry_release(f->reg, "web-1", "uid:0", NULL, NULL, &err), 0);
	assert_int_equal(registry_vm_get(f->reg, "web-1", &v, &err), -1);
	expect_error(&err, ENOENT, NULL);
	assert_int_equal(registry_release(f->reg, "web-1", "uid:0", NULL, NULL, &err), -1);
	expect_error(&err, ENOENT, "no VM or reservation 'web-1'");
	/* an admitted-only VM is released the same way */
	assert_int_equal(registry_release(f->reg, "db-1", "uid:0", NULL, NULL, &err), 0);
	assert_int_equal(used(f, "acme"), 0);
}

static int refuse_move(void *data, const struct vm *v, struct error **err)
{
	int *calls = data;
	(*calls)++;
	return error_set(err, EBUSY, "cannot move process %d", (int)v->pid);
}

static int accept_move(void *data, const struct vm *v, struct error **err)
{
	(void)v, (void)err;
	int *calls = data;
	(*calls)++;
	return 0;
}

static void test_release(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 4);
	fake_vmm(f, 4500, 10, 2, 4500);
	assert_int_equal(reg_api(f, "web-1", "acme", 4500, &err), 0);
	int calls = 0;
	int64_t events = event_count(f->ts.st);
	/* a live VM whose process cannot be moved out stays as it is */
	assert_int_equal(registry_release(f->reg, "web-1", "uid:0", refuse_move, &calls, &err), -1);
	expect_error(&err, EBUSY, "cannot release VM 'web-1'");
	assert_int_equal(calls, 1);
	assert_int_equal(event_count(f->ts.st), events);
	assert_int_equal(used(f, "acme"), 2);
	/* moved out, then the VM and its reservation go in one transaction */
	assert_int_equal(registry_release(f->reg, "web-1", "uid:0", accept_move, &calls, &err), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(event_count(f->ts.st), events + 2);
	assert_int_equal(used(f, "acme"), 0);
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vms"), 0);
}

/* --- the sources ------------------------------------------------------------------ */

static void test_libvirt_lifecycle(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 8);
	fake_vmm(f, 5000, 50, 2, 5000);
	struct vm_vcpu th[] = { { 0, 5001 }, { 1, 5002 } };
	struct registry_sighting s = sighting(VM_SOURCE_LIBVIRT, "dom-1", "acme", 5000, 0, th, 2);

	/* a new managed domain: admitted and registered */
	tick(f, VM_SOURCE_LIBVIRT, &s, 1, NULL, 0);
	struct registry_vm_view v = view_ok(f, "dom-1");
	assert_int_equal(v.vm.state, VM_STATE_RUNNING);
	assert_int_equal(v.vm.source, VM_SOURCE_LIBVIRT);
	assert_int_equal(v.vm.start_time, 50); /* read from /proc */
	assert_true(v.admitted);
	registry_vm_view_clear(&v);
	/* seen again: nothing written */
	int64_t changes = sqlite3_total_changes(store_sqlite(f->ts.st));
	tick(f, VM_SOURCE_LIBVIRT, &s, 1, NULL, 0);
	assert_int_equal(sqlite3_total_changes(store_sqlite(f->ts.st)), changes);

	/* shut off, still defined: stopped, keeps its admission */
	const char *defined[] = { "dom-1" };
	tick(f, VM_SOURCE_LIBVIRT, &s, 0, defined, 1);
	v = view_ok(f, "dom-1");
	assert_int_equal(v.vm.state, VM_STATE_STOPPED);
	assert_int_equal(v.vm.pid, 0);
	assert_true(v.admitted);
	registry_vm_view_clear(&v);
	fake_now_ms += 3600 * 1000;
	tick(f, VM_SOURCE_LIBVIRT, &s, 0, defined, 1);
	assert_int_equal(used(f, "acme"), 2);

	/* started again (new process) */
	fake_vmm(f, 5100, 80, 2, 5100);
	struct vm_vcpu th2[] = { { 0, 5101 }, { 1, 5102 } };
	s = sighting(VM_SOURCE_LIBVIRT, "dom-1", "acme", 5100, 0, th2, 2);
	tick(f, VM_SOURCE_LIBVIRT, &s, 1, NULL, 0);
	v = view_ok(f, "dom-1");
	assert_int_equal(v.vm.state, VM_STATE_RUNNING);
	assert_int_equal(v.vm.pid, 5100);
	registry_vm_view_clear(&v);
	assert_int_equal(count_events(f, "vm.admit"), 1);

	/* undefined: gone; the grace period frees it */
	tick(f, VM_SOURCE_LIBVIRT, &s, 0, NULL, 0);
	assert_int_equal(state_of(f, "dom-1"), VM_STATE_GONE);
	fake_now_ms += 61 * 1000;
	tick(f, VM_SOURCE_LIBVIRT, &s, 0, NULL, 0);
	assert_int_equal(used(f, "acme"), 0);
	/* the same process seen again is not brought back from gone */
	tick(f, VM_SOURCE_LIBVIRT, &s, 1, NULL, 0);
	assert_int_equal(state_of(f, "dom-1"), VM_STATE_GONE);
	/* defined and started again under the same name (a new process):
	 * admitted again, in the same transaction as its new runtime */
	fake_vmm(f, 5200, 90, 2, 5200);
	struct vm_vcpu th3[] = { { 0, 5201 }, { 1, 5202 } };
	s = sighting(VM_SOURCE_LIBVIRT, "dom-1", "acme", 5200, 0, th3, 2);
	tick(f, VM_SOURCE_LIBVIRT, &s, 1, NULL, 0);
	assert_int_equal(state_of(f, "dom-1"), VM_STATE_RUNNING);
	assert_int_equal(used(f, "acme"), 2);
	assert_int_equal(count_events(f, "vm.admit"), 2);
	(void)err;
}

static void test_precedence(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 16);
	/* a registered VM: /proc seeing its process under the VMM's own name
	 * is the same process seen by a weaker source: ignored, no fault */
	fake_vmm(f, 6000, 60, 2, 6000);
	assert_int_equal(reg_api(f, "web-1", "acme", 6000, &err), 0);
	struct vm_vcpu th[] = { { 0, 6001 }, { 1, 6002 } };
	struct registry_sighting p = sighting(VM_SOURCE_PROC, "acme.web-1", "acme", 6000, 60, th, 2);
	tick(f, VM_SOURCE_PROC, &p, 1, NULL, 0);
	assert_int_equal(registry_fault_count(f->reg), 0);
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vms"), 1);

	/* /proc finds a VM first, libvirt later (it was unreachable): the
	 * stronger source takes it over */
	fake_vmm(f, 6100, 61, 1, 6100);
	struct vm_vcpu t1[] = { { 0, 6101 } };
	struct registry_sighting q = sighting(VM_SOURCE_PROC, "dom-2", "acme", 6100, 61, t1, 1);
	tick(f, VM_SOURCE_PROC, &q, 1, NULL, 0);
	struct registry_vm_view v = view_ok(f, "dom-2");
	assert_int_equal(v.vm.source, VM_SOURCE_PROC);
	registry_vm_view_clear(&v);
	struct registry_sighting l = sighting(VM_SOURCE_LIBVIRT, "dom-2", "acme", 6100, 61, t1, 1);
	tick(f, VM_SOURCE_LIBVIRT, &l, 1, NULL, 0);
	v = view_ok(f, "dom-2");
	assert_int_equal(v.vm.source, VM_SOURCE_LIBVIRT);
	assert_int_equal(v.vm.state, VM_STATE_RUNNING);
	registry_vm_view_clear(&v);
	/* and /proc no longer changes it, even when it stops seeing it */
	tick(f, VM_SOURCE_PROC, &q, 0, NULL, 0);
	assert_int_equal(state_of(f, "dom-2"), VM_STATE_RUNNING);
	assert_int_equal(registry_fault_count(f->reg), 0);
}

static void test_conflicts_are_faults_once(void **state)
{
	struct reg_fx *f = *state;
	tenant_ok(f, "acme", 16);
	tenant_ok(f, "other", 16);
	fake_vmm(f, 7000, 70, 2, 7000);
	struct vm_vcpu th[] = { { 0, 7001 }, { 1, 7002 } };
	struct registry_sighting a = sighting(VM_SOURCE_LIBVIRT, "dom-a", "acme", 7000, 0, th, 2);
	tick(f, VM_SOURCE_LIBVIRT, &a, 1, NULL, 0);
	/* libvirt-style update path: another domain reports the same process */
	struct registry_sighting both[] = {
		a, sighting(VM_SOURCE_LIBVIRT, "dom-b", "acme", 7000, 0, th, 2),
	};
	int64_t events = event_count(f->ts.st);
	for (int i = 0; i < 5; i++)
		tick(f, VM_SOURCE_LIBVIRT, both, 2, NULL, 0);
	assert_int_equal(registry_fault_count(f->reg), 1);
	const char *name = NULL, *msg = NULL;
	enum registry_fault_kind kind;
	registry_fault_get(f->reg, 0, &name, &msg, &kind);
	assert_string_equal(name, "dom-b");
	assert_int_equal(kind, REGISTRY_FAULT_IDENTITY);
	assert_contains(msg, "process 7000, which is VM dom-a");
	/* one event for five ticks, and no admit/unadmit churn */
	assert_int_equal(event_count(f->ts.st), events + 1);
	assert_int_equal(count_events(f, "vm.refused"), 1);
	assert_int_equal(count_events(f, "vm.unadmit"), 0);
	assert_int_equal(state_of(f, "dom-a"), VM_STATE_RUNNING);
	/* the conflict goes away: the fault is cleared */
	tick(f, VM_SOURCE_LIBVIRT, &a, 1, NULL, 0);
	assert_int_equal(registry_fault_count(f->reg), 0);

	/* a source claiming an existing VM for another tenant */
	struct registry_sighting wrong = sighting(VM_SOURCE_LIBVIRT, "dom-a", "other", 7000, 0, th, 2);
	tick(f, VM_SOURCE_LIBVIRT, &wrong, 1, NULL, 0);
	assert_int_equal(registry_fault_count(f->reg), 1);
	assert_non_null(registry_fault_of(f->reg, "dom-a", NULL, &kind));
	assert_int_equal(kind, REGISTRY_FAULT_IDENTITY);
	struct registry_vm_view v = view_ok(f, "dom-a");
	assert_non_null(v.fault);
	assert_string_equal(v.vm.tenant, "acme");
	registry_vm_view_clear(&v);

	/* over quota: refused with an admission fault, once, nothing stored */
	tenant_ok(f, "tiny", 1);
	fake_vmm(f, 7100, 71, 2, 7100);
	struct vm_vcpu t2[] = { { 0, 7101 }, { 1, 7102 } };
	struct registry_sighting big = sighting(VM_SOURCE_PROC, "tiny.big", "tiny", 7100, 71, t2, 2);
	events = event_count(f->ts.st);
	for (int i = 0; i < 4; i++)
		tick(f, VM_SOURCE_PROC, &big, 1, NULL, 0);
	assert_non_null(registry_fault_of(f->reg, "tiny.big", NULL, &kind));
	assert_int_equal(kind, REGISTRY_FAULT_ADMISSION);
	assert_int_equal(event_count(f->ts.st), events + 1);
	assert_int_equal(count_events(f, "vm.admit"), 1); /* dom-a's only */
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vms WHERE name = 'tiny.big'"), 0);
	/* raise the quota: placed at the next tick, fault cleared */
	struct tenant_patch p = { .set_vcpus = true, .vcpus = 4 };
	assert_int_equal(store_tenant_update(f->ts.st, "tiny", &p, "uid:0", NULL, NULL), 0);
	tick(f, VM_SOURCE_PROC, &big, 1, NULL, 0);
	assert_null(registry_fault_of(f->reg, "tiny.big", NULL, NULL));
	assert_int_equal(state_of(f, "tiny.big"), VM_STATE_RUNNING);
}

static void test_legacy_rows(void **state)
{
	struct reg_fx *f = *state;
	tenant_ok(f, "acme", 3);
	/* rows from before admission existed: live VMs without reservations */
	fake_vmm(f, 8000, 80, 2, 8000);
	fake_vmm(f, 8100, 81, 2, 8100);
	assert_int_equal(st_exec(f->ts.st, "INSERT INTO vms (name, tenant, pid, vcpus, state, "
				 "source, created_at, updated_at) VALUES ('old-1', 'acme', 8000, "
				 "2, 'running', 'registered', 1, 1), ('old-2', 'acme', 8100, 2, "
				 "'running', 'registered', 1, 1)"), SQLITE_OK);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	/* the first fits and is admitted; the second is over the quota */
	assert_int_equal(used(f, "acme"), 2);
	enum registry_fault_kind kind;
	assert_null(registry_fault_of(f->reg, "old-1", NULL, NULL));
	assert_non_null(registry_fault_of(f->reg, "old-2", NULL, &kind));
	assert_int_equal(kind, REGISTRY_FAULT_ADMISSION);
	/* their start time was not known: adopted from /proc */
	struct registry_vm_view v = view_ok(f, "old-1");
	assert_int_equal(v.vm.start_time, 80);
	registry_vm_view_clear(&v);
}

/* A database that already holds two live VMs with one PID (what an older
 * vcpud's libvirt merge could leave): both are quarantined, once. */
static void test_poisoned_rows(void **state)
{
	struct reg_fx *f = *state;
	tenant_ok(f, "acme", 16);
	fake_vmm(f, 9000, 90, 2, 9000);
	assert_int_equal(st_exec(f->ts.st, "INSERT INTO vms (name, tenant, pid, vcpus, state, "
				 "source, created_at, updated_at) VALUES ('a', 'acme', 9000, 2, "
				 "'running', 'registered', 1, 1), ('b', 'acme', 9000, 2, 'running', "
				 "'libvirt', 1, 1)"), SQLITE_OK);
	for (int i = 0; i < 3; i++)
		tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	enum registry_fault_kind kind;
	const char *m = registry_fault_of(f->reg, "a", NULL, &kind);
	assert_non_null(m);
	assert_int_equal(kind, REGISTRY_FAULT_IDENTITY);
	assert_contains(m, "process 9000 is claimed by VMs a (registered) and b (libvirt)");
	assert_non_null(registry_fault_of(f->reg, "b", NULL, NULL));
	assert_int_equal(count_events(f, "vm.refused"), 2);
	/* releasing one clears both */
	assert_int_equal(registry_release(f->reg, "b", "uid:0", NULL, NULL, NULL), 0);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(registry_fault_count(f->reg), 0);
}

static void test_faults_api(void **state)
{
	struct reg_fx *f = *state;
	assert_int_equal(registry_fault_count(f->reg), 0);
	registry_fault_set(f->reg, "vm-a", REGISTRY_FAULT_CGROUP, "cannot write cpu.max");
	registry_fault_set(f->reg, "../x", REGISTRY_FAULT_CGROUP, "ignored: not a name");
	assert_int_equal(registry_fault_count(f->reg), 1);
	/* a more serious kind wins; a less serious one does not replace it */
	registry_fault_set(f->reg, "vm-a", REGISTRY_FAULT_PLAN, "plan: bad");
	enum registry_fault_kind kind;
	assert_string_equal(registry_fault_of(f->reg, "vm-a", NULL, &kind), "plan: bad");
	assert_int_equal(kind, REGISTRY_FAULT_PLAN);
	registry_fault_set(f->reg, "vm-a", REGISTRY_FAULT_CGROUP, "write");
	assert_string_equal(registry_fault_of(f->reg, "vm-a", NULL, NULL), "plan: bad");
	/* a stage that no longer reports it clears it; other kinds stay */
	registry_fault_set(f->reg, "vm-b", REGISTRY_FAULT_CGROUP, "x");
	registry_faults_begin(f->reg, REGISTRY_FAULT_PLAN);
	registry_faults_end(f->reg, REGISTRY_FAULT_PLAN);
	assert_null(registry_fault_of(f->reg, "vm-a", NULL, NULL));
	assert_non_null(registry_fault_of(f->reg, "vm-b", NULL, NULL));
	assert_string_equal(registry_fault_kind_name(REGISTRY_FAULT_IDENTITY), "identity");
	assert_null(registry_fault_kind_name(REGISTRY_FAULT_LAST));
}

/* --- the admission ledger in memory --------------------------------------------- */

static void ledger_ok(struct reg_fx *f, const char *when)
{
	struct error *err = NULL;
	if (registry_ledger_check(f->reg, &err) < 0)
		fail_msg("%s: %s", when, err->msg);
}

/* Every change of the reservations (admit, register, release, unadmit after
 * the grace period) keeps the ledger equal to the store; a write the store
 * refuses leaves it as it was; a tick reads it again from the store. */
static void test_ledger_in_step(void **state)
{
	struct reg_fx *f = *state;
	struct error *err = NULL;
	tenant_ok(f, "acme", 8);
	tenant_ok(f, "beta", 4);
	ledger_ok(f, "not loaded yet");
	assert_int_equal(admit(f, "a1", "acme", 2, false, &err), 0);
	ledger_ok(f, "admit");
	assert_int_equal(admit(f, "b1", "beta", 4, false, &err), 0);
	ledger_ok(f, "admit, second tenant");
	assert_int_equal(admit(f, "probe", "acme", 1, true, &err), 0);
	ledger_ok(f, "dry run");
	assert_int_equal(admit(f, "a1", "acme", 1, true, &err), -1);
	expect_error(&err, EEXIST, "already admitted; this request differs: vcpus 1 (admitted "
		     "with 2)");
	assert_int_equal(admit(f, "a1", "acme", 2, true, &err), 0);
	ledger_ok(f, "a retry");
	/* registration admits in the same transaction as the row */
	fake_vmm(f, 4100, 10, 2, 4100);
	assert_int_equal(reg_api(f, "web-1", "acme", 4100, &err), 0);
	ledger_ok(f, "register");
	/* the quota counted in memory: 4 of 8 used */
	assert_int_equal(admit(f, "big", "acme", 5, true, &err), -1);
	expect_error(&err, EBUSY, "tenant acme: 4 of 8 vCPUs used, 5 requested");
	assert_int_equal(admit(f, "a2", "acme", 4, false, &err), 0);
	assert_int_equal(admit(f, "a3", "acme", 1, true, &err), -1);
	expect_error(&err, EBUSY, "tenant acme: 8 of 8 vCPUs used, 1 requested");
	/* release of an admitted-only VM frees its room at once */
	assert_int_equal(registry_release(f->reg, "a2", "uid:0", NULL, NULL, &err), 0);
	ledger_ok(f, "release");
	assert_int_equal(admit(f, "a3", "acme", 4, true, &err), 0);
	assert_int_equal(used(f, "acme"), 4);

	/* a write the store refuses changes nothing, in memory either */
	assert_int_equal(st_exec(f->ts.st, "CREATE TRIGGER no_admit BEFORE INSERT ON "
				 "reservations BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
				 "END"), SQLITE_OK);
	assert_int_equal(admit(f, "a4", "acme", 2, false, &err), -1);
	expect_error(&err, EINVAL, "refused by the test");
	ledger_ok(f, "refused admit");
	assert_int_equal(admit(f, "a4", "acme", 4, true, &err), 0); /* not admitted */
	fake_vmm(f, 4200, 10, 1, 4200);
	assert_int_equal(reg_api(f, "web-2", "acme", 4200, &err), -1);
	assert_non_null(err);
	error_free(&err);
	ledger_ok(f, "refused registration");
	assert_int_equal(st_exec(f->ts.st, "DROP TRIGGER no_admit"), SQLITE_OK);
	assert_int_equal(st_exec(f->ts.st, "CREATE TRIGGER no_release BEFORE DELETE ON "
				 "reservations BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
				 "END"), SQLITE_OK);
	assert_int_equal(registry_release(f->reg, "a1", "uid:0", NULL, NULL, &err), -1);
	assert_non_null(err);
	error_free(&err);
	ledger_ok(f, "refused release");
	assert_int_equal(admit(f, "a4", "acme", 5, true, &err), -1);
	expect_error(&err, EBUSY, "tenant acme: 4 of 8 vCPUs used, 5 requested");
	assert_int_equal(st_exec(f->ts.st, "DROP TRIGGER no_release"), SQLITE_OK);

	/* the process exits: after the grace period a tick unadmits it */
	fake_exit(f, 4100);
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	fake_now_ms += 61000;
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	assert_int_equal(used(f, "acme"), 2);
	ledger_ok(f, "unadmit after the grace period");
	assert_int_equal(admit(f, "a4", "acme", 6, true, &err), 0);

	/* a change behind the registry's back: out of step until the next
	 * tick reads the store again */
	assert_int_equal(st_exec(f->ts.st, "DELETE FROM reservations WHERE vm = 'a1'"), SQLITE_OK);
	assert_int_equal(registry_ledger_check(f->reg, &err), -1);
	expect_error(&err, EIO, "2 reservations in memory, 1 in the store");
	tick(f, VM_SOURCE_PROC, NULL, 0, NULL, 0);
	ledger_ok(f, "tick");
	assert_int_equal(admit(f, "a4", "acme", 8, true, &err), 0);
	assert_int_equal(admit(f, "b2", "beta", 1, true, &err), -1);
	expect_error(&err, EBUSY, "tenant beta: 4 of 4 vCPUs used, 1 requested");
}

/* The inventory is read from the store only when it may have changed: a
 * write of this connection that could touch it, or a commit of another
 * connection; history, events and throttle state do not count. */
static void test_inventory_read_when_changed(void **state)
{
	struct reg_fx *f = *state;
	tenant_ok(f, "acme", 8);
	struct inventory inv;
	struct error *err = NULL;
	assert_int_equal(registry_inventory_load(f->reg, &inv, &err), 0);
	assert_int_equal(inv.n_tenants, 1);
	inventory_clear(&inv);

	/* nothing changed: one statement (the data version), the same rows */
	uint64_t sql0 = store_statements(f->ts.st);
	assert_int_equal(registry_inventory_load(f->reg, &inv, &err), 0);
	assert_int_equal(store_statements(f->ts.st) - sql0, 1);
	assert_int_equal(inv.n_tenants, 1);
	assert_string_equal(inv.tenants[0].name, "acme");
	/* the copy is the caller's: changing it leaves the next one alone */
	inv.tenants[0].weight = 7;
	inventory_clear(&inv);

	/* history and events: still not read again */
	assert_int_equal(store_event_add(f->ts.st, "uid:0", "test.note", NULL, NULL, &err), 0);
	sql0 = store_statements(f->ts.st);
	assert_int_equal(registry_inventory_load(f->reg, &inv, &err), 0);
	assert_int_equal(store_statements(f->ts.st) - sql0, 1);
	assert_int_not_equal(inv.tenants[0].weight, 7);
	inventory_clear(&inv);

	/* a tenant more: read again */
	tenant_ok(f, "beta", 4);
	assert_int_equal(registry_inventory_load(f->reg, &inv, &err), 0);
	assert_int_equal(inv.n_tenants, 2);
	inventory_clear(&inv);

	/* another connection (an operator's sqlite3) commits: read again */
	struct store *other = NULL;
	assert_int_equal(store_open(f->ts.db, &other, &err), 0);
	struct tenant_patch p = { .set_weight = true, .weight = 333 };
	assert_int_equal(store_tenant_update(other, "beta", &p, "uid:0", NULL, &err), 0);
	store_close(other);
	assert_int_equal(registry_inventory_load(f->reg, &inv, &err), 0);
	const struct tenant *b = inventory_tenant(&inv, "beta");
	assert_non_null(b);
	assert_int_equal(b->weight, 333);
	inventory_clear(&inv);
}

/* Register the next VM (1 vCPU, process 10000 + 10 * i) and count what it
 * read from the store: result rows and statements. */
static void register_counted(struct reg_fx *f, unsigned i, uint64_t *rows, uint64_t *stmts)
{
	pid_t pid = 10000 + 10 * (pid_t)i;
	fake_vmm(f, pid, 100 + i, 1, pid);
	char name[32];
	snprintf(name, sizeof(name), "vm-%u", i);
	struct error *err = NULL;
	uint64_t r0 = store_rows(f->ts.st), s0 = store_statements(f->ts.st);
	if (reg_api(f, name, "acme", pid, &err) < 0)
		fail_msg("register %s: %s", name, err->msg);
	*rows = store_rows(f->ts.st) - r0;
	*stmts = store_statements(f->ts.st) - s0;
}

/* Registering a VM reads what it needs (the live VM holding its PID, its
 * tenant, its name, each an indexed row; the use from the ledger in
 * memory), not every VM: it costs as many rows and statements with 1,000
 * VMs as with 10. */
static void test_register_reads_what_it_needs(void **state)
{
	struct reg_fx *f = *state;
	/* room for 1,000 1-vCPU VMs on the 16 CPUs */
	registry_configure(f->reg, &f->pools, 64.0, 60);
	tenant_ok(f, "acme", 1000);
	uint64_t rows10 = 0, stmts10 = 0, rows = 0, stmts = 0;
	for (unsigned i = 0; i < 1000; i++) {
		register_counted(f, i, &rows, &stmts);
		if (i == 10) {
			rows10 = rows;
			stmts10 = stmts;
		}
	}
	assert_int_equal(st_int(f->ts.st, "SELECT count(*) FROM vms"), 1000);
	/* the 11th read a handful of rows (what the inventory of 10 VMs
	 * alone would exceed); the 1,000th read as many */
	assert_true(rows10 > 0 && rows10 < 10);
	assert_int_equal(rows, rows10);
	assert_int_equal(stmts, stmts10);
	struct error *err = NULL;
	if (registry_ledger_check(f->reg, &err) < 0)
		fail_msg("ledger: %s", err->msg);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_admit_then_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_news, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_admits_atomically, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_and_gone_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libvirt_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicts_are_faults_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poisoned_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_in_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inventory_read_when_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_reads_what_it_needs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
