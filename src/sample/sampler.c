/* sampler.c - the stateful sampler: one kept fd per vCPU thread on
 * HOST_ROOT/proc/<pid>/task/<tid>/schedstat, one pread() per thread per
 * tick, and each thread's baseline for sample_derive().
 *
 * Threads live in a dense array of slots kept in the order of the targets
 * of the last tick, so a tick whose target list did not change finds each
 * slot at the next position without hashing; an open-addressing index on
 * (pid, tid) finds the rest. Slots of threads no longer listed are swept
 * (their fds closed) before new ones are opened. Nothing is allocated
 * while the set of targets stays the same. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sample/sampler_bpf.h"
#include "vcpud/discover.h"
#include "vcpud/path.h"
#include "vcpud/sample.h"
#include "vcpud/util.h"

struct slot {
	pid_t pid, tid;
	int fd;                  /* -1: not open (new, gone, failed) */
	uint32_t gen;            /* the tick that last listed it */
	uint32_t out_idx;        /* its first index in that tick's targets */
	uint64_t start_ns;       /* BPF: the thread's start, 0 unknown */
	bool have_base;
	int64_t base_mono_ns;
	struct sample_counters base;
};

struct sampler {
	char *proc;              /* HOST_ROOT/proc */
	int64_t interval_ns;
	uint32_t gen;
	struct slot *slots;
	size_t n_slots, cap_slots;
	size_t n_open;
	/* (pid, tid) -> slot index + 1; 0 = empty; linear probing */
	uint32_t *index;
	size_t index_cap;        /* a power of two, > 2 x n_slots */
	/* scratch, grown with the target count, reused every tick */
	uint32_t *pending;       /* targets without a slot */
	uint32_t *where;         /* target index -> slot, for the reorder */
	size_t cap_pending, cap_where;
	unsigned long long nofile; /* RLIMIT_NOFILE soft limit */
	unsigned long long nofile_hard;
	struct yield_hook yield;   /* sampler_set_yield() */
	/* BPF (sampler_use_bpf): the iterators, and the process read last in
	 * this tick (targets come VM by VM: one read per process) */
	struct sampler_bpf *bpf;
	pid_t cur_pid;
	int cur_rc, cur_errno;
	const struct vcpu_iter_rec *cur;
	size_t n_cur;
};

/* What went wrong during one tick: the first failure and how many. */
struct tick {
	size_t n;                /* targets this tick, for the EMFILE message */
	struct error *first;
	size_t n_err;
};

/* --- the fd limit ---------------------------------------------------------- */

static void nofile_read(struct sampler *s)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	s->nofile = rl.rlim_cur == RLIM_INFINITY ? ULLONG_MAX : (unsigned long long)rl.rlim_cur;
	s->nofile_hard = rl.rlim_max == RLIM_INFINITY ? ULLONG_MAX : (unsigned long long)rl.rlim_max;
}

/* Raise the soft limit to the hard one. The default soft limit (1024) is
 * kept low only for programs that still use select(); vcpud does not. A
 * failure leaves the limit as it was: sampler_tick() reports it when it
 * bites. */
static void nofile_raise(struct sampler *s)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	nofile_read(s);
}

/* Read afresh every tick (one cheap syscall): the limit may have been
 * changed since (prlimit(1), a test). */
static int nofile_check(struct sampler *s, size_t n, struct error **err)
{
	nofile_read(s);
	if (n <= s->nofile && s->nofile - n >= SAMPLER_FD_RESERVE)
		return 0;
	return error_set(err, EMFILE,
			 "cannot sample %zu threads: open file limit %llu (RLIMIT_NOFILE, hard "
			 "limit %llu; the sampler keeps one file open per vCPU thread and leaves "
			 "%d for the rest of vcpud)",
			 n, s->nofile, s->nofile_hard, SAMPLER_FD_RESERVE);
}

/* --- slots and the index --------------------------------------------------- */

static inline size_t slot_hash(pid_t pid, pid_t tid, size_t mask)
{
	uint64_t k = ((uint64_t)(uint32_t)pid << 32) | (uint32_t)tid;
	k *= 0x9e3779b97f4a7c15ULL;
	return (size_t)(k >> 32) & mask;
}

static void index_put(struct sampler *s, size_t slot_idx)
{
	const struct slot *sl = &s->slots[slot_idx];
	size_t mask = s->index_cap - 1;
	size_t h = slot_hash(sl->pid, sl->tid, mask);
	while (s->index[h])
		h = (h + 1) & mask;
	s->index[h] = (uint32_t)(slot_idx + 1);
}

/* Rebuild the index for the slots as they are now, growing it so that it
 * stays at most half full. */
static void index_rebuild(struct sampler *s)
{
	size_t cap = 16;
	while (cap < 2 * s->n_slots + 2)
		cap *= 2;
	if (cap != s->index_cap) {
		free(s->index);
		s->index = xmalloc(cap * sizeof(*s->index));
		s->index_cap = cap;
	}
	memset(s->index, 0, cap * sizeof(*s->index));
	for (size_t i = 0; i < s->n_slots; i++)
		index_put(s, i);
}

/* The slot of (pid, tid), or NULL. `hint` is where it is if the targets
 * come in the same order as last tick. */
static inline struct slot *slot_find(const struct sampler *s, pid_t pid, pid_t tid, size_t hint)
{
	if (hint < s->n_slots && s->slots[hint].tid == tid && s->slots[hint].pid == pid)
		return &s->slots[hint];
	if (!s->n_slots)
		return NULL;
	size_t mask = s->index_cap - 1;
	for (size_t h = slot_hash(pid, tid, mask);; h = (h + 1) & mask) {
		uint32_t v = s->index[h];
		if (!v)
			return NULL;
		struct slot *sl = &s->slots[v - 1];
		if (sl->tid == tid && sl->pid == pid)
			return sl;
	}
}

static struct slot *slot_insert(struct sampler *s, pid_t pid, pid_t tid)
{
	if (s->n_slots == s->cap_slots) {
		s->cap_slots = s->cap_slots ? s->cap_slots * 2 : 64;
		s->slots = xrealloc(s->slots, s->cap_slots * sizeof(*s->slots));
	}
	size_t i = s->n_slots++;
	s->slots[i] = (struct slot){ .pid = pid, .tid = tid, .fd = -1 };
	if (2 * s->n_slots + 2 > s->index_cap)
		index_rebuild(s);
	else
		index_put(s, i);
	return &s->slots[i];
}

static void slot_close(struct sampler *s, struct slot *sl)
{
	if (sl->fd >= 0) {
		close(sl->fd);
		sl->fd = -1;
		s->n_open--;
	}
}

/* Close and drop the slots this tick did not list. */
static void slots_sweep(struct sampler *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n_slots; i++) {
		if (s->slots[i].gen != s->gen) {
			slot_close(s, &s->slots[i]);
			continue;
		}
		if (k != i)
			s->slots[k] = s->slots[i];
		k++;
	}
	s->n_slots = k;
	index_rebuild(s);
}

/* Put the slots in the order of this tick's targets (every slot was listed
 * this tick, under a distinct out_idx < n), so that the next tick with the
 * same list finds each one at its position. O(n). Into a new array: a
 * reorder comes only with a change of the targets, and a second array
 * kept for it would double the slots' memory (48 bytes a thread). */
static void slots_reorder(struct sampler *s, size_t n)
{
	if (!n || !s->n_slots) {
		index_rebuild(s);
		return;
	}
	if (s->cap_where < n) {
		s->cap_where = n;
		s->where = xrealloc(s->where, n * sizeof(*s->where));
	}
	struct slot *v = xmalloc(s->cap_slots * sizeof(*v));
	memset(s->where, 0xff, n * sizeof(*s->where));
	for (size_t i = 0; i < s->n_slots; i++)
		s->where[s->slots[i].out_idx] = (uint32_t)i;
	size_t k = 0;
	for (size_t j = 0; j < n; j++)
		if (s->where[j] != UINT32_MAX)
			v[k++] = s->slots[s->where[j]];
	free(s->slots);
	s->slots = v;
	index_rebuild(s);
}

/* --- reading one thread ---------------------------------------------------- */

static const char *target_name(const struct sample_target *t, char *buf, size_t size)
{
	if (t->vm)
		snprintf(buf, size, "vCPU %u of VM %s (pid %d, tid %d)", t->vcpu, t->vm, (int)t->pid,
			 (int)t->tid);
	else
		snprintf(buf, size, "vCPU %u (pid %d, tid %d)", t->vcpu, (int)t->pid, (int)t->tid);
	return buf;
}

static void tick_fail(struct tick *t, struct error *e)
{
	t->n_err++;
	if (!t->first)
		t->first = e;
	else
		error_free(&e);
}

static void out_state(struct sample_vcpu *o, enum sample_state st)
{
	memset(o, 0, sizeof(*o));
	o->state = st;
	o->gone = st == SAMPLE_GONE;
}

static void slot_gone(struct sampler *s, struct slot *sl, struct sample_vcpu *o)
{
	slot_close(s, sl);
	sl->have_base = false;
	out_state(o, SAMPLE_GONE);
}

static int slot_open(struct sampler *s, struct slot *sl, const struct sample_target *tg,
		     struct sample_vcpu *o, struct tick *t)
{
	char path[PATH_MAX];
	int len = snprintf(path, sizeof(path), "%s/%d/task/%d/schedstat", s->proc, (int)tg->pid,
			   (int)tg->tid);
	struct error *e = NULL;
	char name[128];
	if (len < 0 || (size_t)len >= sizeof(path)) {
		error_set(&e, ENAMETOOLONG, "cannot sample %s: path too long",
			  target_name(tg, name, sizeof(name)));
		goto fail;
	}
	sl->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (sl->fd >= 0) {
		s->n_open++;
		return 0;
	}
	switch (errno) {
	case ENOENT:
	case ESRCH:
		slot_gone(s, sl, o);
		return -1;
	case EMFILE:
	case ENFILE:
		error_set(&e, errno,
			  "cannot sample %zu threads: open file limit %llu (%zu kept by the "
			  "sampler): cannot open %s: %s",
			  t->n, s->nofile, s->n_open, path, strerror(errno));
		goto fail;
	default:
		error_set_errno(&e, errno, "cannot sample %s: cannot open %s",
				target_name(tg, name, sizeof(name)), path);
		goto fail;
	}
fail:
	sl->have_base = false;
	out_state(o, SAMPLE_ERROR);
	tick_fail(t, e);
	return -1;
}

static void slot_derive(struct sampler *s, struct slot *sl, const struct sample_counters *cur,
			int64_t mono_ns, struct sample_vcpu *o);

/* The thread's reading through BPF: 0 and *cur; -1 when it is gone or
 * its process could not be read (o filled). */
static int slot_read_bpf(struct sampler *s, struct slot *sl, const struct sample_target *tg,
			 struct sample_vcpu *o, struct tick *t, struct sample_counters *cur)
{
	if (s->cur_pid != tg->pid) {
		s->cur_pid = tg->pid;
		s->cur_rc = sampler_bpf_read(s->bpf, tg->pid, &s->cur, &s->n_cur);
		s->cur_errno = errno;
	}
	if (s->cur_rc < 0) {
		sl->have_base = false;
		out_state(o, SAMPLE_ERROR);
		struct error *err = NULL;
		char name[128];
		error_set_errno(&err, s->cur_errno, "cannot read the threads of process %d (BPF) "
				"for %s", (int)tg->pid, target_name(tg, name, sizeof(name)));
		tick_fail(t, err);
		return -1;
	}
	for (size_t i = 0; i < s->n_cur; i++) {
		const struct vcpu_iter_rec *r = &s->cur[i];
		if (r->tid != (uint32_t)tg->tid)
			continue;
		/* another thread behind the same tid: a new baseline */
		if (sl->start_ns && sl->start_ns != r->start_ns)
			sl->have_base = false;
		sl->start_ns = r->start_ns;
		cur->cpu_ns = r->cpu_ns;
		cur->run_delay_ns = r->run_delay_ns;
		return 0;
	}
	sl->start_ns = 0;
	sl->have_base = false;
	out_state(o, SAMPLE_GONE);
	return -1;
}

/* One pread and one parse (or a lookup in the process's BPF records), one
 * derive: the hot path. */
static void slot_sample(struct sampler *s, struct slot *sl, const struct sample_target *tg,
			int64_t mono_ns, struct sample_vcpu *o, struct tick *t)
{
	struct sample_counters cur;
	if (s->bpf) {
		if (slot_read_bpf(s, sl, tg, o, t, &cur) < 0)
			return;
		slot_derive(s, sl, &cur, mono_ns, o);
		return;
	}
	if (sl->fd < 0 && slot_open(s, sl, tg, o, t) < 0)
		return;
	char buf[SCHEDSTAT_MAX_LEN + 16];
	ssize_t r = pread(sl->fd, buf, sizeof(buf), 0);
	if (r <= 0) {
		/* A kept fd is bound to its thread: once the thread is reaped,
		 * proc's read finds no task and fails with ESRCH. Nothing read
		 * (or ENOENT, from a fake tree) means the same. */
		int e = r < 0 ? errno : 0;
		if (r == 0 || e == ESRCH || e == ENOENT) {
			slot_gone(s, sl, o);
			return;
		}
		/* anything else: close, retry with a fresh open next tick */
		slot_close(s, sl);
		sl->have_base = false;
		out_state(o, SAMPLE_ERROR);
		struct error *err = NULL;
		char name[128];
		error_set_errno(&err, e, "cannot read the schedstat of %s",
				target_name(tg, name, sizeof(name)));
		tick_fail(t, err);
		return;
	}
	struct error *perr = NULL;
	if (schedstat_parse(buf, (size_t)r, &cur.cpu_ns, &cur.run_delay_ns, &perr) < 0) {
		sl->have_base = false;
		out_state(o, SAMPLE_ERROR);
		char name[128];
		error_wrap(&perr, "%s", target_name(tg, name, sizeof(name)));
		tick_fail(t, perr);
		return;
	}
	slot_derive(s, sl, &cur, mono_ns, o);
}

/* A reading against the slot's baseline: out, and a new baseline. */
static void slot_derive(struct sampler *s, struct slot *sl, const struct sample_counters *cur_,
			int64_t mono_ns, struct sample_vcpu *o)
{
	const struct sample_counters cur = *cur_;
	int64_t dt;
	if (__builtin_sub_overflow(mono_ns, sl->base_mono_ns, &dt))
		dt = -1; /* nonsense times: treated as a clock jump */
	struct sample_delta d;
	sample_derive(sl->have_base ? &sl->base : NULL, &cur, dt, s->interval_ns, &d);
	if (sample_state_rebases(d.state)) {
		sl->base = cur;
		sl->base_mono_ns = mono_ns;
		sl->have_base = true;
	}
	o->valid = d.state == SAMPLE_VALID;
	o->gone = false;
	o->state = d.state;
	o->flags = d.flags;
	o->usage_pct = d.usage_pct;
	o->steal_pct = d.steal_pct;
	o->window_ns = d.window_ns;
	o->cpu_ns = cur.cpu_ns;
	o->run_delay_ns = cur.run_delay_ns;
}

/* --- public ---------------------------------------------------------------- */

int sampler_new(const char *host_root, int64_t interval_ns, struct sampler **out,
		struct error **err)
{
	if (interval_ns <= 0)
		return error_set(err, EINVAL, "invalid sampling interval %lld ns",
				 (long long)interval_ns);
	struct sampler *s = xcalloc(1, sizeof(*s));
	s->proc = path_join(host_root && *host_root ? host_root : "/", "proc", NULL);
	s->interval_ns = interval_ns;
	nofile_raise(s);
	*out = s;
	return 0;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	sampler_bpf_free(s->bpf);
	for (size_t i = 0; i < s->n_slots; i++)
		slot_close(s, &s->slots[i]);
	free(s->slots);
	free(s->index);
	free(s->pending);
	free(s->where);
	free(s->proc);
	free(s);
}

int sampler_set_interval(struct sampler *s, int64_t interval_ns, struct error **err)
{
	if (interval_ns <= 0)
		return error_set(err, EINVAL, "invalid sampling interval %lld ns",
				 (long long)interval_ns);
	s->interval_ns = interval_ns;
	return 0;
}

int sampler_use_bpf(struct sampler *s, struct error **err)
{
	if (s->bpf)
		return 0;
	/* s->proc is HOST_ROOT/proc: its parent is the host root */
	_cleanup_free_ char *root = xstrndup(s->proc, strlen(s->proc) - strlen("/proc"));
	if (!procfs_is_real(root[0] ? root : "/"))
		return error_set(err, ENOTSUP, "%s is not this kernel's proc: BPF reads the "
				 "kernel's own threads", s->proc);
	char *why = NULL;
	s->bpf = sampler_bpf_new(&why);
	if (!s->bpf) {
		error_set(err, ENOTSUP, "%s", why);
		free(why);
		return -1;
	}
	for (size_t i = 0; i < s->n_slots; i++) {
		slot_close(s, &s->slots[i]);
		s->slots[i].have_base = false; /* a fresh baseline through BPF */
	}
	return 0;
}

int sampler_process_threads(const struct sampler *s, pid_t pid, size_t *n, uint64_t *tid_sum)
{
	return s->bpf ? sampler_bpf_threads(s->bpf, pid, n, tid_sum) : -1;
}

const char *sampler_backend(const struct sampler *s)
{
	return s->bpf ? "bpf" : "pread";
}

size_t sampler_size(const struct sampler *s) { return s->n_slots; }
size_t sampler_open_fds(const struct sampler *s)
{
	return s->bpf ? sampler_bpf_links(s->bpf) : s->n_open;
}

int sampler_fd(const struct sampler *s, pid_t pid, pid_t tid)
{
	const struct slot *sl = slot_find(s, pid, tid, SIZE_MAX);
	return sl ? sl->fd : -1;
}

void sampler_set_yield(struct sampler *s, void (*fn)(void *data), void *data, unsigned every_us)
{
	yield_hook_set(&s->yield, fn, data, every_us);
}

/* Every so many targets: the yield hook when its interval has passed; the
 * readings after it are stamped later by the time it took (each slot
 * keeps the time of its own reading, so its window stays right). */
#define YIELD_CHECK_EVERY 256

int sampler_tick(struct sampler *s, const struct sample_target *targets, size_t n,
		 int64_t mono_ns, struct sample_vcpu *out, struct error **err)
{
	yield_hook_start(&s->yield);
	if (n > UINT32_MAX - 1)
		return error_set(err, EINVAL, "cannot sample %zu threads: too many", n);
	if (n && (!targets || !out))
		return error_set(err, EINVAL, "sampler_tick: no targets or no output");
	if (!s->bpf && nofile_check(s, n, err) < 0)
		return -1;
	s->cur_pid = 0; /* no process read yet in this tick */
	if (s->bpf)
		sampler_bpf_begin(s->bpf);
	if (++s->gen == 0)
		s->gen = 1;
	if (s->cap_pending < n) {
		s->cap_pending = n;
		s->pending = xrealloc(s->pending, n * sizeof(*s->pending));
	}
	struct tick t = { .n = n };
	size_t n_pending = 0, n_listed = 0, next = 0;
	bool reorder = false;

	/* 1. threads we already hold: read them. Each pread walks ~10 KB of
	 * kernel state (task, file, seq_file buffer), which evicts our own
	 * lines, so fetch the next target, slot and output while this one
	 * is read: it took a tenth of the floor's time otherwise. */
	for (size_t i = 0; i < n; i++) {
		const struct sample_target *tg = &targets[i];
		if (i + 1 < n) {
			__builtin_prefetch(&targets[i + 1]);
			__builtin_prefetch(&out[i + 1], 1);
			if (next + 1 < s->n_slots)
				__builtin_prefetch(&s->slots[next + 1], 1);
		}
		if (s->yield.fn && i % YIELD_CHECK_EVERY == YIELD_CHECK_EVERY - 1)
			mono_ns += yield_hook_maybe(&s->yield);
		struct slot *sl = slot_find(s, tg->pid, tg->tid, next);
		if (!sl) {
			s->pending[n_pending++] = (uint32_t)i;
			continue;
		}
		if (sl->gen == s->gen) { /* listed twice: the same reading */
			out[i] = out[sl->out_idx];
			continue;
		}
		size_t pos = (size_t)(sl - s->slots);
		if (pos != next)
			reorder = true;
		next = pos + 1;
		sl->gen = s->gen;
		sl->out_idx = (uint32_t)i;
		n_listed++;
		slot_sample(s, sl, tg, mono_ns, &out[i], &t);
	}

	/* 2. threads no longer listed: close their fds before opening more */
	if (n_listed < s->n_slots) {
		slots_sweep(s);
		reorder = true;
	}

	/* 3. new threads: a slot, an fd, a first reading */
	for (size_t p = 0; p < n_pending; p++) {
		size_t i = s->pending[p];
		const struct sample_target *tg = &targets[i];
		if (tg->pid <= 0 || tg->tid <= 0) {
			out_state(&out[i], SAMPLE_ERROR);
			struct error *e = NULL;
			char name[128];
			error_set(&e, EINVAL, "cannot sample %s: invalid pid or tid",
				  target_name(tg, name, sizeof(name)));
			tick_fail(&t, e);
			continue;
		}
		struct slot *sl = slot_find(s, tg->pid, tg->tid, SIZE_MAX);
		if (sl) { /* a new thread listed twice */
			out[i] = out[sl->out_idx];
			continue;
		}
		sl = slot_insert(s, tg->pid, tg->tid);
		sl->gen = s->gen;
		sl->out_idx = (uint32_t)i;
		slot_sample(s, sl, tg, mono_ns, &out[i], &t);
		reorder = true;
	}

	/* 4. next tick, the same list finds every slot at its position */
	if (reorder)
		slots_reorder(s, n);
	if (s->bpf)
		sampler_bpf_sweep(s->bpf); /* processes no longer listed */

	if (!t.n_err)
		return 0;
	if (t.n_err > 1)
		error_set(err, t.first->code, "%s (and %zu more threads)", t.first->msg, t.n_err - 1);
	else if (err && !*err)
		*err = steal_ptr(&t.first);
	error_free(&t.first);
	return -1;
}
