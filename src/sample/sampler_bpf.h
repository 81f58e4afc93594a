/* sampler_bpf.h - the sampler's BPF path (private to src/sample/): each VM
 * process's threads read by one BPF task iterator (vcpu_iter.bpf.c) instead
 * of one schedstat pread per thread, and no file kept open per thread.
 *
 * Needs a kernel with BTF and task iterators that take a process (Linux
 * 6.1+), CAP_BPF and CAP_PERFMON (or root), and vcpud built with clang,
 * bpftool and libbpf (VCPUD_BPF). sampler_bpf_new() tries all of it once,
 * on vcpud's own threads, and says why not in one line. */
#ifndef VCPUD_SAMPLE_SAMPLER_BPF_H
#define VCPUD_SAMPLE_SAMPLER_BPF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One thread, as vcpu_iter.bpf.c writes it (32 bytes, no padding). */
struct vcpu_iter_rec {
	uint32_t tid;
	uint32_t tgid;
	uint64_t cpu_ns;         /* schedstat field 1 (se.sum_exec_runtime) */
	uint64_t run_delay_ns;   /* schedstat field 2 (sched_info.run_delay) */
	uint64_t start_ns;       /* the thread's start (CLOCK_MONOTONIC ns) */
};

struct sampler_bpf;

/* Load the iterator and check it on this process: NULL and *why (malloc'd)
 * when it cannot be used here. */
struct sampler_bpf *sampler_bpf_new(char **why);
void sampler_bpf_free(struct sampler_bpf *b);

/* The threads of process `pid` now, in *recs (valid until the next call),
 * one iterator read (its link, kept per process, is made at the first
 * read). 0 (n = 0: the process is gone); -1 and errno. */
int sampler_bpf_read(struct sampler_bpf *b, pid_t pid, const struct vcpu_iter_rec **recs,
		     size_t *n);

/* A tick begins / ends: at its end the links of processes it did not read
 * are dropped. */
void sampler_bpf_begin(struct sampler_bpf *b);
void sampler_bpf_sweep(struct sampler_bpf *b);

/* What the current (or last) tick read of process `pid`: its thread count
 * and a sum of a hash of each thread id (the same set, the same sum,
 * whatever the order). 0; -1 when it was not read. */
int sampler_bpf_threads(const struct sampler_bpf *b, pid_t pid, size_t *n, uint64_t *tid_sum);

/* Links kept (one per process read lately). */
size_t sampler_bpf_links(const struct sampler_bpf *b);

#endif
