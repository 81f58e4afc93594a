/* sched_task.bpf.h - the kernel's structs as vcpud's BPF sampler
 * (vcpu_iter.bpf.c) and the bench programs (tests/bench/sched_iter.bpf.c,
 * sched_bytid.bpf.c) read them, and the record they write: only the members used,
 * under preserve_access_index, so libbpf relocates each field against the
 * running kernel's BTF (CO-RE); no vmlinux.h from the build machine. */
#ifndef SCHED_TASK_BPF_H
#define SCHED_TASK_BPF_H

#include <linux/types.h>

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct sched_info {
	unsigned long long run_delay;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;                 /* the thread's id (TID) */
	int tgid;                /* its process's (PID) */
	__u64 start_time;        /* CLOCK_MONOTONIC ns at fork: tells a reused tid */
	struct sched_entity se;
	struct sched_info sched_info;
} __attribute__((preserve_access_index));

/* A task iterator's context (iter/task programs). */
struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task; /* NULL once, at the end */
} __attribute__((preserve_access_index));

/* One thread as the programs write it for user space (32 bytes, no
 * padding; sampler_bpf.h's struct vcpu_iter_rec, bench_sampler.c's struct
 * sched_iter_rec). The ids are those of the initial PID namespace. */
struct sched_iter_rec {
	__u32 tid;
	__u32 tgid;
	__u64 cpu_ns;            /* se.sum_exec_runtime: schedstat field 1 */
	__u64 run_delay_ns;      /* sched_info.run_delay: schedstat field 2 */
	__u64 start_ns;          /* task->start_time: tells a reused tid */
};

static __always_inline struct sched_iter_rec sched_iter_rec_of(const struct task_struct *t)
{
	struct sched_iter_rec r = {
		.tid = (__u32)t->pid,
		.tgid = (__u32)t->tgid,
		.cpu_ns = t->se.sum_exec_runtime,
		.run_delay_ns = t->sched_info.run_delay,
		.start_ns = t->start_time,
	};
	return r;
}

#endif
