/* vcpu_iter.bpf.c - the sampler's BPF path (sampler_bpf.c): task
 * iterators that write for each thread of a watched VM process what
 * /proc/<pid>/task/<tid>/schedstat's first two fields say
 * (se.sum_exec_runtime, sched_info.run_delay) and the thread's start time,
 * as one fixed 32-byte record: vcpu_iter_all over every task of the host,
 * filtered by the map of watched processes (one read a tick for all VMs),
 * and vcpu_iter attached to one process. A read() of an iterator then
 * replaces a pread() per vCPU thread, and no file is kept open per thread.
 *
 * No vmlinux.h: the kernel structs are declared in sched_task.bpf.h with
 * only the members read, under preserve_access_index, so libbpf relocates
 * each field against the running kernel's BTF (CO-RE): the object does not
 * depend on the machine that builds it. Built with clang -target bpf -g
 * -O2, embedded in vcpud by `bpftool gen skeleton`. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sched_task.bpf.h"

/* The VM processes (their PIDs, tgids) vcpu_iter_all writes the threads
 * of; sampler_bpf.c adds and removes them. Not preallocated: an entry
 * costs kernel memory only while a VM is watched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

/* Attached without a process: one iteration walks every task of the host
 * and writes the threads of the watched processes. One read of it a tick
 * replaces an iterator per VM process (its creation, reads and close). */
SEC("iter/task")
int vcpu_iter_all(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	__u32 tgid = (__u32)t->tgid;
	if (!bpf_map_lookup_elem(&watched, &tgid))
		return 0;
	struct sched_iter_rec r = sched_iter_rec_of(t);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Attached with a process's PID (Linux 6.1+): its threads only. For a
 * process first seen after this tick's walk, a map that is full, and the
 * start's self-check. */
SEC("iter/task")
int vcpu_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	struct sched_iter_rec r = sched_iter_rec_of(t);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
