/* sched_bytid.bpf.c - the same figures as sched_iter.bpf.c, found by tid
 * instead of by walking tasks: a BPF_PROG_TYPE_SYSCALL program, run once
 * per tick with BPF_PROG_TEST_RUN, looks each watched tid up with the
 * bpf_task_from_pid() kfunc and writes its record into an mmap()ed array,
 * so a tick is one syscall and no copy. Needs a kernel that lets syscall
 * programs call that kfunc (not Debian 12's 6.1, which has no
 * bpf_task_from_pid at all); bench_sampler says so when it does not load.
 * Same CO-RE structs as sched_iter.bpf.c, same reasons. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sample/sched_task.bpf.h"

extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

/* Records: sched_task.bpf.h's struct sched_iter_rec; tid 0 when no task
 * has the tid any more. */

/* In: the tids, one per 8-byte element (array elements are rounded up to
 * 8 bytes, so a __u32 value would not pack in the mmap()ed view). Out: one
 * record per tid, same index. Both sized by user space before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sched_iter_rec);
} recs SEC(".maps");

__u32 n_tids = 0;

static long read_one(__u32 i, void *unused)
{
	(void)unused;
	__u64 *tid = bpf_map_lookup_elem(&tids, &i);
	struct sched_iter_rec *r = bpf_map_lookup_elem(&recs, &i);
	if (!tid || !r)
		return 1;
	struct task_struct *t = bpf_task_from_pid((__s32)*tid);
	if (!t) {
		r->tid = 0;
		return 0;
	}
	r->tid = (__u32)t->pid;
	r->tgid = (__u32)t->tgid;
	r->cpu_ns = t->se.sum_exec_runtime;
	r->run_delay_ns = t->sched_info.run_delay;
	r->start_ns = t->start_time;
	bpf_task_release(t);
	return 0;
}

SEC("syscall")
int sched_bytid(void *ctx)
{
	(void)ctx;
	bpf_loop(n_tids, read_one, NULL, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
