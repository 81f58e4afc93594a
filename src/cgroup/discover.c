/* discover.c - where is cgroup v2, and does it hold cpu, cpuset and memory?
 * Two independent answers are combined: /proc/self/mountinfo, parsed by a
 * pure function (testable on fixture text, reachable through a root
 * prefix), and libcgroup's view of the mounted controllers on the host. A
 * hybrid or legacy host, where any of the three sits on a v1 hierarchy, is
 * refused with a message that says how to boot it instead. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>

#include <libcgroup.h>

#include "vcpud/cgroup.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define NEEDED CGROUP_CTRLS_DOMAIN
/* where systemd and every distribution mount cgroup2: preferred when a
 * mount table lists several (a name compared, never opened) */
#define USUAL_MOUNT "/sys/fs/cgroup"
#define BOOT_HINT                                                                  \
	"vcpud needs cpu, cpuset and memory on the unified hierarchy (cgroup v2): " \
	"boot the host with systemd.unified_cgroup_hierarchy=1 (or cgroup_no_v1=all)"

static const char *first_name(unsigned mask)
{
	for (int c = 0; c < CGROUP_CTRL_LAST; c++)
		if (mask & CGROUP_CTRL_BIT(c))
			return cgroup_ctrl_name(c);
	return "?";
}

int cgroup_mounts_check(const struct cgroup_mount *mounts, size_t n, char **mount_point,
			struct error **err)
{
	const struct cgroup_mount *v2 = NULL;
	for (size_t i = 0; i < n; i++)
		if (mounts[i].v2 && (!v2 || strcmp(mounts[i].mount_point, USUAL_MOUNT) == 0))
			v2 = &mounts[i];
	for (size_t i = 0; i < n; i++) {
		const struct cgroup_mount *m = &mounts[i];
		if (m->v2 || !(m->controllers & NEEDED))
			continue;
		if (v2)
			return error_set(err, ENOTSUP,
					 "controller %s is on a cgroup v1 hierarchy mounted at %s "
					 "(a hybrid host: the cgroup2 mount at %s cannot have it); "
					 BOOT_HINT,
					 first_name(m->controllers & NEEDED), m->mount_point,
					 v2->mount_point);
		return error_set(err, ENOTSUP,
				 "controller %s is on a cgroup v1 hierarchy mounted at %s "
				 "(a legacy host: no cgroup2 mount); " BOOT_HINT,
				 first_name(m->controllers & NEEDED), m->mount_point);
	}
	if (!v2)
		return error_set(err, ENOENT, "no cgroup2 filesystem is mounted; " BOOT_HINT);
	*mount_point = xstrdup(v2->mount_point);
	return 0;
}

/* Ask libcgroup where cpu, cpuset and memory are mounted, and refuse any on
 * a v1 hierarchy. A mount is v2 when mountinfo says so, or when statfs()
 * says cgroup2 for a path mountinfo does not list. libcgroup failing to
 * initialise is only a warning: mountinfo has already answered. */
static int libcgroup_check(const struct cgroup_mount *mounts, size_t n, struct error **err)
{
	int ret = cgroup_init();
	if (ret != 0) {
		log_warn("cgroup: libcgroup cannot initialise (%s); using mountinfo alone",
			 cgroup_strerror(ret));
		return 0;
	}
	void *h = NULL;
	struct cgroup_mount_point info;
	int rc = 0;
	for (ret = cgroup_get_controller_begin(&h, &info); ret == 0;
	     ret = cgroup_get_controller_next(&h, &info)) {
		unsigned bit = 0;
		if (cgroup_controllers_parse(info.name, &bit, NULL) < 0 || !(bit & NEEDED))
			continue;
		bool v2 = false, known = false;
		for (size_t i = 0; i < n && !known; i++) {
			if (strcmp(mounts[i].mount_point, info.path) == 0) {
				known = true;
				v2 = mounts[i].v2;
			}
		}
		if (!known) {
			struct statfs sf;
			v2 = statfs(info.path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
		}
		if (!v2) {
			rc = error_set(err, ENOTSUP,
				       "controller %s is mounted on a cgroup v1 hierarchy at %s "
				       "(found by libcgroup); " BOOT_HINT,
				       info.name, info.path);
			break;
		}
		log_debug("cgroup: libcgroup finds %s on cgroup2 at %s", info.name, info.path);
	}
	if (rc == 0 && ret != 0 && ret != ECGEOF)
		log_warn("cgroup: libcgroup cannot list controllers: %s", cgroup_strerror(ret));
	if (h)
		cgroup_get_controller_end(&h);
	return rc;
}

int cgroup_discover(const char *sysroot, char **cgroup2_mount, struct error **err)
{
	bool host = !sysroot || strcmp(sysroot, "/") == 0;
	const char *prefix = host ? "/" : sysroot;
	_cleanup_free_ char *mi_path = path_join(prefix, "proc", "self", "mountinfo", NULL);
	_cleanup_free_ char *buf = NULL;
	if (cgroup_ops_real.read_file(NULL, mi_path, &buf, err) < 0)
		return -1;

	struct cgroup_mount *mounts = NULL;
	size_t n = 0;
	if (cgroup_mountinfo_parse(buf, &mounts, &n, err) < 0)
		return error_wrap(err, "%s", mi_path);
	/* libcgroup first on the host (its message names what it found),
	 * mountinfo as the cross-check and the only source under a prefix */
	_cleanup_free_ char *mp = NULL;
	int r = host ? libcgroup_check(mounts, n, err) : 0;
	if (r == 0)
		r = cgroup_mounts_check(mounts, n, &mp, err);
	cgroup_mounts_free(mounts, n);
	if (r < 0)
		return -1;

	_cleanup_free_ char *full = path_join(prefix, mp, NULL);
	_cleanup_free_ char *cpath = path_join(full, "cgroup.controllers", NULL);
	_cleanup_free_ char *cbuf = NULL;
	if (cgroup_ops_real.read_file(NULL, cpath, &cbuf, err) < 0)
		return -1;
	unsigned avail = 0;
	if (cgroup_controllers_parse(cbuf, &avail, err) < 0)
		return error_wrap(err, "%s", cpath);
	if ((avail & NEEDED) != NEEDED)
		return error_set(err, ENOTSUP,
				 "the cgroup2 mount at %s offers no %s controller "
				 "(cgroup.controllers: '%.*s'); is it disabled on the kernel "
				 "command line (cgroup_disable=)?",
				 full, first_name(NEEDED & ~avail), (int)strcspn(cbuf, "\n"), cbuf);
	*cgroup2_mount = steal_ptr(&full);
	return 0;
}
