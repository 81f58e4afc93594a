/* sched_iter.bpf.c - a BPF task iterator that writes, for each task it
 * visits, what /proc/<pid>/task/<tid>/schedstat's first two fields are
 * (se.sum_exec_runtime, sched_info.run_delay), as one fixed binary record
 * per task, so that one read() of the iterator replaces one pread() per
 * vCPU thread. bench_sampler measures it against the pread floor
 * (issue 10, item 5). vcpud's own iterator is src/sample/vcpu_iter.bpf.c
 * (the same record; over every task with a map of the VM processes, and
 * attached to one process).
 *
 * No vmlinux.h: the few kernel structs read here are declared with only
 * the members used, under preserve_access_index, so libbpf relocates each
 * field against the running kernel's BTF (CO-RE) and the build needs
 * neither /sys/kernel/btf/vmlinux nor a header dumped from the build
 * machine's kernel: the object is the same whatever machine builds it.
 * Built with clang -target bpf -g -O2; embedded by `bpftool gen skeleton`. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* --- the kernel's structs, the members read here only ---------------------- */

#include "sample/sched_task.bpf.h"

/* The watched tids (value unused). Sized by user space before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

/* 1: write only the tasks in `watched`; 0: write every task visited. Set
 * by user space before load (read-only data, so the verifier drops the
 * dead branch). */
const volatile int filter = 1;

/* Tasks visited by the last iterations (not reset by the kernel; user
 * space zeroes it): how much of the host one pass walks. */
__u64 visited = 0;

SEC("iter/task")
int sched_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	visited++;
	__u32 tid = (__u32)t->pid;
	if (filter && !bpf_map_lookup_elem(&watched, &tid))
		return 0;
	struct sched_iter_rec r = sched_iter_rec_of(t);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
