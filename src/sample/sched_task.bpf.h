/* sched_task.bpf.h - the kernel's structs as the BPF bench programs
 * (sched_iter.bpf.c, sched_bytid.bpf.c) read them: only the members used,
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

#endif
