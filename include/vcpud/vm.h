/* vm.h - the VM model shared by the store, discovery, plan, the API and the
 * CLI: a VM belongs to one tenant, has a VMM process (pid) and vCPU threads
 * (index -> tid), found by thread name (QEMU "CPU <n>/KVM", Firecracker
 * "fc_vcpu <n>", cloud-hypervisor "vcpu<n>"). */
#ifndef VCPUD_VM_H
#define VCPUD_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/path.h"

/* The values are the strings of the vms.state / vms.source columns. */
enum vm_state {
	VM_STATE_UNKNOWN,
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_STOPPED,
	VM_STATE_CRASHED,
	VM_STATE_GONE,     /* the process has exited; kept until released */
	VM_STATE_ADMITTED, /* reserved, not started: a view of a reservation
			    * without a VM row (never stored in vms.state) */
	VM_STATE_LAST
};

enum vm_source {
	VM_SOURCE_REGISTERED,
	VM_SOURCE_LIBVIRT,
	VM_SOURCE_PROC,
	VM_SOURCE_LAST
};

#define VM_VCPUS_MAX 4096
#define VM_UUID_LEN 36
#define VM_ORIGIN_MAX 511

struct vm_vcpu {
	unsigned index;    /* N of "CPU N/KVM" */
	pid_t tid;         /* 0 = not known */
};

struct vm {
	char name[NAME_MAX_LEN + 1];
	char tenant[NAME_MAX_LEN + 1];
	pid_t pid;                 /* 0 = none */
	/* with pid, the process's identity: its start time (clock ticks after
	 * boot, /proc/PID/stat field 22); 0 = not known */
	uint64_t start_time;
	uint32_t vcpus;            /* vCPU count: what counts against the quota */
	bool memory_set;
	int64_t memory_bytes;      /* per-VM memory.max, when memory_set */
	uint32_t weight;           /* its own cpu.weight (TENANT_WEIGHT_MIN..MAX),
				    * set by an operator; 0: 100 per vCPU
				    * (plan_vm_weight()) */
	enum vm_state state;
	enum vm_source source;
	char uuid[VM_UUID_LEN + 1]; /* "" when unknown */
	/* the cgroup (mount-relative, "/system.slice/x.scope") the process was
	 * in when registered, where a release returns it; "" when unknown */
	char origin_cgroup[VM_ORIGIN_MAX + 1];
	int64_t created_at, updated_at; /* unix seconds, set by the store */
	int64_t state_since_ms;    /* when the state last changed (unix ms), 0 unknown */
	struct vm_vcpu *threads;   /* owned; sorted by index */
	size_t n_threads;
};

const char *vm_state_to_string(enum vm_state s);
int vm_state_from_string(const char *s, enum vm_state *out, struct error **err);
const char *vm_source_to_string(enum vm_source s);
int vm_source_from_string(const char *s, enum vm_source *out, struct error **err);

/* Names (name_valid), vcpus 1..VM_VCPUS_MAX, memory > 0, threads sorted
 * with unique indexes < vcpus and unique non-zero tids. 0 or -1 (EINVAL). */
int vm_validate(const struct vm *v, struct error **err);

/* Free v->threads (not v). */
void vm_clear(struct vm *v);

/* Whether two vCPU thread lists are the same, entry by entry (index and tid,
 * in order). */
bool vm_threads_equal(const struct vm_vcpu *a, size_t na, const struct vm_vcpu *b, size_t nb);
/* Free an array of n VMs and their threads. */
void vm_list_free(struct vm *vms, size_t n);
/* Deep copy. */
void vm_copy(struct vm *dst, const struct vm *src);

#endif
