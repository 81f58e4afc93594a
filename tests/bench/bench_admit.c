/* bench_admit.c - admission throughput against the number of VMs already
 * registered: does a dry-run admit (quota and capacity decided, nothing
 * stored) cost the same with 0 and with 1,000 VMs on the host?
 *
 * The registry and the store as the daemon uses them (no HTTP): a temp
 * SQLite file, the fixture topology tests/fixtures/topology/64c-nosmt as
 * the host's sysfs, a fake /proc holding one VMM per registered VM (its
 * stat: registration reads the start time), ratio 16 (room for 1,024
 * 1-vCPU VMs). The admits go to the same tenant as the registered VMs, the
 * worst case for anything that sums a tenant's use. Each figure is the
 * best of 5 runs of 2,000 dry-run admits; registration is timed too.
 *
 *   build/bench/bench_admit [N_VMS]     (default 1000) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/registry.h"
#include "vcpud/store.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

#define ADMITS 2000
#define RUNS 5

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, struct error *e)
{
	fprintf(stderr, "bench_admit: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(1);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die(path, NULL);
}

/* HOST/proc/PID/stat of a VMM started at `start` (what registration reads). */
static void fake_vmm(const char *root, pid_t pid, uint64_t start)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	_cleanup_free_ char *dir = path_join(root, "proc", spid, NULL);
	if (mkdir(dir, 0755) < 0)
		die(dir, NULL);
	_cleanup_free_ char *stat = path_join(dir, "stat", NULL);
	_cleanup_free_ char *line = xasprintf(
		"%d (qemu-system-x86) S 1 %d %d 0 -1 4194560 100 0 0 0 10 20 0 0 20 0 2 0 %llu "
		"123456789 1000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 "
		"0 0 0 0 0 0 0 0\n", (int)pid, (int)pid, (int)pid, (unsigned long long)start);
	put(stat, line);
	_cleanup_free_ char *cg = path_join(dir, "cgroup", NULL);
	put(cg, "0::/user.slice\n");
}

/* Dry-run admits per second: the best of RUNS runs of ADMITS. */
static double admit_rate(struct registry *reg)
{
	double best = 0;
	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s();
		for (int i = 0; i < ADMITS; i++) {
			char name[32];
			snprintf(name, sizeof(name), "new-%d", i);
			struct admit_request req = { .vm = name, .tenant = "bench", .vcpus = 1,
						     .cpu_policy = ADMIT_CPU_SHARED,
						     .thread_policy = ADMIT_THREAD_PREFER };
			struct admit_placement pl;
			struct error *e = NULL;
			if (registry_admit(reg, &req, true, "bench", &pl, &e) < 0)
				die("dry-run admit", e);
		}
		double rate = ADMITS / (now_s() - t0);
		if (rate > best)
			best = rate;
	}
	return best;
}

int main(int argc, char **argv)
{
	int n_vms = argc > 1 ? atoi(argv[1]) : 1000;
	if (n_vms < 0 || n_vms > 1024) {
		fprintf(stderr, "usage: bench_admit [N_VMS <= 1024]\n");
		return 2;
	}
	log_set_level(LOG_LVL_ERROR);
	char tmpl[] = "/tmp/vcpud-bench-admit-XXXXXX";
	const char *root = mkdtemp(tmpl);
	if (!root)
		die("mkdtemp", NULL);
	const char *src = getenv("VCPUD_SRC");
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	_cleanup_free_ char *sys = path_join(src && *src ? src : cwd, "tests/fixtures/topology",
					     "64c-nosmt", "sys", NULL);
	_cleanup_free_ char *link = path_join(root, "sys", NULL);
	_cleanup_free_ char *proc = path_join(root, "proc", NULL);
	_cleanup_free_ char *db = path_join(root, "vcpud.db", NULL);
	if (symlink(sys, link) < 0 || mkdir(proc, 0755) < 0)
		die(root, NULL);

	struct error *e = NULL;
	struct store *st = NULL;
	struct topology *topo = NULL;
	struct pools pools;
	struct cpuset none;
	cpuset_zero(&none);
	if (store_open(db, &st, &e) < 0)
		die("store", e);
	if (topology_load(root, &topo, &e) < 0 || topology_pools(topo, &none, &none, &pools, &e) < 0)
		die("topology (run from the source tree or set VCPUD_SRC)", e);
	struct registry_config cfg = { .store = st, .host_root = root, .topo = topo,
				       .pools = &pools, .cpu_ratio = 16.0, .gone_grace_s = 60 };
	struct registry *reg = NULL;
	if (registry_new(&cfg, &reg, &e) < 0)
		die("registry", e);
	struct tenant t = { .vcpus = 65536, .weight = 100 };
	strcpy(t.name, "bench");
	if (store_tenant_create(st, &t, "bench", &e) < 0)
		die("tenant", e);

	double empty = admit_rate(reg);

	double t0 = now_s();
	for (int i = 0; i < n_vms; i++) {
		pid_t pid = 100000 + i;
		fake_vmm(root, pid, 1000 + (uint64_t)i);
		struct vm v = { .pid = pid, .vcpus = 1, .state = VM_STATE_RUNNING,
				.source = VM_SOURCE_REGISTERED };
		snprintf(v.name, sizeof(v.name), "vm-%d", i);
		strcpy(v.tenant, "bench");
		if (registry_register(reg, &v, "bench", &e) < 0)
			die("register", e);
	}
	double reg_rate = n_vms ? n_vms / (now_s() - t0) : 0;

	double full = admit_rate(reg);

	printf("dry-run admits, 1 vCPU shared, one client, best of %d x %d:\n", RUNS, ADMITS);
	printf("  0 VMs registered:    %8.0f admits/s\n", empty);
	printf("  %d VMs registered: %8.0f admits/s\n", n_vms, full);
	printf("  ratio (%d / 0):     %8.2f\n", n_vms, full / empty);
	printf("registration of %d VMs: %.0f registrations/s (mean, 0 to %d VMs)\n", n_vms,
	       reg_rate, n_vms);
	printf("SQL statements run: %llu\n", (unsigned long long)store_statements(st));

	registry_free(reg);
	store_close(st);
	topology_free(topo);
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_admit: cannot remove %s\n", root);
	return 0;
}
