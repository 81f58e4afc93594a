/* procfs.c - vCPU threads by name from /proc/<pid>/task/<tid>/comm.
 *
 * The name parser is pure; the scanner tolerates the races a live /proc has:
 * a thread can exit between readdir() and reading its comm (skipped), and
 * the whole process can exit (ESRCH). Every path goes through the root
 * prefix so the unit tests run on a fake tree. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vcpud/discover.h"
#include "vcpud/path.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

/* Parse a decimal vCPU index at *p: no sign, no leading zero (but "0"),
 * below 4096. Advances *p. */
static bool parse_index(const char **p, unsigned *out)
{
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return false;
	if (s[0] == '0' && isdigit((unsigned char)s[1]))
		return false;
	unsigned v = 0;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v >= 4096)
			return false;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

enum vcpu_style vcpu_thread_name_parse(const char *comm, unsigned *index)
{
	if (!comm)
		return VCPU_STYLE_NONE;
	char buf[32];
	size_t n = strlen(comm);
	if (n >= sizeof(buf))
		return VCPU_STYLE_NONE;
	memcpy(buf, comm, n + 1);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';

	const char *p = buf;
	unsigned idx;
	if (str_has_prefix(p, "CPU ")) {
		p += 4;
		if (!parse_index(&p, &idx))
			return VCPU_STYLE_NONE;
		enum vcpu_style st = strcmp(p, "/KVM") == 0 ? VCPU_STYLE_QEMU_KVM
				   : strcmp(p, "/TCG") == 0 ? VCPU_STYLE_QEMU_TCG
							    : VCPU_STYLE_NONE;
		if (st != VCPU_STYLE_NONE)
			*index = idx;
		return st;
	}
	if (str_has_prefix(p, "fc_vcpu ")) {
		p += 8;
		if (!parse_index(&p, &idx) || *p)
			return VCPU_STYLE_NONE;
		*index = idx;
		return VCPU_STYLE_FIRECRACKER;
	}
	if (str_has_prefix(p, "vcpu")) {
		p += 4;
		if (!parse_index(&p, &idx) || *p)
			return VCPU_STYLE_NONE;
		*index = idx;
		return VCPU_STYLE_CLOUD_HV;
	}
	return VCPU_STYLE_NONE;
}

/* Read a small file; -1 with errno set on failure. */
static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, size - 1);
	int e = errno;
	close(fd);
	if (r < 0) {
		errno = e;
		return -1;
	}
	buf[r] = '\0';
	return 0;
}

static int cmp_tid(const void *a, const void *b)
{
	const struct proc_thread *x = a, *y = b;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

int proc_threads_scan(const char *host_root, pid_t pid, struct proc_thread **out, size_t *n,
		      struct error **err)
{
	if (pid <= 0)
		return error_set(err, EINVAL, "invalid pid %d", (int)pid);
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	_cleanup_free_ char *task = path_join(host_root ? host_root : "/", "proc", pidbuf, "task", NULL);
	DIR *d = opendir(task);
	if (!d) {
		if (errno == ENOENT || errno == ESRCH)
			return error_set(err, ESRCH, "process %d does not exist", (int)pid);
		return error_set_errno(err, errno, "cannot list %s", task);
	}
	struct proc_thread *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		/* not a tid, or beyond pid_t (it would wrap to another tid) */
		if (*end || tid <= 0 || tid > INT_MAX || !isdigit((unsigned char)de->d_name[0]))
			continue;
		_cleanup_free_ char *comm = path_join(task, de->d_name, "comm", NULL);
		char name[64];
		if (read_small(comm, name, sizeof(name)) < 0)
			continue; /* the thread exited during the scan */
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt].tid = (pid_t)tid;
		v[cnt].index = 0;
		v[cnt].style = vcpu_thread_name_parse(name, &v[cnt].index);
		cnt++;
	}
	closedir(d);
	if (cnt == 0) {
		free(v);
		/* every thread gone: the process exited while we looked */
		return error_set(err, ESRCH, "process %d does not exist", (int)pid);
	}
	qsort(v, cnt, sizeof(*v), cmp_tid);
	*out = v;
	*n = cnt;
	return 0;
}

static int cmp_index(const void *a, const void *b)
{
	const struct vm_vcpu *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

int proc_vm_vcpus(const char *host_root, pid_t pid, struct vm_vcpu **out, size_t *n,
		  struct error **err)
{
	_cleanup_free_ struct proc_thread *th = NULL;
	size_t nt = 0;
	if (proc_threads_scan(host_root, pid, &th, &nt, err) < 0)
		return -1;
	struct vm_vcpu *v = xcalloc(nt, sizeof(*v));
	size_t cnt = 0;
	for (size_t i = 0; i < nt; i++) {
		if (th[i].style == VCPU_STYLE_NONE)
			continue;
		v[cnt].index = th[i].index;
		v[cnt].tid = th[i].tid;
		cnt++;
	}
	if (cnt == 0) {
		free(v);
		char comm[64] = "?";
		char pidbuf[16];
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
		_cleanup_free_ char *p = path_join(host_root ? host_root : "/", "proc", pidbuf,
						   "comm", NULL);
		if (read_small(p, comm, sizeof(comm)) == 0)
			strstrip(comm);
		return error_set(err, ENOENT,
				 "process %d (%s) has no vCPU threads named 'CPU <n>/KVM', "
				 "'fc_vcpu <n>' or 'vcpu<n>'", (int)pid, comm);
	}
	qsort(v, cnt, sizeof(*v), cmp_index);
	for (size_t i = 1; i < cnt; i++) {
		if (v[i].index == v[i - 1].index) {
			int a = (int)v[i - 1].tid, b = (int)v[i].tid;
			unsigned idx = v[i].index;
			free(v);
			return error_set(err, EINVAL,
					 "process %d has two threads claiming vCPU %u (%d and %d)",
					 (int)pid, idx, a, b);
		}
	}
	*out = v;
	*n = cnt;
	return 0;
}

bool procfs_is_real(const char *host_root)
{
	_cleanup_free_ char *self = path_join(host_root && *host_root ? host_root : "/", "proc",
					      "self", NULL);
	char buf[32];
	ssize_t n = readlink(self, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char want[32];
	snprintf(want, sizeof(want), "%d", (int)getpid());
	return strcmp(buf, want) == 0;
}
