/* scan.c - the /proc discovery backend: every VM on the host, found by the
 * names of its vCPU threads, once per tick and cheaply.
 *
 * Each pass lists HOST_ROOT/proc and walks it in step with a cache of the
 * PIDs seen before, both sorted. A new PID costs one read of its stat (comm,
 * flags, thread count, start time); only a multi-threaded, young or
 * VMM-named process has its task/ listed and its threads' comm read (the
 * 10-13 us per thread of FACTS.md), and a process with vCPU threads has its
 * cmdline read once for the VM's name. From then on a VM costs one listing
 * of its task/ per pass, reading only threads it had not seen (vCPU
 * hot-plug), and a process that is not a VM costs nothing but its entry in
 * the /proc listing, plus one stat read every DISCOVER_PROC_RECHECK_PASSES
 * passes (round robin) to notice an exec or a reused PID. Anything that
 * exits mid-pass (ENOENT, ESRCH at any step) is dropped silently.
 *
 * A VM's PID is watched through a pidfd when HOST_ROOT/proc is the real
 * procfs: one poll() per pass over all of them tells which VM processes
 * exited, so that a PID reused by a new process (with the same thread
 * count and even the same TIDs) is probed again at once rather than taken
 * for the VM it was. What it does not see at once: a PID cached as "not a
 * VM" that becomes a VM without being young (an exec long after its fork)
 * waits for its recheck; a vCPU thread that exits and whose TID
 * is given to a new thread of the same VM between two passes (TIDs are
 * allocated cyclically, so only after pid_max others) is not read again. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vcpud/discover.h"
#include "vcpud/path.h"
#include "vcpud/procfs.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

/* --- pure helpers ---------------------------------------------------------- */

static const char *const kind_names[] = {
	[VMM_KIND_UNKNOWN] = "unknown",
	[VMM_KIND_QEMU] = "qemu",
	[VMM_KIND_FIRECRACKER] = "firecracker",
	[VMM_KIND_CLOUD_HV] = "cloud-hypervisor",
};
_Static_assert(ARRAY_SIZE(kind_names) == VMM_KIND_LAST, "a name for every VMM kind");

const char *vmm_kind_name(enum vmm_kind k)
{
	return (unsigned)k < VMM_KIND_LAST ? kind_names[k] : NULL;
}

enum vmm_kind vmm_kind_of_style(enum vcpu_style style)
{
	switch (style) {
	case VCPU_STYLE_QEMU_KVM:
	case VCPU_STYLE_QEMU_TCG:
		return VMM_KIND_QEMU;
	case VCPU_STYLE_FIRECRACKER:
		return VMM_KIND_FIRECRACKER;
	case VCPU_STYLE_CLOUD_HV:
		return VMM_KIND_CLOUD_HV;
	case VCPU_STYLE_NONE:
	case VCPU_STYLE_LAST:
		break;
	}
	return VMM_KIND_UNKNOWN;
}

enum vmm_kind vmm_kind_of_comm(const char *comm)
{
	if (!comm)
		return VMM_KIND_UNKNOWN;
	char buf[32];
	size_t n = strlen(comm);
	if (n >= sizeof(buf))
		return VMM_KIND_UNKNOWN;
	memcpy(buf, comm, n + 1);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20)
			return VMM_KIND_UNKNOWN;
	/* comm keeps 15 characters: "qemu-system-x86_64" reads
	 * "qemu-system-x86", "cloud-hypervisor" reads "cloud-hyperviso" */
	if (str_has_prefix(buf, "qemu-system-") && buf[12])
		return VMM_KIND_QEMU;
	if (!strcmp(buf, "qemu-kvm") || !strcmp(buf, "kvm") || !strcmp(buf, "qemu"))
		return VMM_KIND_QEMU;
	if (!strcmp(buf, "firecracker"))
		return VMM_KIND_FIRECRACKER;
	if (!strcmp(buf, "cloud-hyperviso") || !strcmp(buf, "cloud-hypervisor"))
		return VMM_KIND_CLOUD_HV;
	return VMM_KIND_UNKNOWN;
}

int proc_uptime_parse(const char *buf, double *uptime_s, struct error **err)
{
	if (!buf || !isdigit((unsigned char)buf[0]))
		return error_set(err, EINVAL, "malformed /proc/uptime");
	char *end;
	errno = 0;
	double v = strtod(buf, &end);
	if (errno || !isfinite(v) || v < 0 || (*end && *end != ' ' && *end != '\n'))
		return error_set(err, EINVAL, "malformed /proc/uptime");
	*uptime_s = v;
	return 0;
}

static bool uuid_valid(const char *s)
{
	if (strlen(s) != VM_UUID_LEN)
		return false;
	for (int i = 0; i < VM_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Copy s into out when it is a valid name, else leave out "". */
static void take_name(char out[NAME_MAX_LEN + 1], const char *s)
{
	out[0] = '\0';
	if (name_valid(s))
		snprintf(out, NAME_MAX_LEN + 1, "%s", s);
}

/* QEMU option syntax: "value" (the implied key: guest) or
 * "key=value,key=value"; ",," is a literal comma. The guest value, if
 * this option gives one, into out (allocated); *given tells whether it
 * did. */
static void qemu_name_guest(const char *v, char **out, bool *given)
{
	*given = false;
	bool first = true;
	const char *p = v;
	while (true) {
		/* one element, with ",," unescaped */
		_cleanup_free_ char *el = xmalloc(strlen(p) + 1);
		size_t n = 0;
		while (*p) {
			if (*p == ',') {
				if (p[1] == ',') {
					el[n++] = ',';
					p += 2;
					continue;
				}
				break;
			}
			el[n++] = *p++;
		}
		el[n] = '\0';
		const char *eq = strchr(el, '=');
		if (!eq && first) {
			free(*out);
			*out = xstrdup(el);
			*given = true;
		} else if (eq && (size_t)(eq - el) == 5 && !strncmp(el, "guest", 5)) {
			free(*out);
			*out = xstrdup(eq + 1);
			*given = true;
		}
		first = false;
		if (!*p)
			break;
		p++; /* the ',' */
	}
}

/* "--opt VALUE" or "--opt=VALUE" at args[*i]: the value, advancing *i past
 * it, or NULL. */
static const char *opt_value(char **args, size_t n, size_t *i, const char *opt)
{
	const char *a = args[*i];
	size_t ol = strlen(opt);
	if (strncmp(a, opt, ol) != 0)
		return NULL;
	if (a[ol] == '=')
		return a + ol + 1;
	if (a[ol] || *i + 1 >= n)
		return NULL;
	return args[++*i];
}

/* cloud-hypervisor --api-socket: "path=/run/ch/web-1.sock[,...]",
 * "fd=N" or a bare path; the socket's file name without ".sock". */
static void ch_socket_name(const char *v, char out[NAME_MAX_LEN + 1])
{
	out[0] = '\0';
	_cleanup_free_ char *copy = xstrdup(v);
	char *path = NULL;
	char *save = NULL;
	bool first = true;
	for (char *el = strtok_r(copy, ",", &save); el; el = strtok_r(NULL, ",", &save)) {
		if (str_has_prefix(el, "path="))
			path = el + 5;
		else if (first && !strchr(el, '='))
			path = el;
		first = false;
	}
	if (!path || !*path)
		return;
	char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t bl = strlen(base);
	if (bl >= 5 && !strcmp(base + bl - 5, ".sock"))
		base[bl - 5] = '\0';
	take_name(out, base);
}

void vmm_cmdline_identify(enum vmm_kind kind, const char *cmdline, size_t len,
			  struct vmm_identity *out)
{
	memset(out, 0, sizeof(*out));
	if (!cmdline || !len)
		return;
	/* split the NUL-separated arguments (the last NUL is optional) */
	_cleanup_free_ char *buf = xmalloc(len + 1);
	memcpy(buf, cmdline, len);
	buf[len] = '\0';
	size_t n = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		n++;
	_cleanup_free_ char **args = xcalloc(n ? n : 1, sizeof(char *));
	n = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		args[n++] = buf + i;

	_cleanup_free_ char *qname = NULL;
	bool qname_given = false;
	for (size_t i = 0; i < n; i++) {
		const char *v;
		switch (kind) {
		case VMM_KIND_QEMU:
			if (!strcmp(args[i], "-name") || !strcmp(args[i], "--name")) {
				if (i + 1 >= n)
					break;
				bool given;
				qemu_name_guest(args[++i], &qname, &given);
				qname_given |= given;
			} else if (!strcmp(args[i], "-uuid") || !strcmp(args[i], "--uuid")) {
				if (i + 1 >= n)
					break;
				v = args[++i];
				out->uuid[0] = '\0';
				if (uuid_valid(v)) {
					for (int j = 0; j <= VM_UUID_LEN; j++)
						out->uuid[j] = (char)tolower((unsigned char)v[j]);
				}
			}
			break;
		case VMM_KIND_FIRECRACKER:
			if ((v = opt_value(args, n, &i, "--id")))
				take_name(out->name, v);
			break;
		case VMM_KIND_CLOUD_HV:
			if ((v = opt_value(args, n, &i, "--api-socket")))
				ch_socket_name(v, out->name);
			break;
		case VMM_KIND_UNKNOWN:
		case VMM_KIND_LAST:
			return;
		}
	}
	if (kind == VMM_KIND_QEMU && qname_given && qname)
		take_name(out->name, qname);
}

bool discover_tenant_from_name(const char *vm_name, char tenant[NAME_MAX_LEN + 1])
{
	tenant[0] = '\0';
	if (!vm_name)
		return false;
	const char *dot = strchr(vm_name, '.');
	if (!dot || dot == vm_name || !dot[1] || (size_t)(dot - vm_name) > NAME_MAX_LEN)
		return false;
	char t[NAME_MAX_LEN + 1];
	memcpy(t, vm_name, (size_t)(dot - vm_name));
	t[dot - vm_name] = '\0';
	if (!name_valid(t))
		return false;
	memcpy(tenant, t, (size_t)(dot - vm_name) + 1);
	return true;
}

/* --- results and the generic backend --------------------------------------- */

void discover_result_clear(struct discover_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->vms[i].vcpus);
	free(r->vms);
	r->vms = NULL;
	r->n = 0;
}

int discover_scan(struct discover_backend *b, struct discover_result *out, struct error **err)
{
	return b->ops->scan(b->ctx, out, err);
}

void discover_backend_free(struct discover_backend *b)
{
	if (!b)
		return;
	if (b->ops->free)
		b->ops->free(b->ctx);
	free(b);
}

static int null_scan(void *ctx, struct discover_result *out, struct error **err)
{
	(void)ctx;
	(void)err;
	out->vms = NULL;
	out->n = 0;
	return 0;
}

static const struct discover_ops null_ops = {
	.name = "null",
	.scan = null_scan,
	.free = NULL,
};

void discover_null_new(struct discover_backend **out)
{
	struct discover_backend *b = xcalloc(1, sizeof(*b));
	b->ops = &null_ops;
	*out = b;
}

/* --- the /proc backend: its cache ------------------------------------------ */

/* A thread still named like its process (a new thread has its creator's
 * name until it sets its own, microseconds later) is read again on this
 * many passes before its name is believed. */
#define UNNAMED_PASSES 3
/* The longest cmdline read (QEMU's under libvirt runs to a few KB). */
#define CMDLINE_MAX (256 * 1024)

struct tid_entry {
	pid_t tid;
	uint16_t index;          /* when a vCPU */
	uint8_t style;           /* enum vcpu_style */
	uint8_t unnamed;         /* passes left to read its comm again */
};

enum pid_state {
	PID_NEW,                 /* in the listing for the first time */
	PID_WATCHED,             /* task/ listed every pass: a VM, a VMM
				  * without vCPUs yet, or a young process */
	PID_IGNORED,             /* not a VM: only rechecked round robin */
};

struct pid_entry {
	pid_t pid;
	enum pid_state state;
	bool gone;               /* exited during this pass: dropped after it */
	bool recheck;            /* PID_IGNORED, picked for a recheck this pass */
	bool young;
	bool identified;         /* name and uuid read from the cmdline */
	bool name_given;
	enum vmm_kind comm_kind; /* of its comm, UNKNOWN for other processes */
	enum vmm_kind kind;      /* of its vCPU threads, UNKNOWN for none */
	unsigned num_threads;
	uint64_t start_time;
	char comm[16];
	struct tid_entry *tids;  /* PID_WATCHED: sorted by tid */
	size_t n_tids;
	char name[NAME_MAX_LEN + 1];
	char uuid[VM_UUID_LEN + 1];
	int pidfd;               /* a VM's process (real procfs only), -1 none */
	bool exited;             /* its pidfd said so: probe the PID again */
};

struct proc_ctx {
	char *proc_path;         /* HOST_ROOT/proc */
	struct discover_proc_config cfg;
	long hz;                 /* clock ticks per second (start_time) */
	struct pid_entry **e;    /* the cache, sorted by pid */
	size_t n;
	struct pid_entry **next; /* the next cache, built by each pass */
	size_t next_cap, e_cap;
	pid_t *pids;             /* the /proc listing of this pass, sorted */
	size_t pids_cap;
	pid_t *tids;             /* one task/ listing, sorted */
	size_t tids_cap;
	pid_t cursor;            /* the last PID rechecked (round robin) */
	bool pidfds;             /* proc_path is this system's procfs */
	struct pollfd *pfds;     /* one pass's poll of the VMs' pidfds */
	struct pid_entry **pfd_e;
	size_t pfds_cap;
	double recheck_credit;   /* rechecks owed, a fraction of one */
	struct discover_proc_stats st;
};

/* What one pass knows. */
struct pass {
	int procfd;
	bool have_uptime;
	double uptime_s;
};

static void pidfd_drop(struct pid_entry *e)
{
	if (e->pidfd >= 0)
		close(e->pidfd);
	e->pidfd = -1;
	e->exited = false;
}

static void entry_forget(struct pid_entry *e)
{
	pidfd_drop(e);
	free(e->tids);
	e->tids = NULL;
	e->n_tids = 0;
	e->identified = false;
	e->name_given = false;
	e->name[0] = e->uuid[0] = '\0';
	e->kind = VMM_KIND_UNKNOWN;
}

static void entry_free(struct pid_entry *e)
{
	if (!e)
		return;
	pidfd_drop(e);
	free(e->tids);
	free(e);
}

static bool gone_errno(int e)
{
	return e == ENOENT || e == ESRCH;
}

/* Read a small file at dirfd/rel into buf, NUL-terminated: its length, or
 * -errno. */
static ssize_t read_at(int dirfd, const char *rel, char *buf, size_t size)
{
	int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	ssize_t r;
	do
		r = read(fd, buf, size - 1);
	while (r < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (r < 0)
		return -e;
	buf[r] = '\0';
	return r;
}

/* A decimal directory entry name within pid_t ("1234"), or 0. */
static pid_t entry_pid(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || s[0] == '0')
		return 0;
	long v = 0;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return 0;
		v = v * 10 + (*s - '0');
		if (v > INT_MAX)
			return 0; /* it would wrap to another PID */
	}
	return (pid_t)v;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* The numeric entries of the directory open at fd (which this closes),
 * sorted, into *v (grown as needed); their count, or -errno. */
static ssize_t list_numeric(int fd, pid_t **v, size_t *cap)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	size_t n = 0;
	bool sorted = true;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		pid_t pid = entry_pid(de->d_name);
		if (pid <= 0)
			continue;
		if (n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		if (n && (*v)[n - 1] > pid)
			sorted = false;
		(*v)[n++] = pid;
		errno = 0;
	}
	int e = errno;
	closedir(d);
	if (e)
		return -e;
	if (!sorted) /* procfs lists in order; a fake tree on tmpfs does not */
		qsort(*v, n, sizeof(**v), cmp_pid);
	return (ssize_t)n;
}

static int read_stat(struct proc_ctx *c, int procfd, pid_t pid, struct proc_stat *st)
{
	char rel[32], buf[1024];
	snprintf(rel, sizeof(rel), "%d/stat", (int)pid);
	c->st.stat_reads++;
	ssize_t r = read_at(procfd, rel, buf, sizeof(buf));
	if (r < 0)
		return (int)r;
	if (r == 0)
		return -ESRCH; /* an empty stat: the process is being torn down */
	if (proc_stat_parse(buf, st, NULL) < 0)
		return -EINVAL;
	return 0;
}

static bool is_young(const struct proc_ctx *c, const struct pass *p, uint64_t start_time)
{
	if (!p->have_uptime)
		return false;
	double age = p->uptime_s - (double)start_time / (double)c->hz;
	return age < (double)(c->cfg.young_s ? c->cfg.young_s : DISCOVER_PROC_YOUNG_S);
}

static void take_stat(struct proc_ctx *c, const struct pass *p, struct pid_entry *e,
		      const struct proc_stat *st)
{
	e->start_time = st->start_time;
	e->num_threads = st->num_threads;
	memcpy(e->comm, st->comm, sizeof(e->comm));
	e->comm_kind = vmm_kind_of_comm(e->comm);
	e->young = is_young(c, p, st->start_time);
}

/* Read the comm of thread tid (taskfd: the process's task/) into t. 0,
 * or -errno (-ENOENT/-ESRCH: the thread has exited). */
static int read_thread(struct proc_ctx *c, const struct pid_entry *e, int taskfd, pid_t tid,
		       struct tid_entry *t)
{
	char rel[32], name[64];
	snprintf(rel, sizeof(rel), "%d/comm", (int)tid);
	c->st.comm_reads++;
	ssize_t r = read_at(taskfd, rel, name, sizeof(name));
	if (r < 0)
		return (int)r;
	unsigned idx = 0;
	t->tid = tid;
	t->style = (uint8_t)vcpu_thread_name_parse(name, &idx);
	t->index = (uint16_t)idx;
	if (t->style == VCPU_STYLE_NONE) {
		if (r > 0 && name[r - 1] == '\n')
			name[r - 1] = '\0';
		/* still its creator's name: not yet named, look again */
		if (!strcmp(name, e->comm))
			t->unnamed = t->unnamed ? t->unnamed - 1 : UNNAMED_PASSES;
		else
			t->unnamed = 0;
	} else {
		t->unnamed = 0;
	}
	return 0;
}

/* A thread known from an earlier pass: read again only while unnamed. */
static void recheck_thread(struct proc_ctx *c, const struct pid_entry *e, int taskfd,
			   struct tid_entry *t)
{
	if (!t->unnamed)
		return;
	struct tid_entry u = *t;
	int r = read_thread(c, e, taskfd, t->tid, &u);
	if (r == 0) {
		*t = u;
	} else {
		if (!gone_errno(-r))
			c->st.errors++;
		t->unnamed--;
	}
}

/* List the process's task/ and bring e->tids up to date: keep the threads
 * known, read the comm of new ones (the main thread's is the process's).
 * 1 when the set of threads changed, 0 when not; -1 when the process is
 * gone (e->gone set) or cannot be read. */
static int refresh_threads(struct proc_ctx *c, const struct pass *p, struct pid_entry *e)
{
	char rel[32];
	snprintf(rel, sizeof(rel), "%d/task", (int)e->pid);
	c->st.task_lists++;
	/* taskfd stays open for reading the threads' comm; list_numeric()
	 * takes (and closes) a duplicate */
	int taskfd = openat(p->procfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t n = -EBADF;
	if (taskfd < 0) {
		n = -errno;
	} else {
		int lfd = dup(taskfd);
		n = lfd < 0 ? -errno : list_numeric(lfd, &c->tids, &c->tids_cap);
		if (n < 0)
			close(taskfd);
	}
	if (n < 0) {
		if (gone_errno((int)-n))
			e->gone = true;
		else
			c->st.errors++;
		return -1;
	}
	if (n == 0) { /* every thread gone: the process exited while we looked */
		close(taskfd);
		e->gone = true;
		return -1;
	}

	if ((size_t)n == e->n_tids) {
		size_t i = 0;
		while (i < (size_t)n && c->tids[i] == e->tids[i].tid)
			i++;
		if (i == (size_t)n) { /* the same threads as before */
			for (i = 0; i < e->n_tids; i++)
				recheck_thread(c, e, taskfd, &e->tids[i]);
			close(taskfd);
			return 0;
		}
	}

	struct tid_entry *v = xmalloc(((size_t)n ? (size_t)n : 1) * sizeof(*v));
	size_t k = 0, j = 0;
	for (size_t i = 0; i < (size_t)n; i++) {
		pid_t tid = c->tids[i];
		while (j < e->n_tids && e->tids[j].tid < tid)
			j++;
		if (j < e->n_tids && e->tids[j].tid == tid) {
			v[k] = e->tids[j++];
			recheck_thread(c, e, taskfd, &v[k]);
			k++;
			continue;
		}
		if (tid == e->pid) { /* the main thread: named like the process */
			unsigned idx = 0;
			v[k].tid = tid;
			v[k].style = (uint8_t)vcpu_thread_name_parse(e->comm, &idx);
			v[k].index = (uint16_t)idx;
			v[k].unnamed = 0;
			k++;
			continue;
		}
		v[k].unnamed = 0;
		int r = read_thread(c, e, taskfd, tid, &v[k]);
		if (r == 0)
			k++;
		else if (!gone_errno(-r))
			c->st.errors++; /* skipped; read again next pass */
		/* else: the thread exited since the listing */
	}
	close(taskfd);
	bool changed = k != e->n_tids;
	for (size_t i = 0; !changed && i < k; i++)
		changed = v[i].tid != e->tids[i].tid;
	free(e->tids);
	e->tids = v;
	e->n_tids = k;
	if (k == 0) { /* every thread exited since the listing */
		e->gone = true;
		return -1;
	}
	return changed || (size_t)n != k;
}

/* "<comm>-<pid>", the comm's characters outside [A-Za-z0-9_.-] as '_'. */
static void fallback_name(struct pid_entry *e)
{
	char c[sizeof(e->comm)];
	size_t n = 0;
	for (const char *s = e->comm; *s && n < sizeof(c) - 1; s++) {
		bool ok = isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-';
		c[n++] = ok && (unsigned char)*s < 0x80 ? *s : '_';
	}
	c[n] = '\0';
	snprintf(e->name, sizeof(e->name), "%s-%d", n ? c : "vm", (int)e->pid);
	e->name_given = false;
}

/* Name the VM from its cmdline (read once). */
static void identify(struct proc_ctx *c, const struct pass *p, struct pid_entry *e,
		     enum vmm_kind kind)
{
	char rel[32];
	snprintf(rel, sizeof(rel), "%d/cmdline", (int)e->pid);
	c->st.cmdline_reads++;
	e->uuid[0] = '\0';
	int fd = openat(p->procfd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (gone_errno(errno)) {
			e->gone = true;
			return;
		}
		c->st.errors++;
		fallback_name(e);
		return; /* not identified: tried again next pass */
	}
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	int err = 0;
	while (len < CMDLINE_MAX) {
		if (len == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (err) {
		if (gone_errno(err)) {
			e->gone = true;
			return;
		}
		c->st.errors++;
		fallback_name(e);
		return;
	}
	struct vmm_identity id;
	vmm_cmdline_identify(kind, buf, len, &id);
	if (id.name[0]) {
		memcpy(e->name, id.name, sizeof(e->name));
		e->name_given = true;
	} else {
		fallback_name(e);
	}
	memcpy(e->uuid, id.uuid, sizeof(e->uuid));
	e->identified = true;
}

/* Decide what the process is from its threads: a VM (its kind is that of
 * its vCPU threads; the comm's kind wins a tie), a VMM or young process
 * to keep watching, or not a VM. */
static void classify(struct proc_ctx *c, const struct pass *p, struct pid_entry *e)
{
	unsigned cnt[VMM_KIND_LAST] = { 0 };
	for (size_t i = 0; i < e->n_tids; i++)
		cnt[vmm_kind_of_style((enum vcpu_style)e->tids[i].style)]++;
	cnt[VMM_KIND_UNKNOWN] = 0;
	enum vmm_kind k = VMM_KIND_UNKNOWN;
	if (e->comm_kind != VMM_KIND_UNKNOWN && cnt[e->comm_kind])
		k = e->comm_kind;
	else
		for (int i = 1; i < VMM_KIND_LAST; i++)
			if (cnt[i] > cnt[k])
				k = (enum vmm_kind)i;
	if (k != VMM_KIND_UNKNOWN) {
		e->state = PID_WATCHED;
		if (!e->identified || e->kind != k)
			identify(c, p, e, k);
		e->kind = k;
		e->exited = false;
		if (c->pidfds && e->pidfd < 0)
			e->pidfd = (int)syscall(SYS_pidfd_open, e->pid, 0); /* -1: no watch */
		return;
	}
	e->kind = VMM_KIND_UNKNOWN;
	e->identified = false;
	if (e->comm_kind != VMM_KIND_UNKNOWN || e->young) {
		e->state = PID_WATCHED;
		return;
	}
	e->state = PID_IGNORED;
	entry_forget(e);
}

/* A PID seen for the first time (or again after an exec or a reuse). */
static void probe(struct proc_ctx *c, const struct pass *p, struct pid_entry *e)
{
	c->st.probed++;
	entry_forget(e);
	struct proc_stat st;
	int r = read_stat(c, p->procfd, e->pid, &st);
	if (r < 0) {
		if (gone_errno(-r)) {
			e->gone = true;
		} else {
			/* unreadable: cached as not a VM with an impossible start
			 * time, so that a recheck that can read it probes it */
			c->st.errors++;
			e->state = PID_IGNORED;
			e->start_time = UINT64_MAX;
		}
		return;
	}
	take_stat(c, p, e, &st);
	if (st.flags & PROC_PF_KTHREAD) {
		e->state = PID_IGNORED;
		return;
	}
	unsigned idx;
	if (e->comm_kind == VMM_KIND_UNKNOWN && !e->young && st.num_threads <= 1 &&
	    vcpu_thread_name_parse(e->comm, &idx) == VCPU_STYLE_NONE) {
		/* one thread, the main one, not named like a vCPU: no need to
		 * list task/ */
		e->state = PID_IGNORED;
		return;
	}
	if (refresh_threads(c, p, e) < 0) {
		if (!e->gone) { /* unreadable: as above */
			e->state = PID_IGNORED;
			e->start_time = UINT64_MAX;
		}
		return;
	}
	classify(c, p, e);
}

/* A watched PID: its threads again, its stat when they changed. */
static void refresh(struct proc_ctx *c, const struct pass *p, struct pid_entry *e)
{
	c->st.watched++;
	int changed = refresh_threads(c, p, e);
	if (changed < 0)
		return; /* gone, or unreadable this pass: keep what we knew */
	/* a young process without vCPU threads may exec a VMM at any time;
	 * one with vCPU threads that exec'ed would have other threads */
	if (changed || e->exited || (e->young && e->kind == VMM_KIND_UNKNOWN)) {
		struct proc_stat st;
		int r = read_stat(c, p->procfd, e->pid, &st);
		if (r < 0) {
			if (gone_errno(-r))
				e->gone = true;
			else
				c->st.errors++;
			return;
		}
		if (e->exited || st.start_time != e->start_time || strcmp(st.comm, e->comm) != 0) {
			/* another process under the same PID (its pidfd said the
			 * one watched exited: a start time counts 10 ms clock
			 * ticks, so a PID reused within one looks the same), or
			 * an exec */
			probe(c, p, e);
			return;
		}
		take_stat(c, p, e, &st);
	}
	classify(c, p, e);
}

/* A PID cached as not a VM, picked for its turn: probe it again when it
 * is another process, exec'ed or has another number of threads. */
static void recheck(struct proc_ctx *c, const struct pass *p, struct pid_entry *e)
{
	c->st.rechecked++;
	struct proc_stat st;
	int r = read_stat(c, p->procfd, e->pid, &st);
	if (r < 0) {
		if (gone_errno(-r))
			e->gone = true;
		else
			c->st.errors++;
		return;
	}
	if (st.start_time != e->start_time || strcmp(st.comm, e->comm) != 0 ||
	    st.num_threads != e->num_threads)
		probe(c, p, e);
}

/* Pick this pass's share of the PIDs cached as not a VM (1/recheck_passes
 * of them, the fractions carried over to the next pass), round robin from
 * the one after the last picked. */
static void pick_rechecks(struct proc_ctx *c)
{
	size_t ignored = 0;
	for (size_t i = 0; i < c->n; i++)
		ignored += c->e[i]->state == PID_IGNORED;
	if (!ignored) {
		c->recheck_credit = 0;
		return;
	}
	unsigned passes = c->cfg.recheck_passes ? c->cfg.recheck_passes
						: DISCOVER_PROC_RECHECK_PASSES;
	c->recheck_credit += (double)ignored / (double)passes;
	size_t quota = (size_t)c->recheck_credit;
	c->recheck_credit -= (double)quota;
	if (quota > ignored)
		quota = ignored;
	size_t start = 0;
	while (start < c->n && c->e[start]->pid <= c->cursor)
		start++;
	for (size_t k = 0; k < c->n && quota; k++) {
		struct pid_entry *e = c->e[(start + k) % c->n];
		if (e->state != PID_IGNORED)
			continue;
		e->recheck = true;
		c->cursor = e->pid;
		quota--;
	}
}

/* One poll() over the VMs' pidfds: a process that exited has its PID
 * looked at again in this pass (gone, or another process now). */
static void poll_exits(struct proc_ctx *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct pid_entry *e = c->e[i];
		if (e->pidfd < 0)
			continue;
		if (n == c->pfds_cap) {
			c->pfds_cap = c->pfds_cap ? 2 * c->pfds_cap : 64;
			c->pfds = xrealloc(c->pfds, c->pfds_cap * sizeof(*c->pfds));
			c->pfd_e = xrealloc(c->pfd_e, c->pfds_cap * sizeof(*c->pfd_e));
		}
		c->pfds[n] = (struct pollfd){ .fd = e->pidfd, .events = POLLIN };
		c->pfd_e[n++] = e;
	}
	if (!n || poll(c->pfds, n, 0) <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!c->pfds[i].revents)
			continue;
		struct pid_entry *e = c->pfd_e[i];
		pidfd_drop(e);
		e->exited = true;
	}
}

static int cmp_vcpu(const void *a, const void *b)
{
	const struct vm_vcpu *x = a, *y = b;
	if (x->index != y->index)
		return (x->index > y->index) - (x->index < y->index);
	return (x->tid > y->tid) - (x->tid < y->tid);
}

/* The result entry of a VM; false when it has no vCPU of its kind. */
static bool emit(const struct proc_ctx *c, const struct pid_entry *e, struct discover_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->vcpus = xmalloc((e->n_tids ? e->n_tids : 1) * sizeof(*vm->vcpus));
	size_t n = 0;
	for (size_t i = 0; i < e->n_tids; i++) {
		if (vmm_kind_of_style((enum vcpu_style)e->tids[i].style) != e->kind)
			continue;
		vm->vcpus[n].index = e->tids[i].index;
		vm->vcpus[n].tid = e->tids[i].tid;
		n++;
	}
	if (!n) {
		free(vm->vcpus);
		vm->vcpus = NULL;
		return false;
	}
	/* by index; two threads claiming one index (a vCPU unplugged and
	 * plugged again while the old thread exits): the lower TID is kept */
	qsort(vm->vcpus, n, sizeof(*vm->vcpus), cmp_vcpu);
	size_t k = 1;
	for (size_t i = 1; i < n; i++)
		if (vm->vcpus[i].index != vm->vcpus[k - 1].index)
			vm->vcpus[k++] = vm->vcpus[i];
	vm->n_vcpus = k;
	vm->pid = e->pid;
	vm->start_time = e->start_time;
	vm->kind = e->kind;
	memcpy(vm->name, e->name, sizeof(vm->name));
	vm->name_given = e->name_given;
	memcpy(vm->uuid, e->uuid, sizeof(vm->uuid));
	if (c->cfg.tenant_from_name && e->name_given)
		discover_tenant_from_name(e->name, vm->tenant);
	return true;
}

static int proc_scan(void *vctx, struct discover_result *out, struct error **err)
{
	struct proc_ctx *c = vctx;
	out->vms = NULL;
	out->n = 0;
	memset(&c->st, 0, sizeof(c->st));

	struct pass p = { .procfd = -1 };
	p.procfd = open(c->proc_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p.procfd < 0)
		return error_set_errno(err, errno, "cannot open %s", c->proc_path);
	int lfd = dup(p.procfd);
	ssize_t np = lfd < 0 ? -errno : list_numeric(lfd, &c->pids, &c->pids_cap);
	if (np < 0) {
		close(p.procfd);
		return error_set_errno(err, (int)-np, "cannot list %s", c->proc_path);
	}
	c->st.pids = (unsigned)np;
	/* the clock that start times count in; none in a fake tree without
	 * it, and then no process counts as young */
	char up[128];
	p.have_uptime = read_at(p.procfd, "uptime", up, sizeof(up)) > 0 &&
			proc_uptime_parse(up, &p.uptime_s, NULL) == 0;

	/* walk the listing and the cache in step: known PIDs keep their entry,
	 * new ones get one, the cache's others have exited */
	if (c->next_cap < (size_t)np) {
		c->next_cap = (size_t)np;
		c->next = xrealloc(c->next, c->next_cap * sizeof(*c->next));
	}
	size_t j = 0, k = 0;
	for (size_t i = 0; i < (size_t)np; i++) {
		pid_t pid = c->pids[i];
		while (j < c->n && c->e[j]->pid < pid)
			entry_free(c->e[j++]);
		if (j < c->n && c->e[j]->pid == pid) {
			c->next[k++] = c->e[j++];
			continue;
		}
		struct pid_entry *e = xcalloc(1, sizeof(*e));
		e->pid = pid;
		e->pidfd = -1;
		e->state = PID_NEW;
		c->next[k++] = e;
	}
	while (j < c->n)
		entry_free(c->e[j++]);
	struct pid_entry **tmp = c->e;
	size_t tcap = c->e_cap;
	c->e = c->next;
	c->e_cap = c->next_cap;
	c->n = k;
	c->next = tmp;
	c->next_cap = tcap;

	pick_rechecks(c);
	poll_exits(c);
	for (size_t i = 0; i < c->n; i++) {
		struct pid_entry *e = c->e[i];
		switch (e->state) {
		case PID_NEW:
			probe(c, &p, e);
			break;
		case PID_WATCHED:
			refresh(c, &p, e);
			break;
		case PID_IGNORED:
			if (e->recheck)
				recheck(c, &p, e);
			break;
		}
		e->recheck = false;
	}
	close(p.procfd);

	/* drop what exited; count what is left; the VMs out */
	size_t vms = 0;
	k = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct pid_entry *e = c->e[i];
		if (e->gone) {
			c->st.vanished++;
			entry_free(e);
			continue;
		}
		c->e[k++] = e;
		if (e->state == PID_IGNORED)
			c->st.ignored++;
		else if (e->kind != VMM_KIND_UNKNOWN)
			vms++;
		else if (e->comm_kind != VMM_KIND_UNKNOWN)
			c->st.candidates++;
	}
	c->n = k;
	if (vms) {
		out->vms = xcalloc(vms, sizeof(*out->vms));
		for (size_t i = 0; i < c->n; i++) {
			const struct pid_entry *e = c->e[i];
			if (e->state != PID_WATCHED || e->kind == VMM_KIND_UNKNOWN)
				continue;
			if (emit(c, e, &out->vms[out->n])) {
				c->st.vcpus += (unsigned)out->vms[out->n].n_vcpus;
				out->n++;
			}
		}
		if (!out->n) {
			free(out->vms);
			out->vms = NULL;
		}
	}
	c->st.vms = (unsigned)out->n;
	return 0;
}

static void proc_free(void *vctx)
{
	struct proc_ctx *c = vctx;
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		entry_free(c->e[i]);
	free(c->e);
	free(c->next);
	free(c->pids);
	free(c->tids);
	free(c->pfds);
	free(c->pfd_e);
	free(c->proc_path);
	free(c);
}

static const struct discover_ops proc_ops = {
	.name = "proc",
	.scan = proc_scan,
	.free = proc_free,
};

int discover_proc_new(const char *host_root, const struct discover_proc_config *cfg,
		      struct discover_backend **out, struct error **err)
{
	(void)err;
	struct proc_ctx *c = xcalloc(1, sizeof(*c));
	c->proc_path = path_join(host_root && *host_root ? host_root : "/", "proc", NULL);
	if (cfg)
		c->cfg = *cfg;
	c->hz = sysconf(_SC_CLK_TCK);
	if (c->hz <= 0)
		c->hz = 100;
	c->pidfds = procfs_is_real(host_root);
	struct discover_backend *b = xcalloc(1, sizeof(*b));
	b->ops = &proc_ops;
	b->ctx = c;
	*out = b;
	return 0;
}

int discover_proc_configure(struct discover_backend *b, const struct discover_proc_config *cfg,
			    struct error **err)
{
	if (!b || b->ops != &proc_ops)
		return error_set(err, EINVAL, "not a /proc discovery backend");
	struct proc_ctx *c = b->ctx;
	if (cfg)
		c->cfg = *cfg;
	else
		memset(&c->cfg, 0, sizeof(c->cfg));
	return 0;
}

int discover_proc_stats(const struct discover_backend *b, struct discover_proc_stats *out,
			struct error **err)
{
	if (!b || b->ops != &proc_ops)
		return error_set(err, EINVAL, "not a /proc discovery backend");
	const struct proc_ctx *c = b->ctx;
	*out = c->st;
	return 0;
}
