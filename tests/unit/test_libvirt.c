/* test_libvirt.c - the libvirt discovery backend: its pure parsers (tenant
 * metadata, QMP query-cpus-fast replies, /proc status Tgid) on good and
 * hostile buffers; listing, metadata, unmanaged domains, skipped names,
 * UUIDs and caching against libvirt's test driver (custom node XML under
 * tests/fixtures/libvirt/); domain events through the eventfd with
 * test:///default; the unreachable-libvirtd path (stale, back-off); and the
 * worker thread: snapshots, events, a hung libvirtd simulated by a call hook
 * that blocks (unreachable after the bound, connected after), a stop that
 * leaves a stuck thread behind.
 * Run from the repository root, or from anywhere with VCPUD_SRC set. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "vcpud/error.h"
#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/path.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

/* --- helpers ---------------------------------------------------------------- */

/* test:///ABS/PATH of a fixture node file; caller frees. */
static char *fixture_uri(const char *name)
{
	const char *root = getenv("VCPUD_SRC");
	_cleanup_free_ char *rel = xasprintf("%s%stests/fixtures/libvirt/%s",
					     root && *root ? root : "", root && *root ? "/" : "",
					     name);
	char abs[PATH_MAX];
	if (!realpath(rel, abs))
		fail_msg("fixture %s not found (run from the repository root or set VCPUD_SRC)",
			 rel);
	return xasprintf("test://%s", abs);
}

static const struct libvirt_domain *find_dom(const struct libvirt_domain *d, size_t n,
					     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return &d[i];
	return NULL;
}

/* Wait up to timeout_ms for the backend's fd; true when it became readable. */
static bool wait_fd(struct libvirt_backend *b, int timeout_ms)
{
	struct pollfd p = { .fd = libvirt_backend_fd(b), .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Scan, expecting a fresh list. */
static void scan_ok(struct libvirt_backend *b, struct libvirt_domain **d, size_t *n)
{
	_cleanup_error_ struct error *err = NULL;
	int rc = libvirt_backend_scan(b, d, n, &err);
	if (rc != 0)
		fail_msg("scan returned %d: %s", rc, err ? err->msg : "(no error)");
}

/* --- libvirt_tenant_parse ---------------------------------------------------- */

#define UNTOUCHED "untouched"

static void test_tenant_parse_good(void **state)
{
	(void)state;
	char sixty_four[NAME_MAX_LEN + 1];
	memset(sixty_four, 'a', NAME_MAX_LEN);
	sixty_four[NAME_MAX_LEN] = '\0';
	_cleanup_free_ char *long_ok = xasprintf("<tenant>%s</tenant>", sixty_four);
	const struct {
		const char *xml, *want;
	} good[] = {
		{ "<tenant>acme</tenant>", "acme" },
		/* as libvirt returns it: no prefix, no namespace declaration */
		{ "<tenant>acme</tenant>\n", "acme" },
		/* as written in the domain XML */
		{ "<vcpud:tenant xmlns:vcpud=\"urn:vcpud:1\">acme</vcpud:tenant>", "acme" },
		{ "<vcpud:tenant xmlns:vcpud='urn:vcpud:1' >globex</vcpud:tenant >", "globex" },
		{ "<tenant xmlns=\"urn:vcpud:1\">a-b_c.d9</tenant>", "a-b_c.d9" },
		{ "  \n<tenant>\n        acme\n      </tenant>\n", "acme" },
		{ "<tenant\n  a=\"1\"\n  b = 'two'>x</tenant>", "x" },
		{ "<tenant a=\"x>y\">quoted-gt</tenant>", "quoted-gt" },
		{ "<tenant>...</tenant>", "..." },
		{ "<tenant>.a</tenant>", ".a" },
		{ long_ok, sixty_four },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char t[NAME_MAX_LEN + 1] = UNTOUCHED;
		_cleanup_error_ struct error *err = NULL;
		if (libvirt_tenant_parse(good[i].xml, t, &err) != 0)
			fail_msg("'%s': %s", good[i].xml, err ? err->msg : "failed");
		if (strcmp(t, good[i].want) != 0)
			fail_msg("'%s': tenant '%s', want '%s'", good[i].xml, t, good[i].want);
	}
}

static void test_tenant_parse_bad(void **state)
{
	(void)state;
	char too_long[NAME_MAX_LEN + 2];
	memset(too_long, 'a', NAME_MAX_LEN + 1);
	too_long[NAME_MAX_LEN + 1] = '\0';
	_cleanup_free_ char *long_bad = xasprintf("<tenant>%s</tenant>", too_long);
	const char *bad[] = {
		"",
		"   ",
		"acme",
		"<tenant/>",
		"<tenant />",
		"<tenant></tenant>",
		"<tenant>   \n </tenant>",
		"<tenant>\n  <name>acme</name>\n</tenant>",
		"<tenant>ac me</tenant>",
		"<tenant>.</tenant>",
		"<tenant>..</tenant>",
		"<tenant>../etc</tenant>",
		"<tenant>a/b</tenant>",
		"<tenant>a&amp;b</tenant>",
		"<tenant>&#97;</tenant>",
		"<tenant>a\x01" "b</tenant>",
		"<tenant>acm\xc3\xa9</tenant>",
		long_bad,
		"<owner>acme</owner>",
		"<tenantx>acme</tenantx>",
		"<vcpud:owner xmlns:vcpud=\"urn:vcpud:1\">acme</vcpud:owner>",
		"<tenant>acme</tenantx>",
		"<tenant>acme</owner>",
		"<x:tenant>acme</y:tenant>",
		"<tenant>acme</tenant>junk",
		"<tenant>acme</tenant><tenant>b</tenant>",
		"<tenant>acme",
		"<tenant>acme</",
		"<tenant>acme</tenant",
		"<tenant a=b>acme</tenant>",
		"<tenant a>acme</tenant>",
		"<tenant a=\"x>acme</tenant>",
		"<tenant a=\"<\">acme</tenant>",
		"<tenant\"x\">acme</tenant>",
		"<1tenant>acme</1tenant>",
		"< tenant>acme</tenant>",
		"<!-- c --><tenant>acme</tenant>",
		"<?xml version=\"1.0\"?><tenant>acme</tenant>",
		"<tenant>acme<!-- c --></tenant>",
		"<",
		"<tenant",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char t[NAME_MAX_LEN + 1] = UNTOUCHED;
		_cleanup_error_ struct error *err = NULL;
		if (libvirt_tenant_parse(bad[i], t, &err) != -1)
			fail_msg("'%s' accepted as tenant '%s'", bad[i], t);
		if (error_code(err) != EINVAL || !err->msg || !*err->msg)
			fail_msg("'%s': error code %d, want EINVAL with a message", bad[i],
				 error_code(err));
		if (strcmp(t, UNTOUCHED) != 0)
			fail_msg("'%s': output changed to '%s' on failure", bad[i], t);
	}
	/* NULL and a NULL err do not crash */
	char t[NAME_MAX_LEN + 1];
	assert_int_equal(libvirt_tenant_parse(NULL, t, NULL), -1);
	assert_int_equal(libvirt_tenant_parse("<tenant>../x</tenant>", t, NULL), -1);
}

static void test_tenant_parse_messages(void **state)
{
	(void)state;
	char t[NAME_MAX_LEN + 1];
	_cleanup_error_ struct error *e1 = NULL, *e2 = NULL, *e3 = NULL;
	assert_int_equal(libvirt_tenant_parse("<tenant>../etc</tenant>", t, &e1), -1);
	assert_non_null(strstr(e1->msg, "'../etc' is not a valid tenant name"));
	assert_int_equal(libvirt_tenant_parse("<tenant><n>a</n></tenant>", t, &e2), -1);
	assert_non_null(strstr(e2->msg, "child elements"));
	/* control characters never reach a log line */
	assert_int_equal(libvirt_tenant_parse("<tenant>a\x1b[2Jb</tenant>", t, &e3), -1);
	assert_null(strchr(e3->msg, '\x1b'));
}

/* --- libvirt_qmp_cpus_parse -------------------------------------------------- */

/* A reply QEMU 7.2 gave through libvirt on this kind of host. */
static const char qmp_real[] =
	"{\"return\":[{\"thread-id\":21484,\"props\":{\"core-id\":0,\"thread-id\":0,"
	"\"socket-id\":0},\"qom-path\":\"/machine/unattached/device[0]\",\"cpu-index\":0,"
	"\"target\":\"x86_64\"},{\"thread-id\":21485,\"props\":{\"core-id\":0,\"thread-id\":0,"
	"\"socket-id\":1},\"qom-path\":\"/machine/unattached/device[2]\",\"cpu-index\":1,"
	"\"target\":\"x86_64\"},{\"thread-id\":21620,\"props\":{\"core-id\":0,\"thread-id\":0,"
	"\"socket-id\":2},\"qom-path\":\"/machine/peripheral/vcpu2\",\"cpu-index\":2,"
	"\"target\":\"x86_64\"}],\"id\":\"libvirt-417\"}";

static void test_qmp_parse_good(void **state)
{
	(void)state;
	struct vm_vcpu *v = NULL;
	size_t n = 0;
	_cleanup_error_ struct error *err = NULL;
	assert_int_equal(libvirt_qmp_cpus_parse(qmp_real, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, 21484);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, 21485);
	assert_int_equal(v[2].index, 2);
	assert_int_equal(v[2].tid, 21620);
	free(v);

	/* out of order: sorted by index; shared thread ids (TCG) are kept */
	v = NULL;
	assert_int_equal(libvirt_qmp_cpus_parse(
				 "{\"return\":[{\"cpu-index\":3,\"thread-id\":7},"
				 "{\"cpu-index\":0,\"thread-id\":7},{\"cpu-index\":1,\"thread-id\":9}]}",
				 &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].index, 0);
	assert_int_equal(v[0].tid, 7);
	assert_int_equal(v[1].index, 1);
	assert_int_equal(v[1].tid, 9);
	assert_int_equal(v[2].index, 3);
	assert_int_equal(v[2].tid, 7);
	free(v);

	/* the bounds */
	v = NULL;
	assert_int_equal(libvirt_qmp_cpus_parse(
				 "{\"return\":[{\"cpu-index\":4095,\"thread-id\":2147483647}]}",
				 &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].index, 4095);
	assert_int_equal(v[0].tid, INT_MAX);
	free(v);
}

static void test_qmp_parse_bad(void **state)
{
	(void)state;
	const struct {
		const char *reply;
		int code;
	} bad[] = {
		{ "", EINVAL },
		{ "not json", EINVAL },
		{ "[]", EINVAL },
		{ "{}", EINVAL },
		{ "{\"return\":{}}", EINVAL },
		{ "{\"return\":[]}", EINVAL },
		{ "{\"return\":[1]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0}]}", EINVAL },
		{ "{\"return\":[{\"thread-id\":5}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":\"0\",\"thread-id\":5}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":\"5\"}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":5.5}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":-1,\"thread-id\":5}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":4096,\"thread-id\":5}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":0}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":-3}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":2147483648}]}", EINVAL },
		{ "{\"return\":[{\"cpu-index\":1,\"thread-id\":5},{\"cpu-index\":1,\"thread-id\":6}]}",
		  EINVAL },
		{ "{\"return\":[{\"cpu-index\":0,\"thread-id\":5}],\"return\":[]}", EINVAL },
		{ "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command query-cpus-fast "
		  "has not been found\"}}", EIO },
		{ "{\"error\":{}}", EIO },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vm_vcpu *v = (struct vm_vcpu *)0x1;
		size_t n = 77;
		_cleanup_error_ struct error *err = NULL;
		if (libvirt_qmp_cpus_parse(bad[i].reply, &v, &n, &err) != -1)
			fail_msg("'%s' accepted", bad[i].reply);
		if (error_code(err) != bad[i].code)
			fail_msg("'%s': code %d, want %d", bad[i].reply, error_code(err),
				 bad[i].code);
		if (v != (struct vm_vcpu *)0x1 || n != 77)
			fail_msg("'%s': outputs changed on failure", bad[i].reply);
	}
	_cleanup_error_ struct error *err = NULL;
	struct vm_vcpu *v;
	size_t n;
	assert_int_equal(libvirt_qmp_cpus_parse("{\"error\":{\"desc\":\"no such thing\"}}", &v,
						&n, &err), -1);
	assert_non_null(strstr(err->msg, "no such thing"));
	assert_int_equal(libvirt_qmp_cpus_parse(NULL, &v, &n, NULL), -1);

	/* more vCPUs than a VM may have */
	char *big = xmalloc(64 * (VM_VCPUS_MAX + 2));
	size_t off = (size_t)sprintf(big, "{\"return\":[");
	for (int i = 0; i <= VM_VCPUS_MAX; i++)
		off += (size_t)sprintf(big + off, "%s{\"cpu-index\":%d,\"thread-id\":%d}",
				       i ? "," : "", i % VM_VCPUS_MAX, 100 + i);
	sprintf(big + off, "]}");
	_cleanup_error_ struct error *e2 = NULL;
	assert_int_equal(libvirt_qmp_cpus_parse(big, &v, &n, &e2), -1);
	assert_int_equal(error_code(e2), EINVAL);
	free(big);
}

/* --- libvirt_status_tgid_parse ----------------------------------------------- */

static void test_tgid_parse(void **state)
{
	(void)state;
	const char status[] = "Name:\tCPU 0/KVM\nUmask:\t0022\nState:\tS (sleeping)\n"
			      "Tgid:\t21471\nNgid:\t0\nPid:\t21484\nPPid:\t1\n";
	pid_t tg = 0;
	assert_int_equal(libvirt_status_tgid_parse(status, &tg, NULL), 0);
	assert_int_equal(tg, 21471);
	assert_int_equal(libvirt_status_tgid_parse("Tgid: 7", &tg, NULL), 0);
	assert_int_equal(tg, 7);

	const char *bad[] = {
		"",
		"Name:\tx\nPid:\t5\n",
		"Tgid:\t\n",
		"Tgid:\tabc\n",
		"Tgid:\t12x\n",
		"Tgid:\t0\n",
		"Tgid:\t-5\n",
		"Tgid:\t2147483648\n",
		"Tgid:\t99999999999999999999\n",
		"XTgid:\t5\n",
		"Name:\tTgid: 5\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		pid_t t = 4242;
		_cleanup_error_ struct error *err = NULL;
		if (libvirt_status_tgid_parse(bad[i], &t, &err) != -1)
			fail_msg("'%s' accepted as %d", bad[i], (int)t);
		assert_int_equal(error_code(err), EINVAL);
		assert_int_equal(t, 4242);
	}
	assert_int_equal(libvirt_status_tgid_parse(NULL, &tg, NULL), -1);
}

/* --- the backend on the test driver ------------------------------------------- */

static void test_backend_new(void **state)
{
	(void)state;
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	_cleanup_error_ struct error *err = NULL;
	assert_int_equal(libvirt_backend_new(NULL, &b, &err), 0);
	assert_string_equal(libvirt_backend_uri(b), "qemu:///system");
	assert_false(libvirt_backend_connected(b)); /* lazy */
	assert_true(libvirt_backend_fd(b) >= 0);
	assert_false(libvirt_backend_dispatch(b));

	struct libvirt_backend *b2 = NULL;
	assert_int_equal(libvirt_backend_new("", &b2, &err), -1);
	assert_int_equal(error_code(err), EINVAL);
	assert_null(b2);

	struct libvirt_domain *d = NULL;
	size_t n = 0;
	error_free(&err);
	assert_int_equal(libvirt_backend_scan(b, NULL, &n, &err), -1);
	assert_int_equal(error_code(err), EINVAL);
	error_free(&err);
	assert_int_equal(libvirt_backend_scan(b, &d, NULL, &err), -1);
	assert_int_equal(error_code(err), EINVAL);
	libvirt_backend_free(NULL);
	libvirt_domain_list_free(NULL, 0);
}

/* node.xml: web-1 (acme), db-1 (globex), plain (no metadata). */
static void test_scan_node(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node.xml");
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	struct libvirt_domain *d = NULL;
	size_t n = 0;
	scan_ok(b, &d, &n);
	assert_true(libvirt_backend_connected(b));
	assert_int_equal(n, 3);
	/* sorted by name */
	assert_string_equal(d[0].name, "db-1");
	assert_string_equal(d[1].name, "plain");
	assert_string_equal(d[2].name, "web-1");

	const struct libvirt_domain *web = find_dom(d, n, "web-1");
	assert_non_null(web);
	assert_string_equal(web->tenant, "acme");
	assert_string_equal(web->uuid, "11111111-2222-3333-4444-555555555501");
	assert_int_equal(strnlen(d[2].uuid, sizeof(d[2].uuid)), VM_UUID_LEN);
	assert_int_equal(web->vcpus, 2);
	assert_int_equal(web->memory_bytes, 128LL << 20);
	assert_int_equal(web->state, VM_STATE_RUNNING);
	assert_true(web->id > 0);
	/* the test driver has no QEMU: no process, no threads */
	assert_int_equal(web->pid, 0);
	assert_int_equal(web->n_threads, 0);
	assert_null(web->threads);
	assert_false(web->stale);

	const struct libvirt_domain *db = find_dom(d, n, "db-1");
	assert_non_null(db);
	assert_string_equal(db->tenant, "globex");
	assert_string_equal(db->uuid, "11111111-2222-3333-4444-555555555502");
	assert_int_equal(db->vcpus, 4);
	assert_int_equal(db->memory_bytes, 256LL << 20);

	const struct libvirt_domain *plain = find_dom(d, n, "plain");
	assert_non_null(plain);
	assert_string_equal(plain->tenant, ""); /* unmanaged */
	assert_string_equal(plain->uuid, "11111111-2222-3333-4444-555555555503");
	assert_int_equal(plain->vcpus, 1);
	assert_true(web->id != db->id && db->id != plain->id);

	struct libvirt_backend_stats st;
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.scans, 1);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.metadata_reads, 3);
	/* the driver's lack of a QEMU monitor is learnt once */
	assert_int_equal(st.qmp_calls, 1);
	libvirt_domain_list_free(d, n);

	/* nothing changed: the second scan reads no metadata and asks no QMP */
	scan_ok(b, &d, &n);
	assert_int_equal(n, 3);
	assert_string_equal(find_dom(d, n, "web-1")->tenant, "acme");
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.scans, 2);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.metadata_reads, 3);
	assert_int_equal(st.qmp_calls, 1);
	assert_int_equal(st.stale_scans, 0);

	/* the model conversion: a managed domain is a valid VM */
	struct vm v;
	libvirt_domain_to_vm(find_dom(d, n, "db-1"), &v);
	assert_string_equal(v.name, "db-1");
	assert_string_equal(v.tenant, "globex");
	assert_string_equal(v.uuid, "11111111-2222-3333-4444-555555555502");
	assert_int_equal(v.source, VM_SOURCE_LIBVIRT);
	assert_int_equal(v.state, VM_STATE_RUNNING);
	assert_int_equal(v.vcpus, 4);
	assert_true(v.memory_set);
	assert_int_equal(v.memory_bytes, 256LL << 20);
	_cleanup_error_ struct error *err = NULL;
	if (vm_validate(&v, &err) < 0)
		fail_msg("vm_validate: %s", err->msg);
	vm_clear(&v);
	libvirt_domain_list_free(d, n);
}

/* node-edge.xml: the cases to refuse or tolerate. */
static void test_scan_edge(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node-edge.xml");
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	struct libvirt_domain *d = NULL;
	size_t n = 0;
	scan_ok(b, &d, &n);
	/* "bad name" is skipped, off-1 is shut off */
	assert_int_equal(n, 4);
	assert_null(find_dom(d, n, "bad name"));
	assert_null(find_dom(d, n, "off-1"));
	for (size_t i = 0; i < n; i++)
		assert_true(name_valid(d[i].name));

	const struct libvirt_domain *evil = find_dom(d, n, "evil-tenant");
	assert_non_null(evil);
	assert_string_equal(evil->tenant, ""); /* "../etc": unmanaged */
	const struct libvirt_domain *nested = find_dom(d, n, "nested-meta");
	assert_non_null(nested);
	assert_string_equal(nested->tenant, "");
	const struct libvirt_domain *other = find_dom(d, n, "other-ns");
	assert_non_null(other);
	assert_string_equal(other->tenant, ""); /* another namespace is not ours */
	const struct libvirt_domain *paused = find_dom(d, n, "paused-1");
	assert_non_null(paused);
	assert_string_equal(paused->tenant, "acme"); /* text trimmed */
	assert_int_equal(paused->state, VM_STATE_PAUSED);
	assert_int_equal(paused->vcpus, 3);
	assert_string_equal(paused->uuid, "22222222-2222-3333-4444-555555555504");
	libvirt_domain_list_free(d, n);
	/* shut off but defined: named apart, for stopped vs gone */
	size_t ni = 0;
	const char *const *in = libvirt_backend_inactive(b, &ni);
	assert_int_equal(ni, 1);
	assert_string_equal(in[0], "off-1");
	assert_null(libvirt_backend_error(b));
	int64_t since = 1;
	assert_null(libvirt_backend_call(b, &since)); /* no call in progress */
	assert_int_equal(since, 0);

	/* the skipped domain stays skipped (and is not re-read) */
	struct libvirt_backend_stats st1, st2;
	libvirt_backend_get_stats(b, &st1);
	scan_ok(b, &d, &n);
	assert_int_equal(n, 4);
	assert_null(find_dom(d, n, "bad name"));
	libvirt_backend_get_stats(b, &st2);
	assert_int_equal(st2.metadata_reads, st1.metadata_reads);
	assert_int_equal(st1.skipped_names, 1);
	assert_int_equal(st2.skipped_names, 1); /* warned about once */
	libvirt_domain_list_free(d, n);
}

/* The test driver has no vCPU statistics; unknown domains; not connected. */
static void test_vcpu_delays_test_driver(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node.xml");
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	uint64_t delay[8];
	size_t n = 99;
	_cleanup_error_ struct error *err = NULL;
	assert_int_equal(libvirt_backend_vcpu_delays(b, "web-1", delay, 8, &n, &err), -1);
	assert_int_equal(error_code(err), ENOTCONN);
	assert_int_equal(n, 0);

	struct libvirt_domain *d = NULL;
	size_t nd = 0;
	scan_ok(b, &d, &nd);
	libvirt_domain_list_free(d, nd);
	error_free(&err);
	assert_int_equal(libvirt_backend_vcpu_delays(b, "web-1", delay, 8, &n, &err), -1);
	assert_int_equal(error_code(err), ENOTSUP);
	error_free(&err);
	assert_int_equal(libvirt_backend_vcpu_delays(b, "nope", delay, 8, &n, &err), -1);
	assert_int_equal(error_code(err), ENOENT);
	error_free(&err);
	assert_int_equal(libvirt_backend_vcpu_delays(b, NULL, delay, 8, &n, &err), -1);
	assert_int_equal(error_code(err), EINVAL);
}

/* --- events, with test:///default (one state shared by its connections) ---- */

static void define_and_start(virConnectPtr c, const char *name, const char *tenant)
{
	_cleanup_free_ char *meta = tenant
		? xasprintf("<metadata><vcpud:tenant xmlns:vcpud=\"urn:vcpud:1\">%s"
			    "</vcpud:tenant></metadata>", tenant)
		: xstrdup("");
	_cleanup_free_ char *xml = xasprintf(
		"<domain type='test'><name>%s</name><memory>131072</memory><vcpu>2</vcpu>"
		"<os><type>hvm</type></os>%s</domain>", name, meta);
	virDomainPtr dom = virDomainDefineXML(c, xml);
	if (!dom)
		fail_msg("define %s: %s", name, virGetLastErrorMessage());
	if (virDomainCreate(dom) < 0)
		fail_msg("start %s: %s", name, virGetLastErrorMessage());
	virDomainFree(dom);
}

/* What a test waits for after an event. */
struct want {
	const char *name;     /* domain */
	bool present;
	const char *tenant;   /* NULL: any */
	enum vm_state state;  /* VM_STATE_UNKNOWN: any */
};

static bool want_met(const struct libvirt_domain *d, size_t n, const struct want *w)
{
	const struct libvirt_domain *x = find_dom(d, n, w->name);
	if (!w->present)
		return x == NULL;
	return x && (!w->tenant || strcmp(x->tenant, w->tenant) == 0) &&
	       (w->state == VM_STATE_UNKNOWN || x->state == w->state);
}

/* Events may come in several pieces (defined, then started): wait for the
 * backend's fd, dispatch, scan, until the scan shows what is wanted (5 s
 * at most). Leaves that scan in *d, *n. */
static void event_then_scan(struct libvirt_backend *b, struct libvirt_domain **d, size_t *n,
			    const struct want *w, const char *what)
{
	int64_t deadline = now_mono_ns() + 5 * 1000000000LL;
	for (;;) {
		int left_ms = (int)((deadline - now_mono_ns()) / 1000000);
		if (left_ms <= 0 || !wait_fd(b, left_ms))
			fail_msg("no event showing it within 5 s after %s", what);
		assert_true(libvirt_backend_dispatch(b));
		scan_ok(b, d, n);
		if (want_met(*d, *n, w))
			return;
		libvirt_domain_list_free(*d, *n);
	}
}

static void test_events_default(void **state)
{
	(void)state;
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new("test:///default", &b, NULL), 0);
	struct libvirt_domain *d = NULL;
	size_t n = 0;
	scan_ok(b, &d, &n);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "test");
	assert_string_equal(d[0].tenant, "");
	libvirt_domain_list_free(d, n);
	while (libvirt_backend_dispatch(b))
		;

	/* metadata set on a running domain: the event makes it re-read */
	virDomainPtr t = virDomainLookupByName(c, "test");
	assert_non_null(t);
	assert_int_equal(virDomainSetMetadata(t, VIR_DOMAIN_METADATA_ELEMENT,
					      "<tenant>acme</tenant>", LIBVIRT_METADATA_KEY,
					      LIBVIRT_METADATA_NS, VIR_DOMAIN_AFFECT_LIVE), 0);
	event_then_scan(b, &d, &n, &(struct want){ "test", true, "acme", 0 },
			"a metadata change");
	assert_int_equal(n, 1);
	assert_string_equal(d[0].tenant, "acme");
	libvirt_domain_list_free(d, n);

	/* a domain started: listed with its tenant */
	define_and_start(c, "t2", "globex");
	event_then_scan(b, &d, &n, &(struct want){ "t2", true, NULL, 0 }, "a start");
	assert_int_equal(n, 2);
	assert_non_null(find_dom(d, n, "t2"));
	assert_string_equal(find_dom(d, n, "t2")->tenant, "globex");
	libvirt_domain_list_free(d, n);

	/* paused and resumed */
	assert_int_equal(virDomainSuspend(t), 0);
	event_then_scan(b, &d, &n, &(struct want){ "test", true, NULL, VM_STATE_PAUSED },
			"a suspend");
	assert_int_equal(find_dom(d, n, "test")->state, VM_STATE_PAUSED);
	libvirt_domain_list_free(d, n);
	assert_int_equal(virDomainResume(t), 0);
	event_then_scan(b, &d, &n, &(struct want){ "test", true, NULL, VM_STATE_RUNNING },
			"a resume");
	assert_int_equal(find_dom(d, n, "test")->state, VM_STATE_RUNNING);
	libvirt_domain_list_free(d, n);

	/* metadata removed: unmanaged again */
	assert_int_equal(virDomainSetMetadata(t, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL,
					      LIBVIRT_METADATA_NS, VIR_DOMAIN_AFFECT_LIVE), 0);
	event_then_scan(b, &d, &n, &(struct want){ "test", true, "", 0 },
			"a metadata removal");
	assert_string_equal(find_dom(d, n, "test")->tenant, "");
	libvirt_domain_list_free(d, n);

	/* destroyed: gone from the next scan */
	virDomainPtr t2 = virDomainLookupByName(c, "t2");
	assert_non_null(t2);
	assert_int_equal(virDomainDestroy(t2), 0);
	event_then_scan(b, &d, &n, &(struct want){ "t2", false, NULL, 0 }, "a destroy");
	assert_int_equal(n, 1);
	assert_null(find_dom(d, n, "t2"));
	libvirt_domain_list_free(d, n);

	/* started again: a new domain id, read afresh */
	struct libvirt_backend_stats st1, st2;
	libvirt_backend_get_stats(b, &st1);
	assert_int_equal(virDomainCreate(t2), 0);
	event_then_scan(b, &d, &n, &(struct want){ "t2", true, NULL, 0 }, "a restart");
	assert_int_equal(n, 2);
	assert_string_equal(find_dom(d, n, "t2")->tenant, "globex");
	libvirt_backend_get_stats(b, &st2);
	assert_true(st2.metadata_reads > st1.metadata_reads);
	assert_true(st2.events >= 7);
	libvirt_domain_list_free(d, n);

	virDomainDestroy(t2);
	virDomainUndefine(t2);
	virDomainFree(t2);
	virDomainFree(t);
	virConnectClose(c);
}

/* Two backends at once share the event thread; freeing one keeps the other
 * receiving events. */
static void test_events_two_backends(void **state)
{
	(void)state;
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	struct libvirt_backend *b1 = NULL, *b2 = NULL;
	assert_int_equal(libvirt_backend_new("test:///default", &b1, NULL), 0);
	assert_int_equal(libvirt_backend_new("test:///default", &b2, NULL), 0);
	struct libvirt_domain *d = NULL;
	size_t n = 0;
	scan_ok(b1, &d, &n);
	libvirt_domain_list_free(d, n);
	scan_ok(b2, &d, &n);
	libvirt_domain_list_free(d, n);
	libvirt_backend_free(b1);

	define_and_start(c, "t3", NULL);
	event_then_scan(b2, &d, &n, &(struct want){ "t3", true, NULL, 0 }, "a start");
	assert_non_null(find_dom(d, n, "t3"));
	assert_string_equal(find_dom(d, n, "t3")->tenant, "");
	libvirt_domain_list_free(d, n);
	libvirt_backend_free(b2);

	virDomainPtr t3 = virDomainLookupByName(c, "t3");
	virDomainDestroy(t3);
	virDomainUndefine(t3);
	virDomainFree(t3);
	virConnectClose(c);
}

/* --- libvirtd unreachable ------------------------------------------------------ */

static void test_unreachable(void **state)
{
	(void)state;
	_cleanup_(libvirt_backend_freep) struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new("qemu:///system?socket=/nonexistent/vcpud-test/"
					     "libvirt-sock", &b, NULL), 0);
	libvirt_backend_set_backoff(b, 3600 * 1000, 3600 * 1000);
	struct libvirt_domain *d = (struct libvirt_domain *)0x1;
	size_t n = 5;
	_cleanup_error_ struct error *err = NULL;
	/* stale with nothing known; no error: the daemon keeps running */
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	assert_null(err);
	assert_null(d);
	assert_int_equal(n, 0);
	assert_false(libvirt_backend_connected(b));
	/* within the back-off: no new attempt */
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	struct libvirt_backend_stats st;
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 1);
	assert_int_equal(st.connects, 0);
	assert_int_equal(st.stale_scans, 2);

	/* a short back-off: retried after it, doubling */
	libvirt_backend_set_backoff(b, 20, 1000);
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 1); /* the hour is still running */
	libvirt_backend_free(b);
	b = NULL;

	assert_int_equal(libvirt_backend_new("qemu:///system?socket=/nonexistent/vcpud-test/"
					     "libvirt-sock", &b, NULL), 0);
	libvirt_backend_set_backoff(b, 20, 1000);
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 1); /* 20 ms not yet over */
	usleep(30 * 1000);
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 2);
	usleep(30 * 1000); /* the back-off is 40 ms now */
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 2);
	usleep(20 * 1000);
	assert_int_equal(libvirt_backend_scan(b, &d, &n, &err), LIBVIRT_SCAN_STALE);
	libvirt_backend_get_stats(b, &st);
	assert_int_equal(st.connect_attempts, 3);
	assert_null(err);
	assert_int_equal(libvirt_backend_vcpu_delays(b, "x", NULL, 0, &n, &err), -1);
	assert_int_equal(error_code(err), ENOTCONN);
	/* why, for /v1/health */
	assert_non_null(libvirt_backend_error(b));
	assert_non_null(strstr(libvirt_backend_error(b), "cannot connect to qemu:///system"));
}

/* --- the worker ------------------------------------------------------------------- */

/* A call hook that blocks while `block` is set: a libvirtd that does not
 * answer, as the worker sees it. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool block;
	bool inside;          /* a call waits in the hook */
	unsigned calls;
	char last[64];
};

static void gate_init(struct gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

static void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void gate_hook(void *data, const char *call)
{
	struct gate *g = data;
	pthread_mutex_lock(&g->lock);
	g->calls++;
	snprintf(g->last, sizeof(g->last), "%s", call);
	while (g->block) {
		g->inside = true;
		pthread_cond_broadcast(&g->cond);
		pthread_cond_wait(&g->cond, &g->lock);
	}
	g->inside = false;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_set(struct gate *g, bool block)
{
	pthread_mutex_lock(&g->lock);
	g->block = block;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Wait (5 s at most) until a call is held in the hook. */
static bool gate_wait_inside(struct gate *g)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&g->lock);
	while (!g->inside)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &dl) == ETIMEDOUT)
			break;
	bool in = g->inside;
	pthread_mutex_unlock(&g->lock);
	return in;
}

static bool gate_inside(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	bool in = g->inside;
	pthread_mutex_unlock(&g->lock);
	return in;
}

static bool wait_worker_fd(struct libvirt_worker *w, int timeout_ms)
{
	struct pollfd p = { .fd = libvirt_worker_fd(w), .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Take snapshots every 10 ms until pred holds (5 s at most); the snapshot
 * that met it, or NULL. */
static struct libvirt_snapshot *take_until(struct libvirt_worker *w,
					   bool (*pred)(const struct libvirt_snapshot *, const void *),
					   const void *arg)
{
	int64_t deadline = now_mono_ns() + 5 * 1000000000LL;
	while (now_mono_ns() < deadline) {
		struct libvirt_snapshot *s = libvirt_worker_take(w);
		if (pred(s, arg))
			return s;
		libvirt_snapshot_free(s);
		usleep(10 * 1000);
	}
	return NULL;
}

static bool link_is(const struct libvirt_snapshot *s, const void *arg)
{
	return s->link == *(const enum libvirt_link *)arg;
}

static bool names_has(const char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static void test_link_names(void **state)
{
	(void)state;
	assert_string_equal(libvirt_link_to_string(LIBVIRT_LINK_CONNECTING), "connecting");
	assert_string_equal(libvirt_link_to_string(LIBVIRT_LINK_CONNECTED), "connected");
	assert_string_equal(libvirt_link_to_string(LIBVIRT_LINK_UNREACHABLE), "unreachable");
	assert_string_equal(libvirt_link_to_string(LIBVIRT_LINK_LAST), "unknown");
	struct libvirt_worker *w = (struct libvirt_worker *)0x1;
	_cleanup_error_ struct error *err = NULL;
	assert_int_equal(libvirt_worker_start(NULL, NULL, &w, &err), -1);
	assert_int_equal(error_code(err), EINVAL);
	libvirt_worker_stop(NULL);
	libvirt_snapshot_free(NULL);
}

/* A snapshot appears, with the active domains, the defined-inactive ones
 * and the link; the fd says so; an unchanged rescan does not wake it. */
static void test_worker_snapshot(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node-edge.xml");
	struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	struct libvirt_worker *w = NULL;
	struct libvirt_worker_config cfg = { .period_ms = 20, .stall_ms = 2000 };
	assert_int_equal(libvirt_worker_start(b, &cfg, &w, NULL), 0);
	assert_true(wait_worker_fd(w, 5000));
	assert_true(libvirt_worker_dispatch(w));
	struct libvirt_snapshot *s = libvirt_worker_take(w);
	assert_int_equal(s->link, LIBVIRT_LINK_CONNECTED);
	assert_false(s->stalled);
	assert_null(s->error);
	assert_true(s->seq >= 1);
	assert_true(s->since_ms > 0 && s->since_ms <= now_real_ns() / 1000000);
	assert_int_equal(s->n, 4);
	assert_non_null(find_dom(s->doms, s->n, "paused-1"));
	assert_null(find_dom(s->doms, s->n, "off-1"));
	assert_int_equal(s->n_inactive, 1);
	assert_string_equal(s->inactive[0], "off-1");

	/* scans go on (the period), but nothing changed: no wake-up; the
	 * snapshot held stays valid meanwhile */
	uint64_t seq0 = s->seq;
	usleep(200 * 1000);
	struct libvirt_snapshot *s2 = libvirt_worker_take(w);
	assert_true(s2->seq > seq0 + 1);
	assert_false(wait_worker_fd(w, 0));
	assert_false(libvirt_worker_dispatch(w));
	assert_string_equal(find_dom(s->doms, s->n, "paused-1")->tenant, "acme");
	assert_int_equal(s2->n, 4);
	libvirt_snapshot_free(s2);
	libvirt_worker_stop(w); /* the snapshot outlives its worker */
	assert_string_equal(find_dom(s->doms, s->n, "paused-1")->uuid,
			    "22222222-2222-3333-4444-555555555504");
	libvirt_snapshot_free(s);
	assert_int_equal(libvirt_worker_threads(), 0);
}

static bool lists(const struct libvirt_snapshot *s, const void *arg)
{
	const struct want *wt = arg;
	if (!want_met(s->doms, s->n, wt))
		return false;
	return s->link == LIBVIRT_LINK_CONNECTED;
}

/* Domain events reach the taker through the worker at once (the period is
 * an hour): a start is listed, a destroy of a defined domain moves it to
 * the inactive names, an undefine drops it. */
static void test_worker_events(void **state)
{
	(void)state;
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new("test:///default", &b, NULL), 0);
	struct libvirt_worker *w = NULL;
	struct libvirt_worker_config cfg = { .period_ms = 3600 * 1000 };
	assert_int_equal(libvirt_worker_start(b, &cfg, &w, NULL), 0);
	assert_true(wait_worker_fd(w, 5000));
	while (libvirt_worker_dispatch(w))
		;
	struct libvirt_snapshot *s = libvirt_worker_take(w);
	assert_int_equal(s->link, LIBVIRT_LINK_CONNECTED);
	assert_null(find_dom(s->doms, s->n, "w1"));
	libvirt_snapshot_free(s);

	define_and_start(c, "w1", "acme");
	assert_true(wait_worker_fd(w, 5000)); /* no period: an event did it */
	s = take_until(w, lists, &(struct want){ "w1", true, "acme", 0 });
	assert_non_null(s);
	assert_false(names_has(s->inactive, s->n_inactive, "w1"));
	libvirt_snapshot_free(s);

	virDomainPtr d = virDomainLookupByName(c, "w1");
	assert_non_null(d);
	assert_int_equal(virDomainDestroy(d), 0);
	s = take_until(w, lists, &(struct want){ "w1", false, NULL, 0 });
	assert_non_null(s);
	assert_true(names_has(s->inactive, s->n_inactive, "w1"));
	libvirt_snapshot_free(s);

	assert_int_equal(virDomainUndefine(d), 0);
	virDomainFree(d);
	int64_t deadline = now_mono_ns() + 5 * 1000000000LL;
	for (;;) {
		s = libvirt_worker_take(w);
		if (!names_has(s->inactive, s->n_inactive, "w1"))
			break;
		libvirt_snapshot_free(s);
		if (now_mono_ns() > deadline)
			fail_msg("w1 still listed as defined 5 s after its undefine");
		usleep(10 * 1000);
	}
	assert_null(find_dom(s->doms, s->n, "w1"));
	libvirt_snapshot_free(s);
	libvirt_worker_stop(w);
	virConnectClose(c);
}

/* A libvirt call that does not return (the hook holds it): the taker is
 * never held up, says unreachable after the bound with the call's name and
 * keeps the last domains; released, the worker converges to connected. */
static void test_worker_stall(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node.xml");
	struct gate g;
	gate_init(&g);
	struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	libvirt_backend_set_call_hook(b, gate_hook, &g);
	struct libvirt_worker *w = NULL;
	struct libvirt_worker_config cfg = { .period_ms = 20, .stall_ms = 300 };
	assert_int_equal(libvirt_worker_start(b, &cfg, &w, NULL), 0);
	enum libvirt_link want = LIBVIRT_LINK_CONNECTED;
	struct libvirt_snapshot *s = take_until(w, link_is, &want);
	assert_non_null(s);
	assert_int_equal(s->n, 3);
	libvirt_snapshot_free(s);

	gate_set(&g, true);
	assert_true(gate_wait_inside(&g));
	/* the taker does not wait for the worker: this returns while the
	 * call is still held, and before the bound it still says connected */
	s = libvirt_worker_take(w);
	assert_true(gate_inside(&g));
	assert_int_equal(s->n, 3);
	libvirt_snapshot_free(s);

	want = LIBVIRT_LINK_UNREACHABLE;
	int64_t t0 = now_real_ns() / 1000000;
	s = take_until(w, link_is, &want);
	assert_non_null(s);
	assert_true(gate_inside(&g));
	assert_true(s->stalled);
	assert_non_null(s->error);
	_cleanup_free_ char *prefix = xasprintf("libvirt call %s has not returned for ", g.last);
	if (strncmp(s->error, prefix, strlen(prefix)) != 0)
		fail_msg("error '%s' does not start with '%s'", s->error, prefix);
	/* since the call began: the worker turns its monotonic start into
	 * wall time when it publishes, so a wall clock slewed against the
	 * monotonic one moves it by the slew over the wait (this machine's ran
	 * 0.5% fast, 1.5 ms over the 300 ms bound): 1% of the wait allowed */
	int64_t t1 = now_real_ns() / 1000000;
	assert_true(s->since_ms <= t0 + 1 + (t1 - t0) / 100);
	assert_int_equal(s->n, 3);                    /* the last known list */
	assert_non_null(find_dom(s->doms, s->n, "web-1"));
	libvirt_snapshot_free(s);

	gate_set(&g, false);
	want = LIBVIRT_LINK_CONNECTED;
	s = take_until(w, link_is, &want);
	assert_non_null(s);
	assert_false(s->stalled);
	assert_null(s->error);
	assert_int_equal(s->n, 3);
	libvirt_snapshot_free(s);
	libvirt_worker_stop(w);
	assert_int_equal(libvirt_worker_threads(), 0);
	gate_destroy(&g);
}

/* Stopping a worker stuck in a call returns after the bound and leaves the
 * thread behind; when the call returns, the thread cleans up and ends. */
static void test_worker_stop_stuck(void **state)
{
	(void)state;
	_cleanup_free_ char *uri = fixture_uri("node.xml");
	static struct gate g; /* outlives the test's frame if the thread did */
	gate_init(&g);
	struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new(uri, &b, NULL), 0);
	libvirt_backend_set_call_hook(b, gate_hook, &g);
	struct libvirt_worker *w = NULL;
	struct libvirt_worker_config cfg = { .period_ms = 20, .stall_ms = 100 };
	assert_int_equal(libvirt_worker_start(b, &cfg, &w, NULL), 0);
	enum libvirt_link want = LIBVIRT_LINK_CONNECTED;
	struct libvirt_snapshot *s = take_until(w, link_is, &want);
	assert_non_null(s);
	libvirt_snapshot_free(s);
	gate_set(&g, true);
	assert_true(gate_wait_inside(&g));
	libvirt_worker_stop(w); /* returns: the call is still held */
	assert_true(gate_inside(&g));
	assert_int_equal(libvirt_worker_threads(), 1);
	gate_set(&g, false);
	int64_t deadline = now_mono_ns() + 5 * 1000000000LL;
	while (libvirt_worker_threads() > 0 && now_mono_ns() < deadline)
		usleep(10 * 1000);
	assert_int_equal(libvirt_worker_threads(), 0);
	gate_destroy(&g);
}

/* An unreachable libvirtd: published as unreachable with the reason. */
static void test_worker_unreachable(void **state)
{
	(void)state;
	struct libvirt_backend *b = NULL;
	assert_int_equal(libvirt_backend_new("qemu:///system?socket=/nonexistent/vcpud-test/"
					     "libvirt-sock", &b, NULL), 0);
	struct libvirt_worker *w = NULL;
	assert_int_equal(libvirt_worker_start(b, NULL, &w, NULL), 0);
	enum libvirt_link want = LIBVIRT_LINK_UNREACHABLE;
	struct libvirt_snapshot *s = take_until(w, link_is, &want);
	assert_non_null(s);
	assert_false(s->stalled);
	assert_non_null(s->error);
	assert_non_null(strstr(s->error, "cannot connect to qemu:///system"));
	assert_int_equal(s->n, 0);
	assert_true(wait_worker_fd(w, 0)); /* connecting -> unreachable */
	libvirt_snapshot_free(s);
	libvirt_worker_stop(w);
}

int main(void)
{
	/* the backend logs what it skips; keep test output readable */
	log_set_level(getenv("VCPUD_TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tenant_parse_good),
		cmocka_unit_test(test_tenant_parse_bad),
		cmocka_unit_test(test_tenant_parse_messages),
		cmocka_unit_test(test_qmp_parse_good),
		cmocka_unit_test(test_qmp_parse_bad),
		cmocka_unit_test(test_tgid_parse),
		cmocka_unit_test(test_backend_new),
		cmocka_unit_test(test_scan_node),
		cmocka_unit_test(test_scan_edge),
		cmocka_unit_test(test_vcpu_delays_test_driver),
		cmocka_unit_test(test_events_default),
		cmocka_unit_test(test_events_two_backends),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_link_names),
		cmocka_unit_test(test_worker_snapshot),
		cmocka_unit_test(test_worker_events),
		cmocka_unit_test(test_worker_stall),
		cmocka_unit_test(test_worker_stop_stuck),
		cmocka_unit_test(test_worker_unreachable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
