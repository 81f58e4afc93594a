/* sample.h - steal time seen from the host: per vCPU thread, the cpu time
 * and run_delay counters of /proc/<pid>/task/<tid>/schedstat, turned into
 * usage_pct = Δcpu/Δwall and steal_pct = Δrun_delay/Δwall per tick, and
 * aggregated per VM and per tenant (DESIGN.md "Steal time, seen from the
 * host"). run_delay is what KVM feeds the guest's steal-time MSR from.
 *
 * Three layers:
 *  - pure: schedstat_parse() (the file's text), sample_derive() (two
 *    readings and a window -> figures, with every clamp), the aggregates and
 *    sample_throttled_frac() (two cpu.stat readings);
 *  - stateful: struct sampler keeps one open fd per thread and preads it
 *    every tick (one syscall per thread, nothing allocated in the steady
 *    state), remembers each thread's baseline, opens fds for new targets and
 *    closes those of threads no longer listed or gone;
 *  - the daemon calls sampler_tick() once per control-loop tick with every
 *    vCPU of every VM and aggregates the result.
 *
 * Windows and clamps (all in sample_derive()):
 *  - a window shorter than SAMPLE_MIN_WINDOW_NS (one default cpu.max period,
 *    less tick jitter) is not reported and the old baseline is kept, so the
 *    next tick reports the longer window; a window shorter than
 *    SAMPLE_STEADY_WINDOW_NS (ten default periods) is reported but flagged
 *    SAMPLE_FLAG_SHORT_WINDOW: a capped thread's figures then depend on where
 *    the window falls in the period (up to one period's quota of error);
 *  - CLOCK_MONOTONIC going backwards, or a window longer than
 *    SAMPLE_JUMP_FACTOR ticks (the daemon was stopped, the host suspended),
 *    resets the baseline and reports nothing;
 *  - a counter going backwards (a different thread behind the same
 *    numbers) resets the baseline and reports nothing;
 *  - steal above 100% (run_delay is added only when the task next runs, so
 *    a long wait lands in one window) and usage above 100% (cpu time lags by
 *    up to a scheduler tick) are clamped to 100 and flagged.
 * The schedstat counters run on the scheduler clock, not CLOCK_MONOTONIC;
 * both are nanoseconds of the same time base and drift apart by far less
 * than the clamps absorb. */
#ifndef VCPUD_SAMPLE_H
#define VCPUD_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/cgroup.h"
#include "vcpud/error.h"

/* Windows (see above). The policy's shortest interval is 100 ms, so ticks
 * that arrive on time are never dropped by the minimum. */
#define SAMPLE_MIN_WINDOW_NS (90LL * 1000 * 1000)     /* 100 ms period - 10% */
#define SAMPLE_STEADY_WINDOW_NS (900LL * 1000 * 1000) /* 10 x 100 ms - 10% */
#define SAMPLE_JUMP_FACTOR 10                         /* x the tick interval */

/* /proc/<pid>/task/<tid>/schedstat is "%llu %llu %lu\n" (at most 63 bytes). */
#define SCHEDSTAT_MAX_LEN 64

/* --- parsing ------------------------------------------------------------- */

/* Parse schedstat text: two or more unsigned decimal fields separated by
 * single spaces and ended by one newline (the kernel always writes it, so a
 * missing newline means a truncated read); nothing may follow the newline.
 * Only the first two fields are used: cpu time and run_delay, ns. Three
 * fields on current kernels; the count of timeslices is ignored. Empty,
 * one field, a sign, any other character or a missing newline is EINVAL, a
 * value above UINT64_MAX (or longer than 20 digits) ERANGE, with the text
 * in the message. `buf` need not be NUL-terminated. Outputs are written
 * only on success. */
int schedstat_parse(const char *buf, size_t len, uint64_t *cpu_ns, uint64_t *run_delay_ns,
		    struct error **err);

/* --- one thread's figures over one window -------------------------------- */

/* Why a reading gave figures or not. */
enum sample_state {
	SAMPLE_VALID,         /* usage_pct and steal_pct cover the window */
	SAMPLE_NO_BASELINE,   /* first reading of this thread: baseline taken */
	SAMPLE_SHORT_WINDOW,  /* window < SAMPLE_MIN_WINDOW_NS: old baseline kept */
	SAMPLE_CLOCK_JUMP,    /* clock backwards or window > JUMP_FACTOR ticks: reset */
	SAMPLE_COUNTER_RESET, /* a counter went backwards: reset */
	SAMPLE_GONE,          /* the thread has exited; its fd is closed */
	SAMPLE_ERROR,         /* could not open, read or parse: see sampler_tick() */
	SAMPLE_STATE_LAST
};

/* "valid", "no-baseline", "short-window", "clock-jump", "counter-reset",
 * "gone", "error"; NULL out of range. */
const char *sample_state_name(enum sample_state s);

/* Whether a reading in state `s` becomes the thread's new baseline: every
 * state but SAMPLE_SHORT_WINDOW (which keeps the older one, so the window
 * grows until it is long enough). */
static inline bool sample_state_rebases(enum sample_state s) { return s != SAMPLE_SHORT_WINDOW; }

/* Flags on a SAMPLE_VALID figure. */
#define SAMPLE_FLAG_STEAL_CLAMPED 0x1u /* Δrun_delay > Δwall: steal read 100 */
#define SAMPLE_FLAG_USAGE_CLAMPED 0x2u /* Δcpu > Δwall: usage read 100 */
#define SAMPLE_FLAG_SHORT_WINDOW 0x4u  /* window < SAMPLE_STEADY_WINDOW_NS */

struct sample_counters {
	uint64_t cpu_ns;        /* schedstat field 1: time on a CPU */
	uint64_t run_delay_ns;  /* schedstat field 2: time runnable, waiting */
};

struct sample_delta {
	enum sample_state state;
	unsigned flags;         /* SAMPLE_FLAG_*, only with SAMPLE_VALID */
	double usage_pct;       /* 0..100; 0 unless SAMPLE_VALID */
	double steal_pct;       /* 0..100; 0 unless SAMPLE_VALID */
	int64_t window_ns;      /* dt_ns when SAMPLE_VALID, else 0 */
};

/* Figures of one thread between a baseline `prev` (NULL: none yet) and a
 * reading `cur` taken dt_ns later (CLOCK_MONOTONIC). interval_ns is the
 * tick interval; a window above SAMPLE_JUMP_FACTOR x interval_ns is a clock
 * jump (interval_ns <= 0 disables that check). Checks, in order: no
 * baseline; dt_ns < 0 (clock jump); dt_ns < SAMPLE_MIN_WINDOW_NS (short,
 * dt_ns = 0 included); dt_ns too long (clock jump); a counter backwards
 * (counter reset); then the clamps. Returns out->state. */
enum sample_state sample_derive(const struct sample_counters *prev,
				const struct sample_counters *cur, int64_t dt_ns,
				int64_t interval_ns, struct sample_delta *out);

/* --- aggregates (pure) ----------------------------------------------------- */

/* One vCPU's result of a tick (see sampler_tick()). */
struct sample_vcpu {
	bool valid;             /* state == SAMPLE_VALID */
	bool gone;              /* state == SAMPLE_GONE */
	enum sample_state state;
	unsigned flags;         /* SAMPLE_FLAG_* */
	double usage_pct;       /* 0..100 of one CPU; 0 unless valid */
	double steal_pct;       /* 0..100; 0 unless valid */
	int64_t window_ns;      /* the window the figures cover; 0 unless valid */
	uint64_t cpu_ns;        /* this tick's raw counters; 0 when unread */
	uint64_t run_delay_ns;
};

/* Sums over a set of vCPUs (a VM's, or a tenant's by merging its VMs').
 * Only valid samples count in the figures. Zero-initialise, then add. */
struct sample_agg {
	unsigned n_vcpus;       /* every vCPU added */
	unsigned n_valid;       /* those with figures */
	unsigned n_gone;
	double usage_sum_pct;   /* % of one CPU: a 2-vCPU VM flat out is 200 */
	double steal_sum_pct;   /* for the mean */
	double steal_max_pct;
	unsigned flags;         /* OR of the valid samples' flags */
	int64_t window_ns;      /* the longest window of the valid samples (a
				 * short tick's baseline is kept, so the next
				 * window spans both) */
};

void sample_agg_add(struct sample_agg *a, const struct sample_vcpu *v);
/* Add n consecutive vCPUs (one VM's slice of sampler_tick()'s output). */
void sample_agg_add_all(struct sample_agg *a, const struct sample_vcpu *v, size_t n);
/* Fold b into a (tenant = merge of its VMs): sums add, max of maxes. */
void sample_agg_merge(struct sample_agg *a, const struct sample_agg *b);
/* Mean steal over the valid vCPUs; 0 when there is none (check n_valid). */
double sample_agg_steal_mean_pct(const struct sample_agg *a);

/* Share of a window that a group was held back by cpu.max, from two
 * readings of its cpu.stat dt_ns apart: Δthrottled_usec / (Δwall x n_cpus),
 * clamped to [0, 1]. throttled_usec is summed over the CPUs the group was
 * throttled on, so n_cpus = the CPUs its threads can be throttled on at
 * once: min(its vCPUs, the CPUs of its cpuset). The counters are per group,
 * not hierarchical: a VM under a capped tenant shows the throttling only in
 * the tenant's cpu.stat, so the caller computes both and takes the larger.
 * Returns false (and *frac = 0) when no figure can be given: no n_cpus, a
 * window below SAMPLE_MIN_WINDOW_NS, or throttled_usec backwards (the
 * group was recreated). */
bool sample_throttled_frac(const struct cgroup_cpu_stat *prev, const struct cgroup_cpu_stat *cur,
			   int64_t dt_ns, unsigned n_cpus, double *frac);

/* --- the sampler --------------------------------------------------------- */

/* A vCPU thread to sample. vm and vcpu only name it in messages. */
struct sample_target {
	const char *vm;         /* VM name (may be NULL) */
	unsigned vcpu;          /* vCPU index */
	pid_t pid;              /* the VMM process */
	pid_t tid;              /* the vCPU thread */
};

struct sampler;

/* fds left for the rest of the daemon (database, sockets, cgroup files)
 * when sampler_tick() checks a target count against RLIMIT_NOFILE. */
#define SAMPLER_FD_RESERVE 64

/* A sampler reading HOST_ROOT/proc ("/" or NULL for the host; a temp dir
 * in tests), for ticks interval_ns apart (> 0; see SAMPLE_JUMP_FACTOR).
 *
 * It keeps one fd per sampled thread, each ≈ 5.4 KB of kernel slab (10,000
 * vCPUs ≈ 54 MB), because a pread on a kept fd costs a fifth of an
 * open+read+close; a kept fd is also bound to its thread, so a recycled
 * tid can never be mistaken for the old thread (the old fd reads ESRCH).
 * To make room for that many fds it raises this process's RLIMIT_NOFILE
 * soft limit to the hard limit, once, here (a failure to raise is not an
 * error: sampler_tick() says so when the limit bites). The daemon polls
 * with poll() and libmicrohttpd with epoll, so fds above FD_SETSIZE are
 * fine. EINVAL for a bad interval. *out is freed with sampler_free(). */
int sampler_new(const char *host_root, int64_t interval_ns, struct sampler **out,
		struct error **err);
/* Close every fd and free. NULL is a no-op. */
void sampler_free(struct sampler *s);
static inline void sampler_freep(struct sampler **s) { if (*s) sampler_free(*s); }

/* A new tick interval (policy reload). EINVAL unless > 0. */
int sampler_set_interval(struct sampler *s, int64_t interval_ns, struct error **err);

/* Sample every target: out[i] is targets[i]'s result (out has n entries).
 * mono_ns is CLOCK_MONOTONIC now (now_mono_ns(); tests pass their own).
 * A target seen for the first time gets an fd (O_RDONLY|O_CLOEXEC) and
 * SAMPLE_NO_BASELINE; a thread whose fd reads ESRCH or nothing, or whose
 * file is missing, is SAMPLE_GONE and its fd is closed (it is reopened
 * while it stays listed, in case the tid comes back); the fds of threads
 * not in `targets` are closed (before new ones are opened). A target listed
 * twice gets the first one's result. A tick allocates nothing unless the
 * set of targets grows.
 *
 * Returns 0 when every target was read (or found gone). Returns -1 when
 * n + SAMPLER_FD_RESERVE exceeds RLIMIT_NOFILE (EMFILE "cannot sample N
 * threads: open file limit M ...", nothing done, out untouched), when n or
 * a pointer is invalid (EINVAL, nothing done), or when some
 * targets could not be opened, read or parsed: then out[] is still filled,
 * those targets are SAMPLE_ERROR, and *err is the first failure (EMFILE
 * with the same message when the limit bit mid-tick). */
int sampler_tick(struct sampler *s, const struct sample_target *targets, size_t n,
		 int64_t mono_ns, struct sample_vcpu *out, struct error **err);

/* Call fn(data) within a tick's reads once every_us has passed since the
 * tick began or the last call (so that a daemon answers its API during a
 * long tick); the readings after it are stamped that much later than
 * mono_ns. fn must not touch the sampler. NULL: never. */
void sampler_set_yield(struct sampler *s, void (*fn)(void *data), void *data, unsigned every_us);

/* Read through BPF from now on (sampler_bpf.h): one task iterator walk a
 * tick over the host's tasks, filtered to the VM processes read, no fd
 * kept per thread (a thread is told from one that reused its tid by its
 * start time). Only for the host's own /proc (HOST_ROOT
 * "/", or one whose proc is this kernel's). 0; -1 and *err (ENOTSUP, with
 * why: not built with BPF, not permitted, no BTF, a kernel older than
 * 6.1, a fake proc) with the sampler left on schedstat files. Its fds are
 * closed at the next tick. */
int sampler_use_bpf(struct sampler *s, struct error **err);

/* With BPF: what the last tick read of process `pid` (its thread count,
 * and a sum of a hash of each thread id: another set of threads, another
 * sum). 0; -1 when it did not read it (or reads schedstat files). */
int sampler_process_threads(const struct sampler *s, pid_t pid, size_t *n, uint64_t *tid_sum);

/* "bpf" or "pread": how the sampler reads. */
const char *sampler_backend(const struct sampler *s);

/* The number of threads the sampler holds state for, and of open fds
 * (BPF: the processes watched, in the iterator's map or, past 65,536, with
 * a link each). */
size_t sampler_size(const struct sampler *s);
size_t sampler_open_fds(const struct sampler *s);

/* The fd the sampler keeps for (pid, tid), or -1. For benchmarks and tests
 * (a bare pread loop over the same fds); the caller must not close it. */
int sampler_fd(const struct sampler *s, pid_t pid, pid_t tid);

#endif
