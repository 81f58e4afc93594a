/* cgroup.h - the cgroup v2 engine: the only part of vcpud that writes to the
 * kernel's cgroup filesystem.
 *
 * `plan` builds a desired tree (struct cgroup_tree); cgroup_tree_reconcile()
 * makes the cgroupfs under the tree's root look like it, writing only the
 * files whose value differs and moving only the threads that are misplaced,
 * and removes the groups vcpud made that are no longer wanted. Files are
 * reached through a vtable (struct cgroup_ops) with a real and a dry-run
 * backend, so tests run the engine on a fake cgroupfs in a temp dir.
 *
 * Layout (DESIGN.md "cgroup v2 layout"):
 *
 *   ROOT/                       subtree_control: +cpu +cpuset +memory
 *     tenant-NAME/              cpu.weight cpu.max memory.max cpuset.cpus/mems
 *                               subtree_control: +cpu +cpuset +memory
 *       vm-NAME/                domain (threaded root): memory.max,
 *                               cpuset.cpus/mems, cpu.weight, cpu.max
 *                               subtree_control: +cpu +cpuset (never +memory)
 *         emulator/ (threaded)  every thread of the VM that is not a vCPU
 *         vcpuN/    (threaded)  cpu.weight cpu.max cpuset.cpus
 *
 * The pure parsers for the files vcpud reads (cpu.max, memory.max,
 * cgroup.controllers, cgroup.procs/threads, /proc/PID/cgroup, cpu.stat,
 * /proc/self/mountinfo) are declared here as well and take buffers. */
#ifndef VCPUD_CGROUP_H
#define VCPUD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/path.h"

/* --- limits the kernel enforces (kernel/sched/core.c, cpu.max) --------- */

#define CGROUP_WEIGHT_MIN 1
#define CGROUP_WEIGHT_MAX 10000
#define CGROUP_PERIOD_MIN_US 1000ULL       /* 1 ms */
#define CGROUP_PERIOD_MAX_US 1000000ULL    /* 1 s */
#define CGROUP_PERIOD_DEFAULT_US 100000ULL /* what a new cgroup reads */
#define CGROUP_QUOTA_MIN_US 1000ULL
#define CGROUP_QUOTA_MAX_US ((1ULL << 44) - 1) /* MAX_BW in microseconds */
#define CGROUP_MEMORY_MAX_BYTES ((uint64_t)1 << 62)
#define CGROUP_VCPU_INDEX_MAX 4095

/* --- controllers -------------------------------------------------------- */

enum cgroup_ctrl {
	CGROUP_CTRL_CPU,
	CGROUP_CTRL_CPUSET,
	CGROUP_CTRL_MEMORY,
	CGROUP_CTRL_IO,
	CGROUP_CTRL_PIDS,
	CGROUP_CTRL_HUGETLB,
	CGROUP_CTRL_RDMA,
	CGROUP_CTRL_MISC,
	CGROUP_CTRL_LAST
};
#define CGROUP_CTRL_BIT(c) (1u << (c))
/* what vcpud needs everywhere above a VM, and inside a VM */
#define CGROUP_CTRLS_DOMAIN \
	(CGROUP_CTRL_BIT(CGROUP_CTRL_CPU) | CGROUP_CTRL_BIT(CGROUP_CTRL_CPUSET) | \
	 CGROUP_CTRL_BIT(CGROUP_CTRL_MEMORY))
#define CGROUP_CTRLS_THREADED \
	(CGROUP_CTRL_BIT(CGROUP_CTRL_CPU) | CGROUP_CTRL_BIT(CGROUP_CTRL_CPUSET))

/* "cpu", "cpuset", ...; NULL for an out-of-range value. */
const char *cgroup_ctrl_name(enum cgroup_ctrl c);

/* --- the desired tree ----------------------------------------------------
 *
 * Every knob has a "leave alone" state, which is what a zero-initialised
 * struct means: the engine neither reads nor writes that file. A knob that
 * vcpud set once is NOT reset when it later becomes "leave alone"; to lift
 * a cap the plan must ask for `max` explicitly (a throttle restore writes
 * cpu.max "max PERIOD"), and to un-pin a cpuset it asks for "" (inherit).
 *
 * Ownership: the tree and everything it points to belong to whoever built
 * it. The engine only reads it during cgroup_tree_reconcile() and keeps no
 * pointer into it afterwards. A tree built entirely on the heap (every
 * string and array malloc'd) can be freed with cgroup_tree_free(). */

/* cpu.max: "QUOTA PERIOD" or "max PERIOD" */
struct cgroup_cpu_max {
	bool set;            /* false: leave cpu.max alone */
	bool unlimited;      /* true: "max PERIOD" (no cap) */
	uint64_t quota_us;   /* CGROUP_QUOTA_MIN_US..CGROUP_QUOTA_MAX_US unless unlimited */
	uint64_t period_us;  /* CGROUP_PERIOD_MIN_US..MAX_US; 0 = 100000 */
};

/* memory.max: bytes or "max". The kernel keeps whole pages, so the engine
 * rounds bytes down to the page size before it writes and compares. */
struct cgroup_mem_max {
	bool set;            /* false: leave memory.max alone */
	bool unlimited;      /* true: "max" */
	uint64_t bytes;      /* <= CGROUP_MEMORY_MAX_BYTES unless unlimited */
};

struct cgroup_vcpu_spec {
	unsigned index;                /* N of vcpuN, <= CGROUP_VCPU_INDEX_MAX, unique per VM */
	pid_t tid;                     /* its thread; 0 = none known yet (group only) */
	uint32_t weight;               /* cpu.weight 1..10000; 0 = leave alone */
	struct cgroup_cpu_max cpu_max; /* per-vCPU cap */
	char *cpus;                    /* cpuset.cpus; NULL = leave alone, "" = inherit */
};

struct cgroup_vm_spec {
	char *name;                    /* name_valid(); directory "vm-NAME" */
	pid_t pid;                     /* the VMM process; 0 = none yet (no moves) */
	uint64_t start_time;           /* its start time (clock ticks after boot), 0 unknown */
	uint32_t weight;               /* VM-level cpu.weight; 0 = leave alone */
	struct cgroup_cpu_max cpu_max; /* VM-level cap (where the throttler caps) */
	bool burst_set;                /* write cpu.max.burst (else leave alone) */
	uint64_t burst_us;             /* at most the quota; written around cpu.max
					* so that the burst never exceeds the quota
					* in force (the kernel refuses that). A
					* kernel without the file: said once */
	struct cgroup_mem_max memory_max;
	char *cpus;                    /* VM domain cpuset.cpus: must span its children's */
	char *mems;                    /* cpuset.mems; NULL = leave alone */
	char *emulator_cpus;           /* emulator/cpuset.cpus; NULL = leave alone */
	struct cgroup_vcpu_spec *vcpus;
	size_t n_vcpus;
};

enum cgroup_idle { CGROUP_IDLE_LEAVE, CGROUP_IDLE_OFF, CGROUP_IDLE_ON };

struct cgroup_tenant_spec {
	char *name;                    /* name_valid(); directory "tenant-NAME" */
	uint32_t weight;               /* cpu.weight; 0 = leave alone (and not
					* written while cpu.idle is 1: the kernel
					* refuses it) */
	enum cgroup_idle cpu_idle;     /* cpu.idle (5.15+): SCHED_IDLE for the group.
					* A kernel without the file: said once */
	struct cgroup_cpu_max cpu_max; /* aggregate cap */
	struct cgroup_mem_max memory_max;
	char *cpus;                    /* pool; NULL = leave alone */
	char *mems;                    /* NULL = leave alone */
	struct cgroup_vm_spec *vms;
	size_t n_vms;
};

struct cgroup_tree {
	char *root;                    /* absolute directory vcpud owns, e.g.
					  /sys/fs/cgroup/vcpud.slice; created if missing */
	struct cgroup_tenant_spec *tenants;
	size_t n_tenants;
	/* 0, or a hash of everything the tree is made of (the planner's,
	 * plan_input_fingerprint()): the engine keeps what it derived from a
	 * tree (its judgement, the VMs' summaries) while the fingerprint of
	 * the trees it is given stays the same */
	uint64_t fingerprint;
};

/* Free a tree whose strings and arrays were all malloc'd, and the tree. */
void cgroup_tree_free(struct cgroup_tree *t);
static inline void cgroup_tree_freep(struct cgroup_tree **t) { if (*t) cgroup_tree_free(*t); }

/* Check a desired tree without any I/O: names (name_valid), duplicates
 * (tenant names, VM names per tenant, vCPU indexes and TIDs per VM, PIDs
 * and TIDs across the tree), ranges, CPU lists, and that a parent's cpuset
 * spans a child's when both are set. 0 or -1 (EINVAL/ERANGE) naming the
 * first offending item ("tenant 'acme': VM 'db-1': ..."). */
int cgroup_tree_validate(const struct cgroup_tree *t, struct error **err);

/* What the engine checks before it touches anything: the root (absolute,
 * no "." or ".." components) and the arrays. A tree failing this is
 * refused whole. */
int cgroup_tree_root_check(const struct cgroup_tree *t, struct error **err);

/* The verdict on each tenant and VM of a tree whose root passed
 * cgroup_tree_root_check(): tenant[i] (NULL: valid) and vm[i][j] (NULL:
 * valid; not looked at when its tenant is invalid). Two VMs claiming one
 * PID/TID are both invalid. Free with cgroup_judgement_free(). */
struct cgroup_judgement {
	size_t n_tenants;
	struct error **tenant;
	struct error ***vm;
	size_t *n_vms;
};
void cgroup_tree_judge(const struct cgroup_tree *t, struct cgroup_judgement *out);
/* The same, trusting VM j of tenant i without checking it again when
 * judged(data, i, j) says it is one judged valid before, unchanged (the
 * checks across VMs, repeated names and PIDs, are still made). */
void cgroup_tree_judge_with(const struct cgroup_tree *t, struct cgroup_judgement *out,
			    bool (*judged)(void *data, size_t tenant, size_t vm), void *data);
void cgroup_judgement_free(struct cgroup_judgement *j);

/* Paths of the groups for one tenant / VM / vCPU under `root` (the tree
 * root), for the sampler's cpu.stat reads. Names are checked with
 * name_valid(); -1 (EINVAL) on a bad one. *out is freed by the caller. */
int cgroup_tenant_dir(const char *root, const char *tenant, char **out, struct error **err);
int cgroup_vm_dir(const char *root, const char *tenant, const char *vm, char **out,
		  struct error **err);
int cgroup_vcpu_dir(const char *root, const char *tenant, const char *vm, unsigned index,
		    char **out, struct error **err);

/* --- backends ------------------------------------------------------------
 *
 * Why vcpud writes cgroupfs files itself instead of going through libcgroup:
 * libcgroup 2.0.2 (Debian 12) never enables controllers in the mount root's
 * subtree_control, so cgroup_create_cgroup() fails on a freshly booted
 * host; cgroup_attach_task_pid(NULL, ...) segfaults; and its errors come
 * back as ECG* codes with the kernel's errno hidden, while the kernel's
 * answer (EBUSY, EOPNOTSUPP, ESRCH, EINVAL) is exactly what an operator
 * needs to see. The writes are simple: one write() of the whole value per
 * file, which is how cgroupfs wants them. libcgroup is used only to find
 * where controllers are mounted (cgroup_discover()).
 *
 * Every function returns 0 or -1 with *err->code = the errno of the failed
 * system call and a message naming the path. `ctx` is the backend's own. */
struct cgroup_ops {
	const char *name;  /* "real", "dry-run", ... */
	/* Read a whole file; *out is NUL-terminated, the caller frees it. */
	int (*read_file)(void *ctx, const char *path, char **out, struct error **err);
	/* Write `value` in one write() call (O_WRONLY, no O_CREAT/O_TRUNC). */
	int (*write_file)(void *ctx, const char *path, const char *value, struct error **err);
	int (*mkdir)(void *ctx, const char *path, struct error **err);
	int (*rmdir)(void *ctx, const char *path, struct error **err);
	/* Names of the subdirectories of `path` (no "." or ".."), sorted.
	 * *names (array and strings) is freed by the caller (cgroup_names_free). */
	int (*list_dir)(void *ctx, const char *path, char ***names, size_t *n,
			struct error **err);
	/* *out = whether `path` exists and is a directory. */
	int (*is_dir)(void *ctx, const char *path, bool *out, struct error **err);
};

void cgroup_names_free(char **names, size_t n);

/* Plain open/read/write/mkdir/rmdir with O_CLOEXEC; ctx is unused (NULL). */
extern const struct cgroup_ops cgroup_ops_real;

/* Dry-run (dryrun.c): change nothing, log and count what would change, and
 * remember it. Reads, list_dir and is_dir go to `inner`; write, mkdir and rmdir
 * change nothing on the host, log one info line ("dry-run: would write 'X'
 * to PATH", "would create", "would remove") and count, and are remembered
 * in a shadow overlay that read_file, is_dir and list_dir consult first. So
 * the engine reads back what it meant to write, and a dry-run tick after the
 * first writes nothing, as a real tick after a real one does: the log of a
 * steady dry-run daemon stays quiet and shows only changes.
 *
 * What the overlay gives back:
 *  - a file written reads back as written, with a newline;
 *    cgroup.subtree_control merges "+a -b" into the enabled set ("a ...");
 *  - a created group is a directory, listed in its parent, empty at first
 *    (its files read ENOENT until written); a removed one is not a
 *    directory and is not listed; rmdir forgets all below the group and is
 *    EBUSY while it has subgroups (threads still in it are not checked:
 *    where the kernel would answer EBUSY, a dry run removes);
 *  - a PID written to cgroup.procs moves each of its threads, a TID written
 *    to cgroup.threads that thread: /proc/PID/cgroup and
 *    /proc/PID/task/TID/cgroup (under `proc`) read "0::GROUP" for them,
 *    GROUP relative to `mount`. Neither set: moves are counted, not kept.
 * The host wins: each entry keeps what the inner backend read when it was
 * made, and is dropped as soon as the inner read differs (someone else
 * wrote the file, made or removed the group, moved the thread, or the
 * thread exited); the host's value is then what reads see. A group removed
 * and made again reads as the host has it.
 * Memory stays bounded by what the engine still looks at: rmdir drops the
 * entries of a group and of the threads in it, and cgroup_dry_run_end_pass()
 * drops entries that no read, write or listing consulted in the last
 * CGROUP_DRY_RUN_IDLE_PASSES passes (a VM no longer in the tree, a knob
 * left alone again; should it come back, its intent is logged again). */
#define CGROUP_DRY_RUN_IDLE_PASSES 3u
struct cgroup_shadow;
struct cgroup_dry_run {
	const struct cgroup_ops *inner;
	void *inner_ctx;
	const char *proc;  /* SYSROOT/proc, not owned; NULL: moves are not kept */
	char *mount;       /* the cgroup2 mount (cgroup_dry_run_set_mount()) */
	unsigned writes, mkdirs, rmdirs;
	struct cgroup_shadow *shadow; /* allocated on first use */
	/* passes an entry may stay idle (0: CGROUP_DRY_RUN_IDLE_PASSES); the
	 * engine raises it past its own verify horizon, since it does not read
	 * again what it trusts */
	unsigned idle_passes;
};
/* Set the mount /proc/PID/cgroup paths are relative to (copied). */
void cgroup_dry_run_set_mount(struct cgroup_dry_run *d, const char *mount);
/* End one pass (a reconcile): drop the entries idle for idle_passes
 * passes (from 8 passes on, looked for every idle_passes / 4 passes: an
 * idle entry goes within 5/4 x idle_passes). */
void cgroup_dry_run_end_pass(struct cgroup_dry_run *d);
/* How many entries the overlay holds (files, groups, threads, lists of
 * created children), for tests and figures. */
size_t cgroup_dry_run_entries(const struct cgroup_dry_run *d);
/* Free the overlay and the mount; counters are kept. */
void cgroup_dry_run_clear(struct cgroup_dry_run *d);
extern const struct cgroup_ops cgroup_ops_dry_run; /* ctx = struct cgroup_dry_run * */

/* --- the engine ---------------------------------------------------------- */

struct cgroup_engine_config {
	/* The cgroup2 mount that holds the tree root (from cgroup_discover()).
	 * The engine enables +cpu +cpuset +memory in the subtree_control of
	 * every directory from here down to the root's parent, and reads
	 * /proc/PID/cgroup paths relative to it. NULL: the highest directory
	 * above the tree root on the same cgroup2 filesystem (statfs), or the
	 * root's parent when that is not cgroup2 (fake trees). vcpud must run
	 * in the initial cgroup namespace for /proc/PID/cgroup paths to be
	 * mount-relative. */
	const char *cgroup_mount;
	/* Root prefix for /proc ("/" or NULL for the host; a temp dir in tests). */
	const char *sysroot;
	/* Backend; NULL = cgroup_ops_real. */
	const struct cgroup_ops *ops;
	void *ops_ctx;
	/* Wrap the backend in the dry-run backend: read everything, change
	 * nothing, log and count what would be written, and read it back
	 * (struct cgroup_dry_run). */
	bool dry_run;
	/* How long a value the engine read or wrote is trusted, in
	 * reconciles: a steady reconcile reads nothing back from the kernel
	 * for it, and each value is read again after verify_ticks/2 ..
	 * 3/2 x verify_ticks reconciles (spread, so the re-reads do not all
	 * fall on one tick). A change made behind vcpud's back (another tool
	 * writing cpu.max, a thread moved out) is put right at that re-read
	 * at the latest. 0 = CGROUP_VERIFY_TICKS_DEFAULT; 1 = read everything
	 * every time. */
	unsigned verify_ticks;
};

#define CGROUP_VERIFY_TICKS_DEFAULT 30

struct cgroup_engine;

/* Copies what it needs from cfg. *out is freed with cgroup_engine_free(). */
int cgroup_engine_new(const struct cgroup_engine_config *cfg, struct cgroup_engine **out,
		      struct error **err);
void cgroup_engine_free(struct cgroup_engine *e);

/* Have cgroup_tree_reconcile() call fn(data) between two VMs whenever
 * every_us have passed since it began or last called it (the daemon
 * answers API reads there, so a long reconcile does not hold them up).
 * fn must not touch the engine. NULL: never. */
void cgroup_engine_set_yield(struct cgroup_engine *e, void (*fn)(void *data), void *data,
			     unsigned every_us);

/* Forget what the engine knows of the kernel: the next reconcile reads
 * every value again (after a restore from backup, or when another tool is
 * known to have changed the tree). */
void cgroup_engine_forget(struct cgroup_engine *e);
/* How many values and checks the engine trusts now (for tests and
 * /metrics). */
size_t cgroup_engine_known(const struct cgroup_engine *e);
static inline void cgroup_engine_freep(struct cgroup_engine **e) { if (*e) cgroup_engine_free(*e); }

/* The VMs the last reconcile planned anew: new or changed specs, and
 * steady ones whose re-read found something to put right (names valid
 * until the next reconcile). Their threads' effective CPUs may have
 * changed. */
const char *const *cgroup_engine_replanned(const struct cgroup_engine *e, size_t *n);

/* How many entries a dry-run engine's overlay holds (0 for a real one):
 * for tests and figures (struct cgroup_dry_run). */
size_t cgroup_engine_overlay_entries(const struct cgroup_engine *e);

/* What one reconcile did. `writes` counts every file write issued (in
 * dry-run: that would have been issued), moves included; `moves` is the
 * part of it that wrote a PID/TID to cgroup.procs/cgroup.threads. */
struct cgroup_reconcile_stats {
	unsigned writes;
	unsigned mkdirs;
	unsigned rmdirs;
	unsigned moves;
	unsigned vanished; /* a PID/TID gone before or while it was moved (not an error) */
	unsigned busy;     /* a stale group still in use (EBUSY), left for the next tick */
	unsigned errors;
	unsigned skipped;  /* invalid tenants and VMs, not reconciled */
	unsigned reads;    /* files read and directories looked up or listed */
};

/* One tenant or VM the reconcile could not (fully) do: skipped (invalid,
 * or its process is not the one registered: nothing of it was touched, its
 * existing groups are kept as they are) or a failed read/write/move (the
 * first one for that VM; the rest of the VM was still done). */
struct cgroup_fault {
	char tenant[NAME_MAX_LEN + 1];
	char vm[NAME_MAX_LEN + 1];
	bool of_tenant;   /* the tenant's own (vm ""); else a VM's, vm "" when
			     its name is not one that can be shown */
	int code;         /* errno */
	char *msg;        /* "tenant 'acme': VM 'db-1': ..." */
	bool skipped;
};
struct cgroup_faults {
	struct cgroup_fault *v;
	size_t n;
};

/* Make the cgroupfs under desired->root match `desired`, in this order:
 *  1. check the root (cgroup_tree_root_check(): a bad root touches
 *     nothing) and judge every tenant and VM (cgroup_tree_judge());
 *  2. enable +cpu +cpuset +memory from the mount down to the root's parent
 *     (only the missing ones), mkdir the root, enable them in the root;
 *  3. per valid tenant: mkdir, cpuset.cpus/mems, cpu.weight, cpu.max,
 *     memory.max, then +cpu +cpuset +memory in its subtree_control;
 *  4. per valid VM: mkdir, its cpuset/memory/cpu knobs, mkdir emulator and
 *     vcpuN, "threaded" into their cgroup.type, +cpu +cpuset in the VM's
 *     subtree_control, the children's knobs; then, when /proc/PID/stat
 *     still shows the start time the spec gives, the PID into the VM's
 *     cgroup.procs unless the process is already in the VM's subtree, and
 *     every misplaced thread into emulator/ or vcpuN/ cgroup.threads.
 *     cpusets are written top-down, so a parent spans a child's CPUs
 *     before the child asks for them;
 *  5. rmdir, leaf first, the tenant-*, vm-*, vcpuN and emulator groups under
 *     the root that are not in the tree. Nothing else is ever removed, and
 *     nothing of an invalid (skipped) tenant or VM.
 * An invalid tenant or VM is skipped (a fault with skipped = true, counted
 * in stats.skipped) and every other one is reconciled: one bad row never
 * stops the host. Every value is read back first and written only when it
 * differs, so a second run, or a fresh engine adopting a tree an earlier
 * run built, writes nothing. A failure is counted, attributed to its VM or
 * tenant (`faults`, may be NULL) and the rest is still reconciled: a group
 * that cannot be created, typed or given its subtree_control is skipped
 * with everything below it; a knob that cannot be written skips only that
 * knob. With `faults` given, failures are logged at debug (the caller
 * reports them, once); without, at error. Returns 0, or -1 with *err = the
 * first fault ("cannot write cpu.max of tenant-acme/vm-7: Invalid
 * argument") when there was any. `out` may be NULL. A vanished PID/TID, a
 * reused PID and a busy stale group are not faults. */
void cgroup_faults_clear(struct cgroup_faults *f);
int cgroup_tree_reconcile(struct cgroup_engine *e, const struct cgroup_tree *desired,
			  struct cgroup_reconcile_stats *out, struct cgroup_faults *faults,
			  struct error **err);

/* Move a released VM's process (all its threads) out of the tree rooted at
 * `root`: back to `origin` (its /proc/PID/cgroup path, mount-relative, at
 * registration) when that cgroup still takes it and is not inside the tree,
 * else to the cgroup2 mount's root cgroup. A process that is gone is not an
 * error. 0, or -1 with the errno of the failed write. */
int cgroup_engine_release_process(struct cgroup_engine *e, const char *root, pid_t pid,
				  const char *origin, struct error **err);

/* --- cpu.stat ------------------------------------------------------------ */

struct cgroup_cpu_stat {
	uint64_t usage_usec;
	uint64_t user_usec;
	uint64_t system_usec;
	uint64_t nr_periods;
	uint64_t nr_throttled;
	uint64_t throttled_usec; /* summed over CPUs; per group, not hierarchical */
};

/* "key value" lines; unknown keys ignored, missing keys 0; a line without a
 * value or a known key with a bad number is EINVAL. *out is written only on
 * success. */
int cgroup_cpu_stat_parse(const char *buf, struct cgroup_cpu_stat *out, struct error **err);


/* --- pure parsers of cgroupfs and procfs files ---------------------------
 * Each takes the file's text (one trailing newline allowed), returns 0 or
 * -1 (EINVAL malformed, ERANGE out of range) with the text in the message,
 * and writes its output only on success. */

/* "max 100000" or "50000 100000": two fields, one space. */
int cgroup_cpu_max_parse(const char *buf, struct cgroup_cpu_max *out, struct error **err);
/* "max" or bytes. */
int cgroup_mem_max_parse(const char *buf, struct cgroup_mem_max *out, struct error **err);
/* cgroup.controllers / cgroup.subtree_control: "cpuset cpu io memory";
 * names the enum does not know are ignored, malformed tokens are EINVAL. */
int cgroup_controllers_parse(const char *buf, unsigned *mask, struct error **err);
/* cgroup.procs / cgroup.threads: one positive number per line. *ids is
 * malloc'd (NULL when n = 0); the caller frees it. */
int cgroup_pids_parse(const char *buf, pid_t **ids, size_t *n, struct error **err);
/* /proc/PID/cgroup: the cgroup v2 line "0::/path" (v1 lines are skipped).
 * ENOENT when there is no v2 line. *path is freed by the caller. */
int cgroup_proc_cgroup_parse(const char *buf, char **path, struct error **err);

/* --- discovery ----------------------------------------------------------- */

/* One cgroup or cgroup2 mount from /proc/self/mountinfo. */
struct cgroup_mount {
	char *mount_point;   /* unescaped ("\040" -> ' ') */
	char *root;          /* root of the mount inside its hierarchy, "/" usually */
	bool v2;             /* cgroup2 */
	unsigned controllers; /* v1: CGROUP_CTRL_BITs named in its super options */
};

/* Parse mountinfo text, keeping only cgroup and cgroup2 mounts (in file
 * order). *mounts is freed with cgroup_mounts_free(). Malformed lines are
 * EINVAL with the line number. */
int cgroup_mountinfo_parse(const char *buf, struct cgroup_mount **mounts, size_t *n,
			   struct error **err);
void cgroup_mounts_free(struct cgroup_mount *mounts, size_t n);

/* Pure check of a mount table: fails (ENOTSUP) when cpu, cpuset or memory
 * is bound to a cgroup v1 hierarchy, naming the controller and where it is
 * mounted and saying the host must boot with the unified hierarchy; ENOENT
 * when there is no cgroup2 mount. Otherwise *mount_point = the cgroup2
 * mount to use (the one at /sys/fs/cgroup if there are several, else the
 * first), caller frees. */
int cgroup_mounts_check(const struct cgroup_mount *mounts, size_t n, char **mount_point,
			struct error **err);

/* Find the cgroup2 mount vcpud will use. Reads SYSROOT/proc/self/mountinfo
 * (cgroup_mounts_check()); on the host itself (sysroot NULL or "/") it also
 * asks libcgroup (cgroup_init(), cgroup_get_controller_begin/next) where cpu,
 * cpuset and memory are mounted and fails if any is on a v1 hierarchy.
 * Finally checks that MOUNT/cgroup.controllers offers cpu, cpuset and
 * memory. *cgroup2_mount (SYSROOT-prefixed) is freed by the caller. On a
 * hybrid or legacy host this fails with ENOTSUP and a message saying to
 * boot with systemd.unified_cgroup_hierarchy=1 or cgroup_no_v1=all. */
int cgroup_discover(const char *sysroot, char **cgroup2_mount, struct error **err);

#endif
