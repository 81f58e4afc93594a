/* sysfs.c - reading the host topology from sysfs (and proc/meminfo on hosts
 * without NUMA) through the root prefix, with one pure parser per file
 * format. Kernel facts handled here: offline CPUs have no topology/
 * directory (only CPUs in cpu/online are read); thread_siblings_list is
 * the long-standing name, core_cpus_list its newer alias (5.x); node
 * meminfo values are in kB. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "vcpud/path.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

#define SYS_CPU "sys/devices/system/cpu"
#define SYS_NODE "sys/devices/system/node"

/* --- pure parsers ---------------------------------------------------------- */

int topology_parse_id(const char *buf, int *out, struct error **err)
{
	if (!buf)
		return error_set(err, EINVAL, "invalid id: no text");
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 32)
		return error_set(err, EINVAL, "invalid id '%.32s...': too long", buf);
	char tmp[40];
	memcpy(tmp, buf, n);
	tmp[n] = '\0';
	int64_t v;
	if (parse_i64(tmp, -1, INT32_MAX, &v, err) < 0)
		return error_wrap(err, "invalid id");
	*out = (int)v;
	return 0;
}

/* Parse "<digits> kB" (spaces before, newline or end after) at p. */
static int parse_kb(const char *p, uint64_t *bytes, struct error **err)
{
	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p))
		return error_set(err, EINVAL, "MemTotal: expected a number of kB");
	uint64_t v = 0;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX / 1024 - 9) / 10)
			return error_set(err, ERANGE, "MemTotal: value out of range");
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (strncmp(p, " kB", 3) != 0 || (p[3] != '\n' && p[3] != '\0'))
		return error_set(err, EINVAL, "MemTotal: expected a value in kB");
	*bytes = v * 1024;
	return 0;
}

int topology_parse_meminfo(const char *buf, int node, uint64_t *bytes, struct error **err)
{
	if (!buf)
		return error_set(err, EINVAL, "invalid meminfo: no text");
	for (const char *line = buf; *line; ) {
		const char *eol = strchr(line, '\n');
		const char *p = line;
		bool is_total = false;
		if (node < 0) {
			is_total = str_has_prefix(p, "MemTotal:");
			p += is_total ? strlen("MemTotal:") : 0;
		} else if (str_has_prefix(p, "Node ")) {
			/* "Node <n> MemTotal:" - the node number must be ours */
			const char *q = p + 5;
			unsigned long id = 0;
			bool digits = isdigit((unsigned char)*q);
			for (; isdigit((unsigned char)*q) && id < 1000000; q++)
				id = id * 10 + (unsigned long)(*q - '0');
			if (digits && str_has_prefix(q, " MemTotal:")) {
				if (id != (unsigned long)node)
					return error_set(err, EINVAL,
							 "meminfo is about node %lu, expected node %d",
							 id, node);
				is_total = true;
				p = q + strlen(" MemTotal:");
			}
		}
		if (is_total)
			return parse_kb(p, bytes, err);
		if (!eol)
			break;
		line = eol + 1;
	}
	return error_set(err, EINVAL, "meminfo has no %sMemTotal line",
			 node < 0 ? "" : "'Node N' ");
}

/* --- I/O ------------------------------------------------------------------- */

/* The whole of a small text file. Errors name the path. */
static int read_text(const char *path, char **out, struct error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot read %s", path);
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "cannot read %s", path);
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > TOPOLOGY_FILE_MAX)
			return error_set(err, EFBIG, "%s: larger than %d bytes", path,
					 TOPOLOGY_FILE_MAX);
	}
	buf[len] = '\0';
	if (strlen(buf) != len)
		return error_set(err, EINVAL, "%s: contains a NUL byte", path);
	*out = steal_ptr(&buf);
	return 0;
}

static int read_cpulist(const char *path, struct cpuset *out, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	if (read_text(path, &text, err) < 0)
		return -1;
	if (cpulist_parse(text, out, err) < 0)
		return error_wrap(err, "%s", path);
	return 0;
}

static int read_id(const char *path, int *out, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	if (read_text(path, &text, err) < 0)
		return -1;
	if (topology_parse_id(text, out, err) < 0)
		return error_wrap(err, "%s", path);
	return 0;
}

static int read_meminfo(const char *path, int node, uint64_t *bytes, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	if (read_text(path, &text, err) < 0)
		return -1;
	if (topology_parse_meminfo(text, node, bytes, err) < 0)
		return error_wrap(err, "%s", path);
	return 0;
}

static int load_cpu(const char *root, unsigned cpu, struct topology_cpu_raw *r,
		    struct error **err)
{
	char name[32];
	snprintf(name, sizeof(name), "cpu%u", cpu);
	_cleanup_free_ char *dir = path_join(root, SYS_CPU, name, "topology", NULL);
	_cleanup_free_ char *core = path_join(dir, "core_id", NULL);
	_cleanup_free_ char *pkg = path_join(dir, "physical_package_id", NULL);
	_cleanup_free_ char *sib = path_join(dir, "thread_siblings_list", NULL);

	r->cpu = cpu;
	if (read_id(core, &r->core_id, err) < 0 || read_id(pkg, &r->package_id, err) < 0)
		return -1;
	struct stat st;
	if (stat(sib, &st) < 0 && errno == ENOENT) {
		_cleanup_free_ char *alt = path_join(dir, "core_cpus_list", NULL);
		if (stat(alt, &st) == 0)
			return read_cpulist(alt, &r->siblings, err);
	}
	return read_cpulist(sib, &r->siblings, err);
}

int topology_load(const char *host_root, struct topology **out, struct error **err)
{
	const char *root = host_root && *host_root ? host_root : "/";
	struct cpuset online;
	_cleanup_free_ char *online_path = path_join(root, SYS_CPU, "online", NULL);
	if (read_cpulist(online_path, &online, err) < 0)
		return -1;
	if (cpuset_empty(&online))
		return error_set(err, EINVAL, "%s: no online CPUs", online_path);

	unsigned n_cpus = cpuset_count(&online);
	_cleanup_free_ struct topology_cpu_raw *cpus = xcalloc(n_cpus, sizeof(*cpus));
	size_t k = 0;
	for (unsigned c = 0; c < CPULIST_MAX_CPUS && k < n_cpus; c++)
		if (cpuset_isset(&online, c) && load_cpu(root, c, &cpus[k++], err) < 0)
			return -1;

	_cleanup_free_ struct topology_node_raw *nodes = NULL;
	size_t n_nodes = 0;
	bool numa = true;
	_cleanup_free_ char *node_dir = path_join(root, SYS_NODE, NULL);
	struct stat st;
	if (stat(node_dir, &st) < 0 && errno == ENOENT) {
		/* CONFIG_NUMA=n: one node with every CPU and all the memory */
		numa = false;
		_cleanup_free_ char *mi = path_join(root, "proc/meminfo", NULL);
		nodes = xcalloc(1, sizeof(*nodes));
		n_nodes = 1;
		nodes[0].id = 0;
		nodes[0].cpus = online;
		if (read_meminfo(mi, -1, &nodes[0].mem_total_bytes, err) < 0)
			return -1;
	} else {
		struct cpuset node_online;
		_cleanup_free_ char *np = path_join(node_dir, "online", NULL);
		if (read_cpulist(np, &node_online, err) < 0)
			return -1;
		if (cpuset_empty(&node_online))
			return error_set(err, EINVAL, "%s: no online NUMA nodes", np);
		nodes = xcalloc(cpuset_count(&node_online), sizeof(*nodes));
		for (unsigned n = 0; n < CPULIST_MAX_CPUS; n++) {
			if (!cpuset_isset(&node_online, n))
				continue;
			char name[32];
			snprintf(name, sizeof(name), "node%u", n);
			_cleanup_free_ char *cl = path_join(node_dir, name, "cpulist", NULL);
			_cleanup_free_ char *mi = path_join(node_dir, name, "meminfo", NULL);
			struct topology_node_raw *r = &nodes[n_nodes++];
			r->id = n;
			if (read_cpulist(cl, &r->cpus, err) < 0 ||
			    read_meminfo(mi, (int)n, &r->mem_total_bytes, err) < 0)
				return -1;
		}
	}

	_cleanup_free_ char *where = path_join(root, "sys/devices/system", NULL);
	if (topology_assemble(&online, cpus, n_cpus, nodes, n_nodes, numa, out, err) < 0)
		return error_wrap(err, "topology of %s", where);
	return 0;
}
