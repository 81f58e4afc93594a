/* dryrun.c - the dry-run backend (cgroup_ops_dry_run): wraps another backend,
 * passes reads through to it and turns writes, mkdir and rmdir into one info
 * line and a counter each. It remembers what it would have written in a
 * shadow overlay that later reads consult first, so the engine reads back its
 * own intentions and a steady dry-run tick "writes" nothing, as a real one
 * does. The rules of the overlay are in cgroup.h (struct cgroup_dry_run). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/cgroup.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

/* --- a string-keyed hash map (separate chaining) -------------------------- */

enum dir_state { DIR_NONE, DIR_CREATED, DIR_REMOVED };

/* One entry, one allocation with its key; which fields mean something
 * depends on the map it is in. The overlay holds one per vCPU thread and a
 * few per group (tens of thousands on a large host): the inner text an
 * entry was shadowed over is kept as its hash, not as a copy. */
struct snode {
	struct snode *next;
	uint64_t hash;
	uint64_t base_hash;  /* files, tasks: hash_str() of the inner text when
				shadowed, if has_base */
	char *value;         /* files: the shadowed text; tasks: the cgroup ("/a/b") */
	char **kids;         /* kids: names of the children that have a dirs entry */
	size_t n_kids;
	unsigned gen;        /* the pass that last consulted it */
	uint8_t dir;         /* dirs: enum dir_state */
	bool has_base;       /* false: the inner file could not be read then (or,
				tasks: its text is not known yet) */
	char key[];
};

struct smap {
	struct snode **b;
	size_t nb, n;
};

struct cgroup_shadow {
	struct smap files; /* path -> value */
	struct smap dirs;  /* path -> created / removed */
	struct smap kids;  /* parent path -> names of its children in `dirs` */
	struct smap tasks; /* "TID" -> the cgroup it would be in */
	unsigned gen;
	/* the last /proc/.../task/TID/cgroup read through the backend (its
	 * hash): the engine reads a thread's place just before it moves it,
	 * and a cgroup.threads write does not say which process the TID is of */
	int last_tid;
	uint64_t last_task_hash;
};

static void snode_free(struct snode *n)
{
	free(n->value);
	for (size_t i = 0; i < n->n_kids; i++)
		free(n->kids[i]);
	free(n->kids);
	free(n);
}

static struct snode *smap_get(const struct smap *m, const char *key)
{
	if (!m->n)
		return NULL;
	uint64_t h = hash_str(HASH_SEED, key);
	for (struct snode *n = m->b[h % m->nb]; n; n = n->next)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

/* A new, empty entry for `key`, which must not be in the map. */
static struct snode *smap_add(struct smap *m, const char *key)
{
	if (m->n >= m->nb) { /* load factor 1: rehash into twice the buckets */
		size_t nb = m->nb ? m->nb * 2 : 64;
		struct snode **b = xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < m->nb; i++)
			for (struct snode *n = m->b[i], *next; n; n = next) {
				next = n->next;
				n->next = b[n->hash % nb];
				b[n->hash % nb] = n;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	size_t len = strlen(key);
	struct snode *n = xcalloc(1, sizeof(*n) + len + 1);
	memcpy(n->key, key, len + 1);
	n->hash = hash_str(HASH_SEED, key);
	n->next = m->b[n->hash % m->nb];
	m->b[n->hash % m->nb] = n;
	m->n++;
	return n;
}

static void smap_del(struct smap *m, const char *key)
{
	if (!m->n)
		return;
	uint64_t h = hash_str(HASH_SEED, key);
	for (struct snode **pp = &m->b[h % m->nb]; *pp; pp = &(*pp)->next) {
		struct snode *n = *pp;
		if (n->hash == h && strcmp(n->key, key) == 0) {
			*pp = n->next;
			snode_free(n);
			m->n--;
			return;
		}
	}
}

static void smap_clear(struct smap *m)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct snode *n = m->b[i], *next; n; n = next) {
			next = n->next;
			snode_free(n);
		}
	free(m->b);
	*m = (struct smap){ 0 };
}

/* Delete every entry for which drop(entry, arg) is true. */
static void smap_filter(struct smap *m, bool (*drop)(const struct snode *n, const void *arg),
			const void *arg)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct snode **pp = &m->b[i]; *pp;) {
			struct snode *n = *pp;
			if (drop(n, arg)) {
				*pp = n->next;
				snode_free(n);
				m->n--;
			} else {
				pp = &n->next;
			}
		}
}

/* --- the overlay ------------------------------------------------------------ */

static struct cgroup_shadow *shadow(struct cgroup_dry_run *d)
{
	if (!d->shadow)
		d->shadow = xcalloc(1, sizeof(*d->shadow));
	return d->shadow;
}

static void touch(struct cgroup_dry_run *d, struct snode *n)
{
	n->gen = d->shadow->gen;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* PATH -> its parent and its last component (both pointing into *buf). */
static void split_path(const char *path, char **buf, const char **parent, const char **name)
{
	*buf = xstrdup(path);
	char *slash = strrchr(*buf, '/');
	if (!slash) {
		*parent = "";
		*name = *buf;
		return;
	}
	*slash = '\0';
	*parent = slash == *buf ? "/" : *buf;
	*name = slash + 1;
}

static void kids_add(struct cgroup_shadow *sh, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	const char *parent, *name;
	split_path(path, &buf, &parent, &name);
	struct snode *k = smap_get(&sh->kids, parent);
	if (!k)
		k = smap_add(&sh->kids, parent);
	for (size_t i = 0; i < k->n_kids; i++)
		if (strcmp(k->kids[i], name) == 0)
			return;
	k->kids = xrealloc(k->kids, (k->n_kids + 1) * sizeof(*k->kids));
	k->kids[k->n_kids++] = xstrdup(name);
}

static void kids_del(struct cgroup_shadow *sh, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	const char *parent, *name;
	split_path(path, &buf, &parent, &name);
	struct snode *k = smap_get(&sh->kids, parent);
	if (!k)
		return;
	for (size_t i = 0; i < k->n_kids; i++)
		if (strcmp(k->kids[i], name) == 0) {
			free(k->kids[i]);
			k->kids[i] = k->kids[--k->n_kids];
			break;
		}
	if (!k->n_kids)
		smap_del(&sh->kids, parent);
}

static void dir_set(struct cgroup_dry_run *d, const char *path, enum dir_state st)
{
	struct cgroup_shadow *sh = shadow(d);
	struct snode *n = smap_get(&sh->dirs, path);
	if (!n) {
		n = smap_add(&sh->dirs, path);
		kids_add(sh, path);
	}
	n->dir = st;
	touch(d, n);
}

static void dir_del(struct cgroup_shadow *sh, const char *path)
{
	smap_del(&sh->dirs, path);
	kids_del(sh, path);
}

/* The cgroup a directory is, as /proc/PID/cgroup names it; NULL when the
 * mount is not known or the directory is not inside it. */
static char *cg_of(const struct cgroup_dry_run *d, const char *dir)
{
	if (!d->mount)
		return NULL;
	if (strcmp(d->mount, "/") == 0)
		return xstrdup(dir);
	if (!path_within(dir, d->mount))
		return NULL;
	return xstrdup(dir[strlen(d->mount)] ? dir + strlen(d->mount) : "/");
}

static bool node_under(const struct snode *n, const void *arg)
{
	return under(n->key, arg);
}

static bool task_within(const struct snode *n, const void *arg)
{
	return path_within(n->value, arg);
}

/* Copies of the keys of the dirs entries for which match(entry, arg). */
static char **dirs_matching(const struct cgroup_shadow *sh,
			    bool (*match)(const struct snode *n, const void *arg), const void *arg,
			    size_t *n_out)
{
	char **v = NULL;
	size_t n = 0;
	for (size_t i = 0; i < sh->dirs.nb; i++)
		for (struct snode *e = sh->dirs.b[i]; e; e = e->next)
			if (match(e, arg)) {
				v = xrealloc(v, (n + 1) * sizeof(*v));
				v[n++] = xstrdup(e->key);
			}
	*n_out = n;
	return v;
}

/* Forget everything below `path` (a group that goes): its files, its
 * subgroups and the threads that would be in it. */
static void drop_under(struct cgroup_dry_run *d, const char *path)
{
	struct cgroup_shadow *sh = shadow(d);
	smap_filter(&sh->files, node_under, path);
	/* subgroups: each leaves its parent's list of kids too */
	size_t nv = 0;
	char **victims = dirs_matching(sh, node_under, path, &nv);
	for (size_t i = 0; i < nv; i++) {
		dir_del(sh, victims[i]);
		free(victims[i]);
	}
	free(victims);
	_cleanup_free_ char *cg = cg_of(d, path);
	if (cg)
		smap_filter(&sh->tasks, task_within, cg);
}

/* The thread a /proc path names: SYSROOT/proc/PID/cgroup (the leader,
 * TID = PID) or SYSROOT/proc/PID/task/TID/cgroup; 0 for any other path. */
static int proc_task_of(const struct cgroup_dry_run *d, const char *path)
{
	if (!d->proc || !under(path, d->proc))
		return 0;
	const char *p = path + strlen(d->proc) + 1;
	char *end;
	long pid = strtol(p, &end, 10);
	if (end == p || pid <= 0 || pid > INT32_MAX)
		return 0;
	if (strcmp(end, "/cgroup") == 0)
		return (int)pid;
	if (!str_has_prefix(end, "/task/"))
		return 0;
	p = end + 6;
	long tid = strtol(p, &end, 10);
	if (end == p || tid <= 0 || tid > INT32_MAX || strcmp(end, "/cgroup") != 0)
		return 0;
	return (int)tid;
}

/* Keep the inner text (rc < 0: it could not be read) an entry shadows. */
static void base_set(struct snode *n, int rc, const char *text)
{
	n->has_base = rc == 0;
	n->base_hash = rc == 0 ? hash_str(HASH_SEED, text) : 0;
}

/* Whether an inner read (rc, text) still shows what it did when an entry
 * was shadowed. By hash: a change the hash misses (1 in 2^64) would go
 * unnoticed, as it would by the engine, which keeps values the same way. */
static bool inner_same(int rc, const char *text, const struct snode *n)
{
	if (rc < 0)
		return !n->has_base;
	return n->has_base && n->base_hash == hash_str(HASH_SEED, text);
}

/* The shadow entry of a file whose inner read gave (rc, text), or NULL:
 * an entry whose inner file changed since it was shadowed is dropped. */
static struct snode *file_entry(struct cgroup_dry_run *d, const char *path, int rc,
				const char *text)
{
	struct cgroup_shadow *sh = d->shadow;
	struct snode *n = sh ? smap_get(&sh->files, path) : NULL;
	if (!n)
		return NULL;
	if (!inner_same(rc, text, n)) {
		log_debug("dry-run: %s changed on the host: forgetting the would-be '%s'", path,
			  n->value);
		smap_del(&sh->files, path);
		return NULL;
	}
	touch(d, n);
	return n;
}

/* Hand the inner backend's error on (err may be NULL, as error_set()
 * allows). Returns -1. */
static int pass_error(struct error **err, struct error **e)
{
	if (err && !*err)
		*err = steal_ptr(e);
	return -1;
}

static char *thread_key(int tid, char buf[static 16])
{
	snprintf(buf, 16, "%d", tid);
	return buf;
}

/* --- the backend ------------------------------------------------------------ */

static int dry_read_file(void *ctx, const char *path, char **out, struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	_cleanup_free_ char *text = NULL;
	_cleanup_error_ struct error *e = NULL;
	int rc = d->inner->read_file(d->inner_ctx, path, &text, &e);
	int tid = proc_task_of(d, path);
	if (tid > 0) {
		struct cgroup_shadow *sh = shadow(d);
		char key[16];
		struct snode *n = smap_get(&sh->tasks, thread_key(tid, key));
		if (n && !n->has_base && rc == 0)
			base_set(n, rc, text); /* a thread move whose base was not known */
		if (n && rc == 0 && inner_same(rc, text, n)) {
			touch(d, n);
			*out = xasprintf("0::%s\n", n->value);
			return 0;
		}
		if (n) {
			log_debug("dry-run: thread %d moved or exited on the host: forgetting its "
				  "would-be move to %s", tid, n->value);
			smap_del(&sh->tasks, key);
		}
		if (rc == 0) {
			sh->last_tid = tid;
			sh->last_task_hash = hash_str(HASH_SEED, text);
		}
	} else {
		struct snode *n = file_entry(d, path, rc, text);
		if (n) {
			*out = xstrdup(n->value);
			return 0;
		}
	}
	if (rc < 0) {
		return pass_error(err, &e);
	}
	*out = steal_ptr(&text);
	return 0;
}

static bool dry_dir_visible(struct cgroup_dry_run *d, const char *path, struct error **err,
			    bool *out);

/* cgroup.subtree_control takes "+a -b" and reads back the enabled set. */
static char *subtree_merge(const char *cur, const char *change)
{
	char **v = NULL;
	size_t n = 0;
	_cleanup_free_ char *c = xstrdup(cur ? cur : "");
	char *save = NULL;
	for (char *t = strtok_r(c, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = xstrdup(t);
	}
	_cleanup_free_ char *ch = xstrdup(change);
	for (char *t = strtok_r(ch, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
		if (t[0] != '+' && t[0] != '-')
			continue;
		size_t i = 0;
		while (i < n && strcmp(v[i], t + 1) != 0)
			i++;
		if (t[0] == '+' && i == n) {
			v = xrealloc(v, (n + 1) * sizeof(*v));
			v[n++] = xstrdup(t + 1);
		} else if (t[0] == '-' && i < n) {
			free(v[i]);
			memmove(&v[i], &v[i + 1], (n - i - 1) * sizeof(*v));
			n--;
		}
	}
	size_t len = 2;
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	char *s = xmalloc(len);
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, v[i]);
		free(v[i]);
	}
	strcat(s, "\n");
	free(v);
	return s;
}

/* A move: every thread of process `id` (cgroup.procs) or thread `id`
 * (cgroup.threads) would now read as being in the group `dir`. */
static int dry_move(struct cgroup_dry_run *d, const char *path, const char *dir, bool procs,
		    const char *value, struct error **err)
{
	bool visible = false;
	if (!dry_dir_visible(d, dir, err, &visible))
		return -1;
	if (!visible)
		return error_set_errno(err, ENOENT, "cannot open %s", path);
	uint64_t id;
	_cleanup_error_ struct error *pe = NULL;
	if (parse_u64(value, 1, INT32_MAX, &id, &pe) < 0)
		return error_set_errno(err, EINVAL, "cannot write '%s' to %s", value, path);
	_cleanup_free_ char *cg = cg_of(d, dir);
	if (!cg || !d->proc)
		return 0; /* nothing reads it back as the engine would */
	struct cgroup_shadow *sh = shadow(d);
	char key[16];
	if (!procs) {
		struct snode *n = smap_get(&sh->tasks, thread_key((int)id, key));
		if (!n) {
			n = smap_add(&sh->tasks, key);
			if (sh->last_tid == (int)id) {
				n->has_base = true;
				n->base_hash = sh->last_task_hash;
			}
		}
		free(n->value);
		n->value = xstrdup(cg);
		touch(d, n);
		return 0;
	}
	/* the kernel moves every thread of the process */
	_cleanup_free_ char *taskdir = xasprintf("%s/%d/task", d->proc, (int)id);
	char **tids = NULL;
	size_t nt = 0;
	_cleanup_error_ struct error *le = NULL;
	if (d->inner->list_dir(d->inner_ctx, taskdir, &tids, &nt, &le) < 0)
		return error_set_errno(err, ESRCH, "cannot write '%s' to %s", value, path);
	for (size_t i = 0; i < nt; i++) {
		_cleanup_free_ char *f = xasprintf("%s/%s/cgroup", taskdir, tids[i]);
		_cleanup_free_ char *text = NULL;
		_cleanup_error_ struct error *re = NULL;
		uint64_t tid;
		_cleanup_error_ struct error *te = NULL;
		if (parse_u64(tids[i], 1, INT32_MAX, &tid, &te) < 0 ||
		    d->inner->read_file(d->inner_ctx, f, &text, &re) < 0)
			continue; /* exited meanwhile */
		struct snode *n = smap_get(&sh->tasks, thread_key((int)tid, key));
		if (!n)
			n = smap_add(&sh->tasks, key);
		free(n->value);
		n->value = xstrdup(cg);
		base_set(n, 0, text);
		touch(d, n);
	}
	cgroup_names_free(tids, nt);
	return 0;
}

static int dry_write_file(void *ctx, const char *path, const char *value, struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	d->writes++;
	_cleanup_free_ char *buf = NULL;
	const char *dir, *file;
	split_path(path, &buf, &dir, &file);
	int rc = 0;
	if (strcmp(file, "cgroup.procs") == 0 || strcmp(file, "cgroup.threads") == 0) {
		rc = dry_move(d, path, dir, strcmp(file, "cgroup.procs") == 0, value, err);
	} else {
		_cleanup_free_ char *text = NULL;
		_cleanup_error_ struct error *e = NULL;
		int r = d->inner->read_file(d->inner_ctx, path, &text, &e);
		struct snode *n = file_entry(d, path, r, text);
		char *nv;
		if (strcmp(file, "cgroup.subtree_control") == 0)
			nv = subtree_merge(n ? n->value : r == 0 ? text : NULL, value);
		else /* the kernel keeps a knob whole and reads it back with a newline */
			nv = xasprintf("%s%s", value,
				       value[0] && value[strlen(value) - 1] == '\n' ? "" : "\n");
		if (!n) {
			n = smap_add(&shadow(d)->files, path);
			base_set(n, r, text);
			touch(d, n);
		}
		free(n->value);
		n->value = nv;
	}
	if (rc == 0)
		log_info("dry-run: would write '%s' to %s", value, path);
	return rc;
}

static int dry_is_dir(void *ctx, const char *path, bool *out, struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	if (d->inner->is_dir(d->inner_ctx, path, out, err) < 0)
		return -1;
	struct snode *n = d->shadow ? smap_get(&d->shadow->dirs, path) : NULL;
	if (!n)
		return 0;
	/* the host caught up (someone made or removed it): the entry goes */
	if ((n->dir == DIR_CREATED) == *out) {
		dir_del(d->shadow, path);
		return 0;
	}
	touch(d, n);
	*out = n->dir == DIR_CREATED;
	return 0;
}

static bool dry_dir_visible(struct cgroup_dry_run *d, const char *path, struct error **err,
			    bool *out)
{
	return dry_is_dir(d, path, out, err) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dry_list_dir(void *ctx, const char *path, char ***names, size_t *n,
			struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	struct cgroup_shadow *sh = d->shadow;
	if (!sh || !sh->dirs.n)
		return d->inner->list_dir(d->inner_ctx, path, names, n, err);
	bool visible;
	if (dry_is_dir(d, path, &visible, err) < 0)
		return -1;
	if (!visible)
		return error_set_errno(err, ENOENT, "cannot open directory %s", path);
	char **v = NULL;
	size_t cnt = 0;
	_cleanup_error_ struct error *e = NULL;
	if (d->inner->list_dir(d->inner_ctx, path, &v, &cnt, &e) < 0) {
		struct snode *self = smap_get(&sh->dirs, path);
		if (error_code(e) != ENOENT || !self || self->dir != DIR_CREATED) {
			return pass_error(err, &e);
		}
	}
	/* hide the removed ones */
	size_t keep = 0;
	for (size_t i = 0; i < cnt; i++) {
		_cleanup_free_ char *child = path_join(path, v[i], NULL);
		struct snode *c = smap_get(&sh->dirs, child);
		if (c && c->dir == DIR_REMOVED) {
			touch(d, c);
			free(v[i]);
			continue;
		}
		if (c) /* created, and the host has it now */
			dir_del(sh, child);
		v[keep++] = v[i];
	}
	cnt = keep;
	/* add the created ones */
	struct snode *k = smap_get(&sh->kids, path);
	for (size_t i = 0; k && i < k->n_kids; i++) {
		_cleanup_free_ char *child = path_join(path, k->kids[i], NULL);
		struct snode *c = smap_get(&sh->dirs, child);
		if (!c || c->dir != DIR_CREATED)
			continue;
		touch(d, c);
		v = xrealloc(v, (cnt + 1) * sizeof(*v));
		v[cnt++] = xstrdup(k->kids[i]);
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*names = v;
	*n = cnt;
	return 0;
}

static int dry_mkdir(void *ctx, const char *path, struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	bool is_dir;
	if (dry_is_dir(d, path, &is_dir, err) < 0)
		return -1;
	if (is_dir)
		return error_set_errno(err, EEXIST, "cannot create %s", path);
	d->mkdirs++;
	struct snode *n = d->shadow ? smap_get(&d->shadow->dirs, path) : NULL;
	if (n && n->dir == DIR_REMOVED) /* it exists on the host: visible again */
		dir_del(d->shadow, path);
	else
		dir_set(d, path, DIR_CREATED);
	log_info("dry-run: would create %s", path);
	return 0;
}

static int dry_rmdir(void *ctx, const char *path, struct error **err)
{
	struct cgroup_dry_run *d = ctx;
	char **names = NULL;
	size_t n = 0;
	if (dry_list_dir(d, path, &names, &n, err) < 0)
		return -1;
	cgroup_names_free(names, n);
	if (n) /* as the kernel says of a group with children */
		return error_set_errno(err, EBUSY, "cannot remove %s", path);
	d->rmdirs++;
	struct snode *s = d->shadow ? smap_get(&d->shadow->dirs, path) : NULL;
	if (s && s->dir == DIR_CREATED)
		dir_del(d->shadow, path);
	else
		dir_set(d, path, DIR_REMOVED);
	drop_under(d, path);
	log_info("dry-run: would remove %s", path);
	return 0;
}

const struct cgroup_ops cgroup_ops_dry_run = {
	.name = "dry-run",
	.read_file = dry_read_file,
	.write_file = dry_write_file,
	.mkdir = dry_mkdir,
	.rmdir = dry_rmdir,
	.list_dir = dry_list_dir,
	.is_dir = dry_is_dir,
};

/* --- lifetime ----------------------------------------------------------------- */

void cgroup_dry_run_set_mount(struct cgroup_dry_run *d, const char *mount)
{
	if (d->mount && strcmp(d->mount, mount) == 0)
		return;
	free(d->mount);
	d->mount = xstrdup(mount);
}

struct idle {
	unsigned gen;
	unsigned passes;
};

static bool node_idle(const struct snode *n, const void *arg)
{
	const struct idle *i = arg;
	return i->gen - n->gen > i->passes;
}

void cgroup_dry_run_end_pass(struct cgroup_dry_run *d)
{
	struct cgroup_shadow *sh = d->shadow;
	if (!sh)
		return;
	sh->gen++;
	struct idle idle = { sh->gen, d->idle_passes ? d->idle_passes : CGROUP_DRY_RUN_IDLE_PASSES };
	/* a filter is a pass over every entry: with a long horizon, every
	 * quarter of it (an idle entry then goes within 5/4 of it) */
	if (idle.passes >= 8 && sh->gen % (idle.passes / 4))
		return;
	smap_filter(&sh->files, node_idle, &idle);
	smap_filter(&sh->tasks, node_idle, &idle);
	/* groups with what lies below them */
	size_t nv = 0;
	char **victims = dirs_matching(sh, node_idle, &idle, &nv);
	for (size_t i = 0; i < nv; i++) {
		dir_del(sh, victims[i]);
		drop_under(d, victims[i]);
		free(victims[i]);
	}
	free(victims);
}

size_t cgroup_dry_run_entries(const struct cgroup_dry_run *d)
{
	const struct cgroup_shadow *sh = d->shadow;
	return sh ? sh->files.n + sh->dirs.n + sh->tasks.n + sh->kids.n : 0;
}

void cgroup_dry_run_clear(struct cgroup_dry_run *d)
{
	struct cgroup_shadow *sh = d->shadow;
	if (sh) {
		smap_clear(&sh->files);
		smap_clear(&sh->dirs);
		smap_clear(&sh->kids);
		smap_clear(&sh->tasks);
		free(sh);
	}
	d->shadow = NULL;
	free(d->mount);
	d->mount = NULL;
}
