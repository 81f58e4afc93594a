/* vcpu_iter.bpf.c - the sampler's BPF path (sampler_bpf.c): a task
 * iterator, attached once per VM process (the link names the process, so
 * an iteration walks its threads only, Linux 6.1+), that writes for each
 * thread what /proc/<pid>/task/<tid>/schedstat's first two fields say
 * (se.sum_exec_runtime, sched_info.run_delay) and the thread's start time,
 * as one fixed 32-byte record. One read() of the iterator then replaces a
 * pread() per vCPU thread, and no file is kept open per thread.
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
