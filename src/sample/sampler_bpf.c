/* sampler_bpf.c - the sampler's BPF path (see sampler_bpf.h). Without
 * VCPUD_BPF (vcpud built without clang, bpftool or libbpf) it only says so.
 *
 * Per VM process, one link of vcpu_iter attached with that process's PID
 * (an iteration then walks its threads only) is made at the first read and
 * kept while the process is read at every tick; a read is
 * bpf_iter_create() on the link, read() until the end, close(). Measured
 * by bench_sampler (VM-shaped, 8 threads per process): 0.55-0.66x the
 * pread floor per thread, and no kernel file (about 6 KB of slab) kept per
 * thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample/sampler_bpf.h"
#include "vcpud/util.h"

#ifdef VCPUD_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "vcpu_iter.skel.h"

_Static_assert(sizeof(struct vcpu_iter_rec) == 32, "vcpu_iter.bpf.c's record");

struct plink {
	pid_t pid;               /* 0: empty */
	int fd;                  /* the link */
	uint32_t gen;            /* the tick that last read it */
	uint32_t n_threads;      /* what that read found (UINT32_MAX: it failed) */
	uint64_t tid_sum;
};

struct sampler_bpf {
	struct vcpu_iter *skel;
	struct plink *links;     /* open addressing by pid, linear probing */
	size_t cap, n;           /* cap: a power of two, > 2 x n */
	uint32_t gen;
	struct vcpu_iter_rec *recs;
	size_t cap_recs;
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level; (void)fmt; (void)ap;
	return 0;
}

static size_t pid_slot(const struct sampler_bpf *b, pid_t pid)
{
	size_t mask = b->cap - 1;
	size_t h = (size_t)(((uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
	while (b->links[h].pid && b->links[h].pid != pid)
		h = (h + 1) & mask;
	return h;
}

static void links_rehash(struct sampler_bpf *b, size_t cap)
{
	struct plink *old = b->links;
	size_t old_cap = b->cap;
	b->links = xcalloc(cap, sizeof(*b->links));
	b->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].pid)
			b->links[pid_slot(b, old[i].pid)] = old[i];
	free(old);
}

static int link_for(struct sampler_bpf *b, pid_t pid)
{
	union bpf_iter_link_info li;
	memset(&li, 0, sizeof(li));
	li.task.pid = (uint32_t)pid;
	LIBBPF_OPTS(bpf_link_create_opts, o, .iter_info = &li, .iter_info_len = sizeof(li));
	int fd = bpf_link_create(bpf_program__fd(b->skel->progs.vcpu_iter), 0, BPF_TRACE_ITER, &o);
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	return fd;
}

/* Read the iterator of `link` to its end into b->recs: the record count,
 * or -1 and errno. */
static ssize_t iter_read(struct sampler_bpf *b, int link)
{
	int fd = bpf_iter_create(link);
	if (fd < 0)
		return -1;
	size_t got = 0;
	ssize_t r;
	for (;;) {
		if (got + sizeof(*b->recs) > b->cap_recs * sizeof(*b->recs)) {
			b->cap_recs = b->cap_recs ? 2 * b->cap_recs : 256;
			b->recs = xrealloc(b->recs, b->cap_recs * sizeof(*b->recs));
		}
		r = read(fd, (char *)b->recs + got, b->cap_recs * sizeof(*b->recs) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	int e = errno;
	close(fd);
	if (r < 0 || got % sizeof(*b->recs)) {
		errno = r < 0 ? e : EPROTO;
		return -1;
	}
	return (ssize_t)(got / sizeof(*b->recs));
}

int sampler_bpf_read(struct sampler_bpf *b, pid_t pid, const struct vcpu_iter_rec **recs,
		     size_t *n)
{
	*recs = NULL;
	*n = 0;
	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (2 * (b->n + 1) >= b->cap)
		links_rehash(b, b->cap ? 2 * b->cap : 64);
	struct plink *l = &b->links[pid_slot(b, pid)];
	if (!l->pid) {
		int fd = link_for(b, pid);
		if (fd < 0)
			return -1;
		*l = (struct plink){ .pid = pid, .fd = fd, .gen = b->gen };
		b->n++;
	}
	l->gen = b->gen;
	l->n_threads = UINT32_MAX; /* not known unless this read succeeds */
	ssize_t k = iter_read(b, l->fd);
	if (k < 0)
		return -1;
	/* only the process's own threads (a PID reused meanwhile is another
	 * process, whose threads the caller does not know by their start) */
	size_t m = 0;
	uint64_t sum = 0;
	for (ssize_t i = 0; i < k; i++)
		if (b->recs[i].tgid == (uint32_t)pid) {
			sum += (uint64_t)b->recs[i].tid * 0x9e3779b97f4a7c15ULL ^
			       (uint64_t)b->recs[i].tid << 29;
			b->recs[m++] = b->recs[i];
		}
	l->n_threads = (uint32_t)m;
	l->tid_sum = sum;
	*recs = b->recs;
	*n = m;
	return 0;
}

void sampler_bpf_begin(struct sampler_bpf *b)
{
	if (++b->gen == 0)
		b->gen = 1;
}

int sampler_bpf_threads(const struct sampler_bpf *b, pid_t pid, size_t *n, uint64_t *tid_sum)
{
	if (!b->cap || pid <= 0)
		return -1;
	const struct plink *l = &b->links[pid_slot(b, pid)];
	if (l->pid != pid || l->gen != b->gen || l->n_threads == UINT32_MAX)
		return -1;
	*n = l->n_threads;
	*tid_sum = l->tid_sum;
	return 0;
}

void sampler_bpf_sweep(struct sampler_bpf *b)
{
	size_t dropped = 0;
	for (size_t i = 0; i < b->cap; i++)
		if (b->links[i].pid && b->links[i].gen != b->gen) {
			close(b->links[i].fd);
			b->links[i].pid = 0;
			dropped++;
		}
	if (dropped) {
		b->n -= dropped;
		links_rehash(b, b->cap); /* no tombstones: probe chains stay whole */
	}
}

size_t sampler_bpf_links(const struct sampler_bpf *b)
{
	return b ? b->n : 0;
}

void sampler_bpf_free(struct sampler_bpf *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->cap; i++)
		if (b->links[i].pid)
			close(b->links[i].fd);
	free(b->links);
	free(b->recs);
	vcpu_iter__destroy(b->skel);
	free(b);
}

/* The iterator on this process: its own thread must come back, with its
 * process's id and a run time, and nothing of another process (a kernel
 * older than 6.1 takes the link but walks every task of the host). */
static int self_check(struct sampler_bpf *b, char **why)
{
	pid_t self = getpid(), tid = gettid();
	int fd = link_for(b, self);
	if (fd < 0) {
		*why = xasprintf("cannot attach a task iterator to a process: %s", strerror(errno));
		return -1;
	}
	ssize_t k = iter_read(b, fd);
	int e = errno;
	close(fd);
	if (k < 0) {
		*why = xasprintf("cannot read a task iterator: %s", strerror(e));
		return -1;
	}
	bool mine = false;
	for (ssize_t i = 0; i < k; i++) {
		if (b->recs[i].tgid != (uint32_t)self) {
			*why = xstrdup("the kernel's task iterator does not keep to one process "
				       "(Linux 6.1 or later is needed)");
			return -1;
		}
		mine |= b->recs[i].tid == (uint32_t)tid && b->recs[i].cpu_ns > 0;
	}
	if (!mine) {
		*why = xasprintf("a task iterator did not show this thread (%zd records)", k);
		return -1;
	}
	return 0;
}

struct sampler_bpf *sampler_bpf_new(char **why)
{
	*why = NULL;
	libbpf_set_print(quiet);
	struct sampler_bpf *b = xcalloc(1, sizeof(*b));
	b->skel = vcpu_iter__open_and_load();
	if (!b->skel) {
		int e = errno;
		*why = xasprintf("cannot load the BPF task iterator: %s%s", strerror(e),
				 e == EPERM ? " (needs CAP_BPF and CAP_PERFMON)" :
				 e == ENOENT || e == ESRCH ? " (no kernel BTF?)" : "");
		free(b);
		return NULL;
	}
	if (self_check(b, why) < 0) {
		sampler_bpf_free(b);
		return NULL;
	}
	b->gen = 1;
	return b;
}

#else /* !VCPUD_BPF */

struct sampler_bpf {
	int unused;
};

struct sampler_bpf *sampler_bpf_new(char **why)
{
	*why = xstrdup("vcpud was built without BPF (clang, bpftool and libbpf-dev: make deps)");
	return NULL;
}

void sampler_bpf_free(struct sampler_bpf *b)
{
	free(b);
}

int sampler_bpf_read(struct sampler_bpf *b, pid_t pid, const struct vcpu_iter_rec **recs,
		     size_t *n)
{
	(void)b; (void)pid;
	*recs = NULL;
	*n = 0;
	errno = ENOSYS;
	return -1;
}

void sampler_bpf_begin(struct sampler_bpf *b)
{
	(void)b;
}

void sampler_bpf_sweep(struct sampler_bpf *b)
{
	(void)b;
}

int sampler_bpf_threads(const struct sampler_bpf *b, pid_t pid, size_t *n, uint64_t *tid_sum)
{
	(void)b; (void)pid; (void)n; (void)tid_sum;
	return -1;
}

size_t sampler_bpf_links(const struct sampler_bpf *b)
{
	(void)b;
	return 0;
}

#endif
