/* test_topology.c - host topology (src/topology/): the per-file parsers on
 * good and malformed buffers, topology_load() on the fixture trees under
 * tests/fixtures/topology/ (1 socket SMT2 without NUMA, 2 sockets x 8 cores
 * SMT2, 64 CPUs without SMT, offline CPUs, uneven nodes), malformed trees
 * built in a temp dir (each error names its file), the pure assembler's
 * consistency checks, the spec builder and the policy's pools. Run from the
 * repository root, or with VCPUD_SRC set to it. */
#include <errno.h>
#include <ftw.h>
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

#include "vcpud/cpulist.h"
#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

#define KB 1024ULL

static char *fixture(const char *name)
{
	const char *root = getenv("VCPUD_SRC");
	return path_join(root && *root ? root : ".", "tests/fixtures/topology", name, NULL);
}

static struct cpuset cs(const char *list)
{
	struct cpuset s;
	struct error *err = NULL;
	if (cpulist_parse(list, &s, &err) < 0)
		fail_msg("bad list in test: %s", err->msg);
	return s;
}

static void assert_cpuset(const struct cpuset *s, const char *want)
{
	_cleanup_free_ char *l = cpulist_format(s);
	assert_string_equal(l, want);
}

static void assert_err(struct error **err, int code, const char *needle)
{
	assert_non_null(*err);
	if (!strstr((*err)->msg, needle))
		fail_msg("message '%s' lacks '%s'", (*err)->msg, needle);
	assert_int_equal((*err)->code, code);
	error_free(err);
}

static struct topology *load_fixture(const char *name)
{
	_cleanup_free_ char *root = fixture(name);
	struct topology *t = NULL;
	struct error *err = NULL;
	if (topology_load(root, &t, &err) < 0)
		fail_msg("%s: %s", name, err->msg);
	assert_non_null(t);
	return t;
}

/* The sibling set of every CPU of t, "0-1 0-1 2-3 2-3". */
static char *siblings_of_all(const struct topology *t)
{
	char *s = xstrdup("");
	for (unsigned i = 0; i < t->n_cpus; i++) {
		const struct topology_core *c = topology_cpu_core(t, t->cpus[i].id);
		assert_non_null(c);
		_cleanup_free_ char *l = cpulist_format(&c->threads);
		char *n = xasprintf("%s%s%s", s, i ? " " : "", l);
		free(s);
		s = n;
	}
	return s;
}

/* --- parsers -------------------------------------------------------------------- */

static void test_parse_id(void **state)
{
	(void)state;
	struct { const char *in; int want; } good[] = {
		{ "0", 0 }, { "0\n", 0 }, { "7\n", 7 }, { "12", 12 }, { "-1\n", -1 },
		{ "2147483647", 2147483647 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct error *err = NULL;
		int v = 12345;
		assert_int_equal(topology_parse_id(good[i].in, &v, &err), 0);
		assert_null(err);
		assert_int_equal(v, good[i].want);
	}
	const char *bad[] = { "", "\n", "abc", "1x", " 1", "1 ", "1\n\n", "-2", "--1",
			      "+1", "2147483648", "1.0", "0x10",
			      "123456789012345678901234567890123456789" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error *err = NULL;
		int v = 12345;
		assert_int_equal(topology_parse_id(bad[i], &v, &err), -1);
		assert_non_null(err);
		assert_true(err->code == EINVAL || err->code == ERANGE);
		assert_int_equal(v, 12345);
		error_free(&err);
	}
	struct error *err = NULL;
	int v;
	assert_int_equal(topology_parse_id(NULL, &v, &err), -1);
	assert_err(&err, EINVAL, "no text");
}

static void test_parse_meminfo(void **state)
{
	(void)state;
	struct error *err = NULL;
	uint64_t b = 0;

	assert_int_equal(topology_parse_meminfo("Node 0 MemTotal:        8048560 kB\n"
						"Node 0 MemFree:         5204108 kB\n", 0, &b, &err), 0);
	assert_int_equal(b, 8048560 * KB);
	assert_int_equal(topology_parse_meminfo("Node 12 MemFree: 1 kB\n"
						"Node 12 MemTotal: 3 kB", 12, &b, &err), 0);
	assert_int_equal(b, 3 * KB);
	assert_int_equal(topology_parse_meminfo("Node 2 MemTotal:       0 kB\n", 2, &b, &err), 0);
	assert_int_equal(b, 0);
	/* proc/meminfo */
	assert_int_equal(topology_parse_meminfo("MemTotal:        8048560 kB\nMemFree: 1 kB\n",
						-1, &b, &err), 0);
	assert_int_equal(b, 8048560 * KB);
	assert_int_equal(topology_parse_meminfo("Buffers: 5 kB\nMemTotal:\t42 kB\n", -1, &b, &err),
			 0);
	assert_int_equal(b, 42 * KB);
	assert_null(err);

	struct { const char *in; int node; int code; const char *needle; } bad[] = {
		{ "", 0, EINVAL, "no 'Node N' MemTotal line" },
		{ "Node 0 MemFree: 5 kB\n", 0, EINVAL, "no 'Node N' MemTotal line" },
		{ "Node 1 MemTotal: 5 kB\n", 0, EINVAL, "about node 1, expected node 0" },
		{ "Node 0 MemTotal: kB\n", 0, EINVAL, "expected a number" },
		{ "Node 0 MemTotal: 5\n", 0, EINVAL, "in kB" },
		{ "Node 0 MemTotal: 5 MB\n", 0, EINVAL, "in kB" },
		{ "Node 0 MemTotal: 5 kB junk\n", 0, EINVAL, "in kB" },
		{ "Node 0 MemTotal: -5 kB\n", 0, EINVAL, "expected a number" },
		{ "Node 0 MemTotal: 99999999999999999999 kB\n", 0, ERANGE, "out of range" },
		{ "MemTotal: 5 kB\n", 0, EINVAL, "no 'Node N' MemTotal line" },
		{ "Node 0 MemTotal: 5 kB\n", -1, EINVAL, "no MemTotal line" },
		{ "MemTotal 5 kB\n", -1, EINVAL, "no MemTotal line" },
		{ "MemTotal: five kB\n", -1, EINVAL, "expected a number" },
		{ " MemTotal: 5 kB\n", -1, EINVAL, "no MemTotal line" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		b = 777;
		assert_int_equal(topology_parse_meminfo(bad[i].in, bad[i].node, &b, &err), -1);
		assert_int_equal(b, 777);
		assert_err(&err, bad[i].code, bad[i].needle);
	}
	assert_int_equal(topology_parse_meminfo(NULL, 0, &b, &err), -1);
	assert_err(&err, EINVAL, "no text");
}

/* --- the five fixture trees ------------------------------------------------------- */

static void test_fixture_1s2c_smt2(void **state)
{
	(void)state;
	_cleanup_(topology_freep) struct topology *t = load_fixture("1s2c-smt2");
	assert_int_equal(t->n_cpus, 4);
	assert_cpuset(&t->online, "0-3");
	assert_int_equal(t->n_cores, 2);
	assert_int_equal(t->threads_per_core, 2);
	assert_int_equal(t->n_packages, 1);
	assert_false(t->numa);
	assert_int_equal(t->n_nodes, 1);
	assert_int_equal(t->nodes[0].id, 0);
	assert_cpuset(&t->nodes[0].cpus, "0-3");
	assert_int_equal(t->nodes[0].n_cores, 2);
	assert_int_equal(t->nodes[0].mem_total_bytes, 8048560 * KB);
	assert_int_equal(t->mem_total_bytes, 8048560 * KB);
	_cleanup_free_ char *sib = siblings_of_all(t);
	assert_string_equal(sib, "0-1 0-1 2-3 2-3");
	assert_int_equal(t->cores[1].first_cpu, 2);
	assert_int_equal(t->cores[1].core_id, 1);
	assert_int_equal(topology_cpu(t, 3)->core, 1);
	assert_int_equal(topology_cpu(t, 3)->node, 0);
	_cleanup_free_ char *d = topology_describe(t);
	assert_string_equal(d, "4 CPUs, 2 cores (SMT2), 1 package, 1 NUMA node (no NUMA), 8048560K");
}

static void test_fixture_2s2n(void **state)
{
	(void)state;
	_cleanup_(topology_freep) struct topology *t = load_fixture("2s2n-8c-smt2");
	assert_int_equal(t->n_cpus, 32);
	assert_int_equal(t->n_cores, 16);
	assert_int_equal(t->threads_per_core, 2);
	assert_int_equal(t->n_packages, 2);
	assert_true(t->numa);
	assert_int_equal(t->n_nodes, 2);
	assert_cpuset(&t->nodes[0].cpus, "0-7,16-23");
	assert_cpuset(&t->nodes[1].cpus, "8-15,24-31");
	assert_int_equal(t->nodes[0].n_cpus, 16);
	assert_int_equal(t->nodes[0].n_cores, 8);
	assert_int_equal(t->nodes[1].n_cores, 8);
	assert_int_equal(t->nodes[0].mem_total_bytes, 65843068 * KB);
	assert_int_equal(t->nodes[1].mem_total_bytes, 66058916 * KB);
	assert_int_equal(t->mem_total_bytes, (65843068ULL + 66058916ULL) * KB);
	for (unsigned c = 0; c < 16; c++) {
		const struct topology_core *core = topology_cpu_core(t, c);
		char want[32];
		snprintf(want, sizeof(want), "%u,%u", c, c + 16);
		assert_cpuset(&core->threads, want);
		assert_ptr_equal(core, topology_cpu_core(t, c + 16));
		assert_int_equal(core->package_id, (int)(c / 8));
		assert_int_equal(core->node, c / 8);
		assert_int_equal(core->n_threads, 2);
		assert_int_equal(core->first_cpu, c);
	}
	/* core_id repeats across packages and has gaps: cores are told apart
	 * by their siblings, not by core_id */
	assert_int_equal(topology_cpu(t, 5)->core_id, 8);
	assert_int_equal(topology_cpu(t, 13)->core_id, 8);
	assert_int_not_equal(topology_cpu(t, 5)->core, topology_cpu(t, 13)->core);
	assert_int_equal(topology_cpu(t, 29)->package_id, 1);
	assert_int_equal(topology_cpu(t, 29)->node, 1);
}

static void test_fixture_64_nosmt(void **state)
{
	(void)state;
	/* this tree has core_cpus_list only */
	_cleanup_(topology_freep) struct topology *t = load_fixture("64c-nosmt");
	assert_int_equal(t->n_cpus, 64);
	assert_int_equal(t->n_cores, 64);
	assert_int_equal(t->threads_per_core, 1);
	assert_int_equal(t->n_packages, 1);
	assert_int_equal(t->n_nodes, 1);
	assert_true(t->numa);
	assert_int_equal(t->nodes[0].n_cores, 64);
	assert_int_equal(t->nodes[0].mem_total_bytes, 263921828 * KB);
	for (unsigned c = 0; c < 64; c++) {
		const struct topology_core *core = topology_cpu_core(t, c);
		assert_int_equal(core->n_threads, 1);
		assert_true(cpuset_isset(&core->threads, c));
		assert_int_equal(topology_cpu(t, c)->core_id, (int)c);
	}
	assert_null(topology_cpu(t, 64));
	_cleanup_free_ char *d = topology_describe(t);
	assert_string_equal(d, "64 CPUs, 64 cores, 1 package, 1 NUMA node, 263921828K");
}

static void test_fixture_offline(void **state)
{
	(void)state;
	/* cpu3 carries a corrupt core_id: loading succeeds only if offline CPUs
	 * are never read */
	_cleanup_(topology_freep) struct topology *t = load_fixture("offline");
	assert_int_equal(t->n_cpus, 5);
	assert_cpuset(&t->online, "0-2,4-5");
	assert_int_equal(t->n_cores, 3);
	assert_int_equal(t->threads_per_core, 2);
	_cleanup_free_ char *sib = siblings_of_all(t);
	assert_string_equal(sib, "0-1 0-1 2 4-5 4-5");
	assert_int_equal(topology_cpu_core(t, 2)->n_threads, 1);
	assert_null(topology_cpu(t, 3));
	assert_null(topology_cpu(t, 6));
	assert_null(topology_cpu(t, 7));
	assert_null(topology_cpu_core(t, 3));
	assert_cpuset(&t->nodes[0].cpus, "0-2,4-5");
	assert_int_equal(t->nodes[0].n_cores, 3);
}

static void test_fixture_uneven(void **state)
{
	(void)state;
	_cleanup_(topology_freep) struct topology *t = load_fixture("uneven");
	assert_int_equal(t->n_cpus, 8);
	assert_int_equal(t->n_cores, 4);
	assert_int_equal(t->n_packages, 2);
	assert_int_equal(t->n_nodes, 3);
	assert_cpuset(&t->nodes[0].cpus, "0-5");
	assert_cpuset(&t->nodes[1].cpus, "6-7");
	assert_cpuset(&t->nodes[2].cpus, "");
	assert_int_equal(t->nodes[0].n_cores, 3);
	assert_int_equal(t->nodes[1].n_cores, 1);
	assert_int_equal(t->nodes[2].n_cores, 0);
	assert_int_equal(t->nodes[2].n_cpus, 0);
	assert_int_equal(t->nodes[0].mem_total_bytes, 16ULL << 30);
	assert_int_equal(t->nodes[1].mem_total_bytes, 4ULL << 30);
	assert_int_equal(t->nodes[2].mem_total_bytes, 8ULL << 30);
	assert_int_equal(t->mem_total_bytes, 28ULL << 30);
	_cleanup_free_ char *sib = siblings_of_all(t);
	assert_string_equal(sib, "0-1 0-1 2-3 2-3 4-5 4-5 6-7 6-7");
	assert_int_equal(topology_cpu(t, 7)->node, 1);
	assert_non_null(topology_node(t, 2));
	assert_null(topology_node(t, 3));
	_cleanup_free_ char *d = topology_describe(t);
	assert_string_equal(d, "8 CPUs, 4 cores (SMT2), 2 packages, 3 NUMA nodes, 28G");
}

/* --- malformed trees in a temp dir ------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void put(const char *root, const char *rel, const char *text)
{
	_cleanup_free_ char *p = path_join(root, rel, NULL);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void drop(const char *root, const char *rel)
{
	_cleanup_free_ char *p = path_join(root, rel, NULL);
	assert_int_equal(remove(p), 0);
}

#define CPU "sys/devices/system/cpu/"
#define NODE "sys/devices/system/node/"

/* A valid tree: 2 cores SMT2 (0-1, 2-3), node 0 with 0-1, node 1 with 2-3. */
static char *base_tree(void)
{
	char *d = xstrdup("/tmp/test_topology.XXXXXX");
	assert_non_null(mkdtemp(d));
	put(d, CPU "online", "0-3\n");
	for (unsigned c = 0; c < 4; c++) {
		char rel[128], sib[16], id[8];
		snprintf(sib, sizeof(sib), "%u-%u\n", c / 2 * 2, c / 2 * 2 + 1);
		snprintf(id, sizeof(id), "%u\n", c / 2);
		snprintf(rel, sizeof(rel), CPU "cpu%u/topology/core_id", c);
		put(d, rel, id);
		snprintf(rel, sizeof(rel), CPU "cpu%u/topology/physical_package_id", c);
		put(d, rel, "0\n");
		snprintf(rel, sizeof(rel), CPU "cpu%u/topology/thread_siblings_list", c);
		put(d, rel, sib);
	}
	put(d, NODE "online", "0-1\n");
	put(d, NODE "node0/cpulist", "0-1\n");
	put(d, NODE "node0/meminfo", "Node 0 MemTotal: 1024 kB\n");
	put(d, NODE "node1/cpulist", "2-3\n");
	put(d, NODE "node1/meminfo", "Node 1 MemTotal: 2048 kB\n");
	return d;
}

static void rm_tree(char *d)
{
	nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

/* Load root, expect failure with code and every needle in the message. */
static void expect_load_error(const char *root, int code, const char *n1, const char *n2)
{
	struct topology *t = NULL;
	struct error *err = NULL;
	assert_int_equal(topology_load(root, &t, &err), -1);
	assert_null(t);
	assert_non_null(err);
	if (!strstr(err->msg, n1) || (n2 && !strstr(err->msg, n2)))
		fail_msg("message '%s' lacks '%s' / '%s'", err->msg, n1, n2 ? n2 : "");
	assert_int_equal(err->code, code);
	error_free(&err);
}

static void test_base_tree_loads(void **state)
{
	(void)state;
	char *d = base_tree();
	struct topology *t = NULL;
	struct error *err = NULL;
	assert_int_equal(topology_load(d, &t, &err), 0);
	assert_int_equal(t->n_nodes, 2);
	assert_int_equal(t->n_cores, 2);
	assert_int_equal(t->mem_total_bytes, 3072 * KB);
	topology_free(t);

	/* core_cpus_list is read when thread_siblings_list is missing */
	drop(d, CPU "cpu1/topology/thread_siblings_list");
	put(d, CPU "cpu1/topology/core_cpus_list", "0-1\n");
	assert_int_equal(topology_load(d, &t, &err), 0);
	assert_cpuset(&topology_cpu_core(t, 1)->threads, "0-1");
	topology_free(t);
	/* ... and is what a wrong value is blamed on */
	put(d, CPU "cpu1/topology/core_cpus_list", "0-1,\n");
	expect_load_error(d, EINVAL, "cpu1/topology/core_cpus_list", "trailing ','");
	/* with neither, the error names the usual file */
	drop(d, CPU "cpu1/topology/core_cpus_list");
	expect_load_error(d, ENOENT, "cannot read", "cpu1/topology/thread_siblings_list");
	rm_tree(d);
}

struct bad_tree {
	const char *rel;     /* file to write (NULL: none) */
	const char *text;    /* its text, NULL: remove the file */
	int code;
	const char *n1, *n2; /* needles in the message */
};

static void test_malformed_trees(void **state)
{
	(void)state;
	static const struct bad_tree cases[] = {
		{ CPU "online", NULL, ENOENT, "cannot read", "cpu/online: No such file" },
		{ CPU "online", "", EINVAL, "cpu/online: no online CPUs", NULL },
		{ CPU "online", "0-3x\n", EINVAL, "cpu/online: invalid CPU list '0-3x'", NULL },
		{ CPU "online", "3-0\n", EINVAL, "cpu/online", "reversed" },
		{ CPU "online", "0-8192\n", ERANGE, "cpu/online", "out of range" },
		{ CPU "online", "0-4\n", ENOENT, "cpu4/topology/core_id", NULL },
		{ CPU "cpu1/topology/core_id", "abc\n", EINVAL, "cpu1/topology/core_id: invalid id",
		  "'abc' is not a whole number" },
		{ CPU "cpu1/topology/core_id", "", EINVAL, "cpu1/topology/core_id", NULL },
		{ CPU "cpu2/topology/physical_package_id", "-7\n", ERANGE,
		  "cpu2/topology/physical_package_id", "out of range" },
		{ CPU "cpu2/topology/physical_package_id", NULL, ENOENT,
		  "cpu2/topology/physical_package_id", "No such file" },
		{ CPU "cpu3/topology/thread_siblings_list", "2-\n", EINVAL,
		  "cpu3/topology/thread_siblings_list: invalid CPU list", NULL },
		{ CPU "cpu3/topology/thread_siblings_list", "2,3 \n x", EINVAL,
		  "cpu3/topology/thread_siblings_list", NULL },
		/* consistency across files */
		{ CPU "cpu3/topology/thread_siblings_list", "3\n", EINVAL,
		  "CPUs 2 and 3 disagree on their thread siblings (2-3 and 3)", "topology of " },
		{ CPU "cpu3/topology/thread_siblings_list", "2\n", EINVAL,
		  "CPU 3: its thread siblings '2' do not include itself", NULL },
		{ CPU "cpu3/topology/physical_package_id", "1\n", EINVAL,
		  "CPUs 2 and 3 are thread siblings in different packages (0 and 1)", NULL },
		{ NODE "online", NULL, ENOENT, "node/online", NULL },
		{ NODE "online", "\n", EINVAL, "node/online: no online NUMA nodes", NULL },
		{ NODE "online", "0-2\n", ENOENT, "node2/cpulist", NULL },
		{ NODE "node1/cpulist", "x\n", EINVAL, "node1/cpulist: invalid CPU list", NULL },
		{ NODE "node1/cpulist", "1-3\n", EINVAL, "CPU 1 is in NUMA nodes 0 and 1", NULL },
		{ NODE "node1/cpulist", "2\n", EINVAL, "CPU 3 is online but in no NUMA node", NULL },
		{ NODE "node1/cpulist", "3\n", EINVAL, "CPU 2 is online but in no NUMA node", NULL },
		{ NODE "node0/cpulist", "0\n", EINVAL, "CPU 1 is online but in no NUMA node", NULL },
		{ NODE "node1/meminfo", NULL, ENOENT, "node1/meminfo", NULL },
		{ NODE "node1/meminfo", "Node 0 MemTotal: 5 kB\n", EINVAL,
		  "node1/meminfo: meminfo is about node 0, expected node 1", NULL },
		{ NODE "node0/meminfo", "Node 0 MemTotal: 5 MB\n", EINVAL,
		  "node0/meminfo: MemTotal: expected a value in kB", NULL },
		{ NODE "node0/meminfo", "Node 0 MemFree: 5 kB\n", EINVAL,
		  "node0/meminfo: meminfo has no 'Node N' MemTotal line", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *d = base_tree();
		if (cases[i].text)
			put(d, cases[i].rel, cases[i].text);
		else
			drop(d, cases[i].rel);
		expect_load_error(d, cases[i].code, cases[i].n1, cases[i].n2);
		/* every message starts with the path under the root, or says
		 * which topology it is about */
		struct topology *t = NULL;
		struct error *err = NULL;
		assert_int_equal(topology_load(d, &t, &err), -1);
		assert_true(strncmp(err->msg, d, strlen(d)) == 0 ||
			    strstr(err->msg, "cannot read ") == err->msg ||
			    strstr(err->msg, "topology of ") == err->msg);
		error_free(&err);
		rm_tree(d);
	}
}

static void test_siblings_across_nodes(void **state)
{
	(void)state;
	char *d = base_tree();
	put(d, NODE "node0/cpulist", "0-2\n");
	put(d, NODE "node1/cpulist", "3\n");
	expect_load_error(d, EINVAL, "CPUs 2 and 3 are thread siblings on different NUMA nodes "
			  "(0 and 1)", NULL);
	rm_tree(d);
}

static void test_odd_files(void **state)
{
	(void)state;
	char *d = base_tree();
	/* a NUL byte inside a file */
	_cleanup_free_ char *p = path_join(d, CPU "cpu0/topology/core_id", NULL);
	FILE *f = fopen(p, "w");
	fwrite("0\0junk\n", 1, 7, f);
	fclose(f);
	expect_load_error(d, EINVAL, "cpu0/topology/core_id: contains a NUL byte", NULL);
	/* a huge file */
	f = fopen(p, "w");
	for (int i = 0; i < TOPOLOGY_FILE_MAX / 8 + 10; i++)
		fputs("00000000", f);
	fclose(f);
	expect_load_error(d, EFBIG, "cpu0/topology/core_id: larger than", NULL);
	put(d, CPU "cpu0/topology/core_id", "0\n");
	/* a directory where a file should be */
	drop(d, NODE "node1/meminfo");
	_cleanup_free_ char *m = path_join(d, NODE "node1/meminfo", NULL);
	assert_int_equal(mkdir(m, 0755), 0);
	expect_load_error(d, EISDIR, "cannot read", "node1/meminfo");
	rm_tree(d);
}

static void test_no_numa(void **state)
{
	(void)state;
	char *d = base_tree();
	_cleanup_free_ char *nd = path_join(d, "sys/devices/system/node", NULL);
	nftw(nd, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* no node directory: memory comes from proc/meminfo, which is needed */
	expect_load_error(d, ENOENT, "proc/meminfo", NULL);
	put(d, "proc/meminfo", "MemFree: 1 kB\n");
	expect_load_error(d, EINVAL, "proc/meminfo: meminfo has no MemTotal line", NULL);
	put(d, "proc/meminfo", "MemTotal: 4096 kB\nMemFree: 1 kB\n");
	struct topology *t = NULL;
	struct error *err = NULL;
	assert_int_equal(topology_load(d, &t, &err), 0);
	assert_false(t->numa);
	assert_int_equal(t->n_nodes, 1);
	assert_cpuset(&t->nodes[0].cpus, "0-3");
	assert_int_equal(t->mem_total_bytes, 4096 * KB);
	topology_free(t);
	rm_tree(d);
}

static void test_real_host(void **state)
{
	(void)state;
	/* the machine the tests run on: whatever it is, it must load (root
	 * "/" and NULL are the same) and agree with sysconf */
	if (access("/sys/devices/system/cpu/online", R_OK) != 0)
		skip();
	struct topology *t = NULL, *t2 = NULL;
	struct error *err = NULL;
	if (topology_load(NULL, &t, &err) < 0)
		fail_msg("%s", err->msg);
	assert_int_equal(topology_load("/", &t2, &err), 0);
	assert_true(cpuset_equal(&t->online, &t2->online));
	assert_int_equal(t->n_cpus, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	assert_true(t->n_cores >= 1 && t->n_cores <= t->n_cpus);
	assert_true(t->mem_total_bytes > 0);
	topology_free(t);
	topology_free(t2);
}

/* --- the pure assembler ------------------------------------------------------------ */

static void test_assemble_errors(void **state)
{
	(void)state;
	struct cpuset online = cs("0-1");
	struct topology_cpu_raw cpus[3] = {
		{ .cpu = 0, .core_id = 0, .package_id = 0, .siblings = cs("0") },
		{ .cpu = 1, .core_id = 1, .package_id = 0, .siblings = cs("1") },
		{ .cpu = 1, .core_id = 1, .package_id = 0, .siblings = cs("1") },
	};
	struct topology_node_raw nodes[2] = {
		{ .id = 0, .cpus = cs("0-1"), .mem_total_bytes = 1 },
		{ .id = 0, .cpus = cs(""), .mem_total_bytes = 1 },
	};
	struct topology *t = NULL;
	struct error *err = NULL;
	struct cpuset none = cs("");

	assert_int_equal(topology_assemble(&online, cpus, 2, nodes, 1, true, &t, &err), 0);
	assert_int_equal(t->n_cores, 2);
	assert_int_equal(t->threads_per_core, 1);
	topology_free(t);
	t = NULL;

	assert_int_equal(topology_assemble(&none, cpus, 0, nodes, 1, true, &t, &err), -1);
	assert_err(&err, EINVAL, "no online CPUs");
	assert_int_equal(topology_assemble(&online, cpus, 2, nodes, 0, true, &t, &err), -1);
	assert_err(&err, EINVAL, "no NUMA nodes");
	assert_int_equal(topology_assemble(&online, cpus, 3, nodes, 1, true, &t, &err), -1);
	assert_err(&err, EINVAL, "CPU 1 has two topology records");
	assert_int_equal(topology_assemble(&online, cpus, 1, nodes, 1, true, &t, &err), -1);
	assert_err(&err, EINVAL, "CPU 1 is online but has no topology record");
	struct cpuset only0 = cs("0");
	assert_int_equal(topology_assemble(&only0, cpus, 2, nodes, 1, true, &t, &err), -1);
	assert_err(&err, EINVAL, "CPU 1 has a topology record but is not online");
	assert_int_equal(topology_assemble(&online, cpus, 2, nodes, 2, true, &t, &err), -1);
	assert_err(&err, EINVAL, "NUMA node 0 is listed twice");
	assert_null(t);

	/* offline CPUs in sibling and node lists are dropped, not errors */
	cpus[0].siblings = cs("0,5");
	nodes[0].cpus = cs("0-7");
	assert_int_equal(topology_assemble(&online, cpus, 2, nodes, 1, true, &t, &err), 0);
	assert_cpuset(&t->cores[0].threads, "0");
	assert_cpuset(&t->nodes[0].cpus, "0-1");
	topology_free(t);
	t = NULL;

	/* package -1 (unknown) is one package */
	cpus[0].package_id = -1;
	cpus[1].package_id = -1;
	assert_int_equal(topology_assemble(&online, cpus, 2, nodes, 1, true, &t, &err), 0);
	assert_int_equal(t->n_packages, 1);
	topology_free(t);
}

static void test_from_spec(void **state)
{
	(void)state;
	struct topology *t = NULL;
	struct error *err = NULL;
	struct topology_spec s = { .packages = 2, .nodes_per_package = 1, .cores_per_node = 4,
				   .threads_per_core = 2, .siblings_adjacent = true,
				   .mem_per_node_bytes = 1ULL << 30 };
	assert_int_equal(topology_from_spec(&s, &t, &err), 0);
	assert_int_equal(t->n_cpus, 16);
	assert_int_equal(t->n_cores, 8);
	assert_int_equal(t->n_packages, 2);
	assert_cpuset(&t->nodes[0].cpus, "0-7");
	assert_cpuset(&t->nodes[1].cpus, "8-15");
	assert_cpuset(&topology_cpu_core(t, 13)->threads, "12-13");
	assert_int_equal(topology_cpu(t, 13)->core_id, 2);
	assert_int_equal(t->mem_total_bytes, 2ULL << 30);
	topology_free(t);

	s.siblings_adjacent = false;
	s.nodes_per_package = 2;
	s.packages = 1;
	s.cores_per_node = 3;
	assert_int_equal(topology_from_spec(&s, &t, &err), 0);
	assert_int_equal(t->n_cpus, 12);
	assert_int_equal(t->n_packages, 1);
	assert_cpuset(&t->nodes[0].cpus, "0-2,6-8");
	assert_cpuset(&t->nodes[1].cpus, "3-5,9-11");
	assert_cpuset(&topology_cpu_core(t, 4)->threads, "4,10");
	topology_free(t);

	s.threads_per_core = 0;
	assert_int_equal(topology_from_spec(&s, &t, &err), -1);
	assert_err(&err, EINVAL, "at least 1");
	s.threads_per_core = 8;
	s.cores_per_node = 1024;
	assert_int_equal(topology_from_spec(&s, &t, &err), -1);
	assert_err(&err, ERANGE, "16384 CPUs");
}

/* --- pools ------------------------------------------------------------------------------ */

static void test_pools(void **state)
{
	(void)state;
	struct topology_spec s = { .packages = 2, .nodes_per_package = 1, .cores_per_node = 4,
				   .threads_per_core = 2, .siblings_adjacent = true };
	_cleanup_(topology_freep) struct topology *t = NULL;
	struct error *err = NULL;
	assert_int_equal(topology_from_spec(&s, &t, &err), 0);

	struct pools p;
	struct cpuset hk = cs("0-1"), ded = cs("12-15");
	assert_int_equal(topology_pools(t, &hk, &ded, &p, &err), 0);
	assert_cpuset(&p.housekeeping, "0-1");
	assert_cpuset(&p.dedicated, "12-15");
	assert_cpuset(&p.shared, "2-11");

	struct cpuset none = cs("");
	assert_int_equal(topology_pools(t, &none, &none, &p, &err), 0);
	assert_cpuset(&p.shared, "0-15");
	assert_cpuset(&p.dedicated, "");

	/* everything dedicated: an empty shared pool is allowed */
	struct cpuset rest = cs("2-15");
	assert_int_equal(topology_pools(t, &hk, &rest, &p, &err), 0);
	assert_cpuset(&p.shared, "");

	struct pools untouched;
	memset(&untouched, 0xab, sizeof(untouched));
	p = untouched;
	struct cpuset d17 = cs("12-15,17");
	assert_int_equal(topology_pools(t, &hk, &d17, &p, &err), -1);
	assert_err(&err, EINVAL, "host.dedicated_cpus: CPU 17 is offline (online: 0-15)");
	assert_memory_equal(&p, &untouched, sizeof(p));
	struct cpuset h2 = cs("0-1,16-18,100");
	assert_int_equal(topology_pools(t, &h2, &ded, &p, &err), -1);
	assert_err(&err, EINVAL, "host.housekeeping_cpus: CPUs 16-18,100 are offline");
	struct cpuset ov = cs("1-2,12");
	assert_int_equal(topology_pools(t, &ov, &ded, &p, &err), -1);
	assert_err(&err, EINVAL,
		   "host.housekeeping_cpus and host.dedicated_cpus overlap on CPU 12");
	struct cpuset ov2 = cs("0-13");
	assert_int_equal(topology_pools(t, &ov2, &ded, &p, &err), -1);
	assert_err(&err, EINVAL, "overlap on CPUs 12-13");
	assert_memory_equal(&p, &untouched, sizeof(p));

	/* offline CPUs of a real tree */
	_cleanup_(topology_freep) struct topology *off = load_fixture("offline");
	struct cpuset d3 = cs("2-3");
	assert_int_equal(topology_pools(off, &none, &d3, &p, &err), -1);
	assert_err(&err, EINVAL, "host.dedicated_cpus: CPU 3 is offline (online: 0-2,4-5)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test(test_parse_meminfo),
		cmocka_unit_test(test_fixture_1s2c_smt2),
		cmocka_unit_test(test_fixture_2s2n),
		cmocka_unit_test(test_fixture_64_nosmt),
		cmocka_unit_test(test_fixture_offline),
		cmocka_unit_test(test_fixture_uneven),
		cmocka_unit_test(test_base_tree_loads),
		cmocka_unit_test(test_malformed_trees),
		cmocka_unit_test(test_siblings_across_nodes),
		cmocka_unit_test(test_odd_files),
		cmocka_unit_test(test_no_numa),
		cmocka_unit_test(test_real_host),
		cmocka_unit_test(test_assemble_errors),
		cmocka_unit_test(test_from_spec),
		cmocka_unit_test(test_pools),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
