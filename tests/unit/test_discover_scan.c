/* test_discover_scan.c - the /proc discovery backend (src/discover/scan.c):
 * its pure parsers (uptime, VMM command lines, the tenant-from-name
 * rule), the backend on fake /proc trees under a temp root (QEMU,
 * Firecracker and cloud-hypervisor VMs, look-alike thread names, processes
 * that vanish mid-scan, PID reuse, exec, hot-plug, a second pass that reads
 * nothing), and on real fakevm processes on this host. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
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
#include "vcpud/procfs.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

extern char **environ;

/* --- proc_uptime_parse (proc_stat_parse: test_common.c) ------------------- */

static void test_uptime_parse(void **state)
{
	(void)state;
	double up = -1;
	assert_int_equal(proc_uptime_parse("12345.67 2345.00\n", &up, NULL), 0);
	assert_true(up > 12345.66 && up < 12345.68);
	assert_int_equal(proc_uptime_parse("0.00 0.00", &up, NULL), 0);
	assert_true(up == 0);
	assert_int_equal(proc_uptime_parse("42\n", &up, NULL), 0);
	assert_true(up == 42);
	const char *bad[] = { "", " 1.0 2.0", "-1.0 2", "x", "1.0x 2", "inf 1", "nan 1", "1e999 1" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error *err = NULL;
		up = -7;
		if (proc_uptime_parse(bad[i], &up, &err) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_int_equal(err->code, EINVAL);
		error_free(&err);
		assert_true(up == -7);
	}
	assert_int_equal(proc_uptime_parse(NULL, &up, NULL), -1);
}

/* --- kinds ----------------------------------------------------------------- */

static void test_kinds(void **state)
{
	(void)state;
	assert_string_equal(vmm_kind_name(VMM_KIND_QEMU), "qemu");
	assert_string_equal(vmm_kind_name(VMM_KIND_FIRECRACKER), "firecracker");
	assert_string_equal(vmm_kind_name(VMM_KIND_CLOUD_HV), "cloud-hypervisor");
	assert_string_equal(vmm_kind_name(VMM_KIND_UNKNOWN), "unknown");
	assert_null(vmm_kind_name(VMM_KIND_LAST));
	assert_null(vmm_kind_name((enum vmm_kind)-1));

	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_QEMU_KVM), VMM_KIND_QEMU);
	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_QEMU_TCG), VMM_KIND_QEMU);
	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_FIRECRACKER), VMM_KIND_FIRECRACKER);
	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_CLOUD_HV), VMM_KIND_CLOUD_HV);
	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_NONE), VMM_KIND_UNKNOWN);
	assert_int_equal(vmm_kind_of_style(VCPU_STYLE_LAST), VMM_KIND_UNKNOWN);

	const struct {
		const char *comm;
		enum vmm_kind kind;
	} cases[] = {
		{ "qemu-system-x86", VMM_KIND_QEMU },  { "qemu-system-aar", VMM_KIND_QEMU },
		{ "qemu-system-x86\n", VMM_KIND_QEMU }, { "qemu-kvm", VMM_KIND_QEMU },
		{ "kvm", VMM_KIND_QEMU },              { "qemu", VMM_KIND_QEMU },
		{ "firecracker", VMM_KIND_FIRECRACKER }, { "firecracker\n", VMM_KIND_FIRECRACKER },
		{ "cloud-hyperviso", VMM_KIND_CLOUD_HV }, { "cloud-hypervisor", VMM_KIND_CLOUD_HV },
		{ "qemu-system-", VMM_KIND_UNKNOWN },  { "qemu-img", VMM_KIND_UNKNOWN },
		{ "qemu-kvmx", VMM_KIND_UNKNOWN },     { "kvm-pit/4242", VMM_KIND_UNKNOWN },
		{ "firecrackers", VMM_KIND_UNKNOWN },  { "jailer", VMM_KIND_UNKNOWN },
		{ "cloud-hypervis", VMM_KIND_UNKNOWN }, { "Firecracker", VMM_KIND_UNKNOWN },
		{ "", VMM_KIND_UNKNOWN },              { "\n", VMM_KIND_UNKNOWN },
		{ "qemu-system-x86\n\n", VMM_KIND_UNKNOWN }, { "qemu-system-\tx", VMM_KIND_UNKNOWN },
		{ "kvm\r", VMM_KIND_UNKNOWN },
		{ "qemu-system-x86_64-and-a-very-long-tail", VMM_KIND_UNKNOWN },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (vmm_kind_of_comm(cases[i].comm) != cases[i].kind)
			fail_msg("'%s': kind %d, want %d", cases[i].comm,
				 (int)vmm_kind_of_comm(cases[i].comm), (int)cases[i].kind);
	assert_int_equal(vmm_kind_of_comm(NULL), VMM_KIND_UNKNOWN);
}

/* --- vmm_cmdline_identify -------------------------------------------------- */

struct id_case {
	enum vmm_kind kind;
	const char *cmdline; /* arguments separated by '|', turned into NULs */
	const char *name, *uuid;
};

static void check_identify(const struct id_case *c, bool trailing_nul)
{
	_cleanup_free_ char *buf = xstrdup(c->cmdline);
	size_t len = strlen(buf);
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '|')
			buf[i] = '\0';
	struct vmm_identity id;
	memset(&id, 0x5a, sizeof(id));
	/* with the kernel's trailing NUL, or cut right after the last byte */
	vmm_cmdline_identify(c->kind, buf, trailing_nul ? len + 1 : len, &id);
	if (strcmp(id.name, c->name) != 0 || strcmp(id.uuid, c->uuid) != 0)
		fail_msg("%s '%s'%s: name '%s' uuid '%s', want '%s' '%s'", vmm_kind_name(c->kind),
			 c->cmdline, trailing_nul ? " (NUL-ended)" : "", id.name, id.uuid, c->name,
			 c->uuid);
}

static void test_cmdline_identify(void **state)
{
	(void)state;
	char long_name[80];
	memset(long_name, 'a', sizeof(long_name));
	long_name[65] = '\0';
	_cleanup_free_ char *long_line = xasprintf("qemu|-name|%s", long_name);
	long_name[64] = '\0';
	_cleanup_free_ char *max_line = xasprintf("qemu|-name|guest=%s", long_name);

	const struct id_case cases[] = {
		/* QEMU */
		{ VMM_KIND_QEMU, "qemu-system-x86_64|-name|guest=web-1,debug-threads=on|-m|512",
		  "web-1", "" },
		{ VMM_KIND_QEMU, "qemu-system-x86_64|-name|web-1", "web-1", "" },
		{ VMM_KIND_QEMU, "qemu-system-x86_64|--name|web-1,process=qemu-web", "web-1", "" },
		{ VMM_KIND_QEMU, "qemu|-name|debug-threads=on,guest=acme.db", "acme.db", "" },
		{ VMM_KIND_QEMU, "qemu|-name|guest=a|-name|guest=b", "b", "" },   /* last wins */
		{ VMM_KIND_QEMU, "qemu|-name|guest=a|-name|debug-threads=on", "a", "" }, /* merged */
		{ VMM_KIND_QEMU, "qemu|-name|guest=a|-name|guest=b c", "", "" },  /* last is bad */
		{ VMM_KIND_QEMU, "qemu|-name|guest=a,,b", "", "" },   /* ",," is a comma: "a,b" */
		{ VMM_KIND_QEMU, "qemu|-name|a,,b,guest=c", "c", "" },
		{ VMM_KIND_QEMU, "qemu|-name|guest=", "", "" },
		{ VMM_KIND_QEMU, "qemu|-name|", "", "" },
		{ VMM_KIND_QEMU, "qemu|-name", "", "" },              /* no value */
		{ VMM_KIND_QEMU, "qemu|-name|..", "", "" },
		{ VMM_KIND_QEMU, "qemu|-name|a/b", "", "" },
		{ VMM_KIND_QEMU, "qemu|-name|process=x,debug-threads=on", "", "" },
		{ VMM_KIND_QEMU, "qemu|-namex|web", "", "" },
		{ VMM_KIND_QEMU, "qemu|-name=web", "", "" },
		{ VMM_KIND_QEMU, "qemu|--id|web", "", "" },           /* Firecracker's option */
		{ VMM_KIND_QEMU, long_line, "", "" },                 /* 65 characters */
		{ VMM_KIND_QEMU, max_line, long_name, "" },           /* 64 */
		{ VMM_KIND_QEMU, "qemu|-uuid|0F8FAD5B-D9CB-469F-A165-70867728950E|-name|x",
		  "x", "0f8fad5b-d9cb-469f-a165-70867728950e" },
		{ VMM_KIND_QEMU, "qemu|--uuid|0f8fad5b-d9cb-469f-a165-70867728950e",
		  "", "0f8fad5b-d9cb-469f-a165-70867728950e" },
		{ VMM_KIND_QEMU, "qemu|-uuid|0f8fad5b-d9cb-469f-a165-70867728950", "", "" },
		{ VMM_KIND_QEMU, "qemu|-uuid|0f8fad5b_d9cb-469f-a165-70867728950e", "", "" },
		{ VMM_KIND_QEMU, "qemu|-uuid|0f8fad5b-d9cb-469f-a165-70867728950g", "", "" },
		{ VMM_KIND_QEMU, "qemu|-uuid", "", "" },
		/* an argument after "--" still counts (fakevm passes them on) */
		{ VMM_KIND_QEMU, "fakevm|--|-name|guest=w", "w", "" },
		/* Firecracker */
		{ VMM_KIND_FIRECRACKER, "firecracker|--api-sock|/run/fc.sock|--id|fc-1", "fc-1", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|--id=acme.fc-2", "acme.fc-2", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|--id", "", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|--idx|y", "", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|--id|a b", "", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|-name|guest=x", "", "" },
		{ VMM_KIND_FIRECRACKER, "firecracker|--id|a|--id|b", "b", "" },
		/* cloud-hypervisor */
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|path=/run/ch/ch-1.sock",
		  "ch-1", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket=/run/ch/acme.ch-2.sock",
		  "acme.ch-2", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|/run/ch/api", "api", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|fd=3", "", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|/run/ch/.sock", "", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|/run/ch/", "", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket|fd=3,path=/x/y.sock", "y", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--api-socket", "", "" },
		{ VMM_KIND_CLOUD_HV, "cloud-hypervisor|--kernel|vmlinux", "", "" },
		/* nothing for an unknown kind */
		{ VMM_KIND_UNKNOWN, "qemu|-name|web-1", "", "" },
		{ VMM_KIND_QEMU, "", "", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		check_identify(&cases[i], true);
		check_identify(&cases[i], false);
	}
	/* empty arguments, and NUL or no buffer at all */
	const char gaps[] = "qemu\0\0-name\0guest=g\0\0";
	struct vmm_identity id;
	vmm_cmdline_identify(VMM_KIND_QEMU, gaps, sizeof(gaps) - 1, &id);
	assert_string_equal(id.name, "g");
	vmm_cmdline_identify(VMM_KIND_QEMU, NULL, 0, &id);
	assert_string_equal(id.name, "");
	vmm_cmdline_identify(VMM_KIND_QEMU, "\0\0", 2, &id);
	assert_string_equal(id.name, "");
}

static void test_tenant_from_name(void **state)
{
	(void)state;
	const struct {
		const char *name, *tenant;
	} cases[] = {
		{ "acme.web-1", "acme" }, { "acme.db.prod", "acme" }, { "a.b", "a" },
		{ "acme..x", "acme" },    { "web-1", "" },            { ".web", "" },
		{ "acme.", "" },          { ".", "" },                { "", "" },
		{ "a b.c", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char t[NAME_MAX_LEN + 1];
		memset(t, 'x', sizeof(t));
		bool ok = discover_tenant_from_name(cases[i].name, t);
		if (ok != (cases[i].tenant[0] != '\0') || strcmp(t, cases[i].tenant) != 0)
			fail_msg("'%s': %d '%s', want '%s'", cases[i].name, ok, t, cases[i].tenant);
	}
	char t[NAME_MAX_LEN + 1];
	assert_false(discover_tenant_from_name(NULL, t));
	assert_string_equal(t, "");
	/* a tenant part of 64 characters is the longest */
	char name[80];
	memset(name, 'a', 64);
	strcpy(name + 64, ".x");
	assert_true(discover_tenant_from_name(name, t));
	assert_int_equal(strlen(t), 64);
	memset(name, 'a', 65);
	strcpy(name + 65, ".x");
	assert_false(discover_tenant_from_name(name, t));
}

/* --- a fake /proc under a temp root ---------------------------------------- */

struct fake {
	char root[64];
	struct discover_backend *b;
	struct discover_result r;
};

static void rm_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		assert_int_equal(fake_tree_remove(path), 0);
}

static int fake_setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	if (fake_root_make(f->root, sizeof(f->root), "/tmp/vcpud-test-scan.XXXXXX") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	discover_result_clear(&f->r);
	discover_backend_free(f->b);
	int r = fake_tree_remove(f->root);
	free(f);
	return r;
}

static char *ppath(const struct fake *f, int pid, const char *rest)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", pid);
	return path_join(f->root, "proc", spid, rest, NULL);
}

/* ROOT/proc/PID/stat with the fields the backend reads. */
static void fk_stat(const struct fake *f, int pid, const char *comm, unsigned flags,
		    unsigned threads, unsigned long long start)
{
	_cleanup_free_ char *dir = ppath(f, pid, "task");
	mkdir_p(dir);
	_cleanup_free_ char *p = ppath(f, pid, "stat");
	_cleanup_free_ char *s = xasprintf("%d (%s) S 1 %d %d 0 -1 %u 0 0 0 0 0 0 0 0 20 0 %u 0 "
					   "%llu 1000 100\n", pid, comm, pid, pid, flags,
					   threads, start);
	put_bytes(p, s, strlen(s));
}

/* ROOT/proc/PID/cmdline from '|'-separated arguments (NUL-ended, as the
 * kernel writes it). */
static void fk_cmdline(const struct fake *f, int pid, const char *args)
{
	_cleanup_free_ char *p = ppath(f, pid, "cmdline");
	_cleanup_free_ char *buf = xstrdup(args);
	size_t len = strlen(buf);
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '|')
			buf[i] = '\0';
	put_bytes(p, buf, len + 1);
}

/* ROOT/proc/PID/task/TID/comm (comm NULL: the directory without it, a
 * thread that exited between the listing and the read). */
static void fk_thread(const struct fake *f, int pid, int tid, const char *comm)
{
	char rel[48];
	snprintf(rel, sizeof(rel), "task/%d", tid);
	_cleanup_free_ char *dir = ppath(f, pid, rel);
	mkdir_p(dir);
	if (comm) {
		_cleanup_free_ char *p = path_join(dir, "comm", NULL);
		_cleanup_free_ char *c = xasprintf("%s\n", comm);
		put_bytes(p, c, strlen(c));
	}
}

static void fk_rm_thread(const struct fake *f, int pid, int tid)
{
	char rel[48];
	snprintf(rel, sizeof(rel), "task/%d", tid);
	_cleanup_free_ char *dir = ppath(f, pid, rel);
	rm_tree(dir);
}

/* A process: stat, cmdline (args may be NULL: none) and threads given as
 * NULL-ended (tid, comm) pairs; the main thread (tid == pid) has the
 * process's comm. */
static void fk_process(const struct fake *f, int pid, const char *comm, unsigned long long start,
		       const char *args, ...)
{
	va_list ap;
	unsigned n = 1;
	va_start(ap, args);
	while (va_arg(ap, int) != 0) {
		(void)va_arg(ap, const char *);
		n++;
	}
	va_end(ap);
	fk_stat(f, pid, comm, 0x400000, n, start);
	if (args)
		fk_cmdline(f, pid, args);
	fk_thread(f, pid, pid, comm);
	va_start(ap, args);
	int tid;
	while ((tid = va_arg(ap, int)) != 0)
		fk_thread(f, pid, tid, va_arg(ap, const char *));
	va_end(ap);
}

static void fk_uptime(const struct fake *f, const char *text)
{
	_cleanup_free_ char *d = path_join(f->root, "proc", NULL);
	mkdir_p(d);
	_cleanup_free_ char *p = path_join(f->root, "proc", "uptime", NULL);
	put_bytes(p, text, strlen(text));
}

static void fk_rm(const struct fake *f, int pid, const char *rest)
{
	_cleanup_free_ char *p = ppath(f, pid, rest);
	rm_tree(p);
}

/* One pass into f->r; the stats of it into *st. */
static void pass(struct fake *f, struct discover_proc_stats *st)
{
	discover_result_clear(&f->r);
	struct error *err = NULL;
	if (discover_scan(f->b, &f->r, &err) != 0)
		fail_msg("scan: %s", err ? err->msg : "?");
	assert_null(err);
	assert_int_equal(discover_proc_stats(f->b, st, &err), 0);
	assert_int_equal(st->vms, f->r.n);
	unsigned vcpus = 0;
	for (size_t i = 0; i < f->r.n; i++) {
		const struct discover_vm *v = &f->r.vms[i];
		/* the result's invariants */
		if (i)
			assert_true(f->r.vms[i - 1].pid < v->pid);
		assert_true(v->n_vcpus >= 1);
		for (size_t j = 1; j < v->n_vcpus; j++)
			assert_true(v->vcpus[j - 1].index < v->vcpus[j].index);
		assert_true(name_valid(v->name));
		vcpus += (unsigned)v->n_vcpus;
	}
	assert_int_equal(st->vcpus, vcpus);
}

static void new_backend(struct fake *f, const struct discover_proc_config *cfg)
{
	discover_backend_free(f->b);
	f->b = NULL;
	struct error *err = NULL;
	assert_int_equal(discover_proc_new(f->root, cfg, &f->b, &err), 0);
	assert_non_null(f->b);
	assert_string_equal(f->b->ops->name, "proc");
}

static const struct discover_vm *find_vm(const struct fake *f, pid_t pid)
{
	for (size_t i = 0; i < f->r.n; i++)
		if (f->r.vms[i].pid == pid)
			return &f->r.vms[i];
	return NULL;
}

/* "0:111 1:110" - a VM's vCPUs as index:tid. */
static void assert_vcpus(const struct discover_vm *v, const char *want)
{
	assert_non_null(v);
	char got[512] = "";
	for (size_t i = 0; i < v->n_vcpus; i++) {
		size_t l = strlen(got);
		snprintf(got + l, sizeof(got) - l, "%s%u:%d", i ? " " : "", v->vcpus[i].index,
			 (int)v->vcpus[i].tid);
	}
	if (strcmp(got, want) != 0)
		fail_msg("VM %d (%s): vCPUs '%s', want '%s'", (int)v->pid, v->name, got, want);
}

#define END 0

/* The host of the first tests: three VMs, processes that are not, and junk
 * in /proc. */
static void fk_host(const struct fake *f)
{
	/* QEMU, vCPU TIDs opposite to their indexes, with look-alike threads */
	fk_process(f, 100, "qemu-system-x86", 5000,
		   "/usr/bin/qemu-system-x86_64|-name|guest=web-1,debug-threads=on|"
		   "-uuid|0F8FAD5B-D9CB-469F-A165-70867728950E|-smp|2",
		   101, "call_rcu", 102, "IO mon_iothread", 103, "CPU 1/KVMx",
		   104, "CPU -1/KVM", 110, "CPU 1/KVM", 111, "CPU 0/KVM", END);
	fk_process(f, 200, "firecracker", 5100, "firecracker|--api-sock|/run/fc-1.sock|--id|fc-1",
		   201, "fc_api", 202, "fc_vcpu 0", 203, "fc_vcpu 1", END);
	fk_process(f, 300, "cloud-hyperviso", 5200,
		   "cloud-hypervisor|--api-socket|path=/run/ch/acme.ch-1.sock|--cpus|boot=3",
		   301, "vmm", 304, "vcpu2", 303, "vcpu1", 302, "vcpu0", END);
	/* not VMs: single-threaded, multi-threaded, look-alike names only,
	 * a kernel thread named like a vCPU */
	fk_process(f, 1, "systemd", 1, "/sbin/init", END);
	fk_process(f, 400, "java", 4000, "java|-jar|x.jar", 401, "GC Thread#0", 402, "C2 Comp",
		   END);
	fk_process(f, 500, "stress", 4100, "stress", 501, "CPU 1/KVMx", 502, "CPU -1/KVM",
		   503, "vcpu01", 504, "fc_vcpu 1x", END);
	fk_stat(f, 2, "kthreadd", PROC_PF_KTHREAD, 1, 0);
	fk_thread(f, 2, 2, "kthreadd");
	fk_stat(f, 3, "vcpu0", PROC_PF_KTHREAD, 1, 0);
	fk_thread(f, 3, 3, "vcpu0");
	/* junk entries in /proc */
	_cleanup_free_ char *self = path_join(f->root, "proc", "self", NULL);
	mkdir_p(self);
	_cleanup_free_ char *junk = path_join(f->root, "proc", "12a", NULL);
	mkdir_p(junk);
	_cleanup_free_ char *big = path_join(f->root, "proc", "99999999999", NULL);
	mkdir_p(big);
	_cleanup_free_ char *zero = path_join(f->root, "proc", "0123", NULL);
	mkdir_p(zero);
}

static void test_scan_fake_host(void **state)
{
	struct fake *f = *state;
	fk_host(f);
	new_backend(f, NULL);
	struct discover_proc_stats st;
	pass(f, &st);

	assert_int_equal(f->r.n, 3);
	const struct discover_vm *q = &f->r.vms[0], *fc = &f->r.vms[1], *ch = &f->r.vms[2];
	assert_int_equal(q->pid, 100);
	assert_int_equal(q->kind, VMM_KIND_QEMU);
	assert_string_equal(q->name, "web-1");
	assert_true(q->name_given);
	assert_string_equal(q->uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
	assert_string_equal(q->tenant, ""); /* no mapping rule: unmanaged */
	assert_true(q->start_time == 5000);
	assert_vcpus(q, "0:111 1:110");

	assert_int_equal(fc->pid, 200);
	assert_int_equal(fc->kind, VMM_KIND_FIRECRACKER);
	assert_string_equal(fc->name, "fc-1");
	assert_string_equal(fc->uuid, "");
	assert_vcpus(fc, "0:202 1:203");

	assert_int_equal(ch->pid, 300);
	assert_int_equal(ch->kind, VMM_KIND_CLOUD_HV);
	assert_string_equal(ch->name, "acme.ch-1");
	assert_string_equal(ch->tenant, "");
	assert_vcpus(ch, "0:302 1:303 2:304");

	/* what it read: every PID's stat; task/ of the five multi-threaded
	 * processes only (not of the single-threaded init, nor of the kernel
	 * threads); the comm of every thread of those but the main ones; the
	 * cmdline of the three VMs */
	assert_int_equal(st.pids, 8);
	assert_int_equal(st.probed, 8);
	assert_int_equal(st.stat_reads, 8);
	assert_int_equal(st.task_lists, 5);
	assert_int_equal(st.comm_reads, 6 + 3 + 4 + 2 + 4);
	assert_int_equal(st.cmdline_reads, 3);
	assert_int_equal(st.ignored, 5);
	assert_int_equal(st.vanished, 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.candidates, 0);
	assert_int_equal(st.vms, 3);
	assert_int_equal(st.vcpus, 7);

	/* the same through a root with a trailing slash */
	_cleanup_free_ char *slash = xasprintf("%s/", f->root);
	struct discover_backend *b2 = NULL;
	assert_int_equal(discover_proc_new(slash, NULL, &b2, NULL), 0);
	struct discover_result r2 = { 0 };
	assert_int_equal(discover_scan(b2, &r2, NULL), 0);
	assert_int_equal(r2.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(r2.vms[i].pid, f->r.vms[i].pid);
		assert_string_equal(r2.vms[i].name, f->r.vms[i].name);
		assert_int_equal(r2.vms[i].n_vcpus, f->r.vms[i].n_vcpus);
		assert_memory_equal(r2.vms[i].vcpus, f->r.vms[i].vcpus,
				    r2.vms[i].n_vcpus * sizeof(struct vm_vcpu));
	}
	discover_result_clear(&r2);
	discover_result_clear(&r2); /* twice is fine */
	discover_backend_free(b2);
}

/* A second pass with nothing new lists task/ of the VMs and reads no
 * stat, comm or cmdline file: proven by the counters and by poisoning
 * every such file after the first pass. */
static void test_scan_nothing_new(void **state)
{
	struct fake *f = *state;
	fk_host(f);
	const struct discover_proc_config cfg = { .recheck_passes = 1000000 };
	new_backend(f, &cfg);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(f->r.n, 3);

	/* poison: were any of these read, the result would change */
	const int pids[] = { 1, 100, 200, 300, 400, 500 };
	for (size_t i = 0; i < ARRAY_SIZE(pids); i++) {
		fk_stat(f, pids[i], "qemu-system-x86", 0, 9, 1);
		fk_cmdline(f, pids[i], "qemu|-name|poisoned");
	}
	const int tids[] = { 101, 102, 103, 104, 110, 111, 201, 202, 203, 301, 302, 303, 304,
			     401, 402, 501, 502, 503, 504 };
	for (size_t i = 0; i < ARRAY_SIZE(tids); i++) {
		int pid = tids[i] / 100 * 100;
		char comm[16];
		snprintf(comm, sizeof(comm), "CPU %zu/KVM", 20 + i);
		fk_thread(f, pid, tids[i], comm);
	}

	for (int round = 0; round < 3; round++) {
		pass(f, &st);
		assert_int_equal(st.pids, 8);
		assert_int_equal(st.probed, 0);
		assert_int_equal(st.stat_reads, 0);
		assert_int_equal(st.comm_reads, 0);
		assert_int_equal(st.cmdline_reads, 0);
		assert_int_equal(st.task_lists, 3); /* the three VMs */
		assert_int_equal(st.watched, 3);
		assert_int_equal(st.rechecked, 0);
		assert_int_equal(st.ignored, 5);
		assert_int_equal(f->r.n, 3);
		assert_string_equal(f->r.vms[0].name, "web-1");
		assert_vcpus(&f->r.vms[0], "0:111 1:110");
		assert_vcpus(&f->r.vms[1], "0:202 1:203");
		assert_vcpus(&f->r.vms[2], "0:302 1:303 2:304");
	}
}

/* vCPU hot-plug and unplug: only the new thread is read. */
static void test_scan_hotplug(void **state)
{
	struct fake *f = *state;
	fk_host(f);
	new_backend(f, NULL);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_vcpus(find_vm(f, 100), "0:111 1:110");

	fk_thread(f, 100, 112, "CPU 2/KVM");
	fk_thread(f, 100, 113, "worker");
	fk_stat(f, 100, "qemu-system-x86", 0x400000, 10, 5000);
	pass(f, &st);
	assert_vcpus(find_vm(f, 100), "0:111 1:110 2:112");
	assert_string_equal(find_vm(f, 100)->name, "web-1");
	assert_int_equal(st.comm_reads, 2);
	assert_int_equal(st.stat_reads, 1);    /* its threads changed: is it the same process? */
	assert_int_equal(st.cmdline_reads, 0); /* it is: its name stands */
	assert_int_equal(st.probed, 0);

	/* unplug vCPU 1 and the worker exits: nothing to read */
	fk_rm_thread(f, 100, 110);
	fk_rm_thread(f, 100, 113);
	pass(f, &st);
	assert_vcpus(find_vm(f, 100), "0:111 2:112");
	assert_int_equal(st.comm_reads, 0);
	assert_int_equal(st.cmdline_reads, 0);

	/* a fresh QEMU without vCPU threads yet is a candidate, found once
	 * it has them */
	fk_process(f, 600, "qemu-system-aar", 6000, "qemu-system-aarch64|-name|arm-1", 601,
		   "call_rcu", END);
	pass(f, &st);
	assert_null(find_vm(f, 600));
	assert_int_equal(st.candidates, 1);
	fk_thread(f, 600, 602, "CPU 0/TCG");
	pass(f, &st);
	assert_vcpus(find_vm(f, 600), "0:602");
	assert_string_equal(find_vm(f, 600)->name, "arm-1");
	assert_int_equal(find_vm(f, 600)->kind, VMM_KIND_QEMU);
	assert_int_equal(st.candidates, 0);
	assert_int_equal(st.comm_reads, 1);
}

/* Processes that exit while a pass looks at them: at every step the pass
 * drops them without an error. */
static void test_scan_vanished(void **state)
{
	struct fake *f = *state;
	fk_host(f);
	/* gone before its stat was read: only the directory is left */
	_cleanup_free_ char *d700 = path_join(f->root, "proc", "700", NULL);
	mkdir_p(d700);
	/* gone before task/ was listed */
	fk_process(f, 710, "qemu-system-x86", 7100, "qemu|-name|x", 711, "CPU 0/KVM", END);
	fk_rm(f, 710, "task");
	/* every thread gone: task/ is empty */
	fk_stat(f, 720, "qemu-system-x86", 0, 2, 7200);
	/* gone before its cmdline was read */
	fk_process(f, 730, "qemu-system-x86", 7300, NULL, 731, "CPU 0/KVM", END);
	/* threads that exited between the listing and their comm: the VM
	 * keeps the others */
	fk_process(f, 740, "firecracker", 7400, "firecracker|--id|fc-740", 741, "fc_vcpu 0",
		   742, NULL, 743, "fc_vcpu 1", END);
	/* a comm that cannot be read for another reason (a directory): skipped
	 * as an error, the VM keeps the others */
	fk_process(f, 750, "firecracker", 7500, "firecracker|--id|fc-750", 751, "fc_vcpu 0", END);
	_cleanup_free_ char *dcomm = ppath(f, 750, "task/752/comm");
	mkdir_p(dcomm);
	/* an empty stat (a process being torn down) */
	fk_process(f, 760, "qemu-system-x86", 7600, "qemu|-name|y", 761, "CPU 0/KVM", END);
	_cleanup_free_ char *s760 = ppath(f, 760, "stat");
	put_bytes(s760, "", 0);

	new_backend(f, NULL);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(f->r.n, 5);
	assert_non_null(find_vm(f, 100));
	assert_non_null(find_vm(f, 200));
	assert_non_null(find_vm(f, 300));
	assert_vcpus(find_vm(f, 740), "0:741 1:743");
	assert_vcpus(find_vm(f, 750), "0:751");
	assert_int_equal(st.vanished, 5); /* 700, 710, 720, 730, 760 */
	assert_int_equal(st.errors, 1);   /* 752/comm */

	/* the dropped ones are not cached: they are looked at again (and
	 * dropped again) while their directories are listed */
	pass(f, &st);
	assert_int_equal(f->r.n, 5);
	assert_int_equal(st.vanished, 5);
	assert_int_equal(st.probed, 5);

	/* known VMs exit: QEMU's task/ goes before its directory does,
	 * Firecracker's threads go but its stat stays (a zombie), the
	 * cloud-hypervisor directory goes at once */
	fk_rm(f, 100, "task");
	for (int tid = 200; tid <= 203; tid++)
		fk_rm_thread(f, 200, tid);
	fk_thread(f, 200, 200, "firecracker"); /* the zombie leader */
	fk_stat(f, 200, "firecracker", 0, 1, 5100);
	fk_rm(f, 300, NULL);
	pass(f, &st);
	assert_null(find_vm(f, 100));
	assert_null(find_vm(f, 200));
	assert_null(find_vm(f, 300));
	assert_int_equal(f->r.n, 2);
	/* 100 and the five above are dropped; 200 is kept as a Firecracker
	 * process without vCPUs (it may be restarting them) */
	assert_int_equal(st.vanished, 6);
	assert_int_equal(st.candidates, 1);
	fk_rm(f, 200, NULL);
	fk_rm(f, 100, NULL);
	pass(f, &st);
	assert_int_equal(f->r.n, 2);
	assert_int_equal(st.candidates, 0);
}

/* The same PID for another process (another start time). */
static void test_scan_pid_reuse(void **state)
{
	struct fake *f = *state;
	fk_host(f);
	const struct discover_proc_config cfg = { .recheck_passes = 1000000 };
	new_backend(f, &cfg);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_string_equal(find_vm(f, 100)->name, "web-1");

	/* VM -> VM: QEMU 100 exits, another QEMU gets PID 100 */
	fk_rm(f, 100, NULL);
	fk_process(f, 100, "qemu-system-x86", 9000, "qemu|-name|guest=web-2", 150, "CPU 0/KVM",
		   151, "CPU 1/KVM", 152, "CPU 2/KVM", END);
	pass(f, &st);
	const struct discover_vm *v = find_vm(f, 100);
	assert_string_equal(v->name, "web-2");
	assert_string_equal(v->uuid, "");
	assert_true(v->start_time == 9000);
	assert_vcpus(v, "0:150 1:151 2:152");
	assert_int_equal(st.probed, 1);
	assert_int_equal(st.cmdline_reads, 1);

	/* VM -> not a VM (a shell) */
	fk_rm(f, 100, NULL);
	fk_process(f, 100, "bash", 9500, "bash", END);
	pass(f, &st);
	assert_null(find_vm(f, 100));
	assert_int_equal(f->r.n, 2);
	assert_int_equal(st.ignored, 6);

	/* not a VM -> VM: the same PID, a later start time: noticed by the
	 * recheck of the "not a VM" cache, not before */
	fk_rm(f, 100, NULL);
	fk_process(f, 100, "qemu-system-x86", 9900, "qemu|-name|web-3", 160, "CPU 0/KVM", END);
	pass(f, &st);
	assert_null(find_vm(f, 100));
	assert_int_equal(st.stat_reads, 0);
	const struct discover_proc_config every = { .recheck_passes = 1 };
	assert_int_equal(discover_proc_configure(f->b, &every, NULL), 0);
	pass(f, &st);
	assert_int_equal(st.rechecked, 6); /* every PID cached as "not a VM" */
	assert_string_equal(find_vm(f, 100)->name, "web-3");
	assert_vcpus(find_vm(f, 100), "0:160");
	/* the others were unchanged: not probed again */
	assert_int_equal(st.probed, 1);
}

/* Round-robin rechecks: each "not a VM" PID once per recheck_passes
 * passes; an exec (another comm) or new threads are noticed then. */
static void test_scan_recheck(void **state)
{
	struct fake *f = *state;
	fk_host(f); /* five PIDs cached as not a VM: 1, 2, 3, 400, 500 */
	const struct discover_proc_config cfg = { .recheck_passes = 5 };
	new_backend(f, &cfg);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(st.ignored, 5);
	unsigned total = 0;
	for (int i = 0; i < 10; i++) {
		pass(f, &st);
		assert_int_equal(st.rechecked, 1);
		assert_int_equal(st.stat_reads, 1);
		assert_int_equal(st.probed, 0);
		total += st.rechecked;
	}
	assert_int_equal(total, 10);

	/* a fractional share: 5 PIDs over 2 passes is 2, 3, 2, 3... */
	const struct discover_proc_config two = { .recheck_passes = 2 };
	assert_int_equal(discover_proc_configure(f->b, &two, NULL), 0);
	total = 0;
	for (int i = 0; i < 4; i++) {
		pass(f, &st);
		assert_true(st.rechecked == 2 || st.rechecked == 3);
		total += st.rechecked;
	}
	assert_int_equal(total, 10);

	/* java (400) exec's a QEMU: the same start time, another comm */
	fk_rm(f, 400, NULL);
	fk_process(f, 400, "qemu-system-x86", 4000, "qemu|-name|guest=exec-1", 405, "CPU 0/KVM",
		   END);
	/* the shell (1) grows a thread named like a vCPU */
	fk_thread(f, 1, 7, "vcpu0");
	fk_stat(f, 1, "systemd", 0x400000, 2, 1);
	const struct discover_proc_config all = { .recheck_passes = 1 };
	assert_int_equal(discover_proc_configure(f->b, &all, NULL), 0);
	pass(f, &st);
	assert_int_equal(st.rechecked, 5);
	assert_int_equal(st.probed, 2);
	assert_string_equal(find_vm(f, 400)->name, "exec-1");
	assert_vcpus(find_vm(f, 400), "0:405");
	/* a process that is not named like a VMM but has vCPU threads is a
	 * VM of the kind of its threads, named after its comm and pid */
	assert_string_equal(find_vm(f, 1)->name, "systemd-1");
	assert_false(find_vm(f, 1)->name_given);
	assert_int_equal(find_vm(f, 1)->kind, VMM_KIND_CLOUD_HV);

	/* kernel threads stay ignored whatever their name */
	assert_null(find_vm(f, 3));
	assert_int_equal(discover_proc_configure(f->b, NULL, NULL), 0); /* defaults */
}

/* A young process is watched until it is old: a fork that exec's its VMM
 * after the first look is found. */
static void test_scan_young(void **state)
{
	struct fake *f = *state;
	long hz = sysconf(_SC_CLK_TCK);
	assert_true(hz > 0);
	fk_uptime(f, "1000.00 1900.00\n");
	/* started 0.5 s ago: a shell between fork and exec */
	fk_process(f, 800, "bash", (unsigned long long)(999.5 * (double)hz), "bash", END);
	/* started 100 s ago */
	fk_process(f, 810, "bash", (unsigned long long)(900 * hz), "bash", END);
	const struct discover_proc_config cfg = { .recheck_passes = 1000000, .young_s = 10 };
	new_backend(f, &cfg);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(f->r.n, 0);
	assert_int_equal(st.task_lists, 1); /* 800 only */
	assert_int_equal(st.ignored, 1);    /* 810 */
	pass(f, &st);
	assert_int_equal(st.watched, 1);
	assert_int_equal(st.stat_reads, 1); /* young: stat every pass */

	/* the exec: same start time, the VMM's comm, its threads */
	fk_process(f, 800, "qemu-system-x86", (unsigned long long)(999.5 * (double)hz),
		   "qemu-system-x86_64|-name|guest=young-1", 801, "CPU 0/KVM", END);
	pass(f, &st);
	assert_vcpus(find_vm(f, 800), "0:801");
	assert_string_equal(find_vm(f, 800)->name, "young-1");
	/* a VM, young or not, has its stat read only when its threads change */
	pass(f, &st);
	assert_int_equal(st.stat_reads, 0);
	assert_int_equal(st.task_lists, 1);

	/* another young shell that does not exec: ignored once it is old */
	fk_process(f, 820, "bash", (unsigned long long)(999 * hz), "bash", END);
	pass(f, &st);
	assert_int_equal(st.ignored, 1);
	fk_uptime(f, "1020.00 1900.00\n");
	pass(f, &st);
	assert_int_equal(st.ignored, 2);
	pass(f, &st);
	assert_int_equal(st.task_lists, 1); /* the VM only */
	assert_int_equal(st.stat_reads, 0);
	assert_non_null(find_vm(f, 800));
}

/* A new thread has its creator's name for a moment: it is read again on
 * the next passes, then believed. */
static void test_scan_unnamed_thread(void **state)
{
	struct fake *f = *state;
	fk_process(f, 900, "qemu-system-x86", 9000, "qemu|-name|guest=late", 901,
		   "qemu-system-x86", 902, "CPU 0/KVM", 903, "qemu-system-x86", END);
	new_backend(f, NULL);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_vcpus(find_vm(f, 900), "0:902");
	assert_int_equal(st.comm_reads, 3);
	fk_thread(f, 900, 901, "CPU 1/KVM");
	pass(f, &st);
	assert_vcpus(find_vm(f, 900), "0:902 1:901");
	assert_int_equal(st.comm_reads, 2); /* 901 and 903 */
	/* 903 keeps its creator's name: read on three passes after the first,
	 * then no more */
	pass(f, &st);
	assert_int_equal(st.comm_reads, 1);
	pass(f, &st);
	assert_int_equal(st.comm_reads, 1);
	pass(f, &st);
	assert_int_equal(st.comm_reads, 0);
	assert_vcpus(find_vm(f, 900), "0:902 1:901");
}

/* Two threads claiming one vCPU, threads of several kinds, odd comms. */
static void test_scan_odd_threads(void **state)
{
	struct fake *f = *state;
	/* QEMU with a duplicated index and a cloud-hypervisor-like thread:
	 * the comm's kind wins, the lower TID keeps the index */
	fk_process(f, 1000, "qemu-system-x86", 100, "qemu|-name|guest=dup", 1005, "CPU 0/KVM",
		   1001, "CPU 0/KVM", 1002, "vcpu0", 1003, "CPU 1/KVM", END);
	/* not named like a VMM: the kind with most vCPU threads */
	fk_process(f, 1100, "my vm (x86)", 100, "myvmm|--api-socket|/x/named.sock", 1101,
		   "CPU 0/KVM", 1102, "vcpu0", 1103, "vcpu1", END);
	/* a tie: the first kind in enum order */
	fk_process(f, 1200, "", 100, NULL, 1201, "fc_vcpu 0", 1202, "vcpu0", END);
	fk_cmdline(f, 1200, "");
	new_backend(f, NULL);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(f->r.n, 3);
	const struct discover_vm *v = find_vm(f, 1000);
	assert_int_equal(v->kind, VMM_KIND_QEMU);
	assert_vcpus(v, "0:1001 1:1003");
	v = find_vm(f, 1100);
	assert_int_equal(v->kind, VMM_KIND_CLOUD_HV);
	assert_vcpus(v, "0:1102 1:1103");
	assert_string_equal(v->name, "named"); /* its --api-socket */
	v = find_vm(f, 1200);
	assert_int_equal(v->kind, VMM_KIND_FIRECRACKER);
	assert_string_equal(v->name, "vm-1200");
	assert_false(v->name_given);
	assert_vcpus(v, "0:1201");

	/* the fallback name is sanitised */
	fk_rm(f, 1100, "cmdline");
	fk_cmdline(f, 1100, "myvmm");
	new_backend(f, NULL);
	pass(f, &st);
	assert_string_equal(find_vm(f, 1100)->name, "my_vm__x86_-1100");
}

/* policy discovery.tenant_from_name: TENANT.REST -> TENANT, for names the
 * VMM was given only. */
static void test_scan_tenant_from_name(void **state)
{
	struct fake *f = *state;
	fk_host(f); /* web-1 (QEMU), fc-1 (Firecracker), acme.ch-1 (cloud-hypervisor) */
	fk_process(f, 600, "qemu-system-x86", 6000, "qemu|-name|guest=acme.web-2,debug-threads=on",
		   601, "CPU 0/KVM", END);
	fk_process(f, 610, "firecracker", 6100, "firecracker|--id|beta.fc-9", 611, "fc_vcpu 0",
		   END);
	/* no name given: the fallback "a.b-620" never maps */
	fk_process(f, 620, "a.b", 6200, "a.b", 621, "CPU 0/KVM", END);
	const struct discover_proc_config cfg = { .tenant_from_name = true };
	new_backend(f, &cfg);
	struct discover_proc_stats st;
	pass(f, &st);
	assert_int_equal(f->r.n, 6);
	assert_string_equal(find_vm(f, 100)->tenant, "");
	assert_string_equal(find_vm(f, 200)->tenant, "");
	assert_string_equal(find_vm(f, 300)->tenant, "acme");
	assert_string_equal(find_vm(f, 600)->tenant, "acme");
	assert_string_equal(find_vm(f, 610)->tenant, "beta");
	assert_string_equal(find_vm(f, 620)->name, "a.b-620");
	assert_string_equal(find_vm(f, 620)->tenant, "");

	/* a policy reload turns it off: the next pass maps nothing, reading
	 * nothing */
	const struct discover_proc_config off = { .tenant_from_name = false };
	assert_int_equal(discover_proc_configure(f->b, &off, NULL), 0);
	pass(f, &st);
	for (size_t i = 0; i < f->r.n; i++)
		assert_string_equal(f->r.vms[i].tenant, "");
	assert_int_equal(st.cmdline_reads, 0);
}

static void test_scan_errors(void **state)
{
	struct fake *f = *state;
	/* no ROOT/proc at all */
	new_backend(f, NULL);
	struct discover_result r = { (struct discover_vm *)0x1, 7 };
	struct error *err = NULL;
	assert_int_equal(discover_scan(f->b, &r, &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_true(str_has_prefix(err->msg, "cannot open "));
	assert_non_null(strstr(err->msg, "/proc: No such file or directory"));
	error_free(&err);
	assert_null(r.vms);
	assert_int_equal(r.n, 0);
	/* ROOT/proc a file */
	_cleanup_free_ char *proc = path_join(f->root, "proc", NULL);
	put_bytes(proc, "x", 1);
	assert_int_equal(discover_scan(f->b, &r, &err), -1);
	assert_int_equal(err->code, ENOTDIR);
	error_free(&err);
	assert_int_equal(remove(proc), 0);
	/* and then there: found */
	fk_host(f);
	assert_int_equal(discover_scan(f->b, &r, &err), 0);
	assert_int_equal(r.n, 3);
	discover_result_clear(&r);

	/* the null backend finds nothing, and is not a /proc backend */
	struct discover_backend *nb = NULL;
	discover_null_new(&nb);
	assert_string_equal(nb->ops->name, "null");
	r.vms = (struct discover_vm *)0x1;
	r.n = 3;
	assert_int_equal(discover_scan(nb, &r, &err), 0);
	assert_null(r.vms);
	assert_int_equal(r.n, 0);
	struct discover_proc_stats st;
	assert_int_equal(discover_proc_stats(nb, &st, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_int_equal(discover_proc_configure(nb, NULL, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	discover_backend_free(nb);
	discover_backend_free(NULL);
	discover_result_clear(NULL);
}

/* --- real fakevm processes on this host ------------------------------------ */

#define MAX_KIDS 8

struct kid {
	pid_t pid;
	int nvcpus;
	pid_t vcpu_tid[16];
};

static pid_t kids[MAX_KIDS];

static void kids_kill(void)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		if (kids[i] <= 0)
			continue;
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
		kids[i] = 0;
	}
}

static void kid_forget(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

static int real_teardown(void **state)
{
	(void)state;
	kids_kill();
	return 0;
}

/* The fakevm fixture: $VCPUD_BUILD/fixtures/fakevm, or next to this test
 * binary's build directory, or build/fixtures/fakevm. */
static char *fakevm_path(void)
{
	const char *b = getenv("VCPUD_BUILD");
	if (b && *b) {
		char *p = xasprintf("%s/fixtures/fakevm", b);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char *p = xasprintf("%s/../fixtures/fakevm", exe);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	const char *src = getenv("VCPUD_SRC");
	char *p = xasprintf("%s%sbuild/fixtures/fakevm", src && *src ? src : "",
			    src && *src ? "/" : "");
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	fail_msg("no fakevm fixture (make build/fixtures/fakevm, or set VCPUD_BUILD)");
	return NULL;
}

/* Start fakevm with `args` ('|'-separated), wait for "fakevm ready" and
 * read its vCPU TIDs. */
static void kid_start(const char *args, struct kid *k)
{
	_cleanup_free_ char *exe = fakevm_path();
	_cleanup_free_ char *buf = xstrdup(args);
	char *argv[32] = { exe };
	int argc = 1;
	char *save = NULL;
	for (char *a = strtok_r(buf, "|", &save); a && argc < 31; a = strtok_r(NULL, "|", &save))
		argv[argc++] = a;
	argv[argc] = NULL;

	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	pid_t pid;
	int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0)
		fail_msg("spawn %s: %s", exe, strerror(rc));
	for (int i = 0; i < MAX_KIDS; i++) {
		if (kids[i] == 0) {
			kids[i] = pid;
			break;
		}
	}
	memset(k, 0, sizeof(*k));
	k->pid = pid;

	char out[4096];
	size_t len = 0;
	int64_t deadline = now_mono_ns() + 10 * 1000000000LL;
	while (!strstr(out, "fakevm ready\n") || len == 0) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		int64_t left = (deadline - now_mono_ns()) / 1000000;
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			fail_msg("fakevm %s: not ready in 10 s", args);
		ssize_t r = read(pfd[0], out + len, sizeof(out) - 1 - len);
		if (r <= 0)
			fail_msg("fakevm %s exited: %.*s", args, (int)len, out);
		len += (size_t)r;
		out[len] = '\0';
	}
	close(pfd[0]);
	int fpid = 0;
	assert_non_null(strstr(out, "fakevm pid="));
	assert_int_equal(sscanf(strstr(out, "fakevm pid="), "fakevm pid=%d", &fpid), 1);
	assert_int_equal(fpid, pid);
	for (char *l = out; (l = strstr(l, "vcpu ")); l++) {
		int idx, tid;
		if (sscanf(l, "vcpu %d tid=%d", &idx, &tid) == 2 && idx >= 0 && idx < 16) {
			k->vcpu_tid[idx] = tid;
			if (idx + 1 > k->nvcpus)
				k->nvcpus = idx + 1;
		}
	}
}

static void assert_kid(const struct discover_vm *v, const struct kid *k, enum vmm_kind kind,
		       const char *name)
{
	if (!v)
		fail_msg("fakevm %d (%s) not found", (int)k->pid, name);
	assert_int_equal(v->kind, kind);
	assert_string_equal(v->name, name);
	assert_true(v->name_given);
	assert_int_equal(v->n_vcpus, k->nvcpus);
	for (int i = 0; i < k->nvcpus; i++) {
		assert_int_equal(v->vcpus[i].index, i);
		assert_int_equal(v->vcpus[i].tid, k->vcpu_tid[i]);
	}
}

static const struct discover_vm *find_in(const struct discover_result *r, pid_t pid)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->vms[i].pid == pid)
			return &r->vms[i];
	return NULL;
}

static void scan_host(struct discover_backend *b, struct discover_result *r)
{
	discover_result_clear(r);
	struct error *err = NULL;
	if (discover_scan(b, r, &err) != 0)
		fail_msg("scan of /: %s", err->msg);
}

static void test_real_fakevms(void **state)
{
	(void)state;
	int me = (int)getpid();
	_cleanup_free_ char *qname = xasprintf("acme.scan-web-%d", me);
	_cleanup_free_ char *fname = xasprintf("scan-fc-%d", me);
	_cleanup_free_ char *cname = xasprintf("scan-ch-%d", me);
	_cleanup_free_ char *qargs = xasprintf("--vcpus|3|--idle|--style|qemu|-name|"
					       "guest=%s,debug-threads=on", qname);
	_cleanup_free_ char *fargs = xasprintf("--vcpus|2|--idle|--style|firecracker|--|--id|%s",
					       fname);
	_cleanup_free_ char *cargs = xasprintf("--vcpus|2|--idle|--style|ch|--|--api-socket|"
					       "path=/tmp/%s.sock", cname);
	struct kid q, fc, ch, look1, look2;
	kid_start(qargs, &q);
	kid_start(fargs, &fc);
	kid_start(cargs, &ch);
	/* look-alikes: a process whose threads merely look like vCPUs */
	kid_start("--vcpus|0|--idle|--comm|CPU 1/KVMx", &look1);
	kid_start("--vcpus|0|--idle|--style|ch|--comm|CPU -1/KVM", &look2);
	assert_int_equal(q.nvcpus, 3);
	assert_int_equal(fc.nvcpus, 2);
	assert_int_equal(ch.nvcpus, 2);

	const struct discover_proc_config cfg = { .tenant_from_name = true };
	struct discover_backend *b = NULL;
	assert_int_equal(discover_proc_new("/", &cfg, &b, NULL), 0);
	struct discover_result r = { 0 };
	scan_host(b, &r);
	assert_kid(find_in(&r, q.pid), &q, VMM_KIND_QEMU, qname);
	assert_string_equal(find_in(&r, q.pid)->tenant, "acme");
	assert_kid(find_in(&r, fc.pid), &fc, VMM_KIND_FIRECRACKER, fname);
	assert_string_equal(find_in(&r, fc.pid)->tenant, "");
	assert_kid(find_in(&r, ch.pid), &ch, VMM_KIND_CLOUD_HV, cname);
	assert_null(find_in(&r, look1.pid));
	assert_null(find_in(&r, look2.pid));
	assert_null(find_in(&r, getpid()));

	/* again: the same, and only PIDs new since are probed (other
	 * processes on this host come and go, so only a bound is checked) */
	struct discover_proc_stats st1, st2;
	assert_int_equal(discover_proc_stats(b, &st1, NULL), 0);
	scan_host(b, &r);
	assert_int_equal(discover_proc_stats(b, &st2, NULL), 0);
	assert_kid(find_in(&r, q.pid), &q, VMM_KIND_QEMU, qname);
	assert_kid(find_in(&r, fc.pid), &fc, VMM_KIND_FIRECRACKER, fname);
	assert_kid(find_in(&r, ch.pid), &ch, VMM_KIND_CLOUD_HV, cname);
	assert_true(st2.probed < st1.probed);
	assert_true(st2.watched >= 3);

	/* QEMU killed: a zombie until reaped (its /proc directory stays, its
	 * threads are gone): dropped at once */
	assert_int_equal(kill(q.pid, SIGKILL), 0);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)q.pid, &si, WEXITED | WNOWAIT), 0);
	scan_host(b, &r);
	assert_null(find_in(&r, q.pid));
	assert_non_null(find_in(&r, fc.pid));
	assert_int_equal(waitpid(q.pid, NULL, 0), q.pid);
	kid_forget(q.pid);
	/* the others killed and reaped: dropped */
	const pid_t rest[] = { fc.pid, ch.pid, look1.pid, look2.pid };
	for (size_t i = 0; i < ARRAY_SIZE(rest); i++) {
		assert_int_equal(kill(rest[i], SIGKILL), 0);
		assert_int_equal(waitpid(rest[i], NULL, 0), rest[i]);
		kid_forget(rest[i]);
	}
	scan_host(b, &r);
	assert_null(find_in(&r, q.pid));
	assert_null(find_in(&r, fc.pid));
	assert_null(find_in(&r, ch.pid));
	discover_result_clear(&r);
	discover_backend_free(b);
}

/* fakevms that start and exit while the host is scanned over and over:
 * no pass fails, and what is found of them is consistent. */
static void test_real_churn(void **state)
{
	(void)state;
	_cleanup_free_ char *exe = fakevm_path();
	struct discover_backend *b = NULL;
	assert_int_equal(discover_proc_new(NULL, NULL, &b, NULL), 0);
	struct discover_result r = { 0 };
	scan_host(b, &r);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(devnull >= 0);
	unsigned seen = 0;
	for (int round = 0; round < 20; round++) {
		char *argv[] = { exe, "--vcpus", "4", "--idle", "--exit", NULL };
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, devnull, 1);
		pid_t pid;
		assert_int_equal(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
		kids[0] = pid;
		for (int i = 0; i < 3; i++) {
			scan_host(b, &r);
			const struct discover_vm *v = find_in(&r, pid);
			if (!v)
				continue;
			seen++;
			assert_int_equal(v->kind, VMM_KIND_QEMU);
			assert_true(v->n_vcpus >= 1 && v->n_vcpus <= 4);
			for (size_t j = 0; j < v->n_vcpus; j++)
				assert_true(v->vcpus[j].index < 4);
		}
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		kids[0] = 0;
		scan_host(b, &r);
		assert_null(find_in(&r, pid));
	}
	close(devnull);
	print_message("churn: a fakevm found in %u of 60 passes while it ran\n", seen);
	discover_result_clear(&r);
	discover_backend_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uptime_parse),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_cmdline_identify),
		cmocka_unit_test(test_tenant_from_name),
		cmocka_unit_test_setup_teardown(test_scan_fake_host, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_nothing_new, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_hotplug, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_vanished, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_pid_reuse, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_recheck, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_young, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_unnamed_thread, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_odd_threads, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_tenant_from_name, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_scan_errors, fake_setup, fake_teardown),
		cmocka_unit_test_teardown(test_real_fakevms, real_teardown),
		cmocka_unit_test_teardown(test_real_churn, real_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
