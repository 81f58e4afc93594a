/* pools.c - the policy's CPU pools on a given host: housekeeping and
 * dedicated come from host.housekeeping_cpus / host.dedicated_cpus, shared
 * is every other online CPU. A pool naming an offline CPU, or two pools
 * sharing one, is a configuration error caught when the policy is loaded
 * against the topology, never at placement time. */
#include <errno.h>

#include "vcpud/topology.h"
#include "vcpud/util.h"

static int check_online(const struct topology *t, const char *key, const struct cpuset *s,
			struct error **err)
{
	struct cpuset off;
	cpuset_andnot(&off, s, &t->online);
	if (cpuset_empty(&off))
		return 0;
	_cleanup_free_ char *l = cpulist_format(&off);
	_cleanup_free_ char *on = cpulist_format(&t->online);
	bool one = cpuset_count(&off) == 1;
	return error_set(err, EINVAL, "%s: CPU%s %s %s offline (online: %s)", key,
			 one ? "" : "s", l, one ? "is" : "are", on);
}

int topology_pools(const struct topology *t, const struct cpuset *housekeeping,
		   const struct cpuset *dedicated, struct pools *out, struct error **err)
{
	if (check_online(t, "host.housekeeping_cpus", housekeeping, err) < 0 ||
	    check_online(t, "host.dedicated_cpus", dedicated, err) < 0)
		return -1;
	if (cpuset_intersects(housekeeping, dedicated)) {
		struct cpuset both;
		cpuset_and(&both, housekeeping, dedicated);
		_cleanup_free_ char *l = cpulist_format(&both);
		bool one = cpuset_count(&both) == 1;
		return error_set(err, EINVAL,
				 "host.housekeeping_cpus and host.dedicated_cpus overlap on CPU%s %s",
				 one ? "" : "s", l);
	}
	struct pools p;
	p.housekeeping = *housekeeping;
	p.dedicated = *dedicated;
	cpuset_andnot(&p.shared, &t->online, housekeeping);
	cpuset_andnot(&p.shared, &p.shared, dedicated);
	*out = p;
	return 0;
}
