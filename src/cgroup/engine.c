/* engine.c - cgroup_tree_reconcile(): makes vcpud's cgroup v2 subtree match
 * the desired tree that `plan` built. It walks the tree top-down in the
 * order the kernel accepts (FACTS.md "cgroup v2 rules, seen by trying"),
 * reads every file before it writes it and writes only what differs, moves
 * only misplaced threads, and finally removes, leaf first, the groups it
 * made that are no longer wanted. All I/O goes through struct cgroup_ops. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vcpud/cgroup.h"
#include "vcpud/cpulist.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/procfs.h"
#include "vcpud/util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* What the engine knows the kernel holds: key = hash of a group's path
 * and a file (or of what a check covered), val = hash of the value. An
 * entry is trusted until its reconcile `due` (verify_ticks/2 .. 3/2 x
 * verify_ticks reconciles after it was read or written, spread by key so
 * that re-reads do not all fall on one tick), then read again. Entries not
 * looked at in a reconcile are dropped at its end, so the table holds only
 * what the current tree has. Key 0 marks an empty slot. */
struct known_slot {
	uint64_t key;
	uint64_t val;
	uint32_t gen;  /* the reconcile that last looked at it */
	uint32_t due;  /* trusted while the reconcile number is below this */
};

struct known {
	struct known_slot *v;
	size_t cap;    /* a power of two, or 0 */
	size_t n;
};

/* One VM's summary: the key of its entry in `known` and a hash of its
 * spec; steady: left alone as known in the current reconcile. */
struct vm_sum {
	uint64_t key, val;
	bool steady;
};

/* What the engine derived from the last tree it was given (its
 * judgement, the VMs' summaries), kept while the trees it is given carry
 * the same non-zero fingerprint: a steady tick neither judges nor hashes
 * the tree again. */
struct tree_memo {
	uint64_t fingerprint;        /* 0: nothing kept */
	size_t n_tenants;
	struct cgroup_judgement j;
	struct vm_sum **vm_sum;      /* [tenant][vm] */
};

struct cgroup_engine {
	char *mount;                 /* NULL: the tree root's parent */
	char *proc;                  /* SYSROOT/proc */
	const struct cgroup_ops *ops;
	void *ctx;
	bool dry_run;
	struct cgroup_dry_run dry;   /* ops/ctx point here when dry_run */
	uint64_t page_size;
	unsigned verify_ticks;       /* <= 1: no cache */
	uint32_t gen;                /* reconciles so far */
	struct known known;
	struct yield_hook yield;     /* cgroup_engine_set_yield() */
	/* the VMs the last reconcile planned anew (cgroup_engine_replanned) */
	char **replanned;
	size_t n_replanned, cap_replanned;
	struct tree_memo memo;
	unsigned missing_said;       /* MISSING_* files said to be absent */
};

/* Files of newer kernels: absent on older ones, which is said once */
enum { MISSING_IDLE = 1u << 0, MISSING_BURST = 1u << 1 };

static void memo_clear(struct tree_memo *m)
{
	for (size_t i = 0; m->vm_sum && i < m->n_tenants; i++)
		free(m->vm_sum[i]);
	free(m->vm_sum);
	cgroup_judgement_free(&m->j);
	memset(m, 0, sizeof(*m));
}

int cgroup_engine_new(const struct cgroup_engine_config *cfg, struct cgroup_engine **out,
		      struct error **err)
{
	if (cfg->cgroup_mount && cfg->cgroup_mount[0] != '/')
		return error_set(err, EINVAL, "cgroup mount '%s' is not an absolute path",
				 cfg->cgroup_mount);
	struct cgroup_engine *e = xcalloc(1, sizeof(*e));
	e->mount = cfg->cgroup_mount ? path_join(cfg->cgroup_mount, NULL) : NULL;
	e->proc = path_join(cfg->sysroot ? cfg->sysroot : "/", "proc", NULL);
	e->ops = cfg->ops ? cfg->ops : &cgroup_ops_real;
	e->ctx = cfg->ops ? cfg->ops_ctx : NULL;
	e->dry_run = cfg->dry_run;
	if (e->dry_run) {
		e->dry.inner = e->ops;
		e->dry.inner_ctx = e->ctx;
		e->dry.proc = e->proc;
		e->ops = &cgroup_ops_dry_run;
		e->ctx = &e->dry;
	}
	long ps = sysconf(_SC_PAGESIZE);
	e->page_size = ps > 0 ? (uint64_t)ps : 4096;
	e->verify_ticks = cfg->verify_ticks ? cfg->verify_ticks : CGROUP_VERIFY_TICKS_DEFAULT;
	/* the overlay must hold what the engine trusts until it reads it
	 * again: past the latest re-read (3/2 x verify_ticks + 1) */
	if (e->dry_run && e->verify_ticks > 1)
		e->dry.idle_passes = 2 * e->verify_ticks + 2 > CGROUP_DRY_RUN_IDLE_PASSES
			? 2 * e->verify_ticks + 2 : CGROUP_DRY_RUN_IDLE_PASSES;
	*out = e;
	return 0;
}

static void replanned_clear(struct cgroup_engine *e)
{
	for (size_t i = 0; i < e->n_replanned; i++)
		free(e->replanned[i]);
	e->n_replanned = 0;
}

static void replanned_add(struct cgroup_engine *e, const char *vm)
{
	if (e->n_replanned == e->cap_replanned) {
		e->cap_replanned = e->cap_replanned ? 2 * e->cap_replanned : 16;
		e->replanned = xrealloc(e->replanned, e->cap_replanned * sizeof(*e->replanned));
	}
	e->replanned[e->n_replanned++] = xstrdup(vm);
}

void cgroup_engine_free(struct cgroup_engine *e)
{
	if (!e)
		return;
	cgroup_dry_run_clear(&e->dry);
	replanned_clear(e);
	free(e->replanned);
	memo_clear(&e->memo);
	free(e->known.v);
	free(e->mount);
	free(e->proc);
	free(e);
}

const char *const *cgroup_engine_replanned(const struct cgroup_engine *e, size_t *n)
{
	*n = e->n_replanned;
	return (const char *const *)e->replanned;
}

size_t cgroup_engine_overlay_entries(const struct cgroup_engine *e)
{
	return e->dry_run ? cgroup_dry_run_entries(&e->dry) : 0;
}

void cgroup_engine_set_yield(struct cgroup_engine *e, void (*fn)(void *data), void *data,
			     unsigned every_us)
{
	yield_hook_set(&e->yield, fn, data, every_us);
}

void cgroup_engine_forget(struct cgroup_engine *e)
{
	free(e->known.v);
	e->known = (struct known){ 0 };
}

size_t cgroup_engine_known(const struct cgroup_engine *e)
{
	return e->known.n;
}

/* --- what the engine knows ---------------------------------------------------- */

static struct known_slot *known_find(struct known *k, uint64_t key)
{
	if (!k->cap)
		return NULL;
	for (size_t i = key & (k->cap - 1);; i = (i + 1) & (k->cap - 1)) {
		if (k->v[i].key == key)
			return &k->v[i];
		if (k->v[i].key == 0)
			return NULL;
	}
}

/* Grows past 3/4 full: the table holds some 30 entries per VM (each group's
 * directory and files, each VM's placement), 24 bytes a slot, so half full
 * would cost 3 MiB at 10,000 vCPU threads; linear probing at 3/4 still
 * finds a key in about 2.5 probes. */
static void known_insert(struct known *k, const struct known_slot *s)
{
	if ((k->n + 1) * 4 > k->cap * 3) {
		struct known old = *k;
		k->cap = old.cap ? old.cap * 2 : 1024;
		k->v = xcalloc(k->cap, sizeof(*k->v));
		k->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i].key)
				known_insert(k, &old.v[i]);
		free(old.v);
	}
	size_t i = s->key & (k->cap - 1);
	while (k->v[i].key && k->v[i].key != s->key)
		i = (i + 1) & (k->cap - 1);
	if (!k->v[i].key)
		k->n++;
	k->v[i] = *s;
}

/* Keep only the entries a reconcile since `since` looked at. */
static void known_sweep(struct known *k, uint32_t since)
{
	size_t live = 0;
	for (size_t i = 0; i < k->cap; i++)
		live += k->v[i].key && k->v[i].gen >= since;
	if (live == k->n)
		return;
	struct known old = *k;
	*k = (struct known){ 0 };
	for (size_t i = 0; i < old.cap; i++)
		if (old.v[i].key && old.v[i].gen >= since)
			known_insert(k, &old.v[i]);
	free(old.v);
}

static uint64_t key_nonzero(uint64_t h)
{
	return h ? h : 1;
}

/* The key of FILE of the group at ABS ("" for the directory itself). */
static uint64_t file_key(const char *abs, const char *file)
{
	return key_nonzero(hash_str(hash_str(HASH_SEED, abs), file));
}

/* --- one reconcile --------------------------------------------------------- */

/* A cgroup the engine works on, under three names. */
struct grp {
	char *abs;   /* directory */
	char *name;  /* for messages: relative to the tree root ("tenant-a/vm-7"),
			or the absolute path for the root and its ancestors */
	char *cg;    /* as /proc/PID/cgroup shows it ("/vcpud.slice/tenant-a") */
	bool broken; /* creating or typing it failed: skip what lies below */
};

static void grp_clear(struct grp *g)
{
	free(g->abs);
	free(g->name);
	free(g->cg);
	*g = (struct grp){ 0 };
}

static void grp_child(struct grp *child, const struct grp *parent, const char *base, bool top)
{
	child->abs = path_join(parent->abs, base, NULL);
	child->name = top ? xstrdup(base) : xasprintf("%s/%s", parent->name, base);
	child->cg = xasprintf("%s/%s", strcmp(parent->cg, "/") == 0 ? "" : parent->cg, base);
	child->broken = false;
}

struct rc {
	struct cgroup_engine *e;
	uint32_t gen;
	const struct cgroup_tree *t;
	struct cgroup_reconcile_stats st;
	struct error *first;
	const struct cgroup_judgement *j; /* e->memo's */
	struct cgroup_faults *faults; /* NULL: log failures at error instead */
	/* what is being reconciled, for attributing a failure (NULL: the
	 * root, its ancestors or the removal of stale groups) */
	const char *tenant, *vm;
	/* per VM (tenant i, VM j): what its spec hashes to (vm_sum), and
	 * whether the VM was left alone as known (steady) this time */
	struct vm_sum **vm_sum;
	bool verify; /* a VM's own re-read: trust no known value */
};

/* One fault per tenant/VM: the first. vm NULL: the tenant's own; "": a VM
 * whose name cannot be shown (never merged with another). */
static void fault_add(struct rc *rc, const char *tenant, const char *vm, int code,
		      const char *msg, bool skipped)
{
	struct cgroup_faults *f = rc->faults;
	if (!f)
		return;
	for (size_t i = 0; i < f->n && (!vm || vm[0]); i++)
		if (strcmp(f->v[i].tenant, tenant) == 0 && f->v[i].of_tenant == !vm &&
		    strcmp(f->v[i].vm, vm ? vm : "") == 0)
			return;
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	struct cgroup_fault *n = &f->v[f->n++];
	memset(n, 0, sizeof(*n));
	snprintf(n->tenant, sizeof(n->tenant), "%s", tenant);
	snprintf(n->vm, sizeof(n->vm), "%s", vm ? vm : "");
	n->of_tenant = !vm;
	n->code = code;
	n->msg = xstrdup(msg);
	n->skipped = skipped;
}

/* Count, log and keep the first of the failures; attribute it to the VM
 * or tenant being reconciled. */
static int rc_fail(struct rc *rc, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int rc_fail(struct rc *rc, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		abort();
	va_end(ap);
	rc->st.errors++;
	if (rc->faults && rc->tenant) {
		log_debug("cgroup: %s", m);
		fault_add(rc, rc->tenant, rc->vm, code, m, false);
	} else {
		log_error("cgroup: %s", m);
	}
	if (!rc->first)
		error_set(&rc->first, code, "%s", m);
	return -1;
}

/* Whether the kernel is known to hold `val` under `key` (and the entry is
 * not due for a re-read); marks the entry as looked at either way. */
/* The entry when the kernel is known to hold `val` under `key`, due or
 * not (NULL: unknown, or another value); marks it as looked at either way. */
static struct known_slot *known_same(struct rc *rc, uint64_t key, uint64_t val)
{
	struct known_slot *s = known_find(&rc->e->known, key);
	if (!s)
		return NULL;
	s->gen = rc->gen;
	return s->val == val ? s : NULL;
}

static bool known_fresh(struct rc *rc, uint64_t key, uint64_t val)
{
	const struct known_slot *s = known_same(rc, key, val);
	return s && rc->gen < s->due && !rc->verify;
}

/* Remember that the kernel holds `val` under `key` (just read or written). */
static void known_set(struct rc *rc, uint64_t key, uint64_t val)
{
	unsigned v = rc->e->verify_ticks;
	if (v <= 1)
		return;
	struct known_slot s = { .key = key, .val = val, .gen = rc->gen,
				.due = recheck_due(rc->gen, v, key) };
	known_insert(&rc->e->known, &s);
}

static bool file_fresh(struct rc *rc, const struct grp *g, const char *file, const char *value)
{
	return known_fresh(rc, file_key(g->abs, file), hash_str(HASH_SEED, value));
}

static void file_known(struct rc *rc, const struct grp *g, const char *file, const char *value)
{
	known_set(rc, file_key(g->abs, file), hash_str(HASH_SEED, value));
}

/* The errno of a failed backend call (EIO if a backend forgot to say). */
static int op_code(const struct error *e)
{
	int c = error_code(e);
	return c ? c : EIO;
}

static bool gone_errno(int code)
{
	return code == ESRCH || code == ENOENT;
}

/* Read FILE of g. 0 with *out; 1 when it does not exist in dry-run (the
 * group was only "created"), which the callers treat as "differs"; -1 on
 * failure (counted). */
static int g_read(struct rc *rc, const struct grp *g, const char *file, char **out)
{
	_cleanup_free_ char *path = path_join(g->abs, file, NULL);
	_cleanup_error_ struct error *e = NULL;
	rc->st.reads++;
	if (rc->e->ops->read_file(rc->e->ctx, path, out, &e) == 0)
		return 0;
	if (rc->e->dry_run && op_code(e) == ENOENT)
		return 1;
	return rc_fail(rc, op_code(e), "cannot read %s of %s: %s", file, g->name, strerror(op_code(e)));
}

/* Write VALUE to FILE of g; 0 or the errno (not recorded). */
static int g_write_raw(struct rc *rc, const struct grp *g, const char *file, const char *value)
{
	_cleanup_free_ char *path = path_join(g->abs, file, NULL);
	_cleanup_error_ struct error *e = NULL;
	rc->st.writes++;
	log_debug("cgroup: write '%s' to %s", value, path);
	if (rc->e->ops->write_file(rc->e->ctx, path, value, &e) == 0)
		return 0;
	return op_code(e);
}

static int g_write(struct rc *rc, const struct grp *g, const char *file, const char *value,
		   const char *was)
{
	int code = g_write_raw(rc, g, file, value);
	if (code)
		return rc_fail(rc, code, "cannot write %s of %s: %s", file, g->name, strerror(code));
	if (!rc->e->dry_run)
		log_info("cgroup: %s %s = %s (was %s)", g->name, file, value, was ? was : "unset");
	return 0;
}

static char *chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	return s;
}

/* --- structure -------------------------------------------------------------- */

/* A VM's re-read (rc->verify) takes its groups' existence and type as
 * known (on a real tree): a group removed behind vcpud's back fails the reads of its knobs
 * that follow (and then everything is read again), and "threaded" is for
 * good (the kernel never turns a threaded group back into a domain). That
 * is two reads a group fewer, half of a re-read. */
static bool structure_fresh(struct rc *rc, const struct grp *g, const char *file,
			    const char *value)
{
	/* (a dry run looks anyway: its overlay keeps a group only while the
	 * engine looks at it within the overlay's horizon) */
	if (!rc->verify || rc->e->dry_run)
		return file_fresh(rc, g, file, value);
	return known_same(rc, file_key(g->abs, file), hash_str(HASH_SEED, value)) != NULL;
}

static int ensure_dir(struct rc *rc, struct grp *g)
{
	if (structure_fresh(rc, g, "", "dir"))
		return 0;
	bool is_dir = false;
	_cleanup_error_ struct error *e = NULL;
	rc->st.reads++;
	if (rc->e->ops->is_dir(rc->e->ctx, g->abs, &is_dir, &e) < 0) {
		g->broken = true;
		return rc_fail(rc, op_code(e), "cannot look up %s: %s", g->name, strerror(op_code(e)));
	}
	if (is_dir) {
		file_known(rc, g, "", "dir");
		return 0;
	}
	rc->st.mkdirs++;
	if (rc->e->ops->mkdir(rc->e->ctx, g->abs, &e) < 0) {
		g->broken = true;
		return rc_fail(rc, op_code(e), "cannot create %s: %s", g->name, strerror(op_code(e)));
	}
	file_known(rc, g, "", "dir");
	if (!rc->e->dry_run)
		log_info("cgroup: created %s", g->name);
	return 0;
}

static void mask_format(char *buf, size_t sz, unsigned mask, const char *sign)
{
	buf[0] = '\0';
	size_t n = 0;
	for (int c = 0; c < CGROUP_CTRL_LAST; c++)
		if (mask & CGROUP_CTRL_BIT(c))
			n += (size_t)snprintf(buf + n, sz - n, "%s%s%s", n ? " " : "", sign,
					      cgroup_ctrl_name(c));
}

/* Enable the controllers of `want` that g's subtree_control lacks. */
static int ensure_subtree_(struct rc *rc, const struct grp *g, unsigned want)
{
	_cleanup_free_ char *buf = NULL, *cbuf = NULL;
	_cleanup_error_ struct error *e = NULL;
	unsigned have = 0, avail = 0;
	char wanted[128];
	mask_format(wanted, sizeof(wanted), want, "+");
	if (file_fresh(rc, g, "cgroup.subtree_control", wanted))
		return 0;
	int r = g_read(rc, g, "cgroup.subtree_control", &buf);
	if (r < 0)
		return -1;
	if (r == 0 && cgroup_controllers_parse(buf, &have, &e) < 0)
		return rc_fail(rc, op_code(e), "cannot parse cgroup.subtree_control of %s: %s",
			       g->name, e->msg);
	unsigned missing = want & ~have;
	if (!missing) {
		file_known(rc, g, "cgroup.subtree_control", wanted);
		return 0;
	}

	/* "+memory" for a controller the parent does not pass down is ENOENT
	 * from the kernel: say which controller and why instead. */
	r = g_read(rc, g, "cgroup.controllers", &cbuf);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (cgroup_controllers_parse(cbuf, &avail, &e) < 0)
			return rc_fail(rc, op_code(e), "cannot parse cgroup.controllers of %s: %s",
				       g->name, e->msg);
		if (missing & ~avail) {
			char names[128];
			mask_format(names, sizeof(names), missing & ~avail, "");
			if (!rc->e->dry_run)
				return rc_fail(rc, ENOENT,
					       "cannot enable %s in %s: not in its cgroup.controllers "
					       "('%s'); its parent does not pass it down",
					       names, g->name, chomp(cbuf));
			log_warn("cgroup: %s offers no %s (cgroup.controllers: '%s')", g->name,
				 names, chomp(cbuf));
		}
	}
	char value[128], was[128];
	mask_format(value, sizeof(value), missing, "+");
	mask_format(was, sizeof(was), have, "");
	if (g_write(rc, g, "cgroup.subtree_control", value, was[0] ? was : "empty") < 0)
		return -1;
	file_known(rc, g, "cgroup.subtree_control", wanted);
	return 0;
}

static int ensure_subtree(struct rc *rc, struct grp *g, unsigned want)
{
	if (ensure_subtree_(rc, g, want) < 0) {
		g->broken = true;
		return -1;
	}
	return 0;
}

/* --- knobs ------------------------------------------------------------------ */

/* Write VALUE to FILE of g unless the kernel is known to hold it, or reads
 * as holding it (same(cur) says so; cur is the text read, chomped). */
static int knob_apply(struct rc *rc, const struct grp *g, const char *file, const char *value,
		      bool (*same)(struct rc *rc, const struct grp *g, char *cur, const void *want),
		      const void *want)
{
	if (file_fresh(rc, g, file, value))
		return 0;
	_cleanup_free_ char *buf = NULL;
	int r = g_read(rc, g, file, &buf);
	if (r < 0)
		return -1;
	if (r == 0) {
		chomp(buf);
		if (same(rc, g, buf, want)) {
			file_known(rc, g, file, value);
			return 0;
		}
	}
	/* an empty list clears a group's own cpuset (it then inherits);
	 * write a newline as `echo` would rather than a zero-length write() */
	if (g_write(rc, g, file, value[0] ? value : "\n", r == 0 ? buf : NULL) < 0)
		return -1;
	file_known(rc, g, file, value);
	return 0;
}

static bool text_same(struct rc *rc, const struct grp *g, char *cur, const void *want)
{
	(void)rc, (void)g;
	return strcmp(cur, want) == 0;
}

/* "threaded" is one-way; a sibling of a threaded group reads "domain
 * invalid" until it is made threaded too. */
static int ensure_threaded(struct rc *rc, struct grp *g)
{
	if (structure_fresh(rc, g, "cgroup.type", "threaded"))
		return 0;
	if (knob_apply(rc, g, "cgroup.type", "threaded", text_same, "threaded") < 0) {
		g->broken = true;
		return -1;
	}
	return 0;
}

static bool weight_same(struct rc *rc, const struct grp *g, char *cur, const void *want)
{
	(void)rc;
	uint64_t v;
	_cleanup_error_ struct error *e = NULL;
	if (parse_u64(cur, 0, UINT64_MAX, &v, &e) == 0)
		return v == *(const uint32_t *)want;
	log_warn("cgroup: %s cpu.weight reads '%s': %s", g->name, cur, e->msg);
	return false;
}

static int knob_weight(struct rc *rc, const struct grp *g, uint32_t want)
{
	if (want == 0)
		return 0;
	char value[16];
	snprintf(value, sizeof(value), "%" PRIu32, want);
	return knob_apply(rc, g, "cpu.weight", value, weight_same, &want);
}

static bool cpu_max_same(struct rc *rc, const struct grp *g, char *cur, const void *want_)
{
	(void)rc;
	const struct cgroup_cpu_max *want = want_;
	uint64_t period = want->period_us ? want->period_us : CGROUP_PERIOD_DEFAULT_US;
	struct cgroup_cpu_max c;
	_cleanup_error_ struct error *e = NULL;
	if (cgroup_cpu_max_parse(cur, &c, &e) < 0) {
		log_warn("cgroup: %s: %s", g->name, e->msg);
		return false;
	}
	return c.period_us == period && c.unlimited == want->unlimited &&
	       (want->unlimited || c.quota_us == want->quota_us);
}

/* A file the kernel may not have: its text in *out (chomped) and 0; 1 when
 * it is not there (said once per engine, `what` telling what is lost, and
 * not looked for again); -1 on another error (recorded). */
static int g_read_optional(struct rc *rc, const struct grp *g, const char *file, unsigned bit,
			   const char *what, char **out)
{
	if (!rc->e->dry_run && (rc->e->missing_said & bit))
		return 1; /* known absent: a kernel does not grow files */
	_cleanup_free_ char *path = path_join(g->abs, file, NULL);
	_cleanup_error_ struct error *e = NULL;
	rc->st.reads++;
	if (rc->e->ops->read_file(rc->e->ctx, path, out, &e) == 0) {
		chomp(*out);
		return 0;
	}
	if (op_code(e) != ENOENT)
		return rc_fail(rc, op_code(e), "cannot read %s of %s: %s", file, g->name,
			       strerror(op_code(e)));
	if (!rc->e->dry_run && !(rc->e->missing_said & bit)) {
		rc->e->missing_said |= bit;
		log_warn("cgroup: this kernel has no %s (%s): %s", file, g->name, what);
	}
	return 1;
}

/* cpu.idle; whether the group is idle now (its cpu.weight must then be left
 * alone: the kernel refuses it). */
static bool knob_idle(struct rc *rc, const struct grp *g, enum cgroup_idle want)
{
	if (want == CGROUP_IDLE_LEAVE)
		return false;
	const char *value = want == CGROUP_IDLE_ON ? "1" : "0";
	if (file_fresh(rc, g, "cpu.idle", value))
		return want == CGROUP_IDLE_ON;
	_cleanup_free_ char *cur = NULL;
	int r = g_read_optional(rc, g, "cpu.idle", MISSING_IDLE,
				"best-effort tenants are not made SCHED_IDLE (Linux 5.15+)", &cur);
	if (r < 0 || (r == 1 && !rc->e->dry_run))
		return false;
	if (r == 1 || strcmp(cur, value) != 0) {
		if (g_write(rc, g, "cpu.idle", value, cur) < 0)
			return cur && strcmp(cur, "1") == 0;
	}
	file_known(rc, g, "cpu.idle", value);
	return want == CGROUP_IDLE_ON;
}

static int knob_cpu_max(struct rc *rc, const struct grp *g, const struct cgroup_cpu_max *want);

/* cpu.max with its cpu.max.burst: the kernel refuses a burst above the
 * quota, in either order of writes, so a burst in force above the new
 * quota is lowered first. */
static void knob_cpu_max_burst(struct rc *rc, const struct grp *g,
			       const struct cgroup_cpu_max *max, bool burst_set, uint64_t burst)
{
	char want[24];
	snprintf(want, sizeof(want), "%" PRIu64, burst);
	if (!burst_set || file_fresh(rc, g, "cpu.max.burst", want)) {
		knob_cpu_max(rc, g, max);
		return;
	}
	_cleanup_free_ char *cur = NULL;
	int r = g_read_optional(rc, g, "cpu.max.burst", MISSING_BURST,
				"caps have no burst allowance (Linux 5.14+)", &cur);
	uint64_t now = 0;
	_cleanup_error_ struct error *e = NULL;
	if (r < 0 || (r == 1 && !rc->e->dry_run) ||
	    (r == 0 && parse_u64(cur, 0, UINT64_MAX, &now, &e) < 0)) {
		if (e)
			log_warn("cgroup: %s cpu.max.burst reads '%s': %s", g->name, cur, e->msg);
		knob_cpu_max(rc, g, max);
		return;
	}
	if (r == 0 && now > burst && max->set && !max->unlimited && now > max->quota_us) {
		if (g_write(rc, g, "cpu.max.burst", "0", cur) < 0)
			return;
		now = 0;
	}
	if (knob_cpu_max(rc, g, max) < 0)
		return;
	if ((r == 1 || now != burst) && g_write(rc, g, "cpu.max.burst", want, NULL) < 0)
		return;
	file_known(rc, g, "cpu.max.burst", want);
}

static int knob_cpu_max(struct rc *rc, const struct grp *g, const struct cgroup_cpu_max *want)
{
	if (!want->set)
		return 0;
	uint64_t period = want->period_us ? want->period_us : CGROUP_PERIOD_DEFAULT_US;
	char value[64];
	if (want->unlimited)
		snprintf(value, sizeof(value), "max %" PRIu64, period);
	else
		snprintf(value, sizeof(value), "%" PRIu64 " %" PRIu64, want->quota_us, period);
	return knob_apply(rc, g, "cpu.max", value, cpu_max_same, want);
}

static bool mem_max_same(struct rc *rc, const struct grp *g, char *cur, const void *want_)
{
	const struct cgroup_mem_max *want = want_;
	uint64_t bytes = want->bytes / rc->e->page_size * rc->e->page_size;
	struct cgroup_mem_max c;
	_cleanup_error_ struct error *e = NULL;
	if (cgroup_mem_max_parse(cur, &c, &e) < 0) {
		log_warn("cgroup: %s: %s", g->name, e->msg);
		return false;
	}
	return c.unlimited == want->unlimited && (want->unlimited || c.bytes == bytes);
}

static int knob_mem_max(struct rc *rc, const struct grp *g, const struct cgroup_mem_max *want)
{
	if (!want->set)
		return 0;
	/* the kernel keeps whole pages: compare and write what it will keep */
	uint64_t bytes = want->bytes / rc->e->page_size * rc->e->page_size;
	char value[32];
	if (want->unlimited)
		snprintf(value, sizeof(value), "max");
	else
		snprintf(value, sizeof(value), "%" PRIu64, bytes);
	return knob_apply(rc, g, "memory.max", value, mem_max_same, want);
}

struct cpuset_want {
	const char *file;
	struct cpuset set;
};

static bool cpuset_same(struct rc *rc, const struct grp *g, char *cur, const void *want_)
{
	(void)rc;
	const struct cpuset_want *want = want_;
	struct cpuset c;
	_cleanup_error_ struct error *e = NULL;
	if (cpulist_parse(cur, &c, &e) < 0) {
		log_warn("cgroup: %s %s: %s", g->name, want->file, e->msg);
		return false;
	}
	return cpuset_equal(&c, &want->set);
}

/* cpuset.cpus / cpuset.mems: compare as sets, write the canonical list. */
static int knob_cpuset(struct rc *rc, const struct grp *g, const char *file, const char *want)
{
	if (!want)
		return 0;
	/* steady: known under the text asked for, no parse or format */
	uint64_t key = file_key(g->abs, file), asked = hash_str(hash_str(HASH_SEED, "asked"), want);
	if (known_fresh(rc, key, asked))
		return 0;
	struct cpuset_want w = { .file = file };
	_cleanup_error_ struct error *e = NULL;
	if (cpulist_parse(want, &w.set, &e) < 0) /* cgroup_tree_judge() took it */
		return rc_fail(rc, op_code(e), "%s of %s: %s", file, g->name, e->msg);
	_cleanup_free_ char *value = cpulist_format(&w.set);
	if (knob_apply(rc, g, file, value, cpuset_same, &w) < 0)
		return -1;
	known_set(rc, key, asked);
	return 0;
}

/* --- processes and threads ------------------------------------------------- */

/* Where /proc says a task is: 0 and *cg; 1 when the task is gone; -1. */
static int proc_cgroup(struct rc *rc, const char *path, char **cg)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_error_ struct error *e = NULL;
	rc->st.reads++;
	if (rc->e->ops->read_file(rc->e->ctx, path, &buf, &e) < 0) {
		if (gone_errno(op_code(e)))
			return 1;
		return rc_fail(rc, op_code(e), "cannot read %s: %s", path, strerror(op_code(e)));
	}
	if (cgroup_proc_cgroup_parse(buf, cg, &e) < 0)
		return rc_fail(rc, op_code(e), "%s: %s", path, e->msg);
	return 0;
}

/* Move thread `tid` of process `pid` into `to` unless it is there. */
static void place_thread(struct rc *rc, pid_t pid, pid_t tid, const struct grp *to)
{
	char spid[16], stid[16];
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	snprintf(stid, sizeof(stid), "%d", (int)tid);
	_cleanup_free_ char *path = path_join(rc->e->proc, spid, "task", stid, "cgroup", NULL);
	_cleanup_free_ char *cg = NULL;
	int r = proc_cgroup(rc, path, &cg);
	if (r != 0) {
		if (r > 0)
			rc->st.vanished++;
		return;
	}
	if (strcmp(cg, to->cg) == 0)
		return;
	int code = g_write_raw(rc, to, "cgroup.threads", stid);
	if (code == 0) {
		rc->st.moves++;
		if (!rc->e->dry_run)
			log_info("cgroup: moved thread %s of %s from %s", stid, spid, cg);
	} else if (gone_errno(code)) {
		rc->st.vanished++;
		log_debug("cgroup: thread %s of %s vanished before its move", stid, spid);
	} else {
		rc_fail(rc, code, "cannot move thread %s of process %s to %s: %s", stid, spid,
			to->name, strerror(code));
	}
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* Whether process `spid` is still the one the spec names (its start time;
 * 0 in the spec: not known, not checked). A PID that a new process took
 * over after the VM's exited is never moved: counted as vanished (the
 * registry marks the VM gone at its next look). */
static bool same_process(struct rc *rc, const char *spid, uint64_t start_time,
			 const struct grp *vm)
{
	if (!start_time)
		return true;
	_cleanup_free_ char *path = path_join(rc->e->proc, spid, "stat", NULL);
	_cleanup_free_ char *buf = NULL;
	_cleanup_error_ struct error *e = NULL;
	struct proc_stat ps;
	rc->st.reads++;
	if (rc->e->ops->read_file(rc->e->ctx, path, &buf, &e) < 0) {
		if (gone_errno(op_code(e))) {
			rc->st.vanished++;
			return false;
		}
		rc_fail(rc, op_code(e), "cannot read %s: %s", path, strerror(op_code(e)));
		return false;
	}
	if (proc_stat_parse(buf, &ps, &e) < 0) {
		rc_fail(rc, EINVAL, "%s: %s", path, e->msg);
		return false;
	}
	if (ps.start_time == start_time)
		return true;
	rc->st.vanished++;
	log_info("cgroup: PID %s is no longer %s's process (it started at tick %" PRIu64
		 ", the VM's at %" PRIu64 "): not moving it", spid, vm->name, ps.start_time,
		 start_time);
	return false;
}

/* The key of "this process, with these vCPU threads, is placed in vm". */
/* The key of a VM's placement (one per VM directory) and what it holds:
 * the process and the vCPU threads it was placed with. Keyed by the
 * directory, not by the content: a placement that comes back to an
 * earlier one must not find that one's entry still trusted. */
static uint64_t place_key(const struct grp *vm)
{
	return key_nonzero(hash_str(hash_str(HASH_SEED, "place"), vm->abs));
}

static uint64_t place_val(const struct cgroup_vm_spec *spec)
{
	uint64_t h = hash_u64(hash_u64(HASH_SEED, (uint64_t)spec->pid), spec->start_time);
	for (size_t k = 0; k < spec->n_vcpus; k++)
		h = hash_u64(hash_u64(h, spec->vcpus[k].index), (uint64_t)spec->vcpus[k].tid);
	return key_nonzero(h);
}

static void vm_place_(struct rc *rc, const struct grp *vm, const struct grp *emu,
		      const struct grp *vcpus, const struct cgroup_vm_spec *spec);

/* Place the VM's process and threads, unless they are known to be placed:
 * a steady VM costs no read at all until its entry is due (a thread the
 * VMM starts meanwhile lands in the group of the thread that made it, and
 * is put right at that re-read; a new or changed vCPU thread changes the
 * key and is placed at once). */
static void vm_place(struct rc *rc, const struct grp *vm, const struct grp *emu,
		     const struct grp *vcpus, const struct cgroup_vm_spec *spec)
{
	if (spec->pid <= 0)
		return;
	uint64_t key = place_key(vm), val = place_val(spec);
	if (known_fresh(rc, key, val))
		return;
	struct cgroup_reconcile_stats before = rc->st;
	vm_place_(rc, vm, emu, vcpus, spec);
	if (rc->st.errors == before.errors && rc->st.vanished == before.vanished)
		known_set(rc, key, val);
}

/* The whole process into the VM (the kernel moves all its threads when a
 * PID goes into a domain's cgroup.procs), then each thread where it
 * belongs: vCPU threads to vcpuN, every other thread to emulator. */
static void vm_place_(struct rc *rc, const struct grp *vm, const struct grp *emu,
		      const struct grp *vcpus, const struct cgroup_vm_spec *spec)
{
	char spid[16];
	snprintf(spid, sizeof(spid), "%d", (int)spec->pid);
	_cleanup_free_ char *path = path_join(rc->e->proc, spid, "cgroup", NULL);
	_cleanup_free_ char *cg = NULL;
	int r = proc_cgroup(rc, path, &cg);
	if (r != 0) {
		if (r > 0) {
			rc->st.vanished++;
			log_debug("cgroup: process %s of %s is gone", spid, vm->name);
		}
		return;
	}
	if (!path_within(cg, vm->cg)) {
		if (!same_process(rc, spid, spec->start_time, vm))
			return;
		int code = g_write_raw(rc, vm, "cgroup.procs", spid);
		if (gone_errno(code)) {
			rc->st.vanished++;
			return;
		}
		if (code) {
			rc_fail(rc, code, "cannot move process %s to %s: %s", spid, vm->name,
				strerror(code));
			return;
		}
		rc->st.moves++;
		if (!rc->e->dry_run)
			log_info("cgroup: moved process %s from %s to %s", spid, cg, vm->name);
	}

	_cleanup_free_ char *taskdir = path_join(rc->e->proc, spid, "task", NULL);
	char **names = NULL;
	size_t n = 0;
	_cleanup_error_ struct error *e = NULL;
	rc->st.reads++;
	if (rc->e->ops->list_dir(rc->e->ctx, taskdir, &names, &n, &e) < 0) {
		if (gone_errno(op_code(e)))
			rc->st.vanished++;
		else
			rc_fail(rc, op_code(e), "cannot list %s: %s", taskdir, strerror(op_code(e)));
		return;
	}
	_cleanup_free_ pid_t *tids = xcalloc(n ? n : 1, sizeof(*tids));
	size_t nt = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		_cleanup_error_ struct error *pe = NULL;
		if (parse_u64(names[i], 1, INT32_MAX, &v, &pe) == 0)
			tids[nt++] = (pid_t)v;
	}
	cgroup_names_free(names, n);
	qsort(tids, nt, sizeof(*tids), cmp_pid);

	for (size_t k = 0; k < spec->n_vcpus; k++) {
		pid_t tid = spec->vcpus[k].tid;
		if (tid <= 0)
			continue;
		/* only a thread of this process: a stale TID may be reused by another */
		if (!bsearch(&tid, tids, nt, sizeof(*tids), cmp_pid)) {
			rc->st.vanished++;
			log_debug("cgroup: vCPU %u thread %d of %s is gone", spec->vcpus[k].index,
				  (int)tid, vm->name);
			continue;
		}
		place_thread(rc, spec->pid, tid, &vcpus[k]);
	}
	for (size_t i = 0; i < nt; i++) {
		bool is_vcpu = false;
		for (size_t k = 0; k < spec->n_vcpus && !is_vcpu; k++)
			is_vcpu = spec->vcpus[k].tid == tids[i];
		if (!is_vcpu)
			place_thread(rc, spec->pid, tids[i], emu);
	}
}

/* --- the tree, top-down ---------------------------------------------------- */

static void reconcile_vm(struct rc *rc, const struct grp *tenant, const struct cgroup_vm_spec *spec)
{
	if (!name_valid(spec->name)) { /* cgroup_tree_validate() took it; never trust */
		rc_fail(rc, EINVAL, "refusing VM name '%s'", spec->name ? spec->name : "");
		return;
	}
	_cleanup_free_ char *base = xasprintf("vm-%s", spec->name);
	struct grp vm = { 0 }, emu = { 0 };
	struct grp *vcpus = xcalloc(spec->n_vcpus ? spec->n_vcpus : 1, sizeof(*vcpus));
	grp_child(&vm, tenant, base, false);
	grp_child(&emu, &vm, "emulator", false);
	for (size_t k = 0; k < spec->n_vcpus; k++) {
		char vb[24];
		snprintf(vb, sizeof(vb), "vcpu%u", spec->vcpus[k].index);
		grp_child(&vcpus[k], &vm, vb, false);
	}

	if (ensure_dir(rc, &vm) < 0)
		goto out;
	/* the VM's cpuset first: it must span its children's before they ask */
	knob_cpuset(rc, &vm, "cpuset.cpus", spec->cpus);
	knob_cpuset(rc, &vm, "cpuset.mems", spec->mems);
	knob_mem_max(rc, &vm, &spec->memory_max);
	knob_weight(rc, &vm, spec->weight);
	knob_cpu_max_burst(rc, &vm, &spec->cpu_max, spec->burst_set, spec->burst_us);

	/* children threaded before the VM enables controllers for them */
	bool ok = true;
	if (ensure_dir(rc, &emu) < 0 || ensure_threaded(rc, &emu) < 0)
		ok = false;
	for (size_t k = 0; k < spec->n_vcpus; k++)
		if (ensure_dir(rc, &vcpus[k]) < 0 || ensure_threaded(rc, &vcpus[k]) < 0)
			ok = false;
	/* +cpu +cpuset only: +memory is EOPNOTSUPP in a threaded domain root */
	if (ensure_subtree(rc, &vm, CGROUP_CTRLS_THREADED) < 0)
		goto out;

	if (!emu.broken)
		knob_cpuset(rc, &emu, "cpuset.cpus", spec->emulator_cpus);
	for (size_t k = 0; k < spec->n_vcpus; k++) {
		const struct cgroup_vcpu_spec *v = &spec->vcpus[k];
		if (vcpus[k].broken)
			continue;
		knob_cpuset(rc, &vcpus[k], "cpuset.cpus", v->cpus);
		knob_weight(rc, &vcpus[k], v->weight);
		knob_cpu_max(rc, &vcpus[k], &v->cpu_max);
	}
	if (ok)
		vm_place(rc, &vm, &emu, vcpus, spec);
out:
	for (size_t k = 0; k < spec->n_vcpus; k++)
		grp_clear(&vcpus[k]);
	free(vcpus);
	grp_clear(&emu);
	grp_clear(&vm);
}

/* --- a VM as a whole -------------------------------------------------------
 *
 * A VM whose spec is what it was when it was last reconciled without a
 * failure is left alone (no path built, no entry looked at) until its
 * summary entry falls due; then all of it is read again at once (verify),
 * which is how a change behind vcpud's back is found. A steady reconcile
 * costs a hash and a lookup per VM, whatever the VM holds. */

static uint64_t hash_opt(uint64_t h, const char *s)
{
	return s ? hash_str(hash_u64(h, 1), s) : hash_u64(h, 0);
}

static uint64_t hash_cpu_max(uint64_t h, const struct cgroup_cpu_max *m)
{
	h = hash_u64(h, (uint64_t)m->set << 1 | (uint64_t)m->unlimited);
	return hash_u64(hash_u64(h, m->quota_us), m->period_us);
}

static uint64_t hash_mem_max(uint64_t h, const struct cgroup_mem_max *m)
{
	return hash_u64(hash_u64(h, (uint64_t)m->set << 1 | (uint64_t)m->unlimited), m->bytes);
}

static uint64_t vm_sum_key(const struct cgroup_tree *t, const struct cgroup_tenant_spec *ts,
			   const struct cgroup_vm_spec *v)
{
	uint64_t h = hash_opt(hash_opt(hash_str(HASH_SEED, "vm"), t->root), ts->name);
	return key_nonzero(hash_opt(h, v->name));
}

/* Everything the VM's groups are made of, and its tenant's cpusets (the
 * VM's are judged against them). */
static uint64_t vm_sum_val(const struct cgroup_tenant_spec *ts, const struct cgroup_vm_spec *v)
{
	uint64_t h = hash_opt(hash_opt(HASH_SEED, ts->cpus), ts->mems);
	h = hash_u64(hash_u64(hash_opt(h, v->name), (uint64_t)v->pid), v->start_time);
	h = hash_mem_max(hash_cpu_max(hash_u64(h, v->weight), &v->cpu_max), &v->memory_max);
	h = hash_u64(hash_u64(h, v->burst_set), v->burst_us);
	h = hash_opt(hash_opt(hash_opt(h, v->cpus), v->mems), v->emulator_cpus);
	h = hash_u64(h, v->n_vcpus);
	for (size_t k = 0; v->vcpus && k < v->n_vcpus; k++) {
		const struct cgroup_vcpu_spec *c = &v->vcpus[k];
		h = hash_u64(hash_u64(hash_u64(h, c->index), (uint64_t)c->tid), c->weight);
		h = hash_opt(hash_cpu_max(h, &c->cpu_max), c->cpus);
	}
	return key_nonzero(h);
}

static struct vm_sum **vm_sums_make(const struct cgroup_tree *t)
{
	struct vm_sum **v = xcalloc(t->n_tenants ? t->n_tenants : 1, sizeof(*v));
	for (size_t i = 0; i < t->n_tenants; i++) {
		const struct cgroup_tenant_spec *ts = &t->tenants[i];
		v[i] = xcalloc(ts->n_vms ? ts->n_vms : 1, sizeof(*v[i]));
		for (size_t j = 0; j < ts->n_vms; j++)
			v[i][j] = (struct vm_sum){ vm_sum_key(t, ts, &ts->vms[j]),
						   vm_sum_val(ts, &ts->vms[j]), false };
	}
	return v;
}

/* For the judgement: VM j of tenant ti is what it was when it last went
 * through (so it was judged valid then; its name is in its hash). */
static bool vm_judged_before(void *data, size_t ti, size_t j)
{
	struct rc *rc = data;
	const struct vm_sum *m = &rc->vm_sum[ti][j];
	const struct known_slot *s = known_find(&rc->e->known, m->key);
	return s && s->val == m->val;
}

/* The tree's judgement and VM summaries: the memo's when it was made
 * from a tree of the same fingerprint, else made now (and kept when the
 * tree has a fingerprint). */
static void memo_take(struct rc *rc)
{
	struct tree_memo *m = &rc->e->memo;
	const struct cgroup_tree *t = rc->t;
	if (t->fingerprint && t->fingerprint == m->fingerprint && t->n_tenants == m->n_tenants) {
		for (size_t i = 0; i < t->n_tenants; i++)
			for (size_t j = 0; j < t->tenants[i].n_vms; j++)
				m->vm_sum[i][j].steady = false;
	} else {
		memo_clear(m);
		m->vm_sum = vm_sums_make(t);
		m->n_tenants = t->n_tenants;
		rc->vm_sum = m->vm_sum;
		cgroup_tree_judge_with(t, &m->j, vm_judged_before, rc);
		m->fingerprint = t->fingerprint;
	}
	rc->vm_sum = m->vm_sum;
	rc->j = &m->j;
}

/* Reconcile VM j of tenant ti unless it is steady (see above). */
static void reconcile_vm_whole(struct rc *rc, const struct grp *tenant, size_t ti, size_t j)
{
	struct vm_sum *m = &rc->vm_sum[ti][j];
	const struct known_slot *s = known_same(rc, m->key, m->val);
	bool same = s != NULL;
	if (same && rc->gen < s->due) {
		m->steady = true;
		return;
	}
	struct cgroup_reconcile_stats before = rc->st;
	rc->verify = same; /* fallen due: every value of it is read again */
	const struct cgroup_vm_spec *spec = &rc->t->tenants[ti].vms[j];
	reconcile_vm(rc, tenant, spec);
	/* changed, or put right after a change behind vcpud's back */
	if (!same || rc->st.writes != before.writes)
		replanned_add(rc->e, spec->name);
	rc->verify = false;
	if (rc->st.errors == before.errors && rc->st.vanished == before.vanished &&
	    rc->st.busy == before.busy)
		known_set(rc, m->key, m->val);
}

/* Record the judgement of an invalid tenant or VM; true when it is one. */
static bool judged_invalid(struct rc *rc, const struct error *why, const char *tenant,
			   bool vm_judged, const char *vm)
{
	if (!why)
		return false;
	rc->st.skipped++;
	if (rc->faults)
		log_debug("cgroup: skipping %s: %s", vm_judged ? "a VM" : "a tenant", why->msg);
	else
		log_error("cgroup: skipping %s: %s", vm_judged ? "a VM" : "a tenant", why->msg);
	fault_add(rc, tenant && name_valid(tenant) ? tenant : "",
		  vm_judged ? (vm && name_valid(vm) ? vm : "") : NULL, why->code, why->msg, true);
	if (!rc->first)
		error_set(&rc->first, why->code, "%s", why->msg);
	return true;
}

static void reconcile_tenant(struct rc *rc, const struct grp *root, size_t ti)
{
	const struct cgroup_tenant_spec *spec = &rc->t->tenants[ti];
	if (judged_invalid(rc, rc->j->tenant[ti], spec->name, false, NULL))
		return;
	if (!name_valid(spec->name)) { /* judged above; never trust */
		rc_fail(rc, EINVAL, "refusing tenant name '%s'", spec->name ? spec->name : "");
		return;
	}
	rc->tenant = spec->name;
	rc->vm = NULL;
	_cleanup_free_ char *base = xasprintf("tenant-%s", spec->name);
	struct grp t = { 0 };
	grp_child(&t, root, base, true);
	if (ensure_dir(rc, &t) == 0) {
		knob_cpuset(rc, &t, "cpuset.cpus", spec->cpus);
		knob_cpuset(rc, &t, "cpuset.mems", spec->mems);
		if (!knob_idle(rc, &t, spec->cpu_idle))
			knob_weight(rc, &t, spec->weight);
		knob_cpu_max(rc, &t, &spec->cpu_max);
		knob_mem_max(rc, &t, &spec->memory_max);
		if (ensure_subtree(rc, &t, CGROUP_CTRLS_DOMAIN) == 0)
			for (size_t j = 0; j < spec->n_vms; j++) {
				if (judged_invalid(rc, rc->j->vm[ti][j], spec->name, true,
						   spec->vms[j].name))
					continue;
				rc->vm = spec->vms[j].name;
				reconcile_vm_whole(rc, &t, ti, j);
				rc->vm = NULL;
				yield_hook_maybe(&rc->e->yield);
			}
	}
	rc->tenant = NULL;
	grp_clear(&t);
}

/* --- removal, leaf first --------------------------------------------------- */

/* Subdirectories of g; none when g does not exist (only "created" in
 * dry-run, or removed meanwhile). -1 on failure (counted). */
static int list_children(struct rc *rc, const struct grp *g, char ***names, size_t *n)
{
	_cleanup_error_ struct error *e = NULL;
	*names = NULL;
	*n = 0;
	rc->st.reads++;
	if (rc->e->ops->list_dir(rc->e->ctx, g->abs, names, n, &e) == 0)
		return 0;
	if (op_code(e) == ENOENT)
		return 0;
	return rc_fail(rc, op_code(e), "cannot list %s: %s", g->name, strerror(op_code(e)));
}

static int remove_group(struct rc *rc, const struct grp *g)
{
	_cleanup_error_ struct error *e = NULL;
	if (rc->e->ops->rmdir(rc->e->ctx, g->abs, &e) == 0) {
		rc->st.rmdirs++;
		if (!rc->e->dry_run)
			log_info("cgroup: removed %s", g->name);
		return 0;
	}
	if (op_code(e) == EBUSY || op_code(e) == ENOTEMPTY) {
		/* threads are still in it (or a group vcpud does not know):
		 * never forced; the next tick tries again */
		rc->st.busy++;
		log_warn("cgroup: cannot remove %s yet: %s; will retry", g->name, strerror(op_code(e)));
		return -1;
	}
	if (op_code(e) == ENOENT)
		return 0;
	return rc_fail(rc, op_code(e), "cannot remove %s: %s", g->name, strerror(op_code(e)));
}

/* "vcpuN" exactly as the engine names them; *index = N. */
static bool vcpu_dir_name(const char *name, unsigned *index)
{
	uint64_t v;
	_cleanup_error_ struct error *e = NULL;
	if (!str_has_prefix(name, "vcpu") ||
	    parse_u64(name + 4, 0, CGROUP_VCPU_INDEX_MAX, &v, &e) < 0)
		return false;
	char canon[24];
	snprintf(canon, sizeof(canon), "vcpu%u", (unsigned)v);
	if (strcmp(canon, name) != 0)
		return false;
	*index = (unsigned)v;
	return true;
}

/* Remove the emulator and vcpuN groups of a VM that `keep` (NULL: none)
 * does not list, then the VM itself when keep is NULL. */
static int remove_vm_parts(struct rc *rc, const struct grp *vm, const struct cgroup_vm_spec *keep)
{
	char **names;
	size_t n;
	if (list_children(rc, vm, &names, &n) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned idx;
		bool ours = strcmp(names[i], "emulator") == 0 || vcpu_dir_name(names[i], &idx);
		if (!ours) {
			log_debug("cgroup: leaving %s/%s alone (not a vcpud group)", vm->name, names[i]);
			continue;
		}
		if (keep) {
			if (strcmp(names[i], "emulator") == 0)
				continue;
			bool wanted = false;
			for (size_t k = 0; k < keep->n_vcpus && !wanted; k++)
				wanted = keep->vcpus[k].index == idx;
			if (wanted)
				continue;
		}
		struct grp c = { 0 };
		grp_child(&c, vm, names[i], false);
		if (remove_group(rc, &c) < 0)
			ret = -1;
		grp_clear(&c);
	}
	cgroup_names_free(names, n);
	if (!keep && ret == 0)
		ret = remove_group(rc, vm);
	return ret;
}

/* The first VM of tenant ti named `name`, or SIZE_MAX. */
/* The names of tenant ti's VMs (none when ti is SIZE_MAX) in *out, indexed
 * in *ix, so that each listed directory is one lookup, not a scan of the
 * tenant's VMs. A name that is not valid matches no directory: left out. */
struct vm_name {
	char name[NAME_MAX_LEN + 1];
};

static void tenant_vm_names(const struct rc *rc, size_t ti, struct vm_name **out,
			    struct name_index *ix)
{
	const struct cgroup_tenant_spec *t = ti == SIZE_MAX ? NULL : &rc->t->tenants[ti];
	size_t n = 0;
	struct vm_name *v = xcalloc(t && t->n_vms ? t->n_vms : 1, sizeof(*v));
	for (size_t j = 0; t && j < t->n_vms; j++)
		if (name_valid(t->vms[j].name))
			strcpy(v[n++].name, t->vms[j].name);
	name_index_init(ix, sizeof(*v), offsetof(struct vm_name, name));
	name_index_build(ix, v, n);
	*out = v;
}

/* Entries of "the children of this group are the ones the tree wants":
 * a steady reconcile lists no directory, and a change lists only the
 * directories whose wanted children changed (registering a VM lists its
 * tenant's directory and its own, whatever the number of VMs). One entry
 * per directory, holding a hash of the wanted children. */
static uint64_t children_key(const struct grp *g)
{
	return key_nonzero(hash_str(hash_str(HASH_SEED, "children"), g->abs));
}

static uint64_t vm_children_val(const struct cgroup_vm_spec *spec)
{
	uint64_t h = HASH_SEED;
	for (size_t k = 0; k < spec->n_vcpus; k++)
		h = hash_u64(h, spec->vcpus[k].index);
	return key_nonzero(h);
}

static uint64_t tenant_children_val(const struct rc *rc, size_t ti)
{
	uint64_t h = HASH_SEED;
	const struct cgroup_tenant_spec *ts = &rc->t->tenants[ti];
	for (size_t j = 0; j < ts->n_vms; j++)
		h = hash_u64(hash_str(h, ts->vms[j].name ? ts->vms[j].name : ""),
			     rc->j->vm[ti][j] != NULL);
	return key_nonzero(h);
}

static uint64_t root_children_val(const struct rc *rc)
{
	uint64_t h = HASH_SEED;
	for (size_t i = 0; i < rc->t->n_tenants; i++)
		h = hash_u64(hash_str(h, rc->t->tenants[i].name ? rc->t->tenants[i].name : ""),
			     rc->j->tenant[i] != NULL);
	return key_nonzero(h);
}

/* Run remove(rc, g, arg) unless g's children are known to be `val`;
 * remember val when it went through without a failure or a busy group. */
static void remove_unless_known(struct rc *rc, uint64_t val,
				int (*remove)(struct rc *rc, const struct grp *g, const void *arg),
				const struct grp *g, const void *arg)
{
	uint64_t key = children_key(g);
	if (known_fresh(rc, key, val))
		return;
	struct cgroup_reconcile_stats before = rc->st;
	remove(rc, g, arg);
	if (rc->st.errors == before.errors && rc->st.busy == before.busy)
		known_set(rc, key, val);
}

static int remove_vm_stale(struct rc *rc, const struct grp *vm, const void *spec)
{
	return remove_vm_parts(rc, vm, spec);
}

/* Stale VMs of tenant ti (all of them when ti is SIZE_MAX), then the
 * tenant itself when ti is SIZE_MAX. The groups of a VM judged invalid
 * are kept as they are. Only the VMs the tree no longer has: the stale
 * vCPU groups of the ones it has are remove_stale()'s, VM by VM. */
static int remove_tenant_parts(struct rc *rc, const struct grp *t, size_t ti)
{
	char **names;
	size_t n;
	if (list_children(rc, t, &names, &n) < 0)
		return -1;
	_cleanup_free_ struct vm_name *wanted = NULL;
	struct name_index ix;
	tenant_vm_names(rc, ti, &wanted, &ix);
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (!str_has_prefix(names[i], "vm-") || !name_valid(names[i] + 3)) {
			log_debug("cgroup: leaving %s/%s alone (not a vcpud group)", t->name, names[i]);
			continue;
		}
		if (name_index_find(&ix, wanted, names[i] + 3) != SIZE_MAX)
			continue; /* wanted, or skipped and kept as it is */
		struct grp c = { 0 };
		grp_child(&c, t, names[i], false);
		if (remove_vm_parts(rc, &c, NULL) < 0)
			ret = -1;
		grp_clear(&c);
	}
	cgroup_names_free(names, n);
	name_index_clear(&ix);
	if (ti == SIZE_MAX && ret == 0)
		ret = remove_group(rc, t);
	return ret;
}

static int remove_tenant_stale(struct rc *rc, const struct grp *t, const void *ti)
{
	return remove_tenant_parts(rc, t, *(const size_t *)ti);
}

/* Tenants the tree no longer has (a skipped one is kept as it is). */
static int remove_root_stale(struct rc *rc, const struct grp *root, const void *unused)
{
	(void)unused;
	char **names;
	size_t n;
	if (list_children(rc, root, &names, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!str_has_prefix(names[i], "tenant-") || !name_valid(names[i] + 7)) {
			log_debug("cgroup: leaving %s/%s alone (not a vcpud group)", root->name, names[i]);
			continue;
		}
		bool wanted = false;
		for (size_t j = 0; j < rc->t->n_tenants && !wanted; j++)
			wanted = rc->t->tenants[j].name &&
				 strcmp(rc->t->tenants[j].name, names[i] + 7) == 0;
		if (wanted)
			continue;
		struct grp c = { 0 };
		grp_child(&c, root, names[i], true);
		remove_tenant_parts(rc, &c, SIZE_MAX);
		grp_clear(&c);
	}
	cgroup_names_free(names, n);
	return 0;
}

/* Remove, leaf first, what the tree no longer has: stale tenants under the
 * root, stale VMs under each tenant it has, stale vCPU groups under each
 * VM it has. A skipped tenant or VM is left exactly as it is. */
static void remove_stale(struct rc *rc, const struct grp *root)
{
	for (size_t i = 0; i < rc->t->n_tenants; i++) {
		const struct cgroup_tenant_spec *ts = &rc->t->tenants[i];
		/* a repeated name is judged invalid: each tenant and VM met
		 * here is the only one of its name */
		if (rc->j->tenant[i] || !name_valid(ts->name))
			continue;
		_cleanup_free_ char *base = xasprintf("tenant-%s", ts->name);
		struct grp t = { 0 };
		grp_child(&t, root, base, true);
		for (size_t j = 0; j < ts->n_vms; j++) {
			const struct cgroup_vm_spec *vs = &ts->vms[j];
			if (rc->j->vm[i][j] || !name_valid(vs->name) || rc->vm_sum[i][j].steady)
				continue;
			_cleanup_free_ char *vb = xasprintf("vm-%s", vs->name);
			struct grp vm = { 0 };
			grp_child(&vm, &t, vb, false);
			remove_unless_known(rc, vm_children_val(vs), remove_vm_stale, &vm, vs);
			grp_clear(&vm);
		}
		remove_unless_known(rc, tenant_children_val(rc, i), remove_tenant_stale, &t, &i);
		grp_clear(&t);
	}
	remove_unless_known(rc, root_children_val(rc), remove_root_stale, root, NULL);
}

/* --- entry point ----------------------------------------------------------- */

static char *parent_dir(const char *path)
{
	char *p = xstrdup(path);
	char *slash = strrchr(p, '/');
	if (slash == p)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return p;
}

static bool on_cgroup2(const char *path, dev_t *dev)
{
	struct statfs sf;
	struct stat st;
	if (statfs(path, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC || stat(path, &st) < 0)
		return false;
	*dev = st.st_dev;
	return true;
}

/* No mount configured: the highest directory above `root` on the same
 * cgroup2 filesystem (so /proc/PID/cgroup paths line up however deep the
 * root is), or the root's parent when that is not cgroup2 (a fake tree). */
static char *mount_above(const char *root)
{
	char *cur = parent_dir(root);
	dev_t dev, up_dev;
	if (!on_cgroup2(cur, &dev))
		return cur;
	while (strcmp(cur, "/") != 0) {
		char *up = parent_dir(cur);
		if (!on_cgroup2(up, &up_dev) || up_dev != dev) {
			free(up);
			break;
		}
		free(cur);
		cur = up;
	}
	return cur;
}

/* The mount and the root as /proc names it; -1 when root is outside it. */
static int root_setup(struct rc *rc, struct grp *mount, struct grp *root, struct error **err)
{
	const char *r = rc->t->root;
	root->abs = path_join(r, NULL);
	mount->abs = rc->e->mount ? xstrdup(rc->e->mount) : mount_above(root->abs);
	size_t ml = strlen(mount->abs);
	const char *rest;
	if (strcmp(mount->abs, "/") == 0)
		rest = root->abs;
	else if (strncmp(root->abs, mount->abs, ml) == 0 &&
		 (root->abs[ml] == '\0' || root->abs[ml] == '/'))
		rest = root->abs + ml;
	else
		return error_set(err, EINVAL, "cgroup root %s is not inside the cgroup2 mount %s",
				 root->abs, mount->abs);
	mount->name = xstrdup(mount->abs);
	mount->cg = xstrdup("/");
	root->name = xstrdup(root->abs);
	root->cg = xstrdup(rest[0] ? rest : "/");
	return 0;
}

void cgroup_faults_clear(struct cgroup_faults *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].msg);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

int cgroup_tree_reconcile(struct cgroup_engine *e, const struct cgroup_tree *desired,
			  struct cgroup_reconcile_stats *out, struct cgroup_faults *faults,
			  struct error **err)
{
	struct rc rc = { .e = e, .t = desired, .faults = faults, .gen = ++e->gen };
	if (out)
		*out = rc.st;
	if (cgroup_tree_root_check(desired, err) < 0)
		return error_wrap(err, "desired cgroup tree");
	replanned_clear(e);
	memo_take(&rc);
	yield_hook_start(&e->yield);

	struct grp mount = { 0 }, root = { 0 };
	unsigned dry_writes0 = e->dry.writes;
	if (root_setup(&rc, &mount, &root, err) < 0) {
		grp_clear(&mount);
		grp_clear(&root);
		if (!e->memo.fingerprint)
			memo_clear(&e->memo);
		return -1;
	}

	/* every ancestor from the mount down to the root's parent passes the
	 * controllers down (the mount root itself is exempt from the
	 * no-internal-process rule; an intermediate one holding processes
	 * answers EBUSY, which is reported) */
	if (e->dry_run)
		cgroup_dry_run_set_mount(&e->dry, mount.abs);
	bool ok = true;
	if (strcmp(root.abs, mount.abs) != 0) {
		struct grp anc = { .abs = xstrdup(mount.abs), .name = xstrdup(mount.abs),
				   .cg = xstrdup("/") };
		const char *p = root.abs + (strcmp(mount.abs, "/") == 0 ? 0 : strlen(mount.abs));
		for (;;) {
			if (ensure_subtree(&rc, &anc, CGROUP_CTRLS_DOMAIN) < 0) {
				ok = false;
				break;
			}
			const char *next = strchr(p + 1, '/');
			if (!next)
				break;
			_cleanup_free_ char *comp = xstrndup(p + 1, (size_t)(next - p - 1));
			struct grp child = { 0 };
			grp_child(&child, &anc, comp, false);
			free(child.name);
			child.name = xstrdup(child.abs);
			grp_clear(&anc);
			anc = child;
			p = next;
		}
		grp_clear(&anc);
	}
	if (ok && ensure_dir(&rc, &root) == 0 && ensure_subtree(&rc, &root, CGROUP_CTRLS_DOMAIN) == 0) {
		for (size_t i = 0; i < desired->n_tenants; i++)
			reconcile_tenant(&rc, &root, i);
		remove_stale(&rc, &root);
	}
	grp_clear(&mount);
	grp_clear(&root);
	if (!e->memo.fingerprint)
		memo_clear(&e->memo); /* made for this tree only */
	/* a failure may mean the kernel is not what the engine believes
	 * (a group removed behind its back): read everything next time.
	 * Otherwise keep what a reconcile looked at lately: a steady VM's
	 * entries are looked at when it falls due, at most 3/2 x verify_ticks
	 * + 1 reconciles apart (swept every so many: a sweep is a pass over
	 * the table); after a removal, only what this one looked at (nothing
	 * known may outlive a group) */
	uint32_t keep = e->verify_ticks * 3 / 2 + 2;
	if (rc.st.errors)
		cgroup_engine_forget(e);
	else if (rc.st.rmdirs)
		known_sweep(&e->known, rc.gen);
	else if (rc.gen % keep == 0)
		known_sweep(&e->known, rc.gen > keep ? rc.gen - keep : 0);

	if (e->dry_run) {
		cgroup_dry_run_end_pass(&e->dry);
		log_debug("cgroup: dry-run: %u writes would have been made (%zu entries "
			  "in the overlay)", e->dry.writes - dry_writes0,
			  cgroup_dry_run_entries(&e->dry));
	}
	if (out)
		*out = rc.st;
	if (rc.first) {
		if (err && !*err)
			*err = steal_ptr(&rc.first);
		error_free(&rc.first);
		return -1;
	}
	return 0;
}

/* Move a released VM's process out of vcpud's tree, back to `origin` (the
 * cgroup /proc/PID/cgroup named when it was registered, relative to the
 * mount) when that still takes it, else to the mount's root cgroup (exempt
 * from the no-internal-process rule, so it always does). Writing the PID to
 * a domain's cgroup.procs moves every thread, vCPUs included. */
int cgroup_engine_release_process(struct cgroup_engine *e, const char *root, pid_t pid,
				  const char *origin, struct error **err)
{
	if (pid <= 0)
		return 0;
	_cleanup_free_ char *rootabs = path_join(root, NULL);
	_cleanup_free_ char *mount = e->mount ? xstrdup(e->mount) : mount_above(rootabs);
	const char *root_cg = rootabs + (strcmp(mount, "/") == 0 ? 0 : strlen(mount));
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	if (e->dry_run)
		cgroup_dry_run_set_mount(&e->dry, mount);

	bool origin_ok = origin && origin[0] == '/' && !strstr(origin, "/..") &&
			 !strstr(origin, "/./") && !path_within(origin, root_cg);
	if (origin_ok) {
		_cleanup_free_ char *procs = path_join(mount, origin, "cgroup.procs", NULL);
		_cleanup_error_ struct error *e1 = NULL;
		if (e->ops->write_file(e->ctx, procs, pidbuf, &e1) == 0)
			return 0;
		if (op_code(e1) == ESRCH) /* ENOENT here is a missing origin */
			return 0;
		log_info("cannot return process %d to %s (%s): moving it to the root cgroup",
			 (int)pid, origin, e1->msg);
	}
	_cleanup_free_ char *procs = path_join(mount, "cgroup.procs", NULL);
	_cleanup_error_ struct error *e2 = NULL;
	if (e->ops->write_file(e->ctx, procs, pidbuf, &e2) == 0 || op_code(e2) == ESRCH)
		return 0;
	return error_set(err, op_code(e2), "cannot move process %d out of %s: %s", (int)pid,
			 rootabs, e2->msg);
}
