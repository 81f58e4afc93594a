/* fuzz_cgroup.c - the cgroup files vcpud reads (cpu.max, memory.max,
 * cgroup.controllers, cgroup.threads/procs, /proc/PID/cgroup, cpu.stat,
 * /proc/self/mountinfo) and the CPU lists of sysfs and the policy
 * (cpulist_parse, then format and parse again: the same set). The first
 * byte picks the parser. */
#include "fuzz_util.h"

#include "vcpud/cgroup.h"
#include "vcpud/cpulist.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;
	size_t len;
	char *s = fuzz_text(data, size, &sel, &len);
	struct error *err = NULL;
	switch (sel % 10) {
	case 0: {
		struct cgroup_cpu_max m;
		cgroup_cpu_max_parse(s, &m, &err);
		break;
	}
	case 1: {
		struct cgroup_mem_max m;
		cgroup_mem_max_parse(s, &m, &err);
		break;
	}
	case 2: {
		unsigned mask;
		cgroup_controllers_parse(s, &mask, &err);
		break;
	}
	case 3: {
		pid_t *ids = NULL;
		size_t n = 0;
		if (cgroup_pids_parse(s, &ids, &n, &err) == 0)
			free(ids);
		break;
	}
	case 4: {
		char *path = NULL;
		if (cgroup_proc_cgroup_parse(s, &path, &err) == 0)
			free(path);
		break;
	}
	case 5: {
		struct cgroup_cpu_stat st;
		cgroup_cpu_stat_parse(s, &st, &err);
		break;
	}
	case 6: {
		struct cgroup_mount *m = NULL;
		size_t n = 0;
		if (cgroup_mountinfo_parse(s, &m, &n, &err) == 0)
			cgroup_mounts_free(m, n);
		break;
	}
	case 7: {
		struct cpuset a, b;
		if (cpulist_parse(s, &a, &err) == 0) {
			char *f = cpulist_format(&a);
			if (cpulist_parse(f, &b, NULL) < 0 || !cpuset_equal(&a, &b))
				abort(); /* format and parse again: the same set */
			free(f);
		}
		break;
	}
	case 8: {
		int id;
		uint64_t bytes;
		topology_parse_id(s, &id, &err);
		error_free(&err);
		topology_parse_meminfo(s, 0, &bytes, &err);
		break;
	}
	default: {
		int64_t b;
		double d;
		parse_size(s, &b, &err);
		error_free(&err);
		parse_double(s, 0, 1e9, &d, &err);
		break;
	}
	}
	error_free(&err);
	free(s);
	return 0;
}
