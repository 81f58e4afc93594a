/* sampler_bpf.c - the sampler's BPF path (see sampler_bpf.h). Without
 * VCPUD_BPF (vcpud built without clang, bpftool or libbpf) it only says so.
 *
 * A VM process read for the first time goes into vcpu_iter_all's map, and
 * the tick's first read walks every task of the host once (one
 * bpf_iter_create(), reads to the end, one close()); the records are put
 * in order by process and each read of the tick takes its slice. A
 * process first read after that walk is read once by a link of vcpu_iter
 * attached to it (the next ticks' walks have it); one that finds the map
 * full keeps such a link. A process not read in a tick leaves the map.
 *
 * Measured (bench_sampler, VM-shaped, 8 threads per process): a link per
 * process costs 0.55-0.66x the pread floor per thread, mostly its
 * iterator's creation and the kernel's lookup of each next thread; the
 * walk 0.36x where the watched threads are most of the host's tasks (a VM
 * host), and it costs about 0.2 us per other task it passes. No kernel
 * file (about 6 KB of slab) is kept per thread either way. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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

/* A watched process. */
struct proc {
	pid_t pid;               /* 0: empty */
	int link;                /* a link of its own (the map was full), or -1 */
	bool in_map;             /* in vcpu_iter_all's map */
	uint32_t gen;            /* the tick that last read it */
	uint32_t n_threads;      /* what that read found (UINT32_MAX: it failed) */
	uint64_t tid_sum;
	uint32_t walk_gen;       /* the walk its slice of b->sorted is from */
	uint32_t off, cnt;       /* that slice */
};

struct sampler_bpf {
	struct vcpu_iter *skel;
	int map_fd;
	int all_link;            /* vcpu_iter_all: every task, the map's processes */
	struct proc *procs;      /* open addressing by pid, linear probing */
	size_t cap, n;           /* cap: a power of two, > 2 x n */
	uint32_t gen;
	uint32_t walk_gen;       /* the tick whose walk b->sorted holds (0: none) */
	int walk_errno;          /* that walk failed, with this errno */
	struct vcpu_iter_rec *recs;    /* what an iterator read */
	size_t cap_recs;
	struct vcpu_iter_rec *sorted;  /* the walk's records, by process */
	size_t cap_sorted;
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
	while (b->procs[h].pid && b->procs[h].pid != pid)
		h = (h + 1) & mask;
	return h;
}

/* The process `pid` watched, or NULL. */
static struct proc *proc_of(struct sampler_bpf *b, uint32_t pid)
{
	if (!b->cap || !pid || pid > INT32_MAX)
		return NULL;
	struct proc *p = &b->procs[pid_slot(b, (pid_t)pid)];
	return p->pid ? p : NULL;
}

static void procs_rehash(struct sampler_bpf *b, size_t cap)
{
	struct proc *old = b->procs;
	size_t old_cap = b->cap;
	b->procs = xcalloc(cap, sizeof(*b->procs));
	b->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].pid)
			b->procs[pid_slot(b, old[i].pid)] = old[i];
	free(old);
}

/* A link of vcpu_iter on process `pid` (0: vcpu_iter_all on every task). */
static int link_for(struct sampler_bpf *b, pid_t pid)
{
	int fd;
	if (pid) {
		union bpf_iter_link_info li;
		memset(&li, 0, sizeof(li));
		li.task.pid = (uint32_t)pid;
		LIBBPF_OPTS(bpf_link_create_opts, o, .iter_info = &li, .iter_info_len = sizeof(li));
		fd = bpf_link_create(bpf_program__fd(b->skel->progs.vcpu_iter), 0, BPF_TRACE_ITER, &o);
	} else {
		fd = bpf_link_create(bpf_program__fd(b->skel->progs.vcpu_iter_all), 0,
				     BPF_TRACE_ITER, NULL);
	}
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

/* This tick's walk: every watched process's threads in one read, sorted
 * into b->sorted by process (a count, offsets, a scatter: no sort). */
static void walk(struct sampler_bpf *b)
{
	b->walk_gen = b->gen;
	b->walk_errno = 0;
	ssize_t k = iter_read(b, b->all_link);
	if (k < 0) {
		b->walk_errno = errno;
		return;
	}
	/* a process's threads mostly come in a row (tids in order) */
	struct proc *p = NULL;
	for (ssize_t i = 0; i < k; i++) {
		if (!p || (uint32_t)p->pid != b->recs[i].tgid)
			p = proc_of(b, b->recs[i].tgid);
		if (!p || !p->in_map)
			continue;
		if (p->walk_gen != b->gen) {
			p->walk_gen = b->gen;
			p->cnt = 0;
		}
		p->cnt++;
	}
	uint32_t off = 0;
	for (size_t i = 0; i < b->cap; i++) {
		struct proc *q = &b->procs[i];
		if (q->pid && q->walk_gen == b->gen) {
			q->off = off;
			off += q->cnt;
			q->cnt = 0;
		}
	}
	if (off > b->cap_sorted) {
		b->cap_sorted = 2 * (size_t)off;
		free(b->sorted);
		b->sorted = xcalloc(b->cap_sorted, sizeof(*b->sorted));
	}
	p = NULL;
	for (ssize_t i = 0; i < k; i++) {
		if (!p || (uint32_t)p->pid != b->recs[i].tgid)
			p = proc_of(b, b->recs[i].tgid);
		if (!p || !p->in_map || p->walk_gen != b->gen)
			continue;
		b->sorted[p->off + p->cnt++] = b->recs[i];
	}
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
		procs_rehash(b, b->cap ? 2 * b->cap : 64);
	struct proc *p = &b->procs[pid_slot(b, pid)];
	bool after_walk = false;
	if (!p->pid) {
		*p = (struct proc){ .pid = pid, .link = -1 };
		b->n++;
		uint32_t key = (uint32_t)pid;
		uint8_t one = 1;
		/* a full map (65,536 processes): a link of its own */
		p->in_map = bpf_map_update_elem(b->map_fd, &key, &one, BPF_ANY) == 0;
		/* this tick's walk is done and did not see it */
		after_walk = p->in_map && b->walk_gen == b->gen;
	}
	p->gen = b->gen;
	p->n_threads = UINT32_MAX; /* not known unless this read succeeds */
	const struct vcpu_iter_rec *src;
	size_t k;
	if (p->in_map && !after_walk) {
		if (b->walk_gen != b->gen)
			walk(b);
		if (b->walk_errno) {
			errno = b->walk_errno;
			return -1;
		}
		src = b->sorted + p->off;
		k = p->walk_gen == b->gen ? p->cnt : 0; /* none: the process is gone */
	} else {
		int link = p->link >= 0 ? p->link : link_for(b, pid);
		if (link < 0)
			return -1;
		ssize_t r = iter_read(b, link);
		int e = errno;
		if (p->in_map)
			close(link); /* once: the next ticks' walks have it */
		else
			p->link = link;
		if (r < 0) {
			errno = e;
			return -1;
		}
		/* only the process's own threads (a PID reused meanwhile is
		 * another process, whose threads the caller tells by their start) */
		size_t m = 0;
		for (ssize_t i = 0; i < r; i++)
			if (b->recs[i].tgid == (uint32_t)pid)
				b->recs[m++] = b->recs[i];
		src = b->recs;
		k = m;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < k; i++)
		sum += (uint64_t)src[i].tid * 0x9e3779b97f4a7c15ULL ^ (uint64_t)src[i].tid << 29;
	p->n_threads = (uint32_t)k;
	p->tid_sum = sum;
	*recs = src;
	*n = k;
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
	const struct proc *p = &b->procs[pid_slot(b, pid)];
	if (p->pid != pid || p->gen != b->gen || p->n_threads == UINT32_MAX)
		return -1;
	*n = p->n_threads;
	*tid_sum = p->tid_sum;
	return 0;
}

void sampler_bpf_sweep(struct sampler_bpf *b)
{
	size_t dropped = 0;
	for (size_t i = 0; i < b->cap; i++) {
		struct proc *p = &b->procs[i];
		if (!p->pid || p->gen == b->gen)
			continue;
		if (p->in_map) {
			uint32_t key = (uint32_t)p->pid;
			bpf_map_delete_elem(b->map_fd, &key);
		}
		if (p->link >= 0)
			close(p->link);
		p->pid = 0;
		dropped++;
	}
	if (dropped) {
		b->n -= dropped;
		procs_rehash(b, b->cap); /* no tombstones: probe chains stay whole */
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
		if (b->procs[i].pid && b->procs[i].link >= 0)
			close(b->procs[i].link);
	if (b->all_link >= 0)
		close(b->all_link);
	free(b->procs);
	free(b->recs);
	free(b->sorted);
	vcpu_iter__destroy(b->skel);
	free(b);
}

/* What an iterator read of this process: its own thread must come back,
 * with its process's id and a run time, and nothing of another process. */
static int self_check_recs(const struct sampler_bpf *b, ssize_t k, const char *what, char **why)
{
	pid_t self = getpid(), tid = gettid();
	bool mine = false;
	for (ssize_t i = 0; i < k; i++) {
		if (b->recs[i].tgid != (uint32_t)self) {
			*why = xasprintf("the kernel's task iterator %s does not keep to one process "
					 "(Linux 6.1 or later is needed)", what);
			return -1;
		}
		mine |= b->recs[i].tid == (uint32_t)tid && b->recs[i].cpu_ns > 0;
	}
	if (!mine) {
		*why = xasprintf("a task iterator %s did not show this thread (%zd records)", what, k);
		return -1;
	}
	return 0;
}

/* Both iterators on this process: attached to it (a kernel older than 6.1
 * takes the link but walks every task of the host), and over every task
 * with this process alone in the map. */
static int self_check(struct sampler_bpf *b, char **why)
{
	int fd = link_for(b, getpid());
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
	if (self_check_recs(b, k, "on a process", why) < 0)
		return -1;
	uint32_t key = (uint32_t)getpid();
	uint8_t one = 1;
	if (bpf_map_update_elem(b->map_fd, &key, &one, BPF_ANY) < 0) {
		*why = xasprintf("cannot add a process to the iterator's map: %s", strerror(errno));
		return -1;
	}
	k = iter_read(b, b->all_link);
	e = errno;
	bpf_map_delete_elem(b->map_fd, &key);
	if (k < 0) {
		*why = xasprintf("cannot read the task iterator over every task: %s", strerror(e));
		return -1;
	}
	return self_check_recs(b, k, "over every task", why);
}

struct sampler_bpf *sampler_bpf_new(char **why)
{
	*why = NULL;
	libbpf_set_print(quiet);
	struct sampler_bpf *b = xcalloc(1, sizeof(*b));
	b->all_link = -1;
	b->skel = vcpu_iter__open_and_load();
	if (!b->skel) {
		int e = errno;
		*why = xasprintf("cannot load the BPF task iterator: %s%s", strerror(e),
				 e == EPERM ? " (needs CAP_BPF and CAP_PERFMON)" :
				 e == ENOENT || e == ESRCH ? " (no kernel BTF?)" : "");
		free(b);
		return NULL;
	}
	b->map_fd = bpf_map__fd(b->skel->maps.watched);
	b->all_link = link_for(b, 0);
	if (b->all_link < 0) {
		*why = xasprintf("cannot attach the task iterator over every task: %s",
				 strerror(errno));
		sampler_bpf_free(b);
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
