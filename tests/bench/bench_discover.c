/* bench_discover.c - what one pass of the /proc discovery backend costs.
 *
 * 1. A fake /proc on tmpfs with 1,000 VMs x 8 vCPU threads (each VM also
 *    has a main, an RCU and an I/O thread, as QEMU does) and 300 processes
 *    that are not VMs (200 single-threaded, 80 with 4 threads, 20 kernel
 *    threads): the first pass (a new backend: everything is new), a pass
 *    with nothing new, and, for comparison, the uncached way (every VM's
 *    threads read again with proc_vm_vcpus()), in ns per vCPU thread.
 *    tmpfs files are cheaper to open and read than procfs ones, so these
 *    figures are about the backend's own work and its number of syscalls.
 * 2. The real /proc of this host, alone and with 20 idle fakevm processes
 *    x 8 vCPUs, for the cost of real procfs reads: the difference between
 *    the two, divided by the 160 vCPU threads added.
 *
 * Each figure is the median of several passes of CLOCK_MONOTONIC time; the
 * on-CPU time (CLOCK_THREAD_CPUTIME_ID) is printed too, since a 2-CPU host
 * may preempt a pass. A measurement, not a test: exits 0 unless it cannot
 * set up.
 *
 *   build/bench/bench_discover */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vcpud/discover.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

extern char **environ;

#define N_VMS 1000
#define VCPUS 8
#define EMU_THREADS 3          /* main, call_rcu, IO mon_iothread */
#define N_SINGLE 200
#define N_MULTI 80
#define MULTI_THREADS 4
#define N_KTHREADS 20
#define FIRST_REPS 7
#define STEADY_REPS 31
#define UNCACHED_REPS 5
#define REAL_VMS 20
#define SEC 1000000000LL

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t median(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	return v[n / 2];
}

static int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* --- the fake tree ---------------------------------------------------------- */

static char root[128];

static void die(const char *what)
{
	fprintf(stderr, "bench_discover: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ROOT/proc/PID[/task/TID][/LEAF] into p (tid 0: none, leaf NULL: none). */
static const char *tpath(char *p, size_t size, int pid, int tid, const char *leaf)
{
	int n = snprintf(p, size, "%s/proc/%d", root, pid);
	if (tid)
		n += snprintf(p + n, size - (size_t)n, "/task/%d", tid);
	if (leaf)
		snprintf(p + n, size - (size_t)n, "/%s", leaf);
	return p;
}

static void mkd(int pid, int tid, const char *leaf)
{
	char p[PATH_MAX];
	tpath(p, sizeof(p), pid, tid, leaf);
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		die(p);
}

static void put(const char *data, size_t len, int pid, int tid, const char *leaf)
{
	char p[PATH_MAX];
	tpath(p, sizeof(p), pid, tid, leaf);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		die(p);
}

static void fake_process(int pid, const char *comm, unsigned flags, int nthreads,
			 const char *cmdline, size_t cmdlen)
{
	char buf[512];
	mkd(pid, 0, NULL);
	mkd(pid, 0, "task");
	int n = snprintf(buf, sizeof(buf),
			 "%d (%s) S 1 %d %d 0 -1 %u 0 0 0 0 0 0 0 0 20 0 %d 0 %d 1000 100\n", pid,
			 comm, pid, pid, flags, nthreads, 100 + pid);
	put(buf, (size_t)n, pid, 0, "stat");
	put(cmdline, cmdlen, pid, 0, "cmdline");
}

static void fake_thread(int pid, int tid, const char *comm)
{
	char buf[32];
	mkd(pid, tid, NULL);
	int n = snprintf(buf, sizeof(buf), "%s\n", comm);
	put(buf, (size_t)n, pid, tid, "comm");
}

static int vm_pid(int i)
{
	return 10000 + i * 16;
}

static void build_tree(void)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/proc", root);
	if (mkdir(p, 0755) < 0)
		die(p);
	snprintf(p, sizeof(p), "%s/proc/uptime", root);
	FILE *f = fopen(p, "w");
	if (!f || fputs("100000.00 150000.00\n", f) < 0 || fclose(f) != 0)
		die(p);
	int pid = 2;
	for (int i = 0; i < N_KTHREADS; i++, pid++) {
		fake_process(pid, "kworker/0:1", 0x00208040, 1, "", 0);
		fake_thread(pid, pid, "kworker/0:1");
	}
	for (int i = 0; i < N_SINGLE; i++, pid++) {
		fake_process(pid, "bash", 0x400100, 1, "bash\0", 5);
		fake_thread(pid, pid, "bash");
	}
	for (int i = 0; i < N_MULTI; i++, pid += MULTI_THREADS) {
		fake_process(pid, "containerd", 0x400100, MULTI_THREADS, "containerd\0", 11);
		fake_thread(pid, pid, "containerd");
		for (int t = 1; t < MULTI_THREADS; t++)
			fake_thread(pid, pid + t, "containerd");
	}
	for (int i = 0; i < N_VMS; i++) {
		int v = vm_pid(i);
		char cmd[256];
		int n = snprintf(cmd, sizeof(cmd),
				 "/usr/bin/qemu-system-x86_64%c-name%cguest=vm-%d,debug-threads=on%c"
				 "-smp%c%d%c-m%c1024%c", 0, 0, i, 0, 0, VCPUS, 0, 0, 0);
		fake_process(v, "qemu-system-x86", 0x400100, VCPUS + EMU_THREADS, cmd, (size_t)n);
		fake_thread(v, v, "qemu-system-x86");
		fake_thread(v, v + 1, "call_rcu");
		fake_thread(v, v + 2, "IO mon_iothread");
		for (int c = 0; c < VCPUS; c++) {
			char name[16];
			snprintf(name, sizeof(name), "CPU %d/KVM", c);
			fake_thread(v, v + 3 + c, name);
		}
	}
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* --- passes ----------------------------------------------------------------- */

struct timing {
	int64_t wall, cpu;
};

static struct timing one_pass(struct discover_backend *b, struct discover_result *r)
{
	discover_result_clear(r);
	struct error *err = NULL;
	int64_t w0 = now_mono_ns(), c0 = cpu_ns();
	if (discover_scan(b, r, &err) < 0) {
		fprintf(stderr, "bench_discover: scan: %s\n", err->msg);
		exit(1);
	}
	return (struct timing){ now_mono_ns() - w0, cpu_ns() - c0 };
}

static void print_stats(const char *what, const struct discover_backend *b)
{
	struct discover_proc_stats st;
	discover_proc_stats(b, &st, NULL);
	printf("    %-12s pids %u, probed %u, rechecked %u, watched %u; reads: stat %u, "
	       "task/ %u, comm %u, cmdline %u; VMs %u, vCPUs %u\n", what, st.pids, st.probed,
	       st.rechecked, st.watched, st.stat_reads, st.task_lists, st.comm_reads,
	       st.cmdline_reads, st.vms, st.vcpus);
}

static void report(const char *what, int64_t wall, int64_t cpu, unsigned per, const char *unit)
{
	printf("  %-28s %9.2f ms total   %8.0f ns per %s   (on-CPU %8.0f ns)\n", what,
	       (double)wall / 1e6, (double)wall / per, unit, (double)cpu / per);
}

/* The first pass: a new backend each time. */
static void time_first(const char *host_root, int reps, int64_t *wall, int64_t *cpu,
		       struct discover_backend **keep)
{
	int64_t w[FIRST_REPS], c[FIRST_REPS];
	for (int i = 0; i < reps; i++) {
		struct discover_backend *b = NULL;
		struct discover_result r = { 0 };
		discover_proc_new(host_root, NULL, &b, NULL);
		struct timing t = one_pass(b, &r);
		w[i] = t.wall;
		c[i] = t.cpu;
		discover_result_clear(&r);
		if (i == reps - 1 && keep)
			*keep = b;
		else
			discover_backend_free(b);
	}
	*wall = median(w, (size_t)reps);
	*cpu = median(c, (size_t)reps);
}

static void time_steady(struct discover_backend *b, int reps, int64_t *wall, int64_t *cpu)
{
	int64_t w[STEADY_REPS], c[STEADY_REPS];
	struct discover_result r = { 0 };
	for (int i = 0; i < reps; i++) {
		struct timing t = one_pass(b, &r);
		w[i] = t.wall;
		c[i] = t.cpu;
	}
	discover_result_clear(&r);
	*wall = median(w, (size_t)reps);
	*cpu = median(c, (size_t)reps);
}

/* --- real fakevms ----------------------------------------------------------- */

static char *fakevm_path(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	char *p = xasprintf("%s/../fixtures/fakevm", exe);
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* Start n idle fakevms; their PIDs into pids. -1 when they do not come up. */
static int start_fakevms(const char *exe, int n, pid_t *pids)
{
	for (int i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "guest=bench-%d,debug-threads=on", i);
		char vcpus[8];
		snprintf(vcpus, sizeof(vcpus), "%d", VCPUS);
		char *argv[] = { (char *)exe, "--vcpus", vcpus, "--idle", "-name", name, NULL };
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC) < 0)
			return -1;
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
		int rc = posix_spawn(&pids[i], exe, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[1]);
		if (rc != 0) {
			close(pfd[0]);
			pids[i] = 0;
			return -1;
		}
		char out[4096];
		size_t len = 0;
		out[0] = '\0';
		while (!strstr(out, "fakevm ready\n")) {
			struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
			ssize_t r;
			if (poll(&pf, 1, 10000) <= 0 ||
			    (r = read(pfd[0], out + len, sizeof(out) - 1 - len)) <= 0) {
				close(pfd[0]);
				return -1;
			}
			len += (size_t)r;
			out[len] = '\0';
		}
		close(pfd[0]);
	}
	return 0;
}

static void stop_fakevms(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
}

/* Threads of every process in /proc (outside any timing). */
static unsigned host_threads(void)
{
	unsigned n = 0;
	FILE *f = popen("ls -d /proc/[0-9]*/task/[0-9]* 2>/dev/null | wc -l", "r");
	if (f) {
		if (fscanf(f, "%u", &n) != 1)
			n = 0;
		pclose(f);
	}
	return n;
}

int main(void)
{
	setpriority(PRIO_PROCESS, 0, -20); /* as root; fine if refused */

	/* 1. the fake tree on tmpfs */
	struct statfs sfs;
	const char *base = statfs("/dev/shm", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC ? "/dev/shm"
										       : "/tmp";
	snprintf(root, sizeof(root), "%s/vcpud-bench-discover.XXXXXX", base);
	if (!mkdtemp(root))
		die("mkdtemp");
	int64_t t0 = now_mono_ns();
	build_tree();
	const unsigned vcpu_threads = N_VMS * VCPUS;
	const unsigned vm_threads = N_VMS * (VCPUS + EMU_THREADS);
	const unsigned all_threads = vm_threads + N_KTHREADS + N_SINGLE + N_MULTI * MULTI_THREADS;
	printf("fake /proc on %s: %d VMs x %d vCPU threads (+%d other threads each), %d other "
	       "processes; %u threads in all (built in %.1f s)\n", base, N_VMS, VCPUS,
	       EMU_THREADS, N_KTHREADS + N_SINGLE + N_MULTI, all_threads,
	       (double)(now_mono_ns() - t0) / 1e9);

	int64_t fw, fc, sw, sc;
	struct discover_backend *b = NULL;
	time_first(root, FIRST_REPS, &fw, &fc, &b);
	print_stats("first pass:", b);
	time_steady(b, STEADY_REPS, &sw, &sc);
	print_stats("steady pass:", b);
	discover_backend_free(b);

	/* the uncached way: every VM's threads read on every pass */
	int64_t uw[UNCACHED_REPS], uc[UNCACHED_REPS];
	for (int rep = 0; rep < UNCACHED_REPS; rep++) {
		int64_t w0 = now_mono_ns(), c0 = cpu_ns();
		for (int i = 0; i < N_VMS; i++) {
			struct vm_vcpu *v = NULL;
			size_t n = 0;
			struct error *err = NULL;
			if (proc_vm_vcpus(root, vm_pid(i), &v, &n, &err) < 0 || n != VCPUS) {
				fprintf(stderr, "bench_discover: proc_vm_vcpus: %s\n",
					err ? err->msg : "wrong count");
				return 1;
			}
			free(v);
		}
		uw[rep] = now_mono_ns() - w0;
		uc[rep] = cpu_ns() - c0;
	}
	int64_t umw = median(uw, UNCACHED_REPS), umc = median(uc, UNCACHED_REPS);

	printf("per vCPU thread (%u), median of %d / %d / %d passes:\n", vcpu_threads,
	       FIRST_REPS, STEADY_REPS, UNCACHED_REPS);
	report("first pass (all new)", fw, fc, vcpu_threads, "vCPU thread");
	report("pass with nothing new", sw, sc, vcpu_threads, "vCPU thread");
	report("uncached (proc_vm_vcpus)", umw, umc, vcpu_threads, "vCPU thread");
	printf("  per thread of any kind (%u): first %.0f ns, nothing new %.0f ns; "
	       "first/steady = %.1fx\n", all_threads, (double)fw / all_threads,
	       (double)sw / all_threads, (double)fw / (double)sw);
	nftw(root, rm_entry, 32, FTW_DEPTH | FTW_PHYS);

	/* 2. the real /proc */
	unsigned ht = host_threads();
	int64_t hfw, hfc, hsw, hsc;
	time_first("/", 5, &hfw, &hfc, &b);
	printf("this host's /proc (%u threads):\n", ht);
	print_stats("first pass:", b);
	time_steady(b, 11, &hsw, &hsc);
	print_stats("steady pass:", b);
	discover_backend_free(b);
	report("first pass", hfw, hfc, ht ? ht : 1, "host thread");
	report("pass with nothing new", hsw, hsc, ht ? ht : 1, "host thread");

	char *exe = fakevm_path();
	if (!exe) {
		printf("(no fakevm next to this binary: the real-VM part is skipped)\n");
		return 0;
	}
	pid_t pids[REAL_VMS] = { 0 };
	if (start_fakevms(exe, REAL_VMS, pids) < 0) {
		stop_fakevms(pids, REAL_VMS);
		fprintf(stderr, "bench_discover: cannot start fakevm\n");
		return 1;
	}
	int64_t vfw, vfc, vsw, vsc;
	time_first("/", 5, &vfw, &vfc, &b);
	printf("this host's /proc with %d idle fakevms x %d vCPUs (%d vCPU threads):\n", REAL_VMS,
	       VCPUS, REAL_VMS * VCPUS);
	print_stats("first pass:", b);
	time_steady(b, 11, &vsw, &vsc);
	print_stats("steady pass:", b);
	discover_backend_free(b);
	stop_fakevms(pids, REAL_VMS);
	free(exe);
	const unsigned added = REAL_VMS * VCPUS;
	report("first pass", vfw, vfc, 1, "pass");
	report("pass with nothing new", vsw, vsc, 1, "pass");
	printf("  added by the fakevms, per vCPU thread (their other threads included): first pass %.0f ns (on-CPU %.0f), "
	       "nothing new %.0f ns (on-CPU %.0f)\n", (double)(vfw - hfw) / added,
	       (double)(vfc - hfc) / added, (double)(vsw - hsw) / added,
	       (double)(vsc - hsc) / added);
	return 0;
}
