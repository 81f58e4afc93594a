/* test_discover.c - vCPU thread discovery: the strict thread-name parser
 * (every accepted form, its bounds and the look-alikes it must refuse), the
 * /proc scanner on fake trees under a temp root (races, missing processes,
 * duplicates, junk entries), and one run against a real child process
 * whose threads are named like QEMU's. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fakeproc_test_util.h"

#include "vcpud/discover.h"
#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

#define UNTOUCHED 0xdeadu

/* --- vcpu_thread_name_parse ------------------------------------------------ */

struct name_case {
	const char *comm;
	enum vcpu_style style;
	unsigned index;
};

static void test_name_parse_vcpus(void **state)
{
	(void)state;
	const struct name_case good[] = {
		{ "CPU 0/KVM", VCPU_STYLE_QEMU_KVM, 0 },
		{ "CPU 1/KVM", VCPU_STYLE_QEMU_KVM, 1 },
		{ "CPU 15/KVM", VCPU_STYLE_QEMU_KVM, 15 },
		{ "CPU 4095/KVM", VCPU_STYLE_QEMU_KVM, 4095 },
		{ "CPU 3/TCG", VCPU_STYLE_QEMU_TCG, 3 },
		{ "CPU 0/TCG", VCPU_STYLE_QEMU_TCG, 0 },
		{ "fc_vcpu 0", VCPU_STYLE_FIRECRACKER, 0 },
		{ "fc_vcpu 12", VCPU_STYLE_FIRECRACKER, 12 },
		{ "fc_vcpu 4095", VCPU_STYLE_FIRECRACKER, 4095 },
		{ "vcpu0", VCPU_STYLE_CLOUD_HV, 0 },
		{ "vcpu7", VCPU_STYLE_CLOUD_HV, 7 },
		{ "vcpu10", VCPU_STYLE_CLOUD_HV, 10 },
		{ "vcpu4095", VCPU_STYLE_CLOUD_HV, 4095 },
		/* comm as read from /proc: one trailing newline */
		{ "CPU 2/KVM\n", VCPU_STYLE_QEMU_KVM, 2 },
		{ "CPU 9/TCG\n", VCPU_STYLE_QEMU_TCG, 9 },
		{ "fc_vcpu 5\n", VCPU_STYLE_FIRECRACKER, 5 },
		{ "vcpu3\n", VCPU_STYLE_CLOUD_HV, 3 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		unsigned idx = UNTOUCHED;
		enum vcpu_style st = vcpu_thread_name_parse(good[i].comm, &idx);
		if (st != good[i].style || idx != good[i].index)
			fail_msg("'%s': style %d index %u, want style %d index %u", good[i].comm,
				 (int)st, idx, (int)good[i].style, good[i].index);
	}
}

static void test_name_parse_not_vcpus(void **state)
{
	(void)state;
	char forty[41];
	memset(forty, '1', sizeof(forty) - 1);
	memcpy(forty, "vcpu", 4);
	forty[40] = '\0';
	char huge[2048];
	memset(huge, '7', sizeof(huge) - 1);
	memcpy(huge, "CPU ", 4);
	huge[sizeof(huge) - 1] = '\0';
	const char *bad[] = {
		"CPU 1/KVMx", "CPU -1/KVM", "CPU 01/KVM", "CPU 00/KVM", "CPU /KVM", "CPU 1 /KVM",
		"CPU 1/kvm", "cpu 1/KVM", "CPU 4096/KVM", "CPU 99999999999/KVM", "CPU +1/KVM",
		"CPU  1/KVM", " CPU 1/KVM", "CPU 1/KVM ", "CPU 1/", "CPU 1", "CPU 1/XEN",
		"CPU 1KVM", "CPU", "CPU ", "CPU 1/KVM\n\n", "CPU 1/KVM\nx", "CPU 1/TCGx",
		"fc_vcpu", "fc_vcpu ", "fc_vcpu -1", "fc_vcpu 1x", "fc_vcpu 01", "fc_vcpu  1",
		"fc_vcpu1", "fc_vcpu 4096", "fc_vcpu 1 ", "FC_VCPU 1",
		"vcpu", "vcpu-1", "vcpu1a", "vcpu 1", "vcpu01", "vcpu4096", "vcpu1\n\n", "VCPU1",
		"vcpu+1", "xvcpu1",
		"qemu-system-x86", "IO mon_iothread", "worker", "", "\n", forty, huge,
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		unsigned idx = UNTOUCHED;
		enum vcpu_style st = vcpu_thread_name_parse(bad[i], &idx);
		if (st != VCPU_STYLE_NONE)
			fail_msg("'%.60s' taken for a vCPU (style %d, index %u)", bad[i], (int)st, idx);
		/* the index is written only for a vCPU thread */
		if (idx != UNTOUCHED)
			fail_msg("'%.60s' wrote index %u", bad[i], idx);
	}
	unsigned idx = UNTOUCHED;
	assert_int_equal(vcpu_thread_name_parse(NULL, &idx), VCPU_STYLE_NONE);
	assert_int_equal(idx, UNTOUCHED);
}

/* --- a fake /proc under a temp root ---------------------------------------- */

struct fake {
	char root[64];
};

static int fake_setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	if (fake_root_make(f->root, sizeof(f->root), "/tmp/vcpud-test-discover.XXXXXX") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	int r = fake_tree_remove(f->root);
	free(f);
	return r;
}

/* ROOT/proc/PID/comm */
static void fake_proc(const struct fake *f, int pid, const char *comm)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", pid);
	_cleanup_free_ char *task = path_join(f->root, "proc", spid, "task", NULL);
	mkdir_p(task);
	if (comm) {
		_cleanup_free_ char *p = path_join(f->root, "proc", spid, "comm", NULL);
		_cleanup_free_ char *c = xasprintf("%s\n", comm);
		put_file(p, c);
	}
}

/* ROOT/proc/PID/task/ENTRY/ with comm (NULL: a thread that exited between
 * readdir() and the read of its comm: the directory without the file). */
static void fake_thread(const struct fake *f, int pid, const char *entry, const char *comm)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", pid);
	_cleanup_free_ char *dir = path_join(f->root, "proc", spid, "task", entry, NULL);
	mkdir_p(dir);
	if (comm) {
		_cleanup_free_ char *p = path_join(dir, "comm", NULL);
		_cleanup_free_ char *c = xasprintf("%s\n", comm);
		put_file(p, c);
	}
}

static void fake_tid(const struct fake *f, int pid, int tid, const char *comm)
{
	char stid[16];
	snprintf(stid, sizeof(stid), "%d", tid);
	fake_thread(f, pid, stid, comm);
}

/* A QEMU process: main thread, an IO thread, workers and two vCPUs whose
 * TIDs run opposite to their indexes. */
static void fake_qemu(const struct fake *f, int pid)
{
	fake_proc(f, pid, "qemu-system-x86");
	fake_tid(f, pid, pid, "qemu-system-x86");
	fake_tid(f, pid, pid + 30, "CPU 0/KVM");
	fake_tid(f, pid, pid + 1, "IO mon_iothread");
	fake_tid(f, pid, pid + 20, "CPU 1/KVM");
	fake_tid(f, pid, pid + 2, "worker");
}

/* --- proc_threads_scan ----------------------------------------------------- */

static void test_scan_qemu(void **state)
{
	struct fake *f = *state;
	fake_qemu(f, 4242);
	_cleanup_free_ struct proc_thread *th = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_threads_scan(f->root, 4242, &th, &n, &err), 0);
	assert_null(err);
	assert_int_equal(n, 5);
	const struct proc_thread want[] = {
		{ 4242, VCPU_STYLE_NONE, 0 },     { 4243, VCPU_STYLE_NONE, 0 },
		{ 4244, VCPU_STYLE_NONE, 0 },     { 4262, VCPU_STYLE_QEMU_KVM, 1 },
		{ 4272, VCPU_STYLE_QEMU_KVM, 0 },
	};
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(th[i].tid, want[i].tid);
		assert_int_equal(th[i].style, want[i].style);
		assert_int_equal(th[i].index, want[i].index);
	}

	/* the same through a root with a trailing slash */
	_cleanup_free_ char *slash = xasprintf("%s/", f->root);
	_cleanup_free_ struct proc_thread *th2 = NULL;
	size_t n2 = 0;
	assert_int_equal(proc_threads_scan(slash, 4242, &th2, &n2, &err), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(th2, th, n * sizeof(*th));
}

/* Many threads created in a scrambled order: the output is sorted by tid
 * whatever order readdir() returns (and the array grows past its first
 * allocation). */
static void test_scan_many_sorted(void **state)
{
	struct fake *f = *state;
	fake_proc(f, 100, "cloud-hypervisor");
	const int nt = 67;
	for (int i = 0; i < nt; i++) {
		int k = (i * 37) % nt; /* 37 is prime to 67: a permutation */
		char name[16];
		snprintf(name, sizeof(name), "vcpu%d", k);
		fake_tid(f, 100, 1000 + k * 3, name);
	}
	_cleanup_free_ struct proc_thread *th = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_threads_scan(f->root, 100, &th, &n, &err), 0);
	assert_int_equal(n, (size_t)nt);
	for (int i = 0; i < nt; i++) {
		assert_int_equal(th[i].tid, 1000 + i * 3);
		assert_int_equal(th[i].style, VCPU_STYLE_CLOUD_HV);
		assert_int_equal(th[i].index, (unsigned)i);
	}

	_cleanup_free_ struct vm_vcpu *v = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 100, &v, &n, &err), 0);
	assert_int_equal(n, (size_t)nt);
	for (int i = 0; i < nt; i++) {
		assert_int_equal(v[i].index, (unsigned)i);
		assert_int_equal(v[i].tid, 1000 + i * 3);
	}
}

static void test_scan_skips_exited_and_junk(void **state)
{
	struct fake *f = *state;
	fake_qemu(f, 500);
	fake_tid(f, 500, 505, NULL);            /* exited mid-scan: no comm */
	fake_thread(f, 500, "abc", "CPU 7/KVM"); /* not a tid */
	fake_thread(f, 500, "12a", "CPU 8/KVM");
	fake_thread(f, 500, "-5", "CPU 9/KVM");
	fake_thread(f, 500, "+6", "CPU 10/KVM");
	fake_thread(f, 500, " 7", "CPU 11/KVM");
	fake_thread(f, 500, "0", "CPU 12/KVM");
	fake_thread(f, 500, ".hidden", "CPU 13/KVM");
	fake_thread(f, 500, "99999999999", "CPU 14/KVM"); /* beyond pid_t */
	/* a plain file named like a tid: its comm cannot be read */
	_cleanup_free_ char *file = path_join(f->root, "proc", "500", "task", "506", NULL);
	put_file(file, "CPU 15/KVM\n");

	_cleanup_free_ struct proc_thread *th = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_threads_scan(f->root, 500, &th, &n, &err), 0);
	assert_int_equal(n, 5);
	const pid_t want[] = { 500, 501, 502, 520, 530 };
	for (size_t i = 0; i < n; i++)
		assert_int_equal(th[i].tid, want[i]);

	_cleanup_free_ struct vm_vcpu *v = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 500, &v, &n, &err), 0);
	assert_null(err);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, 530);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, 520);
}

static void test_scan_missing_process(void **state)
{
	struct fake *f = *state;
	struct proc_thread *th = NULL;
	struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;

	/* no ROOT/proc at all */
	assert_int_equal(proc_threads_scan(f->root, 999, &th, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	assert_string_equal(err->msg, "process 999 does not exist");
	error_free(&err);

	/* ROOT/proc exists, the PID does not */
	fake_qemu(f, 4242);
	assert_int_equal(proc_threads_scan(f->root, 999, &th, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	assert_string_equal(err->msg, "process 999 does not exist");
	error_free(&err);
	assert_int_equal(proc_vm_vcpus(f->root, 999, &v, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	assert_non_null(strstr(err->msg, "does not exist"));
	error_free(&err);

	/* a process dir without task/ (a zombie's leftovers, or a bad tree) */
	_cleanup_free_ char *pdir = path_join(f->root, "proc", "998", NULL);
	mkdir_p(pdir);
	assert_int_equal(proc_vm_vcpus(f->root, 998, &v, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	error_free(&err);
	assert_null(th);
	assert_null(v);
}

static void test_scan_no_threads(void **state)
{
	struct fake *f = *state;
	struct proc_thread *th = NULL;
	struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;

	/* task/ is empty: every thread exited, the process is going */
	fake_proc(f, 321, "qemu-system-x86");
	assert_int_equal(proc_threads_scan(f->root, 321, &th, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	assert_string_equal(err->msg, "process 321 does not exist");
	error_free(&err);

	/* task/ holds only threads whose comm is gone and junk */
	fake_tid(f, 321, 322, NULL);
	fake_tid(f, 321, 323, NULL);
	fake_thread(f, 321, "self", "CPU 0/KVM");
	assert_int_equal(proc_threads_scan(f->root, 321, &th, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	error_free(&err);
	assert_int_equal(proc_vm_vcpus(f->root, 321, &v, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	error_free(&err);
	assert_null(th);
	assert_null(v);
}

static void test_scan_unlistable(void **state)
{
	struct fake *f = *state;
	/* ROOT/proc/77 is a file: task/ cannot be listed for another reason
	 * than a missing process, and the error says so */
	_cleanup_free_ char *proc = path_join(f->root, "proc", NULL);
	mkdir_p(proc);
	_cleanup_free_ char *p = path_join(proc, "77", NULL);
	put_file(p, "x");
	struct proc_thread *th = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_threads_scan(f->root, 77, &th, &n, &err), -1);
	assert_int_equal(err->code, ENOTDIR);
	assert_non_null(strstr(err->msg, "cannot list"));
	assert_non_null(strstr(err->msg, "/proc/77/task"));
	error_free(&err);
	assert_null(th);
}

static void test_scan_bad_pid(void **state)
{
	struct fake *f = *state;
	fake_qemu(f, 1);
	const pid_t bad[] = { 0, -1, -4242 };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_thread *th = NULL;
		struct vm_vcpu *v = NULL;
		size_t n = 0;
		struct error *err = NULL;
		assert_int_equal(proc_threads_scan(f->root, bad[i], &th, &n, &err), -1);
		assert_int_equal(err->code, EINVAL);
		assert_non_null(strstr(err->msg, "invalid pid"));
		error_free(&err);
		assert_int_equal(proc_vm_vcpus(f->root, bad[i], &v, &n, &err), -1);
		assert_int_equal(err->code, EINVAL);
		error_free(&err);
		assert_null(th);
		assert_null(v);
	}
}

/* --- proc_vm_vcpus --------------------------------------------------------- */

static void test_vcpus_qemu(void **state)
{
	struct fake *f = *state;
	fake_qemu(f, 4242);
	_cleanup_free_ struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 4242, &v, &n, &err), 0);
	assert_null(err);
	/* sorted by index, not by tid */
	assert_int_equal(n, 2);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, 4272);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, 4262);
}

static void test_vcpus_other_hypervisors(void **state)
{
	struct fake *f = *state;
	fake_proc(f, 700, "firecracker");
	fake_tid(f, 700, 700, "firecracker");
	fake_tid(f, 700, 701, "fc_api");
	fake_tid(f, 700, 702, "fc_vcpu 1");
	fake_tid(f, 700, 703, "fc_vcpu 0");
	fake_proc(f, 800, "qemu-system-aar");
	fake_tid(f, 800, 800, "qemu-system-aar");
	fake_tid(f, 800, 801, "CPU 0/TCG");

	_cleanup_free_ struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 700, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, 703);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, 702);

	_cleanup_free_ struct vm_vcpu *w = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 800, &w, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(w[0].index, 0);
	assert_int_equal(w[0].tid, 801);
}

static void test_vcpus_lookalikes_ignored(void **state)
{
	struct fake *f = *state;
	fake_proc(f, 600, "qemu-system-x86");
	fake_tid(f, 600, 600, "qemu-system-x86");
	fake_tid(f, 600, 601, "CPU 1/KVMx");
	fake_tid(f, 600, 602, "CPU 01/KVM");
	fake_tid(f, 600, 603, "cpu 2/KVM");
	fake_tid(f, 600, 604, "vcpu");
	fake_tid(f, 600, 605, "fc_vcpu 1x");
	fake_tid(f, 600, 606, "CPU 4096/KVM");
	fake_tid(f, 600, 607, "CPU 3/KVM");
	fake_tid(f, 600, 608, "vcpu-1");

	_cleanup_free_ struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 600, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].index, 3);
	assert_int_equal(v[0].tid, 607);
}

static void test_vcpus_none(void **state)
{
	struct fake *f = *state;
	fake_proc(f, 900, "qemu-system-x86");
	fake_tid(f, 900, 900, "qemu-system-x86");
	fake_tid(f, 900, 901, "CPU 1/KVMx");
	fake_tid(f, 900, 902, "worker");
	struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 900, &v, &n, &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_string_equal(err->msg, "process 900 (qemu-system-x86) has no vCPU threads named "
				      "'CPU <n>/KVM', 'fc_vcpu <n>' or 'vcpu<n>'");
	error_free(&err);
	assert_null(v);

	/* the process's own comm is gone too: still ENOENT, named "?" */
	fake_proc(f, 910, NULL);
	fake_tid(f, 910, 910, "bash");
	assert_int_equal(proc_vm_vcpus(f->root, 910, &v, &n, &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_non_null(strstr(err->msg, "process 910 (?) has no vCPU threads"));
	error_free(&err);
	assert_null(v);
}

static void test_vcpus_duplicate_index(void **state)
{
	struct fake *f = *state;
	fake_proc(f, 300, "qemu-system-x86");
	fake_tid(f, 300, 300, "qemu-system-x86");
	fake_tid(f, 300, 301, "CPU 0/KVM");
	fake_tid(f, 300, 302, "CPU 1/KVM");
	fake_tid(f, 300, 303, "CPU 1/KVM");
	struct vm_vcpu *v = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(proc_vm_vcpus(f->root, 300, &v, &n, &err), -1);
	assert_int_equal(err->code, EINVAL);
	assert_non_null(strstr(err->msg, "process 300"));
	assert_non_null(strstr(err->msg, "vCPU 1"));
	assert_non_null(strstr(err->msg, "302"));
	assert_non_null(strstr(err->msg, "303"));
	error_free(&err);
	assert_null(v);

	/* the same index under two naming styles is just as ambiguous */
	fake_proc(f, 310, "odd");
	fake_tid(f, 310, 311, "CPU 0/KVM");
	fake_tid(f, 310, 312, "vcpu0");
	assert_int_equal(proc_vm_vcpus(f->root, 310, &v, &n, &err), -1);
	assert_int_equal(err->code, EINVAL);
	assert_non_null(strstr(err->msg, "vCPU 0"));
	error_free(&err);
	assert_null(v);
}

/* --- a real process on this host ------------------------------------------- */

struct child {
	pid_t pid;
	int hold[2];   /* the child's threads block reading hold[0] */
	int report[2]; /* the child writes (index, tid) records to report[1] */
};

struct report {
	unsigned index;
	pid_t tid;
};

static struct child *the_child; /* for the vCPU threads in the child */

static void *vcpu_thread(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	char name[16];
	snprintf(name, sizeof(name), "CPU %u/KVM", idx);
	if (pthread_setname_np(pthread_self(), name) != 0)
		_exit(3);
	struct report r = { idx, gettid() };
	if (write(the_child->report[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(4);
	char c;
	while (read(the_child->hold[0], &c, 1) != 0)
		;
	return NULL;
}

static int child_setup(void **state)
{
	struct child *c = xcalloc(1, sizeof(*c));
	c->pid = -1;
	c->hold[0] = c->hold[1] = c->report[0] = c->report[1] = -1;
	*state = c;
	return 0;
}

static int child_teardown(void **state)
{
	struct child *c = *state;
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (c->hold[i] >= 0)
			close(c->hold[i]);
		if (c->report[i] >= 0)
			close(c->report[i]);
	}
	free(c);
	return 0;
}

static void test_vcpus_real_process(void **state)
{
	struct child *c = *state;
	assert_int_equal(pipe2(c->hold, O_CLOEXEC), 0);
	assert_int_equal(pipe2(c->report, O_CLOEXEC), 0);
	fflush(NULL);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		the_child = c;
		close(c->hold[1]);
		close(c->report[0]);
		pthread_t t[2];
		for (unsigned i = 0; i < 2; i++)
			if (pthread_create(&t[i], NULL, vcpu_thread, (void *)(uintptr_t)i) != 0)
				_exit(2);
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		_exit(0);
	}
	close(c->hold[0]);
	close(c->report[1]);
	c->hold[0] = c->report[1] = -1;

	pid_t tids[2] = { 0, 0 };
	for (int i = 0; i < 2; i++) {
		struct report r;
		ssize_t got = read(c->report[0], &r, sizeof(r));
		assert_int_equal(got, sizeof(r));
		assert_true(r.index < 2);
		tids[r.index] = r.tid;
	}
	assert_true(tids[0] > 0 && tids[1] > 0 && tids[0] != tids[1]);
	assert_true(tids[0] != c->pid && tids[1] != c->pid);

	struct error *err = NULL;
	_cleanup_free_ struct vm_vcpu *v = NULL;
	size_t n = 0;
	assert_int_equal(proc_vm_vcpus("/", c->pid, &v, &n, &err), 0);
	assert_null(err);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, tids[0]);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, tids[1]);

	/* NULL root means the host; the main thread is there, not a vCPU */
	_cleanup_free_ struct proc_thread *th = NULL;
	assert_int_equal(proc_threads_scan(NULL, c->pid, &th, &n, &err), 0);
	assert_int_equal(n, 3);
	size_t vcpus = 0;
	bool main_seen = false;
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			assert_true(th[i - 1].tid < th[i].tid);
		if (th[i].tid == c->pid) {
			main_seen = true;
			assert_int_equal(th[i].style, VCPU_STYLE_NONE);
		} else {
			assert_int_equal(th[i].style, VCPU_STYLE_QEMU_KVM);
			assert_int_equal(th[i].tid, tids[th[i].index]);
			vcpus++;
		}
	}
	assert_true(main_seen);
	assert_int_equal(vcpus, 2);

	/* gone: killed by its PID and reaped */
	pid_t pid = c->pid;
	assert_int_equal(kill(pid, SIGKILL), 0);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	c->pid = -1;
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	struct vm_vcpu *w = NULL;
	assert_int_equal(proc_vm_vcpus("/", pid, &w, &n, &err), -1);
	assert_int_equal(err->code, ESRCH);
	_cleanup_free_ char *want = xasprintf("process %d does not exist", (int)pid);
	assert_string_equal(err->msg, want);
	error_free(&err);
	assert_null(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_parse_vcpus),
		cmocka_unit_test(test_name_parse_not_vcpus),
		cmocka_unit_test_setup_teardown(test_scan_qemu, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_many_sorted, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_skips_exited_and_junk, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_missing_process, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_no_threads, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_unlistable, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_bad_pid, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_qemu, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_other_hypervisors, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_lookalikes_ignored, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_none, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_duplicate_index, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_vcpus_real_process, child_setup, child_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
