/* ops.c - the engine's backends (struct cgroup_ops, as libvirt splits its
 * cgroup v1/v2 backends): `real` does plain system calls on cgroupfs and
 * keeps errno in the error. The dry-run backend, which wraps another one, is
 * in dryrun.c. See cgroup.h for why vcpud writes cgroupfs files itself
 * instead of going through libcgroup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vcpud/cgroup.h"
#include "vcpud/util.h"

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

void cgroup_names_free(char **names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* --- real ------------------------------------------------------------------ */

static int real_read_file(void *ctx, const char *path, char **out, struct error **err)
{
	(void)ctx;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open %s", path);
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "cannot read %s", path);
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	/* callers may keep it (the dry-run overlay keeps thousands): no 4 KiB
	 * buffer behind a 40-byte value */
	*out = xrealloc(steal_ptr(&buf), len + 1);
	return 0;
}

/* cgroupfs parses each write() on its own: the whole value must go in one
 * call, and a short write means the kernel took only part of it. */
static int real_write_file(void *ctx, const char *path, const char *value, struct error **err)
{
	(void)ctx;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open %s", path);
	size_t len = strlen(value);
	ssize_t r;
	do
		r = write(fd, value, len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return error_set_errno(err, errno, "cannot write '%s' to %s", value, path);
	if ((size_t)r != len)
		return error_set(err, EIO, "short write of '%s' to %s (%zd of %zu bytes)", value,
				 path, r, len);
	return 0;
}

static int real_mkdir(void *ctx, const char *path, struct error **err)
{
	(void)ctx;
	if (mkdir(path, 0755) < 0)
		return error_set_errno(err, errno, "cannot create %s", path);
	return 0;
}

static int real_rmdir(void *ctx, const char *path, struct error **err)
{
	(void)ctx;
	if (rmdir(path) < 0)
		return error_set_errno(err, errno, "cannot remove %s", path);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int real_list_dir(void *ctx, const char *path, char ***names, size_t *n,
			 struct error **err)
{
	(void)ctx;
	_cleanup_(closedirp) DIR *d = opendir(path);
	if (!d)
		return error_set_errno(err, errno, "cannot open directory %s", path);
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			dir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			      S_ISDIR(st.st_mode);
		}
		if (!dir)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt++] = xstrdup(de->d_name);
		errno = 0;
	}
	if (errno) {
		int e = errno;
		cgroup_names_free(v, cnt);
		return error_set_errno(err, e, "cannot read directory %s", path);
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*names = v;
	*n = cnt;
	return 0;
}

static int real_is_dir(void *ctx, const char *path, bool *out, struct error **err)
{
	(void)ctx;
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*out = false;
			return 0;
		}
		return error_set_errno(err, errno, "cannot stat %s", path);
	}
	*out = S_ISDIR(st.st_mode);
	return 0;
}

const struct cgroup_ops cgroup_ops_real = {
	.name = "real",
	.read_file = real_read_file,
	.write_file = real_write_file,
	.mkdir = real_mkdir,
	.rmdir = real_rmdir,
	.list_dir = real_list_dir,
	.is_dir = real_is_dir,
};
