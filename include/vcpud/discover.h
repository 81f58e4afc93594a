/* discover.h - finding vCPU threads in /proc.
 *
 * A hypervisor names its vCPU threads: QEMU "CPU <n>/KVM" (or "CPU <n>/TCG"
 * without KVM), Firecracker "fc_vcpu <n>", cloud-hypervisor "vcpu<n>". The
 * parser is pure and strict ("CPU 1/KVMx", "CPU -1/KVM", "CPU 01/KVM" are
 * not vCPUs); the scanner reads /proc/<pid>/task/<tid>/comm through a root
 * prefix so tests can point it at a fake tree. */
#ifndef VCPUD_DISCOVER_H
#define VCPUD_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vcpud/error.h"

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

/* The vCPU threads of `pid` as (index, tid) sorted by index. Two threads
 * claiming the same index is EINVAL; no vCPU threads is ENOENT ("process
 * 1234 (qemu) has no vCPU threads named 'CPU <n>/KVM', 'fc_vcpu <n>' or
 * 'vcpu<n>'"). *out (struct vm_vcpu) is freed by the caller. */
struct vm_vcpu;
int proc_vm_vcpus(const char *host_root, pid_t pid, struct vm_vcpu **out, size_t *n,
		  struct error **err);

#endif
