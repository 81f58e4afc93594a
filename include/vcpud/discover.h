/* discover.h - finding VMs and their vCPU threads.
 *
 * A hypervisor names its vCPU threads: QEMU "CPU <n>/KVM" (or "CPU <n>/TCG"
 * without KVM), Firecracker "fc_vcpu <n>", cloud-hypervisor "vcpu<n>". The
 * parser is pure and strict ("CPU 1/KVMx", "CPU -1/KVM", "CPU 01/KVM" are
 * not vCPUs); the scanner reads /proc/<pid>/task/<tid>/comm through a root
 * prefix so tests can point it at a fake tree.
 *
 * Discovery backends (struct discover_ops) find every VM on the host once
 * per tick: the /proc backend (src/discover/scan.c) by vCPU thread names,
 * keeping a per-PID cache so that a pass with nothing new reads no comm,
 * stat or cmdline file; a null backend finds nothing. */
#ifndef VCPUD_DISCOVER_H
#define VCPUD_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/vm.h"

enum vcpu_style {
	VCPU_STYLE_NONE,         /* not a vCPU thread */
	VCPU_STYLE_QEMU_KVM,     /* "CPU <n>/KVM" */
	VCPU_STYLE_QEMU_TCG,     /* "CPU <n>/TCG" */
	VCPU_STYLE_FIRECRACKER,  /* "fc_vcpu <n>" */
	VCPU_STYLE_CLOUD_HV,     /* "vcpu<n>" */
	VCPU_STYLE_LAST
};

/* Classify a thread name (the content of comm, one trailing newline
 * allowed). Returns the style and *index for a vCPU thread, VCPU_STYLE_NONE
 * otherwise. Indexes are decimal without sign or leading zeros, < 4096. */
enum vcpu_style vcpu_thread_name_parse(const char *comm, unsigned *index);

struct proc_thread {
	pid_t tid;
	enum vcpu_style style;   /* VCPU_STYLE_NONE for other threads */
	unsigned index;          /* when a vCPU */
};

/* All threads of process `pid` under `host_root` ("/" for the host), sorted
 * by tid. ESRCH "process 1234 does not exist" when the process is gone; a
 * thread that exits during the scan is skipped. *out is freed by the caller. */
int proc_threads_scan(const char *host_root, pid_t pid, struct proc_thread **out, size_t *n,
		      struct error **err);

/* Whether `host_root`/proc is this system's procfs (its "self" is the
 * caller), where PIDs are real and a pidfd watches the right process; a
 * fake tree (tests) is not. */
bool procfs_is_real(const char *host_root);

/* The vCPU threads of `pid` as (index, tid) sorted by index. Two threads
 * claiming the same index is EINVAL; no vCPU threads is ENOENT ("process
 * 1234 (qemu) has no vCPU threads named 'CPU <n>/KVM', 'fc_vcpu <n>' or
 * 'vcpu<n>'"). *out (struct vm_vcpu) is freed by the caller. */
struct vm_vcpu;
int proc_vm_vcpus(const char *host_root, pid_t pid, struct vm_vcpu **out, size_t *n,
		  struct error **err);

/* --- discovery backends ---------------------------------------------------- */

/* The hypervisor of a found VM. */
enum vmm_kind {
	VMM_KIND_UNKNOWN,
	VMM_KIND_QEMU,           /* "CPU <n>/KVM" or "CPU <n>/TCG" */
	VMM_KIND_FIRECRACKER,    /* "fc_vcpu <n>" */
	VMM_KIND_CLOUD_HV,       /* "vcpu<n>" */
	VMM_KIND_LAST
};

/* "unknown", "qemu", "firecracker", "cloud-hypervisor"; NULL out of range. */
const char *vmm_kind_name(enum vmm_kind k);

/* The kind whose vCPU threads are named in `style`; UNKNOWN for NONE. */
enum vmm_kind vmm_kind_of_style(enum vcpu_style style);

/* The kind of a process by its main comm (15 chars at most, one trailing
 * newline allowed): "qemu-system-*", "qemu-kvm", "qemu", "kvm" -> QEMU,
 * "firecracker" -> FIRECRACKER, "cloud-hyperviso[r]" -> CLOUD_HV; UNKNOWN
 * for anything else. */
enum vmm_kind vmm_kind_of_comm(const char *comm);

/* One VM found by a backend. */
struct discover_vm {
	pid_t pid;                     /* the VMM process */
	uint64_t start_time;           /* its start, clock ticks after boot
					* (/proc/PID/stat field 22): (pid,
					* start_time) names one process even
					* when the PID is reused */
	enum vmm_kind kind;
	/* From the VMM's command line: QEMU "-name guest=NAME,..." or "-name
	 * NAME", Firecracker "--id NAME", cloud-hypervisor "--api-socket
	 * [path=]DIR/NAME.sock" (name_given true), when that is a valid name
	 * ([A-Za-z0-9_.-]{1,64}); otherwise "<comm>-<pid>" with characters
	 * outside that set replaced by '_' (name_given false). Names are not
	 * unique: two VMMs may be started with the same name; pid is the key. */
	char name[NAME_MAX_LEN + 1];
	bool name_given;
	/* The tenant a mapping rule gives it (see discover_tenant_from_name()),
	 * "" when none does: an unmanaged VM, until `vm register` names one. */
	char tenant[NAME_MAX_LEN + 1];
	char uuid[VM_UUID_LEN + 1]; /* QEMU "-uuid", lower case; "" otherwise */
	struct vm_vcpu *vcpus;         /* owned; sorted by index, indexes unique */
	size_t n_vcpus;                /* >= 1 */
};

/* What one pass found: every VM with at least one vCPU thread, sorted by
 * pid. Owned by the caller; discover_result_clear() frees it. */
struct discover_result {
	struct discover_vm *vms;
	size_t n;
};

/* Free the VMs of r and zero it. NULL is fine. */
void discover_result_clear(struct discover_result *r);

/* A discovery backend. scan() fills *out (which must be zeroed or cleared)
 * with the VMs there are now; it fails only when it cannot look at all
 * (and then leaves *out empty); a process that exits during the pass is
 * left out silently. free() releases ctx. */
struct discover_ops {
	const char *name;
	int (*scan)(void *ctx, struct discover_result *out, struct error **err);
	void (*free)(void *ctx);
};

struct discover_backend {
	const struct discover_ops *ops;
	void *ctx;
};

/* b->ops->scan(b->ctx, out, err). */
int discover_scan(struct discover_backend *b, struct discover_result *out, struct error **err);

/* Free the backend and its context. NULL is fine. */
void discover_backend_free(struct discover_backend *b);
static inline void discover_backend_freep(struct discover_backend **b)
{
	discover_backend_free(*b);
}

/* A backend that never finds anything (policy discovery.proc: false).
 * *out is freed with discover_backend_free(). */
void discover_null_new(struct discover_backend **out);

/* --- the /proc backend ----------------------------------------------------- */

/* Passes over which every PID cached as "not a VM" has its stat read again
 * once (round robin, a share each pass), to notice an exec (the comm
 * changes), a reused PID (the start time changes) or new threads. */
#define DISCOVER_PROC_RECHECK_PASSES 60
/* A process younger than this when first seen is looked at again on every
 * pass until it is older (a fork that has not yet exec'ed its VMM, a VMM
 * that has not yet named its vCPU threads). */
#define DISCOVER_PROC_YOUNG_S 10

struct discover_proc_config {
	/* policy discovery.tenant_from_name: a VM whose given name is
	 * TENANT.REST belongs to TENANT (discover_tenant_from_name()) */
	bool tenant_from_name;
	unsigned recheck_passes;       /* 0: DISCOVER_PROC_RECHECK_PASSES */
	unsigned young_s;              /* 0: DISCOVER_PROC_YOUNG_S */
};

/* A /proc backend reading HOST_ROOT/proc ("/" for the host; NULL is "/").
 * cfg may be NULL (all defaults). Each pass lists HOST_ROOT/proc; a PID
 * not seen before gets its stat read (comm, thread count, start time) and,
 * when it is multi-threaded, young or named like a VMM, the comm of each
 * of its threads; a PID known to be a VM (or a VMM without vCPU threads
 * yet) gets its task/ listed again, and only threads not seen before are
 * read. Its cmdline is read once, when it is first seen with vCPUs. Other
 * PIDs cost nothing but the /proc listing (and the round-robin recheck).
 * *out is freed with discover_backend_free(). */
int discover_proc_new(const char *host_root, const struct discover_proc_config *cfg,
		      struct discover_backend **out, struct error **err);

/* Change the configuration (a policy reload); takes effect on the next
 * pass. -1 (EINVAL) when b is not a /proc backend. */
int discover_proc_configure(struct discover_backend *b, const struct discover_proc_config *cfg,
			    struct error **err);

/* What the last pass of a /proc backend did: to test that a pass with
 * nothing new reads nothing, and for the benchmark. */
struct discover_proc_stats {
	unsigned pids;          /* numeric entries of HOST_ROOT/proc */
	unsigned probed;        /* PIDs looked at as new (first seen, reused, exec'ed) */
	unsigned rechecked;     /* "not a VM" PIDs whose stat was read again */
	unsigned watched;       /* PIDs whose task/ was listed again */
	unsigned ignored;       /* PIDs cached as "not a VM" after the pass */
	unsigned stat_reads;    /* /proc/PID/stat */
	unsigned task_lists;    /* /proc/PID/task listings */
	unsigned comm_reads;    /* /proc/PID/task/TID/comm */
	unsigned cmdline_reads; /* /proc/PID/cmdline */
	unsigned vanished;      /* PIDs that exited during the pass (dropped) */
	unsigned errors;        /* other failures to read a PID (skipped) */
	unsigned vms, vcpus;    /* in the result */
	unsigned candidates;    /* VMM processes without vCPU threads (yet) */
};

/* The figures of the last pass. -1 (EINVAL) when b is not a /proc backend. */
int discover_proc_stats(const struct discover_backend *b, struct discover_proc_stats *out,
			struct error **err);

/* --- pure helpers of the /proc backend ------------------------------------- */

/* (its /proc/PID/stat parser, proc_stat_parse(), is in vcpud/procfs.h: the
 * cgroup engine reads that file too) */

/* Seconds since boot from the text of /proc/uptime ("12345.67 2345.00").
 * 0, or -1 (EINVAL). */
int proc_uptime_parse(const char *buf, double *uptime_s, struct error **err);

/* What a VMM's command line says about the VM. */
struct vmm_identity {
	char name[NAME_MAX_LEN + 1];   /* "" when the command line names none
					* (or an invalid name) */
	char uuid[VM_UUID_LEN + 1]; /* "" when none (or not a UUID) */
};

/* Read the name (and for QEMU the UUID) from a command line as in
 * /proc/PID/cmdline: `len` bytes of NUL-separated arguments, the last NUL
 * optional. QEMU: "-name" or "--name" with QEMU's option syntax ("web-1",
 * "guest=web-1,debug-threads=on", ",," is a comma), the last one wins;
 * "-uuid"/"--uuid". Firecracker: "--id NAME" or "--id=NAME".
 * cloud-hypervisor: "--api-socket" ("path=DIR/NAME.sock,..." or
 * "DIR/NAME.sock"; the file name without ".sock"). Options are looked for
 * anywhere on the line. Never fails: what it cannot read stays "". */
void vmm_cmdline_identify(enum vmm_kind kind, const char *cmdline, size_t len,
			  struct vmm_identity *out);

/* The mapping rule of policy discovery.tenant_from_name: a VM name
 * "TENANT.REST" (REST not empty) gives TENANT, up to its first '.'. True
 * and *tenant filled, or false (and *tenant ""). */
bool discover_tenant_from_name(const char *vm_name, char tenant[NAME_MAX_LEN + 1]);

#endif
