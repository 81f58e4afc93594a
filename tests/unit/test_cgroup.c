/* test_cgroup.c - the cgroup engine (src/cgroup/engine.c, ops.c) against a
 * fake cgroupfs and a fake /proc in a temp dir. Like libvirt's test mocks,
 * the test's backend wraps the real one and plays the kernel: mkdir fills a
 * group with the interface files its parent's subtree_control allows,
 * subtree_control/cgroup.type/cgroup.procs/cgroup.threads writes follow the
 * cgroup v2 rules in FACTS.md (EOPNOTSUPP, ENOENT, ESRCH, EBUSY), moves
 * update /proc/PID/task/TID/cgroup, and every write is logged so tests can
 * assert what was written and in which order. Nothing here touches
 * /sys/fs/cgroup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vcpud/cgroup.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

/* --- small file helpers ---------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return xstrdup("");
	}
	return buf;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* --- the fake kernel ------------------------------------------------------- */

#define MAX_LOG 1024

struct fake {
	char *outer;   /* mkdtemp: holds cg/ and proc/ only */
	char *mount;   /* outer/cg: the "cgroup2 mount" */
	char *proc;    /* outer/proc */
	char *root;    /* mount/vcpud.slice: the tree root */
	char *log[MAX_LOG];
	size_t nlog;
	/* failure injection */
	const char *fail_suffix; /* a write to a path ending so fails with fail_errno */
	int fail_errno;
	pid_t vanish_tid;        /* this TID exits as it is written to cgroup.threads */
	unsigned ops_calls;
};

static struct fake F;

static const char *const CTRL_ORDER[] = { "cpuset", "cpu", "io", "memory", "hugetlb",
					  "pids", "rdma", "misc" };

static bool domain_only(const char *c)
{
	return strcmp(c, "memory") == 0 || strcmp(c, "io") == 0;
}

static const char *rel_of(const char *abs)
{
	size_t n = strlen(F.mount);
	if (strncmp(abs, F.mount, n) != 0)
		return NULL;
	return abs[n] ? abs + n : "/";
}

static char *dirname_dup(const char *path)
{
	char *d = xstrdup(path);
	char *s = strrchr(d, '/');
	if (s && s != d)
		*s = '\0';
	return d;
}

static bool list_has(const char *list, const char *name)
{
	char *copy = xstrdup(list), *save = NULL;
	bool found = false;
	for (char *t = strtok_r(copy, " \n", &save); t && !found; t = strtok_r(NULL, " \n", &save))
		found = strcmp(t, name) == 0;
	free(copy);
	return found;
}

static char *file_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static char *read_in(const char *dir, const char *name)
{
	char *p = file_in(dir, name);
	char *s = slurp(p);
	free(p);
	return s ? s : xstrdup("");
}

static void write_in(const char *dir, const char *name, const char *text)
{
	char *p = file_in(dir, name);
	spit(p, text);
	free(p);
}

static void create_if_missing(const char *dir, const char *name, const char *text)
{
	char *p = file_in(dir, name);
	if (!exists(p))
		spit(p, text);
	free(p);
}

/* The interface files a group gets for the controllers in `ctrls` (its
 * parent's subtree_control), as the kernel creates them. */
static void add_ctrl_files(const char *dir, const char *ctrls)
{
	write_in(dir, "cgroup.controllers", ctrls);
	if (list_has(ctrls, "cpu")) {
		create_if_missing(dir, "cpu.weight", "100\n");
		create_if_missing(dir, "cpu.max", "max 100000\n");
	}
	if (list_has(ctrls, "cpuset")) {
		create_if_missing(dir, "cpuset.cpus", "\n");
		create_if_missing(dir, "cpuset.mems", "\n");
	}
	if (list_has(ctrls, "memory"))
		create_if_missing(dir, "memory.max", "max\n");
}

static void populate(const char *dir)
{
	char *parent = dirname_dup(dir);
	char *ctrls = read_in(parent, "cgroup.subtree_control");
	write_in(dir, "cgroup.type", "domain\n");
	write_in(dir, "cgroup.subtree_control", "\n");
	write_in(dir, "cgroup.procs", "");
	write_in(dir, "cgroup.threads", "");
	write_in(dir, "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
	add_ctrl_files(dir, ctrls);
	free(ctrls);
	free(parent);
}

/* Visit every task of the fake /proc: fn(pid, tid, path of its cgroup file). */
static void for_each_task(void (*fn)(pid_t pid, pid_t tid, const char *cgfile, void *arg),
			  void *arg)
{
	DIR *d = opendir(F.proc);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *taskdir = xasprintf("%s/%s/task", F.proc, de->d_name);
		DIR *t = opendir(taskdir);
		if (t) {
			struct dirent *te;
			while ((te = readdir(t))) {
				if (te->d_name[0] == '.')
					continue;
				char *cgfile = xasprintf("%s/%s/cgroup", taskdir, te->d_name);
				fn(atoi(de->d_name), atoi(te->d_name), cgfile, arg);
				free(cgfile);
			}
			closedir(t);
		}
		free(taskdir);
	}
	closedir(d);
}

static void set_task_cg(pid_t pid, pid_t tid, const char *cg)
{
	char *text = xasprintf("0::%s\n", cg);
	char *p = xasprintf("%s/%d/task/%d/cgroup", F.proc, (int)pid, (int)tid);
	spit(p, text);
	free(p);
	if (pid == tid) { /* /proc/PID/cgroup is the leader's */
		p = xasprintf("%s/%d/cgroup", F.proc, (int)pid);
		spit(p, text);
		free(p);
	}
	free(text);
}

struct find_tid { pid_t tid, pid; char *cg; };

static void find_tid_fn(pid_t pid, pid_t tid, const char *cgfile, void *arg)
{
	struct find_tid *f = arg;
	if (tid != f->tid)
		return;
	f->pid = pid;
	char *s = slurp(cgfile);
	f->cg = xstrdup(s + 3); /* "0::" */
	f->cg[strcspn(f->cg, "\n")] = '\0';
	free(s);
}

struct move_all { pid_t pid; const char *cg; };

static void move_all_fn(pid_t pid, pid_t tid, const char *cgfile, void *arg)
{
	(void)cgfile;
	struct move_all *m = arg;
	if (pid == m->pid)
		set_task_cg(pid, tid, m->cg);
}

struct busy { const char *cg; bool busy; };

static void busy_fn(pid_t pid, pid_t tid, const char *cgfile, void *arg)
{
	(void)pid;
	(void)tid;
	struct busy *b = arg;
	char *s = slurp(cgfile);
	s[strcspn(s, "\n")] = '\0';
	if (strcmp(s + 3, b->cg) == 0)
		b->busy = true;
	free(s);
}

static bool has_subdirs(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while ((de = readdir(d)) && !found) {
		if (de->d_name[0] == '.')
			continue;
		char *p = file_in(dir, de->d_name);
		struct stat st;
		found = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		free(p);
	}
	closedir(d);
	return found;
}

static int kernel_subtree_control(const char *dir, const char *value)
{
	char *ctrls = read_in(dir, "cgroup.controllers");
	char *cur = read_in(dir, "cgroup.subtree_control");
	char *type = read_in(dir, "cgroup.type");
	bool on[ARRAY_SIZE(CTRL_ORDER)];
	for (size_t i = 0; i < ARRAY_SIZE(CTRL_ORDER); i++)
		on[i] = list_has(cur, CTRL_ORDER[i]);
	int rc = 0;
	char *copy = xstrdup(value), *save = NULL;
	for (char *t = strtok_r(copy, " \n", &save); t && !rc; t = strtok_r(NULL, " \n", &save)) {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(CTRL_ORDER); i++)
			if (strcmp(t + 1, CTRL_ORDER[i]) == 0)
				break;
		if ((t[0] != '+' && t[0] != '-') || i == ARRAY_SIZE(CTRL_ORDER))
			rc = EINVAL;
		else if (!list_has(ctrls, t + 1))
			rc = ENOENT;
		else if (t[0] == '+' && domain_only(t + 1) && strstr(type, "threaded"))
			rc = EOPNOTSUPP; /* +memory in a threaded domain root */
		else
			on[i] = t[0] == '+';
	}
	free(copy);
	if (!rc) {
		char buf[128] = "";
		for (size_t i = 0; i < ARRAY_SIZE(CTRL_ORDER); i++)
			if (on[i])
				snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
					 buf[0] ? " " : "", CTRL_ORDER[i]);
		strcat(buf, "\n");
		write_in(dir, "cgroup.subtree_control", buf);
		/* children see the controllers now */
		DIR *d = opendir(dir);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *c = file_in(dir, de->d_name);
			struct stat st;
			if (stat(c, &st) == 0 && S_ISDIR(st.st_mode))
				add_ctrl_files(c, buf);
			free(c);
		}
		closedir(d);
	}
	free(ctrls);
	free(cur);
	free(type);
	return rc;
}

static int kernel_type(const char *dir, const char *value)
{
	if (strcmp(value, "threaded") != 0 && strcmp(value, "threaded\n") != 0)
		return EINVAL;
	char *parent = dirname_dup(dir);
	char *psc = read_in(parent, "cgroup.subtree_control");
	int rc = 0;
	if (list_has(psc, "memory") || list_has(psc, "io")) {
		rc = EOPNOTSUPP; /* parent has domain controllers enabled */
	} else {
		write_in(dir, "cgroup.type", "threaded\n");
		char *pt = read_in(parent, "cgroup.type");
		if (strcmp(pt, "domain\n") == 0)
			write_in(parent, "cgroup.type", "domain threaded\n");
		free(pt);
		/* the other domain children become invalid until threaded */
		DIR *d = opendir(parent);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *c = file_in(parent, de->d_name);
			char *ct = read_in(c, "cgroup.type");
			if (strcmp(ct, "domain\n") == 0)
				write_in(c, "cgroup.type", "domain invalid\n");
			free(ct);
			free(c);
		}
		closedir(d);
	}
	free(psc);
	free(parent);
	return rc;
}

static int kernel_procs(const char *dir, const char *value)
{
	pid_t pid = atoi(value);
	char *pd = xasprintf("%s/%d", F.proc, (int)pid);
	bool alive = exists(pd);
	free(pd);
	if (!alive)
		return ESRCH;
	char *type = read_in(dir, "cgroup.type");
	char *sc = read_in(dir, "cgroup.subtree_control");
	int rc = 0;
	/* no internal processes in a plain domain with controllers enabled */
	if (strcmp(type, "domain\n") == 0 && strcmp(sc, "\n") != 0 && has_subdirs(dir))
		rc = EBUSY;
	free(type);
	free(sc);
	if (!rc) {
		struct move_all m = { pid, rel_of(dir) };
		for_each_task(move_all_fn, &m);
	}
	return rc;
}

static int kernel_threads(const char *dir, const char *value)
{
	pid_t tid = atoi(value);
	struct find_tid f = { .tid = tid };
	for_each_task(find_tid_fn, &f);
	if (!f.cg)
		return ESRCH;
	int rc = 0;
	if (tid == F.vanish_tid) {
		char *cmd = xasprintf("%s/%d/task/%d", F.proc, (int)f.pid, (int)tid);
		rm_rf(cmd);
		free(cmd);
		rc = ESRCH;
	} else {
		/* only within one threaded domain: the thread must already be in
		 * the destination's domain root (its parent) or below it */
		char *parent = dirname_dup(dir);
		const char *dom = rel_of(parent);
		size_t n = strlen(dom);
		if (strncmp(f.cg, dom, n) != 0 || (f.cg[n] != '\0' && f.cg[n] != '/'))
			rc = EOPNOTSUPP;
		else
			set_task_cg(f.pid, tid, rel_of(dir));
		free(parent);
	}
	free(f.cg);
	return rc;
}

static int fake_write(void *ctx, const char *path, const char *value, struct error **err)
{
	(void)ctx;
	F.ops_calls++;
	char *dir = dirname_dup(path);
	const char *file = strrchr(path, '/') + 1;
	const char *rel = rel_of(dir);
	assert_non_null(rel); /* never outside the fake mount */
	if (F.nlog < MAX_LOG)
		F.log[F.nlog++] = xasprintf("%s %s %s", rel, file, value);

	int rc = 0;
	size_t pl = strlen(path), sl = F.fail_suffix ? strlen(F.fail_suffix) : 0;
	if (F.fail_suffix && pl >= sl && strcmp(path + pl - sl, F.fail_suffix) == 0)
		rc = F.fail_errno;
	else if (!exists(path))
		rc = ENOENT; /* cgroupfs files are never created by a write */
	else if (strcmp(file, "cgroup.subtree_control") == 0)
		rc = kernel_subtree_control(dir, value);
	else if (strcmp(file, "cgroup.type") == 0)
		rc = kernel_type(dir, value);
	else if (strcmp(file, "cgroup.procs") == 0)
		rc = kernel_procs(dir, value);
	else if (strcmp(file, "cgroup.threads") == 0)
		rc = kernel_threads(dir, value);
	else {
		/* a knob: the kernel stores the new value whole and reads it
		 * back with a newline */
		char *text = xasprintf("%s%s", value,
				       value[0] && value[strlen(value) - 1] == '\n' ? "" : "\n");
		spit(path, text);
		free(text);
	}
	free(dir);
	if (rc)
		return error_set_errno(err, rc, "cannot write '%s' to %s", value, path);
	return 0;
}

static int fake_mkdir(void *ctx, const char *path, struct error **err)
{
	(void)ctx;
	F.ops_calls++;
	assert_non_null(rel_of(path));
	if (cgroup_ops_real.mkdir(NULL, path, err) < 0)
		return -1;
	populate(path);
	return 0;
}

static int fake_rmdir(void *ctx, const char *path, struct error **err)
{
	(void)ctx;
	F.ops_calls++;
	const char *rel = rel_of(path);
	assert_non_null(rel);
	struct busy b = { rel, false };
	for_each_task(busy_fn, &b);
	if (b.busy || has_subdirs(path))
		return error_set_errno(err, EBUSY, "cannot remove %s", path);
	/* cgroupfs removes its interface files itself */
	DIR *d = opendir(path);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *f = file_in(path, de->d_name);
		unlink(f);
		free(f);
	}
	closedir(d);
	return cgroup_ops_real.rmdir(NULL, path, err);
}

static int fake_read(void *ctx, const char *path, char **out, struct error **err)
{
	(void)ctx;
	F.ops_calls++;
	return cgroup_ops_real.read_file(NULL, path, out, err);
}

static int fake_list(void *ctx, const char *path, char ***names, size_t *n, struct error **err)
{
	(void)ctx;
	return cgroup_ops_real.list_dir(NULL, path, names, n, err);
}

static int fake_is_dir(void *ctx, const char *path, bool *out, struct error **err)
{
	(void)ctx;
	return cgroup_ops_real.is_dir(NULL, path, out, err);
}

static const struct cgroup_ops fake_ops = {
	.name = "fake",
	.read_file = fake_read,
	.write_file = fake_write,
	.mkdir = fake_mkdir,
	.rmdir = fake_rmdir,
	.list_dir = fake_list,
	.is_dir = fake_is_dir,
};

/* A process with threads, in cgroup `cg` (not under the root). */
static void proc_add(pid_t pid, const pid_t *tids, size_t n, const char *cg)
{
	char *d = xasprintf("%s/%d", F.proc, (int)pid);
	mkdir(d, 0755);
	char *t = xasprintf("%s/task", d);
	mkdir(t, 0755);
	for (size_t i = 0; i < n; i++) {
		char *td = xasprintf("%s/%d", t, (int)tids[i]);
		mkdir(td, 0755);
		free(td);
		set_task_cg(pid, tids[i], cg);
	}
	free(t);
	free(d);
}

static void proc_del(pid_t pid)
{
	char *d = xasprintf("%s/%d", F.proc, (int)pid);
	rm_rf(d);
	free(d);
}

static char *task_cg(pid_t pid, pid_t tid)
{
	char *p = xasprintf("%s/%d/task/%d/cgroup", F.proc, (int)pid, (int)tid);
	char *s = slurp(p);
	free(p);
	assert_non_null(s);
	s[strcspn(s, "\n")] = '\0';
	memmove(s, s + 3, strlen(s + 3) + 1);
	return s;
}

static void log_clear(void)
{
	for (size_t i = 0; i < F.nlog; i++)
		free(F.log[i]);
	F.nlog = 0;
}

/* Index of the first write whose "REL FILE VALUE" starts with `prefix`. */
static size_t log_find(const char *prefix)
{
	for (size_t i = 0; i < F.nlog; i++)
		if (str_has_prefix(F.log[i], prefix))
			return i;
	fail_msg("no write '%s...' among %zu writes", prefix, F.nlog);
	return SIZE_MAX;
}

static bool log_has(const char *prefix)
{
	for (size_t i = 0; i < F.nlog; i++)
		if (str_has_prefix(F.log[i], prefix))
			return true;
	return false;
}

static void log_dump(void)
{
	for (size_t i = 0; i < F.nlog; i++)
		print_message("  write %2zu: %s\n", i, F.log[i]);
}

#define assert_before(a, b)                                                   \
	do {                                                                  \
		size_t ia_ = log_find(a), ib_ = log_find(b);                  \
		if (ia_ >= ib_) {                                             \
			log_dump();                                           \
			fail_msg("'%s' (#%zu) not before '%s' (#%zu)", a, ia_, \
				 b, ib_);                                     \
		}                                                             \
	} while (0)

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	char tmpl[] = "/tmp/vcpud-cgroup-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	F.outer = xstrdup(tmpl);
	F.mount = xasprintf("%s/cg", F.outer);
	F.proc = xasprintf("%s/proc", F.outer);
	F.root = xasprintf("%s/vcpud.slice", F.mount);
	assert_int_equal(mkdir(F.mount, 0755), 0);
	assert_int_equal(mkdir(F.proc, 0755), 0);
	/* the mount root of a freshly booted kernel: nothing enabled */
	write_in(F.mount, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	write_in(F.mount, "cgroup.subtree_control", "\n");
	write_in(F.mount, "cgroup.procs", "1\n");
	write_in(F.mount, "cgroup.threads", "1\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_clear();
	rm_rf(F.outer);
	free(F.outer);
	free(F.mount);
	free(F.proc);
	free(F.root);
	return 0;
}

static struct cgroup_engine *engine_v(bool dry_run, unsigned verify_ticks)
{
	struct cgroup_engine_config cfg = {
		.cgroup_mount = F.mount,
		.sysroot = F.outer,
		.ops = &fake_ops,
		.dry_run = dry_run,
		.verify_ticks = verify_ticks,
	};
	struct cgroup_engine *e = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_engine_new(&cfg, &e, &err), 0);
	return e;
}

static struct cgroup_engine *engine(bool dry_run)
{
	struct cgroup_engine_config cfg = {
		.cgroup_mount = F.mount,
		.sysroot = F.outer,
		.ops = &fake_ops,
		.dry_run = dry_run,
	};
	struct cgroup_engine *e = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_engine_new(&cfg, &e, &err), 0);
	return e;
}

/* The standard desired tree: tenant acme, VM 7 = process 1000 with threads
 * 1000 (main), 1001 and 1002 (vCPUs 0 and 1) and 1003 (I/O). */
struct std {
	struct cgroup_vcpu_spec vcpus[2];
	struct cgroup_vm_spec vms[2];
	struct cgroup_tenant_spec tenants[2];
	struct cgroup_tree tree;
};

static const pid_t VM7_TIDS[] = { 1000, 1001, 1002, 1003 };

static void std_init(struct std *s)
{
	memset(s, 0, sizeof(*s));
	s->vcpus[0] = (struct cgroup_vcpu_spec){ .index = 0, .tid = 1001, .cpus = "0" };
	s->vcpus[1] = (struct cgroup_vcpu_spec){
		.index = 1, .tid = 1002, .cpus = "1",
		.cpu_max = { .set = true, .unlimited = true } /* as the kernel starts */
	};
	s->vms[0] = (struct cgroup_vm_spec){
		.name = "7", .pid = 1000, .cpus = "0-3", .mems = "0", .emulator_cpus = "2-3",
		.memory_max = { .set = true, .bytes = 512ULL << 20 },
		.vcpus = s->vcpus, .n_vcpus = 2,
	};
	s->tenants[0] = (struct cgroup_tenant_spec){
		.name = "acme", .weight = 200, .cpus = "3,0-2",
		.cpu_max = { .set = true, .quota_us = 200000, .period_us = 100000 },
		.memory_max = { .set = true, .bytes = 1ULL << 30 },
		.vms = s->vms, .n_vms = 1,
	};
	s->tree = (struct cgroup_tree){ .root = F.root, .tenants = s->tenants, .n_tenants = 1 };
	proc_add(1000, VM7_TIDS, ARRAY_SIZE(VM7_TIDS), "/user.slice/qemu.scope");
}

static struct cgroup_reconcile_stats run(struct cgroup_engine *e, const struct cgroup_tree *t)
{
	struct cgroup_reconcile_stats st;
	struct error *err = NULL;
	log_clear();
	if (cgroup_tree_reconcile(e, t, &st, NULL, &err) != 0) {
		log_dump();
		fail_msg("reconcile failed: %s", err ? err->msg : "?");
	}
	assert_null(err);
	assert_int_equal(st.errors, 0);
	return st;
}

static char *at(const char *rel, const char *file)
{
	char *p = xasprintf("%s/%s/%s", F.mount, rel, file);
	char *s = slurp(p);
	free(p);
	return s ? s : xstrdup("(missing)");
}

#define assert_file(rel, file, want)                 \
	do {                                         \
		char *s_ = at(rel, file);            \
		assert_string_equal(s_, want);       \
		free(s_);                            \
	} while (0)

#define VM7 "/vcpud.slice/tenant-acme/vm-7"

/* --- tests ----------------------------------------------------------------- */

static void test_first_reconcile(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st = run(e, &s.tree);

	assert_int_equal(st.mkdirs, 6); /* root, tenant, vm, emulator, vcpu0, vcpu1 */
	assert_int_equal(st.moves, 5);  /* the process, then its four threads */
	assert_int_equal(st.rmdirs, 0);
	assert_int_equal(st.vanished, 0);
	assert_int_equal(st.writes, F.nlog);

	/* ancestors first, then down the tree */
	assert_string_equal(F.log[0], "/ cgroup.subtree_control +cpu +cpuset +memory");
	assert_string_equal(F.log[1], "/vcpud.slice cgroup.subtree_control +cpu +cpuset +memory");
	assert_before("/vcpud.slice/tenant-acme cpuset.cpus", "/vcpud.slice/tenant-acme cgroup.subtree_control");
	assert_before("/vcpud.slice/tenant-acme cgroup.subtree_control", VM7 " ");
	/* cpusets top-down: the tenant spans the VM, the VM its vCPUs */
	assert_before("/vcpud.slice/tenant-acme cpuset.cpus 0-3", VM7 " cpuset.cpus 0-3");
	assert_before(VM7 " cpuset.cpus", VM7 "/vcpu0 cpuset.cpus 0");
	assert_before(VM7 " cpuset.cpus", VM7 "/emulator cpuset.cpus 2-3");
	/* threaded before the VM enables controllers; +memory never inside a VM */
	assert_before(VM7 "/emulator cgroup.type threaded", VM7 " cgroup.subtree_control");
	assert_before(VM7 "/vcpu1 cgroup.type threaded", VM7 " cgroup.subtree_control");
	assert_int_equal(strcmp(F.log[log_find(VM7 " cgroup.subtree_control")],
				VM7 " cgroup.subtree_control +cpu +cpuset"), 0);
	assert_before(VM7 " cgroup.subtree_control", VM7 "/vcpu0 cpuset.cpus");
	/* the process into the VM before any thread moves */
	assert_before(VM7 " cgroup.subtree_control", VM7 " cgroup.procs 1000");
	assert_before(VM7 " cgroup.procs 1000", VM7 "/vcpu0 cgroup.threads 1001");
	assert_before(VM7 " cgroup.procs 1000", VM7 "/emulator cgroup.threads 1000");
	assert_true(log_has(VM7 "/vcpu1 cgroup.threads 1002"));
	assert_true(log_has(VM7 "/emulator cgroup.threads 1003"));
	/* knobs already right are not written: vcpu1's cpu.max is "max 100000" */
	assert_false(log_has(VM7 "/vcpu1 cpu.max"));
	assert_false(log_has(VM7 "/vcpu0 cpu.weight"));

	/* the result */
	assert_file("vcpud.slice/tenant-acme", "cpu.weight", "200\n");
	assert_file("vcpud.slice/tenant-acme", "cpu.max", "200000 100000\n");
	assert_file("vcpud.slice/tenant-acme", "memory.max", "1073741824\n");
	assert_file("vcpud.slice/tenant-acme", "cpuset.cpus", "0-3\n");
	assert_file("vcpud.slice/tenant-acme", "cgroup.subtree_control", "cpuset cpu memory\n");
	assert_file("vcpud.slice/tenant-acme/vm-7", "memory.max", "536870912\n");
	assert_file("vcpud.slice/tenant-acme/vm-7", "cpuset.mems", "0\n");
	assert_file("vcpud.slice/tenant-acme/vm-7", "cgroup.type", "domain threaded\n");
	assert_file("vcpud.slice/tenant-acme/vm-7", "cgroup.subtree_control", "cpuset cpu\n");
	assert_file("vcpud.slice/tenant-acme/vm-7/vcpu0", "cgroup.type", "threaded\n");
	assert_file("vcpud.slice/tenant-acme/vm-7/emulator", "cgroup.type", "threaded\n");
	char *cg;
	assert_string_equal(cg = task_cg(1000, 1000), VM7 "/emulator");
	free(cg);
	assert_string_equal(cg = task_cg(1000, 1001), VM7 "/vcpu0");
	free(cg);
	assert_string_equal(cg = task_cg(1000, 1002), VM7 "/vcpu1");
	free(cg);
	assert_string_equal(cg = task_cg(1000, 1003), VM7 "/emulator");
	free(cg);
}

static void test_second_reconcile_writes_nothing(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	if (F.nlog)
		log_dump();
	assert_int_equal(st.writes, 0);
	assert_int_equal(F.nlog, 0);
	assert_int_equal(st.mkdirs, 0);
	assert_int_equal(st.moves, 0);
	assert_int_equal(st.rmdirs, 0);
}

static void test_adopt_writes_nothing(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	struct cgroup_engine *e = engine(false);
	run(e, &s.tree);
	cgroup_engine_free(e);
	/* a restarted daemon: a fresh engine on the tree an earlier run built */
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *fresh = engine(false);
	struct cgroup_reconcile_stats st = run(fresh, &s.tree);
	assert_int_equal(st.writes, 0);
	assert_int_equal(st.mkdirs, 0);
	assert_int_equal(st.moves, 0);
}

static void test_one_change_one_write(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);

	s.tenants[0].weight = 500;
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.writes, 1);
	assert_string_equal(F.log[0], "/vcpud.slice/tenant-acme cpu.weight 500");
	assert_file("vcpud.slice/tenant-acme", "cpu.weight", "500\n");

	/* a throttle overlay on vCPU 1 and its restore: one write each */
	s.vcpus[1].cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 5000 };
	st = run(e, &s.tree);
	assert_int_equal(st.writes, 1);
	assert_string_equal(F.log[0], VM7 "/vcpu1 cpu.max 5000 100000");
	s.vcpus[1].cpu_max = (struct cgroup_cpu_max){ .set = true, .unlimited = true };
	st = run(e, &s.tree);
	assert_int_equal(st.writes, 1);
	assert_string_equal(F.log[0], VM7 "/vcpu1 cpu.max max 100000");

	/* the same CPUs written differently are the same set */
	s.vms[0].cpus = "0,1,2,3";
	st = run(e, &s.tree);
	assert_int_equal(st.writes, 0);
	/* "leave alone" leaves even a value that differs */
	s.tenants[0].weight = 0;
	write_in(F.root, "tenant-acme/cpu.weight", "77\n");
	st = run(e, &s.tree);
	assert_int_equal(st.writes, 0);
}

static void test_memory_rounded_to_pages(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	s.vms[0].memory_max.bytes = 1000000; /* not a whole number of pages */
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);
	long ps = sysconf(_SC_PAGESIZE);
	char *want = xasprintf("%llu\n", 1000000ULL / (unsigned long long)ps * (unsigned long long)ps);
	assert_file("vcpud.slice/tenant-acme/vm-7", "memory.max", want);
	free(want);
	assert_int_equal(run(e, &s.tree).writes, 0);
	/* and back to unlimited */
	s.vms[0].memory_max = (struct cgroup_mem_max){ .set = true, .unlimited = true };
	assert_int_equal(run(e, &s.tree).writes, 1);
	assert_file("vcpud.slice/tenant-acme/vm-7", "memory.max", "max\n");
}

static void test_new_threads_and_migration(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);
	/* QEMU starts a new thread: it inherits the main thread's group (the
	 * emulator), so nothing moves; a vCPU thread restarted by the VMM and
	 * inheriting the emulator group is moved back */
	char *d = xasprintf("%s/1000/task/1004", F.proc);
	mkdir(d, 0755);
	free(d);
	set_task_cg(1000, 1004, VM7 "/emulator");
	set_task_cg(1000, 1001, VM7 "/emulator");
	/* a steady reconcile trusts what it knows: no read, no move yet */
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.reads, 0);
	assert_int_equal(st.moves, 0);
	/* at the re-read (forget: as when the entries fall due) it is put right */
	cgroup_engine_forget(e);
	st = run(e, &s.tree);
	assert_int_equal(st.moves, 1);
	assert_int_equal(st.writes, 1);
	assert_string_equal(F.log[0], VM7 "/vcpu0 cgroup.threads 1001");

	/* the VM shrinks to one vCPU: 1002 joins the emulator, vcpu1 goes */
	s.vms[0].n_vcpus = 1;
	st = run(e, &s.tree);
	assert_int_equal(st.moves, 1);
	assert_int_equal(st.rmdirs, 1);
	assert_string_equal(F.log[0], VM7 "/emulator cgroup.threads 1002");
	char *p = xasprintf("%s/tenant-acme/vm-7/vcpu1", F.root);
	assert_false(exists(p));
	free(p);
}

static void test_removal(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	/* acme: VMs 7 and 8; beta: VM 9 */
	static const pid_t t8[] = { 2000, 2001 }, t9[] = { 3000, 3001 };
	proc_add(2000, t8, 2, "/user.slice");
	proc_add(3000, t9, 2, "/user.slice");
	struct cgroup_vcpu_spec v8 = { .index = 0, .tid = 2001 }, v9 = { .index = 0, .tid = 3001 };
	s.vms[1] = (struct cgroup_vm_spec){ .name = "8", .pid = 2000, .vcpus = &v8, .n_vcpus = 1 };
	s.tenants[0].n_vms = 2;
	struct cgroup_vm_spec vm9 = { .name = "9", .pid = 3000, .vcpus = &v9, .n_vcpus = 1 };
	s.tenants[1] = (struct cgroup_tenant_spec){ .name = "beta", .weight = 50, .vms = &vm9, .n_vms = 1 };
	s.tree.n_tenants = 2;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);

	/* directories that are not vcpud's are never touched */
	char *other = xasprintf("%s/other.scope", F.root);
	assert_int_equal(mkdir(other, 0755), 0);
	char *keep = xasprintf("%s/tenant-acme/not-a-vm", F.root);
	assert_int_equal(mkdir(keep, 0755), 0);

	/* VM 8 is gone and beta is deleted, but their processes still run:
	 * nothing is forced, each busy group is reported and left, and its
	 * parent is not even tried */
	s.tenants[0].n_vms = 1;
	s.tree.n_tenants = 1;
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.rmdirs, 0);
	assert_int_equal(st.busy, 4); /* vm-8/{emulator,vcpu0}, vm-9/{emulator,vcpu0} */
	assert_int_equal(st.writes, 0);
	char *vm8 = xasprintf("%s/tenant-acme/vm-8", F.root);
	char *beta = xasprintf("%s/tenant-beta", F.root);
	assert_true(exists(vm8));
	assert_true(exists(beta));

	/* the processes exit: the next tick removes everything, leaf first */
	proc_del(2000);
	proc_del(3000);
	st = run(e, &s.tree);
	assert_int_equal(st.busy, 0);
	assert_int_equal(st.writes, 0);
	assert_int_equal(st.rmdirs, 7); /* 2 + vm-8, 2 + vm-9, tenant-beta */
	assert_false(exists(vm8));
	assert_false(exists(beta));
	assert_true(exists(other));
	assert_true(exists(keep));
	assert_int_equal(run(e, &s.tree).rmdirs, 0);
	char *vm7 = xasprintf("%s/tenant-acme/vm-7/vcpu1", F.root);
	assert_true(exists(vm7));
	free(vm7);
	free(vm8);
	free(beta);
	free(other);
	free(keep);
}

static void test_removal_leaves_unknown_children(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &s.tree);
	proc_del(1000);
	/* someone else's group inside the VM: the VM cannot go, and is not forced */
	char *extra = xasprintf("%s/tenant-acme/vm-7/extra", F.root);
	assert_int_equal(mkdir(extra, 0755), 0);
	s.tree.n_tenants = 0;
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.rmdirs, 3); /* emulator, vcpu0, vcpu1 */
	assert_int_equal(st.busy, 1);   /* vm-7 */
	assert_true(exists(extra));
	free(extra);
	char *t = xasprintf("%s/tenant-acme", F.root);
	assert_true(exists(t));
	free(t);
	assert_true(exists(F.root)); /* the root itself always stays */
}

static void test_vanished(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	/* vCPU 1's thread is already gone; 1003 exits while it is moved */
	char *d = xasprintf("%s/1000/task/1002", F.proc);
	rm_rf(d);
	free(d);
	F.vanish_tid = 1003;
	/* VM 8's process does not exist at all */
	struct cgroup_vcpu_spec v8 = { .index = 0, .tid = 2001 };
	s.vms[1] = (struct cgroup_vm_spec){ .name = "8", .pid = 2000, .vcpus = &v8, .n_vcpus = 1 };
	s.tenants[0].n_vms = 2;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.vanished, 3);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.moves, 3); /* process 1000, threads 1000 and 1001 */
	char *cg = task_cg(1000, 1001);
	assert_string_equal(cg, VM7 "/vcpu0");
	free(cg);
	/* the group of the vanished vCPU exists all the same */
	char *p = xasprintf("%s/tenant-acme/vm-8/vcpu0", F.root);
	assert_true(exists(p));
	free(p);
}

/* Recursive listing with contents, to prove nothing changed. */
static void snap_walk(const char *dir, char **acc)
{
	char **names = NULL;
	size_t n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(names[i], names[j]) > 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		char *p = file_in(dir, names[i]);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		char *old = *acc;
		if (S_ISDIR(st.st_mode)) {
			*acc = xasprintf("%s%s/\n", old, p);
			free(old);
			snap_walk(p, acc);
		} else {
			char *c = slurp(p);
			*acc = xasprintf("%s%s=%s\n", old, p, c);
			free(old);
			free(c);
		}
		free(p);
		free(names[i]);
	}
	free(names);
}

static char *snapshot(const char *dir)
{
	char *acc = xstrdup("");
	snap_walk(dir, &acc);
	return acc;
}

/* std plus VM 8 of acme (process 2000: threads 2000 and 2001 = vCPU 0)
 * and tenant beta with VM 9 (process 3000: 3000, 3001 = vCPU 0). */
struct wide {
	struct std s;
	struct cgroup_vm_spec acme_vms[2];
	struct cgroup_vcpu_spec v8, v9;
	struct cgroup_vm_spec beta_vm;
};

static const pid_t VM8_TIDS[] = { 2000, 2001 };
static const pid_t VM9_TIDS[] = { 3000, 3001 };

static void wide_init(struct wide *w)
{
	memset(w, 0, sizeof(*w));
	std_init(&w->s);
	w->acme_vms[0] = w->s.vms[0];
	w->v8 = (struct cgroup_vcpu_spec){ .index = 0, .tid = 2001, .cpus = "1" };
	w->acme_vms[1] = (struct cgroup_vm_spec){ .name = "8", .pid = 2000, .cpus = "0-1",
						  .weight = 300, .vcpus = &w->v8, .n_vcpus = 1 };
	w->s.tenants[0].vms = w->acme_vms;
	w->s.tenants[0].n_vms = 2;
	w->v9 = (struct cgroup_vcpu_spec){ .index = 0, .tid = 3001 };
	w->beta_vm = (struct cgroup_vm_spec){ .name = "9", .pid = 3000, .weight = 150,
					      .vcpus = &w->v9, .n_vcpus = 1 };
	w->s.tenants[1] = (struct cgroup_tenant_spec){ .name = "beta", .weight = 100,
						       .vms = &w->beta_vm, .n_vms = 1 };
	w->s.tree.n_tenants = 2;
	proc_add(2000, VM8_TIDS, ARRAY_SIZE(VM8_TIDS), "/user.slice");
	proc_add(3000, VM9_TIDS, ARRAY_SIZE(VM9_TIDS), "/user.slice");
}

/* Reconcile expecting faults; returns the stats, fills *f. */
static struct cgroup_reconcile_stats run_faulty(struct cgroup_engine *e, const struct cgroup_tree *t,
					       struct cgroup_faults *f, int want_code)
{
	struct cgroup_reconcile_stats st;
	struct error *err = NULL;
	log_clear();
	assert_int_equal(cgroup_tree_reconcile(e, t, &st, f, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, want_code);
	error_free(&err);
	assert_true(f->n > 0);
	return st;
}

static const struct cgroup_fault *fault_of(const struct cgroup_faults *f, const char *tenant,
					   const char *vm)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].tenant, tenant) == 0 && strcmp(f->v[i].vm, vm) == 0)
			return &f->v[i];
	return NULL;
}

/* A bad name is refused without a path being built from it, and every
 * other tenant and VM is still reconciled. */
static void test_bad_names_are_skipped(void **state)
{
	(void)state;
	const char *bad[] = { "../x", "a/b", "", ".", "..", "../../../../x", "x/../../y" };
	char *parent = xstrdup(F.outer);
	*strrchr(parent, '/') = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		for (int where = 0; where < 2; where++) {
			rm_rf(F.root);
			struct wide w;
			wide_init(&w);
			if (where == 0)
				w.s.tenants[0].name = (char *)bad[i];
			else
				w.acme_vms[0].name = (char *)bad[i];
			_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
			struct cgroup_faults f = { 0 };
			struct cgroup_reconcile_stats st = run_faulty(e, &w.s.tree, &f, EINVAL);
			assert_int_equal(st.skipped, 1);
			assert_int_equal(st.errors, 0);
			assert_int_equal(f.n, 1);
			assert_true(f.v[0].skipped);
			assert_non_null(strstr(f.v[0].msg, where == 0 ? "tenant name" : "VM name"));
			/* the name is not echoed into the fault's tenant/vm fields */
			assert_string_equal(f.v[0].tenant, where == 0 ? "" : "acme");
			assert_string_equal(f.v[0].vm, "");
			assert_true(f.v[0].of_tenant == (where == 0));
			cgroup_faults_clear(&f);
			/* beta's VM is placed; acme's VM 8 too when only VM 7 was bad */
			assert_file("vcpud.slice/tenant-beta/vm-9", "cpu.weight", "150\n");
			char *cg = task_cg(3000, 3001);
			assert_string_equal(cg, "/vcpud.slice/tenant-beta/vm-9/vcpu0");
			free(cg);
			char *t8 = xasprintf("%s/tenant-acme/vm-8", F.root);
			assert_true(exists(t8) == (where == 1));
			free(t8);
			char *x = xasprintf("%s/x", parent), *y = xasprintf("%s/y", parent);
			char *rx = xasprintf("%s/x", F.root), *cx = xasprintf("%s/x", F.mount);
			assert_false(exists(x));
			assert_false(exists(y));
			assert_false(exists(rx));
			assert_false(exists(cx));
			free(x);
			free(y);
			free(rx);
			free(cx);
			proc_del(1000);
			proc_del(2000);
			proc_del(3000);
		}
	}
	free(parent);
}

/* A VM that turns invalid keeps the groups it has (nothing of it is
 * touched, its threads stay where they are); the others follow the tree. */
static void test_invalid_vm_kept_others_go_on(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	run(e, &w.s.tree);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "300\n");

	/* VM 8 asks for CPUs outside its tenant's pool; VM 7 and VM 9 change */
	w.acme_vms[1].cpus = "0-7";
	w.acme_vms[1].weight = 999;
	w.acme_vms[0].weight = 250;
	w.beta_vm.weight = 175;
	struct cgroup_faults f = { 0 };
	struct cgroup_reconcile_stats st = run_faulty(e, &w.s.tree, &f, EINVAL);
	assert_int_equal(st.skipped, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(f.n, 1);
	const struct cgroup_fault *f8 = fault_of(&f, "acme", "8");
	assert_non_null(f8);
	assert_true(f8->skipped);
	assert_non_null(strstr(f8->msg, "tenant 'acme': VM '8': cpuset.cpus 0-7 is not within"));
	cgroup_faults_clear(&f);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "300\n"); /* untouched */
	char *cg = task_cg(2000, 2001);
	assert_string_equal(cg, "/vcpud.slice/tenant-acme/vm-8/vcpu0"); /* not removed */
	free(cg);
	assert_file("vcpud.slice/tenant-acme/vm-7", "cpu.weight", "250\n");
	assert_file("vcpud.slice/tenant-beta/vm-9", "cpu.weight", "175\n");

	/* fixed: reconciled again, no fault */
	w.acme_vms[1].cpus = "0-1";
	st = run(e, &w.s.tree);
	assert_int_equal(st.skipped, 0);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "999\n");

	/* an invalid tenant: its groups are kept whole, beta goes on */
	w.s.tenants[0].weight = 20000;
	w.beta_vm.weight = 160;
	st = run_faulty(e, &w.s.tree, &f, ERANGE);
	assert_int_equal(st.skipped, 1);
	assert_int_equal(f.n, 1);
	assert_non_null(fault_of(&f, "acme", ""));
	assert_true(f.v[0].of_tenant);
	assert_non_null(strstr(f.v[0].msg, "tenant 'acme': cpu.weight 20000 is out of range"));
	cgroup_faults_clear(&f);
	assert_file("vcpud.slice/tenant-acme", "cpu.weight", "200\n");
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "999\n");
	assert_file("vcpud.slice/tenant-beta/vm-9", "cpu.weight", "160\n");
}

/* A tree handed again with the same fingerprint (a steady tick that
 * planned nothing): the engine's judgement and summaries of it are kept,
 * and every pass still reports the invalid VM, skips it, and leaves the
 * steady ones alone; a new fingerprint is judged again. */
static void test_same_fingerprint_judged_once(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	w.s.tree.fingerprint = 41;
	run(e, &w.s.tree);
	struct cgroup_reconcile_stats st = run(e, &w.s.tree);
	assert_int_equal(st.reads, 0);

	w.acme_vms[1].cpus = "0-7"; /* outside its tenant's pool */
	w.acme_vms[0].weight = 250;
	w.s.tree.fingerprint = 42;
	for (int pass = 0; pass < 3; pass++) {
		struct cgroup_faults f = { 0 };
		st = run_faulty(e, &w.s.tree, &f, EINVAL);
		assert_int_equal(st.skipped, 1);
		assert_int_equal(f.n, 1);
		const struct cgroup_fault *f8 = fault_of(&f, "acme", "8");
		assert_non_null(f8);
		assert_non_null(strstr(f8->msg, "cpuset.cpus 0-7 is not within"));
		cgroup_faults_clear(&f);
		/* VM 7's change is made once; then it is steady */
		assert_int_equal(st.writes, pass == 0 ? 1 : 0);
		assert_file("vcpud.slice/tenant-acme/vm-7", "cpu.weight", "250\n");
		assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "300\n");
	}

	/* fixed, with a new fingerprint: judged again, reconciled */
	w.acme_vms[1].cpus = "0-1";
	w.acme_vms[1].weight = 999;
	w.s.tree.fingerprint = 43;
	st = run(e, &w.s.tree);
	assert_int_equal(st.skipped, 0);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "999\n");
	/* and a tree without one (0) is judged every time, as before */
	w.s.tree.fingerprint = 0;
	st = run(e, &w.s.tree);
	assert_int_equal(st.reads, 0);
	assert_int_equal(st.writes, 0);
}

/* Two VMs claiming one process: both are refused (moving it to both each
 * tick would make it flap), with a message naming both; the third VM is
 * reconciled. */
static void test_shared_pid_skips_both(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	w.beta_vm.pid = 1000; /* VM 9 claims VM 7's process */
	w.v9.tid = 1003;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_faults f = { 0 };
	struct cgroup_reconcile_stats st = run_faulty(e, &w.s.tree, &f, EINVAL);
	assert_int_equal(st.skipped, 2);
	assert_int_equal(f.n, 2);
	const struct cgroup_fault *f7 = fault_of(&f, "acme", "7"), *f9 = fault_of(&f, "beta", "9");
	assert_non_null(f7);
	assert_non_null(f9);
	assert_non_null(strstr(f7->msg, "process/thread 1000 is listed twice"));
	assert_non_null(strstr(f7->msg, "VM '9' of tenant 'beta'"));
	assert_non_null(strstr(f9->msg, "VM '7' of tenant 'acme'"));
	cgroup_faults_clear(&f);
	/* VM 8 placed; VM 7's process was not moved */
	char *cg = task_cg(2000, 2001);
	assert_string_equal(cg, "/vcpud.slice/tenant-acme/vm-8/vcpu0");
	free(cg);
	cg = task_cg(1000, 1001);
	assert_string_equal(cg, "/user.slice/qemu.scope");
	free(cg);
	char *d7 = xasprintf("%s/tenant-acme/vm-7", F.root);
	assert_false(exists(d7));
	free(d7);
}

/* A failed write is attributed to its VM (one fault, the first), logged
 * by the caller; the VM's other knobs and the other VMs are still done. */
static void test_failure_attributed_to_vm(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	w.acme_vms[0].cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 50000 };
	w.acme_vms[0].weight = 100;
	F.fail_suffix = "/tenant-acme/vm-7/cpu.max";
	F.fail_errno = EINVAL;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_faults f = { 0 };
	struct cgroup_reconcile_stats st = run_faulty(e, &w.s.tree, &f, EINVAL);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.v[0].tenant, "acme");
	assert_string_equal(f.v[0].vm, "7");
	assert_false(f.v[0].of_tenant);
	assert_false(f.v[0].skipped);
	assert_string_equal(f.v[0].msg, "cannot write cpu.max of tenant-acme/vm-7: Invalid argument");
	cgroup_faults_clear(&f);
	assert_file("vcpud.slice/tenant-acme/vm-7", "cpu.weight", "100\n");
	char *cg = task_cg(3000, 3001);
	assert_string_equal(cg, "/vcpud.slice/tenant-beta/vm-9/vcpu0");
	free(cg);

	/* a tenant's own failure names the tenant, with vm "" */
	F.fail_suffix = "/tenant-beta/cpu.weight";
	w.s.tenants[1].weight = 120;
	st = run_faulty(e, &w.s.tree, &f, EINVAL);
	const struct cgroup_fault *fb = fault_of(&f, "beta", "");
	assert_non_null(fb);
	assert_false(fb->skipped);
	cgroup_faults_clear(&f);
}

/* Reconcile until one writes (at most 20 times): how many it took. */
static int runs_until_written(struct cgroup_engine *e, const struct cgroup_tree *t,
			      struct cgroup_reconcile_stats *st)
{
	int n = 0;
	do {
		*st = run(e, t);
		n++;
	} while (st->writes == 0 && n < 20);
	return n;
}

/* What the engine knows it trusts: a steady reconcile reads nothing; a
 * change of the tree is written at once; a change behind its back is put
 * right when the entry falls due; the table holds only the current tree. */
static void test_known_values(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	struct cgroup_engine_config cfg = { .cgroup_mount = F.mount, .sysroot = F.outer,
					    .ops = &fake_ops, .verify_ticks = 4 };
	struct cgroup_engine *e = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_engine_new(&cfg, &e, &err), 0);
	struct cgroup_reconcile_stats st = run(e, &w.s.tree);
	assert_true(st.reads > 40);
	size_t known = cgroup_engine_known(e);
	assert_true(known > 30);
	st = run(e, &w.s.tree);
	assert_int_equal(st.reads, 0);
	assert_int_equal(st.writes, 0);
	assert_int_equal(cgroup_engine_known(e), known);

	/* the tree changes: written at once, one read of the file first */
	w.acme_vms[1].weight = 333;
	st = run(e, &w.s.tree);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.reads, 1);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "333\n");

	/* another tool writes cpu.weight: put right within 3/2 x 4 + 1 reconciles */
	write_in(F.root, "tenant-acme/vm-8/cpu.weight", "777\n");
	int n = runs_until_written(e, &w.s.tree, &st);
	assert_true(n >= 2 && n <= 7);
	assert_file("vcpud.slice/tenant-acme/vm-8", "cpu.weight", "333\n");
	/* re-reads are spread: no reconcile re-reads everything at once */
	unsigned most = 0;
	for (int i = 0; i < 8; i++) {
		st = run(e, &w.s.tree);
		if (st.reads > most)
			most = st.reads;
	}
	assert_true(most > 0); /* compared with a full read below */

	/* a VM and a tenant go (their processes exited): their entries go
	 * with them */
	w.s.tree.n_tenants = 1;
	w.s.tenants[0].n_vms = 1;
	proc_del(2000);
	proc_del(3000);
	st = run(e, &w.s.tree);
	assert_int_equal(st.rmdirs, 7); /* vm-8, its vcpu0 and emulator; tenant-beta, vm-9 ... */
	assert_true(cgroup_engine_known(e) < known);
	run(e, &w.s.tree);
	size_t known1 = cgroup_engine_known(e);
	/* tenant-acme's groups stay (its VM's process is still in them):
	 * what nothing looks at any more goes within 2 x (3/2 x 4 + 2) */
	w.s.tree.n_tenants = 0;
	for (int i = 0; i < 17; i++)
		run(e, &w.s.tree);
	assert_true(cgroup_engine_known(e) < known1);

	/* verify_ticks 1: every value read every time */
	cgroup_engine_free(e);
	cfg.verify_ticks = 1;
	proc_add(2000, VM8_TIDS, ARRAY_SIZE(VM8_TIDS), "/user.slice");
	proc_add(3000, VM9_TIDS, ARRAY_SIZE(VM9_TIDS), "/user.slice");
	assert_int_equal(cgroup_engine_new(&cfg, &e, &err), 0);
	w.s.tree.n_tenants = 2;
	w.s.tenants[0].n_vms = 2;
	run(e, &w.s.tree);
	st = run(e, &w.s.tree);
	assert_true(st.reads > 40);
	assert_int_equal(st.writes, 0);
	assert_int_equal(cgroup_engine_known(e), 0);
	if (most >= st.reads)
		fail_msg("a cached reconcile read %u times, a full one %u", most, st.reads);
	cgroup_engine_free(e);
}

/* A dry run stays steady for good: steady VMs fall due and are read again
 * through the overlay many times over its horizon, and nothing it would
 * have written is ever written again (the overlay keeps what the engine
 * looks at, groups included). With the daemon's verify_ticks (30: the
 * overlay's horizon is 62 reconciles) and 200 reconciles; a re-read that
 * skipped the groups' own checks wrote again at the 141st. */
static void test_dry_run_steady_for_good(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine_v(true, 30);
	struct cgroup_reconcile_stats st = run(e, &w.s.tree);
	assert_true(st.writes > 0);
	unsigned reads = 0;
	for (int i = 0; i < 200; i++) {
		st = run(e, &w.s.tree);
		if (st.writes || st.mkdirs || st.vanished)
			fail_msg("reconcile %d of a steady dry run: %u writes, %u mkdir, %u vanished",
				 i + 2, st.writes, st.mkdirs, st.vanished);
		reads += st.reads;
	}
	assert_true(reads > 0); /* it did read again */
}

static bool replanned_is(const struct cgroup_engine *e, const char *const *want, size_t n)
{
	size_t got;
	const char *const *v = cgroup_engine_replanned(e, &got);
	if (got != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], want[i]) != 0)
			return false;
	return true;
}

/* A VM whose spec is unchanged is left alone whole (nothing of it read or
 * looked up), and only a changed one is planned anew; a steady VM that
 * falls due is read again whole at once, and put right (and said to be
 * planned anew) when another tool changed it. */
static void test_steady_vms_left_alone(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	struct cgroup_engine *e = engine_v(false, 4);
	run(e, &w.s.tree);
	assert_true(replanned_is(e, (const char *[]){ "7", "8", "9" }, 3));
	struct cgroup_reconcile_stats st = run(e, &w.s.tree);
	assert_int_equal(st.reads, 0);
	assert_true(replanned_is(e, NULL, 0));

	/* one VM changes: only it is planned anew, one file read and written */
	w.acme_vms[1].weight = 444;
	st = run(e, &w.s.tree);
	assert_true(replanned_is(e, (const char *[]){ "8" }, 1));
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.reads, 1);

	/* another tool changes a steady VM: put right within 3/2 x 4 + 1
	 * reconciles, by a re-read of the whole VM */
	write_in(F.root, "tenant-beta/vm-9/cpu.weight", "777\n");
	int n = runs_until_written(e, &w.s.tree, &st);
	assert_true(n <= 7);
	assert_file("vcpud.slice/tenant-beta/vm-9", "cpu.weight", "150\n");
	assert_true(replanned_is(e, (const char *[]){ "9" }, 1));
	assert_true(st.reads >= 8); /* its directory, knobs, groups and threads */
	cgroup_engine_free(e);
}

static void count_yield(void *data)
{
	(*(int *)data)++;
}

/* The yield hook runs between VMs when its interval has passed, and not
 * once it is cleared. */
static void test_yield_hook(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	int calls = 0;
	cgroup_engine_set_yield(e, count_yield, &calls, 0);
	run(e, &w.s.tree);
	assert_int_equal(calls, 3); /* after each of the 3 VMs */
	cgroup_engine_set_yield(e, count_yield, &calls, 60000000); /* a minute */
	run(e, &w.s.tree);
	assert_int_equal(calls, 3);
	cgroup_engine_set_yield(e, NULL, NULL, 0);
	run(e, &w.s.tree);
	assert_int_equal(calls, 3);
}

static void write_stat(pid_t pid, uint64_t start_time)
{
	char *d = xasprintf("%s/%d", F.proc, (int)pid);
	char *v = xasprintf("%d (qemu-system-x86) S 1 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 "
			    "4 0 %" PRIu64 " 1000000 100 18446744073709551615\n",
			    (int)pid, (int)pid, (int)pid, start_time);
	write_in(d, "stat", v);
	free(v);
	free(d);
}

/* A PID that another process took over is never moved into the VM. */
static void test_reused_pid_not_moved(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	s.vms[0].start_time = 5000;
	write_stat(1000, 7777); /* PID 1000 is a new process now */
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.moves, 0);
	assert_int_equal(st.vanished, 1);
	char *cg = task_cg(1000, 1001);
	assert_string_equal(cg, "/user.slice/qemu.scope");
	free(cg);

	write_stat(1000, 5000); /* the registered process */
	st = run(e, &s.tree);
	assert_int_equal(st.vanished, 0);
	assert_int_equal(st.moves, 5); /* the process, then its 4 threads */
	cg = task_cg(1000, 1001);
	assert_string_equal(cg, VM7 "/vcpu0");
	free(cg);

	/* a malformed stat is a fault of the VM, not a move */
	rm_rf(F.root);
	cgroup_engine_forget(e); /* removed behind the engine's back */
	proc_del(1000);
	proc_add(1000, VM7_TIDS, ARRAY_SIZE(VM7_TIDS), "/user.slice");
	char *d = xasprintf("%s/1000", F.proc);
	write_in(d, "stat", "garbage");
	free(d);
	struct cgroup_faults f = { 0 };
	st = run_faulty(e, &s.tree, &f, EINVAL);
	assert_int_equal(st.moves, 0);
	assert_string_equal(f.v[0].vm, "7");
	cgroup_faults_clear(&f);
}

static void test_dry_run(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	char *before = snapshot(F.outer);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine(true);
	struct cgroup_reconcile_stats st = run(dry, &s.tree);
	char *after = snapshot(F.outer);
	assert_string_equal(before, after); /* nothing written, created or moved */
	assert_int_equal(F.nlog, 0);        /* the fake backend saw no write */
	assert_int_equal(st.mkdirs, 6);
	assert_int_equal(st.moves, 5);
	assert_true(st.writes > 0);
	/* over groups that do not exist yet it reports every knob the tree
	 * sets; a real run also skips those already at the kernel's default */
	unsigned dry_writes = st.writes;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *real = engine(false);
	st = run(real, &s.tree);
	assert_true(st.writes <= dry_writes);
	assert_true(st.writes > 0);
	/* on a converged tree a dry run writes nothing, and one change is
	 * exactly one would-be write that is not made */
	assert_int_equal(run(dry, &s.tree).writes, 0);
	s.tenants[0].weight = 300;
	st = run(dry, &s.tree);
	assert_int_equal(st.writes, 1);
	assert_int_equal(F.nlog, 0);
	assert_file("vcpud.slice/tenant-acme", "cpu.weight", "200\n");
	free(before);
	free(after);
}

/* What the daemon would log at --log-level info: stderr into a temp file
 * while a reconcile runs; lines counted at the end. */
static int saved_stderr = -1;
static char *cap_path;
static enum log_level cap_level;

static void capture_start(void)
{
	fflush(stderr);
	cap_level = log_get_level();
	log_set_level(LOG_LVL_INFO);
	cap_path = xasprintf("%s/stderr", F.outer);
	int fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	saved_stderr = dup(2);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

/* Lines logged since capture_start() (the text in *text when wanted). */
static size_t capture_stop(char **text)
{
	fflush(stderr);
	log_set_level(cap_level);
	assert_int_equal(dup2(saved_stderr, 2), 2);
	close(saved_stderr);
	saved_stderr = -1;
	char *s = slurp(cap_path);
	assert_non_null(s);
	unlink(cap_path);
	free(cap_path);
	size_t n = 0;
	for (const char *c = s; *c; c++)
		n += *c == '\n';
	if (text)
		*text = s;
	else
		free(s);
	return n;
}

/* A dry-run reconcile and the lines it logged at info. */
static struct cgroup_reconcile_stats run_logged(struct cgroup_engine *e,
						const struct cgroup_tree *t, size_t *lines)
{
	capture_start();
	struct cgroup_reconcile_stats st = run(e, t);
	char *text = NULL;
	*lines = capture_stop(&text);
	if (*lines)
		print_message("%s", text);
	free(text);
	return st;
}

#define assert_quiet(st, lines)                      \
	do {                                         \
		assert_int_equal((st).writes, 0);    \
		assert_int_equal((st).mkdirs, 0);    \
		assert_int_equal((st).rmdirs, 0);    \
		assert_int_equal((st).moves, 0);     \
		assert_int_equal(lines, 0);          \
	} while (0)

static void test_dry_run_steady(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	char *before = snapshot(F.outer);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine_v(true, 1); /* the overlay alone: every value read */
	size_t lines;
	struct cgroup_reconcile_stats st = run_logged(dry, &w.s.tree, &lines);
	assert_int_equal(st.mkdirs, 13); /* root, 2 tenants, 3 VMs, 3 emulators, 4 vCPUs */
	assert_int_equal(st.moves, 3 + 4 + 2 + 2); /* 3 processes, then each thread */
	/* one line per intent, none twice */
	assert_int_equal(lines, st.writes + st.mkdirs);
	size_t entries = cgroup_engine_overlay_entries(dry);
	assert_true(entries > 0);
	/* the engine reads its own intentions back: nothing more to do, or say */
	for (int i = 0; i < 5; i++) {
		st = run_logged(dry, &w.s.tree, &lines);
		assert_quiet(st, lines);
		assert_int_equal(cgroup_engine_overlay_entries(dry), entries);
	}
	char *after = snapshot(F.outer);
	assert_string_equal(before, after);
	assert_int_equal(F.nlog, 0);

	/* one change: one write, one line, then quiet again */
	w.s.tenants[0].weight = 300;
	capture_start();
	st = run(dry, &w.s.tree);
	char *text = NULL;
	lines = capture_stop(&text);
	assert_int_equal(st.writes, 1);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(text, "dry-run: would write '300' to "));
	assert_non_null(strstr(text, "tenant-acme/cpu.weight"));
	free(text);
	st = run_logged(dry, &w.s.tree, &lines);
	assert_quiet(st, lines);
	/* a cap the throttler sets and lifts: one write each way */
	w.v8.cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 5000 };
	assert_int_equal(run(dry, &w.s.tree).writes, 1);
	assert_int_equal(run(dry, &w.s.tree).writes, 0);
	w.v8.cpu_max = (struct cgroup_cpu_max){ .set = true, .unlimited = true };
	assert_int_equal(run(dry, &w.s.tree).writes, 1);
	assert_int_equal(run(dry, &w.s.tree).writes, 0);
	free(before);
	free(after);
}

static void test_dry_run_moves(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine_v(true, 1); /* the overlay alone: every value read */
	struct cgroup_reconcile_stats st = run(dry, &s.tree);
	assert_int_equal(st.moves, 5);
	/* nothing moved on the host, yet nothing to move again */
	char *cg = task_cg(1000, 1001);
	assert_string_equal(cg, "/user.slice/qemu.scope");
	free(cg);
	assert_int_equal(run(dry, &s.tree).moves, 0);

	/* a new thread of the VMM (on the host it is where QEMU is): one move */
	char *d = xasprintf("%s/1000/task/1004", F.proc);
	mkdir(d, 0755);
	free(d);
	set_task_cg(1000, 1004, "/user.slice/qemu.scope");
	st = run(dry, &s.tree);
	assert_int_equal(st.moves, 1);
	assert_int_equal(st.writes, 1);
	assert_int_equal(run(dry, &s.tree).moves, 0);

	/* someone else moves a vCPU thread on the host: the host wins, the
	 * thread is seen where it is and moved back, once */
	set_task_cg(1000, 1001, "/elsewhere");
	st = run(dry, &s.tree);
	assert_int_equal(st.moves, 1);
	assert_int_equal(st.writes, 1);
	assert_int_equal(run(dry, &s.tree).moves, 0);

	/* a thread that exits is forgotten with it */
	size_t entries = cgroup_engine_overlay_entries(dry);
	d = xasprintf("%s/1000/task/1004", F.proc);
	rm_rf(d);
	free(d);
	for (unsigned i = 0; i < CGROUP_DRY_RUN_IDLE_PASSES; i++)
		assert_int_equal(run(dry, &s.tree).moves, 0);
	assert_int_equal(cgroup_engine_overlay_entries(dry), entries - 1);
	assert_int_equal(F.nlog, 0);
}

static void test_dry_run_remove_and_readd(void **state)
{
	(void)state;
	struct wide w;
	wide_init(&w);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine_v(true, 1); /* the overlay alone: every value read */
	run(dry, &w.s.tree);
	size_t all = cgroup_engine_overlay_entries(dry);
	run(dry, &w.s.tree);

	/* VM 8 goes (its process exited): its groups would be removed once */
	proc_del(2000);
	w.s.tenants[0].n_vms = 1;
	size_t lines;
	struct cgroup_reconcile_stats st = run_logged(dry, &w.s.tree, &lines);
	assert_int_equal(st.rmdirs, 3); /* vm-8/emulator, vm-8/vcpu0, vm-8 */
	assert_int_equal(st.writes, 0);
	assert_int_equal(lines, 3);
	size_t fewer = cgroup_engine_overlay_entries(dry);
	assert_true(fewer < all);
	st = run_logged(dry, &w.s.tree, &lines);
	assert_quiet(st, lines);

	/* and comes back: created, written and placed again, then quiet */
	proc_add(2000, VM8_TIDS, ARRAY_SIZE(VM8_TIDS), "/user.slice");
	w.s.tenants[0].n_vms = 2;
	st = run(dry, &w.s.tree);
	assert_int_equal(st.mkdirs, 3);
	assert_int_equal(st.moves, 3);
	assert_true(st.writes > st.moves);
	assert_int_equal(cgroup_engine_overlay_entries(dry), all);
	st = run_logged(dry, &w.s.tree, &lines);
	assert_quiet(st, lines);

	/* a tenant removed whole */
	proc_del(3000);
	w.s.tree.n_tenants = 1;
	st = run(dry, &w.s.tree);
	assert_int_equal(st.rmdirs, 4); /* vm-9/{emulator,vcpu0}, vm-9, tenant-beta */
	st = run_logged(dry, &w.s.tree, &lines);
	assert_quiet(st, lines);
	assert_int_equal(F.nlog, 0);
}

/* The overlay and the engine's knowledge together: the overlay keeps what
 * the engine trusts past the engine's re-reads, so a steady dry run stays
 * quiet for good, and a removal long after still finds its groups. */
static void test_dry_run_with_known(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine_v(true, 4);
	struct cgroup_reconcile_stats st = run(dry, &s.tree);
	assert_true(st.writes > 0);
	for (int i = 0; i < 40; i++) {
		st = run(dry, &s.tree);
		if (st.writes || st.mkdirs || st.moves)
			fail_msg("dry reconcile %d: %u writes, %u mkdir, %u moves", i + 2, st.writes,
				 st.mkdirs, st.moves);
	}
	s.tree.n_tenants = 0;
	st = run(dry, &s.tree);
	assert_int_equal(st.rmdirs, 5); /* vcpu0, vcpu1, emulator, vm-7, tenant-acme */
	for (int i = 0; i < 10; i++) {
		st = run(dry, &s.tree);
		assert_int_equal(st.rmdirs + st.writes + st.mkdirs, 0);
	}
}

static void test_dry_run_memory_bounded(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *dry = engine_v(true, 1); /* the overlay alone: every value read */
	run(dry, &s.tree);
	size_t base = cgroup_engine_overlay_entries(dry);
	/* VMs come and go under new names: the overlay does not grow */
	static const pid_t tids[] = { 5000, 5001 };
	struct cgroup_vcpu_spec v = { .index = 0, .tid = 5001, .weight = 50 };
	char name[16];
	for (int i = 0; i < 20; i++) {
		proc_add(5000, tids, 2, "/user.slice");
		snprintf(name, sizeof(name), "n%d", i);
		s.vms[1] = (struct cgroup_vm_spec){ .name = name, .pid = 5000, .weight = 10,
						    .vcpus = &v, .n_vcpus = 1 };
		s.tenants[0].n_vms = 2;
		struct cgroup_reconcile_stats st = run(dry, &s.tree);
		assert_int_equal(st.mkdirs, 3);
		assert_true(cgroup_engine_overlay_entries(dry) > base);
		proc_del(5000);
		s.tenants[0].n_vms = 1;
		st = run(dry, &s.tree);
		assert_int_equal(st.rmdirs, 3);
		assert_int_equal(cgroup_engine_overlay_entries(dry), base);
	}
	/* what the engine no longer looks at goes after a few passes: a knob
	 * left alone, a process released out of the tree */
	s.tenants[0].weight = 0;
	for (unsigned i = 0; i < CGROUP_DRY_RUN_IDLE_PASSES; i++)
		run(dry, &s.tree);
	assert_int_equal(cgroup_engine_overlay_entries(dry), base - 1);
	struct error *err = NULL;
	assert_int_equal(cgroup_engine_release_process(dry, F.root, 1000, "/user.slice", &err), 0);
	s.tenants[0].n_vms = 0;
	for (unsigned i = 0; i <= CGROUP_DRY_RUN_IDLE_PASSES; i++)
		run(dry, &s.tree);
	/* left: the root's and the tenant's subtree_control, cpuset.cpus,
	 * cpuset... of what remains, and nothing of the VM or its threads */
	size_t left = cgroup_engine_overlay_entries(dry);
	assert_true(left < base);
	assert_int_equal(run(dry, &s.tree).writes, 0);
	assert_int_equal(cgroup_engine_overlay_entries(dry), left);
	assert_int_equal(F.nlog, 0);
}

static void test_write_error(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	s.vms[0].cpu_max = (struct cgroup_cpu_max){ .set = true, .quota_us = 50000 };
	F.fail_suffix = "/tenant-acme/vm-7/cpu.max";
	F.fail_errno = EINVAL;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st;
	struct error *err = NULL;
	assert_int_equal(cgroup_tree_reconcile(e, &s.tree, &st, NULL, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->code, EINVAL);
	assert_string_equal(err->msg, "cannot write cpu.max of tenant-acme/vm-7: Invalid argument");
	error_free(&err);
	assert_int_equal(st.errors, 1);
	/* the rest of the VM was still reconciled */
	assert_int_equal(st.moves, 5);
	char *cg = task_cg(1000, 1002);
	assert_string_equal(cg, VM7 "/vcpu1");
	free(cg);

	/* a structural failure skips what lies below it */
	F.fail_suffix = "/tenant-acme/cgroup.subtree_control";
	rm_rf(F.root);
	proc_del(1000);
	proc_add(1000, VM7_TIDS, ARRAY_SIZE(VM7_TIDS), "/user.slice");
	log_clear();
	assert_int_equal(cgroup_tree_reconcile(e, &s.tree, &st, NULL, &err), -1);
	assert_string_equal(err->msg,
			    "cannot write cgroup.subtree_control of tenant-acme: Invalid argument");
	error_free(&err);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.mkdirs, 2); /* root and tenant only */
	assert_int_equal(st.moves, 0);
}

static void test_kernel_refusals(void **state)
{
	(void)state;
	struct std s;
	std_init(&s);
	/* the mount root does not offer memory (cgroup_disable=memory) */
	write_in(F.mount, "cgroup.controllers", "cpuset cpu io\n");
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st;
	struct error *err = NULL;
	assert_int_equal(cgroup_tree_reconcile(e, &s.tree, &st, NULL, &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_non_null(strstr(err->msg, "cannot enable memory in"));
	assert_non_null(strstr(err->msg, "cgroup.controllers"));
	error_free(&err);
	assert_int_equal(st.mkdirs, 0);
	assert_int_equal(st.writes, 0);

	/* a root that is a plain directory, not a cgroup: the failed read is
	 * reported with the file and the group, and nothing goes below it */
	write_in(F.mount, "cgroup.controllers", "cpuset cpu io memory\n");
	assert_int_equal(mkdir(F.root, 0755), 0);
	assert_int_equal(cgroup_tree_reconcile(e, &s.tree, &st, NULL, &err), -1);
	assert_int_equal(err->code, ENOENT);
	char *want = xasprintf("cannot read cgroup.subtree_control of %s: No such file or directory",
			       F.root);
	assert_string_equal(err->msg, want);
	free(want);
	error_free(&err);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.mkdirs, 0);
	rm_rf(F.root);

	/* a process that is not there any more when it is moved */
	write_in(F.mount, "cgroup.controllers", "cpuset cpu io memory\n");
	F.fail_suffix = VM7 "/cgroup.procs";
	F.fail_errno = ESRCH;
	st = run(e, &s.tree);
	assert_int_equal(st.vanished, 1);
	assert_int_equal(st.moves, 0);
}

static void test_deeper_root(void **state)
{
	(void)state;
	/* ROOT two levels below the mount: every ancestor passes controllers down */
	char *mid = xasprintf("%s/machine.slice", F.mount);
	assert_int_equal(fake_mkdir(NULL, mid, NULL), 0);
	struct std s;
	std_init(&s);
	char *root = xasprintf("%s/vcpud.slice", mid);
	s.tree.root = root;
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = engine(false);
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_string_equal(F.log[0], "/ cgroup.subtree_control +cpu +cpuset +memory");
	assert_string_equal(F.log[1], "/machine.slice cgroup.subtree_control +cpu +cpuset +memory");
	assert_string_equal(F.log[2], "/machine.slice/vcpud.slice cgroup.subtree_control +cpu +cpuset +memory");
	assert_int_equal(st.moves, 5);
	char *cg = task_cg(1000, 1001);
	assert_string_equal(cg, "/machine.slice/vcpud.slice/tenant-acme/vm-7/vcpu0");
	free(cg);
	assert_int_equal(run(e, &s.tree).writes, 0);

	/* a root outside the engine's mount is refused */
	s.tree.root = "/elsewhere/vcpud.slice";
	struct error *err = NULL;
	assert_int_equal(cgroup_tree_reconcile(e, &s.tree, &st, NULL, &err), -1);
	assert_non_null(strstr(err->msg, "not inside the cgroup2 mount"));
	error_free(&err);
	free(root);
	free(mid);
}

static void test_no_mount_given(void **state)
{
	(void)state;
	/* cgroup_mount NULL: the root's parent is taken as the mount */
	struct std s;
	std_init(&s);
	struct cgroup_engine_config cfg = { .sysroot = F.outer, .ops = &fake_ops };
	_cleanup_(cgroup_engine_freep) struct cgroup_engine *e = NULL;
	struct error *err = NULL;
	assert_int_equal(cgroup_engine_new(&cfg, &e, &err), 0);
	struct cgroup_reconcile_stats st = run(e, &s.tree);
	assert_int_equal(st.mkdirs, 6);
	assert_int_equal(st.moves, 5);
	assert_int_equal(run(e, &s.tree).writes, 0);
	cfg.cgroup_mount = "relative";
	struct cgroup_engine *bad = NULL;
	assert_int_equal(cgroup_engine_new(&cfg, &bad, &err), -1);
	assert_null(bad);
	error_free(&err);
}

static void test_real_backend(void **state)
{
	(void)state;
	const struct cgroup_ops *o = &cgroup_ops_real;
	struct error *err = NULL;
	char *p = xasprintf("%s/f", F.outer);
	/* no O_CREAT: cgroupfs files exist or the write is wrong */
	assert_int_equal(o->write_file(NULL, p, "x", &err), -1);
	assert_int_equal(err->code, ENOENT);
	assert_non_null(strstr(err->msg, p));
	error_free(&err);
	spit(p, "old contents");
	assert_int_equal(o->write_file(NULL, p, "new", &err), 0);
	char *s = NULL;
	assert_int_equal(o->read_file(NULL, p, &s, &err), 0);
	assert_string_equal(s, "new contents"); /* no O_TRUNC: cgroupfs has no length */
	free(s);
	/* a big file is read whole */
	char *big = xmalloc(20001);
	memset(big, '7', 20000);
	big[20000] = '\0';
	spit(p, big);
	assert_int_equal(o->read_file(NULL, p, &s, &err), 0);
	assert_int_equal(strlen(s), 20000);
	free(s);
	free(big);

	char **names = NULL;
	size_t n = 0;
	char *d = xasprintf("%s/d", F.outer);
	assert_int_equal(o->mkdir(NULL, d, &err), 0);
	assert_int_equal(o->mkdir(NULL, d, &err), -1);
	assert_int_equal(err->code, EEXIST);
	error_free(&err);
	assert_int_equal(o->list_dir(NULL, F.outer, &names, &n, &err), 0);
	assert_int_equal(n, 3); /* cg, d, proc: not the file */
	assert_string_equal(names[0], "cg");
	assert_string_equal(names[1], "d");
	assert_string_equal(names[2], "proc");
	cgroup_names_free(names, n);
	bool isd = false;
	assert_int_equal(o->is_dir(NULL, d, &isd, &err), 0);
	assert_true(isd);
	assert_int_equal(o->is_dir(NULL, p, &isd, &err), 0);
	assert_false(isd);
	assert_int_equal(o->rmdir(NULL, d, &err), 0);
	assert_int_equal(o->is_dir(NULL, d, &isd, &err), 0);
	assert_false(isd);
	assert_int_equal(o->rmdir(NULL, d, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	assert_int_equal(o->list_dir(NULL, d, &names, &n, &err), -1);
	error_free(&err);
	unlink(p);
	free(p);
	free(d);

	/* dry-run: counts, changes nothing, reads back what it would have done */
	struct cgroup_dry_run dr = { .inner = o };
	p = xasprintf("%s/cg/cgroup.subtree_control", F.outer);
	assert_int_equal(cgroup_ops_dry_run.write_file(&dr, p, "+cpu +memory", &err), 0);
	assert_int_equal(dr.writes, 1);
	char *disk = slurp(p);
	assert_string_equal(disk, "\n");
	free(disk);
	assert_int_equal(cgroup_ops_dry_run.read_file(&dr, p, &s, &err), 0);
	assert_string_equal(s, "cpu memory\n");
	free(s);
	assert_int_equal(cgroup_ops_dry_run.write_file(&dr, p, "-cpu +cpuset +memory", &err), 0);
	assert_int_equal(cgroup_ops_dry_run.read_file(&dr, p, &s, &err), 0);
	assert_string_equal(s, "memory cpuset\n");
	free(s);
	/* a knob reads back whole with a newline; the host's file is as it was */
	char *w = xasprintf("%s/cg/cpu.weight", F.outer);
	spit(w, "100\n");
	assert_int_equal(cgroup_ops_dry_run.write_file(&dr, w, "250", &err), 0);
	assert_int_equal(cgroup_ops_dry_run.read_file(&dr, w, &s, &err), 0);
	assert_string_equal(s, "250\n");
	free(s);
	/* the host changes it: the host wins and the would-be value is forgotten */
	spit(w, "300\n");
	assert_int_equal(cgroup_ops_dry_run.read_file(&dr, w, &s, &err), 0);
	assert_string_equal(s, "300\n");
	free(s);
	free(w);
	/* a group: created, listed, removed; never on disk */
	d = xasprintf("%s/cg/x", F.outer);
	assert_int_equal(cgroup_ops_dry_run.mkdir(&dr, d, &err), 0);
	assert_int_equal(dr.mkdirs, 1);
	assert_false(exists(d));
	assert_int_equal(cgroup_ops_dry_run.is_dir(&dr, d, &isd, &err), 0);
	assert_true(isd);
	assert_int_equal(cgroup_ops_dry_run.mkdir(&dr, d, &err), -1);
	assert_int_equal(err->code, EEXIST);
	error_free(&err);
	char *cg = xasprintf("%s/cg", F.outer);
	assert_int_equal(cgroup_ops_dry_run.list_dir(&dr, cg, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "x");
	cgroup_names_free(names, n);
	assert_int_equal(cgroup_ops_dry_run.list_dir(&dr, d, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	cgroup_names_free(names, n);
	assert_int_equal(cgroup_ops_dry_run.rmdir(&dr, d, &err), 0);
	assert_int_equal(dr.rmdirs, 1);
	assert_int_equal(cgroup_ops_dry_run.is_dir(&dr, d, &isd, &err), 0);
	assert_false(isd);
	assert_int_equal(cgroup_ops_dry_run.rmdir(&dr, d, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	/* a group the host has: hidden once removed, back when made again */
	assert_int_equal(cgroup_ops_dry_run.rmdir(&dr, F.proc, &err), 0);
	assert_int_equal(cgroup_ops_dry_run.is_dir(&dr, F.proc, &isd, &err), 0);
	assert_false(isd);
	assert_int_equal(cgroup_ops_dry_run.list_dir(&dr, F.outer, &names, &n, &err), 0);
	assert_int_equal(n, 1); /* cg */
	cgroup_names_free(names, n);
	assert_int_equal(cgroup_ops_dry_run.mkdir(&dr, F.proc, &err), 0);
	assert_int_equal(cgroup_ops_dry_run.is_dir(&dr, F.proc, &isd, &err), 0);
	assert_true(isd);
	assert_int_equal(cgroup_dry_run_entries(&dr), 1); /* subtree_control */
	cgroup_dry_run_clear(&dr);
	assert_null(dr.shadow);
	assert_int_equal(cgroup_dry_run_entries(&dr), 0);
	free(cg);
	free(d);
	free(p);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_reconcile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_reconcile_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_change_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_rounded_to_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_threads_and_migration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removal_leaves_unknown_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_are_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_vm_kept_others_go_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_fingerprint_judged_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_pid_skips_both, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_attributed_to_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reused_pid_not_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_known_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_steady_vms_left_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_steady_for_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yield_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_with_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_steady, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_remove_and_readd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_memory_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deeper_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_mount_given, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_backend, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
