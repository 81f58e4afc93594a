/* registry_test_util.h - what the tests of the VM lifecycle share
 * (test_registry.c, test_api.c, test_control.c): a fake host in a temp
 * directory (a fixture topology as HOST/sys and a fake HOST/proc holding
 * VMM processes with stat, cgroup and "CPU N/KVM" threads), a real SQLite
 * store on the fake clock of store_test_util.h, and a registry over both.
 *
 * Header-only (each test file is its own binary): static inline functions,
 * unused ones costing nothing. Include store_test_util.h first. */
#ifndef VCPUD_TESTS_REGISTRY_TEST_UTIL_H
#define VCPUD_TESTS_REGISTRY_TEST_UTIL_H

#include <unistd.h>

#include "fakeproc_test_util.h"
#include "vcpud/registry.h"
#include "vcpud/topology.h"

struct reg_fx {
	struct tmp_store ts;          /* ts.dir is the fake host root */
	char *proc;                   /* ROOT/proc */
	struct topology *topo;
	struct pools pools;
	struct registry *reg;
};

/* The fixture topology tests/fixtures/topology/NAME/sys. */
static inline char *reg_fx_topology_dir(const char *name)
{
	/* absolute: it becomes the target of a symlink in a temp dir */
	const char *src = getenv("VCPUD_SRC");
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	return path_join(src && *src ? src : cwd ? cwd : ".", "tests/fixtures/topology", name,
			 "sys", NULL);
}

/* A fake host with topology `topo_name` (16 CPUs, 2 nodes for
 * "2n-4c-smt2"), housekeeping CPUs `hk` ("" none), ratio 4, grace
 * `grace_s`. 0, or -1 with the reason on stderr. */
static inline int reg_fx_open(struct reg_fx *f, const char *topo_name, const char *hk,
			      uint32_t grace_s)
{
	memset(f, 0, sizeof(*f));
	if (tmp_store_open(&f->ts, "/tmp/vcpud-test-reg-XXXXXX") < 0)
		return -1;
	store_set_clock(f->ts.st, fake_clock);
	_cleanup_free_ char *sys = reg_fx_topology_dir(topo_name);
	_cleanup_free_ char *link = path_join(f->ts.dir, "sys", NULL);
	f->proc = path_join(f->ts.dir, "proc", NULL);
	if (symlink(sys, link) < 0 || mkdir(f->proc, 0755) < 0) {
		fprintf(stderr, "fake host %s: %s\n", f->ts.dir, strerror(errno));
		return -1;
	}
	struct error *err = NULL;
	struct cpuset hks, ded;
	cpuset_zero(&ded);
	if (cpulist_parse(hk, &hks, &err) < 0 || topology_load(f->ts.dir, &f->topo, &err) < 0 ||
	    topology_pools(f->topo, &hks, &ded, &f->pools, &err) < 0) {
		fprintf(stderr, "fake host: %s\n", err->msg);
		error_free(&err);
		return -1;
	}
	struct registry_config cfg = { .store = f->ts.st, .host_root = f->ts.dir,
				       .topo = f->topo, .pools = &f->pools, .cpu_ratio = 4.0,
				       .gone_grace_s = grace_s };
	if (registry_new(&cfg, &f->reg, &err) < 0) {
		fprintf(stderr, "registry: %s\n", err->msg);
		error_free(&err);
		return -1;
	}
	registry_set_clock(f->reg, fake_clock);
	return 0;
}

static inline void reg_fx_close(struct reg_fx *f)
{
	registry_free(f->reg);
	if (f->topo)
		topology_free(f->topo);
	free(f->proc);
	tmp_store_close(&f->ts);
}

/* HOST/proc/PID: a VMM started at `start` (clock ticks) with vCPU threads
 * "CPU i/KVM" of TIDs tid0 + 1 + i (i < nvcpus) besides its main thread,
 * living in cgroup /user.slice. Writing it again replaces it (a new
 * process behind the same PID: PID reuse). */
static inline void fake_vmm(struct reg_fx *f, pid_t pid, uint64_t start, unsigned nvcpus,
			    pid_t tid0)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	_cleanup_free_ char *dir = path_join(f->proc, spid, NULL);
	fake_tree_remove(dir);
	_cleanup_free_ char *task = path_join(dir, "task", spid, NULL);
	mkdir_p(task);
	_cleanup_free_ char *stat = path_join(dir, "stat", NULL);
	_cleanup_free_ char *line = xasprintf(
		"%d (qemu-system-x86) S 1 %d %d 0 -1 4194560 100 0 0 0 10 20 0 0 20 0 %u 0 %llu "
		"123456789 1000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 "
		"0 0 0 0 0 0 0 0\n", (int)pid, (int)pid, (int)pid, nvcpus + 1,
		(unsigned long long)start);
	put_file(stat, line);
	_cleanup_free_ char *cg = path_join(dir, "cgroup", NULL);
	put_file(cg, "0::/user.slice\n");
	_cleanup_free_ char *mc = path_join(task, "comm", NULL);
	put_file(mc, "qemu-system-x86\n");
	for (unsigned i = 0; i < nvcpus; i++) {
		char stid[16];
		snprintf(stid, sizeof(stid), "%d", (int)(tid0 + 1 + (pid_t)i));
		_cleanup_free_ char *t = path_join(dir, "task", stid, NULL);
		mkdir_p(t);
		_cleanup_free_ char *c = path_join(t, "comm", NULL);
		_cleanup_free_ char *name = xasprintf("CPU %u/KVM\n", i);
		put_file(c, name);
	}
}

/* The process exits. */
static inline void fake_exit(struct reg_fx *f, pid_t pid)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	_cleanup_free_ char *dir = path_join(f->proc, spid, NULL);
	fake_tree_remove(dir);
}

#endif
